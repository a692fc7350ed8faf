/* SPDX-License-Identifier: MIT */
/*
 * migrate_storm: one thread migrates random ranges to the reference device
 * and back while two others increment (plain read-modify-write on their own
 * words) and compare-and-swap (on theirs) the same pages. At the end every
 * word holds exactly the count its thread made: nothing lost, nothing stale.
 * Runs 1 s in `make test`; UHMM_STORM_SECONDS=N runs longer (stress).
 */
#include <pthread.h>
#include <stdatomic.h>
#include <time.h>

#include "test.h"
#include "uhmm/refdev.h"

#define NPAGES 64
#define WORDS (NPAGES * PAGE_SIZE / sizeof(uint64_t))

static uint64_t *buf;
static atomic_int stop;
static struct uhmm_refdev *dev;
static uint64_t counts[2][WORDS];

static void *migrator(void *arg)
{
	uint64_t seed = 1;
	char *mirror = malloc(NPAGES * PAGE_SIZE);
	long rounds = 0;

	(void)arg;
	while (!atomic_load(&stop)) {
		size_t a = test_rand(&seed) % NPAGES, n = 1 + test_rand(&seed) % (NPAGES - a);
		struct uhmm_refdev_cmd c = { .addr = (uintptr_t)buf + a * PAGE_SIZE,
					     .ptr = (uintptr_t)mirror, .npages = n };
		int r = uhmm_refdev_cmd(dev, test_rand(&seed) & 1 ? UHMM_REFDEV_MIGRATE_TO_DEV
								  : UHMM_REFDEV_MIGRATE_TO_SYS,
					&c);

		/* -ENOENT: a page was taken home by a CPU touch before the device read it. */
		CHECK(r == 0 || r == -ENOENT);
		rounds++;
	}
	free(mirror);
	return (void *)rounds;
}

static void *cpu(void *arg)
{
	size_t who = (size_t)arg;
	uint64_t seed = 100 + who;

	while (!atomic_load(&stop)) {
		size_t w = (test_rand(&seed) % (WORDS / 2)) * 2 + who; /* own parity */

		if (who == 0) {
			buf[w]++;
		} else {
			uint64_t old = __atomic_load_n(&buf[w], __ATOMIC_RELAXED);

			while (!__atomic_compare_exchange_n(&buf[w], &old, old + 1, false,
							    __ATOMIC_SEQ_CST, __ATOMIC_RELAXED))
				;
		}
		counts[who][w]++;
	}
	return NULL;
}

int main(void)
{
	struct uhmm_mm *mm = test_mm_new();
	struct uhmm_refdev_config cfg = { .type = UHMM_REFDEV_PRIVATE, .memory_bytes = 2u << 20 };
	const char *env = getenv("UHMM_STORM_SECONDS");
	int seconds = env ? atoi(env) : 1;
	pthread_t th[3];
	void *rounds;

	CHECK_EQ(uhmm_refdev_new(&dev, mm, &cfg), 0);
	buf = test_anon(NPAGES * PAGE_SIZE);
	memset(buf, 0, NPAGES * PAGE_SIZE);
	CHECK_EQ(pthread_create(&th[0], NULL, migrator, NULL), 0);
	CHECK_EQ(pthread_create(&th[1], NULL, cpu, (void *)0), 0);
	CHECK_EQ(pthread_create(&th[2], NULL, cpu, (void *)1), 0);
	sleep((unsigned int)seconds);
	atomic_store(&stop, 1);
	CHECK_EQ(pthread_join(th[0], &rounds), 0);
	CHECK_EQ(pthread_join(th[1], NULL), 0);
	CHECK_EQ(pthread_join(th[2], NULL), 0);
	fprintf(stderr, "%ld migrations\n", (long)rounds);
	CHECK((long)rounds > 10);
	for (size_t w = 0; w < WORDS; w++)
		if (buf[w] != counts[w % 2][w]) {
			fprintf(stderr, "word %zu: %llu, expected %llu\n", w,
				(unsigned long long)buf[w], (unsigned long long)counts[w % 2][w]);
			return 1;
		}
	uhmm_refdev_free(dev);
	uhmm_mm_free(mm);
	return 0;
}
