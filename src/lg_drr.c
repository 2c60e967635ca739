/*
 * lg_drr.c — per-worker Deficit Round-Robin scheduler (pure core; see lg_drr.h).
 *
 * Implements DRR (M. Shreedhar and G. Varghese, "Efficient Fair Queuing using Deficit Round
 * Robin", SIGCOMM 1995 / IEEE/ACM ToN 1996) over byte streams: a "packet" is any number of
 * bytes, so a visit grants min(deficit, backlog): either the whole deficit is spent or the
 * backlog empties and the deficit is reset. Between visits the deficit is therefore 0 and each
 * visit grants min(quantum, backlog) — round-robin in quantum-sized slices, which is exactly
 * DRR's service for a byte stream. The deficit field and its cap (LG_DRR_DEFICIT_CAP_QUANTA
 * quanta) are still applied on every visit, so credit stays bounded should a flow ever carry
 * some (e.g. if a partial-grant return is added to the interface later).
 *
 * Invariants (checked by test/c/test_drr.c):
 *   - A flow is in the ready list iff its state is READY; n_ready counts them and every READY
 *     flow has backlog > 0.
 *   - n_busy counts BUSY flows. A BUSY flow is in no list.
 *   - An IDLE flow has backlog == 0 and deficit == 0.
 *   - deficit <= LG_DRR_DEFICIT_CAP_QUANTA * quantum at every visit (in practice 0 between
 *     visits, see above).
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

void lg_drr_add(lg_drr_t *d, lg_drr_flow_t *f, size_t n)
{
    if (n == 0) return;
    f->backlog += n;
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

    size_t cap = LG_DRR_DEFICIT_CAP_QUANTA * d->quantum;
    size_t deficit = f->deficit + d->quantum;
    if (deficit > cap || deficit < f->deficit) deficit = cap; /* cap, and guard wrap-around */

    size_t g = LG_MIN(deficit, f->backlog);
    if (solo) g = LG_MAX(g, LG_MIN(f->backlog, (size_t)LG_DRR_SOLO_GRANT));

    f->backlog -= g;
    /* An emptied flow keeps no credit (DRR resets the deficit when the queue empties). */
    f->deficit = (f->backlog == 0 || g >= deficit) ? 0 : deficit - g;

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
    size_t g = LG_MIN(f->backlog, LG_MAX(d->quantum, sparse_max));
    f->backlog -= g;
    f->deficit = 0; /* a sparse flow brings no credit and keeps none */
    d->grants++;
    d->granted_bytes += g;
    return g;
}

void lg_drr_done(lg_drr_t *d, lg_drr_flow_t *f)
{
    if (f->state != LG_DRR_BUSY) return; /* caller bug: no grant outstanding; ignore */
    d->n_busy--;
    if (f->backlog > 0) {
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
