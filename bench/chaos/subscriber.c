/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * A chaotic scanout subscriber. Each connection (unix for odd actors, TCP for
 * even ones; v2 with HELLO on every other connection, v1 like the deployed
 * bridge otherwise) subscribes to a scanout, then, until it ends, alternates
 * reading for a while with one of: not reading at all for up to 6 s (the
 * daemon must skip it to an IDR, never hand it a broken stream), a burst of
 * KEYFRAME_REQ, a burst of CONFIG_REQ with random bitrates, SUBSCRIBE again
 * (the same scanout or another on the same connection). It ends with a close,
 * a reset (SO_LINGER 0) or a half-close read to EOF, and reconnects.
 *
 * Checked on every access unit: it belongs to a subscription of this
 * connection, the first of each subscription is an IDR, is_keyframe says
 * whether it holds an IDR, and libavcodec decodes it with errors fatal (one
 * decoder per subscription, from its first IDR on). A healthy subscriber gets
 * no ERROR and is never dropped by the daemon.
 */
#include <errno.h>
#include <stdio.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "chaos.h"
#include "hfe/client.h"
#include "hfe/wire.h"
#include "test_util.h"

#define MAX_SO 16
/* After our half-close the daemon must notice the EOF and stop queueing: an AU
 * whose picture changed (pts: the host's CLOCK_MONOTONIC at the damage) this
 * long after it was queued after the EOF. */
#define LATE_NS 2000000000

struct sub_stream {
	bool subscribed, have_idr;
	struct tu_decoder *dec;
	uint64_t fed, pics;
	bool waiting_idr; /* a connect/subscribe or KEYFRAME_REQ wants its IDR timed */
	enum chaos_sample wait_kind;
	double wait_since;
};

/* A VM whose console a subscriber watches: its channel, how many times it
 * was stopped or rebooted, and where its IDR times are filed. */
struct watched_vm {
	const char *addr;
	unsigned (*generation)(double *since_ms);
	enum chaos_sample sub_idr, restart_idr;
};

static const struct watched_vm stock_vm = {
	chaos_cfg.vm_addr, vm_generation, S_VM_SUB_IDR, S_VM_RESTART_IDR,
};
static const struct watched_vm module_vm = {
	chaos_cfg.module_addr, module_generation, S_MOD_SUB_IDR, S_MOD_REBOOT_IDR,
};

struct sub {
	struct actor *a;
	struct hfe_client *c;
	bool v2;
	const struct watched_vm *vm; /* kind 1: the stock VM's console, 2: the module's;
				      * NULL: the daemon's test scanouts */
	double connected_at;
	unsigned vm_gen;    /* the QEMU whose IDR came last */
	struct sub_stream so[MAX_SO];
	unsigned pending_resp; /* SUBSCRIBE_RESPs owed */
	uint64_t rx_msgs;      /* messages received on this connection */
	int64_t half_closed_ns; /* CLOCK_MONOTONIC of our half-close, 0 before */
	unsigned late;          /* AUs damaged > LATE_NS after it */
};

static void stream_reset(struct sub_stream *s)
{
	tu_decoder_free(s->dec);
	memset(s, 0, sizeof(*s));
}

/* The end of a subscription's stream: remaining pictures out, every AU fed
 * must have given one. */
static void stream_finish(struct sub *sb, struct sub_stream *s, unsigned id)
{
	struct tu_yuv pic;

	if (s->dec) {
		while (tu_decoder_flush(s->dec, &pic) == 1) {
			s->pics++;
			atomic_fetch_add(&chaos_dec.checked, 1);
			tu_yuv_free(&pic);
		}
		if (s->pics != s->fed)
			chaos_fail(sb->a->name, "scanout %u: %llu access units decoded to %llu pictures",
				   id, (unsigned long long)s->fed, (unsigned long long)s->pics);
	}
	stream_reset(s);
}

static void wait_idr(struct sub_stream *s, enum chaos_sample kind)
{
	if (s->waiting_idr)
		return;
	s->waiting_idr = true;
	s->wait_kind = kind;
	s->wait_since = chaos_ms();
}

