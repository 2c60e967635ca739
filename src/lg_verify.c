/*
 * lg_verify.c — scrypt verification on libuv's thread pool, shared in-flight jobs and the cache
 * of successes (see lg_verify.h).
 *
 * RFC 7914 (scrypt). The pool thread sees only the job: a copy of the hash parameters and of the
 * password, and the flag it writes. Everything else (the in-flight list, the waiters, the cache,
 * the counters) is touched on the worker's loop only.
 */
#include "lg_verify.h"

#include <openssl/evp.h>
#include <string.h>

struct lg_verify_wait_s {
    lg_verify_job_t *job;
    lg_verify_cb cb; /* NULL once cancelled or told */
    void *arg;
    lg_verify_wait_t *next;
};

/* Owner: itself, from lg_verify_start until its completion frees it (see lg_verify.h). */
struct lg_verify_job_s {
    uv_work_t req;
    lg_wctx_t *w;
    unsigned lis;
    lg_verify_job_t *next; /* worker's in-flight list (joinable jobs) */
    bool linked;           /* in that list */
    bool cancelled;        /* left the pool's queue */
    lg_verify_wait_t *waiters;
    uint8_t key[LG_AUTH_KEY_LEN];
    lg_scrypt_t hash; /* the user's, or the dummy for an unknown user */
    bool known;
    size_t pass_len;
    uint8_t pass[LG_AUTH_CRED_MAX];     /* wiped by the pool thread after use */
    bool ok;                            /* written by the pool thread */
    const lg_auth_throttle_t *throttle; /* took a token from it for src (NULL: none taken) */
    uint64_t src;
};

/* µs of the monotonic clock, as lg_auth's failure limit counts. */
static uint64_t now_us(void)
{
    return uv_hrtime() / 1000;
}

static void verify_unlink(lg_verify_job_t *j)
{
    if (!j->linked) return;
    lg_verify_job_t **link = &j->w->verify_jobs;
    while (*link != j)
        link = &(*link)->next;
    *link = j->next;
    j->linked = false;
}

/* On a pool thread: derive, compare in constant time, wipe. */
static void verify_work(uv_work_t *req)
{
    lg_verify_job_t *j = LG_CONTAINER_OF(req, lg_verify_job_t, req);
    uint8_t out[LG_AUTH_HASH_MAX];
    const lg_scrypt_t *h = &j->hash;
    uint64_t n = 1ull << h->ln;
    /* OpenSSL needs 128·r·(N + 2) bytes for V plus 128·r·p for B; the format caps 128·r·N. */
    uint64_t maxmem = 128ull * h->r * (n + 2) + 128ull * h->r * h->p;
    int rc = EVP_PBE_scrypt((const char *)j->pass, j->pass_len, h->salt, h->salt_len, n, h->r, h->p,
                            maxmem, out, h->hash_len);
    bool match = rc == 1 && lg_auth_ct_equal(out, h->hash, h->hash_len);
    j->ok = match && j->known;
    lg_auth_wipe(out, sizeof(out));
    lg_auth_wipe(j->pass, sizeof(j->pass));
}

static lg_auth_cache_t *verify_cache(lg_wctx_t *w, unsigned lis)
{
    if (w->auth_cache[lis] == NULL) {
        w->auth_cache[lis] = lg_malloc(sizeof(lg_auth_cache_t));
        if (w->auth_cache[lis] != NULL) lg_auth_cache_init(w->auth_cache[lis]);
    }
    return w->auth_cache[lis];
}

/* On the worker's loop: remember a success, tell the waiters, free the job. */
static void verify_done(uv_work_t *req, int status)
{
    lg_verify_job_t *j = LG_CONTAINER_OF(req, lg_verify_job_t, req);
    lg_wctx_t *w = j->w;
    bool ok = status == 0 && j->ok;
    /* Only failures stay charged: a success, or a job that left the queue unrun, gives its
     * token back. */
    if (j->throttle != NULL && (ok || status == UV_ECANCELED)) {
        lg_auth_throttle_refund(j->throttle, j->src, now_us());
    }
    verify_unlink(j);
    w->n_verify--;
    if (ok) {
        lg_auth_cache_t *cache = verify_cache(w, j->lis);
        if (cache != NULL) lg_auth_cache_insert(cache, j->key); /* no memory: just not cached */
    }
    lg_auth_wipe(j->pass, sizeof(j->pass)); /* already wiped unless it never ran */
    lg_verify_wait_t *wt = j->waiters;
    lg_free(j);
    while (wt != NULL) {
        lg_verify_wait_t *next = wt->next;
        lg_verify_cb cb = wt->cb;
        void *arg = wt->arg;
        lg_free(wt);
        if (cb != NULL) cb(arg, ok);
        wt = next;
    }
}

