/*
 * test_policy.c — unit tests of the CONNECT destination policy (src/lg_policy.c).
 *
 * Covers: every default deny range (first, middle and last address refused, the neighbours
 * outside allowed) including IPv4-mapped spellings such as [::ffff:127.0.0.1] parsed from a real
 * CONNECT head; allowCidrs exceptions (IPv4 entries matching mapped IPv6 too); NAT64 and 6to4
 * embedded IPv4 checks; ports; the domain allowlist on label boundaries (example.com admits
 * a.example.com and example.com, never badexample.com) and IP literals under a domain list;
 * lg_policy_filter on a mixed answer (stable order, all-denied → 0); build validation (-EINVAL,
 * -E2BIG) and allocation failure at every allocation (-ENOMEM, nothing leaked).
 */
#include "../../src/lg_name.c"
#include "../../src/lg_cidr.c"
#include "../../src/lg_http.c"
#include "../../src/lg_policy.c"

#include <stdio.h>
#include <stdlib.h>

#include "lg_test.h"

/* lib/config.js DEFAULT_DENY_CIDRS, in its order. */
static const char *const default_deny[] = {
    "127.0.0.0/8",    "10.0.0.0/8",    "172.16.0.0/12", "192.168.0.0/16",
    "169.254.0.0/16", "100.64.0.0/10", "0.0.0.0/8",     "224.0.0.0/4",
    "240.0.0.0/4",    "::1/128",       "::/128",        "fc00::/7",
    "fe80::/10",      "ff00::/8",      "64:ff9b::/96",  "2002::/16",
};

static size_t parse_cidrs(const char *const *text, size_t n, lg_cidr_t *out)
{
    for (size_t i = 0; i < n; i++) {
        if (lg_cidr_parse(text[i], strlen(text[i]), &out[i]) != 0) {
            fprintf(stderr, "bad CIDR in test table: %s\n", text[i]);
            abort();
        }
    }
    return n;
}

/* A policy from text lists; aborts on failure (the tables are valid). */
static void build(lg_policy_t *p, const uint16_t *ports, size_t n_ports, const char *const *deny,
                  size_t n_deny, const char *const *allow, size_t n_allow,
                  const char *const *domains, size_t n_domains)
{
    lg_cidr_t d[32], a[32];
    if (n_deny > 32 || n_allow > 32) abort();
    parse_cidrs(deny, n_deny, d);
    parse_cidrs(allow, n_allow, a);
    int rc = lg_policy_build(p, ports, n_ports, d, n_deny, a, n_allow, domains, n_domains);
    if (rc != 0) {
        fprintf(stderr, "lg_policy_build: %d\n", rc);
        abort();
    }
}

static const uint16_t port443[] = {443};

static bool allowed_str(const lg_policy_t *p, const char *ip)
{
    uint8_t family, addr[16];
    if (lg_ip_parse(ip, strlen(ip), &family, addr) != 0) {
        fprintf(stderr, "bad IP in test: %s\n", ip);
        abort();
    }
    return lg_policy_addr_allowed(p, family, addr);
}

/* Parse "CONNECT <target> HTTP/1.1" with lg_http and judge it. -1 if the head is refused. */
static int check_head(const lg_policy_t *p, const char *target)
{
    char head[400];
    int n = snprintf(head, sizeof(head), "CONNECT %s HTTP/1.1\r\nHost: %s\r\n\r\n", target, target);
    lg_http_parser_t hp;
    lg_http_req_t req;
    lg_http_parser_init(&hp);
    if (lg_http_parse(&hp, (const uint8_t *)head, (size_t)n, &req) != LG_OK) return -1;
    return lg_policy_check_target(p, &req);
}

