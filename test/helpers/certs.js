'use strict';
// Test PKI, generated once per test run with the real `openssl` CLI into a temporary directory
// (removed when the process exits):
//
//   root CA  "legato test root CA"
//     └─ intermediate CA "legato test intermediate CA"
//          ├─ a.test        (SAN a.test)
//          ├─ b-wildcard    (SAN *.b.test, *.y.b.test — covers a.b.test and x.y.b.test)
//          └─ default.test  (SAN default.test)
//
// Servers present leaf + intermediate (`chain`); clients trust only the root (`ca`), so a
// successful verification proves the origin's whole chain arrived through the proxy intact.
// Keys are P-256 (fast to generate). Everything is exported as PEM Buffers and as file paths
// (for curl --cacert / openssl s_client -CAfile).

const { execFileSync } = require('child_process');
const fs = require('fs');
const os = require('os');
const path = require('path');

let cached = null;

function openssl(args, cwd) {
  // Without the sanitizer runtime the ASan run preloads into node (see helpers/clients.js).
  const env = { ...process.env };
  delete env.LD_PRELOAD;
  execFileSync('openssl', args, { cwd, env, stdio: ['ignore', 'pipe', 'pipe'], timeout: 30000 });
}

function newKeyAndCsr(dir, name, subject) {
  openssl(['req', '-new', '-newkey', 'ec', '-pkeyopt', 'ec_paramgen_curve:prime256v1', '-nodes',
    '-keyout', `${name}.key`, '-out', `${name}.csr`, '-subj', subject], dir);
}

function sign(dir, name, issuer, extLines, serial) {
  fs.writeFileSync(path.join(dir, `${name}.ext`), `${extLines.join('\n')}\n`);
  openssl(['x509', '-req', '-in', `${name}.csr`, '-CA', `${issuer}.crt`, '-CAkey', `${issuer}.key`,
    '-set_serial', String(serial), '-days', '3', '-sha256', '-extfile', `${name}.ext`,
    '-out', `${name}.crt`], dir);
}

function generate() {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'legato-certs-'));
  process.on('exit', () => {
    try { fs.rmSync(dir, { recursive: true, force: true }); } catch (_) { /* best effort */ }
  });

  // Root CA (self-signed).
  openssl(['req', '-x509', '-newkey', 'ec', '-pkeyopt', 'ec_paramgen_curve:prime256v1', '-nodes',
    '-keyout', 'ca.key', '-out', 'ca.crt', '-days', '3', '-sha256',
    '-subj', '/CN=legato test root CA',
    '-addext', 'basicConstraints=critical,CA:TRUE',
    '-addext', 'keyUsage=critical,keyCertSign,cRLSign'], dir);

  // Intermediate CA.
  newKeyAndCsr(dir, 'int', '/CN=legato test intermediate CA');
  sign(dir, 'int', 'ca', [
    'basicConstraints=critical,CA:TRUE,pathlen:0',
    'keyUsage=critical,keyCertSign,cRLSign',
    'subjectKeyIdentifier=hash',
    'authorityKeyIdentifier=keyid',
  ], 1000);

  const leafSpecs = {
    'a.test': ['a.test'],
    '*.b.test': ['*.b.test', '*.y.b.test'],
    'default.test': ['default.test'],
  };
  const leaves = {};
  let serial = 2000;
  for (const [cn, sans] of Object.entries(leafSpecs)) {
    const file = cn.replace('*', 'wild');
    newKeyAndCsr(dir, file, `/CN=${cn}`);
    sign(dir, file, 'int', [
      'basicConstraints=critical,CA:FALSE',
      'keyUsage=critical,digitalSignature',
      'extendedKeyUsage=serverAuth',
      `subjectAltName=${sans.map((s) => `DNS:${s}`).join(',')}`,
      'subjectKeyIdentifier=hash',
      'authorityKeyIdentifier=keyid',
    ], serial++);
    const cert = fs.readFileSync(path.join(dir, `${file}.crt`));
    const intCert = fs.readFileSync(path.join(dir, 'int.crt'));
    const chain = Buffer.concat([cert, intCert]);
    const chainPath = path.join(dir, `${file}.chain.pem`);
    fs.writeFileSync(chainPath, chain);
    leaves[cn] = {
      cn,
      sans,
      cert,
      key: fs.readFileSync(path.join(dir, `${file}.key`)),
      chain,
      certPath: path.join(dir, `${file}.crt`),
      keyPath: path.join(dir, `${file}.key`),
      chainPath,
    };
  }

  return {
    dir,
    ca: fs.readFileSync(path.join(dir, 'ca.crt')),
    caPath: path.join(dir, 'ca.crt'),
    intermediate: fs.readFileSync(path.join(dir, 'int.crt')),
    intermediatePath: path.join(dir, 'int.crt'),
    leaves,
  };
}

/**
 * The test PKI (generated on first call, then cached for the rest of the process).
 * @returns {{ dir: string, ca: Buffer, caPath: string, intermediate: Buffer,
 *   intermediatePath: string, leaves: Record<string, { cn: string, sans: string[], cert: Buffer,
 *   key: Buffer, chain: Buffer, certPath: string, keyPath: string, chainPath: string }> }}
 */
function getCerts() {
  if (!cached) cached = generate();
  return cached;
}

module.exports = { getCerts };
