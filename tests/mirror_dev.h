/* SPDX-License-Identifier: MIT */
/*
 * mirror_dev.h - the smallest device that mirrors a range correctly: a page
 * table of entries kept by the retry protocol (Documentation/mm/hmm.rst),
 * exactly as a driver writes it. Used by the mirror tests and copied by
 * examples/mirror.c.
 */
#ifndef UHMM_TEST_MIRROR_DEV_H
#define UHMM_TEST_MIRROR_DEV_H

#include <errno.h>
#include <pthread.h>
#include <stddef.h>
#include <stdlib.h>

#include "uhmm.h"

struct mdev {
	struct uhmm_interval_notifier notifier;
	pthread_mutex_t lock;	/* the "device lock": table and read_retry */
	uintptr_t start, end;
	unsigned long *table;	/* committed entries, one per page */
	unsigned long *scratch;	/* uhmm_range_fault output before commit */
	unsigned long invalidations;
	void (*on_invalidate)(struct mdev *d, const struct uhmm_notifier_range *r);
};

static bool mdev_invalidate(struct uhmm_interval_notifier *n, const struct uhmm_notifier_range *r,
			    unsigned long cur_seq)
{
	struct mdev *d = (struct mdev *)((char *)n - offsetof(struct mdev, notifier));
	uintptr_t s = r->start > d->start ? r->start : d->start;
	uintptr_t e = r->end < d->end ? r->end : d->end;

	pthread_mutex_lock(&d->lock);
	uhmm_interval_set_seq(n, cur_seq);
	for (uintptr_t a = s; a < e; a += 4096)
		d->table[(a - d->start) / 4096] = 0;
	d->invalidations++;
	if (d->on_invalidate)
		d->on_invalidate(d, r);
	pthread_mutex_unlock(&d->lock);
	return true;
}

static const struct uhmm_interval_notifier_ops mdev_ops = { .invalidate = mdev_invalidate };

/* For tests that only need a notifier to pass to uhmm_range_fault. */
static bool mdev_dummy_invalidate(struct uhmm_interval_notifier *n,
				  const struct uhmm_notifier_range *r, unsigned long cur_seq)
{
	(void)r;
	uhmm_interval_set_seq(n, cur_seq);
	return true;
}

static const struct uhmm_interval_notifier_ops mdev_ops_dummy = {
	.invalidate = mdev_dummy_invalidate,
};

static inline int mdev_init(struct mdev *d, struct uhmm_mm *mm, void *start, size_t len)
{
	d->start = (uintptr_t)start;
	d->end = d->start + len;
	d->table = calloc(len / 4096, sizeof(unsigned long));
	d->scratch = calloc(len / 4096, sizeof(unsigned long));
	d->invalidations = 0;
	d->on_invalidate = NULL;
	pthread_mutex_init(&d->lock, NULL);
	if (!d->table || !d->scratch)
		return -ENOMEM;
	return uhmm_interval_notifier_insert(&d->notifier, mm, d->start, len, &mdev_ops);
}

static inline void mdev_fini(struct mdev *d)
{
	uhmm_interval_notifier_remove(&d->notifier);
	free(d->table);
	free(d->scratch);
	pthread_mutex_destroy(&d->lock);
}

/*
 * Mirror [s, e) with @flags requested (0: snapshot): begin, fault, lock,
 * retry check, commit. Returns 0 once committed, or the -errno of
 * uhmm_range_fault other than -EBUSY (which is retried).
 */
static inline int mdev_mirror(struct mdev *d, uintptr_t s, uintptr_t e, unsigned long flags)
{
	size_t i0 = (s - d->start) / 4096, n = (e - s) / 4096;
	struct uhmm_range range = {
		.notifier = &d->notifier,
		.start = s,
		.end = e,
		.hmm_pfns = d->scratch + i0,
		.default_flags = flags,
	};

	for (;;) {
		int r;

		range.notifier_seq = uhmm_interval_read_begin(&d->notifier);
		r = uhmm_range_fault(&range);
		if (r == -EBUSY)
			continue;
		if (r)
			return r;
		pthread_mutex_lock(&d->lock);
		if (uhmm_interval_read_retry(&d->notifier, range.notifier_seq)) {
			pthread_mutex_unlock(&d->lock);
			continue;
		}
		for (size_t i = 0; i < n; i++)
			d->table[i0 + i] = d->scratch[i0 + i] & UHMM_PFN_VALID ? d->scratch[i0 + i] : 0;
		pthread_mutex_unlock(&d->lock);
		return 0;
	}
}

#endif
