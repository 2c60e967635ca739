/*
 * lg_suspend.h — connections held on a suspended route until JavaScript decides.
 *
 * A connection whose route is suspended keeps the bytes it has sent (its ClientHello and up to
 * LG_SUSPEND_MAX_EXTRA more), is entered into its worker's pending table, and a 'suspended' event
 * goes to JS. JS answers with resolveConnection(id, decision): the JS thread claims the entry
 * under the table's lock — that is how it can answer true/false synchronously — and posts the
 * decision to the worker's inbox; the worker then continues the connection exactly as a
 * configured route would (passthrough, or termination), or closes it for a null decision.
 *
 * The pending table is the one structure here shared between threads: per worker, guarded by
 * `lock`, touched only when a connection is suspended, claimed, resolved, timed out or closed —
 * never on the data path. It holds (serial, connection, listener, claimed); only the worker ever
 * dereferences the connection pointer. A claimed entry stays until the worker processes the
 * decision, so a suspend timeout that fires between claim and delivery does not close a
 * connection JS was already told it resolved.
 *
 * Ids are "<worker>.<serial>" (serials count up per worker and are never reused).
 */
#ifndef LG_SUSPEND_H
#define LG_SUSPEND_H

#include "lg_common.h"
#include "lg_config.h"
#include "lg_hello.h"

#include <uv.h>

#define LG_SUSPEND_MAX_PER_WORKER 65536 /* connections pending per worker; more are closed */
#define LG_SUSPEND_MAX_EXTRA      16384 /* bytes kept from a held client beyond its hello */
#define LG_SUSPEND_CLAIM_GRACE_MS 1000  /* ms a claimed entry may outlive its timeout */
#define LG_SUSPEND_ID_MAX         32    /* bytes of an id string, NUL included */

typedef struct lg_conn_s lg_conn_t;
typedef struct lg_worker_s lg_worker_t;

typedef struct lg_pending_entry_s {
    uint64_t serial; /* 0 = empty slot */
    lg_conn_t *conn; /* dereferenced by the owning worker only */
    unsigned listener;
    bool claimed;
    bool route_tls; /* the suspended route has a TLS context for this listener */
} lg_pending_entry_t;

/* A worker's pending table (open addressing, linear probing, backward-shift deletion). */
typedef struct lg_pending_s {
    uv_mutex_t lock;
    lg_pending_entry_t *slots; /* capacity: a power of two, at most 2 × the maximum */
    size_t cap, n;
    atomic_size_t n_shared; /* n, for metrics */
} lg_pending_t;

int lg_pending_init(lg_pending_t *t);
void lg_pending_destroy(lg_pending_t *t);

/* Worker: hold a connection whose route is suspended (emits the event). */
void lg_suspend(lg_conn_t *c, const lg_route_t *rt, const char *sni, size_t sni_len,
                const lg_hello_t *hello, const uint8_t *raw, size_t raw_len);

/* Worker: a resolve message arrived (decision NULL: close). Takes ownership of decision. */
void lg_suspend_resolved(lg_worker_t *w, uint64_t serial, lg_route_t *decision);

/* Worker: the suspend deadline passed. */
void lg_suspend_timeout(lg_conn_t *c);

/* Worker: the connection is closing; forget it (a decision still in flight finds nothing). */
void lg_suspend_forget(lg_conn_t *c);

/*
 * JS thread: look up an id. Returns 0 with *listener and *route_tls set when it names a pending,
 * unclaimed connection; -ENOENT otherwise (unknown, expired, resolved or being resolved).
 */
int lg_suspend_peek(lg_worker_t *workers, unsigned n_workers, const char *id, unsigned *worker,
                    uint64_t *serial, unsigned *listener, bool *route_tls);

/* JS thread: claim a peeked entry; true when it was still pending and unclaimed. */
bool lg_suspend_claim(lg_worker_t *w, uint64_t serial);

#endif /* LG_SUSPEND_H */
