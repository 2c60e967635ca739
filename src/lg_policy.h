/*
 * lg_policy.h — destination policy of a CONNECT listener (pure core: no I/O, no lookups).
 *
 * The shell parses the head (lg_http), asks lg_policy_check_target() about the target as
 * written, resolves a name itself, and passes the answer through lg_policy_filter(); it then
 * dials only the addresses that remain, so what was checked is what is dialled (no second lookup,
 * no DNS rebinding window). Refusals are 403 with the reason's counter.
 *
 * Rules (DESIGN.md, issue 5):
 *   - port: the target port must be in allowPorts (lib/config.js merges the default 443). An
 *     empty list allows nothing (fail closed; config refuses it anyway).
 *   - domains: when allowDomains is non-empty, a name target must equal a listed domain or end
 *     with "." + domain (label boundary: "example.com" admits "a.example.com" and
 *     "example.com", never "badexample.com"). An IP-literal target is then refused unless its
 *     address is in allowCidrs (an explicit exception names the address, a domain list cannot).
 *   - addresses: an address is allowed when it is in allowCidrs or not in denyCidrs (exceptions
 *     win). IPv4-mapped IPv6 is judged as the IPv4 address it maps. An address that embeds an
 *     IPv4 address a translator or relay will reach — NAT64 64:ff9b::/96 (RFC 6052 §2.1, the
 *     last 32 bits) and 6to4 2002::/16 (RFC 3056 §2, bits 16..47) — is allowed only if the
 *     embedded IPv4 address is allowed as well: allowing 64:ff9b::/96 for an IPv6-only host
 *     behind DNS64 must not open 64:ff9b::10.0.0.1 into the internal network. Both ranges are
 *     also denied whole by default. Other embeddings (the RFC 8215 local-use NAT64 prefix,
 *     operator NAT64 prefixes, Teredo, deprecated IPv4-compatible ::a.b.c.d) are not decoded:
 *     list such prefixes in denyCidrs.
 *
 * Families are 4 and 6 here (LG_CIDR_V4 / LG_CIDR_V6), except in lg_http_req_t, which carries
 * AF_INET / AF_INET6 and is converted. An unknown family is never allowed.
 *
 * A policy is built once per config snapshot (allocation allowed) and then only read, from any
 * worker thread, without locks; checks never allocate.
 */
#ifndef LG_POLICY_H
#define LG_POLICY_H

#include "lg_cidr.h"
#include "lg_common.h"
#include "lg_http.h"

#define LG_POLICY_MAX_PORTS   65535 /* entries in allowPorts (every port once) */
#define LG_POLICY_MAX_DOMAINS 65536 /* entries in allowDomains */
#define LG_POLICY_MAX_DOMAIN  253   /* bytes of a domain without its trailing dot */

/* Refusal reasons (0 = allowed). */
enum {
    LG_POLICY_OK = 0,
    LG_POLICY_PORT,    /* the port is not in allowPorts */
    LG_POLICY_DOMAIN,  /* allowDomains is set and the target is not in it */
    LG_POLICY_ADDRESS, /* the address (literal, or every resolved one) is denied */
};

typedef struct lg_policy_domain_s {
    const char *name; /* normalised: lower case, no trailing dot; points into `names` */
    size_t len;
} lg_policy_domain_t;

/* Owner: the config snapshot; freed with lg_policy_free(). A zeroed policy refuses every target
 * (no port is allowed); its address lists are empty. */
typedef struct lg_policy_s {
    uint16_t *ports; /* sorted, unique */
    size_t n_ports;
    lg_cidr_set_t deny, allow;
    lg_policy_domain_t *domains; /* sorted by name_cmp order, may hold duplicates */
    size_t n_domains;
    char *names; /* one block holding every domain name */
} lg_policy_t;

