/*
 * lg_balancer.c — choosing an upstream for a new connection (pure core; see lg_balancer.h).
 *
 * Implements: smooth weighted round-robin as in nginx's ngx_http_upstream_round_robin.c
 * (ngx_http_upstream_get_peer); power of two choices (Mitzenmacher, "The Power of Two Choices
 * in Randomized Load Balancing", 2001); Maglev hashing (Eisenbud et al., "Maglev: A Fast and
 * Reliable Software Network Load Balancer", NSDI 2016, §3.4) with weighted filling; xorshift64
 * (Marsaglia 2003); the splitmix64 finaliser (Steele et al. 2014) as the hash mixer.
 *
 * Invariants:
 *   - A built balancer has 1 <= n <= LG_BALANCER_MAX and every weight in 1..WEIGHT_MAX.
 *   - A HASH table has table_size slots (a prime, so every skip in 1..size-1 walks all slots),
 *     every slot holds an index < n, and every upstream owns at least one slot (table_size > n
 *     and the first fill round gives each upstream a slot).
 *   - A pick never returns a tried index; it returns an ejected index only in fail-open (flagged)
 *     or as the probe that won the compare-and-swap on ejected_until_ms (flagged).
 *   - A pick retries at most n times (each lost probe excludes one more upstream), so its work
 *     is bounded by O(n) policy passes in the worst case and one pass in the common case.
 */
#include "lg_balancer.h"

#include <string.h>

#define RELAXED memory_order_relaxed

#define MAGLEV_EMPTY       0xffffu               /* an unfilled slot (n <= 1024 < 0xffff) */
#define MAGLEV_SEED_OFFSET 0x6d61676c65762d6fULL /* "maglev-o": offset hash of a key */
#define MAGLEV_SEED_SKIP   0x6d61676c65762d73ULL /* "maglev-s": skip hash of a key */
#define CLIENT_HASH_SEED   0x636c69656e742d68ULL /* "client-h": slot hash of a client */
#define RNG_FALLBACK_STATE 0x9e3779b97f4a7c15ULL /* xorshift64 must not start at 0 */

/* The splitmix64 finaliser: a bijective mixer with full avalanche. */
static uint64_t mix64(uint64_t x)
{
    x ^= x >> 30;
    x *= 0xbf58476d1ce4e5b9ULL;
    x ^= x >> 27;
    x *= 0x94d049bb133111ebULL;
    x ^= x >> 31;
    return x;
}

static uint64_t xorshift64(uint64_t *s)
{
    uint64_t x = *s;
    x ^= x << 13;
    x ^= x >> 7;
    x ^= x << 17;
    *s = x;
    return x;
}

/* A random number in [0, n), n >= 1 (Lemire's multiply-shift; bias below 2^-32, irrelevant). */
static uint32_t rand_below(uint64_t *s, uint32_t n)
{
    return (uint32_t)(((xorshift64(s) >> 32) * (uint64_t)n) >> 32);
}

/* ---- upstream state and health ---- */

void lg_upstate_init(lg_upstate_t *s, uint64_t gen)
{
    atomic_init(&s->active, 0);
    atomic_init(&s->cpu_permille, 0);
    atomic_init(&s->consecutive_fails, 0);
    atomic_init(&s->ejected_until_ms, 0);
    atomic_init(&s->eject_ms, 0);
    atomic_init(&s->probing, false);
    s->gen = gen;
    atomic_init(&s->picks, 0);
    atomic_init(&s->dial_fails, 0);
    atomic_init(&s->ejections, 0);
    atomic_init(&s->probes, 0);
    atomic_init(&s->fail_opens, 0);
}

void lg_upstate_acquire(lg_upstate_t *s)
{
    atomic_fetch_add_explicit(&s->active, 1, RELAXED);
    atomic_fetch_add_explicit(&s->picks, 1, RELAXED);
}

