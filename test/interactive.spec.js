'use strict';
// Interactive flows beside bulk flows (src/lg_relay.c, "interactive sources, looked at
// mid-turn"): with kind 'drr' a worker busy with bulk transfers reads a small request between
// bulk reads instead of after the whole loop turn (workers[].interactiveReads counts those
// reads); FIFO keeps libuv's order and never does. Every byte stays in order, and a flow that
// goes from small to bulk and back, ends, or is reset mid-bulk behaves as anywhere else.

const assert = require('assert');
const crypto = require('crypto');
const { startTcpServer, startEchoServer } = require('./helpers/servers');
const { startProxy, route, portOf, connect, collect, closed, cleanup } = require('./helpers/proxy');
const { captureClientHello } = require('./helpers/hello');
const { waitFor } = require('./helpers/wait');

const MiB = 1024 * 1024;
const BLOCK = crypto.randomBytes(MiB); // what every bulk download repeats

/**
 * A bulk download: the client sends the hello (routing to the bulk upstream), then checks that
 * every byte it receives is BLOCK repeated. Resolves with the bytes checked once the socket
 * closes; rejects on the first wrong byte.
 */
async function bulkDownload(port, hello) {
  const s = await connect(port);
  s.write(hello);
  let off = 0;
  let bad = null;
  s.on('data', (d) => {
    for (let i = 0; i < d.length && bad === null;) {
      const at = off % MiB;
      const n = Math.min(d.length - i, MiB - at);
      if (Buffer.compare(d.subarray(i, i + n), BLOCK.subarray(at, at + n)) !== 0) bad = off;
      i += n;
      off += n;
    }
  });
  const done = new Promise((resolve, reject) => {
    s.on('error', () => {});
    s.once('close', () => (bad === null ? resolve(off) : reject(new Error(`download byte ${bad} differs`))));
  });
  return { socket: s, done, get bytes() { return off; } };
}

/** Send `msg` and expect exactly it back (the echo upstream). */
function echoOnce(socket, msg) {
  return new Promise((resolve, reject) => {
    const parts = [];
    let got = 0;
    const onData = (d) => {
      parts.push(d);
      got += d.length;
      if (got < msg.length) return;
      socket.off('data', onData);
      socket.off('close', onClose);
      if (Buffer.concat(parts).equals(msg)) resolve();
      else reject(new Error(`echo of ${msg.length} bytes came back different (${got} bytes)`));
    };
    const onClose = () => { socket.off('data', onData); reject(new Error(`closed after ${got} of ${msg.length} bytes`)); };
    socket.on('data', onData);
    socket.once('close', onClose);
    socket.write(msg);
  });
}

const interactiveReads = (proxy) => proxy.metrics().workers.reduce((a, w) => a + w.interactiveReads, 0);

describe('interactive flows beside bulk flows', function () {
  this.timeout(90000);
  let hello;
  let bulkUp;
  let echo;

  before(async function () {
    hello = await captureClientHello('bulk.test');
  });

  beforeEach(async function () {
    // Writes BLOCK over and over after the hello, until the client goes away.
    bulkUp = await startTcpServer((socket) => {
      let seen = 0;
      let started = false;
      socket.on('data', (d) => {
        seen += d.length;
        if (started || seen < hello.length) return;
        started = true;
        const pump = () => { while (!socket.destroyed && socket.write(BLOCK)); };
        socket.on('drain', pump);
        pump();
      });
    }, { record: false });
    echo = await startEchoServer();
  });

  afterEach(cleanup);

  async function setup(kind, flows) {
    const proxy = await startProxy({
      workerThreads: 1,
      scheduler: { kind },
      routes: [route('bulk.test', bulkUp.port), route('', echo.port)],
    });
    const port = portOf(proxy);
    const bulk = [];
    for (let i = 0; i < flows; i++) bulk.push(await bulkDownload(port, hello));
    await waitFor(() => bulk.every((b) => b.bytes > 4 * MiB), 30000, { describe: () => bulk.map((b) => b.bytes) });
    return { proxy, port, bulk };
  }

  async function finish(bulk) {
    for (const b of bulk) b.socket.destroy();
    const got = await Promise.all(bulk.map((b) => b.done));
    return got;
  }

  it('drr reads a small request between bulk reads (interactiveReads), every echo exact', async function () {
    const { proxy, port, bulk } = await setup('drr', 8);
    const ping = await connect(port);
    // Round trips until some were read mid-turn (at least 100): with 8 downloads keeping the
    // worker busy, a ping usually arrives while the worker is reading bulk data.
    let rounds = 0;
    const t0 = Date.now();
    while (rounds < 100 || (interactiveReads(proxy) === 0 && Date.now() - t0 < 30000)) {
      await echoOnce(ping, Buffer.concat([Buffer.from(`p${rounds}:`), crypto.randomBytes(60)]));
      rounds++;
    }
    const reads = interactiveReads(proxy);
    assert.ok(reads > 0, `no read was done mid-turn in ${rounds} round trips beside 8 downloads`);
    assert.ok(reads <= 2 * rounds, `${reads} mid-turn reads for ${rounds} round trips (two small reads each at most)`);
    ping.end();
    await closed(ping);
    const got = await finish(bulk);
    assert.ok(got.every((n) => n > 4 * MiB));
  });

  it('fifo never reads mid-turn (interactiveReads stays 0)', async function () {
    const { proxy, port, bulk } = await setup('fifo', 8);
    const ping = await connect(port);
    for (let i = 0; i < 100; i++) await echoOnce(ping, crypto.randomBytes(64));
    assert.strictEqual(interactiveReads(proxy), 0);
    ping.end();
    await closed(ping);
    await finish(bulk);
  });

  it('a flow going small → bulk → small stays byte-exact; FIN and reset of interactive flows mid-bulk are passed on', async function () {
    const { proxy, port, bulk } = await setup('drr', 6);
    // Small, then 4 MiB (the flow leaves the interactive set), then small again (it rejoins).
    const mixed = await connect(port, { allowHalfOpen: true });
    for (let i = 0; i < 20; i++) await echoOnce(mixed, crypto.randomBytes(1 + (i * 37) % 200));
    await echoOnce(mixed, crypto.randomBytes(4 * MiB));
    for (let i = 0; i < 20; i++) await echoOnce(mixed, crypto.randomBytes(64));
    // Its FIN reaches the upstream, whose FIN comes back (the echo server ends after ours).
    const rest = collect(mixed);
    const upMixed = echo.connections[0];
    mixed.end();
    await upMixed.ended;
    const r = await rest;
    assert.ok(r.ended && !r.hadError, 'the FIN came back');

    // An interactive connection reset by its client: the proxy closes the upstream side.
    const gone = await connect(port);
    for (let i = 0; i < 10; i++) await echoOnce(gone, crypto.randomBytes(64));
    const upGone = echo.connections[1];
    gone.resetAndDestroy();
    await upGone.closed;

    // The downloads were never disturbed, and the worker did read mid-turn.
    assert.ok(interactiveReads(proxy) > 0, 'no mid-turn read happened');
    const m = await waitFor(() => { const x = proxy.metrics(); return x.activeConnections === 6 && x; }, 10000, { describe: () => proxy.metrics() });
    assert.strictEqual(m.outOfMemory, 0);
    await finish(bulk);
  });
});
