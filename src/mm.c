/* SPDX-License-Identifier: MIT */
/*
 * mm.c - struct uhmm_mm, uhmm's mm_struct: one userfaultfd, the managed
 * areas, the per-page state and the fault service.
 *
 * The registry: the signal-mode SIGBUS handler and the interposed memory
 * calls must find every live mm without taking a lock (they may run in a
 * signal handler or inside any libc call), so mms sit in a fixed array of
 * atomic pointers. A reader bumps uhmm__sig_inflight before scanning the
 * array and drops it after; uhmm_mm_free() clears the slot and then waits
 * for the counter to reach zero before freeing, so no reader can hold a
 * freed mm.
 *
 * fork(): the child inherits the userfaultfd but not the service threads,
 * and without UFFD_FEATURE_EVENT_FORK its copies of managed ranges are plain
 * memory. The child handler marks every mm orphaned; an orphan never serves
 * faults or events and uhmm_mm_free() on it only releases fds and memory.
 */
#include <errno.h>
#include <sched.h>
#include <stdlib.h>
#include <string.h>
#include <sys/eventfd.h>
#include <unistd.h>

#include "internal.h"

static _Atomic(struct uhmm_mm *) registry[UHMM__MAX_MMS];
static pthread_mutex_t registry_lock = PTHREAD_MUTEX_INITIALIZER; /* slot allocation */
atomic_int uhmm__mm_count;
atomic_int uhmm__sig_inflight;
static pthread_once_t atfork_once = PTHREAD_ONCE_INIT;

struct uhmm_mm *uhmm__mm_slot(int i)
{
	return atomic_load_explicit(&registry[i], memory_order_acquire);
}

bool uhmm__mm_live(const struct uhmm_mm *mm)
{
	return !atomic_load_explicit(&mm->orphan, memory_order_relaxed);
}

static void atfork_child(void)
{
	for (int i = 0; i < UHMM__MAX_MMS; i++) {
		struct uhmm_mm *mm = uhmm__mm_slot(i);

		if (mm) {
			atomic_store(&mm->orphan, true);
			/* The parent may have held them at fork time. */
			pthread_mutex_init(&mm->event_lock, NULL);
			pthread_mutex_init(&mm->lock, NULL);
			pthread_rwlock_init(&mm->notifiers.tree_lock, NULL);
			pthread_mutex_init(&mm->notifiers.seq_lock, NULL);
			pthread_cond_init(&mm->notifiers.seq_cond, NULL);
			mm->notifiers.active = 0; /* the threads that ran them are gone */
			if (mm->notifiers.invalidate_seq & 1)
				mm->notifiers.invalidate_seq++;
		}
	}
}

/*
 * Before fork: a child must never see zeros where its parent had data, and
 * the kernel cannot follow device pages into it (no EVENT_FORK without
 * CAP_SYS_PTRACE). So every page a device holds comes home first, and
 * device-exclusive access is revoked; the child then starts with plain
 * memory, copy-on-write shared with the parent.
 */
static void atfork_prepare(void)
{
	for (int i = 0; i < UHMM__MAX_MMS; i++) {
		struct uhmm_mm *mm = uhmm__mm_slot(i);

		if (mm && uhmm__mm_live(mm) && mm->pid == getpid()) {
			uhmm__mm_bring_home(mm, 0, UINTPTR_MAX & ~(UHMM__PAGE_SIZE - 1));
			uhmm__exclusive_revoke_range(mm, 0, UINTPTR_MAX & ~(UHMM__PAGE_SIZE - 1));
		}
	}
}

static void atfork_setup(void)
{
	uhmm__interpose_init();
	pthread_atfork(atfork_prepare, NULL, atfork_child);
}

static int registry_add(struct uhmm_mm *mm)
{
	int r = -EMFILE;

	pthread_mutex_lock(&registry_lock);
	for (int i = 0; i < UHMM__MAX_MMS; i++) {
		if (!atomic_load(&registry[i])) {
			mm->slot = i;
			atomic_store_explicit(&registry[i], mm, memory_order_release);
			atomic_fetch_add(&uhmm__mm_count, 1);
			r = 0;
			break;
		}
	}
	pthread_mutex_unlock(&registry_lock);
	return r;
}

