/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * daemon/qmp.c, the QMP client of the -display dbus attach, without a QEMU:
 * the test plays QEMU on the other end of a socketpair, writing scripted
 * lines (as QEMU 7.2 sends them) before the client reads, and reading what
 * the client sent afterwards. One behaviour per test; `test_qmp NAME` runs
 * one, `--list` names them.
 */
#include <errno.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <unistd.h>

#include "hfe/host.h" /* hfe_now_ms */
#include "qmp.h"
#include "unit_check.h"

#define TIMEOUT_MS 500

/* What QEMU 7.2 (Debian 12) sends, "\r\n" included. */
#define GREETING                                                                              \
	"{\"QMP\": {\"version\": {\"qemu\": {\"micro\": 0, \"minor\": 2, \"major\": 7}, "      \
	"\"package\": \"Debian 1:7.2+dfsg-7+deb12u3\"}, \"capabilities\": [\"oob\"]}}\r\n"
#define RETURN_EMPTY "{\"return\": {}}\r\n"
#define EVENT                                                                                 \
	"{\"timestamp\": {\"seconds\": 1764796800, \"microseconds\": 123456}, "              \
	"\"event\": \"RESET\", \"data\": {\"guest\": true, \"reason\": \"guest-reset\"}}\r\n"

struct fx {
	struct hfe_qmp *m;
	int peer; /* QEMU's end */
	char why[256];
};

static void fx_open(struct fx *f, unsigned timeout_ms)
{
	int sv[2];

	if (socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sv) < 0) {
		perror("socketpair");
		exit(1);
	}
	f->m = hfe_qmp_new(sv[0], timeout_ms);
	f->peer = sv[1];
	f->why[0] = '\0';
	if (!f->m)
		exit(1);
}

static void fx_close(struct fx *f)
{
	hfe_qmp_close(f->m);
	if (f->peer >= 0)
		close(f->peer);
}

/* QEMU writes text (all of it fits the socket buffer). */
static void say(struct fx *f, const char *text, size_t n)
{
	while (n) {
		ssize_t w = write(f->peer, text, n);

		if (w <= 0) {
			perror("write");
			exit(1);
		}
		text += w;
		n -= (size_t)w;
	}
}

static void says(struct fx *f, const char *text)
{
	say(f, text, strlen(text));
}

/* What the client has sent so far; *fd: a descriptor that came with it
 * (-1: none). */
static const char *heard(struct fx *f, int *fd)
{
	static char buf[4096];
	union {
		char b[CMSG_SPACE(sizeof(int))];
		struct cmsghdr align;
	} u;
	struct iovec iov = { buf, sizeof(buf) - 1 };
	struct msghdr mh = { .msg_iov = &iov, .msg_iovlen = 1, .msg_control = u.b,
			     .msg_controllen = sizeof(u.b) };
	ssize_t n = recvmsg(f->peer, &mh, MSG_DONTWAIT);
	struct cmsghdr *cm = n > 0 ? CMSG_FIRSTHDR(&mh) : NULL;

	if (fd)
		*fd = -1;
	if (fd && cm && cm->cmsg_level == SOL_SOCKET && cm->cmsg_type == SCM_RIGHTS)
		memcpy(fd, CMSG_DATA(cm), sizeof(int));
	buf[n > 0 ? n : 0] = '\0';
	return buf;
}

/* An integer member of a returned object, or -1. */
static gint64 member_int(JsonNode *ret, const char *name)
{
	if (!ret || !JSON_NODE_HOLDS_OBJECT(ret))
		return -1;
	return json_object_get_int_member_with_default(json_node_get_object(ret), name, -1);
}

static bool starts(const char *s, const char *prefix)
{
	return strncmp(s, prefix, strlen(prefix)) == 0;
}

/* ---- the handshake ---- */

static void test_greeting_then_capabilities(void)
{
	struct fx f;

	fx_open(&f, TIMEOUT_MS);
	says(&f, GREETING RETURN_EMPTY);
	CHECKC(hfe_qmp_handshake(f.m, f.why, sizeof(f.why)) == HFE_QMP_OK, f.why);
	CHECK(!strcmp(heard(&f, NULL), "{\"execute\":\"qmp_capabilities\"}\n"));
	fx_close(&f);
}

