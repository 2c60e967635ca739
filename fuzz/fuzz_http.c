/*
 * fuzz_http.c — libFuzzer target for the CONNECT request-head parser (src/lg_http.c).
 *
 * Input: the bytes a client sends. If the first byte is 0xff, the rest is expanded first: the
 * escape 0xfe, n_hi, n_lo, c stands for byte c repeated n times (n up to 65535), so that heads
 * at and past every limit (8 KiB lines, 32 KiB of headers, LG_HTTP_MAX_HEAD) are reachable from
 * small inputs; the expansion stops at FUZZ_MAX_EXPANDED bytes.
 *
 * Checks, aborting on any failure:
 *   - one shot, one byte at a time, and pseudo-random chunks give the same result and output;
 *   - the decision is made at the earliest byte: feeding one byte less than where the
 *     byte-at-a-time run decided is LG_AGAIN, and bytes after it change nothing;
 *   - LG_AGAIN only while len < LG_HTTP_MAX_HEAD; on LG_ERROR the status is one of 400, 405,
 *     414, 431, 505 with a reason; a 414 or 431 sits exactly one byte past its limit, counted
 *     again from the raw bytes (check_limits); a 405 is a token other than CONNECT and a space;
 *   - on LG_OK: head_len <= len, the head alone is LG_OK and one byte less is LG_AGAIN; the head
 *     starts (after empty lines) with "CONNECT ", ends with an empty line, holds no NUL; port
 *     1..65535, version 1.0/1.1; the host is lower case, NUL-terminated, <= 253 bytes; an IP
 *     literal's address matches inet_pton(3) of its text; a name's last label is not numeric;
 *     the target text in the head matches host and port; the Proxy-Authorization offsets are
 *     those of the first such field, found again from the raw bytes, trimmed, flagged past 1024.
 */
#include "../src/lg_name.c"
#include "../src/lg_cidr.c"
#include "../src/lg_http.c"

#include <arpa/inet.h>
#include <stdio.h>
#include <stdlib.h>
#include <strings.h>

#define FUZZ_MAX_EXPANDED (LG_HTTP_MAX_HEAD + 4096) /* bytes after expansion */
#define FUZZ_ESCAPE_MODE  0xff                      /* first byte: expand escapes */
#define FUZZ_ESCAPE       0xfe                      /* escape: count (2 bytes BE), byte */

