/*
 * lg_affinity.c — client IP affinity table (pure core; see lg_affinity.h).
 *
 * Implements SipHash-2-4 (Aumasson and Bernstein, "SipHash: a fast short-input PRF", 2012) for
 * bucket and shard positions.
 *
 * Invariants of a shard (checked by test/c/test_balancer.c):
 *   - Every entry is either used (in exactly one bucket chain and in the LRU list) or free (in
 *     the free list only); used counts the used ones and used <= cap.
 *   - The LRU list runs from most to least recently seen (last_seen_ms does not increase along
 *     it, for callers whose clock does not go back).
 *   - No two used entries have the same (key, scope).
 */
#include "lg_affinity.h"

#include <string.h>

#define SHARD_SHIFT 60 /* the top 4 bits of the hash choose one of 16 shards */

#if (LG_AFFINITY_SHARDS != 16)
#error "SHARD_SHIFT assumes 16 shards"
#endif

static uint64_t rotl(uint64_t x, int b)
{
    return (x << b) | (x >> (64 - b));
}

static uint64_t aff_load_le64(const uint8_t *p)
{
    uint64_t v = 0;
    for (int i = 7; i >= 0; i--)
        v = (v << 8) | p[i];
    return v;
}

#define AFF_SIPROUND                                                                               \
    do {                                                                                           \
        v0 += v1;                                                                                  \
        v1 = rotl(v1, 13);                                                                         \
        v1 ^= v0;                                                                                  \
        v0 = rotl(v0, 32);                                                                         \
        v2 += v3;                                                                                  \
        v3 = rotl(v3, 16);                                                                         \
        v3 ^= v2;                                                                                  \
        v0 += v3;                                                                                  \
        v3 = rotl(v3, 21);                                                                         \
        v3 ^= v0;                                                                                  \
        v2 += v1;                                                                                  \
        v1 = rotl(v1, 17);                                                                         \
        v1 ^= v2;                                                                                  \
        v2 = rotl(v2, 32);                                                                         \
    } while (0)

/* SipHash-2-4 of in[0..len) under the key (k0, k1): the reference algorithm. */
static uint64_t siphash24(uint64_t k0, uint64_t k1, const uint8_t *in, size_t len)
{
    uint64_t v0 = 0x736f6d6570736575ULL ^ k0;
    uint64_t v1 = 0x646f72616e646f6dULL ^ k1;
    uint64_t v2 = 0x6c7967656e657261ULL ^ k0;
    uint64_t v3 = 0x7465646279746573ULL ^ k1;
    size_t whole = len - len % 8;
    for (size_t i = 0; i < whole; i += 8) {
        uint64_t m = aff_load_le64(in + i);
        v3 ^= m;
        AFF_SIPROUND;
        AFF_SIPROUND;
        v0 ^= m;
    }
    uint64_t last = (uint64_t)(len & 0xff) << 56;
    for (size_t i = 0; i < len % 8; i++)
        last |= (uint64_t)in[whole + i] << (8 * i);
    v3 ^= last;
    AFF_SIPROUND;
    AFF_SIPROUND;
    v0 ^= last;
    v2 ^= 0xff;
    AFF_SIPROUND;
    AFF_SIPROUND;
    AFF_SIPROUND;
    AFF_SIPROUND;
    return v0 ^ v1 ^ v2 ^ v3;
}

#define HASH_INPUT_LEN (LG_CLIENTKEY_LEN + 8) /* key bytes, then the scope little-endian */

static uint64_t entry_hash(const lg_affinity_t *a, const lg_clientkey_t *key, uint64_t scope)
{
    uint8_t in[HASH_INPUT_LEN];
    memcpy(in, key->b, LG_CLIENTKEY_LEN);
    for (int i = 0; i < 8; i++)
        in[LG_CLIENTKEY_LEN + i] = (uint8_t)(scope >> (8 * i));
    return siphash24(a->k0, a->k1, in, sizeof(in));
}

/* ---- one shard (callers hold its lock) ---- */

static void lru_unlink(lg_affinity_shard_t *s, uint32_t i)
{
    lg_affinity_entry_t *e = &s->pool[i];
    if (e->prev != LG_AFFINITY_NIL) {
        s->pool[e->prev].next = e->next;
    } else {
        s->lru_head = e->next;
    }
    if (e->next != LG_AFFINITY_NIL) {
        s->pool[e->next].prev = e->prev;
    } else {
        s->lru_tail = e->prev;
    }
}

static void lru_push_head(lg_affinity_shard_t *s, uint32_t i)
{
    lg_affinity_entry_t *e = &s->pool[i];
    e->prev = LG_AFFINITY_NIL;
    e->next = s->lru_head;
    if (s->lru_head != LG_AFFINITY_NIL) {
        s->pool[s->lru_head].prev = i;
    } else {
        s->lru_tail = i;
    }
    s->lru_head = i;
}

