/* SPDX-License-Identifier: MIT */
/*
 * range_fault: uhmm_range_fault()'s contract, on every kind of memory:
 * private anonymous (managed and not), MAP_SHARED anonymous, memfd, a
 * MAP_SHARED and a MAP_PRIVATE file on tmpfs (/dev/shm) and on a disk file
 * system (/var/tmp), THP, and hugetlb when huge pages exist.
 *   snapshot: nothing faulted, not-present -> 0, zero page -> VALID|ZERO,
 *             written -> VALID|WRITE, frame = addr >> 12, order 0;
 *   REQ_FAULT: present after, VALID (ZERO for untouched anonymous);
 *   REQ_WRITE: VALID|WRITE, the memory itself unchanged;
 *   per-entry requests through pfn_flags_mask;
 *   PROT_NONE / unmapped: -EFAULT with a request, ERROR in a snapshot;
 *   read-only + REQ_WRITE: -EPERM, memory untouched;
 *   a moved notifier sequence: -EBUSY.
 */
#include <fcntl.h>
#include <sys/syscall.h>

#include "mirror_dev.h"
#include "test.h"

#define N 8

static struct uhmm_mm *mm;

static int fault(void *p, size_t len, unsigned long *pfns, unsigned long dflt, unsigned long mask)
{
	struct uhmm_interval_notifier n;
	struct uhmm_range r = {
		.notifier = &n,
		.start = (uintptr_t)p,
		.end = (uintptr_t)p + len,
		.hmm_pfns = pfns,
		.default_flags = dflt,
		.pfn_flags_mask = mask,
	};
	int ret;

	CHECK_EQ(uhmm_interval_notifier_insert(&n, mm, r.start, len, &mdev_ops_dummy), 0);
	r.notifier_seq = uhmm_interval_read_begin(&n);
	ret = uhmm_range_fault(&r);
	uhmm_interval_notifier_remove(&n);
	return ret;
}

static bool resident(void *p)
{
	unsigned char v;

	CHECK_EQ(mincore(p, PAGE_SIZE, &v), 0);
	return v & 1;
}

/* One kind of memory, len N pages, writable, page 0 written with 'a'. */
static void exercise(const char *what, char *p, bool anon_zero)
{
	unsigned long pfns[N];

	fprintf(stderr, "%s\n", what);
	p[0] = 'a';
	/* Snapshot. */
	memset(pfns, 0, sizeof(pfns));
	CHECK_EQ(fault(p, N * PAGE_SIZE, pfns, 0, 0), 0);
	CHECK_EQ(pfns[0] & (UHMM_PFN_VALID | UHMM_PFN_WRITE | UHMM_PFN_ERROR),
		 UHMM_PFN_VALID | UHMM_PFN_WRITE);
	CHECK_EQ(uhmm_pfn_frame(pfns[0]), (uintptr_t)p >> 12);
	CHECK_EQ(pfns[N - 1], 0); /* untouched: not present, and not faulted */
	if (anon_zero) /* for files mincore reports the page cache, which readahead fills */
		CHECK(!resident(p + (N - 1) * PAGE_SIZE));

	/* Per-entry read request on page N-1 only, through the mask. */
	memset(pfns, 0, sizeof(pfns));
	pfns[N - 1] = UHMM_PFN_REQ_FAULT;
	CHECK_EQ(fault(p, N * PAGE_SIZE, pfns, 0, UHMM_PFN_REQ_FAULT | UHMM_PFN_REQ_WRITE), 0);
	CHECK(pfns[N - 1] & UHMM_PFN_VALID);
	CHECK(!(pfns[N - 1] & UHMM_PFN_WRITE) || !anon_zero);
	if (anon_zero)
		CHECK(pfns[N - 1] & UHMM_PFN_ZERO);
	if (anon_zero) /* files: the kernel's fault-around may map neighbours */
		CHECK_EQ(pfns[N - 2], 0); /* not requested: left alone */
	CHECK_EQ(p[(N - 1) * PAGE_SIZE], 0);

	/* Write request on everything. */
	memset(pfns, 0, sizeof(pfns));
	CHECK_EQ(fault(p, N * PAGE_SIZE, pfns, UHMM_PFN_REQ_WRITE, 0), 0);
	for (int i = 0; i < N; i++) {
		CHECK_EQ(pfns[i] & (UHMM_PFN_VALID | UHMM_PFN_WRITE | UHMM_PFN_ZERO | UHMM_PFN_ERROR),
			 UHMM_PFN_VALID | UHMM_PFN_WRITE);
		CHECK_EQ(uhmm_pfn_frame(pfns[i]), ((uintptr_t)p >> 12) + i);
	}
	CHECK_EQ(p[0], 'a');
	CHECK_EQ(p[PAGE_SIZE], 0);

	/* Read-only: write request -> -EPERM, read fine. */
	CHECK_EQ(mprotect(p, N * PAGE_SIZE, PROT_READ), 0);
	CHECK_EQ(fault(p, N * PAGE_SIZE, pfns, UHMM_PFN_REQ_WRITE, 0), -EPERM);
	CHECK_EQ(fault(p, N * PAGE_SIZE, pfns, UHMM_PFN_REQ_FAULT, 0), 0);
	CHECK(!(pfns[0] & UHMM_PFN_WRITE) && (pfns[0] & UHMM_PFN_VALID));
	/* PROT_NONE: -EFAULT with a request, ERROR in a snapshot. */
	CHECK_EQ(mprotect(p, N * PAGE_SIZE, PROT_NONE), 0);
	CHECK_EQ(fault(p, N * PAGE_SIZE, pfns, UHMM_PFN_REQ_FAULT, 0), -EFAULT);
	CHECK_EQ(fault(p, N * PAGE_SIZE, pfns, 0, 0), 0);
	CHECK_EQ(pfns[0], UHMM_PFN_ERROR);
	CHECK_EQ(mprotect(p, N * PAGE_SIZE, PROT_READ | PROT_WRITE), 0);
	CHECK_EQ(p[0], 'a');
}

