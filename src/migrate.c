/* SPDX-License-Identifier: MIT */
/*
 * migrate.c - the three steps of a migration: uhmm_migrate_setup / _pages /
 * _finalize, the kernel's migrate_vma_* (mm/migrate_device.c).
 *
 * Isolation. The kernel replaces a migrating page's PTE with a migration
 * entry, so any CPU access waits. uhmm marks the page MIGRATING (pstate.c)
 * and moves its data out of the CPU page table into a staging area
 * (staging.c); the PTE is then empty, and a CPU access faults into uhmm,
 * which sees MIGRATING and waits (fault.c). Device pages need no moving:
 * MIGRATING alone stops their fault-back.
 *
 * The books are the kernel's. Isolating a page and putting one home move
 * data out of or into the program's memory, so they are done holding
 * event_lock, with UFFDIO_MOVE/COPY issued on the userfaultfd the program's
 * memory is registered with: while any change to the program's mappings is
 * under way (an event not yet read) the kernel refuses those with -EAGAIN,
 * and while uhmm holds event_lock no event can be read and not yet applied.
 * On -EAGAIN the mover reads and applies the pending events itself
 * (uhmm__events_pump), then looks again at where each page is: a page
 * discarded meanwhile is marked DISCARDED and its data dropped, a page
 * moved by mremap is followed by its word (pages are tracked by their
 * page-state word, not their address), a page unmapped is gone. So data
 * never lands in a mapping that replaced the one it came from.
 *
 * Destinations. A dst entry names its device page, which names its
 * pagemap (internal.h: device pfns). The device allocates its pages (or
 * lets uhmm_migrate_alloc_and_copy do it), copies (or lets
 * uhmm_migrate_copy do it) and fills dst; each destination is claimed once
 * it is checked (allocated, holding no data, given once), and a bad one
 * refuses the whole step with -EINVAL before anything moves. finalize
 * releases every claimed destination that did not become the page's home.
 *
 * Failure. finalize puts every page that did not migrate back where it
 * was, with its data, wherever the data was by then (staging, its device
 * page, a destination it was already moved into); a page that cannot be
 * isolated (shared copy-on-write with a fork child) is simply not
 * selected, as the kernel leaves pinned pages.
 *
 * Locks: event_lock around isolation and placement (above); mm->lock for
 * the words (selection, commit, release); never across a device callback.
 */
#include <errno.h>
#include <string.h>
#include <sys/mman.h>

#include "migrate.h"

/* A bounded wait: a lost wake-up (never expected) costs this, not a hang. */
#define WAIT_NS (500L * 1000 * 1000)

/* --- waiting for a migration ---------------------------------------------- */

void uhmm__migration_wait(struct uhmm_mm *mm, unsigned int seq)
{
	if (uhmm__futex_wait((const unsigned int *)&mm->mig_seq, seq, WAIT_NS) == -ETIMEDOUT)
		atomic_fetch_add_explicit(&mm->stats.wait_timeouts, 1, memory_order_relaxed);
}

void uhmm__migration_wake(struct uhmm_mm *mm)
{
	/* Pairs with the load of mig_seq a waiter makes under mm->lock. */
	atomic_fetch_add(&mm->mig_seq, 1);
	uhmm__futex_wake((const unsigned int *)&mm->mig_seq);
}

void uhmm__migrations_settle(struct uhmm_mm *mm, uintptr_t start, uintptr_t end)
{
	for (;;) {
		struct uhmm__ps_iter it;
		struct uhmm__area *a;
		struct uhmm__ps *p;
		uintptr_t addr;
		unsigned int seq;
		bool busy = false;

		uhmm__lock(&mm->lock);
		seq = atomic_load(&mm->mig_seq);
		uhmm__ps_iter_init(&it, mm, start, end);
		while (!busy && uhmm__ps_iter_next(&it, &addr, &a, &p))
			busy = uhmm__ps_busy(uhmm__ps_load(p));
		uhmm__unlock(&mm->lock);
		if (!busy)
			return;
		uhmm__migration_wait(mm, seq);
	}
}

