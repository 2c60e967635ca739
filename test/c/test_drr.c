/*
 * test_drr.c — unit tests of the Deficit Round-Robin scheduler (src/lg_drr.c).
 *
 * Grant sequences are computed by hand in the comments next to each expectation. A structural
 * checker (invariants_ok) walks the ready list after every step of the randomised tests, and a
 * fairness property test serves N random backlogs to completion and bounds the spread of bytes
 * granted while every flow is still backlogged.
 */
#include "../../src/lg_drr.c"

#include <stdio.h>

#include "lg_test.h"

/* The list, the counters and every flow's state agree (lg_drr.c file header invariants). */
static bool invariants_ok(const lg_drr_t *d, const lg_drr_flow_t *flows, size_t n)
{
    size_t ready = 0, busy = 0, in_list = 0;
    const lg_drr_flow_t *prev = NULL;
    for (const lg_drr_flow_t *f = d->head; f; f = f->next) {
        if (f->prev != prev || f->state != LG_DRR_READY || f->backlog == 0) return false;
        if (++in_list > n) return false; /* a cycle */
        prev = f;
    }
    if (d->tail != prev) return false;
    for (size_t i = 0; i < n; i++) {
        if (flows[i].state == LG_DRR_READY) ready++;
        if (flows[i].state == LG_DRR_BUSY) busy++;
        if (flows[i].state == LG_DRR_IDLE && (flows[i].backlog || flows[i].deficit)) return false;
        if (flows[i].deficit > LG_DRR_DEFICIT_CAP_QUANTA * lg_drr_flow_quantum(d, &flows[i])) {
            return false;
        }
    }
    return ready == in_list && ready == d->n_ready && busy == d->n_busy;
}

/* Take one grant, check it is for `want` and of `bytes`, and complete it at once. */
#define EXPECT_GRANT(d, want, bytes)                                                               \
    do {                                                                                           \
        size_t g_ = 0;                                                                             \
        lg_drr_flow_t *f_ = lg_drr_next((d), &g_);                                                 \
        CHECK(f_ == (want));                                                                       \
        CHECK_EQ_INT(g_, (bytes));                                                                 \
        CHECK(f_->state == LG_DRR_BUSY);                                                           \
        lg_drr_done((d), f_);                                                                      \
    } while (0)

LG_TEST(test_init)
{
    lg_drr_t d;
    lg_drr_init(&d, 0);
    CHECK_EQ_INT(d.quantum, LG_DRR_QUANTUM_MIN); /* auto starts at the floor */
    CHECK_EQ_INT(d.quantum_fixed, 0);
    CHECK(!lg_drr_pending(&d));
    size_t g = 123;
    CHECK(lg_drr_next(&d, &g) == NULL);
    CHECK_EQ_INT(g, 0);

    lg_drr_init(&d, 1);
    CHECK_EQ_INT(d.quantum, 1);
    lg_drr_init(&d, LG_DRR_QUANTUM_FIXED_MAX);
    CHECK_EQ_INT(d.quantum, LG_DRR_QUANTUM_FIXED_MAX);
    lg_drr_init(&d, LG_DRR_QUANTUM_FIXED_MAX + 1); /* clamped */
    CHECK_EQ_INT(d.quantum, LG_DRR_QUANTUM_FIXED_MAX);
    CHECK_EQ_INT(d.quantum_fixed, LG_DRR_QUANTUM_FIXED_MAX);
}

LG_TEST(test_add)
{
    lg_drr_t d;
    lg_drr_flow_t f[2] = {0};
    lg_drr_init(&d, 1000);
    lg_drr_add(&d, &f[0], 0); /* nothing queued: stays IDLE */
    CHECK(f[0].state == LG_DRR_IDLE);
    CHECK(!lg_drr_pending(&d));
    lg_drr_add(&d, &f[0], 10);
    lg_drr_add(&d, &f[0], 20); /* already READY: keeps its place, no second link */
    lg_drr_add(&d, &f[1], 5);
    CHECK(f[0].state == LG_DRR_READY);
    CHECK_EQ_INT(f[0].backlog, 30);
    CHECK_EQ_INT(d.n_ready, 2);
    CHECK(d.head == &f[0] && d.tail == &f[1]);
    CHECK(lg_drr_pending(&d));
    CHECK(invariants_ok(&d, f, 2));
    /* The backlog is 32 bits: a caller that queues past it saturates the count, never wraps. */
    lg_drr_add(&d, &f[1], (size_t)UINT32_MAX - 10);
    CHECK(f[1].backlog == UINT32_MAX - 5);
    lg_drr_add(&d, &f[1], 100);
    CHECK(f[1].backlog == UINT32_MAX);
    CHECK(d.n_ready == 2);
}

LG_TEST(test_round_robin_order)
{
    /* Equal big backlogs, quantum 1000: A B C A B C ... each 1000 bytes. */
    lg_drr_t d;
    lg_drr_flow_t f[3] = {0};
    lg_drr_init(&d, 1000);
    for (int i = 0; i < 3; i++)
        lg_drr_add(&d, &f[i], 10000);
    for (int round = 0; round < 5; round++) {
        for (int i = 0; i < 3; i++) {
            EXPECT_GRANT(&d, &f[i], 1000);
            CHECK(invariants_ok(&d, f, 3));
        }
    }
    CHECK_EQ_INT(d.grants, 15);
    CHECK_EQ_INT(d.visits, 15);
    CHECK_EQ_INT(d.granted_bytes, 15000);
}

LG_TEST(test_quantum_slices_three_flows)
{
    /*
     * Quantum 1000; backlogs A 2500, B 1000, C 3200. Each visit grants min(quantum, backlog):
     *   A 1000 (1500 left)  B 1000 (empty: IDLE)  C 1000 (2200 left)
     *   A 1000 (500 left)   C 1000 (1200 left)    A 500 (empty)
     *   C alone, nobody busy: solo grant of everything left, 1200.
     */
    lg_drr_t d;
    lg_drr_flow_t f[3] = {0};
    lg_drr_flow_t *a = &f[0], *b = &f[1], *c = &f[2];
    lg_drr_init(&d, 1000);
    lg_drr_add(&d, a, 2500);
    lg_drr_add(&d, b, 1000);
    lg_drr_add(&d, c, 3200);
    EXPECT_GRANT(&d, a, 1000);
    EXPECT_GRANT(&d, b, 1000);
    CHECK(b->state == LG_DRR_IDLE);
    EXPECT_GRANT(&d, c, 1000);
    EXPECT_GRANT(&d, a, 1000);
    EXPECT_GRANT(&d, c, 1000);
    EXPECT_GRANT(&d, a, 500);
    CHECK(a->state == LG_DRR_IDLE);
    EXPECT_GRANT(&d, c, 1200);
    CHECK(c->state == LG_DRR_IDLE);
    size_t g;
    CHECK(lg_drr_next(&d, &g) == NULL);
    CHECK_EQ_INT(d.granted_bytes, 2500 + 1000 + 3200);
    CHECK_EQ_INT(d.grants, 7);
    CHECK(invariants_ok(&d, f, 3));
}

