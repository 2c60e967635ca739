/*
 * admit_bench.c — the admission work of one accepted connection in the pure core, with P1's
 * protection (bench/scenarios/p1.js) against none (not part of the test suite; see
 * bench/c/run.js). The shell's lg_protect_admit does exactly these steps; lg_protect_release
 * does the release at close.
 *
 *   off: the allowlist and blocklist checks on empty sets (all lg_protect_admit does when a
 *        listener has no per-IP rule: it returns before the table);
 *   on:  a 1-entry allowlist and a 10,000-entry blocklist (neither matching), lg_ipkey_make
 *        (ipv6Prefix 64), lg_limit_admit with rateLimit, sustained, penaltyBox and
 *        maxConcurrentPerIp, then lg_limit_release;
 * for sources drawn from 100,000 distinct IPv4 addresses in random order (entries mostly outside
 * the caches, as on a busy listener) and from 50 (P1's churn client: entries in cache).
 * Also prints bytes per tracked IP with 1,000,000 sources tracked. Best of BENCH_REPEAT runs.
 *
 *   node bench/c/run.js admit
 */
#include "../../src/lg_cidr.c"
#include "../../src/lg_limit.c"

#include <stdio.h>
#include <stdlib.h>
#include <time.h>

#define BENCH_OPS     2000000 /* admissions per timed run */
#define BENCH_REPEAT  5       /* runs; the best is printed */
#define BENCH_BLOCK   10000   /* blocklist entries */
#define BENCH_SOURCES 100000  /* distinct sources of the cold case */
#define BENCH_FILL    1000000 /* tracked sources for the bytes-per-IP figure */

static double now_ns(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec * 1e9 + (double)ts.tv_nsec;
}

static uint64_t rng = 0x9e3779b97f4a7c15u;
static uint32_t next_rand(void)
{
    rng ^= rng << 13;
    rng ^= rng >> 7;
    rng ^= rng << 17;
    return (uint32_t)(rng >> 16);
}

static volatile unsigned sink;

/* One accept's admission (and its release at close); returns what admission decided. */
static int admit_on(lg_limit_t *t, const lg_cidr_set_t *allow, const lg_cidr_set_t *block,
                    const lg_limit_rules_t *r, const uint8_t addr[4], uint64_t now)
{
    if (allow->n4 > 0 && lg_cidr_set_contains(allow, LG_CIDR_V4, addr)) return 0;
    if (block->n4 > 0 && lg_cidr_set_contains(block, LG_CIDR_V4, addr)) return 1;
    lg_ipkey_t k;
    if (lg_ipkey_make(&k, 0, LG_CIDR_V4, addr, 64) != 0) return 2;
    lg_limit_ticket_t ticket;
    int v = lg_limit_admit(t, &k, r, now, &ticket);
    lg_limit_release(t, &k, &ticket);
    return v;
}

static double run(bool on, uint32_t n_sources, const uint32_t *sources, lg_limit_t *t,
                  const lg_cidr_set_t *allow, const lg_cidr_set_t *block,
                  const lg_cidr_set_t *empty, const lg_limit_rules_t *r)
{
    double best = 1e30;
    for (int rep = 0; rep < BENCH_REPEAT; rep++) {
        double t0 = now_ns();
        unsigned acc = 0;
        for (uint32_t i = 0; i < BENCH_OPS; i++) {
            uint32_t ip = sources[i % n_sources];
            uint8_t addr[4] = {(uint8_t)(ip >> 24), (uint8_t)(ip >> 16), (uint8_t)(ip >> 8),
                               (uint8_t)ip};
            if (on) {
                acc += (unsigned)admit_on(t, allow, block, r, addr, 1000 + i / 1000);
            } else {
                acc += (empty->n4 > 0 && lg_cidr_set_contains(empty, LG_CIDR_V4, addr)) ? 1u : 0u;
                acc += (empty->n4 > 0 && lg_cidr_set_contains(empty, LG_CIDR_V4, addr)) ? 1u : 0u;
            }
        }
        sink = acc;
        double ns = (now_ns() - t0) / BENCH_OPS;
        if (ns < best) best = ns;
    }
    return best;
}

