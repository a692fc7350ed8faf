/* SPDX-License-Identifier: MIT */
/*
 * fault.c - the CPU fault service: what the kernel's page-fault path does
 * for a device-private entry, done for managed memory on userfaultfd.
 *
 * Two modes, one semantics (DESIGN.md §3):
 *  - thread: service threads poll() the userfaultfd, read messages, apply
 *    events and resolve faults; the faulting thread sleeps in the kernel and
 *    is woken by the resolving ioctl.
 *  - signal: UFFD_FEATURE_SIGBUS; the faulting thread takes SIGBUS and
 *    resolves its own fault in uhmm's handler; one service thread still
 *    reads the events (munmap, mremap, madvise).
 *
 * Resolution, by the page's word (pstate.h):
 *  - ordinary memory uhmm holds no data for is zero-filled exactly as the
 *    kernel would fill it: a read maps the zero page (UFFDIO_ZEROPAGE), a
 *    write gets a fresh zeroed page (UFFDIO_COPY of a zero page), under
 *    mm->lock so that no migration can isolate the page meanwhile; -EEXIST
 *    means another thread won the race;
 *  - a device page comes home (home.c), an exclusive page is revoked;
 *  - a page a migration owns: the fault waits for its finalize (signal
 *    mode: a futex sleep; thread mode: the fault is left pending and
 *    finalize's UFFDIO_WAKE releases the thread).
 * A fault-back that runs out of memory is retried (the access faults
 * again), never killed; a device that cannot give its page back fails the
 * access with SIGBUS, as the kernel's VM_FAULT_SIGBUS.
 *
 * Reading the uffd: a reader takes mm->event_lock, reads a batch, applies
 * the batch's events in order and only then lets go; faults in the batch
 * are resolved after, unlocked. Any thread that meets -EAGAIN from a uffd
 * operation (an event pending) may read the events itself
 * (uhmm__events_pump), except in a signal handler; faults it reads are
 * woken and fault again.
 */
#include <errno.h>
#include <poll.h>
#include <sched.h>
#include <signal.h>
#include <string.h>
#include <sys/ucontext.h>
#include <unistd.h>

#include "internal.h"

const char uhmm__zero_page[UHMM__PAGE_SIZE] __attribute__((aligned(4096)));

/* A uffd operation failing as if the descriptor were gone is loud (fdguard.c). */
static int checked(struct uhmm_mm *mm, int r)
{
	if (r == -EBADF || r == -ENOTTY)
		uhmm__fd_lost(mm, mm->uffd, -r);
	return r;
}

/* Zero-fill the page at @page the way the kernel's first touch would. Under mm->lock. */
static int fill_zero(struct uhmm_mm *mm, uintptr_t page, bool write, bool in_signal)
{
	int r;

	/*
	 * Counted before the ioctl: the ioctl wakes the faulting thread, and a
	 * counter bumped after it would race with that thread reading stats.
	 */
	atomic_fetch_add_explicit(&mm->stats.faults_zero, 1, memory_order_relaxed);
	if (write)
		r = uhmm__uffd_copy(mm->uffd, page, uhmm__zero_page, UHMM__PAGE_SIZE, 0, NULL);
	else
		r = uhmm__uffd_zeropage(mm->uffd, page, UHMM__PAGE_SIZE, 0, NULL);
	if (r == -EEXIST) {
		/* Resolved by someone else meanwhile; -EEXIST wakes nobody. */
		if (!in_signal)
			uhmm__uffd_wake(mm->uffd, page, UHMM__PAGE_SIZE);
		r = 0;
	}
	if (r)
		atomic_fetch_sub_explicit(&mm->stats.faults_zero, 1, memory_order_relaxed);
	return checked(mm, r);
}

