/*
 * lg_listener.h — listening sockets: binding them (JS thread, at start), and accepting on them
 * (each worker, its own SO_REUSEPORT socket per listener).
 *
 * Binding happens on the JS thread before any worker starts, so that start() can report a bind
 * error synchronously with nothing left listening. Each worker gets its own socket per listener
 * with SO_REUSEADDR and SO_REUSEPORT set before bind (libuv 1.46 has no UV_TCP_REUSEPORT); the
 * kernel spreads incoming connections over them. For port 0 the first socket's port, read back
 * with getsockname(), is used for the rest.
 *
 * SO_REUSEPORT would let a second legato engine bind the same address and silently share its
 * connections (issue 15 item 6: nginx, squid and tinyproxy fail with EADDRINUSE instead).
 *   - In this process, a process-wide registry of bound addresses (touched only at start and
 *     stop) refuses an overlapping address with EADDRINUSE.
 *   - Other processes: before the group binds, a probe socket is bound to the address WITHOUT
 *     SO_REUSEPORT (SO_REUSEADDR only, to pass TIME_WAIT) and closed. Any socket listening there
 *     — another legato's group, nginx, a Node server — makes that bind fail with EADDRINUSE, which
 *     start() reports naming the address.
 *   - reusePort 'share' on a listener skips the probe, and lets registry entries that both say
 *     'share' overlap: engines and processes that all ask to share split the connections.
 *   - Race: the probe is closed before the first group socket binds (a socket bound without
 *     SO_REUSEPORT would keep the group out), so two engines of two processes that start on one
 *     address within those few system calls can both pass the probe and then share it. The
 *     window is microseconds, only at start; a start that loses it is not detected. Also, the
 *     kernel cannot tell an exclusive group from a sharing one: a process that says 'share' joins
 *     an exclusive group already there. 'exclusive' protects a listener from a second start by
 *     mistake, not from a process that asks to share.
 *
 * Accepting: a worker watches each listen fd with a uv_poll_t and calls accept4() itself instead
 * of using uv_listen(), for three reasons: a bounded number of accepts per wakeup
 * (LG_ACCEPTS_PER_WAKEUP, so a connection flood cannot starve relaying); admission before any
 * allocation (maxConnections refuses with a bare close()); and control over EMFILE/ENFILE. On
 * those the worker stops watching the socket for a pause (LG_ACCEPT_BACKOFF_MIN ms, doubling to
 * LG_ACCEPT_BACKOFF_MAX) while established connections keep relaying; pending connections wait
 * in the kernel's backlog meanwhile instead of being accepted and dropped.
 *
 * Descriptor budget (issue 14): at start the engine derives how many connections fit in
 * RLIMIT_NOFILE (lg_listener_fd_budget: LG_FDS_PER_CONN each, after the descriptors already open,
 * LG_FDS_PER_WORKER per worker loop and a reserve of LG_FD_RESERVE). With that many connections
 * open on the engine's listeners, workers stop accepting (connections wait in the backlog) and
 * look again every LG_FD_BUDGET_RETRY_MS: an accepted connection can always dial its upstream or
 * be answered, instead of holding a descriptor while its dial waits for one.
 */
#ifndef LG_LISTENER_H
#define LG_LISTENER_H

#include "lg_conn.h"
#include "lg_wctx.h"

#define LG_ACCEPTS_PER_WAKEUP 64   /* connections accepted per readiness event */
#define LG_ACCEPT_BACKOFF_MIN 100  /* ms: first accept pause after EMFILE/ENFILE */
#define LG_ACCEPT_BACKOFF_MAX 1000 /* ms: longest accept pause */
#define LG_FDS_PER_CONN       2    /* descriptors of a proxied connection: client + upstream */
#define LG_FDS_PER_WORKER     4    /* a worker loop's own descriptors (epoll, eventfd, ...) */
#define LG_FD_RESERVE         16   /* descriptors kept free (lookups, extra dial attempts, JS) */
#define LG_FD_BUDGET_RETRY_MS 50   /* ms: accept paused at the budget looks again after this */

/* Where a listener was bound (JS thread). */
typedef struct lg_bound_s {
    struct sockaddr_storage addr;
    socklen_t addrlen;
    uint16_t port; /* the port actually bound */
} lg_bound_t;

