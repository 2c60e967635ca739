/*
 * lg_connect.c — the CONNECT head, the destination policy's verdicts and the responses (see
 * lg_connect.h).
 *
 * The head buffer starts small and doubles up to LG_HTTP_MAX_HEAD plus room for pipelined bytes,
 * so a slow client costs little until it actually sends a large head.
 */
#include "lg_connect.h"

#include <arpa/inet.h>
#include <stdio.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

typedef struct response_s {
    int status;
    const char *text;
} response_t;

/* Fixed texts: the client's input is never echoed. Bodies are the reason phrase plus "\n",
 * except 403's, which says why (a policy 403 is built by lg_connect_forbidden instead). */
static const char RESP_200[] = "HTTP/1.1 200 Connection Established\r\n\r\n";
static const response_t RESPONSES[] = {
    {400, "HTTP/1.1 400 Bad Request\r\nContent-Type: text/plain\r\nContent-Length: 12\r\n"
          "Connection: close\r\n\r\nBad Request\n"},
    {403, "HTTP/1.1 403 Forbidden\r\nContent-Type: text/plain\r\nContent-Length: 46\r\n"
          "Connection: close\r\n\r\nthe client address is in protection.blocklist\n"},
    {405, "HTTP/1.1 405 Method Not Allowed\r\nAllow: CONNECT\r\nContent-Type: text/plain\r\n"
          "Content-Length: 19\r\nConnection: close\r\n\r\nMethod Not Allowed\n"},
    {408, "HTTP/1.1 408 Request Timeout\r\nContent-Type: text/plain\r\nContent-Length: 16\r\n"
          "Connection: close\r\n\r\nRequest Timeout\n"},
    {414, "HTTP/1.1 414 URI Too Long\r\nContent-Type: text/plain\r\nContent-Length: 13\r\n"
          "Connection: close\r\n\r\nURI Too Long\n"},
    {429, "HTTP/1.1 429 Too Many Requests\r\nContent-Type: text/plain\r\nContent-Length: 18\r\n"
          "Connection: close\r\n\r\nToo Many Requests\n"},
    {431, "HTTP/1.1 431 Request Header Fields Too Large\r\nContent-Type: text/plain\r\n"
          "Content-Length: 32\r\nConnection: close\r\n\r\nRequest Header Fields Too Large\n"},
    {502, "HTTP/1.1 502 Bad Gateway\r\nContent-Type: text/plain\r\nContent-Length: 12\r\n"
          "Connection: close\r\n\r\nBad Gateway\n"},
    {503, "HTTP/1.1 503 Service Unavailable\r\nContent-Type: text/plain\r\nContent-Length: 20\r\n"
          "Connection: close\r\n\r\nService Unavailable\n"},
    {504, "HTTP/1.1 504 Gateway Timeout\r\nContent-Type: text/plain\r\nContent-Length: 16\r\n"
          "Connection: close\r\n\r\nGateway Timeout\n"},
    {505, "HTTP/1.1 505 HTTP Version Not Supported\r\nContent-Type: text/plain\r\n"
          "Content-Length: 27\r\nConnection: close\r\n\r\nHTTP Version Not Supported\n"},
};

const char *lg_connect_response(int status, size_t *len)
{
    const char *text = RESPONSES[0].text; /* every status used is in the table */
    for (size_t i = 0; i < LG_ARRAY_SIZE(RESPONSES); i++) {
        if (RESPONSES[i].status == status) text = RESPONSES[i].text;
    }
    *len = strlen(text);
    return text;
}

const char *lg_connect_established(size_t *len)
{
    *len = sizeof(RESP_200) - 1;
    return RESP_200;
}

void lg_connect_count_status(lg_counters_t *cnt, int status)
{
    switch (status) {
    case 200:
        LG_COUNT(cnt, status_200, 1);
        break;
    case 400:
        LG_COUNT(cnt, status_400, 1);
        break;
    case 403:
        LG_COUNT(cnt, status_403, 1);
        break;
    case 405:
        LG_COUNT(cnt, status_405, 1);
        break;
    case 407:
        LG_COUNT(cnt, status_407, 1);
        break;
    case 408:
        LG_COUNT(cnt, status_408, 1);
        break;
    case 414:
        LG_COUNT(cnt, status_414, 1);
        break;
    case 429:
        LG_COUNT(cnt, status_429, 1);
        break;
    case 431:
        LG_COUNT(cnt, status_431, 1);
        break;
    case 502:
        LG_COUNT(cnt, status_502, 1);
        break;
    case 503:
        LG_COUNT(cnt, status_503, 1);
        break;
    case 504:
        LG_COUNT(cnt, status_504, 1);
        break;
    case 505:
        LG_COUNT(cnt, status_505, 1);
        break;
    default:
        break;
    }
}

