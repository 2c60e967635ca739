#!/usr/bin/env node
'use strict';
// S5 small flows: `conns` connections each doing closed-loop ping-pong with the raw origin's echo
// ('E'): send `size` bytes, wait until `size` bytes came back, record the round-trip time, repeat.
//   node s5-pingpong.js <port> <seconds> [conns=32] [size=1024]
// Prints `ready` when every connection is up, waits for `go` on stdin, then measures for
// `seconds` and prints `result {"rtts":N,"p50_us":..,"p99_us":..,"p999_us":..,"max_us":..,
// "rps":..,"perFlowRps":{min,max},"errors":N}`.

const net = require('net');

const port = Number(process.argv[2]);
const seconds = Number(process.argv[3]);
const conns = Number(process.argv[4] || 32);
const size = Number(process.argv[5] || 1024);
const msg = Buffer.alloc(size, 0x70);

let measuring = false;
let stopped = false;
const samples = [];
const perFlow = new Array(conns).fill(0);
let errors = 0;
let up = 0;

function flow(i) {
  const sock = net.connect({ host: '127.0.0.1', port });
  sock.setNoDelay(true);
  let got = 0;
  let t = 0n;
  const send = () => {
    if (stopped) return;
    got = 0;
    t = process.hrtime.bigint();
    sock.write(msg);
  };
  sock.on('connect', () => {
    sock.write('E');
    if (++up === conns) process.stdout.write('ready\n');
  });
  sock.on('data', (d) => {
    got += d.length;
    if (got < size) return;
    if (got > size) errors++;
    if (measuring) {
      samples.push(Number(process.hrtime.bigint() - t) / 1000);
      perFlow[i]++;
    }
    send();
  });
  sock.on('error', () => { errors++; });
  flow.socks.push({ sock, send });
}
flow.socks = [];

for (let i = 0; i < conns; i++) flow(i);

process.stdin.on('data', (d) => {
  if (!String(d).includes('go') || measuring) return;
  // Start every flow's loop, warm up for 0.5 s, then measure.
  for (const f of flow.socks) f.send();
  setTimeout(() => {
    measuring = true;
    const t0 = process.hrtime.bigint();
    setTimeout(() => {
      measuring = false;
      stopped = true;
      const ms = Number(process.hrtime.bigint() - t0) / 1e6;
      const s = Float64Array.from(samples).sort();
      const pct = (p) => (s.length ? s[Math.min(s.length - 1, Math.ceil((p / 100) * s.length) - 1)] : null);
      process.stdout.write(`result ${JSON.stringify({
        rtts: s.length, ms, rps: s.length / (ms / 1000),
        p50_us: pct(50), p99_us: pct(99), p999_us: pct(99.9), max_us: s.length ? s[s.length - 1] : null,
        perFlowRps: { min: Math.min(...perFlow) / (ms / 1000), max: Math.max(...perFlow) / (ms / 1000) },
        errors,
      })}\n`);
      for (const f of flow.socks) f.sock.destroy();
      setTimeout(() => process.exit(0), 50);
    }, seconds * 1000);
  }, 500);
});
