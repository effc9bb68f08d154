/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * hfe-viewer --record: the MP4 writer. See record.h.
 *
 * The access units go into the file as they came (Annex B); the SPS and PPS
 * of the first IDR become the avcC extradata and its SPS gives the track's
 * size, both read with libhfe's H.264 toolkit (hfe/h264.h).
 */
#include "record.h"

#include <errno.h>
#include <inttypes.h>
#include <limits.h>
#include <stdio.h>
#include <string.h>

#include <glib.h>
#include <libavcodec/avcodec.h>
#include <libavformat/avformat.h>
#include <libavutil/mem.h>

#include "hfe/h264.h"
#include "viewer.h"

static bool is_parameter_set(const struct hfe_h264_nal *nal)
{
	return nal->type == HFE_H264_NAL_SPS || nal->type == HFE_H264_NAL_PPS;
}

/* SPS and PPS of an IDR access unit, each behind a 4-byte start code: the
 * MP4 muxer turns this into the avcC box. Returns the size, 0 if missing. */
static size_t extract_parameter_sets(const uint8_t *d, size_t n, uint8_t **out)
{
	struct hfe_h264_nal nal;
	size_t pos = 0, len = 0;
	bool sps = false, pps = false;
	while (hfe_h264_next_nal(d, n, &pos, &nal)) {
		if (!is_parameter_set(&nal))
			continue;
		sps |= nal.type == HFE_H264_NAL_SPS;
		pps |= nal.type == HFE_H264_NAL_PPS;
		len += 4 + nal.size;
	}
	if (!sps || !pps)
		return 0;
	uint8_t *buf = av_mallocz(len + AV_INPUT_BUFFER_PADDING_SIZE);
	if (!buf)
		return 0;
	size_t off = 0;
	pos = 0;
	while (hfe_h264_next_nal(d, n, &pos, &nal)) {
		if (!is_parameter_set(&nal))
			continue;
		memcpy(buf + off, "\0\0\0\1", 4);
		memcpy(buf + off + 4, nal.data, nal.size);
		off += 4 + nal.size;
	}
	*out = buf;
	return len;
}

/* Picture size (cropped) from the first SPS of an access unit. */
static bool probe_size(const uint8_t *d, size_t n, uint32_t *w, uint32_t *h)
{
	struct hfe_h264_nal nal;
	struct hfe_h264_sps sps;
	size_t pos = 0;
	while (hfe_h264_next_nal(d, n, &pos, &nal)) {
		if (nal.type != HFE_H264_NAL_SPS)
			continue;
		if (!hfe_h264_parse_sps_nal(&nal, &sps))
			return false;
		*w = sps.width;
		*h = sps.height;
		return true;
	}
	return false;
}

static const char *av_err(int e, char *buf, size_t len)
{
	av_strerror(e, buf, len);
	return buf;
}

static void recorder_fail(struct recorder *r, const char *what, int e)
{
	char eb[128];
	say("recording to %s failed: %s: %s; not recording any more", r->path, what,
	    av_err(e, eb, sizeof(eb)));
	r->failed = true;
}

/* Open the MP4 at the first IDR: its SPS/PPS become the extradata. */
static int recorder_open(struct recorder *r, const uint8_t *au, size_t n)
{
	uint8_t *extra = NULL;
	size_t extra_len = extract_parameter_sets(au, n, &extra);
	int e;

	if (!extra_len || !probe_size(au, n, &r->width, &r->height)) {
		av_free(extra);
		say("recording to %s failed: the first keyframe has no usable SPS/PPS", r->path);
		r->failed = true;
		return -1;
	}
	e = avformat_alloc_output_context2(&r->oc, NULL, "mp4", r->path);
	if (e < 0 || !r->oc) {
		av_free(extra);
		recorder_fail(r, "cannot set up the MP4 muxer", e < 0 ? e : AVERROR(ENOMEM));
		return -1;
	}
	r->st = avformat_new_stream(r->oc, NULL);
	if (!r->st) {
		av_free(extra);
		recorder_fail(r, "cannot add a stream", AVERROR(ENOMEM));
		return -1;
	}
	AVCodecParameters *par = r->st->codecpar;
	par->codec_type = AVMEDIA_TYPE_VIDEO;
	par->codec_id = AV_CODEC_ID_H264;
	par->width = (int)r->width;
	par->height = (int)r->height;
	par->extradata = extra;
	par->extradata_size = (int)extra_len;
	r->st->time_base = (AVRational){ 1, 90000 };

	e = avio_open(&r->oc->pb, r->path, AVIO_FLAG_WRITE);
	if (e < 0) {
		recorder_fail(r, "cannot create the file", e);
		return -1;
	}
	AVDictionary *opts = NULL;
	/* moov in front: the file plays while it is still being downloaded */
	av_dict_set(&opts, "movflags", "+faststart", 0);
	e = avformat_write_header(r->oc, &opts);
	av_dict_free(&opts);
	if (e < 0) {
		recorder_fail(r, "cannot write the MP4 header", e);
		return -1;
	}
	say("recording %ux%u to %s", r->width, r->height, r->path);
	return 0;
}

