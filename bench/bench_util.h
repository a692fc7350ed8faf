/* SPDX-License-Identifier: MIT */
/* bench_util.h - raw kernel primitives the suites measure floors with. */
#ifndef UHMM_BENCH_UTIL_H
#define UHMM_BENCH_UTIL_H

#include <linux/userfaultfd.h>
#include <stddef.h>
#include <stdint.h>

#include "bench.h"

/* A raw userfaultfd with @features and the events off. Return 0 or -errno. */
int bench_uffd_open(int *fd, uint64_t features);
/* Register [p, p+len) for MISSING faults. Return 0 or -errno. */
int bench_uffd_register(int fd, void *p, size_t len);

extern const struct bench_suite bench_suite_fault;
extern const struct bench_suite bench_suite_memory;
extern const struct bench_suite bench_suite_mirror;
extern const struct bench_suite bench_suite_migrate;
extern const struct bench_suite bench_suite_stream;

#endif