static void registry_del(struct uhmm_mm *mm)
{
	pthread_mutex_lock(&registry_lock);
	atomic_store_explicit(&registry[mm->slot], NULL, memory_order_release);
	atomic_fetch_sub(&uhmm__mm_count, 1);
	pthread_mutex_unlock(&registry_lock);
	/* Pairs with the increment in every lock-free reader: see above. */
	while (atomic_load_explicit(&uhmm__sig_inflight, memory_order_acquire))
		sched_yield();
}

void uhmm__mm_event_barrier(struct uhmm_mm *mm)
{
	pthread_mutex_lock(&mm->event_lock);
	pthread_mutex_unlock(&mm->event_lock);
}

/* Features every mm needs; without them uhmm cannot keep its books. */
#define REQUIRED_FEATURES \
	(UFFD_FEATURE_EVENT_UNMAP | UFFD_FEATURE_EVENT_REMOVE | UFFD_FEATURE_EVENT_REMAP)
/* Features used when offered. */
#define OPTIONAL_FEATURES                                                                  \
	(UFFD_FEATURE_MISSING_SHMEM | UFFD_FEATURE_PAGEFAULT_FLAG_WP | UFFD_FEATURE_MOVE | \
	 UFFD_FEATURE_THREAD_ID | UFFD_FEATURE_WP_HUGETLBFS_SHMEM)

static void caps_from(struct uhmm_caps *c, uint64_t features, uint64_t ioctls,
		      const struct uhmm__uffd_origin *o)
{
	c->uffd_features = features;
	c->uffd_ioctls = ioctls;
	c->user_mode_only = o->user_mode_only;
	c->via_dev_userfaultfd = o->dev_userfaultfd;
	c->thread_mode = (features & REQUIRED_FEATURES) == REQUIRED_FEATURES;
	c->signal_mode = c->thread_mode && (features & UFFD_FEATURE_SIGBUS);
	c->move = features & UFFD_FEATURE_MOVE;
	c->wp = features & UFFD_FEATURE_PAGEFAULT_FLAG_WP;
}

/* Can this process follow fork with EVENT_FORK (needs CAP_SYS_PTRACE)? */
static bool probe_follow_fork(void)
{
	struct uhmm__uffd_origin o;
	int fd = uhmm__uffd_open(&o);
	bool ok;

	if (fd < 0)
		return false;
	ok = uhmm__uffd_api(fd, UFFD_FEATURE_EVENT_FORK, NULL, NULL) == 0;
	close(fd);
	return ok;
}

static void probe_files(struct uhmm_caps *c)
{
	int fd = uhmm__pagemap_open();

	if (fd >= 0) {
		uintptr_t we;
		struct page_region r;

		c->pagemap_scan = uhmm__pagemap_scan(fd, 0, UHMM__PAGE_SIZE, &r, 1, 0, 0,
						     PAGE_IS_PRESENT, PAGE_IS_PRESENT,
						     &we) != -ENOTTY;
		close(fd);
	}
	fd = uhmm__maps_open();
	if (fd >= 0) {
		c->procmap_query = uhmm__procmap_query_works(fd);
		close(fd);
	}
}

UHMM__EXPORT int uhmm_probe(struct uhmm_caps *caps)
{
	struct uhmm__uffd_origin o;
	uint64_t features = 0, ioctls = 0;
	int r;

	if (!caps)
		return -EINVAL;
	memset(caps, 0, sizeof(*caps));
	probe_files(caps);
	r = uhmm__uffd_probe(&features, &ioctls, &o);
	if (r)
		return r;
	caps_from(caps, features, ioctls, &o);
	caps->follow_fork = probe_follow_fork();
	return 0;
}

static int mode_from_env(enum uhmm_fault_mode *mode)
{
	const char *s = secure_getenv("UHMM_FAULT_MODE");

	if (!s || !*s)
		*mode = UHMM_FAULT_THREAD;
	else if (!strcmp(s, "thread"))
		*mode = UHMM_FAULT_THREAD;
	else if (!strcmp(s, "signal"))
		*mode = UHMM_FAULT_SIGNAL;
	else
		return -EINVAL;
	return 0;
}