void lg_upstate_release(lg_upstate_t *s)
{
    unsigned v = atomic_load_explicit(&s->active, RELAXED);
    while (v > 0 && !atomic_compare_exchange_weak_explicit(&s->active, &v, v - 1, RELAXED, RELAXED))
        ;
}

void lg_health_rules_init(lg_health_rules_t *r)
{
    r->max_fails = LG_HEALTH_MAX_FAILS_DEFAULT;
    r->fail_timeout_ms = LG_HEALTH_FAIL_TIMEOUT_DEFAULT_MS;
}

static uint64_t fail_timeout(const lg_health_rules_t *r)
{
    uint64_t t = r->fail_timeout_ms;
    if (t == 0) return 1;
    return t > LG_HEALTH_FAIL_TIMEOUT_MAX_MS ? LG_HEALTH_FAIL_TIMEOUT_MAX_MS : t;
}

/* Move ejected_until_ms from `from` to now + timeout; count the ejection if this thread did it. */
static void eject(lg_upstate_t *s, uint64_t from, uint64_t now_ms, uint64_t timeout)
{
    atomic_store_explicit(&s->eject_ms, timeout, RELAXED);
    uint_fast64_t expected = from;
    if (atomic_compare_exchange_strong_explicit(&s->ejected_until_ms, &expected, now_ms + timeout,
                                                RELAXED, RELAXED)) {
        atomic_fetch_add_explicit(&s->ejections, 1, RELAXED);
    }
}

void lg_upstate_report(lg_upstate_t *s, bool ok, const lg_health_rules_t *r, uint64_t now_ms)
{
    if (ok) {
        /* Any success proves the upstream works: trust it again, whoever dialled it. */
        atomic_store_explicit(&s->consecutive_fails, 0, RELAXED);
        if (atomic_load_explicit(&s->ejected_until_ms, RELAXED) != 0) {
            atomic_store_explicit(&s->ejected_until_ms, 0, RELAXED);
        }
        atomic_store_explicit(&s->probing, false, RELAXED);
        return;
    }
    atomic_fetch_add_explicit(&s->dial_fails, 1, RELAXED);
    unsigned fails = atomic_fetch_add_explicit(&s->consecutive_fails, 1, RELAXED) + 1;
    if (r->max_fails == 0) return;
    uint64_t until = atomic_load_explicit(&s->ejected_until_ms, RELAXED);
    bool was_probing = atomic_exchange_explicit(&s->probing, false, RELAXED);
    if (until != 0) {
        /*
         * Ejected. A failed probe, or a dial made once the ejection had expired, means the
         * upstream is still down: eject it again. Dials made before the ejection and failing
         * during it say nothing new, and must not push the ejection further out.
         */
        if (was_probing || now_ms >= until) eject(s, until, now_ms, fail_timeout(r));
        return;
    }
    if (fails >= r->max_fails) eject(s, 0, now_ms, fail_timeout(r));
}

void lg_upstate_unprobe(lg_upstate_t *s, uint64_t lease_until, uint64_t now_ms)
{
    /* Only this probe's own lease: a report, a new ejection or another connection's probe that
     * moved the deadline since keeps its value. The lease is first held at UINT64_MAX (ejected
     * to everyone) while the flag is cleared, so that a probe claimed in between cannot lose
     * its flag; then it ends now (never 0, which would mean trusted), unless a report came. */
    uint_fast64_t expected = lease_until;
    if (lease_until == 0 || !atomic_compare_exchange_strong_explicit(
                                &s->ejected_until_ms, &expected, UINT64_MAX, RELAXED, RELAXED)) {
        return;
    }
    atomic_store_explicit(&s->probing, false, RELAXED);
    expected = UINT64_MAX;
    atomic_compare_exchange_strong_explicit(&s->ejected_until_ms, &expected,
                                            now_ms > 0 ? now_ms : 1, RELAXED, RELAXED);
}

