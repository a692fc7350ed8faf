/* SPDX-License-Identifier: MIT */
/*
 * lost_fork ("Nothing lost" case 11): a thread migrates random runs of a
 * 64 MiB buffer to the device and back while the program forks. Every
 * child sees every byte its parent had (never zeros), and so does the
 * parent afterwards.
 */
#include <pthread.h>
#include <stdatomic.h>
#include <sys/wait.h>

#include "devtest.h"

#define NPAGES (64ul << 20 >> 12)
#define FORKS 12

static char *p;
static struct uhmm_refdev *dev;
static atomic_int stop;

static void *migrator(void *arg)
{
	uint64_t seed = 77;

	(void)arg;
	while (!atomic_load(&stop)) {
		size_t first = test_rand(&seed) % NPAGES;
		size_t n = 1 + test_rand(&seed) % (NPAGES - first < 2048 ? NPAGES - first : 2048);
		int r = test_dev(dev, test_rand(&seed) % 3 ? TO_DEV : TO_SYS, p, first, n, NULL, NULL);

		/* -ENOENT: a page shared copy-on-write with a child is not taken. */
		if (r != 0 && r != -ENOMEM && r != -ENOENT) {
			fprintf(stderr, "migration: %s\n", uhmm_strerror(r));
			exit(1);
		}
	}
	return NULL;
}

int main(void)
{
	struct uhmm_mm *mm = test_mm_new();
	pthread_t th;

	test_deadline(100);
	dev = test_dev_new(mm, 0);
	p = test_anon(NPAGES * PAGE_SIZE);
	test_fill(p, 0, NPAGES, 15);
	CHECK_EQ(pthread_create(&th, NULL, migrator, NULL), 0);
	for (int f = 0; f < FORKS; f++) {
		int status;
		pid_t c;

		usleep(20 * 1000);
		c = fork();
		CHECK(c >= 0);
		if (c == 0) {
			for (size_t pg = 0; pg < NPAGES; pg++)
				if (!test_page_is(p, pg, 15, false)) {
					fprintf(stderr, "child %d: page %zu lost\n", f, pg);
					_exit(1);
				}
			_exit(0);
		}
		CHECK_EQ(waitpid(c, &status, 0), c);
		CHECK(WIFEXITED(status) && WEXITSTATUS(status) == 0);
	}
	atomic_store(&stop, 1);
	pthread_join(th, NULL);
	CHECK_PAGES(p, 0, NPAGES, 15);
	/*
	 * The children are gone, but the kernel keeps their pages marked
	 * "maybe shared" until written: they must still migrate, every one.
	 */
	CHECK_EQ(test_dev(dev, TO_SYS, p, 0, NPAGES, NULL, NULL), 0);
	CHECK_EQ(test_dev(dev, TO_DEV, p, 0, NPAGES, NULL, NULL), 0);
	CHECK_EQ(uhmm_mm_resident(mm, (uintptr_t)p, (uintptr_t)p + NPAGES * PAGE_SIZE, NULL), NPAGES);
	CHECK_PAGES(p, 0, NPAGES, 15);
	uhmm_refdev_free(dev);
	uhmm_mm_free(mm);
	return 0;
}