static void test_not_a_greeting(void)
{
	static const char *const lines[] = {
		"{\"return\": {}}\r\n",   /* valid QMP, not the greeting */
		"{\"QMP\": \"x\"}\r\n",   /* QMP must be an object */
		"SSH-2.0-OpenSSH_9.2\r\n", /* not JSON */
	};

	for (size_t i = 0; i < sizeof(lines) / sizeof(lines[0]); i++) {
		struct fx f;

		fx_open(&f, TIMEOUT_MS);
		says(&f, lines[i]);
		CHECKC(hfe_qmp_handshake(f.m, f.why, sizeof(f.why)) == HFE_QMP_FAILED, lines[i]);
		CHECKC(starts(f.why, "not a QMP socket (greeting: "), f.why);
		CHECKC(!strcmp(heard(&f, NULL), ""), lines[i]); /* no command sent */
		fx_close(&f);
	}
}

static void test_capabilities_refused(void)
{
	struct fx f;

	fx_open(&f, TIMEOUT_MS);
	says(&f, GREETING "{\"error\": {\"class\": \"CommandNotFound\", \"desc\": "
			  "\"Capabilities negotiation is already complete, command ignored\"}}\r\n");
	CHECK(hfe_qmp_handshake(f.m, f.why, sizeof(f.why)) == HFE_QMP_REFUSED);
	CHECKC(!strcmp(f.why, "QMP error: Capabilities negotiation is already complete, "
			      "command ignored"),
	       f.why);
	fx_close(&f);
}

/* ---- replies ---- */

static void test_return_value(void)
{
	struct fx f;
	JsonNode *ret = NULL;

	fx_open(&f, TIMEOUT_MS);
	says(&f, "{\"return\": {\"n\": 7, \"s\": \"x\"}}\r\n");
	CHECKC(hfe_qmp_execute(f.m, "query-x", NULL, -1, &ret, f.why, sizeof(f.why)) ==
		       HFE_QMP_OK,
	       f.why);
	CHECK(member_int(ret, "n") == 7);
	CHECK(!strcmp(heard(&f, NULL), "{\"execute\":\"query-x\"}\n"));
	if (ret)
		json_node_unref(ret);
	fx_close(&f);
}

static void test_error_desc(void)
{
	struct fx f;

	fx_open(&f, TIMEOUT_MS);
	/* what QEMU 7.2 answers add_client without -display dbus; escapes decoded */
	says(&f, "{\"error\": {\"class\": \"GenericError\", \"desc\": \"Parameter \\\"protocol\\\" "
		 "expects 'spice', 'vnc', '@dbus-display'\\n\"}}\r\n");
	CHECK(hfe_qmp_execute(f.m, "add_client", NULL, -1, NULL, f.why, sizeof(f.why)) ==
	      HFE_QMP_REFUSED);
	CHECKC(!strcmp(f.why, "QMP error: Parameter \"protocol\" expects 'spice', 'vnc', "
			      "'@dbus-display'\n"),
	       f.why);
	fx_close(&f);
}

static void test_error_without_desc(void)
{
	struct fx f;

	fx_open(&f, TIMEOUT_MS);
	says(&f, "{\"error\": {\"class\": \"GenericError\"}}\r\n");
	CHECK(hfe_qmp_execute(f.m, "x", NULL, -1, NULL, f.why, sizeof(f.why)) == HFE_QMP_REFUSED);
	CHECKC(!strcmp(f.why, "QMP error: {\"error\": {\"class\": \"GenericError\"}}"), f.why);
	fx_close(&f);
}

static void test_event_before_return(void)
{
	struct fx f;
	JsonNode *ret = NULL;

	fx_open(&f, TIMEOUT_MS);
	says(&f, EVENT EVENT "{\"return\": {\"n\": 1}}\r\n");
	CHECKC(hfe_qmp_execute(f.m, "x", NULL, -1, &ret, f.why, sizeof(f.why)) == HFE_QMP_OK,
	       f.why);
	CHECK(member_int(ret, "n") == 1);
	if (ret)
		json_node_unref(ret);
	fx_close(&f);
}

