/*
 * lg_balancer.h — choosing an upstream for a new connection (pure core).
 *
 * Three kinds of state, three lifetimes:
 *  - lg_upstate_t: one per distinct upstream identity, owned by the shell (engine-wide), shared by
 *    every worker and by every config snapshot that lists the upstream, so active counts, CPU
 *    samples and health survive a config swap. All fields are atomics (relaxed: each is a hint
 *    read on its own, and no decision needs two of them to agree).
 *  - lg_balancer_t: a route's policy, weights and (hash) lookup table. Built once with the config
 *    snapshot, immutable afterwards, shared by all workers without locks.
 *  - lg_pick_t: a cursor, per (worker, route): rotation offset, smooth weighted round-robin
 *    weights, RNG state. Only its worker touches it.
 *
 * Policies (lg_balancer_pick):
 *  - LG_BALANCE_LEASTCONN: score = active x 1000 + cpu_permille (symphony's score, §2.6); the
 *    lowest score per unit of weight wins, compared by cross-multiplication (score_a x w_b <
 *    score_b x w_a, no floats). Ties go to the first candidate after the cursor's previous pick,
 *    never to list order: three idle upstreams get three consecutive picks each. With unequal
 *    weights, the upstreams tied for the best score share by smooth weighted round-robin (as
 *    nginx's least_conn), so weights hold when the upstreams are idle too.
 *  - LG_BALANCE_ROUNDROBIN: nginx's smooth weighted round-robin, per cursor ({5,1,1} gives
 *    a a b a c a a).
 *  - LG_BALANCE_RANDOM2: power of two choices — two distinct random candidates, the lower weighted
 *    leastConn score wins. xorshift64 per cursor, seeded by the caller.
 *  - LG_BALANCE_HASH: Maglev consistent hashing (Eisenbud et al., NSDI 2016) on the client's
 *    address hash. Slots are shared out in proportion to weight. Upstream identities are the
 *    caller's keys (a hash of the address or socket path), not list positions, so removing or
 *    adding one of n upstreams moves about 1/n of the clients. When the client's upstream is
 *    excluded, the next slots of the table are walked: deterministic, and spread by weight.
 *
 * Candidates: an upstream is excluded when it is in the connection's tried set (failover never
 * repeats an upstream within one connection) or ejected. An upstream whose ejection has expired
 * is half-open: one connection at a time may take it as a probe. When every untried upstream is
 * ejected, the policy still picks among them (fail open) and says so in lg_pick_out_t.
 *
 * Passive health (lg_upstate_report): max_fails consecutive failed dials eject the upstream for
 * fail_timeout_ms; then one probe connection may try it (it wins a compare-and-swap on
 * ejected_until_ms, which it moves forward by the ejection length: a lease, so a probe that never
 * reports cannot wedge the upstream); success trusts it again, failure ejects it again.
 *
 * Also here: the client IP key shared by hashing and affinity (lg_affinity.h), and the parser of
 * /proc/<pid>/task/<tid>/stat lines for CPU sampling (the shell reads the file).
 */
#ifndef LG_BALANCER_H
#define LG_BALANCER_H

#include "lg_common.h"

#include <stdatomic.h>

#define LG_BALANCER_MAX            1024   /* upstreams per balancer (= LG_MAX_UPSTREAMS) */
#define LG_BALANCER_WEIGHT_MAX     65535  /* largest weight: score x weight stays below 2^58 */
#define LG_BALANCER_SCORE_ACTIVE   1000   /* score units per active connection */
#define LG_BALANCER_CPU_MAX        1000   /* cpu_permille ceiling (higher values count as this) */
#define LG_BALANCER_MAGLEV_SMALL   16381  /* slots (prime) of a hash table for n <= 128 upstreams */
#define LG_BALANCER_MAGLEV_LARGE   131071 /* slots (prime) of a hash table for n > 128 upstreams */
#define LG_BALANCER_MAGLEV_SMALL_N 128    /* largest n served by the small table */
#define LG_BALANCER_HASH_WALK_MAX  4096   /* slots walked past an excluded upstream before a scan */

enum {
    LG_BALANCE_LEASTCONN = 0,
    LG_BALANCE_ROUNDROBIN = 1,
    LG_BALANCE_RANDOM2 = 2,
    LG_BALANCE_HASH = 3,
};

