/*
 * lg_name.c — the host-name grammar (see lg_name.h). One pass, no allocation.
 */
#include "lg_name.h"

static bool name_digit(unsigned char c)
{
    return c >= '0' && c <= '9';
}

static bool name_hex(unsigned char c)
{
    return name_digit(c) || (c >= 'a' && c <= 'f') || (c >= 'A' && c <= 'F');
}

bool lg_name_numeric_label(const char *s, size_t n)
{
    if (n >= 2 && s[0] == '0' && (s[1] == 'x' || s[1] == 'X')) {
        for (size_t i = 2; i < n; i++) {
            if (!name_hex((unsigned char)s[i])) return false;
        }
        return true;
    }
    for (size_t i = 0; i < n; i++) {
        if (!name_digit((unsigned char)s[i])) return false;
    }
    return n > 0;
}

int lg_name_norm(const char *src, size_t len, int kind, char *dst, size_t cap)
{
    if (len > 0 && src[len - 1] == '.') len--;
    if (len == 0) return -LG_NAME_E_EMPTY;
    if (len > LG_NAME_MAX || len > cap) return -LG_NAME_E_LONG;
    size_t label = 0, last = 0;
    bool all_digits = true, label_digits = true;
    for (size_t i = 0; i <= len; i++) {
        if (i == len || src[i] == '.') {
            if (label == 0 || label > LG_NAME_LABEL_MAX) return -LG_NAME_E_LABEL;
            if (dst[i - 1] == '-') return -LG_NAME_E_HYPHEN;
            all_digits = all_digits && label_digits;
            if (i < len) {
                dst[i] = '.';
                last = i + 1;
            }
            label = 0;
            label_digits = true;
            continue;
        }
        unsigned char c = (unsigned char)src[i];
        if (c >= 'A' && c <= 'Z') c = (unsigned char)(c - 'A' + 'a');
        bool ok = (c >= 'a' && c <= 'z') || name_digit(c) || c == '-' ||
                  (c == '_' && kind == LG_NAME_HOST);
        if (!ok) return -LG_NAME_E_CHAR;
        if (c == '-' && label == 0) return -LG_NAME_E_HYPHEN;
        label_digits = label_digits && name_digit(c);
        dst[i] = (char)c;
        label++;
    }
    if (kind == LG_NAME_SNI ? all_digits : lg_name_numeric_label(dst + last, len - last)) {
        return -LG_NAME_E_NUMERIC;
    }
    return (int)len;
}

const char *lg_name_reason(int reason)
{
    switch (reason) {
    case LG_NAME_E_EMPTY:
        return "empty name";
    case LG_NAME_E_LONG:
        return "name too long";
    case LG_NAME_E_LABEL:
        return "empty or over-long label";
    case LG_NAME_E_CHAR:
        return "character not allowed";
    case LG_NAME_E_HYPHEN:
        return "label starts or ends with '-'";
    case LG_NAME_E_NUMERIC:
        return "numeric name";
    default:
        return "invalid name";
    }
}
