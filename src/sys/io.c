/* SPDX-License-Identifier: MIT */
/*
 * io.c - descriptors uhmm owns: read, write, poll, close, dup, eventfd.
 * Raw system calls: libuhmm interposes read/write (kaccess.c) and
 * close (fdguard.c) for the program's sake, and uhmm's own uses of its own
 * descriptors must not pass through those. Async-signal-safe.
 */
#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <sys/eventfd.h>
#include <sys/syscall.h>
#include <unistd.h>

#include "sys.h"

static long neg(long r)
{
	return r == -1 ? -errno : r;
}

ssize_t uhmm__sys_read(int fd, void *buf, size_t len)
{
	return neg(syscall(SYS_read, fd, buf, len));
}

ssize_t uhmm__sys_write(int fd, const void *buf, size_t len)
{
	return neg(syscall(SYS_write, fd, buf, len));
}

int uhmm__sys_poll(struct pollfd *fds, unsigned int n, int timeout_ms)
{
	struct timespec ts = { timeout_ms / 1000, (long)(timeout_ms % 1000) * 1000000 };

	return (int)neg(syscall(SYS_ppoll, fds, n, timeout_ms < 0 ? NULL : &ts, NULL, 0));
}

int uhmm__sys_close(int fd)
{
	return (int)neg(syscall(SYS_close, fd));
}

int uhmm__sys_dup(int fd)
{
	return (int)neg(syscall(SYS_fcntl, fd, F_DUPFD_CLOEXEC, 3));
}

int uhmm__sys_eventfd(void)
{
	return (int)neg(syscall(SYS_eventfd2, 0, EFD_CLOEXEC | EFD_NONBLOCK));
}