#define LG_HEALTH_MAX_FAILS_DEFAULT       3       /* consecutive failed dials that eject */
#define LG_HEALTH_MAX_FAILS_MAX           1000    /* largest max_fails accepted */
#define LG_HEALTH_FAIL_TIMEOUT_DEFAULT_MS 10000   /* ms: length of an ejection */
#define LG_HEALTH_FAIL_TIMEOUT_MAX_MS     3600000 /* ms: longest ejection (1 hour) */

/* Passive health rules of a route. max_fails 0 never ejects. */
typedef struct lg_health_rules_s {
    uint32_t max_fails;       /* 0..LG_HEALTH_MAX_FAILS_MAX */
    uint32_t fail_timeout_ms; /* 1..LG_HEALTH_FAIL_TIMEOUT_MAX_MS; 0 counts as 1 */
} lg_health_rules_t;

/*
 * Per-upstream shared state. Owner: the shell, one per distinct upstream identity, referenced by
 * every snapshot that lists it and freed when the last such snapshot is freed. Initialise with
 * lg_upstate_init(). `gen` tells apart two upstates that occupy the same address one after the
 * other (lg_affinity never dereferences a stored pointer; it compares pointer and gen).
 */
typedef struct lg_upstate_s {
    atomic_uint active;                    /* connections open or dialling, engine-wide */
    atomic_uint cpu_permille;              /* 0..1000 from /proc sampling (0 = unknown) */
    atomic_uint consecutive_fails;         /* failed dials since the last success */
    atomic_uint_fast64_t ejected_until_ms; /* 0 = trusted; else ejected (or probe lease) until */
    atomic_uint_fast64_t eject_ms;         /* length of the current ejection (the probe lease) */
    atomic_bool probing;                   /* a half-open probe is in flight */
    uint64_t gen;                          /* unique per upstate lifetime, set by the shell */
    /* Totals for metrics, monotonic. */
    atomic_uint_fast64_t picks;      /* times chosen (probes and fail-open included) */
    atomic_uint_fast64_t dial_fails; /* failed dials reported */
    atomic_uint_fast64_t ejections;  /* times ejected (re-ejections after a failed probe too) */
    atomic_uint_fast64_t probes;     /* half-open probes started */
    atomic_uint_fast64_t fail_opens; /* chosen while ejected because nothing else was left */
} lg_upstate_t;

/*
 * A route's balancer. Owner: the config snapshot; freed with lg_balancer_free(). Immutable after
 * lg_balancer_build(), read by all workers without locks.
 */
typedef struct lg_balancer_s {
    int policy;          /* LG_BALANCE_* */
    uint32_t n;          /* upstreams, 1..LG_BALANCER_MAX */
    bool weighted;       /* some weight is not 1 */
    uint32_t *weights;   /* n weights, 1..LG_BALANCER_WEIGHT_MAX */
    uint16_t *table;     /* HASH: Maglev lookup table, slot -> upstream index */
    uint32_t table_size; /* HASH: slots (a prime), else 0 */
} lg_balancer_t;

/*
 * A cursor: per (worker, route) mutable state. Owner: the worker; lg_pick_init() when it adopts a
 * snapshot, lg_pick_free() when it drops it. Only that worker's thread uses it.
 */
typedef struct lg_pick_s {
    uint32_t rot; /* leastConn: where the scan for ties starts (after the previous pick) */
    uint32_t n;   /* entries in cw (0: none) */
    uint64_t rng; /* random2: xorshift64 state, never 0 */
    int32_t *cw;  /* roundRobin, weighted leastConn: smooth-WRR current weights, n entries */
} lg_pick_t;

#define LG_PICK_SET_WORDS (LG_BALANCER_MAX / 64)

/* What the caller knows about this connection. Zero it (or lg_pick_in_init) per connection. */
typedef struct lg_pick_in_s {
    uint64_t client_hash;              /* HASH: lg_clientkey_hash() of the client address */
    uint64_t tried[LG_PICK_SET_WORDS]; /* bit i: upstream i was already tried */
    uint64_t probe_lease_ms; /* a probe's claim lasts at least this: the attempt's time (with a
                                shorter failTimeoutMs, a blackholed probe's lease ran out while
                                it was still dialling and the next connection probed as well) */
} lg_pick_in_t;

