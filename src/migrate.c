/* SPDX-License-Identifier: MIT */
/*
 * migrate.c - moving pages between system memory and device memory:
 * uhmm_migrate_setup / _pages / _finalize, the kernel's migrate_vma_*.
 *
 * Isolation. The kernel replaces a migrating page's PTE with a migration
 * entry, so any CPU access waits. uhmm does the same with userfaultfd:
 * setup marks each selected page MIGRATING in its page state and moves its
 * data out of the CPU page table into a staging area (UFFDIO_MOVE: no copy;
 * a whole THP moves as one PMD when the staging area is aligned like the
 * range). The PTE is then empty: a CPU access faults into uhmm, which sees
 * MIGRATING and waits (signal mode: the faulting thread sleeps on a futex;
 * thread mode: the fault is left pending and finalize wakes it).
 *
 * Staging. One anonymous mapping per migration, registered with the mm's
 * userfaultfd (a MOVE destination must be), 2 MiB-congruent with the range.
 * For a migration to system memory it is where the device's data lands
 * (uhmm_migrate_sys_pfn) before finalize moves it into place.
 *
 * Identity. Pages are tracked by their page-state word, not their address:
 * if the range is mremap'ed during the migration, the states move with it
 * and finalize puts the data at the new address; if it is unmapped, its
 * data is dropped, as the program asked.
 *
 * Failure. Whatever did not migrate is put back where it was with its data;
 * a page that cannot be isolated (shared copy-on-write with a fork child)
 * is simply not selected, as the kernel leaves pinned pages.
 *
 * Locks: mm->lock for page states and descriptors' reverse maps; it is never
 * held across a device callback or an ioctl that could wait for a service
 * thread.
 */
#include <errno.h>
#include <limits.h>
#include <linux/futex.h>
#include <sched.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/syscall.h>
#include <unistd.h>

#include "internal.h"

/* What each page of a migration is. */
enum {
	SEL_NONE = 0,
	SEL_SYS,	/* a system page selected (data in staging, or none) */
	SEL_DEV,	/* a device page selected */
};

struct mig {
	bool staging_dirty;	/* a copy path may have left data in staging */
	char *staging;		/* npages pages, or NULL */
	size_t staging_len;
	char *staging_map;	/* what to unmap */
	size_t staging_map_len;
	uint64_t **ps;		/* per page: its state word, NULL if not selected */
	uint8_t *sel;		/* per page: SEL_* */
	struct uhmm_pagemap **src_pg; /* SEL_DEV: the pagemap holding it */
	struct uhmm_pagemap *dst_pg;  /* where dst device pages come from */
	struct uhmm__psblock *blks[8]; /* block references held */
	unsigned int nblks;
	bool writable;
	bool committed;
};

static inline struct mig *M(struct uhmm_migrate *m)
{
	return m->priv_;
}

/* --- waiting ------------------------------------------------------------- */

void uhmm__migration_wait(struct uhmm_mm *mm, unsigned int seq)
{
	struct timespec ts = { .tv_sec = 0, .tv_nsec = 50 * 1000 * 1000 };

	/* Bounded sleeps: a lost wake-up costs 50 ms, never a hang. */
	if (atomic_load(&mm->mig_seq) == seq)
		syscall(SYS_futex, &mm->mig_seq, FUTEX_WAIT_PRIVATE, seq, &ts, NULL, 0);
}

static void migration_wake(struct uhmm_mm *mm)
{
	atomic_fetch_add(&mm->mig_seq, 1);
	syscall(SYS_futex, &mm->mig_seq, FUTEX_WAKE_PRIVATE, INT_MAX, NULL, NULL, 0);
}

/* --- reverse map ---------------------------------------------------------- */

uintptr_t uhmm__ps_to_addr(struct uhmm_mm *mm, const uint64_t *ps)
{
	for (size_t i = 0; i < mm->areas.n; i++) {
		const struct uhmm__area *a = &mm->areas.v[i];
		const uint64_t *first = &a->blk->ps[a->blk_off];
		size_t n = (a->end - a->start) >> UHMM__PAGE_SHIFT;

		if (ps >= first && ps < first + n)
			return a->start + ((uintptr_t)(ps - first) << UHMM__PAGE_SHIFT);
	}
	return 0;
}

static void hold_block(struct mig *g, struct uhmm__psblock *b)
{
	for (unsigned int i = 0; i < g->nblks; i++)
		if (g->blks[i] == b)
			return;
	if (g->nblks < 8) {
		b->refs++;
		g->blks[g->nblks++] = b;
	}
}

/* --- staging ------------------------------------------------------------- */

/*
 * The whole mapping is registered once; a migration uses the part of it
 * congruent with its range modulo 2 MiB, so one mapping of len + 2 MiB
 * serves any range of up to len. The last one is kept for the next
 * migration (a migration per CPU fault would otherwise pay four syscalls).
 */
static int staging_map(struct uhmm_mm *mm, size_t maplen, char **out)
{
	void *raw;
	int r;

	if (uhmm__inject_fail())
		return -ENOMEM;
	r = uhmm__sys_mmap(&raw, NULL, maplen, PROT_READ | PROT_WRITE,
			   MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE, -1, 0);
	if (r)
		return r;
	uhmm__sys_madvise(raw, maplen, MADV_HUGEPAGE);
	r = uhmm__uffd_register(mm->uffd, (uintptr_t)raw, maplen, UFFDIO_REGISTER_MODE_MISSING, NULL);
	if (r) {
		uhmm__sys_munmap(raw, maplen);
		return r;
	}
	*out = raw;
	return 0;
}

static void staging_unmap(struct uhmm_mm *mm, char *map, size_t maplen)
{
	/* Unregister first: unmapping a registered range raises an event. */
	uhmm__uffd_unregister(mm->uffd, (uintptr_t)map, maplen);
	uhmm__sys_munmap(map, maplen);
}

void uhmm__staging_cache_drop(struct uhmm_mm *mm)
{
	if (mm->staging_cache)
		staging_unmap(mm, mm->staging_cache, mm->staging_cache_len);
	mm->staging_cache = NULL;
}

