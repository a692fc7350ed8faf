/* SPDX-License-Identifier: MIT */
/*
 * uhmm.h - Heterogeneous Memory Management in user space.
 *
 * uhmm gives user-space device runtimes the services Linux HMM gives kernel
 * drivers: a device mirrors the process address space and is told before its
 * view goes stale (uhmm_interval_notifier, uhmm_range_fault), pages migrate
 * into device memory and come home when the CPU touches them (uhmm/device.h).
 *
 * Conventions (see docs/DESIGN.md):
 *  - verbs return 0 or -errno; predicates return bool; constructors return 0
 *    or -errno and the object through an out parameter;
 *  - _new/_free for opaque objects (free accepts NULL), _init/_fini for
 *    caller-owned structs, _get/_put for references;
 *  - every error path leaves memory exactly as it was.
 *
 * Thread safety: every function that takes a struct uhmm_mm may be called
 * from any thread concurrently, unless its comment says otherwise.
 */
#ifndef UHMM_H
#define UHMM_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

#define UHMM_VERSION_MAJOR 0
#define UHMM_VERSION_MINOR 1
#define UHMM_VERSION_PATCH 0

/** uhmm_version() - the library's version string ("0.1.0"). */
const char *uhmm_version(void);

/** uhmm_strerror() - a static description of a -errno returned by uhmm. */
const char *uhmm_strerror(int err);

struct uhmm_mm;

/**
 * enum uhmm_fault_mode - how CPU faults on managed memory are resolved.
 * @UHMM_FAULT_THREAD: service threads read the userfaultfd and resolve the
 *	fault for the faulting thread. Fully transparent, also for accesses the
 *	kernel makes on the program's behalf (read(2) into a managed buffer),
 *	unless the kernel only granted a user-mode-only userfaultfd (see
 *	uhmm_caps.user_mode_only). Costs a cross-CPU wakeup per fault.
 * @UHMM_FAULT_SIGNAL: UFFD_FEATURE_SIGBUS: the faulting thread takes SIGBUS
 *	and resolves its own fault in uhmm's handler (several times faster).
 *	Accesses the kernel makes on the program's behalf to a managed page
 *	that is not present then fail with EFAULT instead. A SIGBUS that is not
 *	uhmm's reaches the handler installed before uhmm's, unchanged.
 */
enum uhmm_fault_mode {
	UHMM_FAULT_DEFAULT = 0, /* UHMM_FAULT_MODE from the environment, else THREAD */
	UHMM_FAULT_THREAD = 1,
	UHMM_FAULT_SIGNAL = 2,
};

/**
 * struct uhmm_mm_config - how to build a uhmm_mm. Zero-initialise, then set
 * what you need; zero fields take their defaults.
 * @fault_mode: UHMM_FAULT_DEFAULT, _THREAD or _SIGNAL.
 * @service_threads: threads reading the userfaultfd; 0 means 1. In SIGNAL
 *	mode one thread always serves events (munmap, mremap, madvise).
 */
struct uhmm_mm_config {
	enum uhmm_fault_mode fault_mode;
	unsigned int service_threads;
};

/**
 * uhmm_mm_new() - create the uhmm view of the calling process's address space.
 * @ret: receives the new mm.
 * @cfg: configuration, or NULL for defaults. With NULL (or fault_mode
 *	UHMM_FAULT_DEFAULT) the environment variable UHMM_FAULT_MODE, read with
 *	secure_getenv(), may say "thread" or "signal".
 *
 * Several mms may exist in one process; each managed range belongs to one.
 *
 * Return: 0, or
 *  -EINVAL   @ret is NULL, @cfg has an unknown mode, more than 64 service
 *            threads, or UHMM_FAULT_MODE holds anything but "thread"/"signal";
 *  -EPERM    the kernel refuses userfaultfd to this process (neither the
 *            syscall, user-mode-only, nor /dev/userfaultfd is allowed);
 *  -ENOSYS   the kernel has no userfaultfd;
 *  -EOPNOTSUPP the requested fault mode needs a feature the kernel lacks
 *            (UFFD_FEATURE_SIGBUS for signal mode, events for either);
 *  -ENOMEM, -EMFILE, -EAGAIN  out of memory, fds or threads.
 * Nothing is left behind on error.
 */
