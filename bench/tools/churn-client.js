#!/usr/bin/env node
'use strict';
// P1 connection churn: `conc` closed loops, each: new TCP connection (from 127.0.0.2–127.0.0.51
// in turn, so no source address runs out of ephemeral ports) → a real ClientHello (node's own,
// captured once at start, SNI <sni>) → wait for the origin's `ok\n` (bench/tools/raw-origin.js
// answers a TLS record at once) → close. No TLS work on either end: the proxy's accept,
// admission, hello parsing, routing and dial are what each connection costs.
//   node churn-client.js <port> <sni> <seconds> [conc=32]
// Prints `result {"handshakes":N,"ms":..,"rate":..,"errors":N,"bytes":N,"p50_us":..,"p99_us":..}`
// after a 0.5 s warm-up and `seconds` of measurement ("handshakes" = connections completed).

const net = require('net');
const tls = require('tls');

const [portS, sni, secondsS, concS] = process.argv.slice(2);
const port = Number(portS);
const seconds = Number(secondsS);
const conc = Number(concS || 32);
const SOURCES = Array.from({ length: 50 }, (_, i) => `127.0.0.${i + 2}`);

/** Node's ClientHello for `sni`, as it goes on the wire. */
function captureHello() {
  return new Promise((resolve, reject) => {
    const srv = net.createServer((s) => {
      s.once('data', (d) => { resolve(d); s.destroy(); srv.close(); });
    });
    srv.listen(0, '127.0.0.1', () => {
      const c = tls.connect({ host: '127.0.0.1', port: srv.address().port, servername: sni, rejectUnauthorized: false });
      c.on('error', () => {});
    });
    srv.on('error', reject);
  });
}

async function main() {
  const hello = await captureHello();
  let measuring = false;
  let running = true;
  let done = 0;
  let errors = 0;
  let bytes = 0;
  let firstError = null;
  let next = 0;
  const lat = [];
  function loop() {
    if (!running) return;
    const t0 = process.hrtime.bigint();
    let finished = false;
    let got = 0;
    const s = net.connect({ host: '127.0.0.1', port, localAddress: SOURCES[next++ % SOURCES.length] });
    const finish = (err) => {
      if (finished) return;
      finished = true;
      s.destroy();
      if (measuring) {
        if (err) { errors++; if (!firstError) firstError = err.message; } else { done++; bytes += got; lat.push(Number(process.hrtime.bigint() - t0) / 1000); }
      }
      setImmediate(loop);
    };
    s.setNoDelay(true);
    s.once('connect', () => s.write(hello));
    s.on('data', (d) => { got += d.length; if (got >= 3) finish(null); });
    s.on('end', () => finish(got >= 3 ? null : new Error('closed without a reply')));
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
      process.stdout.write(`result ${JSON.stringify({ handshakes: done, ms, rate: done / (ms / 1000), errors, firstError, bytes, p50_us: pct(50), p99_us: pct(99) })}\n`);
      setTimeout(() => process.exit(0), 100);
    }, seconds * 1000);
  }, 500);
}

main();
