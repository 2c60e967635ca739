/*
 * test_auth.c — unit tests of Basic proxy authentication's pure core (src/lg_auth.c).
 *
 * Covers: the `$scrypt$` format (good and bad vectors; every limit at max and max + 1: ln 30/31,
 * r 1024/1025, p 16/17, memory 1 GiB / 2 GiB, salt 8/7 and 64/65 bytes, hash 16/15 and 64/65
 * bytes, text 256/257 bytes), a hash made by Node's crypto.scryptSync checked with OpenSSL's
 * EVP_PBE_scrypt (the engine's own call), strict base64 both ways (padding, trailing bits,
 * alphabet, round trips of every length 0..70), Basic credentials (scheme case, spaces, no
 * colon, empty parts, the 1024/1025-byte header limit), the constant-time compare, the sorted
 * user table (lookup, duplicates), the 407 text and its realm rules (128/129 bytes), and the
 * LRU cache (hits, refresh, eviction of the least recently used at 1024 + 1 entries, bucket
 * chains after many evictions), and the failure limit on a simulated clock (GCRA takes: burst,
 * refill, refunds never beyond a full bucket, other and colliding sources, 1/60000 per minute and
 * burst 1000 at max and max + 1, µs intervals, one token per worker at least, the 48-bit clock's
 * wrap, and four threads released together: exactly burst takes round after round, every
 * refund counted, take/refund pairs that leave the bucket unchanged).
 */
/* LG_TEST_LIBS: -lcrypto -lpthread */
#include "../../src/lg_digest.c"
#include "../../src/lg_auth.c"

#include <openssl/evp.h>
#include <pthread.h>

#include "lg_test.h"

#define S(lit) lit, sizeof(lit) - 1

/* Made with: crypto.scryptSync('correct horse', 'legato-salt-0001', 32, { N: 16, r: 8, p: 1 }) */
static const char node_hash[] =
    "$scrypt$ln=4,r=8,p=1$bGVnYXRvLXNhbHQtMDAwMQ$HPWl3luOPVCLz1ms1c40XC/ZJHcty+SmgYBJ+j8VHVc";

static int parse(const char *s, const char **why)
{
    lg_scrypt_t h;
    return lg_auth_parse_hash(s, strlen(s), &h, why);
}

LG_TEST(test_hash_good)
{
    lg_scrypt_t h;
    const char *why = NULL;
    CHECK_EQ_INT(lg_auth_parse_hash(S(node_hash), &h, &why), 0);
    CHECK_EQ_INT(h.ln, 4);
    CHECK_EQ_INT(h.r, 8);
    CHECK_EQ_INT(h.p, 1);
    CHECK_EQ_INT(h.salt_len, 16);
    CHECK(memcmp(h.salt, "legato-salt-0001", 16) == 0);
    CHECK_EQ_INT(h.hash_len, 32);

    /* The engine's derivation (lg_verify) of the right password matches; a wrong one does not. */
    uint8_t out[32];
    CHECK_EQ_INT(EVP_PBE_scrypt("correct horse", 13, h.salt, h.salt_len, 1ull << h.ln, h.r, h.p, 0,
                                out, sizeof(out)),
                 1);
    CHECK(lg_auth_ct_equal(out, h.hash, 32));
    CHECK_EQ_INT(EVP_PBE_scrypt("correct horsf", 13, h.salt, h.salt_len, 1ull << h.ln, h.r, h.p, 0,
                                out, sizeof(out)),
                 1);
    CHECK(!lg_auth_ct_equal(out, h.hash, 32));
}

typedef struct bad_hash_s {
    const char *text;
    const char *why;
} bad_hash_t;

