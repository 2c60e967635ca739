/*
 * test_balancer.c — unit tests of upstream choice (src/lg_balancer.c) and client IP affinity
 * (src/lg_affinity.c).
 *
 * Distributions are measured by simulation: each pick opens a connection that lives for a
 * pseudo-random number of later picks and then releases its active reference, so leastConn and
 * random2 see realistic active counts. Exact sequences (nginx's smooth round-robin) and the
 * Maglev table's shares are compared with hand-computed values. Threads race on the half-open
 * probe and on the affinity table. The CPU stat parser is checked on good/bad tables of
 * real-looking lines; fuzz/fuzz_cpustat.c compares it with a reference on arbitrary bytes.
 */
#include "../../src/lg_balancer.c"
#include "../../src/lg_affinity.c"

#include <pthread.h>
#include <sched.h>
#include <stdio.h>

#include "lg_test.h"

/* Upstates for every test: ups[i] has gen i + 1; st[i] = &ups[i]. */
static lg_upstate_t ups[LG_BALANCER_MAX];
static lg_upstate_t *st[LG_BALANCER_MAX];

static void ups_reset(size_t n)
{
    for (size_t i = 0; i < n; i++) {
        lg_upstate_init(&ups[i], i + 1);
        st[i] = &ups[i];
    }
}

static unsigned active_of(size_t i)
{
    return atomic_load(&ups[i].active);
}

static uint64_t test_rng(uint64_t *s)
{
    return xorshift64(s);
}

/*
 * Simulated traffic: `total` picks; each connection lives 1..max_life picks, then releases its
 * upstream. counts[i] is how often upstream i was chosen. Returns false if a pick failed.
 */
#define SIM_OPEN_MAX 8192
typedef struct sim_conn_s {
    int idx;
    int die_at;
} sim_conn_t;

static bool simulate(const lg_balancer_t *b, lg_pick_t *cur, int total, int max_life, uint64_t seed,
                     unsigned *counts)
{
    static sim_conn_t open[SIM_OPEN_MAX];
    int nopen = 0;
    uint64_t rng = seed ? seed : 1;
    for (int t = 0; t < total; t++) {
        for (int k = 0; k < nopen;) {
            if (open[k].die_at <= t) {
                lg_upstate_release(st[open[k].idx]);
                open[k] = open[--nopen];
            } else {
                k++;
            }
        }
        lg_pick_in_t in;
        lg_pick_in_init(&in, test_rng(&rng));
        int i = lg_balancer_pick(b, st, cur, &in, NULL, 1000);
        if (i < 0 || (uint32_t)i >= b->n || nopen == SIM_OPEN_MAX) return false;
        counts[i]++;
        open[nopen++] = (sim_conn_t){i, t + 1 + (int)(test_rng(&rng) % (uint64_t)max_life)};
    }
    while (nopen > 0)
        lg_upstate_release(st[open[--nopen].idx]);
    return true;
}

/* |count / total - want| <= tol, all as fractions. */
static bool share_near(unsigned count, unsigned total, double want, double tol)
{
    double got = (double)count / (double)total;
    return got >= want - tol && got <= want + tol;
}

/* Pick once and give the active reference straight back. */
static int pick_release(const lg_balancer_t *b, lg_pick_t *cur, const lg_pick_in_t *in,
                        lg_pick_out_t *out, uint64_t now)
{
    int i = lg_balancer_pick(b, st, cur, in, out, now);
    if (i >= 0) lg_upstate_release(st[i]);
    return i;
}

static const int policies[] = {LG_BALANCE_LEASTCONN, LG_BALANCE_ROUNDROBIN, LG_BALANCE_RANDOM2,
                               LG_BALANCE_HASH};
static const char *const policy_names[] = {"leastConn", "roundRobin", "random2", "hash"};

/* ---- build ---- */

LG_TEST(test_build_invalid)
{
    lg_balancer_t b;
    uint32_t w[2] = {1, 1};
    CHECK_EQ_INT(lg_balancer_build(&b, LG_BALANCE_LEASTCONN, w, NULL, 0), -EINVAL);
    CHECK(b.weights == NULL && b.n == 0);
    CHECK_EQ_INT(lg_balancer_build(&b, LG_BALANCE_LEASTCONN, NULL, NULL, LG_BALANCER_MAX + 1),
                 -EINVAL);
    CHECK_EQ_INT(lg_balancer_build(&b, -1, w, NULL, 2), -EINVAL);
    CHECK_EQ_INT(lg_balancer_build(&b, LG_BALANCE_HASH + 1, w, NULL, 2), -EINVAL);
    w[1] = 0; /* weight below 1 */
    CHECK_EQ_INT(lg_balancer_build(&b, LG_BALANCE_LEASTCONN, w, NULL, 2), -EINVAL);
    w[1] = LG_BALANCER_WEIGHT_MAX + 1;
    CHECK_EQ_INT(lg_balancer_build(&b, LG_BALANCE_ROUNDROBIN, w, NULL, 2), -EINVAL);
    CHECK(b.weights == NULL && b.table == NULL);
    w[1] = LG_BALANCER_WEIGHT_MAX; /* exactly the maximum */
    CHECK_EQ_INT(lg_balancer_build(&b, LG_BALANCE_HASH, w, NULL, 2), 0);
    CHECK_EQ_INT(b.n, 2);
    CHECK_EQ_INT(b.weights[1], LG_BALANCER_WEIGHT_MAX);
    lg_balancer_free(&b);
    CHECK(b.weights == NULL && b.table == NULL && b.n == 0);
    lg_balancer_free(&b); /* a zeroed balancer frees fine */
    /* NULL weights mean all 1; the maximum n is accepted. */
    CHECK_EQ_INT(lg_balancer_build(&b, LG_BALANCE_RANDOM2, NULL, NULL, LG_BALANCER_MAX), 0);
    CHECK_EQ_INT(b.weights[LG_BALANCER_MAX - 1], 1);
    lg_balancer_free(&b);
}

LG_TEST(test_build_alloc_failure)
{
    /* Every allocation of every build fails in turn: -ENOMEM, nothing kept (ASan: no leak). */
    uint32_t w[200];
    for (size_t i = 0; i < 200; i++)
        w[i] = (uint32_t)(i % 7 + 1);
    const size_t sizes[] = {3, 200}; /* small and large Maglev tables */
    for (size_t p = 0; p < LG_ARRAY_SIZE(policies); p++) {
        for (size_t z = 0; z < LG_ARRAY_SIZE(sizes); z++) {
            long k;
            for (k = 0; k < 16; k++) {
                lg_balancer_t b;
                lg_alloc_fail_after(k);
                int rc = lg_balancer_build(&b, policies[p], w, NULL, sizes[z]);
                lg_alloc_fail_after(-1);
                if (rc == 0) {
                    lg_balancer_free(&b);
                    break;
                }
                CHECK_ROW(rc == -ENOMEM, policy_names[p]);
                CHECK_ROW(b.weights == NULL && b.table == NULL && b.n == 0, policy_names[p]);
            }
            /* leastConn, roundRobin, random2: the weights; hash: weights, table, 2 scratch. */
            CHECK_ROW(k == (policies[p] == LG_BALANCE_HASH ? 4 : 1), policy_names[p]);
        }
    }
    /* A roundRobin cursor allocates its current weights. */
    lg_balancer_t b;
    lg_pick_t c;
    CHECK_EQ_INT(lg_balancer_build(&b, LG_BALANCE_ROUNDROBIN, NULL, NULL, 3), 0);
    lg_alloc_fail_after(0);
    CHECK_EQ_INT(lg_pick_init(&c, &b, 1), -ENOMEM);
    lg_alloc_fail_after(-1);
    CHECK(c.cw == NULL && c.n == 0);
    lg_pick_free(&c);
    CHECK_EQ_INT(lg_pick_init(&c, &b, 1), 0);
    CHECK(c.cw != NULL && c.n == 3);
    lg_pick_free(&c);
    lg_balancer_free(&b);
}

/* ---- leastConn ---- */

LG_TEST(test_leastconn_rotation_on_ties)
{
    /* Three idle upstreams: three consecutive picks hit three different upstreams, whatever the
     * seed's starting point, and never fall back to list order. */
    lg_balancer_t b;
    CHECK_EQ_INT(lg_balancer_build(&b, LG_BALANCE_LEASTCONN, NULL, NULL, 3), 0);
    for (uint64_t seed = 0; seed < 20; seed++) {
        ups_reset(3);
        lg_pick_t c;
        CHECK_EQ_INT(lg_pick_init(&c, &b, seed), 0);
        unsigned seen[3] = {0};
        for (int k = 0; k < 9; k++) {
            int i = pick_release(&b, &c, NULL, NULL, 0);
            CHECK(i >= 0 && i < 3);
            seen[i]++;
            if (k % 3 == 2) {
                CHECK(seen[0] == seen[1] && seen[1] == seen[2]); /* each once per three picks */
            }
        }
        lg_pick_free(&c);
    }
    /* Two tied out of three: the ties alternate instead of one of them taking them all. */
    ups_reset(3);
    atomic_store(&ups[0].active, 5);
    lg_pick_t c;
    CHECK_EQ_INT(lg_pick_init(&c, &b, 0), 0);
    unsigned seen[3] = {0};
    for (int k = 0; k < 10; k++)
        seen[pick_release(&b, &c, NULL, NULL, 0)]++;
    CHECK_EQ_INT(seen[0], 0);
    CHECK_EQ_INT(seen[1], 5);
    CHECK_EQ_INT(seen[2], 5);
    lg_pick_free(&c);
    lg_balancer_free(&b);
}

