'use strict';
// ja_reference.js — an independent JA3 / JA4 reference, used to produce the expected strings
// that test/c/test_ja.c embeds. It shares no code with src/lg_hello.c or src/lg_ja.c: it parses
// the raw client bytes itself (records → ClientHello → extensions) and follows the published
// specifications directly:
//   JA3  salesforce/ja3 README and python/ja3.py: "SSLVersion,Ciphers,Extensions,EllipticCurves,
//        EllipticCurvePointFormats", decimal values joined by '-', GREASE removed, MD5 of that.
//   JA4  FoxIO-LLC/ja4 technical_details/JA4.md (TLS over TCP, "t"): part a, then the first 12
//        hex digits of SHA-256 over the sorted cipher list (b) and over the sorted extension list
//        without SNI/ALPN, '_', signature algorithms in wire order (c); "000000000000" for an
//        empty list. GREASE (RFC 8701) is ignored everywhere, signature algorithms included.
//
// Before any output it checks itself against published vectors (the JA3 README examples, the
// JA4 spec's worked example, and a Chrome 143 hello as reported by browserleaks), and exits 1 if
// one does not match.
//
//   node test/c/ja_reference.js FILE...             one JSON line per file
//   node test/c/ja_reference.js --c NAME=FILE...    C arrays and expectation rows for test_ja.c
//   node test/c/ja_reference.js --write-synthetic DIR   write the synthetic seeds (see below)
const crypto = require('crypto');
const fs = require('fs');
const path = require('path');

// RFC 8701 §2: the 16 reserved values 0x0A0A, 0x1A1A, ..., 0xFAFA.
const GREASE = new Set(Array.from({ length: 16 }, (_, i) => 0x0a0a + i * 0x1010));
const notGrease = (v) => !GREASE.has(v);

// JA4.md "TLS and DTLS Version". 0x0200 is what the reference implementations (Rust, Python)
// map to "s2"; the spec's table writes SSL 2.0 as 0x0002. Both are mapped.
const JA4_VERSIONS = new Map([
  [0x0304, '13'], [0x0303, '12'], [0x0302, '11'], [0x0301, '10'], [0x0300, 's3'],
  [0x0200, 's2'], [0x0002, 's2'], [0xfeff, 'd1'], [0xfefd, 'd2'], [0xfefc, 'd3'],
]);

/** Reassemble the first handshake message from TLS records and parse it as a ClientHello. */
function parseClientHello(raw) {
  const chunks = [];
  let got = 0;
  let need = Infinity;
  let off = 0;
  while (got < need) {
    if (off + 5 > raw.length) throw new Error('truncated record header');
    if (raw[off] !== 0x16) throw new Error('not a handshake record');
    const len = raw.readUInt16BE(off + 3);
    const body = raw.subarray(off + 5, off + 5 + len);
    if (body.length !== len) throw new Error('truncated record');
    chunks.push(body);
    got += len;
    off += 5 + len;
    if (need === Infinity && got >= 4) {
      const hs = Buffer.concat(chunks);
      if (hs[0] !== 1) throw new Error('not a ClientHello');
      need = 4 + hs.readUIntBE(1, 3);
    }
  }
  const msg = Buffer.concat(chunks).subarray(4, need);
  let p = 0;
  const u8 = () => msg[p++];
  const u16 = () => { const v = msg.readUInt16BE(p); p += 2; return v; };
  const vec = (lenBytes) => {
    const n = msg.readUIntBE(p, lenBytes);
    p += lenBytes;
    const v = msg.subarray(p, p + n);
    if (v.length !== n) throw new Error('truncated vector');
    p += n;
    return v;
  };
  const u16s = (b) => Array.from({ length: b.length / 2 }, (_, i) => b.readUInt16BE(i * 2));

  const h = {
    version: u16(), ciphers: [], exts: [], groups: [], pointFormats: [], sigalgs: [],
    versions: null, alpn: null,
  };
  p += 32; // random
  vec(1); // legacy_session_id
  h.ciphers = u16s(vec(2));
  vec(1); // compression methods
  if (p === msg.length) return h;
  const exts = vec(2);
  let q = 0;
  while (q < exts.length) {
    const type = exts.readUInt16BE(q);
    const len = exts.readUInt16BE(q + 2);
    const body = exts.subarray(q + 4, q + 4 + len);
    q += 4 + len;
    h.exts.push(type);
    if (type === 10) h.groups = u16s(body.subarray(2, 2 + body.readUInt16BE(0)));
    if (type === 11) h.pointFormats = Array.from(body.subarray(1, 1 + body[0]));
    if (type === 13) h.sigalgs = u16s(body.subarray(2, 2 + body.readUInt16BE(0)));
    if (type === 43) h.versions = u16s(body.subarray(1, 1 + body[0]));
    if (type === 16) {
      const list = body.subarray(2, 2 + body.readUInt16BE(0));
      h.alpn = [];
      for (let r = 0; r < list.length; r += 1 + list[r]) h.alpn.push(list.subarray(r + 1, r + 1 + list[r]));
    }
  }
  return h;
}

