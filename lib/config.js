'use strict';

/**
 * lib/config.js — validation and normalisation of every legato option.
 *
 * The user's config goes in; a normalised config comes out in which every field is present
 * (no `undefined`), defaults are filled in, strings are in canonical form and certificates are
 * Buffers. The C side (src/lg_jsconf.c) reads exactly that shape, so it is written down below
 * (see the NormalizedConfig typedef) and must not drift. C re-checks ranges (defence in depth).
 *
 * Errors: the first mistake found throws a TypeError (wrong type, or a required value missing)
 * or a RangeError (right type, value not allowed) with `code === 'ERR_LEGATO_CONFIG'` and a
 * message that starts with the option path: `routes[2].upstreams[0].port must be an integer
 * 1-65535`, `listeners[0].host must be a string`, `unknown option 'foo'` (top level),
 * `routes[0]: unknown option 'snii' (did you mean 'sni'?)` (nested: every object is checked for
 * unknown keys). The user's input is never modified; Buffers given for PEM data are copied.
 *
 * Conventions that hold for every option:
 *  - `undefined` (or a missing key) means "not given": the default applies.
 *  - `null` is accepted for optional object options: for `defaultCert`, `mtls`, `cert` and
 *    `protection.rateLimit` it means "none"; for `scheduler`, `protection` and `connect` it means
 *    the same as `{}` (all defaults; `connect: null` is also accepted on a tls listener).
 *  - Only own properties are read, so a polluted Object.prototype cannot inject options.
 *  - Numbers must be finite; where an integer is required, 1.5 / NaN / Infinity are RangeErrors
 *    and a string such as '80' is a TypeError. -0 is normalised to 0.
 *  - Lists of CIDRs, domains and fingerprints are de-duplicated (first occurrence kept).
 *
 * Exports: normalizeConfig, normalizeUpdate, normalizeDecision, assertSupported, plus the
 * limits, defaults and the not-supported-yet table for the CLI and the tests.
 */

const net = require('net');
const os = require('os');
const util = require('util');
const binding = require('./binding');
const { configTypeError, configRangeError } = require('./errors');

/* ------------------------------------------------------------------------------------------ *
 * Features that validate but that the C engine does not implement yet.
 *
 * One entry per feature: `feature` names it (the tests key their samples on it), `find(config)`
 * returns the path of the first place the normalised config uses it, or null. assertSupported
 * throws `<path> is not supported yet` for the first entry that finds something.
 * When the engine implements a feature, delete its line — nothing else needs to change.
 * ------------------------------------------------------------------------------------------ */
const NOT_SUPPORTED_YET = [
];

/* ------------------------------------------------------------------------------------------ *
 * Limits and defaults. Every bound is a named constant with its unit.
 * ------------------------------------------------------------------------------------------ */
/**
 * Hard bounds of the options. They are C's (src/lg_limits.h, exported by the binding): the engine
 * is built for exactly these, and this file only words the messages around them.
 */
const LIMITS = binding.limits;

/** Default values of the options (see each normaliser for which option uses which). */
const DEFAULTS = Object.freeze({
  readBufferSize: 65536, // bytes
  schedulerKind: 'drr',
  maxQueuedBytesPerFlow: 262144, // bytes
  minSchedulerBurst: 65536, // bytes: default burst is max(rate, this)
  tlsHost: '0.0.0.0',
  connectHost: '127.0.0.1',
  tlsMaxConnections: 0, // unlimited
  connectMaxConnections: 1000,
  idleTimeoutMs: 60000,
  allowPorts: Object.freeze([443]),
  connectTimeoutMs: 10000,
  authRealm: 'legato',
  authFailureLimit: Object.freeze({ perMinute: 10, burst: 10 }), // failed logins per source
  headTimeoutMs: 10000,
  suspendTimeoutMs: 30000,
  alpn: Object.freeze(['http/1.1']),
  ipAffinityTtlMs: 300000,
  balance: 'leastConn',
  retries: 2,
  maxFails: 3,
  failTimeoutMs: 10000,
  weight: 1,
  resolveIntervalMs: 30000,
  keepaliveIdleMs: 300000,
  keepaliveIntervalMs: 30000,
  keepaliveCount: 5,
  halfCloseTimeoutMs: 300000,
  tlsHandshakeTimeoutMs: 10000,
  penaltyBoxMs: 600000,
  ipv6Prefix: 128,
  maxTrackedIps: 1000000,
  acceptProxyProtocol: 'none',
  reusePort: 'exclusive',
});

/** Destinations a CONNECT listener refuses unless `connect.denyCidrs` replaces the list. */
const DEFAULT_DENY_CIDRS = Object.freeze([
  '127.0.0.0/8', // loopback
  '10.0.0.0/8', // RFC 1918
  '172.16.0.0/12', // RFC 1918
  '192.168.0.0/16', // RFC 1918
  '169.254.0.0/16', // link-local (cloud metadata endpoints live here)
  '100.64.0.0/10', // carrier-grade NAT (RFC 6598)
  '0.0.0.0/8', // "this network"
  '224.0.0.0/4', // multicast
  '240.0.0.0/4', // reserved and broadcast
  '::1/128', // loopback
  '::/128', // unspecified
  'fc00::/7', // unique local
  'fe80::/10', // link-local
  'ff00::/8', // multicast
  '64:ff9b::/96', // NAT64: reaches IPv4 space, internal ranges included
  '2002::/16', // 6to4: likewise
  // Other IPv6 forms that carry an IPv4 address, which a host with a tunnel or a translator
  // would reach (they are not decoded, so they are refused whole):
  '::/96', // IPv4-compatible (deprecated; the sit tunnel routes it), ::127.0.0.1
  '::ffff:0:0:0/96', // SIIT IPv4-translated
  '64:ff9b:1::/48', // local-use NAT64 (RFC 8215)
  '2001::/32', // Teredo
  'fec0::/10', // site-local (deprecated)
  '192.0.0.0/24', // IETF protocol assignments
  '198.18.0.0/15', // benchmarking networks
]);

const CONFIG_KEYS = ['listeners', 'routes', 'workerThreads', 'workerPriority', 'readBufferSize', 'scheduler', 'protection', 'resolveIntervalMs', 'tcpKeepalive', 'halfCloseTimeoutMs'];
const KEEPALIVE_KEYS = ['idleMs', 'intervalMs', 'count'];
const UPDATE_KEYS = ['routes', 'protection'];
const SCHEDULER_KEYS = ['kind', 'quantum', 'maxQueuedBytesPerFlow', 'rate', 'burst', 'flowRate'];
const LISTENER_KEYS = ['kind', 'host', 'port', 'defaultCert', 'mtls', 'maxConnections', 'idleTimeoutMs', 'protection', 'connect', 'acceptProxyProtocol', 'trustedProxies', 'scheduler', 'reusePort'];
/** A route's or listener's own `scheduler` (normalizeFlowScheduler). */
const FLOW_SCHEDULER_KEYS = ['weight', 'flowRate'];
const CONNECT_KEYS = ['allowPorts', 'defaultAllowPort', 'denyCidrs', 'allowCidrs', 'allowDomains', 'connectTimeoutMs', 'headTimeoutMs', 'auth'];
const AUTH_KEYS = ['realm', 'users', 'failureLimit'];
const AUTH_FAILURE_KEYS = ['perMinute', 'burst'];
const AUTH_USER_KEYS = ['name', 'hash'];
/** How a route or decision uses its upstreams (normalizeDial). */
const DIAL_KEYS = ['balance', 'connectTimeoutMs', 'retries', 'maxFails', 'failTimeoutMs', 'proxyProtocol', 'forwardFingerprint'];
const ROUTE_KEYS = ['sni', 'upstreams', 'terminateTls', 'cert', 'mtls', 'alpn', 'suspended', 'suspendTimeoutMs', 'maxConnectionsPerSecond', 'burst', 'metricsGroup', 'scheduler', ...DIAL_KEYS];
const DECISION_KEYS = ['upstreams', 'terminateTls', 'cert', 'mtls', 'alpn', ...DIAL_KEYS];
const BALANCE_POLICIES = ['leastConn', 'roundRobin', 'random2', 'hash'];
const TCP_UPSTREAM_KEYS = ['kind', 'host', 'port', 'weight', 'tls'];
const UPSTREAM_TLS_KEYS = ['servername', 'ca', 'verify', 'cert'];
const UDS_UPSTREAM_KEYS = ['kind', 'path', 'weight', 'ipAffinity', 'ipAffinityTtlMs', 'pid', 'tid'];
/** Options of a uds upstream that cannot apply to a tcp one. */
const UDS_ONLY_UPSTREAM_KEYS = ['ipAffinity', 'ipAffinityTtlMs', 'pid', 'tid'];
const CERT_KEYS = ['certChain', 'privateKey'];
const MTLS_KEYS = ['clientCaCert', 'requireClientCert'];
const PROTECTION_KEYS = ['rateLimit', 'sustained', 'penaltyBox', 'maxConcurrentPerIp', 'allowlist', 'blocklist', 'ja3Blocklist', 'ja4Blocklist', 'tlsHandshakeTimeoutMs', 'requireSni', 'ipv6Prefix', 'maxTrackedIps'];
const RATE_LIMIT_KEYS = ['connectionsPerSecond', 'burst'];
const SUSTAINED_KEYS = ['connectionsPerMinute', 'burst'];
const PENALTY_BOX_KEYS = ['durationMs'];
/** Protection fields that only mean something on a TLS listener. */
const TLS_ONLY_PROTECTION_KEYS = ['ja3Blocklist', 'ja4Blocklist', 'tlsHandshakeTimeoutMs', 'requireSni'];
/** Top-level keys that exist but that updateConfig may not change. */
const FIXED_KEYS = ['listeners', 'workerThreads', 'workerPriority', 'readBufferSize', 'scheduler', 'resolveIntervalMs', 'tcpKeepalive', 'halfCloseTimeoutMs'];

/* ------------------------------------------------------------------------------------------ *
 * The normalised shape (what the C side reads).
 * ------------------------------------------------------------------------------------------ */

