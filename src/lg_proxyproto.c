/*
 * lg_proxyproto.c — PROXY protocol v1/v2 header parser and writers (pure core; see
 * lg_proxyproto.h for the accepted grammar, the limits and the results).
 *
 * Parser shape: the first byte picks the version ('P' → v1, CR → v2, anything else is not a
 * PROXY header). v1 and the 16-byte fixed part of v2 are read by a byte-at-a-time state machine
 * that remembers how many bytes it has examined (pos), so each byte is judged once, as it
 * arrives, and an error is reported at the byte that causes it. The only bytes read twice are a
 * v1 address (at most LG_IP_TEXT_MAX bytes), once more when the space ending it arrives, to
 * parse it as a whole with lg_ip_parse(). After the fixed part of v2 the header length is known:
 * the TLVs are walked as their 3-byte headers arrive (tlv_off is the next one), each value length
 * checked against the bytes left in the header, and the header is complete when the last of its
 * `end` bytes is there. Addresses and ports are copied out of the buffer at that moment.
 *
 * Invariants:
 *   - pos <= len of the latest call, and pos <= the header length once that is known: nothing
 *     at or beyond len, and nothing after the header, is ever read;
 *   - v1: pos < LG_PP_V1_MAX while undecided (checked before each byte's meaning, so a 108-byte
 *     line is LG_PP_E_TOO_LONG whatever its 108th byte is); v2: end <= LG_PP_MAX_HEADER, and
 *     tlv_off <= end;
 *   - result is LG_AGAIN until decided; afterwards nothing changes.
 *
 * Writer shape: the address families are normalised once (pp_normalise), then the v1 line is
 * built in a local buffer and the v2 header is laid out by one size computation (pp_v2_layout)
 * shared by lg_pp_v2_size() and lg_pp_write_v2(), so the size reported is the size written.
 *
 * Spec sections: doc/proxy-protocol.txt §2.1 (v1), §2.2 (v2 fixed part and address blocks),
 * §2.2.1 ALPN, §2.2.2 AUTHORITY, §2.2.5 UNIQUE_ID, §2.2.6 SSL, §2.2.8 custom TLV range;
 * RFC 5952 §4 and §5 for the IPv6 text written in v1.
 */
#include "lg_proxyproto.h"

#include <string.h>

#include "lg_cidr.h"

/* §2.2: the v2 signature; it holds a NUL, so it is never a C string. */
static const uint8_t pp_v2_sig[12] = {0x0D, 0x0A, 0x0D, 0x0A, 0x00, 0x0D,
                                      0x0A, 0x51, 0x55, 0x49, 0x54, 0x0A};
static const char pp_v1_sig[] = "PROXY "; /* "PROXY" identifies v1 (§2.2); then one space */

#define PP_V1_SIG_ID    5  /* bytes of "PROXY": enough to know the peer speaks v1 */
#define PP_V2_SIG_LEN   12 /* bytes of pp_v2_sig */
#define PP_V2_OFF_VER   12 /* offset of the version/command byte */
#define PP_V2_OFF_FAM   13 /* offset of the family/protocol byte */
#define PP_V2_OFF_LEN   14 /* offset of the 16-bit length, big-endian */
#define PP_V2_VERSION   0x2
#define PP_CMD_LOCAL    0x0
#define PP_CMD_PROXY    0x1
#define PP_PROTO_DGRAM  0x2  /* low nibble of the family byte */
#define PP_FAM_UNSPEC   0x00 /* the seven family/protocol bytes of §2.2 */
#define PP_FAM_TCP4     0x11
#define PP_FAM_UDP4     0x12
#define PP_FAM_TCP6     0x21
#define PP_FAM_UDP6     0x22
#define PP_FAM_UNIX_STR 0x31
#define PP_FAM_UNIX_DGR 0x32
#define PP_ADDR_INET    12     /* bytes: 2 × 4 + 2 × 2 */
#define PP_ADDR_INET6   36     /* bytes: 2 × 16 + 2 × 2 */
#define PP_ADDR_UNIX    216    /* bytes: 2 × 108 */
#define PP_TLV_HDR      3      /* bytes: type, 16-bit length */
#define PP_TLV_VAL_MAX  0xFFFF /* bytes: a TLV value's length field */
#define PP_SSL_FIXED    5      /* bytes: client flags, 32-bit verify */
#define PP_V4_TEXT_MAX  15     /* bytes: "255.255.255.255" */
#define PP_PORT_MAX     65535