int uhmm__fault_resolve(struct uhmm_mm *mm, uintptr_t addr, bool write, bool in_signal)
{
	uintptr_t page = addr & ~(uintptr_t)(UHMM__PAGE_SIZE - 1);
	int r;

	atomic_fetch_add_explicit(&mm->stats.faults, 1, memory_order_relaxed); /* see fill_zero */
	for (;;) {
		struct uhmm__ps *p;
		struct uhmm__ps v = { 0 };

		uhmm__lock(&mm->lock);
		p = uhmm__ps_lookup(mm, page, NULL);
		if (p)
			v = uhmm__ps_load(p);
		if (uhmm__ps_busy(v)) {
			/* A migration owns it: wait for its finalize. */
			unsigned int seq = atomic_load(&mm->mig_seq);

			uhmm__unlock(&mm->lock);
			if (!in_signal)
				return -EINPROGRESS; /* left pending; finalize wakes it */
			uhmm__migration_wait(mm, seq);
			continue;
		}
		if (uhmm__ps_res(v) != UHMM__RES_CPU) {
			bool device = uhmm__ps_res(v) == UHMM__RES_DEVICE;

			uhmm__unlock(&mm->lock);
			r = device ? uhmm__fault_device(mm, page, uhmm__pfn_slot(uhmm__ps_pfn(v)),
							in_signal)
				   : uhmm__exclusive_revoke(mm, page, in_signal);
			if (r == -EAGAIN)
				continue; /* it changed under us: look again */
			break;
		}
		/*
		 * Ordinary memory. Addresses outside any known area still get
		 * filled when the VMA is registered with our uffd (an mremap that
		 * grew a managed mapping), so that no thread waits forever; the
		 * ioctl says whether the page is ours at all (-ENOENT if not).
		 */
		r = fill_zero(mm, page, write, in_signal);
		uhmm__unlock(&mm->lock);
		break;
	}
	if (r)
		atomic_fetch_sub_explicit(&mm->stats.faults, 1, memory_order_relaxed);
	return r;
}

/* --- reading the userfaultfd --------------------------------------------------- */

#define MSG_BATCH 16

/* A message only a userfaultfd writes: anything else means the fd is not ours. */
static bool msg_ok(const struct uffd_msg *m)
{
	switch (m->event) {
	case UFFD_EVENT_PAGEFAULT:
	case UFFD_EVENT_UNMAP:
	case UFFD_EVENT_REMOVE:
	case UFFD_EVENT_REMAP:
	case UFFD_EVENT_FORK:
		return true;
	default:
		return false;
	}
}

/*
 * Read one batch (non-blocking) and apply its events; event_lock held.
 * Return the number of messages, or -errno (-EAGAIN: none).
 */
static int read_locked(struct uhmm_mm *mm, struct uffd_msg *msgs)
{
	ssize_t got = uhmm__sys_read(mm->uffd, msgs, sizeof(*msgs) * MSG_BATCH);
	int n;

	if (got == -EBADF || got == -EINVAL)
		uhmm__fd_lost(mm, mm->uffd, (int)-got);
	if (got < 0)
		return (int)got;
	if (got % (ssize_t)sizeof(*msgs))
		uhmm__fd_lost(mm, mm->uffd, EBADF); /* a file that is not a userfaultfd */
	n = (int)(got / (ssize_t)sizeof(*msgs));
	for (int i = 0; i < n; i++) {
		if (!msg_ok(&msgs[i]))
			uhmm__fd_lost(mm, mm->uffd, EBADF);
		if (msgs[i].event != UFFD_EVENT_PAGEFAULT)
			uhmm__event_apply(mm, &msgs[i]);
	}
	return n;
}

static void wake_faults(struct uhmm_mm *mm, const struct uffd_msg *msgs, int n)
{
	for (int i = 0; i < n; i++)
		if (msgs[i].event == UFFD_EVENT_PAGEFAULT)
			uhmm__uffd_wake(mm->uffd,
					msgs[i].arg.pagefault.address & ~(uintptr_t)(UHMM__PAGE_SIZE - 1),
					UHMM__PAGE_SIZE);
}

