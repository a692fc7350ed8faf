/* SPDX-License-Identifier: MIT */
/*
 * differential: a managed mapping and an unmanaged twin receive the same
 * long random sequence of reads, writes, MADV_DONTNEED, partial munmap and
 * mremap (moves there and back, with and without MREMAP_DONTUNMAP). Their
 * contents must stay identical, and uhmm's area table must cover exactly the
 * pages of the managed mapping that are still mapped.
 */
#include "test.h"

#define NPAGES 256
#define STEPS 3000

struct twin {
	char *m, *t;		/* managed, twin */
	bool mapped[NPAGES];
};

/* A random run of mapped pages [*a, *b), or false if none. */
static bool pick_run(struct twin *w, uint64_t *s, size_t *a, size_t *b, size_t maxlen)
{
	for (int tries = 0; tries < 32; tries++) {
		size_t i = test_rand(s) % NPAGES, j = i;

		if (!w->mapped[i])
			continue;
		while (j < NPAGES && w->mapped[j] && j - i < maxlen)
			j++;
		*a = i;
		*b = i + 1 + (j - i > 1 ? test_rand(s) % (j - i - 1) : 0);
		return true;
	}
	return false;
}

/* mremap [a, b) of one side away and back, as the same syscalls on both. */
static void move_away_and_back(char *base, size_t a, size_t b, bool dontunmap)
{
	size_t len = (b - a) * PAGE_SIZE;
	char *src = base + a * PAGE_SIZE;
	char *away = mmap(NULL, len, PROT_NONE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
	int flags = MREMAP_MAYMOVE | MREMAP_FIXED | (dontunmap ? MREMAP_DONTUNMAP : 0);

	CHECK(away != MAP_FAILED);
	CHECK(mremap(src, len, len, flags, away) == away);
	if (dontunmap)
		CHECK_EQ(src[0], 0); /* the source is now empty, not gone */
	CHECK(mremap(away, len, len, MREMAP_MAYMOVE | MREMAP_FIXED, src) == src);
}

static void compare(struct twin *w)
{
	for (size_t i = 0; i < NPAGES; i++)
		if (w->mapped[i] && memcmp(w->m + i * PAGE_SIZE, w->t + i * PAGE_SIZE, PAGE_SIZE)) {
			fprintf(stderr, "page %zu differs\n", i);
			exit(1);
		}
}

static void check_areas(struct uhmm_mm *mm, struct twin *w)
{
	struct uhmm_area_info ai[NPAGES];
	size_t n = uhmm_mm_areas(mm, ai, NPAGES);
	bool managed[NPAGES] = { false };

	CHECK(n <= NPAGES);
	for (size_t k = 0; k < n; k++) {
		CHECK(ai[k].start >= (uintptr_t)w->m);
		CHECK(ai[k].end <= (uintptr_t)w->m + NPAGES * PAGE_SIZE);
		for (uintptr_t x = ai[k].start; x < ai[k].end; x += PAGE_SIZE)
			managed[(x - (uintptr_t)w->m) / PAGE_SIZE] = true;
	}
	for (size_t i = 0; i < NPAGES; i++)
		if (managed[i] != w->mapped[i]) {
			fprintf(stderr, "page %zu: managed %d, mapped %d\n", i, managed[i],
				w->mapped[i]);
			exit(1);
		}
}

int main(void)
{
	struct uhmm_mm *mm = test_mm_new();
	struct twin w;
	uint64_t seed = 0x9e3779b97f4a7c15ull;
	unsigned char buf[PAGE_SIZE];

	w.m = test_anon(NPAGES * PAGE_SIZE);
	w.t = test_anon(NPAGES * PAGE_SIZE);
	for (size_t i = 0; i < NPAGES; i++)
		w.mapped[i] = true;
	for (size_t i = 0; i < NPAGES; i += 3)
		w.m[i * PAGE_SIZE] = w.t[i * PAGE_SIZE] = (char)i; /* some populated */
	CHECK_EQ(uhmm_manage(mm, w.m, NPAGES * PAGE_SIZE, 0), 0);

	for (int step = 0; step < STEPS; step++) {
		unsigned op = test_rand(&seed) % 100;
		size_t a, b;

		if (!pick_run(&w, &seed, &a, &b, 16))
			break;
		if (op < 40) { /* write a random span */
			size_t off = a * PAGE_SIZE + test_rand(&seed) % PAGE_SIZE;
			size_t len = 1 + test_rand(&seed) % ((b - a) * PAGE_SIZE - off % PAGE_SIZE);

			for (size_t k = 0; k < len && k < sizeof(buf); k++)
				buf[k] = (unsigned char)test_rand(&seed);
			len = len < sizeof(buf) ? len : sizeof(buf);
			memcpy(w.m + off, buf, len);
			memcpy(w.t + off, buf, len);
		} else if (op < 75) { /* read and compare */
			CHECK(!memcmp(w.m + a * PAGE_SIZE, w.t + a * PAGE_SIZE, (b - a) * PAGE_SIZE));
		} else if (op < 88) { /* drop pages */
			CHECK_EQ(madvise(w.m + a * PAGE_SIZE, (b - a) * PAGE_SIZE, MADV_DONTNEED), 0);
			CHECK_EQ(madvise(w.t + a * PAGE_SIZE, (b - a) * PAGE_SIZE, MADV_DONTNEED), 0);
		} else if (op < 94) { /* move away and back */
			bool du = test_rand(&seed) & 1;

			move_away_and_back(w.m, a, b, du);
			move_away_and_back(w.t, a, b, du);
		} else if (op < 97) { /* punch a hole */
			CHECK_EQ(munmap(w.m + a * PAGE_SIZE, (b - a) * PAGE_SIZE), 0);
			CHECK_EQ(munmap(w.t + a * PAGE_SIZE, (b - a) * PAGE_SIZE), 0);
			for (size_t i = a; i < b; i++)
				w.mapped[i] = false;
		} else {
			compare(&w);
			check_areas(mm, &w);
		}
	}
	compare(&w);
	check_areas(mm, &w);
	{
		/* The run really went through uhmm: faults and every event kind. */
		struct uhmm_mm_stats st;

		uhmm_mm_stats(mm, &st);
		fprintf(stderr, "faults %llu unmap %llu remove %llu remap %llu\n",
			(unsigned long long)st.faults, (unsigned long long)st.events_unmap,
			(unsigned long long)st.events_remove, (unsigned long long)st.events_remap);
		CHECK(st.faults > 100);
		CHECK(st.events_unmap > 0 && st.events_remove > 0 && st.events_remap > 0);
	}
	uhmm_mm_free(mm);
	compare(&w); /* and after teardown, as ordinary memory */
	return 0;
}