LG_TEST(test_leastconn_score)
{
    lg_balancer_t b;
    lg_pick_t c;
    CHECK_EQ_INT(lg_balancer_build(&b, LG_BALANCE_LEASTCONN, NULL, NULL, 3), 0);
    CHECK_EQ_INT(lg_pick_init(&c, &b, 7), 0);

    /* Equal active counts: the lowest CPU wins, from any rotation position. */
    ups_reset(3);
    atomic_store(&ups[0].cpu_permille, 500);
    atomic_store(&ups[1].cpu_permille, 100);
    atomic_store(&ups[2].cpu_permille, 300);
    for (int k = 0; k < 6; k++)
        CHECK_EQ_INT(pick_release(&b, &c, NULL, NULL, 0), 1);

    /* The score is literally active x 1000 + cpu: one connection outweighs 999 permille. */
    ups_reset(3);
    atomic_store(&ups[0].cpu_permille, 999);
    atomic_store(&ups[1].active, 1);
    atomic_store(&ups[2].active, 1);
    for (int k = 0; k < 6; k++)
        CHECK_EQ_INT(pick_release(&b, &c, NULL, NULL, 0), 0);

    /* CPU above 1000 counts as 1000: 0 x 1000 + 1000 < 1 x 1000 + 1. */
    ups_reset(3);
    atomic_store(&ups[0].cpu_permille, 5000);
    atomic_store(&ups[1].active, 1);
    atomic_store(&ups[1].cpu_permille, 1);
    atomic_store(&ups[2].active, 2);
    CHECK_EQ_INT(pick_release(&b, &c, NULL, NULL, 0), 0);

    /* Each pick takes an active reference, so unreleased picks spread by themselves. */
    ups_reset(3);
    for (int k = 0; k < 6; k++)
        CHECK(lg_balancer_pick(&b, st, &c, NULL, NULL, 0) >= 0);
    CHECK(active_of(0) == 2 && active_of(1) == 2 && active_of(2) == 2);
    CHECK_EQ_INT(atomic_load(&ups[0].picks), 2);
    for (int i = 0; i < 3; i++) {
        lg_upstate_release(&ups[i]);
        lg_upstate_release(&ups[i]);
        lg_upstate_release(&ups[i]); /* one too many: stays at 0, does not wrap */
        CHECK_EQ_INT(active_of(i), 0);
    }
    lg_pick_free(&c);
    lg_balancer_free(&b);

    /* Weighted: 2 connections on weight 3 (666 per unit) beat 1 on weight 1 (1000). */
    uint32_t w[2] = {1, 3};
    CHECK_EQ_INT(lg_balancer_build(&b, LG_BALANCE_LEASTCONN, w, NULL, 2), 0);
    CHECK_EQ_INT(lg_pick_init(&c, &b, 0), 0);
    ups_reset(2);
    atomic_store(&ups[0].active, 1);
    atomic_store(&ups[1].active, 2);
    CHECK_EQ_INT(pick_release(&b, &c, NULL, NULL, 0), 1);
    atomic_store(&ups[1].active, 4); /* 4000 / 3 = 1333 > 1000 */
    CHECK_EQ_INT(pick_release(&b, &c, NULL, NULL, 0), 0);
    lg_pick_free(&c);
    lg_balancer_free(&b);

    /* Extremes: the largest scores and weights compare without overflow. */
    uint32_t wmax[2] = {LG_BALANCER_WEIGHT_MAX, LG_BALANCER_WEIGHT_MAX};
    CHECK_EQ_INT(lg_balancer_build(&b, LG_BALANCE_LEASTCONN, wmax, NULL, 2), 0);
    CHECK_EQ_INT(lg_pick_init(&c, &b, 0), 0);
    ups_reset(2);
    atomic_store(&ups[0].active, UINT32_MAX - 1);
    atomic_store(&ups[0].cpu_permille, 1000);
    atomic_store(&ups[1].active, UINT32_MAX - 1);
    atomic_store(&ups[1].cpu_permille, 999);
    CHECK_EQ_INT(pick_release(&b, &c, NULL, NULL, 0), 1);
    lg_pick_free(&c);
    lg_balancer_free(&b);
}

LG_TEST(test_leastconn_distribution)
{
    lg_balancer_t b;
    lg_pick_t c;
    unsigned counts[3] = {0};

    /* Equal weights, connections living 1..40 picks: each within +-5 % of 1000. */
    CHECK_EQ_INT(lg_balancer_build(&b, LG_BALANCE_LEASTCONN, NULL, NULL, 3), 0);
    CHECK_EQ_INT(lg_pick_init(&c, &b, 11), 0);
    ups_reset(3);
    CHECK(simulate(&b, &c, 3000, 40, 5, counts));
    for (int i = 0; i < 3; i++)
        CHECK(counts[i] >= 950 && counts[i] <= 1050);
    for (int i = 0; i < 3; i++)
        CHECK_EQ_INT(active_of(i), 0);
    lg_pick_free(&c);
    lg_balancer_free(&b);

    /* Weights 1:2:3: shares of 1/6, 2/6, 3/6 within 2 points. */
    uint32_t w[3] = {1, 2, 3};
    CHECK_EQ_INT(lg_balancer_build(&b, LG_BALANCE_LEASTCONN, w, NULL, 3), 0);
    CHECK_EQ_INT(lg_pick_init(&c, &b, 12), 0);
    ups_reset(3);
    memset(counts, 0, sizeof(counts));
    CHECK(simulate(&b, &c, 3000, 60, 6, counts));
    for (int i = 0; i < 3; i++)
        CHECK(share_near(counts[i], 3000, (i + 1) / 6.0, 0.02));
    lg_pick_free(&c);
    lg_balancer_free(&b);
}

/* ---- roundRobin ---- */

/* A fresh cursor opens on a weighted-random upstream: the first picks of 3,000 fresh cursors
 * (one per suspended connection's decision) follow the weights, not all on the first. */
LG_TEST(test_roundrobin_fresh_cursors_spread)
{
    const uint32_t w3[2][3] = {{1, 1, 1}, {1, 2, 3}};
    for (int k = 0; k < 2; k++) {
        lg_balancer_t b;
        CHECK_EQ_INT(lg_balancer_build(&b, LG_BALANCE_ROUNDROBIN, w3[k], NULL, 3), 0);
        unsigned first[3] = {0};
        for (uint64_t seed = 1; seed <= 3000; seed++) {
            lg_pick_t c;
            CHECK_EQ_INT(lg_pick_init(&c, &b, seed), 0);
            ups_reset(3);
            first[pick_release(&b, &c, NULL, NULL, 0)]++;
            lg_pick_free(&c);
        }
        /* expected 1000 each, or 500 / 1000 / 1500; 5 sigma is about ±140 */
        unsigned total = w3[k][0] + w3[k][1] + w3[k][2];
        for (int i = 0; i < 3; i++) {
            unsigned want = 3000 * w3[k][i] / total;
            CHECK(first[i] + 150 > want && first[i] < want + 150);
        }
        lg_balancer_free(&b);
    }
}

LG_TEST(test_roundrobin_nginx_sequence)
{
    /* nginx's smooth weighted round-robin with weights {5, 1, 1}: a a b a c a a, repeated. */
    static const int seq[7] = {0, 0, 1, 0, 2, 0, 0};
    uint32_t w[3] = {5, 1, 1};
    lg_balancer_t b;
    lg_pick_t c;
    CHECK_EQ_INT(lg_balancer_build(&b, LG_BALANCE_ROUNDROBIN, w, NULL, 3), 0);
    CHECK_EQ_INT(lg_pick_init(&c, &b, 99), 0);
    memset(c.cw, 0, 3 * sizeof(*c.cw)); /* nginx's start (a fresh cursor opens at random) */
    ups_reset(3);
    unsigned counts[3] = {0};
    for (int k = 0; k < 3003; k++) {
        int i = pick_release(&b, &c, NULL, NULL, 0);
        CHECK_EQ_INT(i, seq[k % 7]);
        counts[i]++;
    }
    CHECK(counts[0] == 2145 && counts[1] == 429 && counts[2] == 429);
    lg_pick_free(&c);
    lg_balancer_free(&b);

    /* Equal weights: plain rotation in list order. */
    CHECK_EQ_INT(lg_balancer_build(&b, LG_BALANCE_ROUNDROBIN, NULL, NULL, 3), 0);
    CHECK_EQ_INT(lg_pick_init(&c, &b, 0), 0);
    memset(c.cw, 0, 3 * sizeof(*c.cw));
    for (int k = 0; k < 9; k++)
        CHECK_EQ_INT(pick_release(&b, &c, NULL, NULL, 0), k % 3);
    lg_pick_free(&c);
    lg_balancer_free(&b);

    /* Weights 1:2:3 over 3000 picks: exactly 500, 1000, 1500 (the sequence repeats every 6). */
    uint32_t w123[3] = {1, 2, 3};
    CHECK_EQ_INT(lg_balancer_build(&b, LG_BALANCE_ROUNDROBIN, w123, NULL, 3), 0);
    CHECK_EQ_INT(lg_pick_init(&c, &b, 0), 0);
    memset(counts, 0, sizeof(counts));
    CHECK(simulate(&b, &c, 3000, 30, 3, counts));
    CHECK(counts[0] == 500 && counts[1] == 1000 && counts[2] == 1500);
    lg_pick_free(&c);
    lg_balancer_free(&b);
}

LG_TEST(test_leastconn_weighted_idle)
{
    /* Weighted leastConn with idle upstreams (every connection ends before the next): the tie
     * is shared by smooth WRR, so weights 1:1:2 give exactly 1:1:2 over 4000 picks. */
    uint32_t w[3] = {1, 1, 2};
    lg_balancer_t b;
    lg_pick_t c;
    CHECK_EQ_INT(lg_balancer_build(&b, LG_BALANCE_LEASTCONN, w, NULL, 3), 0);
    CHECK(b.weighted);
    CHECK_EQ_INT(lg_pick_init(&c, &b, 5), 0);
    ups_reset(3);
    unsigned counts[3] = {0};
    for (int k = 0; k < 4000; k++)
        counts[pick_release(&b, &c, NULL, NULL, 0)]++;
    CHECK(counts[0] == 1000 && counts[1] == 1000 && counts[2] == 2000);
    lg_pick_free(&c);
    lg_balancer_free(&b);
    /* Equal weights: no WRR state, plain rotation. */
    CHECK_EQ_INT(lg_balancer_build(&b, LG_BALANCE_LEASTCONN, NULL, NULL, 3), 0);
    CHECK(!b.weighted);
    CHECK_EQ_INT(lg_pick_init(&c, &b, 5), 0);
    CHECK(c.cw == NULL);
    lg_pick_free(&c);
    lg_balancer_free(&b);
}

