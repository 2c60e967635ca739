#!/usr/bin/env node
'use strict';
// S2 handshake load: `conc` closed loops, each: new TCP connection → full TLS handshake (no
// session offered, so never resumed — wrk keeps and resumes sessions across reconnects, which
// would measure resumption instead) → `GET <path>` with `Connection: close` → read to EOF.
//   node handshake-client.js <port> <sni> <path> <seconds> [conc=32]
// Prints `result {"handshakes":N,"rate":..,"reused":N,"errors":N,"bytes":N,"p50_us":..,"p99_us":..,
// "protocols":{"TLSv1.3":N,...}}` (protocols: what the measured handshakes negotiated)
// after a 0.5 s warm-up and `seconds` of measurement.

const tls = require('tls');

const [portS, sni, reqPath, secondsS, concS] = process.argv.slice(2);
const port = Number(portS);
const seconds = Number(secondsS);
const conc = Number(concS || 32);
const request = `GET ${reqPath} HTTP/1.1\r\nHost: ${sni}\r\nConnection: close\r\n\r\n`;

let measuring = false;
let running = true;
let handshakes = 0;
let reused = 0;
let errors = 0;
let bytes = 0;
let firstError = null;
const lat = [];
const protocols = {};

function loop() {
  if (!running) return;
  const t0 = process.hrtime.bigint();
  let done = false;
  let got = 0;
  const s = tls.connect({ host: '127.0.0.1', port, servername: sni, rejectUnauthorized: false });
  const finish = (err) => {
    if (done) return;
    done = true;
    s.destroy();
    if (measuring) {
      if (err) { errors++; if (!firstError) firstError = err.message; } else { handshakes++; bytes += got; lat.push(Number(process.hrtime.bigint() - t0) / 1000); }
    }
    setImmediate(loop);
  };
  s.once('secureConnect', () => {
    if (s.isSessionReused() && measuring) reused++;
    if (measuring) protocols[s.getProtocol()] = (protocols[s.getProtocol()] || 0) + 1;
    s.write(request);
  });
  s.on('data', (d) => { got += d.length; });
  s.on('end', () => finish(got > 0 ? null : new Error('empty response')));
  s.on('error', (err) => finish(err));
}

for (let i = 0; i < conc; i++) loop();
setTimeout(() => {
  measuring = true;
  const t0 = process.hrtime.bigint();
  setTimeout(() => {
    measuring = false;
    running = false;
    const ms = Number(process.hrtime.bigint() - t0) / 1e6;
    const v = Float64Array.from(lat).sort();
    const pct = (p) => (v.length ? v[Math.min(v.length - 1, Math.ceil((p / 100) * v.length) - 1)] : null);
    process.stdout.write(`result ${JSON.stringify({ handshakes, ms, rate: handshakes / (ms / 1000), reused, errors, firstError, bytes, p50_us: pct(50), p99_us: pct(99), protocols })}\n`);
    setTimeout(() => process.exit(0), 100);
  }, seconds * 1000);
}, 500);
