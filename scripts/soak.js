#!/usr/bin/env node
'use strict';
// Soak (issue 14, "In CI"): mixed traffic through one proxy for a while, then check that it is
// back where it started.
//
//   npm run soak                     180 s
//   npm run soak -- --seconds 20     (LEGATO_SOAK_SECONDS works too; .ci/run uses a short run)
//
// Traffic, from `--clients` (40) concurrent loops, each connection a random kind:
//   pass      TLS passthrough by SNI (default.test) to a TLS echo origin, verified end to end
//   term      TLS terminated by the proxy (a.test), plaintext echo upstream
//   suspend   a suspended route (x.b.test): JS decides, passthrough to a TLS echo origin
//   connect   HTTP CONNECT to a plain echo target on a connect listener
//   fail      a route whose upstream refuses (expected to fail: counted apart)
// Each connection echoes 1-64 KiB in one or two rounds and checks every byte; 5 % of them are
// reset by the client halfway (expected). Meanwhile updateConfig() swaps the route table every
// 100 ms, and every 15 s a second proxy is started, given open connections, and stopped with
// graceMs 200 (it must resolve, and warn LEGATO_STOP_SLOW never).
//
// At the end: no unexpected failure, activeConnections 0, configGenerationsLive 1, descriptors
// of this process back to the baseline (+ 8), RSS at most 64 MiB above its plateau under load
// (taken a quarter into the run). Exit code 0 or 1, with a
// JSON summary on stdout.

const crypto = require('crypto');
const fs = require('fs');
const net = require('net');
const path = require('path');
const tls = require('tls');
const { Proxy } = require(path.join(__dirname, '..'));
const { getCerts } = require(path.join(__dirname, '..', 'test', 'helpers', 'certs'));

function arg(name, env, dflt) {
  const i = process.argv.indexOf(`--${name}`);
  if (i > 0 && process.argv[i + 1] !== undefined) return Number(process.argv[i + 1]);
  if (process.env[env]) return Number(process.env[env]);
  return dflt;
}
const SECONDS = arg('seconds', 'LEGATO_SOAK_SECONDS', 180);
const CLIENTS = arg('clients', 'LEGATO_SOAK_CLIENTS', 40);
const CYCLE_MS = arg('cycle-ms', 'LEGATO_SOAK_CYCLE_MS', 15000);
const sleep = (ms) => new Promise((r) => setTimeout(r, ms));
const fds = () => fs.readdirSync('/proc/self/fd').length;
const MiB = 1024 * 1024;

const stats = { ok: {}, expectedFail: 0, resets: 0, unexpected: [], swaps: 0, swapErrors: 0, cycles: 0, slowStops: 0 };
const bump = (kind) => { stats.ok[kind] = (stats.ok[kind] || 0) + 1; };
const T0 = Date.now();
function unexpected(kind, err) {
  stats.unexpected.push(`${kind} at ${((Date.now() - T0) / 1000).toFixed(1)} s: ${err && err.message ? err.message : err}`);
  if (stats.unexpected.length <= 5) process.stderr.write(`soak: unexpected ${kind} failure: ${err && err.message ? err.message : err}\n`);
}

function echoServer(options) {
  const sockets = new Set();
  const onConn = (s) => { sockets.add(s); s.on('error', () => {}); s.on('close', () => sockets.delete(s)); s.pipe(s); };
  const server = options ? tls.createServer(options, onConn) : net.createServer(onConn);
  return new Promise((resolve) => server.listen(0, '127.0.0.1', () => resolve({
    server, port: server.address().port,
    close: () => { for (const s of sockets) s.destroy(); return new Promise((r) => server.close(() => r())); },
  })));
}

/** A port nothing listens on (an upstream that refuses). */
async function refusedPort() {
  const s = net.createServer();
  await new Promise((r) => s.listen(0, '127.0.0.1', r));
  const { port } = s.address();
  await new Promise((r) => s.close(r));
  return port;
}

/** Echo `payload` over an open stream in `rounds`; resets halfway when `reset`. */
function exchange(sock, payload, rounds, reset) {
  return new Promise((resolve, reject) => {
    const parts = rounds === 2 ? [payload.subarray(0, payload.length >> 1), payload.subarray(payload.length >> 1)] : [payload];
    let idx = 0;
    let got = [];
    let n = 0;
    const timer = setTimeout(() => done(new Error(`echo timed out (round ${idx}, ${n} bytes)`)), 20000);
    function done(err) {
      clearTimeout(timer);
      sock.removeAllListeners('data');
      if (err) { sock.destroy(); reject(err); } else resolve();
    }
    sock.on('error', (e) => done(e));
    sock.on('close', () => { if (idx < parts.length) done(new Error(`closed in round ${idx} after ${n} bytes`)); });
    sock.on('data', (d) => {
      got.push(d);
      n += d.length;
      if (reset && n > 0) { idx = parts.length; clearTimeout(timer); sock.destroy(); resolve('reset'); return; }
      if (n < parts[idx].length) return;
      const all = Buffer.concat(got);
      if (!all.equals(parts[idx])) { done(new Error(`echo mismatch in round ${idx}`)); return; }
      idx++;
      got = [];
      n = 0;
      if (idx === parts.length) { sock.end(); done(null); } else sock.write(parts[idx]);
    });
    sock.write(parts[0]);
  });
}