int uhmm_mm_new(struct uhmm_mm **ret, const struct uhmm_mm_config *cfg);

/**
 * uhmm_mm_free() - tear down an mm. NULL is allowed.
 *
 * Every managed range becomes ordinary memory again, with its contents.
 * Stops and joins the service threads and closes the userfaultfd. Must not be
 * called from a uhmm callback. In a child after fork() it only releases the
 * memory and fds the child inherited (the child has no service threads).
 */
void uhmm_mm_free(struct uhmm_mm *mm);

/** uhmm_mm_fault_mode() - the fault mode an mm resolved to (never DEFAULT). */
enum uhmm_fault_mode uhmm_mm_fault_mode(const struct uhmm_mm *mm);

/**
 * struct uhmm_caps - what the kernel gives this process.
 * @uffd_features: UFFD_FEATURE_* bits the kernel offers (UFFDIO_API).
 * @uffd_ioctls: the ioctls a registered range supports (bit = _UFFDIO_*).
 * @user_mode_only: userfaultfd is only available with UFFD_USER_MODE_ONLY:
 *	accesses the kernel makes on the program's behalf (read(2), write(2)
 *	into managed memory that must be faulted in) fail with EFAULT.
 * @via_dev_userfaultfd: the fd came from /dev/userfaultfd.
 * @thread_mode, @signal_mode: the fault modes usable.
 * @follow_fork: UFFD_FEATURE_EVENT_FORK is usable (needs CAP_SYS_PTRACE).
 * @move: UFFDIO_MOVE is available (zero-copy migration).
 * @wp: write-protect faults are available.
 * @pagemap_scan: the PAGEMAP_SCAN ioctl is available.
 * @procmap_query: the PROCMAP_QUERY ioctl is available (fast VMA lookup).
 */
struct uhmm_caps {
	uint64_t uffd_features;
	uint64_t uffd_ioctls;
	bool user_mode_only;
	bool via_dev_userfaultfd;
	bool thread_mode;
	bool signal_mode;
	bool follow_fork;
	bool move;
	bool wp;
	bool pagemap_scan;
	bool procmap_query;
};

/**
 * uhmm_probe() - find out what the kernel gives this process, without an mm.
 * Return: 0, or -errno when userfaultfd cannot be opened at all (@caps is
 * then still filled with what could be learnt: pagemap_scan, procmap_query).
 */
int uhmm_probe(struct uhmm_caps *caps);

/** uhmm_mm_caps() - the capabilities an existing mm was built with. */
void uhmm_mm_caps(const struct uhmm_mm *mm, struct uhmm_caps *caps);

/* Flags for uhmm_manage(). */
/** Mirror only: the range is never migrated to device memory. */
#define UHMM_MANAGE_MIRROR_ONLY (1u << 0)

/**
 * uhmm_manage() - put an existing mapping under uhmm's management.
 * @mm: the address space.
 * @addr: page-aligned start.
 * @len: page-aligned, non-zero length.
 * @flags: 0 or UHMM_MANAGE_MIRROR_ONLY.
 *
 * The contents are kept. Managing a range that is already managed with the
 * same flags is a cheap no-op (idempotent); adjacent or overlapping areas
 * with the same flags are joined. Anonymous private memory, shmem (MAP_SHARED
 * anonymous, memfd, tmpfs files) and file-backed mappings can be managed;
 * file-backed memory on other file systems cannot be registered with
 * userfaultfd, so it is tracked by uhmm (mirror, invalidations through the
 * interposed calls) but never migrated.
 *
 * Return: 0, or
 *  -EINVAL   @addr or @len not page-aligned, @len zero, the range overflows,
 *            or unknown @flags;
 *  -ENOMEM   part of the range is not mapped (as madvise(2) says it), or no
 *            memory for the bookkeeping;
 *  -EEXIST   the range overlaps an area managed with other flags, or by
 *            another uhmm_mm of this process;
 *  -EOPNOTSUPP the range holds hugetlb memory or a special mapping
 *            (VM_IO/VM_PFNMAP, vdso, vvar) that userfaultfd cannot track.
 * On error, nothing of the range is managed by this call.
 */
