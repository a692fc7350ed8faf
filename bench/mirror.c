/* SPDX-License-Identifier: MIT */
/*
 * mirror.c - suite `mirror`:
 *   snapshot: uhmm_range_fault() with no request over 1 GiB (256 MiB with
 *     --quick), half populated in 2 MiB-aligned runs (THP where the kernel
 *     forms them), in pages/s, beside raw PAGEMAP_SCAN over the same range;
 *   fault-in: uhmm_range_fault() with REQ_WRITE over 256 MiB of fresh
 *     managed memory, in GB/s, beside MADV_POPULATE_WRITE of fresh memory;
 *   invalidation: madvise(MADV_DONTNEED) of one page through libuhmm with
 *     1, 100 and 10 000 notifiers overlapping it (and 1 overlapping among
 *     10 000), beside the same madvise made as a raw syscall.
 */
#include <errno.h>
#include <fcntl.h>
#include <sys/ioctl.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/syscall.h>
#include <unistd.h>

#include "bench.h"
#include "bench_util.h"
#include "sys/uapi.h"
#include "uhmm.h"

#define PAGE 4096ul
#define MB (1ul << 20)

static bool nop_invalidate(struct uhmm_interval_notifier *n, const struct uhmm_notifier_range *r,
			   unsigned long seq)
{
	(void)r;
	uhmm_interval_set_seq(n, seq);
	return true;
}

static const struct uhmm_interval_notifier_ops nop_ops = { .invalidate = nop_invalidate };

static char *map_aligned(size_t len)
{
	char *raw = mmap(NULL, len + 2 * MB, PROT_READ | PROT_WRITE,
			 MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE, -1, 0);
	char *p;

	if (raw == MAP_FAILED)
		return NULL;
	p = (char *)(((uintptr_t)raw + 2 * MB - 1) & ~(2 * MB - 1));
	return p;
}

/* Raw PAGEMAP_SCAN over [p, p+len): pages/s, as uhmm's snapshot does it. */
static double raw_scan(char *p, size_t len, int reps)
{
	static struct page_region vec[512];
	int fd = open("/proc/self/pagemap", O_RDONLY | O_CLOEXEC);
	double best = 0;

	if (fd < 0)
		return NAN;
	for (int r = 0; r < reps; r++) {
		double t0 = bench_now_ns();
		uintptr_t s = (uintptr_t)p, e = s + len;

		while (s < e) {
			struct pm_scan_arg a = {
				.size = sizeof(a), .start = s, .end = e, .vec = (uintptr_t)vec,
				.vec_len = 512, .category_anyof_mask = PAGE_IS_PRESENT,
				.return_mask = PAGE_IS_PRESENT | PAGE_IS_PFNZERO | PAGE_IS_HUGE |
					       PAGE_IS_WRITTEN,
			};
			long n = ioctl(fd, PAGEMAP_SCAN, &a);

			if (n < 512)
				break;
			s = a.walk_end > vec[n - 1].end ? a.walk_end : vec[n - 1].end;
		}
		double rate = (double)(len / PAGE) / ((bench_now_ns() - t0) / 1e9);
		best = rate > best ? rate : best;
	}
	close(fd);
	return best;
}

static int snapshot(struct bench_ctx *ctx, struct uhmm_mm *mm)
{
	size_t len = ctx->quick ? 256 * MB : 1024 * MB, n = len / PAGE;
	int reps = ctx->quick ? 10 : 30; /* best of: a scan takes well under 1 ms */
	unsigned long *pfns = malloc(n * sizeof(*pfns));
	struct uhmm_interval_notifier nt;
	char *p = map_aligned(len);
	double best = 0, floor;
	int r = 0;

	if (!pfns || !p) {
		free(pfns);
		return -ENOMEM;
	}
	madvise(p, len, MADV_HUGEPAGE);
	for (size_t off = 0; off < len; off += 4 * MB)
		memset(p + off, 1, 2 * MB); /* half populated, 2 MiB runs */
	uhmm_interval_notifier_insert(&nt, mm, (uintptr_t)p, len, &nop_ops);
	for (int i = 0; i < reps && !r; i++) {
		struct uhmm_range rg = { .notifier = &nt, .start = (uintptr_t)p,
					 .end = (uintptr_t)p + len, .hmm_pfns = pfns };
		double t0;

		rg.notifier_seq = uhmm_interval_read_begin(&nt);
		t0 = bench_now_ns();
		r = uhmm_range_fault(&rg);
		double rate = (double)n / ((bench_now_ns() - t0) / 1e9);
		best = rate > best ? rate : best;
	}
	floor = raw_scan(p, len, reps);
	if (!r)
		bench_add(ctx, ctx->quick ? "snapshot 256 MiB, half populated"
					  : "snapshot 1 GiB, half populated",
			  "pages/s", BENCH_RATE, best, NAN, floor, "raw PAGEMAP_SCAN");
	uhmm_interval_notifier_remove(&nt);
	munmap(p, len);
	free(pfns);
	return r;
}