enum { UP_TRUSTED, UP_HALF_OPEN, UP_EJECTED };

static int up_state(uint64_t until, uint64_t now_ms)
{
    if (until == 0) return UP_TRUSTED;
    return now_ms < until ? UP_EJECTED : UP_HALF_OPEN;
}

bool lg_upstate_ejected(const lg_upstate_t *s, uint64_t now_ms)
{
    return up_state(atomic_load_explicit(&s->ejected_until_ms, RELAXED), now_ms) == UP_EJECTED;
}

/*
 * Take the half-open upstream s as this connection's probe: move ejected_until_ms from the
 * expired value we saw to now + the ejection length. Exactly one caller wins per expiry; the
 * others see a future deadline and treat s as ejected; returns the lease's end (0: lost). If the
 * probe never reports, the lease
 * expires and another connection may probe.
 */
static uint64_t claim_probe(lg_upstate_t *s, uint64_t seen_until, uint64_t now_ms,
                            uint64_t min_lease)
{
    uint64_t lease = atomic_load_explicit(&s->eject_ms, RELAXED);
    if (lease == 0) lease = LG_HEALTH_FAIL_TIMEOUT_DEFAULT_MS;
    if (lease < min_lease) lease = min_lease;
    uint_fast64_t expected = seen_until;
    if (!atomic_compare_exchange_strong_explicit(&s->ejected_until_ms, &expected, now_ms + lease,
                                                 RELAXED, RELAXED)) {
        return 0;
    }
    atomic_store_explicit(&s->probing, true, RELAXED);
    atomic_fetch_add_explicit(&s->probes, 1, RELAXED);
    return now_ms + lease;
}

/* ---- candidates ---- */

/* Which upstreams one policy pass may choose. */
typedef struct filter_s {
    const uint64_t *tried; /* the connection's tried set, or NULL */
    const uint64_t *lost;  /* upstreams whose probe another connection took, or NULL */
    uint64_t now_ms;
    bool any_health; /* fail-open pass: ejected upstreams are candidates too */
} filter_t;

static bool in_set(const uint64_t *set, size_t i)
{
    return set != NULL && (set[i / 64] >> (i % 64) & 1) != 0;
}

static bool usable(const filter_t *f, lg_upstate_t *const *st, size_t i)
{
    if (in_set(f->tried, i) || in_set(f->lost, i)) return false;
    if (f->any_health) return true;
    uint64_t until = atomic_load_explicit(&st[i]->ejected_until_ms, RELAXED);
    return up_state(until, f->now_ms) != UP_EJECTED;
}

/* leastConn score: active x 1000 + cpu permille, below 2^42. */
static uint64_t score(const lg_upstate_t *s)
{
    uint64_t active = atomic_load_explicit(&s->active, RELAXED);
    uint64_t cpu = atomic_load_explicit(&s->cpu_permille, RELAXED);
    if (cpu > LG_BALANCER_CPU_MAX) cpu = LG_BALANCER_CPU_MAX;
    return active * LG_BALANCER_SCORE_ACTIVE + cpu;
}

/* score_a / w_a < score_b / w_b, by cross-multiplication (each product below 2^58). */
static bool better(uint64_t score_a, uint32_t w_a, uint64_t score_b, uint32_t w_b)
{
    return score_a * w_b < score_b * w_a;
}

/* ---- policies: each returns a usable index or -1 ---- */

