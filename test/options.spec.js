'use strict';
// No option is accepted and ignored. This walks every property of every configuration
// interface in index.d.ts (everything reachable from ProxyConfig, ConfigUpdate and Decision)
// and requires, for each, either
//  - the test that shows its effect: a spec file and the title (or a distinctive part of it) of
//    an `it(...)` in that file, which must exist; or
//  - that the engine refuses it: a config using it throws "<path> is not supported yet".
// A new option in index.d.ts without a test of its effect fails here.

const assert = require('assert');
const fs = require('fs');
const path = require('path');
const { Proxy } = require('..');

const ROOT = path.join(__dirname, '..');

/** interface name → { props: [names], extends: [names] } from index.d.ts. */
function interfaces() {
  const text = fs.readFileSync(path.join(ROOT, 'index.d.ts'), 'utf8');
  const out = new Map();
  const re = /(?:export )?interface (\w+)(?: extends ([\w, ]+))? \{([\s\S]*?)\n\}/g;
  let m;
  while ((m = re.exec(text)) !== null) {
    const props = [...m[3].matchAll(/^ {2}(\w+)\??:/gm)].map((x) => x[1]);
    out.set(m[1], { props, extends: m[2] ? m[2].split(',').map((s) => s.trim()) : [], body: m[3] });
  }
  const types = new Map();
  for (const t of text.matchAll(/export type (\w+) = ([^;]+);/g)) types.set(t[1], t[2]);
  return { ifaces: out, types };
}

/** The configuration interfaces: those reachable from the roots through property types. */
function configInterfaces() {
  const { ifaces, types } = interfaces();
  const seen = new Set();
  const todo = ['ProxyConfig', 'ConfigUpdate', 'Decision'];
  while (todo.length > 0) {
    const name = todo.pop();
    if (seen.has(name) || !ifaces.has(name)) continue;
    seen.add(name);
    const i = ifaces.get(name);
    todo.push(...i.extends);
    const refs = [...i.body.matchAll(/\?\s*:\s*([^;]+);|:\s*([^;]+);/g)].map((x) => x[1] || x[2]).join(' ');
    for (const word of refs.match(/\b[A-Z]\w+\b/g) || []) {
      if (ifaces.has(word)) todo.push(word);
      if (types.has(word)) for (const w of types.get(word).match(/\b[A-Z]\w+\b/g) || []) todo.push(w);
    }
  }
  return [...seen].sort().map((name) => [name, ifaces.get(name).props]);
}

