/*
 * test_limit.c — unit tests of the per-source-IP admission state (src/lg_limit.c).
 *
 * Time is simulated: every call passes now_ms explicitly. Covers:
 *   - sizes: the entry is one cache line (64 bytes), the key 19 bytes;
 *   - lg_limit_bucket_init: fixed-point values, rounding, bad and out-of-range arguments;
 *   - bucket arithmetic: exact admission counts over a window (10/s burst 5: 5 at t=0, then one
 *     per 100 ms), refill capped at burst, fractional rates and bursts, sustained per minute,
 *     both buckets debited together or not at all;
 *   - penalty box: set on excess, extended by excess while boxed (not by conforming attempts),
 *     expiry at exactly its deadline, no box without penalty_box_ms, a box dropped with it;
 *   - concurrency: up to max, exactly max + 1, release, release never underflows, the order
 *     box -> buckets -> concurrency;
 *   - keys: IPv4-mapped folding, /64 aggregation, listeners apart, bad arguments, RFC 5952 text
 *     (tables and random addresses against inet_ntop);
 *   - bounded memory: 1,000,000 distinct keys through max_tracked 10,000 (boxed and active
 *     entries survive eviction), bytes per tracked IP with 1,000,000 keys tracked;
 *   - untracked admissions when full of active entries, and when growth cannot allocate;
 *   - eviction past a run of busy entries longer than the clock-hand scan (random probes);
 *   - lg_limit_list for each selector (no mutation), lg_limit_sweep, lg_limit_stats;
 *   - a hammer: 2 threads admitting and releasing on shared keys (with a third sweeping and
 *     listing) end with every active count at 0.
 */
#include "lg_test.h"
#include "../../src/lg_cidr.c"
#include "../../src/lg_limit.c"

#include <arpa/inet.h>
#include <stdlib.h>

/* ------------------------------------------------------------------------------------------ */
/* Helpers.                                                                                   */

static lg_ipkey_t key4(uint8_t listener, uint8_t a, uint8_t b, uint8_t c, uint8_t d)
{
    uint8_t addr[4] = {a, b, c, d};
    lg_ipkey_t k;
    if (lg_ipkey_make(&k, listener, LG_CIDR_V4, addr, 128) != 0) abort();
    return k;
}

static lg_ipkey_t key_text(uint8_t listener, const char *ip, unsigned prefix)
{
    uint8_t family, addr[16];
    lg_ipkey_t k;
    if (lg_ip_parse(ip, strlen(ip), &family, addr) != 0) abort();
    if (lg_ipkey_make(&k, listener, family, addr, prefix) != 0) abort();
    return k;
}

/* Distinct IPv4 key number i (i < 2^32). */
static lg_ipkey_t key_n(uint32_t i)
{
    return key4(0, (uint8_t)(i >> 24), (uint8_t)(i >> 16), (uint8_t)(i >> 8), (uint8_t)i);
}

static lg_limit_rules_t rules(double cps, double cps_burst, double cpm, double cpm_burst,
                              uint32_t max_concurrent, uint32_t box_ms)
{
    lg_limit_rules_t r;
    memset(&r, 0, sizeof(r));
    if (cps > 0 && lg_limit_bucket_init(&r.rate, cps, 1000, cps_burst) != 0) abort();
    if (cpm > 0 && lg_limit_bucket_init(&r.sustained, cpm, 60000, cpm_burst) != 0) abort();
    r.max_concurrent = max_concurrent;
    r.penalty_box_ms = box_ms;
    return r;
}

/* Admit and, when admitted, release at once: a connection that came and went. */
static int knock(lg_limit_t *t, const lg_ipkey_t *k, const lg_limit_rules_t *r, uint64_t now)
{
    lg_limit_ticket_t ticket;
    int v = lg_limit_admit(t, k, r, now, &ticket);
    if (ticket.tracked && v != LG_LIMIT_OK) abort(); /* only an admission is counted */
    lg_limit_release(t, k, &ticket);
    return v;
}

/* The entry of k, or NULL (white box: the test includes lg_limit.c). */
static limit_entry_t *entry_of(lg_limit_t *t, const lg_ipkey_t *k)
{
    uint64_t h = key_hash(t, k);
    lg_limit_shard_t *sh = shard_of(t, h);
    pthread_mutex_lock(&sh->lock);
    limit_entry_t *e = shard_find(sh, k, (uint32_t)h);
    pthread_mutex_unlock(&sh->lock);
    return e;
}

static size_t tracked(lg_limit_t *t)
{
    lg_limit_stats_t st;
    lg_limit_stats(t, &st);
    return st.tracked;
}

/* Every shard's table is consistent: each entry in exactly one slot found from its hash, the
 * index at most half full, counts within bounds. */
static bool table_ok(lg_limit_t *t)
{
    for (size_t s = 0; s < t->n_shards; s++) {
        lg_limit_shard_t *sh = &t->shards[s];
        if (sh->n > sh->pool_cap || sh->pool_cap > sh->share) return false;
        if ((uintptr_t)sh->pool % LIMIT_ALIGN != 0) return false; /* entries on cache lines */
        if (sh->pool_cap > 0 && (sh->slots == NULL || sh->slot_mask + 1 < 2 * sh->pool_cap)) {
            return false;
        }
        size_t used = 0;
        for (size_t i = 0; sh->slots && i <= sh->slot_mask; i++) {
            uint32_t v = sh->slots[i];
            if (v == 0) continue;
            used++;
            size_t j = (v & LIMIT_IDX_MASK) - 1;
            if (j >= sh->n || v >> LIMIT_IDX_BITS != sh->pool[j].hash >> LIMIT_IDX_BITS)
                return false;
        }
        if (used != sh->n) return false;
        for (size_t j = 0; j < sh->n; j++) {
            limit_entry_t *e = &sh->pool[j];
            uint64_t h = key_hash(t, &e->key);
            if (shard_of(t, h) != sh || e->hash != (uint32_t)h) return false;
            if (shard_find(sh, &e->key, e->hash) != e) return false;
        }
    }
    return true;
}

/* ------------------------------------------------------------------------------------------ */
/* Sizes and buckets.                                                                         */

LG_TEST(sizes)
{
    /* State per tracked IP: one 64-byte entry (a cache line) plus 4-8 bytes of index. */
    CHECK_EQ_INT(sizeof(limit_entry_t), 64);
    CHECK_EQ_INT(sizeof(lg_ipkey_t), 19);
    CHECK_EQ_INT(sizeof(lg_limit_shard_t) % LIMIT_ALIGN, 0);
}

