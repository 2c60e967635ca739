/*
 * test_router.c — unit tests of the SNI route table (src/lg_router.c).
 *
 * Covers pattern validation (good/bad tables), routing order (exact → longest wildcard →
 * default → none), normalisation at build time, duplicate detection, every limit at exactly max
 * and max + 1 (name 253/254 bytes, label 63/64, LG_ROUTER_MAX_ROUTES routes), a 10,000-route
 * table checked name by name, and allocation failure at every allocation of a build.
 */
#include "../../src/lg_name.c"
#include "../../src/lg_router.c"

#include <stdio.h>
#include <stdlib.h>

#include "lg_test.h"

static int lookup_str(const lg_router_t *r, const char *s)
{
    return lg_router_lookup(r, s, s ? strlen(s) : 0);
}

/* A name of exactly `len` bytes made of labels of at most `label` bytes: "aaa.bbb.c...". */
static void make_name(char *dst, size_t len, size_t label)
{
    size_t i = 0, run = 0;
    char c = 'a';
    while (i < len) {
        if (run == label && i + 1 < len) {
            dst[i++] = '.';
            run = 0;
            c = (char)(c == 'z' ? 'a' : c + 1);
            continue;
        }
        dst[i++] = c;
        run++;
    }
    dst[len] = '\0';
}

/* A pattern that is valid, with what it must normalise to and whether it is a wildcard. */
static const struct {
    const char *pattern;
    const char *stored; /* normalised name as kept in the table */
    bool wild;
} good[] = {
    {"a.test", "a.test", false},               /* plain name */
    {"A.TeSt", "a.test", false},               /* upper case folded */
    {"a.test.", "a.test", false},              /* one trailing dot dropped */
    {"localhost", "localhost", false},         /* single label */
    {"x", "x", false},                         /* one byte */
    {"a-b.d0-9.test", "a-b.d0-9.test", false}, /* LDH */
    {"1a.2.test", "1a.2.test", false},         /* numeric labels beside others */
    {"*.10.20", "10.20", true},                /* a numeric wildcard suffix matches names */
    {"*.test", "test", true},                  /* wildcard over a single label */
    {"*.B.Test.", "b.test", true},             /* wildcard normalised as well */
    {"*.x", "x", true},                        /* shortest wildcard */
};

/* A pattern that must be refused with -EINVAL. */
static const struct {
    const char *pattern;
    const char *why;
} bad[] = {
    /* lg_name's SNI grammar, the one the ClientHello parser applies: a pattern no client can
     * send is refused rather than accepted and never matched. */
    {"a-b_c.d0-9.test", "'_' is not LDH"},
    {"_srv._tcp.test", "'_' leading a label"},
    {"-a.test", "a label starting with '-'"},
    {"a-.test", "a label ending with '-'"},
    {"1.2.3.4", "an IPv4 literal (every label numeric)"},
    {".", "only the root dot"},
    {"..", "empty label after dropping one dot"},
    {"a.test..", "two trailing dots"},
    {".a.test", "leading empty label"},
    {"a..test", "empty label inside"},
    {"*", "bare star"},
    {"*.", "star dot, no label"},
    {"*..", "star dot, then an empty label"},
    {"*.*.test", "second star"},
    {"**.test", "double star"},
    {"a*.test", "star inside a label"},
    {"*a.test", "star followed by a letter"},
    {"a.*.test", "star in the middle"},
    {"a.test.*", "star at the end"},
    {"*test", "star not followed by a dot"},
    {".*.test", "star after an empty label"},
    {"a test", "space"},
    {"a/test", "slash"},
    {"a:443", "port"},
    {"a\ttest", "tab"},
    {"\xc3\xa9.test", "non-ASCII byte"},
    {"[::1]", "IPv6 literal syntax"},
    {"a@b.test", "at sign"},
};

