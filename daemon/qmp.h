/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * A minimal QMP client: one command at a time over QEMU's -qmp unix socket,
 * blocking with a deadline per reply, descriptors passed by SCM_RIGHTS. Each
 * line QEMU sends is parsed as JSON (json-glib) and classified as the
 * greeting, a `return`, an `error` (its `desc` reported) or an asynchronous
 * event (skipped while waiting for a reply); anything else, and a line longer
 * than HFE_QMP_LINE_MAX, ends the session. Used by the -display dbus attach
 * (qemu_attach.c); tested against scripted replies by tests/test_qmp.c.
 */
#ifndef HFE_QMP_H
#define HFE_QMP_H

#include <stddef.h>

#include <json-glib/json-glib.h>

/* Longest line QEMU may send, its "\n" included. QEMU's replies to the
 * commands used here are a few hundred bytes. */
#define HFE_QMP_LINE_MAX 16384

enum hfe_qmp_result {
	HFE_QMP_OK = 0,
	HFE_QMP_FAILED = -1,  /* no usable answer: socket, timeout, bad line, not QMP */
	HFE_QMP_REFUSED = -2, /* QEMU answered with an error (why: "QMP error: DESC") */
};

struct hfe_qmp;

/* A session on a connected stream socket (taken over: closed by
 * hfe_qmp_close), each reply awaited at most timeout_ms. NULL: out of memory
 * (fd is closed). */
struct hfe_qmp *hfe_qmp_new(int fd, unsigned timeout_ms);
/* Connects to QEMU's QMP unix socket at path. NULL with why on failure
 * (strerror text: ENOENT = not started, ECONNREFUSED = gone, EAGAIN = busy). */
struct hfe_qmp *hfe_qmp_connect(const char *path, unsigned timeout_ms, char *why, size_t len);
/* Reads the greeting and negotiates capabilities (qmp_capabilities). */
enum hfe_qmp_result hfe_qmp_handshake(struct hfe_qmp *m, char *why, size_t len);
/*
 * Runs one command: {"execute": command, "arguments": args}, args taken
 * (NULL: none); fd >= 0 is sent along with it. Waits for its reply,
 * skipping events. On HFE_QMP_OK, *ret (if ret) holds the `return` value
 * (free with json_node_unref).
 */
enum hfe_qmp_result hfe_qmp_execute(struct hfe_qmp *m, const char *command, JsonObject *args,
				    int fd, JsonNode **ret, char *why, size_t len);
/* Closes the socket. NULL is ignored. */
void hfe_qmp_close(struct hfe_qmp *m);

#endif
