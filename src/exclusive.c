/* SPDX-License-Identifier: MIT */
/*
 * exclusive.c - device-exclusive access: make_device_exclusive() for a
 * device's atomics.
 *
 * The device gets the page to itself: its data moves (UFFDIO_MOVE, no copy)
 * out of the CPU page table into the mm's exclusive store, where the device
 * reads and writes it (uhmm_device_exclusive_addr). The page state says
 * EXCLUSIVE, the store page and the owner. A CPU access faults into uhmm,
 * which moves the data back and tells the device its access is gone (CLEAR
 * invalidation) before the access proceeds; mprotect does the same for its
 * range before the protection changes (src/interpose.c), and so does fork.
 *
 * The store is a host-storage pagemap private to the mm; its descriptors'
 * flags carry the owner's index in mm->excl_owners (bits 8..15).
 */
#include <errno.h>
#include <sys/mman.h>

#include "internal.h"

#ifndef MADV_POPULATE_WRITE
#define MADV_POPULATE_WRITE 23
#endif

#define OWNER_SHIFT 8

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

/* Allocate a store page, growing the store by 2 MiB when it is full. */
static int store_alloc(struct uhmm_pagemap *st, uint64_t *page)
{
	int r = uhmm__pagemap_alloc(st, 1, page);

	if (r == -ENOMEM && uhmm_pagemap_add_memory(st, UHMM__PMD_SIZE) == 0)
		r = uhmm__pagemap_alloc(st, 1, page);
	return r;
}

UHMM__EXPORT long uhmm_make_device_exclusive(struct uhmm_mm *mm, uintptr_t start, uintptr_t end,
					     void *owner)
{
	struct uhmm_pagemap *st;
	struct uhmm__vma vma;
	long done = 0;
	int oi, r;

	if (!mm || !owner || uhmm__check_range(start, end - start) || end <= start)
		return -EINVAL;
	r = uhmm__vma_query(mm->maps_fd, start, false, &vma);
	if (r)
		return r == -ENOENT ? -EFAULT : r;
	if (vma.end < end || !vma.read)
		return -EFAULT;
	if (vma.file || vma.shared || vma.page_size > UHMM__PAGE_SIZE || vma.special)
		return -EOPNOTSUPP;
	r = uhmm__manage_first_use(mm, start, end);
	if (r)
		return r;
	r = store_get(mm, &st);
	if (r)
		return r;
	oi = owner_index(mm, owner);
	if (oi < 0)
		return oi;
	uhmm__invalidate(mm, start, end, UHMM_NOTIFY_EXCLUSIVE, owner);
	for (uintptr_t a = start; a < end; a += UHMM__PAGE_SIZE) {
		struct uhmm__area *ar;
		uint64_t *ps, page;
		size_t moved = 0;

		/*
		 * Faulted in (home from a device, or filled), then writable, as
		 * make_device_exclusive does with FOLL_WRITE. A read-only page
		 * cannot be moved to the store: it is left to the CPU below.
		 */
		r = uhmm__fault_resolve(mm, a, vma.write, true);
		if (r < 0 && r != -EAGAIN)
			return done ? done : -EFAULT;
		if (vma.write)
			uhmm__sys_madvise((void *)a, UHMM__PAGE_SIZE, MADV_POPULATE_WRITE);
		if (store_alloc(st, &page))
			return done ? done : -ENOMEM;
		pthread_mutex_lock(&mm->lock);
		ar = uhmm__area_find(&mm->areas, a);
		ps = ar ? uhmm__area_ps(ar, a) : NULL;
		if (!ps || *ps) {
			/* Gone, on a device, migrating, or already exclusive. */
			bool mine = ps && (*ps & UHMM__PS_EXCLUSIVE);

			pthread_mutex_unlock(&mm->lock);
			uhmm_page_put(st, page);
			done += mine;
			continue;
		}
		r = uhmm__uffd_move(mm->uffd, (uintptr_t)uhmm__dpage_storage(st, page), a,
				    UHMM__PAGE_SIZE, 0, &moved);
		if (r) {
			/* Not movable (read-only, shared copy-on-write): left to the CPU. */
			pthread_mutex_unlock(&mm->lock);
			uhmm_page_put(st, page);
			continue;
		}
		*ps = UHMM__PS_EXCLUSIVE | ((uint64_t)st->slot << UHMM__PS_SLOT_SHIFT) |
		      (page << UHMM__PS_INDEX_SHIFT);
		pthread_mutex_lock(&st->lock);
		uhmm__dpage(st, page)->ps = ps;
		uhmm__dpage(st, page)->flags |= (uint32_t)oi << OWNER_SHIFT;
		pthread_mutex_unlock(&st->lock);
		pthread_mutex_unlock(&mm->lock);
		done++;
	}
	return done;
}

