'use strict';
// Helpers for the protection and PROXY protocol tests: a TLS listener routing every SNI (and no
// SNI) to a TCP echo server, probes from other loopback source addresses (127.0.0.2 ...), PROXY
// protocol v1/v2 headers as raw bytes, and a recorder of 'blocked' events.
//
// A probe is admitted when the echo of its ClientHello comes back through the proxy, refused when
// the proxy closes it without a byte: no timing decides either.

const net = require('net');
const { startProxy, trackSocket, portOf } = require('./proxy');
const { startEchoServer } = require('./servers');
const { buildClientHello } = require('./hello');

const REASONS = [
  'max_connections', 'cidr_blocked', 'penalty_boxed', 'rate_limited', 'too_many_connections',
  'no_sni', 'ja3_blocked', 'ja4_blocked', 'incomplete_handshake', 'route_rate_limited',
  'proxy_untrusted', 'proxy_header',
];

/**
 * An echo upstream and a started proxy with top-level `protection` and listener 0's `listener`
 * options (or `listeners`),
 * with a passthrough default route (plus `route` fields) to the echo. Resolves with
 * { proxy, port, echo }.
 */
async function startProtected({ protection, listener = {}, listeners, route = {}, top = {} } = {}) {
  const echo = await startEchoServer();
  const routes = [{ sni: '', terminateTls: false, upstreams: [{ kind: 'tcp', host: '127.0.0.1', port: echo.port }], ...route }];
  // Routes only beside a tls listener (with connect listeners alone they are refused).
  const all = listeners || [listener];
  const opts = { ...top, ...(all.some((l) => !l.kind || l.kind === 'tls') ? { routes } : {}) };
  // Top level, so that updateConfig({ protection }) replaces it.
  if (protection || top.protection) opts.protection = { ...top.protection, ...protection };
  if (listeners) opts.listeners = listeners;
  else opts.listener = listener;
  const proxy = await startProxy(opts);
  return { proxy, port: portOf(proxy), echo };
}

/** Connect to 127.0.0.1:port from `source`; resolves with the connected, tracked socket. */
function dial(port, source = '127.0.0.1', host = '127.0.0.1') {
  return new Promise((resolve, reject) => {
    const s = trackSocket(net.connect({ host, port, localAddress: source }));
    s.once('connect', () => resolve(s));
    s.once('error', reject);
  });
}

/**
 * Write `payload` and wait for either an echo of `expectedLen` bytes (admitted) or the close
 * (refused). Resolves with { admitted, socket, data }; an admitted socket is closed unless
 * `close` is false.
 */
function exchange(socket, payload, expectedLen = payload.length, { close = true, timeoutMs = 15000 } = {}) {
  return new Promise((resolve, reject) => {
    const chunks = [];
    let got = 0;
    let done = false;
    const timer = setTimeout(() => finish(new Error(`no echo and no close within ${timeoutMs} ms`)), timeoutMs);
    function finish(err, admitted) {
      if (done) return;
      done = true;
      clearTimeout(timer);
      socket.removeListener('data', onData);
      if (err) return reject(err);
      if (admitted && close) socket.destroy();
      return resolve({ admitted, socket, data: Buffer.concat(chunks) });
    }
    function onData(c) {
      chunks.push(c);
      got += c.length;
      if (got >= expectedLen) finish(null, true);
    }
    socket.on('data', onData);
    socket.once('close', () => finish(null, false));
    socket.on('error', () => {});
    socket.write(payload);
  });
}

/**
 * Connect from `source`, send a ClientHello with SNI `sni` (or `bytes`), after `prefix` (a PROXY
 * header) when given; resolves with { admitted, socket }.
 */
async function probe(port, source = '127.0.0.1', { bytes, close = true, sni = 'a.test', prefix, timeoutMs } = {}) {
  let s;
  try {
    s = await dial(port, source);
  } catch (err) {
    if (err.code === 'ECONNRESET') return { admitted: false, socket: null };
    throw err;
  }
  const body = bytes || buildClientHello({ sni });
  const payload = prefix ? Buffer.concat([prefix, body]) : body;
  return exchange(s, payload, body.length, { close, timeoutMs });
}

/** `n` probes in sequence; resolves with how many were admitted. */
async function probeMany(port, source, n, opts) {
  let admitted = 0;
  for (let i = 0; i < n; i++) {
    if ((await probe(port, source, opts)).admitted) admitted++;
  }
  return admitted;
}

