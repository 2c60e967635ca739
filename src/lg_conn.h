/*
 * lg_conn.h — one proxied connection: its states, its deadlines, and the glue between its
 * phases (lg_connect, lg_suspend, lg_tls, lg_relay, lg_dial, lg_resolve), which know nothing of
 * it.
 *
 * Ownership: created by the worker that accepted the client socket and touched only by that
 * thread. It holds one reference to the config snapshot it was accepted under, for its whole
 * life. Each phase owns its state, allocated for the phase and freed when it ends: the ClientHello
 * context (HELLO), the CONNECT head (HEAD, kept through AUTH), the suspend context (SUSPENDED), the
 * resolver and the dialer (RESOLVING, CONNECTING), the TLS state (from HANDSHAKE to the end).
 *
 * Closing is deferred (Redis's freeClientAsync, nginx's posted events): lg_conn_close() marks the
 * connection CLOSING, stops everything that could call back into it (reads, its timer, the
 * relay's I/O, a lookup, a dial, its entry in the pending table) and queues it on its worker.
 * The worker's reaper (an idle handle, so it runs from the top of the loop, never inside another
 * callback) closes its handles; it is freed when the last close callback has run. Code after a
 * call that may close therefore never touches freed memory, and needs no check unless it would
 * start new work.
 *
 * Memory: an idle relaying connection holds no read buffer. The ClientHello context (parser
 * state and raw bytes, ~34 KiB) exists only from the first byte until routing.
 */
#ifndef LG_CONN_H
#define LG_CONN_H

#include "lg_connect.h"
#include "lg_dial.h"
#include "lg_hello.h"
#include "lg_protect.h"
#include "lg_proxyproto.h"
#include "lg_relay.h"
#include "lg_resolve.h"
#include "lg_suspend.h"
#include "lg_tls.h"
#include "lg_verify.h"
#include "lg_wctx.h"

/* Connection states; each has exactly one deadline (the connection's timer: a node in the
 * worker's deadline heap, lg_theap). */
typedef enum {
    LG_CONN_PROXY = 0, /* reading a PROXY protocol header; deadline: the next state's, from
                          accept (accept + tlsHandshakeTimeoutMs, or accept + headTimeoutMs) */
    LG_CONN_HELLO,     /* tls: reading the ClientHello; deadline: accept + tlsHandshakeTimeoutMs */
    LG_CONN_HEAD, /* connect: reading the CONNECT head; deadline: accept + headTimeoutMs (→ 408) */
    LG_CONN_AUTH,       /* connect: Proxy-Authorization being verified (lg_verify); deadline:
                           head + LG_VERIFY_TIMEOUT_MS (→ 503) */
    LG_CONN_RESOLVING,  /* connect: resolving the target; deadline: head + connectTimeoutMs */
    LG_CONN_SUSPENDED,  /* held for a JS decision (lg_suspend); deadline: suspendTimeoutMs */
    LG_CONN_HANDSHAKE,  /* tls termination: handshake running, upstream dialled in parallel;
                           deadline: the earlier of accept + tlsHandshakeTimeoutMs and the dial's */
    LG_CONN_CONNECTING, /* dialling, client reads paused; deadline: tls 10 s, connect as above */
    LG_CONN_RELAY,      /* relaying both ways; deadline: idleTimeoutMs after the last byte */
    LG_CONN_LINGER,     /* an error response or TLS alert is written, then FIN; deadline:
                           LG_LINGER_MS */
    LG_CONN_CLOSING,    /* marked: torn down by the worker's reaper, freed after its handles */
    LG_CONN_N_STATES
} lg_conn_state_t;

/* The state's name ("relay", "closing", ...), or NULL past the last state. */
const char *lg_conn_state_name(unsigned s);

#define LG_LINGER_MS 2000 /* ms to keep reading (and discarding) after an error response */

/* State kept only while reading a PROXY protocol header (LG_CONN_PROXY). */
typedef struct lg_proxyin_s {
    lg_pp_parser_t parser;
    size_t len;
    uint8_t buf[LG_PP_MAX_HEADER];
} lg_proxyin_t;

/* State kept only while reading the ClientHello. */
typedef struct lg_hello_ctx_s {
    lg_hello_parser_t parser;
    lg_hello_t hello;
    size_t raw_len;
    uint8_t raw[LG_HELLO_MAX_RAW];
} lg_hello_ctx_t;

