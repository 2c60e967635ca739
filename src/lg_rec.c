/*
 * lg_rec.c — TLS 1.3 records after the handshake (pure core; see lg_rec.h).
 *
 * Reading never hands on a byte before its record's tag is verified: a record is opened into
 * room that is committed to the plaintext queue only after EVP_DecryptFinal_ex succeeds (the
 * queue's free tail space, a pool buffer pushed afterwards, or, when pool buffers are smaller
 * than a record, a scratch allocation copied afterwards).
 */
#include "lg_rec.h"

#include <openssl/core_names.h>
#include <openssl/crypto.h>
#include <openssl/hmac.h>
#include <pthread.h>
#include <string.h>

#define REC_CT_ALERT       21
#define REC_CT_HANDSHAKE   22
#define REC_CT_APPDATA     23
#define REC_KEY_UPDATE     24
#define REC_ALERT_CLOSE    0
#define REC_ALERT_CANCELED 90
/* Fatal alerts legato sends before closing (§6.2). */
#define ALERT_UNEXPECTED     10
#define ALERT_BAD_RECORD_MAC 20
#define ALERT_OVERFLOW       22
#define ALERT_ILLEGAL        47
#define ALERT_DECODE         50

/*
 * The implementations, fetched once per process: OpenSSL 3 looks a name up (string compares, a
 * lock) each time a legacy EVP_aes_*() or a digest name is used, which cost more than the key
 * schedule itself on every connection's hand-over. Never freed, like the providers they come from.
 */
static struct {
    EVP_CIPHER *cipher[4]; /* by suite */
    EVP_MD *md[2];         /* SHA-256, SHA-384 */
    EVP_MAC_CTX *hmac[2];  /* HMAC with that digest, no key: duplicated per use */
} impl;
static pthread_once_t impl_once = PTHREAD_ONCE_INIT;

static void impl_fetch(void)
{
    impl.cipher[LG_REC_AES_128_GCM] = EVP_CIPHER_fetch(NULL, "AES-128-GCM", NULL);
    impl.cipher[LG_REC_AES_256_GCM] = EVP_CIPHER_fetch(NULL, "AES-256-GCM", NULL);
    impl.cipher[LG_REC_CHACHA20_POLY1305] = EVP_CIPHER_fetch(NULL, "ChaCha20-Poly1305", NULL);
    EVP_MAC *mac = EVP_MAC_fetch(NULL, "HMAC", NULL);
    static const char *const names[2] = {"SHA256", "SHA384"};
    for (int i = 0; i < 2; i++) {
        impl.md[i] = EVP_MD_fetch(NULL, names[i], NULL);
        EVP_MAC_CTX *c = mac != NULL ? EVP_MAC_CTX_new(mac) : NULL;
        OSSL_PARAM params[] = {
            OSSL_PARAM_construct_utf8_string(OSSL_MAC_PARAM_DIGEST, (char *)names[i], 0),
            OSSL_PARAM_construct_end(),
        };
        if (c != NULL && EVP_MAC_CTX_set_params(c, params) != 1) {
            EVP_MAC_CTX_free(c);
            c = NULL;
        }
        impl.hmac[i] = c;
    }
    EVP_MAC_free(mac); /* the contexts hold their own reference */
}

static const EVP_MD *suite_md(int suite)
{
    pthread_once(&impl_once, impl_fetch);
    const EVP_MD *md = impl.md[suite == LG_REC_AES_256_GCM ? 1 : 0];
    if (md != NULL) return md;
    return suite == LG_REC_AES_256_GCM ? EVP_sha384() : EVP_sha256();
}

static const EVP_CIPHER *suite_cipher(int suite)
{
    if (suite < LG_REC_AES_128_GCM || suite > LG_REC_CHACHA20_POLY1305) return NULL;
    pthread_once(&impl_once, impl_fetch);
    if (impl.cipher[suite] != NULL) return impl.cipher[suite];
    return suite == LG_REC_AES_128_GCM   ? EVP_aes_128_gcm()
           : suite == LG_REC_AES_256_GCM ? EVP_aes_256_gcm()
                                         : EVP_chacha20_poly1305();
}

