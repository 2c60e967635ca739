/*
 * test_config.c — unit tests of compiling a configuration (src/lg_config.c): the fixed part,
 * CONNECT policies, snapshots (router, protection, upstream addresses, ALPN, TLS contexts and
 * their cache), decisions, every refusal's message and path, and allocation failure at every
 * step (ASan/LSan: nothing leaks on any failure path).
 *
 * Certificates are made here with OpenSSL (EC P-256, self-signed), so no fixture files are needed.
 *
 * LG_TEST_LIBS: -lssl -lcrypto */
#include "../../src/lg_affinity.c"
#include "../../src/lg_balancer.c"
#include "../../src/lg_buf.c"
#include "../../src/lg_digest.c"
#include "../../src/lg_hello.c"
#include "../../src/lg_ja.c"
#include "../../src/lg_limit.c"
#include "../../src/lg_cidr.c"
#include "../../src/lg_name.c"
#include "../../src/lg_http.c"
#include "../../src/lg_policy.c"
#include "../../src/lg_router.c"
#include "../../src/lg_rec.c"
#include "../../src/lg_tls.c"
#include "../../src/lg_tls_ctx.c"
#include "../../src/lg_auth.c"
#include "../../src/lg_config.c"

#include <openssl/ec.h>
#include <openssl/pem.h>
#include <openssl/x509.h>

#include "lg_test.h"

/* ---- material ---------------------------------------------------------------------------- */

typedef struct pem_s {
    char *cert, *key;
} pem_t;

static char *bio_text(BIO *b)
{
    char *data = NULL;
    long n = BIO_get_mem_data(b, &data);
    char *out = malloc((size_t)n + 1);
    memcpy(out, data, (size_t)n);
    out[n] = '\0';
    return out;
}

/* A self-signed EC P-256 certificate for `cn` and its key, as PEM text. */
static pem_t make_pem(const char *cn)
{
    pem_t p = {NULL, NULL};
    EVP_PKEY *key = EVP_EC_gen("P-256");
    X509 *x = X509_new();
    X509_set_version(x, 2);
    ASN1_INTEGER_set(X509_get_serialNumber(x), 1);
    X509_gmtime_adj(X509_getm_notBefore(x), 0);
    X509_gmtime_adj(X509_getm_notAfter(x), 3600);
    X509_set_pubkey(x, key);
    X509_NAME *name = X509_get_subject_name(x);
    X509_NAME_add_entry_by_txt(name, "CN", MBSTRING_ASC, (const unsigned char *)cn, -1, -1, 0);
    X509_set_issuer_name(x, name);
    X509_sign(x, key, EVP_sha256());
    BIO *bc = BIO_new(BIO_s_mem()), *bk = BIO_new(BIO_s_mem());
    PEM_write_bio_X509(bc, x);
    PEM_write_bio_PrivateKey(bk, key, NULL, NULL, 0, NULL, NULL);
    p.cert = bio_text(bc);
    p.key = bio_text(bk);
    BIO_free(bc);
    BIO_free(bk);
    X509_free(x);
    EVP_PKEY_free(key);
    return p;
}

static pem_t A, B; /* two certificates: A's key does not match B's certificate */

static lg_src_buf_t buf_of(const char *text)
{
    lg_src_buf_t b;
    b.len = strlen(text);
    b.p = lg_malloc(b.len);
    memcpy(b.p, text, b.len);
    return b;
}

static char *str(const char *s)
{
    char *d = lg_malloc(strlen(s) + 1);
    strcpy(d, s);
    return d;
}

static void set_cert(lg_src_cert_t *c, const char *cert, const char *key)
{
    c->present = true;
    c->chain = buf_of(cert);
    c->key = buf_of(key);
}

static void set_mtls(lg_src_mtls_t *m, const char *ca)
{
    m->present = true;
    m->ca = buf_of(ca);
    m->require_client_cert = true;
}

static void strings(lg_src_strings_t *s, size_t n, const char *const *v)
{
    s->v = lg_calloc(n, sizeof(char *));
    for (size_t i = 0; i < n; i++)
        s->v[i] = str(v[i]);
    s->n = n;
}

/* A route's (or decision's) dial options at their defaults, and every upstream at weight 1. */
static void dial_defaults(lg_src_route_t *r)
{
    r->balance = LG_BALANCE_LEASTCONN;
    r->connect_timeout_ms = 10000;
    r->retries = 2;
    r->max_fails = 3;
    r->fail_timeout_ms = 10000;
    for (size_t i = 0; i < r->n_upstreams; i++)
        r->upstreams[i].weight = 1;
}

/* A source with `nl` listeners (kinds: 't' tls, 'c' connect) and `nr` routes, all defaults. */
static void src_init(lg_src_t *s, const char *kinds, size_t nr)
{
    memset(s, 0, sizeof(*s));
    s->worker_threads = 2;
    s->read_buffer_size = 65536;
    s->sched_kind = LG_SCHED_DRR;
    s->max_queued_per_flow = 262144;
    s->max_tracked_ips = 1000;
    s->resolve_interval_ms = 30000;
    s->keepalive = true;
    s->keepalive_idle_ms = 300000;
    s->keepalive_interval_ms = 30000;
    s->keepalive_count = 5;
    s->half_close_ms = 300000;
    s->n_listeners = strlen(kinds);
    s->listeners = lg_calloc(s->n_listeners, sizeof(lg_src_listener_t));
    for (size_t i = 0; i < s->n_listeners; i++) {
        lg_src_listener_t *l = &s->listeners[i];
        l->kind = kinds[i] == 't' ? LG_LISTENER_TLS : LG_LISTENER_CONNECT;
        l->host = str("127.0.0.1");
        l->idle_timeout_ms = 60000;
        l->protection.tls_handshake_timeout_ms = 10000;
        l->protection.ipv6_prefix = 128;
        if (l->kind == LG_LISTENER_CONNECT) {
            l->max_connections = 1000;
            l->connect.connect_timeout_ms = 10000;
            l->connect.head_timeout_ms = 10000;
            l->connect.allow_ports = lg_calloc(1, sizeof(uint64_t));
            l->connect.allow_ports[0] = 443;
            l->connect.n_allow_ports = 1;
        }
    }
    s->n_routes = nr;
    s->routes = nr ? lg_calloc(nr, sizeof(lg_src_route_t)) : NULL;
    for (size_t i = 0; i < nr; i++) {
        lg_src_route_t *r = &s->routes[i];
        r->sni = str(i == 0 ? "a.test" : i == 1 ? "*.b.test" : "");
        r->suspend_timeout_ms = 30000;
        r->upstreams = lg_calloc(1, sizeof(lg_src_upstream_t));
        r->n_upstreams = 1;
        r->upstreams[0].kind = LG_UPSTREAM_TCP;
        r->upstreams[0].host = str("127.0.0.1");
        r->upstreams[0].port = 9000 + i;
        dial_defaults(r);
    }
}

