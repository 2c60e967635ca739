/*
 * lg_resolve.c — asynchronous resolution and Happy Eyeballs dialling (see lg_resolve.h).
 *
 * RFC 8305: §4 address sorting (interleave families, first family first), §5 connection
 * attempts (one at a time, the next after the "Connection Attempt Delay" of 250 ms or as soon
 * as the current one fails; the first to succeed wins, the rest are cancelled). The overall
 * deadline belongs to the caller (the connection's CONNECTING timer).
 */
#include "lg_resolve.h"
#include "lg_conn.h"

#include <netdb.h>
#include <string.h>

/* ---- dialling -------------------------------------------------------------------------- */

static void on_attempt_closed(uv_handle_t *h)
{
    lg_attempt_t *a = LG_CONTAINER_OF(h, lg_attempt_t, h.handle);
    lg_conn_t *c = a->conn;
    lg_free(a);
    lg_conn_handle_closed(c);
}

static void on_dialer_closed(uv_handle_t *h)
{
    lg_dialer_t *d = LG_CONTAINER_OF(h, lg_dialer_t, stagger);
    lg_conn_t *c = d->conn;
    lg_free(d);
    lg_conn_handle_closed(c);
}

static void attempt_close(lg_attempt_t *a)
{
    a->conn->pending_closes++;
    uv_close(&a->h.handle, on_attempt_closed);
}

static void unlink_attempt(lg_dialer_t *d, lg_attempt_t *a)
{
    for (lg_attempt_t **pp = &d->attempts; *pp != NULL; pp = &(*pp)->next) {
        if (*pp == a) {
            *pp = a->next;
            a->next = NULL;
            return;
        }
    }
}

static void start_next(lg_dialer_t *d);
static void on_stagger_cb(uv_timer_t *t);

static void dial_finish(lg_conn_t *c, int rc)
{
    lg_dial_cancel(c);
    lg_conn_dialed(c, rc);
}

static bool out_of_fds(int err)
{
    return err == UV_EMFILE || err == UV_ENFILE;
}

/*
 * No descriptor for the upstream socket: rather than fail a client that is already accepted,
 * retry the same address shortly (within the connection's CONNECTING deadline) and make the
 * worker pause accepting, so that new clients wait in the backlog until descriptors free up.
 */
static void retry_after_fd_shortage(lg_dialer_t *d, int err)
{
    d->last_err = err;
    d->next--;
    lg_worker_fd_pressure(d->conn->w, -err);
    uv_timer_start(&d->stagger, on_stagger_cb, LG_DIAL_FD_RETRY_MS, 0);
}

static void on_attempt_connect(uv_connect_t *req, int status)
{
    lg_attempt_t *a = LG_CONTAINER_OF(req, lg_attempt_t, req);
    lg_conn_t *c = a->conn;
    a->done = true;
    if (status == UV_ECANCELED) return; /* closed by cancel: its close callback frees it */
    lg_dialer_t *d = c->dialer;
    if (d == NULL) return; /* the dial was cancelled; this attempt is already closing */
    unlink_attempt(d, a);
    if (status == 0) {
        c->up = a;
        dial_finish(c, 0);
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
        dial_finish(c, d->last_err);
    }
}

static void on_stagger_cb(uv_timer_t *t)
{
    lg_dialer_t *d = t->data;
    if (d->next < d->n) start_next(d);
}

static lg_attempt_t *attempt_new(lg_conn_t *c)
{
    lg_attempt_t *a = lg_calloc(1, sizeof(*a));
    if (a == NULL) return NULL;
    a->conn = c;
    return a;
}

/*
 * Start one attempt at d->addrs[d->next - 1] (or the Unix path). Returns 0 or a libuv error; on
 * error the attempt is freed, or closed through libuv when its handle was initialised.
 */
