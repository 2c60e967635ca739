#!/usr/bin/env node
'use strict';
// Where S6's ping round trip goes: the `ping` case (32 bulk downloads and a 64-byte ping per ms
// through one legato worker on CPU 0; origins and clients on CPU 1), with every ping numbered and
// timed on the wire by tcpdump at four points: pinger → proxy, proxy → echo, echo → proxy,
// proxy → pinger. The proxy's own delay is the two forwarding gaps; the rest is the load CPU.
//
//   node bench/tools/ping-legs.js [seconds=10] [drr|fifo]      (root: needs tcpdump)
//   LEGATO_ROOT=<checkout> runs another checkout's build; DIRECT=1 runs without a proxy;
//   BULK_DIRECT=1 sends the 32 bulk downloads straight to the origin (only the ping through
//   legato: the hop's own cost, as S6's pinghop case).
//   SCHED=1 also records every context switch of the machine (perf, sched:sched_switch) and says
//   what CPU 0, the worker's, was doing during the forwarding gaps over 1 ms: the worker
//   running, idle (the bytes were late reaching it), or which other task held it.
//   TURNS=1 runs without tcpdump (which loads the machine; with DIRECT=1: the round trip only)
//   and records instead the worker's loop turns (perf: its epoll_wait returns and calls, and
//   every context switch on CPU 0): how long turns last, who held CPU 0 during the long ones,
//   how likely a byte arriving at a random moment waits more than X for the worker's next epoll
//   (at least the rest of the turn under way, at most that and the whole next turn: so for a
//   flow the worker does not look at mid-turn; an interactive flow, like the ping's, is looked at
//   every 128 KiB of bulk work while the worker runs), and how likely other tasks hold CPU 0
//   for more than X from that moment (which delays every flow).
// Prints percentiles (µs) of the round trip and of each part.

const { spawn, execFileSync } = require('child_process');
const fs = require('fs');
const os = require('os');
const path = require('path');

const ROOT = path.resolve(process.env.LEGATO_ROOT || path.join(__dirname, '..', '..'));
const LOAD = path.join(__dirname, 'sched-load.js');
const SECS = Number(process.argv[2] || 10);
const KIND = process.argv[3] || 'drr';
const DIRECT = !!process.env.DIRECT;
const TURNS = !!process.env.TURNS;
const TURN_EVENTS = ['enter', 'exit'].flatMap((e) => [`syscalls:sys_${e}_epoll_wait`, `syscalls:sys_${e}_epoll_pwait`]).join(',') + ',sched:sched_switch';

function waitLine(child, re) {
  return new Promise((resolve, reject) => {
    let acc = '';
    child.stdout.on('data', (d) => { acc += d; const m = acc.match(re); if (m) resolve(m); });
    child.on('exit', (c) => reject(new Error(`exit ${c}: ${acc}`)));
  });
}
const sleep = (ms) => new Promise((r) => setTimeout(r, ms));
const pinned = (cpu, args, opts) => spawn('taskset', ['-c', String(cpu), ...args], opts);

// The pinger: CONNECT (unless direct), the echo's mode byte, then 'P' + 7-digit id padded to 64
// bytes every ms; prints the round trips as [[id, µs], ...].
const PINGER = `
const net = require('net');
const [pp, ep, secs] = process.argv.slice(1).map(Number);
const s = net.connect({ host: '127.0.0.1', port: pp || ep });
s.setNoDelay(true);
const rtt = [], sent = new Map();
let acc = '', ready = !pp;
function go() {
  s.write('E');
  let id = 0;
  const iv = setInterval(() => { sent.set(id, process.hrtime.bigint()); s.write(('P' + String(id++).padStart(7, '0')).padEnd(64, '.')); }, 1);
  setTimeout(() => { clearInterval(iv); setTimeout(() => { console.log('result ' + JSON.stringify(rtt)); process.exit(0); }, 200); }, secs * 1000);
}
s.on('data', (d) => {
  acc += d.toString('latin1');
  if (!ready) { const i = acc.indexOf('\\r\\n\\r\\n'); if (i < 0) return; acc = acc.slice(i + 4); ready = true; go(); }
  while (acc.length >= 64) {
    const id = Number(acc.slice(1, 8)); acc = acc.slice(64);
    const t = sent.get(id);
    if (t !== undefined) { rtt.push([id, Number(process.hrtime.bigint() - t) / 1000]); sent.delete(id); }
  }
});
s.on('connect', () => { if (pp) s.write('CONNECT 127.0.0.1:' + ep + ' HTTP/1.1\\r\\n\\r\\n'); else go(); });`;

