/* SPDX-License-Identifier: MIT */
/*
 * libuhmm-chaos.so - an unmodified program's heap in memory uhmm manages,
 * migrating to the reference device underneath it (`uhmm chaos`,
 * docs/CHAOS.md).
 *
 * Loaded with LD_PRELOAD after libuhmm.so.0 (which must come first so that
 * its interposed memory calls are the program's), it:
 *  - replaces malloc and its family with an allocator over a large
 *    anonymous region managed by a uhmm_mm of its own;
 *  - runs a thread that keeps migrating random runs of the part of that
 *    region in use to a reference device and back, so that the program's
 *    heap is on the device, in transit or home at any moment.
 * A program whose output is then byte-identical to its output without it
 * has seen no data lost, no stale byte and no hang.
 *
 * Who gets managed memory: allocations made on the program's behalf (its
 * own code, libc's, its other libraries'). Allocations made by libuhmm
 * itself, by the dynamic linker (thread control blocks) and by this file
 * come from a second region that uhmm does not manage: uhmm's own state
 * must never live in memory that can fault into uhmm. The caller is told
 * by the return address. Each region has its own lock, so that a fault on
 * a managed page taken while the managed allocator's lock is held (its free
 * lists live in the freed blocks) is resolved without that lock.
 *
 * Allocator: power-of-two size classes from 32 bytes, a 16-byte header per
 * block, one free list per class, a bump pointer for fresh memory. Simple,
 * and no better than needed: memory overhead up to 2x.
 *
 * Settings (environment): UHMM_CHAOS_DEVICE_MIB (64), UHMM_CHAOS_INTERVAL_US
 * (200: the pause between migrations), UHMM_CHAOS_MAX_PAGES (256: longest
 * run migrated), UHMM_CHAOS_SEED (1), UHMM_CHAOS_ARENA_GIB (8),
 * UHMM_CHAOS_VERBOSE (1: a summary on stderr at exit), and the usual
 * UHMM_FAULT_MODE.
 */
#include <dlfcn.h>
#include <errno.h>
#include <link.h>
#include <malloc.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <time.h>
#include <unistd.h>

#include "uhmm.h"
#include "uhmm/refdev.h"

#define EXPORT __attribute__((visibility("default")))
#define PAGE 4096ul
#define HDR 16ul
#define MIN_SHIFT 5
#define CLASSES 40
#define MAGIC 0x75686d6du   /* a block */
#define ALIGNED 0x616c6967u /* an aligned pointer inside a block */

struct hdr {
	uint32_t magic;
	uint32_t cls;	 /* MAGIC: size class; ALIGNED: unused */
	uint64_t offset; /* ALIGNED: distance back to the block's user pointer */
};

struct arena {
	pthread_mutex_t lock;
	char *base, *bump, *end;
	void *free[CLASSES];
};

static struct arena managed = { .lock = PTHREAD_MUTEX_INITIALIZER };
static struct arena plain = { .lock = PTHREAD_MUTEX_INITIALIZER };

/* Code whose allocations must not be managed: libuhmm, ld.so, this file. */
#define MAX_RANGES 32
static struct {
	uintptr_t start, end;
} unmanaged_code[MAX_RANGES];
static int nranges;
static atomic_bool ready; /* the managed region exists and the ranges are known */

static struct uhmm_mm *mm;
static pid_t chaos_pid; /* a fork child inherits mm but no migrator: it leaves both */
static struct uhmm_refdev *dev;
static pthread_t migrator;
static atomic_bool stop;
static unsigned long n_to, n_back, pages_to, pages_back; /* the migrator's, read after join */

/* --- the allocator --------------------------------------------------------------- */

static int arena_init(struct arena *a, size_t bytes)
{
	void *p = mmap(NULL, bytes, PROT_READ | PROT_WRITE,
		       MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE, -1, 0);

	if (p == MAP_FAILED)
		return -errno;
	a->base = a->bump = p;
	a->end = (char *)p + bytes;
	return 0;
}

