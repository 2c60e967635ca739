/*
 * lg_conn.c — a connection's life on its worker: accept, ClientHello or CONNECT head, routing,
 * suspension, TLS, upstream dial, deadlines and closing (see lg_conn.h; lg_relay moves the bytes).
 *
 * State transitions go through set_state(), which checks them against LEGAL[] and arms the
 * state's one deadline:
 *   PROXY       the deadline of the state that follows, from accept (the header is part of it)
 *   HELLO       accept + tlsHandshakeTimeoutMs (absolute: trickled bytes do not extend it)
 *   HEAD        accept + connect.headTimeoutMs (absolute)
 *   AUTH        head complete + LG_VERIFY_TIMEOUT_MS (→ 503, refusedAuthBusy)
 *   RESOLVING   c->su->deadline (CONNECT head complete + connectTimeoutMs), shared with CONNECTING
 *   SUSPENDED   the suspend context's timeout (once extended for a claimed decision)
 *   HANDSHAKE   the earlier of accept + tlsHandshakeTimeoutMs and, while the upstream is being
 *               dialled, c->su->deadline
 *   CONNECTING  c->su->deadline: for routes, the end of the current attempt's share of the route's
 *               connectTimeoutMs (dial_attempt); CONNECT head complete + connectTimeoutMs for
 *               connect listeners
 *   RELAY       idleTimeoutMs after the last byte either way (from a terminated client: the
 *               last record with application data, see tls_from_client); the timer fires at the
 *               earliest possible expiry and re-arms itself for the remainder when bytes moved
 *               meanwhile, so the data path only stores a timestamp
 *   LINGER      now + LG_LINGER_MS
 *   CLOSING     none
 *
 * Bytes that arrive with or after the ClientHello (or the CONNECT head), before routing, are
 * kept and queued to the upstream first: nothing the client sent is dropped.
 *
 * The only callbacks here that arrive after the connection was marked closing are the close
 * callbacks: the mark itself stops reads, the timer, a lookup, a dial and the relay's I/O
 * (lg_dial and lg_relay hold the checks for the requests libuv completes late), so no handler
 * below needs to ask whether the connection is closing.
 */
#include "lg_conn.h"

#include <netinet/tcp.h>

#include <arpa/inet.h>
#include <errno.h>
#include <stdio.h>
#include <sys/socket.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

/* Legal transitions: LEGAL[from] has bit `to` set. CLOSING is final (transitions from it are
 * ignored: a nested failure may close a connection under a caller that goes on to advance it). */
#define B(s) (1u << (s))
static const uint16_t LEGAL[LG_CONN_N_STATES] = {
    [LG_CONN_PROXY] = B(LG_CONN_HELLO) | B(LG_CONN_HEAD) | B(LG_CONN_LINGER) | B(LG_CONN_CLOSING),
    [LG_CONN_HELLO] = B(LG_CONN_SUSPENDED) | B(LG_CONN_HANDSHAKE) | B(LG_CONN_CONNECTING) |
                      B(LG_CONN_LINGER) | B(LG_CONN_CLOSING),
    [LG_CONN_HEAD] = B(LG_CONN_AUTH) | B(LG_CONN_RESOLVING) | B(LG_CONN_CONNECTING) |
                     B(LG_CONN_LINGER) | B(LG_CONN_CLOSING),
    [LG_CONN_AUTH] =
        B(LG_CONN_RESOLVING) | B(LG_CONN_CONNECTING) | B(LG_CONN_LINGER) | B(LG_CONN_CLOSING),
    [LG_CONN_RESOLVING] = B(LG_CONN_CONNECTING) | B(LG_CONN_LINGER) | B(LG_CONN_CLOSING),
    [LG_CONN_SUSPENDED] =
        B(LG_CONN_SUSPENDED) | B(LG_CONN_HANDSHAKE) | B(LG_CONN_CONNECTING) | B(LG_CONN_CLOSING),
    [LG_CONN_HANDSHAKE] = B(LG_CONN_HANDSHAKE) | B(LG_CONN_CONNECTING) | B(LG_CONN_RELAY) |
                          B(LG_CONN_LINGER) | B(LG_CONN_CLOSING),
    [LG_CONN_CONNECTING] =
        B(LG_CONN_CONNECTING) | B(LG_CONN_RELAY) | B(LG_CONN_LINGER) | B(LG_CONN_CLOSING),
    [LG_CONN_RELAY] = B(LG_CONN_LINGER) | B(LG_CONN_CLOSING),
    [LG_CONN_LINGER] = B(LG_CONN_CLOSING),
    [LG_CONN_CLOSING] = 0,
};
#undef B

static void on_timer(lg_conn_t *c);
static void close_why(lg_conn_t *c, int why);

static lg_counters_t *counters(lg_conn_t *c)
{
    return &c->relay.w->counters[c->lis];
}

static uint64_t now_ms(const lg_conn_t *c)
{
    return uv_now(c->relay.w->loop);
}

/*
 * The deadlines. Every connection's one deadline is a node in the worker's heap (lg_theap: 24
 * bytes a connection where a uv_timer_t took 152), and one libuv timer is armed for the earliest.
 * deadlines_update() re-arms that timer when the earliest deadline changed.
 */
static void on_deadlines(uv_timer_t *t);

static void deadlines_update(lg_wctx_t *w)
{
    lg_theap_node_t *first = lg_theap_min(&w->deadlines);
    if (first == NULL) {
        if (w->deadline_due != 0) uv_timer_stop(&w->deadline_t);
        w->deadline_due = 0;
        return;
    }
    if (first->when == w->deadline_due) return;
    uint64_t now = uv_now(w->loop);
    uv_timer_start(&w->deadline_t, on_deadlines, first->when > now ? first->when - now : 0, 0);
    w->deadline_due = first->when;
}

/* The worker's deadline timer: run the timers of the connections that are due. Only as many as
 * the heap held on entry, so that a deadline set for "now" inside on_timer waits for the next
 * turn (as a libuv timer re-armed with 0 would). */
static void on_deadlines(uv_timer_t *t)
{
    lg_wctx_t *w = t->data;
    w->deadline_due = 0;
    uint64_t now = uv_now(w->loop);
    for (size_t n = w->deadlines.n; n > 0; n--) {
        lg_theap_node_t *first = lg_theap_min(&w->deadlines);
        if (first == NULL || first->when > now) break;
        lg_theap_remove(&w->deadlines, first);
        on_timer(LG_CONTAINER_OF(first, lg_conn_t, timer));
    }
    deadlines_update(w);
}

static void arm(lg_conn_t *c, uint64_t ms)
{
    lg_theap_set(&c->relay.w->deadlines, &c->timer, now_ms(c) + ms);
    deadlines_update(c->relay.w);
}

static void disarm(lg_conn_t *c)
{
    lg_theap_remove(&c->relay.w->deadlines, &c->timer);
    deadlines_update(c->relay.w);
}

/* Arm the timer for an absolute loop time (at least 1 ms from now). */
static void arm_at(lg_conn_t *c, uint64_t when)
{
    uint64_t now = now_ms(c);
    arm(c, when > now ? when - now : 1);
}

static uint32_t idle_ms(const lg_conn_t *c)
{
    return c->relay.w->conf->listeners[c->lis].idle_timeout_ms;
}

/* The TCP options of every client and TCP upstream socket: TCP_NODELAY, and tcpKeepalive's four
 * (none when its idle is 0, but SO_KEEPALIVE cleared on a socket that may have inherited it),
 * each set once (uv_tcp_keepalive would set its own interval and count first: two more syscalls
 * per socket). */
int lg_conn_sockopts(int fd, const lg_config_t *conf, bool fresh)
{
    int on = 1, off = 0, idle = (int)conf->keepalive_idle_s,
        intvl = (int)conf->keepalive_interval_s, cnt = (int)conf->keepalive_count;
    int rc = setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &on, sizeof(on));
    if (idle == 0) {
        if (!fresh) rc |= setsockopt(fd, SOL_SOCKET, SO_KEEPALIVE, &off, sizeof(off));
        return rc;
    }
    rc |= setsockopt(fd, SOL_SOCKET, SO_KEEPALIVE, &on, sizeof(on));
    rc |= setsockopt(fd, IPPROTO_TCP, TCP_KEEPIDLE, &idle, sizeof(idle));
    rc |= setsockopt(fd, IPPROTO_TCP, TCP_KEEPINTVL, &intvl, sizeof(intvl));
    rc |= setsockopt(fd, IPPROTO_TCP, TCP_KEEPCNT, &cnt, sizeof(cnt));
    return rc;
}

static bool sockopt_is(int fd, int level, int name, int want)
{
    int v = -1;
    socklen_t len = sizeof(v);
    return getsockopt(fd, level, name, &v, &len) == 0 && len == sizeof(v) &&
           (name == SO_KEEPALIVE || name == TCP_NODELAY ? v != 0 : v) == want;
}

bool lg_conn_sockopts_match(int fd, const lg_config_t *conf)
{
    int idle = (int)conf->keepalive_idle_s;
    if (!sockopt_is(fd, IPPROTO_TCP, TCP_NODELAY, 1) ||
        !sockopt_is(fd, SOL_SOCKET, SO_KEEPALIVE, idle != 0)) {
        return false;
    }
    return idle == 0 ||
           (sockopt_is(fd, IPPROTO_TCP, TCP_KEEPIDLE, idle) &&
            sockopt_is(fd, IPPROTO_TCP, TCP_KEEPINTVL, (int)conf->keepalive_interval_s) &&
            sockopt_is(fd, IPPROTO_TCP, TCP_KEEPCNT, (int)conf->keepalive_count));
}

/*
 * Arm the relaying connection's timer for the earlier of its idle expiry (idleTimeoutMs after
 * the last byte) and, once the upstream's half is closed toward a client that keeps its own
 * open, its half-close expiry (halfCloseTimeoutMs after the last byte).
 */
static void relay_arm(lg_conn_t *c)
{
    uint64_t next = UINT64_MAX;
    uint32_t idle = idle_ms(c), half = c->relay.w->conf->half_close_ms;
    if (idle > 0) next = c->relay.last_activity + idle;
    if (c->half_closed && half > 0) next = LG_MIN(next, c->relay.last_activity + half);
    if (next == UINT64_MAX) {
        disarm(c);
    } else {
        arm_at(c, next);
    }
}

static uint64_t handshake_deadline(const lg_conn_t *c)
{
    return c->su->hs_start + c->snap->protection[c->lis].tls_handshake_timeout_ms;
}

_Static_assert(LG_CONN_N_STATES <= LG_WCTX_STATES, "lg_wctx_t.n_states is too small");

/* Designated: a name can never drift from its state. Every state has one (checked below). */
static const char *const STATE_NAMES[LG_CONN_N_STATES] = {
    [LG_CONN_PROXY] = "proxy",         [LG_CONN_HELLO] = "hello",
    [LG_CONN_HEAD] = "head",           [LG_CONN_AUTH] = "auth",
    [LG_CONN_RESOLVING] = "resolving", [LG_CONN_SUSPENDED] = "suspended",
    [LG_CONN_HANDSHAKE] = "handshake", [LG_CONN_CONNECTING] = "connecting",
    [LG_CONN_RELAY] = "relay",         [LG_CONN_LINGER] = "linger",
    [LG_CONN_CLOSING] = "closing",
};
_Static_assert(LG_CONN_CLOSING == LG_CONN_N_STATES - 1, "STATE_NAMES: a state without a name");

const char *lg_conn_state_name(unsigned s)
{
    return s < LG_CONN_N_STATES ? STATE_NAMES[s] : NULL;
}

/* Count a connection out of its state (from == LG_CONN_N_STATES: it is new) and into `to`
 * (LG_CONN_N_STATES: it is gone), published for the stop report. */
static void count_state(lg_wctx_t *w, unsigned from, unsigned to)
{
    if (from < LG_CONN_N_STATES) {
        w->n_states[from]--;
        LG_PUBLISH(w->pub_states[from], w->n_states[from]);
    }
    if (to < LG_CONN_N_STATES) {
        w->n_states[to]++;
        LG_PUBLISH(w->pub_states[to], w->n_states[to]);
    }
}

/* Move to a state and arm its deadline (the one place transitions happen). */
static void set_state(lg_conn_t *c, lg_conn_state_t s)
{
    if (c->state == LG_CONN_CLOSING) return;
    if (!(LEGAL[c->state] & (1u << s))) {
        /* A bug: count it and close rather than run a state machine that is off its rails. */
        LG_COUNT(counters(c), internal_errors, 1);
        close_why(c, LG_CLOSE_ERROR);
        return;
    }
    count_state(c->relay.w, c->state, s);
    c->state = s;
    switch (s) {
    case LG_CONN_HELLO:
        arm_at(c, handshake_deadline(c));
        break;
    case LG_CONN_HEAD:
        arm_at(c, c->accepted_at + c->relay.w->conf->listeners[c->lis].head_timeout_ms);
        break;
    case LG_CONN_AUTH:
        arm(c, LG_VERIFY_TIMEOUT_MS);
        break;
    case LG_CONN_RESOLVING:
    case LG_CONN_CONNECTING:
        arm_at(c, c->su->deadline);
        break;
    case LG_CONN_SUSPENDED:
        arm(c, c->su->held->timeout_ms);
        break;
    case LG_CONN_HANDSHAKE: {
        uint64_t hs = handshake_deadline(c);
        arm_at(c, c->su->dial != NULL && c->su->deadline < hs ? c->su->deadline : hs);
        break;
    }
    case LG_CONN_LINGER:
        arm(c, LG_LINGER_MS);
        break;
    case LG_CONN_RELAY:
        c->relay.last_activity = now_ms(c);
        relay_arm(c);
        break;
    default:
        disarm(c);
        break;
    }
}