static void on_au(struct sub *sb, const struct hfe_msg *m)
{
	unsigned id = m->hdr.session_id;
	struct sub_stream *s = id < MAX_SO ? &sb->so[id] : NULL;
	const uint8_t *au;
	uint32_t len;
	size_t pos = 0;

	atomic_fetch_add(&chaos_dec.aus, 1);
	if (sb->half_closed_ns && m->u.frame_resp.pts > sb->half_closed_ns + LATE_NS)
		sb->late++;
	if (!s || !s->subscribed) {
		chaos_fail(sb->a->name, "an access unit for scanout %u, not subscribed", id);
		return;
	}
	if (!hfe_nal_next(m, &pos, &au, &len)) {
		chaos_fail(sb->a->name, "scanout %u: FRAME_RESPONSE without an access unit", id);
		return;
	}
	atomic_fetch_add(&chaos_dec.bytes, len);
	if (!s->have_idr) {
		if (!m->u.frame_resp.is_keyframe) {
			chaos_fail(sb->a->name, "scanout %u: subscription starts with a P frame", id);
			return;
		}
		s->have_idr = true;
		s->dec = tu_decoder_new();
		REQUIRE(s->dec);
	}

	struct tu_yuv pic;
	struct tu_nals nals;
	int r = tu_decoder_decode(s->dec, au, len, &pic, &nals);
	s->fed++;
	if (r < 0) {
		atomic_fetch_add(&chaos_dec.corrupted, 1);
		chaos_fail(sb->a->name, "scanout %u: access unit %llu (%u bytes, %s) does not decode",
			   id, (unsigned long long)s->fed, len,
			   m->u.frame_resp.is_keyframe ? "IDR" : "P");
		/* Later units depend on it: start again at the next IDR. */
		tu_decoder_free(s->dec);
		s->dec = NULL;
		s->have_idr = false;
		s->fed = s->pics = 0;
		return;
	}
	if (r == 1) {
		s->pics++;
		atomic_fetch_add(&chaos_dec.checked, 1);
		tu_yuv_free(&pic);
	}
	if (!!m->u.frame_resp.is_keyframe != nals.has_idr)
		chaos_fail(sb->a->name, "scanout %u: is_keyframe %u but %s IDR slice", id,
			   m->u.frame_resp.is_keyframe, nals.has_idr ? "an" : "no");
	if (nals.has_idr && s->waiting_idr) {
		sample_add(sb->vm ? sb->vm->sub_idr : s->wait_kind, chaos_ms() - s->wait_since);
		s->waiting_idr = false;
	}
	if (nals.has_idr && sb->vm) {
		double down;
		unsigned gen = sb->vm->generation(&down);
		if (gen != sb->vm_gen && sb->connected_at < down)
			sample_add(sb->vm->restart_idr, chaos_ms() - down);
		sb->vm_gen = gen;
	}
}

/* Read and check messages for ms. Returns 0, or -1 when the connection
 * ended (eof_ok: an EOF is what we asked for). */
static int pump(struct sub *sb, int ms, bool eof_ok)
{
	double end = chaos_ms() + ms;
	struct hfe_msg m;
	struct hfe_err err = { 0 };

	for (;;) {
		int left = (int)(end - chaos_ms());
		if (left <= 0)
			return 0;
		int r = hfe_client_recv(sb->c, &m, left, &err);
		if (r == 0)
			return 0;
		if (r < 0) {
			if (!eof_ok && chaos_running())
				chaos_fail(sb->a->name, "dropped by the daemon: %s", err.msg);
			return -1;
		}
		sb->rx_msgs++;
		switch (m.hdr.type) {
		case HFE_MSG_FRAME_RESPONSE:
			on_au(sb, &m);
			break;
		case HFE_MSG_SUBSCRIBE_RESP:
			if (!m.u.subscribe_resp.success)
				chaos_fail(sb->a->name, "SUBSCRIBE %u refused",
					   m.u.subscribe_resp.scanout_id);
			if (sb->pending_resp)
				sb->pending_resp--;
			break;
		case HFE_MSG_CONFIG_RESP:
		case HFE_MSG_PONG:
			break;
		case HFE_MSG_ERROR:
			chaos_fail(sb->a->name, "ERROR %d: %s", m.u.error.code, m.u.error.message);
			break;
		default:
			chaos_fail(sb->a->name, "unexpected message 0x%02x", m.hdr.type);
		}
	}
}

