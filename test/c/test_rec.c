/*
 * test_rec.c — unit tests of TLS 1.3 record protection (src/lg_rec.c).
 *
 * Two lg_rec_t face each other (one's read key is the other's write key), so every record one
 * seals the other must open byte-exact. Covers: HKDF-Expand-Label against OpenSSL's own TLS 1.3
 * KDF; every suite; sizes 0..100,000 bytes fed whole and byte by byte; records sized to small
 * pool buffers (and opened through the scratch path); padding; every framing limit at the limit
 * and one past it (body 17 and 16,640 bytes accepted, 16 and 16,641 refused; inner plaintext
 * 2^14 + 1 bytes accepted, 2^14 + 2 refused); a flipped bit anywhere; wrong outer types and
 * versions; alerts (close_notify ends the stream and later bytes are ignored; user_canceled is
 * ignored, five in a row; any other alert fails); at most 32 empty records in a row; nothing
 * sealed after our close_notify; KeyUpdate with and without a request (the answer rolls the
 * other side's read key), refused by the callback, malformed; requests before our next data
 * sharing one answer; the write sequence starting where
 * OpenSSL left it. ASan reports any leak or overflow.
 *
 * LG_TEST_LIBS: -lssl -lcrypto
 */
#include "../../src/lg_buf.c"
#include "../../src/lg_rec.c"

#include <openssl/core_names.h>
#include <openssl/kdf.h>
#include <stdlib.h>

#include "lg_test.h"

static const int SUITES[] = {LG_REC_AES_128_GCM, LG_REC_AES_256_GCM, LG_REC_CHACHA20_POLY1305};

static size_t secret_len(int suite)
{
    return suite == LG_REC_AES_256_GCM ? 48 : 32;
}

/* A server (s) and a client (c) with fixed secrets: c's write key is s's read key. */
typedef struct pair_s {
    lg_rec_t s, c;
    lg_bufpool_t pool;
    lg_bufq_t s_out, s_in, c_out, c_in; /* s_out: s's ciphertext, s_in: plaintext s read */
} pair_t;

static bool pair_init(pair_t *p, int suite, size_t buf_size)
{
    memset(p, 0, sizeof(*p));
    uint8_t cs[48], ss[48];
    for (int i = 0; i < 48; i++) {
        cs[i] = (uint8_t)(i * 7 + 1);
        ss[i] = (uint8_t)(i * 13 + 5);
    }
    lg_bufpool_init(&p->pool, buf_size);
    size_t n = secret_len(suite);
    return lg_rec_init(&p->s, suite, cs, ss, n, 0) == LG_REC_OK &&
           lg_rec_init(&p->c, suite, ss, cs, n, 0) == LG_REC_OK;
}

static void pair_free(pair_t *p)
{
    lg_bufq_clear(&p->s_out, &p->pool);
    lg_bufq_clear(&p->s_in, &p->pool);
    lg_bufq_clear(&p->c_out, &p->pool);
    lg_bufq_clear(&p->c_in, &p->pool);
    lg_rec_free(&p->s);
    lg_rec_free(&p->c);
    lg_bufpool_destroy(&p->pool);
}

/* Flatten a queue into a malloc'd array (caller frees); consumes it. */
static uint8_t *drain(lg_bufq_t *q, lg_bufpool_t *pool, size_t *len)
{
    *len = q->bytes;
    uint8_t *out = malloc(q->bytes + 1);
    size_t off = 0;
    for (lg_buf_t *b = q->head; b; b = b->next) {
        memcpy(out + off, b->data + b->off, b->len);
        off += b->len;
    }
    lg_bufq_clear(q, pool);
    return out;
}

static lg_rec_io_t io_of(lg_bufpool_t *pool, lg_bufq_t *cipher, lg_bufq_t *plain)
{
    return (lg_rec_io_t){pool, cipher, plain, 0, 0, NULL, NULL};
}

/* The client reads everything the server wrote: true when it opens cleanly to exactly `want`. */
static bool client_opens(pair_t *p, const char *want)
{
    size_t clen, plen, n = strlen(want);
    uint8_t *c = drain(&p->s_out, &p->pool, &clen);
    lg_rec_io_t cio = io_of(&p->pool, &p->c_out, &p->c_in);
    int rc = lg_rec_read(&p->c, &cio, c, clen);
    free(c);
    uint8_t *plain = drain(&p->c_in, &p->pool, &plen);
    bool same = rc == LG_REC_OK && plen == n && memcmp(plain, want, n) == 0;
    free(plain);
    return same;
}