/* Where the next byte goes. */
enum {
    PS_START = 0,  /* the first byte: picks the version */
    PS_V1_SIG,     /* inside "PROXY " (pos is the index) */
    PS_V1_PROTO,   /* inside the protocol name (proto: names still matching) */
    PS_V1_SRC,     /* inside the source address (field_off, field_len) */
    PS_V1_DST,     /* inside the destination address */
    PS_V1_SPORT,   /* inside the source port (port, field_len digits) */
    PS_V1_DPORT,   /* inside the destination port */
    PS_V1_UNKNOWN, /* after "UNKNOWN ": anything but CR and LF */
    PS_V1_LF,      /* after the CR ending the line: LF must follow */
    PS_V2_FIXED,   /* inside the 16-byte fixed part (pos is the offset) */
    PS_V2_BODY,    /* the addresses and TLVs: walked by pp_v2_body, not byte by byte */
    PS_DONE,       /* decided: result holds LG_OK or LG_ERROR */
};

/* v1 protocol names, as bits of lg_pp_parser_t.proto. */
enum { PP_TCP4 = 0, PP_TCP6, PP_UNKNOWN, PP_N_PROTOS };
static const char *const pp_protos[PP_N_PROTOS] = {"TCP4", "TCP6", "UNKNOWN"};
static const size_t pp_proto_len[PP_N_PROTOS] = {4, 4, 7};

void lg_pp_parser_init(lg_pp_parser_t *p, int accept)
{
    memset(p, 0, sizeof(*p));
    p->accept = accept;
    p->state = PS_START;
    p->result = LG_AGAIN;
}

/* Record a decision of LG_ERROR: every output field but the reason is zero. */
static int pp_fail(lg_pp_parser_t *p, int reason)
{
    memset(&p->hdr, 0, sizeof(p->hdr));
    p->hdr.reason = reason;
    p->authority_off = 0;
    p->state = PS_DONE;
    p->result = LG_ERROR;
    return LG_ERROR;
}

static int pp_done(lg_pp_parser_t *p, size_t header_len)
{
    p->hdr.reason = LG_PP_E_NONE;
    p->hdr.header_len = header_len;
    p->state = PS_DONE;
    p->result = LG_OK;
    return LG_OK;
}

static bool pp_hex(unsigned char c)
{
    return (c >= '0' && c <= '9') || (c >= 'a' && c <= 'f') || (c >= 'A' && c <= 'F');
}

/* Can c appear in a TCP4 (v6 false) or TCP6 address text? */
static bool pp_addr_char(unsigned char c, bool v6)
{
    if ((c >= '0' && c <= '9') || c == '.') return true;
    return v6 && (c == ':' || pp_hex(c));
}

/* Start reading the next v1 field at offset `off`. */
static void pp_v1_field(lg_pp_parser_t *p, int state, size_t off)
{
    p->state = state;
    p->field_off = off;
    p->field_len = 0;
    p->port = 0;
}

/* The protocol name ended (with a space or CR at `pos`): what follows depends on it. */
static int pp_v1_proto_end(lg_pp_parser_t *p, unsigned char c, size_t pos)
{
    int which = -1;
    if (p->field_len == 0) return pp_fail(p, LG_PP_E_V1_SYNTAX); /* "PROXY  " */
    for (int i = 0; i < PP_N_PROTOS; i++) {
        if ((p->proto & (1u << i)) && pp_proto_len[i] == p->field_len) which = i;
    }
    if (which < 0) return pp_fail(p, LG_PP_E_FAMILY); /* a prefix such as "TCP" */
    if (which == PP_UNKNOWN) {
        p->state = c == ' ' ? PS_V1_UNKNOWN : PS_V1_LF;
        return LG_AGAIN;
    }
    if (c == '\r') return pp_fail(p, LG_PP_E_V1_SYNTAX); /* "PROXY TCP4\r": no addresses */
    p->v6 = which == PP_TCP6;
    pp_v1_field(p, PS_V1_SRC, pos + 1);
    return LG_AGAIN;
}

