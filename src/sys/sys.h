/* SPDX-License-Identifier: MIT */
/*
 * sys.h - the syscall layer: every syscall and ioctl uhmm makes goes through
 * here, and -1/errno becomes -errno here, once. Every fd is O_CLOEXEC.
 *
 * The raw memory syscalls (uhmm__sys_munmap, ...) bypass libuhmm's own
 * interposed munmap/mremap/madvise/mprotect: uhmm's internal mappings must
 * never be mistaken for a program's.
 *
 * All functions here are async-signal-safe unless marked otherwise: the
 * signal-mode fault handler uses the fill/move/wake calls.
 */
#ifndef UHMM_SYS_H
#define UHMM_SYS_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

#include "uapi.h"

/* --- userfaultfd (uffd.c) --------------------------------------------- */

/* How uhmm__uffd_open() got its fd. */
struct uhmm__uffd_origin {
	bool user_mode_only;
	bool dev_userfaultfd;
};

/*
 * Open a non-blocking, close-on-exec userfaultfd: the syscall; if refused,
 * the syscall with UFFD_USER_MODE_ONLY (unprivileged users under
 * vm.unprivileged_userfaultfd=0); then /dev/userfaultfd. Not AS-safe.
 * Return: fd, or -errno from the last attempt (-EPERM, -ENOSYS, ...).
 */
int uhmm__uffd_open(struct uhmm__uffd_origin *origin);

/*
 * UFFDIO_API handshake: asks for @want, of which the kernel must grant all.
 * @features_out: the features granted. @ioctls_out: the ioctls offered.
 * A userfaultfd accepts exactly one handshake.
 */
int uhmm__uffd_api(int fd, uint64_t want, uint64_t *features_out, uint64_t *ioctls_out);

/* The feature bits the kernel offers, from a throwaway fd. */
int uhmm__uffd_probe(uint64_t *features, uint64_t *ioctls, struct uhmm__uffd_origin *origin);

int uhmm__uffd_register(int fd, uintptr_t start, size_t len, uint64_t mode, uint64_t *ioctls);
int uhmm__uffd_unregister(int fd, uintptr_t start, size_t len);

/*
 * The fill calls return 0, or -errno; -EEXIST means another thread already
 * resolved the page (not an error for a fault handler); -EAGAIN means the
 * mapping changed under the call (retry or give up and wake).
 * @done, when not NULL, receives the bytes handled before an error.
 */
int uhmm__uffd_copy(int fd, uintptr_t dst, const void *src, size_t len, uint64_t mode,
		    size_t *done);
int uhmm__uffd_zeropage(int fd, uintptr_t dst, size_t len, uint64_t mode, size_t *done);
int uhmm__uffd_move(int fd, uintptr_t dst, uintptr_t src, size_t len, uint64_t mode,
		    size_t *done);
int uhmm__uffd_wake(int fd, uintptr_t start, size_t len);

/* Name of a UFFD_FEATURE_* bit (index 0..63), or NULL if unknown. */
const char *uhmm__uffd_feature_name(unsigned int bit);

/* --- PAGEMAP_SCAN (pagemap.c) ------------------------------------------ */

/* Open /proc/self/pagemap (O_RDONLY|O_CLOEXEC). Return fd or -errno. */
int uhmm__pagemap_open(void);

/*
 * One PAGEMAP_SCAN ioctl over [start, end). Fills at most @vec_len regions
 * whose categories match @mask (all of its bits, where @inverted flips them)
 * and reports @return_mask categories.
 * Return: the number of regions written, or -errno (-ENOTTY: no PAGEMAP_SCAN).
 * @walk_end: where the kernel stopped.
 */
long uhmm__pagemap_scan(int fd, uintptr_t start, uintptr_t end, struct page_region *vec,
			size_t vec_len, uint64_t mask, uint64_t inverted, uint64_t anyof,
			uint64_t return_mask, uintptr_t *walk_end);

/*
 * Visit every region of [start, end) matching the categories, correcting for
 * the kernel's walk_end bug (DESIGN.md §6): when a scan returns more than
 * 512 regions walk_end can lie before the end, so the walk stops on a short
 * batch and otherwise restarts at the later of walk_end and the last region.
 * @cb returns 0 to continue or non-zero to stop (that value is returned).
 * Not AS-safe.
 */
typedef int (*uhmm__region_cb)(void *arg, const struct page_region *r);
int uhmm__pagemap_walk(int fd, uintptr_t start, uintptr_t end, uint64_t anyof,
		       uint64_t return_mask, uhmm__region_cb cb, void *arg);

/* --- VMA lookup (procmap.c) -------------------------------------------- */

struct uhmm__vma {
	uintptr_t start, end;
	uint64_t page_size; /* the VMA's page size: > 4096 only for hugetlb */
	uint64_t inode;
	uint64_t offset;
	bool read, write, exec, shared;
	bool file;    /* backed by a file (shmem files included) */
	bool special; /* [vdso], [vvar], ...: userfaultfd cannot take it */
	char name[64];
};

/* Open /proc/self/maps (O_RDONLY|O_CLOEXEC). Return fd or -errno. */
int uhmm__maps_open(void);

/*
 * The VMA covering @addr, or the next one above it when @next is true.
 * Uses PROCMAP_QUERY, falling back to parsing the text (kernels < 6.11).
 * Return: 0, -ENOENT when there is none, or -errno.
 */
int uhmm__vma_query(int maps_fd, uintptr_t addr, bool next, struct uhmm__vma *vma);

/* Does the kernel answer PROCMAP_QUERY on this fd? */
bool uhmm__procmap_query_works(int maps_fd);

/* --- raw memory syscalls (not interposed) ------------------------------ */

/* Return 0 and the mapping in *out, or -errno. */
int uhmm__sys_mmap(void **out, void *addr, size_t len, int prot, int flags, int fd, off_t off);
int uhmm__sys_munmap(void *addr, size_t len);
int uhmm__sys_madvise(void *addr, size_t len, int advice);

/* --- descriptors (io.c): raw, never through libuhmm's interposers ------- */

struct pollfd;
/* Return bytes, or -errno. */
ssize_t uhmm__sys_read(int fd, void *buf, size_t len);
ssize_t uhmm__sys_write(int fd, const void *buf, size_t len);
/* ppoll with a timeout in ms (-1: none). Return ready count or -errno. */
int uhmm__sys_poll(struct pollfd *fds, unsigned int n, int timeout_ms);
int uhmm__sys_close(int fd);
/* A close-on-exec duplicate numbered 3 or above. Return it or -errno. */
int uhmm__sys_dup(int fd);
/* A non-blocking, close-on-exec eventfd. Return it or -errno. */
int uhmm__sys_eventfd(void);

/* --- threads (sync.c) ------------------------------------------------------ */

/* Sleep while *@addr == @val, at most @timeout_ns (-1: no bound). 0 or -errno
 * (-ETIMEDOUT, -EAGAIN when the value already moved, -EINTR). */
int uhmm__futex_wait(const unsigned int *addr, unsigned int val, long timeout_ns);
/* Wake every thread sleeping on @addr. */
void uhmm__futex_wake(const unsigned int *addr);
/* Send @sig to thread @tid of process @tgid. 0 or -errno. */
int uhmm__sys_tgkill(pid_t tgid, pid_t tid, int sig);

#endif /* UHMM_SYS_H */
