/* SPDX-License-Identifier: MIT */
/*
 * internal.h - libuhmm's private types. Never installed.
 *
 * Lock order (outer first; a lock may be taken while holding any lock
 * above it, never one above while holding one below):
 *
 *   fork gate            not a lock but a barrier: migrations enter it
 *                        before any lock below (fork.c)
 *   mm->event_lock       the userfaultfd reader's lock: whoever reads events
 *                        holds it until they are applied, so taking it proves
 *                        every event read before has been applied; area-table
 *                        changes and migrations' isolation and placement
 *                        hold it too (they must see the books the kernel sees)
 *   notifiers.tree_lock  (read) while calling invalidate callbacks; the
 *                        callbacks take the devices' own locks under it
 *   mm->lock             the area table and every page-state word, and the
 *                        reverse map and claims of device pages (pstate.c)
 *   pagemap->lock        sections, free lists, descriptors' references and
 *                        flags, counters (a migration holds one across a
 *                        run of pages of that pagemap)
 *   mm->staging_lock     the cache of staging mappings (staging.c)
 *   notifiers.seq_lock   the invalidation sequence
 *   the registry lock    (mm.c) slot allocation only
 *
 * None of these is held across a call into a device (copy callbacks,
 * page_free, migrate_to_ram), except invalidate callbacks under tree_lock,
 * and none is held while touching managed memory. mm->lock and pg->lock are
 * never held across a blocking system call that could wait for a uhmm
 * thread; event_lock is held across UFFDIO_MOVE/COPY (which never wait; they
 * fail with -EAGAIN, and the holder then reads the pending events itself:
 * uhmm__events_pump()).
 */
#ifndef UHMM_INTERNAL_H
#define UHMM_INTERNAL_H

#include <pthread.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

#include "uhmm.h"
#include "uhmm/device.h"
#include "sys/sys.h"

#define UHMM__PAGE_SHIFT 12
#define UHMM__PAGE_SIZE ((size_t)1 << UHMM__PAGE_SHIFT)
#define UHMM__PMD_SIZE ((size_t)2 << 20)
#define UHMM__PMD_PAGES 512u
#define UHMM__MAX_THREADS 64
#define UHMM__MAX_MMS 64
#define UHMM__ALL_END (UINTPTR_MAX & ~(UHMM__PAGE_SIZE - 1))

#define UHMM__EXPORT __attribute__((visibility("default")))

static inline bool uhmm__aligned(uintptr_t x)
{
	return (x & (UHMM__PAGE_SIZE - 1)) == 0;
}

/*
 * Validate a user range: page-aligned, non-zero, no overflow.
 * Return: 0 or -EINVAL.
 */
int uhmm__check_range(uintptr_t start, size_t len);

/* --- assertions (assert.c) ------------------------------------------------
 *
 * Two tiers (STYLE.md 13): uhmm__assert() is always on and cheap (a compare
 * on a path that is already doing a system call); uhmm__assert_expensive()
 * walks data and exists only in debug builds (UHMM_DEBUG, set by CMake for
 * CMAKE_BUILD_TYPE=Debug, which the sanitizer runs use). A failure writes
 * one line to stderr (write(2): async-signal-safe) and aborts: a broken
 * invariant of page state means data is about to be lost.
 *
 * uhmm__misuse() is for the caller's mistakes that cannot be reported as an
 * error code (a destructor called in the wrong order, a callback doing what
 * its contract forbids): a message naming the rule, then abort(), never a
 * use-after-free.
 */
void uhmm__assert_fail(const char *expr, const char *file, int line, const char *func)
	__attribute__((noreturn, cold));
void uhmm__misuse(const char *what) __attribute__((noreturn, cold));

