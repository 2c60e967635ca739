/*
 * lg_engine.c — engine lifecycle: starting and stopping workers, publishing config snapshots,
 * decisions for held connections, and the metrics snapshot (see lg_engine.h).
 */
#include "lg_engine.h"
#include "lg_conn.h"
#include "lg_cpu.h"
#include "lg_listener.h"
#include "lg_suspend.h"
#include "lg_worker.h"

#include <fcntl.h>
#include <string.h>
#include <unistd.h>

struct lg_engine_s {
    lg_config_t conf; /* fixed for the engine's life; owned */
    int state;        /* LG_ENGINE_*; written on the JS thread only */
    lg_snapslot_t slot;
    lg_tls_cache_t tls_cache; /* contexts of the current snapshot, for reuse (JS thread only) */
    lg_events_t events;
    lg_limit_t limit;       /* per-IP protection state, shared by the workers */
    lg_blocklog_t blocklog; /* 'blocked' event coalescing, shared by the workers */
    lg_affinity_t affinity; /* client IP affinity, shared; set up by the first route using it */
    bool cpu;               /* holds a use of the CPU sampler (a route named a pid/tid) */
    bool limit_ready, blocklog_ready;
    lg_lis_state_t lis[LG_MAX_LISTENERS];
    atomic_uint pipes; /* the workers' splice pipes (lg_wctx_t.pipes) */
    lg_bound_t bound[LG_MAX_LISTENERS];
    lg_lsocks_t socks[LG_MAX_LISTENERS]; /* listen sockets while running (JS thread only) */
    lg_worker_t *workers;                /* conf.worker_threads of them */
    lg_pending_t *pending[LG_MAX_WORKERS];
    unsigned n_workers;
    unsigned n_started; /* threads created */
};

int lg_engine_create(lg_config_t *conf, lg_snapshot_t *snap, lg_tls_cache_t *cache,
                     lg_engine_t **out)
{
    *out = NULL;
    lg_engine_t *e = lg_calloc(1, sizeof(*e));
    lg_worker_t *workers = lg_calloc(conf->worker_threads, sizeof(lg_worker_t));
    if (e == NULL || workers == NULL) {
        lg_free(e);
        lg_free(workers);
        lg_config_free(conf);
        lg_snapshot_destroy(snap);
        lg_tls_cache_free(cache);
        return -ENOMEM;
    }
    e->conf = *conf;
    memset(conf, 0, sizeof(*conf));
    e->tls_cache = *cache;
    memset(cache, 0, sizeof(*cache));
    e->workers = workers;
    e->n_workers = 0;
    lg_snapslot_init(&e->slot, snap);
    uint8_t seed[16];
    int rc = lg_limit_init(&e->limit, e->conf.max_tracked_ips);
    if (rc == 0) {
        e->limit_ready = true;
        if (uv_random(NULL, NULL, seed, sizeof(seed), 0, NULL) == 0) lg_limit_seed(&e->limit, seed);
        rc = lg_blocklog_init(&e->blocklog);
        e->blocklog_ready = rc == 0;
    }
    if (rc != 0) {
        lg_engine_destroy(e);
        return rc;
    }
    e->n_workers = e->conf.worker_threads;
    rc = lg_engine_prepare(e, snap->routes, snap->n_routes);
    if (rc != 0) {
        lg_engine_destroy(e);
        return rc;
    }
    lg_worker_env_t env = {&e->conf,  &e->events,   e->lis,       &e->slot,
                           &e->limit, &e->blocklog, &e->affinity, &e->pipes};
    for (unsigned i = 0; i < e->n_workers; i++) {
        rc = lg_worker_init(&e->workers[i], &env, i);
        if (rc != 0) {
            e->n_workers = i;
            lg_engine_destroy(e);
            return rc;
        }
        e->pending[i] = &e->workers[i].pending;
    }
    *out = e;
    return 0;
}

static void close_fds(int *fds, size_t n)
{
    for (size_t i = 0; i < n; i++) {
        if (fds[i] >= 0) close(fds[i]);
        fds[i] = -1;
    }
}