/* c seals data; s reads it `step` bytes at a time (0: all at once); s's plaintext must match. */
static bool through(pair_t *p, const uint8_t *data, size_t len, size_t step)
{
    lg_rec_io_t cio = io_of(&p->pool, &p->c_out, NULL);
    if (lg_rec_write(&p->c, &cio, data, len) != LG_REC_OK) return false;
    if (cio.cipher_new != p->c_out.bytes) return false;
    size_t clen;
    uint8_t *cipher = drain(&p->c_out, &p->pool, &clen);
    lg_rec_io_t sio = io_of(&p->pool, &p->s_out, &p->s_in);
    bool ok = true;
    for (size_t off = 0; off < clen && ok;) {
        size_t n = step == 0 ? clen : LG_MIN(step, clen - off);
        ok = lg_rec_read(&p->s, &sio, cipher + off, n) == LG_REC_OK;
        off += n;
    }
    free(cipher);
    size_t plen;
    uint8_t *plain = drain(&p->s_in, &p->pool, &plen);
    ok = ok && plen == len && sio.plain_new == len && (len == 0 || memcmp(plain, data, len) == 0);
    free(plain);
    return ok && p->s.part == NULL && p->s.hdr_len == 0;
}

LG_TEST(expand_label_matches_openssl)
{
    /* OpenSSL's TLS13-KDF (expand only) computes the same HKDF-Expand-Label. */
    const char *labels[] = {"key", "iv", "traffic upd"};
    const size_t lens[] = {16, 12, 32};
    uint8_t secret[48];
    for (int i = 0; i < 48; i++)
        secret[i] = (uint8_t)(0xa0 ^ i);
    /* SHA3-256 has SHA-256's size: its HMAC is chosen by the digest, not by the size */
    const EVP_MD *mds[] = {EVP_sha256(), EVP_sha384(), EVP_sha3_256()};
    const char *md_names[] = {"SHA256", "SHA384", "SHA3-256"};
    for (int sha = 0; sha < 3; sha++) {
        const EVP_MD *md = mds[sha];
        size_t hl = sha == 1 ? 48 : 32;
        for (int i = 0; i < 3; i++) {
            size_t out_len = i == 2 ? hl : lens[i];
            uint8_t ours[48], theirs[48];
            CHECK(lg_rec_expand_label(md, secret, hl, labels[i], ours, out_len) == LG_REC_OK);
            EVP_KDF *kdf = EVP_KDF_fetch(NULL, "TLS13-KDF", NULL);
            EVP_KDF_CTX *kctx = EVP_KDF_CTX_new(kdf);
            int mode = EVP_KDF_HKDF_MODE_EXPAND_ONLY;
            OSSL_PARAM params[] = {
                OSSL_PARAM_construct_int(OSSL_KDF_PARAM_MODE, &mode),
                OSSL_PARAM_construct_utf8_string(OSSL_KDF_PARAM_DIGEST, (char *)md_names[sha], 0),
                OSSL_PARAM_construct_octet_string(OSSL_KDF_PARAM_KEY, secret, hl),
                OSSL_PARAM_construct_octet_string(OSSL_KDF_PARAM_PREFIX, (void *)"tls13 ", 6),
                OSSL_PARAM_construct_octet_string(OSSL_KDF_PARAM_LABEL, (void *)labels[i],
                                                  strlen(labels[i])),
                OSSL_PARAM_construct_octet_string(OSSL_KDF_PARAM_DATA, (void *)"", 0),
                OSSL_PARAM_construct_end(),
            };
            int rc = EVP_KDF_derive(kctx, theirs, out_len, params);
            EVP_KDF_CTX_free(kctx);
            EVP_KDF_free(kdf);
            CHECK(rc == 1);
            CHECK(memcmp(ours, theirs, out_len) == 0);
        }
    }
    uint8_t out[64];
    CHECK(lg_rec_expand_label(EVP_sha256(), secret, 32, "key", out, 33) == LG_REC_E_PROTOCOL);
}

