/*
 * lg_buf.c — byte buffers, a per-worker pool of them, and byte queues (pure core; see lg_buf.h).
 *
 * Pool invariants:
 *   - every buffer on free_list has cap == size and n_free <= max_free, where
 *     max_free = max(1, LG_BUFPOOL_FREE_MAX_BYTES / size): spare memory is bounded by about
 *     LG_BUFPOOL_FREE_MAX_BYTES (one buffer when a single buffer is larger than that);
 *   - n_out == buffers returned by lg_buf_get() and not yet given to lg_buf_put(), whether they
 *     sit in a queue, in a read in progress or in a write in flight.
 *
 * Queue invariants:
 *   - every queued buffer holds len > 0 unconsumed bytes (emptied buffers leave at once);
 *   - bytes == sum of len, mem == sum of cap over the queued buffers;
 *   - head == NULL iff tail == NULL iff bytes == 0 iff mem == 0.
 *
 * Coalescing: a pushed buffer that holds at most a quarter of its capacity is copied into the
 * tail's free space when it fits whole, so a peer that trickles tiny reads costs one buffer per
 * buffer-full of bytes instead of one per read. Copies are at most cap/4 bytes, so the copy cost
 * is bounded by a quarter of the bytes moved; bigger reads are linked without copying.
 */
#include "lg_buf.h"

#include <string.h>

#define LG_BUF_COALESCE_DIV 4 /* coalesce a pushed buffer holding at most cap / 4 bytes */

void lg_bufpool_init(lg_bufpool_t *p, size_t size)
{
    memset(p, 0, sizeof(*p));
    if (size < LG_BUF_SIZE_MIN) size = LG_BUF_SIZE_MIN;
    if (size > LG_BUF_SIZE_MAX) size = LG_BUF_SIZE_MAX;
    p->size = size;
    p->max_free = LG_MAX((size_t)1, (size_t)LG_BUFPOOL_FREE_MAX_BYTES / size);
}

void lg_bufpool_destroy(lg_bufpool_t *p)
{
    lg_buf_t *b = p->free_list;
    while (b) {
        lg_buf_t *next = b->next;
        lg_free(b);
        b = next;
    }
    p->free_list = NULL;
    p->n_free = 0;
    atomic_store_explicit(&p->n_free_shared, 0, memory_order_relaxed);
}

lg_buf_t *lg_buf_get(lg_bufpool_t *p)
{
    lg_buf_t *b = p->free_list;
    if (b) {
        p->free_list = b->next;
        p->n_free--;
        atomic_store_explicit(&p->n_free_shared, p->n_free, memory_order_relaxed);
    } else {
        b = lg_malloc(sizeof(lg_buf_t) + p->size);
        if (b == NULL) return NULL;
        p->allocs++;
        b->cap = (uint32_t)p->size;
    }
    b->next = NULL;
    b->off = 0;
    b->len = 0;
    p->n_out++;
    atomic_store_explicit(&p->n_out_shared, p->n_out, memory_order_relaxed);
    return b;
}

void lg_buf_put(lg_bufpool_t *p, lg_buf_t *b)
{
    if (b == NULL) return;
    p->n_out--;
    atomic_store_explicit(&p->n_out_shared, p->n_out, memory_order_relaxed);
    /* A buffer of another size (another pool's) is not kept: the free list holds one size. */
    if (p->n_free < p->max_free && b->cap == p->size) {
        b->next = p->free_list;
        p->free_list = b;
        p->n_free++;
        atomic_store_explicit(&p->n_free_shared, p->n_free, memory_order_relaxed);
    } else {
        lg_free(b);
    }
}

void lg_bufq_push_front(lg_bufq_t *q, lg_buf_t *b)
{
    if (b == NULL || b->len == 0) return;
    b->next = q->head;
    q->head = b;
    if (q->tail == NULL) q->tail = b;
    q->bytes += b->len;
    q->mem += b->cap;
}

void lg_bufq_move(lg_bufq_t *to, lg_bufq_t *from, lg_bufpool_t *p)
{
    lg_buf_t *b = from->head;
    memset(from, 0, sizeof(*from));
    while (b != NULL) {
        lg_buf_t *next = b->next;
        lg_bufq_push(to, p, b);
        b = next;
    }
}

