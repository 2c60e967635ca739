/*
 * lg_auth.c — Basic proxy authentication: hash format, credentials, user table, 407 text, cache
 * (pure core; see lg_auth.h for the formats and limits).
 *
 * RFC 7617 (Basic), RFC 9110 §11.6.2 / §11.7.2 (Proxy-Authenticate, Proxy-Authorization),
 * RFC 4648 §4 (base64), RFC 7914 (scrypt parameters).
 */
#include "lg_auth.h"
#include "lg_digest.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static const char b64_alphabet[] =
    "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";

/* The 6-bit value of a base64 byte, or -1. */
static int auth_b64_value(uint8_t c)
{
    if (c >= 'A' && c <= 'Z') return c - 'A';
    if (c >= 'a' && c <= 'z') return c - 'a' + 26;
    if (c >= '0' && c <= '9') return c - '0' + 52;
    if (c == '+') return 62;
    if (c == '/') return 63;
    return -1;
}

int lg_auth_b64_decode(const uint8_t *in, size_t n, bool padded, uint8_t *out, size_t cap)
{
    size_t data = n;
    if (padded) {
        if (n % 4 != 0) return -EINVAL;
        if (n > 0 && in[n - 1] == '=') data--;
        if (n > 1 && in[n - 2] == '=') {
            if (data != n - 1) return -EINVAL; /* "x=" followed by a non-pad byte */
            data--;
        }
    }
    if (data % 4 == 1) return -EINVAL; /* 6 bits cannot end a byte */
    size_t need = data / 4 * 3 + (data % 4 == 0 ? 0 : data % 4 - 1);
    if (need > cap) return -ENOSPC;
    uint32_t acc = 0;
    unsigned bits = 0;
    size_t o = 0;
    for (size_t i = 0; i < data; i++) {
        int v = auth_b64_value(in[i]);
        if (v < 0) return -EINVAL;
        acc = (acc << 6) | (uint32_t)v;
        bits += 6;
        if (bits >= 8) {
            bits -= 8;
            out[o++] = (uint8_t)(acc >> bits);
            acc &= (1u << bits) - 1;
        }
    }
    if (acc != 0) return -EINVAL; /* non-zero unused bits: not the canonical spelling */
    return (int)o;
}

size_t lg_auth_b64_encode(const uint8_t *in, size_t n, char *out)
{
    size_t o = 0;
    uint32_t acc = 0;
    unsigned bits = 0;
    for (size_t i = 0; i < n; i++) {
        acc = (acc << 8) | in[i];
        bits += 8;
        while (bits >= 6) {
            bits -= 6;
            out[o++] = b64_alphabet[(acc >> bits) & 63];
        }
    }
    if (bits > 0) out[o++] = b64_alphabet[(acc << (6 - bits)) & 63];
    out[o] = '\0';
    return o;
}

bool lg_auth_ct_equal(const uint8_t *a, const uint8_t *b, size_t n)
{
    volatile uint8_t diff = 0;
    for (size_t i = 0; i < n; i++)
        diff |= a[i] ^ b[i];
    return diff == 0;
}

void lg_auth_wipe(void *p, size_t n)
{
    volatile uint8_t *v = p;
    for (size_t i = 0; i < n; i++)
        v[i] = 0;
}

/* ---- the hash format ------------------------------------------------------------------------ */

/* "<key>=<decimal>" at *s (advanced past it); no sign, no leading zero, at most max. */
static int auth_param(const char **s, const char *end, const char *key, uint64_t max, uint64_t *out)
{
    size_t kl = strlen(key);
    if ((size_t)(end - *s) < kl + 2 || memcmp(*s, key, kl) != 0 || (*s)[kl] != '=') return -1;
    const char *d = *s + kl + 1;
    if (d == end || *d < '0' || *d > '9' ||
        (*d == '0' && d + 1 < end && d[1] >= '0' && d[1] <= '9'))
        return -1;
    uint64_t v = 0;
    while (d < end && *d >= '0' && *d <= '9') {
        v = v * 10 + (uint64_t)(*d - '0');
        if (v > max) return -1;
        d++;
    }
    *out = v;
    *s = d;
    return 0;
}

