/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* Scanout hub: subscriptions and fan-out of access units. See hfe/scanout.h. */
#include "hfe/scanout.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "hfe/log.h"

struct scanout {
	uint32_t id;
	struct hfe_stream *stream;
	char connector[HFE_CONNECTOR_LEN];
	struct hfe_conn *controller; /* the live peer that last enabled it */
	bool plugged;                /* enabled through ENABLE_SCANOUT */
};

struct subscriber {
	struct hfe_conn *conn;
	uint32_t scanout_id;
	bool need_idr;    /* skipped an access unit: wait for the next IDR */
	uint32_t bitrate; /* asked for by CONFIG_REQ; 0 = none */
	bool cursor;      /* takes the cursor as CURSOR_* messages (HFE_FLAG_CURSOR) */
	uint64_t shape_sent, pos_sent; /* the cursor serials it has */
};

struct hfe_hub {
	size_t max_queue;
	struct hfe_hub_outputs outputs;
	bool has_outputs;
	struct scanout scanouts[HFE_MAX_SCANOUTS];
	unsigned n_scanouts;
	struct subscriber *subs;
	unsigned n_subs, cap_subs;
	uint8_t *cursor_image; /* room for the largest cursor image, when needed */
};

struct hfe_hub *hfe_hub_new(size_t max_queue)
{
	struct hfe_hub *hub = calloc(1, sizeof(*hub));
	if (hub)
		hub->max_queue = max_queue;
	return hub;
}

void hfe_hub_free(struct hfe_hub *hub)
{
	if (!hub)
		return;
	free(hub->subs);
	free(hub->cursor_image);
	free(hub);
}

static struct scanout *find_scanout(struct hfe_hub *hub, uint32_t id)
{
	for (unsigned i = 0; i < hub->n_scanouts; i++)
		if (hub->scanouts[i].id == id)
			return &hub->scanouts[i];
	return NULL;
}

int hfe_hub_add_scanout(struct hfe_hub *hub, uint32_t id, struct hfe_stream *stream,
			const char *connector)
{
	if (hub->n_scanouts == HFE_MAX_SCANOUTS || find_scanout(hub, id))
		return -1;
	struct scanout *so = &hub->scanouts[hub->n_scanouts++];
	so->id = id;
	so->stream = stream;
	snprintf(so->connector, sizeof(so->connector), "%s", connector ? connector : "");
	return 0;
}

struct hfe_stream *hfe_hub_scanout(struct hfe_hub *hub, uint32_t id)
{
	struct scanout *so = find_scanout(hub, id);
	return so ? so->stream : NULL;
}

static struct subscriber *find_sub(struct hfe_hub *hub, struct hfe_conn *conn, uint32_t id)
{
	for (unsigned i = 0; i < hub->n_subs; i++)
		if (hub->subs[i].conn == conn && hub->subs[i].scanout_id == id)
			return &hub->subs[i];
	return NULL;
}

/* Streams encode only while someone watches. */
static void update_consumers(struct hfe_hub *hub, uint32_t id)
{
	struct scanout *so = find_scanout(hub, id);
	if (so)
		hfe_stream_set_consumers(so->stream, hfe_hub_subscribers(hub, id));
}

/* One stream serves both kinds of subscriber: the cursor is drawn into the
 * picture unless every subscriber takes it as its own channel. */
static void update_composite(struct hfe_hub *hub, struct scanout *so)
{
	bool all_channel = false;
	for (unsigned i = 0; i < hub->n_subs; i++) {
		if (hub->subs[i].scanout_id != so->id)
			continue;
		if (!hub->subs[i].cursor) {
			all_channel = false;
			break;
		}
		all_channel = true;
	}
	hfe_stream_set_cursor_composite(so->stream, !all_channel);
}

