/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * Counting checks for the library unit tests (test_wire, test_conn): each
 * CHECK passes or fails (printing file:line, the expression and an optional
 * context), and the test ends with "NAME: N passed, N failed".
 */
#ifndef HFE_UNIT_CHECK_H
#define HFE_UNIT_CHECK_H

#include <stdbool.h>

#define CHECK(expr) check_((expr), #expr, __FILE__, __LINE__, NULL)
#define CHECKC(expr, ctx) check_((expr), #expr, __FILE__, __LINE__, (ctx))

/* Count one check; returns ok so that a failure can be followed up. */
bool check_(bool ok, const char *expr, const char *file, int line, const char *ctx);

/* Print the summary line; returns main's exit code (0: every check passed). */
int check_finish(const char *test_name);

/* Named tests, one behaviour each (test_host*). unit_run() runs those named on
 * the command line, or all of them; "--list" prints the names. Each test's
 * result is printed as "PASS name" / "FAIL name". Returns main's exit code. */
struct unit_test {
	const char *name;
	void (*fn)(void);
};
int unit_run(const char *suite, const struct unit_test *tests, unsigned n, int argc,
	     char **argv);

#endif
