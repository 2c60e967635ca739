/*
 * lg_auth.h — Basic proxy authentication for connect listeners (pure core: no I/O, no libuv, no
 * OpenSSL; allocation only when a table is built, never per request).
 *
 * What is here: the `$scrypt$` password-hash format, strict decoding of `Basic` credentials
 * (RFC 7617), a constant-time compare, a listener's sorted user table, the fixed 407 text, and a
 * bounded LRU cache of successful verifications. Running scrypt itself is lg_verify's job (on
 * libuv's thread pool, with OpenSSL's EVP_PBE_scrypt).
 *
 * Hash format (one line, no spaces; this module defines it, `legato hash-password` writes it):
 *
 *   $scrypt$ln=<log2 N>,r=<r>,p=<p>$<salt>$<hash>
 *
 *   - ln, r, p: decimal, no sign, no leading zero; ln 1..LG_AUTH_LN_MAX, r 1..LG_AUTH_R_MAX,
 *     p 1..LG_AUTH_P_MAX, and the memory scrypt needs, 128 · r · 2^ln bytes, at most
 *     LG_AUTH_MAX_MEMORY (1 GiB) (RFC 7914 §2, §6).
 *   - salt, hash: base64 (RFC 4648 §4 alphabet) without '=' padding, as in the PHC string
 *     format; unused trailing bits must be zero (one spelling per value). The salt decodes to
 *     LG_AUTH_SALT_MIN..LG_AUTH_SALT_MAX bytes, the hash to LG_AUTH_HASH_MIN..LG_AUTH_HASH_MAX
 *     bytes: the derived key length is the hash's.
 *
 * Credentials (RFC 9110 §11.7.2, RFC 7617 §2): `Basic` (any case) 1*SP token68, the token68 being
 * padded base64 (length a multiple of 4, '=' only at the end, zero trailing bits) of
 * `user-id ":" password`, split at the first colon. The header value is at most
 * LG_HTTP_MAX_AUTH bytes (lg_http flags longer ones), so decoded credentials fit a fixed buffer.
 *
 * Cache: keys are SHA-256(salt ‖ decoded credentials) with a random per-proxy salt, so neither a
 * password nor an unsalted digest of one is ever stored; only successes are inserted. The cache
 * holds LG_AUTH_CACHE_SIZE entries; inserting into a full cache evicts the least recently used.
 *
 * Failure limit (connect.auth.failureLimit): a GCRA token bucket per source, refilled at
 * `per_minute`, holding max(burst, workers) tokens. Every verification that is started takes a
 * token first (lg_auth_throttle_take), so a source cannot run more verifications at once than
 * its bucket holds, however many connections it opens; a success gives the token back
 * (lg_auth_throttle_refund), so only failures stay charged. The bucket holds at least one token
 * per worker because identical credentials in flight are joined per worker: one client's
 * parallel first connections with right credentials start at most one verification on each
 * worker, and all of them must fit. While a source's bucket is empty its credentials are not
 * verified (the caller answers 429), except those already cached as a success or already being
 * verified on the worker. Every verification costs scrypt's CPU and memory, so this bounds both
 * what one source can guess and what it can make the proxy spend. The buckets live in a fixed
 * table of LG_AUTH_FAIL_SLOTS 64-bit words shared by every worker (lock-free: one CAS per take
 * or refund), indexed by a keyed hash of the source: 16 bits of tag and 48 bits of the bucket's
 * theoretical arrival time in µs of the monotonic clock, compared modulo 2^48 (a stored time is
 * never more than 1000 minutes ahead). A source whose slot holds another tag starts with a full
 * bucket and its take claims the slot, resetting the other source's bucket (a success's refund
 * does not give it back); so sources colliding can lift one another's limit (per-source limits
 * do not stop an attacker with many addresses anyway), but a collision never blocks a source.
 */
#ifndef LG_AUTH_H
#define LG_AUTH_H

#include "lg_common.h"
#include "lg_http.h"

#include <stdatomic.h>