/* Close the engine's own copies of its listen sockets (JS thread). Idempotent. */
static void close_socks(lg_engine_t *e)
{
    for (size_t i = 0; i < e->conf.n_listeners; i++)
        lg_lsocks_close(&e->socks[i]);
}

/* Worker k's listen fds: duplicates of sockets m ≡ k (mod workers) of each listener. */
static int worker_fds(const lg_engine_t *e, unsigned k, int *fds, unsigned *index, size_t *n)
{
    *n = 0;
    for (size_t i = 0; i < e->conf.n_listeners; i++) {
        for (unsigned m = k; m < e->socks[i].n; m += e->n_workers) {
            fds[*n] = fcntl(e->socks[i].fds[m], F_DUPFD_CLOEXEC, 0);
            if (fds[*n] < 0) return -errno;
            index[(*n)++] = (unsigned)i;
        }
    }
    return 0;
}

int lg_engine_start(lg_engine_t *e, lg_post_fn post, void *post_ctx, const lg_engine_t *from,
                    int *bad_listener, char *warn, size_t warn_size)
{
    *bad_listener = -1;
    warn[0] = '\0';
    if (e->state != LG_ENGINE_NEW) return -EALREADY;
    if (from != NULL && from->state != LG_ENGINE_RUNNING) return -EINVAL;
    lg_listener_raise_nofile(&e->conf, warn, warn_size);
    e->events.post = post;
    e->events.post_ctx = post_ctx;
    size_t nl = e->conf.n_listeners;
    lg_handover_t ho = {0};
    if (from != NULL) {
        ho.owner = from;
        ho.bound = from->bound;
        ho.socks = from->socks;
        ho.n = from->conf.n_listeners;
    }
    int rc = 0;
    size_t total = 0;
    for (size_t i = 0; rc == 0 && i < nl; i++) {
        rc = lg_listener_bind(e, &e->conf, &e->conf.listeners[i], e->n_workers, from ? &ho : NULL,
                              &e->socks[i], &e->bound[i]);
        if (rc != 0) *bad_listener = (int)i;
        total += e->socks[i].n;
    }
    /* One worker's share: at most every socket (fewer workers than a predecessor had). */
    int *fds = rc == 0 ? lg_malloc(sizeof(int) * total) : NULL;
    unsigned *index = rc == 0 ? lg_malloc(sizeof(unsigned) * total) : NULL;
    if (rc == 0 && (fds == NULL || index == NULL)) rc = -ENOMEM;
    /* Counted after binding (the listen fds are open), before the loops exist; the workers'
     * duplicates of the `total` listen fds are still to come. */
    uint32_t budget = rc == 0 ? lg_listener_fd_budget(e->n_workers) : 0;
    if (budget > 0) {
        uint32_t dups = (uint32_t)((total + LG_FDS_PER_CONN - 1) / LG_FDS_PER_CONN);
        budget = budget > dups ? budget - dups : 1;
    }
    for (unsigned k = 0; rc == 0 && k < e->n_workers; k++) {
        size_t n = 0;
        e->workers[k].ctx.fd_budget = budget;
        rc = worker_fds(e, k, fds, index, &n);
        if (rc == 0) rc = lg_worker_start(&e->workers[k], fds, index, n);
        if (rc == 0) {
            e->n_started++;
            /* A started worker that cannot get its priority is stopped below with the others. */
            rc = lg_worker_prioritize(&e->workers[k], e->conf.worker_priority);
            if (rc != 0) *bad_listener = LG_START_PRIORITY;
        }
        close_fds(fds, n); /* what the worker did not take */
    }
    lg_free(fds);
    lg_free(index);
    if (rc == 0) {
        e->state = LG_ENGINE_RUNNING;
        return 0;
    }
    close_socks(e);
    if (e->n_started > 0) {
        /* Workers that started own their listen fds: stop them. */
        for (unsigned k = 0; k < e->n_started; k++)
            lg_worker_post_stop(&e->workers[k], 0);
        lg_engine_join(e);
        e->state = LG_ENGINE_STOPPED;
    }
    lg_listener_unregister(e);
    return rc;
}