/* What a pick did besides choosing, for the caller's counters. */
typedef struct lg_pick_out_s {
    bool fail_open;       /* every untried upstream was ejected; this one was taken anyway */
    bool probe;           /* this connection is the half-open probe of an ejected upstream */
    uint64_t probe_until; /* then: the end of its lease, which lg_upstate_unprobe needs */
} lg_pick_out_t;

/* A client address as a table key: family (4 or 6) then 16 address bytes, IPv4 in b[1..4]. */
#define LG_CLIENTKEY_LEN 17
typedef struct lg_clientkey_s {
    uint8_t b[LG_CLIENTKEY_LEN];
} lg_clientkey_t;

/* ---- upstream state and health ---- */

/* Zero every field and set gen (unique per upstate the shell creates, e.g. a counter). */
void lg_upstate_init(lg_upstate_t *s, uint64_t gen);

/*
 * Take an active reference on s without a pick (a connection placed by lg_affinity): active and
 * picks grow by one, as lg_balancer_pick does for the upstream it returns.
 */
void lg_upstate_acquire(lg_upstate_t *s);

/*
 * Release the active reference a pick took (the dial failed, or the connection closed). Never
 * goes below 0: an unmatched release is ignored rather than wrapping to 4 billion, which would
 * starve the upstream forever under leastConn.
 */
void lg_upstate_release(lg_upstate_t *s);

/* Defaults: max_fails LG_HEALTH_MAX_FAILS_DEFAULT, fail_timeout_ms
 * LG_HEALTH_FAIL_TIMEOUT_DEFAULT_MS. */
void lg_health_rules_init(lg_health_rules_t *r);

/*
 * Report the outcome of a dial to s (call once per pick that dialled; ok = connected).
 * Success: consecutive_fails = 0, ejection and probe cleared. Failure: dial_fails and
 * consecutive_fails grow; with r->max_fails > 0, reaching max_fails ejects the upstream until
 * now_ms + fail_timeout_ms, and a failure in the half-open state (the probe, or a dial made after
 * the ejection expired) ejects it again for fail_timeout_ms. Failures of dials made before the
 * ejection, reported while it lasts, do not extend it. Thread-safe.
 */
void lg_upstate_report(lg_upstate_t *s, bool ok, const lg_health_rules_t *r, uint64_t now_ms);

/*
 * The half-open probe of s whose lease ends at lease_until (lg_pick_out_t.probe_until) ended
 * without a verdict (its attempt failed for a reason of this host's, which lg_upstate_report is
 * not told): its claim is given back, so s is half-open again at now_ms and the next connection
 * may probe it, rather than waiting out the lease. Does nothing once the deadline is not that
 * lease's any more (s was reported on, ejected again, or probed by another connection after the
 * lease ran out). Thread-safe.
 */
void lg_upstate_unprobe(lg_upstate_t *s, uint64_t lease_until, uint64_t now_ms);

/* True while s is ejected at now_ms (a half-open upstream is not ejected: it may be probed). */
bool lg_upstate_ejected(const lg_upstate_t *s, uint64_t now_ms);

/* ---- balancer ---- */

/*
 * Build b for n upstreams (1..LG_BALANCER_MAX). weights: n values 1..LG_BALANCER_WEIGHT_MAX, or
 * NULL for all 1. keys: HASH only, n stable identities of the upstreams (e.g. a hash of "tcp
 * host:port" or "uds path"), distinct; NULL uses the list position, which keeps clients in place
 * only when upstreams are added or removed at the end of the list. Ignored by other policies.
 * Returns 0, -EINVAL (bad policy, n or weight; b is zeroed) or -ENOMEM (b is zeroed). Allocates;
 * call at config build time.
 */
int lg_balancer_build(lg_balancer_t *b, int policy, const uint32_t *weights, const uint64_t *keys,
                      size_t n);

/* Free what lg_balancer_build allocated; b is zeroed. A zeroed b is fine. */
void lg_balancer_free(lg_balancer_t *b);

/*
 * Initialise a cursor for b. seed: any value (per worker, e.g. random); it seeds the RNG and the
 * first tie-break position, so workers do not all start on the same upstream. Returns 0 or
 * -ENOMEM (roundRobin with n > 1 allocates n current weights). A cursor must be used only with
 * the balancer it was initialised for; with another one it degrades to plain rotation.
 */
int lg_pick_init(lg_pick_t *c, const lg_balancer_t *b, uint64_t seed);

