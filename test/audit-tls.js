#!/usr/bin/env node
'use strict';
// test/audit-tls.js — protocol audit of a terminating legato listener (issue 3), with the
// scanners Debian ships: sslscan (package `sslscan`) and testssl.sh (package `testssl.sh`,
// binary /usr/bin/testssl). Run from .ci/run as:
//
//   node test/audit-tls.js
//
// It starts a proxy (one tls listener on 127.0.0.1, port 0) terminating two routes — a.test
// with an ECDSA P-256 certificate and rsa.test with an RSA-2048 one, both leaf + intermediate —
// in front of a plain HTTP upstream, scans each SNI name, and asserts:
//
//   sslscan (per name)
//     protocols      SSLv2, SSLv3, TLSv1.0, TLSv1.1 disabled; TLSv1.2 and TLSv1.3 enabled
//     renegotiation  not "Insecure session renegotiation supported"
//     compression    "Compression disabled" (when sslscan's OpenSSL can test it; Debian's
//                    cannot, and then the direct probe below is what decides)
//     heartbleed     "not vulnerable" for every enabled version
//     fallback SCSV  supported
//     suites         every accepted suite is TLSv1.2 or TLSv1.3, at least 128 bits, AEAD
//                    (GCM or CHACHA20-POLY1305), and for TLSv1.2 ECDHE (forward secrecy); none
//                    is RC4, DES/3DES, NULL, EXPORT, anonymous, MD5, CBC or SHA-1-MAC; at least
//                    one TLSv1.2 and one TLSv1.3 suite are accepted
//     groups         every key-exchange group offers at least 112 bits
//   direct probes (Node + the openssl CLI, no scanner)
//     compression    a ClientHello offering DEFLATE and null gets null (TLS 1.2)
//     renegotiation  a TLS 1.2 client-initiated renegotiation (s_client `R`) closes the connection
//     TLS 1.0/1.1    refused with a protocol_version alert even when the client allows them
//   testssl (on a.test, when installed; `--no-testssl` skips it)
//     SSLv2, SSLv3, TLS1, TLS1_1 "not offered"; TLS1_2 and TLS1_3 offered;
//     secure_client_renego and CRIME_TLS "not vulnerable"; every cipherlist_* category other
//     than the strong ones (NULL, aNULL, EXPORT, LOW, 3DES_IDEA, OBSOLETED/AVERAGE) "not offered";
//     no finding of severity HIGH or CRITICAL except about the test PKI itself (trust in the
//     private root CA, revocation URIs, validity period: properties of the test certificates).
//
// Prints one line per check and "N passed, N failed"; exits 1 if any check failed (or a scanner
// is missing), 0 otherwise.

const { spawn } = require('child_process');
const fs = require('fs');
const os = require('os');
const path = require('path');
const http = require('http');
const { once } = require('events');
const { Proxy } = require(path.join(__dirname, '..'));
const { getTlsPki, pair, toolEnv } = require('./helpers/tlsca');
const { captureClientHello } = require('./helpers/hello');
const T = require('./fixtures/tls-tools');
const { cleanup } = require('./helpers/resources');

const results = [];

function check(name, ok, detail = '') {
  results.push({ name, ok: !!ok });
  console.log(`${ok ? 'PASS' : 'FAIL'} ${name}${detail ? ` — ${detail}` : ''}`);
}

/** Run a scanner with SIGPIPE ignored (it writes to sockets the server may have closed). */
function runTool(cmd, args, timeoutMs) {
  return new Promise((resolve) => {
    const child = spawn('bash', ['-c', 'trap "" PIPE; exec "$0" "$@"', cmd, ...args], { env: toolEnv(), stdio: ['ignore', 'pipe', 'pipe'] });
    let out = '';
    child.stdout.on('data', (c) => { out += c; });
    child.stderr.on('data', (c) => { out += c; });
    const timer = setTimeout(() => child.kill('SIGKILL'), timeoutMs);
    child.on('error', (e) => { clearTimeout(timer); resolve({ code: -1, out: String(e) }); });
    child.on('close', (code, signal) => { clearTimeout(timer); resolve({ code, signal, out }); });
  });
}

function which(names) {
  for (const n of names) {
    for (const dir of (process.env.PATH || '').split(':')) {
      const p = path.join(dir, n);
      try { fs.accessSync(p, fs.constants.X_OK); return p; } catch (_) { /* next */ }
    }
  }
  return null;
}

const WEAK = /RC4|DES|3DES|NULL|EXP|anon|ADH|AECDH|MD5|CBC|IDEA|SEED|CAMELLIA|ARIA|PSK|SRP/i;

