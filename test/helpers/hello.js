'use strict';
// TLS ClientHello bytes for tests: capture a real one from Node's TLS client, build one by hand
// (for SNI values and sizes a real client will not send), and re-frame one into several TLS
// records (RFC 8446 §5.1 allows a handshake message to be fragmented over records).
//
// Wire format reminders:
//   record    = type(1)=0x16 | version(2) | length(2) | body
//   handshake = msg_type(1)=0x01 | length(3) | ClientHello body

const net = require('net');
const tls = require('tls');
const crypto = require('crypto');

const RECORD_HEADER = 5;
const HS_HEADER = 4;

/**
 * Length of the complete first handshake message's records at the start of `buf` (whole
 * records), or -1 if more bytes are needed.
 */
function helloRecordsLength(buf) {
  let off = 0;
  let hs = Buffer.alloc(0);
  while (off + RECORD_HEADER <= buf.length) {
    const len = buf.readUInt16BE(off + 3);
    if (off + RECORD_HEADER + len > buf.length) return -1;
    hs = Buffer.concat([hs, buf.subarray(off + RECORD_HEADER, off + RECORD_HEADER + len)]);
    off += RECORD_HEADER + len;
    if (hs.length >= HS_HEADER && hs.length >= HS_HEADER + hs.readUIntBE(1, 3)) return off;
  }
  return -1;
}

/**
 * Capture the ClientHello Node's TLS client sends for `servername`: the exact bytes of the
 * record(s) that carry it. The TLS client is torn down right after.
 * @param {string|null} servername
 * @returns {Promise<Buffer>}
 */
function captureClientHello(servername, tlsOpts = {}) {
  return new Promise((resolve, reject) => {
    let client = null;
    const server = net.createServer((socket) => {
      let buf = Buffer.alloc(0);
      socket.on('data', (d) => {
        buf = Buffer.concat([buf, d]);
        const n = helloRecordsLength(buf);
        if (n < 0) return;
        socket.destroy();
        client.destroy();
        server.close();
        resolve(buf.subarray(0, n));
      });
      socket.on('error', () => {});
    });
    server.on('error', reject);
    server.listen(0, '127.0.0.1', () => {
      const opts = { host: '127.0.0.1', port: server.address().port, rejectUnauthorized: false, ...tlsOpts };
      if (servername !== null) opts.servername = servername;
      client = tls.connect(opts);
      client.on('error', () => {});
    });
  });
}

/** The TLS records in `buf`: [{ type, version, body }] (a trailing partial record is ignored). */
function parseRecords(buf) {
  const out = [];
  let off = 0;
  while (off + RECORD_HEADER <= buf.length) {
    const len = buf.readUInt16BE(off + 3);
    if (off + RECORD_HEADER + len > buf.length) break;
    out.push({ type: buf[off], version: buf.readUInt16BE(off + 1), body: buf.subarray(off + RECORD_HEADER, off + RECORD_HEADER + len) });
    off += RECORD_HEADER + len;
  }
  return out;
}

function recordHeader(type, version, len) {
  const h = Buffer.alloc(RECORD_HEADER);
  h[0] = type;
  h.writeUInt16BE(version, 1);
  h.writeUInt16BE(len, 3);
  return h;
}

/**
 * Re-frame a one-record ClientHello into several records, splitting the handshake bytes at the
 * given offsets (into the handshake message, header included). Record version is kept.
 * @param {Buffer} hello  one complete record
 * @param {number[]} splits ascending offsets, each 0 < s < handshake length
 */
function reframe(hello, splits) {
  const recs = parseRecords(hello);
  if (recs.length !== 1) throw new Error(`reframe: expected one record, got ${recs.length}`);
  const { type, version, body } = recs[0];
  const parts = [];
  let prev = 0;
  for (const s of [...splits, body.length]) {
    if (s <= prev || s > body.length) throw new Error(`reframe: bad split ${s}`);
    parts.push(recordHeader(type, version, s - prev), body.subarray(prev, s));
    prev = s;
  }
  return Buffer.concat(parts);
}

/** Offset of `name` (ASCII) inside the handshake body of a one-record hello, or -1. */
function offsetInHandshake(hello, name) {
  return parseRecords(hello)[0].body.indexOf(Buffer.from(name, 'latin1'));
}

function u16(n) { const b = Buffer.alloc(2); b.writeUInt16BE(n); return b; }
function u24(n) { const b = Buffer.alloc(3); b.writeUIntBE(n, 0, 3); return b; }
function ext(type, data) { return Buffer.concat([u16(type), u16(data.length), data]); }

/**
 * Build a minimal TLS 1.2-style ClientHello record by hand.
 * @param {{ sni?: string|Buffer|null, handshakeLength?: number, recordVersion?: number }} opts
 *   sni: the host_name bytes as sent (no validation); handshakeLength: pad (extension 21) so the
 *   handshake message, its 4-byte header included, is exactly this long.
 */
function buildClientHello({ sni = null, handshakeLength, recordVersion = 0x0301 } = {}) {
  const exts = [];
  if (sni !== null) {
    const name = Buffer.isBuffer(sni) ? sni : Buffer.from(sni, 'latin1');
    const entry = Buffer.concat([Buffer.from([0]), u16(name.length), name]);
    exts.push(ext(0x0000, Buffer.concat([u16(entry.length), entry])));
  }
  exts.push(ext(0x000b, Buffer.from([1, 0]))); // ec_point_formats: uncompressed
  exts.push(ext(0x000a, Buffer.concat([u16(2), u16(0x0017)]))); // supported_groups: secp256r1
  const head = Buffer.concat([
    u16(0x0303), crypto.randomBytes(32), Buffer.from([0]), // version, random, empty session id
    u16(4), u16(0xc02f), u16(0x009c), // cipher suites
    Buffer.from([1, 0]), // compression: null
  ]);
  const fixed = HS_HEADER + head.length + 2 + exts.reduce((a, e) => a + e.length, 0);
  if (handshakeLength !== undefined) {
    const pad = handshakeLength - fixed - 4; // the padding extension's own 4-byte header
    if (pad < 0) throw new Error(`buildClientHello: ${handshakeLength} is too small (min ${fixed + 4})`);
    exts.push(ext(0x0015, Buffer.alloc(pad)));
  }
  const extBlock = Buffer.concat(exts);
  const body = Buffer.concat([head, u16(extBlock.length), extBlock]);
  const hs = Buffer.concat([Buffer.from([1]), u24(body.length), body]);
  if (hs.length > 0xffff) throw new Error('buildClientHello: too big for one record');
  return Buffer.concat([recordHeader(0x16, recordVersion, hs.length), hs]);
}

module.exports = {
  RECORD_HEADER, HS_HEADER, helloRecordsLength, captureClientHello, parseRecords, reframe,
  offsetInHandshake, buildClientHello, recordHeader,
};