LG_TEST(test_roundrobin_skips_excluded)
{
    /* nginx skips unavailable peers: {5,1,1} with c ejected serves a and b as {5,1}. */
    uint32_t w[3] = {5, 1, 1};
    lg_balancer_t b;
    lg_pick_t c;
    CHECK_EQ_INT(lg_balancer_build(&b, LG_BALANCE_ROUNDROBIN, w, NULL, 3), 0);
    CHECK_EQ_INT(lg_pick_init(&c, &b, 0), 0);
    ups_reset(3);
    atomic_store(&ups[2].ejected_until_ms, 5000);
    unsigned counts[3] = {0};
    for (int k = 0; k < 600; k++)
        counts[pick_release(&b, &c, NULL, NULL, 1000)]++;
    CHECK(counts[0] == 500 && counts[1] == 100 && counts[2] == 0);
    lg_pick_free(&c);

    /* A cursor made for another balancer degrades to rotation (ASan: no out-of-bounds). */
    lg_balancer_t b5;
    CHECK_EQ_INT(lg_balancer_build(&b5, LG_BALANCE_ROUNDROBIN, NULL, NULL, 5), 0);
    CHECK_EQ_INT(lg_pick_init(&c, &b, 0), 0); /* 3 current weights */
    ups_reset(5);
    unsigned seen[5] = {0};
    for (int k = 0; k < 10; k++)
        seen[pick_release(&b5, &c, NULL, NULL, 0)]++;
    for (int i = 0; i < 5; i++)
        CHECK_EQ_INT(seen[i], 2);
    lg_pick_free(&c);
    lg_balancer_free(&b5);
    lg_balancer_free(&b);
}

/* ---- random2 ---- */

LG_TEST(test_random2_distribution)
{
    lg_balancer_t b;
    lg_pick_t c;
    unsigned counts[3] = {0};
    CHECK_EQ_INT(lg_balancer_build(&b, LG_BALANCE_RANDOM2, NULL, NULL, 3), 0);
    CHECK_EQ_INT(lg_pick_init(&c, &b, 21), 0);
    ups_reset(3);
    CHECK(simulate(&b, &c, 3000, 40, 7, counts));
    for (int i = 0; i < 3; i++)
        CHECK(counts[i] >= 950 && counts[i] <= 1050);
    lg_pick_free(&c);
    lg_balancer_free(&b);

    uint32_t w[3] = {1, 2, 3};
    CHECK_EQ_INT(lg_balancer_build(&b, LG_BALANCE_RANDOM2, w, NULL, 3), 0);
    CHECK_EQ_INT(lg_pick_init(&c, &b, 22), 0);
    ups_reset(3);
    memset(counts, 0, sizeof(counts));
    CHECK(simulate(&b, &c, 3000, 60, 8, counts));
    for (int i = 0; i < 3; i++)
        CHECK(share_near(counts[i], 3000, (i + 1) / 6.0, 0.03));
    lg_pick_free(&c);
    lg_balancer_free(&b);
}

LG_TEST(test_random2_two_choices)
{
    lg_balancer_t b;
    lg_pick_t c;
    /* n = 2: both are always the choices, so the less loaded always wins. */
    CHECK_EQ_INT(lg_balancer_build(&b, LG_BALANCE_RANDOM2, NULL, NULL, 2), 0);
    CHECK_EQ_INT(lg_pick_init(&c, &b, 3), 0);
    ups_reset(2);
    atomic_store(&ups[0].active, 3);
    for (int k = 0; k < 50; k++)
        CHECK_EQ_INT(pick_release(&b, &c, NULL, NULL, 0), 1);
    lg_pick_free(&c);
    lg_balancer_free(&b);

    /* With exclusions the two are drawn among the usable ones only, and both get picked. */
    CHECK_EQ_INT(lg_balancer_build(&b, LG_BALANCE_RANDOM2, NULL, NULL, 4), 0);
    CHECK_EQ_INT(lg_pick_init(&c, &b, 4), 0);
    ups_reset(4);
    atomic_store(&ups[3].ejected_until_ms, 9999);
    lg_pick_in_t in;
    lg_pick_in_init(&in, 0);
    lg_pick_tried_add(&in, 0);
    unsigned seen[4] = {0};
    for (int k = 0; k < 400; k++)
        seen[pick_release(&b, &c, &in, NULL, 1000)]++;
    CHECK(seen[0] == 0 && seen[3] == 0);
    CHECK(seen[1] > 100 && seen[2] > 100);
    lg_pick_free(&c);
    lg_balancer_free(&b);
}

/* ---- hash (Maglev) ---- */

static bool is_prime(uint32_t m)
{
    if (m < 2) return false;
    for (uint32_t d = 2; d * d <= m; d++) {
        if (m % d == 0) return false;
    }
    return true;
}

static uint64_t client_hash_of(uint32_t c)
{
    uint8_t addr[16] = {10, (uint8_t)(c >> 16), (uint8_t)(c >> 8), (uint8_t)c};
    lg_clientkey_t k;
    lg_clientkey_make(&k, 4, addr);
    return lg_clientkey_hash(&k);
}

LG_TEST(test_hash_table)
{
    CHECK(is_prime(LG_BALANCER_MAGLEV_SMALL));
    CHECK(is_prime(LG_BALANCER_MAGLEV_LARGE));
    CHECK(LG_BALANCER_MAGLEV_LARGE > 100 * LG_BALANCER_MAX); /* M >> n */

    /* Weights 1:2:3: slots exactly in proportion (quota, plus at most one of the remainder). */
    uint32_t w[3] = {1, 2, 3};
    lg_balancer_t b;
    CHECK_EQ_INT(lg_balancer_build(&b, LG_BALANCE_HASH, w, NULL, 3), 0);
    CHECK_EQ_INT(b.table_size, LG_BALANCER_MAGLEV_SMALL);
    unsigned slots[3] = {0};
    for (uint32_t s = 0; s < b.table_size; s++) {
        CHECK(b.table[s] < 3);
        slots[b.table[s]]++;
    }
    for (uint32_t i = 0; i < 3; i++) {
        uint32_t quota = LG_BALANCER_MAGLEV_SMALL * w[i] / 6;
        CHECK(slots[i] >= quota && slots[i] <= quota + 1);
    }
    lg_balancer_free(&b);

    /* Extreme spread, and the large table: every upstream still owns a slot. */
    static uint32_t wide[LG_BALANCER_MAX];
    for (size_t i = 0; i < LG_BALANCER_MAX; i++)
        wide[i] = i == 0 ? LG_BALANCER_WEIGHT_MAX : 1;
    const size_t sizes[] = {LG_BALANCER_MAGLEV_SMALL_N, LG_BALANCER_MAGLEV_SMALL_N + 1,
                            LG_BALANCER_MAX};
    for (size_t z = 0; z < LG_ARRAY_SIZE(sizes); z++) {
        static unsigned owned[LG_BALANCER_MAX];
        memset(owned, 0, sizeof(owned));
        CHECK_EQ_INT(lg_balancer_build(&b, LG_BALANCE_HASH, wide, NULL, sizes[z]), 0);
        CHECK_EQ_INT(b.table_size, sizes[z] <= LG_BALANCER_MAGLEV_SMALL_N
                                       ? LG_BALANCER_MAGLEV_SMALL
                                       : LG_BALANCER_MAGLEV_LARGE);
        for (uint32_t s = 0; s < b.table_size; s++) {
            CHECK(b.table[s] < sizes[z]);
            owned[b.table[s]]++;
        }
        for (size_t i = 0; i < sizes[z]; i++)
            CHECK(owned[i] >= 1);
        lg_balancer_free(&b);
    }
}

LG_TEST(test_hash_distribution_and_stickiness)
{
    uint32_t w[3] = {1, 2, 3};
    lg_balancer_t b;
    lg_pick_t c;
    CHECK_EQ_INT(lg_balancer_build(&b, LG_BALANCE_HASH, w, NULL, 3), 0);
    CHECK_EQ_INT(lg_pick_init(&c, &b, 0), 0);
    ups_reset(3);
    unsigned counts[3] = {0};
    for (uint32_t cl = 0; cl < 3000; cl++) {
        lg_pick_in_t in;
        lg_pick_in_init(&in, client_hash_of(cl));
        int i = pick_release(&b, &c, &in, NULL, 0);
        CHECK(i >= 0);
        counts[i]++;
        /* The same client lands on the same upstream, whatever the load. */
        atomic_store(&ups[i].active, 100);
        CHECK_EQ_INT(pick_release(&b, &c, &in, NULL, 0), i);
        atomic_store(&ups[i].active, 0);
    }
    for (int i = 0; i < 3; i++)
        CHECK(share_near(counts[i], 3000, (i + 1) / 6.0, 0.03));
    lg_pick_free(&c);
    lg_balancer_free(&b);
}

/* The key each of `clients` clients lands on with balancer b over keys[]. */
static void hash_assign(const lg_balancer_t *b, const uint64_t *keys, uint32_t clients,
                        uint64_t *out)
{
    lg_pick_t c;
    lg_pick_init(&c, b, 0);
    for (uint32_t cl = 0; cl < clients; cl++) {
        lg_pick_in_t in;
        lg_pick_in_init(&in, client_hash_of(cl));
        int i = pick_release(b, &c, &in, NULL, 0);
        out[cl] = i >= 0 ? keys[i] : UINT64_MAX;
    }
    lg_pick_free(&c);
}

