#!/usr/bin/env node
'use strict';
// S6 (scheduler) load: an origin and the clients that measure what the scheduler promises.
//
//   node sched-load.js origin
//     → `ready {"port":N}`. Raw TCP origin; a connection's first byte picks what it does:
//       'B' writes 64 KiB chunks as fast as the socket takes them, 'S' the same with 1 MiB chunks,
//       'E' echoes, anything else is ignored (idle).
//   node sched-load.js <case> <proxyPort|0> <originPort> <seconds> [args...]
//     Clients reach the origin through a CONNECT tunnel of the proxy (proxyPort 0: directly).
//     Prints `ready` once every connection is up, waits for `go` on stdin, then lets the origin
//     start on every connection at once (1 s of warm-up is
//     inside the measured case for bulk flows), then `result {...}`.
//     cases:  fair <flows>             bulk downloads: bytes per flow, Jain index, flows < best/2
//             solo                     one 1 MiB-chunk download: bytes, ms
//             ping <bulkFlows>         one 64-byte request per ms (open loop, echoed) beside
//                                      <bulkFlows> bulk downloads: RTT p50/p99/p999 (µs)
//             idle <tunnels>           open tunnels and hold them idle for <seconds>
//             slow <bytesPerSecond>    one bulk download read at a limited rate
// Clients read into 256 KiB buffers (net `onread`), as the measurements did.

const net = require('net');

const CHUNK = 64 * 1024;
const SOLO_CHUNK = 1024 * 1024;
const READ_BUF = 256 * 1024;

function origin() {
  const bulk = Buffer.alloc(CHUNK, 0x62);
  const solo = Buffer.alloc(SOLO_CHUNK, 0x73);
  const srv = net.createServer((sock) => {
    sock.setNoDelay(true);
    sock.on('error', () => {});
    sock.once('data', (d) => {
      const mode = String.fromCharCode(d[0]);
      if (mode === 'E') {
        if (d.length > 1) sock.write(d.subarray(1));
        sock.on('data', (x) => sock.write(x));
        return;
      }
      if (mode !== 'B' && mode !== 'S') return;
      sock.resume();
      const chunk = mode === 'B' ? bulk : solo;
      const pump = () => {
        while (!sock.destroyed && sock.write(chunk));
      };
      sock.on('drain', pump);
      pump();
    });
  });
  srv.listen(0, '127.0.0.1', () => process.stdout.write(`ready ${JSON.stringify({ port: srv.address().port })}\n`));
}

/**
 * Open a raw connection to the origin (through a CONNECT tunnel unless proxyPort is 0) and send
 * the mode byte. With `onBytes`, the socket reads into one 256 KiB buffer (net `onread`) and
 * every tunnelled read calls onBytes(n); without it the socket is returned paused.
 */
function tunnel(proxyPort, originPort, mode, onBytes) {
  return new Promise((resolve, reject) => {
    const opts = { host: '127.0.0.1', port: proxyPort || originPort };
    const state = { read: null };
    if (onBytes) opts.onread = { buffer: Buffer.allocUnsafe(READ_BUF), callback: (n, buf) => { state.read(n, buf); } };
    const sock = net.connect(opts);
    sock.setNoDelay(true);
    sock.once('error', reject);
    const go = () => {
      sock.removeListener('error', reject);
      sock.on('error', () => {});
      state.read = onBytes || null;
      if (!onBytes) sock.pause();
      sock.mode = mode; // sent by start() once every connection is up
      resolve(sock);
    };
    if (!proxyPort) {
      state.read = () => {};
      sock.once('connect', go);
      if (!onBytes) sock.on('data', () => {});
      return;
    }
    sock.once('connect', () => sock.write(`CONNECT 127.0.0.1:${originPort} HTTP/1.1\r\nHost: 127.0.0.1:${originPort}\r\n\r\n`));
    // The head arrives alone: the origin speaks only after our mode byte.
    let head = '';
    state.read = (n, buf) => {
      head += buf.toString('latin1', 0, n);
      if (!head.includes('\r\n\r\n')) return;
      if (!/^HTTP\/1\.[01] 200/.test(head)) {
        reject(new Error(`CONNECT refused: ${head.split('\r\n')[0]}`));
        sock.destroy();
        return;
      }
      go();
    };
    if (!onBytes) {
      sock.on('data', (d) => { if (state.read) state.read(d.length, d); });
    }
  });
}

function percentile(sorted, p) {
  if (!sorted.length) return null;
  return sorted[Math.min(sorted.length - 1, Math.floor(p * sorted.length))];
}

function waitGo() {
  return new Promise((resolve) => {
    process.stdin.on('data', (d) => { if (String(d).includes('go')) resolve(); });
  });
}