/* ---- why it ends (the access record's close reason) ---------------------------------------- */

/* Note why the connection ends (LG_CLOSE_*): the first reason noted wins, so a close that
 * follows from an earlier failure keeps that failure's name. */
static void note_why(lg_conn_t *c, int why)
{
    if (c->why == LG_CLOSE_NONE) c->why = (uint8_t)why;
}

static void close_why(lg_conn_t *c, int why)
{
    note_why(c, why);
    lg_conn_close(c);
}

/* ---- counting ---------------------------------------------------------------------------- */

enum { HS_TIMEOUT, HS_PROTOCOL, HS_CLOSED, HS_CERTIFICATE, HS_NO_CERTIFICATE };

static void count_handshake_failure(lg_conn_t *c, int kind)
{
    lg_counters_t *cnt = counters(c);
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
    close_why(c, kind == HS_TIMEOUT ? LG_CLOSE_HANDSHAKE_TIMEOUT : LG_CLOSE_HANDSHAKE_FAILED);
}

static const lg_protection_t *protection(const lg_conn_t *c)
{
    return &c->snap->protection[c->lis];
}

/* Refused by protection after accept: counted, reported, closed (a connect listener answers
 * 403 or 429 first). */
static void respond(lg_conn_t *c, int status);

static void refused(lg_conn_t *c, int reason, const char *ja3, const char *ja4)
{
    lg_protect_refused(c->relay.w, c->lis, protection(c), reason, &c->peer, ja3, ja4);
    if (c->why == LG_CLOSE_NONE) c->why_block = (uint8_t)reason;
    note_why(c, LG_CLOSE_REFUSED_BLOCK);
    if (c->is_connect && c->state == LG_CONN_PROXY && reason != LG_BLOCK_PROXY_HEADER) {
        respond(c, lg_connect_refusal_status(reason));
        return;
    }
    lg_conn_close(c);
}

/* The TLS toward the upstream, if the route's upstreams speak TLS and its connect began. */
static lg_tls_t *uptls(const lg_conn_t *c)
{
    return c->upside != NULL ? c->upside->tls : NULL;
}

/* The route a routed connection follows: its decision, or its snapshot's route. */
static const lg_route_t *route_of(const lg_conn_t *c)
{
    return !c->is_connect && c->decision != NULL ? c->decision : &c->snap->routes[c->route];
}

static void out_of_memory(lg_conn_t *c)
{
    LG_COUNT(counters(c), out_of_memory, 1);
    close_why(c, LG_CLOSE_OUT_OF_MEMORY);
}

static void upstream_failed(lg_conn_t *c)
{
    LG_COUNT(counters(c), upstream_connect_failures, 1);
    if (c->rstat != NULL) atomic_fetch_add_explicit(&c->rstat->failures, 1, memory_order_relaxed);
    close_why(c, LG_CLOSE_UPSTREAM_FAILED);
}

/* ---- phase contexts ---------------------------------------------------------------------- */

/* Starting to relay: free the setup contexts unless one is still in use (then at the end). The
 * connection's `su` then points at its worker's zeroed one (w->no_setup: the first connection's,
 * kept, so that this needs no allocation that could fail), which reads as "none" everywhere and
 * is never given a non-zero value: the phases that set these fields all come before relaying. */
static void setup_release(lg_conn_t *c)
{
    lg_setup_t *s = c->su;
    if (c->setup_gone || s->dialer || s->resolve || s->verify || s->hello || s->head || s->held ||
        s->proxyin || s->dial || s->pp)
        return;
    lg_wctx_t *w = c->relay.w;
    if (w->no_setup == NULL) {
        memset(s, 0, sizeof(*s));
        w->no_setup = s;
    } else {
        lg_free(s);
    }
    c->su = w->no_setup;
    c->setup_gone = true;
}

static void hello_free(lg_conn_t *c)
{
    if (c->su->hello == NULL) return;
    lg_free(c->su->hello);
    c->su->hello = NULL;
    c->relay.w->n_hello--;
    LG_PUBLISH(c->relay.w->pub_hello_buffers, c->relay.w->n_hello);
}

static void head_free(lg_conn_t *c)
{
    lg_connect_head_free(c->su->head);
    c->su->head = NULL;
}

/* Give back an admission's count in its source's share of the head slots. */
static void head_src_release(lg_lis_state_t *st, lg_admission_t *adm)
{
    if (!adm->head_src_held) return;
    adm->head_src_held = false;
    atomic_fetch_sub_explicit(&st->head_src[0][adm->head_src[0]], 1, memory_order_relaxed);
    atomic_fetch_sub_explicit(&st->head_src[1][adm->head_src[1]], 1, memory_order_relaxed);
}

/* Leave the CONNECT head phase: give back the listener's in-head slot and the source's share. */
static void leave_head(lg_conn_t *c)
{
    if (!c->in_head) return;
    c->in_head = false;
    atomic_fetch_sub_explicit(&c->relay.w->lis[c->lis].in_head, 1, memory_order_relaxed);
    head_src_release(&c->relay.w->lis[c->lis], &c->adm);
}

/* The bytes the client has sent so far: a held connection's copy, or the hello buffer. */
static void received(const lg_conn_t *c, const uint8_t **raw, size_t *len)
{
    if (c->su->held != NULL) {
        *raw = c->su->held->held;
        *len = c->su->held->len;
    } else {
        *raw = c->su->hello->raw;
        *len = c->su->hello->raw_len;
    }
}

static void release_received(lg_conn_t *c)
{
    hello_free(c);
    lg_suspend_release(c->relay.w->pending, c->su->held);
    c->su->held = NULL;
}

/* ---- the access record ------------------------------------------------------------------- */

/*
 * Keep what the access record needs from the ClientHello once routing begins (SNI, JA4), only
 * while access events are on: with them off nothing is allocated or computed. The JA4 comes
 * through the worker's fingerprint cache, which protection's check then finds warm.
 */
static void keep_access(lg_conn_t *c, const char *sni, size_t sni_len, const lg_hello_t *hello)
{
    if (c->acc != NULL || !lg_events_access_on(c->relay.w->events)) return;
    c->acc = lg_malloc(sizeof(*c->acc) + sni_len + 1);
    if (c->acc == NULL) return; /* the record goes without them */
    if (sni_len > 0) memcpy(c->acc->sni, sni, sni_len);
    c->acc->sni[sni_len] = '\0';
    c->acc->ja4[0] = '\0';
    if (hello != NULL) {
        char ja3[LG_JA3_HEX + 1];
        lg_ja_fingerprints_cached(&c->relay.w->ja_cache, hello, LG_JA_WANT_JA4, ja3, c->acc->ja4);
    }
}

static uint8_t decision_of(const lg_conn_t *c)
{
    if (c->is_connect) return c->status == 200 ? LG_DECISION_TUNNEL : LG_DECISION_NONE;
    if (c->route < 0) return LG_DECISION_NONE;
    if (c->decision != NULL) {
        return c->decision->terminate_tls ? LG_DECISION_SUSP_TERM : LG_DECISION_SUSP_PASS;
    }
    const lg_route_t *rt = &c->snap->routes[c->route];
    if (rt->suspended) return LG_DECISION_SUSPENDED;
    return rt->terminate_tls ? LG_DECISION_TERMINATE : LG_DECISION_PASSTHROUGH;
}

/* Build the access record from what the connection kept and post it (full queue: dropped and
 * counted in eventsDropped and accessEventsDropped; the worker never waits). */