function openTls(port, servername, ca) {
  return new Promise((resolve, reject) => {
    const s = tls.connect({ port, host: '127.0.0.1', servername, ca });
    s.once('secureConnect', () => { s.removeListener('error', reject); resolve(s); });
    s.once('error', reject);
  });
}

function openConnect(port, target) {
  return new Promise((resolve, reject) => {
    const s = net.connect(port, '127.0.0.1');
    let head = Buffer.alloc(0);
    s.once('error', reject);
    s.on('connect', () => s.write(`CONNECT ${target} HTTP/1.1\r\nHost: ${target}\r\n\r\n`));
    const onData = (d) => {
      head = Buffer.concat([head, d]);
      const end = head.indexOf('\r\n\r\n');
      if (end < 0) return;
      s.removeListener('data', onData);
      s.removeListener('error', reject);
      if (!head.toString('latin1').startsWith('HTTP/1.1 200 ')) { s.destroy(); reject(new Error(`CONNECT answered ${head.toString('latin1').split('\r\n')[0]}`)); return; }
      resolve(s);
    };
    s.on('data', onData);
  });
}

async function main() {
  const pki = getCerts();
  const leaf = (n) => ({ certChain: pki.leaves[n].chain, privateKey: pki.leaves[n].key });
  const plain = await echoServer(null);
  const tlsDefault = await echoServer({ cert: pki.leaves['default.test'].chain, key: pki.leaves['default.test'].key });
  const tlsB = await echoServer({ cert: pki.leaves['*.b.test'].chain, key: pki.leaves['*.b.test'].key });
  const refused = await refusedPort();
  const tcp = (port) => ({ kind: 'tcp', host: '127.0.0.1', port });
  const routes = (gen) => [
    { sni: 'default.test', upstreams: [tcp(tlsDefault.port)] },
    { sni: 'a.test', terminateTls: true, cert: leaf('a.test'), upstreams: [tcp(plain.port)] },
    { sni: 'x.b.test', suspended: true, upstreams: [] },
    { sni: 'fail.test', upstreams: [tcp(refused)], connectTimeoutMs: 2000, retries: 0 },
    { sni: `gen${gen}.test`, upstreams: [tcp(plain.port)] }, // makes every swap a new table
  ];
  const config = (gen) => ({
    workerThreads: 2,
    routes: routes(gen),
    listeners: [
      { host: '127.0.0.1', port: 0 },
      { kind: 'connect', host: '127.0.0.1', port: 0, connect: { allowPorts: [plain.port], denyCidrs: [] } },
    ],
  });
  const attach = (p) => {
    p.on('suspended', (c) => p.resolveConnection(c.id, { upstreams: [tcp(tlsB.port)], terminateTls: false }));
    p.on('error', (e) => unexpected('proxy error event', e));
    p.on('warning', (w) => { if (w.code === 'LEGATO_STOP_SLOW') { stats.slowStops++; unexpected('stop', w); } });
  };
  const proxy = new Proxy(config(0));
  attach(proxy);
  await proxy.start();
  const [tlsPort, connectPort] = proxy.addresses().map((a) => a.port);

  const KINDS = ['pass', 'term', 'suspend', 'connect', 'fail'];
  async function one(ports) {
    const kind = KINDS[crypto.randomInt(KINDS.length)];
    const payload = crypto.randomBytes(1024 + crypto.randomInt(63 * 1024));
    const reset = crypto.randomInt(100) < 5;
    let sock;
    try {
      if (kind === 'pass') sock = await openTls(ports.tls, 'default.test', pki.ca);
      else if (kind === 'term') sock = await openTls(ports.tls, 'a.test', pki.ca);
      else if (kind === 'suspend') sock = await openTls(ports.tls, 'x.b.test', pki.ca);
      else if (kind === 'fail') sock = await openTls(ports.tls, 'fail.test', pki.ca);
      else sock = await openConnect(ports.connect, `127.0.0.1:${plain.port}`);
      const r = await exchange(sock, payload, 1 + crypto.randomInt(2), reset);
      if (r === 'reset') stats.resets++;
      else if (kind === 'fail') unexpected(kind, new Error('a refused upstream echoed'));
      else bump(kind);
    } catch (err) {
      if (sock) sock.destroy();
      if (kind === 'fail') stats.expectedFail++;
      else unexpected(kind, err);
    }
  }

  // Warm up, then take the baseline.
  for (let i = 0; i < 20; i++) await one({ tls: tlsPort, connect: connectPort });
  await sleep(500);
  const base = { fds: fds(), rss: process.memoryUsage.rss() };
  const end = Date.now() + SECONDS * 1000;
  let running = true;

  const loops = Array.from({ length: CLIENTS }, async () => {
    while (running) await one({ tls: tlsPort, connect: connectPort });
  });
  const swapper = (async () => {
    let gen = 1;
    while (running) {
      try { proxy.updateConfig({ routes: routes(gen++) }); stats.swaps++; } catch (e) { stats.swapErrors++; unexpected('swap', e); }
      await sleep(100);
    }
  })();
  const cycler = (async () => {
    while (running) {
      for (let t = 0; t < CYCLE_MS / 100 && running; t++) await sleep(100);
      process.stderr.write(`soak: start/stop cycle at ${((Date.now() - T0) / 1000).toFixed(1)} s\n`);
      if (!running) break;
      const p = new Proxy(config(0));
      attach(p);
      await p.start();
      const [t2, c2] = p.addresses().map((a) => a.port);
      const open = await Promise.all(Array.from({ length: 10 }, (_, i) => (i % 2 ? openConnect(c2, `127.0.0.1:${plain.port}`) : openTls(t2, 'a.test', pki.ca)).catch((e) => { unexpected('cycle open', e); return null; })));
      // And one busy exchange on each of a few more, still running when the stop begins (a stop
      // may cut them: not counted).
      const busy = await Promise.all(Array.from({ length: 4 }, () => openTls(t2, 'a.test', pki.ca).catch(() => null)));
      const busyDone = busy.map((s) => (s ? exchange(s, crypto.randomBytes(256 * 1024), 2, false).catch(() => null) : null));
      const t0 = Date.now();
      const stopped = p.stop({ graceMs: 200 });
      await Promise.race([stopped, sleep(30000)]);
      if (Date.now() - t0 >= 30000) unexpected('cycle', new Error('stop({ graceMs: 200 }) did not resolve within 30 s'));
      for (const s of open) if (s) s.destroy();
      await Promise.allSettled(busyDone);
      stats.cycles++;
    }
  })();

  // RSS is judged against the plateau under load (a quarter into the run: allocator arenas,
  // TLS and client buffers of this process grown), not the idle start.
  let plateauRss = null;
  const plateauAt = Date.now() + (SECONDS * 1000) / 4;
  while (Date.now() < end && stats.unexpected.length < 50) {
    await sleep(250);
    if (plateauRss === null && Date.now() >= plateauAt) {
      if (global.gc) global.gc();
      plateauRss = process.memoryUsage.rss();
    }
  }
  if (plateauRss === null) plateauRss = process.memoryUsage.rss();
  running = false;
  await Promise.all([...loops, swapper, cycler]);
  const quiet = Date.now() + 15000;
  let m = proxy.metrics();
  while (Date.now() < quiet && (m.activeConnections !== 0 || m.configGenerationsLive !== 1)) {
    await sleep(100);
    m = proxy.metrics();
  }
  if (global.gc) global.gc();
  await sleep(500);
  const after = { fds: fds(), rss: process.memoryUsage.rss() };
  const problems = [...stats.unexpected.slice(0, 20)];
  if (stats.unexpected.length > 20) problems.push(`... ${stats.unexpected.length - 20} more`);
  if (m.activeConnections !== 0) problems.push(`activeConnections ${m.activeConnections} at the end`);
  if (m.configGenerationsLive !== 1) problems.push(`configGenerationsLive ${m.configGenerationsLive} at the end`);
  if (after.fds > base.fds + 8) problems.push(`descriptors ${base.fds} → ${after.fds}`);
  if (after.rss - plateauRss > 64 * MiB) problems.push(`RSS grew ${((after.rss - plateauRss) / MiB).toFixed(1)} MiB after the plateau`);
  await proxy.stop({ graceMs: 0 });
  await Promise.all([plain.close(), tlsDefault.close(), tlsB.close()]);
  const summary = {
    seconds: SECONDS, clients: CLIENTS, served: stats.ok, expectedFailures: stats.expectedFail, clientResets: stats.resets,
    swaps: stats.swaps, startStopCycles: stats.cycles, unexpectedFailures: stats.unexpected.length,
    fds: [base.fds, after.fds], rssMiB: [base.rss / MiB, plateauRss / MiB, after.rss / MiB].map((x) => Math.round(x)),
    totalConnections: m.totalConnections, upstreamConnectFailures: m.upstreamConnectFailures, problems,
  };
  process.stdout.write(`${JSON.stringify(summary, null, 2)}\n`);
  process.exitCode = problems.length === 0 ? 0 : 1;
}

main().catch((err) => { process.stderr.write(`soak: ${err.stack || err}\n`); process.exitCode = 1; });
