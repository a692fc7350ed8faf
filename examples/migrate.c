/* SPDX-License-Identifier: MIT */
/*
 * migrate.c - hand a plain buffer to a device, get it back by touching it.
 * Uses the reference device; a real device replaces it with its own
 * uhmm_pagemap and copy callbacks (see include/uhmm/device.h).
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <sys/mman.h>
#include <uhmm.h>
#include <uhmm/device.h>
#include <uhmm/refdev.h>

#define NPAGES 256

int main(void)
{
	struct uhmm_mm *mm;
	struct uhmm_refdev *dev;
	size_t len = NPAGES * 4096;
	int *buf, r = uhmm_mm_new(&mm, NULL);

	if (r) {
		fprintf(stderr, "uhmm_mm_new: %s\n", uhmm_strerror(r));
		return r == -EPERM ? 77 : 1;
	}
	if ((r = uhmm_refdev_new(&dev, mm, NULL))) {
		fprintf(stderr, "uhmm_refdev_new: %s\n", uhmm_strerror(r));
		return 1;
	}
	buf = mmap(NULL, len, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
	for (size_t i = 0; i < len / sizeof(int); i++)
		buf[i] = (int)i;

	struct uhmm_refdev_cmd c = { .addr = (uintptr_t)buf, .ptr = (uintptr_t)malloc(len),
				     .npages = NPAGES };
	r = uhmm_refdev_cmd(dev, UHMM_REFDEV_MIGRATE_TO_DEV, &c);
	printf("migrated: %d, %lu pages on the device\n", r,
	       uhmm_mm_resident(mm, (uintptr_t)buf, (uintptr_t)buf + len, NULL));

	long bad = 0;
	for (size_t i = 0; i < len / sizeof(int); i++) /* each page comes home on touch */
		bad += buf[i] != (int)i;
	printf("CPU read it back: %ld wrong words, %lu pages left on the device\n", bad,
	       uhmm_mm_resident(mm, (uintptr_t)buf, (uintptr_t)buf + len, NULL));

	free((void *)(uintptr_t)c.ptr);
	munmap(buf, len);
	uhmm_refdev_free(dev);
	uhmm_mm_free(mm);
	return r || bad ? 1 : 0;
}
