/*
 * lg_relay.c — relaying bytes through the worker's scheduler (see lg_relay.h).
 *
 * Invariants:
 *  - A flow has at most one write in flight (its current grant, `inflight` bytes at the head of
 *    its queue). The queue is consumed only when that write completes (at once when the socket
 *    takes the bytes synchronously), so the bytes a write points at stay alive and in place; new
 *    reads append behind them.
 *  - Buffers are taken from the pool in the alloc callback (data is ready) and go back when
 *    their last byte is written, or when the connection is freed.
 *  - Once a connection is CLOSING nothing here touches its sockets again; write and shutdown
 *    callbacks cancelled by uv_close() only release their request.
 */
#include "lg_relay.h"
#include "lg_tls.h"

#include <stddef.h>
#include <string.h>

#define LG_RELAY_MAX_IOV 4 /* buffers per write: uv_write copies up to 4 without allocating */

/* A write request; owned by the flow while in flight, then cached by the worker. */
struct lg_wreq_s {
    uv_write_t req;
    lg_wreq_t *next_free;
    lg_flow_t *flow;
    size_t len;
};

static lg_wreq_t *wreq_get(lg_worker_t *w)
{
    lg_wreq_t *r = w->wreq_cache;
    if (r != NULL) {
        w->wreq_cache = r->next_free;
        w->n_wreq_cache--;
        return r;
    }
    return lg_malloc(sizeof(*r));
}

static void wreq_put(lg_worker_t *w, lg_wreq_t *r)
{
    if (w->n_wreq_cache < LG_WREQ_CACHE_MAX) {
        r->next_free = w->wreq_cache;
        w->wreq_cache = r;
        w->n_wreq_cache++;
    } else {
        lg_free(r);
    }
}

void lg_relay_wreq_cache_free(lg_worker_t *w)
{
    while (w->wreq_cache != NULL) {
        lg_wreq_t *r = w->wreq_cache;
        w->wreq_cache = r->next_free;
        lg_free(r);
    }
    w->n_wreq_cache = 0;
}

static bool is_fifo(const lg_worker_t *w)
{
    return w->engine->conf.sched_kind == LG_SCHED_FIFO;
}

static size_t high_watermark(const lg_worker_t *w)
{
    return w->engine->conf.max_queued_per_flow;
}

static void relay_alloc(uv_handle_t *h, size_t suggested, uv_buf_t *buf);
static void relay_read(uv_stream_t *s, ssize_t nread, const uv_buf_t *buf);

static int flow_read_start(lg_flow_t *f)
{
    if (f->reading || f->eof) return 0;
    int rc = uv_read_start(f->src, relay_alloc, relay_read);
    if (rc == 0) f->reading = true;
    return rc;
}

static void flow_read_stop(lg_flow_t *f)
{
    if (!f->reading) return;
    uv_read_stop(f->src);
    f->reading = false;
}

static void on_shutdown(uv_shutdown_t *req, int status)
{
    lg_flow_t *f = req->data;
    lg_free(req);
    lg_conn_t *c = f->conn;
    if (c->state == LG_CONN_CLOSING) return;
    f->shut_done = true;
    /* LINGER: a TLS alert was the last thing to send to the client; once its FIN is out, close.
     * (The upstream's FIN may complete first: that must not cut the alert off.) */
    if (status < 0 || (c->c2u.shut_done && c->u2c.shut_done) ||
        (c->state == LG_CONN_LINGER && f->to_client)) {
        lg_conn_relay_done(c);
    }
}

/* The source has ended and every queued byte is written: pass the FIN on. */
static void flow_maybe_shutdown(lg_conn_t *c, lg_flow_t *f)
{
    /* No destination yet (TLS client done before the upstream connected): lg_relay_start
     * comes back here once there is one. */
    if (!f->eof || f->shut || f->q.bytes != 0 || f->n_writes != 0 || f->dst == NULL ||
        c->state == LG_CONN_CLOSING) {
        return;
    }
    f->shut = true;
    uv_shutdown_t *req = lg_malloc(sizeof(*req));
    if (req == NULL) {
        LG_COUNT(lg_conn_counters(c), out_of_memory, 1);
        lg_conn_relay_done(c);
        return;
    }
    req->data = f;
    if (uv_shutdown(req, f->dst, on_shutdown) != 0) {
        lg_free(req);
        lg_conn_relay_done(c);
    }
}

static void on_write(uv_write_t *req, int status);

/* `len` bytes at the head of f's queue reached the destination. */
static void flow_wrote(lg_conn_t *c, lg_flow_t *f, size_t len)
{
    lg_worker_t *w = c->w;
    lg_bufq_consume(&f->q, &w->pool, len);
    f->bytes += len;
    if (f->to_client) LG_COUNT(lg_conn_counters(c), bytes_to_clients, len);
    c->last_activity = uv_now(&w->loop);
}

