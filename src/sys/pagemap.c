/* SPDX-License-Identifier: MIT */
/*
 * pagemap.c - the PAGEMAP_SCAN ioctl (Linux 6.7): page-table state of a
 * range in one call, as runs of pages with equal categories. uhmm never
 * reads /proc/self/pagemap entry by entry (~4x slower, see DESIGN.md §5).
 */
#include <errno.h>
#include <fcntl.h>
#include <sys/ioctl.h>
#include <unistd.h>

#include "sys.h"

int uhmm__pagemap_open(void)
{
	int fd = open("/proc/self/pagemap", O_RDONLY | O_CLOEXEC);

	return fd < 0 ? -errno : fd;
}

long uhmm__pagemap_scan(int fd, uintptr_t start, uintptr_t end, struct page_region *vec,
			size_t vec_len, uint64_t mask, uint64_t inverted, uint64_t anyof,
			uint64_t return_mask, uintptr_t *walk_end)
{
	struct pm_scan_arg arg = {
		.size = sizeof(arg),
		.start = start,
		.end = end,
		.vec = (uintptr_t)vec,
		.vec_len = vec_len,
		.category_mask = mask,
		.category_inverted = inverted,
		.category_anyof_mask = anyof,
		.return_mask = return_mask,
	};
	long r = ioctl(fd, PAGEMAP_SCAN, &arg);

	if (walk_end)
		*walk_end = arg.walk_end;
	return r < 0 ? -errno : r;
}

#define WALK_BATCH 512

int uhmm__pagemap_walk(int fd, uintptr_t start, uintptr_t end, uint64_t anyof,
		       uint64_t return_mask, uhmm__region_cb cb, void *arg)
{
	struct page_region vec[WALK_BATCH];

	while (start < end) {
		uintptr_t walk_end = 0, next;
		long n = uhmm__pagemap_scan(fd, start, end, vec, WALK_BATCH, 0, 0, anyof,
					    return_mask, &walk_end);

		if (n < 0)
			return (int)n;
		for (long i = 0; i < n; i++) {
			int r = cb(arg, &vec[i]);

			if (r)
				return r;
		}
		/*
		 * A short batch means the kernel walked to the end. Otherwise
		 * walk_end may lie before the last region returned (kernel bug,
		 * DESIGN.md §6): resume after whichever is later.
		 */
		if ((size_t)n < WALK_BATCH)
			break;
		next = walk_end;
		if (vec[n - 1].end > next)
			next = vec[n - 1].end;
		if (next <= start)
			return -EIO; /* no progress: never loop forever */
		start = next;
	}
	return 0;
}
