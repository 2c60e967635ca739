/*
 * lg_router.c — SNI route table (pure core; see lg_router.h for the routing order).
 *
 * Layout: every normalised name lives in one block (`names`, each name NUL-terminated for the
 * debugger's sake); `exact` holds the exact names and `wild` the suffixes of "*.suffix"
 * patterns (without the "*."), each array sorted by (bytes, length) so that a lookup is a
 * bisection. Three allocations per table, none per lookup.
 *
 * Invariants after a successful build:
 *   - every stored name is 1..LG_ROUTER_MAX_NAME bytes of lower-case letters, digits, '-' and
 *     '.', made of labels of 1..LG_ROUTER_MAX_LABEL bytes; no name appears twice in an array;
 *   - `exact` and `wild` are sorted by name_cmp(); n_exact + n_wild (+1 for a default) == n.
 *
 * Matching (DESIGN.md "Routing order"): an exact entry equal to the name wins; otherwise the
 * longest suffix S in `wild` such that name == X "." S with X non-empty (any number of labels);
 * otherwise the default route. Lookups fold ASCII upper case and ignore one trailing dot, exactly
 * as the build does, so a caller that forgot to normalise still routes correctly (lg_hello
 * normalises already; this costs one compare per byte and removes a class of caller bugs).
 *
 * Validation follows RFC 1035 §2.3.4 sizes (label <= 63, name <= 253 bytes in text form without
 * the trailing dot) and RFC 6125 §6.4.3 for wildcards, restricted to the leftmost label being
 * exactly "*"; names follow lg_name's SNI grammar (LDH), the one the ClientHello parser applies,
 * so no pattern can be accepted that no client could ever match.
 */
#include "lg_router.h"
#include "lg_name.h"

#include <limits.h>
#include <stdlib.h>
#include <string.h>

static inline unsigned char fold(unsigned char c)
{
    return (c >= 'A' && c <= 'Z') ? (unsigned char)(c - 'A' + 'a') : c;
}

/*
 * Order of the sorted arrays: bytewise on the common prefix, then shorter first. Both sides
 * are normalised (lower case), so this is also the case-insensitive order.
 */
static int name_cmp(const char *a, size_t alen, const char *b, size_t blen)
{
    int c = memcmp(a, b, LG_MIN(alen, blen));
    if (c != 0) return c;
    return (alen > blen) - (alen < blen);
}

/*
 * The same order, with a query `q` (which may hold upper case) folded on the fly against a
 * stored, already lower-case name `e`.
 */
static int query_cmp(const char *q, size_t qlen, const char *e, size_t elen)
{
    size_t n = LG_MIN(qlen, elen);
    for (size_t i = 0; i < n; i++) {
        unsigned char a = fold((unsigned char)q[i]), b = (unsigned char)e[i];
        if (a != b) return a < b ? -1 : 1;
    }
    return (qlen > elen) - (qlen < elen);
}

static int entry_cmp(const void *pa, const void *pb)
{
    const lg_router_entry_t *a = pa, *b = pb;
    int c = name_cmp(a->name, a->len, b->name, b->len);
    if (c != 0) return c;
    /* Equal names: keep input order so the later pattern is the one reported as duplicate. */
    return (a->route > b->route) - (a->route < b->route);
}

/* Bisection over a sorted array; returns the route or LG_ROUTER_NONE. */
static int find(const lg_router_entry_t *v, size_t n, const char *q, size_t qlen)
{
    size_t lo = 0, hi = n;
    while (lo < hi) {
        size_t mid = lo + (hi - lo) / 2;
        int c = query_cmp(q, qlen, v[mid].name, v[mid].len);
        if (c == 0) return v[mid].route;
        if (c < 0) {
            hi = mid;
        } else {
            lo = mid + 1;
        }
    }
    return LG_ROUTER_NONE;
}

int lg_router_normalise(const char *src, size_t len, char *dst, size_t cap)
{
    if (len > 0 && src[len - 1] == '.') len--;
    if (len > cap || len > (size_t)INT_MAX) return -EINVAL;
    for (size_t i = 0; i < len; i++)
        dst[i] = (char)fold((unsigned char)src[i]);
    return (int)len;
}

/*
 * Check one pattern (not the default "") with the SNI grammar of lg_name and report its
 * normalised length and kind. On success *name_off is 2 for a wildcard (the "*." is skipped) and
 * 0 otherwise, and *name_len is the length of what is stored, without the "*." and the trailing
 * dot. A wildcard's suffix may be all numeric ("*.10.in-addr" style names): the names it
 * matches have a non-numeric first label.
 */
static int check_pattern(const char *p, size_t *name_off, size_t *name_len)
{
    /*
     * Bound the scan: the longest valid pattern is "*." + LG_ROUTER_MAX_NAME + ".", so anything
     * that reaches LG_ROUTER_MAX_NAME + 4 bytes is rejected below without reading further.
     */
    size_t len = 0, off = 0;
    while (len < LG_ROUTER_MAX_NAME + 4 && p[len] != '\0')
        len++;
    if (len >= 2 && p[0] == '*' && p[1] == '.') off = 2;
    char tmp[LG_NAME_MAX];
    int n = lg_name_norm(p + off, len - off, LG_NAME_SNI, tmp, sizeof(tmp));
    if (n == -LG_NAME_E_NUMERIC && off == 2) n = (int)(len - off - (p[len - 1] == '.'));
    if (n <= 0) return -EINVAL;
    *name_off = off;
    *name_len = (size_t)n;
    return 0;
}