/** JA3 pre-hash string (salesforce/ja3). */
function ja3String(h) {
  return [
    String(h.version),
    h.ciphers.filter(notGrease).join('-'),
    h.exts.filter(notGrease).join('-'),
    h.groups.filter(notGrease).join('-'),
    h.pointFormats.join('-'), // 8-bit values: no GREASE value can occur
  ].join(',');
}

const hex4 = (v) => v.toString(16).padStart(4, '0');
const two = (n) => String(Math.min(n, 99)).padStart(2, '0');
const isAlnum = (byte) => /^[0-9A-Za-z]$/.test(String.fromCharCode(byte));

/** JA4 ALPN characters (JA4.md "ALPN Extension Value"). */
function ja4Alpn(h) {
  if (!h.alpn || h.alpn.length === 0 || h.alpn[0].length === 0) return '00';
  const v = h.alpn[0];
  const first = v[0];
  const last = v[v.length - 1];
  if (isAlnum(first) && isAlnum(last)) return String.fromCharCode(first, last);
  const hx = v.toString('hex');
  return hx[0] + hx[hx.length - 1];
}

/** JA4 parts: a, and the pre-hash inputs b and c (JA4.md). */
function ja4Parts(h) {
  let version = h.version;
  const sv = (h.versions || []).filter(notGrease);
  if (sv.length > 0) version = Math.max(...sv);
  const ciphers = h.ciphers.filter(notGrease);
  const exts = h.exts.filter(notGrease);
  const a = 't' + (JA4_VERSIONS.get(version) || '00') + (h.exts.includes(0) ? 'd' : 'i') +
    two(ciphers.length) + two(exts.length) + ja4Alpn(h);
  const b = ciphers.map(hex4).sort().join(',');
  const extList = exts.filter((e) => e !== 0x0000 && e !== 0x0010).map(hex4).sort();
  const sigs = h.sigalgs.filter(notGrease).map(hex4);
  let c = '';
  if (extList.length > 0) c = extList.join(',') + (sigs.length ? '_' + sigs.join(',') : '');
  return { a, b, c };
}

const sha12 = (s) => (s === '' ? '000000000000' : crypto.createHash('sha256').update(s).digest('hex').slice(0, 12));
const md5 = (s) => crypto.createHash('md5').update(s).digest('hex');

function fingerprints(raw) {
  const h = parseClientHello(raw);
  const ja3 = ja3String(h);
  const { a, b, c } = ja4Parts(h);
  return {
    ja3, ja3_md5: md5(ja3), a, b, c,
    ja4: `${a}_${sha12(b)}_${sha12(c)}`, ja4_r: `${a}_${b}_${c}`,
    b_sha256: b ? crypto.createHash('sha256').update(b).digest('hex') : '',
    c_sha256: c ? crypto.createHash('sha256').update(c).digest('hex') : '',
  };
}

// ------------------------------------------------------------------------------------------
// Synthetic ClientHellos (GREASE and limits no local client produces).

function hello({ version = 0x0303, ciphers, exts }) {
  const u16 = (v) => Buffer.from([v >> 8, v & 0xff]);
  const vec16 = (b) => Buffer.concat([u16(b.length), b]);
  const extBytes = Buffer.concat(exts.map(([t, body]) => Buffer.concat([u16(t), vec16(body)])));
  const body = Buffer.concat([
    u16(version), Buffer.alloc(32, 0x11), Buffer.from([0]),
    vec16(Buffer.concat(ciphers.map(u16))), Buffer.from([1, 0]), vec16(extBytes),
  ]);
  const msg = Buffer.concat([Buffer.from([1, body.length >> 16, (body.length >> 8) & 0xff, body.length & 0xff]), body]);
  return Buffer.concat([Buffer.from([0x16, 0x03, 0x01]), u16(msg.length), msg]);
}

const list16 = (vals) => {
  const b = Buffer.alloc(2 + vals.length * 2);
  b.writeUInt16BE(vals.length * 2, 0);
  vals.forEach((v, i) => b.writeUInt16BE(v, 2 + i * 2));
  return b;
};
const sni = (name) => {
  const n = Buffer.from(name); // ServerNameList<1..2^16-1> holding one host_name entry
  return Buffer.concat([Buffer.from([(n.length + 3) >> 8, (n.length + 3) & 0xff, 0, n.length >> 8, n.length & 0xff]), n]);
};
const alpn = (names) => {
  const l = Buffer.concat(names.map((n) => Buffer.concat([Buffer.from([n.length]), Buffer.from(n)])));
  return Buffer.concat([Buffer.from([l.length >> 8, l.length & 0xff]), l]);
};
const versions = (vals) => Buffer.concat([Buffer.from([vals.length * 2]), list16(vals).subarray(2)]);

