/*
 * lg_tls.c — per-connection TLS termination (see lg_tls.h).
 *
 * The custom BIO: read returns the bytes of the ciphertext currently being fed (tls->in) and
 * signals "retry" when they are used up; write appends to the client-bound flow and schedules it.
 * Every feed therefore runs OpenSSL until it wants more input, so the input is always fully
 * consumed when lg_tls_feed returns and no ciphertext is ever held outside OpenSSL.
 *
 * OpenSSL's thread-local error queue is cleared before each operation that inspects it, so one
 * connection's errors never leak into another's on the same worker.
 */
#include "lg_tls.h"
#include "lg_conn.h"
#include "lg_relay.h"

#include "lg_ja.h"

#include <openssl/err.h>
#include <openssl/evp.h>
#include <pthread.h>
#include <string.h>

static BIO_METHOD *bio_method;
static pthread_once_t bio_once = PTHREAD_ONCE_INIT;

static int bio_write(BIO *b, const char *data, int len)
{
    lg_conn_t *c = BIO_get_data(b);
    BIO_clear_retry_flags(b);
    if (len <= 0) return 0;
    if (lg_relay_queue_copy(c, &c->u2c, (const uint8_t *)data, (size_t)len) != 0) {
        c->tls->out_failed = true;
        return -1;
    }
    return len;
}

static int bio_read(BIO *b, char *out, int len)
{
    lg_conn_t *c = BIO_get_data(b);
    lg_tls_t *t = c->tls;
    BIO_clear_retry_flags(b);
    if (len <= 0) return 0;
    if (t->in_len == 0) {
        BIO_set_retry_read(b);
        return -1;
    }
    size_t n = LG_MIN((size_t)len, t->in_len);
    memcpy(out, t->in, n);
    t->in += n;
    t->in_len -= n;
    return (int)n;
}

static long bio_ctrl(BIO *b, int cmd, long num, void *ptr)
{
    (void)b;
    (void)num;
    (void)ptr;
    switch (cmd) {
    case BIO_CTRL_FLUSH:
        return 1; /* writes are queued at once; nothing to flush */
    case BIO_CTRL_PENDING:
    case BIO_CTRL_WPENDING:
        return 0;
    default:
        return 0;
    }
}

static int bio_create(BIO *b)
{
    BIO_set_init(b, 1);
    return 1;
}

static int bio_destroy(BIO *b)
{
    (void)b;
    return 1;
}

static void bio_method_init(void)
{
    BIO_METHOD *m = BIO_meth_new(BIO_get_new_index() | BIO_TYPE_SOURCE_SINK, "legato");
    if (m == NULL) return;
    BIO_meth_set_write(m, bio_write);
    BIO_meth_set_read(m, bio_read);
    BIO_meth_set_ctrl(m, bio_ctrl);
    BIO_meth_set_create(m, bio_create);
    BIO_meth_set_destroy(m, bio_destroy);
    bio_method = m; /* process-wide, immutable once made; freed with the process */
}

int lg_tls_start(lg_conn_t *c, SSL_CTX *ctx, const char *sni, size_t sni_len, const uint8_t *alpn,
                 size_t alpn_len)
{
    pthread_once(&bio_once, bio_method_init);
    if (bio_method == NULL) return -ENOMEM;
    lg_tls_t *t = lg_calloc(1, sizeof(*t));
    if (t == NULL) return -ENOMEM;
    t->conn = c;
    t->alpn = alpn;
    t->alpn_len = alpn_len;
    if (sni != NULL && sni_len <= LG_HELLO_MAX_SNI) {
        memcpy(t->sni, sni, sni_len);
        t->sni[sni_len] = '\0';
        t->sni_len = (uint8_t)sni_len;
    }
    t->ssl = SSL_new(ctx);
    BIO *bio = BIO_new(bio_method);
    if (t->ssl == NULL || bio == NULL) {
        BIO_free(bio);
        SSL_free(t->ssl);
        lg_free(t);
        ERR_clear_error();
        return -ENOMEM;
    }
    BIO_set_data(bio, c);
    SSL_set_bio(t->ssl, bio, bio); /* the SSL owns one reference, used both ways */
    SSL_set_app_data(t->ssl, c);
    SSL_set_accept_state(t->ssl);
    c->tls = t;
    return 0;
}

