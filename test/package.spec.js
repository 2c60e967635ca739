'use strict';
// The npm package (issue 15, point 1): `npm pack` holds the prebuilds (and LICENSE, the schema),
// and the packed tarball installs into a fresh project on a PATH without make, gcc, cc, g++ or
// python3 — so the prebuild is what loads — and runs: require('legato'), a proxy started and
// stopped, `legato serve --check` on a YAML file.
//
// Needs prebuilds/ (npm run prebuilds). Without them the tests are skipped, except when
// LEGATO_REQUIRE_PREBUILDS=1 (.ci/run sets it), where their absence is a failure.

const assert = require('assert');
const fs = require('fs');
const path = require('path');
const { execFile } = require('child_process');
const { cleanup } = require('./helpers/proxy');
const { tempDir, writeFile } = require('./helpers/serve');

const ROOT = path.join(__dirname, '..');
const PREBUILDS = ['linux-arm64/legato.glibc.node', 'linux-x64/legato.glibc.node', 'linux-x64/legato.musl.node'];
const HIDDEN = ['make', 'gcc', 'cc', 'g++', 'c++', 'python3', 'python', 'clang'];

/** Run a command to its end: { code, stdout, stderr } (never rejects for a non-zero exit). */
function run(cmd, args, { env, cwd, timeoutMs = 30000 } = {}) {
  return new Promise((resolve) => {
    execFile(cmd, args, { env, cwd, timeout: timeoutMs, maxBuffer: 64 * 1024 * 1024 }, (err, stdout, stderr) => {
      resolve({ code: err ? (typeof err.code === 'number' ? err.code : -1) : 0, stdout, stderr: err && typeof err.code !== 'number' ? `${stderr}${err.message}` : stderr });
    });
  });
}

/** npm's environment for a child: ours without what an enclosing `npm run` set. */
function npmEnv(extra = {}) {
  const env = {};
  for (const [k, v] of Object.entries(process.env)) {
    if (/^npm_/i.test(k) || k.startsWith('LEGATO_') || k === 'LD_PRELOAD' || /SAN_OPTIONS$/.test(k)) continue;
    env[k] = v;
  }
  return { ...env, npm_config_audit: 'false', npm_config_fund: 'false', npm_config_update_notifier: 'false', ...extra };
}

/**
 * A directory of symlinks to the few commands npm and the package's install script need:
 * node, npm, sh and basic file tools — and no compiler, make or python.
 */
function minimalPath(dir) {
  const bin = path.join(dir, 'bin');
  fs.mkdirSync(bin);
  const npmCli = fs.realpathSync(path.join(path.dirname(process.execPath), 'npm'));
  fs.symlinkSync(process.execPath, path.join(bin, 'node'));
  fs.symlinkSync(npmCli, path.join(bin, 'npm'));
  for (const tool of ['sh', 'env', 'cat', 'ls', 'mkdir', 'rm', 'cp', 'mv', 'chmod', 'tar', 'gzip', 'uname']) {
    for (const d of ['/usr/bin', '/bin']) {
      const p = path.join(d, tool);
      if (fs.existsSync(p)) { fs.symlinkSync(p, path.join(bin, tool)); break; }
    }
  }
  return bin;
}

