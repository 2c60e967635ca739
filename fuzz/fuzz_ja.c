/*
 * fuzz_ja.c — libFuzzer target for the JA3 / JA4 fingerprint strings (src/lg_ja.c).
 *
 * Each input is used twice:
 *   1. as the raw bytes a client sends: parsed with lg_hello_parse (from an exact-size heap copy,
 *      so ASan sees any read past the input); on LG_OK both fingerprints are built;
 *   2. decoded directly into an lg_hello_t (lists, flags, ALPN bytes taken from the input, every
 *      count within its array), which reaches what a well-formed hello rarely holds: GREASE
 *      everywhere, every list at its maximum, arbitrary ALPN bytes, truncation flags.
 *
 * Invariants checked on every lg_hello_t (abort on violation):
 *   - a truncated list the fingerprint reads gives -EINVAL and empty outputs; otherwise success;
 *   - JA3: length < LG_JA3_MAX and == strlen; only digits, '-' and ','; exactly four ','; no empty
 *     item inside a field; the first field is legacy_version; each field has as many items as the
 *     list has non-GREASE values (all point formats); with cap = length it is -E2BIG and "", with
 *     cap = length + 1 the same string;
 *   - JA4 a: 't', a version code of the table, 'd' iff extension 0 is present, the two counts
 *     equal to min(99, non-GREASE count), and two ALPN characters that are alphanumeric ("00"
 *     without ALPN; lower-case hex digits when the name's ends are not alphanumeric);
 *   - JA4 b: b_len == strlen(b) < LG_JA4_B_MAX; 4-digit lower-case hex items joined by ',',
 *     non-decreasing, none GREASE, as many as non-GREASE ciphers;
 *   - JA4 c: c_len == strlen(c) < LG_JA4_C_MAX; sorted extensions, none GREASE, SNI or ALPN,
 *     as many as there are such extensions; then '_' and exactly the non-GREASE signature
 *     algorithms in wire order, or no '_' when there are none; empty iff no extension is left;
 *   - JA4_r == a "_" b "_" c, length < LG_JA4_MAX, -E2BIG one byte short; lg_ja4_format gives 36
 *     chars with "000000000000" exactly for an empty part;
 *   - lg_ja_fingerprints equals a reference path: the JA3 string hashed with a reference MD5 in
 *     hex, and part a "_" the first 12 hex digits of a reference SHA-256 of b (zeros when b is
 *     empty) "_" the same for c; "" exactly when lg_ja3_string / lg_ja4_parts refuse. The
 *     reference digests are OpenSSL's EVP_Digest from libcrypto.so.3, loaded at run time (so the
 *     target still links only lg_common.c); without it they fall back to lg_digest and only the
 *     assembly is checked (a note is printed once). The raw input is also digested by both;
 *   - a set built from the two fingerprints (JA4 lower-cased, as lib/config.js does) builds and
 *     contains both as computed (any case); the input, read as a query string, is contained
 *     exactly when it equals one of them ignoring case.
 */
#include "../src/lg_digest.c"
#include "../src/lg_name.c"
#include "../src/lg_hello.c"
#include "../src/lg_ja.c"

#include <dlfcn.h>
#include <stdio.h>
#include <stdlib.h>
#include <strings.h>

