/* SPDX-License-Identifier: MIT */
/*
 * pagemap.c - device memory: uhmm's dev_pagemap.
 *
 * A pagemap owns sub-sections of 2 MiB (512 pages), added and removed at
 * run time as Linux hot-adds device memory. Each device page has a 16-byte
 * descriptor: its reference count, its flags, and a back-pointer to the
 * page-state word of the managed page whose data it holds (the reverse map,
 * written by pstate.c only). A device page is named by a pfn unique in the
 * mm (internal.h): the pagemap's slot and the page's index, section * 512 +
 * page. A removed section stays allocated, marked, and its slot is reused by
 * the next uhmm_pagemap_add_memory(), so indexes stay small and lookups,
 * which take no lock, never see freed memory.
 *
 * Host storage: a software device keeps page contents in anonymous memory
 * uhmm maps for it, 2 MiB-aligned (whole THPs move as one PMD),
 * MADV_DONTFORK, and registered with the mm's own userfaultfd
 * (mm->uffd_own: UFFDIO_MOVE needs its destination registered) in
 * write-protect mode, so that touching a hole of it is an ordinary kernel
 * fault and it raises no events. A page is "empty" when no PTE maps its
 * storage; moves land there. A page whose storage may hold data is DIRTY
 * and is scrubbed (MADV_DONTNEED) before it is handed out again: data
 * uhmm moves or copies in marks it, and so does handing its address to the
 * device (uhmm_pagemap_page_addr, uhmm_device_exclusive_addr), since the
 * device may write there directly.
 *
 * Locking: pgmap->lock guards sections, free lists, descriptors'
 * reference counts and flags, and the counters; the reverse map is written
 * under mm->lock (pstate.c); internal.h says who writes what of a
 * descriptor.
 *
 * Teardown reports, it never hangs: uhmm_pagemap_free() brings every page
 * home, and returns -EBUSY, leaving the pagemap working, when a page could
 * not come home or a reference taken with uhmm_page_get() remains.
 */
#include <errno.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>

#include "internal.h"

#define SECTION_PAGES UHMM__SECTION_PAGES
#define MAX_SECTIONS (UHMM__SECTION_DIR * UHMM__SECTION_LEAF)

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

/* --- host storage ------------------------------------------------------------ */

static int storage_new(struct uhmm_pagemap *pg, char **out)
{
	struct uhmm_mm *mm = pg->mm;
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
	uhmm__sys_madvise(p, UHMM__PMD_SIZE, MADV_DONTFORK);
	/*
	 * Registered (a move destination) only where the kernel lets uhmm's
	 * own memory register without taking over its faults; otherwise data
	 * is copied into storage and only moved out of it.
	 */
	if (mm->uffd_own >= 0 && mm->own_wp) {
		r = uhmm__uffd_register(mm->uffd_own, (uintptr_t)p, UHMM__PMD_SIZE,
					UFFDIO_REGISTER_MODE_WP, NULL);
		if (r) {
			uhmm__sys_munmap(p, UHMM__PMD_SIZE);
			return r == -EINVAL ? -ENOMEM : r;
		}
	}
	*out = p;
	return 0;
}

static void storage_free(char *p)
{
	/* Registered with uffd_own, which asked for no events: unmap raises none. */
	uhmm__sys_munmap(p, UHMM__PMD_SIZE);
}

/* Empty [pfn, pfn+n) of their data: they read as zeros again. */
static void scrub(struct uhmm_pagemap *pg, uint64_t pfn, size_t n)
{
	char *st = uhmm__dpage_storage(pg, pfn);

	if (st) /* no events on uffd_own: a plain MADV_DONTNEED */
		uhmm__sys_madvise(st, n * UHMM__PAGE_SIZE, MADV_DONTNEED);
}