LG_TEST(test_hash_bad)
{
    static const bad_hash_t bad[] = {
        {"", "it does not start with '$scrypt$'"},
        {"$2b$10$abcdefghijklmnopqrstuv", "it does not start with '$scrypt$'"},
        {"$SCRYPT$ln=4,r=8,p=1$AAAAAAAAAAA$AAAAAAAAAAAAAAAAAAAAAA",
         "it does not start with '$scrypt$'"},
        {"$scrypt$ln=0,r=8,p=1$AAAAAAAAAAA$AAAAAAAAAAAAAAAAAAAAAA",
         "parameters must be 'ln=<1-30>,r=<1-1024>,p=<1-16>'"},
        {"$scrypt$ln=04,r=8,p=1$AAAAAAAAAAA$AAAAAAAAAAAAAAAAAAAAAA",
         "parameters must be 'ln=<1-30>,r=<1-1024>,p=<1-16>'"},
        {"$scrypt$r=8,ln=4,p=1$AAAAAAAAAAA$AAAAAAAAAAAAAAAAAAAAAA",
         "parameters must be 'ln=<1-30>,r=<1-1024>,p=<1-16>'"},
        {"$scrypt$ln=4,r=8,p=1,x=2$AAAAAAAAAAA$AAAAAAAAAAAAAAAAAAAAAA",
         "parameters must be 'ln=<1-30>,r=<1-1024>,p=<1-16>'"},
        {"$scrypt$ln=4,r=+8,p=1$AAAAAAAAAAA$AAAAAAAAAAAAAAAAAAAAAA",
         "parameters must be 'ln=<1-30>,r=<1-1024>,p=<1-16>'"},
        {"$scrypt$ln=4,r=8,p=0$AAAAAAAAAAA$AAAAAAAAAAAAAAAAAAAAAA",
         "parameters must be 'ln=<1-30>,r=<1-1024>,p=<1-16>'"},
        {"$scrypt$ln=4,r=0,p=1$AAAAAAAAAAA$AAAAAAAAAAAAAAAAAAAAAA",
         "parameters must be 'ln=<1-30>,r=<1-1024>,p=<1-16>'"},
        {"$scrypt$ln=4,r=8,p=1$AAAAAAAAAAA", "no '$' between salt and hash"},
        {"$scrypt$ln=4,r=8,p=1$AAAAAAAAAA=$AAAAAAAAAAAAAAAAAAAAAA", "salt is not unpadded base64"},
        {"$scrypt$ln=4,r=8,p=1$AAAAAAAAAAB$AAAAAAAAAAAAAAAAAAAAAA", "salt is not unpadded base64"},
        {"$scrypt$ln=4,r=8,p=1$AAAAAAAA-AA$AAAAAAAAAAAAAAAAAAAAAA", "salt is not unpadded base64"},
        {"$scrypt$ln=4,r=8,p=1$AAAAAAAAAAA$AAAAAAAAAAAAAAAAAAAAAA==",
         "hash is not unpadded base64"},
        {"$scrypt$ln=4,r=8,p=1$AAAAAAAAAAA$AAAAAAAAAAAAAAAAAAAAAA$", "hash is not unpadded base64"},
        {"$scrypt$ln=4,r=8,p=1$AAAAAAAAAAA$AAAAAAAAAAAAAAAAAAAAAB", "hash is not unpadded base64"},
        {"$scrypt$ln=4,r=8,p=1$AAAAAAAAAAA$AAAAAAAAAAAAAAAAAAAA ", "hash is not unpadded base64"},
    };
    for (size_t i = 0; i < LG_ARRAY_SIZE(bad); i++) {
        const char *why = NULL;
        CHECK_ROW(parse(bad[i].text, &why) == -EINVAL, bad[i].text);
        CHECK_ROW(why != NULL && strcmp(why, bad[i].why) == 0, bad[i].text);
    }
}

/* A hash text with these parameters, salt and hash lengths (bytes of zeros). */
static void make_hash(char *out, size_t cap, unsigned ln, unsigned r, unsigned p, size_t salt,
                      size_t hash)
{
    uint8_t zeros[LG_AUTH_HASH_MAX + 8] = {0};
    char s[128], h[128];
    lg_auth_b64_encode(zeros, salt, s);
    lg_auth_b64_encode(zeros, hash, h);
    snprintf(out, cap, "$scrypt$ln=%u,r=%u,p=%u$%s$%s", ln, r, p, s, h);
}