/* For each default range: first, middle, last refused (also as mapped IPv6 for IPv4). */
static const struct {
    const char *first, *mid, *last;
} deny_ranges[] = {
    {"127.0.0.0", "127.0.0.1", "127.255.255.255"},
    {"10.0.0.0", "10.20.30.40", "10.255.255.255"},
    {"172.16.0.0", "172.20.0.1", "172.31.255.255"},
    {"192.168.0.0", "192.168.1.1", "192.168.255.255"},
    {"169.254.0.0", "169.254.169.254", "169.254.255.255"},
    {"100.64.0.0", "100.100.100.200", "100.127.255.255"},
    {"0.0.0.0", "0.1.2.3", "0.255.255.255"},
    {"224.0.0.0", "239.255.255.250", "239.255.255.255"},
    {"240.0.0.0", "250.1.2.3", "255.255.255.255"},
    {"::1", "::1", "::1"},
    {"::", "::", "::"},
    {"fc00::", "fd12:3456::1", "fdff:ffff:ffff:ffff:ffff:ffff:ffff:ffff"},
    {"fe80::", "fe80::1", "febf:ffff:ffff:ffff:ffff:ffff:ffff:ffff"},
    {"ff00::", "ff02::1", "ffff:ffff:ffff:ffff:ffff:ffff:ffff:ffff"},
    {"64:ff9b::", "64:ff9b::808:808", "64:ff9b::ffff:ffff"},
    {"2002::", "2002:808:808::1", "2002:ffff:ffff:ffff:ffff:ffff:ffff:ffff"},
};

/* Neighbours of the ranges that no default range covers. */
static const char *const outside[] = {
    "126.255.255.255",
    "128.0.0.0",
    "9.255.255.255",
    "11.0.0.0",
    "172.15.255.255",
    "172.32.0.0",
    "192.167.255.255",
    "192.169.0.0",
    "169.253.255.255",
    "169.255.0.0",
    "100.63.255.255",
    "100.128.0.0",
    "1.0.0.0",
    "223.255.255.255",
    "8.8.8.8",
    "93.184.216.34",
    "::2",
    "fbff:ffff:ffff:ffff:ffff:ffff:ffff:ffff",
    "fe00::",
    "fec0::",
    "feff:ffff:ffff:ffff:ffff:ffff:ffff:ffff",
    "64:ff9a:ffff:ffff:ffff:ffff:ffff:ffff",
    "64:ff9b:0:0:0:1::",
    "2001:ffff:ffff:ffff:ffff:ffff:ffff:ffff",
    "2003::",
    "2606:2800:220:1:248:1893:25c8:1946",
    "::ffff:8.8.8.8",
};

LG_TEST(test_default_deny_ranges)
{
    lg_policy_t p;
    build(&p, port443, 1, default_deny, LG_ARRAY_SIZE(default_deny), NULL, 0, NULL, 0);
    for (size_t i = 0; i < LG_ARRAY_SIZE(deny_ranges); i++) {
        const char *v[3] = {deny_ranges[i].first, deny_ranges[i].mid, deny_ranges[i].last};
        for (int k = 0; k < 3; k++) {
            CHECK_ROW(!allowed_str(&p, v[k]), v[k]);
            char target[80];
            bool v6 = strchr(v[k], ':') != NULL;
            snprintf(target, sizeof(target), v6 ? "[%s]:443" : "%s:443", v[k]);
            CHECK_ROW(check_head(&p, target) == LG_POLICY_ADDRESS, target);
            if (!v6) { /* the IPv4-mapped spelling, e.g. [::ffff:127.0.0.1] */
                char mapped[80];
                snprintf(mapped, sizeof(mapped), "::ffff:%s", v[k]);
                CHECK_ROW(!allowed_str(&p, mapped), mapped);
                snprintf(target, sizeof(target), "[::ffff:%s]:443", v[k]);
                CHECK_ROW(check_head(&p, target) == LG_POLICY_ADDRESS, target);
            }
        }
    }
    for (size_t i = 0; i < LG_ARRAY_SIZE(outside); i++)
        CHECK_ROW(allowed_str(&p, outside[i]), outside[i]);
    CHECK(check_head(&p, "[::ffff:127.0.0.1]:443") == LG_POLICY_ADDRESS);
    CHECK(check_head(&p, "[::FFFF:7F00:1]:443") == LG_POLICY_ADDRESS);
    CHECK(check_head(&p, "93.184.216.34:443") == LG_POLICY_OK);
    CHECK(check_head(&p, "[2606:2800:220:1:248:1893:25c8:1946]:443") == LG_POLICY_OK);
    /* A name passes the target check (its answer is filtered after the lookup). */
    CHECK(check_head(&p, "localhost:443") == LG_POLICY_OK);
    lg_policy_free(&p);
}

