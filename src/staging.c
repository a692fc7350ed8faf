/* SPDX-License-Identifier: MIT */
/*
 * staging.c - where a migration keeps the pages it has taken out of the
 * CPU page table (the kernel keeps them behind migration entries), and where
 * data coming home from a device lands before it is put in place.
 *
 * A staging area is anonymous memory of uhmm's, registered with the mm's
 * userfaultfd (UFFDIO_MOVE lands only in registered memory, and isolating a
 * page of the program must be a move issued on that userfaultfd, so that
 * the kernel refuses it while the program's mappings are changing). It is
 * registered in write-protect mode where the kernel allows (uhmm never
 * write-protects a page): a device copy callback writing into a hole of it
 * then takes an ordinary kernel fault, never one that waits for uhmm. The
 * part serving a range is congruent with it modulo 2 MiB, so that a THP
 * moves out and back as one PMD. It is MADV_DONTFORK (fork.c).
 *
 * The rule that keeps data from leaking between migrations: a staging area
 * is empty when a migration gets it, and it is emptied when it is given
 * back, whatever the migration left there (a read-only page copied in, a
 * zero page moved in, a copy a device made, a page that failed to move).
 * Emptying is a PAGEMAP_SCAN of the part used (rounded out to 2 MiB: a
 * write into a hole may have made the kernel fill a whole THP) and a
 * MADV_DONTNEED of what it finds, done while unregistered so that it raises
 * no event. Data moves into staging only where it is empty; a move that
 * finds a page there anyway (-EEXIST) drops it and moves again (move.c).
 *
 * A few mappings are cached per mm (a fault-back would otherwise pay four
 * system calls for one page). Getting and putting never allocate heap
 * memory: the signal-mode fault handler uses them. staging_lock guards the
 * cache only.
 */
#include <errno.h>
#include <string.h>
#include <sys/mman.h>

#include "internal.h"

static uint64_t register_mode(struct uhmm_mm *mm)
{
	return mm->own_wp ? UFFDIO_REGISTER_MODE_WP : UFFDIO_REGISTER_MODE_MISSING;
}

static int staging_map(struct uhmm_mm *mm, size_t maplen, char **out)
{
	void *raw;
	int r;

	if (uhmm__inject_fail())
		return -ENOMEM;
	r = uhmm__sys_mmap(&raw, NULL, maplen, PROT_READ | PROT_WRITE,
			   MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE, -1, 0);
	if (r)
		return r;
	uhmm__sys_madvise(raw, maplen, MADV_HUGEPAGE);
	uhmm__sys_madvise(raw, maplen, MADV_DONTFORK);
	r = uhmm__uffd_register(mm->uffd, (uintptr_t)raw, maplen, register_mode(mm), NULL);
	if (r) {
		uhmm__sys_munmap(raw, maplen);
		return r == -EINVAL ? -ENOMEM : r;
	}
	*out = raw;
	return 0;
}

static void staging_unmap(struct uhmm_mm *mm, char *map, size_t maplen)
{
	/* Unregister first: unmapping a registered range raises an event. */
	uhmm__uffd_unregister(mm->uffd, (uintptr_t)map, maplen);
	uhmm__sys_munmap(map, maplen);
}

void uhmm__zap_staging(struct uhmm_mm *mm, uintptr_t start, size_t len)
{
	/*
	 * Unregistered for the moment of the drop: no REMOVE event, so the mm
	 * is never "changing" because of uhmm's own memory (concurrent
	 * UFFDIO_MOVE/COPY would fail with -EAGAIN) and nobody waits for a
	 * service thread. Nobody else uses this range meanwhile.
	 */
	uhmm__uffd_unregister(mm->uffd, start, len);
	uhmm__sys_madvise((void *)start, len, MADV_DONTNEED);
	uhmm__uffd_register(mm->uffd, start, len, register_mode(mm), NULL);
}

struct empty_arg {
	struct uhmm_mm *mm;
	uintptr_t run_start, run_end; /* a run of pages to drop, merged */
};

static int empty_cb(void *p, const struct page_region *r)
{
	struct empty_arg *a = p;

	if (a->run_end == r->start) {
		a->run_end = r->end;
		return 0;
	}
	if (a->run_end > a->run_start)
		uhmm__zap_staging(a->mm, a->run_start, a->run_end - a->run_start);
	a->run_start = r->start;
	a->run_end = r->end;
	return 0;
}

/*
 * Drop every page left in the part of @st a migration used, rounded out to
 * 2 MiB within the mapping: a write into a hole of it (a device's copy)
 * may have made the kernel fill a whole THP around the window, and zapping
 * only the window would split it and leave the rest behind.
 */
