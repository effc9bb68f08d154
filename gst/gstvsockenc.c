/* SPDX-License-Identifier: LGPL-2.1-or-later */
/**
 * SECTION:element-vsockenc
 * @title: vsockenc
 *
 * Encodes raw video to H.264 on a helix-frame-export host. Each frame is sent
 * to the host (HXFR protocol, docs/protocol.md) and the access unit it
 * returns is pushed downstream, so a VM guest gets host-speed encoding.
 *
 * ## Example
 * |[
 * gst-launch-1.0 videotestsrc ! video/x-raw,format=NV12,width=1280,height=720 ! \
 *     vsockenc address=vsock:2:5000 bitrate=4000 ! h264parse ! mp4mux ! filesink location=out.mp4
 * ]|
 *
 * ## How it works
 * The streaming thread sends frames (handle_frame); a task on the source pad
 * receives the replies and finishes the frames in order. Up to max-inflight
 * frames are outstanding, so sending frame N+1 never waits for frame N's
 * reply. The one hfe_client is shared under client_lock; nobody holds that
 * lock while waiting for the socket except the sender during a write, and
 * the receiver is woken after every send because a send may have buffered
 * replies that arrived while it waited. The receiver waits in a GstHfeWait
 * (gsthfewait.h, shared with hfescanoutsrc): senders wake it, stopping sets
 * it flushing; the streaming thread waits for a slot on a GCond.
 *
 * Locks, in the order they may be taken: the encoder's stream lock, then
 * client_lock, then lock (state, pending queue). The object lock guards the
 * properties and is never held with another lock.
 */
#include "gstvsockenc.h"

#include <string.h>

#ifdef HAVE_GST_ALLOCATORS
#include <gst/allocators/allocators.h>
#endif

#include "gsthfeaddr.h"
#include "gsthfeelements.h"
#include "gsthfewait.h"
#include "gstvirtgpu.h"
#include "hfe/client.h"
#include "hfe/h264.h"
#include "hfe/wire.h"

GST_DEBUG_CATEGORY_STATIC(gst_vsock_enc_debug);
#define GST_CAT_DEFAULT gst_vsock_enc_debug

#define SESSION_ID 1 /* as deployed guests use */
#define HELLO_TIMEOUT_MAX_MS 2000
#define RECONNECT_MIN_MS 100
#define RECONNECT_MAX_MS 5000
#define RECV_POLL_MS 100

#define DEFAULT_BITRATE 0
#define DEFAULT_KEY_INT_MAX 0
#define DEFAULT_MAX_INFLIGHT 2
#define DEFAULT_TIMEOUT 5000
#define DEFAULT_RECONNECT FALSE
#define DEFAULT_PROFILE GST_VSOCK_ENC_PROFILE_AUTO

enum {
	PROP_0,
	PROP_ADDRESS,
	PROP_BITRATE,
	PROP_KEY_INT_MAX,
	PROP_ENCODER,
	PROP_PROFILE,
	PROP_MAX_INFLIGHT,
	PROP_TIMEOUT,
	PROP_RECONNECT,
	PROP_HOST_ENCODER,
};

enum conn_state {
	CONN_UP,     /* connected, or not started */
	CONN_DOWN,   /* lost, reconnecting (reconnect=true) */
	CONN_FAILED, /* lost for good: an error was posted */
};

enum pend_kind { PEND_FRAME, PEND_CONFIG };

/* One request the host has not answered yet, or whose answer is not yet
 * delivered downstream. Kept in request order. */
struct pend {
	enum pend_kind kind;
	guint32 frame_number;
	gint64 pts;     /* as sent */
	gint64 sent_us; /* monotonic */
	gboolean ghost; /* its frame was flushed: discard the answer */
	gboolean resource;
	gboolean answered;
	gboolean keyframe;
	GstBuffer *au;
	gint32 err_code; /* answered by an ERROR */
	gchar *err_msg;
};

struct _GstVsockEnc {
	GstVideoEncoder parent;

	/* Properties (object lock). */
	gchar *address;
	guint bitrate; /* kbit/s, 0 = host default */
	guint key_int_max;
	gchar *encoder_hint;
	GstVsockEncProfile profile;
	guint max_inflight;
	guint timeout_ms;
	gboolean reconnect;
	gchar *host_encoder;

	/* The receiver waits here for the socket; senders wake it, stop sets it
	 * flushing (the element's whole life). */
	GstHfeWait *wait;

	/* Fixed while started. */
	gchar *addr; /* resolved address, for messages */

	/* client_lock: the connection and everything about it. */
	GMutex client_lock;
	struct hfe_client *client;
	unsigned version;
	struct hfe_hello_resp host; /* capabilities (v1: assumed) */
	GstHfeVirtGpu *gpu;
	gboolean gpu_tried;

	/* lock + cond: state shared between the threads. */
	GMutex lock;
	GCond cond;
	enum conn_state state;
	GQueue pending; /* struct pend *, request order */
	guint inflight; /* PEND_FRAME entries in pending */
	gboolean flushing;  /* between FLUSH_START and FLUSH_STOP */
	gboolean task_stop; /* stopping: everything returns */
	gboolean config_due; /* send CONFIG_REQ before the next frame */
	gboolean need_idr;   /* next frame forced to be an IDR */
	gboolean resource_off; /* host refused a resource frame: pixels from now on */
	gboolean encoder_warned;
	gboolean configured; /* set_format happened: CONFIG_REQ can be sent */
	guint32 last_key_number; /* last frame forced or seen as a keyframe */
	gboolean have_key;
	GstFlowReturn downstream_ret;
	guint backoff_ms;
	gint64 next_attempt_us;
	gint64 rtt_avg_us;
	GstClockTime latency_min;

	/* Stream lock (streaming thread): the negotiated input. */
	GstVideoInfo in_info;
	guint32 fourcc;
	guint32 width, height;
	guint8 profile_idc;
	guint8 *scratch; /* repacked pixels */
	gsize scratch_size;
};

#define gst_vsock_enc_parent_class parent_class
G_DEFINE_TYPE(GstVsockEnc, gst_vsock_enc, GST_TYPE_VIDEO_ENCODER);
GST_ELEMENT_REGISTER_DEFINE(vsockenc, "vsockenc", GST_RANK_NONE, GST_TYPE_VSOCK_ENC);

#define FORMATS "{ NV12, I420, BGRx, BGRA, RGBx, RGBA }"

static GstStaticPadTemplate sink_template = GST_STATIC_PAD_TEMPLATE(
	"sink", GST_PAD_SINK, GST_PAD_ALWAYS,
	GST_STATIC_CAPS("video/x-raw, format = (string) " FORMATS ", "
			"width = (int) [ 16, 16384 ], height = (int) [ 16, 16384 ], "
			"framerate = (fraction) [ 0/1, MAX ]"));

static GstStaticPadTemplate src_template = GST_STATIC_PAD_TEMPLATE(
	"src", GST_PAD_SRC, GST_PAD_ALWAYS,
	GST_STATIC_CAPS("video/x-h264, stream-format = (string) byte-stream, "
			"alignment = (string) au, "
			"profile = (string) { constrained-baseline, baseline, main, high }, "
			"width = (int) [ 16, 16384 ], height = (int) [ 16, 16384 ], "
			"framerate = (fraction) [ 0/1, MAX ]"));

static const struct {
	GstVideoFormat gst;
	guint32 fourcc;
} format_map[] = {
	{ GST_VIDEO_FORMAT_BGRx, HFE_FMT_XRGB8888 }, { GST_VIDEO_FORMAT_BGRA, HFE_FMT_ARGB8888 },
	{ GST_VIDEO_FORMAT_RGBx, HFE_FMT_XBGR8888 }, { GST_VIDEO_FORMAT_RGBA, HFE_FMT_ABGR8888 },
	{ GST_VIDEO_FORMAT_NV12, HFE_FMT_NV12 },     { GST_VIDEO_FORMAT_I420, HFE_FMT_I420 },
};

GType gst_vsock_enc_profile_get_type(void)
{
	static GType type;
	static const GEnumValue values[] = {
		{ GST_VSOCK_ENC_PROFILE_AUTO, "From downstream caps, else constrained-baseline",
		  "auto" },
		{ GST_VSOCK_ENC_PROFILE_CONSTRAINED_BASELINE, "Constrained baseline",
		  "constrained-baseline" },
		{ GST_VSOCK_ENC_PROFILE_MAIN, "Main", "main" },
		{ GST_VSOCK_ENC_PROFILE_HIGH, "High", "high" },
		{ 0, NULL, NULL },
	};
	if (g_once_init_enter(&type)) {
		GType t = g_enum_register_static("GstVsockEncProfile", values);
		g_once_init_leave(&type, t);
	}
	return type;
}

static guint32 fourcc_of(GstVideoFormat f)
{
	for (guint i = 0; i < G_N_ELEMENTS(format_map); i++)
		if (format_map[i].gst == f)
			return format_map[i].fourcc;
	return 0;
}

static guint bpp_of(guint32 fourcc)
{
	return fourcc == HFE_FMT_NV12 || fourcc == HFE_FMT_I420 ? 1 : 4;
}

/* ---- small helpers ---- */

static void wake_receiver(GstVsockEnc *self)
{
	gst_hfe_wait_wake(self->wait);
}