/* The listen sockets of one listener, kept by its engine (JS thread) while it runs: the
 * workers accept on duplicates of them. Owner: the engine; closed with lg_lsocks_close. */
typedef struct lg_lsocks_s {
    int *fds;   /* n >= the engine's workers; -1 for a closed one */
    unsigned n; /* fds[m] is watched by worker m % workers */
} lg_lsocks_t;

/* A running engine of this process whose addresses a starting one may take over (issue 15
 * item 4): its registry owner, and per listener its bound address and sockets. */
typedef struct lg_handover_s {
    const void *owner;
    const lg_bound_t *bound;
    const lg_lsocks_t *socks;
    size_t n;
} lg_handover_t;

/*
 * Bind listener `lc`, registered in the process-wide registry under `owner`, into `socks`: one
 * SO_REUSEPORT socket per worker; or, when `from` has a listener bound to exactly this address
 * and port (not port 0), duplicates of all its sockets (the same sockets: both engines accept
 * from them until the old one stops, and connections waiting in their queues are not lost),
 * plus new sockets up to n_workers. Taking over skips the exclusivity probe and may overlap
 * `from`'s registry entry. New sockets get conf's connection options (lg_conn_sockopts), which
 * their connections inherit; taken-over sockets keep theirs. Returns 0, or a negative errno
 * (nothing left open; the caller unregisters the owner).
 */
int lg_listener_bind(const void *owner, const lg_config_t *conf, const lg_listener_conf_t *lc,
                     unsigned n_workers, const lg_handover_t *from, lg_lsocks_t *socks,
                     lg_bound_t *out);

/* Close a listener's sockets (the workers' duplicates stay open until they close them). */
void lg_lsocks_close(lg_lsocks_t *s);

/* Drop every registry entry of `owner` (stop, or a failed start). */
void lg_listener_unregister(const void *owner);

/*
 * Raise RLIMIT_NOFILE toward what the listeners need (2 × Σ maxConnections + 1024, or the hard
 * limit when a listener is unlimited). Writes a warning into `warn` (empty when none).
 */
void lg_listener_raise_nofile(const lg_config_t *conf, char *warn, size_t warn_size);

/*
 * The descriptor budget: connections the engine may hold open at once within the current soft
 * RLIMIT_NOFILE, counting the descriptors open now, `n_workers` loops still to be created and
 * the reserve (see above); at least 1. 0 = no budget (unlimited, or /proc/self/fd unreadable).
 */
uint32_t lg_listener_fd_budget(unsigned n_workers);

/* A worker's listen socket for one listener. */
typedef struct lg_lsock_s {
    uv_poll_t poll;     /* readiness of the listen fd */
    uv_timer_t backoff; /* accept pause after EMFILE/ENFILE */
    lg_wctx_t *w;
    int fd;              /* owned: closed when poll's close callback runs */
    unsigned index;      /* listener index */
    uint32_t backoff_ms; /* current pause; 0 when accepting normally */
    bool open;           /* poll handle initialised and not closed */
    bool budget_paused;  /* paused at the descriptor budget (counted once per pause) */
    bool budget_warned;  /* the budget warning was sent (once per socket) */
    bool opts_inherited; /* fd has lg_conn_sockopts' options: its connections inherit them */
} lg_lsock_t;

/* Worker loop set up (JS thread, before the thread runs): watch `fd` for listener `index`.
 * Returns 0 or a libuv error (the fd then stays the caller's). */
int lg_lsock_open(lg_lsock_t *ls, lg_wctx_t *w, unsigned index, int fd);

/* A connection of this worker was freed: listen sockets paused at the descriptor budget (not
 * those in an EMFILE backoff) watch for connections again at once. */
void lg_lsock_budget_resume(lg_lsock_t *ls, size_t n);

/* Stop accepting: close the handles (the fd is closed with them). Idempotent. */
void lg_lsock_close(lg_lsock_t *ls, uv_close_cb timer_closed);

/* The worker ran out of descriptors outside accept (err = EMFILE/ENFILE): pause accepting on
 * these sockets. */
void lg_lsock_fd_pressure(lg_lsock_t *ls, size_t n, int err);

#endif /* LG_LISTENER_H */
