/* SPDX-License-Identifier: MIT */
/*
 * ops.c - the differential fuzzer's interpreter (ops.h).
 *
 * The world: three regions of the program's memory (a plain mapping
 * managed on first use, a uhmm_alloc() allocation, a 2 MiB-aligned THP
 * region), the reference device (host storage, 2 MiB: it fills up), a
 * second device with memory of its own that follows the kernel's device
 * contract by hand (allocates, copies through its callbacks, fills dst),
 * and one mirror (an interval notifier with a page table) per region.
 *
 * The shadow: every byte of every region, and per page whether it is
 * mapped and readable or writable. Every read is checked against it: the
 * CPU's, each device's view, a fork child's. Every change of a mapping is
 * checked against the mirror: its entries for the range must have been
 * invalidated.
 */
#include <errno.h>
#include <signal.h>
#include <stdarg.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/wait.h>
#include <unistd.h>

#include "ops.h"
#include "mirror_dev.h"
#include "uhmm.h"
#include "uhmm/device.h"
#include "uhmm/refdev.h"

#define PG 4096ul
#define MAPPED 1
#define R 2
#define W 4
#define DEV2_PAGES 512

static const size_t region_pages[FUZZ_REGIONS] = { 64, 96, 512 };

static const char *const kind_names[OP_COUNT] = {
	"cpu_write", "cpu_read", "dev_read", "dev_write", "to_dev", "to_sys", "dev2_to_dev",
	"dev2_to_sys", "dontneed", "munmap", "map_fixed", "mremap", "mprotect", "fork",
	"exclusive", "mig_discard", "reset", "dev_full",
};

const char *fuzz_kind_name(unsigned int kind)
{
	return kind < OP_COUNT ? kind_names[kind] : "?";
}

/* --- generating, printing, reading ------------------------------------------ */

static uint64_t rnd(uint64_t *s)
{
	*s ^= *s >> 12;
	*s ^= *s << 25;
	*s ^= *s >> 27;
	return *s * 2685821657736338717ull;
}

/* How often each kind comes, out of the sum. */
static const unsigned int weight[OP_COUNT] = {
	[OP_CPU_WRITE] = 14, [OP_CPU_READ] = 10, [OP_DEV_READ] = 6,	[OP_DEV_WRITE] = 5,
	[OP_TO_DEV] = 16,    [OP_TO_SYS] = 8,	 [OP_DEV2_TO_DEV] = 6,	[OP_DEV2_TO_SYS] = 3,
	[OP_DONTNEED] = 5,   [OP_MUNMAP] = 2,	 [OP_MAP_FIXED] = 2,	[OP_MREMAP] = 3,
	[OP_MPROTECT] = 4,   [OP_FORK] = 1,	 [OP_EXCLUSIVE] = 4,	[OP_MIG_DISCARD] = 4,
	[OP_RESET] = 1,	     [OP_DEV_FULL] = 1,
};

void fuzz_generate(uint64_t seed, struct fuzz_op *ops, size_t n)
{
	uint64_t s = seed * 0x9e3779b97f4a7c15ull + 0x1234567;
	unsigned int total = 0;

	for (int k = 0; k < OP_COUNT; k++)
		total += weight[k];
	for (int k = 0; k < 4; k++)
		rnd(&s);
	for (size_t i = 0; i < n; i++) {
		unsigned int w = (unsigned int)(rnd(&s) % total), k = 0;
		uint8_t r = (uint8_t)(rnd(&s) % FUZZ_REGIONS);
		size_t np = region_pages[r], first = rnd(&s) % np;
		static const size_t lens[] = { 1, 3, 16, 64, 600 };
		size_t max = lens[rnd(&s) % 5];

		while (w >= weight[k])
			w -= weight[k++];
		ops[i].kind = (uint8_t)k;
		ops[i].region = r;
		ops[i].first = (uint16_t)first;
		ops[i].n = (uint16_t)(1 + rnd(&s) % (np - first < max ? np - first : max));
		ops[i].aux = (uint32_t)rnd(&s);
	}
}

