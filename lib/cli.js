'use strict';

/**
 * lib/cli.js — the `legato` command (bin/legato is a two-line wrapper around main()).
 *
 *   legato [options]               a forward proxy (one `kind: 'connect'` listener) on
 *                                  127.0.0.1:9999, for HTTPS_PROXY=http://127.0.0.1:9999
 *   legato serve <config>          a Proxy from a config file (JSONC or YAML, any listener
 *                                  kinds), reloaded on SIGHUP and on change: lib/serve.js
 *   legato serve --check <config>  validate the file and exit 0 (valid) or 2 (invalid)
 *   legato hash-password [--cost <ln>]
 *                                  read a password (stdin, or twice without echo on a terminal)
 *                                  and print its `$scrypt$` line for connect.auth / --auth-file
 *
 * Options and their environment twins are in OPTIONS below; usage() is generated from it. Every
 * value option has a twin named LEGATO_<OPTION> (`--max-connections` ↔ LEGATO_MAX_CONNECTIONS);
 * a flag given on the command line replaces its twin entirely (lists are not merged). An empty
 * variable counts as unset. Both `--flag value` and `--flag=value` work; list options take a
 * comma-separated list and may be repeated. Fyntr's variables (FYNTR_PORT, …) are accepted as
 * aliases of their LEGATO_ twin with a warning naming the new name; the LEGATO_ one wins.
 *
 * Validation is lib/config.js's: the CLI turns strings into the config's types and lets
 * `new Proxy()` judge them, then rewrites the config path at the start of the error message into
 * the flag (or variable) and the value the user wrote — `listeners[0].port must be an integer
 * 0-65535` becomes `--port '70000' must be an integer 0-65535` — so the rules and their wording
 * live in one place. Only what has no config twin is checked here (seconds, booleans, usage).
 *
 * Exit codes (EXIT): 0 after --help, --version, a valid --check or a graceful stop (first
 * SIGINT/SIGTERM); 1 when the proxy cannot start (bind failure, admin endpoint, status or log
 * file) or a second signal ends the process during the stop; 2 for a bad flag, value or config
 * file (one line on stderr; the usage follows for flags and values).
 *
 * Output: stdout carries only --help and --version. Everything else goes to stderr (or to
 * --log-file), one line per event through lib/service.js's Log: "<ISO 8601 time> legato: <text>"
 * (or one JSON object with --log-format json), filtered by --log-level: the startup line (with
 * the bound port, so `--port 0` is usable), a warning when a forward proxy listens on a
 * non-loopback address (it has no authentication), one access line per connection when it
 * closes (unless --quiet), the engine's 'warning' and 'error' events (never fatal), reloads, and
 * the shutdown. Errors before the log exists (usage, a bad config file) are plain
 * "legato: <text>" lines. Signals are lib/service.js's: SIGINT/SIGTERM stop, SIGHUP reloads
 * (serve), SIGUSR1 logs the metrics.
 */

const net = require('net');
const path = require('path');
const { normalizeCidr } = require('./config');
const { parseAdminAddress } = require('./admin');
const {
  Service, Log, LOG_LEVELS, LOG_FORMATS, attachLog, EXIT, STOP_GRACE_MS, announce, isLoopbackIp,
} = require('./service');