void lg_engine_stop(lg_engine_t *e, uint32_t grace_ms)
{
    if (e->state != LG_ENGINE_RUNNING && e->state != LG_ENGINE_STOPPING) return;
    e->state = LG_ENGINE_STOPPING;
    /* The workers close their duplicates as they stop; a socket an engine took over stays
     * open in that engine. */
    close_socks(e);
    /* The first stop of each worker cannot fail (its message is preallocated); a later one
     * that finds no memory only leaves the earlier grace period running. */
    for (unsigned k = 0; k < e->n_started; k++)
        lg_worker_post_stop(&e->workers[k], grace_ms);
}

void lg_engine_join(lg_engine_t *e)
{
    for (unsigned k = 0; k < e->n_started; k++)
        lg_worker_join(&e->workers[k]);
    e->n_started = 0;
    close_socks(e);
    lg_listener_unregister(e);
    e->state = LG_ENGINE_STOPPED;
}

void lg_engine_stop_sync(lg_engine_t *e)
{
    if (e->state == LG_ENGINE_RUNNING) lg_engine_stop(e, 0);
    if (e->state == LG_ENGINE_STOPPING) lg_engine_join(e);
}

void lg_engine_destroy(lg_engine_t *e)
{
    if (e == NULL) return;
    lg_engine_stop_sync(e);
    for (unsigned k = 0; k < e->n_workers; k++)
        lg_worker_destroy(&e->workers[k]);
    lg_snapslot_destroy(&e->slot);
    if (e->limit_ready) lg_limit_destroy(&e->limit);
    if (e->blocklog_ready) lg_blocklog_destroy(&e->blocklog);
    lg_affinity_free(&e->affinity); /* a zeroed (never used) table is fine */
    if (e->cpu) lg_cpu_release();
    lg_tls_cache_free(&e->tls_cache);
    lg_config_free(&e->conf);
    lg_free(e->workers);
    lg_free(e);
}

int lg_engine_state(const lg_engine_t *e)
{
    return e->state;
}

const lg_config_t *lg_engine_config(const lg_engine_t *e)
{
    return &e->conf;
}

unsigned lg_engine_workers(const lg_engine_t *e)
{
    return e->n_workers;
}

uint16_t lg_engine_port(const lg_engine_t *e, size_t listener)
{
    return listener < e->conf.n_listeners ? e->bound[listener].port : 0;
}

int lg_engine_prepare(lg_engine_t *e, const lg_route_t *routes, size_t n)
{
    bool need = false, cpu = false;
    for (size_t i = 0; i < n; i++) {
        need = need || routes[i].affinity;
        for (size_t j = 0; j < routes[i].n_upstreams && !cpu; j++)
            cpu = routes[i].upstreams[j].shared->pid != 0;
    }
    if (cpu && !e->cpu) {
        int rc = lg_cpu_acquire();
        if (rc != 0) return rc;
        e->cpu = true; /* kept until the engine is destroyed (the sampler idles cheaply) */
    }
    if (!need || e->affinity.ready) return 0;
    uint8_t seed[16] = {0};
    (void)uv_random(NULL, NULL, seed, sizeof(seed), 0, NULL); /* zero seed if it fails: still
                                                                  correct, only predictable */
    return lg_affinity_init(&e->affinity, LG_AFFINITY_CAPACITY_DEFAULT, seed);
}

lg_snapshot_t *lg_engine_current(lg_engine_t *e)
{
    pthread_mutex_lock(&e->slot.lock);
    lg_snapshot_t *s = lg_snapshot_ref(e->slot.snap);
    pthread_mutex_unlock(&e->slot.lock);
    return s;
}

void lg_engine_affinity_stats(lg_engine_t *e, lg_affinity_stats_t *out)
{
    memset(out, 0, sizeof(*out));
    if (e->affinity.ready) lg_affinity_stats(&e->affinity, out);
}

lg_tls_cache_t *lg_engine_tls_cache(lg_engine_t *e)
{
    return &e->tls_cache;
}

