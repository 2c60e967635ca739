'use strict';
// Session resumption and certificate reloads on terminating routes (issue 3, parts 1 and 2):
//
//  - TLS 1.3 tickets and TLS 1.2 sessions resume (Node `session`, openssl s_client
//    -sess_out/-sess_in and -reconnect), counted `tlsSessionsResumed`;
//  - `updateConfig({ routes })` with unchanged certificate material keeps the SSL_CTX, so
//    sessions stay resumable; a rotated certificate gets a new context and sessions are lost;
//  - a session of one tenant (context) never resumes on another;
//  - a TLS 1.2 session survives a client FIN without close_notify and an idle timeout, not a reset;
//  - bad PEM (garbage, empty, key mismatch, encrypted key, bad intermediate, bad client CA, a bad
//    listener defaultCert): the constructor and updateConfig throw ERR_LEGATO_CONFIG naming the
//    route (`routes[1].cert: private key does not match certificate`), and after a failed
//    updateConfig the running table still serves, with its sessions.

const assert = require('assert');
const fs = require('fs');
const os = require('os');
const path = require('path');
const { pair } = require('./helpers/tlsca');
const { Proxy, makeConfig, startProxy, portOf, tcp, trackDir } = require('./helpers/proxy');
const { startChildProxy } = require('./helpers/child');
const T = require('./fixtures/tls-tools');
const crypto = require('crypto');
const net = require('net');
const tls = require('tls');
const { once } = require('events');
const { trackSocket } = require('./helpers/resources');
const { waitFor } = require('./helpers/wait');

