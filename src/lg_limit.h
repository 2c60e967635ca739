/*
 * lg_limit.h — per-source-IP admission state: token buckets, penalty box and concurrency per
 * listener (pure core: no libuv, no N-API, no I/O, no clock; time is passed in).
 *
 * Semantics (reference: symphony §1.6, §1.12, §2.5; where this differs it says so):
 *   - A key is (listener index, address): each listener has its own rules, so its own state.
 *     IPv4-mapped IPv6 counts as the IPv4 address; IPv6 is aggregated to a prefix (ipv6Prefix,
 *     1..128; /64 stops a client from hopping through its own /64 — symphony keys exact IPs).
 *   - Two token buckets, each optional: rateLimit (connections per second, burst) and
 *     sustained (connections per minute, burst). Rates may be fractional; burst >= 1.
 *   - lg_limit_admit decides, in this order:
 *       1. penalty box (only when the rules have penalty_box_ms > 0): while boxed the answer is
 *          LG_LIMIT_BOXED, but the buckets are still debited, and a failed debit extends the
 *          box to now + penalty_box_ms ("continued excess while boxed extends it");
 *       2. buckets: a token is taken from both only when both have one (a connection refused
 *          by one bucket costs nothing in the other; symphony debits them one after the
 *          other); when either is empty the answer is LG_LIMIT_RATE, and with a box configured
 *          the IP is boxed until now + penalty_box_ms;
 *       3. concurrency: active >= max_concurrent (when > 0) is LG_LIMIT_CONCURRENCY;
 *       4. LG_LIMIT_OK, and active is incremented; lg_limit_release decrements it.
 *   - The table is owned by the engine and outlives config swaps; rules come with every call,
 *     so new rules apply to the state already there.
 *
 * Token buckets in fixed point, time form (GCRA, the "virtual scheduling" form of ITU-T I.371):
 * a bucket with rate r and burst b is stored as one uint64 TAT (theoretical arrival time, in ns
 * of the caller's monotonic clock). With T = 1/r (ns per token, interval_ns) and
 * tau = (b - 1) * T (tolerance_ns), the bucket holds b - max(0, TAT - now) / T tokens, so it
 * has a token iff TAT - now <= tau, taking one sets TAT = max(TAT, now) + T, and it is full iff
 * TAT <= now. Unit: 1 ns of debt; one token is T ns. It is exactly the token bucket (refill r
 * per second, capped at b) with no refill arithmetic on the hot path: no division, no
 * remainder to carry, no floating point. T and tau are rounded to whole ns once, when the rules
 * are built (lg_limit_bucket_init): a rate is then exact to within 0.5 ns per token (1 part in
 * 2 * 10^9 at one per second).
 *
 * Shared state, threads: this is legato's one documented sharded table on the data path. The
 * entries are split over a power-of-two number of shards by key hash; each shard has one
 * pthread mutex, held for the lookup and update of one entry (no allocation and no I/O under
 * it on the hot path). Growth allocates with the lock released, then moves the entries under
 * it (amortised: at most log2(share) times per shard). lg_limit_list and lg_limit_stats hold
 * each shard's lock in turn while they read it.
 *
 * Bounded memory: at most max_tracked entries engine-wide, split evenly over the shards. Each
 * shard is a dense entry array plus an open-addressing index (linear probing, load <= 1/2),
 * both grown by doubling up to the shard's share. A full shard evicts an idle entry found by a
 * bounded clock-hand scan (LG_LIMIT_EVICT_PROBE entries) then LG_LIMIT_EVICT_RANDOM random
 * probes; idle = no active connection, not
 * boxed, and both buckets full (no tokens owed), judged from the entry alone (the TATs are
 * absolute). Boxed or active entries are never evicted. When nothing idle is found, or memory
 * runs out while growing, the connection is admitted untracked: LG_LIMIT_OK with
 * ticket.tracked = false, counted in stats.untracked. That is fail-open by design: a full
 * table must not refuse everyone; the counter and lg_limit_stats tell the operator to raise
 * maxTrackedIps.
 *
 * Entry: 64 bytes (one cache line; asserted in lg_limit.c and test_limit.c) plus 4-8 bytes of
 * index per entry: about 72 bytes per tracked IP when the table is full.
 *
 * Hash flooding: keys are hashed with SipHash-1-3 under a secret key (lg_limit_seed), so a
 * client that picks its source addresses cannot aim them at one probe chain.
 */
#ifndef LG_LIMIT_H
#define LG_LIMIT_H

#include "lg_common.h"

#include <stdatomic.h>

/* lg_limit_admit verdicts. */
#define LG_LIMIT_OK          0 /* admitted: release it with lg_limit_release */
#define LG_LIMIT_BOXED       1 /* refused: in the penalty box ('penalty_boxed') */
#define LG_LIMIT_RATE        2 /* refused: a bucket is empty ('rate_limited') */
#define LG_LIMIT_CONCURRENCY 3 /* refused: max_concurrent reached ('too_many_connections') */