void lg_bufq_push(lg_bufq_t *q, lg_bufpool_t *p, lg_buf_t *b)
{
    if (b == NULL) return;
    if (b->len == 0) {
        lg_buf_put(p, b);
        return;
    }
    lg_buf_t *t = q->tail;
    if (t != NULL && b->len <= b->cap / LG_BUF_COALESCE_DIV &&
        b->len <= t->cap - (t->off + t->len)) {
        memcpy(t->data + t->off + t->len, b->data + b->off, b->len);
        t->len += b->len;
        q->bytes += b->len;
        lg_buf_put(p, b);
        return;
    }
    b->next = NULL;
    if (t) {
        t->next = b;
    } else {
        q->head = b;
    }
    q->tail = b;
    q->bytes += b->len;
    q->mem += b->cap;
}

size_t lg_bufq_append(lg_bufq_t *q, lg_bufpool_t *p, const uint8_t *data, size_t len)
{
    size_t done = 0;
    lg_buf_t *t = q->tail;
    if (t != NULL) {
        size_t room = t->cap - (t->off + t->len);
        size_t n = LG_MIN(room, len);
        if (n > 0) memcpy(t->data + t->off + t->len, data, n);
        t->len += (uint32_t)n;
        done = n;
    }
    while (done < len) {
        lg_buf_t *b = lg_buf_get(p);
        if (b == NULL) break;
        size_t n = LG_MIN((size_t)b->cap, len - done);
        memcpy(b->data, data + done, n);
        b->len = (uint32_t)n;
        b->next = NULL;
        if (q->tail) {
            q->tail->next = b;
        } else {
            q->head = b;
        }
        q->tail = b;
        q->mem += b->cap;
        done += n;
    }
    q->bytes += done;
    return done;
}

uint8_t *lg_bufq_room(const lg_bufq_t *q, size_t *room)
{
    lg_buf_t *t = q->tail;
    if (t == NULL) {
        *room = 0;
        return NULL;
    }
    *room = t->cap - (t->off + t->len);
    return t->data + t->off + t->len;
}

void lg_bufq_commit(lg_bufq_t *q, size_t n)
{
    lg_buf_t *t = q->tail;
    if (t == NULL || n > t->cap - (t->off + t->len)) return; /* caller bug: nothing to commit */
    t->len += (uint32_t)n;
    q->bytes += (uint32_t)n;
}

size_t lg_bufq_peek(const lg_bufq_t *q, size_t n, uint8_t **bases, size_t *lens, size_t max_iov,
                    size_t *covered)
{
    size_t k = 0, got = 0;
    if (n > q->bytes) n = q->bytes;
    for (const lg_buf_t *b = q->head; b != NULL && got < n && k < max_iov; b = b->next) {
        size_t take = LG_MIN((size_t)b->len, n - got);
        /* The queue owns the buffer; the caller writes from it but must not change it. */
        bases[k] = (uint8_t *)(uintptr_t)(b->data + b->off);
        lens[k] = take;
        got += take;
        k++;
    }
    if (covered) *covered = got;
    return k;
}

void lg_bufq_consume(lg_bufq_t *q, lg_bufpool_t *p, size_t n)
{
    if (n > q->bytes) n = q->bytes; /* caller bug; never walk off the end */
    q->bytes -= n;
    while (n > 0) {
        lg_buf_t *b = q->head;
        if (n < b->len) {
            b->off += (uint32_t)n;
            b->len -= (uint32_t)n;
            return;
        }
        n -= b->len;
        q->head = b->next;
        if (q->head == NULL) q->tail = NULL;
        q->mem -= b->cap;
        lg_buf_put(p, b);
    }
}

void lg_bufq_clear(lg_bufq_t *q, lg_bufpool_t *p)
{
    lg_buf_t *b = q->head;
    while (b) {
        lg_buf_t *next = b->next;
        lg_buf_put(p, b);
        b = next;
    }
    q->head = q->tail = NULL;
    q->bytes = 0;
    q->mem = 0;
}

bool lg_bufq_consistent(const lg_bufq_t *q)
{
    size_t bytes = 0, mem = 0;
    const lg_buf_t *last = NULL;
    for (const lg_buf_t *b = q->head; b != NULL; b = b->next) {
        if (b->len == 0 || b->off + b->len > b->cap) return false;
        bytes += b->len;
        mem += b->cap;
        last = b;
    }
    return last == q->tail && bytes == q->bytes && mem == q->mem;
}
