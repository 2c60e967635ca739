'use strict';

/**
 * lib/service.js — running one Proxy as a long-lived process: what the forward proxy (`legato`)
 * and `legato serve` share.
 *
 * Order at start: signal handlers (so a signal during start is not lost), the admin endpoint
 * (so /ready answers 503 while the listeners bind), proxy.start(), the status file, then the
 * startup lines. At a graceful stop: /ready turns 503, open connections get STOP_GRACE_MS, then
 * the status file is removed and the admin endpoint closed.
 *
 * Signals (installing a handler replaces Node's default for that signal):
 *   SIGINT, SIGTERM  stop gracefully; a second one exits at once (code 1)
 *   SIGHUP           serve: reload the config (onReload); forward proxy: log "nothing to reload"
 *                    (Node's default would end the process)
 *   SIGUSR1          log the metrics summary as one line and reopen the log file (Node's default
 *                    would start the inspector on port 9229)
 */

const dns = require('dns');
const fs = require('fs');
const net = require('net');
const { AdminServer, adminUrl } = require('./admin');
const { writeStatusFile, removeStatusFile } = require('./statusfile');

/** Exit codes (shared with lib/cli.js). */
const EXIT = Object.freeze({
  OK: 0, // --help, --version, graceful stop after a signal, valid --check
  FAILURE: 1, // the proxy (or its admin endpoint, or its status file) could not start
  USAGE: 2, // bad flag, value or config file
});

/** Milliseconds that a signal gives open connections to finish (stop({ graceMs })). */
const STOP_GRACE_MS = 5000;

/** Metrics that the SIGUSR1 line always shows (other top-level numbers only when not 0). */
const SUMMARY_KEYS = ['activeConnections', 'totalConnections', 'closedConnections', 'bytesFromClients', 'bytesToClients'];

/** Log levels, most severe first (`--log-level`): a line is written when its level is at or above the one chosen. */
const LOG_LEVELS = Object.freeze(['error', 'warn', 'info', 'debug']);
/** Log formats (`--log-format`). */
const LOG_FORMATS = Object.freeze(['text', 'json']);

/**
 * The level of a line that does not name one: "error: …" and failures to start or reload are
 * errors, "warning: …" warnings, the rest (startup, signals, access lines) info.
 */
function levelOf(text) {
  if (/^(error|cannot |error while|reload .*failed)/.test(text)) return 'error';
  if (/^warning:|^admin endpoint not moved/.test(text)) return 'warn';
  return 'info';
}

/**
 * A value of a text access line: '-' when absent; as is when made of safe characters only;
 * otherwise a JSON string literal with every byte outside printable ASCII escaped, so a
 * client-controlled value (SNI, CONNECT target) can neither break the line nor forge a field.
 */
