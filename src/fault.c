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
 * Resolution: a page uhmm holds no data for is zero-filled exactly as the
 * kernel would fill it: a read maps the zero page (UFFDIO_ZEROPAGE), a write
 * gets a fresh zeroed page (UFFDIO_COPY from a static zero page). -EEXIST
 * means another thread won the race: the page is there, done.
 *
 * Reading the uffd: a service thread takes mm->event_lock, reads a batch,
 * applies the batch's events in order and only then lets go; faults in the
 * batch are resolved after, unlocked. So events are applied in the order
 * the kernel queued them even with several service threads, and whoever
 * takes event_lock afterwards sees every event read before (internal.h).
 */
#include <errno.h>
#include <poll.h>
#include <sched.h>
#include <signal.h>
#include <string.h>
#include <sys/syscall.h>
#include <sys/ucontext.h>
#include <unistd.h>

#include "internal.h"

const char uhmm__zero_page[UHMM__PAGE_SIZE] __attribute__((aligned(4096)));

/* Zero-fill the page at @addr the way the kernel's first touch would. */
static int fill_zero(struct uhmm_mm *mm, uintptr_t page, bool write)
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
	if (r == -EEXIST)
		r = 0; /* resolved by someone else meanwhile */
	if (r)
		atomic_fetch_sub_explicit(&mm->stats.faults_zero, 1, memory_order_relaxed);
	return r;
}

int uhmm__fault_resolve(struct uhmm_mm *mm, uintptr_t addr, bool write, bool in_signal)
{
	uintptr_t page = addr & ~(UHMM__PAGE_SIZE - 1);

	atomic_fetch_add_explicit(&mm->stats.faults, 1, memory_order_relaxed); /* see fill_zero */
	for (;;) {
		struct uhmm__area *a;
		uint64_t ps = 0;
		int r;

		pthread_mutex_lock(&mm->lock);
		a = uhmm__area_find(&mm->areas, page);
		if (a)
			ps = *uhmm__area_ps(a, page);
		if (ps & UHMM__PS_MIGRATING) {
			/* Isolated by a migration: wait for its finalize. */
			unsigned int seq = atomic_load(&mm->mig_seq);

			pthread_mutex_unlock(&mm->lock);
			if (!in_signal)
				return -EINPROGRESS; /* left pending; finalize wakes it */
			uhmm__migration_wait(mm, seq);
			continue;
		}
		if ((ps & UHMM__PS_RES_MASK) == UHMM__PS_RES_DEVICE) {
			/* A device holds the page: bring it home (migrate_to_ram). */
			pthread_mutex_unlock(&mm->lock);
			r = uhmm__fault_device(mm, page, uhmm__ps_slot(ps));
			if (r == -EAGAIN) {
				if (!in_signal)
					return -EINPROGRESS;
				continue;
			}
			if (r) {
				atomic_fetch_sub_explicit(&mm->stats.faults, 1, memory_order_relaxed);
				return -EIO; /* the device could not give it back */
			}
			return 0;
		}
		if (ps & UHMM__PS_EXCLUSIVE) {
			pthread_mutex_unlock(&mm->lock);
			r = uhmm__exclusive_revoke(mm, page);
			if (r)
				atomic_fetch_sub_explicit(&mm->stats.faults, 1, memory_order_relaxed);
			return r;
		}
		/*
		 * Ordinary memory: zero-fill, under mm->lock so that a migration
		 * cannot isolate the page between our look and the fill. Addresses
		 * outside any known area still get filled when the VMA is
		 * registered with our uffd (an mremap that grew a managed
		 * mapping), so that no thread waits forever; the ioctl says
		 * whether the page is ours at all (-ENOENT when it is not).
		 */
		r = fill_zero(mm, page, write);
		pthread_mutex_unlock(&mm->lock);
		if (r)
			atomic_fetch_sub_explicit(&mm->stats.faults, 1, memory_order_relaxed);
		return r;
	}
}

/* --- thread mode ------------------------------------------------------- */

/* Set on uhmm's service threads: they are the readers of the userfaultfd. */
static _Thread_local bool on_service_thread;

/*
 * The kernel answers -EAGAIN to UFFDIO_MOVE/COPY while an event (munmap,
 * madvise, mremap of registered memory) has not been read. A service thread
 * must not wait for that: it is the reader. It reads what is queued itself,
 * applies the events in order, and wakes the threads whose faults it read
 * (they fault again and are served later). Anyone else just yields to it.
 */
