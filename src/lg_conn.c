/*
 * lg_conn.c — a connection's life on its worker: accept, ClientHello, routing, upstream dial,
 * deadlines and closing (see lg_conn.h for ownership; lg_relay.c moves the bytes).
 *
 * State transitions go through set_state(), which also arms the state's one deadline:
 *   HELLO       accept + tlsHandshakeTimeoutMs (absolute: trickled bytes do not extend it)
 *   HEAD        accept + LG_CONNECT_HEAD_TIMEOUT_MS (absolute)
 *   RESOLVING   c->deadline (CONNECT head complete + connectTimeoutMs), shared with CONNECTING
 *   HANDSHAKE   the earlier of accept + tlsHandshakeTimeoutMs and, while the upstream is being
 *               dialled, c->deadline
 *   CONNECTING  c->deadline: dial start + LG_UPSTREAM_CONNECT_MS for routes; CONNECT head
 *               complete + connectTimeoutMs for connect listeners
 *   RELAY       idleTimeoutMs after the last byte either way; the timer fires at the earliest
 *               possible expiry and re-arms itself for the remainder when bytes moved meanwhile,
 *               so the data path only stores a timestamp
 *   LINGER      now + LG_LINGER_MS
 *   CLOSING     none
 *
 * Bytes that arrive with or after the ClientHello, before routing, are kept in the hello buffer
 * and queued to the upstream first: nothing the client sent is dropped.
 */
#include "lg_conn.h"
#include "lg_connect.h"
#include "lg_relay.h"
#include "lg_tls.h"

#include <string.h>
#include <unistd.h>

static void on_timer(uv_timer_t *t);

static void arm(lg_conn_t *c, uint64_t ms)
{
    uv_timer_start(&c->timer, on_timer, ms, 0);
}

static uint32_t idle_ms(const lg_conn_t *c)
{
    return c->w->engine->conf.listeners[c->lis].idle_timeout_ms;
}

/* Arm the timer for an absolute loop time (at least 1 ms from now). */
static void arm_at(lg_conn_t *c, uint64_t when)
{
    uint64_t now = uv_now(&c->w->loop);
    arm(c, when > now ? when - now : 1);
}

void lg_conn_set_state(lg_conn_t *c, lg_conn_state_t s)
{
    /* CLOSING is final. A write that fails inside a nested call (FIFO writes synchronously from
     * OpenSSL's BIO, say) closes the connection under its caller; the caller's next transition
     * must not bring it back. */
    if (c->state == LG_CONN_CLOSING) return;
    c->state = s;
    uint64_t now = uv_now(&c->w->loop);
    switch (s) {
    case LG_CONN_HELLO:
        arm_at(c, c->accepted_at + c->snap->protection[c->lis].tls_handshake_timeout_ms);
        break;
    case LG_CONN_HEAD:
        arm_at(c, c->accepted_at + LG_CONNECT_HEAD_TIMEOUT_MS);
        break;
    case LG_CONN_RESOLVING:
        arm_at(c, c->deadline);
        break;
    case LG_CONN_SUSPENDED:
        arm(c, c->suspend_ms);
        break;
    case LG_CONN_HANDSHAKE: {
        uint64_t hs = c->accepted_at + c->snap->protection[c->lis].tls_handshake_timeout_ms;
        arm_at(c, c->up == NULL && c->deadline < hs ? c->deadline : hs);
        break;
    }
    case LG_CONN_CONNECTING:
        arm_at(c, c->deadline);
        break;
    case LG_CONN_LINGER:
        arm(c, LG_LINGER_MS);
        break;
    case LG_CONN_RELAY:
        c->last_activity = now;
        if (idle_ms(c) > 0) {
            arm(c, idle_ms(c));
        } else {
            uv_timer_stop(&c->timer);
        }
        break;
    case LG_CONN_CLOSING:
        uv_timer_stop(&c->timer);
        break;
    }
}

enum { HS_TIMEOUT, HS_PROTOCOL, HS_CLOSED, HS_CERTIFICATE, HS_NO_CERTIFICATE };

static void count_handshake_failure(lg_conn_t *c, int kind)
{
    lg_counters_t *cnt = lg_conn_counters(c);
    LG_COUNT(cnt, handshake_failures, 1);
    switch (kind) {
    case HS_TIMEOUT:
        LG_COUNT(cnt, hs_fail_timeout, 1);
        break;
    case HS_PROTOCOL:
        LG_COUNT(cnt, hs_fail_protocol, 1);
        break;
    case HS_CERTIFICATE:
        LG_COUNT(cnt, hs_fail_certificate, 1);
        break;
    case HS_NO_CERTIFICATE:
        LG_COUNT(cnt, hs_fail_no_certificate, 1);
        break;
    default:
        LG_COUNT(cnt, hs_fail_closed, 1);
        break;
    }
}

