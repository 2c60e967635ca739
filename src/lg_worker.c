/*
 * lg_worker.c — a worker thread's loop, inbox and stop sequence (see lg_worker.h).
 *
 * Handles owned by a worker: the inbox async, the scheduler's check and idle handles, the
 * reaper's idle handle, the grace timer, and per listener a poll handle (listen fd readiness) and
 * a backoff timer. They are all initialised on the JS thread in lg_worker_start() before the
 * thread exists (libuv allows a loop to be set up on one thread and run on another when the two
 * never overlap), so a setup failure is reported synchronously by start(). The loop ends when
 * every handle is closed: that is how a worker exits.
 */
#include "lg_worker.h"
#include "lg_verify.h"

#include <pthread.h>
#include <sched.h>
#include <string.h>
#include <unistd.h>

static void on_conn_gone(void *arg);
static void on_fd_pressure(void *arg, int err);

int lg_worker_init(lg_worker_t *w, const lg_worker_env_t *env, unsigned index)
{
    memset(w, 0, sizeof(*w));
    lg_wctx_t *x = &w->ctx;
    x->loop = &w->loop;
    x->index = index;
    x->conf = env->conf;
    x->events = env->events;
    x->lis = env->lis;
    x->slot = env->slot;
    x->limit = env->limit;
    x->blocklog = env->blocklog;
    x->affinity = env->affinity;
    x->pipes = env->pipes;
    x->admits_to_sweep = LG_PROTECT_SWEEP_EVERY;
    uint64_t ja_key[2] = {(uint64_t)(uintptr_t)w, index};
    (void)uv_random(NULL, NULL, ja_key, sizeof(ja_key), 0, NULL); /* else the fallback above */
    lg_ja_cache_init(&x->ja_cache, ja_key);
    x->pending = &w->pending;
    x->counters = w->counters;
    x->conn_gone = on_conn_gone;
    x->fd_pressure = on_fd_pressure;
    x->up_arg = w;
    w->lsock = NULL;
    w->n_lsock = 0;
    w->ev_ready = lg_event_alloc(NULL, LG_EV_READY, index);
    w->ev_exit = lg_event_alloc(NULL, LG_EV_WORKER_EXIT, index);
    w->stop_msg = lg_calloc(1, sizeof(*w->stop_msg));
    int rc = w->ev_ready && w->ev_exit && w->stop_msg ? -pthread_mutex_init(&w->inbox_lock, NULL)
                                                      : -ENOMEM;
    if (rc == 0) {
        rc = lg_pending_init(&w->pending);
        if (rc != 0) pthread_mutex_destroy(&w->inbox_lock);
    }
    if (rc != 0) {
        lg_free(w->ev_ready);
        lg_free(w->ev_exit);
        lg_free(w->stop_msg);
        return rc;
    }
    lg_bufpool_init(&x->pool, env->conf->read_buffer_size);
#ifdef LG_FAULT_INJECTION
    x->pool.max_free = 0; /* no spares: every buffer is a real (failable, countable) allocation */
#endif
    lg_drr_init(&x->sched.drr, env->conf->sched_quantum);
    return 0;
}

static void free_msg(lg_msg_t *m)
{
    lg_route_destroy(m->decision);
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
    lg_free(w->ev_ready);
    lg_free(w->ev_exit);
    lg_free(w->stop_msg);
    lg_free(w->lsock);
    w->lsock = NULL;
    w->n_lsock = 0;
    w->ev_ready = w->ev_exit = NULL;
    w->stop_msg = NULL;
    pthread_mutex_destroy(&w->inbox_lock);
    lg_pending_destroy(&w->pending);
}

static int post(lg_worker_t *w, lg_msg_t *m)
{
    pthread_mutex_lock(&w->inbox_lock);
    if (w->closing) {
        /* The async handle is closed or closing: the worker is already on its way out. */
        pthread_mutex_unlock(&w->inbox_lock);
        free_msg(m);
        return -ESHUTDOWN;
    }
    m->next = w->inbox;
    w->inbox = m;
    uv_async_send(&w->inbox_async);
    pthread_mutex_unlock(&w->inbox_lock);
    return 0;
}

