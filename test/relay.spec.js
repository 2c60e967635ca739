'use strict';
// Relaying through the worker scheduler: bulk byte-exactness under concurrency (both scheduler
// kinds), half-close both ways, the idle timeout (idle, not total duration), backpressure with
// bounded proxy memory, Unix-socket upstreams, many concurrent connections, and a refused
// upstream (upstreamConnectFailures).

const assert = require('assert');
const crypto = require('crypto');
const net = require('net');
const { startTcpServer, startEchoServer, startRecorder, tempSocketPath, startBlackhole } = require('./helpers/servers');
const { startProxy, route, uds, portOf, connect, collect, closed, cleanup } = require('./helpers/proxy');
const { startChildProxy } = require('./helpers/child');
const { captureClientHello } = require('./helpers/hello');
const { waitFor, waitForMetric, sleep } = require('./helpers/wait');

const MiB = 1024 * 1024;

const sha256 = (buf) => crypto.createHash('sha256').update(buf).digest('hex');

/** Write `buf` in `chunk`-sized pieces honouring backpressure; resolves when all is handed over. */
async function writeAll(socket, buf, chunk = MiB) {
  for (let off = 0; off < buf.length; off += chunk) {
    if (!socket.write(buf.subarray(off, off + chunk))) {
      await new Promise((resolve, reject) => {
        const onDrain = () => { socket.off('close', onClose); resolve(); };
        const onClose = () => { socket.off('drain', onDrain); reject(new Error('closed while writing')); };
        socket.once('drain', onDrain);
        socket.once('close', onClose);
      });
    }
  }
}

/** Resolve with { hash, length } of everything `socket` sends, once it ends. */
function hashUntilEnd(socket, skip = 0) {
  return new Promise((resolve, reject) => {
    const h = crypto.createHash('sha256');
    let length = 0;
    let toSkip = skip;
    socket.on('data', (d) => {
      if (toSkip > 0) {
        const n = Math.min(toSkip, d.length);
        toSkip -= n;
        d = d.subarray(n);
      }
      length += d.length;
      h.update(d);
    });
    socket.once('end', () => resolve({ hash: h.digest('hex'), length }));
    socket.once('error', reject);
  });
}

/** A line-framed small echo exchange: send `msg`, expect exactly it back. */
function echoOnce(socket, msg) {
  return new Promise((resolve, reject) => {
    let got = Buffer.alloc(0);
    const onData = (d) => {
      got = Buffer.concat([got, d]);
      if (got.length >= msg.length) {
        socket.off('data', onData);
        socket.off('close', onClose);
        if (got.equals(msg)) resolve();
        else reject(new Error(`echo mismatch: sent ${msg.length} bytes, got ${got.length} different bytes`));
      }
    };
    const onClose = () => { socket.off('data', onData); reject(new Error(`closed after ${got.length} of ${msg.length} echoed bytes`)); };
    socket.on('data', onData);
    socket.once('close', onClose);
    socket.write(msg);
  });
}