/** hash-password's default cost: N = 2^15, r = 8, p = 1 (32 MiB, about 0.1 s per check). */
const HASH_DEFAULT = Object.freeze({ ln: 15, r: 8, p: 1 });
const HASH_MIN_LN = 10; // --cost: below this a guess costs too little
const HASH_MAX_LN = 20; // --cost: 128 · 8 · 2^20 = 1 GiB, the engine's bound

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
  { flag: '--auth-file', key: 'authFile', type: 'string', arg: '<path>', path: 'listeners[0].connect.auth',
    help: 'require Basic proxy authentication for the users in this file (lines user:$scrypt$...)' },
  { flag: '--auth-failure-limit', key: 'authFailureLimit', type: 'string', arg: '<n[/burst]|off>',
    paths: { 'listeners[0].connect.auth.failureLimit.perMinute': 'the rate', 'listeners[0].connect.auth.failureLimit.burst': 'the burst' },
    help: 'failed logins per minute per client IP, with a burst (default 10/10; off = no limit); excess gets 429' },
  { flag: '--allow-client', key: 'allowClients', type: 'list', arg: '<cidrs>',
    help: 'only clients in these ranges may connect (others get 403); repeatable; ::ffff:10.0.0.0/104 is 10.0.0.0/8' },
  { flag: '--rate-limit', key: 'rateLimit', type: 'string', arg: '<n[/burst]>',
    paths: { 'listeners[0].protection.rateLimit.connectionsPerSecond': 'the rate', 'listeners[0].protection.rateLimit.burst': 'the burst' },
    help: 'new connections per second per client IP, with a burst (default n); excess gets 429' },
  { flag: '--max-per-ip', key: 'maxPerIp', type: 'integer', arg: '<n>', path: 'listeners[0].protection.maxConcurrentPerIp',
    help: 'open connections per client IP, 0 = unlimited (default 0); excess gets 429' },
  { flag: '--workers', key: 'workers', type: 'integer', arg: '<n>', path: 'workerThreads',
    help: 'worker threads (default: the number of CPUs)' },
  { flag: '--worker-priority', key: 'workerPriority', type: 'string', arg: '<normal|realtime>', path: 'workerPriority',
    help: 'realtime: the workers run SCHED_FIFO, ahead of other threads of their CPUs (needs CAP_SYS_NICE or ulimit -r 1)' },
  { flag: '--rate', key: 'rate', type: 'integer', arg: '<bytes/s>', path: 'scheduler.rate',
    help: 'pace all tunnels of a worker to this many bytes/s, shared fairly (K, M, G: ×1024; 0 = off)' },
  { flag: '--burst', key: 'burst', type: 'integer', arg: '<bytes>', path: 'scheduler.burst',
    help: 'bytes that may go at once above --rate (default: one second of it, at least 64K)' },
  { flag: '--quiet', key: 'quiet', type: 'boolean',
    help: 'no access line per connection' },
  { flag: '--log-format', key: 'logFormat', type: 'string', arg: '<text|json>',
    help: 'text lines (default) or one JSON object per line; every line has its time (ISO 8601)' },
  { flag: '--log-level', key: 'logLevel', type: 'string', arg: '<level>',
    help: 'error, warn, info (default: access lines included) or debug (also blocked sources)' },
  { flag: '--admin', key: 'admin', type: 'string', arg: '<host:port>',
    help: 'serve /metrics, /metrics.json, /health, /ready there ([v6]:port, :port, or a socket /path)' },
  { flag: '--status-file', key: 'statusFile', type: 'string', arg: '<path>',
    help: 'write pid, version and bound addresses there as JSON; removed at exit' },
  { flag: '--log-file', key: 'logFile', type: 'string', arg: '<path>',
    help: 'append the log there instead of stderr; SIGUSR1 reopens it (logrotate)' },
];
for (const o of OPTIONS) o.env = `LEGATO_${o.flag.slice(2).toUpperCase().replace(/-/g, '_')}`;

/**
 * Fyntr's environment variables (shared/reference/fyntr.md §1.1) that have a legato twin: the
 * Fyntr name is accepted with a warning naming the LEGATO_ one, which wins when both are set.
 */
const FYNTR_ALIASES = {
  FYNTR_BIND: 'bind',
  FYNTR_PORT: 'port',
  FYNTR_MAX_CONNECTIONS: 'maxConnections',
  FYNTR_IDLE_TIMEOUT: 'idleTimeout',
  FYNTR_ALLOW_PORT: 'allowPorts',
  FYNTR_NO_DEFAULT_ALLOW_PORT: 'noDefaultAllowPort',
  FYNTR_DENY_CIDR: 'denyCidrs',
  FYNTR_ALLOW_CIDR: 'allowCidrs',
};

/**
 * Fyntr variables without a legato twin. FYNTR_ALLOW_DOMAIN is not an alias of
 * LEGATO_ALLOW_DOMAIN: in Fyntr it lets a listed domain whose DNS answer mixes public and
 * internal addresses proceed with the public ones (other destinations stay reachable), which
 * legato does for every name; LEGATO_ALLOW_DOMAIN is a destination allowlist. Mapping one to
 * the other would cut a Fyntr user off from every other domain, so it is ignored with a warning
 * that says why. The others would change what the proxy does if legato ignored them (a SOCKS5
 * listener, threat feeds that block): they are refused.
 */
