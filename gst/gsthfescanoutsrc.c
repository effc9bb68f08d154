/* SPDX-License-Identifier: LGPL-2.1-or-later */
/**
 * SECTION:element-hfescanoutsrc
 * @title: hfescanoutsrc
 *
 * A live source of H.264 encoded on the host from one of its scanouts (the
 * host's view of a display of this VM). The element subscribes to scanout N
 * over the HXFR protocol and outputs the access units the host pushes; no raw
 * frames travel and no encoding happens in the guest. A static screen costs
 * nothing: the host only encodes when the picture changes, so buffers arrive
 * at irregular intervals and the caps say framerate=0/1.
 *
 * Buffers are timestamped with the pipeline's running time at arrival. The
 * stream starts with an IDR with SPS/PPS; a force-key-unit event (upstream
 * from downstream elements, or sent to this element) asks the host for a new
 * IDR.
 *
 * ## Example pipelines
 * |[
 * gst-launch-1.0 hfescanoutsrc scanout=0 ! h264parse ! avdec_h264 ! videoconvert ! autovideosink
 * gst-launch-1.0 hfescanoutsrc address=tcp:10.0.2.2:15937 ! h264parse ! mp4mux ! filesink location=desktop.mp4 -e
 * ]|
 */
#ifdef HAVE_CONFIG_H
#include "config.h"
#endif

#include "gsthfescanoutsrc.h"

#include <errno.h>
#include <string.h>

#include <gst/video/video.h>

#include "gsthfeaddr.h"
#include "gsthfewait.h"
#include "hfe/client.h"
#include "hfe/h264.h"
#include "hfe/wire.h"

GST_DEBUG_CATEGORY_STATIC(gst_hfe_scanout_src_debug);
#define GST_CAT_DEFAULT gst_hfe_scanout_src_debug

#define DEFAULT_SCANOUT 0
#define DEFAULT_BITRATE 0 /* host default */
#define DEFAULT_TIMEOUT 5000

enum {
	PROP_0,
	PROP_ADDRESS,
	PROP_SCANOUT,
	PROP_BITRATE,
	PROP_TIMEOUT,
};

struct _GstHfeScanoutSrc {
	GstPushSrc parent;

	/* Properties (object lock). */
	gchar *address; /* NULL: gst_hfe_default_address() */
	guint scanout;
	guint bitrate; /* kbit/s, 0 = host default */
	guint timeout; /* ms, 0 = wait forever, no keep-alive */

	/* Streaming state, used by start/stop/create only. */
	struct hfe_client *client;
	gchar *addr_used; /* the address connected to, for messages */
	guint scanout_used;
	gint timeout_used; /* -1 = forever */
	gboolean wait_keyframe; /* drop until the next IDR */
	gboolean ping_sent;     /* keep-alive PING not answered yet */
	gboolean subscribe_idr; /* the IDR the host sends a new subscriber is still due */
	guint width, height;    /* of the current caps, 0 before the first SPS */
	GstClockTime last_pts;
	gboolean output_started;

	/* Shared with unlock() and the event handlers (lock). */
	GMutex lock;
	gboolean flushing;
	gboolean playing;     /* in PLAYING: create() may return data */
	gboolean resync;      /* drop what queued up, ask for a fresh IDR */
	gboolean kf_request;  /* send KEYFRAME_REQ */
	GstEvent *fku_reply;  /* downstream force-key-unit to push before that IDR */
	/* create() waits here for the host: unlock() sets it flushing, keyframe
	 * requests and resuming wake it (the element's whole life). */
	GstHfeWait *wait;
};

static GstStaticPadTemplate src_template = GST_STATIC_PAD_TEMPLATE(
	"src", GST_PAD_SRC, GST_PAD_ALWAYS,
	GST_STATIC_CAPS("video/x-h264, stream-format = (string) byte-stream, "
			"alignment = (string) au, width = (int) [ 16, 16384 ], "
			"height = (int) [ 16, 16384 ], framerate = (fraction) 0/1"));

#define gst_hfe_scanout_src_parent_class parent_class
G_DEFINE_TYPE(GstHfeScanoutSrc, gst_hfe_scanout_src, GST_TYPE_PUSH_SRC);
GST_ELEMENT_REGISTER_DEFINE(hfescanoutsrc, "hfescanoutsrc", GST_RANK_NONE,
			    GST_TYPE_HFE_SCANOUT_SRC);