LG_TEST(test_good_patterns)
{
    for (size_t i = 0; i < LG_ARRAY_SIZE(good); i++) {
        const char *pats[1] = {good[i].pattern};
        lg_router_t r;
        size_t bad_index = 99;
        CHECK_ROW(lg_router_build(&r, pats, 1, &bad_index) == 0, good[i].pattern);
        CHECK_ROW(bad_index == 99, good[i].pattern);
        const lg_router_entry_t *e = good[i].wild ? r.wild : r.exact;
        CHECK_ROW((good[i].wild ? r.n_wild : r.n_exact) == 1, good[i].pattern);
        CHECK_ROW((good[i].wild ? r.n_exact : r.n_wild) == 0, good[i].pattern);
        CHECK_ROW(e[0].len == strlen(good[i].stored), good[i].pattern);
        CHECK_ROW(memcmp(e[0].name, good[i].stored, e[0].len) == 0, good[i].pattern);
        CHECK_ROW(e[0].route == 0, good[i].pattern);
        CHECK_ROW(r.default_route == LG_ROUTER_NONE, good[i].pattern);
        if (good[i].wild) {
            char name[300];
            snprintf(name, sizeof(name), "host.%s", good[i].stored);
            CHECK_ROW(lookup_str(&r, name) == 0, good[i].pattern);
            CHECK_ROW(lookup_str(&r, good[i].stored) == LG_ROUTER_NONE, good[i].pattern);
        } else {
            CHECK_ROW(lookup_str(&r, good[i].stored) == 0, good[i].pattern);
        }
        lg_router_free(&r);
    }
}

LG_TEST(test_bad_patterns)
{
    for (size_t i = 0; i < LG_ARRAY_SIZE(bad); i++) {
        /* The bad pattern sits at index 1 behind a good one: *bad_index must name it. */
        const char *pats[3] = {"ok.test", bad[i].pattern, "also.ok.test"};
        lg_router_t r;
        size_t bad_index = 99;
        CHECK_ROW(lg_router_build(&r, pats, 3, &bad_index) == -EINVAL, bad[i].why);
        CHECK_ROW(bad_index == 1, bad[i].why);
        /* A failed build leaves an empty table that owns nothing. */
        CHECK_ROW(r.exact == NULL && r.wild == NULL && r.names == NULL, bad[i].why);
        CHECK_ROW(r.default_route == LG_ROUTER_NONE, bad[i].why);
        CHECK_ROW(lookup_str(&r, "ok.test") == LG_ROUTER_NONE, bad[i].why);
        lg_router_free(&r);
    }
}

LG_TEST(test_null_pattern_and_null_bad_index)
{
    const char *pats[2] = {"a.test", NULL};
    lg_router_t r;
    size_t bad_index = 99;
    CHECK_EQ_INT(lg_router_build(&r, pats, 2, &bad_index), -EINVAL);
    CHECK_EQ_INT(bad_index, 1);
    CHECK_EQ_INT(lg_router_build(&r, pats, 2, NULL), -EINVAL);
    const char *dup[2] = {"a.test", "a.test"};
    CHECK_EQ_INT(lg_router_build(&r, dup, 2, NULL), -EEXIST);
    CHECK_EQ_INT(lg_router_build(&r, pats, 1, NULL), 0);
    CHECK_EQ_INT(lookup_str(&r, "a.test"), 0);
    lg_router_free(&r);
}

LG_TEST(test_empty_table)
{
    lg_router_t r;
    CHECK_EQ_INT(lg_router_build(&r, NULL, 0, NULL), 0);
    CHECK_EQ_INT(lookup_str(&r, "a.test"), LG_ROUTER_NONE);
    CHECK_EQ_INT(lookup_str(&r, NULL), LG_ROUTER_NONE);
    lg_router_free(&r);
    lg_router_free(&r); /* twice is harmless */

    lg_router_t z;
    memset(&z, 0, sizeof(z));
    lg_router_free(&z); /* a zeroed table is safe to free */
}

LG_TEST(test_exact_beats_wildcard)
{
    const char *pats[] = {"*.a.test", "www.a.test", "*.test"};
    lg_router_t r;
    CHECK_EQ_INT(lg_router_build(&r, pats, LG_ARRAY_SIZE(pats), NULL), 0);
    CHECK_EQ_INT(lookup_str(&r, "www.a.test"), 1);
    CHECK_EQ_INT(lookup_str(&r, "ww.a.test"), 0);
    CHECK_EQ_INT(lookup_str(&r, "wwww.a.test"), 0);
    CHECK_EQ_INT(lookup_str(&r, "x.www.a.test"), 0); /* exact does not extend below itself */
    lg_router_free(&r);
}

