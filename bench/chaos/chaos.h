/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * The chaos soak (bench/chaos.c, issue 14): what its actors share.
 *
 * One daemon with test scanouts; actors on their own threads, each with its
 * own random generator seeded from the run's seed and its index, so a run's
 * choices replay with --seed (timing still differs from run to run):
 *   subscriber.c  16 scanout subscribers that stall, half-close, reset,
 *                 reconnect, re-subscribe and burst KEYFRAME_REQ/CONFIG_REQ,
 *                 every access unit decoded with errors fatal;
 *   pull.c        v1 and v2 pull clients (FRAME_REQUEST with pixels) with
 *                 random sizes and formats, changing both mid-stream, every
 *                 reply decoded and compared with the frame sent;
 *   hostile.c     connections sending fuzz/corpus inputs, mutated, and
 *                 slow-loris peers;
 *   vm.c          (--vm) a stock-QEMU VM through -display dbus, killed and
 *                 restarted, watched by subscribers of kind 1;
 *   module.c      (--module) a VM with the QEMU module, rebooted, its second
 *                 output plugged, resized and unplugged, watched by
 *                 subscribers of kind 2.
 * chaos.c starts the daemon, watches it (alive, RSS, fds, PING time) and
 * prints and asserts the summary.
 */
#ifndef HFE_BENCH_CHAOS_H
#define HFE_BENCH_CHAOS_H

#include <stdatomic.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

/* ---- the run ---- */

struct chaos_cfg {
	char addr[300];         /* "unix:PATH" of the daemon */
	char tcp_addr[64];      /* "tcp:127.0.0.1:PORT" of the same daemon */
	char vm_addr[4200];     /* "unix:PATH": the channel of the VM's consoles (--vm) */
	char module_addr[4200]; /* "unix:PATH": the QEMU module's listener (--module) */
	char corpus[1024];      /* fuzz/corpus */
	unsigned n_scanouts;    /* test scanouts 0..n-1 */
	uint64_t seed;
	int stall_timeout_ms;   /* the daemon's --stall-timeout */
	int duration_s;         /* the run's length */
};

extern struct chaos_cfg chaos_cfg;
extern atomic_bool chaos_stop; /* set at the end of the run: actors return */

static inline bool chaos_running(void)
{
	return !atomic_load(&chaos_stop);
}

/* Sleep up to ms, in slices, returning early once the run stops. */
void chaos_sleep(int ms);
/* Monotonic milliseconds since the run started. */
double chaos_ms(void);

/* ---- random numbers (splitmix64: one generator per actor) ---- */

struct rng {
	uint64_t s;
};

void rng_init(struct rng *r, uint64_t seed, unsigned stream);
uint64_t rng_next(struct rng *r);
/* Uniform in [lo, hi] (inclusive). */
uint32_t rng_range(struct rng *r, uint32_t lo, uint32_t hi);
/* True with probability percent / 100. */
bool rng_pct(struct rng *r, unsigned percent);

/* ---- events and measurements (thread-safe) ---- */

enum chaos_event {
	EV_SUB_CONNECT,      /* a subscriber (re)connected and subscribed */
	EV_SUB_STALL,        /* stopped reading for a while */
	EV_SUB_HALF_CLOSE,   /* shutdown(SHUT_WR), read to EOF */
	EV_SUB_RESET,        /* SO_LINGER 0 + close: a reset */
	EV_SUB_CLOSE,        /* plain close, reconnect */
	EV_SUB_RESUBSCRIBE,  /* SUBSCRIBE again on the same connection (same or other scanout) */
	EV_SUB_KEYFRAME_BURST,
	EV_SUB_CONFIG_BURST,
	EV_PULL_CONNECT,     /* a pull client (re)connected */
	EV_PULL_RESIZE,      /* mid-stream resolution change */
	EV_PULL_FORMAT,      /* mid-stream pixel format change */
	EV_PULL_KEYFRAME,    /* KEYFRAME_REQ / force_keyframe */
	EV_FUZZ_INPUT,       /* a corpus input sent on its own connection */
	EV_FUZZ_MUTATED,     /* ... of which mutated */
	EV_FUZZ_ERROR_REPLY, /* ... answered with ERROR */
	EV_LORIS_BYTEWISE,   /* a PING a byte at a time: answered */
	EV_LORIS_STALL,      /* half a header then silence: cut by the stall timeout */
	EV_LORIS_IDLE,       /* connected, silent between messages: kept */
	EV_VM_START,         /* QEMU started (the daemon attaches) */
	EV_VM_GUEST_DIED,    /* the guest died before drawing (e.g. a panic at boot) */
	EV_VM_KILL,          /* QEMU SIGKILLed */
	EV_VM_TERM,          /* QEMU stopped with SIGTERM */
	EV_MOD_START,        /* the module's QEMU started */
	EV_MOD_REBOOT,       /* its guest rebooted (system_reset) */
	EV_MOD_RESIZE,       /* ENABLE_SCANOUT of output 1 with a new size: done */
	EV_MOD_RESIZE_BAD,   /* ... with a size or refresh the host must refuse: refused */
	EV_MOD_UNPLUG,       /* DISABLE_SCANOUT of output 1 */
	EV_PING,             /* the monitor's PINGs */
	EV_COUNT
};