LG_TEST(test_batch_pass_gets_no_solo)
{
    /*
     * A worker that takes every ready grant before any write completes: the last flow of the
     * pass must get a quantum like the others, not a solo grant (A is busy: a competitor).
     */
    lg_drr_t d;
    lg_drr_flow_t f[2] = {0};
    lg_drr_init(&d, 1000);
    lg_drr_add(&d, &f[0], 100000);
    lg_drr_add(&d, &f[1], 100000);
    size_t g0, g1;
    CHECK(lg_drr_next(&d, &g0) == &f[0]);
    CHECK(lg_drr_next(&d, &g1) == &f[1]);
    CHECK_EQ_INT(g0, 1000);
    CHECK_EQ_INT(g1, 1000);
    CHECK_EQ_INT(d.n_busy, 2);
    CHECK(lg_drr_next(&d, &g0) == NULL);
    lg_drr_done(&d, &f[0]);
    lg_drr_done(&d, &f[1]);
    CHECK(invariants_ok(&d, f, 2));
}

LG_TEST(test_solo_grant)
{
    lg_drr_t d;
    lg_drr_flow_t f[2] = {0};
    lg_drr_init(&d, 1000);

    /* 200000 bytes alone: 65536 × 3 then 3392. */
    lg_drr_add(&d, &f[0], 200000);
    EXPECT_GRANT(&d, &f[0], LG_DRR_SOLO_GRANT);
    EXPECT_GRANT(&d, &f[0], LG_DRR_SOLO_GRANT);
    EXPECT_GRANT(&d, &f[0], LG_DRR_SOLO_GRANT);
    EXPECT_GRANT(&d, &f[0], 200000 - 3 * LG_DRR_SOLO_GRANT);
    CHECK(f[0].state == LG_DRR_IDLE);

    /* Exactly LG_DRR_SOLO_GRANT: one grant. One more byte: a second grant of 1. */
    lg_drr_add(&d, &f[0], LG_DRR_SOLO_GRANT);
    EXPECT_GRANT(&d, &f[0], LG_DRR_SOLO_GRANT);
    CHECK(f[0].state == LG_DRR_IDLE);
    lg_drr_add(&d, &f[0], LG_DRR_SOLO_GRANT + 1);
    EXPECT_GRANT(&d, &f[0], LG_DRR_SOLO_GRANT);
    EXPECT_GRANT(&d, &f[0], 1);

    /* A competitor READY: slices of one quantum again. */
    lg_drr_add(&d, &f[0], 5000);
    lg_drr_add(&d, &f[1], 5000);
    EXPECT_GRANT(&d, &f[0], 1000);
    EXPECT_GRANT(&d, &f[1], 1000);
    lg_drr_remove(&d, &f[1]);
    EXPECT_GRANT(&d, &f[0], 4000); /* f[1] gone: solo again, everything left */

    /* A competitor BUSY (write in flight) also counts: no solo grant. */
    size_t g;
    lg_drr_add(&d, &f[1], 5000);
    CHECK(lg_drr_next(&d, &g) == &f[1]); /* alone: solo, takes all 5000 */
    CHECK_EQ_INT(g, 5000);
    lg_drr_add(&d, &f[0], 5000);
    EXPECT_GRANT(&d, &f[0], 1000);
    lg_drr_done(&d, &f[1]);
    CHECK(f[1].state == LG_DRR_IDLE);
    EXPECT_GRANT(&d, &f[0], 4000);

    /* A fixed quantum above LG_DRR_SOLO_GRANT is not reduced by the solo rule. */
    lg_drr_init(&d, 100000);
    lg_drr_add(&d, &f[0], 300000);
    EXPECT_GRANT(&d, &f[0], 100000);
    CHECK(invariants_ok(&d, f, 2));
}

LG_TEST(test_busy_skipped_and_rejoins_tail)
{
    lg_drr_t d;
    lg_drr_flow_t f[3] = {0};
    lg_drr_flow_t *a = &f[0], *b = &f[1], *c = &f[2];
    size_t g;
    lg_drr_init(&d, 1000);
    for (int i = 0; i < 3; i++)
        lg_drr_add(&d, &f[i], 10000);

    CHECK(lg_drr_next(&d, &g) == a); /* A busy, list [B C] */
    CHECK(lg_drr_next(&d, &g) == b); /* B busy, list [C] */
    lg_drr_done(&d, b);              /* B rejoins the tail: [C B] */
    CHECK(d.head == c && d.tail == b);
    lg_drr_add(&d, a, 500); /* bytes for a BUSY flow: it stays out of the list */
    CHECK(a->state == LG_DRR_BUSY);
    CHECK_EQ_INT(d.n_ready, 2);
    CHECK(invariants_ok(&d, f, 3));
    CHECK(lg_drr_next(&d, &g) == c);
    lg_drr_done(&d, c); /* [B C] */
    CHECK(lg_drr_next(&d, &g) == b);
    CHECK(lg_drr_next(&d, &g) == c);
    CHECK(lg_drr_next(&d, &g) == NULL); /* A still busy: nothing ready */
    lg_drr_done(&d, a);                 /* A rejoins: [A] */
    CHECK(d.head == a && d.tail == a);
    CHECK_EQ_INT(a->backlog, 9500);
    CHECK(invariants_ok(&d, f, 3));

    /* done() on a flow that is not BUSY changes nothing. */
    lg_drr_done(&d, a);
    CHECK(a->state == LG_DRR_READY);
    CHECK_EQ_INT(d.n_ready, 1);
    CHECK_EQ_INT(d.n_busy, 2);
    CHECK(invariants_ok(&d, f, 3));
}