static void pend_free(struct pend *p)
{
	if (p->au)
		gst_buffer_unref(p->au);
	g_free(p->err_msg);
	g_free(p);
}

static guint max_inflight_now(GstVsockEnc *self)
{
	GST_OBJECT_LOCK(self);
	guint n = self->max_inflight;
	GST_OBJECT_UNLOCK(self);
	g_mutex_lock(&self->client_lock);
	if (self->version >= HFE_PROTO_V2 && self->host.max_inflight &&
	    self->host.max_inflight < n)
		n = self->host.max_inflight;
	g_mutex_unlock(&self->client_lock);
	return MAX(n, 1u);
}

static gint timeout_now(GstVsockEnc *self)
{
	GST_OBJECT_LOCK(self);
	gint t = (gint)self->timeout_ms;
	GST_OBJECT_UNLOCK(self);
	return t;
}

/* Errors the host sends without closing: they answer one request. */
static gboolean error_answers_request(gint32 code)
{
	return code == HFE_ERR_RESOURCE_NOT_FOUND || code == HFE_ERR_UNSUPPORTED ||
	       code == HFE_ERR_ENCODE_FAILED || code == HFE_ERR_NOT_CONFIGURED;
}

/* Worth reconnecting after? Not when we were told we are doing it wrong. */
static gboolean reconnectable(gint32 code)
{
	switch (code) {
	case HFE_ERR_INVALID_MSG:
	case HFE_ERR_TOO_LARGE:
	case HFE_ERR_PROTOCOL:
	case HFE_ERR_VERSION:
	case HFE_ERR_UNSUPPORTED:
		return FALSE;
	default:
		return TRUE;
	}
}

/* ---- connecting ---- */

/* Connect and negotiate. A host that does not answer HELLO with HELLO_RESP
 * (a deployed v1 host: silence, ERROR or a closed connection) is spoken to
 * in v1 on a fresh connection. Returns NULL with err filled. */
static struct hfe_client *connect_host(GstVsockEnc *self, const gchar *addr, gint timeout_ms,
				       unsigned *version, struct hfe_hello_resp *caps,
				       struct hfe_err *err)
{
	struct hfe_client *c = hfe_client_connect(addr, timeout_ms, err);
	if (!c)
		return NULL;

	gchar *name = g_strdup_printf("vsockenc %s", PACKAGE_VERSION);
	gint hello_ms = MIN(timeout_ms, HELLO_TIMEOUT_MAX_MS);
	int r = hfe_client_hello(c, name, caps, hello_ms, err);
	g_free(name);
	if (r == 0) {
		*version = hfe_client_version(c);
		GST_INFO_OBJECT(self, "host at %s: '%s', protocol v%u, sources 0x%x, max %ux%u, "
			       "max_inflight %u",
			       addr, caps->server_name, *version, caps->sources, caps->max_width,
			       caps->max_height, caps->max_inflight);
		if (*version >= HFE_PROTO_V2 && caps->codecs && !(caps->codecs & HFE_CODEC_H264)) {
			hfe_err_set(err, HFE_ERR_UNSUPPORTED,
				    "host at %s does not encode H.264 (codecs 0x%x)", addr,
				    caps->codecs);
			hfe_client_close(c);
			return NULL;
		}
		return c;
	}
	hfe_client_close(c);
	if (err->code == HFE_ERR_BUSY || err->code == HFE_ERR_SHUTDOWN)
		return NULL;

	GST_WARNING_OBJECT(self, "host at %s did not accept HELLO (%s); using protocol v1", addr,
			   err->msg);
	c = hfe_client_connect(addr, timeout_ms, err);
	if (!c)
		return NULL;
	*version = HFE_PROTO_V1;
	/* v1 says nothing about itself: assume what deployed hosts do */
	memset(caps, 0, sizeof(*caps));
	caps->version = HFE_PROTO_V1;
	caps->codecs = HFE_CODEC_H264;
	caps->sources = HFE_SOURCE_PIXELS;
	caps->max_width = caps->max_height = HFE_MAX_DIMENSION;
	caps->max_payload = G_MAXUINT32;
	return c;
}

/* ---- pending queue and delivery ---- */

/* First request still waiting for its answer (lock held). */
static struct pend *first_unanswered(GstVsockEnc *self)
{
	for (GList *l = self->pending.head; l; l = l->next) {
		struct pend *p = l->data;
		if (!p->answered)
			return p;
	}
	return NULL;
}

static void fail_stream(GstVsockEnc *self, const gchar *what, const gchar *detail)
{
	g_mutex_lock(&self->lock);
	gboolean first = self->state != CONN_FAILED;
	self->state = CONN_FAILED;
	g_cond_broadcast(&self->cond);
	g_mutex_unlock(&self->lock);
	if (first)
		GST_ELEMENT_ERROR(self, STREAM, ENCODE, ("%s", what), ("%s", detail));
}

static void update_latency(GstVsockEnc *self, gint64 rtt_us)
{
	gboolean post = FALSE;
	GstClockTime min = 0, max = 0;

	g_mutex_lock(&self->lock);
	self->rtt_avg_us = self->rtt_avg_us ? (self->rtt_avg_us * 7 + rtt_us) / 8 : rtt_us;
	GstClockTime rtt = (GstClockTime)self->rtt_avg_us * GST_USECOND;
	/* Only ever raise it, and only by a clear margin: each change re-latencies
	 * the whole pipeline. */
	if (self->latency_min && rtt > self->latency_min + self->latency_min / 4) {
		self->latency_min = rtt;
		post = TRUE;
	}
	min = self->latency_min;
	g_mutex_unlock(&self->lock);

	if (post) {
		guint n = max_inflight_now(self);
		max = MAX(min, min * n);
		GST_INFO_OBJECT(self, "measured round trip %" GST_TIME_FORMAT ": latency now %"
			       GST_TIME_FORMAT, GST_TIME_ARGS(rtt), GST_TIME_ARGS(min));
		gst_video_encoder_set_latency(GST_VIDEO_ENCODER(self), min, max);
	}
}

/* Finish one answered frame request downstream. Stream lock held. */
static void deliver_one(GstVsockEnc *self, struct pend *p)
{
	GstVideoEncoder *enc = GST_VIDEO_ENCODER(self);

	if (p->kind == PEND_CONFIG) {
		if (p->err_code) {
			gchar *what = g_strdup_printf("The host encoder at %s refused the stream "
						      "settings", self->addr);
			fail_stream(self, what, p->err_msg);
			g_free(what);
		}
		return;
	}
	if (p->ghost)
		return;

	GstVideoCodecFrame *frame = gst_video_encoder_get_frame(enc, (int)p->frame_number);
	if (!frame)
		return;

	if (p->err_code) {
		if (p->err_code == HFE_ERR_RESOURCE_NOT_FOUND && p->resource) {
			g_mutex_lock(&self->lock);
			gboolean first = !self->resource_off;
			self->resource_off = TRUE;
			g_mutex_unlock(&self->lock);
			if (first)
				GST_ELEMENT_WARNING(
					self, RESOURCE, NOT_FOUND,
					("The host at %s cannot use virtio-gpu resources; "
					 "sending pixels instead",
					 self->addr),
					("%s", p->err_msg));
			gst_video_encoder_finish_frame(enc, frame); /* no buffer: dropped */
			return;
		}
		gchar *what = g_strdup_printf("The host encoder at %s failed to encode a frame",
					      self->addr);
		fail_stream(self, what, p->err_msg);
		g_free(what);
		gst_video_encoder_finish_frame(enc, frame);
		return;
	}

	update_latency(self, g_get_monotonic_time() - p->sent_us);
	if (!p->au) {
		gst_video_encoder_finish_frame(enc, frame); /* the host skipped it */
		return;
	}

	if (p->keyframe) {
		GST_VIDEO_CODEC_FRAME_SET_SYNC_POINT(frame);
		g_mutex_lock(&self->lock);
		if (!self->have_key || (gint32)(p->frame_number - self->last_key_number) > 0)
			self->last_key_number = p->frame_number;
		self->have_key = TRUE;
		g_mutex_unlock(&self->lock);
	}
	frame->output_buffer = p->au;
	p->au = NULL;
	frame->dts = frame->pts; /* no B-frames: decode order is presentation order */
	GstFlowReturn ret = gst_video_encoder_finish_frame(enc, frame);
	if (ret != GST_FLOW_OK)
		GST_DEBUG_OBJECT(self, "downstream: %s", gst_flow_get_name(ret));
	g_mutex_lock(&self->lock);
	self->downstream_ret = ret;
	g_mutex_unlock(&self->lock);
}

/* Deliver answered requests from the head of the queue, in order.
 * Returns how many were delivered. Takes the stream lock. */