int lg_auth_parse_hash(const char *s, size_t len, lg_scrypt_t *out, const char **why)
{
    static const char prefix[] = "$scrypt$";
    const char *end = s + len;
    uint64_t ln = 0, r = 0, p = 0;
    memset(out, 0, sizeof(*out));
    if (len > LG_AUTH_HASH_TEXT_MAX) {
        *why = "longer than 256 bytes";
        return -EINVAL;
    }
    if (len < sizeof(prefix) - 1 || memcmp(s, prefix, sizeof(prefix) - 1) != 0) {
        *why = "it does not start with '$scrypt$'";
        return -EINVAL;
    }
    s += sizeof(prefix) - 1;
    if (auth_param(&s, end, "ln", LG_AUTH_LN_MAX, &ln) != 0 || s == end || *s++ != ',' ||
        auth_param(&s, end, "r", LG_AUTH_R_MAX, &r) != 0 || s == end || *s++ != ',' ||
        auth_param(&s, end, "p", LG_AUTH_P_MAX, &p) != 0 || s == end || *s++ != '$') {
        *why = "parameters must be 'ln=<1-30>,r=<1-1024>,p=<1-16>'";
        return -EINVAL;
    }
    if (ln < LG_AUTH_LN_MIN || r < 1 || p < 1) {
        *why = "parameters must be 'ln=<1-30>,r=<1-1024>,p=<1-16>'";
        return -EINVAL;
    }
    if (128ull * r > LG_AUTH_MAX_MEMORY >> ln) {
        *why = "128 * r * 2^ln exceeds 1 GiB";
        return -EINVAL;
    }
    const char *dollar = memchr(s, '$', (size_t)(end - s));
    if (dollar == NULL) {
        *why = "no '$' between salt and hash";
        return -EINVAL;
    }
    int n = lg_auth_b64_decode((const uint8_t *)s, (size_t)(dollar - s), false, out->salt,
                               LG_AUTH_SALT_MAX);
    if (n < LG_AUTH_SALT_MIN) {
        *why = n == -EINVAL ? "salt is not unpadded base64" : "salt must be 8-64 bytes";
        return -EINVAL;
    }
    out->salt_len = (size_t)n;
    s = dollar + 1;
    n = lg_auth_b64_decode((const uint8_t *)s, (size_t)(end - s), false, out->hash,
                           LG_AUTH_HASH_MAX);
    if (n < LG_AUTH_HASH_MIN) {
        *why = n == -EINVAL ? "hash is not unpadded base64" : "hash must be 16-64 bytes";
        return -EINVAL;
    }
    out->hash_len = (size_t)n;
    out->ln = (unsigned)ln;
    out->r = (uint32_t)r;
    out->p = (uint32_t)p;
    return 0;
}

/* ---- credentials -------------------------------------------------------------------------- */

int lg_auth_parse_basic(const uint8_t *v, size_t len, lg_auth_cred_t *out)
{
    static const char scheme[] = "basic";
    out->len = out->user_len = out->pass_off = 0;
    if (len > LG_HTTP_MAX_AUTH) return LG_AUTH_E_TOO_LONG;
    size_t sl = sizeof(scheme) - 1;
    if (len <= sl || v[sl] != ' ') return LG_AUTH_E_SCHEME;
    for (size_t i = 0; i < sl; i++) {
        uint8_t c = v[i] >= 'A' && v[i] <= 'Z' ? (uint8_t)(v[i] - 'A' + 'a') : v[i];
        if (c != (uint8_t)scheme[i]) return LG_AUTH_E_SCHEME;
    }
    size_t i = sl;
    while (i < len && v[i] == ' ')
        i++;
    int n = lg_auth_b64_decode(v + i, len - i, true, out->buf, sizeof(out->buf));
    if (n < 0) {
        lg_auth_wipe(out->buf, sizeof(out->buf)); /* a refused token may have decoded in part */
        return LG_AUTH_E_BASE64;
    }
    const uint8_t *colon = memchr(out->buf, ':', (size_t)n);
    if (colon == NULL) {
        lg_auth_wipe(out->buf, (size_t)n);
        return LG_AUTH_E_COLON;
    }
    out->len = (size_t)n;
    out->user_len = (size_t)(colon - out->buf);
    out->pass_off = out->user_len + 1;
    return LG_AUTH_OK;
}

/* ---- the user table ------------------------------------------------------------------------ */

static int auth_name_cmp(const uint8_t *a, size_t al, const uint8_t *b, size_t bl)
{
    int c = memcmp(a, b, LG_MIN(al, bl));
    if (c != 0) return c;
    return al < bl ? -1 : al > bl ? 1 : 0;
}

static int auth_user_cmp(const void *x, const void *y)
{
    const lg_auth_user_t *a = x, *b = y;
    return auth_name_cmp((const uint8_t *)a->name, a->name_len, (const uint8_t *)b->name,
                         b->name_len);
}

int lg_auth_sort_users(lg_auth_user_t *users, size_t n, size_t *dup)
{
    if (n > 1) qsort(users, n, sizeof(users[0]), auth_user_cmp);
    for (size_t i = 1; i < n; i++) {
        if (auth_user_cmp(&users[i - 1], &users[i]) == 0) {
            *dup = i;
            return -EEXIST;
        }
    }
    return 0;
}