void lg_connect_count_refusal(lg_counters_t *cnt, int reason)
{
    if (reason == LG_POLICY_PORT) LG_COUNT(cnt, refused_port, 1);
    if (reason == LG_POLICY_DOMAIN) LG_COUNT(cnt, refused_domain, 1);
    if (reason == LG_POLICY_ADDRESS) LG_COUNT(cnt, refused_address, 1);
}

/* ---- the head ------------------------------------------------------------------------- */

lg_connect_head_t *lg_connect_head_new(void)
{
    lg_connect_head_t *h = lg_calloc(1, sizeof(*h));
    uint8_t *b = lg_malloc(LG_CONNECT_HEAD_BUF_MIN);
    if (h == NULL || b == NULL) {
        lg_free(h);
        lg_free(b);
        return NULL;
    }
    lg_http_parser_init(&h->parser);
    h->buf = b;
    h->cap = LG_CONNECT_HEAD_BUF_MIN;
    return h;
}

void lg_connect_head_free(lg_connect_head_t *h)
{
    if (h == NULL) return;
    lg_free(h->buf);
    lg_free(h);
}

int lg_connect_head_room(lg_connect_head_t *h, uint8_t **base, size_t *len)
{
    if (h->len == h->cap && h->cap < LG_CONNECT_HEAD_BUF_MAX) {
        size_t cap = LG_MIN(h->cap * 2, (size_t)LG_CONNECT_HEAD_BUF_MAX);
        uint8_t *b = lg_realloc(h->buf, cap);
        if (b == NULL) {
            *base = NULL;
            *len = 0;
            return -ENOMEM;
        }
        h->buf = b;
        h->cap = cap;
    }
    *base = h->buf + h->len;
    *len = h->cap - h->len;
    return 0;
}

int lg_connect_head_put(lg_connect_head_t *h, const uint8_t *p, size_t n)
{
    if (n > LG_CONNECT_HEAD_BUF_MAX - h->len) return -ENOSPC;
    size_t cap = h->cap;
    while (n > cap - h->len)
        cap = LG_MIN(cap * 2, (size_t)LG_CONNECT_HEAD_BUF_MAX);
    if (cap != h->cap) {
        uint8_t *b = lg_realloc(h->buf, cap);
        if (b == NULL) return -ENOMEM;
        h->buf = b;
        h->cap = cap;
    }
    memcpy(h->buf + h->len, p, n);
    return 0;
}

int lg_connect_head_feed(lg_connect_head_t *h, size_t n, int *status)
{
    h->len += n;
    int r = lg_http_parse(&h->parser, h->buf, h->len, &h->req);
    if (r == LG_ERROR) {
        *status = h->req.status;
    } else if (r == LG_AGAIN && h->len == LG_CONNECT_HEAD_BUF_MAX) {
        /* Unreachable: the parser decides within LG_HTTP_MAX_HEAD bytes. */
        *status = 431;
        r = LG_ERROR;
    }
    return r;
}

void lg_connect_head_extra(const lg_connect_head_t *h, const uint8_t **p, size_t *n)
{
    *p = h->buf + h->req.head_len;
    *n = h->len > h->req.head_len ? h->len - h->req.head_len : 0;
}

/* ---- the policy's verdicts ------------------------------------------------------------- */

int lg_connect_judge(const lg_policy_t *pol, const lg_http_req_t *req, lg_sockaddr_t *addr,
                     int *reason)
{
    *reason = lg_policy_check_target(pol, req);
    if (*reason != LG_POLICY_OK) return LG_CONNECT_REFUSE;
    if (!req->host_is_ip) return LG_CONNECT_RESOLVE;
    memset(addr, 0, sizeof(*addr));
    if (req->family == AF_INET) {
        addr->in4.sin_family = AF_INET;
        addr->in4.sin_port = htons(req->port);
        memcpy(&addr->in4.sin_addr, req->addr, 4);
    } else {
        addr->in6.sin6_family = AF_INET6;
        addr->in6.sin6_port = htons(req->port);
        memcpy(&addr->in6.sin6_addr, req->addr, 16);
    }
    return LG_CONNECT_DIAL;
}

static bool sockaddr_to_ip(const lg_sockaddr_t *sa, uint8_t *family, uint8_t addr[16])
{
    if (sa->sa.sa_family == AF_INET) {
        *family = 4;
        memcpy(addr, &sa->in4.sin_addr, 4);
        return true;
    }
    if (sa->sa.sa_family == AF_INET6) {
        *family = 6;
        memcpy(addr, &sa->in6.sin6_addr, 16);
        return true;
    }
    return false;
}

