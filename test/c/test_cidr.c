/*
 * test_cidr.c — unit tests of IP/CIDR parsing and CIDR sets (src/lg_cidr.c).
 *
 * Covers: good/bad tables for lg_ip_parse (canonical dotted quads, every RFC 4291 §2.2 IPv6
 * form, the non-canonical IPv4 spellings inet_aton accepts) and lg_cidr_parse (prefixes, host
 * bits); lg_ip_parse against inet_pton(3) on every short string over an alphabet of the
 * characters that matter; lg_ip_unmap; set membership against a brute-force reference on random
 * sets and addresses (IPv4-mapped entries and lookups included); the bucket index (its
 * invariants, lists clustered in one block so the shared prefix is skipped or clamped, single
 * ranges) against plain bisection; range merging; the set size limit at LG_CIDR_SET_MAX
 * (1,048,576) and + 1; invalid entries; allocation failure at each allocation.
 */
#include "../../src/lg_cidr.c"

#include <arpa/inet.h>
#include <stdio.h>
#include <stdlib.h>

#include "lg_test.h"

static int ip_parse_str(const char *s, uint8_t *family, uint8_t addr[16])
{
    return lg_ip_parse(s, strlen(s), family, addr);
}

static int cidr_parse_str(const char *s, lg_cidr_t *out)
{
    return lg_cidr_parse(s, strlen(s), out);
}

/* Addresses that must parse, with the bytes they stand for. */
static const struct {
    const char *text;
    uint8_t family;
    uint8_t addr[16];
} good_ip[] = {
    {"0.0.0.0", 4, {0, 0, 0, 0}},
    {"1.2.3.4", 4, {1, 2, 3, 4}},
    {"127.0.0.1", 4, {127, 0, 0, 1}},
    {"255.255.255.255", 4, {255, 255, 255, 255}},
    {"10.0.10.100", 4, {10, 0, 10, 100}},
    {"::", 6, {0}},                                                           /* all zero */
    {"::1", 6, {[15] = 1}},                                                   /* loopback */
    {"1::", 6, {0, 1}},                                                       /* gap at the end */
    {"1:2:3:4:5:6:7:8", 6, {0, 1, 0, 2, 0, 3, 0, 4, 0, 5, 0, 6, 0, 7, 0, 8}}, /* full form */
    {"2001:DB8::A", 6, {0x20, 0x01, 0x0d, 0xb8, [15] = 0x0a}},                /* upper case */
    {"2001:0db8:0000:0000:0000:0000:0000:000a", 6, {0x20, 0x01, 0x0d, 0xb8, [15] = 0x0a}},
    {"1:2:3:4:5:6:7::", 6, {0, 1, 0, 2, 0, 3, 0, 4, 0, 5, 0, 6, 0, 7, 0, 0}}, /* "::" = 1 group */
    {"::2:3:4:5:6:7:8", 6, {0, 0, 0, 2, 0, 3, 0, 4, 0, 5, 0, 6, 0, 7, 0, 8}},
    {"1:2:3::6:7:8", 6, {0, 1, 0, 2, 0, 3, 0, 0, 0, 0, 0, 6, 0, 7, 0, 8}},
    {"ffff:ffff:ffff:ffff:ffff:ffff:ffff:ffff",
     6,
     {255, 255, 255, 255, 255, 255, 255, 255, 255, 255, 255, 255, 255, 255, 255, 255}},
    {"::ffff:127.0.0.1", 6, {[10] = 0xff, 0xff, 127, 0, 0, 1}},              /* IPv4-mapped */
    {"::FFFF:7f00:1", 6, {[10] = 0xff, 0xff, 127, 0, 0, 1}},                 /* same, hex */
    {"::1.2.3.4", 6, {[12] = 1, 2, 3, 4}},                                   /* IPv4-compatible */
    {"64:ff9b::192.0.2.33", 6, {0, 0x64, 0xff, 0x9b, [12] = 192, 0, 2, 33}}, /* NAT64 */
    {"1:2:3:4:5:6:1.2.3.4", 6, {0, 1, 0, 2, 0, 3, 0, 4, 0, 5, 0, 6, 1, 2, 3, 4}},
    {"ffff:ffff:ffff:ffff:ffff:ffff:255.255.255.255",
     6,
     {255, 255, 255, 255, 255, 255, 255, 255, 255, 255, 255, 255, 255, 255, 255, 255}},
    {"fe80::1:2", 6, {0xfe, 0x80, [13] = 1, 0, 2}},
};