LG_TEST(test_longest_wildcard_wins)
{
    /* Listed in both orders so that input order cannot be what decides. */
    const char *orders[2][2] = {{"*.b.test", "*.a.b.test"}, {"*.a.b.test", "*.b.test"}};
    for (int o = 0; o < 2; o++) {
        lg_router_t r;
        int longer = o == 0 ? 1 : 0, shorter = 1 - longer;
        CHECK_EQ_INT(lg_router_build(&r, orders[o], 2, NULL), 0);
        CHECK_EQ_INT(lookup_str(&r, "x.a.b.test"), longer);
        CHECK_EQ_INT(lookup_str(&r, "y.x.a.b.test"), longer);
        CHECK_EQ_INT(lookup_str(&r, "a.b.test"), shorter); /* bare "a.b.test" is under *.b.test */
        CHECK_EQ_INT(lookup_str(&r, "x.b.test"), shorter);
        CHECK_EQ_INT(lookup_str(&r, "xa.b.test"), shorter); /* label boundary, not byte suffix */
        CHECK_EQ_INT(lookup_str(&r, "b.test"), LG_ROUTER_NONE);
        CHECK_EQ_INT(lookup_str(&r, "test"), LG_ROUTER_NONE);
        lg_router_free(&r);
    }
}

LG_TEST(test_wildcard_depth_and_bare_suffix)
{
    const char *pats[] = {"*.example.com"};
    lg_router_t r;
    CHECK_EQ_INT(lg_router_build(&r, pats, 1, NULL), 0);
    CHECK_EQ_INT(lookup_str(&r, "a.example.com"), 0);
    CHECK_EQ_INT(lookup_str(&r, "a.b.example.com"), 0);
    CHECK_EQ_INT(lookup_str(&r, "a.b.c.d.e.f.example.com"), 0);
    CHECK_EQ_INT(lookup_str(&r, "example.com"), LG_ROUTER_NONE);
    CHECK_EQ_INT(lookup_str(&r, "xexample.com"), LG_ROUTER_NONE);
    CHECK_EQ_INT(lookup_str(&r, ".example.com"), LG_ROUTER_NONE); /* empty first label */
    CHECK_EQ_INT(lookup_str(&r, "a.example.co"), LG_ROUTER_NONE);
    CHECK_EQ_INT(lookup_str(&r, "a.example.com.x"), LG_ROUTER_NONE);
    CHECK_EQ_INT(lookup_str(&r, "com"), LG_ROUTER_NONE);
    lg_router_free(&r);
}

LG_TEST(test_default_route)
{
    const char *pats[] = {"a.test", "", "*.w.test"};
    lg_router_t r;
    CHECK_EQ_INT(lg_router_build(&r, pats, LG_ARRAY_SIZE(pats), NULL), 0);
    CHECK_EQ_INT(r.default_route, 1);
    CHECK_EQ_INT(r.n_exact, 1);
    CHECK_EQ_INT(r.n_wild, 1);
    CHECK_EQ_INT(lg_router_lookup(&r, NULL, 0), 1);     /* no SNI */
    CHECK_EQ_INT(lg_router_lookup(&r, "a.test", 0), 1); /* length 0 is no SNI too */
    CHECK_EQ_INT(lookup_str(&r, ""), 1);
    CHECK_EQ_INT(lookup_str(&r, "b.test"), 1); /* unmatched */
    CHECK_EQ_INT(lookup_str(&r, "w.test"), 1); /* bare wildcard suffix */
    CHECK_EQ_INT(lookup_str(&r, "a.test"), 0);
    CHECK_EQ_INT(lookup_str(&r, "x.w.test"), 2);
    lg_router_free(&r);
}

LG_TEST(test_no_default_is_none)
{
    const char *pats[] = {"a.test", "*.w.test"};
    lg_router_t r;
    CHECK_EQ_INT(lg_router_build(&r, pats, LG_ARRAY_SIZE(pats), NULL), 0);
    CHECK_EQ_INT(r.default_route, LG_ROUTER_NONE);
    CHECK_EQ_INT(lg_router_lookup(&r, NULL, 0), LG_ROUTER_NONE);
    CHECK_EQ_INT(lookup_str(&r, "b.test"), LG_ROUTER_NONE);
    CHECK_EQ_INT(lookup_str(&r, "a.tes"), LG_ROUTER_NONE);   /* prefix of a stored name */
    CHECK_EQ_INT(lookup_str(&r, "a.testx"), LG_ROUTER_NONE); /* stored name is a prefix */
    lg_router_free(&r);
}

