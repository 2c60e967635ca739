'use strict';
// TLS termination, end to end (issue 3): routes with `terminateTls: true` decrypt with their own
// certificate (or the listener's defaultCert) and forward plaintext HTTP to a plain Node http
// upstream. Real clients — Node https/tls, curl and openssl s_client — verify the chain
// (leaf + intermediate sent by the proxy) against the root CA only.
//
// Covered here: the three clients with ECDSA P-256 and RSA-2048 leaves; keep-alive; 20 MiB each
// way byte-exact; wildcard and default-certificate routing; ALPN selection; TLS 1.0/1.1 and
// weak TLS 1.2 suites refused; compression refused; the handshake deadline (stalled, trickled
// before and after the ClientHello); close_notify on upstream close; truncation (client FIN
// without close_notify); a client that closes cleanly while the upstream is still being dialled
// (run in a child process: it crashed the engine before cdff6b7).
// Hygiene (renegotiation, KeyUpdate, HelloRetryRequest SNI switch): tls-hygiene.spec.js.
// mTLS: tls-mtls.spec.js. Resumption, reloads and bad certificates: tls-resume.spec.js.

const assert = require('assert');
const crypto = require('crypto');
const tls = require('tls');
const { pair } = require('./helpers/tlsca');
const { startProxy, portOf, tcp, connect, collect, trackSocket } = require('./helpers/proxy');
const { startTcpServer, startBlackhole } = require('./helpers/servers');
const { curl } = require('./helpers/clients');
const { captureClientHello } = require('./helpers/hello');
const { startChildProxy } = require('./helpers/child');
const { waitFor, waitForMetric, sleep } = require('./helpers/wait');
const T = require('./fixtures/tls-tools');

const MiB = 1024 * 1024;

