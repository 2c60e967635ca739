/*
 * lg_limit.c — per-source-IP admission state (pure core; semantics, units and the threading
 * model are in lg_limit.h).
 *
 * Layout of a shard:
 *   pool[0..n)       the entries, dense (a removal moves the last entry into the hole);
 *   slots[0..mask]   the index: linear probing, 0 = empty, otherwise (tag << LIMIT_IDX_BITS) |
 *                    (pool index + 1), the tag being 12 more bits of the key's hash, so a probe
 *                    reads an entry only when its tag matches; at most half full
 *                    (slots >= 2 * pool_cap), so a probe always reaches an empty slot; removal
 *                    shifts the following run back (no tombstones).
 * pool_cap doubles from LIMIT_POOL_MIN up to the shard's share; slots grows with it.
 *
 * Invariants, with the shard's lock held:
 *   - n <= pool_cap <= share; every pool[i] (i < n) is in exactly one slot, found by probing
 *     from its hash; nothing else is in the slots;
 *   - an entry with active > 0 stays in the table (eviction and sweep skip it), so a release
 *     always finds the entry its admit counted;
 *   - all times are ns of the caller's clock: tat_* <= now means that bucket is full,
 *     box_until > now means boxed, ok_at > now means a bucket has < 1 token.
 */
#include "lg_limit.h"

#include "lg_cidr.h"

#include <math.h> /* isfinite: a macro, no libm */
#include <pthread.h>
#include <stdatomic.h>
#include <stdint.h>
#include <string.h>

#define NS_PER_MS      UINT64_C(1000000)
#define LIMIT_POOL_MIN 16 /* entries of a shard's first pool */
#define LIMIT_ALIGN    64 /* bytes: shards on their own cache lines */
#define LIMIT_IDX_BITS 20 /* low bits of a slot: pool index + 1 */
#define LIMIT_IDX_MASK ((UINT32_C(1) << LIMIT_IDX_BITS) - 1)

/* A shard's share fits a slot's index bits. lg_limit_init doubles the shard count while each
 * would still get >= LG_LIMIT_SHARD_MIN keys, up to LG_LIMIT_MAX_SHARDS: so either the count
 * stopped early and a share is at most 2 * LG_LIMIT_SHARD_MIN, or it is LG_LIMIT_MAX_SHARDS and
 * a share is at most LG_LIMIT_MAX_TRACKED / LG_LIMIT_MAX_SHARDS + 1. */
_Static_assert(2 * LG_LIMIT_SHARD_MIN <= LIMIT_IDX_MASK, "a lone shard's share fits a slot");
_Static_assert(LG_LIMIT_MAX_TRACKED / LG_LIMIT_MAX_SHARDS + 1 <= LIMIT_IDX_MASK,
               "a shard's share fits a slot");

/*
 * One tracked key. 64 bytes: the times first (8-byte aligned), then the counters, then the key
 * (19 bytes, alignment 1), 1 byte of padding.
 */
typedef struct limit_entry_s {
    uint64_t tat_rate;       /* ns: TAT of the per-second bucket; 0 when that bucket is off */
    uint64_t tat_sustained;  /* ns: TAT of the per-minute bucket; 0 when off */
    uint64_t ok_at;          /* ns: both buckets hold >= 1 token from then on (last rules) */
    uint64_t box_until;      /* ns: boxed while now < box_until; 0 when not boxed */
    uint32_t active;         /* connections admitted and not yet released */
    uint32_t max_concurrent; /* the max of the last admit (0 = unlimited), for lg_limit_list */
    uint32_t hash;           /* low 32 bits of the key's hash: probing and rehash without SipHash */
    lg_ipkey_t key;
} limit_entry_t;

_Static_assert(sizeof(lg_ipkey_t) == 19,
               "lg_ipkey_t has no padding: keys hash and compare as bytes");
_Static_assert(sizeof(limit_entry_t) == 64, "an entry is one cache line");