LG_TEST(test_hash_limits)
{
    char t[512];
    const char *why = NULL;
    /* ln: 30 is the largest accepted by the grammar (with r = 1 it is 128 GiB: refused by the
     * memory bound); 31 is not a parameter at all. */
    make_hash(t, sizeof(t), 23, 1, 1, 16, 32); /* 128 · 1 · 2^23 = 1 GiB exactly */
    CHECK_EQ_INT(parse(t, &why), 0);
    make_hash(t, sizeof(t), 24, 1, 1, 16, 32); /* 2 GiB */
    CHECK_EQ_INT(parse(t, &why), -EINVAL);
    CHECK(strcmp(why, "128 * r * 2^ln exceeds 1 GiB") == 0);
    make_hash(t, sizeof(t), 13, 1024, 1, 16, 32); /* 128 · 1024 · 2^13 = 1 GiB */
    CHECK_EQ_INT(parse(t, &why), 0);
    make_hash(t, sizeof(t), 14, 1024, 1, 16, 32);
    CHECK_EQ_INT(parse(t, &why), -EINVAL);
    CHECK(strcmp(why, "128 * r * 2^ln exceeds 1 GiB") == 0);
    make_hash(t, sizeof(t), 30, 1, 1, 16, 32);
    CHECK_EQ_INT(parse(t, &why), -EINVAL);
    CHECK(strcmp(why, "128 * r * 2^ln exceeds 1 GiB") == 0);
    make_hash(t, sizeof(t), 31, 1, 1, 16, 32);
    CHECK_EQ_INT(parse(t, &why), -EINVAL);
    CHECK(strstr(why, "parameters") != NULL);
    make_hash(t, sizeof(t), 1, 1025, 1, 16, 32);
    CHECK_EQ_INT(parse(t, &why), -EINVAL);
    CHECK(strstr(why, "parameters") != NULL);
    make_hash(t, sizeof(t), 1, 1024, 16, 16, 32);
    CHECK_EQ_INT(parse(t, &why), 0);
    make_hash(t, sizeof(t), 1, 1, 17, 16, 32);
    CHECK_EQ_INT(parse(t, &why), -EINVAL);
    CHECK(strstr(why, "parameters") != NULL);
    /* Salt 8..64, hash 16..64 bytes. */
    make_hash(t, sizeof(t), 4, 8, 1, 8, 16);
    CHECK_EQ_INT(parse(t, &why), 0);
    make_hash(t, sizeof(t), 4, 8, 1, 7, 32);
    CHECK_EQ_INT(parse(t, &why), -EINVAL);
    CHECK(strcmp(why, "salt must be 8-64 bytes") == 0);
    make_hash(t, sizeof(t), 4, 8, 1, 64, 64);
    CHECK_EQ_INT(parse(t, &why), 0);
    make_hash(t, sizeof(t), 4, 8, 1, 65, 32);
    CHECK_EQ_INT(parse(t, &why), -EINVAL);
    CHECK(strcmp(why, "salt must be 8-64 bytes") == 0);
    make_hash(t, sizeof(t), 4, 8, 1, 16, 15);
    CHECK_EQ_INT(parse(t, &why), -EINVAL);
    CHECK(strcmp(why, "hash must be 16-64 bytes") == 0);
    make_hash(t, sizeof(t), 4, 8, 1, 16, 65);
    CHECK_EQ_INT(parse(t, &why), -EINVAL);
    CHECK(strcmp(why, "hash must be 16-64 bytes") == 0);
    /* Text length 256 / 257: the longest valid text is shorter, so pad a valid one's parameters
     * is not possible; check the length rule on its own. */
    char longt[LG_AUTH_HASH_TEXT_MAX + 2];
    memset(longt, 'A', sizeof(longt));
    memcpy(longt, "$scrypt$", 8);
    lg_scrypt_t h;
    CHECK_EQ_INT(lg_auth_parse_hash(longt, LG_AUTH_HASH_TEXT_MAX + 1, &h, &why), -EINVAL);
    CHECK(strcmp(why, "longer than 256 bytes") == 0);
    CHECK_EQ_INT(lg_auth_parse_hash(longt, LG_AUTH_HASH_TEXT_MAX, &h, &why), -EINVAL);
    CHECK(strcmp(why, "longer than 256 bytes") != 0);
}

LG_TEST(test_base64)
{
    uint8_t out[128], in[80];
    char text[128];
    for (size_t i = 0; i < sizeof(in); i++)
        in[i] = (uint8_t)(i * 37 + 11);
    for (size_t n = 0; n <= 70; n++) {
        size_t tl = lg_auth_b64_encode(in, n, text);
        CHECK_EQ_INT(lg_auth_b64_decode((uint8_t *)text, tl, false, out, sizeof(out)), (int)n);
        CHECK(memcmp(in, out, n) == 0);
        /* The padded form decodes the same in padded mode only. */
        char padded[132];
        memcpy(padded, text, tl);
        size_t pl = tl;
        while (pl % 4 != 0)
            padded[pl++] = '=';
        CHECK_EQ_INT(lg_auth_b64_decode((uint8_t *)padded, pl, true, out, sizeof(out)), (int)n);
        CHECK(memcmp(in, out, n) == 0);
        if (pl != tl) {
            CHECK_EQ_INT(lg_auth_b64_decode((uint8_t *)padded, pl, false, out, sizeof(out)),
                         -EINVAL);
            CHECK_EQ_INT(lg_auth_b64_decode((uint8_t *)text, tl, true, out, sizeof(out)), -EINVAL);
        }
    }
    CHECK_EQ_INT(lg_auth_b64_decode((const uint8_t *)"QQ==", 4, true, out, 1), 1);
    CHECK_EQ_INT(lg_auth_b64_decode((const uint8_t *)"QR==", 4, true, out, 1), -EINVAL);
    CHECK_EQ_INT(lg_auth_b64_decode((const uint8_t *)"QUI=", 4, true, out, 1), -ENOSPC);
    CHECK_EQ_INT(lg_auth_b64_decode((const uint8_t *)"Q===", 4, true, out, 8), -EINVAL);
    CHECK_EQ_INT(lg_auth_b64_decode((const uint8_t *)"Q=Q=", 4, true, out, 8), -EINVAL);
    CHECK_EQ_INT(lg_auth_b64_decode((const uint8_t *)"=QQQ", 4, true, out, 8), -EINVAL);
    CHECK_EQ_INT(lg_auth_b64_decode((const uint8_t *)"QUJD", 4, true, out, 8), 3);
    CHECK_EQ_INT(lg_auth_b64_decode((const uint8_t *)"QU JD", 5, false, out, 8), -EINVAL);
    CHECK_EQ_INT(lg_auth_b64_decode((const uint8_t *)"QU_D", 4, false, out, 8), -EINVAL);
    CHECK_EQ_INT(lg_auth_b64_decode((const uint8_t *)"", 0, true, out, 8), 0);
}