/* ---- properties ---- */

static void gst_hfe_scanout_src_set_property(GObject *object, guint prop_id,
					     const GValue *value, GParamSpec *pspec)
{
	GstHfeScanoutSrc *self = GST_HFE_SCANOUT_SRC(object);

	GST_OBJECT_LOCK(self);
	switch (prop_id) {
	case PROP_ADDRESS:
		g_free(self->address);
		self->address = g_value_dup_string(value);
		if (self->address && !*self->address)
			g_clear_pointer(&self->address, g_free);
		break;
	case PROP_SCANOUT:
		self->scanout = g_value_get_uint(value);
		break;
	case PROP_BITRATE:
		self->bitrate = g_value_get_uint(value);
		break;
	case PROP_TIMEOUT:
		self->timeout = g_value_get_uint(value);
		break;
	default:
		G_OBJECT_WARN_INVALID_PROPERTY_ID(object, prop_id, pspec);
		break;
	}
	GST_OBJECT_UNLOCK(self);
}

static void gst_hfe_scanout_src_get_property(GObject *object, guint prop_id, GValue *value,
					     GParamSpec *pspec)
{
	GstHfeScanoutSrc *self = GST_HFE_SCANOUT_SRC(object);

	GST_OBJECT_LOCK(self);
	switch (prop_id) {
	case PROP_ADDRESS:
		if (self->address)
			g_value_set_string(value, self->address);
		else
			g_value_take_string(value, gst_hfe_default_address());
		break;
	case PROP_SCANOUT:
		g_value_set_uint(value, self->scanout);
		break;
	case PROP_BITRATE:
		g_value_set_uint(value, self->bitrate);
		break;
	case PROP_TIMEOUT:
		g_value_set_uint(value, self->timeout);
		break;
	default:
		G_OBJECT_WARN_INVALID_PROPERTY_ID(object, prop_id, pspec);
		break;
	}
	GST_OBJECT_UNLOCK(self);
}

/* ---- wake-ups ---- */

/* lock held: create() looks at what the caller just changed. */
static void wake(GstHfeScanoutSrc *self)
{
	gst_hfe_wait_wake(self->wait);
}

/* ---- start / stop ---- */

static void close_client(GstHfeScanoutSrc *self)
{
	g_clear_pointer(&self->client, hfe_client_close);
}

/* Wait for the SUBSCRIBE_RESP of our scanout. TRUE if the host has it. */
static gboolean wait_subscribed(GstHfeScanoutSrc *self)
{
	gint64 deadline = self->timeout_used < 0
				  ? -1
				  : g_get_monotonic_time() / 1000 + self->timeout_used;
	struct hfe_msg msg;
	struct hfe_err err;

	for (;;) {
		gint left = -1;
		if (deadline >= 0) {
			gint64 l = deadline - g_get_monotonic_time() / 1000;
			left = l > 0 ? (gint)l : 0;
		}
		int r = hfe_client_recv(self->client, &msg, left, &err);
		if (r < 0) {
			GST_ELEMENT_ERROR(self, RESOURCE, READ,
					  ("Host at %s closed the connection while subscribing to "
					   "scanout %u", self->addr_used, self->scanout_used),
					  ("%s", err.msg));
			return FALSE;
		}
		if (r == 0) {
			GST_ELEMENT_ERROR(self, RESOURCE, READ,
					  ("Host at %s did not answer the subscription to scanout %u "
					   "within %d ms", self->addr_used, self->scanout_used,
					   self->timeout_used),
					  (NULL));
			return FALSE;
		}
		if (msg.hdr.type == HFE_MSG_ERROR) {
			GST_ELEMENT_ERROR(self, RESOURCE, READ,
					  ("Host at %s refused the subscription to scanout %u: %s",
					   self->addr_used, self->scanout_used, msg.u.error.message),
					  ("error %s (%d)", hfe_error_name(msg.u.error.code),
					   msg.u.error.code));
			return FALSE;
		}
		if (msg.hdr.type != HFE_MSG_SUBSCRIBE_RESP ||
		    msg.u.subscribe_resp.scanout_id != self->scanout_used) {
			GST_DEBUG_OBJECT(self, "skipping message type 0x%02x while subscribing",
					 msg.hdr.type);
			continue;
		}
		if (!msg.u.subscribe_resp.success) {
			GST_ELEMENT_ERROR(self, RESOURCE, NOT_FOUND,
					  ("Host at %s has no scanout %u", self->addr_used,
					   self->scanout_used),
					  ("SUBSCRIBE_RESP success=0 for scanout %u",
					   self->scanout_used));
			return FALSE;
		}
		return TRUE;
	}
}

