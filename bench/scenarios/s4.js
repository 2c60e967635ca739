'use strict';
// S4 — CONNECT tunnels (the forward-proxy job): tunnel setup rate and one tunnel's throughput.
//  - setup: 32 clients in a closed loop, each: TCP connect → `CONNECT 127.0.0.1:<origin>` →
//    200 → 16 bytes echoed through the tunnel → close (bench/tools/connect-client.js rate).
//  - tls: the same loop, but each tunnel carries a full TLS 1.3 handshake with the HTTPS origin
//    (nginx, else tools/https-origin.js; ECDSA P-256) and both ends' close
//    (connect-client.js tls). The client's and the origin's handshake work is on the load CPU;
//    the proxy relays the handshake's records, so its CPU per tunnel is what a tunnel that
//    carries TLS costs a forward proxy (issue 16: tunnels per CPU-second, goal ≥ 6,000).
//  - keepalive: 32 tunnels to the origin's plain-HTTP port, each a closed loop of keep-alive
//    `GET /1k` requests (connect-client.js keepalive): the proxy's CPU per 1 KiB request relayed
//    through a tunnel (issue 16: goal ≤ 17 µs).
//  - bulk: one tunnel carrying 1 GiB to the raw origin's sink (count checked).
// Peers: legato (kind 'connect' listener, destination policy allowing the origins' ports and
// loopback), the Node http CONNECT handler, tinyproxy, squid. HAProxy and nginx have no
// forward-proxy mode. The direct row connects to the origin without a proxy.
//
// Pending until legato implements kind 'connect' listeners (detected as for S2).

const { goalLines } = require('../lib/goals');
const path = require('path');
const { startRawOrigin, startHttpsOrigin } = require('../lib/origin');
const { spawnTracked, waitForOutput, stopChild } = require('../lib/procs');

const TOOLS = path.join(__dirname, '..', 'tools');
const GiB = 2 ** 30;
const CONC = 32;