/* --- the migration's own bookkeeping --------------------------------------- */

static struct mig *mig_new(struct uhmm_migrate *m, struct mig *g)
{
	bool heap = !g;

	if (heap) {
		g = uhmm__calloc(1, sizeof(*g));
		if (!g)
			return NULL;
	} else {
		memset(g, 0, sizeof(*g));
		uhmm__assert(m->npages <= MIG_INLINE);
	}
	g->heap = heap;
	g->mm = m->mm;
	g->pg = g->inline_pg;
	g->blks = g->inline_blks;
	g->capblks = MIG_INLINE_BLKS;
	if (m->npages > MIG_INLINE && !(g->pg = uhmm__calloc(m->npages, sizeof(*g->pg)))) {
		uhmm__free(g);
		return NULL;
	}
	return g;
}

static void mig_free(struct uhmm_migrate *m, struct mig *g)
{
	struct uhmm_mm *mm = g->mm;

	uhmm__staging_put(mm, &g->st);
	uhmm__lock(&mm->lock);
	for (size_t i = 0; i < g->nblks; i++)
		uhmm__psblock_put(g->blks[i]);
	uhmm__unlock(&mm->lock);
	if (g->gated)
		uhmm__fork_gate_exit(mm);
	if (g->blks != g->inline_blks)
		uhmm__free(g->blks);
	if (g->pg != g->inline_pg)
		uhmm__free(g->pg);
	if (g->heap)
		uhmm__free(g);
	m->priv_ = NULL;
}

/* Keep @b alive while we point into it. Under mm->lock. */
static bool hold_block(struct mig *g, struct uhmm__psblock *b)
{
	if (g->nblks && g->blks[g->nblks - 1] == b)
		return true; /* the common case: the page before was in it too */
	for (size_t i = 0; i < g->nblks; i++)
		if (g->blks[i] == b)
			return true;
	if (g->nblks == g->capblks) {
		size_t cap = 2 * g->capblks;
		struct uhmm__psblock **v;

		if (g->in_signal)
			return false; /* no heap here: the page is simply not selected */
		v = uhmm__malloc(cap * sizeof(*v));
		if (!v)
			return false;
		memcpy(v, g->blks, g->nblks * sizeof(*v));
		if (g->blks != g->inline_blks)
			uhmm__free(g->blks);
		g->blks = v;
		g->capblks = cap;
	}
	uhmm__psblock_get(b);
	g->blks[g->nblks++] = b;
	return true;
}

/* --- setup --------------------------------------------------------------------- */

static int check_vma(struct uhmm_mm *mm, struct uhmm_migrate *m, struct uhmm__vma *vma)
{
	int r = uhmm__mapping_of(mm, m->start, m->end, vma);

	if (r == -ENOENT)
		return -EINVAL;
	if (r)
		return r; /* -EINVAL: not inside one mapping */
	return vma->read || (m->flags & MIG_ANY_PROT) ? 0 : -EINVAL; /* no read permission */
}

/* What page @p (settled) is selected as under @m's flags, if at all. */
static enum mig_sel select_one(struct uhmm_migrate *m, struct uhmm__ps v)
{
	struct uhmm_mm *mm = m->mm;

	if (uhmm__ps_busy(v))
		return SEL_NONE; /* being migrated already */
	switch (uhmm__ps_res(v)) {
	case UHMM__RES_CPU:
		return m->flags & UHMM_MIGRATE_SELECT_SYSTEM ? SEL_SYS : SEL_NONE;
	case UHMM__RES_DEVICE:
		if ((m->flags & UHMM_MIGRATE_SELECT_DEVICE_PRIVATE) &&
		    uhmm__pagemap_owner(mm, uhmm__pfn_slot(uhmm__ps_pfn(v))) == m->pgmap_owner)
			return SEL_DEV;
		return SEL_NONE;
	case UHMM__RES_EXCLUSIVE:
		return m->flags & MIG_SELECT_EXCLUSIVE ? SEL_DEV : SEL_NONE;
	}
	return SEL_NONE;
}

