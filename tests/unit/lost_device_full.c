/* SPDX-License-Identifier: MIT */
/*
 * lost_device_full ("Nothing lost" case 2): migrating more than the device
 * holds, or with the device's allocation failing, leaves every page that
 * did not fit home with its data; what fit comes back whole.
 */
#include "devtest.h"

#define NPAGES 4096 /* 16 MiB into a 4 MiB device */

int main(void)
{
	struct uhmm_mm *mm = test_mm_new();
	struct uhmm_refdev *dev = test_dev_new(mm, 4);
	char *p = test_anon(NPAGES * PAGE_SIZE);
	struct uhmm_refdev_cmd c = { .npages = UHMM_REFDEV_FLAG_FAIL_ALLOC };
	uint64_t cpages = 0;
	int r;

	test_deadline(60);
	test_fill(p, 0, NPAGES, 2);
	/* Random runs both ways into the full device. */
	{
		uint64_t seed = 3;


		for (int i = 0; i < 30; i++) {
			size_t a = test_rand(&seed) % NPAGES, n = 1 + test_rand(&seed) % 2048;

			n = a + n > NPAGES ? NPAGES - a : n;
			r = test_dev(dev, test_rand(&seed) % 3 ? TO_DEV : TO_SYS, p, a, n, NULL, NULL);
			CHECK(r == 0 || r == -ENOMEM || r == -ENOENT);
		}
		CHECK_PAGES(p, 0, NPAGES, 2);
		CHECK_EQ(test_dev(dev, TO_SYS, p, 0, NPAGES, NULL, NULL), 0);
	}
	/* Full: what does not fit stays home. */
	r = test_dev(dev, TO_DEV, p, 0, NPAGES, NULL, &cpages);
	CHECK(r == 0 || r == -ENOMEM || r == -ENOENT);
	CHECK(uhmm_mm_resident(mm, (uintptr_t)p, (uintptr_t)p + NPAGES * PAGE_SIZE, NULL) <= 1024);
	CHECK(uhmm_mm_resident(mm, (uintptr_t)p, (uintptr_t)p + NPAGES * PAGE_SIZE, NULL) > 0);
	CHECK_PAGES(p, 0, NPAGES, 2);
	/* Full again, from the other end, after some came home by touch. */
	r = test_dev(dev, TO_DEV, p, NPAGES / 2, NPAGES / 2, NULL, NULL);
	CHECK(r == 0 || r == -ENOMEM || r == -ENOENT);
	CHECK_PAGES(p, 0, NPAGES, 2);
	/* A failing allocation (dmirror's FAIL_ALLOC): nothing is lost either. */
	CHECK_EQ(test_dev(dev, TO_SYS, p, 0, NPAGES, NULL, NULL), 0);
	CHECK_EQ(uhmm_refdev_cmd(dev, UHMM_REFDEV_FLAGS, &c), 0);
	r = test_dev(dev, TO_DEV, p, 0, 64, NULL, NULL);
	CHECK(r == 0 || r == -ENOMEM || r == -ENOENT);
	CHECK_EQ(test_dev(dev, TO_SYS, p, 0, NPAGES, NULL, NULL), 0);
	CHECK_EQ(uhmm_mm_resident(mm, (uintptr_t)p, (uintptr_t)p + NPAGES * PAGE_SIZE, NULL), 0);
	CHECK_PAGES(p, 0, NPAGES, 2);
	uhmm_refdev_free(dev);
	uhmm_mm_free(mm);
	return 0;
}