struct lg_limit_shard_s {
    _Alignas(LIMIT_ALIGN) pthread_mutex_t lock; /* each shard on its own cache lines */
    limit_entry_t *pool; /* LIMIT_ALIGN-aligned inside pool_mem: one entry, one cache line */
    void *pool_mem;
    uint32_t *slots;
    size_t n;          /* entries in pool */
    size_t pool_cap;   /* entries pool can hold */
    size_t share;      /* entries this shard may hold at most */
    size_t slot_mask;  /* slots - 1; 0 when slots is NULL */
    size_t hand;       /* next pool index the eviction scan examines */
    size_t sweep_hand; /* next pool index lg_limit_sweep examines */
    uint64_t rng;      /* xorshift state of the eviction's random probes (mixed with key hashes) */
    size_t bytes;      /* bytes of pool and slots */
    uint64_t untracked, evictions, swept;
};

/* ------------------------------------------------------------------------------------------ */
/* Keys.                                                                                      */

int lg_ipkey_make(lg_ipkey_t *k, uint8_t listener, uint8_t family, const uint8_t *addr,
                  unsigned ipv6_prefix)
{
    memset(k, 0, sizeof(*k));
    if ((family != LG_CIDR_V4 && family != LG_CIDR_V6) || ipv6_prefix < 1 || ipv6_prefix > 128) {
        return -EINVAL;
    }
    uint8_t f = family, a[16] = {0};
    memcpy(a, addr, family == LG_CIDR_V4 ? 4 : 16);
    lg_ip_unmap(&f, a);
    k->listener = listener;
    k->family = f;
    if (f == LG_CIDR_V4) {
        k->prefix = 32;
        memcpy(k->addr, a, 4);
        return 0;
    }
    k->prefix = (uint8_t)ipv6_prefix;
    for (unsigned i = 0; i < 16; i++) {
        unsigned keep = ipv6_prefix >= 8 * (i + 1) ? 8
                        : ipv6_prefix > 8 * i      ? ipv6_prefix - 8 * i
                                                   : 0;
        k->addr[i] = (uint8_t)(a[i] & (uint8_t)(0xff00u >> keep));
    }
    return 0;
}

static bool key_valid(const lg_ipkey_t *k)
{
    if (k->family == LG_CIDR_V4) return k->prefix == 32;
    return k->family == LG_CIDR_V6 && k->prefix >= 1 && k->prefix <= 128;
}

/* A bounded writer, as in lg_ja: n < cap always holds, so out[n] can take the NUL. */
typedef struct fmt_buf_s {
    char *p;
    size_t cap, n;
    bool over;
} fmt_buf_t;

static void fmt_char(fmt_buf_t *b, char c)
{
    if (b->n + 1 < b->cap) {
        b->p[b->n++] = c;
    } else {
        b->over = true;
    }
}

static void fmt_dec(fmt_buf_t *b, unsigned v)
{
    char tmp[3];
    size_t k = 0;
    do {
        tmp[k++] = (char)('0' + v % 10);
        v /= 10;
    } while (v != 0 && k < sizeof(tmp));
    while (k > 0)
        fmt_char(b, tmp[--k]);
}

static void fmt_hex16(fmt_buf_t *b, unsigned v)
{
    bool started = false;
    for (int shift = 12; shift >= 0; shift -= 4) {
        unsigned d = (v >> shift) & 0xf;
        if (d == 0 && !started && shift > 0) continue;
        fmt_char(b, "0123456789abcdef"[d]);
        started = true;
    }
}

