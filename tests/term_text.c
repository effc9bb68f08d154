/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* A terminal full of procedurally drawn text on a desktop (term_text.h). */
#include "term_text.h"

#include <stdbool.h>
#include <stdio.h>
#include <string.h>

#define GLYPHS 95 /* 0 is the space */
#define SUPER 4   /* supersampling per axis for the strokes' coverage */
#define PANEL_H 32
#define TITLE_H 28

static uint8_t glyph_cov[GLYPHS][TT_CELL_H][TT_CELL_W]; /* 0..255 ink coverage */
static bool glyphs_ready;

/* A small integer hash (the same inputs give the same text everywhere). */
static uint32_t mix(uint32_t a, uint32_t b)
{
	uint32_t h = a * 0x9e3779b1u ^ (b + 0x7f4a7c15u + (a << 6) + (a >> 2));
	h ^= h >> 15;
	h *= 0x2c1b3c6du;
	h ^= h >> 12;
	h *= 0x297a2d39u;
	return h ^ (h >> 15);
}

/* Squared distance from (px, py) to the segment (ax, ay)-(bx, by). */
static float seg_dist2(float px, float py, float ax, float ay, float bx, float by)
{
	float dx = bx - ax, dy = by - ay, len2 = dx * dx + dy * dy;
	float t = len2 > 0 ? ((px - ax) * dx + (py - ay) * dy) / len2 : 0;
	t = t < 0 ? 0 : t > 1 ? 1 : t;
	float ex = ax + t * dx - px, ey = ay + t * dy - py;
	return ex * ex + ey * ey;
}

/* Each glyph: two to four strokes between points of a 3 x 4 grid inside the
 * cell (left/middle/right, ascender/x-height/middle/baseline), anti-aliased. */
static void make_glyphs(void)
{
	static const float gx[3] = { 1.5f, 4.5f, 7.5f }, gy[4] = { 3.5f, 7.0f, 10.5f, 14.0f };
	const float half_width2 = 0.7f * 0.7f;
	for (uint32_t g = 1; g < GLYPHS; g++) {
		uint32_t h = mix(g, 17);
		int strokes = 2 + (int)(h % 3);
		float seg[4][4];
		for (int s = 0; s < strokes; s++) {
			uint32_t r = mix(g, (uint32_t)s + 100);
			uint32_t a = r % 12, b = (r >> 8) % 12;
			if (a == b)
				b = (b + 5) % 12;
			seg[s][0] = gx[a % 3], seg[s][1] = gy[a / 3];
			seg[s][2] = gx[b % 3], seg[s][3] = gy[b / 3];
		}
		for (int y = 0; y < TT_CELL_H; y++) {
			for (int x = 0; x < TT_CELL_W; x++) {
				int hits = 0;
				for (int sy = 0; sy < SUPER; sy++) {
					for (int sx = 0; sx < SUPER; sx++) {
						float px = x + (sx + 0.5f) / SUPER;
						float py = y + (sy + 0.5f) / SUPER;
						for (int s = 0; s < strokes; s++) {
							if (seg_dist2(px, py, seg[s][0], seg[s][1],
								      seg[s][2], seg[s][3]) <=
							    half_width2) {
								hits++;
								break;
							}
						}
					}
				}
				glyph_cov[g][y][x] = (uint8_t)(hits * 255 / (SUPER * SUPER));
			}
		}
	}
	glyphs_ready = true;
}

void tt_window(uint32_t w, uint32_t h, uint32_t ww, uint32_t wh, struct hfe_rect *r)
{
	uint32_t x0 = w / 16, y0 = PANEL_H + h / 24;
	if (ww && wh && ww + 2 <= w && wh + PANEL_H + 2 <= h) {
		x0 = (w - ww) / 2;
		y0 = PANEL_H + (h - PANEL_H - wh) / 2;
		*r = (struct hfe_rect){ x0, y0, ww, wh };
		return;
	}
	*r = (struct hfe_rect){ x0, y0, w - 2 * x0, h - y0 - h / 24 };
}

