/*
 * lg_name.h — the one host-name grammar of legato (pure core), used by the ClientHello parser
 * (SNI), the route table (SNI patterns), the CONNECT head (targets), the destination policy
 * (allowDomains) and, through the binding, by lib/config.js — so that what configuration accepts
 * is exactly what the wire parsers can match.
 *
 * A name is 1..LG_NAME_MAX bytes (RFC 1035 §2.3.4, text form without the trailing dot) of labels
 * of 1..LG_NAME_LABEL_MAX bytes separated by single dots; one trailing dot is dropped (the
 * absolute form of the same name) and ASCII upper case is folded. Two kinds:
 *   LG_NAME_SNI   RFC 6066 §3 host_name: letters, digits and '-' (RFC 952/1123 LDH), a label
 *                 neither starting nor ending with '-', and not every label numeric (an IPv4
 *                 literal, which SNI must not carry).
 *   LG_NAME_HOST  a DNS name to look up: the same, plus '_' (service names, some buckets), and
 *                 the last label must not be numeric the way inet_aton(3) reads numbers (all
 *                 digits, or "0x" + hex): the resolver would read "1.2.3" or "0x7f.1" as an IPv4
 *                 address that a policy written in text never saw.
 */
#ifndef LG_NAME_H
#define LG_NAME_H

#include "lg_common.h"

#define LG_NAME_MAX       253 /* bytes of a name without its trailing dot */
#define LG_NAME_LABEL_MAX 63  /* bytes of one label */

enum { LG_NAME_HOST = 0, LG_NAME_SNI = 1 };

/* Why a name was refused (lg_name_norm returns the negated value). */
enum {
    LG_NAME_E_EMPTY = 1, /* nothing (or only a dot) */
    LG_NAME_E_LONG,      /* over LG_NAME_MAX bytes */
    LG_NAME_E_LABEL,     /* an empty label, or one over LG_NAME_LABEL_MAX bytes */
    LG_NAME_E_CHAR,      /* a byte outside the kind's alphabet (NUL included) */
    LG_NAME_E_HYPHEN,    /* a label starts or ends with '-' */
    LG_NAME_E_NUMERIC,   /* HOST: the last label is numeric; SNI: every label is */
};

/*
 * Validate and normalise `len` bytes of `src` (not necessarily NUL-terminated) as a name of
 * `kind`, writing the normalised name (lower case, no trailing dot, no terminator) to dst, which
 * has room for `cap` bytes (LG_NAME_MAX is always enough). Returns the normalised length (> 0),
 * or -LG_NAME_E_* (dst then holds garbage). dst may equal src.
 */
int lg_name_norm(const char *src, size_t len, int kind, char *dst, size_t cap);

/* A short static English phrase for an LG_NAME_E_* reason ("empty label", ...). */
const char *lg_name_reason(int reason);

/* Is the label numeric as inet_aton(3) reads it (all digits, or "0x"/"0X" + hex digits)? */
bool lg_name_numeric_label(const char *s, size_t n);

#endif /* LG_NAME_H */