int lg_ipkey_format(const lg_ipkey_t *k, char *out, size_t cap)
{
    if (out == NULL) return -EINVAL;
    if (cap > 0) out[0] = '\0';
    if (k == NULL || !key_valid(k)) return -EINVAL;
    if (cap == 0) return -E2BIG;
    fmt_buf_t b = {out, cap, 0, false};
    if (k->family == LG_CIDR_V4) {
        for (int i = 0; i < 4; i++) {
            if (i > 0) fmt_char(&b, '.');
            fmt_dec(&b, k->addr[i]);
        }
    } else {
        /* RFC 5952 §4.2: the longest run of >= 2 zero groups becomes "::" (the first of equal
         * runs); §4.1 no leading zeros; §4.3 lower case. */
        unsigned g[8];
        for (int i = 0; i < 8; i++)
            g[i] = (unsigned)k->addr[2 * i] << 8 | k->addr[2 * i + 1];
        int best = -1, best_len = 1;
        for (int i = 0; i < 8;) {
            if (g[i] != 0) {
                i++;
                continue;
            }
            int j = i;
            while (j < 8 && g[j] == 0)
                j++;
            if (j - i > best_len) {
                best = i;
                best_len = j - i;
            }
            i = j;
        }
        for (int i = 0; i < 8; i++) {
            if (i == best) {
                fmt_char(&b, ':');
                fmt_char(&b, ':');
                i += best_len - 1;
                continue;
            }
            if (i > 0 && i != best + best_len) fmt_char(&b, ':');
            fmt_hex16(&b, g[i]);
        }
        if (k->prefix < 128) {
            fmt_char(&b, '/');
            fmt_dec(&b, k->prefix);
        }
    }
    if (b.over) {
        out[0] = '\0';
        return -E2BIG;
    }
    out[b.n] = '\0';
    return (int)b.n;
}

/* SipHash-1-3 (Aumasson & Bernstein; one compression and three finalization rounds, the
 * variant Rust's HashMap uses) of the 19 key bytes. */
static uint64_t rotl64(uint64_t x, unsigned b)
{
    return (x << b) | (x >> (64 - b));
}

#define SIPROUND(v0, v1, v2, v3)                                                                   \
    do {                                                                                           \
        v0 += v1;                                                                                  \
        v1 = rotl64(v1, 13);                                                                       \
        v1 ^= v0;                                                                                  \
        v0 = rotl64(v0, 32);                                                                       \
        v2 += v3;                                                                                  \
        v3 = rotl64(v3, 16);                                                                       \
        v3 ^= v2;                                                                                  \
        v0 += v3;                                                                                  \
        v3 = rotl64(v3, 21);                                                                       \
        v3 ^= v0;                                                                                  \
        v2 += v1;                                                                                  \
        v1 = rotl64(v1, 17);                                                                       \
        v1 ^= v2;                                                                                  \
        v2 = rotl64(v2, 32);                                                                       \
    } while (0)

static uint64_t load_le64(const uint8_t *p)
{
    uint64_t v = 0;
    for (int i = 7; i >= 0; i--)
        v = v << 8 | p[i];
    return v;
}

static uint64_t key_hash(const lg_limit_t *t, const lg_ipkey_t *k)
{
    const uint8_t *in = (const uint8_t *)k;
    uint64_t v0 = UINT64_C(0x736f6d6570736575) ^ t->key[0];
    uint64_t v1 = UINT64_C(0x646f72616e646f6d) ^ t->key[1];
    uint64_t v2 = UINT64_C(0x6c7967656e657261) ^ t->key[0];
    uint64_t v3 = UINT64_C(0x7465646279746573) ^ t->key[1];
    uint64_t m[3] = {load_le64(in), load_le64(in + 8),
                     (uint64_t)in[16] | (uint64_t)in[17] << 8 | (uint64_t)in[18] << 16 |
                         (uint64_t)sizeof(*k) << 56};
    for (int i = 0; i < 3; i++) {
        v3 ^= m[i];
        SIPROUND(v0, v1, v2, v3);
        v0 ^= m[i];
    }
    v2 ^= 0xff;
    SIPROUND(v0, v1, v2, v3);
    SIPROUND(v0, v1, v2, v3);
    SIPROUND(v0, v1, v2, v3);
    return v0 ^ v1 ^ v2 ^ v3;
}

uint64_t lg_limit_key_hash(const lg_limit_t *t, const lg_ipkey_t *k)
{
    return key_hash(t, k);
}

/* ------------------------------------------------------------------------------------------ */
/* Buckets and the decision (one entry, its shard's lock held).                               */

