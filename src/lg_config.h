/*
 * lg_config.h — the engine's configuration in C form, and compiling it.
 *
 * Three shapes:
 *  - lg_src_t: the configuration as given (lib/config.js's normalised object, converted field by
 *    field by lg_jsconf without judging it): plain strings, numbers and PEM bytes, owned copies.
 *  - lg_config_t: fixed for the life of an engine (listeners, worker count, buffer sizes,
 *    scheduler, CONNECT policies). Compiled once; owned by the engine.
 *  - lg_snapshot_t: the hot-swappable part (routes, their upstreams and TLS contexts, the router,
 *    per-listener protection). Immutable once published. Reference-counted: the engine's slot
 *    holds one reference to the current snapshot, each worker one to the snapshot it last saw,
 *    each connection one to the snapshot it was accepted under. Whoever drops the last reference
 *    frees it (any thread).
 *
 * Compiling (lg_config_build, lg_snapshot_build, lg_decision_build) checks every value against
 * the bounds of lg_limits.h (lib/config.js checked them first: this is defence in depth) and
 * builds what the engine runs on: CIDR sets and policies, the route table, SSL_CTXs (through the
 * context cache), ALPN lists in wire format, upstream addresses. A refusal fills an lg_cfgerr_t
 * whose message starts with the option path ("routes[3].cert: private key does not match
 * certificate"). Host names of upstreams are not resolved here: a connection resolves them on
 * its worker's loop when it dials (lg_resolve), so nothing blocks the JS thread.
 */
#ifndef LG_CONFIG_H
#define LG_CONFIG_H

#include "lg_affinity.h"
#include "lg_auth.h"
#include "lg_balancer.h"
#include "lg_common.h"
#include "lg_ja.h"
#include "lg_limit.h"
#include "lg_limits.h"
#include "lg_policy.h"
#include "lg_proxyproto.h"
#include "lg_router.h"
#include "lg_tls_ctx.h"

#include <netinet/in.h>
#include <openssl/ssl.h>
#include <pthread.h>
#include <stdatomic.h>
#include <sys/socket.h>

#define LG_LISTEN_BACKLOG     1024 /* pending connections per listen socket */
#define LG_CFGERR_MAX         512  /* bytes of a config error message */
#define LG_UPSTREAM_ADDRS_MAX 16   /* addresses of an upstream host name kept between lookups */
#define LG_UPSTREAM_SESSIONS  8    /* TLS sessions (tickets) kept per TLS upstream */
#define LG_UPSTREAM_TLS_TAG   32   /* bytes: SHA-256, and SSL_MAX_SID_CTX_LENGTH */

enum { LG_LISTENER_TLS = 0, LG_LISTENER_CONNECT = 1 };
enum { LG_UPSTREAM_TCP = 0, LG_UPSTREAM_UDS = 1 };
enum { LG_SCHED_DRR = 0, LG_SCHED_FIFO = 1 };
/* workerPriority: the OS scheduling of the worker threads (lg_worker_prioritize). */
enum { LG_PRIORITY_NORMAL = 0, LG_PRIORITY_REALTIME = 1 };

/* A socket address small enough to keep dozens of (IPv4 or IPv6). */
typedef union lg_sockaddr_u {
    struct sockaddr sa;
    struct sockaddr_in in4;
    struct sockaddr_in6 in6;
} lg_sockaddr_t;

/* ---- the configuration as given ------------------------------------------------------------ */

typedef struct lg_src_buf_s {
    uint8_t *p; /* owned copy; NULL: absent */
    size_t len;
} lg_src_buf_t;

typedef struct lg_src_cert_s {
    bool present;
    lg_src_buf_t chain, key;
} lg_src_cert_t;

typedef struct lg_src_mtls_s {
    bool present;
    lg_src_buf_t ca;
    bool require_client_cert;
} lg_src_mtls_t;