/* HMAC(key, data) into out (the digest's size), through the fetched template when there is one. */
static bool rec_hmac(const EVP_MD *md, const uint8_t *key, size_t key_len, const uint8_t *data,
                     size_t n, uint8_t *out, size_t *out_len)
{
    pthread_once(&impl_once, impl_fetch);
    EVP_MAC_CTX *tmpl = EVP_MD_is_a(md, "SHA256")   ? impl.hmac[0]
                        : EVP_MD_is_a(md, "SHA384") ? impl.hmac[1]
                                                    : NULL;
    if (tmpl == NULL) {
        unsigned int got = 0;
        bool ok = HMAC(md, key, (int)key_len, data, n, out, &got) != NULL;
        *out_len = got;
        return ok;
    }
    EVP_MAC_CTX *c = EVP_MAC_CTX_dup(tmpl);
    bool ok = c != NULL && EVP_MAC_init(c, key, key_len, NULL) == 1 &&
              EVP_MAC_update(c, data, n) == 1 &&
              EVP_MAC_final(c, out, out_len, EVP_MAX_MD_SIZE) == 1;
    EVP_MAC_CTX_free(c);
    return ok;
}

int lg_rec_expand_label(const EVP_MD *md, const uint8_t *secret, size_t secret_len,
                        const char *label, uint8_t *out, size_t out_len)
{
    /* HkdfLabel { uint16 length; opaque label<7..255> = "tls13 " + label; opaque context<0..255>
     * = "" }, then the counter byte of HKDF-Expand's first (and only) block. */
    uint8_t info[2 + 1 + 6 + 32 + 1 + 1];
    uint8_t block[EVP_MAX_MD_SIZE];
    size_t ll = strlen(label);
    size_t hl = (size_t)EVP_MD_get_size(md);
    if (ll > 32 || out_len > hl || secret_len > INT32_MAX) return LG_REC_E_PROTOCOL;
    size_t n = 0;
    info[n++] = (uint8_t)(out_len >> 8);
    info[n++] = (uint8_t)out_len;
    info[n++] = (uint8_t)(6 + ll);
    memcpy(info + n, "tls13 ", 6);
    n += 6;
    memcpy(info + n, label, ll);
    n += ll;
    info[n++] = 0; /* empty context */
    info[n++] = 1; /* T(1) */
    size_t got = 0;
    if (!rec_hmac(md, secret, secret_len, info, n, block, &got) || got < out_len) {
        return LG_REC_E_NOMEM;
    }
    memcpy(out, block, out_len);
    OPENSSL_cleanse(block, sizeof(block));
    return LG_REC_OK;
}

/* k's key and IV from its secret; the sequence restarts at `seq`. */
static int key_set(lg_rec_key_t *k, int suite, bool seal, uint64_t seq)
{
    const EVP_MD *md = suite_md(suite);
    const EVP_CIPHER *cipher = suite_cipher(suite);
    size_t hl = (size_t)EVP_MD_get_size(md);
    size_t kl = (size_t)EVP_CIPHER_get_key_length(cipher);
    uint8_t key[32];
    if (kl > sizeof(key)) return LG_REC_E_PROTOCOL;
    int rc = lg_rec_expand_label(md, k->secret, hl, "key", key, kl);
    if (rc == LG_REC_OK) rc = lg_rec_expand_label(md, k->secret, hl, "iv", k->iv, sizeof(k->iv));
    if (rc == LG_REC_OK && k->ctx == NULL && (k->ctx = EVP_CIPHER_CTX_new()) == NULL) {
        rc = LG_REC_E_NOMEM;
    }
    if (rc == LG_REC_OK && EVP_CipherInit_ex(k->ctx, cipher, NULL, key, NULL, seal ? 1 : 0) != 1) {
        rc = LG_REC_E_NOMEM;
    }
    OPENSSL_cleanse(key, sizeof(key));
    k->seq = seq;
    return rc;
}