int lg_limit_bucket_init(lg_limit_bucket_t *b, double count, uint32_t period_ms, double burst)
{
    memset(b, 0, sizeof(*b));
    if (!isfinite(count) || count <= 0 || !isfinite(burst) || burst < 1 || period_ms == 0) {
        return -EINVAL;
    }
    double exact = (double)period_ms * (double)NS_PER_MS / count;
    if (!(exact <= (double)LG_LIMIT_WINDOW_MAX_NS)) return -ERANGE; /* checked before the cast */
    /* Positive: adding 0.5 and truncating rounds to nearest. */
    double interval = (double)(uint64_t)(exact + 0.5);
    if (interval < 1) interval = 1;
    double window = interval * burst;
    if (!(window <= (double)LG_LIMIT_WINDOW_MAX_NS)) return -ERANGE;
    b->interval_ns = (uint64_t)interval;
    b->tolerance_ns = (uint64_t)(interval * (burst - 1) + 0.5);
    return 0;
}

/* Does the bucket hold a token at now? An off bucket always does. */
static bool bucket_has_token(uint64_t tat, const lg_limit_bucket_t *b, uint64_t now)
{
    return b->interval_ns == 0 || tat <= now || tat - now <= b->tolerance_ns;
}

/* Take a token (the caller checked there is one). An off bucket keeps no debt. */
static uint64_t bucket_take(uint64_t tat, const lg_limit_bucket_t *b, uint64_t now)
{
    if (b->interval_ns == 0) return 0;
    return (tat > now ? tat : now) + b->interval_ns;
}

/* From when on the bucket holds a token: TAT - tau (0 when off). */
static uint64_t bucket_ok_at(uint64_t tat, const lg_limit_bucket_t *b)
{
    if (b->interval_ns == 0 || tat <= b->tolerance_ns) return 0;
    return tat - b->tolerance_ns;
}

bool lg_limit_bucket_take_shared(_Atomic uint64_t *tat, const lg_limit_bucket_t *b, uint64_t now_ms)
{
    if (b->interval_ns == 0) return true;
    uint64_t now = now_ms * NS_PER_MS;
    uint64_t cur = atomic_load_explicit(tat, memory_order_relaxed);
    for (;;) {
        if (!bucket_has_token(cur, b, now)) return false;
        if (atomic_compare_exchange_weak_explicit(tat, &cur, bucket_take(cur, b, now),
                                                  memory_order_relaxed, memory_order_relaxed)) {
            return true;
        }
    }
}

static bool entry_idle(const limit_entry_t *e, uint64_t now)
{
    return e->active == 0 && e->box_until <= now && e->tat_rate <= now && e->tat_sustained <= now;
}

static int decide(limit_entry_t *e, const lg_limit_rules_t *r, uint64_t now)
{
    bool boxing = r->penalty_box_ms > 0;
    if (!boxing) e->box_until = 0; /* a box from earlier rules does not outlive them */
    bool boxed = boxing && e->box_until > now;

    bool has_token = bucket_has_token(e->tat_rate, &r->rate, now) &&
                     bucket_has_token(e->tat_sustained, &r->sustained, now);
    if (has_token) {
        e->tat_rate = bucket_take(e->tat_rate, &r->rate, now);
        e->tat_sustained = bucket_take(e->tat_sustained, &r->sustained, now);
    } else {
        /* Only an enabled bucket can be empty; clear the debt of one the rules turned off. */
        if (r->rate.interval_ns == 0) e->tat_rate = 0;
        if (r->sustained.interval_ns == 0) e->tat_sustained = 0;
        if (boxing) {
            uint64_t until = now + (uint64_t)r->penalty_box_ms * NS_PER_MS;
            if (until > e->box_until) e->box_until = until;
        }
    }
    uint64_t ok_rate = bucket_ok_at(e->tat_rate, &r->rate);
    uint64_t ok_sustained = bucket_ok_at(e->tat_sustained, &r->sustained);
    e->ok_at = ok_rate > ok_sustained ? ok_rate : ok_sustained;
    e->max_concurrent = r->max_concurrent;

    if (boxed) return LG_LIMIT_BOXED;
    if (!has_token) return LG_LIMIT_RATE;
    if (r->max_concurrent > 0 && e->active >= r->max_concurrent) return LG_LIMIT_CONCURRENCY;
    if (e->active == UINT32_MAX) return LG_LIMIT_CONCURRENCY; /* cannot count one more */
    return LG_LIMIT_OK;
}