/** For each leg, the first time each ping id was seen on the wire (seconds). */
function legsFromPcap(pcap, eport, pport) {
  const out = execFileSync('tcpdump', ['-r', pcap, '-tt', '-n', '-A'], { encoding: 'latin1', maxBuffer: 1 << 30, stdio: ['ignore', 'pipe', 'ignore'] });
  const legs = { c2p: new Map(), p2e: new Map(), e2p: new Map(), p2c: new Map() };
  let leg = null;
  let t = 0;
  for (const line of out.split('\n')) {
    const m = /^(\d+\.\d+) IP 127\.0\.0\.1\.(\d+) > 127\.0\.0\.1\.(\d+):/.exec(line);
    if (m) {
      t = Number(m[1]);
      const src = Number(m[2]);
      const dst = Number(m[3]);
      if (pport) leg = dst === pport ? 'c2p' : src === pport ? 'p2c' : dst === eport ? 'p2e' : src === eport ? 'e2p' : null;
      else leg = dst === eport ? 'c2p' : src === eport ? 'p2c' : null;
      continue;
    }
    if (!leg) continue;
    for (const p of line.matchAll(/P(\d{7})/g)) {
      const id = Number(p[1]);
      if (!legs[leg].has(id)) legs[leg].set(id, t);
    }
  }
  return legs;
}

/** From `perf script` of sched_switch events: per CPU, [start, end, "comm:pid"] run intervals. */
function runIntervals(data) {
  const out = execFileSync('perf', ['script', '-i', data, '-F', 'cpu,time,trace'], { encoding: 'utf8', maxBuffer: 1 << 30, stdio: ['ignore', 'pipe', 'ignore'] });
  const re = /\[(\d+)\]\s+([\d.]+):\s+prev_comm=(.*?) prev_pid=(\d+).*next_comm=(.*?) next_pid=(\d+)/;
  const cur = new Map();
  const iv = new Map();
  for (const line of out.split('\n')) {
    const m = re.exec(line);
    if (!m) continue;
    const cpu = Number(m[1]);
    const t = Number(m[2]);
    if (!iv.has(cpu)) iv.set(cpu, []);
    if (cur.has(cpu)) iv.get(cpu).push([cur.get(cpu)[0], t, `${m[3]}:${m[4]}`]);
    cur.set(cpu, [t, `${m[5]}:${m[6]}`]);
  }
  return iv;
}

/**
 * TURNS: the worker's loop turns from `perf script` of epoll_wait/epoll_pwait enter and exit, and
 * what held CPU 0 (runIntervals of the same record's sched_switch). A turn runs from an epoll
 * return to the next epoll call (the worker's callbacks, and whatever held CPU 0 meanwhile).
 * Returns the lines to print.
 */