static void handshake_failed(lg_conn_t *c, int kind)
{
    count_handshake_failure(c, kind);
    lg_conn_close(c);
}

static void on_timer(uv_timer_t *t)
{
    lg_conn_t *c = t->data;
    switch (c->state) {
    case LG_CONN_HELLO:
        handshake_failed(c, HS_TIMEOUT);
        break;
    case LG_CONN_SUSPENDED:
        lg_suspend_timeout(c);
        break;
    case LG_CONN_HANDSHAKE:
        if (uv_now(&c->w->loop) >=
            c->accepted_at + c->snap->protection[c->lis].tls_handshake_timeout_ms) {
            handshake_failed(c, HS_TIMEOUT);
        } else {
            LG_COUNT(lg_conn_counters(c), upstream_connect_failures, 1);
            lg_conn_close(c);
        }
        break;
    case LG_CONN_HEAD:
    case LG_CONN_RESOLVING:
        lg_connect_timeout(c);
        break;
    case LG_CONN_CONNECTING:
        if (c->is_connect) {
            lg_connect_timeout(c);
            break;
        }
        LG_COUNT(lg_conn_counters(c), upstream_connect_failures, 1);
        lg_conn_close(c);
        break;
    case LG_CONN_LINGER:
        lg_conn_close(c);
        break;
    case LG_CONN_RELAY: {
        uint64_t now = uv_now(&c->w->loop);
        uint64_t since = now - c->last_activity;
        uint32_t limit = idle_ms(c);
        if (since >= limit) {
            LG_COUNT(lg_conn_counters(c), idle_timeouts, 1);
            lg_conn_close(c);
        } else {
            arm(c, limit - since);
        }
        break;
    }
    case LG_CONN_CLOSING:
        break;
    }
}

static void hello_free(lg_conn_t *c)
{
    if (c->hello == NULL) return;
    lg_free(c->hello);
    c->hello = NULL;
    c->w->n_hello--;
    LG_PUBLISH(c->w->pub_hello_buffers, c->w->n_hello);
}

static void conn_free(lg_conn_t *c)
{
    lg_worker_t *w = c->w;
    if (c->is_connect) lg_connect_release(c);
    lg_tls_free(c);
    lg_free(c->held);
    lg_free(c->held_sni);
    if (c->decision != NULL) {
        lg_route_free(c->decision);
        lg_free(c->decision);
    }
    lg_relay_flow_release(c, &c->c2u);
    lg_relay_flow_release(c, &c->u2c);
    hello_free(c);
    lg_snapshot_unref(c->snap);
    if (c->prev != NULL) {
        c->prev->next = c->next;
    } else {
        w->conns = c->next;
    }
    if (c->next != NULL) c->next->prev = c->prev;
    w->n_conns--;
    LG_PUBLISH(w->pub_conns, w->n_conns);
    if (c->counted_active) {
        atomic_fetch_sub_explicit(&w->engine->lis[c->lis].active, 1, memory_order_relaxed);
    }
    LG_COUNT(lg_conn_counters(c), closed_connections, 1);
    lg_free(c);
    lg_worker_conn_gone(w);
}

void lg_conn_handle_closed(lg_conn_t *c)
{
    if (--c->pending_closes == 0 && c->state == LG_CONN_CLOSING) conn_free(c);
}

static void on_close(uv_handle_t *h)
{
    lg_conn_handle_closed(h->data);
}

void lg_conn_close(lg_conn_t *c)
{
    if (c->state == LG_CONN_CLOSING) return;
    lg_conn_set_state(c, LG_CONN_CLOSING);
    /* Flows leave the scheduler now; their queues are freed with the connection, after every
     * write callback (cancelled by uv_close) has run. */
    lg_drr_remove(&c->w->drr, &c->c2u.drr);
    lg_drr_remove(&c->w->drr, &c->u2c.drr);
    lg_resolve_detach(c);
    lg_suspend_forget(c);
    c->pending_closes += 2;
    uv_close((uv_handle_t *)&c->client, on_close);
    uv_close((uv_handle_t *)&c->timer, on_close);
    lg_dial_cancel(c);
    lg_dial_close_up(c);
}

void lg_conn_close_all(lg_worker_t *w)
{
    for (lg_conn_t *c = w->conns; c != NULL; c = c->next)
        lg_conn_close(c);
}

void lg_conn_relay_done(lg_conn_t *c)
{
    lg_conn_close(c);
}

