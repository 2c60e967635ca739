/*
 * lg_engine.c — engine lifecycle: binding listen sockets, starting and stopping workers,
 * publishing config snapshots, posting events, and the file-descriptor limit.
 *
 * Binding happens on the JS thread before any worker starts, so that start() can report a bind
 * error synchronously with nothing left listening. Each worker gets its own socket per listener
 * with SO_REUSEADDR and SO_REUSEPORT set before bind (libuv 1.46 has no UV_TCP_REUSEPORT); the
 * kernel spreads incoming connections over them. For port 0 the first socket's port, read back
 * with getsockname(), is used for the rest.
 *
 * SO_REUSEPORT would let a second legato engine in this process bind the same address and
 * silently share its connections. A process-wide registry of bound addresses (guarded by
 * registry_lock; touched only at start and stop) refuses that with EADDRINUSE, as a plain bind
 * would. Other processes of the same user are not covered: that is SO_REUSEPORT's contract.
 */
#include "lg_engine.h"
#include "lg_worker.h"

#include <arpa/inet.h>
#include <netdb.h>
#include <netinet/in.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdio.h>
#include <string.h>
#include <sys/resource.h>
#include <unistd.h>

#define REGISTRY_MAX 1024 /* bound addresses tracked per process */

typedef struct registry_entry_s {
    struct sockaddr_storage addr;
    const lg_engine_t *owner;
} registry_entry_t;

static pthread_mutex_t registry_lock = PTHREAD_MUTEX_INITIALIZER;
static registry_entry_t registry[REGISTRY_MAX];
static size_t registry_n;

static uint16_t sa_port(const struct sockaddr_storage *ss)
{
    if (ss->ss_family == AF_INET6) return ntohs(((const struct sockaddr_in6 *)ss)->sin6_port);
    return ntohs(((const struct sockaddr_in *)ss)->sin_port);
}

static void sa_set_port(struct sockaddr_storage *ss, uint16_t port)
{
    if (ss->ss_family == AF_INET6) {
        ((struct sockaddr_in6 *)ss)->sin6_port = htons(port);
    } else {
        ((struct sockaddr_in *)ss)->sin_port = htons(port);
    }
}

static bool sa_is_any(const struct sockaddr_storage *ss)
{
    if (ss->ss_family == AF_INET6) {
        return IN6_IS_ADDR_UNSPECIFIED(&((const struct sockaddr_in6 *)ss)->sin6_addr);
    }
    return ((const struct sockaddr_in *)ss)->sin_addr.s_addr == htonl(INADDR_ANY);
}

static bool sa_same_addr(const struct sockaddr_storage *a, const struct sockaddr_storage *b)
{
    if (a->ss_family != b->ss_family) return false;
    if (a->ss_family == AF_INET6) {
        return memcmp(&((const struct sockaddr_in6 *)a)->sin6_addr,
                      &((const struct sockaddr_in6 *)b)->sin6_addr, sizeof(struct in6_addr)) == 0;
    }
    return ((const struct sockaddr_in *)a)->sin_addr.s_addr ==
           ((const struct sockaddr_in *)b)->sin_addr.s_addr;
}

/* Would binding a and b with SO_REUSEPORT share connections (or conflict without it)? */
static bool sa_overlap(const struct sockaddr_storage *a, const struct sockaddr_storage *b)
{
    if (sa_port(a) != sa_port(b)) return false;
    if (a->ss_family == b->ss_family) return sa_is_any(a) || sa_is_any(b) || sa_same_addr(a, b);
    /* A dual-stack "::" socket also receives IPv4 connections. */
    const struct sockaddr_storage *v6 = a->ss_family == AF_INET6 ? a : b;
    return sa_is_any(v6);
}

/* Reserve an address for an engine; -EADDRINUSE if another engine (or listener) holds it. */
static int registry_add(const lg_engine_t *e, const struct sockaddr_storage *ss)
{
    int rc = 0;
    pthread_mutex_lock(&registry_lock);
    for (size_t i = 0; i < registry_n; i++) {
        if (sa_overlap(&registry[i].addr, ss)) {
            rc = -EADDRINUSE;
            break;
        }
    }
    if (rc == 0) {
        if (registry_n == REGISTRY_MAX) {
            rc = -ENOSPC;
        } else {
            registry[registry_n].addr = *ss;
            registry[registry_n].owner = e;
            registry_n++;
        }
    }
    pthread_mutex_unlock(&registry_lock);
    return rc;
}