/* Build both parts; returns the first failure's code and leaves `err` filled. */
static int build_all(const lg_src_t *s, lg_config_t *conf, lg_snapshot_t **snap,
                     lg_tls_cache_t *cur, lg_tls_cache_t *next, lg_cfgerr_t *err)
{
    *snap = NULL;
    if (lg_config_build(s, conf, err) != 0) return -1;
    if (lg_snapshot_build(s, conf, cur, next, snap, err) != 0) {
        lg_config_free(conf);
        return -1;
    }
    return 0;
}

static void done_all(lg_config_t *conf, lg_snapshot_t *snap, lg_tls_cache_t *cache)
{
    lg_snapshot_destroy(snap);
    lg_config_free(conf);
    if (cache != NULL) lg_tls_cache_free(cache);
}

/* Expect a refusal whose message starts with `prefix`. */
#define EXPECT_REFUSED(s, prefix)                                                                  \
    do {                                                                                           \
        lg_config_t conf_;                                                                         \
        lg_snapshot_t *snap_;                                                                      \
        lg_tls_cache_t next_;                                                                      \
        lg_cfgerr_t err_;                                                                          \
        memset(&next_, 0, sizeof(next_));                                                          \
        CHECK(build_all((s), &conf_, &snap_, NULL, &next_, &err_) == -1);                          \
        lg_tls_cache_free(&next_);                                                                 \
        if (strncmp(err_.msg, (prefix), strlen(prefix)) != 0) {                                    \
            fprintf(stderr, "  got: %s\n", err_.msg);                                              \
            CHECK(!"message prefix");                                                              \
        }                                                                                          \
    } while (0)

/* ---- the fixed part ----------------------------------------------------------------------------
 */

LG_TEST(test_minimal)
{
    lg_src_t s;
    src_init(&s, "t", 3);
    lg_config_t conf;
    lg_snapshot_t *snap;
    lg_tls_cache_t next;
    lg_cfgerr_t err;
    memset(&next, 0, sizeof(next));
    CHECK_EQ_INT(build_all(&s, &conf, &snap, NULL, &next, &err), 0);
    CHECK_EQ_INT(conf.worker_threads, 2);
    CHECK_EQ_INT(conf.worker_priority, LG_PRIORITY_NORMAL);
    CHECK_EQ_INT(conf.n_listeners, 1);
    CHECK(strcmp(conf.listeners[0].host, "127.0.0.1") == 0);
    CHECK_EQ_INT(snap->n_routes, 3);
    CHECK_EQ_INT(snap->protection[0].tls_handshake_timeout_ms, 10000);
    CHECK_EQ_INT(lg_router_lookup(&snap->router, "a.test", 6), 0);
    CHECK_EQ_INT(lg_router_lookup(&snap->router, "x.b.test", 8), 1);
    CHECK_EQ_INT(lg_router_lookup(&snap->router, "other", 5), 2);
    /* Passthrough routes without cert/mtls have no contexts; an IP literal is an address. */
    CHECK(snap->routes[0].ctx == NULL);
    CHECK(snap->routes[0].upstreams[0].literal);
    CHECK_EQ_INT(ntohs(snap->routes[0].upstreams[0].addr.in4.sin_port), 9000);
    /* The default ALPN list is the caller's: none given, none compiled. */
    CHECK(snap->routes[0].alpn == NULL);
    done_all(&conf, snap, &next);
    lg_src_free(&s);
}

