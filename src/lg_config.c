/*
 * lg_config.c — freeing configs and reference counting of snapshots (see lg_config.h).
 */
#include "lg_config.h"

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

void lg_route_destroy(lg_route_t *r)
{
    if (r == NULL) return;
    lg_route_free(r);
    lg_free(r);
}

void lg_snapshot_destroy(lg_snapshot_t *s)
{
    if (s == NULL) return;
    for (size_t i = 0; i < s->n_routes; i++)
        lg_route_free(&s->routes[i]);
    lg_free(s->routes);
    lg_router_free(&s->router);
    if (s->slot != NULL) atomic_fetch_sub_explicit(&s->slot->live, 1, memory_order_relaxed);
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

void lg_snapslot_init(lg_snapslot_t *slot, lg_snapshot_t *snap)
{
    pthread_mutex_init(&slot->lock, NULL);
    snap->slot = slot;
    snap->generation = ++slot->next_gen;
    atomic_init(&slot->live, 1);
    slot->snap = snap;
    atomic_init(&slot->gen, snap->generation);
}

void lg_snapslot_swap(lg_snapslot_t *slot, lg_snapshot_t *snap)
{
    snap->slot = slot;
    atomic_fetch_add_explicit(&slot->live, 1, memory_order_relaxed);
    pthread_mutex_lock(&slot->lock);
    lg_snapshot_t *old = slot->snap;
    snap->generation = ++slot->next_gen;
    slot->snap = snap;
    atomic_store_explicit(&slot->gen, snap->generation, memory_order_release);
    pthread_mutex_unlock(&slot->lock);
    lg_snapshot_unref(old);
}

void lg_snapslot_destroy(lg_snapslot_t *slot)
{
    lg_snapshot_unref(slot->snap);
    slot->snap = NULL;
    pthread_mutex_destroy(&slot->lock);
}

lg_snapshot_t *lg_snapslot_get(lg_snapslot_t *slot, lg_snapshot_t **held, uint64_t *held_gen)
{
    uint64_t gen = atomic_load_explicit(&slot->gen, memory_order_acquire);
    if (LG_UNLIKELY(*held == NULL || gen != *held_gen)) {
        pthread_mutex_lock(&slot->lock);
        lg_snapshot_t *s = lg_snapshot_ref(slot->snap);
        pthread_mutex_unlock(&slot->lock);
        lg_snapshot_unref(*held);
        *held = s;
        *held_gen = s->generation;
    }
    return *held;
}