static int send_simple(struct sub *sb, uint8_t type, unsigned sid)
{
	struct hfe_msg m = { .hdr = { .type = type, .session_id = (uint16_t)sid } };
	struct hfe_err err = { 0 };

	if (type == HFE_MSG_SUBSCRIBE)
		m.u.scanout_id = sid;
	if (hfe_client_send_msg(sb->c, &m, 5000, &err) < 0) {
		if (chaos_running())
			chaos_fail(sb->a->name, "send %s: %s", hfe_msg_type_name(type), err.msg);
		return -1;
	}
	return 0;
}

static int subscribe(struct sub *sb, unsigned id, double since)
{
	struct sub_stream *s = &sb->so[id];

	if (!s->subscribed) {
		s->subscribed = true;
		s->waiting_idr = true;
		s->wait_kind = S_SUB_RECONNECT_IDR;
		s->wait_since = since;
	}
	sb->pending_resp++;
	return send_simple(sb, HFE_MSG_SUBSCRIBE, id);
}

static int config_burst(struct sub *sb, unsigned id)
{
	struct rng *r = &sb->a->rng;
	unsigned n = rng_range(r, 1, 5);
	struct hfe_config_req cfg = { .fps_num = 60, .fps_den = 1, .profile = 66, .level = 40,
				      .realtime = 1 };
	struct hfe_err err = { 0 };

	for (unsigned i = 0; i < n; i++) {
		cfg.bitrate = rng_range(r, 5, 80) * 100000u;
		if (hfe_client_send_config(sb->c, (uint16_t)id, &cfg, 5000, &err) < 0) {
			if (chaos_running())
				chaos_fail(sb->a->name, "CONFIG_REQ: %s", err.msg);
			return -1;
		}
	}
	return 0;
}

static void connection_end(struct sub *sb)
{
	for (unsigned i = 0; i < MAX_SO; i++)
		if (sb->so[i].subscribed)
			stream_finish(sb, &sb->so[i], i);
	hfe_client_close(sb->c);
	sb->c = NULL;
}

