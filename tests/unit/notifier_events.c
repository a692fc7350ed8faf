/* SPDX-License-Identifier: MIT */
/*
 * notifier_events: every invalidation source fires with the right event,
 * range and owner, at the promised moment (docs/MIRROR.md), and a notifier
 * outside the range is not called:
 *   munmap -> UNMAP, before;          mmap(MAP_FIXED) over -> UNMAP, before;
 *   MADV_DONTNEED/FREE -> CLEAR, before; MADV_REMOVE (shmem) -> CLEAR, before;
 *   mprotect -> PROTECTION_VMA, before; mremap -> REMAP, before;
 *   raw syscall(SYS_munmap) -> UNMAP, after (userfaultfd event);
 *   uhmm_mm_free -> RELEASE.
 */
#include <sys/syscall.h>

#include "mirror_dev.h"
#include "test.h"

#define N 16

struct seen {
	int calls;
	enum uhmm_notify_event event;
	uintptr_t start, end;
	void *owner;
	int mapped;	/* mincore at callback time: 1 mapped, 0 unmapped */
	int resident;	/* first page of the range resident at callback time */
	int prot_read;	/* first page readable at callback time (from maps) */
};

static struct seen seen;

static int perms_at(uintptr_t a)
{
	FILE *f = fopen("/proc/self/maps", "r");
	char line[512];
	int r = -1;

	while (f && fgets(line, sizeof(line), f)) {
		unsigned long s, e;
		char p[5];

		if (sscanf(line, "%lx-%lx %4s", &s, &e, p) == 3 && s <= a && a < e) {
			r = p[0] == 'r';
			break;
		}
	}
	if (f)
		fclose(f);
	return r;
}

static void record(struct mdev *d, const struct uhmm_notifier_range *r)
{
	unsigned char v = 0;

	(void)d;
	seen.calls++;
	seen.event = r->event;
	seen.start = r->start;
	seen.end = r->end;
	seen.owner = r->owner;
	if (r->event == UHMM_NOTIFY_RELEASE)
		return;
	seen.mapped = mincore((void *)r->start, 4096, &v) == 0;
	seen.resident = seen.mapped && (v & 1);
	seen.prot_read = perms_at(r->start);
}

static void expect(enum uhmm_notify_event ev, void *s, size_t len)
{
	if (seen.calls != 1 || seen.event != ev || seen.start != (uintptr_t)s ||
	    seen.end != (uintptr_t)s + len || seen.owner) {
		fprintf(stderr, "expected 1 %s [%p, +%zu), got %d %s [%#lx, %#lx) owner %p\n",
			uhmm_notify_event_name(ev), s, len, seen.calls,
			uhmm_notify_event_name(seen.event), (unsigned long)seen.start,
			(unsigned long)seen.end, seen.owner);
		exit(1);
	}
}

