/*
 * test_proxyproto.c — unit tests of the PROXY protocol parser and writers (src/lg_proxyproto.c).
 *
 * Covers: annotated good vectors for v1 (the spec's example and its maximum-length lines, TCP6
 * forms, UNKNOWN with and without a tail) and v2 (TCP4, TCP6, LOCAL, UNSPEC, UNIX, TLVs); every
 * prefix of each is LG_AGAIN, the whole one LG_OK with the right header_len and fields, at every
 * split point and one byte at a time, and bytes after the header are not examined. Bad vectors
 * for every reason, each ending with the byte that decides it (one byte fewer is still
 * LG_AGAIN). Accept modes (v1 on a v2-only listener and the reverse). Limits at exactly max and
 * max + 1: the v1 line at 107/108 bytes, the v2 header at LG_PP_MAX_HEADER and + 1. Lying
 * lengths (address block longer than the header, TLV header or value past the end, length field
 * over the cap). Writers: byte-exact v1 lines and a byte-exact v2 header with every TLV, an
 * independent TLV walker over written headers, the RFC 5952 text against inet_ntop(3), sizes and
 * -ENOSPC / -EINVAL at their limits, and writer → parser round trips for IPv4, IPv6, mapped,
 * mixed and unknown families with and without each TLV.
 */
#include "../../src/lg_cidr.c"
#include "../../src/lg_proxyproto.c"

#include <arpa/inet.h>
#include <stdio.h>
#include <stdlib.h>

#include "lg_test.h"

#define S(lit) lit, sizeof(lit) - 1

/* §2.2: the v2 signature, then pieces of a header written one field per literal. */
#define V2_SIG "\x0D\x0A\x0D\x0A\x00\x0D\x0A\x51\x55\x49\x54\x0A"

#define ANY LG_PP_ACCEPT_ANY
#define V1  LG_PP_ACCEPT_V1
#define V2  LG_PP_ACCEPT_V2

/* ---- Helpers --------------------------------------------------------------------------------- */

/* An exact-size heap copy, so that ASan reports any read at or past len. */
static uint8_t *dup_bytes(const void *a, size_t alen, const void *b, size_t blen)
{
    uint8_t *p = malloc(alen + blen ? alen + blen : 1);
    if (p == NULL) abort();
    if (alen) memcpy(p, a, alen);
    if (blen) memcpy(p + alen, b, blen);
    return p;
}

/* Results must agree field by field; the authority by offset from its own buffer and length. */
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

static int parse_once(int accept, const uint8_t *buf, size_t len, lg_pp_header_t *out)
{
    lg_pp_parser_t p;
    lg_pp_parser_init(&p, accept);
    return lg_pp_parse(&p, buf, len, out);
}

/*
 * Feed buf one byte more per call. Returns the result (-1 if a repeat call after the decision
 * disagrees) and sets *at to the length at which it was decided (len if never).
 */
static int parse_bytewise(int accept, const uint8_t *buf, size_t len, lg_pp_header_t *out,
                          size_t *at)
{
    lg_pp_parser_t p;
    lg_pp_parser_init(&p, accept);
    *at = len;
    for (size_t n = 0; n <= len; n++) {
        int rc = lg_pp_parse(&p, buf, n, out);
        if (p.pos > n) return -1;
        if (rc != LG_AGAIN) {
            *at = n;
            lg_pp_header_t again;
            int rc2 = lg_pp_parse(&p, buf, len, &again);
            if (!same_hdr(rc, out, buf, rc2, &again, buf)) return -1;
            return rc;
        }
    }
    return LG_AGAIN;
}

/* Two calls, split at every point, and one byte at a time, must equal one shot. */
static bool splits_agree(int accept, const uint8_t *buf, size_t len)
{
    lg_pp_header_t one, two;
    int rc_one = parse_once(accept, buf, len, &one);
    for (size_t k = 0; k <= len; k++) {
        lg_pp_parser_t p;
        lg_pp_parser_init(&p, accept);
        int rc = lg_pp_parse(&p, buf, k, &two);
        if (rc == LG_AGAIN) rc = lg_pp_parse(&p, buf, len, &two);
        if (!same_hdr(rc_one, &one, buf, rc, &two, buf)) {
            fprintf(stderr, "  split at %zu differs\n", k);
            return false;
        }
    }
    size_t at;
    int rc = parse_bytewise(accept, buf, len, &two, &at);
    return same_hdr(rc_one, &one, buf, rc, &two, buf);
}

/* inet_pton into a 16-byte lg_cidr-style address (IPv4 in [0..3]); NULL gives all zero. */
static void addr_of(const char *text, uint8_t out[16])
{
    memset(out, 0, 16);
    if (text == NULL) return;
    if (inet_pton(strchr(text, ':') ? AF_INET6 : AF_INET, text, out) != 1) abort();
}

/* ---- Good vectors ---------------------------------------------------------------------------- */

typedef struct good_s {
    const char *name;
    const char *head; /* the header, exactly: header_len must equal its length */
    size_t head_len;
    const char *tail; /* stream bytes sent with it */
    size_t tail_len;
    uint8_t version;
    bool is_local;
    uint8_t family;
    const char *src, *dst; /* address texts (inet_pton), NULL when is_local */
    uint16_t sport, dport;
    const char *authority; /* expected AUTHORITY value, NULL when absent */
    size_t authority_len;
} good_t;