static void post_access(lg_conn_t *c)
{
    lg_wctx_t *w = c->relay.w;
    lg_event_t *ev = lg_event_alloc(w->events, LG_EV_ACCESS, w->index);
    if (ev == NULL) return;
    lg_ev_access_t *e = &ev->u.access;
    e->listener = c->lis;
    e->route = c->route;
    e->why = c->why != LG_CLOSE_NONE ? c->why : c->eof_first;
    if (e->why == LG_CLOSE_NONE) e->why = LG_CLOSE_ERROR;
    e->block = c->why_block;
    e->decision = decision_of(c);
    e->status = c->status;
    e->peer_port = c->peer.port;
    lg_peer_format(&c->peer, e->peer_ip, sizeof(e->peer_ip));
    uint64_t out = c->relay.u2c.bytes;
    e->bytes_in = c->relay.c2u.bytes;
    e->bytes_out = out > c->resp_len ? out - c->resp_len : 0; /* resp_len: connect only */
    e->duration_ms = now_ms(c) - c->accepted_at;
    struct timespec ts;
    if (clock_gettime(CLOCK_REALTIME, &ts) == 0) {
        e->end_ms = (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
    }
    if (c->acc != NULL) {
        snprintf(e->sni, sizeof(e->sni), "%s", c->acc->sni);
        snprintf(e->ja4, sizeof(e->ja4), "%s", c->acc->ja4);
    }
    if (c->route >= 0)
        snprintf(e->route_sni, sizeof(e->route_sni), "%s", c->snap->routes[c->route].sni);
    if (c->upstream != NULL) {
        snprintf(e->upstream, sizeof(e->upstream), "%s", c->upstream->reg.identity);
    } else if (c->is_connect && c->tunnel != NULL) {
        bool v6 = strchr(c->tunnel->target, ':') != NULL;
        snprintf(e->upstream, sizeof(e->upstream), "%s%s%s:%u", v6 ? "[" : "", c->tunnel->target,
                 v6 ? "]" : "", c->tunnel->port);
    }
    if (c->tls != NULL && lg_tls_handshake_done(c->tls)) {
        lg_tls_info_t info;
        lg_tls_info(c->tls, &info);
        if (info.version != NULL)
            snprintf(e->tls_version, sizeof(e->tls_version), "%s", info.version);
        if (info.cipher != NULL) snprintf(e->cipher, sizeof(e->cipher), "%s", info.cipher);
    }
    lg_events_post(w->events, ev);
}

/* ---- closing ----------------------------------------------------------------------------- */

/*
 * Give back the route's and the upstream's active counts. Done when the connection closes (with
 * activeConnections), not when its handles are gone a loop turn or more later: a connection that
 * follows at once is then balanced (leastConn) on the true count. Once only.
 */
static void release_counts(lg_conn_t *c)
{
    if (c->counts_released) return;
    c->counts_released = true;
    if (c->rstat != NULL) atomic_fetch_sub_explicit(&c->rstat->active, 1, memory_order_relaxed);
    if (c->upstream != NULL) lg_upstate_release(&c->upstream->st);
}

static void conn_free(lg_conn_t *c)
{
    lg_wctx_t *w = c->relay.w;
    if (lg_events_access_on(w->events)) post_access(c);
    lg_free(c->acc);
    if (c->is_connect) {
        leave_head(c);
        uint64_t out = c->relay.u2c.bytes;
        lg_connect_post_tunnel(w->events, w->index, c->lis, c->tunnel, c->status,
                               c->relay.c2u.bytes, out > c->resp_len ? out - c->resp_len : 0,
                               now_ms(c) - c->accepted_at);
    }
    head_free(c);
    if (c->is_connect) lg_connect_tunnel_free(c->tunnel);
    lg_free(c->su->proxyin);
    lg_free(c->su->dial);
    lg_free(c->su->pp);
    if (c->upside != NULL) {
        lg_tls_free(c->upside->tls);
        lg_bufq_clear(&c->upside->hs, &w->pool);
        lg_bufq_clear(&c->upside->clear, &w->pool);
        lg_bufq_clear(&c->upside->staged, &w->pool);
        lg_bufq_clear(&c->upside->early, &w->pool);
        lg_free(c->upside);
    }
    release_counts(c);
    if (c->rstat != NULL) {
        lg_routestat_t *r = c->rstat;
        atomic_fetch_add_explicit(&r->bytes_to, c->relay.c2u.bytes, memory_order_relaxed);
        atomic_fetch_add_explicit(&r->bytes_from, c->relay.u2c.bytes, memory_order_relaxed);
    }
    if (c->upstream != NULL) {
        lg_upshared_t *u = c->upstream;
        atomic_fetch_add_explicit(&u->bytes_to, c->relay.c2u.bytes, memory_order_relaxed);
        atomic_fetch_add_explicit(&u->bytes_from, c->relay.u2c.bytes, memory_order_relaxed);
    }
    lg_protect_release(w, &c->adm, &c->peer);
    lg_tls_free(c->tls);
    if (!c->is_connect && c->decision != NULL) lg_route_destroy(c->decision);
    lg_relay_release(&c->relay);
    release_received(c);
    if (!c->setup_gone) lg_free(c->su);
    lg_snapshot_unref(c->snap); /* it is in no list: the reaper took it off w->reap */
    w->n_conns--;
    LG_PUBLISH(w->pub_conns, w->n_conns);
    count_state(w, c->state, LG_CONN_N_STATES);
    atomic_fetch_sub_explicit(&w->lis[c->lis].active, 1, memory_order_relaxed);
    lg_free(c);
    if (w->conn_gone != NULL) w->conn_gone(w->up_arg);
}

/* A handle (or the dialer) of this connection finished closing. */
static void closed_one(void *arg)
{
    lg_conn_t *c = arg;
    if (--c->pending_closes == 0 && c->torn_down) conn_free(c);
}

static void on_client_closed(uv_handle_t *h)
{
    closed_one(LG_CONTAINER_OF(h, lg_conn_t, client));
}

static void on_up_closed(uv_handle_t *h)
{
    closed_one(lg_upsock_free(h));
}

static void reap(uv_idle_t *h);

void lg_conn_close(lg_conn_t *c)
{
    if (c->state == LG_CONN_CLOSING) return;
    count_state(c->relay.w, c->state, LG_CONN_CLOSING);
    c->state = LG_CONN_CLOSING;
    /* Closed as far as metrics go from the decision on (activeConnections drops before the
     * client sees the FIN; the route's and upstream's active counts first); the listener's slot
     * is given back when the socket is gone. */
    release_counts(c);
    LG_COUNT(counters(c), closed_connections, 1);
    /* Nothing may call back into the connection any more, except what is noted in the file
     * comment: stop reading, the timer, the relay's I/O, a lookup, a dial that has not reported,
     * and take it out of the pending table (a decision then finds nothing). */
    uv_read_stop((uv_stream_t *)&c->client);
    disarm(c);
    lg_relay_stop(&c->relay);
    lg_resolve_cancel(c->su->resolve);
    c->su->resolve = NULL;
    lg_verify_cancel(c->su->verify);
    c->su->verify = NULL;
    lg_dial_cancel(c->su->dialer);
    c->su->dialer = NULL;
    if (uptls(c) != NULL && c->su->dial != NULL && c->up != NULL) uv_read_stop(&c->up->h.stream);
    lg_suspend_release(c->relay.w->pending, c->su->held);
    c->su->held = NULL;
    /* From the worker's live connections to its reap list (the same links: a connection is in
     * one list at a time, so it needs no third pointer). */
    lg_wctx_t *w = c->relay.w;
    if (c->prev != NULL) {
        c->prev->next = c->next;
    } else {
        w->conns = c->next;
    }
    if (c->next != NULL) c->next->prev = c->prev;
    c->prev = NULL;
    c->next = w->reap;
    w->reap = c;
    if (!w->reap_active) {
        w->reap_active = true;
        uv_idle_start(&w->reap_idle, reap);
    }
}

/* The reaper: close the marked connections' handles, from the top of the loop. */
static void reap(uv_idle_t *h)
{
    lg_wctx_t *w = h->data;
    while (w->reap != NULL) {
        lg_conn_t *c = w->reap;
        w->reap = c->next;
        c->next = NULL;
        c->pending_closes += 1;
        uv_close((uv_handle_t *)&c->client, on_client_closed);
        if (c->up != NULL) {
            c->pending_closes++;
            lg_upsock_close(c->up, c, on_up_closed);
            c->up = NULL;
        }
        c->torn_down = true;
    }
    uv_idle_stop(&w->reap_idle);
    w->reap_active = false;
}

void lg_conn_reaper_init(lg_wctx_t *w)
{
    uv_idle_init(w->loop, &w->reap_idle);
    w->reap_idle.data = w;
    uv_timer_init(w->loop, &w->deadline_t);
    w->deadline_t.data = w;
}

static void refresh_abandon_all(lg_wctx_t *w);

void lg_conn_reaper_close(lg_wctx_t *w, uv_close_cb cb)
{
    refresh_abandon_all(w);
    uv_close((uv_handle_t *)&w->reap_idle, cb);
    uv_close((uv_handle_t *)&w->deadline_t, cb);
    lg_theap_free(&w->deadlines); /* no connection is left */
    lg_free(w->no_setup);
    w->no_setup = NULL;
}

void lg_conn_close_all(lg_wctx_t *w)
{
    /* Each close moves the first live connection to the reap list (none in w->conns is closing). */
    while (w->conns != NULL)
        close_why(w->conns, LG_CLOSE_STOPPED);
}

/* ---- relaying ---------------------------------------------------------------------------- */

static void linger_start(lg_conn_t *c);

/* Start relaying both ways on the connected upstream. */
static int encrypt_queue(lg_conn_t *c, lg_tls_t *t, lg_bufq_t *q, lg_flow_t *to);

static void relay_up(lg_conn_t *c)
{
    if (c->upside != NULL && c->upside->early.bytes > 0 &&
        encrypt_queue(c, c->tls, &c->upside->early, &c->relay.u2c) != 0) {
        out_of_memory(c);
        return;
    }
    set_state(c, LG_CONN_RELAY);
    setup_release(c);
    lg_relay_attach_client(&c->relay, (uv_stream_t *)&c->client);
    lg_relay_attach_upstream(&c->relay, &c->up->h.stream);
    if (lg_relay_start(&c->relay) != 0) out_of_memory(c);
}

static void tls_failed(lg_conn_t *c, int reason);
static lg_buf_t *pp_header(lg_conn_t *c, const lg_route_t *rt, const char *sni, const char *ja3,
                           const char *ja4);

static lg_tls_io_t tls_io(lg_conn_t *c)
{
    lg_tls_io_t io = {&c->relay.w->pool, &c->relay.u2c.q, &c->relay.c2u.q, 0, 0};
    return io;
}

/* ---- TLS toward the upstream ---------------------------------------------------------------
 *
 * A terminated route's upstream may be TLS too (upstreams[i].tls). Its handshake is part of the
 * dial: after the TCP connect the connection reads and writes the upstream socket itself
 * (uptls_read, uptls_flush) until the handshake completes, so a refused certificate is a failed
 * attempt like a refused connect and fails over. Plaintext the client sends meanwhile waits in
 * upside->staged. Once relaying, every read is decrypted by one side and encrypted by the other.
 */

/* Encrypt (and consume) the plaintext in q with t, onto flow `to`. Returns 0 or -ENOMEM. */
static int encrypt_queue(lg_conn_t *c, lg_tls_t *t, lg_bufq_t *q, lg_flow_t *to)
{
    lg_tls_io_t io = {&c->relay.w->pool, &to->q, NULL, 0, 0};
    int rc = 0;
    while (q->bytes > 0 && rc == 0) {
        lg_buf_t *b = q->head;
        size_t n = b->len;
        if (lg_tls_encrypt(t, &io, b->data + b->off, n) != LG_TLS_OK) rc = -ENOMEM;
        lg_bufq_consume(q, &c->relay.w->pool, n);
    }
    lg_bufq_clear(q, &c->relay.w->pool);
    lg_relay_queued(&c->relay, to, io.cipher_new);
    return rc;
}

/* Plaintext just decrypted from the client (upside->clear): to the upstream, or staged while
 * the upstream's handshake runs. Returns 0 or -ENOMEM. */
static int uptls_forward(lg_conn_t *c)
{
    lg_upside_t *u = c->upside;
    if (u->clear.bytes == 0) return 0;
    if (uptls(c) == NULL || c->su->dial != NULL) {
        lg_bufq_move(&u->staged, &u->clear, &c->relay.w->pool);
        /* Bounded like a queue: c2u's own watermark never sees these bytes (its queue is
         * empty until the handshake is done), so without this a client streaming while the
         * upstream's dial or handshake takes its time grew the worker without limit. */
        if (u->staged.mem >= c->relay.w->conf->max_queued_per_flow) {
            lg_relay_pause(&c->relay, &c->relay.c2u);
        }
        return 0;
    }
    return encrypt_queue(c, uptls(c), &u->clear, &c->relay.c2u);
}

/* close_notify toward a TLS upstream (the client's data has ended). */
static void uptls_close_notify(lg_conn_t *c)
{
    if (uptls(c) == NULL || c->su->dial != NULL) return;
    lg_tls_io_t io = {&c->relay.w->pool, &c->relay.c2u.q, NULL, 0, 0};
    lg_tls_close_notify(uptls(c), &io);
    lg_relay_queued(&c->relay, &c->relay.c2u, io.cipher_new);
}

/* A read from a TLS upstream while relaying: decrypt, then encrypt for the client. */
static void uptls_from_upstream(lg_conn_t *c, lg_buf_t *b, size_t n)
{
    lg_wctx_t *w = c->relay.w;
    lg_tls_io_t io = {&w->pool, &c->relay.c2u.q, &c->upside->clear, 0, 0};
    int rc = lg_tls_feed(uptls(c), &io, b->data, n);
    lg_buf_put(&w->pool, b);
    lg_relay_queued(&c->relay, &c->relay.c2u, io.cipher_new);
    if (rc != LG_TLS_OK) {
        LG_COUNT(counters(c), upstream_tls_failures, 1);
        close_why(c, LG_CLOSE_TLS_ERROR);
        return;
    }

    if (encrypt_queue(c, c->tls, &c->upside->clear, &c->relay.u2c) != 0) {
        out_of_memory(c);
        return;
    }
    if (lg_tls_peer_closed(uptls(c)) && !c->relay.u2c.eof) {
        /* The upstream's close_notify: close_notify to the client, then FIN. */
        if (c->eof_first == LG_CLOSE_NONE) c->eof_first = LG_CLOSE_UPSTREAM_CLOSED;
        lg_tls_io_t cio = tls_io(c);
        lg_tls_close_notify(c->tls, &cio);
        lg_relay_queued(&c->relay, &c->relay.u2c, cio.cipher_new);
        lg_relay_end(&c->relay, &c->relay.u2c);
    }
}

/* A handshake write the socket could not take at once: a copy, freed by its callback. */
typedef struct hs_write_s {
    uv_write_t req;
    uint8_t data[];
} hs_write_t;

static void hs_written(uv_write_t *req, int status)
{
    (void)status; /* a failure shows as a read error or the attempt's deadline */
    lg_free(LG_CONTAINER_OF(req, hs_write_t, req));
}

/* Write the upstream handshake's queued ciphertext. Returns 0 or a libuv error. */
static int uptls_flush(lg_conn_t *c)
{
    lg_bufq_t *q = &c->upside->hs;
    uv_stream_t *st = &c->up->h.stream;
    while (q->bytes > 0) {
        uint8_t *bases[8];
        size_t lens[8];
        uv_buf_t bufs[8];
        size_t k = lg_bufq_peek(q, q->bytes, bases, lens, 8, NULL);
        for (size_t i = 0; i < k; i++)
            bufs[i] = uv_buf_init((char *)bases[i], (unsigned)lens[i]);
        int n = uv_try_write(st, bufs, (unsigned)k);
        if (n > 0) {
            lg_bufq_consume(q, &c->relay.w->pool, (size_t)n);
            continue;
        }
        if (n != UV_EAGAIN) return n;
        size_t total = q->bytes, off = 0;
        hs_write_t *hw = lg_malloc(sizeof(*hw) + total);
        if (hw == NULL) return UV_ENOMEM;
        for (const lg_buf_t *b = q->head; b != NULL; b = b->next) {
            memcpy(hw->data + off, b->data + b->off, b->len);
            off += b->len;
        }
        uv_buf_t one = uv_buf_init((char *)hw->data, (unsigned)total);
        int rc = uv_write(&hw->req, st, &one, 1, hs_written);
        if (rc != 0) {
            lg_free(hw);
            return rc;
        }
        lg_bufq_consume(q, &c->relay.w->pool, total);
    }
    return 0;
}

static void uptls_alloc(uv_handle_t *h, size_t suggested, uv_buf_t *buf)
{
    (void)suggested;
    lg_conn_t *c = h->data;
    lg_buf_t *b = lg_buf_get(&c->relay.w->pool);
    buf->base = b != NULL ? (char *)b->data : NULL; /* NULL: the read callback sees UV_ENOBUFS */
    buf->len = b != NULL ? b->cap : 0;
}

static void attempt_failed(lg_conn_t *c);
static void attempt_succeeded(lg_conn_t *c);
static void relay_up(lg_conn_t *c);

/* The upstream's handshake completed: the dial has succeeded. */
static void uptls_ready(lg_conn_t *c)
{
    uv_read_stop(&c->up->h.stream);
    if (lg_tls_resumed(uptls(c))) LG_COUNT(counters(c), upstream_tls_resumed, 1);
    attempt_succeeded(c);
    if (encrypt_queue(c, uptls(c), &c->upside->staged, &c->relay.c2u) != 0) {
        out_of_memory(c);
        return;
    }
    /* The client's close_notify came while this handshake ran (uptls_close_notify could not
     * send it then): it follows the staged bytes, so the upstream sees an end, not a cut. */
    if (c->relay.c2u.eof) uptls_close_notify(c);
    if (c->state == LG_CONN_HANDSHAKE) {
        set_state(c, LG_CONN_HANDSHAKE); /* only the client's handshake deadline is left */
        return;
    }
    relay_up(c);
}

static void uptls_read(uv_stream_t *s, ssize_t nread, const uv_buf_t *buf)
{
    lg_conn_t *c = s->data;
    lg_buf_t *b =
        buf->base != NULL ? (lg_buf_t *)(void *)(buf->base - offsetof(lg_buf_t, data)) : NULL;
    if (nread == 0) {
        lg_buf_put(&c->relay.w->pool, b);
        return;
    }
    int rc = LG_TLS_E_PROTOCOL;
    if (nread > 0) {
        lg_tls_io_t io = {&c->relay.w->pool, &c->upside->hs, &c->upside->early, 0, 0};
        rc = lg_tls_feed(uptls(c), &io, b->data, (size_t)nread);
        if (uptls_flush(c) != 0 && rc == LG_TLS_OK) rc = LG_TLS_E_PROTOCOL;
    }
    lg_buf_put(&c->relay.w->pool, b); /* NULL is ignored */
    if (rc == LG_TLS_OK) return;
    if (rc == LG_TLS_READY) {
        uptls_ready(c);
        return;
    }
    /* Refused certificate, protocol error, or the upstream closed: a failed attempt. */
    LG_COUNT(counters(c), upstream_tls_failures, 1);
    attempt_failed(c);
}

static void keep_session(void *arg, SSL_SESSION *s)
{
    lg_upshared_keep_session(arg, s);
}

/* The TCP connect to a TLS upstream succeeded: start its handshake. */
static void uptls_begin(lg_conn_t *c)
{
    const lg_upstream_t *up = &c->su->dial->rt->upstreams[c->su->dial->idx];
    if (c->upside == NULL && (c->upside = lg_calloc(1, sizeof(*c->upside))) == NULL) {
        out_of_memory(c);
        return;
    }
    /* New sessions (TLS 1.3 tickets come after the handshake) are kept for the upstream. */
    SSL_SESSION *sess = lg_upshared_session(c->upstream, up->tls_tag);
    int rc = lg_tls_new_client(&c->upside->tls, up->tls_ctx, up->tls_name, up->tls_verify,
                               up->tls_tag, sess, keep_session, c->upstream);
    SSL_SESSION_free(sess); /* the SSL holds its own reference while it lives */
    if (rc != 0) {
        out_of_memory(c);
        return;
    }
    lg_tls_io_t io = {&c->relay.w->pool, &c->upside->hs, &c->upside->early, 0, 0};
    c->up->h.handle.data = c;
    if (lg_tls_start(uptls(c), &io) != LG_TLS_OK || uptls_flush(c) != 0 ||
        lg_read_start(&c->up->h.stream, uptls_alloc, uptls_read) != 0) {
        LG_COUNT(counters(c), upstream_tls_failures, 1);
        attempt_failed(c);
    }
}

/* Undo an attempt's TLS handshake (and its socket): the next attempt starts clean. */
static void uptls_abandon(lg_conn_t *c)
{
    if (c->upside != NULL) {
        lg_tls_free(c->upside->tls);
        c->upside->tls = NULL;
        lg_bufq_clear(&c->upside->hs, &c->relay.w->pool);
        lg_bufq_clear(&c->upside->early, &c->relay.w->pool);
    }
    if (c->up != NULL) {
        uv_read_stop(&c->up->h.stream);
        c->pending_closes++;
        lg_upsock_close(c->up, c, on_up_closed);
        c->up = NULL;
    }
}

static void tls_ready(lg_conn_t *c)
{
    lg_counters_t *cnt = counters(c);
    LG_COUNT(cnt, tls_handshakes, 1);
    if (lg_tls_resumed(c->tls)) LG_COUNT(cnt, tls_resumed, 1);
    if (c->up == NULL || c->su->dial != NULL) { /* not connected, or its TLS handshake runs */
        set_state(c, LG_CONN_CONNECTING);       /* decrypted bytes wait for the upstream */
        return;
    }
    relay_up(c);
}

/* Ciphertext from the client: run it through OpenSSL, then schedule what it produced. */
static void tls_from_client(lg_conn_t *c, const uint8_t *data, size_t len)
{
    lg_tls_io_t io = tls_io(c);
    if (c->upside != NULL) io.plain = &c->upside->clear; /* re-encrypted below */
    int rc = lg_tls_feed(c->tls, &io, data, len);
    /* Only application data is activity for the idle timer (the relay leaves a terminated
     * client's reads to us): an empty record, a KeyUpdate or a user_canceled alert carries
     * nothing, and one per idle period would otherwise hold the connection and its upstream
     * forever (the empty-record run bound resets at every byte of data). Bytes of a record still
     * arriving count: a large record sent slowly is an upload in progress, not idleness (a
     * client trickling an empty record gains nothing over sending a 1-byte one). */
    if (io.plain_new > 0 || (len > 0 && lg_tls_record_pending(c->tls))) {
        c->relay.last_activity = now_ms(c);
    }
    if (c->upside != NULL) {
        io.plain_new = 0;
        if (uptls_forward(c) != 0) rc = LG_TLS_E_NOMEM;
    }
    if (rc == LG_TLS_READY && c->su->pp != NULL) {
        /* The PROXY header goes before the first decrypted byte (the queue held none before the
         * handshake completed, so nothing of it is being written). */
        lg_buf_t *b = pp_header(c, route_of(c), c->su->pp->sni, c->su->pp->ja3, c->su->pp->ja4);
        lg_free(c->su->pp);
        c->su->pp = NULL;
        if (b == NULL) {
            lg_relay_queued(&c->relay, &c->relay.c2u, io.plain_new);
            out_of_memory(c);
            return;
        }
        io.plain_new += b->len;
        lg_bufq_push_front(&c->relay.c2u.q, b);
    }
    lg_relay_queued(&c->relay, &c->relay.u2c, io.cipher_new);
    lg_relay_queued(&c->relay, &c->relay.c2u, io.plain_new);
    if (rc != LG_TLS_OK && rc != LG_TLS_READY) {
        tls_failed(c, rc);
        return;
    }
    if (lg_tls_peer_closed(c->tls) && !c->relay.c2u.eof) {
        /* close_notify: the client's data has ended cleanly (a FIN will follow). */
        if (c->eof_first == LG_CLOSE_NONE) c->eof_first = LG_CLOSE_CLIENT_CLOSED;
        uptls_close_notify(c);
        lg_relay_end(&c->relay, &c->relay.c2u);
    }
    if (rc == LG_TLS_READY) tls_ready(c);
}

/* lg_relay_ops_t.filter: every read of a terminated connection. */
static void relay_filter(lg_relay_t *r, lg_flow_t *f, lg_buf_t *b, size_t n)
{
    lg_conn_t *c = LG_CONTAINER_OF(r, lg_conn_t, relay);
    lg_wctx_t *w = c->relay.w;
    if (!f->to_client) {
        tls_from_client(c, b->data, n);
        lg_buf_put(&w->pool, b);
        return;
    }
    lg_drr_observe_read(&w->sched.drr, n);
    if (uptls(c) != NULL) {
        uptls_from_upstream(c, b, n);
        return;
    }
    lg_tls_io_t io = tls_io(c);
    int rc = lg_tls_encrypt(c->tls, &io, b->data, n);
    lg_buf_put(&w->pool, b);
    lg_relay_queued(&c->relay, f, io.cipher_new);
    if (rc != LG_TLS_OK) tls_failed(c, rc);
}

/*
 * lg_relay_ops_t.eof. On a terminated connection: from the client without close_notify, a
 * truncation (RFC 8446 §6.1), counted, and the upstream is closed rather than shut down
 * gracefully; from the upstream, close_notify goes out before the FIN.
 */
static bool relay_eof(lg_relay_t *r, lg_flow_t *f)
{
    lg_conn_t *c = LG_CONTAINER_OF(r, lg_conn_t, relay);
    if (c->eof_first == LG_CLOSE_NONE) {
        c->eof_first = f->to_client ? LG_CLOSE_UPSTREAM_CLOSED : LG_CLOSE_CLIENT_CLOSED;
    }
    if (c->tls == NULL) return true;
    if (!f->to_client) {
        if (lg_tls_peer_closed(c->tls)) {
            uptls_close_notify(c);
            return true;
        }
        LG_COUNT(counters(c), tls_truncations, 1);
        /* A FIN without close_notify is how curl and browsers end: a truncation for the data,
         * but no fault of the session, which stays resumable (RFC 5246 §7.2.1). */
        lg_tls_keep_session(c->tls);
        close_why(c, LG_CLOSE_CLIENT_CLOSED);
        return false;
    }
    lg_tls_io_t io = tls_io(c);
    lg_tls_close_notify(c->tls, &io);
    lg_relay_queued(&c->relay, f, io.cipher_new);
    return true;
}

static void relay_event(lg_relay_t *r, int what, int err)
{
    lg_conn_t *c = LG_CONTAINER_OF(r, lg_conn_t, relay);
    /* A FIN delivered to the client ends a lingering close, unless it waits for the client's
     * EOF (a CONNECT error response: see linger_read). */
    if (what == LG_RELAY_CLIENT_FIN && c->state == LG_CONN_RELAY) {
        /* The upstream has finished and the client knows; a client that keeps its half open is
         * bounded by halfCloseTimeoutMs of inactivity from here on. */
        if (!c->relay.c2u.eof && !c->half_closed) {
            c->half_closed = true;
            relay_arm(c);
        }
        return;
    }
    if (what == LG_RELAY_CLIENT_FIN && (c->state != LG_CONN_LINGER || c->linger_discard)) return;
    if (what == LG_RELAY_ERROR) {
        note_why(c, err == UV_ENOMEM || err == UV_ENOBUFS ? LG_CLOSE_OUT_OF_MEMORY
                    : c->relay.failed_client              ? LG_CLOSE_CLIENT_RESET
                                                          : LG_CLOSE_UPSTREAM_RESET);
    }
    lg_conn_close(c);
}

static const lg_relay_ops_t RELAY_OPS = {relay_event, relay_filter, relay_eof};

/* ---- lingering close --------------------------------------------------------------------- */

static void linger_alloc(uv_handle_t *h, size_t suggested, uv_buf_t *buf)
{
    (void)suggested;
    lg_conn_t *c = LG_CONTAINER_OF(h, lg_conn_t, client);
    buf->base = (char *)c->relay.w->discard;
    buf->len = sizeof(c->relay.w->discard);
}

static void linger_read(uv_stream_t *s, ssize_t nread, const uv_buf_t *buf)
{
    (void)buf;
    lg_conn_t *c = LG_CONTAINER_OF(s, lg_conn_t, client);
    if (nread == 0) return;
    if (nread < 0) {
        lg_conn_close(c); /* EOF or reset: the client has what it will read */
        return;
    }
    /* No byte cap: closing with unread input sends a RST, which destroys a response still in
     * the kernel's send queue. Time bounds the discarding (LINGER's deadline), and libuv bounds
     * the reads per loop turn, so a client streaming at full speed starves nobody. */
    LG_COUNT(counters(c), bytes_from_clients, (uint64_t)nread);
}

/*
 * Finish with what the client-bound flow holds (an error response, a TLS alert), then FIN, then
 * close: once the FIN is delivered (TLS), or once the client's EOF arrives (CONNECT: reading
 * and discarding meanwhile, however much the client sends, because closing a socket with unread
 * input sends a RST that can destroy the response before the client reads it). LINGER's
 * deadline (LG_LINGER_MS from the response) bounds both.
 */
static void linger_start(lg_conn_t *c)
{
    lg_resolve_cancel(c->su->resolve);
    c->su->resolve = NULL;
    lg_dial_cancel(c->su->dialer);
    c->su->dialer = NULL;
    /* An upstream TLS handshake still running must not finish (or fail) during the linger: its
     * callbacks would move a lingering connection on. */
    if (uptls(c) != NULL && c->su->dial != NULL && c->up != NULL) uv_read_stop(&c->up->h.stream);
    lg_relay_read_stop(&c->relay, &c->relay.c2u);
    uv_read_stop((uv_stream_t *)&c->client);
    c->relay.c2u.eof = true;
    set_state(c, LG_CONN_LINGER);
    lg_relay_attach_client(&c->relay, (uv_stream_t *)&c->client);
    lg_flow_t *u2c = &c->relay.u2c;
    if (u2c->q.bytes == 0 && u2c->n_writes == 0 && !c->linger_discard) {
        lg_conn_close(c);
        return;
    }
    lg_relay_end(&c->relay, u2c);
    if (c->linger_discard &&
        uv_read_start((uv_stream_t *)&c->client, linger_alloc, linger_read) != 0) {
        lg_conn_close(c);
    }
}

/* ---- TLS failures ------------------------------------------------------------------------ */

static void tls_failed(lg_conn_t *c, int reason)
{
    lg_counters_t *cnt = counters(c);
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
        out_of_memory(c);
        return;
    default:
        if (!lg_tls_handshake_done(c->tls)) {
            count_handshake_failure(c, HS_PROTOCOL);
        } else {
            LG_COUNT(cnt, tls_errors, 1);
        }
        break;
    }
    note_why(c, lg_tls_handshake_done(c->tls) ? LG_CLOSE_TLS_ERROR : LG_CLOSE_HANDSHAKE_FAILED);
    /* Send what OpenSSL queued (an alert), then FIN, then close. */
    c->linger_discard = false;
    linger_start(c);
}

