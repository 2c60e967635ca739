/*
 * test_hello.c — unit tests of the TLS ClientHello parser (src/lg_hello.c).
 *
 * Layout: helpers that build and frame ClientHellos; four annotated tables (record layer,
 * ClientHello fields, extension wire structure, server names), each row run whole and one byte
 * at a time; real hellos captured from openssl s_client, curl and Node on 127.0.0.1 (also the
 * seeds in fuzz/corpus/hello/), parsed whole, byte by byte and re-framed into many records;
 * limits at exactly max and max + 1; truncation of every list; corruption of length fields.
 *
 * Every parse copies the bytes it is given into a heap buffer of exactly that length, so ASan
 * reports any read past `len`.
 */
#include "lg_test.h"
#include "../../src/lg_name.c"
#include "../../src/lg_hello.c"

#include <stdlib.h>

#include "hello_captures.h" /* hello_curl, hello_openssl_alpn, _nosni, _tls10 */

/* ------------------------------------------------------------------------------------------ */
/* Captured ClientHellos (one record each).                                                   */

/* ------------------------------------------------------------------------------------------ */
/* Helpers.                                                                                   */

#define SCRATCH (128 * 1024) /* bytes: largest framed hello a test builds */

typedef struct wr_s {
    uint8_t *b;
    size_t n, cap;
} wr_t;

static void w_bytes(wr_t *w, const void *p, size_t n)
{
    if (n == 0) return;
    if (n > w->cap - w->n) abort(); /* a test built more than its buffer holds */
    memcpy(w->b + w->n, p, n);
    w->n += n;
}

static void w_u8(wr_t *w, size_t v)
{
    uint8_t b = (uint8_t)v;
    w_bytes(w, &b, 1);
}

static void w_u16(wr_t *w, size_t v)
{
    w_u8(w, v >> 8);
    w_u8(w, v);
}

static void w_u24(wr_t *w, size_t v)
{
    w_u8(w, v >> 16);
    w_u16(w, v);
}

static void w_fill(wr_t *w, uint8_t byte, size_t n)
{
    for (size_t i = 0; i < n; i++)
        w_u8(w, byte);
}

/*
 * A ClientHello handshake message (4-byte header included): version 0x0303, zero random, empty
 * session id, `n_ciphers` suites 0x1301.., null compression, then the extension list `exts`
 * with its block length, or no extension block at all when exts is NULL.
 */
static size_t make_msg(uint8_t *dst, size_t cap, size_t n_ciphers, const uint8_t *exts,
                       size_t exts_len)
{
    wr_t w = {dst, 0, cap};
    w_u8(&w, 1);
    w_u24(&w, 0); /* patched below */
    w_u16(&w, 0x0303);
    w_fill(&w, 0, 32);
    w_u8(&w, 0);
    w_u16(&w, n_ciphers * 2);
    for (size_t i = 0; i < n_ciphers; i++)
        w_u16(&w, 0x1301 + i);
    w_u8(&w, 1);
    w_u8(&w, 0);
    if (exts != NULL) {
        w_u16(&w, exts_len);
        w_bytes(&w, exts, exts_len);
    }
    size_t body = w.n - 4;
    dst[1] = (uint8_t)(body >> 16);
    dst[2] = (uint8_t)(body >> 8);
    dst[3] = (uint8_t)body;
    return w.n;
}

/* Frame a handshake message into records (version 0x0301) of at most `frag` body bytes. */
static size_t frame(uint8_t *dst, size_t cap, const uint8_t *msg, size_t n, size_t frag)
{
    wr_t w = {dst, 0, cap};
    for (size_t off = 0; off < n; off += frag) {
        size_t k = LG_MIN(frag, n - off);
        w_u8(&w, 0x16);
        w_u16(&w, 0x0301);
        w_u16(&w, k);
        w_bytes(&w, msg + off, k);
    }
    return w.n;
}

/* Frame with the first record holding `first` body bytes and the second the rest. */
static size_t frame2(uint8_t *dst, size_t cap, const uint8_t *msg, size_t n, size_t first)
{
    size_t a = frame(dst, cap, msg, first, first);
    return a + frame(dst + a, cap - a, msg + first, n - first, n - first);
}

/* Append one extension (type, body) to a writer. */
static void w_ext(wr_t *w, size_t type, const void *body, size_t n)
{
    w_u16(w, type);
    w_u16(w, n);
    w_bytes(w, body, n);
}

/* Append a server_name extension with one host_name entry of `n` bytes. */
static void w_sni(wr_t *w, const char *name, size_t n)
{
    w_u16(w, 0);
    w_u16(w, n + 5);
    w_u16(w, n + 3);
    w_u8(w, 0);
    w_u16(w, n);
    w_bytes(w, name, n);
}

typedef struct res_s {
    int rc;
    int reason;
    size_t end;   /* hello_end on LG_OK */
    size_t at;    /* prefix length at which the result was decided */
    size_t calls; /* lg_hello_parse calls made */
    lg_hello_t h;
} res_t;

static lg_hello_parser_t parser; /* static: 16 KiB */

/*
 * Feed raw[0..len) to a fresh parser in prefixes growing by `step` bytes (step >= len: one call),
 * each prefix in its own exact-size heap buffer, stopping at the first result that is not
 * LG_AGAIN.
 */
static void parse_steps(const uint8_t *raw, size_t len, size_t step, res_t *r)
{
    memset(r, 0, sizeof(*r));
    lg_hello_parser_init(&parser);
    size_t k = 0;
    for (;;) {
        k = LG_MIN(len, k + step);
        uint8_t *copy = malloc(k ? k : 1);
        if (copy == NULL) abort();
        if (k) memcpy(copy, raw, k);
        r->reason = LG_HELLO_E_NONE;
        r->h.reason = LG_HELLO_E_NONE;
        r->rc = lg_hello_parse(&parser, copy, k, &r->h, &r->end);
        r->reason = r->h.reason;
        r->calls++;
        free(copy);
        r->at = k;
        if (r->rc != LG_AGAIN || k == len) return;
    }
}

static void parse_whole(const uint8_t *raw, size_t len, res_t *r)
{
    parse_steps(raw, len, len ? len : 1, r);
}

static bool same_hello(const lg_hello_t *a, const lg_hello_t *b)
{
#define SAME_LIST(arr, n, tr)                                                                      \
    (a->n == b->n && a->tr == b->tr && memcmp(a->arr, b->arr, a->n * sizeof(a->arr[0])) == 0)
    if (a->legacy_version != b->legacy_version || a->record_version != b->record_version) {
        return false;
    }
    if (a->has_sni != b->has_sni || a->sni_len != b->sni_len || strcmp(a->sni, b->sni) != 0) {
        return false;
    }
    if (!SAME_LIST(ciphers, n_ciphers, ciphers_truncated) ||
        !SAME_LIST(exts, n_exts, exts_truncated) ||
        !SAME_LIST(groups, n_groups, groups_truncated) ||
        !SAME_LIST(pointfmts, n_pointfmts, pointfmts_truncated) ||
        !SAME_LIST(sigalgs, n_sigalgs, sigalgs_truncated) ||
        !SAME_LIST(versions, n_versions, versions_truncated)) {
        return false;
    }
    if (a->n_alpn != b->n_alpn || a->alpn_truncated != b->alpn_truncated) return false;
    for (size_t i = 0; i < a->n_alpn; i++) {
        if (a->alpn_len[i] != b->alpn_len[i] ||
            memcmp(a->alpn_buf + a->alpn_off[i], b->alpn_buf + b->alpn_off[i], a->alpn_len[i])) {
            return false;
        }
    }
    return true;
#undef SAME_LIST
}

/* Same decision: result code, reason on error, hello_end and fields on LG_OK. */
static bool same_result(const res_t *a, const res_t *b)
{
    if (a->rc != b->rc) return false;
    if (a->rc == LG_ERROR) return a->reason == b->reason;
    if (a->rc == LG_OK) return a->end == b->end && same_hello(&a->h, &b->h);
    return true;
}

static bool alpn_is(const lg_hello_t *h, size_t i, const char *s)
{
    return i < h->n_alpn && h->alpn_len[i] == strlen(s) &&
           memcmp(h->alpn_buf + h->alpn_off[i], s, strlen(s)) == 0;
}

/* ------------------------------------------------------------------------------------------ */
/* Tables. Each row: name, bytes, expected result, expected reason, expected SNI (on LG_OK:    */
/* the normalised name, or NULL for none).                                                    */

typedef struct row_s {
    const char *name;
    const char *bytes;
    size_t len;
    int rc;
    int reason;
    const char *sni;
} row_t;

#define ROW(name, bytes, rc, reason, sni)                                                          \
    {                                                                                              \
        name, bytes, sizeof(bytes) - 1, rc, reason, sni                                            \
    }
#define OK_ROW(name, bytes, sni)     ROW(name, bytes, LG_OK, LG_HELLO_E_NONE, sni)
#define BAD_ROW(name, bytes, reason) ROW(name, bytes, LG_ERROR, reason, NULL)

#define Z8       "\x00\x00\x00\x00\x00\x00\x00\x00"
#define RANDOM32 Z8 Z8 Z8 Z8
/* ClientHello body up to the extensions, 41 bytes: version, random, empty session id, one
 * cipher suite (TLS_AES_128_GCM_SHA256), null compression. */
#define CIPHERS_COMP "\x00\x02\x13\x01" /* suites */ "\x01\x00" /* compression */
#define BODY_HEAD    "\x03\x03" RANDOM32 "\x00" CIPHERS_COMP
/* Record header (len 45) + handshake header (len 41) + BODY_HEAD: a whole minimal hello. */
#define MIN_HELLO                                                                                  \
    "\x16\x03\x01\x00\x2d"                                                                         \
    "\x01\x00\x00\x29" BODY_HEAD
#define ALERT "\x15\x03\x03\x00\x02\x02\x28" /* fatal handshake_failure */
#define CCS   "\x14\x03\x03\x00\x01\x01"     /* change_cipher_spec */