LG_TEST(test_deficit_reset_when_emptied)
{
    lg_drr_t d;
    lg_drr_flow_t f[2] = {0};
    lg_drr_init(&d, 1000);
    lg_drr_add(&d, &f[0], 300);
    lg_drr_add(&d, &f[1], 10000);
    size_t g;
    CHECK(lg_drr_next(&d, &g) == &f[0]);
    CHECK_EQ_INT(g, 300);
    CHECK_EQ_INT(f[0].deficit, 0); /* 700 unspent credit is not kept */
    lg_drr_done(&d, &f[0]);
    CHECK(f[0].state == LG_DRR_IDLE);
    /* Back with 300 bytes: a plain visit; then refilled while BUSY, it rejoins the tail. */
    lg_drr_add(&d, &f[0], 300);
    CHECK(lg_drr_next(&d, &g) == &f[1]);
    CHECK_EQ_INT(g, 1000);
    lg_drr_done(&d, &f[1]);
    CHECK(lg_drr_next(&d, &g) == &f[0]);
    CHECK_EQ_INT(g, 300);
    lg_drr_add(&d, &f[0], 5000);
    CHECK_EQ_INT(f[0].deficit, 0);
    lg_drr_done(&d, &f[0]);
    EXPECT_GRANT(&d, &f[1], 1000);
    EXPECT_GRANT(&d, &f[0], 1000); /* a plain quantum: nothing carried from the 300 visit */
    CHECK(invariants_ok(&d, f, 2));
}

LG_TEST(test_deficit_cap)
{
    /*
     * Credit is what is left of a cut visit (lg_drr_return); the next grant continues the visit
     * with it (no new quantum), and it never exceeds CAP quanta whatever was planted.
     */
    lg_drr_t d;
    lg_drr_flow_t f[2] = {0};
    lg_drr_init(&d, 1000);
    lg_drr_add(&d, &f[0], 100000);
    lg_drr_add(&d, &f[1], 100000);

    f[0].deficit = 10 * 1000;
    EXPECT_GRANT(&d, &f[0], LG_DRR_DEFICIT_CAP_QUANTA * 1000);
    CHECK_EQ_INT(f[0].deficit, 0);

    /* Below the cap: the credit is the grant (the rest of a visit), not credit + quantum. */
    f[1].deficit = 700;
    EXPECT_GRANT(&d, &f[1], 700);
    /* Exactly at the cap, and one byte more: the cap. */
    f[0].deficit = LG_DRR_DEFICIT_CAP_QUANTA * 1000;
    EXPECT_GRANT(&d, &f[0], LG_DRR_DEFICIT_CAP_QUANTA * 1000);
    f[1].deficit = LG_DRR_DEFICIT_CAP_QUANTA * 1000 + 1;
    EXPECT_GRANT(&d, &f[1], LG_DRR_DEFICIT_CAP_QUANTA * 1000);

    /* Credit near the field's maximum must not wrap around. */
    f[0].deficit = UINT32_MAX - 10;
    EXPECT_GRANT(&d, &f[0], LG_DRR_DEFICIT_CAP_QUANTA * 1000);

    /* Credit larger than the backlog: the backlog is granted, the credit reset. */
    lg_drr_remove(&d, &f[1]);
    lg_drr_add(&d, &f[1], 1500);
    f[1].deficit = 1800;
    EXPECT_GRANT(&d, &f[0], 1000);
    EXPECT_GRANT(&d, &f[1], 1500);
    CHECK(f[1].state == LG_DRR_IDLE);
    CHECK_EQ_INT(f[1].deficit, 0);
    CHECK(invariants_ok(&d, f, 2));
}

/* lg_drr_return: a cut visit keeps the head and finishes before the next flow's visit. */
LG_TEST(test_return_resumes_visit)
{
    lg_drr_t d;
    lg_drr_flow_t f[3] = {0};
    lg_drr_flow_t *a = &f[0], *b = &f[1], *c = &f[2];
    size_t g;
    lg_drr_init(&d, 1000);
    a->weight = 3;
    for (int i = 0; i < 3; i++)
        lg_drr_add(&d, &f[i], 100000);

    /* A's visit is 3000; only 1000 are written, 2000 come back as credit. */
    CHECK(lg_drr_next(&d, &g) == a);
    CHECK_EQ_INT(g, 3000);
    lg_drr_return(&d, a, 2000);
    CHECK_EQ_INT(a->backlog, 100000 - 1000);
    CHECK_EQ_INT(a->deficit, 2000);
    CHECK_EQ_INT(d.granted_bytes, 1000);
    lg_drr_done(&d, a);
    CHECK(d.head == a && d.tail == c); /* [A B C]: A goes on first */
    CHECK(invariants_ok(&d, f, 3));
    /* Cut again (700 of 2000 written), then finished. */
    CHECK(lg_drr_next(&d, &g) == a);
    CHECK_EQ_INT(g, 2000);
    lg_drr_return(&d, a, 1300);
    lg_drr_done(&d, a);
    EXPECT_GRANT(&d, a, 1300);
    CHECK_EQ_INT(a->deficit, 0);
    CHECK(d.head == b && d.tail == a); /* the visit is over: A went to the tail */
    EXPECT_GRANT(&d, b, 1000);
    EXPECT_GRANT(&d, c, 1000);
    EXPECT_GRANT(&d, a, 3000); /* a new visit: a new weighted quantum */

    /* A visit returned whole, with a competitor busy: still resumes at the head. */
    CHECK(lg_drr_next(&d, &g) == b);
    CHECK(lg_drr_next(&d, &g) == c);
    lg_drr_return(&d, c, g);
    lg_drr_done(&d, c);
    CHECK(d.head == c);
    EXPECT_GRANT(&d, c, 1000);
    lg_drr_done(&d, b);

    /* Capped at CAP weighted quanta; not BUSY or n == 0: nothing changes. */
    CHECK(lg_drr_next(&d, &g) == a);
    lg_drr_return(&d, a, SIZE_MAX - 5);
    CHECK_EQ_INT(a->deficit, LG_DRR_DEFICIT_CAP_QUANTA * 3000);
    lg_drr_done(&d, a);
    size_t before = a->backlog;
    lg_drr_return(&d, a, 10); /* READY now */
    CHECK_EQ_INT(a->backlog, before);
    CHECK(lg_drr_next(&d, &g) == a);
    lg_drr_return(&d, a, 0);
    CHECK_EQ_INT(a->deficit, 0);
    lg_drr_done(&d, a);
    CHECK(d.tail == a);
    CHECK(invariants_ok(&d, f, 3));
}