int main(void)
{
    /* The sets: a 10,000-entry blocklist of 10.x.y.0/24 (P1's), a 1-entry allowlist. */
    lg_cidr_t *bl = malloc(BENCH_BLOCK * sizeof(*bl));
    uint32_t *cold = malloc(BENCH_SOURCES * sizeof(*cold));
    if (bl == NULL || cold == NULL) return 1;
    for (int i = 0; i < BENCH_BLOCK; i++) {
        char text[32];
        int n = snprintf(text, sizeof(text), "10.%d.%d.0/24", (i >> 8) & 255, i & 255);
        if (lg_cidr_parse(text, (size_t)n, &bl[i]) != 0) return 1;
    }
    lg_cidr_t al;
    if (lg_cidr_parse("192.0.2.0/24", 12, &al) != 0) return 1;
    lg_cidr_set_t block, allow, empty;
    memset(&empty, 0, sizeof(empty));
    if (lg_cidr_set_build(&block, bl, BENCH_BLOCK) != 0 || lg_cidr_set_build(&allow, &al, 1) != 0)
        return 1;
    lg_limit_rules_t r;
    memset(&r, 0, sizeof(r));
    if (lg_limit_bucket_init(&r.rate, 1000000, 1000, 1000000) != 0 ||
        lg_limit_bucket_init(&r.sustained, 60000000, 60000, 60000000) != 0)
        return 1;
    r.max_concurrent = 100000;
    r.penalty_box_ms = 600000;
    /* Sources outside both sets: 100.64.0.0/10 (neither blocked nor allowed). */
    for (uint32_t i = 0; i < BENCH_SOURCES; i++)
        cold[i] = (100u << 24 | 64u << 16) + next_rand() % (1u << 22);
    uint32_t hot[50];
    for (uint32_t i = 0; i < 50; i++)
        hot[i] = (127u << 24) + 2 + i;

    lg_limit_t t;
    if (lg_limit_init(&t, LG_LIMIT_DEFAULT_TRACKED) != 0) return 1;
    printf("admit_bench: ns per accepted connection (admission + release), best of %d x %d\n",
           BENCH_REPEAT, BENCH_OPS);
    double off_cold = run(false, BENCH_SOURCES, cold, &t, &allow, &block, &empty, &r);
    double on_cold = run(true, BENCH_SOURCES, cold, &t, &allow, &block, &empty, &r);
    double off_hot = run(false, 50, hot, &t, &allow, &block, &empty, &r);
    double on_hot = run(true, 50, hot, &t, &allow, &block, &empty, &r);
    printf("  %-28s %10s %10s %10s\n", "sources", "off ns", "on ns", "added ns");
    printf("  %-28s %10.1f %10.1f %10.1f\n", "100,000 (random order)", off_cold, on_cold,
           on_cold - off_cold);
    printf("  %-28s %10.1f %10.1f %10.1f\n", "50 (P1's churn client)", off_hot, on_hot,
           on_hot - off_hot);
    lg_limit_destroy(&t);

    /* Bytes per tracked IP with the table full: 1,000,000 sources. */
    if (lg_limit_init(&t, BENCH_FILL) != 0) return 1;
    lg_limit_rules_t keep = r; /* buckets owe tokens for a while: nothing is idle, all tracked */
    for (uint32_t i = 0; i < BENCH_FILL; i++) {
        uint32_t ip = (11u << 24) + i;
        uint8_t addr[4] = {(uint8_t)(ip >> 24), (uint8_t)(ip >> 16), (uint8_t)(ip >> 8),
                           (uint8_t)ip};
        lg_ipkey_t k;
        lg_limit_ticket_t ticket;
        if (lg_ipkey_make(&k, 0, LG_CIDR_V4, addr, 64) != 0) return 1;
        (void)lg_limit_admit(&t, &k, &keep, 5000, &ticket);
    }
    lg_limit_stats_t st;
    lg_limit_stats(&t, &st);
    printf("  %zu sources tracked: %zu bytes = %.1f bytes per tracked IP\n", st.tracked, st.bytes,
           (double)st.bytes / (double)st.tracked);
    lg_limit_destroy(&t);
    lg_cidr_set_free(&block);
    lg_cidr_set_free(&allow);
    free(bl);
    free(cold);
    return 0;
}
