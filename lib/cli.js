'use strict';

/**
 * lib/cli.js — the `legato` command (bin/legato is a two-line wrapper around main()).
 *
 *   legato [options]               a forward proxy (one `kind: 'connect'` listener) on
 *                                  127.0.0.1:9999, for HTTPS_PROXY=http://127.0.0.1:9999
 *   legato serve <config.json>     a Proxy from a JSON config file (any listener kinds)
 *
 * Options and their environment twins are in OPTIONS below; usage() is generated from it. Every
 * value option has a twin named LEGATO_<OPTION> (`--max-connections` ↔ LEGATO_MAX_CONNECTIONS);
 * a flag given on the command line replaces its twin entirely (lists are not merged). An empty
 * variable counts as unset. Both `--flag value` and `--flag=value` work; list options take a
 * comma-separated list and may be repeated.
 *
 * Validation is lib/config.js's: the CLI turns strings into the config's types and lets
 * `new Proxy()` judge them, then rewrites the config path at the start of the error message into
 * the flag (or variable) and the value the user wrote — `listeners[0].port must be an integer
 * 0-65535` becomes `--port '70000' must be an integer 0-65535` — so the rules and their wording
 * live in one place. Only what has no config twin is checked here (seconds, booleans, usage).
 *
 * Exit codes (EXIT): 0 after --help, --version or a graceful stop (first SIGINT/SIGTERM); 1 when
 * the proxy cannot start (bind failure) or a second signal ends the process during the stop; 2 for
 * a bad flag, value or config file (one line on stderr; the usage follows for flags and values).
 *
 * Output: stdout carries only --help and --version. Everything else goes to stderr, one line per
 * event, each starting with "legato: ": the startup line (with the bound port, so `--port 0`
 * is usable), a warning when a forward proxy listens on a non-loopback address (it has no
 * authentication), one line per tunnel when it closes (unless --quiet), the engine's 'warning'
 * and 'error' events (never fatal), and the shutdown.
 */

const dns = require('dns');
const fs = require('fs');
const net = require('net');
const path = require('path');

/** Exit codes. */
const EXIT = Object.freeze({
  OK: 0, // --help, --version, graceful stop after a signal
  FAILURE: 1, // the proxy could not start (e.g. EADDRINUSE)
  USAGE: 2, // bad flag, value or config file
});

/** Milliseconds that a signal gives open connections to finish (stop({ graceMs })). */
const STOP_GRACE_MS = 5000;

/** Seconds that --idle-timeout may take: the engine's largest timer is 2^31 - 1 ms. */
const MAX_IDLE_TIMEOUT_S = 2147483;

const DEFAULT_BIND = '127.0.0.1';
const DEFAULT_PORT = 9999;
const DEFAULT_IDLE_TIMEOUT_S = 300;

/**
 * The options of the forward-proxy mode. `key` names the parsed value; `type` is 'string',
 * 'integer' (handed to config as a number), 'seconds', 'list' (comma lists, repeatable) or
 * 'boolean'; `path` is the config path whose errors are reported as this option.
 */