void fuzz_print(FILE *f, const struct fuzz_op *ops, size_t n)
{
	for (size_t i = 0; i < n; i++)
		fprintf(f, "%s %u %u %u %u\n", fuzz_kind_name(ops[i].kind), ops[i].region,
			ops[i].first, ops[i].n, ops[i].aux);
}

long fuzz_read(FILE *f, struct fuzz_op **out)
{
	char name[32];
	unsigned int r, first, n, aux;
	size_t cap = 64, len = 0;
	struct fuzz_op *ops = malloc(cap * sizeof(*ops));

	while (ops && fscanf(f, "%31s %u %u %u %u", name, &r, &first, &n, &aux) == 5) {
		int k = 0;

		while (k < OP_COUNT && strcmp(kind_names[k], name))
			k++;
		if (k == OP_COUNT || r >= FUZZ_REGIONS || !n || first + n > region_pages[r]) {
			free(ops);
			return -1;
		}
		if (len == cap) {
			struct fuzz_op *v = realloc(ops, 2 * cap * sizeof(*ops));

			if (!v) {
				free(ops);
				return -1;
			}
			ops = v;
			cap *= 2;
		}
		ops[len++] = (struct fuzz_op){ (uint8_t)k, (uint8_t)r, (uint16_t)first, (uint16_t)n, aux };
	}
	*out = ops;
	return ops ? (long)len : -1;
}

/* --- the world ------------------------------------------------------------------ */

struct region {
	char *base;
	size_t npages;
	bool alloc;	  /* from uhmm_alloc() (uhmm_free() when whole) */
	bool whole;	  /* the allocation was never split */
	uint8_t *shadow;  /* npages * PG bytes */
	uint8_t *st;	  /* MAPPED | R | W per page */
	struct mdev md;	  /* the mirror */
};

static struct world {
	struct uhmm_mm *mm;
	struct uhmm_refdev *dev;
	struct uhmm_pagemap *dev2;
	struct region reg[FUZZ_REGIONS];
	char *ballast;	  /* OP_DEV_FULL: pages holding the device full */
	char *view;	  /* what a device returned */
	size_t op;	  /* index of the op running */
	const struct fuzz_op *cur;
	bool verbose;
} w;

bool fuzz_abort_on_failure;
static char dev2_owner;
static char (*dev2_mem)[PG];

static int dev2_to(struct uhmm_pagemap *pg, const uint64_t *dst, const void *const *src, size_t n)
{
	(void)pg;
	for (size_t i = 0; i < n; i++)
		memcpy(dev2_mem[uhmm_device_pfn_index(dst[i]) % DEV2_PAGES], src[i], PG);
	return 0;
}

static int dev2_from(struct uhmm_pagemap *pg, void *const *dst, const uint64_t *src, size_t n)
{
	(void)pg;
	for (size_t i = 0; i < n; i++)
		memcpy(dst[i], dev2_mem[uhmm_device_pfn_index(src[i]) % DEV2_PAGES], PG);
	return 0;
}

static const struct uhmm_pagemap_ops dev2_ops = { .copy_to_device = dev2_to,
						  .copy_from_device = dev2_from };

static void __attribute__((noreturn, format(printf, 1, 2))) fail(const char *fmt, ...)
{
	va_list ap;

	fprintf(stderr, "FUZZ FAIL at op #%zu (%s %u %u %u %u): ", w.op,
		w.cur ? fuzz_kind_name(w.cur->kind) : "setup", w.cur ? w.cur->region : 0,
		w.cur ? w.cur->first : 0, w.cur ? w.cur->n : 0, w.cur ? w.cur->aux : 0);
	va_start(ap, fmt);
	vfprintf(stderr, fmt, ap);
	va_end(ap);
	fprintf(stderr, "\n");
	if (fuzz_abort_on_failure)
		abort(); /* libFuzzer: a crash, with the input saved */
	_exit(1);
}

static bool next_run(size_t r, size_t *pg, size_t end, uint8_t need, size_t *a, size_t *b);

