/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * HXFR message layouts, validation and building. See docs/protocol.md.
 *
 * The packed structs below exist only to pin the wire layout at compile time
 * (static asserts); parsing and building go through explicit little-endian
 * loads and stores so that host endianness and alignment never matter.
 */
#include "hfe/wire.h"

#include <assert.h>
#include <stdarg.h>
#include <stdio.h>
#include <string.h>

#include "bytes.h"

/* ---- wire layouts, pinned ---- */

#define PACKED __attribute__((packed))

struct PACKED wire_header {
	uint32_t magic;
	uint8_t msg_type;
	uint8_t flags;
	uint16_t session_id;
	uint32_t payload_size;
};
struct PACKED wire_frame_request {
	uint32_t resource_id, width, height, format, stride;
	int64_t pts, duration;
	uint8_t force_keyframe;
	uint8_t reserved[7];
};
struct PACKED wire_frame_response {
	int64_t pts, dts;
	uint8_t is_keyframe;
	uint8_t reserved[3];
	uint32_t nal_count;
};
struct PACKED wire_config_req {
	uint32_t width, height, bitrate, fps_num, fps_den;
	uint8_t profile, level, realtime;
	uint8_t reserved[5];
};
struct PACKED wire_config_resp {
	uint32_t width, height, bitrate, fps_num, fps_den;
	uint8_t profile, level, realtime, reserved;
	char encoder[HFE_NAME_LEN];
};
struct PACKED wire_enable_scanout {
	uint32_t scanout_id, width, height, refresh_rate;
};
struct PACKED wire_scanout_resp {
	uint32_t scanout_id, success;
	char connector[HFE_CONNECTOR_LEN];
};
struct PACKED wire_subscribe_resp {
	uint32_t scanout_id, success;
};
struct PACKED wire_hello {
	uint16_t version_min, version_max;
	uint32_t flags;
	char client_name[HFE_NAME_LEN];
};
struct PACKED wire_hello_resp {
	uint16_t version, reserved;
	uint32_t codecs, sources, max_width, max_height, max_payload, max_inflight;
	uint32_t format_count;
	uint32_t formats[HFE_HELLO_MAX_FORMATS];
	char server_name[HFE_NAME_LEN];
};
struct PACKED wire_stats {
	uint64_t frames_received, frames_encoded, frames_dropped, keyframes;
	uint64_t bytes_received, bytes_sent;
	uint32_t encode_us_avg, encode_us_max, inflight, reserved;
};
struct PACKED wire_error {
	int32_t code;
	char message[HFE_ERROR_MSG_LEN];
};

static_assert(sizeof(struct wire_header) == HFE_HEADER_SIZE, "header layout");
static_assert(sizeof(struct wire_frame_request) == HFE_FRAME_REQUEST_SIZE, "frame request");
static_assert(sizeof(struct wire_frame_response) == HFE_FRAME_RESPONSE_SIZE, "frame response");
static_assert(sizeof(struct wire_config_req) == HFE_CONFIG_REQ_SIZE, "config req");
static_assert(sizeof(struct wire_config_resp) == HFE_CONFIG_RESP_SIZE, "config resp");
static_assert(sizeof(struct wire_enable_scanout) == HFE_ENABLE_SCANOUT_SIZE, "enable scanout");
static_assert(sizeof(struct wire_scanout_resp) == HFE_SCANOUT_RESP_SIZE, "scanout resp");
static_assert(sizeof(struct wire_subscribe_resp) == HFE_SUBSCRIBE_RESP_SIZE, "subscribe resp");
static_assert(sizeof(struct wire_hello) == HFE_HELLO_SIZE, "hello");
static_assert(sizeof(struct wire_hello_resp) == HFE_HELLO_RESP_SIZE, "hello resp");
static_assert(sizeof(struct wire_stats) == HFE_STATS_RESP_SIZE, "stats");
static_assert(sizeof(struct wire_error) == HFE_ERROR_SIZE, "error");
static_assert(HFE_MSG_MAX_PREFIX >= HFE_HEADER_SIZE + HFE_FRAME_RESPONSE_SIZE + 4, "prefix");

/* ---- message table ---- */

enum size_rule { SIZE_EXACT, SIZE_AT_LEAST };

struct msg_info {
	const char *name;
	uint32_t body; /* fixed body size */
	enum size_rule rule;
	enum hfe_role receiver; /* the side that may receive it */
};

