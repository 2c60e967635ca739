/*
 * test_http.c — unit tests of the CONNECT request-head parser (src/lg_http.c).
 *
 * Covers: annotated good vectors (CRLF, bare LF, mixed line ends, leading empty lines, HTTP/1.0
 * and 1.1, names, canonical IPv4, IPv6 in full, compressed and embedded-IPv4 forms, bytes after
 * the head) and bad vectors for every status code (400, 405, 414, 431, 505); each bad vector ends
 * with the byte that decides it, and the test checks that one byte fewer is still LG_AGAIN (the
 * error is reported as early as possible). Every vector is also fed at every split point and one
 * byte at a time and must give the same result as one shot. Limits at exactly max and max + 1:
 * request line 8192/8193 (414), header line 8192/8193, header bytes 32768/32769, header lines
 * 100/101 (431), leading empty lines 4/5, LG_HTTP_MAX_HEAD. Plus repeat calls after a decision,
 * a shrinking buffer, and out untouched on LG_AGAIN. Proxy-Authorization: recorded as offsets
 * (any case, trimmed, the first of several), neighbours of its name ignored, the value limit at
 * 1024 and 1025 bytes.
 */
#include "../../src/lg_name.c"
#include "../../src/lg_cidr.c"
#include "../../src/lg_http.c"

#include <arpa/inet.h>
#include <stdio.h>
#include <stdlib.h>

#include "lg_test.h"

#define S(lit) lit, sizeof(lit) - 1

typedef struct good_s {
    const char *name;
    const char *head; /* the head, exactly: head_len must equal its length */
    size_t head_len;
    const char *tail; /* tunnel bytes sent with it */
    size_t tail_len;
    const char *host; /* expected host text */
    uint16_t port;
    int family; /* 0: a name; AF_INET / AF_INET6: an IP literal */
    int minor;
} good_t;

static const good_t good[] = {
    {"CRLF", S("CONNECT example.com:443 HTTP/1.1\r\nHost: example.com:443\r\n\r\n"), S(""),
     "example.com", 443, 0, 1},
    {"bare LF", S("CONNECT example.com:443 HTTP/1.1\nHost: example.com\n\n"), S(""), "example.com",
     443, 0, 1},
    {"mixed line ends", S("CONNECT a.test:80 HTTP/1.1\nA: 1\r\nB: 2\n\r\n"), S(""), "a.test", 80, 0,
     1},
    {"HTTP/1.0 without headers", S("CONNECT a.test:8080 HTTP/1.0\r\n\r\n"), S(""), "a.test", 8080,
     0, 0},
    {"no headers, bare LF", S("CONNECT a:1 HTTP/1.1\n\n"), S(""), "a", 1, 0, 1},
    {"case folded, trailing dot dropped", S("CONNECT ExAmple.COM.:443 HTTP/1.1\r\n\r\n"), S(""),
     "example.com", 443, 0, 1},
    {"underscores and hyphens", S("CONNECT _srv-1._tcp.x-y.test:443 HTTP/1.1\r\n\r\n"), S(""),
     "_srv-1._tcp.x-y.test", 443, 0, 1},
    {"hex-looking last label that is not 0x-hex", S("CONNECT a.0x1g:443 HTTP/1.1\r\n\r\n"), S(""),
     "a.0x1g", 443, 0, 1},
    {"hex word label", S("CONNECT cafe.beef:443 HTTP/1.1\r\n\r\n"), S(""), "cafe.beef", 443, 0, 1},
    {"numeric labels before a name", S("CONNECT 1.2.3.a:443 HTTP/1.1\r\n\r\n"), S(""), "1.2.3.a",
     443, 0, 1},
    {"port 65535", S("CONNECT a.test:65535 HTTP/1.1\r\n\r\n"), S(""), "a.test", 65535, 0, 1},
    {"IPv4", S("CONNECT 127.0.0.1:443 HTTP/1.1\r\n\r\n"), S(""), "127.0.0.1", 443, AF_INET, 1},
    {"IPv4 zeros", S("CONNECT 0.0.0.0:443 HTTP/1.1\r\n\r\n"), S(""), "0.0.0.0", 443, AF_INET, 1},
    {"IPv4 with trailing dot", S("CONNECT 10.1.2.3.:22 HTTP/1.1\r\n\r\n"), S(""), "10.1.2.3", 22,
     AF_INET, 1},
    {"IPv6 full", S("CONNECT [2001:0db8:0000:0000:0000:ff00:0042:8329]:443 HTTP/1.1\r\n\r\n"),
     S(""), "2001:0db8:0000:0000:0000:ff00:0042:8329", 443, AF_INET6, 1},
    {"IPv6 compressed", S("CONNECT [2001:db8::ff00:42:8329]:443 HTTP/1.1\r\n\r\n"), S(""),
     "2001:db8::ff00:42:8329", 443, AF_INET6, 1},
    {"IPv6 loopback", S("CONNECT [::1]:8443 HTTP/1.1\r\n\r\n"), S(""), "::1", 8443, AF_INET6, 1},
    {"IPv6 unspecified", S("CONNECT [::]:443 HTTP/1.1\r\n\r\n"), S(""), "::", 443, AF_INET6, 1},
    {"IPv6 upper case", S("CONNECT [FE80::A:B]:443 HTTP/1.1\r\n\r\n"), S(""), "fe80::a:b", 443,
     AF_INET6, 1},
    {"IPv6 mapped IPv4", S("CONNECT [::ffff:127.0.0.1]:443 HTTP/1.1\r\n\r\n"), S(""),
     "::ffff:127.0.0.1", 443, AF_INET6, 1},
    {"IPv6 NAT64", S("CONNECT [64:ff9b::192.0.2.1]:443 HTTP/1.1\r\n\r\n"), S(""),
     "64:ff9b::192.0.2.1", 443, AF_INET6, 1},
    {"IPv6 embedded IPv4, longest text",
     S("CONNECT [ffff:ffff:ffff:ffff:ffff:ffff:255.255.255.255]:65535 HTTP/1.1\r\n\r\n"), S(""),
     "ffff:ffff:ffff:ffff:ffff:ffff:255.255.255.255", 65535, AF_INET6, 1},
    {"four leading empty lines", S("\r\n\n\r\n\nCONNECT a.test:443 HTTP/1.1\r\n\r\n"), S(""),
     "a.test", 443, 0, 1},
    {"pipelined ClientHello after CRLF head", S("CONNECT a.test:443 HTTP/1.1\r\nHost: a\r\n\r\n"),
     S("\x16\x03\x01\x02\x00\x01\x00\x01\xfc\x03\x03"), "a.test", 443, 0, 1},
    {"pipelined after bare LF head", S("CONNECT a.test:443 HTTP/1.1\n\n"),
     S("\r\n\r\nGET / HTTP/1.1\r\n\r\n\x00"), "a.test", 443, 0, 1},
    {"pipelined bytes that look like a second head", S("CONNECT a.test:443 HTTP/1.1\r\n\r\n"),
     S("CONNECT b.test:443 HTTP/1.1\r\n\r\n"), "a.test", 443, 0, 1},
    {"header values: empty, tabs, colons, obs-text",
     S("CONNECT a.test:443 HTTP/1.1\r\nX-Empty:\r\nX-Tab:\tv\t\r\nX-Colon: a:b::c\r\n"
       "X-Bytes: \x80\xff\xc3\xa9\r\nProxy-Authorization: Basic Zm9vOmJhcg==\r\n\r\n"),
     S(""), "a.test", 443, 0, 1},
    {"header names: every tchar",
     S("CONNECT a.test:443 HTTP/1.1\r\n!#$%&'*+-.^_`|~09azAZ: v\r\n\r\n"), S(""), "a.test", 443, 0,
     1},
    {"curl's head",
     S("CONNECT example.com:443 HTTP/1.1\r\nHost: example.com:443\r\n"
       "User-Agent: curl/7.88.1\r\nProxy-Connection: Keep-Alive\r\n\r\n"),
     S(""), "example.com", 443, 0, 1},
};

