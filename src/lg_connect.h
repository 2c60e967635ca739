/*
 * lg_connect.h — the forward-proxy phase of a connection on a connect listener: reading the
 * HTTP CONNECT head, judging the target against the listener's destination policy, the fixed
 * response texts, and the tunnel event.
 *
 * The head context (parser and buffer) exists from the first byte until the head is decided;
 * what the tunnel event needs afterwards (target, port, status) is a small lg_tunnel_t kept until
 * the connection closes. Neither knows the connection: lg_conn owns the socket and the state
 * machine (HEAD → RESOLVING → CONNECTING → RELAY, or an error response and LINGER) and calls in
 * here for bytes and decisions.
 *
 * RFC 9110 §9.3.6 (CONNECT), RFC 9112 §3.2.3 (authority form). Statuses: malformed → 400, not
 * CONNECT → 405, request line too long → 414, header limits → 431, bad version → 505, head not
 * complete within connect.headTimeoutMs of accept → 408; missing or wrong Proxy-Authorization on
 * a listener with connect.auth → 407 (the listener's own text naming its realm, lg_auth), no
 * verification slot or verdict in time → 503 (lg_verify); policy refusal → 403; lookup or dial
 * failure → 502; dial deadline → 504; over capacity → 503. Every response is a fixed text with
 * `Connection: close` that never echoes the request, except a policy 403, whose body names the
 * rule that refused the target (lg_policy_explain: the port, or the host name clipped and
 * escaped); a 403 from protection says the source is in protection.blocklist.
 */
#ifndef LG_CONNECT_H
#define LG_CONNECT_H

#include "lg_event.h"
#include "lg_http.h"
#include "lg_metrics.h"
#include "lg_policy.h"
#include "lg_config.h"

#define LG_CONNECT_HEAD_BUF_MIN 2048 /* bytes: first head buffer; doubled as needed */
#define LG_CONNECT_HEAD_BUF_MAX (LG_HTTP_MAX_HEAD + 16384) /* bytes: a head + pipelined bytes */

/* Owner: the connection, from the first byte of the head until it is decided. */
typedef struct lg_connect_head_s {
    lg_http_parser_t parser;
    lg_http_req_t req; /* valid once lg_connect_head_feed returned LG_OK */
    size_t len, cap;
    uint8_t *buf;
} lg_connect_head_t;

/* Owner: the connection, from the end of the head until it is freed (for the tunnel event). */
typedef struct lg_tunnel_s {
    uint16_t port;
    lg_policy_denial_t denied; /* the first looked-up address the policy refused (family 0: none) */
    char *why;                 /* owned: why the policy refused it (lg_policy_explain), or NULL */
    char target[];             /* host as requested, NUL-terminated */
} lg_tunnel_t;

/* Bytes of a 403 response with its explanation, at most. */
#define LG_CONNECT_FORBIDDEN_MAX (LG_POLICY_WHY_MAX + 128)

/* A new head context (NULL when out of memory) and its release (NULL is ignored). */
lg_connect_head_t *lg_connect_head_new(void);
void lg_connect_head_free(lg_connect_head_t *h);

/* Room for the next read: the buffer grows (doubling) up to LG_CONNECT_HEAD_BUF_MAX. Returns 0,
 * or -ENOMEM (buf is then empty). */
int lg_connect_head_room(lg_connect_head_t *h, uint8_t **base, size_t *len);

/* Copy n bytes that arrived before the head phase (after a PROXY header) into the buffer, growing
 * it as needed; feed them with lg_connect_head_feed(h, n). Returns 0, -ENOMEM, or -ENOSPC when
 * they would pass LG_CONNECT_HEAD_BUF_MAX. */
int lg_connect_head_put(lg_connect_head_t *h, const uint8_t *p, size_t n);

/*
 * n more bytes were read into the room. Returns LG_AGAIN, LG_OK (the head is complete: h->req),
 * or LG_ERROR with *status the response to send.
 */
int lg_connect_head_feed(lg_connect_head_t *h, size_t n, int *status);

/* The bytes the client sent after the head (valid after LG_OK, until the context is freed). */
void lg_connect_head_extra(const lg_connect_head_t *h, const uint8_t **p, size_t *n);

/* What to do with a complete head. */
enum { LG_CONNECT_DIAL = 0, LG_CONNECT_RESOLVE, LG_CONNECT_REFUSE };

/*
 * Judge the target: LG_CONNECT_DIAL with *addr set (an allowed IP literal), LG_CONNECT_RESOLVE (a
 * name to look up, then filter), or LG_CONNECT_REFUSE with *reason an LG_POLICY_* reason.
 */
int lg_connect_judge(const lg_policy_t *pol, const lg_http_req_t *req, lg_sockaddr_t *addr,
                     int *reason);

/* Keep the looked-up addresses the policy allows, in order; returns how many remain. */
size_t lg_connect_filter(const lg_policy_t *pol, lg_sockaddr_t *addrs, size_t n);

/* Why the policy refuses a looked-up address (d->family 0 if it does not). */
void lg_connect_denial(const lg_policy_t *pol, const lg_sockaddr_t *addr, lg_policy_denial_t *d);

/* A new tunnel record for the event (NULL when out of memory), and its release. */
lg_tunnel_t *lg_connect_tunnel_new(const lg_http_req_t *req);
void lg_connect_tunnel_free(lg_tunnel_t *t);

/*
 * A policy refusal of the tunnel's head `req` for `reason` (LG_POLICY_*): write the 403 response
 * that says why (lg_policy_explain; t->denied explains a looked-up name) into out
 * (LG_CONNECT_FORBIDDEN_MAX bytes) and keep the explanation on t for the tunnel event (dropped
 * when out of memory). Returns the response's length.
 */
size_t lg_connect_forbidden(lg_tunnel_t *t, const lg_policy_t *pol, const lg_http_req_t *req,
                            int reason, char *out);

/* The fixed response for a status, and the 200 line. */
const char *lg_connect_response(int status, size_t *len);
const char *lg_connect_established(size_t *len);

/* Count a response sent, and a policy refusal, on the listener's counters. */
void lg_connect_count_status(lg_counters_t *cnt, int status);
void lg_connect_count_refusal(lg_counters_t *cnt, int reason);

/* Post the 'tunnel' event of a connection that ends (when JS listens for them); `t` is NULL when
 * the head never completed, `status` 0 when no response was sent. bytes_out counts what the
 * target sent (the proxy's own response excluded). */
void lg_connect_post_tunnel(lg_events_t *ch, unsigned worker, unsigned listener,
                            const lg_tunnel_t *t, int status, uint64_t bytes_in, uint64_t bytes_out,
                            uint64_t duration_ms);

/*
 * Refuse an accepted fd without allocating (listener over maxConnections or its head limit: 503;
 * protection: 403 or 429): write the fixed response, discard what the client already sent,
 * close. Counted by status.
 */
void lg_connect_refuse_fd(lg_counters_t *cnt, int fd, int status, uint8_t *discard,
                          size_t discard_len);

/* The response a protection refusal gets on a connect listener: 403 for a blocked source, 429
 * for a rate or concurrency limit. */
int lg_connect_refusal_status(int block_reason);

#endif /* LG_CONNECT_H */