static gboolean gst_hfe_scanout_src_start(GstBaseSrc *bsrc)
{
	GstHfeScanoutSrc *self = GST_HFE_SCANOUT_SRC(bsrc);
	struct hfe_err err;
	guint bitrate;

	GST_OBJECT_LOCK(self);
	self->addr_used = gst_hfe_resolve_address(self->address);
	self->scanout_used = self->scanout;
	self->timeout_used = self->timeout ? (gint)MIN(self->timeout, (guint)G_MAXINT) : -1;
	bitrate = self->bitrate;
	GST_OBJECT_UNLOCK(self);

	self->width = self->height = 0;
	self->last_pts = GST_CLOCK_TIME_NONE;
	self->output_started = FALSE;
	self->ping_sent = FALSE;
	self->wait_keyframe = TRUE;
	self->subscribe_idr = TRUE;

	GST_INFO_OBJECT(self, "subscribing to scanout %u at %s", self->scanout_used,
			self->addr_used);
	self->client = hfe_client_connect(self->addr_used, self->timeout_used, &err);
	if (!self->client) {
		GST_ELEMENT_ERROR(self, RESOURCE, OPEN_READ,
				  ("Could not connect to the host at %s", self->addr_used),
				  ("%s", err.msg));
		goto fail;
	}
	if (bitrate) {
		/* A scanout stream is shared by all its subscribers: the host
		 * may apply this to it or ignore it. */
		struct hfe_config_req cfg = { .bitrate = bitrate * 1000u };
		if (hfe_client_send_config(self->client, (guint16)self->scanout_used, &cfg,
					   self->timeout_used, &err) < 0)
			goto send_failed;
	}
	struct hfe_msg sub = { .hdr = { .type = HFE_MSG_SUBSCRIBE,
					.session_id = (guint16)self->scanout_used } };
	sub.u.scanout_id = self->scanout_used;
	if (hfe_client_send_msg(self->client, &sub, self->timeout_used, &err) < 0)
		goto send_failed;
	if (!wait_subscribed(self))
		goto fail;
	if (!self->wait) {
		GST_ELEMENT_ERROR(self, RESOURCE, OPEN_READ, ("Could not create a GstPoll"),
				  ("out of file descriptors?"));
		goto fail;
	}
	g_mutex_lock(&self->lock);
	self->resync = TRUE;
	self->kf_request = FALSE;
	self->playing = FALSE;
	g_mutex_unlock(&self->lock);
	return TRUE;

send_failed:
	GST_ELEMENT_ERROR(self, RESOURCE, WRITE,
			  ("Could not subscribe to scanout %u at the host at %s", self->scanout_used,
			   self->addr_used),
			  ("%s", err.msg));
fail:
	close_client(self);
	g_clear_pointer(&self->addr_used, g_free);
	return FALSE;
}

static gboolean gst_hfe_scanout_src_stop(GstBaseSrc *bsrc)
{
	GstHfeScanoutSrc *self = GST_HFE_SCANOUT_SRC(bsrc);

	close_client(self);
	g_mutex_lock(&self->lock);
	gst_clear_event(&self->fku_reply);
	g_mutex_unlock(&self->lock);
	g_clear_pointer(&self->addr_used, g_free);
	return TRUE;
}

static gboolean gst_hfe_scanout_src_unlock(GstBaseSrc *bsrc)
{
	GstHfeScanoutSrc *self = GST_HFE_SCANOUT_SRC(bsrc);

	g_mutex_lock(&self->lock);
	self->flushing = TRUE;
	gst_hfe_wait_set_flushing(self->wait, TRUE);
	g_mutex_unlock(&self->lock);
	return TRUE;
}

