/* SPDX-License-Identifier: MIT */
/*
 * interpose.c - munmap, mremap, madvise, mprotect and mmap, as libuhmm
 * exports them: devices hear of a change *before* it becomes visible.
 *
 * userfaultfd reports unmaps, removes and remaps only after the page tables
 * changed, and mprotect and MADV_FREE not at all. So libuhmm defines these
 * libc entry points itself; a program linked with libuhmm (shared: the
 * symbol is found before libc's; static: the linker takes ours) calls them
 * first. Each one:
 *   1. announces the change to the notifiers of every live mm (the device
 *      drops its mappings now: invalidate_begin),
 *   2. calls the next definition (libc, or a sanitizer's interceptor),
 *   3. ends the invalidation, and waits until the userfaultfd event the call
 *      caused (if any) has been applied, so that uhmm's books are exact when
 *      the call returns; the event itself is not announced a second time.
 * mmap(MAP_FIXED) over a managed range drops its registration (with an UNMAP
 * event on recent kernels, silently on older ones, DESIGN.md §6): the
 * interposer takes it out of the books either way.
 *
 * Not covered (docs/MIRROR.md): raw syscall(2) invocations and calls libc
 * makes internally (free() returning memory); for those the userfaultfd
 * event announces the change after the fact (UNMAP, REMOVE, REMAP), and
 * mprotect/MADV_FREE not at all. Not async-signal-safe when an mm exists.
 */
#include <dlfcn.h>
#include <errno.h>
#include <sched.h>
#include <stdarg.h>
#include <sys/mman.h>
#include <sys/syscall.h>
#include <unistd.h>

#include "internal.h"

int uhmm__suppress_add(struct uhmm_mm *mm, uintptr_t start, uintptr_t end)
{
	int slot = -1;

	uhmm__lock(&mm->lock);
	for (int i = 0; i < UHMM__MAX_SUPPRESS; i++) {
		if (!mm->suppress[i].used) {
			mm->suppress[i] = (struct uhmm__suppress){ start, end, true };
			slot = i;
			break;
		}
	}
	uhmm__unlock(&mm->lock);
	return slot; /* -1: full; the event will then be announced twice, harmlessly */
}

void uhmm__suppress_del(struct uhmm_mm *mm, int slot)
{
	if (slot < 0)
		return;
	uhmm__lock(&mm->lock);
	mm->suppress[slot].used = false;
	uhmm__unlock(&mm->lock);
}

bool uhmm__suppressed(struct uhmm_mm *mm, uintptr_t start, uintptr_t end)
{
	for (int i = 0; i < UHMM__MAX_SUPPRESS; i++) {
		const struct uhmm__suppress *s = &mm->suppress[i];

		/* An interposed call suppresses every event its range causes:
		 * mremap, for one, raises REMAP and then UNMAP of the old range. */
		if (s->used && s->start <= start && end <= s->end)
			return true;
	}
	return false;
}

/* --- uhmm's own zaps of managed memory ---------------------------------------- */

bool uhmm__own_zap_consume(struct uhmm_mm *mm, uintptr_t start, uintptr_t end)
{
	for (int i = 0; i < UHMM__MAX_OWN_ZAPS; i++) {
		struct uhmm__own_zap *z = &mm->own_zaps[i];

		if (z->used && z->start == start && z->end == end) {
			z->used = false; /* exactly one event per zap */
			return true;
		}
	}
	return false;
}

void uhmm__zap_own(struct uhmm_mm *mm, uintptr_t start, size_t len)
{
	for (;;) {
		int slot = -1;

		uhmm__lock(&mm->lock);
		for (int i = 0; i < UHMM__MAX_OWN_ZAPS && slot < 0; i++)
			if (!mm->own_zaps[i].used)
				slot = i;
		if (slot >= 0)
			mm->own_zaps[slot] = (struct uhmm__own_zap){ start, start + len, true };
		uhmm__unlock(&mm->lock);
		if (slot >= 0)
			break;
		sched_yield(); /* as many migrations as slots are zapping: one ends soon */
	}
	uhmm__sys_madvise((void *)start, len, MADV_DONTNEED);
	/*
	 * The kernel waited for the REMOVE event to be read; once applied it
	 * consumed the entry. If none came (the range left the userfaultfd
	 * meanwhile), the entry must not swallow a later event.
	 */
	uhmm__mm_event_barrier(mm);
	uhmm__lock(&mm->lock);
	uhmm__own_zap_consume(mm, start, start + len);
	uhmm__unlock(&mm->lock);
}

