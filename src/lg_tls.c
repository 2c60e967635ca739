/*
 * lg_tls.c — per-connection TLS termination (see lg_tls.h).
 *
 * A TLS 1.3 server connection leaves OpenSSL once the handshake is done ("the switch"): the
 * keylog callback gave both application traffic secrets, the message callback counted the
 * records OpenSSL sealed with the server's (its session tickets), and OpenSSL holds no input
 * (it reads one record at a time, and the record that completed the handshake was the client's
 * Finished, so none was opened with the client's key yet). lg_rec takes both keys from there, the
 * few facts lg_tls_info reports are kept, and the SSL object is freed. A connection where any of
 * that does not hold (TLS 1.2, a CCM suite, bytes pending inside OpenSSL) stays on OpenSSL.
 *
 * The custom BIO: read returns the bytes of the ciphertext currently being fed (t->in) and
 * signals "retry" when they are used up (or once the KeyUpdate rate is passed, so that OpenSSL
 * stops answering the rest of a flood at once); write appends to io->cipher. t->io is set only
 * for the duration of a call, so the BIO never touches a queue outside one.
 */
#include "lg_tls.h"

#include "lg_rec.h"

#include <arpa/inet.h>
#include <openssl/err.h>
#include <openssl/x509v3.h>
#include <pthread.h>
#include <string.h>
#include <time.h>

/* A TLS 1.3 server connection's application traffic secrets, while its handshake runs. */
typedef struct lg_tls_secrets_s {
    uint8_t client[LG_REC_MAX_SECRET], server[LG_REC_MAX_SECRET];
    uint8_t client_len, server_len;
    uint32_t tx_records; /* records OpenSSL sealed with the server's application key */
} lg_tls_secrets_t;

struct lg_tls_s {
    SSL *ssl;              /* NULL after the switch */
    lg_rec_t *rec;         /* after the switch: the record layer */
    lg_tls_secrets_t *sec; /* until the switch: what the keylog callback gave */
    lg_tls_io_t *io;       /* output queues of the call in progress; NULL between calls */
    const uint8_t *in;     /* ciphertext not yet consumed by OpenSSL (during a feed only) */
    size_t in_len;
    const uint8_t *alpn; /* the route's ALPN list, wire format (owned by the snapshot) */
    size_t alpn_len;
    uint32_t keyupdates; /* KeyUpdates received in the connection's life */
    uint32_t *ku_times;  /* ring of the last LG_TLS_MAX_KEYUPDATES arrival times (ms, monotonic,
                          * wrapping); allocated at the first KeyUpdate, freed with t */
    int violation;       /* LG_TLS_E_RENEGOTIATION / _KEYUPDATE seen by the message callback */
    bool handshake_done;
    bool peer_closed;  /* close_notify received */
    bool close_sent;   /* close_notify queued */
    bool out_failed;   /* the BIO could not queue ciphertext (out of memory) */
    bool client;       /* client side (toward a TLS upstream): no SNI check */
    bool keep_session; /* ended without a fault: lg_tls_free keeps the session (see there) */
    void (*sink)(void *arg, SSL_SESSION *s); /* client: where new sessions go */
    void *sink_arg;
    uint8_t sni_len;
    char *sni; /* the SNI the router used (NULL for none); only until the handshake is done */
    /* After the switch, what lg_tls_info and lg_tls_resumed report. */
    const char *cipher_name; /* static in OpenSSL */
    const uint8_t *alpn_sel; /* inside alpn */
    uint8_t alpn_sel_len;
    bool resumed, cert_seen, cert_ok;
};

static BIO_METHOD *bio_method;
static pthread_once_t bio_once = PTHREAD_ONCE_INIT;

static int bio_write(BIO *b, const char *data, int len)
{
    lg_tls_t *t = BIO_get_data(b);
    BIO_clear_retry_flags(b);
    if (len <= 0) return 0;
    lg_tls_io_t *io = t->io;
    size_t n =
        io == NULL ? 0 : lg_bufq_append(io->cipher, io->pool, (const uint8_t *)data, (size_t)len);
    if (io != NULL) io->cipher_new += n;
    if (n != (size_t)len) {
        t->out_failed = true;
        return -1;
    }
    return len;
}

