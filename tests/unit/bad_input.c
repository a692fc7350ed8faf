/* SPDX-License-Identifier: MIT */
/*
 * bad_input: every documented -errno of the foundation API, and that a
 * refused call leaves nothing managed.
 */
#include <sys/auxv.h>

#include "test.h"

int main(void)
{
	struct uhmm_mm *mm = test_mm_new(), *mm2 = test_mm_new();
	struct uhmm_mm_config bad = { .fault_mode = 7 };
	struct uhmm_mm *out;
	char *p = test_anon(8 * PAGE_SIZE);
	uintptr_t vdso = getauxval(AT_SYSINFO_EHDR);

	/* Constructors. */
	CHECK_EQ(uhmm_mm_new(NULL, NULL), -EINVAL);
	CHECK_EQ(uhmm_mm_new(&out, &bad), -EINVAL);
	bad = (struct uhmm_mm_config){ .fault_mode = UHMM_FAULT_THREAD, .service_threads = 1000 };
	CHECK_EQ(uhmm_mm_new(&out, &bad), -EINVAL);
	{
		char *old = getenv("UHMM_FAULT_MODE");
		char save[16] = "";

		if (old)
			snprintf(save, sizeof(save), "%s", old);
		setenv("UHMM_FAULT_MODE", "fast", 1);
		CHECK_EQ(uhmm_mm_new(&out, NULL), -EINVAL); /* never a silent default */
		if (*save)
			setenv("UHMM_FAULT_MODE", save, 1);
		else
			unsetenv("UHMM_FAULT_MODE");
	}

	/* Ranges. */
	CHECK_EQ(uhmm_manage(mm, p + 1, PAGE_SIZE, 0), -EINVAL);
	CHECK_EQ(uhmm_manage(mm, p, PAGE_SIZE + 1, 0), -EINVAL);
	CHECK_EQ(uhmm_manage(mm, p, 0, 0), -EINVAL);
	CHECK_EQ(uhmm_manage(mm, (void *)-PAGE_SIZE, 2 * PAGE_SIZE, 0), -EINVAL);
	CHECK_EQ(uhmm_manage(mm, p, PAGE_SIZE, 0x80), -EINVAL);
	CHECK_EQ(uhmm_manage(NULL, p, PAGE_SIZE, 0), -EINVAL);
	CHECK_EQ(uhmm_unmanage(mm, p + 1, PAGE_SIZE), -EINVAL);

	/* Not mapped: a hole in the middle. */
	CHECK_EQ(munmap(p + 4 * PAGE_SIZE, PAGE_SIZE), 0);
	CHECK_EQ(uhmm_manage(mm, p, 8 * PAGE_SIZE, 0), -ENOMEM);
	CHECK(!uhmm_is_managed(mm, p, PAGE_SIZE)); /* nothing half-done */
	CHECK_EQ(uhmm_mm_areas(mm, NULL, 0), 0);

	/* Managed differently. */
	CHECK_EQ(uhmm_manage(mm, p, 4 * PAGE_SIZE, 0), 0);
	CHECK_EQ(uhmm_manage(mm, p, 4 * PAGE_SIZE, 0), 0); /* idempotent */
	CHECK_EQ(uhmm_mm_areas(mm, NULL, 0), 1);
	CHECK_EQ(uhmm_manage(mm, p + 2 * PAGE_SIZE, 2 * PAGE_SIZE, UHMM_MANAGE_MIRROR_ONLY),
		 -EEXIST);
	CHECK_EQ(uhmm_manage(mm2, p, PAGE_SIZE, 0), -EEXIST); /* another mm has it */
	CHECK(!uhmm_is_managed(mm2, p, PAGE_SIZE));

	/* Mappings userfaultfd cannot take. */
	if (vdso)
		CHECK_EQ(uhmm_manage(mm, (void *)vdso, PAGE_SIZE, 0), -EOPNOTSUPP);
	{
		void *h = mmap(NULL, 2u << 20, PROT_READ | PROT_WRITE,
			       MAP_PRIVATE | MAP_ANONYMOUS | MAP_HUGETLB, -1, 0);

		if (h != MAP_FAILED) {
			CHECK_EQ(uhmm_manage(mm, h, 2u << 20, 0), -EOPNOTSUPP);
			munmap(h, 2u << 20);
		} else {
			fprintf(stderr, "note: no huge pages, hugetlb refusal not exercised\n");
		}
	}

	/* alloc/free. */
	errno = 0;
	CHECK(uhmm_alloc(mm, 0, 0) == NULL && errno == EINVAL);
	CHECK(uhmm_alloc(mm, PAGE_SIZE, 0x40) == NULL && errno == EINVAL);
	CHECK(uhmm_alloc(mm, SIZE_MAX, 0) == NULL && errno == EINVAL);
	CHECK_EQ(uhmm_free(mm, NULL, 0), 0);
	CHECK_EQ(uhmm_free(mm, p + 5 * PAGE_SIZE, PAGE_SIZE), -EINVAL); /* not managed */

	uhmm_mm_free(mm2);
	uhmm_mm_free(mm);
	return 0;
}