/* KeyUpdate (§7.2): the next secret is HKDF-Expand-Label(secret, "traffic upd", "", Hash.len). */
static int key_update(lg_rec_key_t *k, int suite, bool seal)
{
    const EVP_MD *md = suite_md(suite);
    size_t hl = (size_t)EVP_MD_get_size(md);
    uint8_t next[LG_REC_MAX_SECRET];
    int rc = lg_rec_expand_label(md, k->secret, hl, "traffic upd", next, hl);
    if (rc != LG_REC_OK) return rc;
    memcpy(k->secret, next, hl);
    OPENSSL_cleanse(next, sizeof(next));
    return key_set(k, suite, seal, 0);
}

int lg_rec_init(lg_rec_t *r, int suite, const uint8_t *rx_secret, const uint8_t *tx_secret,
                size_t secret_len, uint64_t tx_seq)
{
    if (suite_cipher(suite) == NULL || secret_len != (size_t)EVP_MD_get_size(suite_md(suite))) {
        return LG_REC_E_PROTOCOL;
    }
    r->suite = (uint8_t)suite;
    memcpy(r->rx.secret, rx_secret, secret_len);
    memcpy(r->tx.secret, tx_secret, secret_len);
    int rc = key_set(&r->rx, suite, false, 0);
    if (rc == LG_REC_OK) rc = key_set(&r->tx, suite, true, tx_seq);
    return rc;
}

void lg_rec_free(lg_rec_t *r)
{
    EVP_CIPHER_CTX_free(r->rx.ctx);
    EVP_CIPHER_CTX_free(r->tx.ctx);
    lg_free(r->part);
    OPENSSL_cleanse(r, sizeof(*r));
}

static void nonce_of(const lg_rec_key_t *k, uint8_t nonce[12])
{
    memcpy(nonce, k->iv, 12);
    for (int i = 0; i < 8; i++)
        nonce[4 + i] ^= (uint8_t)(k->seq >> (56 - 8 * i));
}

/* Seal one record of content `type` carrying data[0..n) into out (n + LG_REC_OVERHEAD bytes). */
static int seal_one(lg_rec_key_t *k, uint8_t type, const uint8_t *data, size_t n, uint8_t *out)
{
    if (k->seq == UINT64_MAX) return LG_REC_E_PROTOCOL;
    size_t body = n + 1 + LG_REC_TAG;
    out[0] = REC_CT_APPDATA; /* every protected record says application_data outside (§5.2) */
    out[1] = 3;
    out[2] = 3;
    out[3] = (uint8_t)(body >> 8);
    out[4] = (uint8_t)body;
    uint8_t nonce[12];
    nonce_of(k, nonce);
    int l = 0;
    uint8_t *p = out + LG_REC_HEADER;
    bool ok = EVP_EncryptInit_ex(k->ctx, NULL, NULL, NULL, nonce) == 1 &&
              EVP_EncryptUpdate(k->ctx, NULL, &l, out, LG_REC_HEADER) == 1;
    if (ok && n > 0) ok = EVP_EncryptUpdate(k->ctx, p, &l, data, (int)n) == 1 && (size_t)l == n;
    if (ok) ok = EVP_EncryptUpdate(k->ctx, p + n, &l, &type, 1) == 1 && l == 1;
    if (ok) ok = EVP_EncryptFinal_ex(k->ctx, p + n + 1, &l) == 1 && l == 0;
    if (ok) ok = EVP_CIPHER_CTX_ctrl(k->ctx, EVP_CTRL_AEAD_GET_TAG, LG_REC_TAG, p + n + 1) == 1;
    if (!ok) return LG_REC_E_NOMEM;
    k->seq++;
    return LG_REC_OK;
}

