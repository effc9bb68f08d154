/*
 * helix-frame-export: H.264 export of the VM's displays through libhfe
 *
 * A user-creatable object that serves HXFR clients (the guest over a
 * virtio-serial port, a local client, a client over TCP or vsock):
 *
 *  - scanout push mode: a display listener on each exported graphic
 *    console has every damaged rectangle copied into a libhfe scanout
 *    stream (helix-display.c, helix-feeder.c);
 *  - resource mode: a FRAME_REQUEST without pixels names a virtio-gpu
 *    resource, whose pixels are lent to the encoder (helix-resource.c);
 *  - pull mode (pixels sent by the client), exactly as the daemon does.
 *
 * This file is the QOM object: its properties (the QAPI schema's
 * HelixFrameExportProperties), creation and teardown. The connections are
 * helix-host.c, the measurements and the stats property helix-stats.c.
 * Nothing the object does blocks the main loop: sockets are non-blocking,
 * writes are queued per client (capped), pixels are copied on a feeder
 * thread, encoding runs on libhfe's threads.
 *
 * Copyright (c) 2025 helix-frame-export contributors
 *
 * SPDX-License-Identifier: GPL-2.0-or-later
 */

#include "qemu/osdep.h"
#include "qapi/error.h"
#include "qapi/qapi-builtin-visit.h"
#include "qapi/visitor.h"
#include "qemu/error-report.h"
#include "qemu/main-loop.h"
#include "qemu/module.h"
#include "qom/object_interfaces.h"
#include "hw/qdev-core.h"
#include "sysemu/sysemu.h"
#include "helix.h"
#include "trace.h"

#define HELIX_DEFAULT_MAX_FPS 60
#define HELIX_DEFAULT_MAX_CLIENTS 64

/* ---- properties ---- */

static bool helix_check_mutable(HelixFrameExport *s, const char *name,
                                Error **errp)
{
    if (s->complete) {
        error_setg(errp, "property '%s' cannot be changed after creation",
                   name);
        return false;
    }
    return true;
}

/* listen and control-listen: the member is at the property's opaque offset */
static void helix_get_listen(Object *obj, Visitor *v, const char *name,
                             void *opaque, Error **errp)
{
    strList **member = (strList **)((char *)obj + (uintptr_t)opaque);
    strList *l = *member;

    visit_type_strList(v, name, &l, errp);
}

static void helix_set_listen(Object *obj, Visitor *v, const char *name,
                             void *opaque, Error **errp)
{
    HelixFrameExport *s = HELIX_FRAME_EXPORT(obj);
    strList **member = (strList **)((char *)obj + (uintptr_t)opaque);
    strList *l = NULL;

    if (!helix_check_mutable(s, name, errp) ||
        !visit_type_strList(v, name, &l, errp)) {
        return;
    }
    qapi_free_strList(*member);
    *member = l;
}

static void helix_get_console(Object *obj, Visitor *v, const char *name,
                              void *opaque, Error **errp)
{
    HelixFrameExport *s = HELIX_FRAME_EXPORT(obj);
    uint32List *l = s->console;

    visit_type_uint32List(v, name, &l, errp);
}

static void helix_set_console(Object *obj, Visitor *v, const char *name,
                              void *opaque, Error **errp)
{
    HelixFrameExport *s = HELIX_FRAME_EXPORT(obj);
    uint32List *l = NULL;

    if (!helix_check_mutable(s, name, errp) ||
        !visit_type_uint32List(v, name, &l, errp)) {
        return;
    }
    qapi_free_uint32List(s->console);
    s->console = l;
}

static void helix_get_u32(Object *obj, Visitor *v, const char *name,
                          void *opaque, Error **errp)
{
    uint32_t value = *(uint32_t *)((char *)obj + (uintptr_t)opaque);

    visit_type_uint32(v, name, &value, errp);
}

static void helix_set_u32(Object *obj, Visitor *v, const char *name,
                          void *opaque, Error **errp)
{
    HelixFrameExport *s = HELIX_FRAME_EXPORT(obj);
    uint32_t value;

    if (!helix_check_mutable(s, name, errp) ||
        !visit_type_uint32(v, name, &value, errp)) {
        return;
    }
    *(uint32_t *)((char *)obj + (uintptr_t)opaque) = value;
}

