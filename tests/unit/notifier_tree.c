/* SPDX-License-Identifier: MIT */
/*
 * notifier_tree: thousands of notifiers with random intervals; random
 * invalidations (MADV_DONTNEED over a mapping) must call exactly the
 * notifiers a brute-force overlap test names, before and after removing
 * half of them. Proves the interval treap's lookup, insert and remove.
 */
#include "mirror_dev.h"
#include "test.h"

#define NN 3000
#define SPAN 4096 /* pages */

static struct uhmm_interval_notifier ns[NN];
static uintptr_t lo[NN], hi[NN]; /* [lo, hi) */
static int calls[NN];
static bool live[NN];

static bool count_call(struct uhmm_interval_notifier *n, const struct uhmm_notifier_range *r,
		       unsigned long cur_seq)
{
	(void)r;
	uhmm_interval_set_seq(n, cur_seq);
	calls[n - ns]++;
	return true;
}

static const struct uhmm_interval_notifier_ops ops = { .invalidate = count_call };

int main(void)
{
	struct uhmm_mm *mm = test_mm_new();
	char *p = test_anon(SPAN * PAGE_SIZE);
	uint64_t seed = 99;

	for (int i = 0; i < NN; i++) {
		size_t a = test_rand(&seed) % SPAN;
		size_t len = 1 + test_rand(&seed) % (test_rand(&seed) % 4 ? 8 : 512);

		lo[i] = (uintptr_t)p + a * PAGE_SIZE;
		hi[i] = lo[i] + len * PAGE_SIZE;
		CHECK_EQ(uhmm_interval_notifier_insert(&ns[i], mm, lo[i], len * PAGE_SIZE, &ops), 0);
		live[i] = true;
	}
	for (int round = 0; round < 2; round++) {
		for (int q = 0; q < 300; q++) {
			size_t a = test_rand(&seed) % SPAN, len = 1 + test_rand(&seed) % 64;
			uintptr_t s = (uintptr_t)p + a * PAGE_SIZE, e = s + len * PAGE_SIZE;

			if (e > (uintptr_t)p + SPAN * PAGE_SIZE)
				e = (uintptr_t)p + SPAN * PAGE_SIZE;
			memset(calls, 0, sizeof(calls));
			CHECK_EQ(madvise((void *)s, e - s, MADV_DONTNEED), 0);
			for (int i = 0; i < NN; i++) {
				int want = live[i] && lo[i] < e && s < hi[i];

				if (calls[i] != want) {
					fprintf(stderr, "notifier %d [%#lx,%#lx) q [%#lx,%#lx): %d calls\n",
						i, (unsigned long)lo[i], (unsigned long)hi[i],
						(unsigned long)s, (unsigned long)e, calls[i]);
					exit(1);
				}
			}
		}
		for (int i = 0; i < NN; i += 2) {
			if (live[i]) {
				uhmm_interval_notifier_remove(&ns[i]);
				live[i] = false;
			}
		}
	}
	for (int i = 0; i < NN; i++)
		if (live[i])
			uhmm_interval_notifier_remove(&ns[i]);
	uhmm_mm_free(mm);
	return 0;
}
