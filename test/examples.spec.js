'use strict';
// examples/ (issue 15, point 12): the two-tenant edge config passes `legato serve --check` with
// certificates generated for it, the systemd units say what operators need (LimitNOFILE,
// ExecReload), ci-proxy.sh runs a command behind a proxy that applies legato.env, and the
// Dockerfile installs the prebuilt package without a compiler.

const assert = require('assert');
const fs = require('fs');
const path = require('path');
const { getCerts } = require('./helpers/certs');
const { run } = require('./helpers/clients');
const { cleanup } = require('./helpers/proxy');
const { spawnCli } = require('./helpers/connect');
const { tempDir, writeFile } = require('./helpers/serve');

const ROOT = path.join(__dirname, '..');
const EXAMPLES = path.join(ROOT, 'examples');
const read = (rel) => fs.readFileSync(path.join(EXAMPLES, rel), 'utf8');

describe('examples/', function () {
  this.timeout(30000);
  afterEach(cleanup);

  it('edge/legato.jsonc passes legato serve --check with its certificate files in place', async () => {
    const certs = getCerts();
    const dir = tempDir('legato-example-');
    const conf = writeFile(dir, 'legato.jsonc', read('edge/legato.jsonc'));
    // Without the certificates: --check says which file is missing.
    const missing = spawnCli(['serve', '--check', conf]);
    assert.strictEqual((await missing.exited).code, 2);
    assert.match(missing.lines()[0], /legato\.jsonc:\d+:\d+: listeners\[0\]\.defaultCert\.certChainFile: cannot read '.*certs\/default\.pem': ENOENT/);
    const pairs = { default: 'default.test', 'shop.example.com': 'a.test', 'api.tenant-b.example': '*.b.test' };
    for (const [name, leaf] of Object.entries(pairs)) {
      writeFile(dir, `certs/${name}.pem`, certs.leaves[leaf].chain);
      writeFile(dir, `certs/${name}.key`, certs.leaves[leaf].key);
    }
    writeFile(dir, 'certs/tenant-b-clients-ca.pem', certs.ca);
    const ok = spawnCli(['serve', '--check', conf]);
    assert.strictEqual((await ok.exited).code, 0, ok.stderr());
    assert.deepStrictEqual(ok.lines(), [`legato: ${conf}: configuration ok (1 listener, 4 routes, 7 certificate files)`]);
  });

  it('the systemd units: LimitNOFILE, ExecReload sends SIGHUP, serve --check before start', () => {
    const edge = read('edge/legato.service');
    assert.match(edge, /^LimitNOFILE=\d+$/m);
    assert.match(edge, /^ExecReload=\/bin\/kill -HUP \$MAINPID$/m);
    assert.match(edge, /^ExecStartPre=.* legato serve --check \/etc\/legato\/legato\.jsonc$/m);
    assert.match(edge, /^ExecStart=.* legato serve \/etc\/legato\/legato\.jsonc/m);
    const ci = read('ci-proxy/legato-proxy.service');
    assert.match(ci, /^EnvironmentFile=\/etc\/legato\/ci-proxy\.env$/m);
    assert.match(ci, /^LimitNOFILE=\d+$/m);
  });

  it('ci-proxy/ci-proxy.sh runs a command behind a proxy configured by legato.env', async () => {
    const dir = tempDir('legato-example-');
    fs.mkdirSync(path.join(dir, 'bin'));
    fs.symlinkSync(path.join(ROOT, 'bin', 'legato'), path.join(dir, 'bin', 'legato'));
    const env = { ...process.env, PATH: `${path.join(dir, 'bin')}:${path.dirname(process.execPath)}:${process.env.PATH}`, TMPDIR: dir };
    // A shell script and its tools: no sanitizer runtime preloaded (the ASan run of the suite),
    // and so the normal build of the addon.
    for (const k of Object.keys(env)) if (k.startsWith('LEGATO_') || k === 'LD_PRELOAD' || /SAN_OPTIONS$/.test(k)) delete env[k];
    // The proxy applies legato.env's policy: an internal address is refused (403 to CONNECT).
    const r = await run('sh', [path.join(EXAMPLES, 'ci-proxy', 'ci-proxy.sh'), 'sh', '-c',
      'echo "proxy=$HTTPS_PROXY"; curl -sS -o /dev/null -w "connect=%{http_connect}\\n" --max-time 10 https://127.0.0.1:1/ || true'], { env, encoding: 'utf8', timeoutMs: 20000 });
    assert.strictEqual(r.code, 0, r.stderr);
    assert.match(r.stdout, /^proxy=http:\/\/127\.0\.0\.1:[1-9]\d*$/m);
    assert.match(r.stdout, /^connect=403$/m);
    assert.match(r.stderr, /^(?:\S+ )?legato: listening on 127\.0\.0\.1:\d+ \(forward proxy/m);
    assert.match(r.stderr, /^(?:\S+ )?legato: stopped$/m, 'stopped when the command ended');
    assert.deepStrictEqual(fs.readdirSync(dir).sort(), ['bin'], 'the status file was removed');
  });

  it('the Dockerfile installs the packed package on node:20-slim without a compiler', () => {
    const d = read('Dockerfile');
    assert.match(d, /^FROM node:20-slim$/m);
    assert(!/apt-get|build-essential|python3|make\b|gcc/.test(d.replace(/^#.*$/gm, '')), 'no compiler or build tools installed');
    assert.match(d, /npm install -g .*legato-\*\.tgz/);
    assert.match(d, /^HEALTHCHECK[\s\S]*\/ready/m);
    assert.match(d, /^USER node$/m);
  });
});
