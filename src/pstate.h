/* SPDX-License-Identifier: MIT */
/*
 * pstate.h - the per-page state word, the core invariant of uhmm: where the
 * data of each managed 4 KiB page is. Included by internal.h.
 *
 * One 64-bit word per managed page (the budget is 8 bytes):
 *
 *   bits  0..1   residency: CPU (the kernel's page table holds the data, or
 *                nothing does yet), DEVICE (a device page holds it; the CPU
 *                page-table entry is empty), EXCLUSIVE (a device holds it
 *                for its atomics, in the mm's exclusive store)
 *   bit   2      MIGRATING: a migration owns the page (its data may be in
 *                transit); CPU accesses wait for it
 *   bit   3      DISCARDED: while MIGRATING, the program discarded the page
 *                (MADV_DONTNEED, munmap): the migration drops its data
 *   bits 16..63  the device page (pfn: pagemap slot and index) of DEVICE
 *                and EXCLUSIVE pages
 *
 * A zero word is ordinary memory: what every page starts as.
 *
 * Only pstate.c changes a word, through the named transitions declared at
 * the end of this file, each of which asserts that it starts from a state
 * the table in docs/PAGE_STATE.md allows and that mm->lock is held. The
 * word is wrapped in a struct so that no other file can compose its bits by
 * accident; they read it through the accessors here.
 */
#ifndef UHMM_PSTATE_H
#define UHMM_PSTATE_H

struct uhmm__ps {
	uint64_t w;
};

enum uhmm__res {
	UHMM__RES_CPU = 0,
	UHMM__RES_DEVICE = 1,
	UHMM__RES_EXCLUSIVE = 2,
};

#define UHMM__PS_RES_MASK UINT64_C(0x3)
#define UHMM__PS_MIGRATING (UINT64_C(1) << 2)
#define UHMM__PS_DISCARDED (UINT64_C(1) << 3)
#define UHMM__PS_PFN_SHIFT 16

/* A copy of the word: read under mm->lock. */
static inline struct uhmm__ps uhmm__ps_load(const struct uhmm__ps *p)
{
	return *p;
}

static inline enum uhmm__res uhmm__ps_res(struct uhmm__ps v)
{
	return (enum uhmm__res)(v.w & UHMM__PS_RES_MASK);
}

/* Owned by a migration (or a revoke): CPU accesses wait. */
static inline bool uhmm__ps_busy(struct uhmm__ps v)
{
	return v.w & UHMM__PS_MIGRATING;
}

static inline bool uhmm__ps_discarded(struct uhmm__ps v)
{
	return v.w & UHMM__PS_DISCARDED;
}

/* The device page of a DEVICE or EXCLUSIVE page. */
static inline uint64_t uhmm__ps_pfn(struct uhmm__ps v)
{
	return v.w >> UHMM__PS_PFN_SHIFT;
}

/* Ordinary memory nobody holds: the CPU's to fill. */
static inline bool uhmm__ps_plain(struct uhmm__ps v)
{
	return v.w == 0;
}

/* A device page of some pagemap, settled (not being migrated). */
static inline bool uhmm__ps_on_device(struct uhmm__ps v)
{
	return uhmm__ps_res(v) == UHMM__RES_DEVICE && !uhmm__ps_busy(v);
}

struct uhmm_mm;
struct uhmm__area;
struct uhmm__put_list;

/* --- the transitions (pstate.c); all under mm->lock ------------------------ */

/* Any settled page -> MIGRATING (a migration or revoke takes it). */
void uhmm__ps_isolate(struct uhmm_mm *mm, struct uhmm__ps *p);
/* CPU|MIGRATING -> DEVICE(pfn)|MIGRATING; the device page maps it back. */
void uhmm__ps_commit_device(struct uhmm_mm *mm, struct uhmm__ps *p, uint64_t pfn);
/* CPU|MIGRATING -> EXCLUSIVE(pfn)|MIGRATING; the store page maps it back. */
void uhmm__ps_commit_exclusive(struct uhmm_mm *mm, struct uhmm__ps *p, uint64_t pfn);
/*
 * DEVICE|MIGRATING or EXCLUSIVE|MIGRATING -> CPU|MIGRATING: the data is
 * going home. Return the device page it leaves (the caller puts it).
 */
uint64_t uhmm__ps_commit_cpu(struct uhmm_mm *mm, struct uhmm__ps *p);
/*
 * X|MIGRATING -> X: the migration is over. A page discarded meanwhile
 * becomes ordinary memory instead. Return the device page the discard
 * released (the caller puts it), or 0.
 */
uint64_t uhmm__ps_release(struct uhmm_mm *mm, struct uhmm__ps *p);
/*
 * The program discarded the page (MADV_DONTNEED, munmap, MAP_FIXED over
 * it): a settled device or exclusive page becomes ordinary memory and its
 * device page goes on @puts; a MIGRATING page is marked DISCARDED for its
 * migration to drop. Cannot fail.
 */
void uhmm__ps_discard(struct uhmm_mm *mm, struct uhmm__ps *p, struct uhmm__put_list *puts);
/* uhmm__ps_discard() over every managed page of [start, end). */
void uhmm__ps_discard_range(struct uhmm_mm *mm, uintptr_t start, uintptr_t end,
			    struct uhmm__put_list *puts);

/* --- finding words --------------------------------------------------------- */

/* The word of the managed page at @addr, or NULL; @area (if not NULL) gets its area. */
struct uhmm__ps *uhmm__ps_lookup(struct uhmm_mm *mm, uintptr_t addr, struct uhmm__area **area);
/*
 * uhmm__ps_lookup() for a walk of nearby addresses: *@hint (NULL at first)
 * is the area found last and is tried before searching. Valid only while
 * mm->lock stays held: the area table moves when it changes.
 */
struct uhmm__ps *uhmm__ps_lookup_near(struct uhmm_mm *mm, uintptr_t addr, struct uhmm__area **hint);
/* The address whose word is @p now (an mremap moves it), or 0 when unmapped. */
uintptr_t uhmm__ps_addr(struct uhmm_mm *mm, const struct uhmm__ps *p);

/*
 * The one iterator over managed pages: every managed page of [start, end)
 * in address order, skipping what is not managed. Under mm->lock, which
 * must not be dropped while iterating.
 */
struct uhmm__ps_iter {
	struct uhmm_mm *mm;
	uintptr_t addr, end;
	size_t ai; /* index of the current area */
};

void uhmm__ps_iter_init(struct uhmm__ps_iter *it, struct uhmm_mm *mm, uintptr_t start,
			uintptr_t end);
/*
 * The next page: true with its address, area and word; false at the end.
 * Defined at the end of internal.h (it needs struct uhmm_mm), inline.
 */
static inline bool uhmm__ps_iter_next(struct uhmm__ps_iter *it, uintptr_t *addr, struct uhmm__area **area,
			struct uhmm__ps **p);

/* Expensive check (debug builds): a block about to be freed holds no state. */
void uhmm__ps_check_free(const struct uhmm__ps *p, size_t n);

#endif /* UHMM_PSTATE_H */
