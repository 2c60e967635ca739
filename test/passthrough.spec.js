'use strict';
// SNI passthrough routing, end to end: real TLS origins (each with its own certificate chain),
// the proxy routing raw TLS by SNI, and three real clients — Node `tls.connect`, curl and
// openssl s_client — that verify the origin's certificate against the test root CA, which
// proves the bytes went through untouched to the right origin.
//
// Routing order (DESIGN.md): exact → longest `*.suffix` (any depth below, not the suffix
// itself) → '' default → no route: close and count `noRoute`. SNI is case-insensitive and a
// trailing dot is ignored. Non-TLS first bytes take the '' route (counted `nonTlsConnections`).

const assert = require('assert');
const { getCerts } = require('./helpers/certs');
const { startTlsOrigin, startEchoServer } = require('./helpers/servers');
const { startProxy, route, portOf, connect, collect, cleanup } = require('./helpers/proxy');
const { curl, sClient, nodeTlsGet } = require('./helpers/clients');
const { waitFor, waitForMetric } = require('./helpers/wait');

describe('passthrough routing by SNI', function () {
  this.timeout(30000);
  let certs;
  let A; let B; let D;

  before(function () {
    this.timeout(60000);
    certs = getCerts();
  });

  beforeEach(async function () {
    A = await startTlsOrigin('A', certs.leaves['a.test']);
    B = await startTlsOrigin('B', certs.leaves['*.b.test']);
    D = await startTlsOrigin('D', certs.leaves['default.test']);
  });

  afterEach(cleanup);

  function routes({ withDefault = true } = {}) {
    const r = [route('a.test', A.port), route('*.b.test', B.port)];
    if (withDefault) r.push(route('', D.port));
    return r;
  }

  // Accept the default origin's certificate for a name it does not carry (the chain is still
  // verified against the CA by Node; only the host-name check is replaced).
  const expectCN = (cn) => (host, cert) => (cert.subject.CN === cn
    ? undefined : new Error(`expected certificate CN ${cn}, got ${cert.subject.CN}`));

  /**
   * Assert all three clients reach `origin` for `name`, each verifying the origin's chain
   * against the test CA. `cn` is the CN of the certificate the origin presents; when the name
   * is not on it (`verifyHost: false`: the default origin answering other names) only the
   * host-name check is relaxed (curl then runs with -k).
   */
  async function threeClients(port, name, origin, { cn = name, verifyHost = true } = {}) {
    const [node, c, s] = await Promise.all([
      nodeTlsGet(port, name, { ca: certs.ca, checkServerIdentity: verifyHost ? undefined : expectCN(cn) }),
      curl(name, port, { caPath: verifyHost ? certs.caPath : undefined }),
      sClient(name, port, { caPath: certs.caPath, verifyName: verifyHost ? name : null }),
    ]);
    assert.strictEqual(node.status, 200);
    assert.strictEqual(node.authorized, true, 'Node client verified the origin chain');
    assert.strictEqual(node.peerCN, cn);
    assert.match(node.body, new RegExp(`^origin=${origin.name}\\n`));
    assert.strictEqual(c.code, 0, `curl failed: ${c.stderr}`);
    assert.match(c.stdout, new RegExp(`^origin=${origin.name}\\n`), `curl body: ${c.stdout}`);
    assert.strictEqual(s.code, 0, `openssl s_client failed: ${s.stderr}`);
    assert.match(s.stdout, new RegExp(`\\r\\n\\r\\norigin=${origin.name}\\n`), `s_client output: ${s.stdout}`);
    return { node, curl: c, sClient: s };
  }

  async function settled(proxy, total) {
    return waitFor(() => {
      const m = proxy.metrics();
      return m.totalConnections >= total && m.activeConnections === 0 && m.closedConnections >= total && m;
    }, 5000, { describe: () => proxy.metrics() });
  }

  it('routes an exact SNI to its origin (Node, curl, openssl s_client)', async function () {
    const proxy = await startProxy({ routes: routes() });
    const port = portOf(proxy);
    await threeClients(port, 'a.test', A);
    assert.strictEqual(A.requests.length, 3);
    assert.deepStrictEqual(A.requests.map((r) => r.sni), ['a.test', 'a.test', 'a.test']);
    assert.strictEqual(B.requests.length + D.requests.length, 0);
    const m = await settled(proxy, 3);
    assert.strictEqual(m.totalConnections, 3);
    assert.strictEqual(m.noRoute, 0);
    assert.strictEqual(m.nonTlsConnections, 0);
    assert.strictEqual(m.handshakeFailures, 0);
    assert.ok(m.bytesFromClients > 0 && m.bytesToClients > 0);
  });

  it('routes one and two labels below a wildcard suffix (a.b.test, x.y.b.test → *.b.test)', async function () {
    const proxy = await startProxy({ routes: routes() });
    const port = portOf(proxy);
    await threeClients(port, 'a.b.test', B, { cn: '*.b.test' });
    await threeClients(port, 'x.y.b.test', B, { cn: '*.b.test' });
    assert.deepStrictEqual(B.requests.map((r) => r.sni).sort(),
      ['a.b.test', 'a.b.test', 'a.b.test', 'x.y.b.test', 'x.y.b.test', 'x.y.b.test']);
    assert.strictEqual(A.requests.length + D.requests.length, 0);
    const m = await settled(proxy, 6);
    assert.strictEqual(m.noRoute, 0);
  });

  it('does not match the wildcard suffix itself (b.test → default route)', async function () {
    const proxy = await startProxy({ routes: routes() });
    await threeClients(portOf(proxy), 'b.test', D, { cn: 'default.test', verifyHost: false });
    assert.strictEqual(D.requests.length, 3);
    assert.strictEqual(B.requests.length, 0);
    const m = await settled(proxy, 3);
    assert.strictEqual(m.noRoute, 0);
  });

  it('sends an unknown SNI to the default route', async function () {
    const proxy = await startProxy({ routes: routes() });
    await threeClients(portOf(proxy), 'unknown.test', D, { cn: 'default.test', verifyHost: false });
    // A name only the default origin's certificate carries: full host-name verification.
    await threeClients(portOf(proxy), 'default.test', D);
    assert.strictEqual(D.requests.length, 6);
    assert.strictEqual(A.requests.length + B.requests.length, 0);
    const m = await settled(proxy, 6);
    assert.strictEqual(m.noRoute, 0);
  });

  it('sends a ClientHello without SNI to the default route', async function () {
    const proxy = await startProxy({ routes: routes() });
    const port = portOf(proxy);
    const [node, s] = await Promise.all([
      nodeTlsGet(port, null, { ca: certs.ca, checkServerIdentity: expectCN('default.test') }),
      sClient(null, port, { caPath: certs.caPath, verifyName: 'default.test' }),
    ]);
    assert.strictEqual(node.authorized, true);
    assert.match(node.body, /^origin=D\nsni=\n/);
    assert.strictEqual(s.code, 0, s.stderr);
    assert.match(s.stdout, /origin=D\nsni=\n/);
    assert.deepStrictEqual(D.requests.map((r) => r.sni), ['', '']);
    const m = await settled(proxy, 2);
    assert.strictEqual(m.noRoute, 0);
    assert.strictEqual(m.nonTlsConnections, 0, 'a hello without SNI is still TLS');
  });

  it('closes a connection with no matching route and no default, counting noRoute', async function () {
    const proxy = await startProxy({ routes: routes({ withDefault: false }) });
    const port = portOf(proxy);
    const [node, c, s] = await Promise.all([
      nodeTlsGet(port, 'unknown.test', { ca: certs.ca }).then(() => null, (e) => e),
      curl('unknown.test', port, { caPath: certs.caPath }),
      sClient('unknown.test', port, { caPath: certs.caPath }),
    ]);
    assert.ok(node instanceof Error, 'Node client must fail');
    assert.notStrictEqual(c.code, 0, 'curl must fail');
    assert.strictEqual(c.stdout, '');
    assert.notStrictEqual(s.code, 0, 'openssl s_client must fail');
    assert.doesNotMatch(s.stdout, /origin=/);
    // The wildcard suffix itself has no route either.
    const bare = await nodeTlsGet(port, 'b.test', { ca: certs.ca }).then(() => null, (e) => e);
    assert.ok(bare instanceof Error);
    const m = await waitForMetric(proxy, 'noRoute', 4);
    assert.strictEqual(m.noRoute, 4);
    assert.strictEqual(m.listeners[0].noRoute, 4);
    assert.strictEqual(m.upstreamConnectFailures, 0);
    assert.strictEqual(A.requests.length + B.requests.length + D.requests.length, 0);
    await settled(proxy, 4);
  });

  it('matches SNI case-insensitively (A.TEST, X.Y.B.Test)', async function () {
    const proxy = await startProxy({ routes: routes() });
    const port = portOf(proxy);
    const [node, s] = await Promise.all([
      nodeTlsGet(port, 'A.TEST', { ca: certs.ca }),
      sClient('A.TEST', port, { caPath: certs.caPath, verifyName: 'a.test' }),
    ]);
    assert.strictEqual(node.authorized, true);
    assert.match(node.body, /^origin=A\nsni=A\.TEST\n/, 'the origin saw the client\'s own bytes');
    assert.strictEqual(s.code, 0, s.stderr);
    assert.match(s.stdout, /origin=A\n/);
    const w = await nodeTlsGet(port, 'X.Y.B.Test', { ca: certs.ca });
    assert.match(w.body, /^origin=B\n/);
    assert.strictEqual(D.requests.length, 0);
    const m = await settled(proxy, 3);
    assert.strictEqual(m.noRoute, 0);
  });

  it('ignores a trailing dot in SNI (a.test., a.b.test.)', async function () {
    const proxy = await startProxy({ routes: routes({ withDefault: false }) });
    const port = portOf(proxy);
    const [node, s] = await Promise.all([
      nodeTlsGet(port, 'a.test.', { ca: certs.ca }),
      sClient('a.test.', port, { caPath: certs.caPath, verifyName: 'a.test' }),
    ]);
    assert.match(node.body, /^origin=A\nsni=a\.test\.\n/, 'the client really sent the trailing dot');
    assert.strictEqual(s.code, 0, s.stderr);
    assert.match(s.stdout, /origin=A\nsni=a\.test\.\n/);
    const w = await sClient('a.b.test.', port, { caPath: certs.caPath, verifyName: 'a.b.test' });
    assert.strictEqual(w.code, 0, w.stderr);
    assert.match(w.stdout, /origin=B\n/);
    const m = await settled(proxy, 3);
    assert.strictEqual(m.noRoute, 0, 'no default route: a trailing dot must not make the name unknown');
  });

  it('sends non-TLS bytes to the default route, byte-exact, counting nonTlsConnections', async function () {
    const echo = await startEchoServer();
    const proxy = await startProxy({ routes: [route('a.test', A.port), route('', echo.port)] });
    const request = Buffer.from('GET / HTTP/1.0\r\nHost: example\r\n\r\n');
    const sock = await connect(portOf(proxy));
    const got = collect(sock);
    sock.write(request);
    let seen = Buffer.alloc(0);
    await new Promise((resolve) => sock.on('data', (d) => {
      seen = Buffer.concat([seen, d]);
      if (seen.length >= request.length) resolve();
    }));
    sock.end();
    const { data } = await got;
    assert.deepStrictEqual(data, request, 'the echo upstream sent back exactly what the client wrote');
    const m = await settled(proxy, 1);
    assert.strictEqual(m.nonTlsConnections, 1);
    assert.strictEqual(m.listeners[0].nonTlsConnections, 1);
    assert.strictEqual(m.noRoute, 0);
    assert.strictEqual(m.handshakeFailures, 0);
    assert.strictEqual(m.bytesFromClients, request.length);
    assert.strictEqual(m.bytesToClients, request.length);
    assert.strictEqual(A.requests.length, 0);
  });

  it('closes non-TLS bytes when there is no default route (nonTlsConnections and noRoute)', async function () {
    const echo = await startEchoServer();
    const proxy = await startProxy({ routes: [route('a.test', echo.port)] });
    const sock = await connect(portOf(proxy));
    const got = collect(sock);
    sock.write('GET / HTTP/1.0\r\n\r\n');
    const { data } = await got;
    assert.strictEqual(data.length, 0, 'nothing comes back');
    const m = await waitForMetric(proxy, 'noRoute', 1);
    assert.strictEqual(m.nonTlsConnections, 1);
    assert.strictEqual(m.noRoute, 1);
    assert.strictEqual(echo.connections.length, 0, 'the upstream was never dialled');
    await settled(proxy, 1);
  });
});
