/*
 * lg_policy.c — destination policy of a CONNECT listener (pure core; rules in lg_policy.h).
 *
 * Layout: allowPorts as a sorted, de-duplicated array (bisection); denyCidrs and allowCidrs as
 * two lg_cidr sets; allowDomains as one block of normalised names plus an array of (name, len)
 * sorted bytewise, so that a name is matched by bisecting each of its label-boundary suffixes
 * (at most 127 of them for a 253-byte name): O(labels × log domains), no allocation.
 *
 * Invariants after a successful build: ports[] is strictly increasing and holds no 0; every
 * domain is 1..LG_POLICY_MAX_DOMAIN bytes of lower-case labels and is NUL-terminated in names;
 * domains[] is sorted by policy_name_cmp().
 *
 * RFC sections: RFC 6052 §2.1-2.2 (NAT64 well-known prefix, IPv4 in the last 32 bits of a /96),
 * RFC 3056 §2 (6to4: IPv4 in bits 16..47), RFC 4291 §2.5.5.2 (IPv4-mapped), RFC 1035 §2.3.4
 * (name sizes).
 */
#include "lg_policy.h"
#include "lg_name.h"

#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h> /* AF_INET, AF_INET6: constants only */

/* 64:ff9b::/96, the NAT64 well-known prefix (RFC 6052 §2.1). */
static const uint8_t policy_nat64_prefix[12] = {0x00, 0x64, 0xff, 0x9b, 0, 0, 0, 0, 0, 0, 0, 0};

static char policy_lower(char c)
{
    return (c >= 'A' && c <= 'Z') ? (char)(c - 'A' + 'a') : c;
}

/* Bytewise on the common prefix, then shorter first. */
static int policy_name_cmp(const char *a, size_t alen, const char *b, size_t blen)
{
    int c = memcmp(a, b, LG_MIN(alen, blen));
    if (c != 0) return c;
    return (alen > blen) - (alen < blen);
}

static int policy_domain_cmp(const void *pa, const void *pb)
{
    const lg_policy_domain_t *a = pa, *b = pb;
    return policy_name_cmp(a->name, a->len, b->name, b->len);
}

static int policy_port_cmp(const void *pa, const void *pb)
{
    uint16_t a = *(const uint16_t *)pa, b = *(const uint16_t *)pb;
    return (a > b) - (a < b);
}

/*
 * Normalise an allowDomains entry into dst (LG_POLICY_MAX_DOMAIN bytes): drop a leading "*." or
 * ".", then lg_name's HOST grammar (case folded, one trailing dot dropped; a numeric last label
 * can never match: lg_http refuses such names, use allowCidrs). Returns the length or -EINVAL.
 */
static long policy_domain_norm(const char *src, char *dst)
{
    size_t len = 0;
    if (src == NULL) return -EINVAL;
    if (src[0] == '*' && src[1] == '.') {
        src += 2;
    } else if (src[0] == '.') {
        src += 1;
    }
    /* Bounded scan: anything reaching LG_POLICY_MAX_DOMAIN + 2 bytes is too long. */
    while (len < LG_POLICY_MAX_DOMAIN + 2 && src[len] != '\0')
        len++;
    int n = lg_name_norm(src, len, LG_NAME_HOST, dst, LG_POLICY_MAX_DOMAIN);
    return n < 0 ? -EINVAL : (long)n;
}

void lg_policy_free(lg_policy_t *p)
{
    lg_free(p->ports);
    lg_cidr_set_free(&p->deny);
    lg_cidr_set_free(&p->allow);
    lg_free(p->domains);
    lg_free(p->names);
    memset(p, 0, sizeof(*p));
}

