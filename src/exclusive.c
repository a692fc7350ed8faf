/* SPDX-License-Identifier: MIT */
/*
 * exclusive.c - device-exclusive access: make_device_exclusive() for a
 * device's atomics.
 *
 * The device gets the page to itself: its data migrates (no copy: moves)
 * out of the CPU page table into the mm's exclusive store, a host-storage
 * pagemap private to the mm, where the device reads and writes it
 * (uhmm_device_exclusive_addr). The page's word says EXCLUSIVE and names
 * the store page; the store page's descriptor names the owner (its index in
 * mm->excl_owners, bits 8..15 of the flags). Taking and giving back are
 * migrations like any other (migrate.c), with their own invalidations: an
 * EXCLUSIVE one carrying the owner when it takes the pages, a CLEAR one
 * when a CPU access (fault.c), mprotect (interpose.c), fork (fork.c) or
 * teardown gives them back (home.c).
 */
#include <errno.h>
#include <sys/mman.h>

#include "migrate.h"

#ifndef MADV_POPULATE_WRITE
#define MADV_POPULATE_WRITE 23
#endif

static int store_get(struct uhmm_mm *mm, struct uhmm_pagemap **out)
{
	struct uhmm_pagemap_config cfg = {
		.type = UHMM_PAGEMAP_PRIVATE,
		.owner = &mm->excl_tag,
		.host_storage = true,
	};
	int r = 0;

	pthread_mutex_lock(&mm->excl_lock);
	if (!mm->excl_store)
		r = uhmm_pagemap_new(&mm->excl_store, mm, &cfg);
	*out = mm->excl_store;
	pthread_mutex_unlock(&mm->excl_lock);
	return r;
}

static int owner_index(struct uhmm_mm *mm, void *owner)
{
	int r = -ENOSPC;

	pthread_mutex_lock(&mm->excl_lock);
	for (int i = 1; i < 256; i++) {
		if (mm->excl_owners[i] == owner) {
			r = i;
			break;
		}
		if (!mm->excl_owners[i]) {
			mm->excl_owners[i] = owner;
			r = i;
			break;
		}
	}
	pthread_mutex_unlock(&mm->excl_lock);
	return r;
}

/* A store page for @owner's index, growing the store by 2 MiB when it is full. */
static int store_alloc(struct uhmm_pagemap *st, int oi, uint64_t *pfn)
{
	int r = uhmm__pagemap_alloc(st, 1, pfn);

	if (r == -ENOMEM && uhmm_pagemap_add_memory(st, UHMM__PMD_SIZE) == 0)
		r = uhmm__pagemap_alloc(st, 1, pfn);
	if (!r) {
		pthread_mutex_lock(&st->lock);
		uhmm__dpage(st, *pfn)->owner = (uint8_t)oi;
		pthread_mutex_unlock(&st->lock);
	}
	return r;
}

/* Is @v an exclusive page of owner index @oi? Under mm->lock. */
static bool held_by(struct uhmm_mm *mm, struct uhmm__ps v, int oi)
{
	struct uhmm_pagemap *st = mm->excl_store;
	struct uhmm__dpage *d;
	bool r;

	if (!st || uhmm__ps_res(v) != UHMM__RES_EXCLUSIVE || uhmm__ps_busy(v))
		return false;
	pthread_mutex_lock(&st->lock);
	d = uhmm__dpage(st, uhmm__ps_pfn(v));
	r = d && d->owner == oi;
	pthread_mutex_unlock(&st->lock);
	return r;
}

static long count_held(struct uhmm_mm *mm, uintptr_t start, uintptr_t end, int oi)
{
	struct uhmm__ps_iter it;
	struct uhmm__area *a;
	struct uhmm__ps *p;
	uintptr_t addr;
	long n = 0;

	uhmm__lock(&mm->lock);
	uhmm__ps_iter_init(&it, mm, start, end);
	while (uhmm__ps_iter_next(&it, &addr, &a, &p))
		n += held_by(mm, uhmm__ps_load(p), oi);
	uhmm__unlock(&mm->lock);
	return n;
}

