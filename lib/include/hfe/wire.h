/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * HXFR wire format: message layouts, parsing, validation and building.
 *
 * Pure functions over byte buffers: nothing here touches a socket, allocates
 * or keeps state. Every number that comes from the peer is checked here once;
 * the decoded structs handed out afterwards can be trusted by the rest of the
 * library. docs/protocol.md is the normative description.
 */
#ifndef HFE_WIRE_H
#define HFE_WIRE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

#define HFE_MAGIC 0x52465848u /* "HXFR" in little-endian byte order */
#define HFE_HEADER_SIZE 12u

/* Protocol versions. v1 has no version field: a peer that does not open with
 * HELLO speaks v1. */
#define HFE_PROTO_V1 1u
#define HFE_PROTO_V2 2u

enum hfe_msg_type {
	HFE_MSG_FRAME_REQUEST = 0x01,
	HFE_MSG_FRAME_RESPONSE = 0x02,
	HFE_MSG_KEYFRAME_REQ = 0x03,
	HFE_MSG_CONFIG_REQ = 0x04,
	HFE_MSG_CONFIG_RESP = 0x05, /* v2 only: reply to CONFIG_REQ */
	HFE_MSG_PING = 0x10,
	HFE_MSG_PONG = 0x11,
	HFE_MSG_ENABLE_SCANOUT = 0x20,
	HFE_MSG_DISABLE_SCANOUT = 0x21,
	HFE_MSG_SCANOUT_RESP = 0x22,
	HFE_MSG_SUBSCRIBE = 0x30,
	HFE_MSG_SUBSCRIBE_RESP = 0x31,
	HFE_MSG_HELLO = 0x40,      /* v2: client -> host, must be the first message */
	HFE_MSG_HELLO_RESP = 0x41, /* v2: host -> client */
	HFE_MSG_STATS_REQ = 0x50,  /* v2 */
	HFE_MSG_STATS_RESP = 0x51, /* v2 */
	HFE_MSG_INPUT_KEY = 0x60,     /* v2: a key for the VM (control listeners only) */
	HFE_MSG_INPUT_POINTER = 0x61, /* v2: pointer position, buttons, wheel */
	HFE_MSG_CURSOR_SHAPE = 0x70,    /* v2: host -> cursor subscriber, the cursor image */
	HFE_MSG_CURSOR_POSITION = 0x71, /* v2: host -> cursor subscriber, where it is */
	HFE_MSG_ERROR = 0xFF,
};

/* Header flags. */
#define HFE_FLAG_PIXEL_DATA 0x01u /* FRAME_REQUEST: raw pixels follow the body */
/* SUBSCRIBE (v2 only): send this subscriber the scanout's hardware cursor as
 * CURSOR_SHAPE / CURSOR_POSITION messages instead of in the picture. */
#define HFE_FLAG_CURSOR 0x02u

/* Error codes carried by ERROR messages (v1 codes keep their v1 values). */
enum hfe_error_code {
	HFE_OK = 0,
	HFE_ERR_INVALID_MSG = -1,
	HFE_ERR_RESOURCE_NOT_FOUND = -2,
	HFE_ERR_UNSUPPORTED = -3, /* v2: format, codec or feature not offered */
	HFE_ERR_TOO_LARGE = -4,   /* v2: a limit was exceeded */
	HFE_ERR_ENCODE_FAILED = -5,
	HFE_ERR_NOT_CONFIGURED = -6,
	HFE_ERR_PROTOCOL = -7, /* v2: message not allowed in this state or direction */
	HFE_ERR_BUSY = -8,     /* v2: too many clients / sessions */
	HFE_ERR_TIMEOUT = -9,  /* v2: peer stalled in the middle of a message */
	HFE_ERR_VERSION = -10, /* v2: no common protocol version */
	HFE_ERR_SHUTDOWN = -11, /* v2: host is shutting down */
	HFE_ERR_DENIED = -12,   /* v2: not permitted (input without control, or unwatched) */
	HFE_ERR_INTERNAL = -99,
};

/* Pixel formats (DRM fourcc codes). */
#define HFE_FOURCC(a, b, c, d) \
	((uint32_t)(a) | ((uint32_t)(b) << 8) | ((uint32_t)(c) << 16) | ((uint32_t)(d) << 24))
