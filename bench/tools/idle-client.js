#!/usr/bin/env node
'use strict';
// S3 client: open N TLS connections through a proxy, complete each handshake (through the
// proxy, with the origin), optionally make one HTTP/1.1 request on each ("request":"/1k": the
// whole response is read before the connection counts as open), then keep them idle until stdin
// closes or SIGTERM.
//
//   node idle-client.js '{"port":N,"sni":"a.bench.test","count":5000,"sources":["127.0.0.2",...],
//                         "concurrency":100,"hold":true,"request":"/1k"}'
// Prints `open {"open":N,"failed":F,"ms":T}` once every attempt has settled; with hold:false it
// then closes them all and prints `closed`. Connections are spread round-robin over the source
// addresses (localAddress) so one address's ephemeral ports are never the limit.

const tls = require('tls');

const opts = JSON.parse(process.argv[2]);
const sockets = [];
const protocols = {}; // what the handshakes negotiated (S3 warns when not all TLSv1.3)
let failed = 0;
let next = 0;
let inflight = 0;
let settled = 0;
const t0 = Date.now();
let firstError = null;

function openOne() {
  const i = next++;
  inflight++;
  let done = false;
  const finish = (ok, err) => {
    if (done) return;
    done = true;
    inflight--;
    settled++;
    if (!ok) { failed++; if (!firstError && err) firstError = err.message; }
    pump();
  };
  const s = tls.connect({
    host: '127.0.0.1',
    port: opts.port,
    servername: opts.sni,
    localAddress: opts.sources[i % opts.sources.length],
    rejectUnauthorized: false,
    session: undefined,
  });
  s.setTimeout(30000, () => { s.destroy(new Error('handshake timeout')); });
  const opened = () => { s.setTimeout(0); sockets.push(s); protocols[s.getProtocol()] = (protocols[s.getProtocol()] || 0) + 1; finish(true); };
  s.once('secureConnect', () => (opts.request ? requestOnce(s, opened, finish) : opened()));
  s.on('error', (err) => finish(false, err));
  s.on('close', () => finish(false, new Error('closed before handshake')));
}

// One keep-alive request; `done` once the response's body (Content-Length) has arrived. The
// socket then stays open with nothing more to say, like a browser's connection between pages.
function requestOnce(s, done, finish) {
  let got = Buffer.alloc(0);
  let need = -1; // bytes of the whole response, once its head is in
  const onData = (d) => {
    got = Buffer.concat([got, d]);
    if (need < 0) {
      const end = got.indexOf('\r\n\r\n');
      if (end < 0) return;
      const m = /\r\ncontent-length: *(\d+)/i.exec(got.subarray(0, end).toString('latin1'));
      if (!m) { s.destroy(); finish(false, new Error('response without Content-Length')); return; }
      need = end + 4 + Number(m[1]);
    }
    if (got.length >= need) {
      s.removeListener('data', onData);
      s.pause();
      done();
    }
  };
  s.on('data', onData);
  s.write(`GET ${opts.request} HTTP/1.1\r\nHost: ${opts.sni}\r\n\r\n`);
}

function pump() {
  while (inflight < opts.concurrency && next < opts.count) openOne();
  if (settled === opts.count && !pump.reported) {
    pump.reported = true;
    const open = sockets.filter((s) => !s.destroyed).length;
    process.stdout.write(`open ${JSON.stringify({ open, failed, ms: Date.now() - t0, firstError, protocols })}\n`);
    if (!opts.hold) {
      for (const s of sockets) s.destroy();
      process.stdout.write('closed\n');
      setTimeout(() => process.exit(0), 100);
    }
  }
}

process.stdin.on('data', (d) => {
  if (String(d).includes('count')) {
    const open = sockets.filter((s) => !s.destroyed).length;
    process.stdout.write(`count ${JSON.stringify({ open })}\n`);
  }
});
process.stdin.on('end', () => process.exit(0));
process.on('SIGTERM', () => process.exit(0));
pump();
