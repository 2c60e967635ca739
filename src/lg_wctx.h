/*
 * lg_wctx.h — what a worker thread lends to the modules below it (listener, conn and the
 * connection phases): its loop, buffer pool, scheduler, counters, and the engine-wide state those
 * modules read. Plain data: each field is owned by the worker and used by the module named next
 * to it; nothing here calls up into the worker or the engine. Where a lower module must tell the
 * worker something (a connection is gone, descriptors ran short) it calls a function pointer the
 * worker set here with its own `void *` (the libuv callback style).
 *
 * Threads: everything here is touched by the owning worker thread only, except the fields marked
 * "shared", which are atomics or engine-owned immutable data.
 */
#ifndef LG_WCTX_H
#define LG_WCTX_H

#include "lg_buf.h"
#include "lg_config.h"
#include "lg_drr.h"
#include "lg_event.h"
#include "lg_metrics.h"
#include "lg_theap.h"

#include <uv.h>

typedef struct lg_conn_s lg_conn_t;
typedef struct lg_blocklog_s lg_blocklog_t;
typedef struct lg_wreq_s lg_wreq_t;
typedef struct lg_pending_s lg_pending_t;
typedef struct lg_verify_job_s lg_verify_job_t;
struct lg_auth_cache_s;

#define LG_GRANTS_PER_RUN  1024         /* scheduler grants per loop iteration */
#define LG_TURN_READ_BYTES (1u << 20)   /* bytes all flows of a worker may read per loop turn */
#define LG_TURN_READ_BUFS  2            /* read buffers a flow may read per turn at least ... */
#define LG_TURN_READ_FLOOR (256u << 10) /* ... and at least this many bytes (a large pipe's) */
#define LG_TURN_DRAIN      (4u << 20) /* a splicing flow may read this far past its budget: debt */
#define LG_PEEK_BYTES      (128u << 10) /* bulk bytes moved between two looks at interactive flows */
#define LG_LIGHT_READ      4096         /* a read this small into an empty queue: interactive */
#define LG_LIGHT_BULK_MS   1000         /* ... while bulk work was done this recently */
#define LG_SPLICE_MIN      16384        /* a read this large: the next read of the flow splices */
#define LG_PIPE_SIZE       (256u << 10) /* capacity asked for a worker's large pipes (F_SETPIPE_SZ) */
#define LG_BIG_PIPES       4 /* large pipes a worker holds at most; others keep the default 64 KiB */
#define LG_LENT_PIPES_MAX  64 /* pipes a worker lends to flows whose destination is full */
#define LG_SPARE_PIPES     8  /* empty pipes a worker keeps for its next splices */
#define LG_PIPE_EVENTS     64 /* lent pipes handled per wakeup of the worker's out-set */
#ifdef LG_FAULT_INJECTION
#define LG_WREQ_CACHE_MAX 0 /* fault builds keep no spares: every request is a real allocation */
#else
#define LG_WREQ_CACHE_MAX 256 /* spare write requests a worker keeps */
#endif
#define LG_DISCARD_BUF_BYTES 4096 /* read target for bytes that are thrown away */

#define LG_WCTX_STATES 16 /* >= LG_CONN_N_STATES (checked in lg_conn.c) */

/* Where a worker is in its life (pub_phase), for the stop report. */
enum {
    LG_WPHASE_RUNNING = 0,
    LG_WPHASE_GRACE,    /* stop received: not accepting, connections finishing */
    LG_WPHASE_DRAINING, /* grace over: every connection is being closed */
    LG_WPHASE_CLOSING,  /* no connection left: the worker's handles are closing */
    LG_WPHASE_EXITED,   /* the loop has returned */
};

#define LG_HEAD_SRC_SLOTS 512 /* counters per row of the per-source head sketch */

/* Engine-wide live state of one listener (shared: atomics, written by every worker). */
typedef struct lg_lis_state_s {
    atomic_uint active;  /* connections open on this listener, all workers */
    atomic_uint in_head; /* connect listeners: connections still sending their head */
    /* Connect listeners: connections in their head per source, a count-min sketch (two rows,
     * each indexed by a part of lg_limit_key_hash of the source): a source's count is the
     * smaller of its two counters, which collisions may overstate but never understate. */
    atomic_uint head_src[2][LG_HEAD_SRC_SLOTS];
} lg_lis_state_t;

