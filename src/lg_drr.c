/*
 * lg_drr.c — per-worker Deficit Round-Robin scheduler (pure core; see lg_drr.h).
 *
 * Implements DRR (M. Shreedhar and G. Varghese, "Efficient Fair Queuing using Deficit Round
 * Robin", SIGCOMM 1995 / IEEE/ACM ToN 1996) over byte streams: a "packet" is any number of
 * bytes, so a visit grants min(deficit, backlog): either the whole deficit is spent or the
 * backlog empties and the deficit is reset. A visit starts with the flow's weighted quantum
 * (weight x quantum) as its deficit, so each visit grants min(weighted quantum, backlog) —
 * round-robin in slices proportional to the weights, which is exactly weighted DRR's service
 * for a byte stream.
 *
 * Credit between visits exists only for a visit that was cut: the caller could not write the
 * whole grant (pacing tokens, iovec limit) and handed the rest back (lg_drr_return). The flow then
 * keeps the rest as its deficit and the head of the ready list, and its next grant continues the
 * same visit without a new quantum — as DRR's head flow keeps sending while its deficit lasts.
 * Were the flow sent to the tail with a fresh quantum each time instead, a pacing bucket that
 * holds one quantum of tokens would make every visit one quantum long and erase the weights.
 * Credit is capped at LG_DRR_DEFICIT_CAP_QUANTA weighted quanta.
 *
 * Invariants (checked by test/c/test_drr.c):
 *   - A flow is in the ready list iff its state is READY; n_ready counts them and every READY
 *     flow has backlog > 0.
 *   - n_busy counts BUSY flows. A BUSY flow is in no list.
 *   - An IDLE flow has backlog == 0 and deficit == 0.
 *   - deficit <= LG_DRR_DEFICIT_CAP_QUANTA * weight * quantum; it is 0 except after a cut
 *     visit, and a READY flow with deficit > 0 was put at the head.
 *   - quantum is quantum_fixed when set, else clamp(ema_x16 / 16, QUANTUM_MIN, QUANTUM_MAX).
 * Every operation is O(1): the ready list is doubly linked, so remove() needs no scan.
 */
#include "lg_drr.h"

#include <string.h>

/*
 * The auto quantum starts at the floor (LG_DRR_QUANTUM_MIN): until reads show bulk traffic the
 * scheduler interleaves finely, which favours latency; with weight 1/8 a run of large reads lifts
 * it to the ceiling within a few dozen reads (the gap shrinks by 1/8 per read).
 */
#define LG_DRR_EMA_SHIFT 3 /* EMA weight 1/8 */
#define LG_DRR_EMA_SCALE 4 /* ema_x16 holds bytes in 1/16 (x << 4) */

static size_t clamp_auto(uint64_t ema_x16)
{
    uint64_t q = ema_x16 >> LG_DRR_EMA_SCALE;
    if (q < LG_DRR_QUANTUM_MIN) return LG_DRR_QUANTUM_MIN;
    if (q > LG_DRR_QUANTUM_MAX) return LG_DRR_QUANTUM_MAX;
    return (size_t)q;
}

void lg_drr_init(lg_drr_t *d, size_t fixed_quantum)
{
    memset(d, 0, sizeof(*d));
    if (fixed_quantum > LG_DRR_QUANTUM_FIXED_MAX) fixed_quantum = LG_DRR_QUANTUM_FIXED_MAX;
    d->quantum_fixed = fixed_quantum;
    d->ema_x16 = (uint64_t)LG_DRR_QUANTUM_MIN << LG_DRR_EMA_SCALE;
    d->quantum = fixed_quantum ? fixed_quantum : clamp_auto(d->ema_x16);
}

void lg_drr_observe_read(lg_drr_t *d, size_t n)
{
    if (n == 0) return; /* EOF or nothing read: no sample */
    /*
     * Samples above the ceiling are clamped to it: they all mean "bulk", and an unclamped 1 MiB
     * read would keep the quantum pinned at the ceiling long after bulk traffic stopped.
     */
    if (n > LG_DRR_QUANTUM_MAX) n = LG_DRR_QUANTUM_MAX;
    /* ema += (sample - ema) / 8, in 1/16 bytes: converges exactly to the sample. */
    d->ema_x16 = d->ema_x16 - (d->ema_x16 >> LG_DRR_EMA_SHIFT) +
                 (((uint64_t)n << LG_DRR_EMA_SCALE) >> LG_DRR_EMA_SHIFT);
    if (d->quantum_fixed == 0) d->quantum = clamp_auto(d->ema_x16);
}

static void list_append(lg_drr_t *d, lg_drr_flow_t *f)
{
    f->next = NULL;
    f->prev = d->tail;
    if (d->tail) {
        d->tail->next = f;
    } else {
        d->head = f;
    }
    d->tail = f;
    d->n_ready++;
    f->state = LG_DRR_READY;
}

static void list_prepend(lg_drr_t *d, lg_drr_flow_t *f)
{
    f->prev = NULL;
    f->next = d->head;
    if (d->head) {
        d->head->prev = f;
    } else {
        d->tail = f;
    }
    d->head = f;
    d->n_ready++;
    f->state = LG_DRR_READY;
}

static void list_unlink(lg_drr_t *d, lg_drr_flow_t *f)
{
    if (f->prev) {
        f->prev->next = f->next;
    } else {
        d->head = f->next;
    }
    if (f->next) {
        f->next->prev = f->prev;
    } else {
        d->tail = f->prev;
    }
    f->next = f->prev = NULL;
    d->n_ready--;
}

_Static_assert((uint64_t)LG_DRR_DEFICIT_CAP_QUANTA *LG_DRR_WEIGHT_MAX *LG_DRR_QUANTUM_FIXED_MAX <=
                   UINT32_MAX,
               "lg_drr_flow_t.deficit is 32 bits");

