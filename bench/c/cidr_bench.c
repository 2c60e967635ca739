/*
 * cidr_bench.c — lookup cost of lg_cidr sets with large protection lists (not part of the
 * test suite; see bench/c/run.js).
 *
 * Builds sets of N random entries (default 100,000; argv[1] overrides) and times
 * lg_cidr_set_contains over a pre-generated array of random addresses (a quarter of them taken
 * from inside the entries, so both hits and misses are timed), then prints ns per lookup:
 *   - IPv4: 90 % /32 and 10 % /16../31 (a typical scraped blocklist);
 *   - IPv6: prefixes /32../128, uniformly;
 *   - IPv4-mapped IPv6 lookups against the IPv4 set.
 * The query array (4 Mi addresses) is far larger than the caches hold with the set, so a lookup
 * pays for the set's cache misses as an accept would.
 *
 *   clang -std=c11 -O2 -D_GNU_SOURCE -I src -o /tmp/cidr_bench bench/c/cidr_bench.c src/lg_common.c
 *   /tmp/cidr_bench [entries]
 */
#include "../../src/lg_cidr.c"

#include <stdio.h>
#include <stdlib.h>
#include <time.h>

#define BENCH_QUERIES (4u << 20) /* addresses in the query array */
#define BENCH_ROUNDS  5          /* timed passes over the query array; the best is printed */

static uint64_t rng_state = 0x9e3779b97f4a7c15u;

/* splitmix64: fast, good enough for benchmark data. */
static uint64_t rnd(void)
{
    uint64_t z = (rng_state += 0x9e3779b97f4a7c15u);
    z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9u;
    z = (z ^ (z >> 27)) * 0x94d049bb133111ebu;
    return z ^ (z >> 31);
}

static double now_ns(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec * 1e9 + (double)ts.tv_nsec;
}

static void clear_host_bits(uint8_t *a, unsigned prefix, unsigned bits)
{
    for (unsigned b = prefix; b < bits; b++)
        a[b / 8] &= (uint8_t) ~(0x80u >> (b % 8));
}

static void random_entry(lg_cidr_t *e, bool v6)
{
    memset(e, 0, sizeof(*e));
    uint64_t r = rnd(), r2 = rnd();
    if (v6) {
        e->family = LG_CIDR_V6;
        e->prefix = (uint8_t)(32 + rnd() % 97);
        memcpy(e->addr, &r, 8);
        memcpy(e->addr + 8, &r2, 8);
        e->addr[0] = 0x20; /* 2000::/3, and never ::ffff:0:0/96 */
        clear_host_bits(e->addr, e->prefix, 128);
    } else {
        e->family = LG_CIDR_V4;
        e->prefix = (uint8_t)(rnd() % 10 == 0 ? 16 + rnd() % 16 : 32);
        memcpy(e->addr, &r, 4);
        clear_host_bits(e->addr, e->prefix, 32);
    }
}

/* Random addresses; every fourth inside a random entry. */
static void make_queries(uint8_t (*q)[16], const lg_cidr_t *v, size_t n, bool v6, bool mapped)
{
    for (size_t i = 0; i < BENCH_QUERIES; i++) {
        uint64_t r = rnd(), r2 = rnd();
        memcpy(q[i], &r, 8);
        memcpy(q[i] + 8, &r2, 8);
        if (i % 4 == 0) {
            const lg_cidr_t *e = &v[rnd() % n];
            for (unsigned b = 0; b < e->prefix; b++) {
                uint8_t m = (uint8_t)(0x80u >> (b % 8));
                q[i][b / 8] = (uint8_t)((q[i][b / 8] & ~m) | (e->addr[b / 8] & m));
            }
        } else if (v6) {
            q[i][0] = 0x20;
        }
        if (mapped) {
            memmove(q[i] + 12, q[i], 4);
            memcpy(q[i], cidr_mapped_prefix, 12);
        }
    }
}

/*
 * The baseline, measured in the same run: plain bisection over the same ranges (what
 * lg_cidr_set_contains did before the bucket index).
 */