/* Replies that arrive in one read are kept for the next command. */
static void test_replies_in_one_read(void)
{
	struct fx f;
	JsonNode *ret = NULL;

	fx_open(&f, TIMEOUT_MS);
	says(&f, "{\"return\": {\"n\": 1}}\r\n" EVENT "\r\n{\"return\": {\"n\": 2}}\r\n");
	CHECK(hfe_qmp_execute(f.m, "a", NULL, -1, &ret, f.why, sizeof(f.why)) == HFE_QMP_OK);
	CHECK(member_int(ret, "n") == 1);
	if (ret)
		json_node_unref(ret);
	CHECKC(hfe_qmp_execute(f.m, "b", NULL, -1, &ret, f.why, sizeof(f.why)) == HFE_QMP_OK,
	       f.why);
	CHECK(member_int(ret, "n") == 2);
	if (ret)
		json_node_unref(ret);
	fx_close(&f);
}

static void test_malformed(void)
{
	static const struct {
		const char *line, *why; /* why: what the reason starts with */
	} cases[] = {
		{ "{\"return\": \r\n", "QMP: malformed message (" }, /* cut short: the parser's words */
		{ "{\"return\": {}} }\r\n", "QMP: malformed message (" }, /* trailing garbage */
		{ "[{\"return\": {}}]\r\n", "QMP: malformed message (not a JSON object)" },
		{ "{\"retrun\": {}}\r\n", "QMP: malformed message (not a QMP message)" },
		{ "{\"event\": 5}\r\n", "QMP: malformed message (not a QMP message)" }, /* names are strings */
		{ "{\"error\": \"failed\"}\r\n", "QMP: malformed message (not a QMP message)" },
	};

	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		struct fx f;

		fx_open(&f, TIMEOUT_MS);
		says(&f, cases[i].line);
		says(&f, RETURN_EMPTY); /* not reached: the session is over */
		CHECKC(hfe_qmp_execute(f.m, "x", NULL, -1, NULL, f.why, sizeof(f.why)) ==
			       HFE_QMP_FAILED,
		       cases[i].line);
		CHECKC(starts(f.why, cases[i].why), f.why);
		fx_close(&f);
	}
}

/* A line of exactly HFE_QMP_LINE_MAX bytes ("\n" included) is read; one
 * byte more ends the session, whatever follows. */
static void test_line_bound(void)
{
	for (int extra = 0; extra <= 1; extra++) {
		size_t n = HFE_QMP_LINE_MAX + (size_t)extra;
		char *line = malloc(n);
		struct fx f;

		memset(line, ' ', n);
		memcpy(line, "{\"return\": {}}", 14);
		line[n - 2] = '\r';
		line[n - 1] = '\n';
		fx_open(&f, TIMEOUT_MS);
		say(&f, line, n);
		says(&f, RETURN_EMPTY);
		if (!extra) {
			CHECKC(hfe_qmp_execute(f.m, "x", NULL, -1, NULL, f.why, sizeof(f.why)) ==
				       HFE_QMP_OK,
			       f.why);
		} else {
			CHECK(hfe_qmp_execute(f.m, "x", NULL, -1, NULL, f.why, sizeof(f.why)) ==
			      HFE_QMP_FAILED);
			CHECKC(!strcmp(f.why, "QMP line longer than 16384 bytes"), f.why);
		}
		fx_close(&f);
		free(line);
	}
}

/* ---- transport ---- */

static void test_no_answer(void)
{
	struct fx f;
	uint64_t t0 = hfe_now_ms(), dt;

	fx_open(&f, 100);
	says(&f, EVENT); /* an event is not an answer */
	CHECK(hfe_qmp_execute(f.m, "x", NULL, -1, NULL, f.why, sizeof(f.why)) == HFE_QMP_FAILED);
	dt = hfe_now_ms() - t0;
	CHECKC(!strcmp(f.why, "QMP: no answer within 100 ms"), f.why);
	CHECK(dt >= 100 && dt < 600); /* the deadline, not a multiple of it */
	fx_close(&f);
}

