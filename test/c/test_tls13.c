/*
 * test_tls13.c — lg_tls hands a TLS 1.3 connection to lg_rec after the handshake, and an
 * OpenSSL client cannot tell (src/lg_tls.c "the switch", src/lg_rec.c).
 *
 * An OpenSSL client (memory BIOs) and an lg_tls server exchange every byte in process. For each
 * TLS 1.3 suite and 0, 2 and 5 session tickets (the write sequence lg_rec starts from): the
 * server switches (its SSL object is freed), application data the client sends right behind its
 * Finished arrives, 100,000 bytes go each way, a KeyUpdate the client requests is answered (the
 * client reads the server's data under the server's new key), lg_tls_info still reports what
 * was negotiated (version, cipher, ALPN), and close_notify goes both ways. A TLS 1.2 client
 * stays on OpenSSL and is served the same. A resumed session switches too.
 *
 * LG_TEST_LIBS: -lssl -lcrypto
 */
#include "../../src/lg_buf.c"
#include "../../src/lg_rec.c"
#include "../../src/lg_tls.c"

#include <openssl/ec.h>
#include <openssl/x509.h>
#include <stdlib.h>

#include "lg_test.h"

static const uint8_t ALPN[] = {2, 'h', '2', 8, 'h', 't', 't', 'p', '/', '1', '.', '1'};

static SSL_CTX *server_ctx(int tickets)
{
    SSL_CTX *ctx = SSL_CTX_new(TLS_server_method());
    EVP_PKEY *key = EVP_EC_gen("P-256");
    X509 *x = X509_new();
    ASN1_INTEGER_set(X509_get_serialNumber(x), 1);
    X509_gmtime_adj(X509_getm_notBefore(x), -60);
    X509_gmtime_adj(X509_getm_notAfter(x), 3600);
    X509_set_pubkey(x, key);
    X509_NAME *name = X509_get_subject_name(x);
    X509_NAME_add_entry_by_txt(name, "CN", MBSTRING_ASC, (const unsigned char *)"t.test", -1, -1,
                               0);
    X509_set_issuer_name(x, name);
    X509_sign(x, key, EVP_sha256());
    SSL_CTX_use_certificate(ctx, x);
    SSL_CTX_use_PrivateKey(ctx, key);
    X509_free(x);
    EVP_PKEY_free(key);
    SSL_CTX_set_min_proto_version(ctx, TLS1_2_VERSION);
    SSL_CTX_set_mode(ctx, SSL_MODE_RELEASE_BUFFERS);
    SSL_CTX_set_num_tickets(ctx, (size_t)tickets);
    SSL_CTX_set_session_id_context(ctx, (const unsigned char *)"t", 1);
    SSL_CTX_set_alpn_select_cb(ctx, lg_tls_alpn_select, NULL);
    SSL_CTX_set_msg_callback(ctx, lg_tls_msg_cb);
    SSL_CTX_set_keylog_callback(ctx, lg_tls_keylog_cb);
    return ctx;
}

typedef struct side_s {
    SSL *ssl;      /* the client */
    BIO *in, *out; /* the client reads from in, writes to out */
    lg_tls_t *t;   /* the server */
    lg_bufpool_t pool;
    lg_bufq_t cipher, plain; /* server -> client ciphertext; plaintext the server read */
    int last;                /* last lg_tls_feed result */
    bool ready;
} side_t;

static lg_tls_io_t io_of(side_t *s)
{
    return (lg_tls_io_t){&s->pool, &s->cipher, &s->plain, 0, 0};
}

/* The server's queued ciphertext to the client. */
static void to_client(side_t *s)
{
    for (lg_buf_t *b = s->cipher.head; b; b = b->next)
        BIO_write(s->in, b->data + b->off, (int)b->len);
    lg_bufq_clear(&s->cipher, &s->pool);
}

/* The client's pending output to the server. */
static int to_server(side_t *s)
{
    uint8_t buf[65536];
    int n;
    while ((n = BIO_read(s->out, buf, sizeof(buf))) > 0) {
        lg_tls_io_t io = io_of(s);
        s->last = lg_tls_feed(s->t, &io, buf, (size_t)n);
        if (s->last == LG_TLS_READY) s->ready = true;
        if (s->last != LG_TLS_OK && s->last != LG_TLS_READY) return s->last;
    }
    return LG_TLS_OK;
}