LG_TEST(test_embedded_ipv4)
{
    lg_policy_t p;
    /* NAT64 and 6to4 allowed as ranges (an IPv6-only host behind DNS64), deny list default. */
    static const char *const allow[] = {"64:ff9b::/96", "2002::/16"};
    build(&p, port443, 1, default_deny, LG_ARRAY_SIZE(default_deny), allow, 2, NULL, 0);
    CHECK(allowed_str(&p, "64:ff9b::8.8.8.8"));
    CHECK(!allowed_str(&p, "64:ff9b::10.0.0.1"));
    CHECK(!allowed_str(&p, "64:ff9b::127.0.0.1"));
    CHECK(!allowed_str(&p, "64:ff9b::a9fe:a9fe")); /* 169.254.169.254, cloud metadata */
    CHECK(allowed_str(&p, "2002:808:808::1"));     /* 6to4 relay 8.8.8.8 */
    CHECK(!allowed_str(&p, "2002:a00:1::1"));      /* 6to4 relay 10.0.0.1 */
    CHECK(!allowed_str(&p, "2002:7f00:1::"));
    CHECK(check_head(&p, "[64:ff9b::10.0.0.1]:443") == LG_POLICY_ADDRESS);
    CHECK(check_head(&p, "[64:ff9b::8.8.8.8]:443") == LG_POLICY_OK);
    lg_policy_free(&p);

    /* A deny list without the NAT64/6to4 ranges still refuses their internal embeddings. */
    static const char *const v4only[] = {"127.0.0.0/8", "10.0.0.0/8"};
    build(&p, port443, 1, v4only, 2, NULL, 0, NULL, 0);
    CHECK(!allowed_str(&p, "64:ff9b::127.0.0.1"));
    CHECK(!allowed_str(&p, "2002:a00:1::"));
    CHECK(allowed_str(&p, "64:ff9b::8.8.8.8"));
    /* Only the well-known /96 is decoded: 64:ff9b:1::/48 (RFC 8215) is not (documented). */
    CHECK(allowed_str(&p, "64:ff9b:1::a00:1"));
    /* An allow exception for the embedded IPv4 address opens the translated one as well. */
    lg_policy_free(&p);
    static const char *const allow10[] = {"10.0.0.1/32"};
    build(&p, port443, 1, v4only, 2, allow10, 1, NULL, 0);
    CHECK(allowed_str(&p, "64:ff9b::10.0.0.1") && allowed_str(&p, "10.0.0.1"));
    CHECK(!allowed_str(&p, "64:ff9b::10.0.0.2"));
    lg_policy_free(&p);
}

LG_TEST(test_allow_exceptions)
{
    lg_policy_t p;
    static const char *const allow[] = {"10.1.0.0/16", "127.0.0.53/32", "fd00:1::/32",
                                        "::ffff:192.168.7.0/120"};
    build(&p, port443, 1, default_deny, LG_ARRAY_SIZE(default_deny), allow, 4, NULL, 0);
    CHECK(allowed_str(&p, "10.1.2.3") && allowed_str(&p, "10.1.255.255"));
    CHECK(!allowed_str(&p, "10.2.0.0") && !allowed_str(&p, "10.0.255.255"));
    CHECK(allowed_str(&p, "::ffff:10.1.2.3")); /* IPv4 exception matches the mapped form */
    CHECK(allowed_str(&p, "127.0.0.53") && !allowed_str(&p, "127.0.0.54"));
    CHECK(allowed_str(&p, "fd00:1:ffff::1") && !allowed_str(&p, "fd00:2::1"));
    CHECK(allowed_str(&p, "192.168.7.9") && !allowed_str(&p, "192.168.8.1"));
    CHECK(check_head(&p, "10.1.0.1:443") == LG_POLICY_OK);
    CHECK(check_head(&p, "[::ffff:10.1.0.1]:443") == LG_POLICY_OK);
    CHECK(check_head(&p, "10.2.0.1:443") == LG_POLICY_ADDRESS);
    lg_policy_free(&p);
}