const OPTIONS = [
  { flag: '--bind', key: 'bind', type: 'string', arg: '<host>', path: 'listeners[0].host',
    help: `address to listen on: IPv4, IPv6 or a hostname (default ${DEFAULT_BIND})` },
  { flag: '--port', key: 'port', type: 'integer', arg: '<port>', path: 'listeners[0].port',
    help: `port to listen on, 0 = any free port (default ${DEFAULT_PORT})` },
  { flag: '--max-connections', key: 'maxConnections', type: 'integer', arg: '<n>', path: 'listeners[0].maxConnections',
    help: 'open connections at most, 0 = unlimited (default 1000)' },
  { flag: '--idle-timeout', key: 'idleTimeout', type: 'seconds', arg: '<seconds>', path: 'listeners[0].idleTimeoutMs',
    help: `close a tunnel after this long with no byte either way, 0 = never (default ${DEFAULT_IDLE_TIMEOUT_S})` },
  { flag: '--allow-port', key: 'allowPorts', type: 'list', arg: '<ports>', path: 'listeners[0].connect.allowPorts',
    help: 'destination ports that may be reached, besides 443' },
  { flag: '--no-default-allow-port', key: 'noDefaultAllowPort', type: 'boolean', path: 'listeners[0].connect.defaultAllowPort',
    help: 'do not allow port 443 implicitly (then --allow-port is required)' },
  { flag: '--deny-cidr', key: 'denyCidrs', type: 'list', arg: '<cidrs>', path: 'listeners[0].connect.denyCidrs',
    help: 'destinations to refuse, in addition to the built-in internal ranges' },
  { flag: '--allow-cidr', key: 'allowCidrs', type: 'list', arg: '<cidrs>', path: 'listeners[0].connect.allowCidrs',
    help: 'exceptions to the refused ranges (e.g. 127.0.0.1 to reach a local server)' },
  { flag: '--allow-domain', key: 'allowDomains', type: 'list', arg: '<domains>', path: 'listeners[0].connect.allowDomains',
    help: 'only these domains and their subdomains may be reached' },
  { flag: '--workers', key: 'workers', type: 'integer', arg: '<n>', path: 'workerThreads',
    help: 'worker threads (default: the number of CPUs)' },
  { flag: '--quiet', key: 'quiet', type: 'boolean',
    help: 'no log line per tunnel' },
];
for (const o of OPTIONS) o.env = `LEGATO_${o.flag.slice(2).toUpperCase().replace(/-/g, '_')}`;

/** Options that `legato serve` accepts besides the file (the rest are in the file). */
const SERVE_KEYS = ['quiet'];

const HELP_FLAGS = ['-h', '--help'];
const VERSION_FLAGS = ['-v', '--version'];

/** A bad command line: main() prints the message and the usage, and exits 2. */
class UsageError extends Error {
  constructor(message, { showUsage = true } = {}) {
    super(message);
    this.name = 'UsageError';
    this.showUsage = showUsage;
  }
}

/** @returns {string} The usage text (ends with a newline). */
function usage() {
  const lines = [];
  for (const o of OPTIONS) {
    lines.push(`  ${o.flag}${o.arg ? ` ${o.arg}` : ''}, ${o.env}${o.type === 'boolean' ? '=1' : ''}`);
    lines.push(`        ${o.help}`);
  }
  return [
    'Usage: legato [options]',
    '       legato serve <config.json> [--quiet]',
    '',
    'A forward proxy for HTTP CONNECT tunnels (HTTPS_PROXY=http://127.0.0.1:9999). It does not',
    'decrypt anything. `serve` starts the listeners of a JSON config file (kinds tls and connect).',
    '',
    'Options, with their environment variable (a flag replaces its variable):',
    ...lines,
    '  -h, --help',
    '        print this help and exit',
    '  -v, --version',
    '        print the version and exit',
    '',
    'Lists take comma-separated values, and their flag may be repeated. Internal destinations',
    '(loopback, private, link-local, CGNAT, multicast, NAT64/6to4 of those) are refused unless',
    '--allow-cidr excepts them. SIGINT or SIGTERM stops gracefully, giving open tunnels 5 s;',
    'a second signal exits at once.',
    '',
  ].join('\n');
}

/** @returns {string} The short usage shown after an error (ends with a newline). */
function shortUsage() {
  return [
    'Usage: legato [options]',
    '       legato serve <config.json> [--quiet]',
    "Run 'legato --help' for the options.",
    '',
  ].join('\n');
}

/** @returns {string} The package version. */
function version() {
  return require(path.join(__dirname, '..', 'package.json')).version;
}

/* ------------------------------------------------------------------------------------------ *
 * Parsing.
 * ------------------------------------------------------------------------------------------ */

/**
 * Parse a command line and the environment.
 *
 * @param {string[]} argv The arguments after the script (process.argv.slice(2)).
 * @param {Record<string, string | undefined>} env The environment (LEGATO_* twins).
 * @returns {{ command: 'help' | 'version' | 'proxy' | 'serve', file?: string,
 *   values: Record<string, { value: any, via: string, raw: string | string[] }> }}
 *   `values` holds the options given (by flag or variable) with where each came from; `via` is
 *   the flag or variable name used in messages.
 * @throws {UsageError} For an unknown flag, a missing or unexpected value, a bad boolean.
 */
