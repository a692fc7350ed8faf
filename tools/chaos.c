/* SPDX-License-Identifier: MIT */
/*
 * chaos.c - `uhmm chaos`: run an unmodified program with its heap in memory
 * uhmm manages, migrating to the reference device and back underneath it
 * all the time (tools/chaos/preload.c, docs/CHAOS.md). Compare its output
 * with a plain run: any difference is a byte uhmm lost or served stale.
 *
 *   uhmm chaos [--device-mib N] [--interval-us N] [--max-pages N] [--seed N]
 *              -- PROGRAM [ARGS...]
 *
 * It sets LD_PRELOAD to libuhmm.so.0 and libuhmm-chaos.so (found beside
 * this executable, in ../lib, or in the directory uhmm was installed to)
 * and executes the program; its exit status is the program's.
 */
#include <errno.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "cli.h"

#ifndef UHMM_LIBDIR
#define UHMM_LIBDIR "/usr/local/lib"
#endif

/* The directory holding libuhmm-chaos.so, into @dir. */
static int find_libs(char *dir, size_t len)
{
	char exe[PATH_MAX], *slash, cand[PATH_MAX + 64];
	const char *rel[] = { "", "/../lib", "/../lib64", "/../lib/x86_64-linux-gnu" };
	ssize_t n = readlink("/proc/self/exe", exe, sizeof(exe) - 1);

	if (n > 0) {
		exe[n] = 0;
		slash = strrchr(exe, '/');
		if (slash)
			*slash = 0;
		for (size_t i = 0; i < sizeof(rel) / sizeof(rel[0]); i++) {
			snprintf(cand, sizeof(cand), "%s%s/libuhmm-chaos.so", exe, rel[i]);
			if (!access(cand, R_OK)) {
				snprintf(dir, len, "%s%s", exe, rel[i]);
				return 0;
			}
		}
	}
	snprintf(cand, sizeof(cand), "%s/libuhmm-chaos.so", UHMM_LIBDIR);
	if (!access(cand, R_OK)) {
		snprintf(dir, len, "%s", UHMM_LIBDIR);
		return 0;
	}
	return -ENOENT;
}

static const struct {
	const char *flag, *env;
} settings[] = {
	{ "--device-mib", "UHMM_CHAOS_DEVICE_MIB" },
	{ "--interval-us", "UHMM_CHAOS_INTERVAL_US" },
	{ "--max-pages", "UHMM_CHAOS_MAX_PAGES" },
	{ "--seed", "UHMM_CHAOS_SEED" },
};

static int usage(void)
{
	fprintf(stderr, "usage: uhmm chaos [--device-mib N] [--interval-us N] [--max-pages N] "
			"[--seed N] -- PROGRAM [ARGS...]\n");
	return 2;
}

int uhmm_cli_chaos(int argc, char **argv)
{
	char dir[PATH_MAX], preload[2 * PATH_MAX + 64];
	const char *old = getenv("LD_PRELOAD");
	int i = 1;

	while (i < argc && strcmp(argv[i], "--")) {
		size_t k = 0;

		while (k < sizeof(settings) / sizeof(settings[0]) && strcmp(argv[i], settings[k].flag))
			k++;
		if (k == sizeof(settings) / sizeof(settings[0]) || i + 1 >= argc)
			return usage();
		setenv(settings[k].env, argv[i + 1], 1);
		i += 2;
	}
	if (i + 1 >= argc)
		return usage();
	if (find_libs(dir, sizeof(dir))) {
		fprintf(stderr, "uhmm chaos: libuhmm-chaos.so not found beside %s or in %s\n",
			"this executable", UHMM_LIBDIR);
		return 127;
	}
	/* libuhmm first: its munmap/mremap/... must be the program's. */
	snprintf(preload, sizeof(preload), "%s/libuhmm.so.0:%s/libuhmm-chaos.so%s%s", dir, dir,
		 old && *old ? ":" : "", old && *old ? old : "");
	setenv("LD_PRELOAD", preload, 1);
	execvp(argv[i + 1], argv + i + 1);
	fprintf(stderr, "uhmm chaos: %s: %s\n", argv[i + 1], strerror(errno));
	return 127;
}
