/* SPDX-License-Identifier: MIT */
/*
 * move.c - the data mover: every move of the only copy of a page between
 * the program's memory, staging and device storage, with what the kernel
 * answers handled (migrate.h).
 *
 *   program -> staging    isolation (setup): UFFDIO_MOVE on mm->uffd; a
 *                         read-only mapping cannot be a move source, so its
 *                         pages are copied (UFFDIO_COPY) and the originals
 *                         dropped afterwards (uhmm__zap_own)
 *   staging|storage -> program   placement (finalize): UFFDIO_MOVE on
 *                         mm->uffd, DONTWAKE (finalize wakes once the words
 *                         are settled); UFFDIO_COPY into a read-only mapping
 *   staging -> storage    to a host-storage device: UFFDIO_MOVE on
 *                         mm->uffd_own; memcpy where storage cannot be a move
 *                         destination
 *   storage -> staging    from it: UFFDIO_MOVE on mm->uffd
 *
 * -EAGAIN means the program's mappings are changing (an event is pending):
 * the events are read and applied (uhmm__events_pump) and every page's
 * address is looked up again from its word before the move is retried; a
 * page discarded meanwhile is not placed. -EBUSY (a page shared
 * copy-on-write: a write fault makes it the program's own again, contents
 * unchanged) is retried once, -EINVAL (access flags that differ) falls back
 * to copying; a page that cannot be isolated at all (pinned) is unselected.
 *
 * Runs: whole runs move in one call, so that a 2 MiB run aligned on both
 * sides moves as one PMD; a run is cut where either side stops being
 * contiguous.
 */
#include <errno.h>
#include <string.h>
#include <sys/mman.h>

#include "migrate.h"

#ifndef MADV_POPULATE_WRITE
#define MADV_POPULATE_WRITE 23
#endif

#define PG UHMM__PAGE_SIZE
/* -EAGAIN rounds before a pass gives up on a page (never on the only copy). */
#define ISOLATE_STALLS 1000

static uintptr_t home_of(struct uhmm_migrate *m, unsigned long i)
{
	return m->start + (i << UHMM__PAGE_SHIFT);
}

/*
 * The end of the kernel VMA holding @addr (0 if none): one move stays
 * inside one VMA, and a mapping may be several (uhmm__mapping_of).
 */
static uintptr_t vma_end(struct uhmm_mm *mm, uintptr_t addr)
{
	struct uhmm__vma v;

	return uhmm__vma_query(mm->maps_fd, addr, false, &v) ? 0 : v.end;
}

/* Return page @i to where it was: not part of this migration. */
static void unselect(struct uhmm_migrate *m, unsigned long i)
{
	struct mig *g = M(m);
	uint64_t pfn;

	uhmm__lock(&m->mm->lock);
	pfn = uhmm__ps_release(m->mm, g->pg[i].ps);
	uhmm__unlock(&m->mm->lock);
	uhmm__assert(!pfn); /* a system page: no device page to release */
	g->pg[i].ps = NULL;
	g->pg[i].sel = SEL_NONE;
	m->cpages--;
}

/* Is page @i still at its home address, not discarded? Under mm->lock. */
static bool still_home(struct uhmm_migrate *m, unsigned long i)
{
	struct uhmm__ps *p = M(m)->pg[i].ps;

	return (mig_all_home(M(m)) || uhmm__ps_lookup(m->mm, home_of(m, i), NULL) == p) &&
	       !uhmm__ps_discarded(uhmm__ps_load(p));
}

/* --- isolation --------------------------------------------------------------- */

struct present {
	uint8_t *has; /* 1: a page with data, 2: the zero page */
	uintptr_t base;
};

static int present_cb(void *p, const struct page_region *r)
{
	struct present *a = p;

	memset(a->has + ((r->start - a->base) >> UHMM__PAGE_SHIFT),
	       (r->categories & PAGE_IS_PFNZERO) ? 2 : 1, (r->end - r->start) >> UHMM__PAGE_SHIFT);
	return 0;
}

