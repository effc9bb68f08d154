/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * The QMP client (see qmp.h). QEMU writes one JSON object per line ("\r\n"
 * terminated); lines are read into a bounded buffer, parsed with json-glib
 * and told apart by their top-level member: "QMP" (greeting), "return",
 * "error", "event". Commands are built as JSON objects too, so no argument
 * needs hand-escaping. Blocking with poll() and a deadline, on the caller's
 * thread: the attach runs it on a VM's control thread, a few short steps on
 * a local socket.
 */
#include "qmp.h"

#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

#include "hfe/host.h" /* hfe_now_ms */

struct hfe_qmp {
	int fd;
	unsigned timeout_ms;
	size_t len;  /* bytes in buf */
	size_t used; /* of which the last line returned */
	char buf[HFE_QMP_LINE_MAX + 1]; /* + the NUL that ends a returned line */
};

enum msg_kind { MSG_GREETING, MSG_RETURN, MSG_ERROR, MSG_EVENT };

struct hfe_qmp *hfe_qmp_new(int fd, unsigned timeout_ms)
{
	struct hfe_qmp *m = calloc(1, sizeof(*m));
	int fl = fcntl(fd, F_GETFL);

	if (!m) {
		close(fd);
		return NULL;
	}
	if (fl >= 0 && !(fl & O_NONBLOCK))
		fcntl(fd, F_SETFL, fl | O_NONBLOCK);
	m->fd = fd;
	m->timeout_ms = timeout_ms;
	return m;
}

struct hfe_qmp *hfe_qmp_connect(const char *path, unsigned timeout_ms, char *why, size_t len)
{
	struct sockaddr_un sa = { .sun_family = AF_UNIX };
	int fd;

	if (strlen(path) >= sizeof(sa.sun_path)) {
		snprintf(why, len, "QMP socket path too long");
		return NULL;
	}
	snprintf(sa.sun_path, sizeof(sa.sun_path), "%s", path);
	fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC | SOCK_NONBLOCK, 0);
	if (fd < 0 || connect(fd, (struct sockaddr *)&sa, sizeof(sa)) < 0) {
		snprintf(why, len, "%s", strerror(errno));
		if (fd >= 0)
			close(fd);
		return NULL;
	}
	struct hfe_qmp *m = hfe_qmp_new(fd, timeout_ms);

	if (!m)
		snprintf(why, len, "out of memory");
	return m;
}

void hfe_qmp_close(struct hfe_qmp *m)
{
	if (!m)
		return;
	close(m->fd);
	free(m);
}

/* 1: ready, 0: deadline passed, -1: poll failed (errno). */
static int wait_fd(int fd, short events, uint64_t deadline)
{
	for (;;) {
		uint64_t now = hfe_now_ms();
		struct pollfd p = { .fd = fd, .events = events };

		if (now >= deadline)
			return 0;
		int r = poll(&p, 1, (int)(deadline - now));

		if (r < 0 && errno == EINTR)
			continue;
		return r < 0 ? -1 : r;
	}
}

/* Next line from QEMU, NUL-terminated in place, its "\r\n" or "\n" removed. 0, or -1
 * with why. The line stays valid until the next call. */
static int read_line(struct hfe_qmp *m, uint64_t deadline, char **line, size_t *n, char *why,
		     size_t len)
{
	memmove(m->buf, m->buf + m->used, m->len - m->used);
	m->len -= m->used;
	m->used = 0;
	for (;;) {
		char *nl = memchr(m->buf, '\n', m->len);

		if (nl) {
			m->used = (size_t)(nl - m->buf) + 1;
			if (nl > m->buf && nl[-1] == '\r') /* QEMU ends lines with "\r\n" */
				nl--;
			*nl = '\0';
			*line = m->buf;
			*n = (size_t)(nl - m->buf);
			return 0;
		}
		if (m->len == HFE_QMP_LINE_MAX) {
			snprintf(why, len, "QMP line longer than %d bytes", HFE_QMP_LINE_MAX);
			return -1;
		}
		int r = wait_fd(m->fd, POLLIN, deadline);

		if (r < 0) {
			snprintf(why, len, "QMP: %s", strerror(errno));
			return -1;
		}
		if (r == 0) {
			snprintf(why, len, "QMP: no answer within %u ms", m->timeout_ms);
			return -1;
		}
		ssize_t got = read(m->fd, m->buf + m->len, HFE_QMP_LINE_MAX - m->len);

		if (got < 0 && (errno == EINTR || errno == EAGAIN))
			continue;
		if (got <= 0) {
			snprintf(why, len, "QMP: %s", got ? strerror(errno) : "connection closed");
			return -1;
		}
		m->len += (size_t)got;
	}
}

