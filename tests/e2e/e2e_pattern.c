/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* The e2e tests' known pictures; see e2e_pattern.h. */
#include "e2e_pattern.h"

#include <string.h>

/* Triangle wave over period p (> 1): 0 at v = 0, `amp` at v = p/2. */
static uint32_t tri(uint32_t v, uint32_t p, uint32_t amp)
{
	uint32_t half = p / 2, a;

	v %= p;
	a = v < half ? v : p - v;
	return a * amp / half;
}

static uint32_t bounce(uint32_t t, uint32_t speed, uint32_t range)
{
	uint32_t p;

	if (range == 0)
		return 0;
	p = (t * speed) % (2 * range);
	return p <= range ? p : 2 * range - p;
}

static uint32_t hash32(uint32_t x)
{
	x ^= x >> 16;
	x *= 0x7feb352du;
	x ^= x >> 15;
	x *= 0x846ca68bu;
	x ^= x >> 16;
	return x;
}

static void fill_rect(uint8_t *rgb, uint32_t w, uint32_t x0, uint32_t y0, uint32_t rw, uint32_t rh,
		      uint8_t r, uint8_t g, uint8_t b)
{
	for (uint32_t y = y0; y < y0 + rh; y++) {
		uint8_t *p = rgb + ((size_t)y * w + x0) * 3;

		for (uint32_t x = 0; x < rw; x++, p += 3) {
			p[0] = r;
			p[1] = g;
			p[2] = b;
		}
	}
}

void e2e_pattern_rgb(uint8_t *rgb, uint32_t w, uint32_t h, uint32_t t)
{
	/* Background: R follows x, G follows y, B the diagonal; all drift. */
	for (uint32_t y = 0; y < h; y++) {
		uint8_t *p = rgb + (size_t)y * w * 3;
		uint8_t g = (uint8_t)(30 + tri(2 * y + 2 * t, 4 * h, 180));

		for (uint32_t x = 0; x < w; x++, p += 3) {
			p[0] = (uint8_t)(20 + tri(2 * x + 3 * t, 4 * w, 215));
			p[1] = g;
			p[2] = (uint8_t)(40 + tri(x + y + 5 * t, 2 * (w + h), 190));
		}
	}

	/* A bouncing box with a dark 3-pixel border. */
	uint32_t bw = w / 4, bh = h / 4;

	if (bw >= 8 && bh >= 8) {
		uint32_t bx = bounce(t, 5, w - bw), by = bounce(t, 3, h - bh);

		fill_rect(rgb, w, bx, by, bw, bh, 40, 20, 30);
		fill_rect(rgb, w, bx + 3, by + 3, bw - 6, bh - 6, 230, 40, 60);
	}

	/* Text-like band: 6x8 cells, dark ink on a light panel, one more
	 * glyph every frame. */
	uint32_t tx0 = w / 16, ty0 = h * 3 / 4, cols = w >= 64 ? (w - 2 * tx0) / 6 : 0;

	if (cols && ty0 + 16 <= h) {
		uint32_t shown = 8 + t;

		for (uint32_t y = ty0; y < ty0 + 16; y++) {
			uint8_t *p = rgb + ((size_t)y * w + tx0) * 3;
			uint32_t line = (y - ty0) / 8, gy = (y - ty0) % 8;

			for (uint32_t x = 0; x < cols * 6; x++, p += 3) {
				uint32_t gi = line * cols + x / 6, gx = x % 6;
				int ink = gi < shown && gx < 5 && gy >= 1 && gy < 7 &&
					  hash32(gi * 64 + gy * 8 + gx) % 100 < 45;

				p[0] = ink ? 20 : 236;
				p[1] = ink ? 24 : 234;
				p[2] = ink ? 40 : 228;
			}
		}
	}
}

void e2e_small_box_pos(uint32_t w, uint32_t h, uint32_t i, uint32_t *x, uint32_t *y)
{
	uint32_t rx = w > E2E_SMALL_BOX ? w - E2E_SMALL_BOX : 0;
	uint32_t ry = h > E2E_SMALL_BOX ? h - E2E_SMALL_BOX : 0;

	/* Steps of whole boxes so that consecutive boxes barely overlap. */
	*x = bounce(i, 24, rx);
	*y = bounce(i, 10, ry);
}

