/*
 * lg_event.h — events from the engine to JavaScript: a tagged union, and the bounded channel
 * that carries them.
 *
 * An event is allocated at the size of its own kind (lg_event_alloc), so a tunnel event does not
 * carry a suspended connection's fields and the reverse. The channel has no N-API dependency: the
 * addon gives it a post function (backed by a napi_threadsafe_function with an unbounded queue,
 * called in non-blocking mode) and the channel bounds what waits in it: LG_EVENT_QUEUE_MAX
 * informational events (tunnel, blocked, access, warning, error) and, apart, LG_EVENT_QUEUE_MAX
 * suspended connections' events, so a flood of access records or refusals while the JS thread is
 * busy cannot cost a held connection its decision (and the reverse); the control events
 * lifecycle depends on (READY, WORKER_EXIT: two per worker) are never dropped for a full queue.
 * Every event that cannot be queued is freed and counted.
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
    LG_EV_ACCESS,      /* a connection ended, or was refused at accept (only while access events
                          are on): the access log's record */
} lg_event_type_t;

/*
 * Why a connection ended: the access record's fixed vocabulary, X(NAME, "name"). The first
 * reason noted wins (a failure that closes as a consequence of another keeps the first one).
 * REFUSED_BLOCK is protection's refusal: its name is "refused:" + the LG_BLOCK_* reason.
 */
#define LG_CLOSE_REASONS(X)                                                                        \
    X(CLIENT_CLOSED, "client_closed")           /* the client's FIN came first */                  \
    X(UPSTREAM_CLOSED, "upstream_closed")       /* the upstream's FIN came first */                \
    X(IDLE_TIMEOUT, "idle_timeout")             /* idleTimeoutMs without a byte */                 \
    X(HALF_CLOSE_TIMEOUT, "half_close_timeout") /* halfCloseTimeoutMs after one side's FIN */      \
    X(HANDSHAKE_FAILED, "handshake_failed")     /* ClientHello or TLS handshake failed */          \
    X(HANDSHAKE_TIMEOUT, "handshake_timeout")   /* tlsHandshakeTimeoutMs ran out */                \
    X(TLS_ERROR, "tls_error")                   /* TLS failed after the handshake */               \
    X(NO_ROUTE, "no_route")                     /* no route for the SNI, or none to dial */        \
    X(UPSTREAM_FAILED, "upstream_failed")       /* no upstream could be reached (502) */           \
    X(UPSTREAM_TIMEOUT, "upstream_timeout")     /* the dial's deadline ran out (504) */            \
    X(SUSPEND_REJECTED, "suspend_rejected")     /* resolveConnection(id, null) */                  \
    X(SUSPEND_TIMEOUT, "suspend_timeout")       /* no decision within suspendTimeoutMs */          \
    X(SUSPEND_DROPPED, "suspend_dropped")       /* could not be held (table or queue full) */      \
    X(BAD_REQUEST, "bad_request")         /* a malformed CONNECT head (400, 405, 414, ...) */      \
    X(HEAD_TIMEOUT, "head_timeout")       /* the CONNECT head did not complete (408) */            \
    X(REFUSED_PORT, "refused:port")       /* CONNECT: the port is not allowed (403) */             \
    X(REFUSED_DOMAIN, "refused:domain")   /* CONNECT: the domain is not allowed (403) */           \
    X(REFUSED_ADDRESS, "refused:address") /* CONNECT: a denied address (403) */                    \
    X(REFUSED_AUTH, "refused:auth")       /* CONNECT: credentials (407) or failureLimit (429) */   \
    X(REFUSED_BUSY, "refused:busy")       /* CONNECT: lookups or verifications full (503) */       \
    X(REFUSED_BLOCK, "refused:")          /* protection: "refused:" + the block reason */          \
    X(STOPPED, "stopped")                 /* stop() closed it after its grace period */            \
    X(CLIENT_RESET, "client_reset")       /* a read, write or shutdown on the client failed */     \
    X(UPSTREAM_RESET, "upstream_reset")   /* ... on the upstream (a reset, a broken pipe) */       \
    X(OUT_OF_MEMORY, "out_of_memory")     /* an allocation failed */                               \
    X(ERROR, "error")                     /* anything else (an internal error) */