/* Text that must be refused. */
static const struct {
    const char *text;
    const char *why;
} bad_ip[] = {
    {"", "empty"},
    {"127.1", "two-part shorthand"},
    {"127.0.1", "three-part shorthand"},
    {"2130706433", "a single number"},
    {"0x7f.0.0.1", "hex part"},
    {"0x7f000001", "hex number"},
    {"0177.0.0.1", "octal part"},
    {"127.0.0.01", "leading zero"},
    {"00.0.0.0", "double zero"},
    {"1.2.3.4.5", "five parts"},
    {"256.0.0.0", "part over 255"},
    {"1.2.3.1000", "four digits"},
    {"1.2.3.", "trailing dot"},
    {".1.2.3", "leading dot"},
    {"1..2.3", "empty part"},
    {"1.2.3.4 ", "trailing space"},
    {" 1.2.3.4", "leading space"},
    {"+1.2.3.4", "sign"},
    {"1.2.3.-4", "negative"},
    {":", "single colon"},
    {":::", "triple colon"},
    {"1:", "trailing single colon"},
    {":1", "leading single colon"},
    {"1:::2", "triple colon inside"},
    {"1::2::3", "two gaps"},
    {"1:2:3:4:5:6:7", "seven groups"},
    {"1:2:3:4:5:6:7:8:9", "nine groups"},
    {"1:2:3:4:5:6:7:8::", "eight groups and a gap"},
    {"::1:2:3:4:5:6:7:8", "a gap and eight groups"},
    {"12345::", "five hex digits"},
    {"g::", "not hex"},
    {"::1%eth0", "zone id"},
    {"[::1]", "brackets"},
    {"1:2:3:4:5:6:7:1.2.3.4", "embedded IPv4 after seven groups"},
    {"::1.2.3", "short embedded IPv4"},
    {"::1.2.3.04", "leading zero in embedded IPv4"},
    {"::256.1.1.1", "embedded part over 255"},
    {"1.2.3.4::", "embedded IPv4 not last"},
    {"::ffff:1.2.3.4:5", "group after embedded IPv4"},
    {"0x1::", "0x prefix"},
    {"1:2:3:4:5:6:7:8:", "trailing colon after eight groups"},
    {"ffff:ffff:ffff:ffff:ffff:ffff:255.255.255.2555", "46 bytes"},
};

LG_TEST(test_ip_parse_good)
{
    for (size_t i = 0; i < LG_ARRAY_SIZE(good_ip); i++) {
        uint8_t family = 0, addr[16];
        memset(addr, 0xaa, sizeof(addr));
        CHECK_ROW(ip_parse_str(good_ip[i].text, &family, addr) == 0, good_ip[i].text);
        CHECK_ROW(family == good_ip[i].family, good_ip[i].text);
        CHECK_ROW(memcmp(addr, good_ip[i].addr, 16) == 0, good_ip[i].text);
        /* inet_pton agrees (POSIX canonical forms). */
        uint8_t ref[16] = {0};
        CHECK_ROW(inet_pton(family == 4 ? AF_INET : AF_INET6, good_ip[i].text, ref) == 1,
                  good_ip[i].text);
        CHECK_ROW(memcmp(ref, addr, family == 4 ? 4 : 16) == 0, good_ip[i].text);
    }
}

LG_TEST(test_ip_parse_bad)
{
    for (size_t i = 0; i < LG_ARRAY_SIZE(bad_ip); i++) {
        uint8_t family, addr[16];
        CHECK_ROW(ip_parse_str(bad_ip[i].text, &family, addr) == -EINVAL, bad_ip[i].why);
    }
}

LG_TEST(test_ip_parse_reads_only_len)
{
    /* The length bounds the scan: a valid prefix of a longer buffer parses as itself. */
    uint8_t family, addr[16];
    CHECK_EQ_INT(lg_ip_parse("1.2.3.45", 7, &family, addr), 0);
    CHECK(family == 4 && addr[3] == 4);
    CHECK_EQ_INT(lg_ip_parse("::1:2", 3, &family, addr), 0);
    CHECK(family == 6 && addr[15] == 1);
    CHECK_EQ_INT(lg_ip_parse("1.2.3.4", 0, &family, addr), -EINVAL);
}

/*
 * Every string of up to IP_EXHAUSTIVE_LEN bytes over an alphabet of the characters that matter,
 * against inet_pton(3): glibc's inet_pton implements exactly the POSIX / RFC 4291 forms.
 */
#define IP_EXHAUSTIVE_LEN 6

LG_TEST(test_ip_parse_vs_inet_pton)
{
    static const char alphabet[] = {'0', '1', '9', 'f', ':', '.', 'x'};
    const size_t na = sizeof(alphabet);
    char s[IP_EXHAUSTIVE_LEN + 1];
    size_t checked = 0;
    for (size_t len = 1; len <= IP_EXHAUSTIVE_LEN; len++) {
        size_t total = 1;
        for (size_t k = 0; k < len; k++)
            total *= na;
        for (size_t code = 0; code < total; code++) {
            size_t c = code;
            for (size_t k = 0; k < len; k++, c /= na)
                s[k] = alphabet[c % na];
            s[len] = '\0';
            uint8_t family, addr[16], ref4[4], ref6[16];
            int rc = lg_ip_parse(s, len, &family, addr);
            int v4 = inet_pton(AF_INET, s, ref4), v6 = inet_pton(AF_INET6, s, ref6);
            CHECK_ROW((rc == 0) == (v4 == 1 || v6 == 1), s);
            if (rc == 0) {
                CHECK_ROW(family == (v4 == 1 ? 4 : 6), s);
                CHECK_ROW(memcmp(addr, v4 == 1 ? ref4 : ref6, v4 == 1 ? 4 : 16) == 0, s);
            }
            checked++;
        }
    }
    CHECK(checked > 100000);
}

/* Also embedded IPv4 forms over digits, dots and colons, longer: random strings. */
LG_TEST(test_ip_parse_vs_inet_pton_random)
{
    static const char alphabet[] = "0123456789abcdefABCDEF:.:::...";
    char s[48];
    srand(7);
    for (int iter = 0; iter < 200000; iter++) {
        size_t len = 1 + (size_t)rand() % 46;
        for (size_t k = 0; k < len; k++)
            s[k] = alphabet[(size_t)rand() % (sizeof(alphabet) - 1)];
        s[len] = '\0';
        uint8_t family, addr[16], ref4[4], ref6[16];
        int rc = lg_ip_parse(s, len, &family, addr);
        int v4 = inet_pton(AF_INET, s, ref4), v6 = inet_pton(AF_INET6, s, ref6);
        CHECK_ROW((rc == 0) == (v4 == 1 || v6 == 1), s);
        if (rc == 0) CHECK_ROW(memcmp(addr, v4 == 1 ? ref4 : ref6, v4 == 1 ? 4 : 16) == 0, s);
    }
}