/* Weights: each visit is weight x quantum; a sparse flow takes its weighted quantum too. */
LG_TEST(test_weight_quanta)
{
    lg_drr_t d;
    lg_drr_flow_t f[3] = {0};
    lg_drr_init(&d, 1000);
    f[0].weight = 0; /* counts as 1 */
    f[1].weight = 2;
    f[2].weight = LG_DRR_WEIGHT_MAX;
    for (int i = 0; i < 3; i++)
        lg_drr_add(&d, &f[i], 1000000);
    for (int round = 0; round < 3; round++) {
        EXPECT_GRANT(&d, &f[0], 1000);
        EXPECT_GRANT(&d, &f[1], 2000);
        EXPECT_GRANT(&d, &f[2], LG_DRR_WEIGHT_MAX * 1000);
    }
    CHECK(invariants_ok(&d, f, 3));
    lg_drr_flow_t s = {0};
    s.weight = 3;
    lg_drr_add(&d, &s, 10000);
    CHECK_EQ_INT(lg_drr_take(&d, &s, 2000), 3000); /* max(3 x 1000, 2000) */
}

LG_TEST(test_remove_each_state)
{
    lg_drr_t d;
    lg_drr_flow_t f[4] = {0};
    size_t g;
    lg_drr_init(&d, 1000);

    /* IDLE: nothing to do, flow stays IDLE. */
    lg_drr_remove(&d, &f[0]);
    CHECK(f[0].state == LG_DRR_IDLE);
    CHECK(invariants_ok(&d, f, 4));

    /* READY at the middle, head and tail of [0 1 2 3]. */
    for (int i = 0; i < 4; i++)
        lg_drr_add(&d, &f[i], 5000);
    lg_drr_remove(&d, &f[1]);
    CHECK(f[1].state == LG_DRR_IDLE && f[1].backlog == 0 && f[1].next == NULL);
    CHECK(invariants_ok(&d, f, 4));
    lg_drr_remove(&d, &f[0]);
    CHECK(d.head == &f[2]);
    CHECK(invariants_ok(&d, f, 4));
    lg_drr_remove(&d, &f[3]);
    CHECK(d.head == &f[2] && d.tail == &f[2]);
    CHECK(invariants_ok(&d, f, 4));
    lg_drr_remove(&d, &f[2]); /* the only one */
    CHECK(d.head == NULL && d.tail == NULL && d.n_ready == 0);
    CHECK(invariants_ok(&d, f, 4));

    /* BUSY: leaves n_busy; a late done() for it is ignored; it can be reused afterwards. */
    lg_drr_add(&d, &f[0], 5000);
    lg_drr_add(&d, &f[1], 5000);
    CHECK(lg_drr_next(&d, &g) == &f[0]);
    CHECK_EQ_INT(d.n_busy, 1);
    lg_drr_remove(&d, &f[0]);
    CHECK_EQ_INT(d.n_busy, 0);
    CHECK(f[0].state == LG_DRR_IDLE && f[0].backlog == 0);
    lg_drr_done(&d, &f[0]);
    CHECK(f[0].state == LG_DRR_IDLE);
    CHECK(invariants_ok(&d, f, 4));
    EXPECT_GRANT(&d, &f[1], 5000); /* alone, nobody busy: solo */
    lg_drr_add(&d, &f[0], 10);
    EXPECT_GRANT(&d, &f[0], 10);
    CHECK(invariants_ok(&d, f, 4));
}

LG_TEST(test_auto_quantum)
{
    lg_drr_t d;
    lg_drr_init(&d, 0);

    /* Small reads: stays at the floor. */
    for (int i = 0; i < 1000; i++) {
        lg_drr_observe_read(&d, 100);
        CHECK(d.quantum >= LG_DRR_QUANTUM_MIN && d.quantum <= LG_DRR_QUANTUM_MAX);
    }
    CHECK_EQ_INT(d.quantum, LG_DRR_QUANTUM_MIN);
    CHECK_EQ_INT(d.ema_x16 >> 4, 100); /* the average itself converged on the reads */

    /* Bulk reads of 64 KiB: climbs monotonically to the ceiling, never beyond. */
    size_t last = d.quantum;
    for (int i = 0; i < 1000; i++) {
        lg_drr_observe_read(&d, 65536);
        CHECK(d.quantum >= last && d.quantum <= LG_DRR_QUANTUM_MAX);
        last = d.quantum;
    }
    CHECK_EQ_INT(d.quantum, LG_DRR_QUANTUM_MAX);

    /* Back to small reads: comes down (samples above the ceiling were clamped). */
    int steps = 0;
    while (d.quantum > LG_DRR_QUANTUM_MIN && steps < 1000) {
        lg_drr_observe_read(&d, 1);
        steps++;
    }
    CHECK_EQ_INT(d.quantum, LG_DRR_QUANTUM_MIN);
    CHECK(steps < 40); /* weight 1/8: 16384 → 1500 in ~19 reads */

    /* In-range reads: the quantum converges exactly on them. */
    for (int i = 0; i < 1000; i++)
        lg_drr_observe_read(&d, 4000);
    CHECK_EQ_INT(d.quantum, 4000);
    /* Exactly at the bounds and one beyond. */
    for (int i = 0; i < 1000; i++)
        lg_drr_observe_read(&d, LG_DRR_QUANTUM_MAX);
    CHECK_EQ_INT(d.quantum, LG_DRR_QUANTUM_MAX);
    for (int i = 0; i < 1000; i++)
        lg_drr_observe_read(&d, LG_DRR_QUANTUM_MAX + 1);
    CHECK_EQ_INT(d.quantum, LG_DRR_QUANTUM_MAX);
    for (int i = 0; i < 1000; i++)
        lg_drr_observe_read(&d, LG_DRR_QUANTUM_MIN);
    CHECK_EQ_INT(d.quantum, LG_DRR_QUANTUM_MIN);
    for (int i = 0; i < 1000; i++)
        lg_drr_observe_read(&d, LG_DRR_QUANTUM_MIN - 1);
    CHECK_EQ_INT(d.quantum, LG_DRR_QUANTUM_MIN);

    /* n == 0 is no sample; SIZE_MAX does not overflow the average. */
    uint64_t ema = d.ema_x16;
    lg_drr_observe_read(&d, 0);
    CHECK(d.ema_x16 == ema);
    lg_drr_observe_read(&d, SIZE_MAX);
    CHECK(d.quantum > LG_DRR_QUANTUM_MIN && d.quantum <= LG_DRR_QUANTUM_MAX);

    /* The grant follows the current quantum. */
    lg_drr_flow_t f[2] = {0};
    lg_drr_init(&d, 0);
    for (int i = 0; i < 1000; i++)
        lg_drr_observe_read(&d, 8192);
    lg_drr_add(&d, &f[0], 100000);
    lg_drr_add(&d, &f[1], 100000);
    EXPECT_GRANT(&d, &f[0], 8192);
}