// Chrome 143 as reported by browserleaks (ja3_text, ja4_r, ja4), with the GREASE values Chrome
// sends put back: a GREASE cipher, two GREASE extensions, GREASE in supported_groups,
// supported_versions and key_share, and (as Chrome 152 does) one in signature_algorithms.
const CHROME143_SIGALGS = [0x0403, 0x0804, 0x0401, 0x0503, 0x0805, 0x0501, 0x0806, 0x0601];
function chrome143Grease() {
  const ciphers = [0x3a3a, 4865, 4866, 4867, 49195, 49199, 49196, 49200, 52393, 52392, 49171, 49172, 156, 157, 47, 53];
  const keyShare = Buffer.concat([list16([]), Buffer.from([0x3a, 0x3a, 0, 1, 0]), Buffer.from([0, 0x1d, 0, 32]), Buffer.alloc(32, 7)]);
  keyShare.writeUInt16BE(keyShare.length - 2, 0);
  const exts = [
    [0x9a9a, Buffer.alloc(0)],
    [45, Buffer.from([1, 1])],
    [51, keyShare],
    [16, alpn(['h2', 'http/1.1'])],
    [65037, Buffer.from([0, 0, 1, 0, 1, 0x42, 0, 0x20, ...Buffer.alloc(32, 9), 0, 0])],
    [23, Buffer.alloc(0)],
    [17613, Buffer.from([0, 3, 2, 0x68, 0x32])],
    [0, sni('tls.browserleaks.com')],
    [11, Buffer.from([1, 0])],
    [10, list16([0x3a3a, 4588, 29, 23, 24])],
    [43, versions([0xbaba, 0x0304, 0x0303])],
    [65281, Buffer.from([0])],
    [35, Buffer.alloc(0)],
    [18, Buffer.alloc(0)],
    [5, Buffer.from([1, 0, 0, 0, 0])],
    [13, list16([0x8a8a, ...CHROME143_SIGALGS])],
    [27, Buffer.from([2, 0, 2])],
    [0xdada, Buffer.from([0])],
  ];
  return hello({ ciphers, exts });
}

// GREASE only: every cipher and supported_versions entry is GREASE, the only extensions besides
// GREASE ones are SNI and ALPN, and the ALPN value is one non-alphanumeric byte.
function greaseOnly() {
  return hello({
    ciphers: [0x0a0a, 0xfafa],
    exts: [
      [0x1a1a, Buffer.alloc(0)],
      [0, sni('grease.test')],
      [43, versions([0x2a2a])],
      [16, alpn([Buffer.from([0xab])])],
    ],
  });
}

// Over the 2-digit counts: 120 ciphers and 110 extensions (no SNI, no ALPN), legacy 0x0301.
function manyEntries() {
  const ciphers = Array.from({ length: 120 }, (_, i) => 0xc100 + i * 3);
  const exts = Array.from({ length: 110 }, (_, i) => [0x7000 + (109 - i) * 5, Buffer.alloc(0)]);
  exts[20] = [13, list16([0x0804, 0x0403])];
  exts[40] = [10, list16([29, 23])];
  exts[41] = [11, Buffer.from([2, 0, 1])];
  return hello({ version: 0x0301, ciphers, exts });
}

const SYNTHETIC = {
  'synthetic_chrome143_grease.bin': chrome143Grease,
  'synthetic_grease_only.bin': greaseOnly,
  'synthetic_counts_over_99.bin': manyEntries,
};

// ------------------------------------------------------------------------------------------
// Self-check against published vectors.

