/* SPDX-License-Identifier: MIT */
/*
 * kaccess.c - the kernel reading and writing managed memory on the
 * program's behalf, where the fault service cannot serve it.
 *
 * In signal mode (UFFD_FEATURE_SIGBUS), and with a user-mode-only
 * userfaultfd (an unprivileged process), a fault the kernel takes inside a
 * system call on a managed page that is not present (never touched, on a
 * device, in transit) fails the call with EFAULT instead of reaching uhmm.
 * Programs treat that as an I/O error, and data is lost quietly.
 *
 * So libuhmm defines the calls that move a program's buffers in bulk:
 * read, write, pread(64), pwrite(64), readv, writev, preadv, pwritev,
 * recv, recvfrom, recvmsg, send, sendto, sendmsg, and glibc's fortified
 * __read_chk, __pread64_chk, __recv_chk, __recvfrom_chk. When one fails
 * with EFAULT and a buffer lies in managed memory of such an mm, uhmm
 * resolves those pages as a user-mode read fault would (device pages come
 * home, untouched ones map the zero page) and calls again, a bounded
 * number of times. A call that fails with EFAULT has
 * transferred nothing (the kernel returns a short count otherwise), so
 * calling again repeats nothing. Calls that succeed pay one indirect call.
 *
 * Other system calls that write into managed memory that is not present
 * (stat, getdents through readdir's buffer, ...) still fail with EFAULT in
 * those modes: docs/FAULTS.md.
 */
#include <dlfcn.h>
#include <errno.h>
#include <sys/socket.h>
#include <sys/syscall.h>
#include <sys/uio.h>
#include <unistd.h>

#include "internal.h"

#define RETRIES 32

/* glibc's fortified entry points, declared only under _FORTIFY_SOURCE. */
ssize_t __read_chk(int fd, void *buf, size_t n, size_t buflen);
ssize_t __pread64_chk(int fd, void *buf, size_t n, off_t off, size_t buflen);
ssize_t __pread_chk(int fd, void *buf, size_t n, off_t off, size_t buflen);
ssize_t __recv_chk(int fd, void *buf, size_t n, size_t buflen, int flags);
ssize_t __recvfrom_chk(int fd, void *buf, size_t n, size_t buflen, int flags, struct sockaddr *sa,
		       socklen_t *salen);

enum {
	K_READ, K_WRITE, K_PREAD, K_PWRITE, K_READV, K_WRITEV, K_PREADV, K_PWRITEV,
	K_RECVFROM, K_SENDTO, K_RECVMSG, K_SENDMSG, K_READ_CHK, K_PREAD_CHK, K_RECV_CHK,
	K_RECVFROM_CHK, K_COUNT
};

static const char *const names[K_COUNT] = {
	"read", "write", "pread64", "pwrite64", "readv", "writev", "preadv64", "pwritev64",
	"recvfrom", "sendto", "recvmsg", "sendmsg", "__read_chk", "__pread64_chk",
	"__recv_chk", "__recvfrom_chk",
};

/* The next definitions (libc's, or a sanitizer's), resolved from uhmm_mm_new(). */
static void *_Atomic next[K_COUNT];

void uhmm__kaccess_init(void)
{
	for (int i = 0; i < K_COUNT; i++)
		atomic_store(&next[i], dlsym(RTLD_NEXT, names[i]));
}

/*
 * Bring in every page of [p, p+len) that @mm manages, as a read fault from
 * user mode would (a device page comes home, an untouched one maps the
 * zero page, which the kernel's write then replaces), without touching it:
 * a buffer the program unmaps meanwhile gives EFAULT again, never SIGSEGV.
 */
static bool bring_in(struct uhmm_mm *mm, const char *p, size_t len)
{
	uintptr_t s = (uintptr_t)p & ~(uintptr_t)(UHMM__PAGE_SIZE - 1), e = (uintptr_t)p + len;
	bool any = false;

	for (uintptr_t a = s; a < e && a >= s; a += UHMM__PAGE_SIZE) {
		bool managed;

		uhmm__lock(&mm->lock);
		managed = uhmm__area_find(&mm->areas, a) != NULL;
		uhmm__unlock(&mm->lock);
		if (managed) {
			uhmm__fault_resolve(mm, a, false, true);
			any = true;
		}
	}
	return any;
}

/* Did the call fail for a managed page uhmm can bring in? Then touch it. */
static bool refault(const struct iovec *iov, size_t n)
{
	bool any = false;

	uhmm__registry_enter();
	for (int i = 0; i < UHMM__MAX_MMS; i++) {
		struct uhmm_mm *mm = uhmm__mm_slot(i);

		if (!mm || !uhmm__mm_live(mm) || mm->pid != getpid() ||
		    (mm->mode != UHMM_FAULT_SIGNAL && !mm->caps.user_mode_only))
			continue;
		for (size_t k = 0; k < n; k++)
			any |= bring_in(mm, iov[k].iov_base, iov[k].iov_len);
	}
	uhmm__registry_exit();
	return any;
}