// interface.prop → [spec file, part of an it() title in it]
const EFFECT = {
  'CertOptions.certChain': ['tls.spec.js', 'leaf, chain verified against the root only'],
  'CertOptions.privateKey': ['tls.spec.js', 'leaf, chain verified against the root only'],
  'MtlsOptions.clientCaCert': ['tls-mtls.spec.js', 'serves a trusted client certificate'],
  'MtlsOptions.requireClientCert': ['tls-mtls.spec.js', 'accepts no certificate, verifies a presented one'],
  'RateLimitOptions.connectionsPerSecond': ['protection.spec.js', 'a 10/s bucket refills at 10/s'],
  'RateLimitOptions.burst': ['protection.spec.js', 'rate_limited per second: a burst of 3'],
  'SustainedOptions.connectionsPerMinute': ['protection.spec.js', 'the sustained bucket refills at its rate'],
  'SustainedOptions.burst': ['protection.spec.js', 'rate_limited sustained per minute'],
  'PenaltyBoxOptions.durationMs': ['protection.spec.js', 'the penalty box is set, extended while boxed, and expires'],
  'ProtectionOptions.rateLimit': ['protection.spec.js', 'rate_limited per second'],
  'ProtectionOptions.sustained': ['protection.spec.js', 'rate_limited sustained per minute'],
  'ProtectionOptions.penaltyBox': ['protection.spec.js', 'penalty_boxed: exhausting the bucket boxes the source'],
  'ProtectionOptions.maxConcurrentPerIp': ['protection.spec.js', 'too_many_connections: maxConcurrentPerIp 2'],
  'ProtectionOptions.allowlist': ['protection.spec.js', 'the allowlist bypasses every check'],
  'ProtectionOptions.blocklist': ['protection.spec.js', 'cidr_blocked: a blocklisted source is closed at accept'],
  'ProtectionOptions.ja3Blocklist': ['protection.spec.js', 'blocked by its JA3, then by its JA4'],
  'ProtectionOptions.ja4Blocklist': ['protection.spec.js', 'blocked by its JA3, then by its JA4'],
  'ProtectionOptions.tlsHandshakeTimeoutMs': ['hello.spec.js', 'closes a connection that sends nothing at tlsHandshakeTimeoutMs'],
  'ProtectionOptions.requireSni': ['protection.spec.js', 'no_sni: raw, node and openssl hellos without SNI are refused'],
  'ProtectionOptions.ipv6Prefix': ['protection.spec.js', 'ipv6Prefix 64 makes a /64 one source'],
  'ProtectionOptions.maxTrackedIps': ['protection.spec.js', 'eviction keeps the table bounded'],
  'ConnectOptions.allowPorts': ['cli.spec.js', '--allow-port, --no-default-allow-port'],
  'ConnectOptions.defaultAllowPort': ['connect.spec.js', '443 is allowed by default; defaultAllowPort: false drops it'],
  'ConnectOptions.denyCidrs': ['connect.spec.js', 'refuses every default deny range'],
  'ConnectOptions.allowCidrs': ['connect.spec.js', 'allowCidrs makes exceptions'],
  'ConnectOptions.allowDomains': ['connect.spec.js', 'allowDomains: only listed domains'],
  'ConnectOptions.connectTimeoutMs': ['connect.spec.js', '504: the dial deadline (connectTimeoutMs)'],
  'ConnectOptions.headTimeoutMs': ['connect.spec.js', '408 at connect.headTimeoutMs'],
  'ConnectOptions.auth': ['connect-auth.spec.js', 'curl -x http://user:pass@'],
  'ConnectAuthOptions.realm': ['connect-auth.spec.js', 'a realm is sent as configured'],
  'ConnectAuthOptions.users': ['connect-auth.spec.js', 'curl -x http://user:pass@'],
  'ConnectAuthOptions.failureLimit': ['connect-auth.spec.js', 'after `burst` wrong passwords: 429 without verifying'],
  'ConnectAuthUser.name': ['connect-auth.spec.js', 'curl --proxy-user with a password holding colons'],
  'ConnectAuthUser.hash': ['connect-auth.spec.js', 'curl with a wrong password fails with 407'],
  'ListenerCommon.port': ['cli.spec.js', 'environment variables configure the proxy'],
  'ListenerCommon.maxConnections': ['protection.spec.js', 'max_connections: the listener at maxConnections refuses the next one'],
  'ListenerCommon.idleTimeoutMs': ['relay.spec.js', 'applies each listener\'s own idleTimeoutMs'],
  'ListenerCommon.acceptProxyProtocol': ['proxy-protocol.spec.js', 'refuses the other version on a one-version listener'],
  'ListenerCommon.trustedProxies': ['proxy-protocol.spec.js', 'refuses a header from an untrusted source at accept'],
  'ListenerCommon.reusePort': ['ports.spec.js', "with reusePort: 'share' on both, both accept"],
  'TlsListenerOptions.kind': ['tls.spec.js', 'leaf, chain verified against the root only'],
  'TlsListenerOptions.host': ['relay.spec.js', 'relays to an IPv6 loopback upstream and listens on ::1'],
  'TlsListenerOptions.defaultCert': ['tls.spec.js', 'falls back to the listener defaultCert'],
  'TlsListenerOptions.mtls': ['tls-mtls.spec.js', 'applies the listener\'s mtls to routes without their own'],
  'TlsListenerOptions.protection': ['protection.spec.js', 'every reason is present, zeros included, per listener'],
  'TlsListenerOptions.connect': ['config.spec.js', 'connect'],
  'ConnectListenerOptions.kind': ['connect.spec.js', '200: the exact "Connection Established" reply'],
  'ConnectListenerOptions.host': ['cli.spec.js', 'environment variables configure the proxy'],
  'ConnectListenerOptions.protection': ['protection.spec.js', 'blocklist → 403, rate and concurrency → 429'],
  'ConnectListenerOptions.connect': ['connect.spec.js', '200: the exact "Connection Established" reply'],
  'ConnectListenerOptions.defaultCert': ['config.spec.js', 'connect'],
  'ConnectListenerOptions.mtls': ['config.spec.js', 'connect'],
  'TcpUpstream.kind': ['upstreams.spec.js', 'leastConn (the default) shares 3,000 connections'],
  'TcpUpstream.host': ['upstreams.spec.js', 'an upstream host name is looked up again after resolveIntervalMs'],
  'TcpUpstream.port': ['upstreams.spec.js', 'leastConn (the default) shares 3,000 connections'],
  'TcpUpstream.weight': ['upstreams.spec.js', 'roundRobin with weights 1, 2, 3'],
  'TcpUpstream.tls': ['upstreams.spec.js', 'verifies the upstream against a local CA'],
  'UpstreamTlsOptions.servername': ['upstreams.spec.js', 'wrong CA, wrong name'],
  'UpstreamTlsOptions.ca': ['upstreams.spec.js', 'verifies the upstream against a local CA'],
  'UpstreamTlsOptions.verify': ['upstreams.spec.js', 'verify: false accepts any certificate'],
  'UpstreamTlsOptions.cert': ['upstreams.spec.js', 'a client certificate to a TLS upstream that requires one'],
  'UdsUpstream.kind': ['relay.spec.js', 'relays to a Unix-socket upstream'],
  'UdsUpstream.path': ['relay.spec.js', 'relays to a Unix-socket upstream'],
  'UdsUpstream.weight': ['upstreams.spec.js', 'leastConn with weights 1, 1, 2'],
  'UdsUpstream.ipAffinity': ['upstreams.spec.js', 'ipAffinity pins a client to its upstream'],
  'UdsUpstream.ipAffinityTtlMs': ['upstreams.spec.js', 'ipAffinityTtlMs: a pin expires'],
  'UdsUpstream.pid': ['upstreams.spec.js', 'leastConn sends connections to the upstream whose thread is idle'],
  'UdsUpstream.tid': ['upstreams.spec.js', 'leastConn sends connections to the upstream whose thread is idle'],
  'DialOptions.balance': ['upstreams.spec.js', 'random2 uses all three upstreams'],
  'DialOptions.connectTimeoutMs': ['upstreams.spec.js', 'a blackholed upstream costs a client one share of connectTimeoutMs'],
  'DialOptions.retries': ['upstreams.spec.js', 'retries 0 gives up after one attempt'],
  'DialOptions.maxFails': ['upstreams.spec.js', 'a refusing upstream costs no client connection; it is ejected after maxFails'],
  'DialOptions.failTimeoutMs': ['upstreams.spec.js', 'an ejected upstream is probed by one connection after failTimeoutMs'],
  'DialOptions.proxyProtocol': ['upstreams.spec.js', 'v1 on a passthrough route: the header'],
  'DialOptions.forwardFingerprint': ['upstreams.spec.js', 'v2 on a terminated route: addresses and TLVs'],
  'RouteOptions.sni': ['passthrough.spec.js', ''],
  'RouteOptions.upstreams': ['upstreams.spec.js', 'leastConn (the default) shares 3,000 connections'],
  'RouteOptions.terminateTls': ['tls.spec.js', 'leaf, chain verified against the root only'],
  'RouteOptions.cert': ['tls.spec.js', 'uses a wildcard route\'s own certificate'],
  'RouteOptions.mtls': ['tls-mtls.spec.js', 'a route\'s mtls wins'],
  'RouteOptions.alpn': ['tls.spec.js', 'selects by the route\'s list (server preference)'],
  'RouteOptions.suspended': ['suspend.spec.js', 'carries id, sni, peer, listener, ALPN and JA3/JA4'],
  'RouteOptions.suspendTimeoutMs': ['suspend.spec.js', 'closes the connection after suspendTimeoutMs'],
  'RouteOptions.maxConnectionsPerSecond': ['protection.spec.js', 'route_rate_limited: a route at maxConnectionsPerSecond'],
  'RouteOptions.burst': ['protection.spec.js', 'route_rate_limited: a route at maxConnectionsPerSecond'],
  'RouteOptions.metricsGroup': ['upstreams.spec.js', 'routes with one metricsGroup share their figures'],
  'SchedulerOptions.kind': ['relay.spec.js', 'moves 20 MiB each way byte-exact while 50 other connections exchange data (scheduler ${kind})'],
  'SchedulerOptions.quantum': ['relay.spec.js', 'honours a small readBufferSize and a fixed quantum'],
  'SchedulerOptions.rate': ['pacing.spec.js', 'scheduler.rate holds the aggregate rate'],
  'SchedulerOptions.burst': ['pacing.spec.js', 'per-interval bytes stay under rate·t + burst'],
  'SchedulerOptions.flowRate': ['pacing.spec.js', 'scheduler.flowRate caps each flow'],
  'SchedulerOptions.maxQueuedBytesPerFlow': ['relay.spec.js', 'keeps relaying a slow-reading client without losing bytes (DRR, small watermark)'],
  'FlowSchedulerOptions.weight': ['weights.spec.js', 'routes of weights 1 and 3 on one worker get 1:3 of the bytes'],
  'FlowSchedulerOptions.flowRate': ['pacing.spec.js', 'scheduler.flowRate per listener and per route'],
  'RouteOptions.scheduler': ['weights.spec.js', 'routes of weights 1 and 3 on one worker get 1:3 of the bytes'],
  'ListenerCommon.scheduler': ['weights.spec.js', 'listeners of weights 1 and 3 on one worker get 1:3 of the bytes'],
  'KeepaliveOptions.idleMs': ['upstreams.spec.js', 'tcpKeepalive applies to client and upstream sockets'],
  'KeepaliveOptions.intervalMs': ['upstreams.spec.js', 'tcpKeepalive applies to client and upstream sockets'],
  'KeepaliveOptions.count': ['upstreams.spec.js', 'tcpKeepalive applies to client and upstream sockets'],
  'ProxyConfig.listeners': ['relay.spec.js', 'applies each listener\'s own idleTimeoutMs'],
  'ProxyConfig.routes': ['passthrough.spec.js', ''],
  'ProxyConfig.workerThreads': ['cli.spec.js', '--workers sets the worker threads'],
  'ProxyConfig.workerPriority': ['worker-priority.spec.js', "'realtime' runs every worker thread SCHED_FIFO at priority 1"],
  'ProxyConfig.readBufferSize': ['relay.spec.js', 'honours a small readBufferSize'],
  'ProxyConfig.scheduler': ['relay.spec.js', 'keeps relaying a slow-reading client'],
  'ProxyConfig.protection': ['protection.spec.js', 'cidr_blocked: a blocklisted source is closed at accept'],
  'ProxyConfig.tcpKeepalive': ['upstreams.spec.js', 'tcpKeepalive applies to client and upstream sockets; null switches it off'],
  'ProxyConfig.halfCloseTimeoutMs': ['upstreams.spec.js', 'halfCloseTimeoutMs closes a client that keeps its half open'],
  'ProxyConfig.resolveIntervalMs': ['upstreams.spec.js', 'an upstream host name is looked up again after resolveIntervalMs'],
  'ConfigUpdate.routes': ['hotswap.spec.js', '1,000 updates while 50 clients loop'],
  'ConfigUpdate.protection': ['protection.spec.js', 'adds and removes a blocklist and a rate limit'],
  'Decision.upstreams': ['suspend.spec.js', 'carries id, sni, peer, listener, ALPN and JA3/JA4'],
  'Decision.terminateTls': ['suspend.spec.js', 'terminates TLS with a certificate given only in the decision'],
  'Decision.cert': ['suspend.spec.js', 'terminates TLS with a certificate given only in the decision'],
  'Decision.mtls': ['suspend.spec.js', 'applies the decision\'s mTLS'],
  'Decision.alpn': ['suspend.spec.js', 'terminates TLS with a certificate given only in the decision'],
  'Decision.balance': ['upstreams.spec.js', 'a decision carries its own balancing and PROXY protocol'],
  'Decision.proxyProtocol': ['upstreams.spec.js', 'a decision carries its own balancing and PROXY protocol'],
};