/* Record layer: full raw bytes. */
static const row_t raw_rows[] = {
    OK_ROW("minimal hello, no extensions", MIN_HELLO, NULL),
    OK_ROW("hello then CCS (TLS 1.3 middlebox compat) is not examined", MIN_HELLO CCS, NULL),
    OK_ROW("hello then application data is not examined", MIN_HELLO "\x17\x03\x03\x00\x01\x00",
           NULL),
    OK_ROW("handshake header split over two records",
           "\x16\x03\x01\x00\x01"
           "\x01"
           "\x16\x03\x01\x00\x2c"
           "\x00\x00\x29" BODY_HEAD,
           NULL),
    OK_ROW("any record minor version is accepted",
           "\x16\x03\x09\x00\x2d"
           "\x01\x00\x00\x29" BODY_HEAD,
           NULL),
    ROW("empty input", "", LG_AGAIN, 0, NULL),
    ROW("handshake type byte only", "\x16", LG_AGAIN, 0, NULL),
    ROW("record header cut", "\x16\x03\x01\x00", LG_AGAIN, 0, NULL),
    ROW("record body cut", "\x16\x03\x01\x00\x2d\x01\x00", LG_AGAIN, 0, NULL),
    ROW("HTTP request", "GET / HTTP/1.1\r\nHost: a\r\n\r\n", LG_DECLINED, 0, NULL),
    ROW("SSH banner", "SSH-2.0-OpenSSH_9.2\r\n", LG_DECLINED, 0, NULL),
    ROW("HTTP/2 preface", "PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n", LG_DECLINED, 0, NULL),
    ROW("alert record first", ALERT, LG_DECLINED, 0, NULL),
    ROW("CCS record first", CCS, LG_DECLINED, 0, NULL),
    ROW("SSLv2-compatible ClientHello", "\x80\x2e\x01\x03\x01\x00\x15", LG_DECLINED, 0, NULL),
    ROW("record major version 2", "\x16\x02\x00\x00\x2d", LG_DECLINED, 0, NULL),
    ROW("DTLS 1.2 record version", "\x16\xfe\xfd\x00\x00", LG_DECLINED, 0, NULL),
    BAD_ROW("record length 0", "\x16\x03\x01\x00\x00", LG_HELLO_E_RECORD),
    BAD_ROW("record length max + 1 (16641)", "\x16\x03\x01\x41\x01", LG_HELLO_E_RECORD),
    ROW("record length max (16640) waits", "\x16\x03\x01\x41\x00\x01", LG_AGAIN, 0, NULL),
    BAD_ROW("record length 65535", "\x16\x03\x01\xff\xff", LG_HELLO_E_RECORD),
    BAD_ROW("ServerHello (type 2)", "\x16\x03\x03\x00\x2d\x02", LG_HELLO_E_NOT_HELLO),
    BAD_ROW("HelloRequest (type 0)", "\x16\x03\x03\x00\x04\x00\x00\x00\x00", LG_HELLO_E_NOT_HELLO),
    BAD_ROW("handshake length 16381 (total max + 1)", "\x16\x03\x01\x00\x04\x01\x00\x3f\xfd",
            LG_HELLO_E_TOO_BIG),
    ROW("handshake length 16380 (total max) waits", "\x16\x03\x01\x00\x04\x01\x00\x3f\xfc",
        LG_AGAIN, 0, NULL),
    BAD_ROW("handshake length 2^24-1", "\x16\x03\x01\x00\x04\x01\xff\xff\xff", LG_HELLO_E_TOO_BIG),
    BAD_ROW("handshake length 0", "\x16\x03\x01\x00\x04\x01\x00\x00\x00", LG_HELLO_E_MALFORMED),
    BAD_ROW("alert between fragments", "\x16\x03\x01\x00\x04\x01\x00\x00\x29" ALERT,
            LG_HELLO_E_INTERLEAVED),
    BAD_ROW("CCS between fragments", "\x16\x03\x01\x00\x04\x01\x00\x00\x29" CCS,
            LG_HELLO_E_INTERLEAVED),
    BAD_ROW("application data between fragments",
            "\x16\x03\x01\x00\x04\x01\x00\x00\x29"
            "\x17\x03\x03\x00\x01\x00",
            LG_HELLO_E_INTERLEAVED),
    BAD_ROW("HTTP bytes after first fragment",
            "\x16\x03\x01\x00\x04\x01\x00\x00\x29"
            "GET /",
            LG_HELLO_E_INTERLEAVED),
    BAD_ROW("second record major version 2",
            "\x16\x03\x01\x00\x04\x01\x00\x00\x29"
            "\x16\x02",
            LG_HELLO_E_RECORD),
    BAD_ROW("second record length 0",
            "\x16\x03\x01\x00\x04\x01\x00\x00\x29"
            "\x16\x03\x01\x00\x00",
            LG_HELLO_E_RECORD),
    BAD_ROW("message shorter than record: rest of record is not a hello",
            "\x16\x03\x01\x00\x2d"
            "\x01\x00\x00\x28" BODY_HEAD,
            LG_HELLO_E_MALFORMED),
};

/* ClientHello body (after the handshake header); framed into one record by the test. */
static const row_t body_rows[] = {
    OK_ROW("no extension block (SSLv3/TLS 1.0 style)", BODY_HEAD, NULL),
    OK_ROW("empty extension block", BODY_HEAD "\x00\x00", NULL),
    OK_ROW("session id of 32 bytes", "\x03\x03" RANDOM32 "\x20" RANDOM32 CIPHERS_COMP, NULL),
    OK_ROW("legacy_version SSL 3.0", "\x03\x00" RANDOM32 "\x00" CIPHERS_COMP, NULL),
    OK_ROW("two compression methods", "\x03\x03" RANDOM32 "\x00\x00\x02\x13\x01\x02\x01\x00", NULL),
    BAD_ROW("empty body", "", LG_HELLO_E_MALFORMED),
    BAD_ROW("only the version", "\x03\x03", LG_HELLO_E_MALFORMED),
    BAD_ROW("random cut at 31 bytes", "\x03\x03" Z8 Z8 Z8 "\x00\x00\x00\x00\x00\x00\x00",
            LG_HELLO_E_MALFORMED),
    BAD_ROW("session id length missing", "\x03\x03" RANDOM32, LG_HELLO_E_MALFORMED),
    BAD_ROW("session id of 33 bytes", "\x03\x03" RANDOM32 "\x21" RANDOM32 "\x00" CIPHERS_COMP,
            LG_HELLO_E_MALFORMED),
    BAD_ROW("session id overruns message", "\x03\x03" RANDOM32 "\x05\x00", LG_HELLO_E_MALFORMED),
    BAD_ROW("cipher suites length missing", "\x03\x03" RANDOM32 "\x00\x00", LG_HELLO_E_MALFORMED),
    BAD_ROW("no cipher suites",
            "\x03\x03" RANDOM32 "\x00"
            "\x00\x00"
            "\x01\x00",
            LG_HELLO_E_MALFORMED),
    BAD_ROW("odd cipher suites length",
            "\x03\x03" RANDOM32 "\x00"
            "\x00\x03\x13\x01\x13"
            "\x01\x00",
            LG_HELLO_E_MALFORMED),
    BAD_ROW("cipher suites overrun message",
            "\x03\x03" RANDOM32 "\x00"
            "\x00\x04\x13\x01",
            LG_HELLO_E_MALFORMED),
    BAD_ROW("compression methods missing",
            "\x03\x03" RANDOM32 "\x00"
            "\x00\x02\x13\x01",
            LG_HELLO_E_MALFORMED),
    BAD_ROW("no compression methods",
            "\x03\x03" RANDOM32 "\x00"
            "\x00\x02\x13\x01"
            "\x00",
            LG_HELLO_E_MALFORMED),
    BAD_ROW("compression methods overrun",
            "\x03\x03" RANDOM32 "\x00"
            "\x00\x02\x13\x01"
            "\x02\x00",
            LG_HELLO_E_MALFORMED),
    BAD_ROW("one stray byte after compression", BODY_HEAD "\x00", LG_HELLO_E_MALFORMED),
    BAD_ROW("extension block shorter than the rest",
            BODY_HEAD "\x00\x04"
                      "\x00\x17\x00\x00"
                      "\x00",
            LG_HELLO_E_MALFORMED),
    BAD_ROW("extension block longer than the rest",
            BODY_HEAD "\x00\x05"
                      "\x00\x17\x00\x00",
            LG_HELLO_E_MALFORMED),
};

/* Extension lists; the test prepends BODY_HEAD and the block length, and frames them. */
#define SNI_A                                                                                      \
    "\x00\x00\x00\x0b"                                                                             \
    "\x00\x09"                                                                                     \
    "\x00\x00\x06"                                                                                 \
    "a.test" /* server_name a.test */
