'use strict';
// The Proxy class: a thin JavaScript shell around the C engine (src/lg_addon.c).
//
// Everything that touches sockets runs on the engine's own threads; this file validates config
// (lib/config.js), turns engine events into EventEmitter events, and sequences the lifecycle:
//   new → start() → running → stop() → stopped
// A stopped proxy cannot be started again: create a new one (its sockets and threads are gone).

const { EventEmitter } = require('events');
const binding = require('./binding');
const config = require('./config');

/** Error for lifecycle misuse (start twice, ...). */
function stateError(message) {
  const err = new Error(message);
  err.code = 'ERR_LEGATO_STATE';
  return err;
}

/** Distinct errors printed once each (no 'error' listener) before the memory of them restarts. */
const PRINTED_MAX = 256;

/** ms after the grace period at which a stop that has not finished is reported. */
const STOP_SLOW_MS = 5000;

const TOGGLES = { tunnel: 'setTunnelEvents', blocked: 'setBlockedEvents', access: 'setAccessEvents' };

/** One line per stop report: "worker 0 draining: 3 connections (relay 2, closing 1), 1 lookup in flight; worker 1 exited". */
function describeStopReport(workers) {
  if (!Array.isArray(workers) || workers.length === 0) return 'no worker figures';
  return workers.map((w) => {
    if (w.phase === 'exited') return `worker ${w.worker} exited`;
    const states = Object.entries(w.states || {}).map(([k, v]) => `${k} ${v}`).join(', ');
    let s = `worker ${w.worker} ${w.phase}: ${w.connections} connection${w.connections === 1 ? '' : 's'}`;
    if (states) s += ` (${states})`;
    if (w.lookups) s += `, ${w.lookups} lookup${w.lookups === 1 ? '' : 's'} in flight`;
    if (w.pendingSuspended) s += `, ${w.pendingSuspended} suspended`;
    if (w.readBuffers) s += `, ${w.readBuffers} read buffer${w.readBuffers === 1 ? '' : 's'} out`;
    return s;
  }).join('; ');
}

class Proxy extends EventEmitter {
  /**
   * Validate the configuration and create the engine. Nothing listens until start().
   * @param {import('../index').ProxyConfig} userConfig
   * @throws {TypeError|RangeError} code 'ERR_LEGATO_CONFIG', message naming the option path
   */
  constructor(userConfig) {
    super({ captureRejections: true });
    const normalized = config.normalizeConfig(userConfig);
    config.assertSupported(normalized);
    this._config = normalized;
    this._state = 'new';
    this._ports = null;
    this._workers = 0;
    this._ready = 0;
    this._exited = 0;
    this._onReady = null;
    this._stopPromise = null;
    this._stopTimer = null;
    this._onStopped = null;
    this._printed = new Set();
    // The engine keeps only a weak reference to this callback, so the Proxy holds it: a Proxy
    // that is dropped (and not running) can then be garbage-collected with its engine.
    this._onEvent = (type, payload) => this._onEngineEvent(type, payload);
    this._engine = new binding.Engine(normalized, this._onEvent);
    // 'tunnel' events (one per CONNECT connection), 'blocked' events and 'access' events (one
    // per connection, the access log) are produced only while someone listens: with no
    // 'access' listener the workers build no record and keep no SNI or JA4 per connection.
    this._onNewListener = (name) => {
      if (TOGGLES[name]) this._engine[TOGGLES[name]](true);
    };
    this._onRemoveListener = (name) => {
      if (TOGGLES[name] && this.listenerCount(name) === 0) this._engine[TOGGLES[name]](false);
    };
    this._hookToggles();
  }

  // The engine produces 'tunnel', 'blocked' and 'access' events only while they have listeners;
  // removeAllListeners() must not unhook that bookkeeping.
  _hookToggles() {
    if (!this.listeners('newListener').includes(this._onNewListener)) this.on('newListener', this._onNewListener);
    if (!this.listeners('removeListener').includes(this._onRemoveListener)) this.on('removeListener', this._onRemoveListener);
    for (const name of Object.keys(TOGGLES)) this._engine[TOGGLES[name]](this.listenerCount(name) > 0);
  }

  removeAllListeners(...args) {
    super.removeAllListeners(...args);
    this._hookToggles();
    return this;
  }

