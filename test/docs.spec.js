'use strict';
// The README option tables and index.d.ts say what the engine does: their defaults are held to
// lib/config.js's DEFAULTS and their ranges to the bounds C owns (LIMITS, exported by the
// binding from src/lg_limits.h). A default or a bound changed in one place and not in the docs
// fails here.
const assert = require('assert');
const fs = require('fs');
const path = require('path');
const { DEFAULTS, LIMITS } = require('../lib/config');

const root = path.join(__dirname, '..');
const readme = fs.readFileSync(path.join(root, 'README.md'), 'utf8');
const dts = fs.readFileSync(path.join(root, 'index.d.ts'), 'utf8');

/** README option tables, by section heading: Map(option → { dflt, meaning }). */
function readmeTables() {
  const sections = new Map();
  let heading = '';
  for (const line of readme.split('\n')) {
    const h = /^#{2,4} (.+)$/.exec(line);
    if (h) {
      heading = h[1].trim();
      continue;
    }
    const cells = line.startsWith('| `') ? line.split('|').slice(1, -1).map((c) => c.trim()) : null;
    if (!cells || cells.length < 3) continue;
    if (!sections.has(heading)) sections.set(heading, new Map());
    for (const m of cells[0].matchAll(/`([A-Za-z0-9.]+)`/g)) {
      sections.get(heading).set(m[1], { dflt: cells[1], meaning: cells.slice(2).join(' | ') });
    }
  }
  return sections;
}

