/* SPDX-License-Identifier: MIT */
/*
 * notifier_leaf ("Nothing lost" case 10): an invalidate callback runs inside
 * the program's own munmap/madvise/mprotect/mremap/mmap (that is how the
 * device hears before the change), and glibc declares those leaf
 * (__THROW): the compiler may keep a file-scope variable the callback
 * writes in a register across the call. uhmm's rule (docs/MIRROR.md):
 * the device reads what its callback writes under the lock the callback
 * takes (the retry protocol's lock), or atomically. This test is a device
 * written to that rule, in the same file as its callback, compiled like
 * every test (-O2): after each call it must see, every time, that it was
 * told before the change, for each of the five calls, with the value read
 * both ways.
 */
#include <pthread.h>
#include <stdatomic.h>

#include "test.h"

#define N 8

static pthread_mutex_t dev_lock = PTHREAD_MUTEX_INITIALIZER;
static unsigned long told_locked;	/* under dev_lock */
static atomic_ulong told_atomic;	/* atomically */
static uintptr_t base;
static bool mapped_when_told;		/* under dev_lock */

static bool invalidate(struct uhmm_interval_notifier *n, const struct uhmm_notifier_range *r,
		       unsigned long seq)
{
	unsigned char v;

	pthread_mutex_lock(&dev_lock);
	uhmm_interval_set_seq(n, seq);
	told_locked++;
	/* "Before": the page is still mapped while the device hears of it. */
	mapped_when_told = r->event == UHMM_NOTIFY_PROTECTION_VMA || r->event == UHMM_NOTIFY_CLEAR ||
			   mincore((void *)r->start, 4096, &v) == 0;
	pthread_mutex_unlock(&dev_lock);
	atomic_fetch_add(&told_atomic, 1);
	return true;
}

static const struct uhmm_interval_notifier_ops ops = { .invalidate = invalidate };

/* What the device knows now, read the two allowed ways. */
static void seen(unsigned long *locked, unsigned long *atom, bool *mapped)
{
	pthread_mutex_lock(&dev_lock);
	*locked = told_locked;
	*mapped = mapped_when_told;
	pthread_mutex_unlock(&dev_lock);
	*atom = atomic_load(&told_atomic);
}

static void expect_told(unsigned long before_locked, unsigned long before_atom, const char *call)
{
	unsigned long l, a;
	bool mapped;

	seen(&l, &a, &mapped);
	if (l <= before_locked || a <= before_atom || !mapped) {
		fprintf(stderr, "%s: the device was not told first (%lu/%lu, mapped %d)\n", call, l,
			a, mapped);
		exit(1);
	}
}

int main(void)
{
	struct uhmm_mm *mm = test_mm_new();
	struct uhmm_interval_notifier n;
	char *p = test_anon(4 * N * PAGE_SIZE), *away;
	unsigned long l, a;
	bool mapped;

	base = (uintptr_t)p;
	memset(p, 1, 4 * N * PAGE_SIZE);
	CHECK_EQ(uhmm_interval_notifier_insert(&n, mm, base, 4 * N * PAGE_SIZE, &ops), 0);
	for (int round = 0; round < 100; round++) {
		seen(&l, &a, &mapped);
		CHECK_EQ(madvise(p, PAGE_SIZE, MADV_DONTNEED), 0);
		expect_told(l, a, "madvise");
		seen(&l, &a, &mapped);
		CHECK_EQ(mprotect(p + PAGE_SIZE, PAGE_SIZE, round & 1 ? PROT_READ : PROT_READ | PROT_WRITE),
			 0);
		expect_told(l, a, "mprotect");
		seen(&l, &a, &mapped);
		away = mremap(p + 2 * PAGE_SIZE, PAGE_SIZE, PAGE_SIZE, MREMAP_MAYMOVE | MREMAP_FIXED,
			      p + (N + round % N) * PAGE_SIZE);
		CHECK(away != MAP_FAILED);
		expect_told(l, a, "mremap");
		CHECK(mmap(p + 2 * PAGE_SIZE, PAGE_SIZE, PROT_READ | PROT_WRITE,
			   MAP_PRIVATE | MAP_ANONYMOUS | MAP_FIXED, -1, 0) == p + 2 * PAGE_SIZE);
		seen(&l, &a, &mapped);
		CHECK(mmap(p + 3 * PAGE_SIZE, PAGE_SIZE, PROT_READ | PROT_WRITE,
			   MAP_PRIVATE | MAP_ANONYMOUS | MAP_FIXED, -1, 0) == p + 3 * PAGE_SIZE);
		expect_told(l, a, "mmap(MAP_FIXED)");
		seen(&l, &a, &mapped);
		CHECK_EQ(munmap(p + (N + round % N) * PAGE_SIZE, PAGE_SIZE), 0);
		expect_told(l, a, "munmap");
	}
	uhmm_interval_notifier_remove(&n);
	uhmm_mm_free(mm);
	return 0;
}
