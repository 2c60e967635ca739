/*
 * lg_http.h — incremental parser for the head of an HTTP/1.x CONNECT request (pure core: no I/O,
 * no allocation).
 *
 * Reads what a client sends first on a `kind: 'connect'` listener — "CONNECT host:port HTTP/1.1",
 * header lines, an empty line — and extracts the target. Header values are checked for
 * well-formedness and counted against the limits, never interpreted.
 *
 * Use: the caller keeps every byte received since accept in one buffer of LG_HTTP_MAX_HEAD bytes
 * and calls lg_http_parse() with the whole buffer each time more bytes arrive (`len` only grows;
 * the buffer may move). The parser resumes where it stopped, so total work is linear in the bytes
 * received however they are split. Every byte is examined once, in order, and an error is
 * reported at the first byte that makes the head invalid (e.g. "GET " is 405 at the space, a
 * request line is 414 at its 8193rd byte) — never later, and never by reading ahead.
 *
 * Results:
 *   LG_OK     the head is complete; out->head_len bytes (leading empty lines, request line,
 *             header lines and the terminating empty line) belong to it. Bytes after head_len
 *             belong to the tunnel: they are not examined and the caller forwards them.
 *   LG_AGAIN  more bytes are needed. Never returned once len >= LG_HTTP_MAX_HEAD.
 *   LG_ERROR  the head is malformed or over a limit: out->status is the reply status and
 *             out->reason a short static description for logs and counters.
 * The result does not depend on how the bytes were split across calls; once a call returns
 * LG_OK or LG_ERROR, later calls return the same result and output.
 *
 * Grammar (RFC 9112 §2.2, §3, §5; RFC 9110 §9.3.6):
 *   head         = *4leading-eol request-line *100( field-line eol ) eol
 *   request-line = method SP target SP "HTTP/" DIGIT "." DIGIT eol
 *   eol          = CRLF / LF          (bare LF accepted, RFC 9112 §2.2; a CR not followed by LF
 *                                     is 400)
 *   field-line   = token ":" *( VCHAR / obs-text / SP / HTAB )   (RFC 9110 §5.5; no whitespace
 *                                     between name and colon, RFC 9112 §5.1; no obs-fold,
 *                                     RFC 9112 §5.2)
 *   target       = host ":" port / "[" IPv6 "]" ":" port          (authority-form, §3.2.3)
 *
 * Proxy-Authorization: the value of the first field with that name (any case) is recorded as
 * offsets into the buffer, surrounding spaces and tabs trimmed; it is not interpreted here
 * (lg_auth does), and a value longer than LG_HTTP_MAX_AUTH bytes only sets auth_too_long.
 *
 * Status codes:
 *   405  the method is a well-formed token but not exactly "CONNECT" (case-sensitive,
 *        RFC 9110 §9.1); decided at the space that ends it, so the rest of the line is not read.
 *   400  anything malformed: a method with a non-token byte, a target that is not authority-form
 *        (scheme, path, userinfo, zone id, missing or bad port, bad host), a version that is not
 *        "HTTP/" DIGIT "." DIGIT, a lone CR, NUL, any other control byte (HTAB in values
 *        excepted), whitespace before a colon, obs-fold, too many leading empty lines.
 *   414  the request line exceeds LG_HTTP_MAX_REQUEST_LINE bytes (excluding its line end).
 *   431  a header line exceeds LG_HTTP_MAX_HEADER_LINE bytes, all header lines together exceed
 *        LG_HTTP_MAX_HEADERS_BYTES (line ends excluded), or there are more than
 *        LG_HTTP_MAX_HEADER_LINES lines.
 *   505  "HTTP/x.y" other than 1.0 and 1.1; decided at the end of the request line.
 * When a byte both exceeds a length limit and is invalid, the limit wins (414/431): the limit
 * is checked before the byte's meaning. Length limits never cut a target short with 400: a long
 * target is 414 at the limit, or 400 at the space that ends it (a 300-byte host is 400).
 *
 * Target rules:
 *   - port: 1..5 decimal digits, value 1..65535, no leading zero ("0443" is 400: no client
 *     writes one, and one spelling per port keeps logs and policies unambiguous).
 *   - host: a DNS name (labels of letters, digits, '-' and '_', 1..63 bytes each, 1..253 bytes
 *     after dropping one trailing dot; stored lower-cased without the dot), a canonical dotted
 *     quad, or a bracketed IPv6 literal in any RFC 4291 §2.2 form (no zone id). A name whose last
 *     label is all digits or "0x" + hex digits must be a canonical dotted quad, else 400: "127.1",
 *     "2130706433", "0x7f.1", "0177.0.0.1", "1.2.3.4.5" would otherwise reach the resolver, which
 *     reads them as loopback or other addresses the policy never saw written.
 */
#ifndef LG_HTTP_H
#define LG_HTTP_H

#include "lg_common.h"