void lg_conn_dialed(lg_conn_t *c, int status)
{
    if (c->state != LG_CONN_CONNECTING && c->state != LG_CONN_HANDSHAKE) return;
    if (c->is_connect) {
        lg_connect_dialed(c, status);
        return;
    }
    if (status < 0) {
        LG_COUNT(lg_conn_counters(c), upstream_connect_failures, 1);
        lg_conn_close(c);
        return;
    }
    if (c->up->h.handle.type == UV_TCP) uv_tcp_nodelay(&c->up->h.tcp, 1);
    if (c->state == LG_CONN_HANDSHAKE) {
        lg_conn_set_state(c, LG_CONN_HANDSHAKE); /* only the handshake deadline is left */
        return;
    }
    lg_conn_set_state(c, LG_CONN_RELAY);
    if (lg_relay_start(c) != 0) {
        LG_COUNT(lg_conn_counters(c), out_of_memory, 1);
        lg_conn_close(c);
    }
}

void lg_conn_resolved(lg_conn_t *c, const lg_sockaddr_t *addrs, size_t n, int status)
{
    /* Routes resolve their upstreams when the config is applied; only CONNECT listeners
     * resolve per connection. */
    if (c->state != LG_CONN_RESOLVING) return;
    lg_connect_resolved(c, addrs, n, status);
}

void lg_conn_tls_ready(lg_conn_t *c)
{
    if (c->state == LG_CONN_CLOSING) return;
    lg_counters_t *cnt = lg_conn_counters(c);
    LG_COUNT(cnt, tls_handshakes, 1);
    if (lg_tls_resumed(c)) LG_COUNT(cnt, tls_resumed, 1);
    if (c->up == NULL) {
        lg_conn_set_state(c, LG_CONN_CONNECTING); /* decrypted bytes wait for the upstream */
        return;
    }
    lg_conn_set_state(c, LG_CONN_RELAY);
    if (lg_relay_start(c) != 0) {
        LG_COUNT(cnt, out_of_memory, 1);
        lg_conn_close(c);
    }
}

void lg_conn_tls_failed(lg_conn_t *c, int reason)
{
    if (c->state == LG_CONN_CLOSING) return;
    lg_counters_t *cnt = lg_conn_counters(c);
    bool in_handshake = c->tls == NULL || !c->tls->handshake_done;
    switch (reason) {
    case LG_TLS_E_CERTIFICATE:
        count_handshake_failure(c, HS_CERTIFICATE);
        break;
    case LG_TLS_E_NO_CERTIFICATE:
        count_handshake_failure(c, HS_NO_CERTIFICATE);
        break;
    case LG_TLS_E_RENEGOTIATION:
        LG_COUNT(cnt, tls_renegotiations, 1);
        break;
    case LG_TLS_E_KEYUPDATE:
        LG_COUNT(cnt, tls_keyupdate_floods, 1);
        break;
    case LG_TLS_E_SNI:
        LG_COUNT(cnt, tls_sni_mismatches, 1);
        break;
    case LG_TLS_E_NOMEM:
        LG_COUNT(cnt, out_of_memory, 1);
        lg_conn_close(c);
        return;
    default:
        if (in_handshake) {
            count_handshake_failure(c, HS_PROTOCOL);
        } else {
            LG_COUNT(cnt, tls_errors, 1);
        }
        break;
    }
    /* Send what OpenSSL queued (an alert), then FIN, then close: LINGER's deadline bounds it. */
    lg_resolve_detach(c);
    lg_dial_cancel(c);
    if (c->c2u.reading) {
        uv_read_stop((uv_stream_t *)&c->client);
        c->c2u.reading = false;
    }
    c->c2u.eof = true;
    c->u2c.eof = true;
    lg_conn_set_state(c, LG_CONN_LINGER);
    if (c->u2c.q.bytes == 0 && c->u2c.n_writes == 0) {
        lg_conn_close(c);
        return;
    }
    lg_relay_flush_then_close(c);
}

static void dial(lg_conn_t *c, const lg_upstream_t *up)
{
    if (c->state == LG_CONN_CLOSING) return; /* closed while the hello was fed to OpenSSL */
    c->deadline = uv_now(&c->w->loop) + LG_UPSTREAM_CONNECT_MS;
    if (c->state != LG_CONN_HANDSHAKE) lg_conn_set_state(c, LG_CONN_CONNECTING);
    int rc;
    if (up->kind == LG_UPSTREAM_UDS) {
        rc = lg_dial_uds(c, up->path);
    } else {
        lg_sockaddr_t sa;
        memset(&sa, 0, sizeof(sa));
        memcpy(&sa, &up->addr, LG_MIN((size_t)up->addrlen, sizeof(sa)));
        rc = lg_dial_start(c, &sa, 1);
    }
    if (rc != 0) {
        LG_COUNT(lg_conn_counters(c), out_of_memory, 1);
        lg_conn_close(c);
    }
}