function parseArgs(argv, env = {}) {
  if (argv.some((a) => HELP_FLAGS.includes(a))) return { command: 'help', values: {} };
  if (argv.some((a) => VERSION_FLAGS.includes(a))) return { command: 'version', values: {} };

  const fromFlags = {};
  const positional = [];
  let i = 0;
  for (; i < argv.length; i++) {
    const arg = argv[i];
    if (arg === '--') { i++; break; }
    if (!arg.startsWith('-') || arg === '-') { positional.push(arg); continue; }
    const eq = arg.indexOf('=');
    const name = eq < 0 ? arg : arg.slice(0, eq);
    const opt = OPTIONS.find((o) => o.flag === name);
    if (!opt) throw new UsageError(`unknown option '${clip(name)}'${suggest(name)}`);
    if (opt.type === 'boolean') {
      if (eq >= 0) throw new UsageError(`${opt.flag} does not take a value`);
      fromFlags[opt.key] = { value: true, via: opt.flag, raw: opt.flag };
      continue;
    }
    let raw;
    if (eq >= 0) {
      raw = arg.slice(eq + 1);
    } else {
      if (i + 1 >= argv.length) throw new UsageError(`${opt.flag} needs a value ${opt.arg}`);
      raw = argv[++i];
    }
    if (opt.type === 'list') {
      const prev = fromFlags[opt.key];
      const items = splitList(raw, opt.flag);
      fromFlags[opt.key] = { value: prev ? [...prev.value, ...items] : items, via: opt.flag, raw: prev ? [...prev.raw, ...items] : items };
    } else {
      if (raw === '') throw new UsageError(`${opt.flag} needs a value ${opt.arg}`);
      fromFlags[opt.key] = { value: raw, via: opt.flag, raw };
    }
  }
  positional.push(...argv.slice(i));

  const values = {};
  for (const opt of OPTIONS) {
    if (fromFlags[opt.key]) {
      values[opt.key] = fromFlags[opt.key];
      continue;
    }
    const raw = env[opt.env];
    if (raw === undefined || raw === '') continue;
    if (opt.type === 'boolean') {
      values[opt.key] = { value: envBoolean(raw, opt.env), via: opt.env, raw };
    } else if (opt.type === 'list') {
      const items = splitList(raw, opt.env);
      values[opt.key] = { value: items, via: opt.env, raw: items };
    } else {
      values[opt.key] = { value: raw, via: opt.env, raw };
    }
  }

  if (positional.length === 0) return { command: 'proxy', values };
  if (positional[0] !== 'serve') throw new UsageError(`unexpected argument '${clip(positional[0])}' (options start with --; the only command is 'serve')`);
  if (positional.length < 2) throw new UsageError('serve needs a config file: legato serve <config.json>');
  if (positional.length > 2) throw new UsageError(`serve takes one config file, got also '${clip(positional[2])}'`);
  for (const opt of OPTIONS) {
    const v = fromFlags[opt.key];
    if (v && !SERVE_KEYS.includes(opt.key)) throw new UsageError(`${opt.flag} cannot be used with serve (set it in the config file)`);
  }
  const serveValues = {};
  for (const key of SERVE_KEYS) if (values[key]) serveValues[key] = values[key];
  return { command: 'serve', file: positional[1], values: serveValues };
}

/** A comma list: items trimmed, empty items dropped; at least one item. */
function splitList(raw, via) {
  const items = raw.split(',').map((s) => s.trim()).filter((s) => s !== '');
  if (items.length === 0) throw new UsageError(`${via} needs a value`);
  return items;
}

/** 1/true/yes/on or 0/false/no/off (any case). */
function envBoolean(raw, via) {
  const s = raw.trim().toLowerCase();
  if (['1', 'true', 'yes', 'on'].includes(s)) return true;
  if (['0', 'false', 'no', 'off'].includes(s)) return false;
  throw new UsageError(`${via}='${clip(raw)}' must be 1 or 0 (or true/false, yes/no, on/off)`);
}