void uhmm__eagain_wait(struct uhmm_mm *mm)
{
	struct uffd_msg msgs[16];
	ssize_t got;

	if (!on_service_thread || pthread_mutex_trylock(&mm->event_lock)) {
		sched_yield();
		return;
	}
	got = read(mm->uffd, msgs, sizeof(msgs));
	for (ssize_t i = 0; got > 0 && i < got / (ssize_t)sizeof(msgs[0]); i++) {
		if (msgs[i].event != UFFD_EVENT_PAGEFAULT)
			uhmm__event_apply(mm, &msgs[i]);
	}
	pthread_mutex_unlock(&mm->event_lock);
	for (ssize_t i = 0; got > 0 && i < got / (ssize_t)sizeof(msgs[0]); i++)
		if (msgs[i].event == UFFD_EVENT_PAGEFAULT)
			uhmm__uffd_wake(mm->uffd, msgs[i].arg.pagefault.address &
						  ~(uintptr_t)(UHMM__PAGE_SIZE - 1),
					UHMM__PAGE_SIZE);
	if (got <= 0)
		sched_yield();
}

#define MSG_BATCH 16

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
		if (r == -EINPROGRESS)
			continue; /* a migration holds the page; its finalize wakes the thread */
		/*
		 * Could not resolve (the range went away under us, a fill
		 * raced a remap): wake the thread so it retries its access
		 * and meets whatever the address holds now. If a device could
		 * not give its page back, the access fails as the kernel's
		 * would (VM_FAULT_SIGBUS): the thread gets SIGBUS.
		 */
		if (r) {
			if (r == -EIO && (mm->caps.uffd_features & UFFD_FEATURE_THREAD_ID))
				syscall(SYS_tgkill, getpid(), m->arg.pagefault.feat.ptid, SIGBUS);
			uhmm__uffd_wake(mm->uffd, addr & ~(UHMM__PAGE_SIZE - 1), UHMM__PAGE_SIZE);
		}
	}
}

/* Read one batch; apply events under event_lock. Return messages or -errno. */
static int read_batch(struct uhmm_mm *mm, struct uffd_msg *msgs)
{
	ssize_t got;
	int n;

	pthread_mutex_lock(&mm->event_lock);
	got = read(mm->uffd, msgs, sizeof(*msgs) * MSG_BATCH);
	if (got < 0) {
		n = -errno;
		pthread_mutex_unlock(&mm->event_lock);
		return n;
	}
	n = (int)(got / (ssize_t)sizeof(*msgs));
	for (int i = 0; i < n; i++)
		if (msgs[i].event != UFFD_EVENT_PAGEFAULT)
			uhmm__event_apply(mm, &msgs[i]);
	pthread_mutex_unlock(&mm->event_lock);
	return n;
}

static void *service_main(void *arg)
{
	struct uhmm_mm *mm = arg;
	struct uffd_msg msgs[MSG_BATCH];

	on_service_thread = true;
	struct pollfd pfd[2] = {
		{ .fd = mm->uffd, .events = POLLIN },
		{ .fd = mm->stop_fd, .events = POLLIN },
	};

	for (;;) {
		int n;

		if (poll(pfd, 2, -1) < 0) {
			if (errno == EINTR)
				continue;
			break; /* cannot happen with valid fds; never spin */
		}
		if (pfd[1].revents)
			break;
		if (pfd[0].revents & (POLLERR | POLLHUP | POLLNVAL))
			break;
		n = read_batch(mm, msgs);
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
	if (write(mm->stop_fd, &one, sizeof(one)) != sizeof(one))
		return; /* cannot fail on a fresh eventfd; never join a live loop */
	for (unsigned int i = 0; i < mm->nthreads; i++)
		pthread_join(mm->threads[i], NULL);
	mm->nthreads = 0;
}

/* --- signal mode ---------------------------------------------------------- */

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
	/* Pairs with registry_del(): no mm is freed while we look. */
	atomic_fetch_add_explicit(&uhmm__sig_inflight, 1, memory_order_acq_rel);
	for (int i = 0; i < UHMM__MAX_MMS && !handled; i++) {
		struct uhmm_mm *mm = uhmm__mm_slot(i);

		if (!mm || mm->mode != UHMM_FAULT_SIGNAL || !uhmm__mm_live(mm))
			continue;
		/*
		 * Ours exactly when our uffd can fill it (-ENOENT otherwise).
		 * -EAGAIN: the kernel has a mapping change pending (an event not
		 * yet read): return and let the access fault again.
		 */
		int r = uhmm__fault_resolve(mm, (uintptr_t)si->si_addr, fault_is_write(ucontext), true);

		handled = r == 0 || r == -EAGAIN;
	}
	atomic_fetch_sub_explicit(&uhmm__sig_inflight, 1, memory_order_acq_rel);
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
