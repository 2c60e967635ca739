/*
 * lg_affinity.h — client IP affinity: a bounded, sharded table client -> upstream (pure core).
 *
 * A client (lg_clientkey_t, listener-independent) within a scope (the caller's choice, e.g. a hash
 * of the route's SNI pattern, so one table serves every route) is pinned to an upstream identity:
 * the lg_upstate_t pointer plus its gen. The pointer is only compared, never dereferenced, so an
 * entry may outlive its upstate; gen tells apart a new upstate that reuses the address. Because
 * the identity is the shared upstate and not a list position, a pin survives a config swap that
 * keeps the upstream, wherever it now sits in the list, and cannot point past the end of a list
 * that shrank: lookup maps it back to an index by searching the current st[] (n <= 1024).
 *
 * Entries expire ttl_ms after they were last seen (lookup hits and pins refresh them: a sliding
 * TTL). The table holds at most `capacity` entries, split evenly over LG_AFFINITY_SHARDS shards;
 * each shard is a fixed pool, a chained hash index and an LRU list, allocated once at init. A pin
 * into a full shard evicts that shard's least recently seen entry, which is the oldest and, if
 * any entry has expired, an expired one: O(1), no allocation. Each shard has its own mutex
 * (workers share the table); bucket positions come from SipHash-2-4 under a secret seed, so a
 * client choosing addresses cannot build long chains and stall the workers holding the lock.
 *
 * Flow for a new connection on an affinity route:
 *     i = lg_affinity_lookup(...);             // -1: no usable pin
 *     if (i >= 0) lg_upstate_acquire(st[i]);
 *     else i = lg_balancer_pick(...);
 *     on a successful dial: lg_affinity_pin(..., st[i], ...);
 * Failover after a failed dial uses lg_balancer_pick with the tried set, not the pin.
 */
#ifndef LG_AFFINITY_H
#define LG_AFFINITY_H

#include "lg_balancer.h"

#include <pthread.h>

#define LG_AFFINITY_SHARDS           16         /* shards (a power of two), one mutex each */
#define LG_AFFINITY_CAPACITY_DEFAULT 65536      /* entries engine-wide */
#define LG_AFFINITY_CAPACITY_MAX     (1u << 20) /* entries engine-wide (76 MiB: 72 B + bucket) */
#define LG_AFFINITY_TTL_DEFAULT_MS   300000     /* ms: symphony's ipAffinityTtlMs default */

/* One pinned client. Index links, so a shard is two allocations whatever its size. */
typedef struct lg_affinity_entry_s {
    lg_clientkey_t key;
    uint8_t used;
    uint64_t scope;
    const lg_upstate_t *up; /* identity only: compared, never dereferenced */
    uint64_t gen;           /* up->gen when pinned */
    uint64_t last_seen_ms;
    uint32_t hnext;      /* next entry in the bucket chain, or LG_AFFINITY_NIL */
    uint32_t prev, next; /* LRU list (head = most recently seen); free list through next */
} lg_affinity_entry_t;

#define LG_AFFINITY_NIL UINT32_MAX

typedef struct lg_affinity_shard_s {
    pthread_mutex_t mu;        /* guards everything below except the counters */
    lg_affinity_entry_t *pool; /* cap entries */
    uint32_t *bucket;          /* nbucket chain heads (nbucket a power of two >= cap) */
    uint32_t cap, used, bucket_mask;
    uint32_t lru_head, lru_tail, free_head;
    /* Counters, relaxed atomics so lookups count without holding the lock. */
    atomic_uint_fast64_t hits;    /* lookups answered with an index */
    atomic_uint_fast64_t misses;  /* lookups without an entry, or expired */
    atomic_uint_fast64_t stale;   /* entry found, upstream gone from the list or ejected */
    atomic_uint_fast64_t evicted; /* live entries dropped to make room (the table was full) */
    atomic_uint_fast64_t expired; /* expired entries dropped (by lookup or to make room) */
} lg_affinity_shard_t;

/*
 * Owner: the engine (it outlives config snapshots). lg_affinity_init() before the workers start,
 * lg_affinity_free() after they stopped.
 */
typedef struct lg_affinity_s {
    lg_affinity_shard_t shard[LG_AFFINITY_SHARDS];
    uint64_t k0, k1; /* SipHash key */
    bool ready;
} lg_affinity_t;

/* Totals over the shards, for metrics. */
typedef struct lg_affinity_stats_s {
    uint64_t entries, hits, misses, stale, evicted, expired;
} lg_affinity_stats_t;

/*
 * capacity: total entries, 1..LG_AFFINITY_CAPACITY_MAX (each shard gets capacity / SHARDS,
 * rounded up). seed: 16 random bytes (SipHash key). Returns 0, -EINVAL (capacity), -ENOMEM, or
 * the error of pthread_mutex_init negated; on failure nothing is left allocated.
 */
int lg_affinity_init(lg_affinity_t *a, size_t capacity, const uint8_t seed[16]);

/* Free everything; a is zeroed. A zeroed (or failed-init) table is fine. */
void lg_affinity_free(lg_affinity_t *a);

/*
 * The index in st[0..n) of the upstream key is pinned to within scope, or -1 when there is no
 * entry, it has expired at now_ms (ttl_ms after it was last seen; the entry is dropped), its
 * upstream is not in st[] (removed by a config swap, or a new upstate at the same address), or
 * the upstream is ejected or half-open (the balancer decides who probes). A hit refreshes the
 * entry's last_seen. Does not touch the upstream's counters. Thread-safe.
 */
int lg_affinity_lookup(lg_affinity_t *a, const lg_clientkey_t *key, uint64_t scope,
                       lg_upstate_t *const *st, size_t n, uint64_t now_ms, uint64_t ttl_ms);

/*
 * Pin key within scope to up (insert or overwrite), last seen at now_ms. A full shard evicts its
 * least recently seen entry (counted as expired if it was older than ttl_ms, else as evicted).
 * Never allocates, never fails. Thread-safe.
 */
void lg_affinity_pin(lg_affinity_t *a, const lg_clientkey_t *key, uint64_t scope,
                     const lg_upstate_t *up, uint64_t now_ms, uint64_t ttl_ms);

/* Drop key's pin within scope, if any. Thread-safe. */
void lg_affinity_forget(lg_affinity_t *a, const lg_clientkey_t *key, uint64_t scope);

/* Sum the shards' counters and entry counts (takes each shard's lock in turn). */
void lg_affinity_stats(lg_affinity_t *a, lg_affinity_stats_t *out);

#endif /* LG_AFFINITY_H */
