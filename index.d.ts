// Type definitions for legato: a TLS edge router and burst-smoothing forward proxy in C,
// running inside Node.js as an N-API addon. Kept in step with lib/config.js (validation and
// defaults) and lib/proxy.js (the Proxy class); type-checked by the tests.

/// <reference types="node" />

import { EventEmitter } from 'events';

// ----------------------------------------------------------------------------------------------
// Configuration
// ----------------------------------------------------------------------------------------------

/** PEM text, or its bytes. */
export type Pem = string | Buffer | Uint8Array;

/** A certificate and its key. */
export interface CertOptions {
  /** PEM certificate chain: the leaf first, then any intermediates. */
  certChain: Pem;
  /** PEM private key of the leaf certificate (unencrypted). */
  privateKey: Pem;
}

/** Client-certificate authentication (mutual TLS) on terminated connections. */
export interface MtlsOptions {
  /** PEM CA certificate(s) that client certificates must chain to. Required. */
  clientCaCert: Pem;
  /** Refuse clients that present no certificate. @default true */
  requireClientCert?: boolean;
}

/** A per-source-IP connection token bucket. */
export interface RateLimitOptions {
  /** Refill rate, connections per second (> 0; fractions allowed). */
  connectionsPerSecond: number;
  /** Bucket size (>= 1). @default Math.max(connectionsPerSecond, 1) */
  burst?: number;
}

/** A second, longer-run per-source-IP bucket. */
export interface SustainedOptions {
  /** Refill rate, connections per minute (> 0; fractions allowed). */
  connectionsPerMinute: number;
  /** Bucket size (>= 1). @default Math.max(connectionsPerMinute, 1) */
  burst?: number;
}

/** Refuse a source that exhausted a bucket for a while. */
export interface PenaltyBoxOptions {
  /** How long, ms; excess while boxed extends it. @default 600000 */
  durationMs?: number;
}

/**
 * Admission control. Given at the top level it applies to every listener; a listener's own
 * `protection` overrides it field by field (`rateLimit: null` there switches an inherited limit
 * off). `updateConfig({ protection })` replaces the top-level one. Order: allowlist → blocklist →
 * penalty box → rateLimit and sustained → maxConcurrentPerIp (at accept, before any allocation);
 * requireSni → JA3 → JA4 (after the ClientHello).
 */
export interface ProtectionOptions {
  /** Per-source-IP token bucket per second; null: none. @default null */
  rateLimit?: RateLimitOptions | null;
  /** Per-source-IP token bucket per minute; null: none. @default null */
  sustained?: SustainedOptions | null;
  /** Box a source that exhausts a bucket; null: no box. @default null */
  penaltyBox?: PenaltyBoxOptions | null;
  /** Concurrent connections per source IP; 0 = unlimited. @default 0 */
  maxConcurrentPerIp?: number;
  /** IPs or CIDRs that bypass every other check (to admit only these, also block 0.0.0.0/0 and ::/0). @default [] */
  allowlist?: string[];
  /** IPs or CIDRs refused. A CIDR with host bits set is an error. @default [] */
  blocklist?: string[];
  /** JA3 MD5 hashes (32 hex digits) refused. @default [] */
  ja3Blocklist?: string[];
  /** JA4 fingerprints ('t13d1516h2_8daaf6152771_e5627efa2ab1') refused. @default [] */
  ja4Blocklist?: string[];
  /** Deadline for the ClientHello and handshake, ms (1-600000). @default 10000 */
  tlsHandshakeTimeoutMs?: number;
  /** Refuse a ClientHello without SNI. @default false */
  requireSni?: boolean;
  /** IPv6 sources count per prefix of this many bits (1-128). @default 128 */
  ipv6Prefix?: number;
  /** Sources tracked at most (top-level protection only; fixed for the proxy's life). @default 1000000 */
  maxTrackedIps?: number;
}

/** Protection fields that make sense on a connect listener (the others are TLS-only). */
export type ConnectProtectionOptions = Pick<ProtectionOptions, 'rateLimit' | 'sustained' | 'penaltyBox' | 'maxConcurrentPerIp' | 'allowlist' | 'blocklist' | 'ipv6Prefix'>;

/** Destination policy of a connect listener. */
export interface ConnectOptions {
  /** Destination ports allowed (1-65535); 443 is added while defaultAllowPort is true. @default [443] */
  allowPorts?: number[];
  /** Allow port 443 in addition to allowPorts. @default true */
  defaultAllowPort?: boolean;
  /**
   * Destination CIDRs refused; a given list replaces the default, which holds loopback,
   * RFC 1918, link-local, CGNAT, multicast, reserved, ULA, NAT64 and 6to4 ranges.
   */
  denyCidrs?: string[];
  /** Exceptions to denyCidrs. @default [] */
  allowCidrs?: string[];
  /**
   * Domains that may be reached; 'example.com' covers its subdomains too (a leading '*.' or
   * '.' is accepted and stripped). Empty: no domain restriction. @default []
   */
  allowDomains?: string[];
  /** One deadline for the whole dial (Happy Eyeballs), ms (1-600000). @default 10000 */
  connectTimeoutMs?: number;
  /** The whole request head must arrive within this of accept (else 408), ms (1-600000). @default 10000 */
  headTimeoutMs?: number;
  /**
   * Basic proxy authentication (RFC 7617): a CONNECT without valid `Proxy-Authorization` gets
   * `407` with `Proxy-Authenticate: Basic realm="…"`, before the destination policy is consulted.
   * Users are fixed while the proxy runs (updateConfig cannot change them). @default null
   */
  auth?: ConnectAuthOptions | null;
}