module.exports = {
  id: 'S4',
  title: 'CONNECT tunnels: setup rate and throughput',
  mode: 'connect',
  peers: ['direct', 'legato', 'node', 'tinyproxy', 'squid'],
  threadVariants: false,
  columns: [
    { key: 'rate', title: 'tunnels/s' },
    { key: 'p99ms', title: 'p99 ms' }, // setup, or (keepalive) a request's round trip
    { key: 'mbps', title: 'MB/s' },
    { key: 'cpuPct', title: 'proxy CPU %' },
    { key: 'usPerTunnel', title: 'CPU µs/tunnel', ratio: true },
    { key: 'reqRate', title: 'req/s' },
    { key: 'usPerReq', title: 'CPU µs/req', ratio: true },
    { key: 'perCpuSec', title: 'tunnels/CPU-s' },
    { key: 'sPerGiB', title: 'CPU s/GiB', ratio: true },
  ],
  notes: (ctx) => [
    `setup: ${CONC} concurrent clients for ${ctx.opt.seconds} s, each tunnel proven by a 16-byte echo; TLS: the same, each tunnel carrying a full TLS 1.3 handshake (ECDSA P-256, never resumed) with an HTTPS origin and a clean close, the handshakes' CPU on the load side; *tunnels/CPU-s* is tunnels ÷ the proxy's CPU seconds; keep-alive: ${CONC} tunnels to the origin's plain-HTTP port, each a closed loop of \`GET /1k\` (*p99 ms* is then a request's round trip, else a tunnel's setup); bulk: ${(ctx.opt.t1Bytes / GiB).toFixed(2)} GiB through one tunnel.`,
  ],
  async setup(ctx) {
    const load = ctx.cpuPlan(1).load;
    const env = { origin: await startRawOrigin(ctx, load) };
    try {
      env.https = await startHttpsOrigin(ctx, load);
    } catch (err) {
      await env.origin.stop();
      throw err;
    }
    return env;
  },
  cases: (ctx) => [
    { id: 'setup', label: 'tunnel setup rate' },
    { id: 'tls', label: 'new tunnel + TLS 1.3 handshake through it' },
    { id: 'keepalive', label: `1 KiB keep-alive requests through ${CONC} tunnels` },
    { id: 'bulk', label: `${(ctx.opt.t1Bytes / GiB).toFixed(ctx.opt.t1Bytes % GiB ? 2 : 0)} GiB through one tunnel` },
  ],
  spec: (ctx, env) => ({ mode: 'connect', allowPorts: [env.origin.port, env.https.port, env.https.plainPort], directPort: env.origin.port, routes: [] }),
  async measure(ctx, env, kase, h, info) {
    const direct = info.peer === 'direct' ? ['direct'] : [];
    const target = { tls: env.https.port, keepalive: env.https.plainPort }[kase.id] || env.origin.port;
    const args = kase.id === 'bulk'
      ? ['bulk', String(h.port), String(env.origin.port), String(ctx.opt.t1Bytes), ...direct]
      : [kase.id === 'setup' ? 'rate' : kase.id, String(h.port), String(target), String(ctx.opt.seconds), String(CONC), ...direct];
    const c0 = h.cpu();
    const w0 = process.hrtime.bigint();
    const child = spawnTracked(process.execPath, [path.join(TOOLS, 'connect-client.js'), ...args], { cpus: info.plan.load, name: 'connect-client' });
    let r;
    try {
      r = JSON.parse((await waitForOutput(child, /result (\{.*\})\n/, (ctx.opt.seconds + 180) * 1000))[1]);
    } finally {
      await stopChild(child, 1000);
    }
    const wall = Number(process.hrtime.bigint() - w0) / 1e9;
    const c1 = h.cpu();
    if (r.error) throw new Error(r.error);
    const cpu = c0 === null ? null : c1 - c0;
    const m = { cpuSeconds: cpu, cpuPct: cpu === null ? null : (100 * cpu) / wall, warnings: [] };
    if (kase.id === 'keepalive') {
      if (!r.requests) throw new Error(`no request completed (${r.errors} errors, first: ${r.firstError})`);
      Object.assign(m, {
        requests: r.requests,
        reqRate: r.rate,
        p99ms: r.p99_us / 1000,
        usPerReq: cpu === null ? null : (cpu / r.requests) * 1e6,
      });
      if (r.errors) m.warnings.push(`${r.errors} errors (first: ${r.firstError})`);
    } else if (kase.id !== 'bulk') {
      if (!r.tunnels) throw new Error(`no tunnel completed (${r.errors} errors, first: ${r.firstError})`);
      Object.assign(m, {
        tunnels: r.tunnels,
        rate: r.rate,
        p99ms: r.p99_us / 1000,
        p50ms: r.p50_us / 1000,
        usPerTunnel: cpu === null ? null : (cpu / r.tunnels) * 1e6,
        perCpuSec: cpu > 0 ? r.tunnels / cpu : null,
      });
      if (r.errors) m.warnings.push(`${r.errors} failed tunnels (first: ${r.firstError})`);
      if (kase.id === 'tls') {
        Object.assign(m, { reused: r.reused, protocol: r.protocol });
        if (r.reused) m.warnings.push(`${r.reused} TLS sessions resumed (full handshakes expected)`);
        if (r.protocol !== 'TLSv1.3') m.warnings.push(`negotiated ${r.protocol}, not TLSv1.3`);
      }
    } else {
      if (r.received !== r.bytes) throw new Error(`sink received ${r.received} of ${r.bytes} bytes`);
      Object.assign(m, { mbps: r.bytes / (r.ms / 1000) / 1e6, sPerGiB: cpu === null ? null : cpu / (r.bytes / GiB) });
    }
    return m;
  },
  /** Issue 16's goals for CONNECT tunnels beside the medians of this run. */
  goals: (sc) => goalLines(sc, 'S4 goals (issue 16), medians', [
    { what: 'CONNECT tunnel, 1 KiB keep-alive: CPU µs/request', caseId: 'keepalive', key: 'usPerReq', digits: 1, goal: 17, atMost: true },
    { what: 'CONNECT tunnel, bulk: CPU s/GiB', caseId: 'bulk', key: 'sPerGiB', digits: 2, goal: 0.6, atMost: true },
    { what: 'new tunnel + TLS handshake through it: tunnels per CPU-second', caseId: 'tls', key: 'perCpuSec', digits: 0, goal: 6000, atMost: false },
  ]),
  brief: (m) => (m.reqRate !== undefined
    ? `${m.reqRate.toFixed(0)} req/s, p99 ${m.p99ms.toFixed(2)} ms, proxy CPU ${m.usPerReq === null ? '–' : `${m.usPerReq.toFixed(1)} µs/req`}`
    : m.rate !== undefined
    ? `${m.rate.toFixed(0)} tunnels/s, p99 ${m.p99ms.toFixed(2)} ms, proxy CPU ${m.usPerTunnel === null ? '–' : `${m.usPerTunnel.toFixed(0)} µs/tunnel (${m.perCpuSec ? m.perCpuSec.toFixed(0) : '–'} tunnels/CPU-s)`}`
    : `${m.mbps.toFixed(0)} MB/s, proxy CPU ${m.sPerGiB === null ? '–' : `${m.sPerGiB.toFixed(2)} s/GiB`}`),
  async teardown(ctx, env) {
    if (env && env.https) await env.https.stop();
    if (env && env.origin) await env.origin.stop();
  },
};