static char *helix_get_encoder(Object *obj, Error **errp)
{
    HelixFrameExport *s = HELIX_FRAME_EXPORT(obj);

    return g_strdup(s->encoder ? s->encoder : HFE_DEFAULT_ENCODER);
}

static void helix_set_encoder(Object *obj, const char *value, Error **errp)
{
    HelixFrameExport *s = HELIX_FRAME_EXPORT(obj);

    if (!helix_check_mutable(s, "encoder", errp)) {
        return;
    }
    g_free(s->encoder);
    s->encoder = g_strdup(value);
}

static void helix_get_max_stall(Object *obj, Visitor *v, const char *name,
                                void *opaque, Error **errp)
{
    HelixFrameExport *s = HELIX_FRAME_EXPORT(obj);
    uint64_t value = s->max_stall_us;

    visit_type_uint64(v, name, &value, errp);
}

/* Writing 0 starts a new measurement. */
static void helix_set_max_stall(Object *obj, Visitor *v, const char *name,
                                void *opaque, Error **errp)
{
    uint64_t value;

    if (!visit_type_uint64(v, name, &value, errp)) {
        return;
    }
    if (value != 0) {
        error_setg(errp, "'%s' can only be reset to 0", name);
        return;
    }
    helix_stats_reset(HELIX_FRAME_EXPORT(obj));
}

/* ---- life cycle ---- */

static void helix_attach_bh(void *opaque)
{
    HelixFrameExport *s = opaque;
    Error *err = NULL;

    if (!helix_attach_consoles(s, &err)) {
        error_prepend(&err, "helix-frame-export: ");
        error_report_err(err);
    }
}

/*
 * The machine is built, but the displays start after this notifier (an
 * OpenGL console gets its display's GL context only then, and which
 * listeners it takes depends on it): attach from the main loop's first turn.
 */
static void helix_machine_done(Notifier *n, void *data)
{
    HelixFrameExport *s = container_of(n, HelixFrameExport, machine_done);

    aio_bh_schedule_oneshot(qemu_get_aio_context(), helix_attach_bh, s);
}

static void helix_complete(UserCreatable *uc, Error **errp)
{
    HelixFrameExport *s = HELIX_FRAME_EXPORT(uc);

    if (!s->listen && !s->control_listen) {
        error_setg(errp, "helix-frame-export needs a 'listen' "
                   "(or 'control-listen') address");
        return;
    }
    if (s->max_fps < 1 || s->max_fps > 240) {
        error_setg(errp, "max-fps must be 1..240");
        return;
    }
    if (s->max_clients < 1) {
        error_setg(errp, "max-clients must be at least 1");
        return;
    }
    if (s->encoder && !hfe_encoder_available(s->encoder)) {
        error_setg(errp, "encoder '%s' is not available in this libavcodec",
                   s->encoder);
        return;
    }
    hfe_log_set_sink(helix_log_sink, NULL);
    /* The VM's main loop comes first: encoders yield the CPU to it. */
    hfe_set_background_workers(true);
    hfe_set_thread_creator(helix_thread_create, NULL);

    if (!helix_host_start(s, errp)) {
        return;
    }
    helix_feeder_start(s);
    if (!helix_listen_all(s, errp)) {
        return;
    }
    s->complete = true;
    trace_helix_start(hfe_version_string());

    /*
     * Consoles exist once the machine is built; object-add later attaches
     * at once (and can fail).
     */
    if (phase_check(PHASE_MACHINE_READY)) {
        helix_attach_consoles(s, errp);
        return;
    }
    s->machine_done.notify = helix_machine_done;
    qemu_add_machine_init_done_notifier(&s->machine_done);
    s->machine_done_added = true;
}

static void helix_init(Object *obj)
{
    HelixFrameExport *s = HELIX_FRAME_EXPORT(obj);

    s->max_fps = HELIX_DEFAULT_MAX_FPS;
    s->max_clients = HELIX_DEFAULT_MAX_CLIENTS;
    QTAILQ_INIT(&s->clients);
    QSIMPLEQ_INIT(&s->feed_q);
    qemu_mutex_init(&s->feed_lock);
    qemu_cond_init(&s->feed_cond);
}