void lg_engine_swap(lg_engine_t *e, lg_snapshot_t *snap, lg_tls_cache_t *cache)
{
    lg_upshared_stale_all(); /* upstream host names are looked up again */
    lg_snapslot_swap(&e->slot, snap);
    lg_tls_cache_free(&e->tls_cache);
    e->tls_cache = *cache;
    memset(cache, 0, sizeof(*cache));
    if (e->state == LG_ENGINE_RUNNING) {
        /* A lost notice (no memory) only delays the release to the worker's next accept. */
        for (unsigned k = 0; k < e->n_started; k++)
            lg_worker_post_refresh(&e->workers[k]);
    }
}

void lg_engine_tunnel_events(lg_engine_t *e, bool on)
{
    atomic_store_explicit(&e->events.tunnel_events, on, memory_order_relaxed);
}

void lg_engine_blocked_events(lg_engine_t *e, bool on)
{
    atomic_store_explicit(&e->events.blocked_events, on, memory_order_relaxed);
}

void lg_engine_access_events(lg_engine_t *e, bool on)
{
    atomic_store_explicit(&e->events.access_events, on, memory_order_relaxed);
}

/* Texts already in a list: open addressing over indexes into l->v + 1 (0 = empty), grown at
 * half full, so blockedIps() stays linear (a blocklist has up to 2^20 entries per listener). */
typedef struct seen_s {
    size_t *slot;
    size_t cap; /* power of two, or 0 */
} seen_t;

static size_t text_hash(const char *s)
{
    size_t h = 1469598103934665603ull;
    for (; *s; s++)
        h = (h ^ (unsigned char)*s) * 1099511628211ull;
    return h;
}

static int seen_grow(seen_t *t, const lg_engine_list_t *l)
{
    size_t cap = t->cap ? t->cap * 2 : 64;
    size_t *slot = lg_calloc(cap, sizeof(size_t));
    if (slot == NULL) return -ENOMEM;
    for (size_t i = 0; i < l->n; i++) {
        size_t j = text_hash(l->v[i]) & (cap - 1);
        while (slot[j] != 0)
            j = (j + 1) & (cap - 1);
        slot[j] = i + 1;
    }
    lg_free(t->slot);
    t->slot = slot;
    t->cap = cap;
    return 0;
}

/* Append a text to a list unless it is there already. */
static int list_add(lg_engine_list_t *l, seen_t *t, const char *text)
{
    if ((l->n + 1) * 2 > t->cap && seen_grow(t, l) != 0) return -ENOMEM;
    size_t j = text_hash(text) & (t->cap - 1);
    for (; t->slot[j] != 0; j = (j + 1) & (t->cap - 1)) {
        if (strcmp(l->v[t->slot[j] - 1], text) == 0) return 0;
    }
    if (l->n == l->cap) {
        size_t cap = l->cap ? l->cap * 2 : 16;
        char **v = lg_realloc(l->v, cap * sizeof(char *));
        if (v == NULL) return -ENOMEM;
        l->v = v;
        l->cap = cap;
    }
    size_t n = strlen(text);
    l->v[l->n] = lg_malloc(n + 1);
    if (l->v[l->n] == NULL) return -ENOMEM;
    memcpy(l->v[l->n++], text, n + 1);
    t->slot[j] = l->n;
    return 0;
}

void lg_engine_list_free(lg_engine_list_t *l)
{
    for (size_t i = 0; i < l->n; i++)
        lg_free(l->v[i]);
    lg_free(l->v);
    memset(l, 0, sizeof(*l));
}

/* Does the listener of key k still have the rule that puts a source on list `which`? */
static bool still_ruled(const lg_snapshot_t *s, const lg_ipkey_t *k, int which)
{
    if (k->listener >= s->n_protection || !s->protection[k->listener].track) return false;
    const lg_limit_rules_t *r = &s->protection[k->listener].rules;
    switch (which) {
    case LG_ENGINE_BLOCKED_RATE:
        return r->rate.interval_ns != 0 || r->sustained.interval_ns != 0;
    case LG_ENGINE_BLOCKED_CONCURRENCY:
        return r->max_concurrent != 0;
    case LG_ENGINE_BLOCKED_BOXED:
        return r->penalty_box_ms != 0;
    default:
        return false;
    }
}

