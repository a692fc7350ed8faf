/* SPDX-License-Identifier: MIT */
/*
 * migrate_copy.c - the helpers a device may use between setup and
 * uhmm_migrate_pages(), as a kernel driver writes its own
 * alloc_and_copy (lib/test_hmm.c: dmirror_migrate_alloc_and_copy):
 *
 *   uhmm_migrate_alloc_and_copy()  allocate device pages (a whole 2 MiB
 *                                  section for an aligned run when asked),
 *                                  fill dst, copy
 *   uhmm_migrate_copy()            copy for the dst the device filled
 *
 * Copying is a move where uhmm holds the memory on both sides (host
 * storage: no copy at all, a 2 MiB run as one PMD) and the pagemap's
 * batched copy callbacks otherwise, one call per run. Every destination is
 * checked and claimed first (uhmm__migrate_claim): a bad one refuses the
 * whole call before anything moves.
 */
#include <errno.h>

#include "migrate.h"

/* Is entry @i one the caller asked to move (selected, with a destination)? */
static bool to_copy(struct uhmm_migrate *m, unsigned long i)
{
	return M(m)->pg[i].ps && (m->src[i] & UHMM_MIGRATE_PFN_MIGRATE) &&
	       (m->dst[i] & UHMM_MIGRATE_PFN_VALID);
}

/* The device page on the device side of entry @i. */
static uint64_t dev_pfn(struct mig *g, unsigned long i)
{
	return g->pg[i].sel == SEL_SYS ? g->pg[i].dst_pfn : g->pg[i].src_pfn;
}

/* The run starting at @i: same direction and pagemap, data or not alike. */
static unsigned long run_end(struct uhmm_migrate *m, unsigned long i)
{
	struct mig *g = M(m);
	unsigned long j = i + 1;
	bool data = m->src[i] & UHMM_MIGRATE_PFN_VALID;

	while (j < m->npages && to_copy(m, j) && g->pg[j].sel == g->pg[i].sel &&
	       !!(m->src[j] & UHMM_MIGRATE_PFN_VALID) == data &&
	       uhmm__pfn_slot(dev_pfn(g, j)) == uhmm__pfn_slot(dev_pfn(g, i)))
		j++;
	return j;
}

/* Entries [i, j) will not migrate: their destinations stay claimed until finalize. */
static void drop(struct uhmm_migrate *m, unsigned long i, unsigned long j)
{
	for (unsigned long k = i; k < j; k++)
		m->dst[k] = 0;
}

/* Copy through the device's callback, one batch. */
static int copy_batch(struct uhmm_migrate *m, struct uhmm_pagemap *pg, unsigned long i,
		      unsigned long j)
{
	struct mig *g = M(m);
	size_t n = j - i;
	void **host = uhmm__malloc(n * sizeof(*host));
	uint64_t *pfns = uhmm__malloc(n * sizeof(*pfns));
	int r;

	if (!host || !pfns) {
		uhmm__free(host);
		uhmm__free(pfns);
		return -ENOMEM;
	}
	for (size_t k = 0; k < n; k++) {
		host[k] = (void *)mig_stage(g, i + k);
		pfns[k] = dev_pfn(g, i + k);
	}
	if (g->pg[i].sel == SEL_SYS) {
		r = pg->cfg.ops->copy_to_device(pg, pfns, (const void *const *)host, n);
	} else {
		/*
		 * The device writes into staging: its holes are filled first,
		 * with 4 KiB zero-page entries. Registered for missing faults, a
		 * hole would make a device running on uhmm's fault thread wait
		 * for itself; in either mode the first write into a hole could
		 * make the kernel fill a whole 2 MiB THP for one page.
		 */
		uhmm__uffd_zeropage(m->mm->uffd, mig_stage(g, i), n << UHMM__PAGE_SHIFT,
				    UFFDIO_ZEROPAGE_MODE_DONTWAKE, NULL);
		r = pg->cfg.ops->copy_from_device(pg, host, pfns, n);
	}
	uhmm__free(host);
	uhmm__free(pfns);
	return r;
}