/* Upstream TLS (re-encryption toward a TCP upstream of a terminating route). */
typedef struct lg_src_uptls_s {
    bool present;
    char *servername;   /* SNI and the name verified; NULL: the upstream's host */
    lg_src_buf_t ca;    /* PEM trust anchors; empty: the default store */
    bool verify;        /* verify the chain and the name */
    lg_src_cert_t cert; /* client certificate (optional) */
} lg_src_uptls_t;

typedef struct lg_src_upstream_s {
    int kind;   /* LG_UPSTREAM_* */
    char *host; /* tcp */
    uint64_t port;
    char *path; /* uds */
    uint64_t weight;
    bool ip_affinity;
    uint64_t ip_affinity_ttl_ms, pid, tid;
    lg_src_uptls_t tls; /* tcp */
} lg_src_upstream_t;

typedef struct lg_src_strings_s {
    char **v;
    size_t n;
} lg_src_strings_t;

typedef struct lg_src_route_s {
    char *sni;                         /* NULL for a decision */
    double max_connections_per_second; /* 0 = unlimited */
    double burst;
    lg_src_upstream_t *upstreams;
    size_t n_upstreams;
    bool terminate_tls;
    lg_src_cert_t cert;
    lg_src_mtls_t mtls;
    lg_src_strings_t alpn;
    bool suspended;
    uint64_t suspend_timeout_ms;
    int balance; /* LG_BALANCE_* */
    uint64_t connect_timeout_ms, retries, max_fails, fail_timeout_ms;
    int proxy_protocol; /* 0 none, 1 v1, 2 v2 */
    bool forward_fingerprint;
    char *metrics_group; /* routes only; NULL: none */
    uint64_t weight;     /* routes only: scheduler.weight; 0 = the listener's */
    uint64_t flow_rate;  /* routes only: scheduler.flowRate (bytes/s per flow, 0 = no cap) */
    bool flow_rate_set;  /* ... given (else the listener's) */
} lg_src_route_t;

/* A token bucket as configured: `count` per period, `burst`; absent when !present. */
typedef struct lg_src_bucket_s {
    bool present;
    double count, burst;
} lg_src_bucket_t;

typedef struct lg_src_protection_s {
    uint64_t tls_handshake_timeout_ms;
    lg_src_bucket_t rate;      /* rateLimit: connectionsPerSecond, burst */
    lg_src_bucket_t sustained; /* sustained: connectionsPerMinute, burst */
    bool penalty_box;
    uint64_t penalty_box_ms;
    uint64_t max_concurrent_per_ip;
    uint64_t ipv6_prefix;
    lg_src_strings_t allowlist, blocklist, ja3_blocklist, ja4_blocklist;
    bool require_sni;
} lg_src_protection_t;

typedef struct lg_src_connect_s {
    uint64_t *allow_ports;
    size_t n_allow_ports;
    lg_src_strings_t deny_cidrs, allow_cidrs, allow_domains;
    uint64_t connect_timeout_ms;
    bool has_auth;                            /* connect.auth given */
    char *auth_realm;                         /* connect.auth.realm */
    lg_src_strings_t auth_names, auth_hashes; /* connect.auth.users[i].name / .hash */
    bool has_auth_fail_limit;                 /* connect.auth.failureLimit not null */
    uint32_t auth_fail_per_minute;            /* connect.auth.failureLimit.perMinute */
    uint32_t auth_fail_burst;                 /* connect.auth.failureLimit.burst */
    uint64_t head_timeout_ms;
} lg_src_connect_t;

