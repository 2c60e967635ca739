/*
 * lg_jsconf.c — normalised JS config → lg_config_t / lg_snapshot_t (see lg_jsconf.h).
 *
 * Upstream hosts: IP literals are parsed directly. A hostname is resolved here, once, when the
 * config is applied (the constructor or updateConfig), with a blocking getaddrinfo() on the JS
 * thread — the same as HAProxy resolving server names at startup. Use IP literals (or names in
 * /etc/hosts such as localhost) where a blocking lookup is unwelcome; per-connection DNS is the
 * forward proxy's job, not the router's.
 */
#include "lg_jsconf.h"
#include "lg_buf.h"
#include "lg_connect.h"
#include "lg_drr.h"

#include <arpa/inet.h>
#include <netdb.h>
#include <stdarg.h>
#include <stdio.h>
#include <string.h>
#include <sys/un.h>

#define PATH_MAX_LEN   96 /* bytes of an option path in an error message (indexes are < 2^32) */
#define LG_CONFIG_CODE "ERR_LEGATO_CONFIG"

static int throw_range(napi_env env, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static int throw_type(napi_env env, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

static int throw_range(napi_env env, const char *fmt, ...)
{
    char msg[512];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof(msg), fmt, ap);
    va_end(ap);
    napi_throw_range_error(env, LG_CONFIG_CODE, msg);
    return -1;
}

static int throw_type(napi_env env, const char *fmt, ...)
{
    char msg[512];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof(msg), fmt, ap);
    va_end(ap);
    napi_throw_type_error(env, LG_CONFIG_CODE, msg);
    return -1;
}

static int get(napi_env env, napi_value obj, const char *key, napi_value *out, const char *path)
{
    bool has = false;
    if (napi_has_named_property(env, obj, key, &has) != napi_ok || !has) {
        return throw_type(env, "%s.%s is missing", path, key);
    }
    if (napi_get_named_property(env, obj, key, out) != napi_ok) {
        return throw_type(env, "%s.%s could not be read", path, key);
    }
    return 0;
}

static int get_uint(napi_env env, napi_value obj, const char *key, uint64_t min, uint64_t max,
                    uint64_t *out, const char *path)
{
    napi_value v;
    if (get(env, obj, key, &v, path) != 0) return -1;
    double d;
    if (napi_get_value_double(env, v, &d) != napi_ok) {
        return throw_type(env, "%s.%s must be a number", path, key);
    }
    if (!(d >= (double)min && d <= (double)max) || d != (double)(uint64_t)d) {
        return throw_range(env, "%s.%s must be an integer %llu-%llu", path, key,
                           (unsigned long long)min, (unsigned long long)max);
    }
    *out = (uint64_t)d;
    return 0;
}

static int get_bool(napi_env env, napi_value obj, const char *key, bool *out, const char *path)
{
    napi_value v;
    if (get(env, obj, key, &v, path) != 0) return -1;
    if (napi_get_value_bool(env, v, out) != napi_ok) {
        return throw_type(env, "%s.%s must be a boolean", path, key);
    }
    return 0;
}

/* A NUL-free string, copied with lg_malloc. */
static int get_string(napi_env env, napi_value obj, const char *key, size_t max, char **out,
                      const char *path)
{
    napi_value v;
    if (get(env, obj, key, &v, path) != 0) return -1;
    size_t len = 0;
    if (napi_get_value_string_utf8(env, v, NULL, 0, &len) != napi_ok) {
        return throw_type(env, "%s.%s must be a string", path, key);
    }
    if (len > max) return throw_range(env, "%s.%s must be at most %zu bytes", path, key, max);
    char *s = lg_malloc(len + 1);
    if (s == NULL) return throw_range(env, "%s.%s: out of memory", path, key);
    napi_get_value_string_utf8(env, v, s, len + 1, &len);
    if (strlen(s) != len) {
        lg_free(s);
        return throw_range(env, "%s.%s must not contain NUL", path, key);
    }
    *out = s;
    return 0;
}

static int get_array(napi_env env, napi_value obj, const char *key, size_t max, napi_value *arr,
                     uint32_t *len, const char *path)
{
    if (get(env, obj, key, arr, path) != 0) return -1;
    bool is = false;
    napi_is_array(env, *arr, &is);
    if (!is) return throw_type(env, "%s.%s must be an array", path, key);
    napi_get_array_length(env, *arr, len);
    if (*len > max) return throw_range(env, "%s.%s must have at most %zu entries", path, key, max);
    return 0;
}