/* A stream encodes at the highest bitrate its subscribers asked for. */
static void update_bitrate(struct hfe_hub *hub, struct scanout *so)
{
	uint32_t max = 0;
	for (unsigned i = 0; i < hub->n_subs; i++)
		if (hub->subs[i].scanout_id == so->id && hub->subs[i].bitrate > max)
			max = hub->subs[i].bitrate;
	hfe_stream_set_bitrate(so->stream, max);
}

static void remove_sub_at(struct hfe_hub *hub, unsigned i)
{
	uint32_t id = hub->subs[i].scanout_id;
	bool had_rate = hub->subs[i].bitrate != 0;
	hub->subs[i] = hub->subs[--hub->n_subs];
	update_consumers(hub, id);
	struct scanout *so = find_scanout(hub, id);
	if (so && had_rate)
		update_bitrate(hub, so);
	if (so)
		update_composite(hub, so);
}

static int add_sub(struct hfe_hub *hub, struct hfe_conn *conn, struct scanout *so, bool cursor)
{
	uint32_t id = so->id;
	struct subscriber *old = find_sub(hub, conn, id);
	if (old) { /* subscribed again: the cursor channel as asked now */
		old->cursor = cursor;
		old->shape_sent = old->pos_sent = 0;
		update_composite(hub, so);
		return 0;
	}
	if (hub->n_subs == hub->cap_subs) {
		unsigned cap = hub->cap_subs ? hub->cap_subs * 2 : 8;
		struct subscriber *n = realloc(hub->subs, cap * sizeof(*n));
		if (!n)
			return -1;
		hub->subs = n;
		hub->cap_subs = cap;
	}
	/* need_idr: the stream's next IDR (requested below) is where it joins. */
	hub->subs[hub->n_subs++] = (struct subscriber){ conn, id, true, 0, cursor, 0, 0 };
	update_composite(hub, so);
	update_consumers(hub, id);
	return 0;
}

/* ---- the cursor channel ---- */

/* What a cursor subscriber has not had yet, if its queue has room: the
 * latest image and the latest position (older ones are never sent). */
static void send_cursor(struct hfe_hub *hub, struct scanout *so, struct subscriber *sub,
			const struct hfe_stream_cursor *cur)
{
	if (hfe_conn_tx_pending(sub->conn) > hub->max_queue)
		return; /* behind: it gets the latest once it has caught up */
	if (cur->shape_serial && cur->shape_serial != sub->shape_sent) {
		struct hfe_stream_cursor now;
		if (!hub->cursor_image &&
		    !(hub->cursor_image = malloc(4u * HFE_CURSOR_MAX * HFE_CURSOR_MAX)))
			return;
		hfe_stream_get_cursor(so->stream, &now, hub->cursor_image);
		struct hfe_msg m = { .hdr = { .type = HFE_MSG_CURSOR_SHAPE,
					      .session_id = (uint16_t)so->id } };
		m.u.cursor_shape = now.shape;
		if (hfe_conn_send(sub->conn, &m, hub->cursor_image,
				  (size_t)now.shape.width * now.shape.height * 4) == 0)
			sub->shape_sent = now.shape_serial;
	}
	if (cur->pos_serial && cur->pos_serial != sub->pos_sent) {
		struct hfe_msg m = { .hdr = { .type = HFE_MSG_CURSOR_POSITION,
					      .session_id = (uint16_t)so->id } };
		m.u.cursor_pos = cur->pos;
		if (hfe_conn_send(sub->conn, &m, NULL, 0) == 0)
			sub->pos_sent = cur->pos_serial;
	}
}

static void dispatch_cursor(struct hfe_hub *hub, struct scanout *so)
{
	struct hfe_stream_cursor cur;
	bool got = false;
	for (unsigned i = 0; i < hub->n_subs; i++) {
		struct subscriber *sub = &hub->subs[i];
		if (sub->scanout_id != so->id || !sub->cursor)
			continue;
		if (!got)
			hfe_stream_get_cursor(so->stream, &cur, NULL);
		got = true;
		send_cursor(hub, so, sub, &cur);
	}
}