/* Mark the selected pages MIGRATING; fill src for device pages. */
static unsigned long select_pages(struct uhmm_migrate *m, struct mig *g)
{
	struct uhmm_mm *mm = m->mm;
	struct uhmm__ps_iter it;
	struct uhmm__area *a;
	struct uhmm__ps *p;
	uintptr_t addr;
	unsigned long n = 0;

	uhmm__lock(&mm->lock);
	g->cuts = mm->areas.cuts;
	uhmm__ps_iter_init(&it, mm, m->start, m->end);
	while (uhmm__ps_iter_next(&it, &addr, &a, &p)) {
		unsigned long i = (addr - m->start) >> UHMM__PAGE_SHIFT;
		struct uhmm__ps v = uhmm__ps_load(p);
		enum mig_sel sel;

		if (!a->registered || a->kind != UHMM_AREA_ANON ||
		    (a->flags & UHMM_MANAGE_MIRROR_ONLY))
			continue;
		sel = select_one(m, v);
		if (sel == SEL_NONE || !hold_block(g, a->blk))
			continue;
		uhmm__ps_isolate(mm, p);
		g->pg[i].ps = p;
		g->pg[i].sel = (uint8_t)sel;
		if (sel == SEL_DEV) {
			g->pg[i].src_pfn = uhmm__ps_pfn(v);
			g->pg[i].where = W_SRC;
			m->src[i] = ((unsigned long)g->pg[i].src_pfn << UHMM_MIGRATE_PFN_SHIFT) |
				    UHMM_MIGRATE_PFN_VALID | UHMM_MIGRATE_PFN_MIGRATE |
				    UHMM_MIGRATE_PFN_DEVICE |
				    (g->writable ? UHMM_MIGRATE_PFN_WRITE : 0);
		}
		n++;
	}
	uhmm__unlock(&mm->lock);
	return n;
}

/* src for the system pages: VALID with the staging frame where data was staged. */
struct staged_arg {
	struct uhmm_migrate *m;
	uintptr_t base;
};

static int staged_cb(void *p, const struct page_region *r)
{
	struct staged_arg *a = p;
	struct mig *g = M(a->m);

	if (r->categories & PAGE_IS_PFNZERO)
		return 0; /* the zero page: no data to carry */
	for (uintptr_t x = r->start; x < r->end; x += UHMM__PAGE_SIZE) {
		unsigned long i = (x - a->base) >> UHMM__PAGE_SHIFT;

		if (g->pg[i].sel != SEL_SYS || !g->pg[i].ps)
			continue;
		g->pg[i].where = W_STAGED;
		a->m->src[i] |= UHMM_MIGRATE_PFN_VALID |
				((x >> UHMM__PAGE_SHIFT) << UHMM_MIGRATE_PFN_SHIFT);
	}
	return 0;
}

static void fill_src(struct uhmm_migrate *m, struct mig *g)
{
	struct staged_arg a = { .m = m, .base = (uintptr_t)g->st.base };
	bool compound = m->flags & UHMM_MIGRATE_SELECT_COMPOUND;

	for (unsigned long i = 0; i < m->npages; i++)
		if (g->pg[i].ps && g->pg[i].sel == SEL_SYS)
			m->src[i] = UHMM_MIGRATE_PFN_MIGRATE |
				    (g->writable ? UHMM_MIGRATE_PFN_WRITE : 0);
	uhmm__pagemap_walk(m->mm->pagemap_fd, a.base, a.base + g->st.len,
			   PAGE_IS_PRESENT | PAGE_IS_SWAPPED, PAGE_IS_PRESENT | PAGE_IS_PFNZERO,
			   staged_cb, &a);
	/* 2 MiB-aligned runs of selected system pages: one unit, when asked for. */
	for (unsigned long i = 0; compound && i + UHMM__PMD_PAGES <= m->npages; i++) {
		bool all = !((m->start + (i << UHMM__PAGE_SHIFT)) & (UHMM__PMD_SIZE - 1));

		for (unsigned long k = i; all && k < i + UHMM__PMD_PAGES; k++)
			all = g->pg[k].ps && g->pg[k].sel == SEL_SYS;
		if (all) {
			m->src[i] |= UHMM_MIGRATE_PFN_COMPOUND;
			i += UHMM__PMD_PAGES - 1;
		}
	}
}