/* lg_limit_list selectors (blockedIps()). */
#define LG_LIMIT_LIST_RATE_LIMITED        1 /* a bucket has < 1 token at now */
#define LG_LIMIT_LIST_CONCURRENCY_LIMITED 2 /* active >= the max of its last admit (> 0) */
#define LG_LIMIT_LIST_PENALTY_BOXED       3 /* boxed beyond now */

#define LG_LIMIT_DEFAULT_TRACKED 1000000  /* IPs tracked engine-wide (maxTrackedIps default) */
#define LG_LIMIT_MAX_TRACKED     16777216 /* IPs: hard maximum of maxTrackedIps (2^24) */
#define LG_LIMIT_MAX_SHARDS      64       /* shards at most (a power of two) */
#define LG_LIMIT_SHARD_MIN       1024     /* IPs per shard below which fewer shards are used */
#define LG_LIMIT_EVICT_PROBE     32       /* entries a full shard examines for an idle one */
#define LG_LIMIT_EVICT_RANDOM    32       /* random entries it examines after that scan */
#define LG_LIMIT_SWEEP_BATCH     256      /* entries lg_limit_sweep examines per lock hold */
#define LG_LIMIT_WINDOW_MAX_NS   (UINT64_C(1) << 62) /* ns: burst * interval of one bucket */
#define LG_IPKEY_TEXT_MAX        44 /* bytes: "ffff:ffff:...:ffff/127" (43 chars) + NUL */

/*
 * A per-listener source key. Built with lg_ipkey_make (every byte defined, so keys compare and
 * hash as bytes). Plain value type.
 */
typedef struct lg_ipkey_s {
    uint8_t listener; /* listener index (LG_MAX_LISTENERS = 64 fits) */
    uint8_t family;   /* 4 or 6 (as in lg_cidr) */
    uint8_t prefix;   /* bits that count: 32 for IPv4, 1..128 for IPv6 */
    uint8_t addr[16]; /* big-endian, zero beyond prefix; IPv4 in addr[0..3] */
} lg_ipkey_t;

/*
 * One token bucket, as lg_limit_bucket_init computes it. interval_ns == 0: the bucket is off
 * (a zeroed bucket is off).
 */
typedef struct lg_limit_bucket_s {
    uint64_t interval_ns;  /* T: ns per token, 1 / rate */
    uint64_t tolerance_ns; /* tau: (burst - 1) * T, how far the TAT may run ahead of now */
} lg_limit_bucket_t;

/* A listener's per-IP rules; built once per config snapshot, passed with every call. */
typedef struct lg_limit_rules_s {
    lg_limit_bucket_t rate;      /* rateLimit: connectionsPerSecond, burst */
    lg_limit_bucket_t sustained; /* sustained: connectionsPerMinute, burst */
    uint32_t max_concurrent;     /* maxConcurrentPerIp; 0 = unlimited */
    uint32_t penalty_box_ms;     /* penaltyBox.durationMs; 0 = no box */
} lg_limit_rules_t;

/* What lg_limit_admit counted, for lg_limit_release. */
typedef struct lg_limit_ticket_s {
    bool tracked; /* true iff the verdict was LG_LIMIT_OK and active was incremented */
} lg_limit_ticket_t;

typedef struct lg_limit_stats_s {
    size_t tracked;     /* entries now */
    size_t capacity;    /* entries at most (max_tracked) */
    size_t bytes;       /* bytes the table has allocated (entries, indexes, shards) */
    uint64_t untracked; /* admissions that found no room and went untracked */
    uint64_t evictions; /* idle entries evicted to make room for a new key */
    uint64_t swept;     /* idle entries removed by lg_limit_sweep */
} lg_limit_stats_t;

typedef struct lg_limit_shard_s lg_limit_shard_t; /* private to lg_limit.c */

/*
 * The table. Owner: the engine; lg_limit_init / lg_limit_destroy. Shared by every worker
 * thread; every function below is thread-safe except init, seed and destroy.
 */
typedef struct lg_limit_s {
    lg_limit_shard_t *shards; /* n_shards, cache-line aligned inside shards_mem */
    void *shards_mem;
    size_t n_shards;           /* power of two */
    uint64_t key[2];           /* SipHash key (lg_limit_seed) */
    _Atomic size_t sweep_next; /* shard lg_limit_sweep starts with */
    size_t capacity;           /* max_tracked */
} lg_limit_t;

/*
 * Make the key of a source address: family 4 (addr holds 4 bytes) or 6 (16 bytes). An
 * IPv4-mapped IPv6 address becomes the IPv4 key; other IPv6 addresses are masked to
 * ipv6_prefix bits. Returns 0, or -EINVAL (family not 4/6, ipv6_prefix not 1..128); *k is
 * fully written either way (zeroed on error).
 */
int lg_ipkey_make(lg_ipkey_t *k, uint8_t listener, uint8_t family, const uint8_t *addr,
                  unsigned ipv6_prefix);

