/*
 * lg_dial.c — Happy Eyeballs dialling (see lg_dial.h).
 *
 * RFC 8305 §5 connection attempts: one at a time, the next after the "Connection Attempt Delay"
 * of 250 ms or as soon as the current one fails; the first to succeed wins, the rest are closed.
 * Address sorting (§4) is the resolver's job (lg_resolve_interleave).
 *
 * Lifetime: the dialer counts the handles it owns (`live`: the stagger timer and every attempt
 * not handed over). It is freed, and `closed` called, when it has finished (reported, or was
 * cancelled) and `live` is back to zero.
 */
#include "lg_dial.h"

#include <string.h>

/* One connection attempt: its socket and connect request. Owner: the dialer. Freed with its
 * socket when a losing or failed attempt has closed, or alone when the attempt wins (the request
 * is done and the socket goes to the caller). While it runs, the socket's handle.data points at
 * it. */
typedef struct attempt_s {
    uv_connect_t req;
    lg_upsock_t *sock;
    struct lg_dialer_s *dialer;
    struct attempt_s *next; /* dialer's list of attempts in flight */
} attempt_t;

struct lg_dialer_s {
    uv_timer_t stagger; /* next attempt; also the deferred report of an all-failed start */
    lg_wctx_t *w;
    attempt_t *attempts;  /* in flight, not yet won */
    size_t n, next;       /* addresses, and the next one to try */
    const char *uds_path; /* Unix socket to dial instead (owned by the caller) */
    lg_dial_cb done;
    lg_closed_cb closed;
    lg_dial_wanted_cb still_wanted; /* asked before a retry after a descriptor shortage */
    bool fd_retry;                  /* the stagger timer runs for such a retry */
    void *arg;
    int last_err;
    unsigned live; /* handles not yet closed: the timer and every attempt */
    bool finished; /* reported, or cancelled: no more attempts, no report */
    bool starting; /* inside lg_dial_start: a failure is reported from the timer */
    /* Only the addresses given (a route's dial has one): a dialer lives only until it reports,
     * and a short-lived block the size of an idle connection's record would be split by the
     * records allocated while it lives, leaving holes no later allocation fits (the worker's
     * heap grew 72 bytes a connection over what it held when each dialer carried room for 32). */
    lg_sockaddr_t addrs[];
};

static void dialer_release(lg_dialer_t *d)
{
    if (--d->live > 0 || !d->finished) return;
    lg_closed_cb closed = d->closed;
    void *arg = d->arg;
    lg_free(d);
    closed(arg);
}

static void on_attempt_closed(uv_handle_t *h)
{
    attempt_t *a = h->data;
    lg_dialer_t *d = a->dialer;
    lg_free(a->sock);
    lg_free(a);
    dialer_release(d);
}

static void on_timer_closed(uv_handle_t *h)
{
    dialer_release(LG_CONTAINER_OF(h, lg_dialer_t, stagger));
}

static void attempt_close(attempt_t *a)
{
    uv_close(&a->sock->h.handle, on_attempt_closed);
}

static void unlink_attempt(lg_dialer_t *d, attempt_t *a)
{
    for (attempt_t **pp = &d->attempts; *pp != NULL; pp = &(*pp)->next) {
        if (*pp == a) {
            *pp = a->next;
            a->next = NULL;
            return;
        }
    }
}

/* No more attempts or reports: close every handle the dialer still owns. */
static void finish(lg_dialer_t *d)
{
    if (d->finished) return;
    d->finished = true;
    while (d->attempts != NULL) {
        attempt_t *a = d->attempts;
        d->attempts = a->next;
        attempt_close(a);
    }
    uv_close((uv_handle_t *)&d->stagger, on_timer_closed);
}

static void on_report_timer(uv_timer_t *t);

/* Report the outcome (once). `up` is handed over (NULL on failure). */
static void report(lg_dialer_t *d, int status, lg_upsock_t *up)
{
    if (d->starting) {
        /* Every address failed inside lg_dial_start: report from the loop, never nested. */
        d->last_err = status;
        uv_timer_start(&d->stagger, on_report_timer, 0, 0);
        return;
    }
    lg_dial_cb done = d->done;
    void *arg = d->arg;
    finish(d);
    done(arg, status, up);
}

