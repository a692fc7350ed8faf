/* SPDX-License-Identifier: MIT */
/*
 * bench.h - the benchmark harness: every uhmm figure beside the kernel floor
 * it is built on, measured in the same process and run.
 *
 * A suite measures trials (after warm-up), reduces them to a median and a
 * p99, and records one result per figure with bench_add(). Efficiency is
 * floor cost / uhmm cost for latencies and costs, uhmm rate / floor rate for
 * throughputs: 1.0 means uhmm adds nothing on top of the kernel.
 */
#ifndef UHMM_BENCH_H
#define UHMM_BENCH_H

#include <stdbool.h>
#include <stddef.h>
#include <stdio.h>

enum bench_kind {
	BENCH_COST, /* lower is better: ns, bytes */
	BENCH_RATE, /* higher is better: GB/s, pages/s */
};

struct bench_result {
	char suite[16];
	char name[96];
	char unit[16];
	char floor_name[96];
	enum bench_kind kind;
	double uhmm;	   /* median */
	double uhmm_p99;   /* NaN where it means nothing */
	double floor;	   /* median of the floor, NaN if none */
	double efficiency; /* see above; NaN if no floor */
};

struct bench_ctx {
	bool quick;
	const char *suite; /* the suite running now */
	struct bench_result *v;
	size_t n, cap;
	FILE *progress; /* where suites say what they do (stderr), or NULL */
};

struct bench_suite {
	const char *name;
	const char *what;
	/* Return 0, or -errno when the suite cannot run here (reported, skipped). */
	int (*run)(struct bench_ctx *ctx);
};

extern const struct bench_suite *const bench_suites[];
extern const size_t bench_nsuites;

/* Efficiency of uhmm against its floor (see above). NaN if undefined. */
double bench_efficiency(enum bench_kind kind, double uhmm, double floor);
/* Sort @v in place; return the q-quantile (0..1), nearest rank. */
double bench_quantile(double *v, size_t n, double q);
double bench_now_ns(void);

/* Record one figure. Return 0 or -ENOMEM. */
int bench_add(struct bench_ctx *ctx, const char *name, const char *unit, enum bench_kind kind,
	      double uhmm, double uhmm_p99, double floor, const char *floor_name);

int bench_run(struct bench_ctx *ctx, const char *const *suites, size_t nsuites);
void bench_print_table(const struct bench_ctx *ctx, FILE *f);
void bench_print_json(const struct bench_ctx *ctx, FILE *f);
void bench_ctx_fini(struct bench_ctx *ctx);

#endif