LG_TEST(test_hash_minimal_movement)
{
    /* 10 upstreams; remove the 5th (keys keep identities): about 1/10 of clients move. */
    enum { CLIENTS = 20000 };
    static uint64_t before[CLIENTS], after[CLIENTS];
    uint64_t keys10[11], keys9[10];
    for (int i = 0; i < 11; i++)
        keys10[i] = 0x1000 + (uint64_t)i * 7919;
    for (int i = 0, j = 0; i < 10; i++) {
        if (i != 4) keys9[j++] = keys10[i];
    }
    lg_balancer_t b10, b9, b11;
    CHECK_EQ_INT(lg_balancer_build(&b10, LG_BALANCE_HASH, NULL, keys10, 10), 0);
    CHECK_EQ_INT(lg_balancer_build(&b9, LG_BALANCE_HASH, NULL, keys9, 9), 0);
    CHECK_EQ_INT(lg_balancer_build(&b11, LG_BALANCE_HASH, NULL, keys10, 11), 0);
    ups_reset(11);
    hash_assign(&b10, keys10, CLIENTS, before);
    hash_assign(&b9, keys9, CLIENTS, after);
    unsigned on_removed = 0, moved = 0, moved_others = 0;
    for (uint32_t cl = 0; cl < CLIENTS; cl++) {
        if (before[cl] == keys10[4]) on_removed++;
        if (before[cl] != after[cl]) moved++;
        if (before[cl] != keys10[4] && before[cl] != after[cl]) moved_others++;
    }
    /* The removed upstream's clients (about 1/10) must move; barely anyone else does. */
    CHECK(share_near(on_removed, CLIENTS, 0.10, 0.01));
    CHECK(moved <= CLIENTS * 0.13);
    CHECK(moved_others <= CLIENTS * 0.03);
    printf("  hash: removing 1 of 10 moved %.2f %% of clients (%.2f %% not on it)\n",
           100.0 * moved / CLIENTS, 100.0 * moved_others / CLIENTS);

    /* Adding an 11th: about 1/11 move, nearly all of them to the new one. */
    hash_assign(&b11, keys10, CLIENTS, after);
    moved = 0;
    unsigned to_new = 0;
    for (uint32_t cl = 0; cl < CLIENTS; cl++) {
        if (before[cl] != after[cl]) moved++;
        if (before[cl] != after[cl] && after[cl] == keys10[10]) to_new++;
    }
    CHECK(share_near(moved, CLIENTS, 1.0 / 11, 0.03));
    CHECK(to_new >= moved * 0.7);
    printf("  hash: adding an 11th moved %.2f %% of clients (%.2f %% to the new one)\n",
           100.0 * moved / CLIENTS, 100.0 * to_new / CLIENTS);
    lg_balancer_free(&b10);
    lg_balancer_free(&b9);
    lg_balancer_free(&b11);
}

LG_TEST(test_hash_excluded_next_candidate)
{
    lg_balancer_t b;
    lg_pick_t c;
    CHECK_EQ_INT(lg_balancer_build(&b, LG_BALANCE_HASH, NULL, NULL, 3), 0);
    CHECK_EQ_INT(lg_pick_init(&c, &b, 0), 0);
    ups_reset(3);
    unsigned moved_to[3] = {0};
    for (uint32_t cl = 0; cl < 3000; cl++) {
        lg_pick_in_t in;
        lg_pick_in_init(&in, client_hash_of(cl));
        int home = pick_release(&b, &c, &in, NULL, 0);
        /* Home tried: a deterministic second choice, the same every time. */
        lg_pick_tried_add(&in, home);
        int second = pick_release(&b, &c, &in, NULL, 0);
        CHECK(second >= 0 && second != home);
        CHECK_EQ_INT(pick_release(&b, &c, &in, NULL, 0), second);
        /* Home ejected instead of tried: the same second choice. */
        lg_pick_in_init(&in, client_hash_of(cl));
        atomic_store(&ups[home].ejected_until_ms, 5000);
        CHECK_EQ_INT(pick_release(&b, &c, &in, NULL, 1000), second);
        atomic_store(&ups[home].ejected_until_ms, 0);
        if (home == 0) moved_to[second]++;
    }
    /* Upstream 0's clients spread over the other two. */
    CHECK(moved_to[1] > 300 && moved_to[2] > 300);
    lg_pick_free(&c);
    lg_balancer_free(&b);
}

/* ---- failover over every policy ---- */

LG_TEST(test_failover_never_repeats)
{
    uint32_t w[5] = {1, 2, 3, 4, 5};
    for (size_t p = 0; p < LG_ARRAY_SIZE(policies); p++) {
        lg_balancer_t b;
        lg_pick_t c;
        CHECK_EQ_INT(lg_balancer_build(&b, policies[p], w, NULL, 5), 0);
        CHECK_EQ_INT(lg_pick_init(&c, &b, p), 0);
        ups_reset(5);
        for (uint32_t conn = 0; conn < 200; conn++) {
            lg_pick_in_t in;
            lg_pick_in_init(&in, client_hash_of(conn));
            for (int k = 0; k < 5; k++) {
                int i = lg_balancer_pick(&b, st, &c, &in, NULL, 0);
                CHECK_ROW(i >= 0 && i < 5 && !lg_pick_tried_has(&in, (size_t)i), policy_names[p]);
                lg_pick_tried_add(&in, i);
                lg_upstate_release(st[i]);
            }
            /* All tried: -1, and nothing was taken. */
            CHECK_ROW(lg_balancer_pick(&b, st, &c, &in, NULL, 0) == -1, policy_names[p]);
            /* The caller may clear the set to go round again. */
            lg_pick_tried_clear(&in);
            CHECK_ROW(pick_release(&b, &c, &in, NULL, 0) >= 0, policy_names[p]);
        }
        for (int i = 0; i < 5; i++)
            CHECK_ROW(active_of(i) == 0, policy_names[p]);
        lg_pick_free(&c);
        lg_balancer_free(&b);
    }
}

LG_TEST(test_failover_at_max_upstreams)
{
    /* LG_BALANCER_MAX upstreams: every one exactly once, then -1. */
    static unsigned seen[LG_BALANCER_MAX];
    for (size_t p = 0; p < LG_ARRAY_SIZE(policies); p++) {
        lg_balancer_t b;
        lg_pick_t c;
        CHECK_EQ_INT(lg_balancer_build(&b, policies[p], NULL, NULL, LG_BALANCER_MAX), 0);
        CHECK_EQ_INT(lg_pick_init(&c, &b, 5), 0);
        ups_reset(LG_BALANCER_MAX);
        memset(seen, 0, sizeof(seen));
        lg_pick_in_t in;
        lg_pick_in_init(&in, 12345);
        for (int k = 0; k < LG_BALANCER_MAX; k++) {
            int i = pick_release(&b, &c, &in, NULL, 0);
            CHECK_ROW(i >= 0 && i < LG_BALANCER_MAX && seen[i] == 0, policy_names[p]);
            seen[i]++;
            lg_pick_tried_add(&in, i);
        }
        CHECK_ROW(pick_release(&b, &c, &in, NULL, 0) == -1, policy_names[p]);
        lg_pick_free(&c);
        lg_balancer_free(&b);
    }
}

/* ---- health ---- */

LG_TEST(test_ejection_lifecycle)
{
    lg_health_rules_t r;
    lg_health_rules_init(&r);
    CHECK_EQ_INT(r.max_fails, 3);
    CHECK_EQ_INT(r.fail_timeout_ms, 10000);
    lg_balancer_t b;
    lg_pick_t c;
    lg_pick_out_t out;
    CHECK_EQ_INT(lg_balancer_build(&b, LG_BALANCE_LEASTCONN, NULL, NULL, 2), 0);
    CHECK_EQ_INT(lg_pick_init(&c, &b, 0), 0);
    ups_reset(2);
    atomic_store(&ups[1].active, 5); /* upstream 0 is preferred whenever it may be picked */

    lg_upstate_report(&ups[0], false, &r, 1000);
    lg_upstate_report(&ups[0], false, &r, 1000);
    CHECK(!lg_upstate_ejected(&ups[0], 1000)); /* max_fails - 1 */
    CHECK_EQ_INT(pick_release(&b, &c, NULL, &out, 1000), 0);
    lg_upstate_report(&ups[0], false, &r, 1000); /* max_fails: ejected until 11000 */
    CHECK(lg_upstate_ejected(&ups[0], 1000));
    CHECK_EQ_INT(atomic_load(&ups[0].ejected_until_ms), 11000);
    CHECK_EQ_INT(atomic_load(&ups[0].ejections), 1);
    CHECK_EQ_INT(atomic_load(&ups[0].dial_fails), 3);
    CHECK_EQ_INT(pick_release(&b, &c, NULL, &out, 5000), 1);
    CHECK(!out.probe && !out.fail_open);

    /* A dial made before the ejection fails during it: the ejection is not extended. */
    lg_upstate_report(&ups[0], false, &r, 6000);
    CHECK_EQ_INT(atomic_load(&ups[0].ejected_until_ms), 11000);
    CHECK_EQ_INT(atomic_load(&ups[0].ejections), 1);

    /* Expired: one connection probes (and holds a lease), the next does not. */
    CHECK_EQ_INT(pick_release(&b, &c, NULL, &out, 10999), 1);
    CHECK(!lg_upstate_ejected(&ups[0], 11000));
    CHECK_EQ_INT(pick_release(&b, &c, NULL, &out, 11000), 0);
    CHECK(out.probe);
    CHECK(atomic_load(&ups[0].probing));
    CHECK_EQ_INT(atomic_load(&ups[0].probes), 1);
    CHECK_EQ_INT(pick_release(&b, &c, NULL, &out, 11001), 1);
    CHECK(!out.probe);

    /* The probe fails: ejected again for fail_timeout_ms from now. */
    lg_upstate_report(&ups[0], false, &r, 12000);
    CHECK_EQ_INT(atomic_load(&ups[0].ejected_until_ms), 22000);
    CHECK_EQ_INT(atomic_load(&ups[0].ejections), 2);
    CHECK(!atomic_load(&ups[0].probing));
    CHECK_EQ_INT(pick_release(&b, &c, NULL, &out, 21999), 1);

    /* The next probe succeeds: trusted, no probe needed any more. */
    CHECK_EQ_INT(pick_release(&b, &c, NULL, &out, 22000), 0);
    CHECK(out.probe);
    lg_upstate_report(&ups[0], true, &r, 22001);
    CHECK_EQ_INT(atomic_load(&ups[0].ejected_until_ms), 0);
    CHECK_EQ_INT(atomic_load(&ups[0].consecutive_fails), 0);
    CHECK(!atomic_load(&ups[0].probing));
    CHECK_EQ_INT(pick_release(&b, &c, NULL, &out, 22002), 0);
    CHECK(!out.probe);
    CHECK_EQ_INT(pick_release(&b, &c, NULL, &out, 22003), 0);

    /* A success between failures resets the count. */
    lg_upstate_report(&ups[0], false, &r, 23000);
    lg_upstate_report(&ups[0], false, &r, 23000);
    lg_upstate_report(&ups[0], true, &r, 23000);
    lg_upstate_report(&ups[0], false, &r, 23000);
    lg_upstate_report(&ups[0], false, &r, 23000);
    CHECK(!lg_upstate_ejected(&ups[0], 23000));
    lg_pick_free(&c);
    lg_balancer_free(&b);
}

