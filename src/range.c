/* SPDX-License-Identifier: MIT */
/*
 * range.c - uhmm_range_fault(): the device's view of the CPU page table,
 * as Linux hmm_range_fault() gives it (Documentation/mm/hmm.rst).
 *
 * The range is walked one VMA at a time:
 *   - holes and PROT_NONE VMAs: -EFAULT if any entry asks for a fault,
 *     otherwise ERROR entries (snapshot);
 *   - a write request on a VMA without write permission: -EPERM;
 *   - otherwise the page tables of the VMA are read in bulk with
 *     PAGEMAP_SCAN, requested pages that are not present (or not writable
 *     for a write request) are faulted in, and the entries are filled.
 *
 * Faulting in. uhmm never faults by touching memory (a race with munmap
 * would kill the process). Pages of a registered area that are missing are
 * filled through the mm's userfaultfd (UFFDIO_ZEROPAGE for a whole run, in
 * one ioctl), or brought home by the fault service when a device holds
 * them; then MADV_POPULATE_WRITE makes write-requested runs writable (breaks
 * zero-page and copy-on-write sharing). Unregistered memory (unmanaged, or
 * file systems userfaultfd cannot take) is faulted with MADV_POPULATE_READ /
 * _WRITE. Filling missing managed pages happens under mm->lock, with the
 * page state checked, so that a page migrating to a device at that moment
 * can never be replaced by a zero page.
 *
 * Frames: devices here reach system memory by virtual address, so the frame
 * of a system page is addr >> 12; a device page's frame is its index in its
 * pagemap.
 */
#include <errno.h>
#include <string.h>
#include <sys/mman.h>

#include "internal.h"

#ifndef MADV_POPULATE_READ
#define MADV_POPULATE_READ 22
#define MADV_POPULATE_WRITE 23
#endif

/* Per-page snapshot bits, from PAGEMAP_SCAN. */
#define C_PRESENT 0x1
#define C_ZERO 0x2
#define C_HUGE 0x4
#define C_WP 0x8 /* write-protected by userfaultfd */

#define REQ (UHMM_PFN_REQ_FAULT | UHMM_PFN_REQ_WRITE)

static unsigned long req_of(const struct uhmm_range *r, size_t i)
{
	unsigned long req = ((r->hmm_pfns[i] & r->pfn_flags_mask) | r->default_flags) & REQ;

	/* A write request is a fault request (as HMM_PFN_REQ_WRITE is). */
	return req & UHMM_PFN_REQ_WRITE ? REQ : req;
}

/* A hole or a PROT_NONE VMA: error out, or mark the entries ERROR. */
static int fill_error(struct uhmm_range *r, uintptr_t s, uintptr_t e)
{
	size_t i0 = (s - r->start) >> UHMM__PAGE_SHIFT, i1 = (e - r->start) >> UHMM__PAGE_SHIFT;

	for (size_t i = i0; i < i1; i++)
		if (req_of(r, i))
			return -EFAULT;
	for (size_t i = i0; i < i1; i++)
		r->hmm_pfns[i] = UHMM_PFN_ERROR;
	return 0;
}

struct scan_arg {
	uint8_t *cat;
	uintptr_t base;
};

static int scan_cb(void *p, const struct page_region *pr)
{
	struct scan_arg *a = p;
	uint8_t c = 0;

	if (pr->categories & PAGE_IS_PRESENT)
		c |= C_PRESENT;
	if (pr->categories & PAGE_IS_PFNZERO)
		c |= C_ZERO;
	if (pr->categories & PAGE_IS_HUGE)
		c |= C_HUGE;
	if (!(pr->categories & PAGE_IS_WRITTEN))
		c |= C_WP;
	memset(a->cat + ((pr->start - a->base) >> UHMM__PAGE_SHIFT), c,
	       (pr->end - pr->start) >> UHMM__PAGE_SHIFT);
	return 0;
}

/* Snapshot [s, e) into cat[]: one byte per page. */
static int scan(struct uhmm_mm *mm, uintptr_t s, uintptr_t e, uint8_t *cat)
{
	struct scan_arg a = { .cat = cat, .base = s };

	memset(cat, 0, (e - s) >> UHMM__PAGE_SHIFT);
	return uhmm__pagemap_walk(mm->pagemap_fd, s, e, PAGE_IS_PRESENT,
				  PAGE_IS_PRESENT | PAGE_IS_PFNZERO | PAGE_IS_HUGE | PAGE_IS_WRITTEN,
				  scan_cb, &a);
}

/*
 * Fill the missing pages of [s, e) in a registered area, or hand pages a
 * device holds to the fault service. Under mm->lock for the state check.
 */
