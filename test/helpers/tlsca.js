'use strict';
// The PKI of the TLS termination tests, generated once per process with the real `openssl` CLI
// into a temporary directory (removed when the process exits):
//
//   server root CA "legato tls root CA"                 (clients trust only this: `ca`)
//     └─ intermediate CA "legato tls intermediate CA"   (sent by the proxy in the chain)
//          ├─ a.test        ECDSA P-256   SAN a.test
//          ├─ a.test (rot)  ECDSA P-256   SAN a.test, a new key: the "rotated" certificate
//          ├─ b.test        ECDSA P-256   SAN b.test
//          ├─ rsa.test      RSA-2048      SAN rsa.test
//          ├─ *.w.test      ECDSA P-256   SAN *.w.test
//          └─ default.test  ECDSA P-256   SAN default.test
//   client CA "legato tls client CA"                    (what mTLS routes trust: `clientCa`)
//     └─ client "client-1"       clientAuth
//   rogue CA "legato tls rogue CA"                      (trusted by nobody)
//     └─ client "rogue"          clientAuth            (an untrusted client certificate)
//
// Bad material for the config-error tests: `bad.encryptedKey` (a.test's key encrypted with
// `openssl pkey -aes256 -passout pass:x`), `bad.mismatchedKey` (rsa.test's key, for a.test's
// chain), `bad.garbage*` (PEM armour around junk), `bad.emptyCert`/`bad.emptyKey` (armour with
// nothing inside).
//
// Every leaf carries Buffers (`cert`, `key`, `chain` = leaf + intermediate) and file paths (for
// curl --cacert, openssl s_client -CAfile/-cert/-key); `pair(leaf)` gives the engine's
// `{ certChain, privateKey }`.

const { execFileSync } = require('child_process');
const fs = require('fs');
const os = require('os');
const path = require('path');

let cached = null;

/** Environment for the openssl CLI: never with the sanitizer runtime the ASan run preloads. */
function toolEnv() {
  const env = { ...process.env };
  for (const k of ['LD_PRELOAD', 'ASAN_OPTIONS', 'UBSAN_OPTIONS', 'LSAN_OPTIONS']) delete env[k];
  return env;
}

function openssl(args, cwd) {
  return execFileSync('openssl', args, { cwd, env: toolEnv(), stdio: ['ignore', 'pipe', 'pipe'], timeout: 60000 });
}

const EC = ['-newkey', 'ec', '-pkeyopt', 'ec_paramgen_curve:prime256v1'];
const RSA = ['-newkey', 'rsa:2048'];

function selfSigned(dir, name, cn) {
  openssl(['req', '-x509', ...EC, '-nodes', '-keyout', `${name}.key`, '-out', `${name}.crt`,
    '-days', '3', '-sha256', '-subj', `/CN=${cn}`,
    '-addext', 'basicConstraints=critical,CA:TRUE',
    '-addext', 'keyUsage=critical,keyCertSign,cRLSign',
    '-addext', 'subjectKeyIdentifier=hash'], dir);
}

let serial = 5000;

function issue(dir, name, cn, issuer, extLines, keyArgs = EC) {
  openssl(['req', '-new', ...keyArgs, '-nodes', '-keyout', `${name}.key`, '-out', `${name}.csr`,
    '-subj', `/CN=${cn}`], dir);
  fs.writeFileSync(path.join(dir, `${name}.ext`), `${extLines.join('\n')}\n`);
  openssl(['x509', '-req', '-in', `${name}.csr`, '-CA', `${issuer}.crt`, '-CAkey', `${issuer}.key`,
    '-set_serial', String(serial++), '-days', '3', '-sha256', '-extfile', `${name}.ext`,
    '-out', `${name}.crt`], dir);
}

function serverLeaf(dir, name, cn, sans, keyArgs) {
  issue(dir, name, cn, 'int', [
    'basicConstraints=critical,CA:FALSE',
    'keyUsage=critical,digitalSignature,keyEncipherment',
    'extendedKeyUsage=serverAuth',
    `subjectAltName=${sans.map((s) => `DNS:${s}`).join(',')}`,
    'subjectKeyIdentifier=hash',
    'authorityKeyIdentifier=keyid',
  ], keyArgs);
  return load(dir, name, cn, true);
}