static const good_t good[] = {
    /* v1 (§2.1). The spec's example, before an HTTP request. */
    {"v1 spec example", S("PROXY TCP4 192.168.0.1 192.168.0.11 56324 443\r\n"),
     S("GET / HTTP/1.1\r\nHost: 192.168.0.11\r\n\r\n"), 1, false, 4, "192.168.0.1", "192.168.0.11",
     56324, 443, NULL, 0},
    /* The spec's longest TCP4 line: 56 bytes. */
    {"v1 TCP4 max", S("PROXY TCP4 255.255.255.255 255.255.255.255 65535 65535\r\n"), S(""), 1,
     false, 4, "255.255.255.255", "255.255.255.255", 65535, 65535, NULL, 0},
    /* The spec's longest TCP6 line in the hex form: 104 bytes. */
    {"v1 TCP6 max",
     S("PROXY TCP6 ffff:ffff:ffff:ffff:ffff:ffff:ffff:ffff ffff:ffff:ffff:ffff:ffff:ffff:ffff:ffff "
       "65535 65535\r\n"),
     S(""), 1, false, 6, "ffff:ffff:ffff:ffff:ffff:ffff:ffff:ffff",
     "ffff:ffff:ffff:ffff:ffff:ffff:ffff:ffff", 65535, 65535, NULL, 0},
    /* The spec's short UNKNOWN form: 15 bytes. */
    {"v1 UNKNOWN short", S("PROXY UNKNOWN\r\n"), S("\x16\x03\x01"), 1, true, 0, NULL, NULL, 0, 0,
     NULL, 0},
    /* The spec's worst case, UNKNOWN with every optional field at its longest: 107 bytes. */
    {"v1 UNKNOWN worst case 107",
     S("PROXY UNKNOWN ffff:ffff:ffff:ffff:ffff:ffff:ffff:ffff "
       "ffff:ffff:ffff:ffff:ffff:ffff:ffff:ffff 65535 65535\r\n"),
     S("x"), 1, true, 0, NULL, NULL, 0, 0, NULL, 0},
    /* UNKNOWN: anything up to the CRLF is ignored, even bytes that are no text. */
    {"v1 UNKNOWN with junk", S("PROXY UNKNOWN  \x00\x7f\xff garbage\r\n"), S(""), 1, true, 0, NULL,
     NULL, 0, 0, NULL, 0},
    {"v1 UNKNOWN with one space", S("PROXY UNKNOWN \r\n"), S(""), 1, true, 0, NULL, NULL, 0, 0,
     NULL, 0},
    /* Ports 0 and addresses 0: "0" itself is not a leading zero. */
    {"v1 zeros", S("PROXY TCP4 0.0.0.0 0.0.0.0 0 0\r\n"), S(""), 1, false, 4, "0.0.0.0", "0.0.0.0",
     0, 0, NULL, 0},
    {"v1 TCP6 loopback", S("PROXY TCP6 ::1 ::1 1 65535\r\n"), S("SSH-2.0-x\r\n"), 1, false, 6,
     "::1", "::1", 1, 65535, NULL, 0},
    {"v1 TCP6 upper case", S("PROXY TCP6 2001:DB8::A FE80::1:2 443 8443\r\n"), S(""), 1, false, 6,
     "2001:db8::a", "fe80::1:2", 443, 8443, NULL, 0},
    /* IPv4-mapped IPv6 stays IPv6: callers fold it with lg_ip_unmap(). */
    {"v1 TCP6 mapped", S("PROXY TCP6 ::ffff:1.2.3.4 ::ffff:5.6.7.8 80 443\r\n"), S(""), 1, false, 6,
     "::ffff:1.2.3.4", "::ffff:5.6.7.8", 80, 443, NULL, 0},
    /* A TCP6 line of exactly 107 bytes: 26 + a 45-byte and a 36-byte address. */
    {"v1 TCP6 107 bytes",
     S("PROXY TCP6 ffff:ffff:ffff:ffff:ffff:ffff:255.255.255.255 "
       "fff:ffff:ffff:ffff:ffff:ffff:1.2.3.4 "
       "65535 65535\r\n"),
     S(""), 1, false, 6, "ffff:ffff:ffff:ffff:ffff:ffff:255.255.255.255",
     "fff:ffff:ffff:ffff:ffff:ffff:1.2.3.4", 65535, 65535, NULL, 0},
    /* Bytes after the header that look like another header are the stream's. */
    {"v1 followed by a second header", S("PROXY TCP4 10.0.0.1 10.0.0.2 1 2\r\n"),
     S("PROXY TCP4 6.6.6.6 6.6.6.6 6 6\r\n"), 1, false, 4, "10.0.0.1", "10.0.0.2", 1, 2, NULL, 0},

    /* v2 (§2.2). */
    {"v2 TCP4",
     S(V2_SIG "\x21"             /* version 2, PROXY */
              "\x11"             /* TCP over IPv4 */
              "\x00\x0C"         /* 12 bytes follow */
              "\xC0\xA8\x00\x01" /* src 192.168.0.1 */
              "\xC0\xA8\x00\x0B" /* dst 192.168.0.11 */
              "\xDC\x04"         /* sport 56324 */
              "\x01\xBB"),       /* dport 443 */
     S("GET / HTTP/1.1\r\n\r\n"), 2, false, 4, "192.168.0.1", "192.168.0.11", 56324, 443, NULL, 0},
    {"v2 TCP6",
     S(V2_SIG "\x21"     /* version 2, PROXY */
              "\x21"     /* TCP over IPv6 */
              "\x00\x24" /* 36 bytes follow */
              "\x20\x01\x0d\xb8\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00\x01" /* 2001:db8::1 */
              "\x20\x01\x0d\xb8\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00\x02" /* 2001:db8::2 */
              "\x00\x00"                                                         /* sport 0 */
              "\xFF\xFF"),                                                       /* dport 65535 */
     S("\x16\x03\x01\x00\x05"), 2, false, 6, "2001:db8::1", "2001:db8::2", 0, 65535, NULL, 0},
    {"v2 TCP6 mapped",
     S(V2_SIG
       "\x21"
       "\x21"
       "\x00\x24"
       "\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00\xff\xff\x01\x02\x03\x04" /* ::ffff:1.2.3.4 */
       "\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00\xff\xff\x05\x06\x07\x08" /* ::ffff:5.6.7.8 */
       "\x00\x50"
       "\x01\xBB"),
     S(""), 2, false, 6, "::ffff:1.2.3.4", "::ffff:5.6.7.8", 80, 443, NULL, 0},
    {"v2 LOCAL, UNSPEC, length 0",
     S(V2_SIG "\x20"       /* version 2, LOCAL */
              "\x00"       /* UNSPEC */
              "\x00\x00"), /* nothing follows */
     S("\r\n\r\n\x00\r\nQUIT\n"), 2, true, 0, NULL, NULL, 0, 0, NULL, 0},
    /* LOCAL: the family is ignored and the block skipped unread (§2.2), even when it is not a
       well-formed address block or TLV list. */
    {"v2 LOCAL with a TCP4 block",
     S(V2_SIG "\x20"
              "\x11"
              "\x00\x0C"
              "\x01\x02\x03\x04\x05\x06\x07\x08\x00\x01\x00\x02"),
     S(""), 2, true, 0, NULL, NULL, 0, 0, NULL, 0},
    {"v2 LOCAL with a short TCP4 block",
     S(V2_SIG "\x20"
              "\x11"
              "\x00\x02"
              "\xAA\xBB"),
     S(""), 2, true, 0, NULL, NULL, 0, 0, NULL, 0},
    {"v2 LOCAL, UDP family ignored",
     S(V2_SIG "\x20"
              "\x12"
              "\x00\x01"
              "\x02"), /* one byte: not even a TLV header */
     S(""), 2, true, 0, NULL, NULL, 0, 0, NULL, 0},
    {"v2 PROXY UNSPEC, length 0",
     S(V2_SIG "\x21"
              "\x00"
              "\x00\x00"),
     S("x"), 2, true, 0, NULL, NULL, 0, 0, NULL, 0},
    {"v2 PROXY UNSPEC with AUTHORITY",
     S(V2_SIG "\x21"
              "\x00"
              "\x00\x0A" /* 10 bytes of TLVs */
              "\x02\x00\x07"
              "a.b.c.d"), /* AUTHORITY "a.b.c.d" */
     S(""), 2, true, 0, NULL, NULL, 0, 0, "a.b.c.d", 7},
    {"v2 TCP4 with TLVs",
     S(V2_SIG "\x21"
              "\x11"
              "\x00\x2D"         /* 12 + 33 */
              "\x0A\x00\x00\x01" /* 10.0.0.1 */
              "\x0A\x00\x00\x02" /* 10.0.0.2 */
              "\x30\x39"         /* 12345 */
              "\x00\x50"         /* 80 */
              "\x01\x00\x02"
              "h2"           /* ALPN "h2" */
              "\x04\x00\x00" /* NOOP, empty */
              "\x02\x00\x0B"
              "example.com" /* AUTHORITY */
              "\x03\x00\x04"
              "\xDE\xAD\xBE\xEF" /* CRC32C: not verified */
              "\xEA\x00\x01"
              "\x00"), /* custom type */
     S("rest"), 2, false, 4, "10.0.0.1", "10.0.0.2", 12345, 80, "example.com", 11},
    {"v2 TCP4 with an empty AUTHORITY",
     S(V2_SIG "\x21"
              "\x11"
              "\x00\x0F"
              "\x0A\x00\x00\x01"
              "\x0A\x00\x00\x02"
              "\x00\x01"
              "\x00\x02"
              "\x02\x00\x00"), /* AUTHORITY, empty value: present, length 0 */
     S(""), 2, false, 4, "10.0.0.1", "10.0.0.2", 1, 2, "", 0},
    {"v2 TCP4 TLV ending exactly at the header end",
     S(V2_SIG "\x21"
              "\x11"
              "\x00\x13"
              "\x0A\x00\x00\x01"
              "\x0A\x00\x00\x02"
              "\x00\x01"
              "\x00\x02"
              "\xEE\x00\x04"
              "abcd"),
     S("\x02\x00\x01X"), 2, false, 4, "10.0.0.1", "10.0.0.2", 1, 2, NULL, 0},
    /* The stream after the header begins with a v2 signature: not examined. */
    {"v2 followed by a second header",
     S(V2_SIG "\x21"
              "\x00"
              "\x00\x00"),
     S(V2_SIG "\x21\x11\xFF\xFF"), 2, true, 0, NULL, NULL, 0, 0, NULL, 0},
};

/* Check one good vector under `accept` (a mode that accepts its version). */
static bool check_good(const good_t *g, int accept, const char **why)
{
    size_t len = g->head_len + g->tail_len;
    uint8_t *b = dup_bytes(g->head, g->head_len, g->tail, g->tail_len);
    uint8_t src[16], dst[16];
    lg_pp_header_t r;
    bool ok = false;

    addr_of(g->src, src);
    addr_of(g->dst, dst);
    *why = "fields";
    int rc = parse_once(accept, b, len, &r);
    if (rc != LG_OK || r.reason != LG_PP_E_NONE || r.header_len != g->head_len ||
        r.version != g->version || r.is_local != g->is_local || r.family != g->family ||
        memcmp(r.src_addr, src, 16) != 0 || memcmp(r.dst_addr, dst, 16) != 0 ||
        r.src_port != g->sport || r.dst_port != g->dport) {
        goto out;
    }
    *why = "authority";
    if (g->authority == NULL ? r.authority != NULL
                             : (r.authority == NULL || r.authority_len != g->authority_len ||
                                memcmp(r.authority, g->authority, g->authority_len) != 0)) {
        goto out;
    }
    *why = "authority inside the header";
    if (r.authority != NULL && (r.authority < b || r.authority + r.authority_len > b + g->head_len))
        goto out;
    *why = "splits";
    if (!splits_agree(accept, b, len)) goto out;
    /* Every prefix waits (fresh parser), the header alone is enough. */
    *why = "prefix";
    for (size_t k = 0; k < g->head_len; k++) {
        lg_pp_header_t h;
        if (parse_once(accept, b, k, &h) != LG_AGAIN) goto out;
    }
    *why = "header alone";
    lg_pp_header_t h;
    if (parse_once(accept, b, g->head_len, &h) != LG_OK || !same_hdr(LG_OK, &r, b, LG_OK, &h, b))
        goto out;
    /* The bytes after the header are not examined: the parser stopped at its end. */
    *why = "stopped at the end";
    lg_pp_parser_t p;
    lg_pp_parser_init(&p, accept);
    if (lg_pp_parse(&p, b, len, &h) != LG_OK || p.pos != g->head_len) goto out;
    ok = true;
out:
    free(b);
    return ok;
}

LG_TEST(test_good_vectors)
{
    for (size_t i = 0; i < LG_ARRAY_SIZE(good); i++) {
        const good_t *g = &good[i];
        const char *why = "";
        bool any = check_good(g, ANY, &why);
        if (!any) fprintf(stderr, "  [%s] ANY: %s\n", g->name, why);
        CHECK_ROW(any, g->name);
        bool one = check_good(g, g->version == 1 ? V1 : V2, &why);
        if (!one) fprintf(stderr, "  [%s] one version: %s\n", g->name, why);
        CHECK_ROW(one, g->name);
    }
}

/* Whatever follows the header, the result is the same. */
LG_TEST(test_good_vectors_any_tail)
{
    static const char tails[][8] = {
        "", "\r\n", "\n", "\0", "PROXY ", "\r\n\r\n\0\r\n", "\xff\xff\xff\xff"};
    for (size_t i = 0; i < LG_ARRAY_SIZE(good); i++) {
        const good_t *g = &good[i];
        for (size_t t = 0; t < LG_ARRAY_SIZE(tails); t++) {
            size_t tl = t == 3 ? 1 : strlen(tails[t]);
            uint8_t *b = dup_bytes(g->head, g->head_len, tails[t], tl);
            lg_pp_header_t r;
            int rc = parse_once(ANY, b, g->head_len + tl, &r);
            free(b);
            CHECK_ROW(rc == LG_OK && r.header_len == g->head_len, g->name);
        }
    }
}

/* A header of one version on a listener that accepts only the other: LG_PP_E_VERSION, decided
 * at the end of the signature ("PROXY", or the 12-byte v2 signature). */
LG_TEST(test_accept_modes)
{
    for (size_t i = 0; i < LG_ARRAY_SIZE(good); i++) {
        const good_t *g = &good[i];
        uint8_t *b = dup_bytes(g->head, g->head_len, g->tail, g->tail_len);
        size_t len = g->head_len + g->tail_len, at;
        lg_pp_header_t r;
        int other = g->version == 1 ? V2 : V1;
        int rc = parse_bytewise(other, b, len, &r, &at);
        bool agree = splits_agree(other, b, len);
        free(b);
        CHECK_ROW(rc == LG_ERROR && r.reason == LG_PP_E_VERSION, g->name);
        CHECK_ROW(at == (g->version == 1 ? 5u : 12u), g->name);
        CHECK_ROW(agree, g->name);
        /* Every field but the reason is zero on LG_ERROR. */
        CHECK_ROW(r.header_len == 0 && r.version == 0 && r.authority == NULL, g->name);
    }
    /* accept 0: nothing is accepted. */
    lg_pp_header_t r;
    CHECK_EQ_INT(parse_once(0, (const uint8_t *)"PROXY UNKNOWN\r\n", 15, &r), LG_ERROR);
    CHECK_EQ_INT(r.reason, LG_PP_E_VERSION);
}