/* Resume a paused source once its queue is below half the watermark. False: the connection
 * is closing. */
static bool flow_maybe_resume(lg_conn_t *c, lg_flow_t *f)
{
    if (c->state == LG_CONN_CLOSING) return false;
    if (f->paused && f->q.mem < high_watermark(c->w) / 2) {
        f->paused = false;
        if (flow_read_start(f) != 0) {
            lg_conn_relay_done(c);
            return false;
        }
    }
    return true;
}

/* A grant is written: give the turn back, resume a paused source, pass a FIN on. */
static void flow_grant_done(lg_conn_t *c, lg_flow_t *f)
{
    lg_worker_t *w = c->w;
    if (!is_fifo(w)) {
        lg_drr_done(&w->drr, &f->drr);
        if (lg_drr_pending(&w->drr)) lg_worker_sched_kick(w);
    }
    if (flow_maybe_resume(c, f)) flow_maybe_shutdown(c, f);
}

/* Peek up to `want` bytes at the head of f's queue into uv buffers; returns the count. */
static size_t flow_bufs(lg_flow_t *f, size_t want, uv_buf_t *bufs, size_t *covered)
{
    uint8_t *bases[LG_RELAY_MAX_IOV];
    size_t lens[LG_RELAY_MAX_IOV];
    *covered = 0;
    size_t n = lg_bufq_peek(&f->q, want, bases, lens, LG_RELAY_MAX_IOV, covered);
    for (size_t i = 0; i < n; i++)
        bufs[i] = uv_buf_init((char *)bases[i], (unsigned)lens[i]);
    return n;
}

/*
 * Write up to `grant` bytes from the head of f's queue.
 *
 * The bytes are first written synchronously (uv_try_write); only what the socket does not take
 * at once goes through uv_write. Besides saving a loop iteration per write, this avoids a
 * syscall: libuv re-arms the descriptor with epoll_ctl after every completed uv_write (uv__drain
 * stops POLLOUT even when it was never started), which cost one epoll_ctl per write — about 8 %
 * of the proxy's CPU at 600 MB/s of TLS (bench S2, 1 MiB responses).
 */
static void flow_write(lg_conn_t *c, lg_flow_t *f, size_t grant)
{
    lg_worker_t *w = c->w;
    uv_buf_t bufs[LG_RELAY_MAX_IOV];
    size_t covered = 0;
    size_t n;
    for (;;) {
        n = flow_bufs(f, grant, bufs, &covered);
        if (n == 0 || covered == 0) {
            /* Nothing queued after all: finish the grant so the flow leaves the scheduler. */
            if (!is_fifo(w)) lg_drr_done(&w->drr, &f->drr);
            return;
        }
        if (!is_fifo(w) && covered < grant) {
            /* More than LG_RELAY_MAX_IOV buffers: hand back what this write cannot carry. */
            lg_drr_add(&w->drr, &f->drr, grant - covered);
        }
        int done = uv_try_write(f->dst, bufs, (unsigned)n);
        if (done < 0 && done != UV_EAGAIN) {
            lg_conn_relay_done(c);
            return;
        }
        if (done <= 0) break;
        flow_wrote(c, f, (size_t)done);
        if ((size_t)done < covered) {
            /* The socket is full: the rest goes through uv_write, which waits for POLLOUT. */
            n = flow_bufs(f, covered - (size_t)done, bufs, &covered);
            break;
        }
        /* FIFO writes whatever has been queued meanwhile (bounded by the watermark). */
        if (is_fifo(w) && f->q.bytes > 0) {
            if (!flow_maybe_resume(c, f)) return;
            grant = f->q.bytes;
            continue;
        }
        flow_grant_done(c, f);
        return;
    }
    lg_wreq_t *r = wreq_get(w);
    if (r == NULL) {
        LG_COUNT(lg_conn_counters(c), out_of_memory, 1);
        lg_conn_relay_done(c);
        return;
    }
    r->flow = f;
    r->len = covered;
    f->inflight += covered;
    f->n_writes++;
    int rc = uv_write(&r->req, f->dst, bufs, (unsigned)n, on_write);
    if (rc != 0) {
        f->inflight -= covered;
        f->n_writes--;
        wreq_put(w, r);
        lg_conn_relay_done(c);
    }
}