static int get_object(napi_env env, napi_value obj, const char *key, napi_value *out,
                      const char *path)
{
    if (get(env, obj, key, out, path) != 0) return -1;
    napi_valuetype t;
    napi_typeof(env, *out, &t);
    if (t != napi_object) return throw_type(env, "%s.%s must be an object", path, key);
    return 0;
}

static int element(napi_env env, napi_value arr, uint32_t i, napi_value *out)
{
    return napi_get_element(env, arr, i, out) == napi_ok ? 0 : -1;
}

/* A string array element as a NUL-terminated copy in `buf`. */
static int element_string(napi_env env, napi_value arr, uint32_t i, char *buf, size_t cap,
                          const char *path, const char *key)
{
    napi_value v;
    size_t len = 0;
    if (element(env, arr, i, &v) != 0 ||
        napi_get_value_string_utf8(env, v, NULL, 0, &len) != napi_ok) {
        return throw_type(env, "%s.%s[%u] must be a string", path, key, i);
    }
    if (len >= cap) return throw_range(env, "%s.%s[%u] is too long", path, key, i);
    napi_get_value_string_utf8(env, v, buf, cap, &len);
    if (strlen(buf) != len) return throw_range(env, "%s.%s[%u] must not hold NUL", path, key, i);
    return 0;
}

static int read_cidrs(napi_env env, napi_value obj, const char *key, lg_cidr_t **out, size_t *n,
                      const char *path)
{
    napi_value arr;
    uint32_t len;
    *out = NULL;
    *n = 0;
    if (get_array(env, obj, key, LG_CIDR_SET_MAX, &arr, &len, path) != 0) return -1;
    if (len == 0) return 0;
    lg_cidr_t *v = lg_calloc(len, sizeof(*v));
    if (v == NULL) return throw_range(env, "%s.%s: out of memory", path, key);
    for (uint32_t i = 0; i < len; i++) {
        char text[LG_CIDR_TEXT_MAX + 1];
        if (element_string(env, arr, i, text, sizeof(text), path, key) != 0 ||
            (lg_cidr_parse(text, strlen(text), &v[i]) != 0 &&
             throw_range(env, "%s.%s[%u] '%s' is not a CIDR", path, key, i, text))) {
            lg_free(v);
            return -1;
        }
    }
    *out = v;
    *n = len;
    return 0;
}

/* The connect listener's destination policy and deadline. */
static int read_connect(napi_env env, napi_value l, lg_listener_conf_t *lc, const char *lpath)
{
    char path[PATH_MAX_LEN + 16];
    snprintf(path, sizeof(path), "%s.connect", lpath);
    napi_value cn, ports_arr, dom_arr;
    uint32_t n_ports, n_dom;
    uint64_t v;
    if (get_object(env, l, "connect", &cn, lpath) != 0) return -1;
    if (get_uint(env, cn, "connectTimeoutMs", 1, 600000, &v, path) != 0) return -1;
    lc->connect_timeout_ms = (uint32_t)v;
    if (get_array(env, cn, "allowPorts", LG_POLICY_MAX_PORTS, &ports_arr, &n_ports, path) != 0 ||
        get_array(env, cn, "allowDomains", LG_POLICY_MAX_DOMAINS, &dom_arr, &n_dom, path) != 0) {
        return -1;
    }
    int rc = -1;
    uint16_t *ports = lg_calloc(n_ports + 1, sizeof(*ports));
    char **domains = lg_calloc(n_dom + 1, sizeof(char *));
    lg_cidr_t *deny = NULL, *allow = NULL;
    size_t n_deny = 0, n_allow = 0;
    if (ports == NULL || domains == NULL) {
        throw_range(env, "%s: out of memory", path);
        goto out;
    }
    for (uint32_t i = 0; i < n_ports; i++) {
        napi_value e;
        uint32_t p = 0;
        if (element(env, ports_arr, i, &e) != 0 || napi_get_value_uint32(env, e, &p) != napi_ok ||
            p < 1 || p > 65535) {
            throw_range(env, "%s.allowPorts[%u] must be an integer 1-65535", path, i);
            goto out;
        }
        ports[i] = (uint16_t)p;
    }
    for (uint32_t i = 0; i < n_dom; i++) {
        char name[LG_POLICY_MAX_DOMAIN + 2];
        if (element_string(env, dom_arr, i, name, sizeof(name), path, "allowDomains") != 0)
            goto out;
        domains[i] = lg_malloc(strlen(name) + 1);
        if (domains[i] == NULL) {
            throw_range(env, "%s: out of memory", path);
            goto out;
        }
        memcpy(domains[i], name, strlen(name) + 1);
    }
    if (read_cidrs(env, cn, "denyCidrs", &deny, &n_deny, path) != 0 ||
        read_cidrs(env, cn, "allowCidrs", &allow, &n_allow, path) != 0) {
        goto out;
    }
    int prc = lg_policy_build(&lc->policy, ports, n_ports, deny, n_deny, allow, n_allow,
                              (const char *const *)domains, n_dom);
    if (prc != 0) {
        throw_range(env, "%s: invalid destination policy (%s)", path,
                    prc == -ENOMEM ? "out of memory" : "a port, CIDR or domain was refused");
        goto out;
    }
    lc->head_limit = lg_connect_head_limit(lc->max_connections);
    rc = 0;
out:
    if (domains != NULL) {
        for (uint32_t i = 0; i < n_dom; i++)
            lg_free(domains[i]);
    }
    lg_free(domains);
    lg_free(ports);
    lg_free(deny);
    lg_free(allow);
    return rc;
}

