#!/usr/bin/env node
'use strict';
// legato benchmarks: every scenario against every available peer, side by side, in one run.
//
//   npm run bench                      all scenarios
//   node bench/run.js s1 t1            some scenarios (s1 s2 s3 s4 s5 s6 t1 p1 u1, any case)
//   options (or environment twins):
//     --seconds N    BENCH_SECONDS   duration of one timed run              [10]
//     --runs N       BENCH_RUNS      runs per peer and case (median, min–max) [3]
//     --warmup N     BENCH_WARMUP    seconds of untimed load before each run [1]
//     --peers list   BENCH_PEERS     e.g. legato,haproxy (direct legato legato-fifo legato-alt
//                                    legato-protected legato-rt node haproxy nginx tinyproxy squid)
//     BENCH_LEGATO_ALT=/path/legato.node  adds peer legato-alt: a candidate build beside the current
//     BENCH_LEGATO_ALT_ROOT=/path/checkout  ... or a whole other checkout (its lib/ and build/)
//     BENCH_LEGATO_ALT_SCHEDULER='{"quantum":16384}'  ... and/or candidate scheduler settings
//     BENCH_CASES=hs-ecdsa,1k  only these cases (by id) of the scenarios run
//     --threads list BENCH_THREADS   proxy worker counts to compare, e.g. 1,2 [1]
//     --idle-conns N BENCH_IDLE_CONNS  S3 idle connections                  [5000]
//     --t1-bytes N   BENCH_T1_BYTES  T1 transfer size in bytes             [1073741824]
//     --include-pending               run scenarios legato cannot do yet (S2, S4) with the other peers
//     --report file.json              print the Markdown of an earlier run again (no measuring)
//     --quiet-wait N BENCH_QUIET_WAIT  before each run, wait up to N s for other processes to
//                                      use < 15 % of a CPU (shared machines)  [30]
//
// Prints Markdown tables on stdout (progress on stderr) and writes bench/results/<date>.json
// and .md (BENCH_RESULTS_DIR=dir writes them there instead). See bench/README.md for what each
// scenario measures and how to read the tables.

const fs = require('fs');
const os = require('os');
const path = require('path');
const procs = require('./lib/procs');
const util = require('./lib/util');
const { PEERS, haveNginx, haveHaproxy, haveLegato, legatoLacks, INSTALL_HINT, ROOT } = require('./lib/peers');
const { generateCerts } = require('./lib/certs');
const report = require('./lib/report');

const SCENARIOS = ['s1', 's2', 's3', 's4', 's5', 's6', 't1', 'p1', 'u1'];

function parseArgs(argv) {
  const opt = {
    seconds: Number(process.env.BENCH_SECONDS || 10),
    runs: Number(process.env.BENCH_RUNS || 3),
    warmup: Number(process.env.BENCH_WARMUP === undefined ? 1 : process.env.BENCH_WARMUP),
    peers: process.env.BENCH_PEERS ? process.env.BENCH_PEERS.split(',') : null,
    threads: (process.env.BENCH_THREADS || '1').split(',').map(Number),
    idleConns: Number(process.env.BENCH_IDLE_CONNS || 5000),
    t1Bytes: Number(process.env.BENCH_T1_BYTES || 1024 * 1024 * 1024),
    quietWait: Number(process.env.BENCH_QUIET_WAIT === undefined ? 30 : process.env.BENCH_QUIET_WAIT),
    scenarios: [],
    includePending: !!process.env.BENCH_INCLUDE_PENDING,
  };
  for (let i = 0; i < argv.length; i++) {
    const a = argv[i];
    const val = () => {
      if (i + 1 >= argv.length) throw new Error(`${a} needs a value`);
      return argv[++i];
    };
    if (a === '--seconds') opt.seconds = Number(val());
    else if (a === '--runs') opt.runs = Number(val());
    else if (a === '--warmup') opt.warmup = Number(val());
    else if (a === '--peers') opt.peers = val().split(',');
    else if (a === '--threads') opt.threads = val().split(',').map(Number);
    else if (a === '--idle-conns') opt.idleConns = Number(val());
    else if (a === '--t1-bytes') opt.t1Bytes = Number(val());
    else if (a === '--quiet-wait') opt.quietWait = Number(val());
    else if (a === '--include-pending') opt.includePending = true;
    else if (a === '--report') opt.report = val();
    else if (a === '-h' || a === '--help') { process.stdout.write(fs.readFileSync(__filename, 'utf8').split('\n').slice(2, 25).map((l) => l.replace(/^\/\/ ?/, '')).join('\n') + '\n'); process.exit(0); }
    else if (SCENARIOS.includes(a.toLowerCase())) opt.scenarios.push(a.toLowerCase());
    else throw new Error(`unknown argument ${a} (scenarios: ${SCENARIOS.join(' ')})`);
  }
  if (!opt.scenarios.length) opt.scenarios = [...SCENARIOS];
  for (const k of ['seconds', 'runs', 'idleConns', 't1Bytes']) {
    if (!(opt[k] > 0)) throw new Error(`${k} must be a positive number`);
  }
  if (!(opt.warmup >= 0)) throw new Error('warmup must be >= 0');
  if (opt.peers) for (const p of opt.peers) if (!PEERS[p]) throw new Error(`unknown peer ${p} (${Object.keys(PEERS).join(', ')})`);
  for (const t of opt.threads) if (!(Number.isInteger(t) && t >= 1 && t <= 64)) throw new Error('threads must be integers 1-64');
  return opt;
}

