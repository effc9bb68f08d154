/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * Field-by-field equality of two decoded HXFR messages, shared by the wire
 * and connection tests and the fuzz target (test_wire, test_conn,
 * fuzz_wire), so that all of them compare the same fields.
 */
#ifndef HFE_MSG_COMPARE_H
#define HFE_MSG_COMPARE_H

#include <stdbool.h>
#include <stddef.h>

#include "hfe/wire.h"

/*
 * True if a and b agree on the header (magic included), data_len and every
 * body field of a's type (strings up to their field size). The data bytes
 * themselves are not compared. Otherwise false, with the first differing
 * field and both values written to why (why_len bytes).
 */
bool msg_fields_equal(const struct hfe_msg *a, const struct hfe_msg *b, char *why,
		      size_t why_len);

#endif
