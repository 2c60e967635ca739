/*
 * lg_ja.c — JA3 and JA4 TLS client fingerprints and fingerprint sets (pure core: no I/O, no
 * globals; the only allocation is the key array of lg_ja_set_build). The rules, with their
 * sources, are in lg_ja.h.
 *
 * Invariants:
 *   - every output is written through a bounded writer (ja_buf_t) that always leaves room for
 *     the NUL and records an overflow instead of writing past `cap`; a failed call leaves ""
 *     behind, never a partial fingerprint;
 *   - the lg_hello_t is only read, and only within its arrays: an entry count above its array
 *     size (a caller bug, never produced by lg_hello_parse) is -EINVAL, as is an ALPN name that
 *     would reach past alpn_buf;
 *   - sorting uses a copy on the stack (at most LG_HELLO_MAX_CIPHERS uint16_t = 512 bytes).
 */
#include "lg_ja.h"

#include "lg_digest.h"

#include <stdlib.h>
#include <string.h>

#define JA_EXT_SERVER_NAME    0x0000
#define JA_EXT_ALPN           0x0010
#define JA4_COUNT_CAP         99 /* JA4.md: a count above 99 is written as "99" */
#define JA4_DIGEST_BYTES_READ (LG_JA4_HASH_LEN / 2) /* digest bytes behind 12 hex digits */

/* Lower-case hex digit of a nibble. */
static char hex_digit(unsigned nibble)
{
    return "0123456789abcdef"[nibble & 0xf];
}

/* A bounded string writer: n < cap always holds, so out[n] can take the NUL. */
typedef struct ja_buf_s {
    char *p;
    size_t cap;
    size_t n;
    bool over;
} ja_buf_t;

static void put_char(ja_buf_t *b, char c)
{
    if (b->n + 1 < b->cap) {
        b->p[b->n++] = c;
    } else {
        b->over = true;
    }
}

static void put_dec(ja_buf_t *b, unsigned v)
{
    char tmp[LG_JA_DEC_MAX];
    size_t k = 0;
    do {
        tmp[k++] = (char)('0' + v % 10);
        v /= 10;
    } while (v != 0 && k < sizeof(tmp));
    while (k > 0)
        put_char(b, tmp[--k]);
}

static void put_hex4(ja_buf_t *b, uint16_t v)
{
    put_char(b, hex_digit((v >> 12) & 0xf));
    put_char(b, hex_digit((v >> 8) & 0xf));
    put_char(b, hex_digit((v >> 4) & 0xf));
    put_char(b, hex_digit(v & 0xf));
}

/* NUL-terminate; returns the length, or -E2BIG (leaving "") if anything did not fit. */
static int finish(ja_buf_t *b)
{
    if (b->over) {
        b->p[0] = '\0';
        return -E2BIG;
    }
    b->p[b->n] = '\0';
    return (int)b->n;
}

bool lg_ja_is_grease(uint16_t v)
{
    return (v & 0x0f0f) == 0x0a0a && (v >> 8) == (v & 0xff);
}

/* The lists a fingerprint reads must be whole and within their arrays. */
static bool counts_in_bounds(const lg_hello_t *h)
{
    return h->n_ciphers <= LG_HELLO_MAX_CIPHERS && h->n_exts <= LG_HELLO_MAX_EXTS &&
           h->n_groups <= LG_HELLO_MAX_GROUPS && h->n_pointfmts <= LG_HELLO_MAX_POINTFMTS &&
           h->n_sigalgs <= LG_HELLO_MAX_SIGALGS && h->n_versions <= LG_HELLO_MAX_VERSIONS &&
           h->n_alpn <= LG_HELLO_MAX_ALPN;
}

/* Append the non-GREASE values of a uint16 list in decimal, joined by '-'. */
static void put_dec_list(ja_buf_t *b, const uint16_t *v, size_t n)
{
    bool first = true;
    for (size_t i = 0; i < n; i++) {
        if (lg_ja_is_grease(v[i])) continue;
        if (!first) put_char(b, '-');
        put_dec(b, v[i]);
        first = false;
    }
}