LG_TEST(bucket_init_values)
{
    lg_limit_bucket_t b;
    CHECK_EQ_INT(lg_limit_bucket_init(&b, 10, 1000, 5), 0);
    CHECK(b.interval_ns == 100000000 && b.tolerance_ns == 400000000);
    CHECK_EQ_INT(lg_limit_bucket_init(&b, 0.5, 1000, 1), 0);
    CHECK(b.interval_ns == 2000000000 && b.tolerance_ns == 0);
    CHECK_EQ_INT(lg_limit_bucket_init(&b, 300, 60000, 300), 0);
    CHECK(b.interval_ns == 200000000 && b.tolerance_ns == UINT64_C(299) * 200000000);
    /* 3 per second: T = 333,333,333.33 ns, rounded to nearest. */
    CHECK_EQ_INT(lg_limit_bucket_init(&b, 3, 1000, 1.5), 0);
    CHECK(b.interval_ns == 333333333 && b.tolerance_ns == 166666667);
    /* Above 10^9 per second: one ns per token, the least there is. */
    CHECK_EQ_INT(lg_limit_bucket_init(&b, 5e9, 1000, 1), 0);
    CHECK(b.interval_ns == 1);

    static const struct {
        double count;
        uint32_t period;
        double burst;
        int rc;
    } bad[] = {
        {0, 1000, 1, -EINVAL},        {-1, 1000, 1, -EINVAL},       {NAN, 1000, 1, -EINVAL},
        {INFINITY, 1000, 1, -EINVAL}, {1, 1000, 0.5, -EINVAL},      {1, 1000, 0, -EINVAL},
        {1, 1000, NAN, -EINVAL},      {1, 1000, INFINITY, -EINVAL}, {1, 0, 1, -EINVAL},
        {1e-300, 1000, 1, -ERANGE},   {1e-9, 60000, 1e9, -ERANGE},
    };
    for (size_t i = 0; i < LG_ARRAY_SIZE(bad); i++) {
        memset(&b, 0x5a, sizeof(b));
        CHECK_EQ_INT(lg_limit_bucket_init(&b, bad[i].count, bad[i].period, bad[i].burst),
                     bad[i].rc);
        CHECK(b.interval_ns == 0 && b.tolerance_ns == 0);
    }
    /* Just inside the window limit. */
    CHECK_EQ_INT(lg_limit_bucket_init(&b, 1e-9, 1000, 4), 0);
}

LG_TEST(exact_counts_over_a_window)
{
    lg_limit_t t;
    CHECK_EQ_INT(lg_limit_init(&t, 100), 0);
    lg_limit_rules_t r = rules(10, 5, 0, 0, 0, 0);
    lg_ipkey_t k = key4(0, 192, 0, 2, 1);
    /* t = 0: the burst of 5, then nothing. */
    for (int i = 0; i < 5; i++)
        CHECK_EQ_INT(knock(&t, &k, &r, 0), LG_LIMIT_OK);
    CHECK_EQ_INT(knock(&t, &k, &r, 0), LG_LIMIT_RATE);
    CHECK_EQ_INT(knock(&t, &k, &r, 99), LG_LIMIT_RATE);
    CHECK_EQ_INT(knock(&t, &k, &r, 100), LG_LIMIT_OK);
    CHECK_EQ_INT(knock(&t, &k, &r, 150), LG_LIMIT_RATE);
    CHECK_EQ_INT(knock(&t, &k, &r, 200), LG_LIMIT_OK);
    /* An attempt every ms for 10 s from a fresh key: 5 + one per 100 ms (at 100..9900). */
    lg_ipkey_t k2 = key4(0, 192, 0, 2, 2);
    int ok = 0;
    for (uint64_t now = 0; now < 10000; now++)
        ok += knock(&t, &k2, &r, now) == LG_LIMIT_OK;
    CHECK_EQ_INT(ok, 5 + 99);
    lg_limit_destroy(&t);
}

LG_TEST(refill_capped_at_burst)
{
    lg_limit_t t;
    CHECK_EQ_INT(lg_limit_init(&t, 100), 0);
    lg_limit_rules_t r = rules(10, 5, 0, 0, 0, 0);
    lg_ipkey_t k = key4(0, 192, 0, 2, 1);
    CHECK_EQ_INT(knock(&t, &k, &r, 0), LG_LIMIT_OK);
    /* An hour idle refills to 5, not to 36,000. */
    uint64_t now = 3600 * 1000;
    for (int i = 0; i < 5; i++)
        CHECK_EQ_INT(knock(&t, &k, &r, now), LG_LIMIT_OK);
    CHECK_EQ_INT(knock(&t, &k, &r, now), LG_LIMIT_RATE);
    /* Partial refill: 250 ms gives 2 tokens (2.5 rounded down). */
    now += 250;
    CHECK_EQ_INT(knock(&t, &k, &r, now), LG_LIMIT_OK);
    CHECK_EQ_INT(knock(&t, &k, &r, now), LG_LIMIT_OK);
    CHECK_EQ_INT(knock(&t, &k, &r, now), LG_LIMIT_RATE);
    lg_limit_destroy(&t);
}

LG_TEST(fractional_rates_and_bursts)
{
    lg_limit_t t;
    CHECK_EQ_INT(lg_limit_init(&t, 100), 0);
    /* 0.5 per second, burst 1: one every 2 s. */
    lg_limit_rules_t r = rules(0.5, 1, 0, 0, 0, 0);
    lg_ipkey_t k = key4(0, 192, 0, 2, 1);
    CHECK_EQ_INT(knock(&t, &k, &r, 0), LG_LIMIT_OK);
    CHECK_EQ_INT(knock(&t, &k, &r, 1000), LG_LIMIT_RATE);
    CHECK_EQ_INT(knock(&t, &k, &r, 1999), LG_LIMIT_RATE);
    CHECK_EQ_INT(knock(&t, &k, &r, 2000), LG_LIMIT_OK);
    /* 1 per second, burst 1.5: after one, half a token is left, and one more comes 500 ms
     * later. */
    r = rules(1, 1.5, 0, 0, 0, 0);
    lg_ipkey_t k2 = key4(0, 192, 0, 2, 2);
    CHECK_EQ_INT(knock(&t, &k2, &r, 0), LG_LIMIT_OK);
    CHECK_EQ_INT(knock(&t, &k2, &r, 0), LG_LIMIT_RATE);
    CHECK_EQ_INT(knock(&t, &k2, &r, 499), LG_LIMIT_RATE);
    CHECK_EQ_INT(knock(&t, &k2, &r, 500), LG_LIMIT_OK);
    /* 2.5 per second over 10 s at 1 attempt/ms: burst 1 + 25 - 1 = 25 in [0, 10000). */
    r = rules(2.5, 1, 0, 0, 0, 0);
    lg_ipkey_t k3 = key4(0, 192, 0, 2, 3);
    int ok = 0;
    for (uint64_t now = 0; now < 10000; now++)
        ok += knock(&t, &k3, &r, now) == LG_LIMIT_OK;
    CHECK_EQ_INT(ok, 25);
    lg_limit_destroy(&t);
}

LG_TEST(sustained_per_minute)
{
    lg_limit_t t;
    CHECK_EQ_INT(lg_limit_init(&t, 100), 0);
    /* 6 per minute, burst 2: one every 10 s after the first two. */
    lg_limit_rules_t r = rules(0, 0, 6, 2, 0, 0);
    lg_ipkey_t k = key4(0, 192, 0, 2, 1);
    CHECK_EQ_INT(knock(&t, &k, &r, 0), LG_LIMIT_OK);
    CHECK_EQ_INT(knock(&t, &k, &r, 0), LG_LIMIT_OK);
    CHECK_EQ_INT(knock(&t, &k, &r, 0), LG_LIMIT_RATE);
    CHECK_EQ_INT(knock(&t, &k, &r, 9999), LG_LIMIT_RATE);
    CHECK_EQ_INT(knock(&t, &k, &r, 10000), LG_LIMIT_OK);
    CHECK_EQ_INT(knock(&t, &k, &r, 15000), LG_LIMIT_RATE);
    CHECK_EQ_INT(knock(&t, &k, &r, 20000), LG_LIMIT_OK);
    /* Over an hour at one attempt per second: 2 + 359. */
    lg_ipkey_t k2 = key4(0, 192, 0, 2, 2);
    int ok = 0;
    for (uint64_t now = 0; now < 3600 * 1000; now += 1000)
        ok += knock(&t, &k2, &r, now) == LG_LIMIT_OK;
    CHECK_EQ_INT(ok, 2 + 359);

    /* symphony §3.2: sustained 100/min burst 3 with 1000/s: the 4th quick one is refused. */
    r = rules(1000, 1000, 100, 3, 0, 0);
    lg_ipkey_t k3 = key4(0, 192, 0, 2, 3);
    for (int i = 0; i < 3; i++)
        CHECK_EQ_INT(knock(&t, &k3, &r, 5), LG_LIMIT_OK);
    CHECK_EQ_INT(knock(&t, &k3, &r, 5), LG_LIMIT_RATE);
    lg_limit_destroy(&t);
}

