/*
 * lg_cidr.c — IP address and CIDR parsing, and immutable CIDR sets (pure core; see lg_cidr.h).
 *
 * Parsing implements RFC 4291 §2.2 (IPv6 text forms) and the canonical dotted quad for IPv4
 * (the "d.d.d.d" form of inet_pton(3), which POSIX requires to refuse the shorthand forms
 * inet_aton(3) accepts). CIDR notation follows RFC 4632 §3.1. Every scan is bounded by the
 * caller's length; nothing is read at or beyond it.
 *
 * Sets: each CIDR is turned into the closed range of addresses it covers. The ranges of a family
 * are sorted by their low end and merged wherever they overlap or touch, which leaves a sorted
 * array of disjoint, non-adjacent ranges; membership is the last range starting at or below the
 * address, and one compare with its high end. IPv4 ranges are kept as host-order uint32 pairs,
 * IPv6 ranges as big-endian byte arrays (compared as two host-order uint64 halves).
 *
 * Finding that range: an address below the first range or above the last is out at once.
 * Otherwise it shares the family's common prefix (the first `skip` bits, common to the first
 * range's lo and the last one's hi, hence to everything between), and the next `bits` bits name
 * its bucket. Every range before idx[bucket] starts in an earlier bucket, so below the address;
 * every range from idx[bucket + 1] on starts in a later bucket, so above it. The bisection runs
 * on [idx[bucket], idx[bucket + 1]) only; when nothing there starts at or below the address, the
 * answer is the range just before idx[bucket]. Ranges are sorted, so the bucket of their lo is
 * non-decreasing and one pass fills the index.
 *
 * Invariants after a successful lg_cidr_set_build(): see lg_cidr_set_t. An entry of ::ffff:0:0/96
 * or longer is stored in the IPv4 array (as prefix - 96), so an IPv4-mapped lookup and a plain
 * IPv4 lookup see the same ranges.
 */
#include "lg_cidr.h"

#include <arpa/inet.h> /* inet_ntop: formatting only */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>

#define CIDR_V4_BITS     32  /* bits in an IPv4 address */
#define CIDR_V6_BITS     128 /* bits in an IPv6 address */
#define CIDR_V6_GROUPS   8   /* 16-bit groups in an IPv6 address */
#define CIDR_GROUP_HEX   4   /* hex digits per group at most (RFC 4291 §2.2 form 1) */
#define CIDR_MAPPED_BITS 96  /* prefix length of ::ffff:0:0/96 */
#define CIDR_INDEX_BITS  20  /* at most 2^20 buckets per family (4 MiB of uint32 offsets) */

/* The 12-byte prefix of IPv4-mapped IPv6 addresses (RFC 4291 §2.5.5.2). */
static const uint8_t cidr_mapped_prefix[12] = {0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0xff, 0xff};

static int cidr_hex(unsigned char c)
{
    if (c >= '0' && c <= '9') return c - '0';
    if (c >= 'a' && c <= 'f') return c - 'a' + 10;
    if (c >= 'A' && c <= 'F') return c - 'A' + 10;
    return -1;
}

/*
 * A canonical dotted quad: four parts of 1..3 digits, value <= 255, no leading zero unless the
 * part is exactly "0", separated by single dots, nothing before or after.
 */
static int cidr_parse_v4(const char *s, size_t len, uint8_t out[4])
{
    size_t i = 0;
    for (int part = 0; part < 4; part++) {
        if (part > 0) {
            if (i >= len || s[i] != '.') return -EINVAL;
            i++;
        }
        size_t start = i;
        unsigned v = 0;
        while (i < len && s[i] >= '0' && s[i] <= '9' && i - start < 3) {
            v = v * 10 + (unsigned)(s[i] - '0');
            i++;
        }
        size_t digits = i - start;
        if (digits == 0 || v > 255) return -EINVAL;
        if (digits > 1 && s[start] == '0') return -EINVAL;         /* "01": octal to inet_aton */
        if (i < len && s[i] >= '0' && s[i] <= '9') return -EINVAL; /* a fourth digit */
        out[part] = (uint8_t)v;
    }
    return i == len ? 0 : -EINVAL;
}

/*
 * RFC 4291 §2.2: groups of 1..4 hex digits separated by ':', at most one "::" (one or more zero
 * groups), and optionally a dotted quad as the last 32 bits.
 */
