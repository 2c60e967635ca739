'use strict';
// Lifecycle and engine-wide behaviour: start/addresses, start twice, bind failures
// (EADDRINUSE leaves nothing listening), two proxies in one process, stop with and without a
// grace period, maxConnections, metrics that add up, exiting without stop(), and running out of
// file descriptors (EMFILE) under a low `ulimit -n` in a child process.

const assert = require('assert');
const net = require('net');
const { startEchoServer, startTcpServer, startBlackhole } = require('./helpers/servers');
const {
  createProxy, startProxy, route, portOf, connect, collect, closed, cleanup,
} = require('./helpers/proxy');
const { startChildProxy, spawnFixture } = require('./helpers/child');
const { waitFor, waitForMetric, sleep } = require('./helpers/wait');

/** A port that was free a moment ago (nothing listens on it now). */
async function freePort(host = '127.0.0.1') {
  const s = net.createServer();
  await new Promise((resolve) => s.listen(0, host, resolve));
  const { port } = s.address();
  await new Promise((resolve) => s.close(resolve));
  return port;
}

/** Resolves with 'refused' | 'connected' (then closes the socket). */
function probe(port, host = '127.0.0.1') {
  return new Promise((resolve) => {
    const s = net.connect(port, host);
    s.once('connect', () => { s.destroy(); resolve('connected'); });
    s.once('error', (e) => resolve(e.code === 'ECONNREFUSED' ? 'refused' : e.code));
  });
}

/** Resolve 'ok' once `socket.received` (kept by the caller) equals `expected`; 'closed' or 'timeout'. */
async function receives(socket, expected, ms) {
  const deadline = Date.now() + ms;
  while (Date.now() < deadline) {
    if (socket.received === expected) return 'ok';
    if (socket.destroyed) return 'closed';
    await sleep(20);
  }
  return 'timeout';
}

/** Send `msg` and resolve 'ok' when echoed exactly, 'closed', 'bad' or 'timeout'. */
function echoWithin(socket, msg, ms = 5000) {
  return new Promise((resolve) => {
    let got = '';
    const done = (r) => { clearTimeout(t); socket.off('data', onData); socket.off('close', onClose); resolve(r); };
    const t = setTimeout(() => done('timeout'), ms);
    const onData = (d) => { got += d; if (got.length >= msg.length) done(got === msg ? 'ok' : 'bad'); };
    const onClose = () => done('closed');
    socket.on('data', onData);
    socket.once('close', onClose);
    if (socket.destroyed) { done('closed'); return; }
    socket.write(msg);
  });
}

async function expectEcho(port, msg = 'ping') {
  const s = await connect(port);
  assert.strictEqual(await echoWithin(s, msg), 'ok');
  return s;
}

let ipv6 = false;