LG_TEST(buckets_debited_together)
{
    lg_limit_t t;
    CHECK_EQ_INT(lg_limit_init(&t, 100), 0);
    /* 1/s burst 1 and 2/min burst 1: at t = 1 s the per-second bucket has a token but the
     * sustained one has not; the refusal must not take the per-second token. */
    lg_limit_rules_t r = rules(1, 1, 2, 1, 0, 0);
    lg_ipkey_t k = key4(0, 192, 0, 2, 1);
    CHECK_EQ_INT(knock(&t, &k, &r, 0), LG_LIMIT_OK);
    limit_entry_t *e = entry_of(&t, &k);
    CHECK(e != NULL);
    CHECK(e->tat_rate == UINT64_C(1000000000) && e->tat_sustained == UINT64_C(30000000000));
    CHECK_EQ_INT(knock(&t, &k, &r, 1000), LG_LIMIT_RATE);
    CHECK(e->tat_rate == UINT64_C(1000000000)); /* untouched */
    CHECK_EQ_INT(knock(&t, &k, &r, 30000), LG_LIMIT_OK);
    /* Turning a bucket off clears its debt (it must not keep the entry from being idle). */
    lg_limit_rules_t only_rate = rules(1, 1, 0, 0, 0, 0);
    CHECK_EQ_INT(knock(&t, &k, &only_rate, 31000), LG_LIMIT_OK);
    CHECK(e->tat_sustained == 0);
    lg_limit_destroy(&t);
}

/* ------------------------------------------------------------------------------------------ */
/* Penalty box and concurrency.                                                               */

LG_TEST(penalty_box_set_extend_expire)
{
    lg_limit_t t;
    CHECK_EQ_INT(lg_limit_init(&t, 100), 0);
    /* symphony §3.2: cps 2 burst 1, durationMs 300: rate_limited, then penalty_boxed; after
     * 500 ms quiet, admitted again. */
    lg_limit_rules_t r = rules(2, 1, 0, 0, 0, 300);
    lg_ipkey_t k = key4(0, 127, 0, 0, 1);
    CHECK_EQ_INT(knock(&t, &k, &r, 0), LG_LIMIT_OK);
    CHECK_EQ_INT(knock(&t, &k, &r, 10), LG_LIMIT_RATE);  /* boxed until 310 */
    CHECK_EQ_INT(knock(&t, &k, &r, 20), LG_LIMIT_BOXED); /* excess: box until 320 */
    CHECK_EQ_INT(knock(&t, &k, &r, 520), LG_LIMIT_OK);

    /* 10/s burst 1, box 1000 ms. */
    r = rules(10, 1, 0, 0, 0, 1000);
    lg_ipkey_t k2 = key4(0, 127, 0, 0, 2);
    limit_entry_t *e;
    CHECK_EQ_INT(knock(&t, &k2, &r, 0), LG_LIMIT_OK);   /* TAT 100 */
    CHECK_EQ_INT(knock(&t, &k2, &r, 1), LG_LIMIT_RATE); /* box until 1001 */
    CHECK((e = entry_of(&t, &k2)) != NULL && e->box_until == 1001 * NS_PER_MS);
    CHECK_EQ_INT(knock(&t, &k2, &r, 50), LG_LIMIT_BOXED); /* no token: until 1050 */
    CHECK(e->box_until == 1050 * NS_PER_MS);
    CHECK_EQ_INT(knock(&t, &k2, &r, 150), LG_LIMIT_BOXED); /* a token: debited, no extension */
    CHECK(e->box_until == 1050 * NS_PER_MS && e->tat_rate == 250 * NS_PER_MS);
    CHECK_EQ_INT(knock(&t, &k2, &r, 1049), LG_LIMIT_BOXED); /* a token again: TAT 1149 */
    CHECK(e->box_until == 1050 * NS_PER_MS);
    CHECK_EQ_INT(knock(&t, &k2, &r, 1050), LG_LIMIT_RATE); /* box over; no token: reboxed */
    CHECK(e->box_until == 2050 * NS_PER_MS);
    CHECK_EQ_INT(knock(&t, &k2, &r, 2049), LG_LIMIT_BOXED); /* token at 2049: debited */
    CHECK_EQ_INT(knock(&t, &k2, &r, 2050), LG_LIMIT_RATE);  /* expired exactly at 2050 */
    CHECK_EQ_INT(knock(&t, &k2, &r, 4000), LG_LIMIT_OK);

    /* No box configured: excess is rate_limited only, and a box left by earlier rules is
     * dropped with them. */
    lg_limit_rules_t no_box = rules(10, 1, 0, 0, 0, 0);
    CHECK_EQ_INT(knock(&t, &k2, &r, 4001), LG_LIMIT_RATE); /* boxed until 5001 */
    CHECK_EQ_INT(knock(&t, &k2, &no_box, 4200), LG_LIMIT_OK);
    CHECK(e->box_until == 0);
    CHECK_EQ_INT(knock(&t, &k2, &no_box, 4201), LG_LIMIT_RATE);
    CHECK_EQ_INT(knock(&t, &k2, &no_box, 4202), LG_LIMIT_RATE);
    CHECK(e->box_until == 0);
    lg_limit_destroy(&t);
}

LG_TEST(concurrency_to_max_and_release)
{
    lg_limit_t t;
    CHECK_EQ_INT(lg_limit_init(&t, 100), 0);
    lg_limit_rules_t r = rules(0, 0, 0, 0, 3, 0);
    lg_ipkey_t k = key4(0, 10, 0, 0, 1);
    lg_limit_ticket_t tk[4];
    for (int i = 0; i < 3; i++) {
        CHECK_EQ_INT(lg_limit_admit(&t, &k, &r, 0, &tk[i]), LG_LIMIT_OK);
        CHECK(tk[i].tracked);
    }
    CHECK_EQ_INT(lg_limit_admit(&t, &k, &r, 0, &tk[3]), LG_LIMIT_CONCURRENCY); /* max + 1 */
    CHECK(!tk[3].tracked);
    lg_limit_release(&t, &k, &tk[3]); /* nothing was counted: nothing to undo */
    limit_entry_t *e = entry_of(&t, &k);
    CHECK(e != NULL && e->active == 3);
    lg_limit_release(&t, &k, &tk[1]);
    CHECK_EQ_INT(e->active, 2);
    CHECK_EQ_INT(lg_limit_admit(&t, &k, &r, 0, &tk[1]), LG_LIMIT_OK);
    for (int i = 0; i < 3; i++)
        lg_limit_release(&t, &k, &tk[i]);
    CHECK_EQ_INT(e->active, 0);
    /* A ticket released twice (a caller bug) does not take active below 0. */
    lg_limit_release(&t, &k, &tk[0]);
    CHECK_EQ_INT(e->active, 0);
    /* Unlimited: 0. */
    lg_limit_rules_t unlimited = rules(0, 0, 0, 0, 0, 0);
    for (int i = 0; i < 1000; i++)
        CHECK_EQ_INT(lg_limit_admit(&t, &k, &unlimited, 0, &tk[0]), LG_LIMIT_OK);
    CHECK_EQ_INT(e->active, 1000);
    lg_limit_destroy(&t);
}

