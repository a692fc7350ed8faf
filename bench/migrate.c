/* SPDX-License-Identifier: MIT */
/*
 * migrate.c - suites `migrate` and `stream`.
 *
 * migrate: uhmm_migrate_* throughput to and from a host-storage device
 *   (the reference device's kind of memory) in runs of 4 KiB, 64 KiB and
 *   2 MiB over 256 MiB (64 MiB with --quick), beside raw UFFDIO_MOVE of the
 *   same runs between two registered regions (the floor: what a migration
 *   is built on); raw UFFDIO_COPY of the same runs is reported against
 *   memcpy as a reference line.
 * stream: a buffer on the reference device read sequentially by the CPU
 *   (each page faults home), in GB/s, beside the same read while resident;
 *   the raw UFFDIO_MOVE rate of the same bytes is a second reference line.
 */
#include <errno.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/mman.h>
#include <unistd.h>

#include "bench.h"
#include "bench_util.h"
#include "sys/uapi.h"
#include "uhmm.h"
#include "uhmm/device.h"
#include "uhmm/refdev.h"

#define PAGE 4096ul
#define MB (1ul << 20)

static char *map_aligned(size_t len, bool huge)
{
	char *raw = mmap(NULL, len + 2 * MB, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS,
			 -1, 0), *p;

	if (raw == MAP_FAILED)
		return NULL;
	p = (char *)(((uintptr_t)raw + 2 * MB - 1) & ~(2 * MB - 1));
	madvise(p, len, huge ? MADV_HUGEPAGE : MADV_NOHUGEPAGE);
	return p;
}

/* Raw UFFDIO_MOVE of [src, src+len) to dst in runs of @run: bytes/s. */
static double raw_move(int fd, char *dst, char *src, size_t len, size_t run)
{
	double t0 = bench_now_ns();

	for (size_t off = 0; off < len; off += run) {
		struct uffdio_move m = { .dst = (uintptr_t)dst + off, .src = (uintptr_t)src + off,
					 .len = run };

		if (ioctl(fd, UFFDIO_MOVE, &m))
			return NAN;
	}
	return (double)len / ((bench_now_ns() - t0) / 1e9);
}

static double raw_copy(int fd, char *dst, const char *src, size_t len, size_t run)
{
	double t0 = bench_now_ns();

	for (size_t off = 0; off < len; off += run) {
		struct uffdio_copy c = { .dst = (uintptr_t)dst + off, .src = (uintptr_t)src + off,
					 .len = run };

		if (ioctl(fd, UFFDIO_COPY, &c))
			return NAN;
	}
	return (double)len / ((bench_now_ns() - t0) / 1e9);
}

static int floors(size_t len, size_t run, double *move, double *copy, double *mcpy)
{
	char *a = map_aligned(len, run >= 2 * MB), *b = map_aligned(len, run >= 2 * MB);
	int fd, r;

	if (!a || !b)
		return -ENOMEM;
	r = bench_uffd_open(&fd, UFFD_FEATURE_MOVE);
	if (r)
		return r;
	memset(a, 1, len);
	if ((r = bench_uffd_register(fd, b, len)) == 0) {
		*move = raw_move(fd, b, a, len, run);
		madvise(b, len, MADV_DONTNEED);
		memset(a, 2, len);
		*copy = raw_copy(fd, b, a, len, run);
		double t0 = bench_now_ns();

		memcpy(b, a, len);
		*mcpy = (double)len / ((bench_now_ns() - t0) / 1e9);
	}
	close(fd);
	munmap(a, len);
	munmap(b, len);
	return r;
}

/* uhmm: migrate [p, p+len) to @pg in runs of @run, then back. Bytes/s each way. */
static int uhmm_rates(struct uhmm_mm *mm, struct uhmm_pagemap *pg, char *p, size_t len, size_t run,
		      double *to, double *from)
{
	size_t n = run / PAGE;
	unsigned long *src = calloc(n, sizeof(*src)), *dst = calloc(n, sizeof(*dst));
	double t0;
	int r = 0;

	if (!src || !dst)
		return -ENOMEM;
	t0 = bench_now_ns();
	for (size_t off = 0; off < len && !r; off += run) {
		struct uhmm_migrate m = {
			.mm = mm, .start = (uintptr_t)p + off, .end = (uintptr_t)p + off + run,
			.src = src, .dst = dst, .pgmap_owner = uhmm_pagemap_owner(pg),
			.flags = UHMM_MIGRATE_SELECT_SYSTEM | UHMM_MIGRATE_SELECT_COMPOUND,
		};

		r = uhmm_migrate_setup(&m);
		if (r)
			break;
		uhmm_migrate_alloc_and_copy(&m, pg);
		uhmm_migrate_pages(&m);
		uhmm_migrate_finalize(&m);
	}
	*to = (double)len / ((bench_now_ns() - t0) / 1e9);
	if (uhmm_mm_resident(mm, (uintptr_t)p, (uintptr_t)p + len, NULL) != len / PAGE)
		r = r ? r : -EIO; /* a benchmark of a migration that did not happen is no figure */
	t0 = bench_now_ns();
	for (size_t off = 0; off < len && !r; off += run) {
		long moved = uhmm_migrate_to_ram(mm, (uintptr_t)p + off, (uintptr_t)p + off + run,
						 uhmm_pagemap_owner(pg));

		if (moved < 0)
			r = (int)moved;
	}
	*from = (double)len / ((bench_now_ns() - t0) / 1e9);
	free(src);
	free(dst);
	return r;
}