void hfe_hub_set_outputs(struct hfe_hub *hub, const struct hfe_hub_outputs *outputs)
{
	hub->has_outputs = outputs != NULL;
	if (outputs)
		hub->outputs = *outputs;
}

/* A refused ENABLE/DISABLE: v2 peers learn why (ERROR, not fatal), every
 * peer gets its SCANOUT_RESP with success = 0. */
static void refuse(struct hfe_conn *conn, struct hfe_msg *out, const struct hfe_err *why)
{
	hfe_debug("scanout %u: %s", out->u.scanout_resp.scanout_id, why->msg);
	if (hfe_conn_version(conn) >= HFE_PROTO_V2)
		hfe_conn_send_error(conn, out->hdr.session_id, why->code, "%s", why->msg);
	out->u.scanout_resp.success = 0;
}

/*
 * The smallest preferred mode a guest takes from QEMU's virtio-gpu. QEMU
 * (7.2, hw/display/edid-generate.c) makes the EDID's detailed timing up from
 * the size, with vsync = height * 5 / 1000 lines, and Linux ignores a timing
 * whose sync pulse is 0 or that is narrower or shorter than 64: below 200
 * lines the output has no preferred mode and the guest's fbdev takes the
 * largest mode the EDID lists, 5120x2160 (a 44 MB framebuffer in QEMU;
 * bench/README.md, "Chaos soak").
 */
#define OUTPUT_MIN_WIDTH 64
#define OUTPUT_MIN_HEIGHT 200

/* ENABLE_SCANOUT: plug output id in (or give it a new preferred mode). */
static int enable_output(struct hfe_hub *hub, struct hfe_conn *conn, struct scanout *so,
			 const struct hfe_enable_scanout *e, struct hfe_err *err)
{
	const struct hfe_hub_outputs *o = &hub->outputs;
	uint32_t refresh = e->refresh_rate ? e->refresh_rate : 60;
	uint32_t min_w = hub->has_outputs ? OUTPUT_MIN_WIDTH : HFE_MIN_DIMENSION;
	uint32_t min_h = hub->has_outputs ? OUTPUT_MIN_HEIGHT : HFE_MIN_DIMENSION;
	uint32_t max_w = hub->has_outputs ? o->max_width : HFE_MAX_DIMENSION;
	uint32_t max_h = hub->has_outputs ? o->max_height : HFE_MAX_DIMENSION;

	/* The wire layer passes any values: this is where a request is judged. */
	if (hub->has_outputs && e->scanout_id >= o->max_outputs) {
		hfe_err_set(err, HFE_ERR_RESOURCE_NOT_FOUND, "ENABLE_SCANOUT: no output %u (%u outputs)",
			    e->scanout_id, o->max_outputs);
		return -1;
	}
	if (e->width < min_w || e->height < min_h || e->width > max_w || e->height > max_h) {
		hfe_err_set(err, HFE_ERR_TOO_LARGE, "ENABLE_SCANOUT: %ux%u outside %ux%u..%ux%u",
			    e->width, e->height, min_w, min_h, max_w, max_h);
		return -1;
	}
	if (refresh > HFE_MAX_REFRESH) {
		hfe_err_set(err, HFE_ERR_INVALID_MSG, "ENABLE_SCANOUT: refresh rate %u (max %u)",
			    refresh, HFE_MAX_REFRESH);
		return -1;
	}
	if (!hub->has_outputs)
		return 0; /* a fixed scanout: nothing to plug */
	if (so->controller && so->controller != conn) {
		hfe_err_set(err, HFE_ERR_BUSY, "ENABLE_SCANOUT: output %u is controlled by another "
			    "connection", so->id);
		return -1;
	}
	if (o->enable(o->opaque, so->id, e->width, e->height, refresh, err) < 0)
		return -1;
	so->controller = conn;
	so->plugged = true;
	hfe_info("output %u (%s) enabled at %ux%u@%u", so->id, so->connector, e->width, e->height,
		 refresh);
	return 0;
}

