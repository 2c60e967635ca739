/*
 * fuzz_cidr.c — libFuzzer target for IP/CIDR parsing and CIDR sets (src/lg_cidr.c).
 *
 * Input format, one item per '\n'-terminated line:
 *   "!d"     (first line only) make allocation number d (a digit) of the set build fail;
 *   "?text"  a lookup of the address `text` (parsed with lg_ip_parse);
 *   "#" + 18 bytes  a binary entry: flags, prefix, 16 address bytes (the prefix is reduced
 *            modulo the family's width + 1 and host bits are cleared), so that large, overlapping
 *            sets are reachable without the fuzzer spelling addresses. Flags: bit 0 IPv6, bit 1
 *            put it in ::ffff:0:0/96, bit 2 also add the single address two past its end (a
 *            gap of exactly one address, which must survive merging);
 *   other    a CIDR in text form, passed to lg_cidr_parse; valid ones join the set.
 * Up to FUZZ_MAX_ENTRIES entries and FUZZ_MAX_LOOKUPS lookups are taken.
 *
 * Checks, aborting on any failure:
 *   - lg_ip_parse agrees with inet_pton(3) (glibc implements exactly the canonical forms) on
 *     every line and on every line's address part, bytes included;
 *   - lg_cidr_parse agrees with a reference built from inet_pton plus a plain prefix check;
 *   - the built set's ranges are sorted, disjoint and non-adjacent, and are exactly the union of
 *     the entries (compared with a plain reference merge on 128-bit numbers in two halves);
 *   - lg_cidr_set_contains agrees with a linear scan (IPv4-mapped treated as IPv4) on the given
 *     lookups and on addresses derived from every entry: first, last, one below, one past, and
 *     their IPv4-mapped spellings;
 *   - lg_ip_unmap rewrites exactly the IPv4-mapped addresses;
 *   - an injected allocation failure gives -ENOMEM and an empty set (ASan finds leaks).
 */
#include "../src/lg_cidr.c"

#include <arpa/inet.h>
#include <stdio.h>
#include <stdlib.h>

#define FUZZ_MAX_ENTRIES 512 /* set entries per input */
#define FUZZ_MAX_LOOKUPS 256 /* explicit lookups per input */
#define FUZZ_TEXT_MAX    64  /* bytes of text handed to inet_pton; longer is never valid */
#define FUZZ_BIN_ENTRY   18  /* bytes of a binary entry after '#' */

