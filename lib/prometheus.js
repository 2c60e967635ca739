'use strict';

/**
 * lib/prometheus.js — `proxy.metrics()` in the Prometheus text exposition format 0.0.4.
 *
 * The generator walks whatever the metrics object holds, so counters the engine adds later
 * appear without a change here. The rules, applied recursively:
 *
 *  - A number (or bigint) under the key path a.b.c becomes the metric `legato_a_b_c`
 *    (camelCase → snake_case). It is a *gauge* when the key is one of GAUGE_KEYS or looks like
 *    one (`active…`, `pending…`, `current…`, `…InUse`, `…Live`), else a *counter*, and then its
 *    name ends in `_total`. A boolean is a gauge of 0 or 1.
 *  - A plain object nests: its keys extend the name (`tls: { handshakes }` →
 *    `legato_tls_handshakes_total`). An object under a key `<base>By<Label>` is a labelled map
 *    instead: `refusedByReason: { port: 3 }` → `legato_refused_total{reason="port"} 3`.
 *  - An array of objects is a set of labelled series named after the key's singular
 *    (`listeners` → `legato_listener_…`, `workers` → `legato_worker_…`). Each element's labels:
 *    `host` + `port` become one label named after the singular (`listener="127.0.0.1:443"`);
 *    every other string field becomes a label named after its key (`kind="tls"`); an element
 *    with no string field is labelled by its index (`worker="0"`). If two elements would get the
 *    same labels (two listeners on port 0 before start), every element also gets `index`.
 *    Labels are inherited by what is nested inside an element.
 *  - Keys `statusNNN` are one family: `status200: 5` → `legato_connect_responses_total{status="200"}`.
 *  - Strings elsewhere are not metrics and are skipped.
 *
 * Every family has one HELP and one TYPE line, and its samples are contiguous. Label values
 * are escaped as the format requires (backslash, double quote, line feed); HELP text escapes
 * backslash and line feed. Metric and label names hold only [a-zA-Z0-9_].
 */

/** Keys whose value is a level, not a running count. */
const GAUGE_KEYS = new Set([
  'activeConnections', 'pendingSuspended', 'buffersInUse', 'configGenerationsLive', 'quantum',
  'readBuffersInUse', 'spareBufferBytes', 'helloBuffersInUse', 'nameLookups',
  'splicePipes', 'lentPipes', 'largePipes', 'splicePipeLarge', 'trackedIps', 'capacity', 'bytes', 'entries', 'weight',
  'consecutiveFailures', 'cpuPermille',
]);
/** A key that is a level only under one path (routes[].connections is a running count). */
const GAUGE_PATHS = new Set(['workers[].connections']);
/** String fields that change during an element's life: a value, not part of its identity. */
const STATE_KEYS = new Set(['state']);