static gboolean gst_hfe_scanout_src_unlock_stop(GstBaseSrc *bsrc)
{
	GstHfeScanoutSrc *self = GST_HFE_SCANOUT_SRC(bsrc);

	g_mutex_lock(&self->lock);
	gst_hfe_wait_set_flushing(self->wait, FALSE);
	self->flushing = FALSE;
	/* Back from PAUSED or a flush: what queued meanwhile is stale. */
	self->resync = TRUE;
	g_mutex_unlock(&self->lock);
	return TRUE;
}

/* Pausing a live source does not unlock create(), and basesrc would push a
 * unit it returns while paused after resuming. So create() drops what
 * arrives while paused, and a resume drops what queued meanwhile and asks
 * for an IDR. */
static GstStateChangeReturn gst_hfe_scanout_src_change_state(GstElement *element,
							     GstStateChange transition)
{
	GstHfeScanoutSrc *self = GST_HFE_SCANOUT_SRC(element);

	if (transition == GST_STATE_CHANGE_PAUSED_TO_PLAYING ||
	    transition == GST_STATE_CHANGE_PLAYING_TO_PAUSED) {
		g_mutex_lock(&self->lock);
		self->playing = transition == GST_STATE_CHANGE_PAUSED_TO_PLAYING;
		if (self->playing) {
			self->resync = TRUE;
			wake(self);
		}
		g_mutex_unlock(&self->lock);
	}
	return GST_ELEMENT_CLASS(parent_class)->change_state(element, transition);
}

/* ---- force-key-unit ---- */

static void request_keyframe(GstHfeScanoutSrc *self, GstClockTime running_time,
			     gboolean all_headers, guint count)
{
	g_mutex_lock(&self->lock);
	self->kf_request = TRUE;
	gst_clear_event(&self->fku_reply);
	self->fku_reply = gst_video_event_new_downstream_force_key_unit(
		GST_CLOCK_TIME_NONE, GST_CLOCK_TIME_NONE, running_time, all_headers, count);
	wake(self);
	g_mutex_unlock(&self->lock);
}

/* Upstream: from downstream elements (a muxer, a WebRTC sender...). */
static gboolean gst_hfe_scanout_src_event(GstBaseSrc *bsrc, GstEvent *event)
{
	GstHfeScanoutSrc *self = GST_HFE_SCANOUT_SRC(bsrc);

	if (gst_video_event_is_force_key_unit(event) &&
	    GST_EVENT_TYPE(event) == GST_EVENT_CUSTOM_UPSTREAM) {
		GstClockTime rt = GST_CLOCK_TIME_NONE;
		gboolean all = TRUE;
		guint count = 0;
		gst_video_event_parse_upstream_force_key_unit(event, &rt, &all, &count);
		GST_DEBUG_OBJECT(self, "upstream force-key-unit");
		request_keyframe(self, rt, all, count);
		return TRUE;
	}
	return GST_BASE_SRC_CLASS(parent_class)->event(bsrc, event);
}

/* Downstream: sent to the element by the application. */
static gboolean gst_hfe_scanout_src_send_event(GstElement *element, GstEvent *event)
{
	GstHfeScanoutSrc *self = GST_HFE_SCANOUT_SRC(element);

	if (gst_video_event_is_force_key_unit(event) &&
	    GST_EVENT_TYPE(event) == GST_EVENT_CUSTOM_DOWNSTREAM) {
		GstClockTime ts, st, rt = GST_CLOCK_TIME_NONE;
		gboolean all = TRUE;
		guint count = 0;
		gst_video_event_parse_downstream_force_key_unit(event, &ts, &st, &rt, &all, &count);
		GST_DEBUG_OBJECT(self, "downstream force-key-unit");
		request_keyframe(self, rt, all, count);
		gst_event_unref(event);
		return TRUE;
	}
	return GST_ELEMENT_CLASS(parent_class)->send_event(element, event);
}

/* ---- streaming ---- */

/* Caps come from the first SPS (update_caps); there is nothing to choose
 * before, and after it the stream is what the host sends. */
static gboolean gst_hfe_scanout_src_negotiate(GstBaseSrc *bsrc)
{
	(void)bsrc;
	return TRUE;
}