/** `connect.auth`: who may use a connect listener. */
export interface ConnectAuthOptions {
  /** Realm sent in the 407 challenge: 1-128 printable ASCII characters without '"' or '\\'. @default 'legato' */
  realm?: string;
  /** 1-10000 users with unique names. */
  users: ConnectAuthUser[];
  /**
   * Failed logins per source (an IPv6 source by its `ipv6Prefix`; one bucket for the listener,
   * shared by all workers): `burst` (1-1000; a bucket holds at least `workerThreads`) at once,
   * refilled at `perMinute` (1-60000). Every verification takes a token when it starts and a
   * success gives it back. While a source has none left its credentials get 429 without being
   * verified (`authThrottled`), unless already being verified or cached as a success on the
   * worker that takes the connection. null: no limit.
   * @default { perMinute: 10, burst: 10 }
   */
  failureLimit?: { perMinute: number; burst?: number } | null;
}

export interface ConnectAuthUser {
  /** User name: 1-255 bytes of UTF-8 without ':' or control characters. */
  name: string;
  /**
   * `$scrypt$ln=<log2 N>,r=<r>,p=<p>$<salt>$<hash>`: salt (8-64 bytes) and hash (16-64 bytes) in
   * unpadded base64; ln 1-30, r 1-1024, p 1-16, and 128 · r · 2^ln at most 1 GiB. Print one with
   * `legato hash-password`.
   */
  hash: string;
}

interface ListenerCommon {
  /** Port to bind (0-65535); 0 lets the system choose (see `addresses()`). Required. */
  port: number;
  /** Connections open at once on this listener; 0 = unlimited. @default 0 (tls), 1000 (connect) */
  maxConnections?: number;
  /** Close a connection after this long with no bytes either way, ms; 0 = never. @default 60000 */
  idleTimeoutMs?: number;
  /** Read a PROXY protocol header first and take its source address as the client's. @default 'none' */
  acceptProxyProtocol?: 'none' | 'v1' | 'v2' | 'any';
  /** CIDRs allowed to send that header (required with acceptProxyProtocol). @default [] */
  trustedProxies?: string[];
  /** The scheduler weight and per-flow cap of this listener's connections (a route's own win). @default { weight: 1 } */
  scheduler?: FlowSchedulerOptions | null;
  /**
   * 'exclusive': start() fails with EADDRINUSE when another process or proxy listens on this address.
   * 'share': processes and proxies that all say 'share' accept on it together (SO_REUSEPORT).
   * @default 'exclusive'
   */
  reusePort?: 'exclusive' | 'share';
}

/** A TLS edge-router listener: routes by SNI, passes through or terminates TLS. */
export interface TlsListenerOptions extends ListenerCommon {
  /** @default 'tls' */
  kind?: 'tls';
  /** Address or hostname to bind ('[::1]' accepted). @default '0.0.0.0' */
  host?: string;
  /** Certificate for terminating routes that have none of their own. @default null */
  defaultCert?: CertOptions | null;
  /** Client-certificate authentication for terminating routes. @default null */
  mtls?: MtlsOptions | null;
  /** Overrides of the top-level protection, field by field (maxTrackedIps is top-level only). */
  protection?: Omit<ProtectionOptions, 'maxTrackedIps'> | null;
  /** Not allowed on a tls listener (null is accepted). */
  connect?: null;
}

/** An HTTP CONNECT forward-proxy listener (no TLS termination). */
export interface ConnectListenerOptions extends ListenerCommon {
  kind: 'connect';
  /** Address or hostname to bind. @default '127.0.0.1' */
  host?: string;
  /** Overrides of the top-level protection (TLS-only fields are errors here). */
  protection?: ConnectProtectionOptions | null;
  /** Destination policy. @default {} */
  connect?: ConnectOptions | null;
  /** Not allowed on a connect listener. */
  defaultCert?: null;
  /** Not allowed on a connect listener. */
  mtls?: null;
}

export type ListenerOptions = TlsListenerOptions | ConnectListenerOptions;

/** An upstream reached over TCP. */
export interface TcpUpstream {
  kind: 'tcp';
  /** IP literal or hostname. */
  host: string;
  /** 1-65535. */
  port: number;
  /** Share under leastConn, roundRobin and hash, 1-65535. @default 1 */
  weight?: number;
  /** TLS toward the upstream (terminating routes only). @default null */
  tls?: UpstreamTlsOptions | null;
}