static int staging_new(struct uhmm_mm *mm, struct mig *g, uintptr_t start, size_t len)
{
	size_t maplen = len + UHMM__PMD_SIZE;
	char *raw = NULL;
	uintptr_t a;
	int r = 0;

	pthread_mutex_lock(&mm->staging_lock);
	if (mm->staging_cache && mm->staging_cache_len >= maplen) {
		raw = mm->staging_cache;
		maplen = mm->staging_cache_len;
		mm->staging_cache = NULL;
	}
	pthread_mutex_unlock(&mm->staging_lock);
	if (!raw && (r = staging_map(mm, maplen, &raw)))
		return r;
	/* Congruent with start modulo 2 MiB, so that THPs can move whole. */
	a = ((uintptr_t)raw & ~(UHMM__PMD_SIZE - 1)) + (start & (UHMM__PMD_SIZE - 1));
	if (a < (uintptr_t)raw)
		a += UHMM__PMD_SIZE;
	g->staging = (char *)a;
	g->staging_len = len;
	g->staging_map = raw;
	g->staging_map_len = maplen;
	return 0;
}

static void staging_free(struct uhmm_mm *mm, struct mig *g)
{
	char *old = NULL;
	size_t oldlen = 0;

	if (!g->staging)
		return;
	if (g->staging_dirty) {
		/* Pages left behind by a copy path: empty them before reuse. */
		uhmm__zap_private(mm, (uintptr_t)g->staging, g->staging_len);
	}
	pthread_mutex_lock(&mm->staging_lock);
	if (!mm->staging_cache || mm->staging_cache_len < g->staging_map_len) {
		old = mm->staging_cache;
		oldlen = mm->staging_cache_len;
		mm->staging_cache = g->staging_map;
		mm->staging_cache_len = g->staging_map_len;
	} else {
		old = g->staging_map;
		oldlen = g->staging_map_len;
	}
	pthread_mutex_unlock(&mm->staging_lock);
	if (old)
		staging_unmap(mm, old, oldlen);
	g->staging = NULL;
}

static char *stage(struct uhmm_migrate *m, unsigned long i)
{
	return M(m)->staging + (i << UHMM__PAGE_SHIFT);
}

/* What each page holds: HAS_NONE, HAS_DATA, or the shared zero page. */
enum { HAS_NONE = 0, HAS_DATA = 1, HAS_ZERO = 2 };

struct present_arg {
	uint8_t *has;
	uintptr_t base;
};

static int present_cb(void *p, const struct page_region *r)
{
	struct present_arg *a = p;

	memset(a->has + ((r->start - a->base) >> UHMM__PAGE_SHIFT),
	       (r->categories & PAGE_IS_PFNZERO) ? HAS_ZERO : HAS_DATA,
	       (r->end - r->start) >> UHMM__PAGE_SHIFT);
	return 0;
}

static int present_map(struct uhmm_mm *mm, uintptr_t s, size_t n, uint8_t *has)
{
	struct present_arg a = { .has = has, .base = s };

	memset(has, 0, n);
	return uhmm__pagemap_walk(mm->pagemap_fd, s, s + (n << UHMM__PAGE_SHIFT), PAGE_IS_PRESENT,
				  PAGE_IS_PRESENT | PAGE_IS_PFNZERO, present_cb, &a);
}

/*
 * Move [src, src+len) to [dst, dst+len), skipping holes; pages that cannot
 * move (shared copy-on-write, or the mm changing under us) are marked in
 * @failed (one byte per page of the run) instead of stopping the move.
 */
static void move_run(struct uhmm_mm *mm, uintptr_t dst, uintptr_t src, size_t len,
		     uint8_t *failed)
{
	size_t off = 0;
	int stalls = 0;

	while (off < len) {
		size_t done = 0;
		int r = uhmm__uffd_move(mm->uffd, dst + off, src + off, len - off,
					UFFDIO_MOVE_MODE_ALLOW_SRC_HOLES, &done);

		if (!r)
			return;
		off += done;
		if (off >= len)
			return;
		if (r == -EAGAIN && done)
			continue; /* partial progress */
		if (r == -EAGAIN && ++stalls < 1000) {
			uhmm__eagain_wait(mm); /* an event is being announced */
			continue;
		}
		failed[off >> UHMM__PAGE_SHIFT] = 1;
		off += UHMM__PAGE_SIZE;
	}
}

/* --- setup ---------------------------------------------------------------- */

static int check_vma(struct uhmm_mm *mm, struct uhmm_migrate *m, struct uhmm__vma *vma)
{
	int r = uhmm__vma_query(mm->maps_fd, m->start, false, vma);

	if (r == -ENOENT)
		return -EINVAL;
	if (r)
		return r;
	if (vma->end < m->end || !vma->read)
		return -EINVAL; /* not inside one mapping, or no read permission */
	return 0;
}

/*
 * Manage the range on first use. Only the range: anonymous mappings merge
 * with their neighbours (an allocator's own regions among them), and
 * registering a neighbour would route its munmaps through uhmm's events.
 */
int uhmm__manage_first_use(struct uhmm_mm *mm, uintptr_t start, uintptr_t end)
{
	int r;

	if (uhmm_is_managed(mm, (void *)start, end - start))
		return 0;
	pthread_mutex_lock(&mm->event_lock);
	r = uhmm__manage_locked(mm, start, end, 0);
	pthread_mutex_unlock(&mm->event_lock);
	return r == -EEXIST ? 0 : r; /* managed with other flags: selection decides */
}

static void mig_free(struct uhmm_mm *mm, struct mig *g)
{
	staging_free(mm, g);
	pthread_mutex_lock(&mm->lock);
	for (unsigned int i = 0; i < g->nblks; i++)
		uhmm__psblock_put(g->blks[i]);
	pthread_mutex_unlock(&mm->lock);
	uhmm__free(g->ps);
	uhmm__free(g->sel);
	uhmm__free(g->src_pg);
	uhmm__free(g);
}

/* Mark the selected pages MIGRATING and fill src for device pages. */
static unsigned long select_pages(struct uhmm_mm *mm, struct uhmm_migrate *m, struct mig *g)
{
	unsigned long n = 0;

	pthread_mutex_lock(&mm->lock);
	for (unsigned long i = 0; i < m->npages; i++) {
		uintptr_t addr = m->start + (i << UHMM__PAGE_SHIFT);
		struct uhmm__area *a = uhmm__area_find(&mm->areas, addr);
		uint64_t *ps, v;

		if (!a || !a->registered || a->kind != UHMM_AREA_ANON ||
		    (a->flags & UHMM_MANAGE_MIRROR_ONLY))
			continue;
		ps = uhmm__area_ps(a, addr);
		v = *ps;
		if (v & (UHMM__PS_MIGRATING | UHMM__PS_EXCLUSIVE))
			continue;
		if ((v & UHMM__PS_RES_MASK) == UHMM__PS_RES_CPU &&
		    (m->flags & UHMM_MIGRATE_SELECT_SYSTEM)) {
			g->sel[i] = SEL_SYS;
		} else if ((v & UHMM__PS_RES_MASK) == UHMM__PS_RES_DEVICE &&
			   (m->flags & UHMM_MIGRATE_SELECT_DEVICE_PRIVATE) &&
			   uhmm__pagemap_owner(mm, uhmm__ps_slot(v)) == m->pgmap_owner) {
			g->sel[i] = SEL_DEV;
			g->src_pg[i] = mm->pagemaps[uhmm__ps_slot(v)];
			m->src[i] = ((unsigned long)uhmm__ps_index(v) << UHMM_MIGRATE_PFN_SHIFT) |
				    UHMM_MIGRATE_PFN_VALID | UHMM_MIGRATE_PFN_MIGRATE |
				    UHMM_MIGRATE_PFN_DEVICE |
				    (a->writable ? UHMM_MIGRATE_PFN_WRITE : 0);
		} else {
			continue;
		}
		*ps = v | UHMM__PS_MIGRATING;
		g->ps[i] = ps;
		hold_block(g, a->blk);
		n++;
	}
	pthread_mutex_unlock(&mm->lock);
	return n;
}