/* ---- dialling ---------------------------------------------------------------------------- */

static void dialed(void *arg, int status, lg_upsock_t *up);

/*
 * lg_dial_wanted_cb: the dial waits for a free descriptor; is the client still there? Its reads
 * are paused while dialling, so its FIN or RST would go unseen: peek at the socket instead. No
 * data and EOF, or an error, means it left: the connection is closed (which cancels the dial).
 */
static bool dial_wanted(void *arg)
{
    lg_conn_t *c = arg;
    uv_os_fd_t fd;
    if (uv_fileno((uv_handle_t *)&c->client, &fd) != 0) return true;
    uint8_t b;
    ssize_t n = recv(fd, &b, 1, MSG_PEEK | MSG_DONTWAIT);
    if (n > 0 || (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK || errno == EINTR))) {
        return true;
    }
    close_why(c, LG_CLOSE_CLIENT_CLOSED);
    return false;
}

/* Dial 1..n addresses or a Unix path; the outcome comes to dialed(). */
static void dial_start(lg_conn_t *c, const lg_sockaddr_t *addrs, size_t n, const char *uds_path)
{
    int rc = lg_dial_start(&c->su->dialer, c->relay.w, addrs, n, uds_path, dialed, closed_one, c);
    if (rc != 0) {
        out_of_memory(c);
        return;
    }
    c->pending_closes++; /* the dialer calls closed_one when it is gone */
    lg_dial_set_wanted(c->su->dialer, dial_wanted);
}