static int attempt_start(lg_dialer_t *d, lg_attempt_t *a)
{
    lg_conn_t *c = d->conn;
    const lg_sockaddr_t *sa = &d->addrs[d->next - 1];
    int rc;
    if (d->uds_path != NULL) {
        rc = uv_pipe_init(&c->w->loop, &a->h.pipe, 0);
        if (rc != 0) {
            lg_free(a);
            return rc;
        }
        a->h.handle.data = c;
        uv_pipe_connect(&a->req, &a->h.pipe, d->uds_path, on_attempt_connect); /* errors: cb */
        return 0;
    }
    rc = uv_tcp_init(&c->w->loop, &a->h.tcp);
    if (rc != 0) {
        lg_free(a);
        return rc;
    }
    a->h.handle.data = c;
    rc = uv_tcp_connect(&a->req, &a->h.tcp, &sa->sa, on_attempt_connect);
    if (rc != 0) attempt_close(a); /* refused synchronously: no descriptor, no route, ... */
    return rc;
}

static void start_next(lg_dialer_t *d)
{
    lg_conn_t *c = d->conn;
    while (d->next < d->n) {
        d->next++;
        lg_attempt_t *a = attempt_new(c);
        if (a == NULL) {
            d->last_err = UV_ENOMEM;
            continue;
        }
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
        if (d->next < d->n) uv_timer_start(&d->stagger, on_stagger_cb, LG_DIAL_STAGGER_MS, 0);
        return;
    }
    if (d->attempts == NULL) dial_finish(c, d->last_err ? d->last_err : UV_EADDRNOTAVAIL);
}

static lg_dialer_t *dialer_new(lg_conn_t *c)
{
    lg_dialer_t *d = lg_calloc(1, sizeof(*d));
    if (d == NULL) return NULL;
    d->conn = c;
    uv_timer_init(&c->w->loop, &d->stagger);
    d->stagger.data = d;
    c->dialer = d;
    return d;
}

int lg_dial_start(lg_conn_t *c, const lg_sockaddr_t *addrs, size_t n)
{
    if (n == 0) return -EINVAL;
    lg_dialer_t *d = dialer_new(c);
    if (d == NULL) return -ENOMEM;
    d->n = LG_MIN(n, (size_t)LG_RESOLVE_MAX_ADDRS);
    memcpy(d->addrs, addrs, d->n * sizeof(addrs[0]));
    start_next(d);
    return 0;
}

int lg_dial_uds(lg_conn_t *c, const char *path)
{
    lg_dialer_t *d = dialer_new(c);
    if (d == NULL) return -ENOMEM;
    d->uds_path = path;
    d->n = 1;
    start_next(d);
    return 0;
}

void lg_dial_cancel(lg_conn_t *c)
{
    lg_dialer_t *d = c->dialer;
    if (d == NULL) return;
    c->dialer = NULL;
    while (d->attempts != NULL) {
        lg_attempt_t *a = d->attempts;
        d->attempts = a->next;
        attempt_close(a);
    }
    c->pending_closes++;
    uv_close((uv_handle_t *)&d->stagger, on_dialer_closed);
}

void lg_dial_close_up(lg_conn_t *c)
{
    if (c->up == NULL) return;
    lg_attempt_t *a = c->up;
    c->up = NULL;
    attempt_close(a);
}

/* ---- resolution ------------------------------------------------------------------------ */

/* Owned by itself: freed in its callback. conn is NULL once the connection lost interest. */
struct lg_resolve_s {
    uv_getaddrinfo_t req;
    lg_conn_t *conn;
    lg_worker_t *w;
    uint16_t port;
};

static void lookups_changed(lg_worker_t *w, int delta)
{
    w->n_lookups = (size_t)((ptrdiff_t)w->n_lookups + delta);
    LG_PUBLISH(w->pub_lookups, w->n_lookups);
}