static const struct msg_info *msg_info(uint8_t type)
{
	static const struct msg_info frame_req = { "FRAME_REQUEST", HFE_FRAME_REQUEST_SIZE,
						   SIZE_AT_LEAST, HFE_ROLE_HOST };
	static const struct msg_info frame_resp = { "FRAME_RESPONSE", HFE_FRAME_RESPONSE_SIZE,
						    SIZE_AT_LEAST, HFE_ROLE_CLIENT };
	static const struct msg_info keyframe = { "KEYFRAME_REQ", 0, SIZE_EXACT, HFE_ROLE_HOST };
	static const struct msg_info config_req = { "CONFIG_REQ", HFE_CONFIG_REQ_SIZE, SIZE_EXACT,
						    HFE_ROLE_HOST };
	static const struct msg_info config_resp = { "CONFIG_RESP", HFE_CONFIG_RESP_SIZE,
						     SIZE_EXACT, HFE_ROLE_CLIENT };
	static const struct msg_info ping = { "PING", 0, SIZE_EXACT, HFE_ROLE_HOST };
	static const struct msg_info pong = { "PONG", 0, SIZE_EXACT, HFE_ROLE_CLIENT };
	static const struct msg_info enable = { "ENABLE_SCANOUT", HFE_ENABLE_SCANOUT_SIZE,
						SIZE_EXACT, HFE_ROLE_HOST };
	static const struct msg_info disable = { "DISABLE_SCANOUT", HFE_DISABLE_SCANOUT_SIZE,
						 SIZE_EXACT, HFE_ROLE_HOST };
	static const struct msg_info scanout_resp = { "SCANOUT_RESP", HFE_SCANOUT_RESP_SIZE,
						      SIZE_EXACT, HFE_ROLE_CLIENT };
	static const struct msg_info subscribe = { "SUBSCRIBE", HFE_SUBSCRIBE_SIZE, SIZE_EXACT,
						   HFE_ROLE_HOST };
	static const struct msg_info subscribe_resp = { "SUBSCRIBE_RESP", HFE_SUBSCRIBE_RESP_SIZE,
							SIZE_EXACT, HFE_ROLE_CLIENT };
	static const struct msg_info hello = { "HELLO", HFE_HELLO_SIZE, SIZE_EXACT, HFE_ROLE_HOST };
	static const struct msg_info hello_resp = { "HELLO_RESP", HFE_HELLO_RESP_SIZE, SIZE_EXACT,
						    HFE_ROLE_CLIENT };
	static const struct msg_info stats_req = { "STATS_REQ", 0, SIZE_EXACT, HFE_ROLE_HOST };
	static const struct msg_info stats_resp = { "STATS_RESP", HFE_STATS_RESP_SIZE, SIZE_EXACT,
						    HFE_ROLE_CLIENT };
	static const struct msg_info error = { "ERROR", HFE_ERROR_SIZE, SIZE_EXACT,
					       HFE_ROLE_CLIENT };

	switch (type) {
	case HFE_MSG_FRAME_REQUEST: return &frame_req;
	case HFE_MSG_FRAME_RESPONSE: return &frame_resp;
	case HFE_MSG_KEYFRAME_REQ: return &keyframe;
	case HFE_MSG_CONFIG_REQ: return &config_req;
	case HFE_MSG_CONFIG_RESP: return &config_resp;
	case HFE_MSG_PING: return &ping;
	case HFE_MSG_PONG: return &pong;
	case HFE_MSG_ENABLE_SCANOUT: return &enable;
	case HFE_MSG_DISABLE_SCANOUT: return &disable;
	case HFE_MSG_SCANOUT_RESP: return &scanout_resp;
	case HFE_MSG_SUBSCRIBE: return &subscribe;
	case HFE_MSG_SUBSCRIBE_RESP: return &subscribe_resp;
	case HFE_MSG_HELLO: return &hello;
	case HFE_MSG_HELLO_RESP: return &hello_resp;
	case HFE_MSG_STATS_REQ: return &stats_req;
	case HFE_MSG_STATS_RESP: return &stats_resp;
	case HFE_MSG_ERROR: return &error;
	default: return NULL;
	}
}

const char *hfe_msg_type_name(uint8_t type)
{
	const struct msg_info *mi = msg_info(type);
	return mi ? mi->name : NULL;
}

const char *hfe_error_name(int32_t code)
{
	switch (code) {
	case HFE_OK: return "OK";
	case HFE_ERR_INVALID_MSG: return "INVALID_MSG";
	case HFE_ERR_RESOURCE_NOT_FOUND: return "RESOURCE_NOT_FOUND";
	case HFE_ERR_UNSUPPORTED: return "UNSUPPORTED";
	case HFE_ERR_TOO_LARGE: return "TOO_LARGE";
	case HFE_ERR_ENCODE_FAILED: return "ENCODE_FAILED";
	case HFE_ERR_NOT_CONFIGURED: return "NOT_CONFIGURED";
	case HFE_ERR_PROTOCOL: return "PROTOCOL";
	case HFE_ERR_BUSY: return "BUSY";
	case HFE_ERR_TIMEOUT: return "TIMEOUT";
	case HFE_ERR_VERSION: return "VERSION";
	case HFE_ERR_SHUTDOWN: return "SHUTDOWN";
	case HFE_ERR_INTERNAL: return "INTERNAL";
	default: return "UNKNOWN";
	}
}

const char *hfe_fourcc_str(uint32_t fourcc, char buf[5])
{
	for (int i = 0; i < 4; i++) {
		char ch = (char)((fourcc >> (8 * i)) & 0xff);
		buf[i] = (ch >= 0x20 && ch < 0x7f) ? ch : '?';
	}
	buf[4] = '\0';
	return buf;
}

