/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * Integration test against the real daemon ($HFE_DAEMON), started here with a
 * unix and a TCP listener. The protocol is spoken over raw sockets by the
 * peer of raw_peer.h, written from docs/protocol.md (not wire.c), so a layout
 * bug in the library cannot hide behind the same bug in the test.
 *
 * Every returned access unit is checked (pts, keyframe flag, NAL layout),
 * decoded with libavcodec and compared against the independent BT.601
 * reference of the frame that was sent (PSNR).
 */
#include <errno.h>
#include <inttypes.h>
#include <signal.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <sys/wait.h>
#include <unistd.h>

#include "hfe/wire.h"
#include "raw_peer.h"
#include "test_util.h"

#define W 320
#define H 240
#define NFRAMES 60
#define IO_MS 30000 /* any single wait; generous for sanitizer builds */
#define FRAME_NS 33333333LL
#define PTS0 1000000000LL
#define MIN_PSNR_Y 35.0
#define MIN_PSNR_UV 30.0

/* Limits the main daemon is started with, so HELLO_RESP can be checked. */
#define D_MAX_W 4000
#define D_MAX_H 3000
#define D_MAX_PAYLOAD (64u << 20)
#define D_MAX_INFLIGHT 6

static const uint32_t all_formats[] = { HFE_FMT_XRGB8888, HFE_FMT_ARGB8888, HFE_FMT_ABGR8888,
					HFE_FMT_XBGR8888, HFE_FMT_NV12,     HFE_FMT_I420 };
#define N_FORMATS (sizeof(all_formats) / sizeof(all_formats[0]))

static bool nul_terminated(const uint8_t *p, size_t n)
{
	return memchr(p, 0, n) != NULL;
}

/* ---- building messages ---- */

static int send_msg(struct tconn *c, uint8_t type, uint16_t sid, const uint8_t *body,
		    uint32_t len)
{
	uint8_t b[HFE_HEADER_SIZE + 64];

	REQUIRE(len <= 64);
	put_hdr(b, HFE_MAGIC, type, 0, sid, len);
	if (len)
		memcpy(b + HFE_HEADER_SIZE, body, len);
	return io_send(c, b, HFE_HEADER_SIZE + len, IO_MS);
}

static int send_u32_msg(struct tconn *c, uint8_t type, uint16_t sid, uint32_t v)
{
	uint8_t b[4];
	put32(b, v);
	return send_msg(c, type, sid, b, 4);
}

struct fspec {
	uint32_t fmt, w, h, stride;
};

/* Plane 0 stride with padding, so stride handling is exercised. */
static struct fspec fspec_of(uint32_t fmt, uint32_t w, uint32_t h)
{
	struct fspec f = { fmt, w, h, tu_bpp(fmt) == 4 ? w * 4 + 64 : w + 32 };
	return f;
}

static int64_t pts_of(int i)
{
	return PTS0 + (int64_t)i * FRAME_NS;
}

static void mk_frame_body(uint8_t *b, uint32_t resource, const struct fspec *f, int64_t pts,
			  uint8_t force_kf)
{
	struct frame_fields ff = { resource, f->w, f->h, f->fmt, f->stride, pts, FRAME_NS,
				   force_kf };

	put_frame_req(b, &ff);
}

/* A FRAME_REQUEST with the pattern's frame `no` as pixels; `tail` extra bytes
 * after the frame, as a guest sending its whole mapped buffer does. */
static int send_frame(struct tconn *c, uint16_t sid, const struct fspec *f, uint32_t no,
		      int64_t pts, bool force_kf, size_t tail)
{
	size_t fsz = tu_frame_size(f->fmt, f->w, f->h, f->stride);
	uint8_t *pix = tu_pattern_frame(f->fmt, f->w, f->h, f->stride, no);
	uint8_t b[HFE_HEADER_SIZE + HFE_FRAME_REQUEST_SIZE];
	int r;

	REQUIRE(pix);
	if (tail) {
		pix = realloc(pix, fsz + tail);
		REQUIRE(pix);
		memset(pix + fsz, 0x5a, tail);
	}
	put_hdr(b, HFE_MAGIC, HFE_MSG_FRAME_REQUEST, HFE_FLAG_PIXEL_DATA, sid,
		(uint32_t)(HFE_FRAME_REQUEST_SIZE + fsz + tail));
	mk_frame_body(b + HFE_HEADER_SIZE, 0, f, pts, force_kf);
	r = io_send(c, b, sizeof(b), IO_MS);
	if (r == 0)
		r = io_send(c, pix, fsz + tail, IO_MS);
	free(pix);
	return r;
}

static int send_config(struct tconn *c, uint16_t sid, uint32_t w, uint32_t h, uint32_t bitrate)
{
	/* profile: host default, level: auto, realtime */
	struct config_fields cf = { w, h, bitrate, 30, 1, 0, 0, 1 };
	uint8_t b[HFE_CONFIG_REQ_SIZE];

	put_config_req(b, &cf);
	return send_msg(c, HFE_MSG_CONFIG_REQ, sid, b, sizeof(b));
}

/* Print an unexpected reply (ERRORs with their text). */
static void show_unexpected(const char *what, const struct rmsg *m)
{
	if (m->type == HFE_MSG_ERROR && m->size == HFE_ERROR_SIZE) {
		m->p[HFE_ERROR_SIZE - 1] = 0;
		fprintf(stderr, "  %s: got ERROR %d: %s\n", what, (int32_t)get32(m->p),
			(const char *)m->p + 4);
	} else {
		fprintf(stderr, "  %s: got message type 0x%02x size %u\n", what, m->type, m->size);
	}
}

/* Receive one message of the given type (and exact size if size >= 0). */
static bool expect_msg(struct tconn *c, struct rmsg *m, uint8_t type, int64_t size,
		       const char *what)
{
	int r = recv_msg(c, m, IO_MS);

	CHECKF(r == 1, "%s: no reply (%s)", what, r == 0 ? "EOF" : "timeout/error");
	if (r != 1)
		return false;
	if (m->type != type) {
		show_unexpected(what, m);
		CHECKF(m->type == type, "%s: type 0x%02x, expected 0x%02x", what, m->type, type);
		rmsg_free(m);
		return false;
	}
	CHECKF(m->flags == 0, "%s: flags 0x%02x", what, m->flags);
	if (size >= 0 && m->size != (uint32_t)size) {
		CHECKF(m->size == (uint32_t)size, "%s: payload_size %u, expected %lld", what,
		       m->size, (long long)size);
		rmsg_free(m);
		return false;
	}
	return true;
}

