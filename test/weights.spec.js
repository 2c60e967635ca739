'use strict';
// scheduler.weight from real sockets: one worker, bulk flows through real proxies from real
// origins that write as fast as their sockets take, clients reading everything. The proxy is made
// the bottleneck with scheduler.rate (8 MB/s, a 64 KiB burst), so every flow stays backlogged and the share each
// weight gets is what the scheduler decides, not what this process's sockets manage. What is
// compared is the share of the bytes received in the same window by flows of weight 1 and 3
// (never a speed); with weights ignored the ratio is 1 and these tests fail. The exact bound is
// checked on the pure scheduler in test/c/test_drr.c (test_weighted_shares, test_weighted_pacing).

const assert = require('assert');
const { Proxy } = require('..');
const { startTcpServer } = require('./helpers/servers');
const { buildClientHello } = require('./helpers/hello');
const { createProxy, startProxy, route, portOf, connect, cleanup } = require('./helpers/proxy');

const KiB = 1024;
const RATE = 8 * 1000 * 1000; // bytes/s: far below what one worker (ASan build included) and this process can move
const BURST = 64 * 1024; // bytes: small, so the pacing holds from the first window on (the default is one second of rate)
const FLOWS = 3; // per weight
const chunk = Buffer.alloc(64 * KiB, 0x62);

/** An origin that writes 64 KiB chunks as fast as the socket takes them, until closed. */
function startBulkOrigin() {
  return startTcpServer((socket) => {
    socket.on('data', () => {}); // the client's first bytes (a ClientHello, or 'x')
    const pump = () => { while (!socket.destroyed && socket.write(chunk)); };
    socket.on('drain', pump);
    pump();
  }, { record: false });
}

/** One bulk flow: connect to `port`, send `first`, count what arrives. */
async function flow(port, first) {
  const s = await connect(port);
  const f = { socket: s, bytes: 0 };
  s.on('data', (d) => { f.bytes += d.length; });
  s.on('error', () => {});
  s.write(first);
  return f;
}

/** FLOWS bulk flows to `port`, each sending `first()` first. */
async function open(port, first) {
  const out = [];
  for (let i = 0; i < FLOWS; i++) out.push(await flow(port, first()));
  return out;
}

const hello = (sni) => () => buildClientHello({ sni });
const raw = () => 'x'; // not TLS: the '' route

const sleep = (ms) => new Promise((r) => setTimeout(r, ms));
const sum = (xs) => xs.reduce((a, b) => a + b, 0);

/**
 * Bytes each flow of `light` and `heavy` received over the same window, once they have all run
 * for a while (the pacing burst spent, every queue full).
 */
async function window(light, heavy, ms = 2500) {
  await sleep(600);
  const all = [...light, ...heavy];
  const start = all.map((f) => f.bytes);
  await sleep(ms);
  const got = all.map((f, i) => f.bytes - start[i]);
  return { light: got.slice(0, light.length), heavy: got.slice(light.length) };
}

/** The heavy flows got 3 times the light ones' bytes (±15 %), and each heavy flow more than each light one. */
function assertThreeToOne({ light, heavy }) {
  const what = `weight 1: ${light.join(', ')}; weight 3: ${heavy.join(', ')}`;
  assert.ok(Math.min(...light) > 0, `a flow of weight 1 got nothing (${what})`);
  const ratio = sum(heavy) / sum(light);
  assert.ok(ratio > 2.55 && ratio < 3.45, `bytes weight 3 / weight 1 = ${ratio.toFixed(2)}, expected 3 (${what})`);
  assert.ok(Math.min(...heavy) > Math.max(...light), `some flow of weight 3 got less than one of weight 1 (${what})`);
}

const closeAll = (flows) => { for (const f of flows) f.socket.destroy(); };