/* One byte of the protocol name: it must extend one of the names still matching. */
static int pp_v1_proto_byte(lg_pp_parser_t *p, unsigned char c)
{
    unsigned next = 0;
    for (int i = 0; i < PP_N_PROTOS; i++) {
        if ((p->proto & (1u << i)) && p->field_len < pp_proto_len[i] &&
            c == (unsigned char)pp_protos[i][p->field_len]) {
            next |= 1u << i;
        }
    }
    if (next == 0) return pp_fail(p, LG_PP_E_FAMILY);
    p->proto = next;
    p->field_len++;
    return LG_AGAIN;
}

/* An address ended with the space at `pos`: parse it whole. */
static int pp_v1_addr_end(lg_pp_parser_t *p, const uint8_t *buf, size_t pos)
{
    uint8_t family;
    bool src = p->state == PS_V1_SRC;
    uint8_t *addr = src ? p->hdr.src_addr : p->hdr.dst_addr;

    if (p->field_len == 0) return pp_fail(p, LG_PP_E_V1_SYNTAX); /* two spaces */
    if (lg_ip_parse((const char *)buf + p->field_off, p->field_len, &family, addr) != 0 ||
        family != (p->v6 ? LG_CIDR_V6 : LG_CIDR_V4)) {
        return pp_fail(p, LG_PP_E_V1_ADDRESS);
    }
    pp_v1_field(p, src ? PS_V1_DST : PS_V1_SPORT, pos + 1);
    return LG_AGAIN;
}

/* One byte of a port, or the byte ending it (a space after sport, CR after dport). */
static int pp_v1_port_byte(lg_pp_parser_t *p, unsigned char c)
{
    bool sport = p->state == PS_V1_SPORT;

    if (c >= '0' && c <= '9') {
        if (p->field_len == 1 && p->port == 0) return pp_fail(p, LG_PP_E_V1_PORT); /* "08" */
        p->port = p->port * 10 + (uint32_t)(c - '0');
        if (p->port > PP_PORT_MAX) return pp_fail(p, LG_PP_E_V1_PORT);
        p->field_len++;
        return LG_AGAIN;
    }
    if ((sport && c == ' ') || (!sport && c == '\r')) {
        if (p->field_len == 0) return pp_fail(p, LG_PP_E_V1_SYNTAX);
        if (sport) {
            p->hdr.src_port = (uint16_t)p->port;
            pp_v1_field(p, PS_V1_DPORT, 0);
        } else {
            p->hdr.dst_port = (uint16_t)p->port;
            p->state = PS_V1_LF;
        }
        return LG_AGAIN;
    }
    /* A space or CR in the wrong place is structure (a missing or extra field), not a port. */
    if (c == ' ' || c == '\r') return pp_fail(p, LG_PP_E_V1_SYNTAX);
    return pp_fail(p, LG_PP_E_V1_PORT);
}

/* The LF ending a v1 line is byte `pos`. */
static int pp_v1_done(lg_pp_parser_t *p, size_t pos)
{
    p->hdr.version = 1;
    if (p->proto == 1u << PP_UNKNOWN) {
        p->hdr.is_local = true;
        p->hdr.family = LG_PP_FAM_NONE;
    } else {
        p->hdr.family = p->v6 ? LG_CIDR_V6 : LG_CIDR_V4;
    }
    return pp_done(p, pos + 1);
}

