/* SPDX-License-Identifier: MIT */
/*
 * events: the area table after each of munmap of the head, the middle and
 * the tail of an area; mremap moves with and without MREMAP_DONTUNMAP (the
 * page states move with the pages); MADV_DONTNEED. The books are checked
 * right after each syscall returns: docs/EVENTS.md promises that every uhmm
 * call made after the syscall sees its effect.
 */
#include "test.h"

#define N 16

/* The area starting at @start, or fail. */
static struct uhmm_area_info area_at(struct uhmm_mm *mm, uintptr_t start)
{
	struct uhmm_area_info ai[8];
	size_t n = uhmm_mm_areas(mm, ai, 8);

	for (size_t i = 0; i < n && i < 8; i++)
		if (ai[i].start == start)
			return ai[i];
	fprintf(stderr, "no area at %#lx\n", (unsigned long)start);
	exit(1);
}

static void expect_areas(struct uhmm_mm *mm, size_t n, const uintptr_t (*want)[2])
{
	struct uhmm_area_info ai[8];
	size_t got = uhmm_mm_areas(mm, ai, 8);

	if (got != n) {
		fprintf(stderr, "%zu areas, expected %zu\n", got, n);
		for (size_t i = 0; i < got && i < 8; i++)
			fprintf(stderr, "  [%#lx, %#lx)\n", (unsigned long)ai[i].start,
				(unsigned long)ai[i].end);
		exit(1);
	}
	for (size_t i = 0; i < n; i++) {
		CHECK_EQ(ai[i].start, want[i][0]);
		CHECK_EQ(ai[i].end, want[i][1]);
	}
}

#define P(i) ((uintptr_t)(p + (i) * PAGE_SIZE))

int main(void)
{
	struct uhmm_mm *mm = test_mm_new();
	struct uhmm_mm_stats st;
	char *p = test_anon(N * PAGE_SIZE), *q;

	for (size_t i = 0; i < N; i++)
		p[i * PAGE_SIZE] = (char)('a' + i);
	CHECK_EQ(uhmm_manage(mm, p, N * PAGE_SIZE, 0), 0);

	/* munmap head, tail, middle: the area shrinks, then splits. */
	CHECK_EQ(munmap(p, PAGE_SIZE), 0);
	expect_areas(mm, 1, (const uintptr_t[][2]){ { P(1), P(N) } });
	CHECK_EQ(munmap(p + (N - 1) * PAGE_SIZE, PAGE_SIZE), 0);
	expect_areas(mm, 1, (const uintptr_t[][2]){ { P(1), P(N - 1) } });
	CHECK_EQ(munmap(p + 7 * PAGE_SIZE, 2 * PAGE_SIZE), 0);
	expect_areas(mm, 2, (const uintptr_t[][2]){ { P(1), P(7) }, { P(9), P(N - 1) } });
	uhmm_mm_stats(mm, &st);
	CHECK_EQ(st.events_unmap, 3);

	/* mremap move of [9, 15) elsewhere: the area follows with the data. */
	q = mmap(NULL, 6 * PAGE_SIZE, PROT_NONE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
	CHECK(q != MAP_FAILED);
	CHECK(mremap(p + 9 * PAGE_SIZE, 6 * PAGE_SIZE, 6 * PAGE_SIZE,
		     MREMAP_MAYMOVE | MREMAP_FIXED, q) == q);
	CHECK_EQ(uhmm_mm_areas(mm, NULL, 0), 2);
	CHECK_EQ(area_at(mm, P(1)).end, P(7));
	CHECK_EQ(area_at(mm, (uintptr_t)q).end, (uintptr_t)q + 6 * PAGE_SIZE);
	for (size_t i = 0; i < 6; i++)
		CHECK_EQ(q[i * PAGE_SIZE], (char)('a' + 9 + i));

	/* ... and back with MREMAP_DONTUNMAP: both ranges stay managed. */
	CHECK(mremap(q, 6 * PAGE_SIZE, 6 * PAGE_SIZE,
		     MREMAP_MAYMOVE | MREMAP_FIXED | MREMAP_DONTUNMAP,
		     p + 9 * PAGE_SIZE) == p + 9 * PAGE_SIZE);
	CHECK_EQ(uhmm_mm_areas(mm, NULL, 0), 3);
	CHECK_EQ(area_at(mm, P(9)).end, P(15));
	CHECK_EQ(area_at(mm, (uintptr_t)q).end, (uintptr_t)q + 6 * PAGE_SIZE);
	for (size_t i = 0; i < 6; i++) {
		CHECK_EQ(p[(9 + i) * PAGE_SIZE], (char)('a' + 9 + i));
		CHECK_EQ(q[i * PAGE_SIZE], 0); /* the emptied source reads zeros */
	}
	uhmm_mm_stats(mm, &st);
	CHECK_EQ(st.events_remap, 2);

	/* MADV_DONTNEED: pages read back as zeros, the area stays. */
	CHECK_EQ(madvise(p + 2 * PAGE_SIZE, 2 * PAGE_SIZE, MADV_DONTNEED), 0);
	CHECK_EQ(p[2 * PAGE_SIZE], 0);
	CHECK_EQ(p[3 * PAGE_SIZE], 0);
	CHECK_EQ(p[4 * PAGE_SIZE], 'e');
	uhmm_mm_stats(mm, &st);
	CHECK_EQ(st.events_remove, 1);
	CHECK(uhmm_is_managed(mm, p + PAGE_SIZE, 6 * PAGE_SIZE));

	/* unmanage the middle of an area: split, the pages keep their data. */
	CHECK_EQ(uhmm_unmanage(mm, p + 4 * PAGE_SIZE, PAGE_SIZE), 0);
	CHECK(!uhmm_is_managed(mm, p + 4 * PAGE_SIZE, PAGE_SIZE));
	CHECK(uhmm_is_managed(mm, p + 5 * PAGE_SIZE, 2 * PAGE_SIZE));
	CHECK_EQ(p[4 * PAGE_SIZE], 'e');
	uhmm_mm_free(mm);
	return 0;
}
