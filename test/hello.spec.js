'use strict';
// Reading the ClientHello on a passthrough listener: reassembly however the bytes arrive (one
// byte at a time, split across TLS records), forwarding every byte verbatim (the hello and what
// follows it), refusing malformed hellos (handshakeFailuresProtocol), and the handshake deadline
// protection.tlsHandshakeTimeoutMs — absolute from accept, not extended by trickled bytes
// (handshakeFailuresTimeout).
//
// Origins here are raw TCP recorders, so what the proxy forwarded is compared byte for byte.

const assert = require('assert');
const crypto = require('crypto');
const { getCerts } = require('./helpers/certs');
const { startRecorder, startTlsOrigin, startTcpServer } = require('./helpers/servers');
const { startProxy, route, portOf, connect, collect, closed, trackSocket, cleanup } = require('./helpers/proxy');
const { nodeTlsGet } = require('./helpers/clients');
const { waitFor, waitForMetric, sleep } = require('./helpers/wait');
const {
  captureClientHello, reframe, offsetInHandshake, buildClientHello, helloRecordsLength,
  parseRecords,
} = require('./helpers/hello');
const net = require('net');

/** Write `buf` in `chunk`-byte pieces, `intervalMs` apart; stops early if the socket closes. */
async function writeSlowly(socket, buf, { chunk = 1, intervalMs = 1 } = {}) {
  let sent = 0;
  for (let off = 0; off < buf.length; off += chunk) {
    if (socket.destroyed || socket.writableEnded) break;
    socket.write(buf.subarray(off, off + chunk));
    sent = Math.min(off + chunk, buf.length);
    await sleep(intervalMs);
  }
  return sent;
}

/** A valid DNS name of exactly `n` bytes (labels of up to 63 bytes, ending in ".test"). */
function longName(n) {
  const labels = [];
  let left = n - '.test'.length;
  while (left > 0) {
    const take = Math.min(63, left - (left > 63 ? 1 : 0));
    labels.push('x'.repeat(take));
    left -= take + 1;
  }
  const name = `${labels.join('.')}.test`;
  if (name.length !== n) throw new Error(`longName(${n}) made ${name.length} bytes`);
  return name;
}

/** Wait until a recorder connection holds at least `n` bytes; returns them. */
async function receivedAtLeast(conn, n, timeoutMs = 10000) {
  await waitFor(() => conn.received >= n, timeoutMs, { message: `origin received ${conn.received} of ${n} bytes` });
  return conn.data();
}