describe('relay', function () {
  this.timeout(60000);
  let hello;

  before(async function () {
    hello = await captureClientHello('bulk.test');
  });

  afterEach(cleanup);

  for (const kind of ['drr', 'fifo']) {
    it(`moves 20 MiB each way byte-exact while 50 other connections exchange data (scheduler ${kind})`, async function () {
      const SIZE = 20 * MiB;
      const fromClient = crypto.randomBytes(SIZE);
      const fromUpstream = crypto.randomBytes(SIZE);
      let upstreamResult = null;
      const bulk = await startTcpServer((socket) => {
        upstreamResult = hashUntilEnd(socket, hello.length);
        writeAll(socket, fromUpstream).then(() => socket.end(), () => {});
      }, { record: false });
      const echo = await startEchoServer();
      const proxy = await startProxy({
        scheduler: { kind },
        routes: [route('bulk.test', bulk.port), route('', echo.port)],
      });
      const port = portOf(proxy);

      // allowHalfOpen: the upstream may finish (and send its FIN) before the client has.
      const big = await connect(port, { allowHalfOpen: true });
      const bigResult = hashUntilEnd(big);
      big.write(hello);
      const sending = writeAll(big, fromClient).then(() => big.end());
      let bigDone = false;
      const bigFinished = Promise.all([sending, bigResult]).finally(() => { bigDone = true; });

      // 50 small connections ping-pong 1 KiB messages until the big transfer is over.
      let smallBytes = 0;
      const small = Array.from({ length: 50 }, async (_, i) => {
        const s = await connect(port);
        let rounds = 0;
        while (!bigDone || rounds < 3) {
          const msg = Buffer.concat([Buffer.from(`P${i}:${rounds}:`), crypto.randomBytes(1000)]);
          await echoOnce(s, msg);
          smallBytes += msg.length;
          rounds++;
        }
        s.end();
        await closed(s);
        return rounds;
      });
      const rounds = await Promise.all(small);
      await bigFinished;

      const [mine, theirs] = await Promise.all([bigResult, upstreamResult]);
      assert.strictEqual(mine.length, SIZE);
      assert.strictEqual(mine.hash, sha256(fromUpstream), 'upstream → client bytes differ');
      assert.strictEqual(theirs.length, SIZE);
      assert.strictEqual(theirs.hash, sha256(fromClient), 'client → upstream bytes differ');
      assert.ok(rounds.every((r) => r >= 3));

      const m = await waitFor(() => {
        const x = proxy.metrics();
        return x.activeConnections === 0 && x.closedConnections === 51 && x;
      }, 10000, { describe: () => proxy.metrics() });
      assert.strictEqual(m.totalConnections, 51);
      assert.strictEqual(m.bytesFromClients, hello.length + SIZE + smallBytes);
      assert.strictEqual(m.bytesToClients, SIZE + smallBytes);
      assert.strictEqual(m.nonTlsConnections, 50);
      assert.strictEqual(m.outOfMemory, 0);
    });
  }

  it('propagates a client half-close: the upstream replies after the client\'s FIN', async function () {
    const upstreamSaw = [];
    const up = await startTcpServer((socket, conn) => {
      socket.on('end', async () => {
        upstreamSaw.push(conn.data().toString());
        await sleep(200);
        socket.end('reply after your FIN');
      });
    });
    const proxy = await startProxy({ routes: [route('', up.port)] });
    const sock = await connect(portOf(proxy));
    const got = collect(sock);
    sock.end('request then FIN');
    const { data, ended, error } = await got;
    assert.strictEqual(error, null);
    assert.strictEqual(ended, true, 'the upstream\'s FIN reached the client');
    assert.strictEqual(data.toString(), 'reply after your FIN');
    assert.deepStrictEqual(upstreamSaw, ['request then FIN']);
    await up.connections[0].closed;
    const m = await waitFor(() => { const x = proxy.metrics(); return x.activeConnections === 0 && x; });
    assert.strictEqual(m.closedConnections, 1);
    assert.strictEqual(m.bytesToClients, 'reply after your FIN'.length);
    assert.strictEqual(m.idleTimeouts, 0);
  });

  it('propagates an upstream half-close: the client still sends after the upstream\'s FIN', async function () {
    const up = await startTcpServer((socket) => {
      socket.once('data', () => socket.end('bye'));
    });
    const proxy = await startProxy({ routes: [route('', up.port)] });
    const sock = await connect(portOf(proxy), { allowHalfOpen: true });
    const received = [];
    sock.on('data', (d) => received.push(d));
    sock.write('hello');
    await new Promise((resolve) => sock.once('end', resolve));
    assert.strictEqual(Buffer.concat(received).toString(), 'bye');
    const conn = up.connections[0];
    await sleep(200);
    sock.write(' and more after your FIN');
    sock.end();
    await conn.ended;
    assert.strictEqual(conn.data().toString(), 'hello and more after your FIN');
    await closed(sock);
    await conn.closed;
    const m = await waitFor(() => { const x = proxy.metrics(); return x.activeConnections === 0 && x; });
    assert.strictEqual(m.closedConnections, 1);
    assert.strictEqual(m.bytesFromClients, 'hello and more after your FIN'.length);
  });

  describe('idle timeout', function () {
    it('closes a relaying connection idle for idleTimeoutMs and counts it', async function () {
      const echo = await startEchoServer({ record: true });
      const proxy = await startProxy({ listener: { idleTimeoutMs: 300 }, routes: [route('', echo.port)] });
      const sock = await connect(portOf(proxy));
      const done = collect(sock);
      await echoOnce(sock, Buffer.from('ping'));
      const t0 = Date.now();
      const upConn = echo.connections[0];
      await done;
      const idle = Date.now() - t0;
      assert.ok(idle >= 250, `closed after ${idle} ms idle, before idleTimeoutMs`);
      assert.ok(idle < 5000, `closed only after ${idle} ms idle`);
      await upConn.closed; // the upstream side is closed too
      const m = await waitForMetric(proxy, 'idleTimeouts', 1);
      assert.strictEqual(m.idleTimeouts, 1);
      assert.strictEqual(m.listeners[0].idleTimeouts, 1);
      await waitFor(() => proxy.metrics().activeConnections === 0);
    });

    it('applies each listener\'s own idleTimeoutMs (0 = none)', async function () {
      const echo = await startEchoServer();
      const proxy = await startProxy({
        listeners: [{ idleTimeoutMs: 300 }, { idleTimeoutMs: 0 }, { idleTimeoutMs: 60000 }],
        routes: [route('', echo.port)],
      });
      const socks = [];
      for (let i = 0; i < 3; i++) {
        const s = await connect(portOf(proxy, i));
        await echoOnce(s, Buffer.from(`listener ${i}`));
        socks.push(s);
      }
      const closedFlags = socks.map(() => false);
      socks.forEach((s, i) => s.on('close', () => { closedFlags[i] = true; }));
      await closed(socks[0]);
      await sleep(700);
      assert.deepStrictEqual(closedFlags, [true, false, false]);
      const m = proxy.metrics();
      assert.deepStrictEqual(m.listeners.map((l) => l.idleTimeouts), [1, 0, 0]);
      assert.deepStrictEqual(m.listeners.map((l) => l.activeConnections), [0, 1, 1]);
    });

    for (const [who, desc] of [['client', 'the client'], ['upstream', 'the upstream'], ['both', 'echoed']]) {
      it(`does not close a connection while ${desc} sends a byte every 100 ms (idle is not total duration)`, async function () {
        let upSocket = null;
        const up = await startTcpServer((socket) => {
          upSocket = socket;
          if (who === 'both') socket.on('data', (d) => socket.write(d));
        });
        const proxy = await startProxy({ listener: { idleTimeoutMs: 300 }, routes: [route('', up.port)] });
        const sock = await connect(portOf(proxy));
        let closedAt = 0;
        sock.on('close', () => { closedAt = Date.now(); });
        let fromUp = 0;
        sock.on('data', (d) => { fromUp += d.length; });
        sock.write('x'); // first byte: routes (non-TLS → default) and dials
        await waitFor(() => upSocket !== null);
        const t0 = Date.now();
        let sent = 0;
        while (Date.now() - t0 < 1000) {
          await sleep(100);
          assert.strictEqual(closedAt, 0, `closed after ${Date.now() - t0} ms of activity`);
          if (who === 'upstream') upSocket.write('u');
          else sock.write('c');
          sent++;
        }
        await sleep(50);
        assert.strictEqual(closedAt, 0, 'closed while active');
        assert.ok(sent >= 8);
        let m = proxy.metrics();
        assert.strictEqual(m.idleTimeouts, 0);
        assert.strictEqual(m.activeConnections, 1);
        if (who === 'upstream') assert.strictEqual(fromUp, sent);
        if (who === 'both') assert.strictEqual(fromUp, sent + 1); // + the first byte
        // Now fall silent: the idle timeout applies.
        await closed(sock);
        m = await waitForMetric(proxy, 'idleTimeouts', 1);
        assert.strictEqual(m.idleTimeouts, 1);
      });
    }
  });

  it('stops reading a fast upstream while the client does not read, with bounded proxy memory', async function () {
    this.timeout(90000);
    const TOTAL = 64 * MiB;
    const block = crypto.randomBytes(MiB);
    const payload = (i) => { const b = Buffer.from(block); b.writeUInt32BE(i, 0); return b; }; // 64 distinct MiB
    const expected = crypto.createHash('sha256');
    for (let i = 0; i < 64; i++) expected.update(payload(i));
    const expectedHash = expected.digest('hex');

    // The upstream writes 64 KiB at a time and waits for 'drain' whenever write() returns false,
    // so its own memory stays small and a missing 'drain' shows the proxy stopped reading.
    let state = { handed: 0, waitingDrainSince: 0, done: false };
    let upSocket = null;
    const up = await startTcpServer((socket) => {
      upSocket = socket;
      (async () => {
        for (let i = 0; i < 64; i++) {
          const b = payload(i);
          for (let off = 0; off < MiB; off += 64 * 1024) {
            const ok = socket.write(b.subarray(off, off + 64 * 1024));
            state.handed += 64 * 1024;
            if (!ok) {
              state.waitingDrainSince = Date.now();
              await new Promise((resolve) => socket.once('drain', resolve));
              state.waitingDrainSince = 0;
            }
          }
        }
        state.done = true;
        socket.end();
      })().catch(() => {});
    });
    const child = await startChildProxy({ routes: [route('', up.port)] });
    const rss0 = await child.call('rss');

    const sock = await connect(child.port);
    sock.pause(); // do not read
    sock.write('start');
    // Wait until the upstream has been blocked on 'drain' for a full second.
    await waitFor(() => state.done || (state.waitingDrainSince && Date.now() - state.waitingDrainSince > 1000), 30000);
    assert.strictEqual(state.done, false, 'the upstream wrote all 64 MiB although the client read nothing');
    assert.ok(upSocket.writableLength > 0, 'data is queued in the upstream\'s own socket');
    const stalledAt = state.handed - upSocket.writableLength;
    const m1 = await child.call('metrics');
    await sleep(300);
    const m2 = await child.call('metrics');
    const rss1 = await child.call('rss');
    assert.strictEqual(m2.bytesToClients, m1.bytesToClients, 'nothing moves while the client does not read');
    assert.ok(stalledAt < TOTAL, `upstream handed over ${stalledAt} bytes`);
    const growth = rss1 - rss0;
    if (process.env.LEGATO_TEST_VERBOSE) console.log(`      stalled at ${(stalledAt / MiB).toFixed(1)} MiB, proxy RSS +${(growth / MiB).toFixed(1)} MiB`);
    assert.ok(growth < 32 * MiB, `proxy RSS grew by ${(growth / MiB).toFixed(1)} MiB with ${(stalledAt / MiB).toFixed(1)} MiB in flight`);

    // Now read everything: byte-exact.
    const result = hashUntilEnd(sock);
    sock.resume();
    const { hash, length } = await result;
    assert.strictEqual(length, TOTAL);
    assert.strictEqual(hash, expectedHash);
    const m = await waitFor(async () => { const x = await child.call('metrics'); return x.activeConnections === 0 && x; }, 10000);
    assert.strictEqual(m.bytesToClients, TOTAL);
    assert.strictEqual(m.outOfMemory, 0);
    await child.call('stop');
    const { code } = await child.exited;
    assert.strictEqual(code, 0);
  });

  it('relays to a Unix-socket upstream (echo over UDS, byte-exact)', async function () {
    const sockPath = tempSocketPath('echo.sock');
    const echo = await startEchoServer({ path: sockPath });
    const proxy = await startProxy({ routes: [route('bulk.test', uds(sockPath))] });
    const data = crypto.randomBytes(MiB);
    const sock = await connect(portOf(proxy), { allowHalfOpen: true });
    const result = hashUntilEnd(sock);
    sock.write(hello);
    await writeAll(sock, data, 64 * 1024);
    sock.end();
    const { hash, length } = await result;
    assert.strictEqual(length, hello.length + data.length);
    assert.strictEqual(hash, sha256(Buffer.concat([hello, data])));
    assert.strictEqual(echo.connections.length, 1);
    const m = await waitFor(() => { const x = proxy.metrics(); return x.activeConnections === 0 && x; });
    assert.strictEqual(m.totalConnections, 1);
    assert.strictEqual(m.bytesFromClients, hello.length + data.length);
    assert.strictEqual(m.bytesToClients, hello.length + data.length);
    assert.strictEqual(m.upstreamConnectFailures, 0);
  });

  it('serves 500 concurrent connections, each doing a small echo', async function () {
    const N = 500;
    const echo = await startEchoServer();
    const proxy = await startProxy({ routes: [route('bulk.test', echo.port)] });
    const port = portOf(proxy);
    const socks = await Promise.all(Array.from({ length: N }, () => connect(port)));
    // All open at once, then all exchange: hello + a tagged message, echoed back exactly.
    const results = await Promise.allSettled(socks.map(async (s, i) => {
      const msg = Buffer.concat([hello, Buffer.from(`connection ${i} `), crypto.randomBytes(512)]);
      await echoOnce(s, msg);
      return msg.length;
    }));
    const failed = results.filter((r) => r.status === 'rejected');
    assert.strictEqual(failed.length, 0, `${failed.length} failed, first: ${failed[0] && failed[0].reason}`);
    const m1 = proxy.metrics();
    assert.strictEqual(m1.activeConnections, N);
    assert.strictEqual(m1.totalConnections, N);
    for (const s of socks) s.end();
    const total = results.reduce((a, r) => a + r.value, 0);
    const m = await waitFor(() => { const x = proxy.metrics(); return x.activeConnections === 0 && x; }, 15000,
      { describe: () => proxy.metrics() });
    assert.strictEqual(m.closedConnections, N);
    assert.strictEqual(m.bytesFromClients, total);
    assert.strictEqual(m.bytesToClients, total);
    assert.strictEqual(m.upstreamConnectFailures + m.outOfMemory + m.handshakeFailures, 0);
  });

  it('closes the client when the upstream refuses the connection (upstreamConnectFailures)', async function () {
    // A port that was just free, below the ephemeral range (no self-connect): nothing listens.
    const deadPort = await require('./helpers/connect').closedPort();
    const proxy = await startProxy({ routes: [route('bulk.test', deadPort)] });
    const sock = await connect(portOf(proxy));
    const got = collect(sock);
    sock.write(hello);
    const { data } = await got;
    assert.strictEqual(data.length, 0);
    const m = await waitForMetric(proxy, 'upstreamConnectFailures', 1);
    assert.strictEqual(m.upstreamConnectFailures, 1);
    assert.strictEqual(m.listeners[0].upstreamConnectFailures, 1);
    assert.strictEqual(m.noRoute + m.handshakeFailures, 0);
    await waitFor(() => proxy.metrics().activeConnections === 0);
  });

  it('gives up on an upstream that never completes the connection after 10 s (upstreamConnectFailures)', async function () {
    const hole = await startBlackhole();
    const proxy = await startProxy({ routes: [route('bulk.test', hole.port)] });
    const sock = await connect(portOf(proxy));
    const got = collect(sock);
    sock.write(hello);
    await waitFor(() => proxy.metrics().activeConnections === 1);
    const t0 = Date.now();
    const { data } = await got;
    const waited = Date.now() - t0;
    assert.strictEqual(data.length, 0);
    assert.ok(waited >= 8000, `gave up after ${waited} ms, before the 10 s connect timeout`);
    const m = await waitForMetric(proxy, 'upstreamConnectFailures', 1);
    assert.strictEqual(m.upstreamConnectFailures, 1);
    assert.strictEqual(m.idleTimeouts + m.handshakeFailures, 0);
    await waitFor(() => proxy.metrics().activeConnections === 0);
  });

  it('closes the client when a Unix-socket upstream does not exist (upstreamConnectFailures)', async function () {
    const proxy = await startProxy({ routes: [route('bulk.test', uds(tempSocketPath('missing.sock')))] });
    const sock = await connect(portOf(proxy));
    const got = collect(sock);
    sock.write(hello);
    const { data } = await got;
    assert.strictEqual(data.length, 0);
    const m = await waitForMetric(proxy, 'upstreamConnectFailures', 1);
    assert.strictEqual(m.upstreamConnectFailures, 1);
    await waitFor(() => proxy.metrics().activeConnections === 0);
  });

  it('keeps relaying a slow-reading client without losing bytes (DRR, small watermark)', async function () {
    const data = crypto.randomBytes(4 * MiB);
    const up = await startTcpServer((socket) => { writeAll(socket, data, 256 * 1024).then(() => socket.end(), () => {}); }, { record: false });
    const proxy = await startProxy({
      scheduler: { kind: 'drr', maxQueuedBytesPerFlow: 16384, quantum: 1500 },
      routes: [route('', up.port)],
    });
    const sock = await connect(portOf(proxy));
    sock.write('go');
    // Read in fits and starts: pause/resume every few chunks.
    const chunks = [];
    let n = 0;
    sock.on('data', (d) => {
      chunks.push(d);
      if (++n % 8 === 0) { sock.pause(); setTimeout(() => sock.resume(), 5); }
    });
    await new Promise((resolve) => sock.once('end', resolve));
    assert.ok(Buffer.concat(chunks).equals(data));
    const m = await waitFor(() => { const x = proxy.metrics(); return x.activeConnections === 0 && x; });
    assert.strictEqual(m.bytesToClients, data.length);
  });

  it('delivers bytes and the FIN a client sends before the upstream connection is up', async function () {
    const rec = await startRecorder();
    const proxy = await startProxy({ routes: [route('bulk.test', rec.port)] });
    const tail = crypto.randomBytes(300 * 1024);
    const sock = await connect(portOf(proxy), { allowHalfOpen: true });
    sock.end(Buffer.concat([hello, tail])); // hello, data and FIN in one go
    const conn = await rec.nextConnection();
    await conn.ended;
    assert.ok(conn.data().equals(Buffer.concat([hello, tail])), 'every byte before the FIN arrived');
    conn.socket.end('late reply');
    const { data, ended } = await collect(sock);
    assert.strictEqual(data.toString(), 'late reply');
    assert.strictEqual(ended, true);
    const m = await waitFor(() => { const x = proxy.metrics(); return x.activeConnections === 0 && x; });
    assert.strictEqual(m.bytesFromClients, hello.length + tail.length);
    assert.strictEqual(m.bytesToClients, 'late reply'.length);
  });

  it('closes the upstream when the client resets, and the client when the upstream resets', async function () {
    const up = await startTcpServer((socket) => socket.on('data', (d) => socket.write(d)));
    const proxy = await startProxy({ routes: [route('', up.port)] });
    // Client resets.
    const a = await connect(portOf(proxy));
    await echoOnce(a, Buffer.from('a'));
    const upA = up.connections[0];
    a.resetAndDestroy();
    await upA.ended; // the proxy closed its upstream socket
    await waitFor(() => proxy.metrics().activeConnections === 0);
    // Upstream resets.
    const b = await connect(portOf(proxy));
    const bDone = collect(b);
    await echoOnce(b, Buffer.from('b'));
    up.connections[1].socket.resetAndDestroy();
    const r = await bDone; // closed (a reset is passed on as a close: TLS notices truncation itself)
    assert.strictEqual(r.data.toString(), 'b');
    const m = await waitFor(() => { const x = proxy.metrics(); return x.activeConnections === 0 && x; });
    assert.strictEqual(m.closedConnections, 2);
    assert.strictEqual(m.idleTimeouts, 0);
  });

  it('honours a small readBufferSize and a fixed quantum, byte-exact', async function () {
    const echo = await startEchoServer();
    const proxy = await startProxy({
      readBufferSize: 1024,
      scheduler: { kind: 'drr', quantum: 1500, maxQueuedBytesPerFlow: 16384 },
      routes: [route('', echo.port)],
    });
    const data = crypto.randomBytes(2 * MiB);
    data[0] = 0x47; // 'G': not TLS, default route
    const sock = await connect(portOf(proxy), { allowHalfOpen: true });
    const result = hashUntilEnd(sock);
    await writeAll(sock, data, 256 * 1024);
    sock.end();
    const { hash, length } = await result;
    assert.strictEqual(length, data.length);
    assert.strictEqual(hash, sha256(data));
    const m = await waitFor(() => { const x = proxy.metrics(); return x.activeConnections === 0 && x; });
    assert.strictEqual(m.bytesToClients, data.length);
    assert.strictEqual(m.outOfMemory, 0);
  });

  it('relays to an IPv6 loopback upstream and listens on ::1', async function () {
    const ok = await new Promise((resolve) => {
      const t = net.createServer().once('error', () => resolve(false));
      t.listen(0, '::1', () => t.close(() => resolve(true)));
    });
    if (!ok) this.skip();
    const echo = await startEchoServer({ host: '::1' });
    const proxy = await startProxy({ listener: { host: '::1' }, routes: [route('', { kind: 'tcp', host: '::1', port: echo.port })] });
    const sock = await connect(portOf(proxy), { host: '::1' });
    await echoOnce(sock, Buffer.from('over IPv6'));
    assert.strictEqual(echo.connections[0].socket.remoteAddress, '::1');
    assert.strictEqual(proxy.metrics().activeConnections, 1);
  });
});