static void attempt_failed(lg_conn_t *c);

/* A route's upstream host name was looked up (a name is resolved on the worker's loop): the
 * answer is kept for the upstream; a failed lookup falls back to the last good answer. */
static void upstream_resolved(void *arg, const lg_sockaddr_t *addrs, size_t n, int status)
{
    lg_conn_t *c = arg;
    c->su->resolve = NULL;
    if (status >= 0 && n > 0) {
        lg_upshared_store(c->upstream, addrs, n, now_ms(c));
        dial_start(c, addrs, n, NULL);
        return;
    }
    lg_sockaddr_t last[LG_UPSTREAM_ADDRS_MAX];
    lg_addrs_age_t age;
    size_t m = lg_upshared_addrs(c->upstream, last, LG_UPSTREAM_ADDRS_MAX, now_ms(c),
                                 c->relay.w->conf->resolve_interval_ms, &age);
    if (m == 0) {
        /* A resolver that could not answer now (EAI_AGAIN: busy or unreachable) says nothing
         * about the upstream; a name that does not exist does. */
        if (status == UV_EAI_AGAIN) c->su->dial->local = true;
        attempt_failed(c);
        return;
    }
    LG_COUNT(counters(c), upstream_lookups_failed, 1);
    /* The next dials take this answer at once and refresh it in the background (a second
     * later): a failing resolver is not asked by every connection. */
    lg_upshared_fallback(c->upstream, now_ms(c));
    dial_start(c, last, m, NULL);
}

/*
 * Background refreshes of upstream host names (stale-while-revalidate, lg_upshared_addrs): one
 * per upstream in the process, owned by the worker that claimed it, not by a connection, so the
 * answer is stored whatever becomes of the connection that noticed it was stale. Listed per
 * worker so a stopping worker abandons them (lg_conn_reaper_close).
 */
typedef struct lg_refresh_s {
    struct lg_refresh_s *next, **pprev;
    lg_resolve_t *lookup;
    lg_upshared_t *u; /* one reference */
    uint32_t gen;     /* lg_upshared_claim_refresh */
    unsigned lis;     /* the listener whose connection found the answer stale (its counters) */
    lg_wctx_t *w;
} lg_refresh_t;

static void refresh_end(lg_refresh_t *r, const lg_sockaddr_t *addrs, size_t n, bool failed)
{
    lg_upshared_refreshed(r->u, r->gen, addrs, n, failed, uv_now(r->w->loop));
    lg_upshared_unref(r->u);
    *r->pprev = r->next;
    if (r->next != NULL) r->next->pprev = r->pprev;
    lg_free(r);
}

static void refresh_done(void *arg, const lg_sockaddr_t *addrs, size_t n, int status)
{
    lg_refresh_t *r = arg;
    bool failed = status < 0 || n == 0;
    if (failed) {
        /* The stale answer stays, and the next refresh waits LG_UPSTREAM_REFRESH_RETRY_MS. */
        LG_COUNT(&r->w->counters[r->lis], upstream_lookups_failed, 1);
        n = 0;
    }
    refresh_end(r, addrs, n, failed);
}

/* u's answer is stale: look it up again in the background unless a lookup already runs. */
static void refresh_start(lg_wctx_t *w, const lg_upstream_t *up, unsigned lis, uint64_t now)
{
    uint32_t gen;
    if (!lg_upshared_claim_refresh(up->shared, now, &gen)) return;
    lg_refresh_t *r = lg_calloc(1, sizeof(*r));
    if (r == NULL) {
        lg_upshared_refreshed(up->shared, gen, NULL, 0, false, now);
        return;
    }
    r->u = up->shared;
    r->gen = gen;
    r->lis = lis;
    r->w = w;
    lg_upshared_ref(r->u);
    r->next = w->refreshes;
    if (r->next != NULL) r->next->pprev = &r->next;
    r->pprev = &w->refreshes;
    w->refreshes = r;
    /* At the in-flight bound (or out of memory) the claim is given back: the next connection
     * to see the stale answer tries again. */
    if (lg_resolve_start(&r->lookup, w, up->host, up->port, NULL, refresh_done, r) != 0) {
        refresh_end(r, NULL, 0, false);
    }
}

static void refresh_abandon_all(lg_wctx_t *w)
{
    while (w->refreshes != NULL) {
        lg_refresh_t *r = w->refreshes;
        lg_resolve_cancel(r->lookup);
        refresh_end(r, NULL, 0, false);
    }
}

/*
 * One attempt of a route's dial: choose an upstream (the client's pinned one first, under
 * ipAffinity; else the route's policy, skipping the upstreams this connection already tried and,
 * unless every one is, the ejected ones) and dial it. A connection makes at most
 * min(retries + 1, upstreams) attempts, each with an equal share of the route's
 * connectTimeoutMs (the last one whatever is left), so a blackholed upstream costs one share,
 * not the whole budget, and a route with one upstream gives it all of it.
 */
static void dial_attempt(lg_conn_t *c)
{
    lg_dialctx_t *d = c->su->dial;
    const lg_route_t *rt = d->rt;
    lg_wctx_t *w = c->relay.w;
    uint64_t now = now_ms(c);
    int i = -1;
    d->probe_until = 0;
    if (d->attempts == 0 && rt->affinity && w->affinity->ready) {
        i = lg_affinity_lookup(w->affinity, &d->key, rt->affinity_scope, rt->st, rt->n_upstreams,
                               now, rt->affinity_ttl_ms);
        if (i >= 0) lg_upstate_acquire(rt->st[i]);
    }
    /* Attempts this connection can make: retries + 1, but never the same upstream twice. */
    uint32_t n_attempts = LG_MIN(rt->retries + 1, (uint32_t)rt->n_upstreams);
    uint64_t share = LG_MAX(rt->connect_timeout_ms / n_attempts, 1u);
    uint64_t deadline =
        d->attempts + 1 >= n_attempts || now + share > d->end ? d->end : now + share;
    if (i < 0) {
        lg_pick_out_t out = {0};
        lg_pick_t *cur = w->index < rt->n_cursors ? &rt->cursors[w->index].pick : NULL;
        d->in.probe_lease_ms = deadline > now ? deadline - now : 1; /* a probe holds its attempt */
        lg_pick_t spare = {0};
        i = lg_balancer_pick(&rt->balancer, rt->st, cur != NULL ? cur : &spare, &d->in, &out, now);
        d->probe_until = out.probe ? out.probe_until : 0;
        if (out.fail_open) LG_COUNT(counters(c), upstream_fail_opens, 1);
    }
    if (i < 0) { /* every upstream was tried */
        upstream_failed(c);
        return;
    }
    lg_pick_tried_add(&d->in, i);
    d->attempts++;
    d->idx = i;
    c->upstream = (lg_upshared_t *)rt->st[i]; /* st is the first member */
    c->su->deadline = deadline;
    set_state(c, c->state == LG_CONN_HANDSHAKE ? LG_CONN_HANDSHAKE : LG_CONN_CONNECTING);
    if (c->state == LG_CONN_CLOSING) return;
    const lg_upstream_t *up = &rt->upstreams[i];
    if (up->kind == LG_UPSTREAM_UDS) {
        dial_start(c, NULL, 0, up->path);
    } else if (up->literal) {
        dial_start(c, &up->addr, 1, NULL);
    } else {
        /* A name: the upstream's last answer (refreshed in the background once it is older than
         * resolveIntervalMs); without one (first use, or after a config swap) a lookup of this
         * connection's own, which falls back to the last answer if it fails. */
        lg_sockaddr_t addrs[LG_UPSTREAM_ADDRS_MAX];
        lg_addrs_age_t age;
        size_t n = lg_upshared_addrs(up->shared, addrs, LG_UPSTREAM_ADDRS_MAX, now,
                                     w->conf->resolve_interval_ms, &age);
        if (age != LG_ADDRS_NONE) {
            if (age == LG_ADDRS_STALE) refresh_start(w, up, c->lis, now);
            dial_start(c, addrs, n, NULL);
        } else if (lg_resolve_start(&c->su->resolve, c->relay.w, up->host, up->port, NULL,
                                    upstream_resolved, c) != 0) {
            /* No memory, or LG_RESOLVE_MAX_INFLIGHT lookups already queued. */
            if (n > 0) {
                dial_start(c, addrs, n, NULL);
            } else {
                d->local = true;
                attempt_failed(c);
            }
        }
    }
}

/*
 * The current attempt failed (refused, reset, lookup failed, or its share of the time ran out):
 * the upstream hears of it, and the next one is tried while retries and time are left. A failure
 * of this host's own (the lookup bound, or the attempt's time ran out while its lookup waited for
 * libuv's thread pool or its socket for a descriptor) is not the upstream's: its health is not
 * told, so a busy resolver or a descriptor shortage does not eject healthy upstreams.
 */
static void attempt_failed(lg_conn_t *c)
{
    lg_dialctx_t *d = c->su->dial;
    lg_upshared_t *u = c->upstream;
    uint64_t now = now_ms(c);
    bool local = d->local || c->su->resolve != NULL || lg_dial_short_of_fds(c->su->dialer);
    d->local = false;
    c->upstream = NULL;
    uptls_abandon(c);              /* an attempt that connected but failed its TLS handshake */
    lg_dial_cancel(c->su->dialer); /* a timed-out attempt's sockets close; closed_one follows */
    c->su->dialer = NULL;
    lg_resolve_cancel(c->su->resolve);
    c->su->resolve = NULL;
    if (u != NULL) {
        if (!local) {
            lg_upstate_report(&u->st, false, &d->rt->health, now);
        } else if (d->probe_until != 0) {
            /* The probe said nothing: the next one may go now. */
            lg_upstate_unprobe(&u->st, d->probe_until, now);
        }
        lg_upstate_release(&u->st);
    }
    if (d->attempts < LG_MIN(d->rt->retries + 1, (uint32_t)d->rt->n_upstreams) && now < d->end) {
        LG_COUNT(counters(c), upstream_retries, 1);
        dial_attempt(c);
        return;
    }
    upstream_failed(c);
}

/* The dial connected: the upstream hears of it, an affinity pin is set or refreshed. */
static void attempt_succeeded(lg_conn_t *c)
{
    lg_dialctx_t *d = c->su->dial;
    lg_upshared_t *u = c->upstream;
    uint64_t now = now_ms(c);
    lg_upstate_report(&u->st, true, &d->rt->health, now);
    atomic_fetch_add_explicit(&u->connected, 1, memory_order_relaxed);
    if (d->rt->affinity && c->relay.w->affinity->ready) {
        lg_affinity_pin(c->relay.w->affinity, &d->key, d->rt->affinity_scope, &u->st, now,
                        d->rt->affinity_ttl_ms);
    }
    lg_free(d);
    c->su->dial = NULL;
}

/* Dial a route's upstreams (see dial_attempt). */
static void dial_route(lg_conn_t *c, const lg_route_t *rt)
{
    lg_dialctx_t *d = lg_calloc(1, sizeof(*d));
    if (d == NULL) {
        out_of_memory(c);
        return;
    }
    c->su->dial = d;
    d->rt = rt;
    d->end = now_ms(c) + rt->connect_timeout_ms;
    uint64_t hash = 0;
    if (rt->affinity || rt->balancer.policy == LG_BALANCE_HASH) {
        if (lg_clientkey_make(&d->key, c->peer.family, c->peer.addr) == 0) {
            hash = lg_clientkey_hash(&d->key);
        }
    }
    lg_pick_in_init(&d->in, hash);
    dial_attempt(c);
}

/* ---- PROXY protocol to the upstream ------------------------------------------------------- */

/* An IPv4-mapped IPv6 address (a dual-stack listener's IPv4 client) as the IPv4 address. */
static void peer_fold(lg_peer_t *p)
{
    static const uint8_t mapped[12] = {0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0xff, 0xff};
    if (p->family == 6 && memcmp(p->addr, mapped, 12) == 0) {
        memmove(p->addr, p->addr + 12, 4);
        memset(p->addr + 4, 0, 12);
        p->family = 4;
    }
}

/* The address the client connected to, in the client's family where that is possible. */
static void pp_destination(lg_conn_t *c, lg_pp_info_t *in)
{
    struct sockaddr_storage ss;
    int len = (int)sizeof(ss);
    lg_peer_t local = {0};
    if (uv_tcp_getsockname(&c->client, (struct sockaddr *)&ss, &len) == 0 &&
        lg_peer_from_sockaddr(&local, (const struct sockaddr *)&ss)) {
        peer_fold(&local);
    }
    if (local.family != in->src_family) {
        /* PROXY input from another family than the listener's: no address to tell. */
        memset(&local, 0, sizeof(local));
        local.family = in->src_family;
    }
    in->dst_family = local.family;
    memcpy(in->dst_addr, local.addr, sizeof(in->dst_addr));
    in->dst_port = local.port;
}

/*
 * Write the route's PROXY header into a buffer. The v2 TLVs: AUTHORITY (the SNI), UNIQUE_ID
 * (worker and connection serial), on a terminated connection ALPN and SSL (version, cipher,
 * client-certificate flags), and with forwardFingerprint JA3/JA4 (0xE0/0xE1). Returns the
 * buffer, or NULL (no memory, or a family the writer refuses: counted, the connection closes).
 */