/* ------------------------------------------------------------------------------------------ */
/* A shard's table (its lock held).                                                           */

static limit_entry_t *shard_find(const lg_limit_shard_t *sh, const lg_ipkey_t *k, uint32_t h)
{
    if (sh->slots == NULL) return NULL;
    for (size_t i = h & sh->slot_mask;; i = (i + 1) & sh->slot_mask) {
        uint32_t s = sh->slots[i];
        if (s == 0) return NULL;
        if (s >> LIMIT_IDX_BITS != h >> LIMIT_IDX_BITS) continue; /* tag differs */
        limit_entry_t *e = &sh->pool[(s & LIMIT_IDX_MASK) - 1];
        if (e->hash == h && memcmp(&e->key, k, sizeof(*k)) == 0) return e;
    }
}

/* The slot holding pool index j (it is there: invariant). */
static size_t shard_slot_of(const lg_limit_shard_t *sh, size_t j)
{
    size_t i = sh->pool[j].hash & sh->slot_mask;
    while ((sh->slots[i] & LIMIT_IDX_MASK) != j + 1)
        i = (i + 1) & sh->slot_mask;
    return i;
}

static void shard_place(lg_limit_shard_t *sh, size_t j)
{
    size_t i = sh->pool[j].hash & sh->slot_mask;
    while (sh->slots[i] != 0)
        i = (i + 1) & sh->slot_mask;
    uint32_t tag = sh->pool[j].hash >> LIMIT_IDX_BITS;
    sh->slots[i] = tag << LIMIT_IDX_BITS | (uint32_t)(j + 1);
}

/* Append a new entry for k (n < pool_cap). */
static limit_entry_t *shard_append(lg_limit_shard_t *sh, const lg_ipkey_t *k, uint32_t h)
{
    size_t j = sh->n++;
    limit_entry_t *e = &sh->pool[j];
    memset(e, 0, sizeof(*e));
    e->hash = h;
    e->key = *k;
    shard_place(sh, j);
    return e;
}

/* Remove pool[j]: empty its slot (shifting the probe run back), then move the last entry into
 * the hole and repoint its slot. */
static void shard_remove(lg_limit_shard_t *sh, size_t j)
{
    size_t mask = sh->slot_mask;
    size_t hole = shard_slot_of(sh, j);
    for (size_t i = (hole + 1) & mask; sh->slots[i] != 0; i = (i + 1) & mask) {
        size_t home = sh->pool[(sh->slots[i] & LIMIT_IDX_MASK) - 1].hash & mask;
        /* The entry at i may move to the hole unless its home lies cyclically in (hole, i]. */
        bool stays = hole <= i ? (home > hole && home <= i) : (home > hole || home <= i);
        if (!stays) {
            sh->slots[hole] = sh->slots[i];
            hole = i;
        }
    }
    sh->slots[hole] = 0;

    size_t last = sh->n - 1;
    if (j != last) {
        size_t at = shard_slot_of(sh, last);
        sh->slots[at] = (sh->slots[at] & ~LIMIT_IDX_MASK) | (uint32_t)(j + 1);
        sh->pool[j] = sh->pool[last];
    }
    sh->n--;
}

/*
 * Evict one idle entry found within LG_LIMIT_EVICT_PROBE entries of the clock hand, or else at
 * one of LG_LIMIT_EVICT_RANDOM random positions. The random probes matter when the table is
 * mostly idle but the hand sits in a long run of busy entries (sweeps remove idle entries and
 * leave such runs behind): the scan alone then found nothing and a new source went untracked
 * (272 of 300,000 in test_limit's evict_past_a_busy_run before they were added).
 */
