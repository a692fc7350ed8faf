/* SPDX-License-Identifier: MIT */
/*
 * fault.c - suite `fault`: CPU fault latency, per fault mode, beside the raw
 * userfaultfd round trip of that mode and the kernel's own first touch.
 *
 * Figures (p50 and p99 per fault):
 *   first touch of a managed page (uhmm zero-fill), thread and signal mode,
 *   beside poll()+UFFDIO_COPY by a raw handler thread, and SIGBUS+UFFDIO_COPY
 *   by a raw in-thread handler. The kernel's first-touch fault is reported
 *   as a third reference (floor of any fault at all).
 * Device fault-back figures join this suite with migration.
 */
#include <errno.h>
#include <math.h>
#include <poll.h>
#include <pthread.h>
#include <signal.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/mman.h>
#include <sys/syscall.h>
#include <unistd.h>

#include "bench.h"
#include "bench_util.h"
#include "uhmm.h"
#include "uhmm/refdev.h"

#define PAGE 4096ul

static size_t npages(const struct bench_ctx *ctx)
{
	return ctx->quick ? 1000 : 10000;
}

/* Touch every page once for writing, timing each touch. */
static void touch_each(char *p, size_t n, double *lat)
{
	for (size_t i = 0; i < n; i++) {
		double t0 = bench_now_ns();

		((volatile char *)p)[i * PAGE] = 1;
		lat[i] = bench_now_ns() - t0;
	}
}

static int kernel_first_touch(size_t n, double *lat)
{
	char *p = mmap(NULL, n * PAGE, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);

	if (p == MAP_FAILED)
		return -errno;
	madvise(p, n * PAGE, MADV_NOHUGEPAGE);
	touch_each(p, n, lat);
	munmap(p, n * PAGE);
	return 0;
}

/* --- raw userfaultfd, handler thread ------------------------------------- */

struct raw_thread {
	int uffd, stop;
	char *src;
};

static void *raw_handler(void *arg)
{
	struct raw_thread *rt = arg;
	struct pollfd pfd = { .fd = rt->uffd, .events = POLLIN };

	while (!__atomic_load_n(&rt->stop, __ATOMIC_ACQUIRE)) {
		struct uffd_msg msg;

		if (poll(&pfd, 1, 10) <= 0)
			continue;
		if (read(rt->uffd, &msg, sizeof(msg)) != sizeof(msg))
			continue;
		if (msg.event == UFFD_EVENT_PAGEFAULT) {
			struct uffdio_copy c = {
				.dst = msg.arg.pagefault.address & ~(PAGE - 1),
				.src = (uintptr_t)rt->src,
				.len = PAGE,
			};
			ioctl(rt->uffd, UFFDIO_COPY, &c);
		}
	}
	return NULL;
}

