/*
 * lg_theap.c — the deadline heap (see lg_theap.h).
 *
 * A binary min-heap in an array: v[i]'s children are v[2i+1] and v[2i+2], and no child's
 * deadline is earlier than its parent's. Each node records its position (pos = index + 1), so a
 * node is moved or removed in O(log n) without a search.
 */
#include "lg_theap.h"

int lg_theap_reserve(lg_theap_t *h, size_t n)
{
    if (n <= h->cap) return 0;
    size_t cap = h->cap ? h->cap : 64;
    while (cap < n)
        cap *= 2;
    lg_theap_node_t **v = lg_realloc(h->v, cap * sizeof(*v));
    if (v == NULL) return -ENOMEM;
    h->v = v;
    h->cap = cap;
    return 0;
}

void lg_theap_free(lg_theap_t *h)
{
    for (size_t i = 0; i < h->n; i++)
        h->v[i]->pos = 0;
    lg_free(h->v);
    h->v = NULL;
    h->n = h->cap = 0;
}

static void place(lg_theap_t *h, size_t i, lg_theap_node_t *x)
{
    h->v[i] = x;
    x->pos = (uint32_t)(i + 1);
}

/* Move x, which belongs at index i, up or down until the order holds. */
static void settle(lg_theap_t *h, size_t i, lg_theap_node_t *x)
{
    while (i > 0) {
        size_t parent = (i - 1) / 2;
        if (h->v[parent]->when <= x->when) break;
        place(h, i, h->v[parent]);
        i = parent;
    }
    for (;;) {
        size_t child = 2 * i + 1;
        if (child >= h->n) break;
        if (child + 1 < h->n && h->v[child + 1]->when < h->v[child]->when) child++;
        if (h->v[child]->when >= x->when) break;
        place(h, i, h->v[child]);
        i = child;
    }
    place(h, i, x);
}

void lg_theap_set(lg_theap_t *h, lg_theap_node_t *x, uint64_t when)
{
    x->when = when;
    if (x->pos != 0) {
        settle(h, x->pos - 1, x);
        return;
    }
    h->n++;
    settle(h, h->n - 1, x);
}

void lg_theap_remove(lg_theap_t *h, lg_theap_node_t *x)
{
    if (x->pos == 0) return;
    size_t i = x->pos - 1;
    x->pos = 0;
    lg_theap_node_t *last = h->v[--h->n];
    if (last != x) settle(h, i, last);
}