static void on_write(uv_write_t *req, int status)
{
    lg_wreq_t *r = LG_CONTAINER_OF(req, lg_wreq_t, req);
    lg_flow_t *f = r->flow;
    size_t len = r->len;
    lg_conn_t *c = f->conn;
    lg_worker_t *w = c->w;
    wreq_put(w, r);
    f->inflight -= len;
    f->n_writes--;
    if (c->state == LG_CONN_CLOSING) return;
    if (status < 0) {
        lg_conn_relay_done(c);
        return;
    }
    flow_wrote(c, f, len);
    if (is_fifo(w) && f->q.bytes > 0) {
        if (flow_maybe_resume(c, f)) flow_write(c, f, f->q.bytes);
        return;
    }
    flow_grant_done(c, f);
}

void lg_relay_flow_queued(lg_conn_t *c, lg_flow_t *f, size_t n)
{
    lg_worker_t *w = c->w;
    /* Closed meanwhile (a failed write inside the same SSL_write, say): the queue is freed with
     * the connection, and its flows must not rejoin the scheduler. */
    if (c->state == LG_CONN_CLOSING) return;
    if (f->dst == NULL) {
        f->held += n; /* no destination yet: scheduled by lg_relay_start */
        return;
    }
    if (is_fifo(w)) {
        if (f->n_writes == 0) flow_write(c, f, f->q.bytes);
        return;
    }
    lg_drr_add(&w->drr, &f->drr, n);
    lg_worker_sched_kick(w);
}

/* Stop reading a flow's source while its queue holds more than the high watermark. */
static void check_watermark(lg_worker_t *w, lg_flow_t *f)
{
    if (f->q.mem >= high_watermark(w)) {
        flow_read_stop(f);
        f->paused = true;
    }
}

/* Reads are relayed in RELAY, and for TLS connections also while the handshake runs or the
 * upstream is still being dialled (ciphertext must reach OpenSSL). */
static bool relaying(const lg_conn_t *c)
{
    return c->state == LG_CONN_RELAY ||
           (c->tls != NULL && (c->state == LG_CONN_HANDSHAKE || c->state == LG_CONN_CONNECTING));
}

/* Bytes read on a TLS connection: ciphertext from the client, or plaintext from the upstream. */
static void tls_read(lg_conn_t *c, lg_flow_t *f, lg_buf_t *b, size_t n)
{
    lg_worker_t *w = c->w;
    c->last_activity = uv_now(&w->loop);
    int rc;
    if (f == &c->c2u) {
        LG_COUNT(lg_conn_counters(c), bytes_from_clients, (uint64_t)n);
        rc = lg_tls_feed(c, b->data, n);
        lg_buf_put(&w->pool, b);
        if (c->state == LG_CONN_CLOSING) return; /* a write inside the feed failed (FIFO) */
        if (rc == LG_TLS_READY) {
            lg_conn_tls_ready(c);
            if (c->state == LG_CONN_CLOSING) return;
            rc = LG_TLS_OK;
        }
        if (rc != LG_TLS_OK) {
            lg_conn_tls_failed(c, rc);
            return;
        }
        check_watermark(w, f);
        if (c->tls->peer_closed && !f->eof) {
            /* close_notify: the client's data has ended cleanly (a FIN will follow). */
            f->eof = true;
            flow_read_stop(f);
            flow_maybe_shutdown(c, f);
        }
        return;
    }
    lg_drr_observe_read(&w->drr, n);
    rc = lg_tls_encrypt(c, b->data, n);
    lg_buf_put(&w->pool, b);
    if (c->state == LG_CONN_CLOSING) return;
    if (rc != LG_TLS_OK) {
        lg_conn_tls_failed(c, rc);
        return;
    }
    check_watermark(w, f);
}

/*
 * EOF on a TLS connection. From the client without close_notify: a truncation (RFC 8446 §6.1),
 * counted, and the upstream is closed rather than shut down gracefully. From the upstream: send
 * close_notify, then FIN once it is written. Returns true when the caller should treat it as an
 * ordinary end of the flow.
 */
static bool tls_eof(lg_conn_t *c, lg_flow_t *f)
{
    if (f == &c->c2u) {
        if (c->tls->peer_closed) return true;
        LG_COUNT(lg_conn_counters(c), tls_truncations, 1);
        lg_conn_relay_done(c);
        return false;
    }
    lg_tls_close_notify(c);
    return true;
}

static lg_buf_t *buf_of(const uv_buf_t *buf)
{
    return (lg_buf_t *)(void *)(buf->base - offsetof(lg_buf_t, data));
}

static void relay_alloc(uv_handle_t *h, size_t suggested, uv_buf_t *buf)
{
    (void)suggested;
    lg_conn_t *c = h->data;
    lg_buf_t *b = lg_buf_get(&c->w->pool);
    if (b == NULL) {
        buf->base = NULL; /* the read callback sees UV_ENOBUFS */
        buf->len = 0;
        return;
    }
    buf->base = (char *)b->data;
    buf->len = b->cap;
}