void uhmm__events_pump(struct uhmm_mm *mm, bool locked, bool in_signal)
{
	struct uffd_msg msgs[MSG_BATCH];
	int n;

	if (in_signal) {
		/* Never read in a signal handler: let the service thread do it. */
		if (locked)
			uhmm__unlock(&mm->event_lock);
		sched_yield();
		if (locked)
			uhmm__lock(&mm->event_lock);
		return;
	}
	if (!locked && !uhmm__trylock(&mm->event_lock)) {
		sched_yield(); /* someone is reading them */
		return;
	}
	n = read_locked(mm, msgs);
	if (!locked)
		uhmm__unlock(&mm->event_lock);
	if (n > 0)
		wake_faults(mm, msgs, n); /* they fault again and are served then */
	else
		sched_yield(); /* the event is announced but not queued yet */
}

/* --- thread mode ------------------------------------------------------------------ */

static void serve_faults(struct uhmm_mm *mm, const struct uffd_msg *msgs, int n)
{
	for (int i = 0; i < n; i++) {
		const struct uffd_msg *m = &msgs[i];
		uintptr_t addr;
		int r;

		if (m->event != UFFD_EVENT_PAGEFAULT)
			continue;
		addr = (uintptr_t)m->arg.pagefault.address;
		r = uhmm__fault_resolve(mm, addr, m->arg.pagefault.flags & UFFD_PAGEFAULT_FLAG_WRITE,
					false);
		if (r == 0 || r == -EINPROGRESS)
			continue; /* resolved (the ioctl woke it), or finalize will */
		/*
		 * Not resolved here (the range went away under us, memory ran
		 * out, the mm is changing): wake the thread so that it retries
		 * its access and meets whatever the address holds now. If a
		 * device could not give its page back, the access fails as the
		 * kernel's would (VM_FAULT_SIGBUS): the thread gets SIGBUS.
		 */
		if (r == -EIO && (mm->caps.uffd_features & UFFD_FEATURE_THREAD_ID))
			uhmm__sys_tgkill(getpid(), (pid_t)m->arg.pagefault.feat.ptid, SIGBUS);
		uhmm__uffd_wake(mm->uffd, addr & ~(uintptr_t)(UHMM__PAGE_SIZE - 1), UHMM__PAGE_SIZE);
	}
}

static void *service_main(void *arg)
{
	struct uhmm_mm *mm = arg;
	struct uffd_msg msgs[MSG_BATCH];
	struct pollfd pfd[3] = {
		{ .fd = mm->uffd, .events = POLLIN },
		{ .fd = mm->stop_fd, .events = POLLIN },
		{ .fd = mm->uffd_anchor, .events = POLLIN },
	};

	for (;;) {
		int n;

		n = uhmm__sys_poll(pfd, 3, -1);
		if (n == -EINTR)
			continue;
		if (n < 0)
			break; /* cannot happen with valid fds; never spin */
		if (pfd[1].revents)
			break;
		if ((pfd[0].revents | pfd[2].revents) & POLLNVAL)
			uhmm__fd_lost(mm, pfd[0].revents & POLLNVAL ? mm->uffd : mm->uffd_anchor,
				      EBADF);
		if (pfd[0].revents & (POLLERR | POLLHUP))
			break;
		if (!(pfd[0].revents & POLLIN))
			continue;
		uhmm__lock(&mm->event_lock);
		n = read_locked(mm, msgs);
		uhmm__unlock(&mm->event_lock);
		if (n > 0)
			serve_faults(mm, msgs, n);
	}
	return NULL;
}

int uhmm__service_start(struct uhmm_mm *mm, unsigned int nthreads)
{
	sigset_t all, old;
	int r = 0;

	/* Service threads take no signals: they belong to the program. */
	sigfillset(&all);
	pthread_sigmask(SIG_SETMASK, &all, &old);
	for (mm->nthreads = 0; mm->nthreads < nthreads; mm->nthreads++) {
		r = uhmm__inject_fail() ? EAGAIN
					: pthread_create(&mm->threads[mm->nthreads], NULL,
							 service_main, mm);
		if (r) {
			r = -r;
			break;
		}
	}
	pthread_sigmask(SIG_SETMASK, &old, NULL);
	if (r)
		uhmm__service_stop(mm);
	return r;
}

