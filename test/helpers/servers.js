'use strict';
// Real origin servers for the tests, all on loopback, port 0 (or a Unix socket in a temp dir).
// Each returns an object with `port` (or `path`), the Node server, and `close()`; each is
// registered with helpers/resources so `cleanup()` closes it and every socket it accepted.
//
//   startTlsOrigin(name, leaf)   HTTPS origin (real TLS, the leaf's chain); every response body is
//                                "origin=<name>\nsni=<servername>\n" followed by the request body,
//                                so any client (Node, curl, openssl s_client) can tell which origin
//                                answered and what SNI it saw.
//   startTcpServer(onConn, opts) plain TCP (or `{ path }` for a Unix socket) with a per-connection
//                                callback; sockets are tracked and destroyed at close.
//   startEchoServer(opts)        echoes every byte, and ends its side when the client ends.
//   startRecorder(opts)          records every byte of every connection (byte-exact comparisons).
//   tempSocketPath(name)         a fresh Unix-socket path in a temp dir removed at cleanup.

const fs = require('fs');
const https = require('https');
const net = require('net');
const os = require('os');
const path = require('path');
const { once, EventEmitter } = require('events');
const { track, trackDir } = require('./resources');

function closeServer(server, sockets) {
  return new Promise((resolve) => {
    if (!server.listening) {
      for (const s of sockets) s.destroy();
      resolve();
      return;
    }
    server.close(() => resolve());
    for (const s of sockets) s.destroy();
    if (typeof server.closeAllConnections === 'function') server.closeAllConnections();
  });
}

async function listen(server, where) {
  if (where.path) server.listen(where.path);
  else server.listen(0, where.host || '127.0.0.1');
  await once(server, 'listening');
}

/**
 * An HTTPS origin that names itself in every response.
 * @param {string} name identifies the origin in the body ("origin=<name>")
 * @param {{ key: Buffer, chain: Buffer }} leaf from helpers/certs
 * @returns {Promise<{ name: string, port: number, server: https.Server,
 *   requests: { sni: string, method: string, url: string, body: Buffer }[], close(): Promise<void> }>}
 */
async function startTlsOrigin(name, leaf, opts = {}) {
  const sockets = new Set();
  const requests = [];
  const server = https.createServer({ key: leaf.key, cert: leaf.chain, ...opts.tls }, (req, res) => {
    const chunks = [];
    req.on('data', (c) => chunks.push(c));
    req.on('end', () => {
      const body = Buffer.concat(chunks);
      const sni = req.socket.servername || '';
      requests.push({ sni, method: req.method, url: req.url, body });
      const payload = Buffer.concat([Buffer.from(`origin=${name}\nsni=${sni}\n`), body]);
      res.writeHead(200, { 'content-type': 'text/plain', 'content-length': payload.length });
      res.end(payload);
    });
  });
  server.on('connection', (s) => {
    sockets.add(s);
    s.on('close', () => sockets.delete(s));
  });
  // Clients that are cut off (no-route tests, timeouts) cause TLS errors here: not our concern.
  server.on('tlsClientError', () => {});
  await listen(server, {});
  const origin = {
    name,
    port: server.address().port,
    server,
    requests,
    close: () => closeServer(server, sockets),
  };
  track(origin, (o) => o.close(), 3);
  return origin;
}

/**
 * A plain TCP (or Unix-socket) server calling `onConnection(socket, conn)` for each connection.
 * `conn` collects the bytes received (`conn.data()`), and `conn.ended` resolves on the client's
 * FIN, `conn.closed` on close. The returned object emits 'connection' with `conn` and has
 * `connections` (all conns so far) and `nextConnection()`.
 * @param {(socket: net.Socket, conn: object) => void} [onConnection]
 * @param {{ path?: string, allowHalfOpen?: boolean, pauseOnConnect?: boolean }} [opts]
 */
async function startTcpServer(onConnection, opts = {}) {
  const sockets = new Set();
  const events = new EventEmitter();
  const connections = [];
  const waiting = [];
  const server = net.createServer({ allowHalfOpen: opts.allowHalfOpen !== false, pauseOnConnect: !!opts.pauseOnConnect });
  server.on('connection', (socket) => {
    sockets.add(socket);
    socket.on('error', () => {});
    const chunks = [];
    let received = 0;
    const conn = {
      socket,
      get received() { return received; },
      data: () => Buffer.concat(chunks),
      ended: null,
      closed: null,
    };
    conn.ended = new Promise((resolve) => socket.once('end', resolve));
    conn.closed = new Promise((resolve) => socket.once('close', resolve));
    socket.on('close', () => sockets.delete(socket));
    if (opts.record !== false) {
      socket.on('data', (c) => { chunks.push(c); received += c.length; });
    }
    connections.push(conn);
    if (onConnection) onConnection(socket, conn);
    events.emit('connection', conn);
    const w = waiting.shift();
    if (w) w(conn);
  });
  await listen(server, opts);
  let taken = 0;
  const srv = {
    server,
    port: opts.path ? undefined : server.address().port,
    path: opts.path,
    connections,
    events,
    /** Resolves with the next connection not yet returned by nextConnection(). */
    nextConnection() {
      if (taken < connections.length) return Promise.resolve(connections[taken++]);
      return new Promise((resolve) => waiting.push((c) => { taken++; resolve(c); }));
    },
    close: () => closeServer(server, sockets),
  };
  track(srv, (s) => s.close(), 3);
  return srv;
}

/**
 * Echo server: writes back every byte it reads and ends its side after the client's FIN.
 * `opts.path` makes it a Unix-socket server.
 */
function startEchoServer(opts = {}) {
  return startTcpServer((socket) => {
    socket.on('data', (d) => socket.write(d));
    socket.on('end', () => socket.end());
  }, { ...opts, record: opts.record === true });
}

/** A server that only records what it receives (byte-exact) and never writes. */
function startRecorder(opts = {}) {
  return startTcpServer(null, opts);
}

/** A fresh Unix-socket path inside a temp directory that cleanup() removes. */
function tempSocketPath(name = 'up.sock') {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'legato-uds-'));
  trackDir(dir);
  return path.join(dir, name);
}

module.exports = { startTlsOrigin, startTcpServer, startEchoServer, startRecorder, tempSocketPath };

/**
 * A port where TCP connections hang: a child process listens with backlog 1 and never accepts
 * (test/fixtures/blackhole.js); the accept queue is filled here, so further connection attempts
 * (the proxy's upstream dials) stay in SYN_SENT. Returns { port }; cleanup() kills the child.
 */
async function startBlackhole() {
  const { spawnFixture } = require('./child');
  const { trackSocket } = require('./resources');
  const h = spawnFixture('blackhole.js', [], { timeoutMs: 120000 });
  const port = await h.waitMessage((m) => typeof m === 'number', 10000);
  // Fill the accept queue until a connection attempt no longer completes.
  for (let i = 0; i < 16; i++) {
    const s = trackSocket(net.connect(port, '127.0.0.1'));
    const ok = await new Promise((resolve) => {
      const t = setTimeout(() => resolve(false), 500);
      s.once('connect', () => { clearTimeout(t); resolve(true); });
      s.once('error', () => { clearTimeout(t); resolve(false); });
    });
    if (!ok) return { port };
  }
  throw new Error('startBlackhole: connections to the blackhole kept completing');
}

module.exports.startBlackhole = startBlackhole;