/** TLS toward a TCP upstream (re-encryption). */
export interface UpstreamTlsOptions {
  /** SNI sent and the name the certificate must carry (an IP literal: no SNI, the IP is checked). @default the upstream's host */
  servername?: string;
  /** PEM trust anchors for the upstream's chain. @default OpenSSL's default store */
  ca?: string | Buffer;
  /** Verify the chain and the name; a failure fails the attempt over. @default true */
  verify?: boolean;
  /** A client certificate. @default null */
  cert?: CertOptions | null;
}

/** An upstream reached over a Unix domain socket. */
export interface UdsUpstream {
  kind: 'uds';
  /** Socket path, at most 107 bytes (sun_path). */
  path: string;
  /** Share under leastConn, roundRobin and hash, 1-65535. @default 1 */
  weight?: number;
  /**
   * Pin each source IP to the upstream it got until it has been idle for ipAffinityTtlMs. Route
   * wide: set on any uds upstream of a route, it applies to the route (the longest TTL given).
   * @default false
   */
  ipAffinity?: boolean;
  /** @default 300000 */
  ipAffinityTtlMs?: number;
  /** Process serving the socket: with tid, its CPU (sampled every 250 ms) is added to the leastConn score. 0 = none. @default 0 */
  pid?: number;
  /** Thread serving the socket; pid and tid go together. 0 = none. @default 0 */
  tid?: number;
}

export type Upstream = TcpUpstream | UdsUpstream;

/** How the upstream learns the client's address. */
export type ProxyProtocol = 'none' | 'v1' | 'v2';

/** How a route picks among its upstreams. */
export type BalancePolicy = 'leastConn' | 'roundRobin' | 'random2' | 'hash';

/** How a route (or a decision) uses its upstreams. */
export interface DialOptions {
  /**
   * 'leastConn': fewest active connections engine-wide per unit of weight (+ CPU permille of uds
   * upstreams with pid/tid), ties shared by weight; 'roundRobin': smooth weighted round-robin
   * per worker; 'random2': the less loaded of two random upstreams; 'hash': Maglev consistent
   * hashing of the client address. @default 'leastConn'
   */
  balance?: BalancePolicy;
  /** The whole dial, every attempt included, ms (1-600000); each attempt gets an equal share. @default 10000 */
  connectTimeoutMs?: number;
  /** Further attempts after a refused, reset or timed-out dial, each on another upstream (0-16). @default 2 */
  retries?: number;
  /** Consecutive failed dials that eject an upstream (0-1000; 0 = never). @default 3 */
  maxFails?: number;
  /** How long an ejected upstream is skipped before one connection probes it, ms (1-3600000). @default 10000 */
  failTimeoutMs?: number;
  /** PROXY protocol header written to the upstream before any byte. @default 'none' */
  proxyProtocol?: ProxyProtocol;
  /** With proxyProtocol 'v2': the client's JA3 and JA4 in TLVs 0xE0 and 0xE1. @default false */
  forwardFingerprint?: boolean;
}

/** A route: where connections for an SNI go. */
export interface RouteOptions extends DialOptions {
  /**
   * Exact name ('a.example.com'), wildcard ('*.example.com': any depth of subdomain, not the
   * apex) or '' (default route: no SNI, or no other match). Case-insensitive, a trailing dot is
   * ignored; SNI patterns must be unique. @default ''
   */
  sni?: string;
  /** Upstreams (at most 1024), balanced by `balance`; may be empty only when suspended. */
  upstreams?: Upstream[];
  /** Terminate TLS with `cert` (or the listener's defaultCert) and forward plaintext. @default false */
  terminateTls?: boolean;
  /** Certificate for terminating. @default null */
  cert?: CertOptions | null;
  /** Client-certificate authentication when terminating. @default null */
  mtls?: MtlsOptions | null;
  /** ALPN protocols offered when terminating (each 1-255 bytes; [] = none). @default ['http/1.1'] */
  alpn?: string[];
  /** Hold each connection and emit 'suspended'; JS decides with resolveConnection. @default false */
  suspended?: boolean;
  /** Close a suspended connection JS has not resolved after this long, ms. @default 30000 */
  suspendTimeoutMs?: number;
  /** New connections per second on this route; 0 = unlimited. @default 0 */
  maxConnectionsPerSecond?: number;
  /** Token-bucket size for maxConnectionsPerSecond (>= 1). @default Math.max(maxConnectionsPerSecond, 1) */
  burst?: number;
  /** Routes with the same group (1-64 characters of A-Z a-z 0-9 _ . : -) share one set of figures in metrics().routes. @default null */
  metricsGroup?: string | null;
  /**
   * The scheduler weight and per-flow cap of this route's connections, overriding the
   * listener's. updateConfig gives them to connections routed after it; open ones keep theirs.
   * @default {}
   */
  scheduler?: FlowSchedulerOptions | null;
}