/**
 * @typedef {{ certChain: Buffer, privateKey: Buffer }} NormalizedCert
 * @typedef {{ clientCaCert: Buffer, requireClientCert: boolean }} NormalizedMtls
 * @typedef {{ connectionsPerSecond: number, burst: number }} NormalizedRateLimit
 * @typedef {{ rateLimit: NormalizedRateLimit | null, maxConcurrentPerIp: number,
 *   allowlist: string[], blocklist: string[], ja3Blocklist: string[], ja4Blocklist: string[],
 *   tlsHandshakeTimeoutMs: number, requireSni: boolean }} NormalizedProtection
 * @typedef {{ allowPorts: number[], defaultAllowPort: boolean, denyCidrs: string[],
 *   allowCidrs: string[], allowDomains: string[], connectTimeoutMs: number, headTimeoutMs: number }} NormalizedConnect
 * @typedef {{ kind: 'tls' | 'connect', host: string, port: number, maxConnections: number,
 *   idleTimeoutMs: number, defaultCert: NormalizedCert | null, mtls: NormalizedMtls | null,
 *   protection: NormalizedProtection, connect: NormalizedConnect | null,
 *   scheduler: { weight: number, flowRate: number | null } }} NormalizedListener
 *   A listener. It also carries a non-enumerable `_ownProtection`: the protection fields given
 *   on the listener itself (normalised, without defaults), which normalizeUpdate re-merges over
 *   a new top-level protection. Non-enumerable so that it is invisible to deepStrictEqual,
 *   JSON and the C side; it does not survive a structured clone.
 * @typedef {{ kind: 'tcp', host: string, port: number }} NormalizedTcpUpstream
 * @typedef {{ kind: 'uds', path: string, ipAffinity: boolean, ipAffinityTtlMs: number,
 *   pid: number, tid: number }} NormalizedUdsUpstream
 * @typedef {NormalizedTcpUpstream | NormalizedUdsUpstream} NormalizedUpstream
 * @typedef {{ sni: string, upstreams: NormalizedUpstream[], terminateTls: boolean,
 *   cert: NormalizedCert | null, mtls: NormalizedMtls | null, alpn: string[],
 *   suspended: boolean, suspendTimeoutMs: number, maxConnectionsPerSecond: number,
 *   burst: number, proxyProtocol: 'none' | 'v1' | 'v2', scheduler: { weight: number, flowRate: number | null } }} NormalizedRoute
 *   A route's `scheduler.weight` 0 means "not given: the listener's".
 * @typedef {{ kind: 'drr' | 'fifo', quantum: number, maxQueuedBytesPerFlow: number,
 *   rate: number, burst: number, flowRate: number }} NormalizedScheduler
 *   `quantum` 0 means 'auto'; `rate` 0 means no pacing, and then `burst` is 0; `flowRate` 0: no
 *   per-flow cap.
 * @typedef {{ workerThreads: number, workerPriority: 'normal' | 'realtime', readBufferSize: number, scheduler: NormalizedScheduler,
 *   protection: NormalizedProtection, listeners: NormalizedListener[],
 *   routes: NormalizedRoute[], resolveIntervalMs: number,
 *   tcpKeepalive: { idleMs: number, intervalMs: number, count: number } | null,
 *   halfCloseTimeoutMs: number }} NormalizedConfig
 * @typedef {{ upstreams: NormalizedUpstream[], terminateTls: boolean,
 *   cert: NormalizedCert | null, mtls: NormalizedMtls | null, alpn: string[] }} NormalizedDecision
 */

/* ------------------------------------------------------------------------------------------ *
 * Public functions.
 * ------------------------------------------------------------------------------------------ */

/**
 * Validate a user config and return its normalised form.
 *
 * Options (defaults in brackets; index.d.ts has the full documentation):
 *  - `listeners` (required): 1-64 listener objects (see normalizeListener).
 *  - `routes`: up to 65536 routes; required and non-empty when any listener is kind 'tls'. With
 *    only connect listeners, routes must be absent or empty (nothing would use them).
 *  - `workerThreads` [os.availableParallelism(), at most 256]: integer 1-256.
 *  - `workerPriority` ['normal']: 'normal' or 'realtime' (the worker threads run SCHED_FIFO at
 *    priority 1; start() fails when the process may not do that).
 *  - `readBufferSize` [65536]: integer 1024-16777216 bytes.
 *  - `resolveIntervalMs` [30000]: integer 1-2147483647 ms: how long an upstream host name's
 *    answer is fresh; after it dials keep using it while one background lookup refreshes it (a
 *    failed lookup keeps the last answer); updateConfig makes the next dial look names up again.
 *  - `tcpKeepalive`: see normalizeKeepalive.
 *  - `halfCloseTimeoutMs` [300000]: integer 0-2147483647 ms (0 = unbounded): once the upstream
 *    has closed its half and the client knows, a client that keeps its own half open is closed
 *    after this long without a byte either way.
 *  - `scheduler` [{}]: see normalizeScheduler.
 *  - `protection` [{}]: the default protection of every listener (see normalizeProtection);
 *    a listener's own `protection` overrides it field by field.
 * Cross checks: a route with `terminateTls: true` needs `cert` unless every tls listener has a
 * `defaultCert`; two routes may not share an SNI pattern; two listeners may not share a host
 * and a non-zero port.
 *
 * @param {unknown} config The user's config object. Not modified.
 * @returns {NormalizedConfig} A new object; every field present.
 * @throws {TypeError | RangeError} With code 'ERR_LEGATO_CONFIG' on the first mistake.
 */
function normalizeConfig(config) {
  if (!isObject(config)) throw configTypeError('config must be an object');
  checkKeys(config, '', CONFIG_KEYS);

  const workerThreads = optInteger(get(config, 'workerThreads'), 'workerThreads', 1, LIMITS.maxWorkerThreads, defaultWorkerThreads());
  const workerPriority = oneOf(get(config, 'workerPriority'), 'workerPriority', ['normal', 'realtime'], 'normal');
  const readBufferSize = optInteger(get(config, 'readBufferSize'), 'readBufferSize', LIMITS.minReadBufferSize, LIMITS.maxReadBufferSize, DEFAULTS.readBufferSize);
  const scheduler = normalizeScheduler(get(config, 'scheduler'), 'scheduler');
  const protection = normalizeProtection(get(config, 'protection'), 'protection');
  const resolveIntervalMs = optInteger(get(config, 'resolveIntervalMs'), 'resolveIntervalMs', 1, LIMITS.maxTimeoutMs, DEFAULTS.resolveIntervalMs);
  const tcpKeepalive = normalizeKeepalive(get(config, 'tcpKeepalive'), 'tcpKeepalive');
  const halfCloseTimeoutMs = optInteger(get(config, 'halfCloseTimeoutMs'), 'halfCloseTimeoutMs', 0, LIMITS.maxTimeoutMs, DEFAULTS.halfCloseTimeoutMs);

  const rawListeners = get(config, 'listeners');
  if (rawListeners === undefined) throw configTypeError('listeners is required');
  checkArray(rawListeners, 'listeners', 1, LIMITS.maxListeners);
  const listeners = [];
  for (let i = 0; i < rawListeners.length; i++) {
    listeners.push(normalizeListener(rawListeners[i], `listeners[${i}]`, protection));
  }
  checkDuplicateListeners(listeners);

  const rawRoutes = get(config, 'routes');
  if (!listeners.some(isTlsListener) && Array.isArray(rawRoutes) && rawRoutes.length > 0) {
    // Routes are what tls listeners route by SNI; connect listeners take their target from the
    // CONNECT head, so routes given without a tls listener would be checked and never used.
    throw configRangeError('routes apply to tls listeners only: this config has none (connect listeners take their target from the CONNECT request)');
  }
  const routes = rawRoutes === undefined && !listeners.some(isTlsListener) ? [] : normalizeRoutes(rawRoutes, 'routes');
  checkRoutesAgainstListeners(routes, listeners);
  checkWeights(scheduler, listeners, routes);

  return { workerThreads, workerPriority, readBufferSize, scheduler, protection, listeners, routes, resolveIntervalMs, tcpKeepalive, halfCloseTimeoutMs };
}

/**
 * `tcpKeepalive` [{ idleMs: 300000, intervalMs: 30000, count: 5 }]: TCP keepalive on client and
 * upstream TCP sockets, or null (off). idleMs and intervalMs are whole seconds, 1000-32767000;
 * count 1-127 unanswered probes before the socket is dropped.
 *
 * @param {unknown} value
 * @param {string} path
 * @returns {{ idleMs: number, intervalMs: number, count: number } | null}
 */
function normalizeKeepalive(value, path) {
  if (value === null) return null;
  const obj = value === undefined ? {} : object(value, path, KEEPALIVE_KEYS);
  const out = {
    idleMs: optInteger(get(obj, 'idleMs'), `${path}.idleMs`, 1000, LIMITS.maxKeepaliveMs, DEFAULTS.keepaliveIdleMs),
    intervalMs: optInteger(get(obj, 'intervalMs'), `${path}.intervalMs`, 1000, LIMITS.maxKeepaliveMs, DEFAULTS.keepaliveIntervalMs),
    count: optInteger(get(obj, 'count'), `${path}.count`, 1, LIMITS.maxKeepaliveCount, DEFAULTS.keepaliveCount),
  };
  for (const k of ['idleMs', 'intervalMs']) {
    if (out[k] % 1000 !== 0) throw configRangeError(`${path}.${k} must be a whole number of seconds (the kernel counts keepalive in seconds)`);
  }
  return out;
}

/**
 * Validate a `proxy.updateConfig({ routes, protection })` argument against the current
 * normalised config and return the next full normalised config.
 *
 * - `routes` replaces the route table; it is validated in the context of the existing
 *   listeners (a terminating route needs a cert unless every tls listener has a defaultCert;
 *   routes may not be empty while a tls listener exists). Absent: the current routes stay.
 * - `protection` replaces the top-level protection (fields not given take their defaults, not
 *   the current values); each listener's own protection is merged over it again. `null` means
 *   `{}` (all defaults). Absent: the current protection stays.
 * - `listeners`, `workerThreads`, `workerPriority`, `readBufferSize`, `scheduler`,
 *   `resolveIntervalMs`, `tcpKeepalive` and `halfCloseTimeoutMs` cannot be changed this way
 *   (RangeError naming the key); any other key is an unknown option.
 *
 * @param {unknown} update The argument of updateConfig. Not modified.
 * @param {NormalizedConfig} current The live config, as returned by normalizeConfig or by an
 *   earlier normalizeUpdate (its listeners must still carry `_ownProtection`). Not modified.
 * @returns {NormalizedConfig} A new object; on error nothing has changed anywhere.
 * @throws {TypeError | RangeError} With code 'ERR_LEGATO_CONFIG' on the first mistake.
 */
function normalizeUpdate(update, current) {
  if (!isObject(update)) throw configTypeError('update must be an object');
  for (const key of Object.keys(update)) {
    if (key === 'listeners' && Array.isArray(update.listeners)) {
      const i = update.listeners.findIndex((l) => isObject(l) && isObject(l.connect) && l.connect.auth != null);
      if (i >= 0) throw configRangeError(`listeners[${i}].connect.auth cannot be changed by updateConfig (users are fixed while the proxy runs; create a new Proxy)`);
    }
    if (FIXED_KEYS.includes(key)) {
      throw configRangeError(`${key} cannot be changed by updateConfig (only routes and protection can; create a new Proxy)`);
    }
  }
  checkKeys(update, '', UPDATE_KEYS);
  assertNormalized(current);

  const rawProtection = get(update, 'protection');
  const protection = rawProtection === undefined ? copyProtection(current.protection) : normalizeProtection(rawProtection, 'protection');
  // An update that does not name maxTrackedIps keeps the running one (the table is sized once);
  // one that names another value is refused.
  if (!(isObject(rawProtection) && Object.prototype.hasOwnProperty.call(rawProtection, 'maxTrackedIps'))) {
    protection.maxTrackedIps = current.protection.maxTrackedIps;
  }
  if (protection.maxTrackedIps !== current.protection.maxTrackedIps) {
    throw configRangeError('protection.maxTrackedIps cannot be changed by updateConfig (the table is sized when the proxy is created)');
  }
  const listeners = current.listeners.map((l) => relistener(l, protection));

  const rawRoutes = get(update, 'routes');
  const routes = rawRoutes === undefined ? current.routes.slice() : normalizeRoutes(rawRoutes, 'routes');
  checkRoutesAgainstListeners(routes, listeners);
  checkWeights(current.scheduler, listeners, routes);

  return {
    workerThreads: current.workerThreads,
    workerPriority: current.workerPriority,
    readBufferSize: current.readBufferSize,
    scheduler: { ...current.scheduler },
    protection,
    listeners,
    routes,
    resolveIntervalMs: current.resolveIntervalMs,
    tcpKeepalive: current.tcpKeepalive === null ? null : { ...current.tcpKeepalive },
    halfCloseTimeoutMs: current.halfCloseTimeoutMs,
  };
}

/**
 * Validate the decision given to `proxy.resolveConnection(id, decision)` for a suspended
 * connection. Fields are validated and normalised exactly as a route's:
 *  - `upstreams` (required): 1-1024 upstreams (a decision must say where to go).
 *  - `terminateTls` [false], `cert` [null], `mtls` [null], `alpn` [['http/1.1']].
 *  - how the upstreams are used, as on a route (normalizeDial).
 * Whether a terminating decision has a certificate to use (its own, the route's or a
 * listener's defaultCert) is for the caller to check: this function has no route context.
 *
 * @param {unknown} decision The decision, or null (close the connection).
 * @param {string} [path='decision'] Prefix for error messages.
 * @returns {NormalizedDecision | null} A new object, or null when decision is null.
 * @throws {TypeError | RangeError} With code 'ERR_LEGATO_CONFIG' on the first mistake.
 */
