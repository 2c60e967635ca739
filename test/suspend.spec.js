'use strict';
// Suspended routes (issue 4, part 1): a connection on a route with `suspended: true` is held with
// its ClientHello, JS hears of it through a 'suspended' event, and resolveConnection(id, decision)
// continues it as a configured route would — passthrough to a real TLS origin, termination with
// the decision's certificate or the listener's defaultCert — or closes it (null).
//
// Covered: the event's fields (JA3/JA4 only as to their form: lg_ja has its own tests);
// resolving 1 ms after the event and 10 ms before the timeout; passthrough (the client verifies
// the origin's chain through the proxy); termination with a certificate given only in the
// decision (and its ALPN list), with the listener's defaultCert, and with the decision's mTLS;
// bytes sent while held (beyond what the engine keeps) forwarded in order; decisions racing the
// timeout; null; unknown, malformed and non-string ids, and other spellings of a live id; a
// second resolve; a client that leaves while held; the timeout; stop() with held connections;
// malformed decisions (they throw, the connection stays pending, a later valid decision works);
// a non-TLS client on the '' route; 1,000 connections held and resolved at once on four
// workers; the event queue's bound (suspendedDropped); a throwing handler, with and without an
// 'error' listener.

const assert = require('assert');
const { getCerts } = require('./helpers/certs');
const { getTlsPki, pair } = require('./helpers/tlsca');
const { startTlsOrigin } = require('./helpers/servers');
const { startProxy, portOf, tcp, connect, collect, cleanup } = require('./helpers/proxy');
const { waitFor, sleep } = require('./helpers/wait');
const { spawnFixture } = require('./helpers/child');
const {
  suspendedRoute, watchSuspended, startHttpUpstream, startTaggedEcho, tlsOutcome, echoRound, runNode,
} = require('./helpers/suspend');

const GET = (host) => `GET / HTTP/1.0\r\nHost: ${host}\r\n\r\n`;

/** The HTTP body of a response read to the end (or '' when there is none). */
function bodyOf(buf) {
  const text = buf.toString('latin1');
  const i = text.indexOf('\r\n\r\n');
  return i < 0 ? '' : text.slice(i + 4);
}

/**
 * Start a proxy with one suspended '' route (`opts.route`: more route options; `opts.proxy`:
 * more proxy options) and watch its 'suspended' events.
 */
async function suspendProxy(opts = {}) {
  const proxy = await startProxy({ routes: [suspendedRoute('', opts.route)], ...opts.proxy });
  return { proxy, port: portOf(proxy), events: watchSuspended(proxy) };
}

/** Wait until metrics()[key] === value exactly (counters only grow, gauges settle). */
async function metricIs(proxy, key, value, ms = 5000) {
  let m;
  await waitFor(() => { m = proxy.metrics(); return m[key] === value; }, ms,
    { message: `metrics().${key} did not become ${value}`, describe: () => m });
  return m;
}

/** The suspend counters, for one deepStrictEqual. */
function suspendCounters(m) {
  return {
    pendingSuspended: m.pendingSuspended,
    suspendedTotal: m.suspendedTotal,
    suspendedResolved: m.suspendedResolved,
    suspendedRejected: m.suspendedRejected,
    suspendedTimedOut: m.suspendedTimedOut,
    suspendedDropped: m.suspendedDropped,
    suspendedClientGone: m.suspendedClientGone,
  };
}

const ZERO = {
  pendingSuspended: 0, suspendedTotal: 0, suspendedResolved: 0, suspendedRejected: 0,
  suspendedTimedOut: 0, suspendedDropped: 0, suspendedClientGone: 0,
};

