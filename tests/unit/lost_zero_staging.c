/* SPDX-License-Identifier: MIT */
/*
 * lost_zero_staging ("Nothing lost" case 3): a page that was only read (it
 * maps the shared zero page) is migrated to the device; then a page with
 * data at the same offset modulo 2 MiB is migrated. Both must read back
 * right, and reading the first must not hang.
 */
#include "devtest.h"

#define TWO_MIB_PAGES 512

int main(void)
{
	struct uhmm_mm *mm = test_mm_new();
	struct uhmm_refdev *dev = test_dev_new(mm, 0);
	char *a = test_anon(4 * TWO_MIB_PAGES * PAGE_SIZE);
	volatile char sink;

	test_deadline(30);
	for (size_t off = 0; off < 8; off++) {
		size_t za = off * 37 % TWO_MIB_PAGES, db = za + TWO_MIB_PAGES * (1 + off % 3);

		sink = a[za * PAGE_SIZE]; /* maps the zero page */
		(void)sink;
		test_fill(a, db, 1, 3 + off);
		CHECK_EQ(test_dev(dev, TO_DEV, a, za, 1, NULL, NULL), 0);
		CHECK_EQ(test_dev(dev, TO_DEV, a, db, 1, NULL, NULL), 0);
		CHECK_PAGES(a, db, 1, 3 + off);	 /* comes home by touch */
		CHECK_ZERO_PAGES(a, za, 1);
	}
	uhmm_refdev_free(dev);
	uhmm_mm_free(mm);
	return 0;
}
