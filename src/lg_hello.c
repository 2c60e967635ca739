/*
 * lg_hello.c — incremental TLS ClientHello parser (pure core: no I/O, no allocation, no globals).
 *
 * Two layers:
 *   1. Record layer (lg_hello_parse): walks the raw bytes record by record (RFC 8446 §5.1,
 *      RFC 5246 §6.2.1) and appends the handshake bytes to p->hs until the first handshake
 *      message is complete. It keeps its position in the parser, so each call costs only the
 *      bytes that are new since the previous call.
 *   2. Message layer (parse_hello): once the message and the record that completes it are whole,
 *      parses the ClientHello (RFC 8446 §4.1.2, RFC 5246 §7.4.1.2) and its extensions
 *      (RFC 8446 §4.2): server_name (RFC 6066 §3), ALPN (RFC 7301 §3.1), supported_groups
 *      (RFC 8446 §4.2.7), ec_point_formats (RFC 8422 §5.1.2), signature_algorithms
 *      (RFC 8446 §4.2.3), supported_versions (RFC 8446 §4.2.1).
 *
 * Invariants of lg_hello_parser_t between calls:
 *   - raw_off <= LG_HELLO_MAX_RAW, and raw_off <= the len of the previous call;
 *   - rec_left > 0 means raw[raw_off .. raw_off + rec_left) is the unread rest of a record body
 *     whose end has already been checked to be <= LG_HELLO_MAX_RAW;
 *   - hs_len <= LG_HELLO_MAX_HANDSHAKE, and once hs_len >= 4 the message length in hs[1..3] has
 *     been checked so that 4 + length <= LG_HELLO_MAX_HANDSHAKE; hs never holds more bytes than
 *     the message (bytes after it in the same record are skipped, not copied).
 * Every check is applied as soon as the bytes it needs are present and in stream order, so the
 * result does not depend on how the bytes were split across calls.
 *
 * DECLINED rules (not TLS): only the first record header can decline — its first byte is not
 * 0x16 (handshake; this includes SSLv2-compatible hellos, HTTP, SSH, and an alert sent first),
 * or its second byte (major version) is not 3. Each is decided as soon as that byte arrives.
 * Anything wrong after that is LG_ERROR.
 *
 * Wire lengths are widened to size_t and compared as `need <= remaining`; every inner length is
 * checked against the length that encloses it, and where the RFC says a length must fill its
 * container (extension bodies, the extensions block) it must fill it exactly.
 */
#include "lg_hello.h"
#include "lg_name.h"

#include <string.h>

#define RECORD_HEADER   5 /* bytes: type(1) version(2) length(2) */
#define HS_HEADER       4 /* bytes: msg_type(1) length(3) */
#define CT_HANDSHAKE    0x16
#define TLS_MAJOR       3
#define HS_CLIENT_HELLO 1
#define RANDOM_LEN      32 /* bytes: ClientHello.random */
#define MAX_SESSION_ID  32 /* bytes: legacy_session_id<0..32> */
#define SNI_NAME_HOST   0  /* ServerName.name_type host_name */
#define EXT_TYPES       65536
#define EXT_SEEN_WORDS  (EXT_TYPES / 64)

#define EXT_SERVER_NAME        0
#define EXT_SUPPORTED_GROUPS   10
#define EXT_EC_POINT_FORMATS   11
#define EXT_SIGNATURE_ALGS     13
#define EXT_ALPN               16
#define EXT_SUPPORTED_VERSIONS 43

/* A read cursor over a bounded byte range; `left` never exceeds the enclosing range. */
typedef struct hello_cur_s {
    const uint8_t *p;
    size_t left;
} hello_cur_t;

static bool cur_u8(hello_cur_t *c, size_t *v)
{
    if (c->left < 1) return false;
    *v = c->p[0];
    c->p += 1;
    c->left -= 1;
    return true;
}

static bool cur_u16(hello_cur_t *c, size_t *v)
{
    if (c->left < 2) return false;
    *v = ((size_t)c->p[0] << 8) | c->p[1];
    c->p += 2;
    c->left -= 2;
    return true;
}

/* Split off the next n bytes as *sub; fails unless n <= what is left. */
static bool cur_sub(hello_cur_t *c, size_t n, hello_cur_t *sub)
{
    if (n > c->left) return false;
    sub->p = c->p;
    sub->left = n;
    c->p += n;
    c->left -= n;
    return true;
}

/* Read a length prefix of `width` (1 or 2) bytes and split off that many bytes as *sub. */
static bool cur_vec(hello_cur_t *c, int width, hello_cur_t *sub)
{
    size_t n;
    if (!(width == 1 ? cur_u8(c, &n) : cur_u16(c, &n))) return false;
    return cur_sub(c, n, sub);
}