/* Feed v1 byte `pos` (pos >= 1; byte 0 was 'P'). Returns LG_AGAIN to continue, or the decision. */
static int pp_v1_byte(lg_pp_parser_t *p, const uint8_t *buf, size_t pos)
{
    unsigned char c = buf[pos];

    if (p->state == PS_V1_SIG) {
        if (pos < PP_V1_SIG_ID) {
            if (c != (unsigned char)pp_v1_sig[pos]) return pp_fail(p, LG_PP_E_NOT_PROXY);
            if (pos == PP_V1_SIG_ID - 1 && !(p->accept & LG_PP_ACCEPT_V1)) {
                return pp_fail(p, LG_PP_E_VERSION);
            }
            return LG_AGAIN;
        }
        if (c != ' ') return pp_fail(p, LG_PP_E_V1_SYNTAX); /* "PROXY\r\n", "PROXYTCP4" */
        p->state = PS_V1_PROTO;
        p->proto = (1u << PP_N_PROTOS) - 1;
        p->field_len = 0;
        return LG_AGAIN;
    }
    /* The length limit first: byte LG_PP_V1_MAX + 1 is too many, whatever it is. */
    if (pos >= LG_PP_V1_MAX) return pp_fail(p, LG_PP_E_TOO_LONG);
    if (c == '\n') {
        if (p->state == PS_V1_LF) return pp_v1_done(p, pos);
        return pp_fail(p, LG_PP_E_V1_SYNTAX); /* LF without CR (§2.1) */
    }

    switch (p->state) {
    case PS_V1_PROTO:
        if (c == ' ' || c == '\r') return pp_v1_proto_end(p, c, pos);
        return pp_v1_proto_byte(p, c);

    case PS_V1_SRC:
    case PS_V1_DST:
        if (c == ' ') return pp_v1_addr_end(p, buf, pos);
        if (c == '\r') return pp_fail(p, LG_PP_E_V1_SYNTAX); /* fields missing */
        if (!pp_addr_char(c, p->v6)) return pp_fail(p, LG_PP_E_V1_ADDRESS);
        if (++p->field_len > (p->v6 ? LG_IP_TEXT_MAX : PP_V4_TEXT_MAX)) {
            return pp_fail(p, LG_PP_E_V1_ADDRESS);
        }
        return LG_AGAIN;

    case PS_V1_SPORT:
    case PS_V1_DPORT:
        return pp_v1_port_byte(p, c);

    case PS_V1_UNKNOWN:
        if (c == '\r') p->state = PS_V1_LF;
        return LG_AGAIN; /* §2.1: the receiver ignores what UNKNOWN is followed by */

    case PS_V1_LF:
        return pp_fail(p, LG_PP_E_V1_SYNTAX); /* CR not followed by LF */

    default:
        return p->result;
    }
}

/* Is b one of the seven family/protocol bytes of §2.2? */
static bool pp_v2_family_known(uint8_t b)
{
    switch (b) {
    case PP_FAM_UNSPEC:
    case PP_FAM_TCP4:
    case PP_FAM_UDP4:
    case PP_FAM_TCP6:
    case PP_FAM_UDP6:
    case PP_FAM_UNIX_STR:
    case PP_FAM_UNIX_DGR:
        return true;
    default:
        return false;
    }
}

/* Bytes of the address block of a (stream) family byte under the PROXY command. */
static size_t pp_v2_addr_len(uint8_t fam)
{
    switch (fam) {
    case PP_FAM_TCP4:
        return PP_ADDR_INET;
    case PP_FAM_TCP6:
        return PP_ADDR_INET6;
    case PP_FAM_UNIX_STR:
        return PP_ADDR_UNIX;
    default:
        return 0; /* UNSPEC */
    }
}

/* Feed byte `pos` (< 16) of the v2 fixed part. Returns LG_AGAIN to continue, or LG_ERROR. */
static int pp_v2_fixed(lg_pp_parser_t *p, const uint8_t *buf, size_t pos)
{
    uint8_t c = buf[pos];

    if (pos < PP_V2_SIG_LEN) {
        if (c != pp_v2_sig[pos]) return pp_fail(p, LG_PP_E_NOT_PROXY);
        if (pos == PP_V2_SIG_LEN - 1 && !(p->accept & LG_PP_ACCEPT_V2)) {
            return pp_fail(p, LG_PP_E_VERSION);
        }
        return LG_AGAIN;
    }
    switch (pos) {
    case PP_V2_OFF_VER:
        if (c >> 4 != PP_V2_VERSION) return pp_fail(p, LG_PP_E_V2_VERSION);
        if ((c & 0xF) != PP_CMD_LOCAL && (c & 0xF) != PP_CMD_PROXY) {
            return pp_fail(p, LG_PP_E_COMMAND);
        }
        p->cmd_fam[0] = c;
        return LG_AGAIN;
    case PP_V2_OFF_FAM:
        if (!pp_v2_family_known(c)) return pp_fail(p, LG_PP_E_FAMILY);
        if ((p->cmd_fam[0] & 0xF) == PP_CMD_PROXY && (c & 0xF) == PP_PROTO_DGRAM) {
            return pp_fail(p, LG_PP_E_DGRAM);
        }
        p->cmd_fam[1] = c;
        return LG_AGAIN;
    case PP_V2_OFF_LEN:
        /* The high byte alone can already put the header over the cap. */
        if (LG_PP_V2_FIXED + ((size_t)c << 8) > LG_PP_MAX_HEADER) {
            return pp_fail(p, LG_PP_E_TOO_LONG);
        }
        return LG_AGAIN;
    default: /* PP_V2_OFF_LEN + 1: the length is known */
        break;
    }
    size_t body = (size_t)buf[PP_V2_OFF_LEN] << 8 | c;
    p->end = LG_PP_V2_FIXED + body;
    if (p->end > LG_PP_MAX_HEADER) return pp_fail(p, LG_PP_E_TOO_LONG);
    if ((p->cmd_fam[0] & 0xF) == PP_CMD_LOCAL) {
        p->tlv_off = p->end; /* LOCAL: the block is skipped unread */
    } else {
        size_t addr = pp_v2_addr_len(p->cmd_fam[1]);
        if (addr > body) return pp_fail(p, LG_PP_E_ADDR_LEN);
        p->tlv_off = LG_PP_V2_FIXED + addr;
    }
    p->state = PS_V2_BODY;
    return LG_AGAIN;
}