describe('suspended routes', function () {
  this.timeout(30000);
  let certs; // passthrough origins (helpers/certs)
  let pki; // termination material (helpers/tlsca)

  before(function () {
    this.timeout(120000);
    certs = getCerts();
    pki = getTlsPki();
  });

  afterEach(cleanup);

  describe("the 'suspended' event and resolving", function () {
    it('carries id, sni, peer, listener, ALPN and JA3/JA4; resolving 1 ms after the event passes the connection through', async function () {
      const origin = await startTlsOrigin('origin-a', certs.leaves['a.test']);
      const { proxy, port, events } = await suspendProxy();
      const seen = [];
      proxy.on('suspended', (conn) => {
        seen.push(conn);
        setTimeout(() => {
          conn.resolved = proxy.resolveConnection(conn.id, { upstreams: [tcp(origin.port)] });
        }, 1);
      });
      const client = tlsOutcome(port, 'a.test', { ca: certs.ca, ALPNProtocols: ['h2', 'http/1.1'], write: GET('a.test') });
      const conn = await events.next();
      const r = await client;

      assert.strictEqual(typeof conn.id, 'string');
      assert.match(conn.id, /^\d+\.\d+$/);
      assert.strictEqual(conn.sni, 'a.test');
      assert.strictEqual(conn.peerIp, '127.0.0.1');
      assert.strictEqual(conn.peerPort, r.localPort, "peerPort is the client socket's port");
      assert.deepStrictEqual(conn.listener, { host: '127.0.0.1', port });
      assert.deepStrictEqual(conn.alpn, ['h2', 'http/1.1']);
      assert.match(conn.ja3, /^[0-9a-f]{32}$/, 'JA3: an MD5 in hex');
      assert.match(conn.ja4, /^t13d\d{4}h2_[0-9a-f]{12}_[0-9a-f]{12}$/, 'JA4 of a TLS 1.3 client with SNI offering h2 first');
      assert.strictEqual(seen.length, 1);
      assert.strictEqual(conn.resolved, true, 'resolveConnection returned true');

      assert.ifError(r.error);
      assert.strictEqual(r.secure, true);
      assert.strictEqual(r.authorized, true, "the client verified the origin's chain");
      assert.strictEqual(r.peerCN, 'a.test');
      assert.strictEqual(bodyOf(r.data), 'origin=origin-a\nsni=a.test\n');
      assert.strictEqual(origin.requests.length, 1);
      const m = await metricIs(proxy, 'activeConnections', 0);
      assert.deepStrictEqual(suspendCounters(m), { ...ZERO, suspendedTotal: 1, suspendedResolved: 1 });
    });

    it("leaves out ALPN names holding a newline or a NUL (they would forge or cut the event's alpn list)", async function () {
      const { proxy, port, events } = await suspendProxy();
      const client = tlsOutcome(port, 'a.test', { ca: certs.ca, ALPNProtocols: ['h2\nforged', 'x\0y', 'http/1.1'] });
      const conn = await events.next();
      assert.deepStrictEqual(conn.alpn, ['http/1.1']);
      assert.strictEqual(proxy.resolveConnection(conn.id, null), true);
      await client;
    });

    // 50 ms of margin: under ASan a 290 ms JS timer once fired at 300.5 ms, past a 300 ms deadline.
    it('resolves 50 ms before the timeout (suspendTimeoutMs 1000, decision at 950 ms)', async function () {
      const up = await startTaggedEcho('A');
      const { proxy, port, events } = await suspendProxy({ route: { suspendTimeoutMs: 1000 } });
      const s = await connect(port);
      s.write('early bytes\n');
      const conn = await events.next();
      const t0 = process.hrtime.bigint();
      await new Promise((resolve) => setTimeout(resolve, 950));
      const late = Number(process.hrtime.bigint() - t0) / 1e6;
      const ok = proxy.resolveConnection(conn.id, { upstreams: [tcp(up.port)] });
      assert.strictEqual(ok, true, `resolveConnection at ${late.toFixed(1)} ms after the event returned false`);
      // The held bytes go first, then the connection relays.
      const got = await echoRound(s, Buffer.from('after the decision\n'), 10000, 'early bytes\n'.length);
      assert.strictEqual(got.toString(), 'early bytes\nafter the decision\n');
      // Still relaying well past the suspend deadline.
      await sleep(400);
      assert.strictEqual((await echoRound(s, Buffer.from('x'))).toString(), 'x');
      const m = proxy.metrics();
      assert.deepStrictEqual(suspendCounters(m), { ...ZERO, suspendedTotal: 1, suspendedResolved: 1 });
      assert.strictEqual(m.activeConnections, 1);
    });

    it('passes through to a real TLS origin; the client verifies the origin certificate', async function () {
      const originA = await startTlsOrigin('origin-a', certs.leaves['a.test']);
      const originB = await startTlsOrigin('origin-b', certs.leaves['*.b.test']);
      const { proxy, port, events } = await suspendProxy();
      const clientA = tlsOutcome(port, 'a.test', { ca: certs.ca, write: GET('a.test') });
      const clientB = tlsOutcome(port, 'x.y.b.test', { ca: certs.ca, write: GET('x.y.b.test') });
      const e1 = await events.next();
      const e2 = await events.next();
      const bySni = { [e1.sni]: e1, [e2.sni]: e2 };
      assert.deepStrictEqual(Object.keys(bySni).sort(), ['a.test', 'x.y.b.test']);
      assert.notStrictEqual(e1.id, e2.id);
      assert.strictEqual(proxy.resolveConnection(bySni['x.y.b.test'].id, { upstreams: [tcp(originB.port)], terminateTls: false }), true);
      assert.strictEqual(proxy.resolveConnection(bySni['a.test'].id, { upstreams: [tcp(originA.port)] }), true);
      const [a, b] = await Promise.all([clientA, clientB]);
      for (const [r, cn, body] of [[a, 'a.test', 'origin=origin-a\nsni=a.test\n'], [b, '*.b.test', 'origin=origin-b\nsni=x.y.b.test\n']]) {
        assert.ifError(r.error);
        assert.strictEqual(r.authorized, true);
        assert.strictEqual(r.peerCN, cn);
        assert.strictEqual(bodyOf(r.data), body);
      }
      const m = await metricIs(proxy, 'activeConnections', 0);
      assert.deepStrictEqual(suspendCounters(m), { ...ZERO, suspendedTotal: 2, suspendedResolved: 2 });
      assert.strictEqual(m.tlsHandshakes, 0, 'passthrough: the proxy terminated nothing');
    });

    it("terminates TLS with a certificate given only in the decision (the listener has no defaultCert)", async function () {
      const up = await startHttpUpstream('plain-1');
      const { proxy, port, events } = await suspendProxy();
      const client = tlsOutcome(port, 'a.test', { ca: pki.ca, ALPNProtocols: ['h2', 'http/1.1'], write: 'POST / HTTP/1.0\r\nHost: a.test\r\nContent-Length: 5\r\n\r\nhello' });
      const conn = await events.next();
      assert.strictEqual(conn.sni, 'a.test');
      assert.strictEqual(proxy.resolveConnection(conn.id, { upstreams: [tcp(up.port)], terminateTls: true, cert: pair(pki.leaves.a), alpn: ['http/1.1'] }), true);
      const r = await client;
      assert.ifError(r.error);
      assert.strictEqual(r.authorized, true, "the client verified legato's chain against the root");
      assert.strictEqual(r.peerCN, 'a.test');
      assert.strictEqual(r.alpn, 'http/1.1', "the decision's ALPN list was used");
      assert.strictEqual(bodyOf(r.data), 'upstream=plain-1\nhello');
      assert.strictEqual(up.requests, 1);
      const m = await metricIs(proxy, 'activeConnections', 0);
      assert.deepStrictEqual(suspendCounters(m), { ...ZERO, suspendedTotal: 1, suspendedResolved: 1 });
      assert.strictEqual(m.tlsHandshakes, 1);
    });

    it("terminates TLS with the suspended route's own cert when the decision gives none (before the listener's defaultCert)", async function () {
      const up = await startHttpUpstream('plain-r');
      const { proxy, port, events } = await suspendProxy({
        route: { cert: pair(pki.leaves.a) },
        proxy: { listener: { defaultCert: pair(pki.leaves.def) } },
      });
      const client = tlsOutcome(port, 'a.test', { ca: pki.ca, write: GET('a.test') });
      const conn = await events.next();
      assert.strictEqual(proxy.resolveConnection(conn.id, { upstreams: [tcp(up.port)], terminateTls: true }), true);
      const r = await client;
      assert.ifError(r.error);
      assert.strictEqual(r.authorized, true);
      assert.strictEqual(r.peerCN, 'a.test', "the route's cert, not the listener's default");
      assert.strictEqual(bodyOf(r.data), 'upstream=plain-r\n');
      const m = await metricIs(proxy, 'activeConnections', 0);
      assert.strictEqual(m.tlsHandshakes, 1);
    });

    it('a terminating decision made after tlsHandshakeTimeoutMs: the handshake gets its own full timeout from the decision', async function () {
      const up = await startHttpUpstream('late');
      const { proxy, port, events } = await suspendProxy({
        route: { cert: pair(pki.leaves.a), suspendTimeoutMs: 30000 },
        proxy: { listener: { protection: { tlsHandshakeTimeoutMs: 1000 } } },
      });
      const client = tlsOutcome(port, 'a.test', { ca: pki.ca, write: GET('a.test') });
      const conn = await events.next();
      await sleep(1500); // held longer than the handshake timeout
      assert.strictEqual(proxy.resolveConnection(conn.id, { upstreams: [tcp(up.port)], terminateTls: true }), true);
      const r = await client;
      assert.ifError(r.error);
      assert.strictEqual(bodyOf(r.data), 'upstream=late\n');
      const m = await metricIs(proxy, 'activeConnections', 0);
      assert.strictEqual(m.tlsHandshakes, 1);
      assert.strictEqual(m.handshakeFailures, 0);
    });

    it("terminates TLS with the listener's defaultCert when the decision gives none", async function () {
      const up = await startHttpUpstream('plain-2');
      const { proxy, port, events } = await suspendProxy({ proxy: { listener: { defaultCert: pair(pki.leaves.def) } } });
      const client = tlsOutcome(port, 'default.test', { ca: pki.ca, write: GET('default.test') });
      const conn = await events.next();
      assert.strictEqual(proxy.resolveConnection(conn.id, { upstreams: [tcp(up.port)], terminateTls: true }), true);
      const r = await client;
      assert.ifError(r.error);
      assert.strictEqual(r.authorized, true);
      assert.strictEqual(r.peerCN, 'default.test');
      assert.strictEqual(bodyOf(r.data), 'upstream=plain-2\n');
      const m = await metricIs(proxy, 'activeConnections', 0);
      assert.deepStrictEqual(suspendCounters(m), { ...ZERO, suspendedTotal: 1, suspendedResolved: 1 });
      assert.strictEqual(m.tlsHandshakes, 1);
    });

    it("applies the decision's mTLS: a trusted client certificate is served, a client without one is refused", async function () {
      const up = await startHttpUpstream('plain-m');
      const { proxy, port, events } = await suspendProxy();
      const decision = { upstreams: [tcp(up.port)], terminateTls: true, cert: pair(pki.leaves.a), mtls: { clientCaCert: pki.clientCa } };
      const withCert = tlsOutcome(port, 'a.test', { ca: pki.ca, write: GET('a.test'), tlsOptions: { cert: pki.client.cert, key: pki.client.key } });
      assert.strictEqual(proxy.resolveConnection((await events.next()).id, decision), true);
      const ok = await withCert;
      assert.ifError(ok.error);
      assert.strictEqual(ok.authorized, true);
      assert.strictEqual(bodyOf(ok.data), 'upstream=plain-m\n');
      // TLS 1.2: the refusal comes inside the handshake, before the client calls it done.
      const without = tlsOutcome(port, 'a.test', { ca: pki.ca, write: GET('a.test'), tlsOptions: { maxVersion: 'TLSv1.2' } });
      assert.strictEqual(proxy.resolveConnection((await events.next()).id, decision), true);
      const refused = await without;
      assert.strictEqual(refused.secure, false);
      assert.strictEqual(refused.data.length, 0);
      assert.strictEqual(up.requests, 1);
      const m = await metricIs(proxy, 'activeConnections', 0);
      assert.deepStrictEqual(suspendCounters(m), { ...ZERO, suspendedTotal: 2, suspendedResolved: 2 });
      assert.strictEqual(m.handshakeFailuresNoCertificate, 1);
    });

    it('forwards, in order, everything a held client sent — beyond what the engine keeps, the rest waits in the kernel', async function () {
      const up = await startTaggedEcho('A');
      const { proxy, port, events } = await suspendProxy();
      const s = await connect(port);
      const early = Buffer.alloc(200 * 1024);
      for (let i = 0; i < early.length; i++) early[i] = (i * 7 + (i >> 10)) & 0xff;
      s.write(early);
      const conn = await events.next();
      await sleep(100); // the client keeps sending while held
      assert.strictEqual(proxy.metrics().pendingSuspended, 1);
      assert.strictEqual(proxy.resolveConnection(conn.id, { upstreams: [tcp(up.port)] }), true);
      const tail = Buffer.from('and the end');
      const got = await echoRound(s, tail, 10000, early.length);
      assert.strictEqual(got.length, early.length + tail.length);
      assert.ok(got.equals(Buffer.concat([early, tail])), 'byte-exact, in order');
      assert.deepStrictEqual(suspendCounters(proxy.metrics()), { ...ZERO, suspendedTotal: 1, suspendedResolved: 1 });
    });

    it('a decision racing the timeout is all or nothing: true means served, false means closed', async function () {
      // suspendTimeoutMs 20, each decision 8-23 ms after its event: some land before the
      // deadline, some after. resolveConnection's answer must match what the client sees.
      const N = 40;
      const up = await startTaggedEcho('A');
      const { proxy, port } = await suspendProxy({ route: { suspendTimeoutMs: 20 } });
      const answers = new Map();
      let k = 0;
      proxy.on('suspended', (conn) => {
        const delay = 8 + (k++ % 16); // 8-23 ms
        setTimeout(() => answers.set(conn.peerPort, proxy.resolveConnection(conn.id, { upstreams: [tcp(up.port)] })), delay);
      });
      const outcomes = await Promise.all(Array.from({ length: N }, async () => {
        const s = await connect(port);
        const peerPort = s.localPort;
        const done = collect(s);
        s.write('ping');
        const first = await Promise.race([new Promise((resolve) => s.once('data', resolve)), done.then(() => null)]);
        s.destroy();
        return { peerPort, served: first !== null && first.toString() === 'ping' };
      }));
      await waitFor(() => answers.size === N, 5000);
      const mismatched = outcomes.filter((o) => answers.get(o.peerPort) !== o.served)
        .map((o) => `port ${o.peerPort}: resolve ${answers.get(o.peerPort)}, served ${o.served}`);
      assert.deepStrictEqual(mismatched, []);
      const served = outcomes.filter((o) => o.served).length;
      const m = await metricIs(proxy, 'activeConnections', 0);
      assert.deepStrictEqual(suspendCounters(m), { ...ZERO, suspendedTotal: N, suspendedResolved: served, suspendedTimedOut: N - served });
    });

    it('null closes the connection (suspendedRejected)', async function () {
      const up = await startTaggedEcho('A');
      const { proxy, port, events } = await suspendProxy();
      const client = tlsOutcome(port, 'a.test', { ca: certs.ca });
      const conn = await events.next();
      assert.strictEqual(proxy.resolveConnection(conn.id, null), true);
      const r = await client;
      assert.strictEqual(r.secure, false, 'no handshake happened');
      assert.strictEqual(r.data.length, 0);
      assert.ok(r.error && r.error.message !== 'timeout', `closed by the proxy, not our timeout: ${r.error}`);
      const m = await metricIs(proxy, 'activeConnections', 0);
      assert.deepStrictEqual(suspendCounters(m), { ...ZERO, suspendedTotal: 1, suspendedRejected: 1 });
      assert.strictEqual(up.connections, 0);
      assert.strictEqual(proxy.resolveConnection(conn.id, null), false, 'resolved already');
    });
  });

  describe('ids', function () {
    it('returns false for unknown, malformed and non-string ids without throwing or touching a pending connection', async function () {
      const up = await startTaggedEcho('A');
      const { proxy, port, events } = await suspendProxy();
      const s = await connect(port);
      s.write('held\n');
      const conn = await events.next();
      const [w, serial] = conn.id.split('.');
      const decision = { upstreams: [tcp(up.port)] };
      const bad = [
        `${w}.${Number(serial) + 1}`, `${w}.${Number(serial) + 1000}`, `99.${serial}`, `${w}.0`,
        `${w}.${serial}.0`, `${conn.id} `, `${w}.`, `.${serial}`, `${w}.-1`, `${w}`,
        `${w}.18446744073709551616`, `${conn.id}x`, '', 'garbage', '1.1'.repeat(50),
        Number(serial), undefined, null, {}, [conn.id], { toString: () => conn.id }, Symbol('id'),
      ];
      for (const id of bad) {
        let r;
        assert.doesNotThrow(() => { r = proxy.resolveConnection(id, decision); }, `id ${String(id)}`);
        assert.strictEqual(r, false, `id ${String(id)} with a decision`);
        assert.strictEqual(proxy.resolveConnection(id, null), false, `id ${String(id)} with null`);
        // The id is judged first: a malformed (or missing) decision for an unknown id is still
        // just false, never a throw.
        for (const d of [{}, undefined, 'nope', { upstreams: [] }, { upstreams: [tcp(up.port)], bogus: 1 }]) {
          assert.doesNotThrow(() => { r = proxy.resolveConnection(id, d); }, `id ${String(id)}, decision ${JSON.stringify(d)}`);
          assert.strictEqual(r, false);
        }
      }
      const m1 = proxy.metrics();
      assert.deepStrictEqual(suspendCounters(m1), { ...ZERO, suspendedTotal: 1, pendingSuspended: 1 });
      assert.strictEqual(proxy.resolveConnection(conn.id, decision), true);
      assert.strictEqual((await echoRound(s, Buffer.from('go\n'), 10000, 5)).toString(), 'held\ngo\n');
      assert.deepStrictEqual(suspendCounters(proxy.metrics()), { ...ZERO, suspendedTotal: 1, suspendedResolved: 1 });
    });

    it('treats other spellings of a live id (whitespace, signs, leading zeros, a NUL) as unknown ids', async function () {
      // Ids are "<worker>.<serial>" as the event gave them; the engine parses them with
      // strtoul/strtoull, which skip leading whitespace and accept a sign and leading zeros, and
      // the id is read as a C string, so a NUL ends it early. One held connection per spelling.
      const up = await startTaggedEcho('A');
      const { proxy, port, events } = await suspendProxy();
      const variants = [
        ['leading space', (w, n) => ` ${w}.${n}`], ['leading tab', (w, n) => `\t${w}.${n}`],
        ['plus sign', (w, n) => `+${w}.${n}`], ['plus in serial', (w, n) => `${w}.+${n}`],
        ['space in serial', (w, n) => `${w}. ${n}`], ['minus zero', (w, n) => (w === '0' ? `-0.${n}` : `-${w}.${n}`)],
        ['leading zero worker', (w, n) => `0${w}.${n}`], ['leading zero serial', (w, n) => `${w}.0${n}`],
        ['trailing NUL', (w, n) => `${w}.${n}\u0000`], ['NUL then junk', (w, n) => `${w}.${n}\u0000junk`],
      ];
      const accepted = [];
      for (const [what, spell] of variants) {
        const s = await connect(port);
        s.write('held\n');
        const conn = await events.next();
        const [w, n] = conn.id.split('.');
        const id = spell(w, n);
        const wrong = proxy.resolveConnection(id, null);
        if (wrong !== false) accepted.push(`${what} (${JSON.stringify(id)} for ${conn.id})`);
        assert.strictEqual(proxy.resolveConnection(conn.id, { upstreams: [tcp(up.port)] }), !wrong, `${what}: the real id`);
        s.destroy();
      }
      assert.deepStrictEqual(accepted, [], 'spellings that resolved (here: closed) a connection they do not name');
    });

    it('a second resolve of the same id returns false and changes nothing', async function () {
      const upA = await startTaggedEcho('A');
      const upB = await startTaggedEcho('B');
      const { proxy, port, events } = await suspendProxy();
      const s = await connect(port);
      s.write('abc');
      const conn = await events.next();
      assert.strictEqual(proxy.resolveConnection(conn.id, { upstreams: [tcp(upA.port)] }), true);
      assert.strictEqual(proxy.resolveConnection(conn.id, { upstreams: [tcp(upB.port)] }), false, 'second decision');
      assert.strictEqual(proxy.resolveConnection(conn.id, null), false, 'a later null');
      assert.strictEqual((await echoRound(s, Buffer.from('def'), 10000, 3)).toString(), 'abcdef', 'served by the first decision (A)');
      assert.strictEqual(upA.connections, 1);
      assert.strictEqual(upB.connections, 0);
      assert.strictEqual(proxy.resolveConnection(conn.id, null), false, 'while relaying');
      assert.deepStrictEqual(suspendCounters(proxy.metrics()), { ...ZERO, suspendedTotal: 1, suspendedResolved: 1 });
      assert.strictEqual(proxy.metrics().activeConnections, 1, 'the late null did not close it');
    });

    it("one proxy's id is unknown to another proxy of the process (each resolves only its own)", async function () {
      const up = await startTaggedEcho('A');
      const a = await suspendProxy({ proxy: { workerThreads: 1 } });
      const b = await suspendProxy({ proxy: { workerThreads: 1 } });
      const sa = await connect(a.port);
      sa.write('for a');
      const sb = await connect(b.port);
      sb.write('for b');
      const ca = await a.events.next();
      const cb = await b.events.next();
      assert.notStrictEqual(ca.id, cb.id, 'ids of two engines differ');
      assert.strictEqual(b.proxy.resolveConnection(ca.id, null), false, "b does not know a's id");
      assert.strictEqual(a.proxy.resolveConnection(cb.id, null), false, "a does not know b's id");
      assert.strictEqual(a.proxy.metrics().pendingSuspended, 1);
      assert.strictEqual(b.proxy.metrics().pendingSuspended, 1);
      assert.strictEqual(a.proxy.resolveConnection(ca.id, { upstreams: [tcp(up.port)] }), true);
      assert.strictEqual(b.proxy.resolveConnection(cb.id, { upstreams: [tcp(up.port)] }), true);
      assert.strictEqual((await echoRound(sa, Buffer.from('!'), 10000, 5)).toString(), 'for a!');
      assert.strictEqual((await echoRound(sb, Buffer.from('?'), 10000, 5)).toString(), 'for b?');
    });
  });

  describe('connections that are never resolved', function () {
    it('drops a client that leaves while held: resolve then returns false (suspendedClientGone)', async function () {
      const up = await startTaggedEcho('A');
      const { proxy, port, events } = await suspendProxy();
      const client = tlsOutcome(port, 'a.test', { ca: certs.ca });
      const conn = await events.next();
      assert.strictEqual(proxy.metrics().pendingSuspended, 1);
      client.socket.destroy(); // leave: the held connection sees EOF
      await client;
      await metricIs(proxy, 'pendingSuspended', 0);
      assert.strictEqual(proxy.resolveConnection(conn.id, { upstreams: [tcp(up.port)] }), false);
      const m = await metricIs(proxy, 'activeConnections', 0);
      assert.deepStrictEqual(suspendCounters(m), { ...ZERO, suspendedTotal: 1, suspendedClientGone: 1 });
      assert.strictEqual(up.connections, 0);
    });

    it('closes the connection after suspendTimeoutMs (suspendedTimedOut); a late resolve returns false', async function () {
      const up = await startTaggedEcho('A');
      const { proxy, port, events } = await suspendProxy({ route: { suspendTimeoutMs: 200 } });
      const s = await connect(port);
      const done = collect(s);
      s.write('waiting\n');
      const conn = await events.next();
      const r = await Promise.race([done, sleep(10000).then(() => null)]);
      assert.ok(r, 'the client was not closed within 10 s of a 200 ms suspend timeout');
      assert.strictEqual(r.data.length, 0);
      const m = await metricIs(proxy, 'activeConnections', 0);
      assert.deepStrictEqual(suspendCounters(m), { ...ZERO, suspendedTotal: 1, suspendedTimedOut: 1 });
      assert.strictEqual(proxy.resolveConnection(conn.id, { upstreams: [tcp(up.port)] }), false);
      assert.strictEqual(up.connections, 0);
    });

    it('stop() closes held connections; resolveConnection afterwards returns false', async function () {
      const up = await startTaggedEcho('A');
      const { proxy, port, events } = await suspendProxy();
      const s1 = await connect(port);
      const s2 = await connect(port);
      const d1 = collect(s1);
      const d2 = collect(s2);
      s1.write('one');
      s2.write('two');
      const e1 = await events.next();
      const e2 = await events.next();
      await proxy.stop({ graceMs: 0 });
      const [r1, r2] = await Promise.all([d1, d2]);
      assert.strictEqual(r1.data.length + r2.data.length, 0);
      assert.strictEqual(proxy.resolveConnection(e1.id, { upstreams: [tcp(up.port)] }), false);
      assert.strictEqual(proxy.resolveConnection(e2.id, null), false);
      const m = proxy.metrics();
      assert.strictEqual(m.pendingSuspended, 0);
      assert.strictEqual(m.activeConnections, 0);
      assert.strictEqual(up.connections, 0);
    });
  });

  describe('malformed decisions', function () {
    it('throw ERR_LEGATO_CONFIG naming decision.…; the connection stays pending and a later valid decision works', async function () {
      const up = await startHttpUpstream('plain-3');
      const { proxy, port, events } = await suspendProxy();
      const client = tlsOutcome(port, 'a.test', { ca: pki.ca, write: GET('a.test') });
      const conn = await events.next();
      const ok = tcp(up.port);
      const cases = [
        ['not an object', 'reject', /^decision must be an object or null/],
        ['no upstreams', {}, /^decision\.upstreams is required/],
        ['empty upstreams', { upstreams: [] }, /^decision\.upstreams must not be empty/],
        ['bad port', { upstreams: [{ kind: 'tcp', host: '127.0.0.1', port: 70000 }] }, /^decision\.upstreams\[0\]\.port /],
        ['bad kind', { upstreams: [{ kind: 'udp', host: '127.0.0.1', port: 1 }] }, /^decision\.upstreams\[0\]\.kind/],
        ['unknown key', { upstreams: [ok], bogus: 1 }, /^decision: unknown option 'bogus'/],
        ['terminateTls not boolean', { upstreams: [ok], terminateTls: 'yes' }, /^decision\.terminateTls /],
        ['garbage certificate', { upstreams: [ok], terminateTls: true, cert: { certChain: pki.bad.garbageCert, privateKey: pki.leaves.a.key } }, /decision\.cert/],
        ['mismatched key', { upstreams: [ok], terminateTls: true, cert: { certChain: pki.leaves.a.chain, privateKey: pki.bad.mismatchedKey } }, /decision\.cert/],
        ['terminating without any certificate', { upstreams: [ok], terminateTls: true }, /^decision\b.*cert/],
      ];
      for (const [what, decision, message] of cases) {
        assert.throws(() => proxy.resolveConnection(conn.id, decision), (err) => {
          assert.strictEqual(err.code, 'ERR_LEGATO_CONFIG', `${what}: ${err.stack}`);
          assert.ok(err instanceof TypeError || err instanceof RangeError, `${what}: ${err.name}`);
          assert.match(err.message, message, what);
          return true;
        }, what);
        assert.strictEqual(proxy.metrics().pendingSuspended, 1, `${what}: still pending`);
      }
      assert.deepStrictEqual(suspendCounters(proxy.metrics()), { ...ZERO, suspendedTotal: 1, pendingSuspended: 1 });
      assert.strictEqual(proxy.resolveConnection(conn.id, { upstreams: [ok], terminateTls: true, cert: pair(pki.leaves.a) }), true);
      const r = await client;
      assert.ifError(r.error);
      assert.strictEqual(r.authorized, true);
      assert.strictEqual(r.peerCN, 'a.test');
      assert.strictEqual(bodyOf(r.data), 'upstream=plain-3\n');
      const m = await metricIs(proxy, 'activeConnections', 0);
      assert.deepStrictEqual(suspendCounters(m), { ...ZERO, suspendedTotal: 1, suspendedResolved: 1 });
    });
  });

  describe('non-TLS clients', function () {
    it("holds a plain-TCP client on the suspended '' route (sni '', alpn []) and relays its bytes once resolved", async function () {
      const up = await startTaggedEcho('B');
      const { proxy, port, events } = await suspendProxy();
      const s = await connect(port);
      s.write('PLAIN HELLO\r\n');
      const conn = await events.next();
      assert.strictEqual(conn.sni, '');
      assert.deepStrictEqual(conn.alpn, []);
      assert.strictEqual(conn.ja3, '', 'no ClientHello, no fingerprint');
      assert.strictEqual(conn.ja4, '');
      assert.strictEqual(conn.peerIp, '127.0.0.1');
      assert.strictEqual(conn.peerPort, s.localPort);
      await sleep(50);
      s.write('more before the decision\n');
      await sleep(50);
      assert.strictEqual(proxy.resolveConnection(conn.id, { upstreams: [tcp(up.port)] }), true);
      const held = 'PLAIN HELLO\r\nmore before the decision\n';
      const all = await echoRound(s, Buffer.from('and after\n'), 10000, held.length);
      assert.strictEqual(Buffer.from(all.map((b) => b ^ 0xff)).toString(), `${held}and after\n`, 'every byte, held ones first, echoed by B');
      const m = proxy.metrics();
      assert.deepStrictEqual(suspendCounters(m), { ...ZERO, suspendedTotal: 1, suspendedResolved: 1 });
      assert.strictEqual(m.nonTlsConnections, 1);
    });
    it('keeps a non-TLS client that half-closes while held: its bytes and its FIN reach the upstream after the decision', async function () {
      const up = await startTaggedEcho('B');
      const { proxy, port, events } = await suspendProxy();
      const s = await connect(port);
      const done = collect(s);
      s.end('REQUEST AND FIN\n'); // write, then shutdown(SHUT_WR): the client still reads
      const conn = await events.next();
      await sleep(100); // the FIN reaches the held connection before the decision
      assert.strictEqual(proxy.metrics().pendingSuspended, 1, 'a half-close is not a departure');
      assert.strictEqual(proxy.resolveConnection(conn.id, { upstreams: [tcp(up.port)] }), true);
      const r = await done;
      assert.ifError(r.error);
      assert.strictEqual(Buffer.from(r.data.map((b) => b ^ 0xff)).toString(), 'REQUEST AND FIN\n', 'echoed by B, which answers the FIN with its own');
      assert.strictEqual(r.ended, true);
      const m = await metricIs(proxy, 'activeConnections', 0);
      assert.deepStrictEqual(suspendCounters(m), { ...ZERO, suspendedTotal: 1, suspendedResolved: 1 });
    });
  });

  describe('many at once', function () {
    it('holds 1,000 connections on four workers and resolves them all at once; every one succeeds end to end', async function () {
      this.timeout(90000);
      const N = 1000;
      const upA = await startTaggedEcho('A');
      const upB = await startTaggedEcho('B');
      const { proxy, port, events } = await suspendProxy({ proxy: { workerThreads: 4 } });
      const fleet = spawnFixture('lifecycle-fleet.js', [JSON.stringify({ port, count: N, payloadBytes: 16384, batch: 100, deadlineMs: 60000 })], { timeoutMs: 80000 });
      await fleet.waitMessage((m) => m.type === 'opened', 40000);
      await waitFor(() => events.count >= N && proxy.metrics().pendingSuspended === N, 20000,
        { message: `not all ${N} connections were held`, describe: () => ({ events: events.count, ...suspendCounters(proxy.metrics()) }) });
      assert.deepStrictEqual(suspendCounters(proxy.metrics()), { ...ZERO, suspendedTotal: N, pendingSuspended: N });
      const ids = new Set(events.all.map((e) => e.id));
      assert.strictEqual(ids.size, N, 'ids are unique');
      const workers = new Set(events.all.map((e) => e.id.split('.')[0]));
      assert.ok(workers.size >= 2, `held on ${workers.size} worker(s) only`);
      assert.ok(events.all.every((e) => e.sni === '' && e.peerIp === '127.0.0.1'));

      let trueCount = 0;
      const decisions = [{ upstreams: [tcp(upA.port)] }, { upstreams: [tcp(upB.port)] }];
      events.all.forEach((e, i) => { if (proxy.resolveConnection(e.id, decisions[i % 2])) trueCount++; });
      assert.strictEqual(trueCount, N, 'every resolveConnection returned true');

      const done = await fleet.waitMessage((m) => m.type === 'done', 60000);
      assert.deepStrictEqual(done.failed, []);
      assert.strictEqual(done.ok, N);
      assert.strictEqual(done.closedEarly, 0);
      assert.deepStrictEqual(done.tags, { A: N / 2, B: N / 2 });
      assert.strictEqual(upA.connections + upB.connections, N);
      const m = await metricIs(proxy, 'activeConnections', 0, 20000);
      assert.deepStrictEqual(suspendCounters(m), { ...ZERO, suspendedTotal: N, suspendedResolved: N });
      assert.strictEqual(m.totalConnections, N);
      assert.strictEqual(m.upstreamConnectFailures, 0);
      assert.deepStrictEqual((await fleet.exited), { code: 0, signal: null });
    });

    it('closes a connection at once when its event cannot be queued (suspendedDropped), and counts it', async function () {
      this.timeout(90000);
      // The JS thread is kept busy inside the first 'suspended' handler while 4,400 connections
      // arrive; the engine queues at most LG_EVENT_QUEUE_MAX (4096) events for JS, so some
      // connections must be closed at once instead of waiting for an event JS never got.
      const N = 4400;
      const up = await startTaggedEcho('A');
      const { proxy, port, events } = await suspendProxy({ proxy: { workerThreads: 2 } });
      let blocked = false;
      let sawDropped = 0;
      proxy.once('suspended', () => {
        blocked = true;
        const deadline = Date.now() + 30000;
        while (Date.now() < deadline) {
          const m = proxy.metrics();
          if (m.suspendedTotal >= N) { sawDropped = m.suspendedDropped; break; }
          const t = Date.now();
          while (Date.now() - t < 5) { /* spin: the JS thread stays busy */ }
        }
      });
      const fleet = spawnFixture('lifecycle-fleet.js', [JSON.stringify({ port, count: N, payloadBytes: 16, batch: 200, deadlineMs: 70000 })], { timeoutMs: 85000 });
      await fleet.waitMessage((m) => m.type === 'opened', 60000);
      await waitFor(() => blocked && events.count + proxy.metrics().suspendedDropped >= N, 30000,
        { message: 'events + drops did not add up to the connections', describe: () => ({ events: events.count, ...suspendCounters(proxy.metrics()) }) });
      const dropped = proxy.metrics().suspendedDropped;
      assert.ok(dropped > 0 && sawDropped > 0, `nothing was dropped (events ${events.count})`);
      for (const e of events.all) assert.strictEqual(proxy.resolveConnection(e.id, { upstreams: [tcp(up.port)] }), true, e.id);
      const done = await fleet.waitMessage((m) => m.type === 'done', 60000);
      assert.deepStrictEqual(done.failed, []);
      assert.strictEqual(done.closedEarly, dropped, 'exactly the dropped connections were closed before a decision');
      assert.strictEqual(done.ok, events.count);
      const m = await metricIs(proxy, 'activeConnections', 0, 20000);
      assert.deepStrictEqual(suspendCounters(m), { ...ZERO, suspendedTotal: N, suspendedResolved: events.count, suspendedDropped: dropped });
      assert.ok(m.eventsDropped >= dropped, `eventsDropped ${m.eventsDropped}`);
      assert.deepStrictEqual((await fleet.exited), { code: 0, signal: null });
    });
  });

  describe('a handler that throws', function () {
    it("is re-emitted as 'error' with the thrown error; the engine keeps serving", async function () {
      const up = await startTaggedEcho('A');
      const { proxy, port, events } = await suspendProxy();
      const boom = new Error('suspended handler failed');
      const thrower = () => { throw boom; };
      proxy.on('suspended', thrower);
      const s1 = await connect(port);
      s1.write('first');
      const e1 = await events.next();
      await waitFor(() => proxy.errors.length === 1, 5000);
      assert.strictEqual(proxy.errors[0], boom, "'error' got the very error thrown");
      // The held connection is intact and can still be resolved.
      assert.strictEqual(proxy.metrics().pendingSuspended, 1);
      assert.strictEqual(proxy.resolveConnection(e1.id, { upstreams: [tcp(up.port)] }), true);
      assert.strictEqual((await echoRound(s1, Buffer.from('!'), 10000, 5)).toString(), 'first!');
      // The next connection: still delivered (and still throwing), still served.
      const s2 = await connect(port);
      s2.write('second');
      const e2 = await events.next();
      await waitFor(() => proxy.errors.length === 2, 5000);
      proxy.off('suspended', thrower);
      assert.strictEqual(proxy.resolveConnection(e2.id, { upstreams: [tcp(up.port)] }), true);
      assert.strictEqual((await echoRound(s2, Buffer.from('?'), 10000, 6)).toString(), 'second?');
      const m = proxy.metrics();
      assert.deepStrictEqual(suspendCounters(m), { ...ZERO, suspendedTotal: 2, suspendedResolved: 2 });
      assert.strictEqual(proxy.errors.length, 2);
    });

    it("an async handler whose promise rejects is re-emitted as 'error' too (not an unhandled rejection)", async function () {
      const up = await startTaggedEcho('A');
      const { proxy, port, events } = await suspendProxy();
      const boom = new Error('async handler failed');
      proxy.on('suspended', async () => { await null; throw boom; });
      const s = await connect(port);
      s.write('first');
      const e = await events.next();
      await waitFor(() => proxy.errors.length === 1, 5000);
      assert.strictEqual(proxy.errors[0], boom);
      assert.strictEqual(proxy.resolveConnection(e.id, { upstreams: [tcp(up.port)] }), true);
      assert.strictEqual((await echoRound(s, Buffer.from('!'), 10000, 5)).toString(), 'first!');
    });

    it("an async 'error' listener that rejects is printed once, not re-emitted to itself", async function () {
      const { Proxy } = require('..');
      const p = new Proxy({ routes: [suspendedRoute('')], listeners: [{ host: '127.0.0.1', port: 0 }] });
      let calls = 0;
      p.on('error', async () => { calls++; throw new Error('the error listener failed too'); });
      const write = process.stderr.write;
      let printed = '';
      process.stderr.write = (x) => { printed += x; return true; };
      try {
        p._report(new Error('first'));
        await new Promise((resolve) => setTimeout(resolve, 50));
      } finally {
        process.stderr.write = write;
      }
      assert.strictEqual(calls, 1);
      assert.match(printed, /the error listener failed too/);
    });

    it('with no error listener, the memory of errors printed once is bounded (messages may hold a client-chosen SNI)', function () {
      const { Proxy } = require('..');
      const p = new Proxy({ routes: [suspendedRoute('')], listeners: [{ host: '127.0.0.1', port: 0 }] });
      const write = process.stderr.write;
      let printed = 0;
      process.stderr.write = () => { printed++; return true; };
      try {
        for (let i = 0; i < 1000; i++) p._report(new Error(`no route for sni x${i}.test`));
        p._report(new Error('no route for sni x999.test')); // still remembered: not printed again
      } finally {
        process.stderr.write = write;
      }
      assert.strictEqual(printed, 1000);
      assert.ok(p._printed.size <= 256, `${p._printed.size} kept`);
    });

    it('with no error listener: printed once to stderr, nothing crashes (child process)', async function () {
      const r = await runNode('lifecycle-throw.js', ['suspended'], { timeoutMs: 30000 });
      assert.strictEqual(r.timedOut, false, `hung; stdout: ${r.stdout} stderr: ${r.stderr}`);
      assert.strictEqual(r.signal, null, r.stderr);
      assert.strictEqual(r.stdout, 'served 3\nerrors 0\n', r.stderr);
      assert.strictEqual(r.code, 0, r.stderr);
      assert.strictEqual(r.stderr.split('handler boom').length - 1, 1, `printed once:\n${r.stderr}`);
      assert.match(r.stderr, /^legato: Error: handler boom\n/);
      assert.doesNotMatch(r.stderr, /Uncaught|triggerUncaughtException|AddressSanitizer|runtime error/);
    });
  });
});