/* Seal data into as many records as it takes, appended to io->cipher. */
static int seal(lg_rec_t *r, lg_rec_io_t *io, uint8_t type, const uint8_t *data, size_t len)
{
    while (len > 0) {
        size_t n = LG_MIN(len, (size_t)LG_REC_MAX_PLAIN);
        size_t room = 0;
        uint8_t *dst = lg_bufq_room(io->cipher, &room);
        /* The tail takes the record if it fits, or a shorter one when a large part fits (so
         * buffers fill up); otherwise a new buffer, whose size may also shorten the record. */
        if (dst != NULL && room >= LG_REC_OVERHEAD + n) {
            /* fits */
        } else if (dst != NULL && room >= LG_REC_OVERHEAD + 1024 && type == REC_CT_APPDATA) {
            n = room - LG_REC_OVERHEAD;
        } else {
            lg_buf_t *b = lg_buf_get(io->pool);
            if (b == NULL) return LG_REC_E_NOMEM;
            if (b->cap <= LG_REC_OVERHEAD ||
                (type != REC_CT_APPDATA && b->cap < LG_REC_OVERHEAD + n)) {
                lg_buf_put(io->pool, b);
                return LG_REC_E_NOMEM;
            }
            n = LG_MIN(n, (size_t)b->cap - LG_REC_OVERHEAD);
            int rc = seal_one(&r->tx, type, data, n, b->data);
            if (rc != LG_REC_OK) {
                lg_buf_put(io->pool, b);
                return rc;
            }
            b->len = (uint32_t)(n + LG_REC_OVERHEAD);
            lg_bufq_push(io->cipher, io->pool, b);
            io->cipher_new += n + LG_REC_OVERHEAD;
            data += n;
            len -= n;
            continue;
        }
        int rc = seal_one(&r->tx, type, data, n, dst);
        if (rc != LG_REC_OK) return rc;
        lg_bufq_commit(io->cipher, n + LG_REC_OVERHEAD);
        io->cipher_new += n + LG_REC_OVERHEAD;
        data += n;
        len -= n;
    }
    return LG_REC_OK;
}

bool lg_rec_partial(const lg_rec_t *r)
{
    return r->part != NULL || r->hdr_len > 0;
}

int lg_rec_write(lg_rec_t *r, lg_rec_io_t *io, const uint8_t *data, size_t len)
{
    if (r->close_sent) return LG_REC_E_PROTOCOL; /* nothing after close_notify (§6.1) */
    if (len == 0) return LG_REC_OK;
    r->ku_answered = false; /* data under the new key: the next request gets its own answer */
    return seal(r, io, REC_CT_APPDATA, data, len);
}

int lg_rec_close_notify(lg_rec_t *r, lg_rec_io_t *io)
{
    if (r->close_sent) return LG_REC_OK;
    r->close_sent = true;
    static const uint8_t alert[2] = {1 /* warning */, REC_ALERT_CLOSE};
    return seal(r, io, REC_CT_ALERT, alert, sizeof(alert));
}

/* A fatal alert to the peer (best effort: the connection closes either way), and the failure. */
static int rec_fail(lg_rec_t *r, lg_rec_io_t *io, uint8_t alert)
{
    if (!r->close_sent && io->cipher != NULL) {
        r->close_sent = true;
        const uint8_t a[2] = {2 /* fatal */, alert};
        (void)seal(r, io, REC_CT_ALERT, a, sizeof(a));
    }
    return LG_REC_E_PROTOCOL;
}

/* The body length a record header announces, or -1 when the header is not a protected record's
 * (§5.2: outer type application_data, legacy version 0x0303, 17..2^14+256 bytes). */
static int header_body(const uint8_t *h)
{
    size_t body = ((size_t)h[3] << 8) | h[4];
    if (h[0] != REC_CT_APPDATA || h[1] != 3 || h[2] != 3 || body < 1 + LG_REC_TAG ||
        body > LG_REC_MAX_BODY) {
        return -1;
    }
    return (int)body;
}

static uint8_t header_alert(const uint8_t *h)
{
    size_t body = ((size_t)h[3] << 8) | h[4];
    return body > LG_REC_MAX_BODY  ? ALERT_OVERFLOW
           : body < 1 + LG_REC_TAG ? ALERT_DECODE
                                   : ALERT_UNEXPECTED;
}

/* Open the record rec[0..LG_REC_HEADER + body) into out; returns the inner plaintext length
 * (content, type byte and padding) or -1 when the tag does not verify. */