int lg_policy_build(lg_policy_t *p, const uint16_t *ports, size_t n_ports, const lg_cidr_t *deny,
                    size_t n_deny, const lg_cidr_t *allow, size_t n_allow,
                    const char *const *domains, size_t n_domains)
{
    char tmp[LG_POLICY_MAX_DOMAIN + 2];
    size_t total = 0;
    int rc;

    memset(p, 0, sizeof(*p));
    if (n_ports > LG_POLICY_MAX_PORTS || n_deny > LG_CIDR_SET_MAX || n_allow > LG_CIDR_SET_MAX ||
        n_domains > LG_POLICY_MAX_DOMAINS) {
        return -E2BIG;
    }
    /* Validate everything that can be validated before allocating. */
    for (size_t i = 0; i < n_ports; i++) {
        if (ports[i] == 0) return -EINVAL;
    }
    for (size_t i = 0; i < n_domains; i++) {
        long len = policy_domain_norm(domains[i], tmp);
        if (len < 0) return -EINVAL;
        total += (size_t)len + 1;
    }

    if (n_ports > 0) {
        p->ports = lg_malloc(n_ports * sizeof(*p->ports));
        if (p->ports == NULL) goto nomem;
        memcpy(p->ports, ports, n_ports * sizeof(*p->ports));
        qsort(p->ports, n_ports, sizeof(*p->ports), policy_port_cmp);
        size_t out = 0;
        for (size_t i = 0; i < n_ports; i++) {
            if (out == 0 || p->ports[out - 1] != p->ports[i]) p->ports[out++] = p->ports[i];
        }
        p->n_ports = out;
    }
    if ((rc = lg_cidr_set_build(&p->deny, deny, n_deny)) != 0) goto fail;
    if ((rc = lg_cidr_set_build(&p->allow, allow, n_allow)) != 0) goto fail;
    if (n_domains > 0) {
        p->domains = lg_malloc(n_domains * sizeof(*p->domains));
        p->names = lg_malloc(total);
        if (p->domains == NULL || p->names == NULL) goto nomem;
        char *w = p->names;
        for (size_t i = 0; i < n_domains; i++) {
            long len = policy_domain_norm(domains[i], w);
            w[len] = '\0';
            p->domains[i].name = w;
            p->domains[i].len = (size_t)len;
            w += len + 1;
        }
        p->n_domains = n_domains;
        qsort(p->domains, n_domains, sizeof(*p->domains), policy_domain_cmp);
    }
    return 0;

nomem:
    rc = -ENOMEM;
fail:
    lg_policy_free(p);
    return rc;
}

static bool policy_port_ok(const lg_policy_t *p, uint16_t port)
{
    size_t lo = 0, hi = p->n_ports;
    while (lo < hi) {
        size_t mid = lo + (hi - lo) / 2;
        if (p->ports[mid] == port) return true;
        if (p->ports[mid] < port) {
            lo = mid + 1;
        } else {
            hi = mid;
        }
    }
    return false;
}

/* Compare a query `q` (folded on the fly) with a stored, lower-case name; name_cmp order. */
static int policy_query_cmp(const char *q, size_t qlen, const char *e, size_t elen)
{
    size_t n = LG_MIN(qlen, elen);
    for (size_t i = 0; i < n; i++) {
        unsigned char a = (unsigned char)policy_lower(q[i]), b = (unsigned char)e[i];
        if (a != b) return a < b ? -1 : 1;
    }
    return (qlen > elen) - (qlen < elen);
}

static bool policy_domain_listed(const lg_policy_t *p, const char *q, size_t qlen)
{
    size_t lo = 0, hi = p->n_domains;
    while (lo < hi) {
        size_t mid = lo + (hi - lo) / 2;
        int c = policy_query_cmp(q, qlen, p->domains[mid].name, p->domains[mid].len);
        if (c == 0) return true;
        if (c < 0) {
            hi = mid;
        } else {
            lo = mid + 1;
        }
    }
    return false;
}

/* Is `name` a listed domain or below one (on a label boundary)? */
static bool policy_domain_ok(const lg_policy_t *p, const char *name, size_t len)
{
    if (len > 0 && name[len - 1] == '.') len--; /* as the build does; lg_http already drops it */
    if (len == 0) return false;
    for (size_t i = 0; i < len; i++) {
        if (i == 0 || name[i - 1] == '.') {
            if (policy_domain_listed(p, name + i, len - i)) return true;
        }
    }
    return false;
}

