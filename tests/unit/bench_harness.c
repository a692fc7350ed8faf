/* SPDX-License-Identifier: MIT */
/*
 * bench_harness: the benchmark harness itself, never a timing threshold.
 * Efficiency and quantiles on synthetic timings; a real suite runs and its
 * JSON report parses and carries every field the format promises.
 */
#include <math.h>

#include "bench.h"
#include "test.h"

/* A strict little JSON syntax checker: returns the end of one value or NULL. */
static const char *ws(const char *s)
{
	while (*s == ' ' || *s == '\n' || *s == '\t' || *s == '\r')
		s++;
	return s;
}

static const char *value(const char *s);

static const char *string(const char *s)
{
	if (*s++ != '"')
		return NULL;
	while (*s && *s != '"') {
		if ((unsigned char)*s < 0x20)
			return NULL;
		if (*s == '\\')
			s++;
		s++;
	}
	return *s == '"' ? s + 1 : NULL;
}

static const char *composite(const char *s, char open, char close, bool keys)
{
	if (*s++ != open)
		return NULL;
	s = ws(s);
	if (*s == close)
		return s + 1;
	for (;;) {
		if (keys) {
			s = string(ws(s));
			if (!s || *(s = ws(s)) != ':')
				return NULL;
			s++;
		}
		s = value(ws(s));
		if (!s)
			return NULL;
		s = ws(s);
		if (*s == close)
			return s + 1;
		if (*s++ != ',')
			return NULL;
	}
}

static const char *value(const char *s)
{
	char *end;

	s = ws(s);
	if (*s == '{')
		return composite(s, '{', '}', true);
	if (*s == '[')
		return composite(s, '[', ']', false);
	if (*s == '"')
		return string(s);
	if (!strncmp(s, "true", 4) || !strncmp(s, "null", 4))
		return s + 4;
	if (!strncmp(s, "false", 5))
		return s + 5;
	strtod(s, &end);
	return end != s ? end : NULL;
}

int main(void)
{
	double v[] = { 5, 1, 4, 2, 3, 100, 6, 7, 8, 9 };
	struct bench_ctx ctx = { .quick = true };
	const char *memory[] = { "memory" }, *bogus[] = { "no-such-suite" };
	char *json = NULL;
	size_t len = 0;
	FILE *f;
	const char *end;

	/* Efficiency: floor/uhmm for costs, uhmm/floor for rates. */
	CHECK(fabs(bench_efficiency(BENCH_COST, 200, 100) - 0.5) < 1e-12);
	CHECK(fabs(bench_efficiency(BENCH_RATE, 3, 12) - 0.25) < 1e-12);
	CHECK(isnan(bench_efficiency(BENCH_COST, 1, NAN)));
	CHECK(isnan(bench_efficiency(BENCH_RATE, 0, 1)));
	/* Quantiles, nearest rank. */
	CHECK_EQ(bench_quantile(v, 10, 0.5), 5);
	CHECK_EQ(bench_quantile(v, 10, 0.99), 100);
	CHECK_EQ(bench_quantile(v, 10, 0.0), 1);

	/* A synthetic result lands with its efficiency computed. */
	ctx.suite = "synthetic";
	CHECK_EQ(bench_add(&ctx, "x", "ns", BENCH_COST, 400, 800, 100, "floor"), 0);
	CHECK(fabs(ctx.v[0].efficiency - 0.25) < 1e-12);
	ctx.suite = NULL;

	CHECK_EQ(bench_run(&ctx, bogus, 1), -ENOENT);
	CHECK_EQ(bench_run(&ctx, memory, 1), 0);
	CHECK(ctx.n >= 2);
	CHECK(!strcmp(ctx.v[1].suite, "memory"));
	CHECK(ctx.v[1].uhmm > 0 && isfinite(ctx.v[1].efficiency));

	f = open_memstream(&json, &len);
	CHECK(f);
	bench_print_json(&ctx, f);
	fclose(f);
	end = value(json);
	CHECK(end && *ws(end) == '\0');
	for (const char *k = "\"uhmm_version\"\0\"machine\"\0\"kernel\"\0\"cpus\"\0\"results\"\0"
			     "\"suite\"\0\"name\"\0\"unit\"\0\"uhmm\"\0\"floor\"\0\"floor_name\"\0"
			     "\"efficiency\"\0\"p99\"\0";
	     *k; k += strlen(k) + 1)
		CHECK(strstr(json, k));
	free(json);

	f = open_memstream(&json, &len);
	bench_print_table(&ctx, f);
	fclose(f);
	CHECK(strstr(json, "metadata per managed 4 KiB page"));
	free(json);
	bench_ctx_fini(&ctx);
	return 0;
}