  /**
   * Bind every listener on every worker thread and start accepting.
   * Resolves once every worker is accepting. Rejects with the system error (code 'EADDRINUSE',
   * 'EACCES', ...) if a bind fails, leaving nothing listening; rejects with ERR_LEGATO_STATE if
   * called twice.
   *
   * `takeOver` (additive, issue 15 item 4): a running Proxy of this process whose addresses this
   * one takes over. A listener bound to the same host and port (not port 0) as one of its
   * listeners accepts on the very same sockets, so both accept until `takeOver.stop()`, and
   * that stop refuses no connection (none is left waiting on a socket that closes). Its other
   * addresses are unaffected. Stop the old proxy once this start() resolved.
   * @param {{ takeOver?: Proxy }} [options]
   * @returns {Promise<void>}
   */
  async start(options = {}) {
    if (this._state !== 'new') throw stateError(`start() called on a proxy that is ${this._state}`);
    const from = options && options.takeOver != null ? options.takeOver : null;
    if (from !== null && !(from instanceof Proxy)) {
      const err = new TypeError('start(): takeOver must be a Proxy');
      err.code = 'ERR_LEGATO_CONFIG';
      throw err;
    }
    if (from === this) throw stateError('start(): a proxy cannot take over its own addresses');
    if (from !== null && from._state !== 'running') throw stateError(`start(): takeOver is a proxy that is ${from._state}, not running`);
    this._state = 'starting';
    let result;
    try {
      result = from ? this._engine.start(from._engine) : this._engine.start();
    } catch (err) {
      this._state = 'failed';
      if (err && err.code === 'EADDRINUSE' && typeof err.message === 'string') {
        const path = err.listenerIndex >= 0 ? `listeners[${err.listenerIndex}].reusePort` : 'reusePort';
        err.message += `: another socket listens there (another process, or another proxy in this one); ${path}: 'share' on every side shares an address on purpose`;
      }
      throw err;
    }
    this._ports = result.ports;
    this._workers = result.workers;
    if (result.warning) this._warn('ERR_LEGATO_NOFILE', result.warning);
    if (this._ready < this._workers) {
      await new Promise((resolve) => { this._onReady = resolve; });
    }
    if (this._state === 'starting') {
      this._state = 'running';
      this._emitSafe('listening');
    }
  }

  /**
   * The listeners' addresses in configuration order; `port` is the bound port once started.
   * @returns {{ kind: 'tls'|'connect', host: string, port: number }[]}
   */
  addresses() {
    return this._config.listeners.map((l, i) => ({
      kind: l.kind,
      host: l.host,
      port: this._ports ? this._ports[i] : l.port,
    }));
  }

  /**
   * Stop accepting, let open connections finish for up to `graceMs`, close the rest, and resolve
   * once every worker thread has exited. Safe to call more than once and before start().
   * @param {{ graceMs?: number }} [options]
   * @returns {Promise<void>}
   */
  stop(options = {}) {
    const graceMs = options && options.graceMs !== undefined ? options.graceMs : 0;
    if (typeof graceMs !== 'number' || !Number.isFinite(graceMs) || graceMs < 0) {
      const err = new RangeError(`stop(): graceMs must be a non-negative number, got ${String(graceMs)}`);
      err.code = 'ERR_LEGATO_CONFIG';
      return Promise.reject(err);
    }
    if (this._stopPromise) {
      // Stopping already: a shorter grace period cuts the running one short (never extends it).
      if (this._state === 'stopping') this._engine.stop(Math.min(Math.floor(graceMs), 0xffffffff));
      return this._stopPromise;
    }
    if (this._state === 'new' || this._state === 'failed') {
      this._state = 'stopped';
      this._stopPromise = Promise.resolve();
      return this._stopPromise;
    }
    this._stopPromise = new Promise((resolve) => { this._onStopped = resolve; });
    this._state = 'stopping';
    this._engine.stop(Math.min(Math.floor(graceMs), 0xffffffff));
    this._watchStop(graceMs);
    if (this._onReady) { const r = this._onReady; this._onReady = null; r(); }
    this._maybeStopped();
    return this._stopPromise;
  }

  /**
   * Counters summed over worker threads; see README.md "Metrics".
   * @returns {import('../index').Metrics}
   */
  metrics() {
    return this._engine.metrics();
  }

  /**
   * The metrics in Prometheus text format 0.0.4 (what `legato serve`'s admin endpoint serves at
   * /metrics), for users who serve them from their own HTTP server.
   * @returns {string}
   */
  metricsText() {
    return require('./prometheus').metricsText(this.metrics());
  }

