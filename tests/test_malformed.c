/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * Hostile and broken input against the real daemon ($HFE_DAEMON).
 *
 * Each bad input goes over its own connection and must be answered by an
 * ERROR (with the code docs/protocol.md gives, and a message) followed by the
 * host closing the connection. Meanwhile a healthy client streams frames on
 * its own thread through the whole suite and must see every frame come back
 * correct and never an error; a "slow loris" client dribbles a valid frame
 * over ~10 s (far longer than the stall timeout, never silent for long) and
 * must get its frame. Then: a client that never reads is throttled with
 * bounded daemon memory while the healthy client keeps its pace, and
 * --max-clients is enforced with ERROR BUSY.
 *
 * Bytes are built with the raw peer of raw_peer.h, written from the spec, not
 * with wire.c.
 */
#include <errno.h>
#include <inttypes.h>
#include <poll.h>
#include <pthread.h>
#include <signal.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>

#include "hfe/wire.h"
#include "raw_peer.h"
#include "test_util.h"

#define IO_MS 20000 /* any single wait; generous for sanitizer builds */
#define STALL_MS 500
#define MAX_PAYLOAD (8u << 20)
#define MAX_DIM 2048
#define MAX_QUEUE (1u << 20)
#define MAX_INFLIGHT 4
#define FRAME_NS 33333333LL
#define RSS_BOUND_KB (64 * 1024) /* growth allowed while a client is throttled */

#if defined(__SANITIZE_ADDRESS__)
#define UNDER_ASAN 1
#elif defined(__has_feature)
#if __has_feature(address_sanitizer)
#define UNDER_ASAN 1
#endif
#endif

static struct daemon dm;

/* Deterministic noise (xorshift32). */
static uint32_t rnd_next(uint32_t *s)
{
	uint32_t x = *s;
	x ^= x << 13;
	x ^= x >> 17;
	x ^= x << 5;
	return *s = x;
}

static void rnd_fill(uint8_t *p, size_t n, uint32_t seed)
{
	uint32_t s = seed ? seed : 1;
	for (size_t i = 0; i < n; i++)
		p[i] = (uint8_t)(rnd_next(&s) >> 24);
}

/* ---- failures seen on worker threads (CHECK is not thread-safe) ---- */

struct chk {
	atomic_int failures;
	const char *who;
};