/* Isolate the selected system pages: move them out of the CPU page table. */
static void isolate(struct uhmm_migrate *m, struct mig *g)
{
	for (unsigned long i = 0; i < m->npages;) {
		unsigned long j = i;

		if (!g->pg[i].ps || g->pg[i].sel != SEL_SYS) {
			i++;
			continue;
		}
		while (j < m->npages && g->pg[j].ps && g->pg[j].sel == SEL_SYS)
			j++;
		uhmm__move_isolate(m, i, j);
		i = j;
	}
}

/* The originals of read-only pages copied into staging leave the CPU. */
static void zap_copied(struct uhmm_migrate *m, struct mig *g)
{
	for (unsigned long i = 0; i < m->npages;) {
		unsigned long j = i;

		if (!g->pg[i].ro_copy) {
			i++;
			continue;
		}
		while (j < m->npages && g->pg[j].ro_copy)
			j++;
		uhmm__zap_own(m->mm, m->start + (i << UHMM__PAGE_SHIFT), (j - i) << UHMM__PAGE_SHIFT);
		i = j;
	}
}

int uhmm__migrate_setup(struct uhmm_migrate *m, struct mig *g, enum uhmm_notify_event event,
			void *owner, bool in_signal)
{
	struct uhmm_mm *mm;
	struct uhmm__vma vma;
	int r;

	if (!m || !m->mm || !m->src || !m->dst)
		return -EINVAL;
	if (uhmm__check_range(m->start, m->end - m->start) || m->end <= m->start)
		return -EINVAL;
	if (!(m->flags & (UHMM_MIGRATE_SELECT_SYSTEM | UHMM_MIGRATE_SELECT_DEVICE_PRIVATE |
			  UHMM_MIGRATE_SELECT_DEVICE_COHERENT | MIG_SELECT_EXCLUSIVE)))
		return -EINVAL;
	if (m->fault_page && (m->fault_page < m->start || m->fault_page >= m->end))
		return -EINVAL;
	mm = m->mm;
	m->priv_ = NULL;
	m->cpages = 0;
	m->npages = (m->end - m->start) >> UHMM__PAGE_SHIFT;
	/* The range is checked against its mapping before the arrays are touched. */
	r = check_vma(mm, m, &vma);
	if (r)
		return r;
	memset(m->src, 0, m->npages * sizeof(*m->src));
	memset(m->dst, 0, m->npages * sizeof(*m->dst));
	g = mig_new(m, g);
	if (!g)
		return -ENOMEM;
	g->event = event;
	g->owner = owner;
	g->in_signal = in_signal;
	g->writable = vma.write;
	m->priv_ = g;
	/* Shared, file-backed and hugetlb memory is never selected (the kernel's rule). */
	if (vma.file || vma.shared || vma.page_size > UHMM__PAGE_SIZE || vma.special)
		return 0;
	r = !mm->caps.move ? -EOPNOTSUPP : uhmm__manage_first_use(mm, m->start, m->end);
	if (r)
		goto out_free;
	uhmm__fork_gate_enter(mm);
	g->gated = true;
	r = uhmm__staging_get(mm, m->start, m->end - m->start, &g->st);
	if (r)
		goto out_free;
	uhmm__lock(&mm->event_lock);
	m->cpages = select_pages(m, g);
	if (m->cpages) {
		/* Devices drop their mappings before the pages move. */
		uhmm__invalidate(mm, m->start, m->end, event, owner);
		isolate(m, g);
	}
	uhmm__unlock(&mm->event_lock);
	zap_copied(m, g);
	fill_src(m, g);
	return 0;

out_free:
	mig_free(m, g);
	m->cpages = 0;
	return r;
}

