/*
 * lg_tls_ctx.c — SSL_CTX construction from PEM, and the context cache (see lg_tls_ctx.h).
 *
 * Errors are reported as sentences for the config error message; OpenSSL's error queue is
 * always cleared before returning so that it never leaks into an unrelated connection's error
 * checks on this thread.
 */
#include "lg_tls_ctx.h"
#include "lg_tls.h"

#include <openssl/err.h>
#include <openssl/evp.h>
#include <openssl/pem.h>
#include <openssl/x509.h>
#include <stdio.h>
#include <string.h>

/* Mozilla "intermediate" TLS 1.2 suites: ECDHE key exchange, AEAD ciphers only. TLS 1.3 suites
 * are OpenSSL's defaults (all AEAD). */
#define LG_TLS12_CIPHERS                                                                           \
    "ECDHE-ECDSA-AES128-GCM-SHA256:ECDHE-RSA-AES128-GCM-SHA256:"                                   \
    "ECDHE-ECDSA-AES256-GCM-SHA384:ECDHE-RSA-AES256-GCM-SHA384:"                                   \
    "ECDHE-ECDSA-CHACHA20-POLY1305:ECDHE-RSA-CHACHA20-POLY1305"

/* The cache key of `m`. False when it could not be computed (out of memory): the caller must
 * not use `out`, or different material would share a context. */
static bool digest_material(const lg_tls_material_t *m, uint8_t out[LG_TLS_DIGEST_LEN])
{
    EVP_MD_CTX *md = EVP_MD_CTX_new();
    unsigned int len = 0;
    uint64_t lens[3] = {m->cert_len, m->key_len, m->ca ? m->ca_len : (uint64_t)-1};
    uint8_t req = m->require_client_cert;
    if (md == NULL) return false;
    /* Lengths first: no two different (cert, key, ca) splits can hash the same. */
    bool ok = EVP_DigestInit_ex(md, EVP_sha256(), NULL) == 1 &&
              EVP_DigestUpdate(md, lens, sizeof(lens)) == 1 && EVP_DigestUpdate(md, &req, 1) == 1 &&
              EVP_DigestUpdate(md, m->cert, m->cert_len) == 1 &&
              EVP_DigestUpdate(md, m->key, m->key_len) == 1 &&
              (m->ca == NULL || EVP_DigestUpdate(md, m->ca, m->ca_len) == 1) &&
              EVP_DigestFinal_ex(md, out, &len) == 1 && len == LG_TLS_DIGEST_LEN;
    EVP_MD_CTX_free(md);
    return ok;
}

static int no_passphrase(char *buf, int size, int rwflag, void *u)
{
    (void)buf;
    (void)size;
    (void)rwflag;
    (void)u;
    return -1; /* encrypted keys are refused: there is nowhere to get a passphrase from */
}

static bool pem_has(const uint8_t *pem, size_t len, const char *needle)
{
    size_t nl = strlen(needle);
    for (size_t i = 0; i + nl <= len; i++) {
        if (memcmp(pem + i, needle, nl) == 0) return true;
    }
    return false;
}

/* Load the chain: leaf as the certificate, the rest as chain certificates. */
static int load_chain(SSL_CTX *ctx, const lg_tls_material_t *m, char *err, size_t err_size)
{
    BIO *bio = BIO_new_mem_buf(m->cert, (int)m->cert_len);
    if (bio == NULL) goto oom;
    X509 *leaf = PEM_read_bio_X509(bio, NULL, no_passphrase, NULL);
    if (leaf == NULL) {
        BIO_free(bio);
        snprintf(err, err_size, "certChain holds no readable PEM certificate");
        return -1;
    }
    int ok = SSL_CTX_use_certificate(ctx, leaf);
    X509_free(leaf);
    if (ok != 1) {
        BIO_free(bio);
        snprintf(err, err_size, "the certificate was refused by OpenSSL (unsupported key type?)");
        return -1;
    }
    for (;;) {
        X509 *ca = PEM_read_bio_X509(bio, NULL, no_passphrase, NULL);
        if (ca == NULL) break;
        if (SSL_CTX_add0_chain_cert(ctx, ca) != 1) {
            X509_free(ca);
            BIO_free(bio);
            snprintf(err, err_size, "an intermediate certificate in certChain was refused");
            return -1;
        }
    }
    /* The loop ends on "no more PEM" (expected) or on a corrupt block (not expected). */
    unsigned long e = ERR_peek_last_error();
    BIO_free(bio);
    if (e != 0 && !(ERR_GET_LIB(e) == ERR_LIB_PEM && ERR_GET_REASON(e) == PEM_R_NO_START_LINE)) {
        snprintf(err, err_size, "certChain holds a PEM block that is not a readable certificate");
        return -1;
    }
    ERR_clear_error();
    return 0;
oom:
    snprintf(err, err_size, "out of memory");
    return -1;
}