int lg_jsconf_config(napi_env env, napi_value cfg, lg_config_t *conf)
{
    memset(conf, 0, sizeof(*conf));
    uint64_t v;
    const char *top = "config";
    if (get_uint(env, cfg, "workerThreads", 1, LG_MAX_WORKERS, &v, top) != 0) return -1;
    conf->worker_threads = (unsigned)v;
    if (get_uint(env, cfg, "readBufferSize", LG_BUF_SIZE_MIN, LG_BUF_SIZE_MAX, &v, top) != 0) {
        return -1;
    }
    conf->read_buffer_size = (size_t)v;

    napi_value sched;
    if (get_object(env, cfg, "scheduler", &sched, top) != 0) return -1;
    char *kind = NULL;
    if (get_string(env, sched, "kind", 8, &kind, "scheduler") != 0) return -1;
    if (strcmp(kind, "drr") == 0) {
        conf->sched_kind = LG_SCHED_DRR;
    } else if (strcmp(kind, "fifo") == 0) {
        conf->sched_kind = LG_SCHED_FIFO;
    } else {
        lg_free(kind);
        return throw_range(env, "scheduler.kind must be 'drr' or 'fifo'");
    }
    lg_free(kind);
    if (get_uint(env, sched, "quantum", 0, LG_DRR_QUANTUM_FIXED_MAX, &v, "scheduler") != 0) {
        return -1;
    }
    conf->sched_quantum = (size_t)v;
    if (get_uint(env, sched, "maxQueuedBytesPerFlow", 16384, 1ull << 30, &v, "scheduler") != 0) {
        return -1;
    }
    conf->max_queued_per_flow = (size_t)v;

    napi_value lis;
    uint32_t n;
    if (get_array(env, cfg, "listeners", LG_MAX_LISTENERS, &lis, &n, top) != 0) return -1;
    if (n == 0) return throw_range(env, "listeners must have at least one entry");
    for (uint32_t i = 0; i < n; i++) {
        char path[PATH_MAX_LEN];
        snprintf(path, sizeof(path), "listeners[%u]", i);
        lg_listener_conf_t *lc = &conf->listeners[i];
        napi_value l;
        if (element(env, lis, i, &l) != 0) goto fail;
        char *k = NULL;
        if (get_string(env, l, "kind", 16, &k, path) != 0) goto fail;
        bool is_tls = strcmp(k, "tls") == 0, is_connect = strcmp(k, "connect") == 0;
        lg_free(k);
        if (!is_tls && !is_connect) {
            throw_range(env, "%s.kind must be 'tls' or 'connect'", path);
            goto fail;
        }
        lc->kind = is_tls ? LG_LISTENER_TLS : LG_LISTENER_CONNECT;
        if (get_string(env, l, "host", 255, &lc->host, path) != 0) goto fail;
        conf->n_listeners = i + 1; /* host is owned from here on */
        if (get_uint(env, l, "port", 0, 65535, &v, path) != 0) goto fail;
        lc->port = (uint16_t)v;
        if (get_uint(env, l, "maxConnections", 0, UINT32_MAX, &v, path) != 0) goto fail;
        lc->max_connections = (uint32_t)v;
        if (get_uint(env, l, "idleTimeoutMs", 0, INT32_MAX, &v, path) != 0) goto fail;
        lc->idle_timeout_ms = (uint32_t)v;
        if (lc->kind == LG_LISTENER_CONNECT && read_connect(env, l, lc, path) != 0) goto fail;
    }
    conf->n_listeners = n;
    return 0;
fail:
    lg_config_free(conf);
    return -1;
}

