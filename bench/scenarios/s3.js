'use strict';
// S3 — idle memory: RSS growth of the proxy process per idle connection, passthrough and
// terminated.
//
// A separate client process (bench/tools/idle-client.js, on the load CPU) opens N TLS
// connections (default 5,000) through the proxy, from 127.0.0.2–127.0.0.11 round-robin
// (localAddress, so no source address runs out of ephemeral ports), completes every TLS
// handshake, then leaves them idle. Passthrough: the handshake is with the HTTPS origin, through
// the proxy. Terminated: with the proxy itself (ECDSA P-256, S2's configuration), which then holds
// a plaintext connection to the origin's HTTP port. Per connection = (RSS after − RSS before) / N,
// where "before" is measured after a warm-up of 64 connections opened and closed.

const { goalLines } = require('../lib/goals');
const path = require('path');
const { startHttpsOrigin } = require('../lib/origin');
const { spawnTracked, waitForOutput, stopChild } = require('../lib/procs');
const { sleep } = require('../lib/util');

const TOOLS = path.join(__dirname, '..', 'tools');
const SNI = 'a.bench.test';
const SOURCES = Array.from({ length: 10 }, (_, i) => `127.0.0.${i + 2}`);
const KiB = 1024;

async function openIdle(ctx, port, count, hold, cpus, request) {
  const child = spawnTracked(process.execPath, [path.join(TOOLS, 'idle-client.js'),
    JSON.stringify({ port, sni: SNI, count, sources: SOURCES, concurrency: 100, hold, request })], { cpus, name: 'idle-client' });
  const m = await waitForOutput(child, /open (\{.*\})\n/, 180000);
  return { child, result: JSON.parse(m[1]) };
}