enum {
    LG_CLOSE_NONE = 0,
#define LG_CLOSE_ENUM(name, js) LG_CLOSE_##name,
    LG_CLOSE_REASONS(LG_CLOSE_ENUM)
#undef LG_CLOSE_ENUM
        LG_CLOSE_N
};

/* What was decided for a connection (the access record's `decision`). */
enum {
    LG_DECISION_NONE = 0,    /* closed or refused before a route was chosen */
    LG_DECISION_PASSTHROUGH, /* TLS bytes passed through to the upstream */
    LG_DECISION_TERMINATE,   /* TLS terminated, plaintext to the upstream */
    LG_DECISION_SUSPENDED,   /* held for JS and closed before (or without) a decision */
    LG_DECISION_SUSP_PASS,   /* held, then passed through on JS's decision */
    LG_DECISION_SUSP_TERM,   /* held, then terminated on JS's decision */
    LG_DECISION_TUNNEL,      /* a CONNECT tunnel (connect listeners) */
};

#define LG_EVENT_MESSAGE_MAX 256  /* bytes of a note's message, NUL included */
#define LG_EVENT_QUEUE_MAX   4096 /* events of one class waiting for the JS thread (see above) */
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

/* One access record: built at close from what the connection kept (see lg_conn.c's post_access). */
typedef struct lg_ev_access_s {
    unsigned listener;
    int route;        /* index in the connection's snapshot; -1 when none */
    uint8_t why;      /* LG_CLOSE_* */
    uint8_t block;    /* LG_BLOCK_* when why is REFUSED_BLOCK */
    uint8_t decision; /* LG_DECISION_* */
    uint16_t status;  /* connect: HTTP status sent; 0 when none */
    uint16_t peer_port;
    uint64_t bytes_in;  /* client → upstream (as relayed) */
    uint64_t bytes_out; /* upstream → client (a CONNECT response line not included) */
    uint64_t duration_ms;
    int64_t end_ms; /* wall clock at close, ms since the epoch */
    char peer_ip[48];
    char sni[256];       /* "" when none or not kept */
    char route_sni[256]; /* the route's pattern ("*.a.test", "" for the default route) */
    char upstream[300];  /* the upstream's identity ("tcp host:port"), or the CONNECT target */
    char tls_version[16];
    char cipher[64];
    char ja4[40];
} lg_ev_access_t;

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
        lg_ev_access_t access;
    } u; /* only the member of `type` is allocated */
} lg_event_t;

/* Returns 0 when queued, -EAGAIN when the event could not be (it is freed either way). */
typedef int (*lg_post_fn)(void *ctx, lg_event_t *ev);

/* Owner: the engine. Zero-initialised = no post function yet (every post is a drop). */
typedef struct lg_events_s {
    lg_post_fn post;
    void *post_ctx;
    atomic_bool tunnel_events;           /* JS listens for 'tunnel' events */
    atomic_bool blocked_events;          /* JS listens for 'blocked' events */
    atomic_bool access_events;           /* JS listens for 'access' events (the access log) */
    atomic_long queued;                  /* informational events posted and not yet handled */
    atomic_long queued_suspended;        /* suspended events posted and not yet handled */
    atomic_uint_fast64_t dropped;        /* events lost: queue bound reached, no memory */
    atomic_uint_fast64_t access_dropped; /* of which access records */
} lg_events_t;

/* A zeroed event of `type` with room for its own kind only; NULL when out of memory (counted
 * as a drop on `ch` when ch is not NULL). */
lg_event_t *lg_event_alloc(lg_events_t *ch, lg_event_type_t type, unsigned worker);

/*
 * Post an event (any thread); takes ownership. Control events are always queued; others are
 * bounded by LG_EVENT_QUEUE_MAX per class (suspended, the rest). Returns 0 when queued, -EAGAIN
 * when dropped (counted, freed).
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

static inline bool lg_events_access_on(lg_events_t *ch)
{
    return atomic_load_explicit(&ch->access_events, memory_order_relaxed);
}

#endif /* LG_EVENT_H */
