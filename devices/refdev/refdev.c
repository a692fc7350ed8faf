/* SPDX-License-Identifier: MIT */
/*
 * refdev.c - the reference device: uhmm's dmirror (Linux lib/test_hmm.c).
 *
 * What a device built on uhmm looks like, end to end:
 *  - its page table: a hash of page address -> entry (a uhmm_range_fault
 *    output), kept by the retry protocol: mirror() faults with a sequence
 *    from uhmm_interval_read_begin(), then commits under the device lock
 *    only if uhmm_interval_read_retry() says nothing changed;
 *  - its invalidate callback clears entries under the same lock, for every
 *    event (its own migrations too: it re-maps what it migrated itself);
 *  - its memory: a host-storage pagemap, so migrations are UFFDIO_MOVEs;
 *  - its migrations follow the kernel's device contract: it allocates its
 *    own pages (a whole 2 MiB unit where the run allows; the one-shot
 *    FAIL_ALLOC flag fails its next allocation, as dmirror's does), fills
 *    dst, and lets uhmm_migrate_copy() move the data;
 *  - its access to system memory: by virtual address, through
 *    process_vm_readv/writev, so a page that vanishes under it is an error
 *    the device sees (it re-faults), never a crash of the process.
 *
 * Locking: dev->lock guards the table. It is never held while touching the
 * caller's buffers (they may be managed memory that faults into uhmm, whose
 * fault path may invalidate, which takes dev->lock).
 */
#include <errno.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stddef.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/uio.h>
#include <unistd.h>

#include "uhmm.h"
#include "uhmm/device.h"
#include "uhmm/refdev.h"

#define PAGE 4096ul
#define NBUCKETS 4096u
#define PT_EXCLUSIVE (1UL << 58) /* entry: the page is held exclusively */
/* Part of libuhmm's public API (include/uhmm/refdev.h). */
#define UHMM__PUBLIC_REFDEV __attribute__((visibility("default")))

struct pte {
	uintptr_t va;
	unsigned long entry; /* UHMM_PFN_* as uhmm_range_fault gave it */
	struct pte *next;
};

struct uhmm_refdev {
	struct uhmm_mm *mm;
	struct uhmm_pagemap *pgmap;
	struct uhmm_interval_notifier notifier; /* the whole address space */
	pthread_mutex_t lock;			/* the table */
	struct pte *buckets[NBUCKETS];
	size_t nptes;
	atomic_bool fail_alloc; /* FLAGS FAIL_ALLOC: the next allocation fails */
	char owner_tag;		/* &owner_tag is the device's owner identity */
};

/* --- the page table ------------------------------------------------------ */

static unsigned int hash(uintptr_t va)
{
	return (unsigned int)((va >> 12) * 0x9e3779b97f4a7c15ull >> 52) % NBUCKETS;
}

static struct pte **pt_slot(struct uhmm_refdev *d, uintptr_t va)
{
	struct pte **pp = &d->buckets[hash(va)];

	while (*pp && (*pp)->va != va)
		pp = &(*pp)->next;
	return pp;
}

static unsigned long pt_get(struct uhmm_refdev *d, uintptr_t va)
{
	struct pte *p = *pt_slot(d, va);

	return p ? p->entry : 0;
}

static int pt_set(struct uhmm_refdev *d, uintptr_t va, unsigned long entry)
{
	struct pte **pp = pt_slot(d, va);

	if (*pp) {
		(*pp)->entry = entry;
		return 0;
	}
	*pp = malloc(sizeof(**pp));
	if (!*pp)
		return -ENOMEM;
	(*pp)->va = va;
	(*pp)->entry = entry;
	(*pp)->next = NULL;
	d->nptes++;
	return 0;
}

static void pt_del(struct uhmm_refdev *d, uintptr_t va)
{
	struct pte **pp = pt_slot(d, va), *p = *pp;

	if (p) {
		*pp = p->next;
		free(p);
		d->nptes--;
	}
}