void uhmm__service_stop(struct uhmm_mm *mm)
{
	uint64_t one = 1;

	if (!mm->nthreads)
		return;
	/* The eventfd stays readable: every thread sees it and exits. */
	if (uhmm__sys_write(mm->stop_fd, &one, sizeof(one)) != sizeof(one))
		return; /* cannot fail on a fresh eventfd; never join a live loop */
	for (unsigned int i = 0; i < mm->nthreads; i++)
		pthread_join(mm->threads[i], NULL);
	mm->nthreads = 0;
}

/* --- signal mode ------------------------------------------------------------------ */

static struct sigaction old_sigbus;
static pthread_mutex_t sigbus_lock = PTHREAD_MUTEX_INITIALIZER;
static bool sigbus_installed;

static bool fault_is_write(void *ucontext)
{
#if defined(__x86_64__)
	const ucontext_t *uc = ucontext;

	return uc && (uc->uc_mcontext.gregs[REG_ERR] & 0x2); /* X86_PF_WRITE */
#else
	(void)ucontext;
	return false; /* read fill; a write then takes the kernel's COW fault */
#endif
}

UHMM__EXPORT bool uhmm_sigbus_handled(int sig, void *siginfo, void *ucontext)
{
	const siginfo_t *si = siginfo;
	bool handled = false;
	int saved_errno = errno;

	if (sig != SIGBUS || !si || si->si_code != BUS_ADRERR ||
	    !atomic_load_explicit(&uhmm__mm_count, memory_order_relaxed))
		return false;
	uhmm__registry_enter(); /* no mm is freed while we look */
	for (int i = 0; i < UHMM__MAX_MMS && !handled; i++) {
		struct uhmm_mm *mm = uhmm__mm_slot(i);
		int r;

		if (!mm || mm->mode != UHMM_FAULT_SIGNAL || !uhmm__mm_live(mm))
			continue;
		/*
		 * Ours exactly when our uffd can fill it (-ENOENT otherwise).
		 * Transient answers (a mapping change pending, memory short):
		 * return and let the access fault again.
		 */
		r = uhmm__fault_resolve(mm, (uintptr_t)si->si_addr, fault_is_write(ucontext), true);
		handled = r == 0 || r == -EAGAIN || r == -ENOMEM;
	}
	uhmm__registry_exit();
	errno = saved_errno;
	return handled;
}

/* Hand a SIGBUS that is not ours to whoever had it before uhmm. */
static void sigbus_chain(int sig, siginfo_t *si, void *uc)
{
	const struct sigaction *o = &old_sigbus;

	if (o->sa_flags & SA_SIGINFO) {
		o->sa_sigaction(sig, si, uc);
		return;
	}
	if (o->sa_handler != SIG_DFL && o->sa_handler != SIG_IGN) {
		o->sa_handler(sig);
		return;
	}
	/*
	 * Default action (SIG_IGN cannot stop a synchronous SIGBUS either):
	 * restore it; a fault re-executes the access and dies of it, a sent
	 * signal is raised again and delivered on return.
	 */
	signal(SIGBUS, SIG_DFL);
	if (si->si_code <= 0)
		raise(SIGBUS);
}

static void sigbus_handler(int sig, siginfo_t *si, void *uc)
{
	if (!uhmm_sigbus_handled(sig, si, uc))
		sigbus_chain(sig, si, uc);
}

int uhmm__sigbus_install(void)
{
	struct sigaction sa;
	int r = 0;

	pthread_mutex_lock(&sigbus_lock);
	if (!sigbus_installed) {
		memset(&sa, 0, sizeof(sa));
		sa.sa_sigaction = sigbus_handler;
		sa.sa_flags = SA_SIGINFO | SA_RESTART;
		sigemptyset(&sa.sa_mask);
		if (sigaction(SIGBUS, &sa, &old_sigbus))
			r = -errno;
		else
			sigbus_installed = true;
	}
	pthread_mutex_unlock(&sigbus_lock);
	return r;
}
