/*
 * lg_proxyproto.h — PROXY protocol v1 and v2: an incremental header parser for listeners with
 * `acceptProxyProtocol`, and header writers for routes with `proxyProtocol` (pure core: no I/O,
 * no allocation, no globals).
 *
 * Specification: HAProxy's doc/proxy-protocol.txt ("The PROXY protocol, Versions 1 & 2"):
 * §2.1 (v1 text line), §2.2 (v2 binary header), §2.2.1–§2.2.8 (TLVs and type ranges).
 *
 * Parser use: the caller keeps every byte received since accept in one buffer (at most
 * LG_PP_MAX_HEADER bytes are ever needed) and calls lg_pp_parse() with the whole buffer each time
 * more bytes arrive (`len` only grows; the buffer may move). The parser resumes where it stopped.
 * The header is required: the spec (§2) forbids guessing whether it is present, so a stream that
 * starts otherwise is an error, never "no header".
 *
 * Results of lg_pp_parse():
 *   LG_OK     out->header_len bytes at buf are the header; the bytes after it belong to the
 *             stream: they are not examined and the caller forwards them.
 *   LG_AGAIN  more bytes are needed. Never returned once len >= LG_PP_MAX_HEADER.
 *   LG_ERROR  out->reason says why (LG_PP_E_*). An error is reported at the first byte that makes
 *             every continuation invalid (the first byte of "GET /" is enough), except that on a
 *             listener accepting one version the other version's signature is read to its end
 *             (5 bytes "PROXY", or the 12-byte v2 signature) so that a peer configured for the
 *             wrong version is told apart (LG_PP_E_VERSION) from a client that sends no PROXY
 *             header (LG_PP_E_NOT_PROXY).
 * The result does not depend on how the bytes were split across calls; once a call returns
 * LG_OK or LG_ERROR, later calls return the same result and output.
 *
 * v1 (§2.1), strict: "PROXY" SP ( "TCP4" | "TCP6" ) SP src SP dst SP sport SP dport CRLF, or
 * "PROXY" SP "UNKNOWN" ( CRLF | SP <any bytes but CR and LF> CRLF ); at most LG_PP_V1_MAX bytes
 * including the CRLF. Exactly one space between fields; addresses in the canonical text forms of
 * lg_ip_parse() (lg_cidr.h), TCP4 holding an IPv4 and TCP6 an IPv6 address; ports 0..65535 in
 * decimal without leading zeros ("0" itself is fine); a CR must be followed by LF and an LF must
 * follow a CR. UNKNOWN gives no address (is_local).
 *
 * v2 (§2.2): the 12-byte signature, version 2, command LOCAL (0x0) or PROXY (0x1), one of the
 * seven family/protocol bytes of §2.2 (0x00, 0x11, 0x12, 0x21, 0x22, 0x31, 0x32), a 16-bit
 * length; 16 + length must not exceed LG_PP_MAX_HEADER.
 *   - LOCAL: the family is ignored (§2.2: "discard the protocol block including the family") and
 *     the length is skipped unread: no address, no TLVs looked at.
 *   - PROXY: a datagram protocol (0x12, 0x22, 0x32) is refused (LG_PP_E_DGRAM): legato's
 *     listeners are TCP and the relayed connection cannot have been a datagram flow. The address
 *     block (TCP4 12, TCP6 36, UNIX 216 bytes, UNSPEC none) must fit inside the length. The rest
 *     is TLVs (type, 16-bit length, value), walked and skipped: each TLV header must fit whole
 *     and each value must end within the header. The AUTHORITY TLV (0x02) is exposed; a second
 *     one is an error (two readers could pick different ones). Nothing else is interpreted:
 *     a CRC32C TLV is not verified (the spec makes that optional), SSL sub-TLVs are not walked.
 *     UNSPEC and UNIX give no IP address (is_local).
 *   IPv4-mapped IPv6 addresses are reported as sent; callers fold them with lg_ip_unmap().
 *
 * Writers (output side): lg_pp_write_v1() and lg_pp_write_v2() from an lg_pp_info_t. Families
 * are normalised the same way for both: IPv4-mapped IPv6 addresses are first unmapped; two IPv4
 * addresses give TCP4; otherwise the IPv4 one, if any, is mapped to ::ffff:a.b.c.d and TCP6 is
 * written. A family of 0 on either side (unknown) gives "PROXY UNKNOWN\r\n" in v1 and, in v2,
 * command PROXY with family AF_UNSPEC and no address block (TLVs still follow). v1 IPv6 text is
 * RFC 5952 (lower case, longest zero run compressed, ::ffff:a.b.c.d for mapped addresses).
 */