UHMM__EXPORT int uhmm_migrate_setup(struct uhmm_migrate *m)
{
	if (m && (m->flags & (MIG_SELECT_EXCLUSIVE | MIG_ANY_PROT)))
		return -EINVAL; /* not public flags */
	return uhmm__migrate_setup(m, NULL, UHMM_NOTIFY_MIGRATE, m ? m->pgmap_owner : NULL, false);
}

UHMM__EXPORT unsigned long uhmm_migrate_sys_pfn(struct uhmm_migrate *m, unsigned long i)
{
	struct mig *g = m ? M(m) : NULL;

	if (!g || i >= m->npages || !(m->src[i] & UHMM_MIGRATE_PFN_MIGRATE) || !g->st.base)
		return 0;
	return ((mig_stage(g, i) >> UHMM__PAGE_SHIFT) << UHMM_MIGRATE_PFN_SHIFT) |
	       UHMM_MIGRATE_PFN_VALID | (m->src[i] & UHMM_MIGRATE_PFN_WRITE);
}

/* --- destinations --------------------------------------------------------------- */

/* The device replaced destination @pfn it gave earlier: it goes back. */
static void release_replaced(struct uhmm_migrate *m, uint64_t pfn)
{
	struct uhmm_pagemap *old;

	uhmm__lock(&m->mm->lock);
	old = uhmm__pagemap_of(m->mm, pfn);
	uhmm__unlock(&m->mm->lock);
	if (old) {
		uhmm__dpage_unclaim(old, pfn);
		uhmm_page_put(old, pfn);
	}
}

/*
 * Claim every destination not claimed yet. Under mm->lock (the page's
 * back-pointer, holding data or not, is read there), and one pagemap lock
 * held across a run of pages of that pagemap.
 */
int uhmm__migrate_claim(struct uhmm_migrate *m)
{
	struct uhmm_mm *mm = m->mm;
	struct uhmm_pagemap *held = NULL;
	struct mig *g = M(m);
	bool locked = false;
	int r = 0;

	for (unsigned long i = 0; i < m->npages; i++) {
		unsigned long d = m->dst[i];
		uint64_t pfn = uhmm_migrate_pfn_frame(d), replaced;
		struct mig_page *mp = &g->pg[i];
		struct uhmm_pagemap *pg;

		if (!mp->ps || !(m->src[i] & UHMM_MIGRATE_PFN_MIGRATE) ||
		    !(d & UHMM_MIGRATE_PFN_VALID))
			continue;
		if (mp->sel != SEL_SYS) {
			/* Home goes through the page uhmm prepared. */
			if ((d & UHMM_MIGRATE_PFN_DEVICE) || pfn != mig_stage(g, i) >> UHMM__PAGE_SHIFT)
				r = -EINVAL;
			continue;
		}
		/* To a device page; system to system is not offered. */
		if (!(d & UHMM_MIGRATE_PFN_DEVICE)) {
			r = -EINVAL;
			continue;
		}
		if (mp->dst_pfn == pfn)
			continue; /* claimed by an earlier step */
		if (!locked) {
			uhmm__lock(&mm->lock); /* only when there is something to claim */
			locked = true;
		}
		pg = uhmm__pagemap_of(mm, pfn);
		/* The exclusive store takes pages only from exclusive.c. */
		if (!pg || (pg == mm->excl_store) != (g->event == UHMM_NOTIFY_EXCLUSIVE)) {
			r = -EINVAL; /* go on: what can be claimed is released later */
			continue;
		}
		if (pg != held) {
			if (held)
				pthread_mutex_unlock(&held->lock);
			held = pg;
			pthread_mutex_lock(&pg->lock);
		}
		if (uhmm__dpage_claim_locked(pg, pfn)) {
			r = -EINVAL; /* free, foreign, holding data, or given twice */
			continue;
		}
		replaced = mp->dst_pfn;
		mp->dst_pfn = pfn;
		if (replaced) {
			pthread_mutex_unlock(&held->lock);
			held = NULL;
			uhmm__unlock(&mm->lock);
			locked = false;
			release_replaced(m, replaced);
		}
	}
	if (held)
		pthread_mutex_unlock(&held->lock);
	if (locked)
		uhmm__unlock(&mm->lock);
	return r;
}