describe('ClientHello reading', function () {
  this.timeout(30000);
  let hello; // a real ClientHello from Node's TLS client, SNI a.test, one record
  let RA; let RD; // recorders behind routes 'a.test' and ''

  before(async function () {
    hello = await captureClientHello('a.test');
    assert.strictEqual(parseRecords(hello).length, 1, 'Node sends its hello in one record');
    assert.ok(offsetInHandshake(hello, 'a.test') > 0);
  });

  beforeEach(async function () {
    RA = await startRecorder();
    RD = await startRecorder();
  });

  afterEach(cleanup);

  function proxyOpts(extra = {}) {
    return { routes: [route('a.test', RA.port), route('', RD.port)], ...extra };
  }

  it('routes a ClientHello sent one byte at a time and forwards it byte-exact', async function () {
    const proxy = await startProxy(proxyOpts());
    const sock = await connect(portOf(proxy));
    sock.setNoDelay(true);
    const got = RA.nextConnection();
    await writeSlowly(sock, hello, { chunk: 1, intervalMs: 1 });
    const conn = await got;
    assert.deepStrictEqual(await receivedAtLeast(conn, hello.length), hello);
    assert.strictEqual(RD.connections.length, 0, 'not the default route');
    const m = proxy.metrics();
    assert.strictEqual(m.totalConnections, 1);
    assert.strictEqual(m.activeConnections, 1);
    assert.strictEqual(m.handshakeFailures, 0);
    assert.strictEqual(m.noRoute, 0);
    assert.strictEqual(m.nonTlsConnections, 0);
    assert.strictEqual(m.bytesFromClients, hello.length);
  });

  it('routes a ClientHello split across two TLS records (split inside the SNI)', async function () {
    const proxy = await startProxy(proxyOpts());
    const inSni = offsetInHandshake(hello, 'a.test') + 3; // between "a.t" and "est"
    const framed = reframe(hello, [inSni]);
    assert.strictEqual(parseRecords(framed).length, 2);
    const sock = await connect(portOf(proxy));
    sock.write(framed);
    const conn = await RA.nextConnection();
    assert.deepStrictEqual(await receivedAtLeast(conn, framed.length), framed, 'forwarded as sent, not re-framed');
    assert.strictEqual(RD.connections.length, 0);
    const m = proxy.metrics();
    assert.strictEqual(m.handshakeFailures, 0);
    assert.strictEqual(m.noRoute, 0);
  });

  it('routes a ClientHello whose records arrive in separate writes (handshake header split too)', async function () {
    const proxy = await startProxy(proxyOpts());
    // Record 1 carries 2 bytes (half the handshake header), record 2 the next 100, record 3 the rest.
    const framed = reframe(hello, [2, 102]);
    const recs = parseRecords(framed);
    assert.strictEqual(recs.length, 3);
    const sock = await connect(portOf(proxy));
    sock.setNoDelay(true);
    let off = 0;
    for (const r of recs) {
      const n = 5 + r.body.length;
      sock.write(framed.subarray(off, off + n));
      off += n;
      await sleep(20);
    }
    const conn = await RA.nextConnection();
    assert.deepStrictEqual(await receivedAtLeast(conn, framed.length), framed);
    assert.strictEqual(proxy.metrics().handshakeFailures, 0);
  });

  it('routes a ClientHello fragmented into one-byte records', async function () {
    const proxy = await startProxy(proxyOpts());
    const bodyLen = parseRecords(hello)[0].body.length;
    const framed = reframe(hello, Array.from({ length: bodyLen - 1 }, (_, i) => i + 1));
    assert.strictEqual(parseRecords(framed).length, bodyLen);
    const sock = await connect(portOf(proxy));
    sock.write(framed);
    const conn = await RA.nextConnection();
    assert.deepStrictEqual(await receivedAtLeast(conn, framed.length), framed);
    assert.strictEqual(proxy.metrics().handshakeFailures, 0);
  });

  it('completes a real TLS handshake when the hello is split across two records', async function () {
    // Node client → re-framing relay (splits the first record in two) → proxy → HTTPS origin.
    const certs = getCerts();
    const A = await startTlsOrigin('A', certs.leaves['a.test']);
    const proxy = await startProxy({ routes: [route('a.test', A.port)] });
    const inSni = offsetInHandshake(hello, 'a.test') + 2;
    let reframed = 0;
    const relay = await startTcpServer((client) => {
      const up = trackSocket(net.connect(portOf(proxy), '127.0.0.1'));
      let buf = Buffer.alloc(0);
      let first = true;
      up.on('data', (d) => client.write(d));
      up.on('end', () => client.end());
      up.on('close', () => client.destroy());
      client.on('close', () => up.destroy());
      client.on('end', () => up.end());
      client.on('data', (d) => {
        if (!first) { up.write(d); return; }
        buf = Buffer.concat([buf, d]);
        const n = helloRecordsLength(buf);
        if (n < 0) return;
        first = false;
        const h = buf.subarray(0, n);
        const split = Math.min(inSni, parseRecords(h)[0].body.length - 1);
        up.write(reframe(h, [split]));
        reframed++;
        if (buf.length > n) up.write(buf.subarray(n));
      });
    }, { record: false });
    const res = await nodeTlsGet(relay.port, 'a.test', { ca: certs.ca });
    assert.strictEqual(reframed, 1);
    assert.strictEqual(res.authorized, true);
    assert.match(res.body, /^origin=A\nsni=a\.test\n/);
    const m = await waitFor(() => { const x = proxy.metrics(); return x.closedConnections >= 1 && x; });
    assert.strictEqual(m.handshakeFailures, 0);
    assert.strictEqual(m.noRoute, 0);
  });

  it('forwards bytes sent after the ClientHello in the same write, intact', async function () {
    const proxy = await startProxy(proxyOpts());
    for (const extraLen of [13, 256 * 1024]) {
      const extra = crypto.randomBytes(extraLen);
      const sock = await connect(portOf(proxy));
      const got = RA.nextConnection();
      sock.write(Buffer.concat([hello, extra]));
      const conn = await got;
      const all = await receivedAtLeast(conn, hello.length + extra.length);
      assert.strictEqual(all.length, hello.length + extra.length);
      assert.ok(all.subarray(0, hello.length).equals(hello), 'hello intact');
      assert.ok(all.subarray(hello.length).equals(extra), `${extraLen} trailing bytes intact`);
      sock.end();
      await conn.ended; // the client's FIN is passed on after the data
      conn.socket.end();
      await closed(sock);
    }
    const m = await waitFor(() => { const x = proxy.metrics(); return x.activeConnections === 0 && x; });
    assert.strictEqual(m.totalConnections, 2);
    assert.strictEqual(m.bytesFromClients, 2 * hello.length + 13 + 256 * 1024);
    assert.strictEqual(RD.connections.length, 0);
  });

  it('routes a hand-built ClientHello of exactly 16384 bytes (the limit) and forwards it', async function () {
    const proxy = await startProxy(proxyOpts());
    const big = buildClientHello({ sni: 'a.test', handshakeLength: 16384 });
    assert.strictEqual(big.length, 5 + 16384);
    const sock = await connect(portOf(proxy));
    sock.write(big);
    const conn = await RA.nextConnection();
    assert.deepStrictEqual(await receivedAtLeast(conn, big.length), big);
    assert.strictEqual(proxy.metrics().handshakeFailures, 0);
  });

  describe('malformed hellos are closed and counted as protocol failures', function () {
    const sniHello = (sni) => buildClientHello({ sni });
    const cases = [
      ['a zero-length record', () => Buffer.from([0x16, 0x03, 0x01, 0x00, 0x00])],
      ['a record length over 16 KiB + 256', () => Buffer.concat([Buffer.from([0x16, 0x03, 0x01, 0xff, 0xff]), Buffer.alloc(64)])],
      ['garbage after a handshake record header', () => Buffer.concat([Buffer.from([0x16, 0x03, 0x01, 0x00, 0x40]), Buffer.alloc(64, 0xff)])],
      ['a handshake message that is not a ClientHello (ServerHello)', () => {
        const h = buildClientHello({ sni: 'a.test' });
        h[5] = 0x02;
        return h;
      }],
      ['a session id length over 32', () => {
        const h = buildClientHello({ sni: 'a.test' });
        h[5 + 4 + 2 + 32] = 200;
        return h;
      }],
      ['an extensions block longer than the message', () => {
        const h = buildClientHello({ sni: 'a.test' });
        // extensions length sits after version(2) random(32) sid(1) ciphers(2+4) compression(2)
        const at = 5 + 4 + 2 + 32 + 1 + 6 + 2;
        h.writeUInt16BE(h.readUInt16BE(at) + 10, at);
        return h;
      }],
      ['a ClientHello over 16384 bytes', () => buildClientHello({ sni: 'a.test', handshakeLength: 16385 })],
      ['an SNI with an underscore', () => sniHello('a_b.test')],
      ['an SNI that is an IPv4 literal', () => sniHello('127.0.0.1')],
      ['an SNI with a NUL byte', () => sniHello(Buffer.from('a.test\0.evil', 'latin1'))],
      ['an SNI of 254 bytes (over the 253-byte DNS limit)', () => sniHello(longName(254))],
      ['an SNI label of 64 bytes', () => sniHello(`${'l'.repeat(64)}.test`)],
      ['an empty SNI', () => sniHello('')],
      ['an alert record in the middle of a fragmented hello', () => {
        const framed = reframe(hello, [50]);
        framed[5 + 50] = 0x15; // second record's type: alert
        return framed;
      }],
    ];
    for (const [name, bytes] of cases) {
      it(name, async function () {
        const proxy = await startProxy(proxyOpts());
        const sock = await connect(portOf(proxy));
        const got = collect(sock);
        sock.write(bytes());
        const { data } = await got;
        assert.strictEqual(data.length, 0, 'nothing is sent back');
        const m = await waitForMetric(proxy, 'handshakeFailuresProtocol', 1);
        assert.strictEqual(m.handshakeFailuresProtocol, 1);
        assert.strictEqual(m.handshakeFailures, 1);
        assert.strictEqual(m.listeners[0].handshakeFailuresProtocol, 1);
        assert.strictEqual(m.handshakeFailuresTimeout, 0);
        assert.strictEqual(m.nonTlsConnections, 0, 'malformed TLS is not "not TLS"');
        assert.strictEqual(m.noRoute, 0);
        assert.strictEqual(RA.connections.length + RD.connections.length, 0, 'no upstream was dialled');
        await waitFor(() => proxy.metrics().activeConnections === 0);
      });
    }
  });

  it('routes a valid 253-byte SNI (the DNS limit), and its trailing-dot form', async function () {
    const proxy = await startProxy(proxyOpts());
    for (const name of [longName(253), `${longName(253)}.`]) {
      const h = buildClientHello({ sni: name });
      const sock = await connect(portOf(proxy));
      const got = RD.nextConnection();
      sock.write(h);
      const conn = await got;
      assert.deepStrictEqual(await receivedAtLeast(conn, h.length), h);
    }
    const m = proxy.metrics();
    assert.strictEqual(m.handshakeFailures, 0);
    assert.strictEqual(m.noRoute, 0);
  });

  it('closes a connection that sends nothing at tlsHandshakeTimeoutMs (handshakeFailuresTimeout)', async function () {
    const proxy = await startProxy(proxyOpts({ protection: { tlsHandshakeTimeoutMs: 300 } }));
    const t0 = Date.now();
    const sock = await connect(portOf(proxy));
    const { data } = await collect(sock);
    const elapsed = Date.now() - t0;
    assert.strictEqual(data.length, 0);
    assert.ok(elapsed >= 250, `closed after ${elapsed} ms, before the 300 ms deadline`);
    assert.ok(elapsed < 5000, `closed only after ${elapsed} ms`);
    const m = await waitForMetric(proxy, 'handshakeFailuresTimeout', 1);
    assert.strictEqual(m.handshakeFailuresTimeout, 1);
    assert.strictEqual(m.handshakeFailures, 1);
    assert.strictEqual(m.handshakeFailuresProtocol, 0);
    assert.strictEqual(RA.connections.length + RD.connections.length, 0);
  });

  it('closes a connection trickling a partial hello at the absolute deadline, not later', async function () {
    const proxy = await startProxy(proxyOpts({ protection: { tlsHandshakeTimeoutMs: 300 } }));
    const partial = hello.subarray(0, 100); // 100 bytes at 30 ms each would take 3 s
    const t0 = Date.now();
    const sock = await connect(portOf(proxy));
    sock.setNoDelay(true);
    const done = collect(sock);
    const sent = await writeSlowly(sock, partial, { chunk: 1, intervalMs: 30 });
    await done;
    const elapsed = Date.now() - t0;
    assert.ok(elapsed >= 250, `closed after ${elapsed} ms, before the deadline`);
    assert.ok(elapsed < 2000, `closed after ${elapsed} ms: trickled bytes extended the deadline`);
    assert.ok(sent < partial.length, `the whole trickle (${sent} bytes) was accepted`);
    const m = await waitForMetric(proxy, 'handshakeFailuresTimeout', 1);
    assert.strictEqual(m.handshakeFailures, 1);
    assert.strictEqual(RA.connections.length + RD.connections.length, 0);
  });

  it('applies each listener\'s own tlsHandshakeTimeoutMs', async function () {
    const proxy = await startProxy(proxyOpts({
      listeners: [{ protection: { tlsHandshakeTimeoutMs: 300 } }, { protection: { tlsHandshakeTimeoutMs: 60000 } }],
    }));
    const quick = await connect(portOf(proxy, 0));
    const patient = await connect(portOf(proxy, 1));
    let patientClosed = false;
    patient.on('close', () => { patientClosed = true; });
    await closed(quick);
    await sleep(300);
    assert.strictEqual(patientClosed, false, 'the second listener\'s deadline is 60 s');
    const m = proxy.metrics();
    assert.deepStrictEqual(m.listeners.map((l) => l.handshakeFailuresTimeout), [1, 0]);
    // And the patient one still routes when its hello comes.
    const got = RA.nextConnection();
    patient.write(hello);
    assert.deepStrictEqual(await receivedAtLeast(await got, hello.length), hello);
  });

  it('counts a client that closes in the middle of its hello (handshakeFailuresClosed)', async function () {
    const proxy = await startProxy(proxyOpts());
    const sock = await connect(portOf(proxy));
    sock.end(hello.subarray(0, 40));
    await closed(sock);
    const m = await waitForMetric(proxy, 'handshakeFailuresClosed', 1);
    assert.strictEqual(m.handshakeFailures, 1);
    assert.strictEqual(m.handshakeFailuresProtocol + m.handshakeFailuresTimeout, 0);
    assert.strictEqual(RA.connections.length + RD.connections.length, 0);
    await waitFor(() => proxy.metrics().activeConnections === 0);
  });

  it('keeps reassembling while other connections route (hellos interleaved on one worker)', async function () {
    const proxy = await startProxy(proxyOpts({ workerThreads: 1 }));
    const socks = await Promise.all([0, 1, 2, 3].map(() => connect(portOf(proxy))));
    for (const s of socks) s.setNoDelay(true);
    // Round-robin one record-sized slice of each hello at a time.
    const framed = reframe(hello, [10, 60, 200]);
    for (let off = 0; off < framed.length; off += 7) {
      for (const s of socks) s.write(framed.subarray(off, off + 7));
      await sleep(1);
    }
    await waitFor(() => RA.connections.length === 4);
    for (const c of RA.connections) assert.deepStrictEqual(await receivedAtLeast(c, framed.length), framed);
    const m = proxy.metrics();
    assert.strictEqual(m.totalConnections, 4);
    assert.strictEqual(m.handshakeFailures, 0);
  });
});