LG_TEST(order_box_then_rate_then_concurrency)
{
    lg_limit_t t;
    CHECK_EQ_INT(lg_limit_init(&t, 100), 0);
    lg_limit_rules_t r = rules(10, 2, 0, 0, 1, 1000);
    lg_ipkey_t k = key4(0, 10, 0, 0, 1);
    lg_limit_ticket_t a, b;
    CHECK_EQ_INT(lg_limit_admit(&t, &k, &r, 0, &a), LG_LIMIT_OK);
    /* The second has a token (burst 2) but the IP is at its max: concurrency, and the token is
     * spent (buckets come first). */
    CHECK_EQ_INT(lg_limit_admit(&t, &k, &r, 0, &b), LG_LIMIT_CONCURRENCY);
    /* The third has no token: rate (and the box), not concurrency. */
    CHECK_EQ_INT(lg_limit_admit(&t, &k, &r, 0, &b), LG_LIMIT_RATE);
    /* Boxed wins over everything. */
    lg_limit_release(&t, &k, &a);
    CHECK_EQ_INT(lg_limit_admit(&t, &k, &r, 500, &b), LG_LIMIT_BOXED);
    CHECK(!b.tracked);
    lg_limit_destroy(&t);
}

/* ------------------------------------------------------------------------------------------ */
/* Keys.                                                                                      */

LG_TEST(key_folding)
{
    lg_limit_t t;
    CHECK_EQ_INT(lg_limit_init(&t, 100), 0);
    lg_ipkey_t plain = key_text(0, "1.2.3.4", 64), mapped = key_text(0, "::ffff:1.2.3.4", 64);
    CHECK(memcmp(&plain, &mapped, sizeof(plain)) == 0);
    CHECK(plain.family == 4 && plain.prefix == 32);
    /* Not mapped: IPv4-compatible and NAT64 stay IPv6. */
    CHECK(key_text(0, "::1.2.3.4", 128).family == 6);
    CHECK(key_text(0, "64:ff9b::1.2.3.4", 128).family == 6);

    /* /64: two addresses of one /64 share state; the next /64 does not. */
    lg_ipkey_t a = key_text(0, "2001:db8:1:2:aaaa::1", 64);
    lg_ipkey_t b = key_text(0, "2001:db8:1:2:ffff:ffff:ffff:ffff", 64);
    lg_ipkey_t c = key_text(0, "2001:db8:1:3::1", 64);
    CHECK(memcmp(&a, &b, sizeof(a)) == 0 && memcmp(&a, &c, sizeof(a)) != 0);
    CHECK(a.prefix == 64 && a.addr[8] == 0 && a.addr[15] == 0);
    lg_limit_rules_t r = rules(1, 1, 0, 0, 0, 0);
    CHECK_EQ_INT(knock(&t, &a, &r, 0), LG_LIMIT_OK);
    CHECK_EQ_INT(knock(&t, &b, &r, 0), LG_LIMIT_RATE);
    CHECK_EQ_INT(knock(&t, &c, &r, 0), LG_LIMIT_OK);
    /* /128 keys them apart. */
    lg_ipkey_t a128 = key_text(0, "2001:db8:1:2:aaaa::1", 128);
    lg_ipkey_t b128 = key_text(0, "2001:db8:1:2:ffff:ffff:ffff:ffff", 128);
    CHECK_EQ_INT(knock(&t, &a128, &r, 0), LG_LIMIT_OK);
    CHECK_EQ_INT(knock(&t, &b128, &r, 0), LG_LIMIT_OK);
    /* Odd prefixes mask within a byte. */
    lg_ipkey_t odd = key_text(0, "ffff:ffff::", 17);
    CHECK(odd.addr[0] == 0xff && odd.addr[1] == 0xff && odd.addr[2] == 0x80 && odd.addr[3] == 0);
    lg_ipkey_t one = key_text(0, "ffff::", 1);
    CHECK(one.addr[0] == 0x80 && one.addr[1] == 0);
    /* Listeners keep their own state. */
    lg_ipkey_t l0 = key4(0, 9, 9, 9, 9), l1 = key4(1, 9, 9, 9, 9);
    CHECK_EQ_INT(knock(&t, &l0, &r, 0), LG_LIMIT_OK);
    CHECK_EQ_INT(knock(&t, &l1, &r, 0), LG_LIMIT_OK);
    CHECK_EQ_INT(knock(&t, &l0, &r, 0), LG_LIMIT_RATE);

    /* Bad arguments. */
    uint8_t addr[16] = {1, 2, 3, 4};
    lg_ipkey_t k;
    memset(&k, 0x55, sizeof(k));
    CHECK_EQ_INT(lg_ipkey_make(&k, 0, 5, addr, 64), -EINVAL);
    CHECK(k.family == 0 && k.addr[0] == 0);
    CHECK_EQ_INT(lg_ipkey_make(&k, 0, 6, addr, 0), -EINVAL);
    CHECK_EQ_INT(lg_ipkey_make(&k, 0, 6, addr, 129), -EINVAL);
    CHECK_EQ_INT(lg_ipkey_make(&k, 0, 4, addr, 0), -EINVAL);
    /* A malformed key is refused by admit, and release ignores it. */
    lg_limit_ticket_t tk = {true};
    CHECK_EQ_INT(lg_limit_admit(&t, &k, &r, 0, &tk), -EINVAL);
    CHECK(!tk.tracked);
    k.family = 4;
    k.prefix = 31;
    CHECK_EQ_INT(lg_limit_admit(&t, &k, &r, 0, &tk), -EINVAL);
    lg_limit_destroy(&t);
}