describe('lifecycle', function () {
  this.timeout(30000);
  let echo;

  before(async function () {
    ipv6 = await new Promise((resolve) => {
      const s = net.createServer().once('error', () => resolve(false));
      s.listen(0, '::1', () => s.close(() => resolve(true)));
    });
  });

  beforeEach(async function () {
    echo = await startEchoServer();
  });

  afterEach(cleanup);

  const routes = () => [route('', echo.port)];

  describe('start() and addresses()', function () {
    it('binds every listener, in order, and reports the chosen ports', async function () {
      const listeners = [{ host: '127.0.0.1', port: 0 }, { host: '127.0.0.1', port: 0 }];
      if (ipv6) listeners.push({ host: '::1', port: 0 });
      const proxy = createProxy({ listeners, routes: routes() });
      assert.deepStrictEqual(proxy.addresses().map((a) => a.port), listeners.map(() => 0), 'port 0 before start');
      let listening = 0;
      proxy.on('listening', () => listening++);
      await proxy.start();
      assert.strictEqual(listening, 1, "'listening' emitted once");
      const addrs = proxy.addresses();
      assert.strictEqual(addrs.length, listeners.length);
      addrs.forEach((a, i) => {
        assert.strictEqual(a.kind, 'tls');
        assert.strictEqual(a.host, listeners[i].host);
        assert.ok(Number.isInteger(a.port) && a.port > 0 && a.port < 65536, `listener ${i} port ${a.port}`);
      });
      assert.strictEqual(new Set(addrs.map((a) => `${a.host}|${a.port}`)).size, addrs.length);
      for (const [i, a] of addrs.entries()) {
        const s = await connect(a.port, { host: a.host });
        assert.strictEqual(await echoWithin(s, `via listener ${i}`), 'ok');
        s.destroy();
      }
      const m = await waitForMetric(proxy, 'totalConnections', addrs.length);
      assert.deepStrictEqual(m.listeners.map((l) => l.totalConnections), addrs.map(() => 1), 'each listener served one');
      assert.deepStrictEqual(m.listeners.map((l) => [l.host, l.port]), addrs.map((a) => [a.host, a.port]));
    });

    it('keeps an explicit port as given', async function () {
      const port = await freePort();
      const proxy = await startProxy({ listener: { port }, routes: routes() });
      assert.strictEqual(portOf(proxy), port);
      await expectEcho(port);
    });

    it('rejects a second start() with ERR_LEGATO_STATE, and start() after stop()', async function () {
      const proxy = createProxy({ routes: routes() });
      const first = proxy.start();
      await assert.rejects(proxy.start(), { code: 'ERR_LEGATO_STATE' }, 'while starting');
      await first;
      await assert.rejects(proxy.start(), { code: 'ERR_LEGATO_STATE' }, 'while running');
      await expectEcho(portOf(proxy));
      await proxy.stop();
      await assert.rejects(proxy.start(), { code: 'ERR_LEGATO_STATE' }, 'after stop');
      assert.strictEqual(proxy.metrics().totalConnections, 1);
    });
  });

  describe('bind failures', function () {
    it('rejects with EADDRINUSE for a port held by a net.Server and leaves nothing listening', async function () {
      const holder = await startTcpServer(null);
      const [before, after] = [await freePort(), await freePort()];
      const proxy = createProxy({
        listeners: [{ port: before }, { port: holder.port }, { port: after }],
        routes: routes(),
      });
      let listening = false;
      proxy.on('listening', () => { listening = true; });
      await assert.rejects(proxy.start(), (err) => {
        assert.strictEqual(err.code, 'EADDRINUSE');
        return true;
      });
      assert.strictEqual(listening, false);
      assert.strictEqual(await probe(before), 'refused', 'the listener bound before the failure was closed');
      assert.strictEqual(await probe(after), 'refused');
      assert.strictEqual(await probe(holder.port), 'connected', 'the holder is untouched');
      await proxy.stop(); // fine after a failed start
      await assert.rejects(proxy.start(), { code: 'ERR_LEGATO_STATE' });
      // The addresses were released: another proxy can take them.
      const again = await startProxy({ listeners: [{ port: before }, { port: after }], routes: routes() });
      await expectEcho(portOf(again, 0));
      await expectEcho(portOf(again, 1));
    });

    it('refuses a second proxy in the same process on the same port (EADDRINUSE), even with SO_REUSEPORT', async function () {
      const port = await freePort();
      const first = await startProxy({ listener: { port }, routes: routes() });
      const otherEcho = await startEchoServer();
      const second = createProxy({ listener: { port }, routes: [route('', otherEcho.port)] });
      await assert.rejects(second.start(), { code: 'EADDRINUSE' });
      // All connections still go to the first proxy (none is shared with the failed one).
      for (let i = 0; i < 20; i++) (await expectEcho(port, `c${i}`)).destroy();
      const m = await waitForMetric(first, 'totalConnections', 20);
      assert.strictEqual(m.totalConnections, 20);
      assert.strictEqual(second.metrics().totalConnections, 0);
      assert.strictEqual(otherEcho.connections.length, 0);
      // Once the first stops, the port is free for a new proxy.
      await first.stop();
      const third = await startProxy({ listener: { port }, routes: routes() });
      await expectEcho(portOf(third));
    });
  });

  it('runs two proxies in one process independently', async function () {
    const echo2 = await startEchoServer({ record: true });
    const a = await startProxy({ routes: routes() });
    const b = await startProxy({ routes: [route('', echo2.port)] });
    const sa = await expectEcho(portOf(a), 'to a');
    const sb = await expectEcho(portOf(b), 'to b');
    assert.strictEqual(echo2.connections.length, 1);
    const aPort = portOf(a);
    await a.stop();
    await closed(sa);
    assert.strictEqual(await probe(aPort), 'refused');
    assert.strictEqual(await echoWithin(sb, 'b still relays'), 'ok', 'the other proxy\'s connection lives on');
    (await expectEcho(portOf(b), 'b accepts')).destroy();
    const m = await waitForMetric(b, 'totalConnections', 2);
    assert.strictEqual(m.totalConnections, 2);
    assert.strictEqual(a.metrics().totalConnections, 1);
  });

  describe('stop()', function () {
    it('LEGATO_DEBUG=stop writes what each worker holds when a stop begins (issue 14 item 6)', async function () {
      const proxy = await startProxy({ routes: routes(), workerThreads: 2 });
      const socks = [];
      for (let i = 0; i < 3; i++) socks.push(await expectEcho(portOf(proxy), `held ${i}`));
      const saved = process.env.LEGATO_DEBUG;
      const write = process.stderr.write;
      let text = '';
      process.env.LEGATO_DEBUG = 'stop';
      process.stderr.write = function (chunk, ...rest) {
        if (String(chunk).startsWith('legato:')) { text += chunk; return true; }
        return write.call(this, chunk, ...rest);
      };
      let stopping;
      try {
        stopping = proxy.stop({ graceMs: 300 });
      } finally {
        process.stderr.write = write;
        if (saved === undefined) delete process.env.LEGATO_DEBUG; else process.env.LEGATO_DEBUG = saved;
      }
      await stopping;
      // A worker holding nothing may have exited already when the report is taken (the stop
      // was posted to the workers first).
      assert.match(text, /^legato: stop\(\{ graceMs: 300 \}\) began: worker 0 (exited;|\w+: )/);
      const relays = [...text.matchAll(/relay (\d+)/g)].reduce((n, m) => n + Number(m[1]), 0);
      const conns = [...text.matchAll(/(\d+) connections?/g)].reduce((n, m) => n + Number(m[1]), 0);
      assert.strictEqual(relays, 3, text);
      assert.strictEqual(conns, 3, text);
      assert.match(text, /worker 1 /);
    });

    it('graceMs 0 closes live connections at once, resolves, and emits close', async function () {
      const proxy = await startProxy({ routes: routes() });
      const socks = [];
      for (let i = 0; i < 4; i++) socks.push(await expectEcho(portOf(proxy), `s${i}`));
      assert.strictEqual(proxy.metrics().activeConnections, 4);
      let closeEvents = 0;
      proxy.on('close', () => closeEvents++);
      const port = portOf(proxy);
      await proxy.stop({ graceMs: 0 });
      assert.strictEqual(closeEvents, 1);
      await Promise.all(socks.map(closed));
      await waitFor(() => echo.connections.length === 4 && echo.connections.every((c) => c.socket.destroyed || c.socket.readableEnded));
      assert.strictEqual(await probe(port), 'refused');
      const m = proxy.metrics();
      assert.strictEqual(m.activeConnections, 0);
      assert.strictEqual(m.closedConnections, 4);
    });

    it('graceMs 500: a connection that finishes in time completes, one that outlasts it is closed at ~500 ms', async function () {
      // The upstream answers 150 ms after the client's FIN.
      const slow = await startTcpServer((socket, conn) => {
        socket.on('end', async () => {
          await sleep(150);
          socket.end(`done: ${conn.data()}`);
        });
      });
      const proxy = await startProxy({ routes: [route('', slow.port)] });
      const port = portOf(proxy);
      const quick = await connect(port);
      const lingering = await connect(port);
      const quickResult = collect(quick);
      const lingerResult = collect(lingering);
      quick.write('quick request');
      lingering.write('linger');
      await waitFor(() => slow.connections.length === 2 && slow.connections.every((c) => c.received > 0));
      let closeEvent = false;
      proxy.on('close', () => { closeEvent = true; });
      const t0 = Date.now();
      const stopping = proxy.stop({ graceMs: 500 });
      quick.end();
      const q = await quickResult;
      assert.strictEqual(q.data.toString(), 'done: quick request', 'finished within the grace period');
      assert.strictEqual(q.ended, true);
      assert.strictEqual(await probe(port), 'refused', 'no new connections during the grace period');
      const l = await lingerResult;
      const lingeredFor = Date.now() - t0;
      assert.strictEqual(l.data.length, 0);
      assert.ok(lingeredFor >= 400, `closed after ${lingeredFor} ms, before the grace ended`);
      assert.ok(lingeredFor < 5000, `closed only after ${lingeredFor} ms`);
      await stopping;
      assert.ok(Date.now() - t0 >= 400, 'stop() resolved before the grace period ended');
      assert.strictEqual(closeEvent, true);
      const m = proxy.metrics();
      assert.strictEqual(m.activeConnections, 0);
      assert.strictEqual(m.closedConnections, 2);
      assert.strictEqual(m.bytesToClients, 'done: quick request'.length);
      assert.strictEqual(m.idleTimeouts, 0);
    });

    it('graceMs 0 also closes connections still reading their hello or dialling the upstream', async function () {
      const hole = await startBlackhole();
      const proxy = await startProxy({ routes: [route('a.test', echo.port), route('', hole.port)] });
      const inHello = await connect(portOf(proxy));
      inHello.write(Buffer.from([0x16, 0x03, 0x01, 0x01, 0x00])); // a record header, then nothing
      const dialling = await connect(portOf(proxy));
      dialling.write('not TLS: goes to the default route, whose upstream never answers');
      await waitFor(() => proxy.metrics().activeConnections === 2);
      const t0 = Date.now();
      await proxy.stop({ graceMs: 0 });
      await Promise.all([closed(inHello), closed(dialling)]);
      assert.ok(Date.now() - t0 < 5000);
      const m = proxy.metrics();
      assert.strictEqual(m.activeConnections, 0);
      assert.strictEqual(m.closedConnections, 2);
    });

    it('stops cleanly under load: busy connections and new ones arriving', async function () {
      const proxy = await startProxy({ routes: routes() });
      const port = portOf(proxy);
      const busy = await Promise.all(Array.from({ length: 40 }, () => connect(port)));
      const chunk = Buffer.alloc(64 * 1024, 0x41);
      for (const s of busy) {
        s.on('data', () => {});
        const pump = () => { while (!s.destroyed && s.write(chunk)); };
        s.on('drain', pump);
        pump();
      }
      await waitFor(() => proxy.metrics().bytesToClients > 4 * 1024 * 1024);
      let arriving = true;
      const arrivals = (async () => {
        while (arriving) {
          const s = await connect(port).catch(() => null);
          if (s) s.write('x');
          await sleep(2);
        }
      })();
      await sleep(50);
      await proxy.stop({ graceMs: 0 });
      arriving = false;
      await arrivals;
      await Promise.all(busy.map(closed));
      const m = proxy.metrics();
      assert.strictEqual(m.activeConnections, 0);
      assert.strictEqual(m.closedConnections, m.totalConnections);
      assert.strictEqual(await probe(port), 'refused');
    });

    it('resolves at once with no connections, even with a long grace', async function () {
      const proxy = await startProxy({ routes: routes() });
      const t0 = Date.now();
      await proxy.stop({ graceMs: 20000 });
      assert.ok(Date.now() - t0 < 10000);
    });

    it('may be called twice, and before start()', async function () {
      const never = createProxy({ routes: routes() });
      await never.stop();
      await never.stop({ graceMs: 100 });
      await assert.rejects(never.start(), { code: 'ERR_LEGATO_STATE' });

      const proxy = await startProxy({ routes: routes() });
      const s = await expectEcho(portOf(proxy));
      let closes = 0;
      proxy.on('close', () => closes++);
      const p1 = proxy.stop({ graceMs: 300 });
      const p2 = proxy.stop({ graceMs: 300 });
      await Promise.all([p1, p2]);
      await proxy.stop();
      assert.strictEqual(closes, 1);
      await closed(s);
      assert.strictEqual(proxy.metrics().activeConnections, 0);
    });

    it('a second stop({ graceMs: 0 }) during a grace period closes connections at once', async function () {
      const proxy = await startProxy({ routes: routes() });
      const s = await expectEcho(portOf(proxy));
      // Not spelled out in DESIGN.md, but lg_worker.c handles it (a STOP with grace 0 while a
      // grace timer runs drains at once): the usual "second Ctrl-C" pattern.
      const t0 = Date.now();
      const long = proxy.stop({ graceMs: 6000 });
      await sleep(50);
      const short = proxy.stop({ graceMs: 0 });
      await closed(s);
      const closedAfter = Date.now() - t0;
      await Promise.all([long, short]);
      assert.ok(closedAfter < 3000, `the connection lived ${closedAfter} ms: stop({ graceMs: 0 }) did not cut the 6 s grace short`);
    });
  });

  describe('maxConnections', function () {
    it('refuses connections beyond the limit at accept and accepts again once one closes', async function () {
      const proxy = await startProxy({ listener: { maxConnections: 2 }, routes: routes() });
      const port = portOf(proxy);
      const a = await expectEcho(port, 'a');
      const b = await expectEcho(port, 'b');
      const c = await connect(port);
      const cResult = await collect(c);
      assert.strictEqual(cResult.data.length, 0, 'the third connection is closed without service');
      let m = await waitForMetric(proxy, 'refusedMaxConnections', 1);
      assert.strictEqual(m.refusedMaxConnections, 1);
      assert.strictEqual(m.listeners[0].refusedMaxConnections, 1);
      assert.strictEqual(m.activeConnections, 2);
      assert.strictEqual(echo.connections.length, 2);
      // The two admitted ones still work.
      assert.strictEqual(await echoWithin(a, 'a again'), 'ok');
      a.end();
      await closed(a);
      await waitFor(() => proxy.metrics().activeConnections === 1, 5000, { describe: () => proxy.metrics() });
      const d = await expectEcho(port, 'd');
      m = proxy.metrics();
      assert.strictEqual(m.activeConnections, 2);
      assert.strictEqual(m.refusedMaxConnections, 1);
      assert.strictEqual(m.totalConnections, 3, 'refused connections are not in totalConnections');
      void b; void d;
    });

    it('admits exactly maxConnections out of a simultaneous burst across workers', async function () {
      const proxy = await startProxy({ workerThreads: 2, listener: { maxConnections: 10 }, routes: routes() });
      const port = portOf(proxy);
      const socks = await Promise.all(Array.from({ length: 30 }, () => connect(port)));
      const results = await Promise.all(socks.map((s, i) => echoWithin(s, `burst ${i}`, 5000)));
      const ok = results.filter((r) => r === 'ok').length;
      assert.strictEqual(ok, 10, `results: ${results.join(',')}`);
      assert.strictEqual(results.filter((r) => r === 'closed').length, 20);
      const m = await waitForMetric(proxy, 'refusedMaxConnections', 20);
      assert.strictEqual(m.refusedMaxConnections, 20);
      assert.strictEqual(m.activeConnections, 10);
      assert.strictEqual(m.totalConnections, 10);
    });

    it('counts the limit per listener', async function () {
      const proxy = await startProxy({
        listeners: [{ maxConnections: 1 }, { maxConnections: 1 }],
        routes: routes(),
      });
      await expectEcho(portOf(proxy, 0));
      await expectEcho(portOf(proxy, 1), 'the other listener has its own budget');
      const extra = await connect(portOf(proxy, 0));
      await closed(extra);
      const m = await waitForMetric(proxy, 'refusedMaxConnections', 1);
      assert.deepStrictEqual(m.listeners.map((l) => l.refusedMaxConnections), [1, 0]);
      assert.deepStrictEqual(m.listeners.map((l) => l.activeConnections), [1, 1]);
    });
  });

  it('metrics: totals and bytes add up for a known transfer, and listeners sum to totals', async function () {
    const proxy = await startProxy({ listeners: [{}, {}], routes: routes() });
    const plan = [[0, 100], [0, 2000], [1, 30000], [1, 7], [1, 65536]];
    for (const [lis, size] of plan) {
      const s = await connect(portOf(proxy, lis));
      const msg = 'm'.repeat(size);
      assert.strictEqual(await echoWithin(s, msg), 'ok');
      s.end();
      await closed(s);
    }
    const m = await waitFor(() => { const x = proxy.metrics(); return x.closedConnections === plan.length && x; }, 5000,
      { describe: () => proxy.metrics() });
    const total = plan.reduce((a, [, n]) => a + n, 0);
    assert.strictEqual(m.totalConnections, plan.length);
    assert.strictEqual(m.activeConnections, 0);
    assert.strictEqual(m.bytesFromClients, total);
    assert.strictEqual(m.bytesToClients, total);
    const perListener = [0, 1].map((i) => plan.filter(([l]) => l === i).reduce((a, [, n]) => a + n, 0));
    assert.deepStrictEqual(m.listeners.map((l) => l.bytesFromClients), perListener);
    assert.deepStrictEqual(m.listeners.map((l) => l.totalConnections), [2, 3]);
    for (const key of Object.keys(m.listeners[0])) {
      if (typeof m.listeners[0][key] !== 'number' || key === 'port') continue;
      const sum = m.listeners.reduce((a, l) => a + l[key], 0);
      assert.strictEqual(m[key], sum, `${key}: total ${m[key]} != sum over listeners ${sum}`);
    }
    for (const key of ['totalConnections', 'closedConnections', 'bytesFromClients', 'bytesToClients', 'upstreamConnectFailures',
      'noRoute', 'refusedMaxConnections', 'handshakeFailures', 'handshakeFailuresTimeout', 'handshakeFailuresProtocol',
      'handshakeFailuresClosed', 'nonTlsConnections', 'idleTimeouts', 'outOfMemory', 'acceptPauses', 'pendingSuspended',
      'blockedConnections', 'configGenerationsLive', 'eventsDropped', 'activeConnections']) {
      assert.strictEqual(typeof m[key], 'number', `metrics().${key}`);
    }
  });

  describe('exiting without stop()', function () {
    for (const mode of ['starting', 'idle', 'live', 'busy', 'hello', 'stopping']) {
      it(`exits cleanly with code 0 (${mode})`, async function () {
        const h = spawnFixture('exit-without-stop.js', [mode], { timeoutMs: 20000 });
        const { code, signal } = await h.exited;
        assert.strictEqual(h.stderr(), '', 'no crash output');
        assert.strictEqual(signal, null);
        assert.strictEqual(code, 0);
        assert.strictEqual(h.stdout(), `exiting (${mode})\n`);
      });
    }
  });

  describe('file descriptors (child process with ulimit -n 64)', function () {
    this.timeout(60000);

    it('warns when RLIMIT_NOFILE cannot be raised for the listeners\' maxConnections', async function () {
      const child = await startChildProxy({ listener: { maxConnections: 100 }, routes: routes() }, { ulimitN: 64 });
      const w = await child.waitMessage((m) => m.type === 'warning', 5000);
      assert.strictEqual(w.code, 'ERR_LEGATO_NOFILE');
      assert.match(w.message, /RLIMIT_NOFILE/);
      assert.deepStrictEqual(await child.call('nofile').then((n) => [n.soft, n.hard]), ['64', '64']);
      await child.call('stop');
      assert.strictEqual((await child.exited).code, 0);
    });

    it('warns when RLIMIT_NOFILE is below the 1024 baseline with maxConnections unlimited', async function () {
      // Issue 2: the soft limit is raised toward 2 × Σ maxConnections + 1024 within the hard limit,
      // with a warning if short. A hard limit of 64 is short of the baseline alone.
      const child = await startChildProxy({ routes: routes() }, { ulimitN: 64 });
      const w = await child.waitMessage((m) => m.type === 'warning', 3000).catch(() => null);
      await child.call('stop');
      assert.ok(w, 'no warning although the hard RLIMIT_NOFILE (64) is below the 1024 the engine asks for');
      assert.match(w.message, /RLIMIT_NOFILE/);
    });

    /** Open echo connections one by one until one is not served; returns { served, firstFailure }. */
    async function fillUp(child, max = 60) {
      const served = [];
      for (let i = 0; i < max; i++) {
        const s = await connect(child.port);
        s.received = '';
        s.on('data', (d) => { s.received += d; });
        const r = await echoWithin(s, `fill ${i}`, 2000);
        if (r !== 'ok') return { served, firstFailure: { socket: s, result: r, sent: `fill ${i}` } };
        served.push(s);
      }
      throw new Error(`${max} connections were all served: the fd limit was never reached`);
    }

    it('pauses accepting on EMFILE, keeps relaying, and accepts again once descriptors free up', async function () {
      const child = await startChildProxy({ listener: { maxConnections: 100 }, routes: routes() }, { ulimitN: 64 });
      const { served } = await fillUp(child);
      assert.ok(served.length >= 5, `only ${served.length} connections before the limit`);
      // Keep knocking until an accept fails (it may take one more attempt after a dropped one).
      let m = await child.call('metrics');
      for (let i = 0; i < 10 && m.acceptPauses === 0; i++) {
        const s = await connect(child.port);
        s.write('knock');
        await sleep(300);
        m = await child.call('metrics');
      }
      assert.ok(m.acceptPauses > 0, `acceptPauses stayed 0: ${JSON.stringify(m)}`);
      const w = await child.waitMessage((x) => x.type === 'warning' && x.code === 'EMFILE', 5000);
      // Accepting pauses at the descriptor budget (issue 14) before accept() itself can fail.
      assert.match(w.message, /accept failed|accept paused: descriptor budget/);
      assert.strictEqual(m.outOfMemory, 0);

      // Established connections keep relaying while accepts are paused.
      const again = await Promise.all(served.map((s, i) => echoWithin(s, `still ${i}`, 5000)));
      assert.deepStrictEqual(again, served.map(() => 'ok'));

      // Free some descriptors: close 6 established connections cleanly.
      const closedBefore = (await child.call('metrics')).closedConnections;
      const closing = served.splice(0, 6);
      for (const s of closing) s.end();
      await Promise.all(closing.map(closed));
      await waitFor(async () => (await child.call('metrics')).closedConnections >= closedBefore + 6, 10000);

      // New connections are accepted and served again.
      for (let i = 0; i < 3; i++) {
        const s = await connect(child.port);
        assert.strictEqual(await echoWithin(s, `fresh ${i}`, 8000), 'ok', `fresh connection ${i} after descriptors were freed`);
      }
      const after = await child.call('metrics');
      assert.ok(after.totalConnections >= served.length + 6 + 3);
      await child.call('stop');
      assert.strictEqual((await child.exited).code, 0);
    });

    it('a flood of 400 connections under ulimit -n 64: served within the descriptor budget during it, service back within seconds after it (issue 14 item 1)', async function () {
      // Before the descriptor budget, accepted flood clients held every free descriptor while
      // their upstream dials retried EMFILE until the 10 s connect deadline, and accept refilled
      // the table from the backlog with clients that had already left: the first connection
      // after a 3 s flood was served minutes later.
      this.timeout(90000);
      const child = await startChildProxy({ listener: { maxConnections: 1000 }, routes: routes() }, { ulimitN: 64 });
      const flood = [];
      let served = 0;
      let stop = false;
      const floodDone = (async () => {
        while (!stop) {
          const batch = [];
          for (let i = 0; i < 40 && flood.length < 400; i++) {
            batch.push(new Promise((resolve) => {
              const s = net.connect(child.port, '127.0.0.1');
              s.on('error', () => {});
              s.on('connect', () => { s.write('flood'); });
              s.on('data', () => { served++; });
              flood.push(s);
              setTimeout(resolve, 5);
            }));
          }
          await Promise.all(batch);
          await sleep(50);
          if (flood.length >= 400) await sleep(100);
        }
      })();
      await sleep(3000);
      stop = true;
      await floodDone;
      for (const s of flood) s.destroy(); // the flood ends: every flood client leaves
      const ended = Date.now();
      let result;
      let firstServedMs = null;
      for (let attempt = 0; attempt < 30 && firstServedMs === null; attempt++) {
        const s = await connect(child.port);
        s.on('error', () => {});
        result = await echoWithin(s, 'after the flood', 2000);
        if (result === 'ok') firstServedMs = Date.now() - ended;
        s.destroy();
      }
      const m = await child.call('metrics');
      await child.call('stop');
      assert(firstServedMs !== null, `no connection was served within 60 s of the flood ending (last: ${result}; ${JSON.stringify({ total: m.totalConnections, failures: m.upstreamConnectFailures, pauses: m.acceptPauses })})`);
      assert(firstServedMs < 5000, `the first connection after the flood was served ${firstServedMs} ms after it ended`);
      assert(served > 0, 'no flood connection was served during the flood (some fit the descriptor budget)');
      console.log(`      flood: ${flood.length} connections, ${served} served during it; first new connection served ${firstServedMs} ms after it ended`);
    });

    it('drops a client that left while its upstream dial waited for a free descriptor (issue 14 item 1)', async function () {
      const child = await startChildProxy({ routes: routes(), workerThreads: 1 }, { ulimitN: 64 });
      // Three clients are accepted and say nothing yet; then something else in the process takes
      // every free descriptor, so their dials find none and retry every 100 ms.
      const waiting = [];
      for (let i = 0; i < 3; i++) {
        const s = await connect(child.port);
        s.on('error', () => {});
        waiting.push(s);
      }
      await waitFor(async () => (await child.call('metrics')).activeConnections === 3, 10000);
      const hogged = await child.call('hogFds');
      assert(hogged > 0);
      const before = await child.call('metrics');
      for (const s of waiting) s.write('needs an upstream');
      await sleep(500); // the dials meet EMFILE and wait
      for (const s of waiting) s.destroy(); // and the clients leave
      const t0 = Date.now();
      await waitFor(async () => (await child.call('metrics')).activeConnections === 0, 8000);
      const elapsed = Date.now() - t0;
      const m = await child.call('metrics');
      await child.call('freeFds');
      const s = await connect(child.port);
      s.on('error', () => {});
      assert.strictEqual(await echoWithin(s, 'served again', 8000), 'ok');
      await child.call('stop');
      // Before: they waited for their 10 s connect deadline (then counted as upstream failures).
      assert(elapsed < 8000, `the clients that left were closed ${elapsed} ms later`);
      assert.strictEqual(m.upstreamConnectFailures - before.upstreamConnectFailures, 0, 'closed as gone, not as failed dials');
    });

    it('splice pipes count against the descriptor budget and are not made near it: the last connections keep their descriptors (issue 16)', async function () {
      this.timeout(120000);
      const child = await startChildProxy({ routes: routes(), workerThreads: 1 }, { ulimitN: 64 });
      const bulk = 'x'.repeat(4 * 1024 * 1024);
      const pipes = async () => (await child.call('metrics')).workers[0];
      // Far from the budget: a bulk echo is spliced, and the worker keeps its pipe (counted).
      const first = await connect(child.port);
      assert.strictEqual(await echoWithin(first, bulk, 15000), 'ok');
      const w0 = await pipes();
      assert.ok(w0.splicedBytes > 0 && w0.splicePipes >= 1, JSON.stringify(w0));
      first.destroy();
      await waitFor(async () => (await child.call('metrics')).activeConnections === 0, 5000);
      // Fill up to the budget (the pipe takes one connection's place), then free one place.
      const { served, firstFailure } = await fillUp(child);
      firstFailure.socket.destroy();
      served.shift().end();
      await waitFor(async () => (await child.call('metrics')).activeConnections === served.length, 5000);
      // Past 90 % of the budget no pipe is made: one client stops reading its bulk echo, so its
      // flow borrows the worker's pipe (lentPipes 1); another bulk echo then needs a pipe of its
      // own, is not given one, and is relayed with read/write, byte-exact.
      const before = await pipes();
      const big = 'y'.repeat(12 * 1024 * 1024);
      // The flow borrows the pipe only if it is splicing when the client's buffers fill; when a
      // write of its queue is in flight at that moment (timing: the DRR round, a loaded host)
      // it stops reading with its queue full instead. So up to three clients try in turn.
      let stalled = null;
      let stalledGot = null;
      for (let attempt = 0; attempt < 3 && stalled === null; attempt++) {
        const s = served[served.length - 1 - attempt];
        let got = 0;
        s.pause();
        s.on('data', (d) => { got += d.length; });
        s.write(big);
        const lent = await waitFor(async () => (await pipes()).lentPipes === 1, 8000).then(() => true, () => false);
        if (lent) {
          stalled = s;
          stalledGot = () => got;
        } else {
          s.resume();
          await waitFor(() => got === big.length, 15000);
        }
      }
      assert.ok(stalled !== null, `no flow borrowed the worker's pipe in three tries: ${JSON.stringify(await pipes())}`);
      assert.strictEqual(await echoWithin(served[0], bulk, 15000), 'ok');
      const after = await pipes();
      assert.strictEqual(after.splicePipes, before.splicePipes, `a pipe was made at the budget: ${JSON.stringify(after)}`);
      stalled.resume();
      await waitFor(() => stalledGot() === big.length, 15000);
      const s = await connect(child.port);
      assert.strictEqual(await echoWithin(s, 'still room', 5000), 'ok', 'the last place went to a pipe');
      await child.call('stop');
    });

    it('lets connections that arrive at the fd limit wait in the backlog instead of accepting and dropping them', async function () {
      // DESIGN/lg_listener.c: on EMFILE "pending connections wait in the kernel's backlog meanwhile
      // instead of being accepted and dropped". Connections made while the proxy has no descriptor
      // to spare must be served once some are freed, not closed.
      const child = await startChildProxy({ listener: { maxConnections: 100 }, routes: routes() }, { ulimitN: 64 });
      const { served, firstFailure } = await fillUp(child);
      const waiting = [firstFailure.socket];
      const results = [firstFailure.result === 'timeout' ? receives(firstFailure.socket, firstFailure.sent, 15000) : Promise.resolve('closed')];
      for (let i = 0; i < 2; i++) {
        const s = await connect(child.port);
        waiting.push(s);
        results.push(echoWithin(s, `late ${i}`, 15000));
      }
      await sleep(500);
      const closing = served.splice(0, 6);
      for (const s of closing) s.end();
      const outcome = await Promise.all(results);
      const m = await child.call('metrics');
      await child.call('stop');
      assert.deepStrictEqual(outcome, waiting.map(() => 'ok'),
        `connections at the limit: ${outcome.join(', ')} (upstreamConnectFailures ${m.upstreamConnectFailures}, acceptPauses ${m.acceptPauses})`);
      assert.strictEqual(m.upstreamConnectFailures, 0);
    });
  });
});
