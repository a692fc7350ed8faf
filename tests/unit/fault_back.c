/* SPDX-License-Identifier: MIT */
/*
 * fault_back: pages on a device come home when the CPU touches them.
 *  - four threads read the same device-resident pages at once: each page
 *    migrates home exactly once (the pagemap counts migrations);
 *  - write(2) from a migrated buffer: the kernel's own access is served in
 *    thread mode with a full userfaultfd; in signal mode or with a
 *    user-mode-only userfaultfd it fails with EFAULT, as documented.
 */
#include <pthread.h>

#include "test.h"
#include "uhmm/device.h"

#define N 64

static char owner;
static char *buf;
static pthread_barrier_t go;

static void to_device(struct uhmm_mm *mm, struct uhmm_pagemap *pg)
{
	unsigned long src[N], dst[N];
	struct uhmm_migrate m = { .mm = mm, .start = (uintptr_t)buf,
				  .end = (uintptr_t)buf + N * PAGE_SIZE, .src = src, .dst = dst,
				  .pgmap_owner = &owner, .flags = UHMM_MIGRATE_SELECT_SYSTEM };

	CHECK_EQ(uhmm_migrate_setup(&m), 0);
	CHECK_EQ(m.cpages, N);
	CHECK_EQ(uhmm_migrate_alloc_and_copy(&m, pg), N);
	uhmm_migrate_pages(&m);
	uhmm_migrate_finalize(&m);
	CHECK_EQ(uhmm_mm_resident(mm, m.start, m.end, &owner), N);
}

static void *reader(void *arg)
{
	unsigned long sum = 0;

	(void)arg;
	pthread_barrier_wait(&go);
	for (size_t i = 0; i < N; i++)
		sum += (unsigned char)buf[i * PAGE_SIZE + 1];
	return (void *)sum;
}

int main(void)
{
	struct uhmm_mm *mm = test_mm_new();
	struct uhmm_pagemap_config cfg = { .type = UHMM_PAGEMAP_PRIVATE, .owner = &owner,
					   .host_storage = true };
	struct uhmm_pagemap_stats st;
	struct uhmm_pagemap *pg;
	struct uhmm_caps caps;
	pthread_t th[4];
	int fds[2];

	CHECK_EQ(uhmm_pagemap_new(&pg, mm, &cfg), 0);
	CHECK_EQ(uhmm_pagemap_add_memory(pg, 2u << 20), 0);
	buf = test_anon(N * PAGE_SIZE);
	for (size_t i = 0; i < N * PAGE_SIZE; i++)
		buf[i] = (char)(i % 13 + 1);

	/* Many threads, one migration per page. */
	to_device(mm, pg);
	pthread_barrier_init(&go, NULL, 4);
	for (int t = 0; t < 4; t++)
		CHECK_EQ(pthread_create(&th[t], NULL, reader, NULL), 0);
	for (int t = 0; t < 4; t++) {
		unsigned long want = 0;
		void *sum;

		for (size_t i = 0; i < N; i++)
			want += (unsigned char)((i * PAGE_SIZE + 1) % 13 + 1);
		CHECK_EQ(pthread_join(th[t], &sum), 0);
		CHECK_EQ((unsigned long)sum, want);
	}
	uhmm_pagemap_stats(pg, &st);
	CHECK_EQ(st.migrated_from, N); /* exactly once each */
	CHECK_EQ(st.faults, N);
	for (size_t i = 0; i < N * PAGE_SIZE; i++)
		CHECK_EQ(buf[i], (char)(i % 13 + 1));

	/* The kernel reads a migrated buffer on the program's behalf. */
	to_device(mm, pg);
	uhmm_mm_caps(mm, &caps);
	CHECK_EQ(pipe(fds), 0);
	{
		/*
		 * Served by the fault service in thread mode; in signal mode or
		 * user-mode-only, write(2) is one of the calls uhmm retries after
		 * bringing the page in (docs/FAULTS.md). Either way it works.
		 */
		ssize_t w = write(fds[1], buf, PAGE_SIZE);
		char back[PAGE_SIZE];

		CHECK_EQ(w, (ssize_t)PAGE_SIZE);
		CHECK_EQ(read(fds[0], back, PAGE_SIZE), (ssize_t)PAGE_SIZE);
		CHECK(!memcmp(back, buf, PAGE_SIZE));
	}
	for (size_t i = 0; i < N * PAGE_SIZE; i++)
		CHECK_EQ(buf[i], (char)(i % 13 + 1)); /* nothing lost either way */
	close(fds[0]);
	close(fds[1]);
	uhmm_pagemap_free(pg);
	uhmm_mm_free(mm);
	return 0;
}