LG_TEST(test_upstream_hosts_and_alpn)
{
    lg_src_t s;
    src_init(&s, "t", 1);
    lg_src_route_t *r = &s.routes[0];
    lg_free(r->upstreams[0].host);
    lg_free(r->upstreams);
    r->upstreams = lg_calloc(4, sizeof(lg_src_upstream_t));
    r->n_upstreams = 4;
    const char *hosts[] = {"::1", "[::1]", "localhost"};
    for (int i = 0; i < 3; i++) {
        r->upstreams[i].kind = LG_UPSTREAM_TCP;
        r->upstreams[i].host = str(hosts[i]);
        r->upstreams[i].port = 443;
    }
    r->upstreams[3].kind = LG_UPSTREAM_UDS;
    r->upstreams[3].path = str("/tmp/x.sock");
    dial_defaults(r);
    const char *alpn[] = {"h2", "http/1.1"};
    strings(&r->alpn, 2, alpn);
    lg_config_t conf;
    lg_snapshot_t *snap;
    lg_cfgerr_t err;
    CHECK_EQ_INT(build_all(&s, &conf, &snap, NULL, NULL, &err), 0);
    const lg_route_t *rt = &snap->routes[0];
    CHECK(rt->upstreams[0].literal && rt->upstreams[0].addr.sa.sa_family == AF_INET6);
    CHECK(rt->upstreams[1].literal && rt->upstreams[1].addr.sa.sa_family == AF_INET6);
    CHECK(!rt->upstreams[2].literal); /* a name: resolved when dialled, never here */
    CHECK(strcmp(rt->upstreams[2].host, "localhost") == 0);
    CHECK(strcmp(rt->upstreams[3].path, "/tmp/x.sock") == 0);
    CHECK_EQ_INT(rt->alpn_len, 12);
    CHECK(memcmp(rt->alpn, "\x02h2\x08http/1.1", 12) == 0);

    /* The name's cached answer: none, fresh, stale (one refresh claim at a time), marked stale
     * by a swap (a refresh claimed before it is not stored). */
    lg_upshared_t *u = rt->upstreams[2].shared;
    lg_sockaddr_t a[2], out[LG_UPSTREAM_ADDRS_MAX];
    memset(a, 0, sizeof(a));
    a[0].in4.sin_family = AF_INET;
    a[0].in4.sin_addr.s_addr = htonl(0x7f000001);
    a[1] = a[0];
    a[1].in4.sin_addr.s_addr = htonl(0x7f000002);
    lg_addrs_age_t age;
    CHECK_EQ_INT(lg_upshared_addrs(u, out, LG_UPSTREAM_ADDRS_MAX, 1000, 100, &age), 0);
    CHECK_EQ_INT(age, LG_ADDRS_NONE);
    lg_upshared_store(u, a, 1, 1000);
    CHECK_EQ_INT(lg_upshared_addrs(u, out, LG_UPSTREAM_ADDRS_MAX, 1099, 100, &age), 1);
    CHECK_EQ_INT(age, LG_ADDRS_FRESH);
    CHECK_EQ_INT(lg_upshared_addrs(u, out, LG_UPSTREAM_ADDRS_MAX, 990, 100, &age), 1);
    CHECK_EQ_INT(age, LG_ADDRS_FRESH); /* another worker's loop time, a little behind */
    CHECK_EQ_INT(lg_upshared_addrs(u, out, LG_UPSTREAM_ADDRS_MAX, 1100, 100, &age), 1);
    CHECK_EQ_INT(age, LG_ADDRS_STALE);
    uint32_t gen, gen2;
    CHECK(lg_upshared_claim_refresh(u, 1100, &gen));
    CHECK(!lg_upshared_claim_refresh(u, 1200, &gen2));   /* one lookup at a time */
    lg_upshared_refreshed(u, gen, NULL, 0, false, 1300); /* abandoned: the old answer stays */
    CHECK_EQ_INT(lg_upshared_addrs(u, out, LG_UPSTREAM_ADDRS_MAX, 1300, 100, &age), 1);
    CHECK_EQ_INT(age, LG_ADDRS_STALE);
    CHECK(lg_upshared_claim_refresh(u, 1300, &gen));    /* free again at once */
    lg_upshared_refreshed(u, gen, NULL, 0, true, 1310); /* failed: the old answer stays, and */
    CHECK_EQ_INT(lg_upshared_addrs(u, out, LG_UPSTREAM_ADDRS_MAX, 1310, 100, &age), 1);
    CHECK_EQ_INT(age, LG_ADDRS_STALE);
    CHECK(!lg_upshared_claim_refresh(u, 1310 + LG_UPSTREAM_REFRESH_RETRY_MS - 1, &gen2));
    CHECK(lg_upshared_claim_refresh(u, 1310 + LG_UPSTREAM_REFRESH_RETRY_MS, &gen)); /* it waited */
    lg_upshared_refreshed(u, gen, a, 2, false, 1400);
    CHECK_EQ_INT(lg_upshared_addrs(u, out, LG_UPSTREAM_ADDRS_MAX, 1450, 100, &age), 2);
    CHECK_EQ_INT(age, LG_ADDRS_FRESH);
    CHECK(memcmp(&out[1], &a[1], sizeof(a[1])) == 0);
    /* A lost claim is taken over after LG_UPSTREAM_REFRESH_CLAIM_MS. */
    CHECK(lg_upshared_claim_refresh(u, 2000, &gen));
    CHECK(!lg_upshared_claim_refresh(u, 2000 + LG_UPSTREAM_REFRESH_CLAIM_MS - 1, &gen2));
    CHECK(lg_upshared_claim_refresh(u, 2000 + LG_UPSTREAM_REFRESH_CLAIM_MS, &gen2));
    lg_upshared_refreshed(u, gen2, a, 1, false, 40000);
    /* A swap marks it stale: a refresh claimed before is not stored. */
    CHECK(lg_upshared_claim_refresh(u, 50000, &gen));
    lg_upshared_stale_all();
    CHECK_EQ_INT(lg_upshared_addrs(u, out, LG_UPSTREAM_ADDRS_MAX, 50001, 100, &age), 1);
    CHECK_EQ_INT(age, LG_ADDRS_NONE); /* kept, as the fallback of the lookup it must wait for */
    lg_upshared_refreshed(u, gen, a, 2, false, 50002);
    CHECK_EQ_INT(lg_upshared_addrs(u, out, LG_UPSTREAM_ADDRS_MAX, 50003, 100, &age), 1);
    CHECK_EQ_INT(age, LG_ADDRS_NONE);
    CHECK(lg_upshared_claim_refresh(u, 50004, &gen)); /* the claim was given back */
    lg_upshared_stale_all();
    lg_upshared_refreshed(u, gen, NULL, 0, true, 50005); /* failed, but claimed before a swap: */
    CHECK(lg_upshared_claim_refresh(u, 50006, &gen));    /* no wait */
    lg_upshared_refreshed(u, gen, NULL, 0, false, 50007);
    /* After a swap a connection's own lookup failed and it dialled the last answer: that answer
     * is stale from then on (the next dials take it at once), and its refresh waits. */
    CHECK_EQ_INT(lg_upshared_addrs(u, out, LG_UPSTREAM_ADDRS_MAX, 60000, 100, &age), 1);
    CHECK_EQ_INT(age, LG_ADDRS_NONE);
    lg_upshared_fallback(u, 60000);
    CHECK_EQ_INT(lg_upshared_addrs(u, out, LG_UPSTREAM_ADDRS_MAX, 60001, 100000, &age), 1);
    CHECK_EQ_INT(age, LG_ADDRS_STALE); /* whatever resolveIntervalMs is */
    CHECK(!lg_upshared_claim_refresh(u, 60001, &gen));
    CHECK(lg_upshared_claim_refresh(u, 60000 + LG_UPSTREAM_REFRESH_RETRY_MS, &gen));
    lg_upshared_refreshed(u, gen, a, 2, false, 61001);
    CHECK_EQ_INT(lg_upshared_addrs(u, out, LG_UPSTREAM_ADDRS_MAX, 61002, 100, &age), 2);
    CHECK_EQ_INT(age, LG_ADDRS_FRESH);
    lg_upshared_fallback(u, 61003); /* a fresh answer is there: nothing to fall back from */
    CHECK_EQ_INT(lg_upshared_addrs(u, out, LG_UPSTREAM_ADDRS_MAX, 61004, 100, &age), 2);
    CHECK_EQ_INT(age, LG_ADDRS_FRESH);
    lg_upshared_stale_all();
    lg_upshared_fallback(u, 62000);
    lg_upshared_store(u, a, 1, 62001); /* another connection's lookup answered */
    CHECK_EQ_INT(lg_upshared_addrs(u, out, LG_UPSTREAM_ADDRS_MAX, 62002, 100, &age), 1);
    CHECK_EQ_INT(age, LG_ADDRS_FRESH);

    done_all(&conf, snap, NULL);
    lg_src_free(&s);
}

LG_TEST(test_connect_policy)
{
    lg_src_t s;
    src_init(&s, "c", 0);
    lg_src_connect_t *cn = &s.listeners[0].connect;
    const char *deny[] = {"10.0.0.0/8"}, *allow[] = {"10.1.0.0/16"}, *dom[] = {"Example.COM."};
    strings(&cn->deny_cidrs, 1, deny);
    strings(&cn->allow_cidrs, 1, allow);
    strings(&cn->allow_domains, 1, dom);
    lg_config_t conf;
    lg_cfgerr_t err;
    CHECK_EQ_INT(lg_config_build(&s, &conf, &err), 0);
    const lg_listener_conf_t *lc = &conf.listeners[0];
    CHECK_EQ_INT(lc->head_limit, 250); /* a quarter of 1000 */
    CHECK_EQ_INT(lc->head_share, 62);  /* a quarter of that */
    CHECK_EQ_INT(lc->connect_timeout_ms, 10000);
    CHECK_EQ_INT(lc->head_timeout_ms, 10000);
    uint8_t a[16] = {10, 2, 0, 1}, b[16] = {10, 1, 0, 1};
    CHECK(!lg_policy_addr_allowed(&lc->policy, 4, a));
    CHECK(lg_policy_addr_allowed(&lc->policy, 4, b));
    CHECK_EQ_INT(lc->policy.n_domains, 1);
    lg_config_free(&conf);
    lg_src_free(&s);
    CHECK_EQ_INT(lg_config_head_limit(0), 4096);
    CHECK_EQ_INT(lg_config_head_limit(10), 16);
    CHECK_EQ_INT(lg_config_head_limit(1000), 250);
    CHECK_EQ_INT(lg_config_head_share(16), 4);
    CHECK_EQ_INT(lg_config_head_share(3), 1);
}

