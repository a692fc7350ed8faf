/* SPDX-License-Identifier: MIT */
/*
 * bench_cmd.c - `uhmm bench [--quick] [--json] [SUITE...]`.
 */
#include <stdio.h>
#include <string.h>

#include "bench.h"
#include "cli.h"
#include "uhmm.h"

int uhmm_cli_bench(int argc, char **argv)
{
	struct bench_ctx ctx = { .progress = stderr };
	const char *names[32] = { 0 };
	size_t n = 0;
	bool as_json = false;
	int r;

	for (int i = 1; i < argc; i++) {
		if (!strcmp(argv[i], "--quick"))
			ctx.quick = true;
		else if (!strcmp(argv[i], "--json"))
			as_json = true;
		else if (!strcmp(argv[i], "--list")) {
			for (size_t k = 0; k < bench_nsuites; k++)
				printf("%-8s %s\n", bench_suites[k]->name, bench_suites[k]->what);
			return 0;
		} else if (argv[i][0] == '-' || n == sizeof(names) / sizeof(names[0])) {
			fprintf(stderr, "usage: uhmm bench [--quick] [--json] [--list] [SUITE...]\n");
			return 2;
		} else {
			names[n++] = argv[i];
		}
	}
	r = bench_run(&ctx, names, n);
	if (r) {
		fprintf(stderr, "uhmm bench: unknown suite (see uhmm bench --list)\n");
		bench_ctx_fini(&ctx);
		return 2;
	}
	if (as_json)
		bench_print_json(&ctx, stdout);
	else
		bench_print_table(&ctx, stdout);
	bench_ctx_fini(&ctx);
	return 0;
}