static int mm_open_fds(struct uhmm_mm *mm, enum uhmm_fault_mode mode)
{
	struct uhmm__uffd_origin o;
	uint64_t offered, ioctls, want, got;
	int r;

	r = uhmm__uffd_probe(&offered, &ioctls, &o);
	if (r)
		return r;
	want = REQUIRED_FEATURES | (offered & OPTIONAL_FEATURES);
	if (mode == UHMM_FAULT_SIGNAL)
		want |= UFFD_FEATURE_SIGBUS;
	if ((offered & want) != want)
		return -EOPNOTSUPP;
	if (uhmm__inject_fail())
		return -EMFILE;
	mm->uffd = uhmm__uffd_open(&o);
	if (mm->uffd < 0)
		return mm->uffd;
	r = uhmm__uffd_api(mm->uffd, want, &got, &ioctls);
	if (r)
		return r;
	caps_from(&mm->caps, got, ioctls, &o);
	mm->caps.signal_mode = offered & UFFD_FEATURE_SIGBUS;
	if (uhmm__inject_fail())
		return -EMFILE;
	mm->maps_fd = uhmm__maps_open();
	if (mm->maps_fd < 0)
		return mm->maps_fd;
	mm->caps.procmap_query = uhmm__procmap_query_works(mm->maps_fd);
	if (uhmm__inject_fail())
		return -EMFILE;
	mm->pagemap_fd = uhmm__pagemap_open();
	if (mm->pagemap_fd < 0)
		return mm->pagemap_fd;
	{
		uintptr_t we;
		struct page_region pr;

		mm->caps.pagemap_scan = uhmm__pagemap_scan(mm->pagemap_fd, 0, UHMM__PAGE_SIZE,
							   &pr, 1, 0, 0, PAGE_IS_PRESENT,
							   PAGE_IS_PRESENT, &we) != -ENOTTY;
	}
	if (uhmm__inject_fail())
		return -EMFILE;
	mm->stop_fd = eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
	if (mm->stop_fd < 0)
		return -errno;
	return 0;
}

static void mm_close_fds(struct uhmm_mm *mm)
{
	if (mm->stop_fd >= 0)
		close(mm->stop_fd);
	if (mm->pagemap_fd >= 0)
		close(mm->pagemap_fd);
	if (mm->maps_fd >= 0)
		close(mm->maps_fd);
	if (mm->uffd >= 0)
		close(mm->uffd);
}

UHMM__EXPORT int uhmm_mm_new(struct uhmm_mm **ret, const struct uhmm_mm_config *cfg)
{
	enum uhmm_fault_mode mode = cfg ? cfg->fault_mode : UHMM_FAULT_DEFAULT;
	unsigned int nthreads = cfg && cfg->service_threads ? cfg->service_threads : 1;
	struct uhmm_mm *mm;
	int r;

	if (!ret)
		return -EINVAL;
	*ret = NULL;
	if (mode == UHMM_FAULT_DEFAULT && (r = mode_from_env(&mode)))
		return r;
	if ((mode != UHMM_FAULT_THREAD && mode != UHMM_FAULT_SIGNAL) ||
	    nthreads > UHMM__MAX_THREADS)
		return -EINVAL;
	if (mode == UHMM_FAULT_SIGNAL)
		nthreads = 1; /* one thread serves events; faults resolve in place */

	pthread_once(&atfork_once, atfork_setup);
	mm = uhmm__calloc(1, sizeof(*mm));
	if (!mm)
		return -ENOMEM;
	mm->uffd = mm->maps_fd = mm->pagemap_fd = mm->stop_fd = -1;
	mm->mode = mode;
	mm->pid = getpid();
	pthread_mutex_init(&mm->event_lock, NULL);
	pthread_mutex_init(&mm->lock, NULL);
	pthread_mutex_init(&mm->excl_lock, NULL);
	pthread_mutex_init(&mm->staging_lock, NULL);
	uhmm__notifiers_init(&mm->notifiers);

	r = mm_open_fds(mm, mode);
	if (r)
		goto out_close;
	if (mode == UHMM_FAULT_SIGNAL) {
		r = uhmm__sigbus_install();
		if (r)
			goto out_close;
	}
	r = registry_add(mm);
	if (r)
		goto out_close;
	r = uhmm__service_start(mm, nthreads);
	if (r)
		goto out_unregistry;
	*ret = mm;
	return 0;

out_unregistry:
	registry_del(mm);
out_close:
	mm_close_fds(mm);
	uhmm__notifiers_fini(&mm->notifiers);
	pthread_mutex_destroy(&mm->lock);
	pthread_mutex_destroy(&mm->event_lock);
	uhmm__free(mm);
	return r;
}