/* ---- Bad vectors ----------------------------------------------------------------------------- */

typedef struct bad_s {
    const char *why;
    int accept;
    const char *bytes; /* the last byte is the one that decides */
    size_t len;
    int reason;
} bad_t;

static const bad_t bad[] = {
    /* Not a PROXY header at all: decided at the first byte that leaves both signatures. */
    {"HTTP request", ANY, S("G"), LG_PP_E_NOT_PROXY},
    {"TLS record", ANY, S("\x16"), LG_PP_E_NOT_PROXY},
    {"NUL first", ANY, S("\x00"), LG_PP_E_NOT_PROXY},
    {"LF first", ANY, S("\n"), LG_PP_E_NOT_PROXY},
    {"lower-case proxy", ANY, S("p"), LG_PP_E_NOT_PROXY},
    {"HTTP/2 preface", ANY, S("PRI"), LG_PP_E_NOT_PROXY},
    {"POST", ANY, S("PO"), LG_PP_E_NOT_PROXY},
    {"PROXX", ANY, S("PROXX"), LG_PP_E_NOT_PROXY},
    {"HTTP on a v2-only listener", V2, S("G"), LG_PP_E_NOT_PROXY},
    {"PRI on a v2-only listener", V2, S("PRI"), LG_PP_E_NOT_PROXY},
    {"CRLF CRLF then not NUL", ANY, S("\r\n\r\n\r"), LG_PP_E_NOT_PROXY},
    {"v2 signature, last byte wrong", ANY, S("\r\n\r\n\x00\r\nQUIT\r"), LG_PP_E_NOT_PROXY},
    {"v2 signature wrong on a v1-only listener", V1, S("\r\n\r\n\x00\r\nQUA"), LG_PP_E_NOT_PROXY},
    {"TLS on a v1-only listener", V1, S("\x16"), LG_PP_E_NOT_PROXY},
    /* The other version. */
    {"v1 on a v2-only listener", V2, S("PROXY"), LG_PP_E_VERSION},
    {"v2 on a v1-only listener", V1, S(V2_SIG), LG_PP_E_VERSION},

    /* v1 structure. */
    {"PROXY CR", ANY, S("PROXY\r"), LG_PP_E_V1_SYNTAX},
    {"PROXY without space", ANY, S("PROXYT"), LG_PP_E_V1_SYNTAX},
    {"two spaces after PROXY", ANY, S("PROXY  "), LG_PP_E_V1_SYNTAX},
    {"empty protocol", ANY, S("PROXY \r"), LG_PP_E_V1_SYNTAX},
    {"LF in protocol", ANY, S("PROXY TC\n"), LG_PP_E_V1_SYNTAX},
    {"TCP4 then CR", ANY, S("PROXY TCP4\r"), LG_PP_E_V1_SYNTAX},
    {"TCP4 then LF", ANY, S("PROXY TCP4\n"), LG_PP_E_V1_SYNTAX},
    {"TCP6 then CR", ANY, S("PROXY TCP6\r"), LG_PP_E_V1_SYNTAX},
    {"two spaces before src", ANY, S("PROXY TCP4  "), LG_PP_E_V1_SYNTAX},
    {"two spaces before dst", ANY, S("PROXY TCP4 1.2.3.4  "), LG_PP_E_V1_SYNTAX},
    {"CR after src", ANY, S("PROXY TCP4 1.2.3.4\r"), LG_PP_E_V1_SYNTAX},
    {"CR after dst", ANY, S("PROXY TCP4 1.2.3.4 5.6.7.8\r"), LG_PP_E_V1_SYNTAX},
    {"tab as separator", ANY, S("PROXY TCP4 1.2.3.4\t"), LG_PP_E_V1_ADDRESS},
    {"two spaces before sport", ANY, S("PROXY TCP4 1.2.3.4 5.6.7.8  "), LG_PP_E_V1_SYNTAX},
    {"CR after sport", ANY, S("PROXY TCP4 1.2.3.4 5.6.7.8 80\r"), LG_PP_E_V1_SYNTAX},
    {"two spaces before dport", ANY, S("PROXY TCP4 1.2.3.4 5.6.7.8 80  "), LG_PP_E_V1_SYNTAX},
    {"empty dport", ANY, S("PROXY TCP4 1.2.3.4 5.6.7.8 80 \r"), LG_PP_E_V1_SYNTAX},
    {"trailing space", ANY, S("PROXY TCP4 1.2.3.4 5.6.7.8 80 443 "), LG_PP_E_V1_SYNTAX},
    {"LF without CR", ANY, S("PROXY TCP4 1.2.3.4 5.6.7.8 80 443\n"), LG_PP_E_V1_SYNTAX},
    {"CR CR", ANY, S("PROXY TCP4 1.2.3.4 5.6.7.8 80 443\r\r"), LG_PP_E_V1_SYNTAX},
    {"CR then junk", ANY, S("PROXY TCP4 1.2.3.4 5.6.7.8 80 443\rX"), LG_PP_E_V1_SYNTAX},
    {"LF in src", ANY, S("PROXY TCP4 1.2\n"), LG_PP_E_V1_SYNTAX},
    {"UNKNOWN LF", ANY, S("PROXY UNKNOWN\n"), LG_PP_E_V1_SYNTAX},
    {"UNKNOWN CR junk", ANY, S("PROXY UNKNOWN\rX"), LG_PP_E_V1_SYNTAX},
    {"UNKNOWN tail with LF", ANY, S("PROXY UNKNOWN a b\n"), LG_PP_E_V1_SYNTAX},
    {"UNKNOWN tail, CR CR", ANY, S("PROXY UNKNOWN a\r\r"), LG_PP_E_V1_SYNTAX},
    /* v1 protocol names. */
    {"TCP5", ANY, S("PROXY TCP5"), LG_PP_E_FAMILY},
    {"lower-case tcp4", ANY, S("PROXY t"), LG_PP_E_FAMILY},
    {"UDP4", ANY, S("PROXY UD"), LG_PP_E_FAMILY},
    {"TCP prefix", ANY, S("PROXY TCP "), LG_PP_E_FAMILY},
    {"TCP prefix then CR", ANY, S("PROXY TCP\r"), LG_PP_E_FAMILY},
    {"TCP44", ANY, S("PROXY TCP44"), LG_PP_E_FAMILY},
    {"UNKNOWNX", ANY, S("PROXY UNKNOWNX"), LG_PP_E_FAMILY},
    {"UNKNOW then CR", ANY, S("PROXY UNKNOW\r"), LG_PP_E_FAMILY},
    /* v1 addresses: byte classes at once, the whole address at its space. */
    {"IPv6 in TCP4", ANY, S("PROXY TCP4 :"), LG_PP_E_V1_ADDRESS},
    {"hex in TCP4", ANY, S("PROXY TCP4 0x"), LG_PP_E_V1_ADDRESS},
    {"sign in TCP4", ANY, S("PROXY TCP4 +"), LG_PP_E_V1_ADDRESS},
    {"five parts", ANY, S("PROXY TCP4 1.2.3.4.5 "), LG_PP_E_V1_ADDRESS},
    {"three parts", ANY, S("PROXY TCP4 127.0.1 "), LG_PP_E_V1_ADDRESS},
    {"leading zero", ANY, S("PROXY TCP4 01.2.3.4 "), LG_PP_E_V1_ADDRESS},
    {"octet 256", ANY, S("PROXY TCP4 256.0.0.1 "), LG_PP_E_V1_ADDRESS},
    {"one number", ANY, S("PROXY TCP4 2130706433 "), LG_PP_E_V1_ADDRESS},
    {"bad dst", ANY, S("PROXY TCP4 1.2.3.4 1.2.3 "), LG_PP_E_V1_ADDRESS},
    {"16-byte IPv4 text", ANY, S("PROXY TCP4 1111111111111111"), LG_PP_E_V1_ADDRESS},
    {"IPv4 in TCP6", ANY, S("PROXY TCP6 1.2.3.4 "), LG_PP_E_V1_ADDRESS},
    {"IPv4 dst in TCP6", ANY, S("PROXY TCP6 ::1 1.2.3.4 "), LG_PP_E_V1_ADDRESS},
    {"zone id", ANY, S("PROXY TCP6 fe80::1%"), LG_PP_E_V1_ADDRESS},
    {"brackets", ANY, S("PROXY TCP6 ["), LG_PP_E_V1_ADDRESS},
    {"non-hex in TCP6", ANY, S("PROXY TCP6 ::g"), LG_PP_E_V1_ADDRESS},
    {"two gaps", ANY, S("PROXY TCP6 1::2::3 "), LG_PP_E_V1_ADDRESS},
    {"five hex digits", ANY, S("PROXY TCP6 12345:: "), LG_PP_E_V1_ADDRESS},
    {"46-byte IPv6 text", ANY, S("PROXY TCP6 0000:0000:0000:0000:0000:0000:000.000.000.0000"),
     LG_PP_E_V1_ADDRESS},
    /* v1 ports. */
    {"leading zero sport", ANY, S("PROXY TCP4 1.2.3.4 5.6.7.8 08"), LG_PP_E_V1_PORT},
    {"double zero sport", ANY, S("PROXY TCP4 1.2.3.4 5.6.7.8 00"), LG_PP_E_V1_PORT},
    {"leading zero dport", ANY, S("PROXY TCP4 1.2.3.4 5.6.7.8 80 04"), LG_PP_E_V1_PORT},
    {"sport 65536", ANY, S("PROXY TCP4 1.2.3.4 5.6.7.8 65536"), LG_PP_E_V1_PORT},
    {"dport 70000", ANY, S("PROXY TCP4 1.2.3.4 5.6.7.8 1 70000"), LG_PP_E_V1_PORT},
    {"six digits", ANY, S("PROXY TCP4 1.2.3.4 5.6.7.8 100000"), LG_PP_E_V1_PORT},
    {"sign in port", ANY, S("PROXY TCP4 1.2.3.4 5.6.7.8 -"), LG_PP_E_V1_PORT},
    {"letter in port", ANY, S("PROXY TCP4 1.2.3.4 5.6.7.8 8a"), LG_PP_E_V1_PORT},
    {"NUL in dport", ANY, S("PROXY TCP4 1.2.3.4 5.6.7.8 80 4\x00"), LG_PP_E_V1_PORT},

    /* v2 fixed part. */
    {"v2 version 1", ANY, S(V2_SIG "\x11"), LG_PP_E_V2_VERSION},
    {"v2 version 3", ANY, S(V2_SIG "\x31"), LG_PP_E_V2_VERSION},
    {"v2 version 0", ANY, S(V2_SIG "\x01"), LG_PP_E_V2_VERSION},
    {"v2 version 15", ANY, S(V2_SIG "\xF0"), LG_PP_E_V2_VERSION},
    {"v2 command 2", ANY, S(V2_SIG "\x22"), LG_PP_E_COMMAND},
    {"v2 command 15", ANY, S(V2_SIG "\x2F"), LG_PP_E_COMMAND},
    {"v2 family 0x13", ANY, S(V2_SIG "\x21\x13"), LG_PP_E_FAMILY},
    {"v2 family 0x41", ANY, S(V2_SIG "\x21\x41"), LG_PP_E_FAMILY},
    {"v2 UNSPEC family, STREAM", ANY, S(V2_SIG "\x21\x01"), LG_PP_E_FAMILY},
    {"v2 INET family, UNSPEC protocol", ANY, S(V2_SIG "\x21\x10"), LG_PP_E_FAMILY},
    {"v2 family 0xFF", ANY, S(V2_SIG "\x21\xFF"), LG_PP_E_FAMILY},
    {"v2 LOCAL still needs a defined family", ANY, S(V2_SIG "\x20\x23"), LG_PP_E_FAMILY},
    {"v2 UDP4", ANY, S(V2_SIG "\x21\x12"), LG_PP_E_DGRAM},
    {"v2 UDP6", ANY, S(V2_SIG "\x21\x22"), LG_PP_E_DGRAM},
    {"v2 unix dgram", ANY, S(V2_SIG "\x21\x32"), LG_PP_E_DGRAM},
    /* v2 length over the cap: decided by the high byte when it suffices, else by the low. */
    {"v2 length 0x1000", ANY, S(V2_SIG "\x21\x11\x10"), LG_PP_E_TOO_LONG},
    {"v2 length 0xFFFF", ANY, S(V2_SIG "\x21\x11\xFF"), LG_PP_E_TOO_LONG},
    {"v2 LOCAL length 0xFFFF", ANY, S(V2_SIG "\x20\x00\xFF"), LG_PP_E_TOO_LONG},
    {"v2 length cap + 1", ANY, S(V2_SIG "\x21\x11\x0F\xF1"), LG_PP_E_TOO_LONG},
    /* v2 lying lengths: the address block does not fit. */
    {"v2 TCP4 length 11", ANY, S(V2_SIG "\x21\x11\x00\x0B"), LG_PP_E_ADDR_LEN},
    {"v2 TCP4 length 0", ANY, S(V2_SIG "\x21\x11\x00\x00"), LG_PP_E_ADDR_LEN},
    {"v2 TCP6 length 35", ANY, S(V2_SIG "\x21\x21\x00\x23"), LG_PP_E_ADDR_LEN},
    {"v2 TCP6 length 12", ANY, S(V2_SIG "\x21\x21\x00\x0C"), LG_PP_E_ADDR_LEN},
    {"v2 UNIX length 215", ANY, S(V2_SIG "\x21\x31\x00\xD7"), LG_PP_E_ADDR_LEN},
    /* v2 lying lengths: the TLVs. 1 or 2 bytes after the address block cannot hold a TLV
       header: decided as soon as the length is known. */
    {"v2 TCP4 + 1 byte", ANY, S(V2_SIG "\x21\x11\x00\x0D"), LG_PP_E_TLV},
    {"v2 TCP4 + 2 bytes", ANY, S(V2_SIG "\x21\x11\x00\x0E"), LG_PP_E_TLV},
    {"v2 UNSPEC + 2 bytes", ANY, S(V2_SIG "\x21\x00\x00\x02"), LG_PP_E_TLV},
    {"v2 TLV value past the end", ANY,
     S(V2_SIG "\x21\x11\x00\x0F"
              "\x0A\x00\x00\x01\x0A\x00\x00\x02\x00\x01\x00\x02"
              "\x02\x00\x01"), /* AUTHORITY of 1 byte, 0 bytes left */
     LG_PP_E_TLV},
    {"v2 TLV length 0xFFFF", ANY,
     S(V2_SIG "\x21\x00\x00\x10"
              "\xEE\xFF\xFF"),
     LG_PP_E_TLV},
    {"v2 TLV one byte too long", ANY,
     S(V2_SIG "\x21\x00\x00\x08"
              "\xEE\x00\x06"), /* 3 + 6 = 9 > 8 */
     LG_PP_E_TLV},
    {"v2 second TLV header cut", ANY,
     S(V2_SIG "\x21\x00\x00\x07"
              "\xEE\x00\x02"), /* 3 + 2 leaves 2 bytes: no room for a TLV header */
     LG_PP_E_TLV},
    {"v2 second TLV lies", ANY,
     S(V2_SIG "\x21\x00\x00\x0A"
              "\x01\x00\x02"
              "h2"
              "\x02\x00\x03"), /* 3 + 2 + 3 + 3 > 10 */
     LG_PP_E_TLV},
    {"v2 two AUTHORITY TLVs", ANY,
     S(V2_SIG "\x21\x00\x00\x08" /* exactly the two TLVs: only the duplicate is wrong */
              "\x02\x00\x02"
              "ab"
              "\x02\x00\x00"),
     LG_PP_E_TLV},
    {"v2 UNIX + 1 byte", ANY, S(V2_SIG "\x21\x31\x00\xD9"), LG_PP_E_TLV},
};