static bool side_init(side_t *s, SSL_CTX *sctx, SSL_CTX *cctx, SSL_SESSION *sess)
{
    memset(s, 0, sizeof(*s));
    lg_bufpool_init(&s->pool, 65536);
    if (lg_tls_new(&s->t, sctx, NULL, 0, ALPN, sizeof(ALPN)) != 0) return false;
    s->ssl = SSL_new(cctx);
    s->in = BIO_new(BIO_s_mem());
    s->out = BIO_new(BIO_s_mem());
    SSL_set_bio(s->ssl, s->in, s->out);
    SSL_set_connect_state(s->ssl);
    if (sess != NULL) SSL_set_session(s->ssl, sess);
    static const uint8_t offer[] = {8, 'h', 't', 't', 'p', '/', '1', '.', '1'};
    SSL_set_alpn_protos(s->ssl, offer, sizeof(offer));
    /* Handshake; the client writes 300 bytes right behind its Finished, fed in the same call. */
    for (int i = 0; i < 10 && !SSL_is_init_finished(s->ssl); i++) {
        SSL_do_handshake(s->ssl);
        if (SSL_is_init_finished(s->ssl)) {
            uint8_t early[300];
            memset(early, 'e', sizeof(early));
            if (SSL_write(s->ssl, early, sizeof(early)) != (int)sizeof(early)) return false;
        }
        if (to_server(s) != LG_TLS_OK) return false;
        to_client(s);
    }
    return s->ready && s->plain.bytes == 300;
}

static void side_free(side_t *s)
{
    SSL_free(s->ssl);
    lg_tls_free(s->t);
    lg_bufq_clear(&s->cipher, &s->pool);
    lg_bufq_clear(&s->plain, &s->pool);
    lg_bufpool_destroy(&s->pool);
}

/* n bytes each way; returns false on any mismatch. */
static bool exchange(side_t *s, size_t n)
{
    uint8_t *data = malloc(n), *got = malloc(n);
    for (size_t i = 0; i < n; i++)
        data[i] = (uint8_t)(i * 7 + 3);
    lg_bufq_clear(&s->plain, &s->pool);
    bool ok = SSL_write(s->ssl, data, (int)n) == (int)n && to_server(s) == LG_TLS_OK &&
              s->plain.bytes == n;
    size_t off = 0;
    for (lg_buf_t *b = s->plain.head; ok && b; b = b->next) {
        ok = memcmp(b->data + b->off, data + off, b->len) == 0;
        off += b->len;
    }
    lg_bufq_clear(&s->plain, &s->pool);
    lg_tls_io_t io = io_of(s);
    size_t before = s->cipher.bytes; /* a KeyUpdate answer may be queued already */
    ok = ok && lg_tls_encrypt(s->t, &io, data, n) == LG_TLS_OK &&
         io.cipher_new == s->cipher.bytes - before;
    to_client(s);
    size_t have = 0;
    while (ok && have < n) {
        int r = SSL_read(s->ssl, got + have, (int)(n - have));
        if (r <= 0) break;
        have += (size_t)r;
    }
    ok = ok && have == n && memcmp(got, data, n) == 0;
    free(data);
    free(got);
    return ok;
}

static bool closes_both_ways(side_t *s)
{
    SSL_shutdown(s->ssl); /* the client's close_notify */
    if (to_server(s) != LG_TLS_OK || !lg_tls_peer_closed(s->t)) return false;
    lg_tls_io_t io = io_of(s);
    lg_tls_close_notify(s->t, &io);
    to_client(s);
    uint8_t b[16];
    return SSL_read(s->ssl, b, sizeof(b)) == 0 && SSL_get_error(s->ssl, 0) == SSL_ERROR_ZERO_RETURN;
}