LG_TEST(test_fixed_quantum)
{
    lg_drr_t d;
    lg_drr_init(&d, 3000);
    for (int i = 0; i < 1000; i++)
        lg_drr_observe_read(&d, 65536);
    CHECK_EQ_INT(d.quantum, 3000);
    CHECK_EQ_INT(d.ema_x16 >> 4, LG_DRR_QUANTUM_MAX); /* still averaged, for metrics */
    for (int i = 0; i < 1000; i++)
        lg_drr_observe_read(&d, 10);
    CHECK_EQ_INT(d.quantum, 3000);
    lg_drr_flow_t f[2] = {0};
    lg_drr_add(&d, &f[0], 7000);
    lg_drr_add(&d, &f[1], 7000);
    EXPECT_GRANT(&d, &f[0], 3000);
    EXPECT_GRANT(&d, &f[1], 3000);
    EXPECT_GRANT(&d, &f[0], 3000);
    EXPECT_GRANT(&d, &f[1], 3000);
    EXPECT_GRANT(&d, &f[0], 1000);
    EXPECT_GRANT(&d, &f[1], 1000); /* alone now: solo, but only 1000 left */
}

/* xorshift64*: a reproducible PRNG for the property test. */
static uint64_t rng_next(uint64_t *s)
{
    *s ^= *s >> 12;
    *s ^= *s << 25;
    *s ^= *s >> 27;
    return *s * 2685821657736338717ULL;
}

LG_TEST(test_fairness_property)
{
    enum { MAX_FLOWS = 32, TRIALS = 300 };
    uint64_t seed = 0x9e3779b97f4a7c15ULL;
    for (int trial = 0; trial < TRIALS; trial++) {
        lg_drr_t d;
        lg_drr_flow_t f[MAX_FLOWS];
        size_t granted[MAX_FLOWS] = {0}, total[MAX_FLOWS];
        size_t n = 2 + (size_t)(rng_next(&seed) % (MAX_FLOWS - 1));
        bool batch = trial % 2 == 1; /* batch: take every ready grant, then complete in order */
        size_t fixed = (trial % 3 == 0)   ? 0 /* auto, moved by random reads below */
                       : (trial % 3 == 1) ? 1 + (size_t)(rng_next(&seed) % 16) /* tiny */
                                          : 1 + (size_t)(rng_next(&seed) % 100000);
        memset(f, 0, sizeof(f));
        lg_drr_init(&d, fixed);
        for (int i = 0; i < 50; i++)
            lg_drr_observe_read(&d, rng_next(&seed) % 40000);
        size_t q = d.quantum;
        size_t sum = 0;
        for (size_t i = 0; i < n; i++) {
            total[i] = 1 + (size_t)(rng_next(&seed) % (40 * q)); /* up to 40 quanta */
            sum += total[i];
            lg_drr_add(&d, &f[i], total[i]);
        }
        bool all_backlogged = true;
        size_t served = 0;
        while (served < sum) {
            lg_drr_flow_t *taken[MAX_FLOWS];
            size_t nt = 0, g;
            lg_drr_flow_t *x;
            while ((x = lg_drr_next(&d, &g)) != NULL) {
                size_t i = (size_t)(x - f);
                CHECK(g > 0);
                granted[i] += g;
                served += g;
                taken[nt++] = x;
                if (!batch) break;
            }
            CHECK(nt > 0);
            CHECK(invariants_ok(&d, f, n));
            /*
             * While every flow still has bytes left, no two flows' service differs by more
             * than one quantum (DRR's bound; the deficit cap adds nothing since no credit is
             * carried) — and no single grant exceeds a quantum.
             */
            for (size_t i = 0; i < n && all_backlogged; i++) {
                if (granted[i] == total[i]) all_backlogged = false;
            }
            if (all_backlogged) {
                size_t lo = SIZE_MAX, hi = 0;
                for (size_t i = 0; i < n; i++) {
                    lo = LG_MIN(lo, granted[i]);
                    hi = LG_MAX(hi, granted[i]);
                }
                CHECK(hi - lo <= q);
                CHECK(hi - lo <= (1 + LG_DRR_DEFICIT_CAP_QUANTA) * q);
            }
            for (size_t k = 0; k < nt; k++)
                lg_drr_done(&d, taken[k]);
            CHECK(invariants_ok(&d, f, n));
        }
        for (size_t i = 0; i < n; i++) {
            CHECK_EQ_INT(granted[i], total[i]);
            CHECK(f[i].state == LG_DRR_IDLE);
        }
        CHECK(!lg_drr_pending(&d));
        CHECK_EQ_INT(d.granted_bytes, sum);
        CHECK_EQ_INT(d.n_busy, 0);
    }
}

LG_TEST(test_random_operations)
{
    /* Random add/next/return/done/remove/observe over weighted flows; the structure stays
     * consistent throughout. */
    enum { N = 16, STEPS = 200000 };
    uint64_t seed = 12345;
    lg_drr_t d;
    lg_drr_flow_t f[N];
    memset(f, 0, sizeof(f));
    for (int i = 0; i < N; i++)
        f[i].weight = (uint16_t)(i % 5); /* 0 (counts as 1) to 4 */
    lg_drr_init(&d, 0);
    for (int s = 0; s < STEPS; s++) {
        size_t i = (size_t)(rng_next(&seed) % N), g;
        lg_drr_flow_t *x;
        switch (rng_next(&seed) % 6) {
        case 0:
        case 1:
            lg_drr_add(&d, &f[i], (size_t)(rng_next(&seed) % 70000));
            break;
        case 2:
            x = lg_drr_next(&d, &g);
            if (x) {
                CHECK(g > 0 && x->state == LG_DRR_BUSY);
                CHECK(g <= LG_MAX((size_t)LG_DRR_SOLO_GRANT,
                                  LG_DRR_DEFICIT_CAP_QUANTA * lg_drr_flow_quantum(&d, x)));
                if (rng_next(&seed) % 3 == 0) lg_drr_return(&d, x, (size_t)(rng_next(&seed) % g));
            }
            break;
        case 3:
            lg_drr_done(&d, &f[i]);
            break;
        case 4:
            if (rng_next(&seed) % 8 == 0) lg_drr_remove(&d, &f[i]);
            break;
        default:
            lg_drr_observe_read(&d, (size_t)(rng_next(&seed) % 70000));
            break;
        }
        CHECK(invariants_ok(&d, f, N));
    }
}