void lg_connect_denial(const lg_policy_t *pol, const lg_sockaddr_t *addr, lg_policy_denial_t *d)
{
    uint8_t family, ip[16];
    memset(d, 0, sizeof(*d));
    if (sockaddr_to_ip(addr, &family, ip)) lg_policy_denial(pol, family, ip, d);
}

size_t lg_connect_filter(const lg_policy_t *pol, lg_sockaddr_t *addrs, size_t n)
{
    size_t kept = 0;
    for (size_t i = 0; i < n; i++) {
        uint8_t family, ip[16];
        if (sockaddr_to_ip(&addrs[i], &family, ip) && lg_policy_addr_allowed(pol, family, ip)) {
            addrs[kept++] = addrs[i];
        }
    }
    return kept;
}

/* ---- the tunnel record and event ------------------------------------------------------- */

lg_tunnel_t *lg_connect_tunnel_new(const lg_http_req_t *req)
{
    lg_tunnel_t *t = lg_malloc(sizeof(*t) + req->host_len + 1);
    if (t == NULL) return NULL;
    t->port = req->port;
    memset(&t->denied, 0, sizeof(t->denied));
    t->why = NULL;
    memcpy(t->target, req->host, req->host_len + 1);
    return t;
}

void lg_connect_tunnel_free(lg_tunnel_t *t)
{
    if (t == NULL) return;
    lg_free(t->why);
    lg_free(t);
}

size_t lg_connect_forbidden(lg_tunnel_t *t, const lg_policy_t *pol, const lg_http_req_t *req,
                            int reason, char *out)
{
    char why[LG_POLICY_WHY_MAX];
    size_t n = lg_policy_explain(pol, req, reason, t != NULL ? &t->denied : NULL, why, sizeof(why));
    if (t != NULL && t->why == NULL && (t->why = lg_malloc(n + 1)) != NULL) {
        memcpy(t->why, why, n + 1);
    }
    int len = snprintf(out, LG_CONNECT_FORBIDDEN_MAX,
                       "HTTP/1.1 403 Forbidden\r\nContent-Type: text/plain\r\nContent-Length: "
                       "%zu\r\nConnection: close\r\n\r\n%s\n",
                       n + 1, why);
    /* Cannot clip: the head is < 128 bytes and why < LG_POLICY_WHY_MAX. */
    return len < 0 ? 0 : LG_MIN((size_t)len, (size_t)LG_CONNECT_FORBIDDEN_MAX - 1);
}

void lg_connect_post_tunnel(lg_events_t *ch, unsigned worker, unsigned listener,
                            const lg_tunnel_t *t, int status, uint64_t bytes_in, uint64_t bytes_out,
                            uint64_t duration_ms)
{
    if (!lg_events_tunnels_on(ch)) return;
    lg_event_t *ev = lg_event_alloc(ch, LG_EV_TUNNEL, worker);
    if (ev == NULL) return;
    lg_ev_tunnel_t *e = &ev->u.tunnel;
    e->listener = listener;
    e->status = (uint16_t)status;
    if (t != NULL) {
        e->port = t->port;
        snprintf(e->target, sizeof(e->target), "%s", t->target);
        if (t->why != NULL) snprintf(e->why, sizeof(e->why), "%s", t->why);
    }
    e->bytes_in = bytes_in;
    e->bytes_out = bytes_out;
    e->duration_ms = duration_ms;
    lg_events_post(ch, ev);
}

int lg_connect_refusal_status(int block_reason)
{
    return block_reason == LG_BLOCK_CIDR_BLOCKED ? 403 : 429;
}

void lg_connect_refuse_fd(lg_counters_t *cnt, int fd, int status, uint8_t *discard,
                          size_t discard_len)
{
    size_t len = 0;
    const char *text = lg_connect_response(status, &len);
    /* Counted before the reply is sent, as respond_text does: a client that has read the status
     * may read the metrics at once and must find it counted. */
    lg_connect_count_status(cnt, status);
    /* A fresh socket's send buffer always has room for ~100 bytes; a short write only loses
     * the courtesy response, never correctness. */
    ssize_t n = send(fd, text, len, MSG_NOSIGNAL | MSG_DONTWAIT);
    if (n > 0) LG_COUNT(cnt, bytes_to_clients, (uint64_t)n);
    /* Read what already arrived so close() sends FIN, not RST (see lg_conn's LINGER). */
    for (int i = 0; i < 4 && recv(fd, discard, discard_len, MSG_DONTWAIT) > 0; i++) {
    }
    shutdown(fd, SHUT_WR);
    close(fd);
}
