/* SPDX-License-Identifier: MIT */
/*
 * lost_kernel_access ("Nothing lost" case 16): the kernel reads and writes
 * managed memory on the program's behalf (read(2) into a buffer never
 * touched, write(2) and send from a buffer on the device, recv into one).
 * In thread mode with a full userfaultfd the fault service serves those
 * accesses; in signal mode, or with a user-mode-only userfaultfd (an
 * unprivileged user), the kernel fails them with EFAULT instead, so uhmm
 * serves the I/O calls libc exports and retries them: the data is right
 * either way. Other system calls then still fail loudly with EFAULT
 * (docs/FAULTS.md), never with silent zeros.
 */
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/uio.h>

#include "devtest.h"

#define N 16

int main(void)
{
	struct uhmm_mm *mm = test_mm_new();
	struct uhmm_refdev *dev = test_dev_new(mm, 0);
	char *src = test_anon(N * PAGE_SIZE), *dst = uhmm_alloc(mm, N * PAGE_SIZE, 0);
	char *expect = malloc(N * PAGE_SIZE);
	int fds[2], sv[2];
	struct uhmm_caps caps;
	struct stat st;
	int r;

	test_deadline(60);
	CHECK(dst && expect);
	CHECK_EQ(pipe(fds), 0);
	CHECK_EQ(socketpair(AF_UNIX, SOCK_STREAM, 0, sv), 0);
	test_fill(src, 0, N, 22);
	memcpy(expect, src, N * PAGE_SIZE);
	CHECK_EQ(test_dev(dev, TO_DEV, src, 0, N, NULL, NULL), 0);

	/* write(2) from device pages, read(2) into never-touched ones. */
	for (size_t i = 0; i < N; i++) {
		CHECK_EQ(write(fds[1], src + i * PAGE_SIZE, PAGE_SIZE), PAGE_SIZE);
		CHECK_EQ(read(fds[0], dst + i * PAGE_SIZE, PAGE_SIZE), PAGE_SIZE);
	}
	CHECK(!memcmp(dst, expect, N * PAGE_SIZE));

	/* The same through sockets and vectors, from and into device pages. */
	CHECK_EQ(test_dev(dev, TO_DEV, src, 0, N, NULL, NULL), 0);
	CHECK_EQ(test_dev(dev, TO_DEV, dst, 0, N, NULL, NULL), 0);
	for (size_t i = 0; i < N; i += 2) {
		struct iovec iov[2] = { { src + i * PAGE_SIZE, PAGE_SIZE },
					{ src + (i + 1) * PAGE_SIZE, PAGE_SIZE } };
		struct iovec riov[2] = { { dst + i * PAGE_SIZE, PAGE_SIZE },
					 { dst + (i + 1) * PAGE_SIZE, PAGE_SIZE } };

		CHECK_EQ(writev(sv[0], iov, 2), 2 * PAGE_SIZE);
		for (size_t got = 0; got < 2 * PAGE_SIZE;) {
			ssize_t n = readv(sv[1], riov, 2);

			CHECK(n > 0);
			got += (size_t)n;
			for (size_t k = 0, left = (size_t)n; k < 2 && left; k++) {
				size_t take = left < riov[k].iov_len ? left : riov[k].iov_len;

				riov[k].iov_base = (char *)riov[k].iov_base + take;
				riov[k].iov_len -= take;
				left -= take;
			}
		}
	}
	CHECK(!memcmp(dst, expect, N * PAGE_SIZE));
	CHECK_EQ(test_dev(dev, TO_DEV, src, 0, 2, NULL, NULL), 0);
	CHECK_EQ(send(sv[0], src, PAGE_SIZE, 0), PAGE_SIZE);
	CHECK_EQ(test_dev(dev, TO_DEV, dst, 0, 2, NULL, NULL), 0);
	CHECK_EQ(recv(sv[1], dst + PAGE_SIZE, PAGE_SIZE, MSG_WAITALL), PAGE_SIZE);
	CHECK(!memcmp(dst + PAGE_SIZE, expect, PAGE_SIZE));

	/* Any other system call: served by the fault service, or EFAULT. */
	CHECK_EQ(test_dev(dev, TO_DEV, dst, 0, 1, NULL, NULL), 0);
	r = stat("/", (struct stat *)dst);
	uhmm_mm_caps(mm, &caps);
	if (uhmm_mm_fault_mode(mm) == UHMM_FAULT_SIGNAL || caps.user_mode_only) {
		CHECK(r == -1 && errno == EFAULT);
		CHECK(!memcmp(dst, expect, PAGE_SIZE)); /* and the data is still there */
	} else {
		CHECK_EQ(r, 0);
		CHECK_EQ(stat("/", &st), 0);
		CHECK_EQ(((struct stat *)dst)->st_ino, st.st_ino);
	}
	free(expect);
	uhmm_refdev_free(dev);
	uhmm_mm_free(mm);
	return 0;
}