/* Expect EOF (after the host's last message) within timeout_ms. */
static bool expect_eof(struct tconn *c, int timeout_ms, const char *what)
{
	struct rmsg m;
	int r;

	while ((r = recv_msg(c, &m, timeout_ms)) == 1) {
		if (m.type == HFE_MSG_ERROR)
			show_unexpected(what, &m);
		rmsg_free(&m);
		CHECKF(0, "%s: a message where EOF was expected", what);
	}
	CHECKF(r == 0, "%s: connection not closed within %d ms", what, timeout_ms);
	return r == 0;
}

/* ---- checking a stream of replies ---- */

struct vstream {
	char name[96];
	struct tu_decoder *dec;
	struct expect_queue pending; /* AUs given to the decoder, picture not out yet */
	int responses, pictures, keyframes;
	uint32_t last_w, last_h; /* size of the previous reply's frame, 0 at first */
	int sid;                 /* session_id the replies must carry, -1: not checked */
	double min_y, min_uv;
};

static void vs_init(struct vstream *vs, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

static void vs_init(struct vstream *vs, const char *fmt, ...)
{
	va_list ap;

	memset(vs, 0, sizeof(*vs));
	va_start(ap, fmt);
	vsnprintf(vs->name, sizeof(vs->name), fmt, ap);
	va_end(ap);
	vs->dec = tu_decoder_new();
	REQUIRE(vs->dec);
	vs->min_y = vs->min_uv = 100.0;
	vs->sid = -1;
}

/* A decoded picture: compare with the oldest frame given to the decoder. */
static void vs_picture(struct vstream *vs, struct tu_yuv *pic)
{
	struct expect e;

	CHECKF(vs->pending.n > 0, "%s: decoder gave more pictures than access units", vs->name);
	if (!eq_pop(&vs->pending, &e)) {
		tu_yuv_free(pic);
		return;
	}
	vs->pictures++;

	CHECKF(pic->w == e.w && pic->h == e.h, "%s frame %u: decoded %ux%u, sent %ux%u", vs->name,
	       e.no, pic->w, pic->h, e.w, e.h);
	if (pic->w == e.w && pic->h == e.h) {
		struct tu_yuv ref;
		double ps[3];

		ref_yuv(e.w, e.h, e.no, &ref);
		REQUIRE(tu_psnr_yuv(&ref, pic, ps) == 0);
		CHECKF(ps[0] >= MIN_PSNR_Y, "%s frame %u: PSNR Y %.2f dB < %.1f", vs->name, e.no,
		       ps[0], MIN_PSNR_Y);
		CHECKF(ps[1] >= MIN_PSNR_UV && ps[2] >= MIN_PSNR_UV,
		       "%s frame %u: PSNR U %.2f V %.2f dB < %.1f", vs->name, e.no, ps[1], ps[2],
		       MIN_PSNR_UV);
		if (ps[0] < vs->min_y)
			vs->min_y = ps[0];
		if (ps[1] < vs->min_uv)
			vs->min_uv = ps[1];
		if (ps[2] < vs->min_uv)
			vs->min_uv = ps[2];
		tu_yuv_free(&ref);
	}
	tu_yuv_free(pic);
}

/*
 * Check a reply to frame e: a FRAME_RESPONSE with the frame's pts, one
 * Annex-B access unit filling the payload, SPS+PPS before every IDR, an IDR
 * at the start and after each size change; decode and compare.
 * Returns is_keyframe (0/1), or -1 if the reply is not a usable response.
 */
static int vs_response(struct vstream *vs, const struct rmsg *m, const struct expect *e,
		       struct tu_nals *nals_out)
{
	struct tu_nals nals;

	if (m->type != HFE_MSG_FRAME_RESPONSE) {
		show_unexpected(vs->name, m);
		CHECKF(0, "%s frame %u: no FRAME_RESPONSE", vs->name, e->no);
		return -1;
	}
	CHECKF(m->size >= HFE_FRAME_RESPONSE_SIZE + 4, "%s frame %u: payload_size %u", vs->name,
	       e->no, m->size);
	if (m->size < HFE_FRAME_RESPONSE_SIZE + 4)
		return -1;

	struct frame_resp fr;

	get_frame_resp(m, &fr);
	int64_t pts = fr.pts, dts = fr.dts;
	uint8_t kf = fr.is_keyframe;
	uint32_t nal_count = fr.nal_count, au_len = fr.au_len;
	const uint8_t *au = fr.au;

	vs->responses++;
	CHECKF(vs->sid < 0 || m->sid == vs->sid, "%s frame %u: session_id %u, sent %d", vs->name,
	       e->no, m->sid, vs->sid);
	CHECKF(pts == e->pts, "%s frame %u: pts %" PRId64 ", sent %" PRId64 " (out of order?)",
	       vs->name, e->no, pts, e->pts);
	CHECKF(dts == pts, "%s frame %u: dts %" PRId64 " != pts %" PRId64, vs->name, e->no, dts,
	       pts);
	CHECKF(kf <= 1, "%s frame %u: is_keyframe %u", vs->name, e->no, kf);
	CHECKF(fr.reserved[0] == 0 && fr.reserved[1] == 0 && fr.reserved[2] == 0,
	       "%s frame %u: reserved bytes set", vs->name, e->no);
	CHECKF(nal_count == 1, "%s frame %u: nal_count %u (one access unit expected)", vs->name,
	       e->no, nal_count);
	CHECKF((uint64_t)au_len + 28 == m->size,
	       "%s frame %u: NAL size %u does not fill the payload of %u", vs->name, e->no, au_len,
	       m->size);
	if (nal_count != 1 || (uint64_t)au_len + 28 != m->size)
		return -1;

	int nn = tu_nal_parse(au, au_len, &nals);
	CHECKF(nn > 0, "%s frame %u: access unit is not Annex-B", vs->name, e->no);
	if (nn <= 0)
		return -1;
	CHECKF(nals.has_idr == (kf == 1), "%s frame %u: is_keyframe %u but IDR NAL %s", vs->name,
	       e->no, kf, nals.has_idr ? "present" : "absent");
	CHECKF(nals.has_idr || nals.has_slice, "%s frame %u: no slice", vs->name, e->no);
	if (nals.has_idr) {
		int sps = tu_nal_find(&nals, TU_NAL_SPS), pps = tu_nal_find(&nals, TU_NAL_PPS);
		int idr = tu_nal_find(&nals, TU_NAL_IDR);
		CHECKF(sps >= 0 && pps > sps && idr > pps,
		       "%s frame %u: IDR without SPS, PPS in front (sps %d pps %d idr %d)",
		       vs->name, e->no, sps, pps, idr);
		/* Browsers want constrained baseline by default. */
		CHECKF(nals.sps_profile == 66 && (nals.sps_constraints & 0x40),
		       "%s frame %u: SPS profile %d constraints 0x%02x, expected constrained "
		       "baseline",
		       vs->name, e->no, nals.sps_profile, nals.sps_constraints);
		vs->keyframes++;
	}
	if (e->w != vs->last_w || e->h != vs->last_h)
		CHECKF(nals.has_idr && nals.has_sps,
		       "%s frame %u: first frame at %ux%u is not an IDR with SPS", vs->name, e->no,
		       e->w, e->h);
	vs->last_w = e->w;
	vs->last_h = e->h;
	if (nals_out)
		*nals_out = nals;

	struct tu_yuv pic;
	eq_push(&vs->pending, e);
	int r = tu_decoder_decode(vs->dec, au, au_len, &pic, NULL);
	CHECKF(r >= 0, "%s frame %u: decoding failed", vs->name, e->no);
	if (r == 1)
		vs_picture(vs, &pic);
	return kf;
}

/* Flush the decoder, check every frame came out; print a summary. */
static void vs_finish(struct vstream *vs, int expected_frames)
{
	struct tu_yuv pic;
	int r;

	while ((r = tu_decoder_flush(vs->dec, &pic)) == 1)
		vs_picture(vs, &pic);
	CHECKF(r == 0, "%s: decoder flush failed", vs->name);
	CHECKF(vs->responses == expected_frames, "%s: %d responses for %d frames", vs->name,
	       vs->responses, expected_frames);
	CHECKF(vs->pictures == vs->responses, "%s: %d pictures decoded from %d access units",
	       vs->name, vs->pictures, vs->responses);
	printf("  %-40s %3d frames, %2d keyframes, min PSNR Y %.1f dB, U/V %.1f dB\n", vs->name,
	       vs->pictures, vs->keyframes, vs->min_y, vs->min_uv);
	tu_decoder_free(vs->dec);
	vs->dec = NULL;
}

/* Receive the reply to frame e and check it. Returns is_keyframe or -1. */
static int recv_frame(struct tconn *c, struct vstream *vs, const struct expect *e,
		      struct tu_nals *nals)
{
	struct rmsg m;
	int r = recv_msg(c, &m, IO_MS);

	CHECKF(r == 1, "%s frame %u: no reply (%s)", vs->name, e->no,
	       r == 0 ? "EOF" : "timeout/error");
	if (r != 1)
		return -1;
	int kf = vs_response(vs, &m, e, nals);
	rmsg_free(&m);
	return kf;
}

/*
 * Send n frames keeping at most `depth` unanswered: 1 is strict
 * request/reply, 2 is the deployed guest (send frame N+1, then read the reply
 * to N). Pattern frames no0, no0+1, ...; pts from pts_index0 on. kf[i] gets
 * frame i's is_keyframe if kf != NULL. Returns the number of replies checked.
 */
static int run_frames(struct tconn *c, struct vstream *vs, uint16_t sid, const struct fspec *f,
		      int n, int depth, uint32_t no0, int pts_index0, size_t tail, int *kf)
{
	struct expect ring[16];
	int sent = 0, got = 0;

	REQUIRE(depth >= 1 && depth <= 16);
	vs->sid = sid;
	while (got < n) {
		if (sent < n && sent - got < depth) {
			struct expect e = { no0 + (uint32_t)sent, f->w, f->h,
					    pts_of(pts_index0 + sent) };
			if (send_frame(c, sid, f, e.no, e.pts, false, tail) < 0) {
				CHECKF(0, "%s: sending frame %u failed", vs->name, e.no);
				return got;
			}
			ring[sent % 16] = e;
			sent++;
			continue;
		}
		int r = recv_frame(c, vs, &ring[got % 16], NULL);
		if (r < 0)
			return got;
		if (kf)
			kf[got] = r;
		got++;
	}
	return got;
}

/* ---- the daemon ---- */

static bool log_contains(const char *path, const char *needle)
{
	FILE *f = fopen(path, "r");
	char line[1024];
	bool found = false;

	if (!f)
		return false;
	while (!found && fgets(line, sizeof(line), f))
		found = strstr(line, needle) != NULL;
	fclose(f);
	return found;
}

static struct daemon dmain;

static struct tconn open_unix(void)
{
	struct tconn c = { .fd = connect_unix(dmain.sock) };
	REQUIRE(c.fd >= 0);
	return c;
}

static struct tconn open_tcp(void)
{
	struct tconn c = { .fd = connect_tcp(dmain.port) };
	REQUIRE(c.fd >= 0);
	return c;
}

static struct tconn open_tr(bool tcp)
{
	return tcp ? open_tcp() : open_unix();
}

/* ---- v2 handshake ---- */

static bool has_format(const uint8_t *fmts, uint32_t count, uint32_t f)
{
	for (uint32_t i = 0; i < count && i < 8; i++)
		if (get32(fmts + 4 * i) == f)
			return true;
	return false;
}

static bool do_hello(struct tconn *c, uint16_t sid)
{
	uint8_t b[HFE_HELLO_SIZE];
	struct rmsg m;

	put_hello(b, 1, 2, 0, "test_daemon");
	REQUIRE(send_msg(c, HFE_MSG_HELLO, sid, b, sizeof(b)) == 0);
	if (!expect_msg(c, &m, HFE_MSG_HELLO_RESP, HFE_HELLO_RESP_SIZE, "HELLO"))
		return false;

	const uint8_t *p = m.p;
	uint32_t count = get32(p + 28);
	CHECKF(get16(p) == 2, "HELLO_RESP version %u", get16(p));
	/* features: the cursor channel, no input (not a control listener) */
	CHECKF(get16(p + 2) == HFE_FEATURE_CURSOR, "HELLO_RESP features 0x%x", get16(p + 2));
	CHECKF(m.sid == sid, "HELLO_RESP session_id %u, sent %u", m.sid, sid);
	CHECKF(get32(p + 4) & HFE_CODEC_H264, "HELLO_RESP codecs 0x%x", get32(p + 4));
	CHECKF(get32(p + 8) & HFE_SOURCE_PIXELS, "HELLO_RESP sources 0x%x", get32(p + 8));
	CHECKF(get32(p + 12) == D_MAX_W, "HELLO_RESP max_width %u", get32(p + 12));
	CHECKF(get32(p + 16) == D_MAX_H, "HELLO_RESP max_height %u", get32(p + 16));
	CHECKF(get32(p + 20) == D_MAX_PAYLOAD, "HELLO_RESP max_payload %u", get32(p + 20));
	CHECKF(get32(p + 24) == D_MAX_INFLIGHT, "HELLO_RESP max_inflight %u", get32(p + 24));
	CHECKF(count >= N_FORMATS && count <= 8, "HELLO_RESP format_count %u", count);
	for (size_t i = 0; i < N_FORMATS; i++)
		CHECKF(has_format(p + 32, count, all_formats[i]), "HELLO_RESP lacks %s",
		       tu_fmt_name(all_formats[i]));
	for (uint32_t i = count; i < 8; i++)
		CHECKF(get32(p + 32 + 4 * i) == 0, "HELLO_RESP unused format slot %u set", i);
	CHECKF(nul_terminated(p + 64, 32), "HELLO_RESP server name not NUL-terminated");
	CHECKF(strncmp((const char *)p + 64, "helix-frame-export", 18) == 0,
	       "HELLO_RESP server name '%.32s'", (const char *)p + 64);
	rmsg_free(&m);
	return true;
}

/* v2 CONFIG_REQ -> CONFIG_RESP. */
static bool do_config_v2(struct tconn *c, uint16_t sid, uint32_t w, uint32_t h, uint32_t bitrate,
			 uint32_t expect_w, uint32_t expect_h)
{
	struct rmsg m;

	REQUIRE(send_config(c, sid, w, h, bitrate) == 0);
	if (!expect_msg(c, &m, HFE_MSG_CONFIG_RESP, HFE_CONFIG_RESP_SIZE, "CONFIG_REQ"))
		return false;
	const uint8_t *p = m.p;
	CHECKF(m.sid == sid, "CONFIG_RESP session_id %u", m.sid);
	CHECKF(get32(p) == expect_w && get32(p + 4) == expect_h,
	       "CONFIG_RESP size %ux%u, want %ux%u", get32(p), get32(p + 4), expect_w, expect_h);
	CHECKF(get32(p + 8) == bitrate, "CONFIG_RESP bitrate %u, asked %u", get32(p + 8), bitrate);
	CHECKF(get32(p + 12) == 30 && get32(p + 16) == 1, "CONFIG_RESP fps %u/%u", get32(p + 12),
	       get32(p + 16));
	CHECKF(p[20] == 66, "CONFIG_RESP profile %u (default: 66 constrained baseline)", p[20]);
	CHECKF(p[22] == 1, "CONFIG_RESP realtime %u", p[22]);
	CHECKF(p[23] == 0, "CONFIG_RESP reserved %u", p[23]);
	CHECKF(nul_terminated(p + 24, 32) && p[24] != 0, "CONFIG_RESP encoder name '%.32s'",
	       (const char *)p + 24);
	rmsg_free(&m);
	return true;
}

struct stats {
	uint64_t received, encoded, dropped, keyframes, bytes_in, bytes_out;
	uint32_t us_avg, us_max, inflight, reserved;
};

static bool do_stats(struct tconn *c, uint16_t sid, struct stats *st)
{
	struct rmsg m;

	REQUIRE(send_msg(c, HFE_MSG_STATS_REQ, sid, NULL, 0) == 0);
	/* What the host had sent when it answered: everything before STATS_RESP. */
	uint64_t rcvd_before = c->rcvd;
	if (!expect_msg(c, &m, HFE_MSG_STATS_RESP, HFE_STATS_RESP_SIZE, "STATS_REQ"))
		return false;
	const uint8_t *p = m.p;
	st->received = get64(p);
	st->encoded = get64(p + 8);
	st->dropped = get64(p + 16);
	st->keyframes = get64(p + 24);
	st->bytes_in = get64(p + 32);
	st->bytes_out = get64(p + 40);
	st->us_avg = get32(p + 48);
	st->us_max = get32(p + 52);
	st->inflight = get32(p + 56);
	st->reserved = get32(p + 60);
	CHECKF(m.sid == sid, "STATS_RESP session_id %u", m.sid);
	CHECKF(st->bytes_in == c->sent, "STATS bytes_received %" PRIu64 ", we sent %" PRIu64,
	       st->bytes_in, c->sent);
	CHECKF(st->bytes_out == rcvd_before,
	       "STATS bytes_sent %" PRIu64 ", we received %" PRIu64 " before STATS_RESP",
	       st->bytes_out, rcvd_before);
	CHECKF(st->reserved == 0, "STATS reserved %u", st->reserved);
	rmsg_free(&m);
	return true;
}

/* ---- tests ---- */

/* The daemon refuses this command line: exit code 2, at once. */
static void expect_usage_error(const char *const argv[], const char *log)
{
	int st = -1;
	pid_t pid = spawn(argv, log);
	REQUIRE(pid > 0);
	int r = reap(pid, 10000, &st);
	if (r < 0)
		kill_wait(pid, SIGKILL, 1000);
	CHECKF(r == 0 && WIFEXITED(st) && WEXITSTATUS(st) == 2,
	       "%s %s: exit status 0x%x (want exit code 2)", argv[1], argv[2], st);
}

static void test_cli(void)
{
	char log[256];
	int st = -1;

	section("command line");
	snprintf(log, sizeof(log), "%s/cli.log", tmpdir);
	const char *help[] = { daemon_bin, "--help", NULL };
	pid_t pid = spawn(help, log);
	REQUIRE(pid > 0);
	CHECK(reap(pid, 10000, &st) == 0 && WIFEXITED(st) && WEXITSTATUS(st) == 0);
	CHECK(log_contains(log, "--listen"));

	static const char *const bad[] = { "bogus", "tcp:127.0.0.1", "tcp:127.0.0.1:99999",
					   "unix:", "vsock:x:y", "serial:/dev/null" };
	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		const char *argv[] = { daemon_bin, "--listen", bad[i], NULL };
		expect_usage_error(argv, log);
	}

	/* Scanout options: a flag given a value, a rate out of range. */
	char sock[300];
	snprintf(sock, sizeof(sock), "unix:%s/bad-opt.sock", tmpdir);
	const char *bad_opts[][6] = {
		{ daemon_bin, "--no-patch-frames=1", "--listen", sock, NULL },
		{ daemon_bin, "--max-fps", "0", "--listen", sock, NULL },
		{ daemon_bin, "--max-fps", "241", "--listen", sock, NULL },
	};
	for (size_t i = 0; i < sizeof(bad_opts) / sizeof(bad_opts[0]); i++)
		expect_usage_error(bad_opts[i], log);
}