const FYNTR_IGNORED = {
  FYNTR_ALLOW_DOMAIN: 'FYNTR_ALLOW_DOMAIN is not needed and is ignored: legato already lets every domain whose DNS answer mixes public and internal addresses proceed with the public ones (LEGATO_ALLOW_DOMAIN means something else: only the listed domains may be reached)',
};
const FYNTR_REFUSED = {
  FYNTR_SOCKS5_BIND: 'legato has no SOCKS5 listener',
  FYNTR_SOCKS5_PORT: 'legato has no SOCKS5 listener',
  FYNTR_THREAT_FEED_FILE: 'legato does not read threat feeds (use --deny-cidr for addresses)',
  FYNTR_THREAT_ACTION: 'legato does not read threat feeds (use --deny-cidr for addresses)',
};

/** Options that `legato serve` accepts besides the file (the rest are in the file). */
const SERVE_KEYS = ['quiet', 'statusFile', 'logFile', 'logFormat', 'logLevel'];

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

const SERVE_USAGE = '--quiet] [--status-file <path>] [--log-file <path>] [--log-format <text|json>] [--log-level <level>';

/** @returns {string} The usage text (ends with a newline). */
function usage() {
  const lines = [];
  for (const o of OPTIONS) {
    lines.push(`  ${o.flag}${o.arg ? ` ${o.arg}` : ''}, ${o.env}${o.type === 'boolean' ? '=1' : ''}`);
    lines.push(`        ${o.help}`);
  }
  return [
    'Usage: legato [options]',
    `       legato serve <config> [--check] [${SERVE_USAGE}]`,
    '       legato hash-password [--cost <ln>]',
    '',
    'A forward proxy for HTTP CONNECT tunnels (HTTPS_PROXY=http://127.0.0.1:9999). It does not',
    'decrypt anything. `serve` starts the listeners of a config file (JSON with comments, or',
    'YAML for .yaml/.yml; kinds tls and connect), and reloads it on SIGHUP and when it or a',
    'certificate file changes. `serve --check` validates the file (certificates included) and',
    'exits 0 if it is valid, 2 if not.',
    '',
    'Options, with their environment variable (a flag replaces its variable):',
    ...lines,
    '  --check',
    '        serve only: validate the config file and exit (0 valid, 2 invalid)',
    '  -h, --help',
    '        print this help and exit',
    '  -v, --version',
    '        print the version and exit',
    '',
    'Lists take comma-separated values, and their flag may be repeated. Internal destinations',
    '(loopback, private, link-local, CGNAT, multicast, NAT64/6to4 of those) are refused unless',
    '--allow-cidr excepts them. SIGINT or SIGTERM stops gracefully, giving open tunnels 5 s;',
    'a second signal exits at once. SIGHUP reloads serve\'s config file; SIGUSR1 logs the',
    'metrics as one line and reopens the log file. FYNTR_* variables are accepted as aliases.',
    '',
    '`hash-password` reads a password from stdin (on a terminal: asked twice, not echoed) and',
    `prints its \$scrypt\$ line (default cost ln=${HASH_DEFAULT.ln},r=${HASH_DEFAULT.r},p=${HASH_DEFAULT.p}; --cost <ln> sets N = 2^ln, ${HASH_MIN_LN}-${HASH_MAX_LN}).`,
    'An --auth-file holds one user:$scrypt$... per line; # starts a comment.',
    '',
  ].join('\n');
}