int lg_engine_blocked(lg_engine_t *e, int which, uint64_t now_ms, lg_engine_list_t *out)
{
    memset(out, 0, sizeof(*out));
    seen_t seen = {NULL, 0};
    if (which == LG_ENGINE_BLOCKED_CIDRS) {
        lg_snapshot_t *held = NULL;
        uint64_t gen = 0;
        lg_snapshot_t *s = lg_snapslot_get(&e->slot, &held, &gen);
        int rc = 0;
        for (size_t i = 0; i < s->n_protection && rc == 0; i++) {
            const lg_src_strings_t *t = &s->protection[i].block_text;
            for (size_t j = 0; j < t->n && rc == 0; j++)
                rc = list_add(out, &seen, t->v[j]);
        }
        lg_snapshot_unref(held);
        lg_free(seen.slot);
        return rc;
    }
    lg_ipkey_t *keys = lg_malloc(LG_ENGINE_BLOCKED_MAX * sizeof(lg_ipkey_t));
    if (keys == NULL) return -ENOMEM;
    size_t n = lg_limit_list(&e->limit, now_ms, which, keys, LG_ENGINE_BLOCKED_MAX);
    n = LG_MIN(n, (size_t)LG_ENGINE_BLOCKED_MAX);
    lg_snapshot_t *held = NULL;
    uint64_t gen = 0;
    lg_snapshot_t *s = lg_snapslot_get(&e->slot, &held, &gen);
    int rc = 0;
    for (size_t i = 0; i < n && rc == 0; i++) {
        /* An entry keeps what the rules of its last admission left in it (a bucket's debt, a
         * box, the concurrency cap) until its next admission: list a source only while its
         * listener still has the rule that refuses it, so a rule removed by updateConfig stops
         * listing it at once. */
        if (!still_ruled(s, &keys[i], which)) continue;
        char text[LG_IPKEY_TEXT_MAX];
        if (lg_ipkey_format(&keys[i], text, sizeof(text)) > 0) rc = list_add(out, &seen, text);
    }
    lg_free(seen.slot);
    lg_snapshot_unref(held);
    lg_free(keys);
    return rc;
}

void lg_engine_event_done(lg_engine_t *e, const lg_event_t *ev)
{
    lg_events_done(&e->events, ev);
}

int lg_engine_pending(lg_engine_t *e, const char *id, unsigned *listener, bool *route_tls)
{
    unsigned worker = 0;
    uint64_t serial = 0;
    if (e->state != LG_ENGINE_RUNNING) return -ENOENT;
    return lg_pending_peek(e->pending, e->n_workers, id, &worker, &serial, listener, route_tls);
}

int lg_engine_resolve(lg_engine_t *e, const char *id, lg_route_t *decision)
{
    unsigned worker = 0, listener = 0;
    uint64_t serial = 0;
    bool route_tls = false;
    if (e->state != LG_ENGINE_RUNNING ||
        lg_pending_peek(e->pending, e->n_workers, id, &worker, &serial, &listener, &route_tls) !=
            0 ||
        !lg_pending_claim(&e->workers[worker].pending, serial)) {
        lg_route_destroy(decision);
        return -ENOENT;
    }
    return lg_worker_post_resolve(&e->workers[worker], serial, decision);
}