int main(void)
{
	struct uhmm_mm *mm = test_mm_new();
	struct mdev d, far;
	char *p = test_anon(N * PAGE_SIZE), *other = test_anon(N * PAGE_SIZE);
	char *sh = test_map(N * PAGE_SIZE, MAP_SHARED | MAP_ANONYMOUS);

	memset(p, 1, N * PAGE_SIZE);
	memset(sh, 1, N * PAGE_SIZE);
	CHECK_EQ(uhmm_manage(mm, p, N * PAGE_SIZE, 0), 0);
	CHECK_EQ(mdev_init(&d, mm, p, N * PAGE_SIZE), 0);
	CHECK_EQ(mdev_init(&far, mm, other, N * PAGE_SIZE), 0); /* never touched below */
	d.on_invalidate = record;

	/* MADV_DONTNEED: CLEAR, page still resident when the device hears. */
	memset(&seen, 0, sizeof(seen));
	CHECK_EQ(madvise(p + PAGE_SIZE, PAGE_SIZE, MADV_DONTNEED), 0);
	expect(UHMM_NOTIFY_CLEAR, p + PAGE_SIZE, PAGE_SIZE);
	CHECK_EQ(seen.resident, 1);

	/* MADV_FREE (no userfaultfd event exists for it): CLEAR, before. */
	memset(&seen, 0, sizeof(seen));
	CHECK_EQ(madvise(p + 2 * PAGE_SIZE, PAGE_SIZE, MADV_FREE), 0);
	expect(UHMM_NOTIFY_CLEAR, p + 2 * PAGE_SIZE, PAGE_SIZE);
	CHECK_EQ(seen.resident, 1);

	/* mprotect (no event either): PROTECTION_VMA, old protection still in place. */
	memset(&seen, 0, sizeof(seen));
	CHECK_EQ(mprotect(p + 3 * PAGE_SIZE, PAGE_SIZE, PROT_NONE), 0);
	expect(UHMM_NOTIFY_PROTECTION_VMA, p + 3 * PAGE_SIZE, PAGE_SIZE);
	CHECK_EQ(seen.prot_read, 1);
	CHECK_EQ(perms_at((uintptr_t)p + 3 * PAGE_SIZE), 0);

	/* munmap: UNMAP while still mapped. */
	memset(&seen, 0, sizeof(seen));
	CHECK_EQ(munmap(p + 4 * PAGE_SIZE, PAGE_SIZE), 0);
	expect(UHMM_NOTIFY_UNMAP, p + 4 * PAGE_SIZE, PAGE_SIZE);
	CHECK_EQ(seen.mapped, 1);

	/* mmap(MAP_FIXED) over a managed page: UNMAP, before; the books drop it. */
	memset(&seen, 0, sizeof(seen));
	CHECK(mmap(p + 5 * PAGE_SIZE, PAGE_SIZE, PROT_READ | PROT_WRITE,
		   MAP_PRIVATE | MAP_ANONYMOUS | MAP_FIXED, -1, 0) == p + 5 * PAGE_SIZE);
	expect(UHMM_NOTIFY_UNMAP, p + 5 * PAGE_SIZE, PAGE_SIZE);
	CHECK_EQ(seen.resident, 1);
	CHECK(!uhmm_is_managed(mm, p + 5 * PAGE_SIZE, PAGE_SIZE));

	/* mremap move: REMAP of the old range, while it is still there. */
	{
		char *q = mmap(NULL, 2 * PAGE_SIZE, PROT_NONE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);

		memset(&seen, 0, sizeof(seen));
		CHECK(mremap(p + 6 * PAGE_SIZE, 2 * PAGE_SIZE, 2 * PAGE_SIZE,
			     MREMAP_MAYMOVE | MREMAP_FIXED, q) == q);
		expect(UHMM_NOTIFY_REMAP, p + 6 * PAGE_SIZE, 2 * PAGE_SIZE);
		CHECK_EQ(seen.resident, 1);
		CHECK(uhmm_is_managed(mm, q, 2 * PAGE_SIZE));
	}

	/* A raw syscall bypasses the interposer: UNMAP from the event, after. */
	memset(&seen, 0, sizeof(seen));
	CHECK_EQ(syscall(SYS_munmap, p + 9 * PAGE_SIZE, PAGE_SIZE), 0);
	{
		struct uhmm_mm_stats st;

		uhmm_mm_stats(mm, &st); /* barrier: the event has been applied */
	}
	expect(UHMM_NOTIFY_UNMAP, p + 9 * PAGE_SIZE, PAGE_SIZE);
	CHECK_EQ(seen.mapped, 0);

	/* Shared memory: MADV_REMOVE, on an unmanaged range the device mirrors. */
	{
		struct mdev ds;

		CHECK_EQ(mdev_init(&ds, mm, sh, N * PAGE_SIZE), 0);
		ds.on_invalidate = record;
		memset(&seen, 0, sizeof(seen));
		CHECK_EQ(madvise(sh, PAGE_SIZE, MADV_REMOVE), 0);
		expect(UHMM_NOTIFY_CLEAR, sh, PAGE_SIZE);
		CHECK_EQ(seen.resident, 1);
		mdev_fini(&ds);
	}

	CHECK_EQ(far.invalidations, 0); /* outside every range above */

	/* uhmm_mm_free: RELEASE to everyone; notifiers are detached after. */
	memset(&seen, 0, sizeof(seen));
	uhmm_mm_free(mm);
	CHECK_EQ(seen.calls, 1);
	CHECK_EQ(seen.event, UHMM_NOTIFY_RELEASE);
	CHECK_EQ(far.invalidations, 1);
	mdev_fini(&d);	 /* removing a detached notifier is allowed */
	mdev_fini(&far);
	return 0;
}
