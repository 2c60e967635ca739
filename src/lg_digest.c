/*
 * lg_digest.c — MD5 (RFC 1321) and SHA-256 (FIPS 180-4), one-shot (pure core; see lg_digest.h).
 *
 * Both are Merkle–Damgård hashes over 64-byte blocks: every whole block of the input is
 * compressed straight from the caller's buffer, then the tail, the 0x80 byte, zero padding and
 * the message length in bits (64 bits: little-endian for MD5, RFC 1321 §3.2; big-endian for
 * SHA-256, FIPS 180-4 §5.1.1) are compressed from a 128-byte local buffer (one block, or two
 * when the tail leaves fewer than 9 bytes). Words are assembled byte by byte, so the input may
 * have any alignment and the code does not depend on the host's byte order.
 *
 * The length in bits is len * 8 modulo 2^64, as both standards define it.
 */
#include "lg_digest.h"

#include <string.h>

#define DIGEST_BLOCK   64 /* bytes per compressed block (both hashes) */
#define DIGEST_LEN_LEN 8  /* bytes of the trailing message length */

typedef void (*digest_block_fn)(uint32_t *state, const uint8_t *block);

static uint32_t rotl32(uint32_t x, unsigned n)
{
    return (x << n) | (x >> (32 - n));
}

static uint32_t rotr32(uint32_t x, unsigned n)
{
    return (x >> n) | (x << (32 - n));
}

static uint32_t load_le32(const uint8_t *p)
{
    return (uint32_t)p[0] | (uint32_t)p[1] << 8 | (uint32_t)p[2] << 16 | (uint32_t)p[3] << 24;
}

static uint32_t load_be32(const uint8_t *p)
{
    return (uint32_t)p[0] << 24 | (uint32_t)p[1] << 16 | (uint32_t)p[2] << 8 | (uint32_t)p[3];
}

/*
 * Compress every whole block of data, then the padded tail. `be_length` selects the byte order
 * of the trailing bit count.
 */
static void digest_run(uint32_t *state, digest_block_fn block, const uint8_t *data, size_t len,
                       bool be_length)
{
    size_t whole = len - len % DIGEST_BLOCK;
    for (size_t off = 0; off < whole; off += DIGEST_BLOCK)
        block(state, data + off);

    uint8_t tail[2 * DIGEST_BLOCK];
    size_t rest = len - whole; /* 0..63 */
    memset(tail, 0, sizeof(tail));
    if (rest > 0) memcpy(tail, data + whole, rest);
    tail[rest] = 0x80;
    size_t tail_len = rest + 1 + DIGEST_LEN_LEN <= DIGEST_BLOCK ? DIGEST_BLOCK : 2 * DIGEST_BLOCK;
    uint64_t bits = (uint64_t)len << 3;
    for (size_t i = 0; i < DIGEST_LEN_LEN; i++) {
        size_t at = be_length ? tail_len - 1 - i : tail_len - DIGEST_LEN_LEN + i;
        tail[at] = (uint8_t)(bits >> (8 * i));
    }
    for (size_t off = 0; off < tail_len; off += DIGEST_BLOCK)
        block(state, tail + off);
}

/* ------------------------------------------------------------------------------------------ */
/* MD5, RFC 1321 §3.4.                                                                        */

