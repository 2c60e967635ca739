#!/usr/bin/env node
'use strict';
// S5 bulk flow: one connection that asks the raw origin for an endless stream ('B') and reads
// it as fast as possible for `seconds`.  node s5-bulk.js <port> <seconds>
// Prints `ready` once data flows, then `result {"bytes":N,"ms":T}`.

const net = require('net');

const port = Number(process.argv[2]);
const seconds = Number(process.argv[3]);
const sock = net.connect({ host: '127.0.0.1', port });
sock.setNoDelay(true);
let bytes = 0;
let t0 = null;
let measuring = false;
let base = 0;
sock.on('connect', () => sock.write('B'));
sock.on('data', (d) => {
  bytes += d.length;
  if (t0 === null) {
    t0 = 0;
    process.stdout.write('ready\n');
  }
});
// The orchestrator writes `go` when the small flows are running too.
process.stdin.on('data', (d) => {
  if (!String(d).includes('go') || measuring) return;
  measuring = true;
  base = bytes;
  t0 = process.hrtime.bigint();
  setTimeout(() => {
    const ms = Number(process.hrtime.bigint() - t0) / 1e6;
    process.stdout.write(`result ${JSON.stringify({ bytes: bytes - base, ms })}\n`);
    sock.destroy();
    setTimeout(() => process.exit(0), 50);
  }, seconds * 1000);
});
sock.on('error', (err) => { process.stdout.write(`result ${JSON.stringify({ error: err.message })}\n`); process.exit(1); });