int lg_verify_start(lg_wctx_t *w, unsigned lis, const lg_auth_t *auth, lg_auth_cred_t *cred,
                    const uint64_t *src, lg_verify_cb cb, void *arg, lg_verify_wait_t **wait)
{
    *wait = NULL;
    uint8_t key[LG_AUTH_KEY_LEN];
    lg_auth_cache_key(auth->cache_salt, cred, key);
    lg_auth_cache_t *cache = w->auth_cache[lis];
    if (cache != NULL && lg_auth_cache_lookup(cache, key)) {
        lg_auth_wipe(cred, sizeof(*cred));
        LG_COUNT(&w->counters[lis], auth_cache_hits, 1);
        return LG_VERIFY_CACHED;
    }
    lg_verify_wait_t *wt = lg_calloc(1, sizeof(*wt));
    if (wt == NULL) {
        lg_auth_wipe(cred, sizeof(*cred));
        return -ENOMEM;
    }
    wt->cb = cb;
    wt->arg = arg;
    /* The same credentials already in flight on this listener: wait for that verdict. */
    for (lg_verify_job_t *j = w->verify_jobs; j != NULL; j = j->next) {
        if (j->lis == lis && lg_auth_ct_equal(j->key, key, sizeof(key))) {
            lg_auth_wipe(cred, sizeof(*cred));
            wt->job = j;
            wt->next = j->waiters;
            j->waiters = wt;
            *wait = wt;
            return 0;
        }
    }
    if (w->n_verify >= LG_VERIFY_MAX_JOBS) {
        lg_auth_wipe(cred, sizeof(*cred));
        lg_free(wt);
        return -EBUSY;
    }
    /* A new verification: the source's failure limit must have a token for it. */
    const lg_auth_throttle_t *throttle = src != NULL ? &auth->throttle : NULL;
    if (throttle != NULL && !lg_auth_throttle_take(throttle, *src, now_us())) {
        lg_auth_wipe(cred, sizeof(*cred));
        lg_free(wt);
        return -EAGAIN;
    }
    lg_verify_job_t *j = lg_calloc(1, sizeof(*j));
    if (j == NULL) {
        if (throttle != NULL) lg_auth_throttle_refund(throttle, *src, now_us());
        lg_auth_wipe(cred, sizeof(*cred));
        lg_free(wt);
        return -ENOMEM;
    }
    const lg_auth_user_t *u = lg_auth_find(auth, cred->buf, cred->user_len);
    j->w = w;
    j->lis = lis;
    memcpy(j->key, key, sizeof(key));
    j->hash = u != NULL ? u->hash : auth->dummy;
    j->known = u != NULL;
    j->throttle = throttle;
    j->src = src != NULL ? *src : 0;
    j->pass_len = cred->len - cred->pass_off;
    memcpy(j->pass, cred->buf + cred->pass_off, j->pass_len);
    lg_auth_wipe(cred, sizeof(*cred));
    int rc = uv_queue_work(w->loop, &j->req, verify_work, verify_done);
    if (rc != 0) {
        if (throttle != NULL) lg_auth_throttle_refund(throttle, *src, now_us());
        lg_auth_wipe(j, sizeof(*j));
        lg_free(j);
        lg_free(wt);
        return -ENOMEM;
    }
    LG_COUNT(&w->counters[lis], auth_verifications, 1);
    w->n_verify++;
    j->linked = true;
    j->next = w->verify_jobs;
    w->verify_jobs = j;
    wt->job = j;
    j->waiters = wt;
    *wait = wt;
    return 0;
}

void lg_verify_cancel(lg_verify_wait_t *wait)
{
    if (wait == NULL) return;
    wait->cb = NULL;
    lg_verify_job_t *j = wait->job;
    for (lg_verify_wait_t *o = j->waiters; o != NULL; o = o->next) {
        if (o->cb != NULL) return; /* someone still waits */
    }
    /* Nobody waits: leave the pool's queue if not started (verify_done then runs with
     * UV_ECANCELED and frees the job, which no new waiter may join). A running one finishes on
     * its own and stays joinable: its verdict is still good. */
    if (!j->cancelled && uv_cancel((uv_req_t *)&j->req) == 0) {
        j->cancelled = true;
        verify_unlink(j);
    }
}

void lg_verify_worker_free(lg_wctx_t *w)
{
    for (size_t i = 0; i < LG_MAX_LISTENERS; i++) {
        lg_free(w->auth_cache[i]);
        w->auth_cache[i] = NULL;
    }
}
