/*
 * lg_drr.h — per-worker Deficit Round-Robin scheduler (pure core).
 *
 * Each direction of each relayed connection is a flow. The relay queues bytes on a flow and tells
 * the scheduler how many (lg_drr_add); the worker then asks for grants (lg_drr_next) and writes
 * each granted flow's bytes. A flow has at most one grant outstanding: from lg_drr_next until
 * lg_drr_done it is BUSY and out of the ready list, so a flow whose peer reads slowly gives up its
 * turn instead of banking credit, and a flow with a write in flight never gets a second one.
 *
 * DRR (Shreedhar & Varghese, 1996) over byte streams: when a flow reaches the head of the ready
 * list its deficit grows by the quantum (capped at LG_DRR_DEFICIT_CAP_QUANTA quanta), and it is
 * granted min(deficit, backlog) bytes; the grant is subtracted from the deficit. A flow whose
 * backlog empties has its deficit reset to 0 and leaves the list. Completed flows with backlog
 * left rejoin at the tail, so service is round-robin in quantum-sized slices.
 *
 * Work conservation: a flow that is the only ready flow and has no competitor waiting is granted
 * up to LG_DRR_SOLO_GRANT bytes at once, since there is nobody to interleave with; slicing it
 * would only add system calls. "No competitor" means no other flow is READY or BUSY (n_busy ==
 * 0): otherwise a worker that takes every ready grant in one pass would hand the last flow of
 * each pass a solo grant while the others, busy writing, get a quantum.
 *
 * Weights (scheduler.weight of a route or listener): a flow of weight w has a quantum of w x the
 * worker's quantum, so among flows that stay backlogged a flow of weight 3 gets 3 times the bytes
 * of a flow of weight 1 (weighted DRR). A visit may be granted in several pieces: when the relay
 * cannot write the whole grant now (the pacing bucket holds fewer tokens, or the bytes span more
 * buffers than one write carries) it hands the rest back with lg_drr_return, and the flow keeps
 * the rest as credit and the head of the ready list, so it finishes its visit before the next
 * flow starts one. Without that, a paced worker would cut every grant to one quantum of tokens
 * and every weight would count as 1.
 *
 * Fairness bound (test/c/test_drr.c, test_weighted_shares): for flows that stay backlogged (each
 * always has at least its weighted quantum queued) and are granted in turn, with a fixed quantum q,
 * the normalised service bytes_i / w_i of any two flows differs by less than 2q from the moment
 * they are all backlogged, and by less than 3q over any interval of grants; so over n rounds the
 * shares are proportional to the weights within 2q x w_i / (n q w_i) = 2 / n of each flow's
 * share. The solo rule never applies between competitors.
 *
 * Quantum: fixed, or 'auto' — an exponential moving average (weight 1/8) of read sizes seen by
 * the worker, clamped to [LG_DRR_QUANTUM_MIN, LG_DRR_QUANTUM_MAX]: interactive traffic with
 * small reads gets small slices, bulk traffic larger ones.
 *
 * Not thread-safe: a scheduler and its flows belong to one worker thread.
 */
#ifndef LG_DRR_H
#define LG_DRR_H

#include "lg_common.h"

#define LG_DRR_QUANTUM_MIN        1500       /* bytes: auto quantum floor (one Ethernet MTU) */
#define LG_DRR_QUANTUM_MAX        16384      /* bytes: auto quantum ceiling */
#define LG_DRR_QUANTUM_FIXED_MAX  (1u << 24) /* bytes: largest fixed quantum accepted (16 MiB) */
#define LG_DRR_DEFICIT_CAP_QUANTA 2          /* deficit never exceeds this many quanta */
#define LG_DRR_SOLO_GRANT         65536      /* bytes: grant to a flow with no competitor */
#define LG_DRR_WEIGHT_MAX         64         /* largest flow weight (scheduler.weight) */

enum { LG_DRR_IDLE = 0, LG_DRR_READY, LG_DRR_BUSY };

