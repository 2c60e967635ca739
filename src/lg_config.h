/*
 * lg_config.h — the engine's configuration in C form.
 *
 * Two parts with different lifetimes:
 *  - lg_config_t: fixed for the life of an engine (listeners, worker count, buffer sizes,
 *    scheduler). Built once by lg_jsconf from the normalised JS config; owned by the engine.
 *  - lg_snapshot_t: the hot-swappable part (routes, their upstreams, per-listener protection).
 *    Immutable once published. Reference-counted: the engine holds one reference to the current
 *    snapshot, each worker one to the snapshot it last saw, each connection one to the snapshot it
 *    was accepted under. Whoever drops the last reference frees it (any thread).
 *
 * Values here were validated by lib/config.js and are re-checked by lg_jsconf (defence in depth).
 */
#ifndef LG_CONFIG_H
#define LG_CONFIG_H

#include "lg_common.h"
#include "lg_policy.h"
#include "lg_router.h"

#include <netinet/in.h>
#include <openssl/ssl.h>
#include <pthread.h>
#include <stdatomic.h>
#include <sys/socket.h>

#define LG_MAX_LISTENERS       64    /* listeners per engine */
#define LG_MAX_WORKERS         256   /* worker threads per engine */
#define LG_MAX_UPSTREAMS       1024  /* upstreams per route */
#define LG_UPSTREAM_CONNECT_MS 10000 /* ms: dial timeout for an upstream */
#define LG_LISTEN_BACKLOG      1024  /* pending connections per listen socket */

enum { LG_LISTENER_TLS = 0, LG_LISTENER_CONNECT = 1 };

/* A socket address small enough to keep dozens of (IPv4 or IPv6). */
typedef union lg_sockaddr_u {
    struct sockaddr sa;
    struct sockaddr_in in4;
    struct sockaddr_in6 in6;
} lg_sockaddr_t;
enum { LG_UPSTREAM_TCP = 0, LG_UPSTREAM_UDS = 1 };
enum { LG_SCHED_DRR = 0, LG_SCHED_FIFO = 1 };

typedef struct lg_upstream_s {
    int kind;                     /* LG_UPSTREAM_TCP / LG_UPSTREAM_UDS */
    struct sockaddr_storage addr; /* TCP: resolved address and port */
    socklen_t addrlen;
    char *host; /* TCP: as configured (for messages) */
    char *path; /* UDS: socket path */
    uint16_t port;
} lg_upstream_t;

typedef struct lg_route_s {
    char *sni; /* normalised pattern: "a.test", "*.b.test" or "" */
    lg_upstream_t *upstreams;
    size_t n_upstreams;
    bool terminate_tls;
    bool suspended;              /* hold connections until JS decides (lg_suspend) */
    uint32_t suspend_timeout_ms; /* close a held connection JS has not decided by then */
    SSL_CTX **ctx; /* terminate_tls: per listener, the context (one reference each); NULL
                      entries for connect listeners */
    size_t n_ctx;
    uint8_t *alpn; /* ALPN protocols the server selects from, wire format (RFC 7301 §3.1) */
    size_t alpn_len;
} lg_route_t;

typedef struct lg_protection_s {
    uint32_t tls_handshake_timeout_ms; /* ClientHello (and handshake) deadline from accept */
} lg_protection_t;

typedef struct lg_snapslot_s lg_snapslot_t;

/* Immutable, reference-counted route table and protection (see the file comment). */
typedef struct lg_snapshot_s {
    atomic_long refs;
    uint64_t generation;
    lg_snapslot_t *slot; /* published through; counts in slot->live. Not owned */
    lg_route_t *routes;
    size_t n_routes;
    lg_router_t router;
    lg_protection_t protection[LG_MAX_LISTENERS]; /* effective protection per listener */
} lg_snapshot_t;

typedef struct lg_listener_conf_s {
    int kind;                 /* LG_LISTENER_TLS / LG_LISTENER_CONNECT */
    char *host;               /* as configured ("0.0.0.0", "::1", "localhost") */
    uint16_t port;            /* as configured; 0 = any */
    uint32_t max_connections; /* 0 = unlimited */
    uint32_t idle_timeout_ms; /* 0 = no idle timeout */
    /* connect listeners */
    lg_policy_t policy;          /* destination policy */
    uint32_t connect_timeout_ms; /* resolve + dial deadline from the end of the head */
    uint32_t head_limit;         /* connections in their head at once (lg_connect_head_limit) */
} lg_listener_conf_t;

typedef struct lg_config_s {
    unsigned worker_threads;
    size_t read_buffer_size;
    int sched_kind;             /* LG_SCHED_DRR / LG_SCHED_FIFO */
    size_t sched_quantum;       /* bytes; 0 = auto */
    size_t max_queued_per_flow; /* bytes: high watermark; reads resume below half */
    lg_listener_conf_t listeners[LG_MAX_LISTENERS];
    size_t n_listeners;
} lg_config_t;

/*
 * Where the current snapshot is published (owner: the engine). The JS thread swaps it; a worker
 * refreshes its own reference only when the generation moved (lg_snapslot_get), taking the lock
 * then and never per connection.
 */
struct lg_snapslot_s {
    pthread_mutex_t lock;     /* guards snap */
    lg_snapshot_t *snap;      /* current snapshot; the slot holds one reference */
    atomic_uint_fast64_t gen; /* generation of snap, readable without the lock */
    uint64_t next_gen;        /* JS thread only */
    atomic_long live;         /* snapshots published through this slot and not yet freed */
};

/* Initialise a slot with its first snapshot (the slot takes the caller's reference). */
void lg_snapslot_init(lg_snapslot_t *slot, lg_snapshot_t *snap);

/* Publish a new snapshot (the slot takes the caller's reference; the old one is dropped). */
void lg_snapslot_swap(lg_snapslot_t *slot, lg_snapshot_t *snap);

/* Drop the slot's reference (engine teardown). */
void lg_snapslot_destroy(lg_snapslot_t *slot);

/*
 * Return the current snapshot, refreshing *held (the caller's own reference, may be NULL) when a
 * newer one was published. Takes the lock only then.
 */
lg_snapshot_t *lg_snapslot_get(lg_snapslot_t *slot, lg_snapshot_t **held, uint64_t *held_gen);

/* Free what a route owns (not the struct itself). */
void lg_route_free(lg_route_t *r);

/* Free a route allocated on its own (a suspended connection's decision) and what it owns. */
void lg_route_destroy(lg_route_t *r);

/* Free a config's strings (not the struct itself). */
void lg_config_free(lg_config_t *c);

/* Take / drop a reference. lg_snapshot_unref frees the snapshot at zero. NULL is ignored. */
lg_snapshot_t *lg_snapshot_ref(lg_snapshot_t *s);
void lg_snapshot_unref(lg_snapshot_t *s);

/* Free a snapshot that was never published (refs unused). */
void lg_snapshot_destroy(lg_snapshot_t *s);

#endif /* LG_CONFIG_H */
