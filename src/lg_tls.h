/*
 * lg_tls.h — TLS termination of one connection: bytes in, bytes out.
 *
 * lg_tls knows no connection, socket or scheduler. Each call takes the bytes to process and an
 * lg_tls_io_t naming two byte queues, and appends to them what OpenSSL produced: ciphertext for
 * the client (handshake records, application records, alerts, close_notify) and plaintext
 * decrypted from the client. It returns what happened (handshake completed, failed, peer closed);
 * the caller then schedules the queued bytes. Nothing is written to a socket from inside OpenSSL,
 * so no I/O failure can happen while an SSL_* call is on the stack.
 *
 * OpenSSL runs on a custom BIO: its reads come from the ciphertext being fed (no copy into a BIO
 * buffer) and signal "retry" once it is used up, so every feed consumes its input completely; its
 * writes append to io->cipher. An idle connection holds only the SSL object (record buffers are
 * released: SSL_MODE_RELEASE_BUFFERS in lg_tls_ctx).
 *
 * Hygiene (RFC 5746 / RFC 8446): a TLS 1.2 client's handshake record after the handshake (a
 * renegotiation attempt) fails the connection; TLS 1.3 KeyUpdate messages are limited to a rate
 * (more than LG_TLS_MAX_KEYUPDATES within LG_TLS_KEYUPDATE_WINDOW_MS fails it); the SNI OpenSSL
 * negotiated must equal the SNI the router used (a second ClientHello after HelloRetryRequest
 * cannot switch tenants).
 *
 * Threads: an lg_tls_t belongs to one worker thread. OpenSSL's thread-local error queue is
 * cleared before each operation that inspects it, so one connection's errors never leak into
 * another's.
 */
#ifndef LG_TLS_H
#define LG_TLS_H

#include "lg_buf.h"
#include "lg_common.h"

#include <openssl/ssl.h>

#define LG_TLS_MAX_KEYUPDATES      64   /* KeyUpdate messages accepted per window */
#define LG_TLS_KEYUPDATE_WINDOW_MS 1000 /* ms: the sliding window of that rate */
#define LG_TLS_MAX_SNI             253  /* bytes of the SNI the router used */

/* Results of lg_tls_feed / lg_tls_encrypt (feed the handshakeFailures* and tls* counters). */
enum {
    LG_TLS_OK = 0,
    LG_TLS_READY,            /* lg_tls_feed: the handshake has just completed */
    LG_TLS_E_PROTOCOL,       /* handshake or record error */
    LG_TLS_E_CERTIFICATE,    /* client certificate failed verification */
    LG_TLS_E_NO_CERTIFICATE, /* client certificate required, none given */
    LG_TLS_E_RENEGOTIATION,  /* client tried to renegotiate */
    LG_TLS_E_KEYUPDATE,      /* KeyUpdates faster than the rate */
    LG_TLS_E_SNI,            /* negotiated SNI differs from the routed one */
    LG_TLS_E_NOMEM,
};

/* Owner: the connection; freed with lg_tls_free(). Opaque. */
typedef struct lg_tls_s lg_tls_t;

/* Where a call's output goes. `cipher_new` / `plain_new` count the bytes the call appended. */
typedef struct lg_tls_io_s {
    lg_bufpool_t *pool;
    lg_bufq_t *cipher; /* to the client */
    lg_bufq_t *plain;  /* from the client, decrypted */
    size_t cipher_new, plain_new;
} lg_tls_io_t;

/*
 * A server-side TLS state for a connection routed by `sni` (NULL/0: none) with the route's ALPN
 * list (wire format, owned by the caller and outliving the state). Returns 0 or -ENOMEM.
 */
int lg_tls_new(lg_tls_t **out, SSL_CTX *ctx, const char *sni, size_t sni_len, const uint8_t *alpn,
               size_t alpn_len);

void lg_tls_free(lg_tls_t *t); /* NULL is ignored */

/*
 * The connection ends without a fault (the client's FIN without close_notify, an idle or
 * half-close timeout): lg_tls_free keeps its session in the server's cache for resumption, once
 * the handshake is done and no violation was seen. Not called for errors, resets, or alerts,
 * whose sessions are removed. NULL is ignored.
 */