const sleep = (ms) => new Promise((r) => setTimeout(r, ms));

/** Send every connection's mode byte: the origin starts only when all are up (fair setup). */
function start(socks) {
  for (const s of socks) if (s.mode) s.write(s.mode);
}

/** A bulk download whose bytes are counted in `counts[i]`. */
function bulkFlow(proxyPort, originPort, mode, counts, i) {
  return tunnel(proxyPort, originPort, mode, (n) => { counts[i] += n; });
}

async function main() {
  const [kind, proxyPortS, originPortS, secondsS, argS] = process.argv.slice(2);
  if (kind === 'origin') return origin();
  const proxyPort = Number(proxyPortS);
  const originPort = Number(originPortS);
  const seconds = Number(secondsS);
  const arg = Number(argS);
  const socks = [];
  const result = {};
  try {
    if (kind === 'fair' || kind === 'solo' || kind === 'ping' || kind === 'slow') {
      const flows = kind === 'fair' ? arg : kind === 'ping' ? arg : 1;
      const counts = new Array(flows).fill(0);
      let pinger = null;
      let slowSock = null;
      if (kind === 'slow') {
        slowSock = await tunnel(proxyPort, originPort, 'B', null);
        socks.push(slowSock);
      } else {
        for (let i = 0; i < flows; i++) socks.push(await bulkFlow(proxyPort, originPort, kind === 'solo' ? 'S' : 'B', counts, i));
      }
      if (kind === 'ping') {
        pinger = await tunnel(proxyPort, originPort, 'E', null);
        socks.push(pinger);
      }
      process.stdout.write('ready\n');
      await waitGo();
      start(socks);
      if (kind === 'slow') {
        // Read `arg` bytes/s: resume for a slice every 10 ms.
        let got = 0;
        const t0 = Date.now();
        slowSock.on('data', (d) => {
          got += d.length;
          if (got >= (arg * (Date.now() - t0)) / 1000) slowSock.pause();
        });
        const iv = setInterval(() => { if (got < (arg * (Date.now() - t0)) / 1000) slowSock.resume(); }, 10);
        await sleep(seconds * 1000);
        clearInterval(iv);
        result.bytes = got;
        result.ms = Date.now() - t0;
      } else {
        const pings = [];
        let iv = null;
        let pp = null;
        if (pinger) {
          const msg = Buffer.alloc(64, 0x70);
          const sent = [];
          let acc = 0;
          pinger.resume();
          pinger.on('data', (d) => {
            acc += d.length;
            while (acc >= 64 && sent.length) {
              acc -= 64;
              const t = sent.shift();
              if (t.measured) pings.push(Number(process.hrtime.bigint() - t.at) / 1000);
            }
          });
          pp = { measuring: false };
          iv = setInterval(() => { sent.push({ at: process.hrtime.bigint(), measured: pp.measuring }); pinger.write(msg); }, 1);
        }
        await sleep(1000); // warm-up: windows open, buffers autotune (or do not)
        const c0 = counts.slice();
        if (pp) pp.measuring = true;
        const w0 = process.hrtime.bigint();
        await sleep(seconds * 1000);
        const c1 = counts.slice();
        const ms = Number(process.hrtime.bigint() - w0) / 1e6;
        if (pp) pp.measuring = false;
        if (iv) clearInterval(iv);
        const per = c1.map((v, i) => v - c0[i]);
        const sum = per.reduce((a, b) => a + b, 0);
        const sq = per.reduce((a, b) => a + b * b, 0);
        const best = Math.max(...per);
        result.bytes = sum;
        result.ms = ms;
        result.flows = per.length;
        result.jain = sq ? (sum * sum) / (per.length * sq) : null;
        result.belowHalf = per.filter((v) => v < best / 2).length;
        result.minMax = [Math.min(...per), best];
        if (pinger) {
          pings.sort((a, b) => a - b);
          result.pings = pings.length;
          result.p50_us = percentile(pings, 0.5);
          result.p99_us = percentile(pings, 0.99);
          result.p999_us = percentile(pings, 0.999);
        }
      }
    } else if (kind === 'idle') {
      for (let i = 0; i < arg; i++) socks.push(await tunnel(proxyPort, originPort, 'I', null));
      start(socks);
      process.stdout.write('ready\n');
      await waitGo();
      await sleep(seconds * 1000);
      result.tunnels = socks.length;
    } else {
      throw new Error(`unknown case ${kind}`);
    }
  } catch (err) {
    result.error = String(err && err.message);
    process.stdout.write('ready\n');
  }
  process.stdout.write(`result ${JSON.stringify(result)}\n`);
  for (const s of socks) s.destroy();
  setTimeout(() => process.exit(0), 100);
}

main();