/* lg_drr_take: a sparse flow is served at once, ahead of the ready list. */
LG_TEST(test_take_sparse)
{
    lg_drr_t d;
    lg_drr_flow_t a, b;
    memset(&a, 0, sizeof(a));
    memset(&b, 0, sizeof(b));
    lg_drr_init(&d, 1000);
    lg_drr_add(&d, &a, 5000);                       /* a is backlogged (READY, head) */
    lg_drr_add(&d, &b, 3000);                       /* b was IDLE: sparse */
    CHECK_EQ_INT(lg_drr_take(&d, &b, 65536), 3000); /* all of it, though the quantum is 1000 */
    CHECK(b.state == LG_DRR_BUSY);
    CHECK_EQ_INT(d.n_busy, 1);
    CHECK_EQ_INT(lg_drr_take(&d, &b, 65536), 0); /* not READY: nothing */
    lg_drr_done(&d, &b);
    CHECK(b.state == LG_DRR_IDLE);
    /* More than max(quantum, sparse_max) queued: the rest waits its turn at the tail. */
    lg_drr_add(&d, &b, 70000);
    CHECK_EQ_INT(lg_drr_take(&d, &b, 65536), 65536);
    lg_drr_done(&d, &b);
    CHECK(b.state == LG_DRR_READY && b.backlog == 70000 - 65536 && d.tail == &b && d.head == &a);
    CHECK_EQ_INT(d.granted_bytes, 3000 + 65536);
}

/* Pacing edges: off, full at start, capped at burst, no overflow on long gaps, wait rounding. */
LG_TEST(test_pace_edges)
{
    lg_pace_t p;
    lg_pace_init(&p, 0, 0, 0);
    CHECK(lg_pace_avail(&p, 5) == UINT64_MAX);
    CHECK_EQ_INT(lg_pace_wait(&p, 1000), 0);
    lg_pace_init(&p, 1000, 500, 0); /* 1000 B/s, burst 500 */
    CHECK_EQ_INT(lg_pace_avail(&p, 0), 500);
    lg_pace_spend(&p, 500);
    CHECK_EQ_INT(lg_pace_avail(&p, 0), 0);
    CHECK_EQ_INT(lg_pace_wait(&p, 1), 1000000);     /* 1 byte at 1000 B/s: 1 ms */
    CHECK_EQ_INT(lg_pace_wait(&p, 900), 500000000); /* capped to the burst: 500 bytes */
    CHECK_EQ_INT(lg_pace_avail(&p, 1500000), 1);    /* 1.5 ms: 1.5 bytes, 1 whole */
    lg_pace_spend(&p, 1);
    CHECK_EQ_INT(lg_pace_avail(&p, 2000000), 1);      /* the half byte was kept */
    CHECK_EQ_INT(lg_pace_avail(&p, UINT64_MAX), 500); /* a very long gap: full, no overflow */
    lg_pace_init(&p, UINT64_MAX, UINT64_MAX, 0);
    CHECK(lg_pace_avail(&p, UINT64_MAX) == UINT64_MAX);
}

/*
 * Pacing accuracy on a simulated clock, driven as lg_relay drives it: grants cut to the tokens
 * available; when the bucket is empty the clock jumps to the timer (a quantum's worth of tokens,
 * rounded up to whole milliseconds). 100 MB at 10 MB/s with a 64 KiB burst take 10 s ± 1 %,
 * every 100 ms window carries at most rate x 0.1 + burst, and 10 backlogged flows share the rate
 * with a Jain index >= 0.99.
 */
/*
 * One step of a paced worker on a simulated clock (ns), as lg_relay drives it: with no tokens the
 * clock jumps to the timer (a quantum's worth of tokens, rounded up to whole ms) and NULL is
 * returned; else the next flow's grant is cut to the tokens (the rest handed back as credit,
 * lg_drr_return), spent and completed, and the flow is returned with *g.
 */
static lg_drr_flow_t *pace_step(lg_drr_t *d, lg_pace_t *p, uint64_t *now, size_t *g)
{
    const uint64_t ms = 1000000;
    uint64_t avail = lg_pace_avail(p, *now);
    if (avail == 0) {
        *now += (lg_pace_wait(p, d->quantum) + ms - 1) / ms * ms;
        return NULL;
    }
    lg_drr_flow_t *x = lg_drr_next(d, g);
    if (x == NULL) return NULL;
    if (*g > avail) {
        lg_drr_return(d, x, *g - (size_t)avail);
        *g = (size_t)avail;
    }
    lg_pace_spend(p, *g);
    lg_drr_done(d, x);
    return x;
}

LG_TEST(test_pace_accuracy_and_fairness)
{
    enum { N = 10 };
    const uint64_t rate = 10000000, burst = 65536, total = 100000000;
    const uint64_t ms = 1000000;
    lg_pace_t p;
    lg_drr_t d;
    lg_drr_flow_t f[N];
    uint64_t got[N] = {0};
    memset(f, 0, sizeof(f));
    lg_drr_init(&d, 16384);
    lg_pace_init(&p, rate, burst, 0);
    for (int i = 0; i < N; i++)
        lg_drr_add(&d, &f[i], total / N);
    uint64_t now = 0, sent = 0;
    /* Bytes granted per 1 ms slot, to check every 100 ms window. */
    static uint32_t slot[20000];
    memset(slot, 0, sizeof(slot));
    while (sent < total) {
        size_t g = 0;
        lg_drr_flow_t *x = pace_step(&d, &p, &now, &g);
        if (x == NULL) continue; /* the clock jumped to the timer */
        got[x - f] += g;
        sent += g;
        CHECK(now / ms < 20000);
        slot[now / ms] += (uint32_t)g;
    }
    /* The last grant happens at `now`; the transfer ends when its bytes are out. */
    double secs = (double)now / 1e9;
    CHECK(secs > 9.9 && secs < 10.1);
    for (uint64_t start = 0; start + 100 <= now / ms; start++) {
        uint64_t w = 0;
        for (uint64_t k = start; k < start + 100; k++)
            w += slot[k];
        CHECK(w <= rate / 10 + burst);
    }
    double sum = 0, sq = 0;
    for (int i = 0; i < N; i++) {
        sum += (double)got[i];
        sq += (double)got[i] * (double)got[i];
    }
    CHECK(sum * sum / (N * sq) >= 0.99);
}

/*
 * The fairness bound of lg_drr.h: flows of weights 1, 2, 3 (and random sets of up to 8 flows
 * with weights 1..LG_DRR_WEIGHT_MAX), all backlogged, granted in turn; a random part of some
 * grants is handed back (lg_drr_return), as pacing and the iovec limit do. After every grant,
 * for every pair, D = bytes_i / w_i - bytes_j / w_j stays within (-2q, 2q) and its range over
 * the run (the largest difference over any interval of grants) is below 3q. In the 1:2:3 run the
 * shares after 300 rounds are 1/6, 2/6, 3/6 within 2q / (300 q) of each flow's share.
 */
