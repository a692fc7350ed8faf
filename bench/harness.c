/* SPDX-License-Identifier: MIT */
/*
 * harness.c - running suites, statistics, and the table and JSON reports.
 */
#include <errno.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>
#include <sys/utsname.h>
#include <time.h>
#include <unistd.h>

#include "bench.h"
#include "json.h"
#include "uhmm.h"

double bench_efficiency(enum bench_kind kind, double uhmm, double floor)
{
	if (!isfinite(uhmm) || !isfinite(floor) || uhmm <= 0 || floor <= 0)
		return NAN;
	return kind == BENCH_COST ? floor / uhmm : uhmm / floor;
}

static int cmp_double(const void *a, const void *b)
{
	double x = *(const double *)a, y = *(const double *)b;

	return (x > y) - (x < y);
}

double bench_quantile(double *v, size_t n, double q)
{
	size_t i;

	if (!n)
		return NAN;
	qsort(v, n, sizeof(*v), cmp_double);
	i = (size_t)ceil(q * (double)n);
	i = i ? i - 1 : 0;
	return v[i < n ? i : n - 1];
}

double bench_now_ns(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (double)ts.tv_sec * 1e9 + (double)ts.tv_nsec;
}

int bench_add(struct bench_ctx *ctx, const char *name, const char *unit, enum bench_kind kind,
	      double uhmm, double uhmm_p99, double floor, const char *floor_name)
{
	struct bench_result *r;

	if (ctx->n == ctx->cap) {
		size_t cap = ctx->cap ? ctx->cap * 2 : 32;
		struct bench_result *v = realloc(ctx->v, cap * sizeof(*v));

		if (!v)
			return -ENOMEM;
		ctx->v = v;
		ctx->cap = cap;
	}
	r = &ctx->v[ctx->n++];
	memset(r, 0, sizeof(*r));
	snprintf(r->suite, sizeof(r->suite), "%s", ctx->suite ? ctx->suite : "");
	snprintf(r->name, sizeof(r->name), "%s", name);
	snprintf(r->unit, sizeof(r->unit), "%s", unit);
	snprintf(r->floor_name, sizeof(r->floor_name), "%s", floor_name ? floor_name : "");
	r->kind = kind;
	r->uhmm = uhmm;
	r->uhmm_p99 = uhmm_p99;
	r->floor = floor;
	r->efficiency = bench_efficiency(kind, uhmm, floor);
	return 0;
}

static const struct bench_suite *find_suite(const char *name)
{
	for (size_t i = 0; i < bench_nsuites; i++)
		if (!strcmp(bench_suites[i]->name, name))
			return bench_suites[i];
	return NULL;
}

int bench_run(struct bench_ctx *ctx, const char *const *names, size_t nnames)
{
	size_t n = nnames ? nnames : bench_nsuites;

	for (size_t i = 0; i < n; i++) {
		const struct bench_suite *s = nnames ? find_suite(names[i]) : bench_suites[i];
		int r;

		if (!s)
			return -ENOENT;
		ctx->suite = s->name;
		if (ctx->progress)
			fprintf(ctx->progress, "bench: %s: %s...\n", s->name, s->what);
		r = s->run(ctx);
		if (r && ctx->progress)
			fprintf(ctx->progress, "bench: %s skipped: %s\n", s->name, uhmm_strerror(r));
	}
	ctx->suite = NULL;
	return 0;
}

void bench_print_table(const struct bench_ctx *ctx, FILE *f)
{
	fprintf(f, "%-8s %-40s %12s %12s %-8s %12s  %-34s %s\n", "suite", "figure", "uhmm",
		"p99", "unit", "floor", "floor is", "efficiency");
	for (size_t i = 0; i < ctx->n; i++) {
		const struct bench_result *r = &ctx->v[i];

		fprintf(f, "%-8s %-40s %12.4g %12.4g %-8s %12.4g  %-34s ", r->suite, r->name,
			r->uhmm, r->uhmm_p99, r->unit, r->floor, r->floor_name);
		if (isfinite(r->efficiency))
			fprintf(f, "%.3f\n", r->efficiency);
		else
			fprintf(f, "-\n");
	}
}

void bench_print_json(const struct bench_ctx *ctx, FILE *f)
{
	struct json j = { .f = f };
	struct utsname u;

	uname(&u);
	json_open(&j, NULL, '{');
	json_string(&j, "uhmm_version", uhmm_version());
	json_open(&j, "machine", '{');
	json_string(&j, "kernel", u.release);
	json_int(&j, "cpus", sysconf(_SC_NPROCESSORS_ONLN));
	json_close(&j, '}');
	json_bool(&j, "quick", ctx->quick);
	json_open(&j, "results", '[');
	for (size_t i = 0; i < ctx->n; i++) {
		const struct bench_result *r = &ctx->v[i];

		json_open(&j, NULL, '{');
		json_string(&j, "suite", r->suite);
		json_string(&j, "name", r->name);
		json_string(&j, "unit", r->unit);
		json_double(&j, "uhmm", r->uhmm);
		json_double(&j, "floor", r->floor);
		json_string(&j, "floor_name", r->floor_name);
		json_double(&j, "efficiency", r->efficiency);
		json_double(&j, "p99", r->uhmm_p99);
		json_close(&j, '}');
	}
	json_close(&j, ']');
	json_close(&j, '}');
	fputc('\n', f);
}

void bench_ctx_fini(struct bench_ctx *ctx)
{
	free(ctx->v);
	ctx->v = NULL;
	ctx->n = ctx->cap = 0;
}