/* A read-only page cannot be a move source: copy it into staging. */
static void copy_in(struct uhmm_migrate *m, unsigned long i, bool zero)
{
	struct mig *g = M(m);

	for (int stalls = 0;;) {
		int r;

		if (zero) {
			g->pg[i].ro_copy = true; /* nothing to carry; the original goes */
			return;
		}
		r = uhmm__uffd_copy(m->mm->uffd, mig_stage(g, i), (void *)home_of(m, i), PG,
				    UFFDIO_COPY_MODE_DONTWAKE, NULL);
		if (r == 0) {
			g->pg[i].ro_copy = true;
			return;
		}
		if (r != -EAGAIN || ++stalls > ISOLATE_STALLS) {
			unselect(m, i); /* left where it is, with its data */
			return;
		}
		uhmm__events_pump(m->mm, true, g->in_signal);
		uhmm__lock(&m->mm->lock);
		zero = !still_home(m, i);
		uhmm__unlock(&m->mm->lock);
		if (zero) {
			unselect(m, i); /* gone or moved meanwhile: not ours to take */
			return;
		}
	}
}

static void isolate_readonly(struct uhmm_migrate *m, unsigned long i, unsigned long j)
{
	uint8_t has_inline[MIG_INLINE], *has = has_inline;
	struct present a = { .base = home_of(m, i) };

	if (j - i > MIG_INLINE && !(has = uhmm__calloc(j - i, 1))) {
		for (unsigned long k = i; k < j; k++)
			unselect(m, k); /* no memory to look: leave them all */
		return;
	}
	memset(has, 0, j - i);
	a.has = has;
	if (uhmm__pagemap_walk(m->mm->pagemap_fd, home_of(m, i), home_of(m, j),
			       PAGE_IS_PRESENT | PAGE_IS_SWAPPED, PAGE_IS_PRESENT | PAGE_IS_PFNZERO,
			       present_cb, &a)) {
		for (unsigned long k = i; k < j; k++)
			unselect(m, k);
	} else {
		for (unsigned long k = i; k < j; k++)
			if (has[k - i])
				copy_in(m, k, has[k - i] == 2);
	}
	if (has != has_inline)
		uhmm__free(has);
}

/*
 * After events were applied: pages of [i, j) no longer at their home are
 * not taken. One discarded stays selected (finalize drops it) but is not
 * moved; one moved or unmapped-and-not-discarded is unselected.
 */
static void recheck(struct uhmm_migrate *m, unsigned long i, unsigned long j, bool *skip)
{
	struct mig *g = M(m);

	for (unsigned long k = i; k < j; k++) {
		bool home, discarded;

		if (!g->pg[k].ps || skip[k - i])
			continue;
		uhmm__lock(&m->mm->lock);
		home = still_home(m, k);
		discarded = uhmm__ps_discarded(uhmm__ps_load(g->pg[k].ps));
		uhmm__unlock(&m->mm->lock);
		if (home)
			continue;
		if (discarded)
			skip[k - i] = true;
		else
			unselect(m, k);
	}
}

/* Is page @k of [i, j) to be moved? */
static bool wanted(struct mig *g, unsigned long i, unsigned long k, const bool *skip)
{
	return g->pg[k].ps && !skip[k - i];
}

