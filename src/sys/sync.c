/* SPDX-License-Identifier: MIT */
/*
 * sync.c - futexes and signals to one thread. Async-signal-safe:
 * the signal-mode fault handler sleeps on a futex.
 */
#include <errno.h>
#include <limits.h>
#include <linux/futex.h>
#include <signal.h>
#include <sys/syscall.h>
#include <time.h>
#include <unistd.h>

#include "sys.h"

int uhmm__futex_wait(const unsigned int *addr, unsigned int val, long timeout_ns)
{
	struct timespec ts = { timeout_ns / 1000000000L, timeout_ns % 1000000000L };
	long r = syscall(SYS_futex, addr, FUTEX_WAIT_PRIVATE, val, timeout_ns < 0 ? NULL : &ts,
			 NULL, 0);

	return r == -1 ? -errno : 0;
}

void uhmm__futex_wake(const unsigned int *addr)
{
	syscall(SYS_futex, addr, FUTEX_WAKE_PRIVATE, INT_MAX, NULL, NULL, 0);
}

int uhmm__sys_tgkill(pid_t tgid, pid_t tid, int sig)
{
	return syscall(SYS_tgkill, tgid, tid, sig) == -1 ? -errno : 0;
}