static bool bisect_contains(const lg_cidr_set_t *s, uint8_t family, const uint8_t *addr)
{
    if (family == LG_CIDR_V6 && memcmp(addr, cidr_mapped_prefix, 12) == 0) {
        family = LG_CIDR_V4;
        addr += 12;
    }
    if (family == LG_CIDR_V4) {
        uint32_t a = cidr_load32(addr);
        size_t lo = 0, hi = s->n4;
        while (lo < hi) {
            size_t mid = lo + (hi - lo) / 2;
            if (s->v4[mid].lo <= a) {
                lo = mid + 1;
            } else {
                hi = mid;
            }
        }
        return lo > 0 && a <= s->v4[lo - 1].hi;
    }
    size_t lo = 0, hi = s->n6;
    while (lo < hi) {
        size_t mid = lo + (hi - lo) / 2;
        if (memcmp(s->v6[mid].lo, addr, 16) <= 0) {
            lo = mid + 1;
        } else {
            hi = mid;
        }
    }
    return lo > 0 && memcmp(addr, s->v6[lo - 1].hi, 16) <= 0;
}

typedef bool (*contains_fn)(const lg_cidr_set_t *s, uint8_t family, const uint8_t *addr);

/* ns per lookup: the best of BENCH_ROUNDS passes (the machine may be shared; the best pass is
 * the one least disturbed). */
static double time_lookups(contains_fn fn, const lg_cidr_set_t *s, uint8_t family, uint8_t (*q)[16],
                           size_t *hits)
{
    double best = 0;
    for (unsigned round = 0; round < BENCH_ROUNDS; round++) {
        size_t h = 0;
        double t0 = now_ns();
        for (size_t i = 0; i < BENCH_QUERIES; i++)
            h += fn(s, family, q[i]);
        double ns = (now_ns() - t0) / BENCH_QUERIES;
        if (round == 0 || ns < best) best = ns;
        *hits = h;
    }
    return best;
}

int main(int argc, char **argv)
{
    size_t n = argc > 1 ? (size_t)strtoul(argv[1], NULL, 10) : 100000;
    if (n == 0 || n > LG_CIDR_SET_MAX) {
        fprintf(stderr, "entries must be 1..%d\n", LG_CIDR_SET_MAX);
        return 2;
    }
    lg_cidr_t *v4 = malloc(n * sizeof(*v4)), *v6 = malloc(n * sizeof(*v6));
    uint8_t(*q)[16] = malloc(BENCH_QUERIES * sizeof(*q));
    if (v4 == NULL || v6 == NULL || q == NULL) return 1;
    for (size_t i = 0; i < n; i++) {
        random_entry(&v4[i], false);
        random_entry(&v6[i], true);
    }
    lg_cidr_set_t s4, s6;
    double t0 = now_ns();
    if (lg_cidr_set_build(&s4, v4, n) != 0) return 1;
    double t1 = now_ns();
    if (lg_cidr_set_build(&s6, v6, n) != 0) return 1;
    double t2 = now_ns();
    printf("cidr_bench: %zu entries per family; build %.1f ms (v4, %zu ranges), %.1f ms (v6, %zu "
           "ranges)\n",
           n, (t1 - t0) / 1e6, lg_cidr_set_ranges(&s4), (t2 - t1) / 1e6, lg_cidr_set_ranges(&s6));

    static const struct {
        const char *name;
        bool v6, mapped;
        uint8_t family;
    } cases[] = {
        {"IPv4", false, false, LG_CIDR_V4},
        {"IPv4-mapped", false, true, LG_CIDR_V6},
        {"IPv6", true, false, LG_CIDR_V6},
    };
    printf("  %-12s %12s %12s %8s %6s\n", "lookup", "lg_cidr ns", "bisect ns", "ratio", "hits");
    for (size_t c = 0; c < sizeof(cases) / sizeof(cases[0]); c++) {
        size_t hits, hits_ref;
        make_queries(q, cases[c].v6 ? v6 : v4, n, cases[c].v6, cases[c].mapped);
        const lg_cidr_set_t *s = cases[c].v6 ? &s6 : &s4;
        double ns = time_lookups(lg_cidr_set_contains, s, cases[c].family, q, &hits);
        double ref = time_lookups(bisect_contains, s, cases[c].family, q, &hits_ref);
        if (hits != hits_ref) {
            fprintf(stderr, "cidr_bench: %s: %zu hits, the baseline %zu\n", cases[c].name, hits,
                    hits_ref);
            return 1;
        }
        printf("  %-12s %12.1f %12.1f %7.2fx %5.1f%%\n", cases[c].name, ns, ref, ref / ns,
               100.0 * hits / BENCH_QUERIES);
    }

    lg_cidr_set_free(&s4);
    lg_cidr_set_free(&s6);
    free(v4);
    free(v6);
    free(q);
    return 0;
}