/* The bytes the client has sent so far: a held connection's copy, or the hello buffer. */
static void received(const lg_conn_t *c, const uint8_t **raw, size_t *len)
{
    if (c->held != NULL) {
        *raw = c->held;
        *len = c->held_len;
    } else {
        *raw = c->hello->raw;
        *len = c->hello->raw_len;
    }
}

static void release_received(lg_conn_t *c)
{
    hello_free(c);
    lg_free(c->held);
    c->held = NULL;
    c->held_len = c->held_cap = 0;
}

/*
 * A terminating route: start TLS on the bytes read so far (the ClientHello and anything after
 * it), make the client end live, and dial the upstream while the handshake runs.
 */
static void terminate(lg_conn_t *c, const lg_route_t *rt, const char *sni, size_t sni_len)
{
    lg_counters_t *cnt = lg_conn_counters(c);
    SSL_CTX *ctx = c->lis < rt->n_ctx ? rt->ctx[c->lis] : NULL;
    if (ctx == NULL && rt == c->decision) {
        /* A decision without cert or mtls of its own: the suspended route's context (its cert,
         * or the listener's defaultCert; lg_jsconf_decision checked that there is one). */
        const lg_route_t *held = &c->snap->routes[c->route];
        ctx = c->lis < held->n_ctx ? held->ctx[c->lis] : NULL;
    }
    if (ctx == NULL || lg_tls_start(c, ctx, sni, sni_len, rt->alpn, rt->alpn_len) != 0) {
        if (ctx == NULL) {
            LG_COUNT(cnt, no_route,
                     1); /* no context for this listener: cannot happen after config */
        } else {
            LG_COUNT(cnt, out_of_memory, 1);
        }
        lg_conn_close(c);
        return;
    }
    c->deadline = uv_now(&c->w->loop) + LG_UPSTREAM_CONNECT_MS; /* the dial below starts now */
    lg_conn_set_state(c, LG_CONN_HANDSHAKE);
    if (lg_relay_client_start(c) != 0) {
        lg_conn_close(c);
        return;
    }
    const uint8_t *raw;
    size_t raw_len;
    received(c, &raw, &raw_len);
    int rc = lg_tls_feed(c, raw, raw_len);
    release_received(c);
    if (rc != LG_TLS_OK) {
        lg_conn_tls_failed(c, rc); /* READY is impossible: the client's Finished is missing */
        return;
    }
    dial(c, &rt->upstreams[0]);
}

void lg_conn_route_to(lg_conn_t *c, const lg_route_t *rt)
{
    if (rt->n_upstreams == 0) {
        LG_COUNT(lg_conn_counters(c), no_route, 1);
        lg_conn_close(c);
        return;
    }
    if (rt->terminate_tls) {
        const char *sni = c->held_sni;
        if (sni == NULL && c->hello != NULL && c->hello->hello.has_sni) sni = c->hello->hello.sni;
        terminate(c, rt, sni, sni ? strlen(sni) : 0);
        return;
    }
    const uint8_t *raw;
    size_t raw_len;
    received(c, &raw, &raw_len);
    int rc = lg_relay_queue_copy(c, &c->c2u, raw, raw_len);
    release_received(c);
    if (rc != 0) {
        LG_COUNT(lg_conn_counters(c), out_of_memory, 1);
        lg_conn_close(c);
        return;
    }
    /* First upstream for now; balancing comes with the balancer. */
    dial(c, &rt->upstreams[0]);
}

/*
 * Route by SNI (NULL: no SNI, or not TLS; hello: the parsed ClientHello, or NULL for non-TLS),
 * then hold the connection for JS or continue on the route.
 */
static void route(lg_conn_t *c, const char *sni, size_t sni_len, const lg_hello_t *hello)
{
    int r = lg_router_lookup(&c->snap->router, sni, sni_len);
    if (r == LG_ROUTER_NONE) {
        LG_COUNT(lg_conn_counters(c), no_route, 1);
        lg_conn_close(c);
        return;
    }
    c->route = r;
    const lg_route_t *rt = &c->snap->routes[r];
    uv_read_stop((uv_stream_t *)&c->client);
    if (rt->suspended) {
        lg_suspend(c, rt, sni, sni_len, hello, c->hello->raw, c->hello->raw_len);
        hello_free(c);
        return;
    }
    lg_conn_route_to(c, rt);
}