static lg_buf_t *pp_header(lg_conn_t *c, const lg_route_t *rt, const char *sni, const char *ja3,
                           const char *ja4)
{
    lg_pp_info_t in;
    memset(&in, 0, sizeof(in));
    lg_peer_t src = c->peer;
    peer_fold(&src);
    in.src_family = src.family;
    memcpy(in.src_addr, src.addr, sizeof(in.src_addr));
    in.src_port = src.port;
    pp_destination(c, &in);
    char id[32];
    lg_tls_info_t ti;
    if (rt->proxy_protocol == 2) {
        if (sni != NULL && sni[0] != '\0') in.authority = (lg_pp_bytes_t){sni, strlen(sni)};
        int n = snprintf(id, sizeof(id), "%u-%llu", c->relay.w->index,
                         (unsigned long long)++c->relay.w->next_serial);
        in.unique_id = (lg_pp_bytes_t){id, (size_t)n};
        if (c->tls != NULL) {
            lg_tls_info(c->tls, &ti);
            if (ti.alpn_len > 0) in.alpn = (lg_pp_bytes_t){ti.alpn, ti.alpn_len};
            in.ssl = true;
            in.ssl_client = LG_PP_CLIENT_SSL | (ti.client_cert ? LG_PP_CLIENT_CERT_CONN : 0);
            in.ssl_verify = ti.client_cert && !ti.client_verified ? 1 : 0;
            if (ti.version) in.ssl_version = (lg_pp_bytes_t){ti.version, strlen(ti.version)};
            if (ti.cipher) in.ssl_cipher = (lg_pp_bytes_t){ti.cipher, strlen(ti.cipher)};
        }
        if (rt->forward_fingerprint) {
            if (ja3 != NULL && ja3[0] != '\0') in.ja3 = (lg_pp_bytes_t){ja3, strlen(ja3)};
            if (ja4 != NULL && ja4[0] != '\0') in.ja4 = (lg_pp_bytes_t){ja4, strlen(ja4)};
        }
    }
    lg_buf_t *b = lg_buf_get(&c->relay.w->pool);
    if (b == NULL) return NULL;
    int n = rt->proxy_protocol == 1 ? lg_pp_write_v1(&in, b->data, b->cap)
                                    : lg_pp_write_v2(&in, b->data, b->cap);
    if (n <= 0) {
        lg_buf_put(&c->relay.w->pool, b);
        return NULL;
    }
    b->off = 0;
    b->len = (uint32_t)n;
    LG_COUNT(counters(c), proxy_headers_sent, 1);
    return b;
}

/* The ClientHello of the connection: its parsed form, or parsed again from a held copy. */
static const lg_hello_t *hello_of(lg_conn_t *c, lg_hello_t *spare)
{
    if (c->su->hello != NULL) return &c->su->hello->hello;
    const uint8_t *raw;
    size_t len;
    received(c, &raw, &len);
    lg_hello_parser_t p;
    lg_hello_parser_init(&p);
    return lg_hello_parse(&p, raw, len, spare, NULL) == LG_OK ? spare : NULL;
}

/* The SNI and (with forwardFingerprint) the fingerprints a PROXY header carries, while the
 * ClientHello is still at hand. */
static void pp_collect(lg_conn_t *c, const lg_route_t *rt, lg_ppctx_t *pp)
{
    memset(pp, 0, sizeof(*pp));
    lg_hello_t spare;
    const lg_hello_t *h = rt->proxy_protocol == 2 ? hello_of(c, &spare) : NULL;
    if (h == NULL) return;
    if (h->has_sni) snprintf(pp->sni, sizeof(pp->sni), "%s", h->sni);
    if (rt->forward_fingerprint) lg_ja_fingerprints(h, pp->ja3, pp->ja4);
}

static void respond(lg_conn_t *c, int status);

/* A CONNECT tunnel's dial outcome. */
static void tunnel_dialed(lg_conn_t *c, int status)
{
    if (status < 0) {
        LG_COUNT(counters(c), upstream_connect_failures, 1);
        respond(c, 502);
        return;
    }
    lg_counters_t *cnt = counters(c);
    /* The 200 goes first to the client; what the client sent after the head goes first to the
     * target. Both are queued before reading starts, so nothing overtakes them. */
    size_t len = 0;
    const char *ok = lg_connect_established(&len);
    const uint8_t *extra = NULL;
    size_t n_extra = 0;
    lg_connect_head_extra(c->su->head, &extra, &n_extra);
    int rc = lg_relay_copy(&c->relay, &c->relay.u2c, (const uint8_t *)ok, len);
    if (rc == 0 && n_extra > 0) rc = lg_relay_copy(&c->relay, &c->relay.c2u, extra, n_extra);
    head_free(c);
    if (rc != 0) {
        out_of_memory(c);
        return;
    }
    c->status = 200;
    c->resp_len = (uint16_t)len;
    lg_connect_count_status(cnt, 200);
    relay_up(c);
}

static void dialed(void *arg, int status, lg_upsock_t *up)
{
    lg_conn_t *c = arg;
    c->su->dialer = NULL; /* it reported; its closed_one follows */
    c->up = up;
    uv_os_fd_t upfd;
    if (up != NULL && up->h.handle.type == UV_TCP &&
        uv_fileno((const uv_handle_t *)&up->h.tcp, &upfd) == 0) {
        (void)lg_conn_sockopts(upfd, c->relay.w->conf, true);
    }
    if (c->is_connect) {
        tunnel_dialed(c, status);
        return;
    }
    if (status < 0) {
        attempt_failed(c);
        return;
    }
    if (c->su->dial->rt->upstreams[c->su->dial->idx].tls_ctx != NULL) {
        uptls_begin(c); /* the dial succeeds with the upstream's handshake */
        return;
    }
    attempt_succeeded(c);
    if (c->state == LG_CONN_HANDSHAKE) {
        set_state(c, LG_CONN_HANDSHAKE); /* only the handshake deadline is left */
        return;
    }
    relay_up(c);
}

/* ---- routes ------------------------------------------------------------------------------ */

/*
 * Leaving the ClientHello (or the held bytes) for route rt: reading stops until the route's next
 * phase starts it, except on a terminating route whose TLS reads start in this same turn
 * (terminate: lg_relay_read_start switches the callbacks in place, sparing libuv's epoll_ctl
 * ADD + MOD of a stop and start); every early exit before that point closes or lingers, and
 * both stop the client's reads themselves.
 */
static void keep_reading_if_terminating(lg_conn_t *c, const lg_route_t *rt)
{
    if (!rt->terminate_tls || rt->n_upstreams == 0) uv_read_stop((uv_stream_t *)&c->client);
}

/*
 * A terminating route: start TLS on the bytes read so far (the ClientHello and anything after
 * it), make the client end live, and dial the upstream while the handshake runs.
 */
static void terminate(lg_conn_t *c, const lg_route_t *rt, const char *sni, size_t sni_len)
{
    SSL_CTX *ctx = c->lis < rt->n_ctx ? rt->ctx[c->lis] : NULL;
    if (ctx == NULL && rt == c->decision) {
        /* A decision without cert or mtls of its own: the suspended route's context (its cert,
         * or the listener's defaultCert; the config layer checked that there is one). */
        const lg_route_t *route = &c->snap->routes[c->route];
        ctx = c->lis < route->n_ctx ? route->ctx[c->lis] : NULL;
    }
    if (ctx == NULL) {
        /* No context for this listener: cannot happen after the config checks. */
        LG_COUNT(counters(c), no_route, 1);
        close_why(c, LG_CLOSE_NO_ROUTE);
        return;
    }
    if (lg_tls_new(&c->tls, ctx, sni, sni_len, rt->alpn, rt->alpn_len) != 0) {
        out_of_memory(c);
        return;
    }
    if (rt->proxy_protocol != 0) {
        c->su->pp = lg_malloc(sizeof(*c->su->pp));
        if (c->su->pp == NULL) {
            out_of_memory(c);
            return;
        }
        pp_collect(c, rt, c->su->pp);
    }
    if (rt->tls_upstreams && (c->upside = lg_calloc(1, sizeof(*c->upside))) == NULL) {
        out_of_memory(c);
        return;
    }
    c->su->deadline = now_ms(c) + rt->connect_timeout_ms; /* the dial below starts now */
    set_state(c, LG_CONN_HANDSHAKE);
    c->relay.filtered = true;
    lg_relay_attach_client(&c->relay, (uv_stream_t *)&c->client);
    if (lg_relay_read_start(&c->relay, &c->relay.c2u) != 0) {
        lg_conn_close(c);
        return;
    }
    /* Never left reading with the ClientHello's callbacks (keep_reading_if_terminating). */
    if (!c->relay.c2u.reading) uv_read_stop((uv_stream_t *)&c->client);
    const uint8_t *raw;
    size_t raw_len;
    received(c, &raw, &raw_len);
    tls_from_client(c, raw, raw_len); /* READY is impossible: the client's Finished is missing */
    release_received(c);
    if (c->state != LG_CONN_HANDSHAKE) return; /* failed: lingering or closing */
    dial_route(c, rt);
}

/* Continue a connection on a route (a configured one, or a held connection's decision) with
 * the bytes it has sent so far. */
static void route_to(lg_conn_t *c, const lg_route_t *rt)
{
    if (c->rstat == NULL && c->route >= 0 && (c->rstat = c->snap->routes[c->route].stat) != NULL) {
        atomic_fetch_add_explicit(&c->rstat->connections, 1, memory_order_relaxed);
        atomic_fetch_add_explicit(&c->rstat->active, 1, memory_order_relaxed);
    }
    if (rt->n_upstreams == 0) {
        LG_COUNT(counters(c), no_route, 1);
        close_why(c, LG_CLOSE_NO_ROUTE);
        return;
    }
    if (rt->terminate_tls) {
        const char *sni = NULL;
        if (c->su->held != NULL) {
            sni = c->su->held->sni;
        } else if (c->su->hello != NULL && c->su->hello->hello.has_sni) {
            sni = c->su->hello->hello.sni;
        }
        terminate(c, rt, sni, sni ? strlen(sni) : 0);
        return;
    }
    if (rt->proxy_protocol != 0) {
        lg_ppctx_t pp;
        pp_collect(c, rt, &pp);
        lg_buf_t *b = pp_header(c, rt, pp.sni, pp.ja3, pp.ja4);
        if (b == NULL) {
            out_of_memory(c);
            return;
        }
        size_t n = b->len;
        lg_bufq_push(&c->relay.c2u.q, &c->relay.w->pool, b);
        lg_relay_queued(&c->relay, &c->relay.c2u, n);
    }
    const uint8_t *raw;
    size_t raw_len;
    received(c, &raw, &raw_len);
    int rc = lg_relay_copy(&c->relay, &c->relay.c2u, raw, raw_len);
    release_received(c);
    if (rc != 0) {
        out_of_memory(c);
        return;
    }
    dial_route(c, rt);
}

/* ---- suspended routes -------------------------------------------------------------------- */

static void held_alloc(uv_handle_t *h, size_t suggested, uv_buf_t *buf)
{
    (void)suggested;
    lg_conn_t *c = LG_CONTAINER_OF(h, lg_conn_t, client);
    lg_suspend_ctx_t *s = c->su->held;
    buf->base = (char *)s->held + s->len;
    buf->len = s->cap - s->len;
}

/*
 * While held: keep reading (so a client that leaves is noticed), up to the context's room.
 *
 * EOF means "gone" for a TLS client: it cannot finish a handshake after its FIN, so holding it
 * for a decision would only waste an upstream connection. A non-TLS client may half-close after
 * its request and still wait for the answer (`printf 'GET /...' | nc`, a shutdown(SHUT_WR) after
 * a request): its FIN is kept and passed on after the held bytes once the decision relays.
 */
static void held_read(uv_stream_t *s, ssize_t nread, const uv_buf_t *buf)
{
    (void)buf;
    lg_conn_t *c = LG_CONTAINER_OF(s, lg_conn_t, client);
    lg_suspend_ctx_t *h = c->su->held;
    if (nread == 0) return;
    if (nread < 0) {
        if (nread == UV_ENOBUFS) {
            uv_read_stop(s); /* full: the rest waits in the kernel until the decision */
            return;
        }
        if (nread == UV_EOF && !h->tls) {
            c->relay.c2u.eof = true;
            uv_read_stop(s);
            return;
        }
        LG_COUNT(counters(c), suspended_gone, 1);
        close_why(c, LG_CLOSE_CLIENT_CLOSED);
        return;
    }
    h->len += (size_t)nread;
    LG_COUNT(counters(c), bytes_from_clients, (uint64_t)nread);
    if (h->len == h->cap) uv_read_stop(s);
}

/* Hold a connection whose route is suspended and tell JS. */
static void suspend(lg_conn_t *c, const lg_route_t *rt, const char *sni, size_t sni_len,
                    const lg_hello_t *hello)
{
    lg_wctx_t *w = c->relay.w;
    lg_counters_t *cnt = counters(c);
    LG_COUNT(cnt, suspended_total, 1);
    char ip[48];
    lg_suspend_in_t in;
    memset(&in, 0, sizeof(in));
    lg_peer_format(&c->peer, ip, sizeof(ip));
    in.peer_ip = ip;
    in.peer_port = c->peer.port;
    in.worker = w->index;
    in.listener = c->lis;
    in.serial = lg_suspend_next_serial();
    in.owner = c;
    in.sni = sni;
    in.sni_len = sni_len;
    in.hello = hello;
    in.raw = c->su->hello->raw;
    in.raw_len = c->su->hello->raw_len;
    in.timeout_ms = rt->suspend_timeout_ms;
    in.route_tls = c->lis < rt->n_ctx && rt->ctx[c->lis] != NULL;
    int rc = lg_suspend_hold(w->pending, w->events, &in, &c->su->held);
    hello_free(c);
    if (rc == -ENOMEM) {
        out_of_memory(c);
        return;
    }
    if (rc != 0) {
        LG_COUNT(cnt, suspended_dropped, 1); /* table full, or JS would never hear of it */
        close_why(c, LG_CLOSE_SUSPEND_DROPPED);
        return;
    }
    set_state(c, LG_CONN_SUSPENDED);
    if (uv_read_start((uv_stream_t *)&c->client, held_alloc, held_read) != 0) lg_conn_close(c);
}