typedef struct bad_s {
    const char *why;
    const char *bytes; /* the last byte is the one that decides */
    size_t len;
    int status;
    const char *reason;
} bad_t;

static const bad_t bad[] = {
    /* 405: a well-formed method that is not CONNECT, decided at its space. */
    {"GET", S("GET "), 405, "method not CONNECT"},
    {"lower-case connect", S("connect "), 405, "method not CONNECT"},
    {"CONNECT prefix", S("CONNEC "), 405, "method not CONNECT"},
    {"CONNECT with a suffix", S("CONNECTX "), 405, "method not CONNECT"},
    {"HTTP/2 preface", S("PRI "), 405, "method not CONNECT"},
    {"extension method", S("M-SEARCH "), 405, "method not CONNECT"},
    {"after empty lines", S("\r\n\nPOST "), 405, "method not CONNECT"},
    /* 400: the method. */
    {"space first", S(" "), 400, "bad method"},
    {"TLS record", S("\x16"), 400, "bad method"},
    {"NUL in method", S("GE\x00"), 400, "NUL byte"},
    {"NUL first", S("\x00"), 400, "NUL byte"},
    {"bad method byte", S("GE("), 400, "bad method"},
    {"tab after method", S("CONNECT\t"), 400, "bad method"},
    {"no target (CR)", S("CONNECT\r"), 400, "request line without target"},
    {"no target (LF)", S("CONNECT\n"), 400, "request line without target"},
    /* 400: leading empty lines. */
    {"five leading empty lines", S("\n\r\n\n\r\n\n"), 400,
     "too many empty lines before the request line"},
    {"five leading, fifth a CR", S("\n\n\n\n\r"), 400,
     "too many empty lines before the request line"},
    {"leading lone CR", S("\rC"), 400, "CR not followed by LF"},
    {"leading CR CR", S("\r\r"), 400, "CR not followed by LF"},
    /* 400: the target, byte classes. */
    {"origin-form", S("CONNECT /"), 400, "request target not in authority form"},
    {"absolute-form", S("CONNECT http:/"), 400, "request target not in authority form"},
    {"path after port", S("CONNECT a.test:443/"), 400, "request target not in authority form"},
    {"userinfo", S("CONNECT user@"), 400, "userinfo in request target"},
    {"userinfo with password", S("CONNECT u:p"), 400, "bad port"},
    {"zone id", S("CONNECT [fe80::1%"), 400, "zone id in request target"},
    {"empty host", S("CONNECT :"), 400, "bad request target"},
    {"unbracketed IPv6", S("CONNECT fe80::"), 400, "bad port"},
    {"bracket in a name", S("CONNECT a["), 400, "bad request target"},
    {"query", S("CONNECT a.test?"), 400, "bad request target"},
    {"non-ASCII host", S("CONNECT \xc3"), 400, "bad request target"},
    {"NUL in target", S("CONNECT a\x00"), 400, "NUL byte"},
    {"tab in target", S("CONNECT a\t"), 400, "bad request target"},
    {"letter in port", S("CONNECT a.test:44a"), 400, "bad port"},
    {"sign in port", S("CONNECT a.test:+"), 400, "bad port"},
    {"second colon", S("CONNECT a.test:443:"), 400, "bad port"},
    {"IPvFuture", S("CONNECT [v"), 400, "bad request target"},
    {"non-hex in IPv6", S("CONNECT [::g"), 400, "bad request target"},
    {"junk after ]", S("CONNECT [::1]x"), 400, "bad request target"},
    {"] in port", S("CONNECT [::1]:443]"), 400, "bad port"},
    {"no version (CR)", S("CONNECT a.test:443\r"), 400, "request line without version"},
    {"no version (LF)", S("CONNECT a.test:443\n"), 400, "request line without version"},
    /* 400: the target as a whole, at the space that ends it. */
    {"empty target", S("CONNECT  "), 400, "empty request target"},
    {"no port", S("CONNECT a.test "), 400, "missing port"},
    {"empty port", S("CONNECT a.test: "), 400, "bad port"},
    {"port 0", S("CONNECT a.test:0 "), 400, "bad port"},
    {"port with leading zero", S("CONNECT a.test:0443 "), 400, "bad port"},
    {"port 65536", S("CONNECT a.test:65536 "), 400, "bad port"},
    {"port of six digits", S("CONNECT a.test:100000 "), 400, "bad port"},
    {"empty label", S("CONNECT a..test:443 "), 400, "bad host"},
    {"leading dot", S("CONNECT .a.test:443 "), 400, "bad host"},
    {"two trailing dots", S("CONNECT a.test..:443 "), 400, "bad host"},
    {"only a dot", S("CONNECT .:443 "), 400, "bad host"},
    {"127.1", S("CONNECT 127.1:443 "), 400, "non-canonical IPv4 address"},
    {"2130706433", S("CONNECT 2130706433:443 "), 400, "non-canonical IPv4 address"},
    {"0x7f.1", S("CONNECT 0x7f.1:443 "), 400, "non-canonical IPv4 address"},
    {"0x7f000001", S("CONNECT 0x7f000001:443 "), 400, "non-canonical IPv4 address"},
    {"0X7F.0.0.1", S("CONNECT 1.0.0.0X7F:443 "), 400, "non-canonical IPv4 address"},
    {"0177.0.0.1", S("CONNECT 0177.0.0.1:443 "), 400, "non-canonical IPv4 address"},
    {"127.0.0.01", S("CONNECT 127.0.0.01:443 "), 400, "non-canonical IPv4 address"},
    {"1.2.3.4.5", S("CONNECT 1.2.3.4.5:443 "), 400, "non-canonical IPv4 address"},
    {"256.1.1.1", S("CONNECT 256.1.1.1:443 "), 400, "non-canonical IPv4 address"},
    {"127.0.1", S("CONNECT 127.0.1:443 "), 400, "non-canonical IPv4 address"},
    {"name ending in a number", S("CONNECT a.123:443 "), 400, "non-canonical IPv4 address"},
    {"name ending in 0x", S("CONNECT a.0x:443 "), 400, "non-canonical IPv4 address"},
    {"bracketed IPv4", S("CONNECT [1.2.3.4]:443 "), 400, "bad IPv6 literal"},
    {"two gaps", S("CONNECT [1::2::3]:443 "), 400, "bad IPv6 literal"},
    {"five hex digits", S("CONNECT [12345::]:443 "), 400, "bad IPv6 literal"},
    {"triple colon", S("CONNECT [:::1]:443 "), 400, "bad IPv6 literal"},
    {"seven groups", S("CONNECT [1:2:3:4:5:6:7]:443 "), 400, "bad IPv6 literal"},
    {"empty brackets", S("CONNECT []:443 "), 400, "bad IPv6 literal"},
    {"unclosed bracket", S("CONNECT [::1 "), 400, "bad host"},
    {"IPv6 without port", S("CONNECT [::1] "), 400, "missing port"},
    {"IPv6 with empty port", S("CONNECT [::1]: "), 400, "bad port"},
    {"non-canonical embedded IPv4", S("CONNECT [::ffff:127.0.0.01]:443 "), 400, "bad IPv6 literal"},
    /* 400: the version. */
    {"lower-case http", S("CONNECT a.test:443 h"), 400, "bad HTTP version"},
    {"two spaces before version", S("CONNECT a.test:443  "), 400, "bad HTTP version"},
    {"two-digit minor", S("CONNECT a.test:443 HTTP/1.10"), 400, "bad HTTP version"},
    {"comma", S("CONNECT a.test:443 HTTP/1,"), 400, "bad HTTP version"},
    {"letter major", S("CONNECT a.test:443 HTTP/a"), 400, "bad HTTP version"},
    {"truncated version", S("CONNECT a.test:443 HTTP/1.\r"), 400, "bad HTTP version"},
    {"trailing space", S("CONNECT a.test:443 HTTP/1.1 "), 400, "bad HTTP version"},
    {"NUL in version", S("CONNECT a.test:443 HTTP\x00"), 400, "NUL byte"},
    {"request line lone CR", S("CONNECT a.test:443 HTTP/1.1\rX"), 400, "CR not followed by LF"},
    {"request line CR CR", S("CONNECT a.test:443 HTTP/1.1\r\r"), 400, "CR not followed by LF"},
    {"HTTP/2.0 with lone CR", S("CONNECT a.test:443 HTTP/2.0\rX"), 400, "CR not followed by LF"},
    /* 505: HTTP/x.y other than 1.0 and 1.1, decided at the end of the line. */
    {"HTTP/2.0", S("CONNECT a.test:443 HTTP/2.0\r\n"), 505, "HTTP version not supported"},
    {"HTTP/1.2", S("CONNECT a.test:443 HTTP/1.2\n"), 505, "HTTP version not supported"},
    {"HTTP/0.9", S("CONNECT a.test:443 HTTP/0.9\r\n"), 505, "HTTP version not supported"},
    {"HTTP/3.1", S("CONNECT a.test:443 HTTP/3.1\n"), 505, "HTTP version not supported"},
    /* 400: header lines. */
    {"obs-fold as first line", S("CONNECT a.test:443 HTTP/1.1\r\n "), 400, "obs-fold header line"},
    {"obs-fold continuation", S("CONNECT a.test:443 HTTP/1.1\r\nA: b\r\n\t"), 400,
     "obs-fold header line"},
    {"space before colon", S("CONNECT a.test:443 HTTP/1.1\r\nHost "), 400,
     "whitespace before colon"},
    {"tab before colon", S("CONNECT a.test:443 HTTP/1.1\nHost\t"), 400, "whitespace before colon"},
    {"no colon (CR)", S("CONNECT a.test:443 HTTP/1.1\r\nHost\r"), 400, "header line without colon"},
    {"no colon (LF)", S("CONNECT a.test:443 HTTP/1.1\nHost\n"), 400, "header line without colon"},
    {"empty name", S("CONNECT a.test:443 HTTP/1.1\r\n:"), 400, "bad header name"},
    {"bad name byte", S("CONNECT a.test:443 HTTP/1.1\r\nA("), 400, "bad header name"},
    {"non-ASCII name", S("CONNECT a.test:443 HTTP/1.1\r\nH\xc3"), 400, "bad header name"},
    {"NUL in name", S("CONNECT a.test:443 HTTP/1.1\r\nHo\x00"), 400, "NUL byte"},
    {"NUL in value", S("CONNECT a.test:443 HTTP/1.1\r\nHost: a\x00"), 400, "NUL byte"},
    {"control byte in value", S("CONNECT a.test:443 HTTP/1.1\r\nHost: a\x01"), 400,
     "control byte in header value"},
    {"DEL in value", S("CONNECT a.test:443 HTTP/1.1\r\nHost: a\x7f"), 400,
     "control byte in header value"},
    {"lone CR in value", S("CONNECT a.test:443 HTTP/1.1\r\nHost: a\rb"), 400,
     "CR not followed by LF"},
    {"lone CR ending the head", S("CONNECT a.test:443 HTTP/1.1\r\nA: b\r\n\rX"), 400,
     "CR not followed by LF"},
    {"CR CR ending the head", S("CONNECT a.test:443 HTTP/1.1\r\n\r\r"), 400,
     "CR not followed by LF"},
};