int lg_ja3_string(const lg_hello_t *h, char *out, size_t cap)
{
    if (out == NULL) return -EINVAL;
    if (cap > 0) out[0] = '\0';
    if (h == NULL || !counts_in_bounds(h)) return -EINVAL;
    if (h->ciphers_truncated || h->exts_truncated || h->groups_truncated ||
        h->pointfmts_truncated) {
        return -EINVAL;
    }
    if (cap == 0) return -E2BIG;

    ja_buf_t b = {out, cap, 0, false};
    put_dec(&b, h->legacy_version);
    put_char(&b, ',');
    put_dec_list(&b, h->ciphers, h->n_ciphers);
    put_char(&b, ',');
    put_dec_list(&b, h->exts, h->n_exts);
    put_char(&b, ',');
    put_dec_list(&b, h->groups, h->n_groups);
    put_char(&b, ',');
    for (size_t i = 0; i < h->n_pointfmts; i++) {
        if (i > 0) put_char(&b, '-');
        put_dec(&b, h->pointfmts[i]);
    }
    return finish(&b);
}

/* ------------------------------------------------------------------------------------------ */
/* JA4                                                                                        */

/* JA4.md "TLS and DTLS Version". */
static const char *version_code(uint16_t v)
{
    switch (v) {
    case 0x0304:
        return "13";
    case 0x0303:
        return "12";
    case 0x0302:
        return "11";
    case 0x0301:
        return "10";
    case 0x0300:
        return "s3";
    case 0x0200: /* what the reference implementations map to SSL 2.0 */
    case 0x0002: /* SSL 2.0 as the spec's table writes it */
        return "s2";
    case 0xfeff:
        return "d1";
    case 0xfefd:
        return "d2";
    case 0xfefc:
        return "d3";
    default:
        return "00";
    }
}

/* The highest non-GREASE supported_versions entry, else legacy_version. */
static uint16_t ja4_version(const lg_hello_t *h)
{
    bool found = false;
    uint16_t best = 0;
    for (size_t i = 0; i < h->n_versions; i++) {
        uint16_t v = h->versions[i];
        if (lg_ja_is_grease(v)) continue;
        if (!found || v > best) best = v;
        found = true;
    }
    return found ? best : h->legacy_version;
}

static bool has_ext(const lg_hello_t *h, uint16_t type)
{
    for (size_t i = 0; i < h->n_exts; i++) {
        if (h->exts[i] == type) return true;
    }
    return false;
}

static size_t count_non_grease(const uint16_t *v, size_t n)
{
    size_t k = 0;
    for (size_t i = 0; i < n; i++) {
        if (!lg_ja_is_grease(v[i])) k++;
    }
    return k;
}

static void put_count2(char *dst, size_t n)
{
    if (n > JA4_COUNT_CAP) n = JA4_COUNT_CAP;
    dst[0] = (char)('0' + n / 10);
    dst[1] = (char)('0' + n % 10);
}