/* --- the next definitions ------------------------------------------------ */

typedef int (*munmap_fn)(void *, size_t);
typedef void *(*mremap_fn)(void *, size_t, size_t, int, ...);
typedef int (*madvise_fn)(void *, size_t, int);
typedef int (*mprotect_fn)(void *, size_t, int);
typedef void *(*mmap_fn)(void *, size_t, int, int, int, off_t);

/*
 * The next definitions: libc's, or a sanitizer's interceptor which then
 * calls libc's. They are resolved with dlsym(RTLD_NEXT) by
 * uhmm__interpose_init(), called from uhmm_mm_new(): never from inside an
 * interposed call, which can run before the process (or a sanitizer
 * runtime) is ready for dlsym. Until then, and if resolution fails, the
 * raw syscall is used.
 */
static void *_Atomic next_munmap_p, *_Atomic next_mremap_p, *_Atomic next_madvise_p,
	*_Atomic next_mprotect_p, *_Atomic next_mmap_p;

void uhmm__interpose_init(void)
{
	atomic_store(&next_munmap_p, dlsym(RTLD_NEXT, "munmap"));
	atomic_store(&next_mremap_p, dlsym(RTLD_NEXT, "mremap"));
	atomic_store(&next_madvise_p, dlsym(RTLD_NEXT, "madvise"));
	atomic_store(&next_mprotect_p, dlsym(RTLD_NEXT, "mprotect"));
	atomic_store(&next_mmap_p, dlsym(RTLD_NEXT, "mmap"));
}

static void *next_sym(const char *name, void *_Atomic *cache)
{
	(void)name;
	return atomic_load_explicit(cache, memory_order_acquire);
}

static int next_munmap(void *a, size_t l)
{
	munmap_fn f = (munmap_fn)next_sym("munmap", &next_munmap_p);

	if (f)
		return f(a, l);
	return (int)syscall(SYS_munmap, a, l);
}

static void *next_mremap(void *a, size_t ol, size_t nl, int fl, void *na)
{
	mremap_fn f = (mremap_fn)next_sym("mremap", &next_mremap_p);

	if (f)
		return f(a, ol, nl, fl, na);
	return (void *)syscall(SYS_mremap, a, ol, nl, fl, na);
}

static int next_madvise(void *a, size_t l, int adv)
{
	madvise_fn f = (madvise_fn)next_sym("madvise", &next_madvise_p);

	if (f)
		return f(a, l, adv);
	return (int)syscall(SYS_madvise, a, l, adv);
}

static int next_mprotect(void *a, size_t l, int prot)
{
	mprotect_fn f = (mprotect_fn)next_sym("mprotect", &next_mprotect_p);

	if (f)
		return f(a, l, prot);
	return (int)syscall(SYS_mprotect, a, l, prot);
}

static void *next_mmap(void *a, size_t l, int prot, int fl, int fd, off_t off)
{
	mmap_fn f = (mmap_fn)next_sym("mmap", &next_mmap_p);

	if (f)
		return f(a, l, prot, fl, fd, off);
	return (void *)syscall(SYS_mmap, a, l, prot, fl, fd, off);
}

/* --- announcing --------------------------------------------------------- */

/* One interposed change: what it announces, to which mms. */
struct change {
	uintptr_t start, end;
	enum uhmm_notify_event event;
	int uffd_event; /* the userfaultfd event it will cause, or 0 */
	struct {
		struct uhmm_mm *mm;
		int slot;
	} v[UHMM__MAX_MMS];
	int n;
};

static bool no_mm(void)
{
	return atomic_load_explicit(&uhmm__mm_count, memory_order_relaxed) == 0;
}

