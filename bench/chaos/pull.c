/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * A chaotic pull client: FRAME_REQUESTs with pixels, as a guest encoder sends
 * them. kind 1 speaks v1 (no HELLO, the deployed guest's formats), kind 2
 * says HELLO and uses any format the daemon offers, sometimes with a
 * CONFIG_REQ first. Each connection starts at a random size (16..352 x
 * 16..288, even, stride tight or padded) and format, keeps 1..3 frames in
 * flight, and now and then changes size or format mid-stream, asks for a
 * keyframe (KEYFRAME_REQ or force_keyframe); it ends with a close, a reset or
 * a half-close after which every reply owed must still arrive.
 *
 * Checked on every reply: in order (pts), an IDR where one is due (first
 * frame, new size, keyframe asked for), decoded with errors fatal, the
 * picture of the size sent and close to the frame sent (Y PSNR against the
 * test pattern's independent reference conversion).
 */
#include <errno.h>
#include <stdio.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "chaos.h"
#include "hfe/client.h"
#include "hfe/wire.h"
#include "raw_peer.h"
#include "test_util.h"

#define MAX_INFLIGHT 3
#define MIN_PSNR_Y 20.0 /* a wrong or broken picture is far below; an IDR squeezed into a one-frame VBV at 1 Mbit/s reaches ~23 */
#define SESSION_ID 1

struct owed {
	bool config; /* a CONFIG_RESP (v2), not a frame */
	uint32_t no, w, h;
	int64_t pts;
	bool must_idr;
	enum chaos_sample timed; /* S_COUNT: not timed */
	double t_sent;
};

struct pull {
	struct actor *a;
	struct hfe_client *c;
	bool v2;
	struct tu_decoder *dec;
	struct owed q[MAX_INFLIGHT + 2];
	unsigned head, n;
	uint32_t fmts[HFE_HELLO_MAX_FORMATS];
	unsigned n_fmts;
};

static const uint32_t v1_formats[] = { HFE_FMT_XRGB8888, HFE_FMT_ARGB8888, HFE_FMT_ABGR8888,
				       HFE_FMT_NV12 };

static void check_frame(struct pull *p, const struct owed *o, const struct hfe_msg *m)
{
	const uint8_t *au;
	uint32_t len;
	size_t pos = 0;

	atomic_fetch_add(&chaos_dec.aus, 1);
	if (m->u.frame_resp.pts != o->pts) {
		chaos_fail(p->a->name, "reply pts %lld, expected %lld (frame %u)",
			   (long long)m->u.frame_resp.pts, (long long)o->pts, o->no);
		return;
	}
	if (!hfe_nal_next(m, &pos, &au, &len)) {
		chaos_fail(p->a->name, "frame %u: a reply without an access unit", o->no);
		return;
	}
	atomic_fetch_add(&chaos_dec.bytes, len);
	if (o->must_idr && !m->u.frame_resp.is_keyframe)
		chaos_fail(p->a->name, "frame %u (%ux%u): an IDR was due, got a P frame", o->no,
			   o->w, o->h);
	if (!p->dec) {
		if (!m->u.frame_resp.is_keyframe) {
			chaos_fail(p->a->name, "frame %u: the stream starts with a P frame", o->no);
			return;
		}
		p->dec = tu_decoder_new();
		REQUIRE(p->dec);
	}
	if (o->timed != S_COUNT)
		sample_add(o->timed, chaos_ms() - o->t_sent);

	struct tu_yuv pic, ref;
	int r = tu_decoder_decode(p->dec, au, len, &pic, NULL);
	if (r < 0) {
		atomic_fetch_add(&chaos_dec.corrupted, 1);
		chaos_fail(p->a->name, "frame %u (%ux%u, %u bytes) does not decode", o->no, o->w,
			   o->h, len);
		tu_decoder_free(p->dec);
		p->dec = NULL;
		return;
	}
	if (r == 0) {
		chaos_fail(p->a->name, "frame %u: no picture from a low-delay decoder", o->no);
		return;
	}
	atomic_fetch_add(&chaos_dec.checked, 1);
	if (pic.w != o->w || pic.h != o->h) {
		chaos_fail(p->a->name, "frame %u: picture %ux%u, sent %ux%u", o->no, pic.w, pic.h,
			   o->w, o->h);
	} else {
		double psnr[3];
		ref_yuv(o->w, o->h, o->no, &ref);
		tu_psnr_yuv(&pic, &ref, psnr);
		atomic_fetch_add(&chaos_dec.compared, 1);
		if (psnr[0] < MIN_PSNR_Y)
			chaos_fail(p->a->name, "frame %u (%ux%u): Y PSNR %.1f dB < %.0f", o->no, o->w,
				   o->h, psnr[0], MIN_PSNR_Y);
		tu_yuv_free(&ref);
	}
	tu_yuv_free(&pic);
}

/* Wait for the oldest owed reply. 0, or -1 when the connection ended. */
static int take_reply(struct pull *p, bool eof_ok)
{
	struct hfe_msg m;
	struct hfe_err err = { 0 };

	for (;;) {
		int r = hfe_client_recv(p->c, &m, 10000, &err);
		if (r <= 0) {
			if (chaos_running() && !(eof_ok && r < 0 && p->n == 0))
				chaos_fail(p->a->name, "%u replies owed: %s", p->n,
					   r == 0 ? "none for 10 s" : err.msg);
			return -1;
		}
		if (m.hdr.type == HFE_MSG_ERROR) {
			chaos_fail(p->a->name, "ERROR %d: %s", m.u.error.code, m.u.error.message);
			continue;
		}
		if (m.hdr.type == HFE_MSG_PONG)
			continue;
		if (!p->n) {
			chaos_fail(p->a->name, "%s without a request", hfe_msg_type_name(m.hdr.type));
			continue;
		}
		struct owed *o = &p->q[p->head];
		if (o->config ? m.hdr.type != HFE_MSG_CONFIG_RESP
			      : m.hdr.type != HFE_MSG_FRAME_RESPONSE)
			chaos_fail(p->a->name, "%s, expected %s", hfe_msg_type_name(m.hdr.type),
				   o->config ? "CONFIG_RESP" : "FRAME_RESPONSE");
		else if (!o->config)
			check_frame(p, o, &m);
		p->head = (p->head + 1) % (MAX_INFLIGHT + 2);
		p->n--;
		return 0;
	}
}

static void owe(struct pull *p, const struct owed *o)
{
	REQUIRE(p->n < MAX_INFLIGHT + 2);
	p->q[(p->head + p->n) % (MAX_INFLIGHT + 2)] = *o;
	p->n++;
}

static uint32_t pick_format(struct pull *p)
{
	struct rng *r = &p->a->rng;
	if (p->v2 && p->n_fmts)
		return p->fmts[rng_range(r, 0, p->n_fmts - 1)];
	return v1_formats[rng_range(r, 0, sizeof(v1_formats) / sizeof(v1_formats[0]) - 1)];
}

static uint32_t pick_stride(struct rng *r, uint32_t fmt, uint32_t w)
{
	uint32_t bpp = tu_bpp(fmt);
	uint32_t tight = w * bpp;
	return rng_pct(r, 50) ? tight : tight + rng_range(r, 1, 16) * 4;
}

static void connection_end(struct pull *p)
{
	tu_decoder_free(p->dec);
	p->dec = NULL;
	hfe_client_close(p->c);
	p->c = NULL;
	p->n = p->head = 0;
}

static void session(struct pull *p, const char *addr)
{
	struct rng *r = &p->a->rng;
	struct hfe_err err = { 0 };
	struct hfe_hello_resp caps;
	double t0 = chaos_ms();

	p->c = hfe_client_connect(addr, 5000, &err);
	if (!p->c) {
		chaos_fail(p->a->name, "connect %s: %s", addr, err.msg);
		chaos_sleep(500);
		return;
	}
	ev_add(EV_PULL_CONNECT, 1);
	p->n_fmts = 0;
	if (p->v2) {
		if (hfe_client_hello(p->c, p->a->name, &caps, 5000, &err) < 0) {
			chaos_fail(p->a->name, "HELLO: %s", err.msg);
			connection_end(p);
			return;
		}
		for (unsigned i = 0; i < caps.format_count; i++)
			if (tu_bpp(caps.formats[i]))
				p->fmts[p->n_fmts++] = caps.formats[i];
		if (rng_pct(r, 50)) {
			struct hfe_config_req cfg = { .bitrate = rng_range(r, 10, 60) * 100000u,
						      .fps_num = 30, .fps_den = 1, .profile = 66 };
			if (hfe_client_send_config(p->c, SESSION_ID, &cfg, 5000, &err) < 0) {
				chaos_fail(p->a->name, "CONFIG_REQ: %s", err.msg);
				connection_end(p);
				return;
			}
			owe(p, &(struct owed){ .config = true, .timed = S_COUNT });
		}
	}

	uint32_t w = rng_range(r, 8, 176) * 2, h = rng_range(r, 8, 144) * 2;
	uint32_t fmt = pick_format(p), stride = pick_stride(r, fmt, w);
	unsigned inflight = rng_range(r, 1, MAX_INFLIGHT);
	unsigned frames = rng_range(r, 10, 400);
	bool due_idr = true, keyframe_req = false;
	enum chaos_sample timed = S_PULL_RECONNECT_IDR;
	double t_timed = t0;

	for (unsigned no = 0; no < frames && chaos_running(); no++) {
		if (no > 0 && rng_pct(r, 4)) {
			uint32_t nw = rng_range(r, 8, 176) * 2, nh = rng_range(r, 8, 144) * 2;
			stride = pick_stride(r, fmt, nw);
			/* The same size again (1 in 23,000) is no resize: no IDR due. */
			if (nw != w || nh != h) {
				due_idr = true;
				timed = S_PULL_RESIZE_IDR;
				t_timed = chaos_ms();
				ev_add(EV_PULL_RESIZE, 1);
			}
			w = nw;
			h = nh;
		}
		if (no > 0 && rng_pct(r, 4)) {
			fmt = pick_format(p);
			stride = pick_stride(r, fmt, w);
			ev_add(EV_PULL_FORMAT, 1);
		}
		bool force = false;
		if (no > 0 && rng_pct(r, 3)) {
			ev_add(EV_PULL_KEYFRAME, 1);
			if (rng_pct(r, 50)) {
				force = true;
			} else {
				struct hfe_msg k = { .hdr = { .type = HFE_MSG_KEYFRAME_REQ,
							      .session_id = SESSION_ID } };
				if (hfe_client_send_msg(p->c, &k, 5000, &err) < 0) {
					chaos_fail(p->a->name, "KEYFRAME_REQ: %s", err.msg);
					break;
				}
				keyframe_req = true;
			}
		}

		struct hfe_frame_request fr = { .width = w, .height = h, .format = fmt,
						.stride = stride, .pts = (int64_t)no * 33333333,
						.duration = 33333333, .force_keyframe = force };
		size_t len = tu_frame_size(fmt, w, h, stride);
		uint8_t *px = tu_pattern_frame(fmt, w, h, stride, no);
		if (timed == S_PULL_RESIZE_IDR)
			t_timed = chaos_ms();
		int rc = hfe_client_send_frame(p->c, SESSION_ID, &fr, px, len, 5000, &err);
		free(px);
		if (rc < 0) {
			chaos_fail(p->a->name, "FRAME_REQUEST %u (%ux%u %s): %s", no, w, h,
				   tu_fmt_name(fmt), err.msg);
			connection_end(p);
			return;
		}
		owe(p, &(struct owed){ .no = no, .w = w, .h = h, .pts = fr.pts,
				       .must_idr = due_idr || force || keyframe_req,
				       .timed = due_idr ? timed : S_COUNT, .t_sent = t_timed });
		due_idr = keyframe_req = false;
		while (p->n >= inflight)
			if (take_reply(p, false) < 0) {
				connection_end(p);
				return;
			}
		chaos_sleep((int)rng_range(r, 5, 50));
	}

	unsigned how = rng_range(r, 0, 2);
	int fd = hfe_client_fd(p->c);
	if (how == 1) {
		struct linger lg = { .l_onoff = 1, .l_linger = 0 };
		setsockopt(fd, SOL_SOCKET, SO_LINGER, &lg, sizeof(lg));
	} else if (how == 2 && chaos_running()) {
		/* Every reply owed must still come, then EOF. */
		if (shutdown(fd, SHUT_WR) < 0)
			chaos_fail(p->a->name, "shutdown: %s", strerror(errno));
		while (p->n && take_reply(p, false) == 0)
			;
		struct hfe_msg m;
		int rc = hfe_client_recv(p->c, &m, 5000, &err);
		if (rc >= 0 && chaos_running())
			chaos_fail(p->a->name, "half-closed: %s instead of EOF",
				   rc ? hfe_msg_type_name(m.hdr.type) : "nothing for 5 s");
	}
	connection_end(p);
}

void *pull_main(void *arg)
{
	struct pull p = { .a = arg };
	const char *addr = p.a->id % 2 ? chaos_cfg.addr : chaos_cfg.tcp_addr;

	p.v2 = p.a->kind == 2;
	chaos_sleep((int)rng_range(&p.a->rng, 0, 1000));
	while (chaos_running()) {
		session(&p, addr);
		chaos_sleep((int)rng_range(&p.a->rng, 0, 300));
	}
	return NULL;
}
