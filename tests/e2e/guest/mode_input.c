/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * hfe-guest's input mode: what the guest's kernel receives from QEMU's
 * virtio keyboard and tablet (the input a host-side client injected through
 * the daemon or the QEMU module). It opens the two evdev devices by name,
 * says "input ready" on the console, then writes one out-port TEXT record
 * per event until `duration` ms have passed:
 *   "key CODE VALUE"  EV_KEY (keys and buttons; value 1 down, 0 up, 2 repeat)
 *   "abs X Y"         the tablet's position at each EV_SYN that moved it
 *   "wheel N"         REL_WHEEL (+1 up, -1 down)
 * With echo=1 each also goes to the console as "HFE-GUEST: input: ..." (the
 * browser test reads the console). See docs/e2e.md.
 */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <linux/input.h>
#include <poll.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

#include "hfe-guest.h"

#define DEVICE_WAIT_MS 30000
#define MAX_DEVS 2

static const char *const wanted[MAX_DEVS] = { "QEMU Virtio Keyboard", "QEMU Virtio Tablet" };

/* Open the virtio keyboard and tablet once both exist; fds[i] for wanted[i]. */
static int open_devices(int fds[MAX_DEVS], char *why, size_t whylen)
{
	int64_t deadline = now_ns() + (int64_t)DEVICE_WAIT_MS * 1000000;

	fds[0] = fds[1] = -1;
	while (now_ns() < deadline) {
		DIR *d = opendir("/dev/input");
		struct dirent *e;

		while (d && (e = readdir(d))) {
			char path[300], name[128] = "";
			int fd;

			if (strncmp(e->d_name, "event", 5))
				continue;
			snprintf(path, sizeof(path), "/dev/input/%s", e->d_name);
			fd = open(path, O_RDONLY | O_NONBLOCK | O_CLOEXEC);
			if (fd < 0)
				continue;
			ioctl(fd, EVIOCGNAME(sizeof(name) - 1), name);
			for (int i = 0; i < MAX_DEVS; i++) {
				if (fds[i] < 0 && !strcmp(name, wanted[i])) {
					fds[i] = fd;
					fd = -1;
					say("input device %s: %s", path, name);
				}
			}
			if (fd >= 0)
				close(fd);
		}
		if (d)
			closedir(d);
		if (fds[0] >= 0 && fds[1] >= 0)
			return 0;
		usleep(100000);
	}
	snprintf(why, whylen, "no %s within %d ms (virtio-keyboard-pci, virtio-tablet-pci, "
		 "modules virtio_input and evdev?)", fds[0] < 0 ? wanted[0] : wanted[1],
		 DEVICE_WAIT_MS);
	return -1;
}

/* One event: an out-port record, and a console line with echo. */
static void report(const struct opts *op, struct out *o, const char *what, int a, int b)
{
	char text[64];

	if (b == INT32_MIN)
		snprintf(text, sizeof(text), "%s %d", what, a);
	else
		snprintf(text, sizeof(text), "%s %d %d", what, a, b);
	out_text(o, E2E_REC_TEXT, "%s", text);
	if (op->echo)
		say("input: %s", text);
}

int run_input(const struct opts *op, struct out *o, char *why, size_t whylen)
{
	int fds[MAX_DEVS];
	int x = -1, y = -1, last_x = -1, last_y = -1;
	unsigned events = 0;

	if (open_devices(fds, why, whylen) < 0)
		return -1;
	int64_t end = now_ns() + (int64_t)(op->duration_ms ? op->duration_ms : 60000) * 1000000;
	say("input ready");
	out_text(o, E2E_REC_TEXT, "input ready");
	while (now_ns() < end) {
		struct pollfd p[MAX_DEVS] = { { fds[0], POLLIN, 0 }, { fds[1], POLLIN, 0 } };
		int ms = (int)((end - now_ns()) / 1000000);

		if (poll(p, MAX_DEVS, ms > 0 ? ms : 0) < 0 && errno != EINTR) {
			snprintf(why, whylen, "poll: %s", strerror(errno));
			return -1;
		}
		for (int i = 0; i < MAX_DEVS; i++) {
			struct input_event ev[64];
			ssize_t n;

			if (!(p[i].revents & POLLIN))
				continue;
			while ((n = read(fds[i], ev, sizeof(ev))) > 0) {
				for (size_t k = 0; k < (size_t)n / sizeof(ev[0]); k++) {
					const struct input_event *e = &ev[k];

					events++;
					if (e->type == EV_KEY)
						report(op, o, "key", e->code, e->value);
					else if (e->type == EV_REL && e->code == REL_WHEEL)
						report(op, o, "wheel", e->value, INT32_MIN);
					else if (e->type == EV_ABS && e->code == ABS_X)
						x = e->value;
					else if (e->type == EV_ABS && e->code == ABS_Y)
						y = e->value;
					else if (e->type == EV_SYN && (x != last_x || y != last_y)) {
						report(op, o, "abs", x, y);
						last_x = x;
						last_y = y;
					}
				}
			}
		}
	}
	say("input done: %u events", events);
	out_text(o, E2E_REC_TEXT, "input done events=%u", events);
	close(fds[0]);
	close(fds[1]);
	return 0;
}
