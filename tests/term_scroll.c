/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* A terminal scrolled through a real scanout stream (term_scroll.h). */
#include "term_scroll.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "hfe/stream.h"
#include "test_util.h"

static int cmp_double(const void *a, const void *b)
{
	double x = *(const double *)a, y = *(const double *)b;
	return (x > y) - (x < y);
}

/* The next access unit within 5 s (scaled), or NULL. */
static struct hfe_stream_au *wait_au(struct hfe_stream *s, int ms)
{
	struct hfe_stream_au *au = NULL;
	ms = (int)(ms * tu_time_scale());
	for (int i = 0; i < ms && hfe_stream_poll(s, &au) != 1; i++)
		nanosleep(&(struct timespec){ 0, 1000000 }, NULL);
	return au;
}

/* Y PSNR of the decoded picture against the source, over the text area. */
static double area_psnr(const struct tu_yuv *pic, const uint8_t *bgrx, uint8_t *rgb, uint32_t w,
			uint32_t h, const struct hfe_rect *win)
{
	struct tu_yuv truth;
	struct hfe_rect a;
	tt_bgrx_to_rgb(bgrx, w, h, rgb);
	tu_ref_rgb_to_yuv(rgb, w, h, &truth);
	tt_text_area(win, &a);
	size_t off = (size_t)a.y * w + a.x;
	double p = tu_psnr_plane(pic->y + off, pic->w, truth.y + off, truth.w, a.w, a.h);
	tu_yuv_free(&truth);
	return p;
}

/* The new-text-only step: into sent (the picture sent last) goes the band of
 * the text area where drawn (the scrolled picture) shows its new lines. */
static void put_new_lines(uint8_t *sent, const uint8_t *drawn, uint32_t w,
			  const struct hfe_rect *win, uint32_t lines)
{
	struct hfe_rect a;
	tt_text_area(win, &a);
	uint32_t band = lines * TT_CELL_H < a.h ? lines * TT_CELL_H : a.h;
	for (uint32_t y = a.y + a.h - band; y < a.y + a.h; y++) {
		size_t off = ((size_t)y * w + a.x) * 4;
		memcpy(sent + off, drawn + off, (size_t)a.w * 4);
	}
}

int ts_run(const struct ts_setup *u, struct ts_result *out)
{
	struct hfe_stream_params sp = { .max_fps = 240 };
	struct hfe_err err;
	uint32_t w = u->w, h = u->h;
	int steps = u->steps;
	hfe_encoder_params_default(&sp.enc);
	if (u->bitrate)
		sp.enc.bitrate = u->bitrate;
	sp.enc.threads = u->threads;
	sp.no_patch_frames = u->no_patch || u->new_text_only;
	if (u->preset && u->preset[0])
		snprintf(sp.enc.preset, sizeof(sp.enc.preset), "%s", u->preset);
	memset(out, 0, sizeof(*out));

	struct hfe_stream *s = hfe_stream_new(&sp, &err);
	struct tu_decoder *dec = tu_decoder_new();
	uint8_t *bgrx = malloc((size_t)w * h * 4), *rgb = malloc((size_t)w * h * 3);
	uint8_t *sent = malloc((size_t)w * h * 4); /* what the stream got last */
	double *bytes = calloc((size_t)steps, sizeof(double));
	if (!s || !dec || !bgrx || !rgb || !sent || !bytes || hfe_stream_resize(s, w, h, &err) < 0) {
		fprintf(stderr, "term_scroll: setup failed\n");
		return -1;
	}
	hfe_stream_set_consumers(s, 1);
	struct tt_term term = { .text = u->text, .pointer = u->pointer };
	tt_window(w, h, u->ww, u->wh, &term.win);
	struct hfe_rect win = term.win;
	struct tu_yuv pic = { 0 };

	tt_draw(sent, w, h, &term, 0);
	hfe_stream_update(s, 0, 0, w, h, sent, w * 4, HFE_FMT_XRGB8888);
	struct hfe_stream_au *au = wait_au(s, 5000);
	if (!au || tu_decoder_decode(dec, au->data, au->size, &pic, NULL) != 1) {
		fprintf(stderr, "term_scroll: no first picture\n");
		return -1;
	}
	out->idr_bytes = au->size;
	hfe_stream_au_unref(au);
	out->psnr_min = INFINITY;

	struct hfe_stream_stats st0, st1;
	hfe_stream_get_stats(s, &st0);
	double psnr_sum = 0, cpu_sum = 0;
	for (int k = 1; k <= steps; k++) {
		tt_draw(bgrx, w, h, &term, (uint32_t)k * u->lines);
		if (u->new_text_only)
			put_new_lines(sent, bgrx, w, &win, u->lines);
		else
			memcpy(sent, bgrx, (size_t)w * h * 4);
		double cpu0 = tu_proc_cpu_ms(getpid(), 0);
		/* a terminal redraws its window; the stream narrows it to the changed rows */
		hfe_stream_update(s, win.x, win.y, win.w, win.h,
				  sent + ((size_t)win.y * w + win.x) * 4, w * 4, HFE_FMT_XRGB8888);
		au = wait_au(s, 5000);
		cpu_sum += tu_proc_cpu_ms(getpid(), 0) - cpu0;
		int n = 0;
		while (au) {
			n++;
			bytes[k - 1] += (double)au->size;
			out->idr_steps += au->keyframe;
			tu_yuv_free(&pic);
			if (tu_decoder_decode(dec, au->data, au->size, &pic, NULL) != 1)
				out->errors++;
			hfe_stream_au_unref(au);
			au = wait_au(s, 20); /* more than one for this step? */
		}
		if (n == 0) {
			out->errors++;
			continue;
		}
		out->aus_per_step += n;
		double p = area_psnr(&pic, sent, rgb, w, h, &win);
		psnr_sum += p;
		out->psnr_min = p < out->psnr_min ? p : out->psnr_min;
	}
	hfe_stream_get_stats(s, &st1);
	uint64_t frames = st1.frames_encoded - st0.frames_encoded;
	uint64_t patched = st1.frames_patched - st0.frames_patched;
	double sum = 0;
	for (int k = 0; k < steps; k++) {
		sum += bytes[k];
		out->bytes_max = bytes[k] > out->bytes_max ? bytes[k] : out->bytes_max;
	}
	qsort(bytes, (size_t)steps, sizeof(double), cmp_double);
	out->bytes_mean = sum / steps;
	out->bytes_p50 = bytes[steps / 2];
	out->aus_per_step /= steps;
	out->patches = (double)patched;
	out->enc_ms = frames > patched ? (double)(st1.encoder_us_total - st0.encoder_us_total) /
						 1000.0 / (double)(frames - patched)
				       : 0;
	out->cpu_ms = cpu_sum / steps;
	out->psnr_mean = psnr_sum / steps;

	tu_yuv_free(&pic);
	hfe_stream_free(s);
	tu_decoder_free(dec);
	free(bgrx);
	free(sent);
	free(rgb);
	free(bytes);
	return 0;
}

