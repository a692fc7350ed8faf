/* SPDX-License-Identifier: MIT */
/*
 * demo.c - `uhmm demo [--mib N]`: the whole story in a minute.
 *
 * A buffer from plain mmap, filled by the CPU; the reference device takes
 * it (pages migrate into device memory), computes on it in its own memory
 * (x -> 3x + 1 on every 32-bit word), and the CPU reads the results: each
 * page comes home on first touch. Every word is checked; the counters say
 * what moved and when.
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <time.h>
#include <unistd.h>

#include "cli.h"
#include "uhmm.h"
#include "uhmm/device.h"
#include "uhmm/refdev.h"

#define PAGE 4096ul
#define CHUNK (4ul << 20)

static double now_s(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

static void progress(const char *what, size_t done, size_t total)
{
	int width = 40, fill = (int)(width * done / total);

	if (!isatty(STDERR_FILENO)) {
		if (done == total)
			fprintf(stderr, "  %s: done\n", what);
		return;
	}
	fprintf(stderr, "\r  %-28s [%.*s%*s] %3zu%%", what, fill,
		"########################################", width - fill, "", 100 * done / total);
	if (done == total)
		fputc('\n', stderr);
}

static void step(const char *title, double seconds, size_t bytes)
{
	printf("  %-44s %8.1f ms  %7.2f GB/s\n", title, seconds * 1e3,
	       seconds > 0 ? (double)bytes / seconds / 1e9 : 0.0);
}

int uhmm_cli_demo(int argc, char **argv)
{
	size_t mib = 64, bytes, words;
	struct uhmm_refdev_config cfg = { .type = UHMM_REFDEV_PRIVATE };
	struct uhmm_refdev *dev;
	struct uhmm_mm_stats st0, st1;
	struct uhmm_mm *mm;
	uint32_t *buf, *bounce;
	double t;
	size_t bad = 0;
	int r;

	for (int i = 1; i < argc; i++) {
		if (!strcmp(argv[i], "--mib") && i + 1 < argc) {
			mib = strtoul(argv[++i], NULL, 10);
		} else {
			fprintf(stderr, "usage: uhmm demo [--mib N]   (N >= 4, multiple of 4)\n");
			return 2;
		}
	}
	if (mib < 4 || mib % 4) {
		fprintf(stderr, "uhmm demo: --mib must be a multiple of 4, at least 4\n");
		return 2;
	}
	bytes = mib << 20;
	words = bytes / sizeof(uint32_t);
	cfg.memory_bytes = bytes;

	r = uhmm_mm_new(&mm, NULL);
	if (r) {
		fprintf(stderr, "uhmm demo: uhmm_mm_new: %s (see `uhmm info`)\n", uhmm_strerror(r));
		return 1;
	}
	r = uhmm_refdev_new(&dev, mm, &cfg);
	if (r) {
		fprintf(stderr, "uhmm demo: uhmm_refdev_new: %s\n", uhmm_strerror(r));
		uhmm_mm_free(mm);
		return 1;
	}
	printf("uhmm %s demo: a %zu MiB buffer, the reference device, %s fault mode\n\n",
	       uhmm_version(), mib, uhmm_mm_fault_mode(mm) == UHMM_FAULT_SIGNAL ? "signal" : "thread");

	/* 1. Plain memory, filled by the CPU. */
	buf = mmap(NULL, bytes, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
	bounce = malloc(CHUNK);
	if (buf == MAP_FAILED || !bounce) {
		fprintf(stderr, "uhmm demo: out of memory\n");
		return 1;
	}
	t = now_s();
	for (size_t i = 0; i < words; i++)
		buf[i] = (uint32_t)i;
	step("1. CPU fills the buffer (plain mmap)", now_s() - t, bytes);

	/* 2. The device takes it: migration into device memory. */
	t = now_s();
	for (size_t off = 0; off < bytes; off += CHUNK) {
		struct uhmm_refdev_cmd c = { .addr = (uintptr_t)buf + off, .ptr = (uintptr_t)bounce,
					     .npages = CHUNK / PAGE };

		r = uhmm_refdev_cmd(dev, UHMM_REFDEV_MIGRATE_TO_DEV, &c);
		if (r) {
			fprintf(stderr, "\nuhmm demo: migrate: %s\n", uhmm_strerror(r));
			return 1;
		}
		progress("migrating to the device", off + CHUNK, bytes);
	}
	step("2. device migrates it into its memory", now_s() - t, bytes);
	printf("     pages on the device: %lu of %zu\n",
	       uhmm_mm_resident(mm, (uintptr_t)buf, (uintptr_t)buf + bytes, NULL), bytes / PAGE);

	/* 3. The device computes in its own memory: x -> 3x + 1. */
	t = now_s();
	for (size_t off = 0; off < bytes; off += CHUNK) {
		struct uhmm_refdev_cmd c = { .addr = (uintptr_t)buf + off, .ptr = (uintptr_t)bounce,
					     .npages = CHUNK / PAGE };

		r = uhmm_refdev_cmd(dev, UHMM_REFDEV_READ, &c);
		for (size_t k = 0; !r && k < CHUNK / sizeof(uint32_t); k++)
			bounce[k] = 3 * bounce[k] + 1;
		if (!r)
			r = uhmm_refdev_cmd(dev, UHMM_REFDEV_WRITE, &c);
		if (r) {
			fprintf(stderr, "\nuhmm demo: device access: %s\n", uhmm_strerror(r));
			return 1;
		}
		progress("device computing 3x+1", off + CHUNK, bytes);
	}
	step("3. device computes x -> 3x+1 in device memory", now_s() - t, bytes);

	/* 4. The CPU reads the results: every page comes home on first touch. */
	uhmm_mm_stats(mm, &st0);
	t = now_s();
	for (size_t i = 0; i < words; i++) {
		if (buf[i] != 3 * (uint32_t)i + 1)
			bad++;
		if ((i & ((CHUNK / sizeof(uint32_t)) - 1)) == 0 || i + 1 == words)
			progress("CPU reading (pages come home)", (i + 1) * sizeof(uint32_t), bytes);
	}
	step("4. CPU reads the results back", now_s() - t, bytes);
	uhmm_mm_stats(mm, &st1);
	printf("     CPU faults that brought pages home: %llu; pages still on the device: %lu\n",
	       (unsigned long long)(st1.faults - st0.faults),
	       uhmm_mm_resident(mm, (uintptr_t)buf, (uintptr_t)buf + bytes, NULL));
	printf("\n%s: %zu of %zu words verified (x -> 3x+1)\n", bad ? "FAILED" : "OK", words - bad,
	       words);

	munmap(buf, bytes);
	free(bounce);
	uhmm_refdev_free(dev);
	uhmm_mm_free(mm);
	return bad ? 1 : 0;
}