describe('the npm package', function () {
  this.timeout(180000);
  let tarball;
  let workdir;

  before(async function () {
    const missing = PREBUILDS.filter((p) => !fs.existsSync(path.join(ROOT, 'prebuilds', p)));
    if (missing.length) {
      if (process.env.LEGATO_REQUIRE_PREBUILDS === '1') throw new Error(`prebuilds missing: ${missing.join(', ')} (npm run prebuilds)`);
      // eslint-disable-next-line no-console
      console.log(`      (skipped: no prebuilds; run npm run prebuilds. Missing: ${missing.join(', ')})`);
      this.skip();
    }
    workdir = fs.mkdtempSync(path.join(require('os').tmpdir(), 'legato-pack-'));
    const r = await run('npm', ['pack', '--json', '--pack-destination', workdir], { env: npmEnv(), timeoutMs: 60000 });
    assert.strictEqual(r.code, 0, r.stderr);
    const info = JSON.parse(r.stdout)[0];
    tarball = path.join(workdir, info.filename);
  });
  after(() => { if (workdir) fs.rmSync(workdir, { recursive: true, force: true }); });
  afterEach(cleanup);

  it('npm pack holds the prebuilds, LICENSE, the schema and the sources, not build/ or tests', async () => {
    const r = await run('tar', ['tzf', tarball]);
    const files = r.stdout.trim().split('\n').map((f) => f.replace(/^package\//, ''));
    for (const p of PREBUILDS) assert(files.includes(`prebuilds/${p}`), `${p} in the tarball`);
    for (const f of ['LICENSE', 'README.md', 'package.json', 'schema/legato.schema.json', 'lib/index.js', 'bin/legato', 'binding.gyp', 'index.d.ts', 'src/lg_engine.c']) {
      assert(files.includes(f), `${f} in the tarball`);
    }
    for (const f of files) assert(!/^(build|test|fuzz|bench|scripts|node_modules)\//.test(f), `${f} should not be in the tarball`);
    const pkg = JSON.parse(fs.readFileSync(path.join(ROOT, 'package.json'), 'utf8'));
    assert.deepStrictEqual(pkg.os, ['linux']);
    assert.strictEqual(pkg.license, 'MIT');
    assert.match(fs.readFileSync(path.join(ROOT, 'LICENSE'), 'utf8'), /^MIT License/);
    assert.strictEqual(pkg.engines.node, '>=20');
    assert(!pkg.scripts.prebuild, "no 'prebuild' script (npm would run it before every build)");
  });

  it('installs and runs with no compiler, make or python on PATH (the prebuild loads)', async () => {
    const dir = tempDir('legato-install-');
    const bin = minimalPath(dir);
    const env = npmEnv({ PATH: bin, HOME: process.env.HOME || dir });
    for (const tool of HIDDEN) {
      const r = await run('sh', ['-c', `command -v ${tool}`], { env });
      assert.notStrictEqual(r.code, 0, `${tool} is reachable on the test PATH`);
    }
    const project = path.join(dir, 'project');
    writeFile(project, 'package.json', { name: 'uses-legato', version: '1.0.0', private: true });
    const install = await run(path.join(bin, 'npm'), ['install', '--no-audit', '--no-fund', '--prefer-offline', tarball],
      { env, timeoutMs: 150000, cwd: project });
    assert.strictEqual(install.code, 0, `npm install failed:\n${install.stdout}\n${install.stderr}`);
    const pkgDir = path.join(project, 'node_modules', 'legato');
    assert(!fs.existsSync(path.join(pkgDir, 'build')), 'nothing was compiled');

    writeFile(project, 'check.js', `
      const path = require('path');
      const { Proxy, metricsText } = require('legato');
      const pkgDir = path.dirname(require.resolve('legato/package.json'));
      const loaded = require('node-gyp-build').resolve(pkgDir);
      (async () => {
        const proxy = new Proxy({ workerThreads: 1, listeners: [{ kind: 'connect', port: 0 }] });
        await proxy.start();
        const port = proxy.addresses()[0].port;
        const text = metricsText(proxy.metrics());
        await proxy.stop();
        console.log(JSON.stringify({ loaded: path.relative(pkgDir, loaded), port, metrics: text.includes('legato_active_connections 0') }));
      })().catch((err) => { console.error(err); process.exit(1); });
    `);
    const r = await run(path.join(bin, 'node'), ['check.js'], { env, cwd: project, timeoutMs: 30000 });
    assert.strictEqual(r.code, 0, r.stderr);
    const out = JSON.parse(r.stdout);
    assert.strictEqual(out.loaded, path.join('prebuilds', `linux-${process.arch}`, 'legato.glibc.node'));
    assert(out.port > 0);
    assert.strictEqual(out.metrics, true);

    // The command, with a YAML config (the yaml dependency came along).
    writeFile(project, 'legato.yaml', 'listeners:\n  - kind: connect\n    port: 0\n');
    const check = await run(path.join(bin, 'node'), [path.join(project, 'node_modules', '.bin', 'legato'), 'serve', '--check', 'legato.yaml'],
      { env, cwd: project });
    assert.strictEqual(check.code, 0, check.stderr);
    assert.match(check.stderr, /configuration ok \(1 listener, 0 routes, 0 certificate files\)/);
  });
});