static const char *host_of(const lg_http_req_t *r)
{
    return r->host;
}

/* Results must agree field by field (struct padding is not compared). */
static bool same_req(int rc_a, const lg_http_req_t *a, int rc_b, const lg_http_req_t *b)
{
    if (rc_a != rc_b) return false;
    if (rc_a == LG_ERROR) return a->status == b->status && a->reason == b->reason;
    if (rc_a != LG_OK) return true;
    return a->status == b->status && a->head_len == b->head_len && a->host_len == b->host_len &&
           strcmp(host_of(a), host_of(b)) == 0 && a->host_is_ip == b->host_is_ip &&
           a->family == b->family && memcmp(a->addr, b->addr, 16) == 0 && a->port == b->port &&
           a->version_minor == b->version_minor;
}

static int parse_once(const uint8_t *buf, size_t len, lg_http_req_t *out)
{
    lg_http_parser_t p;
    lg_http_parser_init(&p);
    return lg_http_parse(&p, buf, len, out);
}

/*
 * Feed buf one byte more per call. Returns the result and sets *at to the length at which it
 * was decided (len if never).
 */
static int parse_bytewise(const uint8_t *buf, size_t len, lg_http_req_t *out, size_t *at)
{
    lg_http_parser_t p;
    lg_http_parser_init(&p);
    *at = len;
    for (size_t n = 0; n <= len; n++) {
        int rc = lg_http_parse(&p, buf, n, out);
        if (rc != LG_AGAIN) {
            *at = n;
            /* Later calls repeat the decision. */
            lg_http_req_t again;
            int rc2 = lg_http_parse(&p, buf, len, &again);
            if (!same_req(rc, out, rc2, &again)) return -1;
            return rc;
        }
    }
    return LG_AGAIN;
}