/* connect.auth: users sorted, the dummy has the first user's cost, the 407 names the realm, the
 * failure limit's table exists iff failureLimit is set (1/60000 per minute, burst 1/1000 at max and
 * max + 1); each refusal names its path. */
LG_TEST(test_connect_auth)
{
    static const char h1[] = "$scrypt$ln=4,r=8,p=1$bGVnYXRvLXNhbHQtMDAwMQ$HPWl3luOPVCLz1ms1c40XC/"
                             "ZJHcty+SmgYBJ+j8VHVc";
    static const char h2[] = "$scrypt$ln=5,r=2,p=3$AAAAAAAAAAAAAAAAAAAAAA$"
                             "AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA";
    typedef struct {
        const char *realm;
        const char *names[3];
        const char *hashes[3];
        size_t n;
        const char *err; /* NULL: builds */
        bool limit;      /* failureLimit set: */
        uint32_t per_minute, burst;
    } row_t;
#define FL_ERR                                                                                     \
    "listeners[0].connect.auth.failureLimit must be { perMinute: 1-60000, burst: 1-1000 }"
    static const row_t rows[] = {
        {NULL, {"zed", "amy"}, {h2, h1}, 2, NULL, false, 0, 0},
        {"Corp", {"a"}, {h1}, 1, NULL, false, 0, 0},
        {NULL,
         {"a", "a"},
         {h1, h1},
         2,
         "listeners[0].connect.auth.users: user 'a' appears twice",
         false,
         0,
         0},
        {NULL,
         {"a", "b"},
         {h1, "$scrypt$ln=4"},
         2,
         "listeners[0].connect.auth.users[1].hash is not a $scrypt$ hash: parameters",
         false,
         0,
         0},
        {NULL,
         {"a:b"},
         {h1},
         1,
         "listeners[0].connect.auth.users[0].name must be 1-255 bytes",
         false,
         0,
         0},
        {NULL,
         {""},
         {h1},
         1,
         "listeners[0].connect.auth.users[0].name must be 1-255 bytes",
         false,
         0,
         0},
        {"a\"b", {"a"}, {h1}, 1, "listeners[0].connect.auth.realm must be 1-128", false, 0, 0},
        {NULL,
         {NULL},
         {NULL},
         0,
         "listeners[0].connect.auth.users must have 1-10000 entries",
         false,
         0,
         0},
        {NULL, {"a"}, {h1}, 1, NULL, true, 10, 10},
        {NULL, {"a"}, {h1}, 1, NULL, true, 60000, 1000},
        {NULL, {"a"}, {h1}, 1, NULL, true, 1, 1},
        {NULL, {"a"}, {h1}, 1, FL_ERR, true, 0, 10},
        {NULL, {"a"}, {h1}, 1, FL_ERR, true, 60001, 10},
        {NULL, {"a"}, {h1}, 1, FL_ERR, true, 10, 0},
        {NULL, {"a"}, {h1}, 1, FL_ERR, true, 10, 1001},
    };
    for (size_t i = 0; i < LG_ARRAY_SIZE(rows); i++) {
        const row_t *r = &rows[i];
        lg_src_t s;
        src_init(&s, "c", 0);
        lg_src_connect_t *cn = &s.listeners[0].connect;
        cn->has_auth = true;
        cn->auth_realm = r->realm ? str(r->realm) : NULL;
        strings(&cn->auth_names, r->n, r->names);
        strings(&cn->auth_hashes, r->n, r->hashes);
        cn->has_auth_fail_limit = r->limit;
        cn->auth_fail_per_minute = r->per_minute;
        cn->auth_fail_burst = r->burst;
        lg_config_t conf;
        lg_cfgerr_t err;
        int rc = lg_config_build(&s, &conf, &err);
        lg_src_free(&s);
        if (r->err != NULL) {
            CHECK_ROW(rc == -1 && strncmp(err.msg, r->err, strlen(r->err)) == 0, r->err);
            continue;
        }
        CHECK_ROW(rc == 0, "builds");
        const lg_auth_t *a = conf.listeners[0].auth;
        CHECK(a != NULL && a->n_users == r->n);
        CHECK(strcmp(a->users[0].name, r->n == 2 ? "amy" : "a") == 0);
        CHECK(lg_auth_find(a, (const uint8_t *)"zed", 3) == (r->n == 2 ? &a->users[1] : NULL));
        /* The dummy: the first configured user's cost and lengths, not its salt or hash. */
        const lg_scrypt_t *first = r->n == 2 ? &a->users[1].hash : &a->users[0].hash;
        CHECK(a->dummy.ln == first->ln && a->dummy.r == first->r && a->dummy.p == first->p);
        CHECK(a->dummy.salt_len == first->salt_len && a->dummy.hash_len == first->hash_len);
        CHECK(memcmp(a->dummy.hash, first->hash, first->hash_len) != 0);
        char want[64];
        snprintf(want, sizeof(want), "Basic realm=\"%s\"", r->realm ? r->realm : "legato");
        CHECK(strstr(a->response, want) != NULL && a->response_len == strlen(a->response));
        CHECK((a->throttle.slots != NULL) == r->limit);
        if (r->limit) {
            uint64_t t_us = (60000000u + r->per_minute / 2) / r->per_minute;
            CHECK_EQ_INT(a->throttle.interval_us, t_us);
            /* The source built here has two workers: a bucket holds at least two tokens. */
            CHECK_EQ_INT(a->throttle.tolerance_us, (LG_MAX(r->burst, 2u) - 1) * t_us);
        }
        lg_config_free(&conf);
    }
    /* Two proxies built from one source get different cache salts. */
    lg_src_t s;
    src_init(&s, "c", 0);
    s.listeners[0].connect.has_auth = true;
    const char *n1[] = {"a"}, *hh[] = {h1};
    strings(&s.listeners[0].connect.auth_names, 1, n1);
    strings(&s.listeners[0].connect.auth_hashes, 1, hh);
    lg_config_t c1, c2;
    lg_cfgerr_t err;
    CHECK_EQ_INT(lg_config_build(&s, &c1, &err), 0);
    CHECK_EQ_INT(lg_config_build(&s, &c2, &err), 0);
    CHECK(memcmp(c1.listeners[0].auth->cache_salt, c2.listeners[0].auth->cache_salt,
                 LG_AUTH_SALT_LEN) != 0);
    lg_config_free(&c1);
    lg_config_free(&c2);
    lg_src_free(&s);
}

/* ---- refusals
 * ------------------------------------------------------------------------------------ */