#define FUZZ_ASSERT(cond)                                                                          \
    do {                                                                                           \
        if (!(cond)) {                                                                             \
            fprintf(stderr, "fuzz_cidr: check failed at line %d: %s\n", __LINE__, #cond);          \
            abort();                                                                               \
        }                                                                                          \
    } while (0)

/* Reference address parser: inet_pton on a NUL-terminated copy. */
static int ref_ip(const char *s, size_t len, uint8_t *family, uint8_t addr[16])
{
    char text[FUZZ_TEXT_MAX + 1];
    if (len > FUZZ_TEXT_MAX || memchr(s, '\0', len) != NULL) return -EINVAL;
    memcpy(text, s, len);
    text[len] = '\0';
    memset(addr, 0, 16);
    if (inet_pton(AF_INET, text, addr) == 1) {
        *family = 4;
        return 0;
    }
    if (inet_pton(AF_INET6, text, addr) == 1) {
        *family = 6;
        return 0;
    }
    return -EINVAL;
}

static void check_ip(const char *s, size_t len)
{
    uint8_t f1 = 0, f2 = 0, a1[16], a2[16];
    int rc = lg_ip_parse(s, len, &f1, a1);
    int ref = ref_ip(s, len, &f2, a2);
    FUZZ_ASSERT(rc == ref);
    if (rc == 0) {
        FUZZ_ASSERT(f1 == f2 && memcmp(a1, a2, f1 == 4 ? 4 : 16) == 0);
        if (f1 == 4) {
            for (int i = 4; i < 16; i++)
                FUZZ_ASSERT(a1[i] == 0);
        }
    }
}

static bool ref_host_bits_zero(const uint8_t *a, unsigned prefix, unsigned bits)
{
    for (unsigned b = prefix; b < bits; b++) {
        if ((a[b / 8] >> (7 - b % 8)) & 1) return false;
    }
    return true;
}

/* Reference CIDR parser: address by inet_pton, prefix "0" or [1-9][0-9]{0,2} within range. */
static int ref_cidr(const char *s, size_t len, lg_cidr_t *out)
{
    const char *slash = memchr(s, '/', len);
    size_t alen = slash ? (size_t)(slash - s) : len;
    memset(out, 0, sizeof(*out));
    if (ref_ip(s, alen, &out->family, out->addr) != 0) return -EINVAL;
    unsigned bits = out->family == 4 ? 32 : 128, prefix = bits;
    if (slash) {
        const char *p = slash + 1;
        size_t plen = len - alen - 1;
        if (plen == 0 || plen > 3) return -EINVAL;
        if (p[0] == '0' && plen != 1) return -EINVAL;
        prefix = 0;
        for (size_t i = 0; i < plen; i++) {
            if (p[i] < '0' || p[i] > '9') return -EINVAL;
            prefix = prefix * 10 + (unsigned)(p[i] - '0');
        }
        if (prefix > bits) return -EINVAL;
    }
    if (!ref_host_bits_zero(out->addr, prefix, bits)) return -EINVAL;
    out->prefix = (uint8_t)prefix;
    return 0;
}

static bool ref_mapped(const uint8_t *a)
{
    static const uint8_t pfx[12] = {0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0xff, 0xff};
    return memcmp(a, pfx, 12) == 0;
}

/* Linear scan; mapped addresses and entries of ::ffff:0:0/96 or longer are IPv4. */
static bool ref_contains(const lg_cidr_t *v, size_t n, uint8_t family, const uint8_t *addr)
{
    uint8_t af = family, a[16] = {0};
    memcpy(a, addr, family == 4 ? 4 : 16);
    if (af == 6 && ref_mapped(a)) {
        memmove(a, a + 12, 4);
        memset(a + 4, 0, 12);
        af = 4;
    }
    for (size_t i = 0; i < n; i++) {
        uint8_t ef = v[i].family, ep = v[i].prefix, e[16];
        memcpy(e, v[i].addr, 16);
        if (ef == 6 && ep >= 96 && ref_mapped(e)) {
            memmove(e, e + 12, 4);
            memset(e + 4, 0, 12);
            ef = 4;
            ep = (uint8_t)(ep - 96);
        }
        if (ef != af) continue;
        bool match = true;
        for (unsigned b = 0; b < ep && match; b++)
            match = ((a[b / 8] ^ e[b / 8]) >> (7 - b % 8) & 1) == 0;
        if (match) return true;
    }
    return false;
}

static void check_contains(const lg_cidr_set_t *s, const lg_cidr_t *v, size_t n, uint8_t family,
                           const uint8_t *addr)
{
    bool want = ref_contains(v, n, family, addr);
    FUZZ_ASSERT(lg_cidr_set_contains(s, family, addr) == want);
    if (family == 4) {
        uint8_t m[16] = {0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0xff, 0xff};
        memcpy(m + 12, addr, 4);
        FUZZ_ASSERT(lg_cidr_set_contains(s, 6, m) == want);
    }
    /* lg_ip_unmap: only mapped addresses change, and into their IPv4 form. */
    uint8_t f = family, u[16] = {0};
    memcpy(u, addr, family == 4 ? 4 : 16);
    lg_ip_unmap(&f, u);
    if (family == 6 && ref_mapped(addr)) {
        FUZZ_ASSERT(f == 4 && memcmp(u, addr + 12, 4) == 0);
        for (int i = 4; i < 16; i++)
            FUZZ_ASSERT(u[i] == 0);
    } else {
        FUZZ_ASSERT(f == family && memcmp(u, addr, family == 4 ? 4 : 16) == 0);
    }
}

/* Addresses at and just beyond the edges of entry e. */
static void check_edges(const lg_cidr_set_t *s, const lg_cidr_t *v, size_t n, const lg_cidr_t *e)
{
    unsigned bits = e->family == 4 ? 32 : 128, bytes = bits / 8;
    uint8_t lo[16], hi[16], below[16], above[16];
    memcpy(lo, e->addr, 16);
    memcpy(hi, e->addr, 16);
    for (unsigned b = e->prefix; b < bits; b++)
        hi[b / 8] |= (uint8_t)(0x80u >> (b % 8));
    memcpy(below, lo, 16);
    memcpy(above, hi, 16);
    for (int i = (int)bytes - 1; i >= 0; i--) {
        if (below[i]-- != 0) break;
    }
    for (int i = (int)bytes - 1; i >= 0; i--) {
        if (++above[i] != 0) break;
    }
    check_contains(s, v, n, e->family, lo);
    check_contains(s, v, n, e->family, hi);
    check_contains(s, v, n, e->family, below);
    check_contains(s, v, n, e->family, above);
}

static void check_set_shape(const lg_cidr_set_t *s)
{
    for (size_t i = 0; i < s->n4; i++) {
        FUZZ_ASSERT(s->v4[i].lo <= s->v4[i].hi);
        if (i > 0) FUZZ_ASSERT((uint64_t)s->v4[i - 1].hi + 1 < s->v4[i].lo);
    }
    for (size_t i = 0; i < s->n6; i++) {
        FUZZ_ASSERT(memcmp(s->v6[i].lo, s->v6[i].hi, 16) <= 0);
        if (i > 0) {
            uint8_t next[16];
            memcpy(next, s->v6[i - 1].hi, 16);
            FUZZ_ASSERT(cidr_inc6(next) && memcmp(next, s->v6[i].lo, 16) < 0);
        }
    }
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

/* The range an entry covers, as 128-bit numbers in two halves (IPv4 in the low 32 bits). */
typedef struct ref_range_s {
    int family; /* 4 or 6, after mapped entries became IPv4 */
    uint64_t lo_hi, lo_lo, hi_hi, hi_lo;
} ref_range_t;

static uint64_t ref_load64(const uint8_t *a)
{
    uint64_t v = 0;
    for (int i = 0; i < 8; i++)
        v = v << 8 | a[i];
    return v;
}

static ref_range_t ref_range(const lg_cidr_t *e)
{
    ref_range_t r;
    uint8_t a[16] = {0};
    unsigned prefix = e->prefix;
    memcpy(a, e->addr, 16);
    r.family = e->family;
    if (e->family == 6 && prefix >= 96 && ref_mapped(a)) {
        r.family = 4;
        prefix -= 96;
        memmove(a, a + 12, 4);
        memset(a + 4, 0, 12);
    }
    if (r.family == 4) {
        uint64_t v = (uint64_t)a[0] << 24 | (uint64_t)a[1] << 16 | (uint64_t)a[2] << 8 | a[3];
        uint64_t size = (uint64_t)1 << (32 - prefix);
        r.lo_hi = r.hi_hi = 0;
        r.lo_lo = v;
        r.hi_lo = v + size - 1;
        return r;
    }
    r.lo_hi = ref_load64(a);
    r.lo_lo = ref_load64(a + 8);
    /* Host bits set: the high half gets the bits below the prefix within it, and so on. */
    uint64_t mask_hi = prefix >= 64 ? 0 : (prefix == 0 ? UINT64_MAX : UINT64_MAX >> prefix);
    uint64_t mask_lo =
        prefix >= 128 ? 0 : (prefix <= 64 ? UINT64_MAX : UINT64_MAX >> (prefix - 64));
    r.hi_hi = r.lo_hi | mask_hi;
    r.hi_lo = r.lo_lo | mask_lo;
    return r;
}

static int ref_range_cmp(const void *pa, const void *pb)
{
    const ref_range_t *a = pa, *b = pb;
    if (a->lo_hi != b->lo_hi) return a->lo_hi < b->lo_hi ? -1 : 1;
    if (a->lo_lo != b->lo_lo) return a->lo_lo < b->lo_lo ? -1 : 1;
    return 0;
}

/* next.lo <= cur.hi + 1 on 128-bit numbers, without computing cur.hi + 1. */
static bool ref_touches(const ref_range_t *cur, const ref_range_t *next)
{
    if (next->lo_hi < cur->hi_hi) return true;
    if (next->lo_hi == cur->hi_hi) return cur->hi_lo == UINT64_MAX || next->lo_lo <= cur->hi_lo + 1;
    /* next->lo_hi > cur->hi_hi: touching only across a carry into the high half. */
    return next->lo_hi == cur->hi_hi + 1 && cur->hi_lo == UINT64_MAX && next->lo_lo == 0;
}

/*
 * The set must hold exactly the union of the entries: merge the reference ranges plainly and
 * compare range by range with what the build produced.
 */
static void check_union(const lg_cidr_set_t *s, const lg_cidr_t *v, size_t n)
{
    static ref_range_t r[2][FUZZ_MAX_ENTRIES];
    size_t cnt[2] = {0, 0};
    for (size_t i = 0; i < n; i++) {
        ref_range_t x = ref_range(&v[i]);
        int k = x.family == 4 ? 0 : 1;
        r[k][cnt[k]++] = x;
    }
    for (int k = 0; k < 2; k++) {
        qsort(r[k], cnt[k], sizeof(r[k][0]), ref_range_cmp);
        size_t out = 0;
        for (size_t i = 0; i < cnt[k]; i++) {
            ref_range_t *cur = out ? &r[k][out - 1] : NULL;
            if (cur && ref_touches(cur, &r[k][i])) {
                if (r[k][i].hi_hi > cur->hi_hi ||
                    (r[k][i].hi_hi == cur->hi_hi && r[k][i].hi_lo > cur->hi_lo)) {
                    cur->hi_hi = r[k][i].hi_hi;
                    cur->hi_lo = r[k][i].hi_lo;
                }
            } else {
                r[k][out++] = r[k][i];
            }
        }
        cnt[k] = out;
    }
    FUZZ_ASSERT(s->n4 == cnt[0] && s->n6 == cnt[1]);
    for (size_t i = 0; i < s->n4; i++)
        FUZZ_ASSERT(s->v4[i].lo == r[0][i].lo_lo && s->v4[i].hi == r[0][i].hi_lo);
    for (size_t i = 0; i < s->n6; i++) {
        FUZZ_ASSERT(ref_load64(s->v6[i].lo) == r[1][i].lo_hi);
        FUZZ_ASSERT(ref_load64(s->v6[i].lo + 8) == r[1][i].lo_lo);
        FUZZ_ASSERT(ref_load64(s->v6[i].hi) == r[1][i].hi_hi);
        FUZZ_ASSERT(ref_load64(s->v6[i].hi + 8) == r[1][i].hi_lo);
    }
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    static lg_cidr_t entries[FUZZ_MAX_ENTRIES];
    struct {
        const char *s;
        size_t len;
    } lookups[FUZZ_MAX_LOOKUPS];
    size_t n = 0, n_lookups = 0, pos = 0;
    long fail_after = -1;

    for (bool first = true; pos < size; first = false) {
        const uint8_t *nl = memchr(data + pos, '\n', size - pos);
        size_t end = nl ? (size_t)(nl - data) : size;
        const char *line = (const char *)data + pos;
        size_t len = end - pos;
        pos = end + 1;
        if (first && len == 2 && line[0] == '!' && line[1] >= '0' && line[1] <= '9') {
            fail_after = line[1] - '0';
            continue;
        }
        if (len > 0 && line[0] == '?') {
            check_ip(line + 1, len - 1);
            if (n_lookups < FUZZ_MAX_LOOKUPS) {
                lookups[n_lookups].s = line + 1;
                lookups[n_lookups].len = len - 1;
                n_lookups++;
            }
            continue;
        }
        if (len == 1 + FUZZ_BIN_ENTRY && line[0] == '#') {
            if (n < FUZZ_MAX_ENTRIES) {
                lg_cidr_t *e = &entries[n++];
                const uint8_t *b = (const uint8_t *)line + 1;
                e->family = (b[0] & 1) ? 6 : 4;
                unsigned bits = e->family == 4 ? 32 : 128;
                e->prefix = (uint8_t)(b[1] % (bits + 1));
                memset(e->addr, 0, 16);
                memcpy(e->addr, b + 2, bits / 8);
                if (e->family == 6 && (b[0] & 2)) { /* steer into the mapped block */
                    memset(e->addr, 0, 10);
                    e->addr[10] = e->addr[11] = 0xff;
                }
                for (unsigned k = e->prefix; k < bits; k++)
                    e->addr[k / 8] &= (uint8_t) ~(0x80u >> (k % 8));
                if ((b[0] & 4) && n < FUZZ_MAX_ENTRIES) {
                    /* A neighbour one address past the gap after e: hi(e) + 2, so that ranges
                     * separated by exactly one address occur (they must not be merged). */
                    lg_cidr_t *f = &entries[n++];
                    *f = *e;
                    f->prefix = (uint8_t)bits;
                    for (unsigned k = e->prefix; k < bits; k++)
                        f->addr[k / 8] |= (uint8_t)(0x80u >> (k % 8));
                    for (int step = 0; step < 2; step++) {
                        for (int i = (int)bits / 8 - 1; i >= 0; i--) {
                            if (++f->addr[i] != 0) break;
                        }
                    }
                }
            }
            continue;
        }
        check_ip(line, len);
        const char *slash = memchr(line, '/', len);
        if (slash) check_ip(line, (size_t)(slash - line));
        lg_cidr_t got, want;
        int rc = lg_cidr_parse(line, len, &got);
        int ref = ref_cidr(line, len, &want);
        FUZZ_ASSERT(rc == ref);
        if (rc == 0) {
            FUZZ_ASSERT(got.family == want.family && got.prefix == want.prefix);
            FUZZ_ASSERT(memcmp(got.addr, want.addr, 16) == 0);
            if (n < FUZZ_MAX_ENTRIES) entries[n++] = got;
        }
    }

    lg_cidr_set_t s;
    lg_alloc_fail_after(fail_after);
    int rc = lg_cidr_set_build(&s, entries, n);
    lg_alloc_fail_after(-1);
    if (rc != 0) {
        FUZZ_ASSERT(rc == -ENOMEM && fail_after >= 0);
        FUZZ_ASSERT(s.v4 == NULL && s.v6 == NULL && s.n4 == 0 && s.n6 == 0);
        return 0;
    }
    check_set_shape(&s);
    check_union(&s, entries, n);
    FUZZ_ASSERT(lg_cidr_set_ranges(&s) <= n);
    for (size_t i = 0; i < n_lookups; i++) {
        uint8_t family, addr[16];
        if (lg_ip_parse(lookups[i].s, lookups[i].len, &family, addr) == 0) {
            check_contains(&s, entries, n, family, addr);
        }
    }
    for (size_t i = 0; i < n; i++)
        check_edges(&s, entries, n, &entries[i]);
    uint8_t junk[16] = {0};
    FUZZ_ASSERT(!lg_cidr_set_contains(&s, 0, junk) && !lg_cidr_set_contains(&s, 2, junk));
    lg_cidr_set_free(&s);
    return 0;
}