#define LG_AUTH_LN_MIN              1    /* log2 N */
#define LG_AUTH_LN_MAX              30   /* log2 N (the memory bound is what usually limits) */
#define LG_AUTH_R_MAX               1024 /* scrypt block size factor */
#define LG_AUTH_P_MAX               16   /* scrypt parallelisation */
#define LG_AUTH_MAX_MEMORY          (1ull << 30) /* bytes: 128 · r · 2^ln at most (1 GiB) */
#define LG_AUTH_SALT_MIN            8            /* bytes of a decoded salt */
#define LG_AUTH_SALT_MAX            64           /* bytes of a decoded salt */
#define LG_AUTH_HASH_MIN            16    /* bytes of a decoded hash (the derived key length) */
#define LG_AUTH_HASH_MAX            64    /* bytes of a decoded hash */
#define LG_AUTH_HASH_TEXT_MAX       256   /* bytes of a whole `$scrypt$` string */
#define LG_AUTH_NAME_MAX            255   /* bytes of a user name */
#define LG_AUTH_MAX_USERS           10000 /* users per listener */
#define LG_AUTH_REALM_MAX           128   /* bytes of a realm */
#define LG_AUTH_CRED_MAX            (LG_HTTP_MAX_AUTH / 4 * 3) /* bytes of decoded credentials */
#define LG_AUTH_CACHE_SIZE          1024  /* cached successes per listener per worker */
#define LG_AUTH_KEY_LEN             32    /* bytes of a cache key (SHA-256) */
#define LG_AUTH_SALT_LEN            32    /* bytes of the per-proxy cache salt */
#define LG_AUTH_RESPONSE_MAX        512   /* bytes of the 407 text */
#define LG_AUTH_FAIL_SLOTS          4096  /* failure buckets per listener (8 bytes each) */
#define LG_AUTH_FAIL_PER_MINUTE_MAX 60000 /* failureLimit.perMinute at most */
#define LG_AUTH_FAIL_BURST_MAX      1000  /* failureLimit.burst at most */
#define LG_AUTH_FAIL_WORKERS_MAX    1000  /* workers a bucket is widened for, at most */

/* A parsed `$scrypt$` hash: the parameters and the expected derived key. */
typedef struct lg_scrypt_s {
    unsigned ln; /* N = 2^ln */
    uint32_t r, p;
    size_t salt_len, hash_len;
    uint8_t salt[LG_AUTH_SALT_MAX];
    uint8_t hash[LG_AUTH_HASH_MAX];
} lg_scrypt_t;

/* Failed verifications per source (see "Failure limit" above). slots == NULL: no limit. */
typedef struct lg_auth_throttle_s {
    uint64_t interval_us;    /* T: µs per failure refilled, 60,000,000 / per_minute, rounded */
    uint64_t tolerance_us;   /* tau: (max(burst, workers) - 1) * T */
    _Atomic uint64_t *slots; /* LG_AUTH_FAIL_SLOTS words (owned) */
} lg_auth_throttle_t;

typedef struct lg_auth_user_s {
    char name[LG_AUTH_NAME_MAX + 1]; /* NUL-terminated */
    size_t name_len;
    lg_scrypt_t hash;
} lg_auth_user_t;

/*
 * A listener's authentication table. Owner: the listener's compiled config (lg_config), built
 * once and immutable while the proxy runs (workers read it without locks).
 */
typedef struct lg_auth_s {
    lg_auth_user_t *users; /* sorted by name (bytes), no duplicates */
    size_t n_users;
    lg_scrypt_t dummy; /* an unknown user's password is checked against this: the cost of the
                          first configured user, a random salt and hash nothing matches */
    uint8_t cache_salt[LG_AUTH_SALT_LEN]; /* random per proxy */
    char response[LG_AUTH_RESPONSE_MAX];  /* the 407 text, with the realm */
    size_t response_len;
    lg_auth_throttle_t throttle; /* connect.auth.failureLimit (mutable words, shared) */
} lg_auth_t;

/* Decoded Basic credentials, in a fixed buffer (wipe with lg_auth_wipe after use). */
typedef struct lg_auth_cred_s {
    uint8_t buf[LG_AUTH_CRED_MAX]; /* user ":" password */
    size_t len;
    size_t user_len; /* the user is buf[0 .. user_len) */
    size_t pass_off; /* the password is buf[pass_off .. len) */
} lg_auth_cred_t;

/* Why credentials were refused before any hash was computed. */
enum {
    LG_AUTH_OK = 0,
    LG_AUTH_E_MISSING,  /* no Proxy-Authorization field */
    LG_AUTH_E_TOO_LONG, /* value over LG_HTTP_MAX_AUTH bytes */
    LG_AUTH_E_SCHEME,   /* not "Basic" followed by a space */
    LG_AUTH_E_BASE64,   /* the token is not strict padded base64 */
    LG_AUTH_E_COLON,    /* no colon in the decoded credentials */
};

/*
 * Parse a `$scrypt$` string of `len` bytes. Returns 0 with *out filled, or -EINVAL with *why a
 * short static text ("salt is not unpadded base64", "128 * r * 2^ln exceeds 1 GiB", ...).
 */
int lg_auth_parse_hash(const char *s, size_t len, lg_scrypt_t *out, const char **why);