/* T[i] = floor(2^32 * abs(sin(i + 1))), the table of RFC 1321 §3.4. */
static const uint32_t md5_t[64] = {
    0xd76aa478, 0xe8c7b756, 0x242070db, 0xc1bdceee, 0xf57c0faf, 0x4787c62a, 0xa8304613, 0xfd469501,
    0x698098d8, 0x8b44f7af, 0xffff5bb1, 0x895cd7be, 0x6b901122, 0xfd987193, 0xa679438e, 0x49b40821,
    0xf61e2562, 0xc040b340, 0x265e5a51, 0xe9b6c7aa, 0xd62f105d, 0x02441453, 0xd8a1e681, 0xe7d3fbc8,
    0x21e1cde6, 0xc33707d6, 0xf4d50d87, 0x455a14ed, 0xa9e3e905, 0xfcefa3f8, 0x676f02d9, 0x8d2a4c8a,
    0xfffa3942, 0x8771f681, 0x6d9d6122, 0xfde5380c, 0xa4beea44, 0x4bdecfa9, 0xf6bb4b60, 0xbebfbc70,
    0x289b7ec6, 0xeaa127fa, 0xd4ef3085, 0x04881d05, 0xd9d4d039, 0xe6db99e5, 0x1fa27cf8, 0xc4ac5665,
    0xf4292244, 0x432aff97, 0xab9423a7, 0xfc93a039, 0x655b59c3, 0x8f0ccc92, 0xffeff47d, 0x85845dd1,
    0x6fa87e4f, 0xfe2ce6e0, 0xa3014314, 0x4e0811a1, 0xf7537e82, 0xbd3af235, 0x2ad7d2bb, 0xeb86d391,
};

/* Per-round shift amounts: round r (0..3), step i uses md5_s[r][i % 4]. */
static const unsigned md5_s[4][4] = {
    {7, 12, 17, 22}, {5, 9, 14, 20}, {4, 11, 16, 23}, {6, 10, 15, 21}};

static void md5_block(uint32_t *state, const uint8_t *block)
{
    uint32_t x[16];
    for (size_t i = 0; i < 16; i++)
        x[i] = load_le32(block + 4 * i);

    uint32_t a = state[0], b = state[1], c = state[2], d = state[3];
    for (unsigned i = 0; i < 64; i++) {
        uint32_t f;
        unsigned k;
        switch (i / 16) {
        case 0: /* F(X,Y,Z) = XY v not(X) Z */
            f = (b & c) | (~b & d);
            k = i;
            break;
        case 1: /* G(X,Y,Z) = XZ v Y not(Z) */
            f = (b & d) | (c & ~d);
            k = (5 * i + 1) % 16;
            break;
        case 2: /* H(X,Y,Z) = X xor Y xor Z */
            f = b ^ c ^ d;
            k = (3 * i + 5) % 16;
            break;
        default: /* I(X,Y,Z) = Y xor (X v not(Z)) */
            f = c ^ (b | ~d);
            k = (7 * i) % 16;
            break;
        }
        uint32_t sum = a + f + md5_t[i] + x[k];
        a = d;
        d = c;
        c = b;
        b = b + rotl32(sum, md5_s[i / 16][i % 4]);
    }
    state[0] += a;
    state[1] += b;
    state[2] += c;
    state[3] += d;
}

void lg_md5(const void *data, size_t len, uint8_t out[LG_MD5_LEN])
{
    /* RFC 1321 §3.3: word A 01 23 45 67, B 89 ab cd ef, ... written low-order byte first. */
    uint32_t state[4] = {0x67452301, 0xefcdab89, 0x98badcfe, 0x10325476};
    digest_run(state, md5_block, data, len, false);
    for (size_t i = 0; i < 4; i++) {
        out[4 * i] = (uint8_t)state[i];
        out[4 * i + 1] = (uint8_t)(state[i] >> 8);
        out[4 * i + 2] = (uint8_t)(state[i] >> 16);
        out[4 * i + 3] = (uint8_t)(state[i] >> 24);
    }
}

/* ------------------------------------------------------------------------------------------ */
/* SHA-256, FIPS 180-4 §4.1.2, §4.2.2, §6.2.2.                                                */

