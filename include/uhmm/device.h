/* SPDX-License-Identifier: MIT */
/*
 * uhmm/device.h - what a device implementation needs: device memory
 * (struct uhmm_pagemap, the kernel's dev_pagemap) and migration
 * (uhmm_migrate_*, the kernel's migrate_vma_*). See docs/MIGRATION.md.
 *
 * Device pages are named by a page frame number (pfn) unique in the mm, as
 * a kernel pfn leads to its dev_pagemap: it says which pagemap the page
 * belongs to, and uhmm_device_pfn_index() gives the page's index within its
 * pagemap (section * 512 + page), for the device to find its memory.
 * Memory is added to a pagemap in 2 MiB sub-sections (512 pages each).
 */
#ifndef UHMM_DEVICE_H
#define UHMM_DEVICE_H

#include <uhmm.h>

#ifdef __cplusplus
extern "C" {
#endif

struct uhmm_pagemap;

/** uhmm_device_pfn_index() - the index of device page @pfn within its pagemap. */
static inline uint64_t uhmm_device_pfn_index(uint64_t pfn)
{
	return pfn & ((UINT64_C(1) << 40) - 1);
}

/**
 * enum uhmm_pagemap_type - what the CPU can do with the device's memory.
 * @UHMM_PAGEMAP_PRIVATE: nothing: a CPU touch migrates the page home
 *	(MEMORY_DEVICE_PRIVATE).
 * @UHMM_PAGEMAP_COHERENT: the CPU could map it directly
 *	(MEMORY_DEVICE_COHERENT); not offered yet: -EOPNOTSUPP.
 */
enum uhmm_pagemap_type {
	UHMM_PAGEMAP_PRIVATE = 1,
	UHMM_PAGEMAP_COHERENT = 2,
};

/**
 * struct uhmm_pagemap_ops - the device's side of its memory. Every callback
 * runs on the thread that caused it (a migrating thread, a CPU fault being
 * served: a uhmm service thread in thread mode, the faulting thread in
 * signal mode). None may touch managed memory of the mm, nor call back into
 * uhmm_migrate_*. No uhmm lock is held.
 *
 * Page numbers given to the callbacks are pfns (see the top of this file).
 *
 * @page_free: the last reference to device page @page went; the device may
 *	reuse it. Called exactly once per allocation. Optional.
 * @copy_to_device: copy @n 4 KiB pages: from host memory @src[i] into device
 *	page @dst[i]. One call per batch, so a DMA engine can take one
 *	submission. Return 0 or -errno (no page of the batch is then trusted).
 *	Optional when the pagemap has host storage (uhmm copies or moves).
 * @copy_from_device: the reverse: device page @src[i] into host memory
 *	@dst[i]. Same rules.
 * @migrate_to_ram: optional override of the CPU fault path: bring the page
 *	at @addr (and any neighbours the device likes) home with
 *	uhmm_migrate_setup/pages/finalize (fault_page = @addr). Return 0 or
 *	-errno (the faulting access then gets SIGBUS, as in the kernel). In
 *	signal mode it runs in the SIGBUS handler of the faulting thread.
 */
struct uhmm_pagemap_ops {
	void (*page_free)(struct uhmm_pagemap *pgmap, uint64_t page);
	int (*copy_to_device)(struct uhmm_pagemap *pgmap, const uint64_t *dst,
			      const void *const *src, size_t n);
	int (*copy_from_device)(struct uhmm_pagemap *pgmap, void *const *dst,
				const uint64_t *src, size_t n);
	int (*migrate_to_ram)(struct uhmm_pagemap *pgmap, struct uhmm_mm *mm, uintptr_t addr);
};

/**
 * struct uhmm_pagemap_config - a device's memory.
 * @type: UHMM_PAGEMAP_PRIVATE.
 * @owner: opaque owner (the device, or a group that shares memory). Not NULL.
 * @ops: callbacks; may be NULL for a host-storage pagemap.
 * @host_storage: the pagemap keeps each page's contents in host memory that
 *	uhmm maps and owns (a software device, a far-memory tier): migrations
 *	then move pages (UFFDIO_MOVE: zero-copy, whole 2 MiB runs as one PMD)
 *	and the copy callbacks are not needed. Otherwise the device holds the
 *	data and the copy callbacks are required.
 * @priv: for the device.
 */
struct uhmm_pagemap_config {
	enum uhmm_pagemap_type type;
	void *owner;
	const struct uhmm_pagemap_ops *ops;
	bool host_storage;
	void *priv;
};

/**
 * uhmm_pagemap_new() - create a device's memory map for @mm, with no memory
 * yet (add it with uhmm_pagemap_add_memory()).
 * Return: 0, or -EINVAL (bad config: NULL owner, unknown type, no copy
 * callbacks without host storage), -EOPNOTSUPP (COHERENT), -ENOSPC (255
 * pagemaps per mm), -ENOMEM.
 */
int uhmm_pagemap_new(struct uhmm_pagemap **ret, struct uhmm_mm *mm,
		     const struct uhmm_pagemap_config *cfg);

/**
 * uhmm_pagemap_free() - tear a pagemap down. First every page still holding
 * data for the mm is brought home (nothing is lost), and page_free calls
 * under way end. NULL is allowed. Must be called before uhmm_mm_free() of
 * its mm (uhmm_mm_free() with a pagemap attached aborts with a message). In
 * a fork child, on the child's copy, it only releases memory.
 *
 * Return: 0 (freed), or -EBUSY: a page could not come home (the device's
 * copy failed) or is still referenced (uhmm_page_get, or a destination of a
 * migration under way). Nothing is freed then and the pagemap keeps
 * working: put the references, and call again.
 */
int uhmm_pagemap_free(struct uhmm_pagemap *pgmap);

/** uhmm_pagemap_priv() / _owner() - what the config gave. */
void *uhmm_pagemap_priv(const struct uhmm_pagemap *pgmap);
void *uhmm_pagemap_owner(const struct uhmm_pagemap *pgmap);

/**
 * uhmm_pagemap_add_memory() - grow the device's pool by @bytes, a non-zero
 * multiple of 2 MiB, as new sub-sections.
 * Return: 0, or -EINVAL (size), -ENOMEM, -ENOSPC (more than 4096 sections).
 */
int uhmm_pagemap_add_memory(struct uhmm_pagemap *pgmap, size_t bytes);

/* Flag for uhmm_pagemap_remove_memory(). */
#define UHMM_PAGEMAP_EVICT (1u << 0) /* bring pages in use home first */

/**
 * uhmm_pagemap_remove_memory() - shrink the pool by one sub-section.
 * @section: its index (0 for the first 2 MiB added, ...).
 * Return: 0, or -EINVAL (no such section, or removed), -EBUSY (pages of it
 * are in use and UHMM_PAGEMAP_EVICT was not given, or could not all be
 * evicted: those that could are home, the section stays).
 */
int uhmm_pagemap_remove_memory(struct uhmm_pagemap *pgmap, unsigned int section,
			       unsigned int flags);

/**
 * struct uhmm_pagemap_stats - counters of a pagemap.
 */
struct uhmm_pagemap_stats {
	uint64_t pages_total, pages_free;
	uint64_t migrated_to, migrated_from; /* pages, committed */
	uint64_t faults;		     /* CPU faults that brought a page home */
	uint64_t alloc_failures;
	size_t metadata_bytes;		     /* per-page descriptors + sections */
};
void uhmm_pagemap_stats(struct uhmm_pagemap *pgmap, struct uhmm_pagemap_stats *out);

/**
 * uhmm_pagemap_alloc_page() - take a free device page, zeroed.
 * Return: 0 and the page's pfn in *@page with one reference, or -EINVAL
 * (NULL argument), -ENOMEM (no free page).
 */
int uhmm_pagemap_alloc_page(struct uhmm_pagemap *pgmap, uint64_t *page);

/**
 * uhmm_pagemap_alloc_unit() - take a whole free sub-section: 512 contiguous
 * pages (@page to @page + 511), zeroed, each with one reference, for a
 * 2 MiB-aligned run that is to move as one unit (a THP).
 * Return: 0, or -EINVAL, -ENOMEM (no sub-section entirely free).
 */
int uhmm_pagemap_alloc_unit(struct uhmm_pagemap *pgmap, uint64_t *page);

/**
 * uhmm_page_get() / uhmm_page_put() - references on a device page.
 * Return: 0, or -EINVAL when @page is not an allocated page of @pgmap
 * (foreign, free, out of range: nothing changes). When put drops the last
 * reference the page is freed (page_free callback) and scrubbed before it
 * is handed out again.
 */
int uhmm_page_get(struct uhmm_pagemap *pgmap, uint64_t page);
int uhmm_page_put(struct uhmm_pagemap *pgmap, uint64_t page);

/**
 * uhmm_pagemap_evict() - bring every page of the pagemap that holds data
 * for the mm home (the device's RELEASE). Return: pages that stay on the
 * device (0 when all came home).
 */
unsigned long uhmm_pagemap_evict(struct uhmm_pagemap *pgmap);

/**
 * uhmm_pagemap_read() / uhmm_pagemap_write() - copy one 4 KiB device page of a
 * host-storage pagemap to or from @buf. Neither ever waits for uhmm (host
 * storage is ordinary memory to the CPU; an empty page reads as zeros
 * without being filled), so a device may use them while holding its
 * page-table lock.
 * Return: 0, or -EINVAL (not a host-storage pagemap, or a bad page).
 */
int uhmm_pagemap_read(struct uhmm_pagemap *pgmap, uint64_t page, void *buf);
int uhmm_pagemap_write(struct uhmm_pagemap *pgmap, uint64_t page, const void *buf);

/**
 * uhmm_pagemap_page_addr() - where a host-storage pagemap keeps @page's
 * contents (4 KiB), for the device's own reads and writes; NULL for other
 * pagemaps or a bad page. A page whose data was moved in is mapped there;
 * an empty one reads as zeros. Touching it is an ordinary memory access
 * (it never waits for uhmm).
 */
void *uhmm_pagemap_page_addr(struct uhmm_pagemap *pgmap, uint64_t page);

/* ------------------------------------------------------------------------
 * Migration (Linux migrate_vma_setup/pages/finalize, include/linux/migrate.h)
 * ------------------------------------------------------------------------ */

/* Entries of src[] and dst[]: flags in the low bits, the frame above. */
#define UHMM_MIGRATE_PFN_VALID (1UL << 0)	/* the entry names a page */
#define UHMM_MIGRATE_PFN_MIGRATE (1UL << 1)	/* src: selected for migration */
#define UHMM_MIGRATE_PFN_DEVICE (1UL << 2)	/* the frame is a device page */
#define UHMM_MIGRATE_PFN_WRITE (1UL << 3)	/* the mapping was/is writable */
#define UHMM_MIGRATE_PFN_COMPOUND (1UL << 4)	/* first of a 2 MiB run of 512 */
#define UHMM_MIGRATE_PFN_SHIFT 6

/* Device page -> dst entry, as migrate_pfn(page_to_pfn(dpage)) would. */
static inline unsigned long uhmm_migrate_pfn_device(uint64_t page)
{
	return ((unsigned long)page << UHMM_MIGRATE_PFN_SHIFT) | UHMM_MIGRATE_PFN_VALID |
	       UHMM_MIGRATE_PFN_DEVICE;
}

/* The frame of an entry: a device page number, or (host) address >> 12. */
static inline uint64_t uhmm_migrate_pfn_frame(unsigned long entry)
{
	return entry >> UHMM_MIGRATE_PFN_SHIFT;
}

/* Select flags (MIGRATE_VMA_SELECT_*). */
#define UHMM_MIGRATE_SELECT_SYSTEM (1UL << 0)
#define UHMM_MIGRATE_SELECT_DEVICE_PRIVATE (1UL << 1)
#define UHMM_MIGRATE_SELECT_DEVICE_COHERENT (1UL << 2)
#define UHMM_MIGRATE_SELECT_COMPOUND (1UL << 3)

/**
 * struct uhmm_migrate - one migration (Linux struct migrate_vma).
 * @mm: in: the address space.
 * @start, @end: in: [start, end), page-aligned, inside one mapping.
 * @src: in/out: npages entries, filled by setup: selected pages have
 *	MIGRATE; those with data have VALID and a frame where the data can be
 *	read now (host address >> 12, or a DEVICE page of @pgmap_owner).
 *	uhmm_migrate_pages() clears MIGRATE on pages that did not migrate.
 * @dst: in/out: npages entries, zeroed by setup; the caller fills what it
 *	migrates: a device page it allocated (uhmm_migrate_pfn_device; the
 *	pfn names its pagemap, and its reference passes to the migration)
 *	when migrating to a device, uhmm_migrate_sys_pfn(m, i) when migrating
 *	to system memory. An entry left 0 skips that page.
 * @cpages: out: pages selected by setup.
 * @npages: out: (end - start) / 4096.
 * @pgmap_owner: in: the device doing it; device pages of this owner are
 *	the ones SELECT_DEVICE_PRIVATE selects; MIGRATE invalidations carry it.
 * @flags: in: UHMM_MIGRATE_SELECT_*.
 * @fault_page: in: for migrate_to_ram, the faulting address (else 0): it
 *	must lie in [start, end), and the page there is counted as a CPU fault
 *	of its pagemap when it comes home.
 * @priv_: uhmm's own; do not touch.
 */
struct uhmm_migrate {
	struct uhmm_mm *mm;
	uintptr_t start, end;
	unsigned long *src, *dst;
	unsigned long cpages, npages;
	void *pgmap_owner;
	unsigned long flags;
	uintptr_t fault_page;
	void *priv_;
};

/**
 * uhmm_migrate_setup() - collect and isolate the pages to migrate.
 *
 * Selected: with SELECT_SYSTEM, anonymous private pages in system memory,
 * present or not (an unpopulated page or the zero page migrates with no
 * source data: src has MIGRATE but not VALID); shared and file-backed pages
 * are never selected. With SELECT_DEVICE_PRIVATE, device pages of
 * @pgmap_owner. Pages of other owners, pages being migrated or held
 * exclusively are not selected. Anonymous memory is managed on first use.
 *
 * From setup until finalize, the selected pages are isolated: a CPU access
 * to one waits. A MIGRATE invalidation with @pgmap_owner is sent first.
 * The range is checked before src and dst are written. Do not fork() on
 * this thread before finalize (it would wait for itself: it aborts with a
 * message); other threads' forks wait for the migration.
 *
 * Return: 0 (cpages may be 0), or
 *  -EINVAL  bad range (unaligned, empty, not inside one mapping, no read
 *           permission), NULL src/dst/mm, no select flag, fault_page
 *           outside the range; src and dst are not touched;
 *  -ENOMEM  out of memory (nothing isolated);
 *  -EOPNOTSUPP the kernel has no UFFDIO_MOVE (Linux 6.8) to isolate with.
 * On success, uhmm_migrate_finalize() must be called.
 */
int uhmm_migrate_setup(struct uhmm_migrate *m);

/**
 * uhmm_migrate_sys_pfn() - the system page uhmm prepared for entry @i of a
 * migration to system memory: copy the device page's data to
 * (void *)(uhmm_migrate_pfn_frame(entry) << 12) and store the entry in
 * dst[i]. 0 if @i has no MIGRATE.
 */
unsigned long uhmm_migrate_sys_pfn(struct uhmm_migrate *m, unsigned long i);

/**
 * uhmm_migrate_copy() - do the copying for every selected entry whose dst the
 * caller has filled: source data (src VALID) into the destination, through
 * UFFDIO_MOVE when both sides are host memory uhmm owns (zero-copy; whole
 * 2 MiB runs as one unit), else the destination pagemap's batched copy
 * callbacks. Entries with no source need nothing (device pages are zeroed
 * when allocated). An entry whose copy fails has its dst cleared (it will
 * not migrate) and the error is returned. A device that copies by itself
 * does not call this.
 * Return: 0, -EINVAL (a destination is bad, as uhmm_migrate_pages() says:
 * nothing was copied), or the first -errno of a copy.
 */
int uhmm_migrate_copy(struct uhmm_migrate *m);

/**
 * uhmm_migrate_pages() - commit: every selected entry with a dst now lives
 * there; the others have MIGRATE cleared in src. A page the program
 * discarded meanwhile does not migrate. For a host-storage pagemap, data
 * the device did not copy itself is moved into the destination here.
 *
 * Return: 0, or -EINVAL when a destination is bad: a device page that is
 * not an allocated page of a pagemap of this mm, that already holds data,
 * or that is given twice (here or by another migration under way), or a
 * system destination other than uhmm_migrate_sys_pfn()'s. Then nothing
 * migrates (every MIGRATE is cleared); finalize releases what was given.
 */
int uhmm_migrate_pages(struct uhmm_migrate *m);

/**
 * uhmm_migrate_finalize() - end the migration: pages that did not migrate
 * are put back where they were, with their data (wherever it was by then:
 * isolated, or already copied into a destination); every device page given
 * as dst and not used is released (its reference put), whoever filled it;
 * the device pages left behind by pages that went home are released; CPU
 * accesses waiting on any page resume. If the range was unmapped or its
 * pages discarded (MADV_DONTNEED) meanwhile, their data is dropped (the
 * program asked for that); if it moved (mremap), the pages go to where it
 * is now.
 */
void uhmm_migrate_finalize(struct uhmm_migrate *m);

/**
 * uhmm_migrate_alloc_and_copy() - the common driver step for migrating to
 * @pgmap: allocate a device page for every selected entry (2 MiB-aligned
 * runs of 512 as one unit, uhmm_pagemap_alloc_unit, when SELECT_COMPOUND),
 * fill dst, uhmm_migrate_copy(). An allocation failure leaves that entry's
 * dst 0 (the page stays home).
 * Return: the number of entries given a destination.
 */
unsigned long uhmm_migrate_alloc_and_copy(struct uhmm_migrate *m, struct uhmm_pagemap *pgmap);

/**
 * uhmm_migrate_to_ram() - bring every page @owner holds in [start, end)
 * home (the device's own eviction, or its MIGRATE_TO_SYS).
 * Return: pages brought home, or -errno as uhmm_migrate_setup().
 */
long uhmm_migrate_to_ram(struct uhmm_mm *mm, uintptr_t start, uintptr_t end, void *owner);

/**
 * uhmm_make_device_exclusive() - give @owner exclusive access to the
 * anonymous pages of [start, end) for its atomics (make_device_exclusive).
 * The CPU mapping goes away (EXCLUSIVE invalidation carrying @owner); the
 * pages are faulted in first. Any CPU access restores the mapping and
 * revokes the device's access (CLEAR invalidation); so does mprotect.
 * Return: the number of pages made exclusive, or
 *  -EINVAL     bad range; -EFAULT unmapped / no read permission;
 *  -EOPNOTSUPP shared, file-backed or hugetlb memory.
 */
long uhmm_make_device_exclusive(struct uhmm_mm *mm, uintptr_t start, uintptr_t end, void *owner);

/**
 * uhmm_device_exclusive_addr() - where the data of an exclusive page lives
 * while the device holds it (the device reads and writes it there), or NULL
 * if the page at @addr is not held exclusively by @owner.
 */
void *uhmm_device_exclusive_addr(struct uhmm_mm *mm, uintptr_t addr, void *owner);

/**
 * uhmm_mm_resident() - count the pages of [start, end) @owner holds (device
 * memory), or any device when @owner is NULL (pages in transit count where
 * their word says they are).
 */
unsigned long uhmm_mm_resident(struct uhmm_mm *mm, uintptr_t start, uintptr_t end, void *owner);

#ifdef __cplusplus
}
#endif

#endif /* UHMM_DEVICE_H */