const lg_auth_user_t *lg_auth_find(const lg_auth_t *a, const uint8_t *name, size_t len)
{
    size_t lo = 0, hi = a->n_users;
    while (lo < hi) {
        size_t mid = lo + (hi - lo) / 2;
        const lg_auth_user_t *u = &a->users[mid];
        int c = auth_name_cmp(name, len, (const uint8_t *)u->name, u->name_len);
        if (c == 0) return u;
        if (c < 0) {
            hi = mid;
        } else {
            lo = mid + 1;
        }
    }
    return NULL;
}

int lg_auth_response(const char *realm, char *out)
{
    size_t rl = strlen(realm);
    if (rl == 0 || rl > LG_AUTH_REALM_MAX) return -EINVAL;
    for (size_t i = 0; i < rl; i++) {
        unsigned char c = (unsigned char)realm[i];
        if (c < 0x20 || c > 0x7e || c == '"' || c == '\\') return -EINVAL;
    }
    /* Fixed text: the realm is configuration, never request input. */
    int n = snprintf(out, LG_AUTH_RESPONSE_MAX,
                     "HTTP/1.1 407 Proxy Authentication Required\r\n"
                     "Proxy-Authenticate: Basic realm=\"%s\"\r\n"
                     "Content-Type: text/plain\r\nContent-Length: 30\r\n"
                     "Connection: close\r\n\r\nProxy Authentication Required\n",
                     realm);
    return n > 0 && n < LG_AUTH_RESPONSE_MAX ? n : -EINVAL;
}

/* ---- the cache ---------------------------------------------------------------------------- */

void lg_auth_cache_key(const uint8_t salt[LG_AUTH_SALT_LEN], const lg_auth_cred_t *cred,
                       uint8_t key[LG_AUTH_KEY_LEN])
{
    uint8_t tmp[LG_AUTH_SALT_LEN + LG_AUTH_CRED_MAX];
    memcpy(tmp, salt, LG_AUTH_SALT_LEN);
    memcpy(tmp + LG_AUTH_SALT_LEN, cred->buf, cred->len);
    lg_sha256(tmp, LG_AUTH_SALT_LEN + cred->len, key);
    lg_auth_wipe(tmp, sizeof(tmp));
}

static unsigned auth_bucket(const uint8_t key[LG_AUTH_KEY_LEN])
{
    /* Keys are salted SHA-256 outputs: their first bytes are already uniform. */
    return ((unsigned)key[0] << 8 | key[1]) % LG_AUTH_CACHE_SIZE;
}

void lg_auth_cache_init(lg_auth_cache_t *c)
{
    memset(c, 0, sizeof(*c));
    for (size_t i = 0; i < LG_AUTH_CACHE_SIZE; i++)
        c->bucket[i] = LG_AUTH_NIL;
    c->head = c->tail = LG_AUTH_NIL;
}

static uint16_t auth_cache_find(const lg_auth_cache_t *c, const uint8_t *key)
{
    for (uint16_t i = c->bucket[auth_bucket(key)]; i != LG_AUTH_NIL; i = c->e[i].chain) {
        if (lg_auth_ct_equal(c->e[i].key, key, LG_AUTH_KEY_LEN)) return i;
    }
    return LG_AUTH_NIL;
}

static void auth_lru_unlink(lg_auth_cache_t *c, uint16_t i)
{
    lg_auth_cache_entry_t *e = &c->e[i];
    if (e->prev != LG_AUTH_NIL) {
        c->e[e->prev].next = e->next;
    } else {
        c->head = e->next;
    }
    if (e->next != LG_AUTH_NIL) {
        c->e[e->next].prev = e->prev;
    } else {
        c->tail = e->prev;
    }
}

static void auth_lru_push(lg_auth_cache_t *c, uint16_t i)
{
    c->e[i].prev = LG_AUTH_NIL;
    c->e[i].next = c->head;
    if (c->head != LG_AUTH_NIL) c->e[c->head].prev = i;
    c->head = i;
    if (c->tail == LG_AUTH_NIL) c->tail = i;
}

bool lg_auth_cache_lookup(lg_auth_cache_t *c, const uint8_t key[LG_AUTH_KEY_LEN])
{
    uint16_t i = auth_cache_find(c, key);
    if (i == LG_AUTH_NIL) return false;
    auth_lru_unlink(c, i);
    auth_lru_push(c, i);
    return true;
}

