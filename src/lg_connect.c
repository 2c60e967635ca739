/*
 * lg_connect.c — HTTP CONNECT listeners (see lg_connect.h).
 *
 * RFC 9110 §9.3.6 (CONNECT), RFC 9112 §3.2.3 (authority form), RFC 8305 (Happy Eyeballs).
 *
 * Sequence and statuses:
 *   HEAD       read the head (lg_http): malformed → 400, not CONNECT → 405, request line too
 *              long → 414, header limits → 431, bad version → 505, not complete within 10 s of
 *              accept → 408
 *   (policy)   port / domain / literal address refused → 403
 *   RESOLVING  uv_getaddrinfo; failure → 502; every address refused by the policy → 403
 *   CONNECTING only allowed addresses are dialled (no second lookup, so no DNS rebinding);
 *              all fail → 502; deadline (connectTimeoutMs from the end of the head) → 504
 *   RELAY      "HTTP/1.1 200 Connection Established" is queued to the client first, then every
 *              byte the client sent after the head (an early ClientHello) to the target
 *   LINGER     after an error response: write it, shut down our side, keep reading and
 *              discarding what the client still sends (up to LG_CONNECT_DRAIN_MAX bytes or
 *              LG_LINGER_MS), then close — closing a socket with unread input sends a RST that
 *              can destroy the response before the client reads it.
 *
 * The head buffer starts small and doubles up to LG_HTTP_MAX_HEAD plus room for pipelined
 * bytes, so a slow client costs little until it actually sends a large head.
 */
#include "lg_connect.h"
#include "lg_http.h"
#include "lg_policy.h"
#include "lg_relay.h"

#include <arpa/inet.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#define HEAD_BUF_MAX (LG_HTTP_MAX_HEAD + 16384) /* bytes: a head plus bytes pipelined after it */

/* Owned by the connection from the first byte until the tunnel is up (or the conn closes). */
struct lg_head_ctx_s {
    lg_http_parser_t parser;
    lg_http_req_t req;
    size_t len, cap;
    uint8_t *buf;
};

typedef struct response_s {
    int status;
    const char *text;
} response_t;