#ifndef LG_PROXYPROTO_H
#define LG_PROXYPROTO_H

#include "lg_common.h"

/* Which versions a listener accepts (lg_pp_parser_init). */
#define LG_PP_ACCEPT_V1  0x1
#define LG_PP_ACCEPT_V2  0x2
#define LG_PP_ACCEPT_ANY (LG_PP_ACCEPT_V1 | LG_PP_ACCEPT_V2)

/* bytes: the longest v1 line including CRLF (§2.1: "PROXY UNKNOWN" + two full IPv6 + ports). */
#define LG_PP_V1_MAX 107
/* bytes: the fixed part of a v2 header (signature, version/command, family, length). */
#define LG_PP_V2_FIXED 16
/*
 * bytes: the largest v2 header accepted (and written), fixed part included. The spec designs
 * headers to fit one 536-byte segment, but TLVs make them open-ended up to 16 + 65535 bytes, and
 * until the header is complete the peer is unauthenticated: the caller must hold its bytes. 4 KiB
 * holds every TLV legato writes (ALPN and AUTHORITY of at most 255 bytes each, UNIQUE_ID 128,
 * SSL version and cipher names, the JA3 hash and the JA4 fingerprint: under 1 KiB in all)
 * and what other senders add (cloud load balancers' custom TLVs of tens of bytes, an SSL CN, a
 * typical 1-2 KiB DER client certificate), while bounding what one connection can make a worker
 * buffer before it is trusted. A raw JA3 string (up to LG_JA3_MAX, about 2.7 KiB) together with
 * a raw JA4 string could pass it: send the hashed forms (the writer refuses, -EINVAL).
 */
#define LG_PP_MAX_HEADER 4096

#define LG_PP_UNIQUE_ID_MAX 128 /* bytes of a PP2_TYPE_UNIQUE_ID value (§2.2.5) */

#define LG_PP_FAM_NONE 0 /* family when no address was given (is_local) */

/* v2 TLV types (§2.2) written or read here. */
#define LG_PP_TLV_ALPN         0x01
#define LG_PP_TLV_AUTHORITY    0x02
#define LG_PP_TLV_UNIQUE_ID    0x05
#define LG_PP_TLV_SSL          0x20
#define LG_PP_SUBTLV_SSL_VER   0x21 /* PP2_SUBTYPE_SSL_VERSION */
#define LG_PP_SUBTLV_SSL_CIPH  0x23 /* PP2_SUBTYPE_SSL_CIPHER */
#define LG_PP_TLV_JA3          0xE0 /* custom range (§2.2.8): the JA3 text */
#define LG_PP_TLV_JA4          0xE1 /* custom range (§2.2.8): the JA4 text */
#define LG_PP_CLIENT_SSL       0x01 /* SSL TLV client flags (§2.2.6) */
#define LG_PP_CLIENT_CERT_CONN 0x02
#define LG_PP_CLIENT_CERT_SESS 0x04