static void registry_remove_engine(const lg_engine_t *e)
{
    pthread_mutex_lock(&registry_lock);
    size_t j = 0;
    for (size_t i = 0; i < registry_n; i++) {
        if (registry[i].owner != e) registry[j++] = registry[i];
    }
    registry_n = j;
    pthread_mutex_unlock(&registry_lock);
}

int lg_engine_create(lg_config_t *conf, lg_snapshot_t *snap, lg_engine_t **out)
{
    *out = NULL;
    lg_engine_t *e = lg_calloc(1, sizeof(*e));
    if (e == NULL) goto fail;
    e->workers = lg_calloc(conf->worker_threads, sizeof(lg_worker_t));
    if (e->workers == NULL) goto fail;
    if (uv_mutex_init(&e->snap_lock) != 0) goto fail;
    e->conf = *conf;
    memset(conf, 0, sizeof(*conf));
    e->n_workers = e->conf.worker_threads;
    for (unsigned i = 0; i < e->n_workers; i++) {
        int rc = lg_worker_init(&e->workers[i], e, i);
        if (rc != 0) {
            for (unsigned k = 0; k < i; k++)
                lg_worker_destroy(&e->workers[k]);
            uv_mutex_destroy(&e->snap_lock);
            lg_config_free(&e->conf);
            lg_free(e->workers);
            lg_free(e);
            lg_snapshot_destroy(snap);
            return rc;
        }
    }
    snap->engine = e;
    snap->generation = ++e->next_gen;
    atomic_store(&e->generations_live, 1);
    e->snap = snap;
    atomic_store(&e->snap_gen, snap->generation);
    *out = e;
    return 0;
fail:
    if (e != NULL) lg_free(e->workers);
    lg_free(e);
    lg_config_free(conf);
    lg_snapshot_destroy(snap);
    return -ENOMEM;
}

void lg_engine_raise_nofile(lg_engine_t *e, char *warn, size_t warn_size)
{
    warn[0] = '\0';
    struct rlimit rl;
    if (getrlimit(RLIMIT_NOFILE, &rl) != 0) return;
    bool unlimited = false;
    uint64_t need = 1024;
    for (size_t i = 0; i < e->conf.n_listeners; i++) {
        uint32_t m = e->conf.listeners[i].max_connections;
        if (m == 0) unlimited = true;
        need += 2 * (uint64_t)m; /* a client socket and an upstream socket each */
    }
    rlim_t target = unlimited ? rl.rlim_max : (rlim_t)need;
    if (rl.rlim_max != RLIM_INFINITY && (rlim_t)need > rl.rlim_max) {
        snprintf(warn, warn_size,
                 "the listeners need at least %llu file descriptors (2 per connection of "
                 "maxConnections + 1024) but the hard RLIMIT_NOFILE is %llu; connections beyond "
                 "it will wait in the accept backlog",
                 (unsigned long long)need, (unsigned long long)rl.rlim_max);
        if (target > rl.rlim_max) target = rl.rlim_max;
    }
    if (rl.rlim_cur != RLIM_INFINITY && target > rl.rlim_cur) {
        rl.rlim_cur = target;
        if (setrlimit(RLIMIT_NOFILE, &rl) != 0 && warn[0] == '\0') {
            snprintf(warn, warn_size, "could not raise RLIMIT_NOFILE to %llu: %s",
                     (unsigned long long)target, strerror(errno));
        }
    }
}

static int resolve_listen(const char *host, uint16_t port, struct sockaddr_storage *ss)
{
    struct addrinfo hints, *res = NULL;
    memset(&hints, 0, sizeof(hints));
    hints.ai_family = AF_UNSPEC;
    hints.ai_socktype = SOCK_STREAM;
    hints.ai_flags = AI_PASSIVE;
    int rc = getaddrinfo(host, NULL, &hints, &res);
    if (rc != 0 || res == NULL) {
        if (res) freeaddrinfo(res);
        return rc == EAI_MEMORY ? -ENOMEM : -EADDRNOTAVAIL;
    }
    memset(ss, 0, sizeof(*ss));
    memcpy(ss, res->ai_addr, res->ai_addrlen);
    freeaddrinfo(res);
    sa_set_port(ss, port);
    return 0;
}