/* Free a cursor; c is zeroed. A zeroed cursor is fine. */
void lg_pick_free(lg_pick_t *c);

/*
 * Choose an upstream for a connection. st: the route's n upstates, in list order. in: the
 * connection's client hash and tried set (NULL: none tried, hash 0). out: may be NULL.
 * Returns the index, or -1 when every upstream is in the tried set (the caller may clear the
 * set to go round again). On success the chosen upstream's `active` and `picks` have been
 * incremented: the caller owns one active reference and gives it back with
 * lg_upstate_release() when the dial fails or the connection ends, and reports the dial with
 * lg_upstate_report(). Lock-free, no allocation; O(n) for leastConn and roundRobin, O(1)
 * expected for random2 and hash. Thread-safe for distinct cursors.
 */
int lg_balancer_pick(const lg_balancer_t *b, lg_upstate_t *const *st, lg_pick_t *cur,
                     const lg_pick_in_t *in, lg_pick_out_t *out, uint64_t now_ms);

static inline void lg_pick_in_init(lg_pick_in_t *in, uint64_t client_hash)
{
    *in = (lg_pick_in_t){.client_hash = client_hash};
}

/* Mark upstream i as tried for this connection (i >= LG_BALANCER_MAX is ignored). */
static inline void lg_pick_tried_add(lg_pick_in_t *in, int i)
{
    if (i >= 0 && i < LG_BALANCER_MAX) in->tried[i / 64] |= (uint64_t)1 << (i % 64);
}

static inline bool lg_pick_tried_has(const lg_pick_in_t *in, size_t i)
{
    return i < LG_BALANCER_MAX && (in->tried[i / 64] >> (i % 64) & 1) != 0;
}

static inline void lg_pick_tried_clear(lg_pick_in_t *in)
{
    for (size_t w = 0; w < LG_PICK_SET_WORDS; w++)
        in->tried[w] = 0;
}

/* ---- client keys ---- */

/*
 * Key of a client address: family 4 with addr[0..3], or 6 with addr[0..15]. An IPv4-mapped IPv6
 * address (::ffff:a.b.c.d, seen on dual-stack listeners) gives the key of a.b.c.d, so a client
 * has one key whichever listener it came through. Returns 0, or -EINVAL for another family (the
 * key is then zeroed).
 */
int lg_clientkey_make(lg_clientkey_t *k, uint8_t family, const uint8_t addr[16]);

/* A stable (unkeyed, same in every process) 64-bit hash of k: the HASH policy's client_hash. */
uint64_t lg_clientkey_hash(const lg_clientkey_t *k);

/* ---- CPU sampling ---- */

#define LG_CPU_CLK_TCK_MAX    1000000  /* largest clock tick rate accepted (Linux: 100) */
#define LG_CPU_MS_DELTA_MAX   86400000 /* ms: a longer sampling interval is "unknown" (1 day) */
#define LG_CPU_STAT_FIELD_MAX 20       /* digits in utime or stime (2^64 has 20) */

/*
 * Parse a /proc/<pid>/task/<tid>/stat line of exactly len bytes (need not be NUL-terminated):
 * "pid (comm) state f4 ... f13 utime stime ...". comm may hold spaces and parentheses, so fields
 * are counted after the LAST ')' in the buffer; utime and stime are fields 14 and 15. Grammar
 * checked: pid is 1+ digits followed by " ("; after the last ')' come single-space-separated,
 * non-empty fields free of ' ', '\n' and NUL; utime and stime are 1..20 digits; stime is followed
 * by the end, ' ' or '\n'. On success *ticks = utime + stime and 0 is returned; anything else
 * (including a value or sum above 2^64 - 1) is -EINVAL and *ticks is untouched.
 */
int lg_cpu_parse_stat(const char *buf, size_t len, uint64_t *ticks);

/*
 * CPU use in permille of one core over an interval: ticks_delta clock ticks of utime+stime in
 * ms_delta milliseconds, at clk_tck ticks per second. Clamped to 0..1000. Returns 0 (unknown)
 * when ms_delta is 0 or above LG_CPU_MS_DELTA_MAX or clk_tck is outside 1..LG_CPU_CLK_TCK_MAX.
 */
unsigned lg_cpu_permille(uint64_t ticks_delta, uint64_t ms_delta, long clk_tck);

#endif /* LG_BALANCER_H */
