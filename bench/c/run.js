'use strict';
// Builds and runs the micro-benchmarks of the pure core (bench/c/*_bench.c): clang -O2, no
// sanitizers, each file #includes the modules it measures and links src/lg_common.c, like the
// unit tests. Not part of `npm test`: figures are printed, never asserted.
//
//   node bench/c/run.js            every *_bench.c
//   node bench/c/run.js limit      only limit_bench.c (extra arguments go to the program)
const { execFileSync, spawnSync } = require('child_process');
const fs = require('fs');
const os = require('os');
const path = require('path');

const root = path.join(__dirname, '..', '..');
const cc = process.env.CC_BENCH || 'clang';
const flags = [
  '-std=c11', '-O2', '-g', '-Wall', '-Wextra', '-Wshadow', '-Wstrict-prototypes', '-Werror',
  '-D_GNU_SOURCE', '-I', path.join(root, 'src'),
];

const [only, ...args] = process.argv.slice(2);
const files = fs.readdirSync(__dirname)
  .filter((f) => /^[a-z0-9_]+_bench\.c$/.test(f))
  .filter((f) => !only || f.startsWith(`${only}_`))
  .sort();
if (files.length === 0) {
  console.error(`no bench/c/${only}_bench.c`);
  process.exit(2);
}
const outDir = fs.mkdtempSync(path.join(os.tmpdir(), 'legato-cbench-'));
let failed = 0;
for (const f of files) {
  const exe = path.join(outDir, f.replace(/\.c$/, ''));
  execFileSync(cc, [...flags, '-o', exe, path.join(__dirname, f), path.join(root, 'src', 'lg_common.c')],
    { stdio: 'inherit' });
  const r = spawnSync(exe, args, { stdio: 'inherit' });
  if (r.status !== 0) failed++;
}
fs.rmSync(outDir, { recursive: true, force: true });
process.exit(failed ? 1 : 0);
