/*
 * fuzz_router.c — libFuzzer target for the SNI route table (src/lg_router.c).
 *
 * Input format, one item per '\n'-terminated line:
 *   "?name"  a lookup of `name` (raw bytes, NULs included; "?" alone is a lookup with no SNI);
 *   "!d"     (first line only) make allocation number d (a digit) of the build fail;
 *   other    a route pattern ("" — an empty line — is the default route); a NUL inside a line
 *            ends the pattern there, as it would for a C string from the config.
 * Up to FUZZ_MAX_PATTERNS patterns and FUZZ_MAX_LOOKUPS lookups are taken.
 *
 * Every result is checked against a reference written independently and as plainly as
 * possible: validation by splitting into labels, duplicates by comparing every pair, lookup by a
 * linear scan for the exact name and for the longest wildcard suffix. Besides the given lookups,
 * names derived from each pattern ("x." + suffix, the suffix itself, deeper names, upper case,
 * a trailing dot) are looked up so that matches are exercised without the fuzzer guessing them.
 * The table's own invariants (sorted arrays, counts) are checked too. Any disagreement aborts.
 */
#include "../src/lg_name.c"
#include "../src/lg_router.c"

#include <stdio.h>
#include <stdlib.h>

#define FUZZ_MAX_PATTERNS 256  /* patterns per input */
#define FUZZ_MAX_LOOKUPS  256  /* explicit lookups per input */
#define FUZZ_LINE_MAX     1024 /* bytes kept per line; longer lines are cut */
#define FUZZ_NAME_MAX     (FUZZ_LINE_MAX + 16)