/* Write the trailer and close the file (r->path stays). */
static void recorder_finish(struct recorder *r)
{
	char eb[128];
	int e = r->st && r->oc->pb ? av_write_trailer(r->oc) : 0;
	if (e < 0)
		say("recording to %s: finishing the MP4 failed: %s", r->path,
		    av_err(e, eb, sizeof(eb)));
	double secs = r->last_ts > 0 ? (double)r->last_ts * av_q2d(r->st->time_base) : 0;
	if (r->oc->pb)
		avio_closep(&r->oc->pb);
	avformat_free_context(r->oc);
	r->oc = NULL;
	r->st = NULL;
	if (e >= 0 && r->frames)
		say("wrote %" PRIu64 " frames (%.1f s, %ux%u, %" PRIu64 " bytes) to %s", r->frames,
		    secs, r->width, r->height, r->bytes, r->path);
}

/*
 * The picture size changed (a VM switching modes, e.g. from QEMU's 640x480
 * "not initialized" picture to the guest's desktop). An MP4 track has one
 * size, so the part recorded so far moves to NAME-N-WxH.mp4 and NAME.mp4
 * starts again at the new size: nothing is lost, and NAME.mp4 always holds
 * the latest size.
 */
static void recorder_next_part(struct recorder *r)
{
	recorder_finish(r);
	const char *dot = strrchr(r->path, '.');
	size_t base = dot && !strchr(dot, '/') ? (size_t)(dot - r->path) : strlen(r->path);
	char *part = g_strdup_printf("%.*s-%u-%ux%u%s", (int)base, r->path, ++r->parts, r->width,
				     r->height, r->path + base);
	if (rename(r->path, part) == 0)
		say("picture size changed: the %ux%u part is %s; %s goes on at the new size",
		    r->width, r->height, part, r->path);
	else
		say("picture size changed, and %s cannot be moved to %s (%s): it is overwritten",
		    r->path, part, strerror(errno));
	g_free(part);
	r->frames = r->bytes = 0;
}

void recorder_write(struct recorder *r, const uint8_t *au, size_t n, int64_t pts_ns, bool key)
{
	if (r->failed || n == 0 || n > INT_MAX)
		return;
	uint32_t w, h;
	if (r->oc && key && probe_size(au, n, &w, &h) && (w != r->width || h != r->height))
		recorder_next_part(r);
	if (!r->oc) {
		if (!key)
			return; /* an MP4 starts with an IDR */
		if (recorder_open(r, au, n) < 0)
			return;
		r->first_ns = pts_ns;
		r->last_ts = -1;
		r->last_dur = 0;
	}
	/* Host time of the damage, so pauses on a static screen play as pauses.
	 * A re-encode of an unchanged picture may repeat a pts: keep dts rising. */
	int64_t ts = av_rescale_q(pts_ns - r->first_ns, (AVRational){ 1, 1000000000 },
				  r->st->time_base);
	if (ts < r->last_ts - r->last_dur) {
		/* A clock from before: a host on another machine restarted. Go on
		 * one frame after the last. */
		int64_t step = r->last_dur > 0 ? r->last_dur : 1;
		r->first_ns = pts_ns - av_rescale_q(r->last_ts + step, r->st->time_base,
						    (AVRational){ 1, 1000000000 });
		ts = r->last_ts + step;
	}
	if (ts <= r->last_ts)
		ts = r->last_ts + 1;
	if (r->last_ts >= 0)
		r->last_dur = ts - r->last_ts;

	AVPacket *pkt = av_packet_alloc();
	if (!pkt || av_new_packet(pkt, (int)n) < 0) {
		av_packet_free(&pkt);
		recorder_fail(r, "out of memory", AVERROR(ENOMEM));
		return;
	}
	memcpy(pkt->data, au, n);
	pkt->pts = pkt->dts = ts;
	pkt->duration = r->last_dur > 0 ? r->last_dur : 0;
	pkt->stream_index = r->st->index;
	if (key)
		pkt->flags |= AV_PKT_FLAG_KEY;
	int e = av_write_frame(r->oc, pkt);
	av_packet_free(&pkt);
	if (e < 0) {
		recorder_fail(r, "writing a frame", e);
		return;
	}
	r->last_ts = ts;
	r->frames++;
	r->bytes += n;
}

void recorder_close(struct recorder *r)
{
	if (!r->path)
		return;
	if (r->oc)
		recorder_finish(r);
	else if (!r->failed && !r->parts)
		say("no keyframe arrived: nothing recorded, %s not written", r->path);
	g_free(r->path);
	r->path = NULL;
}