static const row_t ext_rows[] = {
    OK_ROW("server_name a.test", SNI_A, "a.test"),
    OK_ROW("unknown name_type skipped, then host_name",
           "\x00\x00\x00\x10"
           "\x00\x0e"
           "\x01\x00\x02"
           "xx"
           "\x00\x00\x06"
           "b.test",
           "b.test"),
    BAD_ROW("two host_names (RFC 6066: one per name_type; OpenSSL refuses it)",
            "\x00\x00\x00\x14"
            "\x00\x12"
            "\x00\x00\x06"
            "a.test"
            "\x00\x00\x06"
            "b.test",
            LG_HELLO_E_SNI),
    BAD_ROW("a second host_name, even one that is not a name",
            "\x00\x00\x00\x0f"
            "\x00\x0d"
            "\x00\x00\x06"
            "a.test"
            "\x00\x00\x01"
            "-",
            LG_HELLO_E_SNI),
    OK_ROW("host_name, then an unknown name_type (only length-checked)",
           "\x00\x00\x00\x10"
           "\x00\x0e"
           "\x00\x00\x06"
           "a.test"
           "\x01\x00\x02"
           "xx",
           "a.test"),
    OK_ROW("only an unknown name_type: no SNI",
           "\x00\x00\x00\x07"
           "\x00\x05"
           "\x01\x00\x02"
           "xx",
           NULL),
    BAD_ROW("server_name extension empty", "\x00\x00\x00\x00", LG_HELLO_E_MALFORMED),
    BAD_ROW("server_name list empty",
            "\x00\x00\x00\x02"
            "\x00\x00",
            LG_HELLO_E_MALFORMED),
    BAD_ROW("server_name list shorter than extension",
            "\x00\x00\x00\x0c"
            "\x00\x09"
            "\x00\x00\x06"
            "a.test"
            "\x00",
            LG_HELLO_E_MALFORMED),
    BAD_ROW("server_name list longer than extension",
            "\x00\x00\x00\x0b"
            "\x00\x0a"
            "\x00\x00\x06"
            "a.test",
            LG_HELLO_E_MALFORMED),
    BAD_ROW("host_name overruns list",
            "\x00\x00\x00\x0b"
            "\x00\x09"
            "\x00\x00\x07"
            "a.test",
            LG_HELLO_E_MALFORMED),
    BAD_ROW("stray byte after entry in list",
            "\x00\x00\x00\x0c"
            "\x00\x0a"
            "\x00\x00\x06"
            "a.test"
            "\x00",
            LG_HELLO_E_MALFORMED),
    BAD_ROW("unknown name_type entry overruns list",
            "\x00\x00\x00\x07"
            "\x00\x05"
            "\x01\x00\x03"
            "xx",
            LG_HELLO_E_MALFORMED),
    BAD_ROW("entry is only a name_type",
            "\x00\x00\x00\x03"
            "\x00\x01"
            "\x00",
            LG_HELLO_E_MALFORMED),
    BAD_ROW("host_name of length 0",
            "\x00\x00\x00\x05"
            "\x00\x03"
            "\x00\x00\x00",
            LG_HELLO_E_SNI),

    OK_ROW("ALPN h2, http/1.1",
           "\x00\x10\x00\x0e"
           "\x00\x0c"
           "\x02"
           "h2"
           "\x08"
           "http/1.1",
           NULL),
    BAD_ROW("ALPN extension empty", "\x00\x10\x00\x00", LG_HELLO_E_MALFORMED),
    BAD_ROW("ALPN list empty",
            "\x00\x10\x00\x02"
            "\x00\x00",
            LG_HELLO_E_MALFORMED),
    BAD_ROW("ALPN empty protocol name",
            "\x00\x10\x00\x03"
            "\x00\x01"
            "\x00",
            LG_HELLO_E_MALFORMED),
    BAD_ROW("ALPN name overruns list",
            "\x00\x10\x00\x05"
            "\x00\x03"
            "\x03"
            "h2",
            LG_HELLO_E_MALFORMED),
    BAD_ROW("ALPN list shorter than extension",
            "\x00\x10\x00\x06"
            "\x00\x03"
            "\x02"
            "h2"
            "\x00",
            LG_HELLO_E_MALFORMED),

    OK_ROW("supported_groups x25519, P-256",
           "\x00\x0a\x00\x06"
           "\x00\x04"
           "\x00\x1d\x00\x17",
           NULL),
    BAD_ROW("supported_groups empty",
            "\x00\x0a\x00\x02"
            "\x00\x00",
            LG_HELLO_E_MALFORMED),
    BAD_ROW("supported_groups odd",
            "\x00\x0a\x00\x05"
            "\x00\x03"
            "\x00\x1d\x00",
            LG_HELLO_E_MALFORMED),
    BAD_ROW("supported_groups list shorter than extension",
            "\x00\x0a\x00\x06"
            "\x00\x02"
            "\x00\x1d\x00\x17",
            LG_HELLO_E_MALFORMED),
    OK_ROW("ec_point_formats",
           "\x00\x0b\x00\x02"
           "\x01"
           "\x00",
           NULL),
    BAD_ROW("ec_point_formats empty",
            "\x00\x0b\x00\x01"
            "\x00",
            LG_HELLO_E_MALFORMED),
    BAD_ROW("ec_point_formats overrun",
            "\x00\x0b\x00\x02"
            "\x02"
            "\x00",
            LG_HELLO_E_MALFORMED),
    OK_ROW("signature_algorithms",
           "\x00\x0d\x00\x04"
           "\x00\x02"
           "\x04\x03",
           NULL),
    BAD_ROW("signature_algorithms empty",
            "\x00\x0d\x00\x02"
            "\x00\x00",
            LG_HELLO_E_MALFORMED),
    BAD_ROW("signature_algorithms odd",
            "\x00\x0d\x00\x03"
            "\x00\x01"
            "\x04",
            LG_HELLO_E_MALFORMED),
    OK_ROW("supported_versions 1.3, 1.2",
           "\x00\x2b\x00\x05"
           "\x04"
           "\x03\x04\x03\x03",
           NULL),
    BAD_ROW("supported_versions empty",
            "\x00\x2b\x00\x01"
            "\x00",
            LG_HELLO_E_MALFORMED),
    BAD_ROW("supported_versions odd",
            "\x00\x2b\x00\x04"
            "\x03"
            "\x03\x03\x04",
            LG_HELLO_E_MALFORMED),
    BAD_ROW("supported_versions list of 255 bytes",
            "\x00\x2b\x01\x00"
            "\xff" Z8 Z8 Z8 Z8 Z8 Z8 Z8 Z8 Z8 Z8 Z8 Z8 Z8 Z8 Z8 Z8 Z8 Z8 Z8 Z8 Z8 Z8 Z8 Z8 Z8 Z8 Z8
                Z8 Z8 Z8 Z8 "\x00\x00\x00\x00\x00\x00\x00",
            LG_HELLO_E_MALFORMED),
    BAD_ROW("supported_versions in ServerHello form",
            "\x00\x2b\x00\x02"
            "\x03\x04",
            LG_HELLO_E_MALFORMED),

    OK_ROW("unknown extension skipped",
           "\xfe\x0d\x00\x03"
           "\x01\x02\x03",
           NULL),
    OK_ROW("empty extension (extended_master_secret)", "\x00\x17\x00\x00", NULL),
    OK_ROW("GREASE extension",
           "\x0a\x0a\x00\x00"
           "\xfa\xfa\x00\x01"
           "\x00",
           NULL),
    OK_ROW("padding extension",
           "\x00\x15\x00\x03"
           "\x00\x00\x00",
           NULL),
    BAD_ROW("duplicate unknown extension",
            "\x12\x34\x00\x00"
            "\x12\x34\x00\x01"
            "\x00",
            LG_HELLO_E_DUP_EXT),
    BAD_ROW("duplicate server_name", SNI_A SNI_A, LG_HELLO_E_DUP_EXT),
    BAD_ROW("duplicate after another extension",
            "\x00\x17\x00\x00"
            "\x00\x16\x00\x00"
            "\x00\x17\x00\x00",
            LG_HELLO_E_DUP_EXT),
    BAD_ROW("extension header cut at 1 byte", "\x00", LG_HELLO_E_MALFORMED),
    BAD_ROW("extension header cut at 3 bytes", "\x00\x17\x00", LG_HELLO_E_MALFORMED),
    BAD_ROW("extension body overruns block", "\x00\x17\x00\x01", LG_HELLO_E_MALFORMED),
    BAD_ROW("bad extension after a good one",
            "\x00\x17\x00\x00"
            "\x00\x0b\x00\x00",
            LG_HELLO_E_MALFORMED),
};

/* Server names; the test wraps each in a server_name extension with one host_name entry. */
#define SNI_ROW(name, sni)    OK_ROW(name, name, sni)
#define SNI_BAD(label, bytes) BAD_ROW(label, bytes, LG_HELLO_E_SNI)
static const row_t sni_rows[] = {
    SNI_ROW("a.test", "a.test"),
    SNI_ROW("WWW.Example.COM.", "www.example.com"),
    SNI_ROW("localhost", "localhost"),
    SNI_ROW("a-b.test", "a-b.test"),
    SNI_ROW("a--b.test", "a--b.test"),
    SNI_ROW("xn--bcher-kva.example", "xn--bcher-kva.example"),
    SNI_ROW("0.test", "0.test"),
    SNI_ROW("123abc.com", "123abc.com"),
    SNI_ROW("1.2.3.a", "1.2.3.a"),
    SNI_ROW("a.1", "a.1"),
    SNI_ROW("A", "a"),
    SNI_BAD("empty", ""),
    SNI_BAD("only a dot", "."),
    SNI_BAD("two dots", ".."),
    SNI_BAD("empty inner label", "a..b"),
    SNI_BAD("leading dot", ".a"),
    SNI_BAD("two trailing dots", "a.."),
    SNI_BAD("label starts with '-'", "-a.test"),
    SNI_BAD("label ends with '-'", "a-.test"),
    SNI_BAD("last label ends with '-'", "a.test-"),
    SNI_BAD("inner label starts with '-'", "a.-b.test"),
    SNI_BAD("only '-'", "-"),
    SNI_BAD("IPv4 literal", "1.2.3.4"),
    SNI_BAD("IPv4 literal with trailing dot", "1.2.3.4."),
    SNI_BAD("short IPv4 literal", "127.1"),
    SNI_BAD("numeric IPv4 literal", "2130706433"),
    SNI_BAD("single digit", "0"),
    SNI_BAD("IPv6 literal", "::1"),
    SNI_BAD("bracketed IPv6 literal", "[::1]"),
    SNI_BAD("NUL inside", "a\0b.test"),
    SNI_BAD("NUL at the end", "a.test\0"),
    SNI_BAD("underscore", "a_b.test"),
    SNI_BAD("space", "a b.test"),
    SNI_BAD("wildcard", "*.a.test"),
    SNI_BAD("slash", "a/b"),
    SNI_BAD("port", "a.test:443"),
    SNI_BAD("UTF-8 (not an A-label)", "\xc3\xa9.test"),
    SNI_BAD("byte 0xff", "a\xff"),
};

static uint8_t buf_a[SCRATCH], buf_b[SCRATCH], buf_c[SCRATCH];
static res_t res_a, res_b;

/* Frame a ClientHello body (bytes after the handshake header) into one record in buf_b. */
static size_t frame_body(const uint8_t *body, size_t n)
{
    wr_t w = {buf_a, 0, sizeof(buf_a)};
    w_u8(&w, 1);
    w_u24(&w, n);
    w_bytes(&w, body, n);
    return frame(buf_b, sizeof(buf_b), buf_a, w.n, w.n);
}

/* Frame an extension list after BODY_HEAD into one record in buf_b. */
static size_t frame_exts(const uint8_t *exts, size_t n)
{
    wr_t w = {buf_c, 0, sizeof(buf_c)};
    w_bytes(&w, BODY_HEAD, sizeof(BODY_HEAD) - 1);
    w_u16(&w, n);
    w_bytes(&w, exts, n);
    return frame_body(buf_c, w.n);
}

