/* SPDX-License-Identifier: MIT */
/*
 * lost_dontneed_hang ("Nothing lost" case 6): MADV_DONTNEED over a managed
 * range, its pages read (each maps the shared zero page), two of them
 * migrated to the device, then touched: the access returns (it hung in
 * thread mode; in signal mode the zero pages were not migrated at all,
 * -ENOENT), with zeros, and data written since survives another round trip.
 * The same without the reads, and repeated over the range.
 */
#include "devtest.h"

#define N 16

int main(void)
{
	struct uhmm_mm *mm = test_mm_new();
	struct uhmm_refdev *dev = test_dev_new(mm, 0);
	char *p = test_anon(N * PAGE_SIZE);

	test_deadline(30);
	CHECK_EQ(uhmm_manage(mm, p, N * PAGE_SIZE, 0), 0);
	for (size_t round = 0; round < 2 * N; round++) {
		size_t at = round % (N - 1);

		test_fill(p, 0, N, 8);
		CHECK_EQ(madvise(p, N * PAGE_SIZE, MADV_DONTNEED), 0);
		if (round < N)
			CHECK_ZERO_PAGES(p, 0, N); /* reads: zero-page entries */
		CHECK_EQ(test_dev(dev, TO_DEV, p, at, 2, NULL, NULL), 0);
		CHECK_EQ(uhmm_mm_resident(mm, (uintptr_t)p + at * PAGE_SIZE,
					  (uintptr_t)p + (at + 2) * PAGE_SIZE, NULL), 2);
		CHECK_ZERO_PAGES(p, at, 2);
	}
	CHECK_EQ(madvise(p, N * PAGE_SIZE, MADV_DONTNEED), 0);
	CHECK_EQ(test_dev(dev, TO_DEV, p, 3, 2, NULL, NULL), 0);
	CHECK_ZERO_PAGES(p, 3, 2);
	test_fill(p, 0, N, 9);
	CHECK_EQ(madvise(p, N * PAGE_SIZE, MADV_DONTNEED), 0);
	test_fill(p, 3, 2, 10);
	CHECK_EQ(test_dev(dev, TO_DEV, p, 3, 2, NULL, NULL), 0);
	CHECK_PAGES(p, 3, 2, 10);
	CHECK_ZERO_PAGES(p, 0, 3);
	uhmm_refdev_free(dev);
	uhmm_mm_free(mm);
	return 0;
}
