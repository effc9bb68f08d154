/*
 * helix-frame-export: listeners and clients on QEMU's main loop
 *
 * What a client's bytes mean is libhfe's host module (hfe/host.h), shared
 * with the daemon; this file only moves bytes, the way daemon/server.c does
 * with poll(): listeners and connections are non-blocking fd handlers, the
 * read handler is installed only while libhfe wants bytes from the client
 * (reading pauses while its queue is over the cap or its pull session is
 * full), the write handler only while replies are queued. Encoder threads
 * wake the loop through an EventNotifier, whose handler collects their work
 * (hfe_host_dispatch); libhfe's timeouts run on a QEMU timer.
 *
 * Every callback's work is bounded, not just its waiting: reads and writes
 * move at most a budget of bytes per client and turn, and the callbacks that
 * visit every client (wake, timer) only queue and re-arm; the bytes go out
 * in each client's own write callback. With 16 subscribers of full-screen
 * 1080p streams, flushing them all from the wake callback took 1.4 ms of CPU
 * in one go.
 *
 * Copyright (c) 2025 helix-frame-export contributors
 *
 * SPDX-License-Identifier: GPL-2.0-or-later
 */

#include "qemu/osdep.h"
#include "qapi/error.h"
#include "qemu/error-report.h"
#include "qemu/main-loop.h"
#include "helix.h"
#include "trace.h"

/*
 * Bytes read from one client per callback: bounds the time one callback
 * spends copying from the socket (~0.1-0.25 ms here); a 1080p frame arrives
 * over many main-loop turns.
 */
#define HELIX_READ_BUDGET (256u << 10)
/* Bytes written to one client per callback: 512 KiB took up to 1.2 ms of CPU
 * (16 subscribers of full-screen 1080p changes); a 1080p IDR is ~100-400 KiB. */
#define HELIX_WRITE_BUDGET (128u << 10)

static void helix_client_read(void *opaque);
static void helix_client_write(void *opaque);

static void helix_client_update_handlers(HelixClient *c)
{
    bool rd = hfe_peer_wants_read(c->peer) || hfe_peer_discarding(c->peer);
    bool wr = hfe_peer_tx_pending(c->peer) > 0;

    if (rd != c->rd || wr != c->wr) {
        qemu_set_fd_handler(c->fd, rd ? helix_client_read : NULL,
                            wr ? helix_client_write : NULL, c);
        c->rd = rd;
        c->wr = wr;
    }
}

static void helix_client_close(HelixClient *c, const char *why)
{
    HelixFrameExport *s = c->hfe;

    trace_helix_client_close(hfe_peer_name(c->peer), why);
    qemu_set_fd_handler(c->fd, NULL, NULL, NULL);
    QTAILQ_REMOVE(&s->clients, c, next);
    s->n_clients--;
    hfe_peer_free(c->peer, why);
    close(c->fd);
    g_free(c);
}

/* Write what the socket takes, up to the budget. -1: the connection is gone. */
static int helix_client_flush(HelixClient *c)
{
    return hfe_peer_write_fd(c->peer, c->fd, HELIX_WRITE_BUDGET);
}

/* Read what the peer lets us read. -1: the connection is gone. */
static int helix_client_rx(HelixClient *c)
{
    return hfe_peer_read_fd(c->peer, c->fd, HELIX_READ_BUDGET);
}

static void helix_timer_arm(HelixFrameExport *s, uint64_t deadline_ms)
{
    uint64_t now;

    if (deadline_ms == UINT64_MAX || deadline_ms >= s->timer_deadline_ms) {
        return;
    }
    now = hfe_now_ms();
    s->timer_deadline_ms = deadline_ms;
    timer_mod(s->timer, qemu_clock_get_ms(QEMU_CLOCK_REALTIME) +
              (deadline_ms > now ? (int64_t)(deadline_ms - now) : 0));
}

/*
 * Collect finished work, apply timeouts, and flush if asked (otherwise the
 * write handler does it); closes the client when libhfe says so. Returns
 * false if the client is gone.
 */
