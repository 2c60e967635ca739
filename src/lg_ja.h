/*
 * lg_ja.h — JA3 and JA4 TLS client fingerprints, and fingerprint sets for blocklists (pure
 * core: no I/O; allocation only in lg_ja_set_build).
 *
 * Builds the canonical pre-hash strings from a parsed ClientHello (lg_hello_t) and, with
 * lg_digest (MD5, SHA-256), the fingerprints themselves: JA3 = MD5 of the JA3 string; JA4 = part
 * a + SHA-256 prefixes of parts b and c, assembled by lg_ja4_format(). lg_ja_fingerprints() does
 * all of it. A blocklist of fingerprints is an lg_ja_set_t (sorted binary keys, bisection).
 *
 * JA3 (salesforce/ja3, README "How it works" and python/ja3.py):
 *   "SSLVersion,Ciphers,Extensions,EllipticCurves,EllipticCurvePointFormats" — the decimal
 *   legacy_version (ClientHello.client_version, not the record version), the cipher suites, the
 *   extension types and the supported_groups in wire order, then the ec_point_formats; values
 *   joined by '-', an absent list leaves its field empty ("769,4-5-10,,,"). GREASE values
 *   (RFC 8701 §2: 0x0A0A, 0x1A1A, ..., 0xFAFA) are removed from every 16-bit list; point formats
 *   are 8-bit and can hold no GREASE value.
 *
 * JA4 (FoxIO-LLC/ja4 technical_details/JA4.md, TLS over TCP only). GREASE is ignored everywhere
 * ("The program needs to ignore GREASE values anywhere it sees them"), signature algorithms
 * included (JA4.md Details; FoxIO-LLC/ja4 issues #60 and #305).
 *   a = "t"
 *       + version: the highest non-GREASE supported_versions entry, or legacy_version when the
 *         extension is absent or holds only GREASE; 0x0304 "13", 0x0303 "12", 0x0302 "11",
 *         0x0301 "10", 0x0300 "s3", 0x0200 and 0x0002 "s2" (the spec's table writes 0x0002, the
 *         reference implementations 0x0200), 0xfeff "d1", 0xfefd "d2", 0xfefc "d3", else "00"
 *       + "d" if the server_name extension (0x0000) is present, else "i"
 *       + cipher count and extension count (non-GREASE; SNI and ALPN counted), 2 digits, capped 99
 *       + ALPN: the first and last characters of the first ALPN protocol name, as is (so "H2"
 *         stays upper-case); "00" without ALPN; a one-byte name gives its character twice; if
 *         the first or the last byte is not ASCII alphanumeric, the first and last characters of
 *         the lower-case hex of the whole name instead (0xAB -> "ab", 0x30 0xAB -> "3b").
 *   b = the non-GREASE cipher suites as 4-digit lower-case hex, sorted ascending, joined by ','
 *       (SCSVs such as 0x00ff are kept; duplicates are kept).
 *   c = the non-GREASE extension types except server_name (0x0000) and ALPN (0x0010), 4-digit
 *       lower-case hex, sorted, joined by ','; then, if there are non-GREASE signature
 *       algorithms, '_' and those in wire order joined by ','. When the sorted extension list is
 *       empty, c is empty.
 *   JA4 = a "_" sha256(b)[0..12) "_" sha256(c)[0..12), where an empty b or c gives
 *         "000000000000" instead of a hash. JA4_r (raw) = a "_" b "_" c.
 *
 * Fail closed: a list the parser truncated (lg_hello_t *_truncated) would give a wrong
 * fingerprint that a blocklist could not match, so both fingerprints refuse it with -EINVAL
 * (JA3: ciphers, extensions, groups, point formats; JA4: ciphers, extensions, signature
 * algorithms, supported versions). ALPN truncation does not matter: only the first name is used,
 * and it is always whole.
 */
#ifndef LG_JA_H
#define LG_JA_H

#include "lg_hello.h"

#define LG_JA3_HEX      32    /* chars of a JA3 fingerprint: MD5 in lower-case hex */
#define LG_JA_SET_MAX   65536 /* entries accepted by one lg_ja_set_build() call */
#define LG_JA_KEY_BYTES 24    /* bytes of one set entry (lg_ja_key_t) */
#define LG_JA_DEC_MAX   5     /* chars of a decimal uint16: "65535" */
#define LG_JA_HEX_ITEM  5     /* chars of one hex entry and its separator: "xxxx," */

/* bytes of the longest JA3 string, NUL included, given lg_hello_t's array sizes: the version,
 * four ',' and each list at its maximum with 5-digit values (3-digit point formats). */
#define LG_JA3_MAX                                                                                 \
    (LG_JA_DEC_MAX + 4 + (LG_HELLO_MAX_CIPHERS * (LG_JA_DEC_MAX + 1) - 1) +                        \
     (LG_HELLO_MAX_EXTS * (LG_JA_DEC_MAX + 1) - 1) +                                               \
     (LG_HELLO_MAX_GROUPS * (LG_JA_DEC_MAX + 1) - 1) + (LG_HELLO_MAX_POINTFMTS * 4 - 1) + 1)