static int pick_leastconn(const lg_balancer_t *b, lg_upstate_t *const *st, lg_pick_t *cur,
                          const filter_t *f)
{
    uint32_t n = b->n;
    uint32_t i = cur->rot < n ? cur->rot : 0;
    int best = -1;
    uint64_t best_score = 0;
    uint32_t best_w = 1;
    for (uint32_t k = 0; k < n; k++) {
        if (usable(f, st, i)) {
            uint64_t s = score(st[i]);
            uint32_t w = b->weights[i];
            /* Strictly better only: among equals the first after the previous pick wins. */
            if (best < 0 || better(s, w, best_score, best_w)) {
                best = (int)i;
                best_score = s;
                best_w = w;
            }
        }
        i = i + 1 == n ? 0 : i + 1;
    }
    if (best < 0) return -1;
    if (b->weighted && cur->cw != NULL && cur->n == n) {
        /* Weighted: the upstreams tied for the best score share by smooth weighted round-robin
         * (nginx's least_conn), so idle upstreams still get their weights' shares. */
        int32_t total = 0;
        int win = -1;
        for (uint32_t j = 0; j < n; j++) {
            if (!usable(f, st, j) || score(st[j]) * best_w != best_score * b->weights[j]) continue;
            cur->cw[j] += (int32_t)b->weights[j];
            total += (int32_t)b->weights[j];
            if (win < 0 || cur->cw[j] > cur->cw[win]) win = (int)j;
        }
        if (win >= 0) {
            cur->cw[win] -= total;
            best = win;
        }
    }
    cur->rot = (uint32_t)best + 1 == n ? 0 : (uint32_t)best + 1;
    return best;
}

/* A cursor that does not fit the balancer: rotate through usable upstreams, never crash. */
static int pick_rotate(const lg_balancer_t *b, lg_upstate_t *const *st, lg_pick_t *cur,
                       const filter_t *f)
{
    uint32_t n = b->n;
    uint32_t i = cur->rot < n ? cur->rot : 0;
    for (uint32_t k = 0; k < n; k++) {
        if (usable(f, st, i)) {
            cur->rot = i + 1 == n ? 0 : i + 1;
            return (int)i;
        }
        i = i + 1 == n ? 0 : i + 1;
    }
    return -1;
}

/*
 * nginx's smooth weighted round-robin: every candidate's current weight grows by its weight, the
 * largest (first in list order on ties, as nginx) is chosen and loses the total. Upstreams that
 * are not candidates neither gain nor count in the total, as nginx skips down peers.
 */
static int pick_roundrobin(const lg_balancer_t *b, lg_upstate_t *const *st, lg_pick_t *cur,
                           const filter_t *f)
{
    if (b->n == 1) return usable(f, st, 0) ? 0 : -1;
    if (cur->cw == NULL || cur->n != b->n) return pick_rotate(b, st, cur, f);
    int32_t *cw = cur->cw;
    int32_t total = 0;
    int best = -1;
    for (uint32_t i = 0; i < b->n; i++) {
        if (!usable(f, st, i)) continue;
        cw[i] += (int32_t)b->weights[i];
        total += (int32_t)b->weights[i];
        if (best < 0 || cw[i] > cw[best]) best = (int)i;
    }
    if (best >= 0) cw[best] -= total;
    return best;
}

/* The better of two candidates by weighted leastConn score; a on ties. */
static int choose2(const lg_balancer_t *b, lg_upstate_t *const *st, uint32_t a, uint32_t c)
{
    return better(score(st[c]), b->weights[c], score(st[a]), b->weights[a]) ? (int)c : (int)a;
}

static int pick_random2(const lg_balancer_t *b, lg_upstate_t *const *st, lg_pick_t *cur,
                        const filter_t *f)
{
    uint32_t n = b->n;
    if (n == 1) return usable(f, st, 0) ? 0 : -1;
    /* Fast path: two distinct uniform draws, both usable. */
    uint32_t a = rand_below(&cur->rng, n);
    uint32_t c = rand_below(&cur->rng, n - 1);
    if (c >= a) c++;
    if (usable(f, st, a) && usable(f, st, c)) return choose2(b, st, a, c);
    /* Some are excluded: draw two distinct ones uniformly among the usable. */
    uint16_t cand[LG_BALANCER_MAX];
    uint32_t m = 0;
    for (uint32_t i = 0; i < n; i++) {
        if (usable(f, st, i)) cand[m++] = (uint16_t)i;
    }
    if (m == 0) return -1;
    if (m == 1) return cand[0];
    a = rand_below(&cur->rng, m);
    c = rand_below(&cur->rng, m - 1);
    if (c >= a) c++;
    return choose2(b, st, cand[a], cand[c]);
}