static const struct {
    const char *text;
    uint8_t family, prefix;
} good_cidr[] = {
    {"10.0.0.0/8", 4, 8},  {"0.0.0.0/0", 4, 0},      {"1.2.3.4", 4, 32},
    {"1.2.3.4/32", 4, 32}, {"172.16.0.0/12", 4, 12}, {"::/0", 6, 0},
    {"::1", 6, 128},       {"::1/128", 6, 128},      {"fc00::/7", 6, 7},
    {"fe80::/10", 6, 10},  {"64:ff9b::/96", 6, 96},  {"::ffff:10.0.0.0/104", 6, 104},
    {"2002::/16", 6, 16},
};

static const struct {
    const char *text;
    const char *why;
} bad_cidr[] = {
    {"10.0.0.0/", "empty prefix"},
    {"10.0.0.0/33", "prefix over 32"},
    {"::/129", "prefix over 128"},
    {"10.0.0.0/08", "leading zero in prefix"},
    {"10.0.0.0/-8", "negative prefix"},
    {"10.0.0.0/+8", "signed prefix"},
    {"10.0.0.0/8/8", "two slashes"},
    {"10.0.0.0/1000", "four-digit prefix"},
    {"10.1.2.3/8", "host bits set"},
    {"1.2.3.5/31", "host bit set at the edge"},
    {"fc00::1/7", "IPv6 host bits"},
    {"::1/127", "IPv6 host bit at the edge"},
    {"10.0.0/8", "shorthand address"},
    {"/8", "no address"},
    {"10.0.0.0 /8", "space"},
    {"[::1]/128", "brackets"},
    {"", "empty"},
};

LG_TEST(test_cidr_parse_tables)
{
    for (size_t i = 0; i < LG_ARRAY_SIZE(good_cidr); i++) {
        lg_cidr_t c;
        CHECK_ROW(cidr_parse_str(good_cidr[i].text, &c) == 0, good_cidr[i].text);
        CHECK_ROW(c.family == good_cidr[i].family, good_cidr[i].text);
        CHECK_ROW(c.prefix == good_cidr[i].prefix, good_cidr[i].text);
    }
    for (size_t i = 0; i < LG_ARRAY_SIZE(bad_cidr); i++) {
        lg_cidr_t c;
        CHECK_ROW(cidr_parse_str(bad_cidr[i].text, &c) == -EINVAL, bad_cidr[i].why);
    }
    lg_cidr_t c;
    CHECK_EQ_INT(cidr_parse_str("192.168.0.0/16", &c), 0);
    CHECK(c.addr[0] == 192 && c.addr[1] == 168 && c.addr[2] == 0 && c.addr[4] == 0);
}

LG_TEST(test_unmap)
{
    uint8_t family = 6;
    uint8_t a[16] = {[10] = 0xff, 0xff, 127, 0, 0, 1};
    lg_ip_unmap(&family, a);
    CHECK_EQ_INT(family, 4);
    CHECK(a[0] == 127 && a[1] == 0 && a[2] == 0 && a[3] == 1);
    for (int i = 4; i < 16; i++)
        CHECK(a[i] == 0);

    /* Not mapped: IPv4-compatible, NAT64, ::ffff:0:0:0 (SIIT), plain IPv6, IPv4: unchanged. */
    static const char *const unchanged[] = {"::127.0.0.1", "64:ff9b::7f00:1", "::ffff:0:7f00:1",
                                            "2001:db8::1", "::1"};
    for (size_t i = 0; i < LG_ARRAY_SIZE(unchanged); i++) {
        uint8_t f, b[16], before[16];
        CHECK_ROW(ip_parse_str(unchanged[i], &f, b) == 0, unchanged[i]);
        memcpy(before, b, 16);
        lg_ip_unmap(&f, b);
        CHECK_ROW(f == 6 && memcmp(before, b, 16) == 0, unchanged[i]);
    }
    family = 4;
    uint8_t v4[16] = {0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0xff, 0xff, 1, 2, 3, 4};
    lg_ip_unmap(&family, v4); /* family 4: untouched whatever the bytes */
    CHECK(family == 4 && v4[10] == 0xff);
}

/* Reference membership: normalise mapped entries/addresses to IPv4, compare prefix bits. */
static void ref_norm(uint8_t *family, uint8_t *prefix, uint8_t addr[16])
{
    if (*family == 6 && memcmp(addr, cidr_mapped_prefix, 12) == 0 && *prefix >= 96) {
        memmove(addr, addr + 12, 4);
        memset(addr + 4, 0, 12);
        *family = 4;
        *prefix = (uint8_t)(*prefix - 96);
    }
}