LG_TEST(test_range_refusals)
{
    lg_src_t s;
    src_init(&s, "tc", 1);
    s.worker_threads = 0;
    EXPECT_REFUSED(&s, "workerThreads must be an integer 1-256");
    s.worker_threads = 257;
    EXPECT_REFUSED(&s, "workerThreads must be an integer 1-256");
    s.worker_threads = 1;
    s.worker_priority = LG_PRIORITY_REALTIME + 1;
    EXPECT_REFUSED(&s, "workerPriority must be 'normal' or 'realtime'");
    s.worker_priority = LG_PRIORITY_REALTIME;
    s.read_buffer_size = LG_BUF_SIZE_MAX + 1;
    EXPECT_REFUSED(&s, "readBufferSize must be an integer 1024-16777216");
    s.read_buffer_size = LG_BUF_SIZE_MIN;
    s.max_queued_per_flow = LG_FLOW_QUEUE_MIN - 1;
    EXPECT_REFUSED(&s, "scheduler.maxQueuedBytesPerFlow must be an integer 16384-");
    s.max_queued_per_flow = LG_FLOW_QUEUE_MIN;
    s.listeners[0].port = 65536;
    EXPECT_REFUSED(&s, "listeners[0].port must be an integer 0-65535");
    s.listeners[0].port = 65535;
    s.listeners[1].connect.connect_timeout_ms = LG_CONNECT_TIMEOUT_MAX + 1;
    EXPECT_REFUSED(&s, "listeners[1].connect.connectTimeoutMs must be an integer 1-600000");
    s.listeners[1].connect.connect_timeout_ms = 1;
    s.listeners[1].connect.head_timeout_ms = 0;
    EXPECT_REFUSED(&s, "listeners[1].connect.headTimeoutMs must be an integer 1-600000");
    s.listeners[1].connect.head_timeout_ms = LG_CONNECT_TIMEOUT_MAX + 1;
    EXPECT_REFUSED(&s, "listeners[1].connect.headTimeoutMs must be an integer 1-600000");
    s.listeners[1].connect.head_timeout_ms = 1;
    s.listeners[1].connect.allow_ports[0] = 0;
    EXPECT_REFUSED(&s, "listeners[1].connect.allowPorts[0] must be an integer 1-65535");
    s.listeners[1].connect.allow_ports[0] = 443;
    const char *bad_cidr[] = {"10.1.2.3/8"};
    strings(&s.listeners[1].connect.deny_cidrs, 1, bad_cidr);
    EXPECT_REFUSED(&s, "listeners[1].connect.denyCidrs[0] '10.1.2.3/8' is not a CIDR");
    lg_src_listener_free(&s.listeners[1]);
    s.n_listeners = 1;
    s.listeners[0].protection.tls_handshake_timeout_ms = 0;
    EXPECT_REFUSED(&s, "listeners[0].protection.tlsHandshakeTimeoutMs must be an integer 1-600000");
    s.listeners[0].protection.tls_handshake_timeout_ms = LG_HANDSHAKE_TIMEOUT_MAX;
    s.routes[0].suspend_timeout_ms = 0;
    EXPECT_REFUSED(&s, "routes[0].suspendTimeoutMs must be an integer 1-2147483647");
    s.routes[0].suspend_timeout_ms = LG_TIMEOUT_MAX_MS;
    s.routes[0].upstreams[0].port = 0;
    EXPECT_REFUSED(&s, "routes[0].upstreams[0].port must be an integer 1-65535");
    s.routes[0].upstreams[0].port = 1;
    char long_alpn[LG_ALPN_MAX_LEN + 2];
    memset(long_alpn, 'p', sizeof(long_alpn) - 1);
    long_alpn[sizeof(long_alpn) - 1] = '\0';
    const char *alpn[] = {"h2", long_alpn};
    strings(&s.routes[0].alpn, 2, alpn);
    EXPECT_REFUSED(&s, "routes[0].alpn[1] must be 1-255 bytes");
    long_alpn[LG_ALPN_MAX_LEN] = '\0'; /* exactly the maximum is fine */
    strings_free(&s.routes[0].alpn);
    strings(&s.routes[0].alpn, 2, alpn);
    lg_config_t conf;
    lg_snapshot_t *snap;
    lg_cfgerr_t err;
    CHECK_EQ_INT(build_all(&s, &conf, &snap, NULL, NULL, &err), 0);
    done_all(&conf, snap, NULL);
    lg_src_free(&s);
}

LG_TEST(test_route_table_refusals)
{
    lg_src_t s;
    src_init(&s, "t", 2);
    lg_free(s.routes[1].sni);
    s.routes[1].sni = str("A.Test.");
    EXPECT_REFUSED(&s, "routes[1].sni 'A.Test.' duplicates an earlier route");
    lg_free(s.routes[1].sni);
    s.routes[1].sni = str("a_b.test");
    EXPECT_REFUSED(&s, "routes[1].sni 'a_b.test' is not a valid name, *.suffix or ''");
    lg_src_free(&s);
}

/* ---- TLS contexts --------------------------------------------------------------------------- */

LG_TEST(test_tls_contexts_and_cache)
{
    lg_src_t s;
    src_init(&s, "tc", 2);
    s.routes[0].terminate_tls = true;
    set_cert(&s.routes[0].cert, A.cert, A.key);
    s.routes[1].terminate_tls = true;
    set_cert(&s.listeners[0].default_cert, B.cert, B.key); /* routes[1] falls back to it */
    lg_config_t conf;
    lg_snapshot_t *snap, *snap2;
    lg_tls_cache_t next, next2;
    lg_cfgerr_t err;
    memset(&next, 0, sizeof(next));
    memset(&next2, 0, sizeof(next2));
    CHECK_EQ_INT(build_all(&s, &conf, &snap, NULL, &next, &err), 0);
    CHECK_EQ_INT(snap->routes[0].n_ctx, 2);
    CHECK(snap->routes[0].ctx[0] != NULL);
    CHECK(snap->routes[0].ctx[1] == NULL); /* a connect listener terminates nothing */
    CHECK(snap->routes[1].ctx[0] != NULL && snap->routes[1].ctx[0] != snap->routes[0].ctx[0]);
    CHECK_EQ_INT(next.n, 2); /* A, and B (the defaultCert, also checked on its own) */
    /* Unchanged material keeps its context across a swap (session tickets survive). */
    CHECK_EQ_INT(lg_snapshot_build(&s, &conf, &next, &next2, &snap2, &err), 0);
    CHECK(snap2->routes[0].ctx[0] == snap->routes[0].ctx[0]);
    CHECK(snap2->routes[1].ctx[0] == snap->routes[1].ctx[0]);
    lg_snapshot_destroy(snap2);
    lg_tls_cache_free(&next2);
    /* Rotated material gets a new one. */
    cert_free(&s.routes[0].cert);
    set_cert(&s.routes[0].cert, B.cert, B.key);
    memset(&next2, 0, sizeof(next2));
    CHECK_EQ_INT(lg_snapshot_build(&s, &conf, &next, &next2, &snap2, &err), 0);
    CHECK(snap2->routes[0].ctx[0] == snap->routes[1].ctx[0]); /* B's context, reused */
    lg_snapshot_destroy(snap2);
    lg_tls_cache_free(&next2);
    done_all(&conf, snap, &next);
    lg_src_free(&s);
}

