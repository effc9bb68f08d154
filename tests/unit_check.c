/* SPDX-License-Identifier: LGPL-2.1-or-later */
#include "unit_check.h"

#include <stdio.h>

static int n_pass, n_fail;

bool check_(bool ok, const char *expr, const char *file, int line, const char *ctx)
{
	if (ok) {
		n_pass++;
		return true;
	}
	n_fail++;
	fprintf(stderr, "%s:%d: FAILED: %s", file, line, expr);
	if (ctx)
		fprintf(stderr, "  [%s]", ctx);
	fputc('\n', stderr);
	return false;
}

int check_finish(const char *test_name)
{
	printf("%s: %d passed, %d failed\n", test_name, n_pass, n_fail);
	return n_fail ? 1 : 0;
}