static bool ref_contains(const lg_cidr_t *v, size_t n, uint8_t family, const uint8_t *addr)
{
    uint8_t af = family, ap = family == 4 ? 32 : 128, a[16] = {0};
    memcpy(a, addr, family == 4 ? 4 : 16);
    ref_norm(&af, &ap, a);
    for (size_t i = 0; i < n; i++) {
        uint8_t ef = v[i].family, ep = v[i].prefix, e[16];
        memcpy(e, v[i].addr, 16);
        ref_norm(&ef, &ep, e);
        if (ef != af) continue;
        bool match = true;
        for (unsigned b = 0; b < ep && match; b++) {
            unsigned m = 0x80u >> (b % 8);
            match = (a[b / 8] & m) == (e[b / 8] & m);
        }
        if (match) return true;
    }
    return false;
}

static void random_addr(uint8_t family, uint8_t addr[16])
{
    memset(addr, 0, 16);
    for (int i = 0; i < (family == 4 ? 4 : 16); i++)
        addr[i] = (uint8_t)rand();
    /* Bias IPv6 toward a few shared prefixes (and the mapped range) so entries overlap. */
    if (family == 6) {
        int k = rand() % 4;
        if (k == 0) memcpy(addr, cidr_mapped_prefix, 12);
        if (k == 1) memset(addr, 0, 8);
        if (k == 2) addr[0] = 0x20, addr[1] = 0x01;
    } else if (rand() % 2) {
        addr[0] = 10;
    }
}

static void random_cidr(lg_cidr_t *c)
{
    c->family = (rand() % 2) ? 4 : 6;
    unsigned bits = c->family == 4 ? 32 : 128;
    c->prefix = (uint8_t)((unsigned)rand() % (bits + 1));
    random_addr(c->family, c->addr);
    for (unsigned b = c->prefix; b < bits; b++)
        c->addr[b / 8] &= (uint8_t) ~(0x80u >> (b % 8));
}

/* An address near entry c: inside it, or just past either end. */
static void addr_near(const lg_cidr_t *c, uint8_t addr[16])
{
    unsigned bits = c->family == 4 ? 32 : 128;
    memcpy(addr, c->addr, 16);
    int k = rand() % 4;
    for (unsigned b = c->prefix; b < bits; b++) {
        uint8_t m = (uint8_t)(0x80u >> (b % 8));
        if (k == 1 || (k == 0 && rand() % 2)) addr[b / 8] |= m; /* k 1: last address */
    }
    if (k == 2) { /* one below the first address */
        for (int i = (int)bits / 8 - 1; i >= 0; i--) {
            if (addr[i]-- != 0) break;
        }
    }
    if (k == 3) { /* one past the last address */
        for (unsigned b = c->prefix; b < bits; b++)
            addr[b / 8] |= (uint8_t)(0x80u >> (b % 8));
        for (int i = (int)bits / 8 - 1; i >= 0; i--) {
            if (++addr[i] != 0) break;
        }
    }
}

LG_TEST(test_contains_vs_reference)
{
    static lg_cidr_t v[600];
    srand(12345);
    for (int round = 0; round < 200; round++) {
        size_t n = (size_t)rand() % LG_ARRAY_SIZE(v);
        if (round < 10) n = (size_t)round; /* tiny sets too */
        for (size_t i = 0; i < n; i++)
            random_cidr(&v[i]);
        lg_cidr_set_t s;
        CHECK_EQ_INT(lg_cidr_set_build(&s, v, n), 0);
        /* Invariant: sorted, disjoint, non-adjacent ranges. */
        for (size_t i = 1; i < s.n4; i++)
            CHECK((uint64_t)s.v4[i - 1].hi + 1 < s.v4[i].lo);
        for (size_t i = 0; i < s.n4; i++)
            CHECK(s.v4[i].lo <= s.v4[i].hi);
        for (size_t i = 1; i < s.n6; i++) {
            uint8_t next[16];
            memcpy(next, s.v6[i - 1].hi, 16);
            CHECK(cidr_inc6(next) && memcmp(next, s.v6[i].lo, 16) < 0);
        }
        for (int q = 0; q < 2000; q++) {
            uint8_t family = (rand() % 2) ? 4 : 6, addr[16];
            if (n > 0 && rand() % 2) {
                const lg_cidr_t *c = &v[(size_t)rand() % n];
                family = c->family;
                addr_near(c, addr);
            } else {
                random_addr(family, addr);
            }
            bool want = ref_contains(v, n, family, addr);
            CHECK(lg_cidr_set_contains(&s, family, addr) == want);
            if (family == 4) { /* the mapped spelling answers the same */
                uint8_t m[16];
                memcpy(m, cidr_mapped_prefix, 12);
                memcpy(m + 12, addr, 4);
                CHECK(lg_cidr_set_contains(&s, 6, m) == want);
            }
        }
        lg_cidr_set_free(&s);
    }
}

static lg_cidr_t cidr_of(const char *text);

/* Plain bisection over the set's ranges: what lookups did before the bucket index. */
static bool bisect_ref(const lg_cidr_set_t *s, uint8_t family, const uint8_t *addr)
{
    uint8_t f = family, a[16] = {0};
    memcpy(a, addr, family == 4 ? 4 : 16);
    lg_ip_unmap(&f, a);
    if (f == 4) {
        uint32_t x = cidr_load32(a);
        size_t lo = 0, hi = s->n4;
        while (lo < hi) {
            size_t mid = lo + (hi - lo) / 2;
            if (s->v4[mid].lo <= x) {
                lo = mid + 1;
            } else {
                hi = mid;
            }
        }
        return lo > 0 && x <= s->v4[lo - 1].hi;
    }
    size_t lo = 0, hi = s->n6;
    while (lo < hi) {
        size_t mid = lo + (hi - lo) / 2;
        if (memcmp(s->v6[mid].lo, a, 16) <= 0) {
            lo = mid + 1;
        } else {
            hi = mid;
        }
    }
    return lo > 0 && memcmp(a, s->v6[lo - 1].hi, 16) <= 0;
}