LG_TEST(test_ports)
{
    lg_policy_t p;
    static const uint16_t ports[] = {8443, 443, 22, 443, 65535, 1};
    build(&p, ports, LG_ARRAY_SIZE(ports), NULL, 0, NULL, 0, NULL, 0);
    CHECK_EQ_INT(p.n_ports, 5); /* sorted, de-duplicated */
    for (size_t i = 1; i < p.n_ports; i++)
        CHECK(p.ports[i - 1] < p.ports[i]);
    CHECK(check_head(&p, "a.test:443") == LG_POLICY_OK);
    CHECK(check_head(&p, "a.test:8443") == LG_POLICY_OK);
    CHECK(check_head(&p, "a.test:1") == LG_POLICY_OK);
    CHECK(check_head(&p, "a.test:65535") == LG_POLICY_OK);
    CHECK(check_head(&p, "a.test:80") == LG_POLICY_PORT);
    CHECK(check_head(&p, "a.test:444") == LG_POLICY_PORT);
    CHECK(check_head(&p, "a.test:65534") == LG_POLICY_PORT);
    lg_policy_free(&p);

    /* No ports: nothing is reachable (fail closed). The port is judged first. */
    build(&p, NULL, 0, default_deny, LG_ARRAY_SIZE(default_deny), NULL, 0, NULL, 0);
    CHECK(check_head(&p, "a.test:443") == LG_POLICY_PORT);
    CHECK(check_head(&p, "127.0.0.1:443") == LG_POLICY_PORT);
    lg_policy_free(&p);

    static const uint16_t zero[] = {443, 0};
    CHECK_EQ_INT(lg_policy_build(&p, zero, 2, NULL, 0, NULL, 0, NULL, 0), -EINVAL);
}

LG_TEST(test_domains)
{
    lg_policy_t p;
    static const char *const domains[] = {"example.com", "*.Example.ORG.", ".example.net", "io",
                                          "a_b.test"};
    build(&p, port443, 1, default_deny, LG_ARRAY_SIZE(default_deny), NULL, 0, domains,
          LG_ARRAY_SIZE(domains));
    static const struct {
        const char *target;
        int want;
    } v[] = {
        {"example.com:443", LG_POLICY_OK},
        {"a.example.com:443", LG_POLICY_OK},
        {"a.b.c.example.com:443", LG_POLICY_OK},
        {"EXAMPLE.com.:443", LG_POLICY_OK},
        {"badexample.com:443", LG_POLICY_DOMAIN},
        {"example.com.evil.test:443", LG_POLICY_DOMAIN},
        {"com:443", LG_POLICY_DOMAIN},
        {"xample.com:443", LG_POLICY_DOMAIN},
        {"example.org:443", LG_POLICY_OK}, /* "*.example.org" stands for the domain too */
        {"www.example.org:443", LG_POLICY_OK},
        {"example.net:443", LG_POLICY_OK},
        {"x.example.net:443", LG_POLICY_OK},
        {"anything.io:443", LG_POLICY_OK},
        {"io:443", LG_POLICY_OK},
        {"aio:443", LG_POLICY_DOMAIN},
        {"x.a_b.test:443", LG_POLICY_OK},
        {"example.com:80", LG_POLICY_PORT},      /* port first */
        {"93.184.216.34:443", LG_POLICY_DOMAIN}, /* IP literal, not in allowCidrs */
        {"[2606:2800::1]:443", LG_POLICY_DOMAIN},
        {"127.0.0.1:443", LG_POLICY_DOMAIN},
    };
    for (size_t i = 0; i < LG_ARRAY_SIZE(v); i++)
        CHECK_ROW(check_head(&p, v[i].target) == v[i].want, v[i].target);
    lg_policy_free(&p);

    /* Under a domain list, an IP literal passes only when allowCidrs names it. */
    static const char *const allow[] = {"93.184.216.0/24", "10.9.0.0/16"};
    build(&p, port443, 1, default_deny, LG_ARRAY_SIZE(default_deny), allow, 2, domains, 1);
    CHECK(check_head(&p, "93.184.216.34:443") == LG_POLICY_OK);
    CHECK(check_head(&p, "[::ffff:93.184.216.34]:443") == LG_POLICY_OK);
    CHECK(check_head(&p, "93.184.217.34:443") == LG_POLICY_DOMAIN);
    CHECK(check_head(&p, "10.9.8.7:443") == LG_POLICY_OK); /* the exception wins over deny */
    CHECK(check_head(&p, "10.8.0.1:443") == LG_POLICY_DOMAIN);
    lg_policy_free(&p);

    /* Without a domain list every name passes the target check. */
    build(&p, port443, 1, NULL, 0, NULL, 0, NULL, 0);
    CHECK(check_head(&p, "badexample.com:443") == LG_POLICY_OK);
    lg_policy_free(&p);
}