/* Embedded in the relay's flow struct; zero-initialise it (IDLE, nothing queued). */
typedef struct lg_drr_flow_s {
    struct lg_drr_flow_s *next; /* ready-list link, valid while READY */
    struct lg_drr_flow_s *prev; /* ready-list back link, valid while READY (O(1) remove) */
    uint32_t backlog;           /* bytes queued and not yet granted (a flow queues at most
                                   LG_FLOW_QUEUE_MAX plus a read: lg_drr_add refuses more) */
    uint32_t
        deficit;     /* bytes of credit left of an unfinished visit; <= cap (at most
                        LG_DRR_DEFICIT_CAP_QUANTA x LG_DRR_WEIGHT_MAX x LG_DRR_QUANTUM_FIXED_MAX) */
    uint16_t weight; /* 1..LG_DRR_WEIGHT_MAX (0 counts as 1): quantum multiplier */
    uint8_t state;   /* LG_DRR_IDLE / READY / BUSY */
} lg_drr_flow_t;

typedef struct lg_drr_s {
    lg_drr_flow_t *head, *tail; /* ready list */
    size_t n_ready;
    size_t n_busy;        /* flows with a grant outstanding (competitors for the solo rule) */
    size_t quantum_fixed; /* 0 = auto */
    size_t quantum;       /* current quantum in bytes */
    uint64_t ema_x16;     /* auto: moving average of read sizes, in 1/16 bytes */
    uint64_t grants;      /* statistics: grants handed out */
    uint64_t granted_bytes;
    uint64_t visits; /* flows visited (a "round" is n_ready visits) */
} lg_drr_t;

/*
 * fixed_quantum: bytes (1..LG_DRR_QUANTUM_FIXED_MAX; larger values are clamped to the maximum),
 * or 0 for 'auto'. The auto quantum starts at LG_DRR_QUANTUM_MIN (fine interleaving until reads
 * show bulk traffic).
 */
void lg_drr_init(lg_drr_t *d, size_t fixed_quantum);

/*
 * Record a read of n bytes (auto quantum input). n == 0 is ignored; samples above
 * LG_DRR_QUANTUM_MAX count as LG_DRR_QUANTUM_MAX. With a fixed quantum the average is still kept
 * (ema_x16, for metrics) but the quantum does not change.
 */
void lg_drr_observe_read(lg_drr_t *d, size_t n);

/*
 * n more bytes were queued on f. An IDLE flow becomes READY (joins the tail); a READY or BUSY
 * flow keeps its place. n == 0 changes nothing.
 */
void lg_drr_add(lg_drr_t *d, lg_drr_flow_t *f, size_t n);

/*
 * Take the next ready flow and its grant in bytes (> 0); the flow becomes BUSY. A flow starting
 * a visit is granted min(backlog, weight x quantum); one resuming a visit (credit left by
 * lg_drr_return) is granted min(backlog, credit). Returns NULL when no flow is ready.
 */
lg_drr_flow_t *lg_drr_next(lg_drr_t *d, size_t *grant);

/*
 * Serve f at once, ahead of the ready list (new/sparse-flow priority, as FQ-CoDel's new-flow
 * list and sch_fq's detached flows): f must be READY and must have been IDLE before the bytes
 * just added (no backlog, no grant outstanding). Grants
 * min(backlog, max(f's weighted quantum, sparse_max)); f becomes BUSY. Returns 0 (and changes
 * nothing) when f is not READY.
 *
 * Why this keeps the fairness bound: a flow is sparse only while its queue is empty, so what
 * it gets this way is what its source gave in one read (the relay passes max(read buffer, what
 * the read queued): a terminated connection's read becomes slightly more bytes of TLS records), and
 * the relay lets a source read at most one read budget per loop turn (lg_relay.c; weighted like the
 * quantum). Every flow therefore moves at most max(weighted quantum, sparse_max) + one read budget
 * per turn, whether it is served here or from the ready list.
 */
size_t lg_drr_take(lg_drr_t *d, lg_drr_flow_t *f, size_t sparse_max);

/*
 * n bytes of f's current grant (f is BUSY) are not written now: they go back to its backlog and
 * its credit (capped at LG_DRR_DEFICIT_CAP_QUANTA weighted quanta), and when the grant is done f
 * resumes its visit at the head of the ready list. A flow that is not BUSY, or n == 0, is left
 * alone.
 */
void lg_drr_return(lg_drr_t *d, lg_drr_flow_t *f, size_t n);