/* K: the first 32 bits of the fractional parts of the cube roots of the first 64 primes. */
static const uint32_t sha256_k[64] = {
    0x428a2f98, 0x71374491, 0xb5c0fbcf, 0xe9b5dba5, 0x3956c25b, 0x59f111f1, 0x923f82a4, 0xab1c5ed5,
    0xd807aa98, 0x12835b01, 0x243185be, 0x550c7dc3, 0x72be5d74, 0x80deb1fe, 0x9bdc06a7, 0xc19bf174,
    0xe49b69c1, 0xefbe4786, 0x0fc19dc6, 0x240ca1cc, 0x2de92c6f, 0x4a7484aa, 0x5cb0a9dc, 0x76f988da,
    0x983e5152, 0xa831c66d, 0xb00327c8, 0xbf597fc7, 0xc6e00bf3, 0xd5a79147, 0x06ca6351, 0x14292967,
    0x27b70a85, 0x2e1b2138, 0x4d2c6dfc, 0x53380d13, 0x650a7354, 0x766a0abb, 0x81c2c92e, 0x92722c85,
    0xa2bfe8a1, 0xa81a664b, 0xc24b8b70, 0xc76c51a3, 0xd192e819, 0xd6990624, 0xf40e3585, 0x106aa070,
    0x19a4c116, 0x1e376c08, 0x2748774c, 0x34b0bcb5, 0x391c0cb3, 0x4ed8aa4a, 0x5b9cca4f, 0x682e6ff3,
    0x748f82ee, 0x78a5636f, 0x84c87814, 0x8cc70208, 0x90befffa, 0xa4506ceb, 0xbef9a3f7, 0xc67178f2,
};

static void sha256_block(uint32_t *state, const uint8_t *block)
{
    uint32_t w[64];
    for (size_t t = 0; t < 16; t++)
        w[t] = load_be32(block + 4 * t);
    for (size_t t = 16; t < 64; t++) {
        uint32_t s0 = rotr32(w[t - 15], 7) ^ rotr32(w[t - 15], 18) ^ (w[t - 15] >> 3);
        uint32_t s1 = rotr32(w[t - 2], 17) ^ rotr32(w[t - 2], 19) ^ (w[t - 2] >> 10);
        w[t] = w[t - 16] + s0 + w[t - 7] + s1;
    }

    uint32_t a = state[0], b = state[1], c = state[2], d = state[3];
    uint32_t e = state[4], f = state[5], g = state[6], h = state[7];
    for (size_t t = 0; t < 64; t++) {
        uint32_t S1 = rotr32(e, 6) ^ rotr32(e, 11) ^ rotr32(e, 25);
        uint32_t ch = (e & f) ^ (~e & g);
        uint32_t t1 = h + S1 + ch + sha256_k[t] + w[t];
        uint32_t S0 = rotr32(a, 2) ^ rotr32(a, 13) ^ rotr32(a, 22);
        uint32_t maj = (a & b) ^ (a & c) ^ (b & c);
        uint32_t t2 = S0 + maj;
        h = g;
        g = f;
        f = e;
        e = d + t1;
        d = c;
        c = b;
        b = a;
        a = t1 + t2;
    }
    state[0] += a;
    state[1] += b;
    state[2] += c;
    state[3] += d;
    state[4] += e;
    state[5] += f;
    state[6] += g;
    state[7] += h;
}

void lg_sha256(const void *data, size_t len, uint8_t out[LG_SHA256_LEN])
{
    /* H(0), FIPS 180-4 §5.3.3. */
    uint32_t state[8] = {0x6a09e667, 0xbb67ae85, 0x3c6ef372, 0xa54ff53a,
                         0x510e527f, 0x9b05688c, 0x1f83d9ab, 0x5be0cd19};
    digest_run(state, sha256_block, data, len, true);
    for (size_t i = 0; i < 8; i++) {
        out[4 * i] = (uint8_t)(state[i] >> 24);
        out[4 * i + 1] = (uint8_t)(state[i] >> 16);
        out[4 * i + 2] = (uint8_t)(state[i] >> 8);
        out[4 * i + 3] = (uint8_t)state[i];
    }
}
