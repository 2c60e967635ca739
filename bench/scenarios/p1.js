'use strict';
// P1 — the CPU cost of protection (issue 12): connection churn through an SNI passthrough
// listener, legato without protection against the same build with every protection rule on —
// 10 rules (rateLimit, sustained, penaltyBox, maxConcurrentPerIp, allowlist, blocklist,
// ja3Blocklist, ja4Blocklist, requireSni, ipv6Prefix) and a 10,000-entry blocklist, none of
// which refuses the load (so both peers do the same work plus the checks).
//
// Load: bench/tools/churn-client.js (32 loops of new connection → node's real ClientHello →
// the raw origin's `ok` → close; no TLS work on the load CPU, so the proxy's per-connection
// work — accept, admission, hello parsing and fingerprints, routing, dial, relay, close — is
// what sets the pace). Measured: the proxy process's CPU µs per connection (user+sys of the
// whole process / connections completed).
// The goal: protected ÷ unprotected ≤ 1.05 (printed under the table, from the medians).
//
// The per-accept admission cost in ns and the bytes per tracked IP come from the C
// micro-benchmarks: `node bench/c/run.js admit` and `node bench/c/run.js limit`.

const { startRawOrigin } = require('../lib/origin');
const { WRK_COLUMNS } = require('../lib/wrk');
const { measureLoopClient } = require('../lib/loop-client');

const SNI = 'a.bench.test';
const CONC = 32;

const GOAL = 1.05;

/** The protection of the protected peer: 10 rules and a 10,000-entry blocklist. */
function protection() {
  const blocklist = [];
  for (let i = 0; i < 10000; i++) blocklist.push(`10.${(i >> 8) & 255}.${i & 255}.0/24`);
  return {
    rateLimit: { connectionsPerSecond: 1000000, burst: 1000000 },
    sustained: { connectionsPerMinute: 60000000, burst: 60000000 },
    penaltyBox: { durationMs: 600000 },
    maxConcurrentPerIp: 100000,
    allowlist: ['192.0.2.0/24'],
    blocklist,
    ja3Blocklist: ['0123456789abcdef0123456789abcdef'],
    ja4Blocklist: ['t13d1516h2_8daaf6152771_e5627efa2ab1'],
    requireSni: true,
    ipv6Prefix: 64,
  };
}

/** One timed run of churn-client.js against the proxy: connections, and the proxy's CPU. */
async function measure(ctx, env, kase, h, info) {
  const { m, r, st0, st1 } = await measureLoopClient(ctx, h, info, {
    tool: 'churn-client.js', args: [String(h.port), SNI, String(ctx.opt.seconds), String(CONC)], what: 'connection',
  });
  m.sPerGiB = null;
  if (r.errors) m.warnings.push(`${r.errors} failed connections (first: ${r.firstError})`);
  if (st0 && st1 && st1.blockedConnections !== undefined && st1.blockedConnections !== st0.blockedConnections) {
    m.warnings.push(`legato refused ${st1.blockedConnections - st0.blockedConnections} connections: the load must pass every check`);
  }
  return m;
}

const P1 = {
  id: 'P1',
  title: 'protection cost: CPU per connection, no protection vs 10 rules + a 10,000-entry blocklist',
  mode: 'sni',
  peers: ['legato', 'legato-protected'],
  threadVariants: false,
  columns: WRK_COLUMNS,
  notes: (ctx) => [
    `\`node bench/tools/churn-client.js <port> ${SNI} ${ctx.opt.seconds} ${CONC}\` through an SNI passthrough listener to bench/tools/raw-origin.js (each connection: node's ClientHello, the origin's \`ok\`, close); ` +
    '*CPU µs/req* is the proxy process\'s CPU per connection. legato (drr, protected) runs the same build with rateLimit, sustained, penaltyBox, maxConcurrentPerIp, allowlist, ' +
    'a 10,000-entry blocklist, ja3Blocklist, ja4Blocklist, requireSni and ipv6Prefix, none of which refuses the load. Goal: protected ÷ unprotected ≤ 1.05.',
  ],
  async setup(ctx) {
    const origin = await startRawOrigin(ctx, ctx.cpuPlan(1).load);
    return { origin };
  },
  cases: () => [
    { id: 'churn', label: 'connection churn: a ClientHello and a 3-byte answer per connection', ratioKeys: [] },
  ],
  spec: (ctx, env) => ({
    mode: 'sni',
    routes: [
      { sni: SNI, host: '127.0.0.1', port: env.origin.port },
      { sni: '*.bench.test', host: '127.0.0.1', port: env.origin.port },
      { sni: '', host: '127.0.0.1', port: env.origin.port },
    ],
    protection: protection(),
  }),
  measure,
  brief: (m) => `${m.requests} connections, ${m.rps.toFixed(0)}/s, CPU ${m.usPerReq === null ? '?' : m.usPerReq.toFixed(1)} µs/connection`,
  /** The ratio against the goal, from the medians (run.js calls this after the runs). */
  conclude(result, ctx) {
    for (const kase of result.cases) {
      const med = (peer) => {
        const row = kase.rows.find((r) => r.peer === peer);
        return row && row.summary && row.summary.usPerReq ? row.summary.usPerReq.median : null;
      };
      const off = med('legato');
      const on = med('legato-protected');
      if (off === null || on === null) continue;
      const ratio = on / off;
      const line = `P1 ${kase.id}: CPU per connection ${on.toFixed(1)} µs protected vs ${off.toFixed(1)} µs unprotected = ${ratio.toFixed(3)}× (goal ≤ ${GOAL}: ${ratio <= GOAL ? 'met' : 'NOT met'})`;
      result.notes.push(line);
      kase.p1 = { protectedUs: on, unprotectedUs: off, ratio, goal: GOAL, met: ratio <= GOAL };
      ctx.log(line);
    }
  },
  async teardown(ctx, env) {
    if (env && env.origin) await env.origin.stop();
  },
  protection,
  GOAL,
};

module.exports = P1;
