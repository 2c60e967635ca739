/*
 * lg_protect.c — admission control (see lg_protect.h).
 */
#include "lg_protect.h"

#include "lg_ja.h"

#include <arpa/inet.h>
#include <stdio.h>
#include <string.h>

/* ---- peers ------------------------------------------------------------------------------------
 */

bool lg_peer_from_sockaddr(lg_peer_t *p, const struct sockaddr *sa)
{
    memset(p, 0, sizeof(*p));
    if (sa->sa_family == AF_INET) {
        const struct sockaddr_in *a = (const struct sockaddr_in *)sa;
        p->family = 4;
        memcpy(p->addr, &a->sin_addr, 4);
        p->port = ntohs(a->sin_port);
        return true;
    }
    if (sa->sa_family == AF_INET6) {
        const struct sockaddr_in6 *a = (const struct sockaddr_in6 *)sa;
        p->family = 6;
        memcpy(p->addr, &a->sin6_addr, 16);
        p->port = ntohs(a->sin6_port);
        return true;
    }
    return false;
}

void lg_peer_format(const lg_peer_t *p, char *out, size_t cap)
{
    if (cap == 0) return;
    out[0] = '\0';
    if (p->family == 4) {
        inet_ntop(AF_INET, p->addr, out, (socklen_t)cap);
    } else if (p->family == 6) {
        inet_ntop(AF_INET6, p->addr, out, (socklen_t)cap);
    }
}

/* ---- the checks ----------------------------------------------------------------------------- */

static bool cidr_has(const lg_cidr_set_t *set, const lg_peer_t *peer)
{
    return (set->n4 > 0 || set->n6 > 0) && lg_cidr_set_contains(set, peer->family, peer->addr);
}

int lg_protect_admit(lg_wctx_t *w, unsigned lis, const lg_protection_t *p, const lg_peer_t *peer,
                     lg_admission_t *adm)
{
    memset(adm, 0, sizeof(*adm));
    if (cidr_has(&p->allow, peer)) return LG_BLOCK_NONE; /* bypasses the rest, not counted */
    if (cidr_has(&p->block, peer)) return LG_BLOCK_CIDR_BLOCKED;
    if (!p->track) return LG_BLOCK_NONE;
    lg_ipkey_t key;
    if (lg_ipkey_make(&key, (uint8_t)lis, peer->family, peer->addr, p->ipv6_prefix) != 0) {
        return LG_BLOCK_NONE; /* not an IP address (cannot happen for TCP) */
    }
    adm->lis = (uint8_t)lis;
    adm->ipv6_prefix = (uint8_t)p->ipv6_prefix;
    uint64_t now = uv_now(w->loop);
    if (w->admits_to_sweep-- == 0) {
        w->admits_to_sweep = LG_PROTECT_SWEEP_EVERY;
        lg_limit_sweep(w->limit, now, LG_PROTECT_SWEEP_BUDGET);
    }
    switch (lg_limit_admit(w->limit, &key, &p->rules, now, &adm->ticket)) {
    case LG_LIMIT_BOXED:
        return LG_BLOCK_PENALTY_BOXED;
    case LG_LIMIT_RATE:
        return LG_BLOCK_RATE_LIMITED;
    case LG_LIMIT_CONCURRENCY:
        return LG_BLOCK_TOO_MANY_CONNECTIONS;
    default:
        return LG_BLOCK_NONE;
    }
}

void lg_protect_release(lg_wctx_t *w, lg_admission_t *adm, const lg_peer_t *peer)
{
    if (!adm->ticket.tracked) return;
    lg_ipkey_t key;
    /* The same inputs as at admission: it succeeded then, so it does now. */
    (void)lg_ipkey_make(&key, adm->lis, peer->family, peer->addr, adm->ipv6_prefix);
    lg_limit_release(w->limit, &key, &adm->ticket);
    adm->ticket.tracked = false;
}

bool lg_protect_fails_closed(const lg_protection_t *p)
{
    return p->ja3.n > 0 || p->ja4.n > 0;
}

bool lg_protect_judges_hello(const lg_protection_t *p)
{
    return p->require_sni || lg_protect_fails_closed(p);
}

/* The refusal `reason`, with the fingerprint the checks did not need filled in for its event. */
static int hello_refused(lg_ja_cache_t *cache, const lg_hello_t *hello, int reason, char ja3[33],
                         char ja4[40])
{
    char other[40];
    if (ja3[0] == '\0') {
        lg_ja_fingerprints_cached(cache, hello, LG_JA_WANT_JA3, ja3, other);
    } else if (ja4[0] == '\0') {
        lg_ja_fingerprints_cached(cache, hello, LG_JA_WANT_JA4, other, ja4);
    }
    return reason;
}