/* Unselect page i (it could not be isolated): it stays where it is. */
static void unselect(struct uhmm_mm *mm, struct uhmm_migrate *m, unsigned long i)
{
	struct mig *g = M(m);

	pthread_mutex_lock(&mm->lock);
	*g->ps[i] &= ~UHMM__PS_MIGRATING;
	pthread_mutex_unlock(&mm->lock);
	g->ps[i] = NULL;
	g->sel[i] = SEL_NONE;
	m->src[i] = 0;
	m->cpages--;
}

/* Move the selected system pages' data into staging (isolation). */
static int isolate_system(struct uhmm_mm *mm, struct uhmm_migrate *m, const struct uhmm__vma *vma)
{
	struct mig *g = M(m);
	uint8_t *failed = uhmm__calloc(m->npages, 1), *has = uhmm__malloc(m->npages);

	if (!failed || !has) {
		uhmm__free(failed);
		uhmm__free(has);
		return -ENOMEM;
	}
	for (unsigned long i = 0; i < m->npages;) {
		unsigned long j = i;

		if (g->sel[i] != SEL_SYS) {
			i++;
			continue;
		}
		while (j < m->npages && g->sel[j] == SEL_SYS)
			j++;
		if (vma->write) {
			move_run(mm, (uintptr_t)stage(m, i), m->start + (i << UHMM__PAGE_SHIFT),
				 (j - i) << UHMM__PAGE_SHIFT, failed + i);
		} else {
			/* UFFDIO_MOVE takes only writable mappings: copy, then drop. */
			memset(failed + i, 1, j - i);
		}
		i = j;
	}
	/* Pages that would not move: read-only mappings copy (no write can race). */
	if (present_map(mm, m->start, m->npages, has) == 0) {
		for (unsigned long i = 0; i < m->npages; i++) {
			uintptr_t addr = m->start + (i << UHMM__PAGE_SHIFT);

			if (g->sel[i] != SEL_SYS || !failed[i])
				continue;
			if (has[i] == HAS_NONE) {
				failed[i] = 0; /* nothing there */
				continue;
			}
			if (has[i] == HAS_ZERO && !vma->write) {
				/* The zero page of a read-only mapping: nothing to keep, and
				 * nothing can write it meanwhile: drop it from the CPU. */
				uhmm__zap_quiet(mm, addr, UHMM__PAGE_SIZE);
				failed[i] = 0;
				continue;
			}
			if (has[i] == HAS_DATA && !vma->write) {
				g->staging_dirty = true; /* staging may keep a copy */
				if (uhmm__uffd_copy(mm->uffd, (uintptr_t)stage(m, i), (void *)addr,
						    UHMM__PAGE_SIZE, 0, NULL) == 0) {
					uhmm__zap_quiet(mm, addr, UHMM__PAGE_SIZE);
					failed[i] = 0;
					continue;
				}
			}
			unselect(mm, m, i); /* shared copy-on-write: left in place */
		}
	}
	/* src: VALID where staging now holds data. */
	if (present_map(mm, (uintptr_t)g->staging, m->npages, has) == 0) {
		for (unsigned long i = 0; i < m->npages; i++) {
			if (g->sel[i] != SEL_SYS)
				continue;
			m->src[i] = UHMM_MIGRATE_PFN_MIGRATE;
			if (has[i] == HAS_DATA)
				m->src[i] |= UHMM_MIGRATE_PFN_VALID |
					     (((uintptr_t)stage(m, i) >> UHMM__PAGE_SHIFT)
					      << UHMM_MIGRATE_PFN_SHIFT) |
					     (vma->write ? UHMM_MIGRATE_PFN_WRITE : 0);
		}
	}
	/* 2 MiB-aligned fully selected runs: mark COMPOUND when asked for. */
	if (m->flags & UHMM_MIGRATE_SELECT_COMPOUND) {
		for (unsigned long i = 0; i + 512 <= m->npages; i++) {
			uintptr_t addr = m->start + (i << UHMM__PAGE_SHIFT);
			bool all = !(addr & (UHMM__PMD_SIZE - 1));

			for (unsigned long k = i; all && k < i + 512; k++)
				all = g->sel[k] == SEL_SYS;
			if (all) {
				m->src[i] |= UHMM_MIGRATE_PFN_COMPOUND;
				i += 511;
			}
		}
	}
	uhmm__free(failed);
	uhmm__free(has);
	return 0;
}