/* Two calls, split at every point, must equal one shot. */
static bool splits_agree(const uint8_t *buf, size_t len)
{
    lg_http_req_t one, two;
    int rc_one = parse_once(buf, len, &one);
    for (size_t k = 0; k <= len; k++) {
        lg_http_parser_t p;
        lg_http_parser_init(&p);
        int rc = lg_http_parse(&p, buf, k, &two);
        if (rc == LG_AGAIN) rc = lg_http_parse(&p, buf, len, &two);
        if (!same_req(rc_one, &one, rc, &two)) {
            fprintf(stderr, "  split at %zu differs\n", k);
            return false;
        }
    }
    size_t at;
    int rc = parse_bytewise(buf, len, &two, &at);
    return same_req(rc_one, &one, rc, &two);
}

/* The buffer a good vector describes: head then tail, in one malloc'd block of exact size. */
static uint8_t *good_bytes(const good_t *g, size_t *len)
{
    *len = g->head_len + g->tail_len;
    uint8_t *b = malloc(*len ? *len : 1);
    if (b == NULL) abort();
    memcpy(b, g->head, g->head_len);
    memcpy(b + g->head_len, g->tail, g->tail_len);
    return b;
}

LG_TEST(test_good_vectors)
{
    for (size_t i = 0; i < LG_ARRAY_SIZE(good); i++) {
        const good_t *g = &good[i];
        size_t len;
        uint8_t *b = good_bytes(g, &len); /* exact size: ASan catches any read past len */
        lg_http_req_t r;
        int rc = parse_once(b, len, &r);
        bool ok = rc == LG_OK && r.status == 0 && r.head_len == g->head_len && r.port == g->port &&
                  r.version_minor == g->minor && r.host_len == strlen(g->host) &&
                  strcmp(r.host, g->host) == 0 && r.host_is_ip == (g->family != 0) &&
                  r.family == g->family;
        if (ok && g->family != 0) {
            uint8_t want[16] = {0};
            ok = inet_pton(g->family, g->host, want) == 1 && memcmp(want, r.addr, 16) == 0;
        }
        bool agree = splits_agree(b, len);
        /* The head alone is enough; one byte less is not. */
        lg_http_req_t h;
        bool exact = parse_once(b, g->head_len, &h) == LG_OK && h.head_len == g->head_len &&
                     parse_once(b, g->head_len - 1, &h) == LG_AGAIN;
        free(b);
        CHECK_ROW(ok, g->name);
        CHECK_ROW(agree, g->name);
        CHECK_ROW(exact, g->name);
    }
}

LG_TEST(test_bad_vectors)
{
    for (size_t i = 0; i < LG_ARRAY_SIZE(bad); i++) {
        const bad_t *v = &bad[i];
        uint8_t *b = malloc(v->len);
        CHECK(b != NULL);
        memcpy(b, v->bytes, v->len);
        lg_http_req_t r, shorter;
        int rc = parse_once(b, v->len, &r);
        int rc_short = parse_once(b, v->len - 1, &shorter);
        size_t at;
        int rc_byte = parse_bytewise(b, v->len, &shorter, &at);
        bool agree = splits_agree(b, v->len);
        free(b);
        CHECK_ROW(rc == LG_ERROR, v->why);
        if (r.status != v->status || strcmp(r.reason, v->reason) != 0) {
            fprintf(stderr, "  [%s] got %d \"%s\"\n", v->why, r.status, r.reason);
        }
        CHECK_ROW(r.status == v->status, v->why);
        CHECK_ROW(strcmp(r.reason, v->reason) == 0, v->why);
        CHECK_ROW(rc_short == LG_AGAIN, v->why); /* decided by the last byte, not before */
        CHECK_ROW(rc_byte == LG_ERROR && at == v->len, v->why);
        CHECK_ROW(agree, v->why);
    }
}