static char *map_region(size_t r, bool alloc)
{
	size_t len = region_pages[r] * PG;
	char *p;

	if (alloc) {
		p = uhmm_alloc(w.mm, len, 0);
		if (!p)
			fail("uhmm_alloc: %s", strerror(errno));
		return p;
	}
	if (r == 2) { /* 2 MiB-aligned, THP */
		char *raw = mmap(NULL, len + (2ul << 20), PROT_READ | PROT_WRITE,
				 MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);

		if (raw == MAP_FAILED)
			fail("mmap");
		p = (char *)(((uintptr_t)raw + (2ul << 20) - 1) & ~((2ul << 20) - 1));
		if (p > raw)
			munmap(raw, (size_t)(p - raw));
		munmap(p + len, (size_t)(raw + len + (2ul << 20) - (p + len)));
		madvise(p, len, MADV_HUGEPAGE);
		return p;
	}
	p = mmap(NULL, len, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
	if (p == MAP_FAILED)
		fail("mmap");
	return p;
}

static void region_new(size_t r, bool alloc)
{
	struct region *g = &w.reg[r];

	g->npages = region_pages[r];
	g->base = map_region(r, alloc);
	g->alloc = alloc;
	g->whole = alloc;
	memset(g->shadow, 0, g->npages * PG);
	memset(g->st, MAPPED | R | W, g->npages);
	if (mdev_init(&g->md, w.mm, g->base, g->npages * PG))
		fail("mdev_init");
}

/* Unmap what of the region is still mapped: a hole may hold someone else's memory by now. */
static void unmap_mapped(size_t r)
{
	struct region *g = &w.reg[r];
	size_t pg = 0, a, b;

	while (next_run(r, &pg, g->npages, MAPPED, &a, &b))
		munmap(g->base + a * PG, (b - a) * PG);
}

static void region_drop(size_t r)
{
	struct region *g = &w.reg[r];

	mdev_fini(&g->md);
	if (!(g->whole && uhmm_free(w.mm, g->base, g->npages * PG) == 0))
		unmap_mapped(r);
}

/* --- checks ------------------------------------------------------------------------ */

static void expect_page(size_t r, size_t pg, const void *got, const char *who)
{
	const uint8_t *want = w.reg[r].shadow + pg * PG, *g = got;

	if (!memcmp(got, want, PG))
		return;
	for (size_t b = 0; b < PG; b++)
		if (g[b] != want[b])
			fail("region %zu page %zu byte %zu: %s read %#x, expected %#x", r, pg, b, who,
			     g[b], want[b]);
}

/* The CPU reads every readable page of [first, first+n). */
static void cpu_check(size_t r, size_t first, size_t n)
{
	struct region *g = &w.reg[r];

	for (size_t pg = first; pg < first + n; pg++)
		if ((g->st[pg] & (MAPPED | R)) == (MAPPED | R))
			expect_page(r, pg, g->base + pg * PG, "the CPU");
}

static void check_all(void)
{
	for (size_t r = 0; r < FUZZ_REGIONS; r++)
		cpu_check(r, 0, w.reg[r].npages);
}

/* --- runs of pages ------------------------------------------------------------------ */

/* The next run at or after *@pg, below @end, whose pages all have @need. */
static bool next_run(size_t r, size_t *pg, size_t end, uint8_t need, size_t *a, size_t *b)
{
	struct region *g = &w.reg[r];

	while (*pg < end && (g->st[*pg] & need) != need)
		(*pg)++;
	if (*pg >= end)
		return false;
	*a = *pg;
	while (*pg < end && (g->st[*pg] & need) == need)
		(*pg)++;
	*b = *pg;
	return true;
}

/* Clip [a, b) to the mapping (VMA) that holds page a. */
static size_t vma_end(size_t r, size_t a, size_t b)
{
	uintptr_t s, e, addr = (uintptr_t)w.reg[r].base + a * PG;
	int prot;

	if (uhmm_mapping_find(w.mm, addr, &s, &e, &prot))
		fail("uhmm_mapping_find at a mapped page");
	if (e < addr + (b - a) * PG)
		b = a + (e - addr) / PG;
	return b;
}

/* Mirror [a, b) now (a snapshot), to check its invalidation after a change. */
static void mirror(size_t r, size_t a, size_t b)
{
	struct region *g = &w.reg[r];
	int e = mdev_mirror(&g->md, (uintptr_t)g->base + a * PG, (uintptr_t)g->base + b * PG, 0);

	if (e)
		fail("mirror snapshot: %s", uhmm_strerror(e));
}

/* After a change of [a, b): the mirror must hold nothing of it. */
static void expect_invalidated(size_t r, size_t a, size_t b, const char *change)
{
	struct region *g = &w.reg[r];

	pthread_mutex_lock(&g->md.lock);
	for (size_t pg = a; pg < b; pg++)
		if (g->md.table[pg]) {
			pthread_mutex_unlock(&g->md.lock);
			fail("region %zu page %zu: the mirror was not invalidated by %s", r, pg, change);
		}
	pthread_mutex_unlock(&g->md.lock);
}

/* --- the ops ------------------------------------------------------------------------ */

static uint8_t pattern(uint32_t aux, size_t pg, size_t b)
{
	uint64_t x = ((uint64_t)aux << 20) ^ (pg * 0x9e3779b1u) ^ (b * 0x85ebca6bu);

	x ^= x >> 29;
	return (uint8_t)(x * 0xbf58476d1ce4e5b9ull >> 56);
}

static void op_cpu_write(size_t r, size_t first, size_t n, uint32_t aux)
{
	struct region *g = &w.reg[r];

	for (size_t pg = first; pg < first + n; pg++) {
		uint8_t *sh = g->shadow + pg * PG;
		char *p = g->base + pg * PG;

		if ((g->st[pg] & (MAPPED | W)) != (MAPPED | W))
			continue;
		if (aux & 1) { /* one word */
			size_t off = ((aux >> 1) % (PG / 8)) * 8;

			for (size_t b = off; b < off + 8; b++)
				sh[b] = pattern(aux, pg, b);
			memcpy(p + off, sh + off, 8);
		} else {
			for (size_t b = 0; b < PG; b++)
				sh[b] = pattern(aux, pg, b);
			memcpy(p, sh, PG);
		}
	}
}

static int dev_cmd(enum uhmm_refdev_op op, size_t r, size_t a, size_t b, uint64_t *cpages)
{
	struct uhmm_refdev_cmd c = { .addr = (uintptr_t)w.reg[r].base + a * PG,
				     .ptr = (uintptr_t)w.view, .npages = b - a };
	int e = uhmm_refdev_cmd(w.dev, op, &c);

	if (cpages)
		*cpages = c.cpages;
	return e;
}

static void op_dev_read(size_t r, size_t first, size_t n)
{
	size_t pg = first, a, b;

	while (next_run(r, &pg, first + n, MAPPED | R, &a, &b)) {
		int e = dev_cmd(UHMM_REFDEV_READ, r, a, b, NULL);

		if (e)
			fail("device read: %s", uhmm_strerror(e));
		for (size_t k = a; k < b; k++)
			expect_page(r, k, w.view + (k - a) * PG, "the device");
	}
}

static void op_dev_write(size_t r, size_t first, size_t n, uint32_t aux)
{
	struct region *g = &w.reg[r];
	size_t pg = first, a, b;

	while (next_run(r, &pg, first + n, MAPPED | R | W, &a, &b)) {
		int e;

		for (size_t k = a; k < b; k++)
			for (size_t x = 0; x < PG; x++)
				w.view[(k - a) * PG + x] = (char)pattern(aux + 1, k, x);
		e = dev_cmd(UHMM_REFDEV_WRITE, r, a, b, NULL);
		if (e)
			fail("device write: %s", uhmm_strerror(e));
		memcpy(g->shadow + a * PG, w.view, (b - a) * PG);
	}
}

static void op_to_dev(size_t r, size_t first, size_t n, uint32_t aux)
{
	size_t pg = first, a, b;

	while (next_run(r, &pg, first + n, MAPPED | R, &a, &b)) {
		uint64_t cpages = 0;
		int e;

		if (aux & 1) {
			struct uhmm_refdev_cmd c = { .npages = UHMM_REFDEV_FLAG_FAIL_ALLOC };

			uhmm_refdev_cmd(w.dev, UHMM_REFDEV_FLAGS, &c);
		}
		mirror(r, a, b);
		e = dev_cmd(UHMM_REFDEV_MIGRATE_TO_DEV, r, a, b, &cpages);
		if (e && e != -ENOENT && e != -ENOMEM)
			fail("migrate to the device: %s", uhmm_strerror(e));
		for (size_t k = a; k < a + cpages && k < b; k++)
			expect_page(r, k, w.view + (k - a) * PG, "the device after migrating");
		if (uhmm_mm_resident(w.mm, (uintptr_t)w.reg[r].base + a * PG,
				     (uintptr_t)w.reg[r].base + b * PG, uhmm_refdev_owner(w.dev)))
			expect_invalidated(r, a, b, "a migration");
	}
}

static void op_to_sys(size_t r, size_t first, size_t n)
{
	size_t pg = first, a, b;

	while (next_run(r, &pg, first + n, MAPPED | R, &a, &b)) {
		int e = dev_cmd(UHMM_REFDEV_MIGRATE_TO_SYS, r, a, b, NULL);

		if (e)
			fail("migrate to system memory: %s", uhmm_strerror(e));
		if (uhmm_mm_resident(w.mm, (uintptr_t)w.reg[r].base + a * PG,
				     (uintptr_t)w.reg[r].base + b * PG, uhmm_refdev_owner(w.dev)))
			fail("pages still on the device after migrating them home");
	}
}

/* The second device's migration to itself: the kernel's contract, by hand. */
static void dev2_fill(struct uhmm_migrate *m)
{
	for (size_t i = 0; i < m->npages; i++) {
		uint64_t pfn;

		if (!(m->src[i] & UHMM_MIGRATE_PFN_MIGRATE))
			continue;
		if (uhmm_pagemap_alloc_page(w.dev2, &pfn))
			break; /* full: the rest stays home */
		if (m->src[i] & UHMM_MIGRATE_PFN_VALID)
			memcpy(dev2_mem[uhmm_device_pfn_index(pfn) % DEV2_PAGES],
			       (void *)(uhmm_migrate_pfn_frame(m->src[i]) << 12), PG);
		else
			memset(dev2_mem[uhmm_device_pfn_index(pfn) % DEV2_PAGES], 0, PG);
		m->dst[i] = uhmm_migrate_pfn_device(pfn);
	}
}

static void dev2_migrate(size_t r, size_t a, size_t b, bool to_dev,
			 void (*meanwhile)(size_t, size_t, size_t, uint32_t), uint32_t aux)
{
	unsigned long *src = calloc(b - a, sizeof(*src)), *dst = calloc(b - a, sizeof(*dst));
	struct uhmm_migrate m = {
		.mm = w.mm, .start = (uintptr_t)w.reg[r].base + a * PG,
		.end = (uintptr_t)w.reg[r].base + b * PG, .src = src, .dst = dst,
		.pgmap_owner = &dev2_owner,
		.flags = to_dev ? UHMM_MIGRATE_SELECT_SYSTEM : UHMM_MIGRATE_SELECT_DEVICE_PRIVATE,
	};
	int e;

	if (!src || !dst)
		fail("out of memory");
	e = uhmm_migrate_setup(&m);
	if (e)
		fail("uhmm_migrate_setup: %s", uhmm_strerror(e));
	if (to_dev) {
		dev2_fill(&m);
	} else {
		for (size_t i = 0; i < m.npages; i++)
			if (src[i] & UHMM_MIGRATE_PFN_MIGRATE)
				dst[i] = uhmm_migrate_sys_pfn(&m, i);
		e = uhmm_migrate_copy(&m);
		if (e)
			fail("uhmm_migrate_copy: %s", uhmm_strerror(e));
	}
	if (meanwhile)
		meanwhile(r, a, b, aux);
	e = uhmm_migrate_pages(&m);
	if (e)
		fail("uhmm_migrate_pages: %s", uhmm_strerror(e));
	uhmm_migrate_finalize(&m);
	free(src);
	free(dst);
}

static void op_dev2(size_t r, size_t first, size_t n, bool to_dev)
{
	size_t pg = first, a, b;

	while (next_run(r, &pg, first + n, MAPPED | R, &a, &b)) {
		b = vma_end(r, a, b);
		pg = b;
		if (to_dev) {
			mirror(r, a, b);
			dev2_migrate(r, a, b, true, NULL, 0);
			if (uhmm_mm_resident(w.mm, (uintptr_t)w.reg[r].base + a * PG,
					     (uintptr_t)w.reg[r].base + b * PG, &dev2_owner))
				expect_invalidated(r, a, b, "a migration to the second device");
		} else {
			long e = uhmm_migrate_to_ram(w.mm, (uintptr_t)w.reg[r].base + a * PG,
						     (uintptr_t)w.reg[r].base + b * PG, &dev2_owner);

			if (e < 0)
				fail("uhmm_migrate_to_ram: %s", uhmm_strerror((int)e));
		}
	}
}

static void discard_range(size_t r, size_t a, size_t b, bool unmap)
{
	struct region *g = &w.reg[r];

	if (unmap) {
		if (munmap(g->base + a * PG, (b - a) * PG))
			fail("munmap: %s", strerror(errno));
		memset(g->st + a, 0, b - a);
		g->whole = false;
	} else if (madvise(g->base + a * PG, (b - a) * PG, MADV_DONTNEED)) {
		fail("madvise: %s", strerror(errno));
	}
	memset(g->shadow + a * PG, 0, (b - a) * PG);
}

static void op_discard(size_t r, size_t first, size_t n, bool unmap)
{
	size_t pg = first, a, b;

	while (next_run(r, &pg, first + n, MAPPED, &a, &b)) {
		mirror(r, a, b);
		discard_range(r, a, b, unmap);
		expect_invalidated(r, a, b, unmap ? "munmap" : "MADV_DONTNEED");
	}
}

/* A fresh mapping over mapped pages (a hole may hold someone else's memory by now). */
static void op_map_fixed(size_t r, size_t first, size_t n)
{
	struct region *g = &w.reg[r];
	size_t pg = first, a, b;

	while (next_run(r, &pg, first + n, MAPPED, &a, &b)) {
		char *p = g->base + a * PG;

		mirror(r, a, b);
		if (mmap(p, (b - a) * PG, PROT_READ | PROT_WRITE,
			 MAP_PRIVATE | MAP_ANONYMOUS | MAP_FIXED, -1, 0) != p)
			fail("mmap(MAP_FIXED): %s", strerror(errno));
		memset(g->shadow + a * PG, 0, (b - a) * PG);
		memset(g->st + a, MAPPED | R | W, b - a);
		g->whole = false;
		expect_invalidated(r, a, b, "mmap(MAP_FIXED)");
	}
}

static void op_mremap(size_t r, size_t first, size_t n, uint32_t aux)
{
	struct region *g = &w.reg[r];
	size_t pg = first, a, b;

	while (next_run(r, &pg, first + n, MAPPED, &a, &b)) {
		size_t len;
		char *src, *away;
		int fl = MREMAP_MAYMOVE | MREMAP_FIXED | ((aux & 1) ? MREMAP_DONTUNMAP : 0);

		b = vma_end(r, a, b);
		pg = b;
		len = (b - a) * PG;
		src = g->base + a * PG;
		away = mmap(NULL, len, PROT_NONE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
		if (away == MAP_FAILED)
			fail("mmap");
		mirror(r, a, b);
		if (mremap(src, len, len, fl, away) != away) {
			munmap(away, len); /* refused (e.g. DONTUNMAP here): nothing changed */
			continue;
		}
		if (mremap(away, len, len, MREMAP_MAYMOVE | MREMAP_FIXED, src) != src)
			fail("mremap back: %s", strerror(errno));
		g->whole = false;
		expect_invalidated(r, a, b, "mremap");
	}
}

static void op_mprotect(size_t r, size_t first, size_t n, uint32_t aux)
{
	static const int prots[3] = { PROT_READ | PROT_WRITE, PROT_READ, PROT_NONE };
	static const uint8_t bits[3] = { R | W, R, 0 };
	struct region *g = &w.reg[r];
	size_t pg = first, a, b;

	while (next_run(r, &pg, first + n, MAPPED, &a, &b)) {
		mirror(r, a, b);
		if (mprotect(g->base + a * PG, (b - a) * PG, prots[aux % 3]))
			fail("mprotect: %s", strerror(errno));
		for (size_t k = a; k < b; k++)
			g->st[k] = MAPPED | bits[aux % 3];
		g->whole = false; /* the allocation is several mappings now */
		expect_invalidated(r, a, b, "mprotect");
	}
}

static void op_fork(void)
{
	int status;
	pid_t c = fork();

	if (c < 0)
		fail("fork: %s", strerror(errno));
	if (c == 0) {
		/* The child: every byte its parent had, never zeros. */
		check_all();
		_exit(0);
	}
	if (waitpid(c, &status, 0) != c || !WIFEXITED(status) || WEXITSTATUS(status))
		fail("the fork child saw other data than its parent (status %#x)", status);
}

static void op_exclusive(size_t r, size_t first, size_t n)
{
	struct region *g = &w.reg[r];
	size_t pg = first, a, b;

	while (next_run(r, &pg, first + n, MAPPED | R | W, &a, &b)) {
		int e;

		mirror(r, a, b);
		e = dev_cmd(UHMM_REFDEV_EXCLUSIVE, r, a, b, NULL);
		if (e && e != -ENOMEM)
			fail("exclusive: %s", uhmm_strerror(e));
		for (size_t k = a; k < b; k++)
			if (uhmm_device_exclusive_addr(w.mm, (uintptr_t)g->base + k * PG,
						       uhmm_refdev_owner(w.dev)))
				expect_page(r, k, w.view + (k - a) * PG, "the device, exclusively");
	}
}

/* The program discards the middle of a range a migration holds. */
static void discard_meanwhile(size_t r, size_t a, size_t b, uint32_t aux)
{
	size_t s = a + (b - a) / 3, e = a + 2 * (b - a) / 3 + 1;

	discard_range(r, s, e > b ? b : e, aux & 2);
}

static void op_mig_discard(size_t r, size_t first, size_t n, uint32_t aux)
{
	size_t pg = first, a, b;

	while (next_run(r, &pg, first + n, MAPPED | R | W, &a, &b)) {
		b = vma_end(r, a, b);
		pg = b;
		dev2_migrate(r, a, b, !(aux & 1), discard_meanwhile, aux);
	}
}

static void op_reset(size_t r, uint32_t aux)
{
	region_drop(r);
	region_new(r, aux & 1);
}

static void op_dev_full(void)
{
	size_t len = 512 * PG;
	struct uhmm_refdev_cmd c = { .npages = 512 };
	int e;

	if (w.ballast) {
		munmap(w.ballast, len); /* its device pages are released */
		w.ballast = NULL;
		return;
	}
	w.ballast = mmap(NULL, len, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
	if (w.ballast == MAP_FAILED)
		fail("mmap");
	memset(w.ballast, 0x5a, len);
	c.addr = (uintptr_t)w.ballast;
	c.ptr = (uintptr_t)w.view;
	e = uhmm_refdev_cmd(w.dev, UHMM_REFDEV_MIGRATE_TO_DEV, &c);
	if (e && e != -ENOENT && e != -ENOMEM)
		fail("filling the device: %s", uhmm_strerror(e));
}

static void step(const struct fuzz_op *o)
{
	size_t r = o->region, first = o->first, n = o->n;

	switch (o->kind) {
	case OP_CPU_WRITE: op_cpu_write(r, first, n, o->aux); break;
	case OP_CPU_READ: cpu_check(r, first, n); break;
	case OP_DEV_READ: op_dev_read(r, first, n); break;
	case OP_DEV_WRITE: op_dev_write(r, first, n, o->aux); break;
	case OP_TO_DEV: op_to_dev(r, first, n, o->aux); break;
	case OP_TO_SYS: op_to_sys(r, first, n); break;
	case OP_DEV2_TO_DEV: op_dev2(r, first, n, true); break;
	case OP_DEV2_TO_SYS: op_dev2(r, first, n, false); break;
	case OP_DONTNEED: op_discard(r, first, n, false); break;
	case OP_MUNMAP: op_discard(r, first, n, true); break;
	case OP_MAP_FIXED: op_map_fixed(r, first, n); break;
	case OP_MREMAP: op_mremap(r, first, n, o->aux); break;
	case OP_MPROTECT: op_mprotect(r, first, n, o->aux); break;
	case OP_FORK: op_fork(); break;
	case OP_EXCLUSIVE: op_exclusive(r, first, n); break;
	case OP_MIG_DISCARD: op_mig_discard(r, first, n, o->aux); break;
	case OP_RESET: op_reset(r, o->aux); break;
	case OP_DEV_FULL: op_dev_full(); break;
	default: fail("unknown op");
	}
}

/* --- a run --------------------------------------------------------------------------- */

static void world_new(void)
{
	struct uhmm_refdev_config dc = { .type = UHMM_REFDEV_PRIVATE, .memory_bytes = 2u << 20 };
	struct uhmm_pagemap_config pc = { .type = UHMM_PAGEMAP_PRIVATE, .owner = &dev2_owner,
					  .ops = &dev2_ops };
	int e = uhmm_mm_new(&w.mm, NULL);

	if (e)
		fail("uhmm_mm_new: %s", uhmm_strerror(e));
	if ((e = uhmm_refdev_new(&w.dev, w.mm, &dc)))
		fail("uhmm_refdev_new: %s", uhmm_strerror(e));
	if ((e = uhmm_pagemap_new(&w.dev2, w.mm, &pc)) ||
	    (e = uhmm_pagemap_add_memory(w.dev2, DEV2_PAGES * PG)))
		fail("the second device: %s", uhmm_strerror(e));
	dev2_mem = calloc(DEV2_PAGES, PG);
	w.view = malloc(600 * PG);
	if (!dev2_mem || !w.view)
		fail("out of memory");
	for (size_t r = 0; r < FUZZ_REGIONS; r++) {
		w.reg[r].shadow = malloc(region_pages[r] * PG);
		w.reg[r].st = malloc(region_pages[r]);
		if (!w.reg[r].shadow || !w.reg[r].st)
			fail("out of memory");
		region_new(r, r == 1);
	}
}

static void world_free(void)
{
	int e;

	uhmm_refdev_free(w.dev);
	if ((e = uhmm_pagemap_free(w.dev2)))
		fail("freeing the second device: %s", uhmm_strerror(e));
	for (size_t r = 0; r < FUZZ_REGIONS; r++)
		mdev_fini(&w.reg[r].md);
	uhmm_mm_free(w.mm);
	check_all(); /* and after teardown, as ordinary memory */
	for (size_t r = 0; r < FUZZ_REGIONS; r++) {
		unmap_mapped(r);
		free(w.reg[r].shadow);
		free(w.reg[r].st);
	}
	if (w.ballast)
		munmap(w.ballast, 512 * PG);
	free(dev2_mem);
	free(w.view);
	memset(&w, 0, sizeof(w));
}

int fuzz_run(const struct fuzz_op *ops, size_t n, bool verbose)
{
	memset(&w, 0, sizeof(w));
	w.verbose = verbose;
	world_new();
	for (size_t i = 0; i < n; i++) {
		w.op = i;
		w.cur = &ops[i];
		if (verbose)
			fprintf(stderr, "op #%zu: %s %u %u %u %u\n", i, fuzz_kind_name(ops[i].kind),
				ops[i].region, ops[i].first, ops[i].n, ops[i].aux);
		step(&ops[i]);
		if (i % 64 == 63)
			check_all();
	}
	w.cur = NULL;
	check_all();
	world_free();
	return 0;
}