static int raw_uffd_thread(size_t n, double *lat)
{
	struct raw_thread rt = { .src = aligned_alloc(PAGE, PAGE) };
	pthread_t th;
	char *p;
	int r;

	if (!rt.src)
		return -ENOMEM;
	memset(rt.src, 0, PAGE);
	r = bench_uffd_open(&rt.uffd, 0);
	if (r)
		goto out_src;
	p = mmap(NULL, n * PAGE, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
	if (p == MAP_FAILED) {
		r = -errno;
		goto out_fd;
	}
	r = bench_uffd_register(rt.uffd, p, n * PAGE);
	if (!r && !(r = -pthread_create(&th, NULL, raw_handler, &rt))) {
		touch_each(p, n, lat);
		__atomic_store_n(&rt.stop, 1, __ATOMIC_RELEASE);
		pthread_join(th, NULL);
	}
	munmap(p, n * PAGE);
out_fd:
	close(rt.uffd);
out_src:
	free(rt.src);
	return r;
}

/* --- raw userfaultfd, SIGBUS in the faulting thread ---------------------- */

static int sig_uffd = -1;
static char sig_src[PAGE] __attribute__((aligned(4096)));

static void raw_sigbus(int sig, siginfo_t *si, void *uc)
{
	struct uffdio_copy c = {
		.dst = (uintptr_t)si->si_addr & ~(PAGE - 1),
		.src = (uintptr_t)sig_src,
		.len = PAGE,
	};

	(void)sig;
	(void)uc;
	ioctl(sig_uffd, UFFDIO_COPY, &c);
}

static int raw_uffd_sigbus(size_t n, double *lat)
{
	struct sigaction sa = { .sa_sigaction = raw_sigbus, .sa_flags = SA_SIGINFO }, old;
	char *p;
	int r = bench_uffd_open(&sig_uffd, UFFD_FEATURE_SIGBUS);

	if (r)
		return r;
	p = mmap(NULL, n * PAGE, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
	if (p == MAP_FAILED) {
		r = -errno;
		goto out_fd;
	}
	r = bench_uffd_register(sig_uffd, p, n * PAGE);
	if (!r) {
		sigaction(SIGBUS, &sa, &old);
		touch_each(p, n, lat);
		sigaction(SIGBUS, &old, NULL);
	}
	munmap(p, n * PAGE);
out_fd:
	close(sig_uffd);
	sig_uffd = -1;
	return r;
}

/* --- uhmm ----------------------------------------------------------------- */

static int uhmm_first_touch(enum uhmm_fault_mode mode, size_t n, double *lat)
{
	struct uhmm_mm_config cfg = { .fault_mode = mode };
	struct uhmm_mm *mm;
	char *p;
	int r = uhmm_mm_new(&mm, &cfg);

	if (r)
		return r;
	p = uhmm_alloc(mm, n * PAGE, 0);
	if (!p) {
		r = -errno;
		goto out;
	}
	touch_each(p, n, lat);
	uhmm_free(mm, p, n * PAGE);
out:
	uhmm_mm_free(mm);
	return r;
}

/* Fault-back: pages on the reference device, each touched once by the CPU. */
static int uhmm_fault_back(enum uhmm_fault_mode mode, size_t n, double *lat)
{
	struct uhmm_mm_config cfg = { .fault_mode = mode };
	struct uhmm_refdev_config dc = { .type = UHMM_REFDEV_PRIVATE };
	struct uhmm_refdev *dev;
	struct uhmm_mm *mm;
	char *p, *mirror = malloc(n * PAGE);
	int r = uhmm_mm_new(&mm, &cfg);

	if (r || !mirror) {
		free(mirror);
		return r ? r : -ENOMEM;
	}
	dc.memory_bytes = ((n * PAGE) + (2u << 20) - 1) & ~((size_t)(2u << 20) - 1);
	r = uhmm_refdev_new(&dev, mm, &dc);
	p = mmap(NULL, n * PAGE, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
	if (!r && p != MAP_FAILED) {
		struct uhmm_refdev_cmd c = { .addr = (uintptr_t)p, .ptr = (uintptr_t)mirror, .npages = n };

		madvise(p, n * PAGE, MADV_NOHUGEPAGE);
		memset(p, 1, n * PAGE);
		r = uhmm_refdev_cmd(dev, UHMM_REFDEV_MIGRATE_TO_DEV, &c);
		if (!r)
			touch_each(p, n, lat);
		munmap(p, n * PAGE);
		uhmm_refdev_free(dev);
	}
	free(mirror);
	uhmm_mm_free(mm);
	return r;
}

static int run(struct bench_ctx *ctx)
{
	size_t n = npages(ctx);
	double *a = calloc(n, sizeof(double)), *b = calloc(n, sizeof(double));
	double *k = calloc(n, sizeof(double));
	double kp50;
	int r = -ENOMEM;

	if (!a || !b || !k)
		goto out;
	r = kernel_first_touch(n, k);
	if (r)
		goto out;
	kp50 = bench_quantile(k, n, 0.5);
	bench_add(ctx, "kernel first-touch write fault", "ns", BENCH_COST, kp50,
		  bench_quantile(k, n, 0.99), NAN, NULL);

	static const struct {
		enum uhmm_fault_mode mode;
		const char *name, *floor;
		int (*raw)(size_t, double *);
	} modes[] = {
		{ UHMM_FAULT_THREAD, "zero-fill fault, thread mode", "poll()+UFFDIO_COPY thread",
		  raw_uffd_thread },
		{ UHMM_FAULT_SIGNAL, "zero-fill fault, signal mode", "SIGBUS+UFFDIO_COPY in-thread",
		  raw_uffd_sigbus },
	};
	for (size_t m = 0; m < sizeof(modes) / sizeof(modes[0]); m++) {
		double fp50;

		r = modes[m].raw(n, a);
		if (r)
			goto out;
		fp50 = bench_quantile(a, n, 0.5);
		r = uhmm_first_touch(modes[m].mode, n, b);
		if (r)
			goto out;
		bench_add(ctx, modes[m].name, "ns", BENCH_COST, bench_quantile(b, n, 0.5),
			  bench_quantile(b, n, 0.99), fp50, modes[m].floor);
		r = uhmm_fault_back(modes[m].mode, n, b);
		if (r)
			goto out;
		bench_add(ctx, modes[m].mode == UHMM_FAULT_THREAD ? "device fault-back, thread mode"
								   : "device fault-back, signal mode",
			  "ns", BENCH_COST, bench_quantile(b, n, 0.5), bench_quantile(b, n, 0.99), fp50,
			  modes[m].floor);
	}
out:
	free(a);
	free(b);
	free(k);
	return r;
}

const struct bench_suite bench_suite_fault = {
	.name = "fault",
	.what = "CPU fault latency per mode beside the raw userfaultfd round trip",
	.run = run,
};
