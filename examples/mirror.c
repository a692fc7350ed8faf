/* SPDX-License-Identifier: MIT */
/*
 * mirror.c - the smallest correct device mirror: a table of entries kept
 * with the retry protocol, cleared by its invalidate callback. Linked
 * against libuhmm.so: munmap() below reaches libuhmm's definition first, so
 * the device hears of it before the pages go. Copy this to start a driver.
 *
 * What the callback writes is read under the device lock, never plainly:
 * the callback runs inside munmap(), which glibc declares leaf, so the
 * compiler may keep a file-scope variable in a register across the call
 * (docs/MIRROR.md, "What a callback shares with the program").
 */
#include <errno.h>
#include <pthread.h>
#include <stdio.h>
#include <string.h>
#include <sys/mman.h>
#include <uhmm.h>

#define NPAGES 16

static pthread_mutex_t lock = PTHREAD_MUTEX_INITIALIZER; /* the device's table lock */
static unsigned long table[NPAGES];			  /* the device's "page table" */
static uintptr_t base;
static bool still_mapped_when_told;

static bool invalidate(struct uhmm_interval_notifier *n, const struct uhmm_notifier_range *r,
		       unsigned long cur_seq)
{
	unsigned char v;

	pthread_mutex_lock(&lock);
	uhmm_interval_set_seq(n, cur_seq);
	for (uintptr_t a = r->start; a < r->end; a += 4096)
		if (a >= base && a < base + NPAGES * 4096)
			table[(a - base) / 4096] = 0;
	if (r->event == UHMM_NOTIFY_UNMAP)
		still_mapped_when_told = mincore((void *)r->start, 4096, &v) == 0;
	pthread_mutex_unlock(&lock);
	return true;
}

static const struct uhmm_interval_notifier_ops ops = { .invalidate = invalidate };

int main(void)
{
	struct uhmm_interval_notifier n;
	unsigned long pfns[NPAGES];
	struct uhmm_range range = { .notifier = &n, .hmm_pfns = pfns,
				    .default_flags = UHMM_PFN_REQ_FAULT };
	struct uhmm_mm *mm;
	unsigned long entry0, entry1;
	bool told;
	char *buf;
	int r = uhmm_mm_new(&mm, NULL);

	if (r) {
		fprintf(stderr, "uhmm_mm_new: %s\n", uhmm_strerror(r));
		return r == -EPERM ? 77 : 1;
	}
	buf = mmap(NULL, NPAGES * 4096, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
	memset(buf, 1, NPAGES * 4096);
	base = (uintptr_t)buf;
	range.start = base;
	range.end = base + NPAGES * 4096;
	uhmm_interval_notifier_insert(&n, mm, base, NPAGES * 4096, &ops);

	for (;;) { /* begin -> fault -> lock -> retry? -> commit */
		range.notifier_seq = uhmm_interval_read_begin(&n);
		r = uhmm_range_fault(&range);
		if (r == -EBUSY)
			continue;
		if (r)
			return 1;
		pthread_mutex_lock(&lock);
		if (uhmm_interval_read_retry(&n, range.notifier_seq)) {
			pthread_mutex_unlock(&lock);
			continue;
		}
		memcpy(table, pfns, sizeof(table));
		pthread_mutex_unlock(&lock);
		break;
	}
	printf("mirrored %d pages, page 0 %s\n", NPAGES,
	       table[0] & UHMM_PFN_WRITE ? "writable" : "read-only");

	munmap(buf + 4096, 4096); /* the device hears before the page goes */
	pthread_mutex_lock(&lock);
	told = still_mapped_when_told;
	entry0 = table[0];
	entry1 = table[1];
	pthread_mutex_unlock(&lock);
	printf("munmap: device told while still mapped: %s; entry now %#lx\n", told ? "yes" : "NO",
	       entry1);

	uhmm_interval_notifier_remove(&n);
	uhmm_mm_free(mm);
	return told && entry1 == 0 && (entry0 & UHMM_PFN_VALID) ? 0 : 1;
}