/* Page-align a user range the way the kernel will; false if it is invalid. */
static bool page_range(void *addr, size_t len, uintptr_t *s, uintptr_t *e)
{
	uintptr_t a = (uintptr_t)addr;

	if (!uhmm__aligned(a) || !len || a + len < a)
		return false;
	*s = a;
	*e = (a + len + UHMM__PAGE_SIZE - 1) & ~(UHMM__PAGE_SIZE - 1);
	return *e > a;
}

static void change_begin(struct change *c)
{
	struct uhmm_notifier_range r = { .start = c->start, .end = c->end, .event = c->event };

	c->n = 0;
	uhmm__registry_enter(); /* no mm is freed while we hold it */
	for (int i = 0; i < UHMM__MAX_MMS; i++) {
		struct uhmm_mm *mm = uhmm__mm_slot(i);

		if (!mm || !uhmm__mm_live(mm))
			continue;
		c->v[c->n].mm = mm;
		c->v[c->n].slot = c->uffd_event ? uhmm__suppress_add(mm, c->start, c->end) : -1;
		uhmm__invalidate_begin(mm, &r);
		c->n++;
	}
}

static void change_end(struct change *c)
{
	for (int i = 0; i < c->n; i++) {
		struct uhmm_mm *mm = c->v[i].mm;

		uhmm__invalidate_end(mm);
		/* The kernel waited for its event to be read: now it is applied. */
		uhmm__mm_event_barrier(mm);
		uhmm__suppress_del(mm, c->v[i].slot);
	}
	uhmm__registry_exit();
}

/* --- the entry points ----------------------------------------------------- */

UHMM__EXPORT int munmap(void *addr, size_t len)
{
	struct change c = { .event = UHMM_NOTIFY_UNMAP, .uffd_event = UFFD_EVENT_UNMAP };
	int r;

	if (no_mm() || !page_range(addr, len, &c.start, &c.end))
		return next_munmap(addr, len);
	change_begin(&c);
	r = next_munmap(addr, len);
	change_end(&c);
	return r;
}

UHMM__EXPORT int mprotect(void *addr, size_t len, int prot)
{
	struct change c = { .event = UHMM_NOTIFY_PROTECTION_VMA };
	int r;

	if (no_mm() || !page_range(addr, len, &c.start, &c.end))
		return next_mprotect(addr, len, prot);
	/*
	 * A protection change revokes device-exclusive access first, and
	 * waits for migrations of the range: a read-only page being copied
	 * away must not become writable (and written) before its copy is the
	 * only one.
	 */
	uhmm__registry_enter();
	for (int i = 0; i < UHMM__MAX_MMS; i++) {
		struct uhmm_mm *mm = uhmm__mm_slot(i);

		if (mm && uhmm__mm_live(mm)) {
			uhmm__exclusive_revoke_range(mm, c.start, c.end);
			uhmm__migrations_settle(mm, c.start, c.end);
		}
	}
	uhmm__registry_exit();
	change_begin(&c);
	r = next_mprotect(addr, len, prot);
	change_end(&c);
	return r;
}

static bool drops_pages(int advice)
{
	return advice == MADV_DONTNEED || advice == MADV_REMOVE || advice == MADV_FREE ||
	       advice == 24 /* MADV_DONTNEED_LOCKED (Linux 5.18) */;
}

UHMM__EXPORT int madvise(void *addr, size_t len, int advice)
{
	struct change c = { .event = UHMM_NOTIFY_CLEAR, .uffd_event = UFFD_EVENT_REMOVE };
	int r;

	if (no_mm() || !drops_pages(advice) || !page_range(addr, len, &c.start, &c.end))
		return next_madvise(addr, len, advice);
	change_begin(&c);
	r = next_madvise(addr, len, advice);
	change_end(&c);
	return r;
}

