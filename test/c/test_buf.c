/*
 * test_buf.c — unit tests of the buffer pool and byte queues (src/lg_buf.c).
 *
 * Covers pool accounting (n_out, n_free, allocs), the spare-list bound at exactly max_free and
 * max_free + 1, injected allocation failure, queue push/peek/consume across and exactly at buffer
 * boundaries, coalescing of small pushes (at exactly cap/4 and cap/4 + 1, tail room exactly
 * enough and one short), peek limits, clear, and a randomised comparison against a flat byte
 * array. ASan reports any buffer leaked or used after return.
 */
#include "../../src/lg_buf.c"

#include <stdio.h>
#include <stdlib.h>

#include "lg_test.h"

/* A buffer from the pool holding `len` bytes at `off`, byte k being (seed + k) & 0xff. */
static lg_buf_t *filled(lg_bufpool_t *p, size_t off, size_t len, unsigned seed)
{
    lg_buf_t *b = lg_buf_get(p);
    if (b == NULL) return NULL;
    for (size_t k = 0; k < len; k++)
        b->data[off + k] = (uint8_t)(seed + k);
    b->off = (uint32_t)off;
    b->len = (uint32_t)len;
    return b;
}

/* Copy out the first n queued bytes through peek (up to 64 pairs); returns bytes copied. */
static size_t flatten(const lg_bufq_t *q, size_t n, uint8_t *out)
{
    uint8_t *bases[64];
    size_t lens[64], covered = 0, got = 0;
    size_t k = lg_bufq_peek(q, n, bases, lens, 64, &covered);
    for (size_t i = 0; i < k; i++) {
        memcpy(out + got, bases[i], lens[i]);
        got += lens[i];
    }
    return got == covered ? got : (size_t)-1;
}

LG_TEST(test_pool_init_sizes)
{
    static const struct {
        size_t size, want_size, want_max_free;
        const char *why;
    } rows[] = {
        {LG_BUF_SIZE_MIN - 1, LG_BUF_SIZE_MIN, 4096, "below min: clamped"},
        {LG_BUF_SIZE_MIN, LG_BUF_SIZE_MIN, 4096, "exactly min"},
        {65536, 65536, 64, "default readBufferSize"},
        {1u << 20, 1u << 20, 4, "1 MiB"},
        {LG_BUFPOOL_FREE_MAX_BYTES, LG_BUFPOOL_FREE_MAX_BYTES, 1, "exactly the spare budget"},
        {LG_BUFPOOL_FREE_MAX_BYTES + 1, LG_BUFPOOL_FREE_MAX_BYTES + 1, 1, "over it: still one"},
        {LG_BUF_SIZE_MAX, LG_BUF_SIZE_MAX, 1, "exactly max"},
        {(size_t)LG_BUF_SIZE_MAX + 1, LG_BUF_SIZE_MAX, 1, "above max: clamped"},
    };
    for (size_t i = 0; i < LG_ARRAY_SIZE(rows); i++) {
        lg_bufpool_t p;
        lg_bufpool_init(&p, rows[i].size);
        CHECK_ROW(p.size == rows[i].want_size, rows[i].why);
        CHECK_ROW(p.max_free == rows[i].want_max_free, rows[i].why);
        CHECK_ROW(p.n_out == 0 && p.n_free == 0 && p.allocs == 0, rows[i].why);
        lg_bufpool_destroy(&p);
    }
}