/** A route's or listener's own share of the worker's DRR scheduler. */
export interface FlowSchedulerOptions {
  /**
   * 1-64 (`limits.maxSchedulerWeight`): a flow's DRR quantum and per-turn read budget are
   * multiplied by it, so backlogged flows of weight 3 move 3 times the bytes of weight-1 flows
   * on the same worker (within two quanta per flow, see README "Scheduler"). A weight other than
   * 1 needs scheduler.kind 'drr'. @default 1 (a route: its listener's)
   */
  weight?: number;
  /**
   * Bytes/s each flow (each direction of each connection) may write, as the top-level
   * scheduler.flowRate but for this listener's or route's connections; 0 lifts an inherited cap.
   * A cap needs scheduler.kind 'drr'. @default null (a listener: the top level's; a route: its listener's)
   */
  flowRate?: number | null;
}

/** The byte scheduler of every worker. */
export interface SchedulerOptions {
  /** 'drr': Deficit Round-Robin across flows; 'fifo': write straight through. @default 'drr' */
  kind?: 'drr' | 'fifo';
  /** Bytes per flow per round (1-16777216), or 'auto' (adapts in [1500, 16384]); a number needs kind 'drr'. @default 'auto' */
  quantum?: 'auto' | number;
  /** High watermark of one flow's queue, bytes (16384-1073741824); reads resume below half. @default 262144 */
  maxQueuedBytesPerFlow?: number;
  /** Aggregate pacing per worker, bytes/s (token bucket in front of the DRR grants); 0 = off. Needs kind 'drr'. @default 0 */
  rate?: number;
  /** Pacing bucket size, bytes; only with rate > 0. @default Math.max(rate, 65536) */
  burst?: number;
  /**
   * Cap on each flow (each direction of each connection), bytes/s; 0 = none. A token bucket per
   * flow holding 100 ms of it (at least 16 KiB); a flow out of tokens waits off the DRR round on
   * one worker timer, armed only while some flow waits. Needs kind 'drr'. @default 0
   */
  flowRate?: number;
}

/** TCP keepalive (SO_KEEPALIVE, TCP_KEEPIDLE, TCP_KEEPINTVL, TCP_KEEPCNT). */
export interface KeepaliveOptions {
  /** Idle time before the first probe, ms, whole seconds (1000-32767000). @default 300000 */
  idleMs?: number;
  /** Between probes, ms, whole seconds (1000-32767000). @default 30000 */
  intervalMs?: number;
  /** Unanswered probes before the connection is dropped (1-127). @default 5 */
  count?: number;
}

/** The configuration given to `new Proxy(config)`. */
export interface ProxyConfig {
  /** 1-64 listeners. Required. */
  listeners: ListenerOptions[];
  /** Routes (at most 65536); required and non-empty when any listener is kind 'tls'; absent or empty with only connect listeners. */
  routes?: RouteOptions[];
  /** Worker threads, 1-256. @default os.availableParallelism() */
  workerThreads?: number;
  /**
   * How the OS schedules the worker threads. 'realtime': SCHED_FIFO at priority 1 (the lowest
   * real-time priority), so a woken worker runs at once, ahead of ordinary and kernel threads on
   * its CPU; start() rejects (EPERM) unless the process has CAP_SYS_NICE or RLIMIT_RTPRIO >= 1.
   * Fixed for the proxy's life. @default 'normal'
   */
  workerPriority?: 'normal' | 'realtime';
  /** Bytes read at once per connection, 1024-16777216. @default 65536 */
  readBufferSize?: number;
  /** Byte scheduler. */
  scheduler?: SchedulerOptions | null;
  /** Default protection of every listener. */
  protection?: ProtectionOptions | null;
  /** TCP keepalive on client and upstream TCP sockets; null = off. */
  tcpKeepalive?: KeepaliveOptions | null;
  /** Inactivity allowed once the upstream's half is closed and the client keeps its own open, ms (0 = unbounded). @default 300000 */
  halfCloseTimeoutMs?: number;
  /** How long an upstream host name's answer is fresh, ms (1-2147483647); after that dials keep using it while one background lookup refreshes it; a failed lookup keeps the last answer, and the next waits 1 s. @default 30000 */
  resolveIntervalMs?: number;
}

/** What `updateConfig` may change; absent parts stay as they are. */
export interface ConfigUpdate {
  /** Replaces the route table. */
  routes?: RouteOptions[];
  /** Replaces the top-level protection (unset fields take their defaults; null = all defaults). */
  protection?: ProtectionOptions | null;
}

/** The answer to a 'suspended' event. */
export interface Decision extends DialOptions {
  /** Where to send the connection (1-1024). Required. */
  upstreams: Upstream[];
  /** @default false */
  terminateTls?: boolean;
  /** Certificate for terminating; null: none given with the decision. @default null */
  cert?: CertOptions | null;
  /** @default null */
  mtls?: MtlsOptions | null;
  /** @default ['http/1.1'] */
  alpn?: string[];
}

