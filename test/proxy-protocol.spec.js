'use strict';
// PROXY protocol input (issue 12 part 6) from real sockets: v1 and v2 headers as raw bytes (the
// address they carry becomes the client's; UNKNOWN / LOCAL / UNIX keep the socket's), TLVs
// skipped, headers split byte by byte, the bytes after the header forwarded intact; malformed
// and lying headers refused as proxy_header without disturbing other connections; a version
// mismatch; an untrusted sender (proxy_untrusted); the absolute deadline; protection judging
// the PROXY source; connect listeners behind PROXY input; HAProxy's send-proxy and
// send-proxy-v2 end to end with curl and node TLS.

const assert = require('assert');
const fs = require('fs');
const os = require('os');
const path = require('path');
const net = require('net');
const { spawn, spawnSync } = require('child_process');
const { cleanup, startProxy, portOf, track } = require('./helpers/proxy');
const { startEchoServer, startTcpServer, startTlsOrigin } = require('./helpers/servers');
const { waitFor, sleep } = require('./helpers/wait');
const { buildClientHello } = require('./helpers/hello');
const { run, nodeTlsGet } = require('./helpers/clients');
const { getCerts } = require('./helpers/certs');
const {
  dial, exchange, probe, recordBlocked, blocked, proxyV1, proxyV2, tlv, V2_SIG,
} = require('./helpers/protect');

/**
 * A proxy whose listener accepts PROXY headers (`accept`) from `trusted`, with a suspended
 * default route: each connection's 'suspended' event (its peerIp/peerPort) is recorded and then
 * resolved to an echo server. Resolves with { proxy, port, seen, echo }.
 */
async function startPP({ accept = 'any', trusted = ['127.0.0.1/32'], protection, listener = {}, top = {} } = {}) {
  const echo = await startEchoServer();
  const proxy = await startProxy({
    ...top,
    protection: { tlsHandshakeTimeoutMs: 3000, ...protection },
    routes: [{ sni: '', suspended: true, upstreams: [] }],
    listener: { acceptProxyProtocol: accept, trustedProxies: trusted, ...listener },
  });
  const seen = [];
  proxy.on('suspended', (conn) => {
    seen.push(conn);
    proxy.resolveConnection(conn.id, { upstreams: [{ kind: 'tcp', host: '127.0.0.1', port: echo.port }], terminateTls: false });
  });
  return { proxy, port: portOf(proxy), seen, echo };
}

const HELLO = buildClientHello({ sni: 'a.test' });

/** Send header + HELLO (+ extra) and expect the echo of everything after the header, byte-exact. */
async function through(port, header, { extra = Buffer.alloc(0), source = '127.0.0.1' } = {}) {
  const s = await dial(port, source);
  const body = Buffer.concat([HELLO, extra]);
  const r = await exchange(s, Buffer.concat([header, body]), body.length);
  assert.strictEqual(r.admitted, true, 'admitted');
  assert.ok(r.data.equals(body), 'the bytes after the header arrive intact');
  return r;
}

