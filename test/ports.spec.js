'use strict';
// Who may listen on an address (issue 15 items 4 and 6), always with real sockets and real
// processes:
//
//   exclusive   a second process on the same address and port fails with EADDRINUSE naming the
//               address (as nginx and squid do), unless every side says reusePort: 'share',
//               in which case both accept; the option is validated with its path
//   hand-over   start({ takeOver }) in one process: the new engine accepts on the same sockets,
//               the old one stops, and a client connecting continuously meanwhile sees no
//               refused or failed connection, whether the workers grow or shrink; `legato
//               serve` does this on a reload that changes workerThreads and a listener option

const assert = require('assert');
const { Proxy } = require('..');
const { portOf, cleanup, track } = require('./helpers/proxy');
const { waitFor } = require('./helpers/wait');
const { spawnCli, request, startConnectProxy, closedPort: freePort } = require('./helpers/connect');
const { tempDir, writeFile, startServe, httpRequest } = require('./helpers/serve');

/** The 403 body for CONNECT 127.0.0.1:9 with allowPorts [443] (default deny list). */
const PORT_REFUSED = 'port 9 is not allowed (allowPorts; --allow-port 9 allows it)\n';
/** ... and with allowPorts [9]: the address is then what refuses it. */
const ADDRESS_REFUSED = '127.0.0.1 is in a denied range (denyCidrs 127.0.0.0/8; --allow-cidr 127.0.0.1 allows it)\n';

/**
 * Clients that connect continuously (`parallel` loops of one CONNECT each, answered 403 by the
 * policy, so nothing is dialled): counts the replies by body, and every connection that was
 * refused, reset, or closed without a complete 403.
 */
function clientLoop(port, parallel = 4) {
  const state = { bodies: new Map(), failures: [], done: 0, stop: false };
  const one = async () => {
    while (!state.stop) {
      try {
        const r = await request(port, 'CONNECT 127.0.0.1:9 HTTP/1.1\r\n\r\n');
        if (r.error || r.status !== 403 || !r.ended) {
          state.failures.push(r.error ? r.error.code || r.error.message : `status ${r.status} ended=${r.ended} ${JSON.stringify(r.text)}`);
        } else {
          state.bodies.set(r.body, (state.bodies.get(r.body) || 0) + 1);
        }
      } catch (err) {
        state.failures.push(err.code || err.message);
      }
      state.done++;
    }
  };
  const loops = Array.from({ length: parallel }, one);
  state.finish = async () => {
    state.stop = true;
    await Promise.all(loops);
    return state;
  };
  state.count = (body) => state.bodies.get(body) || 0;
  return state;
}

/** A config file for `legato serve` with one connect listener. */
function serveConfig(port, { workerThreads = 1, reusePort, allowPorts = [443], maxConnections = 100 } = {}) {
  const l = { kind: 'connect', host: '127.0.0.1', port, maxConnections, connect: { allowPorts } };
  if (reusePort) l.reusePort = reusePort;
  return { workerThreads, listeners: [l] };
}

