/* SPDX-License-Identifier: MIT */
/*
 * notifier.c - interval notifiers: uhmm's mmu_interval_notifier.
 *
 * A device registers the intervals it mirrors; before (or, for changes uhmm
 * learns of only afterwards, right after) a range changes, every notifier
 * overlapping it is called, and the sequence protocol lets the device
 * discard any view it built concurrently (Documentation/mm/hmm.rst):
 *
 *   seq = read_begin(n)          waits while an invalidation covers n
 *   ... uhmm_range_fault() ...   unlocked, may be long
 *   lock(dev)
 *   if read_retry(n, seq): unlock, start again
 *   commit the device page table
 *   unlock(dev)
 *
 * and invalidate(n, range, cur_seq) does lock(dev); set_seq(n, cur_seq);
 * clear the device's entries; unlock(dev).
 *
 * The mm-wide invalidate_seq is even when idle and odd while at least one
 * invalidation is active (between invalidate_begin and invalidate_end);
 * set_seq stores that odd value in the notifier, so read_retry sees a change
 * and read_begin waits until the mm's seq moves on.
 *
 * Lookup is an interval treap keyed by (start, address of the notifier),
 * each node holding the largest `last` of its subtree: an overlap query
 * visits O(log n + k) nodes, so thousands of notifiers cost a fault nothing.
 *
 * Locks: tree_lock (rwlock, writer-preferring) guards the treap; readers are
 * invalidations walking it (callbacks run under it), writers are insert and
 * remove, which therefore wait for running callbacks. seq_lock + seq_cond
 * guard invalidate_seq and active.
 */
#include <errno.h>
#include <stdlib.h>

#include "internal.h"

static const char *const event_names[] = {
	[UHMM_NOTIFY_UNMAP] = "UNMAP",
	[UHMM_NOTIFY_CLEAR] = "CLEAR",
	[UHMM_NOTIFY_PROTECTION_VMA] = "PROTECTION_VMA",
	[UHMM_NOTIFY_MIGRATE] = "MIGRATE",
	[UHMM_NOTIFY_EXCLUSIVE] = "EXCLUSIVE",
	[UHMM_NOTIFY_RELEASE] = "RELEASE",
	[UHMM_NOTIFY_REMAP] = "REMAP",
};

UHMM__EXPORT const char *uhmm_notify_event_name(enum uhmm_notify_event e)
{
	if ((unsigned int)e < sizeof(event_names) / sizeof(event_names[0]))
		return event_names[e];
	return "?";
}

void uhmm__notifiers_init(struct uhmm__notifiers *ns)
{
	pthread_rwlockattr_t attr;

	pthread_rwlockattr_init(&attr);
	pthread_rwlockattr_setkind_np(&attr, PTHREAD_RWLOCK_PREFER_WRITER_NONRECURSIVE_NP);
	pthread_rwlock_init(&ns->tree_lock, &attr);
	pthread_rwlockattr_destroy(&attr);
	pthread_mutex_init(&ns->seq_lock, NULL);
	pthread_cond_init(&ns->seq_cond, NULL);
	ns->invalidate_seq = 2;
	ns->active = 0;
	ns->root = NULL;
	ns->rng = 0x2545f4914f6cdd1dull;
}

void uhmm__notifiers_fini(struct uhmm__notifiers *ns)
{
	pthread_rwlock_destroy(&ns->tree_lock);
	pthread_mutex_destroy(&ns->seq_lock);
	pthread_cond_destroy(&ns->seq_cond);
}

/* --- the treap ------------------------------------------------------------ */

typedef struct uhmm_interval_notifier node_t;

static uintptr_t max3(uintptr_t a, uintptr_t b, uintptr_t c)
{
	uintptr_t m = a > b ? a : b;

	return m > c ? m : c;
}

static void update(node_t *n)
{
	n->_max_last = max3(n->_last, n->_left ? n->_left->_max_last : 0,
			    n->_right ? n->_right->_max_last : 0);
}

static bool less(const node_t *a, const node_t *b)
{
	return a->_start < b->_start || (a->_start == b->_start && (uintptr_t)a < (uintptr_t)b);
}

static node_t *rotate_right(node_t *n)
{
	node_t *l = n->_left;

	n->_left = l->_right;
	l->_right = n;
	update(n);
	update(l);
	return l;
}

static node_t *rotate_left(node_t *n)
{
	node_t *r = n->_right;

	n->_right = r->_left;
	r->_left = n;
	update(n);
	update(r);
	return r;
}

