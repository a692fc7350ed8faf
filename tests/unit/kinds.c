/* SPDX-License-Identifier: MIT */
/*
 * kinds: each kind of mapping uhmm_manage() accepts keeps its contents and
 * reports its kind: private anonymous, MAP_SHARED anonymous, memfd (shmem,
 * registered), a regular file on a disk file system (tracked, not
 * registered: userfaultfd cannot take it), a private file mapping. Fresh
 * pages of registered kinds fault through uhmm and read zeros.
 */
#include <fcntl.h>
#include <sys/syscall.h>

#include "test.h"

static void manage_and_check(struct uhmm_mm *mm, char *p, size_t len, unsigned int kind,
			     bool registered)
{
	struct uhmm_area_info ai[4];
	struct uhmm_mm_stats before, after;

	p[0] = 'k';
	CHECK_EQ(uhmm_manage(mm, p, len, 0), 0);
	CHECK_EQ(uhmm_mm_areas(mm, ai, 4), 1);
	CHECK_EQ(ai[0].kind, kind);
	CHECK_EQ(ai[0].registered, registered);
	CHECK_EQ(p[0], 'k');
	uhmm_mm_stats(mm, &before);
	CHECK_EQ(p[len - PAGE_SIZE], 0); /* a fresh page */
	p[len - 2 * PAGE_SIZE] = 'w';
	uhmm_mm_stats(mm, &after);
	if (registered)
		CHECK_EQ(after.faults - before.faults, 2);
	CHECK_EQ(p[len - 2 * PAGE_SIZE], 'w');
	CHECK_EQ(uhmm_unmanage(mm, p, len), 0);
	CHECK_EQ(uhmm_mm_areas(mm, NULL, 0), 0);
	CHECK_EQ(p[0], 'k');
	CHECK_EQ(munmap(p, len), 0);
}

int main(void)
{
	struct uhmm_mm *mm = test_mm_new();
	const size_t len = 8 * PAGE_SIZE;
	char path[] = "/var/tmp/uhmm-kinds-XXXXXX";
	int fd;

	manage_and_check(mm, test_anon(len), len, UHMM_AREA_ANON, true);
	manage_and_check(mm, test_map(len, MAP_SHARED | MAP_ANONYMOUS), len, UHMM_AREA_SHMEM,
			 true);

	fd = (int)syscall(SYS_memfd_create, "uhmm-kinds", 0);
	CHECK(fd >= 0);
	CHECK_EQ(ftruncate(fd, (off_t)len), 0);
	manage_and_check(mm, mmap(NULL, len, PROT_READ | PROT_WRITE, MAP_SHARED, fd, 0), len,
			 UHMM_AREA_SHMEM, true);
	close(fd);

	/* /var/tmp is on a disk file system here; tmpfs would be shmem. */
	fd = mkstemp(path);
	CHECK(fd >= 0);
	unlink(path);
	CHECK_EQ(ftruncate(fd, (off_t)len), 0);
	{
		char *p = mmap(NULL, len, PROT_READ | PROT_WRITE, MAP_SHARED, fd, 0);
		struct uhmm_area_info ai;

		CHECK(p != MAP_FAILED);
		p[0] = 'k';
		CHECK_EQ(uhmm_manage(mm, p, len, 0), 0);
		CHECK_EQ(uhmm_mm_areas(mm, &ai, 1), 1);
		CHECK(ai.kind == UHMM_AREA_FILE || ai.kind == UHMM_AREA_SHMEM);
		if (ai.kind == UHMM_AREA_FILE)
			CHECK(!ai.registered);
		CHECK_EQ(uhmm_unmanage(mm, p, len), 0);
		munmap(p, len);
		/* MAP_PRIVATE of the same file */
		p = mmap(NULL, len, PROT_READ | PROT_WRITE, MAP_PRIVATE, fd, 0);
		CHECK(p != MAP_FAILED);
		CHECK_EQ(uhmm_manage(mm, p, len, 0), 0);
		CHECK_EQ(p[0], 'k');
		p[1] = 'p';
		CHECK_EQ(uhmm_unmanage(mm, p, len), 0);
		munmap(p, len);
	}
	close(fd);
	uhmm_mm_free(mm);
	return 0;
}
