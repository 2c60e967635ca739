'use strict';

// Tests of lib/config.js: defaults, normalisation, every error path, updateConfig and
// resolveConnection validation, and the not-supported-yet table. Pure JS: no engine needed.

const assert = require('node:assert/strict');
const os = require('node:os');
const {
  normalizeConfig,
  normalizeUpdate,
  normalizeDecision,
  assertSupported,
  NOT_SUPPORTED_YET,
  DEFAULT_DENY_CIDRS,
} = require('../lib/config');
const { isConfigError } = require('../lib/errors');

const CERT = '-----BEGIN CERTIFICATE-----\nMIIB\n-----END CERTIFICATE-----\n';
const KEY = '-----BEGIN PRIVATE KEY-----\nMIIE\n-----END PRIVATE KEY-----\n';
const PAIR = () => ({ certChain: CERT, privateKey: KEY });
const TCP = () => ({ kind: 'tcp', host: '127.0.0.1', port: 8080 });
const JA4 = 't13d1516h2_8daaf6152771_e5627efa2ab1';
const JA3 = 'e7d705a3286e19ea42f587b344ee6865';

/** A fresh valid minimal config: one tls listener, one default route. */
function base() {
  return { listeners: [{ port: 0 }], routes: [{ sni: '', upstreams: [TCP()] }] };
}

/** A fresh valid minimal connect-only config. */
function connectBase() {
  return { listeners: [{ kind: 'connect', port: 9999 }] };
}

/** base() changed by fn. */
function withBase(fn) {
  const c = base();
  fn(c);
  return c;
}

function withConnect(fn) {
  const c = connectBase();
  fn(c);
  return c;
}

const DEFAULT_PROTECTION = {
  rateLimit: null,
  sustained: null,
  penaltyBox: null,
  maxConcurrentPerIp: 0,
  allowlist: [],
  blocklist: [],
  ja3Blocklist: [],
  ja4Blocklist: [],
  tlsHandshakeTimeoutMs: 10000,
  requireSni: false,
  ipv6Prefix: 128,
  maxTrackedIps: 1000000,
};

/** The protection fields a listener may set (maxTrackedIps is top-level only). */
const { maxTrackedIps: _top, ...LISTENER_PROTECTION } = DEFAULT_PROTECTION;

const DEFAULT_SCHEDULER = { kind: 'drr', quantum: 0, maxQueuedBytesPerFlow: 262144, rate: 0, burst: 0, flowRate: 0 };

function deepFreeze(o) {
  if (o && typeof o === 'object' && !ArrayBuffer.isView(o)) {
    Object.freeze(o);
    for (const v of Object.values(o)) deepFreeze(v);
  }
  return o;
}

/** A deep copy that keeps Buffers as Buffers (structuredClone makes them Uint8Arrays). */
function snapshot(v) {
  if (Buffer.isBuffer(v)) return Buffer.from(v);
  if (Array.isArray(v)) return v.map(snapshot);
  if (v && typeof v === 'object') return Object.fromEntries(Object.entries(v).map(([k, x]) => [k, snapshot(x)]));
  return v;
}

/** Assert fn throws a config error of Class whose message starts with path. */
function assertConfigError(fn, Class, path, includes) {
  let caught;
  try {
    fn();
  } catch (err) {
    caught = err;
  }
  assert.ok(caught, `expected an error starting with '${path}'`);
  assert.ok(caught instanceof Class, `expected ${Class.name}, got ${caught && caught.constructor.name}: ${caught.message}`);
  assert.equal(caught.code, 'ERR_LEGATO_CONFIG');
  assert.ok(isConfigError(caught));
  assert.ok(caught.message.startsWith(path), `message '${caught.message}' should start with '${path}'`);
  if (includes) assert.ok(caught.message.includes(includes), `message '${caught.message}' should include '${includes}'`);
  return caught;
}