/* Frame a server_name extension holding `name` (n bytes) into one record in buf_b. */
static size_t frame_sni(const char *name, size_t n)
{
    uint8_t ext[SCRATCH / 2];
    wr_t w = {ext, 0, sizeof(ext)};
    w_sni(&w, name, n);
    return frame_exts(ext, w.n);
}

/* Run a table whose rows are turned into raw bytes (in buf_b) by `build`. */
static const char *run_table(const row_t *rows, size_t n_rows,
                             size_t (*build)(const uint8_t *, size_t))
{
    for (size_t i = 0; i < n_rows; i++) {
        const row_t *row = &rows[i];
        const uint8_t *raw = (const uint8_t *)row->bytes;
        size_t len = row->len;
        if (build != NULL) {
            len = build(raw, len);
            raw = buf_b;
        }
        parse_whole(raw, len, &res_a);
        parse_steps(raw, len, 1, &res_b);
        bool ok = res_a.rc == row->rc && same_result(&res_a, &res_b);
        if (ok && row->rc == LG_ERROR) ok = res_a.reason == row->reason;
        if (ok && row->rc == LG_OK) {
            /* Built rows end with the hello; raw rows may carry bytes after it. */
            ok = (build == NULL ? res_a.end <= len : res_a.end == len) &&
                 res_a.h.sni[res_a.h.sni_len] == '\0';
            if (row->sni == NULL) {
                ok = ok && !res_a.h.has_sni && res_a.h.sni_len == 0;
            } else {
                ok = ok && res_a.h.has_sni && strcmp(res_a.h.sni, row->sni) == 0 &&
                     res_a.h.sni_len == strlen(row->sni);
            }
        }
        if (!ok) {
            fprintf(stderr, "    row \"%s\": rc %d reason %d (%s) sni \"%s\"; bytewise rc %d\n",
                    row->name, res_a.rc, res_a.reason, lg_hello_reason_name(res_a.reason),
                    res_a.h.sni, res_b.rc);
            return row->name;
        }
    }
    return NULL;
}

static size_t build_sni_row(const uint8_t *name, size_t n)
{
    return frame_sni((const char *)name, n);
}

/* ------------------------------------------------------------------------------------------ */
/* Table tests.                                                                               */

LG_TEST(table_record_layer)
{
    const char *bad = run_table(raw_rows, LG_ARRAY_SIZE(raw_rows), NULL);
    CHECK_ROW(bad == NULL, bad);
}

LG_TEST(table_client_hello_fields)
{
    const char *bad = run_table(body_rows, LG_ARRAY_SIZE(body_rows), frame_body);
    CHECK_ROW(bad == NULL, bad);
}

LG_TEST(table_extensions)
{
    const char *bad = run_table(ext_rows, LG_ARRAY_SIZE(ext_rows), frame_exts);
    CHECK_ROW(bad == NULL, bad);
}

LG_TEST(table_server_names)
{
    const char *bad = run_table(sni_rows, LG_ARRAY_SIZE(sni_rows), build_sni_row);
    CHECK_ROW(bad == NULL, bad);
}

/* ------------------------------------------------------------------------------------------ */
/* Real hellos.                                                                               */

typedef struct real_s {
    const char *name;
    const uint8_t *bytes;
    size_t len;
    const char *sni; /* NULL: none */
} real_t;

static const real_t reals[] = {
    {"openssl", hello_openssl_alpn, sizeof(hello_openssl_alpn), "www.example.com"},
    {"curl", hello_curl, sizeof(hello_curl), "a.test"},
    {"tls10", hello_openssl_tls10, sizeof(hello_openssl_tls10), "old.test"},
    {"nosni", hello_openssl_nosni, sizeof(hello_openssl_nosni), NULL},
};

LG_TEST(real_hellos_whole)
{
    for (size_t i = 0; i < LG_ARRAY_SIZE(reals); i++) {
        const real_t *r = &reals[i];
        parse_whole(r->bytes, r->len, &res_a);
        CHECK_ROW(res_a.rc == LG_OK, r->name);
        CHECK_ROW(res_a.end == r->len, r->name);
        CHECK_ROW(res_a.h.record_version == 0x0301, r->name);
        if (r->sni) {
            CHECK_ROW(res_a.h.has_sni && strcmp(res_a.h.sni, r->sni) == 0, r->name);
        } else {
            CHECK_ROW(!res_a.h.has_sni && res_a.h.sni[0] == '\0', r->name);
        }
    }
}

LG_TEST(real_hello_curl_fields)
{
    static const uint16_t exts[] = {0, 11, 10, 16, 22, 23, 49, 13, 43, 45, 51, 21};
    static const uint16_t versions[] = {0x0304, 0x0303, 0x0302, 0x0301};
    static const uint16_t groups[] = {0x1d,  0x17,  0x1e,  0x19,  0x18,
                                      0x100, 0x101, 0x102, 0x103, 0x104};
    static const uint8_t pointfmts[] = {0, 1, 2};
    parse_whole(hello_curl, sizeof(hello_curl), &res_a);
    const lg_hello_t *h = &res_a.h;
    CHECK_EQ_INT(res_a.rc, LG_OK);
    CHECK_EQ_INT(res_a.end, 517);
    CHECK_EQ_INT(h->legacy_version, 0x0303);
    CHECK_EQ_INT(h->record_version, 0x0301);
    CHECK(strcmp(h->sni, "a.test") == 0 && h->sni_len == 6);
    CHECK_EQ_INT(h->n_ciphers, 31);
    CHECK_EQ_INT(h->ciphers[0], 0x1302);
    CHECK_EQ_INT(h->ciphers[1], 0x1303);
    CHECK_EQ_INT(h->ciphers[2], 0x1301);
    CHECK_EQ_INT(h->n_exts, LG_ARRAY_SIZE(exts));
    CHECK(memcmp(h->exts, exts, sizeof(exts)) == 0);
    CHECK_EQ_INT(h->n_versions, LG_ARRAY_SIZE(versions));
    CHECK(memcmp(h->versions, versions, sizeof(versions)) == 0);
    CHECK_EQ_INT(h->n_groups, LG_ARRAY_SIZE(groups));
    CHECK(memcmp(h->groups, groups, sizeof(groups)) == 0);
    CHECK_EQ_INT(h->n_pointfmts, 3);
    CHECK(memcmp(h->pointfmts, pointfmts, sizeof(pointfmts)) == 0);
    CHECK_EQ_INT(h->n_sigalgs, 20);
    CHECK_EQ_INT(h->n_alpn, 2);
    CHECK(alpn_is(h, 0, "h2"));
    CHECK(alpn_is(h, 1, "http/1.1"));
    CHECK(!h->ciphers_truncated && !h->exts_truncated && !h->groups_truncated &&
          !h->pointfmts_truncated && !h->sigalgs_truncated && !h->versions_truncated &&
          !h->alpn_truncated);
}

LG_TEST(real_hello_openssl_alpn_in_order)
{
    static const uint16_t exts[] = {0, 11, 10, 35, 16, 22, 23, 13, 43, 45, 51};
    parse_whole(hello_openssl_alpn, sizeof(hello_openssl_alpn), &res_a);
    const lg_hello_t *h = &res_a.h;
    CHECK_EQ_INT(res_a.rc, LG_OK);
    CHECK(strcmp(h->sni, "www.example.com") == 0 && h->sni_len == 15);
    CHECK_EQ_INT(h->n_alpn, 2);
    CHECK(alpn_is(h, 0, "h2"));
    CHECK(alpn_is(h, 1, "http/1.1"));
    CHECK_EQ_INT(h->n_exts, LG_ARRAY_SIZE(exts));
    CHECK(memcmp(h->exts, exts, sizeof(exts)) == 0);
    CHECK_EQ_INT(h->n_versions, 4);
    CHECK_EQ_INT(h->versions[0], 0x0304);
}

LG_TEST(real_hello_tls10_has_no_versions)
{
    static const uint16_t exts[] = {0, 11, 10, 35, 22, 23};
    parse_whole(hello_openssl_tls10, sizeof(hello_openssl_tls10), &res_a);
    const lg_hello_t *h = &res_a.h;
    CHECK_EQ_INT(res_a.rc, LG_OK);
    CHECK_EQ_INT(h->legacy_version, 0x0301);
    CHECK_EQ_INT(h->n_versions, 0);
    CHECK_EQ_INT(h->n_sigalgs, 0);
    CHECK_EQ_INT(h->n_alpn, 0);
    CHECK_EQ_INT(h->n_ciphers, 23);
    CHECK_EQ_INT(h->ciphers[0], 0xc00a);
    CHECK_EQ_INT(h->n_exts, LG_ARRAY_SIZE(exts));
    CHECK(memcmp(h->exts, exts, sizeof(exts)) == 0);
    CHECK(strcmp(h->sni, "old.test") == 0);
}

LG_TEST(real_hello_without_sni)
{
    parse_whole(hello_openssl_nosni, sizeof(hello_openssl_nosni), &res_a);
    CHECK_EQ_INT(res_a.rc, LG_OK);
    CHECK(!res_a.h.has_sni);
    CHECK_EQ_INT(res_a.h.sni_len, 0);
    CHECK_EQ_INT(res_a.h.sni[0], '\0');
    CHECK_EQ_INT(res_a.h.n_exts, 9);
    CHECK_EQ_INT(res_a.h.exts[0], 11);
}

/* One byte per call: AGAIN for every prefix, then the same result as whole, at the last byte. */
LG_TEST(real_hellos_byte_at_a_time)
{
    for (size_t i = 0; i < LG_ARRAY_SIZE(reals); i++) {
        const real_t *r = &reals[i];
        parse_whole(r->bytes, r->len, &res_a);
        parse_steps(r->bytes, r->len, 1, &res_b);
        CHECK_ROW(same_result(&res_a, &res_b), r->name);
        CHECK_ROW(res_b.rc == LG_OK && res_b.at == r->len && res_b.calls == r->len, r->name);
    }
}

