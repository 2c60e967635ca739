/*
 * lg_conn.h — one proxied connection: accept → read ClientHello → route → dial upstream → relay.
 *
 * Ownership: created by the worker that accepted the client socket and touched only by that
 * thread. It holds one reference to the config snapshot it was accepted under, for its whole
 * life. It is freed only in the close callback of its last libuv handle (pending_closes counts
 * them); code that decides to close calls lg_conn_close(), which marks the connection CLOSING and
 * starts the handle closes — callbacks that arrive later see CLOSING and do nothing.
 *
 * Memory: an idle relaying connection holds no read buffer. The ClientHello context (parser
 * state and raw bytes, ~34 KiB) exists only from the first byte until routing.
 */
#ifndef LG_CONN_H
#define LG_CONN_H

#include "lg_buf.h"
#include "lg_drr.h"
#include "lg_hello.h"
#include "lg_resolve.h"
#include "lg_worker.h"

#include <uv.h>

/* Connection states; each has exactly one deadline (the conn's timer). */
typedef enum {
    LG_CONN_HELLO = 0,  /* tls: reading the ClientHello; deadline: accept + tlsHandshakeTimeoutMs */
    LG_CONN_HEAD,       /* connect: reading the CONNECT head; deadline: accept + 10 s (→ 408) */
    LG_CONN_RESOLVING,  /* connect: resolving the target; deadline: head + connectTimeoutMs */
    LG_CONN_SUSPENDED,  /* held for a JS decision (lg_suspend); deadline: suspendTimeoutMs */
    LG_CONN_HANDSHAKE,  /* tls termination: handshake running, upstream dialled in parallel;
                           deadline: the earlier of accept + tlsHandshakeTimeoutMs and the dial's */
    LG_CONN_CONNECTING, /* dialling, client reads paused; deadline: tls 10 s, connect as above */
    LG_CONN_RELAY,      /* relaying both ways; deadline: idleTimeoutMs after the last byte */
    LG_CONN_LINGER,     /* connect: error response written, client input discarded until EOF;
                           deadline: LG_LINGER_MS */
    LG_CONN_CLOSING,    /* handles closing; freed when the last close callback runs */
} lg_conn_state_t;

#define LG_LINGER_MS 2000 /* ms to keep reading (and discarding) after an error response */

/* One direction of a relayed connection: bytes read from src, queued, written to dst. */
typedef struct lg_flow_s {
    lg_drr_flow_t drr; /* scheduler state */
    lg_bufq_t q;       /* read, not yet written (includes bytes being written) */
    lg_conn_t *conn;
    uv_stream_t *src, *dst;
    size_t inflight;   /* bytes of q being written (DRR: one grant at a time) */
    unsigned n_writes; /* write requests in flight */
    uint64_t bytes;    /* bytes written to dst */
    bool reading;      /* uv_read_start active on src */
    bool paused;       /* reads stopped by the high watermark */
    bool eof;          /* src sent FIN (or we stopped caring about it) */
    bool shut;         /* shutdown(dst) requested */
    bool shut_done;    /* shutdown(dst) completed */
    bool to_client;    /* direction: upstream → client */
    size_t held;       /* bytes queued before the flow had a destination (not scheduled) */
} lg_flow_t;

/* State kept only while reading the ClientHello. */
typedef struct lg_head_ctx_s lg_head_ctx_t; /* lg_connect.c: CONNECT head being read */

typedef struct lg_hello_ctx_s {
    lg_hello_parser_t parser;
    lg_hello_t hello;
    size_t raw_len;
    uint8_t raw[LG_HELLO_MAX_RAW];
} lg_hello_ctx_t;

struct lg_conn_s {
    lg_worker_t *w;
    lg_conn_t *prev, *next; /* worker's list */
    lg_snapshot_t *snap;    /* reference held for the connection's life */
    unsigned lis;           /* listener index */
    lg_conn_state_t state;
    int route; /* route index once routed, else -1 */