// ----------------------------------------------------------------------------------------------
// Runtime objects
// ----------------------------------------------------------------------------------------------

/** A bound listener, in config order. */
export interface ListenerAddress {
  kind: 'tls' | 'connect';
  host: string;
  /** The port actually bound (the chosen one when the config said 0). */
  port: number;
}

/** A connection held on a suspended route, waiting for `resolveConnection`. */
export interface SuspendedConnection {
  /** Pass to resolveConnection. */
  id: string;
  /** Lower-cased SNI, trailing dot dropped; '' when the client sent none. */
  sni: string;
  peerIp: string;
  peerPort: number;
  /** The listener that accepted it. */
  listener: { host: string; port: number };
  /** ALPN protocols the client offered. */
  alpn: string[];
  /** JA3 fingerprint (MD5 hex) of the ClientHello. */
  ja3: string;
  /** JA4 fingerprint of the ClientHello. */
  ja4: string;
}

/** Counters of one listener, summed over workers. */
export interface ListenerMetrics extends Counters {
  host: string;
  /** Bound port. */
  port: number;
  kind: 'tls' | 'connect';
}

/** Counters of one listener (also the shape of the totals). */
export interface Counters {
  /** Open now. */
  activeConnections: number;
  /** Connections accepted and admitted. */
  totalConnections: number;
  /** Connections finished. */
  closedConnections: number;
  /** Bytes read from clients. */
  bytesFromClients: number;
  /** Bytes written to clients. */
  bytesToClients: number;
  /** Connections whose upstream could not be reached: every attempt failed or timed out (CONNECT: 502 and 504). */
  upstreamConnectFailures: number;
  /** Dial attempts made after a failed one, on another upstream. */
  upstreamRetries: number;
  /** Connections sent to an ejected upstream because every upstream was ejected (fail open). */
  upstreamFailOpens: number;
  /** PROXY protocol headers written to upstreams. */
  proxyProtocolHeadersSent: number;
  /** Connections closed by halfCloseTimeoutMs. */
  halfCloseTimeouts: number;
  /** TLS upstream handshakes that failed (certificate, name or protocol); the attempt failed over. */
  upstreamTlsFailures: number;
  /** TLS upstream handshakes that resumed a session. */
  upstreamTlsResumed: number;
  /** Upstream host name lookups that failed and were answered with the last good addresses. */
  upstreamLookupsFailed: number;
  /** No route matched; the client was closed. */
  noRoute: number;
  /** Refused at accept: the listener was at maxConnections (or, for CONNECT, its head-phase limit). */
  refusedMaxConnections: number;
  /** ClientHello or TLS handshake failures, all reasons. */
  handshakeFailures: number;
  handshakeFailuresTimeout: number;
  handshakeFailuresProtocol: number;
  handshakeFailuresClosed: number;
  nonTlsConnections: number;
  idleTimeouts: number;
  outOfMemory: number;
  acceptPauses: number;
  tlsHandshakes: number;
  /** Terminated handshakes that resumed a session (ID or ticket). */
  tlsSessionsResumed: number;
  handshakeFailuresCertificate: number;
  handshakeFailuresNoCertificate: number;
  /** Clients that closed TCP without close_notify. */
  tlsTruncations: number;
  tlsRenegotiationsRefused: number;
  tlsKeyUpdateFloods: number;
  tlsSniMismatches: number;
  tlsErrors: number;
  suspendedTotal: number;
  suspendedResolved: number;
  suspendedRejected: number;
  suspendedTimedOut: number;
  suspendedDropped: number;
  suspendedClientGone: number;
  status200: number;
  status400: number;
  status403: number;
  status405: number;
  status408: number;
  status414: number;
  status431: number;
  status502: number;
  status503: number;
  status504: number;
  status505: number;
  refusedPort: number;
  refusedDomain: number;
  refusedAddress: number;
  /** CONNECT 503s because 256 name lookups were already queued or running on the worker. */
  refusedLookupsBusy: number;
  /** Refused by admission (the sum of blockedByReason). */
  blockedConnections: number;
  /** Refused by admission, per reason (every reason present). */
  blockedByReason: Record<BlockReason, number>;
  /** PROXY protocol headers accepted. */
  proxyProtocolHeaders: number;
  /** CONNECT 429s: refused by protection (rate, box, concurrency) or by `connect.auth.failureLimit`. */
  status429: number;
  /** CONNECT 407s: no, malformed or wrong Proxy-Authorization on a listener with `connect.auth`. */
  status407: number;
  /** 407s for credentials that were given but malformed, too long (> 1024 bytes), or wrong. */
  authFailures: number;
  /** Credentials verified with scrypt on the thread pool (identical ones in flight share one). */
  authVerifications: number;
  /** Credentials accepted from the cache of recent successes (no scrypt). */
  authCacheHits: number;
  /** CONNECT 503s because 16 verifications were in flight on the worker, or none finished within 10 s. */
  refusedAuthBusy: number;
  /** CONNECT 429s answered without verifying because the source used up `connect.auth.failureLimit`. */
  authThrottled: number;
  /** Connections closed because the engine found itself in a state it should never reach (a bug: please report it). */
  internalErrors: number;
}