void lg_tls_free(lg_conn_t *c)
{
    if (c->tls == NULL) return;
    SSL_free(c->tls->ssl);
    lg_free(c->tls);
    c->tls = NULL;
}

bool lg_tls_resumed(const lg_conn_t *c)
{
    return c->tls != NULL && SSL_session_reused(c->tls->ssl) == 1;
}

/* Classify a failed handshake. */
static int handshake_error(SSL *ssl)
{
    unsigned long e = ERR_peek_error();
    int reason = ERR_GET_REASON(e);
    int rc = LG_TLS_E_PROTOCOL;
    if (reason == SSL_R_PEER_DID_NOT_RETURN_A_CERTIFICATE) {
        rc = LG_TLS_E_NO_CERTIFICATE;
    } else if (reason == SSL_R_CERTIFICATE_VERIFY_FAILED ||
               SSL_get_verify_result(ssl) != X509_V_OK) {
        rc = LG_TLS_E_CERTIFICATE;
    }
    ERR_clear_error();
    return rc;
}

/* The SNI OpenSSL negotiated must be the one the router used (case and trailing dot aside). */
static bool sni_matches(const lg_tls_t *t)
{
    const char *got = SSL_get_servername(t->ssl, TLSEXT_NAMETYPE_host_name);
    size_t n = got ? strlen(got) : 0;
    if (n > 0 && got[n - 1] == '.') n--;
    if (n != t->sni_len) return false;
    for (size_t i = 0; i < n; i++) {
        char ch = got[i];
        if (ch >= 'A' && ch <= 'Z') ch = (char)(ch - 'A' + 'a');
        if (ch != t->sni[i]) return false;
    }
    return true;
}

/* Decrypt everything OpenSSL can give into c2u. Returns LG_TLS_OK or a failure. */
static int drain_plaintext(lg_conn_t *c)
{
    lg_tls_t *t = c->tls;
    lg_bufpool_t *pool = &c->w->pool;
    for (;;) {
        if (t->violation) return t->violation;
        lg_buf_t *b = lg_buf_get(pool);
        if (b == NULL) return LG_TLS_E_NOMEM;
        ERR_clear_error();
        int n = SSL_read(t->ssl, b->data, (int)b->cap);
        if (t->violation) {
            lg_buf_put(pool, b);
            return t->violation;
        }
        if (n > 0) {
            b->len = (uint32_t)n;
            lg_bufq_push(&c->c2u.q, pool, b);
            lg_relay_flow_queued(c, &c->c2u, (size_t)n);
            continue;
        }
        lg_buf_put(pool, b);
        int err = SSL_get_error(t->ssl, n);
        if (err == SSL_ERROR_WANT_READ) return t->out_failed ? LG_TLS_E_NOMEM : LG_TLS_OK;
        if (err == SSL_ERROR_ZERO_RETURN) {
            t->peer_closed = true; /* close_notify: a clean end of the client's data */
            return LG_TLS_OK;
        }
        ERR_clear_error();
        return LG_TLS_E_PROTOCOL;
    }
}

int lg_tls_feed(lg_conn_t *c, const uint8_t *data, size_t len)
{
    lg_tls_t *t = c->tls;
    t->in = data;
    t->in_len = len;
    int rc = LG_TLS_OK;
    if (!t->handshake_done) {
        ERR_clear_error();
        int r = SSL_do_handshake(t->ssl);
        if (r != 1) {
            int err = SSL_get_error(t->ssl, r);
            if (err == SSL_ERROR_WANT_READ && !t->out_failed) goto out;
            rc = t->out_failed ? LG_TLS_E_NOMEM : handshake_error(t->ssl);
            goto out;
        }
        t->handshake_done = true;
        if (!sni_matches(t)) {
            rc = LG_TLS_E_SNI;
            goto out;
        }
        rc = LG_TLS_READY;
    }
    if (!t->peer_closed) {
        int d = drain_plaintext(c);
        if (d != LG_TLS_OK) rc = d;
    }
out:
    t->in = NULL;
    t->in_len = 0;
    return rc;
}

