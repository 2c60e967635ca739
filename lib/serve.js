'use strict';

/**
 * lib/serve.js — `legato serve <config>`: a Proxy from a config file, as a server.
 *
 *   legato serve <config> [--check] [--quiet] [--status-file <path>] [--log-file <path>]
 *                         [--log-format text|json] [--log-level error|warn|info|debug]
 *
 * The file is read by lib/configfile.js (JSONC or YAML, certificate files, serve keys `admin`
 * and `statusFile`). `--check` reads and validates everything — certificates and keys are
 * parsed and matched by building the Proxy, which is not started — and exits 0 (valid) or 2
 * (invalid, with the reason), like `nginx -t`.
 *
 * Reload, on SIGHUP and when the config file or a certificate file changes (fs.watch on their
 * directories, debounced RELOAD_DEBOUNCE_MS, acted on only when a watched file's bytes changed):
 *  1. the whole config is read and validated again (a new Proxy is built and thrown away);
 *     any error is logged as one line and the running config stays;
 *  2. routes and protection are swapped with proxy.updateConfig(): atomic, no connection is
 *     dropped, connections already open keep the config they started with;
 *  3. `admin` and `statusFile` move if they changed;
 *  4. what updateConfig cannot change — listeners (their addresses, limits, defaultCert, mtls,
 *     protection overrides), workerThreads, readBufferSize, scheduler — is applied by a hand-over
 *     (issue 15 item 4): a new engine with the whole new config starts with
 *     `start({ takeOver: old })`, accepting on the very same sockets for every address both
 *     configs have, then the old engine stops accepting and its open connections get
 *     STOP_GRACE_MS to finish. No connection is refused in between; an address only the old
 *     config had closes with it, one only the new config has is bound anew. A listener given as
 *     port 0 keeps the port it was given at start (same index, same host). If the new engine
 *     cannot start (a new address is taken, say), the reload fails and the old one keeps
 *     running. Counters start again from zero in the new engine (a counter reset to Prometheus).
 * Reloads never run concurrently: they are queued.
 */

const fs = require('fs');
const path = require('path');
const util = require('util');
const { loadServeConfig, validate, fingerprint, ConfigFileError } = require('./configfile');
const { Service, Log, attachLog, EXIT, STOP_GRACE_MS, announce } = require('./service');

/** Milliseconds of quiet after a file event before the files are compared and reloaded. */
const RELOAD_DEBOUNCE_MS = 200;

/** Top-level options that a running engine cannot change. */
const FIXED_KEYS = ['listeners', 'workerThreads', 'workerPriority', 'readBufferSize', 'scheduler', 'resolveIntervalMs', 'tcpKeepalive', 'halfCloseTimeoutMs', 'protection.maxTrackedIps'];

/**
 * Run `legato serve`.
 *
 * @param {object} o
 * @param {string} o.file The config file.
 * @param {boolean} [o.check] Validate only.
 * @param {boolean} [o.quiet] No access line per connection.
 * @param {{ format?: string, level?: string }} [o.log] `--log-format`, `--log-level` (validated).
 * @param {string | null} [o.statusFile] `--status-file` (wins over the file's `statusFile`).
 * @param {string | null} [o.logFile] `--log-file`.
 * @param {NodeJS.WritableStream} o.stderr
 * @param {{ signals?: NodeJS.EventEmitter, exit?: (code: number) => void }} [o.io]
 * @returns {Promise<number>} The exit code.
 */