static unsigned int class_of(size_t size)
{
	unsigned int c = 0;

	size += HDR;
	while (((size_t)1 << (c + MIN_SHIFT)) < size)
		c++;
	return c;
}

static void *arena_alloc(struct arena *a, size_t size)
{
	unsigned int c = class_of(size);
	size_t bytes = (size_t)1 << (c + MIN_SHIFT);
	struct hdr *h;

	if (c >= CLASSES) {
		errno = ENOMEM;
		return NULL;
	}
	pthread_mutex_lock(&a->lock);
	if (a->free[c]) {
		h = a->free[c];
		a->free[c] = *(void **)(h + 1); /* the link lives in the block */
	} else if ((size_t)(a->end - a->bump) >= bytes) {
		h = (struct hdr *)a->bump;
		a->bump += bytes;
	} else {
		pthread_mutex_unlock(&a->lock);
		errno = ENOMEM;
		return NULL;
	}
	pthread_mutex_unlock(&a->lock);
	h->magic = MAGIC;
	h->cls = c;
	h->offset = 0;
	return h + 1;
}

static struct arena *arena_of(const void *p)
{
	if ((const char *)p >= managed.base && (const char *)p < managed.end)
		return &managed;
	if ((const char *)p >= plain.base && (const char *)p < plain.end)
		return &plain;
	return NULL;
}

static struct hdr *block_of(void *p)
{
	struct hdr *h = (struct hdr *)p - 1;

	if (h->magic == ALIGNED)
		h = (struct hdr *)((char *)p - h->offset) - 1;
	if (h->magic != MAGIC)
		abort(); /* not ours: a double free or a wild pointer */
	return h;
}

static void arena_free(void *p)
{
	struct arena *a = arena_of(p);
	struct hdr *h;

	if (!a)
		return; /* from the bootstrap buffer, or not ours: leave it */
	h = block_of(p);
	pthread_mutex_lock(&a->lock);
	*(void **)(h + 1) = a->free[h->cls];
	a->free[h->cls] = h;
	pthread_mutex_unlock(&a->lock);
}

static size_t usable(void *p)
{
	struct hdr *h = (struct hdr *)p - 1, *b = block_of(p);

	return ((size_t)1 << (b->cls + MIN_SHIFT)) - HDR - (h->magic == ALIGNED ? h->offset : 0);
}

/* Before the constructor ran (ld.so, libc start-up): a small static pool. */
static char boot[1 << 20] __attribute__((aligned(16)));
static atomic_size_t boot_used;

static void *boot_alloc(size_t size)
{
	unsigned int c = class_of(size);
	size_t n = (size_t)1 << (c + MIN_SHIFT), at = atomic_fetch_add(&boot_used, n);
	struct hdr *h;

	if (c >= CLASSES || at + n > sizeof(boot))
		return NULL;
	h = (struct hdr *)(boot + at);
	h->magic = MAGIC;
	h->cls = c;
	h->offset = 0;
	return h + 1;
}

static bool unmanaged_caller(uintptr_t ret)
{
	for (int i = 0; i < nranges; i++)
		if (ret >= unmanaged_code[i].start && ret < unmanaged_code[i].end)
			return true;
	return false;
}

static void *alloc_for(uintptr_t ret, size_t size)
{
	if (!atomic_load_explicit(&ready, memory_order_acquire))
		return plain.base ? arena_alloc(&plain, size) : boot_alloc(size);
	return arena_alloc(unmanaged_caller(ret) ? &plain : &managed, size);
}

EXPORT void *malloc(size_t size)
{
	return alloc_for((uintptr_t)__builtin_return_address(0), size);
}

EXPORT void free(void *p)
{
	if (p)
		arena_free(p);
}

