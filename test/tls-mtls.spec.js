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
const { startProxy, portOf } = require('./helpers/proxy');
const { run } = require('./helpers/clients');
const T = require('./fixtures/tls-tools');

const VERSIONS = ['TLSv1.2', 'TLSv1.3'];

describe('TLS termination with client certificates (mTLS)', function () {
  this.timeout(30000);
  const env = T.terminationSuite();
  const { term } = env;
  const { settled } = T;


  const clientCert = () => ({ cert: env.pki.client.cert, key: env.pki.client.key });
  const rogueCert = () => ({ cert: env.pki.rogue.cert, key: env.pki.rogue.key });

  /** Node https GET; resolves 'ok' (status 200) or the error's message. */
  async function attempt(port, name, version, certOpts = {}) {
    try {
      const r = await T.httpsRequest(port, name, { ca: env.pki.ca, minVersion: version, maxVersion: version, ...certOpts, timeoutMs: 10000 });
      return r.status === 200 ? 'ok' : `status ${r.status}`;
    } catch (e) {
      return e.message;
    }
  }


  const sArgs = (name, more = []) => ['-servername', name, '-CAfile', env.pki.caPath, '-verify_return_error', ...more];

  describe('route mtls, requireClientCert defaulting to true', function () {
    let proxy;
    let port;

    beforeEach(async function () {
      proxy = await startProxy({
        routes: [
          term('a.test', env.pki.leaves.a, { mtls: { clientCaCert: env.pki.clientCa } }),
          term('rsa.test', env.pki.leaves.rsa), // no mtls anywhere: no certificate is asked for
        ],
      });
      port = portOf(proxy);
    });

    it('serves a trusted client certificate (Node https, openssl s_client, curl)', async function () {
      for (const v of VERSIONS) assert.strictEqual(await attempt(port, 'a.test', v, clientCert()), 'ok', v);

      const s = await T.runSClient(port, sArgs('a.test', ['-cert', env.pki.client.certPath, '-key', env.pki.client.keyPath, '-ign_eof']), { input: 'GET /s HTTP/1.0\r\n\r\n' });
      assert.strictEqual(s.code, 0, s.out);
      assert.match(s.out, /Acceptable client certificate CA names\n(.*\n)*?CN = legato tls client CA/);
      assert.match(s.out, /up method=GET url=\/s /);

      const c = await run('curl', ['-sS', '--max-time', '10', '--resolve', `a.test:${port}:127.0.0.1`, '--cacert', env.pki.caPath,
        '--cert', env.pki.client.certPath, '--key', env.pki.client.keyPath, `https://a.test:${port}/curl`]);
      assert.strictEqual(c.code, 0, c.stderr);
      assert.match(c.stdout, /url=\/curl /);

      const m = await settled(proxy, 4);
      assert.strictEqual(m.tlsHandshakes, 4);
      assert.strictEqual(m.handshakeFailures, 0);
      assert.strictEqual(env.up.requests.length, 4);
    });

    it('fails the handshake for an untrusted client certificate (handshakeFailuresCertificate)', async function () {
      for (const v of VERSIONS) assert.notStrictEqual(await attempt(port, 'a.test', v, rogueCert()), 'ok', v);
      const s = await T.runSClient(port, sArgs('a.test', ['-cert', env.pki.rogue.certPath, '-key', env.pki.rogue.keyPath, '-ign_eof']), { input: 'GET / HTTP/1.0\r\n\r\n' });
      assert.match(s.out, /alert unknown ca|alert bad certificate|certificate verify failed/i, s.out);
      assert.doesNotMatch(s.out, /up method=/);
      const m = await settled(proxy, 3);
      assert.strictEqual(m.handshakeFailuresCertificate, 3);
      assert.strictEqual(m.handshakeFailures, 3);
      assert.strictEqual(m.listeners[0].handshakeFailuresCertificate, 3);
      assert.strictEqual(m.tlsHandshakes, 0);
      assert.deepStrictEqual(env.up.requests, []);
    });

    it('fails the handshake when no certificate is given (handshakeFailuresNoCertificate)', async function () {
      for (const v of VERSIONS) assert.notStrictEqual(await attempt(port, 'a.test', v), 'ok', v);
      const s = await T.runSClient(port, sArgs('a.test', ['-ign_eof']), { input: 'GET / HTTP/1.0\r\n\r\n' });
      assert.match(s.out, /certificate required|handshake failure/i, s.out);
      const m = await settled(proxy, 3);
      assert.strictEqual(m.handshakeFailuresNoCertificate, 3);
      assert.strictEqual(m.handshakeFailures, 3);
      assert.strictEqual(m.listeners[0].handshakeFailuresNoCertificate, 3);
      assert.deepStrictEqual(env.up.requests, []);
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
      const proxy = await startProxy({ routes: [term('a.test', env.pki.leaves.a, { mtls: { clientCaCert: env.pki.clientCa, requireClientCert: false } })] });
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
      assert.strictEqual(env.up.requests.length, 4);
    });
  });

  describe('listener mtls and route overrides', function () {
    it('applies the listener\'s mtls to routes without their own, and a route\'s mtls wins', async function () {
      const proxy = await startProxy({
        listener: { mtls: { clientCaCert: env.pki.clientCa } },
        routes: [
          term('*.w.test', env.pki.leaves.wild), // inherits the listener's: client CA, required
          term('a.test', env.pki.leaves.a, { mtls: { clientCaCert: env.pki.rogueCa } }), // trusts the rogue CA only
          term('b.test', env.pki.leaves.b, { mtls: { clientCaCert: env.pki.clientCa, requireClientCert: false } }),
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
