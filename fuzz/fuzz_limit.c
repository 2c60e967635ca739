/*
 * fuzz_limit.c — libFuzzer target for the per-source-IP admission state (src/lg_limit.c).
 *
 * The input is a header (capacity, rules, IPv6 prefix, an allocation failure to inject) and a
 * stream of operations on a table: admit a key, release a held ticket, advance the clock, sweep,
 * compare the lists. Everything runs on one thread with a simulated clock.
 *
 * Reference model: one record per distinct key, in a plain array, with the buckets in the
 * other classic form — a credit level in ns (capacity tau + T, refilled 1 ns per ns, a token
 * costs T), updated lazily — where lg_limit keeps GCRA's theoretical arrival time. The two are
 * equivalent (tat = now + capacity - level), so every verdict must agree. Eviction is invisible
 * in the model: only idle entries are evicted, and an idle entry decides exactly as a fresh one.
 *
 * Checks, aborting on any failure:
 *   - each verdict equals the model's; a ticket is tracked iff the verdict is OK and the table
 *     had room; an untracked admission happens only for a key that is idle in the model (so it
 *     could have been evicted or never stored), and leaves the model unchanged;
 *   - keys that are not idle in the model (active, boxed or owing tokens) are in the table;
 *   - after every operation the table is consistent (each entry in one slot reached from its
 *     hash, slot tags, counts within shares, pool aligned) and holds at most max_tracked keys;
 *   - lg_limit_list returns exactly the model's keys for each selector, and the total count
 *     when cut short; lg_limit_sweep removes only idle entries;
 *   - every key built is formatted as inet_ntop would write it (plus "/prefix" when
 *     aggregated; inet_ntop's ::a.b.c.d forms skipped), and an arbitrary 16 input bytes too.
 */
#include "../src/lg_cidr.c"
#include "../src/lg_limit.c"

#include <arpa/inet.h>
#include <stdio.h>
#include <stdlib.h>

