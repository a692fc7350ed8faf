/* SPDX-License-Identifier: MIT */
/*
 * lost_wakeup ("Nothing lost" case 9): two threads touch a page at the same
 * time while the device holds it exclusively; the first revokes the access,
 * the second waits for that. No wait may end by its timeout (a lost
 * wake-up: the second thread slept the full bound).
 */
#include <pthread.h>

#include "devtest.h"

#define N 64

uint64_t uhmm__wait_timeouts(struct uhmm_mm *mm);

static char *p;
static pthread_barrier_t go;
static size_t cur;

static void *toucher(void *arg)
{
	(void)arg;
	for (size_t i = 0; i < N; i++) {
		pthread_barrier_wait(&go);
		CHECK(test_page_is(p, cur, 14, false));
		pthread_barrier_wait(&go);
	}
	return NULL;
}

int main(void)
{
	struct uhmm_mm *mm = test_mm_new();
	struct uhmm_refdev *dev = test_dev_new(mm, 0);
	pthread_t th[2];

	test_deadline(60);
	p = test_anon(N * PAGE_SIZE);
	test_fill(p, 0, N, 14);
	CHECK_EQ(test_dev(dev, UHMM_REFDEV_EXCLUSIVE, p, 0, N, NULL, NULL), 0);
	pthread_barrier_init(&go, NULL, 3);
	for (int t = 0; t < 2; t++)
		CHECK_EQ(pthread_create(&th[t], NULL, toucher, NULL), 0);
	for (cur = 0; cur < N; cur++) {
		pthread_barrier_wait(&go); /* both touch page cur now */
		pthread_barrier_wait(&go);
	}
	for (int t = 0; t < 2; t++)
		pthread_join(th[t], NULL);
	CHECK_EQ(uhmm__wait_timeouts(mm), 0);
	CHECK_PAGES(p, 0, N, 14);
	uhmm_refdev_free(dev);
	uhmm_mm_free(mm);
	return 0;
}
