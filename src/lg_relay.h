/*
 * lg_relay.h — moving bytes between a client and its upstream through the worker's scheduler.
 *
 * Each direction is a flow (lg_flow_t in lg_conn.h). Reads take a buffer from the worker's pool
 * only when data is ready (an idle connection holds none), queue it on the flow and tell the
 * scheduler. With scheduler kind 'drr' the worker's check handle hands out grants in DRR order
 * (lg_drr) and each grant becomes one uv_write; with 'fifo' every read is written at once.
 *
 * Backpressure: when a flow's queue holds more than maxQueuedBytesPerFlow of buffer memory,
 * reading its source stops; it resumes once the queue is below half of that.
 *
 * Half-close: a FIN from one side becomes shutdown() of the other once that flow's queue is
 * written; the connection closes when both directions have finished.
 */
#ifndef LG_RELAY_H
#define LG_RELAY_H

#include "lg_conn.h"

/* Set up both flows of a connection whose upstream is connected, and start reading both ends.
 * Bytes already queued on c2u (the ClientHello) are scheduled first. Returns 0 or -errno. */
int lg_relay_start(lg_conn_t *c);

/* n bytes were appended to f's queue: schedule them (or hold them until the flow has a
 * destination). */
void lg_relay_flow_queued(lg_conn_t *c, lg_flow_t *f, size_t n);

/* TLS connections: make the client end of both flows live (reads go to OpenSSL, handshake
 * records are written) before the upstream is connected. Returns 0 or -errno. */
int lg_relay_client_start(lg_conn_t *c);

/* Queue a copy of bytes on a flow and schedule them. Returns 0 or -ENOMEM. */
int lg_relay_queue_copy(lg_conn_t *c, lg_flow_t *f, const uint8_t *data, size_t len);

/* Write what the client-bound flow holds, then shut down and close (TLS alert on failure). */
void lg_relay_flush_then_close(lg_conn_t *c);

/* Release a flow's buffers and scheduler state (connection closing). */
void lg_relay_flow_release(lg_conn_t *c, lg_flow_t *f);

/* Worker's scheduler pass (uv_check callback). */
void lg_relay_sched_run(uv_check_t *h);

/* Free a worker's spare write requests. */
void lg_relay_wreq_cache_free(lg_worker_t *w);

#endif /* LG_RELAY_H */
