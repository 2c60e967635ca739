/*
 * lg_suspend.h — connections held on a suspended route until JavaScript decides.
 *
 * A connection whose route is suspended keeps the bytes it has sent (its ClientHello and up to
 * LG_SUSPEND_MAX_EXTRA more) in its suspend context, is entered into its worker's pending table,
 * and a 'suspended' event goes to JS. JS answers with resolveConnection(id, decision): the JS
 * thread claims the entry under the table's lock — that is how it can answer true/false
 * synchronously — and posts the decision to the worker's inbox; the worker takes the entry out
 * and continues the connection exactly as a configured route would, or closes it for a null
 * decision.
 *
 * The pending table is the one structure here shared between threads: per worker, guarded by
 * `lock`, touched only when a connection is suspended, claimed, resolved, timed out or closed —
 * never on the data path. It holds (serial, owner, listener, claimed); `owner` is an opaque
 * pointer only the worker ever dereferences. A claimed entry stays until the worker processes
 * the decision, so a suspend timeout that fires between claim and delivery does not close a
 * connection JS was already told it resolved.
 *
 * Ids are "<worker>.<serial>"; serials come from one counter for the whole process
 * (lg_suspend_next_serial) and are never reused, so an id of one engine is unknown to every
 * other (two proxies of a process, or a takeOver hand-over, cannot decide each other's
 * connections; with a serial per worker both engines' first ids were "0.1").
 */
#ifndef LG_SUSPEND_H
#define LG_SUSPEND_H

#include "lg_event.h"
#include "lg_hello.h"

#include <pthread.h>

#define LG_SUSPEND_MAX_PER_WORKER 65536 /* connections pending per worker; more are closed */
#define LG_SUSPEND_MAX_EXTRA      16384 /* bytes kept from a held client beyond its hello */
#define LG_SUSPEND_CLAIM_GRACE_MS 1000  /* ms a claimed entry may outlive its timeout */

typedef struct lg_pending_entry_s {
    uint64_t serial; /* 0 = empty slot */
    void *owner;     /* the held connection; dereferenced by the owning worker only */
    unsigned listener;
    bool claimed;
    bool route_tls; /* the suspended route has a TLS context for this listener */
} lg_pending_entry_t;

/* A worker's pending table (open addressing, linear probing, backward-shift deletion). */
struct lg_pending_s {
    pthread_mutex_t lock;
    lg_pending_entry_t *slots; /* capacity: a power of two, at most 2 × the maximum */
    size_t cap, n;
    atomic_size_t n_shared; /* n, for metrics */
};
typedef struct lg_pending_s lg_pending_t;

/* Owner: the connection, from suspension until it is decided or closed. */
typedef struct lg_suspend_ctx_s {
    uint8_t *held; /* bytes received so far (hello and after) */
    size_t len, cap;
    char *sni;           /* the SNI the client sent (NULL: none) */
    uint64_t serial;     /* id within the worker */
    uint32_t timeout_ms; /* current deadline length */
    bool pending;        /* in the worker's pending table */
    bool claim_grace;    /* deadline extended once for a claimed decision */
    bool tls;            /* the held bytes start with a TLS ClientHello */
} lg_suspend_ctx_t;

/* The next serial for a held connection's id (any thread; never 0, never the same twice). */
uint64_t lg_suspend_next_serial(void);

int lg_pending_init(lg_pending_t *t);
void lg_pending_destroy(lg_pending_t *t);

/* What lg_suspend_hold needs to know about the connection. */
typedef struct lg_suspend_in_s {
    unsigned worker, listener;
    uint64_t serial;
    void *owner;
    const char *sni; /* NULL: none */
    size_t sni_len;
    const lg_hello_t *hello; /* NULL: not TLS */
    const uint8_t *raw;      /* bytes received so far */
    size_t raw_len;
    const char *peer_ip; /* text */
    uint16_t peer_port;
    uint32_t timeout_ms;
    bool route_tls;
} lg_suspend_in_t;

/*
 * Worker: hold a connection: make its context (a copy of the bytes, room for
 * LG_SUSPEND_MAX_EXTRA more), enter it in the table and post the event. Returns 0 with *out set;
 * -ENOMEM; -ENOSPC (the table is full) or -EAGAIN (the event could not be queued): the
 * connection must be closed (suspendedDropped) — nothing is left in the table.
 */
int lg_suspend_hold(lg_pending_t *t, lg_events_t *ch, const lg_suspend_in_t *in,
                    lg_suspend_ctx_t **out);

/* Worker: free a context, taking it out of the table first if it is there. NULL is ignored. */
void lg_suspend_release(lg_pending_t *t, lg_suspend_ctx_t *s);

/* Worker: a decision arrived for `serial`: take the entry out and return its owner (NULL when
 * it is gone: the client left, or the worker is stopping). */
void *lg_pending_take(lg_pending_t *t, uint64_t serial);

/* Worker: the deadline passed. True when the entry was claimed by JS (its decision is on its
 * way): the caller extends the deadline once by LG_SUSPEND_CLAIM_GRACE_MS. */
bool lg_pending_claimed(lg_pending_t *t, uint64_t serial);

/*
 * JS thread: look up an id among `n` tables. Returns 0 with *worker, *serial, *listener and
 * *route_tls set when it names a pending, unclaimed connection; -ENOENT otherwise (unknown,
 * expired, resolved or being resolved).
 */
int lg_pending_peek(lg_pending_t *const *tables, unsigned n, const char *id, unsigned *worker,
                    uint64_t *serial, unsigned *listener, bool *route_tls);

/* JS thread: claim a peeked entry; true when it was still pending and unclaimed. */
bool lg_pending_claim(lg_pending_t *t, uint64_t serial);

#endif /* LG_SUSPEND_H */