/* DISABLE_SCANOUT: the peer's subscription ends; the output is unplugged
 * when this peer controls it or its controller has gone. */
static int disable_output(struct hfe_hub *hub, struct hfe_conn *conn, struct scanout *so,
			  struct hfe_err *err)
{
	for (unsigned i = 0; i < hub->n_subs; i++) {
		if (hub->subs[i].conn == conn && hub->subs[i].scanout_id == so->id) {
			remove_sub_at(hub, i);
			break;
		}
	}
	if (!hub->has_outputs || !so->plugged ||
	    (so->controller && so->controller != conn))
		return 0;
	if (hub->outputs.disable(hub->outputs.opaque, so->id, err) < 0)
		return -1;
	so->controller = NULL;
	so->plugged = false;
	hfe_info("output %u (%s) disabled", so->id, so->connector);
	return 0;
}

int hfe_hub_handle(struct hfe_hub *hub, struct hfe_conn *conn, const struct hfe_msg *msg)
{
	struct hfe_msg out = { .hdr = { .session_id = msg->hdr.session_id } };
	struct hfe_err err = { 0 };
	struct scanout *so;

	switch (msg->hdr.type) {
	case HFE_MSG_SUBSCRIBE:
		so = find_scanout(hub, msg->u.scanout_id);
		/* Ask for the IDR before add_sub wakes an idle stream, so that
		 * the first encode is that IDR and not one more after it. */
		if (so)
			hfe_stream_request_keyframe(so->stream);
		out.hdr.type = HFE_MSG_SUBSCRIBE_RESP;
		out.u.subscribe_resp.scanout_id = msg->u.scanout_id;
		out.u.subscribe_resp.success =
			so && add_sub(hub, conn, so, msg->hdr.flags & HFE_FLAG_CURSOR) == 0;
		hfe_conn_send(conn, &out, NULL, 0);
		if (out.u.subscribe_resp.success && (msg->hdr.flags & HFE_FLAG_CURSOR))
			dispatch_cursor(hub, so); /* the cursor as it is, at once */
		return 1;
	case HFE_MSG_ENABLE_SCANOUT:
	case HFE_MSG_DISABLE_SCANOUT: {
		bool enable = msg->hdr.type == HFE_MSG_ENABLE_SCANOUT;
		uint32_t id = enable ? msg->u.enable_scanout.scanout_id : msg->u.scanout_id;
		so = find_scanout(hub, id);
		out.hdr.type = HFE_MSG_SCANOUT_RESP;
		out.u.scanout_resp.scanout_id = id;
		out.u.scanout_resp.success = 1;
		if (!so) {
			hfe_err_set(&err, HFE_ERR_RESOURCE_NOT_FOUND, "%s: no scanout %u",
				    enable ? "ENABLE_SCANOUT" : "DISABLE_SCANOUT", id);
			refuse(conn, &out, &err);
		} else if ((enable ? enable_output(hub, conn, so, &msg->u.enable_scanout, &err)
				   : disable_output(hub, conn, so, &err)) < 0) {
			refuse(conn, &out, &err);
		}
		if (so)
			snprintf(out.u.scanout_resp.connector, HFE_CONNECTOR_LEN, "%s",
				 so->connector);
		hfe_conn_send(conn, &out, NULL, 0);
		return 1;
	}
	default:
		return 0;
	}
}