/* One address against the lists: allowed when excepted, or not denied. */
static bool policy_lists_allow(const lg_policy_t *p, uint8_t family, const uint8_t *addr)
{
    return lg_cidr_set_contains(&p->allow, family, addr) ||
           !lg_cidr_set_contains(&p->deny, family, addr);
}

bool lg_policy_addr_allowed(const lg_policy_t *p, uint8_t family, const uint8_t *addr)
{
    uint8_t a[16];
    if (!lg_ip_load(&family, addr, a)) return false;
    if (!policy_lists_allow(p, family, a)) return false;
    if (family == LG_CIDR_V6) {
        /* An embedded IPv4 address must pass too (see lg_policy.h). */
        if (memcmp(a, policy_nat64_prefix, sizeof(policy_nat64_prefix)) == 0) {
            return policy_lists_allow(p, LG_CIDR_V4, a + 12);
        }
        if (a[0] == 0x20 && a[1] == 0x02) return policy_lists_allow(p, LG_CIDR_V4, a + 2);
    }
    return true;
}

int lg_policy_check_target(const lg_policy_t *p, const lg_http_req_t *req)
{
    if (!policy_port_ok(p, req->port)) return LG_POLICY_PORT;
    if (!req->host_is_ip) {
        if (p->n_domains > 0 && !policy_domain_ok(p, req->host, req->host_len)) {
            return LG_POLICY_DOMAIN;
        }
        return LG_POLICY_OK;
    }
    uint8_t family;
    if (req->family == AF_INET) {
        family = LG_CIDR_V4;
    } else if (req->family == AF_INET6) {
        family = LG_CIDR_V6;
    } else {
        return LG_POLICY_ADDRESS;
    }
    if (p->n_domains > 0 && !lg_cidr_set_contains(&p->allow, family, req->addr)) {
        return LG_POLICY_DOMAIN;
    }
    if (!lg_policy_addr_allowed(p, family, req->addr)) return LG_POLICY_ADDRESS;
    return LG_POLICY_OK;
}

size_t lg_policy_filter(const lg_policy_t *p, uint8_t *families, uint8_t (*addrs)[16], size_t n)
{
    size_t out = 0;
    for (size_t i = 0; i < n; i++) {
        if (!lg_policy_addr_allowed(p, families[i], addrs[i])) continue;
        if (out != i) {
            families[out] = families[i];
            memcpy(addrs[out], addrs[i], 16);
        }
        out++;
    }
    return out;
}

bool lg_policy_denial(const lg_policy_t *p, uint8_t family, const uint8_t *addr,
                      lg_policy_denial_t *d)
{
    memset(d, 0, sizeof(*d));
    if (lg_policy_addr_allowed(p, family, addr)) return false;
    uint8_t a[16];
    if (!lg_ip_load(&family, addr, a)) return true; /* an unknown family: refused, no range */
    d->family = family;
    memcpy(d->addr, a, 16);
    if (!policy_lists_allow(p, family, a)) {
        lg_cidr_set_block(&p->deny, family, a, &d->block);
    } else if (family == LG_CIDR_V6) {
        /* Allowed itself: refused through the IPv4 address it embeds (see the header). */
        d->embedded = true;
        memcpy(d->v4,
               memcmp(a, policy_nat64_prefix, sizeof(policy_nat64_prefix)) == 0 ? a + 12 : a + 2,
               4);
        lg_cidr_set_block(&p->deny, LG_CIDR_V4, d->v4, &d->block);
    }
    return true;
}

/* A client-given name as shown in an explanation (see lg_policy.h); out holds
 * LG_POLICY_SHOWN_MAX + 4 bytes. */
