/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * test_util.h's CHECK / CHECKF / REQUIRE as gst-check assertions, for the
 * check suites in tests/gst/: a failed one ends the test (the forked process
 * running it) with file:line, the expression and the message, so one
 * GST_START_TEST names one behaviour and fails on its first broken promise.
 * The helpers keep their test_util.h spelling; include this after it.
 */
#ifndef HFE_CHECK_ASSERTS_H
#define HFE_CHECK_ASSERTS_H

#include <gst/check/gstcheck.h>

#include "test_util.h"

#undef CHECK
#undef CHECKF
#undef REQUIRE
#define CHECK(expr) ck_assert(expr)
#define CHECKF(expr, ...) ck_assert_msg(expr, __VA_ARGS__)
#define REQUIRE(expr) ck_assert(expr)

#endif