/* Call again? Only after EFAULT on a buffer in managed memory. */
static bool again(ssize_t r, const struct iovec *iov, size_t n, int *tries)
{
	int saved = errno;

	if (r != -1 || saved != EFAULT || ++*tries > RETRIES ||
	    !atomic_load_explicit(&uhmm__mm_count, memory_order_relaxed) || !refault(iov, n)) {
		errno = saved;
		return false;
	}
	return true;
}

#define NEXT(k, type) ((type)atomic_load_explicit(&next[k], memory_order_acquire))
#define LOOP(call, iov, n)                              \
	do {                                            \
		ssize_t r_;                             \
		int tries_ = 0;                         \
		do                                      \
			r_ = (call);                    \
		while (again(r_, (iov), (n), &tries_)); \
		return r_;                              \
	} while (0)

typedef ssize_t (*rw_fn)(int, void *, size_t);
typedef ssize_t (*prw_fn)(int, void *, size_t, off_t);
typedef ssize_t (*rwv_fn)(int, const struct iovec *, int);
typedef ssize_t (*prwv_fn)(int, const struct iovec *, int, off_t);
typedef ssize_t (*from_fn)(int, void *, size_t, int, struct sockaddr *, socklen_t *);
typedef ssize_t (*to_fn)(int, const void *, size_t, int, const struct sockaddr *, socklen_t);
typedef ssize_t (*msg_fn)(int, const struct msghdr *, int);
typedef ssize_t (*chk_fn)(int, void *, size_t, size_t);
typedef ssize_t (*pchk_fn)(int, void *, size_t, off_t, size_t);
typedef ssize_t (*rchk_fn)(int, void *, size_t, size_t, int);
typedef ssize_t (*fchk_fn)(int, void *, size_t, size_t, int, struct sockaddr *, socklen_t *);

static ssize_t do_read(int fd, void *buf, size_t n)
{
	rw_fn f = NEXT(K_READ, rw_fn);

	return f ? f(fd, buf, n) : syscall(SYS_read, fd, buf, n);
}

static ssize_t do_write(int fd, const void *buf, size_t n)
{
	rw_fn f = NEXT(K_WRITE, rw_fn);

	return f ? f(fd, (void *)buf, n) : syscall(SYS_write, fd, buf, n);
}

static ssize_t do_pread(int fd, void *buf, size_t n, off_t off)
{
	prw_fn f = NEXT(K_PREAD, prw_fn);

	return f ? f(fd, buf, n, off) : syscall(SYS_pread64, fd, buf, n, off);
}

static ssize_t do_pwrite(int fd, const void *buf, size_t n, off_t off)
{
	prw_fn f = NEXT(K_PWRITE, prw_fn);

	return f ? f(fd, (void *)buf, n, off) : syscall(SYS_pwrite64, fd, buf, n, off);
}

UHMM__EXPORT ssize_t read(int fd, void *buf, size_t n)
{
	struct iovec v = { buf, n };

	LOOP(do_read(fd, buf, n), &v, 1);
}

UHMM__EXPORT ssize_t write(int fd, const void *buf, size_t n)
{
	struct iovec v = { (void *)buf, n };

	LOOP(do_write(fd, buf, n), &v, 1);
}

UHMM__EXPORT ssize_t pread64(int fd, void *buf, size_t n, off_t off)
{
	struct iovec v = { buf, n };

	LOOP(do_pread(fd, buf, n, off), &v, 1);
}

UHMM__EXPORT ssize_t pwrite64(int fd, const void *buf, size_t n, off_t off)
{
	struct iovec v = { (void *)buf, n };

	LOOP(do_pwrite(fd, buf, n, off), &v, 1);
}

/* On LP64 the 64-bit offset calls are the plain ones. */
UHMM__EXPORT ssize_t pread(int fd, void *buf, size_t n, off_t off) __attribute__((alias("pread64")));
UHMM__EXPORT ssize_t pwrite(int fd, const void *buf, size_t n, off_t off)
	__attribute__((alias("pwrite64")));

UHMM__EXPORT ssize_t readv(int fd, const struct iovec *iov, int n)
{
	rwv_fn f = NEXT(K_READV, rwv_fn);

	LOOP(f ? f(fd, iov, n) : syscall(SYS_readv, fd, iov, n), iov, n > 0 ? (size_t)n : 0);
}

UHMM__EXPORT ssize_t writev(int fd, const struct iovec *iov, int n)
{
	rwv_fn f = NEXT(K_WRITEV, rwv_fn);

	LOOP(f ? f(fd, iov, n) : syscall(SYS_writev, fd, iov, n), iov, n > 0 ? (size_t)n : 0);
}

