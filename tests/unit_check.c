/* SPDX-License-Identifier: LGPL-2.1-or-later */
#include "unit_check.h"

#include <stdio.h>
#include <string.h>

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

int unit_run(const char *suite, const struct unit_test *tests, unsigned n, int argc,
	     char **argv)
{
	int unknown = 0;

	if (argc == 2 && strcmp(argv[1], "--list") == 0) {
		for (unsigned i = 0; i < n; i++)
			printf("%s\n", tests[i].name);
		return 0;
	}
	for (int a = 1; a < argc; a++) {
		unsigned i = 0;
		while (i < n && strcmp(argv[a], tests[i].name) != 0)
			i++;
		if (i == n) {
			fprintf(stderr, "%s: no test named '%s' (--list)\n", suite, argv[a]);
			unknown++;
		}
	}
	for (unsigned i = 0; i < n; i++) {
		bool wanted = argc < 2;
		for (int a = 1; a < argc && !wanted; a++)
			wanted = strcmp(argv[a], tests[i].name) == 0;
		if (!wanted)
			continue;
		int before = n_fail;
		tests[i].fn();
		printf("%s %s\n", n_fail == before ? "PASS" : "FAIL", tests[i].name);
		fflush(stdout);
	}
	return check_finish(suite) || unknown ? 1 : 0;
}