static guint deliver(GstVsockEnc *self)
{
	guint n = 0;

	/* Cheap check first: the stream lock is often held by the sender. */
	g_mutex_lock(&self->lock);
	struct pend *head = g_queue_peek_head(&self->pending);
	gboolean ready = head && head->answered;
	g_mutex_unlock(&self->lock);
	if (!ready)
		return 0;

	GST_VIDEO_ENCODER_STREAM_LOCK(self);
	g_mutex_lock(&self->lock);
	for (;;) {
		struct pend *p = g_queue_peek_head(&self->pending);
		if (!p || !p->answered || self->state == CONN_FAILED)
			break;
		g_queue_pop_head(&self->pending);
		g_mutex_unlock(&self->lock);
		deliver_one(self, p);
		g_mutex_lock(&self->lock);
		if (p->kind == PEND_FRAME)
			self->inflight--;
		pend_free(p);
		n++;
		g_cond_broadcast(&self->cond);
	}
	g_mutex_unlock(&self->lock);
	GST_VIDEO_ENCODER_STREAM_UNLOCK(self);
	return n;
}

/*
 * The connection is gone (err says why). With reconnect=true (and an error
 * worth retrying) the frames in flight are dropped and the receiver task
 * reconnects with backoff; otherwise an error naming the address is posted.
 * Called by either thread without client_lock; the sender holds the stream
 * lock already, which is fine (it is recursive).
 */
static void conn_lost(GstVsockEnc *self, const struct hfe_err *err)
{
	GQueue stolen = G_QUEUE_INIT;

	g_mutex_lock(&self->client_lock);
	if (self->client) {
		hfe_client_close(self->client);
		self->client = NULL;
	}
	g_mutex_unlock(&self->client_lock);

	GST_OBJECT_LOCK(self);
	gboolean retry = self->reconnect && reconnectable(err->code);
	GST_OBJECT_UNLOCK(self);

	g_mutex_lock(&self->lock);
	if (self->state != CONN_UP || self->task_stop) {
		g_mutex_unlock(&self->lock);
		return;
	}
	if (retry) {
		self->state = CONN_DOWN;
		self->backoff_ms = RECONNECT_MIN_MS;
		self->next_attempt_us = g_get_monotonic_time() + RECONNECT_MIN_MS * 1000;
		stolen = self->pending;
		g_queue_init(&self->pending);
		self->inflight = 0;
	} else {
		self->state = CONN_FAILED;
	}
	g_cond_broadcast(&self->cond);
	g_mutex_unlock(&self->lock);
	wake_receiver(self);

	if (!retry) {
		GST_ELEMENT_ERROR(self, RESOURCE, READ,
				  ("Lost the connection to the host encoder at %s", self->addr),
				  ("%s", err->msg));
		return;
	}

	GST_ELEMENT_WARNING(self, RESOURCE, READ,
			    ("Lost the connection to the host encoder at %s; reconnecting",
			     self->addr),
			    ("%s", err->msg));
	/* Answers already here are good frames; the rest are dropped (the
	 * stream resumes with an IDR). */
	GST_VIDEO_ENCODER_STREAM_LOCK(self);
	struct pend *p;
	guint dropped = 0;
	while ((p = g_queue_pop_head(&stolen))) {
		if (p->answered) {
			deliver_one(self, p);
		} else if (p->kind == PEND_FRAME && !p->ghost) {
			GstVideoCodecFrame *frame = gst_video_encoder_get_frame(
				GST_VIDEO_ENCODER(self), (int)p->frame_number);
			if (frame) {
				gst_video_encoder_finish_frame(GST_VIDEO_ENCODER(self), frame);
				dropped++;
			}
		}
		pend_free(p);
	}
	GST_VIDEO_ENCODER_STREAM_UNLOCK(self);
	GST_INFO_OBJECT(self, "dropped %u frames in flight", dropped);
}

/* ---- receiving (source pad task) ---- */

/* Copy a FRAME_RESPONSE's units into one Annex-B buffer. Units that lack a
 * start code (hosts sending bare NAL units) get one. NULL with *empty set
 * when the host sent no data for the frame (it skipped it). */
static GstBuffer *au_buffer(const struct hfe_msg *msg, gboolean *empty)
{
	const guint8 *nal;
	uint32_t len;
	size_t pos = 0, total = 0;

	while (hfe_nal_next(msg, &pos, &nal, &len))
		total += hfe_h264_put_annexb(NULL, nal, len);
	if (!total) {
		*empty = TRUE;
		return NULL;
	}
	GstBuffer *buf = gst_buffer_new_allocate(NULL, total, NULL);
	GstMapInfo map;
	if (!buf || !gst_buffer_map(buf, &map, GST_MAP_WRITE)) {
		if (buf)
			gst_buffer_unref(buf);
		return NULL;
	}
	guint8 *dst = map.data;
	pos = 0;
	while (hfe_nal_next(msg, &pos, &nal, &len))
		dst += hfe_h264_put_annexb(dst, nal, len);
	gst_buffer_unmap(buf, &map);
	return buf;
}

/* One message from the host (client_lock held). Returns FALSE when the
 * connection must be dropped (err filled). */
static gboolean on_message(GstVsockEnc *self, const struct hfe_msg *msg, struct hfe_err *err)
{
	struct pend *p;

	switch (msg->hdr.type) {
	case HFE_MSG_FRAME_RESPONSE: {
		gboolean empty = FALSE;
		GstBuffer *au = au_buffer(msg, &empty);
		g_mutex_lock(&self->lock);
		p = first_unanswered(self);
		if (!p || p->kind != PEND_FRAME) {
			g_mutex_unlock(&self->lock);
			if (au)
				gst_buffer_unref(au);
			hfe_err_set(err, HFE_ERR_PROTOCOL,
				    "host at %s sent a FRAME_RESPONSE (pts %" G_GINT64_FORMAT
				    ") while %s", self->addr, (gint64)msg->u.frame_resp.pts,
				    p ? "a CONFIG_RESP was due" : "no frame was outstanding");
			return FALSE;
		}
		if (msg->u.frame_resp.pts != p->pts)
			GST_WARNING_OBJECT(self, "host echoed pts %" G_GINT64_FORMAT " for a frame "
					   "sent with pts %" G_GINT64_FORMAT,
					   (gint64)msg->u.frame_resp.pts, p->pts);
		p->answered = TRUE;
		p->keyframe = msg->u.frame_resp.is_keyframe != 0;
		p->au = au;
		if (!au && !empty && !p->ghost) {
			p->err_code = HFE_ERR_INTERNAL;
			p->err_msg = g_strdup("out of memory for an access unit");
		}
		g_mutex_unlock(&self->lock);
		return TRUE;
	}
	case HFE_MSG_CONFIG_RESP: {
		const struct hfe_config_resp *cr = &msg->u.config_resp;
		g_mutex_lock(&self->lock);
		p = first_unanswered(self);
		if (!p || p->kind != PEND_CONFIG) {
			g_mutex_unlock(&self->lock);
			hfe_err_set(err, HFE_ERR_PROTOCOL,
				    "host at %s sent a CONFIG_RESP nobody asked for", self->addr);
			return FALSE;
		}
		p->answered = TRUE;
		gboolean warned = self->encoder_warned;
		g_mutex_unlock(&self->lock);

		GST_INFO_OBJECT(self, "host encoder '%s' %ux%u %u bit/s profile %u", cr->encoder,
			       cr->width, cr->height, cr->bitrate, cr->profile);
		GST_OBJECT_LOCK(self);
		g_free(self->host_encoder);
		self->host_encoder = g_strdup(cr->encoder);
		gchar *hint = g_strdup(self->encoder_hint);
		GST_OBJECT_UNLOCK(self);
		if (hint && *hint && g_ascii_strcasecmp(hint, cr->encoder) != 0 && !warned) {
			g_mutex_lock(&self->lock);
			self->encoder_warned = TRUE;
			g_mutex_unlock(&self->lock);
			GST_ELEMENT_WARNING(
				self, LIBRARY, SETTINGS,
				("The host at %s encodes with '%s', not '%s'", self->addr,
				 cr->encoder, hint),
				("the protocol cannot choose the host's encoder; it is the "
				 "daemon's --encoder option"));
		}
		g_free(hint);
		return TRUE;
	}
	case HFE_MSG_ERROR: {
		const struct hfe_error_msg *e = &msg->u.error;
		if (error_answers_request(e->code)) {
			g_mutex_lock(&self->lock);
			p = first_unanswered(self);
			if (p) {
				p->answered = TRUE;
				p->err_code = e->code;
				p->err_msg = g_strdup_printf("host at %s: %s (%d): %s", self->addr,
							     hfe_error_name(e->code), e->code,
							     e->message);
				g_mutex_unlock(&self->lock);
				return TRUE;
			}
			g_mutex_unlock(&self->lock);
		}
		/* The host closes after these: report its reason. */
		hfe_err_set(err, e->code, "host at %s: %s (%d): %s", self->addr,
			    hfe_error_name(e->code), e->code, e->message);
		return FALSE;
	}
	default:
		GST_DEBUG_OBJECT(self, "ignoring %s from the host",
				 hfe_msg_type_name(msg->hdr.type) ? hfe_msg_type_name(msg->hdr.type)
								  : "?");
		return TRUE;
	}
}

