/* SPDX-License-Identifier: MIT */
/*
 * lost_bad_input ("Nothing lost" case 15): bad input fails, it never
 * corrupts:
 *  - uhmm_migrate_setup() on a range longer than its mapping is -EINVAL and
 *    writes nothing into the caller's arrays;
 *  - reference-device commands with ptr 0 are -EFAULT (dmirror's answer);
 *  - uhmm_free() of a mapping the program made itself (and managed) is
 *    -EINVAL and leaves it mapped;
 *  - a pagemap's sub-sections are reused: thousands of add/remove cycles,
 *    and an empty pagemap can still grow; an add_memory that fails has not
 *    grown the pool.
 */
#include "devtest.h"

void uhmm__inject_after(long n);

#define N 8

int main(void)
{
	struct uhmm_mm *mm = test_mm_new();
	struct uhmm_refdev *dev = test_dev_new(mm, 0);
	char *p = test_anon(N * PAGE_SIZE);
	char owner;

	test_deadline(60);
	/* A range past its mapping: arrays untouched. */
	{
		unsigned long src[N + 4], dst[N + 4];
		struct uhmm_migrate m = { .mm = mm, .start = (uintptr_t)p,
					  .end = (uintptr_t)p + 64 * N * PAGE_SIZE, .src = src,
					  .dst = dst, .pgmap_owner = &owner,
					  .flags = UHMM_MIGRATE_SELECT_SYSTEM };

		for (size_t i = 0; i < N + 4; i++)
			src[i] = dst[i] = 0xdeadbeef;
		CHECK_EQ(uhmm_migrate_setup(&m), -EINVAL);
		for (size_t i = 0; i < N + 4; i++)
			CHECK(src[i] == 0xdeadbeef && dst[i] == 0xdeadbeef);
	}

	/* ptr 0. */
	for (int op = UHMM_REFDEV_READ; op <= UHMM_REFDEV_EXCLUSIVE; op++) {
		struct uhmm_refdev_cmd c = { .addr = (uintptr_t)p, .ptr = 0, .npages = N };

		if (op == UHMM_REFDEV_MIGRATE_TO_SYS)
			continue; /* takes no buffer */
		CHECK_EQ(uhmm_refdev_cmd(dev, op, &c), -EFAULT);
	}
	test_fill(p, 0, N, 21);
	CHECK_PAGES(p, 0, N, 21);

	/* uhmm_free() of the program's own mapping. */
	CHECK_EQ(uhmm_manage(mm, p, N * PAGE_SIZE, 0), 0);
	CHECK_EQ(uhmm_free(mm, p, N * PAGE_SIZE), -EINVAL);
	CHECK(uhmm_is_managed(mm, p, N * PAGE_SIZE));
	CHECK_PAGES(p, 0, N, 21);
	{
		char *a = uhmm_alloc(mm, 4 * PAGE_SIZE, 0);

		CHECK(a);
		CHECK_EQ(uhmm_free(mm, a, 2 * PAGE_SIZE), -EINVAL); /* a part of it */
		CHECK_EQ(uhmm_free(mm, a, 4 * PAGE_SIZE), 0);
	}

	/* Sub-sections come and go; the slots are reused. */
	{
		struct uhmm_pagemap_config cfg = { .type = UHMM_PAGEMAP_PRIVATE, .owner = &owner,
						   .host_storage = true };
		struct uhmm_pagemap *pg;
		struct uhmm_pagemap_stats st;
		uint64_t page;

		CHECK_EQ(uhmm_pagemap_new(&pg, mm, &cfg), 0);
		for (int i = 0; i < 5000; i++) {
			CHECK_EQ(uhmm_pagemap_add_memory(pg, 2u << 20), 0);
			CHECK_EQ(uhmm_pagemap_remove_memory(pg, 0, 0), 0);
		}
		CHECK_EQ(uhmm_pagemap_add_memory(pg, 4u << 20), 0);
		uhmm_pagemap_stats(pg, &st);
		CHECK_EQ(st.pages_total, 1024);
		/* A failing add adds nothing. */
		for (long n = 1; n < 20; n++) {
			int r;

			uhmm__inject_after(n);
			r = uhmm_pagemap_add_memory(pg, 8u << 20);
			uhmm__inject_after(0);
			uhmm_pagemap_stats(pg, &st);
			if (r == 0) {
				CHECK_EQ(st.pages_total, 1024 + 2048);
				break;
			}
			CHECK_EQ(r, -ENOMEM);
			CHECK_EQ(st.pages_total, 1024);
		}
		CHECK_EQ(uhmm_pagemap_alloc_page(pg, &page), 0);
		CHECK_EQ(uhmm_page_put(pg, page), 0);
		CHECK_EQ(uhmm_pagemap_free(pg), 0);
	}
	uhmm_refdev_free(dev);
	uhmm_mm_free(mm);
	return 0;
}
