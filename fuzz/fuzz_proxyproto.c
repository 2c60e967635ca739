/*
 * fuzz_proxyproto.c — libFuzzer target for the PROXY protocol parser and writers
 * (src/lg_proxyproto.c).
 *
 * Input: the bytes a peer sends. If the first byte is 0xff (which can start no PROXY header),
 * the rest is expanded first: the escape 0xfe, n_hi, n_lo, c stands for byte c repeated n times,
 * so that v2 headers with TLVs up to and past LG_PP_MAX_HEADER are reachable from small inputs.
 *
 * Parser checks, for each accept mode (any, v1 only, v2 only), aborting on any failure:
 *   - one shot, one byte at a time, and chunks of sizes drawn from a generator seeded with a
 *     hash of the input give the same result and output; pos never passes len;
 *   - the decision is made at the earliest byte: one byte less than where the byte-at-a-time run
 *     decided is LG_AGAIN; LG_AGAIN only while len < LG_PP_MAX_HEADER; a parser left waiting
 *     then given fewer bytes says LG_PP_E_SHRANK;
 *   - on LG_OK: header_len <= len, exactly header_len bytes give the same result, one byte less
 *     gives LG_AGAIN; the header is checked against the bytes independently (check_v1 splits the
 *     line and reads addresses with inet_pton(3); check_v2 reads the fixed part and walks the
 *     TLVs with its own code); on LG_ERROR every field but the reason is zero;
 *   - the modes agree: the mode of the version the first byte starts gives the same result as
 *     "any", the other mode LG_PP_E_VERSION once the signature is complete.
 * Writer checks (fields derived from the input bytes; a family other than 0, 4, 6 must give
 * -EINVAL from both writers): lg_pp_v2_size() is the size written or 0
 * exactly when the input is invalid (checked against an independent size computation);
 * -ENOSPC one byte short; parse(write(x)) gives back the normalised families, addresses and
 * ports (normalisation recomputed here), the AUTHORITY value, and v1 lines <= LG_PP_V1_MAX.
 */
#include "../src/lg_cidr.c"
#include "../src/lg_proxyproto.c"

#include <arpa/inet.h>
#include <stdio.h>
#include <stdlib.h>

#define FUZZ_MAX_EXPANDED (LG_PP_MAX_HEADER * 4) /* bytes after expansion */
#define FUZZ_ESCAPE_MODE  0xff                   /* first byte: expand escapes */
#define FUZZ_ESCAPE       0xfe                   /* escape: count (2 bytes BE), byte */