bool uhmm__storage_backed(struct uhmm_pagemap *pg, uint64_t pfn)
{
	char *st = uhmm__dpage_storage(pg, pfn);
	struct page_region r;
	uintptr_t we;

	return st && uhmm__pagemap_scan(pg->mm->pagemap_fd, (uintptr_t)st,
					(uintptr_t)st + UHMM__PAGE_SIZE, &r, 1, 0, 0,
					PAGE_IS_PRESENT | PAGE_IS_SWAPPED, PAGE_IS_PRESENT,
					&we) > 0;
}

/* --- sections -------------------------------------------------------------- */

static void section_reset(struct uhmm__section *s)
{
	for (unsigned int i = 0; i < SECTION_PAGES; i++) {
		atomic_store_explicit(&s->desc[i].flags, 0, memory_order_relaxed);
		uhmm__dpage_set_claimed(&s->desc[i], false);
		s->desc[i].owner = 0;
		s->desc[i].refs = 0;
		s->desc[i].next_free = i + 1 < SECTION_PAGES ? i + 1 : UHMM__NO_PAGE;
	}
	s->free_head = 0;
	s->nfree = SECTION_PAGES;
}

/* Slots for @n new sections: removed ones first, then fresh. Under lock. */
static unsigned int free_slots(struct uhmm_pagemap *pg, unsigned int *slots, unsigned int n)
{
	unsigned int got = 0;

	unsigned int ns = atomic_load(&pg->nsections);

	for (unsigned int i = 0; i < ns && got < n; i++)
		if (!atomic_load(&uhmm__section_at(pg, i)->live))
			slots[got++] = i;
	for (unsigned int i = ns; got < n && i < MAX_SECTIONS; i++)
		slots[got++] = i;
	return got;
}

/* Make sure directory leaves exist for @slots. Under lock. 0 or -ENOMEM. */
static int leaves_for(struct uhmm_pagemap *pg, const unsigned int *slots, unsigned int n)
{
	for (unsigned int i = 0; i < n; i++) {
		struct uhmm__section ***leaf = &pg->dir[slots[i] / UHMM__SECTION_LEAF];

		if (!*leaf && !(*leaf = uhmm__calloc(UHMM__SECTION_LEAF, sizeof(**leaf))))
			return -ENOMEM;
	}
	return 0;
}

/*
 * New sections for @n slots, all or nothing: storage and descriptors are
 * made first, and published only when every one exists.
 */
static int sections_make(struct uhmm_pagemap *pg, struct uhmm__section **secs, unsigned int n)
{
	for (unsigned int k = 0; k < n; k++) {
		int r = 0;

		secs[k] = uhmm__calloc(1, sizeof(*secs[k]));
		if (!secs[k])
			r = -ENOMEM;
		else if (pg->cfg.host_storage)
			r = storage_new(pg, &secs[k]->storage);
		if (r) {
			for (unsigned int j = 0; j <= k; j++) {
				if (secs[j] && secs[j]->storage)
					storage_free(secs[j]->storage);
				uhmm__free(secs[j]);
			}
			return r;
		}
		section_reset(secs[k]);
	}
	return 0;
}

UHMM__EXPORT int uhmm_pagemap_add_memory(struct uhmm_pagemap *pg, size_t bytes)
{
	size_t n = bytes / UHMM__PMD_SIZE;
	struct uhmm__section **secs;
	unsigned int *slots;
	int r;

	if (!pg || !bytes || bytes % UHMM__PMD_SIZE || n > MAX_SECTIONS)
		return -EINVAL;
	secs = uhmm__calloc(n, sizeof(*secs));
	slots = uhmm__calloc(n, sizeof(*slots));
	r = secs && slots ? sections_make(pg, secs, (unsigned int)n) : -ENOMEM;
	if (r)
		goto out;
	pthread_mutex_lock(&pg->lock);
	if (free_slots(pg, slots, (unsigned int)n) < n)
		r = -ENOSPC;
	else
		r = leaves_for(pg, slots, (unsigned int)n);
	for (size_t k = 0; !r && k < n; k++) {
		struct uhmm__section **slot = &pg->dir[slots[k] / UHMM__SECTION_LEAF]
						      [slots[k] % UHMM__SECTION_LEAF];

		if (*slot) {
			/* A removed section: reuse its descriptors, take the new storage. */
			(*slot)->storage = secs[k]->storage;
			section_reset(*slot);
			uhmm__free(secs[k]);
		} else {
			*slot = secs[k];
		}
		secs[k] = NULL;
		/* Set up first, then visible: pairs with the acquires of lookups. */
		atomic_store_explicit(&(*slot)->live, true, memory_order_release);
		if (slots[k] >= atomic_load(&pg->nsections))
			atomic_store_explicit(&pg->nsections, slots[k] + 1, memory_order_release);
		pg->pages_total += SECTION_PAGES;
	}
	pthread_mutex_unlock(&pg->lock);
	for (size_t k = 0; r && k < n; k++) {
		if (secs[k] && secs[k]->storage)
			storage_free(secs[k]->storage);
		uhmm__free(secs[k]);
	}
out:
	uhmm__free(secs);
	uhmm__free(slots);
	return r;
}

