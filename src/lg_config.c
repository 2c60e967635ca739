/*
 * lg_config.c — freeing configs and reference counting of snapshots (see lg_config.h).
 */
#include "lg_config.h"
#include "lg_engine.h"

#include <stdlib.h>

void lg_config_free(lg_config_t *c)
{
    for (size_t i = 0; i < c->n_listeners; i++) {
        lg_free(c->listeners[i].host);
        c->listeners[i].host = NULL;
        lg_policy_free(&c->listeners[i].policy);
    }
    c->n_listeners = 0;
}

void lg_route_free(lg_route_t *r)
{
    for (size_t i = 0; i < r->n_upstreams; i++) {
        lg_free(r->upstreams[i].host);
        lg_free(r->upstreams[i].path);
    }
    lg_free(r->upstreams);
    lg_free(r->sni);
    for (size_t i = 0; i < r->n_ctx; i++)
        SSL_CTX_free(r->ctx[i]); /* NULL is a no-op */
    lg_free(r->ctx);
    lg_free(r->alpn);
}

void lg_snapshot_destroy(lg_snapshot_t *s)
{
    if (s == NULL) return;
    for (size_t i = 0; i < s->n_routes; i++)
        lg_route_free(&s->routes[i]);
    lg_free(s->routes);
    lg_router_free(&s->router);
    if (s->engine != NULL) {
        atomic_fetch_sub_explicit(&s->engine->generations_live, 1, memory_order_relaxed);
    }
    lg_free(s);
}

lg_snapshot_t *lg_snapshot_ref(lg_snapshot_t *s)
{
    if (s != NULL) atomic_fetch_add_explicit(&s->refs, 1, memory_order_relaxed);
    return s;
}

void lg_snapshot_unref(lg_snapshot_t *s)
{
    if (s == NULL) return;
    /* acq_rel: every use of the snapshot by the dropping thread happens before the free. */
    if (atomic_fetch_sub_explicit(&s->refs, 1, memory_order_acq_rel) == 1) lg_snapshot_destroy(s);
}