LG_TEST(key_format)
{
    static const struct {
        const char *ip;
        unsigned prefix;
        const char *text;
    } rows[] = {
        {"192.0.2.1", 64, "192.0.2.1"},
        {"0.0.0.0", 64, "0.0.0.0"},
        {"255.255.255.255", 64, "255.255.255.255"},
        {"::ffff:10.1.2.3", 64, "10.1.2.3"},
        {"2001:db8::1", 128, "2001:db8::1"},
        {"2001:db8:0:0:1:0:0:1", 128, "2001:db8::1:0:0:1"},    /* RFC 5952 §4.2.3: first run */
        {"2001:0:0:1:0:0:0:1", 128, "2001:0:0:1::1"},          /* the longest run */
        {"2001:db8:0:1:1:1:1:1", 128, "2001:db8:0:1:1:1:1:1"}, /* §4.2.2: one 0 group stays */
        {"2001:DB8::ABCD", 128, "2001:db8::abcd"},             /* §4.3 lower case */
        {"2001:0db8::0001", 128, "2001:db8::1"},               /* §4.1 no leading zeros */
        {"::", 128, "::"},
        {"::1", 128, "::1"},
        {"1::", 128, "1::"},
        {"1:0:0:0:0:0:0:0", 128, "1::"},
        {"0:0:0:0:0:0:0:1", 128, "::1"},
        {"1:2:3:4:5:6:7:8", 128, "1:2:3:4:5:6:7:8"},
        {"2001:db8:1:2:3:4:5:6", 64, "2001:db8:1:2::/64"},
        {"2001:db8:1:2:3:4:5:6", 48, "2001:db8:1::/48"},
        {"2001:db8:1:2:3:4:5:6", 1, "::/1"},
        {"ffff:ffff:ffff:ffff:ffff:ffff:ffff:ffff", 127,
         "ffff:ffff:ffff:ffff:ffff:ffff:ffff:fffe/127"},
    };
    char out[LG_IPKEY_TEXT_MAX];
    for (size_t i = 0; i < LG_ARRAY_SIZE(rows); i++) {
        lg_ipkey_t k = key_text(3, rows[i].ip, rows[i].prefix);
        int n = lg_ipkey_format(&k, out, sizeof(out));
        CHECK_ROW(n == (int)strlen(rows[i].text) && strcmp(out, rows[i].text) == 0, rows[i].text);
        /* Exactly fitting works; one byte less is -E2BIG and "". */
        CHECK_ROW(lg_ipkey_format(&k, out, (size_t)n + 1) == n, rows[i].text);
        CHECK_ROW(lg_ipkey_format(&k, out, (size_t)n) == -E2BIG && out[0] == '\0', rows[i].text);
    }
    /* The longest text fits LG_IPKEY_TEXT_MAX exactly. */
    CHECK_EQ_INT(strlen(rows[LG_ARRAY_SIZE(rows) - 1].text) + 1, LG_IPKEY_TEXT_MAX);
    lg_ipkey_t bad;
    memset(&bad, 0, sizeof(bad));
    CHECK(lg_ipkey_format(&bad, out, sizeof(out)) == -EINVAL && out[0] == '\0');
    CHECK(lg_ipkey_format(NULL, out, sizeof(out)) == -EINVAL);
    CHECK(lg_ipkey_format(&bad, NULL, 10) == -EINVAL);
    lg_ipkey_t k = key4(0, 1, 2, 3, 4);
    CHECK_EQ_INT(lg_ipkey_format(&k, out, 0), -E2BIG);
}

LG_TEST(key_format_vs_inet_ntop)
{
    /* Random /128 addresses with runs of zero groups; glibc's inet_ntop follows RFC 5952 except
     * that it writes ::a.b.c.d and ::ffff:a.b.c.d forms (first 5 or 6 groups zero), skipped. */
    srand(4242);
    for (int i = 0; i < 20000; i++) {
        uint8_t a[16];
        for (int g = 0; g < 8; g++) {
            unsigned v = rand() % 3 ? 0 : (unsigned)rand() & 0xffff;
            if (rand() % 4 == 0) v = (unsigned)rand() % 16;
            a[2 * g] = (uint8_t)(v >> 8);
            a[2 * g + 1] = (uint8_t)v;
        }
        bool first5_zero = true;
        for (int b = 0; b < 10; b++)
            first5_zero = first5_zero && a[b] == 0;
        if (first5_zero) continue;
        lg_ipkey_t k;
        CHECK(lg_ipkey_make(&k, 0, 6, a, 128) == 0);
        char want[INET6_ADDRSTRLEN], got[LG_IPKEY_TEXT_MAX];
        CHECK(inet_ntop(AF_INET6, a, want, sizeof(want)) != NULL);
        CHECK(lg_ipkey_format(&k, got, sizeof(got)) > 0);
        CHECK_ROW(strcmp(got, want) == 0, want);
    }
}

/* ------------------------------------------------------------------------------------------ */
/* Bounded memory, eviction, untracked.                                                       */

LG_TEST(init_and_shards)
{
    lg_limit_t t;
    CHECK_EQ_INT(lg_limit_init(&t, 0), -EINVAL);
    CHECK_EQ_INT(lg_limit_init(&t, LG_LIMIT_MAX_TRACKED + 1), -EINVAL);
    lg_alloc_fail_after(0);
    CHECK_EQ_INT(lg_limit_init(&t, 1000), -ENOMEM);
    lg_alloc_fail_after(-1);
    lg_limit_destroy(&t); /* the failed init left a zeroed table */
    static const struct {
        size_t max, shards;
    } rows[] = {{1, 1},
                {100, 1},
                {2047, 1},
                {2048, 2},
                {10000, 8},
                {1000000, 64},
                {LG_LIMIT_MAX_TRACKED, 64}};
    for (size_t i = 0; i < LG_ARRAY_SIZE(rows); i++) {
        CHECK_EQ_INT(lg_limit_init(&t, rows[i].max), 0);
        CHECK_EQ_INT(t.n_shards, rows[i].shards);
        CHECK_EQ_INT((uintptr_t)t.shards % LIMIT_ALIGN, 0);
        size_t sum = 0;
        for (size_t s = 0; s < t.n_shards; s++)
            sum += t.shards[s].share;
        CHECK_EQ_INT(sum, rows[i].max);
        lg_limit_stats_t st;
        lg_limit_stats(&t, &st);
        CHECK(st.capacity == rows[i].max && st.tracked == 0 && st.bytes > 0);
        lg_limit_destroy(&t);
    }
}

LG_TEST(eviction_keeps_boxed_and_active_and_bounds_memory)
{
    lg_limit_t t;
    CHECK_EQ_INT(lg_limit_init(&t, 10000), 0);
    lg_limit_rules_t r = rules(10, 5, 0, 0, 0, 60000);
    /* 50 IPs boxed (excess at t=0, box for 60 s) and 50 with an open connection. */
    static lg_limit_ticket_t held[50];
    for (uint32_t i = 0; i < 50; i++) {
        lg_ipkey_t kb = key4(1, 198, 51, 100, (uint8_t)i);
        for (int j = 0; j < 6; j++)
            knock(&t, &kb, &r, 0);
        lg_ipkey_t ka = key4(1, 203, 0, 113, (uint8_t)i);
        CHECK_EQ_INT(lg_limit_admit(&t, &ka, &r, 0, &held[i]), LG_LIMIT_OK);
    }
    /* 1,000,000 distinct keys, one per 20 us of simulated time (so an entry is idle 100 ms
     * after its admission: its bucket is full again). */
    lg_limit_stats_t st;
    size_t max_bytes = 0;
    for (uint32_t i = 0; i < 1000000; i++) {
        lg_ipkey_t k = key_n(0x0a000000u + i);
        uint64_t now = i / 50;
        CHECK_EQ_INT(knock(&t, &k, &r, now), LG_LIMIT_OK);
        if (i % 10000 == 0) {
            lg_limit_stats(&t, &st);
            CHECK(st.tracked <= 10000);
            if (st.bytes > max_bytes) max_bytes = st.bytes;
        }
    }
    lg_limit_stats(&t, &st);
    CHECK(st.tracked <= 10000 && st.tracked > 9000);
    CHECK(st.evictions > 900000);
    /* Bound: 10,000 entries of 64 bytes plus indexes of at most 4 x share slots, plus shards. */
    CHECK(max_bytes <= 10000 * 64 + 4 * 10000 * 4 + 8 * sizeof(lg_limit_shard_t) + 64);
    /* The boxed and active IPs are all still there (before their box ends at 60 s). */
    for (uint32_t i = 0; i < 50; i++) {
        lg_ipkey_t kb = key4(1, 198, 51, 100, (uint8_t)i), ka = key4(1, 203, 0, 113, (uint8_t)i);
        limit_entry_t *eb = entry_of(&t, &kb), *ea = entry_of(&t, &ka);
        CHECK(eb != NULL && eb->box_until == 60000 * NS_PER_MS);
        CHECK(ea != NULL && ea->active == 1);
        lg_limit_release(&t, &ka, &held[i]);
    }
    CHECK(table_ok(&t));
    CHECK_EQ_INT(st.untracked, 0);
    lg_limit_destroy(&t);
}