LG_TEST(test_bad_vectors_with_more_bytes)
{
    /* Bytes after the deciding one change nothing. */
    for (size_t i = 0; i < LG_ARRAY_SIZE(bad); i++) {
        const bad_t *v = &bad[i];
        uint8_t b[256];
        CHECK(v->len + 32 <= sizeof(b));
        memcpy(b, v->bytes, v->len);
        memcpy(b + v->len, "CONNECT a.test:443 HTTP/1.1\r\n\r\n", 32);
        lg_http_req_t r;
        CHECK_ROW(parse_once(b, v->len + 32, &r) == LG_ERROR, v->why);
        CHECK_ROW(r.status == v->status && strcmp(r.reason, v->reason) == 0, v->why);
    }
}

/* A growable test buffer. */
typedef struct tbuf_s {
    uint8_t *b;
    size_t len, cap;
} tbuf_t;

static void tb_put(tbuf_t *t, const void *p, size_t n)
{
    if (t->len + n > t->cap) {
        t->cap = (t->len + n) * 2;
        t->b = realloc(t->b, t->cap);
        if (t->b == NULL) abort();
    }
    memcpy(t->b + t->len, p, n);
    t->len += n;
}

static void tb_str(tbuf_t *t, const char *s)
{
    tb_put(t, s, strlen(s));
}

static void tb_fill(tbuf_t *t, char c, size_t n)
{
    for (size_t i = 0; i < n; i++)
        tb_put(t, &c, 1);
}

/* Parse t and return the result; *at gets the length at which it was decided (bytewise). */
static int tb_parse(const tbuf_t *t, lg_http_req_t *r, size_t *at)
{
    /* Copy to an exact-size block so ASan catches any read past len. */
    uint8_t *b = malloc(t->len ? t->len : 1);
    if (b == NULL) abort();
    memcpy(b, t->b, t->len);
    lg_http_req_t one;
    int rc_one = parse_once(b, t->len, &one);
    int rc = parse_bytewise(b, t->len, r, at);
    free(b);
    if (!same_req(rc_one, &one, rc, r)) return -1;
    return rc;
}

LG_TEST(test_request_line_limit)
{
    lg_http_req_t r;
    size_t at;
    tbuf_t t = {0};

    /* A target reaching exactly 8192 bytes of line: still LG_AGAIN; its CR is 400, not 414. */
    tb_str(&t, "CONNECT ");
    tb_fill(&t, 'a', LG_HTTP_MAX_REQUEST_LINE - 8);
    CHECK_EQ_INT(tb_parse(&t, &r, &at), LG_AGAIN);
    tb_str(&t, "\r");
    CHECK_EQ_INT(tb_parse(&t, &r, &at), LG_ERROR);
    CHECK_EQ_INT(r.status, 400);
    /* Byte 8193 of the line: 414 at once, without waiting for the line end. */
    t.len--;
    tb_str(&t, "a");
    CHECK_EQ_INT(tb_parse(&t, &r, &at), LG_ERROR);
    CHECK_EQ_INT(r.status, 414);
    CHECK_EQ_INT(at, LG_HTTP_MAX_REQUEST_LINE + 1);
    CHECK(strcmp(r.reason, "request line too long") == 0);

    /* A 10 KB request line: 414 at byte 8193. */
    t.len = 0;
    tb_str(&t, "CONNECT ");
    tb_fill(&t, 'b', 10240);
    tb_str(&t, ":443 HTTP/1.1\r\n\r\n");
    CHECK_EQ_INT(tb_parse(&t, &r, &at), LG_ERROR);
    CHECK_EQ_INT(r.status, 414);
    CHECK_EQ_INT(at, LG_HTTP_MAX_REQUEST_LINE + 1);

    /* A line of exactly 8192 bytes ending in the target's space: judged on its merits (400). */
    t.len = 0;
    tb_str(&t, "CONNECT ");
    tb_fill(&t, 'a', LG_HTTP_MAX_REQUEST_LINE - 9);
    tb_str(&t, " ");
    CHECK_EQ_INT(tb_parse(&t, &r, &at), LG_ERROR);
    CHECK_EQ_INT(r.status, 400);
    CHECK_EQ_INT(at, LG_HTTP_MAX_REQUEST_LINE);

    /* A method of 8191 bytes and its space: 8192 bytes, 405. One more byte of method: 414. */
    t.len = 0;
    tb_fill(&t, 'X', LG_HTTP_MAX_REQUEST_LINE - 1);
    tb_str(&t, " ");
    CHECK_EQ_INT(tb_parse(&t, &r, &at), LG_ERROR);
    CHECK_EQ_INT(r.status, 405);
    t.len = 0;
    tb_fill(&t, 'X', LG_HTTP_MAX_REQUEST_LINE);
    tb_str(&t, " ");
    CHECK_EQ_INT(tb_parse(&t, &r, &at), LG_ERROR);
    CHECK_EQ_INT(r.status, 414);
    CHECK_EQ_INT(at, LG_HTTP_MAX_REQUEST_LINE + 1);

    /* Leading empty lines do not count toward the request line. */
    t.len = 0;
    tb_str(&t, "\r\n\r\n\r\n\r\nCONNECT ");
    tb_fill(&t, 'a', LG_HTTP_MAX_REQUEST_LINE - 8);
    CHECK_EQ_INT(tb_parse(&t, &r, &at), LG_AGAIN);
    tb_str(&t, "a");
    CHECK_EQ_INT(tb_parse(&t, &r, &at), LG_ERROR);
    CHECK_EQ_INT(r.status, 414);
    CHECK_EQ_INT(at, 8 + LG_HTTP_MAX_REQUEST_LINE + 1);

    /* Invalid byte at position 8193: the limit is checked first. */
    t.len = 0;
    tb_str(&t, "CONNECT ");
    tb_fill(&t, 'a', LG_HTTP_MAX_REQUEST_LINE - 8);
    tb_str(&t, "/");
    CHECK_EQ_INT(tb_parse(&t, &r, &at), LG_ERROR);
    CHECK_EQ_INT(r.status, 414);
    free(t.b);
}