typedef struct basic_s {
    const char *name;
    const char *value;
    size_t len;
    int result;
    const char *user, *pass;
} basic_t;

LG_TEST(test_basic)
{
    static const basic_t rows[] = {
        {"plain", S("Basic YWxpY2U6Y29ycmVjdCBob3JzZQ=="), LG_AUTH_OK, "alice", "correct horse"},
        {"scheme case", S("bAsIc YWxpY2U6Y29ycmVjdCBob3JzZQ=="), LG_AUTH_OK, "alice",
         "correct horse"},
        {"several spaces", S("Basic   YWxpY2U6eA=="), LG_AUTH_OK, "alice", "x"},
        {"empty password", S("Basic YWxpY2U6"), LG_AUTH_OK, "alice", ""},
        {"empty user", S("Basic OnB3"), LG_AUTH_OK, "", "pw"},
        {"colon in password", S("Basic YTpiOmM="), LG_AUTH_OK, "a", "b:c"},
        {"no colon", S("Basic YWxpY2U="), LG_AUTH_E_COLON, NULL, NULL},
        {"empty token", S("Basic "), LG_AUTH_E_COLON, NULL, NULL},
        {"scheme alone", S("Basic"), LG_AUTH_E_SCHEME, NULL, NULL},
        {"Bearer", S("Bearer YWxpY2U6eA=="), LG_AUTH_E_SCHEME, NULL, NULL},
        {"Digest", S("Digest username=\"a\""), LG_AUTH_E_SCHEME, NULL, NULL},
        {"tab after scheme", S("Basic\tYWxpY2U6eA=="), LG_AUTH_E_SCHEME, NULL, NULL},
        {"Basicx", S("BasicxYWxpY2U6eA=="), LG_AUTH_E_SCHEME, NULL, NULL},
        {"unpadded", S("Basic YWxpY2U6eA"), LG_AUTH_E_BASE64, NULL, NULL},
        {"bad byte", S("Basic YWxp*2U6eA=="), LG_AUTH_E_BASE64, NULL, NULL},
        {"trailing bits", S("Basic YWxpY2U6eB=="), LG_AUTH_E_BASE64, NULL, NULL},
        {"trailing space", S("Basic YWxpY2U6eA== "), LG_AUTH_E_BASE64, NULL, NULL},
        {"url-safe alphabet", S("Basic YWxpY2U6_-8="), LG_AUTH_E_BASE64, NULL, NULL},
    };
    for (size_t i = 0; i < LG_ARRAY_SIZE(rows); i++) {
        lg_auth_cred_t c;
        const basic_t *r = &rows[i];
        CHECK_ROW(lg_auth_parse_basic((const uint8_t *)r->value, r->len, &c) == r->result, r->name);
        if (r->result != LG_AUTH_OK) {
            CHECK_ROW(c.len == 0, r->name);
            continue;
        }
        CHECK_ROW(c.user_len == strlen(r->user) && memcmp(c.buf, r->user, c.user_len) == 0,
                  r->name);
        CHECK_ROW(c.len - c.pass_off == strlen(r->pass) &&
                      memcmp(c.buf + c.pass_off, r->pass, c.len - c.pass_off) == 0,
                  r->name);
    }
}

LG_TEST(test_basic_header_limit)
{
    /* "Basic " + token: a value of exactly LG_HTTP_MAX_AUTH bytes decodes into the fixed buffer;
     * one more byte is refused before decoding. */
    char v[LG_HTTP_MAX_AUTH + 8];
    uint8_t raw[LG_AUTH_CRED_MAX];
    memcpy(v, "Basic ", 6);
    size_t tok = (LG_HTTP_MAX_AUTH - 6) / 4 * 4; /* 1016 */
    size_t rawlen = tok / 4 * 3;
    memset(raw, 'p', rawlen);
    raw[1] = ':';
    lg_auth_b64_encode(raw, rawlen, v + 6);
    size_t len = 6 + tok;
    /* Pad with spaces between scheme and token to reach exactly 1024 bytes. */
    size_t spaces = LG_HTTP_MAX_AUTH - len;
    memmove(v + 6 + spaces, v + 6, tok);
    memset(v + 6, ' ', spaces);
    len = LG_HTTP_MAX_AUTH;
    lg_auth_cred_t c;
    CHECK_EQ_INT(lg_auth_parse_basic((uint8_t *)v, len, &c), LG_AUTH_OK);
    CHECK_EQ_INT(c.len, rawlen);
    CHECK_EQ_INT(c.user_len, 1);
    memmove(v + 7, v + 6, len - 6);
    CHECK_EQ_INT(lg_auth_parse_basic((uint8_t *)v, len + 1, &c), LG_AUTH_E_TOO_LONG);
}

LG_TEST(test_ct_equal_and_wipe)
{
    uint8_t a[32], b[32];
    memset(a, 7, sizeof(a));
    memset(b, 7, sizeof(b));
    CHECK(lg_auth_ct_equal(a, b, 32));
    CHECK(lg_auth_ct_equal(a, b, 0));
    for (size_t i = 0; i < 32; i++) {
        b[i] ^= 0x80;
        CHECK(!lg_auth_ct_equal(a, b, 32));
        b[i] ^= 0x80;
    }
    lg_auth_wipe(a, sizeof(a));
    for (size_t i = 0; i < 32; i++)
        CHECK(a[i] == 0);
}

