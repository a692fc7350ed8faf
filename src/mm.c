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
 * Descriptors: the userfaultfd of managed memory (faults and events), a
 * duplicate of it that keeps it alive if the program closes the number it
 * can see behind libc's back (fdguard.c), a second userfaultfd for uhmm's
 * own memory (device storage: a UFFDIO_MOVE destination must be registered,
 * and this one raises no events and serves no faults), /proc/self/maps,
 * /proc/self/pagemap, and an eventfd that stops the service threads.
 *
 * fork() is fork.c's; a child's copies of the mms are orphans that serve
 * nothing, and uhmm_mm_free() on one only releases fds and memory.
 */
#include <errno.h>
#include <sched.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>

#include "internal.h"

static _Atomic(struct uhmm_mm *) registry[UHMM__MAX_MMS];
static pthread_mutex_t registry_lock = PTHREAD_MUTEX_INITIALIZER; /* slot allocation */
atomic_int uhmm__mm_count;
atomic_int uhmm__sig_inflight;
static pthread_once_t setup_once = PTHREAD_ONCE_INIT;

struct uhmm_mm *uhmm__mm_slot(int i)
{
	return atomic_load_explicit(&registry[i], memory_order_acquire);
}

bool uhmm__mm_live(const struct uhmm_mm *mm)
{
	return !atomic_load_explicit(&mm->orphan, memory_order_relaxed);
}

void uhmm__registry_enter(void)
{
	/* Pairs with registry_del(): no mm is freed while a reader holds it. */
	atomic_fetch_add_explicit(&uhmm__sig_inflight, 1, memory_order_acq_rel);
}

void uhmm__registry_exit(void)
{
	atomic_fetch_sub_explicit(&uhmm__sig_inflight, 1, memory_order_acq_rel);
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
	uhmm__lock(&mm->event_lock);
	uhmm__unlock(&mm->event_lock);
}

/* Features every mm needs; without them uhmm cannot keep its books. */
#define REQUIRED_FEATURES \
	(UFFD_FEATURE_EVENT_UNMAP | UFFD_FEATURE_EVENT_REMOVE | UFFD_FEATURE_EVENT_REMAP)