LG_TEST(test_pool_get_put)
{
    lg_bufpool_t p;
    lg_bufpool_init(&p, 4096);
    lg_buf_t *a = lg_buf_get(&p), *b = lg_buf_get(&p), *c = lg_buf_get(&p);
    CHECK(a && b && c);
    CHECK_EQ_INT(p.n_out, 3);
    CHECK_EQ_INT(p.allocs, 3);
    CHECK_EQ_INT(a->cap, 4096);
    CHECK(a->off == 0 && a->len == 0 && a->next == NULL);
    memset(a->data, 0xab, a->cap); /* the whole capacity is writable */
    a->off = 10;
    a->len = 20;
    lg_buf_put(&p, a);
    lg_buf_put(&p, NULL); /* ignored */
    CHECK_EQ_INT(p.n_out, 2);
    CHECK_EQ_INT(p.n_free, 1);
    lg_buf_t *d = lg_buf_get(&p); /* reused, reset */
    CHECK(d == a);
    CHECK(d->off == 0 && d->len == 0 && d->next == NULL);
    CHECK_EQ_INT(p.allocs, 3);
    CHECK_EQ_INT(p.n_free, 0);
    lg_buf_put(&p, b);
    lg_buf_put(&p, c);
    lg_buf_put(&p, d);
    CHECK_EQ_INT(p.n_out, 0);
    CHECK_EQ_INT(p.n_free, 3);
    lg_bufpool_destroy(&p);
    CHECK_EQ_INT(p.n_free, 0);
    CHECK(p.free_list == NULL);
}

LG_TEST(test_pool_spare_bound)
{
    /* 1 MiB buffers: max_free = 4 MiB / 1 MiB = 4. Return 5: 4 kept (max), the 5th freed. */
    enum { K = 5 };
    lg_bufpool_t p;
    lg_buf_t *b[K];
    lg_bufpool_init(&p, 1u << 20);
    CHECK_EQ_INT(p.max_free, 4);
    for (int i = 0; i < K; i++)
        CHECK((b[i] = lg_buf_get(&p)) != NULL);
    for (int i = 0; i < K - 1; i++)
        lg_buf_put(&p, b[i]);
    CHECK_EQ_INT(p.n_free, 4); /* exactly max_free */
    lg_buf_put(&p, b[K - 1]);
    CHECK_EQ_INT(p.n_free, 4); /* max_free + 1: freed, not kept */
    CHECK_EQ_INT(p.n_out, 0);
    for (int i = 0; i < K; i++)
        CHECK((b[i] = lg_buf_get(&p)) != NULL);
    CHECK_EQ_INT(p.allocs, K + 1); /* four reused, one new */
    for (int i = 0; i < K; i++)
        lg_buf_put(&p, b[i]);
    lg_bufpool_destroy(&p);

    /* Buffers larger than the spare budget: one is still kept. */
    lg_bufpool_init(&p, LG_BUFPOOL_FREE_MAX_BYTES * 2);
    b[0] = lg_buf_get(&p);
    b[1] = lg_buf_get(&p);
    CHECK(b[0] && b[1]);
    lg_buf_put(&p, b[0]);
    lg_buf_put(&p, b[1]);
    CHECK_EQ_INT(p.n_free, 1);
    lg_bufpool_destroy(&p);

    /* A buffer of another size is never kept as a spare. */
    lg_bufpool_t other;
    lg_bufpool_init(&p, 1024);
    lg_bufpool_init(&other, 2048);
    lg_buf_t *x = lg_buf_get(&other);
    CHECK(x != NULL);
    p.n_out++; /* pretend p handed it out so its accounting stays balanced */
    other.n_out--;
    lg_buf_put(&p, x);
    CHECK_EQ_INT(p.n_free, 0);
    CHECK_EQ_INT(p.n_out, 0);
    lg_bufpool_destroy(&p);
    lg_bufpool_destroy(&other);
}

LG_TEST(test_pool_alloc_failure)
{
    lg_bufpool_t p;
    lg_bufpool_init(&p, 2048);
    lg_alloc_fail_after(0);
    lg_buf_t *b = lg_buf_get(&p);
    CHECK(b == NULL);
    CHECK_EQ_INT(p.n_out, 0);
    CHECK_EQ_INT(p.allocs, 0);
    b = lg_buf_get(&p); /* the failure was one-shot */
    CHECK(b != NULL);
    lg_buf_put(&p, b);

    /* With a spare available nothing is allocated, so an armed failure does not hit get. */
    lg_alloc_fail_after(0);
    b = lg_buf_get(&p);
    CHECK(b != NULL);
    lg_buf_t *c = lg_buf_get(&p); /* this one must allocate, and fails */
    lg_alloc_fail_after(-1);
    CHECK(c == NULL);
    CHECK_EQ_INT(p.n_out, 1);
    lg_buf_put(&p, b);
    lg_bufpool_destroy(&p);
}