describe('TLS termination: resumption, reloads and bad certificates', function () {
  this.timeout(30000);
  const env = T.terminationSuite();
  const { term } = env;
  const { settled } = T;
  let dir;

  beforeEach(function () {
    dir = trackDir(fs.mkdtempSync(path.join(os.tmpdir(), 'legato-sess-')));
  });


  /** Fresh Buffer copies of a leaf's material: equal bytes, different objects. */
  const copyPair = (leaf) => ({ certChain: Buffer.from(leaf.chain), privateKey: Buffer.from(leaf.key.toString()) });

  let sessN = 0;
  const sessFile = () => path.join(dir, `s${sessN++}.pem`);

  /** s_client GET with -sess_out/-sess_in; resolves 'New' | 'Reused' (throws if served neither). */
  async function sGet(port, name, { version = '-tls1_3', sessOut, sessIn, verifyName = name, extra = [] } = {}) {
    const args = ['-servername', name, '-CAfile', env.pki.caPath, '-verify_return_error', '-verify_hostname', verifyName, version, '-ign_eof', ...extra];
    if (sessOut) args.push('-sess_out', sessOut);
    if (sessIn) args.push('-sess_in', sessIn);
    const s = await T.runSClient(port, args, { input: 'GET /s HTTP/1.0\r\n\r\n' });
    const m = /^(New|Reused), /m.exec(s.out);
    assert.ok(m, `no session line in:\n${s.out}`);
    assert.match(s.out, /up method=GET url=\/s /, `not served:\n${s.out}`);
    return m[1];
  }

  /** Node https GET resuming `session`; resolves { reused, session, peerFingerprint }. */
  async function nodeGet(port, name, { session, version = 'TLSv1.3', checkServerIdentity } = {}) {
    const opts = { ca: env.pki.ca, session, maxVersion: version, minVersion: version };
    if (checkServerIdentity) opts.checkServerIdentity = checkServerIdentity;
    const r = await T.httpsRequest(port, name, opts);
    assert.strictEqual(r.status, 200);
    return { reused: r.tls.reused, session: r.tls.session };
  }


  describe('resumption', function () {
    it('resumes TLS 1.3 sessions from tickets (Node, openssl s_client -sess_out/-sess_in)', async function () {
      const proxy = await startProxy({ routes: [term('a.test', env.pki.leaves.a)] });
      const port = portOf(proxy);
      const first = await nodeGet(port, 'a.test');
      assert.strictEqual(first.reused, false);
      assert.ok(first.session, 'the proxy issued a ticket');
      assert.strictEqual((await nodeGet(port, 'a.test', { session: first.session })).reused, true);

      const f = sessFile();
      assert.strictEqual(await sGet(port, 'a.test', { sessOut: f }), 'New');
      assert.strictEqual(await sGet(port, 'a.test', { sessIn: f }), 'Reused');
      const m = await settled(proxy, 4);
      assert.strictEqual(m.tlsHandshakes, 4);
      assert.strictEqual(m.tlsSessionsResumed, 2);
      assert.strictEqual(m.listeners[0].tlsSessionsResumed, 2);
    });

    it('resumes TLS 1.2 sessions without SNI (default route): tickets and session IDs', async function () {
      const proxy = await startProxy({ listener: { defaultCert: pair(env.pki.leaves.def) }, routes: [term('', null)] });
      const port = portOf(proxy);
      const args = (more) => ['-noservername', '-CAfile', env.pki.caPath, '-tls1_2', '-ign_eof', ...more];
      for (const ticket of [[], ['-no_ticket']]) {
        const f = sessFile();
        const a = await T.runSClient(port, args([...ticket, '-sess_out', f]), { input: 'GET / HTTP/1.0\r\n\r\n' });
        const b = await T.runSClient(port, args([...ticket, '-sess_in', f]), { input: 'GET / HTTP/1.0\r\n\r\n' });
        assert.match(a.out, /^New, TLSv1\.2/m);
        assert.match(b.out, /^Reused, TLSv1\.2/m, `${ticket.join(' ') || 'ticket'}:\n${b.out}`);
        assert.match(b.out, /up method=GET/);
      }
      const m = await settled(proxy, 4);
      assert.strictEqual(m.tlsSessionsResumed, 2);
      assert.strictEqual(m.tlsSniMismatches, 0);
    });

    it('resumes TLS 1.2 sessions of an SNI route (Node; s_client tickets and session IDs)', async function () {
      // Pins a fix: OpenSSL stores the SNI in a TLS 1.2 session only when a servername callback
      // acknowledged it; without one, SSL_get_servername() returned the session's (empty) name on
      // resumption and lg_tls.c sni_matches() closed the connection as an SNI mismatch.
      const proxy = await startProxy({ routes: [term('a.test', env.pki.leaves.a)] });
      const port = portOf(proxy);
      const first = await nodeGet(port, 'a.test', { version: 'TLSv1.2' });
      const second = await T.httpsRequest(port, 'a.test', { ca: env.pki.ca, maxVersion: 'TLSv1.2', session: first.session }).catch((e) => e);
      const m0 = proxy.metrics();
      assert.ok(!(second instanceof Error) && second.status === 200 && second.tls.reused,
        `TLS 1.2 resumption with SNI was not served (tlsSniMismatches=${m0.tlsSniMismatches}, tlsSessionsResumed=${m0.tlsSessionsResumed}): ${second instanceof Error ? second.message : `status ${second.status}, reused ${second.tls.reused}`}`);
      for (const ticket of [[], ['-no_ticket']]) {
        const f = sessFile();
        // The first connection uses the same ticket setting: a session issued with a ticket is not
        // kept in the server's session-ID cache.
        assert.strictEqual(await sGet(port, 'a.test', { version: '-tls1_2', sessOut: f, extra: ticket }), 'New');
        const args = ['-servername', 'a.test', '-CAfile', env.pki.caPath, '-tls1_2', '-ign_eof', '-sess_in', f, ...ticket];
        const s = await T.runSClient(port, args, { input: 'GET /s HTTP/1.0\r\n\r\n' });
        assert.match(s.out, /^Reused, TLSv1\.2/m);
        assert.match(s.out, /up method=GET/, `resumed ${ticket.join(' ') || 'ticket'} session not served:\n${s.out}`);
      }
      const m = await settled(proxy, 6);
      assert.strictEqual(m.tlsSniMismatches, 0);
      assert.strictEqual(m.tlsSessionsResumed, 3);
    });

    /**
     * A TLS 1.2 connection by session ID (no ticket: a ticket carries its session and resumes
     * whatever the cache holds) that makes one request, then ends by `end(raw, t)`; resolves
     * the session once the proxy has closed the connection.
     */
    async function sessionThenEnd(proxy, session, end) {
      const closedBefore = proxy.metrics().closedConnections;
      const raw = trackSocket(net.connect(portOf(proxy), '127.0.0.1'));
      const t = tls.connect({ socket: raw, servername: 'a.test', ca: env.pki.ca, session, maxVersion: 'TLSv1.2', secureOptions: crypto.constants.SSL_OP_NO_TICKET });
      t.on('error', () => {});
      await once(t, 'secureConnect');
      const reused = t.isSessionReused();
      let got = '';
      t.on('data', (d) => { got += d; });
      t.write('GET /k HTTP/1.1\r\nHost: a.test\r\n\r\n');
      await waitFor(() => /url=\/k /.test(got));
      const sess = t.getSession();
      end(raw, t);
      await waitFor(() => proxy.metrics().closedConnections > closedBefore);
      return { reused, session: sess };
    }

    // Pins: OpenSSL's SSL_free drops the session of a connection that sent no close_notify
    // (a TLS 1.0 rule); curl and browsers just close, so TLS 1.2 session IDs never resumed.
    it('keeps a TLS 1.2 session whose client closed without close_notify (a FIN) or was closed idle; drops it after a reset', async function () {
      const proxy = await startProxy({ listener: { idleTimeoutMs: 400 }, routes: [term('a.test', env.pki.leaves.a)] });
      const fin = (raw) => raw.end(); // FIN under the TLS socket: no close_notify
      const first = await sessionThenEnd(proxy, undefined, fin);
      assert.strictEqual(first.reused, false);
      const m0 = proxy.metrics();
      assert.strictEqual(m0.listeners[0].tlsTruncations, 1, 'the client sent no close_notify');
      const second = await sessionThenEnd(proxy, first.session, () => {}); // stays until the idle timeout
      assert.strictEqual(second.reused, true, 'the session of a client that closed with a FIN resumed');
      const third = await sessionThenEnd(proxy, second.session, (raw) => raw.resetAndDestroy());
      assert.strictEqual(third.reused, true, 'the session of a connection closed idle resumed');
      const fourth = await sessionThenEnd(proxy, third.session, fin);
      assert.strictEqual(fourth.reused, false, 'the session of a connection that was reset is gone');
      const m = await settled(proxy, 4);
      assert.strictEqual(m.listeners[0].idleTimeouts, 1);
      assert.strictEqual(m.tlsSessionsResumed, 2);
    });

    it('a TLS 1.2 session offered under another SNI of a route with the same certificate is resumed, not refused as an SNI mismatch', async function () {
      // OpenSSL reports a resumed TLS 1.2 session's own SNI (the first handshake's), not this
      // hello's; TLS 1.2 has one ClientHello, the one the router read, so nothing is checked.
      const proxy = await startProxy({ routes: [term('x.w.test', env.pki.leaves.wild), term('y.w.test', env.pki.leaves.wild)] });
      const port = portOf(proxy);
      const first = await nodeGet(port, 'x.w.test', { version: 'TLSv1.2' });
      const second = await T.httpsRequest(port, 'y.w.test', { ca: env.pki.ca, maxVersion: 'TLSv1.2', session: first.session }).catch((e) => e);
      const m = proxy.metrics();
      assert.ok(!(second instanceof Error) && second.status === 200, `not served (tlsSniMismatches=${m.tlsSniMismatches}): ${second instanceof Error ? second.message : second.status}`);
      assert.strictEqual(second.tls.reused, true);
      assert.strictEqual(m.tlsSniMismatches, 0);
    });

    it('resumes with openssl s_client -reconnect (TLS 1.2; proxy in a child process)', async function () {
      // -reconnect closes each connection right after its handshake; the proxy runs in a child
      // so that an engine crash on that path (see tls.spec.js, 'closing') fails only this test.
      const child = await startChildProxy({
        routes: [
          { sni: 'a.test', terminateTls: true, cert: { certChain: env.pki.leaves.a.chain.toString(), privateKey: env.pki.leaves.a.key.toString() }, upstreams: [tcp(env.up.port)] },
        ],
      });
      const s = await T.runSClient(child.port, ['-servername', 'a.test', '-CAfile', env.pki.caPath, '-tls1_2', '-reconnect'], {});
      const lines = s.out.match(/^(New|Reused), .*$/mg) || [];
      assert.strictEqual(lines.length, 6, s.out);
      assert.match(lines[0], /^New/);
      for (const l of lines.slice(1)) assert.match(l, /^Reused/);
      assert.ok(child.child.exitCode === null && child.child.signalCode === null, `the proxy process died (${child.child.signalCode})`);
      const m = await child.call('metrics');
      assert.strictEqual(m.tlsSniMismatches, 0, 'resumed TLS 1.2 sessions were closed as SNI mismatches');
      assert.strictEqual(m.tlsSessionsResumed, 5);
      assert.strictEqual(s.code, 0, s.out);
    });

    it('never resumes one tenant\'s session on another tenant\'s route', async function () {
      const proxy = await startProxy({ routes: [term('a.test', env.pki.leaves.a), term('b.test', env.pki.leaves.b)] });
      const port = portOf(proxy);
      const f = sessFile();
      assert.strictEqual(await sGet(port, 'a.test', { sessOut: f }), 'New');
      assert.strictEqual(await sGet(port, 'b.test', { sessIn: f }), 'New', 'an a.test ticket must not resume on b.test');
      const first = await nodeGet(port, 'a.test');
      const cross = await nodeGet(port, 'b.test', { session: first.session });
      assert.strictEqual(cross.reused, false);
      const m = await settled(proxy, 4);
      assert.strictEqual(m.tlsSessionsResumed, 0);
    });
  });

  describe('updateConfig', function () {
    it('keeps sessions resumable when the certificate material is unchanged', async function () {
      const proxy = await startProxy({ listener: { defaultCert: pair(env.pki.leaves.def) }, routes: [term('a.test', env.pki.leaves.a), term('', null)] });
      const port = portOf(proxy);
      const f13 = sessFile();
      assert.strictEqual(await sGet(port, 'a.test', { sessOut: f13 }), 'New');
      const node = await nodeGet(port, 'a.test');
      const f12 = sessFile();
      const a12 = await T.runSClient(port, ['-noservername', '-CAfile', env.pki.caPath, '-tls1_2', '-ign_eof', '-sess_out', f12], { input: 'GET / HTTP/1.0\r\n\r\n' });
      assert.match(a12.out, /^New, TLSv1\.2/m);

      // Same bytes in new Buffers, another route added, routes reordered.
      proxy.updateConfig({ routes: [term('b.test', env.pki.leaves.b), { ...term('a.test', null), cert: copyPair(env.pki.leaves.a) }, term('', null)] });
      assert.strictEqual(await sGet(port, 'a.test', { sessIn: f13 }), 'Reused');
      assert.strictEqual((await nodeGet(port, 'a.test', { session: node.session })).reused, true);
      const b12 = await T.runSClient(port, ['-noservername', '-CAfile', env.pki.caPath, '-tls1_2', '-ign_eof', '-sess_in', f12], { input: 'GET / HTTP/1.0\r\n\r\n' });
      assert.match(b12.out, /^Reused, TLSv1\.2/m, 'the TLS 1.2 session cache survived too');
      assert.strictEqual((await T.httpsRequest(port, 'b.test', { ca: env.pki.ca })).tls.peerCN, 'b.test', 'the new table is live');
      const m = await settled(proxy, 7);
      assert.strictEqual(m.tlsSessionsResumed, 3);
    });

    it('retires sessions when the certificate is rotated', async function () {
      const proxy = await startProxy({ routes: [term('a.test', env.pki.leaves.a)] });
      const port = portOf(proxy);
      const f = sessFile();
      assert.strictEqual(await sGet(port, 'a.test', { sessOut: f }), 'New');
      const node = await nodeGet(port, 'a.test');

      proxy.updateConfig({ routes: [term('a.test', env.pki.leaves.aRotated)] });
      assert.strictEqual(await sGet(port, 'a.test', { sessIn: f }), 'New', 'a ticket of the old certificate must not resume');
      const after = await T.httpsRequest(port, 'a.test', { ca: env.pki.ca, session: node.session });
      assert.strictEqual(after.tls.reused, false);
      const m = await settled(proxy, 4);
      assert.strictEqual(m.tlsSessionsResumed, 0);

      // The new certificate is the one served.
      const s = await T.runSClient(port, ['-servername', 'a.test', '-CAfile', env.pki.caPath, '-ign_eof', '-showcerts'], { input: 'GET / HTTP/1.0\r\n\r\n' });
      const served = /-----BEGIN CERTIFICATE-----[^]*?-----END CERTIFICATE-----/.exec(s.out)[0];
      assert.strictEqual(served.trim(), env.pki.leaves.aRotated.cert.toString().trim());
    });
  });

  describe('bad certificate material', function () {
    // [label, route 1 (the bad one; route 0 is good), listener extras, expected message]
    const cases = () => {
      const a = env.pki.leaves.a;
      const bad = env.pki.bad;
      return [
        ['garbage inside the certificate armour', { cert: { certChain: bad.garbageCert, privateKey: a.key } }, {}, /^routes\[1\]\.cert: certChain holds no readable PEM certificate/],
        ['an empty certificate block', { cert: { certChain: bad.emptyCert, privateKey: a.key } }, {}, /^routes\[1\]\.cert: certChain holds no readable PEM certificate/],
        ['a garbage intermediate after a good leaf', { cert: { certChain: Buffer.concat([a.cert, bad.garbageCert]), privateKey: a.key } }, {}, /^routes\[1\]\.cert: certChain holds a PEM block that is not a readable certificate/],
        ['garbage inside the key armour', { cert: { certChain: a.chain, privateKey: bad.garbageKey } }, {}, /^routes\[1\]\.cert: privateKey holds no readable PEM private key/],
        ['an empty key block', { cert: { certChain: a.chain, privateKey: bad.emptyKey } }, {}, /^routes\[1\]\.cert: privateKey holds no readable PEM private key/],
        ['a key that does not match', { cert: { certChain: a.chain, privateKey: bad.mismatchedKey } }, {}, /^routes\[1\]\.cert: private key does not match certificate/],
        ['an encrypted key', { cert: { certChain: a.chain, privateKey: bad.encryptedKey } }, {}, /^routes\[1\]\.cert: privateKey is encrypted/],
        ['no PEM at all (JS validation)', { cert: { certChain: 'hello', privateKey: a.key } }, {}, /^routes\[1\]\.cert\.certChain must be a PEM-encoded certificate/],
        ['a garbage client CA', { cert: pair(a), mtls: { clientCaCert: bad.garbageCert } }, {}, /^routes\[1\]\.mtls: clientCaCert holds no readable PEM certificate/],
        ['an empty client CA block', { cert: pair(a), mtls: { clientCaCert: bad.emptyCert } }, {}, /^routes\[1\]\.mtls: clientCaCert holds no readable PEM certificate/],
        ['a bad listener defaultCert used by the route', {}, { defaultCert: { certChain: a.chain, privateKey: bad.mismatchedKey } }, /^listeners\[0\]\.defaultCert: private key does not match certificate/],
        ['neither a cert nor a defaultCert', {}, {}, /^routes\[1\]\.cert/],
      ];
    };
    const goodRoute = () => term('b.test', env.pki.leaves.b);
    const badRoute = (extra) => ({ sni: 'a.test', terminateTls: true, upstreams: [tcp(env.up.port)], ...extra });

    it('makes the constructor throw ERR_LEGATO_CONFIG naming the route, for each bad-PEM case', function () {
      for (const [label, extra, listener, message] of cases()) {
        assert.throws(() => new Proxy(makeConfig({ listener, routes: [goodRoute(), badRoute(extra)] })), (err) => {
          assert.strictEqual(err.code, 'ERR_LEGATO_CONFIG', `${label}: ${err.stack}`);
          assert.ok(err instanceof RangeError || err instanceof TypeError, label);
          assert.match(err.message, message, label);
          return true;
        }, label);
      }
    });

    it('copies certificate bytes as it reads them: a getter that frees an already-read Buffer cannot make the engine read freed memory (the engine binding, checked under ASan)', function () {
      // lib/config.js hands the engine plain copies, so only a direct caller of the binding
      // (proxy._engine) can do this; the engine must still not read memory JS has freed.
      require('v8').setFlagsFromString('--expose-gc');
      const gc = require('vm').runInNewContext('gc');
      const a = env.pki.leaves.a;
      const proxy = new Proxy(makeConfig({ routes: [goodRoute()] }));
      const ab = new ArrayBuffer(a.chain.length);
      const chain = Buffer.from(ab);
      a.chain.copy(chain);
      const defaultCert = { certChain: chain };
      Object.defineProperty(defaultCert, 'privateKey', {
        enumerable: true,
        get() {
          let moved = structuredClone(ab, { transfer: [ab] }); // detaches certChain's memory...
          moved = null; // ...and lets it be collected
          gc();
          gc();
          return Buffer.from(a.key);
        },
      });
      const cfg = { ...proxy._config, listeners: proxy._config.listeners.map((l) => ({ ...l, defaultCert })) };
      proxy._engine.updateConfig(cfg); // reads certChain, then privateKey (the getter), then parses
      assert.strictEqual(chain.length, 0, 'the getter did detach the chain');
    });

    it('refuses the same material where nothing terminates yet: a passthrough route, a suspended route, a listener with passthrough routes only', function () {
      const passthrough = (extra) => ({ ...badRoute(extra), terminateTls: false });
      const suspended = (extra) => ({ ...badRoute(extra), terminateTls: false, suspended: true, upstreams: [] });
      const all = [...cases().filter(([label]) => label !== 'neither a cert nor a defaultCert'),
        ['a garbage listener client CA without any cert', {}, { mtls: { clientCaCert: env.pki.bad.garbageCert } }, /^listeners\[0\]\.mtls: clientCaCert holds no readable PEM certificate/]];
      for (const [label, extra, listener, message] of all) {
        for (const [kind, route] of [['passthrough', passthrough], ['suspended', suspended]]) {
          const routes = [{ ...goodRoute(), terminateTls: false }, route(extra)];
          assert.throws(() => new Proxy(makeConfig({ listener, routes })), (err) => {
            assert.strictEqual(err.code, 'ERR_LEGATO_CONFIG', `${label} (${kind}): ${err.stack}`);
            assert.match(err.message, message, `${label} (${kind})`);
            return true;
          }, `${label} (${kind})`);
        }
      }
    });

    it('makes updateConfig throw for each case, leaving the running table serving with its sessions', async function () {
      const proxy = await startProxy({ routes: [goodRoute(), term('a.test', env.pki.leaves.a)] });
      const port = portOf(proxy);
      const f = sessFile();
      assert.strictEqual(await sGet(port, 'a.test', { sessOut: f }), 'New');
      const generations = proxy.metrics().configGenerationsLive;
      for (const [label, extra, listener, message] of cases()) {
        if (Object.keys(listener).length > 0) continue; // listeners cannot change in updateConfig
        assert.throws(() => proxy.updateConfig({ routes: [goodRoute(), badRoute(extra)] }), (err) => {
          assert.strictEqual(err.code, 'ERR_LEGATO_CONFIG', `${label}: ${err.stack}`);
          assert.match(err.message, message, label);
          return true;
        }, label);
        const r = await T.httpsRequest(port, 'a.test', { ca: env.pki.ca });
        assert.strictEqual(r.status, 200, `${label}: the old table serves`);
        assert.strictEqual(r.tls.peerCN, 'a.test');
      }
      assert.strictEqual(proxy.metrics().configGenerationsLive, generations, 'no new generation was published');
      assert.strictEqual(await sGet(port, 'a.test', { sessIn: f }), 'Reused', 'sessions of the running table are intact');
      // A good update still goes through afterwards (nothing half-applied is in the way).
      proxy.updateConfig({ routes: [goodRoute(), term('a.test', env.pki.leaves.aRotated)] });
      const after = await T.httpsRequest(port, 'a.test', { ca: env.pki.ca });
      assert.strictEqual(after.status, 200);
      await settled(proxy, 1);
    });
  });
});