static gboolean update_caps(GstHfeScanoutSrc *self, guint width, guint height)
{
	if (width == self->width && height == self->height)
		return TRUE;
	GstCaps *caps = gst_caps_new_simple("video/x-h264", "stream-format", G_TYPE_STRING,
					    "byte-stream", "alignment", G_TYPE_STRING, "au",
					    "width", G_TYPE_INT, (gint)width, "height", G_TYPE_INT,
					    (gint)height, "framerate", GST_TYPE_FRACTION, 0, 1,
					    NULL);
	GST_INFO_OBJECT(self, "scanout %u is %ux%u: %" GST_PTR_FORMAT, self->scanout_used, width,
			height, caps);
	gboolean ok = gst_base_src_set_caps(GST_BASE_SRC(self), caps);
	gst_caps_unref(caps);
	if (ok) {
		self->width = width;
		self->height = height;
	}
	return ok;
}

/* Running time now (do-timestamp style), strictly increasing. */
static GstClockTime arrival_time(GstHfeScanoutSrc *self)
{
	GstClock *clock = gst_element_get_clock(GST_ELEMENT(self));
	GstClockTime t;

	if (!clock)
		return GST_CLOCK_TIME_NONE;
	GstClockTime now = gst_clock_get_time(clock);
	GstClockTime base = gst_element_get_base_time(GST_ELEMENT(self));
	gst_object_unref(clock);
	t = now > base ? now - base : 0;
	if (GST_CLOCK_TIME_IS_VALID(self->last_pts) && t <= self->last_pts)
		t = self->last_pts + 1;
	self->last_pts = t;
	return t;
}

/*
 * Turn a FRAME_RESPONSE into a buffer. Returns GST_FLOW_OK with *out set,
 * GST_FLOW_OK with *out NULL when the unit is dropped (waiting for an IDR),
 * or an error.
 */
static GstFlowReturn frame_to_buffer(GstHfeScanoutSrc *self, const struct hfe_msg *msg,
				     GstBuffer **out)
{
	const guint8 *unit;
	guint32 unit_len;
	gsize pos = 0, size = 0;

	*out = NULL;
	while (hfe_nal_next(msg, &pos, &unit, &unit_len))
		size += hfe_h264_put_annexb(NULL, unit, unit_len);
	if (size == 0)
		return GST_FLOW_OK;

	GstBuffer *buf = gst_buffer_new_allocate(NULL, size, NULL);
	GstMapInfo map;
	if (!buf || !gst_buffer_map(buf, &map, GST_MAP_WRITE)) {
		gst_clear_buffer(&buf);
		GST_ELEMENT_ERROR(self, RESOURCE, FAILED, ("Out of memory"), (NULL));
		return GST_FLOW_ERROR;
	}
	gsize off = 0;
	pos = 0;
	while (hfe_nal_next(msg, &pos, &unit, &unit_len))
		off += hfe_h264_put_annexb(map.data + off, unit, unit_len);

	/* The host's flag, checked against the bitstream: an IDR slice makes a
	 * keyframe; the SPS gives the picture size. */
	gboolean idr = FALSE, have_sps = FALSE, sps_ok = FALSE;
	struct hfe_h264_nal nal;
	struct hfe_h264_sps sps;
	pos = 0;
	while (hfe_h264_next_nal(map.data, map.size, &pos, &nal)) {
		if (nal.type == HFE_H264_NAL_IDR)
			idr = TRUE;
		else if (nal.type == HFE_H264_NAL_SPS && !have_sps) {
			have_sps = TRUE;
			sps_ok = hfe_h264_parse_sps_nal(&nal, &sps);
		}
	}
	gst_buffer_unmap(buf, &map);
	gboolean key = idr || (msg->u.frame_resp.is_keyframe && have_sps);

	if (have_sps && !sps_ok) {
		if (!self->width) {
			gst_buffer_unref(buf);
			GST_ELEMENT_ERROR(self, STREAM, DECODE,
					  ("Host at %s sent an H.264 SPS that could not be parsed",
					   self->addr_used),
					  (NULL));
			return GST_FLOW_ERROR;
		}
		GST_WARNING_OBJECT(self, "unparsable SPS; keeping %ux%u", self->width,
				   self->height);
	} else if (sps_ok && !update_caps(self, sps.width, sps.height)) {
		gst_buffer_unref(buf);
		return GST_FLOW_NOT_NEGOTIATED;
	}
	if (self->wait_keyframe || !self->width) {
		if (!key || !self->width) {
			GST_DEBUG_OBJECT(self, "dropping a %s while waiting for an IDR",
					 key ? "keyframe without SPS" : "delta unit");
			gst_buffer_unref(buf);
			return GST_FLOW_OK;
		}
		self->wait_keyframe = FALSE;
	}

	GST_BUFFER_PTS(buf) = GST_BUFFER_DTS(buf) = arrival_time(self);
	GST_BUFFER_DURATION(buf) = GST_CLOCK_TIME_NONE;
	if (key)
		GST_BUFFER_FLAG_UNSET(buf, GST_BUFFER_FLAG_DELTA_UNIT);
	else
		GST_BUFFER_FLAG_SET(buf, GST_BUFFER_FLAG_DELTA_UNIT);
	*out = buf;
	return GST_FLOW_OK;
}