UHMM__EXPORT int uhmm_migrate_setup(struct uhmm_migrate *m)
{
	struct uhmm_mm *mm;
	struct uhmm__vma vma;
	struct mig *g;
	int r;

	if (!m || !m->mm || !m->src || !m->dst)
		return -EINVAL;
	if (uhmm__check_range(m->start, m->end - m->start) || m->end <= m->start)
		return -EINVAL;
	if (!(m->flags & (UHMM_MIGRATE_SELECT_SYSTEM | UHMM_MIGRATE_SELECT_DEVICE_PRIVATE |
			  UHMM_MIGRATE_SELECT_DEVICE_COHERENT)))
		return -EINVAL;
	mm = m->mm;
	m->priv_ = NULL;
	m->npages = (m->end - m->start) >> UHMM__PAGE_SHIFT;
	m->cpages = 0;
	memset(m->src, 0, m->npages * sizeof(*m->src));
	memset(m->dst, 0, m->npages * sizeof(*m->dst));
	r = check_vma(mm, m, &vma);
	if (r)
		return r;
	g = uhmm__calloc(1, sizeof(*g));
	if (!g)
		return -ENOMEM;
	g->writable = vma.write;
	g->ps = uhmm__calloc(m->npages, sizeof(*g->ps));
	g->sel = uhmm__calloc(m->npages, 1);
	g->src_pg = uhmm__calloc(m->npages, sizeof(*g->src_pg));
	if (!g->ps || !g->sel || !g->src_pg) {
		r = -ENOMEM;
		goto out_free;
	}
	m->priv_ = g;
	/* Shared, file-backed and hugetlb memory is never selected (the kernel's rule). */
	if (vma.file || vma.shared || vma.page_size > UHMM__PAGE_SIZE || vma.special)
		return 0;
	r = uhmm__manage_first_use(mm, m->start, m->end);
	if (r)
		goto out_free;
	r = staging_new(mm, g, m->start, m->end - m->start);
	if (r)
		goto out_free;
	m->cpages = select_pages(mm, m, g);
	if (!m->cpages)
		return 0;
	/* Devices drop their mappings before the pages move. */
	uhmm__invalidate(mm, m->start, m->end, UHMM_NOTIFY_MIGRATE, m->pgmap_owner);
	r = isolate_system(mm, m, &vma);
	if (r) {
		/* Put back what moved and release the selection. */
		uhmm_migrate_finalize(m);
		return r;
	}
	return 0;

out_free:
	mig_free(mm, g);
	m->priv_ = NULL;
	m->cpages = 0;
	return r;
}

UHMM__EXPORT unsigned long uhmm_migrate_sys_pfn(struct uhmm_migrate *m, unsigned long i)
{
	if (!m || !M(m) || i >= m->npages || !(m->src[i] & UHMM_MIGRATE_PFN_MIGRATE) ||
	    !M(m)->staging)
		return 0;
	return (((uintptr_t)stage(m, i) >> UHMM__PAGE_SHIFT) << UHMM_MIGRATE_PFN_SHIFT) |
	       UHMM_MIGRATE_PFN_VALID | (m->src[i] & UHMM_MIGRATE_PFN_WRITE);
}

/* --- copying ---------------------------------------------------------------- */

/* Contiguous run of entries [i, j) with the same direction and consecutive
 * frames on both sides, so one move (or one batch) covers it. */
static unsigned long run_end(struct uhmm_migrate *m, unsigned long i, bool to_dev)
{
	unsigned long j = i + 1;

	while (j < m->npages && (m->src[j] & UHMM_MIGRATE_PFN_MIGRATE) &&
	       (m->dst[j] & UHMM_MIGRATE_PFN_VALID) &&
	       !!(m->dst[j] & UHMM_MIGRATE_PFN_DEVICE) == to_dev &&
	       !!(m->src[j] & UHMM_MIGRATE_PFN_VALID) == !!(m->src[i] & UHMM_MIGRATE_PFN_VALID) &&
	       uhmm_migrate_pfn_frame(m->dst[j]) == uhmm_migrate_pfn_frame(m->dst[i]) + (j - i) &&
	       uhmm_migrate_pfn_frame(m->src[j]) == uhmm_migrate_pfn_frame(m->src[i]) + (j - i) &&
	       (M(m)->sel[j] != SEL_DEV || M(m)->src_pg[j] == M(m)->src_pg[i]) &&
	       uhmm_migrate_pfn_frame(m->dst[j]) % UHMM__SECTION_PAGES != 0)
		j++;
	return j;
}

/* Entries [i, j) will not migrate: release device pages allocated for them. */
static void clear_dst(struct uhmm_migrate *m, struct uhmm_pagemap *pg, unsigned long i,
		      unsigned long j)
{
	for (unsigned long k = i; k < j; k++) {
		if (pg && (m->dst[k] & UHMM_MIGRATE_PFN_DEVICE))
			uhmm_page_put(pg, uhmm_migrate_pfn_frame(m->dst[k]));
		m->dst[k] = 0;
	}
}

/* System (staging) -> device pages [i, j) of pg. */
static int copy_to_dev(struct uhmm_migrate *m, struct uhmm_pagemap *pg, unsigned long i,
		       unsigned long j)
{
	uint64_t d0 = uhmm_migrate_pfn_frame(m->dst[i]);
	size_t n = j - i;
	int r = 0;

	if (!(m->src[i] & UHMM_MIGRATE_PFN_VALID))
		return 0; /* no source: the device page was scrubbed */
	if (pg->cfg.host_storage) {
		char *st = uhmm__dpage_storage(pg, d0);
		size_t done = 0;

		if (!st)
			return -EINVAL;
		r = uhmm__uffd_move(m->mm->uffd, (uintptr_t)st, (uintptr_t)stage(m, i),
				    n << UHMM__PAGE_SHIFT, UFFDIO_MOVE_MODE_ALLOW_SRC_HOLES, &done);
		if (r == -EEXIST || (r && done < (n << UHMM__PAGE_SHIFT))) {
			/* Storage not empty (never, when scrubbed): copy instead. */
			memcpy(st + done, stage(m, i) + done, (n << UHMM__PAGE_SHIFT) - done);
			M(m)->staging_dirty = true;
			r = 0;
		}
		uhmm__dpage_mark(pg, d0, n, true); /* the storage holds data now */
		return r;
	}
	M(m)->staging_dirty = true; /* the device copied; staging keeps its copy */
	{
		const void **src = uhmm__malloc(n * sizeof(*src));
		uint64_t *dst = uhmm__malloc(n * sizeof(*dst));

		if (!src || !dst) {
			uhmm__free(src);
			uhmm__free(dst);
			return -ENOMEM;
		}
		for (size_t k = 0; k < n; k++) {
			src[k] = stage(m, i + k);
			dst[k] = d0 + k;
		}
		r = pg->cfg.ops->copy_to_device(pg, dst, src, n);
		uhmm__free(src);
		uhmm__free(dst);
	}
	return r;
}

