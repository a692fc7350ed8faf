/* SPDX-License-Identifier: MIT */
/*
 * hmm_tests - Linux's HMM selftests (tools/testing/selftests/mm/hmm-tests.c)
 * run against uhmm's reference device, with the same assertions.
 *
 *   hmm-tests --list                 the scenarios
 *   hmm-tests SCENARIO VARIANT       one, in this process (CTest runs these)
 *   hmm-tests --all [VARIANT]        every one, each in its own process,
 *                                    ending with "N passed, N failed, N skipped"
 *
 * VARIANT is "private" or "coherent" (the device type). The coherent device
 * is not offered yet: those runs skip, saying so. Exit 77 = skipped.
 * N = 1024 pages; P = the 2 MiB THP size.
 */
#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <unistd.h>

#include "uhmm.h"
#include "uhmm/device.h"
#include "uhmm/refdev.h"

#define PAGE 4096ul
#define N 1024ul
#define P (2ul << 20)
#define SKIP 77

#define ASSERT(c)                                                                        \
	do {                                                                             \
		if (!(c)) {                                                              \
			fprintf(stderr, "%s:%d: ASSERT(%s) failed\n", __FILE__, __LINE__, #c); \
			exit(1);                                                         \
		}                                                                        \
	} while (0)
#define ASSERT_EQ(a, b)                                                                    \
	do {                                                                               \
		long long _a = (long long)(a), _b = (long long)(b);                        \
		if (_a != _b) {                                                            \
			fprintf(stderr, "%s:%d: %s == %lld, expected %lld (%s)\n", __FILE__, \
				__LINE__, #a, _a, _b, #b);                                 \
			exit(1);                                                           \
		}                                                                          \
	} while (0)

static enum uhmm_refdev_type dev_type = UHMM_REFDEV_PRIVATE;
static struct uhmm_mm *mm;

struct buffer {
	void *ptr;
	void *mirror;
	size_t size;
	uint64_t cpages, faults;
};

static void skip(const char *why)
{
	fprintf(stderr, "SKIP: %s\n", why);
	exit(SKIP);
}

static struct uhmm_refdev *dev_open(void)
{
	struct uhmm_refdev_config cfg = { .type = dev_type };
	struct uhmm_refdev *d;
	int r;

	if (!mm) {
		r = uhmm_mm_new(&mm, NULL);
		if (r == -EPERM || r == -ENOSYS || r == -EOPNOTSUPP)
			skip(uhmm_strerror(r));
		ASSERT_EQ(r, 0);
	}
	r = uhmm_refdev_new(&d, mm, &cfg);
	if (r == -EOPNOTSUPP)
		skip("the reference device offers no coherent type yet (UHMM_REFDEV_COHERENT)");
	ASSERT_EQ(r, 0);
	return d;
}

static int dcmd(struct uhmm_refdev *d, enum uhmm_refdev_op op, struct buffer *b, uint64_t npages)
{
	struct uhmm_refdev_cmd c = {
		.addr = (uintptr_t)b->ptr,
		.ptr = (uintptr_t)b->mirror,
		.npages = npages,
	};
	int r = uhmm_refdev_cmd(d, op, &c);

	b->cpages = c.cpages;
	b->faults = c.faults;
	return r;
}

static struct buffer *buf_new(size_t size, int prot, int flags, int fd)
{
	struct buffer *b = calloc(1, sizeof(*b));

	ASSERT(b);
	b->size = size;
	b->ptr = mmap(NULL, size, prot, flags, fd, 0);
	ASSERT(b->ptr != MAP_FAILED);
	b->mirror = malloc(size);
	ASSERT(b->mirror);
	return b;
}

static void buf_free(struct buffer *b)
{
	munmap(b->ptr, b->size);
	free(b->mirror);
	free(b);
}

/* A buffer whose ptr is P-aligned inside a 2P mapping, for THP. */
static struct buffer *buf_huge(int prot, bool hugepage)
{
	struct buffer *b = calloc(1, sizeof(*b));
	char *raw = mmap(NULL, 2 * P, prot, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);

	ASSERT(b && raw != MAP_FAILED);
	/* The unaligned head and tail around ptr stay mapped until exit. */
	b->ptr = (void *)(((uintptr_t)raw + P - 1) & ~(P - 1));
	b->size = P;
	if (hugepage)
		madvise(b->ptr, P, MADV_HUGEPAGE);
	b->mirror = malloc(P);
	ASSERT(b->mirror);
	return b;
}

static void fill(void *p, size_t size, int sign)
{
	int *q = p;

	for (size_t i = 0; i < size / sizeof(int); i++)
		q[i] = sign * (int)i;
}

static void check_at(const void *p, size_t size, int sign, int line)
{
	const int *q = p;

	for (size_t i = 0; i < size / sizeof(int); i++)
		if (q[i] != sign * (int)i) {
			fprintf(stderr, "line %d: word %zu is %d, expected %d\n", line, i, q[i],
				sign * (int)i);
			exit(1);
		}
}
#define check(p, size, sign) check_at(p, size, sign, __LINE__)

static bool have_hugetlb(void)
{
	void *p = mmap(NULL, P, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS | MAP_HUGETLB,
		       -1, 0);

	if (p == MAP_FAILED)
		return false;
	munmap(p, P);
	return true;
}

/* ------------------------------------------------------------------ scenarios */

static void open_close(void)
{
	struct uhmm_refdev *d = dev_open();

	uhmm_refdev_free(d);
}

static void anon_read(void)
{
	struct uhmm_refdev *d = dev_open();
	struct buffer *b = buf_new(N * PAGE, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1);
	int *ptr = b->ptr, val;

	/* Leave the first two pages zero: pte_none and, below, the zero page. */
	for (size_t i = 2 * PAGE / sizeof(int); i < b->size / sizeof(int); i++)
		ptr[i] = (int)i;
	ASSERT_EQ(mprotect(b->ptr, b->size, PROT_READ), 0);
	val = *(volatile int *)((char *)b->ptr + PAGE);
	ASSERT_EQ(val, 0);
	ASSERT_EQ(dcmd(d, UHMM_REFDEV_READ, b, N), 0);
	ASSERT_EQ(b->cpages, N);
	ASSERT_EQ(b->faults, 1);
	ptr = b->mirror;
	for (size_t i = 0; i < 2 * PAGE / sizeof(int); i++)
		ASSERT_EQ(ptr[i], 0);
	for (size_t i = 2 * PAGE / sizeof(int); i < b->size / sizeof(int); i++)
		ASSERT_EQ(ptr[i], (int)i);
	buf_free(b);
	uhmm_refdev_free(d);
}

static void anon_read_prot(void)
{
	struct uhmm_refdev *d = dev_open();
	struct buffer *b = buf_new(N * PAGE, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1);

	fill(b->ptr, b->size, 1);
	fill(b->mirror, b->size, -1);
	ASSERT_EQ(mprotect(b->ptr, b->size, PROT_NONE), 0);
	ASSERT_EQ(dcmd(d, UHMM_REFDEV_READ, b, N), -EFAULT);
	check(b->mirror, b->size, -1); /* nothing copied */
	ASSERT_EQ(mprotect(b->ptr, b->size, PROT_READ), 0);
	check(b->ptr, b->size, 1);
	buf_free(b);
	uhmm_refdev_free(d);
}

static void anon_write(void)
{
	struct uhmm_refdev *d = dev_open();
	struct buffer *b = buf_new(N * PAGE, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1);

	fill(b->mirror, b->size, 1);
	ASSERT_EQ(dcmd(d, UHMM_REFDEV_WRITE, b, N), 0);
	ASSERT_EQ(b->cpages, N);
	ASSERT_EQ(b->faults, 1);
	check(b->ptr, b->size, 1);
	buf_free(b);
	uhmm_refdev_free(d);
}

static void anon_write_prot(void)
{
	struct uhmm_refdev *d = dev_open();
	struct buffer *b = buf_new(N * PAGE, PROT_READ, MAP_PRIVATE | MAP_ANONYMOUS, -1);

	/* Read first: the device maps the zero page read-only. */
	ASSERT_EQ(dcmd(d, UHMM_REFDEV_READ, b, 1), 0);
	ASSERT_EQ(b->cpages, 1);
	ASSERT_EQ(b->faults, 1);
	fill(b->mirror, b->size, 1);
	ASSERT_EQ(dcmd(d, UHMM_REFDEV_WRITE, b, N), -EPERM);
	check(b->ptr, 0, 1);
	for (size_t i = 0; i < b->size / sizeof(int); i++)
		ASSERT_EQ(((int *)b->ptr)[i], 0); /* memory untouched */
	ASSERT_EQ(mprotect(b->ptr, b->size, PROT_READ | PROT_WRITE), 0);
	ASSERT_EQ(dcmd(d, UHMM_REFDEV_WRITE, b, N), 0);
	ASSERT_EQ(b->cpages, N);
	ASSERT_EQ(b->faults, 1);
	check(b->ptr, b->size, 1);
	buf_free(b);
	uhmm_refdev_free(d);
}

/* fork: the child writes through its own device; each side sees its own data. */
static void write_child(int flags, bool huge)
{
	if (getenv("UHMM_TEST_TSAN"))
		skip("ThreadSanitizer cannot follow threads created in a child of a threaded fork");
	for (int migrate = 0; migrate < 2; migrate++) {
		struct uhmm_refdev *d = dev_open();
		struct buffer *b = huge ? buf_huge(PROT_READ | PROT_WRITE, true)
					: buf_new(N * PAGE, PROT_READ | PROT_WRITE, flags, -1);
		size_t npages = b->size / PAGE;
		bool shared = flags & MAP_SHARED;
		pid_t pid;
		int status;

		fill(b->ptr, b->size, 1);
		if (migrate) {
			int r = dcmd(d, UHMM_REFDEV_MIGRATE_TO_DEV, b, npages);

			if (shared) {
				ASSERT_EQ(r, -ENOENT); /* shared memory does not migrate */
			} else {
				ASSERT_EQ(r, 0);
				ASSERT_EQ(b->cpages, npages);
			}
		}
		/* What the child's device will write (the migration filled mirror). */
		fill(b->mirror, b->size, -1);
		pid = fork();
		ASSERT(pid >= 0);
		if (pid == 0) {
			struct uhmm_mm *cmm;
			struct uhmm_refdev *cd;
			struct uhmm_refdev_config cfg = { .type = dev_type };

			check(b->ptr, b->size, 1);	/* the parent's data */
			check(b->mirror, b->size, -1);
			/* The child needs its own mirror of its own address space. */
			ASSERT_EQ(uhmm_mm_new(&cmm, NULL), 0);
			ASSERT_EQ(uhmm_refdev_new(&cd, cmm, &cfg), 0);
			ASSERT_EQ(dcmd(cd, UHMM_REFDEV_WRITE, b, npages), 0);
			ASSERT_EQ(b->cpages, npages);
			ASSERT_EQ(b->faults, 1);
			check(b->ptr, b->size, -1);
			uhmm_refdev_free(cd);
			uhmm_mm_free(cmm);
			_exit(0);
		}
		ASSERT_EQ(waitpid(pid, &status, 0), pid);
		ASSERT(WIFEXITED(status) && WEXITSTATUS(status) == 0);
		check(b->ptr, b->size, shared ? -1 : 1);
		if (huge) {
			free(b->mirror);
			munmap(b->ptr, b->size);
			free(b);
		} else {
			buf_free(b);
		}
		uhmm_refdev_free(d);
	}
}

static void anon_write_child(void)
{
	write_child(MAP_PRIVATE | MAP_ANONYMOUS, false);
}

static void anon_write_child_thp(void)
{
	write_child(MAP_PRIVATE | MAP_ANONYMOUS, true);
}

static void anon_write_child_shared(void)
{
	write_child(MAP_SHARED | MAP_ANONYMOUS, false);
}

static void anon_write_huge(void)
{
	struct uhmm_refdev *d = dev_open();
	struct buffer *b = buf_huge(PROT_READ | PROT_WRITE, true);

	fill(b->mirror, P, 1);
	ASSERT_EQ(dcmd(d, UHMM_REFDEV_WRITE, b, P / PAGE), 0);
	ASSERT_EQ(b->cpages, P / PAGE);
	ASSERT_EQ(b->faults, 1);
	check(b->ptr, P, 1);
	munmap(b->ptr, P);
	free(b->mirror);
	free(b);
	uhmm_refdev_free(d);
}

static void anon_write_hugetlbfs(void)
{
	struct uhmm_refdev *d;
	struct buffer *b;

	if (!have_hugetlb())
		skip("no free huge pages (vm.nr_hugepages is 0)");
	d = dev_open();
	b = buf_new(P, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS | MAP_HUGETLB, -1);
	fill(b->mirror, P, 1);
	ASSERT_EQ(dcmd(d, UHMM_REFDEV_WRITE, b, P / PAGE), 0);
	ASSERT_EQ(b->cpages, P / PAGE);
	ASSERT_EQ(b->faults, 1);
	check(b->ptr, P, 1);
	buf_free(b);
	uhmm_refdev_free(d);
}

static int tmpfile_fd(size_t size)
{
	char path[] = "/var/tmp/uhmm-hmm-XXXXXX";
	int fd = mkstemp(path);

	ASSERT(fd >= 0);
	unlink(path);
	ASSERT_EQ(ftruncate(fd, (off_t)size), 0);
	return fd;
}

static void file_read(void)
{
	struct uhmm_refdev *d = dev_open();
	int fd = tmpfile_fd(N * PAGE);
	int *data = malloc(N * PAGE);
	struct buffer *b;

	fill(data, N * PAGE, 1);
	ASSERT_EQ(pwrite(fd, data, N * PAGE, 0), (ssize_t)(N * PAGE));
	b = buf_new(N * PAGE, PROT_READ, MAP_SHARED, fd);
	fill(b->mirror, b->size, -1);
	ASSERT_EQ(dcmd(d, UHMM_REFDEV_READ, b, N), 0);
	ASSERT_EQ(b->cpages, N);
	ASSERT(b->faults >= 1);
	check(b->mirror, b->size, 1);
	buf_free(b);
	free(data);
	close(fd);
	uhmm_refdev_free(d);
}

static void file_write(void)
{
	struct uhmm_refdev *d = dev_open();
	int fd = tmpfile_fd(N * PAGE);
	int *data = malloc(N * PAGE);
	struct buffer *b = buf_new(N * PAGE, PROT_READ | PROT_WRITE, MAP_SHARED, fd);

	fill(b->mirror, b->size, 1);
	ASSERT_EQ(dcmd(d, UHMM_REFDEV_WRITE, b, N), 0);
	ASSERT_EQ(b->cpages, N);
	ASSERT_EQ(b->faults, 1);
	check(b->ptr, b->size, 1);
	ASSERT_EQ(pread(fd, data, N * PAGE, 0), (ssize_t)(N * PAGE));
	check(data, N * PAGE, 1); /* the write reached the file */
	buf_free(b);
	free(data);
	close(fd);
	uhmm_refdev_free(d);
}

static void migrate(void)
{
	struct uhmm_refdev *d = dev_open();
	struct buffer *b = buf_new(N * PAGE, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1);

	fill(b->ptr, b->size, 1);
	ASSERT_EQ(dcmd(d, UHMM_REFDEV_MIGRATE_TO_DEV, b, N), 0);
	ASSERT_EQ(b->cpages, N);
	check(b->mirror, b->size, 1);
	check(b->ptr, b->size, 1); /* and the CPU gets it all back */
	buf_free(b);
	uhmm_refdev_free(d);
}

static void migrate_private_file(void)
{
	struct uhmm_refdev *d = dev_open();
	int fd = tmpfile_fd(N * PAGE);
	struct buffer *b = buf_new(N * PAGE, PROT_READ | PROT_WRITE, MAP_PRIVATE, fd);

	/* Written pages of a private file mapping are anonymous (copy-on-write). */
	fill(b->ptr, b->size, 1);
	ASSERT_EQ(dcmd(d, UHMM_REFDEV_MIGRATE_TO_DEV, b, N), -ENOENT);
	check(b->ptr, b->size, 1);
	buf_free(b);
	close(fd);
	uhmm_refdev_free(d);
}

static void migrate_fault(void)
{
	struct uhmm_refdev *d = dev_open();
	struct buffer *b = buf_new(N * PAGE, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1);

	fill(b->ptr, b->size, 1);
	ASSERT_EQ(dcmd(d, UHMM_REFDEV_MIGRATE_TO_DEV, b, N), 0);
	ASSERT_EQ(b->cpages, N);
	check(b->mirror, b->size, 1);
	check(b->ptr, b->size / 2, 1); /* half comes home */
	ASSERT_EQ(dcmd(d, UHMM_REFDEV_MIGRATE_TO_DEV, b, N), 0);
	ASSERT_EQ(b->cpages, N);
	check(b->mirror, b->size, 1);
	check(b->ptr, b->size, 1);
	buf_free(b);
	uhmm_refdev_free(d);
}

static void migrate_release(void)
{
	struct uhmm_refdev *d = dev_open();
	struct buffer *b = buf_new(N * PAGE, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1);

	fill(b->ptr, b->size, 1);
	ASSERT_EQ(dcmd(d, UHMM_REFDEV_MIGRATE_TO_DEV, b, N), 0);
	ASSERT_EQ(b->cpages, N);
	check(b->mirror, b->size, 1);
	ASSERT_EQ(dcmd(d, UHMM_REFDEV_RELEASE, b, 0), 0);
	ASSERT_EQ(uhmm_mm_resident(mm, (uintptr_t)b->ptr, (uintptr_t)b->ptr + b->size, NULL), 0);
	check(b->ptr, b->size, 1);
	buf_free(b);
	uhmm_refdev_free(d);
}

static void migrate_shared(void)
{
	struct uhmm_refdev *d = dev_open();
	struct buffer *b = buf_new(N * PAGE, PROT_READ | PROT_WRITE, MAP_SHARED | MAP_ANONYMOUS, -1);

	ASSERT_EQ(dcmd(d, UHMM_REFDEV_MIGRATE_TO_DEV, b, N), -ENOENT);
	buf_free(b);
	uhmm_refdev_free(d);
}

static void migrate_multiple(void)
{
	struct uhmm_refdev *d = dev_open();

	for (int k = 0; k < 10; k++) {
		struct buffer *b =
			buf_new(N * PAGE, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1);

		fill(b->ptr, b->size, 1);
		ASSERT_EQ(dcmd(d, UHMM_REFDEV_MIGRATE_TO_DEV, b, N), 0);
		ASSERT_EQ(b->cpages, N);
		check(b->mirror, b->size, 1);
		check(b->ptr, b->size, 1);
		buf_free(b);
	}
	uhmm_refdev_free(d);
}

static void anon_read_multiple(void)
{
	struct uhmm_refdev *d = dev_open();

	for (int k = 0; k < 10; k++) {
		struct buffer *b =
			buf_new(N * PAGE, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1);
		int *ptr = b->ptr;

		for (size_t i = 0; i < b->size / sizeof(int); i++)
			ptr[i] = (int)i + k;
		ASSERT_EQ(dcmd(d, UHMM_REFDEV_READ, b, N), 0);
		ASSERT_EQ(b->cpages, N);
		ASSERT_EQ(b->faults, 1);
		for (size_t i = 0; i < b->size / sizeof(int); i++)
			ASSERT_EQ(((int *)b->mirror)[i], (int)i + k);
		buf_free(b);
	}
	uhmm_refdev_free(d);
}

static void *unmap_half(void *arg)
{
	struct buffer *b = arg;

	usleep(10 * (rand() % 10)); /* let the read start */
	munmap((char *)b->ptr + b->size / 2, b->size / 2);
	return NULL;
}

static void anon_teardown(void)
{
	struct uhmm_refdev *d = dev_open();

	for (int k = 0; k < 10; k++) {
		struct buffer *b =
			buf_new(N * PAGE, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1);
		int *ptr = b->ptr;
		pthread_t th;
		int r;

		for (size_t i = 0; i < b->size / sizeof(int); i++)
			ptr[i] = (int)i + k;
		ASSERT_EQ(pthread_create(&th, NULL, unmap_half, b), 0);
		r = dcmd(d, UHMM_REFDEV_READ, b, N);
		if (r == 0) {
			ASSERT_EQ(b->cpages, N);
			for (size_t i = 0; i < b->size / sizeof(int); i++)
				ASSERT_EQ(((int *)b->mirror)[i], (int)i + k);
		} else {
			ASSERT(r == -EFAULT || r == -EBUSY);
		}
		pthread_join(th, NULL);
		munmap(b->ptr, b->size / 2);
		free(b->mirror);
		free(b);
	}
	uhmm_refdev_free(d);
}

static void snapshot_hugetlb(void)
{
	struct uhmm_refdev *d;
	struct buffer *b;
	unsigned char *m;

	if (!have_hugetlb())
		skip("no free huge pages (vm.nr_hugepages is 0)");
	d = dev_open();
	b = buf_new(P, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS | MAP_HUGETLB, -1);
	memset(b->ptr, 1, P);
	ASSERT_EQ(dcmd(d, UHMM_REFDEV_SNAPSHOT, b, P / PAGE), 0);
	m = b->mirror;
	for (size_t i = 0; i < P / PAGE; i++)
		ASSERT_EQ(m[i], UHMM_REFDEV_PROT_WRITE | UHMM_REFDEV_PROT_PMD);
	ASSERT_EQ(mprotect(b->ptr, P, PROT_READ), 0);
	ASSERT_EQ(dcmd(d, UHMM_REFDEV_SNAPSHOT, b, P / PAGE), 0);
	for (size_t i = 0; i < P / PAGE; i++)
		ASSERT_EQ(m[i], UHMM_REFDEV_PROT_READ | UHMM_REFDEV_PROT_PMD);
	buf_free(b);
	uhmm_refdev_free(d);
}

static void exclusive(void)
{
	struct uhmm_refdev *d = dev_open();
	struct buffer *b = buf_new(N * PAGE, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1);
	int *ptr = b->ptr;

	fill(b->ptr, b->size, 1);
	ASSERT_EQ(dcmd(d, UHMM_REFDEV_EXCLUSIVE, b, N), 0);
	ASSERT_EQ(b->cpages, N);
	check(b->mirror, b->size, 1);
	ASSERT_EQ(dcmd(d, UHMM_REFDEV_CHECK_EXCLUSIVE, b, N), -EPERM);
	/* The CPU takes every page back; it sees the old values. */
	for (size_t i = 0; i < b->size / sizeof(int); i++)
		ASSERT_EQ(ptr[i]++, (int)i);
	for (size_t i = 0; i < b->size / sizeof(int); i++)
		ASSERT_EQ(ptr[i], (int)i + 1);
	ASSERT_EQ(dcmd(d, UHMM_REFDEV_CHECK_EXCLUSIVE, b, N), 0);
	buf_free(b);
	uhmm_refdev_free(d);
}

static void exclusive_mprotect(void)
{
	struct uhmm_refdev *d = dev_open();
	struct buffer *b = buf_new(N * PAGE, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1);

	fill(b->ptr, b->size, 1);
	ASSERT_EQ(dcmd(d, UHMM_REFDEV_EXCLUSIVE, b, N), 0);
	ASSERT_EQ(b->cpages, N);
	check(b->mirror, b->size, 1);
	ASSERT_EQ(mprotect(b->ptr, b->size, PROT_READ), 0);
	ASSERT_EQ(dcmd(d, UHMM_REFDEV_WRITE, b, N), -EPERM);
	check(b->ptr, b->size, 1);
	buf_free(b);
	uhmm_refdev_free(d);
}

static void exclusive_cow(void)
{
	struct uhmm_refdev *d = dev_open();
	struct buffer *b = buf_new(N * PAGE, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1);
	int *ptr = b->ptr;
	pid_t pid;
	int status;

	fill(b->ptr, b->size, 1);
	ASSERT_EQ(dcmd(d, UHMM_REFDEV_EXCLUSIVE, b, N), 0);
	ASSERT_EQ(b->cpages, N);
	pid = fork();
	ASSERT(pid >= 0);
	if (pid == 0) {
		for (size_t i = 0; i < b->size / sizeof(int); i++)
			ptr[i] += 10; /* the child's own copy */
		for (size_t i = 0; i < b->size / sizeof(int); i++)
			ASSERT_EQ(ptr[i], (int)i + 10);
		_exit(0);
	}
	for (size_t i = 0; i < b->size / sizeof(int); i++)
		ASSERT_EQ(ptr[i]++, (int)i);
	ASSERT_EQ(waitpid(pid, &status, 0), pid);
	ASSERT(WIFEXITED(status) && WEXITSTATUS(status) == 0);
	for (size_t i = 0; i < b->size / sizeof(int); i++)
		ASSERT_EQ(ptr[i], (int)i + 1);
	buf_free(b);
	uhmm_refdev_free(d);
}

static void migrate_fork_write(void)
{
	struct uhmm_refdev *d = dev_open();
	struct buffer *b = buf_new(N * PAGE, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1);
	unsigned char *m;
	pid_t pid;
	int status;

	fill(b->ptr, b->size, 1);
	ASSERT_EQ(dcmd(d, UHMM_REFDEV_MIGRATE_TO_DEV, b, N), 0);
	ASSERT_EQ(b->cpages, N);
	pid = fork();
	ASSERT(pid >= 0);
	if (pid == 0)
		_exit(((int *)b->ptr)[5] == 5 ? 0 : 1);
	ASSERT_EQ(waitpid(pid, &status, 0), pid);
	ASSERT(WIFEXITED(status) && WEXITSTATUS(status) == 0);
	fill(b->ptr, b->size, -1); /* the parent writes after fork */
	ASSERT_EQ(dcmd(d, UHMM_REFDEV_SNAPSHOT, b, N), 0);
	m = b->mirror;
	for (size_t i = 0; i < N; i++)
		ASSERT_EQ(m[i] & ~UHMM_REFDEV_PROT_PMD, UHMM_REFDEV_PROT_WRITE); /* no device page */
	buf_free(b);
	uhmm_refdev_free(d);
}

/* THP: the migrations of huge pages. */
static void huge_migrate_and_check(struct uhmm_refdev *d, struct buffer *b, int sign)
{
	ASSERT_EQ(dcmd(d, UHMM_REFDEV_MIGRATE_TO_DEV, b, P / PAGE), 0);
	ASSERT_EQ(b->cpages, P / PAGE);
	check(b->mirror, P, sign);
	check(b->ptr, P, sign);
}

static void huge_free(struct buffer *b)
{
	munmap(b->ptr, P);
	free(b->mirror);
	free(b);
}

static void migrate_anon_huge_empty(void)
{
	struct uhmm_refdev *d = dev_open();
	struct buffer *b = buf_huge(PROT_READ, true); /* never touched, read-only */

	huge_migrate_and_check(d, b, 0);
	huge_free(b);
	uhmm_refdev_free(d);
}

static void migrate_anon_huge_zero(void)
{
	struct uhmm_refdev *d = dev_open();
	struct buffer *b = buf_huge(PROT_READ, true);

	ASSERT_EQ(*(volatile int *)b->ptr, 0); /* maps the (huge) zero page */
	huge_migrate_and_check(d, b, 0);
	huge_free(b);
	uhmm_refdev_free(d);
}

static void migrate_anon_huge_free(void)
{
	struct uhmm_refdev *d = dev_open();
	struct buffer *b = buf_huge(PROT_READ | PROT_WRITE, true);
	int *ptr = b->ptr;

	fill(b->ptr, P, 1);
	ASSERT_EQ(madvise(b->ptr, P, MADV_FREE), 0);
	/* MADV_FREE pages may be dropped at any time: either data or zeros. */
	ASSERT_EQ(dcmd(d, UHMM_REFDEV_MIGRATE_TO_DEV, b, P / PAGE), 0);
	ASSERT_EQ(b->cpages, P / PAGE);
	for (size_t i = 0; i < P / sizeof(int); i++)
		ASSERT(ptr[i] == (int)i || ptr[i] == 0);
	huge_free(b);
	uhmm_refdev_free(d);
}

static void migrate_anon_huge_collapsed(void)
{
	struct uhmm_refdev *d = dev_open();
	struct buffer *b = buf_huge(PROT_READ | PROT_WRITE, true);
	unsigned char *m;

	fill(b->ptr, P, 1);
	madvise(b->ptr, P, 25 /* MADV_COLLAPSE */);
	ASSERT_EQ(dcmd(d, UHMM_REFDEV_MIGRATE_TO_DEV, b, P / PAGE), 0);
	ASSERT_EQ(b->cpages, P / PAGE);
	check(b->mirror, P, 1);
	ASSERT_EQ(dcmd(d, UHMM_REFDEV_SNAPSHOT, b, P / PAGE), 0);
	m = b->mirror;
	for (size_t i = 0; i < P / PAGE; i++)
		ASSERT_EQ(m[i], UHMM_REFDEV_PROT_DEV_PRIVATE_LOCAL | UHMM_REFDEV_PROT_WRITE |
					UHMM_REFDEV_PROT_PMD);
	check(b->ptr, P, 1); /* the CPU reads it back */
	huge_free(b);
	uhmm_refdev_free(d);
}

static void migrate_anon_huge_partial_unmap(void)
{
	static const size_t offs[] = { 0, P / 4, P / 2 };

	for (size_t k = 0; k < 3; k++) {
		struct uhmm_refdev *d = dev_open();
		struct buffer *b = buf_huge(PROT_READ | PROT_WRITE, true);
		int *ptr = b->ptr;

		fill(b->ptr, P, 1);
		ASSERT_EQ(dcmd(d, UHMM_REFDEV_MIGRATE_TO_DEV, b, P / PAGE), 0);
		ASSERT_EQ(b->cpages, P / PAGE);
		ASSERT_EQ(munmap((char *)b->ptr + offs[k], P / 4), 0);
		for (size_t i = 0; i < P / sizeof(int); i++) {
			size_t byte = i * sizeof(int);

			if (byte >= offs[k] && byte < offs[k] + P / 4)
				continue;
			ASSERT_EQ(ptr[i], (int)i);
		}
		munmap(b->ptr, P);
		free(b->mirror);
		free(b);
		uhmm_refdev_free(d);
	}
}

static void migrate_remap(void)
{
	for (int thp = 0; thp < 2; thp++)
		for (int dontunmap = 0; dontunmap < 2; dontunmap++)
			for (int before = 0; before < 2; before++)
				for (size_t off = 0; off < P; off += P / 4) {
					struct uhmm_refdev *d = dev_open();
					struct buffer *b = buf_huge(PROT_READ | PROT_WRITE, thp);
					char *to = mmap(NULL, 2 * P, PROT_NONE, MAP_PRIVATE | MAP_ANONYMOUS,
							-1, 0);
					char *dst = (char *)(((uintptr_t)to + P - 1) & ~(P - 1)) + off;
					size_t len = P - off;
					int flags = MREMAP_MAYMOVE | MREMAP_FIXED |
						    (dontunmap ? MREMAP_DONTUNMAP : 0);
					char *src = (char *)b->ptr + off;
					struct buffer nb = { .ptr = dst, .mirror = b->mirror, .size = len };

					ASSERT(to != MAP_FAILED);
					fill(b->ptr, P, 1);
					if (!before) {
						ASSERT_EQ(dcmd(d, UHMM_REFDEV_MIGRATE_TO_DEV, b, P / PAGE), 0);
						ASSERT_EQ(b->cpages, P / PAGE);
					}
					ASSERT(mremap(src, len, len, flags, dst) == dst);
					if (before) {
						ASSERT_EQ(dcmd(d, UHMM_REFDEV_MIGRATE_TO_DEV, &nb, len / PAGE), 0);
						ASSERT_EQ(nb.cpages, len / PAGE);
					}
					for (size_t i = 0; i < len / sizeof(int); i++)
						ASSERT_EQ(((int *)dst)[i], (int)(off / sizeof(int) + i));
					if (dontunmap)
						for (size_t i = 0; i < len / sizeof(int); i += 1024)
							ASSERT_EQ(((int *)src)[i], 0);
					munmap(to, 2 * P);
					munmap(b->ptr, P);
					free(b->mirror);
					free(b);
					uhmm_refdev_free(d);
				}
}

static void migrate_anon_huge_err(void)
{
	struct uhmm_refdev *d = dev_open();
	struct buffer *b = buf_huge(PROT_READ | PROT_WRITE, true);

	fill(b->ptr, P, 1);
	/* The device cannot allocate the 2 MiB unit: the migration falls back. */
	ASSERT_EQ(dcmd(d, UHMM_REFDEV_FLAGS, b, UHMM_REFDEV_FLAG_FAIL_ALLOC), 0);
	ASSERT_EQ(dcmd(d, UHMM_REFDEV_MIGRATE_TO_DEV, b, P / PAGE), 0);
	ASSERT(b->cpages >= P / PAGE - 1); /* at most the failed page stayed home */
	check(b->ptr, P, 1);
	/* And back to system memory with the failure armed: nothing lost. */
	ASSERT_EQ(dcmd(d, UHMM_REFDEV_MIGRATE_TO_DEV, b, P / PAGE), 0);
	ASSERT_EQ(dcmd(d, UHMM_REFDEV_FLAGS, b, UHMM_REFDEV_FLAG_FAIL_ALLOC), 0);
	ASSERT_EQ(dcmd(d, UHMM_REFDEV_MIGRATE_TO_SYS, b, P / PAGE), 0);
	check(b->ptr, P, 1);
	huge_free(b);
	uhmm_refdev_free(d);
}

static void migrate_anon_huge_zero_err(void)
{
	struct uhmm_refdev *d = dev_open();
	struct buffer *b = buf_huge(PROT_READ, true);

	ASSERT_EQ(*(volatile int *)b->ptr, 0);
	ASSERT_EQ(dcmd(d, UHMM_REFDEV_FLAGS, b, UHMM_REFDEV_FLAG_FAIL_ALLOC), 0);
	ASSERT_EQ(dcmd(d, UHMM_REFDEV_MIGRATE_TO_DEV, b, P / PAGE), 0);
	ASSERT(b->cpages >= P / PAGE - 1);
	check(b->ptr, P, 0);
	huge_free(b);
	uhmm_refdev_free(d);
}

/* --- two devices (hmm2 in the kernel's suite) ------------------------------- */

static void migrate_mixed(void)
{
	struct uhmm_refdev *d0 = dev_open(), *d1 = dev_open();
	struct buffer *b = buf_new(8 * PAGE, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1);
	char *p = b->ptr;
	struct buffer sub = *b;

	/* Pages 0: PROT_NONE, 1: read-only, 2..5: read-write, 6..7: a hole. */
	ASSERT_EQ(munmap(p + 6 * PAGE, 2 * PAGE), 0);
	b->size = 6 * PAGE;
	ASSERT_EQ(mprotect(p, PAGE, PROT_NONE), 0);
	ASSERT_EQ(mprotect(p + PAGE, PAGE, PROT_READ), 0);
	fill(p + 2 * PAGE, 4 * PAGE, 1);
	ASSERT_EQ(dcmd(d1, UHMM_REFDEV_MIGRATE_TO_DEV, b, 6), -EINVAL); /* PROT_NONE */
	sub.ptr = p + 5 * PAGE;
	ASSERT_EQ(dcmd(d1, UHMM_REFDEV_MIGRATE_TO_DEV, &sub, 2), -EINVAL); /* hole */
	sub.ptr = p + 2 * PAGE;
	ASSERT_EQ(dcmd(d1, UHMM_REFDEV_MIGRATE_TO_DEV, &sub, 4), 0);
	ASSERT_EQ(sub.cpages, 4);
	sub.ptr = p + 5 * PAGE;
	ASSERT_EQ(dcmd(d0, UHMM_REFDEV_MIGRATE_TO_DEV, &sub, 1), -ENOENT); /* on device 1 */
	sub.ptr = p + PAGE;
	ASSERT_EQ(dcmd(d1, UHMM_REFDEV_MIGRATE_TO_DEV, &sub, 5), 0); /* mixed protection */
	check(p + 2 * PAGE, 4 * PAGE, 1);
	buf_free(b);
	uhmm_refdev_free(d1);
	uhmm_refdev_free(d0);
}

static void snapshot(void)
{
	struct uhmm_refdev *d0 = dev_open(), *d1 = dev_open();
	struct buffer *b = buf_new(7 * PAGE, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1);
	char *p = b->ptr;
	unsigned char *m = b->mirror;
	struct buffer sub = *b;

	ASSERT_EQ(munmap(p, PAGE), 0);				/* 0: unmapped */
	ASSERT_EQ(mprotect(p + PAGE, PAGE, PROT_NONE), 0);	/* 1: PROT_NONE */
	ASSERT_EQ(*(volatile char *)(p + 2 * PAGE), 0);		/* 2: zero page */
	p[3 * PAGE] = 1;					/* 3: read-only */
	ASSERT_EQ(mprotect(p + 3 * PAGE, PAGE, PROT_READ), 0);
	p[4 * PAGE] = 1;					/* 4: writable */
	p[5 * PAGE] = 1;					/* 5: device 0's */
	sub.ptr = p + 5 * PAGE;
	ASSERT_EQ(dcmd(d0, UHMM_REFDEV_MIGRATE_TO_DEV, &sub, 1), 0);
	ASSERT_EQ(sub.cpages, 1);
	p[6 * PAGE] = 1;					/* 6: device 1's */
	sub.ptr = p + 6 * PAGE;
	ASSERT_EQ(dcmd(d1, UHMM_REFDEV_MIGRATE_TO_DEV, &sub, 1), 0);
	ASSERT_EQ(sub.cpages, 1);
	ASSERT_EQ(dcmd(d0, UHMM_REFDEV_SNAPSHOT, b, 7), 0);
	ASSERT_EQ(b->cpages, 7);
	ASSERT_EQ(m[0], UHMM_REFDEV_PROT_ERROR);
	ASSERT_EQ(m[1], UHMM_REFDEV_PROT_ERROR);
	ASSERT_EQ(m[2], UHMM_REFDEV_PROT_ZERO | UHMM_REFDEV_PROT_READ);
	ASSERT_EQ(m[3], UHMM_REFDEV_PROT_READ);
	ASSERT_EQ(m[4], UHMM_REFDEV_PROT_WRITE);
	ASSERT_EQ(m[5], UHMM_REFDEV_PROT_DEV_PRIVATE_LOCAL | UHMM_REFDEV_PROT_WRITE);
	ASSERT_EQ(m[6], UHMM_REFDEV_PROT_NONE);
	munmap(p + PAGE, 6 * PAGE);
	free(b->mirror);
	free(b);
	uhmm_refdev_free(d1);
	uhmm_refdev_free(d0);
}

static void double_map(void)
{
	struct uhmm_refdev *d0 = dev_open(), *d1 = dev_open();
	struct buffer *b = buf_new(N * PAGE, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1);

	fill(b->ptr, b->size, 1);
	ASSERT_EQ(mprotect(b->ptr, b->size, PROT_READ), 0);
	ASSERT_EQ(dcmd(d0, UHMM_REFDEV_READ, b, N), 0);
	ASSERT_EQ(b->cpages, N);
	check(b->mirror, b->size, 1);
	ASSERT_EQ(dcmd(d1, UHMM_REFDEV_READ, b, N), 0);
	ASSERT_EQ(b->cpages, N);
	check(b->mirror, b->size, 1);
	ASSERT_EQ(mprotect(b->ptr, b->size, PROT_READ | PROT_WRITE), 0);
	ASSERT_EQ(dcmd(d1, UHMM_REFDEV_MIGRATE_TO_DEV, b, N), 0);
	ASSERT_EQ(b->cpages, N);
	memset(b->mirror, 0, b->size);
	ASSERT_EQ(dcmd(d0, UHMM_REFDEV_READ, b, N), 0); /* device 1's pages come home */
	ASSERT_EQ(b->cpages, N);
	check(b->mirror, b->size, 1);
	buf_free(b);
	uhmm_refdev_free(d1);
	uhmm_refdev_free(d0);
}

/* ------------------------------------------------------------------ driver */

static const struct {
	const char *name;
	void (*fn)(void);
} scenarios[] = {
#define SCENARIO(F) { #F, F }
	SCENARIO(open_close), SCENARIO(anon_read), SCENARIO(anon_read_prot), SCENARIO(anon_write), SCENARIO(anon_write_prot),
	SCENARIO(anon_write_child), SCENARIO(anon_write_child_thp), SCENARIO(anon_write_child_shared),
	SCENARIO(anon_write_huge), SCENARIO(anon_write_hugetlbfs), SCENARIO(file_read), SCENARIO(file_write), SCENARIO(migrate),
	SCENARIO(migrate_private_file), SCENARIO(migrate_fault), SCENARIO(migrate_release), SCENARIO(migrate_shared),
	SCENARIO(migrate_multiple), SCENARIO(anon_read_multiple), SCENARIO(anon_teardown), SCENARIO(snapshot_hugetlb),
	SCENARIO(exclusive), SCENARIO(exclusive_mprotect), SCENARIO(exclusive_cow), SCENARIO(migrate_fork_write),
	SCENARIO(migrate_anon_huge_empty), SCENARIO(migrate_anon_huge_zero), SCENARIO(migrate_anon_huge_free),
	SCENARIO(migrate_anon_huge_collapsed), SCENARIO(migrate_anon_huge_partial_unmap), SCENARIO(migrate_remap),
	SCENARIO(migrate_anon_huge_err), SCENARIO(migrate_anon_huge_zero_err), SCENARIO(migrate_mixed), SCENARIO(snapshot),
	SCENARIO(double_map),
#undef SCENARIO
};
#define NSCEN (sizeof(scenarios) / sizeof(scenarios[0]))

static int set_variant(const char *v)
{
	if (!strcmp(v, "private"))
		dev_type = UHMM_REFDEV_PRIVATE;
	else if (!strcmp(v, "coherent"))
		dev_type = UHMM_REFDEV_COHERENT;
	else
		return -1;
	return 0;
}

static int run_one(size_t k)
{
	scenarios[k].fn();
	uhmm_mm_free(mm);
	mm = NULL;
	return 0;
}

int main(int argc, char **argv)
{
	if (argc >= 2 && !strcmp(argv[1], "--list")) {
		for (size_t k = 0; k < NSCEN; k++)
			printf("%s\n", scenarios[k].name);
		return 0;
	}
	if (argc >= 2 && !strcmp(argv[1], "--all")) {
		int pass = 0, fail = 0, skipped = 0;

		if (argc >= 3 && set_variant(argv[2]))
			return 2;
		for (size_t k = 0; k < NSCEN; k++) {
			pid_t pid;
			int st;

			fflush(stdout); /* a child that exit()s must not print our lines again */
			pid = fork();
			if (pid == 0) {
				alarm(120);
				_exit(run_one(k));
			}
			waitpid(pid, &st, 0);
			if (WIFEXITED(st) && WEXITSTATUS(st) == 0) {
				pass++;
				printf("PASS %s\n", scenarios[k].name);
			} else if (WIFEXITED(st) && WEXITSTATUS(st) == SKIP) {
				skipped++;
				printf("SKIP %s\n", scenarios[k].name);
			} else {
				fail++;
				printf("FAIL %s\n", scenarios[k].name);
			}
		}
		printf("%d passed, %d failed, %d skipped\n", pass, fail, skipped);
		return fail ? 1 : 0;
	}
	if (argc != 3 || set_variant(argv[2])) {
		fprintf(stderr, "usage: hmm-tests --list | --all [VARIANT] | SCENARIO VARIANT\n"
				"VARIANT: private | coherent\n");
		return 2;
	}
	for (size_t k = 0; k < NSCEN; k++)
		if (!strcmp(argv[1], scenarios[k].name))
			return run_one(k);
	fprintf(stderr, "no scenario %s (see --list)\n", argv[1]);
	return 2;
}