function selfCheck() {
  const fails = [];
  const eq = (what, got, want) => { if (got !== want) fails.push(`${what}: got ${got}, want ${want}`); };
  // salesforce/ja3 README.
  eq('ja3 readme 1', md5('769,47-53-5-10-49161-49162-49171-49172-50-56-19-4,0-10-11,23-24-25,0'), 'ada70206e40642a3e4461f35503241d5');
  eq('ja3 readme 2', md5('769,4-5-10-9-100-98-3-6-19-18-99,,,'), 'de350869b8c85de67a350c8d186f11e6');
  // FoxIO JA4.md worked example, from the lists as they appear on the wire.
  const spec = {
    version: 0x0303, versions: [0x0304, 0x0303], exts: [0x001b, 0x0000, 0x0033, 0x0010, 0x4469, 0x0017, 0x002d, 0x000d, 0x0005, 0x0023, 0x0012, 0x002b, 0xff01, 0x000b, 0x000a, 0x0015],
    ciphers: [0x1301, 0x1302, 0x1303, 0xc02b, 0xc02f, 0xc02c, 0xc030, 0xcca9, 0xcca8, 0xc013, 0xc014, 0x009c, 0x009d, 0x002f, 0x0035],
    sigalgs: [0x0403, 0x0804, 0x0401, 0x0503, 0x0805, 0x0501, 0x0806, 0x0601], alpn: [Buffer.from('h2')], groups: [], pointFormats: [],
  };
  const sp = ja4Parts(spec);
  eq('ja4 spec', `${sp.a}_${sha12(sp.b)}_${sha12(sp.c)}`, 't13d1516h2_8daaf6152771_e5627efa2ab1');
  eq('ja4_r spec', `${sp.a}_${sp.b}_${sp.c}`, 't13d1516h2_002f,0035,009c,009d,1301,1302,1303,c013,c014,c02b,c02c,c02f,c030,cca8,cca9_0005,000a,000b,000d,0012,0015,0017,001b,0023,002b,002d,0033,4469,ff01_0403,0804,0401,0503,0805,0501,0806,0601');
  eq('ja4 spec, no sigalgs', ja4Parts({ ...spec, sigalgs: [] }).c, '0005,000a,000b,000d,0012,0015,0017,001b,0023,002b,002d,0033,4469,ff01');
  eq('ja4 spec, no sigalgs hash', sha12(ja4Parts({ ...spec, sigalgs: [] }).c), '6d807ffa2a79');
  // JA4.md ALPN examples.
  for (const [bytes, want] of [[[0xab], 'ab'], [[0xab, 0xcd], 'ad'], [[0x30, 0xab], '3b'], [[0x30, 0x31, 0xab, 0xcd], '3d'], [[0x30, 0xab, 0xcd, 0x31], '01']]) {
    eq(`alpn ${bytes}`, ja4Alpn({ alpn: [Buffer.from(bytes)] }), want);
  }
  // Chrome 143 (browserleaks output, quoted in service0427/v2_cp_app tls.md).
  const ch = fingerprints(chrome143Grease());
  eq('chrome143 ja3', ch.ja3, '771,4865-4866-4867-49195-49199-49196-49200-52393-52392-49171-49172-156-157-47-53,45-51-16-65037-23-17613-0-11-10-43-65281-35-18-5-13-27,4588-29-23-24,0');
  eq('chrome143 ja3 md5', ch.ja3_md5, '98487aa16281980e7d1120d399efb6a4');
  eq('chrome143 ja4', ch.ja4, 't13d1516h2_8daaf6152771_d8a2da3f94cd');
  eq('chrome143 ja4_r', ch.ja4_r, 't13d1516h2_002f,0035,009c,009d,1301,1302,1303,c013,c014,c02b,c02c,c02f,c030,cca8,cca9_0005,000a,000b,000d,0012,0017,001b,0023,002b,002d,0033,44cd,fe0d,ff01_0403,0804,0401,0503,0805,0501,0806,0601');
  if (fails.length) {
    for (const f of fails) console.error(`ja_reference self-check FAILED: ${f}`);
    process.exit(1);
  }
}

// ------------------------------------------------------------------------------------------
// Output.

const cstr = (s) => JSON.stringify(s); // the strings are ASCII without backslashes
function cArray(name, buf) {
  const lines = [];
  for (let i = 0; i < buf.length; i += 16) {
    lines.push('    ' + Array.from(buf.subarray(i, i + 16), (b) => `0x${b.toString(16).padStart(2, '0')},`).join(' '));
  }
  return `static const uint8_t ${name}[${buf.length}] = {\n${lines.join('\n')}\n};`;
}

function main() {
  selfCheck();
  const args = process.argv.slice(2);
  if (args[0] === '--write-synthetic') {
    const dir = args[1];
    for (const [file, make] of Object.entries(SYNTHETIC)) fs.writeFileSync(path.join(dir, file), make());
    return;
  }
  if (args[0] === '--c') {
    const rows = [];
    for (const spec of args.slice(1)) {
      const [name, file] = spec.split('=');
      const raw = fs.readFileSync(file);
      const f = fingerprints(raw);
      console.log(`/* ${path.basename(file)}: JA3 ${f.ja3_md5}, JA4 ${f.ja4} */`);
      console.log(cArray(`hello_${name}`, raw));
      rows.push(`    {"${name}", hello_${name}, sizeof(hello_${name}),\n     ${cstr(f.ja3)},\n     ${cstr(f.a)},\n     ${cstr(f.b)},\n     ${cstr(f.c)}},`);
    }
    console.log(rows.join('\n'));
    return;
  }
  for (const file of args) console.log(JSON.stringify({ file: path.basename(file), ...fingerprints(fs.readFileSync(file)) }));
}

main();