/* The index invariants of lg_cidr_set_t: bounds, and idx[k] is the first range whose bucket is
 * >= k. */
static bool index_ok(const lg_cidr_set_t *s)
{
    if (s->n4 > 0) {
        if (s->bits4 < 1 || s->bits4 > CIDR_INDEX_BITS || s->skip4 + s->bits4 > 32) return false;
        size_t nb = (size_t)1 << s->bits4;
        if (s->idx4[0] != 0 || s->idx4[nb] != s->n4) return false;
        for (size_t k = 0; k < nb; k++) {
            if (s->idx4[k] > s->idx4[k + 1]) return false;
            for (size_t i = s->idx4[k]; i < s->idx4[k + 1]; i++) {
                if (cidr_bucket4(s->v4[i].lo, s->skip4, s->bits4) != k) return false;
            }
        }
    }
    if (s->n6 > 0) {
        if (s->bits6 < 1 || s->bits6 > CIDR_INDEX_BITS || s->skip6 + s->bits6 > 128) return false;
        size_t nb = (size_t)1 << s->bits6;
        if (s->idx6[0] != 0 || s->idx6[nb] != s->n6) return false;
        for (size_t k = 0; k < nb; k++) {
            if (s->idx6[k] > s->idx6[k + 1]) return false;
            for (size_t i = s->idx6[k]; i < s->idx6[k + 1]; i++) {
                const uint8_t *lo = s->v6[i].lo;
                if (cidr_bucket6(cidr_load64(lo), cidr_load64(lo + 8), s->skip6, s->bits6) != k) {
                    return false;
                }
            }
        }
    }
    return true;
}

/* Random bits below `keep` of a (width `bits`), the first `keep` bits left as they are. */
static void randomize_below(uint8_t *a, unsigned keep, unsigned bits)
{
    for (unsigned b = keep; b < bits; b++) {
        uint8_t m = (uint8_t)(0x80u >> (b % 8));
        a[b / 8] = (uint8_t)(rand() % 2 ? a[b / 8] | m : a[b / 8] & ~m);
    }
}

LG_TEST(test_index_on_clustered_lists)
{
    /* Lists inside one block: the index must skip the shared prefix (and clamp it when the block
     * is narrower than the index), and agree with plain bisection everywhere. */
    static const struct {
        const char *block; /* every entry is inside it */
        unsigned min_p, n; /* entry prefixes min_p..max; entry count */
    } rows[] = {
        {"10.0.0.0/8", 24, 3000},
        {"192.168.1.0/24", 28, 40},      /* skip clamped: 24 + bits > 32 */
        {"0.0.0.0/0", 1, 2000},          /* nothing shared */
        {"2001:db8::/32", 48, 3000},     /* skip in the high half */
        {"2001:db8:1:2::/64", 96, 2000}, /* skip at or past 64: the low half names the bucket */
        {"2001:db8:1:2:3:4::/96", 112, 500},
        {"2001:db8:1:2:3:4:5:0/112", 120, 300}, /* skip clamped near 128 */
        {"::/0", 1, 2000},
        {"::ffff:10.0.0.0/104", 120, 300}, /* IPv4-mapped entries go to the IPv4 side */
    };
    static lg_cidr_t v[3000];
    srand(777);
    for (size_t r = 0; r < LG_ARRAY_SIZE(rows); r++) {
        lg_cidr_t block = cidr_of(rows[r].block);
        unsigned bits = block.family == 4 ? 32 : 128;
        for (size_t i = 0; i < rows[r].n; i++) {
            v[i] = block;
            v[i].prefix = (uint8_t)(rows[r].min_p + (unsigned)rand() % (bits - rows[r].min_p + 1));
            randomize_below(v[i].addr, block.prefix, v[i].prefix);
        }
        lg_cidr_set_t s;
        CHECK_ROW(lg_cidr_set_build(&s, v, rows[r].n) == 0, rows[r].block);
        bool ok = index_ok(&s);
        /* The shared prefix is skipped: at least the block's prefix, unless clamped so that the
         * bucket bits still fit in the address. */
        bool v4side = s.n4 > 0;
        unsigned skip = v4side ? s.skip4 : s.skip6, ib = v4side ? s.bits4 : s.bits6;
        unsigned width = v4side ? 32 : 128;
        unsigned block_bits = block.family == 6 && v4side ? block.prefix - 96 : block.prefix;
        CHECK_ROW((s.n4 > 0) != (s.n6 > 0), rows[r].block);
        CHECK_ROW(skip >= block_bits || skip == width - ib, rows[r].block);
        for (int q = 0; q < 20000 && ok; q++) {
            uint8_t a[16];
            if (q % 2) {
                memcpy(a, v[(size_t)rand() % rows[r].n].addr, 16);
                randomize_below(a, rand() % 2 ? block.prefix : v[0].prefix, bits);
            } else {
                memcpy(a, block.addr, 16);
                randomize_below(a, (unsigned)rand() % (block.prefix + 1), bits);
            }
            ok = lg_cidr_set_contains(&s, block.family, a) == bisect_ref(&s, block.family, a);
        }
        /* Every range's ends and their neighbours. */
        for (size_t i = 0; i < s.n4 && ok; i++) {
            uint32_t e[4] = {s.v4[i].lo, s.v4[i].hi, s.v4[i].lo - 1, s.v4[i].hi + 1};
            for (size_t k = 0; k < 4 && ok; k++) {
                if ((k == 2 && e[0] == 0) || (k == 3 && e[1] == UINT32_MAX)) continue; /* wrap */
                uint8_t a[16] = {(uint8_t)(e[k] >> 24), (uint8_t)(e[k] >> 16), (uint8_t)(e[k] >> 8),
                                 (uint8_t)e[k]};
                ok = lg_cidr_set_contains(&s, 4, a) == bisect_ref(&s, 4, a) &&
                     lg_cidr_set_contains(&s, 4, a) == (k < 2);
            }
        }
        for (size_t i = 0; i < s.n6 && ok; i++) {
            uint8_t a[16];
            memcpy(a, s.v6[i].lo, 16);
            ok = lg_cidr_set_contains(&s, 6, a);
            memcpy(a, s.v6[i].hi, 16);
            ok = ok && lg_cidr_set_contains(&s, 6, a);
            if (ok && cidr_inc6(a)) ok = !lg_cidr_set_contains(&s, 6, a);
        }
        lg_cidr_set_free(&s);
        CHECK_ROW(ok, rows[r].block);
    }
}