static void test_closed_before_answer(void)
{
	struct fx f;

	fx_open(&f, TIMEOUT_MS);
	says(&f, "{\"return\": {}"); /* half a line, then EOF */
	shutdown(f.peer, SHUT_WR);
	CHECK(hfe_qmp_execute(f.m, "x", NULL, -1, NULL, f.why, sizeof(f.why)) == HFE_QMP_FAILED);
	CHECKC(!strcmp(f.why, "QMP: connection closed"), f.why);
	fx_close(&f);
}

/* getfd: the arguments as JSON, the descriptor with them (SCM_RIGHTS). */
static void test_arguments_and_descriptor(void)
{
	struct fx f;
	int p[2], got = -1;
	struct stat a, b;

	if (pipe(p) < 0)
		exit(1);
	fx_open(&f, TIMEOUT_MS);
	says(&f, RETURN_EMPTY);
	JsonObject *args = json_object_new();

	json_object_set_string_member(args, "fdname", "hfe \"1\"");
	CHECKC(hfe_qmp_execute(f.m, "getfd", args, p[1], NULL, f.why, sizeof(f.why)) == HFE_QMP_OK,
	       f.why);
	const char *text = heard(&f, &got);

	CHECKC(!strcmp(text, "{\"execute\":\"getfd\",\"arguments\":{\"fdname\":\"hfe \\\"1\\\"\"}}\n"),
	       text);
	CHECK(got >= 0);
	if (got >= 0) {
		CHECK(fstat(got, &a) == 0 && fstat(p[1], &b) == 0 && a.st_ino == b.st_ino);
		close(got);
	}
	close(p[0]);
	close(p[1]);
	fx_close(&f);
}

static void test_connect(void)
{
	char dir[] = "/tmp/test_qmp.XXXXXX", path[64], why[256];
	struct sockaddr_un sa = { .sun_family = AF_UNIX };
	struct hfe_qmp *m;

	if (!mkdtemp(dir))
		exit(1);
	snprintf(path, sizeof(path), "%s/qmp.sock", dir);
	m = hfe_qmp_connect(path, TIMEOUT_MS, why, sizeof(why));
	CHECK(!m);
	CHECKC(!strcmp(why, strerror(ENOENT)), why);

	/* A listening socket: connected at once (accepted afterwards, as QEMU does). */
	int ls = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);

	snprintf(sa.sun_path, sizeof(sa.sun_path), "%s", path);
	if (ls < 0 || bind(ls, (struct sockaddr *)&sa, sizeof(sa)) < 0 || listen(ls, 1) < 0)
		exit(1);
	m = hfe_qmp_connect(path, TIMEOUT_MS, why, sizeof(why));
	CHECKC(m != NULL, why);
	int peer = accept(ls, NULL, NULL);

	CHECK(peer >= 0);
	if (m && peer >= 0) {
		if (write(peer, GREETING RETURN_EMPTY, strlen(GREETING RETURN_EMPTY)) < 0)
			exit(1);
		CHECKC(hfe_qmp_handshake(m, why, sizeof(why)) == HFE_QMP_OK, why);
	}
	hfe_qmp_close(m);
	if (peer >= 0)
		close(peer);
	close(ls);
	unlink(path);
	rmdir(dir);
}

int main(int argc, char **argv)
{
	static const struct unit_test tests[] = {
		{ "greeting_then_capabilities", test_greeting_then_capabilities },
		{ "not_a_greeting", test_not_a_greeting },
		{ "capabilities_refused", test_capabilities_refused },
		{ "return_value", test_return_value },
		{ "error_desc", test_error_desc },
		{ "error_without_desc", test_error_without_desc },
		{ "event_before_return", test_event_before_return },
		{ "replies_in_one_read", test_replies_in_one_read },
		{ "malformed", test_malformed },
		{ "line_bound", test_line_bound },
		{ "no_answer", test_no_answer },
		{ "closed_before_answer", test_closed_before_answer },
		{ "arguments_and_descriptor", test_arguments_and_descriptor },
		{ "connect", test_connect },
	};

	return unit_run("test_qmp", tests, sizeof(tests) / sizeof(tests[0]), argc, argv);
}