/* --- allocation and references --------------------------------------------- */

void uhmm__pagemap_fail_next(struct uhmm_pagemap *pg)
{
	pthread_mutex_lock(&pg->lock);
	pg->fail_next = true;
	pthread_mutex_unlock(&pg->lock);
}

static void take_page(struct uhmm__dpage *d, bool *dirty, bool claim)
{
	*dirty |= uhmm__dflags(d) & UHMM__DPAGE_DIRTY;
	uhmm__dflags_set(d, UHMM__DPAGE_ALLOCATED, ~0u);
	uhmm__dpage_set_claimed(d, claim);
	d->owner = 0;
	uhmm__dpage_set_ps(d, NULL);
	d->refs = 1;
}

/* Take one page (n == 1) or a whole free section (n == 512). Under lock. */
static int take(struct uhmm_pagemap *pg, size_t n, uint64_t *pfn, bool *dirty, bool claim)
{
	*dirty = false;
	if (pg->fail_next || uhmm__inject_fail()) {
		pg->fail_next = false;
		pg->alloc_failures++;
		return -ENOMEM;
	}
	unsigned int ns = atomic_load(&pg->nsections);

	for (unsigned int k = 0; k < ns; k++) {
		unsigned int si = (pg->next_section + k) % ns;
		struct uhmm__section *s = uhmm__section_at(pg, si);

		if (!s || !atomic_load(&s->live) || s->nfree < n)
			continue;
		if (n == SECTION_PAGES) {
			for (unsigned int i = 0; i < SECTION_PAGES; i++)
				take_page(&s->desc[i], dirty, claim);
			s->nfree = 0;
			s->free_head = UHMM__NO_PAGE;
			*pfn = uhmm__pfn(pg->slot, (uint64_t)si * SECTION_PAGES);
		} else {
			uint64_t i = s->free_head;

			s->free_head = s->desc[i].next_free;
			s->nfree--;
			take_page(&s->desc[i], dirty, claim);
			*pfn = uhmm__pfn(pg->slot, (uint64_t)si * SECTION_PAGES + i);
		}
		pg->next_section = si;
		return 0;
	}
	pg->alloc_failures++;
	return -ENOMEM;
}

static int alloc(struct uhmm_pagemap *pg, size_t n, uint64_t *pfn, bool claim)
{
	bool dirty;
	int r;

	if (atomic_load(&pg->deferred))
		uhmm__pagemap_reap(pg);
	pthread_mutex_lock(&pg->lock);
	r = take(pg, n, pfn, &dirty, claim);
	pthread_mutex_unlock(&pg->lock);
	if (!r && dirty)
		scrub(pg, *pfn, n);
	if (!r && !pg->cfg.host_storage) {
		/* Device memory: zero it through the device. */
		for (size_t i = 0; i < n && !r; i++) {
			const void *z = uhmm__zero_page;
			uint64_t p = *pfn + i;

			r = pg->cfg.ops->copy_to_device(pg, &p, &z, 1);
		}
		if (r) {
			for (size_t i = 0; i < n; i++)
				uhmm_page_put(pg, *pfn + i);
			r = -ENOMEM;
		}
	}
	return r;
}