/* The context cache keeps every distinct material (no cap) behind a hash index: 600 materials
 * (A's certificate followed by 0..599 newlines: distinct digests, the same PEM), each found
 * again by the next swap without building anything, and the same material twice in one
 * snapshot is one context. */
/* A's certificate text cut at `len` (its trailing newlines vary the digest) with A's key. */
static lg_tls_material_t variant(const char *text, size_t len)
{
    lg_tls_material_t m = {
        (const uint8_t *)text, len, (const uint8_t *)A.key, strlen(A.key), NULL, 0, false};
    return m;
}

LG_TEST(test_tls_cache_keeps_every_material)
{
    enum { N = 600 };
    size_t clen = strlen(A.cert);
    char *text = malloc(clen + N);
    memcpy(text, A.cert, clen);
    memset(text + clen, '\n', N);
    lg_tls_cache_t one, two;
    memset(&one, 0, sizeof(one));
    memset(&two, 0, sizeof(two));
    static SSL_CTX *got[N];
    char why[256];
    int fault = 0;
    bool ok = true;
    for (int i = 0; i < N && ok; i++) {
        lg_tls_material_t m = variant(text, clen + (size_t)i);
        got[i] = lg_tls_ctx_get(NULL, &one, &m, why, sizeof(why), &fault);
        ok = got[i] != NULL;
        /* the same material again in the same snapshot: the same context */
        SSL_CTX *again = ok ? lg_tls_ctx_get(NULL, &one, &m, why, sizeof(why), &fault) : NULL;
        ok = ok && again == got[i];
        SSL_CTX_free(again);
    }
    CHECK(ok);
    CHECK_EQ_INT(one.n, N);
    /* A swap: every material is found in the current cache, none is built again. */
    for (int i = 0; i < N && ok; i++) {
        lg_tls_material_t m = variant(text, clen + (size_t)i);
        SSL_CTX *c = lg_tls_ctx_get(&one, &two, &m, why, sizeof(why), &fault);
        ok = c == got[i];
        SSL_CTX_free(c);
    }
    CHECK(ok);
    CHECK_EQ_INT(two.n, N);
    for (int i = 0; i < N; i++)
        SSL_CTX_free(got[i]);
    lg_tls_cache_free(&one);
    lg_tls_cache_free(&two);
    free(text);
}

LG_TEST(test_tls_refusals_name_the_option)
{
    lg_src_t s;
    src_init(&s, "t", 1);
    s.routes[0].terminate_tls = true;
    EXPECT_REFUSED(&s, "routes[0].cert is required: terminateTls needs a cert, or a defaultCert "
                       "on listeners[0]");
    set_cert(&s.routes[0].cert, B.cert, A.key);
    EXPECT_REFUSED(&s, "routes[0].cert: private key does not match certificate");
    cert_free(&s.routes[0].cert);
    set_cert(&s.routes[0].cert, A.cert, A.key);
    set_mtls(&s.routes[0].mtls,
             "-----BEGIN CERTIFICATE-----\ngarbage\n-----END CERTIFICATE-----\n");
    EXPECT_REFUSED(&s, "routes[0].mtls: clientCaCert");
    mtls_free(&s.routes[0].mtls);
    /* A listener's defaultCert is checked even when no route uses it. */
    s.routes[0].terminate_tls = false;
    cert_free(&s.routes[0].cert);
    set_cert(&s.listeners[0].default_cert, A.cert, B.key);
    EXPECT_REFUSED(&s, "listeners[0].defaultCert: private key does not match certificate");
    cert_free(&s.listeners[0].default_cert);
    /* A client CA without any certificate to pair it with is still checked. */
    set_mtls(&s.listeners[0].mtls, "not pem");
    EXPECT_REFUSED(&s, "listeners[0].mtls: clientCaCert holds no readable PEM certificate");
    lg_src_free(&s);
}

LG_TEST(test_decisions)
{
    lg_src_t s;
    src_init(&s, "tt", 1);
    s.routes[0].suspended = true;
    set_cert(&s.routes[0].cert, A.cert, A.key);
    lg_config_t conf;
    lg_snapshot_t *snap;
    lg_tls_cache_t next;
    lg_cfgerr_t err;
    memset(&next, 0, sizeof(next));
    CHECK_EQ_INT(build_all(&s, &conf, &snap, NULL, &next, &err), 0);
    CHECK(snap->routes[0].ctx[1] != NULL); /* a suspended route's cert serves its decisions */

    lg_src_route_t d;
    memset(&d, 0, sizeof(d));
    dial_defaults(&d);
    d.terminate_tls = true;
    lg_route_t *rt = NULL;
    /* No upstream: refused. */
    CHECK_EQ_INT(lg_decision_build(&d, &s.listeners[1], &conf, 1, true, &next, &rt, &err), -1);
    CHECK(strcmp(err.msg, "decision.upstreams must have at least one entry") == 0);
    d.upstreams = lg_calloc(1, sizeof(lg_src_upstream_t));
    d.n_upstreams = 1;
    d.upstreams[0].kind = LG_UPSTREAM_UDS;
    d.upstreams[0].path = str("/tmp/y.sock");
    dial_defaults(&d);
    /* Terminating with the route's context: the decision gets none of its own. */
    CHECK_EQ_INT(lg_decision_build(&d, &s.listeners[1], &conf, 1, true, &next, &rt, &err), 0);
    CHECK(rt->ctx == NULL);
    lg_route_destroy(rt);
    /* No context on the route and none in the decision: refused, naming the listener. */
    CHECK_EQ_INT(lg_decision_build(&d, &s.listeners[1], &conf, 1, false, &next, &rt, &err), -1);
    CHECK(strncmp(err.msg, "decision.cert is required", 25) == 0);
    /* Its own certificate: a context for the connection's listener only (reused from the
     * cache: same material as the route's). */
    set_cert(&d.cert, A.cert, A.key);
    CHECK_EQ_INT(lg_decision_build(&d, &s.listeners[1], &conf, 1, false, &next, &rt, &err), 0);
    CHECK(rt->ctx[0] == NULL && rt->ctx[1] == snap->routes[0].ctx[1]);
    lg_route_destroy(rt);
    lg_src_route_free(&d);
    done_all(&conf, snap, &next);
    lg_src_free(&s);
}

/* ---- allocation failures ------------------------------------------------------------------------
 */