static const char rl[] = "CONNECT a.test:443 HTTP/1.1\r\n";

LG_TEST(test_header_line_limit)
{
    lg_http_req_t r;
    size_t at;
    tbuf_t t = {0};

    /* A header line of exactly 8192 bytes (CRLF excluded) is fine; with CRLF or bare LF. */
    for (int lf = 0; lf < 2; lf++) {
        t.len = 0;
        tb_str(&t, rl);
        tb_str(&t, "X: ");
        tb_fill(&t, 'v', LG_HTTP_MAX_HEADER_LINE - 3);
        tb_str(&t, lf ? "\n\n" : "\r\n\r\n");
        CHECK_EQ_INT(tb_parse(&t, &r, &at), LG_OK);
        CHECK_EQ_INT(r.head_len, t.len);
    }
    /* 8193: 431 at that byte. */
    t.len = 0;
    tb_str(&t, rl);
    tb_str(&t, "X: ");
    tb_fill(&t, 'v', LG_HTTP_MAX_HEADER_LINE - 2);
    tb_str(&t, "\r\n\r\n");
    CHECK_EQ_INT(tb_parse(&t, &r, &at), LG_ERROR);
    CHECK_EQ_INT(r.status, 431);
    CHECK(strcmp(r.reason, "header line too long") == 0);
    CHECK_EQ_INT(at, strlen(rl) + LG_HTTP_MAX_HEADER_LINE + 1);
    /* A long name counts the same. */
    t.len = 0;
    tb_str(&t, rl);
    tb_fill(&t, 'N', LG_HTTP_MAX_HEADER_LINE + 1);
    CHECK_EQ_INT(tb_parse(&t, &r, &at), LG_ERROR);
    CHECK_EQ_INT(r.status, 431);
    CHECK_EQ_INT(at, strlen(rl) + LG_HTTP_MAX_HEADER_LINE + 1);
    free(t.b);
}

LG_TEST(test_headers_bytes_limit)
{
    lg_http_req_t r;
    size_t at;
    tbuf_t t = {0};
    const size_t lines = LG_HTTP_MAX_HEADERS_BYTES / LG_HTTP_MAX_HEADER_LINE; /* 4 full lines */

    /* Exactly 32768 bytes of header lines: fine. */
    tb_str(&t, rl);
    for (size_t i = 0; i < lines; i++) {
        tb_str(&t, "X: ");
        tb_fill(&t, 'v', LG_HTTP_MAX_HEADER_LINE - 3);
        tb_str(&t, "\r\n");
    }
    size_t before_end = t.len;
    tb_str(&t, "\r\n");
    CHECK_EQ_INT(tb_parse(&t, &r, &at), LG_OK);
    CHECK_EQ_INT(r.head_len, t.len);
    /* One more byte (a fifth line "Y"): 431 at that byte. */
    t.len = before_end;
    tb_str(&t, "Y: z\r\n\r\n");
    CHECK_EQ_INT(tb_parse(&t, &r, &at), LG_ERROR);
    CHECK_EQ_INT(r.status, 431);
    CHECK(strcmp(r.reason, "headers too large") == 0);
    CHECK_EQ_INT(at, before_end + 1);

    /* The same total reached in the middle of a line. */
    t.len = 0;
    tb_str(&t, rl);
    for (size_t i = 0; i < 8; i++) {
        tb_str(&t, "X: ");
        tb_fill(&t, 'v', LG_HTTP_MAX_HEADERS_BYTES / 8 - 3);
        tb_str(&t, "\n");
    }
    before_end = t.len;
    tb_str(&t, "\n");
    CHECK_EQ_INT(tb_parse(&t, &r, &at), LG_OK);
    t.len = before_end - 1; /* drop the LF of the last line and extend it by one byte */
    tb_str(&t, "v\n\n");
    CHECK_EQ_INT(tb_parse(&t, &r, &at), LG_ERROR);
    CHECK_EQ_INT(r.status, 431);
    CHECK(strcmp(r.reason, "headers too large") == 0);
    CHECK_EQ_INT(at, before_end);
    free(t.b);
}

LG_TEST(test_header_lines_limit)
{
    lg_http_req_t r;
    size_t at;
    tbuf_t t = {0};

    tb_str(&t, rl);
    for (int i = 0; i < LG_HTTP_MAX_HEADER_LINES; i++)
        tb_str(&t, "A: b\r\n");
    size_t before_end = t.len;
    tb_str(&t, "\r\n");
    CHECK_EQ_INT(tb_parse(&t, &r, &at), LG_OK);
    CHECK_EQ_INT(r.head_len, t.len);
    t.len = before_end;
    tb_str(&t, "A: b\r\n\r\n");
    CHECK_EQ_INT(tb_parse(&t, &r, &at), LG_ERROR);
    CHECK_EQ_INT(r.status, 431);
    CHECK(strcmp(r.reason, "too many header lines") == 0);
    CHECK_EQ_INT(at, before_end + 1);
    free(t.b);
}

/*
 * The largest heads: every limit at its maximum at once. With CRLF everywhere and a valid
 * request line, the head is the largest that can be LG_OK; and no buffer of LG_HTTP_MAX_HEAD
 * bytes may leave the parser waiting.
 */
