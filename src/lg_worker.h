/*
 * lg_worker.h — one worker thread: its own uv_loop, one SO_REUSEPORT listen socket per listener,
 * the connections it accepted, its scheduler, buffer pool and counters.
 *
 * Ownership: a connection belongs to the worker that accepted it for its whole life; only that
 * thread touches it. Other threads talk to a worker only through its inbox: a mutex-guarded
 * message list plus a uv_async_t. Async sends coalesce, so the inbox is drained fully on each
 * wakeup.
 *
 * Stopping: on LG_MSG_STOP the worker closes its listen sockets, lets connections finish for
 * grace_ms, then closes the rest; when the last connection is freed it closes its own handles,
 * its loop ends and the thread posts LG_EV_WORKER_EXIT.
 */
#ifndef LG_WORKER_H
#define LG_WORKER_H

#include "lg_buf.h"
#include "lg_drr.h"
#include "lg_engine.h"
#include "lg_metrics.h"
#include "lg_suspend.h"

#include <uv.h>

typedef struct lg_conn_s lg_conn_t;
typedef struct lg_wreq_s lg_wreq_t;

#define LG_ACCEPTS_PER_WAKEUP 64   /* connections accepted per readiness event */
#define LG_GRANTS_PER_RUN     1024 /* scheduler grants per loop iteration */
#define LG_ACCEPT_BACKOFF_MIN 100  /* ms: first accept pause after EMFILE/ENFILE */
#define LG_ACCEPT_BACKOFF_MAX 1000 /* ms: longest accept pause */
#define LG_WREQ_CACHE_MAX     256  /* spare write requests a worker keeps */

enum {
    LG_MSG_STOP = 1, /* stop accepting; close connections after grace_ms */
    LG_MSG_RESOLVE,  /* a decision for a held connection */
    LG_MSG_REFRESH,  /* a new snapshot was published: drop the worker's reference to the old */
};

/* Owner: allocated by the poster, freed by the worker after handling. */
typedef struct lg_msg_s {
    struct lg_msg_s *next;
    int type;
    uint32_t grace_ms;    /* STOP */
    uint64_t serial;      /* RESOLVE: the held connection */
    lg_route_t *decision; /* RESOLVE: owned by the message until handled; NULL closes */
} lg_msg_t;

/* A worker's listen socket for one listener. */
typedef struct lg_lsock_s {
    uv_poll_t poll;     /* readiness of the listen fd */
    uv_timer_t backoff; /* accept pause after EMFILE/ENFILE */
    lg_worker_t *w;
    int fd;              /* owned: closed when poll's close callback runs */
    unsigned index;      /* listener index */
    uint32_t backoff_ms; /* current pause; 0 when accepting normally */
    bool open;           /* poll handle initialised and not closed */
} lg_lsock_t;

struct lg_worker_s {
    lg_engine_t *engine;
    unsigned index;
    uv_thread_t thread;
    uv_loop_t loop;

    uv_async_t inbox_async;
    uv_mutex_t inbox_lock; /* guards inbox */
    lg_msg_t *inbox;       /* LIFO; reversed when drained */

    lg_lsock_t lsock[LG_MAX_LISTENERS];
    lg_snapshot_t *snap; /* this worker's reference to the snapshot it last saw */
    uint64_t snap_gen;

    lg_pending_t pending; /* held connections (lock shared with the JS thread, see lg_suspend) */
    uint64_t next_serial;

    lg_bufpool_t pool;
    lg_drr_t drr;
    uv_check_t sched_check; /* runs a scheduler pass after each poll while flows are ready */
    uv_idle_t sched_idle;   /* keeps poll from blocking while flows are ready */
    bool sched_active;

    lg_wreq_t *wreq_cache; /* spare write requests */
    size_t n_wreq_cache;

    lg_conn_t *conns; /* every live connection (doubly linked) */
    size_t n_conns;
    size_t n_hello;   /* connections holding a ClientHello context */
    size_t n_lookups; /* name lookups queued or running (lg_resolve), detached ones included */

    uv_timer_t grace_timer;
    uint64_t grace_deadline; /* loop time at which the grace period ends */
    bool stopping;           /* STOP received: listen sockets closed */
    bool draining;           /* grace over: every connection is being closed */
    bool closing;            /* worker handles are closing; loop about to end */
    int exit_code;

    lg_counters_t counters[LG_MAX_LISTENERS]; /* written by this thread only */
    uint8_t discard[4096]; /* read target for bytes that are thrown away (lingering close) */

    /* Published for metrics(): written by this thread only (relaxed stores), read by JS. */
    atomic_size_t pub_conns;         /* live connections */
    atomic_size_t pub_hello_buffers; /* ClientHello contexts allocated */
    atomic_size_t pub_lookups;       /* n_lookups */
    atomic_size_t pub_quantum;       /* scheduler's current quantum */
    atomic_uint_fast64_t pub_grants; /* scheduler grants so far */
    atomic_uint_fast64_t pub_granted_bytes;
};

#define LG_PUBLISH(field, value) atomic_store_explicit(&(field), (value), memory_order_relaxed)

/* Initialise worker fields that need no loop (called on the JS thread before start). */
int lg_worker_init(lg_worker_t *w, lg_engine_t *e, unsigned index);

/* Start the thread. The listen fds in w->lsock[i].fd are already bound and listening. */
int lg_worker_start(lg_worker_t *w);

/* Post a message (any thread). Returns 0 or -ENOMEM. */
int lg_worker_post(lg_worker_t *w, int type, uint32_t grace_ms);

/* Post a decision for a held connection (JS thread). Takes ownership of decision (freed on
 * failure). Returns 0, -ENOMEM, or -ESHUTDOWN when the worker is gone. */
int lg_worker_post_resolve(lg_worker_t *w, uint64_t serial, lg_route_t *decision);

/* Free what lg_worker_init allocated (after the thread has been joined, or never started). */
void lg_worker_destroy(lg_worker_t *w);

/* Worker thread only: a connection was freed; finishes a stop when it was the last. */
void lg_worker_conn_gone(lg_worker_t *w);

/* Worker thread only: make sure a scheduler pass runs soon (some flow became ready). */
void lg_worker_sched_kick(lg_worker_t *w);

/* Worker thread only: accept loop for a listen socket (lg_listener.c). */
void lg_listener_on_readable(uv_poll_t *h, int status, int events);

/* Worker thread only: the worker ran out of file descriptors (err = EMFILE/ENFILE) outside
 * accept (e.g. dialling an upstream): pause accepting on every listener (lg_listener.c). */
void lg_worker_fd_pressure(lg_worker_t *w, int err);

#endif /* LG_WORKER_H */
