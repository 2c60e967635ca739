/*
 * test_theap.c — unit tests of the deadline heap (src/lg_theap.c).
 *
 * A structural checker (heap_ok) verifies after every step that the order holds and that every
 * node's recorded position is where it is; a randomised test runs sets, moves and removals
 * against a plain array of expected deadlines and pops everything in order at the end.
 */
#include "../../src/lg_theap.c"

#include <stdlib.h>

#include "lg_test.h"

/* The heap order holds and every node knows its index. */
static bool heap_ok(const lg_theap_t *h)
{
    for (size_t i = 0; i < h->n; i++) {
        if (h->v[i]->pos != i + 1) return false;
        if (i > 0 && h->v[(i - 1) / 2]->when > h->v[i]->when) return false;
    }
    return true;
}

LG_TEST(empty_heap_has_no_minimum)
{
    lg_theap_t h = {0};
    CHECK(lg_theap_min(&h) == NULL);
    lg_theap_node_t x = {0};
    CHECK(!lg_theap_armed(&x));
    lg_theap_remove(&h, &x); /* not in the heap: no-op */
    CHECK(h.n == 0);
    lg_theap_free(&h);
}

LG_TEST(set_move_remove_keep_the_earliest_first)
{
    lg_theap_t h = {0};
    lg_theap_node_t a = {0}, b = {0}, c = {0};
    CHECK_EQ_INT(lg_theap_reserve(&h, 3), 0);
    lg_theap_set(&h, &a, 30);
    lg_theap_set(&h, &b, 10);
    lg_theap_set(&h, &c, 20);
    CHECK(heap_ok(&h));
    CHECK(lg_theap_min(&h) == &b);
    lg_theap_set(&h, &b, 40); /* moved later: c is first now */
    CHECK(heap_ok(&h) && lg_theap_min(&h) == &c);
    lg_theap_set(&h, &a, 5); /* moved earlier */
    CHECK(heap_ok(&h) && lg_theap_min(&h) == &a);
    lg_theap_remove(&h, &a);
    CHECK(!lg_theap_armed(&a) && lg_theap_armed(&b) && lg_theap_armed(&c));
    CHECK(heap_ok(&h) && h.n == 2 && lg_theap_min(&h) == &c);
    lg_theap_remove(&h, &b); /* the last slot */
    CHECK(heap_ok(&h) && h.n == 1 && lg_theap_min(&h) == &c);
    lg_theap_remove(&h, &c);
    CHECK(h.n == 0 && lg_theap_min(&h) == NULL);
    lg_theap_free(&h);
}

LG_TEST(reserve_grows_and_refuses_nothing_it_has)
{
    lg_theap_t h = {0};
    CHECK_EQ_INT(lg_theap_reserve(&h, 1), 0);
    size_t cap = h.cap;
    CHECK(cap >= 1);
    CHECK_EQ_INT(lg_theap_reserve(&h, cap), 0);
    CHECK(h.cap == cap); /* no growth when there is room */
    CHECK_EQ_INT(lg_theap_reserve(&h, cap + 1), 0);
    CHECK(h.cap >= cap + 1);
    lg_alloc_fail_after(0);
    int rc = lg_theap_reserve(&h, h.cap * 4);
    lg_alloc_fail_after(-1);
    CHECK_EQ_INT(rc, -ENOMEM);
    CHECK(h.v != NULL && h.cap >= cap + 1); /* unchanged */
    lg_theap_free(&h);
    CHECK(h.v == NULL && h.cap == 0);
}

LG_TEST(free_disarms_the_nodes_left)
{
    lg_theap_t h = {0};
    lg_theap_node_t a = {0};
    CHECK_EQ_INT(lg_theap_reserve(&h, 1), 0);
    lg_theap_set(&h, &a, 1);
    lg_theap_free(&h);
    CHECK(!lg_theap_armed(&a));
}

#define RN 500

LG_TEST(random_operations_match_a_reference)
{
    static lg_theap_node_t nodes[RN];
    static uint64_t expect[RN]; /* UINT64_MAX: not in the heap */
    lg_theap_t h = {0};
    memset(nodes, 0, sizeof(nodes));
    CHECK_EQ_INT(lg_theap_reserve(&h, RN), 0);
    srand(16);
    for (size_t i = 0; i < RN; i++)
        expect[i] = UINT64_MAX;
    for (int step = 0; step < 20000; step++) {
        size_t i = (size_t)rand() % RN;
        int op = rand() % 4;
        if (op < 3) {
            uint64_t when = (uint64_t)(rand() % 1000); /* many ties */
            lg_theap_set(&h, &nodes[i], when);
            expect[i] = when;
        } else {
            lg_theap_remove(&h, &nodes[i]);
            expect[i] = UINT64_MAX;
        }
        if (step % 97 == 0) CHECK(heap_ok(&h));
        /* The minimum is a node with the earliest expected deadline. */
        uint64_t least = UINT64_MAX;
        size_t n = 0;
        for (size_t k = 0; k < RN; k++) {
            if (expect[k] != UINT64_MAX) n++;
            if (expect[k] < least) least = expect[k];
        }
        CHECK_EQ_INT(h.n, n);
        if (n > 0) CHECK(lg_theap_min(&h)->when == least);
    }
    CHECK(heap_ok(&h));
    /* Pop everything: non-decreasing, and each node's own deadline. */
    uint64_t last = 0;
    while (lg_theap_min(&h) != NULL) {
        lg_theap_node_t *x = lg_theap_min(&h);
        size_t k = (size_t)(x - nodes);
        CHECK(x->when == expect[k] && x->when >= last);
        last = x->when;
        lg_theap_remove(&h, x);
        expect[k] = UINT64_MAX;
        CHECK(heap_ok(&h));
    }
    for (size_t k = 0; k < RN; k++)
        CHECK(expect[k] == UINT64_MAX && !lg_theap_armed(&nodes[k]));
    lg_theap_free(&h);
}

int main(void)
{
    LG_RUN(empty_heap_has_no_minimum);
    LG_RUN(set_move_remove_keep_the_earliest_first);
    LG_RUN(reserve_grows_and_refuses_nothing_it_has);
    LG_RUN(free_disarms_the_nodes_left);
    LG_RUN(random_operations_match_a_reference);
    LG_TEST_END();
}