LG_TEST(test_queue_push_peek_consume)
{
    lg_bufpool_t p;
    lg_bufq_t q = {0};
    uint8_t out[4096], want[4096];
    lg_bufpool_init(&p, 1024);

    /* Three buffers of 1000 bytes (over cap/4: linked, not copied). */
    for (unsigned i = 0; i < 3; i++)
        lg_bufq_push(&q, &p, filled(&p, 0, 1000, i * 1000));
    for (size_t k = 0; k < 3000; k++)
        want[k] = (uint8_t)k;
    CHECK_EQ_INT(q.bytes, 3000);
    CHECK_EQ_INT(q.mem, 3 * 1024);
    CHECK_EQ_INT(p.n_out, 3);
    CHECK(lg_bufq_consistent(&q));

    /* Peek does not consume. */
    CHECK_EQ_INT(flatten(&q, 3000, out), 3000);
    CHECK(memcmp(out, want, 3000) == 0);
    CHECK_EQ_INT(q.bytes, 3000);

    /* Consume across a boundary: 1500 = first buffer (returned) + 500 of the second. */
    lg_bufq_consume(&q, &p, 1500);
    CHECK_EQ_INT(q.bytes, 1500);
    CHECK_EQ_INT(q.mem, 2 * 1024);
    CHECK_EQ_INT(p.n_out, 2);
    CHECK(lg_bufq_consistent(&q));
    CHECK_EQ_INT(flatten(&q, 3000, out), 1500);
    CHECK(memcmp(out, want + 1500, 1500) == 0);

    /* Consume exactly to the next boundary: the second buffer goes back. */
    lg_bufq_consume(&q, &p, 500);
    CHECK_EQ_INT(q.bytes, 1000);
    CHECK_EQ_INT(p.n_out, 1);
    CHECK(q.head == q.tail);
    CHECK(lg_bufq_consistent(&q));

    /* Zero is a no-op; more than queued is clamped; the queue ends empty. */
    lg_bufq_consume(&q, &p, 0);
    CHECK_EQ_INT(q.bytes, 1000);
    lg_bufq_consume(&q, &p, 999);
    CHECK_EQ_INT(q.bytes, 1);
    CHECK_EQ_INT(p.n_out, 1);
    lg_bufq_consume(&q, &p, 5);
    CHECK(q.head == NULL && q.tail == NULL && q.bytes == 0 && q.mem == 0);
    CHECK_EQ_INT(p.n_out, 0);
    CHECK(lg_bufq_consistent(&q));

    /* Consume exactly two whole buffers at once. */
    for (unsigned i = 0; i < 3; i++)
        lg_bufq_push(&q, &p, filled(&p, 0, 1000, i * 1000));
    lg_bufq_consume(&q, &p, 2000);
    CHECK_EQ_INT(p.n_out, 1);
    CHECK_EQ_INT(flatten(&q, 3000, out), 1000);
    CHECK(memcmp(out, want + 2000, 1000) == 0);
    lg_bufq_clear(&q, &p);
    lg_bufpool_destroy(&p);
}

LG_TEST(test_push_empty_and_null)
{
    lg_bufpool_t p;
    lg_bufq_t q = {0};
    lg_bufpool_init(&p, 1024);
    lg_bufq_push(&q, &p, lg_buf_get(&p)); /* len 0: straight back */
    CHECK(q.head == NULL && q.bytes == 0 && q.mem == 0);
    CHECK_EQ_INT(p.n_out, 0);
    CHECK_EQ_INT(p.n_free, 1);
    lg_bufq_push(&q, &p, NULL);
    CHECK(q.head == NULL);
    lg_bufq_push(&q, &p, filled(&p, 0, 10, 0));
    lg_bufq_push(&q, &p, lg_buf_get(&p)); /* len 0 behind data: also straight back */
    CHECK_EQ_INT(q.bytes, 10);
    CHECK_EQ_INT(p.n_out, 1);
    CHECK(lg_bufq_consistent(&q));
    lg_bufq_clear(&q, &p);
    lg_bufpool_destroy(&p);
}

