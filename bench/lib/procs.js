'use strict';
// Child processes and temporary directories of a benchmark run, and what we measure about a
// process from /proc.
//
// Every child is spawned in its own process group (detached) and recorded here, so that a normal
// exit, an exception, or Ctrl-C kills every group we started (SIGTERM, then SIGKILL) and removes
// every temporary directory. Only processes this file spawned are ever signalled.

const { spawn, execFileSync } = require('child_process');
const fs = require('fs');
const os = require('os');
const path = require('path');

const CLK_TCK = Number(safeExec('getconf', ['CLK_TCK'])) || 100;
const PAGE_SIZE = Number(safeExec('getconf', ['PAGESIZE'])) || 4096;

const children = new Set();
const tempDirs = new Set();
let cleanedUp = false;

function safeExec(cmd, args) {
  try {
    return execFileSync(cmd, args, { encoding: 'utf8', stdio: ['ignore', 'pipe', 'ignore'], timeout: 10000 }).trim();
  } catch (err) {
    // A non-zero exit still counts when it printed something (`wrk -v` exits 1).
    return typeof err.stdout === 'string' ? err.stdout.trim() : '';
  }
}

/** A fresh temporary directory, removed at exit. */
function tempDir(prefix) {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), `legato-bench-${prefix}-`));
  tempDirs.add(dir);
  return dir;
}

function removeTempDir(dir) {
  try { fs.rmSync(dir, { recursive: true, force: true }); } catch (_) { /* best effort */ }
  tempDirs.delete(dir);
}

/**
 * Spawn `cmd args` in a new process group, optionally pinned with `taskset -c <cpus>` (taskset
 * execs the command, so the pid is the command's). stdout/stderr are kept (last 64 KiB) for
 * diagnostics and line waiting.
 */
/**
 * The environment for a program that is not Node: without the sanitizer preload that
 * `npm run test:asan` puts into node for legato's addon (libasan would run, and judge, the peer
 * itself: squid 5.7 aborts under it on its own new/delete mismatch).
 */
function foreignEnv() {
  const env = { ...process.env };
  for (const k of ['LD_PRELOAD', 'ASAN_OPTIONS', 'UBSAN_OPTIONS', 'LSAN_OPTIONS']) delete env[k];
  return env;
}

function spawnTracked(cmd, args, opts = {}) {
  let file = cmd;
  let argv = args;
  if (opts.cpus !== undefined && opts.cpus !== null) {
    file = 'taskset';
    argv = ['-c', String(opts.cpus), cmd, ...args];
  }
  const child = spawn(file, argv, {
    detached: true,
    stdio: ['pipe', 'pipe', 'pipe'],
    env: opts.env || (cmd === process.execPath ? process.env : foreignEnv()),
    cwd: opts.cwd,
  });
  child.label = opts.name || path.basename(cmd);
  child.out = '';
  child.err = '';
  child.exited = false;
  child.lineWaiters = [];
  children.add(child);
  const keep = (s) => (s.length > 65536 ? s.slice(-65536) : s);
  child.stdout.setEncoding('utf8');
  child.stderr.setEncoding('utf8');
  child.stdout.on('data', (d) => {
    child.out = keep(child.out + d);
    for (const w of child.lineWaiters.slice()) w();
  });
  child.stderr.on('data', (d) => { child.err = keep(child.err + d); });
  child.stdin.on('error', () => {});
  child.on('error', (err) => { child.spawnError = err; child.exited = true; for (const w of child.lineWaiters.slice()) w(); });
  child.on('exit', (code, signal) => {
    child.exited = true;
    child.exitCode = code;
    child.exitSignal = signal;
    children.delete(child);
    for (const w of child.lineWaiters.slice()) w();
  });
  return child;
}

/**
 * Resolve with the first match of `re` in the child's stdout (from `fromIndex`), reject if the
 * child exits first or `timeoutMs` passes.
 */
