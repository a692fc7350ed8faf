/* SPDX-License-Identifier: MIT */
/*
 * util.c - allocation behind a fault-injection countdown, range checks, and
 * the version and error strings.
 */
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "internal.h"

/*
 * The countdown: > 0 counts acquisitions down to the one that fails; 0 is
 * off. Relaxed atomics: tests set it from one thread before the operation.
 */
static atomic_long inject_countdown;

void uhmm__inject_after(long n)
{
	atomic_store_explicit(&inject_countdown, n, memory_order_relaxed);
}

bool uhmm__inject_fail(void)
{
	long c = atomic_load_explicit(&inject_countdown, memory_order_relaxed);

	while (c > 0) {
		if (atomic_compare_exchange_weak_explicit(&inject_countdown, &c, c - 1,
							  memory_order_relaxed,
							  memory_order_relaxed))
			return c == 1;
	}
	return false;
}

void *uhmm__malloc(size_t size)
{
	return uhmm__inject_fail() ? NULL : malloc(size);
}

void *uhmm__calloc(size_t n, size_t size)
{
	return uhmm__inject_fail() ? NULL : calloc(n, size);
}

void *uhmm__realloc(void *p, size_t size)
{
	return uhmm__inject_fail() ? NULL : realloc(p, size);
}

void uhmm__free(void *p)
{
	free(p);
}

int uhmm__check_range(uintptr_t start, size_t len)
{
	if (!len || !uhmm__aligned(start) || !uhmm__aligned(len))
		return -EINVAL;
	if (start + len < start)
		return -EINVAL;
	return 0;
}

UHMM__EXPORT const char *uhmm_version(void)
{
	return "0.1.0";
}

UHMM__EXPORT const char *uhmm_strerror(int err)
{
	switch (-err) {
	case 0:
		return "success";
	case EINVAL:
		return "invalid argument (unaligned, zero or overflowing range, unknown flag)";
	case ENOMEM:
		return "range not mapped, or out of memory";
	case EEXIST:
		return "range already managed differently (other flags or another uhmm_mm)";
	case EOPNOTSUPP:
		return "mapping kind or kernel feature not supported";
	case EPERM:
		return "operation not permitted";
	case EFAULT:
		return "bad address or protection violation";
	case EBUSY:
		return "busy: state changed underneath, retry";
	case ENOENT:
		return "no such page or mapping to act on";
	default:
		return strerror(-err);
	}
}