LG_TEST(test_coalescing_trickle)
{
    /* 5000 one-byte pushes into 1024-byte buffers: 5 buffers, not 5000. */
    lg_bufpool_t p;
    lg_bufq_t q = {0};
    lg_bufpool_init(&p, 1024);
    for (unsigned i = 0; i < 5000; i++) {
        lg_bufq_push(&q, &p, filled(&p, 0, 1, i));
        CHECK(lg_bufq_consistent(&q));
    }
    CHECK_EQ_INT(q.bytes, 5000);
    CHECK_EQ_INT(q.mem, 5 * 1024);
    CHECK_EQ_INT(p.n_out, 5);
    CHECK_EQ_INT(p.allocs, 6); /* five held plus the one recycled for every push */
    uint8_t out[5000];
    CHECK_EQ_INT(flatten(&q, 5000, out), 5000);
    for (unsigned i = 0; i < 5000; i++)
        CHECK_EQ_INT(out[i], (uint8_t)i);
    lg_bufq_clear(&q, &p);
    CHECK_EQ_INT(p.n_out, 0);
    lg_bufpool_destroy(&p);
}

LG_TEST(test_coalescing_limits)
{
    lg_bufpool_t p;
    lg_bufq_t q = {0};
    lg_bufpool_init(&p, 1024);

    /* Pushed len exactly cap/4 (256): copied. cap/4 + 1 (257): linked. */
    lg_bufq_push(&q, &p, filled(&p, 0, 100, 0));
    lg_bufq_push(&q, &p, filled(&p, 0, 256, 100));
    CHECK_EQ_INT(p.n_out, 1);
    CHECK_EQ_INT(q.mem, 1024);
    lg_bufq_push(&q, &p, filled(&p, 0, 257, 356));
    CHECK_EQ_INT(p.n_out, 2);
    CHECK_EQ_INT(q.mem, 2048);
    CHECK_EQ_INT(q.bytes, 613);
    uint8_t out[2048];
    CHECK_EQ_INT(flatten(&q, 2048, out), 613);
    for (unsigned i = 0; i < 613; i++)
        CHECK_EQ_INT(out[i], (uint8_t)i);
    lg_bufq_clear(&q, &p);

    /* Tail room exactly the pushed length: copied; one byte short: linked. */
    lg_bufq_push(&q, &p, filled(&p, 0, 1024 - 200, 0)); /* room 200 */
    lg_bufq_push(&q, &p, filled(&p, 0, 200, 0));
    CHECK_EQ_INT(p.n_out, 1);
    CHECK_EQ_INT(q.bytes, 1024);
    lg_bufq_clear(&q, &p);
    lg_bufq_push(&q, &p, filled(&p, 0, 1024 - 199, 0)); /* room 199 */
    lg_bufq_push(&q, &p, filled(&p, 0, 200, 0));
    CHECK_EQ_INT(p.n_out, 2);
    CHECK_EQ_INT(q.bytes, 1025);
    CHECK(lg_bufq_consistent(&q));
    lg_bufq_clear(&q, &p);

    /* Room is counted after off + len: a tail read into at an offset has less. */
    lg_bufq_push(&q, &p, filled(&p, 800, 100, 0)); /* room 124 */
    lg_bufq_push(&q, &p, filled(&p, 0, 124, 100));
    CHECK_EQ_INT(p.n_out, 1);
    lg_bufq_push(&q, &p, filled(&p, 0, 1, 224)); /* no room left */
    CHECK_EQ_INT(p.n_out, 2);
    CHECK_EQ_INT(flatten(&q, 2048, out), 225);
    for (unsigned i = 0; i < 225; i++)
        CHECK_EQ_INT(out[i], (uint8_t)i);
    CHECK(lg_bufq_consistent(&q));

    /* A consumed head that is also the tail still receives copies after its bytes. */
    lg_bufq_clear(&q, &p);
    lg_bufq_push(&q, &p, filled(&p, 0, 300, 0));
    lg_bufq_consume(&q, &p, 250);
    lg_bufq_push(&q, &p, filled(&p, 0, 10, 300));
    CHECK_EQ_INT(p.n_out, 1);
    CHECK_EQ_INT(flatten(&q, 2048, out), 60);
    for (unsigned i = 0; i < 60; i++)
        CHECK_EQ_INT(out[i], (uint8_t)(250 + i));
    lg_bufq_clear(&q, &p);
    lg_bufpool_destroy(&p);
}

