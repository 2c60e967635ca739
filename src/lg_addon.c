/*
 * lg_addon.c — the N-API class `Engine` that lib/proxy.js wraps.
 *
 *   new Engine(normalizedConfig, onEvent)  build the config and first snapshot
 *                                          (throws ERR_LEGATO_CONFIG)
 *   engine.start() → { ports, warning }    bind everything, start the workers (throws system
 *                                          errors)
 *   engine.stop(graceMs)                   ask the workers to stop; each posts 'workerExit'
 *   engine.join()                          after the last 'workerExit': join the threads
 *   engine.updateConfig(normalizedConfig)  build and publish a new snapshot
 *   engine.pending(id) / engine.resolve(id, decision, normalizedConfig)
 *   engine.metrics() → object              counters summed over workers
 *   engine.setTunnelEvents(on)
 *
 * Events reach JS through one napi_threadsafe_function created by start() and released by
 * join(): onEvent(type, payload). Workers call it in non-blocking mode only.
 *
 * This file sees the engine only through lg_engine.h (and lg_jsconf.h for the conversions).
 *
 * Teardown: if the environment goes away while the engine runs (process.exit(), a terminated
 * worker_threads Worker), an env cleanup hook stops and joins the workers. It is registered after
 * the threadsafe function is created, and cleanup hooks run in reverse order of registration, so
 * the workers are gone before Node tears the threadsafe function down. The wrapper's finalizer
 * frees the engine (stopping it first if it was dropped while running).
 *
 * Nothing here throws across the boundary except through napi_throw_*; N-API failures become JS
 * exceptions, never aborts.
 */
#ifndef NAPI_VERSION
#define NAPI_VERSION 8
#endif
#include <node_api.h>

#include "lg_auth.h"
#include "lg_engine.h"
#include "lg_jsconf.h"
#include "lg_limits.h"
#include "lg_name.h"

#include <errno.h>
#include <stdio.h>
#include <string.h>
#include <uv.h>

/* Owner: the JS Engine object (napi_wrap); freed by its finalizer. */
typedef struct lg_js_engine_s {
    napi_env env;
    lg_engine_t *engine;
    napi_ref on_event;             /* the JS event callback: a weak reference (the Proxy keeps
                                      it alive), so a dropped Proxy can be collected */
    napi_threadsafe_function tsfn; /* while started and not joined */
    unsigned tsfn_live;            /* created and not yet finalized (events may still arrive);
                                      a count: a failed start's function may finalize after a
                                      retried start made the next one */
    bool destroy_pending;          /* collected while tsfn_live: free when the last is finalized */
    bool cleanup_hook;             /* env cleanup hook registered */
} lg_js_engine_t;

/* Throw for a failed N-API call unless an exception is already pending. */
static void throw_napi(napi_env env, const char *what)
{
    bool pending = false;
    napi_is_exception_pending(env, &pending);
    if (pending) return;
    const napi_extended_error_info *info = NULL;
    napi_get_last_error_info(env, &info);
    char msg[256];
    snprintf(msg, sizeof(msg), "legato: %s failed: %s", what,
             info && info->error_message ? info->error_message : "unknown N-API error");
    napi_throw_error(env, "ERR_LEGATO_INTERNAL", msg);
}

