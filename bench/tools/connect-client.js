#!/usr/bin/env node
'use strict';
// S4 client: HTTP CONNECT tunnels through a forward proxy to the raw origin.
//
//   node connect-client.js rate <proxyPort> <originPort> <seconds> [concurrency=32] [direct]
//     closed loop per slot: TCP connect → CONNECT 127.0.0.1:<originPort> → 200 → 'E' + 16 bytes
//     echoed back through the tunnel → close. Prints `result {"tunnels":N,"rate":..,
//     "p50_us":..,"p99_us":..,"errors":N}` (latency = connect to echo received).
//   node connect-client.js tls <proxyPort> <tlsOriginPort> <seconds> [concurrency=32] [direct]
//     as `rate`, but each tunnel is proven by a full TLS 1.3 handshake with the HTTPS origin
//     through it (tls.connect on the tunnel socket, SNI a.bench.test, no session offered, so
//     never resumed), then close_notify + FIN and the origin's close. Prints the `rate` fields
//     plus "reused":N (must be 0) and "protocol" (the first tunnel's TLS version).
//   node connect-client.js keepalive <proxyPort> <httpOriginPort> <seconds> [concurrency=32] [direct]
//     `concurrency` tunnels to the plain-HTTP origin, each a closed loop of keep-alive
//     `GET /1k` requests (the next one written when the whole response, by its content-length,
//     has arrived). Prints `result {"requests":N,"rate":..,"p50_us":..,"p99_us":..,"errors":N}`.
//   node connect-client.js bulk <proxyPort> <originPort> <bytes> [direct]
//     one tunnel to the counted sink ('N', no half-close needed), `bytes` pushed, count checked.
//     Prints `result {"bytes":N,"received":N,"ms":T}`.
// `direct` skips the proxy (connects to the origin port, no CONNECT): the ceiling row.

const crypto = require('crypto');
const net = require('net');
const tls = require('tls');
const { reportSinkReply } = require('./sink-reply');

const [mode, proxyPortS, originPortS, amountS, concS, directFlag] = process.argv.slice(2);
const direct = process.argv.includes('direct');
const proxyPort = Number(proxyPortS);
const originPort = Number(originPortS);

/** Open a tunnel (or a direct connection); resolves with the socket once usable. */
function tunnel(cb) {
  const sock = net.connect({ host: '127.0.0.1', port: direct ? originPort : proxyPort, allowHalfOpen: true });
  sock.setNoDelay(true);
  sock.on('error', (err) => cb(err));
  if (direct) { sock.once('connect', () => cb(null, sock, null)); return; }
  sock.once('connect', () => sock.write(`CONNECT 127.0.0.1:${originPort} HTTP/1.1\r\nHost: 127.0.0.1:${originPort}\r\n\r\n`));
  let head = Buffer.alloc(0);
  const onData = (d) => {
    head = Buffer.concat([head, d]);
    const i = head.indexOf('\r\n\r\n');
    if (i < 0) { if (head.length > 8192) cb(new Error('response head too long')); return; }
    sock.removeListener('data', onData);
    sock.pause();
    const status = /^HTTP\/1\.[01] (\d{3})/.exec(head.toString('latin1'));
    if (!status || status[1] !== '200') { sock.destroy(); cb(new Error(`CONNECT answered ${head.toString('latin1').split('\r\n')[0]}`)); return; }
    const rest = head.subarray(i + 4);
    cb(null, sock, rest.length ? rest : null);
  };
  sock.on('data', onData);
}

/** 'E' + 16 bytes written, 16 echoed back: the raw tunnel works both ways. */
const PROBE = Buffer.concat([Buffer.from('E'), Buffer.alloc(16, 0x71)]);
function proveEcho(sock, rest, cb) {
  let got = rest ? rest.length : 0;
  sock.on('data', (d) => { got += d.length; if (got >= 16) cb(null); });
  sock.resume();
  sock.write(PROBE);
}

let reused = 0;
let protocol = null;
/** A full TLS handshake with the origin through the tunnel, then a clean close by both ends. */
function proveTls(sock, rest, cb) {
  if (rest) { cb(new Error('bytes before the TLS handshake')); return; }
  const t = tls.connect({ socket: sock, servername: 'a.bench.test', rejectUnauthorized: false });
  let secure = false;
  t.once('secureConnect', () => {
    secure = true;
    if (t.isSessionReused()) reused++;
    if (!protocol) protocol = t.getProtocol();
    t.end(); // close_notify + FIN; the origin answers with its own close
  });
  t.on('data', () => {}); // session tickets
  t.once('close', () => cb(secure ? null : new Error('closed before the handshake finished')));
  t.once('error', (err) => cb(err));
}

