'use strict';
// Builds and runs the libFuzzer targets of the pure core (fuzz/fuzz_*.c).
//
//   node fuzz/run.js [target] [seconds] [-- extra libFuzzer flags]
//   npm run fuzz -- --minutes N [target]     longer runs outside CI: N minutes per target (every
//                                            target unless one is named), corpora kept
//
// `target` is a name such as `hello` (fuzz/fuzz_hello.c) or omitted for every fuzz_*.c;
// `seconds` is the run time per target (default 60). Each target #includes the module it tests
// ("../src/lg_X.c"), so only src/lg_common.c is linked in. Binaries go to fuzz/bin/ (gitignored).
// The committed seed corpus fuzz/corpus/<target>/ is copied to a temporary working corpus, so
// runs never grow it (with --minutes the working corpus is fuzz/work/<target>/, gitignored and
// kept between runs, so long runs build on each other); crash, leak and timeout inputs are written to fuzz/ (gitignored) and their
// paths printed. Exits 1 if a target fails to build or libFuzzer reports a finding.
const { execFileSync, spawn } = require('child_process');
const fs = require('fs');
const os = require('os');
const path = require('path');

const root = path.join(__dirname, '..');
const binDir = path.join(__dirname, 'bin');
const DEFAULT_SECONDS = 60;
const MAX_LEN = 32768; // bytes: above every parser's limit (the ClientHello raw limit is 17408)
const TIMEOUT = 5; // seconds per input before libFuzzer calls it a hang
const TAIL_BYTES = 256 * 1024; // libFuzzer output kept for the summary

const cc = process.env.CC_FUZZ || 'clang';
const cflags = [
  '-std=c11', '-g', '-O1', '-Wall', '-Wextra', '-Wshadow', '-Wstrict-prototypes', '-Werror',
  '-fsanitize=fuzzer,address,undefined', '-fno-sanitize-recover=all', '-fno-omit-frame-pointer',
  '-D_GNU_SOURCE', '-I', path.join(root, 'src'),
];

function usage(msg) {
  if (msg) console.error(msg);
  console.error('usage: node fuzz/run.js [target] [seconds | --minutes N] [-- libFuzzer flags]');
  process.exit(2);
}

function parseArgs(argv) {
  const dash = argv.indexOf('--');
  const extra = dash >= 0 ? argv.slice(dash + 1) : [];
  const args = dash >= 0 ? argv.slice(0, dash) : argv;
  let target = null;
  let seconds = DEFAULT_SECONDS;
  let keep = false;
  for (let i = 0; i < args.length; i++) {
    const a = args[i];
    if (a === '--minutes') {
      const m = Number(args[++i]);
      if (!(m > 0)) usage('--minutes needs a positive number');
      seconds = Math.round(m * 60);
      keep = true;
    } else if (/^\d+$/.test(a)) seconds = Number(a);
    else if (target === null) target = a.replace(/^fuzz_/, '').replace(/\.c$/, '');
    else usage(`unexpected argument: ${a}`);
  }
  if (seconds < 1) usage('seconds must be at least 1');
  return { target, seconds, extra, keep };
}

function targets(only) {
  const all = fs.readdirSync(__dirname)
    .filter((f) => /^fuzz_[a-z0-9_]+\.c$/.test(f))
    .map((f) => f.slice('fuzz_'.length, -2))
    .sort();
  if (only === null) return all;
  if (!all.includes(only)) usage(`no fuzz target fuzz/fuzz_${only}.c (have: ${all.join(', ') || 'none'})`);
  return [only];
}