/* Each prefix on its own (a fresh parser): never OK, never ERROR, never DECLINED. */
LG_TEST(real_hellos_every_prefix_again)
{
    for (size_t i = 0; i < LG_ARRAY_SIZE(reals); i++) {
        const real_t *r = &reals[i];
        for (size_t k = 0; k < r->len; k++) {
            parse_whole(r->bytes, k, &res_a);
            CHECK_ROW(res_a.rc == LG_AGAIN, r->name);
        }
    }
}

LG_TEST(real_hellos_every_step_size)
{
    for (size_t i = 0; i < LG_ARRAY_SIZE(reals); i++) {
        const real_t *r = &reals[i];
        parse_whole(r->bytes, r->len, &res_a);
        for (size_t step = 2; step <= r->len; step += (step < 64 ? 1 : 37)) {
            parse_steps(r->bytes, r->len, step, &res_b);
            CHECK_ROW(same_result(&res_a, &res_b), r->name);
        }
    }
}

/* Re-framed into two records at every split point of the handshake message. */
LG_TEST(real_hellos_split_two_records)
{
    for (size_t i = 0; i < LG_ARRAY_SIZE(reals); i++) {
        const real_t *r = &reals[i];
        const uint8_t *msg = r->bytes + 5;
        size_t n = r->len - 5;
        parse_whole(r->bytes, r->len, &res_a);
        for (size_t cut = 1; cut < n; cut++) {
            size_t len = frame2(buf_c, sizeof(buf_c), msg, n, cut);
            CHECK_ROW(len == r->len + 5, r->name);
            parse_whole(buf_c, len, &res_b);
            CHECK_ROW(res_b.rc == LG_OK && res_b.end == len, r->name);
            CHECK_ROW(same_hello(&res_a.h, &res_b.h), r->name);
            if (i == 0) { /* one byte at a time too, for one of them */
                parse_steps(buf_c, len, 1, &res_b);
                CHECK_ROW(res_b.rc == LG_OK && res_b.at == len, r->name);
                CHECK_ROW(same_hello(&res_a.h, &res_b.h), r->name);
            }
        }
    }
}

/* Re-framed into many records of `frag` bytes, down to one byte per record. */
LG_TEST(real_hellos_split_many_records)
{
    for (size_t i = 0; i < LG_ARRAY_SIZE(reals); i++) {
        const real_t *r = &reals[i];
        const uint8_t *msg = r->bytes + 5;
        size_t n = r->len - 5;
        parse_whole(r->bytes, r->len, &res_a);
        for (size_t frag = 1; frag <= n; frag += (frag < 64 ? 1 : 50)) {
            size_t len = frame(buf_c, sizeof(buf_c), msg, n, frag);
            CHECK_ROW(len == n + 5 * ((n + frag - 1) / frag), r->name);
            parse_whole(buf_c, len, &res_b);
            CHECK_ROW(res_b.rc == LG_OK && res_b.end == len, r->name);
            CHECK_ROW(same_hello(&res_a.h, &res_b.h), r->name);
            if (frag <= 3 || frag == 7 || frag == 16) {
                parse_steps(buf_c, len, 1, &res_b);
                CHECK_ROW(res_b.rc == LG_OK && res_b.at == len, r->name);
                CHECK_ROW(same_hello(&res_a.h, &res_b.h), r->name);
            }
        }
    }
}

/* ------------------------------------------------------------------------------------------ */
/* hello_end, early decisions, resumption.                                                    */

LG_TEST(hello_end_excludes_following_records)
{
    static const char raw[] = MIN_HELLO CCS "\x17\x03\x03\x00\x01\x00";
    parse_whole((const uint8_t *)raw, sizeof(raw) - 1, &res_a);
    CHECK_EQ_INT(res_a.rc, LG_OK);
    CHECK_EQ_INT(res_a.end, 50);
    parse_steps((const uint8_t *)raw, sizeof(raw) - 1, 1, &res_b);
    CHECK_EQ_INT(res_b.rc, LG_OK);
    CHECK_EQ_INT(res_b.at, 50); /* decided at the end of the hello's record */
    CHECK_EQ_INT(res_b.end, 50);
    /* The real hello followed by anything, even garbage. */
    memcpy(buf_c, hello_curl, sizeof(hello_curl));
    memset(buf_c + sizeof(hello_curl), 0xee, 100);
    parse_whole(buf_c, sizeof(hello_curl) + 100, &res_a);
    CHECK_EQ_INT(res_a.rc, LG_OK);
    CHECK_EQ_INT(res_a.end, sizeof(hello_curl));
}

/* The record completing the hello carries 3 more handshake bytes: hello_end is the record end. */
LG_TEST(hello_end_is_end_of_completing_record)
{
    static const char raw[] = "\x16\x03\x01\x00\x30"
                              "\x01\x00\x00\x29" BODY_HEAD "\x0b\x00\x00";
    parse_whole((const uint8_t *)raw, sizeof(raw) - 1, &res_a);
    CHECK_EQ_INT(res_a.rc, LG_OK);
    CHECK_EQ_INT(res_a.end, 53);
    parse_steps((const uint8_t *)raw, sizeof(raw) - 1, 1, &res_b);
    CHECK_EQ_INT(res_b.rc, LG_OK);
    CHECK_EQ_INT(res_b.at, 53); /* not before the record is whole */
    CHECK_EQ_INT(res_a.end, res_b.end);
}

/* Each decision is taken as soon as the byte that decides it arrives. */
LG_TEST(decisions_are_early)
{
#define EARLY(name, bytes, rc, at)                                                                 \
    {                                                                                              \
        name, bytes, sizeof(bytes) - 1, rc, at                                                     \
    }
    static const struct {
        const char *name, *bytes;
        size_t len;
        int rc;
        size_t at;
    } cases[] = {
        EARLY("not 0x16", "GET / HTTP/1.1\r\n", LG_DECLINED, 1),
        EARLY("major not 3", "\x16\x02\x00\x00\x05\x01\x00\x00\x01\x00", LG_DECLINED, 2),
        EARLY("record length 0", "\x16\x03\x01\x00\x00\x01\x00\x00\x01\x00", LG_ERROR, 5),
        EARLY("not a ClientHello", "\x16\x03\x01\x00\x10\x02\x00\x00\x0c\x03\x03", LG_ERROR, 6),
        EARLY("handshake too big", "\x16\x03\x01\x00\x10\x01\x00\x40\x00\x03\x03", LG_ERROR, 9),
        EARLY("interleaved", "\x16\x03\x01\x00\x04\x01\x00\x00\x29\x15\x03\x03\x00\x02", LG_ERROR,
              10),
        EARLY("second record bad major", "\x16\x03\x01\x00\x04\x01\x00\x00\x29\x16\x04\x03\x00",
              LG_ERROR, 11),
    };
#undef EARLY
    for (size_t i = 0; i < LG_ARRAY_SIZE(cases); i++) {
        parse_steps((const uint8_t *)cases[i].bytes, cases[i].len, 1, &res_a);
        CHECK_ROW(res_a.rc == cases[i].rc && res_a.at == cases[i].at, cases[i].name);
    }
}

LG_TEST(every_first_byte_but_0x16_declined)
{
    for (unsigned b = 0; b < 256; b++) {
        if (b == 0x16) continue;
        uint8_t raw[5] = {(uint8_t)b, 3, 1, 0, 45};
        parse_whole(raw, 1, &res_a);
        CHECK_EQ_INT(res_a.rc, LG_DECLINED);
        parse_whole(raw, sizeof(raw), &res_a);
        CHECK_EQ_INT(res_a.rc, LG_DECLINED);
    }
}

LG_TEST(every_major_version_but_3_declined)
{
    for (unsigned b = 0; b < 256; b++) {
        uint8_t raw[5] = {0x16, (uint8_t)b, 1, 0, 45};
        parse_whole(raw, 2, &res_a);
        CHECK_EQ_INT(res_a.rc, b == 3 ? LG_AGAIN : LG_DECLINED);
    }
}

LG_TEST(every_later_record_type_but_0x16_interleaved)
{
    for (unsigned b = 0; b < 256; b++) {
        uint8_t raw[10] = {0x16, 3, 1, 0, 4, 1, 0, 0, 0x29, (uint8_t)b};
        parse_whole(raw, sizeof(raw), &res_a);
        if (b == 0x16) {
            CHECK_EQ_INT(res_a.rc, LG_AGAIN);
        } else {
            CHECK_EQ_INT(res_a.rc, LG_ERROR);
            CHECK_EQ_INT(res_a.reason, LG_HELLO_E_INTERLEAVED);
        }
    }
}

/* After a result other than AGAIN, calling again (even with more bytes) gives the same. */
LG_TEST(result_is_stable_after_decision)
{
    static const char bad[] = "\x16\x03\x01\x00\x04\x01\x00\x00\x29" ALERT;
    lg_hello_t h;
    size_t end = 0;

    memcpy(buf_c, hello_openssl_alpn, sizeof(hello_openssl_alpn));
    memset(buf_c + sizeof(hello_openssl_alpn), 0x15, 64);
    lg_hello_parser_init(&parser);
    CHECK_EQ_INT(lg_hello_parse(&parser, buf_c, sizeof(hello_openssl_alpn), &res_a.h, &end), LG_OK);
    for (size_t extra = 0; extra <= 64; extra += 8) {
        end = 0;
        CHECK_EQ_INT(lg_hello_parse(&parser, buf_c, sizeof(hello_openssl_alpn) + extra, &h, &end),
                     LG_OK);
        CHECK_EQ_INT(end, sizeof(hello_openssl_alpn));
        CHECK(same_hello(&h, &res_a.h));
    }

    lg_hello_parser_init(&parser);
    CHECK_EQ_INT(lg_hello_parse(&parser, (const uint8_t *)bad, sizeof(bad) - 1, &h, NULL),
                 LG_ERROR);
    h.reason = 0;
    CHECK_EQ_INT(lg_hello_parse(&parser, (const uint8_t *)bad, sizeof(bad) - 1, &h, NULL),
                 LG_ERROR);
    CHECK_EQ_INT(h.reason, LG_HELLO_E_INTERLEAVED);

    lg_hello_parser_init(&parser);
    CHECK_EQ_INT(lg_hello_parse(&parser, (const uint8_t *)"\x16\x03\x01\x00\x05\x02", 6, &h, NULL),
                 LG_ERROR);
    h.reason = 0;
    CHECK_EQ_INT(
        lg_hello_parse(&parser, (const uint8_t *)"\x16\x03\x01\x00\x05\x02\x00", 7, &h, NULL),
        LG_ERROR);
    CHECK_EQ_INT(h.reason, LG_HELLO_E_NOT_HELLO);

    lg_hello_parser_init(&parser);
    CHECK_EQ_INT(lg_hello_parse(&parser, (const uint8_t *)"G", 1, &h, NULL), LG_DECLINED);
    CHECK_EQ_INT(lg_hello_parse(&parser, (const uint8_t *)"GE", 2, &h, NULL), LG_DECLINED);
}