static socklen_t sa_len(const struct sockaddr_storage *ss)
{
    return ss->ss_family == AF_INET6 ? sizeof(struct sockaddr_in6) : sizeof(struct sockaddr_in);
}

static int open_listen_fd(const struct sockaddr_storage *ss, int *fd_out)
{
    int fd = socket(ss->ss_family, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
    if (fd < 0) return -errno;
    int one = 1;
    if (setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one)) != 0 ||
        setsockopt(fd, SOL_SOCKET, SO_REUSEPORT, &one, sizeof(one)) != 0 ||
        bind(fd, (const struct sockaddr *)ss, sa_len(ss)) != 0 ||
        listen(fd, LG_LISTEN_BACKLOG) != 0) {
        int err = -errno;
        close(fd);
        return err;
    }
    *fd_out = fd;
    return 0;
}

static void close_listen_fds(lg_engine_t *e)
{
    for (unsigned k = 0; k < e->n_workers; k++) {
        for (size_t i = 0; i < e->conf.n_listeners; i++) {
            lg_lsock_t *ls = &e->workers[k].lsock[i];
            if (ls->fd >= 0) close(ls->fd);
            ls->fd = -1;
        }
    }
}

/* Bind listener i on every worker. */
static int bind_listener(lg_engine_t *e, size_t i)
{
    const lg_listener_conf_t *lc = &e->conf.listeners[i];
    lg_listener_shared_t *sh = &e->lis[i];
    struct sockaddr_storage ss;
    int rc = resolve_listen(lc->host, lc->port, &ss);
    if (rc != 0) return rc;
    if (lc->port != 0) {
        rc = registry_add(e, &ss);
        if (rc != 0) return rc;
        sh->registered = true;
    }
    for (unsigned k = 0; k < e->n_workers; k++) {
        int fd = -1;
        rc = open_listen_fd(&ss, &fd);
        if (rc != 0) return rc;
        e->workers[k].lsock[i].fd = fd;
        if (k == 0 && lc->port == 0) {
            struct sockaddr_storage got;
            socklen_t len = sizeof(got);
            if (getsockname(fd, (struct sockaddr *)&got, &len) != 0) return -errno;
            sa_set_port(&ss, sa_port(&got));
            rc = registry_add(e, &ss);
            if (rc != 0) return rc;
            sh->registered = true;
        }
    }
    sh->addr = ss;
    sh->addrlen = sa_len(&ss);
    sh->bound_port = sa_port(&ss);
    return 0;
}

int lg_engine_start(lg_engine_t *e, lg_post_fn post, void *post_ctx, int *bad_listener)
{
    *bad_listener = -1;
    if (e->state != LG_ENGINE_NEW) return -EALREADY;
    e->post = post;
    e->post_ctx = post_ctx;
    int rc = 0;
    for (size_t i = 0; i < e->conf.n_listeners; i++) {
        rc = bind_listener(e, i);
        if (rc != 0) {
            *bad_listener = (int)i;
            goto fail;
        }
    }
    for (unsigned k = 0; k < e->n_workers; k++) {
        rc = lg_worker_start(&e->workers[k]);
        if (rc != 0) goto fail_threads;
        e->n_started++;
    }
    e->state = LG_ENGINE_RUNNING;
    return 0;

fail_threads:
    /* Workers that started own their listen fds now; stop them and close the rest. */
    for (unsigned k = 0; k < e->n_started; k++)
        lg_worker_post(&e->workers[k], LG_MSG_STOP, 0);
    lg_engine_join(e);
    for (unsigned k = e->n_started; k < e->n_workers; k++) {
        for (size_t i = 0; i < e->conf.n_listeners; i++) {
            lg_lsock_t *ls = &e->workers[k].lsock[i];
            if (ls->fd >= 0) close(ls->fd);
            ls->fd = -1;
        }
    }
    e->state = LG_ENGINE_STOPPED;
    return rc;
fail:
    close_listen_fds(e);
    registry_remove_engine(e);
    return rc;
}