function turnReport(data) {
  const out = execFileSync('perf', ['script', '-i', data, '-F', 'tid,time,event'], { encoding: 'utf8', maxBuffer: 1 << 30, stdio: ['ignore', 'pipe', 'ignore'] });
  const calls = []; // [tid, t, returns]
  const epolls = new Map();
  for (const line of out.split('\n')) {
    const m = /^\s*(\d+)\s+([\d.]+):\s+\S+_epoll_p?wait:/.exec(line);
    if (!m) continue;
    calls.push([Number(m[1]), Number(m[2]), /sys_exit/.test(line)]);
    epolls.set(Number(m[1]), (epolls.get(Number(m[1])) || 0) + 1);
  }
  const tid = [...epolls].sort((a, b) => b[1] - a[1])[0][0]; // the worker: the busiest epoll caller
  const turns = []; // [start, end]
  let from = null;
  for (const [t, at, returns] of calls) {
    if (t !== tid) continue;
    if (returns) from = at;
    else if (from !== null) { turns.push([from, at]); from = null; }
  }
  const cpu0 = runIntervals(data).get(0) || [];
  const worker = (cpu0.find(([, , who]) => who.endsWith(`:${tid}`)) || [])[2];
  const span = cpu0.length ? cpu0[cpu0.length - 1][1] - cpu0[0][0] : 0;
  const lens = turns.map(([a, b]) => b - a);
  const lines = [`worker loop turns: ${turns.length} in ${span.toFixed(1)} s; length p50 ${(pct(lens, 0.5) * 1e6).toFixed(0)}, p99 ${(pct(lens, 0.99) * 1e6).toFixed(0)}, p99.9 ${(pct(lens, 0.999) * 1e6).toFixed(0)}, max ${(lens.reduce((x, y) => Math.max(x, y), 0) * 1e6).toFixed(0)} µs`];
  for (const th of [0.0005, 0.001, 0.002]) {
    const long = turns.filter(([a, b]) => b - a > th);
    const ms = long.reduce((x, [a, b]) => x + b - a, 0) * 1e3;
    lines.push(`turns over ${th * 1e3} ms: ${long.length}, ${ms.toFixed(1)} ms in all; CPU 0 meanwhile: ${shares(heldDuring(cpu0, worker, long), 5)}`);
  }
  for (const x of [0.0005, 0.001, 0.002, 0.003]) {
    let low = 0;
    let high = 0;
    for (let i = 0; i < lens.length; i++) {
      low += Math.max(0, lens[i] - x);
      // Arriving at u before the end of turn i, it waits (len_i - u) + len_{i+1}: over x for u < len_i + len_{i+1} - x.
      high += Math.max(0, Math.min(lens[i], lens[i] + (lens[i + 1] || 0) - x));
    }
    lines.push(`a byte of a flow not looked at mid-turn waits over ${x * 1e3} ms for the worker's next epoll: ${(low / span * 100).toFixed(2)}–${(high / span * 100).toFixed(2)} % of moments`);
  }
  // Stretches in which other tasks (not the worker, not idle) held CPU 0: the worker cannot run
  // then, so even an interactive flow (looked at every 128 KiB of bulk work while the worker
  // runs) waits for the rest of the stretch.
  const stretches = [];
  let start = null;
  let end = null;
  for (const [a, b, who] of cpu0) {
    if (who === worker || who.startsWith('swapper')) {
      if (start !== null) stretches.push(end - start);
      start = null;
    } else {
      if (start === null) start = a;
      end = b;
    }
  }
  for (const x of [0.0005, 0.001, 0.002, 0.003]) {
    const w = stretches.reduce((a, len) => a + Math.max(0, len - x), 0);
    lines.push(`other tasks hold CPU 0 for over ${x * 1e3} ms more: ${(w / span * 100).toFixed(2)} % of moments (any flow waits at least that; a ping crosses twice)`);
  }
  return lines;
}

/** The CPU 0 task that ran the longest apart from idle ("comm:pid"): the worker in a busy run. */
function busiestTask(cpu0) {
  const total = new Map();
  for (const [a, b, who] of cpu0) total.set(who, (total.get(who) || 0) + (b - a));
  return [...total].filter(([w]) => !w.startsWith('swapper')).sort((x, y) => y[1] - x[1])[0][0];
}

/**
 * What CPU 0 did during the given windows ([start, end], sorted by start): seconds per holder,
 * summed over the windows ('the worker running', 'idle', or another task's name).
 */
function heldDuring(cpu0, worker, windows) {
  const by = new Map();
  let j = 0;
  for (const [a, b] of windows) {
    while (j < cpu0.length && cpu0[j][1] <= a) j++;
    for (let k = j; k < cpu0.length && cpu0[k][0] < b; k++) {
      const [s, e, who] = cpu0[k];
      const name = who === worker ? 'the worker running' : who.startsWith('swapper') ? 'idle' : who.replace(/:\d+$/, '');
      by.set(name, (by.get(name) || 0) + Math.min(e, b) - Math.max(s, a));
    }
  }
  return by;
}

/** Holders' shares, largest first. */
const shares = (by, n) => { const all = [...by.values()].reduce((x, y) => x + y, 0); return [...by].sort((x, y) => y[1] - x[1]).slice(0, n).map(([k, v]) => `${k} ${(v / all * 100).toFixed(0)} %`).join(', '); };

