/*
 * lg_relay.h — moving a connection's bytes between its two streams through the worker's
 * scheduler.
 *
 * A relay has two flows, one per direction: c2u (client → upstream) and u2c (upstream →
 * client). Reads take a buffer from the worker's pool only when data is ready (an idle connection
 * holds none), queue it on the flow and tell the scheduler. With scheduler kind 'drr' the worker's
 * check handle hands out grants in DRR order (lg_drr) and each grant becomes one write; with
 * 'fifo' every read is written at once.
 *
 * The relay knows neither the connection nor TLS. It reports to its owner through a small table
 * of callbacks (lg_relay_ops_t) and never closes anything itself: on an error it stops its own
 * I/O and says so. A "filtered" relay (TLS termination) hands every read to ops->filter instead
 * of queueing it; the owner transforms the bytes, appends the results to the flows' queues
 * (lg_relay_flow_q) and reports them with lg_relay_queued().
 *
 * Scheduling (kind 'drr'), measured in bench S6 (issue 17):
 *  - Reading is scheduled: per loop turn (counted by a prepare handle) a source may start
 *    reading while it read less than its budget, max(2 x readBufferSize, LG_TURN_READ_FLOOR,
 *    LG_TURN_READ_BYTES / flows that read in the last turn) (read_budget in lg_relay.c says why).
 *    A splicing flow that starts empties its socket, up to LG_TURN_DRAIN past the budget, and
 *    carries what it read past the budget as debt into the next turns, which it skips until the
 *    debt is paid at one budget a turn (lg_drr_read_debt). A refused read: the alloc callback
 *    refuses the buffer, libuv ends the read pass with UV_ENOBUFS but keeps the stream reading,
 *    so there is no epoll_ctl, and the still-readable descriptor comes back on the next poll.
 *    Before this, every readable flow read up to maxQueuedBytesPerFlow per turn: a flow limited
 *    by its TCP window got a fixed fraction of the others (0.36 with 100 flows), and one flow
 *    alone stopped and restarted reading every turn.
 *  - Sparse flows first: a flow with nothing queued and no write in flight is written in the same
 *    turn that read its bytes (lg_drr_take), ahead of the backlogged flows, instead of waiting
 *    for the check-phase pass behind them.
 *  - Only bytes a destination does not take at once stay queued; those flows are served by the
 *    check-phase DRR pass (lg_drr_next), one grant at a time.
 *  - Fairness bound: a flow whose socket holds a budget whenever it may read has read between
 *    T budgets and T budgets + LG_TURN_DRAIN + one read after T turns (lg_drr.h), so flows that
 *    stay backlogged receive equal bytes per turn (per unit of weight) within the drain, however
 *    long they run and whatever their windows; a flow whose window is below the budget gets its
 *    window every turn.
 *  - Pacing (scheduler.rate): every grant, sparse or not, is cut to the worker's token bucket
 *    (lg_pace); an empty bucket stops the passes and arms one timer until a quantum of tokens is
 *    back, so the flows wait in DRR order and share the rate fairly. The cut part goes back as
 *    credit (lg_drr_return): the flow finishes its visit when tokens return.
 *  - Per-flow cap (scheduler.flowRate): each flow has its own token bucket (100 ms of its rate,
 *    at least LG_FLOW_BURST_MIN) and every grant is also cut to it. A flow visited with no tokens
 *    hands its grant back as credit and is parked: it stays BUSY in the DRR (so no pass visits
 *    it) on the worker's parked list, and one timer, armed only while some flow is parked, brings
 *    the due ones back (lg_drr_done: at the head, with their credit) when a quantum of their
 *    tokens is there. Nothing is armed while no flow waits.
 *  - Weights (scheduler.weight of the route, else the listener): a flow's DRR quantum and its
 *    per-turn read budget are multiplied by its weight, so flows that stay backlogged move bytes
 *    in proportion to their weights whether writing (DRR) or reading (the budget) is what limits
 *    them; lg_drr.h states the bound. The weight is set when the connection is accepted (the
 *    listener's) and again when it is routed (the route's, from the snapshot it was accepted
 *    under): updateConfig changes the weight of connections accepted afterwards only.
 *
 * Backpressure: when a flow's queue holds more than maxQueuedBytesPerFlow of buffer memory,
 * reading its source stops; it resumes once the queue is below half of that.
 *
 * Half-close: a FIN from one side becomes shutdown() of the other once that flow's queue is
 * written; when both directions have been shut down the relay reports LG_RELAY_DONE.
 *
 * Streams: while a relay reads or writes a stream, the stream's `data` points at the relay.
 * The owner keeps the streams alive (and does not free the relay) until their close callbacks
 * ran; write and shutdown callbacks cancelled by uv_close() only release their request.
 */