/** One worker thread's figures. */
export interface WorkerMetrics {
  connections: number;
  /** Read buffers held right now (0 when every connection is idle). */
  readBuffersInUse: number;
  /** Bytes of spare read buffers kept for reuse (at most 4 MiB a worker; held by no connection). */
  spareBufferBytes: number;
  /** ClientHello buffers held right now. */
  helloBuffersInUse: number;
  /** Name lookups (CONNECT targets, upstream host names) queued or running on libuv's thread pool right now. */
  nameLookups: number;
  /** Current DRR quantum, bytes. */
  quantum: number;
  grants: number;
  grantedBytes: number;
  /** Reads of interactive flows done mid-turn, between bulk reads (kind 'drr'; see the README's scheduler notes). */
  interactiveReads: number;
  /** Bytes relayed with splice(2), never copied through user space (bulk flows between TCP sockets, not TLS-terminated; see the README). */
  splicedBytes: number;
  /** Pipes the worker holds for splicing right now (its own, spares, and lent ones; two descriptors each, counted against the descriptor budget). */
  splicePipes: number;
  /** Pipes lent right now to flows whose destination is full (their bytes wait there, not in read buffers). */
  lentPipes: number;
  /** Of splicePipes, those enlarged to 256 KiB (at most 4 per worker; 0 where the kernel refuses, see the README's "Pipes of 256 KiB"). */
  largePipes: number;
  /** 1 if the worker's next splice goes through one of its large pipes, else 0 (all four lent, or the kernel refused; see the README's "Pipes of 256 KiB"). */
  splicePipeLarge: number;
}

/** Why admission refused a connection ('blocked' events, blockedByReason). */
export type BlockReason = 'max_connections' | 'cidr_blocked' | 'penalty_boxed' | 'rate_limited' |
  'too_many_connections' | 'no_sni' | 'ja3_blocked' | 'ja4_blocked' | 'incomplete_handshake' |
  'route_rate_limited' | 'proxy_untrusted' | 'proxy_header';

/** The per-source protection table. */
export interface ProtectionMetrics {
  trackedIps: number;
  capacity: number;
  /** Bytes the table holds. */
  bytes: number;
  /** Sources admitted without tracking because the table was full of active sources. */
  untracked: number;
  evictions: number;
  swept: number;
}

/** `proxy.metrics()`: counters summed over worker threads. */
export interface Metrics extends Counters {
  /** The per-source protection table. */
  protection: ProtectionMetrics;
  /** Connections waiting for resolveConnection. */
  pendingSuspended: number;
  /** Config snapshots still referenced (the current one and those old connections hold). */
  configGenerationsLive: number;
  /** Engine events that could not be queued to JavaScript. */
  eventsDropped: number;
  /** Of eventsDropped: 'access' records (the access log) lost to a full event queue. */
  accessEventsDropped: number;
  /** Read and ClientHello buffers held right now, all workers. */
  buffersInUse: number;
  listeners: ListenerMetrics[];
  workers: WorkerMetrics[];
  /** Per route of the current table, in order: its upstreams' figures. */
  routes: RouteMetrics[];
  /** The client IP affinity table (zeros until a route uses ipAffinity). */
  affinity: AffinityMetrics;
}

/** One route's upstreams. */
export interface RouteMetrics {
  sni: string;
  balance: BalancePolicy;
  metricsGroup: string | null;
  /** The figures of the route's group (or SNI pattern), kept across updateConfig: */
  /** connections routed here. */
  connections: number;
  activeConnections: number;
  /** Connections whose every upstream attempt failed. */
  upstreamFailures: number;
  /** Bytes relayed by connections that have ended. */
  bytesToUpstreams: number;
  bytesFromUpstreams: number;
  upstreams: UpstreamMetrics[];
}

/**
 * One upstream, as the process knows it: figures are shared by every route and config
 * generation that lists the same upstream (kind, host and port, or path, pid and tid).
 */
export interface UpstreamMetrics {
  kind: 'tcp' | 'uds';
  host?: string;
  port?: number;
  path?: string;
  weight: number;
  /** 'up'; 'ejected' (skipped until failTimeoutMs passed); 'halfOpen' (the next connection probes it); 'probing'. */
  state: 'up' | 'ejected' | 'halfOpen' | 'probing';
  /** Connections dialling or open now, all workers. */
  active: number;
  /** Dials that connected. */
  connected: number;
  /** Times chosen by a connection (probes and fail-open included). */
  picks: number;
  failedDials: number;
  consecutiveFailures: number;
  ejections: number;
  probes: number;
  failOpens: number;
  /** Bytes relayed to and from this upstream by connections that have ended. */
  bytesToUpstream: number;
  bytesFromUpstream: number;
  /** CPU of the uds upstream's thread, permille of one core (pid/tid set; else 0). */
  cpuPermille: number;
  /** CPU samples whose stat file could not be read. */
  cpuUnreadable: number;
}

