/* SPDX-License-Identifier: MIT */
/*
 * threads: several threads fault on the same pages and on different pages
 * at once. Every fault is resolved once, every thread sees zeros first and
 * its own writes after, and nothing hangs.
 */
#include <pthread.h>

#include "test.h"

#define NPAGES 512
#define NTHREADS 4

static char *buf;
static pthread_barrier_t go;

static void *same_pages(void *arg)
{
	unsigned long sum = 0;

	(void)arg;
	pthread_barrier_wait(&go);
	for (size_t i = 0; i < NPAGES; i++)
		sum += (unsigned char)buf[i * PAGE_SIZE + 8]; /* all read the same pages */
	return (void *)sum;
}

static void *own_pages(void *arg)
{
	size_t t = (size_t)arg;

	pthread_barrier_wait(&go);
	for (size_t i = t; i < NPAGES; i += NTHREADS)
		buf[i * PAGE_SIZE] = (char)(t + 1); /* disjoint pages, written */
	for (size_t i = t; i < NPAGES; i += NTHREADS)
		if (buf[i * PAGE_SIZE] != (char)(t + 1))
			return (void *)1;
	return NULL;
}

int main(void)
{
	struct uhmm_mm *mm = test_mm_new();
	pthread_t th[NTHREADS];
	void *ret;

	buf = uhmm_alloc(mm, NPAGES * PAGE_SIZE, 0);
	CHECK(buf);
	pthread_barrier_init(&go, NULL, NTHREADS);
	for (size_t t = 0; t < NTHREADS; t++)
		CHECK_EQ(pthread_create(&th[t], NULL, same_pages, NULL), 0);
	for (size_t t = 0; t < NTHREADS; t++) {
		CHECK_EQ(pthread_join(th[t], &ret), 0);
		CHECK(ret == NULL); /* zeros everywhere */
	}
	CHECK_EQ(uhmm_free(mm, buf, NPAGES * PAGE_SIZE), 0);

	buf = uhmm_alloc(mm, NPAGES * PAGE_SIZE, 0);
	CHECK(buf);
	for (size_t t = 0; t < NTHREADS; t++)
		CHECK_EQ(pthread_create(&th[t], NULL, own_pages, (void *)t), 0);
	for (size_t t = 0; t < NTHREADS; t++) {
		CHECK_EQ(pthread_join(th[t], &ret), 0);
		CHECK(ret == NULL);
	}
	for (size_t i = 0; i < NPAGES; i++)
		CHECK_EQ(buf[i * PAGE_SIZE], (char)(i % NTHREADS + 1));
	CHECK_EQ(uhmm_free(mm, buf, NPAGES * PAGE_SIZE), 0);
	pthread_barrier_destroy(&go);
	uhmm_mm_free(mm);
	return 0;
}
