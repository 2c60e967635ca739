/*
 * lg_suspend.c — held connections and their decisions (see lg_suspend.h).
 */
#include "lg_suspend.h"
#include "lg_conn.h"
#include "lg_relay.h"
#include "lg_tls.h"

#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define PENDING_CAP_MIN 64

/* ---- the table ------------------------------------------------------------------------- */

static size_t slot_of(const lg_pending_t *t, uint64_t serial)
{
    /* Fibonacci hashing spreads consecutive serials. */
    return (size_t)((serial * 11400714819323198485ull) >> 32) & (t->cap - 1);
}

int lg_pending_init(lg_pending_t *t)
{
    memset(t, 0, sizeof(*t));
    return uv_mutex_init(&t->lock);
}

void lg_pending_destroy(lg_pending_t *t)
{
    lg_free(t->slots);
    t->slots = NULL;
    uv_mutex_destroy(&t->lock);
}

/* Caller holds the lock. */
static lg_pending_entry_t *find(const lg_pending_t *t, uint64_t serial)
{
    if (t->cap == 0) return NULL;
    for (size_t i = slot_of(t, serial);; i = (i + 1) & (t->cap - 1)) {
        lg_pending_entry_t *e = &t->slots[i];
        if (e->serial == 0) return NULL;
        if (e->serial == serial) return e;
    }
}

/* Caller holds the lock. Returns 0, -ENOSPC at the bound, or -ENOMEM. */
static int insert(lg_pending_t *t, const lg_pending_entry_t *entry)
{
    if (t->n >= LG_SUSPEND_MAX_PER_WORKER) return -ENOSPC;
    if ((t->n + 1) * 2 > t->cap) {
        size_t cap = t->cap ? t->cap * 2 : PENDING_CAP_MIN;
        lg_pending_entry_t *slots = lg_calloc(cap, sizeof(*slots));
        if (slots == NULL) return -ENOMEM;
        lg_pending_entry_t *old = t->slots;
        size_t old_cap = t->cap;
        t->slots = slots;
        t->cap = cap;
        for (size_t i = 0; i < old_cap; i++) {
            if (old[i].serial == 0) continue;
            size_t j = slot_of(t, old[i].serial);
            while (t->slots[j].serial != 0)
                j = (j + 1) & (cap - 1);
            t->slots[j] = old[i];
        }
        lg_free(old);
    }
    size_t j = slot_of(t, entry->serial);
    while (t->slots[j].serial != 0)
        j = (j + 1) & (t->cap - 1);
    t->slots[j] = *entry;
    t->n++;
    atomic_store_explicit(&t->n_shared, t->n, memory_order_relaxed);
    return 0;
}

/* Caller holds the lock. Backward-shift deletion keeps probe chains intact without tombstones. */
static void erase(lg_pending_t *t, lg_pending_entry_t *e)
{
    size_t i = (size_t)(e - t->slots);
    size_t mask = t->cap - 1;
    for (size_t j = (i + 1) & mask; t->slots[j].serial != 0; j = (j + 1) & mask) {
        size_t home = slot_of(t, t->slots[j].serial);
        /* Move j back to i when its home is not in (i, j] (cyclically). */
        bool between = i <= j ? (home > i && home <= j) : (home > i || home <= j);
        if (!between) {
            t->slots[i] = t->slots[j];
            i = j;
        }
    }
    memset(&t->slots[i], 0, sizeof(t->slots[i]));
    t->n--;
    atomic_store_explicit(&t->n_shared, t->n, memory_order_relaxed);
}

/* ---- worker side ----------------------------------------------------------------------- */

static void format_id(char *out, size_t size, unsigned worker, uint64_t serial)
{
    snprintf(out, size, "%u.%" PRIu64, worker, serial);
}

static void held_alloc(uv_handle_t *h, size_t suggested, uv_buf_t *buf)
{
    (void)suggested;
    lg_conn_t *c = h->data;
    buf->base = (char *)c->held + c->held_len;
    buf->len = c->held_cap - c->held_len;
}

/*
 * While held: keep reading (so a client that leaves is noticed), up to held_cap bytes.
 *
 * EOF means "gone" for a TLS client: it cannot finish a handshake after its FIN, so holding it
 * for a decision would only waste an upstream connection. A non-TLS client may half-close after
 * its request and still wait for the answer (`printf 'GET /...' | nc`, a shutdown(SHUT_WR) after
 * a request): its FIN is kept and passed on after the held bytes once the decision relays.
 */