/* Reconnect step of the receiver task (state DOWN). */
static void reconnect_step(GstVsockEnc *self)
{
	g_mutex_lock(&self->lock);
	while (!self->task_stop && self->state == CONN_DOWN &&
	       g_get_monotonic_time() < self->next_attempt_us)
		g_cond_wait_until(&self->cond, &self->lock, self->next_attempt_us);
	gboolean go = !self->task_stop && self->state == CONN_DOWN;
	g_mutex_unlock(&self->lock);
	if (!go)
		return;

	struct hfe_err err = { 0 };
	struct hfe_hello_resp caps;
	unsigned version = HFE_PROTO_V1;
	gint timeout_ms = MIN(timeout_now(self), HELLO_TIMEOUT_MAX_MS);
	struct hfe_client *c = connect_host(self, self->addr, timeout_ms, &version, &caps, &err);

	g_mutex_lock(&self->lock);
	if (!c || self->task_stop) {
		if (!c) {
			self->backoff_ms = MIN(self->backoff_ms * 2, (guint)RECONNECT_MAX_MS);
			self->next_attempt_us = g_get_monotonic_time() + self->backoff_ms * 1000;
			GST_INFO_OBJECT(self, "reconnecting failed (%s); next try in %u ms",
					err.msg, self->backoff_ms);
		}
		g_mutex_unlock(&self->lock);
		hfe_client_close(c);
		return;
	}
	g_mutex_unlock(&self->lock);

	g_mutex_lock(&self->client_lock);
	self->client = c;
	self->version = version;
	self->host = caps;
	g_mutex_unlock(&self->client_lock);

	g_mutex_lock(&self->lock);
	self->state = CONN_UP;
	self->config_due = TRUE; /* a new host session knows nothing of ours */
	self->need_idr = TRUE;
	self->encoder_warned = FALSE;
	g_cond_broadcast(&self->cond);
	g_mutex_unlock(&self->lock);

	GST_ELEMENT_INFO(self, RESOURCE, OPEN_READ_WRITE,
			 ("Reconnected to the host encoder at %s", self->addr), (NULL));
}

static void gst_vsock_enc_loop(gpointer data)
{
	GstVsockEnc *self = data;
	struct hfe_err err = { 0 };
	struct hfe_msg msg;
	gboolean lost = FALSE;
	int fd = -1, r = 0;

	g_mutex_lock(&self->lock);
	enum conn_state state = self->state;
	gboolean stop = self->task_stop;
	g_mutex_unlock(&self->lock);

	if (stop || state == CONN_FAILED) {
		gst_pad_pause_task(GST_VIDEO_ENCODER_SRC_PAD(self));
		return;
	}
	if (state == CONN_DOWN) {
		reconnect_step(self);
		return;
	}

	g_mutex_lock(&self->client_lock);
	if (self->client) {
		while ((r = hfe_client_recv(self->client, &msg, 0, &err)) > 0) {
			if (!on_message(self, &msg, &err)) {
				lost = TRUE;
				break;
			}
		}
		if (r < 0)
			lost = TRUE;
		fd = hfe_client_fd(self->client);
	}
	g_mutex_unlock(&self->client_lock);

	if (deliver(self) > 0 && !lost)
		return;
	if (lost) {
		conn_lost(self, &err);
		return;
	}

	/* Nothing new: has the oldest request waited too long? */
	gint timeout_ms = timeout_now(self);
	g_mutex_lock(&self->lock);
	struct pend *head = first_unanswered(self);
	gint64 waited_ms = head ? (g_get_monotonic_time() - head->sent_us) / 1000 : 0;
	g_mutex_unlock(&self->lock);
	if (head && waited_ms > timeout_ms) {
		hfe_err_set(&err, HFE_ERR_TIMEOUT,
			    "host at %s did not answer within %d ms", self->addr, timeout_ms);
		conn_lost(self, &err);
		return;
	}

	/* Whatever ends the wait, the next round looks at the state again. */
	(void)gst_hfe_wait_fd(self->wait, fd, RECV_POLL_MS);
}

static void start_task(GstVsockEnc *self)
{
	GstPad *pad = GST_VIDEO_ENCODER_SRC_PAD(self);
	if (gst_pad_get_task_state(pad) != GST_TASK_STARTED)
		gst_pad_start_task(pad, gst_vsock_enc_loop, self, NULL);
}

/* ---- waiting (streaming thread) ---- */

/*
 * Wait with the stream lock released (the receiver needs it to finish
 * frames) until fewer than `limit` frames are in flight, or with all = TRUE
 * until nothing is outstanding. OK also when the connection is down (the
 * frames were dropped); FLUSHING or ERROR when that is what happened.
 */
static GstFlowReturn wait_pending(GstVsockEnc *self, guint limit, gboolean all)
{
	GstFlowReturn ret = GST_FLOW_OK;

	GST_VIDEO_ENCODER_STREAM_UNLOCK(self);
	g_mutex_lock(&self->lock);
	for (;;) {
		if (self->flushing || self->task_stop) {
			ret = GST_FLOW_FLUSHING;
			break;
		}
		if (self->state == CONN_FAILED) {
			ret = GST_FLOW_ERROR;
			break;
		}
		if (self->state == CONN_DOWN)
			break;
		if (all ? g_queue_is_empty(&self->pending) : self->inflight < limit)
			break;
		g_cond_wait(&self->cond, &self->lock);
	}
	g_mutex_unlock(&self->lock);
	GST_VIDEO_ENCODER_STREAM_LOCK(self);
	return ret;
}

/* ---- sending (streaming thread, stream lock held) ---- */

static guint8 *scratch(GstVsockEnc *self, gsize size)
{
	if (self->scratch_size < size) {
		g_free(self->scratch);
		self->scratch = g_try_malloc(size);
		self->scratch_size = self->scratch ? size : 0;
	}
	return self->scratch;
}

static void copy_plane(guint8 *dst, gsize dst_stride, const guint8 *src, gsize src_stride,
		       gsize row_bytes, guint rows)
{
	for (guint y = 0; y < rows; y++)
		memcpy(dst + y * dst_stride, src + y * src_stride, row_bytes);
}

/* Is [p, p + len) inside the mapping m? */
static gboolean in_map(const GstMapInfo *m, const guint8 *p, gsize len)
{
	return p >= m->data && (gsize)(p - m->data) <= m->size &&
	       len <= m->size - (gsize)(p - m->data);
}

/*
 * The frame's pixels in the wire layout of docs/protocol.md: RGB one plane of
 * stride x height; NV12 the UV plane right after Y with Y's stride; I420 U and
 * V right after Y with stride (stride + 1) / 2. When the mapped frame already
 * has that layout in one mapping (the usual case) its memory is sent as is;
 * otherwise the planes are repacked into a contiguous buffer.
 */
static gboolean wire_pixels(GstVsockEnc *self, const struct hfe_hello_resp *host,
			    GstVideoFrame *vf, const guint8 **data, gsize *len, guint32 *stride)
{
	guint32 w = self->width, h = self->height, f = self->fourcc;
	guint bpp = bpp_of(f);
	guint32 s = (guint32)GST_VIDEO_FRAME_PLANE_STRIDE(vf, 0);
	const guint8 *p0 = GST_VIDEO_FRAME_PLANE_DATA(vf, 0);
	gboolean ok = GST_VIDEO_FRAME_PLANE_STRIDE(vf, 0) >= (gint)(w * bpp) &&
		      (guint64)s <= (guint64)host->max_width * 4;
	gsize total;

	switch (f) {
	case HFE_FMT_NV12:
		total = (gsize)s * h * 3 / 2;
		ok = ok && GST_VIDEO_FRAME_PLANE_STRIDE(vf, 1) == (gint)s &&
		     (const guint8 *)GST_VIDEO_FRAME_PLANE_DATA(vf, 1) == p0 + (gsize)s * h;
		break;
	case HFE_FMT_I420: {
		guint32 cs = (s + 1) / 2;
		const guint8 *p1 = GST_VIDEO_FRAME_PLANE_DATA(vf, 1);
		total = (gsize)s * h + (gsize)cs * (h / 2) * 2;
		ok = ok && GST_VIDEO_FRAME_PLANE_STRIDE(vf, 1) == (gint)cs &&
		     GST_VIDEO_FRAME_PLANE_STRIDE(vf, 2) == (gint)cs && p1 == p0 + (gsize)s * h &&
		     (const guint8 *)GST_VIDEO_FRAME_PLANE_DATA(vf, 2) == p1 + (gsize)cs * (h / 2);
		break;
	}
	default:
		total = (gsize)s * h;
		break;
	}
	if (ok && in_map(&vf->map[0], p0, total)) {
		*data = p0;
		*len = total;
		*stride = s;
		return TRUE;
	}

	/* Repack with the tightest legal stride. */
	guint32 ts = w * bpp;
	gsize tlen = f == HFE_FMT_NV12 || f == HFE_FMT_I420 ? (gsize)ts * h * 3 / 2 : (gsize)ts * h;
	guint8 *dst = scratch(self, tlen);
	if (!dst)
		return FALSE;
	GST_LOG_OBJECT(self, "repacking frame (stride %u -> %u)", s, ts);
	copy_plane(dst, ts, p0, s, (gsize)w * bpp, h);
	if (f == HFE_FMT_NV12) {
		copy_plane(dst + (gsize)ts * h, ts, GST_VIDEO_FRAME_PLANE_DATA(vf, 1),
			   (gsize)GST_VIDEO_FRAME_PLANE_STRIDE(vf, 1), w, h / 2);
	} else if (f == HFE_FMT_I420) {
		guint32 cs = ts / 2;
		guint8 *u = dst + (gsize)ts * h, *v = u + (gsize)cs * (h / 2);
		copy_plane(u, cs, GST_VIDEO_FRAME_PLANE_DATA(vf, 1),
			   (gsize)GST_VIDEO_FRAME_PLANE_STRIDE(vf, 1), w / 2, h / 2);
		copy_plane(v, cs, GST_VIDEO_FRAME_PLANE_DATA(vf, 2),
			   (gsize)GST_VIDEO_FRAME_PLANE_STRIDE(vf, 2), w / 2, h / 2);
	}
	*data = dst;
	*len = tlen;
	*stride = ts;
	return TRUE;
}