int lg_protect_hello(const lg_protection_t *p, lg_ja_cache_t *cache, const lg_hello_t *hello,
                     char ja3[33], char ja4[40])
{
    ja3[0] = '\0';
    ja4[0] = '\0';
    if (p->require_sni && (hello == NULL || !hello->has_sni)) return LG_BLOCK_NO_SNI;
    if (!lg_protect_fails_closed(p)) return LG_BLOCK_NONE;
    if (hello == NULL) return LG_BLOCK_INCOMPLETE_HANDSHAKE; /* not TLS: nothing to judge */
    /* Only the fingerprints a list needs (most hellos pass; a refusal's event gets both). */
    unsigned want = (p->ja3.n > 0 ? LG_JA_WANT_JA3 : 0) | (p->ja4.n > 0 ? LG_JA_WANT_JA4 : 0);
    lg_ja_fingerprints_cached(cache, hello, want, ja3, ja4);
    if (p->ja3.n > 0) {
        if (ja3[0] == '\0') return LG_BLOCK_INCOMPLETE_HANDSHAKE;
        if (lg_ja_set_contains(&p->ja3, ja3)) {
            return hello_refused(cache, hello, LG_BLOCK_JA3_BLOCKED, ja3, ja4);
        }
    }
    if (p->ja4.n > 0) {
        if (ja4[0] == '\0') return LG_BLOCK_INCOMPLETE_HANDSHAKE;
        if (lg_ja_set_contains(&p->ja4, ja4)) {
            return hello_refused(cache, hello, LG_BLOCK_JA4_BLOCKED, ja3, ja4);
        }
    }
    return LG_BLOCK_NONE;
}

/* ---- refusals and their events ----------------------------------------------------------------
 */

int lg_blocklog_init(lg_blocklog_t *b)
{
    memset(b, 0, sizeof(*b));
    if (uv_random(NULL, NULL, b->key, sizeof(b->key), 0, NULL) != 0) {
        b->key[0] = (uint64_t)(uintptr_t)b; /* only spreads keys; no secret is at stake */
    }
    return -pthread_mutex_init(&b->lock, NULL);
}

void lg_blocklog_destroy(lg_blocklog_t *b)
{
    pthread_mutex_destroy(&b->lock);
}

static size_t blocklog_slot(const lg_blocklog_t *b, const lg_ipkey_t *k, int reason)
{
    uint64_t h = b->key[0] ^ (uint64_t)reason;
    const uint8_t *p = (const uint8_t *)k;
    for (size_t i = 0; i < sizeof(*k); i++) {
        h ^= p[i];
        h *= UINT64_C(0x100000001b3);
    }
    h ^= b->key[1];
    h ^= h >> 33;
    h *= UINT64_C(0xff51afd7ed558ccd);
    h ^= h >> 33;
    return (size_t)(h % LG_BLOCKLOG_SLOTS);
}

/*
 * Coalesce: the number of refusals the event to post now carries, or 0 when this refusal only
 * counts (an event for the key was already posted this second).
 */
static uint64_t blocklog_note(lg_blocklog_t *b, const lg_ipkey_t *k, int reason, uint64_t second)
{
    size_t i = blocklog_slot(b, k, reason);
    uint64_t count = 0;
    pthread_mutex_lock(&b->lock);
    lg_blocklog_slot_t *s = &b->slots[i];
    if (s->used && s->reason == reason && memcmp(&s->key, k, sizeof(*k)) == 0) {
        s->pending++;
        if (second > s->second) { /* strictly later: workers' loop clocks differ a little */
            count = s->pending;
            s->pending = 0;
            s->second = second;
        }
    } else {
        /* A new key (or one that takes over the slot: its pending count is lost, the events
         * simply come closer together). */
        s->key = *k;
        s->reason = (uint8_t)reason;
        s->used = true;
        s->second = second;
        s->pending = 0;
        count = 1;
    }
    pthread_mutex_unlock(&b->lock);
    return count;
}

bool lg_protect_source_hash(const lg_wctx_t *w, unsigned lis, const lg_protection_t *p,
                            const lg_peer_t *peer, uint64_t *h)
{
    lg_ipkey_t k;
    if (lg_ipkey_make(&k, (uint8_t)lis, peer->family, peer->addr, p->ipv6_prefix) != 0) {
        return false;
    }
    *h = lg_limit_key_hash(w->limit, &k);
    return true;
}

void lg_protect_refused(lg_wctx_t *w, unsigned lis, const lg_protection_t *p, int reason,
                        const lg_peer_t *peer, const char *ja3, const char *ja4)
{
    LG_COUNT(&w->counters[lis], blocked[reason], 1);
    if (reason == LG_BLOCK_MAX_CONNECTIONS) LG_COUNT(&w->counters[lis], refused_max_connections, 1);
    if (!lg_events_blocked_on(w->events)) return;
    lg_ipkey_t k;
    if (lg_ipkey_make(&k, (uint8_t)lis, peer->family, peer->addr, p->ipv6_prefix) != 0) return;
    uint64_t count = blocklog_note(w->blocklog, &k, reason, uv_now(w->loop) / 1000);
    if (count == 0) return;
    lg_event_t *ev = lg_event_alloc(w->events, LG_EV_BLOCKED, w->index);
    if (ev == NULL) return;
    lg_ev_blocked_t *e = &ev->u.blocked;
    e->listener = lis;
    e->reason = reason;
    e->count = count;
    lg_ipkey_format(&k, e->ip, sizeof(e->ip));
    if (ja3 != NULL) snprintf(e->ja3, sizeof(e->ja3), "%s", ja3);
    if (ja4 != NULL) snprintf(e->ja4, sizeof(e->ja4), "%s", ja4);
    lg_events_post(w->events, ev);
}