/* STATS_RESP after a v2 stream of n frames, all answered. */
static void check_stream_stats(struct tconn *c, uint16_t sid, const struct vstream *vs, int n)
{
	struct stats st;

	if (!do_stats(c, sid, &st))
		return;
	CHECKF(st.received == (uint64_t)n && st.encoded == (uint64_t)n,
	       "STATS frames received %" PRIu64 " encoded %" PRIu64 ", sent %d", st.received,
	       st.encoded, n);
	CHECKF(st.dropped == 0, "STATS dropped %" PRIu64, st.dropped);
	CHECKF(st.keyframes == (uint64_t)vs->keyframes, "STATS keyframes %" PRIu64 ", seen %d",
	       st.keyframes, vs->keyframes);
	CHECKF(st.inflight == 0, "STATS inflight %u", st.inflight);
	CHECKF(st.us_avg > 0 && st.us_max >= st.us_avg, "STATS encode us avg %u max %u",
	       st.us_avg, st.us_max);
}

/*
 * Every input format over both transports, 60 frames each at 3 Mbit/s.
 * unix: v1 client (CONFIG_REQ has no reply in v1; one frame in flight as the
 * deployed guest). tcp: v2 (HELLO, CONFIG_RESP, 3 in flight, STATS).
 */
static void test_formats(void)
{
	section("all formats, unix (v1) and tcp (v2), 60 frames each");
	for (int tcp = 0; tcp < 2; tcp++) {
		for (size_t i = 0; i < N_FORMATS; i++) {
			struct tconn c = open_tr(tcp);
			struct fspec f = fspec_of(all_formats[i], W, H);
			struct vstream vs;
			uint16_t sid = tcp ? (uint16_t)(7 + i) : 1;

			vs_init(&vs, "%s %s v%d", tcp ? "tcp " : "unix", tu_fmt_name(f.fmt),
				tcp ? 2 : 1);
			if (!tcp)
				REQUIRE(send_config(&c, sid, 0, 0, 3000000) == 0);
			bool ready = !tcp || (do_hello(&c, sid) &&
					      do_config_v2(&c, sid, 0, 0, 3000000, 0, 0));
			if (!ready) {
				tu_decoder_free(vs.dec);
				conn_close(&c);
				continue;
			}
			int got = run_frames(&c, &vs, sid, &f, NFRAMES, tcp ? 3 : 2,
					     (uint32_t)(i * 100), 0, 0, NULL);
			vs_finish(&vs, NFRAMES);
			if (tcp && got == NFRAMES)
				check_stream_stats(&c, sid, &vs, NFRAMES);
			conn_close(&c);
		}
	}
}

