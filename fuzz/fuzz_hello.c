/*
 * fuzz_hello.c — libFuzzer target for the TLS ClientHello parser (src/lg_hello.c).
 *
 * The input is the raw byte stream a client sends. It is parsed three ways with fresh parsers —
 * in one call, one byte per call, and in steps of 2..17 bytes chosen from the input — and the
 * three results must agree (the parser's result may not depend on how bytes were split). The
 * bytes past each call's `len` are ASan-poisoned, so any read beyond `len` is reported.
 *
 * Invariants checked (abort on violation):
 *   - same result code, reason and hello_end however the input was split; on LG_OK the same
 *     extracted fields;
 *   - incremental feeding decides at the first byte that allows it: on LG_OK exactly at
 *     hello_end; calling again after a decision gives the same result;
 *   - LG_DECLINED only when byte 0 is not 0x16 or byte 1 is not 3;
 *   - a decision taken at byte k is not taken at k - 1 (the shorter prefix gives LG_AGAIN);
 *   - on LG_OK: hello_end <= len and <= LG_HELLO_MAX_RAW; the SNI is NUL-terminated at sni_len,
 *     1..253 bytes of lower-case LDH labels without a trailing dot iff has_sni; every n_* is
 *     within its array; ALPN entries are 1..255 bytes inside alpn_buf;
 *   - parser state stays within its bounds (raw_off <= len, hs_len <= LG_HELLO_MAX_HANDSHAKE).
 */
#include "../src/lg_name.c"
#include "../src/lg_hello.c"

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