/* Drop every entry of [s, e): by page for small ranges, by bucket otherwise. */
static void pt_clear(struct uhmm_refdev *d, uintptr_t s, uintptr_t e)
{
	if ((e - s) / PAGE < d->nptes) {
		for (uintptr_t va = s; va < e; va += PAGE)
			pt_del(d, va);
		return;
	}
	for (unsigned int b = 0; b < NBUCKETS; b++) {
		struct pte **pp = &d->buckets[b];

		while (*pp) {
			if ((*pp)->va >= s && (*pp)->va < e) {
				struct pte *p = *pp;

				*pp = p->next;
				free(p);
				d->nptes--;
			} else {
				pp = &(*pp)->next;
			}
		}
	}
}

static bool invalidate(struct uhmm_interval_notifier *n, const struct uhmm_notifier_range *r,
		       unsigned long cur_seq)
{
	struct uhmm_refdev *d = (struct uhmm_refdev *)((char *)n - offsetof(struct uhmm_refdev,
									  notifier));

	pthread_mutex_lock(&d->lock);
	uhmm_interval_set_seq(n, cur_seq);
	pt_clear(d, r->start, r->end);
	pthread_mutex_unlock(&d->lock);
	return true;
}

static const struct uhmm_interval_notifier_ops notifier_ops = { .invalidate = invalidate };

/* --- faulting: the retry protocol ----------------------------------------- */

/*
 * Mirror [s, e) into the table: fault with @flags (0: a snapshot), commit
 * under the lock only if nothing was invalidated meanwhile. With
 * @device_only, only the device's own pages are committed.
 */
static int mirror_range(struct uhmm_refdev *d, uintptr_t s, uintptr_t e, unsigned long flags,
			bool device_only)
{
	size_t n = (e - s) / PAGE;
	unsigned long *pfns = calloc(n, sizeof(*pfns));
	struct uhmm_range r = {
		.notifier = &d->notifier,
		.start = s,
		.end = e,
		.hmm_pfns = pfns,
		.default_flags = flags,
		.dev_private_owner = &d->owner_tag,
	};
	int ret;

	if (!pfns)
		return -ENOMEM;
	for (;;) {
		r.notifier_seq = uhmm_interval_read_begin(&d->notifier);
		ret = uhmm_range_fault(&r);
		if (ret == -EBUSY)
			continue;
		if (ret)
			break;
		pthread_mutex_lock(&d->lock);
		if (uhmm_interval_read_retry(&d->notifier, r.notifier_seq)) {
			pthread_mutex_unlock(&d->lock);
			continue;
		}
		for (size_t i = 0; i < n && !ret; i++)
			if ((pfns[i] & UHMM_PFN_VALID) &&
			    (!device_only || (pfns[i] & UHMM_PFN_DEVICE_PRIVATE)))
				ret = pt_set(d, s + i * PAGE, pfns[i]);
		pthread_mutex_unlock(&d->lock);
		break;
	}
	free(pfns);
	return ret;
}

static int mirror(struct uhmm_refdev *d, uintptr_t s, uintptr_t e, bool write)
{
	return mirror_range(d, s, e, UHMM_PFN_REQ_FAULT | (write ? UHMM_PFN_REQ_WRITE : 0), false);
}

/* --- moving bytes between the device and memory ----------------------------- */

static int sys_rw(uintptr_t va, void *buf, bool write)
{
	struct iovec local = { .iov_base = buf, .iov_len = PAGE };
	struct iovec remote = { .iov_base = (void *)va, .iov_len = PAGE };
	ssize_t r = write ? process_vm_writev(getpid(), &local, 1, &remote, 1, 0)
			  : process_vm_readv(getpid(), &local, 1, &remote, 1, 0);

	return r == (ssize_t)PAGE ? 0 : -EFAULT;
}

/*
 * Copy the pages of [s, e) between the device's view and @bounce, under the
 * lock. Return 0, or -ENOENT at the first page the table lacks (*@at tells
 * which): the caller faults from there and comes back.
 */
