/*
 * lg_limits.h — the hard bounds of every option, in one list: C owns them, the binding exports
 * them to JavaScript (`limits`), lib/config.js validates against them and words the messages,
 * and a test holds the README and index.d.ts to them. A bound is a macro defined next to the
 * code that depends on it (a buffer size, an array bound); this list only names it for JS.
 *
 * X(js_name, value, unit): js_name is the key in lib/config.js's LIMITS.
 */
#ifndef LG_LIMITS_H
#define LG_LIMITS_H

#include "lg_auth.h"
#include "lg_balancer.h"
#include "lg_buf.h"
#include "lg_cidr.h"
#include "lg_drr.h"
#include "lg_limit.h"
#include "lg_name.h"
#include "lg_router.h"

#define LG_MAX_LISTENERS         64           /* listeners per engine */
#define LG_MAX_WORKERS           256          /* worker threads per engine */
#define LG_MAX_UPSTREAMS         1024         /* upstreams per route or decision */
#define LG_FLOW_QUEUE_MIN        16384        /* bytes: smallest maxQueuedBytesPerFlow */
#define LG_FLOW_QUEUE_MAX        (1ull << 30) /* bytes: largest maxQueuedBytesPerFlow (1 GiB) */
#define LG_TIMEOUT_MAX_MS        2147483647   /* ms: largest timer libuv and Node take (2^31 - 1) */
#define LG_CONNECT_TIMEOUT_MAX   600000       /* ms: CONNECT dial deadline */
#define LG_HANDSHAKE_TIMEOUT_MAX 600000       /* ms: ClientHello / handshake deadline */
#define LG_CONNECTIONS_MAX       4294967295u  /* connections per listener (uint32); 0 = unlimited */
#define LG_RATE_MAX              1000000000   /* connections per second in a token bucket */
#define LG_LIST_MAX              65536        /* entries in one port / domain / fingerprint list */
#define LG_ALPN_MAX_PROTOCOLS    64           /* protocols in one ALPN list */
#define LG_ALPN_MAX_LEN          255          /* bytes in one ALPN protocol id (RFC 7301 §3.1) */
#define LG_UDS_PATH_MAX          107          /* bytes: sun_path holds 108 with the NUL */
#define LG_PID_MAX               2147483647   /* pid / tid (pid_t) */
#define LG_HOST_MAX              255          /* bytes of a listener or upstream host text */
#define LG_RETRIES_MAX           16           /* dial attempts after the first, per connection */
#define LG_KEEPALIVE_MAX_S       32767        /* s: TCP_KEEPIDLE / TCP_KEEPINTVL (Linux's bound) */
#define LG_KEEPALIVE_MAX_COUNT   127          /* TCP_KEEPCNT (Linux's bound) */
#define LG_METRICS_GROUP_MAX     64           /* bytes of a route's metricsGroup */

#define LG_LIMITS(X)                                                                               \
    X(maxListeners, LG_MAX_LISTENERS, "listeners per proxy")                                       \
    X(maxRoutes, LG_ROUTER_MAX_ROUTES, "routes per proxy")                                         \
    X(maxUpstreams, LG_MAX_UPSTREAMS, "upstreams per route or decision")                           \
    X(maxWorkerThreads, LG_MAX_WORKERS, "worker threads")                                          \
    X(minReadBufferSize, LG_BUF_SIZE_MIN, "bytes")                                                 \
    X(maxReadBufferSize, LG_BUF_SIZE_MAX, "bytes")                                                 \
    X(maxQuantum, LG_DRR_QUANTUM_FIXED_MAX, "bytes per DRR round")                                 \
    X(minQueuedBytesPerFlow, LG_FLOW_QUEUE_MIN, "bytes")                                           \
    X(maxQueuedBytesPerFlow, LG_FLOW_QUEUE_MAX, "bytes")                                           \
    X(maxTimeoutMs, LG_TIMEOUT_MAX_MS, "ms")                                                       \
    X(maxConnectTimeoutMs, LG_CONNECT_TIMEOUT_MAX, "ms")                                           \
    X(maxHandshakeTimeoutMs, LG_HANDSHAKE_TIMEOUT_MAX, "ms")                                       \
    X(maxConnections, LG_CONNECTIONS_MAX, "connections per listener")                              \
    X(maxConcurrentPerIp, LG_CONNECTIONS_MAX, "connections per source IP")                         \
    X(maxRatePerSecond, LG_RATE_MAX, "connections per second")                                     \
    X(maxListEntries, LG_LIST_MAX, "entries in one list")                                          \
    X(maxCidrListEntries, LG_CIDR_SET_MAX, "entries in an allowlist or blocklist")                 \
    X(maxTrackedIps, LG_LIMIT_MAX_TRACKED, "source IPs tracked by protection")                     \
    X(maxAlpnProtocols, LG_ALPN_MAX_PROTOCOLS, "protocols")                                        \
    X(maxAlpnLength, LG_ALPN_MAX_LEN, "bytes")                                                     \
    X(maxUdsPathBytes, LG_UDS_PATH_MAX, "bytes")                                                   \
    X(maxPid, LG_PID_MAX, "pid or tid")                                                            \
    X(maxWeight, LG_BALANCER_WEIGHT_MAX, "upstream weight")                                        \
    X(maxSchedulerWeight, LG_DRR_WEIGHT_MAX, "scheduler.weight of a route or listener")            \
    X(maxRetries, LG_RETRIES_MAX, "dial attempts after the first")                                 \
    X(maxKeepaliveMs, LG_KEEPALIVE_MAX_S * 1000, "ms")                                             \
    X(maxKeepaliveCount, LG_KEEPALIVE_MAX_COUNT, "probes")                                         \
    X(maxMetricsGroupLength, LG_METRICS_GROUP_MAX, "bytes")                                        \
    X(maxFails, LG_HEALTH_MAX_FAILS_MAX, "consecutive failed dials")                               \
    X(maxFailTimeoutMs, LG_HEALTH_FAIL_TIMEOUT_MAX_MS, "ms")                                       \
    X(maxHostnameLength, LG_NAME_MAX, "bytes")                                                     \
    X(maxLabelLength, LG_NAME_LABEL_MAX, "bytes")                                                  \
    X(maxAuthUsers, LG_AUTH_MAX_USERS, "users per connect listener")                               \
    X(maxAuthNameLength, LG_AUTH_NAME_MAX, "bytes of a user name")                                 \
    X(maxAuthRealmLength, LG_AUTH_REALM_MAX, "bytes of a realm")                                   \
    X(maxAuthFailuresPerMinute, LG_AUTH_FAIL_PER_MINUTE_MAX, "failed logins a minute per source")  \
    X(maxAuthFailureBurst, LG_AUTH_FAIL_BURST_MAX, "failed logins at once per source")

#endif /* LG_LIMITS_H */