/** The client IP affinity table. */
export interface AffinityMetrics {
  entries: number;
  hits: number;
  misses: number;
  /** Pins found whose upstream was gone or ejected. */
  stale: number;
  evicted: number;
  expired: number;
}

/** A connect-listener connection that ended. */
export interface TunnelEvent {
  listener: { host: string; port: number };
  /** Target host as requested ('' when the request never got that far). */
  target: string;
  port: number;
  /** HTTP status sent: 200 for a tunnel, 4xx/5xx for a refusal, 0 if the client left first. */
  status: number;
  bytesFromClient: number;
  bytesToClient: number;
  durationMs: number;
  /**
   * Why the destination policy refused it (the 403 body without its newline), e.g.
   * 'port 8443 is not allowed (allowPorts; --allow-port 8443 allows it)'; '' otherwise.
   */
  reason: string;
}

/**
 * Why a connection ended ('access' events): a fixed vocabulary. `refused:<reason>` is protection
 * (`refused:rate_limited`, … the BlockReason names) or a CONNECT refusal (`refused:port`,
 * `refused:domain`, `refused:address`, `refused:auth`, `refused:busy`).
 */
export type CloseReason =
  | 'client_closed' | 'upstream_closed' | 'idle_timeout' | 'half_close_timeout'
  | 'handshake_failed' | 'handshake_timeout' | 'tls_error' | 'no_route'
  | 'upstream_failed' | 'upstream_timeout'
  | 'suspend_rejected' | 'suspend_timeout' | 'suspend_dropped'
  | 'bad_request' | 'head_timeout' | 'stopped' | 'client_reset' | 'upstream_reset' | 'out_of_memory' | 'error'
  | 'refused:port' | 'refused:domain' | 'refused:address' | 'refused:auth' | 'refused:busy'
  | `refused:${BlockReason}`;

/**
 * One connection that ended, on any listener kind, or was refused at accept: the access log's
 * record ('access' events, produced only while someone listens). Strings the connection never
 * had are null.
 */
export interface AccessEvent {
  /** When it closed, ISO 8601 (UTC, ms). */
  time: string;
  listener: { host: string; port: number; kind: 'tls' | 'connect' };
  /** The client (the PROXY protocol's source when the listener reads one). */
  peerIp: string;
  peerPort: number;
  /** The SNI the client sent (validated host-name characters only). */
  sni: string | null;
  /** The pattern of the route it took ('' for the default route); null: none. */
  route: string | null;
  /** The upstream's identity ('tcp host:port', 'uds /path'), or a CONNECT's target host:port. */
  upstream: string | null;
  decision: 'none' | 'passthrough' | 'terminate' | 'suspended' | 'suspended:passthrough' | 'suspended:terminate' | 'tunnel';
  /** connect listeners: the HTTP status sent (null: none). */
  status: number | null;
  /** Terminated connections whose handshake completed. */
  tlsVersion: string | null;
  tlsCipher: string | null;
  ja4: string | null;
  /** Bytes written to the upstream: what the client sent (decrypted on a terminated route; a
   * PROXY protocol header included). */
  bytesFromClient: number;
  /** Bytes written to the client (a CONNECT's response line not included; on a terminated
   * route the TLS records, handshake included). */
  bytesToClient: number;
  durationMs: number;
  closeReason: CloseReason;
}

/** A source refused by protection (coalesced per source and reason per second). */
export interface BlockedEvent {
  /** The source (an aggregated IPv6 source as its prefix, '2001:db8::/64'). */
  ip: string;
  reason: BlockReason;
  listener: { host: string; port: number };
  /** '' when refused before the ClientHello. */
  ja3: string;
  ja4: string;
  /** Refusals of this source for this reason since its previous event, this one included. */
  count: number;
}

/** `proxy.blockedIps()`. */
export interface BlockedIps {
  /** Sources whose token bucket is empty (at most 10,000). */
  rateLimited: string[];
  /** Sources at maxConcurrentPerIp (at most 10,000). */
  concurrencyLimited: string[];
  /** Sources in the penalty box (at most 10,000). */
  penaltyBoxed: string[];
  /** The blocklist CIDRs in force. */
  cidrBlocklist: string[];
}

export interface StopOptions {
  /** Let open connections finish for up to this long before closing them, ms. @default 0 */
  graceMs?: number;
}

/** A configuration error: a TypeError or RangeError whose message starts with the option path. */
export interface ConfigError extends Error {
  code: 'ERR_LEGATO_CONFIG';
}

/**
 * One proxy engine: its listeners, worker threads and routing table.
 *
 * Events: 'listening' (every listener bound on every worker), 'suspended' (a connection waits
 * for a decision), 'warning' (recoverable trouble; code 'LEGATO_STOP_SLOW' when stop() has not
 * finished 5 s after graceMs, with a `workers` property: per worker its phase, connections,
 * connections per state, lookups in flight), 'error' (an engine error), 'close' (stopped).
 */
