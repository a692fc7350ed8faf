/* SPDX-License-Identifier: MIT */
/*
 * ops.h - the differential fuzzer's operations and their interpreter.
 *
 * A run is a list of operations, each self-describing (what, which region,
 * which pages, an extra word): generated from a seed, printed and read back
 * as text, and meaningful in any state (an operation on pages that are not
 * mapped, or not readable, does what the program would be allowed to do
 * there, often nothing). So a failing list can be shortened by deleting
 * operations and still replays.
 *
 * The interpreter keeps a shadow of every byte of every region, and of
 * which pages are mapped and how they may be accessed, and checks every
 * read (by the CPU, by the devices, by a fork child) against it.
 */
#ifndef UHMM_FUZZ_OPS_H
#define UHMM_FUZZ_OPS_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>

enum fuzz_kind {
	OP_CPU_WRITE,	  /* the CPU writes a pattern into the pages */
	OP_CPU_READ,	  /* the CPU reads and compares */
	OP_DEV_READ,	  /* the reference device reads (without faulting its pages home) */
	OP_DEV_WRITE,	  /* the reference device writes */
	OP_TO_DEV,	  /* migrate to the reference device (host storage) */
	OP_TO_SYS,	  /* migrate back from it */
	OP_DEV2_TO_DEV,	  /* migrate to the second device (own memory, its own alloc) */
	OP_DEV2_TO_SYS,	  /* and back, by uhmm_migrate_to_ram */
	OP_DONTNEED,	  /* MADV_DONTNEED */
	OP_MUNMAP,	  /* munmap */
	OP_MAP_FIXED,	  /* a fresh anonymous mapping over the pages */
	OP_MREMAP,	  /* mremap away and back (aux bit 0: MREMAP_DONTUNMAP) */
	OP_MPROTECT,	  /* aux % 3: read-write, read-only, none */
	OP_FORK,	  /* a child checks every readable page */
	OP_EXCLUSIVE,	  /* the reference device takes the pages exclusively */
	OP_MIG_DISCARD,	  /* a migration to dev2 during which the program discards pages */
	OP_RESET,	  /* the region is unmapped and mapped anew (aux bit 0: uhmm_alloc) */
	OP_DEV_FULL,	  /* fill the reference device with another region's pages, then free it */
	OP_COUNT
};

struct fuzz_op {
	uint8_t kind;	/* enum fuzz_kind */
	uint8_t region;
	uint16_t first; /* page */
	uint16_t n;	/* pages */
	uint32_t aux;
};

#define FUZZ_REGIONS 3

/* The ops a seed makes (deterministic). */
void fuzz_generate(uint64_t seed, struct fuzz_op *ops, size_t n);
/* One op per line. */
void fuzz_print(FILE *f, const struct fuzz_op *ops, size_t n);
/* Read what fuzz_print wrote. Return the number of ops (allocated in *ops), -1 on error. */
long fuzz_read(FILE *f, struct fuzz_op **ops);
const char *fuzz_kind_name(unsigned int kind);

/*
 * Run @ops in this process, from a fresh uhmm_mm, checking everything.
 * Return 0, or 1 with a message on stderr naming the op that failed.
 * A hang is the caller's to catch (fuzz.c runs it in a child with a bound).
 */
int fuzz_run(const struct fuzz_op *ops, size_t n, bool verbose);
/* A failure aborts (libFuzzer) instead of exiting with status 1. */
extern bool fuzz_abort_on_failure;

#endif /* UHMM_FUZZ_OPS_H */