static void hello_alloc(uv_handle_t *handle, size_t suggested, uv_buf_t *buf)
{
    (void)suggested;
    lg_conn_t *c = handle->data;
    buf->base = NULL;
    buf->len = 0;
    if (c->hello == NULL) {
        c->hello = lg_malloc(sizeof(*c->hello));
        if (c->hello == NULL) return; /* the read callback sees UV_ENOBUFS */
        c->w->n_hello++;
        LG_PUBLISH(c->w->pub_hello_buffers, c->w->n_hello);
        lg_hello_parser_init(&c->hello->parser);
        c->hello->raw_len = 0;
        c->hello->hello.has_sni = false; /* filled only when a hello is parsed */
    }
    buf->base = (char *)c->hello->raw + c->hello->raw_len;
    buf->len = sizeof(c->hello->raw) - c->hello->raw_len;
}

static void hello_read(uv_stream_t *s, ssize_t nread, const uv_buf_t *buf)
{
    (void)buf;
    lg_conn_t *c = s->data;
    if (c->state != LG_CONN_HELLO || nread == 0) return;
    if (nread < 0) {
        if (nread == UV_ENOBUFS && c->hello == NULL) {
            LG_COUNT(lg_conn_counters(c), out_of_memory, 1);
            lg_conn_close(c);
        } else if (nread == UV_ENOBUFS) {
            handshake_failed(c, HS_PROTOCOL); /* the hello outgrew its buffer */
        } else {
            handshake_failed(c, HS_CLOSED); /* closed or reset before the hello was complete */
        }
        return;
    }
    lg_hello_ctx_t *h = c->hello;
    h->raw_len += (size_t)nread;
    LG_COUNT(lg_conn_counters(c), bytes_from_clients, (uint64_t)nread);
    size_t end = 0;
    int r = lg_hello_parse(&h->parser, h->raw, h->raw_len, &h->hello, &end);
    switch (r) {
    case LG_AGAIN:
        return;
    case LG_OK:
        if (h->hello.has_sni) {
            route(c, h->hello.sni, h->hello.sni_len, &h->hello);
        } else {
            route(c, NULL, 0, &h->hello);
        }
        return;
    case LG_DECLINED:
        LG_COUNT(lg_conn_counters(c), not_tls, 1);
        route(c, NULL, 0, NULL);
        return;
    default:
        handshake_failed(c, HS_PROTOCOL);
        return;
    }
}

void lg_conn_accept(lg_worker_t *w, unsigned lis, int fd)
{
    lg_counters_t *cnt = &w->counters[lis];
    lg_conn_t *c = lg_calloc(1, sizeof(*c));
    if (c == NULL) {
        close(fd);
        atomic_fetch_sub_explicit(&w->engine->lis[lis].active, 1, memory_order_relaxed);
        if (w->engine->conf.listeners[lis].kind == LG_LISTENER_CONNECT) {
            atomic_fetch_sub_explicit(&w->engine->lis[lis].in_head, 1, memory_order_relaxed);
        }
        LG_COUNT(cnt, out_of_memory, 1);
        return;
    }
    c->w = w;
    c->lis = lis;
    c->route = -1;
    c->counted_active = true;
    c->snap = lg_snapshot_ref(lg_engine_snapshot(w->engine, &w->snap, &w->snap_gen));
    c->accepted_at = uv_now(&w->loop);
    c->last_activity = c->accepted_at;
    c->c2u.conn = c;
    c->u2c.conn = c;
    c->u2c.to_client = true;
    uv_tcp_init(&w->loop, &c->client);
    uv_timer_init(&w->loop, &c->timer);
    c->client.data = c;
    c->timer.data = c;
    c->next = w->conns;
    if (w->conns != NULL) w->conns->prev = c;
    w->conns = c;
    w->n_conns++;
    LG_PUBLISH(w->pub_conns, w->n_conns);
    LG_COUNT(cnt, total_connections, 1);
    c->state = LG_CONN_HELLO;

    c->is_connect = w->engine->conf.listeners[lis].kind == LG_LISTENER_CONNECT;
    c->in_head = c->is_connect; /* admission reserved an in-head slot */

    int rc = uv_tcp_open(&c->client, fd);
    if (rc != 0) {
        close(fd);
        lg_conn_close(c);
        return;
    }
    uv_tcp_nodelay(&c->client, 1);
    if (c->is_connect) {
        lg_connect_start(c);
        return;
    }
    lg_conn_set_state(c, LG_CONN_HELLO);
    rc = uv_read_start((uv_stream_t *)&c->client, hello_alloc, hello_read);
    if (rc != 0) lg_conn_close(c);
}
