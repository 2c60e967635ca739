/*
 * lg_jsconf.c — normalised JS config → lg_src_t (see lg_jsconf.h).
 *
 * The shape read here is lib/config.js's NormalizedConfig typedef: every key is present.
 */
#include "lg_jsconf.h"

#include <stdarg.h>
#include <stdio.h>
#include <string.h>

#define PATH_MAX_LEN  160         /* bytes of an option path in a message */
#define STRING_MAX    (64u << 20) /* bytes: no option string comes near (PEM lives in Buffers) */
#define NUMBER_MAX    9007199254740991.0 /* 2^53 - 1: the largest integer a double holds */
#define INTERNAL_CODE "ERR_LEGATO_INTERNAL"
#define CONFIG_CODE   "ERR_LEGATO_CONFIG"

static int bug(napi_env env, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

/* A value of the wrong type or shape: lib/config.js should have made that impossible. */
static int bug(napi_env env, const char *fmt, ...)
{
    bool pending = false;
    napi_is_exception_pending(env, &pending);
    if (pending) return -1;
    char msg[512];
    int n = snprintf(msg, sizeof(msg), "legato: internal error converting the config: ");
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(msg + n, sizeof(msg) - (size_t)n, fmt, ap);
    va_end(ap);
    napi_throw_type_error(env, INTERNAL_CODE, msg);
    return -1;
}

void lg_jsconf_throw(napi_env env, const lg_cfgerr_t *err)
{
    if (err->type_error) {
        napi_throw_type_error(env, CONFIG_CODE, err->msg);
    } else {
        napi_throw_range_error(env, CONFIG_CODE, err->msg);
    }
}

/* ---- primitives ------------------------------------------------------------------------------ */

static int get(napi_env env, napi_value obj, const char *key, napi_value *out, const char *path)
{
    bool has = false;
    if (napi_has_named_property(env, obj, key, &has) != napi_ok || !has ||
        napi_get_named_property(env, obj, key, out) != napi_ok) {
        return bug(env, "%s.%s is missing", path, key);
    }
    return 0;
}

static bool is_type(napi_env env, napi_value v, napi_valuetype want)
{
    napi_valuetype t;
    return napi_typeof(env, v, &t) == napi_ok && t == want;
}

static int get_u64(napi_env env, napi_value obj, const char *key, uint64_t *out, const char *path)
{
    napi_value v;
    double d = 0;
    if (get(env, obj, key, &v, path) != 0) return -1;
    if (napi_get_value_double(env, v, &d) != napi_ok || !(d >= 0 && d <= NUMBER_MAX) ||
        d != (double)(uint64_t)d) {
        return bug(env, "%s.%s must be a non-negative integer", path, key);
    }
    *out = (uint64_t)d;
    return 0;
}

static int get_bool(napi_env env, napi_value obj, const char *key, bool *out, const char *path)
{
    napi_value v;
    if (get(env, obj, key, &v, path) != 0) return -1;
    if (napi_get_value_bool(env, v, out) != napi_ok)
        return bug(env, "%s.%s must be a boolean", path, key);
    return 0;
}

/* A string value as a NUL-free lg_malloc copy. */
static int value_string(napi_env env, napi_value v, char **out, const char *what)
{
    size_t len = 0;
    if (napi_get_value_string_utf8(env, v, NULL, 0, &len) != napi_ok || len > STRING_MAX) {
        return bug(env, "%s must be a string", what);
    }
    char *s = lg_malloc(len + 1);
    if (s == NULL) return bug(env, "%s: out of memory", what);
    napi_get_value_string_utf8(env, v, s, len + 1, &len);
    if (strlen(s) != len) {
        lg_free(s);
        return bug(env, "%s must not contain NUL", what);
    }
    *out = s;
    return 0;
}

static int get_string(napi_env env, napi_value obj, const char *key, char **out, const char *path)
{
    napi_value v;
    char what[PATH_MAX_LEN + 32];
    snprintf(what, sizeof(what), "%s.%s", path, key);
    if (get(env, obj, key, &v, path) != 0) return -1;
    return value_string(env, v, out, what);
}

/* One of a few strings → its index. */
static int get_enum(napi_env env, napi_value obj, const char *key, const char *const *names, int n,
                    int *out, const char *path)
{
    char *s = NULL;
    if (get_string(env, obj, key, &s, path) != 0) return -1;
    for (int i = 0; i < n; i++) {
        if (strcmp(s, names[i]) == 0) {
            lg_free(s);
            *out = i;
            return 0;
        }
    }
    lg_free(s);
    return bug(env, "%s.%s has an unknown value", path, key);
}

static int get_array(napi_env env, napi_value obj, const char *key, napi_value *arr, uint32_t *len,
                     const char *path)
{
    bool is = false;
    if (get(env, obj, key, arr, path) != 0) return -1;
    if (napi_is_array(env, *arr, &is) != napi_ok || !is ||
        napi_get_array_length(env, *arr, len) != napi_ok) {
        return bug(env, "%s.%s must be an array", path, key);
    }
    return 0;
}

static int element(napi_env env, napi_value arr, uint32_t i, napi_value *out, const char *path,
                   const char *key)
{
    if (napi_get_element(env, arr, i, out) != napi_ok) {
        return bug(env, "%s.%s[%u] could not be read", path, key, i);
    }
    return 0;
}

/* An object (present) or null (absent). */
static int get_optional_object(napi_env env, napi_value obj, const char *key, napi_value *out,
                               bool *present, const char *path)
{
    if (get(env, obj, key, out, path) != 0) return -1;
    *present = is_type(env, *out, napi_object);
    if (!*present && !is_type(env, *out, napi_null)) {
        return bug(env, "%s.%s must be an object or null", path, key);
    }
    return 0;
}

static int get_object(napi_env env, napi_value obj, const char *key, napi_value *out,
                      const char *path)
{
    if (get(env, obj, key, out, path) != 0) return -1;
    if (!is_type(env, *out, napi_object)) return bug(env, "%s.%s must be an object", path, key);
    return 0;
}

static int get_strings(napi_env env, napi_value obj, const char *key, lg_src_strings_t *out,
                       const char *path)
{
    napi_value arr;
    uint32_t n;
    if (get_array(env, obj, key, &arr, &n, path) != 0) return -1;
    if (n == 0) return 0;
    out->v = lg_calloc(n, sizeof(char *));
    if (out->v == NULL) return bug(env, "%s.%s: out of memory", path, key);
    for (uint32_t i = 0; i < n; i++) {
        napi_value e;
        char what[PATH_MAX_LEN + 48];
        snprintf(what, sizeof(what), "%s.%s[%u]", path, key, i);
        if (element(env, arr, i, &e, path, key) != 0 ||
            value_string(env, e, &out->v[i], what) != 0) {
            return -1;
        }
        out->n = i + 1;
    }
    return 0;
}

/* A Buffer property, copied as it is read. */
static int get_buffer(napi_env env, napi_value obj, const char *key, lg_src_buf_t *out,
                      const char *path)
{
    napi_value v;
    bool is = false;
    void *p = NULL;
    size_t n = 0;
    if (get(env, obj, key, &v, path) != 0) return -1;
    if (napi_is_buffer(env, v, &is) != napi_ok || !is ||
        napi_get_buffer_info(env, v, &p, &n) != napi_ok) {
        return bug(env, "%s.%s must be a Buffer", path, key);
    }
    out->p = lg_malloc(n > 0 ? n : 1);
    if (out->p == NULL) return bug(env, "%s.%s: out of memory", path, key);
    if (n > 0) memcpy(out->p, p, n);
    out->len = n;
    return 0;
}

/* ---- sections -------------------------------------------------------------------------------- */

static int read_cert(napi_env env, napi_value obj, const char *key, lg_src_cert_t *out,
                     const char *path)
{
    napi_value c;
    char cpath[PATH_MAX_LEN];
    snprintf(cpath, sizeof(cpath), "%s.%s", path, key);
    if (get_optional_object(env, obj, key, &c, &out->present, path) != 0) return -1;
    if (!out->present) return 0;
    return get_buffer(env, c, "certChain", &out->chain, cpath) != 0 ||
                   get_buffer(env, c, "privateKey", &out->key, cpath) != 0
               ? -1
               : 0;
}

static int read_mtls(napi_env env, napi_value obj, lg_src_mtls_t *out, const char *path)
{
    napi_value m;
    char mpath[PATH_MAX_LEN];
    snprintf(mpath, sizeof(mpath), "%s.mtls", path);
    if (get_optional_object(env, obj, "mtls", &m, &out->present, path) != 0) return -1;
    if (!out->present) return 0;
    return get_buffer(env, m, "clientCaCert", &out->ca, mpath) != 0 ||
                   get_bool(env, m, "requireClientCert", &out->require_client_cert, mpath) != 0
               ? -1
               : 0;
}

/* A TCP upstream's tls: null, or { servername: string | null, ca: Buffer | null, verify, cert }. */
static int read_uptls(napi_env env, napi_value u, lg_src_uptls_t *out, const char *path)
{
    napi_value t, v;
    char tpath[PATH_MAX_LEN + 40];
    snprintf(tpath, sizeof(tpath), "%s.tls", path);
    if (get_optional_object(env, u, "tls", &t, &out->present, path) != 0) return -1;
    if (!out->present) return 0;
    if (get(env, t, "servername", &v, tpath) != 0) return -1;
    if (!is_type(env, v, napi_null) &&
        get_string(env, t, "servername", &out->servername, tpath) != 0) {
        return -1;
    }
    if (get(env, t, "ca", &v, tpath) != 0) return -1;
    if (!is_type(env, v, napi_null) && get_buffer(env, t, "ca", &out->ca, tpath) != 0) return -1;
    return get_bool(env, t, "verify", &out->verify, tpath) != 0 ||
                   read_cert(env, t, "cert", &out->cert, tpath) != 0
               ? -1
               : 0;
}

static int read_upstream(napi_env env, napi_value u, lg_src_upstream_t *up, const char *path)
{
    static const char *const kinds[] = {"tcp", "uds"};
    if (get_enum(env, u, "kind", kinds, 2, &up->kind, path) != 0 ||
        get_u64(env, u, "weight", &up->weight, path) != 0) {
        return -1;
    }
    if (up->kind == LG_UPSTREAM_TCP) {
        return get_string(env, u, "host", &up->host, path) != 0 ||
                       get_u64(env, u, "port", &up->port, path) != 0 ||
                       read_uptls(env, u, &up->tls, path) != 0
                   ? -1
                   : 0;
    }
    return get_string(env, u, "path", &up->path, path) != 0 ||
                   get_bool(env, u, "ipAffinity", &up->ip_affinity, path) != 0 ||
                   get_u64(env, u, "ipAffinityTtlMs", &up->ip_affinity_ttl_ms, path) != 0 ||
                   get_u64(env, u, "pid", &up->pid, path) != 0 ||
                   get_u64(env, u, "tid", &up->tid, path) != 0
               ? -1
               : 0;
}

/* The fields a route shares with a decision. */
static int read_route_body(napi_env env, napi_value r, lg_src_route_t *out, const char *path)
{
    static const char *const policies[] = {"leastConn", "roundRobin", "random2", "hash"};
    static const char *const pp[] = {"none", "v1", "v2"};
    napi_value ups;
    uint32_t n;
    if (get_enum(env, r, "balance", policies, 4, &out->balance, path) != 0 ||
        get_u64(env, r, "connectTimeoutMs", &out->connect_timeout_ms, path) != 0 ||
        get_u64(env, r, "retries", &out->retries, path) != 0 ||
        get_u64(env, r, "maxFails", &out->max_fails, path) != 0 ||
        get_u64(env, r, "failTimeoutMs", &out->fail_timeout_ms, path) != 0 ||
        get_enum(env, r, "proxyProtocol", pp, 3, &out->proxy_protocol, path) != 0 ||
        get_bool(env, r, "forwardFingerprint", &out->forward_fingerprint, path) != 0 ||
        get_bool(env, r, "terminateTls", &out->terminate_tls, path) != 0 ||
        read_cert(env, r, "cert", &out->cert, path) != 0 ||
        read_mtls(env, r, &out->mtls, path) != 0 ||
        get_strings(env, r, "alpn", &out->alpn, path) != 0 ||
        get_array(env, r, "upstreams", &ups, &n, path) != 0) {
        return -1;
    }
    if (n == 0) return 0;
    out->upstreams = lg_calloc(n, sizeof(lg_src_upstream_t));
    if (out->upstreams == NULL) return bug(env, "%s.upstreams: out of memory", path);
    for (uint32_t j = 0; j < n; j++) {
        char upath[PATH_MAX_LEN + 32];
        snprintf(upath, sizeof(upath), "%s.upstreams[%u]", path, j);
        napi_value u;
        out->n_upstreams = j + 1;
        if (element(env, ups, j, &u, path, "upstreams") != 0 ||
            read_upstream(env, u, &out->upstreams[j], upath) != 0) {
            return -1;
        }
    }
    return 0;
}

static int get_number(napi_env env, napi_value obj, const char *key, double *out, const char *path)
{
    napi_value v;
    if (get(env, obj, key, &v, path) != 0) return -1;
    if (napi_get_value_double(env, v, out) != napi_ok)
        return bug(env, "%s.%s must be a number", path, key);
    return 0;
}

/* A route's or listener's `scheduler: { weight, flowRate }` (normalised: always an object;
 * flowRate null when not given). */
static int read_flow_sched(napi_env env, napi_value obj, uint64_t *weight, uint64_t *flow_rate,
                           bool *flow_rate_set, const char *path)
{
    napi_value sc, fr;
    char spath[PATH_MAX_LEN + 16];
    snprintf(spath, sizeof(spath), "%s.scheduler", path);
    if (get_object(env, obj, "scheduler", &sc, path) != 0 ||
        get_u64(env, sc, "weight", weight, spath) != 0 ||
        get(env, sc, "flowRate", &fr, spath) != 0) {
        return -1;
    }
    *flow_rate_set = !is_type(env, fr, napi_null);
    *flow_rate = 0;
    return *flow_rate_set ? get_u64(env, sc, "flowRate", flow_rate, spath) : 0;
}

static int read_route(napi_env env, napi_value r, lg_src_route_t *out, const char *path)
{
    napi_value g;
    if (get(env, r, "metricsGroup", &g, path) != 0) return -1;
    if (read_flow_sched(env, r, &out->weight, &out->flow_rate, &out->flow_rate_set, path) != 0) {
        return -1;
    }
    if (!is_type(env, g, napi_null) &&
        get_string(env, r, "metricsGroup", &out->metrics_group, path) != 0) {
        return -1;
    }
    return get_string(env, r, "sni", &out->sni, path) != 0 ||
                   get_number(env, r, "maxConnectionsPerSecond", &out->max_connections_per_second,
                              path) != 0 ||
                   get_number(env, r, "burst", &out->burst, path) != 0 ||
                   get_bool(env, r, "suspended", &out->suspended, path) != 0 ||
                   get_u64(env, r, "suspendTimeoutMs", &out->suspend_timeout_ms, path) != 0 ||
                   read_route_body(env, r, out, path) != 0
               ? -1
               : 0;
}

static int read_keepalive(napi_env env, napi_value cfg, lg_src_t *out)
{
    napi_value k;
    if (get_optional_object(env, cfg, "tcpKeepalive", &k, &out->keepalive, "") != 0) return -1;
    if (!out->keepalive) return 0;
    return get_u64(env, k, "idleMs", &out->keepalive_idle_ms, "tcpKeepalive") != 0 ||
                   get_u64(env, k, "intervalMs", &out->keepalive_interval_ms, "tcpKeepalive") !=
                       0 ||
                   get_u64(env, k, "count", &out->keepalive_count, "tcpKeepalive") != 0
               ? -1
               : 0;
}

/* connect.auth: null, or { realm, users: [{ name, hash }], failureLimit: null or { perMinute,
 * burst } } (normalised by lib/config.js). */
static int read_auth(napi_env env, napi_value cn, lg_src_connect_t *out, const char *path)
{
    char apath[PATH_MAX_LEN + 16];
    snprintf(apath, sizeof(apath), "%s.auth", path);
    napi_value a, users;
    uint32_t n;
    if (get_optional_object(env, cn, "auth", &a, &out->has_auth, path) != 0) return -1;
    if (!out->has_auth) return 0;
    napi_value fl;
    bool has_fl = false;
    char fpath[PATH_MAX_LEN + 32];
    snprintf(fpath, sizeof(fpath), "%s.failureLimit", apath);
    uint64_t per_minute = 0, burst = 0;
    if (get_string(env, a, "realm", &out->auth_realm, apath) != 0 ||
        get_array(env, a, "users", &users, &n, apath) != 0 ||
        get_optional_object(env, a, "failureLimit", &fl, &has_fl, apath) != 0 ||
        (has_fl && (get_u64(env, fl, "perMinute", &per_minute, fpath) != 0 ||
                    get_u64(env, fl, "burst", &burst, fpath) != 0))) {
        return -1;
    }
    /* Out of range (lib/config.js refuses it first) stays out of range for lg_config to name. */
    out->has_auth_fail_limit = has_fl;
    out->auth_fail_per_minute = (uint32_t)LG_MIN(per_minute, UINT32_MAX);
    out->auth_fail_burst = (uint32_t)LG_MIN(burst, UINT32_MAX);
    if (n == 0) return 0; /* refused by lg_config with the path */
    out->auth_names.v = lg_calloc(n, sizeof(char *));
    out->auth_hashes.v = lg_calloc(n, sizeof(char *));
    if (out->auth_names.v == NULL || out->auth_hashes.v == NULL) {
        return bug(env, "%s: out of memory", apath);
    }
    for (uint32_t i = 0; i < n; i++) {
        napi_value u;
        char upath[PATH_MAX_LEN + 48];
        snprintf(upath, sizeof(upath), "%s.users[%u]", apath, i);
        if (element(env, users, i, &u, apath, "users") != 0) return -1;
        if (!is_type(env, u, napi_object)) return bug(env, "%s must be an object", upath);
        if (get_string(env, u, "name", &out->auth_names.v[i], upath) != 0) return -1;
        out->auth_names.n = i + 1;
        if (get_string(env, u, "hash", &out->auth_hashes.v[i], upath) != 0) return -1;
        out->auth_hashes.n = i + 1;
    }
    return 0;
}

static int read_connect(napi_env env, napi_value l, lg_src_connect_t *out, const char *lpath)
{
    char path[PATH_MAX_LEN];
    snprintf(path, sizeof(path), "%s.connect", lpath);
    napi_value cn, ports;
    uint32_t n;
    if (get_object(env, l, "connect", &cn, lpath) != 0 ||
        get_u64(env, cn, "connectTimeoutMs", &out->connect_timeout_ms, path) != 0 ||
        get_u64(env, cn, "headTimeoutMs", &out->head_timeout_ms, path) != 0 ||
        get_array(env, cn, "allowPorts", &ports, &n, path) != 0) {
        return -1;
    }
    out->allow_ports = lg_calloc(n + 1, sizeof(uint64_t));
    if (out->allow_ports == NULL) return bug(env, "%s: out of memory", path);
    for (uint32_t i = 0; i < n; i++) {
        napi_value e;
        double d = 0;
        if (element(env, ports, i, &e, path, "allowPorts") != 0) return -1;
        if (napi_get_value_double(env, e, &d) != napi_ok || !(d >= 0 && d <= NUMBER_MAX) ||
            d != (double)(uint64_t)d) {
            return bug(env, "%s.allowPorts[%u] must be a non-negative integer", path, i);
        }
        out->allow_ports[i] = (uint64_t)d;
        out->n_allow_ports = i + 1;
    }
    return get_strings(env, cn, "denyCidrs", &out->deny_cidrs, path) != 0 ||
                   get_strings(env, cn, "allowCidrs", &out->allow_cidrs, path) != 0 ||
                   get_strings(env, cn, "allowDomains", &out->allow_domains, path) != 0 ||
                   read_auth(env, cn, out, path) != 0
               ? -1
               : 0;
}

/* A { <count_key>, burst } bucket, or null. */
static int read_bucket(napi_env env, napi_value obj, const char *key, const char *count_key,
                       lg_src_bucket_t *out, const char *path)
{
    napi_value b;
    char bpath[PATH_MAX_LEN + 16];
    snprintf(bpath, sizeof(bpath), "%s.%s", path, key);
    if (get_optional_object(env, obj, key, &b, &out->present, path) != 0) return -1;
    if (!out->present) return 0;
    return get_number(env, b, count_key, &out->count, bpath) != 0 ||
                   get_number(env, b, "burst", &out->burst, bpath) != 0
               ? -1
               : 0;
}

static int read_protection(napi_env env, napi_value p, lg_src_protection_t *out, const char *path)
{
    napi_value box;
    char bpath[PATH_MAX_LEN + 16];
    snprintf(bpath, sizeof(bpath), "%s.penaltyBox", path);
    if (get_u64(env, p, "tlsHandshakeTimeoutMs", &out->tls_handshake_timeout_ms, path) != 0 ||
        read_bucket(env, p, "rateLimit", "connectionsPerSecond", &out->rate, path) != 0 ||
        read_bucket(env, p, "sustained", "connectionsPerMinute", &out->sustained, path) != 0 ||
        get_optional_object(env, p, "penaltyBox", &box, &out->penalty_box, path) != 0 ||
        (out->penalty_box && get_u64(env, box, "durationMs", &out->penalty_box_ms, bpath) != 0) ||
        get_u64(env, p, "maxConcurrentPerIp", &out->max_concurrent_per_ip, path) != 0 ||
        get_u64(env, p, "ipv6Prefix", &out->ipv6_prefix, path) != 0 ||
        get_strings(env, p, "allowlist", &out->allowlist, path) != 0 ||
        get_strings(env, p, "blocklist", &out->blocklist, path) != 0 ||
        get_strings(env, p, "ja3Blocklist", &out->ja3_blocklist, path) != 0 ||
        get_strings(env, p, "ja4Blocklist", &out->ja4_blocklist, path) != 0 ||
        get_bool(env, p, "requireSni", &out->require_sni, path) != 0) {
        return -1;
    }
    return 0;
}

static int read_listener(napi_env env, napi_value l, lg_src_listener_t *out, const char *path)
{
    static const char *const kinds[] = {"tls", "connect"};
    static const char *const proxy_modes[] = {"none", "v1", "v2", "any"};
    static const char *const reuse_modes[] = {"exclusive", "share"};
    napi_value p;
    char ppath[PATH_MAX_LEN];
    snprintf(ppath, sizeof(ppath), "%s.protection", path);
    if (get_enum(env, l, "kind", kinds, 2, &out->kind, path) != 0 ||
        get_string(env, l, "host", &out->host, path) != 0 ||
        get_u64(env, l, "port", &out->port, path) != 0 ||
        get_u64(env, l, "maxConnections", &out->max_connections, path) != 0 ||
        get_u64(env, l, "idleTimeoutMs", &out->idle_timeout_ms, path) != 0 ||
        read_cert(env, l, "defaultCert", &out->default_cert, path) != 0 ||
        read_mtls(env, l, &out->mtls, path) != 0 ||
        get_object(env, l, "protection", &p, path) != 0 ||
        read_protection(env, p, &out->protection, ppath) != 0 ||
        get_enum(env, l, "acceptProxyProtocol", proxy_modes, 4, &out->accept_proxy, path) != 0 ||
        get_strings(env, l, "trustedProxies", &out->trusted_proxies, path) != 0 ||
        read_flow_sched(env, l, &out->weight, &out->flow_rate, &out->flow_rate_set, path) != 0 ||
        get_enum(env, l, "reusePort", reuse_modes, 2, &out->reuse_port, path) != 0) {
        return -1;
    }
    /* 'none', 'v1', 'v2', 'any' are 0, LG_PP_ACCEPT_V1, LG_PP_ACCEPT_V2, LG_PP_ACCEPT_ANY. */
    if (out->kind == LG_LISTENER_CONNECT) return read_connect(env, l, &out->connect, path);
    return 0;
}

int lg_jsconf_read(napi_env env, napi_value cfg, lg_src_t *out)
{
    static const char *const sched_kinds[] = {"drr", "fifo"};
    static const char *const priorities[] = {"normal", "realtime"}; /* LG_PRIORITY_* */
    memset(out, 0, sizeof(*out));
    napi_value sched, lis, routes, prot;
    uint32_t nl, nr;
    const char *top = "config";
    if (get_u64(env, cfg, "workerThreads", &out->worker_threads, top) != 0 ||
        get_u64(env, cfg, "readBufferSize", &out->read_buffer_size, top) != 0 ||
        get_enum(env, cfg, "workerPriority", priorities, 2, &out->worker_priority, top) != 0 ||
        get_u64(env, cfg, "resolveIntervalMs", &out->resolve_interval_ms, top) != 0 ||
        get_u64(env, cfg, "halfCloseTimeoutMs", &out->half_close_ms, top) != 0 ||
        read_keepalive(env, cfg, out) != 0 || get_object(env, cfg, "scheduler", &sched, top) != 0 ||
        get_enum(env, sched, "kind", sched_kinds, 2, &out->sched_kind, "scheduler") != 0 ||
        get_u64(env, sched, "quantum", &out->quantum, "scheduler") != 0 ||
        get_u64(env, sched, "maxQueuedBytesPerFlow", &out->max_queued_per_flow, "scheduler") != 0 ||
        get_u64(env, sched, "rate", &out->rate, "scheduler") != 0 ||
        get_u64(env, sched, "burst", &out->burst, "scheduler") != 0 ||
        get_u64(env, sched, "flowRate", &out->flow_rate, "scheduler") != 0 ||
        get_object(env, cfg, "protection", &prot, top) != 0 ||
        get_u64(env, prot, "maxTrackedIps", &out->max_tracked_ips, "protection") != 0 ||
        get_array(env, cfg, "listeners", &lis, &nl, top) != 0 ||
        get_array(env, cfg, "routes", &routes, &nr, top) != 0) {
        goto fail;
    }
    if (nl > 0) {
        out->listeners = lg_calloc(nl, sizeof(lg_src_listener_t));
        if (out->listeners == NULL) {
            bug(env, "listeners: out of memory");
            goto fail;
        }
    }
    for (uint32_t i = 0; i < nl; i++) {
        char path[PATH_MAX_LEN];
        snprintf(path, sizeof(path), "listeners[%u]", i);
        napi_value l;
        out->n_listeners = i + 1;
        if (element(env, lis, i, &l, top, "listeners") != 0 ||
            read_listener(env, l, &out->listeners[i], path) != 0) {
            goto fail;
        }
    }
    if (nr > 0) {
        out->routes = lg_calloc(nr, sizeof(lg_src_route_t));
        if (out->routes == NULL) {
            bug(env, "routes: out of memory");
            goto fail;
        }
    }
    for (uint32_t i = 0; i < nr; i++) {
        char path[PATH_MAX_LEN];
        snprintf(path, sizeof(path), "routes[%u]", i);
        napi_value r;
        out->n_routes = i + 1;
        if (element(env, routes, i, &r, top, "routes") != 0 ||
            read_route(env, r, &out->routes[i], path) != 0) {
            goto fail;
        }
    }
    return 0;
fail:
    lg_src_free(out);
    return -1;
}

int lg_jsconf_read_decision(napi_env env, napi_value decision, napi_value cfg, unsigned listener,
                            lg_src_route_t *d, lg_src_listener_t *l)
{
    memset(d, 0, sizeof(*d));
    memset(l, 0, sizeof(*l));
    napi_value lis, lv;
    uint32_t nl;
    char path[PATH_MAX_LEN];
    snprintf(path, sizeof(path), "listeners[%u]", listener);
    if (read_route_body(env, decision, d, "decision") != 0 ||
        get_array(env, cfg, "listeners", &lis, &nl, "config") != 0) {
        goto fail;
    }
    if (listener >= nl) {
        bug(env, "config.listeners has no entry %u", listener);
        goto fail;
    }
    if (element(env, lis, listener, &lv, "config", "listeners") != 0 ||
        read_listener(env, lv, l, path) != 0) {
        goto fail;
    }
    return 0;
fail:
    lg_src_route_free(d);
    lg_src_listener_free(l);
    return -1;
}
