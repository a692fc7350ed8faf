/* SPDX-License-Identifier: MIT */
/*
 * mem.c - raw memory-management syscalls for uhmm's own use.
 *
 * libuhmm interposes munmap, mremap, madvise and mprotect (src/interpose.c)
 * so that devices hear of changes before they happen. uhmm's own mappings
 * (per-page state, device memory, bounce buffers) must not go through those
 * hooks, so uhmm calls the kernel directly here.
 */
#include <errno.h>
#include <sys/mman.h>
#include <sys/syscall.h>
#include <unistd.h>

#include "sys.h"

static int neg_errno(long r)
{
	return r == -1 ? -errno : (int)r;
}

int uhmm__sys_mmap(void **out, void *addr, size_t len, int prot, int flags, int fd, off_t off)
{
	long r = syscall(SYS_mmap, addr, len, prot, flags, fd, off);

	if (r == -1)
		return -errno;
	*out = (void *)r;
	return 0;
}

int uhmm__sys_munmap(void *addr, size_t len)
{
	return neg_errno(syscall(SYS_munmap, addr, len));
}

int uhmm__sys_madvise(void *addr, size_t len, int advice)
{
	return neg_errno(syscall(SYS_madvise, addr, len, advice));
}