/** Which CPUs the proxy and the load side (load generator + origin) are pinned to. */
function cpuPlan(threads) {
  const n = os.availableParallelism ? os.availableParallelism() : os.cpus().length;
  const range = (a, b) => (a === b ? String(a) : `${a}-${b}`);
  if (n >= threads + 1) return { proxy: range(0, threads - 1), load: range(threads, n - 1), shared: false };
  return { proxy: range(0, n - 1), load: range(n - 1, n - 1), shared: true };
}

function machineInfo() {
  const cpuinfo = fs.readFileSync('/proc/cpuinfo', 'utf8');
  const model = (/^model name\s*:\s*(.*)$/m.exec(cpuinfo) || [])[1] || os.cpus()[0].model;
  const git = (args) => procs.safeExec('git', ['-C', ROOT, ...args]);
  let addon = null;
  for (const f of ['build/Release/legato.node', 'prebuilds/linux-x64/legato.node']) {
    try { const st = fs.statSync(path.join(ROOT, f)); addon = { file: f, mtime: st.mtime.toISOString(), size: st.size }; break; } catch (_) { /* next */ }
  }
  return {
    nproc: Number(procs.safeExec('nproc', [])) || os.cpus().length,
    cpuModel: model,
    memTotalGiB: +(os.totalmem() / 2 ** 30).toFixed(1),
    kernel: os.release(),
    node: process.version,
    haproxy: haveHaproxy().version || null,
    nginx: haveNginx().version || null,
    wrk: (/wrk (\S+)/.exec(procs.safeExec('sh', ['-c', 'wrk -v 2>&1'])) || [])[1] || null,
    tinyproxy: PEERS.tinyproxy.available().version || null,
    squid: PEERS.squid.available().version || null,
    legato: {
      commit: git(['rev-parse', '--short', 'HEAD']) || null,
      dirtyFiles: git(['status', '--porcelain', '--', 'src', 'lib', 'binding.gyp']).split('\n').filter(Boolean).length,
      addon,
    },
  };
}

function peerList(scenario, ctx, notes) {
  const names = scenario.peers.slice();
  if ((process.env.BENCH_LEGATO_ALT || process.env.BENCH_LEGATO_ALT_ROOT || process.env.BENCH_LEGATO_ALT_SCHEDULER) && names.includes('legato')) names.splice(names.indexOf('legato') + 1, 0, 'legato-alt');
  const wanted = names.filter((p) => !ctx.opt.peers || ctx.opt.peers.includes(p));
  const out = [];
  for (const name of wanted) {
    const a = PEERS[name].available();
    if (!a.ok) {
      if (!ctx.skipped.has(name)) { ctx.skipped.set(name, a.why); ctx.log(`skipping ${name}: ${a.why}`); }
      continue;
    }
    // A scenario may run a peer in another mode (S6: HAProxy as a plain TCP proxy beside the
    // CONNECT proxies): scenario.peerMode(name).
    const sup = PEERS[name].supports((scenario.peerMode && scenario.peerMode(name)) || scenario.mode);
    if (sup !== true) { notes.push(`${PEERS[name].label} left out: ${sup}.`); continue; }
    out.push(PEERS[name]);
  }
  return out;
}