LG_TEST(test_peek_limits)
{
    lg_bufpool_t p;
    lg_bufq_t q = {0};
    uint8_t *bases[4];
    size_t lens[4], covered = 99;
    lg_bufpool_init(&p, 1024);

    /* Empty queue. */
    CHECK_EQ_INT(lg_bufq_peek(&q, 100, bases, lens, 4, &covered), 0);
    CHECK_EQ_INT(covered, 0);

    for (unsigned i = 0; i < 3; i++)
        lg_bufq_push(&q, &p, filled(&p, 0, 1000, i * 1000));

    /* max_iov exactly the buffer count, one fewer, one, zero. */
    CHECK_EQ_INT(lg_bufq_peek(&q, SIZE_MAX, bases, lens, 3, &covered), 3);
    CHECK_EQ_INT(covered, 3000);
    CHECK_EQ_INT(lg_bufq_peek(&q, SIZE_MAX, bases, lens, 2, &covered), 2);
    CHECK_EQ_INT(covered, 2000);
    CHECK(bases[0] == q.head->data && bases[1] == q.head->next->data);
    CHECK_EQ_INT(lg_bufq_peek(&q, SIZE_MAX, bases, lens, 1, &covered), 1);
    CHECK_EQ_INT(covered, 1000);
    CHECK_EQ_INT(lg_bufq_peek(&q, SIZE_MAX, bases, lens, 0, &covered), 0);
    CHECK_EQ_INT(covered, 0);

    /* n limits: inside the first buffer, exactly at a boundary, one past it, beyond all. */
    CHECK_EQ_INT(lg_bufq_peek(&q, 10, bases, lens, 4, &covered), 1);
    CHECK_EQ_INT(lens[0], 10);
    CHECK_EQ_INT(covered, 10);
    CHECK_EQ_INT(lg_bufq_peek(&q, 1000, bases, lens, 4, &covered), 1);
    CHECK_EQ_INT(covered, 1000);
    CHECK_EQ_INT(lg_bufq_peek(&q, 1001, bases, lens, 4, &covered), 2);
    CHECK_EQ_INT(lens[1], 1);
    CHECK_EQ_INT(covered, 1001);
    CHECK_EQ_INT(lg_bufq_peek(&q, 0, bases, lens, 4, &covered), 0);
    CHECK_EQ_INT(covered, 0);
    CHECK_EQ_INT(lg_bufq_peek(&q, 5000, bases, lens, 4, NULL), 3); /* covered may be NULL */

    /* After a partial consume the first pair starts at the offset. */
    lg_bufq_consume(&q, &p, 300);
    CHECK_EQ_INT(lg_bufq_peek(&q, SIZE_MAX, bases, lens, 4, &covered), 3);
    CHECK(bases[0] == q.head->data + 300);
    CHECK_EQ_INT(lens[0], 700);
    CHECK_EQ_INT(covered, 2700);
    CHECK_EQ_INT(bases[0][0], (uint8_t)300);
    CHECK_EQ_INT(q.bytes, 2700); /* peek consumed nothing */
    lg_bufq_clear(&q, &p);
    lg_bufpool_destroy(&p);
}

