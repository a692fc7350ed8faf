/* SPDX-License-Identifier: MIT */
/*
 * pagemap.c - device memory: uhmm's dev_pagemap.
 *
 * A pagemap owns sub-sections of 2 MiB (512 pages), added and removed at
 * run time as Linux hot-adds device memory. Each device page has a 16-byte
 * descriptor: its reference count, its state, and a back-pointer to the
 * page-state word of the managed page whose data it holds (the reverse map
 * eviction needs). Page numbers are section * 512 + index.
 *
 * Host storage: a software device keeps page contents in anonymous memory
 * uhmm maps for it, 2 MiB-aligned (so whole THPs move as one PMD) and
 * registered with the mm's userfaultfd (UFFDIO_MOVE needs its destination
 * registered with the same context). A page is "empty" when no PTE maps its
 * storage: moves land there. A freed page whose storage still holds data is
 * DIRTY and is scrubbed (MADV_DONTNEED: emptied, reads as zeros) when it is
 * next allocated, outside every lock, since the REMOVE event that madvise
 * raises waits for a service thread.
 *
 * Locking: pgmap->lock guards sections, free lists, descriptor flags and
 * stats; reference counts are atomics (get/put may race with each other);
 * the ps back-pointer is written under mm->lock by migration.
 */
#include <errno.h>
#include <string.h>
#include <sys/mman.h>

#include "internal.h"

#define SECTION_PAGES 512u
#define MAX_SECTIONS 4096u

static struct uhmm__section *section_of(struct uhmm_pagemap *pg, uint64_t page)
{
	uint64_t s = page / SECTION_PAGES;

	if (s >= pg->nsections || !pg->sections[s] || pg->sections[s]->removed)
		return NULL;
	return pg->sections[s];
}

struct uhmm__dpage *uhmm__dpage(struct uhmm_pagemap *pg, uint64_t page)
{
	struct uhmm__section *s = section_of(pg, page);

	return s ? &s->desc[page % SECTION_PAGES] : NULL;
}

void *uhmm__dpage_storage(struct uhmm_pagemap *pg, uint64_t page)
{
	struct uhmm__section *s = section_of(pg, page);

	if (!s || !s->storage)
		return NULL;
	return s->storage + (page % SECTION_PAGES) * UHMM__PAGE_SIZE;
}

UHMM__EXPORT int uhmm_pagemap_new(struct uhmm_pagemap **ret, struct uhmm_mm *mm,
				  const struct uhmm_pagemap_config *cfg)
{
	struct uhmm_pagemap *pg;
	int slot;

	if (!ret || !mm || !cfg || !cfg->owner)
		return -EINVAL;
	if (cfg->type == UHMM_PAGEMAP_COHERENT)
		return -EOPNOTSUPP;
	if (cfg->type != UHMM_PAGEMAP_PRIVATE)
		return -EINVAL;
	if (!cfg->host_storage &&
	    (!cfg->ops || !cfg->ops->copy_to_device || !cfg->ops->copy_from_device))
		return -EINVAL;
	pg = uhmm__calloc(1, sizeof(*pg));
	if (!pg)
		return -ENOMEM;
	pg->mm = mm;
	pg->cfg = *cfg;
	pthread_mutex_init(&pg->lock, NULL);
	pthread_cond_init(&pg->cond, NULL);
	slot = uhmm__pagemap_attach(mm, pg); /* publishes it: fully built first */
	if (slot < 0) {
		pthread_mutex_destroy(&pg->lock);
		pthread_cond_destroy(&pg->cond);
		uhmm__free(pg);
		return slot;
	}
	pg->slot = (unsigned int)slot;
	*ret = pg;
	return 0;
}

UHMM__EXPORT void *uhmm_pagemap_priv(const struct uhmm_pagemap *pg)
{
	return pg->cfg.priv;
}

UHMM__EXPORT void *uhmm_pagemap_owner(const struct uhmm_pagemap *pg)
{
	return pg->cfg.owner;
}

