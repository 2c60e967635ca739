/*
 * lg_connect.h — the forward-proxy side of a connection: HTTP CONNECT listeners.
 *
 * A connection accepted on a connect listener reads its request head (lg_http), is judged by
 * the listener's destination policy (lg_policy), resolves its target name (lg_resolve) and
 * keeps only the addresses the policy allows, dials them with Happy Eyeballs under one overall
 * deadline, answers "200 Connection Established" and then relays like any other connection
 * (lg_relay, through the worker's scheduler). Every refusal is a fixed response text with
 * `Connection: close` (never an echo of the input), counted by status.
 */
#ifndef LG_CONNECT_H
#define LG_CONNECT_H

#include "lg_conn.h"

#define LG_CONNECT_HEAD_TIMEOUT_MS 10000 /* ms: the whole head must arrive within this (→ 408) */
#define LG_CONNECT_HEAD_BUF_MIN    2048  /* bytes: first head buffer; doubled as needed */
#define LG_CONNECT_DRAIN_MAX       65536 /* bytes discarded after an error response, at most */

/* The head-phase limit of a listener: connections still sending their head may hold at most a
 * quarter of maxConnections (at least 16), or 4096 when maxConnections is unlimited, so slow or
 * silent clients cannot take every slot from working tunnels. */
uint32_t lg_connect_head_limit(uint32_t max_connections);

/* Start reading the head of a freshly accepted connection. */
void lg_connect_start(lg_conn_t *c);

/* Deadline of HEAD (408), RESOLVING or CONNECTING (504). */
void lg_connect_timeout(lg_conn_t *c);

/* Resolution and dial outcomes (from lg_conn_resolved / lg_conn_dialed). */
void lg_connect_resolved(lg_conn_t *c, const lg_sockaddr_t *addrs, size_t n, int status);
void lg_connect_dialed(lg_conn_t *c, int status);

/* Connection being freed: release the head slot and buffers, post the tunnel event. */
void lg_connect_release(lg_conn_t *c);

/*
 * Refuse an accepted fd without allocating (listener over maxConnections or its head limit):
 * write the fixed 503 response, discard what the client already sent, close. Counted.
 */
void lg_connect_refuse_fd(lg_worker_t *w, unsigned lis, int fd);

#endif /* LG_CONNECT_H */