void tt_text_area(const struct hfe_rect *win, struct hfe_rect *r)
{
	*r = (struct hfe_rect){ win->x + 6, win->y + TITLE_H + 4, win->w - 12,
				win->h - TITLE_H - 10 };
}

static void put(uint8_t *bgrx, uint32_t w, uint32_t x, uint32_t y, uint32_t rgb)
{
	uint8_t *p = bgrx + ((size_t)y * w + x) * 4;
	p[0] = (uint8_t)rgb, p[1] = (uint8_t)(rgb >> 8), p[2] = (uint8_t)(rgb >> 16), p[3] = 0xff;
}

static void fill(uint8_t *bgrx, uint32_t w, struct hfe_rect r, uint32_t rgb)
{
	for (uint32_t y = r.y; y < r.y + r.h; y++)
		for (uint32_t x = r.x; x < r.x + r.w; x++)
			put(bgrx, w, x, y, rgb);
}

static uint32_t blend(uint32_t bg, uint32_t fg, uint8_t a)
{
	uint32_t out = 0;
	for (int sh = 0; sh < 24; sh += 8) {
		uint32_t b = (bg >> sh) & 0xff, f = (fg >> sh) & 0xff;
		out |= ((b * (255u - a) + f * a + 127) / 255) << sh;
	}
	return out;
}

/* Glyph g at (x, y), clipped to the rectangle clip. */
static void draw_glyph(uint8_t *bgrx, uint32_t w, uint32_t x, uint32_t y, uint32_t g,
		       uint32_t fg, uint32_t bg, struct hfe_rect clip)
{
	for (uint32_t gy = 0; gy < TT_CELL_H && y + gy < clip.y + clip.h; gy++)
		for (uint32_t gx = 0; gx < TT_CELL_W && x + gx < clip.x + clip.w; gx++)
			if (glyph_cov[g][gy][gx])
				put(bgrx, w, x + gx, y + gy, blend(bg, fg, glyph_cov[g][gy][gx]));
}

/* Line n of the terminal's text: a shell session's mix of numbers (seq),
 * prose-like words, long listing lines and empty lines; some words coloured. */
static void draw_line(uint8_t *bgrx, uint32_t w, uint32_t x0, uint32_t y0, uint32_t n,
		      struct hfe_rect clip, uint32_t bg)
{
	static const uint32_t colours[] = { 0x5c8cff, 0x4ec94e, 0xd7c040, 0xe05050 };
	uint32_t cols = clip.w / TT_CELL_W, kind = mix(n, 1) % 10, len;
	if (kind == 0)
		return; /* empty */
	len = kind < 4	 ? 1 + mix(n, 2) % 4		     /* a number */
	      : kind < 8 ? 8 + mix(n, 3) % (cols * 3 / 5 + 1) /* words */
			 : cols - 1 - mix(n, 4) % 6;	     /* a listing */
	len = len < cols ? len : cols;
	uint32_t fg = 0xd0d0d0, word = 0;
	for (uint32_t c = 0; c < len; c++) {
		uint32_t r = mix(n * 131u + c, 5);
		if (kind >= 4 && c > 0 && r % 7 == 0) { /* a space ends a word */
			word++;
			uint32_t wr = mix(n, word + 9);
			fg = wr % 6 == 0 ? colours[(wr >> 4) % 4] : 0xd0d0d0;
			continue;
		}
		uint32_t g = kind < 4 ? 16 + r % 10 : 1 + r % (GLYPHS - 1);
		draw_glyph(bgrx, w, x0 + c * TT_CELL_W, y0, g, fg, bg, clip);
	}
}

