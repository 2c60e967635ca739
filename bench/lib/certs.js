'use strict';
// Bench certificates, made with the openssl CLI into a temp dir: one ECDSA P-256 and one
// RSA-2048 self-signed leaf, each for a.bench.test, *.bench.test and default.bench.test.
// (Passthrough never looks at them; the origin and, later, terminating proxies present them.)

const { execFileSync } = require('child_process');
const fs = require('fs');
const path = require('path');

const NAMES = ['a.bench.test', '*.bench.test', 'default.bench.test'];

function makeCert(dir, name, keyArgs) {
  const key = path.join(dir, `${name}.key`);
  const crt = path.join(dir, `${name}.crt`);
  execFileSync('openssl', ['req', '-x509', '-newkey', ...keyArgs, '-nodes', '-keyout', key, '-out', crt,
    '-days', '7', '-sha256', '-subj', '/CN=a.bench.test',
    '-addext', `subjectAltName=${NAMES.map((n) => `DNS:${n}`).join(',')}`], { stdio: ['ignore', 'pipe', 'pipe'], timeout: 30000 });
  // A combined PEM for HAProxy's `crt`.
  const pem = path.join(dir, `${name}.pem`);
  fs.writeFileSync(pem, Buffer.concat([fs.readFileSync(crt), fs.readFileSync(key)]));
  return { cert: crt, key, pem };
}

function generateCerts(dir) {
  return {
    ecdsa: makeCert(dir, 'ecdsa', ['ec', '-pkeyopt', 'ec_paramgen_curve:prime256v1']),
    rsa: makeCert(dir, 'rsa', ['rsa:2048']),
  };
}

module.exports = { generateCerts, NAMES };