LG_TEST(test_user_table)
{
    lg_auth_user_t users[5];
    static const char *const names[] = {"mallory", "alice", "bob", "al", "alicea"};
    memset(users, 0, sizeof(users));
    for (size_t i = 0; i < 5; i++) {
        snprintf(users[i].name, sizeof(users[i].name), "%s", names[i]);
        users[i].name_len = strlen(names[i]);
    }
    size_t dup = 99;
    CHECK_EQ_INT(lg_auth_sort_users(users, 5, &dup), 0);
    CHECK(strcmp(users[0].name, "al") == 0 && strcmp(users[4].name, "mallory") == 0);
    lg_auth_t a;
    memset(&a, 0, sizeof(a));
    a.users = users;
    a.n_users = 5;
    for (size_t i = 0; i < 5; i++) {
        const lg_auth_user_t *u = lg_auth_find(&a, (const uint8_t *)names[i], strlen(names[i]));
        CHECK_ROW(u != NULL && strcmp(u->name, names[i]) == 0, names[i]);
    }
    CHECK(lg_auth_find(&a, (const uint8_t *)"ali", 3) == NULL);
    CHECK(lg_auth_find(&a, (const uint8_t *)"alic", 4) == NULL);
    CHECK(lg_auth_find(&a, (const uint8_t *)"", 0) == NULL);
    CHECK(lg_auth_find(&a, (const uint8_t *)"zed", 3) == NULL);
    snprintf(users[2].name, sizeof(users[2].name), "al");
    users[2].name_len = 2;
    CHECK_EQ_INT(lg_auth_sort_users(users, 5, &dup), -EEXIST);
    CHECK(strcmp(users[dup].name, "al") == 0);
    CHECK_EQ_INT(lg_auth_sort_users(users, 0, &dup), 0);
}

LG_TEST(test_response)
{
    char out[LG_AUTH_RESPONSE_MAX], realm[LG_AUTH_REALM_MAX + 2];
    int n = lg_auth_response("legato", out);
    static const char want[] = "HTTP/1.1 407 Proxy Authentication Required\r\n"
                               "Proxy-Authenticate: Basic realm=\"legato\"\r\n"
                               "Content-Type: text/plain\r\nContent-Length: 30\r\n"
                               "Connection: close\r\n\r\nProxy Authentication Required\n";
    CHECK_EQ_INT(n, sizeof(want) - 1);
    CHECK(memcmp(out, want, sizeof(want) - 1) == 0);
    CHECK(strlen(strstr(out, "\r\n\r\n") + 4) == 30);
    memset(realm, 'r', LG_AUTH_REALM_MAX);
    realm[LG_AUTH_REALM_MAX] = '\0';
    CHECK(lg_auth_response(realm, out) > 0);
    realm[LG_AUTH_REALM_MAX] = 'r';
    realm[LG_AUTH_REALM_MAX + 1] = '\0';
    CHECK_EQ_INT(lg_auth_response(realm, out), -EINVAL);
    CHECK_EQ_INT(lg_auth_response("", out), -EINVAL);
    CHECK_EQ_INT(lg_auth_response("a\"b", out), -EINVAL);
    CHECK_EQ_INT(lg_auth_response("a\\b", out), -EINVAL);
    CHECK_EQ_INT(lg_auth_response("a\r\nX: y", out), -EINVAL);
    CHECK_EQ_INT(lg_auth_response("caf\xc3\xa9", out), -EINVAL);
    CHECK(lg_auth_response("Corp proxy (ask IT)", out) > 0);
}

static void key_of(uint32_t i, uint8_t key[LG_AUTH_KEY_LEN])
{
    uint8_t salt[LG_AUTH_SALT_LEN] = {1, 2, 3};
    lg_auth_cred_t c;
    c.len = (size_t)snprintf((char *)c.buf, sizeof(c.buf), "user%u:pass", i);
    lg_auth_cache_key(salt, &c, key);
}

LG_TEST(test_cache_key)
{
    uint8_t salt_a[LG_AUTH_SALT_LEN] = {1}, salt_b[LG_AUTH_SALT_LEN] = {2};
    uint8_t k1[LG_AUTH_KEY_LEN], k2[LG_AUTH_KEY_LEN], plain[LG_SHA256_LEN];
    lg_auth_cred_t c;
    c.len = 7;
    memcpy(c.buf, "a:b:cde", 7);
    lg_auth_cache_key(salt_a, &c, k1);
    lg_auth_cache_key(salt_b, &c, k2);
    CHECK(!lg_auth_ct_equal(k1, k2, LG_AUTH_KEY_LEN)); /* salted: per proxy */
    lg_sha256(c.buf, c.len, plain);
    CHECK(!lg_auth_ct_equal(k1, plain, LG_AUTH_KEY_LEN)); /* never the bare digest */
    lg_auth_cache_key(salt_a, &c, k2);
    CHECK(lg_auth_ct_equal(k1, k2, LG_AUTH_KEY_LEN));
}

