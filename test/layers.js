'use strict';
// The C shell is layered (shared/DESIGN.md, "Which way calls go"): a module includes only
// modules of a lower layer, and the pure core includes only the pure core. A lower module
// reports upward through a callback it was given, never by name. This check fails on any
// include that goes up or sideways, on a module that has no layer yet (place it on purpose), and
// on any include cycle. Prints "N passed, N failed" like the C unit tests.
const fs = require('fs');
const path = require('path');

const src = path.join(__dirname, '..', 'src');

// Shell layers, top down. Modules on one line are siblings: they may not include each other.
const SHELL = [
  ['lg_addon'],
  ['lg_jsconf'],
  ['lg_engine'],
  ['lg_worker', 'lg_cpu'],
  ['lg_listener'],
  ['lg_conn'],
  ['lg_connect', 'lg_suspend', 'lg_relay', 'lg_dial', 'lg_resolve', 'lg_protect', 'lg_verify'],
  ['lg_wctx'],
  ['lg_config', 'lg_event', 'lg_metrics'],
  ['lg_tls_ctx', 'lg_limits'],
  ['lg_tls'],
];
// The pure core: no libuv, no N-API, no I/O (STYLE.md). It may include only itself.
const PURE = new Set(['lg_common', 'lg_buf', 'lg_cidr', 'lg_drr', 'lg_hello', 'lg_http', 'lg_ja',
  'lg_name', 'lg_policy', 'lg_router', 'lg_proxyproto', 'lg_limit', 'lg_balancer', 'lg_affinity',
  'lg_digest', 'lg_auth', 'lg_theap', 'lg_rec']);

const rank = new Map();
SHELL.forEach((mods, i) => mods.forEach((m) => rank.set(m, SHELL.length - i)));
for (const m of PURE) rank.set(m, 0);

const graph = new Map();
const problems = [];
let checked = 0;
for (const f of fs.readdirSync(src).filter((n) => /^lg_\w+\.[ch]$/.test(n)).sort()) {
  const mod = f.slice(0, -2);
  const text = fs.readFileSync(path.join(src, f), 'utf8');
  if (!rank.has(mod)) {
    problems.push(`${f}: module ${mod} has no layer in test/layers.js (place it)`);
    continue;
  }
  if (PURE.has(mod) && /#include\s*[<"](uv\.h|node_api\.h|js_native_api\.h)/.test(text)) {
    problems.push(`${f}: the pure core includes libuv or N-API`);
  }
  for (const m of text.matchAll(/#include\s+"(lg_\w+)\.h"/g)) {
    const dep = m[1];
    if (dep === mod) continue;
    checked++;
    if (!graph.has(mod)) graph.set(mod, new Set());
    graph.get(mod).add(dep);
    if (!rank.has(dep)) {
      problems.push(`${f}: includes ${dep}.h, which has no layer`);
    } else if (PURE.has(mod) ? !PURE.has(dep) : rank.get(dep) >= rank.get(mod)) {
      problems.push(`${f}: includes ${dep}.h, which is not below it (${mod} layer ${rank.get(mod)}, ${dep} layer ${rank.get(dep)})`);
    }
  }
}

// Cycles (within the pure core the layer rule cannot see them).
const state = new Map();
function visit(n, stack) {
  if (state.get(n) === 2) return;
  if (state.get(n) === 1) {
    problems.push(`include cycle: ${[...stack.slice(stack.indexOf(n)), n].join(' -> ')}`);
    return;
  }
  state.set(n, 1);
  for (const d of graph.get(n) || []) visit(d, [...stack, n]);
  state.set(n, 2);
}
for (const n of graph.keys()) visit(n, []);

for (const p of problems) console.log(`  FAIL ${p}`);
console.log(`include layers: ${checked - problems.length < 0 ? 0 : checked - problems.length} passed, ${problems.length} failed`);
process.exit(problems.length ? 1 : 0);