static char *file_map(const char *dir, int flags)
{
	char path[64];
	int fd;
	char *p;

	snprintf(path, sizeof(path), "%s/uhmm-rf-XXXXXX", dir);
	fd = mkstemp(path);
	if (fd < 0)
		return NULL;
	unlink(path);
	CHECK_EQ(ftruncate(fd, N * PAGE_SIZE), 0);
	p = mmap(NULL, N * PAGE_SIZE, PROT_READ | PROT_WRITE, flags, fd, 0);
	close(fd);
	CHECK(p != MAP_FAILED);
	return p;
}

int main(void)
{
	char *p;
	unsigned long pfns[2 * N];

	mm = test_mm_new();

	p = test_anon(N * PAGE_SIZE);
	exercise("anonymous, unmanaged", p, true);
	p = test_anon(N * PAGE_SIZE);
	CHECK_EQ(uhmm_manage(mm, p, N * PAGE_SIZE, 0), 0);
	exercise("anonymous, managed", p, true);
	p = test_map(N * PAGE_SIZE, MAP_SHARED | MAP_ANONYMOUS);
	CHECK_EQ(uhmm_manage(mm, p, N * PAGE_SIZE, 0), 0);
	exercise("MAP_SHARED anonymous, managed", p, false);
	{
		int fd = (int)syscall(SYS_memfd_create, "uhmm-rf", 0);

		CHECK(fd >= 0);
		CHECK_EQ(ftruncate(fd, N * PAGE_SIZE), 0);
		p = mmap(NULL, N * PAGE_SIZE, PROT_READ | PROT_WRITE, MAP_SHARED, fd, 0);
		close(fd);
		exercise("memfd", p, false);
	}
	static const char *const dirs[] = { "/dev/shm", "/var/tmp" };
	for (int d = 0; d < 2; d++) {
		p = file_map(dirs[d], MAP_SHARED);
		if (!p) {
			fprintf(stderr, "note: no %s\n", dirs[d]);
			continue;
		}
		CHECK_EQ(uhmm_manage(mm, p, N * PAGE_SIZE, 0), 0);
		exercise(dirs[d], p, false);
		exercise(dirs[d], file_map(dirs[d], MAP_PRIVATE), false);
	}

	/* Unmapped addresses after a mapping: -EFAULT / ERROR. */
	p = test_anon(2 * N * PAGE_SIZE);
	p[0] = 1;
	CHECK_EQ(munmap(p + N * PAGE_SIZE, N * PAGE_SIZE), 0);
	memset(pfns, 0, sizeof(pfns));
	CHECK_EQ(fault(p, 2 * N * PAGE_SIZE, pfns, UHMM_PFN_REQ_FAULT, 0), -EFAULT);
	CHECK_EQ(fault(p, 2 * N * PAGE_SIZE, pfns, 0, 0), 0);
	CHECK(pfns[0] & UHMM_PFN_VALID);
	CHECK_EQ(pfns[N], UHMM_PFN_ERROR);
	CHECK_EQ(pfns[2 * N - 1], UHMM_PFN_ERROR);

	/* Bad arguments. */
	{
		struct uhmm_range r = { .start = 1, .end = PAGE_SIZE, .hmm_pfns = pfns };

		CHECK_EQ(uhmm_range_fault(&r), -EINVAL);
		CHECK_EQ(uhmm_range_fault(NULL), -EINVAL);
	}

	/* -EBUSY: the sequence moved between read_begin and the call. */
	{
		struct uhmm_interval_notifier n;
		struct uhmm_range r = {
			.notifier = &n,
			.start = (uintptr_t)p,
			.end = (uintptr_t)p + N * PAGE_SIZE,
			.hmm_pfns = pfns,
		};

		CHECK_EQ(uhmm_interval_notifier_insert(&n, mm, r.start, N * PAGE_SIZE, &mdev_ops_dummy),
			 0);
		r.notifier_seq = uhmm_interval_read_begin(&n);
		CHECK_EQ(madvise(p, PAGE_SIZE, MADV_DONTNEED), 0); /* invalidates n */
		CHECK_EQ(uhmm_range_fault(&r), -EBUSY);
		r.notifier_seq = uhmm_interval_read_begin(&n);
		CHECK_EQ(uhmm_range_fault(&r), 0);
		uhmm_interval_notifier_remove(&n);
	}

	/* THP: a 2 MiB-aligned, MADV_HUGEPAGE'd, touched range reports order 9. */
	{
		size_t len = 4u << 20;
		char *raw = test_anon(len), *h = (char *)(((uintptr_t)raw + (2u << 20) - 1) &
							 ~((uintptr_t)(2u << 20) - 1));
		static unsigned long hp[512];

		madvise(h, 2u << 20, MADV_HUGEPAGE);
		h[0] = 1;
		CHECK_EQ(fault(h, 2u << 20, hp, 0, 0), 0);
		if (uhmm_pfn_order(hp[0]) == 9) {
			for (int i = 0; i < 512; i++)
				CHECK_EQ(uhmm_pfn_order(hp[i]), 9);
			CHECK_EQ(uhmm_pfn_frame(hp[511]), ((uintptr_t)h >> 12) + 511);
		} else {
			fprintf(stderr, "note: no THP formed (THP disabled?)\n");
		}
		munmap(raw, len);
	}

	/* hugetlb, when the administrator reserved huge pages. */
	{
		char *h = mmap(NULL, 2u << 20, PROT_READ | PROT_WRITE,
			       MAP_PRIVATE | MAP_ANONYMOUS | MAP_HUGETLB, -1, 0);

		if (h == MAP_FAILED) {
			fprintf(stderr, "note: no huge pages: hugetlb not exercised\n");
		} else {
			static unsigned long hp[512];

			h[0] = 1;
			CHECK_EQ(fault(h, 2u << 20, hp, UHMM_PFN_REQ_WRITE, 0), 0);
			CHECK_EQ(uhmm_pfn_order(hp[0]), 9);
			CHECK(hp[0] & UHMM_PFN_WRITE);
			munmap(h, 2u << 20);
		}
	}
	uhmm_mm_free(mm);
	return 0;
}
