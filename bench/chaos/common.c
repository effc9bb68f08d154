/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* The chaos soak's shared pieces: random numbers, event counters, latency
 * samples, failures. See chaos.h. */
#include "chaos.h"

#include <pthread.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "test_util.h"

struct chaos_cfg chaos_cfg;
atomic_bool chaos_stop;
struct chaos_decode chaos_dec;

static pthread_mutex_t lock = PTHREAD_MUTEX_INITIALIZER;
static uint64_t t0_ns;
static atomic_uint_least64_t events[EV_COUNT];
static unsigned failures;

static struct {
	double *v;
	size_t n, cap;
} samples[S_COUNT];

double chaos_ms(void)
{
	uint64_t now = tu_now_ns();
	pthread_mutex_lock(&lock);
	if (!t0_ns)
		t0_ns = now;
	pthread_mutex_unlock(&lock);
	return (double)(now - t0_ns) / 1e6;
}

void chaos_sleep(int ms)
{
	while (ms > 0 && chaos_running()) {
		int step = ms < 50 ? ms : 50;
		struct timespec ts = { .tv_sec = 0, .tv_nsec = (long)step * 1000000L };
		nanosleep(&ts, NULL);
		ms -= step;
	}
}

/* ---- random numbers ---- */

uint64_t rng_next(struct rng *r)
{
	uint64_t z = (r->s += 0x9e3779b97f4a7c15ull);
	z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ull;
	z = (z ^ (z >> 27)) * 0x94d049bb133111ebull;
	return z ^ (z >> 31);
}

void rng_init(struct rng *r, uint64_t seed, unsigned stream)
{
	r->s = seed;
	for (unsigned i = 0; i <= stream; i++)
		r->s ^= rng_next(r) + stream;
}

uint32_t rng_range(struct rng *r, uint32_t lo, uint32_t hi)
{
	if (hi <= lo)
		return lo;
	return lo + (uint32_t)(rng_next(r) % ((uint64_t)hi - lo + 1));
}

bool rng_pct(struct rng *r, unsigned percent)
{
	return rng_next(r) % 100 < percent;
}

/* ---- events ---- */

static const char *const ev_names[EV_COUNT] = {
	[EV_SUB_CONNECT] = "subscriber connects (+ SUBSCRIBE)",
	[EV_SUB_STALL] = "subscriber stops reading",
	[EV_SUB_HALF_CLOSE] = "subscriber half-closes",
	[EV_SUB_RESET] = "subscriber resets (RST)",
	[EV_SUB_CLOSE] = "subscriber closes",
	[EV_SUB_RESUBSCRIBE] = "subscriber re-SUBSCRIBEs",
	[EV_SUB_KEYFRAME_BURST] = "KEYFRAME_REQ bursts",
	[EV_SUB_CONFIG_BURST] = "CONFIG_REQ bursts",
	[EV_PULL_CONNECT] = "pull client connects",
	[EV_PULL_RESIZE] = "pull resolution changes",
	[EV_PULL_FORMAT] = "pull format changes",
	[EV_PULL_KEYFRAME] = "pull keyframe requests",
	[EV_FUZZ_INPUT] = "corpus inputs sent",
	[EV_FUZZ_MUTATED] = "  ... of them mutated",
	[EV_FUZZ_ERROR_REPLY] = "  ... answered with ERROR",
	[EV_LORIS_BYTEWISE] = "slow-loris PING byte by byte",
	[EV_LORIS_STALL] = "slow-loris half header, cut",
	[EV_LORIS_IDLE] = "slow-loris idle connection",
	[EV_VM_START] = "QEMU starts (daemon attaches)",
	[EV_VM_GUEST_DIED] = "  ... guest died before drawing",
	[EV_VM_KILL] = "QEMU killed (SIGKILL)",
	[EV_VM_TERM] = "QEMU stopped (SIGTERM)",
	[EV_MOD_START] = "module: QEMU starts",
	[EV_MOD_REBOOT] = "module: guest reboots (system_reset)",
	[EV_MOD_RESIZE] = "module: output 1 plugged/resized",
	[EV_MOD_RESIZE_BAD] = "module: bad ENABLE_SCANOUT refused",
	[EV_MOD_UNPLUG] = "module: output 1 unplugged",
	[EV_PING] = "monitor PINGs",
};

void ev_add(enum chaos_event e, uint64_t n)
{
	atomic_fetch_add(&events[e], n);
}

uint64_t ev_get(enum chaos_event e)
{
	return atomic_load(&events[e]);
}

const char *ev_name(enum chaos_event e)
{
	return ev_names[e];
}

/* ---- samples ---- */

static const char *const sample_names[S_COUNT] = {
	[S_SUB_RECONNECT_IDR] = "subscriber connect -> IDR",
	[S_SUB_KEYFRAME_IDR] = "KEYFRAME_REQ -> IDR",
	[S_PULL_RECONNECT_IDR] = "pull connect -> first IDR",
	[S_PULL_RESIZE_IDR] = "pull resize -> IDR",
	[S_LORIS_CUT] = "slow-loris stall -> cut",
	[S_PING] = "PING -> PONG",
	[S_SUB_HALF_CLOSE_EOF] = "subscriber half-close -> EOF",
	[S_VM_BOOT] = "QEMU start -> guest draws",
	[S_VM_RESTART_IDR] = "QEMU stopped -> next IDR",
	[S_VM_SUB_IDR] = "VM sub connect/KF -> IDR",
	[S_MOD_BOOT] = "module QEMU start -> draws",
	[S_MOD_REBOOT_IDR] = "module reboot -> next IDR",
	[S_MOD_SUB_IDR] = "module sub connect/KF -> IDR",
};

void sample_add(enum chaos_sample s, double ms)
{
	pthread_mutex_lock(&lock);
	if (samples[s].n == samples[s].cap) {
		size_t cap = samples[s].cap ? samples[s].cap * 2 : 256;
		double *v = realloc(samples[s].v, cap * sizeof(*v));
		REQUIRE(v);
		samples[s].v = v;
		samples[s].cap = cap;
	}
	samples[s].v[samples[s].n++] = ms;
	pthread_mutex_unlock(&lock);
}

const char *sample_name(enum chaos_sample s)
{
	return sample_names[s];
}

static int cmp_double(const void *a, const void *b)
{
	double x = *(const double *)a, y = *(const double *)b;
	return (x > y) - (x < y);
}

void sample_stats(enum chaos_sample s, size_t *n, double *p50, double *p99, double *max)
{
	pthread_mutex_lock(&lock);
	size_t k = samples[s].n;
	*n = k;
	*p50 = *p99 = *max = 0;
	if (k) {
		qsort(samples[s].v, k, sizeof(double), cmp_double);
		/* nearest rank */
		*p50 = samples[s].v[(k * 50 + 99) / 100 - 1];
		*p99 = samples[s].v[(k * 99 + 99) / 100 - 1];
		*max = samples[s].v[k - 1];
	}
	pthread_mutex_unlock(&lock);
}

/* ---- failures ---- */

void chaos_fail(const char *who, const char *fmt, ...)
{
	va_list ap;
	char msg[512];

	va_start(ap, fmt);
	vsnprintf(msg, sizeof(msg), fmt, ap);
	va_end(ap);
	pthread_mutex_lock(&lock);
	failures++;
	pthread_mutex_unlock(&lock);
	fprintf(stderr, "[%8.1f s] FAIL %s: %s\n", chaos_ms() / 1000.0, who, msg);
}

unsigned chaos_failures(void)
{
	pthread_mutex_lock(&lock);
	unsigned n = failures;
	pthread_mutex_unlock(&lock);
	return n;
}
