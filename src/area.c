/* SPDX-License-Identifier: MIT */
/*
 * area.c - managed areas: the VMAs registered for HMM, in uhmm's terms.
 *
 * An area is a contiguous range of one kind (anonymous, shmem, file) managed
 * with one set of flags. The table is a sorted array searched by bisection:
 * areas are few (one per managed mapping, plus splits) and lookups happen on
 * every fault, so a flat array beats a tree on both counts.
 *
 * Page states live in refcounted blocks (struct uhmm__psblock) so that a
 * split or a move of an area is O(1) in state and cannot fail for memory of
 * state; only the table itself may need to grow.
 *
 * Concurrency: the table functions run under mm->lock; the exported verbs
 * take mm->event_lock then mm->lock (internal.h). Page states are pstate.c's:
 * an area leaves the books only after its pages were dealt with there.
 */
#include <errno.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>

#include "internal.h"

/*
 * Blocks of up to 64 KiB of states (32 MiB of memory) come from the heap; a
 * small private mapping could land in a one-page hole the program just
 * punched, and turn its "unmapped" address into uhmm's metadata.
 */
#define PSBLOCK_HEAP_MAX (64u << 10)

struct uhmm__psblock *uhmm__psblock_new(size_t npages)
{
	struct uhmm__psblock *b = uhmm__malloc(sizeof(*b));
	size_t bytes = npages * sizeof(struct uhmm__ps);
	void *ps = NULL;

	if (!b)
		return NULL;
	if (bytes <= PSBLOCK_HEAP_MAX) {
		ps = uhmm__calloc(npages, sizeof(struct uhmm__ps));
	} else if (!uhmm__inject_fail() &&
		   /* NORESERVE and untouched: a block costs memory only where written. */
		   uhmm__sys_mmap(&ps, NULL, bytes, PROT_READ | PROT_WRITE,
				  MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE, -1, 0)) {
		ps = NULL;
	}
	if (!ps) {
		uhmm__free(b);
		return NULL;
	}
	b->ps = ps;
	b->npages = npages;
	b->refs = 1;
	return b;
}

void uhmm__psblock_get(struct uhmm__psblock *b)
{
	b->refs++;
}

void uhmm__psblock_put(struct uhmm__psblock *b)
{
	if (b && --b->refs == 0) {
		uhmm__ps_check_free(b->ps, b->npages);
		if (b->npages * sizeof(struct uhmm__ps) <= PSBLOCK_HEAP_MAX)
			uhmm__free(b->ps);
		else
			uhmm__sys_munmap(b->ps, b->npages * sizeof(struct uhmm__ps));
		uhmm__free(b);
	}
}

size_t uhmm__area_lower(const struct uhmm__areas *t, uintptr_t addr)
{
	size_t lo = 0, hi = t->n;

	while (lo < hi) {
		size_t mid = lo + (hi - lo) / 2;

		if (t->v[mid].end <= addr)
			lo = mid + 1;
		else
			hi = mid;
	}
	return lo;
}

struct uhmm__area *uhmm__area_find(struct uhmm__areas *t, uintptr_t addr)
{
	size_t i = uhmm__area_lower(t, addr);

	if (i < t->n && t->v[i].start <= addr)
		return &t->v[i];
	return NULL;
}

static int areas_reserve(struct uhmm__areas *t, size_t extra)
{
	size_t cap;
	struct uhmm__area *v;

	if (t->n + extra <= t->cap)
		return 0;
	cap = t->cap ? t->cap * 2 : 16;
	while (cap < t->n + extra)
		cap *= 2;
	v = uhmm__realloc(t->v, cap * sizeof(*v));
	if (!v)
		return -ENOMEM;
	t->v = v;
	t->cap = cap;
	return 0;
}

int uhmm__areas_insert(struct uhmm__areas *t, const struct uhmm__area *a)
{
	size_t i;

	if (areas_reserve(t, 1))
		return -ENOMEM;
	i = uhmm__area_lower(t, a->start);
	memmove(&t->v[i + 1], &t->v[i], (t->n - i) * sizeof(*a));
	t->v[i] = *a;
	t->n++;
	return 0;
}

/* Piece of @a restricted to [start, end): same block, shifted offset. */
static struct uhmm__area area_slice(const struct uhmm__area *a, uintptr_t start, uintptr_t end)
{
	struct uhmm__area s = *a;

	s.start = start;
	s.end = end;
	s.blk_off = a->blk_off + ((start - a->start) >> UHMM__PAGE_SHIFT);
	return s;
}