static void on_report_timer(uv_timer_t *t)
{
    lg_dialer_t *d = t->data;
    report(d, d->last_err, NULL);
}

static bool out_of_fds(int err)
{
    return err == UV_EMFILE || err == UV_ENFILE;
}

static void start_next(lg_dialer_t *d);
static void on_stagger(uv_timer_t *t);

/*
 * No descriptor for the upstream socket: rather than fail a client that is already accepted,
 * retry the same address shortly (within the caller's deadline) and tell the worker, so that new
 * clients wait in the backlog until descriptors free up.
 */
static void retry_after_fd_shortage(lg_dialer_t *d, int err)
{
    d->last_err = err;
    d->next--;
    d->fd_retry = true;
    if (d->w->fd_pressure != NULL) d->w->fd_pressure(d->w->up_arg, -err);
    uv_timer_start(&d->stagger, on_stagger, LG_DIAL_FD_RETRY_MS, 0);
}

static void on_attempt_connect(uv_connect_t *req, int status)
{
    attempt_t *a = LG_CONTAINER_OF(req, attempt_t, req);
    lg_dialer_t *d = a->dialer;
    if (status == UV_ECANCELED || d->finished) return; /* closing: on_attempt_closed frees it */
    unlink_attempt(d, a);
    if (status == 0) {
        d->live--; /* handed over: no longer the dialer's to close */
        lg_upsock_t *up = a->sock;
        up->h.handle.data = NULL;
        lg_free(a);
        report(d, 0, up);
        return;
    }
    attempt_close(a);
    if (out_of_fds(status)) {
        retry_after_fd_shortage(d, status); /* Unix sockets report it here */
        return;
    }
    d->last_err = status;
    if (d->next < d->n) {
        start_next(d); /* a failure starts the next attempt at once (RFC 8305 §5) */
    } else if (d->attempts == NULL) {
        report(d, d->last_err, NULL);
    }
}

static void on_stagger(uv_timer_t *t)
{
    lg_dialer_t *d = t->data;
    if (d->fd_retry) {
        d->fd_retry = false;
        /* A client that left while its dial waited for a descriptor is dropped rather than
         * given the next free one. */
        if (d->still_wanted != NULL && !d->still_wanted(d->arg)) return;
    }
    if (!d->finished && d->next < d->n) start_next(d);
}

bool lg_dial_short_of_fds(const lg_dialer_t *d)
{
    return d != NULL && d->fd_retry;
}

void lg_dial_set_wanted(lg_dialer_t *d, lg_dial_wanted_cb still_wanted)
{
    d->still_wanted = still_wanted;
}

/*
 * A TCP attempt's reads are started, parked, with its connect: its epoll registration then
 * carries POLLIN from the start, so the connect's end changes it with one MOD, and the caller's
 * first read start (lg_read_start) switches the callbacks in place. Without this, libuv's end of
 * the connect drops its record of the registration and the first read start costs an ADD that
 * fails with EEXIST, then a MOD. A parked socket reads nothing: bytes or an end that arrive
 * before the caller reads stop the parked reads and stay in the kernel.
 */
static void park_alloc(uv_handle_t *h, size_t suggested, uv_buf_t *buf)
{
    (void)h;
    (void)suggested;
    buf->base = NULL;
    buf->len = 0; /* libuv calls park_read with UV_ENOBUFS and reads nothing */
}

static void park_read(uv_stream_t *s, ssize_t nread, const uv_buf_t *buf)
{
    (void)nread;
    (void)buf;
    uv_read_stop(s);
}

/*
 * Start one attempt at d->addrs[d->next - 1] (or the Unix path). Returns 0 or a libuv error; on
 * error the attempt is freed, or closed through libuv when its handle was initialised.
 */