static int cidr_parse_v6(const char *s, size_t len, uint8_t out[16])
{
    uint16_t groups[CIDR_V6_GROUPS];
    size_t ng = 0, i = 0;
    long gap = -1; /* index in groups[] where "::" stands, or -1 */

    if (len < 2) return -EINVAL; /* the shortest form is "::" */
    if (s[0] == ':') {
        if (s[1] != ':') return -EINVAL; /* a single leading colon */
        gap = 0;
        i = 2;
    }
    while (i < len) {
        size_t start = i;
        unsigned v = 0;
        int h;
        while (i < len && i - start < CIDR_GROUP_HEX && (h = cidr_hex((unsigned char)s[i])) >= 0) {
            v = (v << 4) | (unsigned)h;
            i++;
        }
        if (i < len && s[i] == '.') {
            /* Embedded IPv4: from the start of this group to the end of the text. */
            uint8_t q[4];
            if (ng > CIDR_V6_GROUPS - 2) return -EINVAL;
            if (cidr_parse_v4(s + start, len - start, q) != 0) return -EINVAL;
            groups[ng++] = (uint16_t)(q[0] << 8 | q[1]);
            groups[ng++] = (uint16_t)(q[2] << 8 | q[3]);
            i = len;
            break;
        }
        if (i == start) return -EINVAL; /* empty group: ":::" or "1:" */
        if (i < len && cidr_hex((unsigned char)s[i]) >= 0) return -EINVAL; /* 5 hex digits */
        if (ng == CIDR_V6_GROUPS) return -EINVAL;
        groups[ng++] = (uint16_t)v;
        if (i == len) break;
        if (s[i] != ':') return -EINVAL;
        i++;
        if (i < len && s[i] == ':') {
            if (gap >= 0) return -EINVAL; /* a second "::" */
            gap = (long)ng;
            i++;
        } else if (i == len) {
            return -EINVAL; /* a single trailing colon */
        }
    }

    if (gap < 0 ? ng != CIDR_V6_GROUPS : ng > CIDR_V6_GROUPS - 1) return -EINVAL;
    size_t zeros = CIDR_V6_GROUPS - ng, k = 0;
    for (size_t g = 0; g < ng; g++) {
        if (gap >= 0 && g == (size_t)gap) {
            for (size_t z = 0; z < zeros; z++, k++)
                out[2 * k] = out[2 * k + 1] = 0;
        }
        out[2 * k] = (uint8_t)(groups[g] >> 8);
        out[2 * k + 1] = (uint8_t)(groups[g] & 0xff);
        k++;
    }
    if (gap >= 0 && (size_t)gap == ng) {
        for (size_t z = 0; z < zeros; z++, k++)
            out[2 * k] = out[2 * k + 1] = 0;
    }
    return 0;
}

int lg_ip_parse(const char *s, size_t len, uint8_t *family, uint8_t addr[16])
{
    if (len == 0 || len > LG_IP_TEXT_MAX) return -EINVAL;
    if (memchr(s, ':', len) != NULL) {
        if (cidr_parse_v6(s, len, addr) != 0) return -EINVAL;
        *family = LG_CIDR_V6;
        return 0;
    }
    memset(addr, 0, 16);
    if (cidr_parse_v4(s, len, addr) != 0) return -EINVAL;
    *family = LG_CIDR_V4;
    return 0;
}

/* Are the bits of addr below `prefix` (of `bits`) all zero? */
static bool cidr_host_bits_zero(const uint8_t *addr, unsigned prefix, unsigned bits)
{
    for (unsigned b = prefix; b < bits; b++) {
        if (addr[b / 8] & (0x80u >> (b % 8))) return false;
    }
    return true;
}

int lg_cidr_parse(const char *s, size_t len, lg_cidr_t *out)
{
    const char *slash = memchr(s, '/', len);
    size_t alen = slash ? (size_t)(slash - s) : len;
    uint8_t family;
    uint8_t addr[16];

    if (lg_ip_parse(s, alen, &family, addr) != 0) return -EINVAL;
    unsigned bits = family == LG_CIDR_V4 ? CIDR_V4_BITS : CIDR_V6_BITS, prefix = bits;
    if (slash) {
        const char *p = slash + 1;
        size_t plen = len - alen - 1;
        if (plen == 0 || plen > 3 || (plen > 1 && p[0] == '0')) return -EINVAL;
        prefix = 0;
        for (size_t i = 0; i < plen; i++) {
            if (p[i] < '0' || p[i] > '9') return -EINVAL;
            prefix = prefix * 10 + (unsigned)(p[i] - '0');
        }
        if (prefix > bits) return -EINVAL;
    }
    if (!cidr_host_bits_zero(addr, prefix, bits)) return -EINVAL;
    out->family = family;
    out->prefix = (uint8_t)prefix;
    memcpy(out->addr, addr, sizeof(out->addr));
    return 0;
}

