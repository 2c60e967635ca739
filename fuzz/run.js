'use strict';
// Builds and runs the libFuzzer targets of the pure core (fuzz/fuzz_*.c).
//
//   node fuzz/run.js [target[:seconds] ...] [seconds] [--jobs N] [-- extra libFuzzer flags]
//   npm run fuzz -- --minutes N [target ...]  longer runs outside CI: N minutes per target (every
//                                            target unless some are named), corpora kept
//
// A target is a name such as `hello` (fuzz/fuzz_hello.c); none named means every fuzz_*.c.
// `seconds` is the run time per target (default 60); `name:seconds` gives one target its own.
// `--jobs N` runs up to N targets at once (each libFuzzer process is single-threaded, so on a
// machine with N CPUs the wall time is about 1/N): their output is kept, not streamed, and a
// target's last lines are printed only if it fails. Each target #includes the module it tests
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
  console.error('usage: node fuzz/run.js [target[:seconds] ...] [seconds | --minutes N] [--jobs N] [-- libFuzzer flags]');
  process.exit(2);
}

function parseArgs(argv) {
  const dash = argv.indexOf('--');
  const extra = dash >= 0 ? argv.slice(dash + 1) : [];
  const args = dash >= 0 ? argv.slice(0, dash) : argv;
  const named = []; // [name, seconds or null]
  let seconds = DEFAULT_SECONDS;
  let keep = false;
  let jobs = 1;
  for (let i = 0; i < args.length; i++) {
    const a = args[i];
    if (a === '--minutes') {
      const m = Number(args[++i]);
      if (!(m > 0)) usage('--minutes needs a positive number');
      seconds = Math.round(m * 60);
      keep = true;
    } else if (a === '--jobs') {
      jobs = Number(args[++i]);
      if (!Number.isInteger(jobs) || jobs < 1 || jobs > 64) usage('--jobs needs an integer 1-64');
    } else if (/^\d+$/.test(a)) {
      seconds = Number(a);
    } else {
      const m = /^(?:fuzz_)?([a-z0-9_]+?)(?:\.c)?(?::(\d+))?$/.exec(a);
      if (!m) usage(`unexpected argument: ${a}`);
      const seconds1 = m[2] === undefined ? null : Number(m[2]);
      const at = named.findIndex(([n]) => n === m[1]);
      if (at >= 0) named[at][1] = seconds1; // named twice: once (two lanes would share its binary)
      else named.push([m[1], seconds1]);
    }
  }
  if (seconds < 1 || named.some(([, t]) => t !== null && t < 1)) usage('seconds must be at least 1');
  return { named, seconds, extra, keep, jobs };
}

/** [name, seconds] for every target to run, in order. */
function targets(named, seconds) {
  const all = fs.readdirSync(__dirname)
    .filter((f) => /^fuzz_[a-z0-9_]+\.c$/.test(f))
    .map((f) => f.slice('fuzz_'.length, -2))
    .sort();
  if (named.length === 0) return all.map((name) => [name, seconds]);
  for (const [name] of named) {
    if (!all.includes(name)) usage(`no fuzz target fuzz/fuzz_${name}.c (have: ${all.join(', ') || 'none'})`);
  }
  return named.map(([name, t]) => [name, t === null ? seconds : t]);
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

function run(exe, corpus, seconds, extra, stream) {
  const args = [
    `-max_total_time=${seconds}`, `-timeout=${TIMEOUT}`, `-max_len=${MAX_LEN}`,
    `-artifact_prefix=${__dirname}${path.sep}`, '-print_final_stats=1', ...extra, corpus,
  ];
  return new Promise((resolve) => {
    const child = spawn(exe, args, { stdio: ['ignore', stream ? 'inherit' : 'pipe', 'pipe'] });
    let tail = '';
    const keep = (d) => {
      if (stream) process.stderr.write(d);
      tail = (tail + d.toString('utf8')).slice(-TAIL_BYTES);
    };
    child.stderr.on('data', keep);
    if (!stream) child.stdout.on('data', keep);
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

/** Builds and runs one target; resolves to true if it failed. */
async function fuzzOne(name, seconds, extra, keep, stream) {
  let exe;
  try {
    exe = build(name);
  } catch (e) {
    console.log(`fuzz_${name}: build failed`);
    return true;
  }
  const { work, n } = workCorpus(name, keep);
  console.log(`fuzz_${name}: ${seconds}s from ${n} seeds (working corpus ${work})`);
  const r = await run(exe, work, seconds, extra, stream);
  if (!keep) fs.rmSync(work, { recursive: true, force: true });
  const artifacts = [...r.out.matchAll(/Test unit written to (\S+)/g)].map((m) => m[1]);
  if (r.code !== 0 || artifacts.length > 0) {
    if (!stream) console.log(r.out.split('\n').slice(-60).join('\n'));
    console.log(`fuzz_${name}: FAILED (exit ${r.code}${r.signal ? `, signal ${r.signal}` : ''})`);
    for (const a of artifacts) console.log(`  crash input: ${a}`);
    if (artifacts.length) console.log(`  reproduce: ${exe} ${artifacts[0]}`);
    return true;
  }
  console.log(`fuzz_${name}: ok (${summary(r.out)})`);
  return false;
}

async function main() {
  const { named, seconds, extra, keep, jobs } = parseArgs(process.argv.slice(2));
  const queue = targets(named, seconds);
  let failed = 0;
  // Up to `jobs` lanes, each taking the next target when its last one ends.
  const lane = async () => {
    while (queue.length > 0) {
      const [name, t] = queue.shift();
      if (await fuzzOne(name, t, extra, keep, jobs === 1)) failed++;
    }
  };
  await Promise.all(Array.from({ length: jobs }, lane));
  process.exit(failed ? 1 : 0);
}

main();