static int open_one(lg_rec_key_t *k, const uint8_t *rec, size_t body, uint8_t *out)
{
    if (k->seq == UINT64_MAX) return -1;
    size_t n = body - LG_REC_TAG;
    uint8_t nonce[12];
    nonce_of(k, nonce);
    uint8_t tag[LG_REC_TAG];
    memcpy(tag, rec + LG_REC_HEADER + n, LG_REC_TAG);
    int l = 0;
    bool ok = EVP_DecryptInit_ex(k->ctx, NULL, NULL, NULL, nonce) == 1 &&
              EVP_DecryptUpdate(k->ctx, NULL, &l, rec, LG_REC_HEADER) == 1 &&
              EVP_DecryptUpdate(k->ctx, out, &l, rec + LG_REC_HEADER, (int)n) == 1 &&
              (size_t)l == n &&
              EVP_CIPHER_CTX_ctrl(k->ctx, EVP_CTRL_AEAD_SET_TAG, LG_REC_TAG, tag) == 1 &&
              EVP_DecryptFinal_ex(k->ctx, out + n, &l) == 1;
    if (!ok) return -1;
    k->seq++;
    return (int)n;
}

/* A handshake message after the handshake: only KeyUpdate, alone in its record (§5.1). */
static int handshake_msg(lg_rec_t *r, lg_rec_io_t *io, const uint8_t *m, size_t n)
{
    if (n != 5 || m[0] != REC_KEY_UPDATE || m[1] != 0 || m[2] != 0 || m[3] != 1) {
        return rec_fail(r, io, ALERT_UNEXPECTED);
    }
    if (m[4] > 1) return rec_fail(r, io, ALERT_ILLEGAL);
    int k = io->keyupdate != NULL ? io->keyupdate(io->arg) : 0;
    if (k != 0) return k < 0 ? LG_REC_E_NOMEM : LG_REC_E_REFUSED;
    int rc = key_update(&r->rx, r->suite, false);
    if (rc != LG_REC_OK || m[4] == 0 || r->close_sent) return rc; /* nothing after close_notify */
    /* update_requested, and we have sent nothing under our current key since our last answer:
     * that answer already precedes our next application data, which is all §4.6.3 asks. */
    if (r->ku_answered) return LG_REC_OK;
    /* Otherwise answer with our own KeyUpdate (not requesting one), then roll. */
    static const uint8_t answer[5] = {REC_KEY_UPDATE, 0, 0, 1, 0};
    rc = seal(r, io, REC_CT_HANDSHAKE, answer, sizeof(answer));
    if (rc != LG_REC_OK) return rc;
    r->ku_answered = true;
    return key_update(&r->tx, r->suite, true);
}