static void policy_show(const char *s, size_t n, char *out)
{
    size_t w = 0;
    for (size_t i = 0; i < n; i++) {
        unsigned char c = (unsigned char)s[i];
        bool plain = (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
                     c == '.' || c == '-' || c == '_' || c == ':';
        size_t need = plain ? 1 : 4;
        if (w + need > LG_POLICY_SHOWN_MAX) {
            memcpy(out + w, "...", 3);
            w += 3;
            break;
        }
        if (plain) {
            out[w++] = (char)c;
        } else {
            static const char hex[] = "0123456789abcdef";
            out[w++] = '\\';
            out[w++] = 'x';
            out[w++] = hex[c >> 4];
            out[w++] = hex[c & 15];
        }
    }
    out[w] = '\0';
}

/* snprintf that reports the length actually written (clipped to cap - 1). */
static size_t policy_say(char *out, size_t cap, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    int n = vsnprintf(out, cap, fmt, ap);
    va_end(ap);
    if (n < 0) {
        if (cap > 0) out[0] = '\0';
        return 0;
    }
    return cap == 0 ? 0 : LG_MIN((size_t)n, cap - 1);
}

/* "10.0.0.1 is in a denied range (denyCidrs 10.0.0.0/8; --allow-cidr 10.0.0.1 allows it)", or
 * "64:ff9b::a00:1 embeds 10.0.0.1, which is in ..." */
static size_t policy_say_denial(char *out, size_t cap, const lg_policy_denial_t *d)
{
    char ip[LG_IP_TEXT_MAX + 1], v4[LG_IP_TEXT_MAX + 1], block[LG_CIDR_TEXT_MAX + 1];
    lg_ip_format(d->family, d->addr, ip, sizeof(ip));
    if (lg_cidr_format(&d->block, block, sizeof(block)) != 0) snprintf(block, sizeof(block), "?");
    if (!d->embedded) {
        return policy_say(out, cap,
                          "%s is in a denied range (denyCidrs %s; --allow-cidr %s allows it)", ip,
                          block, ip);
    }
    lg_ip_format(LG_CIDR_V4, d->v4, v4, sizeof(v4));
    return policy_say(out, cap,
                      "%s embeds %s, which is in a denied range (denyCidrs %s; --allow-cidr %s "
                      "allows it)",
                      ip, v4, block, v4);
}

size_t lg_policy_explain(const lg_policy_t *p, const lg_http_req_t *req, int reason,
                         const lg_policy_denial_t *resolved, char *out, size_t cap)
{
    char host[LG_POLICY_SHOWN_MAX + 4];
    char why[LG_POLICY_WHY_MAX];
    policy_show(req->host, req->host_len, host);
    uint8_t family = req->family == AF_INET ? LG_CIDR_V4 : LG_CIDR_V6;
    lg_policy_denial_t d;

    switch (reason) {
    case LG_POLICY_PORT:
        return policy_say(out, cap,
                          "port %u is not allowed (allowPorts; --allow-port %u allows it)",
                          (unsigned)req->port, (unsigned)req->port);
    case LG_POLICY_DOMAIN:
        if (req->host_is_ip) {
            return policy_say(out, cap,
                              "%s is an address, and with allowDomains set only addresses in "
                              "allowCidrs may be reached (--allow-cidr %s allows it)",
                              host, host);
        }
        return policy_say(out, cap,
                          "%s is not in the allowed domains (allowDomains; --allow-domain)", host);
    case LG_POLICY_ADDRESS:
        if (req->host_is_ip && lg_policy_denial(p, family, req->addr, &d)) {
            return policy_say_denial(out, cap, &d);
        }
        if (!req->host_is_ip && resolved != NULL && resolved->family != 0) {
            policy_say_denial(why, sizeof(why), resolved);
            return policy_say(out, cap, "%s resolves only to denied addresses: %s", host, why);
        }
        return policy_say(out, cap, "%s resolves only to denied addresses (denyCidrs)", host);
    default:
        return policy_say(out, cap, "the destination is not allowed");
    }
}

const char *lg_policy_reason_name(int reason)
{
    switch (reason) {
    case LG_POLICY_OK:
        return "ok";
    case LG_POLICY_PORT:
        return "port";
    case LG_POLICY_DOMAIN:
        return "domain";
    case LG_POLICY_ADDRESS:
        return "address";
    default:
        return "unknown";
    }
}
