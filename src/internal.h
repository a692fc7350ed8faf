/* SPDX-License-Identifier: MIT */
/*
 * internal.h - libuhmm's private types. Never installed.
 *
 * Locking order (outer first):
 *   mm->event_lock  serialises reading the userfaultfd against processing the
 *                   events read, and against area-table changes made by API
 *                   calls. Whoever read an event holds it until the event is
 *                   applied, so taking it (uhmm__mm_event_barrier) proves that
 *                   every event read before has been applied.
 *   mm->lock        protects the area table and every page state. Never held
 *                   across a blocking syscall that could wait on the service
 *                   threads, never held while touching managed memory.
 * The global registry (mm.c) has its own lock, taken before neither.
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
#define UHMM__MAX_THREADS 64
#define UHMM__MAX_MMS 64

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

/* --- per-page state ------------------------------------------------------
 *
 * One 64-bit word per managed 4 KiB page (the budget is 8 bytes):
 *   bits  0..1  residency: CPU (the kernel's page table, or nothing yet),
 *               DEVICE (a device page holds the data; the CPU PTE is empty)
 *   bit   2     MIGRATING: isolated by a migration; CPU faults wait
 *   bit   3     EXCLUSIVE: a device holds it exclusively (CPU PTE empty)
 *   bit   4     WP: uhmm write-protected the CPU PTE
 *   bit   5     COMPOUND: part of a 2 MiB run a device holds as one unit
 *   bits  8..15 device slot (the pagemap's index in the mm, 1..255)
 *   bits 16..63 device page index within that pagemap (48 bits)
 * A zero word is "ordinary memory": what every page starts as.
 */
#define UHMM__PS_RES_MASK 0x3ull
#define UHMM__PS_RES_CPU 0x0ull
#define UHMM__PS_RES_DEVICE 0x1ull
#define UHMM__PS_MIGRATING (1ull << 2)
#define UHMM__PS_EXCLUSIVE (1ull << 3)
#define UHMM__PS_WP (1ull << 4)
#define UHMM__PS_COMPOUND (1ull << 5)
#define UHMM__PS_SLOT_SHIFT 8
#define UHMM__PS_SLOT_MASK (0xffull << UHMM__PS_SLOT_SHIFT)
#define UHMM__PS_INDEX_SHIFT 16

static inline unsigned int uhmm__ps_slot(uint64_t ps)
{
	return (unsigned int)((ps & UHMM__PS_SLOT_MASK) >> UHMM__PS_SLOT_SHIFT);
}

static inline uint64_t uhmm__ps_index(uint64_t ps)
{
	return ps >> UHMM__PS_INDEX_SHIFT;
}

static inline uint64_t uhmm__ps_device(unsigned int slot, uint64_t index)
{
	return UHMM__PS_RES_DEVICE | ((uint64_t)slot << UHMM__PS_SLOT_SHIFT) |
	       (index << UHMM__PS_INDEX_SHIFT);
}

/*
 * A block of page states, shared by the areas cut from one original area.
 * Splitting an area (munmap of its middle) or moving it (mremap) never
 * copies or allocates state: the pieces point into the same block at their
 * own offsets, and the block goes when its last area does.
 */
struct uhmm__psblock {
	uint64_t *ps;	   /* npages words, mmap'ed (MAP_NORESERVE) */
	size_t npages;
	unsigned int refs; /* areas pointing here; under mm->lock */
};

/* A managed area: one contiguous range of one kind, [start, end). */
struct uhmm__area {
	uintptr_t start, end;
	unsigned int flags;	/* UHMM_MANAGE_* */
	unsigned int kind;	/* UHMM_AREA_* */
	bool registered;	/* registered with the mm's userfaultfd */
	bool writable;		/* the VMA allowed writes when managed */
	struct uhmm__psblock *blk;
	size_t blk_off;		/* page index of @start within @blk */
};

static inline uint64_t *uhmm__area_ps(const struct uhmm__area *a, uintptr_t addr)
{
	return &a->blk->ps[a->blk_off + ((addr - a->start) >> UHMM__PAGE_SHIFT)];
}