/* Exactly what a deployed v1 guest does: no HELLO, no CONFIG_REQ, session 1,
 * its whole mapped buffer as pixels, send N+1 then read the reply to N. */
static void test_v1_guest(void)
{
	static const struct {
		bool tcp;
		uint32_t fmt;
	} cases[] = { { false, HFE_FMT_ARGB8888 }, { true, HFE_FMT_ARGB8888 },
		      { true, HFE_FMT_NV12 },      { false, HFE_FMT_ABGR8888 } };

	section("v1 guest: no HELLO, no CONFIG_REQ, session 1, whole buffers");
	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		struct tconn c = open_tr(cases[i].tcp);
		/* A mapped buffer: tight stride for RGB, aligned for NV12, page tail. */
		struct fspec f = { cases[i].fmt, W, H, cases[i].fmt == HFE_FMT_NV12 ? 384 : W * 4 };
		struct vstream vs;

		vs_init(&vs, "v1 guest %s %s", cases[i].tcp ? "tcp " : "unix", tu_fmt_name(f.fmt));
		run_frames(&c, &vs, 1, &f, NFRAMES, 2, 5000 + (uint32_t)i * 100, 0, 4096, NULL);
		vs_finish(&vs, NFRAMES);
		conn_close(&c);
	}
}

/* KEYFRAME_REQ and force_keyframe: exactly those frames are IDRs. */
static void test_keyframes(void)
{
	enum { N = 30, KREQ_AT = 10, FORCE_AT = 20 };
	struct tconn c = open_unix();
	struct fspec f = fspec_of(HFE_FMT_XRGB8888, W, H);
	struct vstream vs;
	int kf[N];

	section("KEYFRAME_REQ and force_keyframe");
	vs_init(&vs, "keyframes unix XR24 v2");
	if (!do_hello(&c, 3))
		goto out;
	for (int i = 0; i < N; i++) {
		struct expect e = { 7000 + (uint32_t)i, W, H, pts_of(i) };
		struct tu_nals nals;
		if (i == KREQ_AT)
			REQUIRE(send_msg(&c, HFE_MSG_KEYFRAME_REQ, 3, NULL, 0) == 0);
		REQUIRE(send_frame(&c, 3, &f, e.no, e.pts, i == FORCE_AT, 0) == 0);
		kf[i] = recv_frame(&c, &vs, &e, &nals);
		if (kf[i] < 0)
			goto out;
		bool want = i == 0 || i == KREQ_AT || i == FORCE_AT;
		CHECKF(kf[i] == want, "frame %d: is_keyframe %d, expected %d", i, kf[i], want);
		if (want)
			CHECKF(nals.has_sps && nals.has_pps && nals.has_idr,
			       "frame %d: keyframe without SPS/PPS/IDR", i);
		else
			CHECKF(!nals.has_idr && !nals.has_sps,
			       "frame %d: IDR or SPS in a frame that was not asked to be one", i);
	}
	vs_finish(&vs, N);
	struct stats st;
	if (do_stats(&c, 3, &st))
		CHECKF(st.keyframes == 3, "STATS keyframes %" PRIu64 ", expected 3", st.keyframes);
out:
	if (vs.dec)
		tu_decoder_free(vs.dec);
	conn_close(&c);
}