LG_TEST(test_bad_vectors)
{
    for (size_t i = 0; i < LG_ARRAY_SIZE(bad); i++) {
        const bad_t *v = &bad[i];
        uint8_t *b = dup_bytes(v->bytes, v->len, NULL, 0);
        lg_pp_header_t r, shorter;
        size_t at;
        int rc = parse_once(v->accept, b, v->len, &r);
        int rc_short = parse_once(v->accept, b, v->len - 1, &shorter);
        int rc_byte = parse_bytewise(v->accept, b, v->len, &shorter, &at);
        bool agree = splits_agree(v->accept, b, v->len);
        free(b);
        if (rc != LG_ERROR || r.reason != v->reason) {
            fprintf(stderr, "  [%s] got rc %d reason %d (%s)\n", v->why, rc, r.reason,
                    lg_pp_reason_name(r.reason));
        }
        CHECK_ROW(rc == LG_ERROR, v->why);
        CHECK_ROW(r.reason == v->reason, v->why);
        CHECK_ROW(rc_short == LG_AGAIN, v->why); /* decided by the last byte, not before */
        CHECK_ROW(rc_byte == LG_ERROR && at == v->len, v->why);
        CHECK_ROW(agree, v->why);
        CHECK_ROW(r.header_len == 0 && r.version == 0 && r.family == 0 && !r.is_local, v->why);
    }
}

LG_TEST(test_bad_vectors_with_more_bytes)
{
    /* Bytes after the deciding one change nothing, even a valid header. */
    static const char more[] = "PROXY TCP4 1.2.3.4 5.6.7.8 1 2\r\n";
    for (size_t i = 0; i < LG_ARRAY_SIZE(bad); i++) {
        const bad_t *v = &bad[i];
        uint8_t *b = dup_bytes(v->bytes, v->len, more, sizeof(more) - 1);
        lg_pp_header_t r;
        int rc = parse_once(v->accept, b, v->len + sizeof(more) - 1, &r);
        free(b);
        CHECK_ROW(rc == LG_ERROR && r.reason == v->reason, v->why);
    }
}

/* ---- Limits ---------------------------------------------------------------------------------- */

LG_TEST(test_v1_line_limit)
{
    char line[LG_PP_V1_MAX + 8];
    lg_pp_header_t r;
    size_t at;

    /* UNKNOWN padded to exactly 107 bytes with CRLF: OK. */
    memset(line, 'x', sizeof(line));
    memcpy(line, "PROXY UNKNOWN ", 14);
    line[LG_PP_V1_MAX - 2] = '\r';
    line[LG_PP_V1_MAX - 1] = '\n';
    uint8_t *b = dup_bytes(line, LG_PP_V1_MAX, NULL, 0);
    CHECK_EQ_INT(parse_bytewise(ANY, b, LG_PP_V1_MAX, &r, &at), LG_OK);
    CHECK_EQ_INT(r.header_len, LG_PP_V1_MAX);
    CHECK_EQ_INT(at, LG_PP_V1_MAX);
    free(b);

    /* 108 bytes: the CR at byte 107 is still fine, its LF at byte 108 is one too many. */
    line[LG_PP_V1_MAX - 2] = 'x';
    line[LG_PP_V1_MAX - 1] = '\r';
    line[LG_PP_V1_MAX] = '\n';
    b = dup_bytes(line, LG_PP_V1_MAX + 1, NULL, 0);
    CHECK_EQ_INT(parse_once(ANY, b, LG_PP_V1_MAX, &r), LG_AGAIN);
    CHECK_EQ_INT(parse_bytewise(ANY, b, LG_PP_V1_MAX + 1, &r, &at), LG_ERROR);
    CHECK_EQ_INT(r.reason, LG_PP_E_TOO_LONG);
    CHECK_EQ_INT(at, LG_PP_V1_MAX + 1);
    free(b);

    /* No line end at all: byte 108 decides, whatever it is. */
    memset(line, 'y', sizeof(line));
    memcpy(line, "PROXY UNKNOWN ", 14);
    b = dup_bytes(line, sizeof(line), NULL, 0);
    CHECK_EQ_INT(parse_bytewise(ANY, b, sizeof(line), &r, &at), LG_ERROR);
    CHECK_EQ_INT(r.reason, LG_PP_E_TOO_LONG);
    CHECK_EQ_INT(at, LG_PP_V1_MAX + 1);
    free(b);

    /* TCP6 with long embedded-IPv4 forms: 107 bytes OK (a good vector), 108 too long even
       though each field is valid on its own. */
    static const char tcp6_108[] = "PROXY TCP6 ffff:ffff:ffff:ffff:ffff:ffff:255.255.255.255 "
                                   "ffff:ffff:ffff:ffff:ffff:ffff:1.2.3.4 65535 65535\r\n";
    CHECK_EQ_INT(sizeof(tcp6_108) - 1, LG_PP_V1_MAX + 1);
    b = dup_bytes(tcp6_108, sizeof(tcp6_108) - 1, NULL, 0);
    CHECK_EQ_INT(parse_bytewise(ANY, b, sizeof(tcp6_108) - 1, &r, &at), LG_ERROR);
    CHECK_EQ_INT(r.reason, LG_PP_E_TOO_LONG);
    CHECK_EQ_INT(at, LG_PP_V1_MAX + 1);
    free(b);
}