/* Resolve a TCP upstream's host into up->addr (IP literal, or one blocking lookup). */
static int resolve_upstream(napi_env env, lg_upstream_t *up, const char *path)
{
    memset(&up->addr, 0, sizeof(up->addr));
    struct sockaddr_in *a4 = (struct sockaddr_in *)&up->addr;
    struct sockaddr_in6 *a6 = (struct sockaddr_in6 *)&up->addr;
    const char *host = up->host;
    char v6[64];
    size_t hl = strlen(host);
    if (hl >= 2 && host[0] == '[' && host[hl - 1] == ']' && hl - 2 < sizeof(v6)) {
        memcpy(v6, host + 1, hl - 2);
        v6[hl - 2] = '\0';
        host = v6;
    }
    if (inet_pton(AF_INET, host, &a4->sin_addr) == 1) {
        a4->sin_family = AF_INET;
        a4->sin_port = htons(up->port);
        up->addrlen = sizeof(*a4);
        return 0;
    }
    if (inet_pton(AF_INET6, host, &a6->sin6_addr) == 1) {
        a6->sin6_family = AF_INET6;
        a6->sin6_port = htons(up->port);
        up->addrlen = sizeof(*a6);
        return 0;
    }
    struct addrinfo hints, *res = NULL;
    memset(&hints, 0, sizeof(hints));
    hints.ai_family = AF_UNSPEC;
    hints.ai_socktype = SOCK_STREAM;
    int rc = getaddrinfo(host, NULL, &hints, &res);
    if (rc != 0 || res == NULL) {
        if (res != NULL) freeaddrinfo(res);
        return throw_range(env, "%s.host '%s' could not be resolved: %s", path, up->host,
                           gai_strerror(rc));
    }
    memcpy(&up->addr, res->ai_addr, res->ai_addrlen);
    up->addrlen = res->ai_addrlen;
    freeaddrinfo(res);
    if (up->addr.ss_family == AF_INET6) {
        a6->sin6_port = htons(up->port);
    } else {
        a4->sin_port = htons(up->port);
    }
    return 0;
}

static int read_upstream(napi_env env, napi_value u, lg_upstream_t *up, const char *path)
{
    char *kind = NULL;
    if (get_string(env, u, "kind", 16, &kind, path) != 0) return -1;
    bool tcp = strcmp(kind, "tcp") == 0, uds = strcmp(kind, "uds") == 0;
    lg_free(kind);
    if (tcp) {
        up->kind = LG_UPSTREAM_TCP;
        uint64_t port;
        if (get_string(env, u, "host", 255, &up->host, path) != 0) return -1;
        if (get_uint(env, u, "port", 1, 65535, &port, path) != 0) return -1;
        up->port = (uint16_t)port;
        return resolve_upstream(env, up, path);
    }
    if (uds) {
        up->kind = LG_UPSTREAM_UDS;
        if (get_string(env, u, "path", sizeof(((struct sockaddr_un *)0)->sun_path) - 1, &up->path,
                       path) != 0) {
            return -1;
        }
        if (up->path[0] == '\0') return throw_range(env, "%s.path must not be empty", path);
        return 0;
    }
    return throw_range(env, "%s.kind must be 'tcp' or 'uds'", path);
}

/*
 * A Buffer property (normalised PEM), copied: reading later properties may run JS (a getter)
 * that detaches this Buffer's memory, so no pointer into it is kept. Free with material_free().
 */
