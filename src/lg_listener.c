/*
 * lg_listener.c — binding listen sockets and accepting on them (see lg_listener.h).
 *
 * accept4() errno → action (after HAProxy's table):
 *   EAGAIN/EWOULDBLOCK             nothing more pending: wait for the next readiness event
 *   EINTR, ECONNABORTED, EPROTO,   this one connection failed or vanished: try the next
 *   EPERM (firewall), ENETDOWN...
 *   EMFILE, ENFILE, ENOBUFS, ENOMEM  out of a resource: pause accepting, count, warn once
 *   anything else                  unexpected: pause as for EMFILE and report an 'error' event
 */
#include "lg_listener.h"
#include "lg_protect.h"

#include <arpa/inet.h>
#include <dirent.h>
#include <fcntl.h>
#include <netdb.h>
#include <stdio.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

/* ---- the process-wide registry of bound addresses ----------------------------------------- */

#define REGISTRY_MAX 1024 /* bound addresses tracked per process */

typedef struct registry_entry_s {
    struct sockaddr_storage addr;
    const void *owner;
    bool share; /* reusePort 'share': another 'share' entry may overlap it */
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

/*
 * Reserve an address for an owner; -EADDRINUSE if another owner (or listener) holds it, unless
 * both share it, or it is held by `from` (the engine this one takes the address over from).
 */
static int registry_add(const void *owner, const struct sockaddr_storage *ss, bool share,
                        const void *from)
{
    int rc = 0;
    pthread_mutex_lock(&registry_lock);
    for (size_t i = 0; i < registry_n; i++) {
        if (!sa_overlap(&registry[i].addr, ss)) continue;
        if (share && registry[i].share) continue;
        if (from != NULL && registry[i].owner == from && sa_same_addr(&registry[i].addr, ss)) {
            continue;
        }
        rc = -EADDRINUSE;
        break;
    }
    if (rc == 0) {
        if (registry_n == REGISTRY_MAX) {
            rc = -ENOSPC;
        } else {
            registry[registry_n].addr = *ss;
            registry[registry_n].owner = owner;
            registry[registry_n].share = share;
            registry_n++;
        }
    }
    pthread_mutex_unlock(&registry_lock);
    return rc;
}

void lg_listener_unregister(const void *owner)
{
    pthread_mutex_lock(&registry_lock);
    size_t j = 0;
    for (size_t i = 0; i < registry_n; i++) {
        if (registry[i].owner != owner) registry[j++] = registry[i];
    }
    registry_n = j;
    pthread_mutex_unlock(&registry_lock);
}

/* ---- binding ------------------------------------------------------------------------------ */

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

/*
 * Is the address free of other listeners (reusePort 'exclusive')? A socket bound without
 * SO_REUSEPORT conflicts with every socket listening there, SO_REUSEPORT or not; SO_REUSEADDR
 * only lets it past connections in TIME_WAIT. Returns 0 or -EADDRINUSE (or another bind
 * error). The probe is closed before the group binds: see lg_listener.h for that window.
 */
static int probe_exclusive(const struct sockaddr_storage *ss)
{
    int fd = socket(ss->ss_family, SOCK_STREAM | SOCK_CLOEXEC, 0);
    if (fd < 0) return -errno;
    int one = 1, rc = 0;
    if (setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one)) != 0 ||
        bind(fd, (const struct sockaddr *)ss, sa_len(ss)) != 0) {
        rc = -errno;
    }
    close(fd);
    return rc;
}

/* A new listen socket, with the options its connections inherit (lg_conn_sockopts): a failure
 * there only costs the connections their own calls (lg_lsock_open reads them back). */