EXPORT void *calloc(size_t n, size_t size)
{
	void *p;

	if (size && n > SIZE_MAX / size) {
		errno = ENOMEM;
		return NULL;
	}
	p = alloc_for((uintptr_t)__builtin_return_address(0), n * size);
	if (p)
		memset(p, 0, n * size);
	return p;
}

EXPORT void *realloc(void *old, size_t size)
{
	void *p;
	size_t have;

	if (!old)
		return alloc_for((uintptr_t)__builtin_return_address(0), size);
	if (!size) {
		free(old);
		return NULL;
	}
	have = usable(old);
	if (size <= have && arena_of(old))
		return old;
	p = arena_of(old) == &plain ? arena_alloc(&plain, size)
				    : alloc_for((uintptr_t)__builtin_return_address(0), size);
	if (p) {
		memcpy(p, old, have < size ? have : size);
		free(old);
	}
	return p;
}

EXPORT void *reallocarray(void *old, size_t n, size_t size)
{
	if (size && n > SIZE_MAX / size) {
		errno = ENOMEM;
		return NULL;
	}
	return realloc(old, n * size);
}

static void *aligned_for(uintptr_t ret, size_t align, size_t size)
{
	char *raw, *p;
	struct hdr *h;

	if (align <= HDR)
		return alloc_for(ret, size);
	raw = alloc_for(ret, size + align + HDR);
	if (!raw)
		return NULL;
	p = (char *)(((uintptr_t)raw + HDR + align - 1) & ~(uintptr_t)(align - 1));
	h = (struct hdr *)p - 1;
	h->magic = ALIGNED;
	h->offset = (uint64_t)(p - raw);
	return p;
}

EXPORT int posix_memalign(void **out, size_t align, size_t size)
{
	void *p;

	if (!align || (align & (align - 1)) || align % sizeof(void *))
		return EINVAL;
	p = aligned_for((uintptr_t)__builtin_return_address(0), align, size);
	if (!p)
		return ENOMEM;
	*out = p;
	return 0;
}

EXPORT void *memalign(size_t align, size_t size)
{
	return aligned_for((uintptr_t)__builtin_return_address(0), align, size);
}

EXPORT void *aligned_alloc(size_t align, size_t size)
{
	return aligned_for((uintptr_t)__builtin_return_address(0), align, size);
}

EXPORT void *valloc(size_t size)
{
	return aligned_for((uintptr_t)__builtin_return_address(0), PAGE, size);
}

EXPORT void *pvalloc(size_t size)
{
	return aligned_for((uintptr_t)__builtin_return_address(0), PAGE, (size + PAGE - 1) & ~(PAGE - 1));
}

EXPORT size_t malloc_usable_size(void *p)
{
	return p ? usable(p) : 0;
}

/* --- the migrator ------------------------------------------------------------------ */

static unsigned long env_num(const char *name, unsigned long def)
{
	const char *s = getenv(name);

	return s && *s ? strtoul(s, NULL, 0) : def;
}

static uint64_t rnd(uint64_t *s)
{
	*s ^= *s >> 12;
	*s ^= *s << 25;
	*s ^= *s >> 27;
	return *s * 2685821657736338717ull;
}

