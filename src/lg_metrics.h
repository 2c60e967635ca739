/*
 * lg_metrics.h — per-worker counters, summed on read.
 *
 * Each worker owns one lg_counters_t per listener and is the only thread that writes it, so an
 * update is a relaxed load and store (no locked instruction on the data path). The JS thread
 * reads them with relaxed loads whenever metrics() is called and sums over workers; totals are
 * sums over listeners. 64-bit aligned atomics cannot tear.
 *
 * The counter list is an X-macro so the C struct and the JS names cannot drift apart:
 * X(field, "jsName").
 */
#ifndef LG_METRICS_H
#define LG_METRICS_H

#include <stdatomic.h>
#include <stdint.h>

#define LG_COUNTERS(X)                                                                             \
    X(total_connections, "totalConnections")                                                       \
    X(closed_connections, "closedConnections")                                                     \
    X(bytes_from_clients, "bytesFromClients")                                                      \
    X(bytes_to_clients, "bytesToClients")                                                          \
    X(upstream_connect_failures, "upstreamConnectFailures")                                        \
    X(upstream_retries, "upstreamRetries")                                                         \
    X(upstream_fail_opens, "upstreamFailOpens")                                                    \
    X(proxy_headers_sent, "proxyProtocolHeadersSent")                                              \
    X(upstream_lookups_failed, "upstreamLookupsFailed")                                            \
    X(half_close_timeouts, "halfCloseTimeouts")                                                    \
    X(upstream_tls_failures, "upstreamTlsFailures")                                                \
    X(upstream_tls_resumed, "upstreamTlsResumed")                                                  \
    X(no_route, "noRoute")                                                                         \
    X(refused_max_connections, "refusedMaxConnections")                                            \
    X(handshake_failures, "handshakeFailures")                                                     \
    X(hs_fail_timeout, "handshakeFailuresTimeout")                                                 \
    X(hs_fail_protocol, "handshakeFailuresProtocol")                                               \
    X(hs_fail_closed, "handshakeFailuresClosed")                                                   \
    X(not_tls, "nonTlsConnections")                                                                \
    X(idle_timeouts, "idleTimeouts")                                                               \
    X(out_of_memory, "outOfMemory")                                                                \
    X(accept_pauses, "acceptPauses")                                                               \
    X(tls_handshakes, "tlsHandshakes")                                                             \
    X(tls_resumed, "tlsSessionsResumed")                                                           \
    X(hs_fail_certificate, "handshakeFailuresCertificate")                                         \
    X(hs_fail_no_certificate, "handshakeFailuresNoCertificate")                                    \
    X(tls_truncations, "tlsTruncations")                                                           \
    X(tls_renegotiations, "tlsRenegotiationsRefused")                                              \
    X(tls_keyupdate_floods, "tlsKeyUpdateFloods")                                                  \
    X(tls_sni_mismatches, "tlsSniMismatches")                                                      \
    X(tls_errors, "tlsErrors")                                                                     \
    X(suspended_total, "suspendedTotal")                                                           \
    X(suspended_resolved, "suspendedResolved")                                                     \
    X(suspended_rejected, "suspendedRejected")                                                     \
    X(suspended_timed_out, "suspendedTimedOut")                                                    \
    X(suspended_dropped, "suspendedDropped")                                                       \
    X(suspended_gone, "suspendedClientGone")                                                       \
    X(status_200, "status200")                                                                     \
    X(status_400, "status400")                                                                     \
    X(status_403, "status403")                                                                     \
    X(status_405, "status405")                                                                     \
    X(status_408, "status408")                                                                     \
    X(status_414, "status414")                                                                     \
    X(status_431, "status431")                                                                     \
    X(status_502, "status502")                                                                     \
    X(status_503, "status503")                                                                     \
    X(status_504, "status504")                                                                     \
    X(status_505, "status505")                                                                     \
    X(refused_port, "refusedPort")                                                                 \
    X(refused_domain, "refusedDomain")                                                             \
    X(refused_address, "refusedAddress")                                                           \
    X(refused_lookups_busy, "refusedLookupsBusy")                                                  \
    X(internal_errors, "internalErrors")                                                           \
    X(proxy_headers, "proxyProtocolHeaders")                                                       \
    X(status_429, "status429")                                                                     \
    X(status_407, "status407")                                                                     \
    X(auth_failures, "authFailures")                                                               \
    X(auth_verifications, "authVerifications")                                                     \
    X(auth_cache_hits, "authCacheHits")                                                            \
    X(refused_auth_busy, "refusedAuthBusy")                                                        \
    X(auth_throttled, "authThrottled")

