'use strict';
// Zero-copy bulk relay (src/lg_relay.c, "zero-copy relay (splice)"): bulk flows between TCP
// sockets move through the worker's pipe (workers[].splicedBytes), byte-exact both ways with
// either scheduler kind; what a slow receiver does not take waits in a pipe lent to the flow (or,
// past LG_LENT_PIPES_MAX, in the flow's queue) without losing a byte; small reads, Unix-socket upstreams and paced flows keep read/write; end
// of stream and resets found by a splice are passed on as usual.

const assert = require('assert');
const crypto = require('crypto');
const { startTcpServer, startEchoServer, tempSocketPath } = require('./helpers/servers');
const { startProxy, route, uds, portOf, connect, collect, cleanup } = require('./helpers/proxy');
const { waitFor } = require('./helpers/wait');

const MiB = 1024 * 1024;
const sha256 = (buf) => crypto.createHash('sha256').update(buf).digest('hex');
const spliced = (proxy) => proxy.metrics().workers.reduce((a, w) => a + w.splicedBytes, 0);
// Whether this kernel lets the process enlarge a pipe to 256 KiB (fs.pipe-max-size, 1 MiB by
// default; a user over fs.pipe-user-pages-soft without CAP_SYS_RESOURCE would be refused too).
const LARGE_PIPES = Number(require('fs').readFileSync('/proc/sys/fs/pipe-max-size', 'utf8')) >= 256 * 1024;

/** Write `buf` in 1 MiB pieces honouring backpressure. */
async function writeAll(socket, buf) {
  for (let off = 0; off < buf.length; off += MiB) {
    if (!socket.write(buf.subarray(off, off + MiB))) await new Promise((resolve) => socket.once('drain', resolve));
  }
}

/** { hash, length } of everything `socket` sends until its FIN. */
function hashUntilEnd(socket) {
  return new Promise((resolve, reject) => {
    const h = crypto.createHash('sha256');
    let length = 0;
    socket.on('data', (d) => { length += d.length; h.update(d); });
    socket.once('end', () => resolve({ hash: h.digest('hex'), length }));
    socket.once('error', reject);
  });
}

/**
 * An upstream that hashes what it receives after the first byte and answers with `down` once
 * the client's first byte came; it ends its side after sending.
 */
async function startBulkUpstream(down, opts = {}) {
  const results = [];
  const srv = await startTcpServer((socket) => {
    const h = crypto.createHash('sha256');
    let length = -1;
    results.push(new Promise((resolve) => {
      socket.on('data', (d) => {
        if (length < 0) {
          length = 0;
          d = d.subarray(1);
          writeAll(socket, down).then(() => socket.end(), () => {});
        }
        length += d.length;
        h.update(d);
      });
      socket.once('end', () => resolve({ hash: h.digest('hex'), length }));
    }));
  }, { ...opts, record: false });
  srv.results = results;
  return srv;
}