typedef struct lg_src_listener_s {
    int kind; /* LG_LISTENER_* */
    char *host;
    uint64_t port, max_connections, idle_timeout_ms;
    lg_src_cert_t default_cert;
    lg_src_mtls_t mtls;
    lg_src_protection_t protection;
    lg_src_connect_t connect; /* connect listeners */
    int accept_proxy;         /* 0 = none, else LG_PP_ACCEPT_V1 / _V2 / _ANY */
    lg_src_strings_t trusted_proxies;
    uint64_t weight;    /* scheduler.weight of its connections (0 counts as 1) */
    uint64_t flow_rate; /* scheduler.flowRate of its connections (0 = no cap) */
    bool flow_rate_set; /* ... given (else the top level's) */
    int reuse_port;     /* 0 = 'exclusive', 1 = 'share' */
} lg_src_listener_t;

/* Owner: whoever converted it; freed with lg_src_free (every pointer owned, NULL allowed). */
typedef struct lg_src_s {
    uint64_t worker_threads, read_buffer_size;
    int worker_priority; /* LG_PRIORITY_* */
    int sched_kind;      /* LG_SCHED_* */
    uint64_t quantum;    /* 0 = auto */
    uint64_t max_queued_per_flow;
    uint64_t rate, burst;     /* scheduler pacing: bytes/s per worker (0 = off), bucket bytes */
    uint64_t flow_rate;       /* scheduler.flowRate: bytes/s per flow (0 = no cap) */
    uint64_t max_tracked_ips; /* protection.maxTrackedIps (top level): the per-IP table's bound */
    uint64_t resolve_interval_ms; /* how long an upstream host name's answer is used */
    bool keepalive;               /* tcpKeepalive given (null: off) */
    uint64_t keepalive_idle_ms, keepalive_interval_ms, keepalive_count;
    uint64_t half_close_ms; /* halfCloseTimeoutMs; 0 = unbounded */
    lg_src_listener_t *listeners;
    size_t n_listeners;
    lg_src_route_t *routes;
    size_t n_routes;
} lg_src_t;

void lg_src_free(lg_src_t *s);
void lg_src_route_free(lg_src_route_t *r);
void lg_src_listener_free(lg_src_listener_t *l);

/* A refusal: the message starts with the option path. */
typedef struct lg_cfgerr_s {
    bool type_error; /* TypeError (wrong shape) rather than RangeError (value not allowed) */
    char msg[LG_CFGERR_MAX];
} lg_cfgerr_t;

/* ---- compiled ---------------------------------------------------------------------------------
 */

/* An entry of the process-wide registry of shared, reference-counted state found again by
 * identity (lg_config.c: "the registry"), embedded in lg_upshared_t and lg_routestat_t. */
typedef struct lg_regent_s {
    atomic_long refs;
    struct lg_regent_s *next; /* chain of its bucket */
    uint64_t key;             /* FNV-1a of the identity */
    char *identity;
} lg_regent_t;

/*
 * The state of one upstream shared by every route, decision and snapshot that lists it (the same
 * identity: kind, host and port or path, pid and tid), in this process: active connections,
 * health and totals survive config swaps. Reference-counted; found again by identity in a
 * process-wide registry (a mutex taken only when configs are built and freed). `st` is first, so
 * an lg_upstate_t * from a route's st[] is its lg_upshared_t *.
 */
typedef struct lg_upshared_s {
    lg_upstate_t st;
    lg_regent_t reg;   /* key: also the hash policy's upstream key; identity: "tcp host:port" /
                          "uds path" (+ " pid/tid") */
    uint32_t pid, tid; /* uds: CPU sampled from /proc/<pid>/task/<tid>/stat (0: none) */
    /* Totals for metrics (relaxed atomics). */
    atomic_uint_fast64_t connected;  /* dials that connected */
    atomic_uint_fast64_t bytes_to;   /* bytes relayed to the upstream, counted at close */
    atomic_uint_fast64_t bytes_from; /* bytes relayed from the upstream, counted at close */
    atomic_uint_fast64_t cpu_unread; /* CPU samples that could not be read */
    /* CPU sampling state: touched only by the sampling thread. */
    uint64_t cpu_ticks, cpu_ms;
    /* TCP upstream by name: the last good answer (lg_upshared_addrs / _store). */
    pthread_mutex_t addr_lock;
    lg_sockaddr_t addrs[LG_UPSTREAM_ADDRS_MAX];
    uint8_t n_addrs;
    uint64_t resolved_ms; /* loop time of the answer; 0 = none, or marked stale */
    uint64_t refresh_ms;  /* loop time the background lookup was claimed; 0 = none running */
    uint64_t retry_ms;    /* after a failed refresh: no claim before this loop time */
    bool fallback;        /* the answer is a failed lookup's fallback: stale at once */
    uint32_t addr_gen;    /* moves when the answer is marked stale (a refresh claimed before
                             that is not stored) */
    SSL_SESSION *tls_sessions[LG_UPSTREAM_SESSIONS]; /* TLS upstream: to resume (addr_lock) */
    uint8_t n_sessions;
} lg_upshared_t;