describe('scheduler.weight: shares in proportion to the weights', function () {
  this.timeout(60000);
  afterEach(cleanup);

  it('routes of weights 1 and 3 on one worker get 1:3 of the bytes; updateConfig gives new connections the new weights', async () => {
    const origin = await startBulkOrigin();
    const routes = (wa, wb) => [
      { ...route('a.test', origin.port), scheduler: { weight: wa } },
      { ...route('b.test', origin.port), scheduler: { weight: wb } },
    ];
    const proxy = await startProxy({ workerThreads: 1, scheduler: { rate: RATE, burst: BURST }, routes: routes(1, 3) });
    const port = portOf(proxy);
    let a = await open(port, hello('a.test'));
    let b = await open(port, hello('b.test'));
    assertThreeToOne(await window(a, b));

    // Swapped: connections routed from now on take the new weights (open ones keep theirs, so
    // they are closed first and the window sees only new connections).
    proxy.updateConfig({ routes: routes(3, 1) });
    closeAll([...a, ...b]);
    a = await open(port, hello('a.test'));
    b = await open(port, hello('b.test'));
    assertThreeToOne(await window(b, a));
    closeAll([...a, ...b]);
  });

  it('listeners of weights 1 and 3 on one worker get 1:3 of the bytes (a route without a weight takes its listener\'s)', async () => {
    const origin = await startBulkOrigin();
    const proxy = await startProxy({
      workerThreads: 1,
      scheduler: { rate: RATE, burst: BURST },
      listeners: [{ scheduler: { weight: 1 } }, { scheduler: { weight: 3 } }],
      routes: [route('', origin.port)],
    });
    const light = await open(portOf(proxy, 0), raw);
    const heavy = await open(portOf(proxy, 1), raw);
    assertThreeToOne(await window(light, heavy));
    closeAll([...light, ...heavy]);
  });

  it('a route\'s weight wins over its listener\'s', async () => {
    const origin = await startBulkOrigin();
    const proxy = await startProxy({
      workerThreads: 1,
      scheduler: { rate: RATE, burst: BURST },
      listener: { scheduler: { weight: 3 } },
      routes: [{ ...route('a.test', origin.port), scheduler: { weight: 1 } }, route('b.test', origin.port)],
    });
    const light = await open(portOf(proxy), hello('a.test'));
    const heavy = await open(portOf(proxy), hello('b.test'));
    assertThreeToOne(await window(light, heavy));
    closeAll([...light, ...heavy]);
  });

  it('refuses a weight out of range, and any weight but 1 with scheduler.kind fifo, naming the path', async () => {
    const base = (extra) => ({ listeners: [{ host: '127.0.0.1', port: 0 }], routes: [{ sni: '', upstreams: [{ kind: 'tcp', host: '127.0.0.1', port: 1 }] }], ...extra });
    const refuses = (config, re) => assert.throws(() => new Proxy(config), (e) => e.code === 'ERR_LEGATO_CONFIG' && re.test(e.message), re.source);
    refuses(base({ routes: [{ sni: '', upstreams: [{ kind: 'tcp', host: '127.0.0.1', port: 1 }], scheduler: { weight: 65 } }] }), /^routes\[0\]\.scheduler\.weight must be an integer 1-64/);
    refuses(base({ listeners: [{ host: '127.0.0.1', port: 0, scheduler: { weight: 0 } }] }), /^listeners\[0\]\.scheduler\.weight must be an integer 1-64/);
    refuses(base({ listeners: [{ host: '127.0.0.1', port: 0, scheduler: { weight: 1.5 } }] }), /^listeners\[0\]\.scheduler\.weight/);
    refuses(base({ routes: [{ sni: '', upstreams: [{ kind: 'tcp', host: '127.0.0.1', port: 1 }], scheduler: { wieght: 2 } }] }), /^routes\[0\]\.scheduler: unknown option 'wieght'/);
    refuses(base({ scheduler: { kind: 'fifo' }, listeners: [{ host: '127.0.0.1', port: 0, scheduler: { weight: 2 } }] }), /^listeners\[0\]\.scheduler\.weight needs scheduler\.kind 'drr'/);
    refuses(base({ scheduler: { kind: 'fifo' }, routes: [{ sni: '', upstreams: [{ kind: 'tcp', host: '127.0.0.1', port: 1 }], scheduler: { weight: 3 } }] }), /^routes\[0\]\.scheduler\.weight needs scheduler\.kind 'drr'/);
    // Weight 1 (or none) is what fifo does anyway: accepted.
    createProxy({ scheduler: { kind: 'fifo' }, listener: { scheduler: { weight: 1 } }, routes: [{ ...route('', 1), scheduler: { weight: 1 } }] });
    // updateConfig: the same check against the running scheduler; the old table stays.
    const proxy = await startProxy({ workerThreads: 1, scheduler: { kind: 'fifo' }, routes: [route('', 1)] });
    assert.throws(() => proxy.updateConfig({ routes: [{ ...route('x.test', 1), scheduler: { weight: 2 } }, route('', 1)] }),
      (e) => e.code === 'ERR_LEGATO_CONFIG' && /^routes\[0\]\.scheduler\.weight needs scheduler\.kind 'drr'/.test(e.message));
    proxy.updateConfig({ routes: [{ ...route('x.test', 1), scheduler: { weight: 1 } }, route('', 1)] });
  });
});