void hfe_err_set(struct hfe_err *err, int32_t code, const char *fmt, ...)
{
	if (!err)
		return;
	err->code = code;
	va_list ap;
	va_start(ap, fmt);
	vsnprintf(err->msg, sizeof(err->msg), fmt, ap);
	va_end(ap);
}

void hfe_limits_default(struct hfe_limits *lim)
{
	lim->max_width = 8192;
	lim->max_height = 8192;
	lim->max_payload = 8192u * 8192u * 4u + HFE_FRAME_REQUEST_SIZE;
}

/* ---- formats ---- */

bool hfe_format_supported(uint32_t format)
{
	switch (format) {
	case HFE_FMT_ARGB8888:
	case HFE_FMT_XRGB8888:
	case HFE_FMT_ABGR8888:
	case HFE_FMT_XBGR8888:
	case HFE_FMT_NV12:
	case HFE_FMT_I420:
		return true;
	default:
		return false;
	}
}

static bool format_is_rgb(uint32_t format)
{
	return format == HFE_FMT_ARGB8888 || format == HFE_FMT_XRGB8888 ||
	       format == HFE_FMT_ABGR8888 || format == HFE_FMT_XBGR8888;
}

static int check_dimensions(const char *what, uint32_t width, uint32_t height,
			    const struct hfe_limits *lim, struct hfe_err *err)
{
	uint32_t max_w = lim->max_width < HFE_MAX_DIMENSION ? lim->max_width : HFE_MAX_DIMENSION;
	uint32_t max_h = lim->max_height < HFE_MAX_DIMENSION ? lim->max_height : HFE_MAX_DIMENSION;

	if (width < HFE_MIN_DIMENSION || height < HFE_MIN_DIMENSION) {
		hfe_err_set(err, HFE_ERR_INVALID_MSG, "%s: size %ux%u is below the minimum %ux%u",
			    what, width, height, HFE_MIN_DIMENSION, HFE_MIN_DIMENSION);
		return -1;
	}
	if (width > max_w || height > max_h) {
		hfe_err_set(err, HFE_ERR_TOO_LARGE, "%s: size %ux%u exceeds the limit %ux%u", what,
			    width, height, max_w, max_h);
		return -1;
	}
	if ((width | height) & 1) {
		hfe_err_set(err, HFE_ERR_INVALID_MSG,
			    "%s: size %ux%u must be even (4:2:0 encoding)", what, width, height);
		return -1;
	}
	return 0;
}

int hfe_frame_size(uint32_t format, uint32_t width, uint32_t height, uint32_t stride,
		   const struct hfe_limits *lim, uint64_t *size, struct hfe_err *err)
{
	char fcc[5];

	if (!hfe_format_supported(format)) {
		hfe_err_set(err, HFE_ERR_UNSUPPORTED, "unsupported pixel format 0x%08x ('%s')",
			    format, hfe_fourcc_str(format, fcc));
		return -1;
	}
	if (check_dimensions("frame", width, height, lim, err) < 0)
		return -1;

	/* Bytes per pixel of plane 0; widths are bounded, so 32-bit products of
	 * width and bpp cannot overflow, but everything is summed in 64 bits. */
	uint64_t bpp = format_is_rgb(format) ? 4 : 1;
	uint64_t min_stride = (uint64_t)width * bpp;
	/* From the capped width, so stride x height always fits in 32 bits. */
	uint32_t cap_w = lim->max_width < HFE_MAX_DIMENSION ? lim->max_width : HFE_MAX_DIMENSION;
	uint64_t max_stride = (uint64_t)cap_w * 4u;
	if (stride < min_stride || stride > max_stride) {
		hfe_err_set(err, HFE_ERR_INVALID_MSG,
			    "stride %u out of range for %ux%u '%s' (must be %llu..%llu)", stride,
			    width, height, hfe_fourcc_str(format, fcc),
			    (unsigned long long)min_stride, (unsigned long long)max_stride);
		return -1;
	}

	uint64_t s = stride, h = height, total;
	switch (format) {
	case HFE_FMT_NV12:
		total = s * h + s * (h / 2);
		break;
	case HFE_FMT_I420: {
		uint64_t cs = (s + 1) / 2;
		total = s * h + 2 * cs * (h / 2);
		break;
	}
	default:
		total = s * h;
		break;
	}
	*size = total;
	return 0;
}

/* ---- header ---- */