/* A v2 TCP4 header of `total` bytes: the address block and one custom TLV filling the rest. */
static uint8_t *v2_padded(size_t total)
{
    static const uint8_t
        fixed[] = {0x0D, 0x0A, 0x0D, 0x0A, 0x00, 0x0D, 0x0A, 0x51, 0x55, 0x49,
                   0x54, 0x0A, 0x21, 0x11, 0,    0,    10,   0,    0,    1,
                   10,   0,    0,    2,    0,    1,    0,    2}; /* 10.0.0.1:1 → 10.0.0.2:2 */
    uint8_t *b = calloc(total, 1);
    if (b == NULL) abort();
    memcpy(b, fixed, sizeof(fixed));
    b[14] = (uint8_t)((total - 16) >> 8);
    b[15] = (uint8_t)(total - 16);
    size_t vlen = total - sizeof(fixed) - 3;
    b[28] = 0xE5;
    b[29] = (uint8_t)(vlen >> 8);
    b[30] = (uint8_t)vlen;
    return b;
}

LG_TEST(test_v2_header_limit)
{
    lg_pp_header_t r;
    size_t at;

    /* Exactly LG_PP_MAX_HEADER bytes: OK, and decided only at the last byte. */
    uint8_t *b = v2_padded(LG_PP_MAX_HEADER);
    CHECK_EQ_INT(parse_once(ANY, b, LG_PP_MAX_HEADER - 1, &r), LG_AGAIN);
    CHECK_EQ_INT(parse_bytewise(ANY, b, LG_PP_MAX_HEADER, &r, &at), LG_OK);
    CHECK_EQ_INT(r.header_len, LG_PP_MAX_HEADER);
    CHECK_EQ_INT(at, LG_PP_MAX_HEADER);
    CHECK_EQ_INT(r.family, 4);
    CHECK(splits_agree(ANY, b, LG_PP_MAX_HEADER));
    free(b);

    /* One byte more: refused as soon as the length field is read (byte 16). */
    b = v2_padded(LG_PP_MAX_HEADER + 1);
    CHECK_EQ_INT(parse_bytewise(ANY, b, LG_PP_MAX_HEADER + 1, &r, &at), LG_ERROR);
    CHECK_EQ_INT(r.reason, LG_PP_E_TOO_LONG);
    CHECK_EQ_INT(at, 16);
    free(b);

    /* The largest length field: refused at byte 15 already. */
    b = v2_padded(16 + 0xFFFF);
    CHECK_EQ_INT(parse_bytewise(ANY, b, 16 + 0xFFFF, &r, &at), LG_ERROR);
    CHECK_EQ_INT(r.reason, LG_PP_E_TOO_LONG);
    CHECK_EQ_INT(at, 15);
    free(b);

    /* A header at the cap whose TLV claims one byte more than there is. */
    b = v2_padded(LG_PP_MAX_HEADER);
    b[30]++;
    CHECK_EQ_INT(parse_bytewise(ANY, b, LG_PP_MAX_HEADER, &r, &at), LG_ERROR);
    CHECK_EQ_INT(r.reason, LG_PP_E_TLV);
    CHECK_EQ_INT(at, 31); /* at the TLV's length, not at the end of the header */
    free(b);
}

/* No buffer of LG_PP_MAX_HEADER bytes leaves the parser waiting. */
LG_TEST(test_decided_by_max_header)
{
    uint8_t *b = v2_padded(LG_PP_MAX_HEADER);
    lg_pp_header_t r;
    /* Whatever the length field says, with LG_PP_MAX_HEADER bytes in, it is decided. */
    for (unsigned hi = 0; hi < 256; hi += 5) {
        for (unsigned lo = 0; lo < 256; lo += 7) {
            b[14] = (uint8_t)hi;
            b[15] = (uint8_t)lo;
            CHECK(parse_once(ANY, b, LG_PP_MAX_HEADER, &r) != LG_AGAIN);
        }
    }
    free(b);
}

LG_TEST(test_v2_unix)
{
    /* UNIX stream: 216 bytes of paths, then an AUTHORITY TLV; no IP address. */
    uint8_t b[16 + 216 + 3 + 4 + 5];
    memcpy(b, V2_SIG, 12);
    b[12] = 0x21;
    b[13] = 0x31;
    b[14] = 0;
    b[15] = 216 + 7;
    memset(b + 16, 0, 216);
    memcpy(b + 16, "/run/src.sock", 13);
    memcpy(b + 16 + 108, "/run/dst.sock", 13);
    memcpy(b + 16 + 216,
           "\x02\x00\x04"
           "unix",
           7);
    memcpy(b + 16 + 216 + 7, "hello", 5);
    uint8_t *h = dup_bytes(b, sizeof(b), NULL, 0);
    lg_pp_header_t r;
    CHECK_EQ_INT(parse_once(ANY, h, sizeof(b), &r), LG_OK);
    CHECK_EQ_INT(r.header_len, 16 + 216 + 7);
    CHECK(r.is_local && r.family == LG_PP_FAM_NONE && r.version == 2);
    CHECK(r.authority == h + 16 + 216 + 3 && r.authority_len == 4);
    CHECK(splits_agree(ANY, h, sizeof(b)));
    /* Without the TLV: exactly the address block. */
    h[15] = 216;
    CHECK_EQ_INT(parse_once(ANY, h, sizeof(b), &r), LG_OK);
    CHECK_EQ_INT(r.header_len, 16 + 216);
    CHECK(r.authority == NULL);
    free(h);
}

/*
 * Every length field from 0 to 60 for each family: the outcome follows from the sizes alone.
 * The body is one TLV whose value fills exactly what is left, when that is possible.
 */
LG_TEST(test_v2_lengths_sweep)
{
    static const struct {
        uint8_t fam;
        size_t addr;
    } fams[] = {{0x00, 0}, {0x11, 12}, {0x21, 36}};
    for (size_t f = 0; f < LG_ARRAY_SIZE(fams); f++) {
        for (size_t body = 0; body <= 60; body++) {
            uint8_t b[16 + 60];
            memset(b, 0, sizeof(b));
            memcpy(b, V2_SIG, 12);
            b[12] = 0x21;
            b[13] = fams[f].fam;
            b[15] = (uint8_t)body;
            size_t rest = body >= fams[f].addr ? body - fams[f].addr : 0;
            if (rest >= 3) {
                b[16 + fams[f].addr] = 0xE0;
                b[16 + fams[f].addr + 2] = (uint8_t)(rest - 3);
            }
            uint8_t *h = dup_bytes(b, 16 + body, NULL, 0);
            lg_pp_header_t r;
            int rc = parse_once(ANY, h, 16 + body, &r);
            bool agree = splits_agree(ANY, h, 16 + body);
            free(h);
            int want = body < fams[f].addr        ? LG_PP_E_ADDR_LEN
                       : (rest == 1 || rest == 2) ? LG_PP_E_TLV
                                                  : LG_PP_E_NONE;
            CHECK(agree);
            if (want == LG_PP_E_NONE) {
                CHECK(rc == LG_OK && r.header_len == 16 + body);
            } else {
                CHECK(rc == LG_ERROR && r.reason == want);
            }
        }
    }
}

/* ---- Caller behaviour ------------------------------------------------------------------------ */

LG_TEST(test_repeat_calls_and_caller_errors)
{
    static const char v2[] = V2_SIG "\x21\x00\x00\x07"
                                    "\x02\x00\x04"
                                    "a.bc"
                                    "TAIL";
    const size_t hlen = sizeof(v2) - 1 - 4;
    lg_pp_parser_t p;
    lg_pp_header_t r;

    /* out is untouched while waiting. */
    lg_pp_parser_init(&p, ANY);
    memset(&r, 0x5a, sizeof(r));
    CHECK_EQ_INT(lg_pp_parse(&p, (const uint8_t *)v2, 10, &r), LG_AGAIN);
    CHECK(r.reason == 0x5a5a5a5a);
    CHECK_EQ_INT(lg_pp_parse(&p, (const uint8_t *)v2, 20, &r), LG_AGAIN);
    CHECK(r.reason == 0x5a5a5a5a);

    /* The buffer moves between calls (the caller grew it): the authority follows it. */
    uint8_t *moved = dup_bytes(v2, sizeof(v2) - 1, NULL, 0);
    CHECK_EQ_INT(lg_pp_parse(&p, moved, sizeof(v2) - 1, &r), LG_OK);
    CHECK_EQ_INT(r.header_len, hlen);
    CHECK(r.authority == moved + 19 && r.authority_len == 4);
    CHECK_EQ_INT(p.pos, hlen);
    /* A repeat call returns the same, relative to the buffer it is given. */
    CHECK_EQ_INT(lg_pp_parse(&p, (const uint8_t *)v2, sizeof(v2) - 1, &r), LG_OK);
    CHECK(r.authority == (const uint8_t *)v2 + 19 && r.header_len == hlen);
    free(moved);

    /* A shrinking buffer is a caller bug. */
    lg_pp_parser_init(&p, ANY);
    CHECK_EQ_INT(lg_pp_parse(&p, (const uint8_t *)v2, 18, &r), LG_AGAIN);
    CHECK_EQ_INT(lg_pp_parse(&p, (const uint8_t *)v2, 17, &r), LG_ERROR);
    CHECK_EQ_INT(r.reason, LG_PP_E_SHRANK);
    CHECK_EQ_INT(lg_pp_parse(&p, (const uint8_t *)v2, sizeof(v2) - 1, &r), LG_ERROR);
    CHECK_EQ_INT(r.reason, LG_PP_E_SHRANK);
    /* Inside the v1 state machine too. */
    lg_pp_parser_init(&p, ANY);
    CHECK_EQ_INT(lg_pp_parse(&p, (const uint8_t *)"PROXY TC", 8, &r), LG_AGAIN);
    CHECK_EQ_INT(lg_pp_parse(&p, (const uint8_t *)"PROXY TC", 7, &r), LG_ERROR);
    CHECK_EQ_INT(r.reason, LG_PP_E_SHRANK);

    /* An empty buffer waits; a repeat call after an error repeats it. */
    lg_pp_parser_init(&p, ANY);
    CHECK_EQ_INT(lg_pp_parse(&p, (const uint8_t *)"", 0, &r), LG_AGAIN);
    CHECK_EQ_INT(lg_pp_parse(&p, (const uint8_t *)"GET", 3, &r), LG_ERROR);
    CHECK_EQ_INT(p.pos, 1);
    CHECK_EQ_INT(lg_pp_parse(&p, (const uint8_t *)"GET", 3, &r), LG_ERROR);
    CHECK_EQ_INT(r.reason, LG_PP_E_NOT_PROXY);
}

