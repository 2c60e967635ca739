#!/usr/bin/env node
'use strict';
// T1 client: one TCP connection pushing `bytes` (default 1 GiB) to the raw origin's sink through
// host:port, then half-closing; the sink replies with the count it received.
//   node t1-client.js <port> [bytes]   → prints `result {"bytes":N,"received":N,"ms":T}`

const crypto = require('crypto');
const net = require('net');
const { reportSinkReply } = require('./sink-reply');

const port = Number(process.argv[2]);
const total = Number(process.argv[3] || 1024 * 1024 * 1024);
const CHUNK = 1024 * 1024;
const chunk = crypto.randomBytes(CHUNK); // incompressible, not that anything compresses here

const sock = net.connect({ host: '127.0.0.1', port, allowHalfOpen: true });
sock.setNoDelay(true);
let t0;
let sent = 0;
sock.on('connect', () => {
  t0 = process.hrtime.bigint();
  sock.write('S');
  const pump = () => {
    while (sent < total) {
      const n = Math.min(CHUNK, total - sent);
      sent += n;
      if (!sock.write(n === CHUNK ? chunk : chunk.subarray(0, n))) { sock.once('drain', pump); return; }
    }
    sock.end();
  };
  pump();
});
reportSinkReply(sock, total, () => t0);
sock.on('error', (err) => { process.stdout.write(`result ${JSON.stringify({ error: err.message })}\n`); process.exit(1); });