/** HELP text of the fields we know (the others get a generic one naming their path). */
const HELP = {
  activeConnections: 'Connections open now.',
  totalConnections: 'Connections accepted and admitted.',
  closedConnections: 'Connections finished.',
  bytesFromClients: 'Bytes read from clients.',
  bytesToClients: 'Bytes written to clients.',
  upstreamConnectFailures: 'Connections whose every upstream dial was refused, failed or timed out.',
  upstreamRetries: 'Upstream dial attempts made after a failed one, on another upstream.',
  upstreamFailOpens: 'Connections sent to an ejected upstream because every upstream was ejected.',
  proxyProtocolHeadersSent: 'PROXY protocol headers written to upstreams.',
  halfCloseTimeouts: 'Connections closed by halfCloseTimeoutMs (the client kept its half open).',
  upstreamTlsFailures: 'TLS upstream handshakes that failed (certificate, name or protocol).',
  upstreamTlsResumed: 'TLS upstream handshakes that resumed a session.',
  upstreamLookupsFailed: 'Upstream host name lookups that failed and used the last good addresses.',
  noRoute: 'Connections closed because no route matched.',
  refusedMaxConnections: 'Connections closed at accept because the listener was at maxConnections.',
  handshakeFailures: 'ClientHello or TLS handshakes that failed.',
  handshakeFailuresTimeout: 'Handshakes not complete within tlsHandshakeTimeoutMs.',
  handshakeFailuresProtocol: 'Handshakes that failed on malformed, oversized or refused TLS.',
  handshakeFailuresClosed: 'Handshakes abandoned by the client.',
  handshakeFailuresCertificate: 'Handshakes failed because the client certificate was not trusted.',
  handshakeFailuresNoCertificate: 'Handshakes failed because a required client certificate was not given.',
  nonTlsConnections: 'Connections whose first bytes were not TLS (routed to the default route).',
  idleTimeouts: 'Connections closed by idleTimeoutMs.',
  outOfMemory: 'Connections closed because an allocation failed.',
  acceptPauses: 'Accept pauses after EMFILE, ENFILE or ENOBUFS.',
  tlsHandshakes: 'Terminated TLS handshakes completed.',
  tlsSessionsResumed: 'Terminated TLS handshakes that resumed a session.',
  tlsTruncations: 'Terminated connections whose client closed without close_notify.',
  tlsRenegotiationsRefused: 'Terminated connections closed for attempting renegotiation.',
  tlsKeyUpdateFloods: 'Terminated connections closed for more than 64 TLS 1.3 KeyUpdates within one second.',
  tlsSniMismatches: 'Terminated connections closed because the negotiated SNI differed from the routed one.',
  tlsErrors: 'Terminated connections closed on another TLS error.',
  suspendedTotal: 'Connections held for a JavaScript decision.',
  suspendedResolved: 'Held connections resolved with a decision.',
  suspendedRejected: 'Held connections closed by a null decision.',
  suspendedTimedOut: 'Held connections closed at suspendTimeoutMs.',
  suspendedDropped: 'Held connections closed because their event could not be queued.',
  suspendedClientGone: 'Held connections whose client left.',
  status: 'CONNECT responses sent, by status code.',
  refusedPort: 'CONNECT requests refused (403) because the port is not allowed.',
  refusedDomain: 'CONNECT requests refused (403) because the domain is not allowed.',
  refusedAddress: 'CONNECT requests refused (403) because every address is denied.',
  refusedLookupsBusy: 'CONNECT requests refused (503) because too many name lookups were running.',
  authFailures: 'CONNECT requests refused (407) because their Proxy-Authorization was malformed, too long or wrong.',
  authVerifications: 'Proxy credentials verified with scrypt (on the thread pool).',
  authCacheHits: 'Proxy credentials accepted from the cache of recent successes.',
  refusedAuthBusy: 'CONNECT requests refused (503) because 16 verifications were in flight or none finished within 10 s.',
  authThrottled: 'CONNECT requests refused (429) unverified because their source used up connect.auth.failureLimit.',
  internalErrors: 'Connections closed on an impossible state transition (a bug).',
  pendingSuspended: 'Connections held for a decision now.',
  blockedConnections: 'Connections refused by protection.',
  configGenerationsLive: 'Config snapshots still referenced.',
  eventsDropped: 'Engine events that could not be queued to JavaScript.',
  accessEventsDropped: 'Access records (access log) that could not be queued to JavaScript (counted in eventsDropped too).',
  buffersInUse: 'Read and ClientHello buffers held now.',
  connections: 'Connections owned by the worker now.',
  readBuffersInUse: 'Read buffers held by the worker now.',
  spareBufferBytes: 'Bytes of spare read buffers the worker keeps for reuse (at most 4 MiB).',
  helloBuffersInUse: 'ClientHello buffers held by the worker now.',
  nameLookups: 'Name lookups (CONNECT targets, upstream host names) queued or running on the worker now.',
  quantum: 'Current DRR quantum of the worker, in bytes.',
  grants: 'DRR write grants handed out by the worker.',
  grantedBytes: 'Bytes granted by the worker\'s DRR scheduler.',
  interactiveReads: 'Reads of interactive flows the worker did mid-turn, between bulk reads.',
  splicedBytes: 'Bytes the worker relayed with splice(2), without copying them through user space.',
  splicePipes: 'Pipes the worker holds for splicing now (its own, spares and lent ones).',
  lentPipes: 'Pipes lent now to flows whose destination is full.',
  largePipes: 'Pipes the worker holds enlarged to 256 KiB now (at most 4; the others hold the kernel\'s 64 KiB).',
  splicePipeLarge: '1 if the worker\'s next splice goes through one of its 256 KiB pipes, else 0.',
};

