/*
 * lg_tls.h — TLS termination for one connection, on its worker thread.
 *
 * OpenSSL runs on a custom BIO instead of socket or memory BIOs: its reads come from the
 * ciphertext the relay just read from the client (no copy into a BIO buffer), and its writes are
 * appended straight onto the connection's client-bound flow (u2c), whose bytes the worker's
 * scheduler writes like any other. Nothing is buffered inside the BIO, so an idle connection
 * holds only the SSL object (record buffers are released: SSL_MODE_RELEASE_BUFFERS).
 *
 * Flows of a terminated connection: c2u carries plaintext (decrypted here) to the upstream; u2c
 * carries ciphertext (encrypted here, from the upstream's plaintext) to the client.
 *
 * Hygiene (RFC 5746 / RFC 8446): renegotiation attempts close the connection (TLS 1.2 client
 * ClientHello after the handshake); TLS 1.3 KeyUpdate messages are capped per connection
 * (LG_TLS_MAX_KEYUPDATES); the SNI OpenSSL negotiated must equal the SNI the router used (a
 * second ClientHello after HelloRetryRequest cannot switch tenants).
 */
#ifndef LG_TLS_H
#define LG_TLS_H

#include "lg_common.h"
#include "lg_hello.h"

#include <openssl/ssl.h>

#define LG_TLS_MAX_KEYUPDATES 64 /* KeyUpdate messages accepted per connection */

typedef struct lg_conn_s lg_conn_t;

/* Why a TLS connection failed (feeds the handshakeFailures* and tls* counters). */
enum {
    LG_TLS_OK = 0,
    LG_TLS_READY,            /* lg_tls_feed: the handshake has just completed */
    LG_TLS_E_PROTOCOL,       /* handshake or record error */
    LG_TLS_E_CERTIFICATE,    /* client certificate failed verification */
    LG_TLS_E_NO_CERTIFICATE, /* client certificate required, none given */
    LG_TLS_E_RENEGOTIATION,  /* client tried to renegotiate */
    LG_TLS_E_KEYUPDATE,      /* too many KeyUpdates */
    LG_TLS_E_SNI,            /* negotiated SNI differs from the routed one */
    LG_TLS_E_NOMEM,
};

/* Owner: the connection (freed by lg_tls_free). */
typedef struct lg_tls_s {
    SSL *ssl;
    lg_conn_t *conn;
    const uint8_t *in; /* ciphertext not yet consumed by OpenSSL (valid during a feed only) */
    size_t in_len;
    size_t out_new;      /* ciphertext appended to u2c since the caller last scheduled it */
    const uint8_t *alpn; /* the route's ALPN list, wire format (owned by the snapshot) */
    size_t alpn_len;
    uint32_t keyupdates;
    int violation; /* LG_TLS_E_RENEGOTIATION / _KEYUPDATE seen by the message callback */
    bool handshake_done;
    bool peer_closed; /* close_notify received */
    bool close_sent;  /* close_notify queued */
    bool out_failed;  /* the BIO could not queue ciphertext (out of memory) */
    uint8_t sni_len;
    char sni[LG_HELLO_MAX_SNI + 1]; /* the SNI the router used ("" for none) */
} lg_tls_t;

/* Create the connection's TLS state (c->tls). Returns 0 or -ENOMEM. */
int lg_tls_start(lg_conn_t *c, SSL_CTX *ctx, const char *sni, size_t sni_len, const uint8_t *alpn,
                 size_t alpn_len);

/*
 * Feed ciphertext from the client. Runs the handshake or decrypts; plaintext is appended to
 * c->c2u (the caller schedules it), ciphertext produced (handshake records, alerts) to c->u2c
 * (c->tls->out_new bytes, the caller schedules them). Returns LG_TLS_OK, LG_TLS_READY once when
 * the handshake completes, or an LG_TLS_E_* failure (any alert is already queued to u2c).
 */
int lg_tls_feed(lg_conn_t *c, const uint8_t *data, size_t len);

/* Encrypt plaintext from the upstream onto u2c. Returns LG_TLS_OK or LG_TLS_E_NOMEM. */
int lg_tls_encrypt(lg_conn_t *c, const uint8_t *data, size_t len);

/* Queue close_notify onto u2c (once). */
void lg_tls_close_notify(lg_conn_t *c);

/* Was the session resumed (valid after LG_TLS_READY)? */
bool lg_tls_resumed(const lg_conn_t *c);

void lg_tls_free(lg_conn_t *c);

/*
 * JA3 (32 hex chars of MD5) and JA4 (36 chars) of a parsed ClientHello; both "" when the hello
 * cannot be fingerprinted (a list was truncated: fail closed). The strings come from lg_ja.
 */
void lg_tls_fingerprints(const lg_hello_t *h, char ja3[33], char ja4[40]);

/* Callbacks installed on every context (lg_tls_ctx.c). */
int lg_tls_alpn_select(SSL *ssl, const unsigned char **out, unsigned char *outlen,
                       const unsigned char *in, unsigned int inlen, void *arg);
void lg_tls_msg_cb(int write_p, int version, int content_type, const void *buf, size_t len,
                   SSL *ssl, void *arg);

#endif /* LG_TLS_H */
