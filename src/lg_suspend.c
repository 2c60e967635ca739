/*
 * lg_suspend.c — held connections and their decisions (see lg_suspend.h).
 */
#include "lg_suspend.h"

#include <inttypes.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "lg_ja.h"

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
    return -pthread_mutex_init(&t->lock, NULL);
}

void lg_pending_destroy(lg_pending_t *t)
{
    lg_free(t->slots);
    t->slots = NULL;
    pthread_mutex_destroy(&t->lock);
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

static _Atomic uint64_t serials;

uint64_t lg_suspend_next_serial(void)
{
    return atomic_fetch_add_explicit(&serials, 1, memory_order_relaxed) + 1;
}

static void format_id(char *out, size_t size, unsigned worker, uint64_t serial)
{
    snprintf(out, size, "%u.%" PRIu64, worker, serial);
}

static void fill_event(lg_ev_suspended_t *e, const lg_suspend_in_t *in)
{
    e->listener = in->listener;
    format_id(e->id, sizeof(e->id), in->worker, in->serial);
    if (in->sni_len > 0) snprintf(e->sni, sizeof(e->sni), "%.*s", (int)in->sni_len, in->sni);
    snprintf(e->peer_ip, sizeof(e->peer_ip), "%s", in->peer_ip);
    e->peer_port = in->peer_port;
    const lg_hello_t *hello = in->hello;
    size_t off = 0;
    for (uint16_t i = 0; hello != NULL && i < hello->n_alpn; i++) {
        size_t l = hello->alpn_len[i];
        const char *name = hello->alpn_buf + hello->alpn_off[i];
        /* Names are joined by newlines and JS splits on them: a name holding a newline or a NUL
         * (raw bytes from the client) would forge or cut entries, so it is left out. */
        if (memchr(name, '\n', l) != NULL || memchr(name, '\0', l) != NULL) continue;
        if (off + l + 1 >= sizeof(e->alpn)) break;
        memcpy(e->alpn + off, name, l);
        off += l;
        e->alpn[off++] = '\n';
    }
    if (off > 0) e->alpn[off - 1] = '\0';
    if (hello != NULL) lg_ja_fingerprints(hello, e->ja3, e->ja4);
}

void lg_suspend_release(lg_pending_t *t, lg_suspend_ctx_t *s)
{
    if (s == NULL) return;
    if (s->pending) {
        pthread_mutex_lock(&t->lock);
        lg_pending_entry_t *e = find(t, s->serial);
        if (e != NULL) erase(t, e);
        pthread_mutex_unlock(&t->lock);
    }
    lg_free(s->held);
    lg_free(s->sni);
    lg_free(s);
}

int lg_suspend_hold(lg_pending_t *t, lg_events_t *ch, const lg_suspend_in_t *in,
                    lg_suspend_ctx_t **out)
{
    *out = NULL;
    lg_suspend_ctx_t *s = lg_calloc(1, sizeof(*s));
    lg_event_t *ev = lg_event_alloc(NULL, LG_EV_SUSPENDED, in->worker);
    if (s != NULL) {
        s->cap = in->raw_len + LG_SUSPEND_MAX_EXTRA;
        s->held = lg_malloc(s->cap);
        if (in->sni_len > 0) s->sni = lg_malloc(in->sni_len + 1);
    }
    if (s == NULL || ev == NULL || s->held == NULL || (in->sni_len > 0 && s->sni == NULL)) {
        lg_free(ev);
        lg_suspend_release(t, s);
        return -ENOMEM;
    }
    memcpy(s->held, in->raw, in->raw_len);
    s->len = in->raw_len;
    if (in->sni_len > 0) {
        memcpy(s->sni, in->sni, in->sni_len);
        s->sni[in->sni_len] = '\0';
    }
    s->tls = in->hello != NULL;
    s->serial = in->serial;
    s->timeout_ms = in->timeout_ms;
    fill_event(&ev->u.suspended, in);

    lg_pending_entry_t entry = {in->serial, in->owner, in->listener, false, in->route_tls};
    pthread_mutex_lock(&t->lock);
    int rc = insert(t, &entry);
    pthread_mutex_unlock(&t->lock);
    if (rc != 0) {
        lg_free(ev);
        lg_suspend_release(t, s);
        return rc;
    }
    s->pending = true;
    if (lg_events_post(ch, ev) != 0) {
        /* JS will never hear of it: do not make the client wait for a decision. */
        lg_suspend_release(t, s);
        return -EAGAIN;
    }
    *out = s;
    return 0;
}

bool lg_pending_claimed(lg_pending_t *t, uint64_t serial)
{
    pthread_mutex_lock(&t->lock);
    lg_pending_entry_t *e = find(t, serial);
    bool claimed = e != NULL && e->claimed;
    pthread_mutex_unlock(&t->lock);
    return claimed;
}

void *lg_pending_take(lg_pending_t *t, uint64_t serial)
{
    pthread_mutex_lock(&t->lock);
    lg_pending_entry_t *e = find(t, serial);
    void *owner = e != NULL ? e->owner : NULL;
    if (e != NULL) erase(t, e);
    pthread_mutex_unlock(&t->lock);
    return owner;
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

int lg_pending_peek(lg_pending_t *const *tables, unsigned n, const char *id, unsigned *worker,
                    uint64_t *serial, unsigned *listener, bool *route_tls)
{
    /* Exactly the form format_id writes: decimal, no sign, no spaces, no leading zeros. */
    uint64_t wk = 0, sr = 0;
    const char *p = id;
    if (!parse_decimal(&p, &wk) || *p++ != '.' || !parse_decimal(&p, &sr) || *p != '\0' ||
        wk >= n || sr == 0) {
        return -ENOENT;
    }
    lg_pending_t *t = tables[wk];
    int rc = -ENOENT;
    pthread_mutex_lock(&t->lock);
    lg_pending_entry_t *e = find(t, sr);
    if (e != NULL && !e->claimed) {
        *listener = e->listener;
        *route_tls = e->route_tls;
        rc = 0;
    }
    pthread_mutex_unlock(&t->lock);
    *worker = (unsigned)wk;
    *serial = sr;
    return rc;
}

bool lg_pending_claim(lg_pending_t *t, uint64_t serial)
{
    bool ok = false;
    pthread_mutex_lock(&t->lock);
    lg_pending_entry_t *e = find(t, serial);
    if (e != NULL && !e->claimed) {
        e->claimed = true;
        ok = true;
    }
    pthread_mutex_unlock(&t->lock);
    return ok;
}