void lg_tls_keep_session(lg_tls_t *t);

/*
 * A client-side TLS state toward a TLS upstream: `servername` (a host name: sent as SNI; an IP
 * literal: no SNI) is what the certificate must match when `check_name`; `session` (may be
 * NULL) is offered for resumption. The context decides whether the chain is verified.
 * lg_tls_start() then queues the ClientHello; lg_tls_feed() runs the rest (LG_TLS_READY once,
 * LG_TLS_E_CERTIFICATE when verification failed). New sessions go to sink(sink_arg, session)
 * (see lg_tls_new_session_cb; sink may be NULL). `tag` (32 bytes, may be NULL) becomes the
 * session id context of the sessions this state makes: its owner offers a session only to the
 * same tag. Returns 0 or -ENOMEM.
 */
int lg_tls_new_client(lg_tls_t **out, SSL_CTX *ctx, const char *servername, bool check_name,
                      const uint8_t *tag, SSL_SESSION *session,
                      void (*sink)(void *arg, SSL_SESSION *s), void *sink_arg);
int lg_tls_start(lg_tls_t *t, lg_tls_io_t *io);

/* Installed on client contexts: each new session (a TLS 1.2 session, or each TLS 1.3 ticket,
 * which arrive after the handshake) goes to the state's sink, which takes the reference. */
int lg_tls_new_session_cb(SSL *ssl, SSL_SESSION *s);

/*
 * Feed ciphertext from the client: runs the handshake, then decrypts. The input is consumed
 * completely. Returns LG_TLS_OK, LG_TLS_READY once (the handshake completed with this input), or
 * an LG_TLS_E_* failure (an alert, if any, is already appended to io->cipher).
 */
int lg_tls_feed(lg_tls_t *t, lg_tls_io_t *io, const uint8_t *data, size_t len);

/* Encrypt plaintext for the client. Returns LG_TLS_OK, LG_TLS_E_PROTOCOL or LG_TLS_E_NOMEM. */
int lg_tls_encrypt(lg_tls_t *t, lg_tls_io_t *io, const uint8_t *data, size_t len);

/* Append close_notify (once; only after the handshake). */
void lg_tls_close_notify(lg_tls_t *t, lg_tls_io_t *io);

bool lg_tls_handshake_done(const lg_tls_t *t);
bool lg_tls_peer_closed(const lg_tls_t *t); /* close_notify received */
bool lg_tls_resumed(const lg_tls_t *t);
/* True once a TLS 1.3 connection's records are lg_rec's and its SSL object is freed. */
bool lg_tls_own_records(const lg_tls_t *t);
/* Part of a record from the peer is buffered: bytes of a record still arriving. */
bool lg_tls_record_pending(const lg_tls_t *t);

/* What a completed handshake negotiated (for a PROXY protocol v2 header). */
typedef struct lg_tls_info_s {
    const char *version; /* "TLSv1.3", ... (static) */
    const char *cipher;  /* "TLS_AES_128_GCM_SHA256", ... (static) */
    const uint8_t *alpn; /* the protocol selected, alpn_len bytes (0: none) */
    unsigned alpn_len;
    bool client_cert;     /* the client presented a certificate */
    bool client_verified; /* ... and it verified */
} lg_tls_info_t;

void lg_tls_info(const lg_tls_t *t, lg_tls_info_t *out);

/* Callbacks installed on every context (lg_tls_ctx.c). */
int lg_tls_alpn_select(SSL *ssl, const unsigned char **out, unsigned char *outlen,
                       const unsigned char *in, unsigned int inlen, void *arg);
/* Installed on server contexts: keeps a TLS 1.3 connection's application traffic secrets for
 * the switch to lg_rec (lg_tls.c). */
void lg_tls_keylog_cb(const SSL *ssl, const char *line);
void lg_tls_msg_cb(int write_p, int version, int content_type, const void *buf, size_t len,
                   SSL *ssl, void *arg);

#endif /* LG_TLS_H */