int hfe_header_parse(const uint8_t buf[HFE_HEADER_SIZE], enum hfe_role role,
		     const struct hfe_limits *lim, struct hfe_header *out, struct hfe_err *err)
{
	out->magic = hfe_rd32(buf);
	out->type = buf[4];
	out->flags = buf[5];
	out->session_id = hfe_rd16(buf + 6);
	out->payload_size = hfe_rd32(buf + 8);

	if (out->magic != HFE_MAGIC) {
		hfe_err_set(err, HFE_ERR_INVALID_MSG, "bad magic 0x%08x (expected 0x%08x 'HXFR')",
			    out->magic, HFE_MAGIC);
		return -1;
	}
	const struct msg_info *mi = msg_info(out->type);
	if (!mi) {
		hfe_err_set(err, HFE_ERR_INVALID_MSG, "unknown message type 0x%02x", out->type);
		return -1;
	}
	if (mi->receiver != role) {
		hfe_err_set(err, HFE_ERR_INVALID_MSG, "%s (0x%02x) is not sent %s", mi->name,
			    out->type,
			    role == HFE_ROLE_HOST ? "by a client to a host" : "by a host to a client");
		return -1;
	}
	uint8_t allowed = out->type == HFE_MSG_FRAME_REQUEST ? HFE_FLAG_PIXEL_DATA : 0;
	if (out->flags & ~allowed) {
		hfe_err_set(err, HFE_ERR_INVALID_MSG, "%s: invalid flags 0x%02x", mi->name,
			    out->flags);
		return -1;
	}

	uint32_t size = out->payload_size;
	bool exact = mi->rule == SIZE_EXACT ||
		     (out->type == HFE_MSG_FRAME_REQUEST && !(out->flags & HFE_FLAG_PIXEL_DATA));
	if (exact && size != mi->body) {
		hfe_err_set(err, HFE_ERR_INVALID_MSG, "%s: payload_size %u, expected %u", mi->name,
			    size, mi->body);
		return -1;
	}
	if (!exact && size <= mi->body && out->type == HFE_MSG_FRAME_REQUEST) {
		hfe_err_set(err, HFE_ERR_INVALID_MSG,
			    "%s: PIXEL_DATA set but payload_size %u leaves no pixels", mi->name,
			    size);
		return -1;
	}
	if (!exact && size < mi->body) {
		hfe_err_set(err, HFE_ERR_INVALID_MSG, "%s: payload_size %u below the body size %u",
			    mi->name, size, mi->body);
		return -1;
	}
	if (size > lim->max_payload) {
		hfe_err_set(err, HFE_ERR_TOO_LARGE, "%s: payload_size %u exceeds the limit %u",
			    mi->name, size, lim->max_payload);
		return -1;
	}
	return 0;
}

/* ---- bodies ---- */

/* Copy a fixed char field; strict receivers require a NUL inside it. */
static int get_string(char *dst, const uint8_t *src, size_t len, bool strict, const char *what,
		      struct hfe_err *err)
{
	const void *nul = memchr(src, '\0', len);
	if (!nul && strict) {
		hfe_err_set(err, HFE_ERR_INVALID_MSG, "%s is not NUL-terminated", what);
		return -1;
	}
	memcpy(dst, src, len);
	dst[len - 1] = '\0';
	return 0;
}

static int parse_frame_request(const struct hfe_header *hdr, const uint8_t *p,
			       const struct hfe_limits *lim, struct hfe_msg *m,
			       struct hfe_err *err)
{
	struct hfe_frame_request *f = &m->u.frame_req;
	f->resource_id = hfe_rd32(p);
	f->width = hfe_rd32(p + 4);
	f->height = hfe_rd32(p + 8);
	f->format = hfe_rd32(p + 12);
	f->stride = hfe_rd32(p + 16);
	f->pts = (int64_t)hfe_rd64(p + 20);
	f->duration = (int64_t)hfe_rd64(p + 28);
	f->force_keyframe = p[36];
	/* p[37..43] reserved: ignored, deployed guests are not known to zero them. */

	if (f->force_keyframe > 1) {
		hfe_err_set(err, HFE_ERR_INVALID_MSG, "FRAME_REQUEST: force_keyframe %u (0 or 1)",
			    f->force_keyframe);
		return -1;
	}
	if (f->duration < 0) {
		hfe_err_set(err, HFE_ERR_INVALID_MSG, "FRAME_REQUEST: negative duration %lld",
			    (long long)f->duration);
		return -1;
	}
	uint64_t need;
	if (hfe_frame_size(f->format, f->width, f->height, f->stride, lim, &need, err) < 0)
		return -1;

	if (hdr->flags & HFE_FLAG_PIXEL_DATA) {
		size_t have = hdr->payload_size - HFE_FRAME_REQUEST_SIZE;
		if (need > have) {
			char fcc[5];
			hfe_err_set(err, HFE_ERR_INVALID_MSG,
				    "FRAME_REQUEST: %zu pixel bytes, a %ux%u '%s' frame with stride "
				    "%u needs %llu",
				    have, f->width, f->height, hfe_fourcc_str(f->format, fcc),
				    f->stride, (unsigned long long)need);
			return -1;
		}
		m->data = p + HFE_FRAME_REQUEST_SIZE;
		m->data_len = have;
	} else if (f->resource_id == 0) {
		hfe_err_set(err, HFE_ERR_INVALID_MSG,
			    "FRAME_REQUEST: no PIXEL_DATA and resource_id 0 (names no resource)");
		return -1;
	}
	return 0;
}

