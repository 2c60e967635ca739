/*
 * lg_relay.c — relaying bytes through the worker's scheduler (see lg_relay.h).
 *
 * Invariants:
 *  - A flow has at most one write in flight (its current grant, the first bytes of
 *    its queue). The queue is consumed only when that write completes (at once when the socket
 *    takes the bytes synchronously), so the bytes a write points at stay alive and in place; new
 *    reads append behind them.
 *  - Buffers are taken from the pool in the alloc callback (data is ready) and go back when
 *    their last byte is written, or when the relay is released.
 *  - Once a relay is dead nothing here starts I/O on its streams again; write and shutdown
 *    callbacks (cancelled by uv_close(), or completing late) only release their request.
 *  - The relay never calls its owner from inside a loop over its own state: every report is the
 *    last thing a function does, so the owner may stop the relay from the callback.
 */
#include "lg_relay.h"

#include <stddef.h>
#include <string.h>
#include <errno.h>
#include <fcntl.h>
#include <sys/epoll.h>
#include <sys/ioctl.h>
#include <unistd.h>

#define LG_RELAY_MAX_IOV  4     /* buffers per write: uv_write copies up to 4 without allocating */
#define LG_FLOW_BURST_MIN 16384 /* bytes: smallest per-flow bucket (scheduler.flowRate) */
#define LG_FLOW_BURST_DIV 10    /* a flow's bucket holds 1/10 s of its rate */
#define LG_NS_PER_MS      1000000u
#define LG_PEEK_EVENTS    64 /* interactive sources handled per look */
#define LG_SPLICE_LOOPS   16 /* splices per readiness report (libuv's read loop does 32 reads) */

/* A write request; owned by the flow while in flight, then cached by the worker. */
struct lg_wreq_s {
    uv_write_t req;
    lg_wreq_t *next_free;
    lg_flow_t *flow;
    size_t len;
};

_Static_assert(LG_FLOW_QUEUE_MAX + 2ull * LG_BUF_SIZE_MAX + LG_TURN_READ_BYTES < UINT32_MAX,
               "a flow's counts are 32 bits: held, turn_read, drr.backlog, q.bytes, q.mem");
_Static_assert((LG_TURN_READ_BUFS * LG_DRR_WEIGHT_MAX + 1ull) * LG_BUF_SIZE_MAX + LG_TURN_DRAIN <
                       UINT32_MAX &&
                   LG_TURN_READ_FLOOR <= LG_TURN_READ_BUFS * LG_BUF_SIZE_MAX,
               "turn_read (the largest read budget, the drain and one read) is 32 bits");

/* The relay a flow is embedded in (a flow holds no pointer back: 16 bytes less per connection). */
static lg_relay_t *relay_of(lg_flow_t *f)
{
    return f->to_client ? LG_CONTAINER_OF(f, lg_relay_t, u2c) : LG_CONTAINER_OF(f, lg_relay_t, c2u);
}

/* The counters of the relay's listener (bytes from and to clients, out of memory). */
static lg_counters_t *relay_counters(lg_relay_t *r)
{
    return &r->w->counters[r->lis];
}

/* A flow's destination is its sibling's source (c2u writes to where u2c reads, and back): the
 * flows keep one stream pointer each, not two (every idle connection carries both). */
static uv_stream_t *flow_dst(lg_flow_t *f)
{
    lg_relay_t *r = relay_of(f);
    return f->to_client ? r->c2u.src : r->u2c.src;
}

static lg_wreq_t *wreq_get(lg_sched_t *s)
{
    lg_wreq_t *r = s->wreq_cache;
    if (r != NULL) {
        s->wreq_cache = r->next_free;
        s->n_wreq_cache--;
        return r;
    }
    return lg_malloc(sizeof(*r));
}

static void wreq_put(lg_sched_t *s, lg_wreq_t *r)
{
    if (s->n_wreq_cache < s->wreq_cache_max) {
        r->next_free = s->wreq_cache;
        s->wreq_cache = r;
        s->n_wreq_cache++;
    } else {
        lg_free(r);
    }
}

void lg_relay_wreq_cache_free(lg_wctx_t *w)
{
    lg_sched_t *s = &w->sched;
    while (s->wreq_cache != NULL) {
        lg_wreq_t *r = s->wreq_cache;
        s->wreq_cache = r->next_free;
        lg_free(r);
    }
    s->n_wreq_cache = 0;
}

static bool is_fifo(const lg_relay_t *r)
{
    return r->w->conf->sched_kind == LG_SCHED_FIFO;
}

static size_t high_watermark(const lg_relay_t *r)
{
    return r->w->conf->max_queued_per_flow;
}

/* ---- the scheduler's handles ----------------------------------------------------------- */

static void flow_write(lg_flow_t *f, size_t grant);

static void sched_kick(lg_wctx_t *w);
static void peek_tick(lg_wctx_t *w, size_t n);
static void light_del(lg_sched_t *s, lg_flow_t *f);
static void pipe_close(lg_wctx_t *w, int rd, int wr, bool big);
static void pipes_publish(lg_wctx_t *w);

static bool pacing(const lg_sched_t *s)
{
    return s->pace.rate > 0;
}

static void pace_timer_cb(uv_timer_t *t)
{
    lg_wctx_t *w = t->data;
    w->sched.pace_waiting = false;
    if (lg_drr_pending(&w->sched.drr)) sched_kick(w);
}

/*
 * The bucket is short: stop the pass handles and sleep until `want` tokens (at least 1 ms, the
 * loop's timer resolution). The timer is armed only while flows wait.
 */
static void pace_sleep(lg_wctx_t *w, size_t want)
{
    lg_sched_t *s = &w->sched;
    if (s->active) {
        uv_check_stop(&s->check);
        uv_idle_stop(&s->idle);
        s->active = false;
    }
    if (s->pace_waiting || s->closed) return;
    uint64_t ns = lg_pace_wait(&s->pace, want);
    uint64_t ms = (ns + 999999) / 1000000;
    s->pace_waiting = true;
    uv_timer_start(&s->pace_timer, pace_timer_cb, ms ? ms : 1, 0);
}

/*
 * Cut a grant to the tokens available (the worker's bucket and the flow's own, whichever holds
 * fewer) and spend them; what is cut goes back to the flow as credit (lg_drr_return: it finishes
 * its visit first when tokens come back, so a weighted flow keeps its share). Returns the bytes
 * that may be written now (> 0 when avail > 0). Spending is a no-op for a bucket that is off.
 */
static size_t pace_grant(lg_sched_t *s, lg_flow_t *f, size_t grant, uint64_t avail)
{
    if (!pacing(s) && f->cap == NULL) return grant;
    /* Charge only what one write carries (flow_write cuts a grant at LG_RELAY_MAX_IOV buffers
     * and hands the rest back as credit): charged for the whole grant, the rest was charged
     * again at each later piece of the visit, and with small buffers a paced flow ran at a
     * fraction of its rate (4 KiB buffers, 64 KiB grants: a quarter). */
    uint8_t *bases[LG_RELAY_MAX_IOV];
    size_t lens[LG_RELAY_MAX_IOV], covered = 0;
    lg_bufq_peek(&f->q, grant, bases, lens, LG_RELAY_MAX_IOV, &covered);
    if (covered > 0 && covered < grant) {
        lg_drr_return(&s->drr, &f->drr, grant - covered);
        grant = covered;
    }
    if (grant > avail) {
        lg_drr_return(&s->drr, &f->drr, grant - (size_t)avail);
        grant = (size_t)avail;
    }
    lg_pace_spend(&s->pace, grant);
    if (f->cap != NULL) lg_pace_spend(&f->cap->pace, grant);
    return grant;
}

/*
 * Are `avail` tokens worth writing `want` bytes now? Yes when they cover it, or a quantum (a
 * whole bucket when that is smaller). Fewer, and the flow waits for the timer: handing out
 * whatever trickled in since the last pass meant one write of about 1 KB per loop turn (a paced
 * worker at 150 MB/s over 100 flows made ~150,000 writes a second, at 60 % of a CPU); waiting
 * for a quantum keeps writes quantum-sized at the same rate.
 */
static bool pace_enough(uint64_t avail, size_t want, size_t quantum, uint64_t burst)
{
    return avail >= LG_MIN((uint64_t)want, LG_MIN((uint64_t)quantum, burst));
}

/* ---- per-flow caps (scheduler.flowRate) ---------------------------------------------------- */

static void flow_timer_cb(uv_timer_t *t);