static void *migrate_loop(void *arg)
{
	unsigned long pause = env_num("UHMM_CHAOS_INTERVAL_US", 200);
	unsigned long max = env_num("UHMM_CHAOS_MAX_PAGES", 256);
	uint64_t seed = env_num("UHMM_CHAOS_SEED", 1) * 0x9e3779b97f4a7c15ull + 1;
	char *view = arena_alloc(&plain, max * PAGE);

	(void)arg;
	while (view && !atomic_load(&stop)) {
		uintptr_t lo = (uintptr_t)managed.base, hi;
		struct uhmm_refdev_cmd c = { .ptr = (uintptr_t)view };
		size_t pages;

		pthread_mutex_lock(&managed.lock);
		hi = ((uintptr_t)managed.bump + PAGE - 1) & ~(PAGE - 1);
		pthread_mutex_unlock(&managed.lock);
		pages = (hi - lo) / PAGE;
		if (pages) {
			size_t first = rnd(&seed) % pages, n = 1 + rnd(&seed) % max;

			c.addr = lo + first * PAGE;
			c.npages = n < pages - first ? n : pages - first;
			/* Any answer goes: a device full or pages taken home meanwhile. */
			if (rnd(&seed) % 3) {
				uhmm_refdev_cmd(dev, UHMM_REFDEV_MIGRATE_TO_DEV, &c);
				n_to++;
				pages_to += c.cpages;
			} else {
				uhmm_refdev_cmd(dev, UHMM_REFDEV_MIGRATE_TO_SYS, &c);
				n_back++;
				pages_back += c.cpages;
			}
		}
		if (pause)
			usleep((useconds_t)pause);
	}
	return NULL;
}

/* --- start and end ------------------------------------------------------------------- */

static int note_code(struct dl_phdr_info *info, size_t size, void *arg)
{
	const char *name = info->dlpi_name ? info->dlpi_name : "";

	(void)size;
	(void)arg;
	if (!strstr(name, "libuhmm") && !strstr(name, "ld-linux") && !strstr(name, "/ld-"))
		return 0;
	for (int i = 0; i < info->dlpi_phnum && nranges < MAX_RANGES; i++) {
		const ElfW(Phdr) *ph = &info->dlpi_phdr[i];

		if (ph->p_type != PT_LOAD || !(ph->p_flags & PF_X))
			continue;
		unmanaged_code[nranges].start = info->dlpi_addr + ph->p_vaddr;
		unmanaged_code[nranges].end = info->dlpi_addr + ph->p_vaddr + ph->p_memsz;
		nranges++;
	}
	return 0;
}

static void die(const char *what, int err)
{
	fprintf(stderr, "uhmm chaos: %s: %s\n", what, uhmm_strerror(err));
	_exit(125);
}

__attribute__((constructor)) static void chaos_start(void)
{
	struct uhmm_refdev_config cfg = {
		.type = UHMM_REFDEV_PRIVATE,
		.memory_bytes = env_num("UHMM_CHAOS_DEVICE_MIB", 64) << 20,
	};
	size_t arena = env_num("UHMM_CHAOS_ARENA_GIB", 8) << 30;
	int r;

	if ((r = arena_init(&plain, 4ul << 30)))
		die("mapping uhmm's own heap", r);
	dl_iterate_phdr(note_code, NULL);
	if ((r = uhmm_mm_new(&mm, NULL)))
		die("uhmm_mm_new", r);
	if ((r = uhmm_refdev_new(&dev, mm, &cfg)))
		die("uhmm_refdev_new", r);
	if ((r = arena_init(&managed, arena)))
		die("mapping the heap", r);
	if ((r = uhmm_manage(mm, managed.base, arena, 0)))
		die("uhmm_manage", r);
	chaos_pid = getpid();
	atomic_store_explicit(&ready, true, memory_order_release);
	if ((r = pthread_create(&migrator, NULL, migrate_loop, NULL)))
		die("starting the migrator", -r);
}

__attribute__((destructor)) static void chaos_end(void)
{
	if (!mm || getpid() != chaos_pid)
		return;
	atomic_store(&stop, true);
	pthread_join(migrator, NULL);
	if (env_num("UHMM_CHAOS_VERBOSE", 0))
		fprintf(stderr,
			"uhmm chaos: %lu migrations to the device (%lu pages), %lu back (%lu pages); "
			"heap %zu KiB\n",
			n_to, pages_to, n_back, pages_back, (size_t)(managed.bump - managed.base) >> 10);
	/* Everything comes home; the heap stays, as ordinary memory. */
	uhmm_refdev_free(dev);
	uhmm_mm_free(mm);
	mm = NULL;
}