static void chk_fail(struct chk *k, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

static void chk_fail(struct chk *k, const char *fmt, ...)
{
	char buf[512];
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(buf, sizeof(buf), fmt, ap);
	va_end(ap);
	if (atomic_fetch_add(&k->failures, 1) < 20)
		fprintf(stderr, "  FAIL [%s] %s\n", k->who, buf);
}

static const char *type_name(uint8_t t)
{
	const char *n = hfe_msg_type_name(t);
	return n ? n : "?";
}

/* ---- building messages ---- */

/* A growing byte buffer holding one or more messages. */
struct mb {
	uint8_t *b;
	size_t n, cap;
};

static uint8_t *mb_grow(struct mb *m, size_t n)
{
	if (m->n + n > m->cap) {
		m->cap = (m->n + n) * 2 + 256;
		m->b = realloc(m->b, m->cap);
		REQUIRE(m->b);
	}
	uint8_t *p = m->b + m->n;
	memset(p, 0, n);
	m->n += n;
	return p;
}

static void mb_free(struct mb *m)
{
	free(m->b);
	memset(m, 0, sizeof(*m));
}

static void mb_hdr_magic(struct mb *m, uint32_t magic, uint8_t type, uint8_t flags,
			 uint16_t sid, uint32_t size)
{
	put_hdr(mb_grow(m, HFE_HEADER_SIZE), magic, type, flags, sid, size);
}

static void mb_hdr(struct mb *m, uint8_t type, uint8_t flags, uint32_t size)
{
	mb_hdr_magic(m, HFE_MAGIC, type, flags, 1, size);
}

/* A message with a zeroed body of `size` bytes; returns the body. */
static uint8_t *mb_msg(struct mb *m, uint8_t type, uint8_t flags, uint32_t size)
{
	mb_hdr(m, type, flags, size);
	return mb_grow(m, size);
}

static struct frame_fields ff_default(void)
{
	struct frame_fields f = { 0, 320, 240, HFE_FMT_XRGB8888, 320 * 4, 0, FRAME_NS, 0 };
	return f;
}

/* FRAME_REQUEST with PIXEL_DATA: the body and `pix` bytes of (zero) pixels. */
static void mb_frame(struct mb *m, uint8_t flags, const struct frame_fields *f, size_t pix)
{
	put_frame_req(mb_msg(m, HFE_MSG_FRAME_REQUEST, flags,
			     (uint32_t)(HFE_FRAME_REQUEST_SIZE + pix)), f);
}

static void mb_config(struct mb *m, const struct config_fields *c)
{
	put_config_req(mb_msg(m, HFE_MSG_CONFIG_REQ, 0, HFE_CONFIG_REQ_SIZE), c);
}

static void mb_hello(struct mb *m, uint16_t vmin, uint16_t vmax, uint32_t flags, const char *name)
{
	put_hello(mb_msg(m, HFE_MSG_HELLO, 0, HFE_HELLO_SIZE), vmin, vmax, flags, name);
}

/* ---- checking frame replies (thread-safe) ---- */

struct fstream {
	struct chk *k;
	struct tu_decoder *dec;
	struct expect_queue pending; /* AUs given to the decoder, picture not out yet */
	int responses, pictures;
	bool compare; /* PSNR against the pattern (off for noise frames) */
	double min_y;
};

static void fs_init(struct fstream *fs, struct chk *k, bool compare)
{
	memset(fs, 0, sizeof(*fs));
	fs->k = k;
	fs->compare = compare;
	fs->min_y = 100.0;
	fs->dec = tu_decoder_new();
	REQUIRE(fs->dec);
}

static void fs_picture(struct fstream *fs, struct tu_yuv *pic)
{
	struct expect e;

	if (!eq_pop(&fs->pending, &e)) {
		chk_fail(fs->k, "more pictures than access units");
		tu_yuv_free(pic);
		return;
	}
	fs->pictures++;
	if (pic->w != e.w || pic->h != e.h) {
		chk_fail(fs->k, "frame %u decoded %ux%u, sent %ux%u", e.no, pic->w, pic->h, e.w,
			 e.h);
	} else if (fs->compare) {
		struct tu_yuv ref;
		double ps[3];
		ref_yuv(e.w, e.h, e.no, &ref);
		if (tu_psnr_yuv(&ref, pic, ps) < 0 || ps[0] < 35.0)
			chk_fail(fs->k, "frame %u: PSNR Y %.2f dB < 35", e.no, ps[0]);
		if (ps[0] < fs->min_y)
			fs->min_y = ps[0];
		tu_yuv_free(&ref);
	}
	tu_yuv_free(pic);
}

/* Check the reply to frame e. Returns is_keyframe, or -1. */
static int fs_response(struct fstream *fs, const struct rmsg *m, const struct expect *e)
{
	if (m->type != HFE_MSG_FRAME_RESPONSE) {
		if (m->type == HFE_MSG_ERROR && m->size == HFE_ERROR_SIZE) {
			m->p[HFE_ERROR_SIZE - 1] = 0;
			chk_fail(fs->k, "frame %u: ERROR %d: %s", e->no, (int32_t)get32(m->p),
				 (const char *)m->p + 4);
		} else {
			chk_fail(fs->k, "frame %u: reply type 0x%02x", e->no, m->type);
		}
		return -1;
	}
	if (m->size < 28) {
		chk_fail(fs->k, "frame %u: short FRAME_RESPONSE (%u)", e->no, m->size);
		return -1;
	}
	struct frame_resp fr;
	struct tu_nals nals;

	get_frame_resp(m, &fr);
	int64_t pts = fr.pts;
	uint8_t kf = fr.is_keyframe;
	uint32_t count = fr.nal_count, len = fr.au_len;

	fs->responses++;
	if (pts != e->pts)
		chk_fail(fs->k, "frame %u: pts %" PRId64 ", sent %" PRId64, e->no, pts, e->pts);
	if (count != 1 || (uint64_t)len + 28 != m->size) {
		chk_fail(fs->k, "frame %u: nal_count %u, unit %u bytes in a payload of %u", e->no,
			 count, len, m->size);
		return -1;
	}
	if (tu_nal_parse(fr.au, len, &nals) <= 0) {
		chk_fail(fs->k, "frame %u: not Annex-B", e->no);
		return -1;
	}
	if (nals.has_idr != (kf == 1))
		chk_fail(fs->k, "frame %u: is_keyframe %u, IDR %d", e->no, kf, nals.has_idr);
	if (nals.has_idr && !(nals.has_sps && nals.has_pps))
		chk_fail(fs->k, "frame %u: IDR without SPS/PPS", e->no);

	struct tu_yuv pic;
	eq_push(&fs->pending, e);
	int r = tu_decoder_decode(fs->dec, fr.au, len, &pic, NULL);
	if (r < 0)
		chk_fail(fs->k, "frame %u: decoding failed", e->no);
	if (r == 1)
		fs_picture(fs, &pic);
	return kf;
}

static void fs_finish(struct fstream *fs)
{
	struct tu_yuv pic;
	while (tu_decoder_flush(fs->dec, &pic) == 1)
		fs_picture(fs, &pic);
	if (fs->pictures != fs->responses)
		chk_fail(fs->k, "%d pictures from %d access units", fs->pictures, fs->responses);
	tu_decoder_free(fs->dec);
	fs->dec = NULL;
}

/* Receive and check the reply to frame e. */
static int fs_recv(struct fstream *fs, struct tconn *c, const struct expect *e, int timeout_ms)
{
	struct rmsg m;
	int r = recv_msg(c, &m, timeout_ms);
	if (r != 1) {
		chk_fail(fs->k, "frame %u: no reply (%s)", e->no, r == 0 ? "EOF" : "timeout");
		return -1;
	}
	int kf = fs_response(fs, &m, e);
	rmsg_free(&m);
	return kf;
}

/* Pattern frame `no` as a FRAME_REQUEST (header, body, pixels) in one buffer. */
static void mb_pattern_frame(struct mb *m, uint32_t fmt, uint32_t w, uint32_t h, uint32_t no,
			     int64_t pts)
{
	uint32_t stride = tu_bpp(fmt) * w;
	size_t fsz = tu_frame_size(fmt, w, h, stride);
	struct frame_fields f = { 0, w, h, fmt, stride, pts, FRAME_NS, 0 };
	uint8_t *pix = tu_pattern_frame(fmt, w, h, stride, no);

	REQUIRE(pix);
	mb_frame(m, HFE_FLAG_PIXEL_DATA, &f, fsz);
	memcpy(m->b + m->n - fsz, pix, fsz);
	free(pix);
}

/* ---- the healthy client (own thread, the whole suite long) ---- */

struct healthy {
	pthread_t th;
	struct chk k;
	atomic_bool stop;
	atomic_int frames; /* replies verified */
	int keyframes;
	double min_y;
	int64_t max_rtt_ms;
};

static void *healthy_main(void *arg)
{
	struct healthy *hs = arg;
	struct tconn c = { connect_tcp(dm.port) };
	struct fstream fs;
	struct mb m = { 0 };
	int64_t next = ms_now();

	if (c.fd < 0) {
		chk_fail(&hs->k, "cannot connect");
		return NULL;
	}
	fs_init(&fs, &hs->k, true);
	/* v2, 3 Mbit/s */
	mb_hello(&m, 1, 2, 0, "healthy");
	struct config_fields cf = { 0, 0, 3000000, 30, 1, 0, 0, 1 };
	mb_config(&m, &cf);
	struct rmsg r1, r2;
	if (io_send(&c, m.b, m.n, IO_MS) < 0 || recv_msg(&c, &r1, IO_MS) != 1) {
		chk_fail(&hs->k, "HELLO failed");
		goto out;
	}
	if (r1.type != HFE_MSG_HELLO_RESP)
		chk_fail(&hs->k, "HELLO answered with 0x%02x", r1.type);
	rmsg_free(&r1);
	if (recv_msg(&c, &r2, IO_MS) != 1 || r2.type != HFE_MSG_CONFIG_RESP)
		chk_fail(&hs->k, "CONFIG_REQ not answered with CONFIG_RESP");
	rmsg_free(&r2);

	for (uint32_t i = 0; !atomic_load(&hs->stop); i++) {
		struct expect e = { 100000 + i, 320, 240, (int64_t)i * FRAME_NS };
		m.n = 0;
		mb_pattern_frame(&m, HFE_FMT_XRGB8888, e.w, e.h, e.no, e.pts);
		int64_t t0 = ms_now();
		if (io_send(&c, m.b, m.n, IO_MS) < 0) {
			chk_fail(&hs->k, "frame %u: send failed: %s", e.no, strerror(errno));
			break;
		}
		int kf = fs_recv(&fs, &c, &e, IO_MS);
		if (kf < 0)
			break;
		int64_t rtt = ms_now() - t0;
		if (rtt > hs->max_rtt_ms)
			hs->max_rtt_ms = rtt;
		hs->keyframes += kf;
		if (i == 0 && kf != 1)
			chk_fail(&hs->k, "first frame not a keyframe");
		atomic_fetch_add(&hs->frames, 1);
		/* A steady ~100 fps, leaving CPU for the rest of the suite. */
		next += 10;
		int64_t now = ms_now();
		if (next > now)
			usleep((useconds_t)(next - now) * 1000);
		else
			next = now;
	}
out:
	fs_finish(&fs);
	hs->min_y = fs.min_y;
	mb_free(&m);
	conn_close(&c);
	return NULL;
}

/* ---- slow loris: a valid frame, 1 byte per 100 ms, then 8 bytes per 100 ms ---- */

struct loris {
	pthread_t th;
	struct chk k;
	bool ok;
	int64_t ms_taken;
};

static void *loris_main(void *arg)
{
	struct loris *ls = arg;
	struct tconn c = { connect_unix(dm.sock) };
	struct mb m = { 0 };
	struct fstream fs;
	struct expect e = { 4242, 16, 16, 777000000 };
	int64_t t0 = ms_now();

	if (c.fd < 0) {
		chk_fail(&ls->k, "cannot connect");
		return NULL;
	}
	fs_init(&fs, &ls->k, true);
	mb_pattern_frame(&m, HFE_FMT_I420, e.w, e.h, e.no, e.pts);
	size_t hdr_body = HFE_HEADER_SIZE + HFE_FRAME_REQUEST_SIZE;
	for (size_t off = 0; off < m.n;) {
		size_t chunk = off < hdr_body ? 1 : 8;
		if (chunk > m.n - off)
			chunk = m.n - off;
		if (io_send(&c, m.b + off, chunk, IO_MS) < 0) {
			chk_fail(&ls->k, "send failed at byte %zu: %s", off, strerror(errno));
			goto out;
		}
		off += chunk;
		if (off < m.n)
			usleep(100000);
	}
	ls->ms_taken = ms_now() - t0;
	if (fs_recv(&fs, &c, &e, IO_MS) == 1)
		ls->ok = true;
	else
		chk_fail(&ls->k, "frame not answered as a keyframe");
out:
	fs_finish(&fs);
	mb_free(&m);
	conn_close(&c);
	return NULL;
}

static long rss_kb(pid_t pid)
{
	char path[64], line[256];
	long kb = -1;

	snprintf(path, sizeof(path), "/proc/%d/status", (int)pid);
	FILE *f = fopen(path, "r");
	if (!f)
		return -1;
	while (fgets(line, sizeof(line), f))
		if (sscanf(line, "VmRSS: %ld kB", &kb) == 1)
			break;
	fclose(f);
	return kb;
}

/* ---- the bad-input cases ---- */

#define CODE_BIT(c) (1u << (unsigned)(-(c)))
#define E_INV CODE_BIT(HFE_ERR_INVALID_MSG)
#define E_TOO_LARGE CODE_BIT(HFE_ERR_TOO_LARGE)
#define E_UNSUP CODE_BIT(HFE_ERR_UNSUPPORTED)
#define E_PROTO CODE_BIT(HFE_ERR_PROTOCOL)
#define E_TIMEOUT CODE_BIT(HFE_ERR_TIMEOUT)
#define E_VERSION CODE_BIT(HFE_ERR_VERSION)
#define E_ANY_CLOSING (E_INV | E_TOO_LARGE | E_PROTO | E_TIMEOUT | E_VERSION)

static int n_cases, n_cases_ok;

struct bad {
	const char *name;
	unsigned codes;      /* acceptable ERROR codes (CODE_BIT) */
	const uint8_t *pre;  /* message types expected before the ERROR */
	int n_pre;
	bool stall;          /* the error comes from the stall timer */
	bool close_after;    /* we close our side right after sending (no reply wanted) */
};

/*
 * Send bytes on a fresh connection and expect: the `pre` replies, one ERROR
 * with an acceptable code and a message, then EOF.
 */
static void run_bad(const struct bad *bc, const uint8_t *bytes, size_t len)
{
	bool tcp = n_cases % 2;
	struct tconn c = { tcp ? connect_tcp(dm.port) : connect_unix(dm.sock) };
	struct rmsg m;
	bool ok = true;
	char what[160];

	n_cases++;
	snprintf(what, sizeof(what), "#%d %s (%s)", n_cases, bc->name, tcp ? "tcp" : "unix");
	CHECKF(c.fd >= 0, "%s: cannot connect", what);
	if (c.fd < 0)
		return;
	/* The host may stop reading once it has seen enough: a failed send is fine,
	 * the reply decides. */
	if (io_send(&c, bytes, len, 5000) < 0 && errno == ETIMEDOUT) {
		CHECKF(0, "%s: host stopped reading and never answered", what);
		ok = false;
	}
	int64_t t_sent = ms_now();
	if (bc->close_after) {
		conn_close(&c);
		n_cases_ok++;
		printf("  ok   %s: closed by us\n", what);
		return;
	}

	for (int i = 0; ok && i < bc->n_pre; i++) {
		int r = recv_msg(&c, &m, IO_MS);
		CHECKF(r == 1 && m.type == bc->pre[i], "%s: reply %d: %s type 0x%02x, want %s",
		       what, i, r == 1 ? "" : "none,", r == 1 ? m.type : 0,
		       type_name(bc->pre[i]));
		if (r != 1 || m.type != bc->pre[i])
			ok = false;
		if (r == 1)
			rmsg_free(&m);
	}

	int r = ok ? recv_msg(&c, &m, IO_MS) : -1;
	int64_t t_err = ms_now() - t_sent;
	if (ok) {
		CHECKF(r == 1, "%s: no ERROR (%s)", what, r == 0 ? "EOF" : "timeout");
		ok = r == 1;
	}
	if (ok && (m.type != HFE_MSG_ERROR || m.size != HFE_ERROR_SIZE)) {
		CHECKF(0, "%s: got %s (size %u) instead of ERROR", what, type_name(m.type), m.size);
		ok = false;
	}
	if (ok) {
		int32_t code = (int32_t)get32(m.p);
		bool nul = memchr(m.p + 4, 0, HFE_ERROR_MSG_LEN) != NULL;
		m.p[HFE_ERROR_SIZE - 1] = 0;
		bool code_ok = code < 0 && code > -32 && (bc->codes & CODE_BIT(code));
		CHECKF(code_ok, "%s: ERROR code %d (%s)", what, code, hfe_error_name(code));
		CHECKF(nul && m.p[4] != 0, "%s: ERROR message empty or not NUL-terminated", what);
		if (bc->stall)
			CHECKF(t_err >= STALL_MS - 100 && t_err < STALL_MS + 5000,
			       "%s: TIMEOUT after %lld ms (stall timeout %d ms)", what,
			       (long long)t_err, STALL_MS);
		if (!code_ok || !nul || !m.p[4])
			ok = false;
		printf("  %s %s: %s '%s'\n", ok ? "ok  " : "FAIL", what, hfe_error_name(code),
		       (const char *)m.p + 4);
	}
	if (r == 1)
		rmsg_free(&m);
	if (ok) {
		/* Then the host closes: nothing more, EOF. */
		r = recv_msg(&c, &m, 5000);
		if (r == 1) {
			CHECKF(0, "%s: %s after the ERROR instead of EOF", what, type_name(m.type));
			rmsg_free(&m);
			ok = false;
		} else {
			CHECKF(r == 0, "%s: connection not closed after the ERROR", what);
			ok = r == 0;
		}
	}
	if (ok)
		n_cases_ok++;
	conn_close(&c);
}

static void bad_mb(const char *name, unsigned codes, struct mb *m)
{
	struct bad bc = { .name = name, .codes = codes };
	run_bad(&bc, m->b, m->n);
	mb_free(m);
}

static void bad_frame(const char *name, unsigned codes, uint8_t flags,
		      const struct frame_fields *f, size_t pix)
{
	struct mb m = { 0 };
	mb_frame(&m, flags, f, pix);
	bad_mb(name, codes, &m);
}

static void bad_config(const char *name, const struct config_fields *cf)
{
	struct mb m = { 0 };
	mb_config(&m, cf);
	bad_mb(name, E_INV, &m);
}

static void cases_framing(void)
{
	struct mb m = { 0 };

	section("framing: magic, types, directions, flags");
	mb_hdr_magic(&m, 0x51465848, HFE_MSG_PING, 0, 1, 0); /* "HXFQ" */
	bad_mb("bad magic", E_INV, &m);
	mb_hdr_magic(&m, 0x48584652, HFE_MSG_PING, 0, 1, 0); /* byte-swapped */
	bad_mb("byte-swapped magic", E_INV, &m);
	mb_msg(&m, 0x77, 0, 0);
	bad_mb("unknown type 0x77", E_INV, &m);
	mb_msg(&m, 0x00, 0, 0);
	bad_mb("unknown type 0x00", E_INV, &m);

	static const struct {
		uint8_t type;
		uint32_t size;
	} h2c[] = {
		{ HFE_MSG_FRAME_RESPONSE, HFE_FRAME_RESPONSE_SIZE },
		{ HFE_MSG_PONG, 0 },
		{ HFE_MSG_CONFIG_RESP, HFE_CONFIG_RESP_SIZE },
		{ HFE_MSG_SCANOUT_RESP, HFE_SCANOUT_RESP_SIZE },
		{ HFE_MSG_SUBSCRIBE_RESP, HFE_SUBSCRIBE_RESP_SIZE },
		{ HFE_MSG_HELLO_RESP, HFE_HELLO_RESP_SIZE },
		{ HFE_MSG_STATS_RESP, HFE_STATS_RESP_SIZE },
		{ HFE_MSG_ERROR, HFE_ERROR_SIZE },
	};
	for (size_t i = 0; i < sizeof(h2c) / sizeof(h2c[0]); i++) {
		char name[64];
		snprintf(name, sizeof(name), "host->client type %s sent to the host",
			 type_name(h2c[i].type));
		mb_msg(&m, h2c[i].type, 0, h2c[i].size);
		bad_mb(name, E_INV, &m);
	}

	mb_msg(&m, HFE_MSG_PING, HFE_FLAG_PIXEL_DATA, 0);
	bad_mb("PIXEL_DATA flag on PING", E_INV, &m);
	mb_msg(&m, HFE_MSG_PING, 0x80, 0);
	bad_mb("flag 0x80 on PING", E_INV, &m);
	struct frame_fields f = ff_default();
	bad_frame("FRAME_REQUEST flags 0x03", E_INV, 0x03, &f, 320 * 240 * 4);
	f.resource = 7;
	bad_frame("FRAME_REQUEST flags 0x40 (no PIXEL_DATA)", E_INV, 0x40, &f, 0);

	/* Several good messages, then a bad one: replies first, then ERROR. */
	for (int i = 0; i < 5; i++)
		mb_msg(&m, HFE_MSG_PING, 0, 0);
	mb_hdr_magic(&m, 0, HFE_MSG_PING, 0, 1, 0);
	static const uint8_t pongs[5] = { HFE_MSG_PONG, HFE_MSG_PONG, HFE_MSG_PONG, HFE_MSG_PONG,
					  HFE_MSG_PONG };
	struct bad bc = { .name = "bad magic after 5 PINGs", .codes = E_INV,
		.pre = pongs, .n_pre = 5 };
	run_bad(&bc, m.b, m.n);
	mb_free(&m);
}

static void cases_sizes(void)
{
	struct mb m = { 0 };
	static const struct {
		uint8_t type, flags;
		uint32_t size;
	} wrong[] = {
		{ HFE_MSG_PING, 0, 4 },
		{ HFE_MSG_KEYFRAME_REQ, 0, 1 },
		{ HFE_MSG_CONFIG_REQ, 0, HFE_CONFIG_REQ_SIZE - 1 },
		{ HFE_MSG_CONFIG_REQ, 0, HFE_CONFIG_REQ_SIZE + 1 },
		{ HFE_MSG_ENABLE_SCANOUT, 0, HFE_ENABLE_SCANOUT_SIZE - 1 },
		{ HFE_MSG_DISABLE_SCANOUT, 0, HFE_DISABLE_SCANOUT_SIZE + 1 },
		{ HFE_MSG_SUBSCRIBE, 0, HFE_SUBSCRIBE_SIZE - 1 },
		{ HFE_MSG_SUBSCRIBE, 0, 8 },
		{ HFE_MSG_HELLO, 0, HFE_HELLO_SIZE - 1 },
		{ HFE_MSG_HELLO, 0, HFE_HELLO_SIZE + 1 },
		{ HFE_MSG_FRAME_REQUEST, 0, HFE_FRAME_REQUEST_SIZE - 1 },
		{ HFE_MSG_FRAME_REQUEST, 0, HFE_FRAME_REQUEST_SIZE + 1 },
		{ HFE_MSG_FRAME_REQUEST, HFE_FLAG_PIXEL_DATA, HFE_FRAME_REQUEST_SIZE - 1 },
	};

	section("payload_size against the type and the limits");
	for (size_t i = 0; i < sizeof(wrong) / sizeof(wrong[0]); i++) {
		char name[96];
		snprintf(name, sizeof(name), "%s%s with payload_size %u", type_name(wrong[i].type),
			 wrong[i].flags ? "+PIXEL_DATA" : "", wrong[i].size);
		mb_msg(&m, wrong[i].type, wrong[i].flags, wrong[i].size);
		bad_mb(name, E_INV, &m);
	}
	/* STATS_REQ's size is wrong whatever the state: after HELLO, to be sure. */
	mb_hello(&m, 1, 2, 0, "t");
	mb_msg(&m, HFE_MSG_STATS_REQ, 0, 8);
	static const uint8_t hello_resp[1] = { HFE_MSG_HELLO_RESP };
	struct bad bc = { .name = "STATS_REQ with payload_size 8 (v2)", .codes = E_INV,
		.pre = hello_resp, .n_pre = 1 };
	run_bad(&bc, m.b, m.n);
	mb_free(&m);

	/* Over max_payload: refused from the header alone, nothing else sent. */
	mb_hdr(&m, HFE_MSG_FRAME_REQUEST, HFE_FLAG_PIXEL_DATA, MAX_PAYLOAD + 1);
	bad_mb("payload_size max_payload + 1, header only", E_TOO_LARGE, &m);
	mb_hdr(&m, HFE_MSG_FRAME_REQUEST, HFE_FLAG_PIXEL_DATA, 0xffffffffu);
	bad_mb("payload_size 0xffffffff, header only", E_TOO_LARGE, &m);
}

static void cases_frames(void)
{
	struct frame_fields f;
	const size_t pix = 320 * 240 * 4;

	section("FRAME_REQUEST fields");
	f = ff_default();
	f.w = 0;
	bad_frame("width 0", E_INV, HFE_FLAG_PIXEL_DATA, &f, pix);
	f = ff_default();
	f.w = 8;
	f.stride = 32;
	bad_frame("width 8 (below 16)", E_INV, HFE_FLAG_PIXEL_DATA, &f, pix);
	f = ff_default();
	f.w = 321;
	f.stride = 1284;
	bad_frame("odd width 321", E_INV, HFE_FLAG_PIXEL_DATA, &f, 1284 * 240);
	f = ff_default();
	f.h = 239;
	bad_frame("odd height 239", E_INV, HFE_FLAG_PIXEL_DATA, &f, pix);
	f = ff_default();
	f.w = f.h = 100000;
	f.stride = 400000;
	bad_frame("100000x100000", E_TOO_LARGE, HFE_FLAG_PIXEL_DATA, &f, 64);
	f = ff_default();
	f.w = MAX_DIM + 2;
	f.h = 16;
	f.fmt = HFE_FMT_NV12;
	f.stride = MAX_DIM + 2;
	bad_frame("width max_width + 2 (NV12)", E_TOO_LARGE, HFE_FLAG_PIXEL_DATA, &f, 64);
	f = ff_default();
	f.w = 16;
	f.h = MAX_DIM + 2;
	f.stride = 64;
	bad_frame("height max_height + 2", E_TOO_LARGE, HFE_FLAG_PIXEL_DATA, &f, 64);
	f = ff_default();
	f.stride = 320 * 4 - 4;
	bad_frame("stride < width * 4 (XR24)", E_INV, HFE_FLAG_PIXEL_DATA, &f, pix);
	f = ff_default();
	f.fmt = HFE_FMT_NV12;
	f.stride = 318;
	bad_frame("stride < width (NV12)", E_INV, HFE_FLAG_PIXEL_DATA, &f, pix);
	f = ff_default();
	f.stride = 0xfffffff0u;
	bad_frame("stride 0xfffffff0", E_INV | E_TOO_LARGE, HFE_FLAG_PIXEL_DATA, &f, pix);
	f = ff_default();
	f.stride = MAX_DIM * 4 + 4;
	bad_frame("stride max_width * 4 + 4", E_INV | E_TOO_LARGE, HFE_FLAG_PIXEL_DATA, &f, pix);
	f = ff_default();
	bad_frame("pixels one byte short (XR24)", E_INV, HFE_FLAG_PIXEL_DATA, &f, pix - 1);
	f = ff_default();
	f.fmt = HFE_FMT_NV12;
	f.stride = 320;
	bad_frame("NV12 with the Y plane only", E_INV, HFE_FLAG_PIXEL_DATA, &f, 320 * 240);
	f = ff_default();
	f.fmt = HFE_FMT_I420;
	f.stride = 320;
	bad_frame("I420 without the V plane", E_INV, HFE_FLAG_PIXEL_DATA, &f,
		  320 * 240 + 160 * 120);
	f = ff_default();
	bad_frame("no pixels at all with PIXEL_DATA", E_INV, HFE_FLAG_PIXEL_DATA, &f, 0);
	f = ff_default();
	f.fmt = HFE_FOURCC('Z', 'Z', 'Z', 'Z');
	bad_frame("bogus fourcc ZZZZ", E_INV | E_UNSUP, HFE_FLAG_PIXEL_DATA, &f, pix);
	f = ff_default();
	f.fmt = 0;
	bad_frame("fourcc 0", E_INV | E_UNSUP, HFE_FLAG_PIXEL_DATA, &f, pix);
	f = ff_default();
	f.force_kf = 7;
	bad_frame("force_keyframe 7", E_INV, HFE_FLAG_PIXEL_DATA, &f, pix);
	f = ff_default();
	f.duration = -1;
	bad_frame("negative duration", E_INV, HFE_FLAG_PIXEL_DATA, &f, pix);
	f = ff_default();
	f.resource = 0;
	bad_frame("resource_id 0 without PIXEL_DATA", E_INV, 0, &f, 0);
}

static void cases_control(void)
{
	struct mb m = { 0 };
	const struct config_fields good = { 0, 0, 3000000, 30, 1, 0, 0, 1 };
	struct config_fields cf;

	section("CONFIG_REQ, HELLO, STATS_REQ, scanout fields and states");
	cf = good;
	cf.profile = 42;
	bad_config("CONFIG_REQ profile 42", &cf);
	cf = good;
	cf.fps_num = 0;
	cf.fps_den = 1;
	bad_config("CONFIG_REQ fps 0/1", &cf);
	cf = good;
	cf.fps_den = 0;
	bad_config("CONFIG_REQ fps 30/0", &cf);
	cf = good;
	cf.fps_num = 241;
	bad_config("CONFIG_REQ fps 241/1", &cf);
	cf = good;
	cf.w = 320;
	bad_config("CONFIG_REQ width without height", &cf);
	cf = good;
	cf.bitrate = 5;
	bad_config("CONFIG_REQ bitrate 5", &cf);
	cf = good;
	cf.level = 99;
	bad_config("CONFIG_REQ level 99", &cf);
	cf = good;
	cf.realtime = 2;
	bad_config("CONFIG_REQ realtime 2", &cf);

	static const uint8_t hello_resp[1] = { HFE_MSG_HELLO_RESP };
	static const uint8_t pong[1] = { HFE_MSG_PONG };
	static const uint8_t frame_resp[1] = { HFE_MSG_FRAME_RESPONSE };
	struct bad bc;

	mb_hello(&m, 1, 2, 0, "first");
	mb_hello(&m, 1, 2, 0, "second");
	bc = (struct bad){ .name = "HELLO twice", .codes = E_PROTO,
		.pre = hello_resp, .n_pre = 1 };
	run_bad(&bc, m.b, m.n);
	mb_free(&m);

	mb_msg(&m, HFE_MSG_PING, 0, 0);
	mb_hello(&m, 1, 2, 0, "late");
	bc = (struct bad){ .name = "HELLO after a PING", .codes = E_PROTO,
		.pre = pong, .n_pre = 1 };
	run_bad(&bc, m.b, m.n);
	mb_free(&m);

	/* Replies keep request order: the valid frame sent before the bad HELLO
	 * is answered before the ERROR, as the PONG above is. */
	mb_pattern_frame(&m, HFE_FMT_NV12, 64, 64, 1, 5);
	mb_hello(&m, 1, 2, 0, "late");
	bc = (struct bad){ .name = "HELLO after a frame", .codes = E_PROTO,
		.pre = frame_resp, .n_pre = 1 };
	run_bad(&bc, m.b, m.n);
	mb_free(&m);

	mb_hello(&m, 9, 9, 0, "future");
	bad_mb("HELLO versions 9..9", E_VERSION, &m);
	mb_hello(&m, 3, 7, 0, "future");
	bad_mb("HELLO versions 3..7", E_VERSION, &m);
	mb_hello(&m, 0, 2, 0, "zero");
	bad_mb("HELLO version_min 0", E_INV, &m);
	mb_hello(&m, 2, 1, 0, "backwards");
	bad_mb("HELLO version_max < version_min", E_INV, &m);
	mb_hello(&m, 1, 2, 1, "flags");
	bad_mb("HELLO flags 1", E_INV, &m);
	mb_hello(&m, 1, 2, 0, "AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA"); /* 32 bytes, no NUL */
	bad_mb("HELLO name without NUL", E_INV, &m);

	mb_msg(&m, HFE_MSG_STATS_REQ, 0, 0);
	bad_mb("STATS_REQ without HELLO", E_PROTO, &m);

}

static void cases_stalls(void)
{
	struct mb m = { 0 };
	struct bad bc = { .codes = E_TIMEOUT, .stall = true };
	struct frame_fields f = ff_default();

	section("stalls mid-message, early close, garbage");
	mb_msg(&m, HFE_MSG_PING, 0, 0);
	bc.name = "7 bytes of a header, then silence";
	run_bad(&bc, m.b, 7);
	mb_free(&m);

	mb_hdr(&m, HFE_MSG_FRAME_REQUEST, HFE_FLAG_PIXEL_DATA,
	       HFE_FRAME_REQUEST_SIZE + 320 * 240 * 4);
	bc.name = "FRAME_REQUEST header, then silence";
	run_bad(&bc, m.b, m.n);
	mb_free(&m);

	mb_frame(&m, HFE_FLAG_PIXEL_DATA, &f, 320 * 240 * 4);
	bc.name = "FRAME_REQUEST with half its pixels, then silence";
	run_bad(&bc, m.b, m.n / 2);
	mb_free(&m);

	/* Closing in the middle: no reply possible; the daemon must not mind. */
	mb_frame(&m, HFE_FLAG_PIXEL_DATA, &f, 320 * 240 * 4);
	bc = (struct bad){ .name = "close in the middle of the pixels", .close_after = true };
	run_bad(&bc, m.b, m.n / 3);
	bc.name = "close in the middle of a header";
	run_bad(&bc, m.b, 5);
	mb_free(&m);

	/* Garbage (fixed seeds). */
	uint8_t g[4096];
	rnd_fill(g, sizeof(g), 12345);
	if (get32(g) == HFE_MAGIC)
		g[0] ^= 1;
	bc = (struct bad){ .name = "4 KiB of random bytes", .codes = E_INV };
	run_bad(&bc, g, sizeof(g));
	for (uint32_t seed = 1; seed <= 3; seed++) {
		char name[64];
		rnd_fill(g, sizeof(g), seed * 7919);
		put32(g, HFE_MAGIC);
		snprintf(name, sizeof(name), "magic + random bytes (seed %u)", seed * 7919);
		/* Whatever the random header says, the host must end it with an ERROR
		 * that closes (the stall timer's, if it waits for more payload). */
		bc = (struct bad){ .name = name, .codes = E_ANY_CLOSING };
		run_bad(&bc, g, sizeof(g));
	}
}

/* The host is alive and serves a brand-new client. */
static bool fresh_client_ok(const char *why)
{
	struct chk k = { .who = why };
	struct tconn c = { connect_unix(dm.sock) };
	struct fstream fs;
	struct mb m = { 0 };
	struct expect e = { 31337, 64, 48, 123456789 };

	CHECKF(kill(dm.pid, 0) == 0, "%s: daemon is gone", why);
	CHECKF(c.fd >= 0, "%s: cannot connect", why);
	if (c.fd < 0)
		return false;
	fs_init(&fs, &k, true);
	mb_pattern_frame(&m, HFE_FMT_ABGR8888, e.w, e.h, e.no, e.pts);
	CHECK(io_send(&c, m.b, m.n, IO_MS) == 0);
	int kf = fs_recv(&fs, &c, &e, IO_MS);
	fs_finish(&fs);
	CHECKF(kf == 1 && atomic_load(&k.failures) == 0, "%s: new client's frame not served",
	       why);
	mb_free(&m);
	conn_close(&c);
	return kf == 1;
}

/*
 * A client that sends frames and never reads: the host must stop reading
 * from it (its writes stall), its memory must stay bounded, and the healthy
 * client must keep its pace. Afterwards the client reads and gets every
 * frame it sent answered, in order.
 */
static void test_throttle(struct healthy *hs)
{
	enum { W = 320, H = 240, MAX_FRAMES = 600 };
	const size_t fsz = (size_t)W * H * 4;
	struct tconn c = { connect_unix(dm.sock) };
	struct mb m = { 0 };
	struct chk k = { .who = "throttled client" };
	struct fstream fs;
	int64_t sent_pts[MAX_FRAMES];
	int frames_sent = 0; /* completely written */
	size_t off = 0;      /* bytes of the current frame written */

	section("a client that never reads is throttled");
	REQUIRE(c.fd >= 0);

	/* Pace of the healthy client before. */
	int h0 = atomic_load(&hs->frames);
	usleep(1000000);
	double rate_before = atomic_load(&hs->frames) - h0;
	long rss0 = rss_kb(dm.pid);
	CHECK(rss0 > 0);

	/* Noise at a high bitrate: big replies fill the queues quickly. */
	struct config_fields cf = { 0, 0, 50000000, 30, 1, 0, 0, 1 };
	mb_config(&m, &cf);
	REQUIRE(io_send(&c, m.b, m.n, IO_MS) == 0);
	m.n = 0;
	struct frame_fields f = ff_default();
	mb_frame(&m, HFE_FLAG_PIXEL_DATA, &f, fsz);
	REQUIRE(m.n == HFE_HEADER_SIZE + HFE_FRAME_REQUEST_SIZE + fsz);

	int64_t t0 = ms_now(), last_progress = t0;
	bool stalled = false;
	while (frames_sent < MAX_FRAMES) {
		if (off == 0) {
			int64_t pts = (int64_t)frames_sent * FRAME_NS;
			put64(m.b + HFE_HEADER_SIZE + 20, (uint64_t)pts);
			rnd_fill(m.b + HFE_HEADER_SIZE + HFE_FRAME_REQUEST_SIZE, fsz,
				 (uint32_t)frames_sent + 99);
			sent_pts[frames_sent] = pts;
		}
		ssize_t n = send(c.fd, m.b + off, m.n - off, MSG_NOSIGNAL);
		if (n > 0) {
			off += (size_t)n;
			if (off == m.n) {
				frames_sent++;
				off = 0;
			}
			last_progress = ms_now();
			continue;
		}
		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0 && errno != EAGAIN) {
			CHECKF(0, "throttled client: send: %s", strerror(errno));
			break;
		}
		/* Retry the write itself: POLLOUT on a unix socket waits for 3/4 of
		 * the buffer to be free, and would miss small reads by the host. */
		if (ms_now() - last_progress >= 1500) {
			stalled = true;
			break;
		}
		usleep(20000);
	}
	printf("  writes stalled after %d frames (%.1f MB) in %.2f s\n", frames_sent,
	       (double)((size_t)frames_sent * m.n + off) / 1e6, (double)(ms_now() - t0) / 1000.0);
	CHECKF(stalled, "the host kept reading %d frames from a client that never reads",
	       frames_sent);

	/* Hold the stall: the host must not read on, memory must stay put, the
	 * healthy client must keep its pace. */
	long rss_max = 0;
	int h1 = atomic_load(&hs->frames);
	int64_t t1 = ms_now();
	for (int i = 0; i < 20; i++) {
		usleep(100000);
		long r = rss_kb(dm.pid);
		if (r > rss_max)
			rss_max = r;
	}
	double secs = (double)(ms_now() - t1) / 1000.0;
	double rate_during = (atomic_load(&hs->frames) - h1) / secs;
	printf("  daemon VmRSS %ld kB before, max %ld kB while throttled (bound +%d kB)\n", rss0,
	       rss_max, RSS_BOUND_KB);
	printf("  healthy client: %.0f fps before, %.0f fps while the other is throttled\n",
	       rate_before, rate_during);
	CHECKF(rss_max - rss0 < RSS_BOUND_KB, "daemon RSS grew by %ld kB", rss_max - rss0);
	CHECKF(rate_during >= 0.5 * rate_before, "healthy client slowed to %.0f fps from %.0f",
	       rate_during, rate_before);
	if (stalled) {
		ssize_t n = send(c.fd, m.b + off, m.n - off, MSG_NOSIGNAL | MSG_DONTWAIT);
		CHECKF(n < 0 && errno == EAGAIN, "the host read on from a throttled client (%zd)",
		       n);
		if (n > 0) {
			off += (size_t)n;
			if (off == m.n) {
				frames_sent++;
				off = 0;
			}
		}
	}

	/* Now read: every frame written gets its reply, in order, while the
	 * partly written frame is completed. */
	fs_init(&fs, &k, false);
	int replies = 0;
	int64_t deadline = ms_now() + 60000;
	while (replies < frames_sent + (off ? 1 : 0) && ms_now() < deadline) {
		if (off) {
			ssize_t n = send(c.fd, m.b + off, m.n - off, MSG_NOSIGNAL | MSG_DONTWAIT);
			if (n > 0) {
				off += (size_t)n;
				if (off == m.n) {
					frames_sent++;
					off = 0;
				}
			}
		}
		struct pollfd pf = { .fd = c.fd, .events = POLLIN };
		if (poll(&pf, 1, 100) <= 0)
			continue;
		struct expect e = { (uint32_t)replies, W, H, sent_pts[replies] };
		if (fs_recv(&fs, &c, &e, IO_MS) < 0)
			break;
		replies++;
	}
	fs_finish(&fs);
	CHECKF(replies == frames_sent && atomic_load(&k.failures) == 0,
	       "throttled client: %d replies for %d frames, %d bad", replies, frames_sent,
	       atomic_load(&k.failures));
	printf("  afterwards: %d of %d frames answered in order\n", replies, frames_sent);
	mb_free(&m);
	conn_close(&c);
}