static int bio_read(BIO *b, char *out, int len)
{
    lg_tls_t *t = BIO_get_data(b);
    BIO_clear_retry_flags(b);
    if (len <= 0) return 0;
    /* A KeyUpdate flood stops at the rate limit: OpenSSL is given no more of the input. */
    if (t->in_len == 0 || t->violation == LG_TLS_E_KEYUPDATE) {
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
    /* Writes are queued at once: a flush has nothing to do, and nothing is ever pending. */
    return cmd == BIO_CTRL_FLUSH ? 1 : 0;
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

int lg_tls_new(lg_tls_t **out, SSL_CTX *ctx, const char *sni, size_t sni_len, const uint8_t *alpn,
               size_t alpn_len)
{
    *out = NULL;
    pthread_once(&bio_once, bio_method_init);
    if (bio_method == NULL) return -ENOMEM;
    lg_tls_t *t = lg_calloc(1, sizeof(*t));
    if (t == NULL) return -ENOMEM;
    t->alpn = alpn;
    t->alpn_len = alpn_len;
    if (sni != NULL && sni_len > 0 && sni_len <= LG_TLS_MAX_SNI) {
        if ((t->sni = lg_malloc(sni_len + 1)) == NULL) {
            lg_free(t);
            return -ENOMEM;
        }
        memcpy(t->sni, sni, sni_len);
        t->sni[sni_len] = '\0';
        t->sni_len = (uint8_t)sni_len;
    }
    t->ssl = SSL_new(ctx);
    BIO *bio = BIO_new(bio_method);
    if (t->ssl == NULL || bio == NULL) {
        BIO_free(bio);
        SSL_free(t->ssl);
        lg_free(t->sni);
        lg_free(t);
        ERR_clear_error();
        return -ENOMEM;
    }
    BIO_set_data(bio, t);
    SSL_set_bio(t->ssl, bio, bio); /* the SSL owns one reference, used both ways */
    SSL_set_app_data(t->ssl, t);
    SSL_set_accept_state(t->ssl);
    *out = t;
    return 0;
}

int lg_tls_new_client(lg_tls_t **out, SSL_CTX *ctx, const char *servername, bool check_name,
                      const uint8_t *tag, SSL_SESSION *session,
                      void (*sink)(void *arg, SSL_SESSION *s), void *sink_arg)
{
    int rc = lg_tls_new(out, ctx, NULL, 0, NULL, 0);
    if (rc != 0) return rc;
    lg_tls_t *t = *out;
    t->client = true;
    t->sink = sink;
    t->sink_arg = sink_arg;
    SSL_set_connect_state(t->ssl);
    bool ok = true;
    if (servername != NULL && servername[0] != '\0') {
        unsigned char ip[16];
        bool literal =
            inet_pton(AF_INET, servername, ip) == 1 || inet_pton(AF_INET6, servername, ip) == 1;
        if (!literal) ok = SSL_set_tlsext_host_name(t->ssl, servername) == 1;
        if (ok && check_name) {
            ok = literal ? X509_VERIFY_PARAM_set1_ip_asc(SSL_get0_param(t->ssl), servername) == 1
                         : SSL_set1_host(t->ssl, servername) == 1;
        }
    }
    if (ok && tag != NULL) ok = SSL_set_session_id_context(t->ssl, tag, 32) == 1;
    if (ok && session != NULL) ok = SSL_set_session(t->ssl, session) == 1;
    if (!ok) {
        ERR_clear_error();
        lg_tls_free(t);
        *out = NULL;
        return -ENOMEM;
    }
    return 0;
}

int lg_tls_start(lg_tls_t *t, lg_tls_io_t *io)
{
    return lg_tls_feed(t, io, NULL, 0);
}

int lg_tls_new_session_cb(SSL *ssl, SSL_SESSION *s)
{
    lg_tls_t *t = SSL_get_app_data(ssl);
    if (t == NULL || t->sink == NULL) return 0;
    t->sink(t->sink_arg, s); /* takes the reference */
    return 1;
}

void lg_tls_keep_session(lg_tls_t *t)
{
    if (t != NULL) t->keep_session = true;
}

void lg_tls_free(lg_tls_t *t)
{
    if (t == NULL) return;
    /* OpenSSL's SSL_free removes from the server's session cache the session of a connection
     * that did not send close_notify (ssl_clear_bad_session): TLS 1.0's rule. Since TLS 1.1
     * "failure to properly close a connection no longer requires that a session not be resumed"
     * (RFC 4346 and RFC 5246, §7.2.1), and curl and browsers close without close_notify, so the
     * TLS 1.2 session-ID cache lost nearly every session. A connection that ended without a
     * fault is marked as if close_notify had gone out (nothing is written: SSL_free follows), as
     * nginx does. One that failed is not marked and loses its session, as OpenSSL already ensures
     * when a fatal alert is sent or received. */
    if (t->ssl != NULL && t->keep_session && t->handshake_done && t->violation == 0) {
        SSL_set_shutdown(t->ssl, SSL_get_shutdown(t->ssl) | SSL_SENT_SHUTDOWN);
    }
    SSL_free(t->ssl);
    if (t->rec != NULL) {
        lg_rec_free(t->rec);
        lg_free(t->rec);
    }
    if (t->sec != NULL) {
        OPENSSL_cleanse(t->sec, sizeof(*t->sec));
        lg_free(t->sec);
    }
    lg_free(t->ku_times);
    lg_free(t->sni);
    lg_free(t);
}

bool lg_tls_handshake_done(const lg_tls_t *t)
{
    return t->handshake_done;
}

bool lg_tls_peer_closed(const lg_tls_t *t)
{
    return t->peer_closed;
}

bool lg_tls_resumed(const lg_tls_t *t)
{
    return t->ssl == NULL ? t->resumed : SSL_session_reused(t->ssl) == 1;
}

bool lg_tls_record_pending(const lg_tls_t *t)
{
    if (t->rec != NULL) return lg_rec_partial(t->rec);
    return t->ssl != NULL && SSL_has_pending(t->ssl) == 1;
}

bool lg_tls_own_records(const lg_tls_t *t)
{
    return t->rec != NULL;
}

static int hexval(char ch)
{
    if (ch >= '0' && ch <= '9') return ch - '0';
    if (ch >= 'a' && ch <= 'f') return ch - 'a' + 10;
    if (ch >= 'A' && ch <= 'F') return ch - 'A' + 10;
    return -1;
}

void lg_tls_keylog_cb(const SSL *ssl, const char *line)
{
    static const char client_label[] = "CLIENT_TRAFFIC_SECRET_0 ";
    static const char server_label[] = "SERVER_TRAFFIC_SECRET_0 ";
    lg_tls_t *t = SSL_get_app_data(ssl);
    if (t == NULL || t->client || t->handshake_done) return;
    bool is_client = strncmp(line, client_label, sizeof(client_label) - 1) == 0;
    if (!is_client && strncmp(line, server_label, sizeof(server_label) - 1) != 0) return;
    const char *p = strchr(line + sizeof(client_label) - 1, ' '); /* after the client random */
    if (p == NULL) return;
    p++;
    size_t hex = strlen(p);
    if (hex % 2 != 0 || hex / 2 > LG_REC_MAX_SECRET || hex == 0) return;
    if (t->sec == NULL && (t->sec = lg_calloc(1, sizeof(*t->sec))) == NULL) return;
    uint8_t *dst = is_client ? t->sec->client : t->sec->server;
    for (size_t i = 0; i < hex / 2; i++) {
        int hi = hexval(p[2 * i]), lo = hexval(p[2 * i + 1]);
        if (hi < 0 || lo < 0) return;
        dst[i] = (uint8_t)(hi << 4 | lo);
    }
    if (is_client) {
        t->sec->client_len = (uint8_t)(hex / 2);
    } else {
        t->sec->server_len = (uint8_t)(hex / 2);
        t->sec->tx_records = 0; /* from here on OpenSSL seals with this key */
    }
}

/* The switch (see the top of this file); the connection stays on OpenSSL when it cannot be. */
static void own_records(lg_tls_t *t)
{
    lg_tls_secrets_t *sec = t->sec;
    SSL *ssl = t->ssl;
    if (sec == NULL || t->client || SSL_version(ssl) != TLS1_3_VERSION || SSL_has_pending(ssl) ||
        t->out_failed || t->violation != 0 || SSL_get_shutdown(ssl) != 0 || sec->client_len == 0 ||
        sec->client_len != sec->server_len) {
        return;
    }
    const SSL_CIPHER *c = SSL_get_current_cipher(ssl);
    int suite = 0;
    switch (c != NULL ? SSL_CIPHER_get_id(c) : 0) {
    case TLS1_3_CK_AES_128_GCM_SHA256:
        suite = LG_REC_AES_128_GCM;
        break;
    case TLS1_3_CK_AES_256_GCM_SHA384:
        suite = LG_REC_AES_256_GCM;
        break;
    case TLS1_3_CK_CHACHA20_POLY1305_SHA256:
        suite = LG_REC_CHACHA20_POLY1305;
        break;
    default:
        return;
    }
    /* The selected protocol, found in the route's list (which outlives the state). */
    const unsigned char *sel = NULL;
    unsigned sel_len = 0;
    SSL_get0_alpn_selected(ssl, &sel, &sel_len);
    const uint8_t *alpn_sel = NULL;
    for (size_t i = 0; sel_len > 0 && i < t->alpn_len; i += 1 + (size_t)t->alpn[i]) {
        if (t->alpn[i] == sel_len && i + 1 + sel_len <= t->alpn_len &&
            memcmp(t->alpn + i + 1, sel, sel_len) == 0) {
            alpn_sel = t->alpn + i + 1;
            break;
        }
    }
    if (sel_len > 0 && alpn_sel == NULL) return;
    lg_rec_t *rec = lg_calloc(1, sizeof(*rec));
    if (rec == NULL) return;
    if (lg_rec_init(rec, suite, sec->client, sec->server, sec->client_len, sec->tx_records) !=
        LG_REC_OK) {
        lg_rec_free(rec);
        lg_free(rec);
        ERR_clear_error();
        return;
    }
    X509 *peer = SSL_get0_peer_certificate(ssl);
    t->cert_seen = peer != NULL;
    t->cert_ok = peer != NULL && SSL_get_verify_result(ssl) == X509_V_OK;
    t->resumed = SSL_session_reused(ssl) == 1;
    t->cipher_name = SSL_CIPHER_get_name(c);
    t->alpn_sel = alpn_sel;
    t->alpn_sel_len = (uint8_t)sel_len;
    t->rec = rec;
    OPENSSL_cleanse(sec, sizeof(*sec));
    lg_free(sec);
    t->sec = NULL;
    SSL_free(ssl);
    t->ssl = NULL;
}

static int rec_keyupdate(void *arg);

/* Map an lg_rec result. */
static int rec_result(int rc)
{
    switch (rc) {
    case LG_REC_OK:
        return LG_TLS_OK;
    case LG_REC_E_NOMEM:
        return LG_TLS_E_NOMEM;
    case LG_REC_E_REFUSED:
        return LG_TLS_E_KEYUPDATE;
    default:
        return LG_TLS_E_PROTOCOL;
    }
}

/* Run an lg_rec call with io's queues; its counts are added to io's. */
static lg_rec_io_t rec_io(lg_tls_t *t, const lg_tls_io_t *io)
{
    return (lg_rec_io_t){io->pool, io->cipher, io->plain, 0, 0, rec_keyupdate, t};
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

/* Decrypt everything OpenSSL can give into io->plain. Returns LG_TLS_OK or a failure. */
static int drain_plaintext(lg_tls_t *t, lg_tls_io_t *io)
{
    for (;;) {
        if (t->violation) return t->violation;
        lg_buf_t *b = lg_buf_get(io->pool);
        if (b == NULL) return LG_TLS_E_NOMEM;
        ERR_clear_error();
        int n = SSL_read(t->ssl, b->data, (int)b->cap);
        if (t->violation) {
            lg_buf_put(io->pool, b);
            return t->violation;
        }
        if (n > 0) {
            b->len = (uint32_t)n;
            lg_bufq_push(io->plain, io->pool, b);
            io->plain_new += (size_t)n;
            continue;
        }
        lg_buf_put(io->pool, b);
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

int lg_tls_feed(lg_tls_t *t, lg_tls_io_t *io, const uint8_t *data, size_t len)
{
    t->io = io;
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
        /* Only TLS 1.3 can bring a second ClientHello (after a HelloRetryRequest) whose SNI the
         * router never saw. A TLS 1.2 handshake has one, the one routed; and for a resumed TLS
         * 1.2 session OpenSSL reports the session's own SNI, not this hello's. */
        bool sni_ok = t->client || SSL_version(t->ssl) < TLS1_3_VERSION || sni_matches(t);
        lg_free(t->sni); /* the check is done: an idle connection does not keep the name */
        t->sni = NULL;
        if (!sni_ok) {
            rc = LG_TLS_E_SNI;
            goto out;
        }
        rc = LG_TLS_READY;
        own_records(t);
        if (t->sec != NULL) { /* stayed on OpenSSL: the secrets are not needed any more */
            OPENSSL_cleanse(t->sec, sizeof(*t->sec));
            lg_free(t->sec);
            t->sec = NULL;
        }
    }
    if (t->rec != NULL) {
        lg_rec_io_t rio = rec_io(t, io);
        int r = lg_rec_read(t->rec, &rio, t->in, t->in_len);
        io->cipher_new += rio.cipher_new;
        io->plain_new += rio.plain_new;
        t->peer_closed = t->rec->closed;
        if (r != LG_REC_OK) rc = rec_result(r);
    } else if (!t->peer_closed) {
        int d = drain_plaintext(t, io);
        if (d != LG_TLS_OK) rc = d;
    }
out:
    t->in = NULL;
    t->in_len = 0;
    t->io = NULL;
    return rc;
}

int lg_tls_encrypt(lg_tls_t *t, lg_tls_io_t *io, const uint8_t *data, size_t len)
{
    if (t->rec != NULL) {
        lg_rec_io_t rio = rec_io(t, io);
        int r = lg_rec_write(t->rec, &rio, data, len);
        io->cipher_new += rio.cipher_new;
        return rec_result(r);
    }
    int rc = LG_TLS_OK;
    t->io = io;
    while (len > 0) {
        ERR_clear_error();
        int chunk = (int)LG_MIN(len, (size_t)INT32_MAX);
        int n = SSL_write(t->ssl, data, chunk);
        if (n <= 0 || t->out_failed) {
            ERR_clear_error();
            rc = t->out_failed ? LG_TLS_E_NOMEM : LG_TLS_E_PROTOCOL;
            break;
        }
        data += n;
        len -= (size_t)n;
    }
    t->io = NULL;
    return rc;
}

void lg_tls_close_notify(lg_tls_t *t, lg_tls_io_t *io)
{
    if (t->close_sent || !t->handshake_done) return;
    t->close_sent = true;
    if (t->rec != NULL) {
        lg_rec_io_t rio = rec_io(t, io);
        if (lg_rec_close_notify(t->rec, &rio) != LG_REC_OK) t->out_failed = true;
        io->cipher_new += rio.cipher_new;
        return;
    }
    t->io = io;
    ERR_clear_error();
    SSL_shutdown(t->ssl); /* queues close_notify through the BIO; we do not wait for the peer's */
    ERR_clear_error();
    t->io = NULL;
}

int lg_tls_alpn_select(SSL *ssl, const unsigned char **out, unsigned char *outlen,
                       const unsigned char *in, unsigned int inlen, void *arg)
{
    (void)arg;
    lg_tls_t *t = SSL_get_app_data(ssl);
    if (t == NULL || t->alpn_len == 0) return SSL_TLSEXT_ERR_NOACK;
    unsigned char *sel = NULL;
    unsigned char sel_len = 0;
    /* Server preference: the first protocol of the route's list that the client offers. */
    if (SSL_select_next_proto(&sel, &sel_len, t->alpn, (unsigned int)t->alpn_len, in, inlen) !=
        OPENSSL_NPN_NEGOTIATED) {
        return SSL_TLSEXT_ERR_NOACK; /* no common protocol: continue without ALPN */
    }
    *out = sel;
    *outlen = sel_len;
    return SSL_TLSEXT_ERR_OK;
}

/* Milliseconds of the monotonic clock, wrapping every ~49 days (only differences are used). */
static uint32_t now_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint32_t)((uint64_t)ts.tv_sec * 1000u + (uint64_t)ts.tv_nsec / 1000000u);
}

/* Record one KeyUpdate; returns the violation to flag (0 for none). The limit is a rate over a
 * sliding window: the ring holds the arrival times of the last LG_TLS_MAX_KEYUPDATES updates, and
 * update n is refused when update n - LG_TLS_MAX_KEYUPDATES arrived less than
 * LG_TLS_KEYUPDATE_WINDOW_MS earlier, i.e. more than LG_TLS_MAX_KEYUPDATES in one window. A
 * long-lived connection that rekeys now and then is never cut. */
static int keyupdate_seen(lg_tls_t *t);

/* lg_rec_io_t.keyupdate: the same rate as on OpenSSL's path. */
static int rec_keyupdate(void *arg)
{
    int rc = keyupdate_seen(arg);
    return rc == LG_TLS_E_NOMEM ? -1 : rc;
}

static int keyupdate_seen(lg_tls_t *t)
{
    if (t->ku_times == NULL) {
        t->ku_times = lg_calloc(LG_TLS_MAX_KEYUPDATES, sizeof(*t->ku_times));
        if (t->ku_times == NULL) return LG_TLS_E_NOMEM;
    }
    uint32_t now = now_ms();
    uint32_t slot = t->keyupdates % LG_TLS_MAX_KEYUPDATES;
    bool over = t->keyupdates >= LG_TLS_MAX_KEYUPDATES &&
                (uint32_t)(now - t->ku_times[slot]) < LG_TLS_KEYUPDATE_WINDOW_MS;
    t->ku_times[slot] = now;
    t->keyupdates++;
    return over ? LG_TLS_E_KEYUPDATE : 0;
}

void lg_tls_msg_cb(int write_p, int version, int content_type, const void *buf, size_t len,
                   SSL *ssl, void *arg)
{
    (void)version;
    (void)arg;
    lg_tls_t *t = SSL_get_app_data(ssl);
    if (write_p) {
        /* Count the records sealed with the server's application key (lg_tls_keylog_cb). */
        if (t != NULL && content_type == SSL3_RT_HEADER && t->sec != NULL && t->sec->server_len) {
            t->sec->tx_records++;
        }
        return;
    }
    if (len < 1 || t == NULL || !t->handshake_done) return;
    uint8_t first = ((const uint8_t *)buf)[0];
    if (content_type == SSL3_RT_HEADER && first == SSL3_RT_HANDSHAKE &&
        SSL_version(ssl) < TLS1_3_VERSION) {
        /* A handshake record from a TLS 1.2 client after the handshake can only start a
         * renegotiation. SSL_OP_NO_RENEGOTIATION already refuses it; the connection is closed
         * too, as HAProxy and nginx do. (Judged on the record header because OpenSSL answers
         * such a ClientHello with an alert without handing it to the state machine.) */
        t->violation = LG_TLS_E_RENEGOTIATION;
    } else if (content_type == SSL3_RT_HANDSHAKE && first == SSL3_MT_KEY_UPDATE &&
               t->violation == 0) {
        t->violation = keyupdate_seen(t);
    }
}

void lg_tls_info(const lg_tls_t *t, lg_tls_info_t *out)
{
    memset(out, 0, sizeof(*out));
    if (t->ssl == NULL) {
        out->version = t->rec != NULL ? "TLSv1.3" : NULL;
        out->cipher = t->cipher_name;
        out->alpn = t->alpn_sel;
        out->alpn_len = t->alpn_sel_len;
        out->client_cert = t->cert_seen;
        out->client_verified = t->cert_ok;
        return;
    }
    out->version = SSL_get_version(t->ssl);
    const SSL_CIPHER *c = SSL_get_current_cipher(t->ssl);
    out->cipher = c != NULL ? SSL_CIPHER_get_name(c) : NULL;
    SSL_get0_alpn_selected(t->ssl, &out->alpn, &out->alpn_len);
    X509 *peer = SSL_get0_peer_certificate(t->ssl);
    out->client_cert = peer != NULL;
    out->client_verified = peer != NULL && SSL_get_verify_result(t->ssl) == X509_V_OK;
}