/*
 * A list of uint16 values filling `c` exactly (ciphers, groups, sigalgs, versions): at least one
 * entry, an even number of bytes. Keeps the first `cap` entries and flags the rest.
 */
static int read_u16_list(hello_cur_t c, uint16_t *arr, size_t cap, uint16_t *n, bool *truncated)
{
    if (c.left < 2 || c.left % 2 != 0) return LG_HELLO_E_MALFORMED;
    size_t kept = 0;
    for (size_t i = 0; i < c.left; i += 2) {
        if (kept < cap) {
            arr[kept++] = (uint16_t)(((unsigned)c.p[i] << 8) | c.p[i + 1]);
        } else {
            *truncated = true;
        }
    }
    *n = (uint16_t)kept;
    return LG_HELLO_E_NONE;
}

/* An extension body that is one vector with a `width`-byte length prefix, filling it exactly. */
static bool ext_vec(hello_cur_t ext, int width, hello_cur_t *list)
{
    return cur_vec(&ext, width, list) && ext.left == 0;
}

/* Validate and normalise a host_name into out->sni with the SNI grammar of lg_name. */
static int take_sni(hello_cur_t name, lg_hello_t *out)
{
    int n = lg_name_norm((const char *)name.p, name.left, LG_NAME_SNI, out->sni, LG_HELLO_MAX_SNI);
    if (n < 0) return LG_HELLO_E_SNI;
    out->sni[n] = '\0';
    out->sni_len = (uint8_t)n;
    out->has_sni = true;
    return LG_HELLO_E_NONE;
}

/*
 * server_name (RFC 6066 §3): ServerNameList<1..2^16-1> filling the extension; each entry is
 * name_type(1) + a u16-length-prefixed name, and every entry must fit the list. The host_name
 * entry is taken, and a second one refused (one name per name_type; OpenSSL refuses any list but
 * a single host_name, Go a second host_name); entries of other types are only length-checked.
 */
static int ext_server_name(hello_cur_t ext, lg_hello_t *out)
{
    hello_cur_t list;
    if (!ext_vec(ext, 2, &list) || list.left == 0) return LG_HELLO_E_MALFORMED;
    bool taken = false;
    size_t type;
    while (cur_u8(&list, &type)) {
        hello_cur_t name;
        if (!cur_vec(&list, 2, &name)) return LG_HELLO_E_MALFORMED;
        if (type != SNI_NAME_HOST) continue;
        if (taken) return LG_HELLO_E_SNI;
        int r = take_sni(name, out);
        if (r != LG_HELLO_E_NONE) return r;
        taken = true;
    }
    return LG_HELLO_E_NONE;
}

/* ALPN (RFC 7301 §3.1): ProtocolNameList<2..2^16-1> of ProtocolName<1..2^8-1>. */
static int ext_alpn(hello_cur_t ext, lg_hello_t *out)
{
    hello_cur_t list;
    if (!ext_vec(ext, 2, &list) || list.left == 0) return LG_HELLO_E_MALFORMED;
    size_t kept = 0;
    while (list.left > 0) {
        hello_cur_t name;
        if (!cur_vec(&list, 1, &name) || name.left == 0) return LG_HELLO_E_MALFORMED;
        if (kept < LG_HELLO_MAX_ALPN) {
            size_t off = kept * LG_HELLO_MAX_ALPN_LEN;
            memcpy(out->alpn_buf + off, name.p, name.left);
            out->alpn_off[kept] = (uint16_t)off;
            out->alpn_len[kept] = (uint8_t)name.left;
            kept++;
        } else {
            out->alpn_truncated = true;
        }
    }
    out->n_alpn = (uint16_t)kept;
    return LG_HELLO_E_NONE;
}

/* ec_point_formats (RFC 8422 §5.1.2): ECPointFormat ec_point_format_list<1..2^8-1>. */
static int ext_point_formats(hello_cur_t ext, lg_hello_t *out)
{
    hello_cur_t list;
    if (!ext_vec(ext, 1, &list) || list.left == 0) return LG_HELLO_E_MALFORMED;
    size_t kept = 0;
    for (size_t i = 0; i < list.left; i++) {
        if (kept < LG_HELLO_MAX_POINTFMTS) {
            out->pointfmts[kept++] = list.p[i];
        } else {
            out->pointfmts_truncated = true;
        }
    }
    out->n_pointfmts = (uint16_t)kept;
    return LG_HELLO_E_NONE;
}