/** What CPU 0 did during each forwarding gap over 1 ms: ms per task, summed over the gaps. */
function gapCulprits(iv, gaps) {
  const cpu0 = iv.get(0) || [];
  const t0 = cpu0.length ? cpu0[0][0] : 0;
  const t1 = cpu0.length ? cpu0[cpu0.length - 1][1] : 0;
  const inside = gaps.filter(([a, b]) => a >= t0 && b <= t1);
  const slow = inside.filter(([a, b]) => b - a > 0.001).sort((x, y) => x[0] - y[0]);
  // Sorted by start for heldDuring; gaps may overlap (a slow gap outlasts the next ping's start),
  // and each is counted whole.
  const by = heldDuring(cpu0, busiestTask(cpu0), slow);
  const ms = slow.reduce((x, [a, b]) => x + b - a, 0) * 1e3;
  const parts = [...by].sort((x, y) => y[1] - x[1]).slice(0, 8).map(([k, v]) => `${k} ${(v * 1e3).toFixed(1)}`);
  return `${slow.length} of ${inside.length} gaps over 1 ms, ${ms.toFixed(1)} ms in all; CPU 0 meanwhile (ms): ${parts.join(', ')}`;
}

const pct = (xs, p) => { const a = [...xs].sort((x, y) => x - y); return a.length ? a[Math.min(a.length - 1, Math.floor(p * a.length))] : NaN; };