static void empty(struct uhmm_mm *mm, const struct uhmm__staging *st)
{
	uintptr_t map = (uintptr_t)st->map, map_end = map + st->maplen;
	uintptr_t start = (uintptr_t)st->base & ~(uintptr_t)(UHMM__PMD_SIZE - 1);
	uintptr_t end = ((uintptr_t)st->base + st->len + UHMM__PMD_SIZE - 1) &
			~(uintptr_t)(UHMM__PMD_SIZE - 1);
	struct empty_arg a = { .mm = mm };
	int r;

	start = start < map ? map : start;
	end = end > map_end ? map_end : end;
	r = uhmm__pagemap_walk(mm->pagemap_fd, start, end, PAGE_IS_PRESENT | PAGE_IS_SWAPPED,
			       PAGE_IS_PRESENT, empty_cb, &a);
	if (r) {
		uhmm__zap_staging(mm, start, end - start); /* could not look: drop it all */
		return;
	}
	if (a.run_end > a.run_start)
		uhmm__zap_staging(mm, a.run_start, a.run_end - a.run_start);
}

/* Is [start, start+len) empty? (expensive check) */
static __attribute__((unused)) bool is_empty(struct uhmm_mm *mm, uintptr_t start, size_t len)
{
	struct page_region r;
	uintptr_t we;

	return uhmm__pagemap_scan(mm->pagemap_fd, start, start + len, &r, 1, 0, 0,
				  PAGE_IS_PRESENT | PAGE_IS_SWAPPED, PAGE_IS_PRESENT, &we) == 0;
}

int uhmm__staging_get(struct uhmm_mm *mm, uintptr_t start, size_t len, struct uhmm__staging *st)
{
	size_t maplen = len + UHMM__PMD_SIZE;
	char *raw = NULL;
	uintptr_t a;
	int r;

	pthread_mutex_lock(&mm->staging_lock);
	for (int i = 0; i < UHMM__STAGING_CACHE; i++) {
		if (mm->staging_cache[i].map && mm->staging_cache[i].maplen >= maplen) {
			raw = mm->staging_cache[i].map;
			maplen = mm->staging_cache[i].maplen;
			mm->staging_cache[i].map = NULL;
			break;
		}
	}
	pthread_mutex_unlock(&mm->staging_lock);
	if (!raw && (r = staging_map(mm, maplen, &raw)))
		return r;
	/* Congruent with start modulo 2 MiB, so that THPs can move whole. */
	a = ((uintptr_t)raw & ~(UHMM__PMD_SIZE - 1)) + (start & (UHMM__PMD_SIZE - 1));
	if (a < (uintptr_t)raw)
		a += UHMM__PMD_SIZE;
	st->map = raw;
	st->maplen = maplen;
	st->base = (char *)a;
	st->len = len;
	uhmm__assert_expensive(is_empty(mm, (uintptr_t)raw, maplen));
	return 0;
}

void uhmm__staging_put(struct uhmm_mm *mm, struct uhmm__staging *st)
{
	char *evict = NULL;
	size_t evict_len = 0;
	int smallest = -1;

	if (!st->map)
		return;
	empty(mm, st);
	uhmm__assert_expensive(is_empty(mm, (uintptr_t)st->map, st->maplen));
	pthread_mutex_lock(&mm->staging_lock);
	for (int i = 0; i < UHMM__STAGING_CACHE; i++) {
		if (!mm->staging_cache[i].map) {
			smallest = i;
			break;
		}
		if (smallest < 0 || mm->staging_cache[i].maplen < mm->staging_cache[smallest].maplen)
			smallest = i;
	}
	if (!mm->staging_cache[smallest].map) {
		mm->staging_cache[smallest].map = st->map;
		mm->staging_cache[smallest].maplen = st->maplen;
	} else if (mm->staging_cache[smallest].maplen < st->maplen) {
		/* Keep the larger ones: they serve every smaller range too. */
		evict = mm->staging_cache[smallest].map;
		evict_len = mm->staging_cache[smallest].maplen;
		mm->staging_cache[smallest].map = st->map;
		mm->staging_cache[smallest].maplen = st->maplen;
	} else {
		evict = st->map;
		evict_len = st->maplen;
	}
	pthread_mutex_unlock(&mm->staging_lock);
	if (evict)
		staging_unmap(mm, evict, evict_len);
	memset(st, 0, sizeof(*st));
}

void uhmm__staging_drop_all(struct uhmm_mm *mm)
{
	for (int i = 0; i < UHMM__STAGING_CACHE; i++) {
		if (mm->staging_cache[i].map && uhmm__mm_live(mm))
			staging_unmap(mm, mm->staging_cache[i].map, mm->staging_cache[i].maplen);
		mm->staging_cache[i].map = NULL;
	}
}