static void weighted_run(const uint16_t *weights, size_t n, size_t q, int cut_mode, uint64_t *seed,
                         size_t rounds, uint64_t *got, double *prefix_max, double *range_max)
{
    enum { MAXN = 8 };
    lg_drr_t d;
    lg_drr_flow_t f[MAXN];
    double dmin[MAXN][MAXN], dmax[MAXN][MAXN];
    memset(f, 0, sizeof(f));
    lg_drr_init(&d, q);
    uint64_t wsum = 0;
    for (size_t i = 0; i < n; i++) {
        f[i].weight = weights[i];
        got[i] = 0;
        wsum += weights[i];
        lg_drr_add(&d, &f[i], (size_t)1 << 40); /* backlogged throughout */
        for (size_t j = 0; j < n; j++)
            dmin[i][j] = dmax[i][j] = 0;
    }
    *prefix_max = *range_max = 0;
    uint64_t target = (uint64_t)rounds * q * wsum, sent = 0;
    while (sent < target) {
        size_t g = 0;
        lg_drr_flow_t *x = lg_drr_next(&d, &g);
        if (x == NULL) return;
        /* cut_mode 1: a random part of one grant in two comes back; 2: every grant is cut to
         * at most q/3 bytes (a bucket that never holds more). */
        size_t keep = g;
        if (cut_mode == 1 && rng_next(seed) % 2 == 0) keep = 1 + (size_t)(rng_next(seed) % g);
        if (cut_mode == 2) keep = LG_MIN(g, LG_MAX(q / 3, (size_t)1));
        lg_drr_return(&d, x, g - keep);
        got[x - f] += keep;
        sent += keep;
        lg_drr_done(&d, x);
        for (size_t i = 0; i < n; i++) {
            for (size_t j = 0; j < n; j++) {
                double v = (double)got[i] / weights[i] - (double)got[j] / weights[j];
                if (v < dmin[i][j]) dmin[i][j] = v;
                if (v > dmax[i][j]) dmax[i][j] = v;
                if (v > *prefix_max) *prefix_max = v;
                if (dmax[i][j] - dmin[i][j] > *range_max) *range_max = dmax[i][j] - dmin[i][j];
            }
        }
    }
}

LG_TEST(test_weighted_shares)
{
    uint64_t seed = 0x5eed5eedULL, got[8];
    double prefix, range;
    const uint16_t w123[3] = {1, 2, 3};
    const size_t q = 1500;
    for (int mode = 0; mode < 3; mode++) {
        weighted_run(w123, 3, q, mode, &seed, 300, got, &prefix, &range);
        CHECK(prefix < 2.0 * q);
        CHECK(range < 3.0 * q);
        double total = (double)(got[0] + got[1] + got[2]);
        for (int i = 0; i < 3; i++) {
            double share = (double)got[i] / total, want = (i + 1) / 6.0;
            CHECK(share > want * (1 - 2.0 / 300) && share < want * (1 + 2.0 / 300));
        }
    }
    for (int trial = 0; trial < 200; trial++) {
        uint16_t w[8];
        size_t n = 2 + (size_t)(rng_next(&seed) % 7);
        for (size_t i = 0; i < n; i++)
            w[i] = (uint16_t)(1 + rng_next(&seed) % LG_DRR_WEIGHT_MAX);
        size_t qq = 1 + (size_t)(rng_next(&seed) % 20000);
        weighted_run(w, n, qq, trial % 3, &seed, 20, got, &prefix, &range);
        CHECK(prefix < 2.0 * qq);
        CHECK(range < 3.0 * qq);
    }
}

/*
 * Weights under pacing, driven as lg_relay drives it (as test_pace_accuracy_and_fairness): 20 MB/s,
 * 64 KiB burst, auto-sized quantum of 16 KiB, two flows of weight 1 and two of weight 3, 4 s on a
 * simulated clock. The weight-3 flows get 3 times the bytes (within 1 %); without lg_drr_return
 * each grant would be cut to the bucket and the ratio would be 1.
 */
LG_TEST(test_weighted_pacing)
{
    enum { N = 4 };
    const uint64_t rate = 20000000, burst = 65536, ms = 1000000;
    const uint16_t w[N] = {1, 3, 1, 3};
    lg_pace_t p;
    lg_drr_t d;
    lg_drr_flow_t f[N];
    uint64_t got[N] = {0};
    memset(f, 0, sizeof(f));
    lg_drr_init(&d, 16384);
    lg_pace_init(&p, rate, burst, 0);
    for (int i = 0; i < N; i++) {
        f[i].weight = w[i];
        lg_drr_add(&d, &f[i], (size_t)1 << 40);
    }
    uint64_t now = 0;
    while (now < 4000 * ms) {
        size_t g = 0;
        lg_drr_flow_t *x = pace_step(&d, &p, &now, &g);
        if (x != NULL) got[x - f] += g;
    }
    double ratio = (double)(got[1] + got[3]) / (double)(got[0] + got[2]);
    CHECK(ratio > 2.97 && ratio < 3.03);
    double secs = (double)now / 1e9, total = (double)(got[0] + got[1] + got[2] + got[3]);
    CHECK(total / secs > rate * 0.99 && total / secs < rate * 1.01 + burst / secs);
}

/*
 * scheduler.flowRate on a simulated clock, driven as lg_relay drives it: a link that writes
 * 50 MB/s (each grant advances the clock by its bytes / 50 MB/s); flow A capped at 2 MB/s by its
 * own bucket (100 ms of its rate), B and C uncapped. At its visit A's grant is cut to its tokens;
 * with none it hands the whole grant back (lg_drr_return) and stays BUSY, parked off the round
 * until the timer (a quantum's worth of its tokens, whole ms) brings it back with lg_drr_done.
 * Over 3 s A moves 2 MB/s within 1 % (plus its first bucket), B and C share the rest evenly, and
 * the link never idles while B and C have bytes.
 */
