/* SPDX-License-Identifier: MIT */
/*
 * faultback_events: CPU fault-backs of device pages while another thread
 * munmaps managed memory. Each munmap makes the kernel report "mm changing"
 * (-EAGAIN from UFFDIO_MOVE/COPY) until its event is read; in thread mode
 * the reader is the very service thread doing the fault-back, so it must
 * read events itself rather than wait for them. Nothing may hang, and every
 * byte must come home.
 */
#include <pthread.h>
#include <stdatomic.h>

#include "test.h"
#include "uhmm/device.h"
#include "uhmm/refdev.h"

#define NPAGES 512

static struct uhmm_mm *mm;
static atomic_int stop;

static void *churn(void *arg)
{
	long n = 0;

	(void)arg;
	while (!atomic_load(&stop)) {
		char *q = test_anon(4 * PAGE_SIZE);

		CHECK_EQ(uhmm_manage(mm, q, 4 * PAGE_SIZE, 0), 0);
		CHECK_EQ(munmap(q, 4 * PAGE_SIZE), 0); /* an UNMAP event each time */
		n++;
	}
	return (void *)n;
}

int main(void)
{
	struct uhmm_refdev *dev;
	uint32_t *buf;
	char *mirror = malloc(NPAGES * PAGE_SIZE);
	pthread_t th;
	void *churned;
	unsigned long moved = 0;

	mm = test_mm_new();
	CHECK_EQ(uhmm_refdev_new(&dev, mm, NULL), 0);
	buf = test_anon(NPAGES * PAGE_SIZE);
	CHECK_EQ(pthread_create(&th, NULL, churn, NULL), 0);
	for (int round = 0; round < 20; round++) {
		struct uhmm_refdev_cmd c = { .addr = (uintptr_t)buf, .ptr = (uintptr_t)mirror,
					     .npages = NPAGES };

		for (size_t i = 0; i < NPAGES * PAGE_SIZE / 4; i++)
			buf[i] = (uint32_t)(i + round);
		int r = uhmm_refdev_cmd(dev, UHMM_REFDEV_MIGRATE_TO_DEV, &c);

		/* A page that could not be isolated under the churn stays home
		 * (-ENOENT, as dmirror says). */
		CHECK(r == 0 || r == -ENOENT);
		moved += uhmm_mm_resident(mm, c.addr, c.addr + NPAGES * PAGE_SIZE, NULL);
		for (size_t i = 0; i < NPAGES * PAGE_SIZE / 4; i++) /* fault-backs */
			CHECK_EQ(buf[i], (uint32_t)(i + round));
	}
	atomic_store(&stop, 1);
	CHECK_EQ(pthread_join(th, &churned), 0);
	fprintf(stderr, "%ld munmaps during %lu fault-backs\n", (long)churned, moved);
	CHECK((long)churned > 0 && moved > 0); /* both really happened */
	uhmm_refdev_free(dev);
	uhmm_mm_free(mm);
	free(mirror);
	return 0;
}