#define LG_HTTP_MAX_REQUEST_LINE  8192  /* bytes, excluding the line end → 414 */
#define LG_HTTP_MAX_HEADER_LINE   8192  /* bytes per header line, excluding the line end → 431 */
#define LG_HTTP_MAX_HEADERS_BYTES 32768 /* bytes of all header lines, line ends excluded → 431 */
#define LG_HTTP_MAX_HEADER_LINES  100   /* header lines → 431 */
#define LG_HTTP_MAX_LEADING_EOLS  4     /* empty lines ignored before the request line (§2.2) */
#define LG_HTTP_MAX_HOST          253   /* bytes of a DNS name without its trailing dot */
#define LG_HTTP_EOL_MAX           2     /* bytes of a line end (CRLF) */
#define LG_HTTP_MAX_AUTH                                                                           \
    1024 /* bytes of a Proxy-Authorization value (trimmed); more                                   \
            sets auth_too_long (the caller answers 407) */

/*
 * The largest head that can be valid or still incomplete, line ends included: the caller's
 * buffer size. A parser that has seen this many bytes has returned LG_OK or LG_ERROR.
 */
#define LG_HTTP_MAX_HEAD                                                                           \
    (LG_HTTP_MAX_LEADING_EOLS * LG_HTTP_EOL_MAX + LG_HTTP_MAX_REQUEST_LINE + LG_HTTP_EOL_MAX +     \
     LG_HTTP_MAX_HEADERS_BYTES + LG_HTTP_MAX_HEADER_LINES * LG_HTTP_EOL_MAX + LG_HTTP_EOL_MAX)

/* The parsed request. Written by lg_http_parse() on LG_OK and LG_ERROR only. */
typedef struct lg_http_req_s {
    int status;         /* on LG_ERROR: 400, 405, 414, 431 or 505; 0 on LG_OK */
    const char *reason; /* on LG_ERROR: short static text ("request line too long", ...) */
    char host[LG_HTTP_MAX_HOST + 1]; /* NUL-terminated: lower-cased name, or the IP literal text
                                        (lower-cased; brackets stripped for IPv6) */
    size_t host_len;
    bool host_is_ip; /* true: dial addr, no lookup */
    int family;      /* when host_is_ip: AF_INET (addr[0..3]) or AF_INET6 (addr[0..15]) */
    uint8_t addr[16];
    uint16_t port;     /* 1..65535 */
    int version_minor; /* 0 or 1 (HTTP/1.0, HTTP/1.1) */
    size_t head_len;   /* on LG_OK: bytes of the whole head, terminating empty line included */
    /* The first Proxy-Authorization field (name in any case; RFC 9110 §11.7.2), as offsets into
     * the caller's buffer (no copy): its value with surrounding SP/HTAB trimmed. Later fields of
     * that name are ignored. auth_too_long: the trimmed value exceeds LG_HTTP_MAX_AUTH bytes. */
    bool has_auth;
    bool auth_too_long;
    size_t auth_off, auth_len;
} lg_http_req_t;

/* Resumable parser state. Owned by the connection; no resources, nothing to free. */
typedef struct lg_http_parser_s {
    size_t pos;          /* bytes of the buffer examined so far */
    int state;           /* where the next byte goes (see lg_http.c) */
    int result;          /* LG_AGAIN until decided, then LG_OK or LG_ERROR */
    unsigned leading;    /* empty lines skipped before the request line */
    size_t line_len;     /* bytes of the current line, line end excluded */
    size_t header_bytes; /* bytes of all header lines so far, line ends excluded */
    unsigned header_lines;
    size_t method_len;
    bool method_mismatch; /* the method seen so far is not a prefix of "CONNECT" */
    size_t target_off;    /* offset of the target in the buffer */
    int target_state;     /* where the target's next byte goes */
    unsigned version_idx; /* bytes of "HTTP/D.D" matched so far */
    int major, minor;
    unsigned name_idx; /* bytes of the current field name matched against "proxy-authorization" */
    bool name_match;   /* the field name so far is a prefix of it */
    bool in_auth;      /* inside the value of the first Proxy-Authorization field */
    size_t value_off;  /* in_auth: offset of the first non-blank value byte (0: none yet) */
    size_t value_end;  /* in_auth: offset just past the last non-blank value byte */
    lg_http_req_t req; /* filled as the head is parsed, copied out when decided */
} lg_http_parser_t;

/* Prepare a parser for a new connection. */
void lg_http_parser_init(lg_http_parser_t *p);

/*
 * Parse the bytes received so far: `buf` starts with the first byte the client sent and holds
 * all `len` bytes since. Returns LG_OK, LG_AGAIN or LG_ERROR as described above and fills *out
 * on LG_OK and LG_ERROR (out is left untouched on LG_AGAIN). Reads only buf[p->pos .. len) and,
 * when the target's closing space arrives, the target bytes again. A `len` smaller than in an
 * earlier call is a caller bug: LG_ERROR with status 400.
 */
int lg_http_parse(lg_http_parser_t *p, const uint8_t *buf, size_t len, lg_http_req_t *out);

#endif /* LG_HTTP_H */
