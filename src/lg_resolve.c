/*
 * lg_resolve.c — asynchronous resolution (see lg_resolve.h).
 */
#include "lg_resolve.h"

#include <netdb.h>
#include <string.h>

/* Owned by itself: freed in its callback. done is NULL once the caller lost interest. */
struct lg_resolve_s {
    uv_getaddrinfo_t req;
    lg_wctx_t *w;
    lg_resolve_keep_cb keep; /* NULL: keep every address */
    lg_resolve_cb done;
    void *arg;
    uint16_t port;
};

static void lookups_changed(lg_wctx_t *w, int delta)
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
    lg_resolve_cb done = r->done;
    void *arg = r->arg;
    lg_sockaddr_t addrs[LG_RESOLVE_MAX_ADDRS];
    size_t n = 0;
    bool keep_any = false; /* the answer had an address, whether kept or not */
    if (done != NULL && status == 0) {
        /* Filter, then cap: every address of the answer is judged (the list is the resolver's,
         * already bounded), and the first LG_RESOLVE_MAX_ADDRS kept ones are used. */
        for (struct addrinfo *ai = res; ai != NULL && n < LG_RESOLVE_MAX_ADDRS; ai = ai->ai_next) {
            if (ai->ai_family == AF_INET && ai->ai_addrlen >= sizeof(struct sockaddr_in)) {
                memcpy(&addrs[n].in4, ai->ai_addr, sizeof(struct sockaddr_in));
                addrs[n].in4.sin_port = htons(r->port);
            } else if (ai->ai_family == AF_INET6 && ai->ai_addrlen >= sizeof(struct sockaddr_in6)) {
                memcpy(&addrs[n].in6, ai->ai_addr, sizeof(struct sockaddr_in6));
                addrs[n].in6.sin6_port = htons(r->port);
            } else {
                continue;
            }
            keep_any = true;
            if (r->keep == NULL || r->keep(r->arg, &addrs[n])) n++;
        }
    }
    if (res != NULL) uv_freeaddrinfo(res);
    lookups_changed(r->w, -1);
    lg_free(r);
    if (done == NULL) return;
    if (status != 0) {
        done(arg, NULL, 0, status);
        return;
    }
    lg_resolve_interleave(addrs, n);
    done(arg, addrs, n, n > 0 || keep_any ? 0 : UV_EAI_NONAME);
}

int lg_resolve_start(lg_resolve_t **out, lg_wctx_t *w, const char *host, uint16_t port,
                     lg_resolve_keep_cb keep, lg_resolve_cb done, void *arg)
{
    *out = NULL;
    if (w->n_lookups >= LG_RESOLVE_MAX_INFLIGHT) return -EBUSY;
    lg_resolve_t *r = lg_calloc(1, sizeof(*r));
    if (r == NULL) return -ENOMEM;
    r->w = w;
    r->keep = keep;
    r->done = done;
    r->arg = arg;
    r->port = port;
    struct addrinfo hints;
    memset(&hints, 0, sizeof(hints));
    hints.ai_family = AF_UNSPEC;
    hints.ai_socktype = SOCK_STREAM;
    /* No AI_ADDRCONFIG: glibc ignores loopback addresses for it, so on a host with only
     * loopback it would hide "localhost"; an unreachable family just fails its attempt. */
    int rc = uv_getaddrinfo(w->loop, &r->req, on_resolved, host, NULL, &hints);
    if (rc != 0) {
        lg_free(r);
        return rc;
    }
    lookups_changed(w, +1);
    *out = r;
    return 0;
}

void lg_resolve_cancel(lg_resolve_t *r)
{
    if (r == NULL) return;
    r->done = NULL;
    /* Still queued: leave the pool's queue now (on_resolved runs with UV_EAI_CANCELED and frees
     * it). Already running: UV_EBUSY, and the lookup finishes on its own. */
    uv_cancel((uv_req_t *)&r->req);
}