function waitForOutput(child, re, timeoutMs = 10000, fromIndex = 0) {
  return new Promise((resolve, reject) => {
    let timer = null;
    const check = () => {
      const m = re.exec(child.out.slice(fromIndex));
      if (m) { done(); resolve(m); return; }
      if (child.exited) {
        done();
        reject(new Error(`${child.label} exited (${child.spawnError ? child.spawnError.message : `code ${child.exitCode} signal ${child.exitSignal}`}) before printing ${re}; stderr: ${child.err.slice(-2000)} stdout: ${child.out.slice(-500)}`));
      }
    };
    const done = () => {
      clearTimeout(timer);
      const i = child.lineWaiters.indexOf(check);
      if (i >= 0) child.lineWaiters.splice(i, 1);
    };
    timer = setTimeout(() => { done(); reject(new Error(`${child.label}: no ${re} within ${timeoutMs} ms; stderr: ${child.err.slice(-2000)}`)); }, timeoutMs);
    child.lineWaiters.push(check);
    check();
  });
}

/** Resolve when the child has exited (or after timeoutMs, with false). */
function waitExit(child, timeoutMs) {
  if (child.exited) return Promise.resolve(true);
  return new Promise((resolve) => {
    const t = setTimeout(() => resolve(false), timeoutMs);
    child.once('exit', () => { clearTimeout(t); resolve(true); });
  });
}

function signalGroup(child, sig) {
  if (child.exited || !child.pid) return;
  try { process.kill(-child.pid, sig); } catch (_) {
    try { child.kill(sig); } catch (_e) { /* gone */ }
  }
}

/** SIGTERM the child's process group, then SIGKILL it after graceMs. */
async function stopChild(child, graceMs = 3000, sig = 'SIGTERM') {
  if (!child || child.exited) return;
  signalGroup(child, sig);
  if (!(await waitExit(child, graceMs))) {
    signalGroup(child, 'SIGKILL');
    await waitExit(child, 2000);
  }
  // The group may hold processes that outlive the leader (nginx workers): make sure.
  try { process.kill(-child.pid, 'SIGKILL'); } catch (_) { /* group empty */ }
}

/** Synchronous last-resort cleanup: kill every group we started, remove temp dirs. */
function cleanupSync() {
  if (cleanedUp) return;
  cleanedUp = true;
  for (const c of children) signalGroup(c, 'SIGKILL');
  for (const d of [...tempDirs]) removeTempDir(d);
}

let interruptHandlers = [];
function onInterrupt(fn) { interruptHandlers.push(fn); }

function installCleanupHandlers() {
  process.on('exit', cleanupSync);
  const handler = (sig) => {
    process.stderr.write(`\n${sig}: stopping every child process and removing temp dirs...\n`);
    for (const fn of interruptHandlers) { try { fn(); } catch (_) { /* best effort */ } }
    for (const c of children) signalGroup(c, 'SIGTERM');
    setTimeout(() => { cleanupSync(); process.exit(130); }, 500).unref();
  };
  process.on('SIGINT', handler);
  process.on('SIGTERM', handler);
  process.on('SIGHUP', handler);
}

/* ----------------------------------- /proc measurements ----------------------------------- */

function readStat(pid) {
  let s;
  try { s = fs.readFileSync(`/proc/${pid}/stat`, 'utf8'); } catch (_) { return null; }
  const r = s.lastIndexOf(')');
  const f = s.slice(r + 2).split(' ');
  // f[0] is field 3 (state): field n is f[n - 3].
  return {
    pid,
    ppid: Number(f[1]),
    utime: Number(f[11]),
    stime: Number(f[12]),
    cutime: Number(f[13]),
    cstime: Number(f[14]),
    rssPages: Number(f[21]),
  };
}

/** pid and all its descendants (processes, not threads: a process's stat covers its threads). */
function processTree(rootPid) {
  const byParent = new Map();
  for (const name of fs.readdirSync('/proc')) {
    if (!/^\d+$/.test(name)) continue;
    const st = readStat(Number(name));
    if (!st) continue;
    if (!byParent.has(st.ppid)) byParent.set(st.ppid, []);
    byParent.get(st.ppid).push(st.pid);
  }
  const out = [];
  const stack = [rootPid];
  while (stack.length) {
    const p = stack.pop();
    out.push(p);
    for (const c of byParent.get(p) || []) stack.push(c);
  }
  return out;
}