/*
 * Write a key's address as text with its NUL: IPv4 dotted quad; IPv6 in RFC 5952 form (lower
 * case, no leading zeros, the longest run of two or more zero groups as "::", the first on a
 * tie), with "/prefix" when the key aggregates (prefix < 128): "2001:db8::/64". The listener is
 * not written. Returns the length, -E2BIG if it does not fit (cap >= LG_IPKEY_TEXT_MAX always
 * fits) or -EINVAL for a malformed key; out is "" on error when cap > 0.
 */
int lg_ipkey_format(const lg_ipkey_t *k, char *out, size_t cap);

/*
 * Compute a bucket from its config numbers: `count` connections per `period_ms` (1000 for
 * rateLimit, 60000 for sustained), burst `burst`. Doubles are fine here: this runs when a
 * config snapshot is built, not per connection. T = round(period_ms * 10^6 / count) ns, at least
 * 1 (a rate above 10^9 per second is not limited); tau = round((burst - 1) * T).
 * Returns 0; -EINVAL for count not finite and > 0, burst not finite and >= 1, or period 0;
 * -ERANGE when burst * T exceeds LG_LIMIT_WINDOW_MAX_NS (about 146 years to refill). *b is off
 * on error.
 */
int lg_limit_bucket_init(lg_limit_bucket_t *b, double count, uint32_t period_ms, double burst);

/*
 * A bucket shared by threads without a table (a route's maxConnectionsPerSecond): take a token
 * from the bucket whose TAT is *tat, under b, at now_ms. Lock-free (a compare-and-swap loop).
 * True when there was a token (an off bucket always has one).
 */
bool lg_limit_bucket_take_shared(_Atomic uint64_t *tat, const lg_limit_bucket_t *b,
                                 uint64_t now_ms);

/*
 * Initialise an empty table for at most max_tracked keys (1..LG_LIMIT_MAX_TRACKED). Allocates
 * only the shard array; entries come as keys arrive. Returns 0, -EINVAL, -ENOMEM, or a
 * pthread_mutex_init error (negated). On error nothing is left to destroy.
 */
int lg_limit_init(lg_limit_t *t, size_t max_tracked);

/*
 * Set the 16-byte SipHash key; call right after lg_limit_init, before any other use, with
 * bytes from a CSPRNG (uv_random / RAND_bytes). Until then the key is all zero, which is fine
 * for tests and unsafe against hash flooding.
 */
void lg_limit_seed(lg_limit_t *t, const uint8_t key[16]);

/* The table's keyed hash (SipHash-1-3 under the seed) of a key, for other per-source sketches
 * that must not be aimed at (the connect listeners' head slots per source). Thread-safe. */
uint64_t lg_limit_key_hash(const lg_limit_t *t, const lg_ipkey_t *k);

/*
 * Decide on a new connection from key k under rules r at now_ms (a monotonic clock in ms,
 * below 2^63 ns). Returns LG_LIMIT_OK (ticket->tracked says whether it was counted),
 * LG_LIMIT_BOXED, LG_LIMIT_RATE or LG_LIMIT_CONCURRENCY (ticket->tracked false), or -EINVAL for a
 * malformed key. Thread-safe; no allocation except amortised growth (with the lock released).
 */
int lg_limit_admit(lg_limit_t *t, const lg_ipkey_t *k, const lg_limit_rules_t *r, uint64_t now_ms,
                   lg_limit_ticket_t *ticket);

/*
 * The connection admitted with this ticket is gone: undo exactly what lg_limit_admit counted
 * (nothing when !ticket->tracked). An entry with active connections is never evicted or swept,
 * so it is always found; active never goes below 0. Thread-safe.
 */
void lg_limit_release(lg_limit_t *t, const lg_ipkey_t *k, const lg_limit_ticket_t *ticket);

/*
 * Remove idle entries (see the file header) from the shards in turn, examining at most `budget`
 * entries (so removing at most that many) and each entry at most once per call, holding a
 * shard's lock for at most LG_LIMIT_SWEEP_BATCH of them at a time. For a timer in the shell
 * (symphony sweeps every 60 s); successive calls continue where the last one stopped. Returns
 * how many were removed.
 */
size_t lg_limit_sweep(lg_limit_t *t, uint64_t now_ms, size_t budget);

/*
 * The keys in state `which` (LG_LIMIT_LIST_*) at now_ms, projected without changing anything.
 * Writes up to cap keys to out and returns how many match in all (more than cap: the list was
 * cut). Keys carry their listener; the shell formats and deduplicates across listeners.
 * Returns 0 for an unknown `which`. Locks each shard in turn: for the JS thread, not a worker.
 */
size_t lg_limit_list(lg_limit_t *t, uint64_t now_ms, int which, lg_ipkey_t *out, size_t cap);

/* Sum the shards' counters (each read under its shard's lock). */
void lg_limit_stats(lg_limit_t *t, lg_limit_stats_t *out);

/* Free everything; no call may be running. Safe on a table whose init failed or never ran if it
 * was zeroed. */
void lg_limit_destroy(lg_limit_t *t);

#endif /* LG_LIMIT_H */
