/* SPDX-License-Identifier: MIT */
/*
 * bench_util.c - the floors' own raw userfaultfd, independent of libuhmm (a
 * floor must not share uhmm's code, or it would carry uhmm's costs), and the
 * table of suites.
 */
#include <errno.h>
#include <fcntl.h>
#include <sys/ioctl.h>
#include <sys/syscall.h>
#include <unistd.h>

#include "bench_util.h"

int bench_uffd_open(int *fd, uint64_t features)
{
	struct uffdio_api api = { .api = UFFD_API, .features = features };

	*fd = (int)syscall(SYS_userfaultfd, O_CLOEXEC | O_NONBLOCK);
	if (*fd < 0 && errno == EPERM)
		*fd = (int)syscall(SYS_userfaultfd, O_CLOEXEC | O_NONBLOCK | 1 /* USER_MODE_ONLY */);
	if (*fd < 0)
		return -errno;
	if (ioctl(*fd, UFFDIO_API, &api)) {
		int r = -errno;

		close(*fd);
		return r;
	}
	return 0;
}

int bench_uffd_register(int fd, void *p, size_t len)
{
	struct uffdio_register reg = {
		.range = { .start = (uintptr_t)p, .len = len },
		.mode = UFFDIO_REGISTER_MODE_MISSING,
	};

	return ioctl(fd, UFFDIO_REGISTER, &reg) ? -errno : 0;
}

const struct bench_suite *const bench_suites[] = {
	&bench_suite_fault,
	&bench_suite_mirror,
	&bench_suite_migrate,
	&bench_suite_stream,
	&bench_suite_memory,
};
const size_t bench_nsuites = sizeof(bench_suites) / sizeof(bench_suites[0]);