const STATUS_RE = /^status([1-5][0-9]{2})$/;
const BY_RE = /^(.+?)By([A-Z][A-Za-z0-9]*)$/;

/**
 * @param {string} key A camelCase key.
 * @returns {string} snake_case, only [a-z0-9_] (other characters become '_').
 */
function snake(key) {
  return String(key)
    .replace(/([a-z0-9])([A-Z])/g, '$1_$2')
    .replace(/([A-Z]+)([A-Z][a-z])/g, '$1_$2')
    .toLowerCase()
    .replace(/[^a-z0-9_]/g, '_');
}

/** @param {string} key @returns {boolean} Whether the field is a level rather than a count. */
function isGaugeKey(key, where) {
  if (GAUGE_PATHS.has(where ? `${where}.${key}` : key)) return true;
  return GAUGE_KEYS.has(key) || /^(active|pending|current)([A-Z]|$)|InUse$|Live$/.test(key);
}

/** @param {string} key An array's key. @returns {string} Its singular ('listeners' → 'listener'). */
function singular(key) {
  return key.length > 1 && key.endsWith('s') ? key.slice(0, -1) : key;
}

/**
 * @param {string} value A label value.
 * @returns {string} Escaped for the text format: \\ → \\\\, " → \\", line feed → \\n.
 */
