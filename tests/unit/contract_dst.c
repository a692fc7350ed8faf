/* SPDX-License-Identifier: MIT */
/*
 * contract_dst ("Nothing lost" case 8): the kernel's device contract. A
 * device with memory of its own allocates its pages, copies the data
 * itself and fills dst (as lib/test_hmm.c does): the pages migrate, come
 * home on a CPU touch through its copy callback, and uhmm_pagemap_free()
 * returns. A destination given twice, or never allocated, is refused with
 * -EINVAL before anything moves, and finalize releases what was given.
 */
#include "test.h"
#include "uhmm/device.h"

#define N 16
#define DEVPAGES 512

static struct {
	uint64_t pfn;
	bool used;
	char data[PAGE_SIZE];
} mem[DEVPAGES];

static size_t slot_of(uint64_t pfn)
{
	for (size_t i = 0; i < DEVPAGES; i++)
		if (mem[i].used && mem[i].pfn == pfn)
			return i;
	for (size_t i = 0; i < DEVPAGES; i++)
		if (!mem[i].used) {
			mem[i].used = true;
			mem[i].pfn = pfn;
			return i;
		}
	fprintf(stderr, "device memory table full\n");
	exit(1);
}

static int to_dev(struct uhmm_pagemap *pg, const uint64_t *dst, const void *const *src, size_t n)
{
	(void)pg;
	for (size_t i = 0; i < n; i++)
		memcpy(mem[slot_of(dst[i])].data, src[i], PAGE_SIZE);
	return 0;
}

static int from_dev(struct uhmm_pagemap *pg, void *const *dst, const uint64_t *src, size_t n)
{
	(void)pg;
	for (size_t i = 0; i < n; i++)
		memcpy(dst[i], mem[slot_of(src[i])].data, PAGE_SIZE);
	return 0;
}

static void page_free(struct uhmm_pagemap *pg, uint64_t pfn)
{
	(void)pg;
	mem[slot_of(pfn)].used = false;
}

static const struct uhmm_pagemap_ops ops = {
	.page_free = page_free, .copy_to_device = to_dev, .copy_from_device = from_dev,
};

static char owner;

/* setup: every page selected. */
static void setup(struct uhmm_mm *mm, struct uhmm_migrate *m, char *p, unsigned long *src,
		  unsigned long *dst)
{
	*m = (struct uhmm_migrate){ .mm = mm, .start = (uintptr_t)p,
				    .end = (uintptr_t)p + N * PAGE_SIZE, .src = src, .dst = dst,
				    .pgmap_owner = &owner, .flags = UHMM_MIGRATE_SELECT_SYSTEM };
	CHECK_EQ(uhmm_migrate_setup(m), 0);
	CHECK_EQ(m->cpages, N);
}

/* The device's own alloc-and-copy, dmirror style. */
static void alloc_and_copy(struct uhmm_pagemap *pg, struct uhmm_migrate *m)
{
	for (size_t i = 0; i < N; i++) {
		uint64_t page;

		if (!(m->src[i] & UHMM_MIGRATE_PFN_MIGRATE))
			continue;
		CHECK_EQ(uhmm_pagemap_alloc_page(pg, &page), 0);
		if (m->src[i] & UHMM_MIGRATE_PFN_VALID)
			memcpy(mem[slot_of(page)].data,
			       (void *)(uhmm_migrate_pfn_frame(m->src[i]) << 12), PAGE_SIZE);
		else
			memset(mem[slot_of(page)].data, 0, PAGE_SIZE);
		m->dst[i] = uhmm_migrate_pfn_device(page);
	}
}

int main(void)
{
	struct uhmm_mm *mm = test_mm_new();
	struct uhmm_pagemap_config cfg = { .type = UHMM_PAGEMAP_PRIVATE, .owner = &owner,
					   .ops = &ops };
	struct uhmm_pagemap *pg;
	struct uhmm_pagemap_stats st;
	char *p = test_anon(N * PAGE_SIZE);
	unsigned long src[N], dst[N];
	struct uhmm_migrate m;

	test_deadline(30);
	CHECK_EQ(uhmm_pagemap_new(&pg, mm, &cfg), 0);
	CHECK_EQ(uhmm_pagemap_add_memory(pg, 2u << 20), 0);
	test_fill(p, 0, N, 13);

	/* The device fills dst itself: the pages migrate. */
	setup(mm, &m, p, src, dst);
	alloc_and_copy(pg, &m);
	CHECK_EQ(uhmm_migrate_pages(&m), 0);
	uhmm_migrate_finalize(&m);
	CHECK_EQ(uhmm_mm_resident(mm, m.start, m.end, &owner), N);
	CHECK_PAGES(p, 0, N, 13); /* home through copy_from_device */
	CHECK_EQ(uhmm_mm_resident(mm, m.start, m.end, &owner), 0);

	/* The same destination twice: refused, nothing moves, pages released. */
	setup(mm, &m, p, src, dst);
	alloc_and_copy(pg, &m);
	CHECK_EQ(uhmm_page_put(pg, uhmm_migrate_pfn_frame(dst[5])), 0); /* 5's page goes back... */
	dst[5] = dst[3];						  /* ...and 3's is given twice */
	CHECK_EQ(uhmm_migrate_pages(&m), -EINVAL);
	uhmm_migrate_finalize(&m);
	CHECK_EQ(uhmm_mm_resident(mm, m.start, m.end, NULL), 0);
	CHECK_PAGES(p, 0, N, 13);
	uhmm_pagemap_stats(pg, &st);
	CHECK_EQ(st.pages_free, st.pages_total);

	/* A destination that was never allocated (freed before use): refused. */
	setup(mm, &m, p, src, dst);
	alloc_and_copy(pg, &m);
	CHECK_EQ(uhmm_page_put(pg, uhmm_migrate_pfn_frame(dst[7])), 0);
	CHECK_EQ(uhmm_migrate_pages(&m), -EINVAL);
	uhmm_migrate_finalize(&m);
	CHECK_EQ(uhmm_mm_resident(mm, m.start, m.end, NULL), 0);
	CHECK_PAGES(p, 0, N, 13);
	uhmm_pagemap_stats(pg, &st);
	CHECK_EQ(st.pages_free, st.pages_total);

	/* Given but not committed (dst left for finalize): released too. */
	setup(mm, &m, p, src, dst);
	alloc_and_copy(pg, &m);
	uhmm_migrate_finalize(&m); /* no uhmm_migrate_pages: nothing migrates */
	uhmm_pagemap_stats(pg, &st);
	CHECK_EQ(st.pages_free, st.pages_total);
	CHECK_PAGES(p, 0, N, 13);

	CHECK_EQ(uhmm_pagemap_free(pg), 0);
	uhmm_mm_free(mm);
	return 0;
}