/* Device pages [i, j) -> system (staging). */
static int copy_from_dev(struct uhmm_migrate *m, unsigned long i, unsigned long j)
{
	struct uhmm_pagemap *pg = M(m)->src_pg[i];
	uint64_t s0 = uhmm_migrate_pfn_frame(m->src[i]);
	char *dst0 = (char *)(uhmm_migrate_pfn_frame(m->dst[i]) << UHMM__PAGE_SHIFT);
	size_t n = j - i;
	int r;

	if (pg->cfg.host_storage) {
		char *st = uhmm__dpage_storage(pg, s0);
		size_t done = 0, off = 0;

		if (!st)
			return -EINVAL;
		/* Empty storage pages are holes: they read as zeros at home too. */
		do {
			r = uhmm__uffd_move(m->mm->uffd, (uintptr_t)dst0 + done, (uintptr_t)st + done,
					    (n << UHMM__PAGE_SHIFT) - done,
					    UFFDIO_MOVE_MODE_ALLOW_SRC_HOLES, &off);
			done += off;
		} while (r == -EAGAIN && done < (n << UHMM__PAGE_SHIFT) &&
			 (uhmm__eagain_wait(m->mm), true));
		if (!r || done >= (n << UHMM__PAGE_SHIFT))
			uhmm__dpage_mark(pg, s0, n, false); /* moved out whole: empty */
		if (r && done < (n << UHMM__PAGE_SHIFT)) {
			/* A page that would not move (e.g. a zero page): copy the rest. */
			for (size_t o = done & ~(UHMM__PAGE_SIZE - 1); o < (n << UHMM__PAGE_SHIFT);
			     o += UHMM__PAGE_SIZE) {
				int c;

				do
					c = uhmm__uffd_copy(m->mm->uffd, (uintptr_t)dst0 + o, st + o,
							    UHMM__PAGE_SIZE, 0, NULL);
				while (c == -EAGAIN && (uhmm__eagain_wait(m->mm), true));
			}
			r = 0;
		}
		return r;
	}
	{
		void **dst = uhmm__malloc(n * sizeof(*dst));
		uint64_t *src = uhmm__malloc(n * sizeof(*src));

		if (!dst || !src) {
			uhmm__free(dst);
			uhmm__free(src);
			return -ENOMEM;
		}
		/*
		 * Staging pages may be missing; a device writing into them
		 * would fault. Fill them first (zero pages are replaced by the
		 * write's COW inside the kernel, not a uhmm fault).
		 */
		uhmm__uffd_zeropage(m->mm->uffd, (uintptr_t)dst0, n << UHMM__PAGE_SHIFT, 0, NULL);
		for (size_t k = 0; k < n; k++) {
			dst[k] = dst0 + (k << UHMM__PAGE_SHIFT);
			src[k] = s0 + k;
		}
		r = pg->cfg.ops->copy_from_device(pg, dst, src, n);
		uhmm__free(dst);
		uhmm__free(src);
	}
	return r;
}

UHMM__EXPORT int uhmm_migrate_copy(struct uhmm_migrate *m, struct uhmm_pagemap *pgmap)
{
	int first = 0;

	if (!m || !M(m))
		return -EINVAL;
	M(m)->dst_pg = pgmap;
	for (unsigned long i = 0; i < m->npages;) {
		bool to_dev = m->dst[i] & UHMM_MIGRATE_PFN_DEVICE;
		unsigned long j;
		int r;

		if (!(m->src[i] & UHMM_MIGRATE_PFN_MIGRATE) || !(m->dst[i] & UHMM_MIGRATE_PFN_VALID)) {
			i++;
			continue;
		}
		j = run_end(m, i, to_dev);
		if (to_dev)
			r = pgmap && M(m)->sel[i] == SEL_SYS ? copy_to_dev(m, pgmap, i, j) : -EINVAL;
		else
			r = M(m)->sel[i] == SEL_DEV ? copy_from_dev(m, i, j) : -EINVAL;
		if (r) {
			clear_dst(m, to_dev ? pgmap : NULL, i, j); /* those pages will not migrate */
			if (!first)
				first = r;
		}
		i = j;
	}
	return first;
}

UHMM__EXPORT unsigned long uhmm_migrate_alloc_and_copy(struct uhmm_migrate *m,
						       struct uhmm_pagemap *pgmap)
{
	unsigned long given = 0;

	if (!m || !M(m) || !pgmap)
		return 0;
	for (unsigned long i = 0; i < m->npages; i++) {
		uint64_t page;

		if (!(m->src[i] & UHMM_MIGRATE_PFN_MIGRATE) || M(m)->sel[i] != SEL_SYS)
			continue;
		/* A whole 2 MiB run: one contiguous section, so it can move as a PMD. */
		if ((m->src[i] & UHMM_MIGRATE_PFN_COMPOUND) && i + 512 <= m->npages &&
		    uhmm__pagemap_alloc(pgmap, UHMM__SECTION_PAGES, &page) == 0) {
			for (unsigned long k = 0; k < 512; k++)
				m->dst[i + k] = uhmm_migrate_pfn_device(page + k) |
						(m->src[i + k] & UHMM_MIGRATE_PFN_WRITE);
			m->dst[i] |= UHMM_MIGRATE_PFN_COMPOUND;
			given += 512;
			i += 511;
			continue;
		}
		/* Fall back to single pages (a failed compound allocation too). */
		if (uhmm__pagemap_alloc(pgmap, 1, &page))
			continue; /* device out of memory: this page stays home */
		m->dst[i] = uhmm_migrate_pfn_device(page) | (m->src[i] & UHMM_MIGRATE_PFN_WRITE);
		given++;
	}
	/* Entries whose copy failed lose their dst (and device page). */
	uhmm_migrate_copy(m, pgmap);
	given = 0;
	for (unsigned long i = 0; i < m->npages; i++)
		given += !!(m->dst[i] & UHMM_MIGRATE_PFN_VALID);
	return given;
}

/* --- commit and finalize ------------------------------------------------ */