static void held_read(uv_stream_t *s, ssize_t nread, const uv_buf_t *buf)
{
    (void)buf;
    lg_conn_t *c = s->data;
    if (c->state != LG_CONN_SUSPENDED || nread == 0) return;
    if (nread < 0) {
        if (nread == UV_ENOBUFS) {
            uv_read_stop(s); /* full: the rest waits in the kernel until the decision */
            return;
        }
        if (nread == UV_EOF && !c->held_tls) {
            c->c2u.eof = true;
            uv_read_stop(s);
            return;
        }
        LG_COUNT(lg_conn_counters(c), suspended_gone, 1);
        lg_conn_close(c);
        return;
    }
    c->held_len += (size_t)nread;
    LG_COUNT(lg_conn_counters(c), bytes_from_clients, (uint64_t)nread);
    if (c->held_len == c->held_cap) uv_read_stop(s);
}

static void peer_name(lg_conn_t *c, char *ip, size_t ip_size, uint16_t *port)
{
    struct sockaddr_storage ss;
    int len = sizeof(ss);
    ip[0] = '\0';
    *port = 0;
    if (uv_tcp_getpeername(&c->client, (struct sockaddr *)&ss, &len) != 0) return;
    if (ss.ss_family == AF_INET6) {
        const struct sockaddr_in6 *a = (const struct sockaddr_in6 *)&ss;
        uv_ip6_name(a, ip, ip_size);
        *port = ntohs(a->sin6_port);
    } else if (ss.ss_family == AF_INET) {
        const struct sockaddr_in *a = (const struct sockaddr_in *)&ss;
        uv_ip4_name(a, ip, ip_size);
        *port = ntohs(a->sin_port);
    }
}

void lg_suspend(lg_conn_t *c, const lg_route_t *rt, const char *sni, size_t sni_len,
                const lg_hello_t *hello, const uint8_t *raw, size_t raw_len)
{
    lg_worker_t *w = c->w;
    lg_engine_t *e = w->engine;
    lg_counters_t *cnt = lg_conn_counters(c);
    LG_COUNT(cnt, suspended_total, 1);

    c->held_cap = raw_len + LG_SUSPEND_MAX_EXTRA;
    c->held = lg_malloc(c->held_cap);
    lg_event_t *ev = lg_calloc(1, sizeof(*ev));
    if (c->held == NULL || ev == NULL) {
        lg_free(ev);
        LG_COUNT(cnt, out_of_memory, 1);
        lg_conn_close(c);
        return;
    }
    memcpy(c->held, raw, raw_len);
    c->held_len = raw_len;
    c->held_tls = hello != NULL;
    c->serial = ++w->next_serial;

    ev->type = LG_EV_SUSPENDED;
    ev->worker = w->index;
    ev->listener = c->lis;
    format_id(ev->id, sizeof(ev->id), w->index, c->serial);
    if (sni_len > 0) {
        snprintf(ev->target, sizeof(ev->target), "%.*s", (int)sni_len, sni);
        c->held_sni = lg_malloc(sni_len + 1);
        if (c->held_sni == NULL) {
            lg_free(ev);
            LG_COUNT(cnt, out_of_memory, 1);
            lg_conn_close(c);
            return;
        }
        memcpy(c->held_sni, sni, sni_len);
        c->held_sni[sni_len] = '\0';
    }
    peer_name(c, ev->peer_ip, sizeof(ev->peer_ip), &ev->port);
    size_t off = 0;
    for (uint16_t i = 0; hello != NULL && i < hello->n_alpn; i++) {
        size_t l = hello->alpn_len[i];
        const char *name = hello->alpn_buf + hello->alpn_off[i];
        /* Names are joined by newlines and JS splits on them: a name holding a newline or a NUL
         * (raw bytes from the client) would forge or cut entries, so it is left out. */
        if (memchr(name, '\n', l) != NULL || memchr(name, '\0', l) != NULL) continue;
        if (off + l + 1 >= sizeof(ev->alpn)) break;
        memcpy(ev->alpn + off, name, l);
        off += l;
        ev->alpn[off++] = '\n';
    }
    if (off > 0) ev->alpn[off - 1] = '\0';
    if (hello != NULL) lg_tls_fingerprints(hello, ev->ja3, ev->ja4);

    bool route_tls = c->lis < rt->n_ctx && rt->ctx[c->lis] != NULL;
    lg_pending_entry_t entry = {c->serial, c, c->lis, false, route_tls};
    uv_mutex_lock(&w->pending.lock);
    int rc = insert(&w->pending, &entry);
    uv_mutex_unlock(&w->pending.lock);
    if (rc != 0) {
        lg_free(ev);
        LG_COUNT(cnt, suspended_dropped, 1);
        lg_conn_close(c);
        return;
    }
    c->pending = true;
    c->suspend_ms = rt->suspend_timeout_ms;
    lg_conn_set_state(c, LG_CONN_SUSPENDED); /* arms the suspend deadline */
    if (lg_engine_post(e, ev) != 0) {
        /* JS will never hear of it: do not make the client wait for a decision. */
        LG_COUNT(cnt, suspended_dropped, 1);
        lg_conn_close(c);
        return;
    }
    if (uv_read_start((uv_stream_t *)&c->client, held_alloc, held_read) != 0) lg_conn_close(c);
}