function auditSslscan(name, out, keyKind) {
  const line = (re) => re.exec(out);
  for (const [proto, want] of [['SSLv2', 'disabled'], ['SSLv3', 'disabled'], ['TLSv1.0', 'disabled'], ['TLSv1.1', 'disabled'], ['TLSv1.2', 'enabled'], ['TLSv1.3', 'enabled']]) {
    const m = line(new RegExp(`^${proto.replace('.', '\\.')}\\s+(enabled|disabled)`, 'm'));
    check(`sslscan ${name}: ${proto} ${want}`, m && m[1] === want, m ? m[0] : 'not reported');
  }
  const reneg = line(/TLS renegotiation:\n(.*)/);
  check(`sslscan ${name}: no insecure renegotiation`, reneg && !/Insecure/i.test(reneg[1]), reneg ? reneg[1] : 'not reported');
  const comp = line(/TLS Compression:\n(.*)/);
  if (comp && /does not support compression/.test(comp[1])) {
    console.log(`note sslscan ${name}: this sslscan cannot test compression ("${comp[1]}"); the direct probe decides`);
  } else {
    check(`sslscan ${name}: compression disabled`, comp && /Compression disabled/i.test(comp[1]), comp ? comp[1] : 'not reported');
  }
  const hb = out.match(/^TLSv1\.[23] .*heartbleed$/mg) || [];
  check(`sslscan ${name}: not vulnerable to heartbleed`, hb.length === 2 && hb.every((l) => /not vulnerable/.test(l)), hb.join('; '));
  check(`sslscan ${name}: TLS fallback SCSV supported`, /Server supports TLS Fallback SCSV/.test(out));

  const suites = [...out.matchAll(/^(Preferred|Accepted)\s+(\S+)\s+(\d+) bits\s+(\S+)/mg)].map((m) => ({ version: m[2], bits: Number(m[3]), suite: m[4] }));
  const bad = suites.filter((s) => !['TLSv1.2', 'TLSv1.3'].includes(s.version) || s.bits < 128 || WEAK.test(s.suite) ||
    /-SHA$/.test(s.suite) || !/GCM|CHACHA20/.test(s.suite) || (s.version === 'TLSv1.2' && !/^ECDHE-/.test(s.suite)));
  check(`sslscan ${name}: only forward-secret AEAD suites of at least 128 bits`, suites.length > 0 && bad.length === 0,
    bad.length ? `refused: ${bad.map((s) => `${s.version} ${s.suite}`).join(', ')}` : `${suites.length} accepted: ${suites.map((s) => s.suite).join(' ')}`);
  const v12 = suites.filter((s) => s.version === 'TLSv1.2');
  check(`sslscan ${name}: TLSv1.2 suites accepted for the ${keyKind} key`, v12.length > 0 && v12.every((s) => s.suite.includes(keyKind === 'ECDSA' ? 'ECDSA' : 'RSA')), v12.map((s) => s.suite).join(' '));
  check(`sslscan ${name}: TLSv1.3 suites accepted`, suites.some((s) => s.version === 'TLSv1.3'));
  const groups = [...out.matchAll(/^(TLSv1\.[0-3])\s+(\d+) bits\s+(\S+)/mg)].filter((m) => !/^(Preferred|Accepted)/.test(m[0]));
  const weakGroups = groups.filter((g) => Number(g[2]) < 112);
  check(`sslscan ${name}: key-exchange groups of at least 112 bits`, groups.length > 0 && weakGroups.length === 0, weakGroups.map((g) => g[0]).join('; ') || `${groups.length} groups`);
}

function auditTestssl(findings) {
  const byId = new Map(findings.map((f) => [f.id, f]));
  const finding = (id) => (byId.get(id) || { finding: '(not reported)' }).finding;
  for (const id of ['SSLv2', 'SSLv3', 'TLS1', 'TLS1_1']) check(`testssl: ${id} not offered`, /^not offered/.test(finding(id)), finding(id));
  for (const id of ['TLS1_2', 'TLS1_3']) check(`testssl: ${id} offered`, /^offered/.test(finding(id)), finding(id));
  check('testssl: no client-initiated renegotiation (secure_client_renego)', /not vulnerable/.test(finding('secure_client_renego')), finding('secure_client_renego'));
  check('testssl: no TLS compression (CRIME_TLS)', /not vulnerable/.test(finding('CRIME_TLS')), finding('CRIME_TLS'));
  for (const id of ['cipherlist_NULL', 'cipherlist_aNULL', 'cipherlist_EXPORT', 'cipherlist_LOW', 'cipherlist_3DES_IDEA', 'cipherlist_OBSOLETED', 'cipherlist_AVERAGE']) {
    if (!byId.has(id)) continue; // category names differ between testssl versions
    check(`testssl: ${id} not offered`, /^not offered/.test(finding(id)), finding(id));
  }
  const trust = /cert_revocation|chain_of_trust|cert_chain_of_trust|cert_trust|cert_caIssuers|cert_crlDistributionPoints|cert_ocspURL|OCSP|cert_validityPeriod|DNS_CAArecord|cert_expirationStatus|cert_notAfter|scanProblem/;
  const serious = findings.filter((f) => /HIGH|CRITICAL/.test(f.severity) && !trust.test(f.id));
  check('testssl: no HIGH/CRITICAL finding (besides trust in the private test CA)', serious.length === 0, serious.map((f) => `${f.id}: ${f.finding}`).join('; '));
}