LG_TEST(test_max_head)
{
    lg_http_req_t r;
    size_t at;
    tbuf_t t = {0};
    const size_t per_line = LG_HTTP_MAX_HEADERS_BYTES / LG_HTTP_MAX_HEADER_LINES; /* 327 */
    const size_t extra = LG_HTTP_MAX_HEADERS_BYTES % LG_HTTP_MAX_HEADER_LINES;    /* 68 */

    tb_str(&t, "\r\n\r\n\r\n\r\n");
    tb_str(&t, rl);
    for (size_t i = 0; i < LG_HTTP_MAX_HEADER_LINES; i++) {
        tb_str(&t, "X:");
        tb_fill(&t, 'v', per_line - 2 + (i == 0 ? extra : 0));
        tb_str(&t, "\r\n");
    }
    tb_str(&t, "\r\n");
    CHECK_EQ_INT(tb_parse(&t, &r, &at), LG_OK);
    CHECK_EQ_INT(r.head_len, t.len);
    CHECK(t.len <= LG_HTTP_MAX_HEAD);
    CHECK_EQ_INT(t.len, LG_HTTP_MAX_HEAD - LG_HTTP_MAX_REQUEST_LINE + strlen(rl) - 2);

    /* Request line at its limit and still undecided, then the biggest header block: the parser
     * has decided by LG_HTTP_MAX_HEAD bytes whatever follows. */
    t.len = 0;
    tb_str(&t, "\r\n\r\n\r\n\r\n");
    tb_str(&t, "CONNECT ");
    tb_fill(&t, 'a', LG_HTTP_MAX_REQUEST_LINE - 8);
    while (t.len < LG_HTTP_MAX_HEAD)
        tb_str(&t, "a");
    CHECK_EQ_INT(tb_parse(&t, &r, &at), LG_ERROR);
    CHECK(at <= LG_HTTP_MAX_HEAD);
    free(t.b);
}

LG_TEST(test_leading_empty_lines_limit)
{
    static const char four[] = "\n\r\n\n\r\nCONNECT a:1 HTTP/1.1\n\n";
    lg_http_req_t r;
    CHECK_EQ_INT(parse_once((const uint8_t *)four, sizeof(four) - 1, &r), LG_OK);
    CHECK_EQ_INT(r.head_len, sizeof(four) - 1);
    static const char five[] = "\n\r\n\n\r\n\nCONNECT a:1 HTTP/1.1\n\n";
    CHECK_EQ_INT(parse_once((const uint8_t *)five, sizeof(five) - 1, &r), LG_ERROR);
    CHECK_EQ_INT(r.status, 400);
}

LG_TEST(test_name_and_label_sizes)
{
    lg_http_req_t r;
    size_t at;
    tbuf_t t = {0};
    char name[300];

    /* A label of 63 bytes is fine, 64 is not. */
    for (int extra = 0; extra < 2; extra++) {
        t.len = 0;
        tb_str(&t, "CONNECT ");
        tb_fill(&t, 'l', 63 + (size_t)extra);
        tb_str(&t, ".test:443 HTTP/1.1\r\n\r\n");
        CHECK_EQ_INT(tb_parse(&t, &r, &at), extra ? LG_ERROR : LG_OK);
        if (extra) CHECK(r.status == 400 && strcmp(r.reason, "bad host") == 0);
    }
    /* A name of 253 bytes (with or without a trailing dot) is fine, 254 is not. */
    for (size_t len = 253; len <= 254; len++) {
        for (int dot = 0; dot < 2; dot++) {
            size_t i = 0;
            while (i < len) { /* "aaaa...a.aaaa": labels of 50 bytes */
                name[i] = (i % 51 == 50 && i + 1 < len) ? '.' : 'a';
                i++;
            }
            if (dot) name[i++] = '.';
            name[i] = '\0';
            t.len = 0;
            tb_str(&t, "CONNECT ");
            tb_str(&t, name);
            tb_str(&t, ":443 HTTP/1.1\r\n\r\n");
            int rc = tb_parse(&t, &r, &at);
            CHECK_EQ_INT(rc, len == 253 ? LG_OK : LG_ERROR);
            if (rc == LG_OK) {
                CHECK_EQ_INT(r.host_len, 253);
                CHECK_EQ_INT(strlen(r.host), 253);
                CHECK(memcmp(r.host, name, 253) == 0);
            } else {
                CHECK_EQ_INT(r.status, 400);
            }
        }
    }
    free(t.b);
}

/* Every canonical-looking and non-canonical spelling of loopback, checked as CONNECT targets. */
LG_TEST(test_numeric_hosts)
{
    static const struct {
        const char *host;
        bool ok;
    } v[] = {
        {"127.0.0.1", true},
        {"127.1", false},
        {"127.0.1", false},
        {"2130706433", false},
        {"017700000001", false},
        {"0x7f000001", false},
        {"0x7f.0.0.1", false},
        {"0177.0.0.1", false},
        {"127.0.0.1.", true},
        {"127.000.0.1", false},
        {"0x7F.1", false},
        {"127.0.0.0x1", false},
        {"1.2.3.4.5", false},
        {"0", false},
        {"0x", false},
        {"a.0x10", false},
        {"a.b.1", false},
        {"1a.2", false},
        {"x.0xg", true},
        {"0.0.0.0", true},
        {"255.255.255.255", true},
    };
    for (size_t i = 0; i < LG_ARRAY_SIZE(v); i++) {
        char req[128];
        int n = snprintf(req, sizeof(req), "CONNECT %s:443 HTTP/1.1\r\n\r\n", v[i].host);
        lg_http_req_t r;
        int rc = parse_once((const uint8_t *)req, (size_t)n, &r);
        CHECK_ROW(rc == (v[i].ok ? LG_OK : LG_ERROR), v[i].host);
        if (!v[i].ok) CHECK_ROW(r.status == 400, v[i].host);
    }
}

LG_TEST(test_repeat_calls_and_caller_errors)
{
    static const char req[] = "CONNECT a.test:443 HTTP/1.1\r\n\r\nTUNNEL";
    lg_http_parser_t p;
    lg_http_req_t r;

    /* out is untouched while waiting. */
    lg_http_parser_init(&p);
    memset(&r, 0x5a, sizeof(r));
    CHECK_EQ_INT(lg_http_parse(&p, (const uint8_t *)req, 10, &r), LG_AGAIN);
    CHECK(r.status == 0x5a5a5a5a);
    /* Complete, then more bytes: the same answer, bytes after the head not examined. */
    CHECK_EQ_INT(lg_http_parse(&p, (const uint8_t *)req, sizeof(req) - 1, &r), LG_OK);
    CHECK_EQ_INT(r.head_len, sizeof(req) - 1 - 6);
    CHECK(r.reason == NULL && r.status == 0);
    CHECK_EQ_INT(p.pos, r.head_len);
    CHECK_EQ_INT(lg_http_parse(&p, (const uint8_t *)req, sizeof(req) - 1, &r), LG_OK);
    CHECK_EQ_INT(r.head_len, sizeof(req) - 1 - 6);

    /* A shrinking buffer is a caller bug: LG_ERROR 400. */
    lg_http_parser_init(&p);
    CHECK_EQ_INT(lg_http_parse(&p, (const uint8_t *)req, 12, &r), LG_AGAIN);
    CHECK_EQ_INT(lg_http_parse(&p, (const uint8_t *)req, 11, &r), LG_ERROR);
    CHECK_EQ_INT(r.status, 400);
    CHECK_EQ_INT(lg_http_parse(&p, (const uint8_t *)req, sizeof(req) - 1, &r), LG_ERROR);

    /* An empty buffer waits. */
    lg_http_parser_init(&p);
    CHECK_EQ_INT(lg_http_parse(&p, (const uint8_t *)req, 0, &r), LG_AGAIN);
}

