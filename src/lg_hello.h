/*
 * lg_hello.h — incremental TLS ClientHello parser (pure core: no I/O, no allocation).
 *
 * Reads the first bytes a client sends on a TLS listener and extracts what routing, JA3/JA4
 * fingerprinting and ALPN need: SNI, ALPN protocols, supported versions, and the cipher,
 * extension, group, point-format and signature-algorithm lists, in wire order.
 *
 * Use: the caller keeps every raw byte received since accept in one contiguous buffer (they are
 * forwarded to the upstream verbatim in passthrough), and calls lg_hello_parse() with the whole
 * buffer each time more bytes arrive. The parser resumes where it stopped (state in
 * lg_hello_parser_t), so total work is linear in the bytes received even when they arrive one at
 * a time. The handshake message is reassembled across TLS records (RFC 8446 §5.1: a handshake
 * message may be fragmented over several records) into the parser's own buffer.
 *
 * Results:
 *   LG_OK       a complete ClientHello was parsed; `out` is filled and *hello_end is the number
 *               of raw bytes (whole records) that carried it. Bytes after that are not examined.
 *   LG_AGAIN    more bytes are needed.
 *   LG_DECLINED the bytes are not a TLS handshake: route as non-TLS. Only the first record header
 *               can decline, as soon as the deciding byte arrives: byte 0 is not 0x16 (this
 *               covers HTTP, SSH, SSLv2-compatible hellos and an alert sent first) or byte 1
 *               (record major version) is not 3.
 *   LG_ERROR    TLS, but malformed or over a limit; out->reason names why (LG_HELLO_E_*).
 *               A record with length 0 or over LG_HELLO_MAX_RECORD is LG_HELLO_E_RECORD; a later
 *               record whose type is not handshake is LG_HELLO_E_INTERLEAVED.
 * The result does not depend on how the bytes were split across calls. Once a call returns
 * anything but LG_AGAIN, calling again with the same bytes returns the same result.
 *
 * Limits (named constants below): the handshake message (header included) may be at most
 * LG_HELLO_MAX_HANDSHAKE bytes; the raw bytes carrying it at most LG_HELLO_MAX_RAW (this bounds
 * the record overhead of a hello split into many tiny records). Lists longer than their array
 * are recorded up to the array size with a `truncated` flag set (fingerprints then fail closed).
 *
 * SNI (RFC 6066 §3): the host_name entry is taken (a second one is LG_HELLO_E_SNI: "MUST NOT
 * contain more than one name of the same name_type", and OpenSSL refuses such a list, so the
 * router would route on a name the TLS stack never accepts); it is lower-cased and a single
 * trailing dot dropped; it must then be 1..253 bytes of LDH labels (letters, digits, hyphen; each
 * label 1..63 bytes, not starting or ending with a hyphen), no NUL, and not an IPv4 literal (every
 * label all digits, e.g. "10.0.0.1", "127.1", "2130706433"; "a.1" passes) — otherwise LG_ERROR with
 * LG_HELLO_E_SNI. Underscores, '*' and non-ASCII bytes are refused (IDNs must be sent as A-labels).
 * Entries of other name types are only length-checked; a server_name whose list holds no host_name
 * gives has_sni == false, as does a hello without the extension.
 *
 * Wire-format rules beyond the RFC minimum: every length must fit its enclosing length, and the
 * extensions block and each known extension's inner list must fill their container exactly.
 * Duplicate extension types (RFC 8446 §4.2) are LG_HELLO_E_DUP_EXT. A ClientHello that ends
 * right after its compression methods (no extensions block) is valid.
 */
#ifndef LG_HELLO_H
#define LG_HELLO_H

#include "lg_common.h"

#define LG_HELLO_MAX_HANDSHAKE 16384 /* bytes: ClientHello message incl. its 4-byte header */
#define LG_HELLO_MAX_RAW       (LG_HELLO_MAX_HANDSHAKE + 1024) /* bytes: records carrying it */
#define LG_HELLO_MAX_RECORD    (16384 + 256) /* bytes: record body (TLSCiphertext bound, lenient) */
#define LG_HELLO_MAX_SNI       253           /* bytes: DNS name limit */
#define LG_HELLO_MAX_CIPHERS   256           /* entries kept */
#define LG_HELLO_MAX_EXTS      128           /* entries kept */
#define LG_HELLO_MAX_GROUPS    64            /* entries kept */
#define LG_HELLO_MAX_POINTFMTS 16            /* entries kept */
#define LG_HELLO_MAX_SIGALGS   64            /* entries kept */
#define LG_HELLO_MAX_VERSIONS  16            /* entries kept */
#define LG_HELLO_MAX_ALPN      16            /* protocols kept */
#define LG_HELLO_MAX_ALPN_LEN  255           /* bytes per protocol name (wire limit) */

