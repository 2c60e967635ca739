#!/usr/bin/env node
'use strict';

/**
 * scripts/prebuilds.js — `npm run prebuilds`: the binaries shipped in the npm package, so that
 * `npm install legato` needs no compiler (node-gyp-build loads the one matching the machine).
 *
 *   prebuilds/linux-x64/legato.glibc.node      gcc, glibc >= 2.28 (scripts/glibc-compat.h)
 *   prebuilds/linux-x64/legato.musl.node      musl-gcc (apt: musl-tools), for Alpine
 *   prebuilds/linux-arm64/legato.glibc.node    aarch64-linux-gnu-gcc (apt: gcc-aarch64-linux-gnu)
 *
 * Each is a Node-API build (one binary for every Node version with N-API 8), stripped, tagged
 * with its libc: node-gyp-build picks musl on Alpine (/etc/alpine-release) and glibc elsewhere.
 * Then scripts/check-prebuilds.js checks each one's ELF header, its NEEDED libraries and that
 * every symbol it imports is exported by node or by its libc.
 *
 * Usage: node scripts/prebuilds.js [x64-glibc] [x64-musl] [arm64-glibc]   (default: all three)
 * The developer build in build/ is set aside during the cross builds and put back afterwards.
 * CFLAGS/LDFLAGS from the environment are kept; LEGATO_WERROR is passed through (CI sets it).
 */

const { spawnSync } = require('child_process');
const fs = require('fs');
const path = require('path');

const ROOT = path.join(__dirname, '..');
const COMPAT = path.join(__dirname, 'glibc-compat.h');

const TARGETS = {
  'x64-glibc': { arch: 'x64', libc: 'glibc', cc: 'gcc', strip: 'strip', compat: true },
  'x64-musl': { arch: 'x64', libc: 'musl', cc: 'musl-gcc', strip: 'strip', compat: false },
  'arm64-glibc': { arch: 'arm64', libc: 'glibc', cc: 'aarch64-linux-gnu-gcc', strip: 'aarch64-linux-gnu-strip', compat: true },
};

/** node-gyp: npm's (as `npm run` exposes it), else the one bundled with npm beside node, else PATH. */
function nodeGyp() {
  const bundled = path.join(path.dirname(process.execPath), '..', 'lib', 'node_modules', 'npm', 'node_modules', 'node-gyp', 'bin', 'node-gyp.js');
  if (process.env.npm_config_node_gyp) return process.env.npm_config_node_gyp;
  if (fs.existsSync(bundled)) return bundled;
  return 'node-gyp';
}

function have(cmd) {
  return spawnSync('sh', ['-c', `command -v ${cmd}`], { stdio: 'ignore' }).status === 0;
}

function run(cmd, args, env) {
  console.log(`$ ${cmd} ${args.join(' ')}`);
  const r = spawnSync(cmd, args, { cwd: ROOT, env, stdio: 'inherit' });
  if (r.status !== 0) throw new Error(`${cmd} ${args.join(' ')} failed (exit ${r.status})`);
}

function main() {
  const names = process.argv.slice(2);
  const wanted = names.length ? names : Object.keys(TARGETS);
  for (const n of wanted) if (!TARGETS[n]) throw new Error(`unknown target '${n}' (known: ${Object.keys(TARGETS).join(', ')})`);
  const missing = [...new Set(wanted.flatMap((n) => [TARGETS[n].cc, TARGETS[n].strip]))].filter((c) => !have(c));
  if (missing.length) {
    throw new Error(`missing ${missing.join(', ')}: apt-get install -y musl-tools gcc-aarch64-linux-gnu binutils-aarch64-linux-gnu`);
  }

  const build = path.join(ROOT, 'build');
  const aside = path.join(ROOT, 'build.prebuilds-aside');
  fs.rmSync(aside, { recursive: true, force: true });
  if (fs.existsSync(build)) fs.renameSync(build, aside);
  const prebuildify = path.join(ROOT, 'node_modules', '.bin', 'prebuildify');
  try {
    for (const n of wanted) {
      const t = TARGETS[n];
      console.log(`\n== prebuild linux-${t.arch} ${t.libc} (${t.cc})`);
      fs.rmSync(path.join(ROOT, 'prebuilds', `linux-${t.arch}`, `legato.${t.libc}.node`), { force: true });
      const env = { ...process.env, CC: t.cc, CXX: t.cc, LINK: t.cc };
      // Node's own headers when they are installed beside node (no download).
      const prefix = path.join(path.dirname(process.execPath), '..');
      if (!env.npm_config_nodedir && fs.existsSync(path.join(prefix, 'include', 'node', 'node_api.h'))) env.npm_config_nodedir = prefix;
      if (t.compat) env.CFLAGS = `${process.env.CFLAGS || ''} -include ${COMPAT}`.trim();
      run(process.execPath, [prebuildify, '--napi', '--node-gyp', nodeGyp(), '--strip', '--strip-bin', t.strip, '--arch', t.arch,
        '--libc', t.libc, '--tag-libc', '--target', process.versions.node], env);
      fs.rmSync(build, { recursive: true, force: true });
    }
  } finally {
    fs.rmSync(build, { recursive: true, force: true });
    if (fs.existsSync(aside)) fs.renameSync(aside, build);
  }
  run(process.execPath, [path.join(__dirname, 'check-prebuilds.js')], process.env);
}

try {
  main();
} catch (err) {
  console.error(`prebuilds: ${err.message}`);
  process.exit(1);
}
