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
 * usage: bench-loop-jitter SECONDS
 * prints: ctl_calls=N ctl_max_us=N ctl_max_cpu_us=N ctl_hist_us=N/... ctl_hist_cpu_us=N/...
 * (the second: the thread's CPU time in each callback, which on a virtual
 * machine also catches time stolen by the hypervisor and interrupts)
 */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <time.h>

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

int main(int argc, char **argv)
{
	double seconds = argc > 1 ? atof(argv[1]) : 0;
	if (seconds <= 0 || seconds > 3600) {
		fprintf(stderr, "usage: bench-loop-jitter SECONDS (0 < SECONDS <= 3600)\n");
		return 2;
	}
	uint64_t hist[N_BUCKETS] = { 0 }, hist_cpu[N_BUCKETS] = { 0 }, calls = 0;
	int64_t max_us = 0, max_cpu_us = 0, end = now_ns() + (int64_t)(seconds * 1e9);
	volatile uint64_t sink = 0;

	while (now_ns() < end) {
		nanosleep(&(struct timespec){ 0, 1000000 }, NULL);
		int64_t t0 = now_ns(), c0 = clock_ns(CLOCK_THREAD_CPUTIME_ID);
		for (uint64_t i = 0; i < 20000; i++) /* ~20 us */
			sink += i * i;
		int64_t us = (now_ns() - t0) / 1000;
		int64_t cpu_us = (clock_ns(CLOCK_THREAD_CPUTIME_ID) - c0) / 1000;
		count(hist, us);
		count(hist_cpu, cpu_us);
		calls++;
		max_us = us > max_us ? us : max_us;
		max_cpu_us = cpu_us > max_cpu_us ? cpu_us : max_cpu_us;
	}
	printf("ctl_calls=%llu ctl_max_us=%lld ctl_max_cpu_us=%lld", (unsigned long long)calls,
	       (long long)max_us, (long long)max_cpu_us);
	print_hist("ctl_hist_us", hist);
	print_hist("ctl_hist_cpu_us", hist_cpu);
	printf("\n");
	return 0;
}