LG_TEST(test_max_head_constant)
{
    /* 4 × 2 + 8192 + 2 + 32768 + 100 × 2 + 2 */
    CHECK_EQ_INT(LG_HTTP_MAX_HEAD, 41172);
}

/* Parse a whole head and return the request (LG_OK expected). */
static int auth_parse(const char *head, lg_http_req_t *r)
{
    lg_http_parser_t p;
    lg_http_parser_init(&p);
    return lg_http_parse(&p, (const uint8_t *)head, strlen(head), r);
}

typedef struct auth_row_s {
    const char *name;
    const char *head;
    bool has_auth;
    const char *value; /* expected trimmed value */
} auth_row_t;

LG_TEST(test_proxy_authorization)
{
    static const auth_row_t rows[] = {
        {"none", "CONNECT a:1 HTTP/1.1\r\nHost: a\r\n\r\n", false, ""},
        {"canonical", "CONNECT a:1 HTTP/1.1\r\nProxy-Authorization: Basic YTpi\r\n\r\n", true,
         "Basic YTpi"},
        {"any case, bare LF", "CONNECT a:1 HTTP/1.1\nPROXY-authorization: Basic YTpi\n\n", true,
         "Basic YTpi"},
        {"trimmed", "CONNECT a:1 HTTP/1.1\r\nProxy-Authorization: \t Basic  YTpi \t\r\n\r\n", true,
         "Basic  YTpi"},
        {"no space after colon", "CONNECT a:1 HTTP/1.1\r\nProxy-Authorization:Basic YTpi\r\n\r\n",
         true, "Basic YTpi"},
        {"empty value", "CONNECT a:1 HTTP/1.1\r\nProxy-Authorization:   \r\n\r\n", true, ""},
        {"first one wins",
         "CONNECT a:1 HTTP/1.1\r\nProxy-Authorization: Basic Zmlyc3Q6eA==\r\n"
         "Proxy-Authorization: Basic c2Vjb25kOng=\r\n\r\n",
         true, "Basic Zmlyc3Q6eA=="},
        {"prefix of the name", "CONNECT a:1 HTTP/1.1\r\nProxy-Authorizatio: Basic YTpi\r\n\r\n",
         false, ""},
        {"longer name", "CONNECT a:1 HTTP/1.1\r\nProxy-Authorizations: Basic YTpi\r\n\r\n", false,
         ""},
        {"Authorization is not it", "CONNECT a:1 HTTP/1.1\r\nAuthorization: Basic YTpi\r\n\r\n",
         false, ""},
        {"after other fields",
         "CONNECT a:1 HTTP/1.1\r\nHost: a\r\nUser-Agent: t\r\nproxy-authorization: X\r\n\r\n", true,
         "X"},
    };
    for (size_t i = 0; i < LG_ARRAY_SIZE(rows); i++) {
        lg_http_req_t r;
        const auth_row_t *row = &rows[i];
        CHECK_ROW(auth_parse(row->head, &r) == LG_OK, row->name);
        CHECK_ROW(r.has_auth == row->has_auth, row->name);
        CHECK_ROW(!r.auth_too_long, row->name);
        if (!row->has_auth) continue;
        CHECK_ROW(r.auth_len == strlen(row->value), row->name);
        CHECK_ROW(memcmp(row->head + r.auth_off, row->value, r.auth_len) == 0, row->name);
        /* Same result however the bytes are split. */
        CHECK_ROW(splits_agree((const uint8_t *)row->head, strlen(row->head)), row->name);
    }
}

LG_TEST(test_proxy_authorization_limit)
{
    /* A value of exactly LG_HTTP_MAX_AUTH bytes is recorded; one more sets auth_too_long (the
     * head itself is fine: the header line limit is 8192). Surrounding blanks do not count. */
    static char head[LG_HTTP_MAX_AUTH + 128];
    for (size_t extra = 0; extra <= 1; extra++) {
        int n = snprintf(head, sizeof(head), "CONNECT a:1 HTTP/1.1\r\nProxy-Authorization:  ");
        size_t off = (size_t)n;
        memset(head + off, 'x', LG_HTTP_MAX_AUTH + extra);
        snprintf(head + off + LG_HTTP_MAX_AUTH + extra, 16, "  \r\n\r\n");
        lg_http_req_t r;
        CHECK(auth_parse(head, &r) == LG_OK);
        CHECK(r.has_auth);
        CHECK_EQ_INT(r.auth_off, off);
        CHECK_EQ_INT(r.auth_len, LG_HTTP_MAX_AUTH + extra);
        CHECK(r.auth_too_long == (extra == 1));
    }
}

int main(void)
{
    LG_RUN(test_good_vectors);
    LG_RUN(test_bad_vectors);
    LG_RUN(test_bad_vectors_with_more_bytes);
    LG_RUN(test_request_line_limit);
    LG_RUN(test_header_line_limit);
    LG_RUN(test_headers_bytes_limit);
    LG_RUN(test_header_lines_limit);
    LG_RUN(test_max_head);
    LG_RUN(test_leading_empty_lines_limit);
    LG_RUN(test_name_and_label_sizes);
    LG_RUN(test_numeric_hosts);
    LG_RUN(test_repeat_calls_and_caller_errors);
    LG_RUN(test_max_head_constant);
    LG_RUN(test_proxy_authorization);
    LG_RUN(test_proxy_authorization_limit);
    LG_TEST_END();
}