int uhmm_manage(struct uhmm_mm *mm, void *addr, size_t len, unsigned int flags);

/**
 * uhmm_unmanage() - give a range back to the kernel's sole management.
 * Pages keep their contents. Parts of the range that are not managed are
 * ignored; an area that straddles the range is split.
 * Return: 0, or -EINVAL for unaligned, zero or overflowing ranges.
 */
int uhmm_unmanage(struct uhmm_mm *mm, void *addr, size_t len);

/**
 * uhmm_is_managed() - is every page of [addr, addr+len) managed by @mm?
 */
bool uhmm_is_managed(struct uhmm_mm *mm, const void *addr, size_t len);

/* Flags for uhmm_alloc(). */
/** MAP_SHARED anonymous memory (shmem) instead of private anonymous. */
#define UHMM_ALLOC_SHARED (1u << 0)

/**
 * uhmm_alloc() - map and manage fresh zero-filled memory.
 * @len: bytes, rounded up to whole pages; must be non-zero.
 * @flags: 0 or UHMM_ALLOC_SHARED.
 * Return: the address, or NULL with errno set (EINVAL, ENOMEM, ...).
 */
void *uhmm_alloc(struct uhmm_mm *mm, size_t len, unsigned int flags);

/**
 * uhmm_free() - unmanage and unmap memory from uhmm_alloc(). @ptr NULL is
 * allowed. Return: 0, or -EINVAL when [ptr, ptr+len) is not such memory.
 */
int uhmm_free(struct uhmm_mm *mm, void *ptr, size_t len);

/**
 * struct uhmm_area_info - one managed area, as uhmm_mm_areas() reports it.
 * @start, @end: the area, [start, end).
 * @flags: the UHMM_MANAGE_* flags it was managed with.
 * @kind: UHMM_AREA_ANON, UHMM_AREA_SHMEM or UHMM_AREA_FILE.
 * @registered: registered with the mm's userfaultfd.
 */
struct uhmm_area_info {
	uintptr_t start, end;
	unsigned int flags;
	unsigned int kind;
	bool registered;
};
#define UHMM_AREA_ANON 1
#define UHMM_AREA_SHMEM 2
#define UHMM_AREA_FILE 3

/**
 * uhmm_mm_areas() - copy out the managed areas, in address order.
 * @out: array of @max entries (may be NULL when @max is 0).
 * Return: the number of areas (which may exceed @max), never negative.
 * Events that arrived before the call are reflected (see docs/EVENTS.md).
 */
size_t uhmm_mm_areas(struct uhmm_mm *mm, struct uhmm_area_info *out, size_t max);

/**
 * struct uhmm_mm_stats - counters since uhmm_mm_new(). Monotonic.
 */
struct uhmm_mm_stats {
	uint64_t faults;        /* CPU faults resolved by uhmm */
	uint64_t faults_zero;   /* ... by filling a zero page */
	uint64_t events_unmap;  /* UFFD_EVENT_UNMAP seen */
	uint64_t events_remove; /* UFFD_EVENT_REMOVE seen */
	uint64_t events_remap;  /* UFFD_EVENT_REMAP seen */
};
void uhmm_mm_stats(struct uhmm_mm *mm, struct uhmm_mm_stats *out);

/**
 * uhmm_sigbus_handled() - let uhmm resolve a SIGBUS first.
 *
 * For programs that install their own SIGBUS handler after creating a
 * signal-mode mm: call this at the top of the handler; when it returns true
 * the signal was uhmm's fault and has been resolved: return from the handler.
 * Async-signal-safe.
 */
bool uhmm_sigbus_handled(int sig, void *siginfo, void *ucontext);

#ifdef __cplusplus
}
#endif

#endif /* UHMM_H */