LG_TEST(init_refuses_unknown_suite_and_wrong_secret)
{
    lg_rec_t r;
    uint8_t s[48] = {0};
    memset(&r, 0, sizeof(r));
    CHECK(lg_rec_init(&r, 0, s, s, 32, 0) == LG_REC_E_PROTOCOL);
    lg_rec_free(&r);
    CHECK(lg_rec_init(&r, LG_REC_AES_256_GCM, s, s, 32, 0) == LG_REC_E_PROTOCOL);
    lg_rec_free(&r);
    CHECK(lg_rec_init(&r, LG_REC_AES_128_GCM, s, s, 48, 0) == LG_REC_E_PROTOCOL);
    lg_rec_free(&r);
}

LG_TEST(round_trip_every_suite_and_size)
{
    static const size_t sizes[] = {0, 1, 100, 16383, 16384, 16385, 32768, 65536, 100000};
    uint8_t *data = malloc(100000);
    for (size_t i = 0; i < 100000; i++)
        data[i] = (uint8_t)(i * 31 + (i >> 8));
    for (size_t s = 0; s < 3; s++) {
        for (size_t z = 0; z < sizeof(sizes) / sizeof(sizes[0]); z++) {
            for (size_t step = 0; step < 3; step++) {
                pair_t p;
                bool ok = pair_init(&p, SUITES[s], 65536);
                size_t st = step == 0 ? 0 : step == 1 ? 1 : 4099;
                if (sizes[z] > 20000 && st == 1) st = 7;
                ok = ok && through(&p, data, sizes[z], st);
                /* a second message on the same keys (sequence numbers move on) */
                ok = ok && through(&p, data + 1, sizes[z] / 2, st);
                pair_free(&p);
                if (!ok) free(data);
                CHECK(ok);
            }
        }
    }
    free(data);
}

LG_TEST(records_fit_small_buffers)
{
    /* 1 KiB pool buffers: records of at most 1002 bytes are sealed, and opened whole. */
    uint8_t data[5000];
    for (size_t i = 0; i < sizeof(data); i++)
        data[i] = (uint8_t)i;
    pair_t p;
    CHECK(pair_init(&p, LG_REC_AES_128_GCM, 1024));
    lg_rec_io_t cio = io_of(&p.pool, &p.c_out, NULL);
    CHECK(lg_rec_write(&p.c, &cio, data, sizeof(data)) == LG_REC_OK);
    for (lg_buf_t *b = p.c_out.head; b; b = b->next)
        CHECK(b->len <= 1024);
    CHECK(p.c.tx.seq >= 5);
    size_t clen;
    uint8_t *cipher = drain(&p.c_out, &p.pool, &clen);
    lg_rec_io_t sio = io_of(&p.pool, &p.s_out, &p.s_in);
    int rc = lg_rec_read(&p.s, &sio, cipher, clen);
    free(cipher);
    CHECK(rc == LG_REC_OK && p.s_in.bytes == sizeof(data));
    pair_free(&p);

    /* A 16 KiB record (sealed with big buffers) read into a 1 KiB pool: the scratch path. */
    pair_t q;
    CHECK(pair_init(&q, LG_REC_AES_256_GCM, 65536));
    lg_bufpool_t small;
    lg_bufpool_init(&small, 1024);
    uint8_t big[16384];
    memset(big, 0x5a, sizeof(big));
    cio = io_of(&q.pool, &q.c_out, NULL);
    CHECK(lg_rec_write(&q.c, &cio, big, sizeof(big)) == LG_REC_OK);
    cipher = drain(&q.c_out, &q.pool, &clen);
    CHECK(clen == sizeof(big) + LG_REC_OVERHEAD);
    lg_bufq_t in = {0}, out = {0};
    sio = io_of(&small, &out, &in);
    rc = lg_rec_read(&q.s, &sio, cipher, clen);
    free(cipher);
    size_t plen;
    uint8_t *plain = drain(&in, &small, &plen);
    bool same = plen == sizeof(big) && memcmp(plain, big, plen) == 0;
    free(plain);
    lg_bufpool_destroy(&small);
    pair_free(&q);
    CHECK(rc == LG_REC_OK && same);
}

/* Seal a record with an arbitrary inner content (data || type) under c's key. */
static size_t raw_record(pair_t *p, uint8_t type, const uint8_t *data, size_t n, uint8_t *out)
{
    return seal_one(&p->c.tx, type, data, n, out) == LG_REC_OK ? n + LG_REC_OVERHEAD : 0;
}