LG_TEST(shrinking_len_is_an_error)
{
    lg_hello_t h;
    lg_hello_parser_init(&parser);
    CHECK_EQ_INT(lg_hello_parse(&parser, hello_curl, 100, &h, NULL), LG_AGAIN);
    CHECK_EQ_INT(lg_hello_parse(&parser, hello_curl, 99, &h, NULL), LG_ERROR);
    CHECK_EQ_INT(h.reason, LG_HELLO_E_MALFORMED);
}

LG_TEST(out_untouched_on_again_and_declined)
{
    lg_hello_t h, pristine;
    memset(&pristine, 0xa5, sizeof(pristine));
    memcpy(&h, &pristine, sizeof(h));
    lg_hello_parser_init(&parser);
    for (size_t k = 0; k < sizeof(hello_curl); k += 50) {
        CHECK_EQ_INT(lg_hello_parse(&parser, hello_curl, k, &h, NULL), LG_AGAIN);
    }
    CHECK(memcmp(&h, &pristine, sizeof(h)) == 0);
    lg_hello_parser_init(&parser);
    CHECK_EQ_INT(lg_hello_parse(&parser, (const uint8_t *)"SSH-", 4, &h, NULL), LG_DECLINED);
    CHECK(memcmp(&h, &pristine, sizeof(h)) == 0);
}

LG_TEST(empty_input_with_null_buffer)
{
    lg_hello_t h;
    lg_hello_parser_init(&parser);
    CHECK_EQ_INT(lg_hello_parse(&parser, NULL, 0, &h, NULL), LG_AGAIN);
    CHECK_EQ_INT(
        lg_hello_parse(&parser, hello_openssl_tls10, sizeof(hello_openssl_tls10), &h, NULL), LG_OK);
}

LG_TEST(null_hello_end_allowed)
{
    lg_hello_t h;
    lg_hello_parser_init(&parser);
    CHECK_EQ_INT(
        lg_hello_parse(&parser, hello_openssl_tls10, sizeof(hello_openssl_tls10), &h, NULL), LG_OK);
    CHECK(strcmp(h.sni, "old.test") == 0);
}

LG_TEST(reason_names_distinct)
{
    const char *names[LG_HELLO_E_DUP_EXT + 1];
    for (int i = 0; i <= LG_HELLO_E_DUP_EXT; i++) {
        names[i] = lg_hello_reason_name(i);
        CHECK(names[i] != NULL && names[i][0] != '\0');
        CHECK(strcmp(names[i], "unknown") != 0);
        for (int j = 0; j < i; j++)
            CHECK(strcmp(names[i], names[j]) != 0);
    }
    CHECK(strcmp(lg_hello_reason_name(-1), "unknown") == 0);
    CHECK(strcmp(lg_hello_reason_name(LG_HELLO_E_DUP_EXT + 1), "unknown") == 0);
    CHECK(strcmp(lg_hello_reason_name(LG_HELLO_E_MALFORMED), "malformed") == 0);
}

/* ------------------------------------------------------------------------------------------ */
/* Server name limits.                                                                        */

/* A name of `len` bytes made of labels of at most `label` bytes: "aaa.aaa...". */
static size_t make_name(char *dst, size_t len, size_t label, char letter)
{
    size_t run = 0;
    for (size_t i = 0; i < len; i++) {
        if (run == label && i + 1 < len) {
            dst[i] = '.';
            run = 0;
        } else {
            dst[i] = letter;
            run++;
        }
    }
    dst[len] = '\0';
    return len;
}

static void parse_sni(const char *name, size_t n, res_t *r)
{
    size_t len = frame_sni(name, n);
    parse_whole(buf_b, len, r);
}

LG_TEST(sni_253_ok_254_error)
{
    char name[300], lower[300];
    make_name(name, 253, 63, 'A');
    make_name(lower, 253, 63, 'a');
    parse_sni(name, 253, &res_a);
    CHECK_EQ_INT(res_a.rc, LG_OK);
    CHECK_EQ_INT(res_a.h.sni_len, 253);
    CHECK(strcmp(res_a.h.sni, lower) == 0);

    name[253] = '.'; /* 254 bytes with the trailing dot: 253 after it is dropped */
    parse_sni(name, 254, &res_a);
    CHECK_EQ_INT(res_a.rc, LG_OK);
    CHECK_EQ_INT(res_a.h.sni_len, 253);
    CHECK(strcmp(res_a.h.sni, lower) == 0);

    make_name(name, 254, 63, 'a');
    parse_sni(name, 254, &res_a);
    CHECK_EQ_INT(res_a.rc, LG_ERROR);
    CHECK_EQ_INT(res_a.reason, LG_HELLO_E_SNI);

    name[254] = '.';
    parse_sni(name, 255, &res_a);
    CHECK_EQ_INT(res_a.rc, LG_ERROR);
    CHECK_EQ_INT(res_a.reason, LG_HELLO_E_SNI);

    memset(name, 'a', 300); /* long names are refused without reading past the limit */
    parse_sni(name, 300, &res_a);
    CHECK_EQ_INT(res_a.reason, LG_HELLO_E_SNI);
}

LG_TEST(sni_label_63_ok_64_error)
{
    char name[100];
    memset(name, 'x', 63);
    memcpy(name + 63, ".test", 6);
    parse_sni(name, 68, &res_a);
    CHECK_EQ_INT(res_a.rc, LG_OK);
    CHECK_EQ_INT(res_a.h.sni_len, 68);
    CHECK(strcmp(res_a.h.sni, name) == 0);

    memset(name, 'x', 64);
    memcpy(name + 64, ".test", 6);
    parse_sni(name, 69, &res_a);
    CHECK_EQ_INT(res_a.rc, LG_ERROR);
    CHECK_EQ_INT(res_a.reason, LG_HELLO_E_SNI);

    memcpy(name, "test.", 5); /* last label of 64 */
    memset(name + 5, 'x', 64);
    parse_sni(name, 69, &res_a);
    CHECK_EQ_INT(res_a.reason, LG_HELLO_E_SNI);
    name[69] = '.'; /* trailing dot does not count toward the label */
    parse_sni(name, 70, &res_a);
    CHECK_EQ_INT(res_a.reason, LG_HELLO_E_SNI);
    parse_sni(name, 68, &res_a);
    CHECK_EQ_INT(res_a.rc, LG_OK);
}

/* Every byte value in a one-label name: only [A-Za-z0-9-] pass, and '-' not at an edge. */
LG_TEST(sni_every_byte_value)
{
    for (unsigned b = 0; b < 256; b++) {
        char name[] = "a?a.test";
        name[1] = (char)b;
        parse_sni(name, 8, &res_a);
        bool ldh = (b >= 'a' && b <= 'z') || (b >= 'A' && b <= 'Z') || (b >= '0' && b <= '9') ||
                   b == '-' || b == '.';
        CHECK_EQ_INT(res_a.rc, ldh ? LG_OK : LG_ERROR);
        if (ldh) {
            CHECK(res_a.h.sni[1] == (b >= 'A' && b <= 'Z' ? (char)(b + 32) : (char)b));
        } else {
            CHECK_EQ_INT(res_a.reason, LG_HELLO_E_SNI);
        }
    }
}

/* ------------------------------------------------------------------------------------------ */
/* Size limits.                                                                               */

/* A hello whose handshake message is exactly `total` bytes, padded with a padding extension
 * (type 21) after a server_name; written to buf_a, returns its length. */
static size_t make_padded_msg(size_t total)
{
    uint8_t exts[SCRATCH / 2];
    wr_t w = {exts, 0, sizeof(exts)};
    w_sni(&w, "big.test", 8);
    size_t base = make_msg(buf_a, sizeof(buf_a), 1, exts, w.n) + 4; /* + empty padding */
    if (total < base) abort();
    w_u16(&w, 21);
    w_u16(&w, total - base);
    w_fill(&w, 0, total - base);
    return make_msg(buf_a, sizeof(buf_a), 1, exts, w.n);
}

LG_TEST(handshake_max_ok_max_plus_1_too_big)
{
    size_t n = make_padded_msg(LG_HELLO_MAX_HANDSHAKE);
    CHECK_EQ_INT(n, LG_HELLO_MAX_HANDSHAKE);
    size_t len = frame(buf_c, sizeof(buf_c), buf_a, n, 16384 - 100); /* two records */
    parse_whole(buf_c, len, &res_a);
    CHECK_EQ_INT(res_a.rc, LG_OK);
    CHECK_EQ_INT(res_a.end, len);
    CHECK(strcmp(res_a.h.sni, "big.test") == 0);
    CHECK_EQ_INT(res_a.h.n_exts, 2);
    CHECK_EQ_INT(res_a.h.exts[1], 21);
    parse_steps(buf_c, len, 1, &res_b);
    CHECK(same_result(&res_a, &res_b));

    n = make_padded_msg(LG_HELLO_MAX_HANDSHAKE + 1);
    CHECK_EQ_INT(n, LG_HELLO_MAX_HANDSHAKE + 1);
    len = frame(buf_c, sizeof(buf_c), buf_a, n, 16384 - 100);
    parse_steps(buf_c, len, 1, &res_a);
    CHECK_EQ_INT(res_a.rc, LG_ERROR);
    CHECK_EQ_INT(res_a.reason, LG_HELLO_E_TOO_BIG);
    CHECK_EQ_INT(res_a.at, 9); /* refused from the handshake header alone */
}