static GstFlowReturn host_gone(GstHfeScanoutSrc *self, const struct hfe_err *err)
{
	GST_ELEMENT_ERROR(self, RESOURCE, READ,
			  ("Lost the connection to the host at %s (scanout %u)", self->addr_used,
			   self->scanout_used),
			  ("%s", err->msg));
	return GST_FLOW_ERROR;
}

static GstFlowReturn send_simple(GstHfeScanoutSrc *self, guint8 type)
{
	struct hfe_msg m = { .hdr = { .type = type, .session_id = (guint16)self->scanout_used } };
	struct hfe_err err;

	if (hfe_client_send_msg(self->client, &m, self->timeout_used, &err) < 0)
		return host_gone(self, &err);
	return GST_FLOW_OK;
}

/* The host said something went wrong; a fatal one is followed by a close. */
static void host_error(GstHfeScanoutSrc *self, const struct hfe_msg *msg)
{
	GST_ELEMENT_WARNING(self, RESOURCE, READ,
			    ("Host at %s reported an error: %s", self->addr_used,
			     msg->u.error.message),
			    ("%s (%d)", hfe_error_name(msg->u.error.code), msg->u.error.code));
}

/* Throw away everything already received (it queued while we were not
 * playing); *frames says how many access units that was. Returns an error
 * only if the host is gone. */
static GstFlowReturn discard_pending(GstHfeScanoutSrc *self, guint *frames)
{
	struct hfe_msg msg;
	struct hfe_err err;
	int r;

	*frames = 0;
	while ((r = hfe_client_recv(self->client, &msg, 0, &err)) == 1) {
		if (msg.hdr.type == HFE_MSG_ERROR)
			host_error(self, &msg);
		else if (msg.hdr.type == HFE_MSG_FRAME_RESPONSE)
			(*frames)++;
	}
	if (r < 0)
		return host_gone(self, &err);
	if (*frames)
		GST_DEBUG_OBJECT(self, "discarded %u queued access units", *frames);
	return GST_FLOW_OK;
}