LG_TEST(test_bad_domains)
{
    char long_label[80], long_name[300];
    memset(long_label, 'a', 64);
    memcpy(long_label + 64, ".test", 6);
    for (size_t i = 0; i < 254; i++)
        long_name[i] = (i % 50 == 49) ? '.' : 'b';
    long_name[254] = '\0';
    const char *const bad[] = {
        "",      ".",        "*.",      "*",      "a..b",  "..a", "a b",
        "a/b",   "1.2.3.4",  "a.123",   "a.0x1f", "[::1]", "::1", "exa*mple.com",
        "*.*.a", long_label, long_name, NULL};
    for (size_t i = 0; i < LG_ARRAY_SIZE(bad); i++) {
        lg_policy_t p;
        const char *d[2] = {"ok.test", bad[i]};
        CHECK_ROW(lg_policy_build(&p, port443, 1, NULL, 0, NULL, 0, d, 2) == -EINVAL,
                  bad[i] ? bad[i] : "NULL");
        CHECK(p.ports == NULL && p.domains == NULL && p.names == NULL);
    }
    /* 253 bytes is fine, with or without a trailing dot. */
    long_name[253] = '\0';
    lg_policy_t p;
    const char *d[1] = {long_name};
    CHECK_EQ_INT(lg_policy_build(&p, port443, 1, NULL, 0, NULL, 0, d, 1), 0);
    CHECK_EQ_INT(p.domains[0].len, 253);
    lg_policy_free(&p);
    long_name[253] = '.';
    long_name[254] = '\0';
    CHECK_EQ_INT(lg_policy_build(&p, port443, 1, NULL, 0, NULL, 0, d, 1), 0);
    CHECK_EQ_INT(p.domains[0].len, 253);
    lg_policy_free(&p);
}

LG_TEST(test_filter_mixed_answer)
{
    lg_policy_t p;
    build(&p, port443, 1, default_deny, LG_ARRAY_SIZE(default_deny), NULL, 0, NULL, 0);
    static const char *const answer[] = {
        "127.0.0.1",       "93.184.216.34",   "::1",     "2606:2800:220:1:248:1893:25c8:1946",
        "::ffff:10.0.0.1", "64:ff9b::a00:1",  "8.8.4.4", "::ffff:8.8.8.8",
        "fe80::1",         "169.254.169.254",
    };
    uint8_t families[16], addrs[16][16];
    size_t n = LG_ARRAY_SIZE(answer);
    for (size_t i = 0; i < n; i++)
        CHECK(lg_ip_parse(answer[i], strlen(answer[i]), &families[i], addrs[i]) == 0);
    families[n] = 2; /* AF_INET by mistake: an unknown family is dropped (fail closed) */
    memset(addrs[n], 0, 16);
    addrs[n][0] = 8;
    n++;
    size_t kept = lg_policy_filter(&p, families, addrs, n);
    CHECK_EQ_INT(kept, 4);
    static const char *const want[] = {"93.184.216.34", "2606:2800:220:1:248:1893:25c8:1946",
                                       "8.8.4.4", "::ffff:8.8.8.8"};
    for (size_t i = 0; i < kept; i++) {
        uint8_t f, a[16];
        CHECK(lg_ip_parse(want[i], strlen(want[i]), &f, a) == 0);
        CHECK_ROW(families[i] == f, want[i]);
        CHECK_ROW(memcmp(addrs[i], a, f == 4 ? 4 : 16) == 0, want[i]); /* not rewritten */
    }
    /* An all-denied answer leaves nothing: the caller refuses with LG_POLICY_ADDRESS. */
    static const char *const internal[] = {"127.0.0.1", "::1", "10.0.0.1"};
    for (size_t i = 0; i < 3; i++)
        CHECK(lg_ip_parse(internal[i], strlen(internal[i]), &families[i], addrs[i]) == 0);
    CHECK_EQ_INT(lg_policy_filter(&p, families, addrs, 3), 0);
    CHECK_EQ_INT(lg_policy_filter(&p, families, addrs, 0), 0);
    lg_policy_free(&p);
}

