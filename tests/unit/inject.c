/* SPDX-License-Identifier: MIT */
/*
 * inject: fail the n-th resource acquisition (memory, fd, thread, mapping)
 * for n = 1, 2, ... until each operation succeeds. Every failure must be a
 * clean -errno that leaks no fd, thread or managed range, and leaves the
 * user's data intact.
 */
#include "test.h"

void uhmm__inject_after(long n);


int main(void)
{
	struct uhmm_mm *mm = NULL;
	int fds0, tasks0, r, steps = 0;
	long n;

	uhmm_mm_free(test_mm_new());
	fds0 = test_count_dir("/proc/self/fd");
	tasks0 = test_count_dir("/proc/self/task");

	/* uhmm_mm_new */
	for (n = 1;; n++) {
		uhmm__inject_after(n);
		r = uhmm_mm_new(&mm, NULL);
		uhmm__inject_after(0);
		if (!r)
			break;
		CHECK(mm == NULL);
		CHECK(r == -ENOMEM || r == -EMFILE || r == -EAGAIN);
		CHECK_EQ(test_count_dir("/proc/self/fd"), fds0);
		CHECK_EQ(test_count_dir("/proc/self/task"), tasks0);
		steps++;
	}
	CHECK(steps >= 4); /* memory, fds and the thread were all walked */

	/* uhmm_manage over two mappings (anon + shmem: two pieces), with data */
	{
		char *a = test_anon(64 * PAGE_SIZE);

		CHECK(mmap(a + 32 * PAGE_SIZE, 32 * PAGE_SIZE, PROT_READ | PROT_WRITE,
			   MAP_SHARED | MAP_ANONYMOUS | MAP_FIXED, -1, 0) != MAP_FAILED);
		for (size_t i = 0; i < 64; i += 2)
			a[i * PAGE_SIZE] = (char)(i + 1);
		for (n = 1;; n++) {
			uhmm__inject_after(n);
			r = uhmm_manage(mm, a, 64 * PAGE_SIZE, 0);
			uhmm__inject_after(0);
			if (!r)
				break;
			CHECK_EQ(r, -ENOMEM);
			CHECK_EQ(uhmm_mm_areas(mm, NULL, 0), 0);
			/* Nothing stays registered: a second mm can take it. */
			for (size_t i = 0; i < 64; i += 2)
				CHECK_EQ(a[i * PAGE_SIZE], (char)(i + 1));
		}
		CHECK(n > 1);
		CHECK(uhmm_is_managed(mm, a, 64 * PAGE_SIZE));
		for (size_t i = 0; i < 64; i++)
			CHECK_EQ(a[i * PAGE_SIZE], i % 2 ? 0 : (char)(i + 1));
		/* unmanage the middle: needs a table slot for the split */
		for (n = 1;; n++) {
			uhmm__inject_after(n);
			r = uhmm_unmanage(mm, a + 8 * PAGE_SIZE, 8 * PAGE_SIZE);
			uhmm__inject_after(0);
			if (!r)
				break;
			CHECK_EQ(r, -ENOMEM);
			CHECK(uhmm_is_managed(mm, a, 64 * PAGE_SIZE));
		}
		CHECK(!uhmm_is_managed(mm, a + 8 * PAGE_SIZE, PAGE_SIZE));
		CHECK(uhmm_is_managed(mm, a, 8 * PAGE_SIZE));
		munmap(a, 64 * PAGE_SIZE);
	}

	/* uhmm_alloc */
	for (n = 1;; n++) {
		void *p;

		uhmm__inject_after(n);
		p = uhmm_alloc(mm, 16 * PAGE_SIZE, 0);
		uhmm__inject_after(0);
		if (p) {
			CHECK_EQ(((char *)p)[5], 0);
			CHECK_EQ(uhmm_free(mm, p, 16 * PAGE_SIZE), 0);
			break;
		}
		CHECK(errno == ENOMEM);
	}
	uhmm_mm_free(mm);
	CHECK_EQ(test_count_dir("/proc/self/fd"), fds0);
	CHECK_EQ(test_count_dir("/proc/self/task"), tasks0);
	return 0;
}