static int send_ping(struct tconn *c, uint16_t sid)
{
	uint8_t ping[HFE_HEADER_SIZE];

	put_hdr(ping, HFE_MAGIC, HFE_MSG_PING, 0, sid, 0);
	return io_send(c, ping, sizeof(ping), IO_MS);
}

/* --max-clients: the N+1th connection gets ERROR BUSY and is closed. */
static void test_busy(void)
{
	enum { N = 3 };
	char sock[256], log[256], arg[300];
	struct tconn c[N + 1];
	struct rmsg m;

	for (int i = 0; i <= N; i++) /* none open yet, for the close at `out` */
		c[i] = (struct tconn){ .fd = -1 };

	section("--max-clients 3: the 4th client gets ERROR BUSY");
	snprintf(sock, sizeof(sock), "%s/busy.sock", tmpdir);
	snprintf(log, sizeof(log), "%s/busy.log", tmpdir);
	snprintf(arg, sizeof(arg), "unix:%s", sock);
	const char *args[] = { "--listen", arg, "--max-clients", "3", NULL };
	pid_t pid = start_daemon(args, log, sock, 0);
	REQUIRE(pid > 0);

	/* The start-up probe may still count: wait until N clients are served. */
	for (int i = 0; i < N; i++) {
		int64_t deadline = ms_now() + 5000;
		for (;;) {
			c[i].fd = connect_unix(sock);
			REQUIRE(c[i].fd >= 0);
			REQUIRE(send_ping(&c[i], (uint16_t)i) == 0);
			int r = recv_msg(&c[i], &m, IO_MS);
			bool pong = r == 1 && m.type == HFE_MSG_PONG;
			if (r == 1)
				rmsg_free(&m);
			if (pong)
				break;
			conn_close(&c[i]);
			CHECKF(ms_now() < deadline, "client %d never served below the limit", i);
			if (ms_now() >= deadline)
				goto out;
			usleep(50000);
		}
	}
	c[N].fd = connect_unix(sock);
	REQUIRE(c[N].fd >= 0);
	int r = recv_msg(&c[N], &m, IO_MS);
	CHECKF(r == 1 && m.type == HFE_MSG_ERROR && m.size == HFE_ERROR_SIZE,
	       "4th client: no ERROR (r %d type 0x%02x)", r, r == 1 ? m.type : 0);
	if (r == 1 && m.type == HFE_MSG_ERROR && m.size == HFE_ERROR_SIZE) {
		m.p[HFE_ERROR_SIZE - 1] = 0;
		CHECKF((int32_t)get32(m.p) == HFE_ERR_BUSY, "4th client: ERROR %d",
		       (int32_t)get32(m.p));
		CHECK(m.p[4] != 0);
		printf("  4th client: %s '%s'\n", hfe_error_name((int32_t)get32(m.p)),
		       (const char *)m.p + 4);
	}
	if (r == 1)
		rmsg_free(&m);
	r = recv_msg(&c[N], &m, 5000);
	CHECKF(r == 0, "4th client: not closed after BUSY");
	if (r == 1)
		rmsg_free(&m);
	conn_close(&c[N]);

	/* The first three are unaffected; after one leaves, a new one gets in. */
	for (int i = 0; i < N; i++) {
		REQUIRE(send_ping(&c[i], 0) == 0);
		r = recv_msg(&c[i], &m, IO_MS);
		CHECKF(r == 1 && m.type == HFE_MSG_PONG, "client %d lost after the BUSY", i);
		if (r == 1)
			rmsg_free(&m);
	}
	conn_close(&c[0]);
	bool in = false;
	int64_t deadline = ms_now() + 5000;
	while (!in && ms_now() < deadline) {
		struct tconn x = { connect_unix(sock) };
		if (x.fd >= 0 && send_ping(&x, 0) == 0 &&
		    recv_msg(&x, &m, IO_MS) == 1) {
			in = m.type == HFE_MSG_PONG;
			rmsg_free(&m);
		}
		conn_close(&x);
		if (!in)
			usleep(50000);
	}
	CHECKF(in, "no client admitted after one of the 3 left");
out:
	for (int i = 0; i < N; i++)
		conn_close(&c[i]);
	int st = kill_wait(pid, SIGTERM, 10000);
	CHECKF(WIFEXITED(st) && WEXITSTATUS(st) == 0, "busy daemon: exit status 0x%x", st);
}

