#!/usr/bin/env node
'use strict';
// The pure-Node.js peer: what a user would write with Node's own modules instead of legato.
//
//   node bench/peers/node-proxy.js config.json     → prints `ready {"ports":[...]}` when listening
//
// config.json:
//   { "workers": 1,                       // >1: cluster with SCHED_NONE (workers accept themselves)
//     "idleTimeoutMs": 300000,
//     "listeners": [{ "host": "127.0.0.1", "port": 0,
//                     "mode": "passthrough" | "terminate" | "connect" }],
//     "routes": [{ "sni": "a.bench.test" | "*.bench.test" | "",
//                  "upstream": { "host": "127.0.0.1", "port": 8443 } | { "path": "/tmp/x.sock" },
//                  "certFile": "...", "keyFile": "..." }] }      // cert/key: terminate mode only
//
// Modes:
//  - passthrough: read the TLS ClientHello (parsed below, reassembled across records up to
//    16 KiB), route by SNI (exact → longest *.suffix → ''), connect the upstream, forward the
//    buffered hello, then pipe both ways. Non-TLS first bytes take the '' route (like legato).
//  - terminate: tls.createServer + SNICallback choosing the route's certificate; plaintext
//    is piped to the route's upstream.
//  - connect: an http server whose 'connect' handler dials host:port and pipes (no policy).
// Sockets are half-open capable (a FIN is propagated, the other direction keeps flowing),
// TCP_NODELAY is set on both sides (as legato, HAProxy and nginx do), an idle timeout closes a
// silent pair. Send `stats\n` on stdin for a `stats {...}` line (summed over workers).

const cluster = require('cluster');
const fs = require('fs');
const http = require('http');
const net = require('net');
const tls = require('tls');

const MAX_HELLO_BYTES = 16384; // bytes of handshake message we reassemble before giving up
const HELLO_TIMEOUT_MS = 10000;

/* ---------------------------------- ClientHello / SNI ---------------------------------- */

const AGAIN = { status: 'again' };
const NOT_TLS = { status: 'not-tls' };
const MALFORMED = { status: 'error' };

/**
 * Parse the TLS ClientHello at the start of `buf` (RFC 8446 §4.1.2, RFC 6066 §3).
 * Returns { status: 'ok', sni } (sni '' when absent), AGAIN (need more bytes),
 * NOT_TLS (first byte is not a handshake record) or MALFORMED.
 */
function parseClientHello(buf) {
  if (buf.length === 0) return AGAIN;
  if (buf[0] !== 0x16) return NOT_TLS;
  // Reassemble the handshake message from as many records as it spans.
  const frags = [];
  let have = 0;
  let need = -1; // total handshake bytes (4-byte header + body) once known
  let off = 0;
  while (need < 0 || have < need) {
    if (buf.length - off < 5) return AGAIN;
    if (buf[off] !== 0x16 || buf[off + 1] !== 0x03) return MALFORMED;
    const len = buf.readUInt16BE(off + 3);
    if (len === 0 || len > 16384) return MALFORMED;
    if (buf.length - off - 5 < len) return AGAIN;
    frags.push(buf.subarray(off + 5, off + 5 + len));
    have += len;
    off += 5 + len;
    if (need < 0 && have >= 4) {
      const head = frags.length === 1 ? frags[0] : Buffer.concat(frags);
      if (head[0] !== 0x01) return MALFORMED; // not a ClientHello
      need = 4 + head.readUIntBE(1, 3);
      if (need > MAX_HELLO_BYTES) return MALFORMED;
    }
  }
  const hs = frags.length === 1 ? frags[0] : Buffer.concat(frags);
  const end = need;
  let p = 4 + 2 + 32; // header, legacy_version, random
  if (p + 1 > end) return MALFORMED;
  const sidLen = hs[p];
  p += 1;
  if (sidLen > 32 || sidLen > end - p) return MALFORMED;
  p += sidLen;
  if (2 > end - p) return MALFORMED;
  const csLen = hs.readUInt16BE(p);
  p += 2;
  if (csLen % 2 !== 0 || csLen > end - p) return MALFORMED;
  p += csLen;
  if (1 > end - p) return MALFORMED;
  const compLen = hs[p];
  p += 1;
  if (compLen > end - p) return MALFORMED;
  p += compLen;
  if (p === end) return { status: 'ok', sni: '' }; // no extensions
  if (2 > end - p) return MALFORMED;
  const extLen = hs.readUInt16BE(p);
  p += 2;
  if (extLen !== end - p) return MALFORMED;
  while (p < end) {
    if (4 > end - p) return MALFORMED;
    const type = hs.readUInt16BE(p);
    const len = hs.readUInt16BE(p + 2);
    p += 4;
    if (len > end - p) return MALFORMED;
    if (type === 0) { // server_name
      let q = p;
      const qe = p + len;
      if (2 > qe - q) return MALFORMED;
      const listLen = hs.readUInt16BE(q);
      q += 2;
      if (listLen !== qe - q) return MALFORMED;
      while (q < qe) {
        if (3 > qe - q) return MALFORMED;
        const nameType = hs[q];
        const nameLen = hs.readUInt16BE(q + 1);
        q += 3;
        if (nameLen > qe - q) return MALFORMED;
        if (nameType === 0) {
          let sni = hs.toString('latin1', q, q + nameLen).toLowerCase();
          if (sni.endsWith('.')) sni = sni.slice(0, -1);
          return { status: 'ok', sni };
        }
        q += nameLen;
      }
    }
    p += len;
  }
  return { status: 'ok', sni: '' };
}

