/*
 * lg_listener.c — accepting connections on a worker's listen sockets.
 *
 * The worker watches each listen fd with a uv_poll_t and calls accept4() itself instead of using
 * uv_listen(), for three reasons: a bounded number of accepts per wakeup
 * (LG_ACCEPTS_PER_WAKEUP, so a connection flood cannot starve relaying); admission before any
 * allocation (maxConnections refuses with a bare close()); and control over EMFILE/ENFILE. On
 * those the worker stops watching the socket for a pause (LG_ACCEPT_BACKOFF_MIN ms, doubling to
 * LG_ACCEPT_BACKOFF_MAX) while established connections keep relaying; pending connections wait
 * in the kernel's backlog meanwhile instead of being accepted and dropped.
 *
 * accept4() errno → action (after HAProxy's table):
 *   EAGAIN/EWOULDBLOCK             nothing more pending: wait for the next readiness event
 *   EINTR, ECONNABORTED, EPROTO,   this one connection failed or vanished: try the next
 *   EPERM (firewall), ENETDOWN...
 *   EMFILE, ENFILE, ENOBUFS, ENOMEM  out of a resource: pause accepting, count, warn once
 *   anything else                  unexpected: pause as for EMFILE and report an 'error' event
 */
#include "lg_conn.h"
#include "lg_connect.h"
#include "lg_worker.h"

#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

static void on_backoff(uv_timer_t *t)
{
    lg_lsock_t *ls = t->data;
    if (!ls->open) return;
    uv_poll_start(&ls->poll, UV_READABLE, lg_listener_on_readable);
}

static void pause_accepting(lg_lsock_t *ls, int err)
{
    lg_worker_t *w = ls->w;
    if (!ls->open) return;
    bool first = ls->backoff_ms == 0;
    ls->backoff_ms =
        first ? LG_ACCEPT_BACKOFF_MIN : LG_MIN(ls->backoff_ms * 2, LG_ACCEPT_BACKOFF_MAX);
    uv_poll_stop(&ls->poll);
    uv_timer_start(&ls->backoff, on_backoff, ls->backoff_ms, 0);
    LG_COUNT(&w->counters[ls->index], accept_pauses, 1);
    if (first) {
        bool expected = err == EMFILE || err == ENFILE || err == ENOBUFS || err == ENOMEM;
        lg_engine_postf(w->engine, expected ? LG_EV_WARNING : LG_EV_ERROR, w->index, -err,
                        "listener %u (worker %u): accept failed: %s; pausing accepts for %u ms "
                        "(established connections keep running)",
                        ls->index, w->index, strerror(err), ls->backoff_ms);
    }
}

void lg_worker_fd_pressure(lg_worker_t *w, int err)
{
    for (size_t i = 0; i < w->engine->conf.n_listeners; i++) {
        lg_lsock_t *ls = &w->lsock[i];
        /* Already paused: leave its timer alone (it doubles on the next failed accept). */
        if (ls->open && !uv_is_active((uv_handle_t *)&ls->backoff)) pause_accepting(ls, err);
    }
}

/*
 * Reserve a slot in the listener's connection count (and, on a connect listener, in its in-head
 * count); false when maxConnections or the head limit is reached.
 */
static bool admit(lg_worker_t *w, unsigned lis)
{
    lg_engine_t *e = w->engine;
    const lg_listener_conf_t *lc = &e->conf.listeners[lis];
    lg_listener_shared_t *sh = &e->lis[lis];
    unsigned prev = atomic_fetch_add_explicit(&sh->active, 1, memory_order_relaxed);
    if (lc->max_connections != 0 && prev >= lc->max_connections) {
        atomic_fetch_sub_explicit(&sh->active, 1, memory_order_relaxed);
        return false;
    }
    if (lc->kind == LG_LISTENER_CONNECT) {
        prev = atomic_fetch_add_explicit(&sh->in_head, 1, memory_order_relaxed);
        if (prev >= lc->head_limit) {
            atomic_fetch_sub_explicit(&sh->in_head, 1, memory_order_relaxed);
            atomic_fetch_sub_explicit(&sh->active, 1, memory_order_relaxed);
            return false;
        }
    }
    return true;
}

void lg_listener_on_readable(uv_poll_t *h, int status, int events)
{
    (void)events;
    lg_lsock_t *ls = h->data;
    lg_worker_t *w = ls->w;
    if (status < 0) {
        pause_accepting(ls, -status);
        return;
    }
    for (int n = 0; n < LG_ACCEPTS_PER_WAKEUP && ls->open; n++) {
        int fd = accept4(ls->fd, NULL, NULL, SOCK_NONBLOCK | SOCK_CLOEXEC);
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
        if (w->stopping) {
            close(fd);
            continue;
        }
        if (!admit(w, ls->index)) {
            LG_COUNT(&w->counters[ls->index], refused_max_connections, 1);
            if (w->engine->conf.listeners[ls->index].kind == LG_LISTENER_CONNECT) {
                lg_connect_refuse_fd(w, ls->index, fd); /* 503, no allocation */
            } else {
                close(fd);
            }
            continue;
        }
        lg_conn_accept(w, ls->index, fd);
    }
}
