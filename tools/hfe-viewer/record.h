/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * hfe-viewer --record: the stream written to an MP4 (libavformat), from the
 * first IDR on, timestamped with the host's pts. A change of picture size
 * closes the file as a part of its own and starts it again (record.c).
 */
#ifndef HFE_VIEWER_RECORD_H
#define HFE_VIEWER_RECORD_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

struct AVFormatContext;
struct AVStream;

struct recorder {
	char *path; /* absolute; g_malloc'ed, freed by recorder_close */
	struct AVFormatContext *oc;
	struct AVStream *st;
	bool failed;
	int64_t first_ns, last_ts, last_dur;
	uint32_t width, height;
	uint64_t frames, bytes;
	unsigned parts; /* earlier sizes, each moved to its own file */
};

/* One Annex-B access unit with the host's pts (ns). Failures are said once
 * and stop the recording (r->failed). */
void recorder_write(struct recorder *r, const uint8_t *au, size_t n, int64_t pts_ns, bool key);
/* Finish the file and free the path. */
void recorder_close(struct recorder *r);

#endif