LG_TEST(test_index_single_ranges)
{
    /* One range per family: the shared prefix is the whole range, and is clamped. */
    static const char *const one[] = {"1.2.3.4",
                                      "0.0.0.0/0",
                                      "255.255.255.255",
                                      "0.0.0.0",
                                      "::",
                                      "::/0",
                                      "ffff:ffff:ffff:ffff:ffff:ffff:ffff:ffff",
                                      "2001:db8::/127"};
    for (size_t i = 0; i < LG_ARRAY_SIZE(one); i++) {
        lg_cidr_t c = cidr_of(one[i]);
        lg_cidr_set_t s;
        CHECK_ROW(lg_cidr_set_build(&s, &c, 1) == 0, one[i]);
        bool ok = index_ok(&s);
        uint8_t a[16];
        memcpy(a, c.addr, 16);
        ok = ok && lg_cidr_set_contains(&s, c.family, a);
        for (int q = 0; q < 1000 && ok; q++) {
            randomize_below(a, (unsigned)rand() % (c.family == 4 ? 33 : 129),
                            c.family == 4 ? 32 : 128);
            ok = lg_cidr_set_contains(&s, c.family, a) == bisect_ref(&s, c.family, a);
        }
        lg_cidr_set_free(&s);
        CHECK_ROW(ok, one[i]);
    }
}

static lg_cidr_t cidr_of(const char *text)
{
    lg_cidr_t c;
    memset(&c, 0, sizeof(c));
    if (cidr_parse_str(text, &c) != 0) abort(); /* tables below are valid by construction */
    return c;
}

static bool contains_str(const lg_cidr_set_t *s, const char *ip)
{
    uint8_t family, addr[16];
    if (ip_parse_str(ip, &family, addr) != 0) abort();
    return lg_cidr_set_contains(s, family, addr);
}

LG_TEST(test_merge_and_edges)
{
    lg_cidr_t v[] = {cidr_of("10.0.0.0/9"),      cidr_of("10.128.0.0/9"),
                     cidr_of("10.1.0.0/16"),     cidr_of("0.0.0.0/32"),
                     cidr_of("255.255.255.255"), cidr_of("::/128"),
                     cidr_of("::1/128"),         cidr_of("ffff::/16"),
                     cidr_of("fffe::/16"),       cidr_of("::ffff:192.168.0.0/112")};
    lg_cidr_set_t s;
    CHECK_EQ_INT(lg_cidr_set_build(&s, v, LG_ARRAY_SIZE(v)), 0);
    /* 10/9 + 10.128/9 + 10.1/16 → 10/8; 192.168/16 from the mapped entry; 0.0.0.0; bcast. */
    CHECK_EQ_INT(s.n4, 4);
    /* :: + ::1 → one; fffe::/16 + ffff::/16 → one (it ends at the top of the space). */
    CHECK_EQ_INT(s.n6, 2);
    CHECK_EQ_INT(lg_cidr_set_ranges(&s), 6);
    CHECK(contains_str(&s, "10.0.0.0") && contains_str(&s, "10.255.255.255"));
    CHECK(!contains_str(&s, "9.255.255.255") && !contains_str(&s, "11.0.0.0"));
    CHECK(contains_str(&s, "0.0.0.0") && !contains_str(&s, "0.0.0.1"));
    CHECK(contains_str(&s, "255.255.255.255") && !contains_str(&s, "255.255.255.254"));
    CHECK(contains_str(&s, "192.168.3.4") && contains_str(&s, "::ffff:192.168.3.4"));
    CHECK(!contains_str(&s, "192.169.0.0"));
    CHECK(contains_str(&s, "::") && contains_str(&s, "::1") && !contains_str(&s, "::2"));
    CHECK(contains_str(&s, "ffff:ffff:ffff:ffff:ffff:ffff:ffff:ffff"));
    CHECK(contains_str(&s, "fffe::") && !contains_str(&s, "fffd:ffff::"));
    /* A mapped IPv6 address is IPv4: "::/128" and "::1/128" do not cover ::ffff:0.0.0.1. */
    CHECK(!contains_str(&s, "::ffff:0.0.0.1") && contains_str(&s, "::ffff:0.0.0.0"));
    /* Unknown families are in no set. */
    uint8_t a[16] = {10};
    CHECK(!lg_cidr_set_contains(&s, 2, a) && !lg_cidr_set_contains(&s, 10, a));
    lg_cidr_set_free(&s);
    CHECK(s.v4 == NULL && s.v6 == NULL && s.n4 == 0 && s.n6 == 0);
    lg_cidr_set_free(&s); /* twice is harmless */
}

