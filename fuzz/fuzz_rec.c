/*
 * fuzz_rec.c — libFuzzer target for TLS 1.3 record protection (src/lg_rec.c).
 *
 * LG_FUZZ_LIBS: -lcrypto
 *
 * The input picks a suite and a pool buffer size, then is a script for a client lg_rec facing
 * the server lg_rec under test (the client's write key is the server's read key, and back):
 *   write N bytes | KeyUpdate (asking for one back or not) | close_notify | a record with an
 *   arbitrary inner content (data, content type, padding) | the server writes N bytes
 * then the client's ciphertext is fed to the server in chunks the input sizes, or, with the first
 * bit of the mode byte, the input's remaining bytes are fed raw (framing and tag checks).
 *
 * Reference model: the script's effect on the server computed from RFC 8446's rules (padding,
 * content types, alerts, KeyUpdate alone in its record, 2^14 + 1 bytes of inner plaintext at
 * most, 32 empty records and 5 user_canceled alerts in a row at most). Checks, aborting on any
 * failure: the server's result is the model's (success, protocol error) and its plaintext is
 * exactly the model's bytes up to the first failure or close_notify; the queues' counters match
 * their buffers; when the server did not fail, the client opens every record the server wrote (its
 * data, and its KeyUpdate answers, which roll the client's read key) and gets exactly the bytes the
 * server wrote, and as many answers as the model says: the script's server writes all come before
 * the feed, so every request shares one answer (§4.6.3: no application data between them).
 */
#include "../src/lg_buf.c"
#include "../src/lg_rec.c"

#include <stdio.h>
#include <stdlib.h>

