'use strict';
// Memory per idle connection (issue 16): what an idle connection holds on the heap, held to a
// budget so that it cannot grow back unnoticed. No timing is measured.
//
// The proxy runs in a process of its own (fixtures/proxy-child.js, one worker), and so do the
// clients and origins (fixtures/idle-peers.js): the heap measured holds nothing of theirs, nor
// anything earlier tests left in mocha's process (after tls.spec.js had run in the same process,
// the figure came out 1.1 KiB higher). N
// connections are opened (passthrough: a TLS handshake with the origin, through the proxy;
// terminated: with the proxy, which holds a plain connection to the origin), waited for until
// every one is relaying and idle, and closed again: that first round brings every pool, table
// and arena to its size for N. The second round then measures what the N idle connections add
// to the bytes the C allocator has handed out in the proxy's process (binding._heapInUse:
// glibc's mallinfo2, every arena), less what the worker's read-buffer pool keeps spare (up to 4 MiB, shared by all
// connections and not held by any: _stopReport's spareBufferBytes), divided by N.
//
// Measured this way on issue 16's branch: passthrough 1,145 bytes (about 1,450 before: a libuv
// timer per connection, the dial's connect request kept for the connection's life, wider flow
// fields), terminated 16,140 (about 16,680 before; some 14,200 of it is OpenSSL's, whose SSL
// object alone is 7,624). Each budget sits above its figure by less than what the branch saved
// (so going back fails), and far below what an idle connection must never hold: a read buffer
// (64 KiB by default), the ClientHello context (39 KiB), OpenSSL's record buffers (17 KiB each).
// Then (2026-12-03) 32-bit flow counts and flag bits, the record's small fields packed and the TCP
// upstream handle sized to its uv_tcp_t: passthrough 1,092 (1,172 the commit before), terminated
// 16,056–16,071 (16,135); then the setup-only fields out of the record (lg_setup_t, freed when
// the connection relays): passthrough 1,012, terminated 15,999; then no pointer back from the
// relay, the decision and the tunnel sharing a word, the upstream TLS in its side context and the
// upstream socket nothing but its handle: passthrough 963, terminated 15,958; then (2026-12-04)
// nothing kept that can be derived (the reap list on the live list's links, the admission's key
// rebuilt from the peer, a flow's destination from the other flow, the relay's counters by
// listener index): passthrough 916, terminated 15,825. The budgets moved down with them, again by
// less than the saving. Then a TLS 1.3 connection's records left OpenSSL after the handshake
// (src/lg_rec.c; the SSL object, its session, cipher list and certificate table are freed, two
// AEAD contexts and the secrets kept): terminated 3,711 (15,825 the commit before). Its budget
// is 4,500, so the connections kept on OpenSSL (TLS 1.2 here would be ~16 KB) cannot come back
// unseen. Issue 16's passthrough goal (1 KiB of RSS) is reached (bench S3); lower the budgets as
// they are.
//
// The sanitizer build's allocator is not glibc's: the figures would be meaningless there, so
// the suite is skipped in it (the binding has `_faults` only in that build).
const assert = require('assert');
const binding = require('../lib/binding');
const { tcp, cleanup } = require('./helpers/proxy');
const { spawnFixture, startChildProxy } = require('./helpers/child');
const { getCerts } = require('./helpers/certs');
const { sleep } = require('./helpers/wait');

const N = 500; // idle connections measured
const CONCURRENCY = 50; // handshakes in flight at once while opening them
const BUDGET = { passthrough: 945, terminated: 4500 }; // heap bytes per idle connection

describe('memory per idle connection (issue 16)', function () {
  this.timeout(120000);

  before(function () {
    if (binding._faults) this.skip(); // the ASan build's allocator: glibc's figures mean nothing
    // Elsewhere (glibc here) the probe must work: a failed lookup must fail, not skip, the suite.
    assert.ok(binding._heapInUse() > 0, `binding._heapInUse() = ${binding._heapInUse()}: mallinfo2/mallinfo not found`);
  });
  afterEach(cleanup);

  /** Heap bytes per idle connection of `mode`, and the proxy's figures while they were open. */
  async function perIdleConnection(mode) {
    const pki = getCerts();
    const leaf = pki.leaves['a.test'];
    const peers = spawnFixture('idle-peers.js', [JSON.stringify({ chain: leaf.chainPath, key: leaf.keyPath, ca: pki.caPath })]);
    const { ports } = await peers.waitMessage((m) => m.ports !== undefined);
    const term = mode === 'terminated';
    const proxy = await startChildProxy({
      workerThreads: 1,
      listener: { idleTimeoutMs: 300000 },
      routes: [{
        sni: 'a.test',
        terminateTls: term,
        ...(term ? { cert: { certChain: leaf.chain.toString(), privateKey: leaf.key.toString() } } : {}),
        upstreams: [tcp(term ? ports.plain : ports.tls)],
      }],
    });
    const port = proxy.port;
    const report = async () => (await proxy.call('stopReport'))[0];
    const ask = async (msg, key) => {
      const k = peers.messages.length;
      peers.child.send(msg);
      return peers.waitMessage((m) => peers.messages.indexOf(m) >= k && m[key] !== undefined, 60000);
    };
    const relaying = async () => {
      const w = await report();
      return (w.states && w.states.relay) || 0;
    };
    const until = async (pred, what) => {
      for (let i = 0; i < 500 && !(await pred()); i++) await sleep(40);
      assert.ok(await pred(), `${mode}: ${what}: ${JSON.stringify(await report())}`);
    };
    const active = async () => (await proxy.call('metrics')).activeConnections;
    const round = async (measure) => {
      const heap0 = await proxy.call('heap');
      const r = await ask({ open: { port, servername: 'a.test', count: N, concurrency: CONCURRENCY } }, 'opened');
      assert.deepStrictEqual([r.opened, r.failed], [N, 0], `${mode}: ${r.error}`);
      await until(async () => (await relaying()) === N && (await active()) === N, 'every connection relaying');
      await sleep(300); // the last bytes of the handshakes (TLS 1.3 tickets) are written
      const heap1 = await proxy.call('heap');
      const m = await proxy.call('metrics');
      await ask({ close: true }, 'closed');
      await until(async () => (await active()) === 0 && (await report()).connections === 0, 'every connection gone');
      return measure ? { perConn: (heap1 - heap0) / N, buffersInUse: m.buffersInUse, spare: m.workers[0].spareBufferBytes } : null;
    };
    await round(false);
    return round(true);
  }

  it(`an idle passthrough connection holds at most ${BUDGET.passthrough} heap bytes`, async () => {
    const r = await perIdleConnection('passthrough');
    assert.strictEqual(r.buffersInUse, 0, 'idle connections hold no read buffer');
    // The buffers the handshakes were relayed through went back to the pool, which keeps them up
    // to its bound (64 buffers of readBufferSize 64 KiB, with their headers).
    assert.ok(r.spare > 0 && r.spare <= 64 * (65536 + 64), `spareBufferBytes ${r.spare}`);
    assert.ok(r.perConn <= BUDGET.passthrough, `${Math.round(r.perConn)} bytes per idle passthrough connection`);
  });

  it(`an idle terminated connection holds at most ${BUDGET.terminated} heap bytes`, async () => {
    const r = await perIdleConnection('terminated');
    assert.strictEqual(r.buffersInUse, 0, 'idle connections hold no read buffer');
    assert.ok(r.perConn <= BUDGET.terminated, `${Math.round(r.perConn)} bytes per idle terminated connection`);
  });
});