function normalizeDecision(decision, path = 'decision') {
  if (decision === null) return null;
  if (!isObject(decision)) throw configTypeError(`${path} must be an object or null`);
  checkKeys(decision, path, DECISION_KEYS);
  const rawUpstreams = get(decision, 'upstreams');
  if (rawUpstreams === undefined) throw configTypeError(`${path}.upstreams is required`);
  const upstreams = normalizeUpstreams(rawUpstreams, `${path}.upstreams`);
  if (upstreams.length === 0) throw configRangeError(`${path}.upstreams must not be empty`);
  const out = {
    upstreams,
    terminateTls: optBoolean(get(decision, 'terminateTls'), `${path}.terminateTls`, false),
    cert: optCert(get(decision, 'cert'), `${path}.cert`),
    mtls: optMtls(get(decision, 'mtls'), `${path}.mtls`),
    alpn: normalizeAlpn(get(decision, 'alpn'), `${path}.alpn`),
    ...normalizeDial(decision, path),
  };
  checkUpstreamTls(out.upstreams, out.terminateTls, out.proxyProtocol, path);
  return out;
}

/**
 * Throw if a normalised config uses a feature the C engine does not implement yet (the
 * NOT_SUPPORTED_YET table at the top of this file).
 *
 * @param {NormalizedConfig} normalized The output of normalizeConfig or normalizeUpdate.
 * @returns {void}
 * @throws {RangeError} `<path> is not supported yet`, code 'ERR_LEGATO_CONFIG'.
 */
function assertSupported(normalized) {
  for (const entry of NOT_SUPPORTED_YET) {
    const path = entry.find(normalized);
    if (path !== null) throw configRangeError(`${path} is not supported yet`);
  }
}

/* ------------------------------------------------------------------------------------------ *
 * Sections of the config.
 * ------------------------------------------------------------------------------------------ */

/**
 * The scheduler options:
 *  - `kind` ['drr']: 'drr' (Deficit Round-Robin) or 'fifo' (write straight through).
 *  - `quantum` ['auto']: 'auto' or an integer 1-16777216 bytes. Normalised: 'auto' → 0.
 *  - `maxQueuedBytesPerFlow` [262144]: integer 16384-1073741824 bytes.
 *  - `rate` [0 = no pacing]: aggregate bytes/s per worker, a safe integer >= 0.
 *  - `burst` [max(rate, 65536) when rate > 0]: integer >= 1 bytes; only with rate > 0
 *    (normalised to 0 when rate is 0).
 *  - `flowRate` [0 = no cap]: bytes/s each flow (each direction of each connection) may write,
 *    a safe integer >= 0; a token bucket per flow holding 100 ms of it (at least 16 KiB).
 *
 * @param {unknown} value The `scheduler` option (undefined or null: all defaults).
 * @param {string} path Its path.
 * @returns {NormalizedScheduler} A new object.
 */
function normalizeScheduler(value, path) {
  const obj = optObject(value, path, SCHEDULER_KEYS);
  const kind = oneOf(get(obj, 'kind'), `${path}.kind`, ['drr', 'fifo'], DEFAULTS.schedulerKind);
  const rawQuantum = get(obj, 'quantum');
  const quantum = rawQuantum === undefined || rawQuantum === 'auto' ? 0 : integerOrAuto(rawQuantum, `${path}.quantum`, LIMITS.maxQuantum);
  const maxQueuedBytesPerFlow = optInteger(get(obj, 'maxQueuedBytesPerFlow'), `${path}.maxQueuedBytesPerFlow`, LIMITS.minQueuedBytesPerFlow, LIMITS.maxQueuedBytesPerFlow, DEFAULTS.maxQueuedBytesPerFlow);
  const rate = optInteger(get(obj, 'rate'), `${path}.rate`, 0, Number.MAX_SAFE_INTEGER, 0);
  const rawBurst = get(obj, 'burst');
  let burst = 0;
  if (rate === 0) {
    if (rawBurst !== undefined && rawBurst !== 0) {
      integer(rawBurst, `${path}.burst`, 1, Number.MAX_SAFE_INTEGER);
      throw configRangeError(`${path}.burst needs ${path}.rate > 0`);
    }
  } else {
    burst = optInteger(rawBurst, `${path}.burst`, 1, Number.MAX_SAFE_INTEGER, Math.max(rate, DEFAULTS.minSchedulerBurst));
    // Pacing is a token bucket in front of the DRR grants; 'fifo' writes without grants.
    if (kind !== 'drr') throw configRangeError(`${path}.rate needs ${path}.kind 'drr'`);
  }
  // 'fifo' writes what each read brought: no rounds, so no quantum to set.
  if (quantum > 0 && kind !== 'drr') throw configRangeError(`${path}.quantum needs ${path}.kind 'drr'`);
  const flowRate = optInteger(get(obj, 'flowRate'), `${path}.flowRate`, 0, Number.MAX_SAFE_INTEGER, 0);
  // A flow's bucket cuts its DRR grants, as rate's does the worker's; 'fifo' has no grants.
  if (flowRate > 0 && kind !== 'drr') throw configRangeError(`${path}.flowRate needs ${path}.kind 'drr'`);
  return { kind, quantum, maxQueuedBytesPerFlow, rate, burst, flowRate };
}

/**
 * A full protection object (top level, or the replacement given to updateConfig):
 *  - `rateLimit` [null]: null or { connectionsPerSecond (number > 0), burst [max(rate, 1)] }.
 *  - `maxConcurrentPerIp` [0 = unlimited]: integer >= 0.
 *  - `allowlist` [[]]: IPs or CIDRs; when non-empty only these sources are admitted.
 *  - `blocklist` [[]]: IPs or CIDRs refused. Entries are normalised: '1.2.3.4' → '1.2.3.4/32',
 *    IPv6 in RFC 5952 form with '/128'; a CIDR with host bits set is an error.
 *  - `ja3Blocklist` [[]]: JA3 MD5 hashes (32 hex digits), lower-cased.
 *  - `ja4Blocklist` [[]]: JA4 fingerprints (a_b_c: 10 + 12 + 12 chars), lower-cased.
 *  - `tlsHandshakeTimeoutMs` [10000]: integer 1-600000.
 *  - `requireSni` [false]: refuse a ClientHello without SNI.
 *
 * @param {unknown} value The option (undefined or null: all defaults).
 * @param {string} path Its path.
 * @returns {NormalizedProtection} A new object.
 */
function normalizeProtection(value, path) {
  return { ...defaultProtection(), ...protectionFields(value, path) };
}

/**
 * Validate the protection fields that are given and return only those (normalised). Used for
 * a listener's own protection, which is merged over the top-level protection.
 *
 * @param {unknown} value A protection object, undefined or null.
 * @param {string} path Its path.
 * @returns {Partial<NormalizedProtection>} The given fields only.
 */
function protectionFields(value, path) {
  const obj = optObject(value, path, PROTECTION_KEYS);
  /** @type {Partial<NormalizedProtection>} */
  const out = {};
  const rateLimit = get(obj, 'rateLimit');
  if (rateLimit !== undefined) out.rateLimit = optRateLimit(rateLimit, `${path}.rateLimit`);
  const sustained = get(obj, 'sustained');
  if (sustained !== undefined) out.sustained = optSustained(sustained, `${path}.sustained`);
  const penaltyBox = get(obj, 'penaltyBox');
  if (penaltyBox !== undefined) out.penaltyBox = optPenaltyBox(penaltyBox, `${path}.penaltyBox`);
  const maxConcurrentPerIp = get(obj, 'maxConcurrentPerIp');
  if (maxConcurrentPerIp !== undefined) out.maxConcurrentPerIp = integer(maxConcurrentPerIp, `${path}.maxConcurrentPerIp`, 0, LIMITS.maxConcurrentPerIp);
  const allowlist = get(obj, 'allowlist');
  if (allowlist !== undefined) out.allowlist = cidrList(allowlist, `${path}.allowlist`, LIMITS.maxCidrListEntries);
  const blocklist = get(obj, 'blocklist');
  if (blocklist !== undefined) out.blocklist = cidrList(blocklist, `${path}.blocklist`, LIMITS.maxCidrListEntries);
  const ja3 = get(obj, 'ja3Blocklist');
  if (ja3 !== undefined) out.ja3Blocklist = stringList(ja3, `${path}.ja3Blocklist`, normalizeJa3);
  const ja4 = get(obj, 'ja4Blocklist');
  if (ja4 !== undefined) out.ja4Blocklist = stringList(ja4, `${path}.ja4Blocklist`, normalizeJa4);
  const hs = get(obj, 'tlsHandshakeTimeoutMs');
  if (hs !== undefined) out.tlsHandshakeTimeoutMs = integer(hs, `${path}.tlsHandshakeTimeoutMs`, 1, LIMITS.maxHandshakeTimeoutMs);
  const requireSni = get(obj, 'requireSni');
  if (requireSni !== undefined) out.requireSni = boolean(requireSni, `${path}.requireSni`);
  const ipv6Prefix = get(obj, 'ipv6Prefix');
  if (ipv6Prefix !== undefined) out.ipv6Prefix = integer(ipv6Prefix, `${path}.ipv6Prefix`, 1, 128);
  const maxTrackedIps = get(obj, 'maxTrackedIps');
  if (maxTrackedIps !== undefined) out.maxTrackedIps = integer(maxTrackedIps, `${path}.maxTrackedIps`, 1, LIMITS.maxTrackedIps);
  return out;
}

/** @returns {NormalizedProtection} The protection defaults, as a new object. */
function defaultProtection() {
  return {
    rateLimit: null,
    sustained: null,
    penaltyBox: null,
    maxConcurrentPerIp: 0,
    allowlist: [],
    blocklist: [],
    ja3Blocklist: [],
    ja4Blocklist: [],
    tlsHandshakeTimeoutMs: DEFAULTS.tlsHandshakeTimeoutMs,
    requireSni: false,
    ipv6Prefix: DEFAULTS.ipv6Prefix,
    maxTrackedIps: DEFAULTS.maxTrackedIps,
  };
}

/**
 * @param {unknown} value `rateLimit`: null (none) or { connectionsPerSecond, burst }.
 * @param {string} path Its path.
 * @returns {NormalizedRateLimit | null} A new object or null.
 */
function optRateLimit(value, path) {
  if (value === null) return null;
  const obj = object(value, path, RATE_LIMIT_KEYS);
  const cps = get(obj, 'connectionsPerSecond');
  if (cps === undefined) throw configTypeError(`${path}.connectionsPerSecond is required`);
  const connectionsPerSecond = positiveNumber(cps, `${path}.connectionsPerSecond`);
  const rawBurst = get(obj, 'burst');
  const burst = rawBurst === undefined ? Math.max(connectionsPerSecond, 1) : numberAtLeast(rawBurst, `${path}.burst`, 1);
  return { connectionsPerSecond, burst };
}

/**
 * @param {unknown} value `sustained`: null (none) or { connectionsPerMinute, burst }.
 * @param {string} path Its path.
 * @returns {NormalizedSustained | null} A new object or null.
 */