int hfe_hub_config(struct hfe_hub *hub, struct hfe_conn *conn, const struct hfe_msg *msg)
{
	uint32_t id = msg->hdr.session_id;
	struct subscriber *sub = find_sub(hub, conn, id);
	struct scanout *so = find_scanout(hub, id);
	if (!sub || !so)
		return 0;
	if (msg->u.config_req.bitrate && msg->u.config_req.bitrate != sub->bitrate) {
		sub->bitrate = msg->u.config_req.bitrate;
		update_bitrate(hub, so);
	}
	if (hfe_conn_version(conn) >= HFE_PROTO_V2) {
		struct hfe_msg out = { .hdr = { .type = HFE_MSG_CONFIG_RESP,
						.session_id = msg->hdr.session_id } };
		hfe_stream_get_config(so->stream, &out.u.config_resp);
		hfe_conn_send(conn, &out, NULL, 0);
	}
	return 1;
}

unsigned hfe_hub_keyframe(struct hfe_hub *hub, struct hfe_conn *conn)
{
	unsigned n = 0;
	for (unsigned i = 0; i < hub->n_subs; i++) {
		if (hub->subs[i].conn != conn)
			continue;
		struct scanout *so = find_scanout(hub, hub->subs[i].scanout_id);
		if (so) {
			hfe_stream_request_keyframe(so->stream);
			n++;
		}
	}
	return n;
}

void hfe_hub_drop_conn(struct hfe_hub *hub, struct hfe_conn *conn)
{
	for (unsigned i = 0; i < hub->n_scanouts; i++)
		if (hub->scanouts[i].controller == conn)
			hub->scanouts[i].controller = NULL;
	for (unsigned i = 0; i < hub->n_subs;) {
		if (hub->subs[i].conn == conn)
			remove_sub_at(hub, i);
		else
			i++;
	}
}

bool hfe_hub_subscribed(struct hfe_hub *hub, struct hfe_conn *conn, uint32_t id)
{
	return find_sub(hub, conn, id) != NULL;
}

unsigned hfe_hub_subscribers(struct hfe_hub *hub, uint32_t id)
{
	unsigned n = 0;
	for (unsigned i = 0; i < hub->n_subs; i++)
		n += hub->subs[i].scanout_id == id;
	return n;
}

static void send_au(struct hfe_hub *hub, struct scanout *so, struct hfe_stream_au *au)
{
	bool want_idr = false;

	for (unsigned i = 0; i < hub->n_subs; i++) {
		struct subscriber *sub = &hub->subs[i];
		if (sub->scanout_id != so->id)
			continue;
		if (sub->need_idr && !au->keyframe)
			continue;
		if (hfe_conn_tx_pending(sub->conn) > hub->max_queue) {
			/* Too far behind: skip, and rejoin at an IDR. One request per
			 * fall-behind, renewed only when an IDR passes it by. */
			if (!sub->need_idr || au->keyframe) {
				hfe_debug("scanout %u: subscriber behind, skipping to the next IDR",
					  so->id);
				want_idr = true;
			}
			sub->need_idr = true;
			continue;
		}
		struct hfe_msg msg = { .hdr = { .type = HFE_MSG_FRAME_RESPONSE,
						.session_id = (uint16_t)so->id } };
		msg.u.frame_resp.pts = au->pts_ns;
		msg.u.frame_resp.dts = au->pts_ns;
		msg.u.frame_resp.is_keyframe = au->keyframe;
		msg.u.frame_resp.nal_count = 1;
		hfe_stream_au_ref(au);
		if (hfe_conn_send_owned(sub->conn, &msg, au->data, au->size, hfe_stream_au_release,
					au) == 0)
			sub->need_idr = false;
	}
	if (want_idr)
		hfe_stream_request_keyframe(so->stream);
}

unsigned hfe_hub_dispatch(struct hfe_hub *hub)
{
	unsigned n = 0;
	for (unsigned i = 0; i < hub->n_scanouts; i++) {
		struct scanout *so = &hub->scanouts[i];
		struct hfe_stream_au *au;
		dispatch_cursor(hub, so);
		while (hfe_stream_poll(so->stream, &au) == 1) {
			send_au(hub, so, au);
			hfe_stream_au_unref(au);
			n++;
		}
	}
	return n;
}
