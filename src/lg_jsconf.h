/*
 * lg_jsconf.h — converting the normalised JS config (lib/config.js) into C structs.
 *
 * JS validates and fills defaults first; this file re-checks every range it relies on (defence
 * in depth) and throws a TypeError/RangeError with code ERR_LEGATO_CONFIG naming the option path
 * when something is off. Functions return 0, or -1 with a JS exception pending.
 */
#ifndef LG_JSCONF_H
#define LG_JSCONF_H

#include "lg_config.h"
#include "lg_tls_ctx.h"

#include <node_api.h>

/* Fill *conf (fixed part) from a normalised config object. */
int lg_jsconf_config(napi_env env, napi_value cfg, lg_config_t *conf);

/*
 * Build a snapshot (refs = 1) from a normalised config object, for the listeners in conf.
 * TLS contexts come from `cur` (the running snapshot's cache; NULL at construction) when their
 * material is unchanged, else are built; every context the new snapshot uses is recorded in
 * `next` (which the caller makes the cache once the snapshot is published, or frees).
 */
int lg_jsconf_snapshot(napi_env env, napi_value cfg, const lg_config_t *conf, lg_tls_cache_t *cur,
                       lg_tls_cache_t *next, lg_snapshot_t **out);

/*
 * Build a suspended connection's route from a normalised decision ({ upstreams, terminateTls,
 * cert, mtls, alpn }) for the connection's listener (its defaultCert/mtls from `cfg`). TLS
 * contexts are reused from `cache` when the material matches. A terminating decision with
 * neither cert nor mtls of its own, on a suspended route that has a context for the listener
 * (`route_tls`: the route's cert, or the listener's defaultCert), gets no context: the worker uses
 * the route's. Returns 0 or -1 (JS exception).
 */
int lg_jsconf_decision(napi_env env, napi_value decision, napi_value cfg, const lg_config_t *conf,
                       lg_tls_cache_t *cache, unsigned listener, bool route_tls, lg_route_t **out);

#endif /* LG_JSCONF_H */
