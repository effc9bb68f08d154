/* SPDX-License-Identifier: LGPL-2.1-or-later */
#include "msg_compare.h"

#include <inttypes.h>
#include <stdio.h>
#include <string.h>

/* At most 64 characters of a string field, never past its end. */
#define SHOWN(x) (int)(sizeof(x) < 64 ? sizeof(x) : 64)

bool msg_fields_equal(const struct hfe_msg *a, const struct hfe_msg *b, char *why,
		      size_t why_len)
{
#define F(x)                                                                                \
	do {                                                                                \
		if (a->x != b->x) {                                                         \
			snprintf(why, why_len, "field %s: %" PRId64 " != %" PRId64, #x,     \
				 (int64_t)a->x, (int64_t)b->x);                             \
			return false;                                                       \
		}                                                                           \
	} while (0)
#define S(x)                                                                                \
	do {                                                                                \
		if (strncmp(a->x, b->x, sizeof(a->x)) != 0) {                               \
			snprintf(why, why_len, "field %s: \"%.*s\" != \"%.*s\"", #x,        \
				 SHOWN(a->x), a->x, SHOWN(b->x), b->x);                     \
			return false;                                                       \
		}                                                                           \
	} while (0)
	F(hdr.magic);
	F(hdr.type);
	F(hdr.flags);
	F(hdr.session_id);
	F(hdr.payload_size);
	F(data_len);
	switch (a->hdr.type) {
	case HFE_MSG_FRAME_REQUEST:
		F(u.frame_req.resource_id);
		F(u.frame_req.width);
		F(u.frame_req.height);
		F(u.frame_req.format);
		F(u.frame_req.stride);
		F(u.frame_req.pts);
		F(u.frame_req.duration);
		F(u.frame_req.force_keyframe);
		break;
	case HFE_MSG_FRAME_RESPONSE:
		F(u.frame_resp.pts);
		F(u.frame_resp.dts);
		F(u.frame_resp.is_keyframe);
		F(u.frame_resp.nal_count);
		break;
	case HFE_MSG_CONFIG_REQ:
		F(u.config_req.width);
		F(u.config_req.height);
		F(u.config_req.bitrate);
		F(u.config_req.fps_num);
		F(u.config_req.fps_den);
		F(u.config_req.profile);
		F(u.config_req.level);
		F(u.config_req.realtime);
		break;
	case HFE_MSG_CONFIG_RESP:
		F(u.config_resp.width);
		F(u.config_resp.height);
		F(u.config_resp.bitrate);
		F(u.config_resp.fps_num);
		F(u.config_resp.fps_den);
		F(u.config_resp.profile);
		F(u.config_resp.level);
		F(u.config_resp.realtime);
		S(u.config_resp.encoder);
		break;
	case HFE_MSG_ENABLE_SCANOUT:
		F(u.enable_scanout.scanout_id);
		F(u.enable_scanout.width);
		F(u.enable_scanout.height);
		F(u.enable_scanout.refresh_rate);
		break;
	case HFE_MSG_DISABLE_SCANOUT:
	case HFE_MSG_SUBSCRIBE:
		F(u.scanout_id);
		break;
	case HFE_MSG_SCANOUT_RESP:
		F(u.scanout_resp.scanout_id);
		F(u.scanout_resp.success);
		S(u.scanout_resp.connector);
		break;
	case HFE_MSG_SUBSCRIBE_RESP:
		F(u.subscribe_resp.scanout_id);
		F(u.subscribe_resp.success);
		break;
	case HFE_MSG_HELLO:
		F(u.hello.version_min);
		F(u.hello.version_max);
		F(u.hello.flags);
		S(u.hello.client_name);
		break;
	case HFE_MSG_HELLO_RESP:
		F(u.hello_resp.version);
		F(u.hello_resp.features);
		F(u.hello_resp.codecs);
		F(u.hello_resp.sources);
		F(u.hello_resp.max_width);
		F(u.hello_resp.max_height);
		F(u.hello_resp.max_payload);
		F(u.hello_resp.max_inflight);
		F(u.hello_resp.format_count);
		for (unsigned i = 0; i < HFE_HELLO_MAX_FORMATS; i++)
			F(u.hello_resp.formats[i]);
		S(u.hello_resp.server_name);
		break;
	case HFE_MSG_STATS_RESP:
		F(u.stats.frames_received);
		F(u.stats.frames_encoded);
		F(u.stats.frames_dropped);
		F(u.stats.keyframes);
		F(u.stats.bytes_received);
		F(u.stats.bytes_sent);
		F(u.stats.encode_us_avg);
		F(u.stats.encode_us_max);
		F(u.stats.inflight);
		break;
	case HFE_MSG_INPUT_KEY:
		F(u.key.code);
		F(u.key.down);
		break;
	case HFE_MSG_INPUT_POINTER:
		F(u.pointer.x);
		F(u.pointer.y);
		F(u.pointer.buttons);
		F(u.pointer.wheel_y);
		F(u.pointer.wheel_x);
		break;
	case HFE_MSG_CURSOR_SHAPE:
		F(u.cursor_shape.width);
		F(u.cursor_shape.height);
		F(u.cursor_shape.hot_x);
		F(u.cursor_shape.hot_y);
		break;
	case HFE_MSG_CURSOR_POSITION:
		F(u.cursor_pos.x);
		F(u.cursor_pos.y);
		F(u.cursor_pos.visible);
		break;
	case HFE_MSG_ERROR:
		F(u.error.code);
		S(u.error.message);
		break;
	default:
		break;
	}
	return true;
#undef F
#undef S
}