/*
 * Maglev lookup: the client's slot, then the following slots while their upstream is excluded.
 * Neighbouring slots belong to upstreams drawn in proportion to weight, so the clients of an
 * excluded upstream spread over the others; the walk is deterministic, so a client fails over
 * to the same upstream every time. A walk longer than LG_BALANCER_HASH_WALK_MAX slots (almost
 * everything excluded) finishes with a scan from the client's position in the list.
 */
static int pick_hash(const lg_balancer_t *b, lg_upstate_t *const *st, uint64_t client_hash,
                     const filter_t *f)
{
    uint64_t h = mix64(client_hash ^ CLIENT_HASH_SEED);
    uint32_t m = b->table_size;
    uint32_t slot = (uint32_t)(h % m);
    uint32_t walk = m < LG_BALANCER_HASH_WALK_MAX ? m : LG_BALANCER_HASH_WALK_MAX;
    for (uint32_t k = 0; k < walk; k++) {
        uint32_t i = b->table[slot];
        if (usable(f, st, i)) return (int)i;
        slot = slot + 1 == m ? 0 : slot + 1;
    }
    uint32_t n = b->n;
    uint32_t i = (uint32_t)(h % n);
    for (uint32_t k = 0; k < n; k++) {
        if (usable(f, st, i)) return (int)i;
        i = i + 1 == n ? 0 : i + 1;
    }
    return -1;
}

static int pick_policy(const lg_balancer_t *b, lg_upstate_t *const *st, lg_pick_t *cur,
                       uint64_t client_hash, const filter_t *f)
{
    switch (b->policy) {
    case LG_BALANCE_ROUNDROBIN:
        return pick_roundrobin(b, st, cur, f);
    case LG_BALANCE_RANDOM2:
        return pick_random2(b, st, cur, f);
    case LG_BALANCE_HASH:
        return pick_hash(b, st, client_hash, f);
    default:
        return pick_leastconn(b, st, cur, f);
    }
}

int lg_balancer_pick(const lg_balancer_t *b, lg_upstate_t *const *st, lg_pick_t *cur,
                     const lg_pick_in_t *in, lg_pick_out_t *out, uint64_t now_ms)
{
    lg_pick_out_t ignored;
    if (out == NULL) out = &ignored;
    out->fail_open = false;
    out->probe = false;
    out->probe_until = 0;
    if (b->n == 0) return -1; /* not built */
    uint64_t client_hash = in ? in->client_hash : 0;
    filter_t f = {.tried = in ? in->tried : NULL, .lost = NULL, .now_ms = now_ms};
    uint64_t lost[LG_PICK_SET_WORDS]; /* zeroed only when a probe is lost (rare) */

    /* Trusted and half-open upstreams first. */
    for (;;) {
        int i = pick_policy(b, st, cur, client_hash, &f);
        if (i < 0) break;
        uint64_t until = atomic_load_explicit(&st[i]->ejected_until_ms, RELAXED);
        int state = up_state(until, now_ms);
        if (state == UP_TRUSTED) {
            lg_upstate_acquire(st[i]);
            return i;
        }
        if (state == UP_HALF_OPEN &&
            (out->probe_until =
                 claim_probe(st[i], until, now_ms, in != NULL ? in->probe_lease_ms : 0)) != 0) {
            out->probe = true;
            lg_upstate_acquire(st[i]);
            return i;
        }
        /* Another connection is probing it (or it was just ejected): not for us this time. */
        if (f.lost == NULL) {
            memset(lost, 0, sizeof(lost));
            f.lost = lost;
        }
        lost[i / 64] |= (uint64_t)1 << (i % 64);
    }

    /* Every untried upstream is ejected: fail open rather than refuse the client. */
    f.lost = NULL;
    f.any_health = true;
    int i = pick_policy(b, st, cur, client_hash, &f);
    if (i < 0) return -1; /* all tried */
    out->fail_open = true;
    atomic_fetch_add_explicit(&st[i]->fail_opens, 1, RELAXED);
    lg_upstate_acquire(st[i]);
    return i;
}