LG_TEST(test_clear_returns_everything)
{
    lg_bufpool_t p;
    lg_bufq_t q1 = {0}, q2 = {0};
    lg_bufpool_init(&p, 1024);
    for (unsigned i = 0; i < 10; i++)
        lg_bufq_push(&q1, &p, filled(&p, 0, 900, i));
    for (unsigned i = 0; i < 100; i++)
        lg_bufq_push(&q2, &p, filled(&p, 0, 7, i));
    CHECK(p.n_out > 10);
    lg_bufq_clear(&q1, &p);
    CHECK(q1.head == NULL && q1.tail == NULL && q1.bytes == 0 && q1.mem == 0);
    lg_bufq_clear(&q2, &p);
    CHECK_EQ_INT(p.n_out, 0);
    lg_bufq_clear(&q2, &p); /* clearing an empty queue is harmless */
    CHECK_EQ_INT(p.n_out, 0);
    CHECK(lg_bufq_consistent(&q2));
    /* The queue is usable again. */
    lg_bufq_push(&q1, &p, filled(&p, 0, 5, 0));
    CHECK_EQ_INT(q1.bytes, 5);
    lg_bufq_clear(&q1, &p);
    CHECK_EQ_INT(p.n_out, 0);
    lg_bufpool_destroy(&p);
}

static uint64_t rng_next(uint64_t *s)
{
    *s ^= *s >> 12;
    *s ^= *s << 25;
    *s ^= *s >> 27;
    return *s * 2685821657736338717ULL;
}

LG_TEST(test_random_against_flat_model)
{
    /* Random pushes (random offsets and lengths) and consumes against a flat byte array. */
    enum { MODEL = 1 << 20, STEPS = 20000 };
    uint8_t *model = malloc(MODEL), *out = malloc(MODEL);
    CHECK(model && out);
    size_t mhead = 0, mtail = 0; /* model[mhead..mtail) is what the queue must hold */
    uint64_t seed = 42;
    unsigned next_byte = 0;
    lg_bufpool_t p;
    lg_bufq_t q = {0};
    lg_bufpool_init(&p, 1024);
    for (int s = 0; s < STEPS && mtail + 1024 < MODEL; s++) {
        if (rng_next(&seed) % 3 != 0) {
            size_t len = (size_t)(rng_next(&seed) % (rng_next(&seed) % 2 ? 1025 : 40));
            size_t off = len < 1024 ? (size_t)(rng_next(&seed) % (1024 - len + 1)) : 0;
            lg_buf_t *b = filled(&p, off, len, next_byte);
            CHECK(b != NULL);
            for (size_t k = 0; k < len; k++)
                model[mtail++] = (uint8_t)(next_byte + k);
            next_byte += (unsigned)len;
            lg_bufq_push(&q, &p, b);
        } else {
            size_t n = (size_t)(rng_next(&seed) % 1500);
            lg_bufq_consume(&q, &p, n);
            mhead += LG_MIN(n, mtail - mhead);
        }
        CHECK(lg_bufq_consistent(&q));
        CHECK_EQ_INT(q.bytes, mtail - mhead);
        /* Coalescing bound: never more buffers than bytes, and mem stays proportionate. */
        CHECK(q.mem <= 1024 * (q.bytes + 1));
        if (s % 97 == 0) {
            size_t want = LG_MIN(q.bytes, (size_t)32 * 1024);
            size_t got = flatten(&q, want, out);
            CHECK(got <= want); /* 64 pairs may cover less */
            CHECK(memcmp(out, model + mhead, got) == 0);
        }
    }
    lg_bufq_clear(&q, &p);
    CHECK_EQ_INT(p.n_out, 0);
    lg_bufpool_destroy(&p);
    free(model);
    free(out);
}

/* lg_bufq_append fills the tail's room first, then whole new buffers; bytes stay in order,
 * and an allocation failure appends a prefix and says how much. */