/* ----------------------------------------- routing ----------------------------------------- */

function makeRouter(routes) {
  const exact = new Map();
  const wild = []; // [suffix with leading '.', route], longest first
  let dflt = null;
  for (const r of routes) {
    const sni = r.sni.toLowerCase();
    if (sni === '') dflt = r;
    else if (sni.startsWith('*.')) wild.push([sni.slice(1), r]);
    else exact.set(sni, r);
  }
  wild.sort((a, b) => b[0].length - a[0].length);
  return (name) => {
    if (name) {
      const e = exact.get(name);
      if (e) return e;
      for (const [suffix, r] of wild) if (name.length > suffix.length && name.endsWith(suffix)) return r;
    }
    return dflt;
  };
}

/* ------------------------------------------ relay ------------------------------------------ */

const stats = { accepted: 0, active: 0, bytesFromClients: 0, bytesToClients: 0, noRoute: 0, upstreamErrors: 0 };

function dial(upstream) {
  const opts = upstream.path ? { path: upstream.path, allowHalfOpen: true } : { host: upstream.host, port: upstream.port, allowHalfOpen: true };
  const s = net.connect(opts);
  if (!upstream.path) s.setNoDelay(true);
  return s;
}

/** Pipe client <-> upstream with half-close, idle timeout and counters. */
function splice(client, up, first, idleMs) {
  if (first && first.length) up.write(first);
  client.pipe(up);
  up.pipe(client);
  const kill = () => { client.destroy(); up.destroy(); };
  client.on('error', kill);
  up.on('error', () => { stats.upstreamErrors++; kill(); });
  client.on('close', (hadError) => { if (hadError || !up.writableEnded) up.destroy(); });
  up.on('close', (hadError) => { if (hadError || !client.writableEnded) client.destroy(); });
  if (idleMs > 0) {
    client.setTimeout(idleMs, kill);
    up.setTimeout(idleMs, kill);
  }
}

function track(client) {
  stats.accepted++;
  stats.active++;
  client.once('close', () => {
    stats.active--;
    stats.bytesFromClients += client.bytesRead;
    stats.bytesToClients += client.bytesWritten;
  });
}

function passthroughServer(route, idleMs) {
  return net.createServer({ allowHalfOpen: true, pauseOnConnect: false }, (client) => {
    track(client);
    client.setNoDelay(true);
    let buf = null;
    let routed = false;
    const timer = setTimeout(() => client.destroy(), HELLO_TIMEOUT_MS);
    const fail = () => { clearTimeout(timer); client.destroy(); };
    client.on('error', fail);
    const onData = (chunk) => {
      buf = buf ? Buffer.concat([buf, chunk]) : chunk;
      const r = parseClientHello(buf);
      if (r === AGAIN) {
        if (buf.length > MAX_HELLO_BYTES + 5 * 16) fail();
        return;
      }
      routed = true;
      client.removeListener('data', onData);
      client.removeListener('error', fail);
      client.pause();
      clearTimeout(timer);
      const target = r === MALFORMED ? null : route(r.status === 'ok' ? r.sni : '');
      if (!target) { stats.noRoute++; client.destroy(); return; }
      splice(client, dial(target.upstream), buf, idleMs);
    };
    client.on('data', onData);
    client.once('end', () => { if (!routed) fail(); });
  });
}

function terminateServer(routes, route, idleMs) {
  const contexts = new Map();
  const ctxFor = (r) => {
    if (!contexts.has(r)) {
      contexts.set(r, tls.createSecureContext({ cert: fs.readFileSync(r.certFile), key: fs.readFileSync(r.keyFile) }));
    }
    return contexts.get(r);
  };
  const dflt = routes.find((r) => r.certFile) || routes[0];
  const server = tls.createServer({
    allowHalfOpen: true,
    cert: fs.readFileSync(dflt.certFile),
    key: fs.readFileSync(dflt.keyFile),
    SNICallback: (name, cb) => {
      const r = route((name || '').toLowerCase());
      cb(null, r && r.certFile ? ctxFor(r) : ctxFor(dflt));
    },
  }, (client) => {
    track(client);
    const r = route((client.servername || '').toLowerCase());
    if (!r) { stats.noRoute++; client.destroy(); return; }
    splice(client, dial(r.upstream), null, idleMs);
  });
  server.on('connection', (s) => s.setNoDelay(true));
  server.on('tlsClientError', () => {});
  return server;
}