void lg_resolve_interleave(lg_sockaddr_t *addrs, size_t n)
{
    if (n < 3) return; /* one or two entries: already as interleaved as they can be */
    lg_sockaddr_t tmp[LG_RESOLVE_MAX_ADDRS];
    n = LG_MIN(n, (size_t)LG_RESOLVE_MAX_ADDRS);
    int first = addrs[0].sa.sa_family;
    size_t ia = 0, ib = 0, out = 0;
    /* ia scans the first family, ib the other; alternate while both have entries. */
    bool take_first = true;
    while (out < n) {
        while (ia < n && addrs[ia].sa.sa_family != first)
            ia++;
        while (ib < n && addrs[ib].sa.sa_family == first)
            ib++;
        if (ia >= n && ib >= n) break;
        if ((take_first && ia < n) || ib >= n) {
            tmp[out++] = addrs[ia++];
        } else {
            tmp[out++] = addrs[ib++];
        }
        take_first = !take_first;
    }
    memcpy(addrs, tmp, out * sizeof(tmp[0]));
}

static void on_resolved(uv_getaddrinfo_t *req, int status, struct addrinfo *res)
{
    lg_resolve_t *r = LG_CONTAINER_OF(req, lg_resolve_t, req);
    lg_conn_t *c = r->conn;
    lg_sockaddr_t addrs[LG_RESOLVE_MAX_ADDRS];
    size_t n = 0;
    if (c != NULL && status == 0) {
        for (struct addrinfo *ai = res; ai != NULL && n < LG_RESOLVE_MAX_ADDRS; ai = ai->ai_next) {
            if (ai->ai_family == AF_INET && ai->ai_addrlen >= sizeof(struct sockaddr_in)) {
                memcpy(&addrs[n].in4, ai->ai_addr, sizeof(struct sockaddr_in));
                addrs[n++].in4.sin_port = htons(r->port);
            } else if (ai->ai_family == AF_INET6 && ai->ai_addrlen >= sizeof(struct sockaddr_in6)) {
                memcpy(&addrs[n].in6, ai->ai_addr, sizeof(struct sockaddr_in6));
                addrs[n++].in6.sin6_port = htons(r->port);
            }
        }
    }
    if (res != NULL) uv_freeaddrinfo(res);
    lookups_changed(r->w, -1);
    lg_free(r);
    if (c == NULL) return;
    c->resolve = NULL;
    if (status != 0) {
        lg_conn_resolved(c, NULL, 0, status);
        return;
    }
    lg_resolve_interleave(addrs, n);
    lg_conn_resolved(c, addrs, n, n > 0 ? 0 : UV_EAI_NONAME);
}

int lg_resolve_start(lg_conn_t *c, const char *host, uint16_t port)
{
    if (c->w->n_lookups >= LG_RESOLVE_MAX_INFLIGHT) return -EBUSY;
    lg_resolve_t *r = lg_calloc(1, sizeof(*r));
    if (r == NULL) return -ENOMEM;
    r->conn = c;
    r->w = c->w;
    r->port = port;
    struct addrinfo hints;
    memset(&hints, 0, sizeof(hints));
    hints.ai_family = AF_UNSPEC;
    hints.ai_socktype = SOCK_STREAM;
    /* No AI_ADDRCONFIG: glibc ignores loopback addresses for it, so on a host with only
     * loopback it would hide "localhost"; an unreachable family just fails its attempt. */
    int rc = uv_getaddrinfo(&c->w->loop, &r->req, on_resolved, host, NULL, &hints);
    if (rc != 0) {
        lg_free(r);
        return rc;
    }
    c->resolve = r;
    lookups_changed(c->w, +1);
    return 0;
}

void lg_resolve_detach(lg_conn_t *c)
{
    lg_resolve_t *r = c->resolve;
    if (r == NULL) return;
    r->conn = NULL;
    c->resolve = NULL;
    /* Still queued: leave the pool's queue now (on_resolved runs with UV_EAI_CANCELED and frees
     * it). Already running: UV_EBUSY, and the lookup finishes on its own. */
    uv_cancel((uv_req_t *)&r->req);
}