static uint32_t aff_find(const lg_affinity_shard_t *s, uint64_t h, const lg_clientkey_t *key,
                         uint64_t scope)
{
    for (uint32_t i = s->bucket[h & s->bucket_mask]; i != LG_AFFINITY_NIL; i = s->pool[i].hnext) {
        const lg_affinity_entry_t *e = &s->pool[i];
        if (e->scope == scope && memcmp(e->key.b, key->b, LG_CLIENTKEY_LEN) == 0) return i;
    }
    return LG_AFFINITY_NIL;
}

/* Remove used entry i (hash h) from its chain and the LRU list and free it. */
static void drop(lg_affinity_shard_t *s, uint32_t i, uint64_t h)
{
    uint32_t *link = &s->bucket[h & s->bucket_mask];
    while (*link != i)
        link = &s->pool[*link].hnext;
    *link = s->pool[i].hnext;
    lru_unlink(s, i);
    s->pool[i].used = 0;
    s->pool[i].next = s->free_head;
    s->free_head = i;
    s->used--;
}

static bool expired(uint64_t last_seen_ms, uint64_t now_ms, uint64_t ttl_ms)
{
    /* A clock read earlier on another worker may be behind last_seen: not expired. */
    return now_ms >= last_seen_ms && now_ms - last_seen_ms >= ttl_ms;
}

static int shard_init(lg_affinity_shard_t *s, uint32_t cap)
{
    uint32_t nbucket = 1;
    while (nbucket < cap)
        nbucket <<= 1;
    s->pool = lg_calloc(cap, sizeof(*s->pool));
    s->bucket = lg_malloc((size_t)nbucket * sizeof(*s->bucket));
    if (s->pool == NULL || s->bucket == NULL) {
        lg_free(s->pool);
        lg_free(s->bucket);
        s->pool = NULL;
        s->bucket = NULL;
        return -ENOMEM;
    }
    int rc = pthread_mutex_init(&s->mu, NULL);
    if (rc != 0) {
        lg_free(s->pool);
        lg_free(s->bucket);
        s->pool = NULL;
        s->bucket = NULL;
        return -rc;
    }
    for (uint32_t b = 0; b < nbucket; b++)
        s->bucket[b] = LG_AFFINITY_NIL;
    for (uint32_t i = 0; i < cap; i++)
        s->pool[i].next = i + 1 < cap ? i + 1 : LG_AFFINITY_NIL;
    s->cap = cap;
    s->used = 0;
    s->bucket_mask = nbucket - 1;
    s->lru_head = s->lru_tail = LG_AFFINITY_NIL;
    s->free_head = 0;
    atomic_init(&s->hits, 0);
    atomic_init(&s->misses, 0);
    atomic_init(&s->stale, 0);
    atomic_init(&s->evicted, 0);
    atomic_init(&s->expired, 0);
    return 0;
}

static void shard_free(lg_affinity_shard_t *s)
{
    if (s->pool == NULL) return;
    pthread_mutex_destroy(&s->mu);
    lg_free(s->pool);
    lg_free(s->bucket);
    s->pool = NULL;
    s->bucket = NULL;
}

/* ---- the table ---- */

int lg_affinity_init(lg_affinity_t *a, size_t capacity, const uint8_t seed[16])
{
    memset(a, 0, sizeof(*a));
    if (capacity == 0 || capacity > LG_AFFINITY_CAPACITY_MAX) return -EINVAL;
    uint32_t cap = (uint32_t)((capacity + LG_AFFINITY_SHARDS - 1) / LG_AFFINITY_SHARDS);
    a->k0 = aff_load_le64(seed);
    a->k1 = aff_load_le64(seed + 8);
    for (size_t i = 0; i < LG_AFFINITY_SHARDS; i++) {
        int rc = shard_init(&a->shard[i], cap);
        if (rc != 0) {
            lg_affinity_free(a);
            return rc;
        }
    }
    a->ready = true;
    return 0;
}

void lg_affinity_free(lg_affinity_t *a)
{
    for (size_t i = 0; i < LG_AFFINITY_SHARDS; i++)
        shard_free(&a->shard[i]);
    memset(a, 0, sizeof(*a));
}

static lg_affinity_shard_t *aff_shard_of(lg_affinity_t *a, uint64_t h)
{
    return &a->shard[h >> SHARD_SHIFT];
}