static int get_buffer(napi_env env, napi_value obj, const char *key, const uint8_t **data,
                      size_t *len, const char *path)
{
    napi_value v;
    bool is = false;
    *data = NULL;
    *len = 0;
    if (get(env, obj, key, &v, path) != 0) return -1;
    if (napi_is_buffer(env, v, &is) != napi_ok || !is) {
        return throw_type(env, "%s.%s must be a Buffer", path, key);
    }
    void *p = NULL;
    size_t n = 0;
    napi_get_buffer_info(env, v, &p, &n);
    if (p == NULL || n == 0 || n > INT32_MAX) {
        return throw_range(env, "%s.%s must not be empty", path, key);
    }
    uint8_t *copy = lg_malloc(n);
    if (copy == NULL) return throw_range(env, "%s.%s: out of memory", path, key);
    memcpy(copy, p, n);
    *data = copy;
    *len = n;
    return 0;
}

/* Free the copies get_buffer made for `m`. */
static void material_free(lg_tls_material_t *m)
{
    lg_free((void *)m->cert);
    lg_free((void *)m->key);
    lg_free((void *)m->ca);
    memset(m, 0, sizeof(*m));
}

/* An optional object property: *present is false for null. */
static int get_optional_object(napi_env env, napi_value obj, const char *key, napi_value *out,
                               bool *present, const char *path)
{
    if (get(env, obj, key, out, path) != 0) return -1;
    napi_valuetype t;
    napi_typeof(env, *out, &t);
    *present = t == napi_object;
    if (!*present && t != napi_null)
        return throw_type(env, "%s.%s must be an object or null", path, key);
    return 0;
}

/* route.alpn: array of 1..255-byte names → wire format. */
static int read_alpn(napi_env env, napi_value r, lg_route_t *route, const char *path)
{
    napi_value arr;
    uint32_t n;
    if (get_array(env, r, "alpn", 64, &arr, &n, path) != 0) return -1;
    if (n == 0) return 0;
    uint8_t *wire = lg_malloc((size_t)n * 256);
    if (wire == NULL) return throw_range(env, "%s.alpn: out of memory", path);
    size_t off = 0;
    for (uint32_t i = 0; i < n; i++) {
        char name[256];
        if (element_string(env, arr, i, name, sizeof(name), path, "alpn") != 0) {
            lg_free(wire);
            return -1;
        }
        size_t l = strlen(name);
        if (l == 0) {
            lg_free(wire);
            return throw_range(env, "%s.alpn[%u] must not be empty", path, i);
        }
        wire[off++] = (uint8_t)l;
        memcpy(wire + off, name, l);
        off += l;
    }
    route->alpn = wire;
    route->alpn_len = off;
    return 0;
}

/* Read a { certChain, privateKey } object into TLS material. */
static int read_cert(napi_env env, napi_value cert, lg_tls_material_t *m, const char *path)
{
    return get_buffer(env, cert, "certChain", &m->cert, &m->cert_len, path) != 0 ||
                   get_buffer(env, cert, "privateKey", &m->key, &m->key_len, path) != 0
               ? -1
               : 0;
}

static int read_mtls(napi_env env, napi_value mtls, lg_tls_material_t *m, const char *path)
{
    return get_buffer(env, mtls, "clientCaCert", &m->ca, &m->ca_len, path) != 0 ||
                   get_bool(env, mtls, "requireClientCert", &m->require_client_cert, path) != 0
               ? -1
               : 0;
}

/*
 * The context for `m`, recorded in `next`; without a cert there is none (*out = NULL) and only
 * the client CA, if any, is checked. Errors name the option whose material failed: `mpath` for
 * the CA, else `cpath`. Returns 0 or -1 (JS exception).
 */
static int material_context(napi_env env, const lg_tls_material_t *m, lg_tls_cache_t *cur,
                            lg_tls_cache_t *next, const char *cpath, const char *mpath,
                            SSL_CTX **out)
{
    char err[256];
    *out = NULL;
    if (m->cert == NULL) {
        if (m->ca != NULL && lg_tls_check_ca(m, err, sizeof(err)) != 0) {
            return throw_range(env, "%s: %s", mpath, err);
        }
        return 0;
    }
    *out = lg_tls_ctx_get(cur, next, m, err, sizeof(err));
    if (*out == NULL) {
        return throw_range(env, "%s: %s", strstr(err, "clientCaCert") != NULL ? mpath : cpath, err);
    }
    return 0;
}

