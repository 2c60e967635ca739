/*
 * lg_jsconf.h — converting the normalised JS config (lib/config.js) into lg_src_t, field by
 * field: strings and PEM bytes are copied, numbers and booleans read, nothing is judged. Every
 * value was validated by lib/config.js and every range is checked again when lg_config compiles
 * the result, so a value of the wrong type here is a bug in lib/config.js: it throws a TypeError
 * with code ERR_LEGATO_INTERNAL naming the path.
 *
 * Copies are made as values are read: reading a later property may run JS (a getter) that
 * detaches an earlier Buffer's memory, so no pointer into JS memory is kept.
 *
 * Functions return 0, or -1 with a JS exception pending and nothing left allocated.
 */
#ifndef LG_JSCONF_H
#define LG_JSCONF_H

#include "lg_config.h"

#include <node_api.h>

/* Convert a whole normalised config. */
int lg_jsconf_read(napi_env env, napi_value cfg, lg_src_t *out);

/*
 * Convert a normalised decision ({ upstreams, terminateTls, cert, mtls, alpn }) and the listener
 * `listener` of the normalised config `cfg` (for its defaultCert and mtls).
 */
int lg_jsconf_read_decision(napi_env env, napi_value decision, napi_value cfg, unsigned listener,
                            lg_src_route_t *d, lg_src_listener_t *l);

/* Throw a compile refusal as ERR_LEGATO_CONFIG (TypeError or RangeError). */
void lg_jsconf_throw(napi_env env, const lg_cfgerr_t *err);

#endif /* LG_JSCONF_H */