/* State kept only while dialling a route's upstreams: failover (lg_balancer). */
typedef struct lg_dialctx_s {
    const lg_route_t *rt; /* the route (or decision) being dialled; outlives the dial */
    lg_pick_in_t in;      /* client hash, upstreams already tried */
    lg_clientkey_t key;   /* the client, for ipAffinity */
    uint64_t end;         /* loop time (ms): the whole dial's deadline (connectTimeoutMs) */
    uint64_t probe_until; /* the current attempt is the half-open probe of an ejected upstream:
                             its lease's end (lg_upstate_unprobe); 0 when not a probe */
    uint32_t attempts;    /* upstreams dialled so far */
    int idx;              /* the upstream of the current attempt */
    bool local; /* the current attempt failed for a reason of this host's (attempt_failed) */
} lg_dialctx_t;

/* A terminated connection on a route with TLS upstreams: the queues of the second TLS. */
typedef struct lg_upside_s {
    lg_tls_t *tls;    /* TLS toward the upstream (client side), from its connect on */
    lg_bufq_t hs;     /* ciphertext toward the upstream during its handshake (written directly) */
    lg_bufq_t clear;  /* scratch: plaintext just decrypted, either side */
    lg_bufq_t staged; /* plaintext from the client waiting for the upstream's handshake */
    lg_bufq_t early;  /* plaintext from the upstream received with its handshake */
} lg_upside_t;

/* What a terminated route's PROXY protocol header needs from the ClientHello, kept from the
 * routing decision until the handshake completes (the header goes out with the first bytes). */
typedef struct lg_ppctx_s {
    char sni[LG_TLS_MAX_SNI + 1];
    char ja3[LG_JA3_HEX + 1];
    char ja4[LG_JA4_LEN + 1];
} lg_ppctx_t;

/* What the access record needs from the ClientHello, kept from routing to close only while access
 * events are on (nothing is allocated otherwise): the JA4 and the SNI, sized to the SNI. */
typedef struct lg_accessctx_s {
    char ja4[LG_JA4_LEN + 1];
    char sni[]; /* NUL-terminated, "" when the client sent none */
} lg_accessctx_t;

/*
 * What a connection needs only until it relays: the phase contexts and the dial's deadline.
 * Allocated with the connection and freed when it starts relaying with none of them left (the
 * usual case), so that an idle connection does not carry them (80 bytes); the record's `su` then
 * points at its worker's zeroed copy (w->no_setup), which reads as "none" everywhere (the code that
 * runs after relaying only reads these fields, or sets them to NULL).
 */
typedef struct lg_setup_s {
    lg_dialer_t *dialer;      /* CONNECTING (and HANDSHAKE): until it reports */
    lg_resolve_t *resolve;    /* RESOLVING */
    lg_verify_wait_t *verify; /* AUTH: until the verdict */
    lg_hello_ctx_t *hello;    /* HELLO */
    lg_connect_head_t *head;  /* HEAD (and until the tunnel is up: pipelined bytes) */
    lg_suspend_ctx_t *held;   /* SUSPENDED */
    lg_proxyin_t *proxyin;    /* PROXY */
    lg_dialctx_t *dial;       /* CONNECTING (and HANDSHAKE) on a route: until the dial is done */
    lg_ppctx_t *pp;           /* HANDSHAKE on a terminated route that sends a PROXY header */
    uint64_t deadline;        /* loop time by which resolve + dial must be done */
    uint64_t hs_start;        /* loop time tlsHandshakeTimeoutMs counts from: the accept, or the
                                 decision of a held connection (time held does not count) */
} lg_setup_t;

struct lg_conn_s {
    lg_conn_t *prev, *next; /* worker's live list (w->conns); once closing, next links w->reap */
    lg_snapshot_t *snap;    /* reference held for the connection's life */

    uv_tcp_t client;
    lg_theap_node_t timer; /* the state's deadline, in w->deadlines (no libuv handle) */
    lg_upsock_t *up;       /* the connected upstream socket */
    lg_setup_t *su;        /* until it relays; then the worker's empty one (setup_gone) */
    lg_tls_t *tls;         /* terminating routes, from HANDSHAKE on */
    union {                /* one or the other by is_connect (read them only after checking it) */
        lg_route_t *decision; /* tls: a resolved suspended connection's route (owned) */
        lg_tunnel_t *tunnel;  /* connect: the target, from the end of the head */
    };
    lg_upshared_t *upstream; /* the upstream chosen: one active reference, released at free */
    lg_upside_t *upside;     /* terminated connection on a route with TLS upstreams */
    lg_routestat_t *rstat;   /* the configured route's figures, once routed */
    lg_accessctx_t *acc;     /* routed while access events were on: SNI and JA4 (owned) */
    lg_relay_t relay;        /* its `w` is the connection's worker */
    lg_peer_t peer;          /* the client: the socket's peer, or what a PROXY header said */
    lg_admission_t adm;      /* what protection counted for it (released at free) */