#define HFE_FMT_ARGB8888 HFE_FOURCC('A', 'R', '2', '4') /* bytes B,G,R,A */
#define HFE_FMT_XRGB8888 HFE_FOURCC('X', 'R', '2', '4') /* bytes B,G,R,x */
#define HFE_FMT_ABGR8888 HFE_FOURCC('A', 'B', '2', '4') /* bytes R,G,B,A */
#define HFE_FMT_XBGR8888 HFE_FOURCC('X', 'B', '2', '4') /* bytes R,G,B,x */
#define HFE_FMT_NV12 HFE_FOURCC('N', 'V', '1', '2')
#define HFE_FMT_I420 HFE_FOURCC('Y', 'U', '1', '2')

/* Codec bits (HELLO_RESP.codecs). */
#define HFE_CODEC_H264 0x01u
#define HFE_CODEC_HEVC 0x02u

/* Frame source bits (HELLO_RESP.sources). */
#define HFE_SOURCE_PIXELS 0x01u
#define HFE_SOURCE_RESOURCE 0x02u
#define HFE_SOURCE_SCANOUT 0x04u

/* Fixed body sizes (bytes after the 12-byte header). */
#define HFE_FRAME_REQUEST_SIZE 44u
#define HFE_FRAME_RESPONSE_SIZE 24u /* followed by nal_count x (u32 size + bytes) */
#define HFE_CONFIG_REQ_SIZE 28u
#define HFE_CONFIG_RESP_SIZE 56u
#define HFE_ENABLE_SCANOUT_SIZE 16u
#define HFE_DISABLE_SCANOUT_SIZE 4u
#define HFE_SCANOUT_RESP_SIZE 72u
#define HFE_SUBSCRIBE_SIZE 4u
#define HFE_SUBSCRIBE_RESP_SIZE 8u
#define HFE_HELLO_SIZE 40u
#define HFE_HELLO_RESP_SIZE 96u
#define HFE_STATS_RESP_SIZE 64u
#define HFE_ERROR_SIZE 260u
#define HFE_INPUT_KEY_SIZE 8u
#define HFE_INPUT_POINTER_SIZE 16u
#define HFE_CURSOR_SHAPE_SIZE 16u /* followed by width x height x 4 pixel bytes */
#define HFE_CURSOR_POSITION_SIZE 12u

#define HFE_ERROR_MSG_LEN 256u
#define HFE_CONNECTOR_LEN 64u
#define HFE_NAME_LEN 32u
#define HFE_HELLO_MAX_FORMATS 8u

/* Hard protocol limits (the configurable limits below can only be lower). */
#define HFE_MIN_DIMENSION 16u
#define HFE_MAX_DIMENSION 16384u
#define HFE_MAX_NAL_COUNT 1024u
#define HFE_MAX_SCANOUTS 16u
#define HFE_CURSOR_MAX 256u /* largest cursor image, either side */

/* Input (INPUT_KEY, INPUT_POINTER). Keys are Linux evdev codes
 * (linux/input-event-codes.h), 1 .. HFE_KEY_MAX. Buttons are the bits of the
 * DOM's MouseEvent.buttons. Wheel: notches per message, +y down, +x right. */
#define HFE_KEY_MAX 0x2ffu
#define HFE_BUTTON_LEFT 0x01u
#define HFE_BUTTON_RIGHT 0x02u
#define HFE_BUTTON_MIDDLE 0x04u
#define HFE_BUTTON_BACK 0x08u
#define HFE_BUTTON_FORWARD 0x10u
#define HFE_BUTTONS_ALL 0x1fu
#define HFE_MAX_WHEEL 64

/* HELLO_RESP.features: what this connection may do beyond the basics. */
#define HFE_FEATURE_INPUT 0x0001u /* INPUT_* accepted (a control listener) */
#define HFE_FEATURE_CURSOR 0x0002u /* SUBSCRIBE may carry HFE_FLAG_CURSOR */

/* Limits a receiver enforces; configurable per endpoint. */
struct hfe_limits {
	uint32_t max_width;   /* <= HFE_MAX_DIMENSION */
	uint32_t max_height;  /* <= HFE_MAX_DIMENSION */
	uint32_t max_payload; /* largest payload_size accepted, any message */
};

/* Defaults: 8K frames, 8192 x 8192 x 4 bytes + body. */
void hfe_limits_default(struct hfe_limits *lim);

/* Who is receiving: decides which message types are legal. */
enum hfe_role {
	HFE_ROLE_HOST,   /* receives client -> host messages */
	HFE_ROLE_CLIENT, /* receives host -> client messages */
};

struct hfe_header {
	uint32_t magic;
	uint8_t type;
	uint8_t flags;
	uint16_t session_id;
	uint32_t payload_size;
};

struct hfe_frame_request {
	uint32_t resource_id;
	uint32_t width;
	uint32_t height;
	uint32_t format; /* fourcc */
	uint32_t stride; /* plane 0 */
	int64_t pts;      /* ns */
	int64_t duration; /* ns */
	uint8_t force_keyframe;
};