/* The worker's scheduler (lg_relay): DRR state and the handles that run its passes. */
typedef struct lg_sched_s {
    lg_drr_t drr;
    uv_check_t check;         /* runs a scheduler pass after each poll while flows are ready */
    uv_idle_t idle;           /* keeps poll from blocking while flows are ready */
    uv_prepare_t turn_prep;   /* counts loop turns: a flow's read budget is per turn */
    uint64_t turn;            /* loop turns so far */
    size_t readers_now;       /* weights of the flows that read in this turn */
    size_t readers_last;      /* weights of the flows that read in the last turn */
    size_t read_unit;         /* this turn's read budget per unit of weight (lg_relay) */
    lg_pace_t pace;           /* scheduler.rate: token bucket in front of the grants */
    uv_timer_t pace_timer;    /* armed only while flows wait for tokens */
    bool pace_waiting;        /* pace_timer armed */
    struct lg_flow_s *parked; /* flows out of flowRate tokens, off the DRR round (lg_relay) */
    uv_timer_t flow_timer;    /* armed only while some flow is parked: the earliest wake */
    uint64_t flow_timer_at;   /* ns (uv_hrtime) the flow timer was armed for */
    bool flow_timer_armed;
    /* Interactive flows (lg_relay: "looking for interactive flows mid-turn"): a second epoll
     * set holding only the sources of flows whose last read was small and found their queue
     * empty, looked at every LG_PEEK_BYTES of bulk work so that their bytes need not wait for
     * the rest of the loop turn. Created when the first such flow appears. */
    int light_ep;        /* epoll descriptor (valid while light_open) */
    bool light_open;     /* light_ep created */
    bool peeking;        /* inside a look (no nested look) */
    size_t n_light;      /* flows in the set */
    size_t since_peek;   /* bulk bytes read or granted since the last look */
    uint64_t bulk_ms;    /* loop time of the last bulk work over LG_LIGHT_READ (0: none yet) */
    uint64_t peek_reads; /* statistics: reads done by looks (workers[].interactiveReads) */
    /* Zero-copy relay (lg_relay: "splice"): one pipe per worker, empty between calls. */
    int pipe_r, pipe_w;            /* valid while pipe_open */
    bool pipe_open;                /* created (lazily, by the first bulk read) */
    bool pipe_big;                 /* enlarged to LG_PIPE_SIZE (lg_relay: "the worker's pipes") */
    size_t n_big;                  /* enlarged pipes held: its own, spares, lent */
    bool big_refused;              /* the kernel refused to enlarge one (until one is closed) */
    struct lg_flow_s *splice_flow; /* the flow whose alloc callback just spliced (relay_read) */
    ssize_t splice_rc;             /* what that splice returned: bytes, 0 = end of stream, -errno */
    /* Lent pipes (lg_relay: "lent pipes"): a flow whose destination did not take all of a
     * splice keeps the pipe with the rest until the destination is writable, watched by a
     * third epoll set (out_ep) that the loop polls through out_poll. lent[i] is free when its
     * flow is NULL; a flow names its pipe by index + 1 (lg_flow_t.pipe). */
    struct lg_lent_pipe_s {
        struct lg_flow_s *flow;
        int r, w;
        uint32_t bytes; /* in the pipe, not yet spliced to the flow's destination */
        bool big;       /* enlarged (pipe_big) */
    } lent[LG_LENT_PIPES_MAX];
    size_t n_lent;
    int spare_r[LG_SPARE_PIPES], spare_w[LG_SPARE_PIPES]; /* empty pipes */
    bool spare_big[LG_SPARE_PIPES];                       /* ... enlarged */
    size_t n_spare;
    int out_ep;         /* epoll descriptor of the destinations of lent pipes (valid: out_open) */
    bool out_open;      /* out_ep created and out_poll initialised */
    uv_poll_t out_poll; /* out_ep's readiness in the worker's loop */
    size_t n_pipes;     /* pipes this worker holds: its own, spares, lent (w->pipes counts them
                           engine-wide, for the descriptor budget) */
    uint64_t spliced;   /* statistics: bytes relayed by splice (workers[].splicedBytes) */
    bool active;        /* check and idle started */
    bool closed;        /* handles closed: the worker is ending */
    lg_wreq_t *wreq_cache; /* spare write requests */
    size_t n_wreq_cache;
    size_t wreq_cache_max; /* LG_WREQ_CACHE_MAX */
} lg_sched_t;

