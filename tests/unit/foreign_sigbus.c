/* SPDX-License-Identifier: MIT */
/*
 * foreign_sigbus: a SIGBUS that is not uhmm's (touching a truncated file
 * mapping) reaches the handler the program installed before uhmm's, with
 * its siginfo; with no handler, the default action kills the process by
 * SIGBUS. In signal mode uhmm's own faults keep working throughout.
 */
#include <setjmp.h>
#include <signal.h>
#include <sys/wait.h>

#include "test.h"

static sigjmp_buf jb;
static volatile void *seen_addr;

static void program_handler(int sig, siginfo_t *si, void *uc)
{
	(void)sig;
	(void)uc;
	seen_addr = si->si_addr;
	siglongjmp(jb, 1);
}

/* A one-page file mapping whose file was truncated: touching it is SIGBUS. */
static char *truncated_mapping(void)
{
	char path[] = "/tmp/uhmm-sigbus-XXXXXX";
	int fd = mkstemp(path);
	char *m;

	CHECK(fd >= 0);
	unlink(path);
	CHECK_EQ(ftruncate(fd, PAGE_SIZE), 0);
	m = mmap(NULL, PAGE_SIZE, PROT_READ, MAP_SHARED, fd, 0);
	CHECK(m != MAP_FAILED);
	CHECK_EQ(ftruncate(fd, 0), 0);
	close(fd);
	return m;
}

int main(void)
{
	struct sigaction sa = { .sa_sigaction = program_handler, .sa_flags = SA_SIGINFO };
	struct uhmm_mm *mm;
	char *m = truncated_mapping(), *buf;
	pid_t pid;
	int status;

	/* Without any handler: the default action, in a child. */
	pid = fork();
	CHECK(pid >= 0);
	if (pid == 0) {
		struct uhmm_mm *cmm = test_mm_new();
		char *b = uhmm_alloc(cmm, PAGE_SIZE, 0);

		b[0] = 1; /* uhmm's own fault first */
		(void)*(volatile char *)m;
		_exit(0);
	}
	CHECK_EQ(waitpid(pid, &status, 0), pid);
	CHECK(WIFSIGNALED(status) && WTERMSIG(status) == SIGBUS);

	/* With the program's handler installed before uhmm's. */
	CHECK_EQ(sigaction(SIGBUS, &sa, NULL), 0);
	mm = test_mm_new();
	buf = uhmm_alloc(mm, 4 * PAGE_SIZE, 0);
	CHECK(buf);
	for (int round = 0; round < 3; round++) {
		buf[round * PAGE_SIZE] = 'u'; /* uhmm's fault: resolved, not forwarded */
		seen_addr = NULL;
		if (sigsetjmp(jb, 1) == 0) {
			(void)*(volatile char *)m;
			CHECK(!"the access should not have returned");
		}
		CHECK(seen_addr == m);
	}
	CHECK_EQ(buf[0], 'u');
	CHECK_EQ(buf[3 * PAGE_SIZE], 0);
	uhmm_free(mm, buf, 4 * PAGE_SIZE);
	uhmm_mm_free(mm);
	return 0;
}