/* Reasons for LG_ERROR (out->reason). */
enum {
    LG_PP_E_NONE = 0,
    LG_PP_E_NOT_PROXY,  /* the stream does not start with a PROXY protocol signature */
    LG_PP_E_VERSION,    /* a header of a version this listener does not accept */
    LG_PP_E_V1_SYNTAX,  /* v1: missing or extra space or field, CR without LF, LF without CR */
    LG_PP_E_V1_ADDRESS, /* v1: an address that is not canonical or not of the named family */
    LG_PP_E_V1_PORT,    /* v1: a port with a leading zero, a non-digit, or over 65535 */
    LG_PP_E_V2_VERSION, /* v2: the version nibble is not 2 */
    LG_PP_E_COMMAND,    /* v2: the command is neither LOCAL nor PROXY */
    LG_PP_E_FAMILY,     /* v1: not TCP4/TCP6/UNKNOWN; v2: not one of the seven family bytes */
    LG_PP_E_DGRAM,      /* v2: PROXY for a datagram protocol (UDP, unix dgram) */
    LG_PP_E_ADDR_LEN,   /* v2: the address block is longer than the header length */
    LG_PP_E_TLV,        /* v2: a TLV header or value past the end; a second AUTHORITY TLV */
    LG_PP_E_TOO_LONG,   /* v1: no CRLF within LG_PP_V1_MAX; v2: over LG_PP_MAX_HEADER */
    LG_PP_E_SHRANK,     /* caller bug: len smaller than in an earlier call */
};

/*
 * A parsed header. Written by lg_pp_parse() on LG_OK and LG_ERROR only; on LG_ERROR every field
 * but reason is zero.
 */
typedef struct lg_pp_header_s {
    int reason;           /* LG_PP_E_* on LG_ERROR, LG_PP_E_NONE on LG_OK */
    uint8_t version;      /* 1 or 2 */
    bool is_local;        /* no address given (v1 UNKNOWN; v2 LOCAL, UNSPEC or UNIX): the
                             connection's own peer address stands */
    uint8_t family;       /* LG_CIDR_V4 (4) or LG_CIDR_V6 (6); LG_PP_FAM_NONE when is_local */
    uint8_t src_addr[16]; /* big-endian; IPv4 in [0..3], the rest zero; all zero if is_local */
    uint8_t dst_addr[16];
    uint16_t src_port; /* host order; 0 if is_local */
    uint16_t dst_port;
    size_t header_len; /* bytes of the header at the start of buf */
    /* The AUTHORITY TLV's value (v2 PROXY only): points into the buf of this call, so it is valid
       as long as those bytes are; NULL when absent (a present empty value is non-NULL). */
    const uint8_t *authority;
    size_t authority_len;
} lg_pp_header_t;

/* Resumable parser state. Owned by the connection; no resources, nothing to free. */
typedef struct lg_pp_parser_s {
    int accept;           /* LG_PP_ACCEPT_* */
    int state;            /* where the next byte goes (see lg_proxyproto.c) */
    int result;           /* LG_AGAIN until decided, then LG_OK or LG_ERROR */
    size_t pos;           /* bytes of the buffer examined so far */
    size_t field_off;     /* v1: offset of the current field */
    size_t field_len;     /* v1: bytes of the current field */
    uint32_t port;        /* v1: value of the port being read */
    unsigned proto;       /* v1: bit set of protocol names still matching */
    bool v6;              /* v1: TCP6 */
    uint8_t cmd_fam[2];   /* v2: version/command and family bytes */
    size_t end;           /* v2: header length, 16 + the length field */
    size_t tlv_off;       /* v2: offset of the next TLV header */
    size_t authority_off; /* v2: offset of the AUTHORITY value, 0 if none */
    lg_pp_header_t hdr;   /* filled as the header is parsed, copied out when decided */
} lg_pp_parser_t;

/* Prepare a parser for a new connection; accept = LG_PP_ACCEPT_V1, _V2 or _ANY. */
void lg_pp_parser_init(lg_pp_parser_t *p, int accept);