static int attempt_start(lg_dialer_t *d, attempt_t *a)
{
    int rc;
    lg_upsock_t *u = a->sock;
    a->dialer = d;
    if (d->uds_path != NULL) {
        rc = uv_pipe_init(d->w->loop, &u->h.pipe, 0);
        if (rc != 0) {
            lg_free(u);
            lg_free(a);
            return rc;
        }
        u->h.handle.data = a;
        d->live++;
        uv_pipe_connect(&a->req, &u->h.pipe, d->uds_path, on_attempt_connect); /* errors: cb */
        return 0;
    }
    rc = uv_tcp_init(d->w->loop, &u->h.tcp);
    if (rc != 0) {
        lg_free(u);
        lg_free(a);
        return rc;
    }
    u->h.handle.data = a;
    d->live++;
    rc = uv_tcp_connect(&a->req, &u->h.tcp, &d->addrs[d->next - 1].sa, on_attempt_connect);
    if (rc != 0) {
        attempt_close(a); /* refused synchronously: no descriptor, no route, ... */
        return rc;
    }
    (void)uv_read_start(&u->h.stream, park_alloc, park_read); /* a failure only costs the ADD */
    return 0;
}

static void start_next(lg_dialer_t *d)
{
    while (d->next < d->n) {
        d->next++;
        attempt_t *a = lg_calloc(1, sizeof(*a));
        /* Sized to the handle the socket uses (lg_upsock_t: the handle is all it holds). */
        size_t size = d->uds_path != NULL ? sizeof(lg_upsock_t) : sizeof(uv_tcp_t);
        lg_upsock_t *u = a != NULL ? lg_calloc(1, size) : NULL;
        if (u == NULL) {
            lg_free(a);
            d->last_err = UV_ENOMEM;
            continue;
        }
        a->sock = u;
        int rc = attempt_start(d, a);
        if (rc != 0) {
            if (out_of_fds(rc)) {
                retry_after_fd_shortage(d, rc);
                return;
            }
            d->last_err = rc;
            continue;
        }
        a->next = d->attempts;
        d->attempts = a;
        if (d->next < d->n) uv_timer_start(&d->stagger, on_stagger, LG_DIAL_STAGGER_MS, 0);
        return;
    }
    if (d->attempts == NULL) report(d, d->last_err ? d->last_err : UV_EADDRNOTAVAIL, NULL);
}

int lg_dial_start(lg_dialer_t **out, lg_wctx_t *w, const lg_sockaddr_t *addrs, size_t n,
                  const char *uds_path, lg_dial_cb done, lg_closed_cb closed, void *arg)
{
    *out = NULL;
    if (uds_path == NULL && n == 0) return -EINVAL;
    size_t n_addrs = uds_path != NULL ? 0 : LG_MIN(n, (size_t)LG_DIAL_MAX_ADDRS);
    lg_dialer_t *d = lg_calloc(1, sizeof(*d) + n_addrs * sizeof(d->addrs[0]));
    if (d == NULL) return -ENOMEM;
    d->w = w;
    d->done = done;
    d->closed = closed;
    d->arg = arg;
    uv_timer_init(w->loop, &d->stagger);
    d->stagger.data = d;
    d->live = 1; /* the timer */
    if (uds_path != NULL) {
        d->uds_path = uds_path;
        d->n = 1;
    } else {
        d->n = n_addrs;
        memcpy(d->addrs, addrs, n_addrs * sizeof(addrs[0]));
    }
    *out = d;
    d->starting = true;
    start_next(d);
    d->starting = false;
    return 0;
}

void lg_dial_cancel(lg_dialer_t *d)
{
    if (d != NULL) finish(d);
}

void lg_upsock_close(lg_upsock_t *u, void *data, uv_close_cb cb)
{
    u->h.handle.data = data;
    uv_close(&u->h.handle, cb);
}

void *lg_upsock_free(uv_handle_t *h)
{
    void *data = h->data;
    lg_free(LG_CONTAINER_OF(h, lg_upsock_t, h.handle));
    return data;
}