#define FUZZ_ASSERT(cond)                                                                          \
    do {                                                                                           \
        if (!(cond)) {                                                                             \
            fprintf(stderr, "fuzz_router: check failed at line %d: %s\n", __LINE__, #cond);        \
            abort();                                                                               \
        }                                                                                          \
    } while (0)

/* What the reference makes of one pattern. */
typedef struct ref_pat_s {
    bool valid;
    bool is_default;
    bool wild;
    char body[FUZZ_LINE_MAX]; /* lower-cased name, or suffix after "*.", no trailing dot */
    size_t len;
} ref_pat_t;

typedef struct fuzz_state_s {
    char lines[FUZZ_MAX_PATTERNS][FUZZ_LINE_MAX + 1];
    const char *pats[FUZZ_MAX_PATTERNS];
    ref_pat_t ref[FUZZ_MAX_PATTERNS];
    size_t n_pats;
} fuzz_state_t;

static char ref_lower(char c)
{
    return (c >= 'A' && c <= 'Z') ? (char)(c + ('a' - 'A')) : c;
}

/*
 * Validate by splitting into labels (lg_name's SNI grammar): each 1..63 bytes of [A-Za-z0-9-],
 * not starting or ending with '-', total 1..253, and for an exact name not every label digits.
 */
static bool ref_body_ok(const char *s, size_t len, bool wild)
{
    if (len == 0 || len > 253) return false;
    size_t start = 0;
    bool all_digits = true;
    for (size_t i = 0; i <= len; i++) {
        if (i == len || s[i] == '.') {
            size_t l = i - start;
            if (l == 0 || l > 63) return false;
            if (s[start] == '-' || s[i - 1] == '-') return false;
            for (size_t k = start; k < i; k++) {
                char c = s[k];
                bool ok = (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') ||
                          (c >= '0' && c <= '9') || c == '-';
                if (!ok) return false;
                if (c < '0' || c > '9') all_digits = false;
            }
            start = i + 1;
        }
    }
    return wild || !all_digits;
}

static void ref_parse(const char *p, ref_pat_t *out)
{
    size_t len = strlen(p);
    memset(out, 0, sizeof(*out));
    if (len == 0) {
        out->valid = true;
        out->is_default = true;
        return;
    }
    if (p[len - 1] == '.') len--;
    const char *body = p;
    if (len >= 2 && p[0] == '*' && p[1] == '.') {
        out->wild = true;
        body += 2;
        len -= 2;
    }
    if (!ref_body_ok(body, len, out->wild)) return;
    out->valid = true;
    for (size_t i = 0; i < len; i++)
        out->body[i] = ref_lower(body[i]);
    out->len = len;
}

static bool ref_same(const ref_pat_t *a, const ref_pat_t *b)
{
    if (a->is_default || b->is_default) return a->is_default && b->is_default;
    return a->wild == b->wild && a->len == b->len && memcmp(a->body, b->body, a->len) == 0;
}

/* Expected build result and bad index, comparing every pair for duplicates. */
static int ref_build(const fuzz_state_t *st, size_t *bad)
{
    for (size_t i = 0; i < st->n_pats; i++) {
        if (!st->ref[i].valid) {
            *bad = i;
            return -EINVAL;
        }
    }
    for (size_t j = 0; j < st->n_pats; j++) {
        for (size_t i = 0; i < j; i++) {
            if (ref_same(&st->ref[i], &st->ref[j])) {
                *bad = j;
                return -EEXIST;
            }
        }
    }
    return 0;
}

/* Linear-scan lookup: exact, else longest wildcard suffix with a non-empty prefix, else "". */
static int ref_lookup(const fuzz_state_t *st, const char *sni, size_t len)
{
    char name[FUZZ_NAME_MAX];
    int def = LG_ROUTER_NONE, best = LG_ROUTER_NONE;
    size_t best_len = 0;

    if (sni == NULL) len = 0;
    if (len > 0 && sni[len - 1] == '.') len--;
    if (len > sizeof(name)) len = sizeof(name); /* callers keep names shorter than this */
    for (size_t i = 0; i < len; i++)
        name[i] = ref_lower(sni[i]);

    for (size_t i = 0; i < st->n_pats; i++) {
        const ref_pat_t *r = &st->ref[i];
        if (r->is_default) def = (int)i;
    }
    if (len == 0) return def;
    for (size_t i = 0; i < st->n_pats; i++) {
        const ref_pat_t *r = &st->ref[i];
        if (!r->is_default && !r->wild && r->len == len && memcmp(r->body, name, len) == 0) {
            return (int)i;
        }
    }
    for (size_t i = 0; i < st->n_pats; i++) {
        const ref_pat_t *r = &st->ref[i];
        if (r->is_default || !r->wild || len < r->len + 2) continue;
        if (name[len - r->len - 1] != '.') continue;
        if (memcmp(name + len - r->len, r->body, r->len) != 0) continue;
        if (best == LG_ROUTER_NONE || r->len > best_len) {
            best = (int)i;
            best_len = r->len;
        }
    }
    return best != LG_ROUTER_NONE ? best : def;
}

static void check_lookup(const fuzz_state_t *st, const lg_router_t *r, const char *s, size_t len)
{
    FUZZ_ASSERT(len < FUZZ_NAME_MAX);
    FUZZ_ASSERT(lg_router_lookup(r, s, len) == ref_lookup(st, s, len));
}

/* Lookups derived from pattern i, so that matches are tried without being guessed. */
static void check_derived(const fuzz_state_t *st, const lg_router_t *r, size_t i)
{
    const ref_pat_t *p = &st->ref[i];
    char name[FUZZ_NAME_MAX];
    if (!p->valid || p->is_default) {
        check_lookup(st, r, st->pats[i], strlen(st->pats[i]));
        return;
    }
    static const char *const prefixes[] = {"", "x.", "a.b.", ".", "X.", "-.", "xx"};
    for (size_t k = 0; k < LG_ARRAY_SIZE(prefixes); k++) {
        size_t pl = strlen(prefixes[k]);
        memcpy(name, prefixes[k], pl);
        memcpy(name + pl, p->body, p->len);
        check_lookup(st, r, name, pl + p->len);
        name[pl + p->len] = '.'; /* with a trailing dot */
        check_lookup(st, r, name, pl + p->len + 1);
        for (size_t c = 0; c < pl + p->len; c++) {
            if (name[c] >= 'a' && name[c] <= 'z') name[c] = (char)(name[c] - 'a' + 'A');
        }
        check_lookup(st, r, name, pl + p->len); /* upper case */
    }
    /* The body minus its first label (a parent), and minus its last byte. */
    const char *dot = memchr(p->body, '.', p->len);
    if (dot) check_lookup(st, r, dot + 1, p->len - (size_t)(dot + 1 - p->body));
    check_lookup(st, r, p->body, p->len - 1);
}

static void check_table(const fuzz_state_t *st, const lg_router_t *r)
{
    size_t n_def = 0;
    for (size_t i = 0; i < st->n_pats; i++)
        n_def += st->ref[i].is_default;
    FUZZ_ASSERT(r->n_exact + r->n_wild + n_def == st->n_pats);
    for (size_t i = 1; i < r->n_exact; i++) {
        FUZZ_ASSERT(name_cmp(r->exact[i - 1].name, r->exact[i - 1].len, r->exact[i].name,
                             r->exact[i].len) < 0);
    }
    for (size_t i = 1; i < r->n_wild; i++) {
        FUZZ_ASSERT(
            name_cmp(r->wild[i - 1].name, r->wild[i - 1].len, r->wild[i].name, r->wild[i].len) < 0);
    }
    for (size_t i = 0; i < r->n_exact + r->n_wild; i++) {
        const lg_router_entry_t *e = i < r->n_exact ? &r->exact[i] : &r->wild[i - r->n_exact];
        const ref_pat_t *p = &st->ref[e->route];
        FUZZ_ASSERT(p->valid && !p->is_default && p->wild == (i >= r->n_exact));
        FUZZ_ASSERT(e->len == p->len && memcmp(e->name, p->body, p->len) == 0);
        FUZZ_ASSERT(e->name[e->len] == '\0');
    }
}

static void check_normalise(const char *s, size_t len)
{
    char out[64];
    size_t want = (len > 0 && s[len - 1] == '.') ? len - 1 : len;
    int rc = lg_router_normalise(s, len, out, sizeof(out));
    if (want > sizeof(out)) {
        FUZZ_ASSERT(rc == -EINVAL);
        return;
    }
    FUZZ_ASSERT(rc == (int)want);
    for (size_t i = 0; i < want; i++)
        FUZZ_ASSERT(out[i] == ref_lower(s[i]));
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    static fuzz_state_t st; /* large: kept off the stack; reset below for every input */
    struct {
        const char *s;
        size_t len;
    } lookups[FUZZ_MAX_LOOKUPS];
    size_t n_lookups = 0, pos = 0;
    long fail_after = -1;

    st.n_pats = 0;
    for (bool first = true; pos < size; first = false) {
        const uint8_t *nl = memchr(data + pos, '\n', size - pos);
        size_t end = nl ? (size_t)(nl - data) : size;
        const char *line = (const char *)data + pos;
        size_t len = end - pos;
        pos = end + 1;
        if (first && len == 2 && line[0] == '!' && line[1] >= '0' && line[1] <= '9') {
            fail_after = line[1] - '0';
        } else if (len > 0 && line[0] == '?') {
            if (n_lookups < FUZZ_MAX_LOOKUPS) {
                lookups[n_lookups].s = line + 1;
                lookups[n_lookups].len = LG_MIN(len - 1, (size_t)FUZZ_LINE_MAX);
                n_lookups++;
            }
        } else if (st.n_pats < FUZZ_MAX_PATTERNS) {
            len = LG_MIN(len, (size_t)FUZZ_LINE_MAX);
            memcpy(st.lines[st.n_pats], line, len);
            st.lines[st.n_pats][len] = '\0';
            st.pats[st.n_pats] = st.lines[st.n_pats];
            ref_parse(st.pats[st.n_pats], &st.ref[st.n_pats]);
            st.n_pats++;
        }
    }

    for (size_t i = 0; i < st.n_pats; i++)
        check_normalise(st.pats[i], strlen(st.pats[i]));

    lg_router_t r;
    size_t bad = (size_t)-1, want_bad = (size_t)-1;
    int want = ref_build(&st, &want_bad);
    lg_alloc_fail_after(fail_after);
    int rc = lg_router_build(&r, st.pats, st.n_pats, &bad);
    lg_alloc_fail_after(-1);

    if (rc == -ENOMEM) {
        /*
         * Only an injected failure may cause it, and only for valid patterns: duplicates are
         * found after allocating (sorting needs the arrays), so -EEXIST may turn into -ENOMEM.
         */
        FUZZ_ASSERT(fail_after >= 0 && (want == 0 || want == -EEXIST));
    } else {
        FUZZ_ASSERT(rc == want);
        if (rc != 0) FUZZ_ASSERT(bad == want_bad);
    }
    if (rc != 0) {
        /* A failed build leaves an empty table. */
        FUZZ_ASSERT(r.exact == NULL && r.wild == NULL && r.names == NULL);
        FUZZ_ASSERT(lg_router_lookup(&r, "a", 1) == LG_ROUTER_NONE);
        lg_router_free(&r);
        return 0;
    }

    check_table(&st, &r);
    for (size_t i = 0; i < n_lookups; i++)
        check_lookup(&st, &r, lookups[i].s, lookups[i].len);
    for (size_t i = 0; i < st.n_pats; i++)
        check_derived(&st, &r, i);
    FUZZ_ASSERT(lg_router_lookup(&r, NULL, 0) == ref_lookup(&st, NULL, 0));
    lg_router_free(&r);
    return 0;
}
