/* SPDX-License-Identifier: MIT */
/*
 * lost_teardown ("Nothing lost" case 14): teardown and misuse report, never
 * hang and never use freed memory:
 *  - uhmm_pagemap_free() with a page reference still taken (uhmm_page_get)
 *    or with pages the device cannot give back returns -EBUSY, leaving the
 *    pagemap working, and succeeds once that is resolved;
 *  - inserting a notifier twice is refused (-EEXIST) and uhmm_mm_free()
 *    then returns;
 *  - uhmm_mm_free() with a pagemap still attached, and a notifier removed
 *    from its own callback, end the process with a message (SIGABRT).
 */
#include <sys/wait.h>

#include "test.h"
#include "mirror_dev.h"
#include "uhmm/device.h"

#define N 8

static char owner;
static char devmem[512][PAGE_SIZE];
static int refuse_home;

static int to_dev(struct uhmm_pagemap *pg, const uint64_t *dst, const void *const *src, size_t n)
{
	(void)pg;
	for (size_t i = 0; i < n; i++)
		memcpy(devmem[dst[i] % 512], src[i], PAGE_SIZE);
	return 0;
}

static int from_dev(struct uhmm_pagemap *pg, void *const *dst, const uint64_t *src, size_t n)
{
	(void)pg;
	if (refuse_home)
		return -EIO;
	for (size_t i = 0; i < n; i++)
		memcpy(dst[i], devmem[src[i] % 512], PAGE_SIZE);
	return 0;
}

static const struct uhmm_pagemap_ops ops = { .copy_to_device = to_dev,
					     .copy_from_device = from_dev };

static struct uhmm_pagemap *pagemap(struct uhmm_mm *mm, bool host)
{
	struct uhmm_pagemap_config cfg = { .type = UHMM_PAGEMAP_PRIVATE, .owner = &owner,
					   .ops = host ? NULL : &ops, .host_storage = host };
	struct uhmm_pagemap *pg;

	CHECK_EQ(uhmm_pagemap_new(&pg, mm, &cfg), 0);
	CHECK_EQ(uhmm_pagemap_add_memory(pg, 2u << 20), 0);
	return pg;
}

static void to_device(struct uhmm_mm *mm, struct uhmm_pagemap *pg, char *p)
{
	unsigned long src[N], dst[N];
	struct uhmm_migrate m = { .mm = mm, .start = (uintptr_t)p, .end = (uintptr_t)p + N * PAGE_SIZE,
				  .src = src, .dst = dst, .pgmap_owner = &owner,
				  .flags = UHMM_MIGRATE_SELECT_SYSTEM };

	CHECK_EQ(uhmm_migrate_setup(&m), 0);
	CHECK_EQ(uhmm_migrate_alloc_and_copy(&m, pg), N);
	CHECK_EQ(uhmm_migrate_pages(&m), 0);
	uhmm_migrate_finalize(&m);
}

/* Run @fn in a child; it must die of SIGABRT, having said something. */
static void expect_abort(void (*fn)(void))
{
	int status;
	pid_t c = fork();

	CHECK(c >= 0);
	if (c == 0) {
		fn();
		_exit(0);
	}
	CHECK_EQ(waitpid(c, &status, 0), c);
	CHECK(WIFSIGNALED(status) && WTERMSIG(status) == SIGABRT);
}

static void mm_free_first(void)
{
	struct uhmm_mm *mm = test_mm_new();

	(void)pagemap(mm, true);
	uhmm_mm_free(mm); /* the pagemap is still attached */
}

static struct uhmm_interval_notifier self_n;

static bool remove_self(struct uhmm_interval_notifier *n, const struct uhmm_notifier_range *r,
			unsigned long seq)
{
	(void)r;
	uhmm_interval_set_seq(n, seq);
	uhmm_interval_notifier_remove(n); /* not allowed from its own callback */
	return true;
}

static const struct uhmm_interval_notifier_ops self_ops = { .invalidate = remove_self };

static void notifier_removes_itself(void)
{
	struct uhmm_mm *mm = test_mm_new();
	char *p = test_anon(N * PAGE_SIZE);

	CHECK_EQ(uhmm_interval_notifier_insert(&self_n, mm, (uintptr_t)p, N * PAGE_SIZE, &self_ops), 0);
	munmap(p, N * PAGE_SIZE);
}

int main(void)
{
	struct uhmm_mm *mm = test_mm_new();
	struct uhmm_pagemap *pg = pagemap(mm, true);
	char *p = test_anon(N * PAGE_SIZE);
	uint64_t page;
	struct mdev d;

	test_deadline(60);
	test_fill(p, 0, N, 20);

	/* An outside reference: -EBUSY, then fine once put. */
	CHECK_EQ(uhmm_pagemap_alloc_page(pg, &page), 0);
	to_device(mm, pg, p);
	CHECK_EQ(uhmm_pagemap_free(pg), -EBUSY);
	CHECK_PAGES(p, 0, N, 20); /* everything came home meanwhile */
	to_device(mm, pg, p);	  /* and the pagemap still works */
	CHECK_EQ(uhmm_page_put(pg, page), 0);
	CHECK_EQ(uhmm_pagemap_free(pg), 0);
	CHECK_PAGES(p, 0, N, 20);

	/* A device that cannot give its pages back: -EBUSY, nothing lost. */
	pg = pagemap(mm, false);
	to_device(mm, pg, p);
	refuse_home = 1;
	CHECK_EQ(uhmm_pagemap_free(pg), -EBUSY);
	CHECK_EQ(uhmm_mm_resident(mm, (uintptr_t)p, (uintptr_t)p + N * PAGE_SIZE, &owner), N);
	refuse_home = 0;
	CHECK_EQ(uhmm_pagemap_free(pg), 0);
	CHECK_PAGES(p, 0, N, 20);

	/* The same notifier twice. */
	CHECK_EQ(mdev_init(&d, mm, p, N * PAGE_SIZE), 0);
	CHECK_EQ(uhmm_interval_notifier_insert(&d.notifier, mm, (uintptr_t)p, N * PAGE_SIZE,
					       &mdev_ops),
		 -EEXIST);
	mdev_fini(&d);
	uhmm_mm_free(mm);

	expect_abort(mm_free_first);
	expect_abort(notifier_removes_itself);
	return 0;
}