UHMM__EXPORT void uhmm_mm_free(struct uhmm_mm *mm)
{
	if (!mm)
		return;
	if (uhmm__mm_live(mm) && mm->pid == getpid()) {
		/* Memory stays, with its contents: nothing may stay on a device. */
		uhmm__mm_bring_home(mm, 0, UINTPTR_MAX & ~(UHMM__PAGE_SIZE - 1));
		uhmm__exclusive_revoke_range(mm, 0, UINTPTR_MAX & ~(UHMM__PAGE_SIZE - 1));
		uhmm__notifiers_release(mm);
	}
	uhmm_pagemap_free(mm->excl_store);
	uhmm__staging_cache_drop(mm);
	registry_del(mm);
	if (uhmm__mm_live(mm) && mm->pid == getpid())
		uhmm__service_stop(mm);
	/*
	 * Closing the userfaultfd unregisters every range it holds and wakes
	 * any thread still waiting on it: managed memory becomes ordinary
	 * memory with its contents.
	 */
	mm_close_fds(mm);
	uhmm__areas_release(&mm->areas);
	uhmm__notifiers_fini(&mm->notifiers);
	pthread_mutex_destroy(&mm->excl_lock);
	pthread_mutex_destroy(&mm->staging_lock);
	pthread_mutex_destroy(&mm->lock);
	pthread_mutex_destroy(&mm->event_lock);
	uhmm__free(mm);
}

UHMM__EXPORT enum uhmm_fault_mode uhmm_mm_fault_mode(const struct uhmm_mm *mm)
{
	return mm->mode;
}

UHMM__EXPORT void uhmm_mm_caps(const struct uhmm_mm *mm, struct uhmm_caps *caps)
{
	*caps = mm->caps;
}

UHMM__EXPORT void uhmm_mm_stats(struct uhmm_mm *mm, struct uhmm_mm_stats *out)
{
	uhmm__mm_event_barrier(mm);
	out->faults = atomic_load(&mm->stats.faults);
	out->faults_zero = atomic_load(&mm->stats.faults_zero);
	out->events_unmap = atomic_load(&mm->stats.unmap);
	out->events_remove = atomic_load(&mm->stats.remove);
	out->events_remap = atomic_load(&mm->stats.remap);
}

UHMM__EXPORT size_t uhmm__mm_metadata(struct uhmm_mm *mm, size_t *managed_pages)
{
	size_t bytes, pages = 0;

	uhmm__mm_event_barrier(mm);
	pthread_mutex_lock(&mm->lock);
	bytes = mm->areas.cap * sizeof(struct uhmm__area);
	for (size_t i = 0; i < mm->areas.n; i++) {
		const struct uhmm__area *a = &mm->areas.v[i];

		pages += (a->end - a->start) >> UHMM__PAGE_SHIFT;
		/* Each block once: charge it to the first area that points to it. */
		bool first = true;

		for (size_t k = 0; k < i && first; k++)
			first = mm->areas.v[k].blk != a->blk;
		if (first)
			bytes += a->blk->npages * sizeof(uint64_t) + sizeof(*a->blk);
	}
	pthread_mutex_unlock(&mm->lock);
	*managed_pages = pages;
	return bytes;
}

void *uhmm__pagemap_owner(struct uhmm_mm *mm, unsigned int slot)
{
	return slot && slot < 256 && mm->pagemaps[slot] ? mm->pagemaps[slot]->cfg.owner : NULL;
}

int uhmm__pagemap_attach(struct uhmm_mm *mm, struct uhmm_pagemap *pg)
{
	int r = -ENOSPC;

	pthread_mutex_lock(&mm->lock);
	for (int i = 1; i < 256; i++) {
		if (!mm->pagemaps[i]) {
			mm->pagemaps[i] = pg;
			r = i;
			break;
		}
	}
	pthread_mutex_unlock(&mm->lock);
	return r;
}

void uhmm__pagemap_detach(struct uhmm_mm *mm, struct uhmm_pagemap *pg)
{
	pthread_mutex_lock(&mm->lock);
	mm->pagemaps[pg->slot] = NULL;
	pthread_mutex_unlock(&mm->lock);
}

UHMM__EXPORT int uhmm_mapping_find(struct uhmm_mm *mm, uintptr_t addr, uintptr_t *start,
				   uintptr_t *end, int *prot)
{
	struct uhmm__vma vma;
	int r;

	if (!mm)
		return -EINVAL;
	r = uhmm__vma_query(mm->maps_fd, addr, false, &vma);
	if (r)
		return r;
	if (start)
		*start = vma.start;
	if (end)
		*end = vma.end;
	if (prot)
		*prot = (vma.read ? 1 : 0) | (vma.write ? 2 : 0) | (vma.exec ? 4 : 0);
	return 0;
}
