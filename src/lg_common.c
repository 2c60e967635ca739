/*
 * lg_common.c — allocation wrappers with fault injection (see lg_common.h).
 */
#include "lg_common.h"

#include <stdatomic.h>
#include <stdlib.h>

/* Countdown to the next injected failure; negative means "never fail". */
static _Atomic long fail_countdown = -1;

static bool should_fail(void)
{
    long v = atomic_load_explicit(&fail_countdown, memory_order_relaxed);
    if (LG_LIKELY(v < 0)) return false;
    v = atomic_fetch_sub_explicit(&fail_countdown, 1, memory_order_relaxed);
    if (v == 0) {
        /* This allocation fails; later ones succeed. */
        atomic_store_explicit(&fail_countdown, -1, memory_order_relaxed);
        return true;
    }
    return false;
}

void lg_alloc_fail_after(long n)
{
    atomic_store_explicit(&fail_countdown, n, memory_order_relaxed);
}

void *lg_malloc(size_t size)
{
    if (should_fail()) return NULL;
    return malloc(size);
}

void *lg_calloc(size_t n, size_t size)
{
    if (should_fail()) return NULL;
    return calloc(n, size);
}

void *lg_realloc(void *p, size_t size)
{
    if (should_fail()) return NULL;
    return realloc(p, size);
}

void lg_free(void *p)
{
    free(p);
}
