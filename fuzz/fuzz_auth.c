/*
 * fuzz_auth.c — libFuzzer target for Basic proxy authentication's pure core (src/lg_auth.c).
 *
 * Input: the first byte picks what the rest is fed to:
 *   0: a `$scrypt$` hash text (lg_auth_parse_hash);
 *   1: a Proxy-Authorization value (lg_auth_parse_basic);
 *   2: base64 text, padded and unpadded (lg_auth_b64_decode);
 *   3: a sequence of cache operations, 3 bytes each (op, key id hi, key id lo).
 * Checks, aborting on any failure:
 *   - an accepted hash has parameters within their limits and 128 · r · 2^ln <= 1 GiB, salt and
 *     hash lengths within theirs, and re-encoding it gives back the input exactly (one spelling);
 *   - accepted credentials split at the first colon, fit the fixed buffer, and re-encoding the
 *     decoded bytes gives the token back; a refusal leaves no bytes behind;
 *   - a decoded base64 re-encodes to the same text (canonical), in both modes;
 *   - the cache never holds more than LG_AUTH_CACHE_SIZE keys, a key just inserted is found, and
 *     it agrees with a simple model (a recency list) on every lookup.
 */
#include "../src/lg_digest.c"
#include "../src/lg_auth.c"

#include <stdio.h>
#include <stdlib.h>

#define FUZZ_ASSERT(cond)                                                                          \
    do {                                                                                           \
        if (!(cond)) {                                                                             \
            fprintf(stderr, "fuzz_auth: check failed at line %d: %s\n", __LINE__, #cond);          \
            abort();                                                                               \
        }                                                                                          \
    } while (0)

#define FUZZ_KEYS 2048 /* distinct key ids in cache runs */

static void fuzz_hash(const uint8_t *b, size_t n)
{
    lg_scrypt_t h;
    const char *why = NULL;
    if (lg_auth_parse_hash((const char *)b, n, &h, &why) != 0) {
        FUZZ_ASSERT(why != NULL && why[0] != '\0');
        return;
    }
    FUZZ_ASSERT(h.ln >= LG_AUTH_LN_MIN && h.ln <= LG_AUTH_LN_MAX);
    FUZZ_ASSERT(h.r >= 1 && h.r <= LG_AUTH_R_MAX && h.p >= 1 && h.p <= LG_AUTH_P_MAX);
    FUZZ_ASSERT(128ull * h.r * (1ull << h.ln) <= LG_AUTH_MAX_MEMORY);
    FUZZ_ASSERT(h.salt_len >= LG_AUTH_SALT_MIN && h.salt_len <= LG_AUTH_SALT_MAX);
    FUZZ_ASSERT(h.hash_len >= LG_AUTH_HASH_MIN && h.hash_len <= LG_AUTH_HASH_MAX);
    char text[LG_AUTH_HASH_TEXT_MAX + 1], s[100], d[100];
    lg_auth_b64_encode(h.salt, h.salt_len, s);
    lg_auth_b64_encode(h.hash, h.hash_len, d);
    int len = snprintf(text, sizeof(text), "$scrypt$ln=%u,r=%u,p=%u$%s$%s", h.ln, (unsigned)h.r,
                       (unsigned)h.p, s, d);
    FUZZ_ASSERT(len > 0 && (size_t)len == n && memcmp(text, b, n) == 0);
}

static void fuzz_basic(const uint8_t *b, size_t n)
{
    lg_auth_cred_t c;
    int r = lg_auth_parse_basic(b, n, &c);
    if (r != LG_AUTH_OK) {
        FUZZ_ASSERT(r >= LG_AUTH_E_TOO_LONG && r <= LG_AUTH_E_COLON);
        FUZZ_ASSERT(c.len == 0);
        if (n > LG_HTTP_MAX_AUTH) FUZZ_ASSERT(r == LG_AUTH_E_TOO_LONG);
        return;
    }
    FUZZ_ASSERT(n <= LG_HTTP_MAX_AUTH && c.len <= sizeof(c.buf));
    FUZZ_ASSERT(c.user_len < c.len && c.buf[c.user_len] == ':' && c.pass_off == c.user_len + 1);
    FUZZ_ASSERT(memchr(c.buf, ':', c.user_len) == NULL);
    /* The token, re-encoded with padding, is what followed "Basic" and the spaces. */
    size_t i = 5;
    while (i < n && b[i] == ' ')
        i++;
    char text[LG_HTTP_MAX_AUTH + 4];
    size_t tl = lg_auth_b64_encode(c.buf, c.len, text);
    while (tl % 4 != 0)
        text[tl++] = '=';
    FUZZ_ASSERT(tl == n - i && memcmp(text, b + i, tl) == 0);
}

static void fuzz_b64(const uint8_t *b, size_t n)
{
    static uint8_t out[40000];
    static char text[60000];
    for (int padded = 0; padded <= 1; padded++) {
        int r = lg_auth_b64_decode(b, n, padded != 0, out, sizeof(out));
        if (r < 0) {
            FUZZ_ASSERT(r == -EINVAL || r == -ENOSPC);
            continue;
        }
        size_t tl = lg_auth_b64_encode(out, (size_t)r, text);
        if (padded) {
            while (tl % 4 != 0)
                text[tl++] = '=';
        }
        FUZZ_ASSERT(tl == n && memcmp(text, b, n) == 0);
    }
}

static void fuzz_cache(const uint8_t *b, size_t n)
{
    static lg_auth_cache_t cache;
    static uint16_t model[LG_AUTH_CACHE_SIZE]; /* key ids, most recent first */
    size_t m = 0;
    lg_auth_cache_init(&cache);
    for (size_t i = 0; i + 3 <= n; i += 3) {
        uint16_t id = (uint16_t)(((unsigned)b[i + 1] << 8 | b[i + 2]) % FUZZ_KEYS);
        uint8_t key[LG_AUTH_KEY_LEN];
        lg_sha256(&id, sizeof(id), key);
        size_t at = m;
        for (size_t k = 0; k < m; k++) {
            if (model[k] == id) at = k;
        }
        bool insert = b[i] & 1;
        bool hit = lg_auth_cache_lookup(&cache, key);
        FUZZ_ASSERT(hit == (at < m));
        if (hit || insert) {
            /* Move (or add) id to the front; a full model drops its last entry. */
            if (at == m) {
                if (m < LG_AUTH_CACHE_SIZE) m++;
                at = m - 1;
            }
            memmove(model + 1, model, at * sizeof(model[0]));
            model[0] = id;
        }
        if (insert) {
            lg_auth_cache_insert(&cache, key);
            FUZZ_ASSERT(lg_auth_cache_lookup(&cache, key));
        }
        FUZZ_ASSERT(cache.n == m && cache.n <= LG_AUTH_CACHE_SIZE);
    }
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (size == 0) return 0;
    /* An exact-size copy, so that ASan reports any read at or past the end. */
    uint8_t *b = malloc(size);
    if (b == NULL) return 0;
    memcpy(b, data + 1, size - 1);
    switch (data[0] % 4) {
    case 0:
        fuzz_hash(b, size - 1);
        break;
    case 1:
        fuzz_basic(b, size - 1);
        break;
    case 2:
        fuzz_b64(b, size - 1);
        break;
    default:
        fuzz_cache(b, size - 1);
        break;
    }
    free(b);
    return 0;
}