static node_t *treap_insert(node_t *root, node_t *n)
{
	if (!root)
		return n;
	if (less(n, root)) {
		root->_left = treap_insert(root->_left, n);
		if (root->_left->_prio > root->_prio)
			root = rotate_right(root);
	} else {
		root->_right = treap_insert(root->_right, n);
		if (root->_right->_prio > root->_prio)
			root = rotate_left(root);
	}
	update(root);
	return root;
}

static node_t *treap_remove(node_t *root, node_t *n)
{
	if (!root)
		return NULL;
	if (root == n) {
		if (!root->_left)
			return root->_right;
		if (!root->_right)
			return root->_left;
		if (root->_left->_prio > root->_right->_prio) {
			root = rotate_right(root);
			root->_right = treap_remove(root->_right, n);
		} else {
			root = rotate_left(root);
			root->_left = treap_remove(root->_left, n);
		}
	} else if (less(n, root)) {
		root->_left = treap_remove(root->_left, n);
	} else {
		root->_right = treap_remove(root->_right, n);
	}
	update(root);
	return root;
}

/* Call @fn on every node overlapping [s, l] (inclusive), in address order. */
static void treap_overlaps(node_t *root, uintptr_t s, uintptr_t l,
			   void (*fn)(node_t *, void *), void *arg)
{
	while (root && root->_max_last >= s) {
		treap_overlaps(root->_left, s, l, fn, arg);
		if (root->_start > l)
			return;
		if (root->_last >= s)
			fn(root, arg);
		root = root->_right;
	}
}

/* Is @n in the treap rooted at @root? (keyed by start, then address) */
static bool treap_has(const node_t *root, const node_t *n)
{
	while (root && root != n)
		root = less(n, root) ? root->_left : root->_right;
	return root == n;
}

/*
 * Is this thread running invalidate callbacks? Insert and remove take the
 * tree lock for writing, which the running callbacks' invalidation holds
 * for reading; from a callback they would wait for themselves. Set once
 * around the walk, not per callback.
 */
static _Thread_local bool in_callback;

/* --- the API -------------------------------------------------------------- */

UHMM__EXPORT int uhmm_interval_notifier_insert(struct uhmm_interval_notifier *n,
					       struct uhmm_mm *mm, uintptr_t start,
					       size_t length,
					       const struct uhmm_interval_notifier_ops *ops)
{
	struct uhmm__notifiers *ns;

	if (!n || !mm || !ops || !ops->invalidate || !length || start + length - 1 < start)
		return -EINVAL;
	if (in_callback)
		uhmm__misuse("uhmm_interval_notifier_insert() called from an invalidate callback");
	ns = &mm->notifiers;
	if (n->_mm == mm) {
		/* Inserted already? (A fresh struct may hold anything: look it up.) */
		bool dup;

		pthread_rwlock_rdlock(&ns->tree_lock);
		dup = treap_has(ns->root, n);
		pthread_rwlock_unlock(&ns->tree_lock);
		if (dup)
			return -EEXIST;
	}
	n->_left = n->_right = NULL;
	n->_start = start;
	n->_last = start + length - 1;
	n->_max_last = n->_last;
	n->_mm = mm;
	n->_ops = ops;

	pthread_rwlock_wrlock(&ns->tree_lock);
	pthread_mutex_lock(&ns->seq_lock);
	/*
	 * As the kernel does: during an invalidation the new notifier takes
	 * the running (odd) seq, so read_begin waits for it to end (the range
	 * may be half changed); otherwise an odd value the mm's seq is not at.
	 */
	__atomic_store_n(&n->_invalidate_seq,
			 ns->active ? ns->invalidate_seq : ns->invalidate_seq - 1, __ATOMIC_RELAXED);
	ns->rng ^= ns->rng << 13;
	ns->rng ^= ns->rng >> 7;
	ns->rng ^= ns->rng << 17;
	n->_prio = ns->rng;
	pthread_mutex_unlock(&ns->seq_lock);
	ns->root = treap_insert(ns->root, n);
	ns->count++;
	pthread_rwlock_unlock(&ns->tree_lock);
	return 0;
}

UHMM__EXPORT void uhmm_interval_notifier_remove(struct uhmm_interval_notifier *n)
{
	struct uhmm__notifiers *ns;

	if (!n || !n->_mm)
		return; /* never inserted, or its mm was freed (which detached it) */
	if (in_callback)
		uhmm__misuse("uhmm_interval_notifier_remove() called from an invalidate callback "
			     "(it would wait for that callback to return)");
	ns = &n->_mm->notifiers;
	/* The write lock waits for every running callback: none can still see n. */
	pthread_rwlock_wrlock(&ns->tree_lock);
	ns->root = treap_remove(ns->root, n);
	ns->count--;
	n->_mm = NULL;
	pthread_rwlock_unlock(&ns->tree_lock);
}