/*
 * Resource mode: a dmabuf from the virtio-gpu device whose layout is the wire
 * layout is sent by its resource id, no pixels. Returns the id, or 0 to send
 * pixels. The input buffer stays referenced by the frame until the host has
 * answered, so the guest does not reuse it while the host reads it.
 */
static guint32 resource_id(GstVsockEnc *self, const struct hfe_hello_resp *host,
			   GstVideoCodecFrame *frame, guint32 *stride)
{
#ifdef HAVE_GST_ALLOCATORS
	GstBuffer *buf = frame->input_buffer;

	g_mutex_lock(&self->lock);
	gboolean off = self->resource_off;
	g_mutex_unlock(&self->lock);
	if (off || !(host->sources & HFE_SOURCE_RESOURCE) || gst_buffer_n_memory(buf) != 1)
		return 0;
	GstMemory *mem = gst_buffer_peek_memory(buf, 0);
	if (!gst_is_dmabuf_memory(mem) || mem->offset != 0)
		return 0;

	GstVideoMeta *meta = gst_buffer_get_video_meta(buf);
	const gsize *off_ = meta ? meta->offset : self->in_info.offset;
	const gint *st = meta ? meta->stride : self->in_info.stride;
	guint32 s = (guint32)st[0], h = self->height;
	gboolean ok = off_[0] == 0 && st[0] > 0;
	if (self->fourcc == HFE_FMT_NV12)
		ok = ok && st[1] == st[0] && off_[1] == (gsize)s * h;
	else if (self->fourcc == HFE_FMT_I420)
		ok = ok && st[1] == (gint)((s + 1) / 2) && st[2] == st[1] &&
		     off_[1] == (gsize)s * h && off_[2] == off_[1] + (gsize)st[1] * (h / 2);
	if (!ok)
		return 0;

	if (!self->gpu_tried) {
		self->gpu_tried = TRUE;
		self->gpu = gst_hfe_virtgpu_open();
		if (!self->gpu)
			GST_INFO_OBJECT(self, "no virtio-gpu DRM device: sending pixels");
	}
	guint32 id = gst_hfe_virtgpu_resource_id(self->gpu, gst_dmabuf_memory_get_fd(mem));
	if (id)
		*stride = s;
	return id;
#else
	(void)self;
	(void)host;
	(void)frame;
	(void)stride;
	return 0;
#endif
}

static void fill_config(GstVsockEnc *self, struct hfe_config_req *cfg)
{
	gint n = GST_VIDEO_INFO_FPS_N(&self->in_info), d = GST_VIDEO_INFO_FPS_D(&self->in_info);

	memset(cfg, 0, sizeof(*cfg));
	cfg->width = self->width;
	cfg->height = self->height;
	GST_OBJECT_LOCK(self);
	guint kbps = self->bitrate;
	GST_OBJECT_UNLOCK(self);
	cfg->bitrate = kbps ? MAX(kbps, 10u) * 1000u : 0;
	if (n > 0 && d > 0 && n <= 1000000 && d <= 1000000 && n <= 240 * d) {
		cfg->fps_num = (guint32)n;
		cfg->fps_den = (guint32)d;
	}
	cfg->profile = self->profile_idc;
	cfg->realtime = 1;
}

/* Drop a frame that never reached the host. */
static GstFlowReturn drop_frame(GstVsockEnc *self, GstVideoCodecFrame *frame)
{
	GstFlowReturn ret = gst_video_encoder_finish_frame(GST_VIDEO_ENCODER(self), frame);
	return ret == GST_FLOW_ERROR ? GST_FLOW_ERROR : GST_FLOW_OK;
}

static GstFlowReturn gst_vsock_enc_handle_frame(GstVideoEncoder *enc, GstVideoCodecFrame *frame)
{
	GstVsockEnc *self = GST_VSOCK_ENC(enc);
	struct hfe_frame_request fr;
	struct hfe_hello_resp host;
	struct hfe_err err = { 0 };
	GstVideoFrame vf;
	gboolean mapped = FALSE;
	const guint8 *pixels = NULL;
	gsize len = 0;
	GstFlowReturn ret;

	g_mutex_lock(&self->lock);
	enum conn_state state = self->state;
	g_mutex_unlock(&self->lock);
	if (state == CONN_FAILED) {
		gst_video_codec_frame_unref(frame);
		return GST_FLOW_ERROR;
	}
	start_task(self);

	ret = wait_pending(self, max_inflight_now(self), FALSE);
	if (ret != GST_FLOW_OK) {
		gst_video_codec_frame_unref(frame);
		return ret;
	}

	g_mutex_lock(&self->lock);
	state = self->state;
	GstFlowReturn down = self->downstream_ret;
	g_mutex_unlock(&self->lock);
	if (state == CONN_DOWN)
		return drop_frame(self, frame); /* reconnecting: newest frame wins */
	if (down != GST_FLOW_OK && down != GST_FLOW_FLUSHING) {
		gst_video_codec_frame_unref(frame);
		return down;
	}

	g_mutex_lock(&self->client_lock);
	host = self->host;
	g_mutex_unlock(&self->client_lock);

	memset(&fr, 0, sizeof(fr));
	fr.width = self->width;
	fr.height = self->height;
	fr.format = self->fourcc;
	fr.pts = GST_CLOCK_TIME_IS_VALID(frame->pts) ? (gint64)frame->pts : -1;
	fr.duration = GST_CLOCK_TIME_IS_VALID(frame->duration) ? (gint64)frame->duration : 0;

	/* Keyframe? Force-key-unit events (the base class turns them into the
	 * frame flag), a resumed, flushed or resized stream, or key-int-max. */
	GST_OBJECT_LOCK(self);
	guint kmax = self->key_int_max;
	GST_OBJECT_UNLOCK(self);
	g_mutex_lock(&self->lock);
	gboolean force = GST_VIDEO_CODEC_FRAME_IS_FORCE_KEYFRAME(frame) || self->need_idr ||
			 (kmax && (!self->have_key ||
				   frame->system_frame_number - self->last_key_number >= kmax));
	if (force) {
		self->need_idr = FALSE;
		self->last_key_number = frame->system_frame_number;
		self->have_key = TRUE;
	}
	gboolean config_due = self->config_due;
	self->config_due = FALSE;
	g_mutex_unlock(&self->lock);
	fr.force_keyframe = force;

	fr.resource_id = resource_id(self, &host, frame, &fr.stride);
	if (!fr.resource_id) {
		if (!gst_video_frame_map(&vf, &self->in_info, frame->input_buffer, GST_MAP_READ)) {
			gst_video_codec_frame_unref(frame);
			GST_ELEMENT_ERROR(self, STREAM, ENCODE, ("Could not map an input frame"),
					  (NULL));
			return GST_FLOW_ERROR;
		}
		mapped = TRUE;
		if (!wire_pixels(self, &host, &vf, &pixels, &len, &fr.stride)) {
			gst_video_frame_unmap(&vf);
			gst_video_codec_frame_unref(frame);
			GST_ELEMENT_ERROR(self, RESOURCE, NO_SPACE_LEFT,
					  ("Out of memory for a repacked frame"), (NULL));
			return GST_FLOW_ERROR;
		}
		if ((guint64)len + HFE_FRAME_REQUEST_SIZE > host.max_payload) {
			gst_video_frame_unmap(&vf);
			gst_video_codec_frame_unref(frame);
			GST_ELEMENT_ERROR(self, STREAM, ENCODE,
					  ("A %ux%u frame is larger than the host at %s accepts",
					   self->width, self->height, self->addr),
					  ("%" G_GSIZE_FORMAT " bytes, max_payload %u", len,
					   host.max_payload));
			return GST_FLOW_ERROR;
		}
	}

	gint timeout_ms = timeout_now(self);
	gboolean have_client, queued = FALSE;
	int r = 0;
	g_mutex_lock(&self->client_lock);
	have_client = self->client != NULL;
	if (have_client && config_due) {
		struct hfe_config_req cfg;
		fill_config(self, &cfg);
		if (self->version >= HFE_PROTO_V2) {
			/* v2 hosts answer it, in order with the frames */
			struct pend *pc = g_new0(struct pend, 1);
			pc->kind = PEND_CONFIG;
			pc->sent_us = g_get_monotonic_time();
			g_mutex_lock(&self->lock);
			g_queue_push_tail(&self->pending, pc);
			g_mutex_unlock(&self->lock);
		}
		GST_DEBUG_OBJECT(self, "CONFIG_REQ %ux%u %u bit/s %u/%u fps profile %u", cfg.width,
				 cfg.height, cfg.bitrate, cfg.fps_num, cfg.fps_den, cfg.profile);
		r = hfe_client_send_config(self->client, SESSION_ID, &cfg, timeout_ms, &err);
	}
	if (have_client && r == 0 && force) {
		/* The frame's force_keyframe flag says it already; KEYFRAME_REQ
		 * too, so that hosts honouring only one of them still comply. */
		struct hfe_msg kr = { .hdr = { .type = HFE_MSG_KEYFRAME_REQ,
					       .session_id = SESSION_ID } };
		r = hfe_client_send_msg(self->client, &kr, timeout_ms, &err);
	}
	if (have_client && r == 0) {
		struct pend *p = g_new0(struct pend, 1);
		p->kind = PEND_FRAME;
		p->frame_number = frame->system_frame_number;
		p->pts = fr.pts;
		p->resource = fr.resource_id != 0;
		p->sent_us = g_get_monotonic_time();
		g_mutex_lock(&self->lock);
		g_queue_push_tail(&self->pending, p);
		self->inflight++;
		g_mutex_unlock(&self->lock);
		queued = TRUE;
		r = hfe_client_send_frame(self->client, SESSION_ID, &fr, pixels, len, timeout_ms,
					  &err);
	}
	g_mutex_unlock(&self->client_lock);
	if (mapped)
		gst_video_frame_unmap(&vf);
	wake_receiver(self);

	if (have_client && r != 0)
		conn_lost(self, &err); /* drops the frames it finds queued */
	if (queued) {
		/* The base class keeps the frame; the receiver finds it by number. */
		gst_video_codec_frame_unref(frame);
		ret = GST_FLOW_OK;
	} else {
		ret = drop_frame(self, frame);
	}
	g_mutex_lock(&self->lock);
	state = self->state;
	if (!queued)
		self->need_idr = TRUE;
	g_mutex_unlock(&self->lock);
	return state == CONN_FAILED ? GST_FLOW_ERROR : ret;
}

