/* SPDX-License-Identifier: MIT */
/*
 * uhmm - the command line: what the kernel gives (info), the demo, the
 * benchmarks (bench), and a program run with its heap migrating underneath
 * it (chaos). `uhmm help` lists the commands.
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "uhmm.h"
#include "cli.h"

static void usage(FILE *f)
{
	fprintf(f,
		"usage: uhmm COMMAND [ARGS]\n"
		"\n"
		"commands:\n"
		"  demo [--mib N]                     a buffer migrates to the reference device and back\n"
		"  info [--json]                      what the kernel gives uhmm, and what degrades\n"
		"  bench [--quick] [--json] [SUITE..] benchmarks beside their kernel floors\n"
		"  chaos [OPTIONS] -- PROGRAM [ARGS]  run PROGRAM with its heap migrating to the\n"
		"                                     reference device and back underneath it\n"
		"  help                               this text\n"
		"\n"
		"environment: UHMM_FAULT_MODE=thread|signal picks the fault mode.\n");
}

int main(int argc, char **argv)
{
	if (argc < 2) {
		usage(stderr);
		return 2;
	}
	if (!strcmp(argv[1], "info"))
		return uhmm_cli_info(argc - 1, argv + 1);
	if (!strcmp(argv[1], "demo"))
		return uhmm_cli_demo(argc - 1, argv + 1);
	if (!strcmp(argv[1], "bench"))
		return uhmm_cli_bench(argc - 1, argv + 1);
	if (!strcmp(argv[1], "chaos"))
		return uhmm_cli_chaos(argc - 1, argv + 1);
	if (!strcmp(argv[1], "help") || !strcmp(argv[1], "--help") || !strcmp(argv[1], "-h")) {
		usage(stdout);
		return 0;
	}
	fprintf(stderr, "uhmm: unknown command '%s'\n", argv[1]);
	usage(stderr);
	return 2;
}