size_t lg_engine_stop_report(lg_engine_t *e, char *out, size_t cap)
{
    static const char *const phases[] = {"running", "grace", "draining", "closing", "exited"};
    size_t len = 0;
    out[len++] = '[';
    for (unsigned k = 0; k < e->n_workers; k++) {
        lg_worker_t *w = &e->workers[k];
        lg_wctx_t *x = &w->ctx;
        char one[1024];
        int phase = atomic_load_explicit(&x->pub_phase, memory_order_relaxed);
        int n = snprintf(one, sizeof(one),
                         "%s{\"worker\":%u,\"phase\":\"%s\",\"connections\":%zu,\"states\":{",
                         k > 0 ? "," : "", k,
                         phase >= 0 && phase <= LG_WPHASE_EXITED ? phases[phase] : "unknown",
                         atomic_load_explicit(&x->pub_conns, memory_order_relaxed));
        bool first = true;
        for (unsigned s = 0; lg_conn_state_name(s) != NULL && n > 0 && (size_t)n < sizeof(one);
             s++) {
            unsigned count = atomic_load_explicit(&x->pub_states[s], memory_order_relaxed);
            if (count == 0) continue;
            n += snprintf(one + n, sizeof(one) - (size_t)n, "%s\"%s\":%u", first ? "" : ",",
                          lg_conn_state_name(s), count);
            first = false;
        }
        if (n > 0 && (size_t)n < sizeof(one)) {
            n += snprintf(
                one + n, sizeof(one) - (size_t)n,
                "},\"lookups\":%zu,\"readBuffers\":%zu,\"spareBufferBytes\":%zu,"
                "\"pendingSuspended\":%zu}",
                atomic_load_explicit(&x->pub_lookups, memory_order_relaxed),
                (size_t)atomic_load_explicit(&x->pool.n_out_shared, memory_order_relaxed),
                (size_t)atomic_load_explicit(&x->pool.n_free_shared, memory_order_relaxed) *
                    (sizeof(lg_buf_t) + x->pool.size),
                (size_t)atomic_load_explicit(&w->pending.n_shared, memory_order_relaxed));
        }
        if (n <= 0 || (size_t)n >= sizeof(one) || len + (size_t)n + 2 > cap) break;
        memcpy(out + len, one, (size_t)n);
        len += (size_t)n;
    }
    out[len++] = ']';
    out[len] = '\0';
    return len;
}

void lg_engine_metrics(lg_engine_t *e, lg_engine_metrics_t *m)
{
    memset(m, 0, sizeof(*m));
    m->n_listeners = e->conf.n_listeners;
    m->n_workers = e->n_workers;
    for (unsigned k = 0; k < e->n_workers; k++) {
        lg_worker_t *w = &e->workers[k];
        lg_wctx_t *x = &w->ctx;
        for (size_t i = 0; i < m->n_listeners; i++)
            lg_counts_add(&m->listeners[i], &w->counters[i]);
        m->pending_suspended += atomic_load_explicit(&w->pending.n_shared, memory_order_relaxed);
        lg_worker_figures_t *f = &m->workers[k];
        f->connections = atomic_load_explicit(&x->pub_conns, memory_order_relaxed);
        f->read_buffers = atomic_load_explicit(&x->pool.n_out_shared, memory_order_relaxed);
        f->spare_buffer_bytes = atomic_load_explicit(&x->pool.n_free_shared, memory_order_relaxed) *
                                (sizeof(lg_buf_t) + x->pool.size);
        f->hello_buffers = atomic_load_explicit(&x->pub_hello_buffers, memory_order_relaxed);
        f->lookups = atomic_load_explicit(&x->pub_lookups, memory_order_relaxed);
        f->quantum = atomic_load_explicit(&x->pub_quantum, memory_order_relaxed);
        f->grants = atomic_load_explicit(&x->pub_grants, memory_order_relaxed);
        f->granted_bytes = atomic_load_explicit(&x->pub_granted_bytes, memory_order_relaxed);
        f->interactive_reads =
            atomic_load_explicit(&x->pub_interactive_reads, memory_order_relaxed);
        f->spliced = atomic_load_explicit(&x->pub_spliced, memory_order_relaxed);
        f->pipes = atomic_load_explicit(&x->pub_pipes, memory_order_relaxed);
        f->lent_pipes = atomic_load_explicit(&x->pub_lent, memory_order_relaxed);
        f->large_pipes = atomic_load_explicit(&x->pub_big, memory_order_relaxed);
        f->own_pipe_large = atomic_load_explicit(&x->pub_own_big, memory_order_relaxed);
        m->buffers_in_use += f->read_buffers + f->hello_buffers;
    }
    for (size_t i = 0; i < m->n_listeners; i++)
        lg_counts_merge(&m->total, &m->listeners[i]);
    m->generations_live = (uint64_t)atomic_load_explicit(&e->slot.live, memory_order_relaxed);
    lg_limit_stats(&e->limit, &m->tracking);
    m->events_dropped = atomic_load_explicit(&e->events.dropped, memory_order_relaxed);
    m->access_events_dropped =
        atomic_load_explicit(&e->events.access_dropped, memory_order_relaxed);
}