static int parse_frame_response(const struct hfe_header *hdr, const uint8_t *p,
				struct hfe_msg *m, struct hfe_err *err)
{
	struct hfe_frame_response *r = &m->u.frame_resp;
	r->pts = (int64_t)hfe_rd64(p);
	r->dts = (int64_t)hfe_rd64(p + 8);
	r->is_keyframe = p[16];
	r->nal_count = hfe_rd32(p + 20);
	if (r->is_keyframe > 1) {
		hfe_err_set(err, HFE_ERR_INVALID_MSG, "FRAME_RESPONSE: is_keyframe %u",
			    r->is_keyframe);
		return -1;
	}
	if (r->nal_count > HFE_MAX_NAL_COUNT) {
		hfe_err_set(err, HFE_ERR_INVALID_MSG, "FRAME_RESPONSE: nal_count %u exceeds %u",
			    r->nal_count, HFE_MAX_NAL_COUNT);
		return -1;
	}
	const uint8_t *area = p + HFE_FRAME_RESPONSE_SIZE;
	size_t len = hdr->payload_size - HFE_FRAME_RESPONSE_SIZE, pos = 0;
	for (uint32_t i = 0; i < r->nal_count; i++) {
		if (len - pos < 4) {
			hfe_err_set(err, HFE_ERR_INVALID_MSG,
				    "FRAME_RESPONSE: NAL %u of %u: size field past the payload", i,
				    r->nal_count);
			return -1;
		}
		uint32_t n = hfe_rd32(area + pos);
		pos += 4;
		if (n > len - pos) {
			hfe_err_set(err, HFE_ERR_INVALID_MSG,
				    "FRAME_RESPONSE: NAL %u of %u: size %u overruns the payload", i,
				    r->nal_count, n);
			return -1;
		}
		pos += n;
	}
	if (pos != len) {
		hfe_err_set(err, HFE_ERR_INVALID_MSG,
			    "FRAME_RESPONSE: %zu bytes left after %u NAL units", len - pos,
			    r->nal_count);
		return -1;
	}
	m->data = area;
	m->data_len = len;
	return 0;
}

static int check_bitrate_fps(const char *what, uint32_t bitrate, uint32_t num, uint32_t den,
			     struct hfe_err *err)
{
	if (bitrate != 0 && (bitrate < 10000 || bitrate > 1000000000u)) {
		hfe_err_set(err, HFE_ERR_INVALID_MSG,
			    "%s: bitrate %u bit/s out of range (0 or 10000..1000000000)", what,
			    bitrate);
		return -1;
	}
	if (num == 0 && den == 0)
		return 0;
	if (num == 0 || den == 0 || num > 1000000 || den > 1000000 ||
	    (uint64_t)num > 240u * (uint64_t)den) {
		hfe_err_set(err, HFE_ERR_INVALID_MSG,
			    "%s: frame rate %u/%u out of range (1..1000000 each, at most 240 fps)",
			    what, num, den);
		return -1;
	}
	return 0;
}

static int parse_config_req(const uint8_t *p, const struct hfe_limits *lim, struct hfe_msg *m,
			    struct hfe_err *err)
{
	struct hfe_config_req *c = &m->u.config_req;
	c->width = hfe_rd32(p);
	c->height = hfe_rd32(p + 4);
	c->bitrate = hfe_rd32(p + 8);
	c->fps_num = hfe_rd32(p + 12);
	c->fps_den = hfe_rd32(p + 16);
	c->profile = p[20];
	c->level = p[21];
	c->realtime = p[22];

	if ((c->width == 0) != (c->height == 0)) {
		hfe_err_set(err, HFE_ERR_INVALID_MSG,
			    "CONFIG_REQ: width %u and height %u must both be 0 or both set",
			    c->width, c->height);
		return -1;
	}
	if (c->width && check_dimensions("CONFIG_REQ", c->width, c->height, lim, err) < 0)
		return -1;
	if (check_bitrate_fps("CONFIG_REQ", c->bitrate, c->fps_num, c->fps_den, err) < 0)
		return -1;
	if (c->profile != 0 && c->profile != 66 && c->profile != 77 && c->profile != 100) {
		hfe_err_set(err, HFE_ERR_INVALID_MSG,
			    "CONFIG_REQ: profile %u (0, 66, 77 or 100)", c->profile);
		return -1;
	}
	if (c->level != 0 && (c->level < 10 || c->level > 62)) {
		hfe_err_set(err, HFE_ERR_INVALID_MSG, "CONFIG_REQ: level %u (0 or 10..62)",
			    c->level);
		return -1;
	}
	if (c->realtime > 1) {
		hfe_err_set(err, HFE_ERR_INVALID_MSG, "CONFIG_REQ: realtime %u (0 or 1)",
			    c->realtime);
		return -1;
	}
	return 0;
}

