'use strict';
// One timed run of a closed-loop client tool in bench/tools (handshake-client.js,
// churn-client.js): the tool runs on the load CPU for ctx.opt.seconds and prints
// `result {...}` ({ handshakes, bytes, rate, ms, p50_us, p99_us, errors, firstError, ... }); the
// proxy's CPU and counters are read around it. Fills the same columns as measureWrk.

const path = require('path');
const { spawnTracked, waitForOutput, stopChild, cpuTimes, cpuBusy } = require('./procs');
const { sleep } = require('./util');

const TOOLS = path.join(__dirname, '..', 'tools');
const GiB = 2 ** 30;

/**
 * tool: file name in bench/tools; args: its arguments (strings); what: the unit in the error
 * when nothing completed. Returns { m, r, st0, st1 }: m the row (warnings: [] for the caller to
 * add to), r the tool's result, st0/st1 the peer's counters before and after (or null).
 */
async function measureLoopClient(ctx, h, info, { tool, args, what }) {
  const load = info.plan.load;
  const child = spawnTracked(process.execPath, [path.join(TOOLS, tool), ...args], { cpus: load, name: path.basename(tool, '.js') });
  let r;
  let c0;
  let c1;
  let t0;
  let t1;
  let wall;
  let st0 = null;
  let st1 = null;
  try {
    await sleep(500); // the client's own warm-up
    st0 = await h.stats();
    c0 = h.cpu();
    t0 = cpuTimes();
    const w0 = process.hrtime.bigint();
    r = JSON.parse((await waitForOutput(child, /result (\{.*\})\n/, (ctx.opt.seconds + 20) * 1000))[1]);
    wall = Number(process.hrtime.bigint() - w0) / 1e9;
    c1 = h.cpu();
    t1 = cpuTimes();
    st1 = await h.stats();
  } finally {
    await stopChild(child, 1000);
  }
  if (!r.handshakes) throw new Error(`no ${what} completed (${r.errors} errors, first: ${r.firstError})`);
  const cpu = c0 === null ? null : c1 - c0;
  const m = {
    requests: r.handshakes,
    bytes: r.bytes,
    rps: r.rate,
    mbps: r.bytes / (r.ms / 1000) / 1e6,
    p50ms: r.p50_us / 1000,
    p99ms: r.p99_us / 1000,
    cpuSeconds: cpu,
    cpuPct: cpu === null ? null : (100 * cpu) / wall,
    usPerReq: cpu === null ? null : (cpu / r.handshakes) * 1e6,
    sPerGiB: cpu === null || !r.bytes ? null : cpu / (r.bytes / GiB),
    loadBusy: 100 * cpuBusy(t0, t1, Number(String(load).split('-')[0])),
    warnings: [],
  };
  return { m, r, st0, st1 };
}

module.exports = { measureLoopClient };
