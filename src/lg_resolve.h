/*
 * lg_resolve.h — finding and dialling a connection's upstream: asynchronous name resolution and
 * Happy Eyeballs connection attempts (RFC 8305).
 *
 * Dialling: lg_dial_start() tries a list of addresses in the given order. The first attempt
 * starts at once; each further one starts LG_DIAL_STAGGER_MS after the previous one, or at once
 * when the previous one fails (RFC 8305 §5). The first attempt to connect wins and becomes the
 * connection's upstream handle (c->up); the others are closed. When every attempt has failed,
 * the connection is told with the last error. The overall deadline is the connection's own
 * CONNECTING timer, not this module's.
 *
 * Resolution: lg_resolve_start() runs uv_getaddrinfo on the worker's loop (libuv's thread pool,
 * which Node shares). The request is owned by itself, not by the connection: a connection that
 * closes first detaches it and cancels it if it is still queued (uv_cancel), so abandoned lookups
 * neither wait for a pool thread nor keep a stopping worker's loop alive; one that already runs
 * cannot be cancelled and its late callback frees it. At most LG_RESOLVE_MAX_INFLIGHT lookups per
 * worker are queued or running (detached ones included): beyond that lg_resolve_start refuses
 * with -EBUSY (CONNECT answers 503), so a slow resolver cannot grow the pool's queue without bound.
 * Results are interleaved by family (IPv6 first when the resolver put it first, RFC 8305 §4) and
 * capped at LG_RESOLVE_MAX_ADDRS.
 *
 * Ownership: attempts and the dialer are owned by the connection and count in its
 * pending_closes while closing, so the connection is freed only after all of them.
 */
#ifndef LG_RESOLVE_H
#define LG_RESOLVE_H

#include "lg_common.h"

#include <netinet/in.h>
#include <sys/socket.h>
#include <uv.h>

#define LG_RESOLVE_MAX_ADDRS    32  /* addresses kept from one lookup */
#define LG_RESOLVE_MAX_INFLIGHT 256 /* lookups queued or running per worker */
#define LG_DIAL_STAGGER_MS      250 /* ms between Happy Eyeballs attempts (RFC 8305 §5) */
#define LG_DIAL_FD_RETRY_MS     100 /* ms before retrying a dial that found no free descriptor */

typedef struct lg_conn_s lg_conn_t;

/* A socket address small enough to keep 32 of (IPv4 or IPv6). */
typedef union lg_sockaddr_u {
    struct sockaddr sa;
    struct sockaddr_in in4;
    struct sockaddr_in6 in6;
} lg_sockaddr_t;

/* One connection attempt; the winner stays as the connection's upstream handle. */
typedef struct lg_attempt_s {
    union {
        uv_handle_t handle;
        uv_stream_t stream;
        uv_tcp_t tcp;
        uv_pipe_t pipe;
    } h; /* h.handle.data = the connection */
    uv_connect_t req;
    lg_conn_t *conn;
    struct lg_attempt_s *next; /* dialer's list of attempts in flight */
    bool done;                 /* connect callback has run */
} lg_attempt_t;

/* Owned by the connection while dialling. */
typedef struct lg_dialer_s {
    uv_timer_t stagger;
    lg_conn_t *conn;
    lg_attempt_t *attempts; /* in flight, not yet won */
    size_t n, next;         /* addresses, and the next one to try */
    const char *uds_path;   /* Unix socket to dial instead (owned by the snapshot) */
    int last_err;
    lg_sockaddr_t addrs[LG_RESOLVE_MAX_ADDRS];
} lg_dialer_t;

/*
 * Dial TCP addresses (1..LG_RESOLVE_MAX_ADDRS; more are ignored). The outcome is delivered
 * exactly once to lg_conn_dialed(c, 0) with c->up set, or lg_conn_dialed(c, -errno) — possibly
 * before this function returns, when every address fails at once: the caller must not touch the
 * connection after calling. Returns 0, or -ENOMEM (nothing started, no callback).
 */
int lg_dial_start(lg_conn_t *c, const lg_sockaddr_t *addrs, size_t n);

/* Dial a Unix socket path; outcome as for lg_dial_start. */
int lg_dial_uds(lg_conn_t *c, const char *path);

/* Close every attempt and the dialer (connection closing or dial won). Idempotent. */
void lg_dial_cancel(lg_conn_t *c);

/* Close the winning upstream handle (connection closing). */
void lg_dial_close_up(lg_conn_t *c);

/* Resolution outcome: lg_conn_resolved(c, addrs, n, 0) or (c, NULL, 0, -errno). */
typedef struct lg_resolve_s lg_resolve_t;

/* Start resolving host:port. Returns 0 or -errno (no callback then). */
int lg_resolve_start(lg_conn_t *c, const char *host, uint16_t port);

/* The connection no longer wants the answer (closing or timed out). */
void lg_resolve_detach(lg_conn_t *c);

/* Interleave an address list by family, starting with the family of the first entry
 * (RFC 8305 §4). Stable within each family. Pure; exposed for tests. */
void lg_resolve_interleave(lg_sockaddr_t *addrs, size_t n);

#endif /* LG_RESOLVE_H */