static int parse_config_resp(const uint8_t *p, struct hfe_msg *m, struct hfe_err *err)
{
	struct hfe_config_resp *c = &m->u.config_resp;
	c->width = hfe_rd32(p);
	c->height = hfe_rd32(p + 4);
	c->bitrate = hfe_rd32(p + 8);
	c->fps_num = hfe_rd32(p + 12);
	c->fps_den = hfe_rd32(p + 16);
	c->profile = p[20];
	c->level = p[21];
	c->realtime = p[22];
	return get_string(c->encoder, p + 24, HFE_NAME_LEN, false, "CONFIG_RESP encoder", err);
}

static int parse_enable_scanout(const uint8_t *p, const struct hfe_limits *lim,
				struct hfe_msg *m, struct hfe_err *err)
{
	struct hfe_enable_scanout *e = &m->u.enable_scanout;
	e->scanout_id = hfe_rd32(p);
	e->width = hfe_rd32(p + 4);
	e->height = hfe_rd32(p + 8);
	e->refresh_rate = hfe_rd32(p + 12);
	if ((e->width || e->height) &&
	    check_dimensions("ENABLE_SCANOUT", e->width, e->height, lim, err) < 0)
		return -1;
	if (e->refresh_rate > 1000) {
		hfe_err_set(err, HFE_ERR_INVALID_MSG, "ENABLE_SCANOUT: refresh_rate %u (max 1000)",
			    e->refresh_rate);
		return -1;
	}
	return 0;
}

static int parse_hello(const uint8_t *p, struct hfe_msg *m, struct hfe_err *err)
{
	struct hfe_hello *h = &m->u.hello;
	h->version_min = hfe_rd16(p);
	h->version_max = hfe_rd16(p + 2);
	h->flags = hfe_rd32(p + 4);
	if (h->version_min < 1 || h->version_max < h->version_min) {
		hfe_err_set(err, HFE_ERR_INVALID_MSG, "HELLO: bad version range %u..%u",
			    h->version_min, h->version_max);
		return -1;
	}
	if (h->flags) {
		hfe_err_set(err, HFE_ERR_INVALID_MSG, "HELLO: reserved flags 0x%08x set", h->flags);
		return -1;
	}
	return get_string(h->client_name, p + 8, HFE_NAME_LEN, true, "HELLO client_name", err);
}

static int parse_hello_resp(const uint8_t *p, struct hfe_msg *m, struct hfe_err *err)
{
	struct hfe_hello_resp *h = &m->u.hello_resp;
	h->version = hfe_rd16(p);
	h->codecs = hfe_rd32(p + 4);
	h->sources = hfe_rd32(p + 8);
	h->max_width = hfe_rd32(p + 12);
	h->max_height = hfe_rd32(p + 16);
	h->max_payload = hfe_rd32(p + 20);
	h->max_inflight = hfe_rd32(p + 24);
	h->format_count = hfe_rd32(p + 28);
	if (h->version < 1) {
		hfe_err_set(err, HFE_ERR_INVALID_MSG, "HELLO_RESP: version %u", h->version);
		return -1;
	}
	if (h->format_count > HFE_HELLO_MAX_FORMATS) {
		hfe_err_set(err, HFE_ERR_INVALID_MSG, "HELLO_RESP: format_count %u exceeds %u",
			    h->format_count, HFE_HELLO_MAX_FORMATS);
		return -1;
	}
	for (unsigned i = 0; i < HFE_HELLO_MAX_FORMATS; i++)
		h->formats[i] = i < h->format_count ? hfe_rd32(p + 32 + 4 * i) : 0;
	return get_string(h->server_name, p + 64, HFE_NAME_LEN, false, "HELLO_RESP server_name",
			  err);
}

static void parse_stats(const uint8_t *p, struct hfe_msg *m)
{
	struct hfe_stats *s = &m->u.stats;
	s->frames_received = hfe_rd64(p);
	s->frames_encoded = hfe_rd64(p + 8);
	s->frames_dropped = hfe_rd64(p + 16);
	s->keyframes = hfe_rd64(p + 24);
	s->bytes_received = hfe_rd64(p + 32);
	s->bytes_sent = hfe_rd64(p + 40);
	s->encode_us_avg = hfe_rd32(p + 48);
	s->encode_us_max = hfe_rd32(p + 52);
	s->inflight = hfe_rd32(p + 56);
}