/*
 * Build a policy. `ports` are 1..65535 (duplicates allowed); `deny` and `allow` are parsed CIDRs
 * (lg_cidr_parse); `domains` are names as in allowDomains: case is folded, one trailing dot and a
 * leading "*." or "." are dropped (as lib/config.js does), the rest must be 1..253 bytes of
 * labels of letters, digits, '-' and '_' (1..63 bytes each) whose last label is not numeric.
 * Any array may be NULL when its count is 0. `p` is overwritten. Returns 0; -EINVAL for a port 0,
 * a malformed CIDR entry or domain (NULL included); -E2BIG when a list is longer than its
 * maximum (LG_POLICY_MAX_PORTS, LG_CIDR_SET_MAX, LG_POLICY_MAX_DOMAINS); -ENOMEM. On failure
 * `p` owns nothing and allows nothing.
 */
int lg_policy_build(lg_policy_t *p, const uint16_t *ports, size_t n_ports, const lg_cidr_t *deny,
                    size_t n_deny, const lg_cidr_t *allow, size_t n_allow,
                    const char *const *domains, size_t n_domains);

/* Free what lg_policy_build allocated; safe on a zeroed policy. Leaves an empty policy. */
void lg_policy_free(lg_policy_t *p);

/*
 * Judge a parsed target (lg_http LG_OK output) before any lookup: the port, then the domain
 * allowlist, then for an IP literal its address. Returns LG_POLICY_OK or the first reason that
 * refuses it. For a name, LG_POLICY_OK means "resolve it and lg_policy_filter() the answer".
 */
int lg_policy_check_target(const lg_policy_t *p, const lg_http_req_t *req);

/* Is this address allowed (rules above)? `family` is 4 (addr: 4 bytes) or 6 (16 bytes). */
bool lg_policy_addr_allowed(const lg_policy_t *p, uint8_t family, const uint8_t *addr);

/*
 * Keep only the allowed addresses of a lookup answer, in their order: entries are moved down
 * over refused ones (families[i] 4 or 6, addrs[i] as in lg_policy_addr_allowed; entries are not
 * rewritten, an IPv4-mapped address stays IPv6). Returns how many remain at the front; 0 means
 * every address was refused (LG_POLICY_ADDRESS).
 */
size_t lg_policy_filter(const lg_policy_t *p, uint8_t *families, uint8_t (*addrs)[16], size_t n);

/*
 * Explanations of a refusal (issue 15 item 10): one line of plain text naming the rule, for the
 * 403 body and the tunnel event, e.g. "port 8443 is not allowed (allowPorts; --allow-port 8443
 * allows it)". A name the client sent is shown clipped to LG_POLICY_SHOWN_MAX bytes of output,
 * letters, digits and ".-_:" as they are and every other byte as \xHH (lg_http admits no
 * other bytes in a target today; this holds even if that changes). Nothing else the client
 * sent is shown.
 */
#define LG_POLICY_SHOWN_MAX 64  /* bytes of output showing a client-given name (then "...") */
#define LG_POLICY_WHY_MAX   320 /* bytes of an explanation, NUL included */

/* A denied address that explains a refusal: the denyCidrs block holding it, and for an address
 * refused through the IPv4 address it embeds (NAT64, 6to4), that address. */
typedef struct lg_policy_denial_s {
    uint8_t family;   /* of addr: 4 or 6 (0: none) */
    uint8_t addr[16]; /* the denied address, unmapped */
    bool embedded;    /* refused through v4 */
    uint8_t v4[4];
    lg_cidr_t block; /* the denyCidrs block that refused it */
} lg_policy_denial_t;

/* Why an address is refused; false (d->family 0) when it is allowed. Rules as in
 * lg_policy_addr_allowed; not for the hot path. */
bool lg_policy_denial(const lg_policy_t *p, uint8_t family, const uint8_t *addr,
                      lg_policy_denial_t *d);

/*
 * Write the explanation of refusing `req` for `reason` into out (cap bytes, NUL-terminated,
 * clipped). `resolved` is the first refused address of a name's lookup answer (reason
 * LG_POLICY_ADDRESS for a name), or NULL. Returns the length written.
 */
size_t lg_policy_explain(const lg_policy_t *p, const lg_http_req_t *req, int reason,
                         const lg_policy_denial_t *resolved, char *out, size_t cap);

/* A short static name for a reason ("ok", "port", "domain", "address"; "unknown" otherwise). */
const char *lg_policy_reason_name(int reason);

#endif /* LG_POLICY_H */