void lg_auth_cache_insert(lg_auth_cache_t *c, const uint8_t key[LG_AUTH_KEY_LEN])
{
    if (lg_auth_cache_lookup(c, key)) return;
    uint16_t i;
    if (c->n < LG_AUTH_CACHE_SIZE) {
        i = (uint16_t)c->n++;
    } else {
        /* Evict the least recently used: out of the LRU list and out of its bucket's chain. */
        i = c->tail;
        auth_lru_unlink(c, i);
        uint16_t *link = &c->bucket[auth_bucket(c->e[i].key)];
        while (*link != i)
            link = &c->e[*link].chain;
        *link = c->e[i].chain;
    }
    memcpy(c->e[i].key, key, LG_AUTH_KEY_LEN);
    unsigned b = auth_bucket(key);
    c->e[i].chain = c->bucket[b];
    c->bucket[b] = i;
    auth_lru_push(c, i);
}

/* ---- failure limit ------------------------------------------------------------------- */

#define FAIL_TAT_BITS 48 /* µs: 8.9 years of the monotonic clock */
#define FAIL_TAT_MASK ((UINT64_C(1) << FAIL_TAT_BITS) - 1)

int lg_auth_throttle_init(lg_auth_throttle_t *t, unsigned per_minute, unsigned burst,
                          unsigned workers)
{
    memset(t, 0, sizeof(*t));
    if (per_minute < 1 || per_minute > LG_AUTH_FAIL_PER_MINUTE_MAX || burst < 1 ||
        burst > LG_AUTH_FAIL_BURST_MAX || workers > LG_AUTH_FAIL_WORKERS_MAX) {
        return -EINVAL;
    }
    _Atomic uint64_t *slots = lg_calloc(LG_AUTH_FAIL_SLOTS, sizeof(*slots));
    if (slots == NULL) return -ENOMEM;
    for (size_t i = 0; i < LG_AUTH_FAIL_SLOTS; i++)
        atomic_init(&slots[i], 0);
    t->interval_us = (UINT64_C(60000000) + per_minute / 2) / per_minute;
    t->tolerance_us = (uint64_t)(LG_MAX(burst, workers) - 1) * t->interval_us;
    t->slots = slots;
    return 0;
}

void lg_auth_throttle_free(lg_auth_throttle_t *t)
{
    lg_free((void *)t->slots);
    t->slots = NULL;
}

/* The slot of hash h (low bits) and the tag stored with its time (high bits). */
static _Atomic uint64_t *fail_slot(const lg_auth_throttle_t *t, uint64_t h, uint64_t *tag)
{
    *tag = h >> FAIL_TAT_BITS << FAIL_TAT_BITS;
    return &t->slots[h % LG_AUTH_FAIL_SLOTS];
}

/*
 * How far the time stored in word v lies ahead of now, modulo 2^48 so that the clock's wrap is
 * harmless: a stored time is never more than a full bucket (at most 1000 minutes) ahead, so a
 * difference over half the range is a time in the past: 0, a full bucket. Another source's word
 * is a full bucket too.
 */
static uint64_t fail_ahead(uint64_t v, uint64_t tag, uint64_t now)
{
    if ((v & ~FAIL_TAT_MASK) != tag) return 0;
    uint64_t d = ((v & FAIL_TAT_MASK) - now) & FAIL_TAT_MASK;
    return d > FAIL_TAT_MASK / 2 ? 0 : d;
}

/*
 * Move source h's time by one interval at now_us: forward for a take (false, nothing changed,
 * when the bucket is empty), back for a refund (nothing to do for a full bucket or a word another
 * source has claimed). One CAS loop for both.
 */
static bool fail_move(const lg_auth_throttle_t *t, uint64_t h, uint64_t now_us, bool take)
{
    if (t->slots == NULL) return true;
    uint64_t tag;
    _Atomic uint64_t *slot = fail_slot(t, h, &tag);
    uint64_t now = now_us & FAIL_TAT_MASK;
    uint64_t v = atomic_load_explicit(slot, memory_order_relaxed);
    for (;;) {
        uint64_t ahead = fail_ahead(v, tag, now);
        /* GCRA: a take conforms iff the theoretical arrival time is within burst * T of now; a
         * word of another source's is claimed by a take (ours starts full). */
        if (take ? ahead > t->tolerance_us : ahead == 0) return !take;
        ahead = take ? ahead + t->interval_us : ahead - LG_MIN(ahead, t->interval_us);
        uint64_t nv = tag | ((now + ahead) & FAIL_TAT_MASK);
        if (atomic_compare_exchange_weak_explicit(slot, &v, nv, memory_order_relaxed,
                                                  memory_order_relaxed)) {
            return true;
        }
    }
}

bool lg_auth_throttle_take(const lg_auth_throttle_t *t, uint64_t h, uint64_t now_us)
{
    return fail_move(t, h, now_us, true);
}

void lg_auth_throttle_refund(const lg_auth_throttle_t *t, uint64_t h, uint64_t now_us)
{
    (void)fail_move(t, h, now_us, false);
}