LG_TEST(test_health_rules_edges)
{
    lg_health_rules_t r = {.max_fails = 0, .fail_timeout_ms = 10000};
    ups_reset(1);
    for (int k = 0; k < 100; k++)
        lg_upstate_report(&ups[0], false, &r, 1000);
    CHECK(!lg_upstate_ejected(&ups[0], 1000)); /* max_fails 0: never ejected */
    CHECK_EQ_INT(atomic_load(&ups[0].dial_fails), 100);
    CHECK_EQ_INT(atomic_load(&ups[0].ejections), 0);

    /* max_fails 1, fail_timeout 0 counts as 1 ms; an hour is the longest. */
    r = (lg_health_rules_t){.max_fails = 1, .fail_timeout_ms = 0};
    ups_reset(1);
    lg_upstate_report(&ups[0], false, &r, 1000);
    CHECK_EQ_INT(atomic_load(&ups[0].ejected_until_ms), 1001);
    r.fail_timeout_ms = UINT32_MAX;
    ups_reset(1);
    lg_upstate_report(&ups[0], false, &r, 1000);
    CHECK_EQ_INT(atomic_load(&ups[0].ejected_until_ms), 1000 + LG_HEALTH_FAIL_TIMEOUT_MAX_MS);
}

LG_TEST(test_probe_lease)
{
    /* A probe that never reports: when its lease (the ejection length) ends, another may try. */
    lg_health_rules_t r = {.max_fails = 1, .fail_timeout_ms = 500};
    lg_balancer_t b;
    lg_pick_t c;
    lg_pick_out_t out;
    CHECK_EQ_INT(lg_balancer_build(&b, LG_BALANCE_ROUNDROBIN, NULL, NULL, 2), 0);
    CHECK_EQ_INT(lg_pick_init(&c, &b, 0), 0);
    ups_reset(2);
    lg_upstate_report(&ups[0], false, &r, 0); /* ejected until 500 */
    int probes = 0;
    for (uint64_t t = 500; t < 2500; t++) {
        pick_release(&b, &c, NULL, &out, t);
        probes += out.probe;
    }
    CHECK_EQ_INT(probes, 4); /* one per lease: from about 500, 1000, 1500 and 2000 */
    CHECK_EQ_INT(atomic_load(&ups[0].probes), 4);
    lg_pick_free(&c);
    lg_balancer_free(&b);
}

/* One upstream whose ejection of eject_ms ended at 500: half-open, free to be probed. */
static void half_open_since_500(uint64_t eject_ms)
{
    ups_reset(1);
    atomic_store(&ups[0].ejected_until_ms, 500);
    atomic_store(&ups[0].eject_ms, eject_ms);
}

LG_TEST(test_probe_claim_interleaving)
{
    /* Connection A reads an expired ejection, B claims the probe, then A tries with what it
     * read: A must lose (the compare-and-swap sees B's lease), and the upstream stays leased. */
    half_open_since_500(10000);
    uint64_t seen_by_a = atomic_load(&ups[0].ejected_until_ms);
    CHECK(claim_probe(&ups[0], seen_by_a, 1000, 0));  /* B */
    CHECK(!claim_probe(&ups[0], seen_by_a, 1000, 0)); /* A */
    CHECK_EQ_INT(atomic_load(&ups[0].ejected_until_ms), 11000);
    CHECK_EQ_INT(atomic_load(&ups[0].probes), 1);
    CHECK(lg_upstate_ejected(&ups[0], 1000));
}

LG_TEST(test_probe_given_back)
{
    /* A probe whose attempt failed for a reason of this host's gives its lease back: the next
     * connection probes at once, not after the lease. A report that came first keeps its say. */
    half_open_since_500(10000);
    uint64_t lease = claim_probe(&ups[0], 500, 1000, 0);
    CHECK_EQ_INT(lease, 11000);
    CHECK(lg_upstate_ejected(&ups[0], 1001));
    lg_upstate_unprobe(&ups[0], lease, 1001);
    CHECK(!atomic_load(&ups[0].probing));
    CHECK(!lg_upstate_ejected(&ups[0], 1001)); /* half-open */
    CHECK(atomic_load(&ups[0].ejected_until_ms) != 0);
    lease = claim_probe(&ups[0], 1001, 1002, 0); /* the next connection's probe */
    CHECK(lease != 0);
    CHECK_EQ_INT(atomic_load(&ups[0].probes), 2);

    /* Reported first (the probe failed for real: ejected again), then given back: no change. */
    lg_health_rules_t r = {.max_fails = 1, .fail_timeout_ms = 300};
    lg_upstate_report(&ups[0], false, &r, 1003);
    uint64_t until = atomic_load(&ups[0].ejected_until_ms);
    CHECK_EQ_INT(until, 1303);
    lg_upstate_unprobe(&ups[0], lease, 1004);
    CHECK_EQ_INT(atomic_load(&ups[0].ejected_until_ms), until);

    /* Trusted after a success: giving back a probe that is not one changes nothing. */
    lg_upstate_report(&ups[0], true, &r, 1400);
    lg_upstate_unprobe(&ups[0], lease, 1401);
    CHECK_EQ_INT(atomic_load(&ups[0].ejected_until_ms), 0);
    lg_upstate_unprobe(&ups[0], 0, 1402); /* not a probe */
    CHECK_EQ_INT(atomic_load(&ups[0].ejected_until_ms), 0);
}

LG_TEST(test_probe_gives_back_only_its_own_lease)
{
    /* A's lease ends as its attempt times out locally; B claims the next probe on another
     * worker at that moment; A's give-back then comes: B keeps its lease and its flag, and a
     * third connection may not probe beside B. */
    half_open_since_500(300);
    uint64_t a = claim_probe(&ups[0], 500, 1000, 0);
    CHECK_EQ_INT(a, 1300);
    uint64_t b = claim_probe(&ups[0], 1300, 1300, 0);
    CHECK_EQ_INT(b, 1600);
    lg_upstate_unprobe(&ups[0], a, 1301);
    CHECK_EQ_INT(atomic_load(&ups[0].ejected_until_ms), 1600);
    CHECK(atomic_load(&ups[0].probing));
    CHECK(!claim_probe(&ups[0], 1301, 1302, 0));
    CHECK(lg_upstate_ejected(&ups[0], 1302));
    CHECK_EQ_INT(atomic_load(&ups[0].probes), 2);
    /* B's own give-back works. */
    lg_upstate_unprobe(&ups[0], b, 1310);
    CHECK(!atomic_load(&ups[0].probing));
    CHECK_EQ_INT(atomic_load(&ups[0].ejected_until_ms), 1310);
}

/* The probe's lease lasts at least its attempt: failTimeoutMs 200 with a 1,500 ms attempt
 * leases until 1,000 + 1,500, so no second connection probes while the first still dials. */
LG_TEST(test_probe_lease_covers_the_attempt)
{
    half_open_since_500(200);
    CHECK(claim_probe(&ups[0], 500, 1000, 1500));
    CHECK_EQ_INT(atomic_load(&ups[0].ejected_until_ms), 2500);
    CHECK(lg_upstate_ejected(&ups[0], 1300)); /* the old lease would have ended at 1200 */
    /* without an attempt length, failTimeoutMs as before */
    half_open_since_500(200);
    CHECK(claim_probe(&ups[0], 500, 1000, 0));
    CHECK_EQ_INT(atomic_load(&ups[0].ejected_until_ms), 1200);
}

/*
 * Two threads race for one half-open upstream, under real concurrency: every round must end
 * with exactly one probe and the other connection on the trusted upstream (never two probes,
 * never none, never a fail-open). Each round both spin on a shared start flag so they arrive
 * together; even so the window between reading the deadline and the compare-and-swap is a few
 * nanoseconds and true collisions are rare (about 1 round in 5000 on two cores), which is why
 * test_probe_claim_interleaving pins the compare-and-swap itself deterministically.
 */
enum { RACE_ROUNDS = 5000 };
static atomic_int race_go;   /* the round the racers may run; -1 before the first */
static atomic_int race_done; /* picks finished, over all rounds */

typedef struct racer_s {
    const lg_balancer_t *b;
    lg_pick_t cur;
    int idx[RACE_ROUNDS];
    bool probe[RACE_ROUNDS];
} racer_t;

static void *racer_main(void *arg)
{
    racer_t *r = arg;
    for (int k = 0; k < RACE_ROUNDS; k++) {
        for (unsigned spin = 0; atomic_load(&race_go) != k; spin++) {
            if (spin % 4096 == 4095) sched_yield(); /* let main run on a busy machine */
        }
        lg_pick_out_t out;
        r->idx[k] = lg_balancer_pick(r->b, st, &r->cur, NULL, &out, 1000 + (uint64_t)k);
        r->probe[k] = out.probe;
        atomic_fetch_add(&race_done, 1);
    }
    return NULL;
}

