/* SPDX-License-Identifier: MIT */
/*
 * lost_readonly_staging ("Nothing lost" case 4): a read-only region is
 * migrated to the device (its pages are copied, not moved) and back; then
 * an unrelated zero-filled region at the same offset modulo 2 MiB (so the
 * same staging pages) is migrated, once never touched and once only read.
 * It must read as zeros, on the device and on the CPU, without hanging,
 * and the read-only region keeps its data.
 */
#include "devtest.h"

#define N 64

int main(void)
{
	struct uhmm_mm *mm = test_mm_new();
	struct uhmm_refdev *dev = test_dev_new(mm, 0);
	char *raw = test_anon(8u << 20);
	char *base = (char *)(((uintptr_t)raw + (2u << 20) - 1) & ~((uintptr_t)(2u << 20) - 1));
	char *view = malloc(N * PAGE_SIZE);

	test_deadline(30);
	CHECK(view);
	for (int touch = 0; touch < 2; touch++) {
		char *ro = base + 5 * PAGE_SIZE + touch * (4u << 20), *z = ro + (2u << 20);

		test_fill(ro, 0, N, 4);
		CHECK_EQ(mprotect(ro, N * PAGE_SIZE, PROT_READ), 0); /* a mapping of its own */
		CHECK_EQ(test_dev(dev, TO_DEV, ro, 0, N, view, NULL), 0);
		CHECK_PAGES(view, 0, N, 4);
		CHECK_EQ(test_dev(dev, TO_SYS, ro, 0, N, NULL, NULL), 0);
		if (touch)
			CHECK_ZERO_PAGES(z, 0, N); /* maps the zero page */
		CHECK_EQ(test_dev(dev, TO_DEV, z, 0, N, view, NULL), 0);
		CHECK_ZERO_PAGES(view, 0, N);
		CHECK_EQ(test_dev(dev, UHMM_REFDEV_READ, z, 0, N, view, NULL), 0);
		CHECK_ZERO_PAGES(view, 0, N);
		CHECK_ZERO_PAGES(z, 0, N);
		CHECK_PAGES(ro, 0, N, 4);
	}
	free(view);
	uhmm_refdev_free(dev);
	uhmm_mm_free(mm);
	return 0;
}