static int access_locked(struct uhmm_refdev *d, uintptr_t s, uintptr_t e, char *bounce, bool write,
			 uintptr_t *at)
{
	for (uintptr_t va = *at; va < e; va += PAGE) {
		unsigned long en = pt_get(d, va);
		char *buf = bounce + (va - s);
		void *dev;

		if (!(en & UHMM_PFN_VALID) || (write && !(en & UHMM_PFN_WRITE))) {
			*at = va;
			return -ENOENT;
		}
		if (en & UHMM_PFN_DEVICE_PRIVATE) {
			/* Its own memory: never fault under the lock (see header). */
			if (write)
				uhmm_pagemap_write(d->pgmap, uhmm_pfn_frame(en), buf);
			else
				uhmm_pagemap_read(d->pgmap, uhmm_pfn_frame(en), buf);
			continue;
		}
		dev = en & PT_EXCLUSIVE ? uhmm_device_exclusive_addr(d->mm, va, &d->owner_tag) : NULL;
		if (dev) {
			if (write)
				memcpy(dev, buf, PAGE);
			else
				memcpy(buf, dev, PAGE);
		} else if ((en & PT_EXCLUSIVE) || sys_rw(va, buf, write)) {
			/* Gone under us: drop the entry and fault it again. */
			pt_del(d, va);
			*at = va;
			return -ENOENT;
		}
	}
	return 0;
}

static int do_access(struct uhmm_refdev *d, struct uhmm_refdev_cmd *c, bool write)
{
	uintptr_t s = c->addr, e = s + c->npages * PAGE, at = s;
	char *bounce = malloc(c->npages * PAGE);
	int r;

	if (!bounce)
		return -ENOMEM;
	if (write)
		memcpy(bounce, (void *)(uintptr_t)c->ptr, c->npages * PAGE);
	for (int rounds = 0;; rounds++) {
		pthread_mutex_lock(&d->lock);
		r = access_locked(d, s, e, bounce, write, &at);
		pthread_mutex_unlock(&d->lock);
		if (r != -ENOENT || rounds > 64)
			break;
		c->faults++;
		r = mirror(d, at, e, write);
		if (r)
			break;
	}
	if (r == -ENOENT)
		r = -EBUSY; /* could not keep the range mapped: heavy churn */
	if (!r && !write)
		memcpy((void *)(uintptr_t)c->ptr, bounce, c->npages * PAGE);
	if (!r)
		c->cpages = c->npages;
	free(bounce);
	return r;
}

/* --- migration ----------------------------------------------------------- */

/* The device's allocator: one page, or a 2 MiB unit (@unit). */
static int devmem_alloc(struct uhmm_refdev *d, bool unit, uint64_t *pfn)
{
	if (atomic_exchange(&d->fail_alloc, false))
		return -ENOMEM; /* FAIL_ALLOC: this one fails, once */
	return unit ? uhmm_pagemap_alloc_unit(d->pgmap, pfn) : uhmm_pagemap_alloc_page(d->pgmap, pfn);
}

/*
 * dmirror_migrate_alloc_and_copy: a destination for every selected page,
 * a whole unit for a 2 MiB-aligned run (the source says COMPOUND), single
 * pages otherwise or when the unit cannot be had; a page the device cannot
 * allocate stays home. uhmm moves the data (host storage: no copy).
 */
static void alloc_and_copy(struct uhmm_refdev *d, struct uhmm_migrate *m)
{
	for (unsigned long i = 0; i < m->npages; i++) {
		unsigned long w;
		uint64_t pfn;

		if (!(m->src[i] & UHMM_MIGRATE_PFN_MIGRATE))
			continue;
		if ((m->src[i] & UHMM_MIGRATE_PFN_COMPOUND) && i + 512 <= m->npages &&
		    devmem_alloc(d, true, &pfn) == 0) {
			for (unsigned long k = 0; k < 512; k++)
				m->dst[i + k] = uhmm_migrate_pfn_device(pfn + k) |
						(m->src[i + k] & UHMM_MIGRATE_PFN_WRITE);
			m->dst[i] |= UHMM_MIGRATE_PFN_COMPOUND;
			i += 511;
			continue;
		}
		if (devmem_alloc(d, false, &pfn))
			continue;
		w = m->src[i] & UHMM_MIGRATE_PFN_WRITE;
		m->dst[i] = uhmm_migrate_pfn_device(pfn) | w;
	}
	uhmm_migrate_copy(m);
}