int uhmm__areas_cut(struct uhmm__areas *t, uintptr_t start, uintptr_t end,
		    struct uhmm__areas *moved)
{
	size_t i = uhmm__area_lower(t, start), j = i, nin, nkeep = 0;
	struct uhmm__area keep[2];

	while (j < t->n && t->v[j].start < end)
		j++;
	nin = j - i;
	if (!nin)
		return 0;
	/* Reserve everything first so that nothing changes on failure. */
	if (areas_reserve(t, 2) || (moved && areas_reserve(moved, nin)))
		return -ENOMEM;

	/* Every piece that survives takes its own block reference... */
	if (t->v[i].start < start)
		keep[nkeep++] = area_slice(&t->v[i], t->v[i].start, start);
	if (t->v[j - 1].end > end)
		keep[nkeep++] = area_slice(&t->v[j - 1], end, t->v[j - 1].end);
	for (size_t k = 0; k < nkeep; k++)
		keep[k].blk->refs++;
	if (moved) {
		for (size_t k = i; k < j; k++) {
			const struct uhmm__area *a = &t->v[k];
			uintptr_t s = a->start > start ? a->start : start;
			uintptr_t e = a->end < end ? a->end : end;

			moved->v[moved->n++] = area_slice(a, s, e);
			a->blk->refs++;
		}
	}
	/* ...then the cut areas drop theirs. */
	for (size_t k = i; k < j; k++)
		uhmm__psblock_put(t->v[k].blk);

	memmove(&t->v[i + nkeep], &t->v[j], (t->n - j) * sizeof(t->v[0]));
	memcpy(&t->v[i], keep, nkeep * sizeof(keep[0]));
	t->n = t->n - nin + nkeep;
	t->cuts++;
	return 0;
}

void uhmm__areas_release(struct uhmm__areas *t)
{
	for (size_t i = 0; i < t->n; i++)
		uhmm__psblock_put(t->v[i].blk);
	uhmm__free(t->v);
	t->v = NULL;
	t->n = t->cap = 0;
}

/* --- the verbs: manage, unmanage, alloc, free ---------------------------- */

/* A piece of a range to manage, one VMA's worth. */
struct piece {
	uintptr_t start, end;
	unsigned int kind;
	bool registered;
};

struct pieces {
	struct piece *v;
	size_t n, cap;
};

static int pieces_push(struct pieces *p, const struct piece *x)
{
	if (p->n == p->cap) {
		size_t cap = p->cap ? p->cap * 2 : 8;
		struct piece *v = uhmm__realloc(p->v, cap * sizeof(*v));

		if (!v)
			return -ENOMEM;
		p->v = v;
		p->cap = cap;
	}
	p->v[p->n++] = *x;
	return 0;
}

/* Split [start, end) into VMA pieces; refuse holes and unsupported kinds. */
static int collect_pieces(struct uhmm_mm *mm, uintptr_t start, uintptr_t end, struct pieces *out)
{
	uintptr_t cur = start;

	while (cur < end) {
		struct uhmm__vma vma;
		struct piece p;
		int r = uhmm__vma_query(mm->maps_fd, cur, true, &vma);

		if (r == -ENOENT || (!r && vma.start > cur))
			return -ENOMEM; /* a hole, as madvise(2) reports it */
		if (r)
			return r;
		if (vma.special || vma.page_size > UHMM__PAGE_SIZE)
			return -EOPNOTSUPP; /* vdso/vvar/PFNMAP, hugetlb */
		p.start = cur;
		p.end = vma.end < end ? vma.end : end;
		p.kind = vma.file ? UHMM_AREA_SHMEM : UHMM_AREA_ANON; /* refined below */
		p.registered = false;
		r = pieces_push(out, &p);
		if (r)
			return r;
		cur = p.end;
	}
	return 0;
}

/*
 * Register one piece for MISSING faults. Anonymous memory must register;
 * file memory that userfaultfd refuses (regular files) is kept as a tracked,
 * unregistered FILE area.
 */
static int register_piece(struct uhmm_mm *mm, struct piece *p)
{
	int r = uhmm__uffd_register(mm->uffd, p->start, p->end - p->start,
				    UFFDIO_REGISTER_MODE_MISSING, NULL);

	if (!r) {
		p->registered = true;
		return 0;
	}
	if (r == -EBUSY)
		return -EEXIST; /* registered with another userfaultfd */
	if (r == -EINVAL && p->kind == UHMM_AREA_SHMEM) {
		p->kind = UHMM_AREA_FILE;
		return 0;
	}
	return r == -EINVAL ? -EOPNOTSUPP : r;
}