#ifndef LG_RELAY_H
#define LG_RELAY_H

#include "lg_wctx.h"

typedef struct lg_relay_s lg_relay_t;

/* A flow's own cap (scheduler.flowRate): while its bucket is empty the flow is parked: it stays
 * BUSY in the DRR, off the round, on the worker's parked list. */
typedef struct lg_flowcap_s {
    lg_pace_t pace;
    struct lg_flow_s *park_next, *park_prev;
    uint64_t park_until; /* ns (uv_hrtime): enough tokens for a quantum */
    bool parked;
} lg_flowcap_t;

/* One direction: bytes read from src, queued, written to dst. */
typedef struct lg_flow_s {
    lg_drr_flow_t drr; /* scheduler state */
    lg_bufq_t q;       /* read, not yet written (includes bytes being written) */
    uv_stream_t *src;  /* NULL until attached; the destination is the other flow's src */
    uint64_t bytes;    /* bytes written to dst */
    /* scheduler.flowRate: the flow's own bucket and its place among the worker's parked flows;
     * NULL when the cap is off (allocated with the relay only then: idle connections of a
     * proxy without flowRate carry one pointer per flow, not the bucket). */
    struct lg_flowcap_s *cap;
    /* Every idle connection carries two flows: 32 bits where the bound allows, flags in bits
     * (112 bytes a flow instead of 136). */
    uint32_t read_turn; /* the loop turn of the flow's last read (low 32 bits of
                           lg_sched_t.turn: a flow idle for exactly 2^32 turns may be refused
                           one read, which it retries in the next turn) */
    uint32_t held;      /* bytes queued before the flow had a destination (not scheduled; below
                           the high watermark, LG_FLOW_QUEUE_MAX, plus one read) */
    uint32_t turn_read; /* bytes read in that turn (the read budget plus one read at most) */
    uint32_t n_writes;  /* write requests in flight (DRR: one grant at a time; FIFO: one per
                           read, so at most LG_FLOW_QUEUE_MAX / LG_BUF_SIZE_MIN + 1) */
    uint16_t pipe;      /* a lent pipe holds bytes for dst: lg_sched_t.lent index + 1 (0: none) */
    bool refused : 1;   /* the last alloc refused a read: the turn's budget was used */
    bool reading : 1;   /* uv_read_start active on src */
    bool paused : 1;    /* reads stopped by the high watermark */
    bool eof : 1;       /* src sent FIN (or the owner ended the flow) */
    bool shut : 1;      /* shutdown(dst) requested */
    bool shut_done : 1; /* shutdown(dst) completed */
    bool to_client : 1; /* direction: upstream → client */
    bool light : 1;     /* src is in the worker's set of interactive sources (lg_sched_t) */
    bool bulk : 1;      /* the last read was >= LG_SPLICE_MIN: the next one may splice */
} lg_flow_t;

/* What a relay reports (lg_relay_ops_t.event). */
enum {
    LG_RELAY_ERROR = 1, /* a read, write or shutdown failed (failed_client says on which side), or
                           no memory (err UV_ENOMEM / UV_ENOBUFS): the relay stopped */
    LG_RELAY_DONE,      /* both directions ended and were shut down cleanly */
    LG_RELAY_CLIENT_FIN /* the FIN toward the client has been delivered (u2c shut down) */
};

typedef struct lg_relay_ops_s {
    /* The owner finds itself from r (the relay is embedded in it: no pointer back, 8 bytes less
     * per connection). */
    void (*event)(lg_relay_t *r, int what, int err); /* err: a libuv error for LG_RELAY_ERROR */
    /* Filtered relays only: n bytes read from f->src in b (ownership of b passes). A read of the
     * client (c2u) does not refresh last_activity: the filter sets it when the bytes carried
     * something for the upstream (not a record that carries nothing). */
    void (*filter)(lg_relay_t *r, lg_flow_t *f, lg_buf_t *b, size_t n);
    /* f->src ended. Return true to end the flow normally (FIN passed on after its queue). May be
     * NULL: always true. */
    bool (*eof)(lg_relay_t *r, lg_flow_t *f);
} lg_relay_ops_t;