static void flow_timer_start(lg_sched_t *s, uint64_t at, uint64_t now)
{
    if (s->closed) return;
    uint64_t ms = at > now ? (at - now + LG_NS_PER_MS - 1) / LG_NS_PER_MS : 1;
    s->flow_timer_at = at;
    s->flow_timer_armed = true;
    uv_timer_start(&s->flow_timer, flow_timer_cb, ms ? ms : 1, 0);
}

static void flow_unpark(lg_sched_t *s, lg_flow_t *f)
{
    lg_flowcap_t *k = f->cap;
    if (k->park_prev) {
        k->park_prev->cap->park_next = k->park_next;
    } else {
        s->parked = k->park_next;
    }
    if (k->park_next) k->park_next->cap->park_prev = k->park_prev;
    k->park_next = k->park_prev = NULL;
    k->parked = false;
    if (s->parked == NULL && s->flow_timer_armed) {
        uv_timer_stop(&s->flow_timer); /* nobody waits: no wakeup */
        s->flow_timer_armed = false;
    }
}

/*
 * f was visited with no tokens of its own: it handed its grant back and stays BUSY, off the
 * round, until a quantum's worth of its tokens is there (its whole bucket if smaller).
 */
static void flow_park(lg_sched_t *s, lg_flow_t *f, uint64_t now)
{
    lg_flowcap_t *k = f->cap;
    uint64_t want = LG_MIN((uint64_t)lg_drr_flow_quantum(&s->drr, &f->drr), k->pace.burst);
    k->park_until = now + lg_pace_wait(&k->pace, want);
    k->parked = true;
    k->park_prev = NULL;
    k->park_next = s->parked;
    if (s->parked) s->parked->cap->park_prev = f;
    s->parked = f;
    if (!s->flow_timer_armed || k->park_until < s->flow_timer_at) {
        flow_timer_start(s, k->park_until, now);
    }
}

/* Bring back every parked flow that is due (the loop's ms clock may fire up to 1 ms early). */
static void flow_timer_cb(uv_timer_t *t)
{
    lg_wctx_t *w = t->data;
    lg_sched_t *s = &w->sched;
    s->flow_timer_armed = false;
    uint64_t now = uv_hrtime(), next = UINT64_MAX;
    for (lg_flow_t *f = s->parked, *nx; f != NULL; f = nx) {
        nx = f->cap->park_next;
        if (f->cap->park_until <= now + LG_NS_PER_MS) {
            flow_unpark(s, f);
            lg_drr_done(&s->drr, &f->drr); /* back at the head with its credit */
        } else {
            next = LG_MIN(next, f->cap->park_until);
        }
    }
    if (next != UINT64_MAX) flow_timer_start(s, next, now);
    if (lg_drr_pending(&s->drr)) sched_kick(w);
}

/* The flow's own tokens (UINT64_MAX when it has no cap). */
static uint64_t flow_avail(lg_flow_t *f, uint64_t *now)
{
    if (f->cap == NULL) return UINT64_MAX;
    if (*now == 0) *now = uv_hrtime();
    return lg_pace_avail(&f->cap->pace, *now);
}

static void sched_run(uv_check_t *h)
{
    lg_wctx_t *w = h->data;
    lg_sched_t *s = &w->sched;
    for (int i = 0; i < LG_GRANTS_PER_RUN; i++) {
        uint64_t avail = UINT64_MAX, now = 0;
        if (pacing(s) && lg_drr_pending(&s->drr)) {
            now = uv_hrtime();
            avail = lg_pace_avail(&s->pace, now);
            if (avail == 0) {
                pace_sleep(w, s->drr.quantum); /* the next visit is not known yet */
                break;
            }
        }
        size_t grant = 0;
        lg_drr_flow_t *df = lg_drr_next(&s->drr, &grant);
        if (df == NULL) break;
        lg_flow_t *f = LG_CONTAINER_OF(df, lg_flow_t, drr);
        size_t fq = lg_drr_flow_quantum(&s->drr, df);
        if (pacing(s) && !pace_enough(avail, grant, fq, s->pace.burst)) {
            /* The visit waits, first in the round, for a quantum's worth of tokens. */
            lg_drr_return(&s->drr, df, grant);
            lg_drr_done(&s->drr, df);
            /* what pace_enough asks for this visit (a small grant need not wait a quantum) */
            pace_sleep(w, LG_MIN(grant, LG_MIN(fq, (size_t)s->pace.burst)));
            break;
        }
        uint64_t favail = flow_avail(f, &now);
        if (favail == 0 ||
            (f->cap != NULL && !pace_enough(favail, grant, fq, f->cap->pace.burst))) {
            lg_drr_return(&s->drr, df, grant);
            flow_park(s, f, now);
            continue;
        }
        size_t g = pace_grant(s, f, grant, LG_MIN(avail, favail));
        flow_write(f, g);
        peek_tick(w, g);
    }
    LG_PUBLISH(w->pub_quantum, s->drr.quantum);
    LG_PUBLISH(w->pub_grants, s->drr.grants);
    LG_PUBLISH(w->pub_granted_bytes, s->drr.granted_bytes);
    if (!lg_drr_pending(&s->drr) && s->active) {
        uv_check_stop(&s->check);
        uv_idle_stop(&s->idle);
        s->active = false;
    }
}

static void sched_idle(uv_idle_t *h)
{
    /* Nothing to do: an active idle handle only keeps the next poll from blocking while some
     * flow is ready, so the check handle runs the next scheduler pass at once. */
    (void)h;
}

/* Make sure a scheduler pass runs soon (some flow became ready). */
static void sched_kick(lg_wctx_t *w)
{
    lg_sched_t *s = &w->sched;
    if (s->active || s->closed || s->pace_waiting) return;
    s->active = true;
    uv_check_start(&s->check, sched_run);
    uv_idle_start(&s->idle, sched_idle);
}

/* A flow's read budget per unit of weight in this turn (read_budget, below): the turn's bytes
 * split over the weights that read in the last turn, at least the floor. Computed once per turn,
 * not per read. */
static void sched_read_unit(lg_wctx_t *w)
{
    lg_sched_t *s = &w->sched;
    size_t share = LG_TURN_READ_BYTES / (s->readers_last ? s->readers_last : 1);
    size_t least =
        LG_MAX((size_t)LG_TURN_READ_BUFS * w->conf->read_buffer_size, (size_t)LG_TURN_READ_FLOOR);
    s->read_unit = LG_MAX(share, least);
}

/* Before each poll: a new loop turn, so every flow may read its budget again. */
static void sched_turn(uv_prepare_t *h)
{
    lg_wctx_t *w = h->data;
    lg_sched_t *s = &w->sched;
    s->turn++;
    s->readers_last = s->readers_now;
    s->readers_now = 0;
    sched_read_unit(w);
}

void lg_relay_sched_init(lg_wctx_t *w)
{
    lg_sched_t *s = &w->sched;
    s->wreq_cache_max = LG_WREQ_CACHE_MAX;
    s->light_open = false;
    s->n_light = 0;
    s->pipe_open = false;
    s->out_open = false;
    s->n_lent = s->n_spare = s->n_pipes = s->n_big = 0;
    s->splice_flow = NULL;
    s->turn = 1; /* flows start with read_turn 0: their first read opens a turn */
    s->readers_now = s->readers_last = 0;
    sched_read_unit(w);
    uv_check_init(w->loop, &s->check);
    uv_idle_init(w->loop, &s->idle);
    uv_prepare_init(w->loop, &s->turn_prep);
    uv_timer_init(w->loop, &s->pace_timer);
    s->pace_timer.data = w;
    uv_timer_init(w->loop, &s->flow_timer);
    s->flow_timer.data = w;
    lg_pace_init(&s->pace, w->conf->sched_rate, w->conf->sched_burst, uv_hrtime());
    s->check.data = w;
    s->idle.data = w;
    s->turn_prep.data = w;
    /* A prepare handle runs only when the loop turns anyway: it never wakes an idle worker. */
    uv_prepare_start(&s->turn_prep, sched_turn);
    uv_unref((uv_handle_t *)&s->turn_prep);
    pipes_publish(w);
}