/** Record the proxy's 'blocked' events into an array (`events.forReason(r)` filters). */
function recordBlocked(proxy) {
  const events = [];
  proxy.on('blocked', (e) => events.push({ ...e, at: Date.now() }));
  events.forReason = (reason, ip) => events.filter((e) => e.reason === reason && (ip === undefined || e.ip === ip));
  events.total = (reason, ip) => events.forReason(reason, ip).reduce((a, e) => a + e.count, 0);
  return events;
}

/** The listener's blockedByReason (or the total when `listener` is undefined). */
function blocked(proxy, listener) {
  const m = proxy.metrics();
  return listener === undefined ? m.blockedByReason : m.listeners[listener].blockedByReason;
}

/** An IPv4 or IPv6 text address's family for PROXY v1 ('TCP4' / 'TCP6'). */
function v1Proto(ip) {
  return net.isIPv6(ip) ? 'TCP6' : 'TCP4';
}

/** A PROXY protocol v1 header for a TCP connection from src:sport to dst:dport. */
function proxyV1(src, sport = 40000, dst = net.isIPv6(src) ? '::1' : '127.0.0.1', dport = 443) {
  return Buffer.from(`PROXY ${v1Proto(src)} ${src} ${dst} ${sport} ${dport}\r\n`, 'latin1');
}

const V2_SIG = Buffer.from([0x0d, 0x0a, 0x0d, 0x0a, 0x00, 0x0d, 0x0a, 0x51, 0x55, 0x49, 0x54, 0x0a]);

function ipBytes(ip) {
  if (net.isIPv4(ip)) return Buffer.from(ip.split('.').map(Number));
  // Expand an IPv6 text address into 16 bytes (handles '::' and an embedded IPv4 tail).
  let text = ip;
  const v4 = /(\d+\.\d+\.\d+\.\d+)$/.exec(text);
  if (v4) {
    const b = v4[1].split('.').map(Number);
    text = text.slice(0, -v4[1].length) + `${((b[0] << 8) | b[1]).toString(16)}:${((b[2] << 8) | b[3]).toString(16)}`;
  }
  const [head, tail] = text.split('::');
  const h = head ? head.split(':') : [];
  const t = tail !== undefined && tail !== '' ? tail.split(':') : [];
  const groups = tail === undefined ? h : [...h, ...Array(8 - h.length - t.length).fill('0'), ...t];
  const out = Buffer.alloc(16);
  groups.forEach((g, i) => out.writeUInt16BE(parseInt(g, 16), 2 * i));
  return out;
}

/**
 * A PROXY protocol v2 header. `command` 'PROXY' (default) or 'LOCAL'; `family` 'tcp4' | 'tcp6' |
 * 'unix' | 'unspec' (default from src); `tlvs` bytes appended after the addresses.
 */
function proxyV2({ src = '127.0.0.1', dst, sport = 40000, dport = 443, command = 'PROXY', family, tlvs = Buffer.alloc(0), version = 2 } = {}) {
  const fam = family || (net.isIPv6(src) ? 'tcp6' : 'tcp4');
  let addr;
  let famByte;
  if (fam === 'tcp4') {
    famByte = 0x11;
    addr = Buffer.alloc(12);
    ipBytes(src).copy(addr, 0);
    ipBytes(dst || '127.0.0.1').copy(addr, 4);
    addr.writeUInt16BE(sport, 8);
    addr.writeUInt16BE(dport, 10);
  } else if (fam === 'tcp6') {
    famByte = 0x21;
    addr = Buffer.alloc(36);
    ipBytes(src).copy(addr, 0);
    ipBytes(dst || '::1').copy(addr, 16);
    addr.writeUInt16BE(sport, 32);
    addr.writeUInt16BE(dport, 34);
  } else if (fam === 'unix') {
    famByte = 0x31;
    addr = Buffer.alloc(216);
    addr.write('/tmp/prot2-src.sock', 0);
    addr.write('/tmp/prot2-dst.sock', 108);
  } else {
    famByte = 0x00;
    addr = Buffer.alloc(0);
  }
  const body = Buffer.concat([addr, tlvs]);
  const hdr = Buffer.alloc(16);
  V2_SIG.copy(hdr, 0);
  hdr[12] = (version << 4) | (command === 'LOCAL' ? 0 : 1);
  hdr[13] = famByte;
  hdr.writeUInt16BE(body.length, 14);
  return Buffer.concat([hdr, body]);
}

/** A TLV (type, value) for a v2 header. */
function tlv(type, value) {
  const b = Buffer.alloc(3);
  b[0] = type;
  b.writeUInt16BE(value.length, 1);
  return Buffer.concat([b, value]);
}

module.exports = {
  REASONS, startProtected, dial, exchange, probe, probeMany, recordBlocked, blocked,
  proxyV1, proxyV2, tlv, ipBytes, V2_SIG,
};