/*
 * The write for f's last grant finished (or was abandoned). A BUSY flow with backlog rejoins the
 * tail, or the head when it has credit left (its visit was cut: lg_drr_return); one without
 * becomes IDLE with its deficit reset. A flow that is not BUSY is left alone.
 */
void lg_drr_done(lg_drr_t *d, lg_drr_flow_t *f);

/* Remove f from the scheduler whatever its state (the flow is closing); f becomes IDLE, empty. */
void lg_drr_remove(lg_drr_t *d, lg_drr_flow_t *f);

/* A flow's quantum: its weight (at least 1) times the worker's quantum. */
static inline size_t lg_drr_flow_quantum(const lg_drr_t *d, const lg_drr_flow_t *f)
{
    return d->quantum * (f->weight ? f->weight : 1u);
}

/* True when some flow is READY. */
static inline bool lg_drr_pending(const lg_drr_t *d)
{
    return d->head != NULL;
}

/*
 * Read debt (the relay's read scheduling, lg_relay.c read_allowed). In each loop turn a flow may
 * start reading while what it read in the turn is below its read budget b; once it reads, a
 * splicing flow empties its socket, up to a drain limit past b (reading a socket empty costs the
 * worker up to half what a partial read does per byte, bench/README.md). What it read past b is
 * debt, carried into the next turns, each of which pays one budget; a flow starts a turn "having
 * read" its debt, so it skips turns until the debt is below b. A flow that read in the last turn
 * without any other reader owes nobody (no turns to skip for).
 *
 * Returns what a flow that read `used` bytes in its last turn (its debt included) carries into a
 * turn `turns` turns later: used - turns x budget, at least 0, or 0 when `alone`.
 *
 * Fairness bound (test/c/test_drr.c, test_read_debt_bound): a flow whose socket holds at least b
 * whenever it may read ends every turn having read (since the first turn it read in) between
 * T x b and T x b + drain + one read in T turns: every turn it either reads until it passed b or
 * skips with a debt of b or more. So two such flows differ by at most the drain plus one read
 * however long they run, whatever their windows; a flow whose socket holds less gets all it has
 * every turn (a flow that read less than b in a turn carries nothing: credit is not kept, as DRR
 * resets the deficit of a flow whose queue empties).
 */
static inline uint64_t lg_drr_read_debt(uint64_t used, uint64_t budget, uint64_t turns, bool alone)
{
    if (alone || turns >= UINT64_MAX / (budget ? budget : 1)) return 0;
    uint64_t paid = budget * turns;
    return used > paid ? used - paid : 0;
}

/*
 * Aggregate pacing (scheduler.rate / scheduler.burst): a token bucket in front of the DRR grants.
 * The bucket holds at most `burst` bytes and fills at `rate` bytes per second; a grant is cut to
 * the tokens available and spends them. When it is empty no flow is granted anything, so the
 * flows wait in the ready list in DRR order and the shared rate is divided as DRR divides the
 * wire: over any interval t, at most rate * t + burst bytes are granted.
 *
 * Time is whatever clock the caller passes, in nanoseconds (the relay: uv_hrtime; the tests: a
 * simulated clock). Tokens are kept in byte-nanoseconds (bytes x 1e9) so no fraction of a byte is
 * lost between refills, however often they happen.
 */
typedef struct lg_pace_s {
    uint64_t rate;  /* bytes per second; 0 = pacing off */
    uint64_t burst; /* bytes: bucket size */
    uint64_t last;  /* ns: time of the last refill */
    __uint128_t nb; /* tokens, in byte-nanoseconds (<= burst * 1e9) */
} lg_pace_t;

/* Start with a full bucket at time now. rate 0: pacing off (every call says "unlimited"). */
void lg_pace_init(lg_pace_t *p, uint64_t rate, uint64_t burst, uint64_t now);

/* Refill up to now and return the whole bytes available (UINT64_MAX when pacing is off). */
uint64_t lg_pace_avail(lg_pace_t *p, uint64_t now);

/* Spend n bytes (at most what lg_pace_avail returned). */
void lg_pace_spend(lg_pace_t *p, uint64_t n);

/* Nanoseconds from the last refill until `want` bytes (capped to burst) are available; 0 if
 * they are. */
uint64_t lg_pace_wait(const lg_pace_t *p, uint64_t want);

#endif /* LG_DRR_H */