static GstFlowReturn gst_hfe_scanout_src_create(GstPushSrc *psrc, GstBuffer **out)
{
	GstHfeScanoutSrc *self = GST_HFE_SCANOUT_SRC(psrc);
	struct hfe_msg msg;
	struct hfe_err err;
	GstFlowReturn ret;

	*out = NULL;
	for (;;) {
		g_mutex_lock(&self->lock);
		if (self->flushing) {
			g_mutex_unlock(&self->lock);
			return GST_FLOW_FLUSHING;
		}
		gboolean resync = self->resync, kf = self->kf_request;
		self->resync = self->kf_request = FALSE;
		g_mutex_unlock(&self->lock);

		if (resync) {
			guint dropped;
			ret = discard_pending(self, &dropped);
			if (ret != GST_FLOW_OK)
				return ret;
			self->wait_keyframe = TRUE;
			/* Right after SUBSCRIBE the host's IDR may still be on its
			 * way; once anything was dropped it was among them. */
			if (dropped || !self->subscribe_idr)
				kf = TRUE;
			self->subscribe_idr = FALSE;
		}
		if (kf) {
			GST_DEBUG_OBJECT(self, "asking the host for an IDR");
			ret = send_simple(self, HFE_MSG_KEYFRAME_REQ);
			if (ret != GST_FLOW_OK)
				return ret;
		}

		int r = hfe_client_recv(self->client, &msg, 0, &err);
		if (r < 0)
			return host_gone(self, &err);
		if (r == 1) {
			self->ping_sent = FALSE; /* the host is alive */
			if (msg.hdr.type == HFE_MSG_ERROR) {
				host_error(self, &msg);
				continue;
			}
			if (msg.hdr.type != HFE_MSG_FRAME_RESPONSE ||
			    msg.hdr.session_id != self->scanout_used)
				continue; /* PONG, replies to CONFIG_REQ... */
			ret = frame_to_buffer(self, &msg, out);
			if (ret != GST_FLOW_OK)
				return ret;
			if (!*out)
				continue; /* waiting for an IDR */
			g_mutex_lock(&self->lock);
			gboolean playing = self->playing;
			g_mutex_unlock(&self->lock);
			if (!playing) {
				GST_DEBUG_OBJECT(self, "paused: dropping an access unit");
				gst_clear_buffer(out);
				continue;
			}
			if (!GST_BUFFER_FLAG_IS_SET(*out, GST_BUFFER_FLAG_DELTA_UNIT)) {
				/* Tell downstream the key unit it asked for is here. */
				g_mutex_lock(&self->lock);
				GstEvent *ev = self->fku_reply;
				self->fku_reply = NULL;
				g_mutex_unlock(&self->lock);
				if (ev && self->output_started) {
					GstClockTime rt, ts, st;
					gboolean all;
					guint count;
					gst_video_event_parse_downstream_force_key_unit(
						ev, &ts, &st, &rt, &all, &count);
					gst_event_unref(ev);
					/* live, segment from 0: running time = stream time */
					ts = GST_BUFFER_PTS(*out);
					ev = gst_video_event_new_downstream_force_key_unit(
						ts, ts, ts, all, count);
					gst_pad_push_event(GST_BASE_SRC_PAD(self), ev);
				} else {
					gst_clear_event(&ev);
				}
			}
			self->output_started = TRUE;
			return GST_FLOW_OK;
		}

		/* Nothing buffered: wait for the host, a wake-up or unlock(); the
		 * next round looks at the state again. */
		GstHfeWaitResult wr =
			gst_hfe_wait_fd(self->wait, hfe_client_fd(self->client), self->timeout_used);
		if (wr == GST_HFE_WAIT_ERROR) {
			GST_ELEMENT_ERROR(self, RESOURCE, READ, ("Waiting for the host failed"),
					  ("poll: %s", g_strerror(errno)));
			return GST_FLOW_ERROR;
		}
		if (wr == GST_HFE_WAIT_TIMEOUT) {
			/* A static screen sends nothing; a PING tells a dead host
			 * from a quiet one. */
			if (self->ping_sent) {
				GST_ELEMENT_ERROR(self, RESOURCE, READ,
						  ("Host at %s stopped answering (scanout %u)",
						   self->addr_used, self->scanout_used),
						  ("no reply to PING within %d ms",
						   self->timeout_used));
				return GST_FLOW_ERROR;
			}
			ret = send_simple(self, HFE_MSG_PING);
			if (ret != GST_FLOW_OK)
				return ret;
			self->ping_sent = TRUE;
		}
	}
}

/* ---- class ---- */

static void gst_hfe_scanout_src_finalize(GObject *object)
{
	GstHfeScanoutSrc *self = GST_HFE_SCANOUT_SRC(object);

	g_free(self->address);
	g_free(self->addr_used);
	gst_clear_event(&self->fku_reply);
	gst_hfe_wait_free(self->wait);
	g_mutex_clear(&self->lock);
	G_OBJECT_CLASS(parent_class)->finalize(object);
}

static void gst_hfe_scanout_src_init(GstHfeScanoutSrc *self)
{
	self->scanout = DEFAULT_SCANOUT;
	self->bitrate = DEFAULT_BITRATE;
	self->timeout = DEFAULT_TIMEOUT;
	self->wait = gst_hfe_wait_new();
	g_mutex_init(&self->lock);
	gst_base_src_set_live(GST_BASE_SRC(self), TRUE);
	gst_base_src_set_format(GST_BASE_SRC(self), GST_FORMAT_TIME);
}