LG_TEST(untracked_when_full_of_active_entries)
{
    lg_limit_t t;
    CHECK_EQ_INT(lg_limit_init(&t, 100), 0); /* one shard of 100 */
    lg_limit_rules_t r = rules(0, 0, 0, 0, 0, 0);
    static lg_limit_ticket_t tk[101];
    for (uint32_t i = 0; i < 100; i++) {
        lg_ipkey_t k = key_n(i);
        CHECK_EQ_INT(lg_limit_admit(&t, &k, &r, 0, &tk[i]), LG_LIMIT_OK);
        CHECK(tk[i].tracked);
    }
    lg_ipkey_t extra = key_n(100);
    CHECK_EQ_INT(lg_limit_admit(&t, &extra, &r, 1000, &tk[100]), LG_LIMIT_OK);
    CHECK(!tk[100].tracked);
    lg_limit_release(&t, &extra, &tk[100]); /* no-op */
    lg_limit_stats_t st;
    lg_limit_stats(&t, &st);
    CHECK(st.tracked == 100 && st.untracked == 1 && st.evictions == 0);
    CHECK(entry_of(&t, &extra) == NULL);
    /* Once they are gone, the next new key evicts an idle entry. */
    for (uint32_t i = 0; i < 100; i++) {
        lg_ipkey_t k = key_n(i);
        lg_limit_release(&t, &k, &tk[i]);
    }
    CHECK_EQ_INT(lg_limit_admit(&t, &extra, &r, 1000, &tk[100]), LG_LIMIT_OK);
    CHECK(tk[100].tracked);
    lg_limit_stats(&t, &st);
    CHECK(st.tracked == 100 && st.untracked == 1 && st.evictions == 1);
    CHECK(table_ok(&t));
    lg_limit_destroy(&t);
}

/*
 * Pins the eviction fix: a mostly idle table whose clock hand sits in a run of busy entries
 * longer than LG_LIMIT_EVICT_PROBE. The scan alone finds nothing there and a new source went
 * untracked although 95 % of the table was idle; the random probes after the scan find an idle
 * entry. Many new sources in a row, each must be tracked.
 */
LG_TEST(evict_past_a_busy_run)
{
    lg_limit_t t;
    CHECK_EQ_INT(lg_limit_init(&t, 2000), 0); /* one shard of 2000 */
    CHECK_EQ_INT(t.n_shards, 1);
    lg_limit_rules_t r = rules(0, 0, 0, 0, 0, 0);
    static lg_limit_ticket_t busy[100];
    /* Pool indexes 0..99: active; 100..1999: came and went (idle). */
    for (uint32_t i = 0; i < 100; i++) {
        lg_ipkey_t k = key_n(i);
        CHECK_EQ_INT(lg_limit_admit(&t, &k, &r, 0, &busy[i]), LG_LIMIT_OK);
    }
    for (uint32_t i = 100; i < 2000; i++) {
        lg_ipkey_t k = key_n(i);
        CHECK_EQ_INT(knock(&t, &k, &r, 0), LG_LIMIT_OK);
    }
    lg_limit_stats_t st;
    lg_limit_stats(&t, &st);
    CHECK(st.tracked == 2000 && st.untracked == 0);
    /* The hand is at 0, in front of 100 busy entries. */
    t.shards[0].hand = 0;
    lg_ipkey_t k = key_n(5000);
    lg_limit_ticket_t tk;
    CHECK_EQ_INT(lg_limit_admit(&t, &k, &r, 1, &tk), LG_LIMIT_OK);
    CHECK(tk.tracked);
    lg_limit_release(&t, &k, &tk);
    /* Then 300,000 new sources, the hand put back into the busy run before each. */
    for (uint32_t i = 0; i < 300000; i++) {
        t.shards[0].hand = i % 60;
        lg_ipkey_t kn = key_n(10000 + i);
        CHECK_EQ_INT(knock(&t, &kn, &r, 2), LG_LIMIT_OK);
    }
    lg_limit_stats(&t, &st);
    CHECK_EQ_INT(st.untracked, 0);
    for (uint32_t i = 0; i < 100; i++) {
        lg_ipkey_t kb = key_n(i);
        limit_entry_t *e = entry_of(&t, &kb);
        CHECK(e != NULL && e->active == 1); /* busy entries are never evicted */
        lg_limit_release(&t, &kb, &busy[i]);
    }
    CHECK(table_ok(&t));
    lg_limit_destroy(&t);
}

LG_TEST(allocation_failure_while_growing)
{
    lg_limit_t t;
    CHECK_EQ_INT(lg_limit_init(&t, 1000), 0);
    lg_limit_rules_t r = rules(0, 0, 0, 0, 0, 0);
    static lg_limit_ticket_t tk[64];
    /* The first key needs the first pool (allocation 0) and index (allocation 1). */
    for (long fail = 0; fail < 2; fail++) {
        lg_ipkey_t k = key_n(0);
        lg_alloc_fail_after(fail);
        int v = lg_limit_admit(&t, &k, &r, 0, &tk[0]);
        lg_alloc_fail_after(-1);
        CHECK_EQ_INT(v, LG_LIMIT_OK);
        CHECK(!tk[0].tracked);
    }
    lg_limit_stats_t st;
    lg_limit_stats(&t, &st);
    CHECK(st.tracked == 0 && st.untracked == 2);
    /* Now it grows; fill the first pool (16) with open connections. */
    for (uint32_t i = 0; i < 16; i++) {
        lg_ipkey_t k = key_n(i);
        CHECK_EQ_INT(lg_limit_admit(&t, &k, &r, 0, &tk[i]), LG_LIMIT_OK);
        CHECK(tk[i].tracked);
    }
    /* The 17th needs the second pool; that allocation fails and nothing is idle: untracked. */
    lg_ipkey_t k17 = key_n(16);
    lg_alloc_fail_after(0);
    CHECK_EQ_INT(lg_limit_admit(&t, &k17, &r, 0, &tk[16]), LG_LIMIT_OK);
    lg_alloc_fail_after(-1);
    CHECK(!tk[16].tracked);
    /* The index allocation failing instead (the pool one succeeded): also untracked, no leak. */
    lg_alloc_fail_after(1);
    CHECK_EQ_INT(lg_limit_admit(&t, &k17, &r, 0, &tk[16]), LG_LIMIT_OK);
    lg_alloc_fail_after(-1);
    CHECK(!tk[16].tracked);
    /* Without injected failures it grows, and every entry is still there. */
    CHECK_EQ_INT(lg_limit_admit(&t, &k17, &r, 0, &tk[16]), LG_LIMIT_OK);
    CHECK(tk[16].tracked);
    lg_limit_stats(&t, &st);
    CHECK(st.tracked == 17 && st.untracked == 4);
    for (uint32_t i = 0; i <= 16; i++) {
        lg_ipkey_t k = key_n(i);
        limit_entry_t *e = entry_of(&t, &k);
        CHECK(e != NULL && e->active == 1);
    }
    CHECK(table_ok(&t));
    lg_limit_destroy(&t);
}