describe('TLS termination', function () {
  this.timeout(30000);
  const env = T.terminationSuite();
  const { term } = env;
  const { settled } = T;



  const SCLIENT_GET = 'GET /s HTTP/1.0\r\nHost: x\r\n\r\n';
  /**
   * s_client sending one HTTP/1.0 request and staying until the upstream's reply and close
   * (-ign_eof), so every successful handshake is also shown to carry data.
   */
  const sGet = (port, args) => T.runSClient(port, [...args, '-ign_eof'], { input: SCLIENT_GET });
  const sArgs = (name, more = []) => ['-servername', name, '-CAfile', env.pki.caPath, '-verify_return_error', '-verify_hostname', name, ...more];

  describe('clients through termination to a plain HTTP upstream', function () {
    for (const [label, leafName, name, keyBits] of [['ECDSA P-256', 'a', 'a.test', 256], ['RSA-2048', 'rsa', 'rsa.test', 2048]]) {
      it(`serves Node https, curl and openssl s_client with an ${label} leaf, chain verified against the root only`, async function () {
        const leaf = env.pki.leaves[leafName];
        const proxy = await startProxy({ routes: [term(name, leaf)] });
        const port = portOf(proxy);

        const node = await T.httpsRequest(port, name, { ca: env.pki.ca, method: 'POST', path: '/node', body: Buffer.from('from node') });
        assert.strictEqual(node.status, 200);
        assert.strictEqual(node.tls.authorized, true, 'Node verified leaf + intermediate against the root');
        assert.strictEqual(node.tls.peerCN, name);
        assert.match(node.body, /^up method=POST url=\/node bytes=9 /);

        const c = await curl(name, port, { caPath: env.pki.caPath });
        assert.strictEqual(c.code, 0, `curl failed: ${c.stderr}`);
        assert.match(c.stdout, /^up method=GET url=\/ bytes=0 /);

        const s = await sGet(port, sArgs(name));
        assert.strictEqual(s.code, 0, s.out);
        assert.match(s.out, /Verify return code: 0 \(ok\)/);
        // The proxy sent the intermediate: the chain the client built has depth 2 (root at 2).
        assert.match(s.out, /depth=1 CN = legato tls intermediate CA/);
        assert.match(s.out, /depth=2 CN = legato tls root CA/);
        assert.match(s.out, new RegExp(`Server public key is ${keyBits} bit`));
        assert.match(s.out, /up method=GET url=\/s bytes=0 /);

        assert.deepStrictEqual(env.up.requests.map((r) => r.url), ['/node', '/', '/s']);
        const m = await settled(proxy, 3);
        assert.strictEqual(m.tlsHandshakes, 3);
        assert.strictEqual(m.handshakeFailures, 0);
        assert.strictEqual(m.listeners[0].tlsHandshakes, 3);
        assert.ok(m.bytesFromClients > 0 && m.bytesToClients > 0, 'ciphertext bytes are counted');
        assert.strictEqual(m.tlsTruncations, 0, 'every client closed with close_notify');
      });
    }

    it('keeps a connection alive for several requests (one handshake)', async function () {
      const https = require('https');
      const proxy = await startProxy({ routes: [term('a.test', env.pki.leaves.a)] });
      const agent = new https.Agent({ keepAlive: true, maxSockets: 1 });
      try {
        for (let i = 0; i < 5; i++) {
          const r = await T.httpsRequest(portOf(proxy), 'a.test', { ca: env.pki.ca, path: `/k${i}`, agent });
          assert.strictEqual(r.status, 200);
          assert.match(r.body, new RegExp(`url=/k${i} `));
        }
      } finally {
        agent.destroy();
      }
      const m = await settled(proxy, 1);
      assert.strictEqual(m.totalConnections, 1);
      assert.strictEqual(m.tlsHandshakes, 1);
      assert.strictEqual(env.up.requests.length, 5);
    });

    it('carries a 20 MiB upload byte-exact', async function () {
      this.timeout(120000);
      const proxy = await startProxy({ routes: [term('a.test', env.pki.leaves.a)] });
      const body = crypto.randomBytes(20 * MiB);
      const sha = crypto.createHash('sha256').update(body).digest('hex');
      const r = await T.httpsRequest(portOf(proxy), 'a.test', { ca: env.pki.ca, method: 'PUT', path: '/up', body, timeoutMs: 100000 });
      assert.strictEqual(r.status, 200);
      assert.match(r.body, new RegExp(`bytes=${20 * MiB} sha256=${sha}`));
      const m = await settled(proxy, 1);
      assert.ok(m.bytesFromClients > 20 * MiB, `bytesFromClients ${m.bytesFromClients}`);
    });

    it('carries a 20 MiB download byte-exact', async function () {
      this.timeout(120000);
      const proxy = await startProxy({ routes: [term('a.test', env.pki.leaves.a)] });
      const expected = crypto.createHash('sha256').update(T.patternBytes(20 * MiB)).digest('hex');
      const r = await T.httpsRequest(portOf(proxy), 'a.test', { ca: env.pki.ca, path: `/download/${20 * MiB}`, hashBody: true, timeoutMs: 100000 });
      assert.strictEqual(r.status, 200);
      assert.strictEqual(r.bytes, 20 * MiB);
      assert.strictEqual(r.sha256, expected);
      const m = await settled(proxy, 1);
      assert.ok(m.bytesToClients > 20 * MiB, `bytesToClients ${m.bytesToClients}`);
    });
  });

  describe('certificate selection', function () {
    it('uses a wildcard route\'s own certificate and falls back to the listener defaultCert', async function () {
      const proxy = await startProxy({
        listener: { defaultCert: pair(env.pki.leaves.def) },
        routes: [
          term('a.test', env.pki.leaves.a),
          term('*.w.test', env.pki.leaves.wild),
          term('nocert.test', null), // terminating, no cert of its own: the defaultCert
          term('', null), // default route
        ],
      });
      const port = portOf(proxy);
      const cnOnly = (cn) => (host, cert) => (cert.subject.CN === cn ? undefined : new Error(`expected CN ${cn}, got ${cert.subject.CN}`));

      const a = await T.httpsRequest(port, 'a.test', { ca: env.pki.ca });
      assert.strictEqual(a.tls.peerCN, 'a.test');
      const w = await T.httpsRequest(port, 'x.w.test', { ca: env.pki.ca });
      assert.strictEqual(w.tls.peerCN, '*.w.test');
      assert.strictEqual(w.tls.authorized, true);
      const deep = await T.httpsRequest(port, 'deep.x.w.test', { ca: env.pki.ca, checkServerIdentity: cnOnly('*.w.test') });
      assert.strictEqual(deep.tls.peerCN, '*.w.test', 'a wildcard route matches at any depth');
      const nocert = await T.httpsRequest(port, 'nocert.test', { ca: env.pki.ca, checkServerIdentity: cnOnly('default.test') });
      assert.strictEqual(nocert.tls.peerCN, 'default.test');
      const other = await T.httpsRequest(port, 'other.test', { ca: env.pki.ca, checkServerIdentity: cnOnly('default.test') });
      assert.strictEqual(other.tls.peerCN, 'default.test');
      const apex = await T.httpsRequest(port, 'w.test', { ca: env.pki.ca, checkServerIdentity: cnOnly('default.test') });
      assert.strictEqual(apex.tls.peerCN, 'default.test', '*.w.test does not match w.test itself');
      for (const r of [a, w, deep, nocert, other, apex]) assert.strictEqual(r.status, 200);

      // No SNI at all: the default route, with the default certificate.
      const s = await sGet(port, ['-noservername', '-CAfile', env.pki.caPath, '-verify_return_error']);
      assert.strictEqual(s.code, 0, s.out);
      assert.match(s.out, /subject=CN = default\.test/);
      assert.match(s.out, /up method=GET url=\/s /);

      // curl checks the host name too.
      const c = await curl('x.w.test', port, { caPath: env.pki.caPath });
      assert.strictEqual(c.code, 0, c.stderr);

      const m = await settled(proxy, 8);
      assert.strictEqual(m.tlsHandshakes, 8);
      assert.strictEqual(m.tlsSniMismatches, 0);
    });
  });

  describe('ALPN', function () {
    async function alpnOf(port, name, offered) {
      const opts = { ca: env.pki.ca };
      if (offered) opts.ALPNProtocols = offered;
      const r = await T.httpsRequest(port, name, opts);
      assert.strictEqual(r.status, 200, 'the handshake and the request succeed whatever ALPN says');
      return r.tls.alpn;
    }

    it('selects by the route\'s list (server preference); no overlap or no offer means no ALPN', async function () {
      const proxy = await startProxy({
        listener: { defaultCert: pair(env.pki.leaves.def) },
        routes: [
          term('a.test', env.pki.leaves.a, { alpn: ['h2', 'http/1.1'] }),
          term('b.test', env.pki.leaves.b), // default ['http/1.1']
          term('x.w.test', env.pki.leaves.wild, { alpn: ['http/1.1', 'h2'] }),
          term('y.w.test', env.pki.leaves.wild, { alpn: [] }),
        ],
      });
      const port = portOf(proxy);
      assert.strictEqual(await alpnOf(port, 'a.test', ['h2', 'http/1.1']), 'h2');
      assert.strictEqual(await alpnOf(port, 'a.test', ['http/1.1']), 'http/1.1');
      assert.strictEqual(await alpnOf(port, 'a.test', null), false, 'a client offering none gets none');
      assert.strictEqual(await alpnOf(port, 'b.test', ['h2', 'http/1.1']), 'http/1.1', 'the default list is http/1.1');
      assert.strictEqual(await alpnOf(port, 'b.test', ['h2']), false, 'no overlap: no ALPN, handshake continues');
      assert.strictEqual(await alpnOf(port, 'x.w.test', ['h2', 'http/1.1']), 'http/1.1', 'server preference');
      assert.strictEqual(await alpnOf(port, 'y.w.test', ['h2', 'http/1.1']), false, 'alpn: [] turns ALPN off');

      const s1 = await sGet(port, sArgs('a.test', ['-alpn', 'h2,http/1.1']));
      assert.match(s1.out, /ALPN protocol: h2/);
      const s2 = await sGet(port, sArgs('b.test', ['-alpn', 'h2,http/1.1']));
      assert.match(s2.out, /ALPN protocol: http\/1\.1/);
      const s3 = await sGet(port, sArgs('a.test'));
      assert.match(s3.out, /No ALPN negotiated/);
      const m = await settled(proxy, 10);
      assert.strictEqual(m.tlsHandshakes, 10);
      assert.strictEqual(m.handshakeFailures, 0);
    });
  });

  describe('protocol versions, suites and compression', function () {
    it('refuses TLS 1.0 and TLS 1.1 with a protocol_version alert, accepts TLS 1.2 and 1.3', async function () {
      const proxy = await startProxy({ routes: [term('a.test', env.pki.leaves.a)] });
      const port = portOf(proxy);
      // SECLEVEL=0 lets OpenSSL 3 offer the old versions at all: the refusal must come from legato.
      for (const v of ['-tls1', '-tls1_1']) {
        const s = await T.runSClient(port, ['-servername', 'a.test', v, '-cipher', 'DEFAULT@SECLEVEL=0'], {});
        assert.notStrictEqual(s.code, 0, `${v} must fail:\n${s.out}`);
        assert.match(s.out, /alert protocol version/, `${v}: refused by the server's alert:\n${s.out}`);
      }
      await assert.rejects(T.httpsRequest(port, 'a.test', { ca: env.pki.ca, minVersion: 'TLSv1', maxVersion: 'TLSv1.1', ciphers: 'DEFAULT@SECLEVEL=0' }));
      for (const [v, name] of [['-tls1_2', 'TLSv1.2'], ['-tls1_3', 'TLSv1.3']]) {
        const s = await sGet(port, sArgs('a.test', [v]));
        assert.strictEqual(s.code, 0, s.out);
        assert.match(s.out, new RegExp(`Protocol *: ${name.replace('.', '\\.')}`));
        assert.match(s.out, /up method=GET/);
      }
      const m = await settled(proxy, 5);
      assert.strictEqual(m.handshakeFailuresProtocol, 3);
      assert.strictEqual(m.handshakeFailures, 3);
      assert.strictEqual(m.tlsHandshakes, 2);
      assert.strictEqual(env.up.requests.length, 2, 'refused handshakes never reach the upstream with data');
    });

    it('offers only forward-secret AEAD suites on TLS 1.2 (static RSA, CBC and SHA-1 suites refused)', async function () {
      const proxy = await startProxy({ routes: [term('a.test', env.pki.leaves.a), term('rsa.test', env.pki.leaves.rsa)] });
      const port = portOf(proxy);
      for (const [name, suites] of [['a.test', 'ECDHE-ECDSA-AES128-SHA:ECDHE-ECDSA-AES256-SHA384'], ['rsa.test', 'AES128-SHA:AES256-GCM-SHA384:ECDHE-RSA-AES128-SHA256:DES-CBC3-SHA']]) {
        const s = await T.runSClient(port, ['-servername', name, '-tls1_2', '-cipher', `${suites}@SECLEVEL=0`], {});
        assert.notStrictEqual(s.code, 0, `${suites} must be refused:\n${s.out}`);
        assert.match(s.out, /handshake failure/);
      }
      const ok = await sGet(port, sArgs('rsa.test', ['-tls1_2', '-cipher', 'ECDHE-RSA-AES128-GCM-SHA256']));
      assert.match(ok.out, /Cipher is ECDHE-RSA-AES128-GCM-SHA256/);
      const m = await settled(proxy, 3);
      assert.strictEqual(m.handshakeFailuresProtocol, 2);
    });

    it('never selects compression, even when the client offers DEFLATE', async function () {
      const proxy = await startProxy({ routes: [term('a.test', env.pki.leaves.a)] });
      const hello = await captureClientHello('a.test', { maxVersion: 'TLSv1.2' });
      const r = await T.rawTls(portOf(proxy), T.withCompression(hello), 5000, (data) => T.serverHelloInfo(data) !== null);
      const info = T.serverHelloInfo(r.data);
      assert.ok(info && info.compression !== undefined, `expected a ServerHello, got ${r.data.subarray(0, 16).toString('hex')}`);
      assert.strictEqual(info.compression, 0, 'compression_method null');
      const s = await sGet(portOf(proxy), sArgs('a.test', ['-tls1_2']));
      assert.match(s.out, /Compression: NONE/);
    });
  });

  describe('the handshake deadline (protection.tlsHandshakeTimeoutMs, from accept)', function () {
    it('closes a stalled handshake (ClientHello, then nothing) at the deadline, after dialling the upstream', async function () {
      const rec = await startTcpServer(null, { allowHalfOpen: false }); // closes after the proxy's FIN
      const proxy = await startProxy({
        listener: { protection: { tlsHandshakeTimeoutMs: 500 } },
        routes: [term('a.test', env.pki.leaves.a, {}, rec.port)],
      });
      const hello = await captureClientHello('a.test');
      const sock = await connect(portOf(proxy));
      const done = collect(sock);
      sock.write(hello);
      // The upstream is dialled while the handshake runs: it connects although the client never
      // finishes its handshake.
      const upConn = await rec.nextConnection();
      const r = await done;
      assert.ok(T.serverHelloInfo(r.data), 'the server answered the ClientHello');
      await upConn.closed;
      assert.strictEqual(upConn.received, 0, 'nothing was forwarded');
      const m = await waitForMetric(proxy, 'handshakeFailuresTimeout', 1);
      assert.strictEqual(m.handshakeFailures, 1);
      assert.strictEqual(m.listeners[0].handshakeFailuresTimeout, 1);
      assert.strictEqual(m.tlsHandshakes, 0);
      await settled(proxy, 1);
    });

    it('is absolute: a handshake trickled one byte at a time after the ClientHello is still cut at the deadline', async function () {
      const proxy = await startProxy({
        listener: { protection: { tlsHandshakeTimeoutMs: 800 } },
        routes: [term('a.test', env.pki.leaves.a)],
      });
      // Bytes keep arriving every 60 ms (well inside any idle timer) but the client's second
      // flight needs seconds at that pace.
      const relay = await T.trickleRelay(portOf(proxy), { passFirstChunk: true, intervalMs: 60 });
      const client = trackSocket(tls.connect({ host: '127.0.0.1', port: relay.port, servername: 'a.test', ca: env.pki.ca }));
      let secure = false;
      client.on('secureConnect', () => { secure = true; client.write('GET / HTTP/1.0\r\n\r\n'); });
      await waitFor(() => relay.stats.length === 1);
      await relay.stats[0].targetClosed;
      assert.ok(relay.stats[0].pending() > 0, 'the proxy closed while the client was still trickling bytes');
      assert.ok(relay.stats[0].forwarded > 0);
      const m = await waitForMetric(proxy, 'handshakeFailuresTimeout', 1);
      assert.strictEqual(m.tlsHandshakes, 0);
      assert.strictEqual(env.up.requests.length, 0);
      void secure; // TLS 1.3: the client may consider its side done; the server never did
    });

    it('is absolute while the ClientHello itself is trickled', async function () {
      const proxy = await startProxy({
        listener: { protection: { tlsHandshakeTimeoutMs: 500 } },
        routes: [term('a.test', env.pki.leaves.a)],
      });
      const relay = await T.trickleRelay(portOf(proxy), { intervalMs: 40 });
      trackSocket(tls.connect({ host: '127.0.0.1', port: relay.port, servername: 'a.test', ca: env.pki.ca }));
      await waitFor(() => relay.stats.length === 1);
      await relay.stats[0].targetClosed;
      assert.ok(relay.stats[0].pending() > 0, 'closed before the ClientHello was complete');
      const m = await waitForMetric(proxy, 'handshakeFailuresTimeout', 1);
      assert.strictEqual(m.handshakeFailures, 1);
    });
  });

  describe('closing', function () {
    it('sends close_notify before FIN when the upstream closes (no "unexpected eof" at the client)', async function () {
      const bye = await startTcpServer((s) => s.end('bye\n'));
      const proxy = await startProxy({ routes: [term('a.test', env.pki.leaves.a, {}, bye.port)] });
      for (const v of ['-tls1_2', '-tls1_3']) {
        const s = await T.runSClient(portOf(proxy), sArgs('a.test', [v, '-quiet']), {});
        assert.match(s.out, /bye\n/, s.out);
        assert.doesNotMatch(s.out, /unexpected eof/i, `${v}: the proxy closed without close_notify:\n${s.out}`);
        assert.strictEqual(s.code, 0, s.out);
      }
      // Node sees a clean end of stream too.
      const node = trackSocket(tls.connect({ host: '127.0.0.1', port: portOf(proxy), servername: 'a.test', ca: env.pki.ca }));
      const r = await collect(node);
      assert.strictEqual(r.data.toString(), 'bye\n');
      assert.strictEqual(r.ended, true);
      assert.strictEqual(r.error, null);
      const m = await settled(proxy, 3);
      assert.strictEqual(m.tlsTruncations, 0);
      assert.strictEqual(m.tlsErrors, 0);
    });

    it('counts a client FIN without close_notify as a truncation and closes the upstream', async function () {
      const rec = await startTcpServer(null, { allowHalfOpen: false }); // closes after the proxy's FIN
      const proxy = await startProxy({ routes: [term('a.test', env.pki.leaves.a, {}, rec.port)] });
      const raw = await connect(portOf(proxy));
      const client = trackSocket(tls.connect({ socket: raw, servername: 'a.test', ca: env.pki.ca }));
      await new Promise((resolve, reject) => { client.once('secureConnect', resolve); client.once('error', reject); });
      client.write('hello upstream');
      const upConn = await rec.nextConnection();
      await waitFor(() => upConn.received === 14);
      raw.end(); // a TCP FIN under the TLS session: no close_notify was sent
      await upConn.closed;
      assert.strictEqual(upConn.data().toString(), 'hello upstream');
      const m = await waitForMetric(proxy, 'tlsTruncations', 1);
      assert.strictEqual(m.listeners[0].tlsTruncations, 1);
      await settled(proxy, 1);
    });

    it('counts a killed openssl s_client as a truncation and closes the upstream', async function () {
      const rec = await startTcpServer(null, { allowHalfOpen: false }); // closes after the proxy's FIN
      const proxy = await startProxy({ routes: [term('a.test', env.pki.leaves.a, {}, rec.port)] });
      const s = T.sClient(portOf(proxy), sArgs('a.test'));
      await s.waitOutput(/Verify return code: 0/);
      s.write('ping\n');
      const upConn = await rec.nextConnection();
      await waitFor(() => upConn.received === 5);
      s.kill('SIGKILL');
      await upConn.closed;
      await waitForMetric(proxy, 'tlsTruncations', 1);
      await settled(proxy, 1);
    });

    it('passes a clean close (close_notify, then FIN) on as a half-close, not a truncation', async function () {
      const rec = await startTcpServer((sock) => sock.on('end', () => sock.end('late reply')));
      const proxy = await startProxy({ routes: [term('a.test', env.pki.leaves.a, {}, rec.port)] });
      const client = trackSocket(tls.connect({ host: '127.0.0.1', port: portOf(proxy), servername: 'a.test', ca: env.pki.ca, allowHalfOpen: true }));
      await new Promise((resolve, reject) => { client.once('secureConnect', resolve); client.once('error', reject); });
      const done = collect(client);
      client.end('last words'); // close_notify + FIN
      const upConn = await rec.nextConnection();
      await upConn.ended;
      assert.strictEqual(upConn.data().toString(), 'last words');
      const r = await done;
      assert.strictEqual(r.data.toString(), 'late reply', 'the upstream could still answer after the half-close');
      const m = await settled(proxy, 1);
      assert.strictEqual(m.tlsTruncations, 0);
    });

    it('survives a client that finishes the handshake and closes cleanly while the upstream is still being dialled', async function () {
      // Regression (fixed in cdff6b7): close_notify arriving before the upstream connected made
      // the relay call uv_shutdown() on the upstream stream that did not exist yet (SIGSEGV in
      // flow_maybe_shutdown). The upstream here never accepts, so the dial stays pending. Run in
      // a child process so that a crash fails this test, not the whole run.
      const hole = await startBlackhole();
      const child = await startChildProxy({
        routes: [{ sni: 'a.test', terminateTls: true, cert: { certChain: env.pki.leaves.a.chain.toString(), privateKey: env.pki.leaves.a.key.toString() }, upstreams: [tcp(hole.port)] }],
      });
      for (let i = 0; i < 3; i++) {
        const client = trackSocket(tls.connect({ host: '127.0.0.1', port: child.port, servername: 'a.test', ca: env.pki.ca }));
        await new Promise((resolve, reject) => { client.once('secureConnect', resolve); client.once('error', reject); });
        client.end(); // close_notify + FIN, the dial still pending
      }
      let m;
      await waitFor(async () => {
        m = await child.call('metrics');
        return m.tlsHandshakes === 3;
      }, 5000, { describe: () => m });
      await sleep(200);
      assert.ok(child.child.exitCode === null && child.child.signalCode === null, `the proxy process died (signal ${child.child.signalCode}); stderr:\n${child.stderr()}`);
      m = await child.call('metrics');
      assert.strictEqual(m.tlsTruncations, 0, 'a close_notify before the FIN is a clean close');
      assert.strictEqual(m.activeConnections, 3, 'the connections wait for their upstream dial (half-closed)');
    });
  });
});
