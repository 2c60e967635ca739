/*
 * lg_worker.c — a worker thread's loop, inbox and stop sequence (see lg_worker.h).
 *
 * Handles owned by a worker: the inbox async, the scheduler's check and idle handles, the grace
 * timer, and per listener a poll handle (listen fd readiness) and a backoff timer. They are all
 * initialised on the JS thread in lg_worker_start() before the thread exists (libuv allows a loop
 * to be set up on one thread and run on another when the two never overlap), so a setup failure
 * is reported synchronously by start(). The loop ends when every handle is closed: that is how a
 * worker exits.
 */
#include "lg_worker.h"
#include "lg_conn.h"
#include "lg_relay.h"

#include <string.h>
#include <unistd.h>

int lg_worker_init(lg_worker_t *w, lg_engine_t *e, unsigned index)
{
    memset(w, 0, sizeof(*w));
    w->engine = e;
    w->index = index;
    for (size_t i = 0; i < LG_MAX_LISTENERS; i++) {
        w->lsock[i].fd = -1;
        w->lsock[i].index = (unsigned)i;
        w->lsock[i].w = w;
    }
    int rc = uv_mutex_init(&w->inbox_lock);
    if (rc != 0) return rc;
    rc = lg_pending_init(&w->pending);
    if (rc != 0) {
        uv_mutex_destroy(&w->inbox_lock);
        return rc;
    }
    lg_bufpool_init(&w->pool, e->conf.read_buffer_size);
    lg_drr_init(&w->drr, e->conf.sched_quantum);
    return 0;
}

static void free_msg(lg_msg_t *m)
{
    if (m->decision != NULL) {
        lg_route_free(m->decision);
        lg_free(m->decision);
    }
    lg_free(m);
}

void lg_worker_destroy(lg_worker_t *w)
{
    lg_msg_t *m = w->inbox;
    while (m != NULL) {
        lg_msg_t *next = m->next;
        free_msg(m);
        m = next;
    }
    w->inbox = NULL;
    uv_mutex_destroy(&w->inbox_lock);
    lg_pending_destroy(&w->pending);
}

static int post(lg_worker_t *w, lg_msg_t *m)
{
    uv_mutex_lock(&w->inbox_lock);
    if (w->closing) {
        /* The async handle is closed or closing: the worker is already on its way out. */
        uv_mutex_unlock(&w->inbox_lock);
        free_msg(m);
        return -ESHUTDOWN;
    }
    m->next = w->inbox;
    w->inbox = m;
    uv_async_send(&w->inbox_async);
    uv_mutex_unlock(&w->inbox_lock);
    return 0;
}

int lg_worker_post_resolve(lg_worker_t *w, uint64_t serial, lg_route_t *decision)
{
    lg_msg_t *m = lg_calloc(1, sizeof(*m));
    if (m == NULL) {
        if (decision != NULL) {
            lg_route_free(decision);
            lg_free(decision);
        }
        return -ENOMEM;
    }
    m->type = LG_MSG_RESOLVE;
    m->serial = serial;
    m->decision = decision;
    return post(w, m);
}

int lg_worker_post(lg_worker_t *w, int type, uint32_t grace_ms)
{
    lg_msg_t *m = lg_calloc(1, sizeof(*m));
    if (m == NULL) return -ENOMEM;
    m->type = type;
    m->grace_ms = grace_ms;
    int rc = post(w, m);
    return rc == -ESHUTDOWN ? 0 : rc;
}

static void on_handle_closed(uv_handle_t *h)
{
    (void)h;
}

static void on_lsock_closed(uv_handle_t *h)
{
    lg_lsock_t *ls = h->data;
    if (ls->fd >= 0) close(ls->fd);
    ls->fd = -1;
}

static void close_lsocks(lg_worker_t *w)
{
    for (size_t i = 0; i < w->engine->conf.n_listeners; i++) {
        lg_lsock_t *ls = &w->lsock[i];
        if (!ls->open) continue;
        ls->open = false;
        uv_close((uv_handle_t *)&ls->poll, on_lsock_closed);
        uv_close((uv_handle_t *)&ls->backoff, on_handle_closed);
    }
}

/* Close the worker's own handles; the loop ends once they are closed. */
static void worker_finish(lg_worker_t *w)
{
    if (w->closing) return;
    uv_mutex_lock(&w->inbox_lock);
    w->closing = true; /* no more uv_async_send on the inbox from now on */
    uv_mutex_unlock(&w->inbox_lock);
    close_lsocks(w);
    uv_close((uv_handle_t *)&w->inbox_async, on_handle_closed);
    uv_close((uv_handle_t *)&w->sched_check, on_handle_closed);
    uv_close((uv_handle_t *)&w->sched_idle, on_handle_closed);
    uv_close((uv_handle_t *)&w->grace_timer, on_handle_closed);
    w->sched_active = false;
}

static void drain(lg_worker_t *w)
{
    w->draining = true;
    uv_timer_stop(&w->grace_timer);
    lg_conn_close_all(w);
    /* Closing completes asynchronously; lg_worker_conn_gone() finishes the stop. */
}

static void on_grace(uv_timer_t *t)
{
    drain(t->data);
}