static int feed(pair_t *p, const uint8_t *rec, size_t len)
{
    lg_rec_io_t sio = io_of(&p->pool, &p->s_out, &p->s_in);
    return lg_rec_read(&p->s, &sio, rec, len);
}

/* The description of the alert s sent (opened with c's key); -1 if s sent no alert. */
static int alert_sent(pair_t *p)
{
    size_t n;
    uint8_t *out = drain(&p->s_out, &p->pool, &n);
    uint8_t plain[64];
    int got = n == 2 + LG_REC_OVERHEAD ? open_one(&p->c.rx, out, n - LG_REC_HEADER, plain) : -1;
    free(out);
    return got == 3 && plain[2] == REC_CT_ALERT && plain[0] == 2 ? plain[1] : -1;
}

LG_TEST(padding_and_plaintext_limits)
{
    static uint8_t inner[LG_REC_MAX_PLAIN + 300];
    static uint8_t rec[LG_REC_MAX_PLAIN + 400];
    pair_t p;
    CHECK(pair_init(&p, LG_REC_AES_128_GCM, 65536));
    /* "hi", content type 23, three zeros of padding: sealed with type byte 0 after them. */
    memcpy(inner, "hi\x17\0\0", 5);
    size_t n = raw_record(&p, 0, inner, 5, rec);
    CHECK(feed(&p, rec, n) == LG_REC_OK && p.s_in.bytes == 2);
    /* inner plaintext of exactly 2^14 + 1 bytes (content + type): accepted */
    memset(inner, 'x', LG_REC_MAX_PLAIN);
    n = raw_record(&p, 23, inner, LG_REC_MAX_PLAIN, rec);
    CHECK(feed(&p, rec, n) == LG_REC_OK && p.s_in.bytes == 2 + LG_REC_MAX_PLAIN);
    /* 2^14 + 2 (one byte of padding more): refused */
    inner[LG_REC_MAX_PLAIN] = 23;
    n = raw_record(&p, 0, inner, LG_REC_MAX_PLAIN + 1, rec);
    CHECK(feed(&p, rec, n) == LG_REC_E_PROTOCOL);
    pair_free(&p);
    /* only zeros: no content type */
    CHECK(pair_init(&p, LG_REC_AES_128_GCM, 65536));
    memset(inner, 0, 8);
    n = raw_record(&p, 0, inner, 8, rec);
    CHECK(feed(&p, rec, n) == LG_REC_E_PROTOCOL);
    pair_free(&p);
    /* an unknown content type (and change_cipher_spec) inside */
    for (uint8_t t = 19; t <= 24; t++) {
        if (t == 21 || t == 22 || t == 23) continue;
        CHECK(pair_init(&p, LG_REC_AES_128_GCM, 65536));
        n = raw_record(&p, t, (const uint8_t *)"ab", 2, rec);
        int rc = feed(&p, rec, n);
        pair_free(&p);
        CHECK(rc == LG_REC_E_PROTOCOL);
    }
    /* an empty application data record is fine; 32 in a row are, the 33rd is not (OpenSSL's
     * MAX_EMPTY_RECORDS), and data in between starts the count again */
    CHECK(pair_init(&p, LG_REC_AES_128_GCM, 65536));
    n = raw_record(&p, 23, NULL, 0, rec);
    CHECK(feed(&p, rec, n) == LG_REC_OK && p.s_in.bytes == 0);
    for (int k = 2; k <= LG_REC_MAX_EMPTY_RUN; k++) {
        n = raw_record(&p, 23, NULL, 0, rec);
        CHECK(feed(&p, rec, n) == LG_REC_OK);
    }
    n = raw_record(&p, 23, (const uint8_t *)"x", 1, rec);
    CHECK(feed(&p, rec, n) == LG_REC_OK && p.s_in.bytes == 1);
    for (int k = 1; k <= LG_REC_MAX_EMPTY_RUN; k++) {
        n = raw_record(&p, 23, NULL, 0, rec);
        CHECK(feed(&p, rec, n) == LG_REC_OK);
    }
    n = raw_record(&p, 23, NULL, 0, rec);
    CHECK(feed(&p, rec, n) == LG_REC_E_PROTOCOL);
    CHECK_EQ_INT(alert_sent(&p), ALERT_UNEXPECTED);
    pair_free(&p);
    /* 2^14 + 2 bytes of inner plaintext that are all zeros: record_overflow (the size is judged
     * before the padding is looked for) */
    CHECK(pair_init(&p, LG_REC_AES_128_GCM, 65536));
    memset(inner, 0, LG_REC_MAX_PLAIN + 1);
    n = raw_record(&p, 0, inner, LG_REC_MAX_PLAIN + 1, rec);
    CHECK(feed(&p, rec, n) == LG_REC_E_PROTOCOL);
    CHECK_EQ_INT(alert_sent(&p), ALERT_OVERFLOW);
    pair_free(&p);
}