static bool blank(const char *s, size_t n)
{
	for (size_t i = 0; i < n; i++)
		if (s[i] != ' ' && s[i] != '\t' && s[i] != '\r')
			return false;
	return true;
}

/* A member that is a JSON string, or NULL. */
static const char *string_member(JsonObject *o, const char *name)
{
	JsonNode *n = json_object_get_member(o, name);

	return n && JSON_NODE_HOLDS_VALUE(n) && json_node_get_value_type(n) == G_TYPE_STRING
		       ? json_node_get_string(n)
		       : NULL;
}

/* What a parsed message is, or -1 if it is none of QMP's. */
static int classify(JsonObject *o)
{
	JsonNode *n;

	if ((n = json_object_get_member(o, "QMP")) && JSON_NODE_HOLDS_OBJECT(n))
		return MSG_GREETING;
	if (json_object_has_member(o, "return"))
		return MSG_RETURN;
	if ((n = json_object_get_member(o, "error")) && JSON_NODE_HOLDS_OBJECT(n))
		return MSG_ERROR;
	if (string_member(o, "event"))
		return MSG_EVENT;
	return -1;
}

static bool is_object(JsonNode *n)
{
	return n && JSON_NODE_HOLDS_OBJECT(n);
}

/*
 * Next message: its kind and *root (a JSON object; the caller unrefs it),
 * with *line its text for error messages. -1 with why when the line is not
 * a QMP message (not JSON, not an object, none of the four kinds) or none
 * could be read; *line is then NULL unless a line was read.
 */
static int read_message(struct hfe_qmp *m, uint64_t deadline, JsonNode **root,
			const char **line, char *why, size_t len)
{
	char *text;
	size_t n;

	*root = NULL;
	*line = NULL;
	do {
		if (read_line(m, deadline, &text, &n, why, len) < 0)
			return -1;
	} while (blank(text, n)); /* whitespace between values is legal JSON */
	*line = text;

	JsonParser *p = json_parser_new();
	GError *e = NULL;
	int kind = -1;

	if (json_parser_load_from_data(p, text, (gssize)n, &e))
		*root = json_parser_steal_root(p);
	g_object_unref(p);
	if (is_object(*root))
		kind = classify(json_node_get_object(*root));
	if (kind < 0) {
		const char *what = e ? e->message
			       : is_object(*root) ? "not a QMP message" : "not a JSON object";

		snprintf(why, len, "QMP: malformed message (%s): %.80s", what, text);
		if (*root)
			json_node_unref(*root);
		*root = NULL;
	}
	if (e)
		g_error_free(e);
	return kind;
}

/* "QMP error: DESC" from an error reply ({"error": {"class", "desc"}}). */
static void error_reason(JsonObject *reply, const char *line, char *why, size_t len)
{
	JsonObject *err = json_object_get_object_member(reply, "error");
	const char *desc = string_member(err, "desc");

	if (desc)
		snprintf(why, len, "QMP error: %s", desc);
	else
		snprintf(why, len, "QMP error: %.200s", line);
}

/* The command's text, one line. NULL: out of memory. */
static char *command_text(const char *command, JsonObject *args)
{
	JsonObject *o = json_object_new();
	JsonNode *root = json_node_new(JSON_NODE_OBJECT);
	JsonGenerator *g = json_generator_new();
	char *text, *line;

	json_object_set_string_member(o, "execute", command);
	if (args)
		json_object_set_object_member(o, "arguments", args); /* takes args */
	json_node_take_object(root, o);
	json_generator_set_root(g, root);
	text = json_generator_to_data(g, NULL);
	line = text ? g_strconcat(text, "\n", NULL) : NULL;
	g_free(text);
	g_object_unref(g);
	json_node_unref(root);
	return line;
}