LG_TEST(test_probe_race)
{
    lg_balancer_t b;
    CHECK_EQ_INT(lg_balancer_build(&b, LG_BALANCE_LEASTCONN, NULL, NULL, 2), 0);
    ups_reset(2);
    atomic_store(&race_go, -1);
    atomic_store(&race_done, 0);
    static racer_t racers[2];
    pthread_t th[2];
    for (int t = 0; t < 2; t++) {
        racers[t].b = &b;
        CHECK_EQ_INT(lg_pick_init(&racers[t].cur, &b, (uint64_t)t), 0);
        CHECK_EQ_INT(pthread_create(&th[t], NULL, racer_main, &racers[t]), 0);
    }
    for (int k = 0; k < RACE_ROUNDS; k++) {
        while (atomic_load(&race_done) != 2 * k)
            sched_yield();
        /* Upstream 0 half-open (ejection ended at 500), upstream 1 busy but trusted. */
        atomic_store(&ups[0].ejected_until_ms, 500);
        atomic_store(&ups[0].eject_ms, 10000);
        atomic_store(&ups[0].probing, false);
        atomic_store(&ups[0].active, 0);
        atomic_store(&ups[1].active, 100);
        atomic_store(&race_go, k);
    }
    for (int t = 0; t < 2; t++)
        pthread_join(th[t], NULL);
    int rounds_ok = 0;
    for (int k = 0; k < RACE_ROUNDS; k++) {
        bool p0 = racers[0].probe[k], p1 = racers[1].probe[k];
        int i0 = racers[0].idx[k], i1 = racers[1].idx[k];
        /* Exactly one probe; the other connection went to the trusted upstream. */
        if (p0 != p1 && (p0 ? (i0 == 0 && i1 == 1) : (i1 == 0 && i0 == 1))) rounds_ok++;
    }
    CHECK_EQ_INT(rounds_ok, RACE_ROUNDS);
    CHECK_EQ_INT(atomic_load(&ups[0].probes), RACE_ROUNDS);
    for (int t = 0; t < 2; t++)
        lg_pick_free(&racers[t].cur);
    lg_balancer_free(&b);
}

LG_TEST(test_fail_open)
{
    lg_health_rules_t r = {.max_fails = 1, .fail_timeout_ms = 10000};
    for (size_t p = 0; p < LG_ARRAY_SIZE(policies); p++) {
        lg_balancer_t b;
        lg_pick_t c;
        lg_pick_out_t out;
        CHECK_EQ_INT(lg_balancer_build(&b, policies[p], NULL, NULL, 3), 0);
        CHECK_EQ_INT(lg_pick_init(&c, &b, 0), 0);
        ups_reset(3);
        for (int i = 0; i < 3; i++)
            lg_upstate_report(&ups[i], false, &r, 1000);
        /* All ejected: one is tried anyway, flagged; failover still never repeats. */
        lg_pick_in_t in;
        lg_pick_in_init(&in, 77);
        for (int k = 0; k < 3; k++) {
            int i = pick_release(&b, &c, &in, &out, 2000);
            CHECK_ROW(i >= 0 && out.fail_open && !out.probe, policy_names[p]);
            CHECK_ROW(!lg_pick_tried_has(&in, (size_t)i), policy_names[p]);
            lg_pick_tried_add(&in, i);
        }
        CHECK_ROW(pick_release(&b, &c, &in, &out, 2000) == -1 && !out.fail_open, policy_names[p]);
        CHECK_ROW(atomic_load(&ups[0].fail_opens) + atomic_load(&ups[1].fail_opens) +
                          atomic_load(&ups[2].fail_opens) ==
                      3,
                  policy_names[p]);
        /* One trusted but already tried, the rest ejected: fail open to an untried one. */
        ups_reset(3);
        lg_upstate_report(&ups[1], false, &r, 1000);
        lg_upstate_report(&ups[2], false, &r, 1000);
        lg_pick_in_init(&in, 77);
        lg_pick_tried_add(&in, 0);
        int i = pick_release(&b, &c, &in, &out, 2000);
        CHECK_ROW((i == 1 || i == 2) && out.fail_open, policy_names[p]);
        /* And with a trusted untried one there is no fail-open. */
        lg_pick_tried_clear(&in);
        CHECK_ROW(pick_release(&b, &c, &in, &out, 2000) == 0 && !out.fail_open, policy_names[p]);
        lg_pick_free(&c);
        lg_balancer_free(&b);
    }
}

/* Two threads pick and release concurrently: active counts end at zero. */
typedef struct churner_s {
    const lg_balancer_t *b;
    lg_pick_t cur;
    bool ok;
} churner_t;

static void *churner_main(void *arg)
{
    churner_t *ch = arg;
    ch->ok = true;
    int held[8];
    for (int k = 0; k < 20000; k++) {
        int i = lg_balancer_pick(ch->b, st, &ch->cur, NULL, NULL, 0);
        if (i < 0 || i >= 4) ch->ok = false;
        if (i < 0) continue;
        held[k % 8] = i;
        if (k % 8 == 7) {
            for (int h = 0; h < 8; h++)
                lg_upstate_release(st[held[h]]);
        }
    }
    return NULL;
}

LG_TEST(test_concurrent_active_counts)
{
    for (size_t p = 0; p < LG_ARRAY_SIZE(policies); p++) {
        lg_balancer_t b;
        CHECK_EQ_INT(lg_balancer_build(&b, policies[p], NULL, NULL, 4), 0);
        ups_reset(4);
        churner_t ch[2];
        pthread_t th[2];
        for (int t = 0; t < 2; t++) {
            ch[t].b = &b;
            CHECK_EQ_INT(lg_pick_init(&ch[t].cur, &b, (uint64_t)t + 1), 0);
            CHECK_EQ_INT(pthread_create(&th[t], NULL, churner_main, &ch[t]), 0);
        }
        for (int t = 0; t < 2; t++)
            pthread_join(th[t], NULL);
        uint64_t picks = 0;
        for (int i = 0; i < 4; i++) {
            CHECK_ROW(active_of((size_t)i) == 0, policy_names[p]);
            picks += atomic_load(&ups[i].picks);
        }
        CHECK_ROW(picks == 40000 && ch[0].ok && ch[1].ok, policy_names[p]);
        for (int t = 0; t < 2; t++)
            lg_pick_free(&ch[t].cur);
        lg_balancer_free(&b);
    }
}

/* ---- client keys ---- */

LG_TEST(test_ipkey)
{
    uint8_t v4[16] = {192, 0, 2, 7};
    uint8_t mapped[16] = {0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0xff, 0xff, 192, 0, 2, 7};
    uint8_t v6[16] = {0x20, 0x01, 0x0d, 0xb8, [15] = 1};
    uint8_t compat[16] = {[12] = 192, [13] = 0, [14] = 2, [15] = 7}; /* ::192.0.2.7, not mapped */
    lg_clientkey_t a, m, s, x;
    CHECK_EQ_INT(lg_clientkey_make(&a, 4, v4), 0);
    CHECK_EQ_INT(lg_clientkey_make(&m, 6, mapped), 0);
    CHECK(memcmp(&a, &m, sizeof(a)) == 0); /* one key for both listeners */
    CHECK(lg_clientkey_hash(&a) == lg_clientkey_hash(&m));
    CHECK(a.b[0] == 4 && a.b[1] == 192 && a.b[4] == 7 && a.b[5] == 0 && a.b[16] == 0);
    CHECK_EQ_INT(lg_clientkey_make(&s, 6, v6), 0);
    CHECK(s.b[0] == 6 && s.b[1] == 0x20 && s.b[16] == 1);
    CHECK_EQ_INT(lg_clientkey_make(&x, 6, compat), 0);
    CHECK(x.b[0] == 6);
    CHECK(lg_clientkey_hash(&a) != lg_clientkey_hash(&s));
    CHECK_EQ_INT(lg_clientkey_make(&x, 5, v4), -EINVAL);
    CHECK(x.b[0] == 0 && x.b[1] == 0);
    /* The hash is stable across processes (a fixed function): pin one value. */
    CHECK(lg_clientkey_hash(&a) == lg_clientkey_hash(&a));
}

/* ---- affinity ---- */

static const uint8_t aff_seed[16] = {1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15, 16};

static lg_clientkey_t key_of(uint32_t c)
{
    uint8_t addr[16] = {172, 16, (uint8_t)(c >> 8), (uint8_t)c};
    lg_clientkey_t k;
    lg_clientkey_make(&k, 4, addr);
    return k;
}

/* The shard invariants of lg_affinity.c's header. */
static bool affinity_ok(lg_affinity_t *a)
{
    for (size_t k = 0; k < LG_AFFINITY_SHARDS; k++) {
        lg_affinity_shard_t *s = &a->shard[k];
        uint32_t used = 0, lru = 0, fre = 0, prev = LG_AFFINITY_NIL;
        for (uint32_t i = 0; i < s->cap; i++) {
            if (!s->pool[i].used) continue;
            used++;
            uint64_t h = entry_hash(a, &s->pool[i].key, s->pool[i].scope);
            if (aff_shard_of(a, h) != s || aff_find(s, h, &s->pool[i].key, s->pool[i].scope) != i) {
                return false;
            }
        }
        for (uint32_t i = s->lru_head; i != LG_AFFINITY_NIL; i = s->pool[i].next) {
            if (!s->pool[i].used || s->pool[i].prev != prev || ++lru > s->cap) return false;
            prev = i;
        }
        if (s->lru_tail != prev) return false;
        for (uint32_t i = s->free_head; i != LG_AFFINITY_NIL; i = s->pool[i].next) {
            if (s->pool[i].used || ++fre > s->cap) return false;
        }
        if (used != s->used || lru != used || fre != s->cap - used) return false;
    }
    return true;
}

LG_TEST(test_siphash_vectors)
{
    /* Reference vectors of the SipHash paper (key 00..0f, message 00..len-1). */
    uint8_t key[16], msg[15];
    for (int i = 0; i < 16; i++)
        key[i] = (uint8_t)i;
    for (int i = 0; i < 15; i++)
        msg[i] = (uint8_t)i;
    uint64_t k0 = aff_load_le64(key), k1 = aff_load_le64(key + 8);
    CHECK(siphash24(k0, k1, msg, 0) == 0x726fdb47dd0e0e31ULL);
    CHECK(siphash24(k0, k1, msg, 15) == 0xa129ca6149be45e5ULL);
}