void lg_router_free(lg_router_t *r)
{
    lg_free(r->exact);
    lg_free(r->wild);
    lg_free(r->names);
    memset(r, 0, sizeof(*r));
    r->default_route = LG_ROUTER_NONE;
}

/* The smallest route index that repeats an earlier one in a sorted array, or -1. */
static long first_duplicate(const lg_router_entry_t *v, size_t n)
{
    long dup = -1;
    for (size_t i = 1; i < n; i++) {
        if (name_cmp(v[i - 1].name, v[i - 1].len, v[i].name, v[i].len) == 0 &&
            (dup < 0 || v[i].route < dup)) {
            dup = v[i].route;
        }
    }
    return dup;
}

int lg_router_build(lg_router_t *r, const char *const *patterns, size_t n, size_t *bad_index)
{
    size_t n_exact = 0, n_wild = 0, total = 0, i;
    size_t dummy;
    int default_route = LG_ROUTER_NONE;
    long dup_default = -1; /* a second "": reported after validation, like other duplicates */

    if (bad_index == NULL) bad_index = &dummy;
    memset(r, 0, sizeof(*r));
    r->default_route = LG_ROUTER_NONE;

    if (n > LG_ROUTER_MAX_ROUTES) {
        *bad_index = LG_ROUTER_MAX_ROUTES; /* the first pattern over the limit */
        return -EINVAL;
    }

    /* Pass 1, in input order: validate, count, size the name block. */
    for (i = 0; i < n; i++) {
        size_t off, len;
        if (patterns[i] == NULL) {
            *bad_index = i;
            return -EINVAL;
        }
        if (patterns[i][0] == '\0') {
            if (default_route == LG_ROUTER_NONE) {
                default_route = (int)i;
            } else if (dup_default < 0) {
                dup_default = (long)i;
            }
            continue;
        }
        if (check_pattern(patterns[i], &off, &len) != 0) {
            *bad_index = i;
            return -EINVAL;
        }
        if (off) {
            n_wild++;
        } else {
            n_exact++;
        }
        total += len + 1;
    }

    /* Pass 2: allocate, then copy every name normalised into the block. */
    char *names = total ? lg_malloc(total) : NULL;
    lg_router_entry_t *exact = n_exact ? lg_malloc(n_exact * sizeof(*exact)) : NULL;
    lg_router_entry_t *wild = n_wild ? lg_malloc(n_wild * sizeof(*wild)) : NULL;
    if ((total && !names) || (n_exact && !exact) || (n_wild && !wild)) {
        lg_free(names);
        lg_free(exact);
        lg_free(wild);
        return -ENOMEM;
    }

    char *w = names;
    size_t ie = 0, iw = 0;
    for (i = 0; i < n; i++) {
        size_t off, len;
        if (patterns[i][0] == '\0') continue;
        (void)check_pattern(patterns[i], &off, &len); /* validated in pass 1 */
        (void)lg_router_normalise(patterns[i] + off, len, w, len);
        w[len] = '\0';
        lg_router_entry_t *e = off ? &wild[iw++] : &exact[ie++];
        e->name = w;
        e->len = len;
        e->route = (int)i;
        w += len + 1;
    }

    if (n_exact) qsort(exact, n_exact, sizeof(*exact), entry_cmp);
    if (n_wild) qsort(wild, n_wild, sizeof(*wild), entry_cmp);

    long dup = dup_default;
    long de = first_duplicate(exact, n_exact), dw = first_duplicate(wild, n_wild);
    if (de >= 0 && (dup < 0 || de < dup)) dup = de;
    if (dw >= 0 && (dup < 0 || dw < dup)) dup = dw;
    if (dup >= 0) {
        *bad_index = (size_t)dup;
        lg_free(names);
        lg_free(exact);
        lg_free(wild);
        return -EEXIST;
    }

    r->exact = exact;
    r->n_exact = n_exact;
    r->wild = wild;
    r->n_wild = n_wild;
    r->default_route = default_route;
    r->names = names;
    return 0;
}

int lg_router_lookup(const lg_router_t *r, const char *sni, size_t len)
{
    if (sni == NULL) len = 0;
    if (len > 0 && sni[len - 1] == '.') len--;
    if (len == 0) return r->default_route;

    int route = find(r->exact, r->n_exact, sni, len);
    if (route != LG_ROUTER_NONE) return route;

    /*
     * Wildcards, longest suffix first: for each dot after a non-empty first part X, try the
     * suffix after it. The first hit is the longest matching "*.suffix".
     */
    if (r->n_wild > 0) {
        for (size_t i = 1; i + 1 < len; i++) {
            if (sni[i] != '.') continue;
            route = find(r->wild, r->n_wild, sni + i + 1, len - i - 1);
            if (route != LG_ROUTER_NONE) return route;
        }
    }
    return r->default_route;
}