#define FUZZ_CHECK(cond)                                                                           \
    do {                                                                                           \
        if (!(cond)) {                                                                             \
            fprintf(stderr, "fuzz_rec: check failed at line %d: %s\n", __LINE__, #cond);           \
            abort();                                                                               \
        }                                                                                          \
    } while (0)

typedef struct input_s {
    const uint8_t *p;
    size_t n;
} input_t;

static uint8_t take8(input_t *in)
{
    if (in->n == 0) return 0;
    in->n--;
    return *in->p++;
}

static size_t take16(input_t *in)
{
    return (size_t)take8(in) << 8 | take8(in);
}

static uint8_t *flatten(const lg_bufq_t *q)
{
    uint8_t *out = malloc(q->bytes + 1);
    size_t off = 0;
    for (const lg_buf_t *b = q->head; b; b = b->next) {
        memcpy(out + off, b->data + b->off, b->len);
        off += b->len;
    }
    return out;
}

/* A growing byte array (the model's expected plaintext). */
typedef struct bytes_s {
    uint8_t *p;
    size_t n, cap;
} bytes_t;

static void bytes_add(bytes_t *b, const uint8_t *data, size_t n)
{
    if (b->n + n > b->cap) {
        b->cap = (b->n + n) * 2 + 64;
        b->p = realloc(b->p, b->cap);
    }
    if (n > 0) memcpy(b->p + b->n, data, n);
    b->n += n;
}

/* Records in a row that carried nothing, as the server counts them. */
typedef struct runs_s {
    int empty, canceled;
} runs_t;

/* The model: what an inner plaintext does to the server (0 ok / data, 1 close, -1 failure). */
static int model_inner(const uint8_t *inner, size_t n, bytes_t *expect, runs_t *runs)
{
    size_t i = n;
    while (i > 0 && inner[i - 1] == 0)
        i--;
    if (i == 0 || n > LG_REC_MAX_PLAIN + 1) return -1;
    uint8_t type = inner[i - 1];
    size_t plen = i - 1;
    if (type == 23 && plen == 0) return ++runs->empty > LG_REC_MAX_EMPTY_RUN ? -1 : 0;
    if (type == 23) {
        runs->empty = runs->canceled = 0;
        bytes_add(expect, inner, plen);
        return 0;
    }
    if (type == 21) {
        if (plen != 2) return -1;
        if (inner[1] == 0) return 1;
        if (inner[1] != 90) return -1;
        return ++runs->canceled > LG_REC_MAX_CANCELED_RUN ? -1 : 0;
    }
    return -1; /* handshake content comes only from the script's KeyUpdate step */
}

/* The client's keyupdate callback: count the server's KeyUpdates (its answers). */
static int count_keyupdate(void *arg)
{
    ++*(int *)arg;
    return 0;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    input_t in = {data, size};
    static const int suites[] = {LG_REC_AES_128_GCM, LG_REC_AES_256_GCM, LG_REC_CHACHA20_POLY1305};
    static const size_t pools[] = {1024, 4096, 17000, 65536};
    uint8_t sel = take8(&in);
    int suite = suites[(sel & 3) % 3];
    size_t pool_size = pools[(sel >> 2) & 3];
    bool raw = (sel & 0x10) != 0;
    size_t hl = suite == LG_REC_AES_256_GCM ? 48 : 32;
    uint8_t cs[48], ss[48];
    for (int i = 0; i < 48; i++) {
        cs[i] = (uint8_t)(i + 1);
        ss[i] = (uint8_t)(200 - i);
    }
    lg_bufpool_t pool;
    lg_bufpool_init(&pool, pool_size);
    lg_rec_t s, c;
    memset(&s, 0, sizeof(s));
    memset(&c, 0, sizeof(c));
    FUZZ_CHECK(lg_rec_init(&s, suite, cs, ss, hl, 0) == LG_REC_OK);
    FUZZ_CHECK(lg_rec_init(&c, suite, ss, cs, hl, 0) == LG_REC_OK);
    lg_bufq_t c_out = {0}, c_in = {0}, s_out = {0}, s_in = {0};
    lg_rec_io_t cio = {&pool, &c_out, &c_in, 0, 0, NULL, NULL};
    lg_rec_io_t sio = {&pool, &s_out, &s_in, 0, 0, NULL, NULL};
    bytes_t expect = {0}, server_wrote = {0};
    static uint8_t buf[70000];
    int model = 0; /* 0 running, 1 closed, -1 failed */
    runs_t runs = {0, 0};
    bool asked = false; /* a KeyUpdate asking for one back reached the server while running */
    int answers = 0;

    if (raw) {
        /* Arbitrary bytes: only framing and tags are exercised; nothing may be accepted as data
         * unless it opened (which random bytes do not). */
        while (in.n > 0) {
            size_t want = (size_t)take8(&in) * 64 + 1;
            size_t chunk = LG_MIN(want, in.n);
            int rc = lg_rec_read(&s, &sio, in.p, chunk);
            in.p += chunk;
            in.n -= chunk;
            FUZZ_CHECK(lg_bufq_consistent(&s_in) && lg_bufq_consistent(&s_out));
            if (rc != LG_REC_OK) break;
        }
        FUZZ_CHECK(s_in.bytes == 0);
    } else {
        /* The script. */
        while (in.n > 0) {
            uint8_t op = take8(&in);
            switch (op % 5) {
            case 0: { /* the client writes */
                size_t n = take16(&in) % 40000;
                for (size_t i = 0; i < n; i++)
                    buf[i] = (uint8_t)(i ^ op);
                c.close_sent = false; /* this client goes on after its close_notify */
                FUZZ_CHECK(lg_rec_write(&c, &cio, buf, n) == LG_REC_OK);
                if (model == 0) bytes_add(&expect, buf, n);
                if (n > 0) runs.empty = runs.canceled = 0;
                break;
            }
            case 1: { /* KeyUpdate, then the client's write key rolls */
                const uint8_t ku[5] = {24, 0, 0, 1, (uint8_t)((op >> 3) & 1)};
                FUZZ_CHECK(seal(&c, &cio, 22, ku, 5) == LG_REC_OK);
                FUZZ_CHECK(key_update(&c.tx, c.suite, true) == LG_REC_OK);
                if (model == 0 && ku[4] == 1) asked = true;
                break;
            }
            case 2: /* close_notify */
                c.close_sent = false;
                FUZZ_CHECK(lg_rec_close_notify(&c, &cio) == LG_REC_OK);
                if (model == 0) model = 1;
                break;
            case 3: { /* an arbitrary inner content */
                size_t n = take8(&in) % 64;
                if ((op >> 3) & 1) n = LG_REC_MAX_PLAIN - 32 + take8(&in) % 64;
                size_t k = LG_MIN(n, in.n);
                memset(buf, 0, n);
                memcpy(buf, in.p, k);
                in.p += k;
                in.n -= k;
                buf[n] = 0; /* seal_one's content type byte: buf's last non-zero byte is the type */
                size_t last = n;
                while (last > 0 && buf[last - 1] == 0)
                    last--;
                if (last > 0 && buf[last - 1] == 22) buf[last - 1] = 23; /* see model_inner */
                static uint8_t rec[LG_REC_MAX_PLAIN + 128];
                FUZZ_CHECK(seal_one(&c.tx, 0, buf, n, rec) == LG_REC_OK);
                FUZZ_CHECK(lg_bufq_append(&c_out, &pool, rec, n + LG_REC_OVERHEAD) ==
                           n + LG_REC_OVERHEAD);
                if (model == 0) model = model_inner(buf, n + 1, &expect, &runs);
                break;
            }
            case 4: { /* the server writes */
                size_t n = take16(&in) % 40000;
                for (size_t i = 0; i < n; i++)
                    buf[i] = (uint8_t)(i * 3 + op);
                FUZZ_CHECK(lg_rec_write(&s, &sio, buf, n) == LG_REC_OK);
                bytes_add(&server_wrote, buf, n);
                break;
            }
            }
        }
        FUZZ_CHECK(lg_bufq_consistent(&c_out));
        /* Feed the client's ciphertext to the server in chunks of 1..2^16 bytes. */
        uint8_t *cipher = flatten(&c_out);
        size_t clen = c_out.bytes, off = 0;
        unsigned seed = (unsigned)size * 2654435761u;
        int rc = LG_REC_OK;
        while (off < clen && rc == LG_REC_OK) {
            seed = seed * 1103515245u + 12345u;
            size_t chunk = LG_MIN((size_t)(seed >> 16) % 20000 + 1, clen - off);
            rc = lg_rec_read(&s, &sio, cipher + off, chunk);
            off += chunk;
            FUZZ_CHECK(lg_bufq_consistent(&s_in) && lg_bufq_consistent(&s_out));
        }
        free(cipher);
        FUZZ_CHECK((rc == LG_REC_OK) == (model >= 0));
        FUZZ_CHECK(s.closed == (model == 1));
        uint8_t *got = flatten(&s_in);
        FUZZ_CHECK(s_in.bytes == expect.n &&
                   (expect.n == 0 || memcmp(got, expect.p, expect.n) == 0));
        free(got);
        if (rc == LG_REC_OK) {
            /* The client opens all the server wrote (data and KeyUpdate answers). */
            uint8_t *sc = flatten(&s_out);
            size_t sl = s_out.bytes;
            cio.keyupdate = count_keyupdate;
            cio.arg = &answers;
            int crc = lg_rec_read(&c, &cio, sc, sl);
            free(sc);
            FUZZ_CHECK(crc == LG_REC_OK && lg_bufq_consistent(&c_in));
            FUZZ_CHECK(answers == (asked ? 1 : 0));
            got = flatten(&c_in);
            FUZZ_CHECK(c_in.bytes == server_wrote.n &&
                       (server_wrote.n == 0 || memcmp(got, server_wrote.p, server_wrote.n) == 0));
            free(got);
        }
    }
    free(expect.p);
    free(server_wrote.p);
    lg_bufq_clear(&c_out, &pool);
    lg_bufq_clear(&c_in, &pool);
    lg_bufq_clear(&s_out, &pool);
    lg_bufq_clear(&s_in, &pool);
    lg_rec_free(&s);
    lg_rec_free(&c);
    lg_bufpool_destroy(&pool);
    return 0;
}