void lg_engine_stop(lg_engine_t *e, uint32_t grace_ms)
{
    /* A second stop while stopping can only shorten the grace period (workers keep the
     * earlier deadline). */
    if (e->state != LG_ENGINE_RUNNING && e->state != LG_ENGINE_STOPPING) return;
    e->state = LG_ENGINE_STOPPING;
    for (unsigned k = 0; k < e->n_started; k++) {
        if (lg_worker_post(&e->workers[k], LG_MSG_STOP, grace_ms) != 0) {
            /* No memory for a message: the worker still must stop. Retrying is all we can do
             * without blocking; a failure here is vanishingly rare (a few dozen bytes). */
            while (lg_worker_post(&e->workers[k], LG_MSG_STOP, 0) != 0)
                uv_sleep(1);
        }
    }
}

void lg_engine_join(lg_engine_t *e)
{
    for (unsigned k = 0; k < e->n_started; k++)
        uv_thread_join(&e->workers[k].thread);
    e->n_started = 0;
    registry_remove_engine(e);
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
    close_listen_fds(e);
    for (unsigned k = 0; k < e->n_workers; k++)
        lg_worker_destroy(&e->workers[k]);
    lg_snapshot_unref(e->snap);
    lg_tls_cache_free(&e->tls_cache);
    uv_mutex_destroy(&e->snap_lock);
    lg_config_free(&e->conf);
    lg_free(e->workers);
    lg_free(e);
}

void lg_engine_swap(lg_engine_t *e, lg_snapshot_t *snap)
{
    snap->engine = e;
    atomic_fetch_add_explicit(&e->generations_live, 1, memory_order_relaxed);
    uv_mutex_lock(&e->snap_lock);
    lg_snapshot_t *old = e->snap;
    snap->generation = ++e->next_gen;
    e->snap = snap;
    atomic_store_explicit(&e->snap_gen, snap->generation, memory_order_release);
    uv_mutex_unlock(&e->snap_lock);
    lg_snapshot_unref(old);
    if (e->state == LG_ENGINE_RUNNING) {
        /* A lost notice (no memory) only delays the release to the worker's next accept. */
        for (unsigned k = 0; k < e->n_started; k++)
            lg_worker_post(&e->workers[k], LG_MSG_REFRESH, 0);
    }
}

lg_snapshot_t *lg_engine_snapshot(lg_engine_t *e, lg_snapshot_t **held, uint64_t *held_gen)
{
    uint64_t gen = atomic_load_explicit(&e->snap_gen, memory_order_acquire);
    if (LG_UNLIKELY(gen != *held_gen)) {
        uv_mutex_lock(&e->snap_lock);
        lg_snapshot_t *s = lg_snapshot_ref(e->snap);
        uv_mutex_unlock(&e->snap_lock);
        lg_snapshot_unref(*held);
        *held = s;
        *held_gen = s->generation;
    }
    return *held;
}

static bool is_control(const lg_event_t *ev)
{
    return ev->type == LG_EV_READY || ev->type == LG_EV_WORKER_EXIT;
}

int lg_engine_post(lg_engine_t *e, lg_event_t *ev)
{
    bool control = is_control(ev);
    if (e->post == NULL) goto drop;
    if (!control && atomic_fetch_add_explicit(&e->events_queued, 1, memory_order_relaxed) >=
                        LG_EVENT_QUEUE_MAX) {
        atomic_fetch_sub_explicit(&e->events_queued, 1, memory_order_relaxed);
        goto drop;
    }
    if (e->post(e->post_ctx, ev) != 0) {
        /* The post function freed ev. */
        if (!control) atomic_fetch_sub_explicit(&e->events_queued, 1, memory_order_relaxed);
        atomic_fetch_add_explicit(&e->events_dropped, 1, memory_order_relaxed);
        return -EAGAIN;
    }
    return 0;
drop:
    atomic_fetch_add_explicit(&e->events_dropped, 1, memory_order_relaxed);
    lg_free(ev);
    return -EAGAIN;
}

void lg_engine_event_done(lg_engine_t *e, const lg_event_t *ev)
{
    if (!is_control(ev)) atomic_fetch_sub_explicit(&e->events_queued, 1, memory_order_relaxed);
}

void lg_engine_postf(lg_engine_t *e, int type, unsigned worker, int code, const char *fmt, ...)
{
    lg_event_t *ev = lg_calloc(1, sizeof(*ev));
    if (ev == NULL) {
        atomic_fetch_add_explicit(&e->events_dropped, 1, memory_order_relaxed);
        return;
    }
    ev->type = type;
    ev->worker = worker;
    ev->code = code;
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(ev->message, sizeof(ev->message), fmt, ap);
    va_end(ap);
    lg_engine_post(e, ev);
}