static uint16_t pp_load16(const uint8_t *b)
{
    return (uint16_t)(b[0] << 8 | b[1]);
}

/* The whole header is in buf: fill in the result. */
static int pp_v2_done(lg_pp_parser_t *p, const uint8_t *buf)
{
    const uint8_t *a = buf + LG_PP_V2_FIXED;

    p->hdr.version = 2;
    if ((p->cmd_fam[0] & 0xF) == PP_CMD_PROXY && p->cmd_fam[1] == PP_FAM_TCP4) {
        p->hdr.family = LG_CIDR_V4;
        memcpy(p->hdr.src_addr, a, 4);
        memcpy(p->hdr.dst_addr, a + 4, 4);
        p->hdr.src_port = pp_load16(a + 8);
        p->hdr.dst_port = pp_load16(a + 10);
    } else if ((p->cmd_fam[0] & 0xF) == PP_CMD_PROXY && p->cmd_fam[1] == PP_FAM_TCP6) {
        p->hdr.family = LG_CIDR_V6;
        memcpy(p->hdr.src_addr, a, 16);
        memcpy(p->hdr.dst_addr, a + 16, 16);
        p->hdr.src_port = pp_load16(a + 32);
        p->hdr.dst_port = pp_load16(a + 34);
    } else {
        p->hdr.is_local = true; /* LOCAL, UNSPEC or UNIX: no IP address */
        p->hdr.family = LG_PP_FAM_NONE;
    }
    p->pos = p->end;
    return pp_done(p, p->end);
}

/*
 * Walk the TLVs whose headers have arrived, then complete the header once all `end` bytes are
 * there. Each check runs as soon as its bytes are in: a TLV header that cannot fit in what is
 * left of the header is refused when the previous TLV ends, a value running past the end when
 * its length arrives.
 */
static int pp_v2_body(lg_pp_parser_t *p, const uint8_t *buf, size_t len)
{
    while (p->tlv_off < p->end) {
        size_t left = p->end - p->tlv_off;
        if (left < PP_TLV_HDR) return pp_fail(p, LG_PP_E_TLV);
        if (len < p->tlv_off + PP_TLV_HDR) {
            p->pos = len;
            return LG_AGAIN;
        }
        const uint8_t *t = buf + p->tlv_off;
        size_t vlen = pp_load16(t + 1);
        if (vlen > left - PP_TLV_HDR) return pp_fail(p, LG_PP_E_TLV);
        if (t[0] == LG_PP_TLV_AUTHORITY) {
            if (p->authority_off != 0) return pp_fail(p, LG_PP_E_TLV);
            p->authority_off = p->tlv_off + PP_TLV_HDR;
            p->hdr.authority_len = vlen;
        }
        p->tlv_off += PP_TLV_HDR + vlen;
    }
    if (len < p->end) {
        p->pos = len;
        return LG_AGAIN;
    }
    return pp_v2_done(p, buf);
}

/* Feed byte `pos` before the v2 body. Returns LG_AGAIN to continue, or the decision. */
static int pp_byte(lg_pp_parser_t *p, const uint8_t *buf, size_t pos)
{
    if (p->state == PS_START) {
        if (buf[0] == (unsigned char)pp_v1_sig[0]) {
            p->state = PS_V1_SIG;
        } else if (buf[0] == pp_v2_sig[0]) {
            p->state = PS_V2_FIXED;
        } else {
            return pp_fail(p, LG_PP_E_NOT_PROXY);
        }
        return LG_AGAIN;
    }
    if (p->state == PS_V2_FIXED) return pp_v2_fixed(p, buf, pos);
    return pp_v1_byte(p, buf, pos);
}