/*
 * The contexts of a route, one per tls listener: the route's cert or the listener's defaultCert,
 * and the route's mtls or the listener's. Errors name the option that holds the bad material
 * ("routes[3].cert: private key does not match certificate"). A terminating route (`required`)
 * must have a cert for every tls listener; for another route (suspended: its decision may
 * terminate; or one that carries cert/mtls) a listener without any cert gets no context, and a
 * client CA found there is still checked, so bad material is refused by the constructor or
 * updateConfig whether or not a connection ever uses it.
 */
static int route_contexts(napi_env env, napi_value r, napi_value listeners, const lg_config_t *conf,
                          lg_route_t *route, lg_tls_cache_t *cur, lg_tls_cache_t *next,
                          const char *path, bool required)
{
    napi_value rcert, rmtls;
    bool has_rcert, has_rmtls;
    if (get_optional_object(env, r, "cert", &rcert, &has_rcert, path) != 0 ||
        get_optional_object(env, r, "mtls", &rmtls, &has_rmtls, path) != 0) {
        return -1;
    }
    route->ctx = lg_calloc(conf->n_listeners, sizeof(SSL_CTX *));
    if (route->ctx == NULL) return throw_range(env, "%s: out of memory", path);
    route->n_ctx = conf->n_listeners;
    for (size_t i = 0; i < conf->n_listeners; i++) {
        if (conf->listeners[i].kind != LG_LISTENER_TLS) continue;
        char lpath[PATH_MAX_LEN], cpath[PATH_MAX_LEN + 16] = "", mpath[PATH_MAX_LEN + 16] = "";
        snprintf(lpath, sizeof(lpath), "listeners[%zu]", i);
        napi_value l, lcert, lmtls;
        bool has_lcert, has_lmtls;
        if (element(env, listeners, (uint32_t)i, &l) != 0 ||
            get_optional_object(env, l, "defaultCert", &lcert, &has_lcert, lpath) != 0 ||
            get_optional_object(env, l, "mtls", &lmtls, &has_lmtls, lpath) != 0) {
            return -1;
        }
        if (!has_rcert && !has_lcert && required) {
            return throw_range(
                env, "%s.cert is required: terminateTls needs a cert, or a defaultCert on %s", path,
                lpath);
        }
        if (has_rcert || has_lcert) {
            snprintf(cpath, sizeof(cpath), "%s.%s", has_rcert ? path : lpath,
                     has_rcert ? "cert" : "defaultCert");
        }
        if (has_rmtls || has_lmtls) {
            snprintf(mpath, sizeof(mpath), "%s.mtls", has_rmtls ? path : lpath);
        }
        lg_tls_material_t m;
        memset(&m, 0, sizeof(m));
        /* No cert for this listener (a route that need not terminate): no context. */
        int rc = ((has_rcert || has_lcert) &&
                  read_cert(env, has_rcert ? rcert : lcert, &m, cpath) != 0) ||
                         ((has_rmtls || has_lmtls) &&
                          read_mtls(env, has_rmtls ? rmtls : lmtls, &m, mpath) != 0) ||
                         material_context(env, &m, cur, next, cpath, mpath, &route->ctx[i]) != 0
                     ? -1
                     : 0;
        material_free(&m);
        if (rc != 0) return -1;
    }
    return 0;
}

/*
 * A tls listener's defaultCert (with its mtls) is checked when the config is applied, even when no
 * route uses it yet (a later decision may), so a bad one is refused now. Its context goes into
 * `next`, where decisions and routes find it again.
 */