/** @returns {string} The short usage shown after an error (ends with a newline). */
function shortUsage() {
  return [
    'Usage: legato [options]',
    `       legato serve <config> [--check] [${SERVE_USAGE}]`,
    '       legato hash-password [--cost <ln>]',
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
 * @param {Record<string, string | undefined>} env The environment (LEGATO_* twins, FYNTR_*
 *   aliases).
 * @returns {{ command: 'help' | 'version' | 'proxy' | 'serve', file?: string, check?: boolean,
 *   values: Record<string, { value: any, via: string, raw: string | string[] }>,
 *   warnings: string[] }}
 *   `values` holds the options given (by flag or variable) with where each came from; `via` is
 *   the flag or variable name used in messages. `warnings` are lines to log (Fyntr aliases).
 * @throws {UsageError} For an unknown flag, a missing or unexpected value, a bad boolean, a
 *   Fyntr variable legato cannot honour.
 */
function parseArgs(argv, env = {}) {
  if (argv.some((a) => HELP_FLAGS.includes(a))) return { command: 'help', values: {}, warnings: [] };
  if (argv.some((a) => VERSION_FLAGS.includes(a))) return { command: 'version', values: {}, warnings: [] };
  if (argv[0] === 'hash-password') return { command: 'hash-password', cost: parseCost(argv.slice(1)), values: {}, warnings: [] };

  const fromFlags = {};
  const positional = [];
  let check = false;
  let i = 0;
  for (; i < argv.length; i++) {
    const arg = argv[i];
    if (arg === '--') { i++; break; }
    if (!arg.startsWith('-') || arg === '-') { positional.push(arg); continue; }
    if (arg === '--check') { check = true; continue; }
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

  const isSet = (name) => env[name] !== undefined && env[name] !== '';
  const serving = positional[0] === 'serve';
  const warnings = [];
  const values = {};
  for (const opt of OPTIONS) {
    const alias = Object.keys(FYNTR_ALIASES).find((name) => FYNTR_ALIASES[name] === opt.key);
    if (fromFlags[opt.key]) {
      values[opt.key] = fromFlags[opt.key];
      if (alias && isSet(alias) && !serving) warnings.push(`${alias} is ignored: ${opt.flag} is given`);
      continue;
    }
    let name = opt.env;
    if (!isSet(name)) {
      if (!alias || !isSet(alias)) continue;
      name = alias;
    }
    if (alias && isSet(alias) && !serving) {
      warnings.push(name === alias ? `${alias} is a Fyntr variable: use ${opt.env} (it works the same here)` : `${alias} is ignored: ${opt.env} is set`);
    }
    const raw = env[name];
    if (opt.type === 'boolean') {
      values[opt.key] = { value: envBoolean(raw, name), via: name, raw };
    } else if (opt.type === 'list') {
      const items = splitList(raw, name);
      values[opt.key] = { value: items, via: name, raw: items };
    } else {
      values[opt.key] = { value: raw, via: name, raw };
    }
  }

  if (check && !serving) throw new UsageError('--check is for serve: legato serve --check <config>');
  if (positional.length === 0) {
    for (const [name, why] of Object.entries(FYNTR_REFUSED)) {
      if (isSet(name)) throw new UsageError(`${name} cannot be honoured: ${why}; unset it`, { showUsage: false });
    }
    for (const [name, why] of Object.entries(FYNTR_IGNORED)) if (isSet(name)) warnings.push(why);
    return { command: 'proxy', values, warnings };
  }
  if (!serving) throw new UsageError(`unexpected argument '${clip(positional[0])}' (options start with --; the commands are 'serve' and 'hash-password')`);
  if (positional.length < 2) throw new UsageError('serve needs a config file: legato serve <config.json>');
  if (positional.length > 2) throw new UsageError(`serve takes one config file, got also '${clip(positional[2])}'`);
  for (const opt of OPTIONS) {
    const v = fromFlags[opt.key];
    if (v && !SERVE_KEYS.includes(opt.key)) throw new UsageError(`${opt.flag} cannot be used with serve (set it in the config file)`);
  }
  // Their LEGATO_ twins too: dropped without a word, LEGATO_AUTH_FILE would leave the proxy
  // open to anyone who expected it to ask for credentials. (Fyntr's FYNTR_ variables belong to
  // the forward proxy it replaces and are not looked at by serve.)
  for (const opt of OPTIONS) {
    const v = values[opt.key];
    if (v && v.via === opt.env && !SERVE_KEYS.includes(opt.key)) throw new UsageError(`${v.via} cannot be used with serve (set it in the config file, or unset it)`, { showUsage: false });
  }
  const serveValues = {};
  for (const key of SERVE_KEYS) if (values[key]) serveValues[key] = values[key];
  return { command: 'serve', file: positional[1], check, values: serveValues, warnings: [] };
}

/** hash-password's arguments: nothing, or --cost <ln> (--cost=<ln>). */
function parseCost(args) {
  let raw;
  if (args.length === 1 && args[0].startsWith('--cost=')) raw = args[0].slice(7);
  else if (args.length === 2 && args[0] === '--cost') raw = args[1];
  else if (args.length !== 0) throw new UsageError(`hash-password takes only --cost <ln>, got '${clip(args.join(' '))}'`);
  if (raw === undefined) return HASH_DEFAULT.ln;
  const ln = /^[0-9]+$/.test(raw) ? Number(raw) : NaN;
  if (!(ln >= HASH_MIN_LN && ln <= HASH_MAX_LN)) throw new UsageError(`--cost '${clip(raw)}' must be an integer ${HASH_MIN_LN}-${HASH_MAX_LN} (N = 2^ln; ${HASH_DEFAULT.ln} is 32 MiB)`);
  return ln;
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
  const flags = [...OPTIONS.map((o) => o.flag), '--check', ...HELP_FLAGS, ...VERSION_FLAGS];
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

/** A byte count: a number with an optional K, M or G (×1024) suffix ('10M'), else as toNumber. */
function toBytes(raw) {
  const m = /^([0-9]+(?:\.[0-9]+)?)([KMG])$/i.exec(raw);
  if (!m) return toNumber(raw);
  return Math.round(Number(m[1]) * 1024 ** ('KMG'.indexOf(m[2].toUpperCase()) + 1));
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
  if (v('authFile') !== undefined) c.auth = { users: readAuthFile(v('authFile'), values.authFile.via) };
  if (v('authFailureLimit') !== undefined) {
    const raw = v('authFailureLimit');
    const { via } = values.authFailureLimit;
    if (c.auth === undefined) throw new UsageError(`${via} needs --auth-file (there are no logins to limit)`);
    const parts = raw.split('/');
    if (raw === 'off') {
      c.auth.failureLimit = null;
    } else if (parts.length > 2) {
      throw new UsageError(`${via}${via.startsWith('--') ? ' ' : '='}'${clip(raw)}' must be <failed logins per minute>[/<burst>] or off`);
    } else {
      c.auth.failureLimit = { perMinute: toNumber(parts[0]) };
      if (parts.length === 2) c.auth.failureLimit.burst = toNumber(parts[1]);
    }
  }
  const protection = {};
  if (v('allowClients') !== undefined) protection.blocklist = blocklistOutside(values.allowClients);
  if (v('rateLimit') !== undefined) {
    const raw = v('rateLimit');
    const parts = raw.split('/');
    if (parts.length > 2) {
      throw new UsageError(`${values.rateLimit.via}${values.rateLimit.via.startsWith('--') ? ' ' : '='}'${clip(raw)}' must be <connections per second>[/<burst>]`);
    }
    protection.rateLimit = { connectionsPerSecond: toNumber(parts[0]) };
    if (parts.length === 2) protection.rateLimit.burst = toNumber(parts[1]);
  }
  if (v('maxPerIp') !== undefined) protection.maxConcurrentPerIp = toNumber(v('maxPerIp'));
  if (Object.keys(protection).length > 0) listener.protection = protection;
  const config = { listeners: [listener] };
  if (v('workers') !== undefined) config.workerThreads = toNumber(v('workers'));
  if (v('workerPriority') !== undefined) config.workerPriority = v('workerPriority');
  if (v('rate') !== undefined || v('burst') !== undefined) {
    config.scheduler = {};
    if (v('rate') !== undefined) config.scheduler.rate = toBytes(v('rate'));
    if (v('burst') !== undefined) config.scheduler.burst = toBytes(v('burst'));
  }
  return config;
}

/**
 * Read an --auth-file: one `user:$scrypt$…` per line; blank lines and lines starting with '#'
 * (after spaces) are ignored; spaces around a line are trimmed, CRLF accepted. The user is what
 * precedes the first ':' (names cannot hold one), the hash the rest, checked by the engine's own
 * parser here so an error names the file and line.
 *
 * @param {string} file The path.
 * @param {string} via The flag or variable it came from (for messages).
 * @returns {{ name: string, hash: string }[]}
 * @throws {UsageError} An unreadable file, a bad line, a duplicate user, no user at all.
 */
function readAuthFile(file, via) {
  const fs = require('fs');
  const binding = require('./binding');
  let text;
  try {
    text = fs.readFileSync(file, 'utf8');
  } catch (err) {
    throw new UsageError(`${via} ${file}: ${err.code === 'ENOENT' ? 'no such file' : err.message}`, { showUsage: false });
  }
  const users = [];
  const seen = new Map();
  text.replace(/^\uFEFF/, '').split('\n').forEach((rawLine, i) => {
    const line = rawLine.trim();
    const where = `${file}:${i + 1}`;
    if (line === '' || line.startsWith('#')) return;
    const colon = line.indexOf(':');
    if (colon <= 0) throw new UsageError(`${where}: expected user:$scrypt$..., got no user name before ':'`, { showUsage: false });
    const name = line.slice(0, colon);
    const hash = line.slice(colon + 1);
    // eslint-disable-next-line no-control-regex
    if (Buffer.byteLength(name) > 255 || /[\x00-\x1f\x7f]/.test(name)) throw new UsageError(`${where}: the user name must be 1-255 bytes without control characters`, { showUsage: false });
    const why = binding.parseScryptHash(hash);
    if (why !== null) throw new UsageError(`${where}: the hash of '${clip(name)}' is not a $scrypt$ hash: ${why}`, { showUsage: false });
    if (seen.has(name)) throw new UsageError(`${where}: user '${clip(name)}' already appears on line ${seen.get(name)}`, { showUsage: false });
    seen.set(name, i + 1);
    users.push({ name, hash });
  });
  if (users.length === 0) throw new UsageError(`${file}: no users (lines user:$scrypt$...)`, { showUsage: false });
  return users;
}

/**
 * `legato hash-password`: read a password and print its `$scrypt$` line on stdout. From a
 * terminal it is asked twice without echo (raw mode) and must match; otherwise stdin is read to
 * its end and one trailing newline (LF or CRLF) is dropped. An empty password is refused.
 *
 * @returns {Promise<number>} The exit code.
 */
async function hashPassword(ln, { stdin, stdout, stderr }) {
  const crypto = require('crypto');
  const say = (line) => stderr.write(`legato: ${line}\n`);
  let password;
  if (stdin.isTTY && typeof stdin.setRawMode === 'function') {
    const first = await readHidden(stdin, stderr, 'Password: ');
    const second = first === null ? null : await readHidden(stdin, stderr, 'Again: ');
    if (first === null || second === null) { say('no password (interrupted)'); return EXIT.USAGE; }
    if (first !== second) { say('the passwords do not match'); return EXIT.USAGE; }
    password = first;
  } else {
    const chunks = [];
    for await (const c of stdin) chunks.push(c);
    password = Buffer.concat(chunks).toString('utf8').replace(/\r?\n$/, '');
  }
  if (password === '') { say('the password is empty'); return EXIT.USAGE; }
  const { r, p } = HASH_DEFAULT;
  const salt = crypto.randomBytes(16);
  const key = await new Promise((resolve, reject) => crypto.scrypt(password, salt, 32, { N: 2 ** ln, r, p, maxmem: 256 * 2 ** 20 + 128 * r * 2 ** ln }, (e, k) => (e ? reject(e) : resolve(k))));
  const b64 = (buf) => buf.toString('base64').replace(/=+$/, '');
  stdout.write(`$scrypt$ln=${ln},r=${r},p=${p}$${b64(salt)}$${b64(key)}\n`);
  return EXIT.OK;
}

/** One line from a terminal without echo; null on Ctrl-C / Ctrl-D / end of input. */
function readHidden(stdin, stderr, prompt) {
  return new Promise((resolve) => {
    stdin.setRawMode(true); // echo off before the prompt invites typing
    stderr.write(prompt);
    stdin.resume();
    let text = '';
    const done = (value) => {
      stdin.off('data', onData);
      stdin.off('end', onEnd);
      stdin.setRawMode(false);
      stdin.pause();
      stderr.write('\n');
      resolve(value);
    };
    const onEnd = () => done(null);
    const onData = (buf) => {
      for (const ch of buf.toString('utf8')) {
        if (ch === '\r' || ch === '\n') return done(text);
        if (ch === '\u0003' || ch === '\u0004') return done(null);
        if (ch === '\u007f' || ch === '\b') text = text.slice(0, -1);
        else text += ch;
      }
      return undefined;
    };
    stdin.on('data', onData);
    stdin.once('end', onEnd);
  });
}

const MAPPED_BITS = 96n; // prefix length of ::ffff:0:0/96, the IPv4-mapped IPv6 block
const MAPPED_START = 0xffffn << 32n; // ::ffff:0.0.0.0

/**
 * --allow-client: the blocklist that refuses every client outside the given ranges. The
 * complement is computed (per family: an IPv4-only list refuses all of IPv6, and the other way
 * round) rather than using protection.allowlist, because an allowlisted client bypasses every
 * other check: --rate-limit and --max-per-ip must still apply to the clients that are let in.
 * At most 32 (IPv4) or 128 (IPv6) blocks per range given.
 *
 * IPv4-mapped IPv6 follows the engine (src/lg_cidr.h), which judges a mapped source
 * (::ffff:a.b.c.d, an IPv4 client of a dual-stack listener) as the IPv4 address: a range inside
 * ::ffff:0:0/96 with a prefix of at least 96 is the IPv4 range it denotes (::ffff:10.0.0.0/104
 * is 10.0.0.0/8), and an IPv6 range with a shorter prefix (::/0) covers native IPv6 only.
 *
 * @param {{ value: string[], via: string }} given From parseArgs().
 * @returns {string[]} CIDRs to refuse.
 * @throws {UsageError} For an entry that is not an IP or CIDR (in lib/config.js's words).
 */
function blocklistOutside(given) {
  const ranges = { 4: [], 6: [] };
  for (const item of given.value) {
    let cidr;
    try {
      cidr = normalizeCidr(item, `${given.via}${given.via.startsWith('--') ? ' ' : '='}'${clip(item)}'`);
    } catch (err) {
      throw new UsageError(err.message);
    }
    const [addr, lenText] = cidr.split('/');
    let family = net.isIPv4(addr) ? 4 : 6;
    let len = BigInt(lenText);
    let start = ipToBigInt(addr);
    // The engine judges an IPv4-mapped source (::ffff:a.b.c.d, a client of a dual-stack
    // listener) as the IPv4 address, and stores a blocklist entry inside ::ffff:0:0/96 as the
    // IPv4 CIDR it denotes (src/lg_cidr.h). So a mapped range given here is its IPv4 range:
    // left in the IPv6 family, its complement would block all of IPv4, this range included.
    if (family === 6 && len >= MAPPED_BITS && start >> 32n === MAPPED_START >> 32n) {
      family = 4;
      start &= 0xffffffffn;
      len -= MAPPED_BITS;
    }
    const bits = BigInt(family === 4 ? 32 : 128);
    const size = 1n << (bits - len);
    ranges[family].push([start, start + size - 1n]);
  }
  const out = [];
  for (const family of [4, 6]) {
    const bits = BigInt(family === 4 ? 32 : 128);
    const max = (1n << bits) - 1n;
    const sorted = ranges[family].sort((a, b) => (a[0] < b[0] ? -1 : a[0] > b[0] ? 1 : 0));
    let next = 0n; // the first address not yet covered
    const gap = (a, b) => {
      while (a <= b) {
        let size = 1n;
        while (size <= max && a % (size * 2n) === 0n && a + size * 2n - 1n <= b) size *= 2n;
        let len = bits;
        for (let s = size; s > 1n; s >>= 1n) len--;
        // An IPv6 block inside ::ffff:0:0/96 (prefix 96 or more) would be stored by the engine
        // as an IPv4 block and refuse IPv4 clients the IPv4 family let in (::fffe:0:0/96
        // allowed leaves ::ffff:0:0/96 = 0.0.0.0/0 in the gap after it). The IPv4 family
        // alone decides those addresses. A block (aligned) either lies inside it or contains it.
        const mapped = family === 6 && len >= MAPPED_BITS && a >> 32n === MAPPED_START >> 32n;
        if (!mapped) out.push(`${bigIntToIp(a, family)}/${len}`);
        a += size;
      }
    };
    for (const [a, b] of sorted) {
      if (a > next) gap(next, a - 1n);
      if (b + 1n > next) next = b + 1n;
    }
    if (next <= max) gap(next, max);
  }
  return out;
}

/** @param {string} addr An IPv4 or IPv6 literal (lib/config.js's normal form). @returns {bigint} */
function ipToBigInt(addr) {
  if (net.isIPv4(addr)) return addr.split('.').reduce((acc, o) => (acc << 8n) | BigInt(Number(o)), 0n);
  // A dotted-quad tail (normalizeCidr writes IPv4-mapped addresses as ::ffff:a.b.c.d) is two
  // groups; read as hex it would be one wrong group (the range came out shifted by 16 bits).
  const quad = /^(.*:)(\d+\.\d+\.\d+\.\d+)$/.exec(addr);
  if (quad) {
    const v4 = ipToBigInt(quad[2]);
    addr = `${quad[1]}${(v4 >> 16n).toString(16)}:${(v4 & 0xffffn).toString(16)}`;
  }
  const [head, tail] = addr.split('::');
  const h = head ? head.split(':') : [];
  const t = tail !== undefined && tail !== '' ? tail.split(':') : [];
  const groups = tail === undefined ? h : [...h, ...Array(8 - h.length - t.length).fill('0'), ...t];
  return groups.reduce((acc, g) => (acc << 16n) | BigInt(parseInt(g, 16)), 0n);
}

function bigIntToIp(v, family) {
  if (family === 4) return [24n, 16n, 8n, 0n].map((s) => String((v >> s) & 255n)).join('.');
  const groups = [];
  for (let s = 112n; s >= 0n; s -= 16n) groups.push(((v >> s) & 0xffffn).toString(16));
  return groups.join(':');
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
  const opt = OPTIONS.find((o) => o.path === m[1] || (o.paths && o.paths[m[1]]));
  if (!opt || !values[opt.key]) return err.message;
  const given = values[opt.key];
  const rest = m[3].replace(/\ballowCidrs\b/g, '--allow-cidr');
  const show = (value) => `${given.via}${given.via.startsWith('--') ? ' ' : '='}'${clip(String(value))}'`;
  // An option feeding several config fields names the part: "--rate-limit '5/0.5': the burst must be ...".
  if (opt.paths && opt.paths[m[1]]) return `${show(given.raw)}: ${opt.paths[m[1]]}${rest}`;
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

/**
 * Run the CLI.
 *
 * @param {string[]} argv Arguments after the script (process.argv.slice(2)).
 * @param {Record<string, string | undefined>} [env] The environment (default process.env).
 * @param {{ stdout?: NodeJS.WritableStream, stderr?: NodeJS.WritableStream,
 *   signals?: NodeJS.EventEmitter, exit?: (code: number) => void }} [io] For tests: where output
 *   goes, where signals come from (default process), and how a second signal ends the process
 *   at once (default process.exit).
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
    if (err.showUsage) stderr.write(shortUsage());
    return EXIT.USAGE;
  }
  if (parsed.command === 'help') { stdout.write(usage()); return EXIT.OK; }
  if (parsed.command === 'hash-password') return hashPassword(parsed.cost, { stdin: io.stdin || process.stdin, stdout, stderr });
  if (parsed.command === 'version') { stdout.write(`${version()}\n`); return EXIT.OK; }

  const v = (key) => (parsed.values[key] ? parsed.values[key].value : undefined);
  const logOptions = {};
  for (const [key, allowed] of [['logFormat', LOG_FORMATS], ['logLevel', LOG_LEVELS]]) {
    const given = parsed.values[key];
    if (!given) continue;
    if (!allowed.includes(given.value)) {
      say(`${given.via}${given.via.startsWith('--') ? ' ' : '='}'${clip(given.raw)}' must be one of ${allowed.join(', ')}`);
      stderr.write(shortUsage());
      return EXIT.USAGE;
    }
    logOptions[key === 'logFormat' ? 'format' : 'level'] = given.value;
  }
  if (parsed.command === 'serve') {
    return require('./serve').serve({
      file: parsed.file,
      check: parsed.check,
      quiet: !!v('quiet'),
      statusFile: v('statusFile') || null,
      logFile: v('logFile') || null,
      log: logOptions,
      stderr,
      io,
    });
  }

  // Loaded only now, so that --help and --version work even without a built addon.
  const { Proxy } = require('./index');
  const { DEFAULT_DENY_CIDRS } = require('./config');

  let proxy;
  let admin = null;
  try {
    if (v('admin') !== undefined) {
      admin = parseAdminAddress(v('admin'));
      const given = parsed.values.admin;
      if (!admin) throw new UsageError(`${given.via}${given.via.startsWith('--') ? ' ' : '='}'${clip(given.raw)}' must be host:port, [v6]:port, :port or a Unix socket path`);
    }
    proxy = new Proxy(buildConfig(parsed.values, DEFAULT_DENY_CIDRS));
  } catch (err) {
    if (err instanceof UsageError) {
      say(err.message);
      if (!err.showUsage) return EXIT.USAGE;
    } else if (err.code === 'ERR_LEGATO_CONFIG') {
      say(describeConfigError(err, parsed.values, DEFAULT_DENY_CIDRS.length));
    } else {
      throw err;
    }
    stderr.write(shortUsage());
    return EXIT.USAGE;
  }

  let log;
  try {
    log = new Log(stderr, v('logFile') || null, logOptions);
  } catch (err) {
    say(`cannot open the log file ${v('logFile')}: ${err.message}`);
    await proxy.stop();
    return EXIT.FAILURE;
  }
  const service = new Service({
    proxy,
    command: 'proxy',
    log,
    admin,
    statusFile: v('statusFile') ? path.resolve(v('statusFile')) : null,
    io,
    announce: (p) => announce(p, 'proxy', (line) => service.say(line), { allowClients: v('allowClients') }),
  });
  service.onStop(() => log.close());
  for (const w of parsed.warnings) service.say(`warning: ${w}`);
  attachLog(proxy, log, { quiet: !!v('quiet') });
  return service.run();
}

module.exports = {
  main, parseArgs, buildConfig, readAuthFile, HASH_DEFAULT, describeConfigError, usage, shortUsage, version, isLoopbackIp,
  UsageError, OPTIONS, FYNTR_ALIASES, FYNTR_IGNORED, FYNTR_REFUSED, EXIT, STOP_GRACE_MS,
};