int lg_pp_parse(lg_pp_parser_t *p, const uint8_t *buf, size_t len, lg_pp_header_t *out)
{
    if (p->result == LG_AGAIN) {
        if (len < p->pos) {
            pp_fail(p, LG_PP_E_SHRANK);
        } else {
            while (p->pos < len && p->state != PS_V2_BODY) {
                int rc = pp_byte(p, buf, p->pos);
                p->pos++;
                if (rc != LG_AGAIN) break;
            }
            if (p->state == PS_V2_BODY) pp_v2_body(p, buf, len);
        }
    }
    if (p->result != LG_AGAIN) {
        *out = p->hdr;
        out->authority = p->authority_off != 0 ? buf + p->authority_off : NULL;
    }
    return p->result;
}

const char *lg_pp_reason_name(int reason)
{
    switch (reason) {
    case LG_PP_E_NONE:
        return "none";
    case LG_PP_E_NOT_PROXY:
        return "not a PROXY protocol header";
    case LG_PP_E_VERSION:
        return "PROXY protocol version not accepted";
    case LG_PP_E_V1_SYNTAX:
        return "malformed v1 line";
    case LG_PP_E_V1_ADDRESS:
        return "bad v1 address";
    case LG_PP_E_V1_PORT:
        return "bad v1 port";
    case LG_PP_E_V2_VERSION:
        return "bad v2 version";
    case LG_PP_E_COMMAND:
        return "bad v2 command";
    case LG_PP_E_FAMILY:
        return "bad address family";
    case LG_PP_E_DGRAM:
        return "datagram protocol on a stream listener";
    case LG_PP_E_ADDR_LEN:
        return "address block longer than the header";
    case LG_PP_E_TLV:
        return "bad TLV";
    case LG_PP_E_TOO_LONG:
        return "header too long";
    case LG_PP_E_SHRANK:
        return "buffer shrank between calls";
    default:
        return "unknown";
    }
}

/* ---- Writers ------------------------------------------------------------------------------ */

/*
 * The family to write and the two addresses in it: 0 (unknown: no addresses), 4 (both IPv4,
 * mapped ones unmapped) or 6 (IPv4 ones mapped to ::ffff:a.b.c.d). Returns 0 or -EINVAL.
 */
static int pp_normalise(const lg_pp_info_t *in, uint8_t *family, uint8_t src[16], uint8_t dst[16])
{
    uint8_t fs = in->src_family, fd = in->dst_family;

    if ((fs != 0 && fs != LG_CIDR_V4 && fs != LG_CIDR_V6) ||
        (fd != 0 && fd != LG_CIDR_V4 && fd != LG_CIDR_V6)) {
        return -EINVAL;
    }
    *family = 0;
    if (fs == 0 || fd == 0) return 0;
    memcpy(src, in->src_addr, 16);
    memcpy(dst, in->dst_addr, 16);
    lg_ip_unmap(&fs, src);
    lg_ip_unmap(&fd, dst);
    if (fs == LG_CIDR_V4 && fd == LG_CIDR_V4) {
        *family = LG_CIDR_V4;
        return 0;
    }
    uint8_t *v4[2] = {fs == LG_CIDR_V4 ? src : NULL, fd == LG_CIDR_V4 ? dst : NULL};
    for (int i = 0; i < 2; i++) {
        if (v4[i] == NULL) continue;
        memmove(v4[i] + 12, v4[i], 4); /* RFC 4291 §2.5.5.2 */
        memset(v4[i], 0, 10);
        v4[i][10] = 0xff;
        v4[i][11] = 0xff;
    }
    *family = LG_CIDR_V6;
    return 0;
}

/* Append the decimal text of v (no leading zeros) at s; returns the bytes written (1..5). */
static size_t pp_put_dec(char *s, unsigned v)
{
    char tmp[5];
    size_t n = 0;
    do {
        tmp[n++] = (char)('0' + v % 10);
        v /= 10;
    } while (v != 0 && n < sizeof(tmp));
    for (size_t i = 0; i < n; i++)
        s[i] = tmp[n - 1 - i];
    return n;
}

/* A dotted quad (at most 15 bytes). */
static size_t pp_put_v4(char *s, const uint8_t a[4])
{
    size_t n = 0;
    for (int i = 0; i < 4; i++) {
        if (i > 0) s[n++] = '.';
        n += pp_put_dec(s + n, a[i]);
    }
    return n;
}