struct hfe_frame_response {
	int64_t pts;
	int64_t dts;
	uint8_t is_keyframe;
	uint32_t nal_count;
};

struct hfe_config_req {
	uint32_t width; /* 0: take from the first frame */
	uint32_t height;
	uint32_t bitrate; /* bit/s, 0: host default */
	uint32_t fps_num;
	uint32_t fps_den;
	uint8_t profile; /* 0 (host default), 66, 77, 100 */
	uint8_t level;   /* x10, 0: encoder chooses */
	uint8_t realtime;
};

struct hfe_config_resp {
	uint32_t width;
	uint32_t height;
	uint32_t bitrate;
	uint32_t fps_num;
	uint32_t fps_den;
	uint8_t profile;
	uint8_t level;
	uint8_t realtime;
	char encoder[HFE_NAME_LEN]; /* NUL-terminated */
};

struct hfe_enable_scanout {
	uint32_t scanout_id;
	uint32_t width;
	uint32_t height;
	uint32_t refresh_rate;
};

struct hfe_scanout_resp {
	uint32_t scanout_id;
	uint32_t success;
	char connector[HFE_CONNECTOR_LEN]; /* NUL-terminated */
};

struct hfe_subscribe_resp {
	uint32_t scanout_id;
	uint32_t success;
};

struct hfe_hello {
	uint16_t version_min;
	uint16_t version_max;
	uint32_t flags; /* reserved, 0 */
	char client_name[HFE_NAME_LEN]; /* NUL-terminated */
};

struct hfe_hello_resp {
	uint16_t version;
	uint32_t codecs;  /* HFE_CODEC_* */
	uint32_t sources; /* HFE_SOURCE_* */
	uint32_t max_width;
	uint32_t max_height;
	uint32_t max_payload;
	uint32_t max_inflight;
	uint32_t format_count; /* <= HFE_HELLO_MAX_FORMATS */
	uint32_t formats[HFE_HELLO_MAX_FORMATS];
	char server_name[HFE_NAME_LEN]; /* NUL-terminated, e.g. "helix-frame-export 0.1.0" */
	uint16_t features; /* HFE_FEATURE_* (0 from hosts before input); last: the
			    * wire has it after version */
};

struct hfe_stats {
	uint64_t frames_received;
	uint64_t frames_encoded;
	uint64_t frames_dropped;
	uint64_t keyframes;
	uint64_t bytes_received;
	uint64_t bytes_sent;
	uint32_t encode_us_avg;
	uint32_t encode_us_max;
	uint32_t inflight;
};

struct hfe_input_key {
	uint32_t code; /* evdev KEY_*, 1 .. HFE_KEY_MAX */
	uint8_t down;  /* 0 or 1 */
};

/* The pointer's whole state: absolute position in the scanout's pixels,
 * buttons held, and wheel notches since the last message. */
struct hfe_input_pointer {
	uint32_t x, y;
	uint32_t buttons; /* HFE_BUTTON_* */
	int16_t wheel_y;  /* + down, |n| <= HFE_MAX_WHEEL */
	int16_t wheel_x;  /* + right */
};

/* CURSOR_SHAPE: the image follows as msg->data, width x height pixels of
 * 4 bytes B,G,R,A (ARGB8888 little-endian words), straight alpha. */
struct hfe_cursor_shape {
	uint32_t width, height; /* 1 .. HFE_CURSOR_MAX */
	uint32_t hot_x, hot_y;  /* the hot spot, inside the image */
};

/* CURSOR_POSITION: the image's top-left corner in the scanout's pixels (may
 * be partly off the scanout), and whether the cursor is shown at all. */
struct hfe_cursor_position {
	int32_t x, y;
	uint8_t visible; /* 0 or 1 */
};

struct hfe_error_msg {
	int32_t code;
	char message[HFE_ERROR_MSG_LEN]; /* NUL-terminated */
};

/* One decoded message. `data` points into the caller's payload buffer:
 *  FRAME_REQUEST with PIXEL_DATA: the pixel bytes (data_len >= frame size);
 *  FRAME_RESPONSE: the NAL area after the body, already validated so that
 *  hfe_nal_next() walks exactly nal_count units;
 *  CURSOR_SHAPE: the image (data_len = width x height x 4 exactly). */