/* ---- negotiation ---- */

/* Profile to ask the host for, and the caps string to announce. */
static guint8 choose_profile(GstVsockEnc *self, const gchar **caps_name)
{
	GST_OBJECT_LOCK(self);
	GstVsockEncProfile prop = self->profile;
	GST_OBJECT_UNLOCK(self);

	switch (prop) {
	case GST_VSOCK_ENC_PROFILE_MAIN:
		*caps_name = "main";
		return 77;
	case GST_VSOCK_ENC_PROFILE_HIGH:
		*caps_name = "high";
		return 100;
	case GST_VSOCK_ENC_PROFILE_CONSTRAINED_BASELINE:
		*caps_name = "constrained-baseline";
		return 66;
	case GST_VSOCK_ENC_PROFILE_AUTO:
	default:
		break;
	}

	/* auto: the first profile downstream accepts that the host can do */
	guint8 idc = 66;
	*caps_name = "constrained-baseline";
	GstCaps *allowed = gst_pad_get_allowed_caps(GST_VIDEO_ENCODER_SRC_PAD(self));
	if (allowed && !gst_caps_is_empty(allowed) && !gst_caps_is_any(allowed)) {
		const GValue *v = gst_structure_get_value(gst_caps_get_structure(allowed, 0),
							  "profile");
		guint n = v && GST_VALUE_HOLDS_LIST(v) ? gst_value_list_get_size(v) : (v ? 1 : 0);
		for (guint i = 0; i < n; i++) {
			const GValue *e =
				GST_VALUE_HOLDS_LIST(v) ? gst_value_list_get_value(v, i) : v;
			const gchar *s = G_VALUE_HOLDS_STRING(e) ? g_value_get_string(e) : NULL;
			if (!s)
				continue;
			if (!strcmp(s, "constrained-baseline") || !strcmp(s, "baseline")) {
				/* a constrained-baseline stream is a valid baseline stream */
				idc = 66;
				*caps_name = !strcmp(s, "baseline") ? "baseline"
								    : "constrained-baseline";
				break;
			}
			if (!strcmp(s, "main")) {
				idc = 77;
				*caps_name = "main";
				break;
			}
			if (!strcmp(s, "high")) {
				idc = 100;
				*caps_name = "high";
				break;
			}
		}
	}
	if (allowed)
		gst_caps_unref(allowed);
	return idc;
}

static gboolean host_has_format(GstVsockEnc *self, guint32 fourcc)
{
	if (self->version < HFE_PROTO_V2 || !self->host.format_count)
		return TRUE;
	for (guint i = 0; i < self->host.format_count && i < HFE_HELLO_MAX_FORMATS; i++)
		if (self->host.formats[i] == fourcc)
			return TRUE;
	return FALSE;
}

static gboolean gst_vsock_enc_set_format(GstVideoEncoder *enc, GstVideoCodecState *state)
{
	GstVsockEnc *self = GST_VSOCK_ENC(enc);
	const GstVideoInfo *info = &state->info;
	guint32 w = (guint32)GST_VIDEO_INFO_WIDTH(info), h = (guint32)GST_VIDEO_INFO_HEIGHT(info);
	guint32 fourcc = fourcc_of(GST_VIDEO_INFO_FORMAT(info));
	char fcc[5];

	g_mutex_lock(&self->client_lock);
	guint32 max_w = self->host.max_width, max_h = self->host.max_height;
	gboolean fmt_ok = host_has_format(self, fourcc);
	g_mutex_unlock(&self->client_lock);

	if (!fourcc || !fmt_ok) {
		GST_ELEMENT_ERROR(self, STREAM, FORMAT,
				  ("The host at %s does not accept %s frames", self->addr,
				   gst_video_format_to_string(GST_VIDEO_INFO_FORMAT(info))),
				  ("fourcc %s", hfe_fourcc_str(fourcc, fcc)));
		return FALSE;
	}
	if (w % 2 || h % 2 || w < HFE_MIN_DIMENSION || h < HFE_MIN_DIMENSION || w > max_w ||
	    h > max_h) {
		GST_ELEMENT_ERROR(self, STREAM, FORMAT,
				  ("The host at %s cannot encode %ux%u frames", self->addr, w, h),
				  ("width and height must be even, at least %u, and at most %ux%u",
				   HFE_MIN_DIMENSION, max_w, max_h));
		return FALSE;
	}

	/* Frames of the old format go out with the old caps. */
	if (wait_pending(self, 0, TRUE) == GST_FLOW_ERROR)
		return FALSE;

	gboolean resized = self->width && (w != self->width || h != self->height);
	self->in_info = *info;
	self->fourcc = fourcc;
	self->width = w;
	self->height = h;

	const gchar *profile_name;
	self->profile_idc = choose_profile(self, &profile_name);

	g_mutex_lock(&self->lock);
	self->config_due = TRUE;
	self->configured = TRUE;
	if (resized)
		self->need_idr = TRUE; /* the host restarts its encoder anyway; be explicit */
	g_mutex_unlock(&self->lock);

	GstCaps *caps = gst_caps_new_simple("video/x-h264", "stream-format", G_TYPE_STRING,
					    "byte-stream", "alignment", G_TYPE_STRING, "au",
					    "profile", G_TYPE_STRING, profile_name, NULL);
	GstVideoCodecState *out = gst_video_encoder_set_output_state(enc, caps, state);
	gst_video_codec_state_unref(out);
	if (!gst_video_encoder_negotiate(enc)) {
		GST_WARNING_OBJECT(self, "downstream refused H.264 profile %s", profile_name);
		return FALSE;
	}

	/* Latency: a reply normally takes less than a frame; when the pipeline is
	 * full we hold max-inflight frames. Raised later if the host is slower. */
	GstClockTime dur = 33 * GST_MSECOND;
	if (GST_VIDEO_INFO_FPS_N(info) > 0 && GST_VIDEO_INFO_FPS_D(info) > 0)
		dur = gst_util_uint64_scale(GST_SECOND, (guint64)GST_VIDEO_INFO_FPS_D(info),
					    (guint64)GST_VIDEO_INFO_FPS_N(info));
	g_mutex_lock(&self->lock);
	GstClockTime rtt = (GstClockTime)self->rtt_avg_us * GST_USECOND;
	self->latency_min = MAX(dur, rtt);
	GstClockTime min = self->latency_min;
	g_mutex_unlock(&self->lock);
	guint n = max_inflight_now(self);
	gst_video_encoder_set_latency(enc, min, MAX(min, dur * n));

	GST_INFO_OBJECT(self, "%s %ux%u -> H.264 %s (host at %s)",
			gst_video_format_to_string(GST_VIDEO_INFO_FORMAT(info)), w, h, profile_name,
			self->addr);
	return TRUE;
}