static void gst_hfe_scanout_src_class_init(GstHfeScanoutSrcClass *klass)
{
	GObjectClass *gobject_class = G_OBJECT_CLASS(klass);
	GstElementClass *element_class = GST_ELEMENT_CLASS(klass);
	GstBaseSrcClass *basesrc_class = GST_BASE_SRC_CLASS(klass);
	GstPushSrcClass *pushsrc_class = GST_PUSH_SRC_CLASS(klass);

	GST_DEBUG_CATEGORY_INIT(gst_hfe_scanout_src_debug, "hfescanoutsrc", 0,
				"H.264 of a host scanout over HXFR");

	gobject_class->set_property = gst_hfe_scanout_src_set_property;
	gobject_class->get_property = gst_hfe_scanout_src_get_property;
	gobject_class->finalize = gst_hfe_scanout_src_finalize;

	g_object_class_install_property(
		gobject_class, PROP_ADDRESS,
		g_param_spec_string(
			"address", "Address",
			"Host to subscribe at: unix:PATH, tcp:HOST:PORT, vsock:CID:PORT or "
			"serial:/dev/virtio-ports/NAME. Unset (NULL): the first "
			"/dev/virtio-ports/org.helix.hfe* port if present, else vsock:2:5000; "
			"reading the property then returns the address that would be used",
			NULL,
			G_PARAM_READWRITE | G_PARAM_STATIC_STRINGS | GST_PARAM_MUTABLE_READY));
	g_object_class_install_property(
		gobject_class, PROP_SCANOUT,
		g_param_spec_uint("scanout", "Scanout",
				  "Host scanout (display) to stream; the element fails with an "
				  "error if the host has none of that number",
				  0, G_MAXUINT16, DEFAULT_SCANOUT,
				  G_PARAM_READWRITE | G_PARAM_STATIC_STRINGS |
					  GST_PARAM_MUTABLE_READY));
	g_object_class_install_property(
		gobject_class, PROP_BITRATE,
		g_param_spec_uint("bitrate", "Bitrate",
				  "Bitrate in kbit/s asked of the host before subscribing (0 = "
				  "the host's setting). The scanout stream is shared by all its "
				  "subscribers, so the host may apply it to that stream or ignore "
				  "it",
				  0, 1000000, DEFAULT_BITRATE,
				  G_PARAM_READWRITE | G_PARAM_STATIC_STRINGS |
					  GST_PARAM_MUTABLE_READY));
	g_object_class_install_property(
		gobject_class, PROP_TIMEOUT,
		g_param_spec_uint("timeout", "Timeout",
				  "Milliseconds to wait for the host to connect, accept data and "
				  "answer; also the idle time after which a PING checks that a "
				  "quiet host is still there (0 = wait forever, no check)",
				  0, G_MAXINT, DEFAULT_TIMEOUT,
				  G_PARAM_READWRITE | G_PARAM_STATIC_STRINGS |
					  GST_PARAM_MUTABLE_READY));

	gst_element_class_add_static_pad_template(element_class, &src_template);
	gst_element_class_set_static_metadata(
		element_class, "HFE host scanout source", "Source/Video",
		"H.264 of a host scanout (display), encoded on the host by helix-frame-export "
		"and pushed over vsock, virtio-serial, TCP or a unix socket",
		"helix-frame-export developers");
	element_class->send_event = gst_hfe_scanout_src_send_event;
	element_class->change_state = gst_hfe_scanout_src_change_state;

	basesrc_class->start = gst_hfe_scanout_src_start;
	basesrc_class->stop = gst_hfe_scanout_src_stop;
	basesrc_class->unlock = gst_hfe_scanout_src_unlock;
	basesrc_class->unlock_stop = gst_hfe_scanout_src_unlock_stop;
	basesrc_class->event = gst_hfe_scanout_src_event;
	basesrc_class->negotiate = gst_hfe_scanout_src_negotiate;
	pushsrc_class->create = gst_hfe_scanout_src_create;
}