/** index.d.ts: Map(interface → Map(property → its doc comment)). */
function dtsInterfaces() {
  const out = new Map();
  for (const m of dts.matchAll(/interface (\w+)[^{]*\{([\s\S]*?)\n\}/g)) {
    const props = new Map();
    for (const p of m[2].matchAll(/\/\*\*([\s\S]*?)\*\/\s*(\w+)\??:/g)) {
      props.set(p[2], p[1].replace(/\s*\n\s*\*\s*/g, ' ').trim());
    }
    out.set(m[1], props);
  }
  return out;
}

/** Bytes as the README writes them: 1 KiB, 16 MiB, 1 GiB. */
function bytes(n) {
  for (const [unit, size] of [['GiB', 2 ** 30], ['MiB', 2 ** 20], ['KiB', 2 ** 10]]) {
    if (n >= size && n % size === 0) return `${n / size} ${unit}`;
  }
  return String(n);
}

const q = (s) => `'${s}'`;

// [README section, option, default text expected in the default cell (or null), texts expected in
//  the meaning cell].
const README_ROWS = [
  ['Top level', 'listeners', null, [`1–${LIMITS.maxListeners}`]],
  ['Top level', 'routes', null, [`≤ ${LIMITS.maxRoutes.toLocaleString('en-US')}`]],
  ['Top level', 'workerThreads', null, [`1–${LIMITS.maxWorkerThreads}`]],
  ['Top level', 'workerPriority', `\`${q('normal')}\``, ['`SCHED_FIFO` at priority 1', '`CAP_SYS_NICE`', '`RLIMIT_RTPRIO`']],
  ['Top level', 'readBufferSize', String(DEFAULTS.readBufferSize), [`${bytes(LIMITS.minReadBufferSize)}–${bytes(LIMITS.maxReadBufferSize)}`]],
  ['Top level', 'scheduler.kind', `\`${q(DEFAULTS.schedulerKind)}\``, []],
  ['Top level', 'scheduler.maxQueuedBytesPerFlow', String(DEFAULTS.maxQueuedBytesPerFlow), [`${bytes(LIMITS.minQueuedBytesPerFlow)}–${bytes(LIMITS.maxQueuedBytesPerFlow)}`]],
  ['Listener', 'host', null, [], [q(DEFAULTS.tlsHost), q(DEFAULTS.connectHost)]],
  ['Listener', 'port', 'required', ['0–65535']],
  ['Listener', 'maxConnections', null, [], [`${DEFAULTS.tlsMaxConnections} = unlimited (tls)`, `${DEFAULTS.connectMaxConnections} (connect)`]],
  ['Listener', 'idleTimeoutMs', String(DEFAULTS.idleTimeoutMs), []],
  ['Connect listener: `connect`', 'connectTimeoutMs', String(DEFAULTS.connectTimeoutMs), []],
  ['Connect listener: `connect`', 'headTimeoutMs', String(DEFAULTS.headTimeoutMs), [`1-${LIMITS.maxConnectTimeoutMs}`]],
  ['Route', 'alpn', `\`[${DEFAULTS.alpn.map(q).join(', ')}]\``, []],
  ['Route', 'suspendTimeoutMs', String(DEFAULTS.suspendTimeoutMs), []],
  ['Top level', 'halfCloseTimeoutMs', String(DEFAULTS.halfCloseTimeoutMs), []],
  ['Top level', 'tcpKeepalive', `\`{ idleMs: ${DEFAULTS.keepaliveIdleMs}, intervalMs: ${DEFAULTS.keepaliveIntervalMs}, count: ${DEFAULTS.keepaliveCount} }\``, []],
  ['Top level', 'resolveIntervalMs', String(DEFAULTS.resolveIntervalMs), []],
  ['Route', 'balance', `\`${q(DEFAULTS.balance)}\``, []],
  ['Route', 'connectTimeoutMs', String(DEFAULTS.connectTimeoutMs), [`1-${LIMITS.maxConnectTimeoutMs}`]],
  ['Route', 'retries', String(DEFAULTS.retries), [`0-${LIMITS.maxRetries}`]],
  ['Route', 'maxFails', String(DEFAULTS.maxFails), [`0-${LIMITS.maxFails}`]],
  ['Route', 'failTimeoutMs', String(DEFAULTS.failTimeoutMs), [`1-${LIMITS.maxFailTimeoutMs}`]],
  ['Protection', 'tlsHandshakeTimeoutMs', String(DEFAULTS.tlsHandshakeTimeoutMs), []],
  ['Protection', 'penaltyBox', '`null`', [`durationMs = ${DEFAULTS.penaltyBoxMs}`]],
  ['Protection', 'ipv6Prefix', String(DEFAULTS.ipv6Prefix), ['1–128']],
  ['Protection', 'maxTrackedIps', String(DEFAULTS.maxTrackedIps), []],
  ['Protection', 'allowlist', '`[]`', [`at most ${LIMITS.maxCidrListEntries.toLocaleString('en-US')}`]],
  ['Listener', 'acceptProxyProtocol', `\`${q(DEFAULTS.acceptProxyProtocol)}\``, []],
  ['Listener', 'scheduler.weight', String(DEFAULTS.weight), [`1–${LIMITS.maxSchedulerWeight}`]],
  ['Route', 'scheduler.weight', 'the listener\'s', [`1–${LIMITS.maxSchedulerWeight}`]],
  ['Listener', 'reusePort', `\`${q(DEFAULTS.reusePort)}\``, ["'share'", 'EADDRINUSE']],
  ['Connect listener: `connect`', 'auth', '`null`', []],
  ['Connect listener: `connect`', 'auth.realm', `\`${q(DEFAULTS.authRealm)}\``, [`1–${LIMITS.maxAuthRealmLength}`]],
  ['Connect listener: `connect`', 'auth.failureLimit', `\`{ perMinute: ${DEFAULTS.authFailureLimit.perMinute}, burst: ${DEFAULTS.authFailureLimit.burst} }\``, [`1–${LIMITS.maxAuthFailuresPerMinute}`, `1–${LIMITS.maxAuthFailureBurst}`]],
  ['Connect listener: `connect`', 'auth.users', 'required', [`1–${LIMITS.maxAuthUsers.toLocaleString('en-US')}`, `1–${LIMITS.maxAuthNameLength} bytes`]],
];

// [interface, property, @default text, texts expected in the comment].
const DTS_PROPS = [
  ['ProxyConfig', 'workerThreads', 'os.availableParallelism()', [`1-${LIMITS.maxWorkerThreads}`]],
  ['ProxyConfig', 'workerPriority', q('normal'), ['SCHED_FIFO at priority 1', 'CAP_SYS_NICE']],
  ['ProxyConfig', 'readBufferSize', String(DEFAULTS.readBufferSize), [`${LIMITS.minReadBufferSize}-${LIMITS.maxReadBufferSize}`]],
  ['SchedulerOptions', 'kind', q(DEFAULTS.schedulerKind), []],
  ['SchedulerOptions', 'quantum', q('auto'), [`1-${LIMITS.maxQuantum}`]],
  ['SchedulerOptions', 'maxQueuedBytesPerFlow', String(DEFAULTS.maxQueuedBytesPerFlow), [`${LIMITS.minQueuedBytesPerFlow}-${LIMITS.maxQueuedBytesPerFlow}`]],
  ['TlsListenerOptions', 'host', q(DEFAULTS.tlsHost), []],
  ['ConnectListenerOptions', 'host', q(DEFAULTS.connectHost), []],
  ['ListenerCommon', 'port', null, ['0-65535']],
  ['ListenerCommon', 'maxConnections', `${DEFAULTS.tlsMaxConnections} (tls), ${DEFAULTS.connectMaxConnections} (connect)`, []],
  ['ListenerCommon', 'idleTimeoutMs', String(DEFAULTS.idleTimeoutMs), []],
  ['ConnectOptions', 'allowPorts', `[${DEFAULTS.allowPorts.join(', ')}]`, ['1-65535']],
  ['ConnectOptions', 'connectTimeoutMs', String(DEFAULTS.connectTimeoutMs), [`1-${LIMITS.maxConnectTimeoutMs}`]],
  ['ConnectOptions', 'headTimeoutMs', String(DEFAULTS.headTimeoutMs), [`1-${LIMITS.maxConnectTimeoutMs}`]],
  ['ProtectionOptions', 'tlsHandshakeTimeoutMs', String(DEFAULTS.tlsHandshakeTimeoutMs), [`1-${LIMITS.maxHandshakeTimeoutMs}`]],
  ['RouteOptions', 'alpn', `[${DEFAULTS.alpn.map(q).join(', ')}]`, [`1-${LIMITS.maxAlpnLength} bytes`]],
  ['RouteOptions', 'suspendTimeoutMs', String(DEFAULTS.suspendTimeoutMs), []],
  ['UdsUpstream', 'ipAffinityTtlMs', String(DEFAULTS.ipAffinityTtlMs), []],
  ['UdsUpstream', 'weight', String(DEFAULTS.weight), [`1-${LIMITS.maxWeight}`]],
  ['TcpUpstream', 'weight', String(DEFAULTS.weight), [`1-${LIMITS.maxWeight}`]],
  ['DialOptions', 'balance', q(DEFAULTS.balance), []],
  ['DialOptions', 'retries', String(DEFAULTS.retries), [`0-${LIMITS.maxRetries}`]],
  ['DialOptions', 'maxFails', String(DEFAULTS.maxFails), [`0-${LIMITS.maxFails}`]],
  ['DialOptions', 'failTimeoutMs', String(DEFAULTS.failTimeoutMs), [`1-${LIMITS.maxFailTimeoutMs}`]],
  ['PenaltyBoxOptions', 'durationMs', String(DEFAULTS.penaltyBoxMs), []],
  ['ProtectionOptions', 'ipv6Prefix', String(DEFAULTS.ipv6Prefix), ['1-128']],
  ['ProtectionOptions', 'maxTrackedIps', String(DEFAULTS.maxTrackedIps), []],
  ['ListenerCommon', 'acceptProxyProtocol', q(DEFAULTS.acceptProxyProtocol), []],
  ['FlowSchedulerOptions', 'weight', `${DEFAULTS.weight} (a route: its listener's)`, [`1-${LIMITS.maxSchedulerWeight}`]],
  ['ListenerCommon', 'reusePort', q(DEFAULTS.reusePort), ['EADDRINUSE']],
  ['ConnectOptions', 'auth', 'null', []],
  ['ConnectAuthOptions', 'realm', q(DEFAULTS.authRealm), [`1-${LIMITS.maxAuthRealmLength}`]],
  ['ConnectAuthOptions', 'users', null, [`1-${LIMITS.maxAuthUsers}`]],
  ['ConnectAuthOptions', 'failureLimit', `{ perMinute: ${DEFAULTS.authFailureLimit.perMinute}, burst: ${DEFAULTS.authFailureLimit.burst} }`, [`1-${LIMITS.maxAuthFailuresPerMinute}`, `1-${LIMITS.maxAuthFailureBurst}`]],
  ['ConnectAuthUser', 'name', null, [`1-${LIMITS.maxAuthNameLength} bytes`]],
];

// DEFAULTS keys checked elsewhere or with no table row, and why.
const NOT_IN_TABLES = {
  minSchedulerBurst: 'scheduler.burst default (Math.max(rate, 65536)), checked below',
};

describe('documentation holds to DEFAULTS and LIMITS', () => {
  const tables = readmeTables();
  const ifaces = dtsInterfaces();

  it('LIMITS come from the engine (src/lg_limits.h) and are frozen', () => {
    assert.ok(Object.isFrozen(LIMITS));
    assert.strictEqual(LIMITS, require('../lib/binding').limits);
    for (const [k, v] of Object.entries(LIMITS)) assert.ok(Number.isSafeInteger(v) && v > 0, k);
  });

  for (const [section, option, dflt, inMeaning, inDefault = []] of README_ROWS) {
    it(`README "${section}" table: ${option}`, () => {
      const rows = tables.get(section);
      assert.ok(rows, `README has no table under "### ${section}"`);
      const row = rows.get(option);
      assert.ok(row, `README "${section}" table has no row for ${option}`);
      if (dflt !== null) assert.strictEqual(row.dflt, dflt, `${option}: README default`);
      for (const t of inDefault) assert.ok(row.dflt.includes(t), `${option}: README default cell lacks ${t}: ${row.dflt}`);
      for (const t of inMeaning) assert.ok(row.meaning.includes(t), `${option}: README says ${row.meaning}; expected ${t}`);
    });
  }

  for (const [iface, prop, dflt, inComment] of DTS_PROPS) {
    it(`index.d.ts ${iface}.${prop}`, () => {
      const props = ifaces.get(iface);
      assert.ok(props, `index.d.ts has no interface ${iface}`);
      const doc = props.get(prop);
      assert.ok(doc !== undefined, `index.d.ts ${iface} has no documented ${prop}`);
      if (dflt !== null) {
        const m = /@default (.+?)\s*$/.exec(doc);
        assert.ok(m, `${iface}.${prop}: no @default`);
        assert.strictEqual(m[1], dflt, `${iface}.${prop}: @default`);
      }
      for (const t of inComment) assert.ok(doc.includes(t), `${iface}.${prop}: "${doc}" lacks ${t}`);
    });
  }

  it('every default is held to the docs somewhere', () => {
    const used = JSON.stringify([README_ROWS, DTS_PROPS]);
    for (const [key, value] of Object.entries(DEFAULTS)) {
      if (NOT_IN_TABLES[key]) continue;
      const text = Array.isArray(value) ? value.join(', ')
        : typeof value === 'object' ? `{ ${Object.entries(value).map(([k, v]) => `${k}: ${v}`).join(', ')} }` // as the docs write it
          : String(value);
      assert.ok(used.includes(text), `DEFAULTS.${key} (${text}) is checked against no README row or index.d.ts property`);
    }
    const burst = ifaces.get('SchedulerOptions').get('burst');
    assert.ok(burst.includes(`Math.max(rate, ${DEFAULTS.minSchedulerBurst})`), burst);
  });
});