static void unregister_pieces(struct uhmm_mm *mm, const struct pieces *p)
{
	for (size_t i = 0; i < p->n; i++)
		if (p->v[i].registered)
			uhmm__uffd_unregister(mm->uffd, p->v[i].start, p->v[i].end - p->v[i].start);
}

/*
 * Gaps of [start, end) not yet managed; -EEXIST if a managed part has other
 * flags. Under mm->lock.
 */
static int find_gaps(struct uhmm_mm *mm, uintptr_t start, uintptr_t end, unsigned int flags,
		     struct pieces *gaps)
{
	struct uhmm__areas *t = &mm->areas;
	uintptr_t cur = start;

	for (size_t i = uhmm__area_lower(t, start); i < t->n && t->v[i].start < end; i++) {
		const struct uhmm__area *a = &t->v[i];
		struct piece g = { .start = cur, .end = a->start };

		if ((a->flags & UHMM_MANAGE_MIRROR_ONLY) != (flags & UHMM_MANAGE_MIRROR_ONLY))
			return -EEXIST;
		if (a->start > cur && pieces_push(gaps, &g))
			return -ENOMEM;
		cur = a->end;
	}
	if (cur < end) {
		struct piece g = { .start = cur, .end = end };

		if (pieces_push(gaps, &g))
			return -ENOMEM;
	}
	return 0;
}

int uhmm__manage_locked(struct uhmm_mm *mm, uintptr_t start, uintptr_t end, unsigned int flags)
{
	struct pieces gaps = { 0 }, todo = { 0 };
	struct uhmm__psblock **blks = NULL;
	size_t nblk = 0;
	int r;

	uhmm__lock(&mm->lock);
	r = find_gaps(mm, start, end, flags, &gaps);
	uhmm__unlock(&mm->lock);
	/* The table cannot change while we hold event_lock: work unlocked. */
	for (size_t i = 0; !r && i < gaps.n; i++)
		r = collect_pieces(mm, gaps.v[i].start, gaps.v[i].end, &todo);
	if (r || !todo.n)
		goto out_free;
	for (size_t i = 0; i < todo.n; i++) {
		r = register_piece(mm, &todo.v[i]);
		if (r)
			goto out_unregister;
	}
	blks = uhmm__calloc(todo.n, sizeof(*blks));
	if (!blks) {
		r = -ENOMEM;
		goto out_unregister;
	}
	for (nblk = 0; nblk < todo.n; nblk++) {
		blks[nblk] = uhmm__psblock_new((todo.v[nblk].end - todo.v[nblk].start) >>
					       UHMM__PAGE_SHIFT);
		if (!blks[nblk]) {
			r = -ENOMEM;
			goto out_blocks;
		}
	}
	uhmm__lock(&mm->lock);
	r = areas_reserve(&mm->areas, todo.n);
	if (!r) {
		for (size_t i = 0; i < todo.n; i++) {
			struct uhmm__area a = {
				.start = todo.v[i].start,
				.end = todo.v[i].end,
				.flags = flags,
				.kind = todo.v[i].kind,
				.registered = todo.v[i].registered,
				.blk = blks[i],
			};

			uhmm__areas_insert(&mm->areas, &a); /* cannot fail: reserved */
		}
	}
	uhmm__unlock(&mm->lock);
	if (!r)
		goto out_free;
out_blocks:
	for (size_t i = 0; i < nblk; i++)
		uhmm__psblock_put(blks[i]);
out_unregister:
	unregister_pieces(mm, &todo);
out_free:
	uhmm__free(blks);
	uhmm__free(gaps.v);
	uhmm__free(todo.v);
	return r;
}

UHMM__EXPORT int uhmm_manage(struct uhmm_mm *mm, void *addr, size_t len, unsigned int flags)
{
	uintptr_t start = (uintptr_t)addr;
	int r = uhmm__check_range(start, len);

	if (!mm || r)
		return -EINVAL;
	if (flags & ~UHMM_MANAGE_MIRROR_ONLY)
		return -EINVAL;
	uhmm__lock(&mm->event_lock);
	r = uhmm__manage_locked(mm, start, start + len, flags);
	uhmm__unlock(&mm->event_lock);
	return r;
}

/* Does any page of [start, end) hold data off the CPU, or is it migrating? */
static bool off_cpu(struct uhmm_mm *mm, uintptr_t start, uintptr_t end)
{
	struct uhmm__ps_iter it;
	struct uhmm__area *a;
	struct uhmm__ps *p;
	uintptr_t addr;

	uhmm__ps_iter_init(&it, mm, start, end);
	while (uhmm__ps_iter_next(&it, &addr, &a, &p))
		if (!uhmm__ps_plain(uhmm__ps_load(p)))
			return true;
	return false;
}