typedef struct lg_upstream_s {
    int kind;           /* LG_UPSTREAM_TCP / LG_UPSTREAM_UDS */
    bool literal;       /* TCP: host is an IP literal and `addr` holds it */
    lg_sockaddr_t addr; /* TCP literal: address and port */
    char *host;         /* TCP: as configured (a name is resolved when dialled) */
    char *path;         /* UDS: socket path */
    uint16_t port;
    uint32_t weight;
    lg_upshared_t *shared; /* one reference */
    SSL_CTX *tls_ctx;      /* TLS upstream: the client context (one reference), else NULL */
    char *tls_name;        /* the name sent and verified (NULL: none) */
    bool tls_verify;
    /* TLS upstream: SHA-256 of everything that decides how a session was authenticated (name,
     * verify, CA, client certificate and key). Sessions are shared per host:port (shared), so
     * each carries this tag (its session id context) and is offered only to the same settings:
     * a session resumed skips the chain and name checks and carries the client certificate of
     * the handshake that made it. */
    uint8_t tls_tag[LG_UPSTREAM_TLS_TAG];
} lg_upstream_t;

/*
 * A route's figures, shared by every config generation (and every route) with the same
 * identity: its metricsGroup, or "sni <pattern>" without one. Reference-counted, in the same
 * process-wide registry as lg_upshared_t.
 */
typedef struct lg_routestat_s {
    lg_regent_t reg;
    atomic_uint_fast64_t connections; /* connections routed here */
    atomic_uint_fast64_t active;      /* of which open now */
    atomic_uint_fast64_t failures;    /* whose every upstream attempt failed */
    atomic_uint_fast64_t bytes_to;    /* relayed to upstreams, counted at close */
    atomic_uint_fast64_t bytes_from;  /* relayed from upstreams, counted at close */
} lg_routestat_t;

/* A worker's balancing cursor for a route, padded so workers do not share a cache line. */
typedef struct lg_cursor_s {
    lg_pick_t pick;
    uint8_t pad[64 - sizeof(lg_pick_t) % 64];
} lg_cursor_t;