async function serve(o) {
  const { Proxy } = require('./index');
  // The file's `log` block, with the flags winning over it.
  const flags = o.log || {};
  const logOptions = (l) => ({
    format: flags.format || l.log.format || 'text',
    level: flags.level || l.log.level || 'info',
    quiet: !!o.quiet || l.log.access === false,
  });
  const early = (line) => o.stderr.write(`legato: ${line}\n`);

  let loaded;
  let proxy;
  try {
    loaded = loadServeConfig(o.file);
    proxy = validate(loaded, Proxy);
  } catch (err) {
    if (!(err instanceof ConfigFileError)) throw err;
    early(err.message);
    return EXIT.USAGE;
  }
  if (o.check) {
    await proxy.stop();
    const p = loaded.proxyConfig;
    const n = (a) => (Array.isArray(a) ? a.length : 0);
    early(`${loaded.file}: configuration ok (${n(p.listeners)} listener${n(p.listeners) === 1 ? '' : 's'}, ${n(p.routes)} route${n(p.routes) === 1 ? '' : 's'}, ${loaded.files.length - 1} certificate file${loaded.files.length === 2 ? '' : 's'})`);
    return EXIT.OK;
  }

  let log;
  try {
    log = new Log(o.stderr, o.logFile || null, logOptions(loaded));
  } catch (err) {
    early(`cannot open the log file ${o.logFile}: ${err.message}`);
    await proxy.stop();
    return EXIT.FAILURE;
  }
  const statusFile = o.statusFile ? path.resolve(o.statusFile) : loaded.statusFile;
  let running = loaded; // the config the proxy runs
  let startedFixed = fixedPart(loaded.proxyConfig); // the fixed part the running engine started with
  const draining = new Set(); // engines handed over from, finishing their connections

  const service = new Service({
    proxy,
    command: 'serve',
    log,
    admin: loaded.admin,
    statusFile,
    configPath: loaded.file,
    io: o.io,
    announce: (p) => announce(p, 'serve', (line) => service.say(line)),
    onReload: (sig) => queueReload(sig),
    onRunning: () => syncWatchers(),
  });
  const say = (line) => service.say(line);
  let logging = attachLog(proxy, log, logOptions(loaded));

  /* -------------------------------------------------------------------------------------- *
   * Reload.
   * -------------------------------------------------------------------------------------- */
  let queue = Promise.resolve();
  let watched = loaded.files.slice();
  let seenFingerprint = loaded.fingerprint;

  function queueReload(trigger) {
    queue = queue.then(() => reloadOnce(trigger)).catch((err) => say(`reload (${trigger}) failed, still running the previous config: ${err && err.message ? err.message : err}`));
    return queue;
  }

  async function reloadOnce(trigger) {
    if (service.state !== 'running') return;
    const before = fingerprint(watched);
    let next;
    let candidate;
    let nextFixed;
    let restart;
    const failed = (message, files) => {
      service.recordReload(false);
      rewatch(files, before);
      say(`reload (${trigger}) failed, still running the previous config: ${message}`);
    };
    try {
      next = loadServeConfig(running.file);
      nextFixed = fixedPart(next.proxyConfig); // as written (port 0 stays 0)
      restart = fixedChanges(startedFixed, nextFixed);
      if (restart.length) keepPorts(next.proxyConfig, startedFixed, proxy);
      candidate = validate(next, Proxy);
    } catch (err) {
      if (!(err instanceof ConfigFileError)) {
        failed(`${running.file}: ${err && err.message}`, running.files);
        return;
      }
      failed(err.message, [...new Set([...running.files, ...err.files])]);
      return;
    }

    const c = next.proxyConfig;
    if (restart.length) {
      // Hand-over: the candidate (the whole new config) takes the sockets over, then the old
      // engine drains.
      const nextLogging = attachLog(candidate, log, logOptions(next));
      try {
        await candidate.start({ takeOver: proxy });
      } catch (err) {
        await candidate.stop().catch(() => {});
        const l = err.listenerIndex >= 0 ? candidate.addresses()[err.listenerIndex] : null;
        failed(`cannot start the new listeners${l ? ` (listeners[${err.listenerIndex}] ${l.host}:${l.port})` : ''}: ${err.message}`, [...new Set([...running.files, ...next.files])]);
        return;
      }
      if (service.state !== 'running') { // stopped meanwhile
        await candidate.stop();
        return;
      }
      const old = proxy;
      proxy = candidate;
      service.proxy = candidate;
      logging = nextLogging;
      startedFixed = nextFixed;
      draining.add(old);
      old.stop({ graceMs: STOP_GRACE_MS }).catch((err) => say(`error while stopping the previous engine: ${err.message}`)).then(() => draining.delete(old));
    } else {
      await candidate.stop(); // built to validate certificates and keys; never started
      try {
        proxy.updateConfig({
          routes: c.routes === undefined ? [] : c.routes,
          protection: c.protection === undefined ? null : c.protection,
        });
      } catch (err) {
        if (!err || err.code !== 'ERR_LEGATO_CONFIG') throw err;
        failed(next.describe(err.message), [...new Set([...running.files, ...next.files])]);
        return;
      }
    }
    running = next;
    rewatch(next.files, before);
    logging.update(logOptions(next));

    const nextStatus = o.statusFile ? path.resolve(o.statusFile) : next.statusFile;
    if (!util.isDeepStrictEqual(next.admin, service.adminSpec)) {
      try {
        await service.moveAdmin(next.admin);
      } catch (err) {
        say(`admin endpoint not moved (still on the old address): ${err.message}`);
      }
    }
    service.recordReload(true, []);
    try {
      service.moveStatusFile(nextStatus);
      service.writeStatus();
    } catch (err) {
      say(`cannot write the status file ${nextStatus}: ${err.message}`);
    }
    const routes = Array.isArray(c.routes) ? c.routes.length : 0;
    say(`reloaded ${next.file} (${trigger}): ${routes} route${routes === 1 ? '' : 's'}, ${next.files.length - 1} certificate file${next.files.length === 2 ? '' : 's'}`);
    if (restart.length) say(`listeners handed over to a new engine (${restart.join(', ')}); the previous one finishes its connections within ${STOP_GRACE_MS / 1000} s`);
  }

  /* -------------------------------------------------------------------------------------- *
   * Watching the config file and the certificate files.
   * -------------------------------------------------------------------------------------- */
  const watchers = new Map(); // directory → fs.FSWatcher
  let timer = null;

  /** Watch `files` from now on; `before` is their fingerprint as the reload read them. */
  function rewatch(files, before) {
    const same = files.length === watched.length && files.every((f, i) => f === watched[i]);
    watched = files.slice();
    seenFingerprint = same ? before : fingerprint(watched);
    syncWatchers();
  }

  function syncWatchers() {
    if (service.state === 'stopped') return;
    const dirs = new Set(watched.map((f) => path.dirname(f)));
    for (const [dir, w] of watchers) {
      if (!dirs.has(dir)) { w.close(); watchers.delete(dir); }
    }
    for (const dir of dirs) {
      if (watchers.has(dir)) continue;
      try {
        const w = fs.watch(dir, { persistent: false }, onFileEvent);
        w.on('error', () => { w.close(); watchers.delete(dir); });
        watchers.set(dir, w);
      } catch (_) {
        // A directory that does not exist (a certificate not there yet): nothing to watch; the
        // next reload (SIGHUP, or a change elsewhere) looks again.
      }
    }
  }

  function onFileEvent() {
    // Armed by the first event and not pushed back by later ones: a file in a watched
    // directory written more often than the debounce (a log) must not postpone a reload.
    if (timer) return;
    timer = setTimeout(() => {
      timer = null;
      if (service.state !== 'running') return;
      if (fingerprint(watched) === seenFingerprint) return; // an unrelated file, or no change
      queueReload('file changed');
    }, RELOAD_DEBOUNCE_MS);
  }

  service.onStop(() => {
    if (timer) clearTimeout(timer);
    for (const w of watchers.values()) w.close();
    watchers.clear();
  });
  // Engines still draining after a hand-over stop with the service (their grace cut short).
  service.onStop(() => Promise.all([...draining].map((p) => p.stop({ graceMs: 0 }).catch(() => {}))));
  service.onStop(() => log.close());

  // Files are watched from the moment the listeners accept (onRunning); a change made while
  // they were binding is still seen, as the fingerprint was taken when the file was read.
  return service.run();
}