static int listener_context_check(napi_env env, napi_value l, lg_tls_cache_t *cur,
                                  lg_tls_cache_t *next, const char *lpath)
{
    napi_value lcert, lmtls;
    bool has_lcert, has_lmtls;
    if (get_optional_object(env, l, "defaultCert", &lcert, &has_lcert, lpath) != 0 ||
        get_optional_object(env, l, "mtls", &lmtls, &has_lmtls, lpath) != 0) {
        return -1;
    }
    char cpath[PATH_MAX_LEN + 16], mpath[PATH_MAX_LEN + 16];
    snprintf(cpath, sizeof(cpath), "%s.defaultCert", lpath);
    snprintf(mpath, sizeof(mpath), "%s.mtls", lpath);
    lg_tls_material_t m;
    memset(&m, 0, sizeof(m));
    SSL_CTX *ctx = NULL;
    int rc = (has_lcert && read_cert(env, lcert, &m, cpath) != 0) ||
                     (has_lmtls && read_mtls(env, lmtls, &m, mpath) != 0) ||
                     material_context(env, &m, cur, next, cpath, mpath, &ctx) != 0
                 ? -1
                 : 0;
    material_free(&m);
    SSL_CTX_free(ctx); /* `next` keeps its own reference (NULL: no cert, nothing to free) */
    return rc;
}

static int read_route_body(napi_env env, napi_value r, lg_route_t *route, const char *path);

static int read_route(napi_env env, napi_value r, lg_route_t *route, const char *path)
{
    if (get_string(env, r, "sni", LG_ROUTER_MAX_NAME + 2, &route->sni, path) != 0) return -1;
    uint64_t v;
    if (get_bool(env, r, "suspended", &route->suspended, path) != 0 ||
        get_uint(env, r, "suspendTimeoutMs", 1, INT32_MAX, &v, path) != 0) {
        return -1;
    }
    route->suspend_timeout_ms = (uint32_t)v;
    return read_route_body(env, r, route, path);
}

/* The fields a route shares with a decision: upstreams, terminateTls, alpn. */
static int read_route_body(napi_env env, napi_value r, lg_route_t *route, const char *path)
{
    if (get_bool(env, r, "terminateTls", &route->terminate_tls, path) != 0) return -1;
    if (read_alpn(env, r, route, path) != 0) return -1;
    napi_value ups;
    uint32_t n;
    if (get_array(env, r, "upstreams", LG_MAX_UPSTREAMS, &ups, &n, path) != 0) return -1;
    if (n > 0) {
        route->upstreams = lg_calloc(n, sizeof(lg_upstream_t));
        if (route->upstreams == NULL) return throw_range(env, "%s: out of memory", path);
    }
    for (uint32_t j = 0; j < n; j++) {
        char upath[2 * PATH_MAX_LEN];
        snprintf(upath, sizeof(upath), "%s.upstreams[%u]", path, j);
        napi_value u;
        if (element(env, ups, j, &u) != 0) return throw_type(env, "%s could not be read", upath);
        route->n_upstreams = j + 1; /* strings of entry j are owned from here on */
        if (read_upstream(env, u, &route->upstreams[j], upath) != 0) return -1;
    }
    return 0;
}

int lg_jsconf_decision(napi_env env, napi_value decision, napi_value cfg, const lg_config_t *conf,
                       lg_tls_cache_t *cache, unsigned listener, bool route_tls, lg_route_t **out)
{
    *out = NULL;
    lg_route_t *rt = lg_calloc(1, sizeof(*rt));
    if (rt == NULL) return throw_range(env, "decision: out of memory");
    napi_value lis;
    uint32_t nl;
    if (read_route_body(env, decision, rt, "decision") != 0) goto fail;
    if (rt->n_upstreams == 0) {
        throw_range(env, "decision.upstreams must have at least one entry");
        goto fail;
    }
    bool own_cert = false, own_mtls = false;
    napi_value unused;
    if (get_optional_object(env, decision, "cert", &unused, &own_cert, "decision") != 0 ||
        get_optional_object(env, decision, "mtls", &unused, &own_mtls, "decision") != 0) {
        goto fail;
    }
    if (rt->terminate_tls && (own_cert || own_mtls || !route_tls)) {
        if (get_array(env, cfg, "listeners", LG_MAX_LISTENERS, &lis, &nl, "config") != 0) goto fail;
        /* Contexts for the connection's listener only; cached ones are reused (not recorded:
         * the cache follows the route table, and a decision's material may be one-off). */
        lg_config_t one = *conf;
        for (size_t i = 0; i < one.n_listeners; i++) {
            if (i != listener) one.listeners[i].kind = LG_LISTENER_CONNECT;
        }
        if (route_contexts(env, decision, lis, &one, rt, cache, NULL, "decision", true) != 0) {
            goto fail;
        }
    }
    *out = rt;
    return 0;
fail:
    lg_route_free(rt);
    lg_free(rt);
    return -1;
}