/* Is the page at @addr (in @a) ordinary memory nobody holds? Under mm->lock. */
static bool plain(struct uhmm_mm *mm, uintptr_t addr)
{
	struct uhmm__ps *p = uhmm__ps_lookup(mm, addr, NULL);

	return p && uhmm__ps_plain(uhmm__ps_load(p));
}

static int fill_missing(struct uhmm_mm *mm, uintptr_t s, uintptr_t e)
{
	int r = 0, stalls = 0;

	while (s < e && !r) {
		struct uhmm__area *a;
		uintptr_t run = s;

		uhmm__lock(&mm->lock);
		a = uhmm__area_find(&mm->areas, s);
		if (!a || !a->registered) {
			uhmm__unlock(&mm->lock);
			return 1; /* not ours to fill: populate instead */
		}
		/* The run of pages no device holds and nobody is migrating. */
		while (run < e && run < a->end && plain(mm, run))
			run += UHMM__PAGE_SIZE;
		if (run > s) {
			size_t done = 0;

			r = uhmm__uffd_zeropage(mm->uffd, s, run - s, 0, &done);
			uhmm__unlock(&mm->lock);
			if (r == -EEXIST) {
				/* The page at s + done is present (zero page, or raced in). */
				done += UHMM__PAGE_SIZE;
				r = 0;
			} else if (r == -EAGAIN) {
				/* Partial progress, or the mm is changing under us. */
				if (!done && ++stalls > 100)
					return -EBUSY;
				r = 0;
			}
			s += done;
			continue;
		}
		uhmm__unlock(&mm->lock);
		/*
		 * A device holds it, or it is migrating: the fault path brings it
		 * home, waiting for a migration under way (as a faulting thread
		 * does in signal mode: this is a caller's thread, not a service one).
		 */
		r = uhmm__fault_resolve(mm, s, false, true);
		if (r == -EAGAIN || r == -ENOMEM)
			r = 0; /* transient: the next round sees it */
		else if (r)
			r = -EFAULT; /* the device cannot give it back: it cannot be read */
		s += UHMM__PAGE_SIZE;
	}
	return r;
}

static unsigned long device_entry(struct uhmm_mm *mm, struct uhmm_range *r, uintptr_t addr,
				  bool writable);

/*
 * Is the request of the page at @addr (snapshot byte @c) unmet? A page not
 * in the CPU page table meets a request only when it is a device page of
 * dev_private_owner (never faulted home, even for a write).
 */
static bool unmet(struct uhmm_mm *mm, struct uhmm_range *r, uintptr_t addr, unsigned long req,
		  uint8_t c)
{
	bool own;

	if (!req)
		return false;
	if (c & C_PRESENT)
		return (req & UHMM_PFN_REQ_WRITE) && (c & (C_ZERO | C_WP));
	if (!r->dev_private_owner)
		return true;
	uhmm__lock(&mm->lock);
	own = device_entry(mm, r, addr, false) != 0;
	uhmm__unlock(&mm->lock);
	return !own;
}

/* Is @addr in a managed area registered with the mm's userfaultfd? */
static bool ret_managed(struct uhmm_mm *mm, uintptr_t addr)
{
	struct uhmm__area *a;
	bool r;

	uhmm__lock(&mm->lock);
	a = uhmm__area_find(&mm->areas, addr);
	r = a && a->registered;
	uhmm__unlock(&mm->lock);
	return r;
}

/* Fault in what [s, e) requests and lacks. cat[] is the snapshot of [s, e). */
static int fault_in(struct uhmm_mm *mm, struct uhmm_range *r, const struct uhmm__vma *vma,
		    uintptr_t s, uintptr_t e, const uint8_t *cat)
{
	size_t i0 = (s - r->start) >> UHMM__PAGE_SHIFT;
	uintptr_t a = s;

	while (a < e) {
		size_t k = (a - s) >> UHMM__PAGE_SHIFT;
		unsigned long req = req_of(r, i0 + k);
		bool write = req & UHMM_PFN_REQ_WRITE;
		uintptr_t b = a + UHMM__PAGE_SIZE;
		int ret;

		if (!unmet(mm, r, a, req, cat[k])) {
			a = b;
			continue;
		}
		/* Extend over neighbours that need the same kind of fault. */
		while (b < e) {
			size_t kb = (b - s) >> UHMM__PAGE_SHIFT;
			unsigned long rb = req_of(r, i0 + kb);

			if (!!(rb & UHMM_PFN_REQ_WRITE) != write || !unmet(mm, r, b, rb, cat[kb]))
				break;
			b += UHMM__PAGE_SIZE;
		}
		ret = fill_missing(mm, a, b);
		if (ret < 0)
			return ret;
		if (ret > 0 || write) {
			ret = uhmm__sys_madvise((void *)a, b - a,
						write ? MADV_POPULATE_WRITE : MADV_POPULATE_READ);
			if (ret == -EINVAL && !vma->write)
				return -EPERM;
			/*
			 * -EFAULT on memory uhmm fills: a page went off the CPU
			 * again (a migration took it) where faults fail inside
			 * the kernel (signal mode, user-mode-only): transient,
			 * the next round sees it.
			 */
			if (ret == -EFAULT && ret_managed(mm, a))
				ret = 0;
			if (ret)
				return ret == -ENOMEM ? -EFAULT : ret;
		}
		a = b;
	}
	return 0;
}