LG_TEST(tls13_every_suite_and_ticket_count)
{
    const char *suites[] = {"TLS_AES_128_GCM_SHA256", "TLS_AES_256_GCM_SHA384",
                            "TLS_CHACHA20_POLY1305_SHA256"};
    const int tickets[] = {0, 2, 5};
    for (int i = 0; i < 3; i++) {
        for (int k = 0; k < 3; k++) {
            SSL_CTX *sctx = server_ctx(tickets[k]);
            SSL_CTX *cctx = SSL_CTX_new(TLS_client_method());
            SSL_CTX_set_ciphersuites(cctx, suites[i]);
            side_t s;
            bool ok = side_init(&s, sctx, cctx, NULL);
            bool own = ok && lg_tls_own_records(s.t) && s.t->ssl == NULL;
            lg_tls_info_t info;
            if (ok) lg_tls_info(s.t, &info);
            bool info_ok = ok && strcmp(info.version, "TLSv1.3") == 0 &&
                           strcmp(info.cipher, suites[i]) == 0 && info.alpn_len == 8 &&
                           memcmp(info.alpn, "http/1.1", 8) == 0 && !info.client_cert;
            bool data_ok = ok && exchange(&s, 100000) && exchange(&s, 1);
            /* a KeyUpdate the client requests: both sides roll, data still flows both ways */
            bool ku_ok = data_ok && SSL_key_update(s.ssl, SSL_KEY_UPDATE_REQUESTED) == 1 &&
                         exchange(&s, 5000) && exchange(&s, 20000);
            bool close_ok = ku_ok && closes_both_ways(&s);
            side_free(&s);
            SSL_CTX_free(sctx);
            SSL_CTX_free(cctx);
            if (!(ok && own && info_ok && data_ok && ku_ok && close_ok)) {
                fprintf(stderr,
                        "  suite %s tickets %d: ok %d own %d info %d data %d ku %d close %d\n",
                        suites[i], tickets[k], ok, own, info_ok, data_ok, ku_ok, close_ok);
            }
            CHECK(ok && own && info_ok && data_ok && ku_ok && close_ok);
        }
    }
}

LG_TEST(tls12_stays_on_openssl)
{
    SSL_CTX *sctx = server_ctx(2);
    SSL_CTX *cctx = SSL_CTX_new(TLS_client_method());
    SSL_CTX_set_max_proto_version(cctx, TLS1_2_VERSION);
    side_t s;
    bool ok = side_init(&s, sctx, cctx, NULL);
    bool own = ok && lg_tls_own_records(s.t);
    lg_tls_info_t info;
    if (ok) lg_tls_info(s.t, &info);
    bool data_ok = ok && strcmp(info.version, "TLSv1.2") == 0 && exchange(&s, 100000);
    bool close_ok = data_ok && closes_both_ways(&s);
    side_free(&s);
    SSL_CTX_free(sctx);
    SSL_CTX_free(cctx);
    CHECK(ok && !own && data_ok && close_ok);
}

LG_TEST(resumed_session_switches_too)
{
    SSL_CTX *sctx = server_ctx(2);
    SSL_CTX *cctx = SSL_CTX_new(TLS_client_method());
    SSL_CTX_set_session_cache_mode(cctx, SSL_SESS_CACHE_CLIENT);
    side_t s;
    CHECK(side_init(&s, sctx, cctx, NULL));
    bool first = exchange(&s, 10); /* the client reads its tickets with the data */
    SSL_SESSION *sess = SSL_get1_session(s.ssl);
    first = first && closes_both_ways(&s); /* (a session not shut down cleanly is dropped) */
    side_free(&s);
    side_t r;
    memset(&r, 0, sizeof(r));
    bool ok = first && sess != NULL && side_init(&r, sctx, cctx, sess);
    bool resumed = ok && lg_tls_resumed(r.t) && lg_tls_own_records(r.t);
    bool data_ok = resumed && exchange(&r, 70000);
    side_free(&r);
    SSL_SESSION_free(sess);
    SSL_CTX_free(sctx);
    SSL_CTX_free(cctx);
    CHECK(ok && resumed && data_ok);
}

/* A TLS 1.3 connection that stays on OpenSSL (here a CCM suite, which lg_rec does not do)
 * drops both application traffic secrets (wiped) once the handshake is done. */
LG_TEST(staying_on_openssl_drops_the_secrets)
{
    SSL_CTX *sctx = server_ctx(2);
    SSL_CTX_set_ciphersuites(sctx, "TLS_AES_128_CCM_SHA256:TLS_AES_128_GCM_SHA256");
    SSL_CTX *cctx = SSL_CTX_new(TLS_client_method());
    SSL_CTX_set_ciphersuites(cctx, "TLS_AES_128_CCM_SHA256");
    side_t s;
    bool ok = side_init(&s, sctx, cctx, NULL);
    bool own = ok && lg_tls_own_records(s.t);
    bool dropped = ok && s.t->sec == NULL;
    bool data_ok = ok && exchange(&s, 1000);
    side_free(&s);
    SSL_CTX_free(sctx);
    SSL_CTX_free(cctx);
    CHECK(ok && !own && data_ok);
    CHECK(dropped);
}

int main(void)
{
    LG_RUN(tls13_every_suite_and_ticket_count);
    LG_RUN(tls12_stays_on_openssl);
    LG_RUN(resumed_session_switches_too);
    LG_RUN(staying_on_openssl_drops_the_secrets);
    LG_TEST_END();
}