typedef struct lg_wctx_s {
    uv_loop_t *loop;
    unsigned index;          /* worker index */
    const lg_config_t *conf; /* shared, immutable: the engine's fixed config */
    lg_events_t *events;     /* shared: the engine's event channel */
    lg_lis_state_t *lis;     /* shared: conf->n_listeners entries */
    lg_snapslot_t *slot;     /* shared: where the current snapshot is published */
    lg_snapshot_t *snap;     /* this worker's reference to the snapshot it last saw */
    uint64_t snap_gen;
    lg_pending_t *pending;    /* held connections (lg_suspend; lock shared with JS) */
    lg_limit_t *limit;        /* shared: per-IP protection state (lg_protect) */
    uint32_t fd_budget;       /* connections on all listeners at once; 0 = none (lg_listener) */
    atomic_uint *pipes;       /* shared: the workers' splice pipes (2 descriptors each, as a
                                 connection; counted against fd_budget) */
    lg_blocklog_t *blocklog;  /* shared: coalescing of 'blocked' events (lg_protect) */
    lg_affinity_t *affinity;  /* shared: client IP affinity (lg_conn; ready once a route uses it) */
    uint32_t admits_to_sweep; /* lg_protect: admissions left before the next sweep */
    lg_ja_cache_t ja_cache;   /* this worker's JA3/JA4 cache (lg_protect, lg_suspend) */
    uint64_t next_serial;     /* PROXY v2 unique ids */

    lg_bufpool_t pool;       /* read buffers (lg_relay, lg_tls) */
    lg_sched_t sched;        /* lg_relay */
    lg_counters_t *counters; /* conf->n_listeners entries, written by this thread */

    lg_conn_t *conns; /* lg_conn: every live connection (doubly linked) */
    size_t n_conns;
    size_t n_hello;                 /* lg_conn: connections holding a ClientHello context */
    struct lg_setup_s *no_setup;    /* lg_conn: the zeroed setup relaying connections point at */
    size_t n_lookups;               /* lg_resolve: lookups queued or running */
    struct lg_refresh_s *refreshes; /* lg_conn: background lookups of stale upstream names */
    lg_verify_job_t *verify_jobs;   /* lg_verify: joinable verifications in flight */
    size_t n_verify;                /* lg_verify: verifications queued or running */
    struct lg_auth_cache_s *auth_cache[LG_MAX_LISTENERS]; /* lg_verify: per listener, lazily */
    lg_theap_t deadlines;  /* lg_conn: every connection's deadline (its state's timer) */
    uv_timer_t deadline_t; /* lg_conn: armed for the earliest of them */
    uint64_t deadline_due; /* lg_conn: when deadline_t fires (0: stopped) */
    lg_conn_t *reap;       /* lg_conn: connections marked closing, not yet torn down */
    uv_idle_t reap_idle;   /* lg_conn: tears the marked connections down */
    bool reap_active;
    bool stopping; /* the worker stops: listeners do not admit any more */

    /* Upcalls, set by the worker. */
    void (*conn_gone)(void *arg);            /* a connection was freed */
    void (*fd_pressure)(void *arg, int err); /* out of descriptors (EMFILE/ENFILE) outside accept */
    void *up_arg;

    uint8_t discard[LG_DISCARD_BUF_BYTES]; /* read target for bytes that are thrown away */

    /* Published for metrics(): written by this thread only (relaxed stores), read by JS. */
    atomic_size_t pub_conns;
    atomic_size_t pub_hello_buffers;
    atomic_size_t pub_lookups;
    atomic_size_t pub_quantum;
    atomic_uint_fast64_t pub_grants;
    atomic_uint_fast64_t pub_interactive_reads; /* lg_relay: reads done by a mid-turn look */
    atomic_uint_fast64_t pub_spliced;           /* lg_relay: bytes relayed by splice */
    atomic_size_t pub_pipes;                    /* lg_relay: pipes held (sched.n_pipes) */
    atomic_size_t pub_lent;                     /* lg_relay: pipes lent to flows (sched.n_lent) */
    atomic_size_t pub_big;                      /* lg_relay: pipes enlarged (sched.n_big) */
    atomic_size_t pub_own_big;                  /* lg_relay: 1 if the worker's own pipe is large */
    atomic_uint_fast64_t pub_granted_bytes;
    atomic_uint pub_states[LG_WCTX_STATES]; /* connections per lg_conn_state_t */
    atomic_int pub_phase;                   /* LG_WPHASE_* */
    uint32_t n_states[LG_WCTX_STATES];      /* this thread's copy of pub_states */
} lg_wctx_t;

#define LG_PUBLISH(field, value) atomic_store_explicit(&(field), (value), memory_order_relaxed)

/* Connections open on every listener of the engine (each holds up to two descriptors) plus the
 * workers' pipes (two each): what the descriptor budget (fd_budget) is measured against. */
static inline uint64_t lg_wctx_fd_units(const lg_wctx_t *w)
{
    uint64_t total = atomic_load_explicit(w->pipes, memory_order_relaxed);
    for (size_t i = 0; i < w->conf->n_listeners; i++)
        total += atomic_load_explicit(&w->lis[i].active, memory_order_relaxed);
    return total;
}

#endif /* LG_WCTX_H */