/* 320x240 -> 640x360 (frames only, v1) and back with a v2 CONFIG_REQ. */
static void test_resize(void)
{
	struct fspec small = fspec_of(HFE_FMT_XRGB8888, W, H);
	struct fspec big = fspec_of(HFE_FMT_XRGB8888, 640, 360);
	struct vstream vs;
	int kf[20];

	section("resolution change mid-stream");
	/* v1: the new size just arrives with a frame (a v1 CONFIG_REQ raises
	 * the rate for the larger size first; it has no reply in v1). */
	struct tconn c = open_tcp();
	vs_init(&vs, "resize v1 tcp 320x240->640x360->320x240");
	REQUIRE(send_config(&c, 1, 0, 0, 8000000) == 0);
	if (run_frames(&c, &vs, 1, &small, 15, 2, 8000, 0, 0, kf) == 15 &&
	    run_frames(&c, &vs, 1, &big, 20, 2, 8100, 15, 0, kf) == 20) {
		CHECKF(kf[0] == 1, "first frame at 640x360 not a keyframe");
		for (int i = 1; i < 20; i++)
			CHECKF(kf[i] == 0, "640x360 frame %d is a keyframe", i);
		run_frames(&c, &vs, 1, &small, 10, 2, 8200, 35, 0, kf);
		CHECKF(kf[0] == 1, "first frame back at 320x240 not a keyframe");
	}
	vs_finish(&vs, 45);
	conn_close(&c);

	/* v2: CONFIG_REQ announces the size first. */
	c = open_unix();
	vs_init(&vs, "resize v2 unix with CONFIG_REQ");
	if (do_hello(&c, 5) && do_config_v2(&c, 5, W, H, 3000000, W, H) &&
	    run_frames(&c, &vs, 5, &small, 10, 1, 8300, 0, 0, NULL) == 10 &&
	    do_config_v2(&c, 5, 640, 360, 8000000, 640, 360) &&
	    run_frames(&c, &vs, 5, &big, 10, 1, 8400, 10, 0, kf) == 10)
		CHECKF(kf[0] == 1, "first frame after CONFIG_REQ 640x360 not a keyframe");
	vs_finish(&vs, 20);
	conn_close(&c);
}