UHMM__EXPORT void uhmm_migrate_pages(struct uhmm_migrate *m)
{
	struct mig *g;
	struct uhmm_mm *mm;

	if (!m || !(g = M(m)))
		return;
	mm = m->mm;
	pthread_mutex_lock(&mm->lock);
	for (unsigned long i = 0, compound = 0; i < m->npages; i++) {
		uint64_t *ps = g->ps[i];

		bool in_unit;

		if (m->dst[i] & UHMM_MIGRATE_PFN_COMPOUND)
			compound = 512; /* this entry and the next 511 are one unit */
		in_unit = compound > 0;
		if (compound)
			compound--;
		if (!ps)
			continue;
		if (!(m->dst[i] & UHMM_MIGRATE_PFN_VALID) ||
		    ((m->dst[i] & UHMM_MIGRATE_PFN_DEVICE) && (!g->dst_pg || g->sel[i] != SEL_SYS)) ||
		    (!(m->dst[i] & UHMM_MIGRATE_PFN_DEVICE) && g->sel[i] != SEL_DEV)) {
			m->src[i] &= ~UHMM_MIGRATE_PFN_MIGRATE; /* did not migrate */
			continue;
		}
		if (g->sel[i] == SEL_SYS) {
			uint64_t page = uhmm_migrate_pfn_frame(m->dst[i]);
			struct uhmm__dpage *d = uhmm__dpage(g->dst_pg, page);

			*ps = uhmm__ps_device(g->dst_pg->slot, page) | UHMM__PS_MIGRATING;
			if (in_unit)
				*ps |= UHMM__PS_COMPOUND;
			if (d)
				d->ps = ps;
			g->dst_pg->migrated_to++;
		} else {
			uintptr_t addr = m->start + (i << UHMM__PAGE_SHIFT);

			/* One page of a 2 MiB unit leaving splits the unit (as the kernel splits). */
			if ((*ps & UHMM__PS_COMPOUND) && (addr & (UHMM__PMD_SIZE - 1)) == 0 &&
			    i + 512 <= m->npages) {
				/* the whole unit migrates together: nothing to split */
			} else if (*ps & UHMM__PS_COMPOUND) {
				struct uhmm__area *a = uhmm__area_find(&mm->areas, addr);
				uintptr_t b = addr & ~(UHMM__PMD_SIZE - 1);

				if (a && a->start <= b && b + UHMM__PMD_SIZE <= a->end)
					for (uintptr_t x = b; x < b + UHMM__PMD_SIZE; x += UHMM__PAGE_SIZE)
						*uhmm__area_ps(a, x) &= ~UHMM__PS_COMPOUND;
			}
			*ps = UHMM__PS_RES_CPU | UHMM__PS_MIGRATING; /* data waits in staging */
			g->src_pg[i]->migrated_from++;
		}
	}
	g->committed = true;
	pthread_mutex_unlock(&mm->lock);
}

/*
 * Put staged data of entries [i, j) at their current homes, [addr, addr +
 * (j-i) pages), in one move when it can (a whole THP stays whole).
 * DONTWAKE: a thread waiting on these pages must not run before their
 * states are final (a migration it starts next would find them busy);
 * finalize wakes it after clearing MIGRATING.
 */
static void place_home(struct uhmm_migrate *m, unsigned long i, unsigned long j, uintptr_t addr)
{
	size_t len = (j - i) << UHMM__PAGE_SHIFT, done = 0, off = 0;
	int r;

	/*
	 * -EAGAIN: the mm is changing (an event not yet read) or the move was
	 * partial; both pass. The data is the only copy: never give up on it.
	 */
	for (int tries = 0;; tries++) {
		r = uhmm__uffd_move(m->mm->uffd, addr + off, (uintptr_t)stage(m, i) + off, len - off,
				    UFFDIO_MOVE_MODE_ALLOW_SRC_HOLES | UFFDIO_MOVE_MODE_DONTWAKE,
				    &done);
		off += done;
		if (!r || off >= len)
			return;
		if (r != -EAGAIN || tries > 100000)
			break;
		if (!done)
			uhmm__eagain_wait(m->mm);
	}
	/* Some page would not move (read-only destination): page by page, copying. */
	for (size_t o = off & ~(UHMM__PAGE_SIZE - 1); o < len; o += UHMM__PAGE_SIZE) {
		r = uhmm__uffd_move(m->mm->uffd, addr + o, (uintptr_t)stage(m, i) + o, UHMM__PAGE_SIZE,
				    UFFDIO_MOVE_MODE_ALLOW_SRC_HOLES | UFFDIO_MOVE_MODE_DONTWAKE, NULL);
		if (r && r != -EEXIST) {
			do
				r = uhmm__uffd_copy(m->mm->uffd, addr + o, stage(m, i) + o,
						    UHMM__PAGE_SIZE, UFFDIO_COPY_MODE_DONTWAKE, NULL);
			while (r == -EAGAIN && (uhmm__eagain_wait(m->mm), true));
		}
	}
}

/* Does entry i's staged data go home at finalize? */
static bool goes_home(struct uhmm_migrate *m, unsigned long i, const uint8_t *has)
{
	struct mig *g = M(m);
	bool migrated = (m->src[i] & UHMM_MIGRATE_PFN_MIGRATE) && g->committed &&
			(m->dst[i] & UHMM_MIGRATE_PFN_VALID);

	if (!g->ps[i] || !g->staging || (has && has[i] != HAS_DATA))
		return false;
	return (g->sel[i] == SEL_SYS && !migrated) || (g->sel[i] == SEL_DEV && migrated);
}