#define FUZZ_ASSERT(cond)                                                                          \
    do {                                                                                           \
        if (!(cond)) {                                                                             \
            fprintf(stderr, "fuzz_http: check failed at line %d: %s\n", __LINE__, #cond);          \
            abort();                                                                               \
        }                                                                                          \
    } while (0)

static bool same_req(int rc_a, const lg_http_req_t *a, int rc_b, const lg_http_req_t *b)
{
    if (rc_a != rc_b) return false;
    if (rc_a == LG_ERROR) return a->status == b->status && a->reason == b->reason;
    if (rc_a != LG_OK) return true;
    return a->status == b->status && a->head_len == b->head_len && a->host_len == b->host_len &&
           strcmp(a->host, b->host) == 0 && a->host_is_ip == b->host_is_ip &&
           a->family == b->family && memcmp(a->addr, b->addr, 16) == 0 && a->port == b->port &&
           a->version_minor == b->version_minor && a->has_auth == b->has_auth &&
           a->auth_too_long == b->auth_too_long && a->auth_off == b->auth_off &&
           a->auth_len == b->auth_len;
}

static int parse_once(const uint8_t *buf, size_t len, lg_http_req_t *out)
{
    lg_http_parser_t p;
    lg_http_parser_init(&p);
    return lg_http_parse(&p, buf, len, out);
}

/* Independent checks of an LG_OK result against the bytes of the head. */
static void check_ok(const uint8_t *b, size_t len, const lg_http_req_t *r)
{
    FUZZ_ASSERT(r->head_len > 0 && r->head_len <= len && r->head_len <= LG_HTTP_MAX_HEAD);
    FUZZ_ASSERT(r->status == 0 && r->reason == NULL);
    FUZZ_ASSERT(memchr(b, '\0', r->head_len) == NULL);
    FUZZ_ASSERT(b[r->head_len - 1] == '\n');
    FUZZ_ASSERT(r->port >= 1);
    FUZZ_ASSERT(r->version_minor == 0 || r->version_minor == 1);

    /* Skip leading empty lines, then "CONNECT " target " HTTP/1.x". */
    size_t i = 0;
    while (i < r->head_len && (b[i] == '\r' || b[i] == '\n'))
        i++;
    FUZZ_ASSERT(i <= 2 * LG_HTTP_MAX_LEADING_EOLS);
    FUZZ_ASSERT(r->head_len - i >= 8 && memcmp(b + i, "CONNECT ", 8) == 0);
    const uint8_t *t = b + i + 8;
    const uint8_t *sp = memchr(t, ' ', r->head_len - i - 8);
    FUZZ_ASSERT(sp != NULL);
    size_t tlen = (size_t)(sp - t);
    FUZZ_ASSERT((size_t)(b + r->head_len - sp) >= 9);
    FUZZ_ASSERT(memcmp(sp + 1, "HTTP/1.", 7) == 0 && sp[8] == '0' + r->version_minor);

    /* The target's port and host, as written. */
    char port[8];
    int n = snprintf(port, sizeof(port), ":%u", (unsigned)r->port);
    FUZZ_ASSERT(tlen > (size_t)n && memcmp(t + tlen - (size_t)n, port, (size_t)n) == 0);
    size_t hlen = tlen - (size_t)n;

    FUZZ_ASSERT(r->host_len <= LG_HTTP_MAX_HOST && strlen(r->host) == r->host_len);
    for (size_t k = 0; k < r->host_len; k++)
        FUZZ_ASSERT(!(r->host[k] >= 'A' && r->host[k] <= 'Z'));
    if (r->host_is_ip && r->family == AF_INET6) {
        FUZZ_ASSERT(hlen == r->host_len + 2 && t[0] == '[' && t[hlen - 1] == ']');
        FUZZ_ASSERT(strncasecmp((const char *)t + 1, r->host, r->host_len) == 0);
    } else {
        /* One trailing dot may have been dropped. */
        FUZZ_ASSERT(hlen == r->host_len || (hlen == r->host_len + 1 && t[hlen - 1] == '.'));
        FUZZ_ASSERT(strncasecmp((const char *)t, r->host, r->host_len) == 0);
    }
    if (r->host_is_ip) {
        uint8_t want[16] = {0};
        FUZZ_ASSERT(r->family == AF_INET || r->family == AF_INET6);
        FUZZ_ASSERT(inet_pton(r->family, r->host, want) == 1);
        FUZZ_ASSERT(memcmp(want, r->addr, 16) == 0);
    } else {
        FUZZ_ASSERT(r->family == 0);
        const char *dot = strrchr(r->host, '.');
        const char *last = dot ? dot + 1 : r->host;
        FUZZ_ASSERT(!lg_name_numeric_label(last, strlen(last)));
        uint8_t tmp[16];
        FUZZ_ASSERT(inet_pton(AF_INET, r->host, tmp) != 1);
    }

    /* Proxy-Authorization: inside the head, trimmed, flagged past its limit, and the value of
     * the first field of that name (checked again from the raw bytes). */
    if (r->has_auth) {
        FUZZ_ASSERT(r->auth_off <= r->head_len && r->auth_len <= r->head_len - r->auth_off);
        FUZZ_ASSERT(r->auth_too_long == (r->auth_len > LG_HTTP_MAX_AUTH));
        if (r->auth_len > 0) {
            FUZZ_ASSERT(b[r->auth_off] != ' ' && b[r->auth_off] != '\t');
            uint8_t last = b[r->auth_off + r->auth_len - 1];
            FUZZ_ASSERT(last != ' ' && last != '\t' && last != '\r' && last != '\n');
            FUZZ_ASSERT(memchr(b + r->auth_off, '\n', r->auth_len) == NULL);
        }
    } else {
        FUZZ_ASSERT(r->auth_off == 0 && r->auth_len == 0 && !r->auth_too_long);
    }
    {
        /* The first line after the request line whose name is proxy-authorization. */
        const uint8_t *lf = memchr(b + i, '\n', r->head_len - i);
        size_t k = (size_t)(lf - b) + 1;
        bool found = false;
        while (k < r->head_len && !found) {
            const uint8_t *e = memchr(b + k, '\n', r->head_len - k);
            size_t end = (size_t)(e - b);
            if (end - k >= 20 &&
                strncasecmp((const char *)b + k, "proxy-authorization:", 20) == 0) {
                found = true;
                size_t v = k + 20, w = end;
                if (w > v && b[w - 1] == '\r') w--;
                while (v < w && (b[v] == ' ' || b[v] == '\t'))
                    v++;
                while (w > v && (b[w - 1] == ' ' || b[w - 1] == '\t'))
                    w--;
                FUZZ_ASSERT(r->has_auth && r->auth_len == w - v);
                if (w > v) FUZZ_ASSERT(r->auth_off == v);
            }
            k = end + 1;
        }
        FUZZ_ASSERT(found == r->has_auth);
    }

    /* The head alone suffices; one byte less does not. */
    lg_http_req_t h;
    FUZZ_ASSERT(parse_once(b, r->head_len, &h) == LG_OK && same_req(LG_OK, r, LG_OK, &h));
    FUZZ_ASSERT(parse_once(b, r->head_len - 1, &h) == LG_AGAIN);
}

/* A count of the bytes of b[from, to) that are not CR or LF. */
static size_t content_bytes(const uint8_t *b, size_t from, size_t to)
{
    size_t n = 0;
    for (size_t i = from; i < to; i++)
        n += b[i] != '\r' && b[i] != '\n';
    return n;
}

/*
 * A length-limit error must sit exactly one byte past its limit, counted independently from the
 * raw bytes: the request line from its first byte, a header line from the LF before it, all
 * header bytes from the end of the request line, header lines by counting LFs.
 */
static void check_limits(const uint8_t *b, size_t at, const lg_http_req_t *r)
{
    if (r->status != 414 && r->status != 431) return;
    size_t start = 0;
    while (start < at && (b[start] == '\r' || b[start] == '\n'))
        start++;
    if (r->status == 414) {
        FUZZ_ASSERT(strcmp(r->reason, "request line too long") == 0);
        FUZZ_ASSERT(at - start == LG_HTTP_MAX_REQUEST_LINE + 1);
        FUZZ_ASSERT(content_bytes(b, start, at) == at - start);
        return;
    }
    if (r->status != 431) return;
    const uint8_t *lf = memchr(b + start, '\n', at - start);
    FUZZ_ASSERT(lf != NULL);
    size_t hstart = (size_t)(lf - b) + 1, lines = 0, line_start = hstart;
    for (size_t i = hstart; i + 1 < at; i++) {
        if (b[i] == '\n') {
            lines++;
            line_start = i + 1;
        }
    }
    if (strcmp(r->reason, "header line too long") == 0) {
        FUZZ_ASSERT(at - line_start == LG_HTTP_MAX_HEADER_LINE + 1);
        FUZZ_ASSERT(content_bytes(b, line_start, at) == at - line_start);
    } else if (strcmp(r->reason, "headers too large") == 0) {
        FUZZ_ASSERT(content_bytes(b, hstart, at) == LG_HTTP_MAX_HEADERS_BYTES + 1);
    } else {
        FUZZ_ASSERT(strcmp(r->reason, "too many header lines") == 0);
        FUZZ_ASSERT(lines == LG_HTTP_MAX_HEADER_LINES && line_start == at - 1);
    }
}

static void run(const uint8_t *b, size_t len)
{
    lg_http_req_t one, byte, chunk;
    int rc_one = parse_once(b, len, &one);
    FUZZ_ASSERT(rc_one == LG_OK || rc_one == LG_AGAIN || rc_one == LG_ERROR);

    /* One byte at a time; `at` = length at which it was decided. */
    lg_http_parser_t p;
    lg_http_parser_init(&p);
    size_t at = len;
    int rc_byte = LG_AGAIN;
    for (size_t n = 0; n <= len; n++) {
        rc_byte = lg_http_parse(&p, b, n, &byte);
        FUZZ_ASSERT(p.pos <= n);
        if (rc_byte != LG_AGAIN) {
            at = n;
            break;
        }
    }
    FUZZ_ASSERT(same_req(rc_one, &one, rc_byte, &byte));
    if (rc_byte != LG_AGAIN) {
        /* Repeat calls, with all the bytes, repeat the decision. */
        lg_http_req_t again;
        FUZZ_ASSERT(same_req(rc_byte, &byte, lg_http_parse(&p, b, len, &again), &again));
    }

    /* Pseudo-random chunks (a linear congruential generator seeded by the length). */
    lg_http_parser_init(&p);
    uint32_t seed = (uint32_t)len * 2654435761u + 1;
    size_t n = 0;
    int rc_chunk = LG_AGAIN;
    while (rc_chunk == LG_AGAIN) {
        seed = seed * 1103515245u + 12345u;
        size_t step = (seed >> 16) % 700;
        n = LG_MIN(len, n + step);
        rc_chunk = lg_http_parse(&p, b, n, &chunk);
        if (n == len) break;
    }
    FUZZ_ASSERT(same_req(rc_one, &one, rc_chunk, &chunk));

    if (rc_one == LG_AGAIN) {
        FUZZ_ASSERT(len < LG_HTTP_MAX_HEAD);
        return;
    }
    FUZZ_ASSERT(at >= 1 && at <= len && at <= LG_HTTP_MAX_HEAD);
    lg_http_req_t shorter;
    FUZZ_ASSERT(parse_once(b, at - 1, &shorter) == LG_AGAIN); /* earliest */
    if (rc_one == LG_OK) {
        FUZZ_ASSERT(at == one.head_len);
        check_ok(b, len, &one);
        return;
    }
    FUZZ_ASSERT(one.reason != NULL && one.reason[0] != '\0');
    FUZZ_ASSERT(one.status == 400 || one.status == 405 || one.status == 414 || one.status == 431 ||
                one.status == 505);
    if (one.status == 414) FUZZ_ASSERT(at > LG_HTTP_MAX_REQUEST_LINE);
    check_limits(b, at, &one);
    if (one.status == 405) {
        /* A token then a space: no line ends, NUL or spaces before it. */
        size_t i = 0;
        while (i < at && (b[i] == '\r' || b[i] == '\n'))
            i++;
        FUZZ_ASSERT(b[at - 1] == ' ');
        for (size_t k = i; k + 1 < at; k++)
            FUZZ_ASSERT(http_tchar(b[k]));
        FUZZ_ASSERT(!(at - 1 - i == 7 && memcmp(b + i, "CONNECT", 7) == 0));
    }
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    static uint8_t expanded[FUZZ_MAX_EXPANDED];
    const uint8_t *src = data;
    size_t len = size;

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
    run(b, len);
    free(b);
    return 0;
}
