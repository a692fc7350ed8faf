/* SPDX-License-Identifier: MIT */
/*
 * lifecycle: uhmm_mm_new/free in a loop leaks no fd, no thread and no
 * memory; free(NULL) is allowed; a managed range survives teardown with its
 * contents and is ordinary memory afterwards.
 */
#include "test.h"


int main(void)
{
	int fds0, tasks0;

	uhmm_mm_free(NULL);
	uhmm_mm_free(test_mm_new()); /* warm up lazily created process state */
	fds0 = test_count_dir("/proc/self/fd");
	tasks0 = test_count_dir("/proc/self/task");
	for (int i = 0; i < 200; i++) {
		struct uhmm_mm *mm = test_mm_new();
		char *p = test_anon(16 * PAGE_SIZE);

		p[0] = 'x';
		CHECK_EQ(uhmm_manage(mm, p, 16 * PAGE_SIZE, 0), 0);
		CHECK_EQ(p[PAGE_SIZE], 0); /* faulted through uhmm */
		p[PAGE_SIZE] = 'y';
		uhmm_mm_free(mm);
		CHECK_EQ(p[0], 'x');
		CHECK_EQ(p[PAGE_SIZE], 'y');
		p[2 * PAGE_SIZE] = 'z'; /* ordinary memory again */
		CHECK_EQ(munmap(p, 16 * PAGE_SIZE), 0);
	}
	CHECK_EQ(test_count_dir("/proc/self/fd"), fds0);
	CHECK_EQ(test_count_dir("/proc/self/task"), tasks0);
	return 0;
}