describe('PROXY protocol input', function () {
  this.timeout(60000);
  afterEach(cleanup);

  describe('headers that carry an address', () => {
    it('v1 TCP4 and TCP6: the address becomes the client\'s', async () => {
      const { proxy, port, seen } = await startPP();
      await through(port, proxyV1('192.0.2.7', 5555));
      await through(port, proxyV1('2001:db8::7', 6666));
      assert.deepStrictEqual(seen.map((c) => [c.peerIp, c.peerPort]), [['192.0.2.7', 5555], ['2001:db8::7', 6666]]);
      assert.strictEqual(proxy.metrics().proxyProtocolHeaders, 2);
    });

    it('v2 TCP4 and TCP6, with TLVs skipped', async () => {
      const { proxy, port, seen } = await startPP({ accept: 'v2' });
      const tlvs = Buffer.concat([tlv(0x02, Buffer.from('a.test')), tlv(0x04, Buffer.alloc(0)), tlv(0xe0, Buffer.alloc(300, 7)), tlv(0x05, Buffer.alloc(16, 1))]);
      await through(port, proxyV2({ src: '198.51.100.9', sport: 1234, tlvs }));
      await through(port, proxyV2({ src: '2001:db8::9', sport: 4321 }));
      assert.deepStrictEqual(seen.map((c) => [c.peerIp, c.peerPort]), [['198.51.100.9', 1234], ['2001:db8::9', 4321]]);
      assert.strictEqual(proxy.metrics().proxyProtocolHeaders, 2);
    });

    it('keeps the socket address for UNKNOWN / LOCAL / UNIX / UNSPEC headers', async () => {
      const { proxy, port, seen } = await startPP({ trusted: ['127.0.0.0/8'] });
      await through(port, Buffer.from('PROXY UNKNOWN\r\n'), { source: '127.0.0.2' });
      await through(port, Buffer.from('PROXY UNKNOWN ffff::1 ffff::2 1 2\r\n'), { source: '127.0.0.3' });
      await through(port, proxyV2({ command: 'LOCAL', src: '192.0.2.1' }), { source: '127.0.0.4' });
      await through(port, proxyV2({ family: 'unix' }), { source: '127.0.0.5' });
      await through(port, proxyV2({ family: 'unspec' }), { source: '127.0.0.6' });
      assert.deepStrictEqual(seen.map((c) => c.peerIp), ['127.0.0.2', '127.0.0.3', '127.0.0.4', '127.0.0.5', '127.0.0.6']);
      assert.strictEqual(proxy.metrics().proxyProtocolHeaders, 5);
    });

    it('a header and hello split byte by byte arrive whole; bytes after the hello are forwarded', async () => {
      const { port, seen } = await startPP();
      for (const header of [proxyV1('203.0.113.5', 999), proxyV2({ src: '203.0.113.6', sport: 998, tlvs: tlv(0x01, Buffer.from('h2')) })]) {
        const s = await dial(port);
        s.setNoDelay(true);
        const body = Buffer.concat([HELLO, Buffer.from('after the hello')]);
        const all = Buffer.concat([header, body]);
        const got = new Promise((resolve, reject) => {
          const chunks = [];
          let n = 0;
          s.on('data', (c) => { chunks.push(c); n += c.length; if (n >= body.length) resolve(Buffer.concat(chunks)); });
          s.once('close', () => reject(new Error('closed')));
        });
        for (let i = 0; i < header.length + 5; i++) {
          await new Promise((resolve) => s.write(all.subarray(i, i + 1), resolve));
          await new Promise((resolve) => setImmediate(resolve));
        }
        s.write(all.subarray(header.length + 5));
        assert.ok((await got).equals(body));
        s.destroy();
      }
      assert.deepStrictEqual(seen.map((c) => c.peerIp), ['203.0.113.5', '203.0.113.6']);
    });
  });

  describe('bad headers', () => {
    const sig = V2_SIG;
    const v2 = (b12, b13, len, rest = Buffer.alloc(0)) => {
      const h = Buffer.alloc(16);
      sig.copy(h);
      h[12] = b12;
      h[13] = b13;
      h.writeUInt16BE(len, 14);
      return Buffer.concat([h, rest]);
    };
    const BAD = [
      ['not a PROXY header', Buffer.from('GET / HTTP/1.0\r\n\r\n')],
      ['a ClientHello without a header', HELLO],
      ['v1 LF without CR', Buffer.from('PROXY TCP4 1.2.3.4 5.6.7.8 1 2\n')],
      ['v1 CR CR LF', Buffer.from('PROXY TCP4 1.2.3.4 5.6.7.8 1 2\r\r\n')],
      ['v1 two spaces', Buffer.from('PROXY TCP4  1.2.3.4 5.6.7.8 1 2\r\n')],
      ['v1 a port with a leading zero', Buffer.from('PROXY TCP4 1.2.3.4 5.6.7.8 01 2\r\n')],
      ['v1 port 65536', Buffer.from('PROXY TCP4 1.2.3.4 5.6.7.8 65536 2\r\n')],
      ['v1 TCP4 with IPv6 addresses', Buffer.from('PROXY TCP4 ::1 ::1 1 2\r\n')],
      ['v1 TCP6 with IPv4 addresses', Buffer.from('PROXY TCP6 1.2.3.4 5.6.7.8 1 2\r\n')],
      ['v1 unknown protocol', Buffer.from('PROXY TCP5 1.2.3.4 5.6.7.8 1 2\r\n')],
      ['v1 a short address', Buffer.from('PROXY TCP4 1.2.3 5.6.7.8 1 2\r\n')],
      ['v1 an extra field', Buffer.from('PROXY TCP4 1.2.3.4 5.6.7.8 1 2 3\r\n')],
      ['v1 lower case', Buffer.from('proxy TCP4 1.2.3.4 5.6.7.8 1 2\r\n')],
      ['v1 over 107 bytes', Buffer.from(`PROXY UNKNOWN ${'x'.repeat(200)}\r\n`)],
      ['v2 version 3', v2(0x31, 0x11, 12, Buffer.alloc(12))],
      ['v2 command 2', v2(0x22, 0x11, 12, Buffer.alloc(12))],
      ['v2 family 0x41', v2(0x21, 0x41, 12, Buffer.alloc(12))],
      ['v2 a datagram protocol', v2(0x21, 0x12, 12, Buffer.alloc(12))],
      ['v2 a length shorter than the TCP4 addresses', v2(0x21, 0x11, 8, Buffer.alloc(8))],
      ['v2 a length shorter than the TCP6 addresses', v2(0x21, 0x21, 20, Buffer.alloc(20))],
      ['v2 a TLV whose value passes the end', v2(0x21, 0x11, 12 + 5, Buffer.concat([Buffer.alloc(12), Buffer.from([0xe0, 0, 100, 1, 2])]))],
      ['v2 a truncated TLV header', v2(0x21, 0x11, 12 + 2, Buffer.concat([Buffer.alloc(12), Buffer.from([0xe0, 0])]))],
      ['v2 two AUTHORITY TLVs', proxyV2({ tlvs: Buffer.concat([tlv(0x02, Buffer.from('a')), tlv(0x02, Buffer.from('b'))]) })],
      ['v2 a length over 4 KiB', v2(0x21, 0x11, 5000, Buffer.alloc(5000))],
      ['v2 a damaged signature', Buffer.concat([Buffer.from([0x0d, 0x0a, 0x0d, 0x0a, 0x00, 0x0d, 0x0a, 0x51, 0x55, 0x49, 0x54, 0x0b]), Buffer.alloc(20)])],
    ];

    it(`refuses ${BAD.length} malformed or lying headers as proxy_header; another connection's bytes stay exact`, async () => {
      const { proxy, port, seen } = await startPP();
      const events = recordBlocked(proxy);
      const good = await dial(port);
      const first = await exchange(good, Buffer.concat([proxyV1('192.0.2.50'), HELLO]), HELLO.length, { close: false });
      assert.strictEqual(first.admitted, true);
      for (const [name, bytes] of BAD) {
        const s = await dial(port);
        const r = await exchange(s, bytes, 1);
        assert.strictEqual(r.admitted, false, name);
        assert.strictEqual(r.data.length, 0, name);
      }
      await waitFor(() => blocked(proxy, 0).proxy_header >= BAD.length, 5000, { describe: () => blocked(proxy, 0) });
      // The good connection is untouched: a further 64 KiB comes back byte-exact.
      const more = Buffer.alloc(65536);
      for (let i = 0; i < more.length; i++) more[i] = (i * 31) & 255;
      const r = await exchange(good, more, more.length);
      assert.ok(r.data.equals(more));
      const m = proxy.metrics();
      assert.strictEqual(m.blockedByReason.proxy_header, BAD.length);
      assert.strictEqual(m.proxyProtocolHeaders, 1);
      assert.strictEqual(seen.length, 1);
      assert.ok(events.forReason('proxy_header', '127.0.0.1').length >= 1);
    });

    it('a connection that closes before a header is a proxy_header refusal', async () => {
      const { proxy, port } = await startPP();
      const s = await dial(port);
      s.end('PROXY TCP4 1.2.3.4');
      await new Promise((resolve) => s.once('close', resolve));
      await waitFor(() => blocked(proxy, 0).proxy_header === 1);
    });

    it('refuses the other version on a one-version listener', async () => {
      const v1only = await startPP({ accept: 'v1' });
      assert.strictEqual((await probe(v1only.port, '127.0.0.1', { prefix: proxyV2({ src: '192.0.2.1' }) })).admitted, false);
      assert.strictEqual((await probe(v1only.port, '127.0.0.1', { prefix: proxyV1('192.0.2.1') })).admitted, true);
      const v2only = await startPP({ accept: 'v2' });
      assert.strictEqual((await probe(v2only.port, '127.0.0.1', { prefix: proxyV1('192.0.2.1') })).admitted, false);
      assert.strictEqual((await probe(v2only.port, '127.0.0.1', { prefix: proxyV2({ src: '192.0.2.1' }) })).admitted, true);
      await waitFor(() => blocked(v1only.proxy, 0).proxy_header === 1 && blocked(v2only.proxy, 0).proxy_header === 1);
    });

    it('refuses a header from an untrusted source at accept (proxy_untrusted)', async () => {
      const { proxy, port, seen } = await startPP({ trusted: ['127.0.0.1/32', '::1/128'] });
      const events = recordBlocked(proxy);
      const r = await probe(port, '127.0.0.2', { prefix: proxyV1('192.0.2.1') });
      assert.strictEqual(r.admitted, false);
      const ev = await waitFor(() => events.forReason('proxy_untrusted')[0]);
      assert.strictEqual(ev.ip, '127.0.0.2');
      assert.strictEqual(blocked(proxy, 0).proxy_untrusted, 1);
      assert.strictEqual(seen.length, 0);
      assert.strictEqual((await probe(port, '127.0.0.1', { prefix: proxyV1('192.0.2.1') })).admitted, true);
    });

    it('a trickled header hits the absolute deadline', async () => {
      const { proxy, port } = await startPP({ protection: { tlsHandshakeTimeoutMs: 600 } });
      const s = await dial(port);
      const header = proxyV1('192.0.2.1');
      let closed = false;
      s.on('close', () => { closed = true; });
      s.on('error', () => {});
      let sent = 0;
      // One byte every 100 ms would take several seconds; the deadline closes it first.
      while (!closed && sent < header.length) {
        s.write(header.subarray(sent, sent + 1));
        sent++;
        await sleep(100);
      }
      assert.ok(closed && sent < header.length, `closed after ${sent} of ${header.length} bytes`);
      await waitFor(() => blocked(proxy, 0).proxy_header === 1);
    });
  });

  describe('with protection and connect listeners', () => {
    it('protection judges the source the header carries', async () => {
      const { proxy, port } = await startPP({ protection: { blocklist: ['192.0.2.0/24'] } });
      const events = recordBlocked(proxy);
      assert.strictEqual((await probe(port, '127.0.0.1', { prefix: proxyV1('192.0.2.9') })).admitted, false);
      assert.strictEqual((await probe(port, '127.0.0.1', { prefix: proxyV1('198.51.100.1') })).admitted, true);
      const ev = await waitFor(() => events.forReason('cidr_blocked')[0]);
      assert.strictEqual(ev.ip, '192.0.2.9');
      assert.strictEqual(blocked(proxy, 0).cidr_blocked, 1);
    });

    /** A connect listener behind PROXY input, its policy allowing `target`'s port. */
    async function startConnectPP(targetPort, protection) {
      const proxy = await startProxy({
        ...(protection ? { protection } : {}),
        listener: { kind: 'connect', acceptProxyProtocol: 'any', trustedProxies: ['127.0.0.1'], connect: { allowPorts: [targetPort], denyCidrs: [] } },
      });
      return { proxy, port: portOf(proxy) };
    }

    it('a connect listener behind PROXY input: the tunnel works, protection judges the PROXY source (403)', async () => {
      const echo = await startEchoServer();
      const { proxy, port } = await startConnectPP(echo.port, { blocklist: ['192.0.2.0/24'] });
      const req = Buffer.from(`CONNECT 127.0.0.1:${echo.port} HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n`);
      const ok = await dial(port);
      const est = 'HTTP/1.1 200 Connection Established\r\n\r\n';
      const r = await exchange(ok, Buffer.concat([proxyV2({ src: '198.51.100.3' }), req, Buffer.from('ping')]), est.length + 4);
      assert.strictEqual(r.data.toString(), `${est}ping`);
      const bad = await dial(port);
      const r2 = await new Promise((resolve) => {
        const chunks = [];
        bad.on('data', (c) => chunks.push(c));
        bad.on('error', () => {});
        bad.on('close', () => resolve(Buffer.concat(chunks).toString()));
        bad.write(Buffer.concat([proxyV1('192.0.2.4'), req]));
      });
      assert.match(r2, /^HTTP\/1\.1 403 /);
      await waitFor(() => proxy.metrics().status403 === 1 && blocked(proxy, 0).cidr_blocked === 1);
    });

    it('pins the heap overflow: a PROXY header and a CONNECT head over 2 KiB in one read', async () => {
      const echo = await startEchoServer();
      const { proxy, port } = await startConnectPP(echo.port);
      const est = 'HTTP/1.1 200 Connection Established\r\n\r\n';
      for (const pad of [2000, 3000, 3900]) {
        const req = Buffer.from(`CONNECT 127.0.0.1:${echo.port} HTTP/1.1\r\nHost: 127.0.0.1\r\nX-Pad: ${'p'.repeat(pad)}\r\n\r\n`);
        const tail = Buffer.from('after the head');
        const s = await dial(port);
        const r = await exchange(s, Buffer.concat([proxyV1('198.51.100.4'), req, tail]), est.length + tail.length);
        assert.strictEqual(r.data.toString(), est + tail.toString(), `pad ${pad}`);
      }
      assert.strictEqual(proxy.metrics().status200, 3);
    });
  });

  describe('HAProxy send-proxy and send-proxy-v2', () => {
    const haproxy = spawnSync('haproxy', ['-v'], { encoding: 'utf8' });
    const have = haproxy.status === 0;

    /** Start haproxy forwarding 127.0.0.1:<free> to legato's port with `sendProxy`. */
    async function startHaproxy(target, sendProxy) {
      const free = await new Promise((resolve) => {
        const srv = net.createServer().listen(0, '127.0.0.1', () => {
          const p = srv.address().port;
          srv.close(() => resolve(p));
        });
      });
      const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'prot2-haproxy-'));
      const cfg = path.join(dir, 'haproxy.cfg');
      fs.writeFileSync(cfg, [
        'global', '  maxconn 100',
        'defaults', '  mode tcp', '  timeout connect 5s', '  timeout client 30s', '  timeout server 30s',
        'frontend f', `  bind 127.0.0.1:${free}`, '  default_backend b',
        'backend b', `  server legato 127.0.0.1:${target} ${sendProxy}`,
        '',
      ].join('\n'));
      const child = spawn('haproxy', ['-db', '-f', cfg], { stdio: ['ignore', 'pipe', 'pipe'] });
      let stderr = '';
      child.stderr.on('data', (c) => { stderr += c; });
      track(child, (c) => {
        fs.rmSync(dir, { recursive: true, force: true });
        if (c.exitCode !== null) return undefined;
        c.kill('SIGKILL');
        return new Promise((r) => c.once('close', r));
      }, 0);
      await waitFor(() => new Promise((resolve) => {
        const s = net.connect({ host: '127.0.0.1', port: free }, () => { s.destroy(); resolve(true); });
        s.on('error', () => resolve(false));
      }), 10000, { describe: () => stderr });
      return free;
    }

    for (const sendProxy of ['send-proxy', 'send-proxy-v2']) {
      it(`${sendProxy}: curl and node TLS through HAProxy reach the origin; legato sees the client's address`, async function () {
        if (!have) {
          console.log('      haproxy is not installed: skipped (apt-get install haproxy)');
          this.skip();
        }
        const certs = getCerts();
        const origin = await startTlsOrigin('origin', certs.leaves['a.test']);
        const proxy = await startProxy({
          routes: [{ sni: 'a.test', suspended: true, upstreams: [] }],
          listener: { acceptProxyProtocol: sendProxy === 'send-proxy' ? 'v1' : 'v2', trustedProxies: ['127.0.0.1'] },
        });
        const seen = [];
        proxy.on('suspended', (conn) => {
          seen.push(conn);
          proxy.resolveConnection(conn.id, { upstreams: [{ kind: 'tcp', host: '127.0.0.1', port: origin.port }], terminateTls: false });
        });
        const front = await startHaproxy(portOf(proxy), sendProxy);
        const c = await run('curl', ['-sS', '--max-time', '10', '--interface', '127.0.0.7', '--cacert', certs.caPath,
          '--resolve', `a.test:${front}:127.0.0.1`, `https://a.test:${front}/`], { timeoutMs: 15000 });
        assert.strictEqual(c.code, 0, c.stderr);
        assert.match(c.stdout, /origin=origin\nsni=a\.test/);
        const n = await nodeTlsGet(front, 'a.test', { ca: certs.ca });
        assert.strictEqual(n.status, 200);
        assert.match(n.body, /origin=origin/);
        assert.deepStrictEqual(seen.map((x) => x.peerIp), ['127.0.0.7', '127.0.0.1']);
        // (haproxy may also have forwarded the readiness probe's connection)
        assert.ok(proxy.metrics().proxyProtocolHeaders >= 2);
      });
    }
  });
});