/** " (did you mean '--x'?)" for a near miss, else ''. */
function suggest(name) {
  const flags = [...OPTIONS.map((o) => o.flag), ...HELP_FLAGS, ...VERSION_FLAGS];
  let best = null;
  let bestD = 3;
  for (const f of flags) {
    const d = editDistance(name, f);
    if (d < bestD) { best = f; bestD = d; }
  }
  return best ? ` (did you mean '${best}'?)` : '';
}

function editDistance(a, b) {
  let prev = Array.from({ length: b.length + 1 }, (_, j) => j);
  for (let i = 1; i <= a.length; i++) {
    const cur = [i];
    for (let j = 1; j <= b.length; j++) cur[j] = Math.min(prev[j] + 1, cur[j - 1] + 1, prev[j - 1] + (a[i - 1] === b[j - 1] ? 0 : 1));
    prev = cur;
  }
  return prev[b.length];
}

function clip(s) {
  return s.length > 64 ? `${s.slice(0, 61)}...` : s;
}

/**
 * A decimal number as the user wrote it, or NaN (so that lib/config.js reports it): '0x10',
 * '', ' 1', '1e3' are NaN; '1.5' and '-1' are numbers (the config refuses them by range).
 */
function toNumber(raw) {
  return /^-?[0-9]+(\.[0-9]+)?$/.test(raw) ? Number(raw) : NaN;
}

/**
 * The Proxy config of the forward-proxy mode.
 *
 * @param {Record<string, { value: any, via: string, raw: any }>} values From parseArgs().
 * @returns {object} A config for `new Proxy()` (not yet validated by it).
 * @throws {UsageError} For what lib/config.js cannot judge: seconds, --no-default-allow-port
 *   without --allow-port.
 */
function buildConfig(values, defaultDenyCidrs) {
  const v = (key) => (values[key] ? values[key].value : undefined);
  const listener = {
    kind: 'connect',
    host: v('bind') !== undefined ? v('bind') : DEFAULT_BIND,
    port: v('port') !== undefined ? toNumber(v('port')) : DEFAULT_PORT,
    idleTimeoutMs: DEFAULT_IDLE_TIMEOUT_S * 1000,
    connect: {},
  };
  if (v('maxConnections') !== undefined) listener.maxConnections = toNumber(v('maxConnections'));
  if (v('idleTimeout') !== undefined) {
    const raw = v('idleTimeout');
    const s = /^[0-9]+(\.[0-9]+)?$/.test(raw) ? Number(raw) : NaN;
    if (!(s <= MAX_IDLE_TIMEOUT_S)) {
      throw new UsageError(`${values.idleTimeout.via}${values.idleTimeout.via.startsWith('--') ? ' ' : '='}'${clip(raw)}' must be a number of seconds 0-${MAX_IDLE_TIMEOUT_S} (0 = never)`);
    }
    listener.idleTimeoutMs = Math.round(s * 1000);
  }
  const c = listener.connect;
  if (v('noDefaultAllowPort')) {
    if (v('allowPorts') === undefined) {
      throw new UsageError(`${values.noDefaultAllowPort.via} needs --allow-port (otherwise no port could be reached)`);
    }
    c.defaultAllowPort = false;
  }
  if (v('allowPorts') !== undefined) c.allowPorts = v('allowPorts').map(toNumber);
  if (v('denyCidrs') !== undefined) c.denyCidrs = [...defaultDenyCidrs, ...v('denyCidrs')];
  if (v('allowCidrs') !== undefined) c.allowCidrs = v('allowCidrs');
  if (v('allowDomains') !== undefined) c.allowDomains = v('allowDomains');
  const config = { listeners: [listener] };
  if (v('workers') !== undefined) config.workerThreads = toNumber(v('workers'));
  return config;
}

/**
 * Rewrite a lib/config.js error about the forward-proxy config into the user's terms: the path
 * at the start of the message becomes the flag or variable and the value given.
 *
 * @param {Error} err A config error (code ERR_LEGATO_CONFIG).
 * @param {Record<string, { value: any, via: string, raw: any }>} values From parseArgs().
 * @param {number} denyOffset Entries of denyCidrs that are the built-in defaults.
 * @returns {string} The message.
 */