/* All of text, with fd (if >= 0) as SCM_RIGHTS on the first byte. */
static int send_all(struct hfe_qmp *m, const char *text, int fd, uint64_t deadline, char *why,
		    size_t len)
{
	size_t off = 0, total = strlen(text);

	while (off < total) {
		struct iovec iov = { (void *)(text + off), total - off };
		union {
			char buf[CMSG_SPACE(sizeof(int))];
			struct cmsghdr align;
		} u;
		struct msghdr mh = { .msg_iov = &iov, .msg_iovlen = 1 };

		if (fd >= 0 && off == 0) {
			memset(&u, 0, sizeof(u));
			mh.msg_control = u.buf;
			mh.msg_controllen = sizeof(u.buf);
			struct cmsghdr *cm = CMSG_FIRSTHDR(&mh);

			cm->cmsg_level = SOL_SOCKET;
			cm->cmsg_type = SCM_RIGHTS;
			cm->cmsg_len = CMSG_LEN(sizeof(int));
			memcpy(CMSG_DATA(cm), &fd, sizeof(int));
		}
		ssize_t n = sendmsg(m->fd, &mh, MSG_NOSIGNAL);

		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0 && errno == EAGAIN) {
			if (wait_fd(m->fd, POLLOUT, deadline) <= 0) {
				snprintf(why, len, "QMP: cannot send");
				return -1;
			}
			continue;
		}
		if (n < 0) {
			snprintf(why, len, "QMP: %s", strerror(errno));
			return -1;
		}
		off += (size_t)n;
	}
	return 0;
}

enum hfe_qmp_result hfe_qmp_execute(struct hfe_qmp *m, const char *command, JsonObject *args,
				    int fd, JsonNode **ret, char *why, size_t len)
{
	uint64_t deadline = hfe_now_ms() + m->timeout_ms;
	char *text = command_text(command, args);
	int sent;

	if (ret)
		*ret = NULL;
	if (!text) {
		snprintf(why, len, "out of memory");
		return HFE_QMP_FAILED;
	}
	sent = send_all(m, text, fd, deadline, why, len);
	g_free(text);
	if (sent < 0)
		return HFE_QMP_FAILED;
	for (;;) {
		JsonNode *root;
		const char *line;
		int kind = read_message(m, deadline, &root, &line, why, len);

		if (kind < 0)
			return HFE_QMP_FAILED;
		JsonObject *o = json_node_get_object(root);
		enum hfe_qmp_result r = HFE_QMP_FAILED;

		switch (kind) {
		case MSG_EVENT: /* asynchronous (RESET, STOP...): not ours */
			json_node_unref(root);
			continue;
		case MSG_RETURN:
			if (ret)
				*ret = json_node_copy(json_object_get_member(o, "return"));
			r = HFE_QMP_OK;
			break;
		case MSG_ERROR:
			error_reason(o, line, why, len);
			r = HFE_QMP_REFUSED;
			break;
		default:
			snprintf(why, len, "QMP: unexpected greeting");
			break;
		}
		json_node_unref(root);
		return r;
	}
}

enum hfe_qmp_result hfe_qmp_handshake(struct hfe_qmp *m, char *why, size_t len)
{
	JsonNode *root;
	const char *line;
	int kind = read_message(m, hfe_now_ms() + m->timeout_ms, &root, &line, why, len);

	if (root)
		json_node_unref(root);
	if (kind != MSG_GREETING) {
		/* A line that is not the greeting: something else listens there. */
		if (line)
			snprintf(why, len, "not a QMP socket (greeting: %.80s)", line);
		return HFE_QMP_FAILED;
	}
	return hfe_qmp_execute(m, "qmp_capabilities", NULL, -1, NULL, why, len);
}
