/*
 * lg_buf.h — fixed-size byte buffers, a per-worker pool of them, and byte queues (pure core).
 *
 * Idle connections hold no buffer: a buffer is taken from the worker's pool when a read is due
 * and returned once its bytes are written. The pool keeps at most `max_free` spare buffers
 * (memory returns to the allocator beyond that) and counts what it hands out.
 *
 * A queue (lg_bufq_t) is a FIFO of buffers holding the bytes of one flow that are read but not
 * yet written. Small reads are coalesced into the tail buffer's free space so that a peer
 * trickling bytes cannot pin one buffer per byte; `mem` counts buffer capacity held, which is
 * what the relay's watermarks compare against.
 *
 * Not thread-safe: a pool and its queues belong to one worker thread.
 */
#ifndef LG_BUF_H
#define LG_BUF_H

#include "lg_common.h"

#include <stdatomic.h>

#define LG_BUF_SIZE_MIN           1024       /* bytes: smallest readBufferSize */
#define LG_BUF_SIZE_MAX           (1 << 24)  /* bytes: largest readBufferSize (16 MiB) */
#define LG_BUFPOOL_FREE_MAX_BYTES (4u << 20) /* bytes of spare buffers a pool keeps (4 MiB) */

/* Owner: whoever holds it — the pool's free list, a queue, or a read in progress. */
typedef struct lg_buf_s {
    struct lg_buf_s *next;
    uint32_t off; /* first unconsumed byte */
    uint32_t len; /* bytes from off */
    uint32_t cap; /* size of data[] */
    uint8_t data[];
} lg_buf_t;

typedef struct lg_bufpool_s {
    lg_buf_t *free_list;
    size_t n_free;
    size_t max_free;             /* spare buffers kept */
    size_t size;                 /* data bytes per buffer */
    size_t n_out;                /* buffers handed out and not returned */
    atomic_size_t n_out_shared;  /* copy of n_out for other threads (metrics); owner writes */
    atomic_size_t n_free_shared; /* copy of n_free for other threads (stop report); owner writes */
    uint64_t allocs;             /* buffers obtained from lg_malloc */
} lg_bufpool_t;

/*
 * size: data bytes per buffer, LG_BUF_SIZE_MIN..LG_BUF_SIZE_MAX (values outside are clamped into
 * the range). max_free becomes max(1, LG_BUFPOOL_FREE_MAX_BYTES / size). Allocates nothing.
 */
void lg_bufpool_init(lg_bufpool_t *p, size_t size);
/* Free the spare buffers. Buffers still out must be returned first (n_out == 0). */
void lg_bufpool_destroy(lg_bufpool_t *p);
/* A buffer with off = len = 0 and cap = size (n_out + 1), or NULL when allocation fails. */
lg_buf_t *lg_buf_get(lg_bufpool_t *p);
/*
 * Return a buffer (NULL is ignored); n_out - 1. It is kept as a spare while fewer than max_free
 * are kept, otherwise freed.
 */
void lg_buf_put(lg_bufpool_t *p, lg_buf_t *b);

/* Zero-initialise to get an empty queue. Owner: the flow; lg_bufq_clear() before freeing it. */
typedef struct lg_bufq_s {
    lg_buf_t *head, *tail;
    /* 32 bits (every idle connection carries two queues): every queue is bounded well below
     * (a flow's by LG_FLOW_QUEUE_MAX plus a read, the others by the limits of their owners). */
    uint32_t bytes; /* unconsumed bytes queued */
    uint32_t mem;   /* capacity of the buffers held */
} lg_bufq_t;

/*
 * Append b (b->len bytes from b->off); the queue takes ownership. If b holds at most a quarter of
 * its capacity and the tail has room after its last byte for all of them, the bytes are copied
 * into the tail and b goes back to the pool. A buffer with len 0 goes straight back to the pool;
 * NULL is ignored.
 */
void lg_bufq_push(lg_bufq_t *q, lg_bufpool_t *p, lg_buf_t *b);

/*
 * Put b (b->len > 0 bytes from b->off) in front of the queue: its bytes are the next consumed.
 * Only for a queue none of whose bytes are being written (a write in flight covers the head).
 * The queue takes ownership; NULL or an empty b is ignored (and not taken).
 */
void lg_bufq_push_front(lg_bufq_t *q, lg_buf_t *b);

/* Move every buffer of `from` to the end of `to` (no copy, except where lg_bufq_push coalesces
 * small buffers); `from` is empty afterwards. */
void lg_bufq_move(lg_bufq_t *to, lg_bufq_t *from, lg_bufpool_t *p);

/*
 * Append a copy of `len` bytes: into the tail buffer's free room first, then into new pool
 * buffers. Bytes already queued (even ones being written) are not moved. Returns the bytes
 * appended: `len`, or less when the pool cannot allocate.
 */
size_t lg_bufq_append(lg_bufq_t *q, lg_bufpool_t *p, const uint8_t *data, size_t len);

/*
 * The tail buffer's free space after its last byte, for writing bytes in place: returns where it
 * starts and its size in *room (NULL and 0 for an empty queue). lg_bufq_commit(q, n) then adds
 * the first n bytes written there (n <= *room).
 */
uint8_t *lg_bufq_room(const lg_bufq_t *q, size_t *room);
void lg_bufq_commit(lg_bufq_t *q, size_t n);

/*
 * Fill up to `max_iov` (base, len) pairs describing the first min(n, bytes) queued bytes, without
 * consuming them. Returns the number of pairs; *covered receives the bytes they cover (`covered`
 * may be NULL). The pointers stay valid until the bytes are consumed or the queue cleared.
 */
size_t lg_bufq_peek(const lg_bufq_t *q, size_t n, uint8_t **bases, size_t *lens, size_t max_iov,
                    size_t *covered);

/* Drop the first n bytes (n <= bytes; more is clamped); emptied buffers go back to the pool. */
void lg_bufq_consume(lg_bufq_t *q, lg_bufpool_t *p, size_t n);

/* Return every buffer to the pool; the queue is empty afterwards. */
void lg_bufq_clear(lg_bufq_t *q, lg_bufpool_t *p);

/* The queue invariants of lg_buf.c's header hold (for tests and fuzz targets). */
bool lg_bufq_consistent(const lg_bufq_t *q);

#endif /* LG_BUF_H */
