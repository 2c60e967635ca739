'use strict';
// S1 — SNI passthrough, keep-alive: wrk (1 thread, 64 connections, HTTP/1.1 over TLS, SNI
// a.bench.test) through each proxy to an HTTPS origin serving a fixed 1 KiB or 1 MiB file.
// The proxy routes by SNI (exact a.bench.test, *.bench.test, '' default; all to the origin) and
// never decrypts. Measured: rps, MB/s, and the proxy's CPU per request and per GiB.

const { goalLines } = require('../lib/goals');
const { measureWrk, briefWrk, WRK_COLUMNS } = require('../lib/wrk');
const { startHttpsOrigin } = require('../lib/origin');
const { safeExec } = require('../lib/procs');
const { ensureHostNames } = require('../lib/util');

const CONNS = 64;
const SNI = 'a.bench.test';

/** Shared by S1 and S2: the SNI names must resolve for wrk. */
async function hostsSetup(ctx) {
  const hosts = await ensureHostNames([SNI, 'b.bench.test']);
  if (!hosts.ok) throw new Error(hosts.message);
  if (hosts.added.length) ctx.log(`added ${hosts.added.join(' ')} → 127.0.0.1 to /etc/hosts (wrk takes SNI from the URL host)`);
}

module.exports = {
  id: 'S1',
  title: 'SNI passthrough, keep-alive HTTPS, 64 connections (wrk)',
  mode: 'sni',
  peers: ['direct', 'legato', 'legato-fifo', 'node', 'haproxy', 'nginx'],
  threadVariants: true,
  columns: WRK_COLUMNS,
  notes: (ctx) => [
    `\`wrk -t1 -c${CONNS} -d${ctx.opt.seconds}s https://${SNI}:<port>/1k\` (or /1m); SNI ${SNI}, a name bench/run.js adds to /etc/hosts because wrk takes SNI from the URL. Origin: ${ctx.originKind || 'nginx'} HTTPS (ECDSA P-256, TLS 1.3), keep-alive. ` +
    '*CPU µs/req* and *CPU s/GiB* are the proxy process\'s user+sys time divided by requests and by GiB of responses received by wrk. ' +
    '*load CPU %* is how busy the load CPU (wrk + origin) was: near 100 % means the load side, not the proxy, set the pace.',
  ],
  pending(ctx) {
    if (!safeExec('sh', ['-c', 'command -v wrk'])) return 'wrk not installed (apt-get install wrk)';
    return null;
  },
  async setup(ctx) {
    await hostsSetup(ctx);
    const origin = await startHttpsOrigin(ctx, ctx.cpuPlan(1).load);
    ctx.originKind = origin.kind;
    return { origin };
  },
  cases: () => [
    { id: '1k', label: '1 KiB responses', path: '/1k', size: 1024, ratioKeys: ['usPerReq'] },
    { id: '1m', label: '1 MiB responses', path: '/1m', size: 1024 * 1024, ratioKeys: ['sPerGiB'] },
  ],
  spec: (ctx, env) => ({
    mode: 'sni',
    directSni: SNI,
    routes: [
      { sni: SNI, host: '127.0.0.1', port: env.origin.port },
      { sni: '*.bench.test', host: '127.0.0.1', port: env.origin.port },
      { sni: '', host: '127.0.0.1', port: env.origin.port },
    ],
  }),
  measure: (ctx, env, kase, h, info) => measureWrk(ctx, h, info, { url: `https://${SNI}:${h.port}${kase.path}`, conns: CONNS, size: kase.size }),
  /** Issue 16's goals for passthrough beside the medians of this run. */
  goals: (sc) => goalLines(sc, 'S1 goals (issue 16), medians', [
    { what: 'passthrough, 1 KiB keep-alive requests: CPU µs/request', caseId: '1k', key: 'usPerReq', digits: 1, goal: 18, atMost: true },
    { what: 'passthrough, 1 MiB responses: CPU s/GiB', caseId: '1m', key: 'sPerGiB', digits: 2, goal: 0.6, atMost: true },
  ]),
  brief: briefWrk,
  async teardown(ctx, env) {
    if (env && env.origin) await env.origin.stop();
  },
  hostsSetup,
  SNI,
  CONNS,
};