/* ---- build ---- */

/* Per-upstream state while filling a Maglev table. */
typedef struct maglev_fill_s {
    uint32_t pos;   /* next slot in this upstream's permutation */
    uint32_t skip;  /* 1..m-1: permutation step */
    uint32_t quota; /* slots still owed in the current phase */
} maglev_fill_t;

/*
 * Fill b->table (Maglev §3.4): upstream i prefers slots offset_i, offset_i + skip_i, ... (mod m,
 * a full permutation since m is prime) and takes its next free preference in turn. Weighted
 * filling: upstream i is owed max(1, m x w_i / W) slots and the upstreams take turns, one slot
 * per turn, among those still owed; the few slots the rounding leaves are then dealt one per
 * upstream in list order. Each turn costs O(1) amortised plus the probing of taken slots (about
 * m log m over the fill); the whole fill is O(m log m), independent of the weights' spread.
 */
static int maglev_build(lg_balancer_t *b, const uint64_t *keys)
{
    uint32_t n = b->n;
    uint32_t m =
        n <= LG_BALANCER_MAGLEV_SMALL_N ? LG_BALANCER_MAGLEV_SMALL : LG_BALANCER_MAGLEV_LARGE;
    uint16_t *table = lg_malloc((size_t)m * sizeof(*table));
    maglev_fill_t *fill = lg_malloc((size_t)n * sizeof(*fill));
    uint16_t *turn = lg_malloc((size_t)n * sizeof(*turn));
    if (table == NULL || fill == NULL || turn == NULL) {
        lg_free(table);
        lg_free(fill);
        lg_free(turn);
        return -ENOMEM;
    }
    uint64_t wsum = 0;
    for (uint32_t i = 0; i < n; i++)
        wsum += b->weights[i];
    for (uint32_t i = 0; i < n; i++) {
        uint64_t key = keys ? keys[i] : i;
        fill[i].pos = (uint32_t)(mix64(key ^ MAGLEV_SEED_OFFSET) % m);
        fill[i].skip = (uint32_t)(mix64(key ^ MAGLEV_SEED_SKIP) % (m - 1)) + 1;
        uint64_t q = (uint64_t)m * b->weights[i] / wsum;
        fill[i].quota = q == 0 ? 1 : (uint32_t)q;
    }
    for (uint32_t s = 0; s < m; s++)
        table[s] = MAGLEV_EMPTY;

    uint32_t filled = 0;
    while (filled < m) {
        uint32_t nturn = 0;
        for (uint32_t i = 0; i < n; i++) {
            if (fill[i].quota > 0) turn[nturn++] = (uint16_t)i;
        }
        if (nturn == 0) { /* quotas met: deal the remainder, one slot each in list order */
            for (uint32_t i = 0; i < n; i++) {
                fill[i].quota = 1;
                turn[nturn++] = (uint16_t)i;
            }
        }
        while (nturn > 0 && filled < m) {
            uint32_t keep = 0;
            for (uint32_t t = 0; t < nturn && filled < m; t++) {
                maglev_fill_t *u = &fill[turn[t]];
                while (table[u->pos] != MAGLEV_EMPTY) {
                    u->pos += u->skip;
                    if (u->pos >= m) u->pos -= m;
                }
                table[u->pos] = turn[t];
                filled++;
                u->pos += u->skip;
                if (u->pos >= m) u->pos -= m;
                if (--u->quota > 0) turn[keep++] = turn[t];
            }
            nturn = keep;
        }
    }
    lg_free(fill);
    lg_free(turn);
    b->table = table;
    b->table_size = m;
    return 0;
}