const QUIET_PCT = 15; // % of one CPU used by other processes below which the machine counts as quiet
const BACKGROUND_WARN_PCT = 10; // % of one CPU used by other processes during a run that gets flagged
const NOISY_RETRIES = process.env.BENCH_NOISY_RETRIES !== undefined ? Number(process.env.BENCH_NOISY_RETRIES) : 2; // times a flagged run is repeated before it is kept with its warning (BENCH_NOISY_RETRIES)

/** Wait (bounded by --quiet-wait) until processes other than ours use little CPU. */
async function waitQuiet(ctx) {
  if (!(ctx.opt.quietWait > 0)) return;
  const deadline = Date.now() + ctx.opt.quietWait * 1000;
  let said = false;
  for (;;) {
    const a = procs.loadSample();
    await util.sleep(500);
    const bg = procs.backgroundLoad(a, procs.loadSample());
    if (bg < QUIET_PCT) return;
    if (Date.now() > deadline) { ctx.log(`  machine still busy (${bg.toFixed(0)} % of a CPU used by others): running anyway`); return; }
    if (!said) { ctx.log(`  waiting for other processes to calm down (${bg.toFixed(0)} % of a CPU)…`); said = true; }
  }
}

/** Run one scenario: for each case, `runs` rounds, each round every peer (and thread count). */
async function runScenario(scenario, ctx) {
  const result = { id: scenario.id, title: scenario.title, notes: scenario.notes ? scenario.notes(ctx) : [], cases: [] };
  const pending = scenario.pending ? scenario.pending(ctx) : null;
  if (pending) {
    result.pending = pending;
    ctx.log(`${scenario.id}: pending: ${pending}`);
    return result;
  }
  // A scenario (or one of its cases, through kase.mode) whose mode legato does not implement yet
  // is pending: it is reported as such, and runs for the other peers only with --include-pending.
  const lacksFor = (mode) => (haveLegato().ok ? legatoLacks(mode) : null);
  const lacks = lacksFor(scenario.mode);
  if (lacks) {
    result.pending = lacks;
    ctx.log(`${scenario.id}: pending: ${lacks}${ctx.opt.includePending ? ' (running the other peers: --include-pending)' : ' (--include-pending runs the other peers)'}`);
    if (!ctx.opt.includePending) return result;
  }
  const peersFor = {};
  const threadsList = scenario.threadVariants ? ctx.opt.threads : [1];
  const env = await scenario.setup(ctx);
  try {
    // BENCH_CASES=hs-ecdsa,1k runs only those cases' ids (any scenario; S6 also has BENCH_S6_CASES).
    const only = process.env.BENCH_CASES ? process.env.BENCH_CASES.split(',') : null;
    for (const kase of scenario.cases(ctx, env).filter((k) => !only || only.includes(k.id))) {
      const mode = kase.mode || scenario.mode;
      const caseLacks = mode !== scenario.mode ? lacksFor(mode) : null;
      if (caseLacks && !ctx.opt.includePending) {
        ctx.log(`${scenario.id} ${kase.label}: pending: ${caseLacks}`);
        result.cases.push({ id: kase.id, label: kase.label, pending: caseLacks, rows: [] });
        continue;
      }
      if (!peersFor[mode]) peersFor[mode] = peerList({ ...scenario, mode }, ctx, result.notes);
      const rows = [];
      for (const p of peersFor[mode]) {
        if (kase.peers && !kase.peers.includes(p.name === 'legato-alt' ? 'legato' : p.name)) continue; // the candidate runs where legato does
        for (const threads of p.name === 'direct' ? [1] : threadsList) {
          rows.push({ peer: p.name, label: p.label, threads: p.name === 'direct' ? null : threads, runs: [], errors: [], warnings: [], noisy: [] });
        }
      }
      for (let run = 1; run <= ctx.opt.runs; run++) {
        for (const row of rows) {
          const peer = PEERS[row.peer];
          const plan = cpuPlan(row.threads || 1);
          const spec = { ...scenario.spec(ctx, env, kase, row.peer), threads: row.threads || 1, cpus: plan.proxy };
          ctx.log(`${scenario.id} ${kase.label} · ${row.label}${row.threads ? ` ×${row.threads}` : ''} · run ${run}/${ctx.opt.runs}`);
          // A run disturbed by other processes is repeated (at most NOISY_RETRIES times).
          for (let attempt = 0; ; attempt++) {
            let handle = null;
            let m = null;
            try {
              await waitQuiet(ctx);
              handle = await peer.start(ctx, spec);
              const l0 = procs.loadSample();
              m = await scenario.measure(ctx, env, kase, handle, { peer: row.peer, threads: row.threads, plan });
              m.backgroundCpuPct = procs.backgroundLoad(l0, procs.loadSample());
              m.attempt = attempt + 1;
            } catch (err) {
              row.errors.push(`run ${run}: ${err.message}`);
              ctx.log(`  ✗ ${err.message.slice(0, 2000)}`);
            } finally {
              if (handle) await handle.stop();
            }
            if (ctx.interrupted) throw new Error('interrupted');
            if (!m) break;
            const noisy = m.backgroundCpuPct > BACKGROUND_WARN_PCT;
            if (noisy && attempt < NOISY_RETRIES) {
              ctx.log(`  other processes used ${m.backgroundCpuPct.toFixed(0)} % of a CPU during the run: repeating it (${scenario.brief(m)})`);
              continue;
            }
            if (noisy) {
              const msg = `other processes used ${m.backgroundCpuPct.toFixed(0)} % of a CPU during run ${run} (kept after ${NOISY_RETRIES} repeats)`;
              row.noisy.push(msg);
              ctx.log(`  ~ ${msg}`);
            }
            row.runs.push(m);
            for (const w of m.warnings || []) { row.warnings.push(`run ${run}: ${w}`); ctx.log(`  ! ${w}`); }
            ctx.log(`  ${scenario.brief(m)}`);
            break;
          }
        }
      }
      for (const row of rows) row.summary = report.summarizeRuns(row.runs, scenario.columns);
      result.cases.push({ id: kase.id, label: kase.label, rows, plan: cpuPlan(1), ratioKeys: kase.ratioKeys || null, ...(caseLacks ? { pending: caseLacks } : {}) });
    }
  } finally {
    await scenario.teardown(ctx, env);
  }
  if (scenario.conclude) scenario.conclude(result, ctx);
  return result;
}

