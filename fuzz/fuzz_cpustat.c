/*
 * fuzz_cpustat.c — libFuzzer target for the /proc/<pid>/task/<tid>/stat parser and the CPU
 * permille arithmetic (src/lg_balancer.c: lg_cpu_parse_stat, lg_cpu_permille).
 *
 * The input is a stat line as read from the file (any bytes). It is parsed whole and cut at
 * every length up to FUZZ_PREFIXES bytes from the end (the shell may read a short line), with
 * the bytes past each length ASan-poisoned so that a read beyond `len` is reported.
 *
 * Checks, aborting on any failure:
 *   - lg_cpu_parse_stat agrees with a reference written independently and as plainly as possible
 *     (forward scan for the last ')', prefix checked by its first '(', the rest split into
 *     tokens then each token judged, 128-bit arithmetic for overflow): same return code, same
 *     ticks on success, *ticks untouched on failure;
 *   - lg_cpu_permille, fed with the parsed ticks (or the first input bytes) and an interval and
 *     tick rate taken from the last input bytes, agrees with a 128-bit reference and is within
 *     0..1000.
 */
#include "../src/lg_balancer.c"

#include <stdio.h>
#include <stdlib.h>

#if defined(__has_feature)
#if __has_feature(address_sanitizer)
#include <sanitizer/asan_interface.h>
#define POISON(p, n)   __asan_poison_memory_region((p), (n))
#define UNPOISON(p, n) __asan_unpoison_memory_region((p), (n))
#endif
#endif
#ifndef POISON
#define POISON(p, n)   ((void)(p), (void)(n))
#define UNPOISON(p, n) ((void)(p), (void)(n))
#endif

#define FUZZ_PREFIXES    64          /* shorter lengths parsed besides the whole input */
#define FUZZ_TICKS_UNSET 0x5a5a5a5aU /* what *ticks holds before a call */

#define FUZZ_ASSERT(cond)                                                                          \
    do {                                                                                           \
        if (!(cond)) {                                                                             \
            fprintf(stderr, "fuzz_cpustat: check failed at line %d: %s\n", __LINE__, #cond);       \
            abort();                                                                               \
        }                                                                                          \
    } while (0)

typedef unsigned __int128 u128;

static bool is_digit(char c)
{
    return c >= '0' && c <= '9';
}

static bool is_sep(char c)
{
    return c == ' ' || c == '\n' || c == '\0';
}

/* A token of digits only, 1..20 of them, as a 128-bit value; false otherwise. */
static bool ref_number(const char *s, size_t len, u128 *out)
{
    if (len == 0 || len > 20) return false;
    u128 v = 0;
    for (size_t i = 0; i < len; i++) {
        if (!is_digit(s[i])) return false;
        v = v * 10 + (u128)(s[i] - '0');
    }
    *out = v;
    return true;
}

static int ref_parse(const char *buf, size_t len, uint64_t *ticks)
{
    /* The first '(' must follow "<digits> " exactly. */
    size_t open = len;
    for (size_t i = 0; i < len; i++) {
        if (buf[i] == '(') {
            open = i;
            break;
        }
    }
    if (open == len || open < 2 || buf[open - 1] != ' ') return -EINVAL;
    for (size_t i = 0; i + 1 < open; i++) {
        if (!is_digit(buf[i])) return -EINVAL;
    }
    /* The last ')' anywhere, which must come after that '('. */
    size_t close = len;
    for (size_t i = 0; i < len; i++) {
        if (buf[i] == ')') close = i;
    }
    if (close == len || close <= open) return -EINVAL;
    /* Thirteen tokens, each after exactly one space: state, fields 4..13, utime, stime. */
    size_t pos = close + 1;
    u128 utime = 0, stime = 0;
    for (int f = 0; f < 13; f++) {
        if (pos >= len || buf[pos] != ' ') return -EINVAL;
        pos++;
        size_t start = pos;
        while (pos < len && !is_sep(buf[pos]))
            pos++;
        if (pos == start) return -EINVAL;
        if (f == 11 && !ref_number(buf + start, pos - start, &utime)) return -EINVAL;
        if (f == 12 && !ref_number(buf + start, pos - start, &stime)) return -EINVAL;
    }
    if (pos < len && buf[pos] != ' ' && buf[pos] != '\n') return -EINVAL;
    u128 sum = utime + stime;
    if (utime > UINT64_MAX || stime > UINT64_MAX || sum > UINT64_MAX) return -EINVAL;
    *ticks = (uint64_t)sum;
    return 0;
}

static unsigned ref_permille(uint64_t ticks, uint64_t ms, long clk_tck)
{
    if (ms == 0 || ms > LG_CPU_MS_DELTA_MAX || clk_tck < 1 || clk_tck > LG_CPU_CLK_TCK_MAX) {
        return 0;
    }
    u128 p = (u128)ticks * 1000000u / ((u128)(uint64_t)clk_tck * ms);
    return p > 1000 ? 1000 : (unsigned)p;
}

static uint64_t read_u64(const uint8_t *p)
{
    uint64_t v = 0;
    for (int i = 0; i < 8; i++)
        v = (v << 8) | p[i];
    return v;
}

static void check_parse(const char *buf, size_t len)
{
    uint64_t got = FUZZ_TICKS_UNSET, want = FUZZ_TICKS_UNSET;
    int rc = lg_cpu_parse_stat(buf, len, &got);
    int ref = ref_parse(buf, len, &want);
    FUZZ_ASSERT(rc == ref);
    FUZZ_ASSERT(rc == 0 || rc == -EINVAL);
    FUZZ_ASSERT(got == want); /* equal on success; both untouched on failure */
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    /* An exact-size copy, so that every length can be poisoned past its end. */
    char *buf = malloc(size ? size : 1);
    if (buf == NULL) return 0;
    memcpy(buf, data, size);

    check_parse(buf, size);
    for (size_t cut = 1; cut <= FUZZ_PREFIXES && cut <= size; cut++) {
        POISON(buf + size - cut, cut);
        check_parse(buf, size - cut);
    }
    UNPOISON(buf, size);

    /* Permille: the parsed ticks (or the first 8 bytes), interval and tick rate from the end. */
    if (size >= 16) {
        uint64_t ticks;
        if (lg_cpu_parse_stat(buf, size, &ticks) != 0) ticks = read_u64(data);
        uint64_t tail = read_u64(data + size - 8);
        uint64_t ms = tail >> 24;                                     /* up to 2^40 ms */
        long clk = (long)(tail & 0xffffff) - 8;                       /* -8 .. 2^24 - 9 */
        if ((data[size - 9] & 3) == 0) ms %= 2 * LG_CPU_MS_DELTA_MAX; /* near the bounds */
        if ((data[size - 9] & 12) == 0) clk = 100;                    /* the usual rate */
        unsigned p = lg_cpu_permille(ticks, ms, clk);
        FUZZ_ASSERT(p <= 1000);
        FUZZ_ASSERT(p == ref_permille(ticks, ms, clk));
    }
    free(buf);
    return 0;
}