LG_TEST(test_cache_lru)
{
    static lg_auth_cache_t cache;
    uint8_t k[LG_AUTH_KEY_LEN];
    lg_auth_cache_init(&cache);
    key_of(0, k);
    CHECK(!lg_auth_cache_lookup(&cache, k));
    /* Fill to exactly LG_AUTH_CACHE_SIZE: every key is present. */
    for (uint32_t i = 0; i < LG_AUTH_CACHE_SIZE; i++) {
        key_of(i, k);
        lg_auth_cache_insert(&cache, k);
    }
    CHECK_EQ_INT(cache.n, LG_AUTH_CACHE_SIZE);
    for (uint32_t i = 0; i < LG_AUTH_CACHE_SIZE; i++) {
        key_of(i, k);
        CHECK_ROW(lg_auth_cache_lookup(&cache, k), "all present at max");
    }
    /* The lookups made 0 the least recently used again; touch 0 so 1 is the LRU. */
    key_of(0, k);
    CHECK(lg_auth_cache_lookup(&cache, k));
    /* Insert twice: no duplicate. */
    lg_auth_cache_insert(&cache, k);
    CHECK_EQ_INT(cache.n, LG_AUTH_CACHE_SIZE);
    /* max + 1: the least recently used (1) goes, the rest stay. */
    key_of(LG_AUTH_CACHE_SIZE, k);
    lg_auth_cache_insert(&cache, k);
    CHECK_EQ_INT(cache.n, LG_AUTH_CACHE_SIZE);
    key_of(1, k);
    CHECK(!lg_auth_cache_lookup(&cache, k));
    key_of(0, k);
    CHECK(lg_auth_cache_lookup(&cache, k));
    key_of(LG_AUTH_CACHE_SIZE, k);
    CHECK(lg_auth_cache_lookup(&cache, k));
    /* Many evictions keep the chains and the list consistent. */
    for (uint32_t i = 5000; i < 20000; i++) {
        key_of(i, k);
        lg_auth_cache_insert(&cache, k);
        CHECK(lg_auth_cache_lookup(&cache, k));
    }
    for (uint32_t i = 20000 - LG_AUTH_CACHE_SIZE; i < 20000; i++) {
        key_of(i, k);
        CHECK_ROW(lg_auth_cache_lookup(&cache, k), "recent ones present");
    }
    key_of(20000 - LG_AUTH_CACHE_SIZE - 1, k);
    CHECK(!lg_auth_cache_lookup(&cache, k));
    size_t chained = 0;
    for (size_t b = 0; b < LG_AUTH_CACHE_SIZE; b++) {
        for (uint16_t i = cache.bucket[b]; i != LG_AUTH_NIL; i = cache.e[i].chain)
            chained++;
    }
    CHECK_EQ_INT(chained, LG_AUTH_CACHE_SIZE);
}

LG_TEST(test_throttle_limits)
{
    lg_auth_throttle_t t;
    CHECK_EQ_INT(lg_auth_throttle_init(&t, 0, 10, 0), -EINVAL);
    CHECK(t.slots == NULL);
    CHECK_EQ_INT(lg_auth_throttle_init(&t, LG_AUTH_FAIL_PER_MINUTE_MAX + 1, 10, 0), -EINVAL);
    CHECK_EQ_INT(lg_auth_throttle_init(&t, 10, 0, 0), -EINVAL);
    CHECK_EQ_INT(lg_auth_throttle_init(&t, 10, LG_AUTH_FAIL_BURST_MAX + 1, 0), -EINVAL);
    CHECK_EQ_INT(lg_auth_throttle_init(&t, 10, 10, LG_AUTH_FAIL_WORKERS_MAX + 1), -EINVAL);
    /* A bucket holds at least one token per worker. */
    CHECK_EQ_INT(lg_auth_throttle_init(&t, 60, 2, 8), 0);
    CHECK_EQ_INT(t.tolerance_us, 7 * t.interval_us);
    for (int i = 0; i < 8; i++)
        CHECK_ROW(lg_auth_throttle_take(&t, 1, 1000), "one per worker");
    CHECK(!lg_auth_throttle_take(&t, 1, 1000));
    lg_auth_throttle_free(&t);
    CHECK_EQ_INT(lg_auth_throttle_init(&t, 60, 10, 8), 0);
    CHECK_EQ_INT(t.tolerance_us, 9 * t.interval_us);
    lg_auth_throttle_free(&t);
    CHECK_EQ_INT(lg_auth_throttle_init(&t, LG_AUTH_FAIL_PER_MINUTE_MAX, LG_AUTH_FAIL_BURST_MAX, 0),
                 0);
    CHECK_EQ_INT(t.interval_us, 1000);
    CHECK_EQ_INT(t.tolerance_us, (LG_AUTH_FAIL_BURST_MAX - 1) * 1000);
    lg_auth_throttle_free(&t);
    CHECK(t.slots == NULL);
    lg_auth_throttle_free(&t); /* twice is fine */
    CHECK_EQ_INT(lg_auth_throttle_init(&t, 1, 1, 0), 0);
    CHECK_EQ_INT(t.interval_us, 60000000);
    CHECK_EQ_INT(t.tolerance_us, 0);
    lg_auth_throttle_free(&t);
    CHECK_EQ_INT(lg_auth_throttle_init(&t, 7, 2, 0), 0);
    CHECK_EQ_INT(t.interval_us, 8571429); /* 60 s / 7, rounded */
    lg_auth_throttle_free(&t);
    CHECK_EQ_INT(lg_auth_throttle_init(&t, 40001, 2, 0), 0);
    CHECK_EQ_INT(t.interval_us, 1500); /* not rounded to whole ms */
    lg_auth_throttle_free(&t);
    /* No table: every take succeeds, refunds do nothing. */
    lg_auth_throttle_t none;
    memset(&none, 0, sizeof(none));
    for (int i = 0; i < 5; i++)
        CHECK(lg_auth_throttle_take(&none, 42, 1000));
    lg_auth_throttle_refund(&none, 42, 1000);
}