/* A hello in 205 records of 80 bytes (the last shorter): raw = message + 205 * 5. */
LG_TEST(raw_max_ok_max_plus_1_too_big)
{
    size_t n = make_padded_msg(LG_HELLO_MAX_RAW - 205 * 5);
    size_t len = frame(buf_c, sizeof(buf_c), buf_a, n, 80);
    CHECK_EQ_INT(len, LG_HELLO_MAX_RAW);
    parse_whole(buf_c, len, &res_a);
    CHECK_EQ_INT(res_a.rc, LG_OK);
    CHECK_EQ_INT(res_a.end, LG_HELLO_MAX_RAW);
    parse_steps(buf_c, len, 1, &res_b);
    CHECK(same_result(&res_a, &res_b));

    n = make_padded_msg(LG_HELLO_MAX_RAW - 205 * 5 + 1);
    CHECK(n <= LG_HELLO_MAX_HANDSHAKE); /* only the raw limit is crossed */
    len = frame(buf_c, sizeof(buf_c), buf_a, n, 80);
    CHECK_EQ_INT(len, LG_HELLO_MAX_RAW + 1);
    parse_whole(buf_c, len, &res_a);
    CHECK_EQ_INT(res_a.rc, LG_ERROR);
    CHECK_EQ_INT(res_a.reason, LG_HELLO_E_TOO_BIG);
    parse_steps(buf_c, len, 1, &res_b);
    CHECK(same_result(&res_a, &res_b));
    CHECK_EQ_INT(res_b.at, len - 64); /* refused at the header of the record crossing it */
}

/* Tiny records: the record overhead alone crosses the raw limit long before the message ends. */
LG_TEST(raw_limit_one_byte_records)
{
    size_t n = make_padded_msg(4000);
    size_t len = frame(buf_c, sizeof(buf_c), buf_a, n, 1);
    parse_whole(buf_c, len, &res_a);
    CHECK_EQ_INT(res_a.rc, LG_ERROR);
    CHECK_EQ_INT(res_a.reason, LG_HELLO_E_TOO_BIG);
    n = make_padded_msg(LG_HELLO_MAX_RAW / 6);
    len = frame(buf_c, sizeof(buf_c), buf_a, n, 1);
    CHECK(len <= LG_HELLO_MAX_RAW);
    parse_whole(buf_c, len, &res_a);
    CHECK_EQ_INT(res_a.rc, LG_OK);
}

/* One record of exactly LG_HELLO_MAX_RECORD: a maximal hello and 256 bytes after it. */
LG_TEST(record_max_with_trailing_handshake_bytes)
{
    size_t n = make_padded_msg(LG_HELLO_MAX_HANDSHAKE);
    memset(buf_a + n, 0x0b, LG_HELLO_MAX_RECORD - n);
    size_t len = frame(buf_c, sizeof(buf_c), buf_a, LG_HELLO_MAX_RECORD, LG_HELLO_MAX_RECORD);
    CHECK_EQ_INT(len, LG_HELLO_MAX_RECORD + 5);
    parse_whole(buf_c, len, &res_a);
    CHECK_EQ_INT(res_a.rc, LG_OK);
    CHECK_EQ_INT(res_a.end, len);
    parse_steps(buf_c, len, 1, &res_b);
    CHECK(same_result(&res_a, &res_b));
}

/* ------------------------------------------------------------------------------------------ */
/* Lists longer than their arrays are kept up to the array size and flagged.                  */

LG_TEST(ciphers_300_truncated_to_256)
{
    size_t n = make_msg(buf_a, sizeof(buf_a), 300, NULL, 0);
    size_t len = frame(buf_c, sizeof(buf_c), buf_a, n, n);
    parse_whole(buf_c, len, &res_a);
    CHECK_EQ_INT(res_a.rc, LG_OK);
    CHECK_EQ_INT(res_a.h.n_ciphers, LG_HELLO_MAX_CIPHERS);
    CHECK(res_a.h.ciphers_truncated);
    CHECK_EQ_INT(res_a.h.ciphers[0], 0x1301);
    CHECK_EQ_INT(res_a.h.ciphers[255], 0x1301 + 255);

    n = make_msg(buf_a, sizeof(buf_a), 256, NULL, 0); /* exactly the capacity */
    len = frame(buf_c, sizeof(buf_c), buf_a, n, n);
    parse_whole(buf_c, len, &res_a);
    CHECK_EQ_INT(res_a.h.n_ciphers, 256);
    CHECK(!res_a.h.ciphers_truncated);
}

static size_t frame_ext_list(const uint8_t *exts, size_t n)
{
    size_t m = make_msg(buf_a, sizeof(buf_a), 1, exts, n);
    return frame(buf_b, sizeof(buf_b), buf_a, m, 16000);
}

/* 200 distinct extensions with server_name as the 150th: extracted though not listed. */
LG_TEST(exts_200_truncated_to_128_and_still_parsed)
{
    uint8_t exts[4096];
    wr_t w = {exts, 0, sizeof(exts)};
    for (size_t i = 0; i < 200; i++) {
        if (i == 149) {
            w_sni(&w, "late.test", 9);
        } else {
            w_ext(&w, 0x1000 + i, NULL, 0);
        }
    }
    parse_whole(buf_b, frame_ext_list(exts, w.n), &res_a);
    CHECK_EQ_INT(res_a.rc, LG_OK);
    CHECK_EQ_INT(res_a.h.n_exts, LG_HELLO_MAX_EXTS);
    CHECK(res_a.h.exts_truncated);
    CHECK_EQ_INT(res_a.h.exts[127], 0x1000 + 127);
    CHECK(strcmp(res_a.h.sni, "late.test") == 0);

    w.n = 0; /* a duplicate beyond the kept 128 is still found */
    for (size_t i = 0; i < 200; i++)
        w_ext(&w, 0x1000 + i, NULL, 0);
    w_ext(&w, 0x1000 + 199, NULL, 0);
    parse_whole(buf_b, frame_ext_list(exts, w.n), &res_a);
    CHECK_EQ_INT(res_a.rc, LG_ERROR);
    CHECK_EQ_INT(res_a.reason, LG_HELLO_E_DUP_EXT);
}

/* A u16 list extension (groups, sigalgs) of `count` entries starting at `first`. */
static size_t w_u16_list_ext(wr_t *w, size_t type, size_t count, size_t first)
{
    w_u16(w, type);
    w_u16(w, 2 + 2 * count);
    w_u16(w, 2 * count);
    for (size_t i = 0; i < count; i++)
        w_u16(w, first + i);
    return w->n;
}

LG_TEST(groups_and_sigalgs_truncated)
{
    uint8_t exts[4096];
    wr_t w = {exts, 0, sizeof(exts)};
    w_u16_list_ext(&w, 10, 100, 0x100);
    w_u16_list_ext(&w, 13, 65, 0x400);
    parse_whole(buf_b, frame_ext_list(exts, w.n), &res_a);
    CHECK_EQ_INT(res_a.rc, LG_OK);
    CHECK_EQ_INT(res_a.h.n_groups, LG_HELLO_MAX_GROUPS);
    CHECK(res_a.h.groups_truncated);
    CHECK_EQ_INT(res_a.h.groups[63], 0x100 + 63);
    CHECK_EQ_INT(res_a.h.n_sigalgs, LG_HELLO_MAX_SIGALGS);
    CHECK(res_a.h.sigalgs_truncated);
    CHECK_EQ_INT(res_a.h.sigalgs[63], 0x400 + 63);

    w.n = 0; /* exactly at capacity: not truncated */
    w_u16_list_ext(&w, 10, 64, 0x100);
    w_u16_list_ext(&w, 13, 64, 0x400);
    parse_whole(buf_b, frame_ext_list(exts, w.n), &res_a);
    CHECK_EQ_INT(res_a.h.n_groups, 64);
    CHECK(!res_a.h.groups_truncated);
    CHECK_EQ_INT(res_a.h.n_sigalgs, 64);
    CHECK(!res_a.h.sigalgs_truncated);
}

LG_TEST(pointfmts_truncated)
{
    uint8_t exts[512];
    wr_t w = {exts, 0, sizeof(exts)};
    w_u16(&w, 11);
    w_u16(&w, 1 + 255);
    w_u8(&w, 255);
    for (size_t i = 0; i < 255; i++)
        w_u8(&w, i);
    parse_whole(buf_b, frame_ext_list(exts, w.n), &res_a);
    CHECK_EQ_INT(res_a.rc, LG_OK);
    CHECK_EQ_INT(res_a.h.n_pointfmts, LG_HELLO_MAX_POINTFMTS);
    CHECK(res_a.h.pointfmts_truncated);
    CHECK_EQ_INT(res_a.h.pointfmts[15], 15);
}

/* supported_versions of 254 bytes (the client-form maximum, 127 entries) is kept up to 16. */
LG_TEST(versions_254_bytes_truncated)
{
    uint8_t exts[512];
    wr_t w = {exts, 0, sizeof(exts)};
    w_u16(&w, 43);
    w_u16(&w, 1 + 254);
    w_u8(&w, 254);
    for (size_t i = 0; i < 127; i++)
        w_u16(&w, 0x0304 - i);
    parse_whole(buf_b, frame_ext_list(exts, w.n), &res_a);
    CHECK_EQ_INT(res_a.rc, LG_OK);
    CHECK_EQ_INT(res_a.h.n_versions, LG_HELLO_MAX_VERSIONS);
    CHECK(res_a.h.versions_truncated);
    CHECK_EQ_INT(res_a.h.versions[0], 0x0304);
    CHECK_EQ_INT(res_a.h.versions[15], 0x0304 - 15);
}

/* 20 ALPN names, the first of the maximum 255 bytes: 16 kept in order, flag set. */
LG_TEST(alpn_20_names_truncated_to_16)
{
    uint8_t exts[8192];
    char name[256];
    wr_t w = {exts, 0, sizeof(exts)};
    size_t list = 0;
    for (size_t i = 0; i < 20; i++)
        list += 1 + (i == 0 ? 255 : 3);
    w_u16(&w, 16);
    w_u16(&w, 2 + list);
    w_u16(&w, list);
    memset(name, 'z', 255);
    w_u8(&w, 255);
    w_bytes(&w, name, 255);
    for (size_t i = 1; i < 20; i++) {
        snprintf(name, sizeof(name), "p%02zu", i);
        w_u8(&w, 3);
        w_bytes(&w, name, 3);
    }
    parse_whole(buf_b, frame_ext_list(exts, w.n), &res_a);
    CHECK_EQ_INT(res_a.rc, LG_OK);
    CHECK_EQ_INT(res_a.h.n_alpn, LG_HELLO_MAX_ALPN);
    CHECK(res_a.h.alpn_truncated);
    CHECK_EQ_INT(res_a.h.alpn_len[0], 255);
    CHECK(res_a.h.alpn_buf[res_a.h.alpn_off[0] + 254] == 'z');
    CHECK(alpn_is(&res_a.h, 1, "p01"));
    CHECK(alpn_is(&res_a.h, 15, "p15"));
}