/* Features used when offered. */
#define OPTIONAL_FEATURES \
	(UFFD_FEATURE_MISSING_SHMEM | UFFD_FEATURE_MOVE | UFFD_FEATURE_THREAD_ID)

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
	uhmm__sys_close(fd);
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
		uhmm__sys_close(fd);
	}
	fd = uhmm__maps_open();
	if (fd >= 0) {
		c->procmap_query = uhmm__procmap_query_works(fd);
		uhmm__sys_close(fd);
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

/*
 * Can uhmm's own memory register in write-protect mode on @fd? Then faults
 * on it stay the kernel's (uhmm never write-protects a page): a device, or
 * a uhmm thread, touching a hole of its storage gets a zero page from the
 * kernel instead of waiting for a fault service.
 */
static bool probe_own_wp(int fd)
{
	void *p;
	bool ok;

	if (uhmm__sys_mmap(&p, NULL, UHMM__PAGE_SIZE, PROT_READ | PROT_WRITE,
			   MAP_PRIVATE | MAP_ANONYMOUS, -1, 0))
		return false;
	ok = uhmm__uffd_register(fd, (uintptr_t)p, UHMM__PAGE_SIZE, UFFDIO_REGISTER_MODE_WP,
				 NULL) == 0;
	uhmm__sys_munmap(p, UHMM__PAGE_SIZE); /* no event: the fd asked for none */
	return ok;
}

static int open_own_uffd(struct uhmm_mm *mm)
{
	struct uhmm__uffd_origin o;
	int r;

	if (!mm->caps.move)
		return 0; /* nothing to move into: device storage is copied to */
	if (uhmm__inject_fail())
		return -EMFILE;
	mm->uffd_own = uhmm__uffd_open(&o);
	if (mm->uffd_own < 0)
		return mm->uffd_own;
	r = uhmm__uffd_api(mm->uffd_own, UFFD_FEATURE_MOVE, NULL, NULL);
	if (r)
		return r;
	mm->own_wp = probe_own_wp(mm->uffd_own);
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
	mm->caps.wp = offered & UFFD_FEATURE_PAGEFAULT_FLAG_WP; /* what the kernel offers */
	mm->caps.signal_mode = offered & UFFD_FEATURE_SIGBUS;
	if (uhmm__inject_fail())
		return -EMFILE;
	mm->uffd_anchor = uhmm__sys_dup(mm->uffd);
	if (mm->uffd_anchor < 0)
		return mm->uffd_anchor;
	r = open_own_uffd(mm);
	if (r)
		return r;
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
	mm->stop_fd = uhmm__sys_eventfd();
	return mm->stop_fd < 0 ? mm->stop_fd : 0;
}

static void mm_close_fds(struct uhmm_mm *mm)
{
	int *fds[] = { &mm->stop_fd, &mm->pagemap_fd, &mm->maps_fd, &mm->uffd_own,
		       &mm->uffd_anchor, &mm->uffd };

	for (size_t i = 0; i < sizeof(fds) / sizeof(fds[0]); i++) {
		if (*fds[i] >= 0)
			uhmm__sys_close(*fds[i]);
		*fds[i] = -1;
	}
}

static void setup_once_fn(void)
{
	uhmm__interpose_init();
	uhmm__fdguard_init();
	uhmm__kaccess_init();
	uhmm__fork_setup();
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

	pthread_once(&setup_once, setup_once_fn);
	mm = uhmm__calloc(1, sizeof(*mm));
	if (!mm)
		return -ENOMEM;
	mm->uffd = mm->uffd_anchor = mm->uffd_own = -1;
	mm->maps_fd = mm->pagemap_fd = mm->stop_fd = -1;
	mm->mode = mode;
	mm->pid = getpid();
	uhmm__mutex_init(&mm->event_lock);
	uhmm__mutex_init(&mm->lock);
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
	pthread_mutex_destroy(&mm->excl_lock);
	pthread_mutex_destroy(&mm->staging_lock);
	pthread_mutex_destroy(&mm->lock.m);
	pthread_mutex_destroy(&mm->event_lock.m);
	uhmm__free(mm);
	return r;
}

/* Is a device's pagemap still attached (uhmm_pagemap_free not called)? */
static bool device_attached(struct uhmm_mm *mm)
{
	bool r = false;

	uhmm__lock(&mm->lock);
	for (int i = 1; i < 256 && !r; i++)
		r = mm->pagemaps[i] && mm->pagemaps[i] != mm->excl_store;
	uhmm__unlock(&mm->lock);
	return r;
}

UHMM__EXPORT void uhmm_mm_free(struct uhmm_mm *mm)
{
	bool mine;

	if (!mm)
		return;
	mine = uhmm__mm_live(mm) && mm->pid == getpid();
	if (mine) {
		if (device_attached(mm))
			uhmm__misuse("uhmm_mm_free(): a device's pagemap is still attached; call "
				     "uhmm_pagemap_free() (or uhmm_refdev_free()) first");
		/* Memory stays, with its contents: nothing may stay off the CPU. */
		uhmm__exclusive_revoke_range(mm, 0, UHMM__ALL_END);
		uhmm__migrations_settle(mm, 0, UHMM__ALL_END);
		uhmm__notifiers_release(mm);
		if (mm->excl_store && uhmm_pagemap_free(mm->excl_store))
			uhmm__misuse("uhmm_mm_free(): exclusive pages could not come home");
	}
	mm->excl_store = NULL;
	uhmm__staging_drop_all(mm);
	registry_del(mm);
	if (mine)
		uhmm__service_stop(mm);
	/*
	 * Closing the userfaultfd unregisters every range it holds and wakes
	 * any thread still waiting on it: managed memory becomes ordinary
	 * memory with its contents. A fork child's copy leaves the numbers
	 * alone: the child may have closed them and opened files of its own
	 * there (they are close-on-exec).
	 */
	if (mine)
		mm_close_fds(mm);
	uhmm__lock(&mm->lock);
	uhmm__areas_release(&mm->areas);
	uhmm__unlock(&mm->lock);
	uhmm__notifiers_fini(&mm->notifiers);
	pthread_mutex_destroy(&mm->excl_lock);
	pthread_mutex_destroy(&mm->staging_lock);
	pthread_mutex_destroy(&mm->lock.m);
	pthread_mutex_destroy(&mm->event_lock.m);
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

uint64_t uhmm__wait_timeouts(struct uhmm_mm *mm)
{
	return atomic_load(&mm->stats.wait_timeouts);
}

size_t uhmm__mm_metadata(struct uhmm_mm *mm, size_t *managed_pages)
{
	size_t bytes, pages = 0;

	uhmm__mm_event_barrier(mm);
	uhmm__lock(&mm->lock);
	bytes = mm->areas.cap * sizeof(struct uhmm__area);
	for (size_t i = 0; i < mm->areas.n; i++) {
		const struct uhmm__area *a = &mm->areas.v[i];

		pages += (a->end - a->start) >> UHMM__PAGE_SHIFT;
		/* Each block once: charge it to the first area that points to it. */
		bool first = true;

		for (size_t k = 0; k < i && first; k++)
			first = mm->areas.v[k].blk != a->blk;
		if (first)
			bytes += a->blk->npages * sizeof(struct uhmm__ps) + sizeof(*a->blk);
	}
	uhmm__unlock(&mm->lock);
	*managed_pages = pages;
	return bytes;
}

int uhmm__pagemap_attach(struct uhmm_mm *mm, struct uhmm_pagemap *pg)
{
	int r = -ENOSPC;

	uhmm__lock(&mm->lock);
	for (int i = 1; i <= (int)UHMM__PFN_MAX_SLOT; i++) {
		if (!mm->pagemaps[i]) {
			mm->pagemaps[i] = pg;
			r = i;
			break;
		}
	}
	uhmm__unlock(&mm->lock);
	return r;
}

void uhmm__pagemap_detach(struct uhmm_mm *mm, struct uhmm_pagemap *pg)
{
	uhmm__lock(&mm->lock);
	mm->pagemaps[pg->slot] = NULL;
	uhmm__unlock(&mm->lock);
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
