/* SPDX-License-Identifier: MIT */
/*
 * devtest.h - helpers for tests that drive the reference device: one call
 * per command, the mirror buffer sized for the range.
 */
#ifndef UHMM_TEST_DEVTEST_H
#define UHMM_TEST_DEVTEST_H

#include "test.h"
#include "uhmm/device.h"
#include "uhmm/refdev.h"

/* A reference device of @mib MiB on @mm (0: the default 256 MiB). */
static inline struct uhmm_refdev *test_dev_new(struct uhmm_mm *mm, size_t mib)
{
	struct uhmm_refdev_config cfg = { .type = UHMM_REFDEV_PRIVATE, .memory_bytes = mib << 20 };
	struct uhmm_refdev *dev;

	CHECK_EQ(uhmm_refdev_new(&dev, mm, &cfg), 0);
	return dev;
}

/*
 * Run @op on [p + first pages, + n pages); @buf receives or supplies the
 * device's view (NULL: a scratch buffer). Return the command's result;
 * *@cpages (when not NULL) its page count.
 */
static inline int test_dev(struct uhmm_refdev *dev, enum uhmm_refdev_op op, void *p, size_t first,
			   size_t n, void *buf, uint64_t *cpages)
{
	void *scratch = buf ? NULL : malloc(n * PAGE_SIZE);
	struct uhmm_refdev_cmd c = {
		.addr = (uintptr_t)p + first * PAGE_SIZE,
		.ptr = (uintptr_t)(buf ? buf : scratch),
		.npages = n,
	};
	int r;

	CHECK(buf || scratch);
	r = uhmm_refdev_cmd(dev, op, &c);
	if (cpages)
		*cpages = c.cpages;
	free(scratch);
	return r;
}

#define TO_DEV UHMM_REFDEV_MIGRATE_TO_DEV
#define TO_SYS UHMM_REFDEV_MIGRATE_TO_SYS

#endif
