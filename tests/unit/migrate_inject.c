/* SPDX-License-Identifier: MIT */
/*
 * migrate_inject: every resource a migration takes is made to fail in turn
 * (n = 1, 2, ... until the migration goes through), both ways; a device whose
 * copy fails; a munmap racing a migration. After each, every byte is where
 * the program can read it, with its value.
 */
#include "test.h"
#include "uhmm/device.h"
#include "uhmm/refdev.h"

void uhmm__inject_after(long n);

#define N 32

static void fill(char *p)
{
	for (size_t i = 0; i < N * PAGE_SIZE; i++)
		p[i] = (char)(i % 251);
}

static void verify(const char *p)
{
	for (size_t i = 0; i < N * PAGE_SIZE; i++)
		if (p[i] != (char)(i % 251)) {
			fprintf(stderr, "byte %zu lost\n", i);
			exit(1);
		}
}

/* A device with its own memory (no host storage) whose copy can fail. */
static char devmem[64][PAGE_SIZE];
static int fail_copy;

static int to_dev(struct uhmm_pagemap *pg, const uint64_t *dst, const void *const *src, size_t n)
{
	(void)pg;
	/* Fail migration batches only (n > 1), not the one-page scrubs of allocation. */
	if (n > 1 && fail_copy && !--fail_copy)
		return -EIO;
	for (size_t i = 0; i < n; i++)
		memcpy(devmem[uhmm_device_pfn_index(dst[i])], src[i], PAGE_SIZE);
	return 0;
}

static int from_dev(struct uhmm_pagemap *pg, void *const *dst, const uint64_t *src, size_t n)
{
	(void)pg;
	for (size_t i = 0; i < n; i++)
		memcpy(dst[i], devmem[uhmm_device_pfn_index(src[i])], PAGE_SIZE);
	return 0;
}

static const struct uhmm_pagemap_ops devops = { .copy_to_device = to_dev,
						 .copy_from_device = from_dev };

int main(void)
{
	struct uhmm_mm *mm = test_mm_new();
	struct uhmm_refdev *dev;
	char *p = test_anon(N * PAGE_SIZE), *mirror = malloc(N * PAGE_SIZE);
	struct uhmm_refdev_cmd c = { .addr = (uintptr_t)p, .ptr = (uintptr_t)mirror, .npages = N };
	int r, steps = 0;
	bool done;

	CHECK_EQ(uhmm_refdev_new(&dev, mm, NULL), 0);
	fill(p);
	for (long n = 1;; n++) {
		uhmm__inject_after(n);
		r = uhmm_refdev_cmd(dev, UHMM_REFDEV_MIGRATE_TO_DEV, &c);
		uhmm__inject_after(0);
		done = r == 0 && c.cpages == N &&
		       uhmm_mm_resident(mm, c.addr, c.addr + N * PAGE_SIZE, NULL) == N;
		if (done)
			break;
		verify(p); /* whatever happened, the CPU reads every byte */
		steps++;
		CHECK(n < 10000);
	}
	CHECK(steps > 3);
	/* Now all on the device: fail the way home. */
	for (long n = 1; n < 200; n++) {
		uhmm__inject_after(n);
		r = uhmm_refdev_cmd(dev, UHMM_REFDEV_MIGRATE_TO_SYS, &c);
		uhmm__inject_after(0);
		if (r == 0 && uhmm_mm_resident(mm, c.addr, c.addr + N * PAGE_SIZE, NULL) == 0)
			break;
		/* Pages not yet home are still readable: on touch they come home. */
		CHECK_EQ(uhmm_refdev_cmd(dev, UHMM_REFDEV_MIGRATE_TO_DEV, &c), 0);
	}
	verify(p);

	/* A device that holds its own memory, whose copy fails mid-batch. */
	{
		char owner;
		struct uhmm_pagemap_config cfg = { .type = UHMM_PAGEMAP_PRIVATE, .owner = &owner,
						   .ops = &devops };
		struct uhmm_pagemap *pg;
		unsigned long src[N], dst[N];
		struct uhmm_migrate m = { .mm = mm, .start = (uintptr_t)p,
					  .end = (uintptr_t)p + N * PAGE_SIZE, .src = src, .dst = dst,
					  .pgmap_owner = &owner, .flags = UHMM_MIGRATE_SELECT_SYSTEM };

		struct uhmm_pagemap_stats st;

		CHECK_EQ(uhmm_pagemap_new(&pg, mm, &cfg), 0);
		CHECK_EQ(uhmm_pagemap_add_memory(pg, 2u << 20), 0);
		CHECK_EQ(uhmm_migrate_setup(&m), 0);
		CHECK_EQ(m.cpages, N);
		fail_copy = 1; /* the batch copy (all N pages contiguous) fails */
		CHECK_EQ(uhmm_migrate_alloc_and_copy(&m, pg), 0); /* no entry kept a destination */
		CHECK_EQ(fail_copy, 0);			     /* the batch path really ran */
		uhmm_migrate_pages(&m);
		uhmm_migrate_finalize(&m);
		CHECK_EQ(uhmm_mm_resident(mm, m.start, m.end, NULL), 0); /* nothing migrated */
		uhmm_pagemap_stats(pg, &st);
		CHECK_EQ(st.pages_free, st.pages_total); /* the device pages went back */
		verify(p);
		/* And a clean one, then home through the device's copy. */
		fail_copy = 0;
		CHECK_EQ(uhmm_migrate_setup(&m), 0);
		CHECK(uhmm_migrate_alloc_and_copy(&m, pg) > 0);
		uhmm_migrate_pages(&m);
		uhmm_migrate_finalize(&m);
		CHECK(uhmm_mm_resident(mm, m.start, m.end, &owner) > 0);
		verify(p); /* every page comes home through copy_from_device */
		uhmm_pagemap_free(pg);
	}

	/* munmap of half the range while it is isolated: the rest is intact. */
	{
		unsigned long src[N], dst[N];
		struct uhmm_migrate m = { .mm = mm, .start = (uintptr_t)p,
					  .end = (uintptr_t)p + N * PAGE_SIZE, .src = src, .dst = dst,
					  .pgmap_owner = uhmm_refdev_owner(dev),
					  .flags = UHMM_MIGRATE_SELECT_SYSTEM };

		CHECK_EQ(uhmm_migrate_setup(&m), 0);
		CHECK_EQ(munmap(p + N / 2 * PAGE_SIZE, N / 2 * PAGE_SIZE), 0);
		uhmm_migrate_pages(&m); /* no destinations: nothing migrates */
		uhmm_migrate_finalize(&m);
		for (size_t i = 0; i < N / 2 * PAGE_SIZE; i++)
			CHECK_EQ(p[i], (char)(i % 251));
	}
	free(mirror);
	uhmm_refdev_free(dev);
	uhmm_mm_free(mm);
	return 0;
}
