/*
 * lg_dial.h — dialling a connection's upstream: Happy Eyeballs connection attempts (RFC 8305)
 * over a list of TCP addresses, or one Unix socket.
 *
 * lg_dial_start() tries the addresses in the given order. The first attempt starts at once; each
 * further one starts LG_DIAL_STAGGER_MS after the previous one, or at once when the previous one
 * fails (RFC 8305 §5). The first attempt to connect wins: its socket (an lg_upsock_t) is handed to
 * the caller, the other attempts are closed. A TCP socket is handed over with its reads started
 * but parked (they read nothing, and stop at the first byte or end): start the caller's reads with
 * lg_read_start (lg_relay.h), which switches the callbacks in place; uv_read_start would answer
 * UV_EALREADY. When every attempt has failed, the caller is told the last error. The overall
 * deadline belongs to the caller (it cancels the dial).
 *
 * Callbacks: `done(arg, status, up)` is called exactly once, never from inside lg_dial_start (a
 * dial whose every address fails at once reports from the next loop turn), and never after
 * lg_dial_cancel(). `closed(arg)` is called exactly once, after `done` or a cancel, when the
 * dialer and every socket it still owned have finished closing: until then the caller must keep
 * `arg` alive (count it as one pending close).
 *
 * Out of descriptors (EMFILE/ENFILE) for a socket: the same address is retried after
 * LG_DIAL_FD_RETRY_MS, within the caller's deadline, and the worker is told (w->fd_pressure) so
 * it can pause accepting while descriptors are short.
 */
#ifndef LG_DIAL_H
#define LG_DIAL_H

#include "lg_wctx.h"

#define LG_DIAL_MAX_ADDRS   32  /* addresses tried by one dial */
#define LG_DIAL_STAGGER_MS  250 /* ms between Happy Eyeballs attempts (RFC 8305 §5) */
#define LG_DIAL_FD_RETRY_MS 100 /* ms before retrying a dial that found no free descriptor */

typedef void (*lg_closed_cb)(void *arg);

/* A connected (or connecting) upstream socket. Owner: the dialer while it is an attempt, the
 * caller once handed over; closed with lg_upsock_close(). It lives as long as the connection, so
 * it holds only the handle: the connect request and the attempt's links are the dialer's, freed
 * when the attempt ends (an idle connection does not carry them). */
typedef struct lg_upsock_s {
    /* Nothing but the handle, allocated to its size (see start_next): every idle connection
     * carries one, and a uv_pipe_t is 16 bytes larger than a uv_tcp_t. */
    union {
        uv_handle_t handle;
        uv_stream_t stream;
        uv_tcp_t tcp;
        uv_pipe_t pipe;
    } h;
} lg_upsock_t;

typedef void (*lg_dial_cb)(void *arg, int status, lg_upsock_t *up);

typedef struct lg_dialer_s lg_dialer_t;

/*
 * Dial 1..LG_DIAL_MAX_ADDRS TCP addresses (more are ignored), or the Unix socket `uds_path` (then
 * addrs/n are ignored; the path must outlive the dial). Returns 0 with *out set, or -ENOMEM /
 * -EINVAL (nothing started, no callback).
 */
int lg_dial_start(lg_dialer_t **out, lg_wctx_t *w, const lg_sockaddr_t *addrs, size_t n,
                  const char *uds_path, lg_dial_cb done, lg_closed_cb closed, void *arg);

/*
 * Before each retry after a descriptor shortage, ask `still_wanted(arg)` whether the dial is
 * still wanted (its client may have left while it waited). false means the caller has cancelled
 * the dial (lg_dial_cancel) from inside the call: no retry, no `done`. NULL: always wanted.
 */
typedef bool (*lg_dial_wanted_cb)(void *arg);
void lg_dial_set_wanted(lg_dialer_t *d, lg_dial_wanted_cb still_wanted);

/* Stop a dial that has not reported (no `done` call follows); `closed` follows. Idempotent; a
 * dial that already reported is left alone. */
void lg_dial_cancel(lg_dialer_t *d);

/* Close a socket handed over by a dial: `cb` runs when libuv is done with it, with the handle's
 * `data` set to `data` (a relay no longer uses it then); cb calls lg_upsock_free() first. */
void lg_upsock_close(lg_upsock_t *u, void *data, uv_close_cb cb);

/* In that close callback: free the socket; returns the `data` given to lg_upsock_close. */
void *lg_upsock_free(uv_handle_t *h);

/* Whether d (NULL: no) is waiting for a descriptor to retry an attempt (a shortage of this
 * host's, not a failure of the address dialled). */
bool lg_dial_short_of_fds(const lg_dialer_t *d);

#endif /* LG_DIAL_H */