/* The sorted, non-overlapping table of areas (area.c). Under mm->lock. */
struct uhmm__areas {
	struct uhmm__area *v;
	size_t n, cap;
};

/* The notifiers of an mm (notifier.c). */
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

/*
 * Invalidations the calling thread is announcing itself (interposed calls)
 * so that the matching userfaultfd event, applied later by a service
 * thread, does not announce them a second time. Under mm->lock.
 */
#define UHMM__MAX_SUPPRESS 16
struct uhmm__suppress {
	uintptr_t start, end;
	int event; /* UFFD_EVENT_* */
	bool used;
};

/* --- device memory (pagemap.c) --------------------------------------------- */

#define UHMM__DPAGE_ALLOCATED 0x1u
#define UHMM__DPAGE_DIRTY 0x2u /* storage may hold data: scrub before reuse.
				  * Set when data enters (moved or copied in),
				  * cleared when it is moved out whole. */

/*
 * A device page's descriptor: 16 bytes (the budget). @ps points at the
 * page-state word of the managed page whose data the device page holds (its
 * reverse map), NULL when none; written under mm->lock. While the page is
 * free, @next_free links the section's free list instead.
 */
struct uhmm__dpage {
	atomic_uint refs;
	uint32_t flags;
	union {
		uint64_t *ps;
		uint64_t next_free;
	};
};
_Static_assert(sizeof(struct uhmm__dpage) == 16, "16 bytes per device page");

#define UHMM__SECTION_PAGES 512u
#define UHMM__NO_PAGE UINT64_MAX

struct uhmm__section {
	char *storage;		/* host storage, 2 MiB aligned, or NULL */
	bool removed;
	unsigned int nfree;
	uint64_t free_head;	/* index of the first free page, or UHMM__NO_PAGE */
	struct uhmm__dpage desc[UHMM__SECTION_PAGES];
};

struct uhmm_pagemap {
	struct uhmm_mm *mm;
	unsigned int slot;	/* in mm->pagemaps, 1..255 */
	struct uhmm_pagemap_config cfg;
	pthread_mutex_t lock;	/* sections, free lists, flags, stats */
	pthread_cond_t cond;	/* signalled on every put (teardown waits) */
	struct uhmm__section *sections[4096];
	unsigned int nsections, next_section;
	uint64_t pages_total;
	bool fail_next;
	unsigned int callbacks;	/* page_free calls running; teardown waits */
	unsigned int users;	/* CPU fault-backs using it; under lock; teardown waits */
	uint64_t migrated_to, migrated_from, faults, alloc_failures;
};

struct uhmm_mm {
	int uffd;
	int maps_fd;	 /* /proc/self/maps: VMA lookups */
	int pagemap_fd;	 /* /proc/self/pagemap: PAGEMAP_SCAN */
	int stop_fd;	 /* eventfd: tells the service threads to exit */
	enum uhmm_fault_mode mode;
	struct uhmm_caps caps;
	pid_t pid;		/* the creating process; children must not serve */
	atomic_bool orphan;	/* set in a fork child: the fd no longer tracks us */
	int slot;		/* index in the global registry */

	pthread_mutex_t event_lock; /* see the locking order above */
	pthread_mutex_t lock;
	struct uhmm__areas areas;

	unsigned int nthreads;
	pthread_t threads[UHMM__MAX_THREADS];

	struct uhmm__notifiers notifiers;
	struct uhmm_pagemap *pagemaps[256]; /* slot -> pagemap; slot 0 unused; under lock */
	atomic_uint mig_seq;		/* bumped when a migration ends: futex for waiters */

	/* One staging mapping kept for the next migration (migrate.c). */
	pthread_mutex_t staging_lock;
	char *staging_cache;
	size_t staging_cache_len;

	/* Device-exclusive access (exclusive.c). */
	pthread_mutex_t excl_lock;	/* creating the store, owner table */
	struct uhmm_pagemap *excl_store;
	void *excl_owners[256];
	char excl_tag;			/* the store's owner: never a device */
	struct uhmm__suppress suppress[UHMM__MAX_SUPPRESS];

	struct {
		atomic_uint_fast64_t faults, faults_zero;
		atomic_uint_fast64_t unmap, remove, remap;
	} stats;
};