LG_TEST(test_zeroed_policy_and_reasons)
{
    lg_policy_t z;
    memset(&z, 0, sizeof(z));
    CHECK(check_head(&z, "a.test:443") == LG_POLICY_PORT);
    CHECK(allowed_str(&z, "8.8.8.8")); /* no deny list: addresses are allowed */
    lg_policy_free(&z);
    CHECK(strcmp(lg_policy_reason_name(LG_POLICY_OK), "ok") == 0);
    CHECK(strcmp(lg_policy_reason_name(LG_POLICY_PORT), "port") == 0);
    CHECK(strcmp(lg_policy_reason_name(LG_POLICY_DOMAIN), "domain") == 0);
    CHECK(strcmp(lg_policy_reason_name(LG_POLICY_ADDRESS), "address") == 0);
    CHECK(strcmp(lg_policy_reason_name(99), "unknown") == 0);
    CHECK(strcmp(lg_policy_reason_name(-1), "unknown") == 0);

    /* A request whose family is neither AF_INET nor AF_INET6 is refused. */
    lg_policy_t p;
    build(&p, port443, 1, NULL, 0, NULL, 0, NULL, 0);
    lg_http_req_t req;
    memset(&req, 0, sizeof(req));
    req.port = 443;
    req.host_is_ip = true;
    req.family = 4; /* the lg_cidr spelling, not AF_INET */
    CHECK(lg_policy_check_target(&p, &req) == LG_POLICY_ADDRESS);
    lg_policy_free(&p);
}

LG_TEST(test_limits)
{
    lg_policy_t p;
    static uint16_t ports[LG_POLICY_MAX_PORTS + 1];
    for (size_t i = 0; i <= LG_POLICY_MAX_PORTS; i++)
        ports[i] = (uint16_t)(i % 65535 + 1);
    CHECK_EQ_INT(lg_policy_build(&p, ports, LG_POLICY_MAX_PORTS, NULL, 0, NULL, 0, NULL, 0), 0);
    CHECK_EQ_INT(p.n_ports, 65535);
    lg_policy_free(&p);
    CHECK_EQ_INT(lg_policy_build(&p, ports, LG_POLICY_MAX_PORTS + 1, NULL, 0, NULL, 0, NULL, 0),
                 -E2BIG);
    lg_cidr_t one;
    CHECK(lg_cidr_parse("10.0.0.0/8", 10, &one) == 0);
    /* The count is checked before the entries are read. */
    CHECK_EQ_INT(lg_policy_build(&p, port443, 1, &one, LG_CIDR_SET_MAX + 1, NULL, 0, NULL, 0),
                 -E2BIG);
    CHECK_EQ_INT(lg_policy_build(&p, port443, 1, NULL, 0, &one, LG_CIDR_SET_MAX + 1, NULL, 0),
                 -E2BIG);
    const char *d = "a.test";
    CHECK_EQ_INT(lg_policy_build(&p, port443, 1, NULL, 0, NULL, 0, &d, LG_POLICY_MAX_DOMAINS + 1),
                 -E2BIG);
    lg_cidr_t bad = one;
    bad.prefix = 40;
    CHECK_EQ_INT(lg_policy_build(&p, port443, 1, &bad, 1, NULL, 0, NULL, 0), -EINVAL);
    CHECK(p.ports == NULL);
}

LG_TEST(test_alloc_failure)
{
    lg_cidr_t deny[2], allow[1];
    static const char *const dt[] = {"10.0.0.0/8", "fc00::/7"}, *const at[] = {"10.1.0.0/16"};
    parse_cidrs(dt, 2, deny);
    parse_cidrs(at, 1, allow);
    static const char *const domains[] = {"example.com", "b.test"};
    /* Allocations: ports, deny v4, deny v6, allow v4, domains, names = 6. */
    int failures = 0;
    for (long k = 0; k < 10; k++) {
        lg_policy_t p;
        lg_alloc_fail_after(k);
        int rc = lg_policy_build(&p, port443, 1, deny, 2, allow, 1, domains, 2);
        lg_alloc_fail_after(-1);
        if (rc == -ENOMEM) {
            failures++;
            CHECK(p.ports == NULL && p.domains == NULL && p.names == NULL);
            CHECK(p.deny.v4 == NULL && p.deny.v6 == NULL && p.allow.v4 == NULL);
            continue;
        }
        CHECK_EQ_INT(rc, 0);
        CHECK(check_head(&p, "a.example.com:443") == LG_POLICY_OK);
        CHECK(!allowed_str(&p, "10.0.0.1") && allowed_str(&p, "10.1.0.1"));
        lg_policy_free(&p);
    }
    CHECK_EQ_INT(failures, 6);
}

