'use strict';
// Starting proxies and raw client sockets for tests, with defaults suited to tests: one listener
// on 127.0.0.1 port 0, workerThreads 2. Everything is tracked: call `cleanup()` (re-exported
// from helpers/resources) in afterEach and every proxy, socket, server and child is closed.

const net = require('net');
const path = require('path');
const { Proxy } = require(path.join(__dirname, '..', '..'));
const { track, trackSocket, trackDir, cleanup } = require('./resources');
const { waitFor } = require('./wait');

/** A TCP upstream on loopback. */
function tcp(port, host = '127.0.0.1') {
  return { kind: 'tcp', host, port };
}

/** A Unix-socket upstream. */
function uds(socketPath) {
  return { kind: 'uds', path: socketPath };
}

/** A passthrough route for `sni` ('' = default) to one upstream (a port number means TCP). */
function route(sni, upstream) {
  const up = typeof upstream === 'number' ? tcp(upstream) : upstream;
  return { sni, terminateTls: false, upstreams: [up] };
}

/**
 * Build a config: `opts.routes` (required), `opts.listener` (merged into the default listener),
 * `opts.listeners` (replaces the listener list; each entry gets host 127.0.0.1 and port 0 unless
 * it says otherwise), and any other top-level option as is.
 */
function makeConfig(opts = {}) {
  const { listener, listeners, ...rest } = opts;
  const base = { host: '127.0.0.1', port: 0 };
  return {
    workerThreads: 2,
    ...rest,
    listeners: listeners ? listeners.map((l) => ({ ...base, ...l })) : [{ ...base, ...listener }],
  };
}

/** Create (not start) a tracked proxy; stopped with graceMs 0 at cleanup. */
function createProxy(opts) {
  const proxy = new Proxy(makeConfig(opts));
  // An 'error' with no listener would be printed; keep them for tests that look.
  proxy.errors = [];
  proxy.warnings = [];
  proxy.on('error', (err) => proxy.errors.push(err));
  proxy.on('warning', (w) => proxy.warnings.push(w));
  return track(proxy, (p) => p.stop({ graceMs: 0 }), 2);
}

/** Create and start a tracked proxy. */
async function startProxy(opts) {
  const proxy = createProxy(opts);
  await proxy.start();
  return proxy;
}

/** The bound port of listener `i`. */
function portOf(proxy, i = 0) {
  return proxy.addresses()[i].port;
}

/**
 * A tracked raw TCP connection; resolves once connected.
 * @param {number} port
 * @param {net.NetConnectOpts} [opts]
 * @returns {Promise<net.Socket>}
 */
function connect(port, opts = {}) {
  return new Promise((resolve, reject) => {
    const s = trackSocket(net.connect({ host: '127.0.0.1', port, ...opts }));
    s.once('connect', () => resolve(s));
    s.once('error', reject);
  });
}

/**
 * Collect everything a socket sends until it closes. Resolves with { data, hadError, error,
 * ended } where `ended` says a FIN arrived (as opposed to a reset or destroy).
 */
function collect(socket) {
  return new Promise((resolve) => {
    const chunks = [];
    let ended = false;
    let error = null;
    socket.on('data', (c) => chunks.push(c));
    socket.on('end', () => { ended = true; });
    socket.on('error', (e) => { error = e; });
    socket.on('close', (hadError) => resolve({ data: Buffer.concat(chunks), hadError, error, ended }));
  });
}

/**
 * Resolves once `n` connections are open in every sense: activeConnections (which drops as a
 * connection closes) and the workers' connection objects, whose listener slot and per-source
 * counts come back when their sockets are gone, a loop turn or more later. Wait for this before
 * expecting a freed slot to admit the next connection.
 */
function openConnections(proxy, n) {
  return waitFor(() => {
    const m = proxy.metrics();
    return m.activeConnections === n && m.workers.reduce((sum, w) => sum + w.connections, 0) === n;
  });
}

/** Resolves when `socket` closes (for whatever reason). */
function closed(socket) {
  if (socket.destroyed && socket.closed) return Promise.resolve();
  return new Promise((resolve) => socket.once('close', resolve));
}

module.exports = {
  Proxy, tcp, uds, route, makeConfig, createProxy, startProxy, portOf, connect, collect, closed, openConnections,
  track, trackSocket, trackDir, cleanup,
};