/*
 * RFC 5952 text of an IPv6 address (at most 39 bytes): lower-case hex without leading zeros
 * (§4.1, §4.3), the longest run of two or more zero groups shortened to "::", the first one on
 * a tie (§4.2), and ::ffff:a.b.c.d for IPv4-mapped addresses (§5).
 */
static size_t pp_put_v6(char *s, const uint8_t a[16])
{
    static const char hex[] = "0123456789abcdef";
    static const uint8_t mapped[12] = {0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0xff, 0xff};
    size_t n = 0;

    if (memcmp(a, mapped, sizeof(mapped)) == 0) {
        memcpy(s, "::ffff:", 7);
        return 7 + pp_put_v4(s + 7, a + 12);
    }
    unsigned g[8];
    int best = -1, best_len = 1, run = 0;
    for (int i = 0; i < 8; i++) {
        g[i] = (unsigned)a[2 * i] << 8 | a[2 * i + 1];
        run = g[i] == 0 ? run + 1 : 0;
        if (run > best_len) {
            best_len = run;
            best = i - run + 1;
        }
    }
    for (int i = 0; i < 8; i++) {
        if (i == best) {
            s[n++] = ':';
            s[n++] = ':';
            i += best_len - 1;
            continue;
        }
        if (i > 0 && i != best + best_len) s[n++] = ':';
        bool lead = true;
        for (int shift = 12; shift >= 0; shift -= 4) {
            unsigned d = (g[i] >> shift) & 0xF;
            if (lead && d == 0 && shift > 0) continue;
            lead = false;
            s[n++] = hex[d];
        }
    }
    return n;
}

int lg_pp_write_v1(const lg_pp_info_t *in, uint8_t *out, size_t cap)
{
    char line[LG_PP_V1_MAX];
    uint8_t family, src[16], dst[16];
    size_t n = 0;

    if (pp_normalise(in, &family, src, dst) != 0) return -EINVAL;
    if (family == 0) {
        static const char unknown[] = "PROXY UNKNOWN\r\n";
        n = sizeof(unknown) - 1;
        memcpy(line, unknown, n);
    } else {
        /* Longest: 5 + 1 + 4 + 1 + 39 + 1 + 39 + 1 + 5 + 1 + 5 + 2 = 104 bytes. */
        memcpy(line, family == LG_CIDR_V4 ? "PROXY TCP4 " : "PROXY TCP6 ", 11);
        n = 11;
        n += family == LG_CIDR_V4 ? pp_put_v4(line + n, src) : pp_put_v6(line + n, src);
        line[n++] = ' ';
        n += family == LG_CIDR_V4 ? pp_put_v4(line + n, dst) : pp_put_v6(line + n, dst);
        line[n++] = ' ';
        n += pp_put_dec(line + n, in->src_port);
        line[n++] = ' ';
        n += pp_put_dec(line + n, in->dst_port);
        line[n++] = '\r';
        line[n++] = '\n';
    }
    if (n > cap) return -ENOSPC;
    memcpy(out, line, n);
    return (int)n;
}

/* Bytes of a TLV carrying b, or 0 if b is absent. */
static size_t pp_tlv_size(const lg_pp_bytes_t *b)
{
    return b->ptr != NULL ? PP_TLV_HDR + b->len : 0;
}

/* Bytes of the SSL TLV's value: flags, verify, and the sub-TLVs present. */
static size_t pp_ssl_value(const lg_pp_info_t *in)
{
    return PP_SSL_FIXED + pp_tlv_size(&in->ssl_version) + pp_tlv_size(&in->ssl_cipher);
}

/*
 * Validate `in` for v2 and compute the family to write (see pp_normalise) and the total size.
 * Every length is checked against LG_PP_MAX_HEADER before it is added, so the sum cannot wrap.
 */