LG_TEST(test_flow_rate_cap)
{
    const uint64_t link = 50000000, cap = 2000000, ms = 1000000, end = 3000 * ms;
    const uint64_t fburst = LG_MAX(cap / 10, (uint64_t)16384);
    lg_drr_t d;
    lg_drr_flow_t f[3];
    lg_pace_t a;
    uint64_t got[3] = {0}, now = 0, wake = 0;
    bool parked = false;
    memset(f, 0, sizeof(f));
    lg_drr_init(&d, 16384);
    lg_pace_init(&a, cap, fburst, 0);
    for (int i = 0; i < 3; i++)
        lg_drr_add(&d, &f[i], (size_t)1 << 40);
    while (now < end) {
        if (parked && now >= wake) {
            parked = false;
            lg_drr_done(&d, &f[0]); /* back with its credit, at the head */
        }
        size_t g = 0;
        lg_drr_flow_t *x = lg_drr_next(&d, &g);
        CHECK(x != NULL); /* B and C are always ready: the link never idles */
        if (x == &f[0]) {
            uint64_t avail = lg_pace_avail(&a, now);
            if (avail == 0) {
                lg_drr_return(&d, x, g);
                parked = true;
                wake = now +
                       (lg_pace_wait(&a, LG_MIN((uint64_t)d.quantum, fburst)) + ms - 1) / ms * ms;
                continue;
            }
            if (g > avail) {
                lg_drr_return(&d, x, g - (size_t)avail);
                g = (size_t)avail;
            }
            lg_pace_spend(&a, g);
        }
        got[x - f] += g;
        now += g * 1000000000ull / link;
        lg_drr_done(&d, x);
    }
    double secs = (double)now / 1e9;
    double ra = (double)got[0] / secs, rb = (double)got[1] / secs, rc = (double)got[2] / secs;
    CHECK(ra > cap * 0.99 && ra < cap * 1.01 + fburst / secs);
    CHECK(rb / rc > 0.99 && rb / rc < 1.01);
    CHECK(ra + rb + rc > link * 0.99);
}

/*
 * The read debt (lg_drr_read_debt) as the relay uses it, on a simulated worker: 40 flows, each
 * with a socket that the sender refills every turn (by `rate`, up to its window) and that the
 * flow reads, when it may, in splices of up to `chunk` bytes until it is empty or the flow read
 * budget + drain in the turn. 30 flows keep at least a budget in their sockets, with windows
 * from 256 KiB to 8 MiB; 10 have windows below the budget. After every turn:
 *  - each backlogged flow has read between T x b and T x b + drain (the bound in lg_drr.h), so
 *    any two differ by at most the drain, whatever their windows;
 *  - each small-window flow read all its sender gave (it never skips a turn);
 *  - without the debt (every flow forgiven each turn) the backlogged flows' totals spread
 *    without bound: past 10 x (budget + drain) after the run, so the check above can fail.
 */
static void debt_run(bool keep_debt, uint64_t *spread_out, bool *bound_ok, bool *small_ok)
{
    enum { N = 40, BACKLOGGED = 30, TURNS = 2000 };
    const uint64_t b = 256u << 10, drain = 4u << 20, chunk = 256u << 10;
    uint64_t seed = 0xdeb7deb7ULL;
    uint64_t window[N], rate[N], sock[N], used[N], got[N], given[N];
    for (size_t i = 0; i < N; i++) {
        if (i < BACKLOGGED) {
            window[i] = b + rng_next(&seed) % ((8u << 20) - b);
            rate[i] = b + rng_next(&seed) % (2u << 20); /* refills a budget or more per turn */
        } else {
            window[i] = 16384 + rng_next(&seed) % (b - 16384); /* below the budget */
            rate[i] = window[i];
        }
        sock[i] = window[i];
        used[i] = got[i] = given[i] = 0;
    }
    *bound_ok = *small_ok = true;
    for (uint64_t t = 1; t <= TURNS; t++) {
        for (size_t i = 0; i < N; i++) {
            used[i] = keep_debt ? lg_drr_read_debt(used[i], b, 1, false) : 0;
            if (used[i] >= b) continue; /* in debt: skips this turn */
            while (sock[i] > 0 && used[i] < b + drain) {
                uint64_t n = LG_MIN(LG_MIN(chunk, sock[i]), b + drain - used[i]);
                sock[i] -= n;
                used[i] += n;
                got[i] += n;
            }
        }
        uint64_t lo = UINT64_MAX, hi = 0;
        for (size_t i = 0; i < N; i++) {
            if (i < BACKLOGGED) {
                if (keep_debt && (got[i] < t * b || got[i] > t * b + drain)) *bound_ok = false;
                lo = LG_MIN(lo, got[i]);
                hi = LG_MAX(hi, got[i]);
            } else if (got[i] != given[i] + window[i]) {
                *small_ok = false; /* it read less than its sender gave */
            }
            uint64_t add = LG_MIN(rate[i], window[i] - sock[i]);
            sock[i] += add;
            given[i] += add;
        }
        *spread_out = hi - lo;
    }
}

LG_TEST(test_read_debt_bound)
{
    uint64_t spread = 0;
    bool bound_ok = false, small_ok = false;
    debt_run(true, &spread, &bound_ok, &small_ok);
    CHECK(bound_ok);
    CHECK(small_ok);
    CHECK(spread <= (4u << 20));
    debt_run(false, &spread, &bound_ok, &small_ok);
    CHECK(spread > 10ull * ((256u << 10) + (4u << 20)));
    /* The helper's edges: alone owes nothing; paid per turn; never below 0; no overflow. */
    CHECK(lg_drr_read_debt(5000, 1000, 1, true) == 0);
    CHECK(lg_drr_read_debt(5000, 1000, 1, false) == 4000);
    CHECK(lg_drr_read_debt(5000, 1000, 4, false) == 1000);
    CHECK(lg_drr_read_debt(5000, 1000, 5, false) == 0);
    CHECK(lg_drr_read_debt(5000, 1000, 9, false) == 0);
    CHECK(lg_drr_read_debt(UINT32_MAX, 1u << 26, UINT32_MAX, false) == 0);
    CHECK(lg_drr_read_debt(UINT32_MAX, 0, 3, false) == UINT32_MAX);
}

int main(void)
{
    LG_RUN(test_init);
    LG_RUN(test_add);
    LG_RUN(test_round_robin_order);
    LG_RUN(test_quantum_slices_three_flows);
    LG_RUN(test_batch_pass_gets_no_solo);
    LG_RUN(test_solo_grant);
    LG_RUN(test_busy_skipped_and_rejoins_tail);
    LG_RUN(test_deficit_reset_when_emptied);
    LG_RUN(test_deficit_cap);
    LG_RUN(test_return_resumes_visit);
    LG_RUN(test_weight_quanta);
    LG_RUN(test_remove_each_state);
    LG_RUN(test_auto_quantum);
    LG_RUN(test_fixed_quantum);
    LG_RUN(test_fairness_property);
    LG_RUN(test_random_operations);
    LG_RUN(test_take_sparse);
    LG_RUN(test_pace_edges);
    LG_RUN(test_pace_accuracy_and_fairness);
    LG_RUN(test_weighted_shares);
    LG_RUN(test_weighted_pacing);
    LG_RUN(test_flow_rate_cap);
    LG_RUN(test_read_debt_bound);
    LG_TEST_END();
}
