'use strict';
// S2 — TLS termination: the proxy terminates TLS with the route's certificate and forwards
// plaintext HTTP to the origin's plain port. Loads: the S1 keep-alive loads (1 KiB, 1 MiB,
// 64 connections, wrk), and full handshakes per second with an ECDSA P-256 and an RSA-2048
// certificate (bench/tools/handshake-client.js: 32 loops of new connection → full handshake →
// GET /1k with Connection: close; not wrk, which resumes its TLS session on every reconnect).
// The direct row is the origin terminating TLS itself (ECDSA; it has no RSA certificate, so the
// RSA case has no direct row).
//
// Pending until legato implements terminateTls: run.js detects it through lib/config.js's
// "not supported yet" and prints the scenario as pending (`--include-pending` runs the peers).

const { goalLines } = require('../lib/goals');
const { measureWrk, briefWrk, WRK_COLUMNS } = require('../lib/wrk');
const { measureLoopClient } = require('../lib/loop-client');
const { startHttpsOrigin } = require('../lib/origin');
const { safeExec } = require('../lib/procs');
const s1 = require('./s1');

const CONNS = 64;
const HS_CONC = 32;

/** Full-handshake load with handshake-client.js; fills the same columns as measureWrk. */
async function measureHandshakes(ctx, h, info, kase) {
  const { m, r, st0, st1 } = await measureLoopClient(ctx, h, info, {
    tool: 'handshake-client.js', args: [String(h.port), s1.SNI, kase.path, String(ctx.opt.seconds), String(HS_CONC)], what: 'handshake',
  });
  if (r.reused) m.warnings.push(`${r.reused} handshakes were resumptions, not full handshakes`);
  const other = Object.entries(r.protocols || {}).filter(([p]) => p !== 'TLSv1.3');
  if (other.length) m.warnings.push(`negotiated ${other.map(([p, n]) => `${p} ${n} times`).join(', ')}, not TLSv1.3`);
  if (st0 && st1 && st1.tlsHandshakes !== undefined) {
    // legato counts its handshakes: the measured window must hold about as many as the client saw.
    const hs = st1.tlsHandshakes - st0.tlsHandshakes;
    const resumed = (st1.tlsSessionsResumed || 0) - (st0.tlsSessionsResumed || 0);
    m.proxyHandshakes = hs;
    if (resumed > 0) m.warnings.push(`legato counted ${resumed} resumed sessions`);
    if (hs < 0.9 * r.handshakes || hs > 1.1 * r.handshakes + HS_CONC) m.warnings.push(`legato counted ${hs} handshakes, the client ${r.handshakes}`);
  }
  if (r.errors) m.warnings.push(`${r.errors} failed handshakes/requests (first: ${r.firstError})`);
  if (r.bytes < r.handshakes * kase.size) m.warnings.push(`${r.bytes} bytes for ${r.handshakes} responses of ${kase.size} bytes`);
  return m;
}

module.exports = {
  id: 'S2',
  title: 'TLS termination: keep-alive loads (wrk) and full handshakes per second',
  mode: 'terminate',
  peers: ['direct', 'legato', 'node', 'haproxy', 'nginx'],
  threadVariants: true,
  columns: WRK_COLUMNS,
  notes: (ctx) => [
    `Keep-alive cases as in S1 but terminated by the proxy; handshake cases: \`node bench/tools/handshake-client.js <port> a.bench.test /1k ${ctx.opt.seconds} ${HS_CONC}\` ` +
    '(new connection, full TLS 1.3 handshake, one 1 KiB GET with Connection: close), so *req/s* is full handshakes per second and *CPU µs/req* is the proxy\'s CPU per handshake.',
  ],
  pending(ctx) {
    if (!safeExec('sh', ['-c', 'command -v wrk'])) return 'wrk not installed (apt-get install wrk)';
    return null;
  },
  async setup(ctx) {
    await s1.hostsSetup(ctx);
    const origin = await startHttpsOrigin(ctx, ctx.cpuPlan(1).load);
    ctx.originKind = origin.kind;
    return { origin };
  },
  cases: () => [
    { id: '1k', label: '1 KiB responses, keep-alive (ECDSA)', path: '/1k', size: 1024, cert: 'ecdsa', ratioKeys: ['usPerReq'] },
    { id: '1m', label: '1 MiB responses, keep-alive (ECDSA)', path: '/1m', size: 1024 * 1024, cert: 'ecdsa', ratioKeys: ['sPerGiB'] },
    { id: 'hs-ecdsa', label: 'full handshakes, ECDSA P-256', path: '/1k', size: 1024, cert: 'ecdsa', handshakes: true, ratioKeys: ['usPerReq'] },
    { id: 'hs-rsa', label: 'full handshakes, RSA-2048', path: '/1k', size: 1024, cert: 'rsa', handshakes: true, ratioKeys: ['usPerReq'], peers: ['legato', 'node', 'haproxy', 'nginx'] },
  ],
  spec: (ctx, env, kase) => ({
    mode: 'terminate',
    cert: ctx.certs[kase.cert],
    directPort: env.origin.port,
    routes: [
      { sni: s1.SNI, host: '127.0.0.1', port: env.origin.plainPort },
      { sni: '*.bench.test', host: '127.0.0.1', port: env.origin.plainPort },
      { sni: '', host: '127.0.0.1', port: env.origin.plainPort },
    ],
  }),
  measure: (ctx, env, kase, h, info) => (kase.handshakes
    ? measureHandshakes(ctx, h, info, kase)
    : measureWrk(ctx, h, info, { url: `https://${s1.SNI}:${h.port}${kase.path}`, conns: CONNS, size: kase.size })),
  /** Issue 16's goals for termination beside the medians of this run. */
  goals: (sc) => goalLines(sc, 'S2 goals (issue 16), medians', [
    { what: 'terminated, 1 KiB keep-alive: CPU µs/request', caseId: '1k', key: 'usPerReq', digits: 1, goal: 20, atMost: true },
    { what: 'terminated, 1 MiB responses: CPU s/GiB', caseId: '1m', key: 'sPerGiB', digits: 2, goal: 1.1, atMost: true },
    { what: 'full handshake, ECDSA P-256: CPU ms', caseId: 'hs-ecdsa', key: 'usPerReq', scale: 1e-3, digits: 2, goal: 0.45, atMost: true },
    { what: 'full handshake, RSA-2048: CPU ms', caseId: 'hs-rsa', key: 'usPerReq', scale: 1e-3, digits: 2, goal: 0.75, atMost: true },
  ]),
  brief: briefWrk,
  async teardown(ctx, env) {
    if (env && env.origin) await env.origin.stop();
  },
  measureHandshakes,
};