/* --- commit ------------------------------------------------------------------------ */

/*
 * A destination the device filled itself, without uhmm's helpers: where
 * uhmm holds the memory (host storage) it makes sure the data is there.
 */
static void complete_copies(struct uhmm_migrate *m, struct mig *g)
{
	for (unsigned long i = 0; i < m->npages; i++) {
		struct mig_page *mp = &g->pg[i];
		struct uhmm_pagemap *pg;

		if (!mp->ps || !(m->dst[i] & UHMM_MIGRATE_PFN_VALID) ||
		    !(m->src[i] & UHMM_MIGRATE_PFN_MIGRATE) ||
		    !(mp->sel == SEL_SYS ? mp->where == W_STAGED : mp->where == W_SRC))
			continue; /* the data is where it goes already */
		uhmm__lock(&m->mm->lock);
		pg = uhmm__pagemap_of(m->mm, mp->sel == SEL_SYS ? mp->dst_pfn : mp->src_pfn);
		uhmm__unlock(&m->mm->lock);
		if (!pg || !pg->cfg.host_storage)
			continue;
		if (mp->sel == SEL_SYS && mp->where == W_STAGED && !uhmm__storage_backed(pg, mp->dst_pfn))
			uhmm__move_to_storage(m, pg, i, i + 1, false);
		else if (mp->sel == SEL_DEV && mp->where == W_SRC)
			uhmm__move_from_storage(m, pg, i, i + 1);
	}
}

/* Pages committed to and from one pagemap, added to its counters at once. */
struct tally {
	struct uhmm_pagemap *pg;
	uint64_t to, from, faults;
};

static void tally_flush(struct tally *t)
{
	if (!t->pg)
		return;
	pthread_mutex_lock(&t->pg->lock);
	t->pg->migrated_to += t->to;
	t->pg->migrated_from += t->from;
	t->pg->faults += t->faults;
	pthread_mutex_unlock(&t->pg->lock);
	*t = (struct tally){ 0 };
}

/*
 * Count a committed page on its pagemap; the page at fault_page is a CPU
 * fault (counted before finalize wakes the faulting thread).
 */
static void count(struct tally *t, struct uhmm_pagemap *pg, bool to_device, bool fault)
{
	if (t->pg != pg)
		tally_flush(t);
	t->pg = pg;
	t->to += to_device;
	t->from += !to_device;
	t->faults += fault;
}