/* The explanation of a head's refusal ("" when the head is refused or the target allowed). */
static const char *explain_head(const lg_policy_t *p, const char *target,
                                const lg_policy_denial_t *resolved, char *out, size_t cap)
{
    char head[600];
    int n = snprintf(head, sizeof(head), "CONNECT %s HTTP/1.1\r\n\r\n", target);
    lg_http_parser_t hp;
    lg_http_req_t req;
    lg_http_parser_init(&hp);
    out[0] = '\0';
    if (lg_http_parse(&hp, (const uint8_t *)head, (size_t)n, &req) != LG_OK) return out;
    int reason = lg_policy_check_target(p, &req);
    if (resolved != NULL) reason = LG_POLICY_ADDRESS;
    if (reason != LG_POLICY_OK) lg_policy_explain(p, &req, reason, resolved, out, cap);
    return out;
}

#define CHECK_STR(a, b)                                                                            \
    do {                                                                                           \
        const char *a_ = (a), *b_ = (b);                                                           \
        if (strcmp(a_, b_) != 0) fprintf(stderr, "  got \"%s\"\n  want \"%s\"\n", a_, b_);         \
        CHECK(strcmp(a_, b_) == 0);                                                                \
    } while (0)

LG_TEST(test_explain)
{
    lg_policy_t p;
    char out[LG_POLICY_WHY_MAX];
    static const char *const allow[] = {"64:ff9b::/96"};
    build(&p, port443, 1, default_deny, LG_ARRAY_SIZE(default_deny), allow, 1, NULL, 0);
    CHECK_STR(explain_head(&p, "a.test:8443", NULL, out, sizeof(out)),
              "port 8443 is not allowed (allowPorts; --allow-port 8443 allows it)");
    CHECK_STR(explain_head(&p, "10.0.0.1:443", NULL, out, sizeof(out)),
              "10.0.0.1 is in a denied range (denyCidrs 10.0.0.0/8; --allow-cidr 10.0.0.1 allows "
              "it)");
    CHECK_STR(explain_head(&p, "[::ffff:192.168.1.2]:443", NULL, out, sizeof(out)),
              "192.168.1.2 is in a denied range (denyCidrs 192.168.0.0/16; --allow-cidr "
              "192.168.1.2 allows it)");
    CHECK_STR(explain_head(&p, "[fd00::1]:443", NULL, out, sizeof(out)),
              "fd00::1 is in a denied range (denyCidrs fc00::/7; --allow-cidr fd00::1 allows it)");
    /* NAT64 allowed as such, the embedded address is not. */
    CHECK_STR(explain_head(&p, "[64:ff9b::a00:1]:443", NULL, out, sizeof(out)),
              "64:ff9b::a00:1 embeds 10.0.0.1, which is in a denied range (denyCidrs 10.0.0.0/8; "
              "--allow-cidr 10.0.0.1 allows it)");
    /* A looked-up name: the first refused address explains it. */
    lg_policy_denial_t d;
    uint8_t a[16] = {127, 0, 0, 5};
    CHECK(lg_policy_denial(&p, LG_CIDR_V4, a, &d));
    CHECK_STR(explain_head(&p, "Intranet.Example:443", &d, out, sizeof(out)),
              "intranet.example resolves only to denied addresses: 127.0.0.5 is in a denied "
              "range (denyCidrs 127.0.0.0/8; --allow-cidr 127.0.0.5 allows it)");
    uint8_t ok[16] = {93, 184, 216, 34};
    CHECK(!lg_policy_denial(&p, LG_CIDR_V4, ok, &d) && d.family == 0);
    lg_policy_free(&p);

    /* Merged entries: the widest block inside the merged range that holds the address. */
    static const char *const merged[] = {"10.0.0.0/9", "10.128.0.0/9", "11.0.0.0/8"};
    build(&p, port443, 1, merged, 3, NULL, 0, NULL, 0);
    CHECK_STR(explain_head(&p, "10.200.0.1:443", NULL, out, sizeof(out)),
              "10.200.0.1 is in a denied range (denyCidrs 10.0.0.0/7; --allow-cidr 10.200.0.1 "
              "allows it)");
    lg_policy_free(&p);

    static const char *const domains[] = {"example.com"};
    build(&p, port443, 1, NULL, 0, NULL, 0, domains, 1);
    CHECK_STR(explain_head(&p, "example.org:443", NULL, out, sizeof(out)),
              "example.org is not in the allowed domains (allowDomains; --allow-domain)");
    CHECK_STR(explain_head(&p, "8.8.8.8:443", NULL, out, sizeof(out)),
              "8.8.8.8 is an address, and with allowDomains set only addresses in allowCidrs may "
              "be reached (--allow-cidr 8.8.8.8 allows it)");
    /* A 253-byte name is clipped to LG_POLICY_SHOWN_MAX bytes and "...". */
    char longname[300], want[300];
    size_t w = 0;
    for (int i = 0; i < 3; i++) {
        memset(longname + w, 'a' + i, 62);
        w += 62;
        longname[w++] = '.';
    }
    memcpy(longname + w, "org:443", 8);
    snprintf(want, sizeof(want), "%.62s.a...",
             longname); /* 62 a's, '.', one more byte: 64, then "..." */
    want[63] = 'b';
    strcat(want, " is not in the allowed domains (allowDomains; --allow-domain)");
    CHECK_STR(explain_head(&p, longname, NULL, out, sizeof(out)), want);
    lg_policy_free(&p);

    /* Hostile bytes never reach the explanation as they are (lg_http refuses them first; the
     * formatter escapes them anyway), and the output is clipped. */
    lg_http_req_t req;
    memset(&req, 0, sizeof(req));
    static const char evil[] = "<script>\r\n\x1b[31m\"x\"&\xff";
    memcpy(req.host, evil, sizeof(evil));
    req.host_len = sizeof(evil) - 1;
    req.port = 443;
    build(&p, port443, 1, NULL, 0, NULL, 0, domains, 1);
    lg_policy_explain(&p, &req, LG_POLICY_DOMAIN, NULL, out, sizeof(out));
    CHECK_STR(out, "\\x3cscript\\x3e\\x0d\\x0a\\x1b\\x5b31m\\x22x\\x22\\x26\\xff is not in "
                   "the allowed domains (allowDomains; --allow-domain)");
    memset(req.host, '<', LG_HTTP_MAX_HOST);
    req.host_len = LG_HTTP_MAX_HOST;
    lg_policy_explain(&p, &req, LG_POLICY_DOMAIN, NULL, out, sizeof(out));
    CHECK(strncmp(out, "\\x3c", 4) == 0 && strstr(out, "\\x3c...") != NULL);
    CHECK(strstr(out, "...") - out == 64); /* 16 escapes of 4 bytes, then "..." */
    /* Every byte of the output is printable ASCII. */
    for (const char *q = out; *q; q++)
        CHECK(*q >= 0x20 && *q < 0x7f);
    /* A short buffer clips and stays NUL-terminated. */
    char small[8];
    CHECK_EQ_INT(lg_policy_explain(&p, &req, LG_POLICY_PORT, NULL, small, sizeof(small)), 7);
    CHECK_STR(small, "port 44");
    lg_policy_free(&p);
}

int main(void)
{
    LG_RUN(test_default_deny_ranges);
    LG_RUN(test_embedded_ipv4);
    LG_RUN(test_allow_exceptions);
    LG_RUN(test_ports);
    LG_RUN(test_domains);
    LG_RUN(test_bad_domains);
    LG_RUN(test_filter_mixed_answer);
    LG_RUN(test_zeroed_policy_and_reasons);
    LG_RUN(test_limits);
    LG_RUN(test_alloc_failure);
    LG_RUN(test_explain);
    LG_TEST_END();
}