int lg_balancer_build(lg_balancer_t *b, int policy, const uint32_t *weights, const uint64_t *keys,
                      size_t n)
{
    memset(b, 0, sizeof(*b));
    if (n == 0 || n > LG_BALANCER_MAX) return -EINVAL;
    if (policy < LG_BALANCE_LEASTCONN || policy > LG_BALANCE_HASH) return -EINVAL;
    for (size_t i = 0; weights != NULL && i < n; i++) {
        if (weights[i] < 1 || weights[i] > LG_BALANCER_WEIGHT_MAX) return -EINVAL;
    }
    b->weights = lg_malloc(n * sizeof(*b->weights));
    if (b->weights == NULL) return -ENOMEM;
    for (size_t i = 0; i < n; i++) {
        b->weights[i] = weights ? weights[i] : 1;
        if (b->weights[i] != 1) b->weighted = true;
    }
    b->policy = policy;
    b->n = (uint32_t)n;
    if (policy == LG_BALANCE_HASH) {
        int rc = maglev_build(b, keys);
        if (rc != 0) {
            lg_balancer_free(b);
            return rc;
        }
    }
    return 0;
}

void lg_balancer_free(lg_balancer_t *b)
{
    lg_free(b->weights);
    lg_free(b->table);
    memset(b, 0, sizeof(*b));
}

int lg_pick_init(lg_pick_t *c, const lg_balancer_t *b, uint64_t seed)
{
    memset(c, 0, sizeof(*c));
    c->rng = mix64(seed);
    if (c->rng == 0) c->rng = RNG_FALLBACK_STATE;
    c->rot = b->n > 0 ? (uint32_t)(mix64(seed + 1) % b->n) : 0;
    if ((b->policy == LG_BALANCE_ROUNDROBIN ||
         (b->policy == LG_BALANCE_LEASTCONN && b->weighted)) &&
        b->n > 1) {
        c->cw = lg_calloc(b->n, sizeof(*c->cw));
        if (c->cw == NULL) return -ENOMEM;
        c->n = b->n;
        /* A fresh cursor (every suspended connection's decision, every route after a swap)
         * used to open on the first heaviest upstream: one pick per decision went there every
         * time. Open on a weighted-random one instead: it wins the first pick, and the smooth
         * round-robin's shares hold from there. */
        uint64_t total = 0;
        for (uint32_t i = 0; i < b->n; i++)
            total += b->weights[i];
        uint64_t r = ((xorshift64(&c->rng) >> 32) * total) >> 32;
        uint32_t j = 0;
        while (j + 1 < b->n && r >= b->weights[j])
            r -= b->weights[j++];
        c->cw[j] = (int32_t)(total - b->weights[j]);
    }
    return 0;
}

void lg_pick_free(lg_pick_t *c)
{
    lg_free(c->cw);
    memset(c, 0, sizeof(*c));
}

/* ---- client keys ---- */

static const uint8_t v4_mapped_prefix[12] = {0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0xff, 0xff};

int lg_clientkey_make(lg_clientkey_t *k, uint8_t family, const uint8_t addr[16])
{
    memset(k, 0, sizeof(*k));
    if (family == 4) {
        k->b[0] = 4;
        memcpy(&k->b[1], addr, 4);
        return 0;
    }
    if (family == 6) {
        if (memcmp(addr, v4_mapped_prefix, sizeof(v4_mapped_prefix)) == 0) {
            k->b[0] = 4;
            memcpy(&k->b[1], addr + 12, 4);
        } else {
            k->b[0] = 6;
            memcpy(&k->b[1], addr, 16);
        }
        return 0;
    }
    return -EINVAL;
}

