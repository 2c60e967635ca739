/*
 * lg_config.c — compiling a configuration (see lg_config.h), snapshots' reference counting and
 * their publication slot.
 *
 * Every range is re-checked here against lg_limits.h, so that a caller of the binding that
 * bypasses lib/config.js still cannot hand the engine a value it was not built for; the messages
 * name the option path like lib/config.js's (lib/config.js words the ones users normally see).
 */
#include "lg_config.h"
#include "lg_digest.h"

#include <arpa/inet.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/random.h>
#include <time.h>

#define PATH_MAX_LEN 128 /* bytes of an option path in a message (indexes are < 2^32) */

static int cfg_fail(lg_cfgerr_t *err, bool type_error, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

static int cfg_fail(lg_cfgerr_t *err, bool type_error, const char *fmt, ...)
{
    err->type_error = type_error;
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(err->msg, sizeof(err->msg), fmt, ap);
    va_end(ap);
    return -1;
}

#define RANGE(err, ...) cfg_fail((err), false, __VA_ARGS__)

static int check_range(lg_cfgerr_t *err, const char *path, const char *key, uint64_t v,
                       uint64_t min, uint64_t max)
{
    if (v < min || v > max) {
        return RANGE(err, "%s%s%s must be an integer %llu-%llu", path, *path ? "." : "", key,
                     (unsigned long long)min, (unsigned long long)max);
    }
    return 0;
}

/*
 * A route's or listener's own `scheduler`: weight 0 (not given) or 1..LG_DRR_WEIGHT_MAX, and
 * flowRate (when given) bytes/s per flow; a weight other than 1 or a cap needs DRR.
 */
static int build_flow_sched(uint64_t weight, uint64_t rate, bool rate_set, int sched_kind,
                            const char *path, lg_cfgerr_t *err)
{
    char spath[PATH_MAX_LEN + 16];
    snprintf(spath, sizeof(spath), "%s.scheduler", path);
    if (check_range(err, spath, "weight", weight, 0, LG_DRR_WEIGHT_MAX) != 0) return -1;
    if (weight > 1 && sched_kind != LG_SCHED_DRR) {
        return RANGE(err, "%s.weight needs scheduler.kind 'drr'", spath);
    }
    if (!rate_set) return 0;
    if (check_range(err, spath, "flowRate", rate, 0, (1ull << 53) - 1) != 0) return -1;
    if (rate > 0 && sched_kind != LG_SCHED_DRR) {
        return RANGE(err, "%s.flowRate needs scheduler.kind 'drr'", spath);
    }
    return 0;
}

/* ---- freeing the source ---------------------------------------------------------------------- */

static void strings_free(lg_src_strings_t *s)
{
    for (size_t i = 0; i < s->n; i++)
        lg_free(s->v[i]);
    lg_free(s->v);
    memset(s, 0, sizeof(*s));
}

static void cert_free(lg_src_cert_t *c)
{
    lg_free(c->chain.p);
    lg_free(c->key.p);
    memset(c, 0, sizeof(*c));
}

static void mtls_free(lg_src_mtls_t *m)
{
    lg_free(m->ca.p);
    memset(m, 0, sizeof(*m));
}

void lg_src_route_free(lg_src_route_t *r)
{
    lg_free(r->sni);
    lg_free(r->metrics_group);
    for (size_t i = 0; i < r->n_upstreams; i++) {
        lg_free(r->upstreams[i].host);
        lg_free(r->upstreams[i].path);
        lg_free(r->upstreams[i].tls.servername);
        lg_free(r->upstreams[i].tls.ca.p);
        cert_free(&r->upstreams[i].tls.cert);
    }
    lg_free(r->upstreams);
    cert_free(&r->cert);
    mtls_free(&r->mtls);
    strings_free(&r->alpn);
    memset(r, 0, sizeof(*r));
}

static void protection_src_free(lg_src_protection_t *p)
{
    strings_free(&p->allowlist);
    strings_free(&p->blocklist);
    strings_free(&p->ja3_blocklist);
    strings_free(&p->ja4_blocklist);
}

void lg_src_listener_free(lg_src_listener_t *l)
{
    lg_free(l->host);
    protection_src_free(&l->protection);
    strings_free(&l->trusted_proxies);
    cert_free(&l->default_cert);
    mtls_free(&l->mtls);
    lg_free(l->connect.allow_ports);
    strings_free(&l->connect.deny_cidrs);
    strings_free(&l->connect.allow_cidrs);
    strings_free(&l->connect.allow_domains);
    lg_free(l->connect.auth_realm);
    strings_free(&l->connect.auth_names);
    strings_free(&l->connect.auth_hashes);
    memset(l, 0, sizeof(*l));
}

void lg_src_free(lg_src_t *s)
{
    for (size_t i = 0; i < s->n_listeners; i++)
        lg_src_listener_free(&s->listeners[i]);
    lg_free(s->listeners);
    for (size_t i = 0; i < s->n_routes; i++)
        lg_src_route_free(&s->routes[i]);
    lg_free(s->routes);
    memset(s, 0, sizeof(*s));
}

/* ---- the fixed part ----------------------------------------------------------------------------
 */

uint32_t lg_config_head_limit(uint32_t max_connections)
{
    if (max_connections == 0) return 4096;
    return LG_MAX(max_connections / 4, 16u);
}

uint32_t lg_config_head_share(uint32_t head_limit)
{
    return LG_MAX(head_limit / 4, 1u);
}

static char *dup_str(const char *s)
{
    size_t n = strlen(s);
    char *d = lg_malloc(n + 1);
    if (d != NULL) memcpy(d, s, n + 1);
    return d;
}

static int parse_cidrs(const lg_src_strings_t *list, lg_cidr_t **out, const char *path,
                       const char *key, lg_cfgerr_t *err)
{
    *out = NULL;
    if (list->n > LG_CIDR_SET_MAX) {
        return RANGE(err, "%s.%s must have at most %d entries", path, key, LG_CIDR_SET_MAX);
    }
    if (list->n == 0) return 0;
    lg_cidr_t *v = lg_calloc(list->n, sizeof(*v));
    if (v == NULL) return RANGE(err, "%s.%s: out of memory", path, key);
    for (size_t i = 0; i < list->n; i++) {
        const char *t = list->v[i];
        if (lg_cidr_parse(t, strlen(t), &v[i]) != 0) {
            lg_free(v);
            return RANGE(err, "%s.%s[%zu] '%.64s' is not a CIDR", path, key, i, t);
        }
    }
    *out = v;
    return 0;
}

/* A CIDR set from a list of CIDR strings. */
static int build_cidr_set(const lg_src_strings_t *list, lg_cidr_set_t *set, const char *path,
                          const char *key, lg_cfgerr_t *err)
{
    lg_cidr_t *v = NULL;
    if (parse_cidrs(list, &v, path, key, err) != 0) return -1;
    int rc = lg_cidr_set_build(set, v, list->n);
    lg_free(v);
    if (rc != 0)
        return RANGE(err, "%s.%s: %s", path, key, rc == -ENOMEM ? "out of memory" : "invalid");
    return 0;
}

/* Fill buf with n random bytes from the kernel. Returns 0 or -EIO. */
static int random_bytes(uint8_t *buf, size_t n)
{
    size_t got = 0;
    while (got < n) {
        ssize_t r = getrandom(buf + got, n - got, 0);
        if (r < 0 && errno == EINTR) continue;
        if (r <= 0) return -EIO;
        got += (size_t)r;
    }
    return 0;
}

static void auth_free(lg_auth_t *a)
{
    if (a == NULL) return;
    lg_free(a->users);
    lg_auth_throttle_free(&a->throttle);
    lg_auth_wipe(a, sizeof(*a));
    lg_free(a);
}

/* A connect listener's user table (connect.auth): hashes parsed by lg_auth, names sorted. */
static int build_auth(const lg_src_connect_t *cn, lg_listener_conf_t *lc, unsigned workers,
                      const char *path, lg_cfgerr_t *err)
{
    size_t n = cn->auth_names.n;
    if (n == 0 || n > LG_AUTH_MAX_USERS || cn->auth_hashes.n != n) {
        return RANGE(err, "%s.auth.users must have 1-%d entries", path, LG_AUTH_MAX_USERS);
    }
    lg_auth_t *a = lg_calloc(1, sizeof(*a));
    if (a == NULL || (a->users = lg_calloc(n, sizeof(*a->users))) == NULL) {
        auth_free(a);
        return RANGE(err, "%s.auth: out of memory", path);
    }
    const char *realm = cn->auth_realm != NULL ? cn->auth_realm : "legato";
    int len = lg_auth_response(realm, a->response);
    if (len < 0) {
        auth_free(a);
        return RANGE(err,
                     "%s.auth.realm must be 1-%d printable ASCII characters without '\"' or "
                     "'\\'",
                     path, LG_AUTH_REALM_MAX);
    }
    a->response_len = (size_t)len;
    for (size_t i = 0; i < n; i++) {
        const char *name = cn->auth_names.v[i], *hash = cn->auth_hashes.v[i], *why = NULL;
        size_t nl = strlen(name);
        if (nl == 0 || nl > LG_AUTH_NAME_MAX || strchr(name, ':') != NULL) {
            auth_free(a);
            return RANGE(err, "%s.auth.users[%zu].name must be 1-%d bytes without ':'", path, i,
                         LG_AUTH_NAME_MAX);
        }
        memcpy(a->users[i].name, name, nl + 1);
        a->users[i].name_len = nl;
        if (lg_auth_parse_hash(hash, strlen(hash), &a->users[i].hash, &why) != 0) {
            auth_free(a);
            return RANGE(err, "%s.auth.users[%zu].hash is not a $scrypt$ hash: %s", path, i, why);
        }
    }
    /* The dummy an unknown user is checked against: the first user's cost (so a wrong name
     * costs what a wrong password does), a random salt and a random hash. */
    a->dummy = a->users[0].hash;
    if (random_bytes(a->dummy.salt, a->dummy.salt_len) != 0 ||
        random_bytes(a->dummy.hash, a->dummy.hash_len) != 0 ||
        random_bytes(a->cache_salt, sizeof(a->cache_salt)) != 0) {
        auth_free(a);
        return RANGE(err, "%s.auth: no random bytes from the kernel", path);
    }
    size_t dup = 0;
    if (lg_auth_sort_users(a->users, n, &dup) != 0) {
        RANGE(err, "%s.auth.users: user '%s' appears twice", path, a->users[dup].name);
        auth_free(a);
        return -1;
    }
    a->n_users = n;
    if (cn->has_auth_fail_limit) {
        int rc = lg_auth_throttle_init(&a->throttle, cn->auth_fail_per_minute, cn->auth_fail_burst,
                                       workers);
        if (rc != 0) {
            auth_free(a);
            return rc == -ENOMEM ? RANGE(err, "%s.auth: out of memory", path)
                                 : RANGE(err,
                                         "%s.auth.failureLimit must be { perMinute: 1-%d, burst: "
                                         "1-%d } or null",
                                         path, LG_AUTH_FAIL_PER_MINUTE_MAX, LG_AUTH_FAIL_BURST_MAX);
        }
    }
    lc->auth = a;
    return 0;
}

/* A connect listener's destination policy and deadline. */
static int build_connect(const lg_src_connect_t *cn, lg_listener_conf_t *lc, unsigned workers,
                         const char *lpath, lg_cfgerr_t *err)
{
    char path[PATH_MAX_LEN + 16];
    snprintf(path, sizeof(path), "%s.connect", lpath);
    if (check_range(err, path, "connectTimeoutMs", cn->connect_timeout_ms, 1,
                    LG_CONNECT_TIMEOUT_MAX) != 0) {
        return -1;
    }
    lc->connect_timeout_ms = (uint32_t)cn->connect_timeout_ms;
    if (check_range(err, path, "headTimeoutMs", cn->head_timeout_ms, 1, LG_CONNECT_TIMEOUT_MAX) !=
        0) {
        return -1;
    }
    lc->head_timeout_ms = (uint32_t)cn->head_timeout_ms;
    if (cn->n_allow_ports > LG_POLICY_MAX_PORTS) {
        return RANGE(err, "%s.allowPorts must have at most %d entries", path, LG_POLICY_MAX_PORTS);
    }
    if (cn->allow_domains.n > LG_POLICY_MAX_DOMAINS) {
        return RANGE(err, "%s.allowDomains must have at most %d entries", path,
                     LG_POLICY_MAX_DOMAINS);
    }
    int rc = -1;
    uint16_t *ports = lg_calloc(cn->n_allow_ports + 1, sizeof(*ports));
    lg_cidr_t *deny = NULL, *allow = NULL;
    if (ports == NULL) {
        RANGE(err, "%s: out of memory", path);
        goto out;
    }
    for (size_t i = 0; i < cn->n_allow_ports; i++) {
        if (cn->allow_ports[i] < 1 || cn->allow_ports[i] > 65535) {
            RANGE(err, "%s.allowPorts[%zu] must be an integer 1-65535", path, i);
            goto out;
        }
        ports[i] = (uint16_t)cn->allow_ports[i];
    }
    if (parse_cidrs(&cn->deny_cidrs, &deny, path, "denyCidrs", err) != 0 ||
        parse_cidrs(&cn->allow_cidrs, &allow, path, "allowCidrs", err) != 0) {
        goto out;
    }
    int prc = lg_policy_build(&lc->policy, ports, cn->n_allow_ports, deny, cn->deny_cidrs.n, allow,
                              cn->allow_cidrs.n, (const char *const *)cn->allow_domains.v,
                              cn->allow_domains.n);
    if (prc != 0) {
        RANGE(err, "%s: invalid destination policy (%s)", path,
              prc == -ENOMEM ? "out of memory" : "a port, CIDR or domain was refused");
        goto out;
    }
    lc->head_limit = lg_config_head_limit(lc->max_connections);
    lc->head_share = lg_config_head_share(lc->head_limit);
    if (cn->has_auth && build_auth(cn, lc, workers, path, err) != 0) goto out;
    rc = 0;
out:
    lg_free(ports);
    lg_free(deny);
    lg_free(allow);
    return rc;
}

int lg_config_build(const lg_src_t *src, lg_config_t *conf, lg_cfgerr_t *err)
{
    memset(conf, 0, sizeof(*conf));
    if (check_range(err, "", "workerThreads", src->worker_threads, 1, LG_MAX_WORKERS) != 0 ||
        check_range(err, "", "readBufferSize", src->read_buffer_size, LG_BUF_SIZE_MIN,
                    LG_BUF_SIZE_MAX) != 0 ||
        check_range(err, "scheduler", "quantum", src->quantum, 0, LG_DRR_QUANTUM_FIXED_MAX) != 0 ||
        check_range(err, "scheduler", "maxQueuedBytesPerFlow", src->max_queued_per_flow,
                    LG_FLOW_QUEUE_MIN, LG_FLOW_QUEUE_MAX) != 0) {
        return -1;
    }
    if (src->worker_priority != LG_PRIORITY_NORMAL &&
        src->worker_priority != LG_PRIORITY_REALTIME) {
        return RANGE(err, "workerPriority must be 'normal' or 'realtime'");
    }
    if (src->sched_kind != LG_SCHED_DRR && src->sched_kind != LG_SCHED_FIFO) {
        return RANGE(err, "scheduler.kind must be 'drr' or 'fifo'");
    }
    if (src->rate > 0 && src->sched_kind != LG_SCHED_DRR) {
        return RANGE(err, "scheduler.rate needs scheduler.kind 'drr'");
    }
    if (src->flow_rate > 0 && src->sched_kind != LG_SCHED_DRR) {
        return RANGE(err, "scheduler.flowRate needs scheduler.kind 'drr'");
    }
    if (src->n_listeners == 0) return RANGE(err, "listeners must have at least one entry");
    if (src->n_listeners > LG_MAX_LISTENERS) {
        return RANGE(err, "listeners must have at most %d entries", LG_MAX_LISTENERS);
    }
    conf->worker_threads = (unsigned)src->worker_threads;
    conf->worker_priority = src->worker_priority;
    conf->read_buffer_size = (size_t)src->read_buffer_size;
    conf->sched_kind = src->sched_kind;
    conf->sched_quantum = (size_t)src->quantum;
    conf->max_queued_per_flow = (size_t)src->max_queued_per_flow;
    conf->sched_rate = src->rate;
    conf->sched_burst = src->rate ? LG_MAX(src->burst, (uint64_t)1) : 0;
    conf->sched_flow_rate = src->flow_rate;
    for (size_t i = 0; i < src->n_listeners; i++) {
        const lg_src_listener_t *l = &src->listeners[i];
        lg_listener_conf_t *lc = &conf->listeners[i];
        char path[PATH_MAX_LEN];
        snprintf(path, sizeof(path), "listeners[%zu]", i);
        if (l->kind != LG_LISTENER_TLS && l->kind != LG_LISTENER_CONNECT) {
            RANGE(err, "%s.kind must be 'tls' or 'connect'", path);
            goto fail;
        }
        if (l->host == NULL || strlen(l->host) > LG_HOST_MAX) {
            RANGE(err, "%s.host must be at most %d bytes", path, LG_HOST_MAX);
            goto fail;
        }
        if (check_range(err, path, "port", l->port, 0, 65535) != 0 ||
            check_range(err, path, "maxConnections", l->max_connections, 0, LG_CONNECTIONS_MAX) !=
                0 ||
            check_range(err, path, "idleTimeoutMs", l->idle_timeout_ms, 0, LG_TIMEOUT_MAX_MS) !=
                0) {
            goto fail;
        }
        lc->kind = l->kind;
        lc->host = dup_str(l->host);
        conf->n_listeners = i + 1; /* host (and policy) owned from here on */
        if (lc->host == NULL) {
            RANGE(err, "%s: out of memory", path);
            goto fail;
        }
        lc->port = (uint16_t)l->port;
        lc->max_connections = (uint32_t)l->max_connections;
        lc->idle_timeout_ms = (uint32_t)l->idle_timeout_ms;
        if (lc->kind == LG_LISTENER_CONNECT &&
            build_connect(&l->connect, lc, conf->worker_threads, path, err) != 0) {
            goto fail;
        }
        if (l->accept_proxy < 0 || l->accept_proxy > LG_PP_ACCEPT_ANY) {
            RANGE(err, "%s.acceptProxyProtocol must be 'none', 'v1', 'v2' or 'any'", path);
            goto fail;
        }
        lc->accept_proxy = l->accept_proxy;
        if (l->reuse_port < 0 || l->reuse_port > 1) {
            RANGE(err, "%s.reusePort must be 'exclusive' or 'share'", path);
            goto fail;
        }
        lc->reuse_share = l->reuse_port == 1;
        if (lc->accept_proxy != 0 && l->trusted_proxies.n == 0) {
            RANGE(err, "%s.trustedProxies must not be empty when acceptProxyProtocol is set", path);
            goto fail;
        }
        if (build_cidr_set(&l->trusted_proxies, &lc->trusted, path, "trustedProxies", err) != 0) {
            goto fail;
        }
        if (build_flow_sched(l->weight, l->flow_rate, l->flow_rate_set, conf->sched_kind, path,
                             err) != 0) {
            goto fail;
        }
        lc->weight = (uint16_t)(l->weight ? l->weight : 1);
        lc->flow_rate = l->flow_rate_set ? l->flow_rate : conf->sched_flow_rate;
    }
    if (check_range(err, "protection", "maxTrackedIps", src->max_tracked_ips, 1,
                    LG_LIMIT_MAX_TRACKED) != 0) {
        goto fail;
    }
    conf->max_tracked_ips = (size_t)src->max_tracked_ips;
    if (check_range(err, "", "resolveIntervalMs", src->resolve_interval_ms, 1, LG_TIMEOUT_MAX_MS) !=
        0) {
        goto fail;
    }
    conf->resolve_interval_ms = (uint32_t)src->resolve_interval_ms;
    if (src->keepalive) {
        if (src->keepalive_idle_ms % 1000 != 0 || src->keepalive_interval_ms % 1000 != 0 ||
            check_range(err, "tcpKeepalive", "idleMs", src->keepalive_idle_ms, 1000,
                        LG_KEEPALIVE_MAX_S * 1000ull) != 0 ||
            check_range(err, "tcpKeepalive", "intervalMs", src->keepalive_interval_ms, 1000,
                        LG_KEEPALIVE_MAX_S * 1000ull) != 0 ||
            check_range(err, "tcpKeepalive", "count", src->keepalive_count, 1,
                        LG_KEEPALIVE_MAX_COUNT) != 0) {
            if (src->keepalive_idle_ms % 1000 != 0 || src->keepalive_interval_ms % 1000 != 0) {
                RANGE(err, "tcpKeepalive.idleMs and intervalMs must be whole seconds");
            }
            goto fail;
        }
        conf->keepalive_idle_s = (unsigned)(src->keepalive_idle_ms / 1000);
        conf->keepalive_interval_s = (unsigned)(src->keepalive_interval_ms / 1000);
        conf->keepalive_count = (unsigned)src->keepalive_count;
    }
    if (check_range(err, "", "halfCloseTimeoutMs", src->half_close_ms, 0, LG_TIMEOUT_MAX_MS) != 0) {
        goto fail;
    }
    conf->half_close_ms = (uint32_t)src->half_close_ms;
    return 0;
fail:
    lg_config_free(conf);
    return -1;
}

void lg_config_free(lg_config_t *c)
{
    for (size_t i = 0; i < c->n_listeners; i++) {
        lg_free(c->listeners[i].host);
        c->listeners[i].host = NULL;
        lg_policy_free(&c->listeners[i].policy);
        auth_free(c->listeners[i].auth);
        c->listeners[i].auth = NULL;
        lg_cidr_set_free(&c->listeners[i].trusted);
    }
    c->n_listeners = 0;
}

/* ---- routes ------------------------------------------------------------------------------------
 */

/* ---- the registry -----------------------------------------------------------------------------
 *
 * One lg_upshared_t per upstream identity in the process, so that every route, decision and
 * snapshot that lists an upstream counts its connections and health in one place, across swaps
 * (and across proxies in one process: they share the upstream); likewise one lg_routestat_t per
 * route identity. Both kinds are lg_regent_t entries of a table of their own, under one lock,
 * taken when a config is built or freed and by the CPU sampler, never per connection.
 */

#define UPREG_BUCKETS 1024

static pthread_mutex_t upreg_lock = PTHREAD_MUTEX_INITIALIZER;
static lg_regent_t *upreg[UPREG_BUCKETS];   /* lg_upshared_t */
static lg_regent_t *statreg[UPREG_BUCKETS]; /* lg_routestat_t */
static uint64_t upreg_gen;                  /* under upreg_lock */

/* FNV-1a, 64 bits: stable across processes, so the hash policy's keys are too. */
static uint64_t fnv1a(const char *s)
{
    uint64_t h = 14695981039346656037ull;
    for (; *s != '\0'; s++) {
        h ^= (uint8_t)*s;
        h *= 1099511628211ull;
    }
    return h;
}

/*
 * The entry of `identity` in `table` (one more reference), or a new one: `size` zeroed bytes of
 * which the entry is at offset `at`, set up by init(obj, arg) under the lock. NULL: out of memory.
 */
static void *reg_get(lg_regent_t **table, const char *identity, size_t size, size_t at,
                     void (*init)(void *obj, const void *arg), const void *arg)
{
    uint64_t key = fnv1a(identity);
    size_t b = key % UPREG_BUCKETS;
    void *obj = NULL;
    pthread_mutex_lock(&upreg_lock);
    lg_regent_t *e = table[b];
    while (e != NULL && (e->key != key || strcmp(e->identity, identity) != 0))
        e = e->next;
    if (e != NULL) {
        atomic_fetch_add_explicit(&e->refs, 1, memory_order_relaxed);
        obj = (char *)e - at;
    } else if ((obj = lg_calloc(1, size)) != NULL) {
        e = (lg_regent_t *)((char *)obj + at);
        e->identity = dup_str(identity);
        if (e->identity == NULL) {
            lg_free(obj);
            obj = NULL;
        } else {
            atomic_init(&e->refs, 1);
            e->key = key;
            e->next = table[b];
            table[b] = e;
            if (init != NULL) init(obj, arg);
        }
    }
    pthread_mutex_unlock(&upreg_lock);
    return obj;
}

/* Drop a reference; true when it was the last (the entry is out of the table: free it). */
static bool reg_unref(lg_regent_t **table, lg_regent_t *e)
{
    pthread_mutex_lock(&upreg_lock);
    bool last = atomic_fetch_sub_explicit(&e->refs, 1, memory_order_relaxed) == 1;
    if (last) {
        lg_regent_t **pp = &table[e->key % UPREG_BUCKETS];
        while (*pp != e)
            pp = &(*pp)->next;
        *pp = e->next;
    }
    pthread_mutex_unlock(&upreg_lock);
    return last;
}

static void upshared_init(void *obj, const void *arg)
{
    lg_upshared_t *u = obj;
    const uint32_t *pid_tid = arg;
    u->pid = pid_tid[0];
    u->tid = pid_tid[1];
    lg_upstate_init(&u->st, ++upreg_gen);
    pthread_mutex_init(&u->addr_lock, NULL);
}

/* The shared state of `identity` (one reference), created on first use; NULL: out of memory. */
static lg_upshared_t *upshared_get(const char *identity, uint32_t pid, uint32_t tid)
{
    const uint32_t pid_tid[2] = {pid, tid};
    return reg_get(upreg, identity, sizeof(lg_upshared_t), offsetof(lg_upshared_t, reg),
                   upshared_init, pid_tid);
}

void lg_upshared_ref(lg_upshared_t *u)
{
    atomic_fetch_add_explicit(&u->reg.refs, 1, memory_order_relaxed);
}

void lg_upshared_unref(lg_upshared_t *u)
{
    if (u == NULL || !reg_unref(upreg, &u->reg)) return;
    for (size_t i = 0; i < u->n_sessions; i++)
        SSL_SESSION_free(u->tls_sessions[i]);
    pthread_mutex_destroy(&u->addr_lock);
    lg_free(u->reg.identity);
    lg_free(u);
}

size_t lg_upshared_addrs(lg_upshared_t *u, lg_sockaddr_t *out, size_t max, uint64_t now_ms,
                         uint32_t max_age_ms, lg_addrs_age_t *age)
{
    pthread_mutex_lock(&u->addr_lock);
    size_t n = LG_MIN((size_t)u->n_addrs, max);
    memcpy(out, u->addrs, n * sizeof(*out));
    if (n == 0 || u->resolved_ms == 0) {
        *age = LG_ADDRS_NONE;
    } else if (u->fallback) {
        *age = LG_ADDRS_STALE;
    } else {
        /* Loop times of different workers: both from the monotonic clock, but one may be a
         * little behind the answer's. */
        *age = now_ms < u->resolved_ms || now_ms - u->resolved_ms < max_age_ms ? LG_ADDRS_FRESH
                                                                               : LG_ADDRS_STALE;
    }
    pthread_mutex_unlock(&u->addr_lock);
    return n;
}

bool lg_upshared_claim_refresh(lg_upshared_t *u, uint64_t now_ms, uint32_t *gen)
{
    pthread_mutex_lock(&u->addr_lock);
    bool claimed = u->refresh_ms == 0 ? now_ms >= u->retry_ms
                                      : now_ms > u->refresh_ms &&
                                            now_ms - u->refresh_ms >= LG_UPSTREAM_REFRESH_CLAIM_MS;
    if (claimed) {
        u->refresh_ms = now_ms != 0 ? now_ms : 1;
        *gen = u->addr_gen;
    }
    pthread_mutex_unlock(&u->addr_lock);
    return claimed;
}

void lg_upshared_refreshed(lg_upshared_t *u, uint32_t gen, const lg_sockaddr_t *addrs, size_t n,
                           bool failed, uint64_t now_ms)
{
    n = LG_MIN(n, (size_t)LG_UPSTREAM_ADDRS_MAX);
    pthread_mutex_lock(&u->addr_lock);
    /* A lookup that lost its claim (taken over after LG_UPSTREAM_REFRESH_CLAIM_MS) still stores
     * a good answer; only the claim's current holder clears it, and that is whichever ends
     * first: a harmless second lookup at worst. */
    u->refresh_ms = 0;
    if (n > 0 && gen == u->addr_gen) {
        memcpy(u->addrs, addrs, n * sizeof(*addrs));
        u->n_addrs = (uint8_t)n;
        u->resolved_ms = now_ms != 0 ? now_ms : 1;
        u->fallback = false;
    }
    /* A swap since the claim: the first dials look the name up themselves, no wait applies. */
    u->retry_ms =
        n == 0 && failed && gen == u->addr_gen ? now_ms + LG_UPSTREAM_REFRESH_RETRY_MS : 0;
    pthread_mutex_unlock(&u->addr_lock);
}

void lg_upshared_store(lg_upshared_t *u, const lg_sockaddr_t *addrs, size_t n, uint64_t now_ms)
{
    n = LG_MIN(n, (size_t)LG_UPSTREAM_ADDRS_MAX);
    pthread_mutex_lock(&u->addr_lock);
    memcpy(u->addrs, addrs, n * sizeof(*addrs));
    u->n_addrs = (uint8_t)n;
    u->resolved_ms = now_ms != 0 ? now_ms : 1;
    u->fallback = false;
    pthread_mutex_unlock(&u->addr_lock);
}

void lg_upshared_fallback(lg_upshared_t *u, uint64_t now_ms)
{
    pthread_mutex_lock(&u->addr_lock);
    if (u->n_addrs > 0 && u->resolved_ms == 0) {
        u->resolved_ms = now_ms != 0 ? now_ms : 1;
        u->fallback = true;
        if (u->refresh_ms == 0) u->retry_ms = now_ms + LG_UPSTREAM_REFRESH_RETRY_MS;
    }
    pthread_mutex_unlock(&u->addr_lock);
}

SSL_SESSION *lg_upshared_session(lg_upshared_t *u, const uint8_t tag[LG_UPSTREAM_TLS_TAG])
{
    SSL_SESSION *s = NULL;
    pthread_mutex_lock(&u->addr_lock);
    for (size_t i = u->n_sessions; i-- > 0;) {
        unsigned int len = 0;
        const unsigned char *ctx = SSL_SESSION_get0_id_context(u->tls_sessions[i], &len);
        if (len != LG_UPSTREAM_TLS_TAG || memcmp(ctx, tag, LG_UPSTREAM_TLS_TAG) != 0) continue;
        s = u->tls_sessions[i];
        if (SSL_SESSION_get_protocol_version(s) >= TLS1_3_VERSION) {
            /* RFC 8446 §C.4: a ticket is used once */
            memmove(u->tls_sessions + i, u->tls_sessions + i + 1,
                    (u->n_sessions - i - 1) * sizeof(s));
            u->tls_sessions[--u->n_sessions] = NULL;
        } else {
            SSL_SESSION_up_ref(s);
        }
        break;
    }
    pthread_mutex_unlock(&u->addr_lock);
    return s;
}

void lg_upshared_keep_session(lg_upshared_t *u, SSL_SESSION *s)
{
    if (s == NULL) return;
    if (SSL_SESSION_is_resumable(s) != 1) {
        SSL_SESSION_free(s);
        return;
    }
    SSL_SESSION *old = NULL;
    pthread_mutex_lock(&u->addr_lock);
    if (u->n_sessions == LG_UPSTREAM_SESSIONS) {
        old = u->tls_sessions[0];
        memmove(u->tls_sessions, u->tls_sessions + 1, (LG_UPSTREAM_SESSIONS - 1) * sizeof(s));
        u->n_sessions--;
    }
    u->tls_sessions[u->n_sessions++] = s;
    pthread_mutex_unlock(&u->addr_lock);
    SSL_SESSION_free(old);
}

static void mark_stale(void *arg, lg_upshared_t *u)
{
    (void)arg;
    pthread_mutex_lock(&u->addr_lock);
    u->resolved_ms = 0;
    u->retry_ms = 0;
    u->fallback = false;
    u->addr_gen++;
    pthread_mutex_unlock(&u->addr_lock);
}

void lg_upshared_stale_all(void)
{
    lg_upshared_each(mark_stale, NULL);
}

/* The figures of a route identity (one reference), created on first use; NULL: no memory. */
static lg_routestat_t *routestat_get(const char *identity)
{
    return reg_get(statreg, identity, sizeof(lg_routestat_t), offsetof(lg_routestat_t, reg), NULL,
                   NULL);
}

static void routestat_unref(lg_routestat_t *r)
{
    if (r == NULL || !reg_unref(statreg, &r->reg)) return;
    lg_free(r->reg.identity);
    lg_free(r);
}

void lg_upshared_each(void (*fn)(void *arg, lg_upshared_t *u), void *arg)
{
    pthread_mutex_lock(&upreg_lock);
    for (size_t b = 0; b < UPREG_BUCKETS; b++) {
        for (lg_regent_t *e = upreg[b]; e != NULL; e = e->next)
            fn(arg, LG_CONTAINER_OF(e, lg_upshared_t, reg));
    }
    pthread_mutex_unlock(&upreg_lock);
}

void lg_route_free(lg_route_t *r)
{
    for (size_t i = 0; i < r->n_upstreams; i++) {
        lg_free(r->upstreams[i].host);
        lg_free(r->upstreams[i].path);
        lg_free(r->upstreams[i].tls_name);
        SSL_CTX_free(r->upstreams[i].tls_ctx); /* NULL is a no-op */
        lg_upshared_unref(r->upstreams[i].shared);
    }
    lg_free(r->upstreams);
    routestat_unref(r->stat);
    lg_free(r->metrics_group);
    lg_free(r->st);
    lg_balancer_free(&r->balancer);
    for (size_t i = 0; i < r->n_cursors; i++)
        lg_pick_free(&r->cursors[i].pick);
    lg_free(r->cursors);
    lg_free(r->sni);
    for (size_t i = 0; i < r->n_ctx; i++)
        SSL_CTX_free(r->ctx[i]); /* NULL is a no-op */
    lg_free(r->ctx);
    lg_free(r->alpn);
}

void lg_route_destroy(lg_route_t *r)
{
    if (r == NULL) return;
    lg_route_free(r);
    lg_free(r);
}

/* A TCP upstream host: an IP literal goes into addr; a name is kept for the dial to resolve. */
static void upstream_addr(lg_upstream_t *up)
{
    memset(&up->addr, 0, sizeof(up->addr));
    const char *host = up->host;
    char v6[64];
    size_t hl = strlen(host);
    if (hl >= 2 && host[0] == '[' && host[hl - 1] == ']' && hl - 2 < sizeof(v6)) {
        memcpy(v6, host + 1, hl - 2);
        v6[hl - 2] = '\0';
        host = v6;
    }
    if (inet_pton(AF_INET, host, &up->addr.in4.sin_addr) == 1) {
        up->addr.in4.sin_family = AF_INET;
        up->addr.in4.sin_port = htons(up->port);
        up->literal = true;
    } else if (inet_pton(AF_INET6, host, &up->addr.in6.sin6_addr) == 1) {
        up->addr.in6.sin6_family = AF_INET6;
        up->addr.in6.sin6_port = htons(up->port);
        up->literal = true;
    }
}

/* A TLS upstream's client context and name. */
/* lg_upstream_t.tls_tag: SHA-256 over length-prefixed fields (no two settings hash alike). */
static int uptls_tag(const lg_src_uptls_t *t, const char *name, uint8_t out[LG_UPSTREAM_TLS_TAG])
{
    const void *parts[] = {name, t->ca.p, t->cert.present ? t->cert.chain.p : NULL,
                           t->cert.present ? t->cert.key.p : NULL};
    size_t lens[] = {strlen(name), t->ca.len, t->cert.present ? t->cert.chain.len : 0,
                     t->cert.present ? t->cert.key.len : 0};
    size_t total = 1;
    for (size_t i = 0; i < 4; i++)
        total += 8 + lens[i];
    uint8_t *buf = lg_malloc(total);
    if (buf == NULL) return -ENOMEM;
    size_t off = 0;
    buf[off++] = t->verify ? 1 : 0;
    for (size_t i = 0; i < 4; i++) {
        uint64_t n = lens[i];
        memcpy(buf + off, &n, 8);
        off += 8;
        if (n > 0) memcpy(buf + off, parts[i], n);
        off += n;
    }
    lg_sha256(buf, off, out);
    OPENSSL_cleanse(buf, total); /* it held the private key */
    lg_free(buf);
    return 0;
}

static int build_uptls(const lg_src_uptls_t *t, lg_upstream_t *up, const char *path,
                       lg_cfgerr_t *err)
{
    const char *name = t->servername != NULL ? t->servername : up->host;
    char bare[LG_HOST_MAX + 1];
    size_t n = strlen(name);
    if (n >= 2 && name[0] == '[' && name[n - 1] == ']' && n - 2 <= LG_HOST_MAX) {
        memcpy(bare, name + 1, n - 2); /* "[::1]": the address without brackets */
        bare[n - 2] = '\0';
        name = bare;
    }
    if (strlen(name) > LG_HOST_MAX) {
        return RANGE(err, "%s.tls.servername must be at most %d bytes", path, LG_HOST_MAX);
    }
    up->tls_name = dup_str(name);
    if (up->tls_name == NULL) return RANGE(err, "%s.tls: out of memory", path);
    up->tls_verify = t->verify;
    if (uptls_tag(t, name, up->tls_tag) != 0) return RANGE(err, "%s.tls: out of memory", path);
    lg_tls_material_t m;
    memset(&m, 0, sizeof(m));
    if (t->ca.len > 0) {
        m.ca = t->ca.p;
        m.ca_len = t->ca.len;
    }
    if (t->cert.present) {
        m.cert = t->cert.chain.p;
        m.cert_len = t->cert.chain.len;
        m.key = t->cert.key.p;
        m.key_len = t->cert.key.len;
    }
    char why[256];
    int fault = LG_TLS_FAULT_CA;
    up->tls_ctx = lg_tls_client_ctx(&m, t->verify, why, sizeof(why), &fault);
    if (up->tls_ctx == NULL) {
        return RANGE(err, "%s.tls.%s: %s", path, fault == LG_TLS_FAULT_CA ? "ca" : "cert", why);
    }
    return 0;
}

static int build_upstream(const lg_src_upstream_t *s, lg_upstream_t *up, const char *path,
                          lg_cfgerr_t *err)
{
    if (check_range(err, path, "weight", s->weight, 1, LG_BALANCER_WEIGHT_MAX) != 0) return -1;
    up->weight = (uint32_t)s->weight;
    char identity[LG_HOST_MAX + LG_UDS_PATH_MAX + 64];
    uint32_t pid = 0, tid = 0;
    if (s->kind == LG_UPSTREAM_TCP) {
        up->kind = LG_UPSTREAM_TCP;
        if (s->host == NULL || s->host[0] == '\0' || strlen(s->host) > LG_HOST_MAX) {
            return RANGE(err, "%s.host must be 1-%d bytes", path, LG_HOST_MAX);
        }
        if (check_range(err, path, "port", s->port, 1, 65535) != 0) return -1;
        if (s->ip_affinity || s->pid != 0 || s->tid != 0) {
            return RANGE(err, "%s: ipAffinity, pid and tid apply to uds upstreams only", path);
        }
        up->host = dup_str(s->host);
        if (up->host == NULL) return RANGE(err, "%s: out of memory", path);
        up->port = (uint16_t)s->port;
        upstream_addr(up);
        snprintf(identity, sizeof(identity), "tcp %s:%u", up->host, up->port);
        if (s->tls.present && build_uptls(&s->tls, up, path, err) != 0) return -1;
    } else if (s->kind == LG_UPSTREAM_UDS) {
        up->kind = LG_UPSTREAM_UDS;
        if (s->tls.present) return RANGE(err, "%s.tls applies to tcp upstreams only", path);
        if (s->path == NULL || s->path[0] == '\0' || strlen(s->path) > LG_UDS_PATH_MAX) {
            return RANGE(err, "%s.path must be 1-%d bytes", path, LG_UDS_PATH_MAX);
        }
        if (check_range(err, path, "pid", s->pid, 0, LG_PID_MAX) != 0 ||
            check_range(err, path, "tid", s->tid, 0, LG_PID_MAX) != 0) {
            return -1;
        }
        if ((s->pid == 0) != (s->tid == 0)) {
            return RANGE(err,
                         "%s.pid and %s.tid go together (CPU is read from "
                         "/proc/<pid>/task/<tid>/stat)",
                         path, path);
        }
        if (s->ip_affinity && check_range(err, path, "ipAffinityTtlMs", s->ip_affinity_ttl_ms, 1,
                                          LG_TIMEOUT_MAX_MS) != 0) {
            return -1;
        }
        up->path = dup_str(s->path);
        if (up->path == NULL) return RANGE(err, "%s: out of memory", path);
        pid = (uint32_t)s->pid;
        tid = (uint32_t)s->tid;
        if (pid != 0) {
            snprintf(identity, sizeof(identity), "uds %s %u/%u", up->path, pid, tid);
        } else {
            snprintf(identity, sizeof(identity), "uds %s", up->path);
        }
    } else {
        return RANGE(err, "%s.kind must be 'tcp' or 'uds'", path);
    }
    up->shared = upshared_get(identity, pid, tid);
    if (up->shared == NULL) return RANGE(err, "%s: out of memory", path);
    return 0;
}

/* A seed for a worker's cursor: distinct per cursor and per build. */
static uint64_t cursor_seed(void)
{
    static atomic_uint_fast64_t counter;
    uint64_t z = atomic_fetch_add_explicit(&counter, 1, memory_order_relaxed) +
                 (uint64_t)time(NULL) * 0x9e3779b97f4a7c15ull;
    z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ull;
    z = (z ^ (z >> 27)) * 0x94d049bb133111ebull;
    return z ^ (z >> 31);
}

/* Balancing, failover and PROXY protocol of a route or decision with upstreams. */
static int build_balancing(const lg_src_route_t *s, lg_route_t *route, const lg_config_t *conf,
                           const char *path, lg_cfgerr_t *err)
{
    size_t n = route->n_upstreams;
    if (s->balance < LG_BALANCE_LEASTCONN || s->balance > LG_BALANCE_HASH) {
        return RANGE(err, "%s.balance must be 'leastConn', 'roundRobin', 'random2' or 'hash'",
                     path);
    }
    if (check_range(err, path, "connectTimeoutMs", s->connect_timeout_ms, 1,
                    LG_CONNECT_TIMEOUT_MAX) != 0 ||
        check_range(err, path, "retries", s->retries, 0, LG_RETRIES_MAX) != 0 ||
        check_range(err, path, "maxFails", s->max_fails, 0, LG_HEALTH_MAX_FAILS_MAX) != 0 ||
        check_range(err, path, "failTimeoutMs", s->fail_timeout_ms, 1,
                    LG_HEALTH_FAIL_TIMEOUT_MAX_MS) != 0) {
        return -1;
    }
    if (s->proxy_protocol < 0 || s->proxy_protocol > 2) {
        return RANGE(err, "%s.proxyProtocol must be 'none', 'v1' or 'v2'", path);
    }
    if (s->forward_fingerprint && s->proxy_protocol != 2) {
        return RANGE(err, "%s.forwardFingerprint needs proxyProtocol 'v2' (the TLVs carry it)",
                     path);
    }
    route->connect_timeout_ms = (uint32_t)s->connect_timeout_ms;
    route->retries = (uint32_t)s->retries;
    route->health.max_fails = (uint32_t)s->max_fails;
    route->health.fail_timeout_ms = (uint32_t)s->fail_timeout_ms;
    route->proxy_protocol = (uint8_t)s->proxy_protocol;
    route->forward_fingerprint = s->forward_fingerprint;
    if (n == 0) return 0;
    for (size_t j = 0; j < n; j++) {
        if (s->upstreams[j].ip_affinity) {
            route->affinity = true;
            route->affinity_ttl_ms =
                LG_MAX(route->affinity_ttl_ms, (uint32_t)s->upstreams[j].ip_affinity_ttl_ms);
        }
    }
    route->affinity_scope = route->sni != NULL ? fnv1a(route->sni) + 1 : 0;
    route->st = lg_calloc(n, sizeof(*route->st));
    uint32_t *weights = lg_calloc(n, sizeof(*weights));
    uint64_t *keys = lg_calloc(n, sizeof(*keys));
    int rc = -1;
    if (route->st == NULL || weights == NULL || keys == NULL) {
        RANGE(err, "%s: out of memory", path);
        goto out;
    }
    for (size_t j = 0; j < n; j++) {
        lg_upshared_t *u = route->upstreams[j].shared;
        for (size_t k = 0; k < j; k++) {
            if (route->upstreams[k].shared == u) {
                RANGE(err,
                      "%s.upstreams[%zu] is the same upstream as %s.upstreams[%zu] (use weight "
                      "to give it a larger share)",
                      path, j, path, k);
                goto out;
            }
        }
        route->st[j] = &u->st;
        weights[j] = route->upstreams[j].weight;
        keys[j] = u->reg.key;
    }
    int brc = lg_balancer_build(&route->balancer, s->balance, weights, keys, n);
    if (brc != 0) {
        RANGE(err, "%s: %s", path, brc == -ENOMEM ? "out of memory" : "invalid balancing");
        goto out;
    }
    route->cursors = lg_calloc(conf->worker_threads, sizeof(*route->cursors));
    if (route->cursors == NULL) {
        RANGE(err, "%s: out of memory", path);
        goto out;
    }
    for (size_t w = 0; w < conf->worker_threads; w++) {
        route->n_cursors = w + 1;
        if (lg_pick_init(&route->cursors[w].pick, &route->balancer, cursor_seed()) != 0) {
            RANGE(err, "%s: out of memory", path);
            goto out;
        }
    }
    rc = 0;
out:
    lg_free(weights);
    lg_free(keys);
    return rc;
}

/* The ALPN list in wire format (RFC 7301 §3.1): 1..255-byte names, each length-prefixed. */
static int build_alpn(const lg_src_strings_t *list, lg_route_t *route, const char *path,
                      lg_cfgerr_t *err)
{
    if (list->n > LG_ALPN_MAX_PROTOCOLS) {
        return RANGE(err, "%s.alpn must have at most %d entries", path, LG_ALPN_MAX_PROTOCOLS);
    }
    if (list->n == 0) return 0;
    uint8_t *wire = lg_malloc(list->n * (LG_ALPN_MAX_LEN + 1));
    if (wire == NULL) return RANGE(err, "%s.alpn: out of memory", path);
    size_t off = 0;
    for (size_t i = 0; i < list->n; i++) {
        size_t l = strlen(list->v[i]);
        if (l == 0 || l > LG_ALPN_MAX_LEN) {
            lg_free(wire);
            return RANGE(err, "%s.alpn[%zu] must be 1-%d bytes", path, i, LG_ALPN_MAX_LEN);
        }
        wire[off++] = (uint8_t)l;
        memcpy(wire + off, list->v[i], l);
        off += l;
    }
    route->alpn = wire;
    route->alpn_len = off;
    return 0;
}

/* The fields a route shares with a decision: upstreams and how they are used, terminateTls,
 * alpn. */
static int build_route_body(const lg_src_route_t *s, lg_route_t *route, const lg_config_t *conf,
                            const char *path, lg_cfgerr_t *err)
{
    route->terminate_tls = s->terminate_tls;
    if (build_alpn(&s->alpn, route, path, err) != 0) return -1;
    if (s->n_upstreams > LG_MAX_UPSTREAMS) {
        return RANGE(err, "%s.upstreams must have at most %d entries", path, LG_MAX_UPSTREAMS);
    }
    if (s->n_upstreams > 0) {
        route->upstreams = lg_calloc(s->n_upstreams, sizeof(lg_upstream_t));
        if (route->upstreams == NULL) return RANGE(err, "%s: out of memory", path);
    }
    for (size_t j = 0; j < s->n_upstreams; j++) {
        char upath[2 * PATH_MAX_LEN];
        snprintf(upath, sizeof(upath), "%s.upstreams[%zu]", path, j);
        route->n_upstreams = j + 1; /* strings of entry j are owned from here on */
        if (build_upstream(&s->upstreams[j], &route->upstreams[j], upath, err) != 0) return -1;
        if (route->upstreams[j].tls_ctx != NULL && !s->terminate_tls) {
            return RANGE(err,
                         "%s.tls needs terminateTls (a passthrough route forwards the client's "
                         "own TLS)",
                         upath);
        }
        if (route->upstreams[j].tls_ctx != NULL && s->proxy_protocol != 0) {
            return RANGE(err, "%s.proxyProtocol with a TLS upstream is not supported yet", path);
        }
        if (route->upstreams[j].tls_ctx != NULL) route->tls_upstreams = true;
    }
    return build_balancing(s, route, conf, path, err);
}

/* ---- TLS contexts ---------------------------------------------------------------------------- */

static void material_of(const lg_src_cert_t *cert, const lg_src_mtls_t *mtls, lg_tls_material_t *m)
{
    memset(m, 0, sizeof(*m));
    if (cert != NULL && cert->present) {
        m->cert = cert->chain.p;
        m->cert_len = cert->chain.len;
        m->key = cert->key.p;
        m->key_len = cert->key.len;
    }
    if (mtls != NULL && mtls->present) {
        m->ca = mtls->ca.p;
        m->ca_len = mtls->ca.len;
        m->require_client_cert = mtls->require_client_cert;
    }
}

/*
 * The context for (cert, mtls), recorded in `next`; without a cert there is none (*out = NULL)
 * and only the client CA, if any, is checked. Errors name the option whose material failed:
 * `mpath` for the CA, else `cpath`.
 */
static int material_context(const lg_src_cert_t *cert, const lg_src_mtls_t *mtls,
                            lg_tls_cache_t *cur, lg_tls_cache_t *next, const char *cpath,
                            const char *mpath, SSL_CTX **out, lg_cfgerr_t *err)
{
    char why[256];
    lg_tls_material_t m;
    material_of(cert, mtls, &m);
    *out = NULL;
    if (m.cert == NULL) {
        if (m.ca != NULL && lg_tls_check_ca(&m, why, sizeof(why)) != 0) {
            return RANGE(err, "%s: %s", mpath, why);
        }
        return 0;
    }
    int fault = LG_TLS_FAULT_CERT;
    *out = lg_tls_ctx_get(cur, next, &m, why, sizeof(why), &fault);
    if (*out == NULL) return RANGE(err, "%s: %s", fault == LG_TLS_FAULT_CA ? mpath : cpath, why);
    return 0;
}

/*
 * The contexts of a route, one per tls listener: the route's cert or the listener's defaultCert,
 * and the route's mtls or the listener's. A terminating route (`required`) must have a cert for
 * every tls listener; for another route (suspended: its decision may terminate; or one that
 * carries cert/mtls) a listener without any cert gets no context, and a client CA found there is
 * still checked, so bad material is refused when the config is applied whether or not a
 * connection ever uses it. `only` >= 0 limits the work to that listener (a decision).
 */
static int route_contexts(const lg_src_route_t *r, const lg_src_listener_t *listeners,
                          const lg_config_t *conf, long only, lg_route_t *route,
                          lg_tls_cache_t *cur, lg_tls_cache_t *next, const char *path,
                          bool required, lg_cfgerr_t *err)
{
    route->ctx = lg_calloc(conf->n_listeners, sizeof(SSL_CTX *));
    if (route->ctx == NULL) return RANGE(err, "%s: out of memory", path);
    route->n_ctx = conf->n_listeners;
    for (size_t i = 0; i < conf->n_listeners; i++) {
        if (conf->listeners[i].kind != LG_LISTENER_TLS || (only >= 0 && (size_t)only != i)) {
            continue;
        }
        const lg_src_listener_t *l = only >= 0 ? listeners : &listeners[i];
        char lpath[PATH_MAX_LEN], cpath[PATH_MAX_LEN + 16] = "", mpath[PATH_MAX_LEN + 16] = "";
        snprintf(lpath, sizeof(lpath), "listeners[%zu]", i);
        bool has_rcert = r->cert.present, has_lcert = l->default_cert.present;
        bool has_rmtls = r->mtls.present, has_lmtls = l->mtls.present;
        if (!has_rcert && !has_lcert && required) {
            return RANGE(err,
                         "%s.cert is required: terminateTls needs a cert, or a defaultCert on %s",
                         path, lpath);
        }
        if (has_rcert || has_lcert) {
            snprintf(cpath, sizeof(cpath), "%s.%s", has_rcert ? path : lpath,
                     has_rcert ? "cert" : "defaultCert");
        }
        if (has_rmtls || has_lmtls) {
            snprintf(mpath, sizeof(mpath), "%s.mtls", has_rmtls ? path : lpath);
        }
        const lg_src_cert_t *cert = has_rcert ? &r->cert : has_lcert ? &l->default_cert : NULL;
        const lg_src_mtls_t *mtls = has_rmtls ? &r->mtls : has_lmtls ? &l->mtls : NULL;
        if (material_context(cert, mtls, cur, next, cpath, mpath, &route->ctx[i], err) != 0) {
            return -1;
        }
    }
    return 0;
}

/*
 * A tls listener's defaultCert (with its mtls) is checked when the config is applied, even when
 * no route uses it yet (a later decision may), so a bad one is refused now. Its context goes into
 * `next`, where decisions and routes find it again.
 */
static int listener_context_check(const lg_src_listener_t *l, lg_tls_cache_t *cur,
                                  lg_tls_cache_t *next, const char *lpath, lg_cfgerr_t *err)
{
    char cpath[PATH_MAX_LEN + 16], mpath[PATH_MAX_LEN + 16];
    snprintf(cpath, sizeof(cpath), "%s.defaultCert", lpath);
    snprintf(mpath, sizeof(mpath), "%s.mtls", lpath);
    SSL_CTX *ctx = NULL;
    int rc = material_context(&l->default_cert, &l->mtls, cur, next, cpath, mpath, &ctx, err);
    SSL_CTX_free(ctx); /* `next` keeps its own reference (NULL: no cert, nothing to free) */
    return rc;
}

/* ---- protection ----------------------------------------------------------------------------- */

static void protection_free(lg_protection_t *p)
{
    lg_cidr_set_free(&p->allow);
    lg_cidr_set_free(&p->block);
    lg_ja_set_free(&p->ja3);
    lg_ja_set_free(&p->ja4);
    strings_free(&p->block_text);
}

static int build_bucket(const lg_src_bucket_t *b, uint32_t period_ms, lg_limit_bucket_t *out,
                        const char *path, const char *key, const char *count_key, lg_cfgerr_t *err)
{
    memset(out, 0, sizeof(*out));
    if (!b->present) return 0;
    if (!(b->count > 0 && b->count <= LG_RATE_MAX) || !(b->burst >= 1 && b->burst <= LG_RATE_MAX)) {
        return RANGE(err, "%s.%s: %s must be a number > 0 and burst >= 1 (at most %d)", path, key,
                     count_key, LG_RATE_MAX);
    }
    int rc = lg_limit_bucket_init(out, b->count, period_ms, b->burst);
    if (rc != 0) {
        return RANGE(err, "%s.%s: %s", path, key,
                     rc == -ERANGE ? "burst takes too long to refill (over a century)"
                                   : "invalid rate or burst");
    }
    return 0;
}

static int build_ja_set(const lg_src_strings_t *list, lg_ja_set_t *set, const char *path,
                        const char *key, lg_cfgerr_t *err)
{
    int rc = lg_ja_set_build(set, (const char *const *)list->v, list->n);
    if (rc == -EINVAL) {
        return RANGE(err, "%s.%s[%zu] is not a %s fingerprint", path, key, set->bad,
                     strcmp(key, "ja3Blocklist") == 0 ? "JA3" : "JA4");
    }
    if (rc == -E2BIG) {
        return RANGE(err, "%s.%s must have at most %d entries", path, key, LG_JA_SET_MAX);
    }
    if (rc != 0) return RANGE(err, "%s.%s: out of memory", path, key);
    return 0;
}

static int copy_strings(const lg_src_strings_t *from, lg_src_strings_t *to)
{
    memset(to, 0, sizeof(*to));
    if (from->n == 0) return 0;
    to->v = lg_calloc(from->n, sizeof(char *));
    if (to->v == NULL) return -ENOMEM;
    for (size_t i = 0; i < from->n; i++) {
        to->v[i] = dup_str(from->v[i]);
        if (to->v[i] == NULL) return -ENOMEM;
        to->n = i + 1;
    }
    return 0;
}

/* A listener's protection as given → compiled. */
static int build_protection(const lg_src_protection_t *s, lg_protection_t *p, const char *path,
                            lg_cfgerr_t *err)
{
    if (check_range(err, path, "tlsHandshakeTimeoutMs", s->tls_handshake_timeout_ms, 1,
                    LG_HANDSHAKE_TIMEOUT_MAX) != 0 ||
        check_range(err, path, "maxConcurrentPerIp", s->max_concurrent_per_ip, 0,
                    LG_CONNECTIONS_MAX) != 0 ||
        check_range(err, path, "ipv6Prefix", s->ipv6_prefix, 1, 128) != 0 ||
        (s->penalty_box && check_range(err, path, "penaltyBox.durationMs", s->penalty_box_ms, 1,
                                       LG_TIMEOUT_MAX_MS) != 0)) {
        return -1;
    }
    p->tls_handshake_timeout_ms = (uint32_t)s->tls_handshake_timeout_ms;
    p->ipv6_prefix = (uint8_t)s->ipv6_prefix;
    p->require_sni = s->require_sni;
    p->rules.max_concurrent = (uint32_t)s->max_concurrent_per_ip;
    p->rules.penalty_box_ms = s->penalty_box ? (uint32_t)s->penalty_box_ms : 0;
    if (build_bucket(&s->rate, 1000, &p->rules.rate, path, "rateLimit", "connectionsPerSecond",
                     err) != 0 ||
        build_bucket(&s->sustained, 60000, &p->rules.sustained, path, "sustained",
                     "connectionsPerMinute", err) != 0) {
        return -1;
    }
    p->track = p->rules.rate.interval_ns != 0 || p->rules.sustained.interval_ns != 0 ||
               p->rules.max_concurrent != 0 || p->rules.penalty_box_ms != 0;
    if (build_cidr_set(&s->allowlist, &p->allow, path, "allowlist", err) != 0 ||
        build_cidr_set(&s->blocklist, &p->block, path, "blocklist", err) != 0 ||
        build_ja_set(&s->ja3_blocklist, &p->ja3, path, "ja3Blocklist", err) != 0 ||
        build_ja_set(&s->ja4_blocklist, &p->ja4, path, "ja4Blocklist", err) != 0) {
        return -1;
    }
    if (copy_strings(&s->blocklist, &p->block_text) != 0) {
        return RANGE(err, "%s: out of memory", path);
    }
    return 0;
}

/* ---- snapshots --------------------------------------------------------------------------------
 */

int lg_snapshot_build(const lg_src_t *src, const lg_config_t *conf, lg_tls_cache_t *cur,
                      lg_tls_cache_t *next, lg_snapshot_t **out, lg_cfgerr_t *err)
{
    *out = NULL;
    if (src->n_listeners != conf->n_listeners) {
        return RANGE(err, "listeners cannot change after the proxy is created");
    }
    if (src->n_routes > LG_ROUTER_MAX_ROUTES) {
        return RANGE(err, "routes must have at most %d entries", LG_ROUTER_MAX_ROUTES);
    }
    lg_snapshot_t *s = lg_calloc(1, sizeof(*s));
    if (s == NULL) return RANGE(err, "config: out of memory");
    atomic_init(&s->refs, 1);
    for (size_t i = 0; i < src->n_listeners; i++) {
        const lg_src_listener_t *l = &src->listeners[i];
        char lpath[PATH_MAX_LEN], ppath[PATH_MAX_LEN + 16];
        snprintf(lpath, sizeof(lpath), "listeners[%zu]", i);
        snprintf(ppath, sizeof(ppath), "%s.protection", lpath);
        s->n_protection = i + 1; /* protection[i] is owned from here on */
        if (build_protection(&l->protection, &s->protection[i], ppath, err) != 0) goto fail;
        if (conf->listeners[i].kind == LG_LISTENER_TLS &&
            listener_context_check(l, cur, next, lpath, err) != 0) {
            goto fail;
        }
    }
    if (src->n_routes > 0) {
        s->routes = lg_calloc(src->n_routes, sizeof(lg_route_t));
        if (s->routes == NULL) {
            RANGE(err, "routes: out of memory");
            goto fail;
        }
    }
    for (size_t i = 0; i < src->n_routes; i++) {
        const lg_src_route_t *r = &src->routes[i];
        lg_route_t *route = &s->routes[i];
        char path[PATH_MAX_LEN];
        snprintf(path, sizeof(path), "routes[%zu]", i);
        s->n_routes = i + 1;
        if (r->sni == NULL || check_range(err, path, "suspendTimeoutMs", r->suspend_timeout_ms, 1,
                                          LG_TIMEOUT_MAX_MS) != 0) {
            if (r->sni == NULL) RANGE(err, "%s.sni is missing", path);
            goto fail;
        }
        route->sni = dup_str(r->sni);
        if (route->sni == NULL) {
            RANGE(err, "%s: out of memory", path);
            goto fail;
        }
        route->suspended = r->suspended;
        route->suspend_timeout_ms = (uint32_t)r->suspend_timeout_ms;
        if (build_flow_sched(r->weight, r->flow_rate, r->flow_rate_set, conf->sched_kind, path,
                             err) != 0) {
            goto fail;
        }
        route->weight = (uint16_t)r->weight;
        route->flow_rate_set = r->flow_rate_set;
        route->flow_rate = r->flow_rate;
        if (r->metrics_group != NULL &&
            (strlen(r->metrics_group) == 0 || strlen(r->metrics_group) > LG_METRICS_GROUP_MAX)) {
            RANGE(err, "%s.metricsGroup must be 1-%d bytes", path, LG_METRICS_GROUP_MAX);
            goto fail;
        }
        char ident[LG_NAME_MAX + LG_METRICS_GROUP_MAX + 16];
        snprintf(ident, sizeof(ident), "%s %s", r->metrics_group ? "group" : "sni",
                 r->metrics_group ? r->metrics_group : route->sni);
        route->stat = routestat_get(ident);
        route->metrics_group = r->metrics_group ? dup_str(r->metrics_group) : NULL;
        if (route->stat == NULL || (r->metrics_group != NULL && route->metrics_group == NULL)) {
            RANGE(err, "%s: out of memory", path);
            goto fail;
        }
        if (r->max_connections_per_second > 0) {
            lg_src_bucket_t b = {true, r->max_connections_per_second, r->burst};
            if (build_bucket(&b, 1000, &route->rate, path, "maxConnectionsPerSecond",
                             "maxConnectionsPerSecond", err) != 0) {
                goto fail;
            }
        }
        if (build_route_body(r, route, conf, path, err) != 0) goto fail;
        if ((r->terminate_tls || r->suspended || r->cert.present || r->mtls.present) &&
            route_contexts(r, src->listeners, conf, -1, route, cur, next, path, r->terminate_tls,
                           err) != 0) {
            goto fail;
        }
    }

    const char **patterns = NULL;
    if (src->n_routes > 0) {
        patterns = lg_calloc(src->n_routes, sizeof(char *));
        if (patterns == NULL) {
            RANGE(err, "routes: out of memory");
            goto fail;
        }
        for (size_t i = 0; i < src->n_routes; i++)
            patterns[i] = s->routes[i].sni;
    }
    size_t bad = 0;
    int rc = lg_router_build(&s->router, patterns, src->n_routes, &bad);
    lg_free(patterns);
    if (rc == -EEXIST) {
        RANGE(err, "routes[%zu].sni '%s' duplicates an earlier route", bad, s->routes[bad].sni);
        goto fail;
    } else if (rc == -EINVAL) {
        RANGE(err, "routes[%zu].sni '%.64s' is not a valid name, *.suffix or ''", bad,
              bad < s->n_routes ? s->routes[bad].sni : "");
        goto fail;
    } else if (rc != 0) {
        RANGE(err, "routes: out of memory");
        goto fail;
    }
    *out = s;
    return 0;
fail:
    lg_snapshot_destroy(s);
    return -1;
}

int lg_decision_build(const lg_src_route_t *d, const lg_src_listener_t *l, const lg_config_t *conf,
                      unsigned listener, bool route_tls, lg_tls_cache_t *cache, lg_route_t **out,
                      lg_cfgerr_t *err)
{
    *out = NULL;
    lg_route_t *rt = lg_calloc(1, sizeof(*rt));
    if (rt == NULL) return RANGE(err, "decision: out of memory");
    if (build_route_body(d, rt, conf, "decision", err) != 0) goto fail;
    if (rt->n_upstreams == 0) {
        RANGE(err, "decision.upstreams must have at least one entry");
        goto fail;
    }
    if (listener >= conf->n_listeners) {
        RANGE(err, "decision: no listener %u", listener);
        goto fail;
    }
    if (rt->terminate_tls && (d->cert.present || d->mtls.present || !route_tls)) {
        /* Contexts for the connection's listener only; cached ones are reused (not recorded: the
         * cache follows the route table, and a decision's material may be one-off). */
        if (route_contexts(d, l, conf, (long)listener, rt, cache, NULL, "decision", true, err) !=
            0) {
            goto fail;
        }
    }
    *out = rt;
    return 0;
fail:
    lg_route_destroy(rt);
    return -1;
}

void lg_snapshot_destroy(lg_snapshot_t *s)
{
    if (s == NULL) return;
    for (size_t i = 0; i < s->n_routes; i++)
        lg_route_free(&s->routes[i]);
    lg_free(s->routes);
    lg_router_free(&s->router);
    for (size_t i = 0; i < s->n_protection; i++)
        protection_free(&s->protection[i]);
    if (s->slot != NULL) atomic_fetch_sub_explicit(&s->slot->live, 1, memory_order_relaxed);
    lg_free(s);
}

lg_snapshot_t *lg_snapshot_ref(lg_snapshot_t *s)
{
    if (s != NULL) atomic_fetch_add_explicit(&s->refs, 1, memory_order_relaxed);
    return s;
}

void lg_snapshot_unref(lg_snapshot_t *s)
{
    if (s == NULL) return;
    /* acq_rel: every use of the snapshot by the dropping thread happens before the free. */
    if (atomic_fetch_sub_explicit(&s->refs, 1, memory_order_acq_rel) == 1) lg_snapshot_destroy(s);
}

/* ---- the publication slot ---------------------------------------------------------------------
 */

void lg_snapslot_init(lg_snapslot_t *slot, lg_snapshot_t *snap)
{
    pthread_mutex_init(&slot->lock, NULL);
    snap->slot = slot;
    snap->generation = ++slot->next_gen;
    atomic_init(&slot->live, 1);
    slot->snap = snap;
    atomic_init(&slot->gen, snap->generation);
}

void lg_snapslot_swap(lg_snapslot_t *slot, lg_snapshot_t *snap)
{
    snap->slot = slot;
    atomic_fetch_add_explicit(&slot->live, 1, memory_order_relaxed);
    pthread_mutex_lock(&slot->lock);
    lg_snapshot_t *old = slot->snap;
    snap->generation = ++slot->next_gen;
    slot->snap = snap;
    atomic_store_explicit(&slot->gen, snap->generation, memory_order_release);
    pthread_mutex_unlock(&slot->lock);
    lg_snapshot_unref(old);
}

void lg_snapslot_destroy(lg_snapslot_t *slot)
{
    lg_snapshot_unref(slot->snap);
    slot->snap = NULL;
    pthread_mutex_destroy(&slot->lock);
}

lg_snapshot_t *lg_snapslot_get(lg_snapslot_t *slot, lg_snapshot_t **held, uint64_t *held_gen)
{
    uint64_t gen = atomic_load_explicit(&slot->gen, memory_order_acquire);
    if (LG_UNLIKELY(*held == NULL || gen != *held_gen)) {
        pthread_mutex_lock(&slot->lock);
        lg_snapshot_t *s = lg_snapshot_ref(slot->snap);
        pthread_mutex_unlock(&slot->lock);
        lg_snapshot_unref(*held);
        *held = s;
        *held_gen = s->generation;
    }
    return *held;
}
