/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * The test picture renderer at any size: hfe_testsrc_render writes only
 * inside the picture it is given (the bouncing box is clipped), however small
 * (run under ASan to see an overflow; the guard bytes catch it without).
 */
#include <stdlib.h>
#include <string.h>

#include "hfe/testsrc.h"
#include "unit_check.h"

#define GUARD 256

static void test_render_stays_inside_small_pictures(void)
{
	static const uint32_t sizes[] = { 16, 33, 64, 65, 100, 127, 128, 130 };
	for (unsigned i = 0; i < sizeof(sizes) / sizeof(sizes[0]); i++) {
		for (unsigned j = 0; j < sizeof(sizes) / sizeof(sizes[0]); j++) {
			uint32_t w = sizes[i], h = sizes[j];
			size_t len = (size_t)w * 4 * h;
			uint8_t *buf = malloc(len + GUARD);
			memset(buf + len, 0xA5, GUARD);
			for (uint64_t tick = 0; tick < 40; tick += 7)
				hfe_testsrc_render(buf, w * 4, w, h, tick);
			bool clean = true;
			for (size_t k = 0; k < GUARD; k++)
				clean &= buf[len + k] == 0xA5;
			CHECKC(clean, "bytes written past the picture");
			free(buf);
		}
	}
}

int main(int argc, char **argv)
{
	static const struct unit_test tests[] = {
		{ "render_stays_inside_small_pictures", test_render_stays_inside_small_pictures },
	};
	return unit_run("test_testsrc", tests, 1, argc, argv);
}