uint64_t lg_clientkey_hash(const lg_clientkey_t *k)
{
    /* FNV-1a over the key, then the mixer (FNV alone leaves the high bits weak). */
    uint64_t h = 0xcbf29ce484222325ULL;
    for (size_t i = 0; i < LG_CLIENTKEY_LEN; i++) {
        h ^= k->b[i];
        h *= 0x100000001b3ULL;
    }
    return mix64(h);
}

/* ---- CPU sampling ---- */

/* A run of 1..LG_CPU_STAT_FIELD_MAX digits at *p (< end) as a uint64; advances *p past it. */
static int parse_u64(const char **p, const char *end, uint64_t *out)
{
    const char *s = *p;
    uint64_t v = 0;
    size_t digits = 0;
    while (s < end && *s >= '0' && *s <= '9') {
        uint64_t d = (uint64_t)(*s - '0');
        if (v > (UINT64_MAX - d) / 10) return -EINVAL;
        v = v * 10 + d;
        s++;
        digits++;
    }
    if (digits == 0 || digits > LG_CPU_STAT_FIELD_MAX) return -EINVAL;
    *p = s;
    *out = v;
    return 0;
}

/* Fields after the last ')': state is field 3, so utime (14) is the 12th and stime the 13th. */
#define STAT_FIELDS_BEFORE_UTIME 11

int lg_cpu_parse_stat(const char *buf, size_t len, uint64_t *ticks)
{
    const char *end = buf + len;
    const char *p = buf;
    /* "pid (" */
    size_t pid_digits = 0;
    while (p < end && *p >= '0' && *p <= '9') {
        p++;
        pid_digits++;
    }
    if (pid_digits == 0 || (size_t)(end - p) < 2 || p[0] != ' ' || p[1] != '(') return -EINVAL;
    const char *open = p + 1;
    const char *close = NULL;
    for (const char *q = end; q > open + 1;) {
        if (*--q == ')') {
            close = q;
            break;
        }
    }
    if (close == NULL) return -EINVAL;
    p = close + 1;
    /* ") state f4 ... f13 " : eleven fields, each preceded by exactly one space. */
    for (int field = 0; field < STAT_FIELDS_BEFORE_UTIME; field++) {
        if (p == end || *p != ' ') return -EINVAL;
        p++;
        const char *start = p;
        while (p < end && *p != ' ' && *p != '\n' && *p != '\0')
            p++;
        if (p == start) return -EINVAL;
    }
    uint64_t utime, stime;
    if (p == end || *p++ != ' ' || parse_u64(&p, end, &utime) != 0) return -EINVAL;
    if (p == end || *p++ != ' ' || parse_u64(&p, end, &stime) != 0) return -EINVAL;
    if (p != end && *p != ' ' && *p != '\n') return -EINVAL;
    if (utime > UINT64_MAX - stime) return -EINVAL;
    *ticks = utime + stime;
    return 0;
}

unsigned lg_cpu_permille(uint64_t ticks_delta, uint64_t ms_delta, long clk_tck)
{
    if (ms_delta == 0 || ms_delta > LG_CPU_MS_DELTA_MAX) return 0;
    if (clk_tck < 1 || clk_tck > LG_CPU_CLK_TCK_MAX) return 0;
    /*
     * permille = (ticks / clk_tck) s / (ms / 1000) s x 1000 = ticks x 10^6 / (clk_tck x ms).
     * clk_tck x ms <= 10^6 x 8.64 x 10^7 < 2^47. At or above the ceiling, i.e. ticks x 1000 >=
     * clk_tck x ms, answer 1000 without multiplying; below it ticks < 2^47 / 1000 + 1, so
     * ticks x 10^6 < 2^57: no overflow.
     */
    uint64_t denom = (uint64_t)clk_tck * ms_delta;
    if (ticks_delta >= (denom + 999) / 1000) return LG_BALANCER_CPU_MAX;
    return (unsigned)(ticks_delta * 1000000u / denom);
}