/* Migrate [s, e) (one mapping) to the device and map what moved. */
static int migrate_chunk(struct uhmm_refdev *d, uintptr_t s, uintptr_t e)
{
	size_t n = (e - s) / PAGE;
	unsigned long *src = calloc(n, sizeof(*src)), *dst = calloc(n, sizeof(*dst));
	struct uhmm_migrate m = {
		.mm = d->mm, .start = s, .end = e, .src = src, .dst = dst,
		.pgmap_owner = &d->owner_tag,
		.flags = UHMM_MIGRATE_SELECT_SYSTEM | UHMM_MIGRATE_SELECT_COMPOUND,
	};
	int r;

	if (!src || !dst) {
		free(src);
		free(dst);
		return -ENOMEM;
	}
	r = uhmm_migrate_setup(&m);
	if (r)
		goto out;
	if (m.cpages)
		alloc_and_copy(d, &m);
	uhmm_migrate_pages(&m);
	uhmm_migrate_finalize(&m);
out:
	free(src);
	free(dst);
	return r;
}

/* Walk the mappings of [s, e) as dmirror walks VMAs: holes and PROT_NONE -> -EINVAL. */
typedef int (*chunk_fn)(struct uhmm_refdev *d, uintptr_t s, uintptr_t e);

static int for_each_mapping(struct uhmm_refdev *d, uintptr_t s, uintptr_t e, chunk_fn fn)
{
	while (s < e) {
		uintptr_t ms, me;
		int prot, r = uhmm_mapping_find(d->mm, s, &ms, &me, &prot);

		if (r == -ENOENT || (!r && !(prot & PROT_READ)))
			return -EINVAL;
		if (r)
			return r;
		me = me < e ? me : e;
		r = fn(d, s, me);
		if (r)
			return r;
		s = me;
	}
	return 0;
}

/*
 * Map every page of [s, e) the device holds: a snapshot whose device entries
 * are committed. Pages it held before this migration were unmapped by its
 * MIGRATE invalidation too.
 */
static int map_device_pages(struct uhmm_refdev *d, uintptr_t s, uintptr_t e)
{
	return mirror_range(d, s, e, 0, true);
}

static int migrate_to_dev(struct uhmm_refdev *d, struct uhmm_refdev_cmd *c)
{
	uintptr_t s = c->addr, e = s + c->npages * PAGE, at = s;
	char *bounce;
	int r = for_each_mapping(d, s, e, migrate_chunk);

	if (!r)
		r = for_each_mapping(d, s, e, map_device_pages);
	if (r)
		return r;
	/* Return what the device now holds: read it without faulting. */
	bounce = calloc(c->npages, PAGE);
	if (!bounce)
		return -ENOMEM;
	pthread_mutex_lock(&d->lock);
	r = access_locked(d, s, e, bounce, false, &at);
	pthread_mutex_unlock(&d->lock);
	c->cpages = (at - s) / PAGE;
	if (!r)
		c->cpages = c->npages;
	memcpy((void *)(uintptr_t)c->ptr, bounce, c->cpages * PAGE);
	free(bounce);
	return r;
}

static int to_sys_chunk(struct uhmm_refdev *d, uintptr_t s, uintptr_t e)
{
	long r = uhmm_migrate_to_ram(d->mm, s, e, &d->owner_tag);

	return r < 0 ? (int)r : 0;
}

/* --- snapshot and exclusive -------------------------------------------------- */

static int snapshot(struct uhmm_refdev *d, struct uhmm_refdev_cmd *c)
{
	size_t n = c->npages;
	unsigned long *pfns = calloc(n, sizeof(*pfns));
	unsigned char *out = (unsigned char *)(uintptr_t)c->ptr;
	struct uhmm_range r = {
		.notifier = &d->notifier,
		.start = c->addr,
		.end = c->addr + n * PAGE,
		.hmm_pfns = pfns,
		.dev_private_owner = &d->owner_tag,
	};
	int ret;

	if (!pfns)
		return -ENOMEM;
	do {
		r.notifier_seq = uhmm_interval_read_begin(&d->notifier);
		ret = uhmm_range_fault(&r);
	} while (ret == -EBUSY);
	for (size_t i = 0; !ret && i < n; i++) {
		unsigned long p = pfns[i];
		unsigned char b;

		if (p & UHMM_PFN_ERROR) {
			b = UHMM_REFDEV_PROT_ERROR;
		} else if (!(p & UHMM_PFN_VALID)) {
			b = UHMM_REFDEV_PROT_NONE;
		} else {
			if (p & UHMM_PFN_DEVICE_PRIVATE)
				b = UHMM_REFDEV_PROT_DEV_PRIVATE_LOCAL;
			else if (p & UHMM_PFN_ZERO)
				b = UHMM_REFDEV_PROT_ZERO;
			else
				b = 0;
			b |= (p & UHMM_PFN_WRITE) ? UHMM_REFDEV_PROT_WRITE : UHMM_REFDEV_PROT_READ;
			if (uhmm_pfn_order(p) == 9)
				b |= UHMM_REFDEV_PROT_PMD;
			else if (uhmm_pfn_order(p) == 18)
				b |= UHMM_REFDEV_PROT_PUD;
		}
		out[i] = b;
	}
	if (!ret)
		c->cpages = n;
	free(pfns);
	return ret;
}