LG_TEST(bytes_per_tracked_ip_at_one_million)
{
    lg_limit_t t;
    CHECK_EQ_INT(lg_limit_init(&t, LG_LIMIT_DEFAULT_TRACKED), 0);
    lg_limit_rules_t r = rules(50, 100, 300, 300, 200, 600000);
    for (uint32_t i = 0; i < 1000000; i++) {
        lg_ipkey_t k = key_n(0x0a000000u + i * 7u);
        CHECK_EQ_INT(knock(&t, &k, &r, 0), LG_LIMIT_OK);
    }
    lg_limit_stats_t st;
    lg_limit_stats(&t, &st);
    /* Shards fill unevenly (about 15,625 +- 125 keys each), so a few keys of the fullest shards
     * find no room: every entry still owes tokens at t = 0, none is idle. */
    CHECK(st.tracked > 990000 && st.tracked + st.untracked == 1000000);
    double per_ip = (double)st.bytes / (double)st.tracked;
    /* 64 bytes of entry + 8.4 bytes of index (32,768 slots for 15,625 entries per shard). */
    CHECK(per_ip > 64 && per_ip < 74);
    CHECK(table_ok(&t));
    lg_limit_destroy(&t);
}

/* ------------------------------------------------------------------------------------------ */
/* Lists, sweep, stats.                                                                       */

static bool list_has(const lg_ipkey_t *v, size_t n, const lg_ipkey_t *k)
{
    for (size_t i = 0; i < n; i++) {
        if (memcmp(&v[i], k, sizeof(*k)) == 0) return true;
    }
    return false;
}

LG_TEST(lists)
{
    lg_limit_t t;
    CHECK_EQ_INT(lg_limit_init(&t, 100), 0);
    lg_limit_rules_t boxy = rules(1, 1, 0, 0, 0, 5000), conc = rules(0, 0, 0, 0, 2, 0);
    lg_limit_rules_t sus = rules(1000, 1000, 1, 1, 0, 0);
    lg_ipkey_t rated = key4(0, 1, 1, 1, 1), boxed = key4(0, 2, 2, 2, 2);
    lg_ipkey_t full = key_text(1, "2001:db8::1", 64), calm = key4(0, 4, 4, 4, 4);
    lg_ipkey_t slow = key4(2, 5, 5, 5, 5);
    lg_limit_ticket_t tk[2];
    CHECK_EQ_INT(knock(&t, &rated, &boxy, 0), LG_LIMIT_OK); /* < 1 token until 1000 */
    CHECK_EQ_INT(knock(&t, &boxed, &boxy, 0), LG_LIMIT_OK);
    CHECK_EQ_INT(knock(&t, &boxed, &boxy, 0), LG_LIMIT_RATE); /* boxed until 5000 */
    CHECK_EQ_INT(lg_limit_admit(&t, &full, &conc, 0, &tk[0]), LG_LIMIT_OK);
    CHECK_EQ_INT(lg_limit_admit(&t, &full, &conc, 0, &tk[1]), LG_LIMIT_OK);
    CHECK_EQ_INT(knock(&t, &calm, &conc, 0), LG_LIMIT_OK);
    CHECK_EQ_INT(knock(&t, &slow, &sus, 0), LG_LIMIT_OK); /* the per-minute bucket is empty */

    lg_ipkey_t out[8];
    size_t n = lg_limit_list(&t, 500, LG_LIMIT_LIST_RATE_LIMITED, out, LG_ARRAY_SIZE(out));
    CHECK_EQ_INT(n, 3);
    CHECK(list_has(out, n, &rated) && list_has(out, n, &boxed) && list_has(out, n, &slow));
    n = lg_limit_list(&t, 500, LG_LIMIT_LIST_CONCURRENCY_LIMITED, out, LG_ARRAY_SIZE(out));
    CHECK(n == 1 && list_has(out, n, &full));
    char text[LG_IPKEY_TEXT_MAX];
    CHECK(lg_ipkey_format(&out[0], text, sizeof(text)) > 0 && strcmp(text, "2001:db8::/64") == 0);
    n = lg_limit_list(&t, 500, LG_LIMIT_LIST_PENALTY_BOXED, out, LG_ARRAY_SIZE(out));
    CHECK(n == 1 && list_has(out, n, &boxed));
    /* Projection only: listing changed nothing, and time moves the answers. */
    CHECK_EQ_INT(lg_limit_list(&t, 500, LG_LIMIT_LIST_RATE_LIMITED, out, 8), 3);
    CHECK_EQ_INT(lg_limit_list(&t, 1000, LG_LIMIT_LIST_RATE_LIMITED, out, 8), 1); /* slow */
    CHECK_EQ_INT(lg_limit_list(&t, 60000, LG_LIMIT_LIST_RATE_LIMITED, out, 8), 0);
    CHECK_EQ_INT(lg_limit_list(&t, 4999, LG_LIMIT_LIST_PENALTY_BOXED, out, 8), 1);
    CHECK_EQ_INT(lg_limit_list(&t, 5000, LG_LIMIT_LIST_PENALTY_BOXED, out, 8), 0);
    /* Cut at cap: the count is still the total. */
    lg_ipkey_t one[1];
    CHECK_EQ_INT(lg_limit_list(&t, 500, LG_LIMIT_LIST_RATE_LIMITED, one, 1), 3);
    CHECK_EQ_INT(lg_limit_list(&t, 500, LG_LIMIT_LIST_RATE_LIMITED, NULL, 0), 3);
    CHECK_EQ_INT(lg_limit_list(&t, 500, 99, out, 8), 0);
    /* Released below the max: no longer listed. */
    lg_limit_release(&t, &full, &tk[1]);
    CHECK_EQ_INT(lg_limit_list(&t, 500, LG_LIMIT_LIST_CONCURRENCY_LIMITED, out, 8), 0);
    lg_limit_release(&t, &full, &tk[0]);
    lg_limit_destroy(&t);
}

LG_TEST(sweep)
{
    lg_limit_t t;
    CHECK_EQ_INT(lg_limit_init(&t, 10000), 0); /* 8 shards */
    lg_limit_rules_t r = rules(10, 1, 0, 0, 0, 1000);
    for (uint32_t i = 0; i < 1000; i++) {
        lg_ipkey_t k = key_n(i);
        knock(&t, &k, &r, 0);
    }
    lg_ipkey_t boxed = key_n(5000), active = key_n(5001);
    knock(&t, &boxed, &r, 0);
    knock(&t, &boxed, &r, 0); /* boxed until 1000 */
    lg_limit_ticket_t tk;
    CHECK_EQ_INT(lg_limit_admit(&t, &active, &r, 0, &tk), LG_LIMIT_OK);
    CHECK_EQ_INT(tracked(&t), 1002);
    /* At 50 ms nothing is idle (each bucket refills at 100 ms). */
    CHECK_EQ_INT(lg_limit_sweep(&t, 50, 100000), 0);
    /* At 500 ms all but the boxed and the active one are; the budget bounds each call (the
     * 300 examined may include those two). */
    size_t removed = lg_limit_sweep(&t, 500, 300);
    CHECK(removed >= 298 && removed <= 300);
    CHECK_EQ_INT(tracked(&t), 1002 - removed);
    for (int i = 0; i < 100; i++)
        removed += lg_limit_sweep(&t, 500, 100);
    CHECK_EQ_INT(removed, 1000);
    CHECK_EQ_INT(tracked(&t), 2);
    CHECK(entry_of(&t, &boxed) != NULL && entry_of(&t, &active) != NULL);
    CHECK_EQ_INT(lg_limit_sweep(&t, 1000, 100), 1); /* the box is over */
    lg_limit_release(&t, &active, &tk);
    CHECK_EQ_INT(lg_limit_sweep(&t, 1000, 100), 1);
    CHECK_EQ_INT(lg_limit_sweep(&t, 1000, 100), 0); /* empty: returns */
    lg_limit_stats_t st;
    lg_limit_stats(&t, &st);
    CHECK(st.tracked == 0 && st.swept == 1002 && st.evictions == 0);
    CHECK(table_ok(&t));
    lg_limit_destroy(&t);
}