static int load_key(SSL_CTX *ctx, const lg_tls_material_t *m, char *err, size_t err_size)
{
    if (pem_has(m->key, m->key_len, "ENCRYPTED")) {
        snprintf(err, err_size, "privateKey is encrypted; give it unencrypted");
        return -1;
    }
    BIO *bio = BIO_new_mem_buf(m->key, (int)m->key_len);
    if (bio == NULL) {
        snprintf(err, err_size, "out of memory");
        return -1;
    }
    EVP_PKEY *key = PEM_read_bio_PrivateKey(bio, NULL, no_passphrase, NULL);
    BIO_free(bio);
    if (key == NULL) {
        snprintf(err, err_size, "privateKey holds no readable PEM private key");
        return -1;
    }
    int ok = SSL_CTX_use_PrivateKey(ctx, key);
    EVP_PKEY_free(key);
    if (ok != 1 || SSL_CTX_check_private_key(ctx) != 1) {
        snprintf(err, err_size, "private key does not match certificate");
        return -1;
    }
    return 0;
}

static int load_client_ca(SSL_CTX *ctx, const lg_tls_material_t *m, char *err, size_t err_size)
{
    BIO *bio = BIO_new_mem_buf(m->ca, (int)m->ca_len);
    STACK_OF(X509_NAME) *names = sk_X509_NAME_new_null();
    X509_STORE *store = SSL_CTX_get_cert_store(ctx);
    int n = 0;
    if (bio == NULL || names == NULL) {
        BIO_free(bio);
        sk_X509_NAME_free(names);
        snprintf(err, err_size, "out of memory");
        return -1;
    }
    for (;;) {
        X509 *ca = PEM_read_bio_X509(bio, NULL, no_passphrase, NULL);
        if (ca == NULL) break;
        X509_NAME *name = X509_NAME_dup(X509_get_subject_name(ca));
        if (X509_STORE_add_cert(store, ca) != 1 || name == NULL ||
            sk_X509_NAME_push(names, name) <= 0) {
            X509_NAME_free(name);
            X509_free(ca);
            BIO_free(bio);
            sk_X509_NAME_pop_free(names, X509_NAME_free);
            snprintf(err, err_size, "clientCaCert could not be loaded");
            return -1;
        }
        X509_free(ca);
        n++;
    }
    BIO_free(bio);
    ERR_clear_error();
    if (n == 0) {
        sk_X509_NAME_pop_free(names, X509_NAME_free);
        snprintf(err, err_size, "clientCaCert holds no readable PEM certificate");
        return -1;
    }
    SSL_CTX_set_client_CA_list(ctx, names); /* takes ownership */
    int mode = SSL_VERIFY_PEER | (m->require_client_cert ? SSL_VERIFY_FAIL_IF_NO_PEER_CERT : 0);
    SSL_CTX_set_verify(ctx, mode, NULL);
    SSL_CTX_set_verify_depth(ctx, LG_TLS_VERIFY_DEPTH);
    return 0;
}

/* Trust anchors for verifying servers: the PEM bundle's certificates (at least one). */
static int load_server_ca(SSL_CTX *ctx, const uint8_t *pem, size_t len, char *err, size_t err_size)
{
    BIO *bio = BIO_new_mem_buf(pem, (int)len);
    X509_STORE *store = SSL_CTX_get_cert_store(ctx);
    int n = 0;
    if (bio == NULL) {
        snprintf(err, err_size, "out of memory");
        return -1;
    }
    for (;;) {
        X509 *ca = PEM_read_bio_X509(bio, NULL, no_passphrase, NULL);
        if (ca == NULL) break;
        int ok = X509_STORE_add_cert(store, ca);
        X509_free(ca);
        if (ok != 1) {
            BIO_free(bio);
            snprintf(err, err_size, "a certificate in ca could not be loaded");
            return -1;
        }
        n++;
    }
    BIO_free(bio);
    ERR_clear_error();
    if (n == 0) {
        snprintf(err, err_size, "ca holds no readable PEM certificate");
        return -1;
    }
    return 0;
}

