'use strict';
// U1 — balancing: what choosing among upstreams costs per connection. New raw TCP connections
// through a passthrough route ('' route: the first bytes are not TLS), each: connect → 'E' + 16
// bytes echoed by the origin → close (bench/tools/connect-client.js rate, pointed at the proxy
// as if it were the origin), 32 clients in a closed loop. Two cases: the route has one upstream,
// or three (legato leastConn, HAProxy `balance leastconn`, nginx `least_conn`), each a raw origin
// of its own. The goal (issue 13): legato's CPU µs per connection with three upstreams is at
// most 3 % above its figure with one.

const path = require('path');
const { startRawOrigin } = require('../lib/origin');
const { spawnTracked, waitForOutput, stopChild } = require('../lib/procs');

const TOOLS = path.join(__dirname, '..', 'tools');
const CONC = 32;

module.exports = {
  id: 'U1',
  title: 'Balancing: new connections over one upstream vs three (leastConn)',
  mode: 'raw',
  peers: ['legato', 'haproxy', 'nginx'],
  threadVariants: false,
  columns: [
    { key: 'rate', title: 'connections/s' },
    { key: 'cpuPct', title: 'proxy CPU %' },
    { key: 'usPerConn', title: 'CPU µs/connection', ratio: true },
  ],
  notes: (ctx) => [
    `${CONC} concurrent clients for ${ctx.opt.seconds} s, each connection proven by a 16-byte echo; goal: legato with 3 upstreams ≤ 1.03 × legato with 1 (compare the two cases' legato rows).`,
  ],
  async setup(ctx) {
    const cpus = ctx.cpuPlan(1).load;
    const origins = [];
    for (let i = 0; i < 3; i++) origins.push(await startRawOrigin(ctx, cpus));
    return { origins };
  },
  cases: () => [
    { id: 'one', label: 'one upstream' },
    { id: 'three', label: 'three upstreams, least connections' },
  ],
  spec: (ctx, env, kase) => {
    const ups = env.origins.map((o) => ({ host: '127.0.0.1', port: o.port }));
    const route = kase && kase.id === 'three' ? { sni: '', upstreams: ups } : { sni: '', ...ups[0] };
    return { mode: 'raw', routes: [route] };
  },
  async measure(ctx, env, kase, h, info) {
    const c0 = h.cpu();
    const w0 = process.hrtime.bigint();
    // `direct` mode talks to the given "origin" port without CONNECT: here, the proxy's.
    const child = spawnTracked(process.execPath, [path.join(TOOLS, 'connect-client.js'), 'rate', '0', String(h.port),
      String(ctx.opt.seconds), String(CONC), 'direct'], { cpus: info.plan.load, name: 'connect-client' });
    let r;
    try {
      r = JSON.parse((await waitForOutput(child, /result (\{.*\})\n/, (ctx.opt.seconds + 180) * 1000))[1]);
    } finally {
      await stopChild(child, 1000);
    }
    const wall = Number(process.hrtime.bigint() - w0) / 1e9;
    const c1 = h.cpu();
    if (r.error) throw new Error(r.error);
    if (!r.tunnels) throw new Error(`no connection completed (${r.errors} errors, first: ${r.firstError})`);
    const cpu = c0 === null ? null : c1 - c0;
    const m = {
      cpuSeconds: cpu,
      cpuPct: cpu === null ? null : (100 * cpu) / wall,
      rate: r.rate,
      usPerConn: cpu === null ? null : (cpu / r.tunnels) * 1e6,
      warnings: [],
    };
    if (r.errors) m.warnings.push(`${r.errors} failed connections (first: ${r.firstError})`);
    return m;
  },
  brief: (m) => `${m.rate.toFixed(0)} connections/s, proxy CPU ${m.usPerConn === null ? '–' : `${m.usPerConn.toFixed(1)} µs/connection`}`,
  async teardown(ctx, env) {
    if (env && env.origins) for (const o of env.origins) await o.stop();
  },
};