module.exports = {
  id: 'S3',
  title: 'idle memory: RSS growth per idle connection',
  mode: 'sni',
  peers: ['legato', 'node', 'haproxy', 'nginx'],
  threadVariants: true, // BENCH_THREADS=1,4: the same idle connections over 4 workers (issue 16's scale point)
  columns: [
    { key: 'kibPerConn', title: 'KiB/conn', ratio: true, fmt: (x) => x.toFixed(2) },
    { key: 'rssBeforeMiB', title: 'RSS before MiB' },
    { key: 'rssAfterMiB', title: 'RSS after MiB' },
    { key: 'open', title: 'open conns' },
    { key: 'fdsPerConn', title: 'fds/conn' },
    { key: 'openSeconds', title: 'open time s' },
  ],
  notes: (ctx) => [
    `${ctx.opt.idleConns} TLS connections held idle after a full handshake (passthrough: with the origin, through the proxy; terminated: with the proxy), and in the *after one 1 KiB request* cases after one keep-alive GET /1k answered on each; RSS from /proc/<pid>/stat of the proxy process (and its children for nginx), kernel socket buffers not included. ` +
    'fds/conn counts the proxy\'s open file descriptors added per connection (2 = client + upstream socket) as a check that every connection really is held.',
  ],
  async setup(ctx) {
    return { origin: await startHttpsOrigin(ctx, ctx.cpuPlan(1).load) };
  },
  cases: (ctx) => [
    { id: 'passthrough', label: `passthrough, ${ctx.opt.idleConns} idle connections`, ratioKeys: ['kibPerConn'] },
    { id: 'terminated', label: `terminated (ECDSA), ${ctx.opt.idleConns} idle connections`, mode: 'terminate', ratioKeys: ['kibPerConn'] },
    // The same after one 1 KiB request on each connection: what a connection keeps once it has
    // carried data (buffers, record state), as a browser's connection between two pages.
    { id: 'passthrough-req', label: `passthrough, ${ctx.opt.idleConns} idle connections after one 1 KiB request`, request: '/1k', ratioKeys: ['kibPerConn'] },
    { id: 'terminated-req', label: `terminated (ECDSA), ${ctx.opt.idleConns} idle connections after one 1 KiB request`, mode: 'terminate', request: '/1k', ratioKeys: ['kibPerConn'] },
  ],
  spec: (ctx, env, kase) => {
    const port = kase.mode === 'terminate' ? env.origin.plainPort : env.origin.port;
    return {
      mode: kase.mode || 'sni',
      cert: ctx.certs.ecdsa,
      routes: [
        { sni: SNI, host: '127.0.0.1', port },
        { sni: '*.bench.test', host: '127.0.0.1', port },
        { sni: '', host: '127.0.0.1', port },
      ],
    };
  },
  async measure(ctx, env, kase, h, info) {
    const n = ctx.opt.idleConns;
    const load = info.plan.load;
    // Warm-up: 64 connections through the proxy, closed again (first-use allocations, JIT).
    const warm = await openIdle(ctx, h.port, 64, false, load, kase.request);
    await stopChild(warm.child, 2000);
    await sleep(1000);
    const rss0 = h.rss();
    const fds0 = h.fds();
    let client = null;
    try {
      const t0 = Date.now();
      const opened = await openIdle(ctx, h.port, n, true, load, kase.request);
      client = opened.child;
      const openSeconds = (Date.now() - t0) / 1000;
      await sleep(1500); // let every relay settle into its idle state
      const rss1 = h.rss();
      const fds1 = h.fds();
      const st = await h.stats();
      const m = {
        open: opened.result.open,
        failed: opened.result.failed,
        openSeconds,
        rssBeforeMiB: rss0 / 2 ** 20,
        rssAfterMiB: rss1 / 2 ** 20,
        kibPerConn: (rss1 - rss0) / n / KiB,
        fdsPerConn: (fds1 - fds0) / n,
        warnings: [],
      };
      if (st && st.workers) {
        m.legato = {
          activeConnections: st.activeConnections,
          readBuffersInUse: st.workers.reduce((a, w) => a + w.readBuffersInUse, 0),
          helloBuffersInUse: st.workers.reduce((a, w) => a + w.helloBuffersInUse, 0),
          connections: st.workers.reduce((a, w) => a + w.connections, 0),
        };
        if (st.activeConnections !== n) m.warnings.push(`legato reports ${st.activeConnections} active connections, expected ${n}`);
        if (m.legato.readBuffersInUse > 0 || m.legato.helloBuffersInUse > 0) {
          m.warnings.push(`idle legato holds ${m.legato.readBuffersInUse} read and ${m.legato.helloBuffersInUse} hello buffers`);
        }
      } else if (st && st.active !== undefined) {
        m.node = { active: st.active };
        if (st.active !== n) m.warnings.push(`Node proxy reports ${st.active} active connections, expected ${n}`);
      }
      const other = Object.entries(opened.result.protocols || {}).filter(([p]) => p !== 'TLSv1.3');
      if (other.length) m.warnings.push(`negotiated ${other.map(([p, k]) => `${p} ${k} times`).join(', ')}, not TLSv1.3`);
      if (opened.result.open !== n) m.warnings.push(`only ${opened.result.open} of ${n} connections open (${opened.result.failed} failed: ${opened.result.firstError})`);
      if (Math.abs(m.fdsPerConn - 2) > 0.05) m.warnings.push(`proxy holds ${m.fdsPerConn.toFixed(2)} fds per connection, expected 2`);
      return m;
    } finally {
      if (client) await stopChild(client, 3000);
    }
  },
  /** Issue 16's goals for idle memory beside the medians of this run. */
  goals: (sc) => goalLines(sc, 'S3 goals (issue 16), medians', [
    { what: 'idle passthrough connection: bytes of RSS', caseId: 'passthrough', key: 'kibPerConn', scale: KiB, digits: 0, goal: 1024, atMost: true },
    { what: 'idle terminated connection: bytes of RSS', caseId: 'terminated', key: 'kibPerConn', scale: KiB, digits: 0, goal: 12288, atMost: true },
    // The issue's goals are for silent clients; the same bounds beside the after-a-request cases.
    { what: 'same, passthrough after one request', caseId: 'passthrough-req', key: 'kibPerConn', scale: KiB, digits: 0, goal: 1024, atMost: true },
    { what: 'same, terminated after one request', caseId: 'terminated-req', key: 'kibPerConn', scale: KiB, digits: 0, goal: 12288, atMost: true },
  ]),
  brief: (m) => `${m.open} open in ${m.openSeconds.toFixed(1)} s, RSS ${m.rssBeforeMiB.toFixed(1)} → ${m.rssAfterMiB.toFixed(1)} MiB = ${m.kibPerConn.toFixed(2)} KiB/conn, ${m.fdsPerConn.toFixed(2)} fds/conn${m.legato ? `, legato buffers read ${m.legato.readBuffersInUse} hello ${m.legato.helloBuffersInUse}` : ''}`,
  async teardown(ctx, env) {
    if (env && env.origin) await env.origin.stop();
  },
};