/*
 * Parse the bytes received so far: `buf` starts with the first byte of the connection and holds
 * all `len` bytes since. Returns LG_OK, LG_AGAIN or LG_ERROR as described above and fills *out on
 * LG_OK and LG_ERROR (out is left untouched on LG_AGAIN). Never reads at or beyond `len`, nor
 * beyond the header once its end is known. A `len` smaller than in an earlier call is a caller
 * bug: LG_ERROR with LG_PP_E_SHRANK.
 */
int lg_pp_parse(lg_pp_parser_t *p, const uint8_t *buf, size_t len, lg_pp_header_t *out);

/* A short static English name for an LG_PP_E_* reason ("not a PROXY header", ...). */
const char *lg_pp_reason_name(int reason);

/* An optional byte string for a TLV: ptr == NULL means absent; ptr with len 0 is present, empty. */
typedef struct lg_pp_bytes_s {
    const void *ptr;
    size_t len;
} lg_pp_bytes_t;

/*
 * What a route sends to its upstream. Plain value type filled by the caller; the byte strings
 * are borrowed for the duration of the write call only.
 */
typedef struct lg_pp_info_s {
    uint8_t src_family;   /* 4, 6, or 0 = unknown (then nothing of the addresses is sent) */
    uint8_t dst_family;   /* 4, 6, or 0 = unknown */
    uint8_t src_addr[16]; /* big-endian; IPv4 in [0..3] */
    uint8_t dst_addr[16];
    uint16_t src_port; /* host order */
    uint16_t dst_port;
    /* v2 TLVs, written in this order when present. */
    lg_pp_bytes_t alpn;        /* 0x01: the negotiated protocol, e.g. "h2" */
    lg_pp_bytes_t authority;   /* 0x02: the SNI host name */
    lg_pp_bytes_t unique_id;   /* 0x05: at most LG_PP_UNIQUE_ID_MAX bytes */
    bool ssl;                  /* 0x20: write the SSL TLV */
    uint8_t ssl_client;        /* LG_PP_CLIENT_* flags */
    uint32_t ssl_verify;       /* 0 = client certificate verified (§2.2.6) */
    lg_pp_bytes_t ssl_version; /* sub-TLV 0x21, e.g. "TLSv1.3" */
    lg_pp_bytes_t ssl_cipher;  /* sub-TLV 0x23, e.g. "TLS_AES_128_GCM_SHA256" */
    lg_pp_bytes_t ja3;         /* 0xE0: the JA3 text, e.g. its 32 hex digits MD5 */
    lg_pp_bytes_t ja4;         /* 0xE1: the JA4 text, e.g. "t13d1516h2_8daaf6152771_..." */
} lg_pp_info_t;

/*
 * Write a v1 line (at most LG_PP_V1_MAX bytes) to out. Returns the number of bytes written,
 * -ENOSPC if cap is too small (nothing written), or -EINVAL if a family is not 0, 4 or 6.
 * TLV fields are ignored.
 */
int lg_pp_write_v1(const lg_pp_info_t *in, uint8_t *out, size_t cap);

/*
 * The exact number of bytes lg_pp_write_v2() writes for `in`, or 0 if it would fail with
 * -EINVAL.
 */
size_t lg_pp_v2_size(const lg_pp_info_t *in);

/*
 * Write a v2 header (command PROXY) with the TLVs present in `in`. Returns the number of bytes
 * written, -ENOSPC if cap is smaller than lg_pp_v2_size() (nothing written), or -EINVAL if a
 * family is not 0, 4 or 6, unique_id is longer than LG_PP_UNIQUE_ID_MAX, or the header would be
 * longer than LG_PP_MAX_HEADER (so that every header legato sends, legato also accepts).
 */
int lg_pp_write_v2(const lg_pp_info_t *in, uint8_t *out, size_t cap);

#endif /* LG_PROXYPROTO_H */
