/* SPDX-License-Identifier: MIT */
/*
 * lost_inject ("Nothing lost" case 12): the allocation-failure injector is
 * stepped over a whole sequence: migrate to the device, a CPU touch that
 * brings a page home, migrate back, take the pages exclusively, touch one.
 * Whatever acquisition fails, every byte is readable with its value
 * afterwards, and no access dies (in signal mode a failed fault-back is
 * retried, never a SIGBUS). Then exclusive access is revoked by kernel
 * accesses while another thread frees the memory (a use-after-free in the
 * service thread under ASan).
 */
#include <pthread.h>

#include "devtest.h"

void uhmm__inject_after(long n);

#define N 32

static void sequence(struct uhmm_refdev *dev, char *p)
{
	int r;

	r = test_dev(dev, TO_DEV, p, 0, N, NULL, NULL);
	CHECK(r == 0 || r == -ENOMEM || r == -ENOENT);
	CHECK(test_page_is(p, 5, 16, false)); /* fault-back of one page */
	r = test_dev(dev, TO_SYS, p, 0, N, NULL, NULL);
	CHECK(r == 0 || r == -ENOMEM);
	r = test_dev(dev, UHMM_REFDEV_EXCLUSIVE, p, 0, N, NULL, NULL);
	CHECK(r == 0 || r == -ENOMEM || r == -EFAULT);
	CHECK(test_page_is(p, 9, 16, false)); /* revokes one */
}

struct race {
	struct uhmm_mm *mm;
	char *p;
	int pipe[2];
};

static void *reader(void *arg)
{
	struct race *r = arg;

	/* A kernel access: the service thread revokes (thread mode). */
	(void)!write(r->pipe[1], r->p, PAGE_SIZE);
	return NULL;
}

int main(void)
{
	struct uhmm_mm *mm = test_mm_new();
	struct uhmm_refdev *dev = test_dev_new(mm, 0);
	char *p = test_anon(N * PAGE_SIZE), drain[PAGE_SIZE];
	long steps = 0;

	test_deadline(100);
	test_fill(p, 0, N, 16);
	for (long n = 1; n < 5000; n++) {
		uhmm__inject_after(n);
		sequence(dev, p);
		uhmm__inject_after(0);
		CHECK_PAGES(p, 0, N, 16);
		CHECK_EQ(test_dev(dev, TO_SYS, p, 0, N, NULL, NULL), 0);
		CHECK_PAGES(p, 0, N, 16);
		steps++;
		/* Past the last acquisition the countdown never fires: done. */
		if (n > 400)
			break;
	}
	CHECK(steps > 10);

	for (int i = 0; i < 100; i++) {
		struct race r = { .mm = mm };
		pthread_t th;

		CHECK_EQ(pipe(r.pipe), 0);
		r.p = uhmm_alloc(mm, 4 * PAGE_SIZE, 0);
		CHECK(r.p);
		test_fill(r.p, 0, 4, 17);
		CHECK_EQ(test_dev(dev, UHMM_REFDEV_EXCLUSIVE, r.p, 0, 4, NULL, NULL), 0);
		CHECK_EQ(pthread_create(&th, NULL, reader, &r), 0);
		if (i & 1)
			usleep(i % 7 * 10);
		CHECK_EQ(uhmm_free(mm, r.p, 4 * PAGE_SIZE), 0);
		pthread_join(th, NULL);
		close(r.pipe[1]);
		while (read(r.pipe[0], drain, sizeof(drain)) > 0)
			;
		close(r.pipe[0]);
	}
	uhmm_refdev_free(dev);
	uhmm_mm_free(mm);
	return 0;
}
