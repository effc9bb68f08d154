/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * HXFR message layouts, validation and building. See docs/protocol.md.
 *
 * Every message is described once, in three places that cannot disagree:
 *  - a packed struct mirrors its wire layout (sizes pinned by static asserts
 *    against the HFE_*_SIZE constants of wire.h);
 *  - a field list pairs each member of that struct with the member of the
 *    decoded struct it fills, both located with offsetof (no offset is typed
 *    by hand, and a member whose size differs on the two sides does not
 *    compile);
 *  - one row of the message table gives its name, direction, first protocol
 *    version, body size, what may follow the body, the rules its values must
 *    obey (check) and anything the builder writes beyond the fields (finish).
 * Parsing and building walk the same field list with explicit little-endian
 * loads and stores, so host endianness and alignment never matter. A new
 * message is its type code and decoded struct in wire.h, and here one packed
 * struct, one field list and one table row.
 */
#include "hfe/wire.h"

#include <assert.h>
#include <stdarg.h>
#include <stdio.h>
#include <string.h>

#include "bytes.h"

/* ---- wire layouts, pinned ----
 * wire_<m> decodes into the hfe_msg union member <m> (wire_header into
 * struct hfe_header), and its members carry the decoded struct's names: the
 * field list macros below rely on both. */

#define PACKED __attribute__((packed))