/* Dispatch one extension body by type; unknown types are skipped (their length already fits). */
static int parse_ext(size_t type, hello_cur_t ext, lg_hello_t *out)
{
    hello_cur_t list;
    switch (type) {
    case EXT_SERVER_NAME:
        return ext_server_name(ext, out);
    case EXT_ALPN:
        return ext_alpn(ext, out);
    case EXT_EC_POINT_FORMATS:
        return ext_point_formats(ext, out);
    case EXT_SUPPORTED_GROUPS: /* NamedGroup named_group_list<2..2^16-1> */
        if (!ext_vec(ext, 2, &list)) return LG_HELLO_E_MALFORMED;
        return read_u16_list(list, out->groups, LG_HELLO_MAX_GROUPS, &out->n_groups,
                             &out->groups_truncated);
    case EXT_SIGNATURE_ALGS: /* SignatureScheme supported_signature_algorithms<2..2^16-2> */
        if (!ext_vec(ext, 2, &list)) return LG_HELLO_E_MALFORMED;
        return read_u16_list(list, out->sigalgs, LG_HELLO_MAX_SIGALGS, &out->n_sigalgs,
                             &out->sigalgs_truncated);
    case EXT_SUPPORTED_VERSIONS: /* ClientHello form: ProtocolVersion versions<2..254> */
        if (!ext_vec(ext, 1, &list) || list.left > 254) return LG_HELLO_E_MALFORMED;
        return read_u16_list(list, out->versions, LG_HELLO_MAX_VERSIONS, &out->n_versions,
                             &out->versions_truncated);
    default:
        return LG_HELLO_E_NONE;
    }
}

/*
 * Parse a complete ClientHello body (the handshake message without its 4-byte header) into
 * `out`, which the caller has zeroed. Returns LG_HELLO_E_NONE or the reason it is invalid.
 */
static int parse_hello(hello_cur_t c, lg_hello_t *out)
{
    size_t version;
    hello_cur_t skip, ciphers, comp;
    if (!cur_u16(&c, &version)) return LG_HELLO_E_MALFORMED;
    out->legacy_version = (uint16_t)version;
    if (!cur_sub(&c, RANDOM_LEN, &skip)) return LG_HELLO_E_MALFORMED;
    if (!cur_vec(&c, 1, &skip) || skip.left > MAX_SESSION_ID) return LG_HELLO_E_MALFORMED;
    if (!cur_vec(&c, 2, &ciphers)) return LG_HELLO_E_MALFORMED;
    int r = read_u16_list(ciphers, out->ciphers, LG_HELLO_MAX_CIPHERS, &out->n_ciphers,
                          &out->ciphers_truncated);
    if (r != LG_HELLO_E_NONE) return r;
    /* legacy_compression_methods<1..2^8-1> */
    if (!cur_vec(&c, 1, &comp) || comp.left == 0) return LG_HELLO_E_MALFORMED;

    /* No extensions at all is valid (SSLv3 / TLS 1.0 style, RFC 5246 §7.4.1.2). */
    if (c.left == 0) return LG_HELLO_E_NONE;

    /* The extensions block must fill the rest of the message exactly. */
    hello_cur_t exts;
    if (!cur_vec(&c, 2, &exts) || c.left != 0) return LG_HELLO_E_MALFORMED;

    /* One bit per extension type for duplicate detection (RFC 8446 §4.2): 8 KiB of stack. */
    uint64_t seen[EXT_SEEN_WORDS];
    memset(seen, 0, sizeof(seen));
    size_t kept = 0;
    while (exts.left > 0) {
        size_t type;
        hello_cur_t body;
        if (!cur_u16(&exts, &type) || !cur_vec(&exts, 2, &body)) return LG_HELLO_E_MALFORMED;
        uint64_t bit = (uint64_t)1 << (type % 64);
        if (seen[type / 64] & bit) return LG_HELLO_E_DUP_EXT;
        seen[type / 64] |= bit;
        if (kept < LG_HELLO_MAX_EXTS) {
            out->exts[kept++] = (uint16_t)type;
        } else {
            out->exts_truncated = true;
        }
        r = parse_ext(type, body, out);
        if (r != LG_HELLO_E_NONE) return r;
    }
    out->n_exts = (uint16_t)kept;
    return LG_HELLO_E_NONE;
}

/* Length of the handshake message body from its header; only valid once hs_len >= 4. */
static size_t hs_body_len(const lg_hello_parser_t *p)
{
    return ((size_t)p->hs[1] << 16) | ((size_t)p->hs[2] << 8) | p->hs[3];
}

/* Bytes still missing from the handshake message: the header first, then the body. */
static size_t hs_missing(const lg_hello_parser_t *p)
{
    if (p->hs_len < HS_HEADER) return HS_HEADER - p->hs_len;
    return HS_HEADER + hs_body_len(p) - p->hs_len;
}

/* Checks on the handshake header bytes present so far; LG_HELLO_E_NONE if none fails. */
static int hs_check(const lg_hello_parser_t *p)
{
    if (p->hs_len >= 1 && p->hs[0] != HS_CLIENT_HELLO) return LG_HELLO_E_NOT_HELLO;
    if (p->hs_len >= HS_HEADER && hs_body_len(p) > LG_HELLO_MAX_HANDSHAKE - HS_HEADER) {
        return LG_HELLO_E_TOO_BIG;
    }
    return LG_HELLO_E_NONE;
}