    uv_tcp_t client;
    uv_timer_t timer;
    lg_attempt_t *up;      /* the connected upstream handle, from RELAY on */
    lg_dialer_t *dialer;   /* while dialling */
    lg_resolve_t *resolve; /* while resolving a name */
    lg_hello_ctx_t *hello; /* while HELLO */
    struct lg_tls_s *tls;  /* TLS termination state (terminating routes) */
    uint8_t *held;         /* suspended: bytes received so far (hello and after) */
    size_t held_len, held_cap;
    char *held_sni;       /* suspended: the SNI the client sent (NULL: none) */
    lg_route_t *decision; /* a resolved suspended connection's route (owned) */
    uint64_t serial;      /* suspended: id within the worker */
    uint32_t suspend_ms;  /* suspended: current deadline length */
    bool pending;         /* in the worker's pending table */
    bool claim_grace;     /* suspended: deadline extended once for a claimed decision */
    bool held_tls;        /* suspended: the held bytes start with a TLS ClientHello */
    lg_head_ctx_t *head;  /* while HEAD (and until the tunnel is up: pipelined bytes) */
    char *target;         /* connect: target host as requested (for the tunnel event) */
    uint64_t deadline;    /* connect: loop time by which resolve + dial must be done */
    uint16_t target_port;
    uint16_t status;   /* connect: HTTP status sent (0: none yet) */
    uint16_t resp_len; /* connect: bytes of the 200 response queued to the client */
    size_t drained;    /* connect: bytes discarded while LINGER */
    bool is_connect;   /* accepted on a connect listener */
    bool in_head;      /* holds a slot in the listener's in-head count */

    lg_flow_t c2u, u2c;
    uint64_t last_activity;  /* loop time (ms) of the last byte either way */
    uint64_t accepted_at;    /* loop time (ms) of accept */
    uint16_t pending_closes; /* handles whose close callback has not run */
    bool counted_active;     /* holds a slot in the listener's active count */
};

/*
 * Take an accepted client fd on listener `lis` (admission already passed). Always consumes fd:
 * on failure it is closed and the failure counted.
 */
void lg_conn_accept(lg_worker_t *w, unsigned lis, int fd);

/* Move to a state and arm its deadline (the one place transitions happen). */
void lg_conn_set_state(lg_conn_t *c, lg_conn_state_t s);

/* Close a connection (idempotent). */
void lg_conn_close(lg_conn_t *c);

/* Close every connection of the worker (stop after grace). */
void lg_conn_close_all(lg_worker_t *w);

/* The relay finished both directions cleanly or hit an error: close. Called by lg_relay. */
void lg_conn_relay_done(lg_conn_t *c);

/* A handle of this connection finished closing (any handle: client, timer, attempts, dialer).
 * Frees the connection when it is CLOSING and this was the last. */
void lg_conn_handle_closed(lg_conn_t *c);

/* Continue a connection on a route (a configured one, or a suspended connection's decision),
 * with the bytes it has sent so far. */
void lg_conn_route_to(lg_conn_t *c, const lg_route_t *rt);

/* TLS (lg_relay): the handshake completed / failed with an LG_TLS_E_* reason. */
void lg_conn_tls_ready(lg_conn_t *c);
void lg_conn_tls_failed(lg_conn_t *c, int reason);

/* Dial outcome (lg_resolve): 0 with c->up connected, or a negative libuv error. */
void lg_conn_dialed(lg_conn_t *c, int status);

/* Resolution outcome (lg_resolve): addresses in dialling order, or a negative libuv error. */
void lg_conn_resolved(lg_conn_t *c, const lg_sockaddr_t *addrs, size_t n, int status);

/* The upstream stream (valid from RELAY on). */
static inline uv_stream_t *lg_conn_up_stream(lg_conn_t *c)
{
    return &c->up->h.stream;
}

/* Counters of this connection's listener on its worker. */
static inline lg_counters_t *lg_conn_counters(lg_conn_t *c)
{
    return &c->w->counters[c->lis];
}

#endif /* LG_CONN_H */