typedef struct lg_route_s {
    char *sni; /* normalised pattern: "a.test", "*.b.test" or "" */
    lg_upstream_t *upstreams;
    size_t n_upstreams;
    bool terminate_tls;
    bool suspended;              /* hold connections until JS decides (lg_suspend) */
    uint32_t suspend_timeout_ms; /* close a held connection JS has not decided by then */
    SSL_CTX **ctx;               /* per listener, the context (one reference each); NULL entries for
                                    listeners without one */
    size_t n_ctx;
    uint8_t *alpn; /* ALPN protocols the server selects from, wire format (RFC 7301 §3.1) */
    size_t alpn_len;
    /* Balancing and failover (lg_balancer.h). */
    lg_upstate_t **st;      /* n_upstreams: each upstream's shared state, in list order */
    lg_balancer_t balancer; /* policy, weights, hash table */
    lg_cursor_t *cursors;   /* one per worker: only that worker touches it */
    size_t n_cursors;
    lg_health_rules_t health;    /* maxFails / failTimeoutMs */
    uint32_t connect_timeout_ms; /* the whole dial, every attempt included */
    uint32_t retries;            /* attempts after the first, each on another upstream */
    bool affinity;               /* ipAffinity: a client sticks to its upstream */
    uint32_t affinity_ttl_ms;
    uint64_t affinity_scope;   /* the affinity table's scope: a hash of the route's pattern */
    uint8_t proxy_protocol;    /* 0 none, 1 v1, 2 v2: header written to the upstream first */
    bool forward_fingerprint;  /* v2: JA3/JA4 TLVs 0xE0/0xE1 */
    bool tls_upstreams;        /* some upstream re-encrypts (tls_ctx): terminated routes only */
    lg_routestat_t *stat;      /* routes (not decisions): one reference */
    char *metrics_group;       /* as configured, or NULL */
    lg_limit_bucket_t rate;    /* maxConnectionsPerSecond / burst (off when interval_ns is 0) */
    _Atomic uint64_t rate_tat; /* the bucket's state: the one mutable field of a published route,
                                  shared by every worker (lg_limit_bucket_take_shared) */
    uint16_t weight;           /* scheduler.weight of its connections; 0 = the listener's */
    bool flow_rate_set;        /* scheduler.flowRate given: its connections' flows use flow_rate */
    uint64_t flow_rate;        /* bytes/s per flow (0 = no cap); else the listener's */
} lg_route_t;

/* A listener's effective protection in a snapshot (owned by the snapshot). */
typedef struct lg_protection_s {
    uint32_t tls_handshake_timeout_ms; /* ClientHello (and handshake) deadline from accept */
    lg_limit_rules_t rules;            /* per-IP buckets, box, concurrency */
    bool track;                        /* some per-IP rule is set: consult the per-IP table */
    uint8_t ipv6_prefix;               /* IPv6 sources are aggregated to this prefix */
    bool require_sni;
    lg_cidr_set_t allow, block;  /* allowlist (bypasses the rest), blocklist */
    lg_ja_set_t ja3, ja4;        /* fingerprint blocklists */
    lg_src_strings_t block_text; /* the blocklist as configured (blockedIps()) */
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
    size_t n_protection;                          /* entries owned (built) */
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
    uint32_t head_timeout_ms;    /* the whole head must arrive within this of accept (→ 408) */
    uint32_t head_limit;         /* connections in their head at once (lg_config_head_limit) */
    lg_auth_t *auth;             /* Basic proxy authentication (owned); NULL: none */
    uint32_t head_share;         /* of those, from one source (lg_config_head_share) */
    /* PROXY protocol input (both kinds) */
    int accept_proxy;      /* 0 = none, else LG_PP_ACCEPT_V1 / _V2 / _ANY */
    lg_cidr_set_t trusted; /* sources allowed to send a header (others are refused) */
    uint16_t weight;       /* scheduler.weight of its connections (1..LG_DRR_WEIGHT_MAX) */
    uint64_t flow_rate;    /* scheduler.flowRate of its connections: its own, else the top level's
                              (bytes/s per flow, 0 = no cap; a route's own wins) */
    bool reuse_share;      /* reusePort 'share': skip the exclusivity probe (lg_listener) */
} lg_listener_conf_t;