LG_TEST(framing_limits_and_tampering)
{
    static uint8_t rec[LG_REC_HEADER + LG_REC_MAX_BODY + 8];
    pair_t p;
    /* body 16 (no room for a content type) and 16,641: refused from the header alone */
    const size_t bodies[] = {16, LG_REC_MAX_BODY + 1, 0};
    for (size_t i = 0; i < 3; i++) {
        CHECK(pair_init(&p, LG_REC_AES_128_GCM, 65536));
        uint8_t h[5] = {23, 3, 3, (uint8_t)(bodies[i] >> 8), (uint8_t)bodies[i]};
        int rc = feed(&p, h, 5);
        pair_free(&p);
        CHECK_EQ_INT(rc, LG_REC_E_PROTOCOL);
    }
    /* body 16,640 (2^14 + 256) is a legal size: read until its tag fails */
    CHECK(pair_init(&p, LG_REC_AES_128_GCM, 65536));
    memset(rec, 0, sizeof(rec));
    rec[0] = 23, rec[1] = 3, rec[2] = 3, rec[3] = LG_REC_MAX_BODY >> 8,
    rec[4] = LG_REC_MAX_BODY & 255;
    CHECK(feed(&p, rec, 5 + LG_REC_MAX_BODY - 1) == LG_REC_OK && p.s.part != NULL);
    CHECK(feed(&p, rec, 1) == LG_REC_E_PROTOCOL);
    pair_free(&p);
    /* outer types and versions other than application_data 0x0303 */
    const uint8_t heads[][3] = {{22, 3, 3}, {21, 3, 3}, {20, 3, 3},
                                {23, 3, 1}, {23, 2, 3}, {24, 3, 3}};
    for (size_t i = 0; i < sizeof(heads) / sizeof(heads[0]); i++) {
        CHECK(pair_init(&p, LG_REC_AES_128_GCM, 65536));
        size_t n = raw_record(&p, 23, (const uint8_t *)"hello", 5, rec);
        memcpy(rec, heads[i], 3);
        int rc = feed(&p, rec, n);
        pair_free(&p);
        CHECK_EQ_INT(rc, LG_REC_E_PROTOCOL);
    }
    /* a flipped bit anywhere after the header fails the tag; nothing reaches the plaintext */
    for (size_t bit = 5 * 8; bit < (5 + 5 + 1 + 16) * 8; bit += 3) {
        CHECK(pair_init(&p, LG_REC_CHACHA20_POLY1305, 65536));
        size_t n = raw_record(&p, 23, (const uint8_t *)"hello", 5, rec);
        rec[bit / 8] ^= (uint8_t)(1u << (bit % 8));
        int rc = feed(&p, rec, n);
        size_t got = p.s_in.bytes;
        /* the peer is told: a fatal alert (bad_record_mac) */
        size_t alen;
        uint8_t *alert = drain(&p.s_out, &p.pool, &alen);
        lg_rec_io_t cio = io_of(&p.pool, &p.c_out, &p.c_in);
        int crc = lg_rec_read(&p.c, &cio, alert, alen);
        free(alert);
        pair_free(&p);
        CHECK_EQ_INT(rc, LG_REC_E_PROTOCOL);
        CHECK_EQ_INT(got, 0);
        CHECK_EQ_INT(alen, 2 + LG_REC_OVERHEAD);
        CHECK_EQ_INT(crc, LG_REC_E_PROTOCOL); /* a fatal alert fails the reader too */
    }
    /* a record replayed (same sequence number twice): the second fails */
    CHECK(pair_init(&p, LG_REC_AES_256_GCM, 65536));
    size_t n = raw_record(&p, 23, (const uint8_t *)"once", 4, rec);
    CHECK(feed(&p, rec, n) == LG_REC_OK);
    CHECK(feed(&p, rec, n) == LG_REC_E_PROTOCOL);
    pair_free(&p);
}