static int storage_new(struct uhmm_pagemap *pg, char **out)
{
	void *raw;
	char *p;
	uintptr_t a;
	int r;

	if (uhmm__inject_fail())
		return -ENOMEM;
	r = uhmm__sys_mmap(&raw, NULL, 2 * UHMM__PMD_SIZE, PROT_READ | PROT_WRITE,
			   MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE, -1, 0);
	if (r)
		return r;
	a = ((uintptr_t)raw + UHMM__PMD_SIZE - 1) & ~(UHMM__PMD_SIZE - 1);
	p = (char *)a;
	/* Keep exactly the aligned 2 MiB. */
	if (a > (uintptr_t)raw)
		uhmm__sys_munmap(raw, a - (uintptr_t)raw);
	if ((char *)raw + 2 * UHMM__PMD_SIZE > p + UHMM__PMD_SIZE)
		uhmm__sys_munmap(p + UHMM__PMD_SIZE,
				 (size_t)((char *)raw + 2 * UHMM__PMD_SIZE - (p + UHMM__PMD_SIZE)));
	uhmm__sys_madvise(p, UHMM__PMD_SIZE, MADV_HUGEPAGE);
	r = uhmm__uffd_register(pg->mm->uffd, (uintptr_t)p, UHMM__PMD_SIZE,
				UFFDIO_REGISTER_MODE_MISSING, NULL);
	if (r) {
		uhmm__sys_munmap(p, UHMM__PMD_SIZE);
		return r;
	}
	*out = p;
	return 0;
}

static void storage_free(struct uhmm_pagemap *pg, char *p)
{
	/* Unregister first: an unmap of a registered range raises an event. */
	uhmm__uffd_unregister(pg->mm->uffd, (uintptr_t)p, UHMM__PMD_SIZE);
	uhmm__sys_munmap(p, UHMM__PMD_SIZE);
}

UHMM__EXPORT int uhmm_pagemap_add_memory(struct uhmm_pagemap *pg, size_t bytes)
{
	size_t n = bytes / UHMM__PMD_SIZE;

	if (!pg || !bytes || bytes % UHMM__PMD_SIZE)
		return -EINVAL;
	for (size_t k = 0; k < n; k++) {
		struct uhmm__section *s = uhmm__calloc(1, sizeof(*s));
		int r = s ? 0 : -ENOMEM;

		if (!r && pg->cfg.host_storage)
			r = storage_new(pg, &s->storage);
		if (r) {
			uhmm__free(s);
			return r; /* sections added so far stay: the pool grew less */
		}
		for (unsigned int i = 0; i < SECTION_PAGES; i++)
			s->desc[i].next_free = i + 1 < SECTION_PAGES ? i + 1 : UHMM__NO_PAGE;
		s->free_head = 0;
		s->nfree = SECTION_PAGES;
		pthread_mutex_lock(&pg->lock);
		if (pg->nsections == MAX_SECTIONS) {
			pthread_mutex_unlock(&pg->lock);
			if (s->storage)
				storage_free(pg, s->storage);
			uhmm__free(s);
			return -ENOSPC;
		}
		pg->sections[pg->nsections++] = s;
		pg->pages_total += SECTION_PAGES;
		pthread_mutex_unlock(&pg->lock);
	}
	return 0;
}

UHMM__EXPORT void uhmm_pagemap_fail_next(struct uhmm_pagemap *pg)
{
	pthread_mutex_lock(&pg->lock);
	pg->fail_next = true;
	pthread_mutex_unlock(&pg->lock);
}

/* Empty a dirty page's storage, unlocked (see the file comment). */
static void scrub(struct uhmm_pagemap *pg, uint64_t page, size_t n)
{
	char *st = uhmm__dpage_storage(pg, page);

	if (st)
		uhmm__zap_private(pg->mm, (uintptr_t)st, n * UHMM__PAGE_SIZE);
}