typedef struct lg_config_s {
    unsigned worker_threads;
    int worker_priority; /* LG_PRIORITY_NORMAL / LG_PRIORITY_REALTIME */
    size_t read_buffer_size;
    int sched_kind;               /* LG_SCHED_DRR / LG_SCHED_FIFO */
    size_t sched_quantum;         /* bytes; 0 = auto */
    size_t max_queued_per_flow;   /* bytes: high watermark; reads resume below half */
    uint64_t sched_rate;          /* bytes/s per worker; 0 = no pacing (drr only) */
    uint64_t sched_burst;         /* bytes: token bucket size when sched_rate > 0 */
    uint64_t sched_flow_rate;     /* bytes/s per flow; 0 = no per-flow cap (drr only) */
    size_t max_tracked_ips;       /* bound of the per-IP protection table */
    uint32_t resolve_interval_ms; /* how long an upstream host name's answer is used */
    unsigned keepalive_idle_s;    /* TCP keepalive of every socket; 0 = off */
    unsigned keepalive_interval_s, keepalive_count;
    uint32_t half_close_ms; /* inactivity allowed once only the client's half is open; 0 = none */
    lg_listener_conf_t listeners[LG_MAX_LISTENERS];
    size_t n_listeners;
} lg_config_t;

/* The head-phase limit of a connect listener: connections still sending their head may hold at
 * most a quarter of maxConnections (at least 16), or 4096 when maxConnections is unlimited, so
 * slow or silent clients cannot take every slot from working tunnels. */
uint32_t lg_config_head_limit(uint32_t max_connections);

/* A source's share of head_limit: a quarter (at least 1). It is enforced once three quarters of
 * the head slots are taken, so a burst of quick heads from one busy client is not refused while
 * the listener has room, and one source never holds more than three quarters of the slots. */
uint32_t lg_config_head_share(uint32_t head_limit);

/* Compile the fixed part. Returns 0, or -1 with *err filled (conf then owns nothing). */
int lg_config_build(const lg_src_t *src, lg_config_t *conf, lg_cfgerr_t *err);

/*
 * Compile a snapshot (refs = 1) for the listeners of `conf`. TLS contexts come from `cur` (the
 * running snapshot's cache; NULL at construction) when their material is unchanged, else are
 * built; every context the snapshot uses is recorded in `next` (which the caller makes the cache
 * once the snapshot is published, or frees). Returns 0, or -1 with *err filled.
 */
int lg_snapshot_build(const lg_src_t *src, const lg_config_t *conf, lg_tls_cache_t *cur,
                      lg_tls_cache_t *next, lg_snapshot_t **out, lg_cfgerr_t *err);

/*
 * Compile a suspended connection's decision (`d`: upstreams, terminateTls, cert, mtls, alpn) for
 * listener `listener` (`l` is that listener as given: its defaultCert and mtls). Contexts are
 * reused from `cache` when the material matches. A terminating decision with neither cert nor
 * mtls of its own, on a suspended route that has a context for the listener (`route_tls`), gets
 * none: the worker uses the route's. Returns 0, or -1 with *err filled.
 */
int lg_decision_build(const lg_src_route_t *d, const lg_src_listener_t *l, const lg_config_t *conf,
                      unsigned listener, bool route_tls, lg_tls_cache_t *cache, lg_route_t **out,
                      lg_cfgerr_t *err);

/* How usable a cached answer is (lg_upshared_addrs). */
typedef enum {
    LG_ADDRS_NONE,  /* no answer, or marked stale by a config swap: look the name up and wait */
    LG_ADDRS_STALE, /* older than resolveIntervalMs: dial it, and refresh it in the background */
    LG_ADDRS_FRESH, /* younger than resolveIntervalMs: dial it */
} lg_addrs_age_t;

/*
 * The cached addresses of a TCP upstream's host name: copies up to `max` into out and returns
 * how many, with *age at now_ms against max_age_ms. Whatever the age, the answer is returned: it
 * is the fallback when a new lookup fails.
 *
 * Stale-while-revalidate: a stale answer is dialled at once, and one lookup per upstream (in the
 * process) refreshes it, claimed with lg_upshared_claim_refresh and ended with
 * lg_upshared_refreshed. Connections never wait for a lookup once a name has an answer, so a
 * slow resolver cannot make an upstream look dead (each connection's lookup used to eat its
 * attempt's share of connectTimeoutMs, and the failed attempts ejected the upstream).
 */