/* Sink caps: our formats and sizes restricted to what the host said it takes. */
static GstCaps *gst_vsock_enc_getcaps(GstVideoEncoder *enc, GstCaps *filter)
{
	GstVsockEnc *self = GST_VSOCK_ENC(enc);
	GstCaps *templ = gst_pad_get_pad_template_caps(GST_VIDEO_ENCODER_SINK_PAD(enc));
	GstCaps *ret;

	g_mutex_lock(&self->client_lock);
	gboolean known = self->client && self->version >= HFE_PROTO_V2;
	struct hfe_hello_resp host = self->host;
	g_mutex_unlock(&self->client_lock);

	if (known) {
		GstCaps *caps = gst_caps_make_writable(templ);
		GValue list = G_VALUE_INIT, item = G_VALUE_INIT;
		g_value_init(&list, GST_TYPE_LIST);
		g_value_init(&item, G_TYPE_STRING);
		for (guint i = 0; i < G_N_ELEMENTS(format_map); i++) {
			gboolean has = host.format_count == 0;
			for (guint k = 0; k < host.format_count && k < HFE_HELLO_MAX_FORMATS; k++)
				has = has || host.formats[k] == format_map[i].fourcc;
			if (!has)
				continue;
			g_value_set_string(&item, gst_video_format_to_string(format_map[i].gst));
			gst_value_list_append_value(&list, &item);
		}
		for (guint i = 0; i < gst_caps_get_size(caps); i++) {
			GstStructure *st = gst_caps_get_structure(caps, i);
			gst_structure_set_value(st, "format", &list);
			if (host.max_width >= HFE_MIN_DIMENSION &&
			    host.max_height >= HFE_MIN_DIMENSION)
				gst_structure_set(
					st, "width", GST_TYPE_INT_RANGE, (gint)HFE_MIN_DIMENSION,
					(gint)MIN(host.max_width, HFE_MAX_DIMENSION), "height",
					GST_TYPE_INT_RANGE, (gint)HFE_MIN_DIMENSION,
					(gint)MIN(host.max_height, HFE_MAX_DIMENSION), NULL);
		}
		g_value_unset(&item);
		g_value_unset(&list);
		templ = caps;
	}
	ret = gst_video_encoder_proxy_getcaps(enc, templ, filter);
	gst_caps_unref(templ);
	return ret;
}

/* ---- lifecycle ---- */

static gboolean gst_vsock_enc_start(GstVideoEncoder *enc)
{
	GstVsockEnc *self = GST_VSOCK_ENC(enc);
	struct hfe_err err = { 0 };
	struct hfe_hello_resp caps;
	unsigned version = HFE_PROTO_V1;

	GST_OBJECT_LOCK(self);
	g_free(self->addr);
	self->addr = gst_hfe_resolve_address(self->address);
	gint timeout_ms = (gint)self->timeout_ms;
	g_free(self->host_encoder);
	self->host_encoder = NULL;
	GST_OBJECT_UNLOCK(self);

	if (!self->wait) {
		GST_ELEMENT_ERROR(self, RESOURCE, FAILED, ("Could not create a GstPoll"),
				  ("out of file descriptors?"));
		return FALSE;
	}
	gst_hfe_wait_set_flushing(self->wait, FALSE);

	GST_INFO_OBJECT(self, "connecting to %s", self->addr);
	struct hfe_client *c = connect_host(self, self->addr, timeout_ms, &version, &caps, &err);
	if (!c) {
		GST_ELEMENT_ERROR(self, RESOURCE, OPEN_READ_WRITE,
				  ("Could not connect to the host encoder at %s", self->addr),
				  ("%s", err.msg));
		return FALSE;
	}

	g_mutex_lock(&self->client_lock);
	self->client = c;
	self->version = version;
	self->host = caps;
	g_mutex_unlock(&self->client_lock);

	g_mutex_lock(&self->lock);
	self->state = CONN_UP;
	self->flushing = FALSE;
	self->task_stop = FALSE;
	self->config_due = FALSE;
	self->need_idr = FALSE;
	self->resource_off = FALSE;
	self->encoder_warned = FALSE;
	self->configured = FALSE;
	self->have_key = FALSE;
	self->last_key_number = 0;
	self->downstream_ret = GST_FLOW_OK;
	self->rtt_avg_us = 0;
	self->latency_min = 0;
	g_mutex_unlock(&self->lock);

	self->width = self->height = 0;
	self->fourcc = 0;
	return TRUE;
}

static void clear_pending(GstVsockEnc *self)
{
	struct pend *p;
	g_mutex_lock(&self->lock);
	while ((p = g_queue_pop_head(&self->pending)))
		pend_free(p);
	self->inflight = 0;
	g_mutex_unlock(&self->lock);
}

static void unblock(GstVsockEnc *self)
{
	g_mutex_lock(&self->lock);
	self->task_stop = TRUE;
	g_cond_broadcast(&self->cond);
	g_mutex_unlock(&self->lock);
	gst_hfe_wait_set_flushing(self->wait, TRUE);
}

static gboolean gst_vsock_enc_stop(GstVideoEncoder *enc)
{
	GstVsockEnc *self = GST_VSOCK_ENC(enc);

	unblock(self);
	gst_pad_stop_task(GST_VIDEO_ENCODER_SRC_PAD(enc));

	g_mutex_lock(&self->client_lock);
	hfe_client_close(self->client);
	self->client = NULL;
	gst_hfe_virtgpu_close(self->gpu);
	self->gpu = NULL;
	self->gpu_tried = FALSE;
	g_mutex_unlock(&self->client_lock);

	clear_pending(self);
	g_free(self->scratch);
	self->scratch = NULL;
	self->scratch_size = 0;
	return TRUE;
}

/* EOS: everything in flight is encoded and pushed before EOS goes on. */
static GstFlowReturn gst_vsock_enc_finish(GstVideoEncoder *enc)
{
	GstVsockEnc *self = GST_VSOCK_ENC(enc);
	GstFlowReturn ret = wait_pending(self, 0, TRUE);

	if (ret != GST_FLOW_OK)
		return ret;
	g_mutex_lock(&self->lock);
	ret = self->downstream_ret == GST_FLOW_FLUSHING ? GST_FLOW_OK : self->downstream_ret;
	g_mutex_unlock(&self->lock);
	GST_DEBUG_OBJECT(self, "drained: %s", gst_flow_get_name(ret));
	return ret;
}

/* FLUSH_STOP (stream lock held): frames in flight are forgotten; their
 * answers, still on their way, are discarded when they come. */
static gboolean gst_vsock_enc_flush(GstVideoEncoder *enc)
{
	GstVsockEnc *self = GST_VSOCK_ENC(enc);

	g_mutex_lock(&self->lock);
	for (GList *l = self->pending.head; l; l = l->next) {
		struct pend *p = l->data;
		p->ghost = TRUE;
		if (p->au) {
			gst_buffer_unref(p->au);
			p->au = NULL;
		}
	}
	self->flushing = FALSE;
	self->need_idr = TRUE; /* decoding restarts here */
	self->downstream_ret = GST_FLOW_OK;
	g_cond_broadcast(&self->cond);
	g_mutex_unlock(&self->lock);
	return TRUE;
}

static gboolean gst_vsock_enc_sink_event(GstVideoEncoder *enc, GstEvent *event)
{
	GstVsockEnc *self = GST_VSOCK_ENC(enc);

	if (GST_EVENT_TYPE(event) == GST_EVENT_FLUSH_START) {
		/* Release a streaming thread waiting for a slot. */
		g_mutex_lock(&self->lock);
		self->flushing = TRUE;
		g_cond_broadcast(&self->cond);
		g_mutex_unlock(&self->lock);
		wake_receiver(self);
	}
	return GST_VIDEO_ENCODER_CLASS(parent_class)->sink_event(enc, event);
}

static GstStateChangeReturn gst_vsock_enc_change_state(GstElement *element,
						       GstStateChange transition)
{
	GstVsockEnc *self = GST_VSOCK_ENC(element);

	/* Pads are deactivated next, which waits for the streaming thread: let
	 * it out of any wait first. */
	if (transition == GST_STATE_CHANGE_PAUSED_TO_READY)
		unblock(self);
	return GST_ELEMENT_CLASS(parent_class)->change_state(element, transition);
}

/* ---- properties ---- */

static void gst_vsock_enc_set_property(GObject *object, guint prop_id, const GValue *value,
				       GParamSpec *pspec)
{
	GstVsockEnc *self = GST_VSOCK_ENC(object);

	GST_OBJECT_LOCK(self);
	switch (prop_id) {
	case PROP_ADDRESS:
		g_free(self->address);
		self->address = g_value_dup_string(value);
		break;
	case PROP_BITRATE: {
		guint v = g_value_get_uint(value);
		gboolean changed = v != self->bitrate;
		self->bitrate = v;
		GST_OBJECT_UNLOCK(self);
		if (changed) {
			/* sent with the next frame, in order with the frames */
			g_mutex_lock(&self->lock);
			if (self->configured)
				self->config_due = TRUE;
			g_mutex_unlock(&self->lock);
		}
		return;
	}
	case PROP_KEY_INT_MAX:
		self->key_int_max = g_value_get_uint(value);
		break;
	case PROP_ENCODER:
		g_free(self->encoder_hint);
		self->encoder_hint = g_value_dup_string(value);
		break;
	case PROP_PROFILE:
		self->profile = g_value_get_enum(value);
		break;
	case PROP_MAX_INFLIGHT:
		self->max_inflight = g_value_get_uint(value);
		break;
	case PROP_TIMEOUT:
		self->timeout_ms = g_value_get_uint(value);
		break;
	case PROP_RECONNECT:
		self->reconnect = g_value_get_boolean(value);
		break;
	default:
		G_OBJECT_WARN_INVALID_PROPERTY_ID(object, prop_id, pspec);
		break;
	}
	GST_OBJECT_UNLOCK(self);
}