void lg_ip_unmap(uint8_t *family, uint8_t addr[16])
{
    if (*family != LG_CIDR_V6 || memcmp(addr, cidr_mapped_prefix, 12) != 0) return;
    memmove(addr, addr + 12, 4);
    memset(addr + 4, 0, 12);
    *family = LG_CIDR_V4;
}

bool lg_ip_load(uint8_t *family, const uint8_t *addr, uint8_t out[16])
{
    memset(out, 0, 16);
    if (*family == LG_CIDR_V4) {
        memcpy(out, addr, 4);
    } else if (*family == LG_CIDR_V6) {
        memcpy(out, addr, 16);
    } else {
        return false;
    }
    lg_ip_unmap(family, out);
    return true;
}

static uint32_t cidr_load32(const uint8_t *a)
{
    return (uint32_t)a[0] << 24 | (uint32_t)a[1] << 16 | (uint32_t)a[2] << 8 | (uint32_t)a[3];
}

/* Is entry e one that is stored as IPv4: a v4 CIDR, or a v6 one inside ::ffff:0:0/96? */
static bool cidr_is_v4_entry(const lg_cidr_t *e)
{
    return e->family == LG_CIDR_V4 ||
           (e->prefix >= CIDR_MAPPED_BITS && memcmp(e->addr, cidr_mapped_prefix, 12) == 0);
}

static lg_cidr_range4_t cidr_range4(const lg_cidr_t *e)
{
    unsigned prefix = e->prefix;
    const uint8_t *a = e->addr;
    if (e->family == LG_CIDR_V6) {
        prefix -= CIDR_MAPPED_BITS;
        a += 12;
    }
    uint32_t lo = cidr_load32(a);
    /* Host bits: a shift by 32 is undefined, so /0 and /32 are spelled out. */
    uint32_t host = prefix == 0 ? UINT32_MAX : prefix >= CIDR_V4_BITS ? 0 : (UINT32_MAX >> prefix);
    lg_cidr_range4_t r = {lo, lo | host};
    return r;
}

static void cidr_range6(const lg_cidr_t *e, lg_cidr_range6_t *r)
{
    memcpy(r->lo, e->addr, 16);
    memcpy(r->hi, e->addr, 16);
    for (unsigned b = e->prefix; b < CIDR_V6_BITS; b++)
        r->hi[b / 8] |= (uint8_t)(0x80u >> (b % 8));
}

static int cidr_cmp4(const void *pa, const void *pb)
{
    const lg_cidr_range4_t *a = pa, *b = pb;
    return (a->lo > b->lo) - (a->lo < b->lo);
}

static int cidr_cmp6(const void *pa, const void *pb)
{
    const lg_cidr_range6_t *a = pa, *b = pb;
    return memcmp(a->lo, b->lo, 16);
}

/* Merge sorted IPv4 ranges in place; returns the new count. */
static size_t cidr_merge4(lg_cidr_range4_t *v, size_t n)
{
    size_t out = 0;
    for (size_t i = 0; i < n; i++) {
        /* Overlapping or adjacent: next.lo <= cur.hi + 1, computed without overflow. */
        if (out > 0 && (uint64_t)v[i].lo <= (uint64_t)v[out - 1].hi + 1) {
            if (v[i].hi > v[out - 1].hi) v[out - 1].hi = v[i].hi;
        } else {
            v[out++] = v[i];
        }
    }
    return out;
}

/* a + 1 as a 128-bit big-endian number; returns false if it wrapped (a was all ones). */
static bool cidr_inc6(uint8_t a[16])
{
    for (int i = 15; i >= 0; i--) {
        if (++a[i] != 0) return true;
    }
    return false;
}

/* Merge sorted IPv6 ranges in place; returns the new count. */
static size_t cidr_merge6(lg_cidr_range6_t *v, size_t n)
{
    size_t out = 0;
    for (size_t i = 0; i < n; i++) {
        bool join = false;
        if (out > 0) {
            uint8_t next[16];
            memcpy(next, v[out - 1].hi, 16);
            /* If hi is all ones, every later range overlaps it. */
            join = !cidr_inc6(next) || memcmp(v[i].lo, next, 16) <= 0;
        }
        if (join) {
            if (memcmp(v[i].hi, v[out - 1].hi, 16) > 0) memcpy(v[out - 1].hi, v[i].hi, 16);
        } else {
            if (out != i) v[out] = v[i];
            out++;
        }
    }
    return out;
}