/*
 * Regression: the host mask of an IPv4 range was UINT32_MAX >> prefix, a shift by 32 for a /32
 * (undefined behaviour, reported by UBSan in test_contains_vs_reference). /32 and /0 must give
 * the single address and the whole space.
 */
LG_TEST(test_regress_v4_mask_shift_by_32)
{
    lg_cidr_t v[] = {cidr_of("1.2.3.4/32"), cidr_of("::ffff:5.6.7.8/128")};
    lg_cidr_set_t s;
    CHECK_EQ_INT(lg_cidr_set_build(&s, v, 2), 0);
    CHECK_EQ_INT(s.n4, 2);
    CHECK(s.v4[0].lo == 0x01020304u && s.v4[0].hi == 0x01020304u);
    CHECK(s.v4[1].lo == 0x05060708u && s.v4[1].hi == 0x05060708u);
    CHECK(contains_str(&s, "1.2.3.4") && !contains_str(&s, "1.2.3.5"));
    CHECK(contains_str(&s, "5.6.7.8") && !contains_str(&s, "5.6.7.7"));
    lg_cidr_set_free(&s);
    lg_cidr_t all[] = {cidr_of("0.0.0.0/0")};
    CHECK_EQ_INT(lg_cidr_set_build(&s, all, 1), 0);
    CHECK(s.n4 == 1 && s.v4[0].lo == 0 && s.v4[0].hi == UINT32_MAX);
    lg_cidr_set_free(&s);
}

/* Ranges one address apart stay apart; ranges that touch merge (IPv4 and IPv6). */
LG_TEST(test_gap_of_one_address)
{
    lg_cidr_t v[] = {cidr_of("10.0.0.0/32"), cidr_of("10.0.0.2/31"), cidr_of("10.0.0.4/32"),
                     cidr_of("fd00::/128"),  cidr_of("fd00::2/127"), cidr_of("fd00::4/128")};
    lg_cidr_set_t s;
    CHECK_EQ_INT(lg_cidr_set_build(&s, v, LG_ARRAY_SIZE(v)), 0);
    CHECK_EQ_INT(s.n4, 2); /* 10.0.0.0 | 10.0.0.2-10.0.0.4 */
    CHECK_EQ_INT(s.n6, 2);
    CHECK(contains_str(&s, "10.0.0.0") && !contains_str(&s, "10.0.0.1"));
    CHECK(contains_str(&s, "10.0.0.2") && contains_str(&s, "10.0.0.4"));
    CHECK(!contains_str(&s, "10.0.0.5"));
    CHECK(contains_str(&s, "fd00::") && !contains_str(&s, "fd00::1"));
    CHECK(contains_str(&s, "fd00::3") && contains_str(&s, "fd00::4") &&
          !contains_str(&s, "fd00::5"));
    lg_cidr_set_free(&s);
    /* Touching across a byte carry: 0:0:0:0:ffff:ffff:ffff:ffff/128 then 0:0:0:1::/64. */
    lg_cidr_t w[] = {cidr_of("::ffff:ffff:ffff:ffff/128"), cidr_of("0:0:0:1::/64")};
    CHECK_EQ_INT(lg_cidr_set_build(&s, w, 2), 0);
    CHECK_EQ_INT(s.n6, 1);
    lg_cidr_set_free(&s);
}

LG_TEST(test_v6_short_prefix_does_not_cover_ipv4)
{
    lg_cidr_t v[] = {cidr_of("::/0")};
    lg_cidr_set_t s;
    CHECK_EQ_INT(lg_cidr_set_build(&s, v, 1), 0);
    CHECK(contains_str(&s, "2001:db8::1") && contains_str(&s, "::"));
    CHECK(!contains_str(&s, "1.2.3.4") && !contains_str(&s, "::ffff:1.2.3.4"));
    lg_cidr_set_free(&s);
    lg_cidr_t w[] = {cidr_of("0.0.0.0/0")};
    CHECK_EQ_INT(lg_cidr_set_build(&s, w, 1), 0);
    CHECK(contains_str(&s, "1.2.3.4") && contains_str(&s, "::ffff:1.2.3.4"));
    CHECK(!contains_str(&s, "::1.2.3.4") && !contains_str(&s, "2001:db8::1"));
    lg_cidr_set_free(&s);
}

LG_TEST(test_empty_and_zeroed_set)
{
    lg_cidr_set_t z;
    memset(&z, 0, sizeof(z));
    CHECK(!contains_str(&z, "1.2.3.4") && !contains_str(&z, "::1"));
    lg_cidr_set_t s;
    CHECK_EQ_INT(lg_cidr_set_build(&s, NULL, 0), 0);
    CHECK(s.v4 == NULL && s.v6 == NULL);
    CHECK(!contains_str(&s, "0.0.0.0"));
    lg_cidr_set_free(&s);
}