    uint64_t accepted_at;     /* loop time (ms) of accept */
    int route;                /* route index once routed, else -1 */
    uint8_t lis;              /* listener index (< LG_MAX_LISTENERS) */
    uint8_t state;            /* lg_conn_state_t (a byte: see the note below the struct) */
    uint16_t status;          /* connect: HTTP status sent (0: none yet) */
    uint16_t resp_len;        /* connect: bytes of that response (not counted as the target's) */
    uint16_t pending_closes;  /* handles (and dialers) whose close has not completed */
    bool is_connect : 1;      /* accepted on a connect listener */
    bool in_head : 1;         /* holds a slot in the listener's in-head count */
    bool linger_discard : 1;  /* LINGER: after the FIN, discard input until EOF (CONNECT) */
    bool torn_down : 1;       /* the reaper closed its handles */
    bool counts_released : 1; /* route and upstream active counts given back (at close) */
    bool half_closed : 1;     /* RELAY: the upstream's FIN reached a client that is still open */
    bool setup_gone : 1;      /* su was freed: it points at the worker's empty one */
    uint8_t why;              /* LG_CLOSE_*: why it ends, the first reason noted (access record) */
    uint8_t why_block;        /* LG_BLOCK_* when why is LG_CLOSE_REFUSED_BLOCK */
    uint8_t eof_first;        /* RELAY: the side whose FIN came first (a LG_CLOSE_*_CLOSED) */
};
/* Every idle connection is one of these: its small fields share the last 8-byte words, the
 * setup-only ones are in lg_setup_t, and nothing is kept that can be derived (the reap list reuses
 * the live list's links, the admission rebuilds its key from the peer, a flow's destination is the
 * other flow's source, the relay names its listener's counters by index): 648 bytes, a 656-byte
 * heap chunk (864 and 880 before). */
_Static_assert(LG_MAX_LISTENERS <= 256 && LG_CONN_N_STATES <= 256, "lg_conn_t.lis and .state");

/*
 * Take an accepted client fd on listener `lis` from `peer` (admission already passed: counted in
 * w->lis[lis], and in *adm by protection unless the listener reads a PROXY header first). Always
 * consumes fd and adm: on failure the fd is closed, adm released and the failure counted.
 * opts_inherited: the fd already has lg_conn_sockopts' options (from its listen socket).
 */
void lg_conn_accept(lg_wctx_t *w, unsigned lis, int fd, bool opts_inherited, const lg_peer_t *peer,
                    const lg_admission_t *adm);

/*
 * Set the TCP options of a client or TCP upstream socket: TCP_NODELAY and the config's
 * tcpKeepalive (fresh: a new socket, so "off" needs no call; an accepted one may have inherited
 * SO_KEEPALIVE). Returns 0, or -1 if one failed (best effort: the connection works without).
 * Linux copies all of them from a listen socket into the sockets it accepts (and arms their
 * keepalive timers), so listen sockets get them once and their connections skip the five calls.
 */
int lg_conn_sockopts(int fd, const lg_config_t *conf, bool fresh);

/* Does fd carry exactly these options (read back with getsockopt)? */
bool lg_conn_sockopts_match(int fd, const lg_config_t *conf);

/* Mark a connection closing (idempotent); see the file comment. */
void lg_conn_close(lg_conn_t *c);

/* Mark every connection of the worker closing (stop after grace). */
void lg_conn_close_all(lg_wctx_t *w);

/*
 * A decision arrived for a held connection (`owner` from lg_pending_take): continue it on the
 * decision's route, or close it for NULL. Takes ownership of decision.
 */
void lg_conn_decide(void *owner, lg_route_t *decision);

/* Set up the reaper and the connections' deadline timer on the worker's loop, and close them
 * when the worker ends (no connection is left then). */
void lg_conn_reaper_init(lg_wctx_t *w);
void lg_conn_reaper_close(lg_wctx_t *w, uv_close_cb cb);

#endif /* LG_CONN_H */