UHMM__EXPORT void uhmm_migrate_finalize(struct uhmm_migrate *m)
{
	struct uhmm__put_list puts = { 0 };
	struct uhmm_mm *mm;
	struct mig *g;
	uint8_t *has = NULL;
	uintptr_t *addrs;

	if (!m || !(g = M(m)))
		return;
	mm = m->mm;
	if (g->staging) {
		has = uhmm__malloc(m->npages);
		if (has && present_map(mm, (uintptr_t)g->staging, m->npages, has))
			memset(has, HAS_DATA, m->npages); /* cannot tell: try every page */
	}
	addrs = uhmm__calloc(m->npages, sizeof(*addrs));
	if (!addrs) {
		/* No memory for the batch: place page by page, never under mm->lock. */
		for (unsigned long i = 0; i < m->npages; i++) {
			uintptr_t addr;

			if (!goes_home(m, i, has))
				continue;
			pthread_mutex_lock(&mm->lock);
			addr = uhmm__ps_to_addr(mm, g->ps[i]);
			pthread_mutex_unlock(&mm->lock);
			if (addr)
				place_home(m, i, i + 1, addr);
		}
	}
	/* Where each page lives now (the range may have moved or gone). */
	pthread_mutex_lock(&mm->lock);
	for (unsigned long i = 0; addrs && i < m->npages; i++) {
		uintptr_t expect = m->start + (i << UHMM__PAGE_SHIFT);
		struct uhmm__area *a;

		if (!g->ps[i])
			continue;
		a = uhmm__area_find(&mm->areas, expect);
		addrs[i] = a && uhmm__area_ps(a, expect) == g->ps[i] ? expect
								     : uhmm__ps_to_addr(mm, g->ps[i]);
	}
	pthread_mutex_unlock(&mm->lock);
	/* Data home, in runs contiguous on both sides. */
	for (unsigned long i = 0; addrs && i < m->npages;) {
		unsigned long j = i + 1;

		if (!goes_home(m, i, has) || !addrs[i]) {
			i++;
			continue;
		}
		while (j < m->npages && goes_home(m, j, has) &&
		       addrs[j] == addrs[i] + ((j - i) << UHMM__PAGE_SHIFT))
			j++;
		place_home(m, i, j, addrs[i]);
		i = j;
	}
	pthread_mutex_lock(&mm->lock);
	for (unsigned long i = 0; i < m->npages; i++) {
		bool migrated = (m->src[i] & UHMM_MIGRATE_PFN_MIGRATE) && g->committed &&
				(m->dst[i] & UHMM_MIGRATE_PFN_VALID);
		uint64_t *ps = g->ps[i];
		uintptr_t addr;

		if (!ps)
			continue;
		addr = addrs ? addrs[i] : uhmm__ps_to_addr(mm, ps);
		if (g->sel[i] == SEL_DEV && migrated) {
			/* The device page is left behind: release it. */
			struct uhmm_pagemap *pg = g->src_pg[i];
			uint64_t page = uhmm_migrate_pfn_frame(m->src[i]);
			struct uhmm__dpage *d = uhmm__dpage(pg, page);

			if (d && d->ps == ps)
				d->ps = NULL;
			if (uhmm__put_list_add(&puts, pg, page))
				uhmm_page_put(pg, page); /* cannot grow the list: put now */
		}
		if (g->sel[i] == SEL_SYS && !migrated && (m->dst[i] & UHMM_MIGRATE_PFN_DEVICE) &&
		    g->dst_pg) {
			/* Allocated but not committed: the device page goes back. */
			if (uhmm__put_list_add(&puts, g->dst_pg, uhmm_migrate_pfn_frame(m->dst[i])))
				uhmm_page_put(g->dst_pg, uhmm_migrate_pfn_frame(m->dst[i]));
		}
		if (!addr) {
			/* Unmapped meanwhile: a device page that took the data is freed. */
			if ((*ps & UHMM__PS_RES_MASK) == UHMM__PS_RES_DEVICE) {
				struct uhmm_pagemap *pg = mm->pagemaps[uhmm__ps_slot(*ps)];

				if (pg) {
					struct uhmm__dpage *d = uhmm__dpage(pg, uhmm__ps_index(*ps));

					if (d)
						d->ps = NULL;
					uhmm__put_list_add(&puts, pg, uhmm__ps_index(*ps));
				}
			}
			*ps = 0;
		}
		*ps &= ~UHMM__PS_MIGRATING;
	}
	pthread_mutex_unlock(&mm->lock);
	/* Wake the threads waiting on these pages: the range in one call. */
	uhmm__uffd_wake(mm->uffd, m->start, m->end - m->start);
	for (unsigned long i = 0; addrs && i < m->npages; i++)
		if (addrs[i] && addrs[i] != m->start + (i << UHMM__PAGE_SHIFT))
			uhmm__uffd_wake(mm->uffd, addrs[i], UHMM__PAGE_SIZE); /* moved by mremap */
	uhmm__free(addrs);
	uhmm__free(has);
	migration_wake(mm);
	uhmm__put_list(&puts);
	mig_free(mm, g);
	m->priv_ = NULL;
}

/* --- helpers built on the three steps --------------------------------------- */

int uhmm__put_list_add(struct uhmm__put_list *l, struct uhmm_pagemap *pg, uint64_t page)
{
	if (l->n == l->cap) {
		size_t cap = l->cap ? 2 * l->cap : 16;
		void *v = uhmm__realloc(l->v, cap * sizeof(*l->v));

		if (!v)
			return -ENOMEM;
		l->v = v;
		l->cap = cap;
	}
	l->v[l->n].pg = pg;
	l->v[l->n].page = page;
	l->n++;
	return 0;
}

void uhmm__put_list(struct uhmm__put_list *l)
{
	for (size_t i = 0; i < l->n; i++)
		uhmm_page_put(l->v[i].pg, l->v[i].page);
	uhmm__free(l->v);
	l->v = NULL;
	l->n = l->cap = 0;
}

void uhmm__discard_device_pages(struct uhmm_mm *mm, uintptr_t start, uintptr_t end,
				struct uhmm__put_list *out)
{
	struct uhmm__areas *t = &mm->areas;

	for (size_t i = uhmm__area_lower(t, start); i < t->n && t->v[i].start < end; i++) {
		struct uhmm__area *a = &t->v[i];
		uintptr_t s = a->start > start ? a->start : start;
		uintptr_t e = a->end < end ? a->end : end;

		for (uintptr_t x = s; x < e; x += UHMM__PAGE_SIZE) {
			uint64_t *ps = uhmm__area_ps(a, x);
			struct uhmm_pagemap *pg;

			if (*ps & UHMM__PS_MIGRATING)
				continue; /* the migration owns it; finalize sees it unmapped */
			if ((*ps & UHMM__PS_RES_MASK) != UHMM__PS_RES_DEVICE &&
			    !(*ps & UHMM__PS_EXCLUSIVE))
				continue;
			pg = mm->pagemaps[uhmm__ps_slot(*ps)];
			if (pg) {
				struct uhmm__dpage *d = uhmm__dpage(pg, uhmm__ps_index(*ps));

				if (d)
					d->ps = NULL;
				if (uhmm__put_list_add(out, pg, uhmm__ps_index(*ps)))
					continue; /* keep the state: released with the mm */
			}
			*ps = 0;
		}
	}
}

/* Migrate [start, end) of @owner's pages home. Return pages moved or -errno. */
static long to_ram(struct uhmm_mm *mm, uintptr_t start, uintptr_t end, void *owner,
		   uintptr_t fault_page)
{
	size_t n = (end - start) >> UHMM__PAGE_SHIFT;
	unsigned long *src = uhmm__calloc(n, sizeof(*src)), *dst = uhmm__calloc(n, sizeof(*dst));
	struct uhmm_migrate m = {
		.mm = mm, .start = start, .end = end, .src = src, .dst = dst,
		.pgmap_owner = owner, .flags = UHMM_MIGRATE_SELECT_DEVICE_PRIVATE,
		.fault_page = fault_page,
	};
	long moved = 0;
	int r;

	if (!src || !dst) {
		uhmm__free(src);
		uhmm__free(dst);
		return -ENOMEM;
	}
	r = uhmm_migrate_setup(&m);
	if (r) {
		uhmm__free(src);
		uhmm__free(dst);
		return r;
	}
	for (unsigned long i = 0; i < m.npages; i++)
		if (src[i] & UHMM_MIGRATE_PFN_MIGRATE)
			dst[i] = uhmm_migrate_sys_pfn(&m, i);
	r = uhmm_migrate_copy(&m, NULL);
	uhmm_migrate_pages(&m);
	for (unsigned long i = 0; i < m.npages; i++)
		moved += !!(src[i] & UHMM_MIGRATE_PFN_MIGRATE);
	if (fault_page && moved) {
		/* Counted before finalize wakes the faulting thread (stats race). */
		struct uhmm_pagemap *pg = M(&m)->src_pg[(fault_page - start) >> UHMM__PAGE_SHIFT];

		if (pg) {
			pthread_mutex_lock(&pg->lock);
			pg->faults++;
			pthread_mutex_unlock(&pg->lock);
		}
	}
	uhmm_migrate_finalize(&m);
	uhmm__free(src);
	uhmm__free(dst);
	return r && !moved ? r : moved;
}

