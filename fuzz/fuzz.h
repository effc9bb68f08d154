/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* What every fuzz target shares: the libFuzzer entry point (also called by
 * fuzz_replay.c) and the abort on a broken invariant. */
#ifndef HFE_FUZZ_H
#define HFE_FUZZ_H

#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

/* Print which invariant broke where, then abort (libFuzzer keeps the input). */
#define FUZZ_FAIL(target, ...)                                                     \
	do {                                                                       \
		fprintf(stderr, "%s: invariant broken at line %d: ", target, __LINE__); \
		fprintf(stderr, __VA_ARGS__);                                      \
		fputc('\n', stderr);                                               \
		abort();                                                           \
	} while (0)

#endif