/* Line n of `seq`: the decimal number n + 1, glyphs 16..25 being the digits. */
static void draw_number(uint8_t *bgrx, uint32_t w, uint32_t x0, uint32_t y0, uint32_t n,
			struct hfe_rect clip, uint32_t bg)
{
	char digits[12];
	int len = snprintf(digits, sizeof(digits), "%u", n + 1);
	for (int c = 0; c < len; c++)
		draw_glyph(bgrx, w, x0 + (uint32_t)c * TT_CELL_W, y0,
			   16 + (uint32_t)(digits[c] - '0'), 0xd0d0d0, bg, clip);
}

/* An arrow pointer, 12 x 19, tip at (x, y): white, a black outline. */
static void draw_pointer(uint8_t *bgrx, uint32_t w, uint32_t x, uint32_t y)
{
	for (uint32_t dy = 0; dy < 19; dy++) {
		uint32_t width = dy < 12 ? dy + 1 : dy < 16 ? 5 : 3;
		uint32_t x0 = dy < 12 ? 0 : dy < 16 ? 0 : 4 + (dy - 16);
		for (uint32_t dx = x0; dx < x0 + width && dx < 12; dx++) {
			bool edge = dx == x0 || dx + 1 == x0 + width || dy == 18 ||
				    (dy == 11 && dx >= 5);
			put(bgrx, w, x + dx, y + dy, edge ? 0x000000 : 0xffffff);
		}
	}
}

void tt_draw(uint8_t *bgrx, uint32_t w, uint32_t h, const struct tt_term *t,
	     uint32_t first_line)
{
	if (!glyphs_ready)
		make_glyphs();
	/* background: a vertical blue-grey gradient; a dark panel on top */
	for (uint32_t y = 0; y < h; y++) {
		uint32_t f = y * 255 / h;
		uint32_t c = ((40 + f * 40 / 255) << 16) | ((60 + f * 60 / 255) << 8) |
			     (110 + f * 60 / 255);
		for (uint32_t x = 0; x < w; x++)
			put(bgrx, w, x, y, c);
	}
	fill(bgrx, w, (struct hfe_rect){ 0, 0, w, PANEL_H }, 0x303030);
	for (uint32_t i = 0; i < 3; i++)
		fill(bgrx, w, (struct hfe_rect){ 8 + i * 36, 4, 24, 24 }, 0x8090a0 + i * 0x101000);
	struct hfe_rect win = t->win, area;
	tt_text_area(&win, &area);
	fill(bgrx, w, win, 0x707070); /* border */
	fill(bgrx, w, (struct hfe_rect){ win.x + 1, win.y + 1, win.w - 2, TITLE_H }, 0xdcdcdc);
	struct hfe_rect title = { win.x + 12, win.y + 6, win.w - 24, TT_CELL_H };
	for (uint32_t c = 0; c < 24; c++)
		draw_glyph(bgrx, w, title.x + c * TT_CELL_W, title.y, 1 + mix(c, 77) % 94, 0x202020,
			   0xdcdcdc, title);
	uint32_t bg = 0x101010;
	fill(bgrx, w, (struct hfe_rect){ win.x + 1, win.y + TITLE_H + 1, win.w - 2,
					 win.h - TITLE_H - 2 },
	     bg);
	for (uint32_t row = 0; row * TT_CELL_H < area.h; row++) {
		uint32_t y = area.y + row * TT_CELL_H;
		if (t->text == TT_SEQ)
			draw_number(bgrx, w, area.x, y, first_line + row, area, bg);
		else
			draw_line(bgrx, w, area.x, y, first_line + row, area, bg);
	}
	if (t->pointer)
		draw_pointer(bgrx, w, area.x + area.w / 2, area.y + area.h / 2);
}

void tt_bgrx_to_rgb(const uint8_t *bgrx, uint32_t w, uint32_t h, uint8_t *rgb)
{
	for (size_t i = 0; i < (size_t)w * h; i++) {
		rgb[3 * i] = bgrx[4 * i + 2];
		rgb[3 * i + 1] = bgrx[4 * i + 1];
		rgb[3 * i + 2] = bgrx[4 * i];
	}
}
