/* SPDX-License-Identifier: MIT */
/*
 * fuzz - the differential fuzzer of uhmm ("Nothing lost").
 *
 *   fuzz run SEED [OPS]           one seed (default 400 ops)
 *   fuzz seeds FIRST COUNT [OPS]  a fixed set of seeds (what `make test` runs)
 *   fuzz campaign [SECONDS] [OPS] random seeds until the time is up
 *                                 (FUZZ_SECONDS, default 180; `make fuzz`)
 *   fuzz replay FILE [-v]         a reproducer printed by a failing run
 *
 * The fault mode is UHMM_FAULT_MODE's, as for every test. Every run happens
 * in a child process with a time bound (a hang is a failure too). On a
 * failure the op list is shortened (delta debugging: drop chunks while it
 * still fails, for at most FUZZ_MINIMIZE_SECONDS, default 120), printed,
 * and written to fuzz-repro-SEED-MODE.txt (in FUZZ_OUT, default the current
 * directory) for `fuzz replay`. Exit status: 0 all passed, 1 a failure,
 * 2 usage.
 */
#include <errno.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "ops.h"

#define DEFAULT_OPS 400

static double now(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

static const char *mode(void)
{
	const char *m = getenv("UHMM_FAULT_MODE");

	return m && *m ? m : "thread";
}

/*
 * Run @ops in a child. Return 0 if it passed, 1 if it failed, 2 if it
 * hung (killed after its bound). @quiet: its stderr goes nowhere.
 */
static int run_child(const struct fuzz_op *ops, size_t n, bool quiet, bool verbose)
{
	double bound = 30 + 0.1 * (double)n, t0 = now();
	int status;
	pid_t c = fork();

	if (c < 0) {
		perror("fork");
		exit(2);
	}
	if (c == 0) {
		if (quiet && !freopen("/dev/null", "w", stderr))
			_exit(3);
		_exit(fuzz_run(ops, n, verbose));
	}
	for (;;) {
		pid_t r = waitpid(c, &status, WNOHANG);

		if (r == c)
			break;
		if (now() - t0 > bound) {
			kill(c, SIGKILL);
			waitpid(c, &status, 0);
			if (!quiet)
				fprintf(stderr, "FUZZ FAIL: no progress for %.0f s (a hang)\n", bound);
			return 2;
		}
		usleep(2000);
	}
	if (WIFEXITED(status) && WEXITSTATUS(status) == 0)
		return 0;
	if (!quiet && WIFSIGNALED(status))
		fprintf(stderr, "FUZZ FAIL: killed by signal %d\n", WTERMSIG(status));
	return 1;
}

/* Drop chunks of @ops while the rest still fails. Return the new length. */
static size_t minimize(struct fuzz_op *ops, size_t n)
{
	double limit = getenv("FUZZ_MINIMIZE_SECONDS") ? atof(getenv("FUZZ_MINIMIZE_SECONDS")) : 120;
	double t0 = now();
	struct fuzz_op *cand = malloc(n * sizeof(*cand));

	if (!cand)
		return n;
	for (size_t chunk = n / 2; chunk >= 1 && now() - t0 < limit; chunk /= 2) {
		for (size_t i = 0; i < n && now() - t0 < limit;) {
			size_t len = i + chunk > n ? n - i : chunk, m = n - len;

			memcpy(cand, ops, i * sizeof(*ops));
			memcpy(cand + i, ops + i + len, (n - i - len) * sizeof(*ops));
			if (m && run_child(cand, m, true, false)) {
				memcpy(ops, cand, m * sizeof(*ops));
				n = m;
			} else {
				i += chunk;
			}
		}
	}
	free(cand);
	return n;
}

static void report(uint64_t seed, struct fuzz_op *ops, size_t n)
{
	const char *dir = getenv("FUZZ_OUT") ? getenv("FUZZ_OUT") : ".";
	char path[512];
	FILE *f;

	fprintf(stderr, "fuzz: seed %llu failed in %s mode; minimizing %zu ops...\n",
		(unsigned long long)seed, mode(), n);
	n = minimize(ops, n);
	fprintf(stderr, "fuzz: a reproducer of %zu ops (fuzz replay FILE):\n", n);
	fuzz_print(stderr, ops, n);
	snprintf(path, sizeof(path), "%s/fuzz-repro-%llu-%s.txt", dir, (unsigned long long)seed,
		 mode());
	f = fopen(path, "w");
	if (f) {
		fuzz_print(f, ops, n);
		fclose(f);
		fprintf(stderr, "fuzz: written to %s\n", path);
	}
	run_child(ops, n, false, false); /* show its failure again */
}

/* Run seed @seed with @nops ops; report and return non-zero on failure. */
static int one_seed(uint64_t seed, size_t nops)
{
	struct fuzz_op *ops = malloc(nops * sizeof(*ops));
	int r;

	if (!ops)
		return 1;
	fuzz_generate(seed, ops, nops);
	r = run_child(ops, nops, false, false);
	if (r)
		report(seed, ops, nops);
	free(ops);
	return r;
}

static int campaign(double seconds, size_t nops)
{
	double t0 = now();
	uint64_t seed = (uint64_t)time(NULL) * 1000003u + (uint64_t)getpid(), runs = 0;

	if (getenv("FUZZ_SEED"))
		seed = strtoull(getenv("FUZZ_SEED"), NULL, 0);
	fprintf(stderr, "fuzz: campaign of %.0f s, %zu ops per seed, %s mode, first seed %llu\n",
		seconds, nops, mode(), (unsigned long long)seed);
	while (now() - t0 < seconds) {
		if (one_seed(seed, nops))
			return 1;
		runs++;
		seed++;
	}
	printf("fuzz: %s mode: %llu seeds x %zu ops = %llu ops in %.0f s, 0 failures\n", mode(),
	       (unsigned long long)runs, nops, (unsigned long long)(runs * nops), now() - t0);
	return 0;
}

static int usage(void)
{
	fprintf(stderr, "usage: fuzz run SEED [OPS] | seeds FIRST COUNT [OPS] | "
			"campaign [SECONDS] [OPS] | replay FILE [-v]\n");
	return 2;
}

int main(int argc, char **argv)
{
	if (argc < 2)
		return usage();
	if (!strcmp(argv[1], "run") && argc >= 3)
		return one_seed(strtoull(argv[2], NULL, 0),
				argc > 3 ? strtoul(argv[3], NULL, 0) : DEFAULT_OPS);
	if (!strcmp(argv[1], "seeds") && argc >= 4) {
		uint64_t first = strtoull(argv[2], NULL, 0), count = strtoull(argv[3], NULL, 0);
		size_t nops = argc > 4 ? strtoul(argv[4], NULL, 0) : DEFAULT_OPS;

		for (uint64_t s = first; s < first + count; s++)
			if (one_seed(s, nops))
				return 1;
		printf("fuzz: %s mode: seeds %llu..%llu x %zu ops: 0 failures\n", mode(),
		       (unsigned long long)first, (unsigned long long)(first + count - 1), nops);
		return 0;
	}
	if (!strcmp(argv[1], "campaign")) {
		double secs = argc > 2 ? atof(argv[2])
				       : getenv("FUZZ_SECONDS") ? atof(getenv("FUZZ_SECONDS")) : 180;

		return campaign(secs, argc > 3 ? strtoul(argv[3], NULL, 0) : DEFAULT_OPS);
	}
	if (!strcmp(argv[1], "replay") && argc >= 3) {
		FILE *f = fopen(argv[2], "r");
		struct fuzz_op *ops;
		long n;
		int r;

		if (!f) {
			perror(argv[2]);
			return 2;
		}
		n = fuzz_read(f, &ops);
		fclose(f);
		if (n < 0) {
			fprintf(stderr, "%s: not a reproducer\n", argv[2]);
			return 2;
		}
		r = run_child(ops, (size_t)n, false, argc > 3 && !strcmp(argv[3], "-v"));
		printf("fuzz: replay of %ld ops: %s\n", n, r ? "FAILED" : "passed");
		free(ops);
		return r ? 1 : 0;
	}
	return usage();
}