/**
 * Copy the addon node-gyp-build would load into a temp dir and point every legato peer at the
 * copy (LEGATO_ADDON, honoured by lib/binding.js), so a rebuild by someone else during the run
 * cannot mix two builds in one table.
 */
function snapshotAddon(ctx) {
  let src = process.env.LEGATO_ADDON ? path.resolve(process.env.LEGATO_ADDON) : null;
  if (!src) {
    try { src = require(path.join(ROOT, 'node_modules', 'node-gyp-build')).path(ROOT); } catch (_) { return; }
  }
  const dst = path.join(procs.tempDir('addon'), 'legato.node');
  fs.copyFileSync(src, dst);
  process.env.LEGATO_ADDON = dst;
  const hash = require('crypto').createHash('sha256').update(fs.readFileSync(dst)).digest('hex').slice(0, 16);
  ctx.machine.legato.addon = { ...(ctx.machine.legato.addon || {}), loaded: src.startsWith(ROOT) ? path.relative(ROOT, src) : src, sha256: hash };
  ctx.log(`legato addon: ${ctx.machine.legato.addon.loaded} (sha256 ${hash}…), snapshotted for this run`);
  if (process.env.BENCH_LEGATO_ALT_ROOT) ctx.machine.legato.altRoot = path.resolve(process.env.BENCH_LEGATO_ALT_ROOT);
  if (process.env.BENCH_LEGATO_ALT) {
    const alt = path.join(procs.tempDir('addon-alt'), 'legato.node');
    fs.copyFileSync(process.env.BENCH_LEGATO_ALT, alt);
    ctx.machine.legato.altAddon = path.resolve(process.env.BENCH_LEGATO_ALT);
    process.env.BENCH_LEGATO_ALT = alt;
  }
}