export class Proxy extends EventEmitter {
  /**
   * Validates the config synchronously.
   * @throws {ConfigError} (a TypeError or RangeError) on any mistake.
   */
  constructor(config: ProxyConfig);

  /**
   * Bind every listener on every worker. Rejects with the system error (e.g. EADDRINUSE), leaving nothing listening.
   * `takeOver`: a running Proxy of this process; listeners on its hosts and ports (not port 0) accept on its very
   * sockets, so `takeOver.stop()` afterwards refuses no connection (a reload without a gap).
   */
  start(options?: { takeOver?: Proxy }): Promise<void>;

  /** The bound addresses, in listener order. */
  addresses(): ListenerAddress[];

  /**
   * Answer a suspended connection: a decision, or null to close it.
   * @returns false when the id is unknown or has expired (nothing happens).
   * @throws {ConfigError} when the decision is invalid.
   */
  resolveConnection(id: string, decision: Decision | null): boolean;

  /**
   * Atomically swap routes and/or protection. Connections already accepted keep the config
   * they started with.
   * @throws {ConfigError} on invalid input; the old config stays live.
   */
  updateConfig(update: ConfigUpdate): void;

  /** Counters, summed over workers. */
  metrics(): Metrics;
  /** The metrics in Prometheus text format 0.0.4 (what the admin endpoint serves at /metrics). */
  metricsText(): string;

  /** Who is being refused right now. */
  blockedIps(): BlockedIps;

  /** Stop accepting, let connections finish up to graceMs, close the rest; resolves when every thread has exited. */
  stop(options?: StopOptions): Promise<void>;

  /** `stop()` with no grace, for `await using`. */
  [Symbol.asyncDispose](): Promise<void>;

  on(event: 'suspended', listener: (conn: SuspendedConnection) => void): this;
  /** One per connection on a connect listener, when it closes (produced only while listened to). */
  on(event: 'tunnel', listener: (tunnel: TunnelEvent) => void): this;
  /** One per connection of any listener when it closes, and per refusal at accept: the access log (produced only while listened to). */
  on(event: 'access', listener: (access: AccessEvent) => void): this;
  on(event: 'blocked', listener: (blocked: BlockedEvent) => void): this;
  on(event: 'error', listener: (err: Error) => void): this;
  on(event: 'warning', listener: (warning: Error) => void): this;
  on(event: 'listening', listener: () => void): this;
  on(event: 'close', listener: () => void): this;
  on(event: string | symbol, listener: (...args: any[]) => void): this;

  once(event: 'suspended', listener: (conn: SuspendedConnection) => void): this;
  once(event: 'tunnel', listener: (tunnel: TunnelEvent) => void): this;
  once(event: 'access', listener: (access: AccessEvent) => void): this;
  once(event: 'blocked', listener: (blocked: BlockedEvent) => void): this;
  once(event: 'error', listener: (err: Error) => void): this;
  once(event: 'warning', listener: (warning: Error) => void): this;
  once(event: 'listening', listener: () => void): this;
  once(event: 'close', listener: () => void): this;
  once(event: string | symbol, listener: (...args: any[]) => void): this;

  off(event: 'suspended', listener: (conn: SuspendedConnection) => void): this;
  off(event: 'tunnel', listener: (tunnel: TunnelEvent) => void): this;
  off(event: 'access', listener: (access: AccessEvent) => void): this;
  off(event: 'blocked', listener: (blocked: BlockedEvent) => void): this;
  off(event: 'error', listener: (err: Error) => void): this;
  off(event: 'warning', listener: (warning: Error) => void): this;
  off(event: 'listening', listener: () => void): this;
  off(event: 'close', listener: () => void): this;
  off(event: string | symbol, listener: (...args: any[]) => void): this;

  emit(event: 'suspended', conn: SuspendedConnection): boolean;
  emit(event: 'tunnel', tunnel: TunnelEvent): boolean;
  emit(event: 'access', access: AccessEvent): boolean;
  emit(event: 'blocked', blocked: BlockedEvent): boolean;
  emit(event: 'error', err: Error): boolean;
  emit(event: 'warning', warning: Error): boolean;
  emit(event: 'listening'): boolean;
  emit(event: 'close'): boolean;
  emit(event: string | symbol, ...args: any[]): boolean;
}

/**
 * Render a metrics object (what `proxy.metrics()` returns) in the Prometheus text exposition
 * format 0.0.4: `legato_<snake_case>` names, counters ending in `_total`, per-listener and
 * per-worker values as labelled series, HELP and TYPE once per name (README "Admin endpoint").
 * Serve it with `Content-Type: text/plain; version=0.0.4; charset=utf-8`.
 * @throws {TypeError} When `metrics` is not an object.
 */
export function metricsText(metrics: Metrics | Record<string, unknown>): string;
