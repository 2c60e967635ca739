/*
 * test_name.c — unit tests of the host-name grammar (src/lg_name.c): both kinds, every reason,
 * the limits at exactly max and max + 1, and in-place normalisation.
 */
#include "../../src/lg_name.c"

#include <stdio.h>

#include "lg_test.h"

typedef struct row_s {
    const char *name;
    int kind;
    int want; /* normalised length, or -LG_NAME_E_* */
    const char *norm;
} row_t;

#define H LG_NAME_HOST
#define S LG_NAME_SNI

static const row_t rows[] = {
    {"a.test", H, 6, "a.test"},
    {"a.test", S, 6, "a.test"},
    {"A.TeSt.", S, 6, "a.test"},             /* case folded, one trailing dot dropped */
    {"x", S, 1, "x"},                        /* one label, one byte */
    {"a-b.c-d.test", S, 12, "a-b.c-d.test"}, /* inner hyphens */
    {"xn--bcher-kva.test", S, 18, "xn--bcher-kva.test"},
    {"_srv._tcp.test", H, 14, "_srv._tcp.test"},  /* '_' in DNS names */
    {"_srv._tcp.test", S, -LG_NAME_E_CHAR, NULL}, /* but not in an SNI (LDH) */
    {"a_b.test", S, -LG_NAME_E_CHAR, NULL},
    {"-a.test", H, -LG_NAME_E_HYPHEN, NULL},
    {"a-.test", S, -LG_NAME_E_HYPHEN, NULL},
    {"a.-", H, -LG_NAME_E_HYPHEN, NULL},
    {"", H, -LG_NAME_E_EMPTY, NULL},
    {".", S, -LG_NAME_E_EMPTY, NULL},
    {"a..test", H, -LG_NAME_E_LABEL, NULL},
    {".a", H, -LG_NAME_E_LABEL, NULL},
    {"a.test..", H, -LG_NAME_E_LABEL, NULL}, /* only one trailing dot is dropped */
    {"a b.test", H, -LG_NAME_E_CHAR, NULL},
    {"a*.test", S, -LG_NAME_E_CHAR, NULL},
    {"1.2.3.4", S, -LG_NAME_E_NUMERIC, NULL}, /* an IPv4 literal is no SNI */
    {"1.2.3.x4", S, 8, "1.2.3.x4"},           /* not every label numeric */
    {"a.1", S, 3, "a.1"},                     /* SNI: a numeric last label alone is fine */
    {"a.1", H, -LG_NAME_E_NUMERIC, NULL},     /* HOST: inet_aton would read it as an address */
    {"a.0x7f", H, -LG_NAME_E_NUMERIC, NULL},
    {"a.0X7F", H, -LG_NAME_E_NUMERIC, NULL},
    {"a.0x", H, -LG_NAME_E_NUMERIC, NULL}, /* "0x" alone: inet_aton reads it as 0 */
    {"a.0xg", H, 5, "a.0xg"},
};

LG_TEST(test_table)
{
    for (size_t i = 0; i < LG_ARRAY_SIZE(rows); i++) {
        const row_t *r = &rows[i];
        char out[LG_NAME_MAX];
        int n = lg_name_norm(r->name, strlen(r->name), r->kind, out, sizeof(out));
        CHECK_ROW(n == r->want, r->name);
        if (n > 0) CHECK_ROW(memcmp(out, r->norm, (size_t)n) == 0, r->name);
    }
}

/* A name of `len` bytes: labels of `label` bytes ('a') separated by dots. */
static void make_name(char *out, size_t len, size_t label)
{
    for (size_t i = 0; i < len; i++)
        out[i] = (i % (label + 1) == label) ? '.' : 'a';
    if (out[len - 1] == '.') out[len - 1] = 'a';
}

LG_TEST(test_limits)
{
    char name[300], out[LG_NAME_MAX];
    make_name(name, LG_NAME_MAX, 50);
    CHECK_EQ_INT(lg_name_norm(name, LG_NAME_MAX, S, out, sizeof(out)), LG_NAME_MAX);
    make_name(name, LG_NAME_MAX + 1, 50);
    CHECK_EQ_INT(lg_name_norm(name, LG_NAME_MAX + 1, S, out, sizeof(out)), -LG_NAME_E_LONG);
    name[LG_NAME_MAX] = '.'; /* 253 bytes plus the trailing dot is still 253 */
    make_name(name, LG_NAME_MAX, 50);
    name[LG_NAME_MAX] = '.';
    CHECK_EQ_INT(lg_name_norm(name, LG_NAME_MAX + 1, S, out, sizeof(out)), LG_NAME_MAX);
    /* Labels of exactly 63 and 64 bytes. */
    memset(name, 'b', 64);
    memcpy(name + 63, ".t", 2);
    CHECK_EQ_INT(lg_name_norm(name, 65, H, out, sizeof(out)), 65);
    memset(name, 'b', 64);
    memcpy(name + 64, ".t", 2);
    CHECK_EQ_INT(lg_name_norm(name, 66, H, out, sizeof(out)), -LG_NAME_E_LABEL);
    /* The destination bounds the name too. */
    CHECK_EQ_INT(lg_name_norm("abc.test", 8, H, out, 7), -LG_NAME_E_LONG);
}

LG_TEST(test_not_terminated_and_in_place)
{
    /* Only `len` bytes are read: what follows may be anything. */
    const char buf[] = {'W', 'W', 'W', '.', 'T', '\0', 'x'};
    char out[16];
    CHECK_EQ_INT(lg_name_norm(buf, 5, S, out, sizeof(out)), 5);
    CHECK(memcmp(out, "www.t", 5) == 0);
    CHECK_EQ_INT(lg_name_norm(buf, 6, S, out, sizeof(out)), -LG_NAME_E_CHAR); /* NUL */
    char io[] = "Mixed.Case.";
    CHECK_EQ_INT(lg_name_norm(io, strlen(io), H, io, sizeof(io)), 10);
    CHECK(memcmp(io, "mixed.case", 10) == 0);
}

LG_TEST(test_reasons_named)
{
    for (int r = LG_NAME_E_EMPTY; r <= LG_NAME_E_NUMERIC; r++)
        CHECK(strcmp(lg_name_reason(r), "invalid name") != 0);
    CHECK(strcmp(lg_name_reason(99), "invalid name") == 0);
}

int main(void)
{
    LG_RUN(test_table);
    LG_RUN(test_limits);
    LG_RUN(test_not_terminated_and_in_place);
    LG_RUN(test_reasons_named);
    LG_TEST_END();
}