/*
 * Decode a Proxy-Authorization value (`v`, `len` bytes, already trimmed) as Basic credentials.
 * Returns LG_AUTH_OK with *out filled, or an LG_AUTH_E_* reason (out then holds no secret).
 */
int lg_auth_parse_basic(const uint8_t *v, size_t len, lg_auth_cred_t *out);

/*
 * Strict base64 (RFC 4648 §4): `padded` requires '=' padding to a multiple of 4, otherwise no
 * '=' may appear. Unused trailing bits must be zero. Returns the decoded length, or -EINVAL
 * (bad input) / -ENOSPC (more than `cap` bytes).
 */
int lg_auth_b64_decode(const uint8_t *in, size_t n, bool padded, uint8_t *out, size_t cap);

/* Unpadded base64 of n bytes into out (room for 4 * ceil(n / 3) + 1); returns its length. */
size_t lg_auth_b64_encode(const uint8_t *in, size_t n, char *out);

/* Compare n bytes in time that depends on n only. */
bool lg_auth_ct_equal(const uint8_t *a, const uint8_t *b, size_t n);

/* Overwrite n bytes with zeros in a way the compiler cannot elide. */
void lg_auth_wipe(void *p, size_t n);

/*
 * Sort a user table by name and check names are unique. Returns 0, or -EEXIST with *dup the
 * index (after sorting) of a duplicated name.
 */
int lg_auth_sort_users(lg_auth_user_t *users, size_t n, size_t *dup);

/* The user with that name, or NULL. */
const lg_auth_user_t *lg_auth_find(const lg_auth_t *a, const uint8_t *name, size_t len);

/*
 * Write the fixed 407 response for a realm (printable ASCII without '"' and '\', at most
 * LG_AUTH_REALM_MAX bytes) into out (LG_AUTH_RESPONSE_MAX bytes). Returns its length, or
 * -EINVAL for a bad realm.
 */
int lg_auth_response(const char *realm, char *out);

/* The cache key of decoded credentials under a salt. */
void lg_auth_cache_key(const uint8_t salt[LG_AUTH_SALT_LEN], const lg_auth_cred_t *cred,
                       uint8_t key[LG_AUTH_KEY_LEN]);

/* A bounded LRU set of keys. Owner: lg_verify's per-worker state; nothing inside to free. */
#define LG_AUTH_NIL 0xffffu
typedef struct lg_auth_cache_entry_s {
    uint8_t key[LG_AUTH_KEY_LEN];
    uint16_t prev, next; /* LRU list (head: most recent) */
    uint16_t chain;      /* next entry in the same bucket */
} lg_auth_cache_entry_t;

typedef struct lg_auth_cache_s {
    lg_auth_cache_entry_t e[LG_AUTH_CACHE_SIZE];
    uint16_t bucket[LG_AUTH_CACHE_SIZE]; /* first entry of each bucket (by the key's first bytes) */
    uint16_t head, tail;
    size_t n;
} lg_auth_cache_t;

void lg_auth_cache_init(lg_auth_cache_t *c);

/* Is the key cached? A hit becomes the most recently used. */
bool lg_auth_cache_lookup(lg_auth_cache_t *c, const uint8_t key[LG_AUTH_KEY_LEN]);

/* Insert a key (a no-op when present, apart from refreshing it); evicts the LRU when full. */
void lg_auth_cache_insert(lg_auth_cache_t *c, const uint8_t key[LG_AUTH_KEY_LEN]);

/*
 * Allocate a throttle for per_minute (1..LG_AUTH_FAIL_PER_MINUTE_MAX) failures a minute, burst
 * (1..LG_AUTH_FAIL_BURST_MAX) at once, for `workers` worker threads (0..LG_AUTH_FAIL_WORKERS_MAX;
 * a bucket holds max(burst, workers)). Returns 0, -EINVAL or -ENOMEM (*t zeroed on error).
 */
int lg_auth_throttle_init(lg_auth_throttle_t *t, unsigned per_minute, unsigned burst,
                          unsigned workers);

/* Free a throttle's table (a zeroed or already freed throttle is fine). */
void lg_auth_throttle_free(lg_auth_throttle_t *t);

/*
 * Take a token for one verification from the source with keyed hash `h` at now_us (a monotonic
 * clock, µs). False when its bucket is empty (nothing is changed); true (always, without a
 * table) otherwise. Thread-safe (CAS); the table's words are the only state it writes.
 */
bool lg_auth_throttle_take(const lg_auth_throttle_t *t, uint64_t h, uint64_t now_us);

/* Give back a token taken for a verification that succeeded or never ran. Thread-safe (CAS). */
void lg_auth_throttle_refund(const lg_auth_throttle_t *t, uint64_t h, uint64_t now_us);

#endif /* LG_AUTH_H */