/* ceil(log2(n)) within [1, CIDR_INDEX_BITS]: about one range per bucket. */
static unsigned cidr_index_bits(size_t n)
{
    unsigned b = 1;
    while (b < CIDR_INDEX_BITS && ((size_t)1 << b) < n)
        b++;
    return b;
}

/* Bytes of one family's block: n ranges of `range_size`, then the index for up to n ranges. */
static size_t cidr_block_size(size_t n, size_t range_size)
{
    return n * range_size + (((size_t)1 << cidr_index_bits(n)) + 1) * sizeof(uint32_t);
}

/* Leading bits two values share (width `bits` <= 64, the values in the low bits). */
static unsigned cidr_common_bits(uint64_t a, uint64_t b, unsigned width)
{
    unsigned c = 0;
    while (c < width && ((a ^ b) >> (width - 1 - c) & 1) == 0)
        c++;
    return c;
}

static uint64_t cidr_load64(const uint8_t *a)
{
    return (uint64_t)cidr_load32(a) << 32 | cidr_load32(a + 4);
}

static uint32_t cidr_bucket4(uint32_t a, unsigned skip, unsigned bits)
{
    /* skip <= 31 and 1 <= bits: both shifts are below 32. */
    return (uint32_t)(a << skip) >> (32 - bits);
}

/* Bits [skip, skip + bits) of the 128-bit address hi:lo (skip + bits <= 128). */
static uint32_t cidr_bucket6(uint64_t hi, uint64_t lo, unsigned skip, unsigned bits)
{
    uint64_t top;
    if (skip == 0) {
        top = hi;
    } else if (skip < 64) {
        top = hi << skip | lo >> (64 - skip);
    } else {
        top = lo << (skip - 64);
    }
    return (uint32_t)(top >> (64 - bits));
}

static void cidr_index4(lg_cidr_set_t *s)
{
    size_t n = s->n4;
    unsigned bits = cidr_index_bits(n);
    unsigned skip = cidr_common_bits(s->v4[0].lo, s->v4[n - 1].hi, 32);
    if (skip > 32 - bits) skip = 32 - bits;
    s->idx4 = (uint32_t *)(void *)(s->v4 + n);
    s->bits4 = (uint8_t)bits;
    s->skip4 = (uint8_t)skip;
    size_t j = 0;
    for (size_t k = 0; k <= (size_t)1 << bits; k++) {
        while (j < n && cidr_bucket4(s->v4[j].lo, skip, bits) < k)
            j++;
        s->idx4[k] = (uint32_t)j;
    }
}

static void cidr_index6(lg_cidr_set_t *s)
{
    size_t n = s->n6;
    unsigned bits = cidr_index_bits(n);
    const uint8_t *first = s->v6[0].lo, *last = s->v6[n - 1].hi;
    unsigned skip = cidr_common_bits(cidr_load64(first), cidr_load64(last), 64);
    if (skip == 64) skip += cidr_common_bits(cidr_load64(first + 8), cidr_load64(last + 8), 64);
    if (skip > 128 - bits) skip = 128 - bits;
    s->idx6 = (uint32_t *)(void *)(s->v6 + n);
    s->bits6 = (uint8_t)bits;
    s->skip6 = (uint8_t)skip;
    size_t j = 0;
    for (size_t k = 0; k <= (size_t)1 << bits; k++) {
        while (j < n &&
               cidr_bucket6(cidr_load64(s->v6[j].lo), cidr_load64(s->v6[j].lo + 8), skip, bits) < k)
            j++;
        s->idx6[k] = (uint32_t)j;
    }
}

void lg_cidr_set_free(lg_cidr_set_t *s)
{
    lg_free(s->v4);
    lg_free(s->v6);
    memset(s, 0, sizeof(*s));
}

