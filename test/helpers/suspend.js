'use strict';
// Helpers for suspended routes, hot swap and lifecycle events (suspend.spec.js,
// hotswap.spec.js, events.spec.js):
//
//   suspendedRoute(sni, extra)      a suspended route with no upstreams of its own
//   watchSuspended(proxy)           queue of 'suspended' events: next(ms), all, count
//   startHttpUpstream(name)         plain HTTP/1.x origin for terminating decisions; replies
//                                   "upstream=<name>\n" + the request body, then closes
//   startTaggedEcho(tag)            echo upstream that marks every byte it returns: tag 'A'
//                                   echoes bytes as they are, tag 'B' echoes them inverted
//                                   (b ^ 0xff), so a client can tell per byte who answered
//   tlsOutcome(port, servername, o) a TLS client that reports how far it got
//   readBytes(socket, n, ms)        the next n (or more) bytes a socket receives
//   echoRound(socket, payload, ms)  write payload, resolve with the bytes echoed back
//   runNode(file, args, opts)       run `node [nodeArgs] file args` with a deadline (tracked)
//
// Everything opened here is tracked by helpers/resources, so `cleanup()` closes it.

const http = require('http');
const net = require('net');
const path = require('path');
const tls = require('tls');
const { track, trackSocket } = require('./resources');
const { run } = require('./clients');

const FIXTURES = path.join(__dirname, '..', 'fixtures');

/** A suspended route for `sni` ('' = default) with no upstreams of its own. */
function suspendedRoute(sni = '', extra = {}) {
  return { sni, suspended: true, upstreams: [], ...extra };
}

/**
 * Record every 'suspended' event of `proxy` (from now on). `next(ms)` resolves with the next
 * event not yet taken (rejects after `ms`); `all` holds every event seen.
 */
function watchSuspended(proxy) {
  const all = [];
  const waiters = [];
  let taken = 0;
  proxy.on('suspended', (conn) => {
    all.push(conn);
    const w = waiters.shift();
    if (w) { taken++; w.resolve(conn); }
  });
  return {
    all,
    get count() { return all.length; },
    next(ms = 5000) {
      if (taken < all.length) return Promise.resolve(all[taken++]);
      return new Promise((resolve, reject) => {
        const w = {
          resolve: (c) => { clearTimeout(timer); resolve(c); },
        };
        const timer = setTimeout(() => {
          const i = waiters.indexOf(w);
          if (i >= 0) waiters.splice(i, 1);
          reject(new Error(`no 'suspended' event within ${ms} ms`));
        }, ms);
        waiters.push(w);
      });
    },
  };
}

/**
 * A plain HTTP origin (what a terminating decision forwards to). Every response body is
 * "upstream=<name>\n" followed by the request body; `requests` counts the requests served.
 */
async function startHttpUpstream(name) {
  const up = { name, requests: 0, port: 0, server: null };
  const server = http.createServer((req, res) => {
    const chunks = [];
    req.on('data', (c) => chunks.push(c));
    req.on('end', () => {
      up.requests++;
      const body = Buffer.concat([Buffer.from(`upstream=${name}\n`), ...chunks]);
      res.writeHead(200, { 'content-type': 'text/plain', 'content-length': body.length, connection: 'close' });
      res.end(body);
    });
  });
  server.on('clientError', (err, socket) => socket.destroy());
  await new Promise((resolve) => server.listen(0, '127.0.0.1', resolve));
  up.server = server;
  up.port = server.address().port;
  track(up, () => new Promise((resolve) => {
    server.close(() => resolve());
    server.closeAllConnections();
  }), 3);
  return up;
}

/**
 * Echo upstream that tags every byte it returns: 'A' as is, 'B' inverted (b ^ 0xff). Ends its
 * side after the client's FIN. `connections` counts accepted connections.
 */
async function startTaggedEcho(tag) {
  const invert = tag === 'B';
  const sockets = new Set();
  const echo = { tag, connections: 0, port: 0, server: null };
  const server = net.createServer({ allowHalfOpen: true }, (s) => {
    echo.connections++;
    sockets.add(s);
    s.on('close', () => sockets.delete(s));
    s.on('error', () => {});
    s.on('data', (d) => {
      if (invert) {
        const out = Buffer.allocUnsafe(d.length);
        for (let i = 0; i < d.length; i++) out[i] = d[i] ^ 0xff;
        s.write(out);
      } else {
        s.write(d);
      }
    });
    s.on('end', () => s.end());
  });
  await new Promise((resolve) => server.listen({ port: 0, host: '127.0.0.1', backlog: 2048 }, resolve));
  echo.server = server;
  echo.port = server.address().port;
  track(echo, () => new Promise((resolve) => {
    server.close(() => resolve());
    for (const s of sockets) s.destroy();
  }), 3);
  return echo;
}