/* Take one page (n == 1) or a whole free section (n == 512). Under lock. */
static int take(struct uhmm_pagemap *pg, size_t n, uint64_t *page, bool *dirty)
{
	if (pg->fail_next || uhmm__inject_fail()) {
		pg->fail_next = false;
		pg->alloc_failures++;
		return -ENOMEM;
	}
	for (unsigned int k = 0; k < pg->nsections; k++) {
		unsigned int si = (pg->next_section + k) % pg->nsections;
		struct uhmm__section *s = pg->sections[si];

		if (!s || s->removed || s->nfree < n)
			continue;
		*dirty = false;
		if (n == SECTION_PAGES) {
			s->nfree = 0;
			s->free_head = UHMM__NO_PAGE;
			*page = (uint64_t)si * SECTION_PAGES;
			for (unsigned int i = 0; i < SECTION_PAGES; i++) {
				*dirty |= s->desc[i].flags & UHMM__DPAGE_DIRTY;
				s->desc[i].flags = UHMM__DPAGE_ALLOCATED;
				s->desc[i].ps = NULL;
				atomic_store(&s->desc[i].refs, 1);
			}
		} else {
			uint64_t i = s->free_head;

			s->free_head = s->desc[i].next_free;
			s->nfree--;
			*page = (uint64_t)si * SECTION_PAGES + i;
			*dirty = s->desc[i].flags & UHMM__DPAGE_DIRTY;
			s->desc[i].flags = UHMM__DPAGE_ALLOCATED;
			s->desc[i].ps = NULL;
			atomic_store(&s->desc[i].refs, 1);
		}
		pg->next_section = si;
		return 0;
	}
	pg->alloc_failures++;
	return -ENOMEM;
}

int uhmm__pagemap_alloc(struct uhmm_pagemap *pg, size_t n, uint64_t *page)
{
	bool dirty;
	int r;

	pthread_mutex_lock(&pg->lock);
	r = take(pg, n, page, &dirty);
	pthread_mutex_unlock(&pg->lock);
	if (!r && dirty)
		scrub(pg, *page, n);
	if (!r && !pg->cfg.host_storage && pg->cfg.ops->copy_to_device) {
		/* Device memory: zero it through the device. */
		for (size_t i = 0; i < n && !r; i++) {
			const void *z = uhmm__zero_page;
			uint64_t p = *page + i;

			r = pg->cfg.ops->copy_to_device(pg, &p, &z, 1);
		}
		if (r) {
			for (size_t i = 0; i < n; i++)
				uhmm_page_put(pg, *page + i);
		}
	}
	return r;
}

UHMM__EXPORT int uhmm_pagemap_alloc_page(struct uhmm_pagemap *pg, uint64_t *page)
{
	if (!pg || !page)
		return -EINVAL;
	return uhmm__pagemap_alloc(pg, 1, page);
}

UHMM__EXPORT int uhmm_page_get(struct uhmm_pagemap *pg, uint64_t page)
{
	struct uhmm__dpage *d;
	int r = -EINVAL;

	if (!pg)
		return -EINVAL;
	pthread_mutex_lock(&pg->lock);
	d = uhmm__dpage(pg, page);
	if (d && (d->flags & UHMM__DPAGE_ALLOCATED) && atomic_load(&d->refs) > 0) {
		atomic_fetch_add(&d->refs, 1);
		r = 0;
	}
	pthread_mutex_unlock(&pg->lock);
	return r;
}

UHMM__EXPORT int uhmm_page_put(struct uhmm_pagemap *pg, uint64_t page)
{
	struct uhmm__dpage *d;
	void (*page_free)(struct uhmm_pagemap *, uint64_t) = NULL;

	if (!pg)
		return -EINVAL;
	pthread_mutex_lock(&pg->lock);
	d = uhmm__dpage(pg, page);
	if (!d || !(d->flags & UHMM__DPAGE_ALLOCATED) || atomic_load(&d->refs) == 0) {
		pthread_mutex_unlock(&pg->lock);
		return -EINVAL; /* foreign, free, or a double put: nothing changes */
	}
	if (atomic_fetch_sub(&d->refs, 1) == 1) {
		struct uhmm__section *s = section_of(pg, page);

		/* Storage that may still hold data (DIRTY) is scrubbed before reuse. */
		d->flags &= UHMM__DPAGE_DIRTY;
		d->next_free = s->free_head;
		s->free_head = page % SECTION_PAGES;
		s->nfree++;
		if (pg->cfg.ops && pg->cfg.ops->page_free) {
			page_free = pg->cfg.ops->page_free;
			pg->callbacks++; /* teardown waits for it (uhmm_pagemap_free) */
		}
	}
	if (!page_free)
		pthread_cond_broadcast(&pg->cond);
	pthread_mutex_unlock(&pg->lock);
	if (page_free) {
		/* Outside the lock: the callback may allocate from this pagemap. */
		page_free(pg, page);
		pthread_mutex_lock(&pg->lock);
		pg->callbacks--;
		pthread_cond_broadcast(&pg->cond);
		pthread_mutex_unlock(&pg->lock);
	}
	return 0;
}