void uhmm__move_isolate(struct uhmm_migrate *m, unsigned long i, unsigned long j)
{
	struct mig *g = M(m);
	bool skip_inline[MIG_INLINE], *skip = skip_inline;
	unsigned long first = i;
	int stalls = 0;

	uhmm__assert(uhmm__held(&m->mm->event_lock));
	uhmm__assert(!g->in_signal); /* fault-backs isolate no system page */
	if (!g->writable) {
		isolate_readonly(m, i, j);
		return;
	}
	if (j - i > MIG_INLINE && !(skip = uhmm__calloc(j - i, sizeof(*skip)))) {
		for (unsigned long k = i; k < j; k++)
			unselect(m, k); /* no memory to keep track: leave them all */
		return;
	}
	memset(skip, 0, (j - i) * sizeof(*skip));
	while (i < j) {
		unsigned long e = i;
		uintptr_t lim;
		size_t done = 0;
		int r;

		if (!wanted(g, first, i, skip)) {
			i++;
			continue;
		}
		while (e < j && wanted(g, first, e, skip))
			e++;
		lim = vma_end(m->mm, home_of(m, i));
		if (lim && home_of(m, e) > lim)
			e = i + ((lim - home_of(m, i)) >> UHMM__PAGE_SHIFT);
		r = uhmm__uffd_move(m->mm->uffd, mig_stage(g, i), home_of(m, i),
				    (e - i) << UHMM__PAGE_SHIFT, UFFDIO_MOVE_MODE_ALLOW_SRC_HOLES, &done);
		i += done >> UHMM__PAGE_SHIFT;
		if (!r || i >= e)
			continue;
		if (r == -EAGAIN && done)
			continue; /* partial progress */
		if (r == -EAGAIN && ++stalls < ISOLATE_STALLS) {
			uhmm__events_pump(m->mm, true, g->in_signal);
			recheck(m, first, j, skip);
			continue;
		}
		/*
		 * -EBUSY: the page is not exclusively ours. Shared copy-on-write
		 * (with a fork child, or left so after one: the kernel keeps a
		 * page "maybe shared" until it is written), a write fault makes
		 * it ours with the same contents; then it moves. A pinned page
		 * stays where it is.
		 */
		if (r == -EEXIST && !g->pg[i].cow_broken) {
			/* Staging not empty there (never expected): ours, drop it. */
			uhmm__assert_expensive(!"staging was not empty");
			g->pg[i].cow_broken = true;
			uhmm__zap_staging(m->mm, mig_stage(g, i), PG);
			continue;
		}
		if (r == -EBUSY && !g->pg[i].cow_broken) {
			g->pg[i].cow_broken = true;
			uhmm__sys_madvise((void *)home_of(m, i), PG, MADV_POPULATE_WRITE);
			continue;
		}
		unselect(m, i++);
	}
	if (skip != skip_inline)
		uhmm__free(skip);
}

/* --- placing data home ----------------------------------------------------------- */

/* Where the data of entry @k is: a staging page, or its destination's storage. */
static uintptr_t data_of(struct uhmm_migrate *m, unsigned long k)
{
	struct mig *g = M(m);
	struct mig_page *mp = &g->pg[k];
	struct uhmm_pagemap *pg;

	if (mp->where == W_STAGED)
		return mig_stage(g, k);
	uhmm__assert(mp->where == W_DST);
	pg = uhmm__pagemap_of(m->mm, mp->dst_pfn);
	return pg ? (uintptr_t)uhmm__dpage_storage(pg, mp->dst_pfn) : 0;
}

/*
 * The current address of entry @k, 0 if gone or discarded. Under mm->lock,
 * @hint as for uhmm__ps_lookup_near().
 */
static uintptr_t addr_of(struct uhmm_migrate *m, unsigned long k, struct uhmm__area **hint)
{
	struct uhmm__ps *p = M(m)->pg[k].ps;

	if (uhmm__ps_discarded(uhmm__ps_load(p)))
		return 0;
	if (mig_all_home(M(m)) || uhmm__ps_lookup_near(m->mm, home_of(m, k), hint) == p)
		return home_of(m, k);
	return uhmm__ps_addr(m->mm, p);
}

/* Copy one page home (read-only destination, or a source that will not move). */
static int copy_home(struct uhmm_migrate *m, uintptr_t dst, uintptr_t src)
{
	struct page_region r;
	uintptr_t we;
	int c;

	/* A hole stays a hole: never make the kernel fault on uhmm's memory. */
	if (uhmm__pagemap_scan(m->mm->pagemap_fd, src, src + PG, &r, 1, 0, 0,
			       PAGE_IS_PRESENT | PAGE_IS_SWAPPED, PAGE_IS_PRESENT, &we) <= 0)
		return 0;
	c = uhmm__uffd_copy(m->mm->uffd, dst, (void *)src, PG, UFFDIO_COPY_MODE_DONTWAKE, NULL);
	if (c == -EEXIST) {
		/* The page was filled behind our back: an invariant broke. */
		uhmm__assert_expensive(!"a migrating page was filled at home");
		return 0;
	}
	return c;
}

/*
 * Move the contiguous run [k, e) from @src to @dst. Return 0, or -EAGAIN
 * (events pending: look again), having moved what it could.
 */
