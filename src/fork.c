/* SPDX-License-Identifier: MIT */
/*
 * fork.c - fork() and uhmm: a child never sees zeros where its parent had
 * data (DESIGN.md, "fork()").
 *
 * Without UFFD_FEATURE_EVENT_FORK (it needs CAP_SYS_PTRACE) the kernel
 * cannot follow device pages into a child: the child's copy of a managed
 * range is plain memory, and a page whose data is on a device, in the
 * exclusive store or in transit reads as zeros there. So before fork() every
 * page comes home, and no page may be in transit at the moment of the fork:
 *
 *   - the fork gate: every migration enters it (uhmm__fork_gate_enter, in
 *     setup) and leaves it (finalize). The prepare handler closes the gate
 *     (bit 31), waits until the migrations in flight have left, then brings
 *     every device and exclusive page home itself. Migrations that start
 *     meanwhile wait at the gate until the parent handler opens it again.
 *     A migration nested in another on the same thread (a fault-back taken
 *     inside a migration) passes, or the fork would wait for itself.
 *   - uhmm's own memory (staging, device storage) is MADV_DONTFORK: the
 *     child does not get it, and the parent's pages stay exclusively its
 *     own, so that UFFDIO_MOVE keeps working on them after the fork (the
 *     kernel refuses to move a page shared copy-on-write).
 *
 * The child inherits no uhmm thread: its copies of the mms are orphans
 * (they serve nothing; uhmm_mm_free() on one only releases what it holds),
 * and it may create its own mm.
 *
 * fork() between uhmm_migrate_setup() and uhmm_migrate_finalize() on the
 * same thread would wait for itself: it is refused loudly (the kernel's
 * equivalent, fork under mmap_read_lock, deadlocks).
 */
#include <errno.h>
#include <unistd.h>

#include "internal.h"

#define GATE_CLOSED 0x80000000u
#define GATE_COUNT 0x7fffffffu
#define GATE_WAIT_NS (50L * 1000 * 1000)

/* Migrations this thread is inside (any mm); while > 0 the gate lets it pass. */
static _Thread_local unsigned int gate_depth;
/* Set while this thread prepares a fork: its own bring-home passes the gate. */
static _Thread_local bool preparing;
/* The prepare handler closed gates: the parent and child handlers undo it. */
static _Thread_local bool prepared;

void uhmm__fork_gate_enter(struct uhmm_mm *mm)
{
	if (gate_depth++ > 0 || preparing) {
		atomic_fetch_add(&mm->fork_gate, 1);
		return;
	}
	for (;;) {
		unsigned int v = atomic_load(&mm->fork_gate);

		if (v & GATE_CLOSED) {
			/* Bounded: a missed wake costs one period, never a hang. */
			uhmm__futex_wait((const unsigned int *)&mm->fork_gate, v, GATE_WAIT_NS);
			continue;
		}
		if (atomic_compare_exchange_weak(&mm->fork_gate, &v, v + 1))
			return;
	}
}

void uhmm__fork_gate_exit(struct uhmm_mm *mm)
{
	unsigned int v;

	uhmm__assert(gate_depth > 0);
	gate_depth--;
	v = atomic_fetch_sub(&mm->fork_gate, 1) - 1;
	uhmm__assert((v & GATE_COUNT) != GATE_COUNT); /* no underflow */
	if (v == GATE_CLOSED)
		uhmm__futex_wake((const unsigned int *)&mm->fork_gate); /* the last one out */
}

static bool ours(struct uhmm_mm *mm)
{
	return mm && uhmm__mm_live(mm) && mm->pid == getpid();
}

static void close_gate(struct uhmm_mm *mm)
{
	unsigned int v = atomic_fetch_or(&mm->fork_gate, GATE_CLOSED) | GATE_CLOSED;

	while (v & GATE_COUNT) {
		uhmm__futex_wait((const unsigned int *)&mm->fork_gate, v, GATE_WAIT_NS);
		v = atomic_load(&mm->fork_gate);
	}
}

static void open_gate(struct uhmm_mm *mm)
{
	atomic_fetch_and(&mm->fork_gate, ~GATE_CLOSED);
	uhmm__futex_wake((const unsigned int *)&mm->fork_gate);
}

static void atfork_prepare(void)
{
	prepared = false;
	if (!atomic_load(&uhmm__mm_count))
		return;
	if (gate_depth)
		uhmm__misuse("fork() between uhmm_migrate_setup() and uhmm_migrate_finalize() "
			     "on the same thread would wait for itself");
	uhmm__registry_enter(); /* left in the parent and child handlers */
	prepared = true;
	for (int i = 0; i < UHMM__MAX_MMS; i++) {
		struct uhmm_mm *mm = uhmm__mm_slot(i);

		if (!ours(mm))
			continue;
		close_gate(mm);
		preparing = true;
		uhmm__mm_bring_home(mm, 0, UHMM__ALL_END);
		uhmm__exclusive_revoke_range(mm, 0, UHMM__ALL_END);
		preparing = false;
	}
}

static void atfork_parent(void)
{
	if (!prepared)
		return;
	prepared = false;
	for (int i = 0; i < UHMM__MAX_MMS; i++) {
		struct uhmm_mm *mm = uhmm__mm_slot(i);

		if (ours(mm))
			open_gate(mm);
	}
	uhmm__registry_exit();
}

static void atfork_child(void)
{
	if (!prepared)
		return;
	prepared = false;
	for (int i = 0; i < UHMM__MAX_MMS; i++) {
		struct uhmm_mm *mm = uhmm__mm_slot(i);

		if (!mm)
			continue;
		atomic_store(&mm->orphan, true);
		/* The parent's threads may have held them at fork time. */
		uhmm__mutex_init(&mm->event_lock);
		uhmm__mutex_init(&mm->lock);
		pthread_mutex_init(&mm->staging_lock, NULL);
		pthread_mutex_init(&mm->excl_lock, NULL);
		pthread_rwlock_init(&mm->notifiers.tree_lock, NULL);
		pthread_mutex_init(&mm->notifiers.seq_lock, NULL);
		pthread_cond_init(&mm->notifiers.seq_cond, NULL);
		mm->notifiers.active = 0; /* the threads that ran them are gone */
		if (mm->notifiers.invalidate_seq & 1)
			mm->notifiers.invalidate_seq++;
		atomic_store(&mm->fork_gate, 0);
		/* Staging and device storage were not inherited (MADV_DONTFORK). */
		for (int k = 0; k < UHMM__STAGING_CACHE; k++)
			mm->staging_cache[k].map = NULL;
	}
	uhmm__registry_exit();
}

void uhmm__fork_setup(void)
{
	pthread_atfork(atfork_prepare, atfork_parent, atfork_child);
}