/* Fault the range in writable, as the kernel does with FOLL_WRITE. */
static int fault_in(struct uhmm_mm *mm, uintptr_t start, uintptr_t end)
{
	for (uintptr_t a = start; a < end; a += UHMM__PAGE_SIZE) {
		int r, tries = 0;

		do
			r = uhmm__fault_resolve(mm, a, true, true);
		while ((r == -EAGAIN || r == -ENOMEM) && ++tries < 1000);
		if (r)
			return -EFAULT;
	}
	/* Present now: breaking zero-page and copy-on-write sharing is the kernel's. */
	uhmm__sys_madvise((void *)start, end - start, MADV_POPULATE_WRITE);
	return 0;
}

/* Move the selected pages of @m into store pages for owner index @oi. */
static void take(struct uhmm_migrate *m, struct uhmm_pagemap *st, int oi)
{
	for (unsigned long i = 0; i < m->npages; i++) {
		uint64_t pfn;

		if (!(m->src[i] & UHMM_MIGRATE_PFN_MIGRATE))
			continue;
		if (store_alloc(st, oi, &pfn))
			break; /* out of memory: the rest stays with the CPU */
		m->dst[i] = uhmm_migrate_pfn_device(pfn) | UHMM_MIGRATE_PFN_WRITE;
	}
	uhmm_migrate_copy(m);
	uhmm_migrate_pages(m);
}

UHMM__EXPORT long uhmm_make_device_exclusive(struct uhmm_mm *mm, uintptr_t start, uintptr_t end,
					     void *owner)
{
	struct uhmm_migrate m = { .mm = mm, .start = start, .end = end, .pgmap_owner = owner,
				  .flags = UHMM_MIGRATE_SELECT_SYSTEM };
	struct uhmm_pagemap *st;
	struct uhmm__vma vma;
	unsigned long *src, *dst;
	int oi, r;

	if (!mm || !owner || uhmm__check_range(start, end - start) || end <= start)
		return -EINVAL;
	r = uhmm__mapping_of(mm, start, end, &vma);
	if (r)
		return r == -ENOENT || r == -EINVAL ? -EFAULT : r;
	if (!vma.read)
		return -EFAULT;
	if (vma.file || vma.shared || vma.page_size > UHMM__PAGE_SIZE || vma.special)
		return -EOPNOTSUPP;
	if (!vma.write)
		return 0; /* the kernel takes pages with FOLL_WRITE: none here */
	r = uhmm__manage_first_use(mm, start, end);
	if (r)
		return r;
	r = store_get(mm, &st);
	if (r)
		return r;
	oi = owner_index(mm, owner);
	if (oi < 0)
		return oi;
	r = fault_in(mm, start, end);
	if (r)
		return r;
	src = uhmm__calloc((end - start) >> UHMM__PAGE_SHIFT, sizeof(*src));
	dst = uhmm__calloc((end - start) >> UHMM__PAGE_SHIFT, sizeof(*dst));
	m.src = src;
	m.dst = dst;
	r = src && dst ? uhmm__migrate_setup(&m, NULL, UHMM_NOTIFY_EXCLUSIVE, owner, false) : -ENOMEM;
	if (!r) {
		take(&m, st, oi);
		uhmm_migrate_finalize(&m);
	}
	uhmm__free(src);
	uhmm__free(dst);
	if (r)
		return r;
	return count_held(mm, start, end, oi);
}

UHMM__EXPORT void *uhmm_device_exclusive_addr(struct uhmm_mm *mm, uintptr_t addr, void *owner)
{
	struct uhmm_pagemap *st;
	struct uhmm__ps *p;
	void *r = NULL;
	int oi = -1;

	if (!mm || !(st = mm->excl_store))
		return NULL;
	pthread_mutex_lock(&mm->excl_lock);
	for (int i = 1; i < 256 && oi < 0; i++)
		if (mm->excl_owners[i] == owner)
			oi = i;
	pthread_mutex_unlock(&mm->excl_lock);
	uhmm__lock(&mm->lock);
	p = uhmm__ps_lookup(mm, addr & ~(uintptr_t)(UHMM__PAGE_SIZE - 1), NULL);
	if (p && oi > 0 && held_by(mm, uhmm__ps_load(p), oi))
		r = uhmm_pagemap_page_addr(st, uhmm__ps_pfn(uhmm__ps_load(p))); /* marks it written */
	uhmm__unlock(&mm->lock);
	return r;
}
