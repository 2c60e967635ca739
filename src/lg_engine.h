/*
 * lg_engine.h — one proxy instance: its configuration, its worker threads, the current config
 * snapshot, and the channel that carries events to JavaScript. The N-API glue (lg_addon) sees
 * the engine through this header only: lifecycle, swaps, decisions, and a metrics snapshot.
 *
 * Threads: lg_engine_* functions are called on the JS thread only. Workers read the engine's
 * immutable config and its atomics, and take the current snapshot from its slot (lg_config).
 *
 * Lifecycle: create → start (bind every socket on the JS thread, then spawn workers; each worker
 * posts LG_EV_READY) → stop (posted to every worker; each posts LG_EV_WORKER_EXIT when its loop
 * has ended) → join (after every exit event) → destroy.
 */
#ifndef LG_ENGINE_H
#define LG_ENGINE_H

#include "lg_common.h"
#include "lg_config.h"
#include "lg_event.h"
#include "lg_metrics.h"
#include "lg_tls_ctx.h"

typedef struct lg_engine_s lg_engine_t;

enum { LG_ENGINE_NEW = 0, LG_ENGINE_RUNNING, LG_ENGINE_STOPPING, LG_ENGINE_STOPPED };

/*
 * Create an engine from a config (moved in: the engine frees it), a first snapshot (the engine
 * takes the caller's reference) and the TLS context cache that snapshot was built with (moved
 * in). Returns 0 or a negative errno; on failure all three are freed.
 */
int lg_engine_create(lg_config_t *conf, lg_snapshot_t *snap, lg_tls_cache_t *cache,
                     lg_engine_t **out);

/*
 * Raise the descriptor limit, bind every listener on every worker and start the workers.
 * `from` (NULL: none) is a running engine of this process whose addresses this one takes over
 * (issue 15 item 4): a listener bound to the same address and port as one of `from`'s accepts on
 * the same sockets (lg_listener_bind), so both engines accept until `from` is stopped, and its
 * stop refuses nothing. Returns 0, or a negative errno (-EINVAL: `from` is not running) with
 * *bad_listener set to the listener that failed to bind, LG_START_PRIORITY when a worker thread
 * could not be given workerPriority (lg_worker_prioritize), or -1 — nothing is left listening
 * and no thread is running on failure. `warn` receives a warning for JS (empty when none).
 */
#define LG_START_PRIORITY (-2)
int lg_engine_start(lg_engine_t *e, lg_post_fn post, void *post_ctx, const lg_engine_t *from,
                    int *bad_listener, char *warn, size_t warn_size);

/* Ask every worker to stop accepting and close connections after grace_ms. Asynchronous; a
 * second call can only shorten the grace period. */
void lg_engine_stop(lg_engine_t *e, uint32_t grace_ms);

/* Join every worker thread (each must have exited or be exiting). */
void lg_engine_join(lg_engine_t *e);

/* Stop with no grace and join: for finalizers and the env cleanup hook. */
void lg_engine_stop_sync(lg_engine_t *e);

/* Free everything (stopping and joining first if needed). NULL is ignored. */
void lg_engine_destroy(lg_engine_t *e);

int lg_engine_state(const lg_engine_t *e);
const lg_config_t *lg_engine_config(const lg_engine_t *e);
unsigned lg_engine_workers(const lg_engine_t *e);
uint16_t lg_engine_port(const lg_engine_t *e, size_t listener); /* bound port (0 before start) */

/* Set up what routes about to be published (a snapshot's, or a decision) need from the engine:
 * the client IP affinity table, the first time a route uses ipAffinity. Call before publishing.
 * Returns 0 or a negative errno (no memory: do not publish). */
int lg_engine_prepare(lg_engine_t *e, const lg_route_t *routes, size_t n);

/* The current snapshot, with a reference the caller drops (lg_snapshot_unref). */
lg_snapshot_t *lg_engine_current(lg_engine_t *e);

/* The affinity table's figures (zeros while no route has used ipAffinity). */
void lg_engine_affinity_stats(lg_engine_t *e, lg_affinity_stats_t *out);

/* The cache of TLS contexts of the current snapshot (for building the next one or decisions). */
lg_tls_cache_t *lg_engine_tls_cache(lg_engine_t *e);

/* Publish a new snapshot (the engine takes the caller's reference) and the cache it was built
 * with (moved in; the old cache is freed: contexts only old snapshots use live on in them). */
void lg_engine_swap(lg_engine_t *e, lg_snapshot_t *snap, lg_tls_cache_t *cache);

