/* SPDX-License-Identifier: MIT */
/*
 * migrate.h - the migration engine's private types, shared by the three
 * steps (migrate.c), the device helpers (migrate_copy.c), the data mover
 * (move.c) and the paths built on them (home.c, exclusive.c).
 *
 * A migration owns the pages it selected from setup to finalize: their
 * words say MIGRATING, and for each one it knows where the data is now
 * (struct mig_page.where). Whatever happens in between (a device that
 * fails, a destination refused, the program discarding, unmapping or
 * moving the range), finalize puts every page somewhere valid with its
 * data, or drops the data the program discarded, and releases every device
 * page it was given and did not use.
 */
#ifndef UHMM_MIGRATE_H
#define UHMM_MIGRATE_H

#include "internal.h"

/* What setup selected a page as. */
enum mig_sel {
	SEL_NONE = 0,
	SEL_SYS, /* a page in system memory: its data (if any) goes to staging */
	SEL_DEV, /* a device or exclusive-store page: src_pfn */
};

/* Where the data of a selected page is now. */
enum mig_where {
	W_NONE = 0, /* nowhere: the page reads as zeros */
	W_STAGED,   /* in its staging page */
	W_SRC,	    /* in its source device page (src_pfn) */
	W_DST,	    /* in its destination device page (dst_pfn) */
};

/* Which device page finalize releases for an entry. */
enum mig_put {
	PUT_NONE = 0,
	PUT_SRC, /* src_pfn: the source a page left, or its data discarded */
	PUT_DST, /* dst_pfn: a destination not used, or its data discarded */
};

/* 32 bytes: a 2 MiB migration's entries fit in 16 KiB. */
struct mig_page {
	struct uhmm__ps *ps; /* its word; NULL when not selected */
	uint64_t src_pfn;    /* SEL_DEV: the device page it was selected on */
	uint64_t dst_pfn;    /* a device destination this migration claimed, or 0 */
	uint8_t sel;	     /* enum mig_sel */
	uint8_t where;	     /* enum mig_where */
	uint8_t put;	     /* enum mig_put: finalize releases it after unlocking */
	bool committed;	     /* uhmm_migrate_pages() made it live at its destination */
	bool ro_copy;	     /* isolated by copying (read-only mapping): zap the original */
	bool cow_broken;     /* isolation made it exclusively ours once (move.c) */
	bool notify;	     /* finalize: the device's page_free is owed for put */
};
_Static_assert(sizeof(struct mig_page) == 32, "a migration entry is 32 bytes");

/* Internal selection: device-exclusive store pages (a revoke). */
#define MIG_SELECT_EXCLUSIVE (1UL << 31)
/*
 * Internal: uhmm brings pages home itself (a fault, an eviction, fork,
 * teardown), whatever the mapping's protection now, as the kernel's
 * migrate_device_range() does by pfn.
 */
#define MIG_ANY_PROT (1UL << 30)

/* Pages handled without heap memory: a CPU fault-back fits. */
#define MIG_INLINE 16
#define MIG_INLINE_BLKS 4

struct mig {
	struct uhmm_mm *mm;
	struct mig_page *pg;		/* npages entries */
	struct uhmm__psblock **blks;	/* blocks whose words we point into, referenced */
	size_t nblks, capblks;
	struct uhmm__staging st;
	enum uhmm_notify_event event;	/* the invalidation setup sends */
	void *owner;			/* ...and the owner it carries */
	bool writable;			/* the mapping allowed writes at setup */
	bool refused;			/* uhmm_migrate_pages() refused a destination */
	bool in_signal;			/* in the SIGBUS handler: never allocate or read events */
	bool heap;			/* this struct was allocated by setup */
	bool gated;			/* inside the fork gate */
	uint64_t cuts;			/* mm->areas.cuts when the pages were selected */
	struct mig_page inline_pg[MIG_INLINE];
	struct uhmm__psblock *inline_blks[MIG_INLINE_BLKS];
};

static inline struct mig *M(struct uhmm_migrate *m)
{
	return m->priv_;
}

/* Staging page of entry @i. */
static inline uintptr_t mig_stage(const struct mig *g, unsigned long i)
{
	return (uintptr_t)g->st.base + (i << UHMM__PAGE_SHIFT);
}

/*
 * Is every selected page still at its home address (no cut of the area
 * table since selection)? Under mm->lock. When not, look each one up.
 */
static inline bool mig_all_home(const struct mig *g)
{
	return g->cuts == g->mm->areas.cuts;
}

/*
 * Setup with the engine's own options (migrate.c): @g is caller-provided
 * storage (NULL: allocated, for the public API), @event and @owner the
 * invalidation to send, @in_signal as above. Same returns as
 * uhmm_migrate_setup(), plus -EOPNOTSUPP when the kernel has no UFFDIO_MOVE.
 */
int uhmm__migrate_setup(struct uhmm_migrate *m, struct mig *g, enum uhmm_notify_event event,
			void *owner, bool in_signal);

/*
 * Check and claim the destinations given in m->dst (migrate.c): device
 * pages must be allocated pages of a pagemap of this mm, holding no data,
 * given once; system destinations must be the staging pages setup
 * prepared. Return 0, or -EINVAL (nothing may move then).
 */
int uhmm__migrate_claim(struct uhmm_migrate *m);

/* --- the data mover (move.c) -------------------------------------------------
 *
 * Every move of the only copy of a page. The userfaultfd to use follows the
 * destination: program memory and staging are registered with mm->uffd,
 * device storage with mm->uffd_own. Moves into program memory or out of it
 * are made with event_lock held: the books must be the kernel's (see
 * migrate.c).
 */

/* Isolate the selected system pages [i, j) of @m into staging. event_lock held. */
void uhmm__move_isolate(struct uhmm_migrate *m, unsigned long i, unsigned long j);
/* Put the data of entries [i, j) home: at their current addresses. event_lock held. */
void uhmm__move_home(struct uhmm_migrate *m, unsigned long i, unsigned long j);
/* Staging -> device storage of entries [i, j) (host-storage destinations). */
int uhmm__move_to_storage(struct uhmm_migrate *m, struct uhmm_pagemap *pg, unsigned long i,
			  unsigned long j, bool back);
/* Device storage -> staging of entries [i, j) (host-storage sources). */
int uhmm__move_from_storage(struct uhmm_migrate *m, struct uhmm_pagemap *pg, unsigned long i,
			    unsigned long j);

#endif /* UHMM_MIGRATE_H */
