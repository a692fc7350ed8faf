/* SPDX-License-Identifier: MIT */
/*
 * pagemap_errors: device memory's error paths leave nothing corrupt.
 *  - removing a sub-section with pages in use: -EBUSY, data stays; with
 *    UHMM_PAGEMAP_EVICT the pages come home with their data;
 *  - a double put, a foreign page, a page out of range: -EINVAL, no change;
 *  - page_free runs exactly once per page;
 *  - freeing a pagemap with an outside reference is -EBUSY until the put;
 *  - bad configurations are refused.
 */
#include <pthread.h>
#include <stdatomic.h>

#include "test.h"
#include "uhmm/device.h"

static atomic_int freed;

static void page_free(struct uhmm_pagemap *pg, uint64_t page)
{
	(void)pg;
	(void)page;
	atomic_fetch_add(&freed, 1);
}

static const struct uhmm_pagemap_ops ops = { .page_free = page_free };
static char owner;

void uhmm__pagemap_fail_next(struct uhmm_pagemap *pg);

int main(void)
{
	struct uhmm_mm *mm = test_mm_new();
	struct uhmm_pagemap_config cfg = {
		.type = UHMM_PAGEMAP_PRIVATE, .owner = &owner, .ops = &ops, .host_storage = true,
	};
	struct uhmm_pagemap *pg, *other;
	uint64_t page;
	size_t len = 64 * PAGE_SIZE;
	char *p = test_anon(len);
	unsigned long src[64], dst[64];
	struct uhmm_migrate m = { .mm = mm, .start = (uintptr_t)p, .end = (uintptr_t)p + len,
				  .src = src, .dst = dst, .pgmap_owner = &owner,
				  .flags = UHMM_MIGRATE_SELECT_SYSTEM };

	/* Bad configurations. */
	{
		struct uhmm_pagemap_config bad = cfg;

		bad.owner = NULL;
		CHECK_EQ(uhmm_pagemap_new(&pg, mm, &bad), -EINVAL);
		bad = cfg;
		bad.type = UHMM_PAGEMAP_COHERENT;
		CHECK_EQ(uhmm_pagemap_new(&pg, mm, &bad), -EOPNOTSUPP);
		bad = cfg;
		bad.host_storage = false; /* device memory needs copy callbacks */
		CHECK_EQ(uhmm_pagemap_new(&pg, mm, &bad), -EINVAL);
	}
	CHECK_EQ(uhmm_pagemap_new(&pg, mm, &cfg), 0);
	CHECK_EQ(uhmm_pagemap_add_memory(pg, 4096), -EINVAL);
	CHECK_EQ(uhmm_pagemap_add_memory(pg, 4u << 20), 0); /* sections 0 and 1 */

	/* Migrate 64 pages with known data into section 0. */
	for (size_t i = 0; i < len; i++)
		p[i] = (char)(i * 7);
	CHECK_EQ(uhmm_migrate_setup(&m), 0);
	CHECK_EQ(m.cpages, 64);
	CHECK_EQ(uhmm_migrate_alloc_and_copy(&m, pg), 64);
	uhmm_migrate_pages(&m);
	uhmm_migrate_finalize(&m);
	CHECK_EQ(uhmm_mm_resident(mm, m.start, m.end, &owner), 64);

	/* Section in use: -EBUSY and nothing moves; EVICT brings it home. */
	page = uhmm_migrate_pfn_frame(dst[0]);
	CHECK_EQ(uhmm_pagemap_remove_memory(pg, (unsigned int)(uhmm_device_pfn_index(page) / 512), 0), -EBUSY);
	CHECK_EQ(uhmm_mm_resident(mm, m.start, m.end, &owner), 64);
	CHECK_EQ(uhmm_pagemap_remove_memory(pg, 9, 0), -EINVAL);
	CHECK_EQ(uhmm_pagemap_remove_memory(pg, (unsigned int)(uhmm_device_pfn_index(page) / 512), UHMM_PAGEMAP_EVICT), 0);
	CHECK_EQ(uhmm_mm_resident(mm, m.start, m.end, NULL), 0);
	for (size_t i = 0; i < len; i++)
		CHECK_EQ(p[i], (char)(i * 7));
	CHECK_EQ(atomic_load(&freed), 64); /* exactly once each */
	CHECK_EQ(uhmm_pagemap_remove_memory(pg, (unsigned int)(uhmm_device_pfn_index(page) / 512), 0), -EINVAL); /* gone */

	/* References: double put and foreign pages are refused. */
	CHECK_EQ(uhmm_pagemap_alloc_page(pg, &page), 0);
	CHECK_EQ(uhmm_page_get(pg, page), 0);
	CHECK_EQ(uhmm_page_put(pg, page), 0);
	CHECK_EQ(uhmm_page_put(pg, page), 0);
	CHECK_EQ(atomic_load(&freed), 65);
	CHECK_EQ(uhmm_page_put(pg, page), -EINVAL);	   /* double put */
	CHECK_EQ(uhmm_page_put(pg, 1u << 30), -EINVAL);	   /* out of range */
	CHECK_EQ(uhmm_page_get(pg, page), -EINVAL);	   /* free page */
	{
		char owner2;
		struct uhmm_pagemap_config c2 = cfg;

		c2.owner = &owner2;
		CHECK_EQ(uhmm_pagemap_new(&other, mm, &c2), 0);
		CHECK_EQ(uhmm_pagemap_add_memory(other, 2u << 20), 0);
		CHECK_EQ(uhmm_page_put(other, page), -EINVAL); /* never allocated there */
		CHECK_EQ(uhmm_pagemap_free(other), 0);
	}
	CHECK_EQ(atomic_load(&freed), 65);

	/* FAIL_ALLOC: the next allocation fails as a device out of memory. */
	uhmm__pagemap_fail_next(pg);
	CHECK_EQ(uhmm_pagemap_alloc_page(pg, &page), -ENOMEM);
	CHECK_EQ(uhmm_pagemap_alloc_page(pg, &page), 0);
	CHECK_EQ(uhmm_page_put(pg, page), 0);

	/* Free with an outside reference: refused until it is put. */
	CHECK_EQ(uhmm_pagemap_alloc_page(pg, &page), 0);
	CHECK_EQ(uhmm_pagemap_free(pg), -EBUSY);
	CHECK_EQ(uhmm_page_put(pg, page), 0);
	CHECK_EQ(uhmm_pagemap_free(pg), 0);

	munmap(p, len);
	uhmm_mm_free(mm);
	return 0;
}