/* --- area.c -------------------------------------------------------------- */

/* The area containing @addr, or NULL. Under mm->lock. */
struct uhmm__area *uhmm__area_find(struct uhmm__areas *t, uintptr_t addr);
/* Index of the first area with end > @addr (n if none). Under mm->lock. */
size_t uhmm__area_lower(const struct uhmm__areas *t, uintptr_t addr);
/*
 * Cut [start, end) out of the table: areas straddling a boundary are split,
 * the pieces inside are removed. If @moved is not NULL, the removed pieces
 * are appended to it (with their block references) instead of released.
 * Return: 0, or -ENOMEM (table unchanged).
 */
int uhmm__areas_cut(struct uhmm__areas *t, uintptr_t start, uintptr_t end,
		    struct uhmm__areas *moved);
/* Insert an area (no overlap allowed). Return 0 or -ENOMEM. */
int uhmm__areas_insert(struct uhmm__areas *t, const struct uhmm__area *a);
void uhmm__areas_release(struct uhmm__areas *t);
/* A fresh block of zeroed states. Return NULL on failure. */
struct uhmm__psblock *uhmm__psblock_new(size_t npages);
void uhmm__psblock_put(struct uhmm__psblock *b);

/* --- mm.c ---------------------------------------------------------------- */

/* Wait until every event read from the uffd so far has been applied. */
void uhmm__mm_event_barrier(struct uhmm_mm *mm);
/* Is this mm live in this process (not a fork child's stale copy)? */
bool uhmm__mm_live(const struct uhmm_mm *mm);
/* Registry access for the signal handler and the interposers. AS-safe. */
struct uhmm_mm *uhmm__mm_slot(int i);
extern atomic_int uhmm__mm_count;
extern atomic_int uhmm__sig_inflight;
/* Manage [start, end) unless it is already (first device use). 0 or -errno. */
int uhmm__manage_first_use(struct uhmm_mm *mm, uintptr_t start, uintptr_t end);
/* Manage a range with mm->event_lock held (used on first device use too). */
int uhmm__manage_locked(struct uhmm_mm *mm, uintptr_t start, uintptr_t end, unsigned int flags);

/*
 * Bytes of bookkeeping the mm spends on managed memory (area table and page
 * states, counted by what is mapped for them) and the managed pages it
 * covers. For `uhmm bench memory`.
 */
size_t uhmm__mm_metadata(struct uhmm_mm *mm, size_t *managed_pages);

/* The owner of the pagemap in @slot (1..255), or NULL. Under mm->lock. */
void *uhmm__pagemap_owner(struct uhmm_mm *mm, unsigned int slot);
/* Give a pagemap a slot (1..255) in the mm; return it or -ENOSPC. */
int uhmm__pagemap_attach(struct uhmm_mm *mm, struct uhmm_pagemap *pg);
void uhmm__pagemap_detach(struct uhmm_mm *mm, struct uhmm_pagemap *pg);

/* --- pagemap.c / migrate.c ---------------------------------------------- */

extern const char uhmm__zero_page[UHMM__PAGE_SIZE];
struct uhmm__dpage *uhmm__dpage(struct uhmm_pagemap *pg, uint64_t page);
void *uhmm__dpage_storage(struct uhmm_pagemap *pg, uint64_t page);
/* Allocate @n (1, or 512 for a whole section) contiguous pages, scrubbed. */
int uhmm__pagemap_alloc(struct uhmm_pagemap *pg, size_t n, uint64_t *page);
/* Unmap the cached staging mapping (uhmm_mm_free). */
void uhmm__staging_cache_drop(struct uhmm_mm *mm);
/* Set or clear DIRTY on [first, first+n). */
void uhmm__dpage_mark(struct uhmm_pagemap *pg, uint64_t first, size_t n, bool dirty);
/* Bring home the pages of [first, first+n) that hold data. */
void uhmm__pagemap_evict(struct uhmm_pagemap *pg, uint64_t first, uint64_t n);
/*
 * Bring a device page home for a CPU fault at @addr (its state said DEVICE
 * in @slot). Return 0 when home, -EAGAIN when another migration holds the
 * page (wait and retry), or -errno.
 */