function clientLeaf(dir, name, cn, issuer) {
  issue(dir, name, cn, issuer, [
    'basicConstraints=critical,CA:FALSE',
    'keyUsage=critical,digitalSignature',
    'extendedKeyUsage=clientAuth',
  ]);
  return load(dir, name, cn, false);
}

function load(dir, name, cn, withIntermediate) {
  const p = (f) => path.join(dir, f);
  const cert = fs.readFileSync(p(`${name}.crt`));
  const chain = withIntermediate ? Buffer.concat([cert, fs.readFileSync(p('int.crt'))]) : cert;
  fs.writeFileSync(p(`${name}.chain.pem`), chain);
  return {
    cn,
    cert,
    key: fs.readFileSync(p(`${name}.key`)),
    chain,
    certPath: p(`${name}.crt`),
    keyPath: p(`${name}.key`),
    chainPath: p(`${name}.chain.pem`),
  };
}

function generate() {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'legato-tlsca-'));
  process.on('exit', () => {
    try { fs.rmSync(dir, { recursive: true, force: true }); } catch (_) { /* best effort */ }
  });

  selfSigned(dir, 'root', 'legato tls root CA');
  issue(dir, 'int', 'legato tls intermediate CA', 'root', [
    'basicConstraints=critical,CA:TRUE,pathlen:0',
    'keyUsage=critical,keyCertSign,cRLSign',
    'subjectKeyIdentifier=hash',
    'authorityKeyIdentifier=keyid',
  ]);
  const leaves = {
    a: serverLeaf(dir, 'a', 'a.test', ['a.test']),
    aRotated: serverLeaf(dir, 'a2', 'a.test', ['a.test']),
    b: serverLeaf(dir, 'b', 'b.test', ['b.test']),
    rsa: serverLeaf(dir, 'rsa', 'rsa.test', ['rsa.test'], RSA),
    wild: serverLeaf(dir, 'wild', '*.w.test', ['*.w.test']),
    def: serverLeaf(dir, 'def', 'default.test', ['default.test']),
  };

  selfSigned(dir, 'cca', 'legato tls client CA');
  selfSigned(dir, 'rogueca', 'legato tls rogue CA');
  const client = clientLeaf(dir, 'client1', 'client-1', 'cca');
  const rogue = clientLeaf(dir, 'rogue', 'rogue', 'rogueca');

  openssl(['pkey', '-in', 'a.key', '-aes256', '-passout', 'pass:x', '-out', 'a.enc.key'], dir);
  const armour = (label, body) => Buffer.from(`-----BEGIN ${label}-----\n${body}-----END ${label}-----\n`);
  const bad = {
    encryptedKey: fs.readFileSync(path.join(dir, 'a.enc.key')),
    mismatchedKey: leaves.rsa.key,
    garbageCert: armour('CERTIFICATE', 'bm90IGEgY2VydGlmaWNhdGUgYXQgYWxs\nAAAA////\n'),
    garbageKey: armour('PRIVATE KEY', 'bm90IGEga2V5\n!!!!\n'),
    emptyCert: armour('CERTIFICATE', ''),
    emptyKey: armour('PRIVATE KEY', ''),
  };

  return {
    dir,
    ca: fs.readFileSync(path.join(dir, 'root.crt')),
    caPath: path.join(dir, 'root.crt'),
    intermediate: fs.readFileSync(path.join(dir, 'int.crt')),
    clientCa: fs.readFileSync(path.join(dir, 'cca.crt')),
    clientCaPath: path.join(dir, 'cca.crt'),
    rogueCa: fs.readFileSync(path.join(dir, 'rogueca.crt')),
    leaves,
    client,
    rogue,
    bad,
  };
}

/**
 * The termination PKI (generated on first call, cached for the process).
 * @returns {ReturnType<typeof generate>}
 */
function getTlsPki() {
  if (!cached) cached = generate();
  return cached;
}

/** The engine's cert option for a leaf: `{ certChain: leaf + intermediate, privateKey }`. */
function pair(leaf) {
  return { certChain: leaf.chain, privateKey: leaf.key };
}

module.exports = { getTlsPki, pair, toolEnv };