/* H1 and H2 share a slot with different tags; H3 is in another slot. */
#define H1  ((UINT64_C(0x123) << 48) | 77)
#define H2  ((UINT64_C(0x456) << 48) | 77)
#define H3  ((UINT64_C(0x123) << 48) | 78)
#define SEC UINT64_C(1000000)

LG_TEST(test_throttle_bucket)
{
    lg_auth_throttle_t t;
    CHECK_EQ_INT(lg_auth_throttle_init(&t, 60, 3, 0), 0); /* T = 1 s, 3 at once */
    uint64_t now = 5000 * SEC;
    for (int i = 0; i < 3; i++)
        CHECK_ROW(lg_auth_throttle_take(&t, H1, now), "the burst");
    CHECK(!lg_auth_throttle_take(&t, H1, now)); /* used up */
    CHECK(!lg_auth_throttle_take(&t, H1, now)); /* a refused take changes nothing: */
    CHECK(!lg_auth_throttle_take(&t, H1, now + SEC - 1));
    CHECK(lg_auth_throttle_take(&t, H1, now + SEC)); /* one refilled after T */
    CHECK(!lg_auth_throttle_take(&t, H1, now + SEC));
    /* A success gives its token back at once. */
    lg_auth_throttle_refund(&t, H1, now + SEC);
    CHECK(lg_auth_throttle_take(&t, H1, now + SEC));
    CHECK(!lg_auth_throttle_take(&t, H1, now + SEC));
    /* A quiet source gets its whole burst back after burst * T, and no more: a refund to a full
     * bucket is nothing. */
    now += SEC + 3 * SEC;
    lg_auth_throttle_refund(&t, H1, now);
    lg_auth_throttle_refund(&t, H1, now);
    for (int i = 0; i < 3; i++)
        CHECK_ROW(lg_auth_throttle_take(&t, H1, now), "full again");
    CHECK(!lg_auth_throttle_take(&t, H1, now));
    /* More refunds than takes fill the bucket and no more. */
    for (int i = 0; i < 10; i++)
        lg_auth_throttle_refund(&t, H1, now);
    for (int i = 0; i < 3; i++)
        CHECK_ROW(lg_auth_throttle_take(&t, H1, now), "refilled by refunds");
    CHECK(!lg_auth_throttle_take(&t, H1, now));
    lg_auth_throttle_free(&t);
}

/* The 48-bit clock wraps: a bucket used just before the wrap behaves the same just after it. */
LG_TEST(test_throttle_wrap)
{
    lg_auth_throttle_t t;
    CHECK_EQ_INT(lg_auth_throttle_init(&t, 60, 3, 0), 0); /* T = 1 s */
    uint64_t wrap = UINT64_C(1) << 48;
    uint64_t now = wrap - SEC / 2; /* half a second before the wrap */
    for (int i = 0; i < 3; i++)
        CHECK_ROW(lg_auth_throttle_take(&t, H1, now), "the burst");
    CHECK(!lg_auth_throttle_take(&t, H1, now));
    CHECK(!lg_auth_throttle_take(&t, H1, wrap + SEC / 2 - 1)); /* T later, less 1 µs */
    CHECK(lg_auth_throttle_take(&t, H1, wrap + SEC / 2));      /* one back, across the wrap */
    CHECK(!lg_auth_throttle_take(&t, H1, wrap + SEC / 2));
    lg_auth_throttle_refund(&t, H1, wrap + SEC / 2);
    CHECK(lg_auth_throttle_take(&t, H1, wrap + SEC / 2));
    /* Long after, the old time reads as the past: a full bucket, not a lockout. */
    now = wrap + 3600 * SEC;
    for (int i = 0; i < 3; i++)
        CHECK_ROW(lg_auth_throttle_take(&t, H1, now), "full again");
    CHECK(!lg_auth_throttle_take(&t, H1, now));
    lg_auth_throttle_free(&t);
}