async function main() {
  const opt = parseArgs(process.argv.slice(2));
  if (opt.report) {
    process.stdout.write(report.markdown(JSON.parse(fs.readFileSync(opt.report, 'utf8'))));
    return;
  }
  procs.installCleanupHandlers();
  const ctx = {
    opt,
    skipped: new Map(),
    interrupted: false,
    log: (m) => process.stderr.write(`[bench ${new Date().toISOString().slice(11, 19)}] ${m}\n`),
    cpuPlan,
  };
  procs.onInterrupt(() => { ctx.interrupted = true; });

  if (!haveLegato().ok) {
    ctx.log('legato addon missing: running `npm run build` once');
    procs.safeExec('npm', ['run', 'build', '--prefix', ROOT]);
  }
  for (const [name, info] of [['haproxy', haveHaproxy()], ['nginx', PEERS.nginx.available()], ['legato', haveLegato()]]) {
    if (!info.ok) ctx.log(`${name} unavailable: ${info.why}`);
  }
  if (!procs.safeExec('sh', ['-c', 'command -v wrk'])) ctx.log(`wrk not installed: S1 is skipped (${INSTALL_HINT})`);

  ctx.machine = machineInfo();
  snapshotAddon(ctx);
  ctx.certs = generateCerts(procs.tempDir('certs'));
  const started = new Date();
  ctx.log(`machine: ${ctx.machine.nproc} CPUs, ${ctx.machine.cpuModel}; proxy on CPU ${cpuPlan(1).proxy}, load generator + origin on CPU ${cpuPlan(1).load}`);

  const results = [];
  for (const id of opt.scenarios) {
    const scenario = require(`./scenarios/${id}`);
    try {
      results.push(await runScenario(scenario, ctx));
    } catch (err) {
      if (ctx.interrupted) break;
      ctx.log(`${scenario.id} failed: ${err.stack}`);
      results.push({ id: scenario.id, title: scenario.title, failed: err.message, cases: [] });
    }
  }

  if (ctx.interrupted) {
    ctx.log('interrupted: no results written');
    return;
  }
  const doc = {
    date: started.toISOString(),
    finished: new Date().toISOString(),
    machine: ctx.machine,
    settings: { seconds: opt.seconds, runs: opt.runs, warmup: opt.warmup, threads: opt.threads, idleConns: opt.idleConns, t1Bytes: opt.t1Bytes, cpuPlan: cpuPlan(1) },
    skippedPeers: Object.fromEntries(ctx.skipped),
    scenarios: results,
  };
  const md = report.markdown(doc);
  process.stdout.write(md);
  const dir = process.env.BENCH_RESULTS_DIR ? path.resolve(process.env.BENCH_RESULTS_DIR) : path.join(__dirname, 'results');
  fs.mkdirSync(dir, { recursive: true });
  const stamp = started.toISOString().replace(/:/g, '-').replace(/\..*$/, '');
  fs.writeFileSync(path.join(dir, `${stamp}.json`), JSON.stringify(doc, null, 2));
  fs.writeFileSync(path.join(dir, `${stamp}.md`), md);
  ctx.log(`wrote ${path.relative(process.cwd(), path.join(dir, stamp))}.json and .md`);
}

main().then(() => { procs.cleanupSync(); process.exit(0); }, (err) => {
  process.stderr.write(`bench: ${err.stack || err}\n`);
  procs.cleanupSync();
  process.exit(1);
});