static int fail(lg_hello_t *out, int reason)
{
    out->reason = reason;
    return LG_ERROR;
}

/*
 * Read the next record header at raw[p->raw_off]. Returns LG_OK when it was consumed (rec_left
 * is then set), LG_AGAIN when it is incomplete, or LG_DECLINED / LG_ERROR. Checks run in byte
 * order so that a partial header is judged as early as its bytes allow.
 */
static int read_record_header(lg_hello_parser_t *p, const uint8_t *raw, size_t len, lg_hello_t *out)
{
    bool first = p->raw_off == 0;
    size_t avail = len - p->raw_off;
    if (avail < 1) return LG_AGAIN; /* also keeps raw == NULL with len == 0 from being offset */
    const uint8_t *h = raw + p->raw_off;

    if (h[0] != CT_HANDSHAKE) return first ? LG_DECLINED : fail(out, LG_HELLO_E_INTERLEAVED);
    if (avail < 2) return LG_AGAIN;
    if (h[1] != TLS_MAJOR) return first ? LG_DECLINED : fail(out, LG_HELLO_E_RECORD);
    if (avail < RECORD_HEADER) return LG_AGAIN;

    size_t rec_len = ((size_t)h[3] << 8) | h[4];
    if (rec_len == 0 || rec_len > LG_HELLO_MAX_RECORD) return fail(out, LG_HELLO_E_RECORD);
    /* The whole record must end within LG_HELLO_MAX_RAW (raw_off <= LG_HELLO_MAX_RAW holds). */
    size_t room = LG_HELLO_MAX_RAW - p->raw_off;
    if (room < RECORD_HEADER || rec_len > room - RECORD_HEADER) {
        return fail(out, LG_HELLO_E_TOO_BIG);
    }
    if (first) p->record_version = (uint16_t)(((unsigned)h[1] << 8) | h[2]);
    p->raw_off += RECORD_HEADER;
    p->rec_left = rec_len;
    return LG_OK;
}

void lg_hello_parser_init(lg_hello_parser_t *p)
{
    p->raw_off = 0;
    p->rec_left = 0;
    p->hs_len = 0;
    p->record_version = 0;
}

int lg_hello_parse(lg_hello_parser_t *p, const uint8_t *raw, size_t len, lg_hello_t *out,
                   size_t *hello_end)
{
    /* `len` may only grow: a shorter buffer than already consumed is a caller bug. */
    if (len < p->raw_off) return fail(out, LG_HELLO_E_MALFORMED);

    for (;;) {
        int reason = hs_check(p);
        if (reason != LG_HELLO_E_NONE) return fail(out, reason);

        if (p->rec_left == 0) {
            if (hs_missing(p) == 0) {
                /* Message and the record completing it are whole: parse the ClientHello. */
                hello_cur_t body = {p->hs + HS_HEADER, p->hs_len - HS_HEADER};
                memset(out, 0, sizeof(*out));
                reason = parse_hello(body, out);
                if (reason != LG_HELLO_E_NONE) return fail(out, reason);
                out->record_version = p->record_version;
                if (hello_end != NULL) *hello_end = p->raw_off;
                return LG_OK;
            }
            int rc = read_record_header(p, raw, len, out);
            if (rc != LG_OK) return rc;
            continue;
        }

        /* Inside a record body: copy what the message still needs, skip the rest. */
        size_t avail = LG_MIN(len - p->raw_off, p->rec_left);
        if (avail == 0) return LG_AGAIN;
        size_t missing = hs_missing(p);
        size_t take = LG_MIN(avail, missing);
        if (take > 0) {
            memcpy(p->hs + p->hs_len, raw + p->raw_off, take);
            p->hs_len += take;
        } else {
            /* Message complete: the record's remaining bytes are not part of the hello. */
            take = avail;
        }
        p->raw_off += take;
        p->rec_left -= take;
    }
}

const char *lg_hello_reason_name(int reason)
{
    switch (reason) {
    case LG_HELLO_E_NONE:
        return "none";
    case LG_HELLO_E_RECORD:
        return "bad record header";
    case LG_HELLO_E_NOT_HELLO:
        return "not a ClientHello";
    case LG_HELLO_E_TOO_BIG:
        return "too big";
    case LG_HELLO_E_INTERLEAVED:
        return "non-handshake record inside the hello";
    case LG_HELLO_E_MALFORMED:
        return "malformed";
    case LG_HELLO_E_SNI:
        return "invalid server name";
    case LG_HELLO_E_DUP_EXT:
        return "duplicate extension";
    default:
        return "unknown";
    }
}