int uhmm__pagemap_alloc(struct uhmm_pagemap *pg, size_t n, uint64_t *pfn)
{
	return alloc(pg, n, pfn, false);
}

int uhmm__pagemap_alloc_claimed(struct uhmm_pagemap *pg, size_t n, uint64_t *pfn)
{
	return alloc(pg, n, pfn, true);
}

UHMM__EXPORT int uhmm_pagemap_alloc_page(struct uhmm_pagemap *pg, uint64_t *pfn)
{
	if (!pg || !pfn)
		return -EINVAL;
	return uhmm__pagemap_alloc(pg, 1, pfn);
}

UHMM__EXPORT int uhmm_pagemap_alloc_unit(struct uhmm_pagemap *pg, uint64_t *pfn)
{
	if (!pg || !pfn)
		return -EINVAL;
	return uhmm__pagemap_alloc(pg, UHMM__SECTION_PAGES, pfn);
}

UHMM__EXPORT int uhmm_page_get(struct uhmm_pagemap *pg, uint64_t pfn)
{
	struct uhmm__dpage *d;
	int r = -EINVAL;

	if (!pg)
		return -EINVAL;
	pthread_mutex_lock(&pg->lock);
	d = uhmm__dpage(pg, pfn);
	if (d && (uhmm__dflags(d) & UHMM__DPAGE_ALLOCATED) && d->refs > 0) {
		d->refs++;
		r = 0;
	}
	pthread_mutex_unlock(&pg->lock);
	return r;
}

/* The last reference went: back on the free list. Under lock. */
static void page_release(struct uhmm_pagemap *pg, struct uhmm__dpage *d, uint64_t pfn)
{
	struct uhmm__section *s = uhmm__section_of(pg, pfn);

	/* Storage that may still hold data (DIRTY) is scrubbed before reuse. */
	uhmm__dflags_set(d, 0, ~UHMM__DPAGE_DIRTY);
	d->next_free = s->free_head;
	s->free_head = uhmm__pfn_index(pfn) % SECTION_PAGES;
	s->nfree++;
}

bool uhmm__page_put_locked(struct uhmm_pagemap *pg, uint64_t pfn)
{
	struct uhmm__dpage *d = uhmm__dpage(pg, pfn);

	if (!d || !(uhmm__dflags(d) & UHMM__DPAGE_ALLOCATED) || d->refs == 0)
		return false; /* foreign, free, or a double put: nothing changes */
	if (--d->refs)
		return false;
	uhmm__assert(!uhmm__dpage_ps(d)); /* a page holding data is never freed */
	page_release(pg, d, pfn);
	if (!pg->cfg.ops || !pg->cfg.ops->page_free)
		return false;
	pg->callbacks++; /* teardown waits for it */
	return true;
}

void uhmm__page_free_notify(struct uhmm_pagemap *pg, uint64_t pfn)
{
	pg->cfg.ops->page_free(pg, pfn);
	pthread_mutex_lock(&pg->lock);
	pg->callbacks--;
	pthread_cond_broadcast(&pg->cond);
	pthread_mutex_unlock(&pg->lock);
}

UHMM__EXPORT int uhmm_page_put(struct uhmm_pagemap *pg, uint64_t pfn)
{
	struct uhmm__dpage *d;
	bool notify;

	if (!pg)
		return -EINVAL;
	pthread_mutex_lock(&pg->lock);
	d = uhmm__dpage(pg, pfn);
	if (!d || !(uhmm__dflags(d) & UHMM__DPAGE_ALLOCATED) || d->refs == 0) {
		pthread_mutex_unlock(&pg->lock);
		return -EINVAL; /* foreign, free, or a double put: nothing changes */
	}
	notify = uhmm__page_put_locked(pg, pfn);
	if (!notify)
		pthread_cond_broadcast(&pg->cond);
	pthread_mutex_unlock(&pg->lock);
	if (notify)
		uhmm__page_free_notify(pg, pfn); /* outside the lock: it may allocate here */
	return 0;
}