LG_TEST(seeded_hash)
{
    lg_limit_t a, b;
    CHECK_EQ_INT(lg_limit_init(&a, 100), 0);
    CHECK_EQ_INT(lg_limit_init(&b, 100), 0);
    uint8_t seed[16];
    for (int i = 0; i < 16; i++)
        seed[i] = (uint8_t)(i * 37 + 1);
    lg_limit_seed(&b, seed);
    lg_ipkey_t k = key4(0, 1, 2, 3, 4);
    CHECK(key_hash(&a, &k) != key_hash(&b, &k));
    lg_limit_rules_t r = rules(1, 1, 0, 0, 0, 0);
    CHECK_EQ_INT(knock(&b, &k, &r, 0), LG_LIMIT_OK);
    CHECK_EQ_INT(knock(&b, &k, &r, 0), LG_LIMIT_RATE);
    /* SipHash-1-3 with the all-zero key, pinned against an independent implementation:
     * CPython 3.11+ hashes bytes with SipHash-1-3, and PYTHONHASHSEED=0 zeroes its key:
     *   PYTHONHASHSEED=0 python3 -c 'print(hex(hash(bytes([0,4,32,1,2,3,4]+[0]*12))
     *                                          & 0xffffffffffffffff))' */
    CHECK(key_hash(&a, &k) == UINT64_C(0xd0651947a3a7250b));
    lg_ipkey_t k6 = key_text(5, "2001:db8::1", 64); /* bytes 5,6,64,0x20,0x01,0x0d,0xb8,0... */
    CHECK(key_hash(&a, &k6) == UINT64_C(0x12c398b4009440c8));
    lg_limit_destroy(&a);
    lg_limit_destroy(&b);
}

/* ------------------------------------------------------------------------------------------ */
/* Threads.                                                                                   */

#define HAMMER_KEYS  3000   /* more than the table holds: growth and eviction under contention */
#define HAMMER_ITERS 200000 /* admits per thread */
#define HAMMER_HELD  32     /* connections a thread keeps open at once */

typedef struct hammer_s {
    lg_limit_t *t;
    unsigned seed;
    uint64_t ok, refused;
} hammer_t;

static _Atomic int hammer_done;

static void *hammer_run(void *arg)
{
    hammer_t *h = arg;
    lg_limit_rules_t r = rules(1e6, 1e6, 0, 0, 3, 0);
    lg_ipkey_t keys[HAMMER_HELD];
    lg_limit_ticket_t tickets[HAMMER_HELD];
    memset(keys, 0, sizeof(keys));
    memset(tickets, 0, sizeof(tickets));
    for (int i = 0; i < HAMMER_ITERS; i++) {
        size_t slot = (size_t)rand_r(&h->seed) % HAMMER_HELD;
        lg_limit_release(h->t, &keys[slot], &tickets[slot]);
        /* Mostly a hot set of 16 keys shared by both threads, sometimes any of them. */
        uint32_t n = rand_r(&h->seed) % 4 ? rand_r(&h->seed) % 16 : rand_r(&h->seed) % HAMMER_KEYS;
        keys[slot] = key_n(n);
        int v = lg_limit_admit(h->t, &keys[slot], &r, (uint64_t)i / 10, &tickets[slot]);
        if (v == LG_LIMIT_OK) {
            h->ok++;
        } else {
            h->refused++;
        }
    }
    for (size_t slot = 0; slot < HAMMER_HELD; slot++)
        lg_limit_release(h->t, &keys[slot], &tickets[slot]);
    return NULL;
}

static void *sweeper_run(void *arg)
{
    lg_limit_t *t = arg;
    static lg_ipkey_t out[64];
    uint64_t now = 0;
    while (!atomic_load(&hammer_done)) {
        lg_limit_sweep(t, now++, 64);
        lg_limit_list(t, now, LG_LIMIT_LIST_CONCURRENCY_LIMITED, out, LG_ARRAY_SIZE(out));
        lg_limit_stats_t st;
        lg_limit_stats(t, &st);
    }
    return NULL;
}

LG_TEST(two_thread_hammer)
{
    lg_limit_t t;
    CHECK_EQ_INT(lg_limit_init(&t, 2048), 0); /* 2 shards of 1024 */
    hammer_t h[2] = {{&t, 1, 0, 0}, {&t, 2, 0, 0}};
    pthread_t th[2], sw;
    atomic_store(&hammer_done, 0);
    CHECK(pthread_create(&sw, NULL, sweeper_run, &t) == 0);
    for (int i = 0; i < 2; i++)
        CHECK(pthread_create(&th[i], NULL, hammer_run, &h[i]) == 0);
    for (int i = 0; i < 2; i++)
        pthread_join(th[i], NULL);
    atomic_store(&hammer_done, 1);
    pthread_join(sw, NULL);
    CHECK(h[0].ok + h[0].refused == HAMMER_ITERS && h[1].ok + h[1].refused == HAMMER_ITERS);
    CHECK(h[0].refused > 0 && h[1].refused > 0); /* the hot keys hit max_concurrent 3 */
    bool all_zero = true;
    for (size_t s = 0; s < t.n_shards; s++) {
        for (size_t j = 0; j < t.shards[s].n; j++)
            all_zero = all_zero && t.shards[s].pool[j].active == 0;
    }
    CHECK(all_zero);
    CHECK(table_ok(&t));
    lg_ipkey_t out[4];
    CHECK_EQ_INT(lg_limit_list(&t, 0, LG_LIMIT_LIST_CONCURRENCY_LIMITED, out, 4), 0);
    lg_limit_destroy(&t);
}

int main(void)
{
    LG_RUN(sizes);
    LG_RUN(bucket_init_values);
    LG_RUN(exact_counts_over_a_window);
    LG_RUN(refill_capped_at_burst);
    LG_RUN(fractional_rates_and_bursts);
    LG_RUN(sustained_per_minute);
    LG_RUN(buckets_debited_together);
    LG_RUN(penalty_box_set_extend_expire);
    LG_RUN(concurrency_to_max_and_release);
    LG_RUN(order_box_then_rate_then_concurrency);
    LG_RUN(key_folding);
    LG_RUN(key_format);
    LG_RUN(key_format_vs_inet_ntop);
    LG_RUN(init_and_shards);
    LG_RUN(eviction_keeps_boxed_and_active_and_bounds_memory);
    LG_RUN(untracked_when_full_of_active_entries);
    LG_RUN(evict_past_a_busy_run);
    LG_RUN(allocation_failure_while_growing);
    LG_RUN(bytes_per_tracked_ip_at_one_million);
    LG_RUN(lists);
    LG_RUN(sweep);
    LG_RUN(seeded_hash);
    LG_RUN(two_thread_hammer);
    LG_TEST_END();
}