async function directProbes(port, pki) {
  const hello = await captureClientHello('a.test', { maxVersion: 'TLSv1.2' });
  const r = await T.rawTls(port, T.withCompression(hello), 5000, (data) => T.serverHelloInfo(data) !== null);
  const info = T.serverHelloInfo(r.data);
  check('probe: compression method null chosen when DEFLATE is offered', info && info.compression === 0, JSON.stringify(info));

  const s = T.sClient(port, ['-servername', 'a.test', '-CAfile', pki.caPath, '-tls1_2']);
  await s.waitOutput(/Verify return code/, 10000).catch(() => {});
  s.write('R\n');
  const closed = await Promise.race([s.exited.then(() => true), new Promise((res) => setTimeout(() => res(false), 5000))]);
  check('probe: client-initiated TLS 1.2 renegotiation closes the connection', closed && /RENEGOTIATING/.test(s.out()));
  if (!closed) s.kill();

  for (const v of ['-tls1', '-tls1_1']) {
    const o = await T.runSClient(port, ['-servername', 'a.test', v, '-cipher', 'DEFAULT@SECLEVEL=0'], {});
    check(`probe: ${v} refused with a protocol_version alert`, o.code !== 0 && /alert protocol version/.test(o.out));
  }
}

async function main() {
  const skipTestssl = process.argv.includes('--no-testssl');
  const pki = getTlsPki();
  const up = http.createServer((req, res) => { req.resume(); req.on('end', () => res.end('audit\n')); });
  up.on('clientError', (e, s) => s.destroy());
  up.listen(0, '127.0.0.1');
  await once(up, 'listening');
  const upstream = { kind: 'tcp', host: '127.0.0.1', port: up.address().port };
  const proxy = new Proxy({
    workerThreads: 2,
    listeners: [{ host: '127.0.0.1', port: 0 }],
    routes: [
      { sni: 'a.test', terminateTls: true, cert: pair(pki.leaves.a), upstreams: [upstream] },
      { sni: 'rsa.test', terminateTls: true, cert: pair(pki.leaves.rsa), upstreams: [upstream] },
    ],
  });
  proxy.on('error', (e) => console.log(`proxy error: ${e.message}`));
  await proxy.start();
  const port = proxy.addresses()[0].port;
  console.log(`legato terminating on 127.0.0.1:${port} (a.test ECDSA P-256, rsa.test RSA-2048)`);
  try {
    const sslscan = which(['sslscan']);
    check('sslscan is installed', sslscan !== null, 'apt-get install sslscan');
    if (sslscan) {
      for (const [name, kind] of [['a.test', 'ECDSA'], ['rsa.test', 'RSA']]) {
        const r = await runTool(sslscan, ['--no-colour', `--sni-name=${name}`, `127.0.0.1:${port}`], 180000);
        check(`sslscan ${name}: ran`, r.code === 0, r.code === 0 ? '' : `exit ${r.code} ${r.signal || ''}\n${r.out}`);
        if (process.env.AUDIT_VERBOSE) console.log(r.out);
        auditSslscan(name, r.out, kind);
      }
    }

    await directProbes(port, pki);

    if (!skipTestssl) {
      const testssl = which(['testssl', 'testssl.sh']);
      check('testssl is installed', testssl !== null, 'apt-get install testssl.sh');
      if (testssl) {
        const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'legato-audit-'));
        const json = path.join(dir, 'testssl.json');
        try {
          const r = await runTool(testssl, ['--quiet', '--color', '0', '--warnings', 'off', '--ip', '127.0.0.1',
            '-p', '-S', '-s', '-R', '-C', '-U', '--jsonfile', json, `a.test:${port}`], 900000);
          let findings = [];
          try { findings = JSON.parse(fs.readFileSync(json, 'utf8')); } catch (_) { /* reported below */ }
          check('testssl: ran and wrote its findings', findings.length > 0, findings.length ? `${findings.length} findings` : `exit ${r.code}\n${r.out.slice(-2000)}`);
          if (process.env.AUDIT_VERBOSE) console.log(r.out);
          if (findings.length > 0) auditTestssl(findings);
        } finally {
          fs.rmSync(dir, { recursive: true, force: true });
        }
      }
    }
  } finally {
    await cleanup();
    await proxy.stop({ graceMs: 0 });
    up.close();
  }
  const failed = results.filter((r) => !r.ok).length;
  console.log(`${results.length - failed} passed, ${failed} failed`);
  process.exitCode = failed === 0 ? 0 : 1;
}

main().catch((e) => {
  console.error(e);
  console.log(`${results.filter((r) => r.ok).length} passed, ${results.filter((r) => !r.ok).length + 1} failed`);
  process.exitCode = 1;
});