/* --- destinations ------------------------------------------------------------ */

int uhmm__dpage_claim_locked(struct uhmm_pagemap *pg, uint64_t pfn)
{
	struct uhmm__dpage *d = uhmm__dpage(pg, pfn);
	if (!d || !(uhmm__dflags(d) & UHMM__DPAGE_ALLOCATED) || uhmm__dpage_claimed(d) ||
	    d->refs == 0 || uhmm__dpage_ps(d))
		return -EINVAL;
	uhmm__dpage_set_claimed(d, true);
	return 0;
}

void uhmm__dpage_unclaim(struct uhmm_pagemap *pg, uint64_t pfn)
{
	struct uhmm__dpage *d;

	pthread_mutex_lock(&pg->lock);
	d = uhmm__dpage(pg, pfn);
	if (d)
		uhmm__dpage_set_claimed(d, false);
	pthread_mutex_unlock(&pg->lock);
}

void uhmm__dpage_mark(struct uhmm_pagemap *pg, uint64_t first, size_t n, bool dirty)
{
	unsigned int set = dirty ? UHMM__DPAGE_DIRTY : 0, clear = dirty ? 0 : UHMM__DPAGE_DIRTY;

	pthread_mutex_lock(&pg->lock);
	for (size_t i = 0; i < n;) {
		/* One section lookup for each section the run crosses. */
		struct uhmm__section *s = uhmm__section_of(pg, first + i);
		unsigned int k = uhmm__pfn_index(first + i) % SECTION_PAGES;
		size_t in = SECTION_PAGES - k < n - i ? SECTION_PAGES - k : n - i;

		for (size_t x = 0; s && x < in; x++)
			uhmm__dflags_set(&s->desc[k + x], set, clear);
		i += in;
	}
	pthread_mutex_unlock(&pg->lock);
}

/* --- put lists ---------------------------------------------------------------- */

void uhmm__put_list_add(struct uhmm__put_list *l, struct uhmm_pagemap *pg, uint64_t pfn)
{
	if (!pg)
		return;
	if (l->n == l->cap) {
		size_t cap = l->cap ? 2 * l->cap : 16;
		void *v = uhmm__realloc(l->v, cap * sizeof(*l->v));

		if (!v) {
			/* Owed, on the descriptor: the pagemap reaps it later. */
			struct uhmm__dpage *d;

			pthread_mutex_lock(&pg->lock);
			d = uhmm__dpage(pg, pfn);
			if (d && !(uhmm__dflags(d) & UHMM__DPAGE_DEFERRED)) {
				uhmm__dflags_set(d, UHMM__DPAGE_DEFERRED, 0);
				atomic_fetch_add(&pg->deferred, 1);
			}
			pthread_mutex_unlock(&pg->lock);
			return;
		}
		l->v = v;
		l->cap = cap;
	}
	l->v[l->n].pg = pg;
	l->v[l->n].pfn = pfn;
	l->n++;
}

void uhmm__put_list(struct uhmm__put_list *l)
{
	for (size_t i = 0; i < l->n; i++)
		uhmm_page_put(l->v[i].pg, l->v[i].pfn);
	uhmm__free(l->v);
	l->v = NULL;
	l->n = l->cap = 0;
}

void uhmm__pagemap_reap(struct uhmm_pagemap *pg)
{
	while (atomic_load(&pg->deferred)) {
		uint64_t pfn = 0;
		bool found = false;

		pthread_mutex_lock(&pg->lock);
		for (unsigned int si = 0; si < atomic_load(&pg->nsections) && !found; si++) {
			struct uhmm__section *s = uhmm__section_at(pg, si);

			for (unsigned int i = 0; s && atomic_load(&s->live) && i < SECTION_PAGES && !found;
			     i++) {
				if (uhmm__dflags(&s->desc[i]) & UHMM__DPAGE_DEFERRED) {
					uhmm__dflags_set(&s->desc[i], 0, UHMM__DPAGE_DEFERRED);
					pfn = uhmm__pfn(pg->slot, (uint64_t)si * SECTION_PAGES + i);
					found = true;
				}
			}
		}
		if (found)
			atomic_fetch_sub(&pg->deferred, 1);
		else
			atomic_store(&pg->deferred, 0);
		pthread_mutex_unlock(&pg->lock);
		if (found)
			uhmm_page_put(pg, pfn);
	}
}