int hfe_msg_parse(const struct hfe_header *hdr, const uint8_t *payload, enum hfe_role role,
		  const struct hfe_limits *lim, struct hfe_msg *out, struct hfe_err *err)
{
	const struct msg_info *mi = msg_info(hdr->type);

	memset(out, 0, sizeof(*out));
	out->hdr = *hdr;
	/* The header must have been validated for this role: re-check the two
	 * facts the body parsers rely on, cheaply, rather than trust callers. */
	if (!mi || mi->receiver != role || hdr->payload_size < mi->body) {
		hfe_err_set(err, HFE_ERR_INTERNAL, "message parsed without a validated header");
		return -1;
	}

	switch (hdr->type) {
	case HFE_MSG_FRAME_REQUEST:
		return parse_frame_request(hdr, payload, lim, out, err);
	case HFE_MSG_FRAME_RESPONSE:
		return parse_frame_response(hdr, payload, out, err);
	case HFE_MSG_CONFIG_REQ:
		return parse_config_req(payload, lim, out, err);
	case HFE_MSG_CONFIG_RESP:
		return parse_config_resp(payload, out, err);
	case HFE_MSG_ENABLE_SCANOUT:
		return parse_enable_scanout(payload, lim, out, err);
	case HFE_MSG_DISABLE_SCANOUT:
	case HFE_MSG_SUBSCRIBE:
		out->u.scanout_id = hfe_rd32(payload);
		return 0;
	case HFE_MSG_SCANOUT_RESP:
		out->u.scanout_resp.scanout_id = hfe_rd32(payload);
		out->u.scanout_resp.success = hfe_rd32(payload + 4);
		return get_string(out->u.scanout_resp.connector, payload + 8, HFE_CONNECTOR_LEN,
				  false, "SCANOUT_RESP connector", err);
	case HFE_MSG_SUBSCRIBE_RESP:
		out->u.subscribe_resp.scanout_id = hfe_rd32(payload);
		out->u.subscribe_resp.success = hfe_rd32(payload + 4);
		return 0;
	case HFE_MSG_HELLO:
		return parse_hello(payload, out, err);
	case HFE_MSG_HELLO_RESP:
		return parse_hello_resp(payload, out, err);
	case HFE_MSG_STATS_RESP:
		parse_stats(payload, out);
		return 0;
	case HFE_MSG_ERROR:
		out->u.error.code = (int32_t)hfe_rd32(payload);
		/* Hosts are trusted less strictly here: v1 hosts may fill all 256. */
		return get_string(out->u.error.message, payload + 4, HFE_ERROR_MSG_LEN, false,
				  "ERROR message", err);
	case HFE_MSG_KEYFRAME_REQ:
	case HFE_MSG_PING:
	case HFE_MSG_PONG:
	case HFE_MSG_STATS_REQ:
		return 0;
	}
	hfe_err_set(err, HFE_ERR_INTERNAL, "no parser for message type 0x%02x", hdr->type);
	return -1;
}

bool hfe_nal_next(const struct hfe_msg *msg, size_t *pos, const uint8_t **nal, uint32_t *len)
{
	if (msg->hdr.type != HFE_MSG_FRAME_RESPONSE || *pos + 4 > msg->data_len)
		return false;
	uint32_t n = hfe_rd32(msg->data + *pos);
	if (n > msg->data_len - *pos - 4)
		return false;
	*nal = msg->data + *pos + 4;
	*len = n;
	*pos += 4 + (size_t)n;
	return true;
}

/* ---- building ---- */

static void put_string(uint8_t *dst, const char *src, size_t len)
{
	size_t n = src ? strnlen(src, len - 1) : 0;
	memset(dst, 0, len);
	if (n)
		memcpy(dst, src, n);
}