UHMM__EXPORT int uhmm_migrate_pages(struct uhmm_migrate *m)
{
	struct tally t = { 0 };
	struct uhmm_mm *mm;
	struct mig *g;

	if (!m || !(g = M(m)))
		return -EINVAL;
	mm = m->mm;
	if (g->refused || uhmm__migrate_claim(m)) {
		g->refused = true; /* nothing migrates; finalize releases what was given */
		for (unsigned long i = 0; i < m->npages; i++)
			m->src[i] &= ~UHMM_MIGRATE_PFN_MIGRATE;
		return -EINVAL;
	}
	complete_copies(m, g);
	uhmm__lock(&mm->lock);
	for (unsigned long i = 0; i < m->npages; i++) {
		struct mig_page *mp = &g->pg[i];
		struct uhmm_pagemap *pg;

		if (!mp->ps || !(m->src[i] & UHMM_MIGRATE_PFN_MIGRATE) ||
		    !(m->dst[i] & UHMM_MIGRATE_PFN_VALID) || uhmm__ps_discarded(uhmm__ps_load(mp->ps)))
			continue;
		if (mp->sel == SEL_SYS) {
			pg = uhmm__pagemap_of(mm, mp->dst_pfn);
			if (pg == mm->excl_store)
				uhmm__ps_commit_exclusive(mm, mp->ps, mp->dst_pfn);
			else
				uhmm__ps_commit_device(mm, mp->ps, mp->dst_pfn);
			mp->where = W_DST;
			count(&t, pg, true, false);
		} else {
			pg = uhmm__pagemap_of(mm, mp->src_pfn);
			uhmm__ps_commit_cpu(mm, mp->ps);
			mp->where = W_STAGED; /* home is the staging page, until finalize */
			if (pg)
				count(&t, pg, false, m->fault_page == m->start + (i << UHMM__PAGE_SHIFT));
		}
		mp->committed = true;
	}
	tally_flush(&t); /* mm->lock -> pagemap lock: the order allows it */
	uhmm__unlock(&mm->lock);
	for (unsigned long i = 0; i < m->npages; i++)
		if (!g->pg[i].committed)
			m->src[i] &= ~UHMM_MIGRATE_PFN_MIGRATE;
	return 0;
}

/* --- finalize ------------------------------------------------------------------------ */

/* Does entry @i's data go to the CPU page table now? */
static bool goes_home(const struct mig_page *mp)
{
	if (!mp->ps)
		return false;
	if (mp->sel == SEL_SYS)
		return !mp->committed && (mp->where == W_STAGED || mp->where == W_DST);
	return mp->committed && mp->where == W_STAGED;
}

/* Does entry @i's data go back into its source device page? */
static bool goes_back(const struct mig_page *mp)
{
	return mp->ps && mp->sel == SEL_DEV && !mp->committed && mp->where == W_STAGED;
}

static void place(struct uhmm_migrate *m, struct mig *g)
{
	struct uhmm_mm *mm = m->mm;

	uhmm__lock(&mm->event_lock);
	for (unsigned long i = 0; i < m->npages;) {
		unsigned long j = i + 1;

		if (!goes_home(&g->pg[i])) {
			i++;
			continue;
		}
		while (j < m->npages && goes_home(&g->pg[j]) && g->pg[j].where == g->pg[i].where)
			j++;
		uhmm__move_home(m, i, j);
		i = j;
	}
	uhmm__unlock(&mm->event_lock);
	for (unsigned long i = 0; i < m->npages; i++) {
		struct uhmm_pagemap *pg;

		if (!goes_back(&g->pg[i]))
			continue;
		uhmm__lock(&mm->lock);
		pg = uhmm__pagemap_of(mm, g->pg[i].src_pfn);
		uhmm__unlock(&mm->lock);
		if (pg)
			uhmm__move_to_storage(m, pg, i, i + 1, true);
	}
}

/*
 * Settle every word, and record which device page each entry releases
 * (mp->put): a page discarded meanwhile, the source a page left behind, or
 * a destination given and not used. Under mm->lock; no allocation.
 */