static bool helix_client_service(HelixClient *c, uint64_t now,
                                 uint64_t *deadline, bool flush)
{
    const char *why = NULL;

    for (;;) {
        enum hfe_peer_action a;

        if (flush && helix_client_flush(c) < 0) {
            why = "connection lost";
            break;
        }
        a = hfe_peer_service(c->peer, now, deadline, &why);
        if (a == HFE_PEER_OK) {
            /* service may have queued replies */
            if (flush && helix_client_flush(c) < 0) {
                why = "connection lost";
            }
            break;
        }
        if (a == HFE_PEER_SHUTDOWN_WR) {
            shutdown(c->fd, SHUT_WR);
            hfe_peer_shutdown_done(c->peer);
            continue;
        }
        if (!why) {
            why = "closed";
        }
        break;
    }
    if (why) {
        helix_client_close(c, why);
        return false;
    }
    helix_client_update_handlers(c);
    return true;
}

/* Every client: queue and re-arm only; each one's write handler flushes. */
static void helix_service_all(HelixFrameExport *s)
{
    HelixClient *c, *tmp;
    uint64_t now = hfe_now_ms(), deadline = UINT64_MAX;

    QTAILQ_FOREACH_SAFE(c, &s->clients, next, tmp) {
        helix_client_service(c, now, &deadline, false);
    }
    helix_timer_arm(s, deadline);
    helix_watch_update(s);
}

static void helix_client_read(void *opaque)
{
    HelixClient *c = opaque;
    HelixFrameExport *s = c->hfe;
    HelixTime t0 = helix_enter();
    uint64_t deadline = UINT64_MAX;

    if (helix_client_rx(c) < 0) {
        helix_client_close(c, "connection lost");
    } else if (helix_client_service(c, hfe_now_ms(), &deadline, true)) {
        helix_timer_arm(s, deadline);
    }
    /* A SUBSCRIBE or a close may have changed who watches what. */
    helix_watch_update(s);
    helix_leave(s, HELIX_CB_READ, t0);
}

static void helix_client_write(void *opaque)
{
    HelixClient *c = opaque;
    HelixFrameExport *s = c->hfe;
    HelixTime t0 = helix_enter();
    uint64_t deadline = UINT64_MAX;

    /* Writing may unblock reading (queue below max) or finish a close. */
    if (helix_client_service(c, hfe_now_ms(), &deadline, true)) {
        helix_timer_arm(s, deadline);
    } else {
        helix_watch_update(s);
    }
    helix_leave(s, HELIX_CB_WRITE, t0);
}

static void helix_accept(void *opaque)
{
    HelixListener *l = opaque;
    HelixFrameExport *s = l->hfe;
    HelixTime t0 = helix_enter();

    for (;;) {
        char name[200];
        struct hfe_peer *peer;
        HelixClient *c;
        int fd = hfe_accept(l->fd);

        if (fd < 0) {
            if (errno != EAGAIN && errno != EWOULDBLOCK && errno != EINTR) {
                warn_report("helix-frame-export: accept on %s: %s", l->name,
                            strerror(errno));
            }
            break;
        }
        snprintf(name, sizeof(name), "%s #%u", l->name, ++l->accepted);
        peer = hfe_peer_new(s->host, name, hfe_now_ms());
        if (!peer) {
            close(fd);
            error_report("helix-frame-export: out of memory for a client");
            break;
        }
        hfe_peer_set_control(peer, l->control);
        c = g_new0(HelixClient, 1);
        c->hfe = s;
        c->fd = fd;
        c->peer = peer;
        if (s->n_clients >= s->max_clients) {
            /* One best-effort write of the ERROR BUSY; no state kept. */
            hfe_peer_refuse_busy(peer, s->max_clients);
            helix_client_flush(c);
            hfe_peer_free(peer, "refused (busy)");
            close(fd);
            g_free(c);
            continue;
        }
        QTAILQ_INSERT_TAIL(&s->clients, c, next);
        s->n_clients++;
        trace_helix_client_open(hfe_peer_name(peer));
        helix_client_update_handlers(c);
    }
    helix_leave(s, HELIX_CB_ACCEPT, t0);
}

/* An encoder thread has something (or a GL read-back may start): hand it to
 * the subscribers / clients. */
static void helix_wake(void *opaque)
{
    HelixFrameExport *s = opaque;
    HelixTime t0 = helix_enter();

    event_notifier_test_and_clear(&s->wake);
    hfe_host_dispatch(s->host);
    helix_service_all(s);
#ifdef HELIX_HAVE_GL
    helix_gl_wake(s);
#endif
    helix_leave(s, HELIX_CB_WAKE, t0);
}