int lg_cidr_set_build(lg_cidr_set_t *s, const lg_cidr_t *v, size_t n)
{
    size_t n4 = 0, n6 = 0;

    memset(s, 0, sizeof(*s));
    if (n > LG_CIDR_SET_MAX) return -E2BIG;
    for (size_t i = 0; i < n; i++) {
        unsigned bits;
        if (v[i].family == LG_CIDR_V4) {
            bits = CIDR_V4_BITS;
        } else if (v[i].family == LG_CIDR_V6) {
            bits = CIDR_V6_BITS;
        } else {
            return -EINVAL;
        }
        if (v[i].prefix > bits || !cidr_host_bits_zero(v[i].addr, v[i].prefix, bits)) {
            return -EINVAL;
        }
        if (v[i].family == LG_CIDR_V4) {
            for (size_t k = 4; k < 16; k++) {
                if (v[i].addr[k] != 0) return -EINVAL;
            }
        }
        if (cidr_is_v4_entry(&v[i])) {
            n4++;
        } else {
            n6++;
        }
    }

    /* One block per family: the ranges, then room for the index (see lg_cidr_set_t). */
    lg_cidr_range4_t *r4 = NULL;
    lg_cidr_range6_t *r6 = NULL;
    if (n4 > 0 && (r4 = lg_malloc(cidr_block_size(n4, sizeof(*r4)))) == NULL) return -ENOMEM;
    if (n6 > 0 && (r6 = lg_malloc(cidr_block_size(n6, sizeof(*r6)))) == NULL) {
        lg_free(r4);
        return -ENOMEM;
    }
    size_t i4 = 0, i6 = 0;
    for (size_t i = 0; i < n; i++) {
        if (cidr_is_v4_entry(&v[i])) {
            r4[i4++] = cidr_range4(&v[i]);
        } else {
            cidr_range6(&v[i], &r6[i6++]);
        }
    }
    if (n4 > 1) qsort(r4, n4, sizeof(*r4), cidr_cmp4);
    if (n6 > 1) qsort(r6, n6, sizeof(*r6), cidr_cmp6);
    s->v4 = r4;
    s->n4 = cidr_merge4(r4, n4);
    s->v6 = r6;
    s->n6 = cidr_merge6(r6, n6);
    /* Merging only shrinks n, and the index of the merged count fits in the room left for n. */
    if (s->n4 > 0) cidr_index4(s);
    if (s->n6 > 0) cidr_index6(s);
    return 0;
}

/* The range holding a, or NULL. */
static const lg_cidr_range4_t *cidr_find4(const lg_cidr_set_t *s, uint32_t a)
{
    size_t n = s->n4;
    if (n == 0 || a < s->v4[0].lo || a > s->v4[n - 1].hi) return NULL;
    /* The last range with lo <= a, then a <= hi; see the file header for the bounds. */
    uint32_t k = cidr_bucket4(a, s->skip4, s->bits4);
    size_t lo = s->idx4[k], hi = s->idx4[k + 1];
    while (lo < hi) {
        size_t mid = lo + (hi - lo) / 2;
        if (s->v4[mid].lo <= a) {
            lo = mid + 1;
        } else {
            hi = mid;
        }
    }
    return lo > 0 && a <= s->v4[lo - 1].hi ? &s->v4[lo - 1] : NULL;
}

/* a <= b for 128-bit numbers as (hi, lo) halves. */
static bool cidr_le6(uint64_t a_hi, uint64_t a_lo, uint64_t b_hi, uint64_t b_lo)
{
    return a_hi < b_hi || (a_hi == b_hi && a_lo <= b_lo);
}

/* The range holding a, or NULL. */
static const lg_cidr_range6_t *cidr_find6(const lg_cidr_set_t *s, const uint8_t *a)
{
    size_t n = s->n6;
    if (n == 0) return NULL;
    uint64_t a_hi = cidr_load64(a), a_lo = cidr_load64(a + 8);
    const lg_cidr_range6_t *v = s->v6;
    if (!cidr_le6(cidr_load64(v[0].lo), cidr_load64(v[0].lo + 8), a_hi, a_lo) ||
        !cidr_le6(a_hi, a_lo, cidr_load64(v[n - 1].hi), cidr_load64(v[n - 1].hi + 8))) {
        return NULL;
    }
    uint32_t k = cidr_bucket6(a_hi, a_lo, s->skip6, s->bits6);
    size_t lo = s->idx6[k], hi = s->idx6[k + 1];
    while (lo < hi) {
        size_t mid = lo + (hi - lo) / 2;
        if (cidr_le6(cidr_load64(v[mid].lo), cidr_load64(v[mid].lo + 8), a_hi, a_lo)) {
            lo = mid + 1;
        } else {
            hi = mid;
        }
    }
    bool in =
        lo > 0 && cidr_le6(a_hi, a_lo, cidr_load64(v[lo - 1].hi), cidr_load64(v[lo - 1].hi + 8));
    return in ? &v[lo - 1] : NULL;
}