int lg_jsconf_snapshot(napi_env env, napi_value cfg, const lg_config_t *conf, lg_tls_cache_t *cur,
                       lg_tls_cache_t *next, lg_snapshot_t **out)
{
    *out = NULL;
    lg_snapshot_t *s = lg_calloc(1, sizeof(*s));
    if (s == NULL) return throw_range(env, "config: out of memory");
    atomic_init(&s->refs, 1);

    napi_value lis;
    uint32_t nl;
    if (get_array(env, cfg, "listeners", LG_MAX_LISTENERS, &lis, &nl, "config") != 0) goto fail;
    if (nl != conf->n_listeners) {
        throw_range(env, "listeners cannot change after the proxy is created");
        goto fail;
    }
    for (uint32_t i = 0; i < nl; i++) {
        char lpath[PATH_MAX_LEN], path[PATH_MAX_LEN];
        snprintf(lpath, sizeof(lpath), "listeners[%u]", i);
        snprintf(path, sizeof(path), "listeners[%u].protection", i);
        napi_value l, p;
        uint64_t v;
        if (element(env, lis, i, &l) != 0) goto fail;
        if (get_object(env, l, "protection", &p, lpath) != 0) goto fail;
        if (get_uint(env, p, "tlsHandshakeTimeoutMs", 1, 600000, &v, path) != 0) goto fail;
        s->protection[i].tls_handshake_timeout_ms = (uint32_t)v;
        if (conf->listeners[i].kind == LG_LISTENER_TLS &&
            listener_context_check(env, l, cur, next, lpath) != 0) {
            goto fail;
        }
    }

    napi_value routes;
    uint32_t nr;
    if (get_array(env, cfg, "routes", LG_ROUTER_MAX_ROUTES, &routes, &nr, "config") != 0) goto fail;
    if (nr > 0) {
        s->routes = lg_calloc(nr, sizeof(lg_route_t));
        if (s->routes == NULL) {
            throw_range(env, "routes: out of memory");
            goto fail;
        }
    }
    for (uint32_t i = 0; i < nr; i++) {
        char path[PATH_MAX_LEN];
        snprintf(path, sizeof(path), "routes[%u]", i);
        napi_value r;
        if (element(env, routes, i, &r) != 0) goto fail;
        s->n_routes = i + 1;
        if (read_route(env, r, &s->routes[i], path) != 0) goto fail;
        bool has_cert = false, has_mtls = false;
        napi_value unused;
        if (get_optional_object(env, r, "cert", &unused, &has_cert, path) != 0 ||
            get_optional_object(env, r, "mtls", &unused, &has_mtls, path) != 0) {
            goto fail;
        }
        const lg_route_t *rt = &s->routes[i];
        if ((rt->terminate_tls || rt->suspended || has_cert || has_mtls) &&
            route_contexts(env, r, lis, conf, &s->routes[i], cur, next, path, rt->terminate_tls) !=
                0) {
            goto fail;
        }
    }

    const char **patterns = NULL;
    if (nr > 0) {
        patterns = lg_calloc(nr, sizeof(char *));
        if (patterns == NULL) {
            throw_range(env, "routes: out of memory");
            goto fail;
        }
        for (uint32_t i = 0; i < nr; i++)
            patterns[i] = s->routes[i].sni;
    }
    size_t bad = 0;
    int rc = lg_router_build(&s->router, patterns, nr, &bad);
    lg_free(patterns);
    if (rc == -EEXIST) {
        throw_range(env, "routes[%zu].sni '%s' duplicates an earlier route", bad,
                    s->routes[bad].sni);
        goto fail;
    } else if (rc == -EINVAL) {
        throw_range(env, "routes[%zu].sni '%s' is not a valid name, *.suffix or ''", bad,
                    s->routes[bad].sni);
        goto fail;
    } else if (rc != 0) {
        throw_range(env, "routes: out of memory");
        goto fail;
    }
    *out = s;
    return 0;
fail:
    lg_snapshot_destroy(s);
    return -1;
}