LG_TEST(test_protection)
{
    lg_src_t s;
    src_init(&s, "tc", 1);
    lg_src_protection_t *p = &s.listeners[0].protection;
    p->rate = (lg_src_bucket_t){true, 10, 5};
    p->sustained = (lg_src_bucket_t){true, 100, 100};
    p->penalty_box = true;
    p->penalty_box_ms = 600000;
    p->max_concurrent_per_ip = 4;
    p->ipv6_prefix = 64;
    p->require_sni = true;
    const char *allow[] = {"10.1.0.0/16"}, *block[] = {"10.0.0.0/8", "2001:db8::/32"};
    const char *ja3[] = {"e7d705a3286e19ea42f587b344ee6865"};
    const char *ja4[] = {"t13d1516h2_8daaf6152771_e5627efa2ab1"};
    strings(&p->allowlist, 1, allow);
    strings(&p->blocklist, 2, block);
    strings(&p->ja3_blocklist, 1, ja3);
    strings(&p->ja4_blocklist, 1, ja4);
    s.routes[0].max_connections_per_second = 2;
    s.routes[0].burst = 3;
    s.listeners[1].accept_proxy = LG_PP_ACCEPT_ANY;
    const char *trusted[] = {"127.0.0.1"};
    strings(&s.listeners[1].trusted_proxies, 1, trusted);
    lg_config_t conf;
    lg_snapshot_t *snap;
    lg_cfgerr_t err;
    CHECK_EQ_INT(build_all(&s, &conf, &snap, NULL, NULL, &err), 0);
    const lg_protection_t *c = &snap->protection[0];
    CHECK(c->track && c->require_sni);
    CHECK_EQ_INT(c->ipv6_prefix, 64);
    CHECK_EQ_INT(c->rules.rate.interval_ns, 100000000);      /* 10 per second: 100 ms a token */
    CHECK_EQ_INT(c->rules.rate.tolerance_ns, 400000000);     /* burst 5: 4 tokens ahead */
    CHECK_EQ_INT(c->rules.sustained.interval_ns, 600000000); /* 100 per minute */
    CHECK_EQ_INT(c->rules.max_concurrent, 4);
    CHECK_EQ_INT(c->rules.penalty_box_ms, 600000);
    uint8_t in[16] = {10, 2, 3, 4}, allowed[16] = {10, 1, 3, 4};
    CHECK(lg_cidr_set_contains(&c->block, 4, in));
    CHECK(lg_cidr_set_contains(&c->allow, 4, allowed));
    CHECK(lg_ja_set_contains(&c->ja3, ja3[0]) && lg_ja_set_contains(&c->ja4, ja4[0]));
    CHECK_EQ_INT(c->block_text.n, 2);
    CHECK(!snap->protection[1].track); /* nothing set on the second listener */
    CHECK_EQ_INT(snap->routes[0].rate.interval_ns, 500000000);
    CHECK_EQ_INT(conf.listeners[1].accept_proxy, LG_PP_ACCEPT_ANY);
    uint8_t lo[16] = {127, 0, 0, 1};
    CHECK(lg_cidr_set_contains(&conf.listeners[1].trusted, 4, lo));
    CHECK_EQ_INT(conf.max_tracked_ips, 1000);
    done_all(&conf, snap, NULL);

    /* Refusals name the option. */
    strings_free(&p->ja4_blocklist);
    const char *bad_ja4[] = {ja4[0], "t13d1516h2_8daaf6152771"};
    strings(&p->ja4_blocklist, 2, bad_ja4);
    EXPECT_REFUSED(&s, "listeners[0].protection.ja4Blocklist[1] is not a JA4 fingerprint");
    strings_free(&p->ja4_blocklist);
    p->ipv6_prefix = 0;
    EXPECT_REFUSED(&s, "listeners[0].protection.ipv6Prefix must be an integer 1-128");
    p->ipv6_prefix = 128;
    p->rate.burst = 0.5;
    EXPECT_REFUSED(&s, "listeners[0].protection.rateLimit: connectionsPerSecond must be");
    p->rate.burst = 1;
    p->penalty_box_ms = 0;
    EXPECT_REFUSED(&s, "listeners[0].protection.penaltyBox.durationMs must be an integer 1-");
    p->penalty_box_ms = 1;
    strings_free(&s.listeners[1].trusted_proxies);
    EXPECT_REFUSED(&s, "listeners[1].trustedProxies must not be empty when acceptProxyProtocol");
    s.listeners[1].accept_proxy = 0;
    s.max_tracked_ips = LG_LIMIT_MAX_TRACKED + 1;
    EXPECT_REFUSED(&s, "protection.maxTrackedIps must be an integer 1-16777216");
    lg_src_free(&s);
}

LG_TEST(test_allocation_failures)
{
    lg_src_t s;
    src_init(&s, "tc", 3);
    s.routes[0].terminate_tls = true;
    set_cert(&s.routes[0].cert, A.cert, A.key);
    const char *alpn[] = {"h2"}, *dom[] = {"example.com"}, *deny[] = {"10.0.0.0/8"};
    strings(&s.routes[0].alpn, 1, alpn);
    strings(&s.listeners[1].connect.allow_domains, 1, dom);
    strings(&s.listeners[1].connect.deny_cidrs, 1, deny);
    const char *names[] = {"a", "b"},
               *hashes[] = {"$scrypt$ln=4,r=8,p=1$AAAAAAAAAAAAAAAAAAAAAA$AAAAAAAAAAAAAAAAAAAAAA",
                            "$scrypt$ln=4,r=8,p=1$AAAAAAAAAAAAAAAAAAAAAA$AAAAAAAAAAAAAAAAAAAAAA"};
    s.listeners[1].connect.has_auth = true;
    strings(&s.listeners[1].connect.auth_names, 2, names);
    strings(&s.listeners[1].connect.auth_hashes, 2, hashes);
    int failures = 0;
    for (long n = 0; n < 400; n++) {
        lg_config_t conf;
        lg_snapshot_t *snap = NULL;
        lg_tls_cache_t next;
        lg_cfgerr_t err;
        memset(&next, 0, sizeof(next));
        lg_alloc_fail_after(n);
        int rc = build_all(&s, &conf, &snap, NULL, &next, &err);
        lg_alloc_fail_after(-1);
        if (rc != 0) {
            failures++;
            CHECK(strstr(err.msg, "out of memory") != NULL);
            lg_tls_cache_free(&next);
            continue;
        }
        done_all(&conf, snap, &next);
        break; /* n reached past every allocation of a build */
    }
    CHECK(failures > 10);
    lg_src_free(&s);
}

