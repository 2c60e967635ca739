/*
 * lg_router.h — SNI route table (pure core).
 *
 * Routing order (DESIGN.md): exact name → longest matching "*.suffix" wildcard → the default
 * route "" → none. A wildcard "*.example.com" matches "a.example.com" and "a.b.example.com" at any
 * depth, never "example.com" itself. Names are compared case-insensitively; a trailing dot is
 * ignored (both are normalised at build time and, for lookups, by lg_hello already).
 *
 * A table is built once (allocation allowed: it is part of a config snapshot built on the JS
 * thread) and then only read, from any number of worker threads, without locks. Lookups do not
 * allocate: exact names and wildcard suffixes live in two sorted arrays searched by bisection,
 * so a lookup costs O(labels × log routes).
 */
#ifndef LG_ROUTER_H
#define LG_ROUTER_H

#include "lg_common.h"

#define LG_ROUTER_MAX_ROUTES 65536 /* routes per table */
#define LG_ROUTER_MAX_NAME   253   /* bytes of a name, without the "*." of a wildcard */
#define LG_ROUTER_MAX_LABEL  63    /* bytes of one label (RFC 1035 §2.3.4) */
#define LG_ROUTER_NONE       (-1)

typedef struct lg_router_entry_s {
    const char *name; /* normalised: lower case, no trailing dot, no "*." prefix; owned by table */
    size_t len;
    int route; /* index into the snapshot's route array */
} lg_router_entry_t;

/* Owner: the config snapshot. Freed with lg_router_free(). */
typedef struct lg_router_s {
    lg_router_entry_t *exact; /* sorted by name */
    size_t n_exact;
    lg_router_entry_t *wild; /* sorted by suffix */
    size_t n_wild;
    int default_route; /* route of "", or LG_ROUTER_NONE */
    char *names;       /* one block holding every name */
} lg_router_t;

/*
 * Build a table from `n` patterns ("a.test", "*.b.test", "" ...); route i is pattern i.
 * Returns 0, -EINVAL with *bad_index set for an invalid pattern (empty label, "*" not followed by
 * ".", a "*" elsewhere, over-long name, characters outside LDH and "_"), -EEXIST with *bad_index
 * set for a duplicate (after normalisation; "A.test" and "a.test." are the same), or -ENOMEM.
 *
 * Details: "" is the default route; a wildcard is "*." followed by at least one label ("*",
 * "*." and "*.*.a" are invalid); a name is at most LG_ROUTER_MAX_NAME bytes and a label at most
 * LG_ROUTER_MAX_LABEL, both counted after dropping one trailing dot. A NULL pattern is -EINVAL.
 * More than LG_ROUTER_MAX_ROUTES patterns is -EINVAL with *bad_index = LG_ROUTER_MAX_ROUTES.
 * Invalid patterns are reported before duplicates; *bad_index is the smallest invalid index, or
 * for duplicates the smallest index that repeats an earlier pattern. `bad_index` may be NULL.
 * Duplicates are found after allocation (on the sorted arrays), so when memory runs out a set
 * with duplicates may report -ENOMEM instead of -EEXIST; invalid patterns never allocate.
 * `r` is overwritten; on failure it holds an empty table (default LG_ROUTER_NONE) that owns
 * nothing, so lg_router_free() on it is harmless.
 */
int lg_router_build(lg_router_t *r, const char *const *patterns, size_t n, size_t *bad_index);

/* Free what lg_router_build allocated; safe on a zeroed table. Leaves an empty table. */
void lg_router_free(lg_router_t *r);

/*
 * Look up a name (already normalised by lg_hello: lower case, no trailing dot); `sni` may be
 * NULL / `len` 0 for "no SNI". Returns the route index or LG_ROUTER_NONE. Does not allocate.
 * For robustness the lookup also folds ASCII upper case and ignores one trailing dot, as the
 * build does, so an unnormalised name routes the same as its normalised form.
 */
int lg_router_lookup(const lg_router_t *r, const char *sni, size_t len);

/*
 * Normalise a pattern for comparison: lower-case, drop one trailing dot. Writes at most
 * `cap` bytes to `dst` (no terminator) and returns the length, or -EINVAL if it does not fit.
 */
int lg_router_normalise(const char *src, size_t len, char *dst, size_t cap);

#endif /* LG_ROUTER_H */