/* In this order: nothing left running uses what is freed after it. */
static void helix_finalize(Object *obj)
{
    HelixFrameExport *s = HELIX_FRAME_EXPORT(obj);

    if (s->machine_done_added) {
        qemu_remove_machine_init_done_notifier(&s->machine_done);
    }
    helix_close_clients(s);
    helix_detach_consoles(s);
    helix_feeder_stop(s);
    helix_free_scanouts(s);
    helix_host_stop(s);
    helix_resource_cleanup(s);
    qapi_free_strList(s->listen);
    qapi_free_strList(s->control_listen);
    qapi_free_uint32List(s->console);
    g_free(s->encoder);
    qemu_cond_destroy(&s->feed_cond);
    qemu_mutex_destroy(&s->feed_lock);
}

static void helix_class_init(ObjectClass *oc, void *data)
{
    UserCreatableClass *ucc = USER_CREATABLE_CLASS(oc);

    ucc->complete = helix_complete;

    object_class_property_add(oc, "listen", "strList", helix_get_listen,
                              helix_set_listen, NULL,
                              (void *)offsetof(HelixFrameExport, listen));
    object_class_property_set_description(oc, "listen",
        "Addresses to listen on: unix:PATH, tcp:HOST:PORT, vsock:CID:PORT "
        "(repeat the key for several)");
    object_class_property_add(oc, "control-listen", "strList",
                              helix_get_listen, helix_set_listen, NULL,
                              (void *)offsetof(HelixFrameExport,
                                               control_listen));
    object_class_property_set_description(oc, "control-listen",
        "More addresses, whose clients may also inject keyboard and pointer "
        "input into the consoles they watch");
    object_class_property_add(oc, "console", "uint32List", helix_get_console,
                              helix_set_console, NULL, NULL);
    object_class_property_set_description(oc, "console",
        "Graphic consoles to export (default: all); "
        "scanout id = console index");
    object_class_property_add(oc, "max-fps", "uint32", helix_get_u32,
                              helix_set_u32, NULL,
                              (void *)offsetof(HelixFrameExport, max_fps));
    object_class_property_set_description(oc, "max-fps",
        "Most access units per second and scanout (default 60)");
    object_class_property_add(oc, "bitrate", "uint32", helix_get_u32,
                              helix_set_u32, NULL,
                              (void *)offsetof(HelixFrameExport, bitrate));
    object_class_property_set_description(oc, "bitrate", "Bit rate in bit/s");
    object_class_property_add(oc, "max-clients", "uint32", helix_get_u32,
                              helix_set_u32, NULL,
                              (void *)offsetof(HelixFrameExport,
                                               max_clients));
    object_class_property_set_description(oc, "max-clients",
        "Most simultaneous connections (default 64)");
    object_class_property_add_str(oc, "encoder", helix_get_encoder,
                                  helix_set_encoder);
    object_class_property_set_description(oc, "encoder",
        "libavcodec encoder (default libx264)");
    object_class_property_add(oc, "max-stall-us", "uint64", helix_get_max_stall,
                              helix_set_max_stall, NULL, NULL);
    object_class_property_set_description(oc, "max-stall-us",
        "Longest main-loop callback of this object in microseconds "
        "(write 0 to reset)");
    object_class_property_add(oc, "stats", "HelixFrameExportStats",
                              helix_get_stats, NULL, NULL, NULL);
    object_class_property_set_description(oc, "stats",
        "Main-loop, feeder and encoder counters (read only)");
}

static const TypeInfo helix_frame_export_info = {
    .name = TYPE_HELIX_FRAME_EXPORT,
    .parent = TYPE_OBJECT,
    .instance_size = sizeof(HelixFrameExport),
    .instance_init = helix_init,
    .instance_finalize = helix_finalize,
    .class_init = helix_class_init,
    .interfaces = (InterfaceInfo[]) {
        { TYPE_USER_CREATABLE },
        { }
    },
};

static void helix_register_types(void)
{
    type_register_static(&helix_frame_export_info);
}

type_init(helix_register_types);
