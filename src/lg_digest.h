/*
 * lg_digest.h — MD5 (RFC 1321) and SHA-256 (FIPS 180-4), one-shot, in portable C (pure core).
 *
 * Why not OpenSSL: JA3 (MD5) and JA4 (SHA-256) fingerprints are computed per connection when a
 * fingerprint blocklist is set. OpenSSL 3's EVP_Digest() fetches the algorithm from the provider
 * registry on every call (a lock and a hash lookup), and calling it would tie the pure
 * fingerprint module (lg_ja) to OpenSSL, so it could not be unit-tested or fuzzed on its own.
 * The inputs are short (a JA3 string is at most a few KiB), so a plain implementation is as
 * fast as anything here needs.
 *
 * MD5 is broken for collision resistance (RFC 6151); it is here only because JA3 is defined
 * over it. Nothing in legato may use it for security.
 *
 * No allocation, no globals, no I/O; both functions are reentrant and thread-safe. Inputs of
 * any length and alignment; `data` may be NULL when len is 0.
 */
#ifndef LG_DIGEST_H
#define LG_DIGEST_H

#include "lg_common.h"

#define LG_MD5_LEN    16 /* bytes of an MD5 digest */
#define LG_SHA256_LEN 32 /* bytes of a SHA-256 digest */

/* out = MD5(data[0..len)) (RFC 1321 §3). */
void lg_md5(const void *data, size_t len, uint8_t out[LG_MD5_LEN]);

/* out = SHA-256(data[0..len)) (FIPS 180-4 §6.2). */
void lg_sha256(const void *data, size_t len, uint8_t out[LG_SHA256_LEN]);

#endif /* LG_DIGEST_H */