bool lg_cidr_set_contains(const lg_cidr_set_t *s, uint8_t family, const uint8_t *addr)
{
    if (family == LG_CIDR_V4) return cidr_find4(s, cidr_load32(addr)) != NULL;
    if (family != LG_CIDR_V6) return false;
    if (memcmp(addr, cidr_mapped_prefix, 12) == 0) {
        return cidr_find4(s, cidr_load32(addr + 12)) != NULL;
    }
    return cidr_find6(s, addr) != NULL;
}

/* The widest prefix p such that a's /p block lies inside [lo, hi] (a is inside it). */
static unsigned cidr_widest4(uint32_t a, const lg_cidr_range4_t *r)
{
    for (unsigned p = 0; p < CIDR_V4_BITS; p++) {
        uint32_t host = p == 0 ? UINT32_MAX : (UINT32_MAX >> p);
        if ((a & ~host) >= r->lo && (a | host) <= r->hi) return p;
    }
    return CIDR_V4_BITS;
}

static unsigned cidr_widest6(const uint8_t *a, const lg_cidr_range6_t *r)
{
    for (unsigned p = 0; p < CIDR_V6_BITS; p++) {
        uint8_t net[16], top[16];
        for (unsigned i = 0; i < 16; i++) {
            unsigned keep = p >= 8 * (i + 1) ? 8 : p <= 8 * i ? 0 : p - 8 * i; /* bits of byte i */
            uint8_t mask = (uint8_t)(0xff00u >> keep);
            net[i] = a[i] & mask;
            top[i] = a[i] | (uint8_t)~mask;
        }
        if (memcmp(net, r->lo, 16) >= 0 && memcmp(top, r->hi, 16) <= 0) return p;
    }
    return CIDR_V6_BITS;
}

bool lg_cidr_set_block(const lg_cidr_set_t *s, uint8_t family, const uint8_t *addr,
                       lg_cidr_t *block)
{
    uint8_t a[16];
    memset(block, 0, sizeof(*block));
    if (!lg_ip_load(&family, addr, a)) return false;
    block->family = family;
    if (family == LG_CIDR_V4) {
        uint32_t v = cidr_load32(a);
        const lg_cidr_range4_t *r = cidr_find4(s, v);
        if (r == NULL) return false;
        block->prefix = (uint8_t)cidr_widest4(v, r);
        uint32_t host = block->prefix == 0              ? UINT32_MAX
                        : block->prefix >= CIDR_V4_BITS ? 0
                                                        : (UINT32_MAX >> block->prefix);
        v &= ~host;
        block->addr[0] = (uint8_t)(v >> 24);
        block->addr[1] = (uint8_t)(v >> 16);
        block->addr[2] = (uint8_t)(v >> 8);
        block->addr[3] = (uint8_t)v;
        return true;
    }
    const lg_cidr_range6_t *r = cidr_find6(s, a);
    if (r == NULL) return false;
    block->prefix = (uint8_t)cidr_widest6(a, r);
    for (unsigned i = 0; i < 16; i++) {
        unsigned p = block->prefix;
        unsigned keep = p >= 8 * (i + 1) ? 8 : p <= 8 * i ? 0 : p - 8 * i;
        block->addr[i] = a[i] & (uint8_t)(0xff00u >> keep);
    }
    return true;
}

int lg_ip_format(uint8_t family, const uint8_t *addr, char *out, size_t cap)
{
    int af = family == LG_CIDR_V4 ? AF_INET : family == LG_CIDR_V6 ? AF_INET6 : -1;
    if (af < 0 || inet_ntop(af, addr, out, (socklen_t)cap) == NULL) {
        if (cap > 0) out[0] = '\0';
        return -EINVAL;
    }
    return 0;
}

int lg_cidr_format(const lg_cidr_t *c, char *out, size_t cap)
{
    char ip[LG_IP_TEXT_MAX + 1];
    if (lg_ip_format(c->family, c->addr, ip, sizeof(ip)) != 0) {
        if (cap > 0) out[0] = '\0';
        return -EINVAL;
    }
    int n = snprintf(out, cap, "%s/%u", ip, (unsigned)c->prefix);
    return n < 0 || (size_t)n >= cap ? -ENOSPC : 0;
}

size_t lg_cidr_set_ranges(const lg_cidr_set_t *s)
{
    return s->n4 + s->n6;
}