/* Called on encoder threads, and on the feeder after a GL read-back. */
void helix_notify(void *opaque)
{
    HelixFrameExport *s = opaque;

    event_notifier_set(&s->wake);
}

static void helix_timer_cb(void *opaque)
{
    HelixFrameExport *s = opaque;
    HelixTime t0 = helix_enter();

    s->timer_deadline_ms = UINT64_MAX;
    helix_service_all(s);
    helix_leave(s, HELIX_CB_TIMER, t0);
}

/* libhfe's host, its wake-up notifier and its timer. */
bool helix_host_start(HelixFrameExport *s, Error **errp)
{
    struct hfe_host_config hc;

    hfe_host_config_default(&hc);
    if (s->encoder) {
        g_strlcpy(hc.enc.name, s->encoder, sizeof(hc.enc.name));
    }
    if (s->bitrate) {
        hc.enc.bitrate = s->bitrate;
    }
    hc.sources |= HFE_SOURCE_SCANOUT | HFE_SOURCE_RESOURCE;
    hc.notify = helix_notify;
    hc.notify_opaque = s;
    hc.resolve_resource = helix_resolve_resource;
    hc.resource_opaque = s;
    hc.input = helix_input_sink(s);
    s->host = hfe_host_new(&hc);
    if (!s->host) {
        error_setg(errp, "out of memory");
        return false;
    }
    if (event_notifier_init(&s->wake, false) < 0) {
        error_setg_errno(errp, errno, "cannot create the wake-up notifier");
        return false;
    }
    s->wake_ok = true;
    qemu_set_fd_handler(event_notifier_get_fd(&s->wake), helix_wake, NULL, s);
    s->timer = timer_new_ms(QEMU_CLOCK_REALTIME, helix_timer_cb, s);
    s->timer_deadline_ms = UINT64_MAX;
    return true;
}

static bool helix_listen_one(HelixFrameExport *s, const char *addr,
                             bool control, Error **errp)
{
    HelixListener *hl = &s->listeners[s->n_listeners];
    char err[256], note[256] = "";

    if (hfe_addr_parse(addr, &hl->addr, err, sizeof(err)) < 0) {
        error_setg(errp, "listen address '%s': %s", addr, err);
        return false;
    }
    hl->fd = hfe_listen(&hl->addr, err, sizeof(err), note, sizeof(note));
    if (hl->fd < 0) {
        error_setg(errp, "cannot listen on '%s': %s", addr, err);
        return false;
    }
    if (note[0]) {
        warn_report("helix-frame-export: %s", note);
    }
    hl->hfe = s;
    hl->control = control;
    hfe_addr_str(&hl->addr, hl->name, sizeof(hl->name));
    s->n_listeners++;
    qemu_set_fd_handler(hl->fd, helix_accept, NULL, hl);
    trace_helix_listen(hl->name, control);
    return true;
}

bool helix_listen_all(HelixFrameExport *s, Error **errp)
{
    unsigned n = 0;

    for (strList *l = s->listen; l; l = l->next) {
        n++;
    }
    for (strList *l = s->control_listen; l; l = l->next) {
        n++;
    }
    s->listeners = g_new0(HelixListener, n);
    for (strList *l = s->listen; l; l = l->next) {
        if (!helix_listen_one(s, l->value, false, errp)) {
            return false;
        }
    }
    for (strList *l = s->control_listen; l; l = l->next) {
        if (!helix_listen_one(s, l->value, true, errp)) {
            return false;
        }
    }
    return true;
}

void helix_close_clients(HelixFrameExport *s)
{
    HelixClient *c, *tmp;

    QTAILQ_FOREACH_SAFE(c, &s->clients, next, tmp) {
        helix_client_close(c, "host shut down");
    }
}

/* Listeners, timer, notifier and libhfe's host; the clients are gone. */
void helix_host_stop(HelixFrameExport *s)
{
    for (unsigned i = 0; i < s->n_listeners; i++) {
        qemu_set_fd_handler(s->listeners[i].fd, NULL, NULL, NULL);
        close(s->listeners[i].fd);
        hfe_addr_cleanup(&s->listeners[i].addr);
    }
    g_free(s->listeners);
    if (s->timer) {
        timer_free(s->timer);
    }
    if (s->wake_ok) {
        qemu_set_fd_handler(event_notifier_get_fd(&s->wake), NULL, NULL, NULL);
        event_notifier_cleanup(&s->wake);
    }
    hfe_host_free(s->host);
}
