/*
 * lg_common.h — definitions shared by every legato C file.
 *
 * Return conventions (STYLE.md): fallible functions return 0 or a negative errno-style code
 * (-ENOMEM, -EINVAL, ...). Incremental parsers return one of the LG_OK / LG_AGAIN / LG_DECLINED /
 * LG_ERROR codes below and record a reason in their output struct.
 *
 * Allocation goes through lg_malloc()/lg_calloc()/lg_free() so that tests can make it fail
 * (lg_alloc_fail_after); out of memory must close one connection, never the process.
 */
#ifndef LG_COMMON_H
#define LG_COMMON_H

#include <stddef.h>
#include <stdint.h>
#include <stdbool.h>
#include <errno.h>

/* Incremental parser results. */
#define LG_OK       0 /* complete: the output is filled in */
#define LG_AGAIN    1 /* need more bytes */
#define LG_DECLINED 2 /* well-formed, but not the protocol this parser reads (e.g. not TLS) */
#define LG_ERROR    3 /* malformed, or over a limit: the reason field says which */

#define LG_ARRAY_SIZE(a)                   (sizeof(a) / sizeof((a)[0]))
#define LG_MIN(a, b)                       ((a) < (b) ? (a) : (b))
#define LG_MAX(a, b)                       ((a) > (b) ? (a) : (b))
#define LG_CONTAINER_OF(ptr, type, member) ((type *)((char *)(ptr)-offsetof(type, member)))

/* Exchange two lvalues of type T. */
#define LG_SWAP(T, a, b)                                                                           \
    do {                                                                                           \
        T lg_swap_ = (a);                                                                          \
        (a) = (b);                                                                                 \
        (b) = lg_swap_;                                                                            \
    } while (0)

#if defined(__GNUC__)
#define LG_UNUSED      __attribute__((unused))
#define LG_LIKELY(x)   __builtin_expect(!!(x), 1)
#define LG_UNLIKELY(x) __builtin_expect(!!(x), 0)
#else
#define LG_UNUSED
#define LG_LIKELY(x)   (x)
#define LG_UNLIKELY(x) (x)
#endif

/*
 * Allocation wrappers. lg_alloc_fail_after(n) makes the (n+1)-th allocation from now fail and
 * every later one succeed again (n < 0 disables injection). Thread-safe: the countdown is atomic.
 */
void *lg_malloc(size_t size);
void *lg_calloc(size_t n, size_t size);
void *lg_realloc(void *p, size_t size);
void lg_free(void *p);
void lg_alloc_fail_after(long n);

#ifdef LG_FAULT_INJECTION
/* Fault-injection builds only (see lg_common.c): limit injection to armed threads, arm the
 * calling thread, and read the allocations made (by armed threads, when limited) and the blocks
 * still live. */
void lg_alloc_fail_armed_only(bool on);
void lg_alloc_arm_thread(void);
long lg_alloc_total(void);
long lg_alloc_live(void);
#endif

#endif /* LG_COMMON_H */