/* Open one whole record (header included) and act on what it carries. */
static int record(lg_rec_t *r, lg_rec_io_t *io, const uint8_t *rec, size_t body)
{
    size_t need = body - LG_REC_TAG;
    size_t room = 0;
    lg_buf_t *b = NULL;
    uint8_t *scratch = NULL;
    uint8_t *dst = io->plain != NULL ? lg_bufq_room(io->plain, &room) : NULL;
    if (dst == NULL || room < need) {
        b = lg_buf_get(io->pool);
        if (b == NULL) return LG_REC_E_NOMEM;
        if (b->cap >= need) {
            dst = b->data;
        } else {
            lg_buf_put(io->pool, b);
            b = NULL;
            if ((dst = scratch = lg_malloc(need)) == NULL) return LG_REC_E_NOMEM;
        }
    }
    int rc = LG_REC_OK;
    int n = open_one(&r->rx, rec, body, dst);
    bool big = n > LG_REC_MAX_PLAIN + 1;
    size_t i = n < 0 || big ? 0 : (size_t)n;
    while (i > 0 && dst[i - 1] == 0)
        i--; /* padding (§5.4) */
    if (n < 0 || big || i == 0) {
        /* a bad tag, over 2^14 + 1 bytes, or no content type (§5.4) */
        rc = rec_fail(r, io,
                      n < 0 ? ALERT_BAD_RECORD_MAC
                      : big ? ALERT_OVERFLOW
                            : ALERT_UNEXPECTED);
        goto out;
    }
    uint8_t type = dst[i - 1];
    size_t plen = i - 1;
    if (type == REC_CT_APPDATA && plen == 0) {
        rc = ++r->empty_run > LG_REC_MAX_EMPTY_RUN ? rec_fail(r, io, ALERT_UNEXPECTED) : LG_REC_OK;
    } else if (type == REC_CT_APPDATA) {
        r->empty_run = 0;
        r->canceled_run = 0;
        if (io->plain == NULL) {
            rc = LG_REC_E_PROTOCOL;
        } else if (b != NULL) {
            b->len = (uint32_t)plen;
            lg_bufq_push(io->plain, io->pool, b);
            b = NULL;
            io->plain_new += plen;
        } else if (scratch != NULL) {
            size_t got = lg_bufq_append(io->plain, io->pool, scratch, plen);
            io->plain_new += got;
            if (got != plen) rc = LG_REC_E_NOMEM;
        } else {
            lg_bufq_commit(io->plain, plen);
            io->plain_new += plen;
        }
    } else if (type == REC_CT_ALERT) {
        if (plen != 2) {
            rc = rec_fail(r, io, ALERT_DECODE);
        } else if (dst[1] == REC_ALERT_CLOSE) {
            r->closed = true;
        } else if (dst[1] != REC_ALERT_CANCELED) {
            rc = LG_REC_E_PROTOCOL; /* any other alert ends the connection */
        } else if (++r->canceled_run > LG_REC_MAX_CANCELED_RUN) {
            rc = rec_fail(r, io, ALERT_UNEXPECTED);
        }
    } else if (type == REC_CT_HANDSHAKE) {
        rc = handshake_msg(r, io, dst, plen);
    } else {
        rc = rec_fail(r, io, ALERT_UNEXPECTED);
    }
out:
    if (b != NULL) lg_buf_put(io->pool, b);
    if (scratch != NULL) {
        OPENSSL_cleanse(scratch, need);
        lg_free(scratch);
    }
    return rc;
}

int lg_rec_read(lg_rec_t *r, lg_rec_io_t *io, const uint8_t *data, size_t len)
{
    while (len > 0 && !r->closed) {
        if (r->part == NULL) {
            /* The header: from the state (earlier bytes) and the input. */
            if (r->hdr_len == 0 && len >= LG_REC_HEADER) {
                int body = header_body(data);
                if (body < 0) return rec_fail(r, io, header_alert(data));
                size_t whole = LG_REC_HEADER + (size_t)body;
                if (len >= whole) {
                    int rc = record(r, io, data, (size_t)body);
                    if (rc != LG_REC_OK) return rc;
                    data += whole;
                    len -= whole;
                    continue;
                }
            }
            size_t take = LG_MIN(len, (size_t)LG_REC_HEADER - r->hdr_len);
            memcpy(r->hdr + r->hdr_len, data, take);
            r->hdr_len = (uint8_t)(r->hdr_len + take);
            data += take;
            len -= take;
            if (r->hdr_len < LG_REC_HEADER) return LG_REC_OK;
            int body = header_body(r->hdr);
            if (body < 0) return rec_fail(r, io, header_alert(r->hdr));
            if ((r->part = lg_malloc(LG_REC_HEADER + (size_t)body)) == NULL) return LG_REC_E_NOMEM;
            memcpy(r->part, r->hdr, LG_REC_HEADER);
            r->part_len = LG_REC_HEADER;
            r->hdr_len = 0;
        }
        /* The rest of a pending record. */
        size_t body = ((size_t)r->part[3] << 8) | r->part[4];
        size_t whole = LG_REC_HEADER + body;
        size_t take = LG_MIN(len, whole - r->part_len);
        memcpy(r->part + r->part_len, data, take);
        r->part_len = (uint16_t)(r->part_len + take);
        data += take;
        len -= take;
        if (r->part_len < whole) return LG_REC_OK;
        int rc = record(r, io, r->part, body);
        lg_free(r->part);
        r->part = NULL;
        r->part_len = 0;
        if (rc != LG_REC_OK) return rc;
    }
    return LG_REC_OK;
}