/* Send 8 frames without reading, then read the 8 replies in order. */
static void test_pipelining(void)
{
	enum { BATCH = 8, ROUNDS = 3 };
	struct tconn c = open_unix();
	struct fspec f = fspec_of(HFE_FMT_NV12, W, H);
	struct vstream vs;

	section("pipelining: 3 rounds of 8 frames sent before any reply is read");
	vs_init(&vs, "pipelined unix NV12 v2");
	if (!do_hello(&c, 9))
		goto out;
	for (int r = 0; r < ROUNDS; r++) {
		struct expect e[BATCH];
		for (int i = 0; i < BATCH; i++) {
			int k = r * BATCH + i;
			e[i] = (struct expect){ 9000 + (uint32_t)k, W, H, pts_of(k) };
			REQUIRE(send_frame(&c, 9, &f, e[i].no, e[i].pts, false, 0) == 0);
		}
		for (int i = 0; i < BATCH; i++)
			if (recv_frame(&c, &vs, &e[i], NULL) < 0)
				goto out;
	}
	vs_finish(&vs, BATCH * ROUNDS);
	struct stats st;
	if (do_stats(&c, 9, &st))
		CHECKF(st.received == BATCH * ROUNDS && st.inflight == 0,
		       "STATS received %" PRIu64 " inflight %u", st.received, st.inflight);
out:
	if (vs.dec)
		tu_decoder_free(vs.dec);
	conn_close(&c);
}

/* PING, scanout requests, and a resource-mode frame on one connection. */
static void test_control(void)
{
	struct rmsg m;
	struct tconn c = open_tcp();

	section("PING, SUBSCRIBE, ENABLE/DISABLE_SCANOUT, resource frames");
	/* v1 state: PING before anything else. */
	REQUIRE(send_msg(&c, HFE_MSG_PING, 0x1234, NULL, 0) == 0);
	if (expect_msg(&c, &m, HFE_MSG_PONG, 0, "PING")) {
		CHECKF(m.sid == 0x1234, "PONG session_id 0x%x, PING had 0x1234", m.sid);
		rmsg_free(&m);
	}
	REQUIRE(send_u32_msg(&c, HFE_MSG_SUBSCRIBE, 2, 2) == 0);
	if (expect_msg(&c, &m, HFE_MSG_SUBSCRIBE_RESP, HFE_SUBSCRIBE_RESP_SIZE, "SUBSCRIBE")) {
		CHECKF(get32(m.p) == 2 && get32(m.p + 4) == 0,
		       "SUBSCRIBE_RESP scanout %u success %u", get32(m.p), get32(m.p + 4));
		rmsg_free(&m);
	}
	uint8_t en[HFE_ENABLE_SCANOUT_SIZE];
	put_enable_scanout(en, 1, 1920, 1080, 60);
	REQUIRE(send_msg(&c, HFE_MSG_ENABLE_SCANOUT, 1, en, sizeof(en)) == 0);
	if (expect_msg(&c, &m, HFE_MSG_SCANOUT_RESP, HFE_SCANOUT_RESP_SIZE, "ENABLE_SCANOUT")) {
		CHECKF(get32(m.p) == 1 && get32(m.p + 4) == 0, "SCANOUT_RESP scanout %u success %u",
		       get32(m.p), get32(m.p + 4));
		CHECK(nul_terminated(m.p + 8, HFE_CONNECTOR_LEN));
		rmsg_free(&m);
	}
	REQUIRE(send_u32_msg(&c, HFE_MSG_DISABLE_SCANOUT, 3, 3) == 0);
	if (expect_msg(&c, &m, HFE_MSG_SCANOUT_RESP, HFE_SCANOUT_RESP_SIZE, "DISABLE_SCANOUT")) {
		CHECKF(get32(m.p) == 3 && get32(m.p + 4) == 0, "SCANOUT_RESP scanout %u success %u",
		       get32(m.p), get32(m.p + 4));
		CHECK(nul_terminated(m.p + 8, HFE_CONNECTOR_LEN));
		rmsg_free(&m);
	}

	/* Resource frame alone: RESOURCE_NOT_FOUND, connection stays. */
	struct fspec f = fspec_of(HFE_FMT_XRGB8888, W, H);
	uint8_t b[HFE_HEADER_SIZE + HFE_FRAME_REQUEST_SIZE];
	put_hdr(b, HFE_MAGIC, HFE_MSG_FRAME_REQUEST, 0, 1, HFE_FRAME_REQUEST_SIZE);
	mk_frame_body(b + HFE_HEADER_SIZE, 42, &f, pts_of(0), 0);
	REQUIRE(io_send(&c, b, sizeof(b), IO_MS) == 0);
	if (expect_msg(&c, &m, HFE_MSG_ERROR, HFE_ERROR_SIZE, "resource frame")) {
		CHECKF((int32_t)get32(m.p) == HFE_ERR_RESOURCE_NOT_FOUND, "ERROR code %d",
		       (int32_t)get32(m.p));
		CHECK(nul_terminated(m.p + 4, HFE_ERROR_MSG_LEN) && m.p[4] != 0);
		rmsg_free(&m);
	}

	/* Pixel frame, resource frame, pixel frame pipelined: the ERROR keeps its
	 * place between the two responses; the stream goes on. */
	struct vstream vs;
	struct expect e0 = { 9500, W, H, pts_of(1) }, e1 = { 9501, W, H, pts_of(3) };
	vs_init(&vs, "resource frames between pixel frames");
	REQUIRE(send_frame(&c, 1, &f, e0.no, e0.pts, false, 0) == 0);
	mk_frame_body(b + HFE_HEADER_SIZE, 43, &f, pts_of(2), 0);
	REQUIRE(io_send(&c, b, sizeof(b), IO_MS) == 0);
	REQUIRE(send_frame(&c, 1, &f, e1.no, e1.pts, false, 0) == 0);
	if (recv_frame(&c, &vs, &e0, NULL) >= 0 &&
	    expect_msg(&c, &m, HFE_MSG_ERROR, HFE_ERROR_SIZE, "resource frame (pipelined)")) {
		CHECKF((int32_t)get32(m.p) == HFE_ERR_RESOURCE_NOT_FOUND, "ERROR code %d",
		       (int32_t)get32(m.p));
		rmsg_free(&m);
		if (recv_frame(&c, &vs, &e1, NULL) >= 0)
			run_frames(&c, &vs, 1, &f, 10, 2, 9502, 4, 0, NULL);
	}
	vs_finish(&vs, 12);

	/* Still alive: PING after all that. */
	REQUIRE(send_msg(&c, HFE_MSG_PING, 0xbeef, NULL, 0) == 0);
	if (expect_msg(&c, &m, HFE_MSG_PONG, 0, "PING after resource errors")) {
		CHECKF(m.sid == 0xbeef, "PONG session_id 0x%x", m.sid);
		rmsg_free(&m);
	}
	conn_close(&c);

	/* v2: PING after HELLO. */
	c = open_unix();
	if (do_hello(&c, 77)) {
		REQUIRE(send_msg(&c, HFE_MSG_PING, 0xffff, NULL, 0) == 0);
		if (expect_msg(&c, &m, HFE_MSG_PONG, 0, "PING v2")) {
			CHECKF(m.sid == 0xffff, "PONG session_id 0x%x", m.sid);
			rmsg_free(&m);
		}
	}
	conn_close(&c);
}

