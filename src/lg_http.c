/*
 * lg_http.c — incremental HTTP/1.x CONNECT request-head parser (pure core; see lg_http.h for the
 * grammar, the status codes and the limits).
 *
 * Shape: one byte-at-a-time state machine over the whole head, resumable at any byte. The parser
 * remembers how many bytes it has examined (pos) and in which state the next one lands, so a
 * call costs time proportional to the new bytes only. The only bytes read twice are the target's
 * (at most LG_HTTP_MAX_REQUEST_LINE), once more when the space that ends it arrives, to check its
 * structure as a whole and to fill in host, address and port.
 *
 * Invariants:
 *   - pos <= len of the latest call; nothing at or beyond len is ever read;
 *   - line_len <= LG_HTTP_MAX_REQUEST_LINE while in the request line, and
 *     <= LG_HTTP_MAX_HEADER_LINE while in a header line; header_bytes <=
 *     LG_HTTP_MAX_HEADERS_BYTES; header_lines <= LG_HTTP_MAX_HEADER_LINES; leading <=
 *     LG_HTTP_MAX_LEADING_EOLS — each is checked as the byte that would break it arrives, so the
 *     bytes examined before a decision never exceed LG_HTTP_MAX_HEAD;
 *   - result is LG_AGAIN until the head is decided; afterwards nothing changes.
 *
 * Early decisions: byte classes are checked as they arrive (a '/' in the target, a NUL, a space
 * before a colon are 400 at that byte); structural checks that need the whole target (host
 * syntax, numeric-looking names, port range) run at the space ending it; the version at the end
 * of the request line (505 vs 400 needs the line end).
 *
 * RFC sections: RFC 9112 §2.2 (line ends, leading empty lines), §3 (request line), §3.2.3
 * (authority-form), §5.1 (no whitespace before the colon), §5.2 (obs-fold refused); RFC 9110
 * §5.1 (field names are tokens), §5.5 (field values), §5.6.2 (tchar), §9.3.6 (CONNECT);
 * RFC 3986 §3.2.2 (host), RFC 1035 §2.3.4 (name and label sizes).
 */
#include "lg_http.h"
#include "lg_name.h"

#include <string.h>
#include <sys/socket.h> /* AF_INET, AF_INET6: constants only */

#include "lg_cidr.h"

#define HTTP_MAX_PORT_DIGIT 5 /* digits of a port: "65535" */

/* Where the next byte goes. */
enum {
    HS_LEAD = 0,    /* start of a line before the request line: an empty line or the method */
    HS_LEAD_CR,     /* after the CR of a leading empty line: LF must follow */
    HS_METHOD,      /* inside the method token */
    HS_TARGET,      /* inside the request target (target_state says where) */
    HS_VERSION,     /* inside "HTTP/D.D" (version_idx bytes matched), then its line end */
    HS_RL_CR,       /* after the CR ending the request line */
    HS_FIELD_START, /* start of a header line, or the empty line ending the head */
    HS_FIELD_NAME,  /* inside a field name */
    HS_FIELD_VALUE, /* after the colon, up to the line end */
    HS_FIELD_CR,    /* after the CR ending a header line */
    HS_END_CR,      /* after the CR of the empty line ending the head */
    HS_DONE,        /* decided: result holds LG_OK or LG_ERROR */
};

/* Where the target's next byte goes (byte-class checks only; structure is checked at its end). */
enum {
    TS_BEGIN = 0, /* first byte: '[' or a host-name byte */
    TS_NAME,      /* host name or dotted quad, until ':' */
    TS_V6,        /* inside "[...]" */
    TS_V6_END,    /* after ']': ':' must follow */
    TS_PORT,      /* after the ':' separating the port */
};

static const char http_connect[] = "CONNECT";
static const char http_version[] = "HTTP/";                 /* then DIGIT "." DIGIT */
static const char http_auth_name[] = "proxy-authorization"; /* RFC 9110 §11.7.2, lower case */

/* Offsets within "HTTP/D.D" (version_idx), after the five bytes of http_version. */
#define HTTP_V_MAJOR 5 /* the major digit */
#define HTTP_V_DOT   6 /* the '.' */
#define HTTP_V_MINOR 7 /* the minor digit; at 8 the line end is due */