void lg_suspend_forget(lg_conn_t *c)
{
    if (!c->pending) return;
    lg_pending_t *t = &c->w->pending;
    uv_mutex_lock(&t->lock);
    lg_pending_entry_t *e = find(t, c->serial);
    if (e != NULL) erase(t, e);
    uv_mutex_unlock(&t->lock);
    c->pending = false;
}

void lg_suspend_timeout(lg_conn_t *c)
{
    lg_pending_t *t = &c->w->pending;
    uv_mutex_lock(&t->lock);
    lg_pending_entry_t *e = find(t, c->serial);
    bool claimed = e != NULL && e->claimed;
    uv_mutex_unlock(&t->lock);
    if (claimed && !c->claim_grace) {
        /* JS was told it resolved this one; its decision is in the inbox. */
        c->claim_grace = true;
        c->suspend_ms = LG_SUSPEND_CLAIM_GRACE_MS;
        lg_conn_set_state(c, LG_CONN_SUSPENDED);
        return;
    }
    LG_COUNT(lg_conn_counters(c), suspended_timed_out, 1);
    lg_conn_close(c);
}

void lg_suspend_resolved(lg_worker_t *w, uint64_t serial, lg_route_t *decision)
{
    lg_pending_t *t = &w->pending;
    uv_mutex_lock(&t->lock);
    lg_pending_entry_t *e = find(t, serial);
    lg_conn_t *c = e != NULL ? e->conn : NULL;
    if (e != NULL) erase(t, e);
    uv_mutex_unlock(&t->lock);
    if (c == NULL || c->state != LG_CONN_SUSPENDED) {
        /* The client left (or the proxy is stopping) after JS claimed it. */
        if (decision != NULL) {
            lg_route_free(decision);
            lg_free(decision);
        }
        return;
    }
    c->pending = false;
    lg_counters_t *cnt = lg_conn_counters(c);
    if (decision == NULL) {
        LG_COUNT(cnt, suspended_rejected, 1);
        lg_conn_close(c);
        return;
    }
    LG_COUNT(cnt, suspended_resolved, 1);
    uv_read_stop((uv_stream_t *)&c->client);
    c->decision = decision;
    lg_conn_route_to(c, decision);
}

/* ---- JS side --------------------------------------------------------------------------- */

/* Parse a canonical decimal (no sign, no leading zero unless "0", at most 19 digits). */
static bool parse_decimal(const char **pp, uint64_t *out)
{
    const char *p = *pp;
    uint64_t v = 0;
    size_t n = 0;
    while (p[n] >= '0' && p[n] <= '9') {
        if (n == 19) return false;
        v = v * 10 + (uint64_t)(p[n] - '0');
        n++;
    }
    if (n == 0 || (n > 1 && p[0] == '0')) return false;
    *pp = p + n;
    *out = v;
    return true;
}

int lg_suspend_peek(lg_worker_t *workers, unsigned n_workers, const char *id, unsigned *worker,
                    uint64_t *serial, unsigned *listener, bool *route_tls)
{
    /* Exactly the form format_id writes: decimal, no sign, no spaces, no leading zeros. */
    uint64_t wk = 0, sr = 0;
    const char *p = id;
    if (!parse_decimal(&p, &wk) || *p++ != '.' || !parse_decimal(&p, &sr) || *p != '\0' ||
        wk >= n_workers || sr == 0) {
        return -ENOENT;
    }
    lg_pending_t *t = &workers[wk].pending;
    int rc = -ENOENT;
    uv_mutex_lock(&t->lock);
    lg_pending_entry_t *e = find(t, sr);
    if (e != NULL && !e->claimed) {
        *listener = e->listener;
        *route_tls = e->route_tls;
        rc = 0;
    }
    uv_mutex_unlock(&t->lock);
    *worker = (unsigned)wk;
    *serial = sr;
    return rc;
}

bool lg_suspend_claim(lg_worker_t *w, uint64_t serial)
{
    lg_pending_t *t = &w->pending;
    bool ok = false;
    uv_mutex_lock(&t->lock);
    lg_pending_entry_t *e = find(t, serial);
    if (e != NULL && !e->claimed) {
        e->claimed = true;
        ok = true;
    }
    uv_mutex_unlock(&t->lock);
    return ok;
}