void ev_add(enum chaos_event e, uint64_t n);
uint64_t ev_get(enum chaos_event e);
const char *ev_name(enum chaos_event e);

enum chaos_sample {
	S_SUB_RECONNECT_IDR, /* connect start -> first IDR of the (new) subscription, ms */
	S_SUB_KEYFRAME_IDR,  /* KEYFRAME_REQ burst -> next IDR, ms */
	S_PULL_RECONNECT_IDR,/* pull connect start -> first reply (an IDR), ms */
	S_PULL_RESIZE_IDR,   /* resized frame sent -> its reply (an IDR), ms */
	S_LORIS_CUT,         /* last byte sent -> connection closed by the daemon, ms */
	S_PING,              /* PING -> PONG on an idle connection, ms */
	S_SUB_HALF_CLOSE_EOF,/* subscriber's half-close -> the daemon's EOF, ms */
	S_VM_BOOT,           /* QEMU started -> the guest draws, ms */
	S_VM_RESTART_IDR,    /* QEMU stopped -> a subscriber's first IDR of the next QEMU, ms */
	S_VM_SUB_IDR,        /* VM subscriber connect / KEYFRAME_REQ -> IDR (QEMU may be down), ms */
	S_MOD_BOOT,          /* the module's QEMU started -> the guest draws, ms */
	S_MOD_REBOOT_IDR,    /* system_reset -> a subscriber's first IDR after it, ms */
	S_MOD_SUB_IDR,       /* module subscriber connect / KEYFRAME_REQ -> IDR, ms */
	S_COUNT
};

void sample_add(enum chaos_sample s, double ms);
const char *sample_name(enum chaos_sample s);
/* n, p50, p99, max of a sample kind (0s when empty). */
void sample_stats(enum chaos_sample s, size_t *n, double *p50, double *p99, double *max);

/* Failures: printed at once with the actor's name, counted, asserted 0. */
void chaos_fail(const char *who, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
unsigned chaos_failures(void);

/* Decoding totals. */
struct chaos_decode {
	atomic_uint_least64_t aus;       /* access units received by healthy clients */
	atomic_uint_least64_t checked;   /* decoded without error, from the first IDR on */
	atomic_uint_least64_t corrupted; /* decoder errors (must stay 0) */
	atomic_uint_least64_t compared;  /* pull pictures compared with what was sent */
	atomic_uint_least64_t bytes;
};
extern struct chaos_decode chaos_dec;

/* ---- actors (each runs until chaos_stop) ---- */

struct actor {
	unsigned id;
	char name[32];
	struct rng rng;
	unsigned kind; /* actor-specific variant */
};

void *subscriber_main(void *actor); /* kind: 0 = test scanouts, 1 = the VM's, 2 = the module's */
void *pull_main(void *actor);   /* kind: 1 = v1, 2 = v2 */
void *fuzz_main(void *actor);
void *loris_main(void *actor);
/* Build or find the e2e guest (before the run: it may take a while). 0 or -1. */
int vm_prepare(void);
void *vm_main(void *actor);
/* How many times QEMU has been stopped, and when it last was (chaos_ms). */
unsigned vm_generation(double *since_ms);
/* The module's VM: build or find the patched QEMU and the guest (0 or -1),
 * boot it and wait for the guest to draw (0 or -1; module_addr set). */
int module_prepare(void);
int module_start(void);
void *module_main(void *actor);
/* How many times its guest was rebooted, and when last (chaos_ms). */
unsigned module_generation(double *since_ms);
/* Its QEMU's pid while it runs, else 0. */
pid_t module_qemu_pid(void);
/* At the end: check the main-loop statistics, stop QEMU (it must exit 0). */
void module_finish(void);
/* The main-loop baseline beside the module (bench-loop-jitter for the run). */
void *jitter_main(void *actor);

/* Load the corpus (the files directly in chaos_cfg.corpus). Number of inputs. */
size_t fuzz_load_corpus(void);

#endif