/* Owner: embedded in the connection. */
struct lg_relay_s {
    lg_wctx_t *w;
    const lg_relay_ops_t *ops;
    lg_flow_t c2u, u2c;
    uint64_t last_activity; /* loop time (ms) of the last byte read or written (of a filtered
                             * relay's client: of the last read that carried data; see filter) */
    uint8_t lis;            /* the connection's listener: its counters are w->counters[lis] */
    bool filtered;          /* reads go to ops->filter (TLS termination) */
    bool dead;              /* stopped: no I/O is started any more */
    bool failed_client;     /* LG_RELAY_ERROR: it was the client's socket that failed */
};

/* Prepare a relay (no streams yet) of a connection on listener `lis` (its bytes and failures are
 * counted in w->counters[lis]) whose flows are capped at flow_rate bytes/s each (0: no cap; the
 * listener's scheduler.flowRate). Allocates only the flows' caps, when capped; -ENOMEM then if
 * that fails (nothing to release). */
int lg_relay_init(lg_relay_t *r, lg_wctx_t *w, unsigned lis, const lg_relay_ops_t *ops,
                  uint64_t flow_rate);

/* Cap both flows at `rate` bytes/s each, or lift the cap (0): a route's own scheduler.flowRate,
 * set when the connection is routed (before its relay moves a byte). 0 or -ENOMEM (the relay
 * keeps what it had). */
int lg_relay_set_flow_rate(lg_relay_t *r, uint64_t rate);

/* Set both flows' scheduler weight (scheduler.weight of the connection's route or listener;
 * clamped to 1..LG_DRR_WEIGHT_MAX). Takes effect at each flow's next DRR visit and read turn. */
void lg_relay_set_weight(lg_relay_t *r, unsigned weight);

/* Give the relay its client stream (c2u's source, u2c's destination); bytes u2c collected before
 * are scheduled. Starts no read. */
void lg_relay_attach_client(lg_relay_t *r, uv_stream_t *client);

/* Give the relay its upstream stream (c2u's destination, u2c's source); bytes c2u collected
 * before are scheduled, and a client that already finished has its FIN passed on. */
void lg_relay_attach_upstream(lg_relay_t *r, uv_stream_t *up);

/* Stop reading f's source as its high watermark would, for bytes its owner holds outside f's
 * queue (a TLS upstream's handshake); reading resumes when f's queue drains below half the
 * watermark, as after any pause. */
void lg_relay_pause(lg_relay_t *r, lg_flow_t *f);

/* Start reading a flow's source (no-op when reading, ended or paused). Returns 0 or a libuv
 * error. */
int lg_relay_read_start(lg_relay_t *r, lg_flow_t *f);

/*
 * uv_read_start, or, on a stream already reading (the ClientHello's callbacks before a
 * terminating route's; a dialled socket's parked reads, lg_dial), a switch of its callbacks in
 * place. libuv's uv_read_stop clears its record of the epoll registration but leaves the
 * descriptor registered, so a stop and a start cost an epoll_ctl ADD that fails with EEXIST and
 * a MOD; the callbacks are public fields, read afresh for every read. Returns 0 or a libuv error.
 */
int lg_read_start(uv_stream_t *s, uv_alloc_cb alloc_cb, uv_read_cb read_cb);
void lg_relay_read_stop(lg_relay_t *r, lg_flow_t *f);

/* Start reading both sources. Returns 0 or a libuv error. */
int lg_relay_start(lg_relay_t *r);

/* n bytes were appended to f's queue (lg_relay_copy, or directly by a filter): schedule them,
 * or hold them until the flow has a destination; apply f's high watermark. */
void lg_relay_queued(lg_relay_t *r, lg_flow_t *f, size_t n);

/* Queue a copy of bytes on a flow and schedule them. Returns 0 or -ENOMEM. */
int lg_relay_copy(lg_relay_t *r, lg_flow_t *f, const uint8_t *data, size_t len);

/* End a flow from the owner's side: no more reads; once its queue is written, FIN. */
void lg_relay_end(lg_relay_t *r, lg_flow_t *f);

/* Stop every I/O the relay would start (the connection is closing); flows leave the scheduler.
 * Idempotent. Write callbacks still arrive and only release their requests. */
void lg_relay_stop(lg_relay_t *r);

/* Free the queues (the connection is being freed: every stream is closed). */
void lg_relay_release(lg_relay_t *r);

/* The worker's scheduler: set up its handles on the loop (cannot fail on a fresh loop), and
 * close them when the worker ends. */
void lg_relay_sched_init(lg_wctx_t *w);
void lg_relay_sched_close(lg_wctx_t *w, uv_close_cb cb);

/* Free a worker's spare write requests. */
void lg_relay_wreq_cache_free(lg_wctx_t *w);

#endif /* LG_RELAY_H */
