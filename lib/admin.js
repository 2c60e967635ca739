'use strict';

/**
 * lib/admin.js — the admin HTTP endpoint of `legato serve` (config `admin`) and of the forward
 * proxy (`--admin`). node:http on the JS thread; nothing here touches the engine's data path
 * (metrics() reads per-worker counters with relaxed loads).
 *
 *   GET /metrics       Prometheus text format 0.0.4 (lib/prometheus.js)
 *   GET /metrics.json  proxy.metrics() as JSON
 *   GET /health        200 "ok" while the process runs (liveness)
 *   GET /ready         200 "ready" once every listener accepts; 503 "starting" / "stopping"
 *   anything else      404; a method other than GET or HEAD: 405 (Allow: GET, HEAD)
 * HEAD is answered like GET without a body; a query string is ignored.
 *
 * It listens on TCP (`{ host, port }`, port 0 picks one) or on a Unix socket (`{ path }`). A
 * Unix socket path that exists is reclaimed only when it is a socket nobody answers on
 * (connect → ECONNREFUSED); a live socket or any other file is an error, never unlinked.
 */

const fs = require('fs');
const http = require('http');
const net = require('net');
const { metricsText, CONTENT_TYPE } = require('./prometheus');

/** Connections the admin server keeps at most (it serves a scraper or two, not the public). */
const MAX_ADMIN_CONNECTIONS = 64;
/** Milliseconds a request may take to arrive whole. */
const ADMIN_REQUEST_TIMEOUT_MS = 10000;

/**
 * @typedef {{ host: string, port: number } | { path: string }} AdminSpec
 * @typedef {'starting' | 'running' | 'stopping' | 'stopped'} ServiceState
 */

class AdminServer {
  /**
   * @param {{ metrics: () => object, state: () => ServiceState,
   *   extra?: () => import('./prometheus').ExtraFamily[] }} source Where answers come from:
   *   `metrics()` is proxy.metrics(); `state()` the service's state; `extra()` families added
   *   to /metrics (build info, start time, reloads).
   */
  constructor(source) {
    this.source = source;
    this.spec = null;
    // Node enforces requestTimeout only when it checks its connections (every 30 s by
    // default): 64 slow clients held every admin connection for up to 40 s, /ready included.
    this.server = http.createServer({ connectionsCheckingInterval: 1000 }, (req, res) => this._handle(req, res));
    this.server.maxConnections = MAX_ADMIN_CONNECTIONS;
    this.server.requestTimeout = ADMIN_REQUEST_TIMEOUT_MS;
    this.server.headersTimeout = ADMIN_REQUEST_TIMEOUT_MS;
    this.server.keepAliveTimeout = 5000;
  }

  /**
   * Start listening.
   * @param {AdminSpec} spec
   * @returns {Promise<AdminSpec>} The bound address (`port` is the chosen one for port 0).
   * @throws {Error} The system error (EADDRINUSE, EACCES, …), or for a Unix socket path that is
   *   held by a live server or is not a socket, an error with code EADDRINUSE / EEXIST.
   */
  async listen(spec) {
    if ('path' in spec) await reclaimSocketPath(spec.path);
    await new Promise((resolve, reject) => {
      const onError = (err) => { this.server.off('listening', onListening); reject(err); };
      const onListening = () => { this.server.off('error', onError); resolve(); };
      this.server.once('error', onError);
      this.server.once('listening', onListening);
      if ('path' in spec) this.server.listen(spec.path);
      else this.server.listen(spec.port, spec.host);
    });
    const a = this.server.address();
    this.spec = typeof a === 'string' ? { path: a } : { host: spec.host, port: a.port };
    return this.spec;
  }

  /** @returns {Promise<void>} Resolves once the server is closed (idle connections cut). */
  close() {
    return new Promise((resolve) => {
      if (!this.server.listening) { resolve(); return; }
      this.server.close(() => resolve());
      this.server.closeAllConnections();
    });
  }