/* One connection's life. */
static void session(struct sub *sb, const char *addr)
{
	struct rng *r = &sb->a->rng;
	struct hfe_err err = { 0 };
	double t0 = chaos_ms();
	unsigned n_so = sb->vm ? 1 : chaos_cfg.n_scanouts;

	sb->c = hfe_client_connect(addr, 5000, &err);
	if (!sb->c) {
		chaos_fail(sb->a->name, "connect %s: %s", addr, err.msg);
		chaos_sleep(500);
		return;
	}
	sb->connected_at = t0;
	sb->half_closed_ns = 0;
	sb->vm_gen = sb->vm ? sb->vm->generation(&(double){ 0 }) : 0;
	sb->v2 = rng_pct(r, 50);
	if (sb->v2 && hfe_client_hello(sb->c, sb->a->name, NULL, 5000, &err) < 0) {
		chaos_fail(sb->a->name, "HELLO: %s", err.msg);
		connection_end(sb);
		return;
	}
	unsigned first = (sb->a->id + rng_range(r, 0, 1)) % n_so;
	if (subscribe(sb, first, t0) < 0) {
		connection_end(sb);
		return;
	}
	ev_add(EV_SUB_CONNECT, 1);
	if (rng_pct(r, 60) && config_burst(sb, first) < 0) { /* as the deployed bridge does */
		connection_end(sb);
		return;
	}

	double life_end = chaos_ms() + rng_range(r, 2000, 20000);
	while (chaos_running() && chaos_ms() < life_end) {
		if (pump(sb, (int)rng_range(r, 200, 2500), false) < 0) {
			connection_end(sb);
			return;
		}
		unsigned what = rng_range(r, 0, 99);
		unsigned id = rng_range(r, 0, n_so - 1);
		int rc = 0;
		if (what < 20) {
			ev_add(EV_SUB_STALL, 1);
			chaos_sleep((int)rng_range(r, 300, 6000)); /* not reading */
		} else if (what < 35) {
			ev_add(EV_SUB_KEYFRAME_BURST, 1);
			for (unsigned i = 0; i < MAX_SO; i++)
				if (sb->so[i].subscribed && sb->so[i].have_idr)
					wait_idr(&sb->so[i], S_SUB_KEYFRAME_IDR);
			for (unsigned i = rng_range(r, 1, 8); i > 0 && rc == 0; i--)
				rc = send_simple(sb, HFE_MSG_KEYFRAME_REQ, first);
		} else if (what < 50) {
			ev_add(EV_SUB_CONFIG_BURST, 1);
			rc = config_burst(sb, sb->so[id].subscribed ? id : first);
		} else if (what < 60) {
			ev_add(EV_SUB_RESUBSCRIBE, 1);
			rc = subscribe(sb, id, chaos_ms());
		} else if (what < 65) {
			rc = send_simple(sb, HFE_MSG_PING, 0);
		}
		if (rc < 0) {
			connection_end(sb);
			return;
		}
	}
	if (!chaos_running()) {
		connection_end(sb);
		return;
	}

	/* The end: close, reset or half-close. */
	unsigned how = rng_range(r, 0, 2);
	int fd = hfe_client_fd(sb->c);
	if (how == 0) {
		ev_add(EV_SUB_CLOSE, 1);
	} else if (how == 1) {
		struct linger lg = { .l_onoff = 1, .l_linger = 0 };
		setsockopt(fd, SOL_SOCKET, SO_LINGER, &lg, sizeof(lg));
		ev_add(EV_SUB_RESET, 1);
	} else {
		/* The daemon must notice the EOF and close its side soon; what it
		 * sends until then must still decode. */
		ev_add(EV_SUB_HALF_CLOSE, 1);
		if (shutdown(fd, SHUT_WR) < 0) {
			chaos_fail(sb->a->name, "shutdown: %s", strerror(errno));
		} else {
			/* What was queued before the EOF still comes (a slow reader
			 * behind MBs of TCP buffers on a loaded machine takes many
			 * seconds); nothing damaged after it may come, and then the
			 * daemon must close (not stay silent for 5 s). */
			double t = chaos_ms(), last = t;
			uint64_t seen = sb->rx_msgs;
			int rc = 0;
			sb->half_closed_ns = (int64_t)tu_now_ns();
			sb->late = 0;
			while (rc == 0 && chaos_running() && chaos_ms() - last < 5000 &&
			       chaos_ms() - t < 60000) {
				rc = pump(sb, 500, true);
				if (sb->rx_msgs != seen) {
					seen = sb->rx_msgs;
					last = chaos_ms();
				}
			}
			if (sb->late)
				chaos_fail(sb->a->name, "%u access units of pictures changed more than "
					   "2 s after our half-close: the daemon streamed on after the EOF",
					   sb->late);
			if (rc < 0)
				sample_add(S_SUB_HALF_CLOSE_EOF, chaos_ms() - t);
			else if (chaos_running())
				chaos_fail(sb->a->name, "half-closed %.1f s ago, the daemon keeps the "
					   "connection (last message %.1f s ago)",
					   (chaos_ms() - t) / 1000, (chaos_ms() - last) / 1000);
		}
	}
	connection_end(sb);
}

void *subscriber_main(void *arg)
{
	struct sub sb = { .a = arg };

	sb.vm = sb.a->kind == 1 ? &stock_vm : sb.a->kind == 2 ? &module_vm : NULL;
	const char *addr = sb.vm ? sb.vm->addr
				 : sb.a->id % 2 == 0 ? chaos_cfg.tcp_addr : chaos_cfg.addr;
	/* Start at staggered times, as real clients do. */
	chaos_sleep((int)rng_range(&sb.a->rng, 0, 1000));
	while (chaos_running()) {
		session(&sb, addr);
		chaos_sleep((int)rng_range(&sb.a->rng, 0, 500));
	}
	return NULL;
}