static int open_listen_fd(const struct sockaddr_storage *ss, const lg_config_t *conf, int *fd_out)
{
    int fd = socket(ss->ss_family, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
    if (fd < 0) return -errno;
    (void)lg_conn_sockopts(fd, conf, true);
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

void lg_lsocks_close(lg_lsocks_t *s)
{
    for (unsigned m = 0; m < s->n; m++) {
        if (s->fds[m] >= 0) close(s->fds[m]);
    }
    lg_free(s->fds);
    s->fds = NULL;
    s->n = 0;
}

/* The listener of `from` bound to exactly this address and port, with sockets open; -1 if none. */
static int handover_match(const lg_handover_t *from, const struct sockaddr_storage *ss)
{
    for (size_t j = 0; from != NULL && j < from->n; j++) {
        const struct sockaddr_storage *b = &from->bound[j].addr;
        if (from->socks[j].n > 0 && sa_port(b) == sa_port(ss) && sa_same_addr(b, ss)) {
            return (int)j;
        }
    }
    return -1;
}

int lg_listener_bind(const void *owner, const lg_config_t *conf, const lg_listener_conf_t *lc,
                     unsigned n_workers, const lg_handover_t *from, lg_lsocks_t *socks,
                     lg_bound_t *out)
{
    struct sockaddr_storage ss;
    socks->fds = NULL;
    socks->n = 0;
    int rc = resolve_listen(lc->host, lc->port, &ss);
    if (rc != 0) return rc;
    int j = lc->port != 0 ? handover_match(from, &ss) : -1;
    const lg_lsocks_t *old = j >= 0 ? &from->socks[j] : NULL;
    unsigned n = old != NULL ? LG_MAX(n_workers, old->n) : n_workers;
    socks->fds = lg_malloc(sizeof(int) * n);
    if (socks->fds == NULL) return -ENOMEM;
    for (unsigned m = 0; m < n; m++)
        socks->fds[m] = -1;
    socks->n = n;

    if (lc->port != 0) rc = registry_add(owner, &ss, lc->reuse_share, old ? from->owner : NULL);
    /* Taking an address over from an engine of this process needs no probe: it is ours. */
    if (rc == 0 && lc->port != 0 && !lc->reuse_share && old == NULL) rc = probe_exclusive(&ss);
    for (unsigned m = 0; rc == 0 && m < n; m++) {
        if (old != NULL && m < old->n) {
            /* The same socket (its accept queue included), so no connection waits on a socket
             * that is about to close: the old engine's close leaves it open here. */
            socks->fds[m] = fcntl(old->fds[m], F_DUPFD_CLOEXEC, 0);
            rc = socks->fds[m] < 0 ? -errno : 0;
            continue;
        }
        rc = open_listen_fd(&ss, conf, &socks->fds[m]);
        if (rc == 0 && m == 0 && lc->port == 0) {
            struct sockaddr_storage got;
            socklen_t len = sizeof(got);
            if (getsockname(socks->fds[0], (struct sockaddr *)&got, &len) != 0) {
                rc = -errno;
                break;
            }
            sa_set_port(&ss, sa_port(&got));
            rc = registry_add(owner, &ss, lc->reuse_share, NULL);
        }
    }
    if (rc != 0) {
        lg_lsocks_close(socks);
        return rc;
    }
    out->addr = ss;
    out->addrlen = sa_len(&ss);
    out->port = sa_port(&ss);
    return 0;
}

void lg_listener_raise_nofile(const lg_config_t *conf, char *warn, size_t warn_size)
{
    warn[0] = '\0';
    struct rlimit rl;
    if (getrlimit(RLIMIT_NOFILE, &rl) != 0) return;
    bool unlimited = false;
    uint64_t need = 1024;
    for (size_t i = 0; i < conf->n_listeners; i++) {
        uint32_t m = conf->listeners[i].max_connections;
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

uint32_t lg_listener_fd_budget(unsigned n_workers)
{
    struct rlimit rl;
    if (getrlimit(RLIMIT_NOFILE, &rl) != 0 || rl.rlim_cur == RLIM_INFINITY ||
        rl.rlim_cur >= (rlim_t)UINT32_MAX) {
        return 0;
    }
    DIR *dir = opendir("/proc/self/fd");
    if (dir == NULL) return 0; /* cannot count: no budget rather than a wrong one */
    uint64_t used = 0;
    for (struct dirent *de = readdir(dir); de != NULL; de = readdir(dir)) {
        if (de->d_name[0] != '.') used++;
    }
    closedir(dir);
    used = used > 0 ? used - 1 : 0; /* the directory's own descriptor */
    used += (uint64_t)n_workers * LG_FDS_PER_WORKER + LG_FD_RESERVE;
    uint64_t cur = (uint64_t)rl.rlim_cur;
    uint64_t budget = cur > used ? (cur - used) / LG_FDS_PER_CONN : 0;
    return (uint32_t)LG_MAX(budget, 1u);
}

/* ---- accepting ---------------------------------------------------------------------------- */

static void on_readable(uv_poll_t *h, int status, int events);

static void on_backoff(uv_timer_t *t)
{
    lg_lsock_t *ls = t->data;
    if (!ls->open) return;
    uv_poll_start(&ls->poll, UV_READABLE, on_readable);
}

static void pause_accepting(lg_lsock_t *ls, int err)
{
    lg_wctx_t *w = ls->w;
    if (!ls->open) return;
    bool first = ls->backoff_ms == 0;
    ls->backoff_ms =
        first ? LG_ACCEPT_BACKOFF_MIN : LG_MIN(ls->backoff_ms * 2, LG_ACCEPT_BACKOFF_MAX);
    uv_poll_stop(&ls->poll);
    uv_timer_start(&ls->backoff, on_backoff, ls->backoff_ms, 0);
    LG_COUNT(&w->counters[ls->index], accept_pauses, 1);
    if (first) {
        bool expected = err == EMFILE || err == ENFILE || err == ENOBUFS || err == ENOMEM;
        lg_events_note(w->events, expected ? LG_EV_WARNING : LG_EV_ERROR, w->index, -err,
                       "listener %u (worker %u): accept failed: %s; pausing accepts for %u ms "
                       "(established connections keep running)",
                       ls->index, w->index, strerror(err), ls->backoff_ms);
    }
}

void lg_lsock_fd_pressure(lg_lsock_t *ls, size_t n, int err)
{
    for (size_t i = 0; i < n; i++) {
        /* Already paused: leave its timer alone (it doubles on the next failed accept). */
        if (ls[i].open && !uv_is_active((uv_handle_t *)&ls[i].backoff))
            pause_accepting(&ls[i], err);
    }
}

/*
 * Reserve a slot in the listener's connection count (and, on a connect listener, in its in-head
 * count); false when maxConnections or the head limit is reached.
 */
static bool admit(lg_wctx_t *w, unsigned lis)
{
    const lg_listener_conf_t *lc = &w->conf->listeners[lis];
    lg_lis_state_t *st = &w->lis[lis];
    unsigned prev = atomic_fetch_add_explicit(&st->active, 1, memory_order_relaxed);
    if (lc->max_connections != 0 && prev >= lc->max_connections) {
        atomic_fetch_sub_explicit(&st->active, 1, memory_order_relaxed);
        return false;
    }
    if (lc->kind == LG_LISTENER_CONNECT) {
        prev = atomic_fetch_add_explicit(&st->in_head, 1, memory_order_relaxed);
        if (prev >= lc->head_limit) {
            atomic_fetch_sub_explicit(&st->in_head, 1, memory_order_relaxed);
            atomic_fetch_sub_explicit(&st->active, 1, memory_order_relaxed);
            return false;
        }
    }
    return true;
}

/* Give back what admit() reserved (the connection was refused after all). */
static void unadmit(lg_wctx_t *w, unsigned lis)
{
    lg_lis_state_t *st = &w->lis[lis];
    atomic_fetch_sub_explicit(&st->active, 1, memory_order_relaxed);
    if (w->conf->listeners[lis].kind == LG_LISTENER_CONNECT) {
        atomic_fetch_sub_explicit(&st->in_head, 1, memory_order_relaxed);
    }
}

/*
 * The source's share of a connect listener's head slots (issue 14): count the connection in the
 * per-source sketch; once three quarters of the head slots are taken, a source already holding its
 * share
 * (lc->head_share, a quarter) is refused. False when refused (nothing is left counted). Not on
 * PROXY-protocol listeners, whose TCP peer is the proxy in front, not the client.
 */
static bool head_share_take(lg_wctx_t *w, unsigned lis, const lg_protection_t *p,
                            const lg_peer_t *peer, lg_admission_t *adm)
{
    const lg_listener_conf_t *lc = &w->conf->listeners[lis];
    if (lc->kind != LG_LISTENER_CONNECT || lc->accept_proxy != 0) return true;
    uint64_t h;
    if (!lg_protect_source_hash(w, lis, p, peer, &h)) return true;
    lg_lis_state_t *st = &w->lis[lis];
    uint16_t col[2] = {(uint16_t)(h % LG_HEAD_SRC_SLOTS),
                       (uint16_t)((h >> 32) % LG_HEAD_SRC_SLOTS)};
    unsigned c0 = atomic_fetch_add_explicit(&st->head_src[0][col[0]], 1, memory_order_relaxed);
    unsigned c1 = atomic_fetch_add_explicit(&st->head_src[1][col[1]], 1, memory_order_relaxed);
    unsigned total = atomic_load_explicit(&st->in_head, memory_order_relaxed);
    if (LG_MIN(c0, c1) >= lc->head_share && total > lc->head_limit / 4 * 3) {
        atomic_fetch_sub_explicit(&st->head_src[0][col[0]], 1, memory_order_relaxed);
        atomic_fetch_sub_explicit(&st->head_src[1][col[1]], 1, memory_order_relaxed);
        return false;
    }
    adm->head_src_held = true;
    adm->head_src[0] = col[0];
    adm->head_src[1] = col[1];
    return true;
}

/* Refuse an accepted fd before anything is allocated for it: counted, reported, closed (a
 * connect listener answers first: 503 at capacity, 403 or 429 for protection). */
/*
 * The access record of a connection refused at accept (only while access events are on). Like
 * every access record it is dropped and counted when the event queue is full, which is what
 * bounds a flood of refusals: at most LG_EVENT_QUEUE_MAX records wait for JS, the rest only
 * count (the coalesced 'blocked' events are a separate, per-source summary).
 */
static void refused_record(lg_wctx_t *w, unsigned lis, int reason, int status,
                           const lg_peer_t *peer)
{
    lg_event_t *ev = lg_event_alloc(w->events, LG_EV_ACCESS, w->index);
    if (ev == NULL) return;
    lg_ev_access_t *e = &ev->u.access;
    e->listener = lis;
    e->route = -1;
    e->why = LG_CLOSE_REFUSED_BLOCK;
    e->block = (uint8_t)reason;
    e->decision = LG_DECISION_NONE;
    e->status = (uint16_t)status;
    e->peer_port = peer->port;
    lg_peer_format(peer, e->peer_ip, sizeof(e->peer_ip));
    struct timespec ts;
    if (clock_gettime(CLOCK_REALTIME, &ts) == 0) {
        e->end_ms = (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
    }
    lg_events_post(w->events, ev);
}

static void refuse(lg_wctx_t *w, unsigned lis, int fd, int reason, const lg_protection_t *p,
                   const lg_peer_t *peer)
{
    lg_protect_refused(w, lis, p, reason, peer, NULL, NULL);
    int status = 0;
    if (w->conf->listeners[lis].kind == LG_LISTENER_CONNECT && reason != LG_BLOCK_PROXY_UNTRUSTED) {
        status = reason == LG_BLOCK_MAX_CONNECTIONS ? 503 : lg_connect_refusal_status(reason);
        lg_connect_refuse_fd(&w->counters[lis], fd, status, w->discard, sizeof(w->discard));
    } else {
        close(fd);
    }
    if (lg_events_access_on(w->events)) refused_record(w, lis, reason, status, peer);
}

/*
 * Admission of an accepted fd, before any allocation: the listener's capacity, then (unless the
 * listener reads a PROXY header first, which carries the real client address) the source's
 * protection checks. A PROXY listener only takes headers from its trusted sources.
 */
static void accepted(lg_lsock_t *ls, int fd, const struct sockaddr *sa)
{
    lg_wctx_t *w = ls->w;
    unsigned lis = ls->index;
    const lg_listener_conf_t *lc = &w->conf->listeners[lis];
    const lg_snapshot_t *snap = lg_snapslot_get(w->slot, &w->snap, &w->snap_gen);
    const lg_protection_t *p = &snap->protection[lis];
    lg_peer_t peer;
    lg_peer_from_sockaddr(&peer, sa);
    if (!admit(w, lis)) {
        refuse(w, lis, fd, LG_BLOCK_MAX_CONNECTIONS, p, &peer);
        return;
    }
    lg_admission_t adm;
    memset(&adm, 0, sizeof(adm));
    int reason = LG_BLOCK_NONE;
    if (lc->accept_proxy != 0) {
        if (!lg_cidr_set_contains(&lc->trusted, peer.family, peer.addr)) {
            reason = LG_BLOCK_PROXY_UNTRUSTED;
        }
    } else {
        reason = lg_protect_admit(w, lis, p, &peer, &adm);
    }
    if (reason != LG_BLOCK_NONE) {
        unadmit(w, lis);
        refuse(w, lis, fd, reason, p, &peer);
        return;
    }
    if (!head_share_take(w, lis, p, &peer, &adm)) {
        lg_protect_release(w, &adm, &peer);
        unadmit(w, lis);
        refuse(w, lis, fd, LG_BLOCK_MAX_CONNECTIONS, p, &peer);
        return;
    }
    lg_conn_accept(w, lis, fd, ls->opts_inherited, &peer, &adm);
}

/* Connections open on every listener of the engine (each holds up to LG_FDS_PER_CONN), and the
 * workers' splice pipes (as many; lg_relay takes one only below 90 % of the budget). */
static bool over_fd_budget(const lg_wctx_t *w)
{
    return w->fd_budget != 0 && lg_wctx_fd_units(w) >= w->fd_budget;
}

/*
 * At the descriptor budget: stop accepting (new connections wait in the kernel's backlog, as at
 * HAProxy's maxconn) and look again after LG_FD_BUDGET_RETRY_MS, so that whatever frees a slot
 * on any worker resumes accepting within that time. Every accepted connection can therefore
 * dial its upstream: none holds a descriptor while waiting for one that cannot come.
 */
static void budget_pause(lg_lsock_t *ls)
{
    lg_wctx_t *w = ls->w;
    uv_poll_stop(&ls->poll);
    if (!uv_is_active((uv_handle_t *)&ls->backoff)) {
        uv_timer_start(&ls->backoff, on_backoff, LG_FD_BUDGET_RETRY_MS, 0);
    }
    if (ls->budget_paused) return;
    ls->budget_paused = true;
    LG_COUNT(&w->counters[ls->index], accept_pauses, 1);
    if (ls->budget_warned) return;
    ls->budget_warned = true;
    lg_events_note(w->events, LG_EV_WARNING, w->index, -EMFILE,
                   "listener %u (worker %u): accept paused: descriptor budget reached (%u "
                   "connections of %u descriptors each within RLIMIT_NOFILE); new connections "
                   "wait in the backlog until some close",
                   ls->index, w->index, w->fd_budget, (unsigned)LG_FDS_PER_CONN);
}

void lg_lsock_budget_resume(lg_lsock_t *ls, size_t n)
{
    for (size_t i = 0; i < n; i++) {
        if (!ls[i].open || !ls[i].budget_paused || ls[i].backoff_ms != 0) continue;
        uv_timer_stop(&ls[i].backoff);
        uv_poll_start(&ls[i].poll, UV_READABLE, on_readable);
    }
}

static void on_readable(uv_poll_t *h, int status, int events)
{
    (void)events;
    lg_lsock_t *ls = h->data;
    lg_wctx_t *w = ls->w;
    if (status < 0) {
        pause_accepting(ls, -status);
        return;
    }
    for (int n = 0; n < LG_ACCEPTS_PER_WAKEUP && ls->open; n++) {
        if (!w->stopping && over_fd_budget(w)) {
            budget_pause(ls);
            return;
        }
        struct sockaddr_storage ss;
        socklen_t len = sizeof(ss);
        int fd = accept4(ls->fd, (struct sockaddr *)&ss, &len, SOCK_NONBLOCK | SOCK_CLOEXEC);
        if (fd < 0) {
            int err = errno;
            if (err == EAGAIN || err == EWOULDBLOCK) return;
            if (err == EINTR || err == ECONNABORTED || err == EPROTO || err == EPERM ||
                err == ENETDOWN || err == ENOPROTOOPT || err == EHOSTDOWN || err == ENONET ||
                err == EHOSTUNREACH || err == EOPNOTSUPP || err == ENETUNREACH) {
                continue;
            }
            pause_accepting(ls, err);
            return;
        }
        ls->backoff_ms = 0;
        ls->budget_paused = false;
        if (w->stopping) {
            close(fd);
            continue;
        }
        accepted(ls, fd, (const struct sockaddr *)&ss);
    }
}

int lg_lsock_open(lg_lsock_t *ls, lg_wctx_t *w, unsigned index, int fd)
{
    ls->w = w;
    ls->index = index;
    int rc = uv_poll_init(w->loop, &ls->poll, fd);
    if (rc != 0) return rc;
    ls->fd = fd;
    /* A socket taken over from another engine keeps that engine's options (changing them would
     * change its connections too): its connections then set their own. */
    ls->opts_inherited = lg_conn_sockopts_match(fd, w->conf);
    uv_timer_init(w->loop, &ls->backoff);
    ls->poll.data = ls;
    ls->backoff.data = ls;
    ls->open = true;
    uv_poll_start(&ls->poll, UV_READABLE, on_readable);
    return 0;
}

static void on_poll_closed(uv_handle_t *h)
{
    lg_lsock_t *ls = h->data;
    if (ls->fd >= 0) close(ls->fd);
    ls->fd = -1;
}

void lg_lsock_close(lg_lsock_t *ls, uv_close_cb timer_closed)
{
    if (!ls->open) return;
    ls->open = false;
    uv_close((uv_handle_t *)&ls->poll, on_poll_closed);
    uv_close((uv_handle_t *)&ls->backoff, timer_closed);
}