/* Fixed texts: the client's input is never echoed. Bodies are the reason phrase plus "\n". */
static const char RESP_200[] = "HTTP/1.1 200 Connection Established\r\n\r\n";
static const response_t RESPONSES[] = {
    {400, "HTTP/1.1 400 Bad Request\r\nContent-Type: text/plain\r\nContent-Length: 12\r\n"
          "Connection: close\r\n\r\nBad Request\n"},
    {403, "HTTP/1.1 403 Forbidden\r\nContent-Type: text/plain\r\nContent-Length: 10\r\n"
          "Connection: close\r\n\r\nForbidden\n"},
    {405, "HTTP/1.1 405 Method Not Allowed\r\nAllow: CONNECT\r\nContent-Type: text/plain\r\n"
          "Content-Length: 19\r\nConnection: close\r\n\r\nMethod Not Allowed\n"},
    {408, "HTTP/1.1 408 Request Timeout\r\nContent-Type: text/plain\r\nContent-Length: 16\r\n"
          "Connection: close\r\n\r\nRequest Timeout\n"},
    {414, "HTTP/1.1 414 URI Too Long\r\nContent-Type: text/plain\r\nContent-Length: 13\r\n"
          "Connection: close\r\n\r\nURI Too Long\n"},
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

static const char *response_text(int status)
{
    for (size_t i = 0; i < LG_ARRAY_SIZE(RESPONSES); i++) {
        if (RESPONSES[i].status == status) return RESPONSES[i].text;
    }
    return RESPONSES[0].text; /* unreachable: every status used is in the table */
}

static void count_status(lg_counters_t *cnt, int status)
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
    case 408:
        LG_COUNT(cnt, status_408, 1);
        break;
    case 414:
        LG_COUNT(cnt, status_414, 1);
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

uint32_t lg_connect_head_limit(uint32_t max_connections)
{
    if (max_connections == 0) return 4096;
    return LG_MAX(max_connections / 4, 16u);
}

static const lg_listener_conf_t *listener_conf(const lg_conn_t *c)
{
    return &c->w->engine->conf.listeners[c->lis];
}

/* Leave the head phase: give back the listener's in-head slot. */
static void leave_head(lg_conn_t *c)
{
    if (!c->in_head) return;
    c->in_head = false;
    atomic_fetch_sub_explicit(&c->w->engine->lis[c->lis].in_head, 1, memory_order_relaxed);
}

static void head_free(lg_conn_t *c)
{
    if (c->head == NULL) return;
    lg_free(c->head->buf);
    lg_free(c->head);
    c->head = NULL;
}

/* ---- error responses and lingering close ----------------------------------------------- */

static void linger_alloc(uv_handle_t *h, size_t suggested, uv_buf_t *buf)
{
    (void)suggested;
    lg_conn_t *c = h->data;
    buf->base = (char *)c->w->discard;
    buf->len = sizeof(c->w->discard);
}

static void linger_read(uv_stream_t *s, ssize_t nread, const uv_buf_t *buf)
{
    (void)buf;
    lg_conn_t *c = s->data;
    if (c->state != LG_CONN_LINGER || nread == 0) return;
    if (nread < 0) {
        lg_conn_close(c); /* EOF or reset: the client has what it will read */
        return;
    }
    LG_COUNT(lg_conn_counters(c), bytes_from_clients, (uint64_t)nread);
    c->drained += (size_t)nread;
    if (c->drained > LG_CONNECT_DRAIN_MAX) lg_conn_close(c);
}

static void on_response_shutdown(uv_shutdown_t *req, int status)
{
    lg_conn_t *c = req->data;
    lg_free(req);
    if (c->state != LG_CONN_LINGER) return;
    if (status < 0) lg_conn_close(c);
}

static void on_response_written(uv_write_t *req, int status)
{
    lg_conn_t *c = req->data;
    lg_free(req);
    if (c->state != LG_CONN_LINGER) return;
    if (status < 0) {
        lg_conn_close(c);
        return;
    }
    uv_shutdown_t *sreq = lg_malloc(sizeof(*sreq));
    if (sreq == NULL) {
        lg_conn_close(c);
        return;
    }
    sreq->data = c;
    if (uv_shutdown(sreq, (uv_stream_t *)&c->client, on_response_shutdown) != 0) {
        lg_free(sreq);
        lg_conn_close(c);
    }
}

/* Answer with an error status and close gracefully. */
static void respond(lg_conn_t *c, int status)
{
    lg_counters_t *cnt = lg_conn_counters(c);
    c->status = (uint16_t)status;
    count_status(cnt, status);
    leave_head(c);
    head_free(c);
    lg_resolve_detach(c);
    lg_dial_cancel(c);
    uv_read_stop((uv_stream_t *)&c->client);
    lg_conn_set_state(c, LG_CONN_LINGER);
    const char *text = response_text(status);
    uv_write_t *req = lg_malloc(sizeof(*req));
    if (req == NULL) {
        LG_COUNT(cnt, out_of_memory, 1);
        lg_conn_close(c);
        return;
    }
    req->data = c;
    uv_buf_t b = uv_buf_init((char *)text, (unsigned)strlen(text));
    LG_COUNT(cnt, bytes_to_clients, b.len);
    if (uv_write(req, (uv_stream_t *)&c->client, &b, 1, on_response_written) != 0) {
        lg_free(req);
        lg_conn_close(c);
        return;
    }
    if (uv_read_start((uv_stream_t *)&c->client, linger_alloc, linger_read) != 0) lg_conn_close(c);
}

void lg_connect_refuse_fd(lg_worker_t *w, unsigned lis, int fd)
{
    lg_counters_t *cnt = &w->counters[lis];
    const char *text = response_text(503);
    size_t len = strlen(text);
    /* A fresh socket's send buffer always has room for ~100 bytes; a short write only loses
     * the courtesy response, never correctness. */
    ssize_t n = send(fd, text, len, MSG_NOSIGNAL | MSG_DONTWAIT);
    if (n > 0) LG_COUNT(cnt, bytes_to_clients, (uint64_t)n);
    /* Read what already arrived so close() sends FIN, not RST (see the file comment). */
    for (int i = 0; i < 4 && recv(fd, w->discard, sizeof(w->discard), MSG_DONTWAIT) > 0; i++) {
    }
    shutdown(fd, SHUT_WR);
    close(fd);
    count_status(cnt, 503);
}

void lg_connect_timeout(lg_conn_t *c)
{
    if (c->state == LG_CONN_HEAD) {
        respond(c, 408);
    } else {
        LG_COUNT(lg_conn_counters(c), upstream_connect_failures, 1);
        respond(c, 504);
    }
}

/* ---- tunnel ---------------------------------------------------------------------------- */

void lg_connect_dialed(lg_conn_t *c, int status)
{
    if (status < 0) {
        LG_COUNT(lg_conn_counters(c), upstream_connect_failures, 1);
        respond(c, 502);
        return;
    }
    lg_counters_t *cnt = lg_conn_counters(c);
    if (c->up->h.handle.type == UV_TCP) uv_tcp_nodelay(&c->up->h.tcp, 1);
    lg_head_ctx_t *h = c->head;
    /* The 200 goes first to the client; what the client sent after the head goes first to the
     * target. Both are queued before reading resumes, so nothing overtakes them. */
    int rc = lg_relay_queue_copy(c, &c->u2c, (const uint8_t *)RESP_200, sizeof(RESP_200) - 1);
    if (rc == 0 && h != NULL && h->len > h->req.head_len) {
        rc = lg_relay_queue_copy(c, &c->c2u, h->buf + h->req.head_len, h->len - h->req.head_len);
    }
    head_free(c);
    if (rc != 0) {
        LG_COUNT(cnt, out_of_memory, 1);
        lg_conn_close(c);
        return;
    }
    c->status = 200;
    c->resp_len = (uint16_t)(sizeof(RESP_200) - 1);
    count_status(cnt, 200);
    lg_conn_set_state(c, LG_CONN_RELAY);
    if (lg_relay_start(c) != 0) {
        LG_COUNT(cnt, out_of_memory, 1);
        lg_conn_close(c);
    }
}

static void dial(lg_conn_t *c, const lg_sockaddr_t *addrs, size_t n)
{
    if (c->state == LG_CONN_CLOSING) return;
    lg_conn_set_state(c, LG_CONN_CONNECTING);
    if (lg_dial_start(c, addrs, n) != 0) {
        LG_COUNT(lg_conn_counters(c), out_of_memory, 1);
        lg_conn_close(c);
    }
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

void lg_connect_resolved(lg_conn_t *c, const lg_sockaddr_t *addrs, size_t n, int status)
{
    if (status < 0 || n == 0) {
        LG_COUNT(lg_conn_counters(c), upstream_connect_failures, 1);
        respond(c, 502);
        return;
    }
    const lg_policy_t *pol = &listener_conf(c)->policy;
    lg_sockaddr_t ok[LG_RESOLVE_MAX_ADDRS];
    size_t n_ok = 0;
    for (size_t i = 0; i < n && i < LG_RESOLVE_MAX_ADDRS; i++) {
        uint8_t family, ip[16];
        if (sockaddr_to_ip(&addrs[i], &family, ip) && lg_policy_addr_allowed(pol, family, ip)) {
            ok[n_ok++] = addrs[i];
        }
    }
    if (n_ok == 0) {
        LG_COUNT(lg_conn_counters(c), refused_address, 1);
        respond(c, 403);
        return;
    }
    dial(c, ok, n_ok);
}

/* The head is complete: judge the target, then resolve or dial it. */
static void on_head(lg_conn_t *c)
{
    lg_head_ctx_t *h = c->head;
    const lg_http_req_t *req = &h->req;
    const lg_listener_conf_t *lc = listener_conf(c);
    lg_counters_t *cnt = lg_conn_counters(c);
    uv_read_stop((uv_stream_t *)&c->client);
    leave_head(c);
    c->deadline = uv_now(&c->w->loop) + lc->connect_timeout_ms;
    c->target_port = req->port;
    c->target = lg_malloc(req->host_len + 1);
    if (c->target == NULL) {
        LG_COUNT(cnt, out_of_memory, 1);
        lg_conn_close(c);
        return;
    }
    memcpy(c->target, req->host, req->host_len + 1);

    int reason = lg_policy_check_target(&lc->policy, req);
    if (reason != LG_POLICY_OK) {
        if (reason == LG_POLICY_PORT) LG_COUNT(cnt, refused_port, 1);
        if (reason == LG_POLICY_DOMAIN) LG_COUNT(cnt, refused_domain, 1);
        if (reason == LG_POLICY_ADDRESS) LG_COUNT(cnt, refused_address, 1);
        respond(c, 403);
        return;
    }
    if (req->host_is_ip) {
        lg_sockaddr_t sa;
        memset(&sa, 0, sizeof(sa));
        if (req->family == AF_INET) {
            sa.in4.sin_family = AF_INET;
            sa.in4.sin_port = htons(req->port);
            memcpy(&sa.in4.sin_addr, req->addr, 4);
        } else {
            sa.in6.sin6_family = AF_INET6;
            sa.in6.sin6_port = htons(req->port);
            memcpy(&sa.in6.sin6_addr, req->addr, 16);
        }
        dial(c, &sa, 1);
        return;
    }
    lg_conn_set_state(c, LG_CONN_RESOLVING);
    int rc = lg_resolve_start(c, c->target, req->port);
    if (rc == -EBUSY) {
        LG_COUNT(cnt, refused_lookups_busy, 1); /* LG_RESOLVE_MAX_INFLIGHT lookups queued */
        respond(c, 503);
    } else if (rc != 0) {
        LG_COUNT(cnt, upstream_connect_failures, 1);
        respond(c, 502);
    }
}

static void head_alloc(uv_handle_t *handle, size_t suggested, uv_buf_t *buf)
{
    (void)suggested;
    lg_conn_t *c = handle->data;
    buf->base = NULL;
    buf->len = 0;
    lg_head_ctx_t *h = c->head;
    if (h == NULL) {
        h = lg_calloc(1, sizeof(*h));
        uint8_t *b = lg_malloc(LG_CONNECT_HEAD_BUF_MIN);
        if (h == NULL || b == NULL) {
            lg_free(h);
            lg_free(b);
            return; /* the read callback sees UV_ENOBUFS */
        }
        lg_http_parser_init(&h->parser);
        h->buf = b;
        h->cap = LG_CONNECT_HEAD_BUF_MIN;
        c->head = h;
    }
    if (h->len == h->cap && h->cap < HEAD_BUF_MAX) {
        size_t cap = LG_MIN(h->cap * 2, (size_t)HEAD_BUF_MAX);
        uint8_t *b = lg_realloc(h->buf, cap);
        if (b == NULL) return;
        h->buf = b;
        h->cap = cap;
    }
    buf->base = (char *)h->buf + h->len;
    buf->len = h->cap - h->len;
}

static void head_read(uv_stream_t *s, ssize_t nread, const uv_buf_t *buf)
{
    (void)buf;
    lg_conn_t *c = s->data;
    if (c->state != LG_CONN_HEAD || nread == 0) return;
    if (nread < 0) {
        if (nread == UV_ENOBUFS) LG_COUNT(lg_conn_counters(c), out_of_memory, 1);
        lg_conn_close(c); /* the client left (or no memory) before finishing its request */
        return;
    }
    lg_head_ctx_t *h = c->head;
    h->len += (size_t)nread;
    LG_COUNT(lg_conn_counters(c), bytes_from_clients, (uint64_t)nread);
    int r = lg_http_parse(&h->parser, h->buf, h->len, &h->req);
    if (r == LG_OK) {
        on_head(c);
    } else if (r == LG_ERROR) {
        respond(c, h->req.status);
    } else if (h->len == HEAD_BUF_MAX) {
        respond(c, 431); /* unreachable: the parser decides within LG_HTTP_MAX_HEAD bytes */
    }
}

void lg_connect_start(lg_conn_t *c)
{
    lg_conn_set_state(c, LG_CONN_HEAD);
    if (uv_read_start((uv_stream_t *)&c->client, head_alloc, head_read) != 0) lg_conn_close(c);
}

void lg_connect_release(lg_conn_t *c)
{
    leave_head(c);
    head_free(c);
    lg_worker_t *w = c->w;
    lg_engine_t *e = w->engine;
    if (atomic_load_explicit(&e->tunnel_events, memory_order_relaxed)) {
        lg_event_t *ev = lg_calloc(1, sizeof(*ev));
        if (ev == NULL) {
            atomic_fetch_add_explicit(&e->events_dropped, 1, memory_order_relaxed);
        } else {
            ev->type = LG_EV_TUNNEL;
            ev->worker = w->index;
            ev->listener = c->lis;
            ev->status = c->status;
            ev->port = c->target_port;
            if (c->target != NULL) snprintf(ev->target, sizeof(ev->target), "%s", c->target);
            ev->bytes_in = c->c2u.bytes;
            ev->bytes_out = c->u2c.bytes > c->resp_len ? c->u2c.bytes - c->resp_len : 0;
            ev->duration_ms = uv_now(&w->loop) - c->accepted_at;
            lg_engine_post(e, ev);
        }
    }
    lg_free(c->target);
    c->target = NULL;
}