static int place_run(struct uhmm_migrate *m, uintptr_t dst, uintptr_t src, unsigned long k,
		     unsigned long e, unsigned long *moved)
{
	size_t len = (e - k) << UHMM__PAGE_SHIFT, off = 0;

	*moved = 0;
	while (off < len) {
		size_t done = 0;
		int r = uhmm__uffd_move(m->mm->uffd, dst + off, src + off, len - off,
					UFFDIO_MOVE_MODE_ALLOW_SRC_HOLES | UFFDIO_MOVE_MODE_DONTWAKE,
					&done);

		off += done;
		*moved = off >> UHMM__PAGE_SHIFT;
		if (!r)
			break;
		if (r == -EAGAIN) {
			if (done)
				continue;
			return -EAGAIN;
		}
		if (r == -EEXIST) {
			uhmm__assert_expensive(!"a migrating page was filled at home");
			off += PG; /* keep what is there */
			continue;
		}
		/* Read-only destination, or a source that will not move: copy. */
		r = copy_home(m, dst + off, src + off);
		if (r == -EAGAIN)
			return -EAGAIN;
		off += PG;
		*moved = off >> UHMM__PAGE_SHIFT;
	}
	*moved = e - k;
	return 0;
}

/* After storage was moved out whole, its pages are empty again. */
static void storage_emptied(struct uhmm_migrate *m, unsigned long k, unsigned long e)
{
	struct mig *g = M(m);

	while (k < e) {
		struct uhmm_pagemap *pg;
		uint64_t pfn = g->pg[k].dst_pfn;
		unsigned long x = k + 1;

		if (g->pg[k].where != W_DST) {
			k++;
			continue;
		}
		/* A run of consecutive device pages is marked at once. */
		while (x < e && g->pg[x].where == W_DST && g->pg[x].dst_pfn == pfn + (x - k))
			x++;
		uhmm__lock(&m->mm->lock);
		pg = uhmm__pagemap_of(m->mm, pfn);
		uhmm__unlock(&m->mm->lock);
		if (pg)
			uhmm__dpage_mark(pg, pfn, x - k, false);
		k = x;
	}
}

void uhmm__move_home(struct uhmm_migrate *m, unsigned long i, unsigned long j)
{
	struct uhmm_mm *mm = m->mm;
	struct mig *g = M(m);

	uhmm__assert(uhmm__held(&mm->event_lock));
	while (i < j) {
		struct uhmm__area *hint = NULL;
		uintptr_t dst, src, lim;
		unsigned long e = i + 1, moved;

		uhmm__lock(&mm->lock);
		dst = addr_of(m, i, &hint);
		src = data_of(m, i);
		/* The run: contiguous at both ends, every page still wanted. */
		while (dst && src && e < j &&
		       addr_of(m, e, &hint) == dst + ((e - i) << UHMM__PAGE_SHIFT) &&
		       data_of(m, e) == src + ((e - i) << UHMM__PAGE_SHIFT))
			e++;
		uhmm__unlock(&mm->lock);
		if (!dst || !src) {
			i++; /* discarded, unmapped: its data is dropped */
			continue;
		}
		lim = vma_end(mm, dst);
		if (lim && dst + ((e - i) << UHMM__PAGE_SHIFT) > lim)
			e = i + ((lim - dst) >> UHMM__PAGE_SHIFT);
		if (place_run(m, dst, src, i, e, &moved) == -EAGAIN) {
			storage_emptied(m, i, i + moved);
			i += moved;
			uhmm__events_pump(mm, true, g->in_signal);
			continue; /* and look up the addresses again */
		}
		storage_emptied(m, i, e);
		i = e;
	}
}

/* --- device storage ------------------------------------------------------------ */

/* Storage of the pfn entry @k uses on the device side. */
static uint64_t side_pfn(struct mig *g, unsigned long k, bool back)
{
	return back ? g->pg[k].src_pfn : g->pg[k].dst_pfn;
}

