'use strict';
// T1 — one 1 GiB transfer: a single TCP connection pushes 1 GiB of random bytes through the
// proxy to a sink that replies with the byte count (checked). Raw TCP: legato and the Node peer
// route the non-TLS first bytes to their '' route; HAProxy and nginx run a plain TCP proxy.

const path = require('path');
const { startRawOrigin } = require('../lib/origin');
const { spawnTracked, waitForOutput, stopChild } = require('../lib/procs');

const GiB = 2 ** 30;
const TOOLS = path.join(__dirname, '..', 'tools');

module.exports = {
  id: 'T1',
  title: 'one 1 GiB transfer over one TCP connection',
  mode: 'raw',
  peers: ['direct', 'legato', 'legato-fifo', 'node', 'haproxy', 'nginx'],
  threadVariants: false,
  columns: [
    { key: 'mbps', title: 'MB/s' },
    { key: 'seconds', title: 'seconds' },
    { key: 'cpuPct', title: 'proxy CPU %' },
    { key: 'sPerGiB', title: 'CPU s/GiB', ratio: true },
    { key: 'vsDirect', title: '% of direct' },
  ],
  notes: (ctx) => [
    `\`node bench/tools/t1-client.js <port> ${ctx.opt.t1Bytes}\` (1 MiB writes) → proxy → sink (bench/tools/raw-origin.js), both ends on the load CPU. ` +
    'MB/s = bytes / time from connect to the sink\'s byte-count reply; the reply must equal the bytes sent. *% of direct* compares with the direct row\'s median.',
  ],
  async setup(ctx) {
    return { origin: await startRawOrigin(ctx, ctx.cpuPlan(1).load), directMbps: null };
  },
  cases: (ctx) => [{ id: 'bulk', label: `${(ctx.opt.t1Bytes / GiB).toFixed(ctx.opt.t1Bytes % GiB ? 2 : 0)} GiB` }],
  spec: (ctx, env) => ({ mode: 'raw', routes: [{ sni: '', host: '127.0.0.1', port: env.origin.port }] }),
  async measure(ctx, env, kase, h, info) {
    const bytes = ctx.opt.t1Bytes;
    const c0 = h.cpu();
    const w0 = process.hrtime.bigint();
    const child = spawnTracked(process.execPath, [path.join(TOOLS, 't1-client.js'), String(h.port), String(bytes)], { cpus: info.plan.load, name: 't1-client' });
    let r;
    try {
      r = JSON.parse((await waitForOutput(child, /result (\{.*\})\n/, 180000))[1]);
    } finally {
      await stopChild(child, 1000);
    }
    const wall = Number(process.hrtime.bigint() - w0) / 1e9;
    const c1 = h.cpu();
    if (r.error) throw new Error(`t1-client: ${r.error}`);
    const cpu = c0 === null ? null : c1 - c0;
    const m = {
      bytes,
      received: r.received,
      seconds: r.ms / 1000,
      mbps: bytes / (r.ms / 1000) / 1e6,
      cpuSeconds: cpu,
      cpuPct: cpu === null ? null : (100 * cpu) / wall,
      sPerGiB: cpu === null ? null : cpu / (bytes / GiB),
      warnings: [],
    };
    if (r.received !== bytes) throw new Error(`sink received ${r.received} bytes, sent ${bytes}: run discarded`);
    if (info.peer === 'direct') (env.directRuns = env.directRuns || []).push(m.mbps);
    const d = env.directRuns && env.directRuns.length ? env.directRuns.slice().sort((a, b) => a - b)[env.directRuns.length >> 1] : null;
    m.vsDirect = d ? (100 * m.mbps) / d : null;
    return m;
  },
  brief: (m) => `${m.mbps.toFixed(0)} MB/s in ${m.seconds.toFixed(2)} s, proxy CPU ${m.cpuSeconds === null ? '–' : `${m.cpuSeconds.toFixed(2)} s (${m.sPerGiB.toFixed(2)} s/GiB)`}, received ${m.received}`,
  async teardown(ctx, env) {
    if (env && env.origin) await env.origin.stop();
  },
};