#define LG_JA4_A_LEN    10 /* chars of part a: "t" version(2) sni(1) ciphers(2) exts(2) alpn(2) */
#define LG_JA4_HASH_LEN 12 /* hex chars of each truncated SHA-256 */
#define LG_JA4_LEN      (LG_JA4_A_LEN + 1 + LG_JA4_HASH_LEN + 1 + LG_JA4_HASH_LEN) /* chars: 36 */
/* bytes of part b, NUL included: every cipher kept, "xxxx" joined by ',' */
#define LG_JA4_B_MAX (LG_HELLO_MAX_CIPHERS * LG_JA_HEX_ITEM)
/* bytes of part c, NUL included: every extension kept, '_', every signature algorithm */
#define LG_JA4_C_MAX (LG_HELLO_MAX_EXTS * LG_JA_HEX_ITEM + LG_HELLO_MAX_SIGALGS * LG_JA_HEX_ITEM)
/* bytes of the longest JA4_r (raw) string, NUL included: a "_" b "_" c */
#define LG_JA4_MAX (LG_JA4_A_LEN + 1 + (LG_JA4_B_MAX - 1) + 1 + (LG_JA4_C_MAX - 1) + 1)

/*
 * The three JA4 parts, each NUL-terminated. Plain value type: the caller owns it (it is about
 * 2.2 KiB, so not for a small stack in a hot loop; a connection can hold one). b_len / c_len are
 * strlen(b) / strlen(c); 0 means the part hashes to "000000000000".
 */
typedef struct lg_ja4_parts_s {
    char a[LG_JA4_A_LEN + 1];
    char b[LG_JA4_B_MAX];
    size_t b_len;
    char c[LG_JA4_C_MAX];
    size_t c_len;
} lg_ja4_parts_t;

/* True iff v is one of the 16 GREASE values of RFC 8701 §2 (both bytes equal, low nibble 0xA). */
bool lg_ja_is_grease(uint16_t v);

/*
 * Write the JA3 string of `h` into out[0..cap) with its NUL. Returns the string length (without
 * the NUL), -E2BIG if it does not fit in `cap` (cap >= LG_JA3_MAX always fits), or -EINVAL for
 * NULL arguments or a truncated list (fail closed). On error out is "" when cap > 0.
 */
int lg_ja3_string(const lg_hello_t *h, char *out, size_t cap);

/*
 * Fill `out` with the three JA4 parts of `h` (rules in the file header). Returns 0, or -EINVAL
 * for NULL arguments or a truncated list (fail closed); on error *out is all empty strings.
 */
int lg_ja4_parts(const lg_hello_t *h, lg_ja4_parts_t *out);

/*
 * Assemble the JA4 fingerprint a_hhhhhhhhhhhh_hhhhhhhhhhhh from `p` and the SHA-256 digests of
 * p->b and p->c (32 bytes each; only the first 6 are read, as 12 lower-case hex digits). A part
 * whose length is 0 becomes "000000000000" and its digest is not read (it may be NULL). Writes
 * LG_JA4_LEN chars and a NUL. Returns LG_JA4_LEN, -E2BIG if cap <= LG_JA4_LEN, or -EINVAL for
 * NULL arguments (a needed digest included) or a part a that is not LG_JA4_A_LEN chars.
 */
int lg_ja4_format(const lg_ja4_parts_t *p, const uint8_t *b_sha256, const uint8_t *c_sha256,
                  char *out, size_t cap);

/*
 * Write JA4_r, the raw (unhashed, debugging) form a "_" b "_" c, with its NUL. Returns the length,
 * -E2BIG if it does not fit (cap >= LG_JA4_MAX always fits) or -EINVAL for NULL arguments. On
 * error out is "" when cap > 0.
 */
int lg_ja4_raw(const lg_ja4_parts_t *p, char *out, size_t cap);

/*
 * Both fingerprints of `h`: ja3 = 32 lower-case hex digits of MD5(JA3 string), ja4 = the
 * 36-char a_b_c form (lg_ja4_format over SHA-256 of parts b and c). Each is "" when it cannot be
 * computed (NULL `h`, or a truncated list it reads: fail closed, see above); one may be set while
 * the other is "". Same contract as the shell's former lg_tls_fingerprints(). No allocation;
 * uses about 5 KiB of stack (the JA3 string and the JA4 parts).
 */
void lg_ja_fingerprints(const lg_hello_t *h, char ja3[LG_JA3_HEX + 1], char ja4[LG_JA4_LEN + 1]);

/* Which fingerprints lg_ja_fingerprints_cached computes. */
#define LG_JA_WANT_JA3 0x1
#define LG_JA_WANT_JA4 0x2