#define REQUIRE(cond)                                                                              \
    do {                                                                                           \
        if (!(cond)) {                                                                             \
            fprintf(stderr, "fuzz_hello: invariant failed at line %d: %s\n", __LINE__, #cond);     \
            abort();                                                                               \
        }                                                                                          \
    } while (0)

/* bytes: record header 5 + handshake header 4 + the smallest ClientHello body 41 */
#define MIN_HELLO_RAW 50

typedef struct run_s {
    int rc;
    int reason;
    size_t end;
    size_t at; /* bytes given when the result was decided */
    lg_hello_t h;
} run_t;

/* Static: the parser holds 16 KiB and each result 5 KiB; the harness is single-threaded. */
static lg_hello_parser_t parser;
static run_t runs[3];

/* Feed data in prefixes growing by `step` until a result other than LG_AGAIN. `buf` is a copy of
 * data whose bytes from the current prefix on are poisoned. */
static void feed(uint8_t *buf, size_t size, size_t step, run_t *r)
{
    memset(r, 0, sizeof(*r));
    lg_hello_parser_init(&parser);
    POISON(buf, size);
    size_t k = 0;
    for (;;) {
        size_t next = LG_MIN(size, k + step);
        UNPOISON(buf + k, next - k);
        k = next;
        r->h.reason = LG_HELLO_E_NONE;
        r->rc = lg_hello_parse(&parser, buf, k, &r->h, &r->end);
        r->reason = r->h.reason;
        r->at = k;
        REQUIRE(r->rc == LG_OK || r->rc == LG_AGAIN || r->rc == LG_DECLINED || r->rc == LG_ERROR);
        REQUIRE(parser.raw_off <= k && parser.raw_off <= LG_HELLO_MAX_RAW);
        REQUIRE(parser.hs_len <= LG_HELLO_MAX_HANDSHAKE);
        if (r->rc != LG_AGAIN || k == size) break;
    }
    if (r->rc != LG_AGAIN) {
        /* A decision is stable: the same bytes again give the same answer. */
        lg_hello_t again;
        size_t end = 0;
        int rc = lg_hello_parse(&parser, buf, k, &again, &end);
        REQUIRE(rc == r->rc);
        if (rc == LG_ERROR) REQUIRE(again.reason == r->reason);
        if (rc == LG_OK) REQUIRE(end == r->end);
    }
    UNPOISON(buf, size);
}

static bool is_ldh(char c)
{
    return (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') || c == '-' || c == '.';
}

static void check_hello(const run_t *r, size_t size)
{
    const lg_hello_t *h = &r->h;
    REQUIRE(r->end <= size && r->end <= LG_HELLO_MAX_RAW && r->end >= MIN_HELLO_RAW);
    REQUIRE(r->at == r->end || r->at == size); /* whole-buffer runs stop at size */
    REQUIRE(h->sni_len <= LG_HELLO_MAX_SNI);
    REQUIRE(h->sni[h->sni_len] == '\0' && strlen(h->sni) == h->sni_len);
    REQUIRE(h->has_sni == (h->sni_len > 0));
    if (h->has_sni) {
        REQUIRE(h->sni[0] != '.' && h->sni[0] != '-' && h->sni[h->sni_len - 1] != '.');
        for (size_t i = 0; i < h->sni_len; i++)
            REQUIRE(is_ldh(h->sni[i]));
    }
    REQUIRE(h->n_ciphers >= 1 && h->n_ciphers <= LG_HELLO_MAX_CIPHERS);
    REQUIRE(h->n_exts <= LG_HELLO_MAX_EXTS);
    REQUIRE(h->n_groups <= LG_HELLO_MAX_GROUPS);
    REQUIRE(h->n_pointfmts <= LG_HELLO_MAX_POINTFMTS);
    REQUIRE(h->n_sigalgs <= LG_HELLO_MAX_SIGALGS);
    REQUIRE(h->n_versions <= LG_HELLO_MAX_VERSIONS);
    REQUIRE(h->n_alpn <= LG_HELLO_MAX_ALPN);
    REQUIRE(!h->ciphers_truncated || h->n_ciphers == LG_HELLO_MAX_CIPHERS);
    REQUIRE(!h->exts_truncated || h->n_exts == LG_HELLO_MAX_EXTS);
    REQUIRE(!h->alpn_truncated || h->n_alpn == LG_HELLO_MAX_ALPN);
    for (size_t i = 0; i < h->n_alpn; i++) {
        REQUIRE(h->alpn_len[i] >= 1);
        REQUIRE((size_t)h->alpn_off[i] + h->alpn_len[i] <= sizeof(h->alpn_buf));
    }
}

static bool same_list(const void *a, const void *b, size_t n, size_t elem)
{
    return memcmp(a, b, n * elem) == 0;
}

static void check_same(const run_t *a, const run_t *b)
{
    REQUIRE(a->rc == b->rc);
    if (a->rc == LG_ERROR) REQUIRE(a->reason == b->reason);
    if (a->rc != LG_OK) return;
    const lg_hello_t *x = &a->h, *y = &b->h;
    REQUIRE(a->end == b->end);
    REQUIRE(x->legacy_version == y->legacy_version && x->record_version == y->record_version);
    REQUIRE(x->has_sni == y->has_sni && x->sni_len == y->sni_len && strcmp(x->sni, y->sni) == 0);
    REQUIRE(x->n_ciphers == y->n_ciphers && x->ciphers_truncated == y->ciphers_truncated);
    REQUIRE(same_list(x->ciphers, y->ciphers, x->n_ciphers, sizeof(x->ciphers[0])));
    REQUIRE(x->n_exts == y->n_exts && same_list(x->exts, y->exts, x->n_exts, 2));
    REQUIRE(x->n_groups == y->n_groups && same_list(x->groups, y->groups, x->n_groups, 2));
    REQUIRE(x->n_sigalgs == y->n_sigalgs && same_list(x->sigalgs, y->sigalgs, x->n_sigalgs, 2));
    REQUIRE(x->n_versions == y->n_versions &&
            same_list(x->versions, y->versions, x->n_versions, 2));
    REQUIRE(x->n_pointfmts == y->n_pointfmts &&
            same_list(x->pointfmts, y->pointfmts, x->n_pointfmts, 1));
    REQUIRE(x->n_alpn == y->n_alpn);
    for (size_t i = 0; i < x->n_alpn; i++) {
        REQUIRE(x->alpn_len[i] == y->alpn_len[i]);
        REQUIRE(memcmp(x->alpn_buf + x->alpn_off[i], y->alpn_buf + y->alpn_off[i],
                       x->alpn_len[i]) == 0);
    }
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    uint8_t *buf = malloc(size ? size : 1);
    if (buf == NULL) return 0;
    if (size) memcpy(buf, data, size);

    size_t step = 2 + (size ? data[size - 1] % 16 : 0);
    feed(buf, size, size ? size : 1, &runs[0]);
    feed(buf, size, 1, &runs[1]);
    feed(buf, size, step, &runs[2]);

    check_same(&runs[0], &runs[1]);
    check_same(&runs[0], &runs[2]);
    if (runs[0].rc == LG_DECLINED) {
        REQUIRE(size >= 1 && (data[0] != 0x16 || (size >= 2 && data[1] != 3)));
    }
    if (runs[0].rc == LG_OK) {
        check_hello(&runs[0], size);
        REQUIRE(runs[1].at == runs[1].end); /* one byte per call decides exactly at the end */
    }
    if (runs[1].rc != LG_AGAIN) {
        /* Decided at byte `at`, and not before: the prefix one byte shorter is undecided. */
        REQUIRE(runs[1].at >= 1);
        feed(buf, runs[1].at - 1, runs[1].at, &runs[2]);
        REQUIRE(runs[2].rc == LG_AGAIN);
    }
    free(buf);
    return 0;
}
