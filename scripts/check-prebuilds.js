#!/usr/bin/env node
'use strict';

/**
 * scripts/check-prebuilds.js — checks every prebuilds/<platform>-<arch>/*.node without running
 * it on its target (an arm64 or musl Node is not at hand): for each binary,
 *  - the ELF header: 64-bit, shared object, the machine its directory names (x64, arm64);
 *  - NEEDED: only the C library (libc, libm, libpthread, libdl, the dynamic loader), never
 *    libssl, libcrypto, libuv or libstdc++ (OpenSSL and libuv come from node itself);
 *  - every undefined symbol that is not weak is exported by the node binary (Node-API, libuv,
 *    OpenSSL) or by that target's C library (read from the cross toolchain's libc);
 *  - glibc builds need no symbol version newer than GLIBC_2.28 (Node 20's own minimum);
 *  - the build for this machine (linux-x64 glibc here) loads in this node and has the Engine.
 * Exits 1 with one line per problem. Needs readelf (binutils).
 *
 * Usage: node scripts/check-prebuilds.js [dir]   (default: the package's prebuilds/)
 */

const { execFileSync } = require('child_process');
const fs = require('fs');
const path = require('path');

const MAX_GLIBC = [2, 28];
const MACHINE = { x64: 'Advanced Micro Devices X86-64', arm64: 'AArch64' };
const LIBC_FILES = {
  'x64-glibc': ['/lib/x86_64-linux-gnu/libc.so.6', '/lib/x86_64-linux-gnu/libm.so.6'],
  'arm64-glibc': ['/usr/aarch64-linux-gnu/lib/libc.so.6', '/usr/aarch64-linux-gnu/lib/libm.so.6'],
  'x64-musl': ['/lib/x86_64-linux-musl/libc.so', '/usr/lib/x86_64-linux-musl/libc.so'],
};
const NEEDED_OK = /^(libc\.so(\.6)?|libm\.so\.6|libpthread\.so\.0|libdl\.so\.2|ld-linux-[\w-]+\.so\.\d|ld-musl-\w+\.so\.1)$/;

function readelf(args, file) {
  return execFileSync('readelf', [...args, file], { encoding: 'utf8', maxBuffer: 256 * 1024 * 1024 });
}

/** @returns {{ name: string, version: string, undef: boolean, weak: boolean }[]} Dynamic symbols. */
function dynSyms(file) {
  const out = [];
  for (const line of readelf(['--dyn-syms', '-W'], file).split('\n')) {
    const m = /^\s*\d+:\s+[0-9a-f]+\s+\S+\s+(\S+)\s+(\S+)\s+\S+\s+(\S+)\s+(\S+)/.exec(line);
    if (!m) continue;
    const [, , bind, ndx, full] = m;
    const [name, version = ''] = full.split(/@+/);
    out.push({ name, version, undef: ndx === 'UND', weak: bind === 'WEAK' });
  }
  return out;
}

function exportsOf(files) {
  const set = new Set();
  for (const f of files) {
    if (!fs.existsSync(f)) continue;
    for (const s of dynSyms(f)) if (!s.undef) set.add(s.name);
  }
  return set;
}

function check(file, arch, libc, nodeExports) {
  const problems = [];
  const header = readelf(['-h'], file);
  if (!/Class:\s+ELF64/.test(header)) problems.push('not a 64-bit ELF');
  if (!/Type:\s+DYN/.test(header)) problems.push('not a shared object');
  const machine = (/Machine:\s+(.*)/.exec(header) || [])[1];
  if (machine !== MACHINE[arch]) problems.push(`machine is '${machine}', expected '${MACHINE[arch]}'`);

  const needed = [...readelf(['-d'], file).matchAll(/\(NEEDED\)\s+Shared library: \[([^\]]+)\]/g)].map((m) => m[1]);
  for (const n of needed) if (!NEEDED_OK.test(n)) problems.push(`needs ${n} (only the C library may be linked)`);

  const key = `${arch}-${libc}`;
  const libcFiles = (LIBC_FILES[key] || []).filter((f) => fs.existsSync(f));
  if (libcFiles.length === 0) problems.push(`no C library to check against for ${key} (install its toolchain)`);
  const libcExports = exportsOf(libcFiles);
  let maxGlibc = [0, 0];
  const syms = dynSyms(file);
  for (const s of syms) {
    if (!s.undef || !s.name) continue;
    const v = /^GLIBC_(\d+)\.(\d+)/.exec(s.version);
    if (v && (Number(v[1]) > maxGlibc[0] || (Number(v[1]) === maxGlibc[0] && Number(v[2]) > maxGlibc[1]))) maxGlibc = [Number(v[1]), Number(v[2])];
    if (v && (Number(v[1]) > MAX_GLIBC[0] || (Number(v[1]) === MAX_GLIBC[0] && Number(v[2]) > MAX_GLIBC[1]))) {
      problems.push(`${s.name}@${s.version} is newer than GLIBC_${MAX_GLIBC.join('.')}`);
    }
    if (s.weak) continue;
    if (!nodeExports.has(s.name) && !libcExports.has(s.name)) problems.push(`imports ${s.name}${s.version ? `@${s.version}` : ''}, which neither node nor ${libc} exports`);
  }
  const undef = syms.filter((s) => s.undef && s.name).length;
  return { problems, summary: `${machine}, NEEDED [${needed.join(', ')}], ${undef} imported symbols${libc === 'glibc' ? `, newest GLIBC_${maxGlibc.join('.')}` : ''}` };
}

function main() {
  const dir = path.resolve(process.argv[2] || path.join(__dirname, '..', 'prebuilds'));
  if (!fs.existsSync(dir)) throw new Error(`${dir} does not exist: run npm run prebuilds`);
  const nodeExports = exportsOf([process.execPath]);
  if (nodeExports.size < 1000) throw new Error(`${process.execPath} exports only ${nodeExports.size} symbols: not a node binary that addons can link against`);
  let failed = 0;
  let count = 0;
  for (const sub of fs.readdirSync(dir).sort()) {
    const m = /^linux-(x64|arm64)$/.exec(sub);
    if (!m) { console.log(`${sub}: unexpected directory`); failed++; continue; }
    for (const f of fs.readdirSync(path.join(dir, sub)).sort()) {
      const file = path.join(dir, sub, f);
      const tags = /^legato\.(glibc|musl)\.node$/.exec(f);
      if (!tags) { console.log(`${sub}/${f}: unexpected file (expected legato.<glibc|musl>.node)`); failed++; continue; }
      count++;
      const { problems, summary } = check(file, m[1], tags[1], nodeExports);
      if (m[1] === process.arch && tags[1] === 'glibc' && process.platform === 'linux' && !fs.existsSync('/etc/alpine-release')) {
        try {
          const addon = require(file);
          if (typeof addon.Engine !== 'function') problems.push('loads, but exports no Engine');
        } catch (err) {
          problems.push(`does not load here: ${err.message}`);
        }
      }
      console.log(`${sub}/${f}: ${problems.length ? 'FAIL' : 'ok'} (${summary})`);
      for (const p of problems) console.log(`  - ${p}`);
      if (problems.length) failed++;
    }
  }
  if (count === 0) throw new Error(`no prebuilds in ${dir}`);
  if (failed) {
    console.log(`${failed} prebuild(s) failed the check`);
    process.exit(1);
  }
  console.log(`${count} prebuilds checked`);
}

try {
  main();
} catch (err) {
  console.error(`check-prebuilds: ${err.message}`);
  process.exit(1);
}
