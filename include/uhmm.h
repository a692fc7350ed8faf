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
 * Every managed range becomes ordinary memory again, with its contents
 * (pages held exclusively by a device are revoked first; the devices'
 * pagemaps must have been freed: uhmm_mm_free() with one still attached
 * aborts with a message saying so, rather than use freed memory later).
 * Stops and joins the service threads and closes the userfaultfd. Must not be
 * called from a uhmm callback. In a child after fork() it only releases the
 * memory the child inherited (the child has no service threads; the
 * inherited descriptors, close-on-exec, are left to the child).
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
 * @wp: the kernel offers write-protect registration (uhmm registers its
 *	own device storage that way, so that faults on it stay the kernel's).
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
 * same flags is a cheap no-op (idempotent); where it partly is, only the
 * parts not yet managed are added. Anonymous private memory, shmem (MAP_SHARED
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
 * Pages keep their contents: pages on devices or held exclusively come
 * home first, migrations under way end first. Parts of the range that are
 * not managed are ignored; an area that straddles the range is split.
 * Return: 0, or -EINVAL for unaligned, zero or overflowing ranges, -EBUSY
 * when a device cannot give a page of the range back (the range stays
 * managed, its data on the device), -ENOMEM.
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
 * allowed. [ptr, ptr+len) must be one whole allocation as uhmm_alloc()
 * returned it (len rounded up to pages), not split since (a part unmapped
 * by the program is the program's to unmap).
 * Return: 0, or -EINVAL when [ptr, ptr+len) is not such memory (nothing
 * changes), -EBUSY as uhmm_unmanage().
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
 * uhmm_mapping_find() - the mapping (VMA) covering @addr.
 * @start, @end: out: the mapping, [start, end).
 * @prot: out: its PROT_READ / PROT_WRITE / PROT_EXEC bits.
 * Return: 0, -ENOENT (nothing mapped at @addr), or -errno.
 */
int uhmm_mapping_find(struct uhmm_mm *mm, uintptr_t addr, uintptr_t *start, uintptr_t *end,
		      int *prot);

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
 * the signal was uhmm's fault and has been resolved (or will be, when the
 * access faults again): return from the handler.
 *
 * Async-signal-safe as long as the device's own callbacks are: resolving a
 * fault on a page a device holds runs a migration of that one page in the
 * handler, which allocates no memory and takes uhmm's locks only (never
 * held where managed memory is touched), and calls the device's
 * copy_from_device or migrate_to_ram callback and the invalidate
 * callbacks of interval notifiers.
 */
bool uhmm_sigbus_handled(int sig, void *siginfo, void *ucontext);


/* ------------------------------------------------------------------------
 * Mirror: interval notifiers and uhmm_range_fault (Linux: mmu_interval_notifier,
 * hmm_range_fault; Documentation/mm/hmm.rst). See docs/MIRROR.md.
 * ------------------------------------------------------------------------ */

/**
 * enum uhmm_notify_event - why a range is being invalidated (the kernel's
 * enum mmu_notifier_event).
 * @UHMM_NOTIFY_UNMAP: the range is being unmapped (munmap, mmap(MAP_FIXED)
 *	over it, the shrinking part of mremap).
 * @UHMM_NOTIFY_CLEAR: pages are being dropped but the range stays mapped
 *	(MADV_DONTNEED/REMOVE/FREE), or device-exclusive access is revoked.
 * @UHMM_NOTIFY_PROTECTION_VMA: the range's protection is changing (mprotect).
 * @UHMM_NOTIFY_MIGRATE: pages are migrating; owner says who migrates them.
 * @UHMM_NOTIFY_EXCLUSIVE: a device takes pages exclusively; owner is it.
 * @UHMM_NOTIFY_RELEASE: the uhmm_mm is going away (uhmm_mm_free).
 * @UHMM_NOTIFY_REMAP: the range is moving to another address (mremap).
 */
enum uhmm_notify_event {
	UHMM_NOTIFY_UNMAP = 0,
	UHMM_NOTIFY_CLEAR,
	UHMM_NOTIFY_PROTECTION_VMA,
	UHMM_NOTIFY_MIGRATE,
	UHMM_NOTIFY_EXCLUSIVE,
	UHMM_NOTIFY_RELEASE,
	UHMM_NOTIFY_REMAP,
};

/** uhmm_notify_event_name() - "UNMAP", "CLEAR", ... ("?" if unknown). */
const char *uhmm_notify_event_name(enum uhmm_notify_event event);

/**
 * struct uhmm_notifier_range - what an invalidation covers.
 * @start, @end: [start, end), page-aligned.
 * @event: why.
 * @owner: the device (pgmap owner) that caused it, or NULL (the CPU side).
 */
struct uhmm_notifier_range {
	uintptr_t start, end;
	enum uhmm_notify_event event;
	void *owner;
};

struct uhmm_interval_notifier;

/**
 * struct uhmm_interval_notifier_ops - the device's side of a notifier.
 * @invalidate: the range [range->start, range->end) of the notifier's
 *	interval is about to change (or, for events uhmm learns only from the
 *	kernel afterwards, has changed; see docs/MIRROR.md). The device must
 *	take the lock it holds around uhmm_interval_read_retry(), call
 *	uhmm_interval_set_seq(n, cur_seq), stop using the range (clear its
 *	page-table entries), drop the lock and return true.
 *	The device reads what this callback writes only under that lock (or
 *	with atomics), never through a plain variable: the callback may run
 *	inside the program's own munmap/madvise/mprotect/mremap/mmap, which
 *	glibc declares leaf (__THROW), so the compiler may keep a file-scope
 *	variable in a register across such a call (docs/MIRROR.md).
 *	Called from: the thread that changes the mapping (interposed munmap,
 *	mremap, madvise, mprotect, mmap MAP_FIXED), a uhmm service thread
 *	(events from raw syscalls), or the thread migrating / freeing. May
 *	block briefly; must not touch managed memory of the same mm, call
 *	uhmm_interval_notifier_insert()/_remove() (that aborts with a
 *	message), or munmap/mprotect managed memory (it could deadlock).
 *	Return: true (false is reserved).
 */
struct uhmm_interval_notifier_ops {
	bool (*invalidate)(struct uhmm_interval_notifier *n,
			   const struct uhmm_notifier_range *range, unsigned long cur_seq);
};

/**
 * struct uhmm_interval_notifier - an interval of the address space a device
 * mirrors. Embedded by the caller; every field is private to uhmm.
 */
struct uhmm_interval_notifier {
	struct uhmm_interval_notifier *_left, *_right; /* interval treap */
	uint64_t _prio;
	uintptr_t _start, _last, _max_last;		/* [start, last], subtree max */
	struct uhmm_mm *_mm;
	const struct uhmm_interval_notifier_ops *_ops;
	unsigned long _invalidate_seq;			/* atomic */
};

/**
 * uhmm_interval_notifier_insert() - start mirroring [start, start+length).
 * @n: caller-owned, not yet inserted.
 * @mm: the address space; @start/@length need not be managed: unmanaged
 *	memory is notified for what the interposed calls see (docs/MIRROR.md).
 * @ops: callbacks; must outlive the insertion.
 * May block while an invalidation of the mm is running.
 * Return: 0, or -EINVAL (NULL argument, zero or overflowing length),
 * -EEXIST (@n is inserted already).
 */
int uhmm_interval_notifier_insert(struct uhmm_interval_notifier *n, struct uhmm_mm *mm,
				  uintptr_t start, size_t length,
				  const struct uhmm_interval_notifier_ops *ops);

/**
 * uhmm_interval_notifier_remove() - stop mirroring. Waits for any running
 * invalidate callback of @n to return; after it, @n is never called again
 * and may be freed. Must not be called from an invalidate callback.
 */
void uhmm_interval_notifier_remove(struct uhmm_interval_notifier *n);

/**
 * uhmm_interval_read_begin() - begin a read side critical section: returns
 * the sequence to pass to uhmm_interval_read_retry(). Waits while an
 * invalidation that covers @n is running. Never call with the device lock
 * held (the invalidate callback takes it).
 */
unsigned long uhmm_interval_read_begin(struct uhmm_interval_notifier *n);

/**
 * uhmm_interval_read_retry() - did an invalidation run since read_begin?
 * Call with the device lock held (the lock the invalidate callback takes);
 * false means the device's view is still valid and may be committed.
 */
bool uhmm_interval_read_retry(struct uhmm_interval_notifier *n, unsigned long seq);

/**
 * uhmm_interval_check_retry() - the same test without the lock, as a hint to
 * give up early; a false answer must be confirmed by read_retry.
 */
bool uhmm_interval_check_retry(struct uhmm_interval_notifier *n, unsigned long seq);

/**
 * uhmm_interval_set_seq() - record an invalidation, from the invalidate
 * callback, under the device lock.
 */
void uhmm_interval_set_seq(struct uhmm_interval_notifier *n, unsigned long cur_seq);

/*
 * Entries of uhmm_range.hmm_pfns (Linux HMM_PFN_*): one unsigned long per
 * 4 KiB page. Output flags live in the high bits, the mapping order in bits
 * 52..56, the frame in bits 0..51. Inputs use the same bits: REQ_FAULT asks
 * for the page to be faulted in, REQ_WRITE for it to be writable.
 */
#define UHMM_PFN_VALID (1UL << 63)		/* output: entry is valid */
#define UHMM_PFN_WRITE (1UL << 62)		/* output: device may write */
#define UHMM_PFN_ERROR (1UL << 61)		/* output: unmapped or no access */
#define UHMM_PFN_ZERO (1UL << 60)		/* output: the shared zero page */
#define UHMM_PFN_DEVICE_PRIVATE (1UL << 59)	/* output: frame is a device page */
#define UHMM_PFN_ORDER_SHIFT 52
#define UHMM_PFN_ORDER_MASK (0x1fUL << UHMM_PFN_ORDER_SHIFT)
#define UHMM_PFN_FRAME_MASK ((1UL << UHMM_PFN_ORDER_SHIFT) - 1)
#define UHMM_PFN_FLAGS (~UHMM_PFN_FRAME_MASK)
#define UHMM_PFN_REQ_FAULT UHMM_PFN_VALID	/* input */
#define UHMM_PFN_REQ_WRITE UHMM_PFN_WRITE	/* input */

/** uhmm_pfn_order() - log2 of the mapping size in pages (0, 9 for 2 MiB). */
static inline unsigned int uhmm_pfn_order(unsigned long pfn)
{
	return (unsigned int)((pfn & UHMM_PFN_ORDER_MASK) >> UHMM_PFN_ORDER_SHIFT);
}

/** uhmm_pfn_frame() - the frame: addr >> 12 for system memory, the device
 * page index for UHMM_PFN_DEVICE_PRIVATE entries. */
static inline unsigned long uhmm_pfn_frame(unsigned long pfn)
{
	return pfn & UHMM_PFN_FRAME_MASK;
}

/**
 * struct uhmm_range - one uhmm_range_fault() request (Linux struct hmm_range).
 * @notifier: in: the interval notifier covering the range.
 * @notifier_seq: in: from uhmm_interval_read_begin().
 * @start, @end: in: [start, end), page-aligned.
 * @hmm_pfns: in/out: (end - start) / 4096 entries: request flags in,
 *	results out.
 * @default_flags: in: request flags applied to every entry.
 * @pfn_flags_mask: in: which per-entry request bits count.
 * @dev_private_owner: in: device pages of this owner are reported (not
 *	faulted home); other owners' device pages are faulted home when a
 *	fault is requested and reported as not present otherwise.
 */
struct uhmm_range {
	struct uhmm_interval_notifier *notifier;
	unsigned long notifier_seq;
	uintptr_t start, end;
	unsigned long *hmm_pfns;
	unsigned long default_flags;
	unsigned long pfn_flags_mask;
	void *dev_private_owner;
};

/**
 * uhmm_range_fault() - snapshot and, where asked, fault in a range: the
 * device's view of the CPU page table (Linux hmm_range_fault()).
 *
 * Per entry the request is (entry & pfn_flags_mask) | default_flags. With
 * no request the entry is a snapshot: nothing is faulted in. Outputs:
 * VALID (+ WRITE) with the frame and order for present memory; VALID|ZERO
 * for the zero page (never WRITE); VALID|DEVICE_PRIVATE with the device page
 * for dev_private_owner's pages; 0 for not present; ERROR for unmapped or
 * PROT_NONE addresses in snapshot entries.
 *
 * Return: 0 with every entry filled, or
 *  -EINVAL  unaligned or empty range, NULL notifier or hmm_pfns;
 *  -EFAULT  a fault was requested on an unmapped or PROT_NONE address, or
 *           faulting in failed (the page cannot be read);
 *  -EPERM   a write was requested on memory that is not writable;
 *  -EBUSY   the notifier's sequence moved (an invalidation ran): take a new
 *           notifier_seq with uhmm_interval_read_begin() and call again;
 *  -ENOMEM  out of memory.
 * On error the contents of hmm_pfns are unspecified (partly written); pages
 * already faulted in stay faulted in, as in the kernel.
 */
int uhmm_range_fault(struct uhmm_range *range);

#ifdef __cplusplus
}
#endif

#endif /* UHMM_H */