static int post_new(lg_worker_t *w, int type, uint32_t grace_ms, uint64_t serial,
                    lg_route_t *decision)
{
    lg_msg_t *m = NULL;
    if (type == LG_MSG_STOP && w->stop_msg != NULL) {
        m = w->stop_msg; /* JS thread only, like every stop */
        w->stop_msg = NULL;
    } else {
        m = lg_calloc(1, sizeof(*m));
    }
    if (m == NULL) {
        lg_route_destroy(decision);
        return -ENOMEM;
    }
    m->type = type;
    m->grace_ms = grace_ms;
    m->serial = serial;
    m->decision = decision;
    return post(w, m);
}

int lg_worker_post_resolve(lg_worker_t *w, uint64_t serial, lg_route_t *decision)
{
    return post_new(w, LG_MSG_RESOLVE, 0, serial, decision);
}

int lg_worker_post_stop(lg_worker_t *w, uint32_t grace_ms)
{
    return post_new(w, LG_MSG_STOP, grace_ms, 0, NULL);
}

int lg_worker_post_refresh(lg_worker_t *w)
{
    return post_new(w, LG_MSG_REFRESH, 0, 0, NULL);
}

static void on_handle_closed(uv_handle_t *h)
{
    (void)h;
}

static void close_lsocks(lg_worker_t *w)
{
    for (size_t i = 0; i < w->n_lsock; i++)
        lg_lsock_close(&w->lsock[i], on_handle_closed);
}

/* Close the worker's own handles; the loop ends once they are closed. */
static void worker_finish(lg_worker_t *w)
{
    if (w->closing) return;
    pthread_mutex_lock(&w->inbox_lock);
    w->closing = true; /* no more uv_async_send on the inbox from now on */
    pthread_mutex_unlock(&w->inbox_lock);
    LG_PUBLISH(w->ctx.pub_phase, LG_WPHASE_CLOSING);
    close_lsocks(w);
    uv_close((uv_handle_t *)&w->inbox_async, on_handle_closed);
    lg_relay_sched_close(&w->ctx, on_handle_closed);
    lg_conn_reaper_close(&w->ctx, on_handle_closed);
    uv_close((uv_handle_t *)&w->grace_timer, on_handle_closed);
}

static void drain(lg_worker_t *w)
{
    w->draining = true;
    LG_PUBLISH(w->ctx.pub_phase, LG_WPHASE_DRAINING);
    uv_timer_stop(&w->grace_timer);
    lg_conn_close_all(&w->ctx);
    /* Closing completes asynchronously; on_conn_gone() finishes the stop. */
}

static void on_grace(uv_timer_t *t)
{
    drain(t->data);
}