LG_TEST(alerts)
{
    static uint8_t rec[256];
    pair_t p;
    /* data, close_notify, then more data in the same input: the stream ends at the alert */
    CHECK(pair_init(&p, LG_REC_AES_128_GCM, 65536));
    size_t n = raw_record(&p, 23, (const uint8_t *)"abc", 3, rec);
    n += raw_record(&p, 21, (const uint8_t *)"\x01\x00", 2, rec + n);
    n += raw_record(&p, 23, (const uint8_t *)"zzz", 3, rec + n);
    CHECK(feed(&p, rec, n) == LG_REC_OK && p.s.closed && p.s_in.bytes == 3);
    CHECK(feed(&p, (const uint8_t *)"garbage", 7) == LG_REC_OK && p.s_in.bytes == 3);
    pair_free(&p);
    /* user_canceled is ignored, five in a row (OpenSSL's MAX_WARN_ALERT_COUNT) but not six;
     * data in between starts the count again */
    CHECK(pair_init(&p, LG_REC_AES_128_GCM, 65536));
    for (int round = 0; round < 2; round++) {
        for (int k = 1; k <= LG_REC_MAX_CANCELED_RUN; k++) {
            n = raw_record(&p, 21, (const uint8_t *)"\x01\x5a", 2, rec);
            CHECK(feed(&p, rec, n) == LG_REC_OK && !p.s.closed);
        }
        n = raw_record(&p, 23, (const uint8_t *)"d", 1, rec);
        CHECK(feed(&p, rec, n) == LG_REC_OK);
    }
    for (int k = 1; k <= LG_REC_MAX_CANCELED_RUN; k++) {
        n = raw_record(&p, 21, (const uint8_t *)"\x01\x5a", 2, rec);
        CHECK(feed(&p, rec, n) == LG_REC_OK);
    }
    n = raw_record(&p, 21, (const uint8_t *)"\x01\x5a", 2, rec);
    CHECK(feed(&p, rec, n) == LG_REC_E_PROTOCOL);
    CHECK_EQ_INT(alert_sent(&p), ALERT_UNEXPECTED);
    pair_free(&p);
    /* a fatal alert fails; an alert of 3 bytes fails */
    CHECK(pair_init(&p, LG_REC_AES_128_GCM, 65536));
    n = raw_record(&p, 21, (const uint8_t *)"\x02\x28", 2, rec);
    CHECK(feed(&p, rec, n) == LG_REC_E_PROTOCOL);
    pair_free(&p);
    CHECK(pair_init(&p, LG_REC_AES_128_GCM, 65536));
    n = raw_record(&p, 21, (const uint8_t *)"\x01\x00\x00", 3, rec);
    CHECK(feed(&p, rec, n) == LG_REC_E_PROTOCOL);
    pair_free(&p);
    /* our close_notify: sealed once, and the peer sees it */
    CHECK(pair_init(&p, LG_REC_AES_128_GCM, 65536));
    lg_rec_io_t sio = io_of(&p.pool, &p.s_out, &p.s_in);
    CHECK(lg_rec_close_notify(&p.s, &sio) == LG_REC_OK && sio.cipher_new == 2 + LG_REC_OVERHEAD);
    CHECK(lg_rec_close_notify(&p.s, &sio) == LG_REC_OK && sio.cipher_new == 2 + LG_REC_OVERHEAD);
    size_t clen;
    uint8_t *c = drain(&p.s_out, &p.pool, &clen);
    lg_rec_io_t cio = io_of(&p.pool, &p.c_out, &p.c_in);
    int rc = lg_rec_read(&p.c, &cio, c, clen);
    free(c);
    CHECK(rc == LG_REC_OK && p.c.closed);
    /* after our close_notify nothing more is sealed (§6.1): no data, no KeyUpdate answer */
    sio.cipher_new = 0;
    CHECK(lg_rec_write(&p.s, &sio, (const uint8_t *)"late", 4) == LG_REC_E_PROTOCOL);
    n = raw_record(&p, 22, (const uint8_t *)"\x18\x00\x00\x01\x01", 5, rec);
    CHECK(feed(&p, rec, n) == LG_REC_OK);
    CHECK_EQ_INT(sio.cipher_new, 0);
    CHECK_EQ_INT(p.s_out.bytes, 0);
    pair_free(&p);
}

static int nomem_keyupdate(void *arg)
{
    (void)arg;
    return -1;
}

