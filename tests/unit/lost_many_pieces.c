/* SPDX-License-Identifier: MIT */
/*
 * lost_many_pieces ("Nothing lost" case 7): a mapping managed in many
 * pieces (each its own page-state block) and unmapped piece by piece while
 * a migration holds it, in both directions: the migration must keep every
 * block it uses alive (ASan caught a use-after-free past the eighth), and
 * the pieces still mapped keep their data.
 */
#include "test.h"
#include "uhmm/device.h"

#define PIECES 24
#define N (PIECES * 2)

static struct uhmm_mm *mm;
static struct uhmm_pagemap *pg;
static char owner;

static void one_way(char *p, bool to_device, uint64_t tag)
{
	unsigned long src[N], dst[N];
	struct uhmm_migrate m = { .mm = mm, .start = (uintptr_t)p, .end = (uintptr_t)p + N * PAGE_SIZE,
				  .src = src, .dst = dst, .pgmap_owner = &owner,
				  .flags = to_device ? UHMM_MIGRATE_SELECT_SYSTEM
						     : UHMM_MIGRATE_SELECT_DEVICE_PRIVATE };

	CHECK_EQ(uhmm_migrate_setup(&m), 0);
	CHECK_EQ(m.cpages, N);
	if (to_device) {
		uhmm_migrate_alloc_and_copy(&m, pg);
	} else {
		for (size_t i = 0; i < N; i++)
			dst[i] = uhmm_migrate_sys_pfn(&m, i);
		uhmm_migrate_copy(&m);
	}
	for (size_t i = 0; i < PIECES; i += 2) /* every other piece goes */
		CHECK_EQ(munmap(p + 2 * i * PAGE_SIZE, 2 * PAGE_SIZE), 0);
	uhmm_migrate_pages(&m);
	uhmm_migrate_finalize(&m);
	for (size_t i = 1; i < PIECES; i += 2)
		CHECK_PAGES(p, 2 * i, 2, tag);
}

static char *pieces(uint64_t tag)
{
	char *p = test_anon(N * PAGE_SIZE);

	test_fill(p, 0, N, tag);
	for (size_t i = 0; i < PIECES; i++) /* one block per piece */
		CHECK_EQ(uhmm_manage(mm, p + 2 * i * PAGE_SIZE, 2 * PAGE_SIZE, 0), 0);
	return p;
}

int main(void)
{
	struct uhmm_pagemap_config cfg = { .type = UHMM_PAGEMAP_PRIVATE, .owner = &owner,
					   .host_storage = true };
	struct uhmm_pagemap_stats st;
	char *p;

	test_deadline(30);
	mm = test_mm_new();
	CHECK_EQ(uhmm_pagemap_new(&pg, mm, &cfg), 0);
	CHECK_EQ(uhmm_pagemap_add_memory(pg, 2u << 20), 0);
	one_way(pieces(11), true, 11);
	p = pieces(12);
	CHECK(uhmm_migrate_to_ram(mm, (uintptr_t)p, (uintptr_t)p + N * PAGE_SIZE, &owner) >= 0);
	{
		unsigned long src[N], dst[N];
		struct uhmm_migrate m = { .mm = mm, .start = (uintptr_t)p,
					  .end = (uintptr_t)p + N * PAGE_SIZE, .src = src, .dst = dst,
					  .pgmap_owner = &owner, .flags = UHMM_MIGRATE_SELECT_SYSTEM };

		CHECK_EQ(uhmm_migrate_setup(&m), 0);
		uhmm_migrate_alloc_and_copy(&m, pg);
		uhmm_migrate_pages(&m);
		uhmm_migrate_finalize(&m);
	}
	one_way(p, false, 12);
	/* The unmapped pieces' device pages went back to the device. */
	uhmm_pagemap_stats(pg, &st);
	CHECK_EQ(st.pages_free + uhmm_mm_resident(mm, 0, UINTPTR_MAX & ~4095ul, &owner),
		 st.pages_total);
	uhmm_pagemap_free(pg);
	uhmm_mm_free(mm);
	return 0;
}
