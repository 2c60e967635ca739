/*
 * lg_verify.h — checking Basic credentials against a listener's user table without blocking the
 * worker: scrypt (OpenSSL's EVP_PBE_scrypt) runs on libuv's thread pool (uv_queue_work), never
 * on the worker's loop.
 *
 * Per worker, at most LG_VERIFY_MAX_JOBS verifications are queued or running; beyond that
 * lg_verify_start refuses (-EBUSY: the caller answers 503 and counts refusedAuthBusy). Tunnels
 * that present identical credentials on one listener while a verification of them is in flight
 * share it (one scrypt, every waiter told). Successes are remembered in a per-worker,
 * per-listener lg_auth_cache_t (keys are salted SHA-256 digests, never passwords); failures are
 * never cached. An unknown user is verified against the table's dummy hash, which has the first
 * user's cost, so a wrong name takes as long as a wrong password. Password copies are wiped as
 * soon as they are no longer needed (in the pool thread, right after scrypt).
 *
 * Ownership: a job (one verification) is owned jointly by its waiters and by libuv until its
 * completion runs on the worker's loop, which frees it. A waiter that loses interest (its
 * connection closes, its deadline passes, the worker stops) calls lg_verify_cancel: its callback
 * is never called, and when no waiter is left a job still queued leaves the pool's queue. The
 * completion therefore never touches a freed connection. The worker's loop keeps running until
 * every job has completed (libuv counts active requests), so stop() during a verification is
 * safe; lg_verify_worker_free then frees the caches.
 */
#ifndef LG_VERIFY_H
#define LG_VERIFY_H

#include "lg_auth.h"
#include "lg_wctx.h"

#define LG_VERIFY_MAX_JOBS   16    /* verifications queued or running per worker (→ 503) */
#define LG_VERIFY_TIMEOUT_MS 10000 /* ms from the end of the head to a verdict (→ 503) */

typedef struct lg_verify_wait_s lg_verify_wait_t;

/* The verdict: ok is true when the password matched a configured user. */
typedef void (*lg_verify_cb)(void *arg, bool ok);

#define LG_VERIFY_CACHED 1 /* lg_verify_start: a cached success; no callback follows */

/*
 * Check `cred` (decoded Basic credentials) for listener `lis` whose table is `auth`. Always wipes
 * *cred. Returns LG_VERIFY_CACHED (accepted from the cache: counted as authCacheHits), 0 with
 * *wait set (cb(arg, ok) follows once, from the worker's loop, never from inside this call),
 * -EAGAIN (src, the source's keyed hash, is given and its auth->throttle bucket is empty: no
 * new verification is started; cached credentials and credentials already in flight are not
 * refused), -EBUSY (LG_VERIFY_MAX_JOBS in flight) or -ENOMEM. A started verification holds a
 * token of the source's bucket; a success gives it back (only failures stay charged).
 */
int lg_verify_start(lg_wctx_t *w, unsigned lis, const lg_auth_t *auth, lg_auth_cred_t *cred,
                    const uint64_t *src, lg_verify_cb cb, void *arg, lg_verify_wait_t **wait);

/* The waiter no longer wants the verdict: its callback will not run. NULL is ignored. */
void lg_verify_cancel(lg_verify_wait_t *wait);

/* Free the worker's caches, after its loop has ended (no job is left then). */
void lg_verify_worker_free(lg_wctx_t *w);

#endif /* LG_VERIFY_H */
