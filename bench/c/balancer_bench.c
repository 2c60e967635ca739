/*
 * balancer_bench.c — nanoseconds per upstream pick (src/lg_balancer.c). Not part of the suite.
 *
 *   clang -std=c11 -O2 -D_GNU_SOURCE -I src bench/c/balancer_bench.c src/lg_common.c \
 *         -o /tmp/balancer_bench && /tmp/balancer_bench [iterations]
 *
 * Each iteration is what a connection costs the balancer: lg_balancer_pick() (which takes an
 * active reference) and lg_upstate_release(). The peer measured in the same run is the floor
 * any balancer pays, and what the engine did before the balancer: always the first upstream,
 * with the same two atomic operations. Ratios are against that floor. Single thread, upstates
 * in cache; the contended cost of the shared atomics across workers is not measured here.
 */
#include "../../src/lg_balancer.c"

#include <stdio.h>
#include <stdlib.h>
#include <time.h>

#define BENCH_ITER_DEFAULT  20000000 /* picks per case */
#define BENCH_UPSTREAMS_MAX 1024

static lg_upstate_t ups[BENCH_UPSTREAMS_MAX];
static lg_upstate_t *st[BENCH_UPSTREAMS_MAX];

static double now_ns(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec * 1e9 + (double)ts.tv_nsec;
}

/* The floor: no choice at all, the first upstream (acquire + release). */
static double bench_first(long iters)
{
    double t0 = now_ns();
    for (long k = 0; k < iters; k++) {
        lg_upstate_acquire(st[0]);
        lg_upstate_release(st[0]);
    }
    return (now_ns() - t0) / (double)iters;
}

static volatile int sink;

static double bench_policy(int policy, size_t n, long iters)
{
    lg_balancer_t b;
    lg_pick_t c;
    if (lg_balancer_build(&b, policy, NULL, NULL, n) != 0 || lg_pick_init(&c, &b, 42) != 0) {
        fprintf(stderr, "build failed\n");
        exit(1);
    }
    lg_pick_in_t in;
    lg_pick_in_init(&in, 0);
    /* Some standing load so scores differ, as in a running engine. */
    for (size_t i = 0; i < n; i++)
        atomic_store(&ups[i].active, (unsigned)(i * 7 % 5));
    double t0 = now_ns();
    for (long k = 0; k < iters; k++) {
        in.client_hash = (uint64_t)k * 0x9e3779b97f4a7c15ULL;
        int i = lg_balancer_pick(&b, st, &c, &in, NULL, 1000);
        lg_upstate_release(st[i]);
        sink = i;
    }
    double ns = (now_ns() - t0) / (double)iters;
    lg_pick_free(&c);
    lg_balancer_free(&b);
    return ns;
}

int main(int argc, char **argv)
{
    long iters = argc > 1 ? atol(argv[1]) : BENCH_ITER_DEFAULT;
    if (iters <= 0) iters = BENCH_ITER_DEFAULT;
    for (size_t i = 0; i < BENCH_UPSTREAMS_MAX; i++) {
        lg_upstate_init(&ups[i], i + 1);
        st[i] = &ups[i];
    }
    static const struct {
        const char *name;
        int policy;
    } policies[] = {
        {"leastConn", LG_BALANCE_LEASTCONN},
        {"roundRobin", LG_BALANCE_ROUNDROBIN},
        {"random2", LG_BALANCE_RANDOM2},
        {"hash", LG_BALANCE_HASH},
    };
    static const size_t sizes[] = {1, 3, 16, 1024};

    bench_first(iters / 10); /* warm up */
    double floor_ns = bench_first(iters);
    printf("%-12s %5s %10s %8s\n", "policy", "n", "ns/pick", "x floor");
    printf("%-12s %5d %10.2f %8.2f\n", "first (peer)", 1, floor_ns, 1.0);
    for (size_t p = 0; p < sizeof(policies) / sizeof(policies[0]); p++) {
        for (size_t z = 0; z < sizeof(sizes) / sizeof(sizes[0]); z++) {
            /* Large lists scan n upstates per pick: fewer iterations keep the run short. */
            long it = sizes[z] > 16 ? iters / 64 : iters;
            double ns = bench_policy(policies[p].policy, sizes[z], it);
            printf("%-12s %5zu %10.2f %8.2f\n", policies[p].name, sizes[z], ns, ns / floor_ns);
        }
    }
    return 0;
}
