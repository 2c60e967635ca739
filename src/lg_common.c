/*
 * lg_common.c — allocation wrappers with fault injection (see lg_common.h).
 *
 * In a build with LG_FAULT_INJECTION (the ASan test build), the wrappers also count the
 * allocations made and the blocks still live, and injection can be limited to the threads that
 * armed themselves (the engine's workers), so that a test can fail "the Nth allocation of a
 * connection's life" without the JS thread's allocations shifting the count.
 */
#include "lg_common.h"

#include <stdatomic.h>
#include <stdlib.h>

/* Countdown to the next injected failure; negative means "never fail". */
static _Atomic long fail_countdown = -1;

#ifdef LG_FAULT_INJECTION
static _Atomic long live_blocks, total_allocs;
static atomic_bool armed_only;
static _Thread_local bool thread_armed;

void lg_alloc_arm_thread(void)
{
    thread_armed = true;
}

void lg_alloc_fail_armed_only(bool on)
{
    atomic_store(&armed_only, on);
}

long lg_alloc_live(void)
{
    return atomic_load(&live_blocks);
}

long lg_alloc_total(void)
{
    return atomic_load(&total_allocs);
}

#define COUNT_ALLOC(p)                                                                             \
    do {                                                                                           \
        if ((p) != NULL) {                                                                         \
            atomic_fetch_add(&live_blocks, 1);                                                     \
            if (!atomic_load(&armed_only) || thread_armed) atomic_fetch_add(&total_allocs, 1);     \
        }                                                                                          \
    } while (0)
#define COUNT_FREE(p)                                                                              \
    do {                                                                                           \
        if ((p) != NULL) atomic_fetch_sub(&live_blocks, 1);                                        \
    } while (0)
#else
#define COUNT_ALLOC(p) (void)(p)
#define COUNT_FREE(p)  (void)(p)
#endif

static bool should_fail(void)
{
    long v = atomic_load_explicit(&fail_countdown, memory_order_relaxed);
    if (LG_LIKELY(v < 0)) return false;
#ifdef LG_FAULT_INJECTION
    if (atomic_load(&armed_only) && !thread_armed) return false;
#endif
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
    void *p = malloc(size);
    COUNT_ALLOC(p);
    return p;
}

void *lg_calloc(size_t n, size_t size)
{
    if (should_fail()) return NULL;
    void *p = calloc(n, size);
    COUNT_ALLOC(p);
    return p;
}

void *lg_realloc(void *p, size_t size)
{
    if (should_fail()) return NULL;
    void *q = realloc(p, size);
    if (p == NULL) COUNT_ALLOC(q);
    return q;
}

void lg_free(void *p)
{
    COUNT_FREE(p);
    free(p);
}