describe('config', () => {
  describe('defaults', () => {
    it('accepts TLS-only protection keys at their defaults on a connect listener (they change nothing)', () => {
      const n = normalizeConfig(withConnect((c) => {
        c.listeners[0].protection = { ...LISTENER_PROTECTION, ja3Blocklist: [], ja4Blocklist: [], requireSni: false, tlsHandshakeTimeoutMs: 10000 };
      }));
      assert.deepStrictEqual(n.listeners[0].protection, DEFAULT_PROTECTION);
    });

    it('normalizes a minimal tls config to the exact expected object', () => {
      const n = normalizeConfig(base());
      assert.deepStrictEqual(n, {
        workerThreads: os.availableParallelism(),
        workerPriority: 'normal',
        readBufferSize: 65536,
        resolveIntervalMs: 30000,
        tcpKeepalive: { idleMs: 300000, intervalMs: 30000, count: 5 },
        halfCloseTimeoutMs: 300000,
        scheduler: DEFAULT_SCHEDULER,
        protection: DEFAULT_PROTECTION,
        listeners: [{
          kind: 'tls',
          host: '0.0.0.0',
          port: 0,
          maxConnections: 0,
          idleTimeoutMs: 60000,
          defaultCert: null,
          mtls: null,
          protection: DEFAULT_PROTECTION,
          connect: null,
          acceptProxyProtocol: 'none',
          trustedProxies: [],
          scheduler: { weight: 1, flowRate: null },
          reusePort: 'exclusive',
        }],
        routes: [{
          sni: '',
          upstreams: [{ kind: 'tcp', host: '127.0.0.1', port: 8080, weight: 1, tls: null }],
          terminateTls: false,
          cert: null,
          mtls: null,
          alpn: ['http/1.1'],
          suspended: false,
          suspendTimeoutMs: 30000,
          maxConnectionsPerSecond: 0,
          burst: 0,
          metricsGroup: null,
          balance: 'leastConn',
          connectTimeoutMs: 10000,
          retries: 2,
          maxFails: 3,
          failTimeoutMs: 10000,
          proxyProtocol: 'none',
          forwardFingerprint: false,
          scheduler: { weight: 0, flowRate: null },
        }],
      });
    });

    it('normalizes a minimal connect config to the exact expected object', () => {
      const n = normalizeConfig(connectBase());
      assert.deepStrictEqual(n, {
        workerThreads: os.availableParallelism(),
        workerPriority: 'normal',
        readBufferSize: 65536,
        resolveIntervalMs: 30000,
        tcpKeepalive: { idleMs: 300000, intervalMs: 30000, count: 5 },
        halfCloseTimeoutMs: 300000,
        scheduler: DEFAULT_SCHEDULER,
        protection: DEFAULT_PROTECTION,
        listeners: [{
          kind: 'connect',
          host: '127.0.0.1',
          port: 9999,
          maxConnections: 1000,
          idleTimeoutMs: 60000,
          defaultCert: null,
          mtls: null,
          protection: DEFAULT_PROTECTION,
          connect: {
            allowPorts: [443],
            defaultAllowPort: true,
            denyCidrs: [
              '127.0.0.0/8', '10.0.0.0/8', '172.16.0.0/12', '192.168.0.0/16', '169.254.0.0/16',
              '100.64.0.0/10', '0.0.0.0/8', '224.0.0.0/4', '240.0.0.0/4', '::1/128', '::/128',
              'fc00::/7', 'fe80::/10', 'ff00::/8', '64:ff9b::/96', '2002::/16',
              '::/96', '::ffff:0:0:0/96', '64:ff9b:1::/48', '2001::/32', 'fec0::/10', '192.0.0.0/24', '198.18.0.0/15',
            ],
            allowCidrs: [],
            allowDomains: [],
            connectTimeoutMs: 10000,
            headTimeoutMs: 10000,
            auth: null,
          },
          acceptProxyProtocol: 'none',
          trustedProxies: [],
          scheduler: { weight: 1, flowRate: null },
          reusePort: 'exclusive',
        }],
        routes: [],
      });
    });

    it('fills every field of every object (no undefined anywhere)', () => {
      const n = normalizeConfig({
        listeners: [{ port: 1 }, { kind: 'connect', port: 2 }],
        routes: [{ sni: 'a.test', upstreams: [{ kind: 'uds', path: '/tmp/a.sock' }, TCP()] }],
      });
      (function walk(v, path) {
        assert.notEqual(v, undefined, `${path} is undefined`);
        if (v && typeof v === 'object' && !Buffer.isBuffer(v)) for (const [k, x] of Object.entries(v)) walk(x, `${path}.${k}`);
      })(n, 'config');
      assert.deepStrictEqual(n.routes[0].upstreams[0], { kind: 'uds', path: '/tmp/a.sock', weight: 1, ipAffinity: false, ipAffinityTtlMs: 300000, pid: 0, tid: 0 });
    });

    it('the default deny list is already in normalized form', () => {
      const n = normalizeConfig(withConnect((c) => { c.listeners[0].connect = { denyCidrs: DEFAULT_DENY_CIDRS.slice() }; }));
      assert.deepStrictEqual(n.listeners[0].connect.denyCidrs, [...DEFAULT_DENY_CIDRS]);
    });
  });

  describe('normalization', () => {
    it('lower-cases SNI and drops one trailing dot; keeps wildcards', () => {
      const n = normalizeConfig(withBase((c) => {
        c.routes.push({ sni: 'API.Example.COM.', upstreams: [TCP()] }, { sni: '*.Example.com', upstreams: [TCP()] });
      }));
      assert.deepStrictEqual(n.routes.map((r) => r.sni), ['', 'api.example.com', '*.example.com']);
    });

    it('refuses SNI patterns the ClientHello parser could never match (underscore, IPv4 literal)', () => {
      for (const sni of ['x_y.test', '*.a_b.test', '10.0.0.1', '127.1']) {
        assert.throws(() => normalizeConfig(withBase((c) => { c.routes.push({ sni, upstreams: [TCP()] }); })),
          (err) => err instanceof RangeError && err.code === 'ERR_LEGATO_CONFIG' && err.message.startsWith('routes[1].sni'), sni);
      }
    });

    it('treats a missing sni as the default route', () => {
      const n = normalizeConfig({ listeners: [{ port: 0 }], routes: [{ upstreams: [TCP()] }] });
      assert.equal(n.routes[0].sni, '');
    });

    it('strips brackets around IPv6 hosts and lower-cases hostnames', () => {
      const n = normalizeConfig({
        listeners: [{ host: '[::1]', port: 1 }, { host: 'LocalHost.', port: 2 }, { host: '::', port: 3 }, { host: '[FE80::1%Eth0]', port: 4 }],
        routes: [{ upstreams: [{ kind: 'tcp', host: '[2001:DB8::1]', port: 1 }, { kind: 'tcp', host: 'Backend.internal', port: 2 }] }],
      });
      assert.deepStrictEqual(n.listeners.map((l) => l.host), ['::1', 'localhost', '::', 'fe80::1%Eth0']);
      assert.deepStrictEqual(n.routes[0].upstreams.map((u) => u.host), ['2001:db8::1', 'backend.internal']);
    });

    it('normalizes CIDRs and IPs, de-duplicating', () => {
      const n = normalizeConfig(withBase((c) => {
        c.protection = { allowlist: ['1.2.3.4', '10.0.0.0/8', '1.2.3.4/32', '2001:DB8:0:0:0:0:0:1', '2001:db8::/32', '::ffff:1.2.3.4', '0.0.0.0/0', '::/0'] };
      }));
      assert.deepStrictEqual(n.protection.allowlist, ['1.2.3.4/32', '10.0.0.0/8', '2001:db8::1/128', '2001:db8::/32', '::ffff:1.2.3.4/128', '0.0.0.0/0', '::/0']);
    });

    it('suggests the network when host bits are set', () => {
      assertConfigError(() => normalizeConfig(withBase((c) => { c.protection = { blocklist: ['192.168.1.7/24'] }; })),
        RangeError, 'protection.blocklist[0]', "did you mean '192.168.1.0/24'?");
    });

    it('lower-cases JA3 and JA4 fingerprints', () => {
      const n = normalizeConfig(withBase((c) => { c.protection = { ja3Blocklist: [JA3.toUpperCase(), JA3], ja4Blocklist: [JA4.toUpperCase()] }; }));
      assert.deepStrictEqual(n.protection.ja3Blocklist, [JA3]);
      assert.deepStrictEqual(n.protection.ja4Blocklist, [JA4]);
    });

    it('normalizes connect options: ports sorted with 443, domains stripped', () => {
      const n = normalizeConfig(withConnect((c) => {
        c.listeners[0].connect = { allowPorts: [8443, 22, 8443], allowDomains: ['*.Example.com', '.github.com', 'aws.amazon.com.'], denyCidrs: ['10.0.0.0/8'], allowCidrs: ['10.1.0.0/16'], connectTimeoutMs: 5000 };
      }));
      assert.deepStrictEqual(n.listeners[0].connect, {
        allowPorts: [22, 443, 8443],
        defaultAllowPort: true,
        denyCidrs: ['10.0.0.0/8'],
        allowCidrs: ['10.1.0.0/16'],
        allowDomains: ['example.com', 'github.com', 'aws.amazon.com'],
        connectTimeoutMs: 5000,
        headTimeoutMs: 10000,
        auth: null,
      });
    });

    it('leaves 443 out when defaultAllowPort is false and allowPorts is given', () => {
      const n = normalizeConfig(withConnect((c) => { c.listeners[0].connect = { allowPorts: [8443], defaultAllowPort: false }; }));
      assert.deepStrictEqual(n.listeners[0].connect.allowPorts, [8443]);
      assert.throws(() => normalizeConfig(withConnect((c) => { c.listeners[0].connect = { defaultAllowPort: false }; })),
        (err) => err instanceof RangeError && err.code === 'ERR_LEGATO_CONFIG' && err.message.startsWith('listeners[0].connect.allowPorts'));
    });

    it('accepts connect: null on a tls listener and on a connect listener', () => {
      const n = normalizeConfig(withBase((c) => { c.listeners[0].connect = null; c.listeners.push({ kind: 'connect', port: 1, connect: null }); }));
      assert.equal(n.listeners[0].connect, null);
      assert.deepStrictEqual(n.listeners[1].connect.allowPorts, [443]);
    });

    it('scheduler: quantum auto → 0, numbers kept, burst defaults to max(rate, 65536)', () => {
      const s = (scheduler) => normalizeConfig({ ...base(), scheduler }).scheduler;
      assert.equal(s({ quantum: 'auto' }).quantum, 0);
      assert.equal(s({ quantum: 4096 }).quantum, 4096);
      assert.deepStrictEqual(s({ kind: 'drr', rate: 1000 }), { kind: 'drr', quantum: 0, maxQueuedBytesPerFlow: 262144, rate: 1000, burst: 65536, flowRate: 0 });
      assertConfigError(() => s({ kind: 'fifo', rate: 1000 }), RangeError, "scheduler.rate needs scheduler.kind 'drr'");
      assert.equal(s({ rate: 1e6 }).burst, 1e6);
      assert.equal(s({ rate: 1e6, burst: 5000 }).burst, 5000);
      assert.equal(s({ rate: 0, burst: 0 }).burst, 0);
      assert.deepStrictEqual(s(null), DEFAULT_SCHEDULER);
      assert.equal(s({ flowRate: 2e6 }).flowRate, 2e6);
      assertConfigError(() => s({ kind: 'fifo', flowRate: 1000 }), RangeError, "scheduler.flowRate needs scheduler.kind 'drr'");
      assertConfigError(() => s({ flowRate: -1 }), RangeError, 'scheduler.flowRate');
    });

    it('route and rate-limit bursts default to the rate (at least 1)', () => {
      const n = normalizeConfig(withBase((c) => {
        c.routes[0].maxConnectionsPerSecond = 20;
        c.routes.push({ sni: 'a.test', upstreams: [TCP()], maxConnectionsPerSecond: 0.5 }, { sni: 'b.test', upstreams: [TCP()], maxConnectionsPerSecond: 5, burst: 50 });
        c.protection = { rateLimit: { connectionsPerSecond: 0.2 } };
        c.listeners[0].protection = { rateLimit: { connectionsPerSecond: 100 } };
      }));
      assert.deepStrictEqual(n.routes.map((r) => [r.maxConnectionsPerSecond, r.burst]), [[20, 20], [0.5, 1], [5, 50]]);
      assert.deepStrictEqual(n.protection.rateLimit, { connectionsPerSecond: 0.2, burst: 1 });
      assert.deepStrictEqual(n.listeners[0].protection.rateLimit, { connectionsPerSecond: 100, burst: 100 });
    });

    it('turns PEM strings and byte views into Buffer copies', () => {
      const keyBuf = Buffer.from(KEY);
      const n = normalizeConfig(withBase((c) => {
        c.listeners[0].defaultCert = { certChain: CERT, privateKey: keyBuf };
        c.routes[0].terminateTls = true;
        c.routes[0].mtls = { clientCaCert: new Uint8Array(Buffer.from(CERT)) };
      }));
      const cert = n.listeners[0].defaultCert;
      assert.ok(Buffer.isBuffer(cert.certChain) && Buffer.isBuffer(cert.privateKey));
      assert.equal(cert.certChain.toString(), CERT);
      keyBuf.fill(0); // a copy, not a view of the input
      assert.equal(cert.privateKey.toString(), KEY);
      assert.deepStrictEqual(n.routes[0].mtls, { clientCaCert: Buffer.from(CERT), requireClientCert: true });
    });

    it('a terminating route may rely on the defaultCert of every tls listener', () => {
      const n = normalizeConfig(withBase((c) => { c.listeners[0].defaultCert = PAIR(); c.routes[0].terminateTls = true; }));
      assert.equal(n.routes[0].cert, null);
      assert.equal(n.routes[0].terminateTls, true);
    });

    it('merges listener protection over the top level field by field', () => {
      const n = normalizeConfig(withBase((c) => {
        c.protection = { rateLimit: { connectionsPerSecond: 10 }, blocklist: ['10.0.0.0/8'], tlsHandshakeTimeoutMs: 5000 };
        c.listeners[0].protection = { rateLimit: null, tlsHandshakeTimeoutMs: 2000 };
        c.listeners.push({ port: 1 });
      }));
      assert.deepStrictEqual(n.listeners[0].protection, { ...DEFAULT_PROTECTION, rateLimit: null, blocklist: ['10.0.0.0/8'], tlsHandshakeTimeoutMs: 2000 });
      assert.deepStrictEqual(n.listeners[1].protection, n.protection);
      assert.notEqual(n.listeners[1].protection.blocklist, n.protection.blocklist, 'arrays are not shared');
      assert.deepStrictEqual(n.listeners[0]._ownProtection, { rateLimit: null, tlsHandshakeTimeoutMs: 2000 });
      assert.ok(!Object.keys(n.listeners[0]).includes('_ownProtection'), '_ownProtection is not enumerable');
    });

    it('allows idleTimeoutMs 0 (no idle timeout) and maxConnections 0 (unlimited)', () => {
      const n = normalizeConfig(withBase((c) => { c.listeners[0].idleTimeoutMs = 0; c.listeners[0].maxConnections = 0; }));
      assert.equal(n.listeners[0].idleTimeoutMs, 0);
      assert.equal(n.listeners[0].maxConnections, 0);
    });

    it('allows a suspended route without upstreams', () => {
      const n = normalizeConfig(withBase((c) => { c.routes.push({ sni: 'hold.test', suspended: true }, { sni: 'hold2.test', suspended: true, upstreams: [] }); }));
      assert.deepStrictEqual(n.routes[1].upstreams, []);
      assert.deepStrictEqual(n.routes[2].upstreams, []);
    });

    it('refuses routes with only connect listeners (they would never be used); an empty list is fine', () => {
      assertConfigError(() => normalizeConfig({ ...connectBase(), routes: [{ sni: 'a.test', upstreams: [TCP()] }] }), RangeError, 'routes apply to tls listeners only');
      assert.deepStrictEqual(normalizeConfig({ ...connectBase(), routes: [] }).routes, []);
    });

    it('treats undefined like a missing option, normalizes -0 to 0', () => {
      const n = normalizeConfig({ listeners: [{ port: -0, host: undefined }], routes: [{ upstreams: [TCP()], burst: undefined }], workerThreads: undefined });
      assert.ok(Object.is(n.listeners[0].port, 0));
      assert.equal(n.listeners[0].host, '0.0.0.0');
    });

    it('accepts the limits exactly at their bounds', () => {
      const n = normalizeConfig({
        workerThreads: 256,
        workerPriority: 'realtime',
        readBufferSize: 16777216,
        scheduler: { quantum: 16777216, maxQueuedBytesPerFlow: 16384 },
        listeners: [{ port: 65535, idleTimeoutMs: 2147483647 }],
        routes: [{ upstreams: [{ kind: 'uds', path: 'a'.repeat(107), pid: 1, tid: 2 }], alpn: ['x'.repeat(255)], sni: '' }],
      });
      assert.equal(n.routes[0].upstreams[0].path.length, 107);
      assert.equal(n.workerPriority, 'realtime');
      const many = Array.from({ length: 64 }, (_, i) => ({ port: 10000 + i }));
      assert.equal(normalizeConfig({ listeners: many, routes: [{ upstreams: [TCP()] }] }).listeners.length, 64);
      const label = 'a'.repeat(63);
      normalizeConfig({ listeners: [{ port: 0 }], routes: [{ sni: `${label}.${label}.${label}.${'b'.repeat(61)}`, upstreams: [TCP()] }] });
    });
  });

  describe('errors', () => {
    // [name, config or () => config, Class, path prefix, optional substring]
    const ERROR_TABLE = [
      ['config null', null, TypeError, 'config must be an object'],
      ['config an array', [], TypeError, 'config must be an object'],
      ['config a string', 'listeners', TypeError, 'config must be an object'],
      ['unknown top-level key', () => ({ ...base(), foo: 1 }), TypeError, "unknown option 'foo'"],
      ['top-level typo gets a hint', () => ({ ...base(), route: [] }), TypeError, "unknown option 'route'", "did you mean 'routes'?"],
      ['__proto__ key from JSON', () => JSON.parse('{"listeners":[{"port":1}],"routes":[],"__proto__":{"x":1}}'), TypeError, "unknown option '__proto__'"],
      ['listeners missing', () => ({ routes: [] }), TypeError, 'listeners'],
      ['listeners empty', () => ({ listeners: [] }), RangeError, 'listeners must not be empty'],
      ['listeners not an array', () => ({ listeners: { port: 1 } }), TypeError, 'listeners must be an array'],
      ['65 listeners', () => ({ listeners: Array.from({ length: 65 }, () => ({ port: 0 })), routes: base().routes }), RangeError, 'listeners'],
      ['listener a number', () => ({ listeners: [443] }), TypeError, 'listeners[0] must be an object'],
      ['missing port', () => withBase((c) => { delete c.listeners[0].port; }), TypeError, 'listeners[0].port'],
      ['port 70000', () => withBase((c) => { c.listeners[0].port = 70000; }), RangeError, 'listeners[0].port must be an integer 0-65535'],
      ['port 1.5', () => withBase((c) => { c.listeners[0].port = 1.5; }), RangeError, 'listeners[0].port'],
      ['port NaN', () => withBase((c) => { c.listeners[0].port = NaN; }), RangeError, 'listeners[0].port'],
      ['port -1', () => withBase((c) => { c.listeners[0].port = -1; }), RangeError, 'listeners[0].port'],
      ["port '443'", () => withBase((c) => { c.listeners[0].port = '443'; }), TypeError, 'listeners[0].port'],
      ['host a number', () => withBase((c) => { c.listeners[0].host = 5; }), TypeError, 'listeners[0].host must be a string'],
      ['host with spaces', () => withBase((c) => { c.listeners[0].host = 'not a host'; }), RangeError, 'listeners[0].host'],
      ['host empty', () => withBase((c) => { c.listeners[0].host = ''; }), RangeError, 'listeners[0].host'],
      ['host IPv4 in brackets', () => withBase((c) => { c.listeners[0].host = '[1.2.3.4]'; }), RangeError, 'listeners[0].host'],
      ['host non-canonical IPv4', () => withBase((c) => { c.listeners[0].host = '127.1'; }), RangeError, 'listeners[0].host'],
      ['listener kind udp', () => withBase((c) => { c.listeners[0].kind = 'udp'; }), RangeError, 'listeners[0].kind', "'tls' or 'connect'"],
      ['unknown listener key', () => withBase((c) => { c.listeners[0].hots = 'a'; }), TypeError, "listeners[0]: unknown option 'hots'", "did you mean 'host'?"],
      ['maxConnections -1', () => withBase((c) => { c.listeners[0].maxConnections = -1; }), RangeError, 'listeners[0].maxConnections'],
      ['negative idleTimeoutMs', () => withBase((c) => { c.listeners[0].idleTimeoutMs = -5; }), RangeError, 'listeners[0].idleTimeoutMs'],
      ['idleTimeoutMs Infinity', () => withBase((c) => { c.listeners[0].idleTimeoutMs = Infinity; }), RangeError, 'listeners[0].idleTimeoutMs'],
      ['duplicate listener address', () => withBase((c) => { c.listeners = [{ port: 8443 }, { port: 8443, host: '0.0.0.0' }]; }), RangeError, 'listeners[1].port', 'duplicates listeners[0]'],
      ['connect options on a tls listener', () => withBase((c) => { c.listeners[0].connect = { allowPorts: [443] }; }), RangeError, 'listeners[0].connect'],
      ['defaultCert on a connect listener', () => withConnect((c) => { c.listeners[0].defaultCert = PAIR(); }), RangeError, 'listeners[0].defaultCert'],
      ['mtls on a connect listener', () => withConnect((c) => { c.listeners[0].mtls = { clientCaCert: CERT }; }), RangeError, 'listeners[0].mtls'],
      ['TLS-only protection on a connect listener', () => withConnect((c) => { c.listeners[0].protection = { ja3Blocklist: [JA3] }; }), RangeError, 'listeners[0].protection.ja3Blocklist'],
      ['requireSni on a connect listener', () => withConnect((c) => { c.listeners[0].protection = { requireSni: true }; }), RangeError, 'listeners[0].protection.requireSni'],
      ['a handshake timeout on a connect listener', () => withConnect((c) => { c.listeners[0].protection = { tlsHandshakeTimeoutMs: 5000 }; }), RangeError, 'listeners[0].protection.tlsHandshakeTimeoutMs'],
      ['connect not an object', () => withConnect((c) => { c.listeners[0].connect = true; }), TypeError, 'listeners[0].connect must be an object'],
      ['unknown connect key', () => withConnect((c) => { c.listeners[0].connect = { allowPort: [443] }; }), TypeError, "listeners[0].connect: unknown option 'allowPort'"],
      ['allowPorts 0', () => withConnect((c) => { c.listeners[0].connect = { allowPorts: [0] }; }), RangeError, 'listeners[0].connect.allowPorts[0]'],
      ['no allowed port at all', () => withConnect((c) => { c.listeners[0].connect = { allowPorts: [], defaultAllowPort: false }; }), RangeError, 'listeners[0].connect.allowPorts'],
      ['defaultAllowPort a string', () => withConnect((c) => { c.listeners[0].connect = { defaultAllowPort: 'no' }; }), TypeError, 'listeners[0].connect.defaultAllowPort'],
      ['bad CIDR prefix', () => withConnect((c) => { c.listeners[0].connect = { denyCidrs: ['10.0.0.0/33'] }; }), RangeError, 'listeners[0].connect.denyCidrs[0]'],
      ['CIDR not an address', () => withConnect((c) => { c.listeners[0].connect = { denyCidrs: ['example.com/8'] }; }), RangeError, 'listeners[0].connect.denyCidrs[0]'],
      ['CIDR entry a number', () => withConnect((c) => { c.listeners[0].connect = { allowCidrs: [10] }; }), TypeError, 'listeners[0].connect.allowCidrs[0]'],
      ['CIDR with host bits', () => withConnect((c) => { c.listeners[0].connect = { allowCidrs: ['10.1.0.0/8'] }; }), RangeError, 'listeners[0].connect.allowCidrs[0]'],
      ['allowDomains an IP', () => withConnect((c) => { c.listeners[0].connect = { allowDomains: ['1.2.3.4'] }; }), RangeError, 'listeners[0].connect.allowDomains[0]', 'allowCidrs'],
      ['allowDomains bad name', () => withConnect((c) => { c.listeners[0].connect = { allowDomains: ['exa mple.com'] }; }), RangeError, 'listeners[0].connect.allowDomains[0]'],
      ['routes with only connect listeners', () => withConnect((c) => { c.routes = [{ sni: 'a.test', upstreams: [TCP()] }]; }), RangeError, 'routes apply to tls listeners only'],
      ['quantum with fifo', () => withBase((c) => { c.scheduler = { kind: 'fifo', quantum: 4096 }; }), RangeError, "scheduler.quantum needs scheduler.kind 'drr'"],
      // 253 valid bytes then a character that does not fit the name buffer: refused, not cut to the 253.
      ['allowDomains 253 bytes + an emoji', () => withConnect((c) => { c.listeners[0].connect = { allowDomains: [`${Array(4).fill('a'.repeat(62)).join('.')}.${'b'}\u{1F600}`] }; }), RangeError, 'listeners[0].connect.allowDomains[0]'],
      ['upstream host 253 bytes + a multibyte character', () => withBase((c) => { c.routes[0].upstreams = [{ kind: 'tcp', host: `${Array(4).fill('a'.repeat(62)).join('.')}.b\u20ac`, port: 1 }]; }), RangeError, 'routes[0].upstreams[0].host'],
      ['connectTimeoutMs 0', () => withConnect((c) => { c.listeners[0].connect = { connectTimeoutMs: 0 }; }), RangeError, 'listeners[0].connect.connectTimeoutMs'],
      ['connectTimeoutMs too large', () => withConnect((c) => { c.listeners[0].connect = { connectTimeoutMs: 600001 }; }), RangeError, 'listeners[0].connect.connectTimeoutMs'],
      ['routes missing for a tls listener', () => ({ listeners: [{ port: 0 }] }), TypeError, 'routes is required'],
      ['routes empty for a tls listener', () => ({ listeners: [{ port: 0 }], routes: [] }), RangeError, 'routes must not be empty'],
      ['routes not an array', () => ({ listeners: [{ port: 0 }], routes: {} }), TypeError, 'routes must be an array'],
      ['route null', () => ({ listeners: [{ port: 0 }], routes: [null] }), TypeError, 'routes[0] must be an object'],
      ['unknown route key', () => withBase((c) => { c.routes[0].snii = 'a'; }), TypeError, "routes[0]: unknown option 'snii'", "did you mean 'sni'?"],
      ['sni: 5', () => withBase((c) => { c.routes[0].sni = 5; }), TypeError, 'routes[0].sni must be a string'],
      ['sni with empty label', () => withBase((c) => { c.routes[0].sni = 'a..test'; }), RangeError, 'routes[0].sni'],
      ['sni with inner wildcard', () => withBase((c) => { c.routes[0].sni = 'a.*.test'; }), RangeError, 'routes[0].sni'],
      ['sni bare wildcard', () => withBase((c) => { c.routes[0].sni = '*'; }), RangeError, 'routes[0].sni'],
      ['sni only a dot', () => withBase((c) => { c.routes[0].sni = '.'; }), RangeError, 'routes[0].sni'],
      ['sni non-ASCII', () => withBase((c) => { c.routes[0].sni = 'bücher.test'; }), RangeError, 'routes[0].sni', 'punycode'],
      ['sni label of 64 bytes', () => withBase((c) => { c.routes[0].sni = `${'a'.repeat(64)}.test`; }), RangeError, 'routes[0].sni'],
      ['sni over 253 bytes', () => withBase((c) => { c.routes[0].sni = Array(5).fill('a'.repeat(50)).join('.'); /* 254 bytes, labels fine */ }), RangeError, 'routes[0].sni'],
      ['duplicate sni (case)', () => withBase((c) => { c.routes = [{ sni: 'a.test', upstreams: [TCP()] }, { sni: 'x.test', upstreams: [TCP()] }, { sni: 'A.TEST', upstreams: [TCP()] }]; }), RangeError, "routes[2].sni 'a.test' duplicates routes[0].sni"],
      ['duplicate sni (trailing dot)', () => withBase((c) => { c.routes = [{ sni: 'a.test', upstreams: [TCP()] }, { sni: 'a.test.', upstreams: [TCP()] }]; }), RangeError, "routes[1].sni 'a.test' duplicates routes[0].sni"],
      ['duplicate default route', () => withBase((c) => { c.routes.push({ upstreams: [TCP()] }); }), RangeError, "routes[1].sni '' duplicates routes[0].sni"],
      ['upstreams missing', () => withBase((c) => { delete c.routes[0].upstreams; }), TypeError, 'routes[0].upstreams'],
      ['upstreams empty', () => withBase((c) => { c.routes[0].upstreams = []; }), RangeError, 'routes[0].upstreams must not be empty'],
      ['1025 upstreams', () => withBase((c) => { c.routes[0].upstreams = Array.from({ length: 1025 }, TCP); }), RangeError, 'routes[0].upstreams'],
      ['unknown upstream kind', () => withBase((c) => { c.routes[0].upstreams[0].kind = 'udp'; }), RangeError, 'routes[0].upstreams[0].kind', "'tcp' or 'uds'"],
      ['upstream kind missing', () => withBase((c) => { delete c.routes[0].upstreams[0].kind; }), TypeError, 'routes[0].upstreams[0].kind', "'tcp' or 'uds'"],
      ['upstream port 0', () => withBase((c) => { c.routes[0].upstreams[0].port = 0; }), RangeError, 'routes[0].upstreams[0].port must be an integer 1-65535'],
      ['upstream port missing', () => withBase((c) => { delete c.routes[0].upstreams[0].port; }), TypeError, 'routes[0].upstreams[0].port'],
      ['upstream host missing', () => withBase((c) => { delete c.routes[0].upstreams[0].host; }), TypeError, 'routes[0].upstreams[0].host'],
      ['tcp upstream with a path', () => withBase((c) => { c.routes[0].upstreams[0].path = '/x'; }), TypeError, "routes[0].upstreams[0]: unknown option 'path'"],
      ['uds path too long', () => withBase((c) => { c.routes[0].upstreams = [{ kind: 'uds', path: '/'.padEnd(108, 'x') }]; }), RangeError, 'routes[0].upstreams[0].path', '107'],
      ['uds path multibyte too long', () => withBase((c) => { c.routes[0].upstreams = [{ kind: 'uds', path: 'é'.repeat(54) }]; }), RangeError, 'routes[0].upstreams[0].path'],
      ['uds path empty', () => withBase((c) => { c.routes[0].upstreams = [{ kind: 'uds', path: '' }]; }), RangeError, 'routes[0].upstreams[0].path'],
      ['uds path missing', () => withBase((c) => { c.routes[0].upstreams = [{ kind: 'uds' }]; }), TypeError, 'routes[0].upstreams[0].path'],
      ['uds pid negative', () => withBase((c) => { c.routes[0].upstreams = [{ kind: 'uds', path: '/s', pid: -1 }]; }), RangeError, 'routes[0].upstreams[0].pid'],
      ['uds tid without pid', () => withBase((c) => { c.routes[0].upstreams = [{ kind: 'uds', path: '/s', tid: 7 }]; }), RangeError, 'routes[0].upstreams[0].tid'],
      ['uds ipAffinity a string', () => withBase((c) => { c.routes[0].upstreams = [{ kind: 'uds', path: '/s', ipAffinity: 'yes' }]; }), TypeError, 'routes[0].upstreams[0].ipAffinity'],
      ['uds ipAffinityTtlMs 0', () => withBase((c) => { c.routes[0].upstreams = [{ kind: 'uds', path: '/s', ipAffinityTtlMs: 0 }]; }), RangeError, 'routes[0].upstreams[0].ipAffinityTtlMs'],
      ['terminateTls a string', () => withBase((c) => { c.routes[0].terminateTls = 'yes'; }), TypeError, 'routes[0].terminateTls must be a boolean'],
      ['terminating route without cert', () => withBase((c) => { c.routes[0].terminateTls = true; }), RangeError, 'routes[0].cert', 'listeners[0]'],
      ['terminating route, one tls listener lacks defaultCert', () => withBase((c) => { c.routes[0].terminateTls = true; c.listeners = [{ port: 1, defaultCert: PAIR() }, { port: 2 }]; }), RangeError, 'routes[0].cert', 'listeners[1]'],
      ['cert missing privateKey', () => withBase((c) => { c.routes[0].cert = { certChain: CERT }; }), TypeError, 'routes[0].cert.privateKey'],
      ['cert chain not PEM', () => withBase((c) => { c.routes[0].cert = { certChain: 'hello', privateKey: KEY }; }), RangeError, 'routes[0].cert.certChain'],
      ['cert and key swapped', () => withBase((c) => { c.routes[0].cert = { certChain: KEY, privateKey: CERT }; }), RangeError, 'routes[0].cert.certChain'],
      ['cert chain a number', () => withBase((c) => { c.routes[0].cert = { certChain: 1, privateKey: KEY }; }), TypeError, 'routes[0].cert.certChain'],
      ['cert a string', () => withBase((c) => { c.routes[0].cert = CERT; }), TypeError, 'routes[0].cert must be an object'],
      ['mtls missing clientCaCert', () => withBase((c) => { c.routes[0].mtls = { requireClientCert: true }; }), TypeError, 'routes[0].mtls.clientCaCert'],
      ['mtls requireClientCert a number', () => withBase((c) => { c.routes[0].mtls = { clientCaCert: CERT, requireClientCert: 1 }; }), TypeError, 'routes[0].mtls.requireClientCert'],
      ['alpn empty string', () => withBase((c) => { c.routes[0].alpn = ['']; }), RangeError, 'routes[0].alpn[0]'],
      ['alpn of 256 bytes', () => withBase((c) => { c.routes[0].alpn = ['x'.repeat(256)]; }), RangeError, 'routes[0].alpn[0]'],
      ['alpn not an array', () => withBase((c) => { c.routes[0].alpn = 'h2'; }), TypeError, 'routes[0].alpn must be an array'],
      ['alpn duplicate', () => withBase((c) => { c.routes[0].alpn = ['h2', 'h2']; }), RangeError, 'routes[0].alpn[1]'],
      ['suspended a string', () => withBase((c) => { c.routes[0].suspended = 'true'; }), TypeError, 'routes[0].suspended'],
      ['suspendTimeoutMs 0', () => withBase((c) => { c.routes[0].suspendTimeoutMs = 0; }), RangeError, 'routes[0].suspendTimeoutMs'],
      ['maxConnectionsPerSecond negative', () => withBase((c) => { c.routes[0].maxConnectionsPerSecond = -1; }), RangeError, 'routes[0].maxConnectionsPerSecond'],
      ['maxConnectionsPerSecond NaN', () => withBase((c) => { c.routes[0].maxConnectionsPerSecond = NaN; }), RangeError, 'routes[0].maxConnectionsPerSecond'],
      ['route burst without a rate', () => withBase((c) => { c.routes[0].burst = 10; }), RangeError, 'routes[0].burst'],
      ['route burst below 1', () => withBase((c) => { c.routes[0].maxConnectionsPerSecond = 5; c.routes[0].burst = 0.5; }), RangeError, 'routes[0].burst'],
      ["proxyProtocol 'v3'", () => withBase((c) => { c.routes[0].proxyProtocol = 'v3'; }), RangeError, 'routes[0].proxyProtocol', "'none', 'v1', 'v2'"],
      ['proxyProtocol true', () => withBase((c) => { c.routes[0].proxyProtocol = true; }), TypeError, 'routes[0].proxyProtocol'],
      ['workerThreads 0', () => ({ ...base(), workerThreads: 0 }), RangeError, 'workerThreads must be an integer 1-256'],
      ['workerThreads 257', () => ({ ...base(), workerThreads: 257 }), RangeError, 'workerThreads'],
      ['workerThreads a string', () => ({ ...base(), workerThreads: '4' }), TypeError, 'workerThreads'],
      ['workerPriority unknown', () => ({ ...base(), workerPriority: 'high' }), RangeError, "workerPriority must be 'normal' or 'realtime'"],
      ['workerPriority a number', () => ({ ...base(), workerPriority: -10 }), TypeError, "workerPriority must be 'normal' or 'realtime'"],
      ['readBufferSize 512', () => ({ ...base(), readBufferSize: 512 }), RangeError, 'readBufferSize'],
      ['scheduler an array', () => ({ ...base(), scheduler: [] }), TypeError, 'scheduler must be an object'],
      ["scheduler kind 'wfq'", () => ({ ...base(), scheduler: { kind: 'wfq' } }), RangeError, 'scheduler.kind'],
      ['quantum 0', () => ({ ...base(), scheduler: { quantum: 0 } }), RangeError, 'scheduler.quantum', "'auto'"],
      ["quantum 'fast'", () => ({ ...base(), scheduler: { quantum: 'fast' } }), RangeError, 'scheduler.quantum'],
      ['quantum 1.5', () => ({ ...base(), scheduler: { quantum: 1.5 } }), RangeError, 'scheduler.quantum'],
      ['maxQueuedBytesPerFlow too small', () => ({ ...base(), scheduler: { maxQueuedBytesPerFlow: 1000 } }), RangeError, 'scheduler.maxQueuedBytesPerFlow'],
      ['scheduler rate negative', () => ({ ...base(), scheduler: { rate: -1 } }), RangeError, 'scheduler.rate'],
      ['scheduler burst without rate', () => ({ ...base(), scheduler: { burst: 1000 } }), RangeError, 'scheduler.burst'],
      ['unknown scheduler key', () => ({ ...base(), scheduler: { quantom: 1 } }), TypeError, "scheduler: unknown option 'quantom'"],
      ['protection a string', () => ({ ...base(), protection: 'strict' }), TypeError, 'protection must be an object'],
      ['rateLimit connectionsPerSecond 0', () => ({ ...base(), protection: { rateLimit: { connectionsPerSecond: 0 } } }), RangeError, 'protection.rateLimit.connectionsPerSecond'],
      ['rateLimit missing connectionsPerSecond', () => ({ ...base(), protection: { rateLimit: { burst: 5 } } }), TypeError, 'protection.rateLimit.connectionsPerSecond'],
      ['rateLimit a number', () => ({ ...base(), protection: { rateLimit: 10 } }), TypeError, 'protection.rateLimit'],
      ['allowlist bad IPv4', () => ({ ...base(), protection: { allowlist: ['300.1.1.1'] } }), RangeError, 'protection.allowlist[0]'],
      ['blocklist with zone id', () => ({ ...base(), protection: { blocklist: ['fe80::1%eth0'] } }), RangeError, 'protection.blocklist[0]'],
      ['blocklist prefix with sign', () => ({ ...base(), protection: { blocklist: ['10.0.0.0/+8'] } }), RangeError, 'protection.blocklist[0]'],
      ['blocklist not an array', () => ({ ...base(), protection: { blocklist: '10.0.0.0/8' } }), TypeError, 'protection.blocklist'],
      ['bad ja3', () => ({ ...base(), protection: { ja3Blocklist: ['xyz'] } }), RangeError, 'protection.ja3Blocklist[0]'],
      ['bad ja4', () => ({ ...base(), protection: { ja4Blocklist: ['t13d1516h2_8daaf6152771'] } }), RangeError, 'protection.ja4Blocklist[0]'],
      ['ja4 with a bad protocol', () => ({ ...base(), protection: { ja4Blocklist: ['x13d1516h2_8daaf6152771_e5627efa2ab1'] } }), RangeError, 'protection.ja4Blocklist[0]'],
      ['ja4 with a version the engine never computes', () => ({ ...base(), protection: { ja4Blocklist: ['t14d1516h2_8daaf6152771_e5627efa2ab1'] } }), RangeError, "protection.ja4Blocklist[0] must be a JA4 fingerprint like 't13d1516h2_8daaf6152771_e5627efa2ab1' (protocol 't', version"],
      ['a QUIC ja4 (never matches over TCP)', () => ({ ...base(), protection: { ja4Blocklist: ['t13d1516h2_8daaf6152771_e5627efa2ab1', 'q13d0310h3_55b375c5d22e_cd85d2d88918'] } }), RangeError, 'protection.ja4Blocklist[1] is a QUIC JA4 fingerprint'],
      ['a DTLS ja4 (never matches over TCP)', () => ({ ...base(), protection: { ja4Blocklist: ['dd2i0505h2_8daaf6152771_e5627efa2ab1'] } }), RangeError, 'protection.ja4Blocklist[0] is a DTLS JA4 fingerprint'],
      ['tlsHandshakeTimeoutMs too large', () => ({ ...base(), protection: { tlsHandshakeTimeoutMs: 600001 } }), RangeError, 'protection.tlsHandshakeTimeoutMs'],
      ['requireSni 1', () => ({ ...base(), protection: { requireSni: 1 } }), TypeError, 'protection.requireSni'],
      ['maxConcurrentPerIp 1.5', () => ({ ...base(), protection: { maxConcurrentPerIp: 1.5 } }), RangeError, 'protection.maxConcurrentPerIp'],
      ['unknown listener protection key', () => withBase((c) => { c.listeners[0].protection = { blacklist: [] }; }), TypeError, "listeners[0].protection: unknown option 'blacklist'"],
      ['listener protection bad CIDR', () => withBase((c) => { c.listeners[0].protection = { blocklist: ['1.2.3.4/40'] }; }), RangeError, 'listeners[0].protection.blocklist[0]'],
    ];

    it('has at least 40 distinct mistakes', () => {
      assert.ok(ERROR_TABLE.length >= 40);
      assert.equal(new Set(ERROR_TABLE.map((r) => r[0])).size, ERROR_TABLE.length, 'names are unique');
    });

    for (const [name, make, Class, path, includes] of ERROR_TABLE) {
      it(`${name} → ${Class.name} '${path}'`, () => {
        const config = typeof make === 'function' ? make() : make;
        const err = assertConfigError(() => normalizeConfig(config), Class, path, includes);
        if (process.env.LEGATO_PRINT_CONFIG_ERRORS) console.log(`      ${err.message}`);
      });
    }

    it('reads own properties only (a polluted prototype supplies nothing)', () => {
      Object.prototype.port = 443; // eslint-disable-line no-extend-native
      try {
        assertConfigError(() => normalizeConfig(withBase((c) => { delete c.listeners[0].port; })), TypeError, 'listeners[0].port');
      } finally {
        delete Object.prototype.port;
      }
    });
  });

  describe('input is not mutated', () => {
    it('leaves a deeply frozen full config untouched', () => {
      const input = {
        workerThreads: 2,
        scheduler: { quantum: 'auto', rate: 1000 },
        protection: { allowlist: ['10.0.0.1'], ja3Blocklist: [JA3.toUpperCase()], rateLimit: { connectionsPerSecond: 3 } },
        listeners: [
          { host: '[::1]', port: 0, defaultCert: PAIR(), protection: { blocklist: ['192.168.0.0/16'] } },
          { kind: 'connect', port: 0, connect: { allowPorts: [8443, 22], allowDomains: ['*.Example.com'] } },
        ],
        routes: [
          { sni: 'A.test.', terminateTls: true, upstreams: [TCP(), { kind: 'uds', path: '/s' }] },
          { sni: '*.B.test', suspended: true },
        ],
      };
      const before = structuredClone(input);
      deepFreeze(input);
      const n = normalizeConfig(input);
      assert.deepStrictEqual(input, before);
      assert.notEqual(n.listeners[0], input.listeners[0]);
      assert.notEqual(n.routes[0].upstreams[0], input.routes[0].upstreams[0]);
      // And the output is not aliased to the input: changing it leaves the input alone.
      n.routes[0].upstreams[0].port = 1;
      n.listeners[1].connect.allowDomains.push('x.test');
      assert.deepStrictEqual(input, before);
    });
  });

  describe('normalizeUpdate', () => {
    function current() {
      return normalizeConfig({
        workerThreads: 3,
        protection: { tlsHandshakeTimeoutMs: 4000, blocklist: ['10.0.0.0/8'] },
        listeners: [
          { port: 1, defaultCert: PAIR(), protection: { requireSni: true } },
          { port: 2, defaultCert: PAIR() },
          { kind: 'connect', port: 3, protection: { maxConcurrentPerIp: 4 } },
        ],
        routes: [{ sni: 'a.test', upstreams: [TCP()] }],
      });
    }

    it('replaces routes and keeps listeners and the rest', () => {
      const cur = current();
      const next = normalizeUpdate({ routes: [{ sni: 'B.test', upstreams: [{ kind: 'tcp', host: 'b', port: 2 }] }] }, cur);
      assert.deepStrictEqual(next.listeners, cur.listeners);
      assert.deepStrictEqual(next.protection, cur.protection);
      assert.equal(next.workerThreads, 3);
      assert.deepStrictEqual(next.scheduler, cur.scheduler);
      assert.deepStrictEqual(next.routes.map((r) => r.sni), ['b.test']);
      assert.notEqual(next, cur);
      assert.deepStrictEqual(cur.routes.map((r) => r.sni), ['a.test']);
    });

    it('replaces top-level protection and re-merges each listener’s own fields', () => {
      const cur = current();
      const next = normalizeUpdate({ protection: { maxConcurrentPerIp: 9 } }, cur);
      assert.deepStrictEqual(next.protection, { ...DEFAULT_PROTECTION, maxConcurrentPerIp: 9 });
      assert.deepStrictEqual(next.listeners[0].protection, { ...DEFAULT_PROTECTION, maxConcurrentPerIp: 9, requireSni: true });
      assert.deepStrictEqual(next.listeners[1].protection, { ...DEFAULT_PROTECTION, maxConcurrentPerIp: 9 });
      assert.deepStrictEqual(next.listeners[2].protection, { ...DEFAULT_PROTECTION, maxConcurrentPerIp: 4 });
      assert.deepStrictEqual(next.routes, cur.routes);
      // A second update still knows the listeners' own fields.
      const again = normalizeUpdate({ protection: null }, next);
      assert.deepStrictEqual(again.listeners[0].protection, { ...DEFAULT_PROTECTION, requireSni: true });
      assert.deepStrictEqual(again.protection, DEFAULT_PROTECTION);
    });

    it('a protection update that does not name maxTrackedIps keeps the running one; another value is refused', () => {
      const cur = normalizeConfig({ listeners: [{ port: 0 }], routes: [{ sni: '', upstreams: [TCP()] }], protection: { maxTrackedIps: 5000 } });
      const next = normalizeUpdate({ protection: { maxConcurrentPerIp: 5 } }, cur);
      assert.strictEqual(next.protection.maxTrackedIps, 5000);
      assert.strictEqual(next.protection.maxConcurrentPerIp, 5);
      assert.strictEqual(normalizeUpdate({ protection: null }, cur).protection.maxTrackedIps, 5000);
      assert.strictEqual(normalizeUpdate({ protection: { maxTrackedIps: 5000 } }, cur).protection.maxTrackedIps, 5000);
      assertConfigError(() => normalizeUpdate({ protection: { maxTrackedIps: 6000 } }, cur), RangeError, 'protection.maxTrackedIps cannot be changed by updateConfig');
    });

    it('an empty update returns an equal config', () => {
      const cur = current();
      assert.deepStrictEqual(normalizeUpdate({}, cur), cur);
    });

    it('validates routes against the existing listeners', () => {
      const cur = current();
      // Every tls listener has a defaultCert, so a terminating route needs no cert.
      const next = normalizeUpdate({ routes: [{ sni: '', terminateTls: true, upstreams: [TCP()] }] }, cur);
      assert.equal(next.routes[0].terminateTls, true);
      const plain = normalizeConfig(base());
      assertConfigError(() => normalizeUpdate({ routes: [{ terminateTls: true, upstreams: [TCP()] }] }, plain), RangeError, 'routes[0].cert');
      assertConfigError(() => normalizeUpdate({ routes: [] }, plain), RangeError, 'routes must not be empty');
    });

    it('rejects unknown keys and fixed keys, naming them', () => {
      const cur = current();
      assertConfigError(() => normalizeUpdate({ routez: [] }, cur), TypeError, "unknown option 'routez'", "did you mean 'routes'?");
      for (const key of ['listeners', 'workerThreads', 'workerPriority', 'readBufferSize', 'scheduler']) {
        assertConfigError(() => normalizeUpdate({ [key]: undefined }, cur), RangeError, `${key} cannot be changed by updateConfig`);
      }
      assertConfigError(() => normalizeUpdate(null, cur), TypeError, 'update must be an object');
      assertConfigError(() => normalizeUpdate({ protection: { requireSni: 'yes' } }, cur), TypeError, 'protection.requireSni');
      assertConfigError(() => normalizeUpdate({ routes: [{ sni: 'x', upstreams: [{ kind: 'tcp', host: 'h', port: 0 }] }] }, cur), RangeError, 'routes[0].upstreams[0].port');
    });

    it('on error changes nothing', () => {
      const cur = current();
      const before = snapshot(cur);
      const own = cur.listeners.map((l) => structuredClone(l._ownProtection));
      const bad = [
        { routes: [{ sni: 'a', upstreams: [TCP()] }, { sni: 'A', upstreams: [TCP()] }] },
        { protection: { ja3Blocklist: ['nope'] }, routes: [{ upstreams: [TCP()] }] },
        { routes: [{ upstreams: [TCP()] }], listeners: [] },
      ];
      for (const u of bad) assert.throws(() => normalizeUpdate(u, cur), (e) => isConfigError(e));
      assert.deepStrictEqual(cur, before);
      assert.deepStrictEqual(cur.listeners.map((l) => l._ownProtection), own);
    });

    it('does not mutate the update or the current config on success', () => {
      const cur = current();
      const before = snapshot(cur);
      const update = deepFreeze({ routes: [{ sni: 'N.test', upstreams: [TCP()] }], protection: { allowlist: ['1.1.1.1'] } });
      const updateBefore = structuredClone(update);
      const next = normalizeUpdate(update, cur);
      assert.deepStrictEqual(update, updateBefore);
      assert.deepStrictEqual(cur, before);
      next.listeners[0].protection.allowlist.push('x');
      assert.deepStrictEqual(cur, before);
    });

    it('refuses a current config that lost its internal fields (programming error)', () => {
      const cur = structuredClone(current());
      assert.throws(() => normalizeUpdate({}, cur), (e) => e instanceof TypeError && !isConfigError(e));
    });
  });

  describe('normalizeDecision', () => {
    it('normalizes like a route', () => {
      const d = normalizeDecision({ upstreams: [{ kind: 'tcp', host: '[::1]', port: 443 }, { kind: 'uds', path: '/s', pid: 1, tid: 2, weight: 4 }], terminateTls: true, cert: PAIR(), alpn: ['h2'], balance: 'hash' });
      assert.deepStrictEqual(d, {
        upstreams: [{ kind: 'tcp', host: '::1', port: 443, weight: 1, tls: null }, { kind: 'uds', path: '/s', weight: 4, ipAffinity: false, ipAffinityTtlMs: 300000, pid: 1, tid: 2 }],
        terminateTls: true,
        cert: { certChain: Buffer.from(CERT), privateKey: Buffer.from(KEY) },
        mtls: null,
        alpn: ['h2'],
        balance: 'hash', connectTimeoutMs: 10000, retries: 2, maxFails: 3, failTimeoutMs: 10000, proxyProtocol: 'none', forwardFingerprint: false,
      });
    });

    it('fills defaults', () => {
      assert.deepStrictEqual(normalizeDecision({ upstreams: [TCP()] }), { upstreams: [{ ...TCP(), weight: 1, tls: null }], terminateTls: false, cert: null, mtls: null, alpn: ['http/1.1'], balance: 'leastConn', connectTimeoutMs: 10000, retries: 2, maxFails: 3, failTimeoutMs: 10000, proxyProtocol: 'none', forwardFingerprint: false });
    });

    it('null means close', () => {
      assert.equal(normalizeDecision(null), null);
    });

    it('rejects mistakes with the decision path', () => {
      assertConfigError(() => normalizeDecision(undefined), TypeError, 'decision must be an object or null');
      assertConfigError(() => normalizeDecision({}), TypeError, 'decision.upstreams is required');
      assertConfigError(() => normalizeDecision({ upstreams: [] }), RangeError, 'decision.upstreams must not be empty');
      assertConfigError(() => normalizeDecision({ upstreams: [TCP()], sni: 'x' }), TypeError, "decision: unknown option 'sni'");
      assertConfigError(() => normalizeDecision({ upstreams: [{ kind: 'tcp', host: 'h', port: 1e6 }] }), RangeError, 'decision.upstreams[0].port');
      assertConfigError(() => normalizeDecision({ upstreams: [TCP()], cert: { certChain: CERT } }), TypeError, 'decision.cert.privateKey');
      assertConfigError(() => normalizeDecision({ upstreams: [TCP()], terminateTls: 1 }), TypeError, 'decision.terminateTls');
      assertConfigError(() => normalizeDecision({ upstreams: [TCP()], alpn: [5] }), TypeError, 'decision.alpn[0]');
      assertConfigError(() => normalizeDecision({}, 'resolveConnection(decision)'), TypeError, 'resolveConnection(decision).upstreams');
    });

    it('does not mutate the decision', () => {
      const d = deepFreeze({ upstreams: [{ kind: 'tcp', host: 'A.test', port: 1 }], alpn: ['h2'] });
      const before = structuredClone(d);
      normalizeDecision(d);
      assert.deepStrictEqual(d, before);
    });
  });

  describe('assertSupported', () => {
    // One sample per feature of the table, keyed by its name, with the path expected in the
    // message. When a feature lands and its table entry is deleted, its sample must pass.
    const SAMPLES = {
      'route terminateTls': [() => withBase((c) => { c.routes[0].terminateTls = true; c.routes[0].cert = PAIR(); }), 'routes[0].terminateTls'],
      'route suspended': [() => withBase((c) => { c.routes.push({ sni: 'h.test', suspended: true }); }), 'routes[1].suspended'],
      'route maxConnectionsPerSecond': [() => withBase((c) => { c.routes[0].maxConnectionsPerSecond = 5; }), 'routes[0].maxConnectionsPerSecond'],
      'route proxyProtocol': [() => withBase((c) => { c.routes[0].proxyProtocol = 'v2'; }), 'routes[0].proxyProtocol'],
      'route mtls': [() => withBase((c) => { c.routes[0].mtls = { clientCaCert: CERT }; }), 'routes[0].mtls'],
      'upstream ipAffinity': [() => withBase((c) => { c.routes[0].upstreams.push({ kind: 'uds', path: '/s', ipAffinity: true }); }), 'routes[0].upstreams[1].ipAffinity'],
      'protection rateLimit': [() => ({ ...base(), protection: { rateLimit: { connectionsPerSecond: 1 } } }), 'protection.rateLimit'],
      'protection maxConcurrentPerIp': [() => withBase((c) => { c.listeners[0].protection = { maxConcurrentPerIp: 2 }; }), 'listeners[0].protection.maxConcurrentPerIp'],
      'protection allowlist': [() => ({ ...base(), protection: { allowlist: ['10.0.0.0/8'] } }), 'protection.allowlist'],
      'protection blocklist': [() => ({ ...base(), protection: { blocklist: ['10.0.0.0/8'] } }), 'protection.blocklist'],
      'protection ja3Blocklist': [() => ({ ...base(), protection: { ja3Blocklist: [JA3] } }), 'protection.ja3Blocklist'],
      'protection ja4Blocklist': [() => ({ ...base(), protection: { ja4Blocklist: [JA4] } }), 'protection.ja4Blocklist'],
      'protection requireSni': [() => ({ ...base(), protection: { requireSni: true } }), 'protection.requireSni'],
      'listener mtls': [() => withBase((c) => { c.listeners[0].mtls = { clientCaCert: CERT }; }), 'listeners[0].mtls'],
      'listener defaultCert': [() => withBase((c) => { c.listeners[0].defaultCert = PAIR(); }), 'listeners[0].defaultCert'],
      'listener kind connect': [() => withBase((c) => { c.listeners.push({ kind: 'connect', port: 9 }); }), "listeners[1].kind 'connect'"],
      'scheduler rate': [() => ({ ...base(), scheduler: { rate: 1000000 } }), 'scheduler.rate'],
    };
    const listed = new Set(NOT_SUPPORTED_YET.map((e) => e.feature));

    it('accepts a minimal config', () => {
      assertSupported(normalizeConfig(base()));
    });

    it('every table entry has a sample here', () => {
      for (const name of listed) assert.ok(SAMPLES[name], `add a sample for '${name}'`);
    });

    for (const [name, [make, path]] of Object.entries(SAMPLES)) {
      it(`${name}: throws while listed, passes once delisted`, () => {
        const n = normalizeConfig(make());
        if (listed.has(name)) {
          assertConfigError(() => assertSupported(n), RangeError, `${path} is not supported yet`);
        } else {
          assertSupported(n);
        }
      });
    }
  });
});