LG_TEST(test_append)
{
    lg_bufpool_t p;
    lg_bufpool_init(&p, 1024);
    lg_bufq_t q;
    memset(&q, 0, sizeof(q));
    uint8_t data[3000], out[4096];
    for (size_t i = 0; i < sizeof(data); i++)
        data[i] = (uint8_t)(i * 7);
    CHECK_EQ_INT(lg_bufq_append(&q, &p, data, 100), 100);
    CHECK_EQ_INT(q.mem, 1024); /* one buffer */
    CHECK_EQ_INT(lg_bufq_append(&q, &p, data + 100, 924), 924);
    CHECK_EQ_INT(q.mem, 1024); /* exactly filled the tail's room */
    CHECK_EQ_INT(lg_bufq_append(&q, &p, data + 1024, 1), 1);
    CHECK_EQ_INT(q.mem, 2048); /* max + 1: a second buffer */
    lg_alloc_fail_after(0);
    size_t got = lg_bufq_append(&q, &p, data + 1025, 1975);
    lg_alloc_fail_after(-1);
    CHECK_EQ_INT(got, 1023); /* the tail's room only */
    CHECK_EQ_INT(lg_bufq_append(&q, &p, data + 1025 + got, 1975 - got), 1975 - got);
    CHECK_EQ_INT(q.bytes, 3000);
    CHECK(lg_bufq_consistent(&q));
    CHECK_EQ_INT(flatten(&q, 3000, out), 3000);
    CHECK(memcmp(out, data, 3000) == 0);
    lg_bufq_clear(&q, &p);
    CHECK_EQ_INT(p.n_out, 0);
    lg_bufpool_destroy(&p);
}

LG_TEST(test_push_front)
{
    /* A header put in front of queued bytes comes out first; an empty queue takes one too. */
    lg_bufpool_t p;
    lg_bufq_t q = {0};
    uint8_t out[64];
    lg_bufpool_init(&p, 1024);
    lg_bufq_push_front(&q, NULL);
    lg_buf_t *empty = lg_buf_get(&p);
    lg_bufq_push_front(&q, empty); /* len 0: not taken */
    CHECK(q.head == NULL && q.bytes == 0 && q.mem == 0);
    lg_buf_put(&p, empty);
    lg_bufq_push_front(&q, filled(&p, 0, 5, 10));
    CHECK(lg_bufq_consistent(&q) && q.bytes == 5);
    lg_bufq_clear(&q, &p);
    lg_bufq_push(&q, &p, filled(&p, 0, 20, 5));  /* bytes 5..24 */
    lg_bufq_push_front(&q, filled(&p, 3, 5, 0)); /* bytes 0..4 */
    CHECK_EQ_INT(q.bytes, 25);
    CHECK(lg_bufq_consistent(&q));
    CHECK_EQ_INT(flatten(&q, 25, out), 25);
    for (size_t i = 0; i < 25; i++)
        CHECK_EQ_INT(out[i], i);
    lg_bufq_clear(&q, &p);
    CHECK_EQ_INT(p.n_out, 0);
    lg_bufpool_destroy(&p);
}

LG_TEST(room_and_commit)
{
    lg_bufpool_t p;
    lg_bufpool_init(&p, 1024);
    lg_bufq_t q = {0};
    size_t room = 99;
    CHECK(lg_bufq_room(&q, &room) == NULL && room == 0);
    CHECK(lg_bufq_append(&q, &p, (const uint8_t *)"abc", 3) == 3);
    uint8_t *at = lg_bufq_room(&q, &room);
    CHECK(at == q.tail->data + 3 && room == 1021);
    memcpy(at, "defg", 4);
    lg_bufq_commit(&q, 4);
    CHECK(q.bytes == 7 && q.tail->len == 7 && lg_bufq_consistent(&q));
    lg_bufq_commit(&q, 1018); /* more than the room: nothing */
    CHECK(q.bytes == 7 && lg_bufq_consistent(&q));
    lg_bufq_commit(&q, 1017); /* exactly the room */
    CHECK(q.bytes == 1024 && lg_bufq_room(&q, &room) != NULL && room == 0);
    lg_bufq_clear(&q, &p);
    lg_bufpool_destroy(&p);
}

int main(void)
{
    LG_RUN(test_pool_init_sizes);
    LG_RUN(test_pool_get_put);
    LG_RUN(test_pool_spare_bound);
    LG_RUN(test_pool_alloc_failure);
    LG_RUN(test_queue_push_peek_consume);
    LG_RUN(test_push_empty_and_null);
    LG_RUN(test_coalescing_trickle);
    LG_RUN(test_coalescing_limits);
    LG_RUN(test_peek_limits);
    LG_RUN(test_clear_returns_everything);
    LG_RUN(test_random_against_flat_model);
    LG_RUN(test_append);
    LG_RUN(test_push_front);
    LG_RUN(room_and_commit);
    LG_TEST_END();
}