static bool shard_evict(lg_limit_shard_t *sh, uint64_t now, uint32_t h)
{
    for (size_t probe = 0; probe < LG_LIMIT_EVICT_PROBE && sh->n > 0; probe++) {
        if (sh->hand >= sh->n) sh->hand = 0;
        if (entry_idle(&sh->pool[sh->hand], now)) {
            shard_remove(sh, sh->hand);
            sh->evictions++;
            return true;
        }
        sh->hand++;
    }
    sh->rng ^= (uint64_t)h << 1 | 1; /* never stuck at 0 */
    for (size_t probe = 0; probe < LG_LIMIT_EVICT_RANDOM && sh->n > 0; probe++) {
        sh->rng ^= sh->rng << 13;
        sh->rng ^= sh->rng >> 7;
        sh->rng ^= sh->rng << 17;
        size_t j = (size_t)(sh->rng % sh->n);
        if (entry_idle(&sh->pool[j], now)) {
            shard_remove(sh, j);
            sh->evictions++;
            return true;
        }
    }
    return false;
}

/* p rounded up to LIMIT_ALIGN (p from an allocation LIMIT_ALIGN - 1 bytes larger). */
static void *align_up(void *p)
{
    return (void *)(((uintptr_t)p + LIMIT_ALIGN - 1) & ~(uintptr_t)(LIMIT_ALIGN - 1));
}

static size_t slots_for(size_t pool_cap)
{
    size_t s = 1;
    while (s < 2 * pool_cap)
        s *= 2;
    return s;
}

/*
 * Grow a full shard (n == pool_cap < share) by one doubling. The allocation happens with the
 * lock released; the copy and rehash (O(n), at most log2(share) times in the shard's life)
 * under it. Returns with the lock held: true if the shard grew (here or meanwhile in another
 * thread), false when memory ran out. The caller looks the key up again either way.
 */
static bool shard_grow(lg_limit_shard_t *sh)
{
    size_t new_cap = sh->pool_cap == 0 ? LIMIT_POOL_MIN : 2 * sh->pool_cap;
    if (new_cap > sh->share) new_cap = sh->share;
    size_t n_slots = slots_for(new_cap);
    bool new_slots = sh->slots == NULL || n_slots > sh->slot_mask + 1;

    pthread_mutex_unlock(&sh->lock);
    void *pool_mem = lg_malloc(new_cap * sizeof(limit_entry_t) + LIMIT_ALIGN - 1);
    uint32_t *slots = new_slots ? lg_calloc(n_slots, sizeof(*slots)) : NULL;
    pthread_mutex_lock(&sh->lock);

    void *drop_pool = pool_mem, *drop_slots = slots;
    bool grown = sh->pool_cap >= new_cap; /* another thread grew it meanwhile */
    if (!grown && pool_mem != NULL && (!new_slots || slots != NULL)) {
        /* Nobody grew it while the lock was released (growth always doubles from the current
         * size), so slots is as sized above; n may have changed. */
        limit_entry_t *pool = (limit_entry_t *)align_up(pool_mem);
        if (sh->n > 0) memcpy(pool, sh->pool, sh->n * sizeof(*pool));
        drop_pool = sh->pool_mem;
        sh->bytes +=
            (new_cap - sh->pool_cap) * sizeof(*pool) + (sh->pool_mem ? 0 : LIMIT_ALIGN - 1);
        sh->pool = pool;
        sh->pool_mem = pool_mem;
        sh->pool_cap = new_cap;
        drop_slots = NULL;
        if (new_slots) {
            drop_slots = sh->slots;
            sh->bytes += (n_slots - (sh->slots ? sh->slot_mask + 1 : 0)) * sizeof(*slots);
            sh->slots = slots;
            sh->slot_mask = n_slots - 1;
            for (size_t j = 0; j < sh->n; j++)
                shard_place(sh, j);
        }
        grown = true;
    }
    pthread_mutex_unlock(&sh->lock);
    lg_free(drop_pool);
    lg_free(drop_slots);
    pthread_mutex_lock(&sh->lock);
    return grown;
}

