/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * Video encoders behind a small ops table. The libavcodec backend is the one
 * users use; its encoder is chosen by name (libx264 by default; h264_nvenc,
 * h264_vaapi, h264_videotoolbox, hevc_* where the host has them).
 *
 * Contract: one Annex-B access unit per packet, SPS/PPS (VPS for HEVC) in
 * front of every IDR, no B-frames, IDR on request.
 */
#ifndef HFE_ENCODER_H
#define HFE_ENCODER_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "hfe/image.h"
#include "hfe/wire.h"

#ifdef __cplusplus
extern "C" {
#endif

#define HFE_DEFAULT_ENCODER "libx264"

struct hfe_encoder_params {
	char name[HFE_NAME_LEN]; /* libavcodec encoder name; "" = HFE_DEFAULT_ENCODER */
	uint32_t width;
	uint32_t height;
	uint32_t bitrate; /* bit/s */
	uint32_t fps_num;
	uint32_t fps_den;
	uint32_t gop;     /* frames between IDRs; 0 = only on request */
	uint8_t profile;  /* 66 constrained baseline (default), 77 main, 100 high */
	uint8_t level;    /* x10, 0 = auto */
	char preset[16];  /* x264: "ultrafast" (default) / "superfast" ... */
	char tune[16];    /* x264: "zerolatency" (default) */
	int threads;      /* 0 = auto */
};

/* Defaults: libx264 ultrafast zerolatency, 4 Mbit/s, 30/1 fps, gop 120,
 * constrained baseline; width/height left 0. */
void hfe_encoder_params_default(struct hfe_encoder_params *p);

/* One encoded access unit. `data` is owned by the packet. */
struct hfe_packet {
	uint8_t *data;
	size_t size;
	int64_t frame_index; /* index passed to encode() for the frame it came from */
	bool keyframe;
	void *priv; /* backend's handle; released by hfe_packet_release */
};
void hfe_packet_release(struct hfe_packet *pkt);

struct hfe_encoder;

struct hfe_encoder_ops {
	const char *backend;
	/* Input image format the opened encoder wants (HFE_FMT_I420 or NV12). */
	int (*open)(struct hfe_encoder **out, const struct hfe_encoder_params *p,
		    uint32_t input_format_hint, struct hfe_err *err);
	uint32_t (*input_format)(const struct hfe_encoder *enc);
	/* Submit one image (format == input_format()); index is echoed in packets. */
	int (*encode)(struct hfe_encoder *enc, const struct hfe_image *img, int64_t index,
		      bool force_idr, struct hfe_err *err);
	/* Flush: no more input; remaining packets become available. */
	int (*drain)(struct hfe_encoder *enc, struct hfe_err *err);
	/* Returns 1 with a packet, 0 if none is ready, -1 on error. */
	int (*receive)(struct hfe_encoder *enc, struct hfe_packet *pkt, struct hfe_err *err);
	/* Change the target bitrate without a new stream if the backend can;
	 * returns 0, or -1 if the encoder must be reopened. */
	int (*set_bitrate)(struct hfe_encoder *enc, uint32_t bitrate);
	/* The backend's real encoder name (for CONFIG_RESP and logs). */
	const char *(*name)(const struct hfe_encoder *enc);
	void (*close)(struct hfe_encoder *enc);
};

extern const struct hfe_encoder_ops hfe_encoder_lavc;

/* Is an encoder of that name available here? */
bool hfe_encoder_available(const char *name);
/* Codec bit (HFE_CODEC_*) of a named encoder, 0 if unknown. */
uint32_t hfe_encoder_codec(const char *name);

#ifdef __cplusplus
}
#endif
#endif