UHMM__EXPORT int uhmm_unmanage(struct uhmm_mm *mm, void *addr, size_t len)
{
	uintptr_t start = (uintptr_t)addr, end = start + len;
	struct uhmm__areas gone = { 0 };
	int r = uhmm__check_range(start, len);

	if (!mm || r)
		return -EINVAL;
	/*
	 * Unmanaged memory is ordinary memory: everything comes home first,
	 * and migrations under way finish. Checked again under event_lock
	 * (no new migration can isolate a page while it is held).
	 */
	for (;;) {
		bool busy;

		uhmm__mm_bring_home(mm, start, end);
		uhmm__exclusive_revoke_range(mm, start, end);
		uhmm__migrations_settle(mm, start, end);
		uhmm__lock(&mm->event_lock);
		uhmm__lock(&mm->lock);
		busy = off_cpu(mm, start, end);
		if (!busy)
			break;
		uhmm__unlock(&mm->lock);
		uhmm__unlock(&mm->event_lock);
		/* A device that cannot give a page back keeps it managed. */
		uhmm__mm_bring_home(mm, start, end);
		uhmm__lock(&mm->lock);
		busy = off_cpu(mm, start, end);
		uhmm__unlock(&mm->lock);
		if (busy)
			return -EBUSY;
	}
	r = uhmm__areas_cut(&mm->areas, start, end, &gone);
	uhmm__unlock(&mm->lock);
	for (size_t i = 0; i < gone.n; i++)
		if (gone.v[i].registered)
			uhmm__uffd_unregister(mm->uffd, gone.v[i].start,
					      gone.v[i].end - gone.v[i].start);
	uhmm__lock(&mm->lock);
	uhmm__areas_release(&gone);
	uhmm__unlock(&mm->lock);
	uhmm__unlock(&mm->event_lock);
	return r;
}

void uhmm__area_remove(struct uhmm_mm *mm, uintptr_t start, uintptr_t end)
{
	struct uhmm__put_list puts = { 0 };

	uhmm__assert(uhmm__held(&mm->event_lock));
	uhmm__lock(&mm->lock);
	uhmm__ps_discard_range(mm, start, end, &puts);
	/*
	 * -ENOMEM here (the table could not grow for a split) leaves stale
	 * areas over an unmapped range: their pages are ordinary memory now
	 * (discarded above), no fault can come from there, and
	 * uhmm_mm_areas() reports them until the range is unmanaged or the mm
	 * freed.
	 */
	uhmm__areas_cut(&mm->areas, start, end, NULL);
	uhmm__unlock(&mm->lock);
	uhmm__put_list(&puts);
}

/*
 * The mapping holding [start, end): the VMA at @start, extended over the
 * adjacent private anonymous VMAs of the same protection. Registering part
 * of a mapping with the userfaultfd (first use, below) splits its VMA, and
 * the kernel may never merge the pieces again (pieces that took different
 * anon_vmas meanwhile cannot merge), so what the program mapped as one
 * mapping can be several VMAs; uhmm treats it as one, and moves data one
 * VMA at a time (move.c). Return 0 (@vma->end then covers @end), -ENOENT
 * (nothing at @start), -EINVAL (a hole, or pieces that differ), or -errno.
 */
int uhmm__mapping_of(struct uhmm_mm *mm, uintptr_t start, uintptr_t end, struct uhmm__vma *vma)
{
	struct uhmm__vma v;
	int r = uhmm__vma_query(mm->maps_fd, start, false, vma);

	while (!r && vma->end < end) {
		r = uhmm__vma_query(mm->maps_fd, vma->end, false, &v);
		if (r || v.start != vma->end || v.read != vma->read || v.write != vma->write ||
		    v.exec != vma->exec || v.shared || v.file || vma->shared || vma->file ||
		    v.special || vma->special || v.page_size != vma->page_size)
			return r && r != -ENOENT ? r : -EINVAL;
		vma->end = v.end;
	}
	return r;
}

/*
 * Manage the range on first device use. Only the range: anonymous mappings
 * merge with their neighbours (an allocator's own regions among them), and
 * registering a neighbour would route its munmaps through uhmm's events.
 */