static int refusals;
static int refuse_keyupdate(void *arg)
{
    (void)arg;
    refusals++;
    return 1;
}

LG_TEST(key_update_both_ways)
{
    static uint8_t rec[256];
    for (int req = 0; req < 2; req++) {
        for (size_t s = 0; s < 3; s++) {
            pair_t p;
            CHECK(pair_init(&p, SUITES[s], 65536));
            CHECK(through(&p, (const uint8_t *)"before", 6, 0));
            /* c sends KeyUpdate, then rolls its write key; then data under the new key */
            const uint8_t ku[5] = {24, 0, 0, 1, (uint8_t)req};
            lg_rec_io_t cio = io_of(&p.pool, &p.c_out, &p.c_in);
            CHECK(seal(&p.c, &cio, 22, ku, 5) == LG_REC_OK);
            CHECK(key_update(&p.c.tx, p.c.suite, true) == LG_REC_OK);
            CHECK(lg_rec_write(&p.c, &cio, (const uint8_t *)"after", 5) == LG_REC_OK);
            size_t clen;
            uint8_t *c = drain(&p.c_out, &p.pool, &clen);
            lg_rec_io_t sio = io_of(&p.pool, &p.s_out, &p.s_in);
            int rc = lg_rec_read(&p.s, &sio, c, clen);
            free(c);
            CHECK(rc == LG_REC_OK && p.s_in.bytes == 5 && p.s.rx.seq == 1);
            /* asked: s answered with its own KeyUpdate and rolled its write key */
            CHECK_EQ_INT(sio.cipher_new, req ? 5 + LG_REC_OVERHEAD : 0);
            CHECK(lg_rec_write(&p.s, &sio, (const uint8_t *)"reply", 5) == LG_REC_OK);
            bool same = client_opens(&p, "reply");
            pair_free(&p);
            CHECK(same);
        }
    }
    /* refused by the callback (the rate limit in lg_tls) */
    pair_t p;
    CHECK(pair_init(&p, LG_REC_AES_128_GCM, 65536));
    size_t n = raw_record(&p, 22, (const uint8_t *)"\x18\x00\x00\x01\x00", 5, rec);
    lg_rec_io_t sio = {&p.pool, &p.s_out, &p.s_in, 0, 0, refuse_keyupdate, NULL};
    refusals = 0;
    CHECK(lg_rec_read(&p.s, &sio, rec, n) == LG_REC_E_REFUSED && refusals == 1);
    pair_free(&p);
    /* the callback could not judge it (out of memory): that, not a refusal */
    CHECK(pair_init(&p, LG_REC_AES_128_GCM, 65536));
    n = raw_record(&p, 22, (const uint8_t *)"\x18\x00\x00\x01\x00", 5, rec);
    lg_rec_io_t nio = {&p.pool, &p.s_out, &p.s_in, 0, 0, nomem_keyupdate, NULL};
    CHECK(lg_rec_read(&p.s, &nio, rec, n) == LG_REC_E_NOMEM);
    pair_free(&p);
    /* malformed: a bad request value, a trailing byte, another handshake message, split */
    const char *bad[] = {"\x18\x00\x00\x01\x02", "\x18\x00\x00\x01\x00\x00", "\x04\x00\x00\x01\x00",
                         "\x18\x00\x00\x02\x00\x00", "\x18\x00\x00"};
    const size_t bad_len[] = {5, 6, 5, 6, 3};
    for (size_t i = 0; i < 5; i++) {
        CHECK(pair_init(&p, LG_REC_AES_128_GCM, 65536));
        n = raw_record(&p, 22, (const uint8_t *)bad[i], bad_len[i], rec);
        int rc = feed(&p, rec, n);
        pair_free(&p);
        CHECK_EQ_INT(rc, LG_REC_E_PROTOCOL);
    }
}

/* c asks for a KeyUpdate (rolling its write key after the request), sealed into c_out. */
static bool ask_update(pair_t *p)
{
    static const uint8_t ku[5] = {24, 0, 0, 1, 1};
    lg_rec_io_t cio = io_of(&p->pool, &p->c_out, &p->c_in);
    return seal(&p->c, &cio, 22, ku, 5) == LG_REC_OK &&
           key_update(&p->c.tx, p->c.suite, true) == LG_REC_OK;
}

