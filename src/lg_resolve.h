/*
 * lg_resolve.h — asynchronous name resolution for dials (CONNECT targets, upstream host names).
 *
 * lg_resolve_start() runs uv_getaddrinfo on the worker's loop (libuv's thread pool, which Node
 * shares). The request owns itself: a caller that loses interest cancels it (lg_resolve_cancel),
 * which takes it out of the pool's queue if it has not started, so abandoned lookups neither wait
 * for a pool thread nor keep a stopping worker's loop alive; one that already runs cannot be
 * cancelled and its late completion only frees it. At most LG_RESOLVE_MAX_INFLIGHT lookups per
 * worker are queued or running (cancelled ones included): beyond that lg_resolve_start refuses
 * with -EBUSY, so a slow resolver cannot grow the pool's queue without bound. Results are
 * filtered first (the caller's `keep`, e.g. the CONNECT destination policy, sees every address of
 * the answer), then capped at LG_RESOLVE_MAX_ADDRS, then interleaved by family (the first family
 * first, RFC 8305 §4). Filtering before the cap means a name answering 40 denied addresses then
 * an allowed one still reaches the allowed one.
 *
 * Callback: `done(arg, addrs, n, status)` exactly once unless cancelled, never from inside
 * lg_resolve_start; status 0 with n >= 1 addresses (ports set), status 0 with n == 0 when `keep`
 * refused every address, or a negative libuv error.
 */
#ifndef LG_RESOLVE_H
#define LG_RESOLVE_H

#include "lg_wctx.h"

#define LG_RESOLVE_MAX_ADDRS    32  /* addresses kept from one lookup */
#define LG_RESOLVE_MAX_INFLIGHT 256 /* lookups queued or running per worker */

typedef struct lg_resolve_s lg_resolve_t;

typedef void (*lg_resolve_cb)(void *arg, const lg_sockaddr_t *addrs, size_t n, int status);

/* Whether to keep one address of an answer (its port already set); called on the worker's
 * thread, only while the caller still wants the answer. */
typedef bool (*lg_resolve_keep_cb)(void *arg, const lg_sockaddr_t *addr);

/* Start resolving host (port is written into every address); `keep` (NULL: keep all) filters
 * the answer before the cap. Returns 0 with *out set, -EBUSY at the in-flight bound, or another
 * negative error (no callback then). */
int lg_resolve_start(lg_resolve_t **out, lg_wctx_t *w, const char *host, uint16_t port,
                     lg_resolve_keep_cb keep, lg_resolve_cb done, void *arg);

/* The caller no longer wants the answer: no callback follows. NULL is ignored. */
void lg_resolve_cancel(lg_resolve_t *r);

/* Interleave an address list by family, starting with the family of the first entry
 * (RFC 8305 §4). Stable within each family. Pure; exposed for tests. */
void lg_resolve_interleave(lg_sockaddr_t *addrs, size_t n);

#endif /* LG_RESOLVE_H */