int uhmm__manage_first_use(struct uhmm_mm *mm, uintptr_t start, uintptr_t end)
{
	int r;

	if (uhmm_is_managed(mm, (void *)start, end - start))
		return 0;
	uhmm__lock(&mm->event_lock);
	r = uhmm__manage_locked(mm, start, end, 0);
	uhmm__unlock(&mm->event_lock);
	return r == -EEXIST ? 0 : r; /* managed with other flags: selection decides */
}

/* Is [start, end) covered by areas without a gap? Under mm->lock. */
static bool covered(struct uhmm__areas *t, uintptr_t start, uintptr_t end)
{
	uintptr_t cur = start;

	for (size_t i = uhmm__area_lower(t, start); i < t->n && cur < end; i++) {
		if (t->v[i].start > cur)
			return false;
		cur = t->v[i].end;
	}
	return cur >= end;
}

UHMM__EXPORT bool uhmm_is_managed(struct uhmm_mm *mm, const void *addr, size_t len)
{
	uintptr_t start = (uintptr_t)addr;
	bool r;

	if (!mm || uhmm__check_range(start, len))
		return false;
	uhmm__mm_event_barrier(mm);
	uhmm__lock(&mm->lock);
	r = covered(&mm->areas, start, start + len);
	uhmm__unlock(&mm->lock);
	return r;
}

UHMM__EXPORT void *uhmm_alloc(struct uhmm_mm *mm, size_t len, unsigned int flags)
{
	void *p;
	int r;

	if (!mm || !len || len > SIZE_MAX - UHMM__PAGE_SIZE || (flags & ~UHMM_ALLOC_SHARED)) {
		errno = EINVAL;
		return NULL;
	}
	len = (len + UHMM__PAGE_SIZE - 1) & ~(UHMM__PAGE_SIZE - 1);
	r = uhmm__inject_fail() ? -ENOMEM
				: uhmm__sys_mmap(&p, NULL, len, PROT_READ | PROT_WRITE,
						 MAP_ANONYMOUS | ((flags & UHMM_ALLOC_SHARED)
									  ? MAP_SHARED
									  : MAP_PRIVATE),
						 -1, 0);
	if (r) {
		errno = -r;
		return NULL;
	}
	uhmm__lock(&mm->event_lock);
	r = uhmm__manage_locked(mm, (uintptr_t)p, (uintptr_t)p + len, UHMM__AREA_ALLOC);
	uhmm__unlock(&mm->event_lock);
	if (r) {
		uhmm__sys_munmap(p, len);
		errno = -r;
		return NULL;
	}
	return p;
}

/* Is [start, end) exactly one allocation of uhmm_alloc(), whole? */
static bool is_allocation(struct uhmm_mm *mm, uintptr_t start, uintptr_t end)
{
	struct uhmm__area *a;
	bool r;

	uhmm__mm_event_barrier(mm);
	uhmm__lock(&mm->lock);
	a = uhmm__area_find(&mm->areas, start);
	r = a && (a->flags & UHMM__AREA_ALLOC) && a->start == start && a->end == end &&
	    a->blk_off == 0 && a->blk->npages == (end - start) >> UHMM__PAGE_SHIFT;
	uhmm__unlock(&mm->lock);
	return r;
}

UHMM__EXPORT int uhmm_free(struct uhmm_mm *mm, void *ptr, size_t len)
{
	int r;

	if (!ptr)
		return 0;
	if (!mm || !len)
		return -EINVAL;
	len = (len + UHMM__PAGE_SIZE - 1) & ~(UHMM__PAGE_SIZE - 1);
	if (!uhmm__aligned((uintptr_t)ptr) || (uintptr_t)ptr + len < (uintptr_t)ptr ||
	    !is_allocation(mm, (uintptr_t)ptr, (uintptr_t)ptr + len))
		return -EINVAL;
	r = uhmm_unmanage(mm, ptr, len);
	if (r)
		return r;
	return uhmm__sys_munmap(ptr, len);
}

UHMM__EXPORT size_t uhmm_mm_areas(struct uhmm_mm *mm, struct uhmm_area_info *out, size_t max)
{
	size_t n;

	if (!mm)
		return 0;
	uhmm__mm_event_barrier(mm);
	uhmm__lock(&mm->lock);
	n = mm->areas.n;
	for (size_t i = 0; i < n && i < max; i++) {
		const struct uhmm__area *a = &mm->areas.v[i];

		out[i] = (struct uhmm_area_info){
			.start = a->start,
			.end = a->end,
			.flags = a->flags & UHMM_MANAGE_MIRROR_ONLY,
			.kind = a->kind,
			.registered = a->registered,
		};
	}
	uhmm__unlock(&mm->lock);
	return n;
}