#define REQUIRE(cond)                                                                              \
    do {                                                                                           \
        if (!(cond)) {                                                                             \
            fprintf(stderr, "fuzz_limit: check failed at line %d: %s\n", __LINE__, #cond);         \
            abort();                                                                               \
        }                                                                                          \
    } while (0)

#define FUZZ_ADDRS   24   /* source addresses an input can use */
#define FUZZ_HELD    16   /* tickets held at once */
#define FUZZ_MAX_OPS 4096 /* operations per input */

/* Source addresses: IPv4, the same as IPv4-mapped IPv6, IPv6 sharing a /64 or a /48. */
static const char *const addr_text[FUZZ_ADDRS] = {
    "192.0.2.1",
    "::ffff:192.0.2.1",
    "192.0.2.2",
    "198.51.100.7",
    "10.0.0.1",
    "10.0.0.2",
    "2001:db8::1",
    "2001:db8::2",
    "2001:db8::ffff",
    "2001:db8:0:1::1",
    "2001:db8:1::1",
    "2001:db8:0:0:8000::1",
    "::1",
    "::",
    "fe80::1",
    "2001:db8:ab:cd:ef::",
    "1.2.3.4",
    "::ffff:1.2.3.4",
    "255.255.255.255",
    "0.0.0.0",
    "2001:db8::abcd",
    "64:ff9b::1.2.3.4",
    "2001:db8:0:1::99",
    "ffff::1",
};

typedef struct model_s {
    lg_ipkey_t key;
    uint64_t level_rate, level_sustained; /* ns of credit at `last` */
    uint64_t last;                        /* ns */
    uint64_t box_until;                   /* ns */
    uint32_t active;
} model_t;

static model_t model[FUZZ_ADDRS * 2];
static size_t n_model;
static lg_limit_rules_t rules;
static lg_limit_t table;

static uint64_t capacity(const lg_limit_bucket_t *b)
{
    return b->tolerance_ns + b->interval_ns;
}

static model_t *model_of(const lg_ipkey_t *k)
{
    for (size_t i = 0; i < n_model; i++) {
        if (memcmp(&model[i].key, k, sizeof(*k)) == 0) return &model[i];
    }
    REQUIRE(n_model < LG_ARRAY_SIZE(model));
    model_t *m = &model[n_model++];
    memset(m, 0, sizeof(*m));
    m->key = *k;
    m->level_rate = capacity(&rules.rate);
    m->level_sustained = capacity(&rules.sustained);
    return m;
}

/* Bring the credit levels up to now (the clock never goes back here). */
static void refill(model_t *m, uint64_t now)
{
    uint64_t dt = now - m->last;
    uint64_t cr = capacity(&rules.rate), cs = capacity(&rules.sustained);
    m->level_rate = cr - m->level_rate <= dt ? cr : m->level_rate + dt;
    m->level_sustained = cs - m->level_sustained <= dt ? cs : m->level_sustained + dt;
    m->last = now;
}

static bool model_idle(model_t *m, uint64_t now)
{
    refill(m, now);
    return m->active == 0 && m->box_until <= now && m->level_rate == capacity(&rules.rate) &&
           m->level_sustained == capacity(&rules.sustained);
}

static bool has_token(uint64_t level, const lg_limit_bucket_t *b)
{
    return b->interval_ns == 0 || level >= b->interval_ns;
}

static int model_admit(model_t *m, uint64_t now)
{
    refill(m, now);
    bool boxing = rules.penalty_box_ms > 0;
    bool boxed = boxing && m->box_until > now;
    bool has =
        has_token(m->level_rate, &rules.rate) && has_token(m->level_sustained, &rules.sustained);
    if (has) {
        m->level_rate -= rules.rate.interval_ns;
        m->level_sustained -= rules.sustained.interval_ns;
    } else if (boxing) {
        uint64_t until = now + (uint64_t)rules.penalty_box_ms * NS_PER_MS;
        if (until > m->box_until) m->box_until = until;
    }
    if (boxed) return LG_LIMIT_BOXED;
    if (!has) return LG_LIMIT_RATE;
    if (rules.max_concurrent > 0 && m->active >= rules.max_concurrent) return LG_LIMIT_CONCURRENCY;
    m->active++;
    return LG_LIMIT_OK;
}

static bool model_listed(model_t *m, int which, uint64_t now)
{
    refill(m, now);
    switch (which) {
    case LG_LIMIT_LIST_RATE_LIMITED:
        return !has_token(m->level_rate, &rules.rate) ||
               !has_token(m->level_sustained, &rules.sustained);
    case LG_LIMIT_LIST_CONCURRENCY_LIMITED:
        return rules.max_concurrent > 0 && m->active >= rules.max_concurrent;
    default:
        return m->box_until > now;
    }
}

/* ------------------------------------------------------------------------------------------ */

/* Table consistency (white box). */
static void check_table(void)
{
    size_t total = 0;
    for (size_t s = 0; s < table.n_shards; s++) {
        lg_limit_shard_t *sh = &table.shards[s];
        REQUIRE(sh->n <= sh->pool_cap && sh->pool_cap <= sh->share);
        REQUIRE((uintptr_t)sh->pool % LIMIT_ALIGN == 0);
        if (sh->pool_cap > 0) REQUIRE(sh->slots != NULL && sh->slot_mask + 1 >= 2 * sh->pool_cap);
        size_t used = 0;
        for (size_t i = 0; sh->slots && i <= sh->slot_mask; i++) {
            uint32_t v = sh->slots[i];
            if (v == 0) continue;
            used++;
            size_t j = (v & LIMIT_IDX_MASK) - 1;
            REQUIRE(j < sh->n && v >> LIMIT_IDX_BITS == sh->pool[j].hash >> LIMIT_IDX_BITS);
        }
        REQUIRE(used == sh->n);
        for (size_t j = 0; j < sh->n; j++) {
            limit_entry_t *e = &sh->pool[j];
            uint64_t h = key_hash(&table, &e->key);
            REQUIRE(shard_of(&table, h) == sh && e->hash == (uint32_t)h);
            REQUIRE(shard_find(sh, &e->key, e->hash) == e);
        }
        total += sh->n;
    }
    REQUIRE(total <= table.capacity);
}

static limit_entry_t *table_entry(const lg_ipkey_t *k)
{
    uint64_t h = key_hash(&table, k);
    return shard_find(shard_of(&table, h), k, (uint32_t)h);
}

/* Format check against inet_ntop. */
static void check_format(const lg_ipkey_t *k)
{
    char got[LG_IPKEY_TEXT_MAX], want[INET6_ADDRSTRLEN + 8];
    int n = lg_ipkey_format(k, got, sizeof(got));
    REQUIRE(n > 0 && (size_t)n == strlen(got));
    REQUIRE(lg_ipkey_format(k, got, (size_t)n) == -E2BIG && got[0] == '\0');
    REQUIRE(lg_ipkey_format(k, got, (size_t)n + 1) == n);
    if (k->family == 4) {
        REQUIRE(inet_ntop(AF_INET, k->addr, want, sizeof(want)) != NULL);
    } else {
        bool first5_zero = true;
        for (int b = 0; b < 10; b++)
            first5_zero = first5_zero && k->addr[b] == 0;
        if (first5_zero) return; /* glibc writes ::a.b.c.d / ::ffff:a.b.c.d */
        REQUIRE(inet_ntop(AF_INET6, k->addr, want, sizeof(want)) != NULL);
        if (k->prefix < 128) snprintf(want + strlen(want), 8, "/%u", k->prefix);
    }
    REQUIRE(strcmp(got, want) == 0);
}

static void check_lists(uint64_t now_ms, unsigned cap)
{
    static lg_ipkey_t out[FUZZ_ADDRS * 2];
    uint64_t now = now_ms * NS_PER_MS;
    for (int which = 1; which <= 3; which++) {
        size_t want = 0;
        for (size_t i = 0; i < n_model; i++)
            want += model_listed(&model[i], which, now);
        size_t c = LG_MIN((size_t)cap, LG_ARRAY_SIZE(out));
        size_t got = lg_limit_list(&table, now_ms, which, out, c);
        REQUIRE(got == want);
        for (size_t i = 0; i < LG_MIN(got, c); i++) {
            model_t *m = model_of(&out[i]);
            REQUIRE(model_listed(m, which, now));
        }
    }
}

/* A bucket from two input bytes: off, or a rate and burst from small tables. */
static void pick_bucket(lg_limit_bucket_t *b, uint8_t x, uint8_t y, uint32_t period)
{
    static const double counts[] = {0.5, 1, 2, 2.5, 3, 10, 50, 1000};
    static const double bursts[] = {1, 1.5, 2, 3, 5, 100};
    memset(b, 0, sizeof(*b));
    if (x % 3 == 0) return;
    REQUIRE(lg_limit_bucket_init(b, counts[x % LG_ARRAY_SIZE(counts)], period,
                                 bursts[y % LG_ARRAY_SIZE(bursts)]) == 0);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (size < 8) return 0;
    static const size_t capacities[] = {1, 2, 3, 5, 8, 16, 40, 4096};
    static const uint32_t boxes[] = {0, 0, 1, 100, 1000, 60000};
    size_t max_tracked = capacities[data[0] % LG_ARRAY_SIZE(capacities)];
    memset(&rules, 0, sizeof(rules));
    pick_bucket(&rules.rate, data[1], data[2], 1000);
    pick_bucket(&rules.sustained, data[3], data[4], 60000);
    rules.max_concurrent = data[5] % 5;
    rules.penalty_box_ms = boxes[(data[5] >> 3) % LG_ARRAY_SIZE(boxes)];
    unsigned prefix = 1 + data[6] % 128;
    long fail_at = data[7] < 32 ? data[7] : -1; /* an allocation (counted from init) to fail */
    data += 8;
    size -= 8;

    lg_alloc_fail_after(fail_at);
    int rc = lg_limit_init(&table, max_tracked);
    if (rc != 0) {
        lg_alloc_fail_after(-1);
        REQUIRE(rc == -ENOMEM);
        return 0;
    }
    n_model = 0;
    lg_ipkey_t keys[FUZZ_ADDRS];
    for (size_t i = 0; i < FUZZ_ADDRS; i++) {
        uint8_t family, addr[16];
        REQUIRE(lg_ip_parse(addr_text[i], strlen(addr_text[i]), &family, addr) == 0);
        REQUIRE(lg_ipkey_make(&keys[i], (uint8_t)(i % 2), family, addr, prefix) == 0);
        check_format(&keys[i]);
    }

    struct {
        lg_ipkey_t key;
        lg_limit_ticket_t ticket;
    } held[FUZZ_HELD];
    memset(held, 0, sizeof(held));
    uint64_t now_ms = 1000;
    size_t pos = 0;
    for (size_t op = 0; op < FUZZ_MAX_OPS && pos + 2 <= size; op++) {
        uint8_t code = data[pos], arg = data[pos + 1];
        pos += 2;
        switch (code % 8) {
        case 0:
        case 1:
        case 2: { /* admit into held slot code / 8 */
            size_t slot = (code / 8) % FUZZ_HELD;
            const lg_ipkey_t *k = &keys[arg % FUZZ_ADDRS];
            /* A slot still held is released first (a connection closing). */
            if (held[slot].ticket.tracked) {
                lg_limit_release(&table, &held[slot].key, &held[slot].ticket);
                model_t *m = model_of(&held[slot].key);
                REQUIRE(m->active > 0);
                m->active--;
            }
            model_t *m = model_of(k);
            bool idle = model_idle(m, now_ms * NS_PER_MS);
            model_t before = *m;
            lg_limit_ticket_t t;
            int v = lg_limit_admit(&table, k, &rules, now_ms, &t);
            int want = model_admit(m, now_ms * NS_PER_MS);
            if (v == LG_LIMIT_OK && !t.tracked) {
                REQUIRE(idle); /* untracked only when there was no state to keep */
                *m = before;
            } else {
                REQUIRE(v == want);
                REQUIRE(t.tracked == (v == LG_LIMIT_OK));
            }
            held[slot].key = *k;
            held[slot].ticket = t;
            break;
        }
        case 3: { /* release */
            size_t slot = arg % FUZZ_HELD;
            if (held[slot].ticket.tracked) {
                model_t *m = model_of(&held[slot].key);
                REQUIRE(m->active > 0);
                m->active--;
            }
            lg_limit_release(&table, &held[slot].key, &held[slot].ticket);
            held[slot].ticket.tracked = false;
            break;
        }
        case 4: /* advance the clock: 0..255 ms, or up to 255 s */
            now_ms += code & 0x80 ? (uint64_t)arg * 1000 : arg;
            break;
        case 5: { /* sweep */
            size_t before = 0, after = 0;
            lg_limit_stats_t st;
            lg_limit_stats(&table, &st);
            before = st.tracked;
            size_t removed = lg_limit_sweep(&table, now_ms, arg % 64);
            lg_limit_stats(&table, &st);
            after = st.tracked;
            REQUIRE(removed <= (size_t)(arg % 64) && before - after == removed);
            break;
        }
        case 6:
            check_lists(now_ms, arg % 8);
            break;
        default: { /* format 16 arbitrary bytes */
            uint8_t a[16] = {0};
            for (size_t i = 0; i < 16 && pos < size; i++)
                a[i] = data[pos++];
            lg_ipkey_t k;
            REQUIRE(lg_ipkey_make(&k, 0, 6, a, 1 + arg % 128) == 0);
            check_format(&k);
            break;
        }
        }
        /* Whatever is not idle in the model must be in the table. */
        for (size_t i = 0; i < n_model; i++) {
            if (!model_idle(&model[i], now_ms * NS_PER_MS)) {
                REQUIRE(table_entry(&model[i].key) != NULL);
            }
        }
        check_table();
    }
    lg_alloc_fail_after(-1);
    check_lists(now_ms, 64);
    lg_limit_destroy(&table);
    return 0;
}