void lg_relay_sched_close(lg_wctx_t *w, uv_close_cb cb)
{
    lg_sched_t *s = &w->sched;
    if (s->closed) return;
    s->closed = true;
    s->active = false;
    if (s->light_open) close(s->light_ep);
    s->light_open = false;
    if (s->pipe_open) pipe_close(w, s->pipe_r, s->pipe_w, s->pipe_big);
    s->pipe_open = false;
    for (; s->n_spare > 0; s->n_spare--) {
        size_t k = s->n_spare - 1;
        pipe_close(w, s->spare_r[k], s->spare_w[k], s->spare_big[k]);
    }
    for (size_t i = 0; i < LG_LENT_PIPES_MAX; i++) { /* none: the relays stopped first */
        if (s->lent[i].flow == NULL) continue;
        s->lent[i].flow->pipe = 0;
        s->lent[i].flow = NULL;
        pipe_close(w, s->lent[i].r, s->lent[i].w, s->lent[i].big);
    }
    s->n_lent = 0;
    if (s->out_open) {
        uv_close((uv_handle_t *)&s->out_poll, cb); /* stops polling out_ep, then it is closed */
        close(s->out_ep);
    }
    s->out_open = false;
    pipes_publish(w);
    uv_close((uv_handle_t *)&s->check, cb);
    uv_close((uv_handle_t *)&s->idle, cb);
    uv_close((uv_handle_t *)&s->turn_prep, cb);
    uv_close((uv_handle_t *)&s->pace_timer, cb);
    uv_close((uv_handle_t *)&s->flow_timer, cb);
}

/* ---- reporting ------------------------------------------------------------------------- */

/* The relay failed: stop its I/O, then tell the owner (the last thing the caller does). */
/* I/O on stream `s` (NULL: none, e.g. no memory) failed with err: stop and report. */
static void relay_fail(lg_relay_t *r, const uv_stream_t *s, int err)
{
    r->failed_client = s != NULL && s == r->c2u.src;
    lg_relay_stop(r);
    r->ops->event(r, LG_RELAY_ERROR, err);
}

/* ---- reading --------------------------------------------------------------------------- */

static void relay_alloc(uv_handle_t *h, size_t suggested, uv_buf_t *buf);
static void relay_read(uv_stream_t *s, ssize_t nread, const uv_buf_t *buf);

int lg_read_start(uv_stream_t *s, uv_alloc_cb alloc_cb, uv_read_cb read_cb)
{
    int rc = uv_read_start(s, alloc_cb, read_cb);
    if (rc == UV_EALREADY) {
        s->alloc_cb = alloc_cb;
        s->read_cb = read_cb;
        rc = 0;
    }
    return rc;
}

int lg_relay_read_start(lg_relay_t *r, lg_flow_t *f)
{
    if (r->dead || f->reading || f->eof || f->paused || f->src == NULL) return 0;
    f->src->data = r;
    int rc = lg_read_start(f->src, relay_alloc, relay_read);
    if (rc == 0) f->reading = true;
    return rc;
}

void lg_relay_read_stop(lg_relay_t *r, lg_flow_t *f)
{
    if (!f->reading) return;
    uv_read_stop(f->src);
    f->reading = false;
    /* Out of the interactive set too: a level-triggered source that is not read (a client still
     * sending to a lingering connection) would come back from every look for nothing. */
    light_del(&r->w->sched, f);
}

static void on_shutdown(uv_shutdown_t *req, int status)
{
    lg_flow_t *f = req->data;
    lg_free(req);
    lg_relay_t *r = relay_of(f);
    if (r->dead) return;
    f->shut_done = true;
    if (status < 0) {
        relay_fail(r, flow_dst(f), status);
    } else if (r->c2u.shut_done && r->u2c.shut_done) {
        r->ops->event(r, LG_RELAY_DONE, 0);
    } else if (f->to_client) {
        r->ops->event(r, LG_RELAY_CLIENT_FIN, 0);
    }
}

/* The source has ended and every queued byte is written: pass the FIN on. */
static void flow_maybe_shutdown(lg_flow_t *f)
{
    lg_relay_t *r = relay_of(f);
    /* No destination yet (a TLS client done before the upstream connected): attaching the
     * upstream comes back here. */
    if (r->dead || !f->eof || f->shut || f->q.bytes != 0 || f->n_writes != 0 ||
        flow_dst(f) == NULL) {
        return;
    }
    f->shut = true;
    uv_shutdown_t *req = lg_malloc(sizeof(*req));
    if (req == NULL) {
        relay_fail(r, NULL, UV_ENOMEM);
        return;
    }
    req->data = f;
    int rc = uv_shutdown(req, flow_dst(f), on_shutdown);
    if (rc != 0) {
        lg_free(req);
        relay_fail(r, flow_dst(f), rc);
    }
}

/* Stop reading a flow's source while its queue holds more than the high watermark. */
static void check_watermark(lg_relay_t *r, lg_flow_t *f)
{
    if (f->q.mem >= high_watermark(r) && !f->paused && f->src != NULL) {
        lg_relay_read_stop(r, f);
        f->paused = true;
    }
}

void lg_relay_pause(lg_relay_t *r, lg_flow_t *f)
{
    if (f->paused || f->src == NULL) return;
    lg_relay_read_stop(r, f);
    f->paused = true;
}

/* Resume a paused source once its queue is below half the watermark. False: the relay failed. */
static bool flow_maybe_resume(lg_flow_t *f)
{
    lg_relay_t *r = relay_of(f);
    if (f->paused && f->q.mem < high_watermark(r) / 2) {
        f->paused = false;
        int rc = lg_relay_read_start(r, f);
        if (rc != 0) {
            relay_fail(r, f->src, rc);
            return false;
        }
    }
    return true;
}

/* ---- writing --------------------------------------------------------------------------- */

static void on_write(uv_write_t *req, int status);

/* `len` bytes at the head of f's queue reached the destination. */
static void flow_count_written(lg_relay_t *r, lg_flow_t *f, size_t len)
{
    f->bytes += len;
    if (f->to_client) LG_COUNT(relay_counters(r), bytes_to_clients, len);
    r->last_activity = uv_now(r->w->loop);
}

static void flow_wrote(lg_flow_t *f, size_t len)
{
    lg_relay_t *r = relay_of(f);
    lg_bufq_consume(&f->q, &r->w->pool, len);
    flow_count_written(r, f, len);
}

