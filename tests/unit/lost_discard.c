/* SPDX-License-Identifier: MIT */
/*
 * lost_discard ("Nothing lost" case 5): pages on a device, then the program
 * discards them: MADV_DONTNEED, mmap(MAP_FIXED) over them, munmap and a
 * fresh mmap at the same address, and a discard in the middle of a
 * migration. Afterwards they read as zeros, later migrations never bring
 * the old data back, and every device page is released.
 */
#include "test.h"
#include "uhmm/device.h"

#define N 64

static struct uhmm_mm *mm;
static struct uhmm_pagemap *pg;
static char owner;

static void to_dev(char *p)
{
	unsigned long src[N], dst[N];
	struct uhmm_migrate m = { .mm = mm, .start = (uintptr_t)p, .end = (uintptr_t)p + N * PAGE_SIZE,
				  .src = src, .dst = dst, .pgmap_owner = &owner,
				  .flags = UHMM_MIGRATE_SELECT_SYSTEM };

	CHECK_EQ(uhmm_migrate_setup(&m), 0);
	uhmm_migrate_alloc_and_copy(&m, pg);
	uhmm_migrate_pages(&m);
	uhmm_migrate_finalize(&m);
}

static void round_trip(char *p)
{
	to_dev(p);
	CHECK(uhmm_migrate_to_ram(mm, (uintptr_t)p, (uintptr_t)p + N * PAGE_SIZE, &owner) >= 0);
}

static uint64_t free_pages(void)
{
	struct uhmm_pagemap_stats st;

	uhmm_pagemap_stats(pg, &st);
	return st.pages_free;
}

int main(void)
{
	struct uhmm_pagemap_config cfg = { .type = UHMM_PAGEMAP_PRIVATE, .owner = &owner,
					   .host_storage = true };
	uint64_t all;
	char *p;

	test_deadline(60);
	mm = test_mm_new();
	CHECK_EQ(uhmm_pagemap_new(&pg, mm, &cfg), 0);
	CHECK_EQ(uhmm_pagemap_add_memory(pg, 2u << 20), 0);
	all = free_pages();
	p = test_anon(N * PAGE_SIZE);

	/* MADV_DONTNEED. */
	test_fill(p, 0, N, 5);
	to_dev(p);
	CHECK_EQ(free_pages(), all - N);
	CHECK_EQ(madvise(p, N * PAGE_SIZE, MADV_DONTNEED), 0);
	CHECK_EQ(free_pages(), all);
	round_trip(p);
	CHECK_ZERO_PAGES(p, 0, N);
	CHECK_EQ(free_pages(), all);

	/* mmap(MAP_FIXED) over them. */
	test_fill(p, 0, N, 6);
	to_dev(p);
	CHECK(mmap(p, N * PAGE_SIZE, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS | MAP_FIXED,
		   -1, 0) == p);
	CHECK_EQ(free_pages(), all);
	round_trip(p);
	CHECK_ZERO_PAGES(p, 0, N);

	/* munmap, then a fresh mapping at the same address. */
	test_fill(p, 0, N, 7);
	to_dev(p);
	CHECK_EQ(munmap(p, N * PAGE_SIZE), 0);
	CHECK_EQ(free_pages(), all);
	CHECK(mmap(p, N * PAGE_SIZE, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS | MAP_FIXED,
		   -1, 0) == p);
	round_trip(p);
	CHECK_ZERO_PAGES(p, 0, N);
	CHECK_EQ(free_pages(), all);

	/* A discard while the pages are isolated by a migration. */
	for (int way = 0; way < 2; way++) {
		unsigned long src[N], dst[N];
		struct uhmm_migrate m = { .mm = mm, .start = (uintptr_t)p,
					  .end = (uintptr_t)p + N * PAGE_SIZE, .src = src, .dst = dst,
					  .pgmap_owner = &owner };

		test_fill(p, 0, N, 8 + way);
		if (way)
			to_dev(p); /* the second time, the migration brings them home */
		m.flags = way ? UHMM_MIGRATE_SELECT_DEVICE_PRIVATE : UHMM_MIGRATE_SELECT_SYSTEM;
		CHECK_EQ(uhmm_migrate_setup(&m), 0);
		CHECK_EQ(m.cpages, N);
		CHECK_EQ(madvise(p, N * PAGE_SIZE, MADV_DONTNEED), 0);
		if (way) {
			for (size_t i = 0; i < N; i++)
				dst[i] = uhmm_migrate_sys_pfn(&m, i);
			uhmm_migrate_copy(&m);
		} else {
			uhmm_migrate_alloc_and_copy(&m, pg);
		}
		uhmm_migrate_pages(&m);
		uhmm_migrate_finalize(&m);
		CHECK_ZERO_PAGES(p, 0, N);
		CHECK_EQ(free_pages(), all);
		round_trip(p);
		CHECK_ZERO_PAGES(p, 0, N);
	}
	munmap(p, N * PAGE_SIZE);
	uhmm_pagemap_free(pg);
	uhmm_mm_free(mm);
	return 0;
}
