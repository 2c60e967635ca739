/*
 * lg_worker.h — one worker thread: its own uv_loop, one SO_REUSEPORT listen socket per listener,
 * the connections it accepted, its scheduler, buffer pool and counters (lg_wctx_t, lent to the
 * modules below), its inbox and its stop sequence.
 *
 * Ownership: a connection belongs to the worker that accepted it for its whole life; only that
 * thread touches it. Other threads talk to a worker only through its inbox: a mutex-guarded
 * message list plus a uv_async_t. Async sends coalesce, so the inbox is drained fully on each
 * wakeup.
 *
 * Stopping: on LG_MSG_STOP the worker closes its listen sockets, lets connections finish for
 * grace_ms, then closes the rest; when the last connection is freed it closes its own handles,
 * its loop ends and the thread posts LG_EV_WORKER_EXIT. The READY and WORKER_EXIT events are
 * allocated when the worker is created, so that lifecycle never depends on an allocation.
 */
#ifndef LG_WORKER_H
#define LG_WORKER_H

#include "lg_listener.h"
#include "lg_protect.h"
#include "lg_suspend.h"
#include "lg_wctx.h"

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

/* What the engine shares with its workers (immutable or atomic). */
typedef struct lg_worker_env_s {
    const lg_config_t *conf;
    lg_events_t *events;
    lg_lis_state_t *lis;
    lg_snapslot_t *slot;
    lg_limit_t *limit;
    lg_blocklog_t *blocklog;
    lg_affinity_t *affinity;
    atomic_uint *pipes;
} lg_worker_env_t;

typedef struct lg_worker_s {
    lg_wctx_t ctx; /* lent to the listener, conn and phase modules */
    uv_loop_t loop;
    uv_thread_t thread;

    uv_async_t inbox_async;
    pthread_mutex_t inbox_lock; /* guards inbox and closing */
    lg_msg_t *inbox;            /* LIFO; reversed when drained */

    lg_lsock_t *lsock; /* n_lsock listen sockets (owned; at least one per listener) */
    size_t n_lsock;
    lg_pending_t pending; /* held connections (lock shared with the JS thread, see lg_suspend) */
    lg_counters_t counters[LG_MAX_LISTENERS]; /* written by this thread only */

    uv_timer_t grace_timer;
    uint64_t grace_deadline; /* loop time at which the grace period ends */
    bool draining;           /* grace over: every connection is being closed */
    bool closing;            /* worker handles are closing; loop about to end */
    int exit_code;
    lg_event_t *ev_ready, *ev_exit; /* preallocated control events */
    lg_msg_t *stop_msg;             /* preallocated: the first stop never needs memory */
} lg_worker_t;

/* Initialise what needs no loop (JS thread, before start). Returns 0 or a negative errno. */
int lg_worker_init(lg_worker_t *w, const lg_worker_env_t *env, unsigned index);

/* Set up the loop and its handles on n bound listen fds (fds[m] for listener index[m]; every
 * listener at least once, and more than once after a hand-over from an engine with more
 * workers), then start the thread. Each fd the worker takes is set to -1 in fds (on failure
 * too: the caller closes the rest). Returns 0 or a negative errno. */
int lg_worker_start(lg_worker_t *w, int *fds, const unsigned *index, size_t n);

/*
 * Give the started worker's thread the OS scheduling of workerPriority (JS thread, after
 * lg_worker_start). LG_PRIORITY_REALTIME: SCHED_FIFO at priority 1, the lowest real-time priority,
 * so the worker runs as soon as it is woken, ahead of every ordinary thread and kernel thread of
 * its CPU (these can otherwise hold the CPU for milliseconds while bytes wait; bench/README.md,
 * S6 ping), and behind every other real-time thread. The kernel's real-time throttling
 * (sched_rt_runtime_us) still leaves ordinary threads their share of a CPU a busy worker would
 * hold. Needs CAP_SYS_NICE or RLIMIT_RTPRIO >= 1. Returns 0 or a negative errno (-EPERM).
 */
int lg_worker_prioritize(lg_worker_t *w, int priority);

/* Join the thread (it must have exited or be exiting). */
void lg_worker_join(lg_worker_t *w);

/* Post a message (any thread). Returns 0, -ENOMEM, or -ESHUTDOWN when the worker is gone. */
int lg_worker_post_stop(lg_worker_t *w, uint32_t grace_ms);
int lg_worker_post_refresh(lg_worker_t *w);

/* Post a decision for a held connection (JS thread). Takes ownership of decision (freed on
 * failure). Returns 0, -ENOMEM, or -ESHUTDOWN. */
int lg_worker_post_resolve(lg_worker_t *w, uint64_t serial, lg_route_t *decision);

/* Free what lg_worker_init allocated (after the thread has been joined, or never started). */
void lg_worker_destroy(lg_worker_t *w);

#endif /* LG_WORKER_H */