static void settle(struct uhmm_migrate *m, struct mig *g)
{
	struct uhmm_mm *mm = m->mm;

	for (unsigned long i = 0; i < m->npages; i++) {
		struct mig_page *mp = &g->pg[i];
		uint64_t dropped;

		if (!mp->ps)
			continue;
		dropped = uhmm__ps_release(mm, mp->ps);
		if (dropped) {
			/* The data it held at release: its source, or the destination it took. */
			uhmm__assert(dropped == (mp->committed ? mp->dst_pfn : mp->src_pfn));
			mp->put = mp->committed ? PUT_DST : PUT_SRC;
		} else if (mp->sel == SEL_DEV && mp->committed) {
			mp->put = PUT_SRC;
		} else if (mp->sel == SEL_SYS && !mp->committed && mp->dst_pfn) {
			struct uhmm_pagemap *pg = uhmm__pagemap_of(mm, mp->dst_pfn);

			mp->put = PUT_DST;
			if (pg)
				uhmm__dpage_unclaim(pg, mp->dst_pfn);
		}
	}
}

static uint64_t put_pfn(const struct mig_page *mp)
{
	return mp->put == PUT_SRC ? mp->src_pfn : mp->put == PUT_DST ? mp->dst_pfn : 0;
}

/* Wake the threads waiting on these pages, at their old and new addresses. */
static void wake(struct uhmm_migrate *m, struct mig *g)
{
	struct uhmm_mm *mm = m->mm;
	struct uhmm__area *hint = NULL;

	uhmm__uffd_wake(mm->uffd, m->start, m->end - m->start);
	uhmm__lock(&mm->lock); /* UFFDIO_WAKE never blocks */
	for (unsigned long i = 0; !mig_all_home(g) && i < m->npages; i++) {
		uintptr_t expect = m->start + (i << UHMM__PAGE_SHIFT), addr;

		if (!g->pg[i].ps || uhmm__ps_lookup_near(mm, expect, &hint) == g->pg[i].ps)
			continue;
		addr = uhmm__ps_addr(mm, g->pg[i].ps);
		if (addr)
			uhmm__uffd_wake(mm->uffd, addr, UHMM__PAGE_SIZE); /* moved by mremap */
	}
	uhmm__unlock(&mm->lock);
	uhmm__migration_wake(mm);
}

/* Drop the device pages settle() recorded, one pagemap lock per run. */
static void put_released(struct uhmm_migrate *m, struct mig *g)
{
	for (unsigned long i = 0; i < m->npages;) {
		uint64_t pfn = put_pfn(&g->pg[i]);
		unsigned int slot = uhmm__pfn_slot(pfn);
		struct uhmm_pagemap *pg;
		unsigned long j = i;

		if (!pfn) {
			i++;
			continue;
		}
		uhmm__lock(&m->mm->lock);
		pg = uhmm__pagemap_of(m->mm, pfn);
		uhmm__unlock(&m->mm->lock);
		if (!pg) {
			i++; /* its pagemap is gone: nothing to release */
			continue;
		}
		pthread_mutex_lock(&pg->lock);
		for (; j < m->npages; j++) {
			struct mig_page *mp = &g->pg[j];

			pfn = put_pfn(mp);
			if (pfn && uhmm__pfn_slot(pfn) != slot)
				break;
			if (pfn)
				mp->notify = uhmm__page_put_locked(pg, pfn);
		}
		pthread_cond_broadcast(&pg->cond);
		pthread_mutex_unlock(&pg->lock);
		/* The device learns of freed pages outside the lock (it may allocate). */
		for (; i < j; i++)
			if (put_pfn(&g->pg[i]) && g->pg[i].notify)
				uhmm__page_free_notify(pg, put_pfn(&g->pg[i]));
	}
}

UHMM__EXPORT void uhmm_migrate_finalize(struct uhmm_migrate *m)
{
	struct uhmm_mm *mm;
	struct mig *g;

	if (!m || !(g = M(m)))
		return;
	mm = m->mm;
	if (m->cpages) {
		/* Destinations given but never checked (no uhmm_migrate_pages): ours to release. */
		uhmm__migrate_claim(m);
		place(m, g);
		uhmm__lock(&mm->lock);
		settle(m, g);
		uhmm__unlock(&mm->lock);
		/* Released before anyone waiting resumes: what it sees is settled. */
		put_released(m, g);
		wake(m, g);
	}
	mig_free(m, g);
}
