/* SPDX-License-Identifier: MIT */
/*
 * home.c - pages coming home to the CPU, built on the three migration
 * steps: the CPU fault on a device page (the kernel's
 * dev_pagemap_ops.migrate_to_ram), a device's eviction of its memory, the
 * bring-home before fork(), unmanage and teardown, and
 * uhmm_migrate_to_ram().
 *
 * A CPU fault-back of one page allocates nothing: its migration record,
 * arrays and staging come from the stack and the mm's staging cache, so
 * that the signal-mode SIGBUS handler can run it (fault.c). An allocation
 * that fails anyway (the staging cache empty and mmap refused) is -ENOMEM,
 * and the access is retried, never killed.
 */
#include <errno.h>

#include "migrate.h"

/* Longest run one migration takes when bringing memory home in bulk. */
#define HOME_RUN_PAGES 65536

/*
 * Migrate the pages @sel selects in [start, end) (one mapping) home.
 * Return pages moved, or -errno (from setup, or the copy when nothing
 * moved). @fault_page: as in struct uhmm_migrate (counted when it moves).
 */
static long to_ram(struct uhmm_mm *mm, uintptr_t start, uintptr_t end, unsigned long sel,
		   void *owner, enum uhmm_notify_event event, uintptr_t fault_page, bool in_signal)
{
	size_t n = (end - start) >> UHMM__PAGE_SHIFT;
	unsigned long src_inline[MIG_INLINE], dst_inline[MIG_INLINE], *src, *dst;
	struct mig g_inline, *g = n <= MIG_INLINE ? &g_inline : NULL;
	struct uhmm_migrate m = {
		.mm = mm, .start = start, .end = end, .pgmap_owner = owner, .flags = sel | MIG_ANY_PROT,
		.fault_page = fault_page,
	};
	long moved = 0;
	int r;

	uhmm__assert(g || !in_signal);
	src = g ? src_inline : uhmm__calloc(n, sizeof(*src));
	dst = g ? dst_inline : uhmm__calloc(n, sizeof(*dst));
	m.src = src;
	m.dst = dst;
	r = src && dst ? uhmm__migrate_setup(&m, g, event, owner, in_signal) : -ENOMEM;
	if (!r) {
		for (unsigned long i = 0; i < m.npages; i++)
			if (src[i] & UHMM_MIGRATE_PFN_MIGRATE)
				dst[i] = uhmm_migrate_sys_pfn(&m, i);
		r = m.cpages ? uhmm_migrate_copy(&m) : 0;
		uhmm_migrate_pages(&m);
		for (unsigned long i = 0; i < m.npages; i++)
			moved += !!(src[i] & UHMM_MIGRATE_PFN_MIGRATE);
		uhmm_migrate_finalize(&m);
	}
	if (!g) {
		uhmm__free(src);
		uhmm__free(dst);
	}
	return r && !moved ? r : moved;
}

/* to_ram() over [start, end), one mapping and at most HOME_RUN_PAGES at a time. */
static long to_ram_range(struct uhmm_mm *mm, uintptr_t start, uintptr_t end, unsigned long sel,
			 void *owner, enum uhmm_notify_event event)
{
	long total = 0;

	while (start < end) {
		struct uhmm__vma vma;
		uintptr_t e;
		long r;

		if (uhmm__vma_query(mm->maps_fd, start, true, &vma) || vma.start >= end)
			break;
		if (vma.start > start)
			start = vma.start;
		e = vma.end < end ? vma.end : end;
		if (e - start > (size_t)HOME_RUN_PAGES << UHMM__PAGE_SHIFT)
			e = start + ((size_t)HOME_RUN_PAGES << UHMM__PAGE_SHIFT);
		r = to_ram(mm, start, e, sel, owner, event, 0, false);
		if (r < 0)
			return total ? total : r;
		total += r;
		start = e;
	}
	return total;
}