static void suspend_timeout(lg_conn_t *c)
{
    lg_suspend_ctx_t *s = c->su->held;
    if (!s->claim_grace && lg_pending_claimed(c->relay.w->pending, s->serial)) {
        /* JS was told it resolved this one; its decision is in the inbox. */
        s->claim_grace = true;
        s->timeout_ms = LG_SUSPEND_CLAIM_GRACE_MS;
        set_state(c, LG_CONN_SUSPENDED);
        return;
    }
    LG_COUNT(counters(c), suspended_timed_out, 1);
    close_why(c, LG_CLOSE_SUSPEND_TIMEOUT);
}

void lg_conn_decide(void *owner, lg_route_t *decision)
{
    lg_conn_t *c = owner;
    if (c->state != LG_CONN_SUSPENDED) {
        /* Cannot happen: a connection leaves the table before it leaves SUSPENDED. */
        if (decision != NULL) lg_route_destroy(decision);
        return;
    }
    c->su->held->pending = false; /* lg_pending_take removed the entry */
    lg_counters_t *cnt = counters(c);
    if (decision == NULL) {
        LG_COUNT(cnt, suspended_rejected, 1);
        close_why(c, LG_CLOSE_SUSPEND_REJECTED);
        return;
    }
    LG_COUNT(cnt, suspended_resolved, 1);
    keep_reading_if_terminating(c, decision);
    c->su->hs_start = now_ms(c); /* a terminating decision's handshake starts now */
    c->decision = decision;
    route_to(c, decision);
}

/* ---- the ClientHello --------------------------------------------------------------------- */

/*
 * Judge the ClientHello (protection), route by SNI (NULL: no SNI, or not TLS; hello: the parsed
 * ClientHello, or NULL for non-TLS), then hold the connection for JS or continue on the route.
 */
static void route(lg_conn_t *c, const char *sni, size_t sni_len, const lg_hello_t *hello)
{
    char ja3[33] = "", ja4[40] = "";
    keep_access(c, sni, sni_len, hello);
    if (lg_protect_judges_hello(protection(c))) {
        int reason = lg_protect_hello(protection(c), &c->relay.w->ja_cache, hello, ja3, ja4);
        if (reason != LG_BLOCK_NONE) {
            refused(c, reason, ja3, ja4);
            return;
        }
    }
    int r = lg_router_lookup(&c->snap->router, sni, sni_len);
    if (r == LG_ROUTER_NONE) {
        LG_COUNT(counters(c), no_route, 1);
        close_why(c, LG_CLOSE_NO_ROUTE);
        return;
    }
    c->route = r;
    lg_route_t *rt = &c->snap->routes[r];
    if (rt->weight != 0) lg_relay_set_weight(&c->relay, rt->weight);
    if (rt->flow_rate_set && lg_relay_set_flow_rate(&c->relay, rt->flow_rate) != 0) {
        LG_COUNT(counters(c), out_of_memory, 1);
        close_why(c, LG_CLOSE_OUT_OF_MEMORY);
        return;
    }
    if (!lg_limit_bucket_take_shared(&rt->rate_tat, &rt->rate, now_ms(c))) {
        refused(c, LG_BLOCK_ROUTE_RATE_LIMITED, ja3, ja4);
        return;
    }
    if (rt->suspended) {
        uv_read_stop((uv_stream_t *)&c->client);
        suspend(c, rt, sni, sni_len, hello);
        return;
    }
    keep_reading_if_terminating(c, rt);
    route_to(c, rt);
}

static bool hello_ctx_new(lg_conn_t *c);

static void hello_alloc(uv_handle_t *h, size_t suggested, uv_buf_t *buf)
{
    (void)suggested;
    lg_conn_t *c = LG_CONTAINER_OF(h, lg_conn_t, client);
    buf->base = NULL;
    buf->len = 0;
    if (c->su->hello == NULL && !hello_ctx_new(c)) return; /* the read callback sees UV_ENOBUFS */
    buf->base = (char *)c->su->hello->raw + c->su->hello->raw_len;
    buf->len = sizeof(c->su->hello->raw) - c->su->hello->raw_len;
}

/* A ClientHello that cannot complete; with a fingerprint list set that is a refusal too. */
static void hello_failed(lg_conn_t *c, int kind)
{
    if (lg_protect_fails_closed(protection(c))) {
        lg_protect_refused(c->relay.w, c->lis, protection(c), LG_BLOCK_INCOMPLETE_HANDSHAKE,
                           &c->peer, NULL, NULL);
    }
    handshake_failed(c, kind);
}

/* n more bytes are in the hello buffer: parse, and route once the hello is complete. */
static void hello_more(lg_conn_t *c, size_t n)
{
    lg_hello_ctx_t *h = c->su->hello;
    h->raw_len += n;
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
        LG_COUNT(counters(c), not_tls, 1);
        route(c, NULL, 0, NULL);
        return;
    default:
        hello_failed(c, HS_PROTOCOL);
        return;
    }
}

static void hello_read(uv_stream_t *s, ssize_t nread, const uv_buf_t *buf)
{
    (void)buf;
    lg_conn_t *c = LG_CONTAINER_OF(s, lg_conn_t, client);
    if (nread == 0) return;
    if (nread < 0) {
        if (nread == UV_ENOBUFS && c->su->hello == NULL) {
            out_of_memory(c);
        } else if (nread == UV_ENOBUFS) {
            hello_failed(c, HS_PROTOCOL); /* the hello outgrew its buffer */
        } else {
            hello_failed(c, HS_CLOSED); /* closed or reset before the hello was complete */
        }
        return;
    }
    LG_COUNT(counters(c), bytes_from_clients, (uint64_t)nread);
    hello_more(c, (size_t)nread);
}

static bool hello_ctx_new(lg_conn_t *c)
{
    c->su->hello = lg_malloc(sizeof(*c->su->hello));
    if (c->su->hello == NULL) return false;
    c->relay.w->n_hello++;
    LG_PUBLISH(c->relay.w->pub_hello_buffers, c->relay.w->n_hello);
    lg_hello_parser_init(&c->su->hello->parser);
    c->su->hello->raw_len = 0;
    c->su->hello->hello.has_sni = false; /* filled only when a hello is parsed */
    return true;
}

/* ---- CONNECT ----------------------------------------------------------------------------- */

/* Why a CONNECT that gets `status` ends, unless a more precise reason was noted before. */
static int status_why(int status)
{
    switch (status) {
    case 407:
        return LG_CLOSE_REFUSED_AUTH;
    case 408:
        return LG_CLOSE_HEAD_TIMEOUT;
    case 403:
        return LG_CLOSE_REFUSED_ADDRESS;
    case 502:
        return LG_CLOSE_UPSTREAM_FAILED;
    case 503:
        return LG_CLOSE_REFUSED_BUSY;
    case 504:
        return LG_CLOSE_UPSTREAM_TIMEOUT;
    default: /* 400, 405, 414, 431, 505 */
        return LG_CLOSE_BAD_REQUEST;
    }
}

/* Answer with `text` (a response for `status`) and close gracefully (LINGER). */
static void respond_text(lg_conn_t *c, int status, const char *text, size_t len)
{
    note_why(c, status_why(status));
    c->status = (uint16_t)status;
    lg_connect_count_status(counters(c), status);
    leave_head(c);
    head_free(c);
    c->resp_len = (uint16_t)len;
    if (lg_relay_copy(&c->relay, &c->relay.u2c, (const uint8_t *)text, len) != 0) {
        out_of_memory(c);
        return;
    }
    c->linger_discard = true;
    linger_start(c);
}

/* Answer with an error status's fixed text and close gracefully (LINGER). */
static void respond(lg_conn_t *c, int status)
{
    size_t len = 0;
    const char *text = lg_connect_response(status, &len);
    const lg_auth_t *auth = c->relay.w->conf->listeners[c->lis].auth;
    if (status == 407 && auth != NULL) {
        text = auth->response; /* fixed per listener: it names the realm */
        len = auth->response_len;
    }
    respond_text(c, status, text, len);
}

/* The destination policy refused the target for `reason`: count it, answer 403 saying why. */
static void forbidden(lg_conn_t *c, int reason)
{
    char text[LG_CONNECT_FORBIDDEN_MAX];
    lg_connect_count_refusal(counters(c), reason);
    note_why(c, reason == LG_POLICY_PORT     ? LG_CLOSE_REFUSED_PORT
                : reason == LG_POLICY_DOMAIN ? LG_CLOSE_REFUSED_DOMAIN
                                             : LG_CLOSE_REFUSED_ADDRESS);
    size_t len = lg_connect_forbidden(c->tunnel, &c->relay.w->conf->listeners[c->lis].policy,
                                      &c->su->head->req, reason, text);
    respond_text(c, 403, text, len);
}

static void tunnel_dial(lg_conn_t *c, const lg_sockaddr_t *addrs, size_t n)
{
    set_state(c, LG_CONN_CONNECTING);
    dial_start(c, addrs, n, NULL);
}

/* lg_resolve_keep_cb: the destination policy judges each looked-up address before the cap. */
static bool resolved_keep(void *arg, const lg_sockaddr_t *addr)
{
    lg_conn_t *c = arg;
    lg_sockaddr_t a = *addr;
    const lg_policy_t *pol = &c->relay.w->conf->listeners[c->lis].policy;
    if (lg_connect_filter(pol, &a, 1) == 1) return true;
    if (c->tunnel->denied.family == 0) lg_connect_denial(pol, addr, &c->tunnel->denied);
    return false;
}

static void resolved(void *arg, const lg_sockaddr_t *addrs, size_t n, int status)
{
    lg_conn_t *c = arg;
    c->su->resolve = NULL;
    if (status < 0) {
        LG_COUNT(counters(c), upstream_connect_failures, 1);
        respond(c, 502);
        return;
    }
    lg_sockaddr_t ok[LG_RESOLVE_MAX_ADDRS];
    size_t n_ok = LG_MIN(n, (size_t)LG_RESOLVE_MAX_ADDRS);
    memcpy(ok, addrs, n_ok * sizeof(ok[0]));
    n_ok = lg_connect_filter(&c->relay.w->conf->listeners[c->lis].policy, ok, n_ok);
    if (n_ok == 0) {
        forbidden(c, LG_POLICY_ADDRESS);
        return;
    }
    tunnel_dial(c, ok, n_ok);
}

/* The client may go on (authenticated, or no auth configured): judge the target, then resolve
 * or dial it. */
static void to_policy(lg_conn_t *c)
{
    const lg_http_req_t *req = &c->su->head->req;
    const lg_listener_conf_t *lc = &c->relay.w->conf->listeners[c->lis];
    lg_counters_t *cnt = counters(c);
    c->su->deadline = now_ms(c) + lc->connect_timeout_ms;
    lg_sockaddr_t addr;
    int reason = 0;
    switch (lg_connect_judge(&lc->policy, req, &addr, &reason)) {
    case LG_CONNECT_REFUSE:
        forbidden(c, reason);
        return;
    case LG_CONNECT_DIAL:
        tunnel_dial(c, &addr, 1);
        return;
    default:
        break;
    }
    set_state(c, LG_CONN_RESOLVING);
    int rc = lg_resolve_start(&c->su->resolve, c->relay.w, c->tunnel->target, c->tunnel->port,
                              resolved_keep, resolved, c);
    if (rc == -EBUSY) {
        LG_COUNT(cnt, refused_lookups_busy, 1); /* LG_RESOLVE_MAX_INFLIGHT lookups queued */
        respond(c, 503);
    } else if (rc != 0) {
        LG_COUNT(cnt, upstream_connect_failures, 1);
        respond(c, 502);
    }
}

/* The verdict on the credentials (lg_verify). */
static void auth_done(void *arg, bool ok)
{
    lg_conn_t *c = arg;
    c->su->verify = NULL;
    if (ok) {
        to_policy(c);
        return;
    }
    LG_COUNT(counters(c), auth_failures, 1);
    respond(c, 407);
}

/*
 * Check the Proxy-Authorization of a complete head before the destination policy (so a client
 * without credentials learns nothing about what the policy allows): no field → 407; malformed,
 * too long, unknown user or wrong password → 407 counted in authFailures; a cached success goes
 * on at once; a source out of failures (connect.auth.failureLimit) → 429 without verifying;
 * otherwise scrypt runs on the thread pool (AUTH, holding a token of the source's bucket, kept
 * only if it fails) and auth_done continues.
 */