/* Events: produce 'tunnel' / 'blocked' / 'access' events or not; a posted event has been
 * handled (JS thread). */
void lg_engine_tunnel_events(lg_engine_t *e, bool on);
void lg_engine_blocked_events(lg_engine_t *e, bool on);
void lg_engine_access_events(lg_engine_t *e, bool on);
void lg_engine_event_done(lg_engine_t *e, const lg_event_t *ev);

/* A held connection by id: 0 with *listener and *route_tls set when it is pending and
 * unclaimed (a decision for it would be taken), -ENOENT otherwise. */
int lg_engine_pending(lg_engine_t *e, const char *id, unsigned *listener, bool *route_tls);

/*
 * Decide a held connection (decision NULL: close it). Takes ownership of decision. Returns 0
 * when the connection was claimed and the decision posted to its worker, -ENOENT when it is not
 * pending (any more), or another negative errno (the decision could not be posted).
 */
int lg_engine_resolve(lg_engine_t *e, const char *id, lg_route_t *decision);

/* blockedIps(): which list. */
enum {
    LG_ENGINE_BLOCKED_RATE = LG_LIMIT_LIST_RATE_LIMITED,
    LG_ENGINE_BLOCKED_CONCURRENCY = LG_LIMIT_LIST_CONCURRENCY_LIMITED,
    LG_ENGINE_BLOCKED_BOXED = LG_LIMIT_LIST_PENALTY_BOXED,
    LG_ENGINE_BLOCKED_CIDRS = 100,
};
#define LG_ENGINE_BLOCKED_MAX 10000 /* sources listed per blockedIps() list, at most */

/* A list of texts (owned). */
typedef struct lg_engine_list_s {
    char **v;
    size_t n, cap;
} lg_engine_list_t;

/*
 * blockedIps(): the sources rate-limited, concurrency-limited or penalty-boxed at now_ms (from
 * the per-IP table; formatted, deduplicated across listeners, at most LG_ENGINE_BLOCKED_MAX), or
 * the configured blocklists (LG_ENGINE_BLOCKED_CIDRS). Returns 0 or -ENOMEM (free *out either
 * way with lg_engine_list_free).
 */
int lg_engine_blocked(lg_engine_t *e, int which, uint64_t now_ms, lg_engine_list_t *out);
void lg_engine_list_free(lg_engine_list_t *l);

/* A worker's published figures. */
typedef struct lg_worker_figures_s {
    uint64_t connections, read_buffers, hello_buffers, lookups, quantum, grants, granted_bytes;
    uint64_t spare_buffer_bytes; /* the read-buffer pool's spare buffers (kept for reuse) */
    uint64_t interactive_reads, spliced, pipes, lent_pipes, large_pipes, own_pipe_large;
} lg_worker_figures_t;

/* A metrics snapshot (relaxed reads of per-worker counters, summed). */
typedef struct lg_engine_metrics_s {
    lg_counts_t total;
    lg_counts_t listeners[LG_MAX_LISTENERS];
    size_t n_listeners;
    uint64_t pending_suspended;
    uint64_t generations_live;
    uint64_t events_dropped;
    uint64_t access_events_dropped; /* of events_dropped: access records */
    uint64_t buffers_in_use;
    lg_limit_stats_t tracking; /* the per-IP protection table */
    lg_worker_figures_t workers[LG_MAX_WORKERS];
    size_t n_workers;
} lg_engine_metrics_t;

void lg_engine_metrics(lg_engine_t *e, lg_engine_metrics_t *m);

/* Bytes of a stop report, at most (LG_MAX_WORKERS workers of a few hundred bytes each). */
#define LG_ENGINE_REPORT_MAX 131072

/*
 * What each worker still holds, for a stop that is taking long (LEGATO_DEBUG=stop, the
 * LEGATO_STOP_SLOW warning): JSON, an array with one object per worker,
 * { "worker", "phase" ("running" | "grace" | "draining" | "closing" | "exited"), "connections",
 *   "states": { <state name>: count, ... non-zero ones }, "lookups", "readBuffers",
 *   "pendingSuspended" }. Read from figures each worker publishes (relaxed atomics): it works
 * while a worker is stuck, and may be a moment out of date. Returns the length written (the
 * text is cut at a worker boundary to fit cap; cap >= 3).
 */
size_t lg_engine_stop_report(lg_engine_t *e, char *out, size_t cap);

#endif /* LG_ENGINE_H */
