/* SPDX-License-Identifier: MIT */
/*
 * test.h - what every uhmm test program uses: checks that name the line,
 * skipping (exit 77) when the kernel lacks a feature, and small helpers.
 */
#ifndef UHMM_TEST_H
#define UHMM_TEST_H

#include <dirent.h>
#include <signal.h>
#include <stdint.h>
#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>

#include "uhmm.h"

#define TEST_SKIP 77
#define PAGE_SIZE 4096ul

#define CHECK(cond)                                                                  \
	do {                                                                         \
		if (!(cond)) {                                                       \
			fprintf(stderr, "%s:%d: CHECK(%s) failed\n", __FILE__, __LINE__, \
				#cond);                                              \
			exit(1);                                                     \
		}                                                                    \
	} while (0)

#define CHECK_EQ(a, b)                                                                 \
	do {                                                                           \
		long long _a = (long long)(a), _b = (long long)(b);                    \
		if (_a != _b) {                                                        \
			fprintf(stderr, "%s:%d: %s == %lld, expected %s == %lld\n",    \
				__FILE__, __LINE__, #a, _a, #b, _b);                   \
			exit(1);                                                       \
		}                                                                      \
	} while (0)

static inline void __attribute__((noreturn, format(printf, 1, 2))) test_skip(const char *fmt, ...)
{
	va_list ap;

	va_start(ap, fmt);
	fprintf(stderr, "SKIP: ");
	vfprintf(stderr, fmt, ap);
	fprintf(stderr, "\n");
	va_end(ap);
	exit(TEST_SKIP);
}

/* A new mm in the mode UHMM_FAULT_MODE says; skip if the kernel cannot. */
static inline struct uhmm_mm *test_mm_new(void)
{
	struct uhmm_mm *mm;
	int r = uhmm_mm_new(&mm, NULL);

	if (r == -EPERM || r == -ENOSYS || r == -EOPNOTSUPP)
		test_skip("uhmm_mm_new: %s", uhmm_strerror(r));
	if (r) {
		fprintf(stderr, "uhmm_mm_new: %s\n", uhmm_strerror(r));
		exit(1);
	}
	return mm;
}

static inline void *test_map(size_t len, int flags)
{
	void *p = mmap(NULL, len, PROT_READ | PROT_WRITE, flags, -1, 0);

	CHECK(p != MAP_FAILED);
	return p;
}

#define test_anon(len) test_map(len, MAP_PRIVATE | MAP_ANONYMOUS)

/* Entries in a /proc directory (fds, tasks): for leak checks. */
static inline int test_count_dir(const char *path)
{
	DIR *d = opendir(path);
	int n = 0;

	CHECK(d);
	while (readdir(d))
		n++;
	closedir(d);
	return n;
}

/* Deterministic pseudo-random numbers (xorshift64*), seeded per test. */
static inline uint64_t test_rand(uint64_t *s)
{
	*s ^= *s >> 12;
	*s ^= *s << 25;
	*s ^= *s >> 27;
	return *s * 2685821657736338717ull;
}


/* Fail, instead of hanging until the CTest timeout, past @seconds. */
static inline void test_deadline_hit(int sig)
{
	static const char msg[] = "FAIL: deadline passed (a hang)\n";

	(void)sig;
	if (write(2, msg, sizeof(msg) - 1) < 0)
		_exit(1);
	_exit(1);
}

static inline void test_deadline(unsigned int seconds)
{
	signal(SIGALRM, test_deadline_hit);
	alarm(seconds);
}

/* What word @w of page @pg holds under pattern @tag: unique per page and tag. */
static inline uint64_t test_word(size_t pg, size_t w, uint64_t tag)
{
	return (tag << 40) ^ ((uint64_t)pg << 12) ^ (uint64_t)w ^ 0x5a5a000000000000ull;
}

/* Fill pages [0, n) of @p with pattern @tag. */
static inline void test_fill(void *p, size_t first, size_t n, uint64_t tag)
{
	for (size_t pg = first; pg < first + n; pg++) {
		uint64_t *q = (uint64_t *)((char *)p + pg * PAGE_SIZE);

		for (size_t w = 0; w < PAGE_SIZE / 8; w++)
			q[w] = test_word(pg, w, tag);
	}
}

/* Does page @pg of @p hold pattern @tag (tag 0 with @zero: all zeros)? */
static inline bool test_page_is(const void *p, size_t pg, uint64_t tag, bool zero)
{
	const uint64_t *q = (const uint64_t *)((const char *)p + pg * PAGE_SIZE);

	for (size_t w = 0; w < PAGE_SIZE / 8; w++)
		if (q[w] != (zero ? 0 : test_word(pg, w, tag)))
			return false;
	return true;
}

/* Check pages [first, first+n) hold @tag; name the first that does not. */
#define CHECK_PAGES(p, first, n, tag)                                                    \
	do {                                                                             \
		for (size_t _pg = (first); _pg < (first) + (n); _pg++)                   \
			if (!test_page_is((p), _pg, (tag), false)) {                     \
				fprintf(stderr, "%s:%d: page %zu lost its data\n", __FILE__, \
					__LINE__, _pg);                                  \
				exit(1);                                                 \
			}                                                                \
	} while (0)

#define CHECK_ZERO_PAGES(p, first, n)                                                    \
	do {                                                                             \
		for (size_t _pg = (first); _pg < (first) + (n); _pg++)                   \
			if (!test_page_is((p), _pg, 0, true)) {                          \
				fprintf(stderr, "%s:%d: page %zu is not zero\n", __FILE__,   \
					__LINE__, _pg);                                  \
				exit(1);                                                 \
			}                                                                \
	} while (0)

#endif