LG_TEST(test_normalisation_at_build)
{
    const char *pats[] = {"WWW.Example.COM.", "*.Api.Example.Com", "mixed-Case-1.TEST"};
    lg_router_t r;
    CHECK_EQ_INT(lg_router_build(&r, pats, LG_ARRAY_SIZE(pats), NULL), 0);
    CHECK_EQ_INT(lookup_str(&r, "www.example.com"), 0);
    CHECK_EQ_INT(lookup_str(&r, "v1.api.example.com"), 1);
    CHECK_EQ_INT(lookup_str(&r, "mixed-case-1.test"), 2);
    lg_router_free(&r);
}

LG_TEST(test_unnormalised_lookup_is_safe)
{
    /* lg_hello normalises; a caller that did not must still route the same, never crash. */
    const char *pats[] = {"www.example.com", "*.api.example.com", ""};
    lg_router_t r;
    CHECK_EQ_INT(lg_router_build(&r, pats, LG_ARRAY_SIZE(pats), NULL), 0);
    CHECK_EQ_INT(lookup_str(&r, "WWW.EXAMPLE.COM"), 0);
    CHECK_EQ_INT(lookup_str(&r, "www.example.com."), 0);
    CHECK_EQ_INT(lookup_str(&r, "X.API.Example.com."), 1);
    CHECK_EQ_INT(lookup_str(&r, "."), 2);
    CHECK_EQ_INT(lookup_str(&r, ".."), 2);
    CHECK_EQ_INT(lookup_str(&r, "..."), 2);
    CHECK_EQ_INT(lookup_str(&r, "*.api.example.com"), 1); /* '*' is just a label byte here */
    CHECK_EQ_INT(lookup_str(&r, "a..api.example.com"), 1);
    const char raw[] = {'w', 'w', 'w', '\0', 'x'};
    CHECK_EQ_INT(lg_router_lookup(&r, raw, sizeof(raw)), 2); /* embedded NUL: no match */
    lg_router_free(&r);
}

LG_TEST(test_duplicates)
{
    static const struct {
        const char *pats[5];
        size_t n;
        size_t index;
        const char *why;
    } rows[] = {
        {{"A.test", "a.test."}, 2, 1, "case and trailing dot"},
        {{"x.test", "a.test", "b.test", "a.TEST"}, 4, 3, "later duplicate named"},
        {{"*.A.test", "b.test", "*.a.test."}, 3, 2, "wildcards"},
        {{"", "a.test", ""}, 3, 2, "two defaults"},
        {{"a.test", "b.test", "b.test", "a.test"}, 4, 2, "smallest repeating index wins"},
        {{"b.test", "a.test", "a.test", "b.test", "a.test"}, 5, 2, "three of a kind"},
    };
    for (size_t i = 0; i < LG_ARRAY_SIZE(rows); i++) {
        lg_router_t r;
        size_t bad_index = 99;
        CHECK_ROW(lg_router_build(&r, rows[i].pats, rows[i].n, &bad_index) == -EEXIST, rows[i].why);
        CHECK_ROW(bad_index == rows[i].index, rows[i].why);
        CHECK_ROW(r.exact == NULL && r.wild == NULL && r.names == NULL, rows[i].why);
    }
    /* Exact and wildcard of the same suffix are not duplicates. */
    const char *pats[] = {"a.test", "*.a.test"};
    lg_router_t r;
    CHECK_EQ_INT(lg_router_build(&r, pats, 2, NULL), 0);
    CHECK_EQ_INT(lookup_str(&r, "a.test"), 0);
    CHECK_EQ_INT(lookup_str(&r, "b.a.test"), 1);
    lg_router_free(&r);
    /* Invalid patterns are reported before duplicates. */
    const char *both[] = {"a.test", "a.test", "bad..test"};
    size_t bad_index = 99;
    CHECK_EQ_INT(lg_router_build(&r, both, 3, &bad_index), -EINVAL);
    CHECK_EQ_INT(bad_index, 2);
}

