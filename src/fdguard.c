/* SPDX-License-Identifier: MIT */
/*
 * fdguard.c - uhmm's descriptors survive the program's close-everything
 * sweeps.
 *
 * Closing the userfaultfd unregisters every managed range: a page whose
 * data is on a device would then read as zeros, silently. Daemons close all
 * descriptors they did not open (closefrom(3), close_range(2), a loop of
 * close(2)), and some dup2() over numbers they consider free. So libuhmm
 * defines these entry points, as it does the memory calls (interpose.c):
 *
 *   close(fd)              on a descriptor of a live mm: not closed, 0
 *   close_range(), closefrom()   close everything else in the range
 *   dup2(), dup3()         onto a descriptor of a live mm: -1, EBUSY
 *
 * Behind libc's back (the raw system calls) uhmm cannot refuse; it keeps a
 * duplicate of the userfaultfd (mm->uffd_anchor) so that closing one number
 * does not unregister anything, and the first use that finds a descriptor
 * gone or replaced (poll's POLLNVAL, read or ioctl failing with EBADF or
 * ENOTTY, a message no userfaultfd writes) ends the process with a message
 * (uhmm__fd_lost): loud, never zeros. A fork child's copies of the mms are
 * not protected: the child may close what it inherited.
 */
#include <dlfcn.h>
#include <errno.h>
#include <stdlib.h>
#include <sys/syscall.h>
#include <unistd.h>

#include "internal.h"

#ifndef CLOSE_RANGE_CLOEXEC
#define CLOSE_RANGE_CLOEXEC (1U << 2)
#endif

typedef int (*close_fn)(int);
typedef int (*close_range_fn)(unsigned int, unsigned int, int);
typedef int (*dup2_fn)(int, int);
typedef int (*dup3_fn)(int, int, int);

/* The next definitions (libc's or a sanitizer's), resolved from uhmm_mm_new(). */
static void *_Atomic next_close_p, *_Atomic next_close_range_p, *_Atomic next_dup2_p,
	*_Atomic next_dup3_p;

void uhmm__fdguard_init(void)
{
	atomic_store(&next_close_p, dlsym(RTLD_NEXT, "close"));
	atomic_store(&next_close_range_p, dlsym(RTLD_NEXT, "close_range"));
	atomic_store(&next_dup2_p, dlsym(RTLD_NEXT, "dup2"));
	atomic_store(&next_dup3_p, dlsym(RTLD_NEXT, "dup3"));
}

static int next_close(int fd)
{
	close_fn f = (close_fn)atomic_load(&next_close_p);

	return f ? f(fd) : (int)syscall(SYS_close, fd);
}

static int next_close_range(unsigned int first, unsigned int last, int flags)
{
	close_range_fn f = (close_range_fn)atomic_load(&next_close_range_p);

	return f ? f(first, last, flags) : (int)syscall(SYS_close_range, first, last, flags);
}

static const int *mm_fds(const struct uhmm_mm *mm, int *n)
{
	*n = 6;
	return &mm->uffd; /* uffd .. stop_fd are consecutive ints (internal.h) */
}

_Static_assert(offsetof(struct uhmm_mm, uffd_anchor) == offsetof(struct uhmm_mm, uffd) + sizeof(int) &&
		       offsetof(struct uhmm_mm, stop_fd) == offsetof(struct uhmm_mm, uffd) + 5 * sizeof(int),
	       "the descriptors of an mm are six consecutive ints");

bool uhmm__fd_is_ours(int fd)
{
	bool r = false;

	if (fd < 0 || !atomic_load_explicit(&uhmm__mm_count, memory_order_relaxed))
		return false;
	uhmm__registry_enter();
	for (int i = 0; i < UHMM__MAX_MMS && !r; i++) {
		struct uhmm_mm *mm = uhmm__mm_slot(i);
		const int *fds;
		int n;

		if (!mm || !uhmm__mm_live(mm) || mm->pid != getpid())
			continue;
		fds = mm_fds(mm, &n);
		for (int k = 0; k < n; k++)
			r |= fds[k] == fd;
	}
	uhmm__registry_exit();
	return r;
}