LG_TEST(test_invalid_entries)
{
    lg_cidr_t v[2] = {cidr_of("10.0.0.0/8"), cidr_of("10.0.0.0/8")};
    lg_cidr_set_t s;
    v[1].family = 5;
    CHECK_EQ_INT(lg_cidr_set_build(&s, v, 2), -EINVAL);
    CHECK(s.v4 == NULL && s.v6 == NULL);
    v[1] = cidr_of("10.0.0.0/8");
    v[1].prefix = 33;
    CHECK_EQ_INT(lg_cidr_set_build(&s, v, 2), -EINVAL);
    v[1].prefix = 6; /* 10 = 0b00001010: bit 6 is set, below a /6 */
    CHECK_EQ_INT(lg_cidr_set_build(&s, v, 2), -EINVAL);
    v[1] = cidr_of("10.0.0.0/8");
    v[1].addr[8] = 1; /* IPv4 entry with stray bytes beyond addr[3] */
    CHECK_EQ_INT(lg_cidr_set_build(&s, v, 2), -EINVAL);
    v[1] = cidr_of("::/0");
    v[1].prefix = 129;
    CHECK_EQ_INT(lg_cidr_set_build(&s, v, 2), -EINVAL);
}

LG_TEST(test_set_size_limit)
{
    /* The documented bound: 2^20 entries, enough for a 100,000-entry blocklist ten times over. */
    CHECK_EQ_INT(LG_CIDR_SET_MAX, 1048576);
    lg_cidr_t *v = malloc((LG_CIDR_SET_MAX + 1) * sizeof(*v));
    CHECK(v != NULL);
    /* Distinct, non-adjacent /32s: 10.a.b.c with even c, and IPv6 /128s for the other half. */
    for (size_t i = 0; i <= LG_CIDR_SET_MAX; i++) {
        memset(&v[i], 0, sizeof(v[i]));
        if (i % 2) {
            v[i].family = 6;
            v[i].prefix = 128;
            v[i].addr[0] = 0x20;
            v[i].addr[1] = 0x01;
            v[i].addr[13] = (uint8_t)(i >> 16);
            v[i].addr[14] = (uint8_t)(i >> 8);
            v[i].addr[15] = (uint8_t)i;
        } else {
            v[i].family = 4;
            v[i].prefix = 32;
            v[i].addr[0] = 10;
            v[i].addr[1] = (uint8_t)(i >> 15);
            v[i].addr[2] = (uint8_t)(i >> 7);
            v[i].addr[3] = (uint8_t)(i << 1);
        }
    }
    lg_cidr_set_t s;
    CHECK_EQ_INT(lg_cidr_set_build(&s, v, LG_CIDR_SET_MAX + 1), -E2BIG);
    CHECK(s.v4 == NULL && s.v6 == NULL);
    int rc = lg_cidr_set_build(&s, v, LG_CIDR_SET_MAX);
    if (rc != 0) free(v);
    CHECK_EQ_INT(rc, 0);
    bool all = true;
    for (size_t i = 0; i < LG_CIDR_SET_MAX; i++)
        all = all && lg_cidr_set_contains(&s, v[i].family, v[i].addr);
    size_t ranges = lg_cidr_set_ranges(&s);
    lg_cidr_set_free(&s);
    free(v);
    CHECK(all);
    CHECK_EQ_INT(ranges, LG_CIDR_SET_MAX);
}

LG_TEST(test_alloc_failure)
{
    lg_cidr_t v[] = {cidr_of("10.0.0.0/8"), cidr_of("fc00::/7")};
    lg_cidr_set_t s;
    /* Allocation 0 (IPv4 array) and 1 (IPv6 array) fail in turn; no leak (ASan checks). */
    for (long k = 0; k < 2; k++) {
        lg_alloc_fail_after(k);
        int rc = lg_cidr_set_build(&s, v, 2);
        lg_alloc_fail_after(-1);
        CHECK_EQ_INT(rc, -ENOMEM);
        CHECK(s.v4 == NULL && s.v6 == NULL && s.n4 == 0 && s.n6 == 0);
        CHECK(!contains_str(&s, "10.0.0.1"));
    }
    lg_alloc_fail_after(2);
    CHECK_EQ_INT(lg_cidr_set_build(&s, v, 2), 0);
    lg_alloc_fail_after(-1);
    CHECK(contains_str(&s, "10.0.0.1") && contains_str(&s, "fd00::1"));
    lg_cidr_set_free(&s);
    /* An IPv6-only set: its single allocation fails. */
    lg_alloc_fail_after(0);
    CHECK_EQ_INT(lg_cidr_set_build(&s, v + 1, 1), -ENOMEM);
    lg_alloc_fail_after(-1);
}

int main(void)
{
    LG_RUN(test_ip_parse_good);
    LG_RUN(test_ip_parse_bad);
    LG_RUN(test_ip_parse_reads_only_len);
    LG_RUN(test_ip_parse_vs_inet_pton);
    LG_RUN(test_ip_parse_vs_inet_pton_random);
    LG_RUN(test_cidr_parse_tables);
    LG_RUN(test_unmap);
    LG_RUN(test_contains_vs_reference);
    LG_RUN(test_index_on_clustered_lists);
    LG_RUN(test_index_single_ranges);
    LG_RUN(test_merge_and_edges);
    LG_RUN(test_regress_v4_mask_shift_by_32);
    LG_RUN(test_gap_of_one_address);
    LG_RUN(test_v6_short_prefix_does_not_cover_ipv4);
    LG_RUN(test_empty_and_zeroed_set);
    LG_RUN(test_invalid_entries);
    LG_RUN(test_set_size_limit);
    LG_RUN(test_alloc_failure);
    LG_TEST_END();
}