/* The entry of k, inserted if new; NULL when there is no room (untracked). */
static limit_entry_t *shard_get(lg_limit_shard_t *sh, const lg_ipkey_t *k, uint32_t h, uint64_t now)
{
    bool out_of_memory = false;
    for (;;) {
        limit_entry_t *e = shard_find(sh, k, h);
        if (e != NULL) return e;
        if (sh->n < sh->pool_cap) return shard_append(sh, k, h);
        if (sh->pool_cap < sh->share && !out_of_memory) {
            out_of_memory = !shard_grow(sh);
            continue; /* the lock was released: look again */
        }
        if (shard_evict(sh, now, h)) return shard_append(sh, k, h);
        return NULL;
    }
}

/* ------------------------------------------------------------------------------------------ */
/* The table.                                                                                 */

static lg_limit_shard_t *shard_of(lg_limit_t *t, uint64_t h)
{
    /* The high half picks the shard, the low half the slot: independent bits. */
    return &t->shards[(h >> 32) & (t->n_shards - 1)];
}

int lg_limit_init(lg_limit_t *t, size_t max_tracked)
{
    memset(t, 0, sizeof(*t));
    if (max_tracked < 1 || max_tracked > LG_LIMIT_MAX_TRACKED) return -EINVAL;
    size_t n = 1;
    while (n < LG_LIMIT_MAX_SHARDS && max_tracked / (2 * n) >= LG_LIMIT_SHARD_MIN)
        n *= 2;
    void *mem = lg_malloc(n * sizeof(lg_limit_shard_t) + LIMIT_ALIGN - 1);
    if (mem == NULL) return -ENOMEM;
    lg_limit_shard_t *shards = align_up(mem);
    memset(shards, 0, n * sizeof(*shards));
    for (size_t i = 0; i < n; i++) {
        int rc = pthread_mutex_init(&shards[i].lock, NULL);
        if (rc != 0) {
            while (i-- > 0)
                pthread_mutex_destroy(&shards[i].lock);
            lg_free(mem);
            return -rc;
        }
        /* max_tracked exactly: the first (max_tracked % n) shards take one more. */
        shards[i].share = max_tracked / n + (i < max_tracked % n ? 1 : 0);
    }
    t->shards = shards;
    t->shards_mem = mem;
    t->n_shards = n;
    t->capacity = max_tracked;
    atomic_init(&t->sweep_next, 0);
    return 0;
}

void lg_limit_seed(lg_limit_t *t, const uint8_t key[16])
{
    t->key[0] = load_le64(key);
    t->key[1] = load_le64(key + 8);
}

int lg_limit_admit(lg_limit_t *t, const lg_ipkey_t *k, const lg_limit_rules_t *r, uint64_t now_ms,
                   lg_limit_ticket_t *ticket)
{
    ticket->tracked = false;
    if (!key_valid(k)) return -EINVAL;
    uint64_t now = now_ms * NS_PER_MS;
    uint64_t h = key_hash(t, k);
    lg_limit_shard_t *sh = shard_of(t, h);

    pthread_mutex_lock(&sh->lock);
    limit_entry_t *e = shard_get(sh, k, (uint32_t)h, now);
    int verdict = LG_LIMIT_OK;
    if (e == NULL) {
        sh->untracked++;
    } else {
        verdict = decide(e, r, now);
        if (verdict == LG_LIMIT_OK) {
            e->active++;
            ticket->tracked = true;
        }
    }
    pthread_mutex_unlock(&sh->lock);
    return verdict;
}

void lg_limit_release(lg_limit_t *t, const lg_ipkey_t *k, const lg_limit_ticket_t *ticket)
{
    if (!ticket->tracked || !key_valid(k)) return;
    uint64_t h = key_hash(t, k);
    lg_limit_shard_t *sh = shard_of(t, h);
    pthread_mutex_lock(&sh->lock);
    limit_entry_t *e = shard_find(sh, k, (uint32_t)h);
    if (e != NULL && e->active > 0) e->active--;
    pthread_mutex_unlock(&sh->lock);
}