UHMM__EXPORT long uhmm_migrate_to_ram(struct uhmm_mm *mm, uintptr_t start, uintptr_t end,
				      void *owner)
{
	long total = 0;

	if (!mm || uhmm__check_range(start, end - start) || end <= start)
		return -EINVAL;
	/* One mapping at a time: setup wants one. */
	while (start < end) {
		struct uhmm__vma vma;
		uintptr_t e;
		long r;

		if (uhmm__vma_query(mm->maps_fd, start, true, &vma))
			break;
		if (vma.start >= end)
			break;
		if (vma.start > start)
			start = vma.start;
		e = vma.end < end ? vma.end : end;
		r = to_ram(mm, start, e, owner, 0);
		if (r < 0)
			return total ? total : r;
		total += r;
		start = e;
	}
	return total;
}

int uhmm__fault_device(struct uhmm_mm *mm, uintptr_t addr, unsigned int slot)
{
	struct uhmm_pagemap *pg;
	void *owner;
	long r;

	/*
	 * Pin the pagemap while it is attached: uhmm_pagemap_free() detaches
	 * it, then waits for its users (the fault may outlive its last page).
	 */
	pthread_mutex_lock(&mm->lock);
	pg = mm->pagemaps[slot];
	owner = pg ? pg->cfg.owner : NULL;
	if (pg) {
		pthread_mutex_lock(&pg->lock);
		pg->users++;
		pthread_mutex_unlock(&pg->lock);
	}
	pthread_mutex_unlock(&mm->lock);
	if (!pg)
		return -EFAULT;
	if (pg->cfg.ops && pg->cfg.ops->migrate_to_ram) {
		/* The device's own path; 0 means done (or held elsewhere: refault). */
		r = pg->cfg.ops->migrate_to_ram(pg, mm, addr);
	} else {
		r = to_ram(mm, addr, addr + UHMM__PAGE_SIZE, owner, addr);
		if (r == 0)
			r = -EAGAIN; /* someone else is migrating it: wait */
		else if (r > 0)
			r = 0;
	}
	pthread_mutex_lock(&pg->lock);
	if (pg->cfg.ops && pg->cfg.ops->migrate_to_ram)
		pg->faults += r == 0; /* the device's own path: counted after */
	pg->users--;
	pthread_cond_broadcast(&pg->cond);
	pthread_mutex_unlock(&pg->lock);
	return (int)r;
}

void uhmm__pagemap_evict(struct uhmm_pagemap *pg, uint64_t first, uint64_t n)
{
	struct uhmm_mm *mm = pg->mm;

	for (uint64_t p = first; p < first + n; p++) {
		uintptr_t addr = 0;
		struct uhmm__dpage *d;

		pthread_mutex_lock(&mm->lock);
		pthread_mutex_lock(&pg->lock);
		d = uhmm__dpage(pg, p);
		if (d && (d->flags & UHMM__DPAGE_ALLOCATED) && d->ps)
			addr = uhmm__ps_to_addr(mm, d->ps);
		pthread_mutex_unlock(&pg->lock);
		pthread_mutex_unlock(&mm->lock);
		if (!addr)
			continue;
		if (pg->cfg.ops && pg->cfg.ops->migrate_to_ram)
			pg->cfg.ops->migrate_to_ram(pg, mm, addr); /* the device's own path */
		else
			to_ram(mm, addr, addr + UHMM__PAGE_SIZE, pg->cfg.owner, 0);
	}
}

void uhmm__mm_bring_home(struct uhmm_mm *mm, uintptr_t start, uintptr_t end)
{
	/* Find one run of device pages of one pagemap at a time, then move it. */
	for (;;) {
		struct uhmm__areas *t;
		uintptr_t rs = 0, re = 0;
		void *owner = NULL;

		pthread_mutex_lock(&mm->lock);
		t = &mm->areas;
		for (size_t i = uhmm__area_lower(t, start); i < t->n && t->v[i].start < end && !re;
		     i++) {
			struct uhmm__area *a = &t->v[i];
			uintptr_t s = a->start > start ? a->start : start;
			uintptr_t e = a->end < end ? a->end : end;
			unsigned int slot = 0;

			for (uintptr_t x = s; x < e; x += UHMM__PAGE_SIZE) {
				uint64_t v = *uhmm__area_ps(a, x);
				bool dev = (v & UHMM__PS_RES_MASK) == UHMM__PS_RES_DEVICE &&
					   !(v & UHMM__PS_MIGRATING);

				if (dev && !rs) {
					rs = x;
					slot = uhmm__ps_slot(v);
					owner = uhmm__pagemap_owner(mm, slot);
				} else if (rs && (!dev || uhmm__ps_slot(v) != slot)) {
					re = x;
					break;
				}
			}
			if (rs && !re)
				re = e;
		}
		pthread_mutex_unlock(&mm->lock);
		if (!rs)
			return;
		if (uhmm_migrate_to_ram(mm, rs, re, owner) <= 0)
			return; /* could not move it (device failure): give up, never spin */
		start = re;
	}
}

UHMM__EXPORT unsigned long uhmm_mm_resident(struct uhmm_mm *mm, uintptr_t start, uintptr_t end,
					    void *owner)
{
	struct uhmm__areas *t;
	unsigned long n = 0;

	if (!mm)
		return 0;
	pthread_mutex_lock(&mm->lock);
	t = &mm->areas;
	for (size_t i = uhmm__area_lower(t, start); i < t->n && t->v[i].start < end; i++) {
		struct uhmm__area *a = &t->v[i];
		uintptr_t s = a->start > start ? a->start : start;
		uintptr_t e = a->end < end ? a->end : end;

		for (uintptr_t x = s; x < e; x += UHMM__PAGE_SIZE) {
			uint64_t v = *uhmm__area_ps(a, x);

			if ((v & UHMM__PS_RES_MASK) == UHMM__PS_RES_DEVICE &&
			    (!owner || uhmm__pagemap_owner(mm, uhmm__ps_slot(v)) == owner))
				n++;
		}
	}
	pthread_mutex_unlock(&mm->lock);
	return n;
}