/*
 * Why admission refused a connection ('blocked' events, blockedByReason): X(NAME, "reason").
 * blockedConnections is their sum.
 */
#define LG_BLOCK_REASONS(X)                                                                        \
    X(MAX_CONNECTIONS, "max_connections")           /* listener at maxConnections */               \
    X(CIDR_BLOCKED, "cidr_blocked")                 /* source in the blocklist */                  \
    X(PENALTY_BOXED, "penalty_boxed")               /* source in the penalty box */                \
    X(RATE_LIMITED, "rate_limited")                 /* a per-IP token bucket was empty */          \
    X(TOO_MANY_CONNECTIONS, "too_many_connections") /* maxConcurrentPerIp reached */               \
    X(NO_SNI, "no_sni")                             /* requireSni and no SNI */                    \
    X(JA3_BLOCKED, "ja3_blocked")                   /* JA3 in ja3Blocklist */                      \
    X(JA4_BLOCKED, "ja4_blocked")                   /* JA4 in ja4Blocklist */                      \
    X(INCOMPLETE_HANDSHAKE, "incomplete_handshake") /* a JA list is set and no fingerprint */      \
    X(ROUTE_RATE_LIMITED, "route_rate_limited")     /* route maxConnectionsPerSecond */            \
    X(PROXY_UNTRUSTED, "proxy_untrusted")           /* PROXY input from outside trustedProxies */  \
    X(PROXY_HEADER, "proxy_header")                 /* missing, malformed or late PROXY header */

enum {
    LG_BLOCK_NONE = 0,
#define LG_BLOCK_ENUM(name, js) LG_BLOCK_##name,
    LG_BLOCK_REASONS(LG_BLOCK_ENUM)
#undef LG_BLOCK_ENUM
        LG_BLOCK_N
};

typedef struct lg_counters_s {
#define LG_COUNTER_FIELD(f, js) atomic_uint_fast64_t f;
    LG_COUNTERS(LG_COUNTER_FIELD)
#undef LG_COUNTER_FIELD
    atomic_uint_fast64_t blocked[LG_BLOCK_N]; /* by LG_BLOCK_* reason; [0] unused */
} lg_counters_t;

/* A plain copy of counters (sums over workers, read on the JS thread). */
typedef struct lg_counts_s {
#define LG_COUNTS_FIELD(f, js) uint64_t f;
    LG_COUNTERS(LG_COUNTS_FIELD)
#undef LG_COUNTS_FIELD
    uint64_t blocked[LG_BLOCK_N];
} lg_counts_t;

/* Add n to a counter owned by the calling thread (single writer: no read-modify-write lock). */
#define LG_COUNT(c, field, n)                                                                      \
    atomic_store_explicit(&(c)->field,                                                             \
                          atomic_load_explicit(&(c)->field, memory_order_relaxed) + (n),           \
                          memory_order_relaxed)

#define LG_COUNTER_READ(c, field) atomic_load_explicit(&(c)->field, memory_order_relaxed)

/* Add a worker's counters to a sum (relaxed loads: each value is a consistent 64-bit read). */
static inline void lg_counts_add(lg_counts_t *sum, const lg_counters_t *c)
{
#define LG_COUNTS_ADD(f, js) sum->f += LG_COUNTER_READ(c, f);
    LG_COUNTERS(LG_COUNTS_ADD)
#undef LG_COUNTS_ADD
    for (int i = 1; i < LG_BLOCK_N; i++)
        sum->blocked[i] += atomic_load_explicit(&c->blocked[i], memory_order_relaxed);
}

/* Add one sum to another. */
static inline void lg_counts_merge(lg_counts_t *sum, const lg_counts_t *c)
{
#define LG_COUNTS_MERGE(f, js) sum->f += c->f;
    LG_COUNTERS(LG_COUNTS_MERGE)
#undef LG_COUNTS_MERGE
    for (int i = 1; i < LG_BLOCK_N; i++)
        sum->blocked[i] += c->blocked[i];
}

#endif /* LG_METRICS_H */