int lg_affinity_lookup(lg_affinity_t *a, const lg_clientkey_t *key, uint64_t scope,
                       lg_upstate_t *const *st, size_t n, uint64_t now_ms, uint64_t ttl_ms)
{
    if (!a->ready) return -1;
    uint64_t h = entry_hash(a, key, scope);
    lg_affinity_shard_t *s = aff_shard_of(a, h);
    pthread_mutex_lock(&s->mu);
    uint32_t i = aff_find(s, h, key, scope);
    if (i == LG_AFFINITY_NIL) {
        pthread_mutex_unlock(&s->mu);
        atomic_fetch_add_explicit(&s->misses, 1, memory_order_relaxed);
        return -1;
    }
    if (expired(s->pool[i].last_seen_ms, now_ms, ttl_ms)) {
        drop(s, i, h);
        pthread_mutex_unlock(&s->mu);
        atomic_fetch_add_explicit(&s->expired, 1, memory_order_relaxed);
        atomic_fetch_add_explicit(&s->misses, 1, memory_order_relaxed);
        return -1;
    }
    const lg_upstate_t *up = s->pool[i].up;
    uint64_t gen = s->pool[i].gen;
    if (now_ms > s->pool[i].last_seen_ms) s->pool[i].last_seen_ms = now_ms;
    lru_unlink(s, i);
    lru_push_head(s, i);
    pthread_mutex_unlock(&s->mu);

    /* Map the identity to the current list, outside the lock (n <= LG_BALANCER_MAX). */
    for (size_t j = 0; j < n; j++) {
        if (st[j] == up && st[j]->gen == gen) {
            if (atomic_load_explicit(&st[j]->ejected_until_ms, memory_order_relaxed) != 0) break;
            atomic_fetch_add_explicit(&s->hits, 1, memory_order_relaxed);
            return (int)j;
        }
    }
    atomic_fetch_add_explicit(&s->stale, 1, memory_order_relaxed);
    return -1;
}

void lg_affinity_pin(lg_affinity_t *a, const lg_clientkey_t *key, uint64_t scope,
                     const lg_upstate_t *up, uint64_t now_ms, uint64_t ttl_ms)
{
    if (!a->ready) return;
    uint64_t h = entry_hash(a, key, scope);
    lg_affinity_shard_t *s = aff_shard_of(a, h);
    pthread_mutex_lock(&s->mu);
    uint32_t i = aff_find(s, h, key, scope);
    if (i != LG_AFFINITY_NIL) {
        lru_unlink(s, i);
    } else {
        if (s->free_head == LG_AFFINITY_NIL) {
            /* Full: the least recently seen entry makes room. */
            uint32_t old = s->lru_tail;
            lg_affinity_entry_t *o = &s->pool[old];
            bool was_expired = expired(o->last_seen_ms, now_ms, ttl_ms);
            drop(s, old, entry_hash(a, &o->key, o->scope));
            atomic_fetch_add_explicit(was_expired ? &s->expired : &s->evicted, 1,
                                      memory_order_relaxed);
        }
        i = s->free_head;
        lg_affinity_entry_t *e = &s->pool[i];
        s->free_head = e->next;
        e->key = *key;
        e->scope = scope;
        e->used = 1;
        e->hnext = s->bucket[h & s->bucket_mask];
        s->bucket[h & s->bucket_mask] = i;
        s->used++;
    }
    lg_affinity_entry_t *e = &s->pool[i];
    e->up = up;
    e->gen = up->gen;
    e->last_seen_ms = now_ms;
    lru_push_head(s, i);
    pthread_mutex_unlock(&s->mu);
}

void lg_affinity_forget(lg_affinity_t *a, const lg_clientkey_t *key, uint64_t scope)
{
    if (!a->ready) return;
    uint64_t h = entry_hash(a, key, scope);
    lg_affinity_shard_t *s = aff_shard_of(a, h);
    pthread_mutex_lock(&s->mu);
    uint32_t i = aff_find(s, h, key, scope);
    if (i != LG_AFFINITY_NIL) drop(s, i, h);
    pthread_mutex_unlock(&s->mu);
}

void lg_affinity_stats(lg_affinity_t *a, lg_affinity_stats_t *out)
{
    memset(out, 0, sizeof(*out));
    if (!a->ready) return;
    for (size_t k = 0; k < LG_AFFINITY_SHARDS; k++) {
        lg_affinity_shard_t *s = &a->shard[k];
        pthread_mutex_lock(&s->mu);
        out->entries += s->used;
        pthread_mutex_unlock(&s->mu);
        out->hits += atomic_load_explicit(&s->hits, memory_order_relaxed);
        out->misses += atomic_load_explicit(&s->misses, memory_order_relaxed);
        out->stale += atomic_load_explicit(&s->stale, memory_order_relaxed);
        out->evicted += atomic_load_explicit(&s->evicted, memory_order_relaxed);
        out->expired += atomic_load_explicit(&s->expired, memory_order_relaxed);
    }
}
