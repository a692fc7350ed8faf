/* SPDX-License-Identifier: MIT */
/*
 * pstate.c - the owner of the per-page state word (pstate.h): every change
 * of a word, and of the reverse map from a device page back to its word,
 * happens here, through a named transition that asserts where it starts
 * from. docs/PAGE_STATE.md has the table (state x event -> state, and who
 * causes each event); the assertions below are that table.
 *
 * Concurrency: every function here runs under mm->lock (asserted), which
 * protects the words and the reverse-map pointers of device descriptors.
 * The pagemap lock is not taken: a descriptor's reverse map and claim are
 * mm->lock's to change (internal.h, struct uhmm__dpage).
 */
#include "internal.h"

#define W_RES(w) ((w) & UHMM__PS_RES_MASK)

static uint64_t word(enum uhmm__res res, uint64_t pfn, uint64_t flags)
{
	return (uint64_t)res | flags | (pfn << UHMM__PS_PFN_SHIFT);
}

static void assert_locked(struct uhmm_mm *mm)
{
	uhmm__assert(uhmm__held(&mm->lock));
}

/* --- the reverse map --------------------------------------------------------- */

static struct uhmm__dpage *rmap_desc(struct uhmm_mm *mm, uint64_t pfn, struct uhmm_pagemap **pgp)
{
	struct uhmm_pagemap *pg = uhmm__pagemap_of(mm, pfn);
	struct uhmm__dpage *d = pg ? uhmm__dpage(pg, pfn) : NULL;

	*pgp = pg;
	return d;
}

/*
 * The device page @pfn now holds the data of @p. The back-pointer and the
 * claim are mm->lock's to change here (internal.h, struct uhmm__dpage).
 */
static void rmap_link(struct uhmm_mm *mm, struct uhmm__ps *p, uint64_t pfn)
{
	struct uhmm_pagemap *pg;
	struct uhmm__dpage *d = rmap_desc(mm, pfn, &pg);

	uhmm__assert(d);
	uhmm__assert(uhmm__dflags(d) & UHMM__DPAGE_ALLOCATED);
	uhmm__assert(!uhmm__dpage_ps(d));
	uhmm__dpage_set_ps(d, p);
	uhmm__dpage_set_claimed(d, false); /* placed: no longer a bare destination */
}

/* The device page @pfn no longer holds the data of @p. */
static void rmap_unlink(struct uhmm_mm *mm, struct uhmm__ps *p, uint64_t pfn)
{
	struct uhmm_pagemap *pg;
	struct uhmm__dpage *d = rmap_desc(mm, pfn, &pg);

	if (!d)
		return; /* its pagemap is being torn down: nothing points back */
	uhmm__assert(uhmm__dpage_ps(d) == p);
	uhmm__dpage_set_ps(d, NULL);
}

/* --- transitions ------------------------------------------------------------- */

void uhmm__ps_isolate(struct uhmm_mm *mm, struct uhmm__ps *p)
{
	assert_locked(mm);
	uhmm__assert(!(p->w & UHMM__PS_MIGRATING));
	p->w |= UHMM__PS_MIGRATING;
}

void uhmm__ps_commit_device(struct uhmm_mm *mm, struct uhmm__ps *p, uint64_t pfn)
{
	assert_locked(mm);
	uhmm__assert(p->w == UHMM__PS_MIGRATING); /* CPU, isolated, not discarded */
	uhmm__assert(pfn && uhmm__pfn_slot(pfn));
	rmap_link(mm, p, pfn);
	p->w = word(UHMM__RES_DEVICE, pfn, UHMM__PS_MIGRATING);
}

void uhmm__ps_commit_exclusive(struct uhmm_mm *mm, struct uhmm__ps *p, uint64_t pfn)
{
	assert_locked(mm);
	uhmm__assert(p->w == UHMM__PS_MIGRATING);
	rmap_link(mm, p, pfn);
	p->w = word(UHMM__RES_EXCLUSIVE, pfn, UHMM__PS_MIGRATING);
}

uint64_t uhmm__ps_commit_cpu(struct uhmm_mm *mm, struct uhmm__ps *p)
{
	uint64_t pfn = p->w >> UHMM__PS_PFN_SHIFT;

	assert_locked(mm);
	uhmm__assert((p->w & (UHMM__PS_MIGRATING | UHMM__PS_DISCARDED)) == UHMM__PS_MIGRATING);
	uhmm__assert(W_RES(p->w) == UHMM__RES_DEVICE || W_RES(p->w) == UHMM__RES_EXCLUSIVE);
	rmap_unlink(mm, p, pfn);
	p->w = UHMM__PS_MIGRATING;
	return pfn;
}