size_t lg_limit_sweep(lg_limit_t *t, uint64_t now_ms, size_t budget)
{
    uint64_t now = now_ms * NS_PER_MS;
    /* Entries examined per shard in this call: one call makes at most one pass over the table,
     * so a budget larger than the table does not look at the same entries twice. */
    size_t seen[LG_LIMIT_MAX_SHARDS] = {0};
    size_t removed = 0, examined = 0, fruitless = 0;
    while (examined < budget && fruitless < t->n_shards) {
        size_t s =
            atomic_fetch_add_explicit(&t->sweep_next, 1, memory_order_relaxed) & (t->n_shards - 1);
        lg_limit_shard_t *sh = &t->shards[s];
        pthread_mutex_lock(&sh->lock);
        size_t todo = sh->n > seen[s] ? sh->n - seen[s] : 0;
        todo = LG_MIN(LG_MIN(todo, (size_t)LG_LIMIT_SWEEP_BATCH), budget - examined);
        for (size_t b = 0; b < todo && sh->n > 0; b++) {
            if (sh->sweep_hand >= sh->n) sh->sweep_hand = 0;
            if (entry_idle(&sh->pool[sh->sweep_hand], now)) {
                shard_remove(sh, sh->sweep_hand); /* the last entry moves here: look at it next */
                sh->swept++;
                removed++;
            } else {
                sh->sweep_hand++;
            }
        }
        pthread_mutex_unlock(&sh->lock);
        seen[s] += todo;
        examined += todo;
        fruitless = todo == 0 ? fruitless + 1 : 0;
    }
    return removed;
}

static bool listed(const limit_entry_t *e, int which, uint64_t now)
{
    switch (which) {
    case LG_LIMIT_LIST_RATE_LIMITED:
        return e->ok_at > now;
    case LG_LIMIT_LIST_CONCURRENCY_LIMITED:
        return e->max_concurrent > 0 && e->active >= e->max_concurrent;
    case LG_LIMIT_LIST_PENALTY_BOXED:
        return e->box_until > now;
    default:
        return false;
    }
}

size_t lg_limit_list(lg_limit_t *t, uint64_t now_ms, int which, lg_ipkey_t *out, size_t cap)
{
    uint64_t now = now_ms * NS_PER_MS;
    size_t count = 0;
    for (size_t s = 0; s < t->n_shards; s++) {
        lg_limit_shard_t *sh = &t->shards[s];
        pthread_mutex_lock(&sh->lock);
        for (size_t j = 0; j < sh->n; j++) {
            if (!listed(&sh->pool[j], which, now)) continue;
            if (count < cap) out[count] = sh->pool[j].key;
            count++;
        }
        pthread_mutex_unlock(&sh->lock);
    }
    return count;
}

void lg_limit_stats(lg_limit_t *t, lg_limit_stats_t *out)
{
    memset(out, 0, sizeof(*out));
    out->capacity = t->capacity;
    out->bytes = t->n_shards * sizeof(lg_limit_shard_t) + LIMIT_ALIGN - 1;
    for (size_t s = 0; s < t->n_shards; s++) {
        lg_limit_shard_t *sh = &t->shards[s];
        pthread_mutex_lock(&sh->lock);
        out->tracked += sh->n;
        out->bytes += sh->bytes;
        out->untracked += sh->untracked;
        out->evictions += sh->evictions;
        out->swept += sh->swept;
        pthread_mutex_unlock(&sh->lock);
    }
}

void lg_limit_destroy(lg_limit_t *t)
{
    for (size_t s = 0; s < t->n_shards; s++) {
        lg_free(t->shards[s].pool_mem);
        lg_free(t->shards[s].slots);
        pthread_mutex_destroy(&t->shards[s].lock);
    }
    lg_free(t->shards_mem);
    memset(t, 0, sizeof(*t));
}