UHMM__EXPORT void *uhmm_pagemap_page_addr(struct uhmm_pagemap *pg, uint64_t page)
{
	void *p;

	if (!pg)
		return NULL;
	pthread_mutex_lock(&pg->lock);
	p = uhmm__dpage_storage(pg, page);
	pthread_mutex_unlock(&pg->lock);
	return p;
}

/* Pages of section @si that hold data for the mm (to bring home). */
static size_t section_in_use(struct uhmm_pagemap *pg, unsigned int si)
{
	struct uhmm__section *s = pg->sections[si];

	return SECTION_PAGES - s->nfree;
}

UHMM__EXPORT int uhmm_pagemap_remove_memory(struct uhmm_pagemap *pg, unsigned int section,
					    unsigned int flags)
{
	struct uhmm__section *s;

	if (!pg || (flags & ~UHMM_PAGEMAP_EVICT))
		return -EINVAL;
	pthread_mutex_lock(&pg->lock);
	if (section >= pg->nsections || !pg->sections[section] || pg->sections[section]->removed) {
		pthread_mutex_unlock(&pg->lock);
		return -EINVAL;
	}
	if (section_in_use(pg, section) && !(flags & UHMM_PAGEMAP_EVICT)) {
		pthread_mutex_unlock(&pg->lock);
		return -EBUSY;
	}
	pthread_mutex_unlock(&pg->lock);
	if (flags & UHMM_PAGEMAP_EVICT)
		uhmm__pagemap_evict(pg, (uint64_t)section * SECTION_PAGES, SECTION_PAGES);
	pthread_mutex_lock(&pg->lock);
	if (section_in_use(pg, section)) {
		pthread_mutex_unlock(&pg->lock);
		return -EBUSY; /* referenced from outside, or could not come home */
	}
	s = pg->sections[section];
	s->removed = true;
	pg->pages_total -= SECTION_PAGES;
	pthread_mutex_unlock(&pg->lock);
	if (s->storage)
		storage_free(pg, s->storage);
	s->storage = NULL;
	return 0;
}

UHMM__EXPORT void uhmm_pagemap_stats(struct uhmm_pagemap *pg, struct uhmm_pagemap_stats *out)
{
	memset(out, 0, sizeof(*out));
	pthread_mutex_lock(&pg->lock);
	out->pages_total = pg->pages_total;
	for (unsigned int i = 0; i < pg->nsections; i++)
		if (pg->sections[i] && !pg->sections[i]->removed)
			out->pages_free += pg->sections[i]->nfree;
	out->migrated_to = pg->migrated_to;
	out->migrated_from = pg->migrated_from;
	out->faults = pg->faults;
	out->alloc_failures = pg->alloc_failures;
	/* Descriptors (16 B/page) and section headers; the pagemap itself aside. */
	for (unsigned int i = 0; i < pg->nsections; i++)
		if (pg->sections[i])
			out->metadata_bytes += sizeof(struct uhmm__section);
	pthread_mutex_unlock(&pg->lock);
}

