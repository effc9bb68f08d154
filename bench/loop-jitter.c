/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * The baseline for main-loop stalls: what this machine does to a callback
 * that does almost nothing. It runs like an event loop (sleep ~1 ms, then a
 * callback of ~20 us of arithmetic) for the given time and sorts the
 * callbacks' wall times into the same buckets as the QEMU module's stats
 * (hist_us: <100, <250, <500, <1000, <2000, <5000, >=5000 us). Run next to a
 * VM, the tail it sees is preemption and steal, which the module's
 * callbacks suffer too; bench/dbus-scanout.sh prints both side by side.
 *
 * With --wake each callback also sends 16 KB over a unix socket to a
 * thread blocked reading it (what a module callback that writes to a client
 * does to the kernel: a copy and a wake-up). On a paravirtualised VM the
 * wake-up's interrupt re-enable is where the hypervisor's time lands, so
 * this is the fair baseline for the module's client callbacks.
 *
 * usage: bench-loop-jitter SECONDS [--wake]
 * prints: ctl_calls=N ctl_max_us=N ctl_max_cpu_us=N ctl_hist_us=N/... ctl_hist_cpu_us=N/...
 * (the second: the thread's CPU time in each callback, which on a virtual
 * machine also catches time stolen by the hypervisor and interrupts)
 */
#include <pthread.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#define WAKE_BYTES 16384

static const unsigned bounds_us[] = { 100, 250, 500, 1000, 2000, 5000 };
#define N_BUCKETS (sizeof(bounds_us) / sizeof(bounds_us[0]) + 1)

static int64_t clock_ns(clockid_t clock)
{
	struct timespec ts;
	clock_gettime(clock, &ts);
	return (int64_t)ts.tv_sec * 1000000000 + ts.tv_nsec;
}

static int64_t now_ns(void) { return clock_ns(CLOCK_MONOTONIC); }

static void count(uint64_t *hist, int64_t us)
{
	size_t b = 0;
	while (b < N_BUCKETS - 1 && us >= bounds_us[b])
		b++;
	hist[b]++;
}

static void print_hist(const char *name, const uint64_t *hist)
{
	printf(" %s=", name);
	for (size_t b = 0; b < N_BUCKETS; b++)
		printf("%s%llu", b ? "/" : "", (unsigned long long)hist[b]);
}

/* --wake's reader: drains the socket until it is closed. */
static void *reader(void *arg)
{
	static char buf[WAKE_BYTES];
	int fd = *(int *)arg;
	while (read(fd, buf, sizeof(buf)) > 0) {
	}
	return NULL;
}

int main(int argc, char **argv)
{
	double seconds = argc > 1 ? atof(argv[1]) : 0;
	bool wake = argc > 2 && !strcmp(argv[2], "--wake");
	if (seconds <= 0 || seconds > 3600 || (argc > 2 && !wake) || argc > 3) {
		fprintf(stderr, "usage: bench-loop-jitter SECONDS [--wake] (0 < SECONDS <= 3600)\n");
		return 2;
	}
	static char payload[WAKE_BYTES];
	int sv[2] = { -1, -1 };
	pthread_t th;
	if (wake && (socketpair(AF_UNIX, SOCK_STREAM, 0, sv) < 0 ||
		     pthread_create(&th, NULL, reader, &sv[1]) != 0)) {
		perror("bench-loop-jitter: --wake");
		return 1;
	}
	uint64_t hist[N_BUCKETS] = { 0 }, hist_cpu[N_BUCKETS] = { 0 }, calls = 0;
	int64_t max_us = 0, max_cpu_us = 0, end = now_ns() + (int64_t)(seconds * 1e9);
	volatile uint64_t sink = 0;

	while (now_ns() < end) {
		nanosleep(&(struct timespec){ 0, 1000000 }, NULL);
		int64_t t0 = now_ns(), c0 = clock_ns(CLOCK_THREAD_CPUTIME_ID);
		for (uint64_t i = 0; i < 20000; i++) /* ~20 us */
			sink += i * i;
		if (wake && write(sv[0], payload, sizeof(payload)) < 0)
			break;
		int64_t us = (now_ns() - t0) / 1000;
		int64_t cpu_us = (clock_ns(CLOCK_THREAD_CPUTIME_ID) - c0) / 1000;
		count(hist, us);
		count(hist_cpu, cpu_us);
		calls++;
		max_us = us > max_us ? us : max_us;
		max_cpu_us = cpu_us > max_cpu_us ? cpu_us : max_cpu_us;
	}
	(void)sink; /* the arithmetic's result: kept only so that the loop is not optimised away */
	printf("ctl_calls=%llu ctl_max_us=%lld ctl_max_cpu_us=%lld", (unsigned long long)calls,
	       (long long)max_us, (long long)max_cpu_us);
	print_hist("ctl_hist_us", hist);
	print_hist("ctl_hist_cpu_us", hist_cpu);
	printf("\n");
	if (wake) {
		close(sv[0]);
		pthread_join(th, NULL);
		close(sv[1]);
	}
	return 0;
}
