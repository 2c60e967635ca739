/*
 * lg_event.h — events from the engine to JavaScript: a tagged union, and the bounded channel
 * that carries them.
 *
 * An event is allocated at the size of its own kind (lg_event_alloc), so a tunnel event does not
 * carry a suspended connection's fields and the reverse. The channel has no N-API dependency: the
 * addon gives it a post function (backed by a napi_threadsafe_function with an unbounded queue,
 * called in non-blocking mode) and the channel bounds what waits in it (LG_EVENT_QUEUE_MAX),
 * except the control events lifecycle depends on (READY, WORKER_EXIT: two per worker), which are
 * never dropped for a full queue. Every event that cannot be queued is freed and counted.
 *
 * Threads: lg_events_post is called from any thread; lg_events_done on the JS thread only.
 */
#ifndef LG_EVENT_H
#define LG_EVENT_H

#include "lg_common.h"
#include "lg_policy.h"

#include <stdatomic.h>

typedef enum {
    LG_EV_READY = 1,   /* a worker is accepting (note) */
    LG_EV_WORKER_EXIT, /* a worker's loop has ended; note.code = 0 or -errno */
    LG_EV_WARNING,     /* recoverable trouble; note.message says what */
    LG_EV_ERROR,       /* an engine error JS should see; note.code = -errno */
    LG_EV_TUNNEL,      /* a connect-listener connection ended (only while tunnel events are on) */
    LG_EV_SUSPENDED,   /* a connection is held for a decision */
    LG_EV_BLOCKED,     /* admission refused a source (coalesced per source and reason per second) */
} lg_event_type_t;

#define LG_EVENT_MESSAGE_MAX 256  /* bytes of a note's message, NUL included */
#define LG_EVENT_QUEUE_MAX   4096 /* non-control events waiting for the JS thread */
#define LG_EVENT_ID_MAX      32   /* bytes of a suspended connection's id, NUL included */

typedef struct lg_ev_note_s {
    int code; /* 0 or a negative errno */
    char message[LG_EVENT_MESSAGE_MAX];
} lg_ev_note_t;

typedef struct lg_ev_tunnel_s {
    unsigned listener;
    uint16_t status; /* HTTP status sent; 0 when the client left before any */
    uint16_t port;
    uint64_t bytes_in;  /* client → target */
    uint64_t bytes_out; /* target → client (the 200 line not included) */
    uint64_t duration_ms;
    char target[256];            /* host as requested; "" when the head never completed */
    char why[LG_POLICY_WHY_MAX]; /* why the policy refused it (403), else "" */
} lg_ev_tunnel_t;

typedef struct lg_ev_suspended_s {
    unsigned listener;
    uint16_t peer_port;
    char id[LG_EVENT_ID_MAX];
    char sni[256];
    char peer_ip[48];
    char alpn[256]; /* protocols the client offered, joined by '\n' */
    char ja3[33];
    char ja4[40];
} lg_ev_suspended_t;

typedef struct lg_ev_blocked_s {
    unsigned listener;
    int reason;     /* LG_BLOCK_* (lg_metrics.h) */
    uint64_t count; /* refusals of this (source, reason, listener) since its previous event */
    char ip[48];    /* the source: an address, or an aggregated IPv6 prefix ("2001:db8::/64") */
    char ja3[33];   /* "" when not computed (refused before the ClientHello) */
    char ja4[40];
} lg_ev_blocked_t;

/* Owner: whoever allocated it until posted; the channel (and then the post function) after. */
typedef struct lg_event_s {
    lg_event_type_t type;
    unsigned worker;
    union {
        lg_ev_note_t note;
        lg_ev_tunnel_t tunnel;
        lg_ev_suspended_t suspended;
        lg_ev_blocked_t blocked;
    } u; /* only the member of `type` is allocated */
} lg_event_t;

/* Returns 0 when queued, -EAGAIN when the event could not be (it is freed either way). */
typedef int (*lg_post_fn)(void *ctx, lg_event_t *ev);

/* Owner: the engine. Zero-initialised = no post function yet (every post is a drop). */
typedef struct lg_events_s {
    lg_post_fn post;
    void *post_ctx;
    atomic_bool tunnel_events;    /* JS listens for 'tunnel' events */
    atomic_bool blocked_events;   /* JS listens for 'blocked' events */
    atomic_long queued;           /* non-control events posted and not yet handled */
    atomic_uint_fast64_t dropped; /* events lost: queue bound reached, no memory */
} lg_events_t;

/* A zeroed event of `type` with room for its own kind only; NULL when out of memory (counted
 * as a drop on `ch` when ch is not NULL). */
lg_event_t *lg_event_alloc(lg_events_t *ch, lg_event_type_t type, unsigned worker);

/*
 * Post an event (any thread); takes ownership. Control events are always queued; others are
 * bounded by LG_EVENT_QUEUE_MAX. Returns 0 when queued, -EAGAIN when dropped (counted, freed).
 */
int lg_events_post(lg_events_t *ch, lg_event_t *ev);

/* Build and post a note (READY, WORKER_EXIT, WARNING, ERROR) with a printf-style message. */
void lg_events_note(lg_events_t *ch, lg_event_type_t type, unsigned worker, int code,
                    const char *fmt, ...) __attribute__((format(printf, 5, 6)));

/* JS thread: a posted event has been handled (releases its place in the bound). */
void lg_events_done(lg_events_t *ch, const lg_event_t *ev);

static inline bool lg_events_tunnels_on(lg_events_t *ch)
{
    return atomic_load_explicit(&ch->tunnel_events, memory_order_relaxed);
}

static inline bool lg_events_blocked_on(lg_events_t *ch)
{
    return atomic_load_explicit(&ch->blocked_events, memory_order_relaxed);
}

#endif /* LG_EVENT_H */