struct hfe_msg {
	struct hfe_header hdr;
	union {
		struct hfe_frame_request frame_req;
		struct hfe_frame_response frame_resp;
		struct hfe_config_req config_req;
		struct hfe_config_resp config_resp;
		struct hfe_enable_scanout enable_scanout;
		uint32_t scanout_id; /* DISABLE_SCANOUT, SUBSCRIBE */
		struct hfe_scanout_resp scanout_resp;
		struct hfe_subscribe_resp subscribe_resp;
		struct hfe_hello hello;
		struct hfe_hello_resp hello_resp;
		struct hfe_stats stats;
		struct hfe_input_key key;
		struct hfe_input_pointer pointer;
		struct hfe_cursor_shape cursor_shape;
		struct hfe_cursor_position cursor_pos;
		struct hfe_error_msg error;
	} u;
	const uint8_t *data;
	size_t data_len;
};

/* Validation failure: the code to send back and a human-readable reason. */
struct hfe_err {
	int32_t code;
	char msg[HFE_ERROR_MSG_LEN];
};

void hfe_err_set(struct hfe_err *err, int32_t code, const char *fmt, ...)
	__attribute__((format(printf, 3, 4)));

/* Name of a message type ("FRAME_REQUEST"), or NULL if unknown. */
const char *hfe_msg_type_name(uint8_t type);
/* First protocol version with this message type (HFE_PROTO_V1 or _V2), or 0
 * if unknown: the "since" column of docs/protocol.md. */
unsigned hfe_msg_min_version(uint8_t type);
/* Name of an error code ("INVALID_MSG"), never NULL. */
const char *hfe_error_name(int32_t code);
/* Short name of a fourcc ("XR24"), written to buf (>= 5 bytes). */
const char *hfe_fourcc_str(uint32_t fourcc, char buf[5]);

/*
 * Validate a 12-byte header received by `role`: magic, message type legal in
 * that direction, flags legal for the type, payload_size within the type's
 * bounds and lim->max_payload. Returns 0 or -1 with err filled.
 */
int hfe_header_parse(const uint8_t buf[HFE_HEADER_SIZE], enum hfe_role role,
		     const struct hfe_limits *lim, struct hfe_header *out, struct hfe_err *err);

/*
 * Decode and validate a payload of exactly hdr->payload_size bytes (the
 * header must have come from hfe_header_parse with the same role and limits).
 * Every field is checked: dimensions, strides, formats, counts, flags and
 * enums. Reserved bytes are ignored (deployed v1 guests are not known to zero
 * them). Strings from a client must be NUL-terminated; strings from a host
 * are truncated to fit (v1 hosts may fill the whole field). Returns 0 or -1
 * with err filled.
 */
int hfe_msg_parse(const struct hfe_header *hdr, const uint8_t *payload, enum hfe_role role,
		  const struct hfe_limits *lim, struct hfe_msg *out, struct hfe_err *err);

/*
 * Bytes a frame of this format needs, given plane 0's stride (I420 chroma
 * stride is (stride + 1) / 2, planes contiguous; NV12's UV plane starts at
 * stride * height). Overflow-safe. Returns 0 and sets *size, or -1 with err
 * filled if the format, dimensions (even, within limits) or stride are bad.
 */
int hfe_frame_size(uint32_t format, uint32_t width, uint32_t height, uint32_t stride,
		   const struct hfe_limits *lim, uint64_t *size, struct hfe_err *err);

/* True for formats this library can encode from. */
bool hfe_format_supported(uint32_t format);

/*
 * Build a message: header + fixed body into buf (cap bytes). `extra_len` is
 * the number of bytes the caller sends right after (pixels of a
 * FRAME_REQUEST, a CURSOR_SHAPE's image, or for FRAME_RESPONSE the access
 * unit: with nal_count == 1 the builder writes the u32 size prefix itself, so
 * extra_len is the access unit's size). payload_size is set accordingly. Returns bytes written, or 0
 * if cap is too small, the type is unknown, the sizes overflow, or a
 * FRAME_RESPONSE has nal_count > 1 (this library always sends one access
 * unit as one NAL entry).
 */
size_t hfe_msg_build(const struct hfe_msg *msg, size_t extra_len, uint8_t *buf, size_t cap);

/* Largest header + body hfe_msg_build can write (for stack buffers). */
#define HFE_MSG_MAX_PREFIX (HFE_HEADER_SIZE + HFE_ERROR_SIZE + 4u)

/* Walk the NAL area of a validated FRAME_RESPONSE. *pos starts at 0.
 * Returns true and sets nal/len for each unit, false at the end. */
bool hfe_nal_next(const struct hfe_msg *msg, size_t *pos, const uint8_t **nal, uint32_t *len);

#ifdef __cplusplus
}
#endif
#endif