function connectServer(idleMs) {
  const server = http.createServer((req, res) => { res.writeHead(405, { connection: 'close' }); res.end(); });
  server.on('connect', (req, client, head) => {
    track(client);
    client.setNoDelay(true);
    const m = /^\[?([^\]]+?)\]?:(\d+)$/.exec(req.url || '');
    if (!m) { client.end('HTTP/1.1 400 Bad Request\r\n\r\n'); return; }
    const up = net.connect({ host: m[1], port: Number(m[2]), allowHalfOpen: true });
    up.setNoDelay(true);
    up.once('connect', () => {
      client.write('HTTP/1.1 200 Connection Established\r\n\r\n');
      splice(client, up, head, idleMs);
    });
    up.once('error', () => { if (!up.connecting) return; stats.upstreamErrors++; client.end('HTTP/1.1 502 Bad Gateway\r\n\r\n'); });
    client.on('error', () => up.destroy());
  });
  server.on('clientError', (err, s) => s.destroy());
  return server;
}

/* ---------------------------------------- process ----------------------------------------- */

function listenAll(conf) {
  const route = makeRouter(conf.routes || []);
  const idleMs = conf.idleTimeoutMs === undefined ? 300000 : conf.idleTimeoutMs;
  return Promise.all(conf.listeners.map((l) => new Promise((resolve, reject) => {
    const server = l.mode === 'terminate' ? terminateServer(conf.routes, route, idleMs)
      : l.mode === 'connect' ? connectServer(idleMs)
        : passthroughServer(route, idleMs);
    server.maxConnections = 1 << 30;
    server.once('error', reject);
    server.listen({ host: l.host || '127.0.0.1', port: l.port || 0, backlog: 4096 }, () => resolve(server.address().port));
  })));
}

function readCommands(onLine) {
  let acc = '';
  process.stdin.setEncoding('utf8');
  process.stdin.on('data', (d) => {
    acc += d;
    let i;
    while ((i = acc.indexOf('\n')) >= 0) { onLine(acc.slice(0, i).trim()); acc = acc.slice(i + 1); }
  });
  process.stdin.on('end', () => process.exit(0));
}

function main() {
  const conf = JSON.parse(fs.readFileSync(process.argv[2], 'utf8'));
  const workers = conf.workers || 1;
  if (workers > 1 && cluster.isPrimary) {
    cluster.schedulingPolicy = cluster.SCHED_NONE; // each worker accepts on the shared socket
    let ports = null;
    let up = 0;
    const pending = [];
    for (let i = 0; i < workers; i++) {
      const w = cluster.fork();
      w.on('message', (m) => {
        if (m.type === 'ready') { ports = m.ports; if (++up === workers) process.stdout.write(`ready ${JSON.stringify({ ports })}\n`); }
        if (m.type === 'stats' && pending.length) pending[0].push(m.stats);
      });
    }
    readCommands((line) => {
      if (line !== 'stats') return;
      const acc = [];
      pending.push(acc);
      for (const w of Object.values(cluster.workers)) w.send({ type: 'stats' });
      const t = setInterval(() => {
        if (acc.length < workers) return;
        clearInterval(t);
        pending.shift();
        const sum = {};
        for (const s of acc) for (const [k, v] of Object.entries(s)) sum[k] = (sum[k] || 0) + v;
        process.stdout.write(`stats ${JSON.stringify(sum)}\n`);
      }, 5);
    });
    process.on('SIGTERM', () => { for (const w of Object.values(cluster.workers)) w.kill(); process.exit(0); });
    return;
  }
  listenAll(conf).then((ports) => {
    if (cluster.isWorker) {
      process.send({ type: 'ready', ports });
      process.on('message', (m) => { if (m.type === 'stats') process.send({ type: 'stats', stats }); });
    } else {
      process.stdout.write(`ready ${JSON.stringify({ ports })}\n`);
      readCommands((line) => { if (line === 'stats') process.stdout.write(`stats ${JSON.stringify(stats)}\n`); });
    }
  }, (err) => { process.stderr.write(`listen failed: ${err.stack}\n`); process.exit(1); });
}

if (require.main === module) main();
module.exports = { parseClientHello, makeRouter };