/* Two clients, frames interleaved, independent streams. */
static void test_two_clients(void)
{
	struct tconn a = open_unix(), b = open_tcp();
	struct fspec fa = fspec_of(HFE_FMT_XBGR8888, W, H);
	struct fspec fb = fspec_of(HFE_FMT_I420, 256, 144);
	struct vstream va, vb;

	section("two clients interleaved");
	vs_init(&va, "client A unix XB24 320x240");
	vs_init(&vb, "client B tcp  I420 256x144");
	REQUIRE(send_config(&a, 1, 0, 0, 3000000) == 0);
	REQUIRE(send_config(&b, 1, 0, 0, 3000000) == 0);
	for (int i = 0; i < NFRAMES; i++) {
		struct expect ea = { 10000 + (uint32_t)i, fa.w, fa.h, pts_of(i) };
		struct expect eb = { 20000 + (uint32_t)i, fb.w, fb.h, pts_of(1000 + i) };
		REQUIRE(send_frame(&a, 1, &fa, ea.no, ea.pts, false, 0) == 0);
		REQUIRE(send_frame(&b, 1, &fb, eb.no, eb.pts, false, 0) == 0);
		if (recv_frame(&a, &va, &ea, NULL) < 0 || recv_frame(&b, &vb, &eb, NULL) < 0)
			break;
	}
	vs_finish(&va, NFRAMES);
	vs_finish(&vb, NFRAMES);
	conn_close(&a);
	conn_close(&b);
}

/*
 * --max-inflight 1, the tightest read-ahead: requests without a reply (v1
 * CONFIG_REQ, KEYFRAME_REQ) between frames must not leave the host waiting
 * to read, and frames pipelined two deep all come back.
 */
static void test_inflight_one(const char *path)
{
	struct tconn c = { .fd = connect_unix(path) };
	struct fspec f = fspec_of(HFE_FMT_XRGB8888, W, H);
	struct vstream vs;

	section("--max-inflight 1: v1 CONFIG_REQ and KEYFRAME_REQ between frames");
	REQUIRE(c.fd >= 0);
	vs_init(&vs, "inflight 1 unix XR24 v1");
	REQUIRE(send_config(&c, 1, 0, 0, 3000000) == 0);
	if (run_frames(&c, &vs, 1, &f, 10, 2, 40000, 0, 0, NULL) == 10) {
		REQUIRE(send_config(&c, 1, 0, 0, 4000000) == 0);
		REQUIRE(send_msg(&c, HFE_MSG_KEYFRAME_REQ, 1, NULL, 0) == 0);
		run_frames(&c, &vs, 1, &f, 10, 2, 40010, 10, 0, NULL);
	}
	vs_finish(&vs, 20);
	conn_close(&c);
}

/* Stale socket files are replaced, live ones refused, other files kept. */
static void test_socket_files(void)
{
	char path[256], log[256], arg[300], file[256];
	struct sockaddr_un sa = { .sun_family = AF_UNIX };
	int st = -1;

	section("stale / live / foreign files at the listen path");
	snprintf(path, sizeof(path), "%s/stale.sock", tmpdir);
	snprintf(log, sizeof(log), "%s/stale.log", tmpdir);
	snprintf(arg, sizeof(arg), "unix:%s", path);

	/* A socket file nobody listens on. */
	int fd = socket(AF_UNIX, SOCK_STREAM, 0);
	REQUIRE(fd >= 0 && strlen(path) < sizeof(sa.sun_path));
	memcpy(sa.sun_path, path, strlen(path) + 1);
	REQUIRE(bind(fd, (struct sockaddr *)&sa, sizeof(sa)) == 0);
	close(fd);
	REQUIRE(connect_unix(path) < 0);

	/* (--max-inflight 1: see test_inflight_one.) */
	const char *args[] = { "--listen", arg, "--max-inflight", "1", NULL };
	pid_t p1 = start_daemon(args, log, path, 0);
	CHECKF(p1 > 0, "daemon did not start over a stale socket file");
	if (p1 < 0)
		return;
	test_inflight_one(path);

	/* A second daemon on the live path must refuse and leave it alone. */
	char log2[256];
	snprintf(log2, sizeof(log2), "%s/live.log", tmpdir);
	const char *argv2[] = { daemon_bin, "--listen", arg, NULL };
	pid_t p2 = spawn(argv2, log2);
	REQUIRE(p2 > 0);
	int r = reap(p2, 20000, &st);
	if (r < 0)
		kill_wait(p2, SIGKILL, 1000);
	CHECKF(r == 0 && WIFEXITED(st) && WEXITSTATUS(st) != 0,
	       "second daemon on a live socket: status 0x%x (want a non-zero exit)", st);
	CHECKF(log_contains(log2, "in use"), "second daemon's message lacks 'in use'");
	if (!log_contains(log2, "in use"))
		show_log(log2);

	struct tconn c = { .fd = connect_unix(path) };
	CHECKF(c.fd >= 0, "first daemon's socket gone after the refused second daemon");
	if (c.fd >= 0) {
		struct rmsg m;
		REQUIRE(send_msg(&c, HFE_MSG_PING, 5, NULL, 0) == 0);
		if (expect_msg(&c, &m, HFE_MSG_PONG, 0, "PING to the first daemon"))
			rmsg_free(&m);
		conn_close(&c);
	}
	st = kill_wait(p1, SIGTERM, 10000);
	CHECKF(WIFEXITED(st) && WEXITSTATUS(st) == 0, "SIGTERM: status 0x%x", st);
	CHECKF(access(path, F_OK) < 0 && errno == ENOENT, "socket file left behind");

	/* Not a socket: never removed, the daemon fails. */
	snprintf(file, sizeof(file), "%s/regular", tmpdir);
	snprintf(arg, sizeof(arg), "unix:%s", file);
	FILE *f = fopen(file, "w");
	REQUIRE(f);
	fputs("keep me\n", f);
	fclose(f);
	const char *argv3[] = { daemon_bin, "--listen", arg, NULL };
	pid_t p3 = spawn(argv3, log2);
	REQUIRE(p3 > 0);
	r = reap(p3, 20000, &st);
	if (r < 0)
		kill_wait(p3, SIGKILL, 1000);
	CHECKF(r == 0 && WIFEXITED(st) && WEXITSTATUS(st) != 0,
	       "daemon on a regular file: status 0x%x (want a non-zero exit)", st);
	struct stat sb;
	CHECKF(stat(file, &sb) == 0 && S_ISREG(sb.st_mode) && sb.st_size == 8,
	       "a regular file at the listen path was touched");
}