  /**
   * Replace the routes and/or the default protection atomically. New connections use the new
   * table; connections already accepted keep the one they started with. Invalid input throws
   * (ERR_LEGATO_CONFIG) and the running table stays.
   * @param {{ routes?: object[], protection?: object }} update
   */
  updateConfig(update) {
    const normalized = config.normalizeUpdate(update, this._config);
    config.assertSupported(normalized);
    this._engine.updateConfig(normalized);
    this._config = normalized;
  }

  /**
   * Decide a suspended connection. Returns true when a pending connection with that id was
   * found, false for an unknown, expired or already-resolved id.
   * @param {string} id
   * @param {object|null} decision
   * @returns {boolean}
   */
  resolveConnection(id, decision) {
    // An id never throws: an unknown, expired or resolved one is false whatever the decision.
    // For a pending one a malformed decision throws, and the connection stays pending.
    if (typeof id !== 'string' || this._state !== 'running' || !this._engine.pending(id)) return false;
    const normalized = decision === null ? null : config.normalizeDecision(decision, 'decision');
    return this._engine.resolve(id, normalized, this._config);
  }

  /**
   * Sources refused by protection right now, from the engine's per-IP state: rate-limited (a
   * bucket is empty), concurrency-limited (at maxConcurrentPerIp), penalty-boxed, each at most
   * 10,000 entries and deduplicated across listeners (an IPv6 source aggregated by ipv6Prefix
   * appears as its prefix, '2001:db8::/64'), and the configured blocklists.
   * @returns {{ rateLimited: string[], concurrencyLimited: string[], penaltyBoxed: string[],
   *   cidrBlocklist: string[] }}
   */
  blockedIps() {
    return this._engine.blockedIps();
  }

  async [Symbol.asyncDispose]() {
    await this.stop();
  }

  // A listener's returned promise that rejects (an async listener) is reported like a throw;
  // an async 'error' listener's own rejection is printed (re-emitting it would loop).
  [EventEmitter.captureRejectionSymbol](err, type) {
    if (type === 'error') this._print(err);
    else this._report(err);
  }

  _onEngineEvent(type, payload) {
    try {
      switch (type) {
        case 'ready':
          this._ready++;
          if (this._ready >= this._workers && this._onReady) {
            const r = this._onReady;
            this._onReady = null;
            r();
          }
          break;
        case 'workerExit':
          this._exited++;
          this._maybeStopped();
          break;
        case 'warning':
          this._warn(payload.errno || 'ERR_LEGATO_WARNING', payload.message);
          break;
        case 'error':
          this._error(payload.errno || 'ERR_LEGATO_ENGINE', payload.message);
          break;
        case 'suspended': {
          const l = this._config.listeners[payload.listener];
          this._emitSafe('suspended', {
            id: payload.id,
            sni: payload.sni,
            peerIp: payload.peerIp,
            peerPort: payload.peerPort,
            listener: { host: l.host, port: this._ports ? this._ports[payload.listener] : l.port },
            alpn: payload.alpn === '' ? [] : payload.alpn.split('\n'),
            ja3: payload.ja3,
            ja4: payload.ja4,
          });
          break;
        }
        case 'blocked': {
          const l = this._config.listeners[payload.listener];
          this._emitSafe('blocked', {
            ip: payload.ip,
            reason: payload.reason,
            listener: { host: l.host, port: this._ports ? this._ports[payload.listener] : l.port },
            ja3: payload.ja3,
            ja4: payload.ja4,
            count: payload.count,
          });
          break;
        }
        case 'access': {
          const l = this._config.listeners[payload.listener];
          const orNull = (v) => (v === '' ? null : v);
          this._emitSafe('access', {
            time: new Date(payload.endMs).toISOString(),
            listener: { host: l.host, port: this._ports ? this._ports[payload.listener] : l.port, kind: l.kind },
            peerIp: payload.peerIp,
            peerPort: payload.peerPort,
            sni: orNull(payload.sni),
            route: payload.route < 0 ? null : payload.routeSni,
            upstream: orNull(payload.upstream),
            decision: payload.decision,
            status: payload.status === 0 ? null : payload.status,
            tlsVersion: orNull(payload.tlsVersion),
            tlsCipher: orNull(payload.tlsCipher),
            ja4: orNull(payload.ja4),
            bytesFromClient: payload.bytesFromClient,
            bytesToClient: payload.bytesToClient,
            durationMs: payload.durationMs,
            closeReason: payload.closeReason,
          });
          break;
        }
        case 'tunnel': {
          const l = this._config.listeners[payload.listener];
          this._emitSafe('tunnel', {
            listener: { host: l.host, port: this._ports ? this._ports[payload.listener] : l.port },
            target: payload.target,
            port: payload.port,
            status: payload.status,
            bytesFromClient: payload.bytesFromClient,
            bytesToClient: payload.bytesToClient,
            durationMs: payload.durationMs,
            reason: payload.reason,
          });
          break;
        }
        default:
          break;
      }
    } catch (err) {
      this._report(err);
    }
  }