/* Pins: requests for a KeyUpdate while we have sent no application data since our last answer
 * share that answer (RFC 8446 §4.6.3). Each used to queue its own 27-byte answer, so a client
 * that asked at the rate limit and never read grew its queue without bound. */
LG_TEST(key_update_requests_share_one_answer)
{
    for (size_t s = 0; s < 3; s++) {
        pair_t p;
        CHECK(pair_init(&p, SUITES[s], 65536));
        for (int i = 0; i < 100; i++)
            CHECK(ask_update(&p));
        size_t clen;
        uint8_t *c = drain(&p.c_out, &p.pool, &clen);
        lg_rec_io_t sio = io_of(&p.pool, &p.s_out, &p.s_in);
        int rc = lg_rec_read(&p.s, &sio, c, clen);
        free(c);
        CHECK_EQ_INT(rc, LG_REC_OK);
        CHECK_EQ_INT(p.s.rx.seq, 0); /* the read key rolled with each: the last one is fresh */
        CHECK_EQ_INT(p.s_out.bytes, 5 + LG_REC_OVERHEAD); /* one answer, not 100 */
        /* Data under the answered key, then a new request: that one is answered again. */
        CHECK(lg_rec_write(&p.s, &sio, (const uint8_t *)"one", 3) == LG_REC_OK);
        CHECK(ask_update(&p) && ask_update(&p));
        c = drain(&p.c_out, &p.pool, &clen);
        sio.cipher_new = 0;
        rc = lg_rec_read(&p.s, &sio, c, clen);
        free(c);
        CHECK_EQ_INT(rc, LG_REC_OK);
        CHECK_EQ_INT(sio.cipher_new, 5 + LG_REC_OVERHEAD);
        CHECK(lg_rec_write(&p.s, &sio, (const uint8_t *)"two", 3) == LG_REC_OK);
        /* The client opens it all: answer, "one", answer, "two" (each answer rolls its read key).
         */
        bool same = client_opens(&p, "onetwo");
        pair_free(&p);
        CHECK(same);
    }
}

LG_TEST(write_sequence_starts_where_openssl_left_it)
{
    uint8_t cs[32] = {1}, ss[32] = {2};
    lg_rec_t s, c;
    memset(&s, 0, sizeof(s));
    memset(&c, 0, sizeof(c));
    CHECK(lg_rec_init(&s, LG_REC_AES_128_GCM, cs, ss, 32, 2) == LG_REC_OK);
    CHECK(lg_rec_init(&c, LG_REC_AES_128_GCM, ss, cs, 32, 0) == LG_REC_OK);
    lg_bufpool_t pool;
    lg_bufpool_init(&pool, 65536);
    lg_bufq_t out = {0}, in = {0};
    lg_rec_io_t sio = io_of(&pool, &out, NULL);
    CHECK(lg_rec_write(&s, &sio, (const uint8_t *)"x", 1) == LG_REC_OK);
    size_t clen;
    uint8_t *rec = drain(&out, &pool, &clen);
    lg_rec_io_t cio = io_of(&pool, &out, &in);
    int at0 = lg_rec_read(&c, &cio, rec, clen); /* the peer expects sequence 0: fails */
    lg_rec_free(&c);
    memset(&c, 0, sizeof(c));
    lg_rec_init(&c, LG_REC_AES_128_GCM, ss, cs, 32, 0);
    c.rx.seq = 2;
    int at2 = lg_rec_read(&c, &cio, rec, clen);
    free(rec);
    size_t got = in.bytes;
    lg_bufq_clear(&in, &pool);
    lg_bufq_clear(&out, &pool);
    lg_rec_free(&s);
    lg_rec_free(&c);
    lg_bufpool_destroy(&pool);
    CHECK(at0 == LG_REC_E_PROTOCOL && at2 == LG_REC_OK && got == 1);
}

int main(void)
{
    LG_RUN(expand_label_matches_openssl);
    LG_RUN(init_refuses_unknown_suite_and_wrong_secret);
    LG_RUN(round_trip_every_suite_and_size);
    LG_RUN(records_fit_small_buffers);
    LG_RUN(padding_and_plaintext_limits);
    LG_RUN(framing_limits_and_tampering);
    LG_RUN(alerts);
    LG_RUN(key_update_both_ways);
    LG_RUN(key_update_requests_share_one_answer);
    LG_RUN(write_sequence_starts_where_openssl_left_it);
    LG_TEST_END();
}