describe('ports: exclusive by default, shared on request, handed over in a process', function () {
  this.timeout(60000);
  afterEach(cleanup);

  describe('a second process (issue 15 item 6)', () => {
    it('fails with EADDRINUSE naming the address when the first one holds it', async () => {
      const dir = tempDir();
      const port = await freePort();
      const first = await startServe([writeFile(dir, 'a.json', serveConfig(port))]);
      assert.strictEqual(first.ports[0], port);
      const second = spawnCli(['serve', writeFile(dir, 'b.json', serveConfig(port))]);
      const { code } = await second.exited;
      assert.strictEqual(code, 1, second.stderr());
      assert.match(second.stderr(), new RegExp(`cannot listen on 127\\.0\\.0\\.1:${port}: listen EADDRINUSE: address already in use 127\\.0\\.0\\.1:${port} \\(listeners\\[0\\]\\): another socket listens there .*listeners\\[0\\]\\.reusePort: 'share'`));
      // The forward-proxy CLI too.
      const cli = spawnCli(['--port', String(port)]);
      assert.strictEqual((await cli.exited).code, 1);
      assert.match(cli.stderr(), /EADDRINUSE/);
      assert.match(cli.stderr(), new RegExp(`127\\.0\\.0\\.1:${port}`));
      // The first still has every connection.
      const r = await request(port, 'CONNECT 127.0.0.1:9 HTTP/1.1\r\n\r\n');
      assert.strictEqual(r.body, PORT_REFUSED);
      first.child.kill('SIGTERM');
      assert.strictEqual((await first.exited).code, 0);
    });

    it('an engine in this process is refused an address another process holds (probe without SO_REUSEPORT)', async () => {
      const dir = tempDir();
      const port = await freePort();
      const other = await startServe([writeFile(dir, 'a.json', serveConfig(port))]);
      const p = track(new Proxy({ workerThreads: 1, listeners: [{ kind: 'connect', host: '127.0.0.1', port }] }), (x) => x.stop());
      await assert.rejects(p.start(), (err) => err.code === 'EADDRINUSE' && err.port === port && err.address === '127.0.0.1');
      // Nothing was left listening by the failed start: the other process answers alone.
      for (let i = 0; i < 10; i++) assert.strictEqual((await request(port, 'CONNECT 127.0.0.1:9 HTTP/1.1\r\n\r\n')).body, PORT_REFUSED);
      other.child.kill('SIGTERM');
      await other.exited;
    });

    it("with reusePort: 'share' on both, both accept; an exclusive one cannot join them", async () => {
      const dir = tempDir();
      const port = await freePort();
      const a = await startServe([writeFile(dir, 'a.json', serveConfig(port, { reusePort: 'share' }))]);
      const b = await startServe([writeFile(dir, 'b.json', serveConfig(port, { reusePort: 'share', allowPorts: [9] }))]);
      // The kernel spreads connections by a hash of the source port: 40 connections reach both
      // (all on one side: probability 2^-39).
      const seen = new Map();
      for (let i = 0; i < 40; i++) {
        const r = await request(port, 'CONNECT 127.0.0.1:9 HTTP/1.1\r\n\r\n');
        assert.strictEqual(r.status, 403);
        seen.set(r.body, (seen.get(r.body) || 0) + 1);
      }
      assert(seen.get(PORT_REFUSED) > 0 && seen.get(ADDRESS_REFUSED) > 0, `replies: ${JSON.stringify([...seen])}`);
      // A third that does not ask to share is refused.
      const c = spawnCli(['serve', writeFile(dir, 'c.json', serveConfig(port))]);
      assert.strictEqual((await c.exited).code, 1);
      assert.match(c.stderr(), /EADDRINUSE/);
      a.child.kill('SIGTERM');
      b.child.kill('SIGTERM');
      assert.strictEqual((await a.exited).code, 0);
      assert.strictEqual((await b.exited).code, 0);
    });

    it("reusePort is 'exclusive' or 'share', checked with its path; 'share' lets two proxies of this process share", async () => {
      assert.throws(() => new Proxy({ listeners: [{ kind: 'connect', port: 0, reusePort: 'yes' }] }),
        (err) => err instanceof RangeError && err.code === 'ERR_LEGATO_CONFIG' && err.message === "listeners[0].reusePort must be 'exclusive' or 'share'");
      assert.throws(() => new Proxy({ listeners: [{ kind: 'connect', port: 0, reusePort: true }] }),
        (err) => err instanceof TypeError && err.message === "listeners[0].reusePort must be 'exclusive' or 'share'");
      const port = await freePort();
      const shared = { host: '127.0.0.1', port, reusePort: 'share' };
      const a = await startConnectProxy({}, shared, { workerThreads: 1 });
      const b = await startConnectProxy({ allowPorts: [9] }, shared, { workerThreads: 1 });
      assert.strictEqual(portOf(b), port);
      await assert.rejects(startConnectProxy({}, { host: '127.0.0.1', port }, { workerThreads: 1 }), { code: 'EADDRINUSE' });
      await a.stop();
      assert.strictEqual((await request(port, 'CONNECT 127.0.0.1:9 HTTP/1.1\r\n\r\n')).body, ADDRESS_REFUSED);
    });
  });

  describe('hand-over in one process (issue 15 item 4)', () => {
    /** Run a hand-over from `fromTop` to `toTop` under continuous clients; returns the loop state. */
    async function handOver(fromWorkers, toWorkers) {
      const port = await freePort();
      const listener = (allowPorts, maxConnections) => ({ kind: 'connect', host: '127.0.0.1', port, maxConnections, connect: { allowPorts } });
      const old = track(new Proxy({ workerThreads: fromWorkers, listeners: [listener([443], 100)] }), (x) => x.stop());
      await old.start();
      const loop = clientLoop(port);
      await waitFor(() => loop.count(PORT_REFUSED) >= 50, 20000, { message: 'the old engine did not answer' });
      const fresh = track(new Proxy({ workerThreads: toWorkers, listeners: [listener([9], 200)] }), (x) => x.stop());
      await fresh.start({ takeOver: old });
      assert.deepStrictEqual(fresh.addresses(), old.addresses());
      const atHandOver = loop.count(PORT_REFUSED);
      // Both accept for a while; then the old one stops and drains.
      await waitFor(() => loop.count(ADDRESS_REFUSED) >= 20 && loop.count(PORT_REFUSED) > atHandOver, 20000, { message: 'both engines should accept during the overlap' });
      await old.stop({ graceMs: 2000 });
      const after = loop.count(ADDRESS_REFUSED);
      await waitFor(() => loop.count(ADDRESS_REFUSED) >= after + 100, 20000);
      const stoppedAt = loop.count(PORT_REFUSED);
      await waitFor(() => loop.count(ADDRESS_REFUSED) >= after + 200, 20000);
      const state = await loop.finish();
      assert.deepStrictEqual(state.failures, [], `${state.failures.length} of ${state.done} connections failed`);
      assert.strictEqual(loop.count(PORT_REFUSED), stoppedAt, 'the stopped engine answers nothing more');
      assert.strictEqual(fresh.metrics().listeners[0].status403, loop.count(ADDRESS_REFUSED));
      assert.strictEqual(fresh.metrics().workers.length, toWorkers);
      await fresh.stop();
      await assert.rejects(request(port, 'CONNECT 127.0.0.1:9 HTTP/1.1\r\n\r\n'), { code: 'ECONNREFUSED' });
    }

    it('from 2 workers to 3: no connection refused or failed, the new settings answer', () => handOver(2, 3));
    it('from 3 workers to 1 (the sockets of the workers gone are watched by the rest): no connection refused or failed', () => handOver(3, 1));

    it('takeOver must be a running Proxy; an address not taken over is still exclusive', async () => {
      const port = await freePort();
      const cfg = { workerThreads: 1, listeners: [{ kind: 'connect', host: '127.0.0.1', port }] };
      const running = track(new Proxy(cfg), (x) => x.stop());
      await running.start();
      const p1 = track(new Proxy(cfg), (x) => x.stop());
      await assert.rejects(p1.start({ takeOver: {} }), (err) => err instanceof TypeError && err.code === 'ERR_LEGATO_CONFIG');
      const idle = track(new Proxy({ ...cfg, listeners: [{ kind: 'connect', host: '127.0.0.1', port: 0 }] }), (x) => x.stop());
      const p2 = track(new Proxy(cfg), (x) => x.stop());
      await assert.rejects(p2.start({ takeOver: idle }), { code: 'ERR_LEGATO_STATE' });
      // Without takeOver, the same address is refused in this process.
      const p3 = track(new Proxy(cfg), (x) => x.stop());
      await assert.rejects(p3.start(), { code: 'EADDRINUSE' });
      // A second listener on another address is bound anew, the first taken over.
      const other = await freePort();
      const p4 = track(new Proxy({ workerThreads: 1, listeners: [cfg.listeners[0], { kind: 'connect', host: '127.0.0.1', port: other }] }), (x) => x.stop());
      await p4.start({ takeOver: running });
      assert.deepStrictEqual(p4.addresses().map((a) => a.port), [port, other]);
      await running.stop();
      assert.strictEqual((await request(port, 'CONNECT 127.0.0.1:9 HTTP/1.1\r\n\r\n')).status, 403);
      assert.strictEqual((await request(other, 'CONNECT 127.0.0.1:9 HTTP/1.1\r\n\r\n')).status, 403);
    });
  });

  describe('legato serve reload with new listeners or workers (issue 15 item 4)', () => {
    it('SIGHUP with a new workerThreads and connect.allowPorts: no connection refused or failed, the new settings in effect', async () => {
      const dir = tempDir();
      const port = await freePort();
      const file = writeFile(dir, 'legato.json', { ...serveConfig(port, { workerThreads: 1 }), admin: { port: 0 }, statusFile: 'status.json' });
      const h = await startServe([file], { admin: true });
      const loop = clientLoop(port);
      await waitFor(() => loop.count(PORT_REFUSED) >= 50, 20000, { message: 'serve did not answer' });
      writeFile(dir, 'legato.json', { ...serveConfig(port, { workerThreads: 2, allowPorts: [9], maxConnections: 50 }), admin: { port: 0 }, statusFile: 'status.json' });
      h.child.kill('SIGHUP');
      await h.waitLine(/^(?:\S+ )?legato: listeners handed over to a new engine \(listeners\[0\]\.maxConnections, listeners\[0\]\.connect, workerThreads\); the previous one finishes its connections within 5 s$/m);
      await waitFor(() => loop.count(ADDRESS_REFUSED) >= 300, 30000, { message: 'the new config did not answer', describe: () => h.stderr() });
      const state = await loop.finish();
      assert.deepStrictEqual(state.failures, [], `${state.failures.length} of ${state.done} connections failed`);
      // The new settings: two workers, maxConnections 50, in /metrics.json; the status file
      // says nothing needs a restart.
      const m = JSON.parse((await httpRequest(h.admin, '/metrics.json')).body);
      assert.strictEqual(m.workers.length, 2);
      const st = JSON.parse(require('fs').readFileSync(require('path').join(dir, 'status.json'), 'utf8'));
      assert.deepStrictEqual(st.restartNeeded, []);
      assert.deepStrictEqual(st.listeners, [{ kind: 'connect', host: '127.0.0.1', port }]);
      assert(!/failed|error/.test(h.stderr()), h.stderr());
      h.child.kill('SIGTERM');
      assert.strictEqual((await h.exited).code, 0);
    });
  });
});
