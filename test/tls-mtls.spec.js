'use strict';
// Client-certificate authentication on terminating routes (issue 3, part 4):
// `mtls: { clientCaCert, requireClientCert = true }` on the route or the listener (route wins).
//
//   trusted client certificate          → served
//   untrusted client certificate        → handshake fails, handshakeFailuresCertificate
//   no certificate, required            → handshake fails, handshakeFailuresNoCertificate
//   requireClientCert: false            → no certificate is fine; a presented one is still
//                                         verified (untrusted fails, trusted is served)
//
// Each case runs over TLS 1.2 and TLS 1.3 (in 1.3 the client sends its certificate after the
// server's Finished, so the failure arrives after the client considers its side done), with
// Node https, and with openssl s_client / curl where they add something.

const assert = require('assert');
const { getTlsPki, pair } = require('./helpers/tlsca');
const { startProxy, portOf, tcp, cleanup } = require('./helpers/proxy');
const { run } = require('./helpers/clients');
const { waitFor } = require('./helpers/wait');
const T = require('./fixtures/tls-tools');

const VERSIONS = ['TLSv1.2', 'TLSv1.3'];

describe('TLS termination with client certificates (mTLS)', function () {
  this.timeout(30000);
  let pki;
  let up;

  before(function () {
    this.timeout(120000);
    pki = getTlsPki();
  });

  beforeEach(async function () {
    up = await T.httpUpstream();
  });

  afterEach(cleanup);

  function term(sni, leaf, extra = {}) {
    return { sni, terminateTls: true, cert: pair(leaf), upstreams: [tcp(up.port)], ...extra };
  }

  const clientCert = () => ({ cert: pki.client.cert, key: pki.client.key });
  const rogueCert = () => ({ cert: pki.rogue.cert, key: pki.rogue.key });

  /** Node https GET; resolves 'ok' (status 200) or the error's message. */
  async function attempt(port, name, version, certOpts = {}) {
    try {
      const r = await T.httpsRequest(port, name, { ca: pki.ca, minVersion: version, maxVersion: version, ...certOpts, timeoutMs: 10000 });
      return r.status === 200 ? 'ok' : `status ${r.status}`;
    } catch (e) {
      return e.message;
    }
  }

  function settled(proxy, min) {
    let m;
    return waitFor(() => {
      m = proxy.metrics();
      return m.totalConnections >= min && m.activeConnections === 0 && m;
    }, 10000, { message: 'connections did not all close', describe: () => m });
  }

  const sArgs = (name, more = []) => ['-servername', name, '-CAfile', pki.caPath, '-verify_return_error', ...more];

  describe('route mtls, requireClientCert defaulting to true', function () {
    let proxy;
    let port;

    beforeEach(async function () {
      proxy = await startProxy({
        routes: [
          term('a.test', pki.leaves.a, { mtls: { clientCaCert: pki.clientCa } }),
          term('rsa.test', pki.leaves.rsa), // no mtls anywhere: no certificate is asked for
        ],
      });
      port = portOf(proxy);
    });

    it('serves a trusted client certificate (Node https, openssl s_client, curl)', async function () {
      for (const v of VERSIONS) assert.strictEqual(await attempt(port, 'a.test', v, clientCert()), 'ok', v);

      const s = await T.runSClient(port, sArgs('a.test', ['-cert', pki.client.certPath, '-key', pki.client.keyPath, '-ign_eof']), { input: 'GET /s HTTP/1.0\r\n\r\n' });
      assert.strictEqual(s.code, 0, s.out);
      assert.match(s.out, /Acceptable client certificate CA names\n(.*\n)*?CN = legato tls client CA/);
      assert.match(s.out, /up method=GET url=\/s /);

      const c = await run('curl', ['-sS', '--max-time', '10', '--resolve', `a.test:${port}:127.0.0.1`, '--cacert', pki.caPath,
        '--cert', pki.client.certPath, '--key', pki.client.keyPath, `https://a.test:${port}/curl`]);
      assert.strictEqual(c.code, 0, c.stderr);
      assert.match(c.stdout, /url=\/curl /);

      const m = await settled(proxy, 4);
      assert.strictEqual(m.tlsHandshakes, 4);
      assert.strictEqual(m.handshakeFailures, 0);
      assert.strictEqual(up.requests.length, 4);
    });

    it('fails the handshake for an untrusted client certificate (handshakeFailuresCertificate)', async function () {
      for (const v of VERSIONS) assert.notStrictEqual(await attempt(port, 'a.test', v, rogueCert()), 'ok', v);
      const s = await T.runSClient(port, sArgs('a.test', ['-cert', pki.rogue.certPath, '-key', pki.rogue.keyPath, '-ign_eof']), { input: 'GET / HTTP/1.0\r\n\r\n' });
      assert.match(s.out, /alert unknown ca|alert bad certificate|certificate verify failed/i, s.out);
      assert.doesNotMatch(s.out, /up method=/);
      const m = await settled(proxy, 3);
      assert.strictEqual(m.handshakeFailuresCertificate, 3);
      assert.strictEqual(m.handshakeFailures, 3);
      assert.strictEqual(m.listeners[0].handshakeFailuresCertificate, 3);
      assert.strictEqual(m.tlsHandshakes, 0);
      assert.deepStrictEqual(up.requests, []);
    });

    it('fails the handshake when no certificate is given (handshakeFailuresNoCertificate)', async function () {
      for (const v of VERSIONS) assert.notStrictEqual(await attempt(port, 'a.test', v), 'ok', v);
      const s = await T.runSClient(port, sArgs('a.test', ['-ign_eof']), { input: 'GET / HTTP/1.0\r\n\r\n' });
      assert.match(s.out, /certificate required|handshake failure/i, s.out);
      const m = await settled(proxy, 3);
      assert.strictEqual(m.handshakeFailuresNoCertificate, 3);
      assert.strictEqual(m.handshakeFailures, 3);
      assert.strictEqual(m.listeners[0].handshakeFailuresNoCertificate, 3);
      assert.deepStrictEqual(up.requests, []);
    });

    it('asks no client certificate on a route without mtls', async function () {
      const s = await T.runSClient(port, sArgs('rsa.test', ['-ign_eof']), { input: 'GET / HTTP/1.0\r\n\r\n' });
      assert.match(s.out, /No client certificate CA names sent/);
      assert.match(s.out, /up method=GET/);
      assert.strictEqual(await attempt(port, 'rsa.test', 'TLSv1.3', rogueCert()), 'ok', 'a certificate nobody asked for is ignored');
    });
  });

  describe('requireClientCert: false', function () {
    it('accepts no certificate, verifies a presented one (untrusted fails, trusted is served)', async function () {
      const proxy = await startProxy({ routes: [term('a.test', pki.leaves.a, { mtls: { clientCaCert: pki.clientCa, requireClientCert: false } })] });
      const port = portOf(proxy);
      for (const v of VERSIONS) {
        assert.strictEqual(await attempt(port, 'a.test', v), 'ok', `${v}: no certificate`);
        assert.strictEqual(await attempt(port, 'a.test', v, clientCert()), 'ok', `${v}: trusted certificate`);
        assert.notStrictEqual(await attempt(port, 'a.test', v, rogueCert()), 'ok', `${v}: untrusted certificate`);
      }
      const m = await settled(proxy, 6);
      assert.strictEqual(m.tlsHandshakes, 4);
      assert.strictEqual(m.handshakeFailuresCertificate, 2);
      assert.strictEqual(m.handshakeFailuresNoCertificate, 0);
      assert.strictEqual(up.requests.length, 4);
    });
  });

  describe('listener mtls and route overrides', function () {
    it('applies the listener\'s mtls to routes without their own, and a route\'s mtls wins', async function () {
      const proxy = await startProxy({
        listener: { mtls: { clientCaCert: pki.clientCa } },
        routes: [
          term('*.w.test', pki.leaves.wild), // inherits the listener's: client CA, required
          term('a.test', pki.leaves.a, { mtls: { clientCaCert: pki.rogueCa } }), // trusts the rogue CA only
          term('b.test', pki.leaves.b, { mtls: { clientCaCert: pki.clientCa, requireClientCert: false } }),
        ],
      });
      const port = portOf(proxy);
      const v = 'TLSv1.3';
      assert.strictEqual(await attempt(port, 'x.w.test', v, clientCert()), 'ok', 'listener CA trusts client-1');
      assert.notStrictEqual(await attempt(port, 'x.w.test', v), 'ok', 'listener requires a certificate');
      assert.strictEqual(await attempt(port, 'a.test', v, rogueCert()), 'ok', 'the route\'s CA trusts the rogue client');
      assert.notStrictEqual(await attempt(port, 'a.test', v, clientCert()), 'ok', 'the route\'s CA replaces the listener\'s');
      assert.strictEqual(await attempt(port, 'b.test', v), 'ok', 'the route\'s requireClientCert: false wins');
      const m = await settled(proxy, 5);
      assert.strictEqual(m.tlsHandshakes, 3);
      assert.strictEqual(m.handshakeFailuresNoCertificate, 1);
      assert.strictEqual(m.handshakeFailuresCertificate, 1);

      const s = await T.runSClient(port, sArgs('a.test', ['-ign_eof']), { input: 'GET / HTTP/1.0\r\n\r\n' });
      assert.match(s.out, /Acceptable client certificate CA names\n(.*\n)*?CN = legato tls rogue CA/);
      assert.doesNotMatch(s.out, /CN = legato tls client CA/);
    });
  });
});
