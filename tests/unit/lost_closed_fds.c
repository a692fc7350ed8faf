/* SPDX-License-Identifier: MIT */
/*
 * lost_closed_fds ("Nothing lost" case 13): the program closes uhmm's file
 * descriptors, as daemons do (closefrom(3), close_range(2), close() on each,
 * dup2() over one). Losing the userfaultfd would turn every device-resident
 * page into zeros; uhmm's descriptors survive these calls, so the data is
 * intact. Closing one behind libc's back (a raw system call) ends the
 * process loudly, with a message, never with zeros.
 */
#include <dirent.h>
#include <fcntl.h>
#include <sys/syscall.h>
#include <sys/wait.h>

#include "devtest.h"

#define N 64

/* The fd of the userfaultfd, found in /proc/self/fd. */
static int find_uffd(void)
{
	DIR *d = opendir("/proc/self/fd");
	struct dirent *e;
	int fd = -1;

	CHECK(d);
	while ((e = readdir(d))) {
		char path[300], target[128];
		ssize_t n;

		snprintf(path, sizeof(path), "/proc/self/fd/%s", e->d_name);
		n = readlink(path, target, sizeof(target) - 1);
		if (n > 0) {
			target[n] = 0;
			if (strstr(target, "userfaultfd")) {
				fd = atoi(e->d_name);
				break;
			}
		}
	}
	closedir(d);
	return fd;
}

int main(void)
{
	struct uhmm_mm *mm = test_mm_new();
	struct uhmm_refdev *dev = test_dev_new(mm, 0);
	char *p = test_anon(N * PAGE_SIZE);
	int uffd, devnull, status;
	pid_t c;

	test_deadline(60);
	test_fill(p, 0, N, 18);
	CHECK_EQ(test_dev(dev, TO_DEV, p, 0, N, NULL, NULL), 0);
	uffd = find_uffd();
	CHECK(uffd >= 3);

	closefrom(3);
	CHECK_PAGES(p, 0, 8, 18);
	CHECK_EQ(close_range(3, ~0u, 0), 0);
	CHECK_PAGES(p, 8, 8, 18);
	CHECK_EQ(close(uffd), 0); /* the program believes it closed it */
	CHECK_PAGES(p, 16, 8, 18);
	devnull = open("/dev/null", O_RDONLY);
	CHECK(devnull >= 0);
	CHECK_EQ(dup2(devnull, uffd), -1); /* would close it: refused */
	CHECK_EQ(errno, EBUSY);
	CHECK_PAGES(p, 24, 8, 18);
	CHECK_EQ(find_uffd(), uffd);

	/* A raw close behind libc's back: loud, never zeros. */
	c = fork();
	CHECK(c >= 0);
	if (c == 0) {
		struct uhmm_mm *cmm = test_mm_new();
		struct uhmm_refdev *cdev = test_dev_new(cmm, 0);
		char *q = test_anon(N * PAGE_SIZE);
		int cfd;

		test_fill(q, 0, N, 19);
		CHECK_EQ(test_dev(cdev, TO_DEV, q, 0, N, NULL, NULL), 0);
		cfd = -1;
		for (int fd = 3; fd < 1024; fd++) {
			char path[64], target[128];
			ssize_t n;

			snprintf(path, sizeof(path), "/proc/self/fd/%d", fd);
			n = readlink(path, target, sizeof(target) - 1);
			if (n > 0 && (target[n] = 0, strstr(target, "userfaultfd")))
				cfd = fd; /* the child's own mm's is the last */
		}
		CHECK(cfd >= 0);
		syscall(SYS_close, cfd);
		for (size_t pg = 0; pg < N; pg++)
			if (!test_page_is(q, pg, 19, false))
				_exit(3); /* silent zeros: the failure this test exists for */
		_exit(0);	  /* the data survived: fine too */
	}
	CHECK_EQ(waitpid(c, &status, 0), c);
	CHECK(status != 3 << 8);
	CHECK((WIFEXITED(status) && WEXITSTATUS(status) == 0) ||
	      (WIFSIGNALED(status) && WTERMSIG(status) == SIGABRT));

	CHECK_PAGES(p, 0, N, 18);
	uhmm_refdev_free(dev);
	uhmm_mm_free(mm);
	return 0;
}