/* Upstreams: weights, pid/tid, affinity, dial options, and state shared by identity. */
LG_TEST(test_upstreams)
{
    lg_src_t s;
    src_init(&s, "t", 2);
    lg_src_route_t *r = &s.routes[0];
    lg_free(r->upstreams[0].host);
    lg_free(r->upstreams);
    r->upstreams = lg_calloc(3, sizeof(lg_src_upstream_t));
    r->n_upstreams = 3;
    r->upstreams[0].kind = LG_UPSTREAM_TCP;
    r->upstreams[0].host = str("127.0.0.1");
    r->upstreams[0].port = 9000; /* the same upstream as routes[1]'s */
    r->upstreams[1].kind = LG_UPSTREAM_UDS;
    r->upstreams[1].path = str("/tmp/u1.sock");
    r->upstreams[2].kind = LG_UPSTREAM_UDS;
    r->upstreams[2].path = str("/tmp/u2.sock");
    dial_defaults(r);
    s.routes[1].upstreams[0].port = 9000;

    r->upstreams[1].weight = 0;
    EXPECT_REFUSED(&s, "routes[0].upstreams[1].weight must be an integer 1-65535");
    r->upstreams[1].weight = 65536;
    EXPECT_REFUSED(&s, "routes[0].upstreams[1].weight must be an integer 1-65535");
    r->upstreams[1].weight = 3;
    r->upstreams[1].pid = 10;
    EXPECT_REFUSED(&s, "routes[0].upstreams[1].pid and routes[0].upstreams[1].tid go together");
    r->upstreams[1].pid = 0;
    r->upstreams[1].tid = 10;
    EXPECT_REFUSED(&s, "routes[0].upstreams[1].pid and routes[0].upstreams[1].tid go together");
    r->upstreams[1].tid = 0;
    r->upstreams[0].ip_affinity = true;
    EXPECT_REFUSED(&s, "routes[0].upstreams[0]: ipAffinity, pid and tid apply to uds upstreams");
    r->upstreams[0].ip_affinity = false;
    r->forward_fingerprint = true;
    EXPECT_REFUSED(&s, "routes[0].forwardFingerprint needs proxyProtocol 'v2'");
    r->proxy_protocol = 2;
    r->balance = 4;
    EXPECT_REFUSED(&s, "routes[0].balance must be");
    r->balance = LG_BALANCE_HASH;
    r->retries = LG_RETRIES_MAX + 1;
    EXPECT_REFUSED(&s, "routes[0].retries must be an integer 0-16");
    r->retries = 1;
    r->connect_timeout_ms = 0;
    EXPECT_REFUSED(&s, "routes[0].connectTimeoutMs must be an integer 1-600000");
    r->connect_timeout_ms = 3000;
    r->fail_timeout_ms = 0;
    EXPECT_REFUSED(&s, "routes[0].failTimeoutMs must be an integer 1-3600000");
    r->fail_timeout_ms = 500;
    lg_free(r->upstreams[2].path);
    r->upstreams[2].path = str("/tmp/u1.sock");
    EXPECT_REFUSED(&s, "routes[0].upstreams[2] is the same upstream as routes[0].upstreams[1]");
    lg_free(r->upstreams[2].path);
    r->upstreams[2].path = str("/tmp/u2.sock");
    r->upstreams[2].ip_affinity = true;
    r->upstreams[2].ip_affinity_ttl_ms = 1234;

    lg_config_t conf;
    lg_snapshot_t *a, *b;
    lg_cfgerr_t err;
    CHECK_EQ_INT(build_all(&s, &conf, &a, NULL, NULL, &err), 0);
    const lg_route_t *ra = &a->routes[0];
    CHECK_EQ_INT(ra->balancer.policy, LG_BALANCE_HASH);
    CHECK_EQ_INT(ra->balancer.n, 3);
    CHECK_EQ_INT(ra->balancer.weights[1], 3);
    CHECK_EQ_INT(ra->n_cursors, 2); /* one per worker */
    CHECK_EQ_INT(ra->connect_timeout_ms, 3000);
    CHECK_EQ_INT(ra->retries, 1);
    CHECK_EQ_INT(ra->health.max_fails, 3);
    CHECK_EQ_INT(ra->health.fail_timeout_ms, 500);
    CHECK_EQ_INT(ra->proxy_protocol, 2);
    CHECK(ra->forward_fingerprint);
    CHECK(ra->affinity);
    CHECK_EQ_INT(ra->affinity_ttl_ms, 1234);
    CHECK(a->routes[1].affinity == false);
    /* One state per identity: shared by routes of a snapshot and by the next snapshot. */
    CHECK(ra->st[0] == a->routes[1].st[0]);
    CHECK(ra->st[0] == &ra->upstreams[0].shared->st);
    lg_snapshot_build(&s, &conf, NULL, NULL, &b, &err);
    CHECK(b != NULL && b->routes[0].st[1] == ra->st[1]);
    CHECK_EQ_INT(atomic_load(&ra->upstreams[1].shared->reg.refs), 2);
    lg_upstate_acquire(ra->st[1]);
    CHECK_EQ_INT(atomic_load(&b->routes[0].st[1]->active), 1);
    lg_upstate_release(ra->st[1]);
    lg_snapshot_destroy(a);
    CHECK_EQ_INT(atomic_load(&b->routes[0].upstreams[1].shared->reg.refs), 1);
    lg_snapshot_destroy(b); /* the last reference: freed (ASan would report a leak otherwise) */
    CHECK_EQ_INT(conf.keepalive_idle_s, 300);
    CHECK_EQ_INT(conf.keepalive_interval_s, 30);
    CHECK_EQ_INT(conf.keepalive_count, 5);
    CHECK_EQ_INT(conf.half_close_ms, 300000);
    CHECK_EQ_INT(conf.resolve_interval_ms, 30000);
    lg_config_free(&conf);
    s.keepalive_idle_ms = 1500;
    EXPECT_REFUSED(&s, "tcpKeepalive.idleMs and intervalMs must be whole seconds");
    s.keepalive_idle_ms = 32768000;
    EXPECT_REFUSED(&s, "tcpKeepalive.idleMs must be an integer 1000-32767000");
    s.keepalive_idle_ms = 1000;
    s.keepalive_count = 128;
    EXPECT_REFUSED(&s, "tcpKeepalive.count must be an integer 1-127");
    s.keepalive = false; /* off: the values are not looked at */
    s.resolve_interval_ms = 0;
    EXPECT_REFUSED(&s, "resolveIntervalMs must be an integer 1-2147483647");
    lg_src_free(&s);
}

int main(void)
{
    A = make_pem("a.test");
    B = make_pem("b.test");
    LG_RUN(test_minimal);
    LG_RUN(test_upstream_hosts_and_alpn);
    LG_RUN(test_connect_policy);
    LG_RUN(test_connect_auth);
    LG_RUN(test_range_refusals);
    LG_RUN(test_route_table_refusals);
    LG_RUN(test_tls_contexts_and_cache);
    LG_RUN(test_tls_cache_keeps_every_material);
    LG_RUN(test_tls_refusals_name_the_option);
    LG_RUN(test_decisions);
    LG_RUN(test_protection);
    LG_RUN(test_allocation_failures);
    LG_RUN(test_upstreams);
    free(A.cert);
    free(A.key);
    free(B.cert);
    free(B.key);
    LG_TEST_END();
}