  /**
   * What each worker still holds (engine figures, readable while a worker is stuck).
   * @returns {Array<{ worker: number, phase: string, connections: number, states: Record<string, number>, lookups: number, readBuffers: number, spareBufferBytes: number, pendingSuspended: number }>}
   */
  _stopReport() {
    try {
      return JSON.parse(this._engine.stopReport());
    } catch (_) {
      return [];
    }
  }

  /**
   * A stop that is still running STOP_SLOW_MS after its grace period explains itself: a
   * 'warning' (code LEGATO_STOP_SLOW, `workers` = the stop report) naming what each worker still
   * holds; with LEGATO_DEBUG=stop the report also goes to stderr when the stop begins and then.
   */
  _watchStop(graceMs) {
    const debug = /(^|,)\s*(stop|all)\s*(,|$)/.test(process.env.LEGATO_DEBUG || '');
    if (debug) process.stderr.write(`legato: stop({ graceMs: ${graceMs} }) began: ${describeStopReport(this._stopReport())}\n`);
    const after = Math.min(Math.floor(graceMs), 0x7fffffff - STOP_SLOW_MS) + STOP_SLOW_MS;
    const t0 = Date.now();
    this._stopTimer = setTimeout(() => {
      this._stopTimer = null;
      if (this._state !== 'stopping') return;
      const workers = this._stopReport();
      const text = `stop({ graceMs: ${graceMs} }) has not finished after ${Date.now() - t0} ms: ${describeStopReport(workers)}`;
      if (debug) process.stderr.write(`legato: ${text}\n`);
      const w = new Error(text);
      w.name = 'LegatoWarning';
      w.code = 'LEGATO_STOP_SLOW';
      w.workers = workers;
      this._emitSafe('warning', w);
    }, after);
    if (this._stopTimer.unref) this._stopTimer.unref();
  }

  _maybeStopped() {
    if (this._state !== 'stopping' || this._exited < this._workers || !this._onStopped) return;
    if (this._stopTimer) { clearTimeout(this._stopTimer); this._stopTimer = null; }
    const done = this._onStopped;
    this._onStopped = null;
    // Join outside the threadsafe-function callback that delivered the last exit event.
    setImmediate(() => {
      this._engine.join();
      this._state = 'stopped';
      this._emitSafe('close');
      done();
    });
  }

  _warn(code, message) {
    const w = new Error(message);
    w.name = 'LegatoWarning';
    w.code = code;
    process.nextTick(() => this._emitSafe('warning', w));
  }

  _error(code, message) {
    const err = new Error(message);
    err.code = code;
    this._report(err);
  }

  // Emit an event; an exception thrown by a listener is re-emitted as 'error' and never
  // reaches the engine.
  _emitSafe(name, ...args) {
    try {
      this.emit(name, ...args);
    } catch (err) {
      if (name === 'error') this._print(err);
      else this._report(err);
    }
  }

  // Deliver an error to 'error' listeners, or print it once per message if there are none
  // (an EventEmitter 'error' with no listener would throw and end the process).
  _report(err) {
    if (this.listenerCount('error') > 0) {
      try {
        this.emit('error', err);
      } catch (inner) {
        this._print(inner);
      }
    } else {
      this._print(err);
    }
  }

  _print(err) {
    const key = `${err && err.code}:${err && err.message}`;
    if (this._printed.has(key)) return;
    // Bounded: a message may carry what a client chose (an SNI), so distinct ones are unbounded.
    if (this._printed.size >= PRINTED_MAX) this._printed.clear();
    this._printed.add(key);
    process.stderr.write(`legato: ${err && err.stack ? err.stack : String(err)}\n`);
  }
}

module.exports = { Proxy };