size_t hfe_msg_build(const struct hfe_msg *msg, size_t extra_len, uint8_t *buf, size_t cap)
{
	const struct msg_info *mi = msg_info(msg->hdr.type);
	if (!mi)
		return 0;

	size_t body = mi->body;
	size_t tail = extra_len; /* payload bytes after the fixed body */
	uint8_t flags = msg->hdr.flags;
	if (msg->hdr.type == HFE_MSG_FRAME_RESPONSE) {
		/* nal_count 1: the builder writes the single size prefix. */
		if (msg->u.frame_resp.nal_count == 1) {
			if (extra_len > UINT32_MAX - 4)
				return 0;
			body += 4;
		} else if (msg->u.frame_resp.nal_count != 0 || extra_len != 0) {
			return 0; /* several NALs: not produced by this library */
		}
	} else if (msg->hdr.type == HFE_MSG_FRAME_REQUEST) {
		flags = extra_len ? (flags | HFE_FLAG_PIXEL_DATA) : (flags & ~HFE_FLAG_PIXEL_DATA);
	} else if (extra_len) {
		return 0;
	}
	if (tail > UINT32_MAX - body || cap < HFE_HEADER_SIZE + body)
		return 0;

	uint8_t *p = buf + HFE_HEADER_SIZE;
	memset(p, 0, body);
	hfe_wr32(buf, HFE_MAGIC);
	buf[4] = msg->hdr.type;
	buf[5] = flags;
	hfe_wr16(buf + 6, msg->hdr.session_id);
	hfe_wr32(buf + 8, (uint32_t)(body + tail));

	switch (msg->hdr.type) {
	case HFE_MSG_FRAME_REQUEST: {
		const struct hfe_frame_request *f = &msg->u.frame_req;
		hfe_wr32(p, f->resource_id);
		hfe_wr32(p + 4, f->width);
		hfe_wr32(p + 8, f->height);
		hfe_wr32(p + 12, f->format);
		hfe_wr32(p + 16, f->stride);
		hfe_wr64(p + 20, (uint64_t)f->pts);
		hfe_wr64(p + 28, (uint64_t)f->duration);
		p[36] = f->force_keyframe;
		break;
	}
	case HFE_MSG_FRAME_RESPONSE: {
		const struct hfe_frame_response *r = &msg->u.frame_resp;
		hfe_wr64(p, (uint64_t)r->pts);
		hfe_wr64(p + 8, (uint64_t)r->dts);
		p[16] = r->is_keyframe;
		hfe_wr32(p + 20, r->nal_count);
		if (r->nal_count == 1)
			hfe_wr32(p + 24, (uint32_t)extra_len);
		break;
	}
	case HFE_MSG_CONFIG_REQ: {
		const struct hfe_config_req *c = &msg->u.config_req;
		hfe_wr32(p, c->width);
		hfe_wr32(p + 4, c->height);
		hfe_wr32(p + 8, c->bitrate);
		hfe_wr32(p + 12, c->fps_num);
		hfe_wr32(p + 16, c->fps_den);
		p[20] = c->profile;
		p[21] = c->level;
		p[22] = c->realtime;
		break;
	}
	case HFE_MSG_CONFIG_RESP: {
		const struct hfe_config_resp *c = &msg->u.config_resp;
		hfe_wr32(p, c->width);
		hfe_wr32(p + 4, c->height);
		hfe_wr32(p + 8, c->bitrate);
		hfe_wr32(p + 12, c->fps_num);
		hfe_wr32(p + 16, c->fps_den);
		p[20] = c->profile;
		p[21] = c->level;
		p[22] = c->realtime;
		put_string(p + 24, c->encoder, HFE_NAME_LEN);
		break;
	}
	case HFE_MSG_ENABLE_SCANOUT: {
		const struct hfe_enable_scanout *e = &msg->u.enable_scanout;
		hfe_wr32(p, e->scanout_id);
		hfe_wr32(p + 4, e->width);
		hfe_wr32(p + 8, e->height);
		hfe_wr32(p + 12, e->refresh_rate);
		break;
	}
	case HFE_MSG_DISABLE_SCANOUT:
	case HFE_MSG_SUBSCRIBE:
		hfe_wr32(p, msg->u.scanout_id);
		break;
	case HFE_MSG_SCANOUT_RESP:
		hfe_wr32(p, msg->u.scanout_resp.scanout_id);
		hfe_wr32(p + 4, msg->u.scanout_resp.success);
		put_string(p + 8, msg->u.scanout_resp.connector, HFE_CONNECTOR_LEN);
		break;
	case HFE_MSG_SUBSCRIBE_RESP:
		hfe_wr32(p, msg->u.subscribe_resp.scanout_id);
		hfe_wr32(p + 4, msg->u.subscribe_resp.success);
		break;
	case HFE_MSG_HELLO: {
		const struct hfe_hello *h = &msg->u.hello;
		hfe_wr16(p, h->version_min);
		hfe_wr16(p + 2, h->version_max);
		hfe_wr32(p + 4, h->flags);
		put_string(p + 8, h->client_name, HFE_NAME_LEN);
		break;
	}
	case HFE_MSG_HELLO_RESP: {
		const struct hfe_hello_resp *h = &msg->u.hello_resp;
		uint32_t count = h->format_count < HFE_HELLO_MAX_FORMATS ? h->format_count
									  : HFE_HELLO_MAX_FORMATS;
		hfe_wr16(p, h->version);
		hfe_wr32(p + 4, h->codecs);
		hfe_wr32(p + 8, h->sources);
		hfe_wr32(p + 12, h->max_width);
		hfe_wr32(p + 16, h->max_height);
		hfe_wr32(p + 20, h->max_payload);
		hfe_wr32(p + 24, h->max_inflight);
		hfe_wr32(p + 28, count);
		for (uint32_t i = 0; i < count; i++)
			hfe_wr32(p + 32 + 4 * i, h->formats[i]);
		put_string(p + 64, h->server_name, HFE_NAME_LEN);
		break;
	}
	case HFE_MSG_STATS_RESP: {
		const struct hfe_stats *s = &msg->u.stats;
		hfe_wr64(p, s->frames_received);
		hfe_wr64(p + 8, s->frames_encoded);
		hfe_wr64(p + 16, s->frames_dropped);
		hfe_wr64(p + 24, s->keyframes);
		hfe_wr64(p + 32, s->bytes_received);
		hfe_wr64(p + 40, s->bytes_sent);
		hfe_wr32(p + 48, s->encode_us_avg);
		hfe_wr32(p + 52, s->encode_us_max);
		hfe_wr32(p + 56, s->inflight);
		break;
	}
	case HFE_MSG_ERROR:
		hfe_wr32(p, (uint32_t)msg->u.error.code);
		put_string(p + 4, msg->u.error.message, HFE_ERROR_MSG_LEN);
		break;
	default: /* empty bodies */
		break;
	}
	return HFE_HEADER_SIZE + body;
}
