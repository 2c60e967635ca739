/*
 * lg_engine.h — one proxy instance: its configuration, its worker threads, the current config
 * snapshot, and the channel that carries events to JavaScript.
 *
 * Threads: lg_engine_* functions are called on the JS thread only, except where noted. Workers
 * read the engine's immutable config and its atomics; the current snapshot pointer is guarded by
 * snap_lock, which a worker takes only when the published generation differs from the one it
 * holds (after a config swap), never per connection or per byte.
 *
 * Events: the engine has no N-API dependency. The addon gives it a post function (backed by a
 * napi_threadsafe_function with an unbounded queue, called in non-blocking mode); the engine
 * bounds the events waiting in it itself (LG_EVENT_QUEUE_MAX), except the few control events
 * that lifecycle depends on, so a READY or WORKER_EXIT event is never lost to a full queue. The
 * post function takes ownership of the event.
 *
 * Lifecycle: create → start (bind every socket on the JS thread, then spawn workers; each worker
 * posts LG_EV_READY) → stop (posted to every worker; each posts LG_EV_WORKER_EXIT when its loop
 * has ended) → join (JS thread, after every exit event) → destroy.
 */
#ifndef LG_ENGINE_H
#define LG_ENGINE_H

#include "lg_common.h"
#include "lg_config.h"
#include "lg_tls_ctx.h"

#include <uv.h>

typedef struct lg_worker_s lg_worker_t;
typedef struct lg_engine_s lg_engine_t;

enum {
    LG_EV_READY = 1,   /* a worker is accepting */
    LG_EV_WORKER_EXIT, /* a worker's loop has ended; code = 0 or -errno */
    LG_EV_WARNING,     /* recoverable trouble; message says what */
    LG_EV_ERROR,       /* an engine error JS should see; code = -errno */
    LG_EV_TUNNEL,      /* a connect-listener connection ended (only when tunnel_events is on) */
    LG_EV_SUSPENDED,   /* a connection is held for a decision (target = SNI, port = peer port) */
};

#define LG_EVENT_MESSAGE_MAX 256 /* bytes of an event message, NUL included */

/* Owner: created by a worker (or the engine), owned by the post function once posted. */
typedef struct lg_event_s {
    int type;
    unsigned worker;
    int code; /* 0 or a negative errno */
    char message[LG_EVENT_MESSAGE_MAX];
    /* LG_EV_TUNNEL */
    unsigned listener;
    int status; /* HTTP status sent; 0 when the client left before any */
    uint16_t port;
    char target[256];   /* host as requested; "" when the head never completed */
    uint64_t bytes_in;  /* client → target */
    uint64_t bytes_out; /* target → client (the 200 line not included) */
    uint64_t duration_ms;
    /* LG_EV_SUSPENDED */
    char id[32];
    char peer_ip[48];
    char alpn[256]; /* protocols the client offered, joined by '\n' */
    char ja3[33];
    char ja4[40];
} lg_event_t;

/* Returns 0 when queued, -EAGAIN when the queue is full or closing (the event is then freed). */
typedef int (*lg_post_fn)(void *ctx, lg_event_t *ev);

enum { LG_ENGINE_NEW = 0, LG_ENGINE_RUNNING, LG_ENGINE_STOPPING, LG_ENGINE_STOPPED };

/* Shared per-listener state (all workers). */
typedef struct lg_listener_shared_s {
    atomic_uint active;           /* connections open on this listener, all workers */
    atomic_uint in_head;          /* connect listeners: connections still sending their head */
    uint16_t bound_port;          /* the port actually bound */
    struct sockaddr_storage addr; /* bound address */
    socklen_t addrlen;
    bool registered; /* in the process-wide bound-address registry */
} lg_listener_shared_t;

struct lg_engine_s {
    lg_config_t conf; /* fixed for the engine's life; owned */
    int state;        /* LG_ENGINE_*; written on the JS thread only */

    uv_mutex_t snap_lock;          /* guards snap */
    lg_snapshot_t *snap;           /* current snapshot; the engine holds one reference */
    atomic_uint_fast64_t snap_gen; /* generation of snap, readable without the lock */
    uint64_t next_gen;
    atomic_long generations_live; /* snapshots not yet freed */

    lg_tls_cache_t tls_cache; /* contexts of the current snapshot, for reuse (JS thread only) */

    lg_listener_shared_t lis[LG_MAX_LISTENERS];
    lg_worker_t *workers; /* array of conf.worker_threads */
    unsigned n_workers;
    unsigned n_started; /* threads created */

    lg_post_fn post;
    void *post_ctx;
    atomic_bool tunnel_events;           /* JS listens for 'tunnel' events */
    atomic_long events_queued;           /* non-control events posted and not yet handled */
    atomic_uint_fast64_t events_dropped; /* events lost: queue bound reached, or closing */
};

#define LG_EVENT_QUEUE_MAX 4096 /* non-control events waiting for the JS thread */

/*
 * Create an engine from a config (moved in: the engine frees it) and a first snapshot (the engine
 * takes the caller's reference). Returns 0 or -ENOMEM; on failure both are freed.
 */
int lg_engine_create(lg_config_t *conf, lg_snapshot_t *snap, lg_engine_t **out);

/*
 * Raise RLIMIT_NOFILE toward what the listeners need (2 × Σ maxConnections + 1024, or the hard
 * limit when a listener is unlimited). Writes a warning into `warn` (empty when none).
 */
void lg_engine_raise_nofile(lg_engine_t *e, char *warn, size_t warn_size);

/*
 * Bind every listener on every worker and start the workers. Returns 0, or a negative errno with
 * *bad_listener set to the listener that failed to bind (or -1) — nothing is left listening and no
 * thread is running on failure.
 */
int lg_engine_start(lg_engine_t *e, lg_post_fn post, void *post_ctx, int *bad_listener);

/* Ask every worker to stop accepting and close connections after grace_ms. Asynchronous. */
void lg_engine_stop(lg_engine_t *e, uint32_t grace_ms);

/* Join every worker thread (each must have exited or be exiting). */
void lg_engine_join(lg_engine_t *e);

/* Stop with no grace and join: for finalizers and the env cleanup hook. */
void lg_engine_stop_sync(lg_engine_t *e);

/* Free everything. The engine must be stopped and joined (or never started). */
void lg_engine_destroy(lg_engine_t *e);

/* Publish a new snapshot (the engine takes the caller's reference). */
void lg_engine_swap(lg_engine_t *e, lg_snapshot_t *snap);

/*
 * Worker side: return the current snapshot, refreshing *held (a worker's own reference) if a
 * newer one was published. Called on accept; takes snap_lock only after a swap.
 */
lg_snapshot_t *lg_engine_snapshot(lg_engine_t *e, lg_snapshot_t **held, uint64_t *held_gen);

/*
 * Post an event (any thread). Takes ownership of ev. Control events (READY, WORKER_EXIT) are
 * always queued (the post function's queue is unbounded; there are two per worker); other events
 * are bounded by LG_EVENT_QUEUE_MAX and dropped and counted beyond it. Returns 0 when queued,
 * -EAGAIN when dropped.
 */
int lg_engine_post(lg_engine_t *e, lg_event_t *ev);

/* JS thread: a posted event has been handled (releases its place in the bound). */
void lg_engine_event_done(lg_engine_t *e, const lg_event_t *ev);

/* Build and post an event with a printf-style message (any thread). */
void lg_engine_postf(lg_engine_t *e, int type, unsigned worker, int code, const char *fmt, ...)
    __attribute__((format(printf, 5, 6)));

#endif /* LG_ENGINE_H */