int main(void)
{
	int skip = harness_setup("hfe-tm");

	if (skip)
		return skip;
	/* No reply here comes near 64 MiB: a larger payload_size is garbage. */
	recv_max_payload = 64u << 20;
#ifdef UNDER_ASAN
	/* ASan's quarantine of freed frames would swamp the RSS bound. */
	{
		const char *old = getenv("ASAN_OPTIONS");
		char opts[1024];
		snprintf(opts, sizeof(opts), "%s%squarantine_size_mb=16", old ? old : "",
			 old && old[0] ? ":" : "");
		setenv("ASAN_OPTIONS", opts, 1);
	}
#endif

	char mp[32], md[16], st[16], mq[32], mi[16];
	daemon_init(&dm, "m.sock");
	snprintf(mp, sizeof(mp), "%uM", MAX_PAYLOAD >> 20);
	snprintf(md, sizeof(md), "%d", MAX_DIM);
	snprintf(st, sizeof(st), "%d", STALL_MS);
	snprintf(mq, sizeof(mq), "%u", MAX_QUEUE);
	snprintf(mi, sizeof(mi), "%d", MAX_INFLIGHT);
	const char *args[] = { "--listen",        dm.listen_unix, "--listen",       dm.listen_tcp,
			       "--max-payload",   mp,             "--max-width",    md,
			       "--max-height",    md,             "--stall-timeout", st,
			       "--max-queue",     mq,             "--max-inflight", mi,
			       NULL };
	section("starting the daemon");
	dm.pid = start_daemon(args, dm.log, dm.sock, 0);
	REQUIRE(dm.pid > 0);

	struct healthy hs = { .k = { .who = "healthy client" } };
	struct loris ls = { .k = { .who = "slow loris" } };
	REQUIRE(pthread_create(&hs.th, NULL, healthy_main, &hs) == 0);
	int64_t deadline = ms_now() + IO_MS;
	while (atomic_load(&hs.frames) < 5 && ms_now() < deadline &&
	       atomic_load(&hs.k.failures) == 0)
		usleep(10000);
	CHECKF(atomic_load(&hs.frames) >= 5, "healthy client does not get going");
	REQUIRE(pthread_create(&ls.th, NULL, loris_main, &ls) == 0);

	cases_framing();
	cases_sizes();
	cases_frames();
	cases_control();
	cases_stalls();
	printf("  %d of %d bad inputs answered with the right ERROR and a close\n", n_cases_ok,
	       n_cases);
	CHECK(n_cases >= 30);
	CHECK(n_cases_ok == n_cases);
	fresh_client_ok("after the bad inputs");

	test_throttle(&hs);

	section("slow loris and the healthy client");
	pthread_join(ls.th, NULL);
	printf("  slow loris: frame sent over %.1f s (stall timeout %d ms): %s\n",
	       (double)ls.ms_taken / 1000.0, STALL_MS, ls.ok ? "answered" : "NOT answered");
	CHECKF(ls.ok && atomic_load(&ls.k.failures) == 0, "slow loris not served");
	CHECKF(ls.ms_taken > 4 * STALL_MS, "slow loris was too fast to prove anything");

	atomic_store(&hs.stop, true);
	pthread_join(hs.th, NULL);
	printf("  healthy client: %d frames, %d keyframes, min PSNR Y %.1f dB, max round trip "
	       "%lld ms, %d failures\n",
	       atomic_load(&hs.frames), hs.keyframes, hs.min_y, (long long)hs.max_rtt_ms,
	       atomic_load(&hs.k.failures));
	CHECKF(atomic_load(&hs.k.failures) == 0, "the healthy client saw failures");
	/* 100 frames natively; emulated encodes (HFE_TEST_TIME_SCALE) make fewer in the time. */
	CHECKF(atomic_load(&hs.frames) >= (int)(100 / tu_time_scale()),
	       "the healthy client made little progress");

	section("the daemon survived");
	CHECK(kill(dm.pid, 0) == 0);
	fresh_client_ok("at the end");

	test_busy();

	section("SIGTERM");
	int status = kill_wait(dm.pid, SIGTERM, 20000);
	CHECKF(WIFEXITED(status) && WEXITSTATUS(status) == 0, "daemon exit status 0x%x", status);
	if (tu_failures)
		show_log(dm.log);
	return harness_finish("test_malformed");
}