UHMM__EXPORT long uhmm_migrate_to_ram(struct uhmm_mm *mm, uintptr_t start, uintptr_t end,
				      void *owner)
{
	if (!mm || uhmm__check_range(start, end - start) || end <= start)
		return -EINVAL;
	return to_ram_range(mm, start, end, UHMM_MIGRATE_SELECT_DEVICE_PRIVATE, owner,
			    UHMM_NOTIFY_MIGRATE);
}

/* --- the CPU touches a device page ---------------------------------------------- */

/* What a fault makes of to_ram's answer. */
static int fault_result(long r)
{
	if (r > 0)
		return 0;
	if (r == 0 || r == -EAGAIN)
		return -EAGAIN; /* taken by someone else meanwhile: look again */
	if (r == -ENOMEM)
		return -ENOMEM; /* retry: the access is never killed for it */
	return -EIO;	     /* the device cannot give the page back */
}

int uhmm__fault_device(struct uhmm_mm *mm, uintptr_t addr, unsigned int slot, bool in_signal)
{
	struct uhmm_pagemap *pg;
	void *owner;
	int r;

	/*
	 * Pin the pagemap while it is attached: uhmm_pagemap_free() detaches
	 * it, then waits for its users (the fault may outlive its last page).
	 */
	uhmm__lock(&mm->lock);
	pg = slot <= UHMM__PFN_MAX_SLOT ? mm->pagemaps[slot] : NULL;
	owner = pg ? pg->cfg.owner : NULL;
	if (pg) {
		pthread_mutex_lock(&pg->lock);
		pg->users++;
		pthread_mutex_unlock(&pg->lock);
	}
	uhmm__unlock(&mm->lock);
	if (!pg)
		return -EAGAIN; /* its pagemap went: the page went home with it */
	if (pg->cfg.ops && pg->cfg.ops->migrate_to_ram) {
		/* The device's own path; 0 means done (or held elsewhere: refault). */
		r = pg->cfg.ops->migrate_to_ram(pg, mm, addr) ? -EIO : 0;
	} else {
		r = fault_result(to_ram(mm, addr, addr + UHMM__PAGE_SIZE,
					UHMM_MIGRATE_SELECT_DEVICE_PRIVATE, owner, UHMM_NOTIFY_MIGRATE,
					addr, in_signal));
	}
	pthread_mutex_lock(&pg->lock);
	pg->users--;
	pthread_cond_broadcast(&pg->cond);
	pthread_mutex_unlock(&pg->lock);
	return r;
}

int uhmm__exclusive_revoke(struct uhmm_mm *mm, uintptr_t addr, bool in_signal)
{
	/* The device loses its access (CLEAR) before the CPU regains the page. */
	return fault_result(to_ram(mm, addr, addr + UHMM__PAGE_SIZE, MIG_SELECT_EXCLUSIVE, NULL,
				   UHMM_NOTIFY_CLEAR, 0, in_signal));
}

/* --- in bulk ----------------------------------------------------------------------- */

/*
 * The first run at or after *@cur of settled pages of residency @res (of
 * one pagemap), contiguous in address and within one area. false if none.
 */
static bool next_run(struct uhmm_mm *mm, enum uhmm__res res, uintptr_t *cur, uintptr_t end,
		     uintptr_t *rs, uintptr_t *re, unsigned int *slot)
{
	struct uhmm__ps_iter it;
	struct uhmm__area *a, *run_area = NULL;
	struct uhmm__ps *p;
	uintptr_t addr;

	*rs = *re = 0;
	uhmm__lock(&mm->lock);
	uhmm__ps_iter_init(&it, mm, *cur, end);
	while (uhmm__ps_iter_next(&it, &addr, &a, &p)) {
		struct uhmm__ps v = uhmm__ps_load(p);
		bool want = uhmm__ps_res(v) == res && !uhmm__ps_busy(v);

		if (*re) {
			if (!want || a != run_area || addr != *re ||
			    uhmm__pfn_slot(uhmm__ps_pfn(v)) != *slot ||
			    *re - *rs >= (size_t)HOME_RUN_PAGES << UHMM__PAGE_SHIFT)
				break;
			*re = addr + UHMM__PAGE_SIZE;
		} else if (want) {
			*rs = addr;
			*re = addr + UHMM__PAGE_SIZE;
			*slot = uhmm__pfn_slot(uhmm__ps_pfn(v));
			run_area = a;
		}
	}
	uhmm__unlock(&mm->lock);
	*cur = *re;
	return *re != 0;
}