/* Staging page @k -> storage @st: move, or copy where moving is refused. */
static int fill_storage(struct uhmm_migrate *m, struct uhmm_pagemap *pg, uint64_t pfn,
			char *st, uintptr_t stage, size_t len)
{
	struct uhmm_mm *mm = m->mm;
	size_t done = 0;
	int r = -EINVAL;

	if (mm->uffd_own >= 0 && mm->own_wp)
		r = uhmm__uffd_move(mm->uffd_own, (uintptr_t)st, stage, len,
				    UFFDIO_MOVE_MODE_ALLOW_SRC_HOLES, &done);
	if (r == -EEXIST) {
		/* Storage not empty (read through its address while a hole): ours, drop it. */
		size_t more = 0;

		uhmm__sys_madvise(st + done, len - done, MADV_DONTNEED);
		r = uhmm__uffd_move(mm->uffd_own, (uintptr_t)st + done, stage + done, len - done,
				    UFFDIO_MOVE_MODE_ALLOW_SRC_HOLES, &more);
		done += more;
	}
	if (r && done < len) {
		/* Copy what is left, page by page; a staging hole reads as zeros. */
		for (size_t off = done; off < len; off += PG) {
			struct page_region reg;
			uintptr_t we;

			if (uhmm__pagemap_scan(mm->pagemap_fd, stage + off, stage + off + PG, &reg, 1,
					       0, 0, PAGE_IS_PRESENT | PAGE_IS_SWAPPED,
					       PAGE_IS_PRESENT, &we) > 0)
				memcpy(st + off, (void *)(stage + off), PG);
			else
				uhmm__sys_madvise(st + off, PG, MADV_DONTNEED);
		}
	}
	uhmm__dpage_mark(pg, pfn, len >> UHMM__PAGE_SHIFT, true);
	return 0;
}

int uhmm__move_to_storage(struct uhmm_migrate *m, struct uhmm_pagemap *pg, unsigned long i,
			  unsigned long j, bool back)
{
	struct mig *g = M(m);

	while (i < j) {
		uint64_t pfn = side_pfn(g, i, back);
		char *st = uhmm__dpage_storage(pg, pfn);
		unsigned long e = i + 1;

		if (!st)
			return -EINVAL;
		while (e < j && side_pfn(g, e, back) == pfn + (e - i) &&
		       uhmm__pfn_index(pfn + (e - i)) % UHMM__SECTION_PAGES != 0)
			e++;
		fill_storage(m, pg, pfn, st, mig_stage(g, i), (e - i) << UHMM__PAGE_SHIFT);
		for (unsigned long k = i; k < e; k++)
			g->pg[k].where = back ? W_SRC : W_DST;
		i = e;
	}
	return 0;
}

int uhmm__move_from_storage(struct uhmm_migrate *m, struct uhmm_pagemap *pg, unsigned long i,
			    unsigned long j)
{
	struct mig *g = M(m);
	struct uhmm_mm *mm = m->mm;

	while (i < j) {
		uint64_t pfn = g->pg[i].src_pfn;
		char *st = uhmm__dpage_storage(pg, pfn);
		unsigned long e = i + 1;
		size_t len, off = 0;
		bool copied = false;
		int dropped = 0;

		if (!st)
			return -EINVAL;
		while (e < j && g->pg[e].src_pfn == pfn + (e - i) &&
		       uhmm__pfn_index(pfn + (e - i)) % UHMM__SECTION_PAGES != 0)
			e++;
		len = (e - i) << UHMM__PAGE_SHIFT;
		while (off < len) {
			size_t done = 0;
			int r = uhmm__uffd_move(mm->uffd, mig_stage(g, i) + off, (uintptr_t)st + off,
						len - off, UFFDIO_MOVE_MODE_ALLOW_SRC_HOLES, &done);

			off += done;
			if (!r)
				break;
			if (r == -EAGAIN) {
				if (!done)
					uhmm__events_pump(mm, false, g->in_signal);
				continue;
			}
			if (r == -EEXIST && !dropped++) {
				/* Staging not empty there (never expected): ours, drop it. */
				uhmm__assert_expensive(!"staging was not empty");
				uhmm__zap_staging(mm, mig_stage(g, i) + off, PG);
				continue;
			}
			/* Would not move (shared, pinned): copy this page instead. */
			if (uhmm__storage_backed(pg, pfn + (off >> UHMM__PAGE_SHIFT))) {
				int c;

				do
					c = uhmm__uffd_copy(mm->uffd, mig_stage(g, i) + off,
							    st + off, PG, 0, NULL);
				while (c == -EAGAIN &&
				       (uhmm__events_pump(mm, false, g->in_signal), true));
				if (c && c != -EEXIST)
					return c;
				copied = true; /* the storage keeps its copy */
			}
			off += PG;
		}
		if (!copied)
			uhmm__dpage_mark(pg, pfn, e - i, false); /* moved out: empty */
		for (unsigned long k = i; k < e; k++)
			g->pg[k].where = W_STAGED;
		i = e;
	}
	return 0;
}