// interface.prop → a config that uses it (the engine must refuse it as not supported yet).
// Empty today: every option in index.d.ts is implemented.
const REFUSED = {};

/** The titles of a spec file's it() calls (source text: template literals kept as written). */
const titleCache = new Map();
function titles(file) {
  if (!titleCache.has(file)) {
    const text = fs.readFileSync(path.join(__dirname, file), 'utf8');
    titleCache.set(file, [...text.matchAll(/\bit\((['`"])((?:\\.|(?!\1).)*)\1/g)].map((m) => m[2].replace(/\\(['"])/g, '$1')));
  }
  return titleCache.get(file);
}

describe('every option in index.d.ts has an effect or is refused', () => {
  const all = configInterfaces();

  it('finds the configuration interfaces', () => {
    const names = all.map(([n]) => n);
    for (const n of ['ProxyConfig', 'RouteOptions', 'DialOptions', 'TcpUpstream', 'UdsUpstream', 'ProtectionOptions', 'ConnectOptions', 'Decision']) {
      assert.ok(names.includes(n), `${n} not found among ${names.join(', ')}`);
    }
  });

  for (const [iface, props] of all) {
    for (const prop of props) {
      const key = `${iface}.${prop}`;
      it(key, function () {
        if (REFUSED[key]) {
          assert.throws(() => new Proxy(REFUSED[key]), (e) => e.code === 'ERR_LEGATO_CONFIG' && /is not supported yet/.test(e.message),
            `${key} is listed as refused, but the engine accepted it`);
          return;
        }
        const effect = EFFECT[key];
        assert.ok(effect, `${key}: no test shows its effect (add it to EFFECT in test/options.spec.js) and it is not refused`);
        const [file, part] = effect;
        assert.ok(fs.existsSync(path.join(__dirname, file)), `${key}: ${file} does not exist`);
        const found = titles(file).some((t) => t.includes(part));
        assert.ok(found, `${key}: no it() in ${file} has a title containing "${part}"`);
      });
    }
  }
});