static int copy_run(struct uhmm_migrate *m, unsigned long i, unsigned long j)
{
	struct mig *g = M(m);
	struct uhmm_pagemap *pg;

	uhmm__lock(&m->mm->lock);
	pg = uhmm__pagemap_of(m->mm, dev_pfn(g, i));
	uhmm__unlock(&m->mm->lock);
	if (!pg)
		return -EINVAL;
	if (g->pg[i].sel == SEL_SYS) {
		if (!(m->src[i] & UHMM_MIGRATE_PFN_VALID))
			return 0; /* no data: device pages are zeroed when allocated */
		if (pg->cfg.host_storage)
			return uhmm__move_to_storage(m, pg, i, j, false);
		return copy_batch(m, pg, i, j);
	}
	if (pg->cfg.host_storage)
		return uhmm__move_from_storage(m, pg, i, j);
	return copy_batch(m, pg, i, j);
}

UHMM__EXPORT int uhmm_migrate_copy(struct uhmm_migrate *m)
{
	struct mig *g = m ? M(m) : NULL;
	int first = 0, r;

	if (!g || g->refused)
		return -EINVAL;
	r = uhmm__migrate_claim(m);
	if (r)
		return r; /* nothing moved; what was claimed is released by finalize */
	for (unsigned long i = 0; i < m->npages;) {
		unsigned long j;

		if (!to_copy(m, i)) {
			i++;
			continue;
		}
		j = run_end(m, i);
		r = copy_run(m, i, j);
		if (r) {
			drop(m, i, j); /* those pages stay where they are */
			if (!first)
				first = r;
		}
		i = j;
	}
	return first;
}

/*
 * Allocate @n destinations for entries [i, i+n), contiguous. Where
 * uhmm__migrate_claim() would accept them (the pagemap is this mm's and
 * not the exclusive store, no destination claimed there earlier), they are
 * claimed as they are allocated, so that the claim step need not look at
 * them again.
 */
static bool alloc_dst(struct uhmm_migrate *m, struct uhmm_pagemap *pg, unsigned long i, size_t n)
{
	struct mig *g = M(m);
	bool claim = pg->mm == m->mm && pg != m->mm->excl_store;
	uint64_t pfn;

	for (unsigned long k = 0; k < n && claim; k++)
		claim = !g->pg[i + k].dst_pfn; /* one claimed earlier is released by the claim step */

	if (claim ? uhmm__pagemap_alloc_claimed(pg, n, &pfn) : uhmm__pagemap_alloc(pg, n, &pfn))
		return false;
	for (unsigned long k = 0; k < n; k++) {
		m->dst[i + k] = uhmm_migrate_pfn_device(pfn + k) |
				(m->src[i + k] & UHMM_MIGRATE_PFN_WRITE);
		if (claim)
			g->pg[i + k].dst_pfn = pfn + k;
	}
	if (n > 1)
		m->dst[i] |= UHMM_MIGRATE_PFN_COMPOUND;
	return true;
}

UHMM__EXPORT unsigned long uhmm_migrate_alloc_and_copy(struct uhmm_migrate *m,
						       struct uhmm_pagemap *pgmap)
{
	struct mig *g = m ? M(m) : NULL;
	unsigned long given = 0;

	if (!g || !pgmap)
		return 0;
	for (unsigned long i = 0; i < m->npages; i++) {
		if (!(m->src[i] & UHMM_MIGRATE_PFN_MIGRATE) || g->pg[i].sel != SEL_SYS ||
		    (m->dst[i] & UHMM_MIGRATE_PFN_VALID))
			continue;
		/* A whole 2 MiB run: one contiguous section, so it can move as a PMD. */
		if ((m->src[i] & UHMM_MIGRATE_PFN_COMPOUND) && i + UHMM__SECTION_PAGES <= m->npages &&
		    alloc_dst(m, pgmap, i, UHMM__SECTION_PAGES)) {
			i += UHMM__SECTION_PAGES - 1;
			continue;
		}
		/* Single pages (a failed whole-section allocation too). */
		alloc_dst(m, pgmap, i, 1); /* device out of memory: this page stays home */
	}
	uhmm_migrate_copy(m); /* entries whose copy failed lose their dst */
	for (unsigned long i = 0; i < m->npages; i++)
		given += g->pg[i].ps && (m->dst[i] & UHMM_MIGRATE_PFN_VALID);
	return given;
}