/* A grant is written: give the turn back, resume a paused source, pass a FIN on. */
static void flow_grant_done(lg_flow_t *f)
{
    lg_relay_t *r = relay_of(f);
    lg_sched_t *s = &r->w->sched;
    if (!is_fifo(r)) {
        lg_drr_done(&s->drr, &f->drr);
        if (lg_drr_pending(&s->drr)) sched_kick(r->w);
    }
    if (flow_maybe_resume(f)) flow_maybe_shutdown(f);
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
static void flow_write(lg_flow_t *f, size_t grant)
{
    lg_relay_t *r = relay_of(f);
    lg_sched_t *s = &r->w->sched;
    uv_buf_t bufs[LG_RELAY_MAX_IOV];
    size_t covered = 0;
    size_t n;
    for (;;) {
        n = flow_bufs(f, grant, bufs, &covered);
        if (n == 0 || covered == 0) {
            /* Nothing queued after all: finish the grant so the flow leaves the scheduler. */
            if (!is_fifo(r)) lg_drr_done(&s->drr, &f->drr);
            return;
        }
        if (!is_fifo(r) && covered < grant) {
            /* More than LG_RELAY_MAX_IOV buffers: hand back what this write cannot carry (the
             * flow's visit goes on with it next). */
            lg_drr_return(&s->drr, &f->drr, grant - covered);
        }
        int done = uv_try_write(flow_dst(f), bufs, (unsigned)n);
        if (done < 0 && done != UV_EAGAIN) {
            relay_fail(r, flow_dst(f), done);
            return;
        }
        if (done <= 0) break;
        flow_wrote(f, (size_t)done);
        if ((size_t)done < covered) {
            /* The socket is full: the rest goes through uv_write, which waits for POLLOUT. */
            n = flow_bufs(f, covered - (size_t)done, bufs, &covered);
            break;
        }
        /* FIFO writes whatever has been queued meanwhile (bounded by the watermark). */
        if (is_fifo(r) && f->q.bytes > 0) {
            if (!flow_maybe_resume(f)) return;
            grant = f->q.bytes;
            continue;
        }
        flow_grant_done(f);
        return;
    }
    lg_wreq_t *req = wreq_get(s);
    if (req == NULL) {
        LG_COUNT(relay_counters(r), out_of_memory, 1);
        relay_fail(r, NULL, UV_ENOMEM);
        return;
    }
    req->flow = f;
    req->len = covered;
    f->n_writes++;
    int rc = uv_write(&req->req, flow_dst(f), bufs, (unsigned)n, on_write);
    if (rc != 0) {
        f->n_writes--;
        wreq_put(s, req);
        relay_fail(r, flow_dst(f), rc);
    }
}

static void on_write(uv_write_t *req, int status)
{
    lg_wreq_t *wr = LG_CONTAINER_OF(req, lg_wreq_t, req);
    lg_flow_t *f = wr->flow;
    size_t len = wr->len;
    lg_relay_t *r = relay_of(f);
    wreq_put(&r->w->sched, wr);
    f->n_writes--;
    if (r->dead) return; /* cancelled by uv_close, or completed after the relay stopped */
    if (status < 0) {
        relay_fail(r, flow_dst(f), status);
        return;
    }
    flow_wrote(f, len);
    if (is_fifo(r) && f->q.bytes > 0) {
        if (flow_maybe_resume(f)) flow_write(f, f->q.bytes);
        return;
    }
    flow_grant_done(f);
}

void lg_relay_queued(lg_relay_t *r, lg_flow_t *f, size_t n)
{
    if (n == 0 || r->dead) return;
    check_watermark(r, f);
    if (flow_dst(f) == NULL) {
        f->held += (uint32_t)n; /* no destination yet: scheduled when it is attached */
        return;
    }
    if (is_fifo(r)) {
        if (f->n_writes == 0) flow_write(f, f->q.bytes);
        return;
    }
    lg_sched_t *s = &r->w->sched;
    /* A flow with nothing queued and no write in flight is sparse: it is served at once, in the
     * turn that read its bytes, ahead of the backlogged flows (see lg_drr_take). */
    bool sparse = f->drr.state == LG_DRR_IDLE && f->n_writes == 0;
    lg_drr_add(&s->drr, &f->drr, n);
    if (sparse && !s->pace_waiting) {
        uint64_t now = pacing(s) ? uv_hrtime() : 0;
        uint64_t avail =
            LG_MIN(pacing(s) ? lg_pace_avail(&s->pace, now) : UINT64_MAX, flow_avail(f, &now));
        uint64_t burst = LG_MIN(pacing(s) ? s->pace.burst : UINT64_MAX,
                                f->cap != NULL ? f->cap->pace.burst : UINT64_MAX);
        /* Without enough tokens the flow waits in the round, where the pass parks it or sleeps
         * (unpaced and uncapped, avail is unbounded: no quantum to look up per write). */
        bool enough = avail == UINT64_MAX ||
                      pace_enough(avail, n, lg_drr_flow_quantum(&s->drr, &f->drr), burst);
        /* A sparse grant is what this read queued (at least a read buffer): for a terminated
         * connection one read's TLS records, a little more than the read, go out in one write
         * instead of a full write and a ~1 KiB one through the round. */
        size_t one_read = LG_MAX((size_t)r->w->conf->read_buffer_size, n);
        size_t g = enough ? lg_drr_take(&s->drr, &f->drr, one_read) : 0;
        if (g > 0) {
            flow_write(f, pace_grant(s, f, g, avail));
            return;
        }
    }
    sched_kick(r->w);
}

int lg_relay_copy(lg_relay_t *r, lg_flow_t *f, const uint8_t *data, size_t len)
{
    size_t n = lg_bufq_append(&f->q, &r->w->pool, data, len);
    lg_relay_queued(r, f, n);
    return n == len ? 0 : -ENOMEM;
}

static lg_buf_t *buf_of(const uv_buf_t *buf)
{
    return (lg_buf_t *)(void *)(buf->base - offsetof(lg_buf_t, data));
}

static unsigned flow_weight(const lg_flow_t *f)
{
    return f->drr.weight ? f->drr.weight : 1u;
}

/*
 * What a flow may read in one loop turn: its weight's share of LG_TURN_READ_BYTES among the flows
 * that read in the last turn (readers_last sums their weights), and at least the floor per unit of
 * weight: LG_TURN_READ_BUFS read buffers or LG_TURN_READ_FLOOR bytes, whichever is more. One flow
 * alone reads up to 1 MiB per wakeup (as FIFO reads until the socket is empty); with many flows
 * each reads its weight in floors per turn, so each moves bytes per turn in proportion to its
 * weight whatever its receive window beyond that (a budget equal for all would cap a weighted
 * flow at the others' rate whenever reading is the bottleneck).
 *
 * The floor's history (bench S6 fair100shared: 100 downloads with the worker the bottleneck;
 * bench/README.md). One 64 KiB buffer turned the loop twice as often for the same bytes as two
 * (0.63-0.68 against 0.46-0.53 s/GiB); a floor above a flow's receive window gives it its window
 * per turn and the others the floor, and with 64 KiB pipes the kernel never grew some windows
 * past 47-95 KiB, so larger floors starved those flows (two buffers: Jain 0.981-0.986). Since the
 * worker splices through 256 KiB pipes (pipe_enlarge) those windows grow, and a floor of one
 * large pipe, one splice per flow per turn, is fairer and cheaper than two buffers (2026-12-05
 * evening, 3 runs each: Jain 1.000 at 0.58 s/GiB and 913 MB/s against 0.997 at 0.83 and 643;
 * larger floors, 512 KiB and 1 MiB, cost the same as 256 KiB in a probe).
 *
 * The budget says when a flow may start reading, not how much it reads: a splicing flow empties
 * its socket (splice_want) and pays what it read past the budget in the next turns (read_allowed,
 * lg_drr_read_debt). A budget that left bytes in the sockets of flows with large windows cost
 * the worker up to twice per byte what fifo pays, which empties every socket it reads; with the
 * debt, S6 fair100shared (2026-12-06, 3 runs): Jain 1.000 at 0.30 s/GiB and 1,714 MB/s, against
 * 1.000 at 0.44 and 1,201 before, and fifo 0.952 at 0.37 and 1,427 (bench/README.md).
 */
static size_t read_budget(const lg_relay_t *r, const lg_flow_t *f)
{
    return r->w->sched.read_unit * flow_weight(f); /* sched_read_unit */
}

/* May f's source read now? False once it read its budget in this loop turn, counting the debt
 * it carries from earlier turns (DRR only). */
static bool read_allowed(lg_relay_t *r, lg_flow_t *f)
{
    lg_sched_t *s = &r->w->sched;
    size_t budget = read_budget(r, f);
    if (f->read_turn != (uint32_t)s->turn) {
        /* A new turn: it starts with its debt read (lg_drr_read_debt), nothing if no other flow
         * read in the last turn. */
        uint32_t turns = (uint32_t)s->turn - f->read_turn;
        bool alone = s->readers_last <= flow_weight(f);
        f->turn_read = (uint32_t)lg_drr_read_debt(f->turn_read, budget, turns, alone);
        f->read_turn = (uint32_t)s->turn;
        s->readers_now += flow_weight(f);
    }
    return f->turn_read < budget;
}

/* ---- zero-copy relay (splice) ------------------------------------------------------------ *
 *
 * A bulk flow between two TCP sockets moves its bytes with splice(2): source socket -> the
 * worker's pipe -> destination socket, so they never enter user space (the kernel passes page
 * references; on loopback the copies out of and back into the kernel were about a third of the
 * proxy's CPU). The pipe is the worker's only one and is empty between calls: the bytes spliced
 * in are spliced out at once. A flow splices only when the ordinary path would write what it
 * reads at once: nothing queued, no write in flight, DRR idle (a sparse flow, lg_drr_take), no
 * pacing; each splice moves at most maxQueuedBytesPerFlow (what that path could read before
 * stopping) and what the pipe holds, and a flow's splices in one turn stop LG_TURN_DRAIN past its
 * read budget (the excess is debt, read_allowed). Whatever the destination does not
 * take at once is read back from the pipe into the flow's queue (a copy, as before) and goes
 * through the scheduler like any queued bytes, so a slow receiver, the watermark and the DRR
 * round work unchanged, and the pipe is empty again — unless the flow can borrow the pipe with
 * those bytes (below, "lent pipes"), which saves both copies. End of stream and errors are reported
 * as libuv's read would.
 *
 * Only for flows whose last read was bulk (>= LG_SPLICE_MIN): small reads cost less with
 * read/write. Not for TLS termination (the bytes must be decrypted) nor Unix sockets.
 * The pipe costs two descriptors per worker, created with the first bulk read (pipe_get); when it
 * cannot be created (no descriptor, or the budget below), the flow reads as before and the next
 * bulk read tries again.
 */

/* ---- the worker's pipes ---- *
 *
 * Pipes are enlarged to LG_PIPE_SIZE (256 KiB; the default is 64 KiB), at most LG_BIG_PIPES per
 * worker. The reason is the kernel's receive-buffer autotuning: it grows a socket's buffer only
 * when more than its current space (64 KiB at first) was consumed within one round trip, minus
 * what is still queued. A 64 KiB pipe takes at most 64 KiB per splice, so a source whose window
 * was full when it was read never showed more, and its buffer stayed at the initial 128 KiB (a
 * 47-95 KiB window) for the whole connection while the buffers of flows read whole during their
 * first second grew to megabytes. Whenever the worker is the bottleneck those flows then got
 * their small window per turn: in bench S6 fair100shared, 59 of the 100 upstream sockets kept
 * the initial buffer and the Jain index was 0.975; with 256 KiB pipes none did, 0.996-0.998
 * (2026-12-05). The number is bounded because the kernel charges a pipe's whole capacity to its
 * user (fs.pipe-user-pages-soft, 64 MiB by default for all of a user's pipes, past which new
 * pipes get a few pages): 4 x 256 KiB per worker. A lent pipe holds up to its capacity, never more
 * than maxQueuedBytesPerFlow (splice_want).
 */

/* Will the worker's next splice go through a large pipe: its own if it has one, else a spare (a
 * large one first, pipe_get), and any pipe is enlarged while the worker may (pipe_enlarge). */
static bool next_pipe_large(const lg_sched_t *s)
{
    if (s->closed) return false;
    if (s->pipe_open && s->pipe_big) return true;
    if (!s->pipe_open) {
        for (size_t k = 0; k < s->n_spare; k++) {
            if (s->spare_big[k]) return true;
        }
    }
    return s->n_big < LG_BIG_PIPES && !s->big_refused;
}

static void pipes_publish(lg_wctx_t *w)
{
    LG_PUBLISH(w->pub_pipes, w->sched.n_pipes);
    LG_PUBLISH(w->pub_lent, w->sched.n_lent);
    LG_PUBLISH(w->pub_big, w->sched.n_big);
    LG_PUBLISH(w->pub_own_big, (size_t)next_pipe_large(&w->sched));
}

static void pipe_close(lg_wctx_t *w, int rd, int wr, bool big)
{
    close(rd);
    close(wr);
    w->sched.n_pipes--;
    if (big) {
        w->sched.n_big--;
        w->sched.big_refused = false; /* the kernel may take a large pipe again */
    }
    atomic_fetch_sub_explicit(w->pipes, 1, memory_order_relaxed);
}

/*
 * Enlarge the worker's own pipe (empty between calls) while the worker holds fewer than
 * LG_BIG_PIPES large pipes. Done where the pipe is used, not only where it is made, and with
 * pipe_get taking a large spare first and pipe_put putting a large pipe given back in place of a
 * 64 KiB own pipe: the pipe the worker splices through is the one that matters (a lent pipe only
 * holds what its destination did not take). Before, a worker that took a 64 KiB spare while its
 * large pipes were lent kept it for as long as nothing was lent again, and those were the unfair
 * runs (S6 fair100shared's load, 2026-12-05: 41-70 of 100 upstream sockets at the initial
 * receive buffer and Jain 0.976-0.981 in 3 of 10 runs; after, none below 0.995 in 10). When the
 * kernel refuses (fs.pipe-max-size, or the user over fs.pipe-user-pages-soft) the pipe keeps its
 * 64 KiB and big_refused stops the retries until one of the worker's large pipes is closed.
 */
static void pipe_enlarge(lg_wctx_t *w)
{
    lg_sched_t *s = &w->sched;
    if (s->pipe_big || s->n_big >= LG_BIG_PIPES || s->big_refused) return;
    if (fcntl(s->pipe_w, F_SETPIPE_SZ, (int)LG_PIPE_SIZE) < 0) {
        s->big_refused = true;
        pipes_publish(w);
        return;
    }
    s->pipe_big = true;
    s->n_big++;
    pipes_publish(w);
}

/*
 * An empty pipe for the worker's next splice: a spare (a large one first), or a new one. A new
 * pipe takes two descriptors, as a connection does; it is made only while the engine's
 * connections and pipes stay below 90 % of the descriptor budget (lg_wctx_fd_units), so pipes
 * never hold the descriptors the last connections need (accepting counts them too, lg_listener).
 */
static bool pipe_get(lg_wctx_t *w, int *rd, int *wr, bool *big)
{
    lg_sched_t *s = &w->sched;
    if (s->n_spare > 0) {
        size_t top = s->n_spare - 1;
        for (size_t k = 0; k < top && !s->spare_big[top]; k++) {
            if (!s->spare_big[k]) continue;
            LG_SWAP(int, s->spare_r[k], s->spare_r[top]);
            LG_SWAP(int, s->spare_w[k], s->spare_w[top]);
            LG_SWAP(bool, s->spare_big[k], s->spare_big[top]);
        }
        s->n_spare = top;
        *rd = s->spare_r[top];
        *wr = s->spare_w[top];
        *big = s->spare_big[top];
        return true;
    }
    if (s->closed) return false;
    if (w->fd_budget != 0 && lg_wctx_fd_units(w) + 1 > (uint64_t)w->fd_budget * 9 / 10) {
        return false;
    }
    int fds[2];
    if (pipe2(fds, O_NONBLOCK | O_CLOEXEC) != 0) return false;
    *rd = fds[0];
    *wr = fds[1];
    *big = false;
    s->n_pipes++;
    atomic_fetch_add_explicit(w->pipes, 1, memory_order_relaxed);
    pipes_publish(w);
    return true;
}

/* True when pipe `rd` holds no bytes. */
static bool pipe_empty(int rd)
{
    int n = 0;
    return ioctl(rd, FIONREAD, &n) == 0 && n == 0;
}

/* An empty pipe the worker no longer uses: kept as a spare (up to LG_SPARE_PIPES), or closed. A
 * large one replaces the worker's own pipe if that is a 64 KiB one (see pipe_enlarge); the check
 * that the worker's pipe is empty costs a system call, made only then. */
static void pipe_put(lg_wctx_t *w, int rd, int wr, bool big)
{
    lg_sched_t *s = &w->sched;
    if (big && s->pipe_open && !s->pipe_big && !s->closed && pipe_empty(s->pipe_r)) {
        LG_SWAP(int, rd, s->pipe_r);
        LG_SWAP(int, wr, s->pipe_w);
        s->pipe_big = true;
        big = false;
    }
    if (s->n_spare < LG_SPARE_PIPES && !s->closed) {
        s->spare_r[s->n_spare] = rd;
        s->spare_w[s->n_spare] = wr;
        s->spare_big[s->n_spare] = big;
        s->n_spare++;
    } else {
        pipe_close(w, rd, wr, big);
    }
    pipes_publish(w);
}

/* Bytes f may splice now (0: read the ordinary way). */
static size_t splice_want(lg_relay_t *r, lg_flow_t *f)
{
    const lg_sched_t *s = &r->w->sched;
    if (!f->bulk || f->light || r->filtered || flow_dst(f) == NULL || f->held != 0 ||
        f->q.bytes != 0 || f->n_writes != 0 || f->shut || pacing(s) || f->cap != NULL) {
        return 0;
    }
    if (f->src->type != UV_TCP || flow_dst(f)->type != UV_TCP) return 0;
    /* The pipe's capacity bounds a splice too (the kernel moves at most what fits). */
    if (is_fifo(r)) return high_watermark(r);
    if (f->drr.state != LG_DRR_IDLE) return 0;
    /* A flow that may read in this turn (read_allowed) empties its socket, up to LG_TURN_DRAIN
     * past its budget: what it takes beyond the budget is debt, paid in the next turns. */
    size_t limit = read_budget(r, f) + LG_TURN_DRAIN;
    size_t left = limit > f->turn_read ? limit - f->turn_read : 0;
    return LG_MIN(high_watermark(r), left);
}

/* Splice up to `want` bytes of f's source into the worker's pipe: bytes, 0 (end of stream),
 * -errno (-EAGAIN: nothing there after all), or -ENOSYS when there is no pipe. */
static ssize_t splice_in(lg_wctx_t *w, lg_flow_t *f, size_t want)
{
    lg_sched_t *s = &w->sched;
    if (!s->pipe_open) {
        if (!pipe_get(w, &s->pipe_r, &s->pipe_w, &s->pipe_big)) return -ENOSYS;
        s->pipe_open = true;
        pipes_publish(w);
    }
    pipe_enlarge(w);
    int fd;
    if (uv_fileno((const uv_handle_t *)f->src, &fd) != 0) return -ENOSYS;
    ssize_t n = splice(fd, NULL, s->pipe_w, NULL, want, SPLICE_F_MOVE | SPLICE_F_NONBLOCK);
    return n >= 0 ? n : -errno;
}

static void relay_alloc(uv_handle_t *h, size_t suggested, uv_buf_t *buf)
{
    (void)suggested;
    lg_relay_t *r = h->data;
    /*
     * The read budget: a source that read its share in this turn waits for the next one.
     * Refusing the buffer makes libuv end this read pass (UV_ENOBUFS, see relay_read) without
     * stopping the stream, so there is no epoll_ctl: the descriptor is still readable and the
     * next poll (which returns at once) hands it back for the next turn.
     */
    lg_flow_t *f = (uv_stream_t *)h == r->c2u.src ? &r->c2u : &r->u2c;
    if (!is_fifo(r) && !read_allowed(r, f)) {
        f->refused = true;
        buf->base = NULL;
        buf->len = 0;
        return;
    }
    size_t want = splice_want(r, f);
    if (want > 0) {
        /* Refusing the buffer after splicing hands the result to relay_read (UV_ENOBUFS). */
        ssize_t rc = splice_in(r->w, f, want);
        if (rc == -EAGAIN) {
            /* Readable, yet nothing to splice: urgent data (the kernel's splice stops at the
             * urgent mark and says EAGAIN for as long as it is there, while epoll says readable:
             * a busy loop, and no byte behind the mark relayed) or a spurious wakeup. An
             * ordinary read gets past the mark (the urgent byte itself is dropped, as read()
             * drops it without SO_OOBINLINE); the next large read makes the flow bulk again. */
            f->bulk = false;
        } else if (rc != -ENOSYS) {
            r->w->sched.splice_flow = f;
            r->w->sched.splice_rc = rc;
            buf->base = NULL;
            buf->len = 0;
            return;
        }
    }
    lg_buf_t *b = lg_buf_get(&r->w->pool);
    if (b == NULL) {
        buf->base = NULL; /* the read callback sees UV_ENOBUFS */
        buf->len = 0;
        return;
    }
    buf->base = (char *)b->data;
    buf->len = b->cap;
}

/* ---- interactive sources, looked at mid-turn -------------------------------------------- *
 *
 * A loop turn reads every readable source once (up to its budget) and writes what it read; with
 * 32 bulk flows that is about 2 MiB of copying, a millisecond or more. A source that becomes
 * readable meanwhile is reported by the next poll behind every bulk source (epoll keeps a
 * level-triggered descriptor that is still ready ahead of one that became ready later), so a
 * small request beside bulk flows waited one to two turns each way, though it is served ahead of
 * the backlog once read (lg_drr_take).
 *
 * So a flow whose read was small (<= LG_LIGHT_READ) and found its queue empty has its source put
 * in a second epoll set of the worker (level-triggered, like libuv's). Every LG_PEEK_BYTES of
 * bulk reads or grants, the worker looks at that set without waiting and reads the sources that
 * are ready at once, through the same path as libuv's read callback (same budget, same sparse
 * priority), so such bytes wait for at most LG_PEEK_BYTES of other work, not for a turn. A flow
 * leaves the set with its first large read, at end of stream and when the relay stops. A look
 * costs one epoll_wait that finds nothing while no interactive flow is ready; a worker with no
 * interactive flow never looks, and flows join the set only while bulk work is being done
 * (bulk_recent). Only with kind 'drr' (FIFO keeps libuv's order).
 */

static void light_add(lg_sched_t *s, lg_flow_t *f)
{
    int fd;
    if (s->closed || f->src == NULL || uv_fileno((const uv_handle_t *)f->src, &fd) != 0) return;
    if (!s->light_open) {
        s->light_ep = epoll_create1(EPOLL_CLOEXEC);
        if (s->light_ep < 0) return; /* no set: such flows wait for their turn, as before */
        s->light_open = true;
    }
    struct epoll_event ev = {.events = EPOLLIN, .data.ptr = f};
    if (epoll_ctl(s->light_ep, EPOLL_CTL_ADD, fd, &ev) != 0) return;
    f->light = true;
    s->n_light++;
}

static void light_del(lg_sched_t *s, lg_flow_t *f)
{
    if (!f->light) return;
    f->light = false;
    s->n_light--;
    /* A closed descriptor has left the set already (uv_fileno then fails). */
    int fd;
    if (s->light_open && uv_fileno((const uv_handle_t *)f->src, &fd) == 0) {
        epoll_ctl(s->light_ep, EPOLL_CTL_DEL, fd, NULL);
    }
}

static void sched_peek(lg_wctx_t *w);

/* n bytes of bulk work were done: look at the interactive sources every LG_PEEK_BYTES. */
static void peek_tick(lg_wctx_t *w, size_t n)
{
    lg_sched_t *s = &w->sched;
    s->since_peek += n;
    if (n > LG_LIGHT_READ) s->bulk_ms = uv_now(w->loop); /* bulk_recent: a small grant is not */
    if (s->since_peek >= LG_PEEK_BYTES && s->n_light > 0 && !s->peeking) sched_peek(w);
}

/* Whether bulk work was done in the last LG_LIGHT_BULK_MS: only then are looks being made, and
 * a small flow worth putting in the set. Without bulk work nothing would look at the set, and a
 * short connection would pay an epoll_ctl ADD and DEL for nothing (two of a TLS handshake's ~44
 * system calls). A flow that was small before bulk work started joins with its next small read. */
static bool bulk_recent(const lg_sched_t *s, uv_loop_t *loop)
{
    return s->bulk_ms != 0 && uv_now(loop) - s->bulk_ms < LG_LIGHT_BULK_MS;
}

/* nread (> 0) bytes came from f's source (read, or spliced into the worker's pipe). */
static void flow_count_read(lg_relay_t *r, lg_flow_t *f, size_t nread)
{
    if (!f->to_client) LG_COUNT(relay_counters(r), bytes_from_clients, (uint64_t)nread);
    /* A terminated client's ciphertext is not activity by itself: its filter says when a record
     * carried application data (lg_relay_ops_t.filter), so a client sending empty records or
     * KeyUpdates, which reach nobody, does not hold an idle connection and its upstream open. */
    if (!r->filtered || f->to_client) r->last_activity = uv_now(r->w->loop);
    f->turn_read += (uint32_t)nread;
    f->bulk = nread >= LG_SPLICE_MIN;
    if (!r->filtered) lg_drr_observe_read(&r->w->sched.drr, nread);
}

/* nread (> 0) bytes were read from f's source into b (libuv's read callback or a look). */
static void flow_got(lg_relay_t *r, lg_flow_t *f, lg_buf_t *b, size_t nread)
{
    lg_wctx_t *w = r->w;
    flow_count_read(r, f, nread);
    if (!is_fifo(r)) {
        bool empty = f->q.bytes == 0 && f->n_writes == 0;
        if (nread <= LG_LIGHT_READ && empty && !f->light && bulk_recent(&w->sched, w->loop)) {
            light_add(&w->sched, f);
        } else if (nread > LG_LIGHT_READ && f->light) {
            light_del(&w->sched, f);
        }
    }
    if (r->filtered) {
        r->ops->filter(r, f, b, nread);
        return;
    }
    b->off = 0;
    b->len = (uint32_t)nread;
    lg_bufq_push(&f->q, &w->pool, b);
    lg_relay_queued(r, f, nread);
}

/*
 * The light set says f's source is readable: read it now, as libuv's callback would. Only
 * bytes: end of stream and errors are left for libuv's own read (FIONREAD does not consume
 * them), which reports them in its turn.
 */
static void flow_read_now(lg_flow_t *f)
{
    lg_relay_t *r = relay_of(f);
    if (r->dead || !f->light || !f->reading || f->paused || f->q.bytes != 0 || f->n_writes != 0) {
        return;
    }
    int fd, avail = 0;
    if (uv_fileno((const uv_handle_t *)f->src, &fd) != 0) return;
    if (ioctl(fd, FIONREAD, &avail) != 0 || avail <= 0) return;
    if (!read_allowed(r, f)) return;
    lg_buf_t *b = lg_buf_get(&r->w->pool);
    if (b == NULL) return; /* libuv's read reports the shortage */
    ssize_t n = read(fd, b->data, LG_MIN((size_t)avail, (size_t)b->cap));
    if (n <= 0) {
        lg_buf_put(&r->w->pool, b);
        return;
    }
    r->w->sched.peek_reads++;
    LG_PUBLISH(r->w->pub_interactive_reads, r->w->sched.peek_reads);
    flow_got(r, f, b, (size_t)n);
}

static void sched_peek(lg_wctx_t *w)
{
    lg_sched_t *s = &w->sched;
    s->since_peek = 0;
    if (!s->light_open) return;
    struct epoll_event ev[LG_PEEK_EVENTS];
    int n = epoll_wait(s->light_ep, ev, LG_PEEK_EVENTS, 0);
    if (n <= 0) return;
    /* A flow handled here may stop its relay (and the other flow's): stopped relays stay in
     * memory until their handles close, and flow_read_now checks r->dead and f->light. */
    s->peeking = true;
    for (int i = 0; i < n; i++)
        flow_read_now(ev[i].data.ptr);
    s->peeking = false;
}

/* f's source ended (libuv's EOF, or a splice that returned 0). */
static void flow_ended(lg_relay_t *r, lg_flow_t *f)
{
    lg_relay_read_stop(r, f);
    light_del(&r->w->sched, f);
    if (r->ops->eof != NULL && !r->ops->eof(r, f)) return;
    f->eof = true;
    flow_maybe_shutdown(f);
}

/* Empty the worker's pipe, throwing its bytes away (their connection is failing). */
static void pipe_discard(lg_wctx_t *w)
{
    lg_sched_t *s = &w->sched;
    for (;;) {
        ssize_t k = read(s->pipe_r, w->discard, sizeof(w->discard));
        if (k > 0) continue;
        if (k < 0 && errno == EAGAIN) return; /* empty */
        break;
    }
    /* Cannot happen with a pipe we own; never leave bytes for the next flow. */
    pipe_close(w, s->pipe_r, s->pipe_w, s->pipe_big);
    s->pipe_open = false;
    pipes_publish(w);
}

/* Splice up to n bytes from pipe `rd` to f's destination and count what went: bytes (>= 0) or
 * -errno (-EAGAIN: the destination is full). */
static ssize_t splice_out(lg_relay_t *r, lg_flow_t *f, int rd, size_t n)
{
    lg_wctx_t *w = r->w;
    int fd;
    if (uv_fileno((const uv_handle_t *)flow_dst(f), &fd) != 0) return -EBADF;
    ssize_t k = splice(rd, NULL, fd, NULL, n, SPLICE_F_MOVE | SPLICE_F_NONBLOCK);
    if (k < 0) return -errno;
    flow_count_written(r, f, (size_t)k);
    w->sched.spliced += (uint64_t)k;
    LG_PUBLISH(w->pub_spliced, w->sched.spliced);
    return k;
}

/* ---- lent pipes ------------------------------------------------------------------------ *
 *
 * When a flow's destination does not take all the bytes of a splice (its socket is full: a slow
 * client, or a receiver short of CPU), reading the rest back into user space costs the two copies
 * splicing saves. Instead the flow keeps the worker's pipe with those bytes — a lent pipe — and
 * the worker takes another one (a spare, or a new one) for its next splice. The flow counts as
 * having a write in flight (n_writes), as with a uv_write that waits for POLLOUT, so nothing else
 * of it is written, read into its queue or shut down meanwhile; and its source is not read: the
 * bytes wait in the pipe (at most its capacity and the watermark a queue may hold) and
 * behind it in the kernel's socket buffers. The destination joins the worker's out-set (epoll,
 * EPOLLOUT, level-triggered), which the loop polls through one uv_poll handle; when the
 * destination can take bytes the pipe is spliced to it, and once empty the pipe goes back to the
 * spares and the flow reads again. The bytes belong to a grant already made (a splice takes at
 * most the flow's grant), so the DRR round is unchanged.
 *
 * Bounds: LG_LENT_PIPES_MAX lent and LG_SPARE_PIPES spare pipes per worker, and new pipes only
 * within the descriptor budget (pipe_get). Without a free slot the bytes are read back into the
 * queue as before. A relay that stops closes its flows' lent pipes (the bytes go with the
 * connection).
 */

static void out_ready(uv_poll_t *h, int status, int events);

/* Create the worker's out-set and its poll handle (once). */
static bool out_set_open(lg_wctx_t *w)
{
    lg_sched_t *s = &w->sched;
    if (s->out_open) {
        return uv_is_active((const uv_handle_t *)&s->out_poll) ||
               uv_poll_start(&s->out_poll, UV_READABLE, out_ready) == 0;
    }
    if (s->closed) return false;
    int ep = epoll_create1(EPOLL_CLOEXEC);
    if (ep < 0) return false;
    if (uv_poll_init(w->loop, &s->out_poll, ep) != 0) {
        close(ep);
        return false;
    }
    s->out_ep = ep;
    s->out_open = true; /* closed with the scheduler's handles from now on */
    s->out_poll.data = w;
    /* An empty set is never readable: the handle costs no wakeup, and it does not keep the
     * loop alive. */
    uv_unref((uv_handle_t *)&s->out_poll);
    return uv_poll_start(&s->out_poll, UV_READABLE, out_ready) == 0;
}

/* f's destination did not take the last `rest` bytes of a splice, which are in the worker's
 * pipe: lend f that pipe. False: no slot or no out-set (read the bytes back instead). */
static bool pipe_lend(lg_relay_t *r, lg_flow_t *f, size_t rest)
{
    lg_wctx_t *w = r->w;
    lg_sched_t *s = &w->sched;
    int fd;
    if (s->n_lent == LG_LENT_PIPES_MAX || !out_set_open(w) ||
        uv_fileno((const uv_handle_t *)flow_dst(f), &fd) != 0) {
        return false;
    }
    size_t i = 0;
    while (s->lent[i].flow != NULL)
        i++;
    struct epoll_event ev = {.events = EPOLLOUT, .data.u32 = (uint32_t)i};
    if (epoll_ctl(s->out_ep, EPOLL_CTL_ADD, fd, &ev) != 0) return false;
    s->lent[i].flow = f;
    s->lent[i].r = s->pipe_r;
    s->lent[i].w = s->pipe_w;
    s->lent[i].bytes = (uint32_t)rest;
    s->lent[i].big = s->pipe_big;
    s->pipe_open = false;
    s->n_lent++;
    f->pipe = (uint16_t)(i + 1);
    f->n_writes++;
    lg_relay_read_stop(r, f);
    pipes_publish(w);
    return true;
}

/* Take f's lent pipe back: a spare when empty, closed when it still holds bytes (the relay
 * stopped). */
static void pipe_unlend(lg_wctx_t *w, lg_flow_t *f)
{
    lg_sched_t *s = &w->sched;
    struct lg_lent_pipe_s *p = &s->lent[f->pipe - 1];
    int fd;
    if (uv_fileno((const uv_handle_t *)flow_dst(f), &fd) == 0) {
        epoll_ctl(s->out_ep, EPOLL_CTL_DEL, fd, NULL);
    }
    p->flow = NULL;
    s->n_lent--;
    f->pipe = 0;
    f->n_writes--;
    if (p->bytes == 0) {
        pipe_put(w, p->r, p->w, p->big);
    } else {
        pipe_close(w, p->r, p->w, p->big);
    }
    pipes_publish(w);
}

/* f's destination is writable: splice its lent pipe to it; once empty, f reads again. */
static void pipe_drain(lg_wctx_t *w, struct lg_lent_pipe_s *p)
{
    lg_flow_t *f = p->flow;
    lg_relay_t *r = relay_of(f);
    ssize_t k = splice_out(r, f, p->r, p->bytes);
    if (k > 0) {
        p->bytes -= (uint32_t)k;
        /* Bulk work like a read or a grant: it counts toward the next look at interactive flows
         * (a look touches only other flows, and this relay is still running). */
        if (!is_fifo(r)) peek_tick(w, (size_t)k);
        if (r->dead) return;
    }
    if (k == -EAGAIN || k == -EINTR || (k > 0 && p->bytes > 0)) return; /* the next POLLOUT */
    if (k <= 0) {
        relay_fail(r, flow_dst(f),
                   k < 0 ? (int)k : UV_EPIPE); /* stopping the relay closes the pipe */
        return;
    }
    pipe_unlend(w, f);
    /* As after a completed write: read again, pass a FIN on. */
    int rc = lg_relay_read_start(r, f);
    if (rc != 0) {
        relay_fail(r, f->src, rc);
        return;
    }
    flow_maybe_shutdown(f);
}

static void out_ready(uv_poll_t *h, int status, int events)
{
    (void)status;
    (void)events;
    lg_wctx_t *w = h->data;
    lg_sched_t *s = &w->sched;
    struct epoll_event ev[LG_PIPE_EVENTS];
    int n = epoll_wait(s->out_ep, ev, LG_PIPE_EVENTS, 0);
    /* A drain that fails stops its relay, which may free other slots listed here: a free slot
     * is skipped (nothing lends a pipe during this pass). */
    for (int i = 0; i < n; i++) {
        struct lg_lent_pipe_s *p = &s->lent[ev[i].data.u32];
        if (p->flow != NULL) pipe_drain(w, p);
    }
}

/*
 * n bytes of f are in the worker's pipe: splice them to f's destination; what it does not take
 * goes into f's queue and through the scheduler. Returns true when all went out (f may splice
 * again), false otherwise (queued, or the relay failed).
 */
static bool flow_splice_out(lg_relay_t *r, lg_flow_t *f, size_t n)
{
    lg_wctx_t *w = r->w;
    lg_sched_t *s = &w->sched;
    flow_count_read(r, f, n);
    ssize_t k = splice_out(r, f, s->pipe_r, n);
    size_t out = k > 0 ? (size_t)k : 0;
    if (out == n) return true;
    if (k < 0 && k != -EAGAIN) {
        pipe_discard(w);
        relay_fail(r, flow_dst(f), (int)k);
        return false;
    }
    /* The destination is full: the flow keeps the pipe with the rest, or the rest comes back to
     * user space and waits in the queue. */
    size_t rest = n - out, moved = 0;
    if (pipe_lend(r, f, rest)) return false;
    while (moved < rest) {
        lg_buf_t *b = lg_buf_get(&w->pool);
        if (b == NULL) break;
        ssize_t got = read(s->pipe_r, b->data, LG_MIN(rest - moved, (size_t)b->cap));
        if (got <= 0) {
            lg_buf_put(&w->pool, b);
            break;
        }
        b->off = 0;
        b->len = (uint32_t)got;
        lg_bufq_push(&f->q, &w->pool, b);
        moved += (size_t)got;
    }
    if (moved < rest) {
        pipe_discard(w);
        LG_COUNT(relay_counters(r), out_of_memory, 1);
        relay_fail(r, NULL, UV_ENOBUFS);
        return false;
    }
    lg_relay_queued(r, f, rest);
    return false;
}

/* relay_alloc spliced (rc: splice_in's result): move the bytes on, and splice again while the
 * flow keeps qualifying and its source has more. */
static void flow_spliced(lg_relay_t *r, lg_flow_t *f, ssize_t rc)
{
    lg_wctx_t *w = r->w;
    size_t moved = 0; /* not yet counted toward a look */
    size_t total = 0; /* spliced in this pass */
    for (int i = 0;; i++) {
        if (rc == -EAGAIN || rc == -EINTR) break; /* nothing more to read now */
        if (rc == 0) {
            flow_ended(r, f);
            return;
        }
        if (rc < 0) {
            relay_fail(r, f->src, (int)rc);
            return;
        }
        moved += (size_t)rc;
        total += (size_t)rc;
        bool all_out = flow_splice_out(r, f, (size_t)rc);
        /* A pass that emptied the socket ends with a short splice, which alone would make the
         * flow's next read an ordinary one (a copy, and bytes queued instead of a lent pipe if
         * the destination fills meanwhile): the pass decides whether the flow is bulk. */
        if (total >= LG_SPLICE_MIN) f->bulk = true;
        if (!all_out || r->dead || i + 1 == LG_SPLICE_LOOPS) break;
        if (!is_fifo(r)) {
            /* Between two splices, not after the burst: one flow's LG_SPLICE_LOOPS splices are
             * up to a MiB of copying (~0.3 ms here), which interactive flows waited for. */
            peek_tick(w, moved);
            moved = 0;
            if (r->dead) return;
        }
        size_t want = splice_want(r, f);
        if (want == 0 || (size_t)rc < want) break; /* the socket had no more */
        rc = splice_in(w, f, want);
        if (rc == -ENOSYS) break;
    }
    if (moved > 0 && !is_fifo(r)) peek_tick(w, moved); /* last: the relay may have stopped */
}

static void relay_read(uv_stream_t *s, ssize_t nread, const uv_buf_t *buf)
{
    lg_relay_t *r = s->data;
    lg_wctx_t *w = r->w;
    lg_flow_t *f = s == r->c2u.src ? &r->c2u : &r->u2c;
    lg_buf_t *b = buf->base != NULL ? buf_of(buf) : NULL;
    if (nread > 0) {
        bool bulk = !f->light;
        flow_got(r, f, b, (size_t)nread);
        /* Last: the relay may have stopped (a look touches only other flows' state). */
        if (bulk && !is_fifo(r)) peek_tick(w, (size_t)nread);
        return;
    }
    lg_buf_put(&w->pool, b);
    if (nread == UV_ENOBUFS && w->sched.splice_flow == f) {
        w->sched.splice_flow = NULL;
        flow_spliced(r, f, w->sched.splice_rc);
        return;
    }
    if (nread == UV_ENOBUFS && f->refused) {
        f->refused = false; /* the turn's read budget is used: read again next turn */
        return;
    }
    if (nread == 0) return;
    if (nread == UV_EOF) {
        flow_ended(r, f);
        return;
    }
    if (nread == UV_ENOBUFS) LG_COUNT(relay_counters(r), out_of_memory, 1);
    relay_fail(r, f->src, (int)nread);
}

void lg_relay_end(lg_relay_t *r, lg_flow_t *f)
{
    lg_relay_read_stop(r, f);
    light_del(&r->w->sched, f);
    f->eof = true;
    flow_maybe_shutdown(f);
}

/* Schedule the bytes a flow collected before it had a destination. */
static void release_held(lg_relay_t *r, lg_flow_t *f)
{
    size_t n = f->held;
    f->held = 0;
    lg_relay_queued(r, f, n);
}

int lg_relay_init(lg_relay_t *r, lg_wctx_t *w, unsigned lis, const lg_relay_ops_t *ops,
                  uint64_t flow_rate)
{
    memset(r, 0, sizeof(*r));
    r->w = w;
    r->lis = (uint8_t)lis;
    r->ops = ops;
    r->u2c.to_client = true;
    r->last_activity = uv_now(w->loop);
    return lg_relay_set_flow_rate(r, flow_rate);
}

int lg_relay_set_flow_rate(lg_relay_t *r, uint64_t rate)
{
    lg_flowcap_t *caps = r->c2u.cap; /* both caps, one allocation */
    if (caps != NULL && (caps[0].parked || caps[1].parked))
        return 0; /* in use: not before routing */
    if (rate == 0) {
        lg_free(caps);
        r->c2u.cap = r->u2c.cap = NULL;
        return 0;
    }
    if (caps == NULL) {
        caps = lg_calloc(2, sizeof(*caps));
        if (caps == NULL) return -ENOMEM;
        r->c2u.cap = &caps[0];
        r->u2c.cap = &caps[1];
    }
    uint64_t burst = LG_MAX(rate / LG_FLOW_BURST_DIV, (uint64_t)LG_FLOW_BURST_MIN);
    lg_pace_init(&caps[0].pace, rate, burst, uv_hrtime());
    lg_pace_init(&caps[1].pace, rate, burst, uv_hrtime());
    return 0;
}

void lg_relay_set_weight(lg_relay_t *r, unsigned weight)
{
    if (weight < 1) weight = 1;
    if (weight > LG_DRR_WEIGHT_MAX) weight = LG_DRR_WEIGHT_MAX;
    r->c2u.drr.weight = (uint16_t)weight;
    r->u2c.drr.weight = (uint16_t)weight;
}

void lg_relay_attach_client(lg_relay_t *r, uv_stream_t *client)
{
    r->c2u.src = client;
    release_held(r, &r->u2c);
}

void lg_relay_attach_upstream(lg_relay_t *r, uv_stream_t *up)
{
    r->u2c.src = up;
    /* Bytes queued before (a ClientHello, pipelined CONNECT bytes, plaintext decrypted while
     * dialling) go out first. */
    release_held(r, &r->c2u);
    flow_maybe_shutdown(&r->c2u); /* the client may have finished already */
}

int lg_relay_start(lg_relay_t *r)
{
    int rc = lg_relay_read_start(r, &r->c2u);
    if (rc == 0) rc = lg_relay_read_start(r, &r->u2c);
    return rc;
}

void lg_relay_stop(lg_relay_t *r)
{
    if (r->dead) return;
    r->dead = true;
    lg_relay_read_stop(r, &r->c2u);
    lg_relay_read_stop(r, &r->u2c);
    light_del(&r->w->sched, &r->c2u);
    light_del(&r->w->sched, &r->u2c);
    if (r->c2u.cap != NULL && r->c2u.cap->parked) flow_unpark(&r->w->sched, &r->c2u);
    if (r->u2c.cap != NULL && r->u2c.cap->parked) flow_unpark(&r->w->sched, &r->u2c);
    lg_drr_remove(&r->w->sched.drr, &r->c2u.drr);
    lg_drr_remove(&r->w->sched.drr, &r->u2c.drr);
    if (r->c2u.pipe != 0) pipe_unlend(r->w, &r->c2u);
    if (r->u2c.pipe != 0) pipe_unlend(r->w, &r->u2c);
}

void lg_relay_release(lg_relay_t *r)
{
    lg_relay_stop(r);
    lg_bufq_clear(&r->c2u.q, &r->w->pool);
    lg_bufq_clear(&r->u2c.q, &r->w->pool);
    lg_free(r->c2u.cap); /* both caps, one allocation (lg_relay_init) */
    r->c2u.cap = r->u2c.cap = NULL;
}
