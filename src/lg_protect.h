/*
 * lg_protect.h — admission control: who may connect, judged by the listener's protection (in the
 * current snapshot) and the engine-wide per-IP state (lg_limit).
 *
 * Order (issue 12; symphony §1.6 where it is silent): at accept, before anything is allocated
 * for the connection — allowlist (bypasses every check below and is not counted) → blocklist
 * (cidr_blocked) → penalty box (penalty_boxed) → per-IP buckets per second and per minute
 * (rate_limited; exhausting one boxes the source when a penalty box is configured) →
 * maxConcurrentPerIp (too_many_connections). A listener that accepts the PROXY protocol runs the
 * same checks once the header has given the real client address. After the ClientHello:
 * requireSni (no_sni), then the JA3 and JA4 blocklists (ja3_blocked, ja4_blocked); with either
 * list set, a hello that cannot be fingerprinted is refused (incomplete_handshake: fail closed).
 *
 * Refusals are counted per reason on the listener's counters and, while JS listens, reported as
 * 'blocked' events coalesced per (listener, source, reason): the first refusal in a second posts
 * an event, the rest of that second only count, and the next event carries how many there were
 * since the previous one. So a flood of refusals from one source is at most one event per second
 * per reason (engine-wide: the coalescing table is shared by the workers, under one lock taken
 * only on the refusal path).
 *
 * The per-IP table is swept of idle entries a little at a time by admissions themselves (every
 * LG_PROTECT_SWEEP_EVERY admissions on a worker), so protection adds no timer wakeups.
 */
#ifndef LG_PROTECT_H
#define LG_PROTECT_H

#include "lg_hello.h"
#include "lg_wctx.h"

#include <pthread.h>

#define LG_BLOCKLOG_SLOTS       4096 /* (listener, source, reason) keys coalesced at once */
#define LG_PROTECT_SWEEP_EVERY  1024 /* admissions per worker between two sweeps */
#define LG_PROTECT_SWEEP_BUDGET 256  /* idle entries a sweep examines */

/* A client address: family 4 (addr[0..3]) or 6, and its port. */
typedef struct lg_peer_s {
    uint8_t family;
    uint8_t addr[16];
    uint16_t port;
} lg_peer_t;

/* What admission counted for a connection, to undo at its close. The source's key is not kept
 * (every idle connection carries one of these): release rebuilds it from the peer, which does not
 * change after admission, with the listener and the IPv6 prefix admission used (8 bytes, not 26).
 */
typedef struct lg_admission_s {
    lg_limit_ticket_t ticket; /* tracked: release it */
    uint8_t lis;              /* the key's listener */
    uint8_t ipv6_prefix;      /* the key's IPv6 prefix (protection.ipv6Prefix at admission) */
    bool head_src_held;       /* connect: holds head_src counters (released with the head slot) */
    uint16_t head_src[2];     /* their columns in lg_lis_state_t.head_src */
} lg_admission_t;

typedef struct lg_blocklog_slot_s {
    lg_ipkey_t key;
    uint8_t reason;
    bool used;
    uint64_t second;  /* the second of the last event posted for it */
    uint64_t pending; /* refusals since that event */
} lg_blocklog_slot_t;

/* Owner: the engine. */
struct lg_blocklog_s {
    pthread_mutex_t lock;
    uint64_t key[2]; /* hashing secret */
    lg_blocklog_slot_t slots[LG_BLOCKLOG_SLOTS];
};

int lg_blocklog_init(lg_blocklog_t *b);
void lg_blocklog_destroy(lg_blocklog_t *b);

/* A socket address → a peer (IPv4-mapped IPv6 stays IPv6 here; keys fold it). False for other
 * families. */
bool lg_peer_from_sockaddr(lg_peer_t *p, const struct sockaddr *sa);

/* The peer as text ("1.2.3.4", "::1"); "" on error. */
void lg_peer_format(const lg_peer_t *p, char *out, size_t cap);

/*
 * The checks at accept (or after a PROXY header) for listener `lis` under protection `p`.
 * Returns LG_BLOCK_NONE with *adm filled (release it when the connection is gone), or the
 * LG_BLOCK_* reason (nothing to release). Worker thread; no allocation except the per-IP table's
 * amortised growth.
 */
int lg_protect_admit(lg_wctx_t *w, unsigned lis, const lg_protection_t *p, const lg_peer_t *peer,
                     lg_admission_t *adm);

/* Undo what lg_protect_admit counted for `peer` (the same peer; a zeroed admission is nothing to
 * undo). */
void lg_protect_release(lg_wctx_t *w, lg_admission_t *adm, const lg_peer_t *peer);

/* Does the listener judge ClientHellos (requireSni or a fingerprint list)? */
bool lg_protect_judges_hello(const lg_protection_t *p);

/* Does a hello that never completes count as incomplete_handshake (a fingerprint list set)? */
bool lg_protect_fails_closed(const lg_protection_t *p);

/*
 * The checks after a complete ClientHello (hello NULL: the client is not TLS). Writes the
 * fingerprints it computed through the worker's `cache` (only those a list needs; both for a
 * JA3/JA4 refusal, for its event; "" when not needed or not computable). Returns LG_BLOCK_NONE
 * or the reason.
 */
int lg_protect_hello(const lg_protection_t *p, lg_ja_cache_t *cache, const lg_hello_t *hello,
                     char ja3[33], char ja4[40]);

/*
 * The keyed hash (lg_limit_key_hash) of a source's key on listener `lis`: its address, an IPv6 one
 * cut to p->ipv6_prefix. For per-source sketches that must not be aimed at (the connect
 * listeners' head slots, connect.auth.failureLimit). False when the address makes no key.
 */
bool lg_protect_source_hash(const lg_wctx_t *w, unsigned lis, const lg_protection_t *p,
                            const lg_peer_t *peer, uint64_t *h);

/* Count a refusal on listener `lis` (protection `p`, for the source's key) and report it
 * (coalesced) while JS listens. ja3/ja4 may be NULL. */
void lg_protect_refused(lg_wctx_t *w, unsigned lis, const lg_protection_t *p, int reason,
                        const lg_peer_t *peer, const char *ja3, const char *ja4);

#endif /* LG_PROTECT_H */