LG_TEST(test_throttle_sources)
{
    lg_auth_throttle_t t;
    CHECK_EQ_INT(lg_auth_throttle_init(&t, 60, 2, 0), 0);
    uint64_t now = 10 * SEC;
    CHECK(lg_auth_throttle_take(&t, H1, now));
    CHECK(lg_auth_throttle_take(&t, H1, now));
    CHECK(!lg_auth_throttle_take(&t, H1, now));
    CHECK(lg_auth_throttle_take(&t, H3, now)); /* another slot */
    /* Same slot, another tag: a full bucket, and the take claims the slot. */
    CHECK(lg_auth_throttle_take(&t, H2, now));
    CHECK(lg_auth_throttle_take(&t, H2, now));
    CHECK(!lg_auth_throttle_take(&t, H2, now));
    /* H1 now finds H2's tag: it starts afresh and claims the slot back; H2's refund is nothing. */
    CHECK(lg_auth_throttle_take(&t, H1, now));
    lg_auth_throttle_refund(&t, H2, now);
    CHECK(lg_auth_throttle_take(&t, H1, now));
    CHECK(!lg_auth_throttle_take(&t, H1, now));
    lg_auth_throttle_free(&t);
}

enum { TAKES, PAIRS, REFUNDS };

typedef struct {
    lg_auth_throttle_t *t;
    pthread_barrier_t *start;
    uint64_t now;
    int mode;
    int tries;
    int taken;
} take_arg_t;

static void *take_many(void *p)
{
    take_arg_t *a = p;
    pthread_barrier_wait(a->start);
    for (int i = 0; i < a->tries; i++) {
        if (a->mode == REFUNDS) {
            lg_auth_throttle_refund(a->t, H1, a->now);
        } else if (lg_auth_throttle_take(a->t, H1, a->now)) {
            if (a->mode == PAIRS) {
                lg_auth_throttle_refund(a->t, H1, a->now);
            } else {
                a->taken++;
            }
        }
    }
    return NULL;
}

/* Four threads released together on one word; returns the takes that succeeded. */
static int race(lg_auth_throttle_t *t, uint64_t now, int mode, int tries)
{
    pthread_barrier_t start;
    pthread_barrier_init(&start, NULL, 4);
    pthread_t th[4];
    take_arg_t a[4];
    for (int i = 0; i < 4; i++) {
        a[i] = (take_arg_t){t, &start, now, mode, tries, 0};
        pthread_create(&th[i], NULL, take_many, &a[i]);
    }
    int taken = 0;
    for (int i = 0; i < 4; i++) {
        pthread_join(th[i], NULL);
        taken += a[i].taken;
    }
    pthread_barrier_destroy(&start);
    return taken;
}

/* Takes from four threads at once: exactly burst succeed, round after round (a lost update would
 * let more through); refunds from four threads: every one counts (a lost one leaves fewer
 * tokens); take/refund pairs leave the bucket as it was. */
LG_TEST(test_throttle_threads)
{
    lg_auth_throttle_t t;
    CHECK_EQ_INT(lg_auth_throttle_init(&t, 60000, 100, 0), 0); /* T = 1 ms, 100 at once */
    uint64_t now = 1000 * SEC;
    int total = 0;
    for (int round = 0; round < 200; round++, now += SEC) /* a full bucket each round */
        total += race(&t, now, TAKES, 100);
    CHECK_EQ_INT(total, 200 * 100);
    for (int round = 0; round < 50; round++, now += SEC) {
        while (lg_auth_throttle_take(&t, H1, now)) {
        }                           /* empty */
        race(&t, now, REFUNDS, 25); /* 100 refunds in all: full */
        int left = 0;
        while (lg_auth_throttle_take(&t, H1, now))
            left++;
        CHECK_ROW(left == 100, "every refund counted");
    }
    /* Half full, then pairs: still half full. */
    for (int i = 0; i < 50; i++)
        CHECK(lg_auth_throttle_take(&t, H1, now));
    race(&t, now, PAIRS, 20000);
    int left = 0;
    while (lg_auth_throttle_take(&t, H1, now))
        left++;
    CHECK_EQ_INT(left, 50);
    lg_auth_throttle_free(&t);
}

int main(void)
{
    LG_RUN(test_hash_good);
    LG_RUN(test_hash_bad);
    LG_RUN(test_hash_limits);
    LG_RUN(test_base64);
    LG_RUN(test_basic);
    LG_RUN(test_basic_header_limit);
    LG_RUN(test_ct_equal_and_wipe);
    LG_RUN(test_user_table);
    LG_RUN(test_response);
    LG_RUN(test_cache_key);
    LG_RUN(test_cache_lru);
    LG_RUN(test_throttle_limits);
    LG_RUN(test_throttle_bucket);
    LG_RUN(test_throttle_sources);
    LG_RUN(test_throttle_wrap);
    LG_RUN(test_throttle_threads);
    LG_TEST_END();
}
