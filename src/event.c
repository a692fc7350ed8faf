/* SPDX-License-Identifier: MIT */
/*
 * event.c - keeping the books when the program changes its mappings.
 *
 * userfaultfd reports, for registered ranges:
 *   UNMAP   munmap(), and the shrinking part of mremap();
 *   REMOVE  madvise(MADV_DONTNEED / MADV_REMOVE): pages dropped, range stays;
 *   REMAP   mremap() that moved the range (from, to, old length).
 * Each is applied to the area table here, and to the page states through
 * pstate.c, under mm->event_lock (held by the reader) and mm->lock. A
 * discard never waits for a migration: pages a migration owns are marked,
 * and the migration drops their data when it ends (migrate.c).
 *
 * Ordering (docs/EVENTS.md): the kernel makes munmap()/madvise() wait until
 * the event has been *read*; the reader holds event_lock until it is applied.
 * So the books are exact for any uhmm call made after the syscall returns
 * (every verb that reads the table takes the barrier first).
 *
 * REMAP with MREMAP_DONTUNMAP leaves the old range mapped, empty and still
 * registered; the message does not say which mremap it was, so the old range
 * is looked up: when still mapped it keeps a fresh, empty area.
 */
#include <errno.h>
#include <string.h>

#include "internal.h"

static void apply_unmap(struct uhmm_mm *mm, uintptr_t start, uintptr_t end)
{
	/* Device pages holding data of the range are freed with it. */
	uhmm__area_remove(mm, start, end);
}

static void apply_remove(struct uhmm_mm *mm, uintptr_t start, uintptr_t end)
{
	struct uhmm__put_list puts = { 0 };

	/*
	 * The pages are dropped wherever they live, as the kernel zaps
	 * device-private entries: device pages are freed, states reset, pages
	 * being migrated are marked for their migration to drop. uhmm's own
	 * zap of a page it copied away is not a discard.
	 */
	uhmm__lock(&mm->lock);
	if (!uhmm__own_zap_consume(mm, start, end))
		uhmm__ps_discard_range(mm, start, end, &puts);
	uhmm__unlock(&mm->lock);
	uhmm__put_list(&puts);
}

static void apply_remap(struct uhmm_mm *mm, uintptr_t from, uintptr_t to, size_t len)
{
	struct uhmm__areas moved = { 0 };
	struct uhmm__vma vma;

	/* Whatever was at the destination was unmapped by mremap. */
	uhmm__area_remove(mm, to, to + len);
	uhmm__lock(&mm->lock);
	/* -ENOMEM: the books keep the old range; see uhmm__area_remove(). */
	if (uhmm__areas_cut(&mm->areas, from, from + len, &moved) == 0) {
		for (size_t i = 0; i < moved.n; i++) {
			struct uhmm__area *a = &moved.v[i];

			a->start = a->start - from + to;
			a->end = a->end - from + to;
			if (uhmm__areas_insert(&mm->areas, a) == 0)
				uhmm__psblock_get(a->blk); /* the table's; moved's goes below */
		}
	}
	uhmm__unlock(&mm->lock);

	/*
	 * MREMAP_DONTUNMAP: the source is still mapped, empty, and still
	 * registered with our userfaultfd: manage it again, fresh, with the
	 * flags it had.
	 */
	if (uhmm__vma_query(mm->maps_fd, from, false, &vma) == 0) {
		for (size_t i = 0; i < moved.n; i++) {
			uintptr_t s = moved.v[i].start - to + from;
			uintptr_t e = moved.v[i].end - to + from;

			uhmm__manage_locked(mm, s, e, moved.v[i].flags & UHMM_MANAGE_MIRROR_ONLY);
		}
	}
	uhmm__lock(&mm->lock);
	uhmm__areas_release(&moved);
	uhmm__unlock(&mm->lock);
}

/*
 * Devices must hear of the change. When an interposed call made it, they
 * already did, before it happened; otherwise (a raw syscall, libc's own
 * munmap in free()) this is the first anyone hears of it: announce it now,
 * after the fact, the best that can be done (docs/MIRROR.md).
 */
static void announce(struct uhmm_mm *mm, uintptr_t start, uintptr_t end,
		     enum uhmm_notify_event event)
{
	bool done;

	uhmm__lock(&mm->lock);
	done = uhmm__suppressed(mm, start, end);
	uhmm__unlock(&mm->lock);
	if (!done)
		uhmm__invalidate(mm, start, end, event, NULL);
}

/* A REMOVE uhmm raised itself is announced to nobody (and applied as nothing). */
static bool own_remove(struct uhmm_mm *mm, uintptr_t start, uintptr_t end)
{
	bool own = false;

	uhmm__lock(&mm->lock);
	for (int i = 0; i < UHMM__MAX_OWN_ZAPS && !own; i++)
		own = mm->own_zaps[i].used && mm->own_zaps[i].start == start &&
		      mm->own_zaps[i].end == end;
	uhmm__unlock(&mm->lock);
	return own;
}

void uhmm__event_apply(struct uhmm_mm *mm, const struct uffd_msg *m)
{
	switch (m->event) {
	case UFFD_EVENT_UNMAP:
		atomic_fetch_add_explicit(&mm->stats.unmap, 1, memory_order_relaxed);
		announce(mm, m->arg.remove.start, m->arg.remove.end, UHMM_NOTIFY_UNMAP);
		apply_unmap(mm, m->arg.remove.start, m->arg.remove.end);
		break;
	case UFFD_EVENT_REMOVE:
		atomic_fetch_add_explicit(&mm->stats.remove, 1, memory_order_relaxed);
		if (!own_remove(mm, m->arg.remove.start, m->arg.remove.end))
			announce(mm, m->arg.remove.start, m->arg.remove.end, UHMM_NOTIFY_CLEAR);
		apply_remove(mm, m->arg.remove.start, m->arg.remove.end);
		break;
	case UFFD_EVENT_REMAP:
		atomic_fetch_add_explicit(&mm->stats.remap, 1, memory_order_relaxed);
		announce(mm, m->arg.remap.from, m->arg.remap.from + m->arg.remap.len,
			 UHMM_NOTIFY_REMAP);
		apply_remap(mm, m->arg.remap.from, m->arg.remap.to, m->arg.remap.len);
		break;
	default:
		break; /* FORK is never asked for */
	}
}