struct PACKED wire_header {
	uint32_t magic;
	uint8_t type;
	uint8_t flags;
	uint16_t session_id;
	uint32_t payload_size;
};
struct PACKED wire_frame_req {
	uint32_t resource_id, width, height, format, stride;
	int64_t pts, duration;
	uint8_t force_keyframe;
	uint8_t reserved[7];
};
struct PACKED wire_frame_resp {
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
struct PACKED wire_scanout_id { /* DISABLE_SCANOUT, SUBSCRIBE */
	uint32_t scanout_id;
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
	uint16_t version, features;
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
struct PACKED wire_key {
	uint32_t code;
	uint8_t down;
	uint8_t reserved[3];
};
struct PACKED wire_pointer {
	uint32_t x, y, buttons;
	int16_t wheel_y, wheel_x;
};
struct PACKED wire_cursor_shape {
	uint32_t width, height, hot_x, hot_y;
};
struct PACKED wire_cursor_pos {
	int32_t x, y;
	uint8_t visible;
	uint8_t reserved[3];
};
struct PACKED wire_error {
	int32_t code;
	char message[HFE_ERROR_MSG_LEN];
};

static_assert(sizeof(struct wire_header) == HFE_HEADER_SIZE, "header layout");
static_assert(sizeof(struct wire_frame_req) == HFE_FRAME_REQUEST_SIZE, "frame request");
static_assert(sizeof(struct wire_frame_resp) == HFE_FRAME_RESPONSE_SIZE, "frame response");
static_assert(sizeof(struct wire_config_req) == HFE_CONFIG_REQ_SIZE, "config req");
static_assert(sizeof(struct wire_config_resp) == HFE_CONFIG_RESP_SIZE, "config resp");
static_assert(sizeof(struct wire_enable_scanout) == HFE_ENABLE_SCANOUT_SIZE, "enable scanout");
static_assert(sizeof(struct wire_scanout_id) == HFE_DISABLE_SCANOUT_SIZE, "disable scanout");
static_assert(sizeof(struct wire_scanout_id) == HFE_SUBSCRIBE_SIZE, "subscribe");
static_assert(sizeof(struct wire_scanout_resp) == HFE_SCANOUT_RESP_SIZE, "scanout resp");
static_assert(sizeof(struct wire_subscribe_resp) == HFE_SUBSCRIBE_RESP_SIZE, "subscribe resp");
static_assert(sizeof(struct wire_hello) == HFE_HELLO_SIZE, "hello");
static_assert(sizeof(struct wire_hello_resp) == HFE_HELLO_RESP_SIZE, "hello resp");
static_assert(sizeof(struct wire_stats) == HFE_STATS_RESP_SIZE, "stats");
static_assert(sizeof(struct wire_error) == HFE_ERROR_SIZE, "error");
static_assert(sizeof(struct wire_key) == HFE_INPUT_KEY_SIZE, "input key");
static_assert(sizeof(struct wire_pointer) == HFE_INPUT_POINTER_SIZE, "input pointer");
static_assert(sizeof(struct wire_cursor_shape) == HFE_CURSOR_SHAPE_SIZE, "cursor shape");
static_assert(sizeof(struct wire_cursor_pos) == HFE_CURSOR_POSITION_SIZE, "cursor position");
static_assert(HFE_MSG_MAX_PREFIX >= HFE_HEADER_SIZE + HFE_FRAME_RESPONSE_SIZE + 4, "prefix");

/* ---- field lists ---- */

enum field_kind {
	FIELD_INT, /* little-endian integers (an array when count > 1) */
	FIELD_STR, /* fixed char field, NUL-padded */
};

struct field {
	const char *name;
	uint16_t wire;  /* offset in the wire struct */
	uint16_t host;  /* offset in the decoded struct (hfe_header or hfe_msg) */
	uint8_t size;   /* bytes of one integer; 1 for a string */
	uint16_t count; /* integers in the array, or the string field's length */
	enum field_kind kind;
};

#define MEMBER(T, m) (((T *)0)->m)
/* 0, or a compile error when a member's size differs on the two sides. */
#define SAME_SIZE(a, b) (0 * sizeof(char[sizeof(a) == sizeof(b) ? 1 : -1]))
#define FIELD_AT(W, f, H, h, kind, elem)                                                    \
	{ #f, offsetof(W, f), offsetof(H, h) + SAME_SIZE(MEMBER(W, f), MEMBER(H, h)), elem,  \
	  sizeof(MEMBER(W, f)) / (elem), kind }
#define WIRE(m, f) MEMBER(struct wire_##m, f)
/* struct wire_<m>.f <-> struct hfe_msg .u.<m>.f */
#define INT(m, f) FIELD_AT(struct wire_##m, f, struct hfe_msg, u.m.f, FIELD_INT, sizeof(WIRE(m, f)))
#define INTS(m, f) \
	FIELD_AT(struct wire_##m, f, struct hfe_msg, u.m.f, FIELD_INT, sizeof(WIRE(m, f)[0]))
#define STR(m, f) FIELD_AT(struct wire_##m, f, struct hfe_msg, u.m.f, FIELD_STR, 1)
#define HDR(f) \
	FIELD_AT(struct wire_header, f, struct hfe_header, f, FIELD_INT, sizeof(WIRE(header, f)))
#define COUNT(a) (sizeof(a) / sizeof((a)[0]))

static const struct field header_fields[] = {
	HDR(magic), HDR(type), HDR(flags), HDR(session_id), HDR(payload_size),
};
static const struct field frame_req_fields[] = {
	INT(frame_req, resource_id), INT(frame_req, width), INT(frame_req, height),
	INT(frame_req, format),      INT(frame_req, stride), INT(frame_req, pts),
	INT(frame_req, duration),    INT(frame_req, force_keyframe),
};
static const struct field frame_resp_fields[] = {
	INT(frame_resp, pts),
	INT(frame_resp, dts),
	INT(frame_resp, is_keyframe),
	INT(frame_resp, nal_count),
};
static const struct field config_req_fields[] = {
	INT(config_req, width),   INT(config_req, height),  INT(config_req, bitrate),
	INT(config_req, fps_num), INT(config_req, fps_den), INT(config_req, profile),
	INT(config_req, level),   INT(config_req, realtime),
};
static const struct field config_resp_fields[] = {
	INT(config_resp, width),   INT(config_resp, height),   INT(config_resp, bitrate),
	INT(config_resp, fps_num), INT(config_resp, fps_den),  INT(config_resp, profile),
	INT(config_resp, level),   INT(config_resp, realtime), STR(config_resp, encoder),
};
static const struct field enable_scanout_fields[] = {
	INT(enable_scanout, scanout_id),
	INT(enable_scanout, width),
	INT(enable_scanout, height),
	INT(enable_scanout, refresh_rate),
};
static const struct field scanout_id_fields[] = {
	FIELD_AT(struct wire_scanout_id, scanout_id, struct hfe_msg, u.scanout_id, FIELD_INT, 4),
};
static const struct field scanout_resp_fields[] = {
	INT(scanout_resp, scanout_id),
	INT(scanout_resp, success),
	STR(scanout_resp, connector),
};
static const struct field subscribe_resp_fields[] = {
	INT(subscribe_resp, scanout_id),
	INT(subscribe_resp, success),
};
static const struct field hello_fields[] = {
	INT(hello, version_min),
	INT(hello, version_max),
	INT(hello, flags),
	STR(hello, client_name),
};
static const struct field hello_resp_fields[] = {
	INT(hello_resp, version),      INT(hello_resp, features),     INT(hello_resp, codecs),
	INT(hello_resp, sources),
	INT(hello_resp, max_width),    INT(hello_resp, max_height),   INT(hello_resp, max_payload),
	INT(hello_resp, max_inflight), INT(hello_resp, format_count), INTS(hello_resp, formats),
	STR(hello_resp, server_name),
};
static const struct field stats_fields[] = {
	INT(stats, frames_received), INT(stats, frames_encoded), INT(stats, frames_dropped),
	INT(stats, keyframes),       INT(stats, bytes_received), INT(stats, bytes_sent),
	INT(stats, encode_us_avg),   INT(stats, encode_us_max),  INT(stats, inflight),
};
static const struct field key_fields[] = {
	INT(key, code),
	INT(key, down),
};
static const struct field pointer_fields[] = {
	INT(pointer, x),       INT(pointer, y),       INT(pointer, buttons),
	INT(pointer, wheel_y), INT(pointer, wheel_x),
};
static const struct field cursor_shape_fields[] = {
	INT(cursor_shape, width),
	INT(cursor_shape, height),
	INT(cursor_shape, hot_x),
	INT(cursor_shape, hot_y),
};
static const struct field cursor_pos_fields[] = {
	INT(cursor_pos, x),
	INT(cursor_pos, y),
	INT(cursor_pos, visible),
};
static const struct field error_fields[] = {
	INT(error, code),
	STR(error, message),
};

/* ---- field codec ---- */

static uint64_t load_le(const uint8_t *p, unsigned size)
{
	switch (size) {
	case 1: return p[0];
	case 2: return hfe_rd16(p);
	case 4: return hfe_rd32(p);
	default: return hfe_rd64(p);
	}
}

static void store_le(uint8_t *p, unsigned size, uint64_t v)
{
	switch (size) {
	case 1: p[0] = (uint8_t)v; break;
	case 2: hfe_wr16(p, (uint16_t)v); break;
	case 4: hfe_wr32(p, (uint32_t)v); break;
	default: hfe_wr64(p, v); break;
	}
}

/* Decoded members are native integers; a signed one shares the object
 * representation of its unsigned twin, so both go through the unsigned. */
static uint64_t load_native(const uint8_t *p, unsigned size)
{
	uint8_t v8;
	uint16_t v16;
	uint32_t v32;
	uint64_t v64;

	switch (size) {
	case 1: memcpy(&v8, p, 1); return v8;
	case 2: memcpy(&v16, p, 2); return v16;
	case 4: memcpy(&v32, p, 4); return v32;
	default: memcpy(&v64, p, 8); return v64;
	}
}

static void store_native(uint8_t *p, unsigned size, uint64_t v)
{
	uint8_t v8 = (uint8_t)v;
	uint16_t v16 = (uint16_t)v;
	uint32_t v32 = (uint32_t)v;

	switch (size) {
	case 1: memcpy(p, &v8, 1); break;
	case 2: memcpy(p, &v16, 2); break;
	case 4: memcpy(p, &v32, 4); break;
	default: memcpy(p, &v, 8); break;
	}
}

/* Wire bytes -> decoded struct. Strings are cut to their field (a NUL in the
 * last byte); whether the sender put one there is check_strings' business. */
static void decode(const struct field *fields, size_t n, const uint8_t *wire, void *host)
{
	for (size_t i = 0; i < n; i++) {
		const struct field *f = &fields[i];
		const uint8_t *src = wire + f->wire;
		uint8_t *dst = (uint8_t *)host + f->host;

		if (f->kind == FIELD_STR) {
			memcpy(dst, src, f->count);
			dst[f->count - 1] = '\0';
			continue;
		}
		for (unsigned k = 0, at = 0; k < f->count; k++, at += f->size)
			store_native(dst + at, f->size, load_le(src + at, f->size));
	}
}

/* Decoded struct -> wire bytes. Strings are sent NUL-terminated and padded. */
static void encode(const struct field *fields, size_t n, const void *host, uint8_t *wire)
{
	for (size_t i = 0; i < n; i++) {
		const struct field *f = &fields[i];
		const uint8_t *src = (const uint8_t *)host + f->host;
		uint8_t *dst = wire + f->wire;

		if (f->kind == FIELD_STR) {
			size_t len = strnlen((const char *)src, f->count - 1u);
			memcpy(dst, src, len);
			memset(dst + len, 0, f->count - len);
			continue;
		}
		for (unsigned k = 0, at = 0; k < f->count; k++, at += f->size)
			store_le(dst + at, f->size, load_native(src + at, f->size));
	}
}

/* ---- names, errors, limits ---- */

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
	case HFE_ERR_DENIED: return "DENIED";
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

/* ---- rules beyond the field types (the "rule" columns of the spec) ---- */

static int check_frame_req(struct hfe_msg *m, const uint8_t *p, const struct hfe_limits *lim,
			   struct hfe_err *err)
{
	struct hfe_frame_request *f = &m->u.frame_req;

	/* Reserved bytes are ignored: deployed guests are not known to zero them. */
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

	if (m->hdr.flags & HFE_FLAG_PIXEL_DATA) {
		size_t have = m->hdr.payload_size - sizeof(struct wire_frame_req);
		if (need > have) {
			char fcc[5];
			hfe_err_set(err, HFE_ERR_INVALID_MSG,
				    "FRAME_REQUEST: %zu pixel bytes, a %ux%u '%s' frame with stride "
				    "%u needs %llu",
				    have, f->width, f->height, hfe_fourcc_str(f->format, fcc),
				    f->stride, (unsigned long long)need);
			return -1;
		}
		m->data = p + sizeof(struct wire_frame_req);
		m->data_len = have;
	} else if (f->resource_id == 0) {
		hfe_err_set(err, HFE_ERR_INVALID_MSG,
			    "FRAME_REQUEST: no PIXEL_DATA and resource_id 0 (names no resource)");
		return -1;
	}
	return 0;
}

static int check_frame_resp(struct hfe_msg *m, const uint8_t *p, const struct hfe_limits *lim,
			    struct hfe_err *err)
{
	struct hfe_frame_response *r = &m->u.frame_resp;
	(void)lim;

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
	const uint8_t *area = p + sizeof(struct wire_frame_resp);
	size_t len = m->hdr.payload_size - sizeof(struct wire_frame_resp), pos = 0;
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

/* H.264's levels (A.3, times ten): an encoder refuses any other (x264 fails
 * to open, and libx264 leaks on that path). */
static bool h264_level(unsigned level)
{
	unsigned major = level / 10, minor = level % 10;

	if (major == 1)
		return minor <= 3;
	return major >= 2 && major <= 6 && minor <= 2;
}

static int check_config_req(struct hfe_msg *m, const uint8_t *p, const struct hfe_limits *lim,
			    struct hfe_err *err)
{
	const struct hfe_config_req *c = &m->u.config_req;
	(void)p;

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
	if (c->level != 0 && !h264_level(c->level)) {
		hfe_err_set(err, HFE_ERR_INVALID_MSG,
			    "CONFIG_REQ: level %u (0, or an H.264 level x10: 10..13, 20..22, "
			    "30..32, 40..42, 50..52, 60..62)", c->level);
		return -1;
	}
	if (c->realtime > 1) {
		hfe_err_set(err, HFE_ERR_INVALID_MSG, "CONFIG_REQ: realtime %u (0 or 1)",
			    c->realtime);
		return -1;
	}
	return 0;
}

static int check_hello(struct hfe_msg *m, const uint8_t *p, const struct hfe_limits *lim,
		       struct hfe_err *err)
{
	const struct hfe_hello *h = &m->u.hello;
	(void)p;
	(void)lim;

	if (h->version_min < 1 || h->version_max < h->version_min) {
		hfe_err_set(err, HFE_ERR_INVALID_MSG, "HELLO: bad version range %u..%u",
			    h->version_min, h->version_max);
		return -1;
	}
	if (h->flags) {
		hfe_err_set(err, HFE_ERR_INVALID_MSG, "HELLO: reserved flags 0x%08x set", h->flags);
		return -1;
	}
	return 0;
}

static int check_hello_resp(struct hfe_msg *m, const uint8_t *p, const struct hfe_limits *lim,
			    struct hfe_err *err)
{
	struct hfe_hello_resp *h = &m->u.hello_resp;
	(void)p;
	(void)lim;

	if (h->version < 1) {
		hfe_err_set(err, HFE_ERR_INVALID_MSG, "HELLO_RESP: version %u", h->version);
		return -1;
	}
	if (h->format_count > HFE_HELLO_MAX_FORMATS) {
		hfe_err_set(err, HFE_ERR_INVALID_MSG, "HELLO_RESP: format_count %u exceeds %u",
			    h->format_count, HFE_HELLO_MAX_FORMATS);
		return -1;
	}
	/* Slots past format_count mean nothing, whatever the host left there. */
	for (unsigned i = h->format_count; i < HFE_HELLO_MAX_FORMATS; i++)
		h->formats[i] = 0;
	return 0;
}

static int check_key(struct hfe_msg *m, const uint8_t *p, const struct hfe_limits *lim,
		     struct hfe_err *err)
{
	const struct hfe_input_key *k = &m->u.key;
	(void)p;
	(void)lim;

	if (k->code < 1 || k->code > HFE_KEY_MAX) {
		hfe_err_set(err, HFE_ERR_INVALID_MSG, "INPUT_KEY: code %u (1..%u)", k->code,
			    HFE_KEY_MAX);
		return -1;
	}
	if (k->down > 1) {
		hfe_err_set(err, HFE_ERR_INVALID_MSG, "INPUT_KEY: down %u (0 or 1)", k->down);
		return -1;
	}
	return 0;
}

static int check_pointer(struct hfe_msg *m, const uint8_t *p, const struct hfe_limits *lim,
			 struct hfe_err *err)
{
	const struct hfe_input_pointer *ptr = &m->u.pointer;
	uint32_t max_w = lim->max_width < HFE_MAX_DIMENSION ? lim->max_width : HFE_MAX_DIMENSION;
	uint32_t max_h = lim->max_height < HFE_MAX_DIMENSION ? lim->max_height : HFE_MAX_DIMENSION;
	(void)p;

	if (ptr->x >= max_w || ptr->y >= max_h) {
		hfe_err_set(err, HFE_ERR_INVALID_MSG,
			    "INPUT_POINTER: position %u,%u outside the largest scanout %ux%u", ptr->x,
			    ptr->y, max_w, max_h);
		return -1;
	}
	if (ptr->buttons & ~HFE_BUTTONS_ALL) {
		hfe_err_set(err, HFE_ERR_INVALID_MSG, "INPUT_POINTER: buttons 0x%x (mask 0x%x)",
			    ptr->buttons, HFE_BUTTONS_ALL);
		return -1;
	}
	if (ptr->wheel_y < -HFE_MAX_WHEEL || ptr->wheel_y > HFE_MAX_WHEEL ||
	    ptr->wheel_x < -HFE_MAX_WHEEL || ptr->wheel_x > HFE_MAX_WHEEL) {
		hfe_err_set(err, HFE_ERR_INVALID_MSG,
			    "INPUT_POINTER: wheel %d,%d (each -%d..%d notches)", ptr->wheel_x,
			    ptr->wheel_y, HFE_MAX_WHEEL, HFE_MAX_WHEEL);
		return -1;
	}
	return 0;
}

static int check_cursor_shape(struct hfe_msg *m, const uint8_t *p, const struct hfe_limits *lim,
			      struct hfe_err *err)
{
	const struct hfe_cursor_shape *c = &m->u.cursor_shape;
	(void)lim;

	if (c->width < 1 || c->height < 1 || c->width > HFE_CURSOR_MAX ||
	    c->height > HFE_CURSOR_MAX) {
		hfe_err_set(err, HFE_ERR_INVALID_MSG, "CURSOR_SHAPE: size %ux%u (1x1..%ux%u)",
			    c->width, c->height, HFE_CURSOR_MAX, HFE_CURSOR_MAX);
		return -1;
	}
	if (c->hot_x >= c->width || c->hot_y >= c->height) {
		hfe_err_set(err, HFE_ERR_INVALID_MSG,
			    "CURSOR_SHAPE: hot spot %u,%u outside the %ux%u image", c->hot_x,
			    c->hot_y, c->width, c->height);
		return -1;
	}
	size_t have = m->hdr.payload_size - sizeof(struct wire_cursor_shape);
	if (have != (size_t)c->width * c->height * 4) {
		hfe_err_set(err, HFE_ERR_INVALID_MSG,
			    "CURSOR_SHAPE: %zu pixel bytes, a %ux%u image has %u", have, c->width,
			    c->height, c->width * c->height * 4);
		return -1;
	}
	m->data = p + sizeof(struct wire_cursor_shape);
	m->data_len = have;
	return 0;
}

static int check_cursor_pos(struct hfe_msg *m, const uint8_t *p, const struct hfe_limits *lim,
			    struct hfe_err *err)
{
	(void)p;
	(void)lim;
	if (m->u.cursor_pos.visible > 1) {
		hfe_err_set(err, HFE_ERR_INVALID_MSG, "CURSOR_POSITION: visible %u (0 or 1)",
			    m->u.cursor_pos.visible);
		return -1;
	}
	return 0;
}

/* The builder's side of the same rule: count capped, unused slots sent as 0. */
static void finish_hello_resp(const struct hfe_msg *m, uint8_t *body)
{
	uint32_t count = m->u.hello_resp.format_count;

	if (count > HFE_HELLO_MAX_FORMATS)
		count = HFE_HELLO_MAX_FORMATS;
	hfe_wr32(body + offsetof(struct wire_hello_resp, format_count), count);
	memset(body + offsetof(struct wire_hello_resp, formats) + 4 * count, 0,
	       4 * (HFE_HELLO_MAX_FORMATS - count));
}

/* ---- the message table ---- */

/* What may follow the fixed body. */
enum tail {
	TAIL_NONE,   /* payload_size is exactly the body size */
	TAIL_PIXELS, /* pixels, present iff HFE_FLAG_PIXEL_DATA (FRAME_REQUEST) */
	TAIL_NALS,   /* nal_count x (u32 size, bytes) (FRAME_RESPONSE) */
	TAIL_IMAGE,  /* width x height x 4 bytes (CURSOR_SHAPE) */
};

struct msg_desc {
	uint8_t type;
	const char *name;
	enum hfe_role receiver; /* the side that may receive it */
	uint8_t since;          /* first protocol version that has it */
	enum tail tail;
	uint8_t flags; /* header flags it may carry beyond the tail's */
	uint32_t body; /* fixed body size: sizeof its wire struct */
	const struct field *fields;
	size_t nfields;
	/* Rules on the decoded values; may set data/data_len. NULL: none. */
	int (*check)(struct hfe_msg *m, const uint8_t *payload, const struct hfe_limits *lim,
		     struct hfe_err *err);
	/* Writes what the field list cannot say. NULL: nothing. */
	void (*finish)(const struct hfe_msg *m, uint8_t *body);
};

#define BODY(m) sizeof(struct wire_##m), m##_fields, COUNT(m##_fields)
#define NO_BODY 0, NULL, 0
#define MSG(T, to, since, tail, body, check, finish) \
	{ HFE_MSG_##T, #T, HFE_ROLE_##to, since, tail, 0, body, check, finish }
#define MSG_FLAGS(T, to, since, flags, body) \
	{ HFE_MSG_##T, #T, HFE_ROLE_##to, since, TAIL_NONE, flags, body, NULL, NULL }

static const struct msg_desc messages[] = {
	/* type          receiver since tail     body                   check   finish */
	MSG(FRAME_REQUEST, HOST, 1, TAIL_PIXELS, BODY(frame_req), check_frame_req, NULL),
	MSG(FRAME_RESPONSE, CLIENT, 1, TAIL_NALS, BODY(frame_resp), check_frame_resp, NULL),
	MSG(KEYFRAME_REQ, HOST, 1, TAIL_NONE, NO_BODY, NULL, NULL),
	MSG(CONFIG_REQ, HOST, 1, TAIL_NONE, BODY(config_req), check_config_req, NULL),
	MSG(CONFIG_RESP, CLIENT, 2, TAIL_NONE, BODY(config_resp), NULL, NULL),
	MSG(PING, HOST, 1, TAIL_NONE, NO_BODY, NULL, NULL),
	MSG(PONG, CLIENT, 1, TAIL_NONE, NO_BODY, NULL, NULL),
	/* ENABLE's values are a request, judged by the hub (scanout.c) */
	MSG(ENABLE_SCANOUT, HOST, 1, TAIL_NONE, BODY(enable_scanout), NULL, NULL),
	MSG(DISABLE_SCANOUT, HOST, 1, TAIL_NONE, BODY(scanout_id), NULL, NULL),
	MSG(SCANOUT_RESP, CLIENT, 1, TAIL_NONE, BODY(scanout_resp), NULL, NULL),
	/* CURSOR is v2 only: conn.c refuses it from a v1 peer */
	MSG_FLAGS(SUBSCRIBE, HOST, 1, HFE_FLAG_CURSOR, BODY(scanout_id)),
	MSG(SUBSCRIBE_RESP, CLIENT, 1, TAIL_NONE, BODY(subscribe_resp), NULL, NULL),
	MSG(HELLO, HOST, 2, TAIL_NONE, BODY(hello), check_hello, NULL),
	MSG(HELLO_RESP, CLIENT, 2, TAIL_NONE, BODY(hello_resp), check_hello_resp,
	    finish_hello_resp),
	MSG(STATS_REQ, HOST, 2, TAIL_NONE, NO_BODY, NULL, NULL),
	MSG(STATS_RESP, CLIENT, 2, TAIL_NONE, BODY(stats), NULL, NULL),
	/* who may inject is the host's business (host.c), not the wire's */
	MSG(INPUT_KEY, HOST, 2, TAIL_NONE, BODY(key), check_key, NULL),
	MSG(INPUT_POINTER, HOST, 2, TAIL_NONE, BODY(pointer), check_pointer, NULL),
	MSG(CURSOR_SHAPE, CLIENT, 2, TAIL_IMAGE, BODY(cursor_shape), check_cursor_shape, NULL),
	MSG(CURSOR_POSITION, CLIENT, 2, TAIL_NONE, BODY(cursor_pos), check_cursor_pos, NULL),
	MSG(ERROR, CLIENT, 1, TAIL_NONE, BODY(error), NULL, NULL),
};

static const struct msg_desc *msg_desc(uint8_t type)
{
	for (size_t i = 0; i < COUNT(messages); i++)
		if (messages[i].type == type)
			return &messages[i];
	return NULL;
}

const char *hfe_msg_type_name(uint8_t type)
{
	const struct msg_desc *d = msg_desc(type);
	return d ? d->name : NULL;
}

unsigned hfe_msg_min_version(uint8_t type)
{
	const struct msg_desc *d = msg_desc(type);
	return d ? d->since : 0;
}

/* ---- header ---- */

int hfe_header_parse(const uint8_t buf[HFE_HEADER_SIZE], enum hfe_role role,
		     const struct hfe_limits *lim, struct hfe_header *out, struct hfe_err *err)
{
	decode(header_fields, COUNT(header_fields), buf, out);

	if (out->magic != HFE_MAGIC) {
		hfe_err_set(err, HFE_ERR_INVALID_MSG, "bad magic 0x%08x (expected 0x%08x 'HXFR')",
			    out->magic, HFE_MAGIC);
		return -1;
	}
	const struct msg_desc *d = msg_desc(out->type);
	if (!d) {
		hfe_err_set(err, HFE_ERR_INVALID_MSG, "unknown message type 0x%02x", out->type);
		return -1;
	}
	if (d->receiver != role) {
		hfe_err_set(err, HFE_ERR_INVALID_MSG, "%s (0x%02x) is not sent %s", d->name,
			    out->type,
			    role == HFE_ROLE_HOST ? "by a client to a host" : "by a host to a client");
		return -1;
	}
	uint8_t allowed = d->flags | (d->tail == TAIL_PIXELS ? HFE_FLAG_PIXEL_DATA : 0);
	if (out->flags & ~allowed) {
		hfe_err_set(err, HFE_ERR_INVALID_MSG, "%s: invalid flags 0x%02x", d->name,
			    out->flags);
		return -1;
	}

	uint32_t size = out->payload_size;
	bool exact = d->tail == TAIL_NONE ||
		     (d->tail == TAIL_PIXELS && !(out->flags & HFE_FLAG_PIXEL_DATA));
	if (exact && size != d->body) {
		hfe_err_set(err, HFE_ERR_INVALID_MSG, "%s: payload_size %u, expected %u", d->name,
			    size, d->body);
		return -1;
	}
	if (!exact && size <= d->body && d->tail == TAIL_PIXELS) {
		hfe_err_set(err, HFE_ERR_INVALID_MSG,
			    "%s: PIXEL_DATA set but payload_size %u leaves no pixels", d->name,
			    size);
		return -1;
	}
	if (!exact && size < d->body) {
		hfe_err_set(err, HFE_ERR_INVALID_MSG, "%s: payload_size %u below the body size %u",
			    d->name, size, d->body);
		return -1;
	}
	if (d->tail == TAIL_IMAGE && size - d->body > 4u * HFE_CURSOR_MAX * HFE_CURSOR_MAX) {
		hfe_err_set(err, HFE_ERR_INVALID_MSG,
			    "%s: payload_size %u is more than the largest image (%ux%u)", d->name,
			    size, HFE_CURSOR_MAX, HFE_CURSOR_MAX);
		return -1;
	}
	if (size > lim->max_payload) {
		hfe_err_set(err, HFE_ERR_TOO_LARGE, "%s: payload_size %u exceeds the limit %u",
			    d->name, size, lim->max_payload);
		return -1;
	}
	return 0;
}

/* ---- bodies ---- */

/* Strings from a client must carry their NUL; a host's are only cut to the
 * field, since v1 hosts may fill it whole (docs/protocol.md). */
static int check_strings(const struct msg_desc *d, const uint8_t *p, struct hfe_err *err)
{
	if (d->receiver != HFE_ROLE_HOST)
		return 0;
	for (size_t i = 0; i < d->nfields; i++) {
		const struct field *f = &d->fields[i];
		if (f->kind == FIELD_STR && !memchr(p + f->wire, '\0', f->count)) {
			hfe_err_set(err, HFE_ERR_INVALID_MSG, "%s %s is not NUL-terminated",
				    d->name, f->name);
			return -1;
		}
	}
	return 0;
}

int hfe_msg_parse(const struct hfe_header *hdr, const uint8_t *payload, enum hfe_role role,
		  const struct hfe_limits *lim, struct hfe_msg *out, struct hfe_err *err)
{
	const struct msg_desc *d = msg_desc(hdr->type);

	memset(out, 0, sizeof(*out));
	out->hdr = *hdr;
	/* The header must have been validated for this role: re-check the two
	 * facts the body decoding relies on, cheaply, rather than trust callers. */
	if (!d || d->receiver != role || hdr->payload_size < d->body) {
		hfe_err_set(err, HFE_ERR_INTERNAL, "message parsed without a validated header");
		return -1;
	}
	decode(d->fields, d->nfields, payload, out);
	if (d->check && d->check(out, payload, lim, err) < 0)
		return -1;
	return check_strings(d, payload, err);
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

size_t hfe_msg_build(const struct hfe_msg *msg, size_t extra_len, uint8_t *buf, size_t cap)
{
	const struct msg_desc *d = msg_desc(msg->hdr.type);
	if (!d)
		return 0;

	struct hfe_header hdr = msg->hdr;
	size_t body = d->body; /* what this call writes after the header */
	bool nal_prefix = false;
	switch (d->tail) {
	case TAIL_NONE:
		if (extra_len)
			return 0;
		break;
	case TAIL_IMAGE:
		break;
	case TAIL_PIXELS:
		hdr.flags = extra_len ? (hdr.flags | HFE_FLAG_PIXEL_DATA)
				      : (hdr.flags & ~HFE_FLAG_PIXEL_DATA);
		break;
	case TAIL_NALS:
		/* nal_count 1: the builder writes the single size prefix. */
		if (msg->u.frame_resp.nal_count == 1) {
			if (extra_len > UINT32_MAX - 4)
				return 0;
			nal_prefix = true;
			body += 4;
		} else if (msg->u.frame_resp.nal_count != 0 || extra_len != 0) {
			return 0; /* several NALs: not produced by this library */
		}
		break;
	}
	if (extra_len > UINT32_MAX - body || cap < HFE_HEADER_SIZE + body)
		return 0;

	hdr.magic = HFE_MAGIC;
	hdr.payload_size = (uint32_t)(body + extra_len);
	memset(buf, 0, HFE_HEADER_SIZE + body); /* reserved bytes go out as 0 */
	encode(header_fields, COUNT(header_fields), &hdr, buf);

	uint8_t *p = buf + HFE_HEADER_SIZE;
	encode(d->fields, d->nfields, msg, p);
	if (nal_prefix)
		hfe_wr32(p + d->body, (uint32_t)extra_len);
	if (d->finish)
		d->finish(msg, p);
	return HFE_HEADER_SIZE + body;
}
