'use strict';
// Runs the mocha suite against an ASan + UBSan build of the addon.
//
// The sanitized addon is built in its own directory (build-asan/, ignored by git) so the normal
// build in build/ is left alone, and loaded through LEGATO_ADDON. Node itself is not built with
// ASan, so the runtime is preloaded (LD_PRELOAD of gcc's libasan, matching the compiler node-gyp
// uses). Leak detection is off: V8 and Node keep allocations alive until exit by design.
// Any sanitizer report aborts the process, which fails the test that triggered it.
const { execFileSync, spawnSync } = require('child_process');
const fs = require('fs');
const path = require('path');

const root = path.join(__dirname, '..');
const dir = path.join(root, 'build-asan');
fs.rmSync(dir, { recursive: true, force: true });
fs.mkdirSync(dir, { recursive: true });
fs.copyFileSync(path.join(root, 'binding.gyp'), path.join(dir, 'binding.gyp'));
fs.cpSync(path.join(root, 'src'), path.join(dir, 'src'), { recursive: true });

const nodeGyp = process.env.npm_config_node_gyp
  || require.resolve('node-gyp/bin/node-gyp.js', { paths: [path.dirname(process.execPath) + '/../lib/node_modules/npm'] });
// Node's own headers: npm passes its `nodedir` setting as npm_config_nodedir; outside npm, use
// the installation this node runs from when it ships its headers.
const buildEnv = { ...process.env, LEGATO_SANITIZE: '1' };
const prefix = path.dirname(path.dirname(process.execPath));
if (!buildEnv.npm_config_nodedir && fs.existsSync(path.join(prefix, 'include', 'node', 'node_api.h'))) {
  buildEnv.npm_config_nodedir = prefix;
}
execFileSync(process.execPath, [nodeGyp, 'rebuild'], { cwd: dir, stdio: 'inherit', env: buildEnv });

const libasan = execFileSync('gcc', ['-print-file-name=libasan.so'], { encoding: 'utf8' }).trim();
const env = {
  ...process.env,
  LEGATO_ADDON: path.join(dir, 'build', 'Release', 'legato.node'),
  LD_PRELOAD: libasan,
  ASAN_OPTIONS: 'detect_leaks=0:abort_on_error=1:halt_on_error=1:detect_odr_violation=0',
  UBSAN_OPTIONS: 'print_stacktrace=1:halt_on_error=1',
  LEGATO_SANITIZED: '1',
};
const mocha = path.join(root, 'node_modules', 'mocha', 'bin', 'mocha.js');
const r = spawnSync(process.execPath, [mocha, ...process.argv.slice(2)], { cwd: root, stdio: 'inherit', env });
process.exit(r.status === null ? 1 : r.status);