static void relay_read(uv_stream_t *s, ssize_t nread, const uv_buf_t *buf)
{
    lg_conn_t *c = s->data;
    lg_worker_t *w = c->w;
    lg_flow_t *f = s == (uv_stream_t *)&c->client ? &c->c2u : &c->u2c;
    lg_buf_t *b = buf->base != NULL ? buf_of(buf) : NULL;
    if (nread > 0 && c->state == LG_CONN_RELAY && c->tls == NULL) {
        b->off = 0;
        b->len = (uint32_t)nread;
        if (!f->to_client) LG_COUNT(lg_conn_counters(c), bytes_from_clients, (uint64_t)nread);
        c->last_activity = uv_now(&w->loop);
        lg_drr_observe_read(&w->drr, (size_t)nread);
        lg_bufq_push(&f->q, &w->pool, b);
        check_watermark(w, f);
        lg_relay_flow_queued(c, f, (size_t)nread);
        return;
    }
    if (nread > 0 && c->tls != NULL && relaying(c)) {
        tls_read(c, f, b, (size_t)nread);
        return;
    }
    lg_buf_put(&w->pool, b);
    if (nread == 0 || !relaying(c)) return;
    if (nread == UV_EOF) {
        if (c->tls != NULL && !tls_eof(c, f)) return;
        f->eof = true;
        flow_read_stop(f);
        flow_maybe_shutdown(c, f);
        return;
    }
    if (nread == UV_ENOBUFS) LG_COUNT(lg_conn_counters(c), out_of_memory, 1);
    lg_conn_relay_done(c);
}

int lg_relay_queue_copy(lg_conn_t *c, lg_flow_t *f, const uint8_t *data, size_t len)
{
    size_t n = lg_bufq_append(&f->q, &c->w->pool, data, len);
    if (n > 0) lg_relay_flow_queued(c, f, n);
    return n == len ? 0 : -ENOMEM;
}

/* Schedule the bytes a flow collected before it had a destination. */
static void release_held(lg_conn_t *c, lg_flow_t *f)
{
    size_t n = f->held;
    f->held = 0;
    if (n > 0 && c->state != LG_CONN_CLOSING) lg_relay_flow_queued(c, f, n);
}

void lg_relay_flush_then_close(lg_conn_t *c)
{
    /* u2c.eof is set: once its queue is written, flow_maybe_shutdown sends the FIN, and
     * on_shutdown closes the connection because it is LINGER. */
    flow_read_stop(&c->u2c);
    flow_maybe_shutdown(c, &c->u2c);
}

int lg_relay_client_start(lg_conn_t *c)
{
    c->c2u.src = (uv_stream_t *)&c->client;
    c->u2c.dst = (uv_stream_t *)&c->client;
    release_held(c, &c->u2c);
    return c->state == LG_CONN_CLOSING ? 0 : flow_read_start(&c->c2u);
}

int lg_relay_start(lg_conn_t *c)
{
    c->c2u.src = (uv_stream_t *)&c->client;
    c->c2u.dst = lg_conn_up_stream(c);
    c->u2c.src = lg_conn_up_stream(c);
    c->u2c.dst = (uv_stream_t *)&c->client;
    /* Bytes queued before the relay started (a ClientHello, a CONNECT response, pipelined
     * bytes, plaintext decrypted while dialling) go out first. */
    release_held(c, &c->u2c);
    release_held(c, &c->c2u);
    if (c->state != LG_CONN_RELAY) return 0;
    flow_maybe_shutdown(c, &c->c2u); /* the client may have finished already */
    if (c->state != LG_CONN_RELAY) return 0;
    int rc = flow_read_start(&c->c2u);
    if (rc == 0) rc = flow_read_start(&c->u2c);
    return rc;
}

void lg_relay_flow_release(lg_conn_t *c, lg_flow_t *f)
{
    lg_drr_remove(&c->w->drr, &f->drr);
    lg_bufq_clear(&f->q, &c->w->pool);
}

void lg_relay_sched_run(uv_check_t *h)
{
    lg_worker_t *w = h->data;
    for (int i = 0; i < LG_GRANTS_PER_RUN; i++) {
        size_t grant = 0;
        lg_drr_flow_t *df = lg_drr_next(&w->drr, &grant);
        if (df == NULL) break;
        lg_flow_t *f = LG_CONTAINER_OF(df, lg_flow_t, drr);
        flow_write(f->conn, f, grant);
    }
    LG_PUBLISH(w->pub_quantum, w->drr.quantum);
    LG_PUBLISH(w->pub_grants, w->drr.grants);
    LG_PUBLISH(w->pub_granted_bytes, w->drr.granted_bytes);
    if (!lg_drr_pending(&w->drr) && w->sched_active) {
        uv_check_stop(&w->sched_check);
        uv_idle_stop(&w->sched_idle);
        w->sched_active = false;
    }
}