async function main() {
  const kids = [];
  const start = (cpu, args, opts) => { const c = pinned(cpu, args, opts); kids.push(c); return c; };
  try {
    const bo = start(1, [process.execPath, LOAD, 'origin'], { stdio: ['ignore', 'pipe', 'inherit'] });
    const bport = JSON.parse((await waitLine(bo, /ready (\{.*\})\n/))[1]).port;
    const eo = start(1, [process.execPath, LOAD, 'origin'], { stdio: ['ignore', 'pipe', 'inherit'] });
    const eport = JSON.parse((await waitLine(eo, /ready (\{.*\})\n/))[1]).port;
    const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'ping-legs-'));
    let pport = 0;
    if (!DIRECT) {
      const cfg = { workerThreads: 1, scheduler: { kind: KIND }, listeners: [{ kind: 'connect', host: '127.0.0.1', port: 0, idleTimeoutMs: 600000, maxConnections: 0, connect: { allowPorts: [bport, eport], denyCidrs: [], connectTimeoutMs: 10000 } }] };
      fs.writeFileSync(path.join(dir, 'legato.json'), JSON.stringify(cfg));
      const p = start(0, [process.execPath, path.join(ROOT, 'bench', 'peers', 'legato-proxy.js'), path.join(dir, 'legato.json')], { stdio: ['pipe', 'pipe', 'inherit'], env: { ...process.env, LEGATO_ROOT: ROOT } });
      pport = JSON.parse((await waitLine(p, /ready (\{.*\})\n/))[1]).ports[0];
    }
    const bulk = start(1, [process.execPath, LOAD, 'fair', String(process.env.BULK_DIRECT ? 0 : pport), String(bport), String(SECS + 4), '32'], { stdio: ['pipe', 'pipe', 'inherit'] });
    await waitLine(bulk, /ready\n/);
    const pcap = path.join(dir, 'ping.pcap');
    const filter = DIRECT ? `tcp port ${eport} and less 400` : `(tcp port ${eport} or tcp port ${pport}) and less 400`;
    const td = TURNS ? null : start(1, ['tcpdump', '-i', 'lo', '-n', '-B', '16384', '-w', pcap, filter], { stdio: ['ignore', 'ignore', 'pipe'] });
    await sleep(1000);
    bulk.stdin.write('go\n');
    await sleep(1000);
    // SCHED: perf's timestamps are CLOCK_MONOTONIC, tcpdump's the wall clock.
    const sched = process.env.SCHED && !DIRECT ? path.join(dir, 'sched.data') : null;
    const { performance } = require('perf_hooks'); // timeOrigin + now(): the wall clock in µs
    const wallLessMono = (performance.timeOrigin + performance.now()) / 1000 - Number(process.hrtime.bigint()) / 1e9;
    if (sched) start(0, ['perf', 'record', '-q', '-e', 'sched:sched_switch', '-k', 'mono', '-a', '-o', sched, '--', 'sleep', String(SECS - 2)], { stdio: 'ignore' });
    const turnData = TURNS && !DIRECT ? path.join(dir, 'turns.data') : null;
    const tp = turnData ? start(0, ['perf', 'record', '-q', '-e', TURN_EVENTS, '-C', '0', '-o', turnData, '--', 'sleep', String(SECS - 2)], { stdio: 'ignore' }) : null;
    const pinger = start(1, [process.execPath, '-e', PINGER, String(pport), String(eport), String(SECS)], { stdio: ['ignore', 'pipe', 'inherit'] });
    const rtt = new Map(JSON.parse((await waitLine(pinger, /result (\[.*\])\n/))[1]));
    const br = JSON.parse((await waitLine(bulk, /result (\{.*\})\n/))[1]);
    const ids = [...rtt.keys()].sort((a, b) => a - b).slice(Math.floor(rtt.size / 10)); // skip the first 10 %
    const who = DIRECT ? 'direct' : `legato ${KIND} (${ROOT})`;
    if (TURNS) {
      if (tp && tp.exitCode === null) await new Promise((r) => tp.once('exit', r));
      const xs = ids.map((i) => rtt.get(i));
      console.log(`${who}: ${ids.length} pings; round trip p50 ${pct(xs, 0.5).toFixed(0)}, p99 ${pct(xs, 0.99).toFixed(0)} µs; bulk ${(br.bytes / br.ms / 1000).toFixed(0)} MB/s`);
      if (turnData) for (const line of turnReport(turnData)) console.log(line);
      fs.rmSync(dir, { recursive: true, force: true });
      return;
    }
    td.kill('SIGINT');
    await sleep(500);
    const legs = legsFromPcap(pcap, eport, pport);
    const iv = sched && fs.existsSync(sched) ? runIntervals(sched) : null;
    fs.rmSync(dir, { recursive: true, force: true });
    const need = pport ? ['c2p', 'p2e', 'e2p', 'p2c'] : ['c2p', 'p2c'];
    const both = ids.filter((i) => need.every((l) => legs[l].has(i)));
    const us = (a, b, i) => (legs[b].get(i) - legs[a].get(i)) * 1e6;
    const rows = [['round trip (pinger)', ids.map((i) => rtt.get(i))]];
    if (pport) {
      rows.push(['proxy pinger→echo', both.map((i) => us('c2p', 'p2e', i))]);
      rows.push(['echo side', both.map((i) => us('p2e', 'e2p', i))]);
      rows.push(['proxy echo→pinger', both.map((i) => us('e2p', 'p2c', i))]);
      rows.push(['proxy, both ways', both.map((i) => us('c2p', 'p2e', i) + us('e2p', 'p2c', i))]);
    } else {
      rows.push(['echo side', both.map((i) => us('c2p', 'p2c', i))]);
    }
    rows.push(['pinger side', both.map((i) => rtt.get(i) - us('c2p', 'p2c', i))]);
    console.log(`${who}: ${ids.length} pings, ${both.length} seen on every leg; bulk ${(br.bytes / br.ms / 1000).toFixed(0)} MB/s, Jain ${br.jain.toFixed(3)}`);
    for (const [name, xs] of rows) {
      console.log(`${name.padEnd(20)} p50 ${pct(xs, 0.5).toFixed(0).padStart(7)}  p90 ${pct(xs, 0.9).toFixed(0).padStart(7)}  p99 ${pct(xs, 0.99).toFixed(0).padStart(7)}  p99.9 ${pct(xs, 0.999).toFixed(0).padStart(7)} µs`);
    }
    if (iv) {
      const mono = (t) => t - wallLessMono;
      for (const [name, a, b] of [['pinger→echo', 'c2p', 'p2e'], ['echo→pinger', 'e2p', 'p2c']]) {
        console.log(`${name}: ${gapCulprits(iv, both.map((i) => [mono(legs[a].get(i)), mono(legs[b].get(i))]))}`);
      }
    }
  } finally {
    for (const k of kids) { try { k.kill(); } catch (_) { /* gone */ } }
  }
}

main().then(() => setTimeout(() => process.exit(0), 300), (err) => { console.error(err.message); process.exit(1); });