static void gst_vsock_enc_get_property(GObject *object, guint prop_id, GValue *value,
				       GParamSpec *pspec)
{
	GstVsockEnc *self = GST_VSOCK_ENC(object);

	GST_OBJECT_LOCK(self);
	switch (prop_id) {
	case PROP_ADDRESS:
		g_value_take_string(value, gst_hfe_resolve_address(self->address));
		break;
	case PROP_BITRATE:
		g_value_set_uint(value, self->bitrate);
		break;
	case PROP_KEY_INT_MAX:
		g_value_set_uint(value, self->key_int_max);
		break;
	case PROP_ENCODER:
		g_value_set_string(value, self->encoder_hint);
		break;
	case PROP_PROFILE:
		g_value_set_enum(value, self->profile);
		break;
	case PROP_MAX_INFLIGHT:
		g_value_set_uint(value, self->max_inflight);
		break;
	case PROP_TIMEOUT:
		g_value_set_uint(value, self->timeout_ms);
		break;
	case PROP_RECONNECT:
		g_value_set_boolean(value, self->reconnect);
		break;
	case PROP_HOST_ENCODER:
		g_value_set_string(value, self->host_encoder);
		break;
	default:
		G_OBJECT_WARN_INVALID_PROPERTY_ID(object, prop_id, pspec);
		break;
	}
	GST_OBJECT_UNLOCK(self);
}

static void gst_vsock_enc_finalize(GObject *object)
{
	GstVsockEnc *self = GST_VSOCK_ENC(object);

	hfe_client_close(self->client);
	gst_hfe_virtgpu_close(self->gpu);
	clear_pending(self);
	gst_hfe_wait_free(self->wait);
	g_free(self->address);
	g_free(self->encoder_hint);
	g_free(self->host_encoder);
	g_free(self->addr);
	g_free(self->scratch);
	g_mutex_clear(&self->client_lock);
	g_mutex_clear(&self->lock);
	g_cond_clear(&self->cond);
	G_OBJECT_CLASS(parent_class)->finalize(object);
}

static void gst_vsock_enc_init(GstVsockEnc *self)
{
	self->bitrate = DEFAULT_BITRATE;
	self->key_int_max = DEFAULT_KEY_INT_MAX;
	self->profile = DEFAULT_PROFILE;
	self->max_inflight = DEFAULT_MAX_INFLIGHT;
	self->timeout_ms = DEFAULT_TIMEOUT;
	self->reconnect = DEFAULT_RECONNECT;
	self->wait = gst_hfe_wait_new();
	g_mutex_init(&self->client_lock);
	g_mutex_init(&self->lock);
	g_cond_init(&self->cond);
	g_queue_init(&self->pending);
	self->state = CONN_UP;
	self->downstream_ret = GST_FLOW_OK;
	gst_video_info_init(&self->in_info);
}

static void gst_vsock_enc_class_init(GstVsockEncClass *klass)
{
	GObjectClass *gobject_class = G_OBJECT_CLASS(klass);
	GstElementClass *element_class = GST_ELEMENT_CLASS(klass);
	GstVideoEncoderClass *venc_class = GST_VIDEO_ENCODER_CLASS(klass);

	gobject_class->set_property = gst_vsock_enc_set_property;
	gobject_class->get_property = gst_vsock_enc_get_property;
	gobject_class->finalize = gst_vsock_enc_finalize;

	g_object_class_install_property(
		gobject_class, PROP_ADDRESS,
		g_param_spec_string("address", "Address", GST_HFE_ADDRESS_BLURB, NULL,
				    G_PARAM_READWRITE | G_PARAM_STATIC_STRINGS |
					    GST_PARAM_MUTABLE_READY));
	g_object_class_install_property(
		gobject_class, PROP_BITRATE,
		g_param_spec_uint("bitrate", "Bitrate",
				  "Target bitrate in kbit/s (0 = the host's default, its "
				  "--bitrate); can be changed while PLAYING",
				  0, 1000000, DEFAULT_BITRATE,
				  G_PARAM_READWRITE | G_PARAM_STATIC_STRINGS |
					  GST_PARAM_MUTABLE_PLAYING));
	g_object_class_install_property(
		gobject_class, PROP_KEY_INT_MAX,
		g_param_spec_uint("key-int-max", "Key-frame maximal interval",
				  "At most this many frames between IDR frames; the element "
				  "requests them (0 = only the host's own GOP, its --gop)",
				  0, G_MAXINT, DEFAULT_KEY_INT_MAX,
				  G_PARAM_READWRITE | G_PARAM_STATIC_STRINGS |
					  GST_PARAM_MUTABLE_PLAYING));
	g_object_class_install_property(
		gobject_class, PROP_ENCODER,
		g_param_spec_string(
			"encoder", "Expected host encoder",
			"Host encoder this pipeline expects (e.g. libx264, h264_nvenc). "
			"The protocol cannot select it (the host's --encoder option "
			"does); if the host reports a different one a warning is "
			"posted",
			NULL,
			G_PARAM_READWRITE | G_PARAM_STATIC_STRINGS | GST_PARAM_MUTABLE_READY));
	g_object_class_install_property(
		gobject_class, PROP_PROFILE,
		g_param_spec_enum("profile", "Profile",
				  "H.264 profile to ask the host for (auto: the first one "
				  "downstream accepts, else constrained-baseline)",
				  GST_TYPE_VSOCK_ENC_PROFILE, DEFAULT_PROFILE,
				  G_PARAM_READWRITE | G_PARAM_STATIC_STRINGS |
					  GST_PARAM_MUTABLE_READY));
	g_object_class_install_property(
		gobject_class, PROP_MAX_INFLIGHT,
		g_param_spec_uint("max-inflight", "Frames in flight",
				  "Frames sent before the first of them must have come back "
				  "(pipelining depth; capped by the host's own limit)",
				  1, 64, DEFAULT_MAX_INFLIGHT,
				  G_PARAM_READWRITE | G_PARAM_STATIC_STRINGS |
					  GST_PARAM_MUTABLE_READY));
	g_object_class_install_property(
		gobject_class, PROP_TIMEOUT,
		g_param_spec_uint("timeout", "Timeout",
				  "Milliseconds to wait for the host to connect, to take a frame, "
				  "and to answer the oldest frame in flight; then the connection "
				  "counts as lost",
				  10, 600000, DEFAULT_TIMEOUT,
				  G_PARAM_READWRITE | G_PARAM_STATIC_STRINGS |
					  GST_PARAM_MUTABLE_READY));
	g_object_class_install_property(
		gobject_class, PROP_RECONNECT,
		g_param_spec_boolean("reconnect", "Reconnect",
				     "When the host goes away mid-stream, drop the frames in "
				     "flight and reconnect (100 ms backoff doubling to 5 s), "
				     "resuming with an IDR; frames arriving meanwhile are "
				     "dropped. Off: post an error",
				     DEFAULT_RECONNECT,
				     G_PARAM_READWRITE | G_PARAM_STATIC_STRINGS |
					     GST_PARAM_MUTABLE_PLAYING));
	g_object_class_install_property(
		gobject_class, PROP_HOST_ENCODER,
		g_param_spec_string("host-encoder", "Host encoder",
				    "Encoder the host reported (protocol v2 hosts; NULL until "
				    "known)",
				    NULL, G_PARAM_READABLE | G_PARAM_STATIC_STRINGS));

	gst_element_class_add_static_pad_template(element_class, &sink_template);
	gst_element_class_add_static_pad_template(element_class, &src_template);
	gst_element_class_set_static_metadata(
		element_class, "H.264 encoder on a helix-frame-export host", "Codec/Encoder/Video",
		"Encodes raw video to H.264 by sending each frame to a "
		"helix-frame-export host (vsock, virtio-serial, TCP or "
		"unix socket) and pushing the access unit it returns. The "
		"host's --encoder, --preset and --tune options choose the "
		"encoder and its speed; this element sets size, bitrate, "
		"frame rate, profile and keyframes",
		"helix-frame-export developers");

	element_class->change_state = GST_DEBUG_FUNCPTR(gst_vsock_enc_change_state);

	venc_class->start = GST_DEBUG_FUNCPTR(gst_vsock_enc_start);
	venc_class->stop = GST_DEBUG_FUNCPTR(gst_vsock_enc_stop);
	venc_class->set_format = GST_DEBUG_FUNCPTR(gst_vsock_enc_set_format);
	venc_class->handle_frame = GST_DEBUG_FUNCPTR(gst_vsock_enc_handle_frame);
	venc_class->finish = GST_DEBUG_FUNCPTR(gst_vsock_enc_finish);
	venc_class->flush = GST_DEBUG_FUNCPTR(gst_vsock_enc_flush);
	venc_class->sink_event = GST_DEBUG_FUNCPTR(gst_vsock_enc_sink_event);
	venc_class->getcaps = GST_DEBUG_FUNCPTR(gst_vsock_enc_getcaps);

	gst_type_mark_as_plugin_api(GST_TYPE_VSOCK_ENC_PROFILE, 0);
	GST_DEBUG_CATEGORY_INIT(gst_vsock_enc_debug, "vsockenc", 0,
				"H.264 encoding on a helix-frame-export host");
}