/* tchar (RFC 9110 §5.6.2): "!#$%&'*+-.^_`|~", DIGIT, ALPHA. */
static bool http_tchar(unsigned char c)
{
    if ((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9')) return true;
    switch (c) {
    case '!':
    case '#':
    case '$':
    case '%':
    case '&':
    case '\'':
    case '*':
    case '+':
    case '-':
    case '.':
    case '^':
    case '_':
    case '`':
    case '|':
    case '~':
        return true;
    default:
        return false;
    }
}

/* A byte of a host name label: letters, digits, '-', '_'. */
static bool http_name_char(unsigned char c)
{
    return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') || c == '-' ||
           c == '_';
}

static bool http_hex(unsigned char c)
{
    return (c >= '0' && c <= '9') || (c >= 'a' && c <= 'f') || (c >= 'A' && c <= 'F');
}

static char http_lower(unsigned char c)
{
    return (char)((c >= 'A' && c <= 'Z') ? c - 'A' + 'a' : c);
}

void lg_http_parser_init(lg_http_parser_t *p)
{
    memset(p, 0, sizeof(*p));
    p->state = HS_LEAD;
    p->result = LG_AGAIN;
}

/* Record a decision of LG_ERROR. A NUL byte always gets its own reason. */
static int http_fail(lg_http_parser_t *p, int status, const char *reason)
{
    p->req.status = status;
    p->req.reason = reason;
    p->state = HS_DONE;
    p->result = LG_ERROR;
    return LG_ERROR;
}

static int http_bad(lg_http_parser_t *p, unsigned char c, const char *reason)
{
    return http_fail(p, 400, c == '\0' ? "NUL byte" : reason);
}

/* Port: 1..5 digits, no leading zero, 1..65535. Returns 0 or -EINVAL. */
static int http_port(const uint8_t *s, size_t n, uint16_t *port)
{
    unsigned long v = 0;
    if (n == 0 || n > HTTP_MAX_PORT_DIGIT || s[0] == '0') return -EINVAL;
    for (size_t i = 0; i < n; i++) {
        if (s[i] < '0' || s[i] > '9') return -EINVAL;
        v = v * 10 + (unsigned long)(s[i] - '0');
    }
    if (v > UINT16_MAX) return -EINVAL;
    *port = (uint16_t)v;
    return 0;
}

/*
 * A host that is not bracketed: a DNS name (lg_name's HOST grammar) or a canonical dotted quad.
 * Fills host, host_len and, for a dotted quad, host_is_ip/family/addr. Returns NULL or the reason
 * it is refused.
 */
static const char *http_host_name(const uint8_t *s, size_t n, lg_http_req_t *req)
{
    int len = lg_name_norm((const char *)s, n, LG_NAME_HOST, req->host, LG_HTTP_MAX_HOST);
    if (len == -LG_NAME_E_NUMERIC) {
        /* A numeric last label: only a canonical dotted quad is an address (inet_aton(3) would
         * read "127.1" or "0x7f.1" as one the policy never saw written). */
        uint8_t family;
        len = (int)(n > 0 && s[n - 1] == '.' ? n - 1 : n);
        if (lg_ip_parse((const char *)s, (size_t)len, &family, req->addr) != 0 ||
            family != LG_CIDR_V4) {
            return "non-canonical IPv4 address";
        }
        req->host_is_ip = true;
        req->family = AF_INET;
    } else if (len < 0) {
        return "bad host";
    }
    req->host[len] = '\0';
    req->host_len = (size_t)len;
    return NULL;
}

/* The whole target, authority-form (RFC 9112 §3.2.3). Returns NULL or the reason it is refused. */
static const char *http_target(const uint8_t *t, size_t n, lg_http_req_t *req)
{
    const uint8_t *port;
    size_t port_len;

    req->host_is_ip = false;
    req->family = 0;
    memset(req->addr, 0, sizeof(req->addr));
    if (n == 0) return "empty request target";
    if (t[0] == '[') {
        const uint8_t *close = memchr(t, ']', n);
        uint8_t family;
        if (close == NULL) return "bad host";
        size_t inner = (size_t)(close - t) - 1;
        if (lg_ip_parse((const char *)t + 1, inner, &family, req->addr) != 0 ||
            family != LG_CIDR_V6) {
            return "bad IPv6 literal";
        }
        for (size_t i = 0; i < inner; i++)
            req->host[i] = http_lower(t[1 + i]);
        req->host[inner] = '\0';
        req->host_len = inner;
        req->host_is_ip = true;
        req->family = AF_INET6;
        size_t rest = n - (inner + 2);
        if (rest == 0 || close[1] != ':') return "missing port";
        port = close + 2;
        port_len = rest - 1;
    } else {
        const uint8_t *colon = memchr(t, ':', n);
        if (colon == NULL) return "missing port";
        const char *why = http_host_name(t, (size_t)(colon - t), req);
        if (why != NULL) return why;
        port = colon + 1;
        port_len = n - (size_t)(colon - t) - 1;
    }
    if (http_port(port, port_len, &req->port) != 0) return "bad port";
    return NULL;
}

/* One byte of the target (not the space that ends it): byte-class checks. */
static int http_target_byte(lg_http_parser_t *p, unsigned char c)
{
    switch (p->target_state) {
    case TS_BEGIN:
        if (c == '[') {
            p->target_state = TS_V6;
            return LG_AGAIN;
        }
        if (http_name_char(c) || c == '.') {
            p->target_state = TS_NAME;
            return LG_AGAIN;
        }
        break;
    case TS_NAME:
        if (http_name_char(c) || c == '.') return LG_AGAIN;
        if (c == ':') {
            p->target_state = TS_PORT;
            return LG_AGAIN;
        }
        break;
    case TS_V6:
        if (http_hex(c) || c == ':' || c == '.') return LG_AGAIN;
        if (c == ']') {
            p->target_state = TS_V6_END;
            return LG_AGAIN;
        }
        break;
    case TS_V6_END:
        if (c == ':') {
            p->target_state = TS_PORT;
            return LG_AGAIN;
        }
        break;
    case TS_PORT:
        if (c >= '0' && c <= '9') return LG_AGAIN;
        return http_bad(p, c, c == '/' ? "request target not in authority form" : "bad port");
    }
    if (c == '/') return http_bad(p, c, "request target not in authority form");
    if (c == '@') return http_bad(p, c, "userinfo in request target");
    if (c == '%') return http_bad(p, c, "zone id in request target");
    return http_bad(p, c, "bad request target");
}

/* The line end of the request line has arrived: judge the version. */
static int http_request_line_done(lg_http_parser_t *p)
{
    if (p->major != 1 || p->minor > 1) return http_fail(p, 505, "HTTP version not supported");
    p->req.version_minor = p->minor;
    p->state = HS_FIELD_START;
    return LG_AGAIN;
}

/* Account for one byte of a header line; LG_ERROR (431) if it breaks a limit. */
static int http_field_byte(lg_http_parser_t *p)
{
    if (++p->line_len > LG_HTTP_MAX_HEADER_LINE) {
        return http_fail(p, 431, "header line too long");
    }
    if (++p->header_bytes > LG_HTTP_MAX_HEADERS_BYTES) {
        return http_fail(p, 431, "headers too large");
    }
    return LG_AGAIN;
}

/* The line holding the first Proxy-Authorization field has ended: record its trimmed value. */
static void http_auth_done(lg_http_parser_t *p)
{
    p->in_auth = false;
    p->req.has_auth = true;
    p->req.auth_off = p->value_end == 0 ? 0 : p->value_off;
    p->req.auth_len = p->value_end == 0 ? 0 : p->value_end - p->value_off;
    p->req.auth_too_long = p->req.auth_len > LG_HTTP_MAX_AUTH;
}

/* Feed one byte at offset `pos` of `buf`. Returns LG_AGAIN to continue, or the decision. */
static int http_byte(lg_http_parser_t *p, const uint8_t *buf, size_t pos)
{
    unsigned char c = buf[pos];
    bool eol = c == '\r' || c == '\n';

    switch (p->state) {
    case HS_LEAD:
        if (eol) {
            if (p->leading == LG_HTTP_MAX_LEADING_EOLS) {
                return http_bad(p, c, "too many empty lines before the request line");
            }
            if (c == '\r') {
                p->state = HS_LEAD_CR;
            } else {
                p->leading++;
            }
            return LG_AGAIN;
        }
        if (!http_tchar(c)) return http_bad(p, c, "bad method");
        p->line_len = 1;
        p->method_len = 1;
        p->method_mismatch = c != (unsigned char)http_connect[0];
        p->state = HS_METHOD;
        return LG_AGAIN;

    case HS_LEAD_CR:
        if (c != '\n') return http_bad(p, c, "CR not followed by LF");
        p->leading++;
        p->state = HS_LEAD;
        return LG_AGAIN;

    case HS_METHOD:
    case HS_TARGET:
    case HS_VERSION:
        if (!eol && ++p->line_len > LG_HTTP_MAX_REQUEST_LINE) {
            return http_fail(p, 414, "request line too long");
        }
        break;

    case HS_RL_CR:
        if (c != '\n') return http_bad(p, c, "CR not followed by LF");
        return http_request_line_done(p);

    case HS_FIELD_START:
        if (c == '\r') {
            p->state = HS_END_CR;
            return LG_AGAIN;
        }
        if (c == '\n') return LG_OK;
        if (++p->header_lines > LG_HTTP_MAX_HEADER_LINES) {
            return http_fail(p, 431, "too many header lines");
        }
        p->line_len = 0;
        if (http_field_byte(p) != LG_AGAIN) return LG_ERROR;
        if (c == ' ' || c == '\t') return http_bad(p, c, "obs-fold header line");
        if (!http_tchar(c)) return http_bad(p, c, "bad header name");
        p->name_idx = 1;
        p->name_match = http_lower(c) == http_auth_name[0];
        p->state = HS_FIELD_NAME;
        return LG_AGAIN;

    case HS_FIELD_NAME:
        if (eol) return http_bad(p, c, "header line without colon");
        if (http_field_byte(p) != LG_AGAIN) return LG_ERROR;
        if (c == ':') {
            p->state = HS_FIELD_VALUE;
            p->in_auth =
                p->name_match && p->name_idx == sizeof(http_auth_name) - 1 && !p->req.has_auth;
            p->value_off = p->value_end = 0;
            return LG_AGAIN;
        }
        if (c == ' ' || c == '\t') return http_bad(p, c, "whitespace before colon");
        if (!http_tchar(c)) return http_bad(p, c, "bad header name");
        if (p->name_match) {
            p->name_match = p->name_idx < sizeof(http_auth_name) - 1 &&
                            http_lower(c) == http_auth_name[p->name_idx];
            p->name_idx++;
        }
        return LG_AGAIN;

    case HS_FIELD_VALUE:
        if (eol) {
            if (p->in_auth) http_auth_done(p);
            p->state = c == '\r' ? HS_FIELD_CR : HS_FIELD_START;
            return LG_AGAIN;
        }
        if (http_field_byte(p) != LG_AGAIN) return LG_ERROR;
        if ((c < 0x20 && c != '\t') || c == 0x7f) {
            return http_bad(p, c, "control byte in header value");
        }
        if (p->in_auth && c != ' ' && c != '\t') {
            if (p->value_end == 0) p->value_off = pos;
            p->value_end = pos + 1;
        }
        return LG_AGAIN;

    case HS_FIELD_CR:
        if (c != '\n') return http_bad(p, c, "CR not followed by LF");
        p->state = HS_FIELD_START;
        return LG_AGAIN;

    case HS_END_CR:
        if (c != '\n') return http_bad(p, c, "CR not followed by LF");
        return LG_OK;

    default:
        return p->result;
    }

    /* The request line, after the length check. */
    if (p->state == HS_METHOD) {
        if (c == ' ') {
            if (p->method_mismatch || p->method_len != sizeof(http_connect) - 1) {
                return http_fail(p, 405, "method not CONNECT");
            }
            p->state = HS_TARGET;
            p->target_state = TS_BEGIN;
            p->target_off = pos + 1;
            return LG_AGAIN;
        }
        if (eol) return http_bad(p, c, "request line without target");
        if (!http_tchar(c)) return http_bad(p, c, "bad method");
        if (p->method_len >= sizeof(http_connect) - 1 ||
            c != (unsigned char)http_connect[p->method_len]) {
            p->method_mismatch = true;
        }
        p->method_len++;
        return LG_AGAIN;
    }
    if (p->state == HS_TARGET) {
        if (c == ' ') {
            const char *why = http_target(buf + p->target_off, pos - p->target_off, &p->req);
            if (why != NULL) return http_fail(p, 400, why);
            p->state = HS_VERSION;
            p->version_idx = 0;
            return LG_AGAIN;
        }
        if (eol) return http_bad(p, c, "request line without version");
        return http_target_byte(p, c);
    }

    /* HS_VERSION: "HTTP/" DIGIT "." DIGIT, then the line end. */
    unsigned i = p->version_idx;
    if (i < sizeof(http_version) - 1) {
        if (c != (unsigned char)http_version[i]) return http_bad(p, c, "bad HTTP version");
    } else if (i == HTTP_V_MAJOR || i == HTTP_V_MINOR) {
        if (c < '0' || c > '9') return http_bad(p, c, "bad HTTP version");
        if (i == HTTP_V_MAJOR) {
            p->major = c - '0';
        } else {
            p->minor = c - '0';
        }
    } else if (i == HTTP_V_DOT) {
        if (c != '.') return http_bad(p, c, "bad HTTP version");
    } else {
        if (c == '\r') {
            p->state = HS_RL_CR;
            return LG_AGAIN;
        }
        if (c == '\n') return http_request_line_done(p);
        return http_bad(p, c, "bad HTTP version");
    }
    p->version_idx++;
    return LG_AGAIN;
}

int lg_http_parse(lg_http_parser_t *p, const uint8_t *buf, size_t len, lg_http_req_t *out)
{
    if (p->result == LG_AGAIN) {
        if (len < p->pos) {
            http_fail(p, 400, "buffer shrank between calls");
        } else {
            while (p->pos < len) {
                int rc = http_byte(p, buf, p->pos);
                p->pos++;
                if (rc == LG_AGAIN) continue;
                if (rc == LG_OK) {
                    p->req.status = 0;
                    p->req.reason = NULL;
                    p->req.head_len = p->pos;
                    p->state = HS_DONE;
                    p->result = LG_OK;
                }
                break;
            }
        }
    }
    if (p->result != LG_AGAIN) *out = p->req;
    return p->result;
}