static unsigned int vma_order(const struct uhmm__vma *vma, uint8_t c)
{
	if (vma->page_size > UHMM__PAGE_SIZE)
		return (unsigned int)__builtin_ctzll(vma->page_size) - UHMM__PAGE_SHIFT;
	return (c & C_HUGE) ? 9 : 0;
}

/*
 * Device pages: the entry of a device-resident page of dev_private_owner,
 * writable when its mapping is now; under mm->lock.
 */
static unsigned long device_entry(struct uhmm_mm *mm, struct uhmm_range *r, uintptr_t addr,
				  bool writable)
{
	struct uhmm__area *a;
	struct uhmm__ps *p;
	struct uhmm__ps v;

	if (!r->dev_private_owner || !(p = uhmm__ps_lookup(mm, addr, &a)))
		return 0;
	v = uhmm__ps_load(p);
	/* Being migrated: like a migration entry, not present (its data is moving). */
	if (!uhmm__ps_on_device(v) ||
	    uhmm__pagemap_owner(mm, uhmm__pfn_slot(uhmm__ps_pfn(v))) != r->dev_private_owner)
		return 0;
	return UHMM_PFN_VALID | UHMM_PFN_DEVICE_PRIVATE | (writable ? UHMM_PFN_WRITE : 0) |
	       (uhmm__ps_pfn(v) & UHMM_PFN_FRAME_MASK);
}

/*
 * A 2 MiB-aligned unit of the range whose 512 entries are device pages of
 * one section, in order, is mapped by the device as one unit (order 9), as
 * the kernel reports a device-private THP.
 */
static void device_orders(unsigned long *out, uintptr_t s, size_t n)
{
	size_t k = ((UHMM__PMD_SIZE - (s & (UHMM__PMD_SIZE - 1))) & (UHMM__PMD_SIZE - 1)) >>
		   UHMM__PAGE_SHIFT;

	for (; k + UHMM__PMD_PAGES <= n; k += UHMM__PMD_PAGES) {
		unsigned long f = uhmm_pfn_frame(out[k]);
		bool unit = (out[k] & UHMM_PFN_DEVICE_PRIVATE) && f % UHMM__SECTION_PAGES == 0;

		for (size_t j = 1; unit && j < UHMM__PMD_PAGES; j++)
			unit = (out[k + j] & UHMM_PFN_DEVICE_PRIVATE) &&
			       uhmm_pfn_frame(out[k + j]) == f + j &&
			       (out[k + j] & UHMM_PFN_WRITE) == (out[k] & UHMM_PFN_WRITE);
		for (size_t j = 0; unit && j < UHMM__PMD_PAGES; j++)
			out[k + j] |= 9UL << UHMM_PFN_ORDER_SHIFT;
	}
}

static void fill_entries(struct uhmm_mm *mm, struct uhmm_range *r, const struct uhmm__vma *vma,
			 uintptr_t s, uintptr_t e, const uint8_t *cat)
{
	size_t i0 = (s - r->start) >> UHMM__PAGE_SHIFT, n = (e - s) >> UHMM__PAGE_SHIFT;
	unsigned long *out = r->hmm_pfns + i0, frame = s >> UHMM__PAGE_SHIFT;
	unsigned long flags[16];

	/* The flags of each snapshot byte, computed once, not per page. */
	for (unsigned int c = 0; c < 16; c++) {
		unsigned long v = UHMM_PFN_VALID |
				  ((unsigned long)vma_order(vma, (uint8_t)c) << UHMM_PFN_ORDER_SHIFT);

		if (c & C_ZERO)
			v |= UHMM_PFN_ZERO;
		else if (vma->write && !(c & C_WP))
			v |= UHMM_PFN_WRITE;
		flags[c] = c & C_PRESENT ? v : 0;
	}
	for (size_t k = 0; k < n; k++)
		out[k] = flags[cat[k] & 15] ? flags[cat[k] & 15] | ((frame + k) & UHMM_PFN_FRAME_MASK)
					    : 0;
	/* Not in the CPU page table: a device of dev_private_owner may hold it. */
	if (!r->dev_private_owner)
		return;
	uhmm__lock(&mm->lock);
	for (size_t k = 0; k < n; k++)
		if (!(cat[k] & C_PRESENT))
			out[k] = device_entry(mm, r, s + (k << UHMM__PAGE_SHIFT), vma->write);
	uhmm__unlock(&mm->lock);
	device_orders(out, s, n);
}