/** user+sys CPU seconds of a process tree (live processes). */
function treeCpuSeconds(rootPid) {
  let ticks = 0;
  for (const pid of processTree(rootPid)) {
    const st = readStat(pid);
    if (st) ticks += st.utime + st.stime;
  }
  return ticks / CLK_TCK;
}

/**
 * CPU seconds used by this bench process and everything it started, including children that
 * have exited (their time is in their parent's cutime/cstime once reaped).
 */
function ourCpuSeconds() {
  let ticks = 0;
  for (const pid of processTree(process.pid)) {
    const st = readStat(pid);
    if (st) ticks += st.utime + st.stime + st.cutime + st.cstime;
  }
  return ticks / CLK_TCK;
}

/** A sample for backgroundLoad(): all CPUs' busy time, ours, and the wall clock. */
function loadSample() {
  // Only time charged to processes (user, nice, system): with tick accounting, softirq time (the
  // loopback network stack) is charged to no process, so it would look like someone else's load.
  let busy = 0;
  for (const v of Object.values(cpuTimes())) busy += v.proc;
  return { busy: busy / CLK_TCK, ours: ourCpuSeconds(), wall: Number(process.hrtime.bigint()) / 1e9 };
}

/**
 * Busy CPU time of processes that are not ours (other users of the machine) between two
 * samples, as a percentage of one CPU. Noise in throughput figures shows up here first.
 */
function backgroundLoad(a, b) {
  const wall = b.wall - a.wall;
  if (wall <= 0) return null;
  return Math.max(0, (100 * ((b.busy - a.busy) - (b.ours - a.ours))) / wall);
}

/** Resident set size of a process tree in bytes (sum of the processes' RSS). */
function treeRssBytes(rootPid) {
  let pages = 0;
  for (const pid of processTree(rootPid)) {
    const st = readStat(pid);
    if (st) pages += st.rssPages;
  }
  return pages * PAGE_SIZE;
}

/** Open file descriptors of a process tree. */
function treeFds(rootPid) {
  let n = 0;
  for (const pid of processTree(rootPid)) {
    try { n += fs.readdirSync(`/proc/${pid}/fd`).length; } catch (_) { /* gone or not ours */ }
  }
  return n;
}

/** Per-CPU busy/total jiffies from /proc/stat, to tell whether the load side was saturated. */
function cpuTimes() {
  const out = {};
  for (const line of fs.readFileSync('/proc/stat', 'utf8').split('\n')) {
    const m = /^cpu(\d+)\s+(.*)$/.exec(line);
    if (!m) continue;
    const v = m[2].split(/\s+/).map(Number);
    // user nice system idle iowait irq softirq steal
    const idle = v[3] + (v[4] || 0);
    const total = v.slice(0, 8).reduce((a, b) => a + b, 0);
    out[m[1]] = { idle, total, proc: v[0] + v[1] + v[2], softirq: (v[5] || 0) + (v[6] || 0) };
  }
  return out;
}

/** Busy fraction of one CPU between two cpuTimes() samples. */
function cpuBusy(before, after, cpu) {
  const b = before[cpu];
  const a = after[cpu];
  if (!a || !b || a.total === b.total) return null;
  return 1 - (a.idle - b.idle) / (a.total - b.total);
}

module.exports = {
  CLK_TCK, PAGE_SIZE, tempDir, removeTempDir, spawnTracked, waitForOutput, waitExit, stopChild,
  installCleanupHandlers, onInterrupt, cleanupSync, treeCpuSeconds, treeRssBytes, treeFds,
  processTree, cpuTimes, cpuBusy, safeExec, ourCpuSeconds, loadSample, backgroundLoad,
};