describe('zero-copy bulk relay (splice)', function () {
  this.timeout(60000);
  afterEach(cleanup);

  for (const kind of ['drr', 'fifo']) {
    it(`splices bulk bytes both ways, byte-exact (scheduler ${kind}); small echoes are not spliced`, async function () {
      const up = crypto.randomBytes(24 * MiB);
      const down = crypto.randomBytes(24 * MiB);
      const bulk = await startBulkUpstream(down);
      const echo = await startEchoServer();
      const proxy = await startProxy({ workerThreads: 1, scheduler: { kind }, routes: [route('', bulk.port)] });
      const echoProxy = await startProxy({ workerThreads: 1, scheduler: { kind }, routes: [route('', echo.port)] });

      // Small exchanges stay on read/write.
      const small = await connect(portOf(echoProxy));
      for (let i = 0; i < 20; i++) {
        const msg = crypto.randomBytes(1000);
        const back = new Promise((resolve) => { let got = Buffer.alloc(0); small.on('data', function on(d) { got = Buffer.concat([got, d]); if (got.length >= msg.length) { small.off('data', on); resolve(got); } }); });
        small.write(msg);
        assert.ok((await back).equals(msg));
      }
      assert.strictEqual(spliced(echoProxy), 0, 'small reads were spliced');
      small.destroy();

      const c = await connect(portOf(proxy), { allowHalfOpen: true });
      const mine = hashUntilEnd(c);
      c.write(Buffer.from('g'));
      await writeAll(c, up);
      c.end();
      const got = await mine;
      const theirs = await bulk.results[0];
      assert.strictEqual(got.length, down.length);
      assert.strictEqual(got.hash, sha256(down), 'upstream → client bytes differ');
      assert.strictEqual(theirs.length, up.length);
      assert.strictEqual(theirs.hash, sha256(up), 'client → upstream bytes differ');
      const n = spliced(proxy);
      assert.ok(n > (up.length + down.length) / 4, `only ${n} of ${up.length + down.length} bytes were spliced`);
      const m = await waitFor(() => { const x = proxy.metrics(); return x.activeConnections === 0 && x; });
      assert.strictEqual(m.bytesToClients, down.length);
      assert.strictEqual(m.bytesFromClients, up.length + 1);
    });
  }

  it('a slow reader: what the client socket does not take waits in a lent pipe, no byte lost, bounded buffers', async function () {
    const down = crypto.randomBytes(8 * MiB);
    const bulk = await startBulkUpstream(down);
    const proxy = await startProxy({ workerThreads: 1, scheduler: { kind: 'drr', maxQueuedBytesPerFlow: 65536 }, routes: [route('', bulk.port)] });
    const c = await connect(portOf(proxy));
    const chunks = [];
    let n = 0;
    let peakLent = 0;
    let peakBuffers = 0;
    c.on('data', (d) => {
      chunks.push(d);
      if (++n % 4 === 0) { c.pause(); setTimeout(() => c.resume(), 10); }
      const w = proxy.metrics().workers[0];
      peakLent = Math.max(peakLent, w.lentPipes);
      peakBuffers = Math.max(peakBuffers, w.readBuffersInUse);
    });
    c.write('g');
    await new Promise((resolve) => c.once('end', resolve));
    const got = Buffer.concat(chunks);
    assert.strictEqual(got.length, down.length);
    assert.ok(got.equals(down), 'bytes differ');
    assert.ok(spliced(proxy) > 0, 'nothing was spliced');
    // Bytes did wait in the proxy (the client socket was full): in a lent pipe, not in read
    // buffers (at most the watermark, 64 KiB, plus one read, if a read-back happened at all).
    assert.strictEqual(peakLent, 1, 'no byte ever waited in a lent pipe: the client was not slow');
    assert.ok(peakBuffers <= 4, `${peakBuffers} read buffers held at once`);
    const w = await waitFor(() => { const x = proxy.metrics().workers[0]; return x.lentPipes === 0 && x; });
    assert.ok(w.splicePipes >= 1 && w.splicePipes <= 9, `${w.splicePipes} pipes kept (own + 8 spares at most)`);
    // The worker's pipes were enlarged to 256 KiB (at most 4 of them).
    if (LARGE_PIPES) assert.ok(w.largePipes >= 1 && w.largePipes <= Math.min(4, w.splicePipes), `largePipes ${w.largePipes} of ${w.splicePipes}`);
  });

  it('more stalled readers than lent pipes: 64 wait in pipes, the rest in their queues, every byte exact', async function () {
    this.timeout(120000);
    const N = 72; // LG_LENT_PIPES_MAX (64) + 8
    // 6 MiB each: more than the proxy's send buffer (autotuned up to tcp_wmem's 4 MiB) and the
    // client's receive buffer (not grown while the client reads nothing) take.
    const down = Buffer.concat(Array(6).fill(crypto.randomBytes(MiB)));
    const bulk = await startBulkUpstream(down);
    const proxy = await startProxy({ workerThreads: 1, scheduler: { kind: 'drr', maxQueuedBytesPerFlow: 65536 }, routes: [route('', bulk.port)] });
    const clients = [];
    for (let i = 0; i < N; i++) {
      const c = await connect(portOf(proxy));
      c.pause(); // read nothing: the client's receive buffer and the proxy's send buffer fill
      c.write('g');
      clients.push(c);
    }
    // Every flow stalls: 64 with a lent pipe, the others with bytes read back into their queues.
    const w = await waitFor(() => {
      const x = proxy.metrics().workers[0];
      return x.lentPipes === 64 && x.readBuffersInUse >= N - 64 && x;
    }, 30000);
    assert.ok(w.splicePipes <= 64 + 8 + 1, `${w.splicePipes} pipes held`);
    // 65 pipes held, at most 4 of them enlarged (the kernel charges a pipe's whole capacity).
    if (LARGE_PIPES) assert.strictEqual(w.largePipes, 4, `largePipes ${w.largePipes} of ${w.splicePipes}`);
    // The four large pipes are lent, so the worker splices through a 64 KiB one meanwhile.
    if (LARGE_PIPES) assert.strictEqual(w.splicePipeLarge, 0, 'the worker\'s own pipe is large while 4 large pipes are lent');
    const results = clients.map((c) => hashUntilEnd(c));
    for (const c of clients) c.resume();
    const got = await Promise.all(results);
    for (let i = 0; i < N; i++) {
      assert.strictEqual(got[i].length, down.length, `client ${i}`);
      assert.strictEqual(got[i].hash, sha256(down), `client ${i}'s bytes differ`);
    }
    const end = await waitFor(() => { const x = proxy.metrics().workers[0]; return x.lentPipes === 0 && x; });
    assert.ok(end.splicePipes <= 9, `${end.splicePipes} pipes kept after the downloads (own + 8 spares at most)`);
    // A large pipe given back took the place of that 64 KiB one (a worker left on a 64 KiB pipe
    // never lets the kernel grow a source's receive buffer past its initial size).
    if (LARGE_PIPES) assert.strictEqual(end.splicePipeLarge, 1, `the worker still splices through a 64 KiB pipe (largePipes ${end.largePipes})`);
  });

  it('large pipes given back replace the 64 KiB pipe the worker took while they were lent', async function () {
    if (!LARGE_PIPES) this.skip();
    this.timeout(60000);
    // Five stalled flows take the four large pipes and a 64 KiB one; a sixth flow, read at once,
    // then splices through another 64 KiB pipe. Once the five drain and give their pipes back, the
    // worker's next splices go through a large one again: a worker left on a 64 KiB pipe never
    // lets the kernel grow a busy source's receive buffer past its initial size (lg_relay.c,
    // pipe_enlarge).
    const down = Buffer.concat(Array(6).fill(crypto.randomBytes(MiB)));
    const bulk = await startBulkUpstream(down);
    const proxy = await startProxy({ workerThreads: 1, scheduler: { kind: 'drr', maxQueuedBytesPerFlow: 65536 }, routes: [route('', bulk.port)] });
    const stalled = [];
    for (let i = 0; i < 5; i++) {
      const c = await connect(portOf(proxy));
      c.pause();
      c.write('g');
      stalled.push(c);
      await waitFor(() => proxy.metrics().workers[0].lentPipes === i + 1, 20000);
    }
    let w = proxy.metrics().workers[0];
    assert.strictEqual(w.largePipes, 4, `largePipes ${w.largePipes} of ${w.splicePipes}`);
    const fast = await connect(portOf(proxy));
    const fastDone = hashUntilEnd(fast);
    fast.write('g');
    assert.strictEqual((await fastDone).hash, sha256(down));
    w = proxy.metrics().workers[0];
    assert.strictEqual(w.lentPipes, 5);
    assert.strictEqual(w.splicePipeLarge, 0, 'the worker had a large pipe while all four were lent');
    const results = stalled.map((c) => hashUntilEnd(c));
    for (const c of stalled) c.resume();
    for (const r of await Promise.all(results)) assert.strictEqual(r.hash, sha256(down));
    w = await waitFor(() => { const x = proxy.metrics().workers[0]; return x.lentPipes === 0 && x; });
    assert.strictEqual(w.largePipes, 4, `largePipes ${w.largePipes} of ${w.splicePipes}`);
    assert.strictEqual(w.splicePipeLarge, 1, 'the worker still splices through a 64 KiB pipe');
  });

  it('a client that goes away while its bytes wait in a lent pipe: the pipe is closed, other flows go on', async function () {
    const down = crypto.randomBytes(4 * MiB);
    const bulk = await startBulkUpstream(down);
    const proxy = await startProxy({ workerThreads: 1, routes: [route('', bulk.port)] });
    const stalled = await connect(portOf(proxy));
    stalled.pause();
    stalled.write('g');
    await waitFor(() => proxy.metrics().workers[0].lentPipes === 1, 20000);
    const before = proxy.metrics().workers[0].splicePipes;
    stalled.resetAndDestroy();
    const w = await waitFor(() => { const x = proxy.metrics(); return x.activeConnections === 0 && x.workers[0].lentPipes === 0 && x.workers[0]; });
    // The lent pipe held bytes: it was closed, not kept as a spare.
    assert.strictEqual(w.splicePipes, before - 1);
    const c = await connect(portOf(proxy));
    const mine = hashUntilEnd(c);
    c.write('g');
    const got = await mine;
    assert.strictEqual(got.hash, sha256(down));
    c.destroy();
  });

  it('a CONNECT tunnel splices its bulk bytes', async function () {
    const down = crypto.randomBytes(16 * MiB);
    const bulk = await startBulkUpstream(down);
    const proxy = await startProxy({
      workerThreads: 1,
      listeners: [{ kind: 'connect', host: '127.0.0.1', port: 0, connect: { allowPorts: [bulk.port], denyCidrs: [] } }],
    });
    const c = await connect(portOf(proxy));
    c.write(`CONNECT 127.0.0.1:${bulk.port} HTTP/1.1\r\nHost: 127.0.0.1:${bulk.port}\r\n\r\n`);
    const all = collect(c);
    // The answer's head, then the tunnel's bytes.
    await new Promise((resolve) => c.once('data', resolve));
    c.write('g');
    c.end();
    const r = await all; // every byte, the answer's head included
    const headEnd = r.data.indexOf('\r\n\r\n');
    assert.ok(/^HTTP\/1\.1 200/.test(r.data.toString('latin1', 0, 12)), r.data.toString('latin1', 0, 40));
    const body = r.data.subarray(headEnd + 4);
    assert.ok(r.ended, 'no FIN from the tunnel');
    assert.strictEqual(body.length, down.length);
    assert.ok(body.equals(down), 'tunnel bytes differ');
    assert.ok(spliced(proxy) > 0, 'nothing was spliced');
  });

  it('a Unix-socket upstream and a paced worker keep read/write (nothing spliced), byte-exact', async function () {
    const down = crypto.randomBytes(4 * MiB);
    const path = tempSocketPath();
    const bulkUds = await startBulkUpstream(down, { path });
    const p1 = await startProxy({ workerThreads: 1, routes: [route('', uds(path))] });
    const bulkTcp = await startBulkUpstream(down);
    const p2 = await startProxy({ workerThreads: 1, scheduler: { kind: 'drr', rate: 64 * MiB }, routes: [route('', bulkTcp.port)] });
    for (const p of [p1, p2]) {
      const c = await connect(portOf(p));
      const mine = hashUntilEnd(c);
      c.write('g');
      const got = await mine;
      assert.strictEqual(got.hash, sha256(down));
      c.destroy();
      assert.strictEqual(spliced(p), 0);
    }
  });

  it('urgent (MSG_OOB) data in a spliced flow: every in-band byte after it is relayed (splice stops at the urgent mark)', async function () {
    const { spawn } = require('child_process');
    const srv = await startTcpServer(null);
    const proxy = await startProxy({ workerThreads: 1, routes: [route('', srv.port)] });
    // Bulk pieces (the flow splices), one urgent byte, then more bulk; the client's own socket
    // sends the urgent byte as TCP urgent data (Node cannot).
    const script = [
      'import socket, sys, time',
      's = socket.create_connection(("127.0.0.1", int(sys.argv[1])))',
      's.sendall(b"x" * 2048); time.sleep(0.3)',
      'for _ in range(3):',
      '    s.sendall(b"a" * 32768); time.sleep(0.1)',
      's.send(b"!", socket.MSG_OOB)',
      's.sendall(b"b" * 32768); time.sleep(0.5)',
      's.close()',
    ].join('\n');
    const py = spawn('python3', ['-c', script, String(portOf(proxy))], { stdio: ['ignore', 'ignore', 'pipe'] });
    let err = '';
    py.stderr.on('data', (d) => { err += d; });
    const code = await new Promise((resolve) => py.on('exit', resolve));
    assert.strictEqual(code, 0, err);
    const conn = srv.connections[0];
    await Promise.race([conn.ended, new Promise((resolve) => setTimeout(resolve, 5000))]);
    const got = conn.data();
    // read() drops the urgent byte (no SO_OOBINLINE); every in-band byte arrives in order.
    const want = Buffer.concat([Buffer.alloc(2048, 'x'), Buffer.alloc(3 * 32768, 'a'), Buffer.alloc(32768, 'b')]);
    assert.strictEqual(got.length, want.length, `the upstream got ${got.length} of ${want.length} bytes`);
    assert.ok(got.equals(want), 'bytes differ');
    assert.ok(spliced(proxy) > 0, 'the bulk bytes before the mark were spliced');
  });

  it('an upstream reset in the middle of a spliced download closes the client; the other tunnel is unharmed', async function () {
    const down = crypto.randomBytes(32 * MiB);
    let victim = null;
    const srv = await startTcpServer((socket) => {
      socket.once('data', (d) => {
        if (d[0] === 0x78 /* x */) {
          victim = socket;
          const pump = () => { while (!socket.destroyed && socket.write(down.subarray(0, MiB))); };
          socket.on('drain', pump);
          pump();
        } else {
          writeAll(socket, down).then(() => socket.end(), () => {});
        }
      });
    }, { record: false });
    const proxy = await startProxy({ workerThreads: 1, routes: [route('', srv.port)] });
    const a = await connect(portOf(proxy));
    const aDone = collect(a);
    a.write('x');
    const b = await connect(portOf(proxy), { allowHalfOpen: true });
    const bHash = hashUntilEnd(b);
    b.write('y');
    await waitFor(() => victim !== null && spliced(proxy) > 4 * MiB, 20000);
    victim.resetAndDestroy();
    const ra = await aDone; // the proxy closed client a
    // What a received is the first MiB of `down` over and over, up to where the reset cut it.
    assert.ok(ra.data.length > MiB, `a got ${ra.data.length} bytes`);
    for (let off = 0; off < ra.data.length; off += MiB) {
      const part = ra.data.subarray(off, Math.min(off + MiB, ra.data.length));
      assert.ok(part.equals(down.subarray(0, part.length)), `a's bytes differ at ${off}`);
    }
    const rb = await bHash;
    assert.strictEqual(rb.hash, sha256(down), 'the other tunnel lost bytes');
    assert.strictEqual(rb.length, down.length);
    b.destroy();
    await waitFor(() => proxy.metrics().activeConnections === 0);
  });
});
