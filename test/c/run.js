'use strict';
// Builds and runs the C unit tests of the pure core (test/c/test_*.c) under ASan and UBSan.
// Each test file #includes the module it tests; lg_common.c (allocation wrappers) is linked in,
// plus the libraries a test names in a `LG_TEST_LIBS: ...` comment (OpenSSL for lg_config).
// Prints each file's "N passed, N failed" and then the totals in the same form; exits 1 on any
// failure (a failed test, a sanitizer report, or a build error).
const { execFileSync, spawnSync } = require('child_process');
const fs = require('fs');
const path = require('path');

const root = path.join(__dirname, '..', '..');
const outDir = path.join(__dirname, 'bin');
fs.mkdirSync(outDir, { recursive: true });

const cc = process.env.CC_TEST || 'clang';
const flags = [
  '-std=c11', '-g', '-O1', '-Wall', '-Wextra', '-Wshadow', '-Wstrict-prototypes', '-Werror',
  '-fsanitize=address,undefined', '-fno-sanitize-recover=all', '-fno-omit-frame-pointer',
  '-D_GNU_SOURCE', '-I', path.join(root, 'src'), '-I', __dirname,
];

const only = process.argv.slice(2);
const files = fs.readdirSync(__dirname)
  .filter((f) => /^test_.*\.c$/.test(f))
  .filter((f) => only.length === 0 || only.some((o) => f.includes(o)))
  .sort();

let passed = 0;
let failed = 0;
for (const f of files) {
  const exe = path.join(outDir, f.replace(/\.c$/, ''));
  // A test that needs libraries says so in a comment: /* LG_TEST_LIBS: -lssl -lcrypto */
  const libs = (/LG_TEST_LIBS:([^*]*)\*\//.exec(fs.readFileSync(path.join(__dirname, f), 'utf8')) || ['', ''])[1]
    .trim().split(/\s+/).filter(Boolean);
  try {
    execFileSync(cc, [...flags, '-o', exe, path.join(__dirname, f), path.join(root, 'src', 'lg_common.c'), ...libs],
      { stdio: ['ignore', 'inherit', 'inherit'] });
  } catch (e) {
    console.log(`${f}: build failed`);
    failed++;
    continue;
  }
  const r = spawnSync(exe, [], { encoding: 'utf8', env: { ...process.env, ASAN_OPTIONS: 'detect_leaks=1' } });
  process.stderr.write(r.stderr || '');
  const m = /(\d+) passed, (\d+) failed/.exec(r.stdout || '');
  if (!m) {
    console.log(`${f}: no summary (exit ${r.status}, signal ${r.signal})`);
    process.stdout.write(r.stdout || '');
    failed++;
    continue;
  }
  const p = Number(m[1]);
  const fl = Number(m[2]) + (r.status !== 0 && Number(m[2]) === 0 ? 1 : 0);
  console.log(`${f}: ${p} passed, ${fl} failed`);
  passed += p;
  failed += fl;
}
console.log(`C unit tests: ${passed} passed, ${failed} failed`);
process.exit(failed ? 1 : 0);