/**
 * After `seconds`: stop (`stop()` returns the extra fields) and print `result {...}` with the
 * count of latencies (named `countKey`), the rate and p50/p99 of `lat` (µs), then exit.
 */
function reportAfter(seconds, t0, lat, countKey, stop) {
  setTimeout(() => {
    const extra = stop();
    const ms = Number(process.hrtime.bigint() - t0) / 1e6;
    const s = Float64Array.from(lat).sort();
    const pct = (p) => (s.length ? s[Math.min(s.length - 1, Math.ceil((p / 100) * s.length) - 1)] : null);
    process.stdout.write(`result ${JSON.stringify({ [countKey]: s.length, ms, rate: s.length / (ms / 1000), p50_us: pct(50), p99_us: pct(99), ...extra })}\n`);
    setTimeout(() => process.exit(0), 100);
  }, seconds * 1000);
}

if (mode === 'rate' || mode === 'tls') {
  const prove = mode === 'tls' ? proveTls : proveEcho;
  const seconds = Number(amountS);
  const conc = Number(concS || 32);
  const lat = [];
  let errors = 0;
  let firstError = null;
  let running = true;
  const t0 = process.hrtime.bigint();
  const loop = () => {
    if (!running) return;
    const s0 = process.hrtime.bigint();
    let done = false;
    let sock = null;
    const finish = (err) => {
      if (done) return;
      done = true;
      if (sock) sock.destroy();
      if (err) { errors++; if (!firstError) firstError = err.message; setImmediate(loop); return; }
      lat.push(Number(process.hrtime.bigint() - s0) / 1000);
      loop();
    };
    tunnel((err, s, rest) => {
      if (err) { finish(err); return; }
      if (done) return;
      sock = s;
      prove(s, rest, finish);
    });
  };
  for (let i = 0; i < conc; i++) loop();
  reportAfter(seconds, t0, lat, 'tunnels', () => {
    running = false;
    return { errors, firstError, ...(mode === 'tls' ? { reused, protocol } : {}) };
  });
} else if (mode === 'keepalive') {
  const seconds = Number(amountS);
  const conc = Number(concS || 32);
  const REQ = Buffer.from('GET /1k HTTP/1.1\r\nHost: a.bench.test\r\n\r\n');
  const lat = [];
  let errors = 0;
  let firstError = null;
  let running = true;
  const fail = (err) => { errors++; if (!firstError) firstError = err.message; };
  const open = () => tunnel((err, sock, rest) => {
    if (err) { fail(err); if (running) setTimeout(open, 10); return; }
    let buf = rest || Buffer.alloc(0);
    let s0 = 0n;
    const send = () => {
      if (!running) { sock.destroy(); return; }
      s0 = process.hrtime.bigint();
      sock.write(REQ);
    };
    sock.on('data', (d) => {
      buf = buf.length ? Buffer.concat([buf, d]) : d;
      for (;;) {
        const i = buf.indexOf('\r\n\r\n');
        if (i < 0) return;
        const head = buf.toString('latin1', 0, i);
        const len = /\r\ncontent-length:\s*(\d+)/i.exec(head);
        if (!/^HTTP\/1\.1 200 /.test(head) || !len) { fail(new Error(`unexpected response ${head.split('\r\n')[0]}`)); sock.destroy(); return; }
        const end = i + 4 + Number(len[1]);
        if (buf.length < end) return;
        buf = buf.subarray(end);
        lat.push(Number(process.hrtime.bigint() - s0) / 1000);
        send();
      }
    });
    sock.on('close', () => { if (running) { fail(new Error('tunnel closed')); open(); } });
    sock.resume();
    send();
  });
  const t0 = process.hrtime.bigint();
  for (let i = 0; i < conc; i++) open();
  reportAfter(seconds, t0, lat, 'requests', () => {
    running = false;
    return { errors, firstError };
  });
} else if (mode === 'bulk') {
  const total = Number(amountS);
  const CHUNK = 1024 * 1024;
  const chunk = crypto.randomBytes(CHUNK);
  const t0 = process.hrtime.bigint();
  tunnel((err, sock) => {
    if (err) { process.stdout.write(`result ${JSON.stringify({ error: err.message })}\n`); process.exit(1); }
    reportSinkReply(sock, total, () => t0);
    sock.resume();
    sock.write(`N${total}\n`);
    let sent = 0;
    const pump = () => {
      while (sent < total) {
        const n = Math.min(CHUNK, total - sent);
        sent += n;
        if (!sock.write(n === CHUNK ? chunk : chunk.subarray(0, n))) { sock.once('drain', pump); return; }
      }
    };
    pump();
  });
} else {
  process.stderr.write('usage: connect-client.js rate|tls|keepalive|bulk ...\n');
  process.exit(2);
}
void directFlag;
