/* SPDX-License-Identifier: MIT */
/*
 * libfuzzer.c - the differential fuzzer's interpreter as a libFuzzer
 * target (tests/fuzz/libfuzzer.sh builds it with clang): every 8 bytes of
 * input are one operation, so coverage guides the op lists; a wrong byte,
 * a hang caught by -timeout, or a sanitizer report is a crash with its
 * input saved. The fault mode is UHMM_FAULT_MODE's.
 */
#include <signal.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "ops.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);
int LLVMFuzzerInitialize(int *argc, char ***argv);

static const uint16_t pages[FUZZ_REGIONS] = { 64, 96, 512 };

int LLVMFuzzerInitialize(int *argc, char ***argv)
{
	(void)argc;
	(void)argv;
	fuzz_abort_on_failure = true;
	return 0;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	size_t n = size / 8;
	struct fuzz_op *ops;

	if (!n || n > 2000)
		return 0;
	ops = malloc(n * sizeof(*ops));
	if (!ops)
		return 0;
	for (size_t i = 0; i < n; i++) {
		const uint8_t *b = data + 8 * i;
		uint8_t r = b[1] % FUZZ_REGIONS;
		uint16_t first = (uint16_t)((b[2] | b[3] << 8) % pages[r]);

		ops[i].kind = b[0] % OP_COUNT;
		ops[i].region = r;
		ops[i].first = first;
		ops[i].n = (uint16_t)(1 + b[4] % (pages[r] - first));
		memcpy(&ops[i].aux, b + 4, 4);
	}
	fuzz_run(ops, n, false);
	free(ops);
	return 0;
}