#define REQUIRE(cond)                                                                              \
    do {                                                                                           \
        if (!(cond)) {                                                                             \
            fprintf(stderr, "fuzz_ja: invariant failed at line %d: %s\n", __LINE__, #cond);        \
            abort();                                                                               \
        }                                                                                          \
    } while (0)

/* Static: the parser holds 16 KiB, each lg_hello_t 5 KiB; the harness is single-threaded. */
static lg_hello_parser_t parser;
static lg_hello_t hello;
static char ja3[LG_JA3_MAX + 1];
static char again[LG_JA3_MAX + 1];
static char raw4[LG_JA4_MAX + 1];
static char want4[LG_JA4_MAX + 1];
static lg_ja4_parts_t parts;

static size_t non_grease(const uint16_t *v, size_t n)
{
    size_t k = 0;
    for (size_t i = 0; i < n; i++)
        k += !lg_ja_is_grease(v[i]);
    return k;
}

static bool contains(const uint16_t *v, size_t n, uint16_t x)
{
    for (size_t i = 0; i < n; i++) {
        if (v[i] == x) return true;
    }
    return false;
}

static bool digit(char c)
{
    return c >= '0' && c <= '9';
}

static bool alnum(char c)
{
    return digit(c) || (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z');
}

static int hexval(char c)
{
    if (digit(c)) return c - '0';
    if (c >= 'a' && c <= 'f') return c - 'a' + 10;
    return -1;
}

/* Parse a field of decimal items joined by '-' in s[0..n); returns the item count. With
 * `no_grease`, no item may be a GREASE value. */
static size_t dec_items(const char *s, size_t n, unsigned *first, bool no_grease)
{
    if (n == 0) return 0;
    size_t items = 0, digits = 0;
    unsigned v = 0;
    for (size_t i = 0; i <= n; i++) {
        if (i == n || s[i] == '-') {
            REQUIRE(digits >= 1 && digits <= LG_JA_DEC_MAX && v <= 0xffff);
            REQUIRE(!no_grease || !lg_ja_is_grease((uint16_t)v));
            if (items == 0 && first != NULL) *first = v;
            items++;
            digits = 0;
            v = 0;
        } else {
            REQUIRE(digit(s[i]));
            v = v * 10 + (unsigned)(s[i] - '0');
            digits++;
        }
    }
    return items;
}

/* Parse 4-digit hex items joined by ',' into out (may be NULL); returns the count. */
static size_t hex_items(const char *s, size_t n, uint16_t *out, size_t cap)
{
    if (n == 0) return 0;
    REQUIRE((n + 1) % 5 == 0);
    size_t items = (n + 1) / 5;
    for (size_t i = 0; i < items; i++) {
        const char *p = s + i * 5;
        if (i + 1 < items) REQUIRE(p[4] == ',');
        unsigned v = 0;
        for (size_t k = 0; k < 4; k++) {
            int d = hexval(p[k]);
            REQUIRE(d >= 0);
            v = v * 16 + (unsigned)d;
        }
        REQUIRE(!lg_ja_is_grease((uint16_t)v));
        if (out != NULL && i < cap) out[i] = (uint16_t)v;
    }
    return items;
}

static void check_ja3(const lg_hello_t *h)
{
    bool refuse =
        h->ciphers_truncated || h->exts_truncated || h->groups_truncated || h->pointfmts_truncated;
    ja3[0] = 'x';
    int n = lg_ja3_string(h, ja3, LG_JA3_MAX);
    if (refuse) {
        REQUIRE(n == -EINVAL && ja3[0] == '\0');
        return;
    }
    REQUIRE(n >= 0 && n < LG_JA3_MAX && strlen(ja3) == (size_t)n);
    const char *field[5];
    size_t flen[5], k = 0;
    field[0] = ja3;
    for (size_t i = 0; i < (size_t)n; i++) {
        char c = ja3[i];
        REQUIRE(digit(c) || c == '-' || c == ',');
        if (c == ',') {
            REQUIRE(k < 4);
            flen[k] = (size_t)(ja3 + i - field[k]);
            field[++k] = ja3 + i + 1;
        }
    }
    REQUIRE(k == 4);
    flen[4] = (size_t)(ja3 + n - field[4]);
    unsigned version = 0;
    REQUIRE(dec_items(field[0], flen[0], &version, false) == 1 && version == h->legacy_version);
    REQUIRE(dec_items(field[1], flen[1], NULL, true) == non_grease(h->ciphers, h->n_ciphers));
    REQUIRE(dec_items(field[2], flen[2], NULL, true) == non_grease(h->exts, h->n_exts));
    REQUIRE(dec_items(field[3], flen[3], NULL, true) == non_grease(h->groups, h->n_groups));
    REQUIRE(dec_items(field[4], flen[4], NULL, false) == h->n_pointfmts);

    REQUIRE(lg_ja3_string(h, again, (size_t)n) == -E2BIG && again[0] == '\0');
    REQUIRE(lg_ja3_string(h, again, (size_t)n + 1) == n && strcmp(again, ja3) == 0);
}

static void check_ja4(const lg_hello_t *h)
{
    bool refuse =
        h->ciphers_truncated || h->exts_truncated || h->sigalgs_truncated || h->versions_truncated;
    memset(&parts, 'x', sizeof(parts));
    int r = lg_ja4_parts(h, &parts);
    if (refuse) {
        REQUIRE(r == -EINVAL);
        REQUIRE(parts.a[0] == '\0' && parts.b[0] == '\0' && parts.c[0] == '\0');
        REQUIRE(parts.b_len == 0 && parts.c_len == 0);
        return;
    }
    REQUIRE(r == 0);

    /* Part a. */
    const char *a = parts.a;
    REQUIRE(strlen(a) == LG_JA4_A_LEN && a[0] == 't');
    static const char *const codes[] = {"13", "12", "11", "10", "s3", "s2", "d1", "d2", "d3", "00"};
    bool known = false;
    for (size_t i = 0; i < LG_ARRAY_SIZE(codes); i++)
        known = known || memcmp(a + 1, codes[i], 2) == 0;
    REQUIRE(known);
    bool sni = h->has_sni || contains(h->exts, h->n_exts, 0x0000);
    REQUIRE(a[3] == (sni ? 'd' : 'i'));
    size_t nc = non_grease(h->ciphers, h->n_ciphers), ne = non_grease(h->exts, h->n_exts);
    REQUIRE(digit(a[4]) && digit(a[5]) && digit(a[6]) && digit(a[7]));
    REQUIRE((size_t)((a[4] - '0') * 10 + (a[5] - '0')) == LG_MIN(nc, 99));
    REQUIRE((size_t)((a[6] - '0') * 10 + (a[7] - '0')) == LG_MIN(ne, 99));
    REQUIRE(alnum(a[8]) && alnum(a[9]));
    if (h->n_alpn == 0 || h->alpn_len[0] == 0) REQUIRE(a[8] == '0' && a[9] == '0');
    if (h->n_alpn > 0 && h->alpn_len[0] > 0) {
        char f = h->alpn_buf[h->alpn_off[0]], l = h->alpn_buf[h->alpn_off[0] + h->alpn_len[0] - 1];
        if (alnum(f) && alnum(l)) {
            REQUIRE(a[8] == f && a[9] == l);
        } else {
            REQUIRE(hexval(a[8]) == ((uint8_t)f >> 4) && hexval(a[9]) == ((uint8_t)l & 0xf));
        }
    }

    /* Part b. */
    static uint16_t items[LG_HELLO_MAX_CIPHERS + LG_HELLO_MAX_EXTS];
    REQUIRE(parts.b_len < LG_JA4_B_MAX && strlen(parts.b) == parts.b_len);
    size_t nb = hex_items(parts.b, parts.b_len, items, LG_ARRAY_SIZE(items));
    REQUIRE(nb == nc);
    for (size_t i = 1; i < nb; i++)
        REQUIRE(items[i - 1] <= items[i]);
    for (size_t i = 0; i < nb; i++)
        REQUIRE(contains(h->ciphers, h->n_ciphers, items[i]));

    /* Part c. */
    REQUIRE(parts.c_len < LG_JA4_C_MAX && strlen(parts.c) == parts.c_len);
    size_t want_ext = 0;
    for (size_t i = 0; i < h->n_exts; i++) {
        uint16_t x = h->exts[i];
        want_ext += !lg_ja_is_grease(x) && x != 0x0000 && x != 0x0010;
    }
    const char *us = memchr(parts.c, '_', parts.c_len);
    size_t ext_len = us ? (size_t)(us - parts.c) : parts.c_len;
    size_t nx = hex_items(parts.c, ext_len, items, LG_ARRAY_SIZE(items));
    REQUIRE(nx == want_ext);
    for (size_t i = 0; i < nx; i++) {
        REQUIRE(items[i] != 0x0000 && items[i] != 0x0010);
        REQUIRE(contains(h->exts, h->n_exts, items[i]));
        if (i > 0) REQUIRE(items[i - 1] <= items[i]);
    }
    size_t ns = non_grease(h->sigalgs, h->n_sigalgs);
    if (nx == 0) {
        REQUIRE(parts.c_len == 0);
    } else if (ns == 0) {
        REQUIRE(us == NULL);
    } else {
        REQUIRE(us != NULL);
        const char *s = us + 1;
        size_t slen = parts.c_len - ext_len - 1;
        REQUIRE(hex_items(s, slen, items, LG_ARRAY_SIZE(items)) == ns);
        size_t k = 0;
        for (size_t i = 0; i < h->n_sigalgs; i++) {
            if (!lg_ja_is_grease(h->sigalgs[i])) REQUIRE(items[k++] == h->sigalgs[i]);
        }
    }

    /* JA4_r and the assembled fingerprint. */
    int wn = snprintf(want4, sizeof(want4), "%s_%s_%s", parts.a, parts.b, parts.c);
    REQUIRE(wn > 0 && wn < LG_JA4_MAX);
    REQUIRE(lg_ja4_raw(&parts, raw4, LG_JA4_MAX) == wn && strcmp(raw4, want4) == 0);
    REQUIRE(lg_ja4_raw(&parts, raw4, (size_t)wn) == -E2BIG && raw4[0] == '\0');
    uint8_t db[32], dc[32];
    memset(db, 0xa5, sizeof(db));
    memset(dc, 0x5a, sizeof(dc));
    char fp[LG_JA4_LEN + 1];
    REQUIRE(lg_ja4_format(&parts, db, dc, fp, sizeof(fp)) == LG_JA4_LEN);
    REQUIRE(strlen(fp) == LG_JA4_LEN && memcmp(fp, parts.a, LG_JA4_A_LEN) == 0);
    REQUIRE(fp[10] == '_' && fp[23] == '_');
    REQUIRE(memcmp(fp + 11, parts.b_len ? "a5a5a5a5a5a5" : "000000000000", 12) == 0);
    REQUIRE(memcmp(fp + 24, parts.c_len ? "5a5a5a5a5a5a" : "000000000000", 12) == 0);
}

/* ------------------------------------------------------------------------------------------ */
/* Reference digests: OpenSSL when it can be loaded.                                          */

typedef int (*evp_digest_fn)(const void *data, size_t count, unsigned char *md, unsigned int *size,
                             const void *type, void *impl);
typedef const void *(*evp_md_fn)(void);

static evp_digest_fn ossl_digest;
static const void *ossl_md5, *ossl_sha256;

static void load_openssl(void)
{
    void *lib = dlopen("libcrypto.so.3", RTLD_NOW | RTLD_LOCAL);
    evp_md_fn md5 = NULL, sha256 = NULL;
    if (lib != NULL) {
        *(void **)&ossl_digest = dlsym(lib, "EVP_Digest");
        *(void **)&md5 = dlsym(lib, "EVP_md5");
        *(void **)&sha256 = dlsym(lib, "EVP_sha256");
    }
    if (ossl_digest == NULL || md5 == NULL || sha256 == NULL) {
        fprintf(stderr,
                "fuzz_ja: libcrypto.so.3 not loadable; digests checked by lg_digest only\n");
        ossl_digest = NULL;
        return;
    }
    ossl_md5 = md5();
    ossl_sha256 = sha256();
    /* Warm up: OpenSSL's lazily built provider state is allocated here, not inside an input. */
    uint8_t d[LG_SHA256_LEN];
    REQUIRE(ossl_digest("", 0, d, NULL, ossl_md5, NULL) == 1);
    REQUIRE(ossl_digest("", 0, d, NULL, ossl_sha256, NULL) == 1);
}

static void ref_md5(const void *p, size_t n, uint8_t out[LG_MD5_LEN])
{
    if (ossl_digest == NULL) {
        lg_md5(p, n, out);
        return;
    }
    REQUIRE(ossl_digest(n ? p : "", n, out, NULL, ossl_md5, NULL) == 1);
}

static void ref_sha256(const void *p, size_t n, uint8_t out[LG_SHA256_LEN])
{
    if (ossl_digest == NULL) {
        lg_sha256(p, n, out);
        return;
    }
    REQUIRE(ossl_digest(n ? p : "", n, out, NULL, ossl_sha256, NULL) == 1);
}

static void ref_hex(const uint8_t *d, size_t n, char *out)
{
    static const char hex[] = "0123456789abcdef";
    for (size_t i = 0; i < n; i++) {
        out[2 * i] = hex[d[i] >> 4];
        out[2 * i + 1] = hex[d[i] & 15];
    }
    out[2 * n] = '\0';
}

static void check_digests(const uint8_t *data, size_t size)
{
    if (ossl_digest == NULL) return;
    uint8_t a[LG_SHA256_LEN], b[LG_SHA256_LEN];
    lg_md5(data, size, a);
    ref_md5(data, size, b);
    REQUIRE(memcmp(a, b, LG_MD5_LEN) == 0);
    lg_sha256(data, size, a);
    ref_sha256(data, size, b);
    REQUIRE(memcmp(a, b, LG_SHA256_LEN) == 0);
}

/* lg_ja_fingerprints against the reference path, then a set of the two. */
static void check_fingerprints(const lg_hello_t *h, const uint8_t *data, size_t size)
{
    char f3[LG_JA3_HEX + 1], f4[LG_JA4_LEN + 1];
    memset(f3, 'x', sizeof(f3));
    memset(f4, 'x', sizeof(f4));
    lg_ja_fingerprints(h, f3, f4);

    char ref3[LG_JA3_HEX + 1] = "";
    int n = lg_ja3_string(h, ja3, LG_JA3_MAX);
    if (n >= 0) {
        uint8_t d[LG_MD5_LEN];
        ref_md5(ja3, (size_t)n, d);
        ref_hex(d, sizeof(d), ref3);
    }
    REQUIRE(strcmp(f3, ref3) == 0);

    char ref4[LG_JA4_LEN + 1] = "";
    if (lg_ja4_parts(h, &parts) == 0) {
        uint8_t d[LG_SHA256_LEN];
        char hb[2 * LG_SHA256_LEN + 1] = "000000000000", hc[2 * LG_SHA256_LEN + 1] = "000000000000";
        if (parts.b_len > 0) {
            ref_sha256(parts.b, parts.b_len, d);
            ref_hex(d, sizeof(d), hb);
        }
        if (parts.c_len > 0) {
            ref_sha256(parts.c, parts.c_len, d);
            ref_hex(d, sizeof(d), hc);
        }
        snprintf(ref4, sizeof(ref4), "%s_%.12s_%.12s", parts.a, hb, hc);
    }
    REQUIRE(strcmp(f4, ref4) == 0);

    /* A blocklist of both, entries normalised as lib/config.js does (lower case). */
    char lower4[LG_JA4_LEN + 1];
    for (size_t i = 0; i <= LG_JA4_LEN; i++)
        lower4[i] = (char)(f4[i] >= 'A' && f4[i] <= 'Z' ? f4[i] - 'A' + 'a' : f4[i]);
    const char *entries[2];
    size_t ne = 0;
    if (f3[0]) entries[ne++] = f3;
    if (f4[0]) entries[ne++] = lower4;
    lg_ja_set_t set;
    int rc = lg_ja_set_build(&set, entries, ne);
    if (rc == -ENOMEM) return; /* cannot happen here: no allocation failure is injected */
    REQUIRE(rc == 0 && set.n == ne);
    REQUIRE(!f3[0] || lg_ja_set_contains(&set, f3));
    REQUIRE(!f4[0] || lg_ja_set_contains(&set, f4));
    REQUIRE(!lg_ja_set_contains(&set, ""));

    /* The input as a query: a hit exactly when it equals a member ignoring case. */
    char q[LG_JA4_LEN + 2];
    size_t qn = LG_MIN(size, sizeof(q) - 1);
    memcpy(q, data, qn);
    q[qn] = '\0';
    size_t ql = strlen(q);
    bool want = (f3[0] && ql == LG_JA3_HEX && strncasecmp(q, f3, LG_JA3_HEX) == 0) ||
                (f4[0] && ql == LG_JA4_LEN && strncasecmp(q, f4, LG_JA4_LEN) == 0);
    REQUIRE(lg_ja_set_contains(&set, q) == want);
    lg_ja_set_free(&set);
}

/* A bounded reader over the input; reads past the end give 0. */
typedef struct rd_s {
    const uint8_t *p;
    size_t left;
} rd_t;

static unsigned rd_u8(rd_t *r)
{
    if (r->left == 0) return 0;
    r->left--;
    return *r->p++;
}

static uint16_t rd_u16(rd_t *r)
{
    unsigned hi = rd_u8(r);
    return (uint16_t)(hi << 8 | rd_u8(r));
}

/* Values often GREASE, often SNI/ALPN, otherwise from the input. */
static uint16_t rd_value(rd_t *r)
{
    unsigned kind = rd_u8(r);
    if (kind < 0x30) return (uint16_t)(0x0a0a + (kind % 16) * 0x1010);
    if (kind < 0x38) return (uint16_t)(kind & 1 ? 0x0010 : 0x0000);
    return rd_u16(r);
}

static void rd_list(rd_t *r, uint16_t *arr, uint16_t *n, size_t max)
{
    size_t count = rd_u8(r);
    if (count == 0xff) count = max; /* at the maximum */
    count %= max + 1;
    for (size_t i = 0; i < count; i++)
        arr[i] = rd_value(r);
    *n = (uint16_t)count;
}

/* Decode the input as an lg_hello_t with every count within its array. */
static void decode_struct(const uint8_t *data, size_t size, lg_hello_t *h)
{
    rd_t r = {data, size};
    memset(h, 0, sizeof(*h));
    unsigned flags = rd_u16(&r);
    h->legacy_version = rd_u16(&r);
    h->has_sni = flags & 1;
    h->ciphers_truncated = flags & 2;
    h->exts_truncated = flags & 4;
    h->groups_truncated = flags & 8;
    h->pointfmts_truncated = flags & 16;
    h->sigalgs_truncated = flags & 32;
    h->versions_truncated = flags & 64;
    h->alpn_truncated = flags & 128;
    if (flags & 0x100) { /* half the inputs: nothing truncated, so both fingerprints are built */
        h->ciphers_truncated = h->exts_truncated = h->groups_truncated = false;
        h->pointfmts_truncated = h->sigalgs_truncated = h->versions_truncated = false;
    }
    rd_list(&r, h->ciphers, &h->n_ciphers, LG_HELLO_MAX_CIPHERS);
    rd_list(&r, h->exts, &h->n_exts, LG_HELLO_MAX_EXTS);
    rd_list(&r, h->groups, &h->n_groups, LG_HELLO_MAX_GROUPS);
    rd_list(&r, h->sigalgs, &h->n_sigalgs, LG_HELLO_MAX_SIGALGS);
    rd_list(&r, h->versions, &h->n_versions, LG_HELLO_MAX_VERSIONS);
    size_t npf = rd_u8(&r) % (LG_HELLO_MAX_POINTFMTS + 1);
    for (size_t i = 0; i < npf; i++)
        h->pointfmts[i] = (uint8_t)rd_u8(&r);
    h->n_pointfmts = (uint16_t)npf;
    size_t nalpn = rd_u8(&r) % (LG_HELLO_MAX_ALPN + 1);
    for (size_t i = 0; i < nalpn; i++) {
        size_t len = rd_u8(&r); /* 0..255; 0 only here, the parser refuses it */
        h->alpn_off[i] = (uint16_t)(i * LG_HELLO_MAX_ALPN_LEN);
        h->alpn_len[i] = (uint8_t)len;
        for (size_t k = 0; k < len; k++)
            h->alpn_buf[h->alpn_off[i] + k] = (char)rd_u8(&r);
    }
    h->n_alpn = (uint16_t)nalpn;
}

int LLVMFuzzerInitialize(int *argc, char ***argv);
int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerInitialize(int *argc, char ***argv)
{
    (void)argc;
    (void)argv;
    load_openssl();
    return 0;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    uint8_t *buf = malloc(size ? size : 1);
    if (buf == NULL) return 0;
    if (size) memcpy(buf, data, size);

    lg_hello_parser_init(&parser);
    if (lg_hello_parse(&parser, buf, size, &hello, NULL) == LG_OK) {
        check_ja3(&hello);
        check_ja4(&hello);
        check_fingerprints(&hello, data, size);
    }
    free(buf);

    decode_struct(data, size, &hello);
    check_ja3(&hello);
    check_ja4(&hello);
    check_fingerprints(&hello, data, size);
    check_digests(data, size);
    return 0;
}
