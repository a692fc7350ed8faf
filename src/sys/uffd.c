/* SPDX-License-Identifier: MIT */
/*
 * uffd.c - userfaultfd: creation, the API handshake, registration and the
 * resolving ioctls. Thin: one ioctl per function, -errno out.
 *
 * Creation order (admin-guide/mm/userfaultfd.rst): the syscall as is; when
 * the kernel refuses it (vm.unprivileged_userfaultfd=0 and no
 * CAP_SYS_PTRACE) the syscall with UFFD_USER_MODE_ONLY, which is always
 * allowed but cannot catch faults the kernel takes on the program's behalf;
 * then /dev/userfaultfd, whose permissions an administrator can open to a
 * group. The fill ioctls are async-signal-safe (signal fault mode).
 */
#include <errno.h>
#include <fcntl.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/syscall.h>
#include <unistd.h>

#include "sys.h"

static int xioctl(int fd, unsigned long req, void *arg)
{
	return ioctl(fd, req, arg) == -1 ? -errno : 0;
}

int uhmm__uffd_open(struct uhmm__uffd_origin *origin)
{
	const int flags = O_CLOEXEC | O_NONBLOCK;
	int fd, err, devfd;

	memset(origin, 0, sizeof(*origin));
	fd = (int)syscall(SYS_userfaultfd, flags);
	if (fd >= 0)
		return fd;
	err = -errno;
	if (err == -EPERM) {
		fd = (int)syscall(SYS_userfaultfd, flags | UFFD_USER_MODE_ONLY);
		if (fd >= 0) {
			origin->user_mode_only = true;
			return fd;
		}
	}
	devfd = open("/dev/userfaultfd", O_RDWR | O_CLOEXEC);
	if (devfd < 0)
		return err; /* the syscall's reason says more than the node's */
	fd = ioctl(devfd, USERFAULTFD_IOC_NEW, flags);
	if (fd < 0)
		fd = -errno;
	else
		origin->dev_userfaultfd = true;
	uhmm__sys_close(devfd);
	return fd;
}

int uhmm__uffd_api(int fd, uint64_t want, uint64_t *features_out, uint64_t *ioctls_out)
{
	struct uffdio_api api = { .api = UFFD_API, .features = want };
	int r = xioctl(fd, UFFDIO_API, &api);

	if (r)
		return r;
	if ((api.features & want) != want)
		return -EOPNOTSUPP;
	if (features_out)
		*features_out = api.features;
	if (ioctls_out)
		*ioctls_out = api.ioctls;
	return 0;
}

int uhmm__uffd_probe(uint64_t *features, uint64_t *ioctls, struct uhmm__uffd_origin *origin)
{
	int fd = uhmm__uffd_open(origin);
	int r;

	if (fd < 0)
		return fd;
	/* Features 0 asks for nothing and reports everything the kernel has. */
	r = uhmm__uffd_api(fd, 0, features, ioctls);
	uhmm__sys_close(fd);
	return r;
}

int uhmm__uffd_register(int fd, uintptr_t start, size_t len, uint64_t mode, uint64_t *ioctls)
{
	struct uffdio_register reg = { .range = { .start = start, .len = len }, .mode = mode };
	int r = xioctl(fd, UFFDIO_REGISTER, &reg);

	if (!r && ioctls)
		*ioctls = reg.ioctls;
	return r;
}

int uhmm__uffd_unregister(int fd, uintptr_t start, size_t len)
{
	struct uffdio_range range = { .start = start, .len = len };

	return xioctl(fd, UFFDIO_UNREGISTER, &range);
}

/* The fill ioctls report progress in a field; turn it into (ret, done). */
static int fill_result(int r, int64_t progress, size_t *done)
{
	if (done)
		*done = progress > 0 ? (size_t)progress : 0;
	if (r == 0 && progress < 0)
		r = (int)progress;
	return r;
}

int uhmm__uffd_copy(int fd, uintptr_t dst, const void *src, size_t len, uint64_t mode,
		    size_t *done)
{
	struct uffdio_copy c = { .dst = dst, .src = (uintptr_t)src, .len = len, .mode = mode };
	int r = xioctl(fd, UFFDIO_COPY, &c);

	return fill_result(r, c.copy, done);
}

int uhmm__uffd_zeropage(int fd, uintptr_t dst, size_t len, uint64_t mode, size_t *done)
{
	struct uffdio_zeropage z = { .range = { .start = dst, .len = len }, .mode = mode };
	int r = xioctl(fd, UFFDIO_ZEROPAGE, &z);

	return fill_result(r, z.zeropage, done);
}

int uhmm__uffd_move(int fd, uintptr_t dst, uintptr_t src, size_t len, uint64_t mode,
		    size_t *done)
{
	struct uffdio_move m = { .dst = dst, .src = src, .len = len, .mode = mode };
	int r = xioctl(fd, UFFDIO_MOVE, &m);

	return fill_result(r, m.move, done);
}

int uhmm__uffd_wake(int fd, uintptr_t start, size_t len)
{
	struct uffdio_range range = { .start = start, .len = len };

	return xioctl(fd, UFFDIO_WAKE, &range);
}

static const char *const feature_names[] = {
	"PAGEFAULT_FLAG_WP", "EVENT_FORK",	 "EVENT_REMAP",	    "EVENT_REMOVE",
	"MISSING_HUGETLBFS", "MISSING_SHMEM",	 "EVENT_UNMAP",	    "SIGBUS",
	"THREAD_ID",	     "MINOR_HUGETLBFS",	 "MINOR_SHMEM",	    "EXACT_ADDRESS",
	"WP_HUGETLBFS_SHMEM", "WP_UNPOPULATED",	 "POISON",	    "WP_ASYNC",
	"MOVE",
};

const char *uhmm__uffd_feature_name(unsigned int bit)
{
	if (bit < sizeof(feature_names) / sizeof(feature_names[0]))
		return feature_names[bit];
	return NULL;
}