SSL_CTX *lg_tls_client_ctx(const lg_tls_material_t *m, bool verify, char *err, size_t err_size,
                           int *fault)
{
    err[0] = '\0';
    *fault = LG_TLS_FAULT_CA;
    SSL_CTX *ctx = SSL_CTX_new(TLS_client_method());
    if (ctx == NULL) {
        snprintf(err, err_size, "could not create an SSL context");
        return NULL;
    }
    SSL_CTX_set_min_proto_version(ctx, TLS1_2_VERSION);
    SSL_CTX_set_max_proto_version(ctx, TLS1_3_VERSION);
    SSL_CTX_set_options(ctx, SSL_OP_NO_COMPRESSION | SSL_OP_NO_RENEGOTIATION);
    SSL_CTX_set_mode(ctx, SSL_MODE_RELEASE_BUFFERS);
    /* Sessions are kept by the caller per upstream (SSL_get1_session), not in the context. */
    SSL_CTX_set_session_cache_mode(ctx, SSL_SESS_CACHE_CLIENT | SSL_SESS_CACHE_NO_INTERNAL_STORE);
    SSL_CTX_sess_set_new_cb(ctx, lg_tls_new_session_cb);
    bool ok = SSL_CTX_set_cipher_list(ctx, LG_TLS12_CIPHERS) == 1;
    if (ok && verify) {
        SSL_CTX_set_verify(ctx, SSL_VERIFY_PEER, NULL);
        SSL_CTX_set_verify_depth(ctx, LG_TLS_VERIFY_DEPTH);
        ok = m->ca != NULL ? load_server_ca(ctx, m->ca, m->ca_len, err, err_size) == 0
                           : SSL_CTX_set_default_verify_paths(ctx) == 1;
    } else if (ok) {
        SSL_CTX_set_verify(ctx, SSL_VERIFY_NONE, NULL);
        if (m->ca != NULL) ok = load_server_ca(ctx, m->ca, m->ca_len, err, err_size) == 0;
    }
    if (ok && m->cert != NULL) {
        *fault = LG_TLS_FAULT_CERT;
        ok = load_chain(ctx, m, err, err_size) == 0 && load_key(ctx, m, err, err_size) == 0;
    }
    if (!ok) {
        if (err[0] == '\0') snprintf(err, err_size, "the TLS settings were refused by OpenSSL");
        SSL_CTX_free(ctx);
        ERR_clear_error();
        return NULL;
    }
    ERR_clear_error();
    return ctx;
}

int lg_tls_check_ca(const lg_tls_material_t *m, char *err, size_t err_size)
{
    SSL_CTX *ctx = SSL_CTX_new(TLS_server_method());
    if (ctx == NULL) {
        snprintf(err, err_size, "out of memory");
        ERR_clear_error();
        return -1;
    }
    int rc = load_client_ca(ctx, m, err, err_size);
    SSL_CTX_free(ctx);
    return rc;
}

/*
 * Acknowledge the server_name extension. OpenSSL records the SNI in the session only when a
 * servername callback accepts it; without one a resumed TLS 1.2 session carries no name, so
 * lg_tls could not check that a resumption stays on the SNI it was routed by.
 */
static int servername_ok(SSL *ssl, int *alert, void *arg)
{
    (void)ssl;
    (void)alert;
    (void)arg;
    return SSL_TLSEXT_ERR_OK;
}

static SSL_CTX *build(const lg_tls_material_t *m, const uint8_t digest[LG_TLS_DIGEST_LEN],
                      char *err, size_t err_size, int *fault)
{
    SSL_CTX *ctx = SSL_CTX_new(TLS_server_method());
    if (ctx == NULL) {
        snprintf(err, err_size, "could not create an SSL context");
        return NULL;
    }
    SSL_CTX_set_min_proto_version(ctx, TLS1_2_VERSION);
    SSL_CTX_set_max_proto_version(ctx, TLS1_3_VERSION);
    SSL_CTX_set_options(ctx, SSL_OP_NO_COMPRESSION | SSL_OP_NO_RENEGOTIATION |
                                 SSL_OP_CIPHER_SERVER_PREFERENCE);
    SSL_CTX_set_mode(ctx, SSL_MODE_RELEASE_BUFFERS);
    SSL_CTX_set_session_cache_mode(ctx, SSL_SESS_CACHE_SERVER);
    SSL_CTX_sess_set_cache_size(ctx, LG_TLS_SESSION_CACHE_SIZE);
    SSL_CTX_set_session_id_context(
        ctx, digest,
        SSL_MAX_SID_CTX_LENGTH < LG_TLS_DIGEST_LEN ? SSL_MAX_SID_CTX_LENGTH : LG_TLS_DIGEST_LEN);
    *fault = LG_TLS_FAULT_CERT;
    bool ok = SSL_CTX_set_cipher_list(ctx, LG_TLS12_CIPHERS) == 1 &&
              load_chain(ctx, m, err, err_size) == 0 && load_key(ctx, m, err, err_size) == 0;
    if (ok && m->ca != NULL && load_client_ca(ctx, m, err, err_size) != 0) {
        *fault = LG_TLS_FAULT_CA;
        ok = false;
    }
    if (!ok) {
        if (err[0] == '\0') snprintf(err, err_size, "the TLS settings were refused by OpenSSL");
        SSL_CTX_free(ctx);
        ERR_clear_error();
        return NULL;
    }
    SSL_CTX_set_alpn_select_cb(ctx, lg_tls_alpn_select, NULL);
    SSL_CTX_set_tlsext_servername_callback(ctx, servername_ok);
    SSL_CTX_set_msg_callback(ctx, lg_tls_msg_cb);
    SSL_CTX_set_keylog_callback(ctx, lg_tls_keylog_cb);
    ERR_clear_error();
    return ctx;
}