UHMM__EXPORT int close(int fd)
{
	if (uhmm__fd_is_ours(fd))
		return 0; /* uhmm's: it stays open (see above) */
	return next_close(fd);
}

static int cmp_int(const void *a, const void *b)
{
	return *(const int *)a - *(const int *)b;
}

/* Our descriptors in [first, last], sorted. Return how many. */
static int ours_in(unsigned int first, unsigned int last, int *out, int max)
{
	int n = 0;

	uhmm__registry_enter();
	for (int i = 0; i < UHMM__MAX_MMS; i++) {
		struct uhmm_mm *mm = uhmm__mm_slot(i);
		const int *fds;
		int k;

		if (!mm || !uhmm__mm_live(mm) || mm->pid != getpid())
			continue;
		fds = mm_fds(mm, &k);
		while (k--)
			if (fds[k] >= 0 && (unsigned int)fds[k] >= first &&
			    (unsigned int)fds[k] <= last && n < max)
				out[n++] = fds[k];
	}
	uhmm__registry_exit();
	qsort(out, (size_t)n, sizeof(*out), cmp_int);
	return n;
}

UHMM__EXPORT int close_range(unsigned int first, unsigned int last, int flags)
{
	int fds[6 * UHMM__MAX_MMS], n, r = 0;
	unsigned int from = first;

	if ((flags & CLOSE_RANGE_CLOEXEC) || first > last ||
	    !(n = ours_in(first, last, fds, 6 * UHMM__MAX_MMS)))
		return next_close_range(first, last, flags);
	/* Close the gaps between uhmm's descriptors. */
	for (int i = 0; i < n && !r; i++) {
		if ((unsigned int)fds[i] > from)
			r = next_close_range(from, (unsigned int)fds[i] - 1, flags);
		from = (unsigned int)fds[i] + 1;
	}
	if (!r && from && from <= last)
		r = next_close_range(from, last, flags);
	return r;
}

UHMM__EXPORT void closefrom(int lowfd)
{
	if (close_range(lowfd < 0 ? 0 : (unsigned int)lowfd, ~0U, 0) == 0)
		return;
	/* Without close_range: one at a time, as glibc falls back to. */
	for (long fd = lowfd < 0 ? 0 : lowfd, max = sysconf(_SC_OPEN_MAX); fd < max; fd++)
		close((int)fd);
}

UHMM__EXPORT int dup2(int oldfd, int newfd)
{
	dup2_fn f = (dup2_fn)atomic_load(&next_dup2_p);

	if (oldfd != newfd && uhmm__fd_is_ours(newfd)) {
		errno = EBUSY; /* it would close uhmm's descriptor */
		return -1;
	}
	return f ? f(oldfd, newfd) : (int)syscall(SYS_dup2, oldfd, newfd);
}

UHMM__EXPORT int dup3(int oldfd, int newfd, int flags)
{
	dup3_fn f = (dup3_fn)atomic_load(&next_dup3_p);

	if (oldfd != newfd && uhmm__fd_is_ours(newfd)) {
		errno = EBUSY;
		return -1;
	}
	return f ? f(oldfd, newfd, flags) : (int)syscall(SYS_dup3, oldfd, newfd, flags);
}

static void say(const char *s)
{
	size_t n = 0;

	while (s[n])
		n++;
	if (write(2, s, n) < 0)
		return;
}

void uhmm__fd_lost(struct uhmm_mm *mm, int fd, int err)
{
	char num[16], *p = num + sizeof(num);
	unsigned int v = fd < 0 ? 0 : (unsigned int)fd;

	(void)mm;
	(void)err;
	*--p = 0;
	do
		*--p = (char)('0' + v % 10);
	while ((v /= 10));
	say("uhmm: descriptor ");
	say(p);
	say(" (uhmm's userfaultfd) was closed or replaced behind libc's back (a raw close, "
	    "close_range or dup2 system call); managed pages on devices would read as zeros\n");
	uhmm__misuse("aborting instead of losing data (docs/FAULTS.md, \"Descriptors\")");
}