#define WINDOW_PAGES 65536 /* 256 MiB of entries per scan buffer */

static bool any_unmet(struct uhmm_mm *mm, struct uhmm_range *r, uintptr_t s, uintptr_t e,
		      const uint8_t *cat)
{
	size_t i0 = (s - r->start) >> UHMM__PAGE_SHIFT, n = (e - s) >> UHMM__PAGE_SHIFT;

	for (size_t k = 0; k < n; k++)
		if (unmet(mm, r, s + (k << UHMM__PAGE_SHIFT), req_of(r, i0 + k), cat[k]))
			return true;
	return false;
}

static int range_vma(struct uhmm_mm *mm, struct uhmm_range *r, const struct uhmm__vma *vma,
		     uintptr_t s, uintptr_t e, uint8_t *cat)
{
	size_t i0 = (s - r->start) >> UHMM__PAGE_SHIFT, n = (e - s) >> UHMM__PAGE_SHIFT;

	if (!vma->write) {
		for (size_t k = 0; k < n; k++)
			if (req_of(r, i0 + k) & UHMM_PFN_REQ_WRITE)
				return -EPERM;
	}
	for (uintptr_t w = s; w < e;) {
		uintptr_t we = (e - w) >> UHMM__PAGE_SHIFT > WINDOW_PAGES
				       ? w + WINDOW_PAGES * UHMM__PAGE_SIZE
				       : e;

		/* Requests are read from hmm_pfns until fill_entries() overwrites them. */
		for (int attempt = 0;; attempt++) {
			int ret = scan(mm, w, we, cat);

			if (ret)
				return ret;
			/* A pure snapshot has nothing to check. */
			if (!(r->default_flags & REQ) && !(r->pfn_flags_mask & REQ))
				break;
			if (!any_unmet(mm, r, w, we, cat))
				break;
			/* A concurrent change undid a fault-in: the caller must retry. */
			if (attempt && uhmm_interval_check_retry(r->notifier, r->notifier_seq))
				return -EBUSY;
			if (attempt == 4)
				return -EFAULT;
			ret = fault_in(mm, r, vma, w, we, cat);
			if (ret)
				return ret;
		}
		fill_entries(mm, r, vma, w, we, cat);
		w = we;
	}
	return 0;
}

UHMM__EXPORT int uhmm_range_fault(struct uhmm_range *r)
{
	struct uhmm_mm *mm;
	uint8_t *cat;
	uintptr_t cur;
	int ret = 0;

	if (!r || !r->notifier || !r->hmm_pfns || !uhmm__aligned(r->start) ||
	    !uhmm__aligned(r->end) || r->end <= r->start)
		return -EINVAL;
	mm = r->notifier->_mm;
	if (!mm)
		return -EINVAL; /* notifier removed, or its mm freed */
	if (uhmm_interval_check_retry(r->notifier, r->notifier_seq))
		return -EBUSY;
	{
		size_t n = (r->end - r->start) >> UHMM__PAGE_SHIFT;

		cat = uhmm__malloc(n < WINDOW_PAGES ? n : WINDOW_PAGES);
	}
	if (!cat)
		return -ENOMEM;
	for (cur = r->start; cur < r->end && !ret;) {
		struct uhmm__vma vma;
		uintptr_t seg;
		int q = uhmm__vma_query(mm->maps_fd, cur, true, &vma);

		if (q && q != -ENOENT) {
			ret = q;
			break;
		}
		if (q == -ENOENT || vma.start >= r->end) {
			ret = fill_error(r, cur, r->end);
			break;
		}
		if (vma.start > cur) {
			ret = fill_error(r, cur, vma.start);
			cur = vma.start;
			continue;
		}
		seg = vma.end < r->end ? vma.end : r->end;
		if (!vma.read || vma.special)
			ret = fill_error(r, cur, seg); /* PROT_NONE or no page table */
		else
			ret = range_vma(mm, r, &vma, cur, seg, cat);
		cur = seg;
	}
	uhmm__free(cat);
	if (!ret && uhmm_interval_check_retry(r->notifier, r->notifier_seq))
		ret = -EBUSY;
	return ret;
}