static bool is_alnum(uint8_t c)
{
    return (c >= '0' && c <= '9') || (c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z');
}

/* The two ALPN characters of part a (JA4.md "ALPN Extension Value"). */
static void put_alpn(char *dst, const lg_hello_t *h)
{
    if (h->n_alpn == 0 || h->alpn_len[0] == 0) {
        dst[0] = '0';
        dst[1] = '0';
        return;
    }
    const uint8_t *name = (const uint8_t *)h->alpn_buf + h->alpn_off[0];
    uint8_t first = name[0];
    uint8_t last = name[h->alpn_len[0] - 1];
    if (is_alnum(first) && is_alnum(last)) {
        dst[0] = (char)first;
        dst[1] = (char)last;
    } else {
        /* First and last digits of the name's hex form: high nibble of the first byte, low
         * nibble of the last. */
        dst[0] = hex_digit(first >> 4);
        dst[1] = hex_digit(last & 0xf);
    }
}

/* Copy the non-GREASE values of v[0..n) into dst — without server_name and ALPN when
 * `skip_sni_alpn` is set — sorted ascending (duplicates kept). Returns how many were kept. */
static size_t sorted_copy(uint16_t *dst, const uint16_t *v, size_t n, bool skip_sni_alpn)
{
    size_t k = 0;
    for (size_t i = 0; i < n; i++) {
        uint16_t x = v[i];
        if (lg_ja_is_grease(x)) continue;
        if (skip_sni_alpn && (x == JA_EXT_SERVER_NAME || x == JA_EXT_ALPN)) continue;
        /* Insertion sort: n <= LG_HELLO_MAX_CIPHERS, so at worst 256 * 255 / 2 moves, once per
         * hello; clients mostly send ciphers and extensions close to sorted order anyway. */
        size_t j = k++;
        while (j > 0 && dst[j - 1] > x) {
            dst[j] = dst[j - 1];
            j--;
        }
        dst[j] = x;
    }
    return k;
}

static void put_hex_list(ja_buf_t *b, const uint16_t *v, size_t n)
{
    for (size_t i = 0; i < n; i++) {
        if (i > 0) put_char(b, ',');
        put_hex4(b, v[i]);
    }
}

static void clear_parts(lg_ja4_parts_t *out)
{
    out->a[0] = '\0';
    out->b[0] = '\0';
    out->b_len = 0;
    out->c[0] = '\0';
    out->c_len = 0;
}

int lg_ja4_parts(const lg_hello_t *h, lg_ja4_parts_t *out)
{
    if (out == NULL) return -EINVAL;
    clear_parts(out);
    if (h == NULL || !counts_in_bounds(h)) return -EINVAL;
    if (h->ciphers_truncated || h->exts_truncated || h->sigalgs_truncated ||
        h->versions_truncated) {
        return -EINVAL;
    }
    if (h->n_alpn > 0 && (size_t)h->alpn_off[0] + h->alpn_len[0] > sizeof(h->alpn_buf)) {
        return -EINVAL;
    }

    /* Part a: fixed width, written in place. */
    char *a = out->a;
    const char *ver = version_code(ja4_version(h));
    a[0] = 't';
    a[1] = ver[0];
    a[2] = ver[1];
    a[3] = (h->has_sni || has_ext(h, JA_EXT_SERVER_NAME)) ? 'd' : 'i';
    put_count2(a + 4, count_non_grease(h->ciphers, h->n_ciphers));
    put_count2(a + 6, count_non_grease(h->exts, h->n_exts));
    put_alpn(a + 8, h);
    a[LG_JA4_A_LEN] = '\0';

    uint16_t sorted[LG_HELLO_MAX_CIPHERS];

    /* Part b: sorted cipher suites. */
    ja_buf_t b = {out->b, sizeof(out->b), 0, false};
    put_hex_list(&b, sorted, sorted_copy(sorted, h->ciphers, h->n_ciphers, false));
    int rb = finish(&b);

    /* Part c: sorted extensions without SNI/ALPN, then '_' and the signature algorithms in
     * wire order; empty when there is no extension left to sort. */
    ja_buf_t c = {out->c, sizeof(out->c), 0, false};
    size_t n_ext = sorted_copy(sorted, h->exts, h->n_exts, true);
    if (n_ext > 0) {
        put_hex_list(&c, sorted, n_ext);
        bool first = true;
        for (size_t i = 0; i < h->n_sigalgs; i++) {
            if (lg_ja_is_grease(h->sigalgs[i])) continue;
            put_char(&c, first ? '_' : ',');
            put_hex4(&c, h->sigalgs[i]);
            first = false;
        }
    }
    int rc = finish(&c);

    /* Cannot happen: the part sizes are derived from the array sizes checked above. */
    if (rb < 0 || rc < 0) {
        clear_parts(out);
        return -E2BIG;
    }
    out->b_len = (size_t)rb;
    out->c_len = (size_t)rc;
    return 0;
}

static bool part_a_ok(const lg_ja4_parts_t *p)
{
    return memchr(p->a, '\0', sizeof(p->a)) == p->a + LG_JA4_A_LEN;
}

static void put_hash12(char *dst, size_t len, const uint8_t *digest)
{
    for (size_t i = 0; i < JA4_DIGEST_BYTES_READ; i++) {
        if (len == 0) {
            dst[2 * i] = '0';
            dst[2 * i + 1] = '0';
        } else {
            dst[2 * i] = hex_digit(digest[i] >> 4);
            dst[2 * i + 1] = hex_digit(digest[i] & 0xf);
        }
    }
}

int lg_ja4_format(const lg_ja4_parts_t *p, const uint8_t *b_sha256, const uint8_t *c_sha256,
                  char *out, size_t cap)
{
    if (out == NULL) return -EINVAL;
    if (cap > 0) out[0] = '\0';
    if (p == NULL || !part_a_ok(p)) return -EINVAL;
    if ((p->b_len > 0 && b_sha256 == NULL) || (p->c_len > 0 && c_sha256 == NULL)) return -EINVAL;
    if (cap <= LG_JA4_LEN) return -E2BIG;

    memcpy(out, p->a, LG_JA4_A_LEN);
    out[LG_JA4_A_LEN] = '_';
    put_hash12(out + LG_JA4_A_LEN + 1, p->b_len, b_sha256);
    out[LG_JA4_A_LEN + 1 + LG_JA4_HASH_LEN] = '_';
    put_hash12(out + LG_JA4_A_LEN + 2 + LG_JA4_HASH_LEN, p->c_len, c_sha256);
    out[LG_JA4_LEN] = '\0';
    return LG_JA4_LEN;
}

int lg_ja4_raw(const lg_ja4_parts_t *p, char *out, size_t cap)
{
    if (out == NULL) return -EINVAL;
    if (cap > 0) out[0] = '\0';
    if (p == NULL || !part_a_ok(p) || p->b_len >= sizeof(p->b) || p->c_len >= sizeof(p->c)) {
        return -EINVAL;
    }
    if (cap == 0) return -E2BIG;

    ja_buf_t b = {out, cap, 0, false};
    for (size_t i = 0; i < LG_JA4_A_LEN; i++)
        put_char(&b, p->a[i]);
    put_char(&b, '_');
    for (size_t i = 0; i < p->b_len; i++)
        put_char(&b, p->b[i]);
    put_char(&b, '_');
    for (size_t i = 0; i < p->c_len; i++)
        put_char(&b, p->c[i]);
    return finish(&b);
}

/* ------------------------------------------------------------------------------------------ */
/* Fingerprints (lg_digest does the hashing).                                                 */

static void put_hex_bytes(char *dst, const uint8_t *v, size_t n)
{
    for (size_t i = 0; i < n; i++) {
        dst[2 * i] = hex_digit(v[i] >> 4);
        dst[2 * i + 1] = hex_digit(v[i] & 0xf);
    }
    dst[2 * n] = '\0';
}

/* JA3 = MD5 of the JA3 string; "" when there is none. */
static void ja3_fingerprint(const lg_hello_t *h, char ja3[LG_JA3_HEX + 1])
{
    char s3[LG_JA3_MAX];
    int n = lg_ja3_string(h, s3, sizeof(s3));
    if (n < 0) return;
    uint8_t md[LG_MD5_LEN];
    lg_md5(s3, (size_t)n, md);
    put_hex_bytes(ja3, md, sizeof(md));
}

/* JA4 = a _ sha256(b)[0..12) _ sha256(c)[0..12); "" when there is none. */
static void ja4_fingerprint(const lg_hello_t *h, char ja4[LG_JA4_LEN + 1])
{
    lg_ja4_parts_t parts;
    if (lg_ja4_parts(h, &parts) != 0) return;
    uint8_t db[LG_SHA256_LEN], dc[LG_SHA256_LEN];
    /* An empty part is written as zeros by lg_ja4_format, not hashed. */
    if (parts.b_len > 0) lg_sha256(parts.b, parts.b_len, db);
    if (parts.c_len > 0) lg_sha256(parts.c, parts.c_len, dc);
    if (lg_ja4_format(&parts, db, dc, ja4, LG_JA4_LEN + 1) != LG_JA4_LEN) ja4[0] = '\0';
}

void lg_ja_fingerprints(const lg_hello_t *h, char ja3[LG_JA3_HEX + 1], char ja4[LG_JA4_LEN + 1])
{
    ja3[0] = '\0';
    ja4[0] = '\0';
    if (h == NULL) return;
    ja3_fingerprint(h, ja3);
    ja4_fingerprint(h, ja4);
}

/* ------------------------------------------------------------------------------------------ */
/* The fingerprint cache.                                                                     */

typedef struct ja_hash_s {
    uint64_t a, b;
} ja_hash_t;

static void ja_mix(ja_hash_t *s, uint64_t w)
{
    s->a = (s->a ^ w) * UINT64_C(0x9e3779b97f4a7c15);
    s->a ^= s->a >> 29;
    s->b = (s->b + w) * UINT64_C(0xc2b2ae3d27d4eb4f);
    s->b ^= s->b >> 31;
}

/* Mix a list of 16-bit values, four per word, with its length and truncation flag. */
static void ja_mix_u16(ja_hash_t *s, const uint16_t *v, size_t n, bool truncated)
{
    ja_mix(s, (uint64_t)n << 1 | (truncated ? 1 : 0));
    size_t i = 0;
    for (; i + 4 <= n; i += 4) {
        ja_mix(s, (uint64_t)v[i] | (uint64_t)v[i + 1] << 16 | (uint64_t)v[i + 2] << 32 |
                      (uint64_t)v[i + 3] << 48);
    }
    uint64_t w = 0;
    for (unsigned k = 0; i < n; i++, k++)
        w |= (uint64_t)v[i] << (16 * k);
    ja_mix(s, w);
}

static void ja_mix_bytes(ja_hash_t *s, const uint8_t *p, size_t n)
{
    ja_mix(s, n);
    size_t i = 0;
    for (; i + 8 <= n; i += 8) {
        uint64_t w = 0;
        for (unsigned k = 0; k < 8; k++)
            w |= (uint64_t)p[i + k] << (8 * k);
        ja_mix(s, w);
    }
    uint64_t w = 0;
    for (unsigned k = 0; i < n; i++, k++)
        w |= (uint64_t)p[i] << (8 * k);
    ja_mix(s, w);
}

/* The keyed hash of every field lg_ja3_string and lg_ja4_parts read. */
static void ja_inputs_hash(const lg_ja_cache_t *c, const lg_hello_t *h, uint64_t out[2])
{
    ja_hash_t s = {c->key[0], c->key[1]};
    ja_mix(&s, (uint64_t)h->legacy_version | (uint64_t)h->record_version << 16 |
                   (uint64_t)(h->has_sni ? 1 : 0) << 32);
    ja_mix_u16(&s, h->ciphers, h->n_ciphers, h->ciphers_truncated);
    ja_mix_u16(&s, h->exts, h->n_exts, h->exts_truncated);
    ja_mix_u16(&s, h->groups, h->n_groups, h->groups_truncated);
    ja_mix_bytes(&s, h->pointfmts, h->n_pointfmts);
    ja_mix(&s, h->pointfmts_truncated ? 1 : 0);
    ja_mix_u16(&s, h->sigalgs, h->n_sigalgs, h->sigalgs_truncated);
    ja_mix_u16(&s, h->versions, h->n_versions, h->versions_truncated);
    ja_mix(&s, (uint64_t)h->n_alpn << 1 | (h->alpn_truncated ? 1 : 0));
    for (size_t i = 0; i < h->n_alpn && i < LG_HELLO_MAX_ALPN; i++) {
        ja_mix_bytes(&s, (const uint8_t *)h->alpn_buf + h->alpn_off[i], h->alpn_len[i]);
    }
    /* Finalise each lane with the other (murmur3's fmix64 on both). */
    uint64_t a = s.a ^ s.b, b = s.b ^ (s.a >> 17);
    a ^= a >> 33;
    a *= UINT64_C(0xff51afd7ed558ccd);
    a ^= a >> 33;
    b ^= b >> 33;
    b *= UINT64_C(0xc4ceb9fe1a85ec53);
    b ^= b >> 33;
    out[0] = a;
    out[1] = b;
}

void lg_ja_cache_init(lg_ja_cache_t *c, const uint64_t key[2])
{
    memset(c, 0, sizeof(*c));
    c->key[0] = key[0];
    c->key[1] = key[1];
}

void lg_ja_fingerprints_cached(lg_ja_cache_t *c, const lg_hello_t *h, unsigned want,
                               char ja3[LG_JA3_HEX + 1], char ja4[LG_JA4_LEN + 1])
{
    ja3[0] = '\0';
    ja4[0] = '\0';
    if (h == NULL) return;
    if (c == NULL) {
        if (want & LG_JA_WANT_JA3) ja3_fingerprint(h, ja3);
        if (want & LG_JA_WANT_JA4) ja4_fingerprint(h, ja4);
        return;
    }
    uint64_t hh[2];
    ja_inputs_hash(c, h, hh);
    lg_ja_cache_slot_t *s = &c->slots[hh[0] & (LG_JA_CACHE_SLOTS - 1)];
    if (s->have == 0 || s->h[0] != hh[0] || s->h[1] != hh[1]) {
        memset(s, 0, sizeof(*s));
        s->h[0] = hh[0];
        s->h[1] = hh[1];
    }
    unsigned missing = want & ~(unsigned)s->have & (LG_JA_WANT_JA3 | LG_JA_WANT_JA4);
    if (missing == 0) {
        c->hits++;
    } else {
        c->misses++;
        if (missing & LG_JA_WANT_JA3) ja3_fingerprint(h, s->ja3);
        if (missing & LG_JA_WANT_JA4) ja4_fingerprint(h, s->ja4);
        s->have |= (uint8_t)missing;
    }
    if (want & LG_JA_WANT_JA3) memcpy(ja3, s->ja3, sizeof(s->ja3));
    if (want & LG_JA_WANT_JA4) memcpy(ja4, s->ja4, sizeof(s->ja4));
}

/* ------------------------------------------------------------------------------------------ */
/* Fingerprint sets.                                                                          */

#define JA_KIND_JA3  3
#define JA_KIND_JA4  4
#define JA4_SEP_B    LG_JA4_A_LEN                         /* index of the '_' before b: 10 */
#define JA4_SEP_C    (LG_JA4_A_LEN + 1 + LG_JA4_HASH_LEN) /* index of the '_' before c: 23 */
#define JA_KEY_A_OFF 1                                    /* key bytes of part a */
#define JA_KEY_B_OFF (JA_KEY_A_OFF + LG_JA4_A_LEN)        /* key bytes of the b hash: 11 */
#define JA_KEY_C_OFF (JA_KEY_B_OFF + LG_JA4_HASH_LEN / 2) /* key bytes of the c hash: 17 */

_Static_assert(1 + LG_MD5_LEN <= LG_JA_KEY_BYTES, "a JA3 key fits");
_Static_assert(JA_KEY_C_OFF + LG_JA4_HASH_LEN / 2 <= LG_JA_KEY_BYTES, "a JA4 key fits");

static bool is_digit(char c)
{
    return c >= '0' && c <= '9';
}

static bool is_lower_alnum(char c)
{
    return is_digit(c) || (c >= 'a' && c <= 'z');
}

static char to_lower(char c)
{
    return c >= 'A' && c <= 'Z' ? (char)(c - 'A' + 'a') : c;
}

/* Value of a hex digit, or -1; upper case only when `fold`. */
static int hex_value(char c, bool fold)
{
    if (is_digit(c)) return c - '0';
    if (c >= 'a' && c <= 'f') return c - 'a' + 10;
    if (fold && c >= 'A' && c <= 'F') return c - 'A' + 10;
    return -1;
}

/* 2n hex digits into n bytes; false on a non-hex char. */
static bool hex_bytes(const char *s, size_t n, uint8_t *out, bool fold)
{
    for (size_t i = 0; i < n; i++) {
        int hi = hex_value(s[2 * i], fold), lo = hex_value(s[2 * i + 1], fold);
        if (hi < 0 || lo < 0) return false;
        out[i] = (uint8_t)(hi << 4 | lo);
    }
    return true;
}

/* Part a as lib/config.js accepts it: [tqd] [0-9a-z]{2} [di] [0-9]{4} [0-9a-z]{2}. */
static bool ja4_a_valid(const char *a)
{
    if (a[0] != 't' && a[0] != 'q' && a[0] != 'd') return false;
    if (!is_lower_alnum(a[1]) || !is_lower_alnum(a[2])) return false;
    if (a[3] != 'd' && a[3] != 'i') return false;
    for (size_t i = 4; i < 8; i++) {
        if (!is_digit(a[i])) return false;
    }
    return is_lower_alnum(a[8]) && is_lower_alnum(a[9]);
}

/*
 * The key of fingerprint `fp`. `strict` (set entries): exactly the normalised forms described in
 * lg_ja.h. Otherwise (queries): any case, folded to lower case, and part a is not checked beyond
 * its length (only a valid entry can equal it). Reads at most LG_JA4_LEN + 1 bytes of fp.
 */
static bool ja_key(const char *fp, bool strict, lg_ja_key_t *k)
{
    memset(k, 0, sizeof(*k));
    size_t len = 0;
    while (len <= LG_JA4_LEN && fp[len] != '\0')
        len++;
    if (len == LG_JA3_HEX) {
        k->b[0] = JA_KIND_JA3;
        return hex_bytes(fp, LG_MD5_LEN, k->b + 1, !strict);
    }
    if (len != LG_JA4_LEN || fp[JA4_SEP_B] != '_' || fp[JA4_SEP_C] != '_') return false;
    k->b[0] = JA_KIND_JA4;
    char a[LG_JA4_A_LEN];
    for (size_t i = 0; i < LG_JA4_A_LEN; i++)
        a[i] = strict ? fp[i] : to_lower(fp[i]);
    if (strict && !ja4_a_valid(a)) return false;
    memcpy(k->b + JA_KEY_A_OFF, a, LG_JA4_A_LEN);
    return hex_bytes(fp + JA4_SEP_B + 1, LG_JA4_HASH_LEN / 2, k->b + JA_KEY_B_OFF, !strict) &&
           hex_bytes(fp + JA4_SEP_C + 1, LG_JA4_HASH_LEN / 2, k->b + JA_KEY_C_OFF, !strict);
}

static int ja_key_cmp(const void *pa, const void *pb)
{
    return memcmp(pa, pb, sizeof(lg_ja_key_t));
}

void lg_ja_set_free(lg_ja_set_t *s)
{
    lg_free(s->keys);
    memset(s, 0, sizeof(*s));
}

int lg_ja_set_build(lg_ja_set_t *s, const char *const *fps, size_t n)
{
    memset(s, 0, sizeof(*s));
    if (n > LG_JA_SET_MAX) return -E2BIG;
    if (n == 0) return 0;
    if (fps == NULL) return -EINVAL;
    lg_ja_key_t k;
    for (size_t i = 0; i < n; i++) {
        if (fps[i] == NULL || !ja_key(fps[i], true, &k)) {
            s->bad = i;
            return -EINVAL;
        }
    }
    lg_ja_key_t *keys = lg_malloc(n * sizeof(*keys));
    if (keys == NULL) return -ENOMEM;
    for (size_t i = 0; i < n; i++)
        ja_key(fps[i], true, &keys[i]);
    qsort(keys, n, sizeof(*keys), ja_key_cmp);
    size_t u = 1;
    for (size_t i = 1; i < n; i++) {
        if (memcmp(&keys[i], &keys[u - 1], sizeof(*keys)) != 0) keys[u++] = keys[i];
    }
    s->keys = keys;
    s->n = u;
    return 0;
}

bool lg_ja_set_contains(const lg_ja_set_t *s, const char *fp)
{
    lg_ja_key_t k;
    if (s == NULL || s->n == 0 || fp == NULL || !ja_key(fp, false, &k)) return false;
    size_t lo = 0, hi = s->n;
    while (lo < hi) {
        size_t mid = lo + (hi - lo) / 2;
        int c = memcmp(&s->keys[mid], &k, sizeof(k));
        if (c == 0) return true;
        if (c < 0) {
            lo = mid + 1;
        } else {
            hi = mid;
        }
    }
    return false;
}