LG_TEST(test_duplicate_default_before_invalid)
{
    /*
     * Found by fuzz/fuzz_router.c (seed fuzz/corpus/router/regress_dup_default_then_invalid): a
     * second "" returned -EEXIST at once, before a later invalid pattern was seen, breaking the
     * rule that invalid patterns are reported before duplicates.
     */
    const char *pats[] = {"*.a.b.test", "", "", "*.\x12"};
    lg_router_t r;
    size_t bad_index = 99;
    CHECK_EQ_INT(lg_router_build(&r, pats, 4, &bad_index), -EINVAL);
    CHECK_EQ_INT(bad_index, 3);
    /* Without the invalid one, the duplicate default is named among other duplicates. */
    const char *dups[] = {"a.test", "", "b.test", "A.test", ""};
    CHECK_EQ_INT(lg_router_build(&r, dups, 5, &bad_index), -EEXIST);
    CHECK_EQ_INT(bad_index, 3);
    const char *dups2[] = {"a.test", "", "b.test", "", "A.test"};
    CHECK_EQ_INT(lg_router_build(&r, dups2, 5, &bad_index), -EEXIST);
    CHECK_EQ_INT(bad_index, 3);
}

LG_TEST(test_name_length_limit)
{
    char name[LG_ROUTER_MAX_NAME + 8], pat[LG_ROUTER_MAX_NAME + 16];
    const char *pats[1] = {pat};
    lg_router_t r;
    size_t bad_index = 99;

    /* Exactly 253 bytes: accepted, found. */
    make_name(name, LG_ROUTER_MAX_NAME, LG_ROUTER_MAX_LABEL);
    CHECK_EQ_INT(strlen(name), 253);
    snprintf(pat, sizeof(pat), "%s", name);
    CHECK_EQ_INT(lg_router_build(&r, pats, 1, &bad_index), 0);
    CHECK_EQ_INT(lookup_str(&r, name), 0);
    lg_router_free(&r);

    /* 253 bytes plus the trailing dot (254 raw): still a 253-byte name. */
    snprintf(pat, sizeof(pat), "%s.", name);
    CHECK_EQ_INT(lg_router_build(&r, pats, 1, &bad_index), 0);
    CHECK_EQ_INT(lookup_str(&r, name), 0);
    lg_router_free(&r);

    /* 254 bytes: refused. */
    make_name(pat, LG_ROUTER_MAX_NAME + 1, LG_ROUTER_MAX_LABEL);
    CHECK_EQ_INT(strlen(pat), 254);
    CHECK_EQ_INT(lg_router_build(&r, pats, 1, &bad_index), -EINVAL);
    CHECK_EQ_INT(bad_index, 0);

    /* Wildcards: the limit is on the suffix, without the "*.". */
    snprintf(pat, sizeof(pat), "*.%s", name);
    CHECK_EQ_INT(lg_router_build(&r, pats, 1, &bad_index), 0);
    CHECK_EQ_INT(r.n_wild, 1);
    CHECK_EQ_INT(r.wild[0].len, 253);
    lg_router_free(&r);
    make_name(name, LG_ROUTER_MAX_NAME + 1, LG_ROUTER_MAX_LABEL);
    snprintf(pat, sizeof(pat), "*.%s", name);
    CHECK_EQ_INT(lg_router_build(&r, pats, 1, &bad_index), -EINVAL);

    /* A wildcard with a 251-byte suffix matches a 253-byte name. */
    make_name(name, LG_ROUTER_MAX_NAME - 2, LG_ROUTER_MAX_LABEL);
    snprintf(pat, sizeof(pat), "*.%s", name);
    CHECK_EQ_INT(lg_router_build(&r, pats, 1, &bad_index), 0);
    char full[LG_ROUTER_MAX_NAME + 16];
    snprintf(full, sizeof(full), "z.%s", name);
    CHECK_EQ_INT(strlen(full), 253);
    CHECK_EQ_INT(lookup_str(&r, full), 0);
    lg_router_free(&r);

    /* A very long pattern is refused without reading it all (bounded scan). */
    char *huge = malloc(100000);
    CHECK(huge != NULL);
    memset(huge, 'a', 99999);
    huge[99999] = '\0';
    pats[0] = huge;
    CHECK_EQ_INT(lg_router_build(&r, pats, 1, &bad_index), -EINVAL);
    free(huge);
}