void lg_drr_add(lg_drr_t *d, lg_drr_flow_t *f, size_t n)
{
    if (n == 0) return;
    /* A backlog past 32 bits is a caller bug (lg_drr_flow_t.backlog): the count saturates. */
    if (n > UINT32_MAX - f->backlog) n = UINT32_MAX - f->backlog;
    f->backlog += (uint32_t)n;
    if (f->state == LG_DRR_IDLE) list_append(d, f);
}

lg_drr_flow_t *lg_drr_next(lg_drr_t *d, size_t *grant)
{
    lg_drr_flow_t *f = d->head;
    if (f == NULL) {
        *grant = 0;
        return NULL;
    }
    /* Nobody else is ready or has a write in flight: there is nobody to interleave with. */
    bool solo = d->n_ready == 1 && d->n_busy == 0;
    list_unlink(d, f);
    f->state = LG_DRR_BUSY;
    d->n_busy++;
    d->visits++;

    /* A flow with credit resumes a visit that was cut (lg_drr_return); others start one. */
    size_t fq = lg_drr_flow_quantum(d, f);
    size_t cap = LG_DRR_DEFICIT_CAP_QUANTA * fq;
    size_t deficit = f->deficit > 0 ? f->deficit : fq;
    if (deficit > cap) deficit = cap;

    size_t g = LG_MIN(deficit, f->backlog);
    if (solo) g = LG_MAX(g, LG_MIN(f->backlog, (size_t)LG_DRR_SOLO_GRANT));

    f->backlog -= (uint32_t)g;
    /* The visit ends with this grant (lg_drr_return reopens it); an emptied flow keeps no
     * credit either (DRR resets the deficit when the queue empties). */
    f->deficit = 0;

    d->grants++;
    d->granted_bytes += g;
    *grant = g;
    return f;
}

size_t lg_drr_take(lg_drr_t *d, lg_drr_flow_t *f, size_t sparse_max)
{
    if (f->state != LG_DRR_READY) return 0;
    list_unlink(d, f);
    f->state = LG_DRR_BUSY;
    d->n_busy++;
    d->visits++;
    size_t g = LG_MIN(f->backlog, LG_MAX(lg_drr_flow_quantum(d, f), sparse_max));
    f->backlog -= (uint32_t)g;
    f->deficit = 0; /* a sparse flow brings no credit and keeps none */
    d->grants++;
    d->granted_bytes += g;
    return g;
}

void lg_drr_return(lg_drr_t *d, lg_drr_flow_t *f, size_t n)
{
    if (f->state != LG_DRR_BUSY || n == 0) return;
    size_t cap = LG_DRR_DEFICIT_CAP_QUANTA * lg_drr_flow_quantum(d, f);
    f->backlog += (uint32_t)n; /* n <= the grant, taken from the backlog */
    f->deficit = (uint32_t)(n >= cap - LG_MIN(f->deficit, cap) ? cap : f->deficit + n);
    d->granted_bytes -= n;
}

void lg_drr_done(lg_drr_t *d, lg_drr_flow_t *f)
{
    if (f->state != LG_DRR_BUSY) return; /* caller bug: no grant outstanding; ignore */
    d->n_busy--;
    if (f->backlog > 0 && f->deficit > 0) {
        list_prepend(d, f); /* a cut visit goes on before anybody else's starts */
    } else if (f->backlog > 0) {
        list_append(d, f);
    } else {
        f->state = LG_DRR_IDLE;
        f->deficit = 0;
    }
}

void lg_drr_remove(lg_drr_t *d, lg_drr_flow_t *f)
{
    if (f->state == LG_DRR_READY) {
        list_unlink(d, f);
    } else if (f->state == LG_DRR_BUSY) {
        d->n_busy--;
    }
    f->next = f->prev = NULL;
    f->backlog = 0;
    f->deficit = 0;
    f->state = LG_DRR_IDLE;
}

/* ---- pacing ------------------------------------------------------------------------------ */

#define LG_PACE_NS 1000000000u

void lg_pace_init(lg_pace_t *p, uint64_t rate, uint64_t burst, uint64_t now)
{
    memset(p, 0, sizeof(*p));
    p->rate = rate;
    p->burst = rate ? LG_MAX(burst, (uint64_t)1) : 0;
    p->last = now;
    p->nb = (__uint128_t)p->burst * LG_PACE_NS;
}

uint64_t lg_pace_avail(lg_pace_t *p, uint64_t now)
{
    if (p->rate == 0) return UINT64_MAX;
    __uint128_t full = (__uint128_t)p->burst * LG_PACE_NS;
    if (now > p->last) {
        /* elapsed * rate fits: elapsed is at most ~1.8e19 ns and rate < 2^64. */
        __uint128_t add = (__uint128_t)(now - p->last) * p->rate;
        p->nb = add >= full - p->nb ? full : p->nb + add;
        p->last = now;
    }
    return (uint64_t)(p->nb / LG_PACE_NS);
}

void lg_pace_spend(lg_pace_t *p, uint64_t n)
{
    if (p->rate == 0) return;
    __uint128_t c = (__uint128_t)n * LG_PACE_NS;
    p->nb = c >= p->nb ? 0 : p->nb - c;
}

uint64_t lg_pace_wait(const lg_pace_t *p, uint64_t want)
{
    if (p->rate == 0) return 0;
    if (want > p->burst) want = p->burst;
    __uint128_t need = (__uint128_t)want * LG_PACE_NS;
    if (p->nb >= need) return 0;
    __uint128_t ns = (need - p->nb + p->rate - 1) / p->rate; /* round up */
    return ns > UINT64_MAX ? UINT64_MAX : (uint64_t)ns;
}