  _handle(req, res) {
    const url = (req.url || '/').split('?')[0];
    if (req.method !== 'GET' && req.method !== 'HEAD') {
      send(req, res, 405, 'text/plain; charset=utf-8', 'method not allowed: use GET or HEAD\n', { Allow: 'GET, HEAD' });
      return;
    }
    const state = this.source.state();
    switch (url) {
      case '/metrics':
      case '/metrics.json': {
        let metrics;
        try {
          metrics = this.source.metrics();
        } catch (err) {
          send(req, res, 503, 'text/plain; charset=utf-8', `metrics unavailable: ${state}\n`);
          return;
        }
        if (url === '/metrics') {
          const extra = this.source.extra ? this.source.extra() : [];
          send(req, res, 200, CONTENT_TYPE, metricsText(metrics, { extra }));
        } else {
          send(req, res, 200, 'application/json; charset=utf-8', `${JSON.stringify(metrics, null, 2)}\n`);
        }
        return;
      }
      case '/health':
        send(req, res, 200, 'text/plain; charset=utf-8', 'ok\n');
        return;
      case '/ready':
        if (state === 'running') send(req, res, 200, 'text/plain; charset=utf-8', 'ready\n');
        else send(req, res, 503, 'text/plain; charset=utf-8', `${state}\n`);
        return;
      default:
        send(req, res, 404, 'text/plain; charset=utf-8', 'not found: try /metrics, /metrics.json, /health or /ready\n');
    }
  }
}

function send(req, res, status, type, body, headers = {}) {
  const buf = Buffer.from(body, 'utf8');
  res.writeHead(status, { 'Content-Type': type, 'Content-Length': buf.length, 'Cache-Control': 'no-store', ...headers });
  res.end(req.method === 'HEAD' ? undefined : buf);
}

/**
 * Make a Unix socket path free to bind: absent is fine; a socket nobody listens on (a crashed
 * predecessor's) is unlinked; a live socket or another kind of file is an error.
 * @param {string} p
 */
async function reclaimSocketPath(p) {
  let st;
  try {
    st = fs.lstatSync(p);
  } catch (err) {
    if (err.code === 'ENOENT') return;
    throw err;
  }
  if (!st.isSocket()) {
    const err = new Error(`${p} exists and is not a socket (not removed)`);
    err.code = 'EEXIST';
    throw err;
  }
  const alive = await new Promise((resolve) => {
    const s = net.connect(p);
    s.once('connect', () => { s.destroy(); resolve(true); });
    s.once('error', (e) => resolve(e.code !== 'ECONNREFUSED'));
  });
  if (alive) {
    const err = new Error(`${p} is in use by a running server`);
    err.code = 'EADDRINUSE';
    throw err;
  }
  fs.unlinkSync(p);
}

/**
 * 'host:port', '[v6]:port', ':port' (host 127.0.0.1) or a Unix socket path (starting with '/'
 * or '.').
 * @param {string} text The `--admin` value.
 * @returns {AdminSpec | null} null when it is none of these.
 */
function parseAdminAddress(text) {
  if (text.startsWith('/') || text.startsWith('.')) return { path: text };
  const m = /^(?:\[([^\]]+)\]|([^:[\]]*)):([0-9]{1,5})$/.exec(text);
  if (!m) return null;
  const port = Number(m[3]);
  if (port > 65535) return null;
  const host = m[1] !== undefined ? m[1] : m[2] === '' ? '127.0.0.1' : m[2];
  if (m[1] !== undefined && net.isIP(host) !== 6) return null;
  return { host, port };
}

/** @param {AdminSpec} spec @returns {string} How the log names it. */
function adminUrl(spec) {
  if ('path' in spec) return `unix:${spec.path}`;
  return `http://${spec.host.includes(':') ? `[${spec.host}]` : spec.host}:${spec.port}`;
}

module.exports = { AdminServer, parseAdminAddress, adminUrl, reclaimSocketPath };