LG_TEST(compression_255_methods_ok)
{
    wr_t w = {buf_c, 0, sizeof(buf_c)};
    w_bytes(&w,
            "\x03\x03" RANDOM32 "\x00"
            "\x00\x02\x13\x01",
            39);
    w_u8(&w, 255);
    w_fill(&w, 0, 255);
    parse_whole(buf_b, frame_body(buf_c, w.n), &res_a);
    CHECK_EQ_INT(res_a.rc, LG_OK);
    CHECK_EQ_INT(res_a.h.n_ciphers, 1);
}

/* GREASE values (RFC 8701) are kept in every list: fingerprinting filters them. */
LG_TEST(grease_values_kept)
{
    uint8_t exts[256];
    wr_t w = {exts, 0, sizeof(exts)};
    w_ext(&w, 0x0a0a, NULL, 0);
    w_u16_list_ext(&w, 10, 1, 0x2a2a);
    w_u16(&w, 43);
    w_u16(&w, 5);
    w_u8(&w, 4);
    w_u16(&w, 0x3a3a);
    w_u16(&w, 0x0304);
    w_ext(&w, 0xfafa, "\x00", 1);
    parse_whole(buf_b, frame_ext_list(exts, w.n), &res_a);
    CHECK_EQ_INT(res_a.rc, LG_OK);
    CHECK_EQ_INT(res_a.h.n_exts, 4);
    CHECK_EQ_INT(res_a.h.exts[0], 0x0a0a);
    CHECK_EQ_INT(res_a.h.exts[3], 0xfafa);
    CHECK_EQ_INT(res_a.h.groups[0], 0x2a2a);
    CHECK_EQ_INT(res_a.h.versions[0], 0x3a3a);
    CHECK_EQ_INT(res_a.h.n_versions, 2);
}

/* ------------------------------------------------------------------------------------------ */
/* Corruption and truncation of real hellos.                                                  */

/* Offset in a handshake message just past the compression methods (where extensions start). */
static size_t comp_end_of(const uint8_t *msg)
{
    size_t sid = msg[4 + 34];
    size_t ciphers = ((size_t)msg[4 + 35 + sid] << 8) | msg[4 + 36 + sid];
    return 4 + 35 + sid + 2 + ciphers + 1 + msg[4 + 37 + sid + ciphers];
}

/*
 * Every value of each record-length byte (3, 4) and handshake-length byte (6, 7, 8) of each
 * real hello: never DECLINED, never a crash, the same byte by byte. Alone, the buffer gives
 * LG_ERROR or LG_AGAIN (a longer length waits for bytes that never came). With an alert record
 * after it (the client gave up), every shorter record length and every changed handshake length
 * ends in LG_ERROR, and a longer record length waits or fails.
 * Two exceptions are valid hellos by the rules and pinned as such: a handshake length that ends
 * exactly after the compression methods (a hello without extensions, the rest of the record
 * skipped), and a record length that takes in 1..7 alert bytes (bytes after the hello in the
 * record that completes it are not examined).
 */
LG_TEST(length_field_corruption)
{
    static const size_t pos[] = {3, 4, 6, 7, 8};
    const size_t alert_len = sizeof(ALERT) - 1;
    for (size_t i = 0; i < LG_ARRAY_SIZE(reals); i++) {
        const real_t *r = &reals[i];
        const size_t orig_rec = r->len - 5;
        const size_t no_ext_len = comp_end_of(r->bytes + 5) - 4;
        for (size_t p = 0; p < LG_ARRAY_SIZE(pos); p++) {
            for (unsigned v = 0; v < 256; v++) {
                if (v == r->bytes[pos[p]]) continue;
                memcpy(buf_c, r->bytes, r->len);
                buf_c[pos[p]] = (uint8_t)v;
                size_t rec = ((size_t)buf_c[3] << 8) | buf_c[4];
                size_t hs = ((size_t)buf_c[6] << 16) | ((size_t)buf_c[7] << 8) | buf_c[8];
                bool no_ext_hello = p >= 2 && hs == no_ext_len;

                parse_whole(buf_c, r->len, &res_a);
                if (no_ext_hello) {
                    CHECK_ROW(res_a.rc == LG_OK && res_a.h.n_exts == 0, r->name);
                } else {
                    CHECK_ROW(res_a.rc == LG_ERROR || res_a.rc == LG_AGAIN, r->name);
                }
                if (v % 17 == 0 || no_ext_hello) { /* byte by byte for a sample */
                    parse_steps(buf_c, r->len, 1, &res_b);
                    CHECK_ROW(same_result(&res_a, &res_b), r->name);
                }

                memcpy(buf_c + r->len, ALERT, alert_len);
                parse_whole(buf_c, r->len + alert_len, &res_a);
                if (no_ext_hello || (p < 2 && rec > orig_rec && rec <= orig_rec + alert_len)) {
                    CHECK_ROW(res_a.rc == LG_OK && res_a.end == 5 + rec, r->name);
                } else if (p >= 2 || rec < orig_rec) {
                    CHECK_ROW(res_a.rc == LG_ERROR, r->name);
                } else {
                    CHECK_ROW(res_a.rc == LG_ERROR || res_a.rc == LG_AGAIN, r->name);
                }
            }
        }
    }
}

/* Every byte of each real hello replaced by a few values: no crash, whole == byte by byte. */
LG_TEST(every_byte_corruption_consistent)
{
    static const uint8_t vals[] = {0x00, 0x01, 0x16, 0x7f, 0x80, 0xff};
    for (size_t i = 0; i < LG_ARRAY_SIZE(reals); i++) {
        const real_t *r = &reals[i];
        for (size_t at = 0; at < r->len; at++) {
            for (size_t v = 0; v < sizeof(vals); v++) {
                memcpy(buf_c, r->bytes, r->len);
                buf_c[at] ^= vals[v];
                parse_whole(buf_c, r->len, &res_a);
                parse_steps(buf_c, r->len, 61, &res_b);
                CHECK_ROW(same_result(&res_a, &res_b), r->name);
                if (at >= 2) CHECK_ROW(res_a.rc != LG_DECLINED, r->name);
            }
        }
    }
}

/*
 * The handshake message cut at every length k, with the record and handshake lengths rewritten
 * to match (so the cut is inside the ClientHello's own length fields): LG_ERROR malformed at
 * every k, except exactly after the compression methods, where a hello without extensions is
 * valid.
 */
LG_TEST(truncated_inner_lengths)
{
    for (size_t i = 0; i < LG_ARRAY_SIZE(reals); i++) {
        const real_t *r = &reals[i];
        const uint8_t *msg = r->bytes + 5;
        size_t n = r->len - 5;
        size_t comp_end = comp_end_of(msg);
        for (size_t k = 4; k < n; k++) {
            memcpy(buf_a, msg, k);
            buf_a[1] = (uint8_t)((k - 4) >> 16);
            buf_a[2] = (uint8_t)((k - 4) >> 8);
            buf_a[3] = (uint8_t)(k - 4);
            size_t len = frame(buf_c, sizeof(buf_c), buf_a, k, k);
            parse_whole(buf_c, len, &res_a);
            if (k == comp_end) {
                CHECK_ROW(res_a.rc == LG_OK && res_a.h.n_exts == 0, r->name);
            } else {
                CHECK_ROW(res_a.rc == LG_ERROR && res_a.reason == LG_HELLO_E_MALFORMED, r->name);
            }
        }
    }
}

int main(void)
{
    LG_RUN(table_record_layer);
    LG_RUN(table_client_hello_fields);
    LG_RUN(table_extensions);
    LG_RUN(table_server_names);
    LG_RUN(real_hellos_whole);
    LG_RUN(real_hello_curl_fields);
    LG_RUN(real_hello_openssl_alpn_in_order);
    LG_RUN(real_hello_tls10_has_no_versions);
    LG_RUN(real_hello_without_sni);
    LG_RUN(real_hellos_byte_at_a_time);
    LG_RUN(real_hellos_every_prefix_again);
    LG_RUN(real_hellos_every_step_size);
    LG_RUN(real_hellos_split_two_records);
    LG_RUN(real_hellos_split_many_records);
    LG_RUN(hello_end_excludes_following_records);
    LG_RUN(hello_end_is_end_of_completing_record);
    LG_RUN(decisions_are_early);
    LG_RUN(every_first_byte_but_0x16_declined);
    LG_RUN(every_major_version_but_3_declined);
    LG_RUN(every_later_record_type_but_0x16_interleaved);
    LG_RUN(result_is_stable_after_decision);
    LG_RUN(shrinking_len_is_an_error);
    LG_RUN(out_untouched_on_again_and_declined);
    LG_RUN(empty_input_with_null_buffer);
    LG_RUN(null_hello_end_allowed);
    LG_RUN(reason_names_distinct);
    LG_RUN(sni_253_ok_254_error);
    LG_RUN(sni_label_63_ok_64_error);
    LG_RUN(sni_every_byte_value);
    LG_RUN(handshake_max_ok_max_plus_1_too_big);
    LG_RUN(raw_max_ok_max_plus_1_too_big);
    LG_RUN(raw_limit_one_byte_records);
    LG_RUN(record_max_with_trailing_handshake_bytes);
    LG_RUN(ciphers_300_truncated_to_256);
    LG_RUN(exts_200_truncated_to_128_and_still_parsed);
    LG_RUN(groups_and_sigalgs_truncated);
    LG_RUN(pointfmts_truncated);
    LG_RUN(versions_254_bytes_truncated);
    LG_RUN(alpn_20_names_truncated_to_16);
    LG_RUN(compression_255_methods_ok);
    LG_RUN(grease_values_kept);
    LG_RUN(length_field_corruption);
    LG_RUN(every_byte_corruption_consistent);
    LG_RUN(truncated_inner_lengths);
    LG_TEST_END();
}