function build(name) {
  fs.mkdirSync(binDir, { recursive: true });
  const exe = path.join(binDir, `fuzz_${name}`);
  // A target that needs libraries says so in a comment: LG_FUZZ_LIBS: -lcrypto
  const libs = (/LG_FUZZ_LIBS:([^\n*]*)/.exec(fs.readFileSync(path.join(__dirname, `fuzz_${name}.c`), 'utf8')) || ['', ''])[1]
    .trim().split(/\s+/).filter(Boolean);
  execFileSync(cc, [...cflags, '-o', exe, path.join(__dirname, `fuzz_${name}.c`),
    path.join(root, 'src', 'lg_common.c'), ...libs], { stdio: ['ignore', 'inherit', 'inherit'] });
  return exe;
}

// A working corpus holding a copy of the committed seeds: fresh in a temporary directory, or
// fuzz/work/<name>/ kept between runs (`keep`: seeds added to what earlier runs found).
function workCorpus(name, keep) {
  const work = keep ? path.join(__dirname, 'work', name) : fs.mkdtempSync(path.join(os.tmpdir(), `legato-fuzz-${name}-`));
  if (keep) fs.mkdirSync(work, { recursive: true });
  const seeds = path.join(__dirname, 'corpus', name);
  let n = 0;
  if (fs.existsSync(seeds)) {
    for (const f of fs.readdirSync(seeds)) {
      const src = path.join(seeds, f);
      if (fs.statSync(src).isFile()) {
        fs.copyFileSync(src, path.join(work, f));
        n++;
      }
    }
  }
  return { work, n };
}

function run(exe, corpus, seconds, extra) {
  const args = [
    `-max_total_time=${seconds}`, `-timeout=${TIMEOUT}`, `-max_len=${MAX_LEN}`,
    `-artifact_prefix=${__dirname}${path.sep}`, '-print_final_stats=1', ...extra, corpus,
  ];
  return new Promise((resolve) => {
    const child = spawn(exe, args, { stdio: ['ignore', 'inherit', 'pipe'] });
    let tail = '';
    child.stderr.on('data', (d) => {
      process.stderr.write(d);
      tail = (tail + d.toString('utf8')).slice(-TAIL_BYTES);
    });
    child.on('close', (code, signal) => resolve({ code, signal, out: tail }));
  });
}

function summary(out) {
  const done = [...out.matchAll(/^#(\d+)\s+DONE\s+cov: (\d+) ft: (\d+) corp: (\S+)/gm)].pop();
  const execs = /stat::number_of_executed_units:\s*(\d+)/.exec(out);
  const speed = /stat::average_exec_per_sec:\s*(\d+)/.exec(out);
  const parts = [];
  if (execs) parts.push(`${execs[1]} execs`);
  if (speed) parts.push(`${speed[1]} exec/s`);
  if (done) parts.push(`cov ${done[2]}`, `ft ${done[3]}`, `corpus ${done[4]}`);
  return parts.join(', ');
}

async function main() {
  const { target, seconds, extra, keep } = parseArgs(process.argv.slice(2));
  let failed = 0;
  for (const name of targets(target)) {
    let exe;
    try {
      exe = build(name);
    } catch (e) {
      console.log(`fuzz_${name}: build failed`);
      failed++;
      continue;
    }
    const { work, n } = workCorpus(name, keep);
    console.log(`fuzz_${name}: ${seconds}s from ${n} seeds (working corpus ${work})`);
    const r = await run(exe, work, seconds, extra);
    if (!keep) fs.rmSync(work, { recursive: true, force: true });
    const artifacts = [...r.out.matchAll(/Test unit written to (\S+)/g)].map((m) => m[1]);
    if (r.code !== 0 || artifacts.length > 0) {
      failed++;
      console.log(`fuzz_${name}: FAILED (exit ${r.code}${r.signal ? `, signal ${r.signal}` : ''})`);
      for (const a of artifacts) console.log(`  crash input: ${a}`);
      if (artifacts.length) console.log(`  reproduce: ${exe} ${artifacts[0]}`);
    } else {
      console.log(`fuzz_${name}: ok (${summary(r.out)})`);
    }
  }
  process.exit(failed ? 1 : 0);
}

main();