static int fault_in(struct bench_ctx *ctx, struct uhmm_mm *mm)
{
	size_t len = ctx->quick ? 64 * MB : 256 * MB, n = len / PAGE;
	unsigned long *pfns = calloc(n, sizeof(*pfns));
	struct uhmm_interval_notifier nt;
	char *p = mmap(NULL, len, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
	char *q = mmap(NULL, len, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
	struct uhmm_range rg = { .notifier = &nt, .default_flags = UHMM_PFN_REQ_WRITE };
	double t0, tu, tf;
	int r;

	if (!pfns || p == MAP_FAILED || q == MAP_FAILED) {
		free(pfns);
		return -ENOMEM;
	}
	madvise(p, len, MADV_NOHUGEPAGE);
	madvise(q, len, MADV_NOHUGEPAGE);
	r = uhmm_manage(mm, p, len, 0);
	if (!r)
		r = uhmm_interval_notifier_insert(&nt, mm, (uintptr_t)p, len, &nop_ops);
	if (!r) {
		rg.start = (uintptr_t)p;
		rg.end = (uintptr_t)p + len;
		rg.hmm_pfns = pfns;
		rg.notifier_seq = uhmm_interval_read_begin(&nt);
		t0 = bench_now_ns();
		r = uhmm_range_fault(&rg);
		tu = bench_now_ns() - t0;
		uhmm_interval_notifier_remove(&nt);
	}
	t0 = bench_now_ns();
	syscall(SYS_madvise, q, len, 23 /* MADV_POPULATE_WRITE */);
	tf = bench_now_ns() - t0;
	if (!r)
		bench_add(ctx, ctx->quick ? "fault-in (write) 64 MiB" : "fault-in (write) 256 MiB",
			  "GB/s", BENCH_RATE, (double)len / tu, NAN, (double)len / tf,
			  "MADV_POPULATE_WRITE");
	munmap(p, len);
	munmap(q, len);
	free(pfns);
	return r;
}

static int invalidation(struct bench_ctx *ctx, struct uhmm_mm *mm)
{
	static const struct {
		int n;
		bool one_hit;
		const char *name;
	} cases[] = {
		{ 1, false, "invalidate 1 notifier" },
		{ 100, false, "invalidate 100 notifiers" },
		{ 10000, false, "invalidate 10000 notifiers" },
		{ 10000, true, "invalidate 1 of 10000 notifiers" },
	};
	int iters = ctx->quick ? 200 : 2000;
	char *p = mmap(NULL, 20000 * PAGE, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS,
		       -1, 0);
	struct uhmm_interval_notifier *ns = calloc(10000, sizeof(*ns));
	double *lat = calloc((size_t)iters, sizeof(double));
	double *raw = calloc((size_t)iters, sizeof(double));
	int r = 0;

	if (p == MAP_FAILED || !ns || !lat || !raw) {
		r = -ENOMEM;
		goto out;
	}
	for (int i = 0; i < iters; i++) {
		double t0 = bench_now_ns();

		syscall(SYS_madvise, p, PAGE, MADV_DONTNEED);
		raw[i] = bench_now_ns() - t0;
	}
	double floor = bench_quantile(raw, (size_t)iters, 0.5);

	for (size_t c = 0; c < sizeof(cases) / sizeof(cases[0]); c++) {
		for (int i = 0; i < cases[c].n; i++) {
			/* Overlapping: all cover page 0. Disjoint: one page each. */
			uintptr_t s = (uintptr_t)p + (cases[c].one_hit ? (size_t)i * 2 * PAGE : 0);

			uhmm_interval_notifier_insert(&ns[i], mm, s, PAGE, &nop_ops);
		}
		for (int i = 0; i < iters; i++) {
			double t0 = bench_now_ns();

			madvise(p, PAGE, MADV_DONTNEED);
			lat[i] = bench_now_ns() - t0;
		}
		for (int i = 0; i < cases[c].n; i++)
			uhmm_interval_notifier_remove(&ns[i]);
		bench_add(ctx, cases[c].name, "ns", BENCH_COST, bench_quantile(lat, (size_t)iters, 0.5),
			  bench_quantile(lat, (size_t)iters, 0.99), floor, "raw madvise(DONTNEED)");
	}
out:
	if (p != MAP_FAILED)
		munmap(p, 20000 * PAGE);
	free(ns);
	free(lat);
	free(raw);
	return r;
}

static int run(struct bench_ctx *ctx)
{
	struct uhmm_mm *mm;
	int r = uhmm_mm_new(&mm, NULL);

	if (r)
		return r;
	r = snapshot(ctx, mm);
	if (!r)
		r = fault_in(ctx, mm);
	if (!r)
		r = invalidation(ctx, mm);
	uhmm_mm_free(mm);
	return r;
}

const struct bench_suite bench_suite_mirror = {
	.name = "mirror",
	.what = "range_fault snapshot and fault-in beside PAGEMAP_SCAN/POPULATE; invalidation cost",
	.run = run,
};