function escapeLabelValue(value) {
  return String(value).replace(/\\/g, '\\\\').replace(/"/g, '\\"').replace(/\n/g, '\\n');
}

/** @param {string} text @returns {string} HELP text escaped (backslash, line feed). */
function escapeHelp(text) {
  return String(text).replace(/\\/g, '\\\\').replace(/\n/g, '\\n');
}

/** @param {number|bigint|boolean} v @returns {string} A sample value as the format writes it. */
function formatValue(v) {
  if (typeof v === 'boolean') return v ? '1' : '0';
  if (typeof v === 'bigint') return v.toString();
  if (Number.isNaN(v)) return 'NaN';
  if (v === Infinity) return '+Inf';
  if (v === -Infinity) return '-Inf';
  return String(v);
}

function isPlainObject(v) {
  return typeof v === 'object' && v !== null && !Array.isArray(v) && !ArrayBuffer.isView(v);
}

function isSampleValue(v) {
  return typeof v === 'number' || typeof v === 'bigint' || typeof v === 'boolean';
}

/**
 * An ordered set of metric families. Families keep the order in which they were first seen;
 * samples keep theirs.
 */
class Families {
  constructor(prefix) {
    this.prefix = prefix;
    /** @type {Map<string, { type: string, help: string, samples: { labels: [string, string][], value: string }[] }>} */
    this.map = new Map();
  }

  /**
   * Add one sample.
   * @param {string} base The name without prefix and without `_total`.
   * @param {'counter'|'gauge'} type
   * @param {string} help
   * @param {[string, string][]} labels
   * @param {number|bigint|boolean} value
   */
  add(base, type, help, labels, value) {
    const name = `${this.prefix}${base}${type === 'counter' ? '_total' : ''}`;
    let family = this.map.get(name);
    if (!family) {
      family = { type, help, samples: [], seen: new Set() };
      this.map.set(name, family);
    }
    // Two paths of an odd metrics object could map to one series (`tlsHandshakes` and
    // `tls.handshakes`): the first is kept, as a series may appear only once.
    const id = JSON.stringify(labels);
    if (family.seen.has(id)) return;
    family.seen.add(id);
    family.samples.push({ labels, value: formatValue(value) });
  }

  /** @returns {string} The exposition text (ends with a line feed; '' when empty). */
  text() {
    const out = [];
    for (const [name, f] of this.map) {
      out.push(`# HELP ${name} ${escapeHelp(f.help)}`);
      out.push(`# TYPE ${name} ${f.type}`);
      for (const s of f.samples) {
        const labels = s.labels.length ? `{${s.labels.map(([k, v]) => `${k}="${escapeLabelValue(v)}"`).join(',')}}` : '';
        out.push(`${name}${labels} ${s.value}`);
      }
    }
    return out.length ? `${out.join('\n')}\n` : '';
  }
}

/**
 * Walk one object, adding its samples.
 * @param {Families} fam
 * @param {object} obj
 * @param {string[]} names The name parts so far (snake_case).
 * @param {[string, string][]} labels Inherited labels.
 * @param {string} where A readable path for generic HELP texts.
 */
function walk(fam, obj, names, labels, where) {
  for (const key of Object.keys(obj)) {
    const value = obj[key];
    const path = where ? `${where}.${key}` : key;
    if (isSampleValue(value)) {
      const status = STATUS_RE.exec(key);
      if (status) {
        fam.add([...names, 'connect_responses'].join('_'), 'counter', helpFor('status', where),
          [...labels, ['status', status[1]]], value);
        continue;
      }
      const gauge = isGaugeKey(key, where) || typeof value === 'boolean';
      fam.add([...names, snake(key)].join('_'), gauge ? 'gauge' : 'counter', helpFor(key, where), labels, value);
    } else if (Array.isArray(value)) {
      walkArray(fam, value, key, names, labels, path);
    } else if (isPlainObject(value)) {
      const by = BY_RE.exec(key);
      if (by) {
        walkMap(fam, value, key, by[1], snake(by[2]), names, labels, where);
      } else {
        walk(fam, value, [...names, snake(key)], labels, path);
      }
    }
  }
}

/** `<base>By<Label>: { a: 1, b: { … } }` → samples of `base` labelled label="a", … */
function walkMap(fam, map, key, base, label, names, labels, where) {
  const baseName = snake(base);
  const help = HELP[base] ? helpFor(base, where) : `proxy.metrics() ${where ? `${where}.` : ''}${key}, by ${label}.`;
  const path = where ? `${where}.${key}` : key;
  for (const k of Object.keys(map)) {
    const v = map[k];
    const l = [...labels, [label, k]];
    if (isSampleValue(v)) {
      fam.add([...names, baseName].join('_'), isGaugeKey(base) ? 'gauge' : 'counter', help, l, v);
    } else if (isPlainObject(v)) {
      walk(fam, v, [...names, baseName], l, `${path}.${k}`);
    }
  }
}

/** An array: objects become labelled series, numbers series labelled by index. */
function walkArray(fam, arr, key, names, labels, where) {
  const one = singular(key);
  const labelName = snake(one);
  const childNames = [...names, labelName];
  const sets = arr.map((el, i) => (isPlainObject(el) ? elementLabels(el, labelName, i) : { labels: [[labelName, String(i)]], skip: new Set() }));
  const seen = new Set();
  let clash = false;
  for (const s of sets) {
    const id = JSON.stringify(s.labels);
    if (seen.has(id)) clash = true;
    seen.add(id);
  }
  arr.forEach((el, i) => {
    const own = clash ? [...sets[i].labels, ['index', String(i)]] : sets[i].labels;
    const l = [...labels, ...own.filter(([k]) => !labels.some(([have]) => have === k))];
    if (isSampleValue(el)) {
      fam.add(childNames.join('_'), isGaugeKey(key) ? 'gauge' : 'counter', helpFor(key, where.slice(0, -key.length).replace(/\.$/, '')), l, el);
    } else if (isPlainObject(el)) {
      for (const k of Object.keys(el)) {
        if (STATE_KEYS.has(k) && typeof el[k] === 'string') fam.add([...childNames, snake(k)].join('_'), 'gauge', `proxy.metrics() ${where}.${k}: 1 for the current one.`, [...l, [snake(k), el[k]]], 1);
      }
      const rest = {};
      for (const k of Object.keys(el)) if (!sets[i].skip.has(k)) rest[k] = el[k];
      walk(fam, rest, childNames, l, `${where}[]`);
    }
  });
}

/**
 * The labels of one array element and the keys they consumed.
 * @returns {{ labels: [string, string][], skip: Set<string> }}
 */
function elementLabels(el, labelName, index) {
  const labels = [];
  const skip = new Set();
  if (typeof el.host === 'string' && (typeof el.port === 'number' || typeof el.port === 'string')) {
    labels.push([labelName, hostPort(el.host, el.port)]);
    skip.add('host');
    skip.add('port');
  }
  for (const k of Object.keys(el)) {
    if (skip.has(k) || typeof el[k] !== 'string' || STATE_KEYS.has(k)) continue;
    labels.push([snake(k), el[k]]);
    skip.add(k);
  }
  if (labels.length === 0) labels.push([labelName, String(index)]);
  return { labels, skip };
}

/** 'host:port', IPv6 in brackets. */
function hostPort(host, port) {
  return `${host.includes(':') ? `[${host}]` : host}:${port}`;
}

function helpFor(key, where) {
  const text = HELP[key];
  const inner = /([A-Za-z0-9_$]+)\[\](?!.*\[\])/.exec(where || '');
  const scope = inner ? ` (per ${singular(inner[1])})` : '';
  if (text) return `${text.replace(/\.$/, '')}${scope}.`;
  return `proxy.metrics() ${where ? `${where}.` : ''}${key}.`;
}

/**
 * A metric family given whole, for values that are not in proxy.metrics() (build info,
 * start time, reloads).
 * @typedef {{ name: string, type: 'counter' | 'gauge', help: string,
 *   samples: { labels?: Record<string, string>, value: number }[] }} ExtraFamily
 *   `name` is the full name (a counter's includes `_total`).
 */

/**
 * Render a metrics object in the Prometheus text format 0.0.4.
 *
 * @param {object} metrics What `proxy.metrics()` returned (any nesting; see the file header).
 * @param {{ prefix?: string, extra?: ExtraFamily[] }} [options] `prefix` ['legato_'] starts
 *   every generated name; `extra` families are written first, as given.
 * @returns {string} The exposition text, ending with a line feed. Serve it with
 *   `Content-Type: text/plain; version=0.0.4; charset=utf-8`.
 * @throws {TypeError} When metrics is not an object.
 */
function metricsText(metrics, options = {}) {
  if (!isPlainObject(metrics)) throw new TypeError('metricsText(metrics): metrics must be an object (what proxy.metrics() returns)');
  const prefix = options.prefix === undefined ? 'legato_' : options.prefix;
  let head = '';
  if (options.extra) {
    const extraFam = new Families('');
    for (const f of options.extra) {
      const base = f.type === 'counter' ? f.name.replace(/_total$/, '') : f.name;
      for (const s of f.samples) extraFam.add(base, f.type, f.help, Object.entries(s.labels || {}), s.value);
    }
    head = extraFam.text();
  }
  const fam = new Families(prefix);
  walk(fam, metrics, [], [], '');
  return head + fam.text();
}

/** The content type of metricsText() output. */
const CONTENT_TYPE = 'text/plain; version=0.0.4; charset=utf-8';

module.exports = { metricsText, escapeLabelValue, snake, CONTENT_TYPE };