int uhmm__exclusive_revoke(struct uhmm_mm *mm, uintptr_t addr)
{
	struct uhmm_pagemap *st = mm->excl_store;
	struct uhmm__area *a;
	uint64_t *ps, page;
	int r;

	pthread_mutex_lock(&mm->lock);
	a = uhmm__area_find(&mm->areas, addr);
	ps = a ? uhmm__area_ps(a, addr) : NULL;
	if (!st || !ps || !(*ps & UHMM__PS_EXCLUSIVE) || (*ps & UHMM__PS_MIGRATING)) {
		pthread_mutex_unlock(&mm->lock);
		return 0; /* revoked by someone else meanwhile */
	}
	page = uhmm__ps_index(*ps);
	*ps |= UHMM__PS_MIGRATING;
	pthread_mutex_unlock(&mm->lock);

	/* The device loses its access before the CPU regains it. */
	uhmm__invalidate(mm, addr, addr + UHMM__PAGE_SIZE, UHMM_NOTIFY_CLEAR, NULL);
	r = uhmm__uffd_move(mm->uffd, addr, (uintptr_t)uhmm__dpage_storage(st, page),
			    UHMM__PAGE_SIZE, UFFDIO_MOVE_MODE_ALLOW_SRC_HOLES, NULL);
	if (r == -EEXIST)
		r = 0;
	pthread_mutex_lock(&mm->lock);
	pthread_mutex_lock(&st->lock);
	uhmm__dpage(st, page)->ps = NULL;
	pthread_mutex_unlock(&st->lock);
	*ps = 0;
	pthread_mutex_unlock(&mm->lock);
	uhmm_page_put(st, page);
	uhmm__uffd_wake(mm->uffd, addr, UHMM__PAGE_SIZE);
	atomic_fetch_add(&mm->mig_seq, 1);
	return r;
}

void uhmm__exclusive_revoke_range(struct uhmm_mm *mm, uintptr_t start, uintptr_t end)
{
	for (uintptr_t a = start; a < end; a += UHMM__PAGE_SIZE) {
		struct uhmm__area *ar;
		bool excl;

		pthread_mutex_lock(&mm->lock);
		ar = uhmm__area_find(&mm->areas, a);
		if (!ar) {
			/* Skip to the next area quickly. */
			size_t i = uhmm__area_lower(&mm->areas, a);

			pthread_mutex_unlock(&mm->lock);
			if (i >= mm->areas.n)
				return;
			a = mm->areas.v[i].start - UHMM__PAGE_SIZE;
			continue;
		}
		excl = *uhmm__area_ps(ar, a) & UHMM__PS_EXCLUSIVE;
		pthread_mutex_unlock(&mm->lock);
		if (excl)
			uhmm__exclusive_revoke(mm, a);
	}
}

UHMM__EXPORT void *uhmm_device_exclusive_addr(struct uhmm_mm *mm, uintptr_t addr, void *owner)
{
	struct uhmm_pagemap *st;
	struct uhmm__area *a;
	void *r = NULL;

	if (!mm || !(st = mm->excl_store))
		return NULL;
	pthread_mutex_lock(&mm->lock);
	a = uhmm__area_find(&mm->areas, addr);
	if (a) {
		uint64_t ps = *uhmm__area_ps(a, addr);

		if ((ps & UHMM__PS_EXCLUSIVE) && !(ps & UHMM__PS_MIGRATING)) {
			uint64_t page = uhmm__ps_index(ps);

			pthread_mutex_lock(&st->lock);
			if (mm->excl_owners[uhmm__dpage(st, page)->flags >> OWNER_SHIFT] == owner)
				r = uhmm__dpage_storage(st, page);
			pthread_mutex_unlock(&st->lock);
		}
	}
	pthread_mutex_unlock(&mm->lock);
	return r;
}