LG_TEST(test_reason_names)
{
    for (int i = LG_PP_E_NONE; i <= LG_PP_E_SHRANK; i++) {
        const char *n = lg_pp_reason_name(i);
        CHECK(n != NULL && n[0] != '\0' && strcmp(n, "unknown") != 0);
        for (int k = LG_PP_E_NONE; k < i; k++)
            CHECK(strcmp(n, lg_pp_reason_name(k)) != 0);
    }
    CHECK(strcmp(lg_pp_reason_name(-1), "unknown") == 0);
    CHECK(strcmp(lg_pp_reason_name(LG_PP_E_SHRANK + 1), "unknown") == 0);
}

/* ---- Writers --------------------------------------------------------------------------------- */

/* An lg_pp_info_t with the given address texts (NULL = unknown family). */
static lg_pp_info_t info_of(const char *src, uint16_t sport, const char *dst, uint16_t dport)
{
    lg_pp_info_t in;
    memset(&in, 0, sizeof(in));
    if (src != NULL) {
        addr_of(src, in.src_addr);
        in.src_family = strchr(src, ':') ? 6 : 4;
    }
    if (dst != NULL) {
        addr_of(dst, in.dst_addr);
        in.dst_family = strchr(dst, ':') ? 6 : 4;
    }
    in.src_port = sport;
    in.dst_port = dport;
    return in;
}

static lg_pp_bytes_t bytes_of(const char *s)
{
    lg_pp_bytes_t b = {s, strlen(s)};
    return b;
}

LG_TEST(test_write_v1_exact)
{
    static const struct {
        const char *src;
        uint16_t sport;
        const char *dst;
        uint16_t dport;
        const char *line;
    } v[] = {
        /* The spec's example. */
        {"192.168.0.1", 56324, "192.168.0.11", 443,
         "PROXY TCP4 192.168.0.1 192.168.0.11 56324 443\r\n"},
        {"0.0.0.0", 0, "255.255.255.255", 65535, "PROXY TCP4 0.0.0.0 255.255.255.255 0 65535\r\n"},
        /* RFC 5952: lower case, no leading zeros, longest zero run, first on a tie, never one
           group. */
        {"2001:0DB8:0000:0000:0000:0000:0000:0001", 1, "2001:db8:0:0:1:0:0:1", 2,
         "PROXY TCP6 2001:db8::1 2001:db8::1:0:0:1 1 2\r\n"},
        {"2001:db8:0:1:1:1:1:1", 3, "::", 4, "PROXY TCP6 2001:db8:0:1:1:1:1:1 :: 3 4\r\n"},
        {"1:0:0:2:0:0:0:3", 5, "0:0:1:0:0:0:0:0", 6, "PROXY TCP6 1:0:0:2::3 0:0:1:: 5 6\r\n"},
        {"fe80::abcd:ef01", 7, "::1", 8, "PROXY TCP6 fe80::abcd:ef01 ::1 7 8\r\n"},
        {"ffff:ffff:ffff:ffff:ffff:ffff:ffff:ffff", 65535,
         "ffff:ffff:ffff:ffff:ffff:ffff:ffff:ffff", 65535,
         "PROXY TCP6 ffff:ffff:ffff:ffff:ffff:ffff:ffff:ffff "
         "ffff:ffff:ffff:ffff:ffff:ffff:ffff:ffff 65535 65535\r\n"},
        /* Both IPv4-mapped: TCP4 with dotted quads. */
        {"::ffff:10.1.2.3", 80, "::ffff:192.0.2.1", 443,
         "PROXY TCP4 10.1.2.3 192.0.2.1 80 443\r\n"},
        /* One mapped, one IPv4: TCP4. */
        {"::ffff:10.1.2.3", 80, "192.0.2.1", 443, "PROXY TCP4 10.1.2.3 192.0.2.1 80 443\r\n"},
        /* Mixed: the IPv4 side is mapped, TCP6. */
        {"10.1.2.3", 80, "2001:db8::5", 443, "PROXY TCP6 ::ffff:10.1.2.3 2001:db8::5 80 443\r\n"},
        {"2001:db8::5", 80, "10.1.2.3", 443, "PROXY TCP6 2001:db8::5 ::ffff:10.1.2.3 80 443\r\n"},
        /* Mapped with native IPv6: stays mapped, in the RFC 5952 §5 form. */
        {"::ffff:10.1.2.3", 80, "::1", 443, "PROXY TCP6 ::ffff:10.1.2.3 ::1 80 443\r\n"},
        /* Unknown on either side. */
        {NULL, 0, NULL, 0, "PROXY UNKNOWN\r\n"},
        {"1.2.3.4", 1, NULL, 0, "PROXY UNKNOWN\r\n"},
        {NULL, 0, "::1", 1, "PROXY UNKNOWN\r\n"},
    };
    for (size_t i = 0; i < LG_ARRAY_SIZE(v); i++) {
        lg_pp_info_t in = info_of(v[i].src, v[i].sport, v[i].dst, v[i].dport);
        in.alpn = bytes_of("h2"); /* ignored by v1 */
        uint8_t out[LG_PP_V1_MAX];
        size_t want = strlen(v[i].line);
        int n = lg_pp_write_v1(&in, out, sizeof(out));
        CHECK_ROW(n == (int)want, v[i].line);
        CHECK_ROW(memcmp(out, v[i].line, want) == 0, v[i].line);
        /* The exact size fits, one byte less does not and writes nothing. */
        uint8_t *exact = malloc(want);
        CHECK(exact != NULL);
        int n2 = lg_pp_write_v1(&in, exact, want);
        bool same = n2 == (int)want && memcmp(exact, v[i].line, want) == 0;
        memset(exact, 0x5a, want);
        int n3 = lg_pp_write_v1(&in, exact, want - 1);
        bool untouched = exact[0] == 0x5a;
        free(exact);
        CHECK_ROW(same, v[i].line);
        CHECK_ROW(n3 == -ENOSPC && untouched, v[i].line);
    }
    /* Families other than 0, 4, 6. */
    lg_pp_info_t in = info_of("1.2.3.4", 1, "5.6.7.8", 2);
    uint8_t out[LG_PP_V1_MAX];
    in.src_family = 2; /* AF_INET is not a family here */
    CHECK_EQ_INT(lg_pp_write_v1(&in, out, sizeof(out)), -EINVAL);
    in.src_family = 4;
    in.dst_family = 10;
    CHECK_EQ_INT(lg_pp_write_v1(&in, out, sizeof(out)), -EINVAL);
    CHECK_EQ_INT(lg_pp_v2_size(&in), 0);
    CHECK_EQ_INT(lg_pp_write_v2(&in, out, sizeof(out)), -EINVAL);
}

/* The RFC 5952 text against glibc's inet_ntop on pseudo-random addresses with zero runs. */
LG_TEST(test_ipv6_text)
{
    uint32_t seed = 12345;
    for (int i = 0; i < 20000; i++) {
        uint8_t a[16];
        for (int g = 0; g < 8; g++) {
            seed = seed * 1103515245u + 12345u;
            unsigned r = (seed >> 16) & 0xFFFF;
            unsigned v = (r & 3) != 0 ? 0 : r; /* mostly zero groups, to make runs */
            if ((r & 0x30) == 0x30) v = r & 0x0F;
            a[2 * g] = (uint8_t)(v >> 8);
            a[2 * g + 1] = (uint8_t)v;
        }
        if (i % 50 == 0) {
            memset(a, 0, 10);
            a[10] = a[11] = 0xff; /* IPv4-mapped */
        }
        char mine[48], ref[INET6_ADDRSTRLEN];
        size_t n = pp_put_v6(mine, a);
        CHECK(n <= 39 || (n <= 22 && a[10] == 0xff));
        mine[n] = '\0';
        CHECK(inet_ntop(AF_INET6, a, ref, sizeof(ref)) != NULL);
        /* glibc also writes ::a.b.c.d for IPv4-compatible addresses (deprecated, RFC 4291
           §2.5.5.1), which RFC 5952 §5 does not ask for: compare those by value only. */
        static const uint8_t zero12[12] = {0};
        bool compat = memcmp(a, zero12, 12) == 0 && (a[12] | a[13]) != 0;
        if (!compat) {
            if (strcmp(mine, ref) != 0) fprintf(stderr, "  %s vs %s\n", mine, ref);
            CHECK(strcmp(mine, ref) == 0);
        }
        uint8_t back[16], family;
        CHECK(lg_ip_parse(mine, n, &family, back) == 0 && family == 6);
        CHECK(memcmp(back, a, 16) == 0);
    }
}

/*
 * The v2 header with every TLV, written by hand. Source 192.0.2.1:51000, destination
 * 198.51.100.7:443.
 */
static const char v2_all[] =
    V2_SIG "\x21"             /* version 2, command PROXY */
           "\x11"             /* TCP over IPv4 */
           "\x00\x8A"         /* 138 bytes follow: 12 + 5 + 14 + 7 + 43 + 18 + 39 */
           "\xC0\x00\x02\x01" /* src 192.0.2.1 */
           "\xC6\x33\x64\x07" /* dst 198.51.100.7 */
           "\xC7\x38"         /* sport 51000 */
           "\x01\xBB"         /* dport 443 */
           "\x01\x00\x02"     /* ALPN, 2 bytes */
           "h2"
           "\x02\x00\x0B" /* AUTHORITY, 11 bytes */
           "example.com"
           "\x05\x00\x04" /* UNIQUE_ID, 4 bytes */
           "\x01\x02\x03\x04"
           "\x20\x00\x28"     /* SSL, 40 bytes: 5 + 10 + 25 */
           "\x05"             /* client: PP2_CLIENT_SSL | PP2_CLIENT_CERT_SESS */
           "\x01\x02\x03\x04" /* verify 0x01020304, big-endian */
           "\x21\x00\x07"     /* SSL_VERSION, 7 bytes */
           "TLSv1.3"
           "\x23\x00\x16" /* SSL_CIPHER, 22 bytes */
           "TLS_AES_128_GCM_SHA256"
           "\xE0\x00\x0F" /* JA3 (custom 0xE0), 15 bytes */
           "771,4865,0,29,0"
           "\xE1\x00\x24" /* JA4 (custom 0xE1), 36 bytes */
           "t13d1516h2_8daaf6152771_e5627efa2ab1";