function describeConfigError(err, values, denyOffset) {
  const m = /^([A-Za-z[\]0-9.]+?)(?:\[(\d+)\])?((?:[: ]).*)$/s.exec(err.message);
  if (!m) return err.message;
  const opt = OPTIONS.find((o) => o.path === m[1]);
  if (!opt || !values[opt.key]) return err.message;
  const given = values[opt.key];
  const rest = m[3].replace(/\ballowCidrs\b/g, '--allow-cidr');
  const show = (value) => `${given.via}${given.via.startsWith('--') ? ' ' : '='}'${clip(String(value))}'`;
  if (m[2] !== undefined && Array.isArray(given.raw)) {
    let index = Number(m[2]);
    if (opt.key === 'denyCidrs') index -= denyOffset;
    const item = given.raw[index];
    if (item !== undefined) return `${show(item)}${rest}`;
  }
  if (opt.type === 'boolean' || Array.isArray(given.raw)) return `${given.via}${rest}`;
  return `${show(given.raw)}${rest}`;
}

/* ------------------------------------------------------------------------------------------ *
 * Running.
 * ------------------------------------------------------------------------------------------ */

/** 'host:port' with IPv6 hosts in brackets. */
function hostPort(host, port) {
  return `${host.includes(':') ? `[${host}]` : host}:${port}`;
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

/** The target of a tunnel event as 'host:port' ('-' when the request had no readable target). */
function tunnelTarget(t) {
  if (!t.target) return '-';
  return hostPort(t.target, t.port);
}

/** The log line of a tunnel event (without "legato: "). */
function tunnelLine(t) {
  return `tunnel ${tunnelTarget(t)} status=${t.status} from_client=${t.bytesFromClient} to_client=${t.bytesToClient} duration_ms=${t.durationMs}`;
}

/**
 * Run the CLI.
 *
 * @param {string[]} argv Arguments after the script (process.argv.slice(2)).
 * @param {Record<string, string | undefined>} [env] The environment (default process.env).
 * @param {{ stdout?: NodeJS.WritableStream, stderr?: NodeJS.WritableStream,
 *   signals?: NodeJS.EventEmitter, exit?: (code: number) => void }} [io] For tests: where output
 *   goes, where SIGINT/SIGTERM come from (default process), and how a second signal ends the
 *   process at once (default process.exit).
 * @returns {Promise<number>} The exit code: resolved right away for --help, --version and
 *   errors; after a graceful stop when the proxy ran.
 */
async function main(argv, env = process.env, io = {}) {
  const stdout = io.stdout || process.stdout;
  const stderr = io.stderr || process.stderr;
  const say = (line) => stderr.write(`legato: ${line}\n`);

  let parsed;
  try {
    parsed = parseArgs(argv, env);
  } catch (err) {
    if (!(err instanceof UsageError)) throw err;
    say(err.message);
    stderr.write(shortUsage());
    return EXIT.USAGE;
  }
  if (parsed.command === 'help') { stdout.write(usage()); return EXIT.OK; }
  if (parsed.command === 'version') { stdout.write(`${version()}\n`); return EXIT.OK; }

  // Loaded only now, so that --help and --version work even without a built addon.
  const { Proxy } = require('./index');
  const { DEFAULT_DENY_CIDRS } = require('./config');
  const quiet = !!(parsed.values.quiet && parsed.values.quiet.value);

  let proxy;
  if (parsed.command === 'serve') {
    const file = parsed.file;
    let config;
    try {
      config = JSON.parse(fs.readFileSync(file, 'utf8'));
    } catch (err) {
      say(`${file}: ${err.code ? `cannot read it: ${err.message}` : `not valid JSON: ${err.message}`}`);
      return EXIT.USAGE;
    }
    try {
      proxy = new Proxy(config);
    } catch (err) {
      if (err.code !== 'ERR_LEGATO_CONFIG') throw err;
      say(`${file}: ${err.message}`);
      return EXIT.USAGE;
    }
  } else {
    let config;
    try {
      config = buildConfig(parsed.values, DEFAULT_DENY_CIDRS);
      proxy = new Proxy(config);
    } catch (err) {
      if (err instanceof UsageError) {
        say(err.message);
      } else if (err.code === 'ERR_LEGATO_CONFIG') {
        say(describeConfigError(err, parsed.values, DEFAULT_DENY_CIDRS.length));
      } else {
        throw err;
      }
      stderr.write(shortUsage());
      return EXIT.USAGE;
    }
  }

  proxy.on('warning', (w) => say(`warning: ${w.message}${w.code ? ` (${w.code})` : ''}`));
  proxy.on('error', (e) => say(`error: ${e.message}${e.code ? ` (${e.code})` : ''}`));
  if (!quiet) proxy.on('tunnel', (t) => say(tunnelLine(t)));

  // Signals are handled from before start(): one that arrives while binding stops the proxy too.
  const signals = handleSignals(proxy, say, io);
  try {
    await proxy.start();
  } catch (err) {
    signals.remove();
    const l = err.listenerIndex !== undefined ? proxy.addresses()[err.listenerIndex] : proxy.addresses()[0];
    say(`cannot listen on ${hostPort(l.host, l.port)}: ${err.message}`);
    await proxy.stop().catch(() => {});
    return EXIT.FAILURE;
  }
  if (!signals.stopping()) await announce(proxy, parsed.command, say);
  return signals.done;
}

/** Print the startup line of each listener, and the warning for a public forward proxy. */
async function announce(proxy, command, say) {
  const metrics = proxy.metrics();
  const workers = Array.isArray(metrics.workers) ? metrics.workers.length : 0;
  const workerText = workers ? `, ${workers} worker${workers === 1 ? '' : 's'}` : '';
  for (const a of proxy.addresses()) {
    const where = hostPort(a.host, a.port);
    if (command === 'proxy') {
      const hintHost = a.host === '0.0.0.0' ? '127.0.0.1' : a.host === '::' ? '::1' : a.host;
      say(`listening on ${where} (forward proxy${workerText}): HTTPS_PROXY=http://${hostPort(hintHost, a.port)}`);
    } else {
      say(`listening on ${where} (${a.kind}${workerText})`);
    }
    if (a.kind === 'connect' && !(await bindsLoopbackOnly(a.host))) {
      say(`warning: the forward proxy on ${where} is reachable beyond this machine and has no authentication: anyone who can connect can use it`);
    }
  }
}

/**
 * Stop gracefully on the first SIGINT/SIGTERM (stop({ graceMs: STOP_GRACE_MS })); exit at once
 * (code 1) on a second one. Returns { done: Promise<exit code> (after the graceful stop),
 * stopping(): whether a signal came, remove(): uninstall the handlers }.
 */
function handleSignals(proxy, say, io) {
  const signals = io.signals || process;
  const exit = io.exit || ((code) => process.exit(code));
  let stopping = false;
  let resolveDone;
  const done = new Promise((resolve) => { resolveDone = resolve; });
  const remove = () => {
    signals.off('SIGINT', onSignal);
    signals.off('SIGTERM', onSignal);
  };
  function onSignal(sig) {
    if (stopping) {
      say(`${sig} again: exiting now`);
      exit(EXIT.FAILURE);
      return;
    }
    stopping = true;
    say(`${sig}: stopping; open connections have ${STOP_GRACE_MS / 1000} s to finish (send ${sig} again to exit now)`);
    proxy.stop({ graceMs: STOP_GRACE_MS }).then(() => {
      remove();
      say('stopped');
      resolveDone(EXIT.OK);
    }, (err) => {
      remove();
      say(`error while stopping: ${err.message}`);
      resolveDone(EXIT.FAILURE);
    });
  }
  signals.on('SIGINT', onSignal);
  signals.on('SIGTERM', onSignal);
  return { done, stopping: () => stopping, remove };
}

module.exports = { main, parseArgs, buildConfig, describeConfigError, usage, shortUsage, version, tunnelLine, isLoopbackIp, UsageError, OPTIONS, EXIT, STOP_GRACE_MS };