UHMM__EXPORT void uhmm_pagemap_free(struct uhmm_pagemap *pg)
{
	if (!pg)
		return;
	/* Nothing is lost: every page holding data for the mm comes home. */
	uhmm__pagemap_evict(pg, 0, (uint64_t)pg->nsections * SECTION_PAGES);
	pthread_mutex_lock(&pg->lock);
	for (;;) {
		bool busy = false;

		for (unsigned int i = 0; i < pg->nsections; i++)
			if (pg->sections[i] && !pg->sections[i]->removed && section_in_use(pg, i))
				busy = true;
		if (!busy && !pg->callbacks)
			break;
		/* Outside references (uhmm_page_get) hold it: wait for their put. */
		pthread_cond_wait(&pg->cond, &pg->lock);
	}
	pthread_mutex_unlock(&pg->lock);
	uhmm__pagemap_detach(pg->mm, pg);
	/* No new fault-back can find it now; wait for those under way. */
	pthread_mutex_lock(&pg->lock);
	while (pg->users)
		pthread_cond_wait(&pg->cond, &pg->lock);
	pthread_mutex_unlock(&pg->lock);
	for (unsigned int i = 0; i < pg->nsections; i++) {
		if (pg->sections[i] && pg->sections[i]->storage)
			storage_free(pg, pg->sections[i]->storage);
		uhmm__free(pg->sections[i]);
	}
	pthread_mutex_destroy(&pg->lock);
	pthread_cond_destroy(&pg->cond);
	uhmm__free(pg);
}

UHMM__EXPORT unsigned long uhmm_pagemap_evict(struct uhmm_pagemap *pg)
{
	unsigned long left = 0;

	if (!pg)
		return 0;
	uhmm__pagemap_evict(pg, 0, (uint64_t)pg->nsections * SECTION_PAGES);
	pthread_mutex_lock(&pg->lock);
	for (unsigned int i = 0; i < pg->nsections; i++) {
		struct uhmm__section *s = pg->sections[i];

		if (!s || s->removed)
			continue;
		for (unsigned int k = 0; k < SECTION_PAGES; k++)
			left += (s->desc[k].flags & UHMM__DPAGE_ALLOCATED) && s->desc[k].ps;
	}
	pthread_mutex_unlock(&pg->lock);
	return left;
}

/* Is the storage page at @st mapped (or swapped): can memcpy touch it? */
static bool storage_backed(struct uhmm_pagemap *pg, char *st)
{
	struct page_region r;
	uintptr_t we;

	return uhmm__pagemap_scan(pg->mm->pagemap_fd, (uintptr_t)st, (uintptr_t)st + UHMM__PAGE_SIZE,
				  &r, 1, 0, 0, PAGE_IS_PRESENT | PAGE_IS_SWAPPED,
				  PAGE_IS_PRESENT, &we) > 0;
}

UHMM__EXPORT int uhmm_pagemap_read(struct uhmm_pagemap *pg, uint64_t page, void *buf)
{
	char *st = pg ? uhmm_pagemap_page_addr(pg, page) : NULL;

	if (!st)
		return -EINVAL;
	if (storage_backed(pg, st))
		memcpy(buf, st, UHMM__PAGE_SIZE);
	else
		memset(buf, 0, UHMM__PAGE_SIZE); /* empty: the device page holds zeros */
	return 0;
}

UHMM__EXPORT int uhmm_pagemap_write(struct uhmm_pagemap *pg, uint64_t page, const void *buf)
{
	char *st = pg ? uhmm_pagemap_page_addr(pg, page) : NULL;

	if (!st)
		return -EINVAL;
	uhmm__dpage_mark(pg, page, 1, true);
	if (!storage_backed(pg, st) &&
	    uhmm__uffd_copy(pg->mm->uffd, (uintptr_t)st, buf, UHMM__PAGE_SIZE, 0, NULL) == 0)
		return 0; /* filled in place, no fault */
	memcpy(st, buf, UHMM__PAGE_SIZE);
	return 0;
}

void uhmm__dpage_mark(struct uhmm_pagemap *pg, uint64_t first, size_t n, bool dirty)
{
	pthread_mutex_lock(&pg->lock);
	for (size_t i = 0; i < n; i++) {
		struct uhmm__dpage *d = uhmm__dpage(pg, first + i);

		if (!d)
			continue;
		if (dirty)
			d->flags |= UHMM__DPAGE_DIRTY;
		else
			d->flags &= ~UHMM__DPAGE_DIRTY;
	}
	pthread_mutex_unlock(&pg->lock);
}