static int exclusive(struct uhmm_refdev *d, struct uhmm_refdev_cmd *c)
{
	uintptr_t s = c->addr, e = s + c->npages * PAGE;
	char *out = (char *)(uintptr_t)c->ptr, *bounce = calloc(c->npages, PAGE);
	long n;

	if (!bounce)
		return -ENOMEM;
	n = uhmm_make_device_exclusive(d->mm, s, e, &d->owner_tag);
	if (n < 0) {
		free(bounce);
		return (int)n;
	}
	pthread_mutex_lock(&d->lock);
	for (uintptr_t va = s; va < e; va += PAGE) {
		void *p = uhmm_device_exclusive_addr(d->mm, va, &d->owner_tag);

		if (!p)
			continue;
		pt_set(d, va, UHMM_PFN_VALID | UHMM_PFN_WRITE | PT_EXCLUSIVE);
		memcpy(bounce + (va - s), p, PAGE);
	}
	pthread_mutex_unlock(&d->lock);
	memcpy(out, bounce, c->npages * PAGE);
	free(bounce);
	c->cpages = (uint64_t)n;
	return 0;
}

static int check_exclusive(struct uhmm_refdev *d, struct uhmm_refdev_cmd *c)
{
	uintptr_t s = c->addr, e = s + c->npages * PAGE;
	int r = 0;

	pthread_mutex_lock(&d->lock);
	for (uintptr_t va = s; va < e && !r; va += PAGE)
		if (pt_get(d, va) & PT_EXCLUSIVE)
			r = -EPERM; /* the CPU has not taken it back yet */
	pthread_mutex_unlock(&d->lock);
	return r;
}

/* --- the device ------------------------------------------------------------------ */

UHMM__PUBLIC_REFDEV int uhmm_refdev_new(struct uhmm_refdev **ret, struct uhmm_mm *mm,
					const struct uhmm_refdev_config *cfg)
{
	struct uhmm_refdev_config def = { .type = UHMM_REFDEV_PRIVATE };
	struct uhmm_pagemap_config pc = { .type = UHMM_PAGEMAP_PRIVATE, .host_storage = true };
	struct uhmm_refdev *d;
	size_t bytes;
	int r;

	if (!ret || !mm)
		return -EINVAL;
	cfg = cfg ? cfg : &def;
	if (cfg->type == UHMM_REFDEV_COHERENT)
		return -EOPNOTSUPP;
	if (cfg->type != UHMM_REFDEV_PRIVATE || cfg->memory_bytes % (2u << 20))
		return -EINVAL;
	bytes = cfg->memory_bytes ? cfg->memory_bytes : (256u << 20);
	d = calloc(1, sizeof(*d));
	if (!d)
		return -ENOMEM;
	d->mm = mm;
	pthread_mutex_init(&d->lock, NULL);
	pc.owner = &d->owner_tag;
	pc.priv = d;
	r = uhmm_pagemap_new(&d->pgmap, mm, &pc);
	if (r)
		goto out_free;
	r = uhmm_pagemap_add_memory(d->pgmap, bytes);
	if (r)
		goto out_pgmap;
	r = uhmm_interval_notifier_insert(&d->notifier, mm, 0, UINTPTR_MAX >> 8, &notifier_ops);
	if (r)
		goto out_pgmap;
	*ret = d;
	return 0;

out_pgmap:
	uhmm_pagemap_free(d->pgmap);
out_free:
	pthread_mutex_destroy(&d->lock);
	free(d);
	return r;
}