static lg_pp_info_t info_all(void)
{
    lg_pp_info_t in = info_of("192.0.2.1", 51000, "198.51.100.7", 443);
    in.alpn = bytes_of("h2");
    in.authority = bytes_of("example.com");
    in.unique_id.ptr = "\x01\x02\x03\x04";
    in.unique_id.len = 4;
    in.ssl = true;
    in.ssl_client = LG_PP_CLIENT_SSL | LG_PP_CLIENT_CERT_SESS;
    in.ssl_verify = 0x01020304;
    in.ssl_version = bytes_of("TLSv1.3");
    in.ssl_cipher = bytes_of("TLS_AES_128_GCM_SHA256");
    in.ja3 = bytes_of("771,4865,0,29,0");
    in.ja4 = bytes_of("t13d1516h2_8daaf6152771_e5627efa2ab1");
    return in;
}

LG_TEST(test_write_v2_exact)
{
    lg_pp_info_t in = info_all();
    const size_t want = sizeof(v2_all) - 1;
    CHECK_EQ_INT(want, 154);
    CHECK_EQ_INT(lg_pp_v2_size(&in), want);

    uint8_t *out = malloc(want);
    CHECK(out != NULL);
    int n = lg_pp_write_v2(&in, out, want);
    bool same = n == (int)want && memcmp(out, v2_all, want) == 0;
    if (!same) {
        for (size_t i = 0; n > 0 && i < (size_t)n && i < want; i++) {
            if (out[i] != (uint8_t)v2_all[i]) {
                fprintf(stderr, "  differs at %zu: %02x vs %02x\n", i, out[i], (uint8_t)v2_all[i]);
                break;
            }
        }
    }
    memset(out, 0x5a, want);
    int n_short = lg_pp_write_v2(&in, out, want - 1);
    bool untouched = out[0] == 0x5a;
    free(out);
    CHECK(same);
    CHECK(n_short == -ENOSPC && untouched);

    /* And it parses back. */
    lg_pp_header_t r;
    CHECK_EQ_INT(parse_once(V2, (const uint8_t *)v2_all, want, &r), LG_OK);
    CHECK_EQ_INT(r.header_len, want);
    CHECK(r.authority_len == 11 && memcmp(r.authority, "example.com", 11) == 0);

    /* Nothing but the addresses: 28 bytes. Unknown: 16 bytes, family AF_UNSPEC. */
    static const char v2_bare[] = V2_SIG "\x21\x11\x00\x0C"
                                         "\x7F\x00\x00\x01\x7F\x00\x00\x02\x00\x01\x00\x02";
    lg_pp_info_t bare = info_of("127.0.0.1", 1, "127.0.0.2", 2);
    uint8_t buf[64];
    CHECK_EQ_INT(lg_pp_write_v2(&bare, buf, sizeof(buf)), sizeof(v2_bare) - 1);
    CHECK(memcmp(buf, v2_bare, sizeof(v2_bare) - 1) == 0);
    static const char v2_unknown[] = V2_SIG "\x21\x00\x00\x00";
    lg_pp_info_t unknown = info_of(NULL, 1, NULL, 2);
    CHECK_EQ_INT(lg_pp_write_v2(&unknown, buf, sizeof(buf)), sizeof(v2_unknown) - 1);
    CHECK(memcmp(buf, v2_unknown, sizeof(v2_unknown) - 1) == 0);
    /* Mixed families: TCP6 with the IPv4 side mapped. */
    static const char v2_mixed[] = V2_SIG
        "\x21\x21\x00\x24"
        "\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00\xFF\xFF\x0A\x00\x00\x01" /* ::ffff:10.0.0.1 */
        "\x20\x01\x0D\xB8\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00\x09" /* 2001:db8::9 */
        "\x04\xD2\x16\x2E";                                                /* 1234, 5678 */
    lg_pp_info_t mixed = info_of("10.0.0.1", 1234, "2001:db8::9", 5678);
    CHECK_EQ_INT(lg_pp_write_v2(&mixed, buf, sizeof(buf)), sizeof(v2_mixed) - 1);
    CHECK(memcmp(buf, v2_mixed, sizeof(v2_mixed) - 1) == 0);
    /* Both mapped: TCP4. */
    lg_pp_info_t mapped = info_of("::ffff:127.0.0.1", 1, "::ffff:127.0.0.2", 2);
    CHECK_EQ_INT(lg_pp_write_v2(&mapped, buf, sizeof(buf)), sizeof(v2_bare) - 1);
    CHECK(memcmp(buf, v2_bare, sizeof(v2_bare) - 1) == 0);
}

/* ---- An independent TLV walker (shares no code with the module) ------------------------------ */

typedef struct tlv_s {
    uint8_t type;
    size_t off, len; /* value offset in the header, value length */
} tlv_t;

/*
 * Walk a written v2 header: check the fixed part, skip the address block its family byte
 * implies, and list the TLVs; the SSL TLV's sub-TLVs are listed after it with their own types.
 * Returns the number of TLVs, or -1 if anything does not add up exactly.
 */
static int walk_v2(const uint8_t *h, size_t n, tlv_t *out, int max)
{
    if (n < 16 || memcmp(h, V2_SIG, 12) != 0 || h[12] != 0x21) return -1;
    size_t body = (size_t)h[14] * 256 + h[15];
    if (16 + body != n) return -1;
    size_t i = 16;
    if (h[13] == 0x11) {
        i += 12;
    } else if (h[13] == 0x21) {
        i += 36;
    } else if (h[13] != 0x00) {
        return -1;
    }
    if (i > n) return -1;
    int k = 0;
    while (i < n) {
        if (n - i < 3 || k == max) return -1;
        size_t len = (size_t)h[i + 1] * 256 + h[i + 2];
        if (len > n - i - 3) return -1;
        out[k].type = h[i];
        out[k].off = i + 3;
        out[k].len = len;
        k++;
        if (h[i] == 0x20) { /* SSL: client, verify, then sub-TLVs filling the value exactly */
            if (len < 5) return -1;
            size_t j = i + 3 + 5, end = i + 3 + len;
            while (j < end) {
                if (end - j < 3 || k == max) return -1;
                size_t sl = (size_t)h[j + 1] * 256 + h[j + 2];
                if (sl > end - j - 3) return -1;
                out[k].type = h[j];
                out[k].off = j + 3;
                out[k].len = sl;
                k++;
                j += 3 + sl;
            }
        }
        i += 3 + len;
    }
    return k;
}

/* Does TLV t hold exactly the bytes v? */
static bool tlv_is(const uint8_t *h, const tlv_t *t, uint8_t type, const void *v, size_t len)
{
    return t->type == type && t->len == len && memcmp(h + t->off, v, len) == 0;
}

LG_TEST(test_write_v2_walk)
{
    lg_pp_info_t in = info_all();
    uint8_t out[LG_PP_MAX_HEADER];
    tlv_t t[16];

    int n = lg_pp_write_v2(&in, out, sizeof(out));
    CHECK(n > 0);
    int k = walk_v2(out, (size_t)n, t, 16);
    CHECK_EQ_INT(k, 8);
    CHECK(tlv_is(out, &t[0], 0x01, "h2", 2));
    CHECK(tlv_is(out, &t[1], 0x02, "example.com", 11));
    CHECK(tlv_is(out, &t[2], 0x05, "\x01\x02\x03\x04", 4));
    CHECK(tlv_is(out, &t[3], 0x20,
                 "\x05\x01\x02\x03\x04"
                 "\x21\x00\x07"
                 "TLSv1.3"
                 "\x23\x00\x16"
                 "TLS_AES_128_GCM_SHA256",
                 40));
    CHECK(tlv_is(out, &t[4], 0x21, "TLSv1.3", 7));
    CHECK(tlv_is(out, &t[5], 0x23, "TLS_AES_128_GCM_SHA256", 22));
    CHECK(tlv_is(out, &t[6], 0xE0, "771,4865,0,29,0", 15));
    CHECK(tlv_is(out, &t[7], 0xE1, "t13d1516h2_8daaf6152771_e5627efa2ab1", 36));

    /* Each TLV alone, each pair dropped: the walker sees exactly what was asked, in order. */
    for (unsigned mask = 0; mask < 128; mask++) {
        lg_pp_info_t x = info_of("2001:db8::1", 1, "2001:db8::2", 2);
        static const uint8_t want_type[] = {0x01, 0x02, 0x05, 0x20, 0xE0, 0xE1};
        if (mask & 1) x.alpn = bytes_of("http/1.1");
        if (mask & 2) x.authority = bytes_of("a.example");
        if (mask & 4) x.unique_id = bytes_of("");
        if (mask & 8) {
            x.ssl = true;
            x.ssl_client = LG_PP_CLIENT_SSL;
            if (mask & 64) x.ssl_cipher = bytes_of("ECDHE-RSA-AES128-GCM-SHA256");
        }
        if (mask & 16) x.ja3 = bytes_of("ja3");
        if (mask & 32) x.ja4 = bytes_of("");
        n = lg_pp_write_v2(&x, out, sizeof(out));
        CHECK(n > 0 && (size_t)n == lg_pp_v2_size(&x));
        k = walk_v2(out, (size_t)n, t, 16);
        CHECK(k >= 0);
        int j = 0;
        for (int bit = 0; bit < 6; bit++) {
            if (!(mask & (1u << bit))) continue;
            CHECK(j < k && t[j].type == want_type[bit]);
            if (want_type[bit] == 0x20) {
                bool cipher = (mask & 64) != 0;
                CHECK_EQ_INT(t[j].len, 5 + (cipher ? 3 + 27 : 0));
                CHECK(out[t[j].off] == LG_PP_CLIENT_SSL);
                CHECK(memcmp(out + t[j].off + 1, "\0\0\0\0", 4) == 0);
                if (cipher) {
                    j++;
                    CHECK(tlv_is(out, &t[j], 0x23, "ECDHE-RSA-AES128-GCM-SHA256", 27));
                }
            }
            j++;
        }
        CHECK_EQ_INT(j, k);
        /* The module's own parser agrees on the header length and authority. */
        lg_pp_header_t r;
        CHECK_EQ_INT(parse_once(ANY, out, (size_t)n, &r), LG_OK);
        CHECK_EQ_INT(r.header_len, n);
        CHECK((r.authority != NULL) == ((mask & 2) != 0));
    }
}