function fieldValue(v) {
  if (v === null || v === undefined || v === '') return '-';
  const s = String(v);
  if (/^[A-Za-z0-9._:\-[\]/*@+]+$/.test(s)) return s;
  // eslint-disable-next-line no-control-regex
  return JSON.stringify(s).replace(/[\u007f-\uffff]/g, (ch) => `\\u${ch.charCodeAt(0).toString(16).padStart(4, '0')}`);
}

/**
 * The text of an 'access' event (without the time and "legato: "), fields in a fixed order:
 * access client= listener= sni= route= upstream= decision= status= tls= cipher= ja4= from_client=
 * to_client= duration_ms= close=
 */
function accessLine(a) {
  const fields = [
    ['client', hostPort(a.peerIp, a.peerPort)],
    ['listener', hostPort(a.listener.host, a.listener.port)],
    ['sni', a.sni],
    ['route', a.route],
    ['upstream', a.upstream],
    ['decision', a.decision],
    ['status', a.status],
    ['tls', a.tlsVersion],
    ['cipher', a.tlsCipher],
    ['ja4', a.ja4],
    ['from_client', a.bytesFromClient],
    ['to_client', a.bytesToClient],
    ['duration_ms', a.durationMs],
    ['close', a.closeReason],
  ];
  // The default route's pattern is '' (shown as ""); no route at all is '-'.
  return `access ${fields.map(([k, v]) => `${k}=${k === 'route' && v === '' ? '""' : fieldValue(v)}`).join(' ')}`;
}

/**
 * The log: one line per call, to stderr or, with a log file, to that file (opened for
 * appending; reopen() starts writing to whatever file has the name now, for logrotate's
 * `postrotate kill -USR1`). Every line carries its time (ISO 8601, UTC):
 *   text  `2026-12-03T07:40:00.123Z legato: <message>`
 *   json  `{"time":"…","level":"info","msg":"<message>"}`; access lines: `"msg":"access"` and
 *         the event's fields (lib/proxy.js 'access').
 * Lines below the level are not written. Writes are synchronous on the JS thread; the engine's
 * workers never wait for them (a slow log fills the event queue, whose overflow the engine
 * drops and counts: eventsDropped, accessEventsDropped).
 */
class Log {
  /**
   * @param {NodeJS.WritableStream} stderr
   * @param {string | null} file
   * @param {{ format?: 'text' | 'json', level?: 'error' | 'warn' | 'info' | 'debug' }} [o]
   */
  constructor(stderr, file, o = {}) {
    this.stderr = stderr;
    this.file = file;
    this.fd = null;
    this.format = o.format || 'text';
    this.level = o.level || 'info';
    // A log reader that went away (a closed pipe: EPIPE) must not end the proxy.
    if (typeof stderr.on === 'function' && stderr.listenerCount('error') === 0) stderr.on('error', () => {});
    if (file) this.fd = fs.openSync(file, 'a', 0o640);
  }

  /** @returns {boolean} Whether lines of `level` are written. */
  enabled(level) {
    return LOG_LEVELS.indexOf(level) <= LOG_LEVELS.indexOf(this.level);
  }

  /**
   * @param {string} text A line without "legato: " and without the line feed.
   * @param {string} [level] Default: levelOf(text).
   */
  line(text, level = levelOf(text)) {
    if (!this.enabled(level)) return;
    const time = new Date().toISOString();
    this._write(this.format === 'json' ? `${JSON.stringify({ time, level, msg: text })}\n` : `${time} legato: ${text}\n`);
  }

  /** @param {object} a An 'access' event (level info). */
  access(a) {
    if (!this.enabled('info')) return;
    if (this.format === 'json') {
      this._write(`${JSON.stringify({ time: a.time, level: 'info', msg: 'access', ...a })}\n`);
    } else {
      this._write(`${a.time} legato: ${accessLine(a)}\n`);
    }
  }

  _write(s) {
    if (this.fd === null) {
      this.stderr.write(s);
      return;
    }
    try {
      fs.writeSync(this.fd, s);
    } catch (err) {
      this.stderr.write(`legato: cannot write the log file ${this.file}: ${err.message}\n${s}`);
    }
  }

  /** Reopen the log file (no-op without one). @returns {boolean} Whether a file was reopened. */
  reopen() {
    if (!this.file) return false;
    const fd = fs.openSync(this.file, 'a', 0o640);
    const old = this.fd;
    this.fd = fd;
    if (old !== null) fs.closeSync(old);
    return true;
  }

  close() {
    if (this.fd !== null) {
      fs.closeSync(this.fd);
      this.fd = null;
    }
  }
}

/**
 * Attach the log to a proxy: engine warnings and errors; one access line per connection at
 * close unless `quiet` or the level is below info (then no 'access' listener is attached, so the
 * engine builds no records); at debug, the coalesced 'blocked' events too. The returned
 * update() changes quiet, format and level on a running proxy (serve's reload), attaching and
 * detaching the listeners to match.
 * @param {import('./proxy').Proxy} proxy
 * @param {Log} log
 * @param {{ quiet?: boolean }} [o]
 * @returns {{ update(o: { quiet?: boolean, format?: string, level?: string }): void }}
 */
function attachLog(proxy, log, o = {}) {
  proxy.on('warning', (w) => log.line(`warning: ${w.message}${w.code ? ` (${w.code})` : ''}`, 'warn'));
  proxy.on('error', (e) => log.line(`error: ${e.message}${e.code ? ` (${e.code})` : ''}`, 'error'));
  const onAccess = (a) => log.access(a);
  const onBlocked = (b) => log.line(`blocked ip=${fieldValue(b.ip)} reason=${b.reason} listener=${hostPort(b.listener.host, b.listener.port)} count=${b.count}`, 'debug');
  let quiet = !!o.quiet;
  const toggle = (name, fn, want) => {
    const has = proxy.listeners(name).includes(fn);
    if (want && !has) proxy.on(name, fn);
    if (!want && has) proxy.off(name, fn);
  };
  const sync = () => {
    toggle('access', onAccess, !quiet && log.enabled('info'));
    toggle('blocked', onBlocked, log.enabled('debug'));
  };
  sync();
  return {
    update(u) {
      if (u.quiet !== undefined) quiet = !!u.quiet;
      if (u.format) log.format = u.format;
      if (u.level) log.level = u.level;
      sync();
    },
  };
}

/**
 * @param {object} metrics proxy.metrics()
 * @returns {string} One line: the SUMMARY_KEYS, then every other top-level number that is not 0.
 */
function metricsSummary(metrics) {
  const parts = [];
  for (const k of SUMMARY_KEYS) if (typeof metrics[k] === 'number') parts.push(`${k}=${metrics[k]}`);
  for (const [k, v] of Object.entries(metrics)) {
    if (!SUMMARY_KEYS.includes(k) && typeof v === 'number' && v !== 0) parts.push(`${k}=${v}`);
  }
  if (Array.isArray(metrics.listeners)) {
    parts.push(`listeners=${metrics.listeners.map((l) => `${hostPort(l.host, l.port)}/${l.kind}:${l.activeConnections}`).join(',')}`);
  }
  return `metrics ${parts.join(' ')}`;
}

/** 'host:port' with IPv6 hosts in brackets. */
function hostPort(host, port) {
  return `${String(host).includes(':') ? `[${host}]` : host}:${port}`;
}

/** Is this IP literal a loopback address (127/8, ::1, IPv4-mapped 127/8)? */
function isLoopbackIp(ip) {
  if (net.isIPv4(ip)) return ip.startsWith('127.');
  const s = ip.toLowerCase();
  if (s === '::1' || s === '0:0:0:0:0:0:0:1') return true;
  const mapped = /^(?:0{0,4}:){0,5}:?ffff:(\d+\.\d+\.\d+\.\d+)$/.exec(s);
  return mapped !== null && mapped[1].startsWith('127.');
}

/**
 * Resolves true when every address `host` stands for is a loopback address (a hostname is
 * looked up; one that does not resolve counts as not loopback).
 */
async function bindsLoopbackOnly(host) {
  if (net.isIP(host)) return isLoopbackIp(host);
  if (host === 'localhost' || host.endsWith('.localhost')) return true;
  try {
    const addrs = await dns.promises.lookup(host, { all: true });
    return addrs.length > 0 && addrs.every((a) => isLoopbackIp(a.address));
  } catch (_) {
    return false;
  }
}

/**
 * Log the startup line of each listener, and the warning for a forward proxy reachable from
 * other machines (anyone may use it without connect.auth, or any client in the ranges of the
 * CLI's --allow-client; with auth, Basic credentials cross the network in clear text).
 * @param {import('./proxy').Proxy} proxy Started.
 * @param {'proxy' | 'serve'} command
 * @param {(line: string) => void} say
 * @param {{ allowClients?: string[] }} [o] The CLI's --allow-client ranges, if given.
 */
async function announce(proxy, command, say, o = {}) {
  const metrics = proxy.metrics();
  const workers = Array.isArray(metrics.workers) ? metrics.workers.length : 0;
  const workerText = workers ? `, ${workers} worker${workers === 1 ? '' : 's'}` : '';
  const listeners = proxy._config ? proxy._config.listeners : [];
  for (const [i, a] of proxy.addresses().entries()) {
    const where = hostPort(a.host, a.port);
    const auth = listeners[i] && listeners[i].connect ? listeners[i].connect.auth : null;
    if (command === 'proxy') {
      const hintHost = a.host === '0.0.0.0' ? '127.0.0.1' : a.host === '::' ? '::1' : a.host;
      say(`listening on ${where} (forward proxy${workerText}): HTTPS_PROXY=http://${hostPort(hintHost, a.port)}`);
    } else {
      say(`listening on ${where} (${a.kind}${workerText})`);
    }
    if (a.kind === 'connect' && !(await bindsLoopbackOnly(a.host))) {
      if (auth) {
        say(`warning: the forward proxy on ${where} is reachable beyond this machine; it requires Basic authentication, whose credentials cross the network in clear text (use it on a trusted network or inside a tunnel)`);
      } else {
        const who = o.allowClients && o.allowClients.length
          ? `any client in ${o.allowClients.join(', ')} (--allow-client) can use it`
          : 'anyone who can connect can use it';
        say(`warning: the forward proxy on ${where} is reachable beyond this machine and has no authentication: ${who}`);
      }
    }
  }
}

class Service {
  /**
   * @param {object} o
   * @param {import('./proxy').Proxy} o.proxy Created, not started.
   * @param {'proxy' | 'serve'} o.command For the status file and the messages.
   * @param {Log} o.log
   * @param {import('./admin').AdminSpec | null} [o.admin]
   * @param {string | null} [o.statusFile] Absolute path.
   * @param {string | null} [o.configPath] serve: the config file.
   * @param {(() => Promise<void>) | null} [o.onReload] SIGHUP in serve; null: "nothing to reload".
   * @param {(proxy: import('./proxy').Proxy) => Promise<void>} [o.announce] Startup lines.
   * @param {() => void} [o.onRunning] Called once the listeners accept (after the startup lines).
   * @param {{ signals?: NodeJS.EventEmitter, exit?: (code: number) => void }} [o.io] For tests.
   */
  constructor(o) {
    this.proxy = o.proxy;
    this.command = o.command;
    this.log = o.log;
    this.adminSpec = o.admin || null;
    this.statusFile = o.statusFile || null;
    this.configPath = o.configPath || null;
    this.onReload = o.onReload || null;
    this.announce = o.announce || (async () => {});
    this.onRunning = o.onRunning || (() => {});
    this.signals = (o.io && o.io.signals) || process;
    this.exit = (o.io && o.io.exit) || ((code) => process.exit(code));
    /** @type {import('./admin').ServiceState} */
    this.state = 'starting';
    this.startedAt = null;
    this.reloadedAt = null;
    this.restartNeeded = [];
    this.reloads = { success: 0, failure: 0 };
    this.lastReloadOk = true;
    this.lastReloadSuccessAt = null;
    this.admin = null;
    this._handlers = null;
    this._hupDuringStart = false;
    this._done = new Promise((resolve) => { this._resolveDone = resolve; });
    this._cleanups = [];
  }

  /** @param {string} text Log one line. */
  say(text) {
    this.log.line(text);
  }

  /** Run something when the service stops (after the proxy stopped, before the exit code). */
  onStop(fn) {
    this._cleanups.push(fn);
  }

  /**
   * Start everything and run until a signal stops the proxy.
   * @returns {Promise<number>} The exit code.
   */
  async run() {
    this._installSignals();
    if (this.adminSpec) {
      try {
        await this._startAdmin(this.adminSpec);
      } catch (err) {
        this.say(`cannot listen on admin ${adminUrl(this.adminSpec)}: ${err.message}`);
        return this._finish(EXIT.FAILURE, false);
      }
      // A signal while the endpoint bound: _finish has run (without this endpoint).
      if (this.state !== 'starting') { await this.admin.close(); return this._done; }
    }
    try {
      await this.proxy.start();
    } catch (err) {
      const l = err.listenerIndex >= 0 ? this.proxy.addresses()[err.listenerIndex] : null;
      this.say(l ? `cannot listen on ${hostPort(l.host, l.port)}: ${err.message}` : `cannot start: ${err.message}`);
      await this.proxy.stop().catch(() => {});
      return this._finish(EXIT.FAILURE, false);
    }
    if (this.state === 'starting') {
      this.state = 'running';
      this.startedAt = new Date();
      if (this.command === 'serve') this.lastReloadSuccessAt = this.startedAt; // the first load
      try {
        this.writeStatus();
      } catch (err) {
        this.say(`cannot write the status file ${this.statusFile}: ${err.message}`);
        this.state = 'stopping';
        await this.proxy.stop().catch(() => {});
        return this._finish(EXIT.FAILURE, false);
      }
      await this.announce(this.proxy);
      if (this.admin) this.say(`admin endpoint on ${adminUrl(this.admin.spec)} (/metrics, /metrics.json, /health, /ready)`);
      if (this.state === 'running') this.onRunning();
      if (this._hupDuringStart) this._onHup('SIGHUP');
    }
    return this._done;
  }

  /** Families for /metrics that proxy.metrics() does not hold. */
  extraMetrics() {
    const families = [
      { name: 'legato_build_info', type: 'gauge', help: 'legato version (always 1).', samples: [{ labels: { version: version() }, value: 1 }] },
    ];
    if (this.startedAt) {
      families.push({ name: 'legato_start_time_seconds', type: 'gauge', help: 'When the listeners started accepting, in seconds since the epoch.', samples: [{ value: this.startedAt.getTime() / 1000 }] });
    }
    if (this.command === 'serve') {
      families.push(
        { name: 'legato_config_reloads_total', type: 'counter', help: 'Config reloads, by result.', samples: [{ labels: { result: 'success' }, value: this.reloads.success }, { labels: { result: 'failure' }, value: this.reloads.failure }] },
        { name: 'legato_config_last_reload_successful', type: 'gauge', help: 'Whether the last reload succeeded (1) or kept the previous config (0).', samples: [{ value: this.lastReloadOk ? 1 : 0 }] },
        { name: 'legato_config_restart_needed', type: 'gauge', help: 'Whether the config file changed what only a restart applies (listeners, workers, buffers, scheduler).', samples: [{ value: this.restartNeeded.length ? 1 : 0 }] },
      );
      if (this.lastReloadSuccessAt) {
        families.push({ name: 'legato_config_last_reload_success_timestamp_seconds', type: 'gauge', help: 'When the config was last loaded (at start or by a reload), in seconds since the epoch.', samples: [{ value: this.lastReloadSuccessAt.getTime() / 1000 }] });
      }
    }
    return families;
  }

  /**
   * Record a reload's outcome (for the status file and /metrics).
   * @param {boolean} ok
   * @param {string[]} [restartNeeded] What changed that needs a restart.
   */
  recordReload(ok, restartNeeded) {
    if (ok) {
      this.reloads.success++;
      this.lastReloadOk = true;
      this.reloadedAt = new Date();
      this.lastReloadSuccessAt = this.reloadedAt;
      if (restartNeeded) this.restartNeeded = restartNeeded;
    } else {
      this.reloads.failure++;
      this.lastReloadOk = false;
    }
  }

  /** Write the status file (no-op without one). @throws {Error} The system error. */
  writeStatus() {
    if (!this.statusFile || this.state !== 'running') return;
    writeStatusFile(this.statusFile, {
      pid: process.pid,
      version: version(),
      command: this.command,
      configPath: this.configPath,
      startedAt: this.startedAt && this.startedAt.toISOString(),
      reloadedAt: this.reloadedAt && this.reloadedAt.toISOString(),
      listeners: this.proxy.addresses(),
      admin: this.admin ? this.admin.spec : null,
      restartNeeded: this.restartNeeded,
    });
  }

  /**
   * Point the status file elsewhere (a reload changed `statusFile`): the new one is written,
   * the old one removed.
   * @param {string | null} file
   */
  moveStatusFile(file) {
    if (file === this.statusFile) return;
    const old = this.statusFile;
    this.statusFile = file;
    this.writeStatus();
    if (old) removeStatusFile(old, process.pid);
  }

  /**
   * Move the admin endpoint (a reload changed `admin`): the new one is bound first; if that
   * fails the old one stays and the error is thrown.
   * @param {import('./admin').AdminSpec | null} spec
   */
  async moveAdmin(spec) {
    const old = this.admin;
    if (spec) {
      await this._startAdmin(spec);
      this.say(`admin endpoint on ${adminUrl(this.admin.spec)} (/metrics, /metrics.json, /health, /ready)`);
    } else {
      this.admin = null;
    }
    this.adminSpec = spec;
    if (old) await old.close();
  }

  async _startAdmin(spec) {
    const admin = new AdminServer({
      metrics: () => this.proxy.metrics(),
      state: () => this.state,
      extra: () => this.extraMetrics(),
    });
    await admin.listen(spec);
    this.admin = admin;
  }

  _installSignals() {
    const onStop = (sig) => this._onStop(sig);
    const onHup = (sig) => this._onHup(sig);
    const onUsr1 = (sig) => this._onUsr1(sig);
    this._handlers = [['SIGINT', onStop], ['SIGTERM', onStop], ['SIGHUP', onHup], ['SIGUSR1', onUsr1]];
    for (const [sig, fn] of this._handlers) this.signals.on(sig, fn);
  }

  _removeSignals() {
    if (!this._handlers) return;
    for (const [sig, fn] of this._handlers) this.signals.off(sig, fn);
    this._handlers = null;
  }

  _onStop(sig) {
    if (this.state === 'stopping' || this.state === 'stopped') {
      this.say(`${sig} again: exiting now`);
      this.exit(EXIT.FAILURE);
      return;
    }
    this.state = 'stopping';
    this.say(`${sig}: stopping; open connections have ${STOP_GRACE_MS / 1000} s to finish (send ${sig} again to exit now)`);
    this.proxy.stop({ graceMs: STOP_GRACE_MS }).then(() => {
      this.say('stopped');
      return this._finish(EXIT.OK, true);
    }, (err) => {
      this.say(`error while stopping: ${err.message}`);
      return this._finish(EXIT.FAILURE, true);
    });
  }

  _onHup(sig) {
    if (this.state === 'starting') { this._hupDuringStart = true; return; }
    if (this.state !== 'running') return;
    if (!this.onReload) {
      this.say(`${sig}: nothing to reload (the forward proxy reads its flags and environment at start only; restart it to change them)`);
      return;
    }
    this.onReload(sig).catch((err) => this.say(`reload failed: ${err.message}`));
  }

  _onUsr1() {
    try {
      this.say(metricsSummary(this.proxy.metrics()));
    } catch (err) {
      this.say(`metrics unavailable: ${err.message}`);
    }
    try {
      if (this.log.reopen()) this.say(`reopened the log file ${this.log.file}`);
    } catch (err) {
      this.say(`cannot reopen the log file ${this.log.file}: ${err.message} (still writing to the old one)`);
    }
  }

  /** Clean up and settle run()'s promise with `code`. */
  async _finish(code, viaSignal) {
    this.state = 'stopped';
    for (const fn of this._cleanups) {
      try { await fn(); } catch (_) { /* best effort */ }
    }
    if (this.statusFile) removeStatusFile(this.statusFile, process.pid);
    if (this.admin) await this.admin.close();
    this._removeSignals();
    if (!viaSignal) return code;
    this._resolveDone(code);
    return code;
  }
}

/** @returns {string} The package version. */
function version() {
  return require('../package.json').version;
}

module.exports = {
  Service, Log, LOG_LEVELS, LOG_FORMATS, attachLog, accessLine, fieldValue, EXIT, STOP_GRACE_MS, metricsSummary, hostPort, isLoopbackIp, announce, version,
};