LG_TEST(test_label_length_limit)
{
    char label[LG_ROUTER_MAX_LABEL + 2], pat[LG_ROUTER_MAX_LABEL + 16];
    const char *pats[1] = {pat};
    lg_router_t r;

    memset(label, 'q', LG_ROUTER_MAX_LABEL);
    label[LG_ROUTER_MAX_LABEL] = '\0';
    static const char *const fmts[] = {"%s.test", "a.%s.test", "a.%s", "*.%s.test", "%s"};
    for (size_t i = 0; i < LG_ARRAY_SIZE(fmts); i++) {
        /* 63 bytes: accepted. */
        label[LG_ROUTER_MAX_LABEL] = '\0';
        snprintf(pat, sizeof(pat), fmts[i], label);
        CHECK_ROW(lg_router_build(&r, pats, 1, NULL) == 0, fmts[i]);
        lg_router_free(&r);
        /* 64 bytes: refused. */
        label[LG_ROUTER_MAX_LABEL] = 'q';
        label[LG_ROUTER_MAX_LABEL + 1] = '\0';
        snprintf(pat, sizeof(pat), fmts[i], label);
        CHECK_ROW(lg_router_build(&r, pats, 1, NULL) == -EINVAL, fmts[i]);
    }
}

LG_TEST(test_normalise)
{
    char out[8];
    CHECK_EQ_INT(lg_router_normalise("AbC.", 4, out, sizeof(out)), 3);
    CHECK(memcmp(out, "abc", 3) == 0);
    CHECK_EQ_INT(lg_router_normalise("abc..", 5, out, sizeof(out)), 4); /* one dot only */
    CHECK(memcmp(out, "abc.", 4) == 0);
    CHECK_EQ_INT(lg_router_normalise("", 0, out, sizeof(out)), 0);
    CHECK_EQ_INT(lg_router_normalise(".", 1, out, sizeof(out)), 0);
    /* Fits exactly (cap), one over (cap + 1), and a trailing dot that does not count. */
    CHECK_EQ_INT(lg_router_normalise("ABCDEFGH", 8, out, 8), 8);
    CHECK(memcmp(out, "abcdefgh", 8) == 0);
    CHECK_EQ_INT(lg_router_normalise("ABCDEFGHI", 9, out, 8), -EINVAL);
    CHECK_EQ_INT(lg_router_normalise("ABCDEFGH.", 9, out, 8), 8);
    /* Only ASCII letters are folded. */
    CHECK_EQ_INT(lg_router_normalise("\xc3\x89Z_-9", 6, out, sizeof(out)), 6);
    CHECK(memcmp(out, "\xc3\x89z_-9", 6) == 0);
}

/* Route i of the big table: exact "h<i>.d<i/10>.test" for i % 4 != 0, else "*.w<i>.test". */
static void big_pattern(char *dst, size_t cap, size_t i)
{
    if (i % 4 == 0) {
        snprintf(dst, cap, "*.W%zu.test", i);
    } else {
        snprintf(dst, cap, "h%zu.D%zu.test.", i, i / 10);
    }
}

LG_TEST(test_ten_thousand_routes)
{
    enum { N = 10000 };
    static char store[N][40];
    static const char *pats[N + 1];
    for (size_t i = 0; i < N; i++) {
        big_pattern(store[i], sizeof(store[i]), i);
        pats[i] = store[i];
    }
    pats[N] = "";
    lg_router_t r;
    CHECK_EQ_INT(lg_router_build(&r, pats, N + 1, NULL), 0);
    CHECK_EQ_INT(r.n_exact + r.n_wild, N);
    CHECK_EQ_INT(r.default_route, N);
    for (size_t i = 1; i < r.n_exact; i++) {
        CHECK(name_cmp(r.exact[i - 1].name, r.exact[i - 1].len, r.exact[i].name, r.exact[i].len) <
              0);
    }
    char q[64];
    for (size_t i = 0; i < N; i++) {
        if (i % 4 == 0) {
            snprintf(q, sizeof(q), "x.w%zu.test", i);
            CHECK_EQ_INT(lookup_str(&r, q), (int)i);
            snprintf(q, sizeof(q), "a.b.w%zu.test", i);
            CHECK_EQ_INT(lookup_str(&r, q), (int)i);
            snprintf(q, sizeof(q), "w%zu.test", i); /* bare suffix: default */
            CHECK_EQ_INT(lookup_str(&r, q), N);
        } else {
            snprintf(q, sizeof(q), "h%zu.d%zu.test", i, i / 10);
            CHECK_EQ_INT(lookup_str(&r, q), (int)i);
            snprintf(q, sizeof(q), "h%zu.d%zu.test", i, i / 10 + 1); /* no such name */
            CHECK_EQ_INT(lookup_str(&r, q), N);
        }
    }
    lg_router_free(&r);
}