#define NAPI_CALL(env, call)                                                                       \
    do {                                                                                           \
        if ((call) != napi_ok) {                                                                   \
            throw_napi((env), #call);                                                              \
            return NULL;                                                                           \
        }                                                                                          \
    } while (0)

static lg_js_engine_t *unwrap(napi_env env, napi_callback_info info, size_t *argc, napi_value *argv)
{
    napi_value self;
    if (napi_get_cb_info(env, info, argc, argv, &self, NULL) != napi_ok) {
        throw_napi(env, "napi_get_cb_info");
        return NULL;
    }
    lg_js_engine_t *js = NULL;
    if (napi_unwrap(env, self, (void **)&js) != napi_ok || js == NULL || js->engine == NULL) {
        napi_throw_type_error(env, "ERR_LEGATO_INTERNAL", "legato: not an Engine");
        return NULL;
    }
    return js;
}

/* ---- events ---------------------------------------------------------------------------- */

static const char *event_name(int type)
{
    switch (type) {
    case LG_EV_READY:
        return "ready";
    case LG_EV_WORKER_EXIT:
        return "workerExit";
    case LG_EV_WARNING:
        return "warning";
    case LG_EV_ERROR:
        return "error";
    case LG_EV_TUNNEL:
        return "tunnel";
    case LG_EV_SUSPENDED:
        return "suspended";
    case LG_EV_BLOCKED:
        return "blocked";
    case LG_EV_ACCESS:
        return "access";
    default:
        return "unknown";
    }
}

static const char *block_reason_name(int reason)
{
    switch (reason) {
#define LG_REASON_CASE(name, js)                                                                   \
    case LG_BLOCK_##name:                                                                          \
        return js;
        LG_BLOCK_REASONS(LG_REASON_CASE)
#undef LG_REASON_CASE
    default:
        return "unknown";
    }
}

static const char *const CLOSE_NAMES[LG_CLOSE_N] = {
#define LG_CLOSE_NAME(name, js) [LG_CLOSE_##name] = js,
    LG_CLOSE_REASONS(LG_CLOSE_NAME)
#undef LG_CLOSE_NAME
};

static const char *close_reason_name(int why)
{
    return why > LG_CLOSE_NONE && why < LG_CLOSE_N ? CLOSE_NAMES[why] : "error";
}

static const char *decision_name(int d)
{
    switch (d) {
    case LG_DECISION_PASSTHROUGH:
        return "passthrough";
    case LG_DECISION_TERMINATE:
        return "terminate";
    case LG_DECISION_SUSPENDED:
        return "suspended";
    case LG_DECISION_SUSP_PASS:
        return "suspended:passthrough";
    case LG_DECISION_SUSP_TERM:
        return "suspended:terminate";
    case LG_DECISION_TUNNEL:
        return "tunnel";
    default:
        return "none";
    }
}

static void set_int(napi_env env, napi_value obj, const char *key, int64_t v)
{
    napi_value n;
    if (napi_create_int64(env, v, &n) == napi_ok) napi_set_named_property(env, obj, key, n);
}

static void set_u64(napi_env env, napi_value obj, const char *key, uint64_t v)
{
    napi_value n;
    if (napi_create_double(env, (double)v, &n) == napi_ok)
        napi_set_named_property(env, obj, key, n);
}

static void set_str(napi_env env, napi_value obj, const char *key, const char *s)
{
    napi_value v;
    if (napi_create_string_utf8(env, s, NAPI_AUTO_LENGTH, &v) == napi_ok) {
        napi_set_named_property(env, obj, key, v);
    }
}

static void call_js(napi_env env, napi_value js_cb, void *context, void *data)
{
    lg_js_engine_t *js = context;
    lg_event_t *ev = data;
    if (env == NULL || js_cb == NULL) {
        /* The threadsafe function is being torn down: the engine may be gone already. */
        lg_free(ev);
        return;
    }
    napi_value argv[2], payload, undef;
    if (napi_create_string_utf8(env, event_name(ev->type), NAPI_AUTO_LENGTH, &argv[0]) == napi_ok &&
        napi_create_object(env, &payload) == napi_ok &&
        napi_get_undefined(env, &undef) == napi_ok) {
        set_int(env, payload, "worker", ev->worker);
        if (ev->type == LG_EV_SUSPENDED) {
            const lg_ev_suspended_t *e = &ev->u.suspended;
            set_int(env, payload, "code", 0);
            set_str(env, payload, "message", "");
            set_str(env, payload, "id", e->id);
            set_int(env, payload, "listener", e->listener);
            set_str(env, payload, "sni", e->sni);
            set_str(env, payload, "peerIp", e->peer_ip);
            set_int(env, payload, "peerPort", e->peer_port);
            set_str(env, payload, "alpn", e->alpn);
            set_str(env, payload, "ja3", e->ja3);
            set_str(env, payload, "ja4", e->ja4);
        } else if (ev->type == LG_EV_BLOCKED) {
            const lg_ev_blocked_t *e = &ev->u.blocked;
            set_int(env, payload, "code", 0);
            set_str(env, payload, "message", "");
            set_int(env, payload, "listener", e->listener);
            set_str(env, payload, "reason", block_reason_name(e->reason));
            set_u64(env, payload, "count", e->count);
            set_str(env, payload, "ip", e->ip);
            set_str(env, payload, "ja3", e->ja3);
            set_str(env, payload, "ja4", e->ja4);
        } else if (ev->type == LG_EV_ACCESS) {
            const lg_ev_access_t *e = &ev->u.access;
            char reason[64];
            snprintf(reason, sizeof(reason), "%s%s", close_reason_name(e->why),
                     e->why == LG_CLOSE_REFUSED_BLOCK ? block_reason_name(e->block) : "");
            set_int(env, payload, "code", 0);
            set_str(env, payload, "message", "");
            set_int(env, payload, "listener", e->listener);
            set_int(env, payload, "route", e->route);
            set_str(env, payload, "closeReason", reason);
            set_str(env, payload, "decision", decision_name(e->decision));
            set_int(env, payload, "status", e->status);
            set_str(env, payload, "peerIp", e->peer_ip);
            set_int(env, payload, "peerPort", e->peer_port);
            set_str(env, payload, "sni", e->sni);
            set_str(env, payload, "routeSni", e->route_sni);
            set_str(env, payload, "upstream", e->upstream);
            set_str(env, payload, "tlsVersion", e->tls_version);
            set_str(env, payload, "tlsCipher", e->cipher);
            set_str(env, payload, "ja4", e->ja4);
            set_u64(env, payload, "bytesFromClient", e->bytes_in);
            set_u64(env, payload, "bytesToClient", e->bytes_out);
            set_u64(env, payload, "durationMs", e->duration_ms);
            set_u64(env, payload, "endMs", (uint64_t)e->end_ms);
        } else if (ev->type == LG_EV_TUNNEL) {
            const lg_ev_tunnel_t *e = &ev->u.tunnel;
            set_int(env, payload, "code", 0);
            set_str(env, payload, "message", "");
            set_int(env, payload, "listener", e->listener);
            set_int(env, payload, "status", e->status);
            set_str(env, payload, "target", e->target);
            set_int(env, payload, "port", e->port);
            set_u64(env, payload, "bytesFromClient", e->bytes_in);
            set_u64(env, payload, "bytesToClient", e->bytes_out);
            set_u64(env, payload, "durationMs", e->duration_ms);
            set_str(env, payload, "reason", e->why);
        } else {
            set_int(env, payload, "code", ev->u.note.code);
            if (ev->u.note.code < 0) set_str(env, payload, "errno", uv_err_name(ev->u.note.code));
            set_str(env, payload, "message", ev->u.note.message);
        }
        argv[1] = payload;
        /* lib/proxy.js catches everything its handler throws; an exception escaping here would
         * be a bug there, reported by Node as uncaught. */
        napi_call_function(env, undef, js_cb, 2, argv, NULL);
    }
    lg_engine_event_done(js->engine, ev);
    lg_free(ev);
}

static int post_event(void *ctx, lg_event_t *ev)
{
    lg_js_engine_t *js = ctx;
    if (napi_call_threadsafe_function(js->tsfn, ev, napi_tsfn_nonblocking) != napi_ok) {
        lg_free(ev);
        return -EAGAIN;
    }
    return 0;
}

/* ---- lifecycle ------------------------------------------------------------------------- */

static void release_tsfn(lg_js_engine_t *js)
{
    if (js->tsfn != NULL) {
        napi_release_threadsafe_function(js->tsfn, napi_tsfn_release);
        js->tsfn = NULL;
    }
}

static void env_cleanup(void *arg)
{
    lg_js_engine_t *js = arg;
    js->cleanup_hook = false;
    lg_engine_stop_sync(js->engine);
    release_tsfn(js);
}

static void remove_cleanup_hook(lg_js_engine_t *js)
{
    if (js->cleanup_hook) {
        napi_remove_env_cleanup_hook(js->env, env_cleanup, js);
        js->cleanup_hook = false;
    }
}

static void destroy_js(napi_env env, lg_js_engine_t *js)
{
    lg_engine_destroy(js->engine);
    if (js->on_event != NULL && env != NULL) napi_delete_reference(env, js->on_event);
    lg_free(js);
}

/* The threadsafe function is gone: no event can reach call_js any more. */
static void tsfn_finalized(napi_env env, void *data, void *hint)
{
    (void)hint;
    lg_js_engine_t *js = data;
    js->tsfn_live--;
    if (js->tsfn_live == 0 && js->destroy_pending) destroy_js(env, js);
}

/*
 * The JS object was collected. Workers are stopped and joined here; if the threadsafe function
 * may still deliver queued events (which read js and the engine), freeing waits for its
 * finalizer.
 */
static void finalize(napi_env env, void *data, void *hint)
{
    (void)hint;
    lg_js_engine_t *js = data;
    lg_engine_stop_sync(js->engine);
    remove_cleanup_hook(js);
    release_tsfn(js);
    if (js->tsfn_live > 0) {
        js->destroy_pending = true;
        return;
    }
    destroy_js(env, js);
}

static napi_value engine_new(napi_env env, napi_callback_info info)
{
    size_t argc = 2;
    napi_value argv[2], self;
    NAPI_CALL(env, napi_get_cb_info(env, info, &argc, argv, &self, NULL));
    napi_valuetype t0 = napi_undefined, t1 = napi_undefined;
    if (argc >= 2) {
        napi_typeof(env, argv[0], &t0);
        napi_typeof(env, argv[1], &t1);
    }
    if (t0 != napi_object || t1 != napi_function) {
        napi_throw_type_error(env, "ERR_LEGATO_INTERNAL", "Engine(config, onEvent)");
        return NULL;
    }
    lg_src_t src;
    if (lg_jsconf_read(env, argv[0], &src) != 0) return NULL;
    lg_config_t conf;
    lg_cfgerr_t err;
    lg_snapshot_t *snap = NULL;
    lg_tls_cache_t cache;
    memset(&cache, 0, sizeof(cache));
    if (lg_config_build(&src, &conf, &err) != 0) {
        lg_src_free(&src);
        lg_jsconf_throw(env, &err);
        return NULL;
    }
    if (lg_snapshot_build(&src, &conf, NULL, &cache, &snap, &err) != 0) {
        lg_src_free(&src);
        lg_tls_cache_free(&cache);
        lg_config_free(&conf);
        lg_jsconf_throw(env, &err);
        return NULL;
    }
    lg_src_free(&src);
    lg_js_engine_t *js = lg_calloc(1, sizeof(*js));
    if (js == NULL) {
        lg_tls_cache_free(&cache);
        lg_config_free(&conf);
        lg_snapshot_destroy(snap);
        napi_throw_error(env, "ERR_LEGATO_INTERNAL", "legato: out of memory");
        return NULL;
    }
    js->env = env;
    int rc = lg_engine_create(&conf, snap, &cache, &js->engine);
    if (rc != 0) {
        lg_free(js);
        napi_throw_error(env, "ERR_LEGATO_INTERNAL", "legato: could not create the engine");
        return NULL;
    }
    if (napi_create_reference(env, argv[1], 0, &js->on_event) != napi_ok ||
        napi_wrap(env, self, js, finalize, NULL, NULL) != napi_ok) {
        if (js->on_event != NULL) napi_delete_reference(env, js->on_event);
        lg_engine_destroy(js->engine);
        lg_free(js);
        throw_napi(env, "napi_wrap");
        return NULL;
    }
    return self;
}

/* An Error with code uv_err_name(rc) and the message, its errno and syscall set. */
static napi_value errno_error(napi_env env, int rc, const char *msg, const char *syscall)
{
    napi_value code, message, err;
    napi_create_string_utf8(env, uv_err_name(rc), NAPI_AUTO_LENGTH, &code);
    napi_create_string_utf8(env, msg, NAPI_AUTO_LENGTH, &message);
    napi_create_error(env, code, message, &err);
    set_int(env, err, "errno", rc);
    set_str(env, err, "syscall", syscall);
    return err;
}

static napi_value system_error(napi_env env, int rc, const char *syscall, const char *host,
                               int port, int listener)
{
    char msg[384];
    if (listener >= 0) {
        snprintf(msg, sizeof(msg), "%s %s: %s %s:%d (listeners[%d])", syscall, uv_err_name(rc),
                 uv_strerror(rc), host, port, listener);
    } else { /* not about a listener: a worker's loop or thread could not be made */
        snprintf(msg, sizeof(msg), "%s %s: %s", syscall, uv_err_name(rc), uv_strerror(rc));
    }
    napi_value err = errno_error(env, rc, msg, syscall);
    set_str(env, err, "address", host);
    set_int(env, err, "port", port);
    set_int(env, err, "listenerIndex", listener);
    return err;
}

/* The worker threads could not get workerPriority 'realtime' (lg_worker_prioritize). */
static napi_value priority_error(napi_env env, int rc)
{
    char msg[384];
    snprintf(msg, sizeof(msg),
             "workerPriority 'realtime': the worker threads could not be made real-time "
             "(pthread_setschedparam SCHED_FIFO: %s %s)%s",
             uv_err_name(rc), uv_strerror(rc),
             rc == -EPERM ? "; the process needs CAP_SYS_NICE or an RLIMIT_RTPRIO of at least 1 "
                            "(ulimit -r, or systemd's LimitRTPRIO=1)"
                          : "");
    return errno_error(env, rc, msg, "pthread_setschedparam");
}

static napi_value engine_start(napi_env env, napi_callback_info info)
{
    size_t argc = 1;
    napi_value argv[1];
    lg_js_engine_t *js = unwrap(env, info, &argc, argv);
    if (js == NULL) return NULL;
    lg_engine_t *e = js->engine;
    if (lg_engine_state(e) != LG_ENGINE_NEW) {
        napi_throw_error(env, "ERR_LEGATO_STATE", "the proxy was already started");
        return NULL;
    }
    /* Optional: the Engine whose addresses this one takes over (lib/proxy.js checks that it is
     * a running Proxy's engine). */
    const lg_engine_t *from = NULL;
    napi_valuetype t = napi_undefined;
    if (argc >= 1 && napi_typeof(env, argv[0], &t) == napi_ok && t == napi_object) {
        lg_js_engine_t *other = NULL;
        if (napi_unwrap(env, argv[0], (void **)&other) != napi_ok || other == NULL ||
            other->engine == NULL || other == js) {
            napi_throw_type_error(env, "ERR_LEGATO_INTERNAL", "legato: takeOver is not an Engine");
            return NULL;
        }
        if (lg_engine_state(other->engine) != LG_ENGINE_RUNNING) {
            napi_throw_error(env, "ERR_LEGATO_STATE", "takeOver: that proxy is not running");
            return NULL;
        }
        from = other->engine;
    }
    napi_value cb, name;
    NAPI_CALL(env, napi_get_reference_value(env, js->on_event, &cb));
    if (cb == NULL) {
        napi_throw_error(env, "ERR_LEGATO_STATE",
                         "the event callback was garbage-collected (keep it referenced)");
        return NULL;
    }
    NAPI_CALL(env, napi_create_string_utf8(env, "legato", NAPI_AUTO_LENGTH, &name));
    /* Unbounded queue: the engine bounds what it posts (LG_EVENT_QUEUE_MAX per class of event,
     * lg_event.h). The function holds
     * its own strong reference to cb, so a running proxy stays alive, like a listening server. */
    NAPI_CALL(env, napi_create_threadsafe_function(env, cb, NULL, name, 0, 1, js, tsfn_finalized,
                                                   js, call_js, &js->tsfn));
    js->tsfn_live++;
    int bad = -1;
    char warn[LG_EVENT_MESSAGE_MAX];
    int rc = lg_engine_start(e, post_event, js, from, &bad, warn, sizeof(warn));
    const lg_config_t *conf = lg_engine_config(e);
    if (rc != 0) {
        release_tsfn(js);
        if (bad == LG_START_PRIORITY) {
            napi_throw(env, priority_error(env, rc));
            return NULL;
        }
        const lg_listener_conf_t *lc = bad >= 0 ? &conf->listeners[bad] : NULL;
        napi_throw(env, system_error(env, rc, bad >= 0 ? "listen" : "start", lc ? lc->host : "",
                                     lc ? lc->port : 0, bad));
        return NULL;
    }
    if (napi_add_env_cleanup_hook(env, env_cleanup, js) == napi_ok) js->cleanup_hook = true;

    napi_value result, ports;
    NAPI_CALL(env, napi_create_object(env, &result));
    NAPI_CALL(env, napi_create_array_with_length(env, conf->n_listeners, &ports));
    for (size_t i = 0; i < conf->n_listeners; i++) {
        napi_value p;
        NAPI_CALL(env, napi_create_uint32(env, lg_engine_port(e, i), &p));
        NAPI_CALL(env, napi_set_element(env, ports, (uint32_t)i, p));
    }
    NAPI_CALL(env, napi_set_named_property(env, result, "ports", ports));
    if (warn[0] != '\0') set_str(env, result, "warning", warn);
    set_int(env, result, "workers", lg_engine_workers(e));
    return result;
}

static napi_value engine_stop(napi_env env, napi_callback_info info)
{
    size_t argc = 1;
    napi_value argv[1];
    lg_js_engine_t *js = unwrap(env, info, &argc, argv);
    if (js == NULL) return NULL;
    double grace = 0;
    if (argc >= 1 && napi_get_value_double(env, argv[0], &grace) != napi_ok) grace = 0;
    if (!(grace >= 0)) grace = 0;
    if (grace > UINT32_MAX) grace = UINT32_MAX;
    lg_engine_stop(js->engine, (uint32_t)grace);
    return NULL;
}

static napi_value engine_join(napi_env env, napi_callback_info info)
{
    size_t argc = 0;
    lg_js_engine_t *js = unwrap(env, info, &argc, NULL);
    if (js == NULL) return NULL;
    lg_engine_stop_sync(js->engine);
    remove_cleanup_hook(js);
    release_tsfn(js);
    return NULL;
}

/* engine.setTunnelEvents(on) / setBlockedEvents(on) / setAccessEvents(on): one body. */
static napi_value events_toggle(napi_env env, napi_callback_info info,
                                void (*set)(lg_engine_t *, bool))
{
    size_t argc = 1;
    napi_value argv[1];
    lg_js_engine_t *js = unwrap(env, info, &argc, argv);
    if (js == NULL) return NULL;
    bool on = false;
    if (argc >= 1) napi_get_value_bool(env, argv[0], &on);
    set(js->engine, on);
    return NULL;
}

static napi_value engine_tunnel_events(napi_env env, napi_callback_info info)
{
    return events_toggle(env, info, lg_engine_tunnel_events);
}

static napi_value engine_access_events(napi_env env, napi_callback_info info)
{
    return events_toggle(env, info, lg_engine_access_events);
}

static napi_value engine_blocked_events(napi_env env, napi_callback_info info)
{
    return events_toggle(env, info, lg_engine_blocked_events);
}

/* engine.blockedIps(nowMs) → { rateLimited, concurrencyLimited, penaltyBoxed, cidrBlocklist }. */
static napi_value engine_blocked_ips(napi_env env, napi_callback_info info)
{
    size_t argc = 0;
    lg_js_engine_t *js = unwrap(env, info, &argc, NULL);
    if (js == NULL) return NULL;
    static const struct {
        const char *key;
        int which;
    } lists[] = {{"rateLimited", LG_ENGINE_BLOCKED_RATE},
                 {"concurrencyLimited", LG_ENGINE_BLOCKED_CONCURRENCY},
                 {"penaltyBoxed", LG_ENGINE_BLOCKED_BOXED},
                 {"cidrBlocklist", LG_ENGINE_BLOCKED_CIDRS}};
    napi_value result;
    NAPI_CALL(env, napi_create_object(env, &result));
    uint64_t now = uv_hrtime() / 1000000;
    for (size_t i = 0; i < LG_ARRAY_SIZE(lists); i++) {
        lg_engine_list_t l;
        int rc = lg_engine_blocked(js->engine, lists[i].which, now, &l);
        napi_value arr;
        bool ok = rc == 0 && napi_create_array_with_length(env, l.n, &arr) == napi_ok;
        for (size_t j = 0; ok && j < l.n; j++) {
            napi_value v;
            ok = napi_create_string_utf8(env, l.v[j], NAPI_AUTO_LENGTH, &v) == napi_ok &&
                 napi_set_element(env, arr, (uint32_t)j, v) == napi_ok;
        }
        lg_engine_list_free(&l);
        if (!ok) {
            napi_throw_error(env, "ERR_LEGATO_INTERNAL", "legato: blockedIps: out of memory");
            return NULL;
        }
        NAPI_CALL(env, napi_set_named_property(env, result, lists[i].key, arr));
    }
    return result;
}

/* The id argument as a C string; false for anything that cannot name a held connection. */
static bool read_id(napi_env env, napi_value v, char *id, size_t size)
{
    size_t len = 0;
    return napi_get_value_string_utf8(env, v, id, size, &len) == napi_ok && len < size - 1 &&
           strlen(id) == len;
}

/* engine.pending(id) → boolean: whether resolve(id, ...) would find the connection now. */
static napi_value engine_pending(napi_env env, napi_callback_info info)
{
    size_t argc = 1;
    napi_value argv[1];
    lg_js_engine_t *js = unwrap(env, info, &argc, argv);
    if (js == NULL) return NULL;
    char id[LG_EVENT_ID_MAX];
    unsigned listener = 0;
    bool route_tls = false;
    bool found = argc >= 1 && read_id(env, argv[0], id, sizeof(id)) &&
                 lg_engine_pending(js->engine, id, &listener, &route_tls) == 0;
    napi_value result;
    NAPI_CALL(env, napi_get_boolean(env, found, &result));
    return result;
}

/*
 * engine.resolve(id, decision | null, normalizedConfig) → boolean. A malformed decision throws
 * (ERR_LEGATO_CONFIG) before anything is claimed, so the connection stays pending; an unknown id
 * returns false before the decision is looked at.
 */
static napi_value engine_resolve(napi_env env, napi_callback_info info)
{
    size_t argc = 3;
    napi_value argv[3];
    lg_js_engine_t *js = unwrap(env, info, &argc, argv);
    if (js == NULL) return NULL;
    lg_engine_t *e = js->engine;
    napi_value result;
    char id[LG_EVENT_ID_MAX];
    unsigned listener = 0;
    bool route_tls = false;
    if (argc < 3 || !read_id(env, argv[0], id, sizeof(id)) ||
        lg_engine_pending(e, id, &listener, &route_tls) != 0) {
        NAPI_CALL(env, napi_get_boolean(env, false, &result));
        return result;
    }
    napi_valuetype t;
    napi_typeof(env, argv[1], &t);
    lg_route_t *decision = NULL;
    if (t != napi_null) {
        lg_src_route_t d;
        lg_src_listener_t l;
        lg_cfgerr_t err;
        if (lg_jsconf_read_decision(env, argv[1], argv[2], listener, &d, &l) != 0) return NULL;
        int rc = lg_decision_build(&d, &l, lg_engine_config(e), listener, route_tls,
                                   lg_engine_tls_cache(e), &decision, &err);
        lg_src_route_free(&d);
        lg_src_listener_free(&l);
        if (rc == 0 && lg_engine_prepare(e, decision, 1) != 0) {
            lg_route_destroy(decision);
            snprintf(err.msg, sizeof(err.msg), "decision: out of memory");
            err.type_error = false;
            rc = -1;
        }
        if (rc != 0) {
            lg_jsconf_throw(env, &err);
            return NULL; /* nothing claimed: the connection stays pending */
        }
    }
    bool ok = lg_engine_resolve(e, id, decision) == 0;
    NAPI_CALL(env, napi_get_boolean(env, ok, &result));
    return result;
}

static napi_value engine_update(napi_env env, napi_callback_info info)
{
    size_t argc = 1;
    napi_value argv[1];
    lg_js_engine_t *js = unwrap(env, info, &argc, argv);
    if (js == NULL) return NULL;
    if (argc < 1) {
        napi_throw_type_error(env, "ERR_LEGATO_INTERNAL", "updateConfig(config)");
        return NULL;
    }
    lg_engine_t *e = js->engine;
    lg_src_t src;
    if (lg_jsconf_read(env, argv[0], &src) != 0) return NULL;
    lg_snapshot_t *snap = NULL;
    lg_tls_cache_t next;
    lg_cfgerr_t err;
    memset(&next, 0, sizeof(next));
    int rc =
        lg_snapshot_build(&src, lg_engine_config(e), lg_engine_tls_cache(e), &next, &snap, &err);
    lg_src_free(&src);
    if (rc == 0 && lg_engine_prepare(e, snap->routes, snap->n_routes) != 0) {
        lg_snapshot_destroy(snap);
        snprintf(err.msg, sizeof(err.msg), "routes: out of memory");
        err.type_error = false;
        rc = -1;
    }
    if (rc != 0) {
        lg_tls_cache_free(&next);
        lg_jsconf_throw(env, &err);
        return NULL;
    }
    /* The new snapshot's contexts become the cache; contexts only old snapshots use live on in
     * their routes until those snapshots are freed. */
    lg_engine_swap(e, snap, &next);
    return NULL;
}

/* ---- metrics --------------------------------------------------------------------------- */

static napi_value counts_object(napi_env env, const lg_counts_t *sum)
{
    napi_value o;
    if (napi_create_object(env, &o) != napi_ok) return NULL;
    uint64_t total = sum->total_connections, closed = sum->closed_connections;
    set_u64(env, o, "activeConnections", total >= closed ? total - closed : 0);
#define LG_SET_COUNTER(f, js) set_u64(env, o, js, sum->f);
    LG_COUNTERS(LG_SET_COUNTER)
#undef LG_SET_COUNTER
    napi_value by;
    uint64_t blocked = 0;
    if (napi_create_object(env, &by) != napi_ok) return NULL;
    for (int i = 1; i < LG_BLOCK_N; i++) {
        set_u64(env, by, block_reason_name(i), sum->blocked[i]);
        blocked += sum->blocked[i];
    }
    set_u64(env, o, "blockedConnections", blocked);
    if (napi_set_named_property(env, o, "blockedByReason", by) != napi_ok) return NULL;
    return o;
}

/* One upstream's figures (its shared state: every route listing it reports the same). */
static napi_value upstream_object(napi_env env, const lg_upstream_t *up, uint64_t now_ms)
{
    const lg_upshared_t *u = up->shared;
    const lg_upstate_t *st = &u->st;
    napi_value o;
    if (napi_create_object(env, &o) != napi_ok) return NULL;
    set_str(env, o, "kind", up->kind == LG_UPSTREAM_TCP ? "tcp" : "uds");
    if (up->kind == LG_UPSTREAM_TCP) {
        set_str(env, o, "host", up->host);
        set_int(env, o, "port", up->port);
    } else {
        set_str(env, o, "path", up->path);
    }
    set_int(env, o, "weight", up->weight);
    uint64_t until = atomic_load_explicit(&st->ejected_until_ms, memory_order_relaxed);
    const char *state = until == 0                                                 ? "up"
                        : atomic_load_explicit(&st->probing, memory_order_relaxed) ? "probing"
                        : lg_upstate_ejected(st, now_ms)                           ? "ejected"
                                                                                   : "halfOpen";
    set_str(env, o, "state", state);
#define LOAD(f) atomic_load_explicit(&(f), memory_order_relaxed)
    set_u64(env, o, "active", LOAD(st->active));
    set_u64(env, o, "connected", LOAD(u->connected));
    set_u64(env, o, "picks", LOAD(st->picks));
    set_u64(env, o, "failedDials", LOAD(st->dial_fails));
    set_u64(env, o, "consecutiveFailures", LOAD(st->consecutive_fails));
    set_u64(env, o, "ejections", LOAD(st->ejections));
    set_u64(env, o, "probes", LOAD(st->probes));
    set_u64(env, o, "failOpens", LOAD(st->fail_opens));
    set_u64(env, o, "bytesToUpstream", LOAD(u->bytes_to));
    set_u64(env, o, "bytesFromUpstream", LOAD(u->bytes_from));
    set_u64(env, o, "cpuPermille", LOAD(st->cpu_permille));
    set_u64(env, o, "cpuUnreadable", LOAD(u->cpu_unread));
#undef LOAD
    return o;
}

static const char *const BALANCE_NAMES[] = {"leastConn", "roundRobin", "random2", "hash"};

/* metrics().routes: per route of the current snapshot, its upstreams' figures; and
 * metrics().affinity. */
static int upstream_metrics(napi_env env, lg_engine_t *e, napi_value result)
{
    lg_snapshot_t *snap = lg_engine_current(e);
    uint64_t now = uv_hrtime() / 1000000; /* the workers' loop clocks count from the same base */
    int rc = -1;
    napi_value routes;
    if (napi_create_array_with_length(env, snap->n_routes, &routes) != napi_ok) goto out;
    for (size_t i = 0; i < snap->n_routes; i++) {
        const lg_route_t *rt = &snap->routes[i];
        napi_value ro, ups;
        if (napi_create_object(env, &ro) != napi_ok ||
            napi_create_array_with_length(env, rt->n_upstreams, &ups) != napi_ok) {
            goto out;
        }
        set_str(env, ro, "sni", rt->sni);
        set_str(env, ro, "balance", BALANCE_NAMES[rt->balancer.policy & 3]);
        napi_value group;
        if (rt->metrics_group != NULL) {
            set_str(env, ro, "metricsGroup", rt->metrics_group);
        } else if (napi_get_null(env, &group) == napi_ok) {
            napi_set_named_property(env, ro, "metricsGroup", group);
        }
        if (rt->stat != NULL) {
            const lg_routestat_t *r = rt->stat;
            set_u64(env, ro, "connections",
                    atomic_load_explicit(&r->connections, memory_order_relaxed));
            set_u64(env, ro, "activeConnections",
                    atomic_load_explicit(&r->active, memory_order_relaxed));
            set_u64(env, ro, "upstreamFailures",
                    atomic_load_explicit(&r->failures, memory_order_relaxed));
            set_u64(env, ro, "bytesToUpstreams",
                    atomic_load_explicit(&r->bytes_to, memory_order_relaxed));
            set_u64(env, ro, "bytesFromUpstreams",
                    atomic_load_explicit(&r->bytes_from, memory_order_relaxed));
        }
        for (size_t j = 0; j < rt->n_upstreams; j++) {
            napi_value uo = upstream_object(env, &rt->upstreams[j], now);
            if (uo == NULL || napi_set_element(env, ups, (uint32_t)j, uo) != napi_ok) goto out;
        }
        if (napi_set_named_property(env, ro, "upstreams", ups) != napi_ok ||
            napi_set_element(env, routes, (uint32_t)i, ro) != napi_ok) {
            goto out;
        }
    }
    if (napi_set_named_property(env, result, "routes", routes) != napi_ok) goto out;
    lg_affinity_stats_t as;
    lg_engine_affinity_stats(e, &as);
    napi_value ao;
    if (napi_create_object(env, &ao) != napi_ok) goto out;
    set_u64(env, ao, "entries", as.entries);
    set_u64(env, ao, "hits", as.hits);
    set_u64(env, ao, "misses", as.misses);
    set_u64(env, ao, "stale", as.stale);
    set_u64(env, ao, "evicted", as.evicted);
    set_u64(env, ao, "expired", as.expired);
    if (napi_set_named_property(env, result, "affinity", ao) != napi_ok) goto out;
    rc = 0;
out:
    lg_snapshot_unref(snap);
    return rc;
}

static napi_value engine_metrics(napi_env env, napi_callback_info info)
{
    size_t argc = 0;
    lg_js_engine_t *js = unwrap(env, info, &argc, NULL);
    if (js == NULL) return NULL;
    lg_engine_t *e = js->engine;
    const lg_config_t *conf = lg_engine_config(e);
    lg_engine_metrics_t *m = lg_malloc(sizeof(*m));
    if (m == NULL) {
        napi_throw_error(env, "ERR_LEGATO_INTERNAL", "legato: out of memory");
        return NULL;
    }
    lg_engine_metrics(e, m);
    napi_value result = NULL, listeners = NULL, workers = NULL;
    if (napi_create_array_with_length(env, m->n_listeners, &listeners) != napi_ok ||
        napi_create_array_with_length(env, m->n_workers, &workers) != napi_ok) {
        goto fail;
    }
    for (size_t i = 0; i < m->n_listeners; i++) {
        napi_value lo = counts_object(env, &m->listeners[i]);
        if (lo == NULL) goto fail;
        const lg_listener_conf_t *lc = &conf->listeners[i];
        uint16_t port = lg_engine_port(e, i);
        set_str(env, lo, "kind", lc->kind == LG_LISTENER_TLS ? "tls" : "connect");
        set_str(env, lo, "host", lc->host);
        set_int(env, lo, "port", port ? port : lc->port);
        if (napi_set_element(env, listeners, (uint32_t)i, lo) != napi_ok) goto fail;
    }
    result = counts_object(env, &m->total);
    if (result == NULL) goto fail;
    set_u64(env, result, "pendingSuspended", m->pending_suspended);
    napi_value tracking;
    if (napi_create_object(env, &tracking) != napi_ok) goto fail;
    set_u64(env, tracking, "trackedIps", m->tracking.tracked);
    set_u64(env, tracking, "capacity", m->tracking.capacity);
    set_u64(env, tracking, "bytes", m->tracking.bytes);
    set_u64(env, tracking, "untracked", m->tracking.untracked);
    set_u64(env, tracking, "evictions", m->tracking.evictions);
    set_u64(env, tracking, "swept", m->tracking.swept);
    if (napi_set_named_property(env, result, "protection", tracking) != napi_ok) goto fail;
    set_u64(env, result, "configGenerationsLive", m->generations_live);
    set_u64(env, result, "eventsDropped", m->events_dropped);
    set_u64(env, result, "accessEventsDropped", m->access_events_dropped);
    set_u64(env, result, "buffersInUse", m->buffers_in_use);
    for (size_t k = 0; k < m->n_workers; k++) {
        const lg_worker_figures_t *f = &m->workers[k];
        napi_value wo;
        if (napi_create_object(env, &wo) != napi_ok) goto fail;
        set_u64(env, wo, "connections", f->connections);
        set_u64(env, wo, "readBuffersInUse", f->read_buffers);
        set_u64(env, wo, "spareBufferBytes", f->spare_buffer_bytes);
        set_u64(env, wo, "helloBuffersInUse", f->hello_buffers);
        set_u64(env, wo, "nameLookups", f->lookups);
        set_u64(env, wo, "quantum", f->quantum);
        set_u64(env, wo, "grants", f->grants);
        set_u64(env, wo, "grantedBytes", f->granted_bytes);
        set_u64(env, wo, "interactiveReads", f->interactive_reads);
        set_u64(env, wo, "splicedBytes", f->spliced);
        set_u64(env, wo, "splicePipes", f->pipes);
        set_u64(env, wo, "lentPipes", f->lent_pipes);
        set_u64(env, wo, "largePipes", f->large_pipes);
        set_u64(env, wo, "splicePipeLarge", f->own_pipe_large);
        if (napi_set_element(env, workers, (uint32_t)k, wo) != napi_ok) goto fail;
    }
    if (napi_set_named_property(env, result, "listeners", listeners) != napi_ok ||
        napi_set_named_property(env, result, "workers", workers) != napi_ok ||
        upstream_metrics(env, e, result) != 0) {
        goto fail;
    }
    lg_free(m);
    return result;
fail:
    lg_free(m);
    throw_napi(env, "metrics");
    return NULL;
}

/* ---- module ---------------------------------------------------------------------------- */

/* lg_name's reasons, as the keywords nameNorm reports. */
static const char *name_reason_key(int reason)
{
    switch (reason) {
    case LG_NAME_E_EMPTY:
        return "empty";
    case LG_NAME_E_LONG:
        return "long";
    case LG_NAME_E_LABEL:
        return "label";
    case LG_NAME_E_CHAR:
        return "char";
    case LG_NAME_E_HYPHEN:
        return "hyphen";
    case LG_NAME_E_NUMERIC:
        return "numeric";
    default:
        return "invalid";
    }
}

/*
 * nameNorm(text, 'sni' | 'host') → { name, reason }: the name lg_name normalised (reason null),
 * or name null and the reason keyword ('char', 'numeric', 'hyphen', 'label', 'long', 'empty').
 */
static napi_value name_norm(napi_env env, napi_callback_info info)
{
    size_t argc = 2;
    napi_value argv[2], result, v;
    NAPI_CALL(env, napi_get_cb_info(env, info, &argc, argv, NULL, NULL));
    char text[LG_NAME_MAX + 4], kind[8], out[LG_NAME_MAX];
    size_t len = 0, klen = 0;
    if (argc < 2 ||
        napi_get_value_string_utf8(env, argv[1], kind, sizeof(kind), &klen) != napi_ok ||
        (strcmp(kind, "sni") != 0 && strcmp(kind, "host") != 0)) {
        napi_throw_type_error(env, "ERR_LEGATO_INTERNAL", "nameNorm(text, 'sni' | 'host')");
        return NULL;
    }
    int n = -LG_NAME_E_LONG;
    size_t need = 0; /* the whole text's UTF-8 length: a copy stops before a character that
                        does not fit, so its length alone cannot tell a long text */
    if (napi_get_value_string_utf8(env, argv[0], NULL, 0, &need) != napi_ok) {
        n = -LG_NAME_E_CHAR;
    } else if (need >= sizeof(text) - 1) {
        n = -LG_NAME_E_LONG;
    } else if (napi_get_value_string_utf8(env, argv[0], text, sizeof(text), &len) != napi_ok ||
               strlen(text) != len) {
        n = -LG_NAME_E_CHAR; /* a NUL inside */
    } else {
        n = lg_name_norm(text, len, strcmp(kind, "sni") == 0 ? LG_NAME_SNI : LG_NAME_HOST, out,
                         sizeof(out));
    }
    NAPI_CALL(env, napi_create_object(env, &result));
    if (n < 0) {
        NAPI_CALL(env, napi_get_null(env, &v));
        NAPI_CALL(env, napi_set_named_property(env, result, "name", v));
        set_str(env, result, "reason", name_reason_key(-n));
    } else {
        NAPI_CALL(env, napi_create_string_utf8(env, out, (size_t)n, &v));
        NAPI_CALL(env, napi_set_named_property(env, result, "name", v));
        NAPI_CALL(env, napi_get_null(env, &v));
        NAPI_CALL(env, napi_set_named_property(env, result, "reason", v));
    }
    return result;
}

/* parseScryptHash(text): null when text is a valid `$scrypt$` hash (lg_auth's parser, the one the
 * engine uses), else the reason it is not. */
static napi_value parse_scrypt_hash(napi_env env, napi_callback_info info)
{
    size_t argc = 1;
    napi_value argv[1], v;
    NAPI_CALL(env, napi_get_cb_info(env, info, &argc, argv, NULL, NULL));
    char text[LG_AUTH_HASH_TEXT_MAX + 2];
    size_t len = 0;
    const char *why = "it is not a string";
    lg_scrypt_t parsed;
    napi_valuetype t = napi_undefined;
    if (argc >= 1 && napi_typeof(env, argv[0], &t) == napi_ok && t == napi_string &&
        napi_get_value_string_utf8(env, argv[0], text, sizeof(text), &len) == napi_ok) {
        why = NULL;
        if (strlen(text) != len) {
            why = "it contains NUL";
        } else if (len > LG_AUTH_HASH_TEXT_MAX) {
            why = "longer than 256 bytes";
        } else if (lg_auth_parse_hash(text, len, &parsed, &why) == 0) {
            why = NULL;
        }
        lg_auth_wipe(&parsed, sizeof(parsed));
    }
    if (why == NULL) {
        NAPI_CALL(env, napi_get_null(env, &v));
    } else {
        NAPI_CALL(env, napi_create_string_utf8(env, why, NAPI_AUTO_LENGTH, &v));
    }
    return v;
}

/* The hard bounds of the options (lg_limits.h): { jsName: value }, frozen. */
static napi_value limits_object(napi_env env)
{
    napi_value o, n, global, object, freeze;
    if (napi_create_object(env, &o) != napi_ok) return NULL;
#define LG_SET_LIMIT(js, value, unit)                                                              \
    if (napi_create_double(env, (double)(value), &n) != napi_ok ||                                 \
        napi_set_named_property(env, o, #js, n) != napi_ok) {                                      \
        return NULL;                                                                               \
    }
    LG_LIMITS(LG_SET_LIMIT)
#undef LG_SET_LIMIT
    if (napi_get_global(env, &global) == napi_ok &&
        napi_get_named_property(env, global, "Object", &object) == napi_ok &&
        napi_get_named_property(env, object, "freeze", &freeze) == napi_ok) {
        napi_call_function(env, object, freeze, 1, &o, NULL);
    }
    return o;
}

#ifdef LG_FAULT_INJECTION
/* Fault-injection builds: _faults.failAfter(n) fails the (n+1)-th allocation made by a worker
 * thread from now (n < 0: none); _faults.total() counts worker allocations; _faults.live() counts
 * the engine's blocks still allocated (all threads). */
static napi_value faults_fail_after(napi_env env, napi_callback_info info)
{
    size_t argc = 1;
    napi_value argv[1];
    int64_t n = -1;
    NAPI_CALL(env, napi_get_cb_info(env, info, &argc, argv, NULL, NULL));
    if (argc >= 1) napi_get_value_int64(env, argv[0], &n);
    lg_alloc_fail_armed_only(true);
    lg_alloc_fail_after((long)n);
    return NULL;
}

static napi_value faults_total(napi_env env, napi_callback_info info)
{
    (void)info;
    napi_value v;
    NAPI_CALL(env, napi_create_int64(env, lg_alloc_total(), &v));
    return v;
}

static napi_value faults_live(napi_env env, napi_callback_info info)
{
    (void)info;
    napi_value v;
    NAPI_CALL(env, napi_create_int64(env, lg_alloc_live(), &v));
    return v;
}

static napi_value faults_object(napi_env env)
{
    napi_value o, fn;
    NAPI_CALL(env, napi_create_object(env, &o));
    NAPI_CALL(env, napi_create_function(env, "failAfter", NAPI_AUTO_LENGTH, faults_fail_after, NULL,
                                        &fn));
    NAPI_CALL(env, napi_set_named_property(env, o, "failAfter", fn));
    NAPI_CALL(env, napi_create_function(env, "total", NAPI_AUTO_LENGTH, faults_total, NULL, &fn));
    NAPI_CALL(env, napi_set_named_property(env, o, "total", fn));
    NAPI_CALL(env, napi_create_function(env, "live", NAPI_AUTO_LENGTH, faults_live, NULL, &fn));
    NAPI_CALL(env, napi_set_named_property(env, o, "live", fn));
    return o;
}
#endif

/*
 * _heapInUse(): bytes the C allocator has handed out and not yet taken back, in every arena of
 * the process (glibc's mallinfo2, else mallinfo, whose int fields wrap: only differences are
 * meaningful), or -1 where neither exists. For test/memory.spec.js, which holds idle connections
 * to a budget of heap bytes each; an allocator that is not glibc's (the ASan build) reports
 * nothing useful there, and the test skips it.
 */
#if defined(__GLIBC__)
/* glibc's struct mallinfo2 (>= 2.33) and struct mallinfo, looked up at run time: the prebuilt
 * binaries run on older glibc too, and the old one is deprecated in new headers. */
struct lg_mallinfo2 {
    size_t arena, ordblks, smblks, hblks, hblkhd, usmblks, fsmblks, uordblks, fordblks, keepcost;
};
struct lg_mallinfo {
    int arena, ordblks, smblks, hblks, hblkhd, usmblks, fsmblks, uordblks, fordblks, keepcost;
};
#endif

static napi_value heap_in_use(napi_env env, napi_callback_info info)
{
    (void)info;
    double bytes = -1;
#if defined(__GLIBC__)
    /* Through libuv's uv_dlsym (resolved from node itself), not dlsym: glibc 2.34 moved dlsym
     * into libc under a new version, which the prebuilt binaries must not need (glibc <= 2.28).
     * uv_dlopen(NULL) is the process's global scope, where node's libc lives. */
    uv_lib_t self;
    void *mi2 = NULL, *mi = NULL;
    if (uv_dlopen(NULL, &self) == 0) {
        if (uv_dlsym(&self, "mallinfo2", &mi2) != 0) mi2 = NULL;
        if (uv_dlsym(&self, "mallinfo", &mi) != 0) mi = NULL;
        uv_dlclose(&self);
    }
    if (mi2 != NULL) {
        struct lg_mallinfo2 (*f)(void);
        memcpy(&f, &mi2, sizeof(f));
        struct lg_mallinfo2 m = f();
        bytes = (double)m.uordblks + (double)m.hblkhd;
    } else if (mi != NULL) {
        struct lg_mallinfo (*f)(void);
        memcpy(&f, &mi, sizeof(f));
        struct lg_mallinfo m = f();
        bytes = (double)(unsigned)m.uordblks + (double)(unsigned)m.hblkhd;
    }
#endif
    napi_value v;
    NAPI_CALL(env, napi_create_double(env, bytes, &v));
    return v;
}

/* engine.stopReport(): lg_engine_stop_report's JSON text. */
static napi_value engine_stop_report(napi_env env, napi_callback_info info)
{
    size_t argc = 0;
    lg_js_engine_t *js = unwrap(env, info, &argc, NULL);
    if (js == NULL) return NULL;
    char *buf = lg_malloc(LG_ENGINE_REPORT_MAX);
    if (buf == NULL) return NULL;
    size_t len = lg_engine_stop_report(js->engine, buf, LG_ENGINE_REPORT_MAX);
    napi_value v = NULL;
    if (napi_create_string_utf8(env, buf, len, &v) != napi_ok) v = NULL;
    lg_free(buf);
    return v;
}

static napi_value init(napi_env env, napi_value exports)
{
    napi_property_descriptor methods[] = {
        {"start", NULL, engine_start, NULL, NULL, NULL, napi_default_method, NULL},
        {"stop", NULL, engine_stop, NULL, NULL, NULL, napi_default_method, NULL},
        {"join", NULL, engine_join, NULL, NULL, NULL, napi_default_method, NULL},
        {"stopReport", NULL, engine_stop_report, NULL, NULL, NULL, napi_default_method, NULL},
        {"updateConfig", NULL, engine_update, NULL, NULL, NULL, napi_default_method, NULL},
        {"resolve", NULL, engine_resolve, NULL, NULL, NULL, napi_default_method, NULL},
        {"pending", NULL, engine_pending, NULL, NULL, NULL, napi_default_method, NULL},
        {"metrics", NULL, engine_metrics, NULL, NULL, NULL, napi_default_method, NULL},
        {"setTunnelEvents", NULL, engine_tunnel_events, NULL, NULL, NULL, napi_default_method,
         NULL},
        {"setBlockedEvents", NULL, engine_blocked_events, NULL, NULL, NULL, napi_default_method,
         NULL},
        {"setAccessEvents", NULL, engine_access_events, NULL, NULL, NULL, napi_default_method,
         NULL},
        {"blockedIps", NULL, engine_blocked_ips, NULL, NULL, NULL, napi_default_method, NULL},
    };
    napi_value cls, limits, fn;
    NAPI_CALL(env, napi_define_class(env, "Engine", NAPI_AUTO_LENGTH, engine_new, NULL,
                                     LG_ARRAY_SIZE(methods), methods, &cls));
    NAPI_CALL(env, napi_set_named_property(env, exports, "Engine", cls));
    limits = limits_object(env);
    if (limits == NULL) {
        throw_napi(env, "limits");
        return NULL;
    }
    NAPI_CALL(env, napi_set_named_property(env, exports, "limits", limits));
    NAPI_CALL(env, napi_create_function(env, "nameNorm", NAPI_AUTO_LENGTH, name_norm, NULL, &fn));
    NAPI_CALL(env, napi_set_named_property(env, exports, "nameNorm", fn));
    NAPI_CALL(env, napi_create_function(env, "parseScryptHash", NAPI_AUTO_LENGTH, parse_scrypt_hash,
                                        NULL, &fn));
    NAPI_CALL(env, napi_set_named_property(env, exports, "parseScryptHash", fn));
    NAPI_CALL(env,
              napi_create_function(env, "_heapInUse", NAPI_AUTO_LENGTH, heap_in_use, NULL, &fn));
    NAPI_CALL(env, napi_set_named_property(env, exports, "_heapInUse", fn));
#ifdef LG_FAULT_INJECTION
    napi_value faults = faults_object(env);
    if (faults == NULL) return NULL;
    NAPI_CALL(env, napi_set_named_property(env, exports, "_faults", faults));
#endif
    return exports;
}

NAPI_MODULE(NODE_GYP_MODULE_NAME, init)
