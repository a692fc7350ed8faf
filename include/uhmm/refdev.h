/* SPDX-License-Identifier: MIT */
/*
 * uhmm/refdev.h - the reference device: a software device with its own page
 * table (a mirror kept by the retry protocol) and its own memory (a
 * host-storage pagemap, so migrations are zero-copy). Its commands mean
 * what the Linux test driver's (lib/test_hmm.c, "dmirror") ioctls of the
 * same names mean; tests/conformance/ runs Linux's HMM selftests on it.
 * It is also the model a real device implementation copies from:
 * devices/refdev/refdev.c. See docs/REFDEV.md.
 *
 * Thread safety: commands on one device may run concurrently.
 */
#ifndef UHMM_REFDEV_H
#define UHMM_REFDEV_H

#include <stdint.h>
#include <uhmm.h>

#ifdef __cplusplus
extern "C" {
#endif

struct uhmm_refdev;

enum uhmm_refdev_type { UHMM_REFDEV_PRIVATE = 1, UHMM_REFDEV_COHERENT = 2 };

/* memory_bytes: device memory, a multiple of 2 MiB; 0 means 256 MiB. */
struct uhmm_refdev_config {
	enum uhmm_refdev_type type;
	size_t memory_bytes;
};

/**
 * uhmm_refdev_new() - a device for @mm. @cfg NULL: private, 256 MiB.
 * Return: 0, or -EINVAL (bad config), -EOPNOTSUPP (COHERENT: not offered
 * yet), -ENOMEM.
 */
int uhmm_refdev_new(struct uhmm_refdev **ret, struct uhmm_mm *mm,
		    const struct uhmm_refdev_config *cfg);

/**
 * uhmm_refdev_free() - every page the device holds comes home first. NULL ok.
 * Must be called before uhmm_mm_free() of its mm.
 */
void uhmm_refdev_free(struct uhmm_refdev *dev);

struct uhmm_refdev_cmd {
	uint64_t addr;	 /* page-aligned address the device works on */
	uint64_t ptr;	 /* the caller's buffer */
	uint64_t npages; /* length in pages (FLAGS: the flags) */
	uint64_t cpages; /* out: pages copied / held / moved */
	uint64_t faults; /* out: fault rounds */
};

enum uhmm_refdev_op {
	UHMM_REFDEV_READ,
	UHMM_REFDEV_WRITE,
	UHMM_REFDEV_MIGRATE_TO_DEV,
	UHMM_REFDEV_MIGRATE_TO_SYS,
	UHMM_REFDEV_SNAPSHOT,
	UHMM_REFDEV_EXCLUSIVE,
	UHMM_REFDEV_CHECK_EXCLUSIVE,
	UHMM_REFDEV_RELEASE,
	UHMM_REFDEV_FLAGS,
};

/**
 * uhmm_refdev_cmd() - run one command.
 * Return: 0, or -EINVAL (unknown op, addr not page-aligned, zero or
 * overflowing length), -EFAULT / -EPERM (protection, as the kernel's),
 * -ENOENT (nothing to migrate: shared memory), -ENOMEM, -EPERM
 * (CHECK_EXCLUSIVE: still exclusive).
 */
int uhmm_refdev_cmd(struct uhmm_refdev *dev, enum uhmm_refdev_op op, struct uhmm_refdev_cmd *cmd);

/* FLAGS: npages holds these (one-shot). */
#define UHMM_REFDEV_FLAG_FAIL_ALLOC (1ULL << 0)

/* SNAPSHOT bytes */
#define UHMM_REFDEV_PROT_ERROR 0xFF
#define UHMM_REFDEV_PROT_NONE 0x00
#define UHMM_REFDEV_PROT_READ 0x01
#define UHMM_REFDEV_PROT_WRITE 0x02
#define UHMM_REFDEV_PROT_PMD 0x04
#define UHMM_REFDEV_PROT_PUD 0x08
#define UHMM_REFDEV_PROT_ZERO 0x10
#define UHMM_REFDEV_PROT_DEV_PRIVATE_LOCAL 0x20
#define UHMM_REFDEV_PROT_DEV_PRIVATE_REMOTE 0x30
#define UHMM_REFDEV_PROT_DEV_COHERENT_LOCAL 0x40
#define UHMM_REFDEV_PROT_DEV_COHERENT_REMOTE 0x50

/** The device's owner pointer (its pagemap owner): for notifier filters. */
void *uhmm_refdev_owner(struct uhmm_refdev *dev);

#ifdef __cplusplus
}
#endif

#endif /* UHMM_REFDEV_H */