LG_TEST(test_write_v2_limits)
{
    static uint8_t big[LG_PP_MAX_HEADER + 16];
    uint8_t *out = malloc(LG_PP_MAX_HEADER);
    CHECK(out != NULL);
    memset(big, 'u', sizeof(big));

    /* UNIQUE_ID: 128 bytes fine, 129 refused (§2.2.5). */
    lg_pp_info_t in = info_of("1.2.3.4", 1, "5.6.7.8", 2);
    in.unique_id.ptr = big;
    in.unique_id.len = LG_PP_UNIQUE_ID_MAX;
    CHECK_EQ_INT(lg_pp_v2_size(&in), 28 + 3 + 128);
    CHECK_EQ_INT(lg_pp_write_v2(&in, out, LG_PP_MAX_HEADER), 28 + 3 + 128);
    in.unique_id.len = LG_PP_UNIQUE_ID_MAX + 1;
    CHECK_EQ_INT(lg_pp_v2_size(&in), 0);
    CHECK_EQ_INT(lg_pp_write_v2(&in, out, LG_PP_MAX_HEADER), -EINVAL);

    /* A header of exactly LG_PP_MAX_HEADER bytes is written (and parsed back); one more is
       refused, as is a value too long for the header or for its 16-bit length. */
    in = info_of("1.2.3.4", 1, "5.6.7.8", 2);
    in.ja3.ptr = big;
    in.ja3.len = LG_PP_MAX_HEADER - 28 - 3;
    CHECK_EQ_INT(lg_pp_v2_size(&in), LG_PP_MAX_HEADER);
    CHECK_EQ_INT(lg_pp_write_v2(&in, out, LG_PP_MAX_HEADER), LG_PP_MAX_HEADER);
    lg_pp_header_t r;
    CHECK_EQ_INT(parse_once(ANY, out, LG_PP_MAX_HEADER, &r), LG_OK);
    CHECK_EQ_INT(r.header_len, LG_PP_MAX_HEADER);
    in.ja3.len++;
    CHECK_EQ_INT(lg_pp_v2_size(&in), 0);
    CHECK_EQ_INT(lg_pp_write_v2(&in, out, LG_PP_MAX_HEADER), -EINVAL);
    in.ja3.len = 70000; /* over the 16-bit TLV length: never read, refused by size */
    CHECK_EQ_INT(lg_pp_write_v2(&in, out, LG_PP_MAX_HEADER), -EINVAL);
    in.ja3.len = SIZE_MAX; /* a sum that would wrap */
    CHECK_EQ_INT(lg_pp_v2_size(&in), 0);
    in.ja3.len = 1;
    in.ja4.ptr = big;
    in.ja4.len = SIZE_MAX - 2;
    CHECK_EQ_INT(lg_pp_v2_size(&in), 0);

    /* SSL sub-TLVs count toward the size; unused SSL fields do not. */
    in = info_of("1.2.3.4", 1, "5.6.7.8", 2);
    in.ssl_version.ptr = big;
    in.ssl_version.len = SIZE_MAX; /* ssl is false: ignored */
    CHECK_EQ_INT(lg_pp_v2_size(&in), 28);
    in.ssl = true;
    CHECK_EQ_INT(lg_pp_v2_size(&in), 0);
    in.ssl_version.len = LG_PP_MAX_HEADER - 28 - 3 - 5 - 3;
    CHECK_EQ_INT(lg_pp_v2_size(&in), LG_PP_MAX_HEADER);
    CHECK_EQ_INT(lg_pp_write_v2(&in, out, LG_PP_MAX_HEADER), LG_PP_MAX_HEADER);
    CHECK_EQ_INT(parse_once(ANY, out, LG_PP_MAX_HEADER, &r), LG_OK);
    in.ssl_cipher = bytes_of("");
    CHECK_EQ_INT(lg_pp_v2_size(&in), 0);

    /* -ENOSPC at every capacity below the size, and nothing written. */
    in = info_all();
    size_t size = lg_pp_v2_size(&in);
    for (size_t cap = 0; cap < size; cap++) {
        memset(out, 0x5a, size);
        CHECK_EQ_INT(lg_pp_write_v2(&in, out, cap), -ENOSPC);
        CHECK(out[0] == 0x5a);
    }
    free(out);
}

/* ---- Round trips ----------------------------------------------------------------------------- */

LG_TEST(test_round_trip)
{
    static const struct {
        const char *src, *dst;   /* as given (NULL = unknown) */
        uint8_t family;          /* after normalisation: 0 = UNKNOWN / UNSPEC */
        const char *wsrc, *wdst; /* as written */
    } v[] = {
        {"192.0.2.1", "198.51.100.2", 4, "192.0.2.1", "198.51.100.2"},
        {"0.0.0.0", "255.255.255.255", 4, "0.0.0.0", "255.255.255.255"},
        {"2001:db8::1", "2001:db8::2", 6, "2001:db8::1", "2001:db8::2"},
        {"::", "ffff:ffff:ffff:ffff:ffff:ffff:ffff:ffff", 6,
         "::", "ffff:ffff:ffff:ffff:ffff:ffff:ffff:ffff"},
        {"::ffff:192.0.2.1", "::ffff:198.51.100.2", 4, "192.0.2.1", "198.51.100.2"},
        {"::ffff:192.0.2.1", "198.51.100.2", 4, "192.0.2.1", "198.51.100.2"},
        {"192.0.2.1", "::ffff:198.51.100.2", 4, "192.0.2.1", "198.51.100.2"},
        {"192.0.2.1", "2001:db8::2", 6, "::ffff:192.0.2.1", "2001:db8::2"},
        {"2001:db8::1", "198.51.100.2", 6, "2001:db8::1", "::ffff:198.51.100.2"},
        {"::ffff:192.0.2.1", "2001:db8::2", 6, "::ffff:192.0.2.1", "2001:db8::2"},
        {"::1.2.3.4", "::1", 6, "::1.2.3.4", "::1"}, /* IPv4-compatible is not mapped */
        {NULL, NULL, 0, NULL, NULL},
        {"192.0.2.1", NULL, 0, NULL, NULL},
        {NULL, "2001:db8::2", 0, NULL, NULL},
    };
    static const uint16_t ports[][2] = {{0, 0}, {1, 65535}, {56324, 443}};
    for (size_t i = 0; i < LG_ARRAY_SIZE(v); i++) {
        for (size_t pi = 0; pi < LG_ARRAY_SIZE(ports); pi++) {
            for (unsigned mask = 0; mask < 16; mask++) {
                lg_pp_info_t in = info_of(v[i].src, ports[pi][0], v[i].dst, ports[pi][1]);
                if (mask & 1) in.alpn = bytes_of("h2");
                if (mask & 2) in.authority = bytes_of("www.example.org");
                if (mask & 4) {
                    in.ssl = true;
                    in.ssl_client = LG_PP_CLIENT_SSL | LG_PP_CLIENT_CERT_CONN;
                    in.ssl_verify = 0;
                    in.ssl_version = bytes_of("TLSv1.2");
                }
                if (mask & 8) {
                    in.unique_id = bytes_of("id-1");
                    in.ja3 = bytes_of("e7d705a3286e19ea42f587b344ee6865");
                    in.ja4 = bytes_of("t13d1516h2_8daaf6152771_e5627efa2ab1");
                }
                uint8_t ws[16], wd[16];
                addr_of(v[i].wsrc, ws);
                addr_of(v[i].wdst, wd);
                const char *row = v[i].src ? v[i].src : "unknown";

                for (int ver = 1; ver <= 2; ver++) {
                    if (ver == 1 && mask != 0) continue; /* v1 carries no TLVs */
                    uint8_t buf[LG_PP_MAX_HEADER + 4];
                    int n = ver == 1 ? lg_pp_write_v1(&in, buf, sizeof(buf))
                                     : lg_pp_write_v2(&in, buf, sizeof(buf));
                    CHECK_ROW(n > 0, row);
                    if (ver == 1) CHECK_ROW(n <= LG_PP_V1_MAX, row);
                    if (ver == 2) CHECK_ROW((size_t)n == lg_pp_v2_size(&in), row);
                    memcpy(buf + n, "DATA", 4); /* the stream after it */
                    uint8_t *b = dup_bytes(buf, (size_t)n + 4, NULL, 0);
                    lg_pp_header_t r;
                    int rc = parse_once(ANY, b, (size_t)n + 4, &r);
                    bool agree = splits_agree(ver == 1 ? V1 : V2, b, (size_t)n + 4);
                    bool auth = (mask & 2) && ver == 2
                                    ? r.authority != NULL && r.authority_len == 15 &&
                                          memcmp(r.authority, "www.example.org", 15) == 0
                                    : r.authority == NULL;
                    free(b);
                    CHECK_ROW(rc == LG_OK && r.header_len == (size_t)n && r.version == ver, row);
                    CHECK_ROW(r.family == v[i].family && r.is_local == (v[i].family == 0), row);
                    CHECK_ROW(memcmp(r.src_addr, ws, 16) == 0, row);
                    CHECK_ROW(memcmp(r.dst_addr, wd, 16) == 0, row);
                    uint16_t sp = v[i].family ? ports[pi][0] : 0;
                    uint16_t dp = v[i].family ? ports[pi][1] : 0;
                    CHECK_ROW(r.src_port == sp && r.dst_port == dp, row);
                    CHECK_ROW(auth, row);
                    CHECK_ROW(agree, row);
                }
            }
        }
    }
}

int main(void)
{
    LG_RUN(test_good_vectors);
    LG_RUN(test_good_vectors_any_tail);
    LG_RUN(test_accept_modes);
    LG_RUN(test_bad_vectors);
    LG_RUN(test_bad_vectors_with_more_bytes);
    LG_RUN(test_v1_line_limit);
    LG_RUN(test_v2_header_limit);
    LG_RUN(test_decided_by_max_header);
    LG_RUN(test_v2_unix);
    LG_RUN(test_v2_lengths_sweep);
    LG_RUN(test_repeat_calls_and_caller_errors);
    LG_RUN(test_reason_names);
    LG_RUN(test_write_v1_exact);
    LG_RUN(test_ipv6_text);
    LG_RUN(test_write_v2_exact);
    LG_RUN(test_write_v2_walk);
    LG_RUN(test_write_v2_limits);
    LG_RUN(test_round_trip);
    LG_TEST_END();
}