UHMM__PUBLIC_REFDEV void uhmm_refdev_free(struct uhmm_refdev *d)
{
	if (!d)
		return;
	uhmm_interval_notifier_remove(&d->notifier);
	/*
	 * Brings every page home first. Nobody but the device holds its pages,
	 * so -EBUSY means pages were in flight (a migration of another thread
	 * ending): try again.
	 */
	for (int tries = 0; uhmm_pagemap_free(d->pgmap); tries++) {
		if (tries == 1000)
			abort(); /* cannot happen: a page the device cannot give back */
		usleep(1000);
	}
	pt_clear(d, 0, UINTPTR_MAX);
	pthread_mutex_destroy(&d->lock);
	free(d);
}

UHMM__PUBLIC_REFDEV void *uhmm_refdev_owner(struct uhmm_refdev *d)
{
	return &d->owner_tag;
}

/*
 * The caller's buffer: mapped, and writable where the device writes it
 * (dmirror's copy_to_user/copy_from_user answer -EFAULT otherwise).
 */
static bool user_buf_ok(struct uhmm_refdev *d, uint64_t ptr, size_t len, bool write)
{
	uintptr_t p = (uintptr_t)ptr, e = p + len;

	if (!ptr || e < p)
		return false;
	while (p < e) {
		uintptr_t ms, me;
		int prot;

		if (uhmm_mapping_find(d->mm, p, &ms, &me, &prot) || ms > p ||
		    !(prot & PROT_READ) || (write && !(prot & PROT_WRITE)))
			return false;
		p = me;
	}
	return true;
}

/* Which commands use the buffer, and whether the device writes it. */
static bool uses_buf(enum uhmm_refdev_op op, bool *write)
{
	*write = op != UHMM_REFDEV_WRITE;
	return op == UHMM_REFDEV_READ || op == UHMM_REFDEV_WRITE ||
	       op == UHMM_REFDEV_MIGRATE_TO_DEV || op == UHMM_REFDEV_SNAPSHOT ||
	       op == UHMM_REFDEV_EXCLUSIVE;
}

UHMM__PUBLIC_REFDEV int uhmm_refdev_cmd(struct uhmm_refdev *d, enum uhmm_refdev_op op,
					struct uhmm_refdev_cmd *c)
{
	bool buf_write;
	bool needs_range = op != UHMM_REFDEV_RELEASE && op != UHMM_REFDEV_FLAGS &&
			   op != UHMM_REFDEV_CHECK_EXCLUSIVE;

	if (!d || !c)
		return -EINVAL;
	c->cpages = 0;
	c->faults = 0;
	if (c->addr % PAGE || c->npages > (UINTPTR_MAX - c->addr) / PAGE ||
	    (needs_range && !c->npages))
		return -EINVAL;
	if (uses_buf(op, &buf_write) &&
	    !user_buf_ok(d, c->ptr, op == UHMM_REFDEV_SNAPSHOT ? c->npages : c->npages * PAGE,
			 buf_write))
		return -EFAULT;
	switch (op) {
	case UHMM_REFDEV_READ:
		return do_access(d, c, false);
	case UHMM_REFDEV_WRITE:
		return do_access(d, c, true);
	case UHMM_REFDEV_MIGRATE_TO_DEV:
		return migrate_to_dev(d, c);
	case UHMM_REFDEV_MIGRATE_TO_SYS: {
		unsigned long before = uhmm_mm_resident(d->mm, c->addr, c->addr + c->npages * PAGE,
							&d->owner_tag);
		int r = for_each_mapping(d, c->addr, c->addr + c->npages * PAGE, to_sys_chunk);

		c->cpages = before - uhmm_mm_resident(d->mm, c->addr, c->addr + c->npages * PAGE,
						      &d->owner_tag);
		return r;
	}
	case UHMM_REFDEV_SNAPSHOT:
		return snapshot(d, c);
	case UHMM_REFDEV_EXCLUSIVE:
		return exclusive(d, c);
	case UHMM_REFDEV_CHECK_EXCLUSIVE:
		return check_exclusive(d, c);
	case UHMM_REFDEV_RELEASE:
		return uhmm_pagemap_evict(d->pgmap) ? -EBUSY : 0;
	case UHMM_REFDEV_FLAGS:
		if (c->npages & ~UHMM_REFDEV_FLAG_FAIL_ALLOC)
			return -EINVAL;
		if (c->npages & UHMM_REFDEV_FLAG_FAIL_ALLOC)
			atomic_store(&d->fail_alloc, true);
		return 0;
	}
	return -EINVAL;
}