static void auth_check(lg_conn_t *c)
{
    const lg_auth_t *auth = c->relay.w->conf->listeners[c->lis].auth;
    lg_http_req_t *req = &c->su->head->req;
    lg_counters_t *cnt = counters(c);
    if (!req->has_auth) {
        respond(c, 407);
        return;
    }
    lg_auth_cred_t cred;
    uint8_t *value = c->su->head->buf + req->auth_off;
    int why =
        req->auth_too_long ? LG_AUTH_E_TOO_LONG : lg_auth_parse_basic(value, req->auth_len, &cred);
    lg_auth_wipe(value, req->auth_len); /* the encoded password is not needed any more */
    if (why != LG_AUTH_OK) {
        LG_COUNT(cnt, auth_failures, 1);
        respond(c, 407);
        return;
    }
    lg_wctx_t *w = c->relay.w;
    uint64_t src;
    bool limited = auth->throttle.slots != NULL &&
                   lg_protect_source_hash(w, c->lis, protection(c), &c->peer, &src);
    int rc = lg_verify_start(w, c->lis, auth, &cred, limited ? &src : NULL, auth_done, c,
                             &c->su->verify);
    if (rc == LG_VERIFY_CACHED) {
        to_policy(c);
    } else if (rc == -EAGAIN) {
        LG_COUNT(cnt, auth_throttled, 1);
        note_why(c, LG_CLOSE_REFUSED_AUTH);
        respond(c, 429);
    } else if (rc == -EBUSY) {
        LG_COUNT(cnt, refused_auth_busy, 1); /* LG_VERIFY_MAX_JOBS verifications in flight */
        respond(c, 503);
    } else if (rc != 0) {
        out_of_memory(c);
    } else {
        set_state(c, LG_CONN_AUTH);
    }
}

/* The head is complete: authenticate (when configured), then judge the target. */
static void on_head(lg_conn_t *c)
{
    uv_read_stop((uv_stream_t *)&c->client);
    leave_head(c);
    c->tunnel = lg_connect_tunnel_new(&c->su->head->req);
    if (c->tunnel == NULL) {
        out_of_memory(c);
        return;
    }
    if (c->relay.w->conf->listeners[c->lis].auth != NULL) {
        auth_check(c);
    } else {
        to_policy(c);
    }
}

static void head_alloc(uv_handle_t *h, size_t suggested, uv_buf_t *buf)
{
    (void)suggested;
    lg_conn_t *c = LG_CONTAINER_OF(h, lg_conn_t, client);
    buf->base = NULL;
    buf->len = 0;
    if (c->su->head == NULL && (c->su->head = lg_connect_head_new()) == NULL)
        return; /* UV_ENOBUFS */
    uint8_t *base = NULL;
    size_t len = 0;
    if (lg_connect_head_room(c->su->head, &base, &len) != 0) return;
    buf->base = (char *)base;
    buf->len = len;
}

/* n more bytes are in the head buffer: parse, and act once the head is decided. */
static void head_more(lg_conn_t *c, size_t n)
{
    int status = 0;
    int r = lg_connect_head_feed(c->su->head, n, &status);
    if (r == LG_OK) {
        on_head(c);
    } else if (r == LG_ERROR) {
        respond(c, status);
    }
}

static void head_read(uv_stream_t *s, ssize_t nread, const uv_buf_t *buf)
{
    (void)buf;
    lg_conn_t *c = LG_CONTAINER_OF(s, lg_conn_t, client);
    if (nread == 0) return;
    if (nread < 0) {
        if (nread == UV_ENOBUFS) LG_COUNT(counters(c), out_of_memory, 1);
        /* the client left (or no memory) before finishing its request */
        close_why(c, nread == UV_ENOBUFS ? LG_CLOSE_OUT_OF_MEMORY : LG_CLOSE_CLIENT_CLOSED);
        return;
    }
    LG_COUNT(counters(c), bytes_from_clients, (uint64_t)nread);
    head_more(c, (size_t)nread);
}

/* ---- PROXY protocol input -------------------------------------------------------------------- */

/* Start the first real phase (HELLO or HEAD) with `extra` bytes that came after the header. */
static void first_phase(lg_conn_t *c, const uint8_t *extra, size_t n)
{
    if (c->is_connect) {
        set_state(c, LG_CONN_HEAD);
        if (uv_read_start((uv_stream_t *)&c->client, head_alloc, head_read) != 0) {
            lg_conn_close(c);
            return;
        }
        if (n == 0) return;
        if ((c->su->head = lg_connect_head_new()) == NULL) {
            out_of_memory(c);
            return;
        }
        /* The bytes after a PROXY header may outgrow the first head buffer (up to
         * LG_PP_MAX_HEADER of them in one read): put them grows it. */
        if (lg_connect_head_put(c->su->head, extra, n) != 0) {
            out_of_memory(c);
            return;
        }
        head_more(c, n);
        return;
    }
    set_state(c, LG_CONN_HELLO);
    if (uv_read_start((uv_stream_t *)&c->client, hello_alloc, hello_read) != 0) {
        lg_conn_close(c);
        return;
    }
    if (n == 0) return;
    if (!hello_ctx_new(c)) {
        out_of_memory(c);
        return;
    }
    memcpy(c->su->hello->raw, extra, n);
    hello_more(c, n);
}

/* The header is complete: take the client address it carries, judge it, go on. */
static void proxy_done(lg_conn_t *c, const lg_pp_header_t *hdr)
{
    LG_COUNT(counters(c), proxy_headers, 1);
    if (!hdr->is_local) {
        c->peer.family = hdr->family;
        memcpy(c->peer.addr, hdr->src_addr, 16);
        c->peer.port = hdr->src_port;
    }
    int reason = lg_protect_admit(c->relay.w, c->lis, protection(c), &c->peer, &c->adm);
    if (reason != LG_BLOCK_NONE) {
        refused(c, reason, NULL, NULL);
        return;
    }
    lg_proxyin_t *p = c->su->proxyin;
    c->su->proxyin = NULL;
    uv_read_stop((uv_stream_t *)&c->client);
    first_phase(c, p->buf + hdr->header_len, p->len - hdr->header_len);
    lg_free(p);
}

static void proxy_alloc(uv_handle_t *h, size_t suggested, uv_buf_t *buf)
{
    (void)suggested;
    lg_conn_t *c = LG_CONTAINER_OF(h, lg_conn_t, client);
    buf->base = NULL;
    buf->len = 0;
    if (c->su->proxyin == NULL) {
        c->su->proxyin = lg_malloc(sizeof(*c->su->proxyin));
        if (c->su->proxyin == NULL) return; /* UV_ENOBUFS */
        lg_pp_parser_init(&c->su->proxyin->parser,
                          c->relay.w->conf->listeners[c->lis].accept_proxy);
        c->su->proxyin->len = 0;
    }
    buf->base = (char *)c->su->proxyin->buf + c->su->proxyin->len;
    buf->len = sizeof(c->su->proxyin->buf) - c->su->proxyin->len;
}

static void proxy_read(uv_stream_t *s, ssize_t nread, const uv_buf_t *buf)
{
    (void)buf;
    lg_conn_t *c = LG_CONTAINER_OF(s, lg_conn_t, client);
    if (nread == 0) return;
    if (nread < 0) {
        if (nread == UV_ENOBUFS && c->su->proxyin == NULL) {
            out_of_memory(c);
        } else {
            refused(c, LG_BLOCK_PROXY_HEADER, NULL, NULL); /* gone (or no room) before a header */
        }
        return;
    }
    LG_COUNT(counters(c), bytes_from_clients, (uint64_t)nread);
    lg_proxyin_t *p = c->su->proxyin;
    p->len += (size_t)nread;
    lg_pp_header_t hdr;
    int r = lg_pp_parse(&p->parser, p->buf, p->len, &hdr);
    if (r == LG_OK) {
        proxy_done(c, &hdr);
    } else if (r != LG_AGAIN) {
        refused(c, LG_BLOCK_PROXY_HEADER, NULL, NULL);
    }
}

/* ---- the deadline ------------------------------------------------------------------------ */

static void on_timer(lg_conn_t *c)
{
    switch (c->state) {
    case LG_CONN_PROXY:
        refused(c, LG_BLOCK_PROXY_HEADER, NULL, NULL);
        break;
    case LG_CONN_HELLO:
        hello_failed(c, HS_TIMEOUT);
        break;
    case LG_CONN_SUSPENDED:
        suspend_timeout(c);
        break;
    case LG_CONN_HANDSHAKE:
        if (now_ms(c) >= handshake_deadline(c)) {
            handshake_failed(c, HS_TIMEOUT);
        } else if (c->su->dial != NULL) {
            attempt_failed(c); /* this attempt's share of connectTimeoutMs ran out */
        } else {
            upstream_failed(c);
        }
        break;
    case LG_CONN_HEAD:
        respond(c, 408);
        break;
    case LG_CONN_AUTH:
        lg_verify_cancel(c->su->verify);
        c->su->verify = NULL;
        LG_COUNT(counters(c), refused_auth_busy, 1); /* no verdict within LG_VERIFY_TIMEOUT_MS */
        respond(c, 503);
        break;
    case LG_CONN_RESOLVING:
        LG_COUNT(counters(c), upstream_connect_failures, 1);
        respond(c, 504);
        break;
    case LG_CONN_CONNECTING:
        if (c->is_connect) {
            LG_COUNT(counters(c), upstream_connect_failures, 1);
            respond(c, 504);
        } else if (c->su->dial != NULL) {
            attempt_failed(c); /* this attempt's share of connectTimeoutMs ran out */
        } else {
            upstream_failed(c);
        }
        break;
    case LG_CONN_RELAY: {
        uint64_t since = now_ms(c) - c->relay.last_activity;
        uint32_t idle = idle_ms(c), half = c->relay.w->conf->half_close_ms;
        /* Our own timeouts are no fault of a terminated client's session: it stays resumable
         * (a browser that comes back after an idle close resumes). */
        if (idle > 0 && since >= idle) {
            LG_COUNT(counters(c), idle_timeouts, 1);
            lg_tls_keep_session(c->tls);
            close_why(c, LG_CLOSE_IDLE_TIMEOUT);
        } else if (c->half_closed && half > 0 && since >= half) {
            LG_COUNT(counters(c), half_close_timeouts, 1);
            lg_tls_keep_session(c->tls);
            close_why(c, LG_CLOSE_HALF_CLOSE_TIMEOUT);
        } else {
            relay_arm(c);
        }
        break;
    }
    default: /* LINGER */
        lg_conn_close(c);
        break;
    }
}

/* ---- accept ------------------------------------------------------------------------------ */

void lg_conn_accept(lg_wctx_t *w, unsigned lis, int fd, bool opts_inherited, const lg_peer_t *peer,
                    const lg_admission_t *adm)
{
    lg_counters_t *cnt = &w->counters[lis];
    const lg_listener_conf_t *lc = &w->conf->listeners[lis];
    bool is_connect = lc->kind == LG_LISTENER_CONNECT;
    /* Room for its deadline first: arming one can then never fail. */
    lg_conn_t *c =
        lg_theap_reserve(&w->deadlines, w->n_conns + 1) == 0 ? lg_calloc(1, sizeof(*c)) : NULL;
    lg_setup_t *su = c != NULL ? lg_calloc(1, sizeof(*su)) : NULL;
    if (su == NULL || lg_relay_init(&c->relay, w, lis, &RELAY_OPS, lc->flow_rate) != 0) {
        lg_free(su);
        lg_free(c);
        c = NULL;
    } else {
        c->su = su;
    }
    if (c == NULL) {
        close(fd);
        lg_admission_t a = *adm;
        lg_protect_release(w, &a, peer);
        head_src_release(&w->lis[lis], &a);
        atomic_fetch_sub_explicit(&w->lis[lis].active, 1, memory_order_relaxed);
        if (is_connect) atomic_fetch_sub_explicit(&w->lis[lis].in_head, 1, memory_order_relaxed);
        LG_COUNT(cnt, out_of_memory, 1);
        return;
    }
    c->lis = lis;
    c->route = -1;
    c->peer = *peer;
    c->adm = *adm;
    c->snap = lg_snapshot_ref(lg_snapslot_get(w->slot, &w->snap, &w->snap_gen));
    c->accepted_at = uv_now(w->loop);
    c->su->hs_start = c->accepted_at;
    c->is_connect = is_connect;
    c->in_head = is_connect;                    /* admission reserved an in-head slot */
    lg_relay_set_weight(&c->relay, lc->weight); /* the route's, if it has one, once routed */
    uv_tcp_init(w->loop, &c->client);
    c->client.data = c;
    c->next = w->conns;
    if (w->conns != NULL) w->conns->prev = c;
    w->conns = c;
    w->n_conns++;
    LG_PUBLISH(w->pub_conns, w->n_conns);
    LG_COUNT(cnt, total_connections, 1);
    c->state = lc->accept_proxy != 0 ? LG_CONN_PROXY : is_connect ? LG_CONN_HEAD : LG_CONN_HELLO;
    count_state(w, LG_CONN_N_STATES, c->state);

    int rc = uv_tcp_open(&c->client, fd);
    if (rc != 0) {
        close(fd);
        lg_conn_close(c);
        return;
    }
    if (!opts_inherited) (void)lg_conn_sockopts(fd, w->conf, false);
    /* The first state's deadline (not a transition: set_state is for those). A PROXY header
     * counts against the deadline of the phase it precedes. */
    arm_at(c, is_connect ? c->accepted_at + lc->head_timeout_ms : handshake_deadline(c));
    uv_read_cb read_cb = is_connect ? head_read : hello_read;
    uv_alloc_cb alloc_cb = is_connect ? head_alloc : hello_alloc;
    if (c->state == LG_CONN_PROXY) {
        read_cb = proxy_read;
        alloc_cb = proxy_alloc;
    }
    if (uv_read_start((uv_stream_t *)&c->client, alloc_cb, read_cb) != 0) lg_conn_close(c);
}