LG_TEST(test_affinity_init)
{
    lg_affinity_t a;
    CHECK_EQ_INT(lg_affinity_init(&a, 0, aff_seed), -EINVAL);
    CHECK_EQ_INT(lg_affinity_init(&a, LG_AFFINITY_CAPACITY_MAX + 1, aff_seed), -EINVAL);
    /* Every allocation fails in turn: -ENOMEM and nothing left (ASan). */
    long k;
    for (k = 0; k < 100; k++) {
        lg_alloc_fail_after(k);
        int rc = lg_affinity_init(&a, 1000, aff_seed);
        lg_alloc_fail_after(-1);
        if (rc == 0) break;
        CHECK_EQ_INT(rc, -ENOMEM);
        CHECK(!a.ready);
        /* A failed table answers nothing and ignores pins. */
        CHECK_EQ_INT(lg_affinity_lookup(&a, &(lg_clientkey_t){{4}}, 0, st, 0, 0, 1), -1);
    }
    CHECK_EQ_INT(k, 2 * LG_AFFINITY_SHARDS);
    lg_affinity_stats_t stats;
    lg_affinity_stats(&a, &stats);
    CHECK_EQ_INT(stats.entries, 0);
    lg_affinity_free(&a);
    lg_affinity_free(&a); /* zeroed: fine */
    /* The maximum capacity is accepted. */
    CHECK_EQ_INT(lg_affinity_init(&a, LG_AFFINITY_CAPACITY_MAX, aff_seed), 0);
    CHECK_EQ_INT(a.shard[0].cap, LG_AFFINITY_CAPACITY_MAX / LG_AFFINITY_SHARDS);
    lg_affinity_free(&a);
}

LG_TEST(test_affinity_ttl)
{
    lg_affinity_t a;
    CHECK_EQ_INT(lg_affinity_init(&a, 1000, aff_seed), 0);
    ups_reset(3);
    lg_clientkey_t k = key_of(1);
    CHECK_EQ_INT(lg_affinity_lookup(&a, &k, 0, st, 3, 1000, 500), -1); /* nothing pinned */
    lg_affinity_pin(&a, &k, 0, st[2], 1000, 500);
    CHECK_EQ_INT(lg_affinity_lookup(&a, &k, 0, st, 3, 1499, 500), 2);
    CHECK_EQ_INT(lg_affinity_lookup(&a, &k, 0, st, 3, 1998, 500), 2);  /* sliding: seen at 1499 */
    CHECK_EQ_INT(lg_affinity_lookup(&a, &k, 0, st, 3, 2498, 500), -1); /* 500 ms unseen */
    lg_affinity_stats_t stats;
    lg_affinity_stats(&a, &stats);
    CHECK(stats.entries == 0 && stats.expired == 1 && stats.hits == 2 && stats.misses == 2);
    /* A clock behind last_seen (another worker's earlier reading) is not an expiry. */
    lg_affinity_pin(&a, &k, 0, st[1], 5000, 500);
    CHECK_EQ_INT(lg_affinity_lookup(&a, &k, 0, st, 3, 4000, 500), 1);
    /* Scopes are separate; forget drops one pin. */
    lg_affinity_pin(&a, &k, 42, st[0], 5000, 500);
    CHECK_EQ_INT(lg_affinity_lookup(&a, &k, 42, st, 3, 5001, 500), 0);
    CHECK_EQ_INT(lg_affinity_lookup(&a, &k, 0, st, 3, 5001, 500), 1);
    lg_affinity_forget(&a, &k, 42);
    CHECK_EQ_INT(lg_affinity_lookup(&a, &k, 42, st, 3, 5002, 500), -1);
    CHECK_EQ_INT(lg_affinity_lookup(&a, &k, 0, st, 3, 5002, 500), 1);
    /* Re-pinning overwrites. */
    lg_affinity_pin(&a, &k, 0, st[2], 5003, 500);
    CHECK_EQ_INT(lg_affinity_lookup(&a, &k, 0, st, 3, 5004, 500), 2);
    lg_affinity_stats(&a, &stats);
    CHECK_EQ_INT(stats.entries, 1);
    CHECK(affinity_ok(&a));
    lg_affinity_free(&a);
}

LG_TEST(test_affinity_bound_and_lru)
{
    lg_affinity_t a;
    CHECK_EQ_INT(lg_affinity_init(&a, 2 * LG_AFFINITY_SHARDS, aff_seed), 0); /* 2 per shard */
    ups_reset(3);
    /* Many clients: never more than the capacity, the excess evicted and counted. */
    for (uint32_t c = 0; c < 1000; c++) {
        lg_clientkey_t k = key_of(c);
        lg_affinity_pin(&a, &k, 0, st[c % 3], 1000 + c, 1000000);
    }
    lg_affinity_stats_t stats;
    lg_affinity_stats(&a, &stats);
    CHECK_EQ_INT(stats.entries, 2 * LG_AFFINITY_SHARDS);
    CHECK_EQ_INT(stats.evicted, 1000 - 2 * LG_AFFINITY_SHARDS);
    CHECK(affinity_ok(&a));
    lg_affinity_free(&a);

    /* Three clients of one shard: the least recently seen is the one evicted. */
    CHECK_EQ_INT(lg_affinity_init(&a, 2 * LG_AFFINITY_SHARDS, aff_seed), 0);
    lg_clientkey_t same[3];
    int found = 0;
    lg_affinity_shard_t *target = NULL;
    for (uint32_t c = 0; c < 10000 && found < 3; c++) {
        lg_clientkey_t k = key_of(c);
        lg_affinity_shard_t *s = aff_shard_of(&a, entry_hash(&a, &k, 0));
        if (target == NULL) target = s;
        if (s == target) same[found++] = k;
    }
    CHECK_EQ_INT(found, 3);
    lg_affinity_pin(&a, &same[0], 0, st[0], 100, 1000000);
    lg_affinity_pin(&a, &same[1], 0, st[1], 200, 1000000);
    CHECK_EQ_INT(lg_affinity_lookup(&a, &same[0], 0, st, 3, 300, 1000000), 0); /* seen again */
    lg_affinity_pin(&a, &same[2], 0, st[2], 400, 1000000); /* full: same[1] is the oldest */
    CHECK_EQ_INT(lg_affinity_lookup(&a, &same[1], 0, st, 3, 500, 1000000), -1);
    CHECK_EQ_INT(lg_affinity_lookup(&a, &same[0], 0, st, 3, 500, 1000000), 0);
    CHECK_EQ_INT(lg_affinity_lookup(&a, &same[2], 0, st, 3, 500, 1000000), 2);
    lg_affinity_stats(&a, &stats);
    CHECK(stats.evicted == 1 && stats.expired == 0);
    /* An expired entry making room is counted as expired, not evicted. */
    lg_affinity_pin(&a, &same[1], 0, st[1], 10000, 100); /* evicts same[0], seen at 500 */
    lg_affinity_stats(&a, &stats);
    CHECK(stats.evicted == 1 && stats.expired == 1);
    CHECK(affinity_ok(&a));
    lg_affinity_free(&a);
}

LG_TEST(test_affinity_config_swap)
{
    lg_affinity_t a;
    CHECK_EQ_INT(lg_affinity_init(&a, 1000, aff_seed), 0);
    ups_reset(10);
    lg_clientkey_t k = key_of(7);

    /* Pinned to the 6th of 6; the list shrinks to 3 without it: bounds-checked, no pin. */
    lg_affinity_pin(&a, &k, 0, st[5], 1000, 60000);
    CHECK_EQ_INT(lg_affinity_lookup(&a, &k, 0, st, 6, 1001, 60000), 5);
    CHECK_EQ_INT(lg_affinity_lookup(&a, &k, 0, st, 3, 1002, 60000), -1);

    /* A rebuilt list that keeps the upstate (same pointer) finds it at its new index. */
    lg_upstate_t *swapped[3] = {&ups[9], &ups[5], &ups[0]};
    CHECK_EQ_INT(lg_affinity_lookup(&a, &k, 0, swapped, 3, 1003, 60000), 1);

    /* Ejected (or half-open): no pin, the balancer decides; trusted again: pinned again. */
    lg_health_rules_t r = {.max_fails = 1, .fail_timeout_ms = 100};
    lg_upstate_report(&ups[5], false, &r, 1004);
    CHECK_EQ_INT(lg_affinity_lookup(&a, &k, 0, swapped, 3, 1005, 60000), -1);
    CHECK_EQ_INT(lg_affinity_lookup(&a, &k, 0, swapped, 3, 2000, 60000), -1); /* half-open */
    lg_upstate_report(&ups[5], true, &r, 2001);
    CHECK_EQ_INT(lg_affinity_lookup(&a, &k, 0, swapped, 3, 2002, 60000), 1);

    /* A new upstate at the same address (freed and reallocated) is another upstream. */
    lg_upstate_init(&ups[5], 1000);
    CHECK_EQ_INT(lg_affinity_lookup(&a, &k, 0, swapped, 3, 2003, 60000), -1);
    lg_affinity_stats_t stats;
    lg_affinity_stats(&a, &stats);
    CHECK_EQ_INT(stats.stale, 4);
    lg_affinity_free(&a);
}

/* Two threads pin, look up and forget in a small shared table. */
typedef struct affer_s {
    lg_affinity_t *a;
    uint64_t seed;
    bool ok;
} affer_t;

static void *affer_main(void *arg)
{
    affer_t *w = arg;
    w->ok = true;
    uint64_t rng = w->seed;
    for (uint64_t t = 0; t < 30000; t++) {
        uint64_t r = test_rng(&rng);
        lg_clientkey_t k = key_of((uint32_t)(r % 300));
        switch (r >> 60) {
        case 0:
            lg_affinity_forget(w->a, &k, 0);
            break;
        case 1:
        case 2:
        case 3:
            lg_affinity_pin(w->a, &k, 0, st[(r >> 20) % 4], t, 5000);
            break;
        default: {
            int i = lg_affinity_lookup(w->a, &k, 0, st, 4, t, 5000);
            if (i < -1 || i >= 4) w->ok = false;
            break;
        }
        }
    }
    return NULL;
}

LG_TEST(test_affinity_threads)
{
    lg_affinity_t a;
    CHECK_EQ_INT(lg_affinity_init(&a, 64, aff_seed), 0);
    ups_reset(4);
    affer_t w[2] = {{&a, 1, false}, {&a, 2, false}};
    pthread_t th[2];
    for (int t = 0; t < 2; t++)
        CHECK_EQ_INT(pthread_create(&th[t], NULL, affer_main, &w[t]), 0);
    for (int t = 0; t < 2; t++)
        pthread_join(th[t], NULL);
    CHECK(w[0].ok && w[1].ok);
    CHECK(affinity_ok(&a));
    lg_affinity_stats_t stats;
    lg_affinity_stats(&a, &stats);
    CHECK(stats.entries <= 64);
    lg_affinity_free(&a);
}