#define FUZZ_ASSERT(cond)                                                                          \
    do {                                                                                           \
        if (!(cond)) {                                                                             \
            fprintf(stderr, "fuzz_proxyproto: check failed at line %d: %s\n", __LINE__, #cond);    \
            abort();                                                                               \
        }                                                                                          \
    } while (0)

static const uint8_t v2sig[12] = {0x0D, 0x0A, 0x0D, 0x0A, 0x00, 0x0D,
                                  0x0A, 0x51, 0x55, 0x49, 0x54, 0x0A};

static bool same_hdr(int rc_a, const lg_pp_header_t *a, const uint8_t *buf_a, int rc_b,
                     const lg_pp_header_t *b, const uint8_t *buf_b)
{
    if (rc_a != rc_b) return false;
    if (rc_a == LG_AGAIN) return true;
    if ((a->authority == NULL) != (b->authority == NULL)) return false;
    if (a->authority != NULL &&
        (a->authority - buf_a != b->authority - buf_b || a->authority_len != b->authority_len)) {
        return false;
    }
    return a->reason == b->reason && a->version == b->version && a->is_local == b->is_local &&
           a->family == b->family && memcmp(a->src_addr, b->src_addr, 16) == 0 &&
           memcmp(a->dst_addr, b->dst_addr, 16) == 0 && a->src_port == b->src_port &&
           a->dst_port == b->dst_port && a->header_len == b->header_len;
}

static int parse_once(int accept, const uint8_t *b, size_t len, lg_pp_header_t *out)
{
    lg_pp_parser_t p;
    lg_pp_parser_init(&p, accept);
    return lg_pp_parse(&p, b, len, out);
}

static uint32_t fnv1a(const uint8_t *b, size_t n)
{
    uint32_t h = 2166136261u;
    for (size_t i = 0; i < n; i++)
        h = (h ^ b[i]) * 16777619u;
    return h;
}

static bool all_zero(const void *p, size_t n)
{
    const uint8_t *b = p;
    for (size_t i = 0; i < n; i++) {
        if (b[i] != 0) return false;
    }
    return true;
}

/* A decimal port as v1 writes it: 1-5 digits, no leading zero, <= 65535. */
static bool v1_port(const uint8_t *s, size_t n, uint16_t want)
{
    unsigned long v = 0;
    if (n == 0 || n > 5 || (n > 1 && s[0] == '0')) return false;
    for (size_t i = 0; i < n; i++) {
        if (s[i] < '0' || s[i] > '9') return false;
        v = v * 10 + (unsigned long)(s[i] - '0');
    }
    return v <= 65535 && v == want;
}

/* Independent check of a v1 LG_OK against the line. */
static void check_v1(const uint8_t *b, const lg_pp_header_t *r)
{
    size_t n = r->header_len;
    FUZZ_ASSERT(n >= 15 && n <= LG_PP_V1_MAX);
    FUZZ_ASSERT(memcmp(b, "PROXY ", 6) == 0 && b[n - 2] == '\r' && b[n - 1] == '\n');
    for (size_t i = 0; i + 2 < n; i++)
        FUZZ_ASSERT(b[i] != '\r' && b[i] != '\n');
    if (memcmp(b + 6, "UNKNOWN", 7) == 0) {
        FUZZ_ASSERT(n == 15 || b[13] == ' ');
        FUZZ_ASSERT(r->is_local && r->family == LG_PP_FAM_NONE);
        FUZZ_ASSERT(all_zero(r->src_addr, 16) && all_zero(r->dst_addr, 16));
        FUZZ_ASSERT(r->src_port == 0 && r->dst_port == 0);
        return;
    }
    /* "PROXY" SP proto SP src SP dst SP sport SP dport: six fields, single spaces. */
    const uint8_t *f[6];
    size_t fl[6], k = 0, start = 0;
    for (size_t i = 0; i <= n - 2; i++) {
        if (i == n - 2 || b[i] == ' ') {
            FUZZ_ASSERT(k < 6 && i > start);
            f[k] = b + start;
            fl[k++] = i - start;
            start = i + 1;
        }
    }
    FUZZ_ASSERT(k == 6);
    bool v6 = fl[1] == 4 && memcmp(f[1], "TCP6", 4) == 0;
    FUZZ_ASSERT(v6 || (fl[1] == 4 && memcmp(f[1], "TCP4", 4) == 0));
    FUZZ_ASSERT(!r->is_local && r->family == (v6 ? 6 : 4));
    for (int a = 0; a < 2; a++) {
        char text[INET6_ADDRSTRLEN + 8];
        uint8_t want[16] = {0};
        FUZZ_ASSERT(fl[2 + a] < sizeof(text));
        memcpy(text, f[2 + a], fl[2 + a]);
        text[fl[2 + a]] = '\0';
        FUZZ_ASSERT(inet_pton(v6 ? AF_INET6 : AF_INET, text, want) == 1);
        FUZZ_ASSERT(memcmp(want, a == 0 ? r->src_addr : r->dst_addr, 16) == 0);
    }
    FUZZ_ASSERT(v1_port(f[4], fl[4], r->src_port) && v1_port(f[5], fl[5], r->dst_port));
    FUZZ_ASSERT(r->authority == NULL);
}

/* Independent check of a v2 LG_OK against the header bytes. */
static void check_v2(const uint8_t *b, const lg_pp_header_t *r)
{
    size_t n = r->header_len;
    FUZZ_ASSERT(n >= 16 && n <= LG_PP_MAX_HEADER);
    FUZZ_ASSERT(memcmp(b, v2sig, 12) == 0 && b[12] >> 4 == 2);
    FUZZ_ASSERT(n == 16 + ((size_t)b[14] << 8 | b[15]));
    uint8_t cmd = b[12] & 0xF, fam = b[13];
    FUZZ_ASSERT(cmd == 0 || cmd == 1);
    if (cmd == 0) {
        FUZZ_ASSERT(r->is_local && r->family == 0 && r->authority == NULL);
        FUZZ_ASSERT(all_zero(r->src_addr, 16) && all_zero(r->dst_addr, 16));
        return;
    }
    size_t i = 16;
    if (fam == 0x11) {
        FUZZ_ASSERT(!r->is_local && r->family == 4);
        FUZZ_ASSERT(memcmp(r->src_addr, b + 16, 4) == 0 && all_zero(r->src_addr + 4, 12));
        FUZZ_ASSERT(memcmp(r->dst_addr, b + 20, 4) == 0 && all_zero(r->dst_addr + 4, 12));
        FUZZ_ASSERT(r->src_port == (b[24] << 8 | b[25]) && r->dst_port == (b[26] << 8 | b[27]));
        i += 12;
    } else if (fam == 0x21) {
        FUZZ_ASSERT(!r->is_local && r->family == 6);
        FUZZ_ASSERT(memcmp(r->src_addr, b + 16, 16) == 0 && memcmp(r->dst_addr, b + 32, 16) == 0);
        FUZZ_ASSERT(r->src_port == (b[48] << 8 | b[49]) && r->dst_port == (b[50] << 8 | b[51]));
        i += 36;
    } else {
        FUZZ_ASSERT(fam == 0x00 || fam == 0x31);
        FUZZ_ASSERT(r->is_local && r->family == 0);
        i += fam == 0x31 ? 216 : 0;
    }
    FUZZ_ASSERT(i <= n);
    const uint8_t *auth = NULL;
    size_t auth_len = 0;
    while (i < n) {
        FUZZ_ASSERT(n - i >= 3);
        size_t len = (size_t)b[i + 1] << 8 | b[i + 2];
        FUZZ_ASSERT(len <= n - i - 3);
        if (b[i] == 0x02) {
            FUZZ_ASSERT(auth == NULL);
            auth = b + i + 3;
            auth_len = len;
        }
        i += 3 + len;
    }
    FUZZ_ASSERT(i == n);
    FUZZ_ASSERT(r->authority == auth && r->authority_len == (auth ? auth_len : 0));
}

/* Run every parser check under one accept mode; returns the one-shot result. */
static int run_mode(int accept, const uint8_t *b, size_t len, lg_pp_header_t *one)
{
    int rc_one = parse_once(accept, b, len, one);
    FUZZ_ASSERT(rc_one == LG_OK || rc_one == LG_AGAIN || rc_one == LG_ERROR);

    /* One byte at a time; `at` = length at which it was decided. */
    lg_pp_parser_t p;
    lg_pp_header_t byte, chunk;
    lg_pp_parser_init(&p, accept);
    size_t at = len;
    int rc_byte = LG_AGAIN;
    for (size_t n = 0; n <= len; n++) {
        rc_byte = lg_pp_parse(&p, b, n, &byte);
        FUZZ_ASSERT(p.pos <= n);
        if (rc_byte != LG_AGAIN) {
            at = n;
            break;
        }
    }
    FUZZ_ASSERT(same_hdr(rc_one, one, b, rc_byte, &byte, b));
    if (rc_byte != LG_AGAIN) {
        lg_pp_header_t again;
        FUZZ_ASSERT(same_hdr(rc_byte, &byte, b, lg_pp_parse(&p, b, len, &again), &again, b));
    }

    /* Chunks of pseudo-random sizes (1..64, sometimes 0), seeded from the input. */
    lg_pp_parser_init(&p, accept);
    uint32_t seed = fnv1a(b, len) ^ (uint32_t)accept;
    size_t n = 0;
    int rc_chunk = LG_AGAIN;
    for (;;) {
        seed = seed * 1103515245u + 12345u;
        n = LG_MIN(len, n + ((seed >> 16) % 65));
        rc_chunk = lg_pp_parse(&p, b, n, &chunk);
        FUZZ_ASSERT(p.pos <= n);
        if (rc_chunk != LG_AGAIN || n == len) break;
    }
    FUZZ_ASSERT(same_hdr(rc_one, one, b, rc_chunk, &chunk, b));

    if (rc_one == LG_AGAIN) {
        FUZZ_ASSERT(len < LG_PP_MAX_HEADER);
        if (len > 0) { /* a shrinking buffer is refused, and stays refused */
            lg_pp_header_t s;
            FUZZ_ASSERT(lg_pp_parse(&p, b, len - 1, &s) == LG_ERROR && s.reason == LG_PP_E_SHRANK);
            FUZZ_ASSERT(lg_pp_parse(&p, b, len, &s) == LG_ERROR && s.reason == LG_PP_E_SHRANK);
        }
        return rc_one;
    }
    FUZZ_ASSERT(at >= 1 && at <= len && at <= LG_PP_MAX_HEADER);
    lg_pp_header_t shorter;
    FUZZ_ASSERT(parse_once(accept, b, at - 1, &shorter) == LG_AGAIN); /* earliest */
    if (rc_one == LG_ERROR) {
        FUZZ_ASSERT(one->reason > LG_PP_E_NONE && one->reason < LG_PP_E_SHRANK);
        FUZZ_ASSERT(strcmp(lg_pp_reason_name(one->reason), "unknown") != 0);
        FUZZ_ASSERT(one->version == 0 && !one->is_local && one->family == 0 &&
                    one->header_len == 0 && one->authority == NULL && one->src_port == 0 &&
                    one->dst_port == 0 && all_zero(one->src_addr, 16) &&
                    all_zero(one->dst_addr, 16));
        return rc_one;
    }
    FUZZ_ASSERT(one->reason == LG_PP_E_NONE && at == one->header_len && one->header_len <= len);
    lg_pp_header_t h;
    FUZZ_ASSERT(parse_once(accept, b, one->header_len, &h) == LG_OK);
    FUZZ_ASSERT(same_hdr(LG_OK, one, b, LG_OK, &h, b));
    FUZZ_ASSERT(one->version == 1 || one->version == 2);
    FUZZ_ASSERT(accept & (one->version == 1 ? LG_PP_ACCEPT_V1 : LG_PP_ACCEPT_V2));
    if (one->version == 1) {
        check_v1(b, one);
    } else {
        check_v2(b, one);
    }
    return rc_one;
}

static void run_parser(const uint8_t *b, size_t len)
{
    lg_pp_header_t any, v1, v2;
    int rc_any = run_mode(LG_PP_ACCEPT_ANY, b, len, &any);
    int rc_v1 = run_mode(LG_PP_ACCEPT_V1, b, len, &v1);
    int rc_v2 = run_mode(LG_PP_ACCEPT_V2, b, len, &v2);

    /* The mode of the version the first byte starts agrees with "any"; the other mode refuses
       the version once its signature is complete, and otherwise agrees too. */
    bool starts_v1 = len >= 1 && b[0] == 'P', starts_v2 = len >= 1 && b[0] == 0x0D;
    bool sig_v1 = len >= 5 && memcmp(b, "PROXY", 5) == 0;
    bool sig_v2 = len >= 12 && memcmp(b, v2sig, 12) == 0;
    int rc_same = starts_v2 ? rc_v2 : rc_v1;
    const lg_pp_header_t *same = starts_v2 ? &v2 : &v1;
    FUZZ_ASSERT(same_hdr(rc_any, &any, b, rc_same, same, b));
    int rc_other = starts_v2 ? rc_v1 : rc_v2;
    const lg_pp_header_t *other = starts_v2 ? &v1 : &v2;
    if ((starts_v1 && sig_v1) || (starts_v2 && sig_v2)) {
        FUZZ_ASSERT(rc_other == LG_ERROR && other->reason == LG_PP_E_VERSION);
    } else {
        FUZZ_ASSERT(same_hdr(rc_any, &any, b, rc_other, other, b));
    }
}

/* ---- Writer ---------------------------------------------------------------------------------- */

/* Reads bytes from the input, zeros once it runs out. */
typedef struct cursor_s {
    const uint8_t *b;
    size_t len, i;
} cursor_t;

static uint8_t next8(cursor_t *c)
{
    return c->i < c->len ? c->b[c->i++] : 0;
}

static uint16_t next16(cursor_t *c)
{
    uint16_t hi = next8(c);
    return (uint16_t)(hi << 8 | next8(c));
}

/* Filler for long TLV values; its contents do not matter to the checks. */
static uint8_t filler[LG_PP_MAX_HEADER + 64];

/* An optional byte string: absent, empty, short (input bytes), or long (filler). */
static lg_pp_bytes_t next_bytes(cursor_t *c)
{
    lg_pp_bytes_t s = {NULL, 0};
    uint8_t kind = next8(c);
    switch (kind & 3) {
    case 0:
        break;
    case 1:
        s.ptr = filler;
        s.len = 0;
        break;
    case 2:
        s.len = LG_MIN((size_t)(kind >> 2), c->len - c->i);
        s.ptr = c->b + c->i;
        c->i += s.len;
        break;
    default:
        s.ptr = filler;
        s.len = next16(c) % sizeof(filler);
        break;
    }
    return s;
}

static const uint8_t mapped_prefix[12] = {0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0xff, 0xff};

/* One address: unknown (0), IPv4, IPv6, IPv4-mapped IPv6, or (1 in 8) a family that is not
   0, 4 or 6. */
static void next_addr(cursor_t *c, uint8_t *family, uint8_t addr[16])
{
    uint8_t kind = next8(c);
    memset(addr, 0, 16);
    if ((kind & 7) == 7) {
        *family = kind >> 3;
        if (*family == 0 || *family == 4 || *family == 6) *family = 5;
        return;
    }
    kind &= 3;
    if (kind == 0) {
        *family = 0;
    } else if (kind == 1) {
        *family = 4;
        for (int i = 0; i < 4; i++)
            addr[i] = next8(c);
    } else if (kind == 2) {
        *family = 6;
        for (int i = 0; i < 16; i++)
            addr[i] = next8(c);
    } else {
        *family = 6;
        memcpy(addr, mapped_prefix, 12);
        for (int i = 12; i < 16; i++)
            addr[i] = next8(c);
    }
}

/* The independent model of the family normalisation: returns the family written (0, 4, 6). */
static uint8_t model_norm(const lg_pp_info_t *in, uint8_t src[16], uint8_t dst[16])
{
    uint8_t fam[2] = {in->src_family, in->dst_family};
    uint8_t *a[2] = {src, dst};
    memcpy(src, in->src_addr, 16);
    memcpy(dst, in->dst_addr, 16);
    if (fam[0] == 0 || fam[1] == 0) return 0;
    for (int i = 0; i < 2; i++) {
        if (fam[i] == 6 && memcmp(a[i], mapped_prefix, 12) == 0) {
            uint8_t v4[4];
            memcpy(v4, a[i] + 12, 4);
            memset(a[i], 0, 16);
            memcpy(a[i], v4, 4);
            fam[i] = 4;
        }
    }
    if (fam[0] == 4 && fam[1] == 4) return 4;
    for (int i = 0; i < 2; i++) {
        if (fam[i] == 4) {
            uint8_t v4[4];
            memcpy(v4, a[i], 4);
            memcpy(a[i], mapped_prefix, 12);
            memcpy(a[i] + 12, v4, 4);
        }
    }
    return 6;
}

/* The v2 size computed independently; 0 when the input must be refused. */
static size_t model_v2_size(const lg_pp_info_t *in, uint8_t family)
{
    const lg_pp_bytes_t *plain[] = {&in->alpn, &in->authority, &in->unique_id, &in->ja3, &in->ja4};
    unsigned long long n = 16 + (family == 4 ? 12 : family == 6 ? 36 : 0);
    for (size_t i = 0; i < 5; i++)
        n += plain[i]->ptr ? 3 + (unsigned long long)plain[i]->len : 0;
    if (in->ssl) {
        n += 3 + 5;
        n += in->ssl_version.ptr ? 3 + (unsigned long long)in->ssl_version.len : 0;
        n += in->ssl_cipher.ptr ? 3 + (unsigned long long)in->ssl_cipher.len : 0;
    }
    if (in->unique_id.ptr && in->unique_id.len > LG_PP_UNIQUE_ID_MAX) return 0;
    return n <= LG_PP_MAX_HEADER ? (size_t)n : 0;
}

static void check_round_trip(int version, const lg_pp_info_t *in, const uint8_t *out, size_t n,
                             uint8_t family, const uint8_t src[16], const uint8_t dst[16])
{
    lg_pp_header_t r;
    uint8_t *b = malloc(n);
    FUZZ_ASSERT(b != NULL);
    memcpy(b, out, n);
    FUZZ_ASSERT(parse_once(version == 1 ? LG_PP_ACCEPT_V1 : LG_PP_ACCEPT_V2, b, n, &r) == LG_OK);
    FUZZ_ASSERT(r.header_len == n && r.version == version);
    FUZZ_ASSERT(r.family == family && r.is_local == (family == 0));
    if (family == 4) {
        FUZZ_ASSERT(memcmp(r.src_addr, src, 4) == 0 && all_zero(r.src_addr + 4, 12));
        FUZZ_ASSERT(memcmp(r.dst_addr, dst, 4) == 0 && all_zero(r.dst_addr + 4, 12));
    } else if (family == 6) {
        FUZZ_ASSERT(memcmp(r.src_addr, src, 16) == 0 && memcmp(r.dst_addr, dst, 16) == 0);
    }
    if (family != 0) {
        FUZZ_ASSERT(r.src_port == in->src_port && r.dst_port == in->dst_port);
    }
    if (version == 2 && in->authority.ptr != NULL) {
        FUZZ_ASSERT(r.authority != NULL && r.authority_len == in->authority.len);
        FUZZ_ASSERT(memcmp(r.authority, in->authority.ptr, in->authority.len) == 0);
    } else {
        FUZZ_ASSERT(r.authority == NULL);
    }
    free(b);
}

static void run_writer(const uint8_t *data, size_t len)
{
    static uint8_t out[LG_PP_MAX_HEADER];
    cursor_t c = {data, len, 0};
    lg_pp_info_t in;
    memset(&in, 0, sizeof(in));

    next_addr(&c, &in.src_family, in.src_addr);
    next_addr(&c, &in.dst_family, in.dst_addr);
    in.src_port = next16(&c);
    in.dst_port = next16(&c);
    in.alpn = next_bytes(&c);
    in.authority = next_bytes(&c);
    in.unique_id = next_bytes(&c);
    uint8_t ssl = next8(&c);
    in.ssl = ssl & 1;
    in.ssl_client = next8(&c);
    in.ssl_verify = (uint32_t)next16(&c) << 16 | next16(&c);
    in.ssl_version = next_bytes(&c);
    in.ssl_cipher = next_bytes(&c);
    in.ja3 = next_bytes(&c);
    in.ja4 = next_bytes(&c);

    uint8_t src[16], dst[16];
    bool valid = (in.src_family == 0 || in.src_family == 4 || in.src_family == 6) &&
                 (in.dst_family == 0 || in.dst_family == 4 || in.dst_family == 6);
    if (!valid) {
        FUZZ_ASSERT(lg_pp_write_v1(&in, out, sizeof(out)) == -EINVAL);
        FUZZ_ASSERT(lg_pp_v2_size(&in) == 0);
        FUZZ_ASSERT(lg_pp_write_v2(&in, out, sizeof(out)) == -EINVAL);
        return;
    }
    uint8_t family = model_norm(&in, src, dst);

    int n = lg_pp_write_v1(&in, out, sizeof(out));
    FUZZ_ASSERT(n > 0 && n <= LG_PP_V1_MAX);
    FUZZ_ASSERT(lg_pp_write_v1(&in, out, (size_t)n - 1) == -ENOSPC);
    n = lg_pp_write_v1(&in, out, (size_t)n);
    check_round_trip(1, &in, out, (size_t)n, family, src, dst);

    size_t size = lg_pp_v2_size(&in);
    FUZZ_ASSERT(size == model_v2_size(&in, family));
    if (size == 0) {
        FUZZ_ASSERT(lg_pp_write_v2(&in, out, sizeof(out)) == -EINVAL);
        return;
    }
    FUZZ_ASSERT(lg_pp_write_v2(&in, out, size - 1) == -ENOSPC);
    n = lg_pp_write_v2(&in, out, size);
    FUZZ_ASSERT(n > 0 && (size_t)n == size);
    check_round_trip(2, &in, out, (size_t)n, family, src, dst);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    static uint8_t expanded[FUZZ_MAX_EXPANDED];
    const uint8_t *src = data;
    size_t len = size;

    if (filler[0] == 0) memset(filler, 'f', sizeof(filler));
    if (size > 0 && data[0] == FUZZ_ESCAPE_MODE) {
        len = 0;
        for (size_t i = 1; i < size && len < sizeof(expanded);) {
            if (data[i] == FUZZ_ESCAPE && size - i >= 4) {
                size_t count = (size_t)data[i + 1] << 8 | data[i + 2];
                count = LG_MIN(count, sizeof(expanded) - len);
                memset(expanded + len, data[i + 3], count);
                len += count;
                i += 4;
            } else {
                expanded[len++] = data[i++];
            }
        }
        src = expanded;
    }
    /* An exact-size copy, so that ASan reports any read at or past len. */
    uint8_t *b = malloc(len ? len : 1);
    if (b == NULL) return 0;
    memcpy(b, src, len);
    run_parser(b, len);
    run_writer(b, len);
    free(b);
    return 0;
}
