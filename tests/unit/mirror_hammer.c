/* SPDX-License-Identifier: MIT */
/*
 * mirror_hammer: a device keeps its table with the retry protocol (begin ->
 * range_fault -> lock -> read_retry -> commit) in one thread while another
 * munmaps, mprotects, madvises and mremaps underneath it. After every
 * operation returns, the device's table must hold no VALID entry for a page
 * whose change is visible (no WRITE entry for a page made read-only).
 * The device only snapshots, so nothing it does can legitimately bring a
 * dropped page back.
 */
#include <pthread.h>
#include <stdatomic.h>

#include "mirror_dev.h"
#include "test.h"

#define NPAGES 64
#define OPS 1500

static struct mdev dev;
static char *buf;
static atomic_int stop;
static atomic_long commits_valid;

static void *mirror_main(void *arg)
{
	uint64_t seed = 42;

	(void)arg;
	while (!atomic_load(&stop)) {
		size_t a = test_rand(&seed) % NPAGES, b = a + 1 + test_rand(&seed) % (NPAGES - a);
		int r = mdev_mirror(&dev, dev.start + a * PAGE_SIZE, dev.start + b * PAGE_SIZE, 0);

		CHECK_EQ(r, 0); /* a snapshot never fails: holes are ERROR entries */
		pthread_mutex_lock(&dev.lock);
		for (size_t i = a; i < b; i++)
			if (dev.table[i] & UHMM_PFN_VALID) {
				atomic_fetch_add(&commits_valid, 1);
				break;
			}
		pthread_mutex_unlock(&dev.lock);
	}
	return NULL;
}

static void expect_invalid(size_t a, size_t b, unsigned long bad, const char *op)
{
	pthread_mutex_lock(&dev.lock);
	for (size_t i = a; i < b; i++)
		if (dev.table[i] & bad) {
			fprintf(stderr, "after %s [%zu, %zu): page %zu entry %#lx\n", op, a, b, i,
				dev.table[i]);
			exit(1);
		}
	pthread_mutex_unlock(&dev.lock);
}

int main(void)
{
	struct uhmm_mm *mm = test_mm_new();
	uint64_t seed = 7;
	pthread_t th;
	char *away = mmap(NULL, NPAGES * PAGE_SIZE, PROT_NONE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);

	CHECK(away != MAP_FAILED);
	buf = test_anon(NPAGES * PAGE_SIZE);
	memset(buf, 1, NPAGES * PAGE_SIZE);
	CHECK_EQ(uhmm_manage(mm, buf, NPAGES * PAGE_SIZE, 0), 0);
	CHECK_EQ(mdev_init(&dev, mm, buf, NPAGES * PAGE_SIZE), 0);
	CHECK_EQ(pthread_create(&th, NULL, mirror_main, NULL), 0);

	for (int op = 0; op < OPS; op++) {
		size_t a = test_rand(&seed) % NPAGES, b = a + 1 + test_rand(&seed) % 8;
		char *s = buf + a * PAGE_SIZE;
		size_t len;

		b = b > NPAGES ? NPAGES : b;
		len = (b - a) * PAGE_SIZE;
		memset(s, 2, len); /* present, so the device can mirror it */
		switch (test_rand(&seed) % 5) {
		case 0:
			CHECK_EQ(munmap(s, len), 0);
			expect_invalid(a, b, UHMM_PFN_VALID, "munmap");
			CHECK(mmap(s, len, PROT_READ | PROT_WRITE,
				   MAP_PRIVATE | MAP_ANONYMOUS | MAP_FIXED, -1, 0) == s);
			CHECK_EQ(uhmm_manage(mm, s, len, 0), 0);
			break;
		case 1:
			CHECK_EQ(mprotect(s, len, PROT_NONE), 0);
			expect_invalid(a, b, UHMM_PFN_VALID, "mprotect(NONE)");
			CHECK_EQ(mprotect(s, len, PROT_READ | PROT_WRITE), 0);
			break;
		case 2:
			CHECK_EQ(mprotect(s, len, PROT_READ), 0);
			expect_invalid(a, b, UHMM_PFN_WRITE, "mprotect(READ)");
			CHECK_EQ(mprotect(s, len, PROT_READ | PROT_WRITE), 0);
			break;
		case 3:
			CHECK_EQ(madvise(s, len, MADV_DONTNEED), 0);
			expect_invalid(a, b, UHMM_PFN_VALID, "MADV_DONTNEED");
			break;
		case 4:
			/* mremap needs one VMA; earlier ops may have split this range. */
			if (mremap(s, len, len, MREMAP_MAYMOVE | MREMAP_FIXED, away) != away) {
				CHECK(errno == EFAULT);
				break;
			}
			expect_invalid(a, b, UHMM_PFN_VALID, "mremap");
			CHECK(mremap(away, len, len, MREMAP_MAYMOVE | MREMAP_FIXED, s) == s);
			/* the range left at `away` is unmapped by the move back */
			away = mmap(away, len, PROT_NONE, MAP_PRIVATE | MAP_ANONYMOUS | MAP_FIXED, -1, 0);
			CHECK(away != MAP_FAILED);
			break;
		}
	}
	atomic_store(&stop, 1);
	CHECK_EQ(pthread_join(th, NULL), 0);
	fprintf(stderr, "commits with valid entries: %ld, invalidations: %lu\n",
		atomic_load(&commits_valid), dev.invalidations);
	CHECK(atomic_load(&commits_valid) > 0); /* the device really mirrored */
	mdev_fini(&dev);
	uhmm_mm_free(mm);
	return 0;
}