uint64_t uhmm__ps_release(struct uhmm_mm *mm, struct uhmm__ps *p)
{
	uint64_t pfn = 0;

	assert_locked(mm);
	uhmm__assert(p->w & UHMM__PS_MIGRATING);
	if (!(p->w & UHMM__PS_DISCARDED)) {
		p->w &= ~UHMM__PS_MIGRATING;
		return 0;
	}
	/* Discarded while migrating: the data goes, the page is ordinary memory. */
	if (W_RES(p->w) != UHMM__RES_CPU) {
		pfn = p->w >> UHMM__PS_PFN_SHIFT;
		rmap_unlink(mm, p, pfn);
	}
	p->w = 0;
	return pfn;
}

void uhmm__ps_discard(struct uhmm_mm *mm, struct uhmm__ps *p, struct uhmm__put_list *puts)
{
	uint64_t pfn;

	assert_locked(mm);
	if (p->w & UHMM__PS_MIGRATING) {
		p->w |= UHMM__PS_DISCARDED; /* its migration drops the data */
		return;
	}
	if (W_RES(p->w) == UHMM__RES_CPU) {
		uhmm__assert(p->w == 0);
		return; /* the kernel drops it itself */
	}
	pfn = p->w >> UHMM__PS_PFN_SHIFT;
	rmap_unlink(mm, p, pfn);
	uhmm__put_list_add(puts, uhmm__pagemap_of(mm, pfn), pfn);
	p->w = 0;
}

void uhmm__ps_discard_range(struct uhmm_mm *mm, uintptr_t start, uintptr_t end,
			    struct uhmm__put_list *puts)
{
	struct uhmm__ps_iter it;
	struct uhmm__area *a;
	struct uhmm__ps *p;
	uintptr_t addr;

	uhmm__ps_iter_init(&it, mm, start, end);
	while (uhmm__ps_iter_next(&it, &addr, &a, &p))
		uhmm__ps_discard(mm, p, puts);
}

/* --- finding words ------------------------------------------------------------ */

struct uhmm__ps *uhmm__ps_lookup(struct uhmm_mm *mm, uintptr_t addr, struct uhmm__area **area)
{
	struct uhmm__area *a = uhmm__area_find(&mm->areas, addr);

	assert_locked(mm);
	if (area)
		*area = a;
	if (!a)
		return NULL;
	return &a->blk->ps[a->blk_off + ((addr - a->start) >> UHMM__PAGE_SHIFT)];
}

struct uhmm__ps *uhmm__ps_lookup_near(struct uhmm_mm *mm, uintptr_t addr, struct uhmm__area **hint)
{
	struct uhmm__area *a = *hint;

	assert_locked(mm);
	if (!a || addr < a->start || addr >= a->end)
		return uhmm__ps_lookup(mm, addr, hint);
	return &a->blk->ps[a->blk_off + ((addr - a->start) >> UHMM__PAGE_SHIFT)];
}

uintptr_t uhmm__ps_addr(struct uhmm_mm *mm, const struct uhmm__ps *p)
{
	assert_locked(mm);
	for (size_t i = 0; i < mm->areas.n; i++) {
		const struct uhmm__area *a = &mm->areas.v[i];
		const struct uhmm__ps *first = &a->blk->ps[a->blk_off];
		size_t n = (a->end - a->start) >> UHMM__PAGE_SHIFT;

		if (p >= first && p < first + n)
			return a->start + ((uintptr_t)(p - first) << UHMM__PAGE_SHIFT);
	}
	return 0;
}

void uhmm__ps_iter_init(struct uhmm__ps_iter *it, struct uhmm_mm *mm, uintptr_t start,
			uintptr_t end)
{
	assert_locked(mm);
	it->mm = mm;
	it->addr = start;
	it->end = end;
	it->ai = uhmm__area_lower(&mm->areas, start);
}

void uhmm__ps_check_free(const struct uhmm__ps *p, size_t n)
{
	for (size_t i = 0; UHMM__DEBUG && i < n; i++)
		uhmm__assert_expensive(p[i].w == 0);
}

UHMM__EXPORT unsigned long uhmm_mm_resident(struct uhmm_mm *mm, uintptr_t start, uintptr_t end,
					    void *owner)
{
	struct uhmm__ps_iter it;
	struct uhmm__area *a;
	struct uhmm__ps *p;
	uintptr_t addr;
	unsigned long n = 0;

	if (!mm)
		return 0;
	uhmm__lock(&mm->lock);
	uhmm__ps_iter_init(&it, mm, start, end);
	while (uhmm__ps_iter_next(&it, &addr, &a, &p)) {
		struct uhmm__ps v = uhmm__ps_load(p);

		n += uhmm__ps_res(v) == UHMM__RES_DEVICE &&
		     (!owner || uhmm__pagemap_owner(mm, uhmm__pfn_slot(uhmm__ps_pfn(v))) == owner);
	}
	uhmm__unlock(&mm->lock);
	return n;
}