/* --- the device's access to its own memory ---------------------------------- */

UHMM__EXPORT void *uhmm_pagemap_page_addr(struct uhmm_pagemap *pg, uint64_t pfn)
{
	struct uhmm__dpage *d;
	void *p;

	if (!pg)
		return NULL;
	pthread_mutex_lock(&pg->lock);
	p = uhmm__dpage_storage(pg, pfn);
	d = p ? uhmm__dpage(pg, pfn) : NULL;
	if (d)
		uhmm__dflags_set(d, UHMM__DPAGE_DIRTY, 0); /* the device may write: scrub */
	pthread_mutex_unlock(&pg->lock);
	return p;
}

UHMM__EXPORT int uhmm_pagemap_read(struct uhmm_pagemap *pg, uint64_t pfn, void *buf)
{
	char *st = pg ? uhmm_pagemap_page_addr(pg, pfn) : NULL;

	if (!st)
		return -EINVAL;
	if (uhmm__storage_backed(pg, pfn))
		memcpy(buf, st, UHMM__PAGE_SIZE);
	else
		memset(buf, 0, UHMM__PAGE_SIZE); /* empty: the device page holds zeros */
	return 0;
}

UHMM__EXPORT int uhmm_pagemap_write(struct uhmm_pagemap *pg, uint64_t pfn, const void *buf)
{
	char *st = pg ? uhmm_pagemap_page_addr(pg, pfn) : NULL;

	if (!st)
		return -EINVAL;
	uhmm__dpage_mark(pg, pfn, 1, true);
	memcpy(st, buf, UHMM__PAGE_SIZE); /* a hole takes an ordinary kernel fault */
	return 0;
}

/* --- removal, statistics, teardown ------------------------------------------- */

/* Pages of section @si in use (allocated). Under lock. */
static size_t section_in_use(struct uhmm_pagemap *pg, unsigned int si)
{
	return SECTION_PAGES - uhmm__section_at(pg, si)->nfree;
}

UHMM__EXPORT int uhmm_pagemap_remove_memory(struct uhmm_pagemap *pg, unsigned int section,
					    unsigned int flags)
{
	struct uhmm__section *s;
	char *storage;

	if (!pg || (flags & ~UHMM_PAGEMAP_EVICT))
		return -EINVAL;
	pthread_mutex_lock(&pg->lock);
	s = uhmm__section_at(pg, section);
	if (!s || !atomic_load(&s->live)) {
		pthread_mutex_unlock(&pg->lock);
		return -EINVAL;
	}
	if (section_in_use(pg, section) && !(flags & UHMM_PAGEMAP_EVICT)) {
		pthread_mutex_unlock(&pg->lock);
		return -EBUSY;
	}
	pthread_mutex_unlock(&pg->lock);
	if (flags & UHMM_PAGEMAP_EVICT)
		uhmm__pagemap_evict(pg, uhmm__pfn(pg->slot, (uint64_t)section * SECTION_PAGES),
				    SECTION_PAGES);
	pthread_mutex_lock(&pg->lock);
	if (section_in_use(pg, section)) {
		pthread_mutex_unlock(&pg->lock);
		return -EBUSY; /* referenced from outside, or could not come home */
	}
	atomic_store(&s->live, false);
	storage = s->storage;
	s->storage = NULL;
	pg->pages_total -= SECTION_PAGES;
	pthread_mutex_unlock(&pg->lock);
	if (storage)
		storage_free(storage);
	return 0;
}