static void worker_stop(lg_worker_t *w, uint32_t grace_ms)
{
    if (w->closing || w->draining) return;
    uint64_t deadline = uv_now(&w->loop) + grace_ms;
    if (!w->ctx.stopping) {
        w->ctx.stopping = true;
        LG_PUBLISH(w->ctx.pub_phase, LG_WPHASE_GRACE);
        close_lsocks(w);
        if (w->ctx.n_conns == 0) {
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

static void on_conn_gone(void *arg)
{
    lg_worker_t *w = arg;
    if (w->ctx.stopping && w->ctx.n_conns == 0) worker_finish(w);
    if (!w->ctx.stopping) lg_lsock_budget_resume(w->lsock, w->n_lsock);
}

static void on_fd_pressure(void *arg, int err)
{
    lg_worker_t *w = arg;
    lg_lsock_fd_pressure(w->lsock, w->n_lsock, err);
}

static void on_inbox(uv_async_t *h)
{
    lg_worker_t *w = h->data;
    pthread_mutex_lock(&w->inbox_lock);
    lg_msg_t *m = w->inbox;
    w->inbox = NULL;
    pthread_mutex_unlock(&w->inbox_lock);
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
            if (!w->closing) lg_snapslot_get(w->ctx.slot, &w->ctx.snap, &w->ctx.snap_gen);
        } else if (fifo->type == LG_MSG_RESOLVE) {
            void *owner = lg_pending_take(&w->pending, fifo->serial);
            if (owner != NULL) {
                lg_conn_decide(owner, fifo->decision);
                fifo->decision = NULL; /* ownership passed */
            }
        }
        free_msg(fifo);
        fifo = next;
    }
}

static void worker_main(void *arg)
{
    lg_worker_t *w = arg;
    lg_events_t *events = w->ctx.events;
#ifdef LG_FAULT_INJECTION
    lg_alloc_arm_thread(); /* injected failures hit this thread's allocations */
#endif
    lg_event_t *ready = w->ev_ready, *exit_ev = w->ev_exit;
    w->ev_ready = w->ev_exit = NULL;
    snprintf(ready->u.note.message, sizeof(ready->u.note.message), "worker %u accepting",
             w->ctx.index);
    lg_events_post(events, ready);
    uv_run(&w->loop, UV_RUN_DEFAULT);
    LG_PUBLISH(w->ctx.pub_phase, LG_WPHASE_EXITED);
    /* Every handle is closed, so every connection is freed; every verification has completed
     * (the loop ran while one was queued or running). */
    lg_verify_worker_free(&w->ctx);
    lg_snapshot_unref(w->ctx.snap);
    w->ctx.snap = NULL;
    lg_relay_wreq_cache_free(&w->ctx);
    lg_bufpool_destroy(&w->ctx.pool);
    int rc = uv_loop_close(&w->loop);
    if (w->exit_code == 0 && rc != 0) w->exit_code = rc;
    exit_ev->u.note.code = w->exit_code;
    snprintf(exit_ev->u.note.message, sizeof(exit_ev->u.note.message), "worker %u exited",
             w->ctx.index);
    /* Last action: after this event the JS thread may join this thread and free the engine. */
    lg_events_post(events, exit_ev);
}

/* Undo a partial lg_worker_start on the JS thread (no thread running the loop). */
static void abandon_loop(lg_worker_t *w)
{
    w->closing = true;
    close_lsocks(w);
    uv_close((uv_handle_t *)&w->inbox_async, on_handle_closed);
    lg_relay_sched_close(&w->ctx, on_handle_closed);
    lg_conn_reaper_close(&w->ctx, on_handle_closed);
    uv_close((uv_handle_t *)&w->grace_timer, on_handle_closed);
    uv_run(&w->loop, UV_RUN_DEFAULT);
    uv_loop_close(&w->loop);
}

int lg_worker_start(lg_worker_t *w, int *fds, const unsigned *index, size_t n)
{
    w->lsock = lg_calloc(n, sizeof(*w->lsock));
    if (w->lsock == NULL) return -ENOMEM;
    for (size_t m = 0; m < n; m++)
        w->lsock[m].fd = -1;
    w->n_lsock = n;
    int rc = uv_loop_init(&w->loop);
    if (rc != 0) return rc;
    w->loop.data = w;
    /* These cannot fail on Linux for a fresh loop (they only initialise structures). */
    uv_async_init(&w->loop, &w->inbox_async, on_inbox);
    w->inbox_async.data = w;
    lg_relay_sched_init(&w->ctx);
    lg_conn_reaper_init(&w->ctx);
    uv_timer_init(&w->loop, &w->grace_timer);
    w->grace_timer.data = w;
    for (size_t m = 0; m < n; m++) {
        rc = lg_lsock_open(&w->lsock[m], &w->ctx, index[m], fds[m]);
        if (rc != 0) {
            abandon_loop(w); /* closes the fds taken so far with their handles */
            return rc;
        }
        fds[m] = -1; /* the worker's now */
    }
    rc = uv_thread_create(&w->thread, worker_main, w);
    if (rc != 0) {
        abandon_loop(w);
        return rc;
    }
    return 0;
}

int lg_worker_prioritize(lg_worker_t *w, int priority)
{
    if (priority != LG_PRIORITY_REALTIME) return 0;
    struct sched_param sp = {.sched_priority = 1};
    return -pthread_setschedparam(w->thread, SCHED_FIFO, &sp);
}

void lg_worker_join(lg_worker_t *w)
{
    uv_thread_join(&w->thread);
}
