/* SPDX-License-Identifier: MIT */
/*
 * memory.c - suite `memory`: bookkeeping bytes per managed 4 KiB page,
 * counted from what the mm actually allocated for a managed 1 GiB range,
 * beside the kernel's own per-page cost (struct page, 64 bytes).
 * Device-page figures join this suite with pagemaps.
 */
#include <errno.h>
#include <math.h>
#include <sys/mman.h>

#include "bench.h"
#include "bench_util.h"
#include "internal.h"
#include "uhmm/device.h"

static int run(struct bench_ctx *ctx)
{
	size_t len = ctx->quick ? (256ul << 20) : (1ul << 30), pages = 0, bytes;
	struct uhmm_mm *mm;
	char *p;
	int r = uhmm_mm_new(&mm, NULL);

	if (r)
		return r;
	p = mmap(NULL, len, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE,
		 -1, 0);
	if (p == MAP_FAILED) {
		r = -errno;
		goto out;
	}
	/* Managed in 4 pieces: the figure includes the area table. */
	for (int i = 0; i < 4 && !r; i++)
		r = uhmm_manage(mm, p + i * (len / 4), len / 4, 0);
	if (!r) {
		bytes = uhmm__mm_metadata(mm, &pages);
		r = bench_add(ctx, "metadata per managed 4 KiB page", "bytes", BENCH_COST,
			      (double)bytes / (double)pages, NAN, 64.0, "kernel struct page");
	}
	munmap(p, len);
	if (!r) {
		/* Device pages: descriptors and section headers of a 256 MiB pagemap. */
		struct uhmm_pagemap_config cfg = { .type = UHMM_PAGEMAP_PRIVATE, .host_storage = true };
		struct uhmm_pagemap_stats st;
		struct uhmm_pagemap *pg;
		char owner;

		cfg.owner = &owner;
		r = uhmm_pagemap_new(&pg, mm, &cfg);
		if (!r)
			r = uhmm_pagemap_add_memory(pg, 256u << 20);
		if (!r) {
			uhmm_pagemap_stats(pg, &st);
			r = bench_add(ctx, "metadata per device 4 KiB page", "bytes", BENCH_COST,
				      (double)st.metadata_bytes / (double)st.pages_total, NAN, 64.0,
				      "kernel struct page (ZONE_DEVICE)");
		}
		uhmm_pagemap_free(pg);
	}
out:
	uhmm_mm_free(mm);
	return r;
}

const struct bench_suite bench_suite_memory = {
	.name = "memory",
	.what = "bookkeeping bytes per managed page",
	.run = run,
};