/* The public struct holds a plain unsigned long: accessed with __atomic. */
static unsigned long load_seq(const struct uhmm_interval_notifier *n, int mo)
{
	return __atomic_load_n(&n->_invalidate_seq, mo);
}

UHMM__EXPORT unsigned long uhmm_interval_read_begin(struct uhmm_interval_notifier *n)
{
	struct uhmm__notifiers *ns;
	unsigned long seq;

	if (!n->_mm)
		return load_seq(n, __ATOMIC_ACQUIRE);
	ns = &n->_mm->notifiers;
	pthread_mutex_lock(&ns->seq_lock);
	seq = load_seq(n, __ATOMIC_RELAXED);
	/* An invalidation covering n is running while its seq is the mm's. */
	while (seq == ns->invalidate_seq) {
		pthread_cond_wait(&ns->seq_cond, &ns->seq_lock);
		seq = load_seq(n, __ATOMIC_RELAXED);
	}
	pthread_mutex_unlock(&ns->seq_lock);
	return seq;
}

UHMM__EXPORT bool uhmm_interval_read_retry(struct uhmm_interval_notifier *n, unsigned long seq)
{
	/* Under the device lock, which set_seq also holds: relaxed suffices. */
	return load_seq(n, __ATOMIC_RELAXED) != seq;
}

UHMM__EXPORT bool uhmm_interval_check_retry(struct uhmm_interval_notifier *n, unsigned long seq)
{
	/* Pairs with the release in set_seq. */
	return load_seq(n, __ATOMIC_ACQUIRE) != seq;
}

UHMM__EXPORT void uhmm_interval_set_seq(struct uhmm_interval_notifier *n, unsigned long cur_seq)
{
	__atomic_store_n(&n->_invalidate_seq, cur_seq, __ATOMIC_RELEASE);
}

/* --- invalidation ------------------------------------------------------- */

struct call_arg {
	const struct uhmm_notifier_range *range;
	unsigned long seq;
	unsigned int called;
};

static void call_one(node_t *n, void *p)
{
	struct call_arg *a = p;
	n->_ops->invalidate(n, a->range, a->seq);
	a->called++;
}

unsigned int uhmm__invalidate_begin(struct uhmm_mm *mm, const struct uhmm_notifier_range *range)
{
	struct uhmm__notifiers *ns = &mm->notifiers;
	struct call_arg a = { .range = range };

	pthread_mutex_lock(&ns->seq_lock);
	if (ns->active++ == 0)
		ns->invalidate_seq++; /* even -> odd: an invalidation is running */
	a.seq = ns->invalidate_seq;
	pthread_mutex_unlock(&ns->seq_lock);

	pthread_rwlock_rdlock(&ns->tree_lock);
	if (range->end > range->start) {
		bool outer = in_callback;

		in_callback = true;
		treap_overlaps(ns->root, range->start, range->end - 1, call_one, &a);
		in_callback = outer;
	}
	pthread_rwlock_unlock(&ns->tree_lock);
	return a.called;
}

void uhmm__invalidate_end(struct uhmm_mm *mm)
{
	struct uhmm__notifiers *ns = &mm->notifiers;

	pthread_mutex_lock(&ns->seq_lock);
	if (--ns->active == 0) {
		ns->invalidate_seq++; /* odd -> even: read_begin may proceed */
		pthread_cond_broadcast(&ns->seq_cond);
	}
	pthread_mutex_unlock(&ns->seq_lock);
}

void uhmm__invalidate(struct uhmm_mm *mm, uintptr_t start, uintptr_t end,
		      enum uhmm_notify_event event, void *owner)
{
	struct uhmm_notifier_range r = { .start = start, .end = end, .event = event, .owner = owner };

	uhmm__invalidate_begin(mm, &r);
	uhmm__invalidate_end(mm);
}

static void detach_one(node_t *n, void *p)
{
	(void)p;
	n->_mm = NULL;
}

static void detach_all(node_t *n)
{
	if (!n)
		return;
	detach_all(n->_left);
	detach_all(n->_right);
	detach_one(n, NULL);
}

void uhmm__notifiers_release(struct uhmm_mm *mm)
{
	struct uhmm__notifiers *ns = &mm->notifiers;

	/* Everyone hears RELEASE over the whole address space, then is detached. */
	uhmm__invalidate(mm, 0, UINTPTR_MAX & ~(UHMM__PAGE_SIZE - 1), UHMM_NOTIFY_RELEASE, NULL);
	pthread_rwlock_wrlock(&ns->tree_lock);
	detach_all(ns->root);
	ns->root = NULL;
	ns->count = 0;
	pthread_rwlock_unlock(&ns->tree_lock);
}