/**
 * Which upstream tagged `got` as the echo of `sent`: 'A', 'B', or null (mixed, short or
 * corrupt).
 */
function tagOf(sent, got) {
  if (got.length !== sent.length) return null;
  if (got.equals(sent)) return 'A';
  for (let i = 0; i < sent.length; i++) if ((got[i] ^ 0xff) !== sent[i]) return null;
  return 'B';
}

/**
 * Connect a TLS client to the proxy and report how far it got: returns a promise of
 * { secure (handshake completed), authorized, peerCN, alpn, error, data (everything received
 * after the handshake, until close) }, which never rejects; the promise carries the client
 * socket as `.socket` (e.g. to leave early). `write` is sent after the handshake; `tlsOptions`
 * go to tls.connect as they are (a client certificate, maxVersion, ...).
 */
function tlsOutcome(port, servername, { ca, ALPNProtocols, write, timeoutMs = 10000, tlsOptions = {} } = {}) {
  const opts = { host: '127.0.0.1', port, ca, rejectUnauthorized: true, ALPNProtocols, ...tlsOptions };
  if (servername !== null) opts.servername = servername;
  const socket = trackSocket(tls.connect(opts));
  const outcome = new Promise((resolve) => {
    const result = { secure: false, authorized: false, peerCN: null, alpn: false, error: null, data: Buffer.alloc(0), localPort: 0 };
    const chunks = [];
    const timer = setTimeout(() => { result.error = result.error || new Error('timeout'); socket.destroy(); }, timeoutMs);
    socket.once('connect', () => { result.localPort = socket.localPort; });
    socket.once('secureConnect', () => {
      result.secure = true;
      result.authorized = socket.authorized;
      const cert = socket.getPeerCertificate();
      result.peerCN = cert && cert.subject ? cert.subject.CN : null;
      result.alpn = socket.alpnProtocol;
      if (write !== undefined) socket.write(write);
    });
    socket.on('data', (c) => chunks.push(c));
    socket.on('error', (e) => { result.error = result.error || e; });
    socket.once('close', () => {
      clearTimeout(timer);
      result.data = Buffer.concat(chunks);
      resolve(result);
    });
  });
  outcome.socket = socket;
  return outcome;
}

/**
 * Resolve with what `socket` receives from now until at least `n` bytes arrived (more when the
 * last chunk overshoots: callers compare contents, so extra bytes show); rejects when the
 * socket closes first or after `ms`.
 */
function readBytes(socket, n, ms = 10000) {
  return new Promise((resolve, reject) => {
    const chunks = [];
    let got = 0;
    const done = (err, value) => {
      clearTimeout(timer);
      socket.off('data', onData);
      socket.off('close', onClose);
      if (err) reject(err); else resolve(value);
    };
    const onData = (d) => {
      chunks.push(d);
      got += d.length;
      if (got >= n) done(null, Buffer.concat(chunks));
    };
    const onClose = () => done(new Error(`closed after ${got} of ${n} expected bytes`));
    const timer = setTimeout(() => done(new Error(`only ${got} of ${n} expected bytes within ${ms} ms`)), ms);
    if (n === 0) { done(null, Buffer.alloc(0)); return; }
    socket.on('data', onData);
    socket.once('close', onClose);
    if (socket.destroyed) onClose();
  });
}

/**
 * Write `payload` and resolve with the bytes that come back: payload.length of them, plus
 * `extra` more received before (held bytes echoed first, for example).
 */
function echoRound(socket, payload, ms = 10000, extra = 0) {
  const reading = readBytes(socket, payload.length + extra, ms);
  socket.write(payload);
  return reading;
}

/**
 * Run `node [nodeArgs] <fixture> [args]` (a file in test/fixtures, or an absolute path); kill it
 * after `timeoutMs`. Resolves with { code, signal, stdout, stderr, timedOut }. The child is
 * tracked (killed at cleanup if still running).
 */
function runNode(file, args = [], { nodeArgs = [], timeoutMs = 30000, env } = {}) {
  const script = path.isAbsolute(file) ? file : path.join(FIXTURES, file);
  return run(process.execPath, [...nodeArgs, script, ...args], { timeoutMs, env: env || process.env, encoding: 'utf8' });
}

module.exports = {
  suspendedRoute, watchSuspended, startHttpUpstream, startTaggedEcho, tagOf, tlsOutcome,
  readBytes, echoRound, runNode, FIXTURES,
};