function optSustained(value, path) {
  if (value === null) return null;
  const obj = object(value, path, SUSTAINED_KEYS);
  const cpm = get(obj, 'connectionsPerMinute');
  if (cpm === undefined) throw configTypeError(`${path}.connectionsPerMinute is required`);
  const connectionsPerMinute = positiveNumber(cpm, `${path}.connectionsPerMinute`);
  const rawBurst = get(obj, 'burst');
  const burst = rawBurst === undefined ? Math.max(connectionsPerMinute, 1) : numberAtLeast(rawBurst, `${path}.burst`, 1);
  return { connectionsPerMinute, burst };
}

/**
 * @param {unknown} value `penaltyBox`: null (none) or { durationMs }.
 * @param {string} path Its path.
 * @returns {{ durationMs: number } | null} A new object or null.
 */
function optPenaltyBox(value, path) {
  if (value === null) return null;
  const obj = object(value, path, PENALTY_BOX_KEYS);
  return { durationMs: optInteger(get(obj, 'durationMs'), `${path}.durationMs`, 1, LIMITS.maxTimeoutMs, DEFAULTS.penaltyBoxMs) };
}

/**
 * A listener:
 *  - `kind` ['tls']: 'tls' (SNI router) or 'connect' (HTTP CONNECT forward proxy).
 *  - `host` ['0.0.0.0' for tls, '127.0.0.1' for connect]: IPv4/IPv6 literal (brackets around
 *    IPv6 are stripped) or hostname (lower-cased, trailing dot dropped).
 *  - `port` (required): integer 0-65535; 0 lets the system choose.
 *  - `defaultCert` [null], `mtls` [null]: tls listeners only.
 *  - `maxConnections` [0 = unlimited for tls, 1000 for connect]: integer 0-4294967295.
 *  - `idleTimeoutMs` [60000]: integer 0-2147483647; 0 disables the idle timeout.
 *  - `protection` [{}]: overrides the top-level protection field by field (`rateLimit: null`
 *    here switches an inherited rate limit off). On a connect listener the TLS-only fields
 *    (ja3Blocklist, ja4Blocklist, tlsHandshakeTimeoutMs, requireSni) are errors; inherited
 *    ones are ignored by the engine.
 *  - `scheduler` [{ weight: 1 }]: the scheduler weight of its connections (normalizeFlowScheduler).
 *  - `connect` [defaults]: connect listeners only (see normalizeConnect); normalised to null on
 *    a tls listener.
 *
 * @param {unknown} value The listener.
 * @param {string} path Its path, e.g. 'listeners[0]'.
 * @param {NormalizedProtection} topProtection The normalised top-level protection.
 * @returns {NormalizedListener} A new object with a non-enumerable `_ownProtection`.
 */
function normalizeListener(value, path, topProtection) {
  const obj = object(value, path, LISTENER_KEYS);
  const kind = oneOf(get(obj, 'kind'), `${path}.kind`, ['tls', 'connect'], 'tls');
  const tls = kind === 'tls';
  const host = normalizeHost(get(obj, 'host'), `${path}.host`, tls ? DEFAULTS.tlsHost : DEFAULTS.connectHost);
  const rawPort = get(obj, 'port');
  if (rawPort === undefined) throw configTypeError(`${path}.port is required`);
  const port = integer(rawPort, `${path}.port`, 0, 65535);

  const rawDefaultCert = get(obj, 'defaultCert');
  const rawMtls = get(obj, 'mtls');
  if (!tls) {
    if (rawDefaultCert != null) throw configRangeError(`${path}.defaultCert is only for kind 'tls' listeners (a connect listener does not terminate TLS)`);
    if (rawMtls != null) throw configRangeError(`${path}.mtls is only for kind 'tls' listeners (a connect listener does not terminate TLS)`);
  }
  const defaultCert = optCert(rawDefaultCert, `${path}.defaultCert`);
  const mtls = optMtls(rawMtls, `${path}.mtls`);
  const maxConnections = optInteger(get(obj, 'maxConnections'), `${path}.maxConnections`, 0, LIMITS.maxConnections, tls ? DEFAULTS.tlsMaxConnections : DEFAULTS.connectMaxConnections);
  const idleTimeoutMs = optInteger(get(obj, 'idleTimeoutMs'), `${path}.idleTimeoutMs`, 0, LIMITS.maxTimeoutMs, DEFAULTS.idleTimeoutMs);

  const own = protectionFields(get(obj, 'protection'), `${path}.protection`);
  if ('maxTrackedIps' in own) {
    throw configRangeError(`${path}.protection.maxTrackedIps can only be set in the top-level protection (one table serves every listener)`);
  }
  if (!tls) {
    // A TLS-only key at its default value changes nothing (a shared protection object, say): it
    // is accepted; any other value would be silently meaningless, so it is refused.
    const defaults = defaultProtection();
    for (const key of TLS_ONLY_PROTECTION_KEYS) {
      if (key in own && !util.isDeepStrictEqual(own[key], defaults[key])) {
        throw configRangeError(`${path}.protection.${key} is only for kind 'tls' listeners`);
      }
    }
  }

  const acceptProxyProtocol = oneOf(get(obj, 'acceptProxyProtocol'), `${path}.acceptProxyProtocol`, ['none', 'v1', 'v2', 'any'], DEFAULTS.acceptProxyProtocol);
  const rawTrusted = get(obj, 'trustedProxies');
  const trustedProxies = rawTrusted === undefined ? [] : cidrList(rawTrusted, `${path}.trustedProxies`);
  if (acceptProxyProtocol !== 'none' && trustedProxies.length === 0) {
    throw configRangeError(`${path}.trustedProxies must list the proxies allowed to send a PROXY header (acceptProxyProtocol is '${acceptProxyProtocol}')`);
  }
  if (acceptProxyProtocol === 'none' && trustedProxies.length > 0) {
    throw configRangeError(`${path}.trustedProxies needs acceptProxyProtocol 'v1', 'v2' or 'any'`);
  }

  // 'exclusive': a second process on this address fails with EADDRINUSE; 'share': processes that
  // all say 'share' split the connections (SO_REUSEPORT), see src/lg_listener.h.
  const reusePort = oneOf(get(obj, 'reusePort'), `${path}.reusePort`, ['exclusive', 'share'], DEFAULTS.reusePort);

  const rawConnect = get(obj, 'connect');
  let connect = null;
  if (tls) {
    if (rawConnect != null) throw configRangeError(`${path}.connect is only for kind 'connect' listeners`);
  } else {
    connect = normalizeConnect(rawConnect, `${path}.connect`);
  }

  const scheduler = normalizeFlowScheduler(get(obj, 'scheduler'), `${path}.scheduler`, DEFAULTS.weight);

  return withOwnProtection({ kind, host, port, maxConnections, idleTimeoutMs, defaultCert, mtls, protection: mergeProtection(topProtection, own), connect, acceptProxyProtocol, trustedProxies, scheduler, reusePort }, own);
}

/**
 * A route's or listener's own scheduler options:
 *  - `weight` [listener: 1; route: the listener's]: integer 1-64 (LIMITS.maxSchedulerWeight).
 *    A flow's DRR quantum and per-turn read budget are multiplied by it, so backlogged flows of
 *    weight 3 move 3 times the bytes of flows of weight 1 on the same worker. A connection takes
 *    its route's weight when the route sets one, else its listener's. Weights other than 1
 *    need scheduler.kind 'drr' (checkWeights).
 *  - `flowRate` [null: listener: the top level's scheduler.flowRate; route: the listener's]: a
 *    safe integer >= 0, bytes/s each flow (each direction of each connection) may write; 0 lifts
 *    an inherited cap. A connection takes its route's when the route sets one, else its
 *    listener's. A cap (> 0) needs scheduler.kind 'drr' (checkWeights).
 *
 * @param {unknown} value The `scheduler` option of a route or listener (undefined or null: {}).
 * @param {string} path Its path.
 * @param {number} dflt The weight when not given (0 on a route: the listener's).
 * @returns {{ weight: number, flowRate: number | null }} A new object.
 */
function normalizeFlowScheduler(value, path, dflt) {
  const obj = optObject(value, path, FLOW_SCHEDULER_KEYS);
  const rawRate = get(obj, 'flowRate');
  return {
    weight: optInteger(get(obj, 'weight'), `${path}.weight`, 1, LIMITS.maxSchedulerWeight, dflt),
    flowRate: rawRate == null ? null : optInteger(rawRate, `${path}.flowRate`, 0, Number.MAX_SAFE_INTEGER, 0),
  };
}

/**
 * Weights other than 1 need the DRR scheduler: 'fifo' writes every flow as it reads, with no
 * rounds to weigh, so a weight there would be accepted and ignored.
 *
 * @param {NormalizedScheduler} scheduler
 * @param {NormalizedListener[]} listeners
 * @param {NormalizedRoute[]} routes
 */
function checkWeights(scheduler, listeners, routes) {
  if (scheduler.kind === 'drr') return;
  const heavy = (x) => x.scheduler.weight > 1;
  const path = inListeners({ listeners }, 'scheduler.weight', heavy) || inRoutes({ routes }, 'scheduler.weight', heavy);
  if (path !== null) throw configRangeError(`${path} needs scheduler.kind 'drr' (fifo has no rounds to weigh)`);
  const capped = (x) => x.scheduler.flowRate > 0;
  const rpath = inListeners({ listeners }, 'scheduler.flowRate', capped) || inRoutes({ routes }, 'scheduler.flowRate', capped);
  if (rpath !== null) throw configRangeError(`${rpath} needs scheduler.kind 'drr' (fifo writes without grants to cut)`);
}

/**
 * A connect listener's destination policy:
 *  - `allowPorts` [[]]: integers 1-65535 (at least one port must end up allowed).
 *  - `defaultAllowPort` [true]: 443 is allowed in addition to allowPorts.
 *    Normalised allowPorts: with 443 added when defaultAllowPort, de-duplicated, sorted.
 *  - `denyCidrs` [DEFAULT_DENY_CIDRS]: destinations refused; a given list replaces the default.
 *  - `allowCidrs` [[]]: exceptions to denyCidrs.
 *  - `allowDomains` [[]]: domain names, lower-cased, trailing dot dropped, a leading '.' or
 *    '*.' stripped; 'example.com' stands for the domain and all its subdomains. When non-empty
 *    only these domains may be reached. IP literals are refused here (use allowCidrs).
 *  - `connectTimeoutMs` [10000]: integer 1-600000, one deadline for the whole dial.
 *  - `headTimeoutMs` [10000]: integer 1-600000, the whole request head must arrive within this
 *    of accept (408 otherwise).
 *  - `auth` [null]: Basic proxy authentication (see normalizeAuth).
 *
 * @param {unknown} value The `connect` option (undefined or null: all defaults).
 * @param {string} path Its path.
 * @returns {NormalizedConnect} A new object.
 */
function normalizeConnect(value, path) {
  const obj = optObject(value, path, CONNECT_KEYS);
  const defaultAllowPort = optBoolean(get(obj, 'defaultAllowPort'), `${path}.defaultAllowPort`, true);
  const rawPorts = get(obj, 'allowPorts');
  const ports = new Set(defaultAllowPort ? [443] : []);
  // 443 comes only from defaultAllowPort, so `defaultAllowPort: false` really drops it (as the
  // CLI's --no-default-allow-port does); with nothing else allowed that is a config error.
  if (rawPorts !== undefined) {
    checkArray(rawPorts, `${path}.allowPorts`, 0, 65535);
    for (let i = 0; i < rawPorts.length; i++) ports.add(integer(rawPorts[i], `${path}.allowPorts[${i}]`, 1, 65535));
  }
  if (ports.size === 0) throw configRangeError(`${path}.allowPorts must not be empty when defaultAllowPort is false (no port could be reached)`);
  const allowPorts = [...ports].sort((a, b) => a - b);

  const rawDeny = get(obj, 'denyCidrs');
  const denyCidrs = rawDeny === undefined ? DEFAULT_DENY_CIDRS.slice() : cidrList(rawDeny, `${path}.denyCidrs`);
  const rawAllow = get(obj, 'allowCidrs');
  const allowCidrs = rawAllow === undefined ? [] : cidrList(rawAllow, `${path}.allowCidrs`);
  const rawDomains = get(obj, 'allowDomains');
  const allowDomains = rawDomains === undefined ? [] : stringList(rawDomains, `${path}.allowDomains`, normalizeDomain);
  const connectTimeoutMs = optInteger(get(obj, 'connectTimeoutMs'), `${path}.connectTimeoutMs`, 1, LIMITS.maxConnectTimeoutMs, DEFAULTS.connectTimeoutMs);
  const auth = normalizeAuth(get(obj, 'auth'), `${path}.auth`);
  const headTimeoutMs = optInteger(get(obj, 'headTimeoutMs'), `${path}.headTimeoutMs`, 1, LIMITS.maxConnectTimeoutMs, DEFAULTS.headTimeoutMs);
  return { allowPorts, defaultAllowPort, denyCidrs, allowCidrs, allowDomains, connectTimeoutMs, headTimeoutMs, auth };
}