size_t lg_upshared_addrs(lg_upshared_t *u, lg_sockaddr_t *out, size_t max, uint64_t now_ms,
                         uint32_t max_age_ms, lg_addrs_age_t *age);

/* Keep a successful lookup's answer (the first LG_UPSTREAM_ADDRS_MAX addresses). */
void lg_upshared_store(lg_upshared_t *u, const lg_sockaddr_t *addrs, size_t n, uint64_t now_ms);

/* A connection's own lookup (no answer to dial: the first use, or after a swap) failed and it
 * dials the last answer: that answer is kept as a stale one, so the next dials do not wait for
 * lookups of their own but start the background refresh, which waits
 * LG_UPSTREAM_REFRESH_RETRY_MS first. */
void lg_upshared_fallback(lg_upshared_t *u, uint64_t now_ms);

/* A claim older than this is taken over: its lookup is lost (a worker stopped; the pool stalls). */
#define LG_UPSTREAM_REFRESH_CLAIM_MS 30000
/* After a refresh whose lookup failed, the next one waits this long (the stale answer is dialled
 * meanwhile): a resolver that fails fast is asked once a second per name, not once per
 * connection. */
#define LG_UPSTREAM_REFRESH_RETRY_MS 1000

/* Claim the upstream's background lookup: true (and *gen set) when none runs and no failed one
 * asks to wait (LG_UPSTREAM_REFRESH_RETRY_MS); the claimant starts one and ends it with
 * lg_upshared_refreshed: an answer (n > 0), a failed lookup (n == 0, failed: the next claim
 * waits), or none (n == 0, !failed: abandoned, or never started; the next connection to see the
 * stale answer may claim at once). The stale answer stays unless one comes. An answer is stored
 * only if no config swap marked the cache stale since the claim (gen). */
bool lg_upshared_claim_refresh(lg_upshared_t *u, uint64_t now_ms, uint32_t *gen);
void lg_upshared_refreshed(lg_upshared_t *u, uint32_t gen, const lg_sockaddr_t *addrs, size_t n,
                           bool failed, uint64_t now_ms);

/* One more reference to an upstream's shared state (the caller holds one already), and drop one
 * (the last frees it). */
void lg_upshared_ref(lg_upshared_t *u);
void lg_upshared_unref(lg_upshared_t *u);

/* The newest kept session made with these TLS settings (tag: lg_upstream_t.tls_tag), or NULL;
 * a TLS 1.3 one is taken out (a ticket is used once), a TLS 1.2 one is shared (a reference).
 * And keep a new one (the reference is taken over; the oldest goes when LG_UPSTREAM_SESSIONS
 * are kept; NULL, or a session that cannot resume, is dropped). */
SSL_SESSION *lg_upshared_session(lg_upshared_t *u, const uint8_t tag[LG_UPSTREAM_TLS_TAG]);
void lg_upshared_keep_session(lg_upshared_t *u, SSL_SESSION *s);

/* Mark every cached answer stale (a config swap: the next dial looks the name up again). */
void lg_upshared_stale_all(void);

/* The upstreams currently known to the process (one per identity), for CPU sampling: calls
 * fn(arg, u) for each under the registry's lock (fn must not build or free configs). */
void lg_upshared_each(void (*fn)(void *arg, lg_upshared_t *u), void *arg);

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

/* Free a route allocated on its own (a suspended connection's decision) and what it owns. NULL
 * is ignored. */
void lg_route_destroy(lg_route_t *r);

/* Free a config's strings and policies (not the struct itself). */
void lg_config_free(lg_config_t *c);

/* Take / drop a reference. lg_snapshot_unref frees the snapshot at zero. NULL is ignored. */
lg_snapshot_t *lg_snapshot_ref(lg_snapshot_t *s);
void lg_snapshot_unref(lg_snapshot_t *s);

/* Free a snapshot that was never published (refs unused). */
void lg_snapshot_destroy(lg_snapshot_t *s);

#endif /* LG_CONFIG_H */