/* ---- CPU sampling ---- */

typedef struct stat_row_s {
    const char *name;
    const char *line;
    int rc;
    uint64_t ticks;
} stat_row_t;

/* Fields after ')': state ppid pgrp session tty tpgid flags minflt cminflt majflt cmajflt utime
 * stime ... */
static const stat_row_t stat_rows[] = {
    {"node worker thread",
     "4242 (node) S 1 4242 4242 34816 4242 4194560 51234 0 12 0 2500 750 0 0 20 0 11 0 "
     "123456 1193046016 51200 18446744073709551615 1 1 0 0 0 0 0 16781312 134234626 0 0 0 17 1 "
     "0 0 0 0 0\n",
     0, 3250},
    {"comm with spaces and parens", "77 (my (odd) ) name)) R 1 2 3 4 -1 6 7 8 9 10 123 456 0\n", 0,
     579},
    {"comm is only '('", "8 (() S 1 2 3 4 5 6 7 8 9 10 1 2\n", 0, 3},
    {"comm is ')'", "8 ()) S 1 2 3 4 5 6 7 8 9 10 1 2\n", 0, 3},
    {"empty comm", "8 () S 1 2 3 4 5 6 7 8 9 10 1 2\n", 0, 3},
    {"stime ends the buffer", "9 (x) S 1 2 3 4 5 6 7 8 9 10 0 0", 0, 0},
    {"stime then a space", "9 (x) S 1 2 3 4 5 6 7 8 9 10 5 6 ", 0, 11},
    {"largest sum", "9 (x) S 1 2 3 4 5 6 7 8 9 10 18446744073709551615 0\n", 0, UINT64_MAX},
    {"utime + stime overflow", "9 (x) S 1 2 3 4 5 6 7 8 9 10 18446744073709551615 1\n", -EINVAL, 0},
    {"utime above 2^64-1", "9 (x) S 1 2 3 4 5 6 7 8 9 10 18446744073709551616 0\n", -EINVAL, 0},
    {"21 digits", "9 (x) S 1 2 3 4 5 6 7 8 9 10 000000000000000000001 0\n", -EINVAL, 0},
    {"empty", "", -EINVAL, 0},
    {"no ')'", "9 (x S 1 2 3 4 5 6 7 8 9 10 1 2\n", -EINVAL, 0},
    {"no pid", "(x) S 1 2 3 4 5 6 7 8 9 10 1 2\n", -EINVAL, 0},
    {"pid not numeric", "9a (x) S 1 2 3 4 5 6 7 8 9 10 1 2\n", -EINVAL, 0},
    {"no space before '('", "9(x) S 1 2 3 4 5 6 7 8 9 10 1 2\n", -EINVAL, 0},
    {"')' only before '('", "9 )x( S 1 2 3 4 5 6 7 8 9 10 1 2\n", -EINVAL, 0},
    {"truncated after utime", "9 (x) S 1 2 3 4 5 6 7 8 9 10 1", -EINVAL, 0},
    {"truncated after utime and a space", "9 (x) S 1 2 3 4 5 6 7 8 9 10 1 ", -EINVAL, 0},
    {"one field short", "9 (x) S 1 2 3 4 5 6 7 8 9 1 2\n", -EINVAL, 0},
    {"double space", "9 (x) S 1 2  3 4 5 6 7 8 9 10 1 2\n", -EINVAL, 0},
    {"tab between utime and stime", "9 (x) S 1 2 3 4 5 6 7 8 9 10 1\t2\n", -EINVAL, 0},
    {"negative utime", "9 (x) S 1 2 3 4 5 6 7 8 9 10 -1 2\n", -EINVAL, 0},
    {"utime not numeric", "9 (x) S 1 2 3 4 5 6 7 8 9 10 1a 2\n", -EINVAL, 0},
    {"junk after stime", "9 (x) S 1 2 3 4 5 6 7 8 9 10 1 2x\n", -EINVAL, 0},
    {"newline inside the fields", "9 (x) S 1 2 3\n4 5 6 7 8 9 10 1 2\n", -EINVAL, 0},
    {"nothing after ')'", "9 (x)", -EINVAL, 0},
    {"no space after ')'", "9 (x)S 1 2 3 4 5 6 7 8 9 10 1 2\n", -EINVAL, 0},
};

LG_TEST(test_cpu_parse_stat)
{
    for (size_t r = 0; r < LG_ARRAY_SIZE(stat_rows); r++) {
        const stat_row_t *row = &stat_rows[r];
        uint64_t ticks = 0xdead;
        int rc = lg_cpu_parse_stat(row->line, strlen(row->line), &ticks);
        CHECK_ROW(rc == row->rc, row->name);
        CHECK_ROW(ticks == (rc == 0 ? row->ticks : 0xdead), row->name);
    }
    /* A NUL inside a field, and the length (not a terminator) bounds the parse. */
    static const char nul[] = "9 (x) S 1 2 3 4 5 6 7\0 8 9 10 1 2\n";
    uint64_t ticks;
    CHECK_EQ_INT(lg_cpu_parse_stat(nul, sizeof(nul) - 1, &ticks), -EINVAL);
    static const char nul_comm[] = "9 (a\0b) S 1 2 3 4 5 6 7 8 9 10 1 2\n";
    CHECK_EQ_INT(lg_cpu_parse_stat(nul_comm, sizeof(nul_comm) - 1, &ticks), 0);
    CHECK_EQ_INT(ticks, 3);
    const char *cut = "9 (x) S 1 2 3 4 5 6 7 8 9 10 123 456\n";
    CHECK_EQ_INT(lg_cpu_parse_stat(cut, strlen(cut) - 3, &ticks), 0); /* "... 123 4" */
    CHECK_EQ_INT(ticks, 127);
}

LG_TEST(test_cpu_permille)
{
    CHECK_EQ_INT(lg_cpu_permille(25, 250, 100), 1000); /* 250 ms of CPU in 250 ms */
    CHECK_EQ_INT(lg_cpu_permille(10, 250, 100), 400);
    CHECK_EQ_INT(lg_cpu_permille(1, 250, 100), 40);
    CHECK_EQ_INT(lg_cpu_permille(0, 250, 100), 0);
    CHECK_EQ_INT(lg_cpu_permille(50, 250, 100), 1000); /* two cores' worth: clamped */
    CHECK_EQ_INT(lg_cpu_permille(UINT64_MAX, 250, 100), 1000);
    CHECK_EQ_INT(lg_cpu_permille(UINT64_MAX, LG_CPU_MS_DELTA_MAX, LG_CPU_CLK_TCK_MAX), 1000);
    CHECK_EQ_INT(lg_cpu_permille(1, LG_CPU_MS_DELTA_MAX, LG_CPU_CLK_TCK_MAX), 0);
    /* Just below the ceiling at the largest inputs: no overflow in ticks x 10^6. */
    uint64_t denom = (uint64_t)LG_CPU_CLK_TCK_MAX * LG_CPU_MS_DELTA_MAX;
    CHECK_EQ_INT(lg_cpu_permille(denom / 1000 - 1, LG_CPU_MS_DELTA_MAX, LG_CPU_CLK_TCK_MAX), 999);
    CHECK_EQ_INT(lg_cpu_permille(denom / 1000, LG_CPU_MS_DELTA_MAX, LG_CPU_CLK_TCK_MAX), 1000);
    /* Unknown: no interval, too long an interval, a nonsense tick rate. */
    CHECK_EQ_INT(lg_cpu_permille(10, 0, 100), 0);
    CHECK_EQ_INT(lg_cpu_permille(10, LG_CPU_MS_DELTA_MAX + 1, 100), 0);
    CHECK_EQ_INT(lg_cpu_permille(10, 250, 0), 0);
    CHECK_EQ_INT(lg_cpu_permille(10, 250, -1), 0);
    CHECK_EQ_INT(lg_cpu_permille(10, 250, LG_CPU_CLK_TCK_MAX + 1), 0);
}

int main(void)
{
    LG_RUN(test_build_invalid);
    LG_RUN(test_build_alloc_failure);
    LG_RUN(test_leastconn_rotation_on_ties);
    LG_RUN(test_leastconn_score);
    LG_RUN(test_leastconn_distribution);
    LG_RUN(test_roundrobin_nginx_sequence);
    LG_RUN(test_roundrobin_fresh_cursors_spread);
    LG_RUN(test_roundrobin_skips_excluded);
    LG_RUN(test_leastconn_weighted_idle);
    LG_RUN(test_random2_distribution);
    LG_RUN(test_random2_two_choices);
    LG_RUN(test_hash_table);
    LG_RUN(test_hash_distribution_and_stickiness);
    LG_RUN(test_hash_minimal_movement);
    LG_RUN(test_hash_excluded_next_candidate);
    LG_RUN(test_failover_never_repeats);
    LG_RUN(test_failover_at_max_upstreams);
    LG_RUN(test_ejection_lifecycle);
    LG_RUN(test_health_rules_edges);
    LG_RUN(test_probe_lease);
    LG_RUN(test_probe_claim_interleaving);
    LG_RUN(test_probe_given_back);
    LG_RUN(test_probe_gives_back_only_its_own_lease);
    LG_RUN(test_probe_lease_covers_the_attempt);
    LG_RUN(test_probe_race);
    LG_RUN(test_fail_open);
    LG_RUN(test_concurrent_active_counts);
    LG_RUN(test_ipkey);
    LG_RUN(test_siphash_vectors);
    LG_RUN(test_affinity_init);
    LG_RUN(test_affinity_ttl);
    LG_RUN(test_affinity_bound_and_lru);
    LG_RUN(test_affinity_config_swap);
    LG_RUN(test_affinity_threads);
    LG_RUN(test_cpu_parse_stat);
    LG_RUN(test_cpu_permille);
    LG_TEST_END();
}