UHMM__EXPORT ssize_t preadv64(int fd, const struct iovec *iov, int n, off_t off)
{
	prwv_fn f = NEXT(K_PREADV, prwv_fn);

	LOOP(f ? f(fd, iov, n, off) : syscall(SYS_preadv, fd, iov, n, off, 0), iov,
	     n > 0 ? (size_t)n : 0);
}

UHMM__EXPORT ssize_t pwritev64(int fd, const struct iovec *iov, int n, off_t off)
{
	prwv_fn f = NEXT(K_PWRITEV, prwv_fn);

	LOOP(f ? f(fd, iov, n, off) : syscall(SYS_pwritev, fd, iov, n, off, 0), iov,
	     n > 0 ? (size_t)n : 0);
}

UHMM__EXPORT ssize_t preadv(int fd, const struct iovec *iov, int n, off_t off)
	__attribute__((alias("preadv64")));
UHMM__EXPORT ssize_t pwritev(int fd, const struct iovec *iov, int n, off_t off)
	__attribute__((alias("pwritev64")));

UHMM__EXPORT ssize_t recvfrom(int fd, void *buf, size_t n, int flags, struct sockaddr *sa,
			      socklen_t *salen)
{
	from_fn f = NEXT(K_RECVFROM, from_fn);
	struct iovec v = { buf, n };

	LOOP(f ? f(fd, buf, n, flags, sa, salen) : syscall(SYS_recvfrom, fd, buf, n, flags, sa, salen),
	     &v, 1);
}

UHMM__EXPORT ssize_t recv(int fd, void *buf, size_t n, int flags)
{
	return recvfrom(fd, buf, n, flags, NULL, NULL);
}

UHMM__EXPORT ssize_t sendto(int fd, const void *buf, size_t n, int flags,
			    const struct sockaddr *sa, socklen_t salen)
{
	to_fn f = NEXT(K_SENDTO, to_fn);
	struct iovec v = { (void *)buf, n };

	LOOP(f ? f(fd, buf, n, flags, sa, salen) : syscall(SYS_sendto, fd, buf, n, flags, sa, salen),
	     &v, 1);
}

UHMM__EXPORT ssize_t send(int fd, const void *buf, size_t n, int flags)
{
	return sendto(fd, buf, n, flags, NULL, 0);
}

UHMM__EXPORT ssize_t recvmsg(int fd, struct msghdr *msg, int flags)
{
	msg_fn f = NEXT(K_RECVMSG, msg_fn);

	LOOP(f ? f(fd, msg, flags) : syscall(SYS_recvmsg, fd, msg, flags), msg->msg_iov,
	     msg->msg_iovlen);
}

UHMM__EXPORT ssize_t sendmsg(int fd, const struct msghdr *msg, int flags)
{
	msg_fn f = NEXT(K_SENDMSG, msg_fn);

	LOOP(f ? f(fd, msg, flags) : syscall(SYS_sendmsg, fd, msg, flags), msg->msg_iov,
	     msg->msg_iovlen);
}

/*
 * glibc's fortified entry points (_FORTIFY_SOURCE): the size check is
 * theirs, so without them (before uhmm_mm_new) the call goes through the
 * plain one above, whose checking glibc already did at compile time.
 */
UHMM__EXPORT ssize_t __read_chk(int fd, void *buf, size_t n, size_t buflen)
{
	chk_fn f = NEXT(K_READ_CHK, chk_fn);
	struct iovec v = { buf, n };

	LOOP(f ? f(fd, buf, n, buflen) : do_read(fd, buf, n), &v, 1);
}

UHMM__EXPORT ssize_t __pread64_chk(int fd, void *buf, size_t n, off_t off, size_t buflen)
{
	pchk_fn f = NEXT(K_PREAD_CHK, pchk_fn);
	struct iovec v = { buf, n };

	LOOP(f ? f(fd, buf, n, off, buflen) : do_pread(fd, buf, n, off), &v, 1);
}

UHMM__EXPORT ssize_t __pread_chk(int fd, void *buf, size_t n, off_t off, size_t buflen)
	__attribute__((alias("__pread64_chk")));

UHMM__EXPORT ssize_t __recv_chk(int fd, void *buf, size_t n, size_t buflen, int flags)
{
	rchk_fn f = NEXT(K_RECV_CHK, rchk_fn);
	struct iovec v = { buf, n };

	LOOP(f ? f(fd, buf, n, buflen, flags) : recvfrom(fd, buf, n, flags, NULL, NULL), &v, 1);
}

UHMM__EXPORT ssize_t __recvfrom_chk(int fd, void *buf, size_t n, size_t buflen, int flags,
				    struct sockaddr *sa, socklen_t *salen)
{
	fchk_fn f = NEXT(K_RECVFROM_CHK, fchk_fn);
	struct iovec v = { buf, n };

	LOOP(f ? f(fd, buf, n, buflen, flags, sa, salen) : recvfrom(fd, buf, n, flags, sa, salen),
	     &v, 1);
}