/* Reasons for LG_ERROR. */
enum {
    LG_HELLO_E_NONE = 0,
    LG_HELLO_E_RECORD,      /* bad record header (version, zero or oversized length) */
    LG_HELLO_E_NOT_HELLO,   /* handshake message is not a ClientHello */
    LG_HELLO_E_TOO_BIG,     /* over LG_HELLO_MAX_HANDSHAKE or LG_HELLO_MAX_RAW */
    LG_HELLO_E_INTERLEAVED, /* a non-handshake record arrived before the hello was complete */
    LG_HELLO_E_MALFORMED,   /* an inner length or field does not fit its enclosing length */
    LG_HELLO_E_SNI,         /* server_name present but invalid */
    LG_HELLO_E_DUP_EXT,     /* the same extension type twice (RFC 8446 §4.2) */
};

typedef struct lg_hello_s {
    int reason; /* LG_HELLO_E_* when LG_ERROR */

    uint16_t legacy_version; /* client_version field, e.g. 0x0303 */
    uint16_t record_version; /* version in the first record header */

    bool has_sni;
    uint8_t sni_len;
    char sni[LG_HELLO_MAX_SNI + 1]; /* lower-cased, trailing dot dropped, NUL-terminated */

    /* Lists in wire order. n_* counts entries kept; *_truncated says more were present. GREASE
     * values (RFC 8701) are kept: fingerprint code filters them. */
    uint16_t ciphers[LG_HELLO_MAX_CIPHERS];
    uint16_t n_ciphers;
    bool ciphers_truncated;
    uint16_t exts[LG_HELLO_MAX_EXTS];
    uint16_t n_exts;
    bool exts_truncated;
    uint16_t groups[LG_HELLO_MAX_GROUPS];
    uint16_t n_groups;
    bool groups_truncated;
    uint8_t pointfmts[LG_HELLO_MAX_POINTFMTS];
    uint16_t n_pointfmts;
    bool pointfmts_truncated;
    uint16_t sigalgs[LG_HELLO_MAX_SIGALGS];
    uint16_t n_sigalgs;
    bool sigalgs_truncated;
    uint16_t versions[LG_HELLO_MAX_VERSIONS]; /* supported_versions extension */
    uint16_t n_versions;
    bool versions_truncated;

    /* ALPN protocol names, each as (offset, length) into alpn_buf, in wire order. */
    uint16_t n_alpn;
    bool alpn_truncated;
    uint16_t alpn_off[LG_HELLO_MAX_ALPN];
    uint8_t alpn_len[LG_HELLO_MAX_ALPN];
    char alpn_buf[LG_HELLO_MAX_ALPN * LG_HELLO_MAX_ALPN_LEN];
} lg_hello_t;

/* Resumable parser state. Zero it with lg_hello_parser_init() before the first call. */
typedef struct lg_hello_parser_s {
    size_t raw_off;  /* raw bytes consumed: whole records appended to hs, or a partial body */
    size_t rec_left; /* body bytes of the current record not yet consumed; 0 = header next */
    size_t hs_len;   /* handshake bytes assembled in hs */
    uint16_t record_version;
    uint8_t hs[LG_HELLO_MAX_HANDSHAKE];
} lg_hello_parser_t;

void lg_hello_parser_init(lg_hello_parser_t *p);

/*
 * Parse the raw bytes received so far. `raw` must start at the first byte the client sent and
 * hold every byte since (`len` may only grow between calls with the same parser; the buffer may
 * move). On LG_OK, *hello_end (may be NULL) receives the raw length of the records that carried
 * the ClientHello: the end of the record that completes it (any handshake bytes after the hello
 * in that record are skipped, not examined), so hello_end <= len. `out` is fully written only on
 * LG_OK; on LG_ERROR only out->reason is meaningful; on LG_AGAIN and LG_DECLINED out is left
 * untouched. A `len` smaller than a previous call's is a caller bug: LG_ERROR,
 * LG_HELLO_E_MALFORMED. Work per call is linear in the new bytes (plus one pass over the message on
 * completion).
 */
int lg_hello_parse(lg_hello_parser_t *p, const uint8_t *raw, size_t len, lg_hello_t *out,
                   size_t *hello_end);

/* A short static English name for an LG_HELLO_E_* reason ("malformed", ...). */
const char *lg_hello_reason_name(int reason);

#endif /* LG_HELLO_H */