void e2e_draw_rgb(uint8_t *rgb, uint32_t w, uint32_t h, uint32_t k, uint32_t n_full)
{
	uint32_t x, y, b = E2E_SMALL_BOX;

	if (n_full == 0)
		n_full = 1;
	e2e_pattern_rgb(rgb, w, h, k < n_full ? k : n_full - 1);
	if (k < n_full || w < b || h < b)
		return;
	e2e_small_box_pos(w, h, k - n_full, &x, &y);
	fill_rect(rgb, w, x, y, b, b, 250, 250, 250);
	fill_rect(rgb, w, x + 4, y + 4, b - 8, b - 8, (uint8_t)(k * 37), 20, (uint8_t)(255 - k * 37));
}

size_t e2e_frame_size(uint32_t format, uint32_t h, uint32_t stride)
{
	switch (format) {
	case E2E_FMT_XR24:
		return (size_t)stride * h;
	case E2E_FMT_NV12:
		return (size_t)stride * h + (size_t)stride * ((h + 1) / 2);
	default:
		return 0;
	}
}

uint32_t e2e_min_stride(uint32_t format, uint32_t w)
{
	return format == E2E_FMT_NV12 ? w : 4 * w;
}

void e2e_rgb_to_xr24(const uint8_t *rgb, uint32_t w, uint32_t h, uint8_t *dst, uint32_t stride)
{
	for (uint32_t y = 0; y < h; y++) {
		const uint8_t *s = rgb + (size_t)y * w * 3;
		uint8_t *d = dst + (size_t)y * stride;

		for (uint32_t x = 0; x < w; x++, s += 3, d += 4) {
			d[0] = s[2];
			d[1] = s[1];
			d[2] = s[0];
			d[3] = 0xFF;
		}
	}
}

static uint8_t clamp8(int v)
{
	return v < 0 ? 0 : v > 255 ? 255 : (uint8_t)v;
}

void e2e_rgb_to_nv12(const uint8_t *rgb, uint32_t w, uint32_t h, uint8_t *dst, uint32_t stride)
{
	uint8_t *uv = dst + (size_t)stride * h;

	/* 8-bit fixed point BT.601 limited range (coefficients x 256). */
	for (uint32_t y = 0; y < h; y++) {
		const uint8_t *s = rgb + (size_t)y * w * 3;
		uint8_t *d = dst + (size_t)y * stride;

		for (uint32_t x = 0; x < w; x++, s += 3)
			d[x] = clamp8(((66 * s[0] + 129 * s[1] + 25 * s[2] + 128) >> 8) + 16);
	}
	for (uint32_t cy = 0; cy < (h + 1) / 2; cy++) {
		uint8_t *d = uv + (size_t)cy * stride;

		for (uint32_t cx = 0; cx < (w + 1) / 2; cx++) {
			int r = 0, g = 0, b = 0, n = 0;

			for (uint32_t y = 2 * cy; y < 2 * cy + 2 && y < h; y++) {
				for (uint32_t x = 2 * cx; x < 2 * cx + 2 && x < w; x++) {
					const uint8_t *s = rgb + ((size_t)y * w + x) * 3;

					r += s[0];
					g += s[1];
					b += s[2];
					n++;
				}
			}
			/* Average with rounding, then convert. */
			r = (r + n / 2) / n;
			g = (g + n / 2) / n;
			b = (b + n / 2) / n;
			d[2 * cx] = clamp8(((-38 * r - 74 * g + 112 * b + 128) >> 8) + 128);
			d[2 * cx + 1] = clamp8(((112 * r - 94 * g - 18 * b + 128) >> 8) + 128);
		}
	}
}

uint32_t e2e_format_parse(const char *s)
{
	if (!strcmp(s, "XR24"))
		return E2E_FMT_XR24;
	if (!strcmp(s, "NV12"))
		return E2E_FMT_NV12;
	return 0;
}

const char *e2e_format_name(uint32_t format)
{
	return format == E2E_FMT_XR24 ? "XR24" : format == E2E_FMT_NV12 ? "NV12" : "????";
}

void e2e_cursor_px(uint32_t x, uint32_t y, uint8_t bgra[4])
{
	/* saturated and far from a console's black and grey */
	bgra[0] = (uint8_t)(200 - y);     /* B */
	bgra[1] = (uint8_t)(40 + 2 * y);  /* G */
	bgra[2] = (uint8_t)(255 - 2 * x); /* R */
	bgra[3] = 255;
}

void e2e_cursor_at(uint32_t i, uint32_t *x, uint32_t *y)
{
	static const uint32_t at[E2E_CURSOR_MOVES][2] = { { 100, 80 }, { 400, 240 }, { 200, 360 } };
	*x = at[i % E2E_CURSOR_MOVES][0];
	*y = at[i % E2E_CURSOR_MOVES][1];
}