/* A SHA-256 digest is uniform: its first bytes are the hash. */
static size_t digest_slot(const uint8_t digest[LG_TLS_DIGEST_LEN], size_t mask)
{
    uint64_t h;
    memcpy(&h, digest, sizeof(h));
    return (size_t)h & mask;
}

static SSL_CTX *cache_find(const lg_tls_cache_t *c, const uint8_t digest[LG_TLS_DIGEST_LEN])
{
    if (c->idx_cap == 0) return NULL;
    size_t mask = c->idx_cap - 1;
    for (size_t j = digest_slot(digest, mask); c->idx[j] != 0; j = (j + 1) & mask) {
        const lg_tls_cache_entry_t *e = &c->v[c->idx[j] - 1];
        if (memcmp(e->digest, digest, LG_TLS_DIGEST_LEN) == 0) return e->ctx;
    }
    return NULL;
}

/* Index entries 0..n-1 into a new table of `cap` slots. */
static int cache_reindex(lg_tls_cache_t *c, size_t cap)
{
    uint32_t *idx = lg_calloc(cap, sizeof(*idx));
    if (idx == NULL) return -ENOMEM;
    for (size_t i = 0; i < c->n; i++) {
        size_t j = digest_slot(c->v[i].digest, cap - 1);
        while (idx[j] != 0)
            j = (j + 1) & (cap - 1);
        idx[j] = (uint32_t)(i + 1);
    }
    lg_free(c->idx);
    c->idx = idx;
    c->idx_cap = cap;
    return 0;
}

static int cache_add(lg_tls_cache_t *c, const uint8_t digest[LG_TLS_DIGEST_LEN], SSL_CTX *ctx)
{
    if (c->n == c->cap) {
        size_t cap = c->cap ? c->cap * 2 : 8;
        lg_tls_cache_entry_t *v = lg_realloc(c->v, cap * sizeof(*v));
        if (v == NULL) return -ENOMEM;
        c->v = v;
        c->cap = cap;
    }
    if ((c->n + 1) * 2 > c->idx_cap && cache_reindex(c, c->idx_cap ? c->idx_cap * 2 : 16) != 0) {
        return -ENOMEM;
    }
    memcpy(c->v[c->n].digest, digest, LG_TLS_DIGEST_LEN);
    SSL_CTX_up_ref(ctx);
    c->v[c->n].ctx = ctx;
    c->n++;
    size_t j = digest_slot(digest, c->idx_cap - 1);
    while (c->idx[j] != 0)
        j = (j + 1) & (c->idx_cap - 1);
    c->idx[j] = (uint32_t)c->n;
    return 0;
}

SSL_CTX *lg_tls_ctx_get(lg_tls_cache_t *cur, lg_tls_cache_t *next, const lg_tls_material_t *m,
                        char *err, size_t err_size, int *fault)
{
    err[0] = '\0';
    *fault = LG_TLS_FAULT_CERT;
    uint8_t digest[LG_TLS_DIGEST_LEN];
    if (!digest_material(m, digest)) {
        ERR_clear_error();
        snprintf(err, err_size, "out of memory");
        return NULL;
    }
    SSL_CTX *ctx = next ? cache_find(next, digest) : NULL;
    if (ctx != NULL) {
        SSL_CTX_up_ref(ctx);
        return ctx;
    }
    ctx = cur ? cache_find(cur, digest) : NULL;
    if (ctx != NULL) {
        SSL_CTX_up_ref(ctx);
    } else {
        ctx = build(m, digest, err, err_size, fault);
        if (ctx == NULL) return NULL;
    }
    if (next != NULL && cache_add(next, digest, ctx) != 0) {
        SSL_CTX_free(ctx);
        snprintf(err, err_size, "out of memory");
        return NULL;
    }
    return ctx;
}

void lg_tls_cache_free(lg_tls_cache_t *c)
{
    for (size_t i = 0; i < c->n; i++)
        SSL_CTX_free(c->v[i].ctx);
    lg_free(c->v);
    lg_free(c->idx);
    memset(c, 0, sizeof(*c));
}