/*
 * SIGTERM while frames are in flight: each sent frame gets its response (or
 * an ERROR), then the connection closes; an idle client gets ERROR SHUTDOWN;
 * the daemon exits 0 and removes its socket file.
 */
static void test_sigterm(void)
{
	enum { N = 8 }; /* more than --max-inflight: some still unread at SIGTERM */
	struct tconn c = open_unix(), idle = open_tcp();
	struct fspec f = fspec_of(HFE_FMT_XRGB8888, 1280, 720);
	struct vstream vs;
	struct rmsg m;
	int st = -1, responses = 0, errors = 0;

	section("SIGTERM with frames in flight");
	vs_init(&vs, "sigterm unix XR24 1280x720");
	if (!do_hello(&c, 1) || !do_config_v2(&c, 1, 0, 0, 20000000, 0, 0))
		return;
	REQUIRE(send_msg(&idle, HFE_MSG_PING, 1, NULL, 0) == 0);
	if (expect_msg(&idle, &m, HFE_MSG_PONG, 0, "idle PING"))
		rmsg_free(&m);
	for (int i = 0; i < N; i++)
		REQUIRE(send_frame(&c, 1, &f, 30000 + (uint32_t)i, pts_of(i), false, 0) == 0);
	CHECK(kill(dmain.pid, SIGTERM) == 0);

	for (int i = 0; i < N + 1; i++) {
		int r = recv_msg(&c, &m, IO_MS);
		if (r == 0)
			break;
		CHECKF(r == 1, "after SIGTERM: timeout or garbage after %d replies", i);
		if (r != 1)
			break;
		if (m.type == HFE_MSG_ERROR) {
			m.p[m.size ? m.size - 1 : 0] = 0;
			printf("  ERROR %d after %d responses: %s\n", (int32_t)get32(m.p),
			       responses, (const char *)m.p + 4);
			errors++;
		} else {
			CHECKF(errors == 0, "FRAME_RESPONSE after an ERROR");
			struct expect e = { 30000 + (uint32_t)i, f.w, f.h, pts_of(i) };
			if (vs_response(&vs, &m, &e, NULL) >= 0)
				responses++;
		}
		rmsg_free(&m);
	}
	printf("  %d of %d frames answered before the close, %d ERROR\n", responses, N, errors);
	CHECKF(responses == N || errors == 1, "%d responses, %d errors for %d frames", responses,
	       errors, N);
	vs_finish(&vs, responses);
	expect_eof(&c, IO_MS, "in-flight client after SIGTERM");

	if (expect_msg(&idle, &m, HFE_MSG_ERROR, HFE_ERROR_SIZE, "idle client at SIGTERM")) {
		CHECKF((int32_t)get32(m.p) == HFE_ERR_SHUTDOWN, "idle client: ERROR %d",
		       (int32_t)get32(m.p));
		rmsg_free(&m);
	}
	expect_eof(&idle, IO_MS, "idle client after SIGTERM");
	conn_close(&c);
	conn_close(&idle);

	int r = reap(dmain.pid, 20000, &st);
	if (r < 0)
		st = kill_wait(dmain.pid, SIGKILL, 1000);
	CHECKF(r == 0 && WIFEXITED(st) && WEXITSTATUS(st) == 0,
	       "daemon after SIGTERM: status 0x%x (want exit 0)", st);
	if (!(r == 0 && WIFEXITED(st) && WEXITSTATUS(st) == 0))
		show_log(dmain.log);
	dmain.pid = -1;
	CHECKF(access(dmain.sock, F_OK) < 0 && errno == ENOENT, "socket file %s left behind",
	       dmain.sock);
}

int main(void)
{
	int skip = harness_setup("hfe-td");

	if (skip)
		return skip;

	test_cli();

	char mw[16], mh[16], mp[16], mi[16];
	daemon_init(&dmain, "hfe.sock");
	snprintf(mw, sizeof(mw), "%d", D_MAX_W);
	snprintf(mh, sizeof(mh), "%d", D_MAX_H);
	snprintf(mp, sizeof(mp), "%uM", D_MAX_PAYLOAD >> 20);
	snprintf(mi, sizeof(mi), "%d", D_MAX_INFLIGHT);
	const char *args[] = { "--listen",      dmain.listen_unix,
			       "--listen",      dmain.listen_tcp,
			       "--max-width",   mw,
			       "--max-height",  mh,
			       "--max-payload", mp,
			       "--max-inflight", mi,
			       NULL };
	dmain.pid = start_daemon(args, dmain.log, dmain.sock, 0);
	REQUIRE(dmain.pid > 0);
	/* The TCP listener too. */
	int probe = connect_tcp(dmain.port);
	REQUIRE(probe >= 0);
	close(probe);

	test_formats();
	test_v1_guest();
	test_keyframes();
	test_resize();
	test_pipelining();
	test_control();
	test_two_clients();
	test_socket_files();
	test_sigterm();

	if (dmain.pid > 0)
		kill_wait(dmain.pid, SIGKILL, 1000);
	if (tu_failures)
		show_log(dmain.log);
	return harness_finish("test_daemon");
}