/* After a grow: manage the new tail like the area it extends (exact books). */
static void adopt_grown_tail(uintptr_t tail, uintptr_t end)
{
	uhmm__registry_enter();
	for (int i = 0; i < UHMM__MAX_MMS; i++) {
		struct uhmm_mm *mm = uhmm__mm_slot(i);
		struct uhmm__area *a;
		unsigned int flags = 0;
		bool adopt = false;

		if (!mm || !uhmm__mm_live(mm))
			continue;
		uhmm__lock(&mm->event_lock);
		uhmm__lock(&mm->lock);
		a = uhmm__area_find(&mm->areas, tail - 1);
		if (a && a->registered) {
			adopt = true;
			flags = a->flags & UHMM_MANAGE_MIRROR_ONLY;
		}
		uhmm__unlock(&mm->lock);
		if (adopt)
			uhmm__manage_locked(mm, tail, end, flags);
		uhmm__unlock(&mm->event_lock);
	}
	uhmm__registry_exit();
}

UHMM__EXPORT void *mremap(void *old, size_t old_len, size_t new_len, int flags, ...)
{
	struct change c = { .event = UHMM_NOTIFY_REMAP, .uffd_event = UFFD_EVENT_REMAP };
	struct change tail = { .event = UHMM_NOTIFY_UNMAP, .uffd_event = UFFD_EVENT_UNMAP };
	struct change dst = { .event = UHMM_NOTIFY_UNMAP, .uffd_event = UFFD_EVENT_UNMAP };
	void *new_addr = NULL, *r;
	bool moves = flags & (MREMAP_MAYMOVE | MREMAP_FIXED);
	va_list ap;

	if (flags & MREMAP_FIXED) {
		va_start(ap, flags);
		new_addr = va_arg(ap, void *);
		va_end(ap);
	}
	if (no_mm() || !page_range(old, old_len ? old_len : 1, &c.start, &c.end))
		return next_mremap(old, old_len, new_len, flags, new_addr);
	/* Shrinking unmaps the tail; moving remaps what is kept. */
	if (new_len < old_len) {
		tail.start = (c.start + new_len + UHMM__PAGE_SIZE - 1) & ~(UHMM__PAGE_SIZE - 1);
		tail.end = c.end;
		c.end = tail.start;
	}
	/* MREMAP_FIXED unmaps whatever was at the destination. */
	if ((flags & MREMAP_FIXED) && !page_range(new_addr, new_len, &dst.start, &dst.end))
		dst.start = dst.end = 0;
	if (dst.end > dst.start)
		change_begin(&dst);
	if (tail.end > tail.start)
		change_begin(&tail);
	if (moves && c.end > c.start)
		change_begin(&c);
	r = next_mremap(old, old_len, new_len, flags, new_addr);
	if (moves && c.end > c.start)
		change_end(&c);
	if (tail.end > tail.start)
		change_end(&tail);
	if (dst.end > dst.start)
		change_end(&dst);
	if (r != MAP_FAILED && new_len > old_len)
		adopt_grown_tail((uintptr_t)r + old_len, (uintptr_t)r + new_len);
	return r;
}

UHMM__EXPORT void *mmap(void *addr, size_t len, int prot, int flags, int fd, off_t off)
{
	/*
	 * Kernel 6.18 reports the replaced range with UFFD_EVENT_UNMAP (seen
	 * here; DESIGN.md §6 says older kernels did not): suppress that, and
	 * cut the books ourselves in case no event comes.
	 */
	struct change c = { .event = UHMM_NOTIFY_UNMAP, .uffd_event = UFFD_EVENT_UNMAP };
	void *r;

	if (no_mm() || !(flags & MAP_FIXED) || !page_range(addr, len, &c.start, &c.end))
		return next_mmap(addr, len, prot, flags, fd, off);
	change_begin(&c);
	r = next_mmap(addr, len, prot, flags, fd, off);
	if (r != MAP_FAILED) {
		/* Older kernels dropped the registration without an event. */
		for (int i = 0; i < c.n; i++) {
			struct uhmm_mm *mm = c.v[i].mm;

			uhmm__lock(&mm->event_lock);
			uhmm__area_remove(mm, c.start, c.end);
			uhmm__unlock(&mm->event_lock);
		}
	}
	change_end(&c);
	return r;
}