/**
 * A connect listener's Basic proxy authentication (RFC 7617):
 *  - `realm` ['legato']: 1-128 printable ASCII characters without '"' or '\', sent in
 *    `Proxy-Authenticate: Basic realm="…"`.
 *  - `users` (required): 1-10000 `{ name, hash }`; name 1-255 bytes of UTF-8 without ':' or
 *    control characters, unique; hash a `$scrypt$ln=…,r=…,p=…$salt$hash` string, checked by the
 *    engine's own parser (binding.parseScryptHash) so this file and the engine cannot disagree.
 *  - `failureLimit` [{ perMinute: 10, burst: 10 }]: failed logins per source: `burst` (at least
 *    workerThreads) at once, then `perMinute` (a verification takes a token when it starts, a
 *    success gives it back);
 *    beyond them the source's credentials are answered 429 without being verified (unless in
 *    flight or cached as a success). null: no limit.
 * Users are fixed while the proxy runs (updateConfig cannot change listeners).
 *
 * @param {unknown} value The `auth` option (undefined or null: no authentication).
 * @param {string} path Its path.
 * @returns {{ realm: string, users: { name: string, hash: string }[],
 *   failureLimit: { perMinute: number, burst: number } | null } | null}
 */
function normalizeAuth(value, path) {
  const obj = optObject(value, path, AUTH_KEYS);
  if (obj === undefined) return null;
  const rawRealm = get(obj, 'realm');
  let realm = DEFAULTS.authRealm;
  if (rawRealm !== undefined) {
    if (typeof rawRealm !== 'string') throw configTypeError(`${path}.realm must be a string`);
    if (rawRealm.length < 1 || rawRealm.length > LIMITS.maxAuthRealmLength || !/^[\x20-\x7e]*$/.test(rawRealm) || /["\\]/.test(rawRealm)) {
      throw configRangeError(`${path}.realm must be 1-${LIMITS.maxAuthRealmLength} printable ASCII characters without '"' or '\\'`);
    }
    realm = rawRealm;
  }
  const rawUsers = get(obj, 'users');
  if (rawUsers === undefined) throw configTypeError(`${path}.users is required`);
  checkArray(rawUsers, `${path}.users`, 1, LIMITS.maxAuthUsers);
  const users = [];
  const seen = new Map();
  for (let i = 0; i < rawUsers.length; i++) {
    const upath = `${path}.users[${i}]`;
    const u = object(rawUsers[i], upath, AUTH_USER_KEYS);
    const name = get(u, 'name');
    if (typeof name !== 'string') throw configTypeError(`${upath}.name must be a string`);
    const bytes = Buffer.byteLength(name);
    // eslint-disable-next-line no-control-regex
    if (bytes < 1 || bytes > LIMITS.maxAuthNameLength || name.includes(':') || /[\x00-\x1f\x7f]/.test(name)) {
      throw configRangeError(`${upath}.name must be 1-${LIMITS.maxAuthNameLength} bytes without ':' or control characters`);
    }
    if (seen.has(name)) throw configRangeError(`${upath}.name '${clip(name)}' duplicates ${path}.users[${seen.get(name)}]`);
    seen.set(name, i);
    const hash = get(u, 'hash');
    if (typeof hash !== 'string') throw configTypeError(`${upath}.hash must be a string`);
    const why = binding.parseScryptHash(hash);
    if (why !== null) throw configRangeError(`${upath}.hash is not a $scrypt$ hash: ${why}`);
    users.push({ name, hash });
  }
  const rawLimit = get(obj, 'failureLimit');
  let failureLimit = { ...DEFAULTS.authFailureLimit };
  if (rawLimit === null) {
    failureLimit = null;
  } else if (rawLimit !== undefined) {
    const fl = object(rawLimit, `${path}.failureLimit`, AUTH_FAILURE_KEYS);
    const perMinute = get(fl, 'perMinute');
    if (perMinute === undefined) throw configTypeError(`${path}.failureLimit.perMinute is required`);
    failureLimit = {
      perMinute: integer(perMinute, `${path}.failureLimit.perMinute`, 1, LIMITS.maxAuthFailuresPerMinute),
      burst: optInteger(get(fl, 'burst'), `${path}.failureLimit.burst`, 1, LIMITS.maxAuthFailureBurst, DEFAULTS.authFailureLimit.burst),
    };
  }
  return { realm, users, failureLimit };
}

/**
 * The route table: an array of routes whose SNI patterns are unique after normalisation.
 *
 * @param {unknown} value The `routes` option.
 * @param {string} path 'routes'.
 * @returns {NormalizedRoute[]} A new array.
 */
function normalizeRoutes(value, path) {
  if (value === undefined) throw configTypeError(`${path} is required`);
  checkArray(value, path, 0, LIMITS.maxRoutes);
  const seen = new Map();
  const routes = [];
  for (let i = 0; i < value.length; i++) {
    const route = normalizeRoute(value[i], `${path}[${i}]`);
    const first = seen.get(route.sni);
    if (first !== undefined) throw configRangeError(`${path}[${i}].sni '${route.sni}' duplicates ${path}[${first}].sni`);
    seen.set(route.sni, i);
    routes.push(route);
  }
  return routes;
}

/**
 * A route:
 *  - `sni` ['' = the default route]: an exact name, '*.suffix' or ''; lower-cased, one trailing
 *    dot dropped; LDH/underscore labels of at most 63 bytes, at most 253 bytes in all; ASCII
 *    only (use the punycode form of international names).
 *  - `upstreams`: up to 1024 upstreams; required and non-empty unless `suspended` is true.
 *  - `terminateTls` [false]; `cert` [null]; `mtls` [null]; `alpn` [['http/1.1']]: protocol ids
 *    of 1-255 bytes offered when terminating ([] = no ALPN), at most 64, no duplicates.
 *    `cert` and `mtls` are accepted on a passthrough route and checked there too (the engine
 *    builds their contexts); on a suspended route they serve a terminating decision that brings
 *    neither (decision cert → route cert → listener defaultCert). `alpn` is used only by a
 *    route that terminates (a decision has its own).
 *  - `suspended` [false]; `suspendTimeoutMs` [30000]: integer 1-2147483647.
 *  - `maxConnectionsPerSecond` [0 = unlimited]: a number >= 0 (fractions allowed);
 *    `burst` [max(maxConnectionsPerSecond, 1)]: a number >= 1; only with a rate (else 0).
 *  - how the upstreams are used: see normalizeDial.
 *  - `scheduler` [{}]: `weight` of its connections, overriding the listener's
 *    (normalizeFlowScheduler); updateConfig gives a new weight to connections accepted after it.
 *  - `metricsGroup` [null]: 1-64 characters of A-Z a-z 0-9 _ . : -; routes with the same group
 *    share one set of figures in metrics().routes (without one, a route's figures are its SNI
 *    pattern's), kept across updateConfig.
 *
 * @param {unknown} value The route.
 * @param {string} path Its path, e.g. 'routes[0]'.
 * @returns {NormalizedRoute} A new object.
 */
function normalizeRoute(value, path) {
  const obj = object(value, path, ROUTE_KEYS);
  const sni = normalizeSni(get(obj, 'sni'), `${path}.sni`);
  const suspended = optBoolean(get(obj, 'suspended'), `${path}.suspended`, false);
  const rawUpstreams = get(obj, 'upstreams');
  let upstreams = [];
  if (rawUpstreams === undefined) {
    if (!suspended) throw configTypeError(`${path}.upstreams is required (only a suspended route may have none)`);
  } else {
    upstreams = normalizeUpstreams(rawUpstreams, `${path}.upstreams`);
    if (upstreams.length === 0 && !suspended) throw configRangeError(`${path}.upstreams must not be empty (only a suspended route may have none)`);
  }
  const terminateTls = optBoolean(get(obj, 'terminateTls'), `${path}.terminateTls`, false);
  const cert = optCert(get(obj, 'cert'), `${path}.cert`);
  const mtls = optMtls(get(obj, 'mtls'), `${path}.mtls`);
  const alpn = normalizeAlpn(get(obj, 'alpn'), `${path}.alpn`);
  const suspendTimeoutMs = optInteger(get(obj, 'suspendTimeoutMs'), `${path}.suspendTimeoutMs`, 1, LIMITS.maxTimeoutMs, DEFAULTS.suspendTimeoutMs);
  const rawRate = get(obj, 'maxConnectionsPerSecond');
  const maxConnectionsPerSecond = rawRate === undefined ? 0 : numberAtLeast(rawRate, `${path}.maxConnectionsPerSecond`, 0);
  const rawBurst = get(obj, 'burst');
  let burst = 0;
  if (maxConnectionsPerSecond === 0) {
    if (rawBurst !== undefined && rawBurst !== 0) {
      numberAtLeast(rawBurst, `${path}.burst`, 1);
      throw configRangeError(`${path}.burst needs ${path}.maxConnectionsPerSecond > 0`);
    }
  } else {
    burst = rawBurst === undefined ? Math.max(maxConnectionsPerSecond, 1) : numberAtLeast(rawBurst, `${path}.burst`, 1);
  }
  const dial = normalizeDial(obj, path);
  checkUpstreamTls(upstreams, terminateTls, dial.proxyProtocol, path);
  const rawGroup = get(obj, 'metricsGroup');
  let metricsGroup = null;
  if (rawGroup != null) {
    if (typeof rawGroup !== 'string') throw configTypeError(`${path}.metricsGroup must be a string`);
    if (!/^[A-Za-z0-9_.:-]+$/.test(rawGroup) || rawGroup.length > LIMITS.maxMetricsGroupLength) {
      throw configRangeError(`${path}.metricsGroup must be 1-${LIMITS.maxMetricsGroupLength} characters of A-Z a-z 0-9 _ . : -`);
    }
    metricsGroup = rawGroup;
  }
  const scheduler = normalizeFlowScheduler(get(obj, 'scheduler'), `${path}.scheduler`, 0);
  return { sni, upstreams, terminateTls, cert, mtls, alpn, suspended, suspendTimeoutMs, maxConnectionsPerSecond, burst, metricsGroup, scheduler, ...dial };
}

/**
 * How a route (or a decision) uses its upstreams:
 *  - `balance` ['leastConn']: 'leastConn' (fewest active connections engine-wide per unit of
 *    weight, plus the thread's CPU for uds upstreams with pid/tid), 'roundRobin' (smooth
 *    weighted), 'random2' (two random choices, the less loaded wins) or 'hash' (Maglev
 *    consistent hashing of the client address).
 *  - `connectTimeoutMs` [10000]: 1-600000, the whole dial, every attempt included; each attempt
 *    gets an equal share (connectTimeoutMs / (retries + 1)).
 *  - `retries` [2]: 0-16 further attempts after a refused, reset or timed-out dial, each on
 *    another upstream.
 *  - `maxFails` [3]: 0-1000 consecutive failed dials eject an upstream (0 = never) for
 *    `failTimeoutMs` [10000] (1-3600000); then one connection probes it.
 *  - `proxyProtocol` ['none']: 'none', 'v1' or 'v2', written to the upstream before any byte.
 *  - `forwardFingerprint` [false]: with 'v2', the client's JA3 and JA4 in TLVs 0xE0 and 0xE1.
 *
 * @param {object} obj The route or decision.
 * @param {string} path Its path.
 * @returns {{ balance: string, connectTimeoutMs: number, retries: number, maxFails: number,
 *   failTimeoutMs: number, proxyProtocol: string, forwardFingerprint: boolean }}
 */
function normalizeDial(obj, path) {
  const balance = oneOf(get(obj, 'balance'), `${path}.balance`, BALANCE_POLICIES, DEFAULTS.balance);
  const connectTimeoutMs = optInteger(get(obj, 'connectTimeoutMs'), `${path}.connectTimeoutMs`, 1, LIMITS.maxConnectTimeoutMs, DEFAULTS.connectTimeoutMs);
  const retries = optInteger(get(obj, 'retries'), `${path}.retries`, 0, LIMITS.maxRetries, DEFAULTS.retries);
  const maxFails = optInteger(get(obj, 'maxFails'), `${path}.maxFails`, 0, LIMITS.maxFails, DEFAULTS.maxFails);
  const failTimeoutMs = optInteger(get(obj, 'failTimeoutMs'), `${path}.failTimeoutMs`, 1, LIMITS.maxFailTimeoutMs, DEFAULTS.failTimeoutMs);
  const proxyProtocol = oneOf(get(obj, 'proxyProtocol'), `${path}.proxyProtocol`, ['none', 'v1', 'v2'], 'none');
  const forwardFingerprint = optBoolean(get(obj, 'forwardFingerprint'), `${path}.forwardFingerprint`, false);
  if (forwardFingerprint && proxyProtocol !== 'v2') throw configRangeError(`${path}.forwardFingerprint needs ${path}.proxyProtocol 'v2' (its TLVs carry the fingerprints)`);
  return { balance, connectTimeoutMs, retries, maxFails, failTimeoutMs, proxyProtocol, forwardFingerprint };
}

/**
 * @param {unknown} value An upstreams array (0-1024 entries).
 * @param {string} path Its path.
 * @returns {NormalizedUpstream[]} A new array.
 */
function normalizeUpstreams(value, path) {
  checkArray(value, path, 0, LIMITS.maxUpstreams);
  const out = [];
  for (let i = 0; i < value.length; i++) out.push(normalizeUpstream(value[i], `${path}[${i}]`));
  return out;
}

/**
 * An upstream, one of:
 *  - `{ kind: 'tcp', host, port, weight [1] }`: host an IP literal or hostname, port 1-65535
 *    (both required).
 *  - `{ kind: 'uds', path, weight [1], ipAffinity [false], ipAffinityTtlMs [300000], pid, tid }`:
 *    path a non-empty string of at most 107 bytes (sun_path) without NUL; ipAffinityTtlMs
 *    1-2147483647; pid and tid integers 1-2147483647, both or neither (0 = not given).
 *  - `weight`: an integer 1-65535, the upstream's share under leastConn, roundRobin and hash.
 *
 * @param {unknown} value The upstream.
 * @param {string} path Its path.
 * @returns {NormalizedUpstream} A new object.
 */
function normalizeUpstream(value, path) {
  if (!isObject(value)) throw configTypeError(`${path} must be an object`);
  const kind = oneOf(get(value, 'kind'), `${path}.kind`, ['tcp', 'uds'], undefined);
  const weight = optInteger(get(value, 'weight'), `${path}.weight`, 1, LIMITS.maxWeight, DEFAULTS.weight);
  if (kind === 'tcp') {
    const udsOnly = UDS_ONLY_UPSTREAM_KEYS.find((k) => get(value, k) !== undefined);
    if (udsOnly !== undefined) throw configRangeError(`${path}.${udsOnly} applies to uds upstreams only`);
    checkKeys(value, path, TCP_UPSTREAM_KEYS);
    const rawHost = get(value, 'host');
    if (rawHost === undefined) throw configTypeError(`${path}.host is required`);
    const host = normalizeHost(rawHost, `${path}.host`, undefined);
    const rawPort = get(value, 'port');
    if (rawPort === undefined) throw configTypeError(`${path}.port is required`);
    const port = integer(rawPort, `${path}.port`, 1, 65535);
    const tls = optUpstreamTls(get(value, 'tls'), `${path}.tls`);
    return { kind, host, port, weight, tls };
  }
  checkKeys(value, path, UDS_UPSTREAM_KEYS);
  const socketPath = normalizeSocketPath(get(value, 'path'), `${path}.path`);
  const ipAffinity = optBoolean(get(value, 'ipAffinity'), `${path}.ipAffinity`, false);
  const ipAffinityTtlMs = optInteger(get(value, 'ipAffinityTtlMs'), `${path}.ipAffinityTtlMs`, 1, LIMITS.maxTimeoutMs, DEFAULTS.ipAffinityTtlMs);
  const pid = optInteger(get(value, 'pid'), `${path}.pid`, 0, LIMITS.maxPid, 0);
  const tid = optInteger(get(value, 'tid'), `${path}.tid`, 0, LIMITS.maxPid, 0);
  if ((tid === 0) !== (pid === 0)) throw configRangeError(`${path}.${pid === 0 ? 'tid needs pid' : 'pid needs tid'} (CPU is read from /proc/<pid>/task/<tid>/stat)`);
  return { kind, path: socketPath, weight, ipAffinity, ipAffinityTtlMs, pid, tid };
}

/**
 * @param {unknown} value A Unix socket path.
 * @param {string} path Its option path.
 * @returns {string} The path, unchanged.
 */
function normalizeSocketPath(value, path) {
  if (value === undefined) throw configTypeError(`${path} is required`);
  if (typeof value !== 'string') throw configTypeError(`${path} must be a string`);
  if (value.length === 0) throw configRangeError(`${path} must not be empty`);
  if (value.includes('\0')) throw configRangeError(`${path} must not contain NUL (abstract sockets are not supported)`);
  if (Buffer.byteLength(value, 'utf8') > LIMITS.maxUdsPathBytes) {
    throw configRangeError(`${path} must be at most ${LIMITS.maxUdsPathBytes} bytes (sun_path holds ${LIMITS.maxUdsPathBytes + 1} with the NUL)`);
  }
  return value;
}

/**
 * A certificate: `{ certChain, privateKey }`, each a PEM string or Buffer (a chain may hold
 * intermediates). Normalised to Buffers (copies). Only the PEM armour is checked here
 * ('-----BEGIN' and 'CERTIFICATE-----' / 'PRIVATE KEY-----'); the C side parses it.
 *
 * @param {unknown} value The option; undefined or null: none.
 * @param {string} path Its path.
 * @returns {NormalizedCert | null} A new object or null.
 */
function optCert(value, path) {
  if (value == null) return null;
  const obj = object(value, path, CERT_KEYS);
  return {
    certChain: pem(get(obj, 'certChain'), `${path}.certChain`, 'CERTIFICATE', 'certificate'),
    privateKey: pem(get(obj, 'privateKey'), `${path}.privateKey`, 'PRIVATE KEY', 'private key'),
  };
}

/**
 * Client-certificate authentication: `{ clientCaCert (required, PEM string or Buffer),
 * requireClientCert [true] }`.
 *
 * @param {unknown} value The option; undefined or null: none.
 * @param {string} path Its path.
 * @returns {NormalizedMtls | null} A new object or null.
 */
/**
 * A TCP upstream's `tls` (re-encryption; terminating routes only): null/absent, or
 * `{ servername, ca, verify = true, cert }`: servername [the upstream's host] the SNI sent and
 * the name the certificate must carry (an IP literal: no SNI, the IP is checked); ca [the
 * system's store] PEM trust anchors; verify: check chain and name; cert: a client certificate.
 *
 * @param {unknown} value
 * @param {string} path
 * @returns {{ servername: string | null, ca: Buffer | null, verify: boolean, cert: NormalizedCert | null } | null}
 */
function optUpstreamTls(value, path) {
  if (value == null) return null;
  const obj = object(value, path, UPSTREAM_TLS_KEYS);
  const rawName = get(obj, 'servername');
  const servername = rawName == null ? null : normalizeHost(rawName, `${path}.servername`, undefined);
  const rawCa = get(obj, 'ca');
  return {
    servername,
    ca: rawCa == null ? null : pem(rawCa, `${path}.ca`, 'CERTIFICATE', 'certificate'),
    verify: optBoolean(get(obj, 'verify'), `${path}.verify`, true),
    cert: optCert(get(obj, 'cert'), `${path}.cert`),
  };
}

/** A route's or decision's TLS upstreams need termination, and are not yet combined with PROXY out. */
function checkUpstreamTls(upstreams, terminateTls, proxyProtocol, path) {
  const i = upstreams.findIndex((u) => u.kind === 'tcp' && u.tls !== null);
  if (i < 0) return;
  if (!terminateTls) throw configRangeError(`${path}.upstreams[${i}].tls needs ${path}.terminateTls (a passthrough route forwards the client's own TLS)`);
  if (proxyProtocol !== 'none') throw configRangeError(`${path}.proxyProtocol with a TLS upstream is not supported yet`);
}

function optMtls(value, path) {
  if (value == null) return null;
  const obj = object(value, path, MTLS_KEYS);
  return {
    clientCaCert: pem(get(obj, 'clientCaCert'), `${path}.clientCaCert`, 'CERTIFICATE', 'certificate'),
    requireClientCert: optBoolean(get(obj, 'requireClientCert'), `${path}.requireClientCert`, true),
  };
}

/**
 * @param {unknown} value An `alpn` list; undefined: ['http/1.1'].
 * @param {string} path Its path.
 * @returns {string[]} A new array.
 */
function normalizeAlpn(value, path) {
  if (value === undefined) return DEFAULTS.alpn.slice();
  checkArray(value, path, 0, LIMITS.maxAlpnProtocols);
  const out = [];
  for (let i = 0; i < value.length; i++) {
    const p = value[i];
    const at = `${path}[${i}]`;
    if (typeof p !== 'string') throw configTypeError(`${at} must be a string`);
    const bytes = Buffer.byteLength(p, 'utf8');
    if (bytes < 1 || bytes > LIMITS.maxAlpnLength || p.includes('\0')) {
      throw configRangeError(`${at} must be 1-${LIMITS.maxAlpnLength} bytes without NUL`);
    }
    if (out.includes(p)) throw configRangeError(`${at} '${p}' is listed twice`);
    out.push(p);
  }
  return out;
}

/* ------------------------------------------------------------------------------------------ *
 * Cross checks and merging.
 * ------------------------------------------------------------------------------------------ */

/** @param {NormalizedListener} l @returns {boolean} */
function isTlsListener(l) {
  return l.kind === 'tls';
}

/**
 * Routes are required while a tls listener exists; a terminating route needs a cert unless
 * every tls listener has a defaultCert.
 *
 * @param {NormalizedRoute[]} routes
 * @param {NormalizedListener[]} listeners
 */
function checkRoutesAgainstListeners(routes, listeners) {
  const tlsIndex = listeners.findIndex(isTlsListener);
  if (tlsIndex >= 0 && routes.length === 0) {
    throw configRangeError(`routes must not be empty: listeners[${tlsIndex}] is kind 'tls'`);
  }
  const noDefault = listeners.findIndex((l) => isTlsListener(l) && l.defaultCert === null);
  if (noDefault < 0) return;
  for (let i = 0; i < routes.length; i++) {
    if (routes[i].terminateTls && routes[i].cert === null) {
      throw configRangeError(`routes[${i}].cert is required: the route terminates TLS and listeners[${noDefault}] has no defaultCert`);
    }
  }
}

/** @param {NormalizedListener[]} listeners Two listeners may not share a host and a port. */
function checkDuplicateListeners(listeners) {
  const seen = new Map();
  for (let i = 0; i < listeners.length; i++) {
    const { host, port } = listeners[i];
    if (port === 0) continue;
    const key = `${host} ${port}`;
    const first = seen.get(key);
    if (first !== undefined) throw configRangeError(`listeners[${i}].port ${port} on '${host}' duplicates listeners[${first}]`);
    seen.set(key, i);
  }
}

/**
 * @param {NormalizedProtection} base The top-level protection.
 * @param {Partial<NormalizedProtection>} own A listener's own fields.
 * @returns {NormalizedProtection} A new object (arrays copied).
 */
function mergeProtection(base, own) {
  return copyProtection({ ...base, ...own });
}

/** @param {NormalizedProtection} p @returns {NormalizedProtection} A deep copy. */
function copyProtection(p) {
  return {
    rateLimit: p.rateLimit === null ? null : { ...p.rateLimit },
    sustained: p.sustained === null ? null : { ...p.sustained },
    penaltyBox: p.penaltyBox === null ? null : { ...p.penaltyBox },
    maxConcurrentPerIp: p.maxConcurrentPerIp,
    allowlist: p.allowlist.slice(),
    blocklist: p.blocklist.slice(),
    ja3Blocklist: p.ja3Blocklist.slice(),
    ja4Blocklist: p.ja4Blocklist.slice(),
    tlsHandshakeTimeoutMs: p.tlsHandshakeTimeoutMs,
    requireSni: p.requireSni,
    ipv6Prefix: p.ipv6Prefix,
    maxTrackedIps: p.maxTrackedIps,
  };
}

/**
 * @param {object} listener A normalised listener (new object).
 * @param {Partial<NormalizedProtection>} own Its own protection fields.
 * @returns {NormalizedListener} The same object with `_ownProtection` defined, non-enumerable.
 */
function withOwnProtection(listener, own) {
  Object.defineProperty(listener, '_ownProtection', { value: own, enumerable: false, writable: false, configurable: false });
  return /** @type {NormalizedListener} */ (listener);
}

/**
 * @param {NormalizedListener} l A current listener.
 * @param {NormalizedProtection} protection The next top-level protection.
 * @returns {NormalizedListener} A new listener with its protection merged again.
 */
function relistener(l, protection) {
  const own = /** @type {any} */ (l)._ownProtection;
  const connect = l.connect === null ? null : { ...l.connect };
  return withOwnProtection({ ...l, connect, scheduler: { ...l.scheduler }, protection: mergeProtection(protection, own) }, own);
}

/** @param {unknown} current Must look like normalizeConfig's output (a programming error else). */
function assertNormalized(current) {
  const ok = isObject(current) && Array.isArray(current.listeners) && Array.isArray(current.routes) &&
    isObject(current.protection) && isObject(current.scheduler) &&
    current.listeners.every((l) => isObject(l) && isObject(l._ownProtection));
  if (!ok) throw new TypeError('normalizeUpdate: current must be a config returned by normalizeConfig or normalizeUpdate');
}

/** @returns {number} os.availableParallelism(), clamped to 1-256. */
function defaultWorkerThreads() {
  const n = typeof os.availableParallelism === 'function' ? os.availableParallelism() : os.cpus().length;
  return Math.min(LIMITS.maxWorkerThreads, Math.max(1, n || 1));
}

/* ------------------------------------------------------------------------------------------ *
 * Finders for the not-supported-yet table.
 * ------------------------------------------------------------------------------------------ */

function inRoutes(c, key, pred) {
  const i = c.routes.findIndex(pred);
  return i < 0 ? null : `routes[${i}].${key}`;
}

function inListeners(c, key, pred) {
  const i = c.listeners.findIndex(pred);
  return i < 0 ? null : `listeners[${i}].${key}`;
}

/** Top-level protection first (the better path), then each listener's effective protection. */
function inProtection(c, key, pred) {
  if (pred(c.protection)) return `protection.${key}`;
  const i = c.listeners.findIndex((l) => pred(l.protection));
  return i < 0 ? null : `listeners[${i}].protection.${key}`;
}

/* ------------------------------------------------------------------------------------------ *
 * Names, addresses and fingerprints.
 * ------------------------------------------------------------------------------------------ */

/**
 * The host-name grammar is C's (src/lg_name.c), so that configuration accepts exactly what the
 * wire parsers can match: 'sni' (LDH, not every label numeric) for route patterns, 'host' (LDH
 * and '_', last label not numeric) for names to bind, dial or allow.
 *
 * @param {string} name The name as given.
 * @param {'sni' | 'host'} kind The grammar.
 * @returns {{ name: string | null, reason: string | null }} The name lower-cased without a
 *   trailing dot, or null and why ('char', 'numeric', 'hyphen', 'label', 'long', 'empty').
 */
function nameNorm(name, kind) {
  return binding.nameNorm(name, kind);
}

/**
 * A host to bind or dial: an IP literal ('[...]' stripped from IPv6; zone ids kept) or a
 * hostname (lower-cased, one trailing dot dropped). A name whose last label is numeric
 * ('1.2.3', '0x7f.1') is refused: the resolver would read it as a non-canonical IPv4 address.
 *
 * @param {unknown} value The option.
 * @param {string} path Its path.
 * @param {string | undefined} dflt Used when value is undefined.
 * @returns {string} The host.
 */
function normalizeHost(value, path, dflt) {
  if (value === undefined && dflt !== undefined) return dflt;
  if (typeof value !== 'string') throw configTypeError(`${path} must be a string`);
  const bad = () => configRangeError(`${path} must be an IP address or a hostname`);
  let h = value;
  if (h.startsWith('[') && h.endsWith(']')) {
    h = h.slice(1, -1);
    if (net.isIPv6(h)) return lowerIp(h);
    throw bad();
  }
  if (net.isIP(h)) return lowerIp(h);
  const { name } = nameNorm(h, 'host');
  if (name === null) throw bad();
  return name;
}

/** Lower-case an IP literal but not an IPv6 zone id ('fe80::1%eth0'): interface names are case-sensitive. */
function lowerIp(ip) {
  const pct = ip.indexOf('%');
  return pct < 0 ? ip.toLowerCase() : ip.slice(0, pct).toLowerCase() + ip.slice(pct);
}

/**
 * A route's SNI pattern: '' (default route), an exact name or '*.suffix'.
 *
 * @param {unknown} value The option; undefined: ''.
 * @param {string} path Its path.
 * @returns {string} Lower-cased, one trailing dot dropped.
 */
function normalizeSni(value, path) {
  if (value === undefined) return '';
  if (typeof value !== 'string') throw configTypeError(`${path} must be a string`);
  if (value === '') return '';
  // eslint-disable-next-line no-control-regex
  if (/[^\x00-\x7f]/.test(value)) throw configRangeError(`${path} must be ASCII (use the punycode 'xn--' form of an international name)`);
  const wildcard = value.startsWith('*.');
  const { name, reason } = nameNorm(wildcard ? value.slice(2) : value, 'sni');
  // A wildcard's suffix may be all numeric ('*.10.20'): the names it matches are not.
  if (name === null && !(wildcard && reason === 'numeric')) {
    // The ClientHello parser (src/lg_hello.c) applies this grammar to every SNI (LDH labels, no
    // IPv4 literal, RFC 6066 §3), so a route outside it could never match: refuse it here.
    if (reason === 'char' && value.includes('_') && nameNorm(value.replace(/_/g, 'u').replace(/^\*\./, ''), 'sni').name !== null) {
      throw configRangeError(`${path} must use letters, digits and '-' only (an SNI with '_' is refused by the ClientHello parser)`);
    }
    if (reason === 'numeric') {
      throw configRangeError(`${path} must not be an IP address (clients never send one as SNI, RFC 6066 §3)`);
    }
    throw configRangeError(`${path} must be a hostname, '*.suffix' or '' (the default route)`);
  }
  const suffix = name !== null ? name : value.slice(2).toLowerCase().replace(/\.$/, '');
  return wildcard ? `*.${suffix}` : suffix;
}

/**
 * An allowDomains entry.
 *
 * @param {unknown} value The entry.
 * @param {string} path Its path.
 * @returns {string} Lower-cased, leading '*.' or '.' and one trailing dot removed.
 */
function normalizeDomain(value, path) {
  if (typeof value !== 'string') throw configTypeError(`${path} must be a string`);
  let s = value.toLowerCase();
  if (s.startsWith('*.')) s = s.slice(2);
  else if (s.startsWith('.')) s = s.slice(1);
  if (s.endsWith('.')) s = s.slice(0, -1);
  if (net.isIP(s) || net.isIP(value.replace(/^\[|\]$/g, ''))) throw configRangeError(`${path} must be a domain name (use allowCidrs for addresses)`);
  const { name } = nameNorm(s, 'host');
  if (name === null) throw configRangeError(`${path} must be a domain name`);
  return name;
}

/**
 * @param {unknown} value A JA3 hash.
 * @param {string} path Its path.
 * @returns {string} 32 lower-case hex digits.
 */
function normalizeJa3(value, path) {
  if (typeof value !== 'string') throw configTypeError(`${path} must be a string`);
  const s = value.toLowerCase();
  if (!/^[0-9a-f]{32}$/.test(s)) throw configRangeError(`${path} must be a JA3 hash (32 hex digits)`);
  return s;
}

/**
 * JA4 (FoxIO): a_b_c where a = protocol, TLS version (2), SNI (d|i), cipher count (2 digits),
 * extension count (2 digits), ALPN (2 alphanumerics); b and c = 12 hex digits each. Only what
 * the engine can compute (src/lg_ja.c): protocol 't' (legato sees TLS over TCP, so a QUIC 'q' or
 * DTLS 'd' fingerprint could never match and would be an entry accepted and ignored), and the
 * versions of its table. A list copied from a feed that mixes protocols is refused, naming the
 * entry, rather than half-applied.
 */
const JA4_RE = /^t(?:1[0-3]|s[23]|d[1-3]|00)[di][0-9]{2}[0-9]{2}[0-9a-z]{2}_[0-9a-f]{12}_[0-9a-f]{12}$/;

/**
 * @param {unknown} value A JA4 fingerprint.
 * @param {string} path Its path.
 * @returns {string} Lower-cased.
 */
function normalizeJa4(value, path) {
  if (typeof value !== 'string') throw configTypeError(`${path} must be a string`);
  const s = value.toLowerCase();
  if (/^[qd]/.test(s) && JA4_RE.test(`t${s.slice(1)}`)) {
    throw configRangeError(`${path} is a ${s[0] === 'q' ? 'QUIC' : 'DTLS'} JA4 fingerprint ('${s[0]}' prefix): legato sees TLS over TCP only ('t'), so it could never match`);
  }
  if (!JA4_RE.test(s)) throw configRangeError(`${path} must be a JA4 fingerprint like 't13d1516h2_8daaf6152771_e5627efa2ab1' (protocol 't', version 13, 12, 11, 10, s3, s2, d1, d2, d3 or 00)`);
  return s;
}

/**
 * @param {unknown} value A list of IPs / CIDRs.
 * @param {string} path Its path.
 * @returns {string[]} Normalised CIDRs, de-duplicated.
 */
function cidrList(value, path, max = LIMITS.maxListEntries) {
  return stringList(value, path, normalizeCidr, max);
}

/**
 * @param {unknown} value An array (at most LIMITS.maxListEntries).
 * @param {string} path Its path.
 * @param {(v: unknown, path: string) => string} each Normaliser of one entry.
 * @returns {string[]} Normalised entries, de-duplicated (first kept).
 */
function stringList(value, path, each, max = LIMITS.maxListEntries) {
  checkArray(value, path, 0, max);
  const out = new Set();
  for (let i = 0; i < value.length; i++) out.add(each(value[i], `${path}[${i}]`));
  return [...out];
}

/**
 * An IP address or CIDR block. IPv4 'a.b.c.d[/n]', IPv6 'x::y[/n]' (no zone id). Normalised:
 * prefix added when missing (/32, /128), IPv6 in RFC 5952 form. Host bits set below the
 * prefix are an error (the message suggests the network): '10.1.2.3/8' is almost always a
 * typo for something else, and masking it silently would hide that.
 *
 * @param {unknown} value The entry.
 * @param {string} path Its path.
 * @returns {string} 'address/prefix'.
 */
function normalizeCidr(value, path) {
  if (typeof value !== 'string') throw configTypeError(`${path} must be a string`);
  const bad = () => configRangeError(`${path} must be an IP address or CIDR such as '10.0.0.0/8' or 'fc00::/7'`);
  const slash = value.indexOf('/');
  const addrText = slash < 0 ? value : value.slice(0, slash);
  const ip = parseIp(addrText);
  if (ip === null) throw bad();
  const bits = ip.bytes.length * 8;
  let prefix = bits;
  if (slash >= 0) {
    const p = value.slice(slash + 1);
    if (!/^(?:0|[1-9][0-9]{0,2})$/.test(p) || Number(p) > bits) throw bad();
    prefix = Number(p);
  }
  const masked = maskBytes(ip.bytes, prefix);
  const network = `${formatIp(masked)}/${prefix}`;
  if (masked.some((b, i) => b !== ip.bytes[i])) throw configRangeError(`${path} has host bits set (did you mean '${network}'?)`);
  return network;
}

/**
 * @param {string} text An IP literal.
 * @returns {{ bytes: number[] } | null} 4 or 16 bytes; null if not an IP (or has a zone id).
 */
function parseIp(text) {
  const v = net.isIP(text);
  if (v === 4) return { bytes: text.split('.').map(Number) };
  if (v !== 6 || text.includes('%')) return null;
  let s = text.toLowerCase();
  const lastColon = s.lastIndexOf(':');
  if (s.includes('.', lastColon)) {
    const q = s.slice(lastColon + 1).split('.').map(Number);
    s = `${s.slice(0, lastColon + 1)}${((q[0] << 8) | q[1]).toString(16)}:${((q[2] << 8) | q[3]).toString(16)}`;
  }
  let groups;
  const dbl = s.indexOf('::');
  if (dbl < 0) {
    groups = s.split(':');
  } else {
    const head = s.slice(0, dbl) ? s.slice(0, dbl).split(':') : [];
    const tail = s.slice(dbl + 2) ? s.slice(dbl + 2).split(':') : [];
    groups = [...head, ...new Array(8 - head.length - tail.length).fill('0'), ...tail];
  }
  const bytes = [];
  for (const g of groups) {
    const n = parseInt(g, 16);
    bytes.push(n >> 8, n & 0xff);
  }
  return { bytes };
}

/**
 * @param {number[]} bytes 4 or 16 bytes.
 * @param {number} prefix Bits to keep.
 * @returns {number[]} A new array with the bits after prefix cleared.
 */
function maskBytes(bytes, prefix) {
  return bytes.map((b, i) => {
    const keep = Math.max(0, Math.min(8, prefix - i * 8));
    return b & ((0xff << (8 - keep)) & 0xff);
  });
}

/**
 * @param {number[]} bytes 4 or 16 bytes.
 * @returns {string} Dotted IPv4, or IPv6 in RFC 5952 form (IPv4-mapped as '::ffff:a.b.c.d').
 */
function formatIp(bytes) {
  if (bytes.length === 4) return bytes.join('.');
  const g = [];
  for (let i = 0; i < 16; i += 2) g.push((bytes[i] << 8) | bytes[i + 1]);
  if (g.slice(0, 5).every((x) => x === 0) && g[5] === 0xffff) return `::ffff:${bytes.slice(12).join('.')}`;
  let best = -1;
  let bestLen = 1; // RFC 5952 §4.2.2: a single zero group is not compressed
  for (let i = 0; i < 8;) {
    if (g[i] !== 0) { i++; continue; }
    let j = i;
    while (j < 8 && g[j] === 0) j++;
    if (j - i > bestLen) { best = i; bestLen = j - i; }
    i = j;
  }
  const hex = g.map((x) => x.toString(16));
  if (best < 0) return hex.join(':');
  return `${hex.slice(0, best).join(':')}::${hex.slice(best + bestLen).join(':')}`;
}

/* ------------------------------------------------------------------------------------------ *
 * Primitive checks. Each throws a configTypeError / configRangeError naming the path.
 * ------------------------------------------------------------------------------------------ */

/** @param {object} obj @param {string} key @returns {any} An own property, else undefined. */
function get(obj, key) {
  return obj !== undefined && Object.prototype.hasOwnProperty.call(obj, key) ? obj[key] : undefined;
}

/** @param {unknown} v @returns {v is Record<string, any>} A non-null, non-array, non-binary object. */
function isObject(v) {
  return typeof v === 'object' && v !== null && !Array.isArray(v) && !ArrayBuffer.isView(v) &&
    Object.prototype.toString.call(v) === '[object Object]';
}

/** Every own key of obj must be in allowed. */
function checkKeys(obj, path, allowed) {
  for (const key of Object.keys(obj)) {
    if (!allowed.includes(key)) {
      const hint = closest(key, allowed);
      const where = path ? `${path}: ` : '';
      throw configTypeError(`${where}unknown option '${clip(key)}'${hint ? ` (did you mean '${hint}'?)` : ''}`);
    }
  }
}

/** A required object with only the allowed keys. */
function object(value, path, allowed) {
  if (!isObject(value)) throw configTypeError(`${path} must be an object`);
  checkKeys(value, path, allowed);
  return value;
}

/** An optional object: undefined or null → undefined (all defaults). */
function optObject(value, path, allowed) {
  if (value == null) return undefined;
  return object(value, path, allowed);
}

/** An array of min..max entries. */
function checkArray(value, path, min, max) {
  if (!Array.isArray(value)) throw configTypeError(`${path} must be an array`);
  if (value.length < min) throw configRangeError(`${path} must not be empty`);
  if (value.length > max) throw configRangeError(`${path} must have at most ${max} entries`);
  return value;
}

function rangeText(min, max) {
  return max >= Number.MAX_SAFE_INTEGER ? `an integer >= ${min}` : `an integer ${min}-${max}`;
}

/** An integer in [min, max]; -0 becomes 0. */
function integer(value, path, min, max) {
  if (typeof value !== 'number') throw configTypeError(`${path} must be ${rangeText(min, max)}`);
  if (!Number.isInteger(value) || value < min || value > max) throw configRangeError(`${path} must be ${rangeText(min, max)}`);
  return value === 0 ? 0 : value;
}

function optInteger(value, path, min, max, dflt) {
  return value === undefined ? dflt : integer(value, path, min, max);
}

/** 'auto' is handled by the caller; this takes the integer form of an 'auto'|integer option. */
function integerOrAuto(value, path, max) {
  const text = `${path} must be 'auto' or an integer 1-${max}`;
  if (typeof value === 'string') throw configRangeError(text);
  if (typeof value !== 'number') throw configTypeError(text);
  if (!Number.isInteger(value) || value < 1 || value > max) throw configRangeError(text);
  return value;
}

/** A finite number >= min (and <= LIMITS.maxRatePerSecond); -0 becomes 0. */
function numberAtLeast(value, path, min) {
  const text = `${path} must be a number ${min}-${LIMITS.maxRatePerSecond}`;
  if (typeof value !== 'number') throw configTypeError(text);
  if (!Number.isFinite(value) || value < min || value > LIMITS.maxRatePerSecond) throw configRangeError(text);
  return value === 0 ? 0 : value;
}

/** A finite number > 0 (and <= LIMITS.maxRatePerSecond). */
function positiveNumber(value, path) {
  const text = `${path} must be a number > 0 (at most ${LIMITS.maxRatePerSecond})`;
  if (typeof value !== 'number') throw configTypeError(text);
  if (!Number.isFinite(value) || value <= 0 || value > LIMITS.maxRatePerSecond) throw configRangeError(text);
  return value;
}

function boolean(value, path) {
  if (typeof value !== 'boolean') throw configTypeError(`${path} must be a boolean`);
  return value;
}

function optBoolean(value, path, dflt) {
  return value === undefined ? dflt : boolean(value, path);
}

/** One of a few strings; dflt when undefined (undefined dflt: required). */
function oneOf(value, path, allowed, dflt) {
  if (value === undefined && dflt !== undefined) return dflt;
  const list = allowed.map((a) => `'${a}'`);
  const text = `${path} must be ${list.length === 2 ? list.join(' or ') : `one of ${list.join(', ')}`}`;
  if (typeof value !== 'string') throw configTypeError(text);
  if (!allowed.includes(value)) throw configRangeError(text);
  return value;
}

/**
 * PEM data as a Buffer copy.
 *
 * @param {unknown} value A PEM string, Buffer or other byte view.
 * @param {string} path Its path.
 * @param {string} label 'CERTIFICATE' or 'PRIVATE KEY': the armour must end with `${label}-----`.
 * @param {string} what For the message.
 * @returns {Buffer} A new Buffer.
 */
function pem(value, path, label, what) {
  if (value === undefined) throw configTypeError(`${path} is required`);
  let buf;
  if (typeof value === 'string') buf = Buffer.from(value, 'utf8');
  else if (ArrayBuffer.isView(value) && !(value instanceof DataView)) buf = Buffer.from(new Uint8Array(value.buffer, value.byteOffset, value.byteLength));
  else throw configTypeError(`${path} must be a PEM string or Buffer`);
  if (!buf.includes('-----BEGIN') || !buf.includes(`${label}-----`)) {
    throw configRangeError(`${path} must be a PEM-encoded ${what} ('-----BEGIN ...${label}-----' not found)`);
  }
  return buf;
}

/** Shorten user text quoted in a message. */
function clip(s) {
  return s.length > 64 ? `${s.slice(0, 61)}...` : s;
}

/** The allowed key closest to a mistyped one (edit distance <= 2), or null. */
function closest(key, allowed) {
  let best = null;
  let bestD = 3;
  const k = key.toLowerCase();
  for (const a of allowed) {
    const d = editDistance(k, a.toLowerCase(), bestD);
    if (d < bestD) { best = a; bestD = d; }
  }
  return best;
}

/** Levenshtein distance, giving up (returning limit) once it reaches limit. */
function editDistance(a, b, limit) {
  if (Math.abs(a.length - b.length) >= limit) return limit;
  let prev = Array.from({ length: b.length + 1 }, (_, j) => j);
  for (let i = 1; i <= a.length; i++) {
    const cur = [i];
    let rowMin = i;
    for (let j = 1; j <= b.length; j++) {
      cur[j] = Math.min(prev[j] + 1, cur[j - 1] + 1, prev[j - 1] + (a[i - 1] === b[j - 1] ? 0 : 1));
      rowMin = Math.min(rowMin, cur[j]);
    }
    if (rowMin >= limit) return limit;
    prev = cur;
  }
  return Math.min(prev[b.length], limit);
}

module.exports = {
  normalizeConfig,
  normalizeCidr,
  normalizeUpdate,
  normalizeDecision,
  assertSupported,
  NOT_SUPPORTED_YET,
  LIMITS,
  DEFAULTS,
  DEFAULT_DENY_CIDRS,
};