LG_TEST(test_max_routes)
{
    /* Exactly LG_ROUTER_MAX_ROUTES builds; one more is refused and names the first over. */
    enum { N = LG_ROUTER_MAX_ROUTES + 1 };
    char(*store)[16] = malloc((size_t)N * sizeof(*store));
    const char **pats = malloc((size_t)N * sizeof(*pats));
    CHECK(store != NULL && pats != NULL);
    for (size_t i = 0; i < N; i++) {
        snprintf(store[i], sizeof(store[i]), "n%zu.t", i);
        pats[i] = store[i];
    }
    lg_router_t r;
    size_t bad_index = 0;
    int rc = lg_router_build(&r, pats, LG_ROUTER_MAX_ROUTES, &bad_index);
    int first = lookup_str(&r, "n0.t"), last = lookup_str(&r, "n65535.t");
    int over = lookup_str(&r, "n65536.t");
    lg_router_free(&r);
    int rc2 = lg_router_build(&r, pats, N, &bad_index);
    free(store);
    free(pats);
    CHECK_EQ_INT(rc, 0);
    CHECK_EQ_INT(first, 0);
    CHECK_EQ_INT(last, LG_ROUTER_MAX_ROUTES - 1);
    CHECK_EQ_INT(over, LG_ROUTER_NONE);
    CHECK_EQ_INT(rc2, -EINVAL);
    CHECK_EQ_INT(bad_index, LG_ROUTER_MAX_ROUTES);
}

LG_TEST(test_alloc_failure)
{
    /* Fail each allocation of a build in turn until a build succeeds; ASan checks for leaks. */
    const char *pats[] = {"a.test", "*.b.test", "", "C.test."};
    int failures = 0;
    for (long k = 0;; k++) {
        lg_router_t r;
        lg_alloc_fail_after(k);
        int rc = lg_router_build(&r, pats, LG_ARRAY_SIZE(pats), NULL);
        lg_alloc_fail_after(-1);
        if (rc == 0) {
            CHECK_EQ_INT(lookup_str(&r, "c.test"), 3);
            CHECK_EQ_INT(lookup_str(&r, "x.b.test"), 1);
            lg_router_free(&r);
            break;
        }
        CHECK_EQ_INT(rc, -ENOMEM);
        CHECK(r.exact == NULL && r.wild == NULL && r.names == NULL);
        CHECK_EQ_INT(lookup_str(&r, "a.test"), LG_ROUTER_NONE);
        failures++;
        CHECK(k < 10);
    }
    CHECK_EQ_INT(failures, 3); /* names, exact, wild */

    /* A table with only a default allocates nothing and cannot fail. */
    const char *def[] = {""};
    lg_router_t r;
    lg_alloc_fail_after(0);
    int rc = lg_router_build(&r, def, 1, NULL);
    lg_alloc_fail_after(-1);
    CHECK_EQ_INT(rc, 0);
    CHECK_EQ_INT(lookup_str(&r, "a.test"), 0);
    lg_router_free(&r);
}

int main(void)
{
    LG_RUN(test_good_patterns);
    LG_RUN(test_bad_patterns);
    LG_RUN(test_null_pattern_and_null_bad_index);
    LG_RUN(test_empty_table);
    LG_RUN(test_exact_beats_wildcard);
    LG_RUN(test_longest_wildcard_wins);
    LG_RUN(test_wildcard_depth_and_bare_suffix);
    LG_RUN(test_default_route);
    LG_RUN(test_no_default_is_none);
    LG_RUN(test_normalisation_at_build);
    LG_RUN(test_unnormalised_lookup_is_safe);
    LG_RUN(test_duplicates);
    LG_RUN(test_duplicate_default_before_invalid);
    LG_RUN(test_name_length_limit);
    LG_RUN(test_label_length_limit);
    LG_RUN(test_normalise);
    LG_RUN(test_ten_thousand_routes);
    LG_RUN(test_max_routes);
    LG_RUN(test_alloc_failure);
    LG_TEST_END();
}