static int pp_v2_layout(const lg_pp_info_t *in, uint8_t *family, uint8_t src[16], uint8_t dst[16],
                        size_t *total)
{
    const lg_pp_bytes_t *all[] = {&in->alpn, &in->authority,   &in->unique_id, &in->ja3,
                                  &in->ja4,  &in->ssl_version, &in->ssl_cipher};
    size_t n_all = in->ssl ? LG_ARRAY_SIZE(all) : LG_ARRAY_SIZE(all) - 2; /* SSL ones last */
    size_t n;

    if (pp_normalise(in, family, src, dst) != 0) return -EINVAL;
    for (size_t i = 0; i < n_all; i++) {
        if (all[i]->ptr != NULL && all[i]->len > LG_PP_MAX_HEADER) return -EINVAL;
    }
    if (in->unique_id.ptr != NULL && in->unique_id.len > LG_PP_UNIQUE_ID_MAX) return -EINVAL;
    n = LG_PP_V2_FIXED;
    n += *family == LG_CIDR_V4 ? PP_ADDR_INET : *family == LG_CIDR_V6 ? PP_ADDR_INET6 : 0;
    n += pp_tlv_size(&in->alpn) + pp_tlv_size(&in->authority) + pp_tlv_size(&in->unique_id);
    if (in->ssl) n += PP_TLV_HDR + pp_ssl_value(in);
    n += pp_tlv_size(&in->ja3) + pp_tlv_size(&in->ja4);
    if (n > LG_PP_MAX_HEADER) return -EINVAL; /* so every value is under PP_TLV_VAL_MAX too */
    *total = n;
    return 0;
}

size_t lg_pp_v2_size(const lg_pp_info_t *in)
{
    uint8_t family, src[16], dst[16];
    size_t total;
    return pp_v2_layout(in, &family, src, dst, &total) == 0 ? total : 0;
}

static size_t pp_put16(uint8_t *o, size_t v)
{
    o[0] = (uint8_t)(v >> 8);
    o[1] = (uint8_t)v;
    return 2;
}

/* Write a TLV header and value at o; returns the bytes written. */
static size_t pp_put_tlv(uint8_t *o, uint8_t type, const void *v, size_t len)
{
    o[0] = type;
    pp_put16(o + 1, len);
    if (len > 0) memcpy(o + PP_TLV_HDR, v, len);
    return PP_TLV_HDR + len;
}

static size_t pp_put_opt(uint8_t *o, uint8_t type, const lg_pp_bytes_t *b)
{
    return b->ptr != NULL ? pp_put_tlv(o, type, b->ptr, b->len) : 0;
}

int lg_pp_write_v2(const lg_pp_info_t *in, uint8_t *out, size_t cap)
{
    uint8_t family, src[16], dst[16];
    size_t total, n = 0;

    if (pp_v2_layout(in, &family, src, dst, &total) != 0) return -EINVAL;
    if (total > cap) return -ENOSPC;

    memcpy(out, pp_v2_sig, PP_V2_SIG_LEN);
    n = PP_V2_SIG_LEN;
    out[n++] = PP_V2_VERSION << 4 | PP_CMD_PROXY;
    out[n++] = family == LG_CIDR_V4   ? PP_FAM_TCP4
               : family == LG_CIDR_V6 ? PP_FAM_TCP6
                                      : PP_FAM_UNSPEC;
    n += pp_put16(out + n, total - LG_PP_V2_FIXED);
    if (family != 0) {
        size_t alen = family == LG_CIDR_V4 ? 4 : 16;
        memcpy(out + n, src, alen);
        memcpy(out + n + alen, dst, alen);
        n += 2 * alen;
        n += pp_put16(out + n, in->src_port);
        n += pp_put16(out + n, in->dst_port);
    }
    n += pp_put_opt(out + n, LG_PP_TLV_ALPN, &in->alpn);
    n += pp_put_opt(out + n, LG_PP_TLV_AUTHORITY, &in->authority);
    n += pp_put_opt(out + n, LG_PP_TLV_UNIQUE_ID, &in->unique_id);
    if (in->ssl) {
        out[n++] = LG_PP_TLV_SSL;
        n += pp_put16(out + n, pp_ssl_value(in));
        out[n++] = in->ssl_client;
        out[n++] = (uint8_t)(in->ssl_verify >> 24);
        out[n++] = (uint8_t)(in->ssl_verify >> 16);
        out[n++] = (uint8_t)(in->ssl_verify >> 8);
        out[n++] = (uint8_t)in->ssl_verify;
        n += pp_put_opt(out + n, LG_PP_SUBTLV_SSL_VER, &in->ssl_version);
        n += pp_put_opt(out + n, LG_PP_SUBTLV_SSL_CIPH, &in->ssl_cipher);
    }
    n += pp_put_opt(out + n, LG_PP_TLV_JA3, &in->ja3);
    n += pp_put_opt(out + n, LG_PP_TLV_JA4, &in->ja4);
    return (int)n;
}