/**
 * A listener given as port 0 keeps the port it was given at start across reloads: where the
 * new config has port 0 at an index where the running one had port 0 on the same host, the
 * running engine's bound port is written into the new config (so the hand-over takes that
 * socket over instead of binding another port).
 */
function keepPorts(nextConfig, startedFixedPart, proxy) {
  const a = Array.isArray(startedFixedPart.listeners) ? startedFixedPart.listeners : [];
  const b = Array.isArray(nextConfig.listeners) ? nextConfig.listeners : [];
  const bound = proxy.addresses();
  // A new array of new objects: the config as written (fixedPart) is kept as it was.
  nextConfig.listeners = b.map((l, i) => {
    const was = a[i];
    if (!isObj(l) || !isObj(was) || l.port !== 0 || was.port !== 0 || l.host !== was.host || !bound[i]) return l;
    return { ...l, port: bound[i].port };
  });
}

/** The top-level options a running engine cannot change, as given. */
function fixedPart(config) {
  const out = {};
  for (const k of FIXED_KEYS) if (Object.prototype.hasOwnProperty.call(config, k)) out[k] = config[k];
  const p = config.protection;
  if (isObj(p) && Object.prototype.hasOwnProperty.call(p, 'maxTrackedIps')) out['protection.maxTrackedIps'] = p.maxTrackedIps;
  return out;
}

/**
 * The paths at which two fixed parts differ: 'listeners[1].port', 'workerThreads', … A listener
 * added or removed is 'listeners'.
 * @returns {string[]}
 */
function fixedChanges(a, b) {
  const out = [];
  for (const k of FIXED_KEYS) {
    if (util.isDeepStrictEqual(a[k], b[k])) continue;
    if (k === 'listeners' && Array.isArray(a[k]) && Array.isArray(b[k]) && a[k].length === b[k].length) {
      a[k].forEach((la, i) => {
        const lb = b[k][i];
        if (!isObj(la) || !isObj(lb)) { out.push(`listeners[${i}]`); return; }
        const keys = [...new Set([...Object.keys(la), ...Object.keys(lb)])];
        for (const key of keys) if (!util.isDeepStrictEqual(la[key], lb[key])) out.push(`listeners[${i}].${key}`);
      });
    } else {
      out.push(k);
    }
  }
  return out;
}

function isObj(v) {
  return typeof v === 'object' && v !== null && !Array.isArray(v);
}

module.exports = { serve, fixedChanges, RELOAD_DEBOUNCE_MS };