#define LG_JA_CACHE_SLOTS 64 /* fingerprints remembered per cache (direct-mapped, a power of 2) */

typedef struct lg_ja_cache_slot_s {
    uint64_t h[2]; /* keyed 128-bit hash of the hello's fingerprint inputs */
    uint8_t have;  /* LG_JA_WANT_* bits whose fingerprint is stored (0 = empty slot) */
    char ja3[LG_JA3_HEX + 1];
    char ja4[LG_JA4_LEN + 1];
} lg_ja_cache_slot_t;

/*
 * A small cache of fingerprints keyed on a hash of everything JA3 and JA4 read from a hello
 * (versions, SNI presence, the cipher, extension, group, point-format, signature-algorithm and
 * supported-version lists with their truncation flags, the ALPN names): the same client
 * software sends the same inputs, so after its first hello a worker finds its fingerprints
 * instead of building the JA3 string and the JA4 parts and hashing them (MD5 + 2 x SHA-256,
 * ~7 us per hello; the lookup is ~50 ns). The hash is keyed with a per-cache secret (two
 * multiply-xorshift lanes of 64 bits): a client that does not know the key cannot make its
 * hello collide with another's to borrow its fingerprint. Owner: one thread (a worker); no lock.
 */
typedef struct lg_ja_cache_s {
    uint64_t key[2];
    uint64_t hits, misses;
    lg_ja_cache_slot_t slots[LG_JA_CACHE_SLOTS];
} lg_ja_cache_t;

/* An empty cache with hashing secret `key` (from a random source). */
void lg_ja_cache_init(lg_ja_cache_t *c, const uint64_t key[2]);

/*
 * lg_ja_fingerprints of `h`, only those in `want` (LG_JA_WANT_*; the others are ""), through
 * the cache (NULL: no cache). A fingerprint that cannot be computed is "" (and cached as such).
 */
void lg_ja_fingerprints_cached(lg_ja_cache_t *c, const lg_hello_t *h, unsigned want,
                               char ja3[LG_JA3_HEX + 1], char ja4[LG_JA4_LEN + 1]);

/*
 * A set of JA3 and/or JA4 fingerprints, for ja3Blocklist / ja4Blocklist.
 *
 * Each entry is stored as a fixed-size binary key: byte 0 the kind (3 or 4); JA3: the 16 digest
 * bytes; JA4: the 10 chars of part a (lower case), then the 6 + 6 bytes behind the two 12-digit
 * hashes; the rest zero. Keys are sorted (memcmp order) and unique, so a lookup is a bisection,
 * O(log n) (16 compares of 24 bytes at LG_JA_SET_MAX), with no allocation.
 *
 * Matching is case-insensitive (symphony §1.6 "Matching is case-insensitive"): lib/config.js
 * lower-cases blocklist entries, while a computed JA4 keeps the ALPN characters' case ("H2"
 * gives "t13d3111HH_..."), so the query is folded to lower case before the lookup.
 *
 * Owner: whoever built it (a config snapshot); freed with lg_ja_set_free(). Read-only after the
 * build, so it can be shared between threads without locks. A zeroed set is a valid empty set.
 */
typedef struct lg_ja_key_s {
    uint8_t b[LG_JA_KEY_BYTES];
} lg_ja_key_t;

typedef struct lg_ja_set_s {
    lg_ja_key_t *keys; /* sorted, unique; NULL when n == 0 */
    size_t n;
    size_t bad; /* after -EINVAL from lg_ja_set_build: index of the first malformed entry */
} lg_ja_set_t;

/*
 * Build a set from n NUL-terminated fingerprint strings (`fps` may be NULL when n is 0). Each
 * entry is either a JA3 (exactly 32 lower-case hex digits) or a JA4 in its a_b_c form, 36 chars,
 * as lib/config.js normalises it: [tqd] [0-9a-z]{2} [di] [0-9]{4} [0-9a-z]{2} '_' 12 lower-case
 * hex '_' 12 lower-case hex. Duplicates are kept once.
 * `s` is overwritten: free a previous set first. Returns 0; -E2BIG when n > LG_JA_SET_MAX;
 * -EINVAL for a NULL or malformed entry, with its index in s->bad (nothing allocated); -ENOMEM.
 * On failure `s` is an empty set that owns nothing.
 */
int lg_ja_set_build(lg_ja_set_t *s, const char *const *fps, size_t n);

/*
 * Is the fingerprint `fp` (a JA3 or JA4 string, any case) in the set? NULL, "" and anything
 * that is not a fingerprint never match. No allocation; reads at most LG_JA4_LEN + 1 bytes of fp.
 */
bool lg_ja_set_contains(const lg_ja_set_t *s, const char *fp);

/* Free what lg_ja_set_build allocated; safe on a zeroed set. Leaves an empty set. */
void lg_ja_set_free(lg_ja_set_t *s);

#endif /* LG_JA_H */
