/*
 * lg_theap.h — a min-heap of deadlines (pure core): the per-worker timer of every connection.
 *
 * Each connection has one deadline at a time (lg_conn.h). Instead of one libuv timer per
 * connection (152 bytes, and a handle to close), the connection embeds an lg_theap_node_t
 * (16 bytes) and the worker keeps them in one binary heap (an array of pointers, 8 bytes per
 * connection of its peak) with one libuv timer armed for the earliest deadline. An idle
 * connection therefore costs 24 bytes of timer instead of 152 (bench S3, issue 16).
 *
 * The heap never allocates while a node is set or removed: lg_theap_reserve() grows the array
 * beforehand (at accept), so arming a deadline cannot fail. Deadlines are absolute times in the
 * caller's unit (loop milliseconds); equal deadlines come out in no particular order.
 *
 * Not thread-safe: a heap and its nodes belong to one worker thread.
 */
#ifndef LG_THEAP_H
#define LG_THEAP_H

#include "lg_common.h"

/* Embedded in its owner. Zero-initialise: not in the heap. */
typedef struct lg_theap_node_s {
    uint64_t when; /* the deadline, while in the heap */
    uint32_t pos;  /* 1 + the index in the heap's array; 0: not in the heap */
} lg_theap_node_t;

/* Zero-initialise to get an empty heap; lg_theap_free() when done. */
typedef struct lg_theap_s {
    lg_theap_node_t **v;
    size_t n;   /* nodes in the heap */
    size_t cap; /* room in v */
} lg_theap_t;

/* Make room for `n` nodes (grows geometrically). Returns 0 or -ENOMEM (the heap is unchanged). */
int lg_theap_reserve(lg_theap_t *h, size_t n);

/* Free the array (the nodes are the owners'). The heap is empty afterwards. */
void lg_theap_free(lg_theap_t *h);

/* Set x's deadline: insert it, or move it if it is in the heap already. The caller has reserved
 * room for it (never fails). */
void lg_theap_set(lg_theap_t *h, lg_theap_node_t *x, uint64_t when);

/* Take x out of the heap (no-op when it is not in it). */
void lg_theap_remove(lg_theap_t *h, lg_theap_node_t *x);

/* The node with the earliest deadline, or NULL when the heap is empty. */
static inline lg_theap_node_t *lg_theap_min(const lg_theap_t *h)
{
    return h->n > 0 ? h->v[0] : NULL;
}

static inline bool lg_theap_armed(const lg_theap_node_t *x)
{
    return x->pos != 0;
}

#endif /* LG_THEAP_H */