static int run_migrate(struct bench_ctx *ctx)
{
	static const size_t runs[] = { 4096, 64 << 10, 2 << 20 };
	static const char *const names[] = { "4 KiB", "64 KiB", "2 MiB" };
	size_t len = ctx->quick ? 64 * MB : 256 * MB;
	struct uhmm_mm *mm;
	struct uhmm_pagemap *pg;
	struct uhmm_pagemap_config cfg = { .type = UHMM_PAGEMAP_PRIVATE, .host_storage = true };
	char owner;
	int r = uhmm_mm_new(&mm, NULL);

	if (r)
		return r;
	cfg.owner = &owner;
	r = uhmm_pagemap_new(&pg, mm, &cfg);
	if (!r)
		r = uhmm_pagemap_add_memory(pg, len);
	for (size_t k = 0; k < 3 && !r; k++) {
		char *p = map_aligned(len, runs[k] >= 2 * MB);
		double to, from, move, copy, mcpy;
		char name[96];

		if (!p) {
			r = -ENOMEM;
			break;
		}
		memset(p, 7, len);
		r = uhmm_rates(mm, pg, p, len, runs[k], &to, &from);
		if (!r)
			r = floors(len, runs[k], &move, &copy, &mcpy);
		if (!r) {
			snprintf(name, sizeof(name), "to device, %s runs", names[k]);
			bench_add(ctx, name, "GB/s", BENCH_RATE, to / 1e9, NAN, move / 1e9,
				  "raw UFFDIO_MOVE, same runs");
			snprintf(name, sizeof(name), "to system, %s runs", names[k]);
			bench_add(ctx, name, "GB/s", BENCH_RATE, from / 1e9, NAN, move / 1e9,
				  "raw UFFDIO_MOVE, same runs");
			snprintf(name, sizeof(name), "(ref) raw UFFDIO_COPY, %s runs", names[k]);
			bench_add(ctx, name, "GB/s", BENCH_RATE, copy / 1e9, NAN, mcpy / 1e9, "memcpy");
		}
		munmap(p, len);
	}
	uhmm_pagemap_free(pg);
	uhmm_mm_free(mm);
	return r;
}

static double read_all(const char *p, size_t len)
{
	const uint64_t *q = (const uint64_t *)p;
	volatile uint64_t sum = 0;
	double t0 = bench_now_ns();

	for (size_t i = 0; i < len / sizeof(*q); i++)
		sum += q[i];
	(void)sum;
	return (double)len / ((bench_now_ns() - t0) / 1e9);
}

static int run_stream(struct bench_ctx *ctx)
{
	size_t len = ctx->quick ? 32 * MB : 256 * MB;
	struct uhmm_refdev_config cfg = { .type = UHMM_REFDEV_PRIVATE, .memory_bytes = len };
	struct uhmm_refdev *dev;
	struct uhmm_mm *mm;
	char *p, *mirror;
	double faulting, resident, move = NAN, copy, mcpy;
	int r = uhmm_mm_new(&mm, NULL);

	if (r)
		return r;
	r = uhmm_refdev_new(&dev, mm, &cfg);
	p = map_aligned(len, false);
	mirror = malloc(4 * MB);
	if (r || !p || !mirror) {
		r = r ? r : -ENOMEM;
		goto out;
	}
	memset(p, 3, len);
	for (size_t off = 0; off < len && !r; off += 4 * MB) {
		struct uhmm_refdev_cmd c = { .addr = (uintptr_t)p + off, .ptr = (uintptr_t)mirror,
					     .npages = 4 * MB / PAGE };

		r = uhmm_refdev_cmd(dev, UHMM_REFDEV_MIGRATE_TO_DEV, &c);
	}
	if (r)
		goto out;
	faulting = read_all(p, len);	/* every page comes home on touch */
	resident = read_all(p, len);	/* now all resident: the bandwidth floor */
	if (uhmm_mm_resident(mm, (uintptr_t)p, (uintptr_t)p + len, NULL) != 0)
		r = -EIO;
	if (!r)
		r = floors(len, 4096, &move, &copy, &mcpy);
	if (!r) {
		bench_add(ctx, "sequential read of a device-resident buffer", "GB/s", BENCH_RATE,
			  faulting / 1e9, NAN, resident / 1e9, "same read, resident in CPU memory");
		bench_add(ctx, "(ref) raw UFFDIO_MOVE of the same bytes, 4 KiB", "GB/s", BENCH_RATE,
			  move / 1e9, NAN, resident / 1e9, "same read, resident in CPU memory");
	}
out:
	free(mirror);
	if (p)
		munmap(p, len);
	uhmm_refdev_free(dev);
	uhmm_mm_free(mm);
	return r;
}

const struct bench_suite bench_suite_migrate = {
	.name = "migrate",
	.what = "migration throughput to and from device memory beside raw UFFDIO_MOVE",
	.run = run_migrate,
};

const struct bench_suite bench_suite_stream = {
	.name = "stream",
	.what = "CPU streaming over a device-resident buffer beside the resident read",
	.run = run_stream,
};