int uhmm__fault_device(struct uhmm_mm *mm, uintptr_t addr, unsigned int slot);
/* Give an exclusive page back to the CPU (a CPU touched it). 0 or -errno. */
int uhmm__exclusive_revoke(struct uhmm_mm *mm, uintptr_t addr);
/* Revoke every exclusive page of [start, end) (mprotect, fork, teardown). */
void uhmm__exclusive_revoke_range(struct uhmm_mm *mm, uintptr_t start, uintptr_t end);
/* Wait until the migration generation moves past @seq. AS-safe. */
void uhmm__migration_wait(struct uhmm_mm *mm, unsigned int seq);
/* Bring every device page of the mm in [start, end) home (any owner). */
void uhmm__mm_bring_home(struct uhmm_mm *mm, uintptr_t start, uintptr_t end);
/* The address whose state word is @ps, under mm->lock; 0 if unmapped. */
uintptr_t uhmm__ps_to_addr(struct uhmm_mm *mm, const uint64_t *ps);
/* Release the device pages whose states in [start, end) say DEVICE (not
 * migrating): their data is being discarded (munmap, MADV_DONTNEED). The
 * states are reset. Called with mm->lock held; puts happen after unlock
 * through the returned list, released by uhmm__put_list(). */
struct uhmm__put_list {
	struct {
		struct uhmm_pagemap *pg;
		uint64_t page;
	} *v;
	size_t n, cap;
};
void uhmm__discard_device_pages(struct uhmm_mm *mm, uintptr_t start, uintptr_t end,
				struct uhmm__put_list *out);
int uhmm__put_list_add(struct uhmm__put_list *l, struct uhmm_pagemap *pg, uint64_t page);
void uhmm__put_list(struct uhmm__put_list *l);

/* --- fault.c ------------------------------------------------------------- */

int uhmm__service_start(struct uhmm_mm *mm, unsigned int nthreads);
void uhmm__service_stop(struct uhmm_mm *mm);
/*
 * Resolve a CPU fault at @addr. Return 0 when resolved (or already
 * resolved), -errno when this mm cannot resolve it (not registered here,
 * range gone). AS-safe when @in_signal.
 */
int uhmm__fault_resolve(struct uhmm_mm *mm, uintptr_t addr, bool write, bool in_signal);
int uhmm__sigbus_install(void);
/* A uffd op said -EAGAIN (an event unread): let it pass (fault.c). */
void uhmm__eagain_wait(struct uhmm_mm *mm);

/* --- event.c ------------------------------------------------------------- */

struct uffd_msg;
/* Apply one non-fault message. Called with mm->event_lock held. */
void uhmm__event_apply(struct uhmm_mm *mm, const struct uffd_msg *msg);

/* --- notifier.c ---------------------------------------------------------- */

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
size_t uhmm__notifiers_count(struct uhmm_mm *mm);

/* --- interpose.c ---------------------------------------------------------- */

/* Resolve the next munmap/mremap/... (dlsym); from uhmm_mm_new(). */
void uhmm__interpose_init(void);
/*
 * MADV_DONTNEED of uhmm's own making (storage scrub, copy-then-drop during a
 * migration): the REMOVE event it raises is not announced to devices. Must
 * not be called with event_lock or mm->lock held.
 */
void uhmm__zap_quiet(struct uhmm_mm *mm, uintptr_t start, size_t len);
/*
 * MADV_DONTNEED of memory only uhmm uses (device storage, staging): done
 * unregistered, so it raises no event at all. Nobody may fault or move
 * into [start, start+len) meanwhile.
 */
void uhmm__zap_private(struct uhmm_mm *mm, uintptr_t start, size_t len);
/* Suppression of the event an interposed call will cause (see above). */
int uhmm__suppress_add(struct uhmm_mm *mm, uintptr_t start, uintptr_t end, int event);
void uhmm__suppress_del(struct uhmm_mm *mm, int slot);
/* Under mm->lock: was this event announced by an interposed call? */
bool uhmm__suppressed(struct uhmm_mm *mm, uintptr_t start, uintptr_t end, int event);

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

#endif /* UHMM_INTERNAL_H */
