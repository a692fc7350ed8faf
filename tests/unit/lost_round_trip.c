/* SPDX-License-Identifier: MIT */
/*
 * lost_round_trip ("Nothing lost" case 1): one thread migrates overlapping
 * random ranges of a 64 MiB buffer to the reference device and back, with
 * no concurrency at all; every page must then read back with its data.
 */
#include "devtest.h"

#define NPAGES (64ul << 20 >> 12)
#define ROUNDS 300

int main(void)
{
	struct uhmm_mm *mm = test_mm_new();
	struct uhmm_refdev *dev = test_dev_new(mm, 0);
	char *p = test_anon(NPAGES * PAGE_SIZE);
	uint64_t seed = 0x1234;

	test_deadline(100);
	test_fill(p, 0, NPAGES, 1);
	for (int round = 0; round < ROUNDS; round++) {
		size_t first = test_rand(&seed) % NPAGES;
		size_t n = 1 + test_rand(&seed) % (NPAGES - first < 4096 ? NPAGES - first : 4096);
		int r = test_dev(dev, test_rand(&seed) & 1 ? TO_DEV : TO_SYS, p, first, n, NULL,
				 NULL);

		CHECK_EQ(r, 0);
	}
	CHECK_PAGES(p, 0, NPAGES, 1);
	/* And once more after everything went out and came back whole. */
	CHECK_EQ(test_dev(dev, TO_DEV, p, 0, NPAGES, NULL, NULL), 0);
	CHECK_EQ(test_dev(dev, TO_SYS, p, 0, NPAGES, NULL, NULL), 0);
	CHECK_PAGES(p, 0, NPAGES, 1);
	uhmm_refdev_free(dev);
	uhmm_mm_free(mm);
	return 0;
}