int lg_tls_encrypt(lg_conn_t *c, const uint8_t *data, size_t len)
{
    lg_tls_t *t = c->tls;
    while (len > 0) {
        ERR_clear_error();
        int chunk = (int)LG_MIN(len, (size_t)INT32_MAX);
        int n = SSL_write(t->ssl, data, chunk);
        if (n <= 0 || t->out_failed) {
            ERR_clear_error();
            return t->out_failed ? LG_TLS_E_NOMEM : LG_TLS_E_PROTOCOL;
        }
        data += n;
        len -= (size_t)n;
    }
    return LG_TLS_OK;
}

void lg_tls_close_notify(lg_conn_t *c)
{
    lg_tls_t *t = c->tls;
    if (t == NULL || t->close_sent || !t->handshake_done) return;
    t->close_sent = true;
    ERR_clear_error();
    SSL_shutdown(t->ssl); /* queues close_notify through the BIO; we do not wait for the peer's */
    ERR_clear_error();
}

static bool digest(const EVP_MD *md, const void *data, size_t len, uint8_t *out)
{
    unsigned int n = 0;
    return EVP_Digest(data, len, out, &n, md, NULL) == 1;
}

void lg_tls_fingerprints(const lg_hello_t *h, char ja3[33], char ja4[40])
{
    ja3[0] = '\0';
    ja4[0] = '\0';
    char s3[LG_JA3_MAX];
    int n = lg_ja3_string(h, s3, sizeof(s3));
    uint8_t md[EVP_MAX_MD_SIZE];
    if (n >= 0 && digest(EVP_md5(), s3, (size_t)n, md)) {
        static const char hex[] = "0123456789abcdef";
        for (int i = 0; i < 16; i++) {
            ja3[2 * i] = hex[md[i] >> 4];
            ja3[2 * i + 1] = hex[md[i] & 15];
        }
        ja3[32] = '\0';
    }
    lg_ja4_parts_t parts;
    uint8_t b[EVP_MAX_MD_SIZE], c[EVP_MAX_MD_SIZE];
    if (lg_ja4_parts(h, &parts) == 0 && digest(EVP_sha256(), parts.b, parts.b_len, b) &&
        digest(EVP_sha256(), parts.c, parts.c_len, c)) {
        lg_ja4_format(&parts, b, c, ja4, 40);
    }
    ERR_clear_error();
}

int lg_tls_alpn_select(SSL *ssl, const unsigned char **out, unsigned char *outlen,
                       const unsigned char *in, unsigned int inlen, void *arg)
{
    (void)arg;
    lg_conn_t *c = SSL_get_app_data(ssl);
    if (c == NULL || c->tls == NULL || c->tls->alpn_len == 0) return SSL_TLSEXT_ERR_NOACK;
    unsigned char *sel = NULL;
    unsigned char sel_len = 0;
    /* Server preference: the first protocol of the route's list that the client offers. */
    if (SSL_select_next_proto(&sel, &sel_len, c->tls->alpn, (unsigned int)c->tls->alpn_len, in,
                              inlen) != OPENSSL_NPN_NEGOTIATED) {
        return SSL_TLSEXT_ERR_NOACK; /* no common protocol: continue without ALPN */
    }
    *out = sel;
    *outlen = sel_len;
    return SSL_TLSEXT_ERR_OK;
}

void lg_tls_msg_cb(int write_p, int version, int content_type, const void *buf, size_t len,
                   SSL *ssl, void *arg)
{
    (void)version;
    (void)arg;
    if (write_p || len < 1) return;
    lg_conn_t *c = SSL_get_app_data(ssl);
    if (c == NULL || c->tls == NULL || !c->tls->handshake_done) return;
    uint8_t first = ((const uint8_t *)buf)[0];
    if (content_type == SSL3_RT_HEADER && first == SSL3_RT_HANDSHAKE &&
        SSL_version(ssl) < TLS1_3_VERSION) {
        /* A handshake record from a TLS 1.2 client after the handshake can only start a
         * renegotiation. SSL_OP_NO_RENEGOTIATION already refuses it; the connection is closed
         * too, as HAProxy and nginx do. (Judged on the record header because OpenSSL answers
         * such a ClientHello with an alert without handing it to the state machine.) */
        c->tls->violation = LG_TLS_E_RENEGOTIATION;
    } else if (content_type == SSL3_RT_HANDSHAKE && first == SSL3_MT_KEY_UPDATE &&
               ++c->tls->keyupdates > LG_TLS_MAX_KEYUPDATES) {
        c->tls->violation = LG_TLS_E_KEYUPDATE;
    }
}