UHMM__EXPORT void uhmm_pagemap_stats(struct uhmm_pagemap *pg, struct uhmm_pagemap_stats *out)
{
	memset(out, 0, sizeof(*out));
	if (atomic_load(&pg->deferred))
		uhmm__pagemap_reap(pg);
	pthread_mutex_lock(&pg->lock);
	out->pages_total = pg->pages_total;
	for (unsigned int i = 0; i < atomic_load(&pg->nsections); i++) {
		struct uhmm__section *s = uhmm__section_at(pg, i);

		if (s && atomic_load(&s->live))
			out->pages_free += s->nfree;
		if (s)
			out->metadata_bytes += sizeof(*s);
	}
	out->migrated_to = pg->migrated_to;
	out->migrated_from = pg->migrated_from;
	out->faults = pg->faults;
	out->alloc_failures = pg->alloc_failures;
	pthread_mutex_unlock(&pg->lock);
}

/* Pages holding data for the mm, and pages allocated at all. */
static void usage(struct uhmm_pagemap *pg, uint64_t *holding, uint64_t *allocated)
{
	*holding = *allocated = 0;
	uhmm__lock(&pg->mm->lock);
	pthread_mutex_lock(&pg->lock);
	for (unsigned int si = 0; si < atomic_load(&pg->nsections); si++) {
		struct uhmm__section *s = uhmm__section_at(pg, si);

		for (unsigned int k = 0; s && atomic_load(&s->live) && k < SECTION_PAGES; k++) {
			unsigned int f = uhmm__dflags(&s->desc[k]);

			*allocated += !!(f & UHMM__DPAGE_ALLOCATED);
			*holding += (f & UHMM__DPAGE_ALLOCATED) && uhmm__dpage_ps(&s->desc[k]);
		}
	}
	pthread_mutex_unlock(&pg->lock);
	uhmm__unlock(&pg->mm->lock);
}

static void release_memory(struct uhmm_pagemap *pg)
{
	for (unsigned int i = 0; i < atomic_load(&pg->nsections); i++) {
		struct uhmm__section *s = uhmm__section_at(pg, i);

		if (s && s->storage)
			storage_free(s->storage);
		uhmm__free(s);
	}
	for (unsigned int i = 0; i < UHMM__SECTION_DIR; i++)
		uhmm__free(pg->dir[i]);
	pthread_mutex_destroy(&pg->lock);
	pthread_cond_destroy(&pg->cond);
	uhmm__free(pg);
}

UHMM__EXPORT int uhmm_pagemap_free(struct uhmm_pagemap *pg)
{
	uint64_t holding, allocated;

	if (!pg)
		return 0;
	if (!uhmm__mm_live(pg->mm) || pg->mm->pid != getpid()) {
		/* A fork child's copy: nothing to bring home, only memory to let go. */
		release_memory(pg);
		return 0;
	}
	/* Nothing is lost: every page holding data for the mm comes home. */
	uhmm__pagemap_evict(pg, uhmm__pfn(pg->slot, 0), (uint64_t)atomic_load(&pg->nsections) * SECTION_PAGES);
	uhmm__pagemap_reap(pg);
	pthread_mutex_lock(&pg->lock);
	while (pg->callbacks) /* page_free calls still running: they end */
		pthread_cond_wait(&pg->cond, &pg->lock);
	pthread_mutex_unlock(&pg->lock);
	usage(pg, &holding, &allocated);
	if (holding || allocated)
		return -EBUSY; /* could not come home, or referenced from outside */
	uhmm__pagemap_detach(pg->mm, pg);
	/* No new fault-back can find it now; wait for those under way. */
	pthread_mutex_lock(&pg->lock);
	while (pg->users)
		pthread_cond_wait(&pg->cond, &pg->lock);
	pthread_mutex_unlock(&pg->lock);
	release_memory(pg);
	return 0;
}

UHMM__EXPORT unsigned long uhmm_pagemap_evict(struct uhmm_pagemap *pg)
{
	uint64_t holding, allocated;

	if (!pg)
		return 0;
	uhmm__pagemap_evict(pg, uhmm__pfn(pg->slot, 0), (uint64_t)atomic_load(&pg->nsections) * SECTION_PAGES);
	usage(pg, &holding, &allocated);
	return holding;
}
