/*
 * lg_rec.h — TLS 1.3 records after the handshake (RFC 8446 §5.1–5.4, §7.1–7.3, §4.6.3) (pure
 * core: libcrypto and lg_buf, no I/O).
 *
 * OpenSSL does a terminated connection's handshake (lg_tls). Once it is done, exchanging
 * application data needs only the two application traffic secrets, so lg_tls hands them to an
 * lg_rec_t and frees the SSL object, which held ≈ 10 KB per connection for the connection's life
 * (see bench/README.md, "idle terminated connection"). lg_rec then:
 *   - reads: splits the peer's bytes into records (a partial record waits in a buffer allocated
 *     only while it is pending; a partial header in the state itself), opens each with the AEAD
 *     directly into the plaintext queue's free space or a pool buffer, strips the padding and
 *     appends the application data; close_notify ends the stream (later bytes are ignored);
 *     KeyUpdate rolls the read key and, when the peer asks, answers with its own KeyUpdate and
 *     rolls the write key (requests before our next application data share one answer, so the
 *     answers queued toward a peer that does not read are bounded by the data we send it);
 *     anything else is a protocol error (the caller closes);
 *   - writes: seals plaintext into records of at most 16 KiB, in place in the ciphertext queue's
 *     buffers (no intermediate copy), sized down to the room a buffer has.
 * Suites: TLS_AES_128_GCM_SHA256, TLS_AES_256_GCM_SHA384, TLS_CHACHA20_POLY1305_SHA256.
 *
 * Nonces: the per-record nonce is the key's IV XOR the record's sequence number (§5.3); a key's
 * sequence starts at the count of records already protected with it (the caller's) and rolls to
 * 0 with each KeyUpdate. A key is refused past 2^64 - 1 records, so no nonce repeats.
 *
 * Threads: an lg_rec_t belongs to the worker of its connection.
 */
#ifndef LG_REC_H
#define LG_REC_H

#include "lg_buf.h"
#include "lg_common.h"

#include <openssl/evp.h>

#define LG_REC_HEADER     5                        /* type, legacy version, length */
#define LG_REC_TAG        16                       /* AEAD tag */
#define LG_REC_MAX_PLAIN  16384                    /* 2^14: largest plaintext of a record (§5.1) */
#define LG_REC_MAX_BODY   (LG_REC_MAX_PLAIN + 256) /* largest protected body (§5.2) */
#define LG_REC_OVERHEAD   (LG_REC_HEADER + 1 + LG_REC_TAG) /* a sealed record beyond its data */
#define LG_REC_MAX_SECRET 48                               /* SHA-384 */
/* Records in a row that carry nothing, as OpenSSL counts them (MAX_EMPTY_RECORDS,
 * MAX_WARN_ALERT_COUNT): one more ends the connection with unexpected_message. Without a bound,
 * a 22-byte empty record per idle period would hold a connection and its upstream open. */
#define LG_REC_MAX_EMPTY_RUN    32
#define LG_REC_MAX_CANCELED_RUN 5

enum { LG_REC_AES_128_GCM = 1, LG_REC_AES_256_GCM, LG_REC_CHACHA20_POLY1305 };

/* Results (negative: the connection cannot go on). */
enum {
    LG_REC_OK = 0,
    LG_REC_E_PROTOCOL = -1, /* a record or message the protocol does not allow; a bad tag */
    LG_REC_E_NOMEM = -2,
    LG_REC_E_REFUSED = -3, /* the keyupdate callback refused a KeyUpdate */
};

/* One direction's key. */
typedef struct lg_rec_key_s {
    EVP_CIPHER_CTX *ctx; /* the AEAD with this key; the nonce is set per record */
    uint64_t seq;        /* records protected with this key so far */
    uint8_t secret[LG_REC_MAX_SECRET];
    uint8_t iv[12];
} lg_rec_key_t;

/* Owner: lg_tls; zero-initialise, lg_rec_init, lg_rec_free. */
typedef struct lg_rec_s {
    lg_rec_key_t rx, tx;
    uint8_t *part;     /* a partial record from the peer, header included (while one is pending) */
    uint16_t part_len; /* bytes in part */
    uint8_t hdr[LG_REC_HEADER]; /* a partial header (before part is allocated) */
    uint8_t hdr_len;
    uint8_t suite;
    bool closed;          /* close_notify received */
    bool close_sent;      /* close_notify sealed */
    uint8_t empty_run;    /* records in a row that carried nothing (empty application data) */
    uint8_t canceled_run; /* user_canceled alerts in a row */
    /* Our KeyUpdate answer is sealed and no application data since: a further update_requested
     * is answered by it (§4.6.3: "an implementation which receives multiple KeyUpdates while it
     * is silent to respond with a single update"). Without this, a peer that asks again and
     * again but never reads grew its queue by one answer per request. */
    bool ku_answered;
} lg_rec_t;

/* Where a call's output goes; the counters say how many bytes the call appended. */
typedef struct lg_rec_io_s {
    lg_bufpool_t *pool;
    lg_bufq_t *cipher; /* to the peer */
    lg_bufq_t *plain;  /* from the peer, decrypted (NULL for calls that only write) */
    size_t cipher_new, plain_new;
    /* A KeyUpdate arrived: 0 accepts it, > 0 refuses it (LG_REC_E_REFUSED), < 0 could not judge
     * it for lack of memory (LG_REC_E_NOMEM). NULL: always accepted. */
    int (*keyupdate)(void *arg);
    void *arg;
} lg_rec_io_t;

/*
 * Keys from the peer's and our application traffic secrets (secret_len: the suite's hash size,
 * 32 or 48); `tx_seq` records were already sealed with ours (OpenSSL's session tickets), none
 * opened with the peer's. Returns LG_REC_OK, LG_REC_E_NOMEM, or LG_REC_E_PROTOCOL for an unknown
 * suite or a wrong secret size. On failure lg_rec_free still releases what was made.
 */
int lg_rec_init(lg_rec_t *r, int suite, const uint8_t *rx_secret, const uint8_t *tx_secret,
                size_t secret_len, uint64_t tx_seq);
/* Whether part of a record from the peer is buffered (a record still arriving). */
bool lg_rec_partial(const lg_rec_t *r);

/* Release the keys (wiped) and a pending partial record. */
void lg_rec_free(lg_rec_t *r);

/* The peer's bytes: whole records are processed, a partial one is kept for the next call. */
int lg_rec_read(lg_rec_t *r, lg_rec_io_t *io, const uint8_t *data, size_t len);
/* Seal `len` bytes of application data into io->cipher. */
int lg_rec_write(lg_rec_t *r, lg_rec_io_t *io, const uint8_t *data, size_t len);
/* Seal close_notify (once). */
int lg_rec_close_notify(lg_rec_t *r, lg_rec_io_t *io);

/* HKDF-Expand-Label(secret, label, "", out_len) for out_len <= the hash size (§7.1). */
int lg_rec_expand_label(const EVP_MD *md, const uint8_t *secret, size_t secret_len,
                        const char *label, uint8_t *out, size_t out_len);

#endif /* LG_REC_H */
