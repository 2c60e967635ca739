/*
 * lg_tls_ctx.h — building server SSL_CTXs from PEM material, and the cache that lets unchanged
 * certificates survive a config swap.
 *
 * One SSL_CTX per distinct (certificate chain, private key, client CA, requireClientCert). It
 * carries its own session cache (TLS 1.2 session IDs) and its own ticket keys (TLS 1.3 tickets),
 * so a ticket issued for one tenant can never resume on another, and a context reused across
 * updateConfig keeps every session resumable while a rotated certificate (a new digest, a new
 * context) retires them.
 *
 * Protocol settings applied to every context: TLS 1.2 and 1.3 only; no compression; no
 * renegotiation (SSL_OP_NO_RENEGOTIATION; lg_tls also closes a connection that tries); server
 * cipher preference with forward-secret AEAD suites only for TLS 1.2; SSL_MODE_RELEASE_BUFFERS so
 * an idle connection holds no record buffers.
 *
 * Threads: contexts are built and the cache is touched on the JS thread only (constructor,
 * updateConfig). Workers use the contexts (OpenSSL makes that safe) through references held by
 * the snapshot.
 */
#ifndef LG_TLS_CTX_H
#define LG_TLS_CTX_H

#include "lg_common.h"

#include <openssl/ssl.h>

#define LG_TLS_SESSION_CACHE_SIZE 20480 /* TLS 1.2 sessions remembered per context */
#define LG_TLS_VERIFY_DEPTH       10    /* client certificate chain depth (mTLS) */
#define LG_TLS_DIGEST_LEN         32    /* SHA-256 */

typedef struct lg_tls_material_s {
    const uint8_t *cert; /* PEM chain: leaf first, then intermediates */
    size_t cert_len;
    const uint8_t *key; /* PEM private key (unencrypted) */
    size_t key_len;
    const uint8_t *ca; /* PEM client CA bundle, or NULL: no client certificates asked */
    size_t ca_len;
    bool require_client_cert;
} lg_tls_material_t;

typedef struct lg_tls_cache_entry_s {
    uint8_t digest[LG_TLS_DIGEST_LEN];
    SSL_CTX *ctx; /* one reference owned by the cache */
} lg_tls_cache_entry_t;

/* Owner: the engine (JS thread only). Every distinct material of a snapshot is kept, so an
 * unchanged certificate keeps its context (and its tickets) across swaps however many routes
 * there are; the index makes each lookup O(1) (a swap of 65,536 routes was quadratic). Its
 * size is the config's: every entry is referenced by a route or listener of the snapshot. */
typedef struct lg_tls_cache_s {
    lg_tls_cache_entry_t *v;
    size_t n, cap;
    uint32_t *idx;  /* open addressing over v: entry index + 1, 0 = empty */
    size_t idx_cap; /* a power of two, at least 2n; 0 before the first entry */
} lg_tls_cache_t;

/* Which part of the material a failure is about (lg_tls_ctx_get). */
enum { LG_TLS_FAULT_CERT = 0, LG_TLS_FAULT_CA = 1 };

/*
 * A client context toward a TLS upstream (re-encryption): TLS 1.2-1.3; with `verify`, the
 * server's chain is verified against m->ca (PEM trust anchors) or, without one, the default
 * store (the caller checks the name per connection); m->cert / m->key: an optional client
 * certificate. Returns the context (one reference) or NULL with err filled and *fault saying
 * which part was refused.
 */
SSL_CTX *lg_tls_client_ctx(const lg_tls_material_t *m, bool verify, char *err, size_t err_size,
                           int *fault);

/*
 * Get a context for `m`: from `next` if this snapshot already made it (`next` may be NULL: use,
 * do not record), else from `cur` (the cache of the running snapshot: unchanged material reuses
 * its context), else built. The context is recorded in `next` and returned with one reference for
 * the caller. On failure returns NULL with a sentence in `err` ("private key does not match
 * certificate", ...) and *fault saying whether the certificate/key or the client CA was at fault.
 */
SSL_CTX *lg_tls_ctx_get(lg_tls_cache_t *cur, lg_tls_cache_t *next, const lg_tls_material_t *m,
                        char *err, size_t err_size, int *fault);

/* Check a client CA bundle on its own (no certificate to pair it with yet): 0, or -1 with a
 * sentence in `err`. */
int lg_tls_check_ca(const lg_tls_material_t *m, char *err, size_t err_size);

/* Free a cache's references (the contexts live on while snapshots hold them). */
void lg_tls_cache_free(lg_tls_cache_t *c);

#endif /* LG_TLS_CTX_H */