static void worker_stop(lg_worker_t *w, uint32_t grace_ms)
{
    if (w->closing || w->draining) return;
    uint64_t deadline = uv_now(&w->loop) + grace_ms;
    if (!w->stopping) {
        w->stopping = true;
        close_lsocks(w);
        if (w->n_conns == 0) {
            worker_finish(w);
            return;
        }
    } else if (deadline >= w->grace_deadline) {
        return; /* a later stop never extends the grace period already running */
    }
    if (grace_ms == 0) {
        drain(w);
        return;
    }
    w->grace_deadline = deadline;
    uv_timer_start(&w->grace_timer, on_grace, grace_ms, 0);
}

void lg_worker_conn_gone(lg_worker_t *w)
{
    if (w->stopping && w->n_conns == 0) worker_finish(w);
}

static void on_inbox(uv_async_t *h)
{
    lg_worker_t *w = h->data;
    uv_mutex_lock(&w->inbox_lock);
    lg_msg_t *m = w->inbox;
    w->inbox = NULL;
    uv_mutex_unlock(&w->inbox_lock);
    /* Posted LIFO: reverse to handle in order. */
    lg_msg_t *fifo = NULL;
    while (m != NULL) {
        lg_msg_t *next = m->next;
        m->next = fifo;
        fifo = m;
        m = next;
    }
    while (fifo != NULL) {
        lg_msg_t *next = fifo->next;
        if (fifo->type == LG_MSG_STOP) {
            worker_stop(w, fifo->grace_ms);
        } else if (fifo->type == LG_MSG_REFRESH) {
            /* Without this, each worker would keep the previous table (and its TLS contexts)
             * alive until its next accept. */
            if (!w->closing) lg_engine_snapshot(w->engine, &w->snap, &w->snap_gen);
        } else if (fifo->type == LG_MSG_RESOLVE) {
            lg_suspend_resolved(w, fifo->serial, fifo->decision);
            fifo->decision = NULL; /* ownership passed */
        }
        free_msg(fifo);
        fifo = next;
    }
}

static void on_sched_idle(uv_idle_t *h)
{
    /* Nothing to do: an active idle handle only keeps the next poll from blocking while some
     * flow is ready, so the check handle runs the next scheduler pass at once. */
    (void)h;
}

void lg_worker_sched_kick(lg_worker_t *w)
{
    if (w->sched_active || w->closing) return;
    w->sched_active = true;
    uv_check_start(&w->sched_check, lg_relay_sched_run);
    uv_idle_start(&w->sched_idle, on_sched_idle);
}

static void worker_main(void *arg)
{
    lg_worker_t *w = arg;
    lg_engine_t *e = w->engine;
    unsigned index = w->index;
    lg_engine_postf(e, LG_EV_READY, index, 0, "worker %u accepting", index);
    uv_run(&w->loop, UV_RUN_DEFAULT);
    /* Every handle is closed, so every connection is freed. */
    lg_snapshot_unref(w->snap);
    w->snap = NULL;
    lg_relay_wreq_cache_free(w);
    lg_bufpool_destroy(&w->pool);
    int rc = uv_loop_close(&w->loop);
    if (w->exit_code == 0 && rc != 0) w->exit_code = rc;
    /* Last action: after this event the JS thread may join this thread and free the engine. */
    lg_engine_postf(e, LG_EV_WORKER_EXIT, index, w->exit_code, "worker %u exited", index);
}

/* Undo a partial lg_worker_start on the JS thread (no thread running the loop). */
static void abandon_loop(lg_worker_t *w)
{
    w->closing = true;
    close_lsocks(w);
    uv_close((uv_handle_t *)&w->inbox_async, on_handle_closed);
    uv_close((uv_handle_t *)&w->sched_check, on_handle_closed);
    uv_close((uv_handle_t *)&w->sched_idle, on_handle_closed);
    uv_close((uv_handle_t *)&w->grace_timer, on_handle_closed);
    uv_run(&w->loop, UV_RUN_DEFAULT);
    uv_loop_close(&w->loop);
}

int lg_worker_start(lg_worker_t *w)
{
    int rc = uv_loop_init(&w->loop);
    if (rc != 0) return rc;
    w->loop.data = w;
    /* These cannot fail on Linux for a fresh loop (they only initialise structures). */
    uv_async_init(&w->loop, &w->inbox_async, on_inbox);
    w->inbox_async.data = w;
    uv_check_init(&w->loop, &w->sched_check);
    w->sched_check.data = w;
    uv_idle_init(&w->loop, &w->sched_idle);
    w->sched_idle.data = w;
    uv_timer_init(&w->loop, &w->grace_timer);
    w->grace_timer.data = w;
    for (size_t i = 0; i < w->engine->conf.n_listeners; i++) {
        lg_lsock_t *ls = &w->lsock[i];
        rc = uv_poll_init(&w->loop, &ls->poll, ls->fd);
        if (rc != 0) {
            abandon_loop(w);
            return rc;
        }
        uv_timer_init(&w->loop, &ls->backoff);
        ls->poll.data = ls;
        ls->backoff.data = ls;
        ls->open = true;
        uv_poll_start(&ls->poll, UV_READABLE, lg_listener_on_readable);
    }
    rc = uv_thread_create(&w->thread, worker_main, w);
    if (rc != 0) {
        abandon_loop(w);
        return rc;
    }
    return 0;
}