static void home_all(struct uhmm_mm *mm, uintptr_t start, uintptr_t end, enum uhmm__res res)
{
	uintptr_t cur = start, rs, re;
	unsigned int slot;

	while (cur < end && next_run(mm, res, &cur, end, &rs, &re, &slot)) {
		void *owner;

		if (res == UHMM__RES_EXCLUSIVE) {
			to_ram_range(mm, rs, re, MIG_SELECT_EXCLUSIVE, NULL, UHMM_NOTIFY_CLEAR);
			continue;
		}
		uhmm__lock(&mm->lock);
		owner = uhmm__pagemap_owner(mm, slot);
		uhmm__unlock(&mm->lock);
		/* A page that will not come (device failure) is passed over, never spun on. */
		to_ram_range(mm, rs, re, UHMM_MIGRATE_SELECT_DEVICE_PRIVATE, owner,
			     UHMM_NOTIFY_MIGRATE);
	}
}

void uhmm__mm_bring_home(struct uhmm_mm *mm, uintptr_t start, uintptr_t end)
{
	home_all(mm, start, end, UHMM__RES_DEVICE);
}

void uhmm__exclusive_revoke_range(struct uhmm_mm *mm, uintptr_t start, uintptr_t end)
{
	home_all(mm, start, end, UHMM__RES_EXCLUSIVE);
}

/* The address of the data device page @pfn of @pg holds, 0 if none. */
static uintptr_t holder(struct uhmm_pagemap *pg, uint64_t pfn)
{
	struct uhmm_mm *mm = pg->mm;
	struct uhmm__dpage *d;
	uintptr_t addr = 0;

	uhmm__lock(&mm->lock);
	pthread_mutex_lock(&pg->lock);
	d = uhmm__dpage(pg, pfn);
	if (d && (uhmm__dflags(d) & UHMM__DPAGE_ALLOCATED) && uhmm__dpage_ps(d))
		addr = uhmm__ps_addr(mm, uhmm__dpage_ps(d));
	pthread_mutex_unlock(&pg->lock);
	uhmm__unlock(&mm->lock);
	return addr;
}

void uhmm__pagemap_evict(struct uhmm_pagemap *pg, uint64_t first, uint64_t n)
{
	struct uhmm_mm *mm = pg->mm;
	bool store = pg == mm->excl_store;

	for (uint64_t p = first; p < first + n;) {
		uintptr_t addr = holder(pg, p), end;
		uint64_t q = p + 1;

		if (!addr) {
			p++;
			continue;
		}
		if (pg->cfg.ops && pg->cfg.ops->migrate_to_ram) {
			pg->cfg.ops->migrate_to_ram(pg, mm, addr); /* the device's own path */
			p++;
			continue;
		}
		/* Neighbours in both spaces move together. */
		end = addr + UHMM__PAGE_SIZE;
		while (q < first + n && q - p < HOME_RUN_PAGES && holder(pg, q) == end) {
			q++;
			end += UHMM__PAGE_SIZE;
		}
		to_ram_range(mm, addr, end, store ? MIG_SELECT_EXCLUSIVE : UHMM_MIGRATE_SELECT_DEVICE_PRIVATE,
			     store ? NULL : pg->cfg.owner, store ? UHMM_NOTIFY_CLEAR : UHMM_NOTIFY_MIGRATE);
		p = q;
	}
}