#define uhmm__assert(c) \
	((c) ? (void)0 : uhmm__assert_fail(#c, __FILE__, __LINE__, __func__))
#ifdef UHMM_DEBUG
#define uhmm__assert_expensive(c) uhmm__assert(c)
#define UHMM__DEBUG 1
#else
#define uhmm__assert_expensive(c) ((void)0)
#define UHMM__DEBUG 0
#endif

/*
 * A mutex that knows its holder, so that code can assert that the lock it
 * needs is held (mmap_assert_locked in the kernel). The owner is written by
 * the holder only, after locking and before unlocking; relaxed atomics,
 * since only "is it me?" is asked.
 */
struct uhmm__mutex {
	pthread_mutex_t m;
	atomic_ulong owner; /* pthread_self() of the holder, 0 when free */
};

static inline void uhmm__mutex_init(struct uhmm__mutex *l)
{
	pthread_mutex_init(&l->m, NULL);
	atomic_store_explicit(&l->owner, 0, memory_order_relaxed);
}

static inline void uhmm__lock(struct uhmm__mutex *l)
{
	pthread_mutex_lock(&l->m);
	atomic_store_explicit(&l->owner, (unsigned long)pthread_self(), memory_order_relaxed);
}

static inline bool uhmm__trylock(struct uhmm__mutex *l)
{
	if (pthread_mutex_trylock(&l->m))
		return false;
	atomic_store_explicit(&l->owner, (unsigned long)pthread_self(), memory_order_relaxed);
	return true;
}

static inline void uhmm__unlock(struct uhmm__mutex *l)
{
	atomic_store_explicit(&l->owner, 0, memory_order_relaxed);
	pthread_mutex_unlock(&l->m);
}

static inline bool uhmm__held(struct uhmm__mutex *l)
{
	return atomic_load_explicit(&l->owner, memory_order_relaxed) ==
	       (unsigned long)pthread_self();
}

/* --- device page numbers ---------------------------------------------------
 *
 * A device page is named by a page frame number unique in its mm, as a
 * kernel pfn leads to its dev_pagemap: the pagemap's slot in the mm in bits
 * 40..47, the page's index within the pagemap below (section * 512 + page
 * of the section). Slot 0 is never used, so no device pfn is 0.
 */
#define UHMM__PFN_SLOT_SHIFT 40
#define UHMM__PFN_INDEX_MASK ((UINT64_C(1) << UHMM__PFN_SLOT_SHIFT) - 1)
#define UHMM__PFN_MAX_SLOT 255u

static inline uint64_t uhmm__pfn(unsigned int slot, uint64_t index)
{
	return ((uint64_t)slot << UHMM__PFN_SLOT_SHIFT) | index;
}

static inline unsigned int uhmm__pfn_slot(uint64_t pfn)
{
	return (unsigned int)(pfn >> UHMM__PFN_SLOT_SHIFT);
}

static inline uint64_t uhmm__pfn_index(uint64_t pfn)
{
	return pfn & UHMM__PFN_INDEX_MASK;
}

#include "pstate.h"

/* --- areas (area.c) ------------------------------------------------------ */

/*
 * A block of page states, shared by the areas cut from one original area.
 * Splitting an area (munmap of its middle) or moving it (mremap) never
 * copies or allocates state: the pieces point into the same block at their
 * own offsets, and the block goes when its last holder does. Migrations
 * hold a block too while they hold pointers into it. Under mm->lock.
 */
struct uhmm__psblock {
	struct uhmm__ps *ps; /* npages words */
	size_t npages;
	unsigned int refs;   /* areas and migrations pointing here */
};

/* Area flags beyond UHMM_MANAGE_*: internal bookkeeping. */
#define UHMM__AREA_ALLOC (1u << 16) /* mapped by uhmm_alloc(): uhmm_free() may unmap it */

/* A managed area: one contiguous range of one kind, [start, end). */
struct uhmm__area {
	uintptr_t start, end;
	unsigned int flags;	/* UHMM_MANAGE_* | UHMM__AREA_* */
	unsigned int kind;	/* UHMM_AREA_* */
	bool registered;	/* registered with the mm's userfaultfd */
	struct uhmm__psblock *blk;
	size_t blk_off;		/* page index of @start within @blk */
};

/* The sorted, non-overlapping table of areas. Under mm->lock. */
struct uhmm__areas {
	struct uhmm__area *v;
	size_t n, cap;
	/*
	 * Bumped by every cut (unmanage, unmap, the source of an mremap): while
	 * it stays the same, every word is still at the address it had.
	 */
	uint64_t cuts;
};

/* The area containing @addr, or NULL. Under mm->lock. */
struct uhmm__area *uhmm__area_find(struct uhmm__areas *t, uintptr_t addr);
/* Index of the first area with end > @addr (n if none). Under mm->lock. */
size_t uhmm__area_lower(const struct uhmm__areas *t, uintptr_t addr);
/*
 * Cut [start, end) out of the table: areas straddling a boundary are split,
 * the pieces inside are removed. If @moved is not NULL, the removed pieces
 * are appended to it (with their block references) instead of released.
 * The page states of removed pieces must have been dealt with (see
 * uhmm__ps_discard_range()). Return: 0, or -ENOMEM (table unchanged).
 */
int uhmm__areas_cut(struct uhmm__areas *t, uintptr_t start, uintptr_t end,
		    struct uhmm__areas *moved);
/* Insert an area (no overlap allowed). Return 0 or -ENOMEM. */
int uhmm__areas_insert(struct uhmm__areas *t, const struct uhmm__area *a);
void uhmm__areas_release(struct uhmm__areas *t);
/* A fresh block of zeroed states. Return NULL on failure. */
struct uhmm__psblock *uhmm__psblock_new(size_t npages);
void uhmm__psblock_get(struct uhmm__psblock *b);
void uhmm__psblock_put(struct uhmm__psblock *b);
/* Manage a range with mm->event_lock held. 0 or -errno (uhmm_manage()). */
int uhmm__manage_locked(struct uhmm_mm *mm, uintptr_t start, uintptr_t end, unsigned int flags);
/* The mapping holding [start, end): adjacent VMAs alike count as one (area.c). */
int uhmm__mapping_of(struct uhmm_mm *mm, uintptr_t start, uintptr_t end, struct uhmm__vma *vma);
/* Manage [start, end) unless it is already (first device use). 0 or -errno. */
int uhmm__manage_first_use(struct uhmm_mm *mm, uintptr_t start, uintptr_t end);
/*
 * The range is gone from the program (unmapped, or replaced by a new
 * mapping): its device pages are released, pages being migrated are marked
 * discarded, and it leaves the books. Called with event_lock held.
 */
void uhmm__area_remove(struct uhmm_mm *mm, uintptr_t start, uintptr_t end);

/* --- the notifiers (notifier.c) ------------------------------------------ */

struct uhmm__notifiers {
	pthread_rwlock_t tree_lock;	/* the treap; callbacks run under read */
	pthread_mutex_t seq_lock;	/* invalidate_seq, active */
	pthread_cond_t seq_cond;	/* signalled when active drops to 0 */
	unsigned long invalidate_seq;	/* odd while active > 0 */
	unsigned int active;		/* invalidations between begin and end */
	struct uhmm_interval_notifier *root;
	size_t count;
	uint64_t rng;			/* treap priorities; under tree_lock */
};

void uhmm__notifiers_init(struct uhmm__notifiers *ns);
void uhmm__notifiers_fini(struct uhmm__notifiers *ns);
/* Announce @range to every overlapping notifier; return how many. */
unsigned int uhmm__invalidate_begin(struct uhmm_mm *mm, const struct uhmm_notifier_range *range);
void uhmm__invalidate_end(struct uhmm_mm *mm);
/* begin + end, for changes already made or made atomically by the caller. */
void uhmm__invalidate(struct uhmm_mm *mm, uintptr_t start, uintptr_t end,
		      enum uhmm_notify_event event, void *owner);
/* RELEASE to all, then detach every notifier (uhmm_mm_free). */
void uhmm__notifiers_release(struct uhmm_mm *mm);

/*
 * Invalidations the calling thread is announcing itself (interposed calls)
 * so that the matching userfaultfd event, applied later by a service
 * thread, does not announce them a second time. Under mm->lock.
 */
#define UHMM__MAX_SUPPRESS 16
struct uhmm__suppress {
	uintptr_t start, end;
	bool used;
};

/*
 * A MADV_DONTNEED uhmm makes itself on managed memory (a read-only page it
 * has copied into staging): the REMOVE event it raises must neither be
 * announced nor discard the page. Each is consumed by exactly one event
 * with exactly its range. Under mm->lock.
 */
#define UHMM__MAX_OWN_ZAPS 16
struct uhmm__own_zap {
	uintptr_t start, end;
	bool used;
};

/* --- device memory (pagemap.c) --------------------------------------------- */

#define UHMM__DPAGE_ALLOCATED 0x1u
#define UHMM__DPAGE_DIRTY 0x2u	  /* host storage may hold data: scrub before reuse */
#define UHMM__DPAGE_DEFERRED 0x4u /* a put is owed (a put list could not grow) */

/*
 * A device page's descriptor: 16 bytes (the budget).
 *
 * @refs, @flags and @owner (the exclusive store's owner index) belong to
 * the pagemap lock: only its holder writes them, with plain stores (no
 * locked instruction per page); @flags may be read without it (asserts,
 * statistics), hence relaxed atomics.
 *
 * @ps points at the page-state word of the managed page whose data the
 * device page holds (its reverse map), NULL when none; written by pstate.c
 * under mm->lock. @claimed marks a migration's destination not placed yet:
 * set holding both mm->lock and the pagemap lock (or the pagemap lock at
 * allocation, when nobody else can name the page), cleared holding either
 * (placed, under mm->lock; released or handed out, under the pagemap
 * lock), so a set never races a clear. While the page is free, @next_free
 * links the section's free list instead (pagemap lock).
 */
struct uhmm__dpage {
	unsigned int refs;
	_Atomic uint16_t flags;
	uint8_t owner;
	_Atomic uint8_t claimed;
	union {
		_Atomic(struct uhmm__ps *) ps;
		uint64_t next_free;
	};
};
_Static_assert(sizeof(struct uhmm__dpage) == 16, "16 bytes per device page");

static inline unsigned int uhmm__dflags(const struct uhmm__dpage *d)
{
	return atomic_load_explicit(&d->flags, memory_order_relaxed);
}

/* Under the pagemap lock, the flags' only writer: set and clear bits. */
static inline void uhmm__dflags_set(struct uhmm__dpage *d, unsigned int set, unsigned int clear)
{
	atomic_store_explicit(&d->flags, (uint16_t)((uhmm__dflags(d) & ~clear) | set),
			      memory_order_relaxed);
}

static inline struct uhmm__ps *uhmm__dpage_ps(const struct uhmm__dpage *d)
{
	return atomic_load_explicit(&d->ps, memory_order_relaxed);
}

static inline void uhmm__dpage_set_ps(struct uhmm__dpage *d, struct uhmm__ps *p)
{
	atomic_store_explicit(&d->ps, p, memory_order_relaxed);
}

static inline bool uhmm__dpage_claimed(const struct uhmm__dpage *d)
{
	return atomic_load_explicit(&d->claimed, memory_order_relaxed);
}

static inline void uhmm__dpage_set_claimed(struct uhmm__dpage *d, bool c)
{
	atomic_store_explicit(&d->claimed, c, memory_order_relaxed);
}

#define UHMM__SECTION_PAGES 512u
#define UHMM__NO_PAGE UINT64_MAX

/*
 * A 2 MiB sub-section. Once created it is never freed before its pagemap:
 * lookups run without the pagemap lock, so a removed section stays in
 * place, marked, and is reused by the next uhmm_pagemap_add_memory().
 */
struct uhmm__section {
	char *storage;		/* host storage, 2 MiB aligned, or NULL; set before live */
	atomic_bool live;	/* added and not removed; release/acquire with lookups */
	unsigned int nfree;
	uint64_t free_head;	/* index of the first free page, or UHMM__NO_PAGE */
	struct uhmm__dpage desc[UHMM__SECTION_PAGES];
};

/*
 * The sections of a pagemap: a directory of leaves of 512 section pointers,
 * so that growing never moves a pointer a reader holds. 2048 leaves of 512
 * sections of 2 MiB: 2 TiB per pagemap.
 */
#define UHMM__SECTION_LEAF 512u
#define UHMM__SECTION_DIR 2048u

struct uhmm_pagemap {
	struct uhmm_mm *mm;
	unsigned int slot;	/* in mm->pagemaps, 1..255 */
	struct uhmm_pagemap_config cfg;
	pthread_mutex_t lock;	/* see the lock order */
	pthread_cond_t cond;	/* signalled on every put and callback end */
	struct uhmm__section **dir[UHMM__SECTION_DIR];
	atomic_uint nsections;	/* sections ever created; stored (release) after they are set up */
	unsigned int next_section; /* where allocation looks first */
	uint64_t pages_total;
	bool fail_next;		/* tests: the next allocation fails */
	unsigned int callbacks;	/* page_free calls running; teardown waits */
	unsigned int users;	/* CPU fault-backs using it; teardown waits */
	atomic_uint deferred;	/* pages marked DEFERRED (a put is owed) */
	uint64_t migrated_to, migrated_from, faults, alloc_failures;
};

/* 4 KiB of zeros (fault.c): the source of zero fills and device scrubs. */
extern const char uhmm__zero_page[UHMM__PAGE_SIZE];

/* Section @si of @pg, if created. Lock-free (release/acquire with add_memory). */
static inline struct uhmm__section *uhmm__section_at(struct uhmm_pagemap *pg, uint64_t si)
{
	struct uhmm__section **leaf;

	if (si >= atomic_load_explicit(&pg->nsections, memory_order_acquire))
		return NULL;
	leaf = pg->dir[si / UHMM__SECTION_LEAF];
	return leaf ? leaf[si % UHMM__SECTION_LEAF] : NULL;
}

/* The live section holding @pfn, if @pfn is a page of @pg. */
static inline struct uhmm__section *uhmm__section_of(struct uhmm_pagemap *pg, uint64_t pfn)
{
	struct uhmm__section *s;

	if (uhmm__pfn_slot(pfn) != pg->slot)
		return NULL;
	s = uhmm__section_at(pg, uhmm__pfn_index(pfn) / UHMM__SECTION_PAGES);
	return s && atomic_load_explicit(&s->live, memory_order_acquire) ? s : NULL;
}

/* The descriptor of @pfn, if a page of a live section of @pg. */
static inline struct uhmm__dpage *uhmm__dpage(struct uhmm_pagemap *pg, uint64_t pfn)
{
	struct uhmm__section *s = uhmm__section_of(pg, pfn);

	return s ? &s->desc[uhmm__pfn_index(pfn) % UHMM__SECTION_PAGES] : NULL;
}

/* The host storage of @pfn, or NULL. */
static inline void *uhmm__dpage_storage(struct uhmm_pagemap *pg, uint64_t pfn)
{
	struct uhmm__section *s = uhmm__section_of(pg, pfn);

	if (!s || !s->storage)
		return NULL;
	return s->storage + (uhmm__pfn_index(pfn) % UHMM__SECTION_PAGES) * UHMM__PAGE_SIZE;
}

/* Allocate @n (1, or 512 for a whole section) contiguous pages, zeroed. */
int uhmm__pagemap_alloc(struct uhmm_pagemap *pg, size_t n, uint64_t *pfn);
/*
 * The same, the pages claimed as a migration's destinations at once (no
 * other thread can name them yet, so the pagemap lock alone suffices).
 */
int uhmm__pagemap_alloc_claimed(struct uhmm_pagemap *pg, size_t n, uint64_t *pfn);
/* Tests: make the next allocation of @pg fail (a device out of memory). */
void uhmm__pagemap_fail_next(struct uhmm_pagemap *pg);
/* Set or clear DIRTY on [first, first+n). */
void uhmm__dpage_mark(struct uhmm_pagemap *pg, uint64_t first, size_t n, bool dirty);
/*
 * Claim @pfn as a migration's destination: it must be an allocated page of
 * @pg holding no data and not claimed already. Return 0 or -EINVAL. Under
 * mm->lock and pg->lock (callers hold pg->lock across a run of claims).
 */
int uhmm__dpage_claim_locked(struct uhmm_pagemap *pg, uint64_t pfn);
void uhmm__dpage_unclaim(struct uhmm_pagemap *pg, uint64_t pfn);
/*
 * Drop a reference with pg->lock held. True when the page was freed and
 * the device's page_free is owed: call uhmm__page_free_notify() once the
 * lock is dropped (pg->callbacks counts it until then). The caller
 * broadcasts pg->cond.
 */
bool uhmm__page_put_locked(struct uhmm_pagemap *pg, uint64_t pfn);
void uhmm__page_free_notify(struct uhmm_pagemap *pg, uint64_t pfn);
/* Is the host storage of @pfn backed (a page is mapped there)? */
bool uhmm__storage_backed(struct uhmm_pagemap *pg, uint64_t pfn);
/* Bring home the pages of [first, first+n) of @pg that hold data. */
void uhmm__pagemap_evict(struct uhmm_pagemap *pg, uint64_t first, uint64_t n);
/* Give a pagemap a slot (1..255) in the mm; return it or -ENOSPC. */
int uhmm__pagemap_attach(struct uhmm_mm *mm, struct uhmm_pagemap *pg);
void uhmm__pagemap_detach(struct uhmm_mm *mm, struct uhmm_pagemap *pg);

/*
 * Device pages to put once no lock is held (page_free may run device code).
 * Adding cannot fail: when the list cannot grow, the page is marked on its
 * descriptor instead (DEFERRED) and put by the pagemap's next allocation,
 * eviction, statistics or teardown (uhmm__pagemap_reap). uhmm__put_list()
 * puts the listed pages and empties the list.
 */
struct uhmm__put_list {
	struct {
		struct uhmm_pagemap *pg;
		uint64_t pfn;
	} *v;
	size_t n, cap;
};
void uhmm__put_list_add(struct uhmm__put_list *l, struct uhmm_pagemap *pg, uint64_t pfn);
void uhmm__put_list(struct uhmm__put_list *l);
/* Put the pages of @pg marked DEFERRED. No lock held. */
void uhmm__pagemap_reap(struct uhmm_pagemap *pg);

/* --- staging (staging.c) --------------------------------------------------- */

/*
 * A staging area: anonymous memory of uhmm's, registered with the mm's
 * userfaultfd so that UFFDIO_MOVE can land there, 2 MiB-congruent with the
 * range it serves. Owned by one migration at a time.
 */
struct uhmm__staging {
	char *map;	/* the whole mapping */
	size_t maplen;
	char *base;	/* the part serving the range: page i at base + i * 4096 */
	size_t len;
};

#define UHMM__STAGING_CACHE 4

/* A staging area for [start, start+len), empty. 0 or -ENOMEM. AS-safe. */
int uhmm__staging_get(struct uhmm_mm *mm, uintptr_t start, size_t len, struct uhmm__staging *st);
/* Empty it (nothing of one migration may reach the next) and give it back. */
void uhmm__staging_put(struct uhmm_mm *mm, struct uhmm__staging *st);
/* Unmap every cached staging mapping (uhmm_mm_free). */
void uhmm__staging_drop_all(struct uhmm_mm *mm);

/* --- the mm (mm.c) ---------------------------------------------------------- */

struct uhmm_mm {
	int uffd;	 /* managed memory and staging: faults and events */
	int uffd_anchor; /* a duplicate the program cannot know to close (fdguard.c) */
	int uffd_own;	 /* uhmm's own memory (device storage): no events, no faults */
	int maps_fd;	 /* /proc/self/maps: VMA lookups */
	int pagemap_fd;	 /* /proc/self/pagemap: PAGEMAP_SCAN */
	int stop_fd;	 /* eventfd: tells the service threads to exit */
	enum uhmm_fault_mode mode;
	struct uhmm_caps caps;
	bool own_wp;	 /* uhmm's own memory registers in WP mode (faults stay the kernel's) */
	pid_t pid;	 /* the creating process; children must not serve */
	atomic_bool orphan; /* set in a fork child: the fd no longer tracks us */
	int slot;	 /* index in the global registry */

	struct uhmm__mutex event_lock; /* see the lock order */
	struct uhmm__mutex lock;
	struct uhmm__areas areas;

	unsigned int nthreads;
	pthread_t threads[UHMM__MAX_THREADS];

	struct uhmm__notifiers notifiers;
	struct uhmm_pagemap *pagemaps[256]; /* slot -> pagemap; slot 0 unused; under lock */

	/*
	 * Bumped (then FUTEX_WAKE) whenever a page stops being MIGRATING:
	 * threads that found a page busy sleep on it (signal mode, range
	 * faults). Pairs with the load a waiter makes under mm->lock.
	 */
	atomic_uint mig_seq;
	/*
	 * The fork gate: bit 31 says a fork is being prepared, the low bits
	 * count migrations in flight (fork.c).
	 */
	atomic_uint fork_gate;

	pthread_mutex_t staging_lock;
	struct {
		char *map;
		size_t maplen;
	} staging_cache[UHMM__STAGING_CACHE];

	/* Device-exclusive access (exclusive.c). */
	pthread_mutex_t excl_lock;	/* creating the store, owner table */
	struct uhmm_pagemap *excl_store;
	void *excl_owners[256];
	char excl_tag;			/* the store's owner: never a device */

	struct uhmm__suppress suppress[UHMM__MAX_SUPPRESS]; /* under lock */
	struct uhmm__own_zap own_zaps[UHMM__MAX_OWN_ZAPS];  /* under lock */

	struct {
		atomic_uint_fast64_t faults, faults_zero;
		atomic_uint_fast64_t unmap, remove, remap;
		atomic_uint_fast64_t wait_timeouts; /* a busy-page wait ended by its bound */
	} stats;
};

/* Wait until every event read from the uffd so far has been applied. */
void uhmm__mm_event_barrier(struct uhmm_mm *mm);
/* Is this mm live in this process (not a fork child's stale copy)? */
bool uhmm__mm_live(const struct uhmm_mm *mm);
/* Registry access for the signal handler and the interposers. AS-safe. */
struct uhmm_mm *uhmm__mm_slot(int i);
extern atomic_int uhmm__mm_count;
extern atomic_int uhmm__sig_inflight;
/* Hold every live mm while walking the registry (interposers). */
void uhmm__registry_enter(void);
void uhmm__registry_exit(void);
/*
 * Bytes of bookkeeping the mm spends on managed memory (area table and page
 * states) and the managed pages it covers. For `uhmm bench memory`.
 */
size_t uhmm__mm_metadata(struct uhmm_mm *mm, size_t *managed_pages);
/* Busy-page waits that ended by their bound (tests: lost wake-ups). */
uint64_t uhmm__wait_timeouts(struct uhmm_mm *mm);

/*
 * Wait until the migration generation moves past @seq (a page this thread
 * found MIGRATING is settled then). Bounded; a wait that ends by its bound
 * is counted. AS-safe.
 */
void uhmm__migration_wait(struct uhmm_mm *mm, unsigned int seq);
/* Pages stopped being MIGRATING: wake the threads waiting for that. */
void uhmm__migration_wake(struct uhmm_mm *mm);

/* --- fork (fork.c) ---------------------------------------------------------- */

/* Install the atfork handlers (once, from uhmm_mm_new). */
void uhmm__fork_setup(void);
/* A migration begins / ends: it may not overlap a fork. AS-safe. */
void uhmm__fork_gate_enter(struct uhmm_mm *mm);
void uhmm__fork_gate_exit(struct uhmm_mm *mm);

/* --- the migration engine (migrate.c, home.c) ------------------------------ */

/*
 * Bring a device page home for a CPU fault at @addr (its state said DEVICE
 * in @slot). Return 0 when home, -EAGAIN when the page changed under us
 * (retry the access), -ENOMEM when memory ran out (retry later), or -EIO
 * when the device cannot give it back (the access fails, as VM_FAULT_SIGBUS).
 * @in_signal: called from the SIGBUS handler (nothing may allocate).
 */
int uhmm__fault_device(struct uhmm_mm *mm, uintptr_t addr, unsigned int slot, bool in_signal);
/* Give an exclusive page back to the CPU (a CPU touched it): as above. */
int uhmm__exclusive_revoke(struct uhmm_mm *mm, uintptr_t addr, bool in_signal);
/* Revoke every exclusive page of [start, end) (mprotect, fork, teardown). */
void uhmm__exclusive_revoke_range(struct uhmm_mm *mm, uintptr_t start, uintptr_t end);
/* Bring every device page of the mm in [start, end) home (any owner). */
void uhmm__mm_bring_home(struct uhmm_mm *mm, uintptr_t start, uintptr_t end);
/* Wait until no page of [start, end) is being migrated. */
void uhmm__migrations_settle(struct uhmm_mm *mm, uintptr_t start, uintptr_t end);

/* --- fault.c ------------------------------------------------------------- */

int uhmm__service_start(struct uhmm_mm *mm, unsigned int nthreads);
void uhmm__service_stop(struct uhmm_mm *mm);
/*
 * Resolve a CPU fault at @addr. Return 0 when resolved (or already
 * resolved), -EINPROGRESS (thread mode: a migration holds the page; its
 * finalize wakes the thread), -EAGAIN / -ENOMEM (transient: let the access
 * fault again), -EIO (the device cannot give the page back), or -ENOENT
 * (not memory of this mm). AS-safe when @in_signal.
 */
int uhmm__fault_resolve(struct uhmm_mm *mm, uintptr_t addr, bool write, bool in_signal);
int uhmm__sigbus_install(void);
/*
 * A uffd operation said -EAGAIN: an event is pending (the kernel refuses to
 * move or fill while the program's mappings change). With event_lock held
 * (@locked), read and apply the pending events now; otherwise try to, and
 * yield if another thread is reading. Never reads in a signal handler.
 */
void uhmm__events_pump(struct uhmm_mm *mm, bool locked, bool in_signal);

/* --- event.c ------------------------------------------------------------- */

struct uffd_msg;
/* Apply one non-fault message. Called with mm->event_lock held. */
void uhmm__event_apply(struct uhmm_mm *mm, const struct uffd_msg *msg);

/* --- interpose.c / fdguard.c / kaccess.c ------------------------------------ */

/* Resolve the next munmap/mremap/... (dlsym); from uhmm_mm_new(). */
void uhmm__interpose_init(void);
void uhmm__fdguard_init(void);
void uhmm__kaccess_init(void);
/*
 * MADV_DONTNEED of managed memory by uhmm itself (the original of a
 * read-only page copied into staging): the REMOVE event is consumed without
 * effect. Must not be called with event_lock or mm->lock held.
 */
void uhmm__zap_own(struct uhmm_mm *mm, uintptr_t start, size_t len);
/* Under mm->lock: is this REMOVE uhmm's own zap (consumes it)? */
bool uhmm__own_zap_consume(struct uhmm_mm *mm, uintptr_t start, uintptr_t end);
/*
 * MADV_DONTNEED of staging memory: done unregistered, so that it raises no
 * event. Nobody may fault or move into [start, start+len) meanwhile.
 */
void uhmm__zap_staging(struct uhmm_mm *mm, uintptr_t start, size_t len);
/* Suppression of the event an interposed call will cause (see above). */
int uhmm__suppress_add(struct uhmm_mm *mm, uintptr_t start, uintptr_t end);
void uhmm__suppress_del(struct uhmm_mm *mm, int slot);
/* Under mm->lock: was this event announced by an interposed call? */
bool uhmm__suppressed(struct uhmm_mm *mm, uintptr_t start, uintptr_t end);
/* Is @fd one of the descriptors of a live mm (close must not take it)? */
bool uhmm__fd_is_ours(int fd);
/* A descriptor of @mm failed as if closed behind libc's back: say so, abort. */
void uhmm__fd_lost(struct uhmm_mm *mm, int fd, int err) __attribute__((noreturn, cold));

/* --- util.c: allocation with fault injection ----------------------------- */

/*
 * Every resource uhmm acquires (memory, fds, threads, mappings) first asks
 * uhmm__inject_fail(): tests set a countdown with uhmm__inject_after(n) so
 * that the n-th acquisition fails, and step n until an operation succeeds,
 * proving that every error path releases what it took (STYLE.md 12).
 */
void uhmm__inject_after(long n); /* 0 disables */
bool uhmm__inject_fail(void);
void *uhmm__malloc(size_t size);
void *uhmm__calloc(size_t n, size_t size);
void *uhmm__realloc(void *p, size_t size);
void uhmm__free(void *p);

/* --- hot lookups that need struct uhmm_mm ---------------------------------- */

/* The pagemap a pfn belongs to, if attached to @mm. Under mm->lock. */
static inline struct uhmm_pagemap *uhmm__pagemap_of(struct uhmm_mm *mm, uint64_t pfn)
{
	unsigned int slot = uhmm__pfn_slot(pfn);

	return slot && slot <= UHMM__PFN_MAX_SLOT ? mm->pagemaps[slot] : NULL;
}

/* The owner of the pagemap in @slot (1..255), or NULL. Under mm->lock. */
static inline void *uhmm__pagemap_owner(struct uhmm_mm *mm, unsigned int slot)
{
	return slot && slot <= UHMM__PFN_MAX_SLOT && mm->pagemaps[slot] ?
		       mm->pagemaps[slot]->cfg.owner :
		       NULL;
}

static inline bool uhmm__ps_iter_next(struct uhmm__ps_iter *it, uintptr_t *addr,
				      struct uhmm__area **area, struct uhmm__ps **p)
{
	struct uhmm__areas *t = &it->mm->areas;

	while (it->ai < t->n && it->addr < it->end) {
		struct uhmm__area *a = &t->v[it->ai];

		if (it->addr >= a->end) {
			it->ai++;
			continue;
		}
		if (it->addr < a->start)
			it->addr = a->start;
		if (it->addr >= it->end)
			break;
		*addr = it->addr;
		*area = a;
		*p = &a->blk->ps[a->blk_off + ((it->addr - a->start) >> UHMM__PAGE_SHIFT)];
		it->addr += UHMM__PAGE_SIZE;
		return true;
	}
	return false;
}

#endif /* UHMM_INTERNAL_H */
