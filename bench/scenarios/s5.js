'use strict';
// S5 — one bulk flow vs many small flows through one proxy worker.
//
// 32 connections do closed-loop 1 KiB ping-pong with the raw origin's echo (send 1 KiB, wait for
// 1 KiB back, repeat; bench/tools/s5-pingpong.js) while, in the "with bulk" case, one more
// connection downloads an endless stream as fast as it can (bench/tools/s5-bulk.js). All flows
// share the proxy's single worker. Measured: the small flows' round-trip p50/p99/p99.9, their
// request rate, the bulk flow's MB/s, and the proxy's CPU. legato runs with scheduler 'drr' and
// 'fifo'. Raw TCP through the '' route (plain TCP proxy for HAProxy and nginx).

const path = require('path');
const { startRawOrigin } = require('../lib/origin');
const { spawnTracked, waitForOutput, stopChild } = require('../lib/procs');
const { sleep } = require('../lib/util');

const TOOLS = path.join(__dirname, '..', 'tools');
const SMALL_FLOWS = 32;
const SMALL_SIZE = 1024;
const GiB = 2 ** 30;

module.exports = {
  id: 'S5',
  title: `one bulk flow vs ${SMALL_FLOWS} small ping-pong flows (scheduler drr vs fifo)`,
  mode: 'raw',
  peers: ['direct', 'legato', 'legato-fifo', 'node', 'haproxy', 'nginx'],
  threadVariants: false,
  columns: [
    { key: 'p50us', title: 'small p50 µs' },
    { key: 'p99us', title: 'small p99 µs', ratio: true },
    { key: 'p999us', title: 'small p99.9 µs' },
    { key: 'smallRps', title: 'small req/s' },
    { key: 'bulkMBps', title: 'bulk MB/s' },
    { key: 'cpuPct', title: 'proxy CPU %' },
    { key: 'sPerGiB', title: 'CPU s/GiB', ratio: true },
  ],
  notes: () => [
    `${SMALL_FLOWS} flows × closed-loop ${SMALL_SIZE}-byte echo RTTs (Node client, hrtime), optionally + 1 bulk download. ` +
    'All clients and the origin share the load CPU, so the RTTs include its scheduling; compare rows, not absolute values. ' +
    '*CPU s/GiB* divides the proxy\'s CPU by all bytes it relayed (bulk + small, both directions counted once).',
  ],
  async setup(ctx) {
    return { origin: await startRawOrigin(ctx, ctx.cpuPlan(1).load) };
  },
  cases: () => [
    { id: 'alone', label: `${SMALL_FLOWS} small flows alone`, bulk: false, ratioKeys: ['p99us', 'sPerGiB'] },
    { id: 'bulk', label: `${SMALL_FLOWS} small flows + 1 bulk flow`, bulk: true, ratioKeys: ['p99us', 'sPerGiB'] },
  ],
  spec: (ctx, env) => ({ mode: 'raw', routes: [{ sni: '', host: '127.0.0.1', port: env.origin.port }] }),
  async measure(ctx, env, kase, h, info) {
    const secs = ctx.opt.seconds;
    const load = info.plan.load;
    let bulk = null;
    let pp = null;
    try {
      if (kase.bulk) {
        bulk = spawnTracked(process.execPath, [path.join(TOOLS, 's5-bulk.js'), String(h.port), String(secs)], { cpus: load, name: 's5-bulk' });
        await waitForOutput(bulk, /ready\n/, 10000);
      }
      pp = spawnTracked(process.execPath, [path.join(TOOLS, 's5-pingpong.js'), String(h.port), String(secs), String(SMALL_FLOWS), String(SMALL_SIZE)], { cpus: load, name: 's5-pingpong' });
      await waitForOutput(pp, /ready\n/, 10000);
      pp.stdin.write('go\n'); // 0.5 s warm-up inside, then `secs` measured
      await sleep(500);
      const c0 = h.cpu();
      const w0 = process.hrtime.bigint();
      if (bulk) bulk.stdin.write('go\n');
      const ppr = JSON.parse((await waitForOutput(pp, /result (\{.*\})\n/, (secs + 15) * 1000))[1]);
      const br = bulk ? JSON.parse((await waitForOutput(bulk, /result (\{.*\})\n/, (secs + 15) * 1000))[1]) : null;
      const wall = Number(process.hrtime.bigint() - w0) / 1e9;
      const c1 = h.cpu();
      if (br && br.error) throw new Error(`bulk flow: ${br.error}`);
      const cpu = c0 === null ? null : c1 - c0;
      const bytes = (br ? br.bytes : 0) + 2 * SMALL_SIZE * ppr.rtts;
      const m = {
        p50us: ppr.p50_us,
        p99us: ppr.p99_us,
        p999us: ppr.p999_us,
        maxUs: ppr.max_us,
        smallRps: ppr.rps,
        perFlowRps: ppr.perFlowRps,
        bulkMBps: br ? br.bytes / (br.ms / 1000) / 1e6 : null,
        cpuSeconds: cpu,
        cpuPct: cpu === null ? null : (100 * cpu) / wall,
        sPerGiB: cpu === null || !bytes ? null : cpu / (bytes / GiB),
        warnings: [],
      };
      if (ppr.errors) m.warnings.push(`${ppr.errors} small-flow errors`);
      if (ppr.rtts === 0) throw new Error('no small-flow round trips completed');
      if (br && br.bytes === 0) throw new Error('bulk flow received nothing');
      if (ppr.perFlowRps.min < 0.1 * ppr.perFlowRps.max) m.warnings.push(`small flows unequal: ${ppr.perFlowRps.min.toFixed(0)}–${ppr.perFlowRps.max.toFixed(0)} req/s per flow`);
      return m;
    } finally {
      if (pp) await stopChild(pp, 1000);
      if (bulk) await stopChild(bulk, 1000);
    }
  },
  brief: (m) => `small p50 ${m.p50us.toFixed(0)} µs p99 ${m.p99us.toFixed(0)} µs p99.9 ${m.p999us.toFixed(0)} µs, ${m.smallRps.toFixed(0)} req/s; bulk ${m.bulkMBps === null ? '–' : `${m.bulkMBps.toFixed(0)} MB/s`}; proxy CPU ${m.cpuPct === null ? '–' : `${m.cpuPct.toFixed(0)} %`}`,
  async teardown(ctx, env) {
    if (env && env.origin) await env.origin.stop();
  },
};
