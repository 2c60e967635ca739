'use strict';
// `legato serve` as a server (issue 15, points 3, 4, 5 and 7), always from the outside: a spawned
// bin/legato, config files and certificate files in temp directories, real signals, real TLS
// clients through the proxy.
//
//   config files   JSONC and YAML, certificates by path relative to the file, errors with
//                  file:line:column, suspended routes refused, --check (exit 0/2, no bind)
//   reload         SIGHUP and file changes (config and certificate, write+rename), routes swapped
//                  with an open connection untouched, a bad config kept out, listener changes
//                  handed over to a new engine on the same ports, the status file
//   signals        SIGUSR1 (metrics line, log reopen, no inspector), SIGHUP in forward-proxy mode

const assert = require('assert');
const fs = require('fs');
const net = require('net');
const path = require('path');
const tls = require('tls');
const { getCerts } = require('./helpers/certs');
const { startTlsOrigin, startEchoServer } = require('./helpers/servers');
const { cleanup, trackSocket } = require('./helpers/proxy');
const { nodeTlsGet } = require('./helpers/clients');
const { waitFor } = require('./helpers/wait');
const { spawnCli, startCli, openTunnel, ESTABLISHED } = require('./helpers/connect');
const {
  tempDir, writeFile, replaceFile, copyCerts, startServe, startHttpOrigin, httpRequest,
} = require('./helpers/serve');

const tcp = (port) => ({ kind: 'tcp', host: '127.0.0.1', port });

/** Run `legato serve <args>` to its exit: { code, lines }. */
async function serveExit(args, opts) {
  const h = spawnCli(['serve', ...args], opts);
  const { code } = await h.exited;
  return { code, lines: h.lines(), stderr: h.stderr(), stdout: h.stdout() };
}

/** One HTTP/1.1 request on an open TLS socket; resolves with the response body. */
function requestOn(socket, host) {
  return new Promise((resolve, reject) => {
    let buf = Buffer.alloc(0);
    const onData = (d) => {
      buf = Buffer.concat([buf, d]);
      const text = buf.toString('latin1');
      const end = text.indexOf('\r\n\r\n');
      if (end < 0) return;
      const len = Number((/content-length: (\d+)/i.exec(text) || [])[1]);
      if (buf.length < end + 4 + len) return;
      socket.off('data', onData);
      socket.off('close', onClose);
      resolve(text.slice(end + 4, end + 4 + len));
    };
    const onClose = () => reject(new Error('the connection closed'));
    socket.on('data', onData);
    socket.once('close', onClose);
    socket.write(`GET / HTTP/1.1\r\nHost: ${host}\r\n\r\n`);
  });
}

/** A kept-alive TLS connection through the proxy (verifying the origin's chain). */
function openTls(port, servername, ca) {
  return new Promise((resolve, reject) => {
    const s = trackSocket(tls.connect({ host: '127.0.0.1', port, servername, ca }));
    s.once('secureConnect', () => resolve(s));
    s.once('error', reject);
  });
}

/** The CN of the certificate the proxy presents for `servername` (no verification). */
function presentedCn(port, servername) {
  return new Promise((resolve, reject) => {
    const s = trackSocket(tls.connect({ host: '127.0.0.1', port, servername, rejectUnauthorized: false }));
    s.once('secureConnect', () => {
      const cn = s.getPeerCertificate().subject.CN;
      s.destroy();
      resolve(cn);
    });
    s.once('error', reject);
  });
}

describe('legato serve', function () {
  this.timeout(60000);
  let certs;
  before(() => { certs = getCerts(); });
  afterEach(cleanup);

  describe('config files', () => {
    it('JSONC (comments, trailing commas) with certificates by path relative to the file: terminates TLS with them', async () => {
      const dir = tempDir();
      const files = copyCerts(dir);
      const app = await startHttpOrigin('app');
      const conf = writeFile(dir, 'conf/legato.jsonc', `// legato serve config
{
  "$schema": "../schema.json", /* ignored */
  "workerThreads": 1,
  "listeners": [
    { "host": "127.0.0.1", "port": 0,
      "defaultCert": { "certChainFile": "../${files.def.chain}", "privateKeyFile": "../${files.def.key}" }, },
  ],
  "routes": [
    { "sni": "a.test", "terminateTls": true, "upstreams": [ { "kind": "tcp", "host": "127.0.0.1", "port": ${app.port} } ],
      "cert": { "certChainFile": "${path.join(dir, files.a.chain)}", "privateKeyFile": "../${files.a.key}" } },
    { "sni": "", "terminateTls": true, "upstreams": [ { "kind": "tcp", "host": "127.0.0.1", "port": ${app.port} } ] },
  ],
}
`);
      const h = await startServe([conf]);
      const r = await nodeTlsGet(h.ports[0], 'a.test', { ca: certs.ca });
      assert.strictEqual(r.status, 200);
      assert.strictEqual(r.body, 'origin=app\n');
      assert.strictEqual(r.peerCN, 'a.test', 'the route certificate read from its file');
      assert.strictEqual(await presentedCn(h.ports[0], 'other.test'), 'default.test', 'the listener defaultCert read from its file');
      h.child.kill('SIGTERM');
      assert.strictEqual((await h.exited).code, 0);
    });

    it('YAML (.yaml and .yml) works the same, with clientCaCertFile for mTLS', async () => {
      const dir = tempDir();
      const files = copyCerts(dir);
      const origin = await startTlsOrigin('A', certs.leaves['a.test']);
      const echo = await startEchoServer();
      for (const name of ['legato.yaml', 'legato.yml']) {
        const conf = writeFile(dir, name, [
          '# legato serve config',
          'workerThreads: 1',
          'listeners:',
          '  - { host: 127.0.0.1, port: 0 }',
          '  - kind: connect',
          '    port: 0',
          `    connect: { allowPorts: [${echo.port}], allowCidrs: [127.0.0.1] }`,
          'routes:',
          '  - sni: a.test',
          `    upstreams: [{ kind: tcp, host: 127.0.0.1, port: ${origin.port} }]`,
          '  - sni: m.b.test',
          '    terminateTls: true',
          `    cert: { certChainFile: ${files.b.chain}, privateKeyFile: ${files.b.key} }`,
          `    mtls: { clientCaCertFile: ${files.ca}, requireClientCert: false }`,
          `    upstreams: [{ kind: tcp, host: 127.0.0.1, port: ${origin.port} }]`,
          '',
        ].join('\n'));
        const h = await startServe([conf, '--quiet'], { listeners: 2 });
        const r = await nodeTlsGet(h.ports[0], 'a.test', { ca: certs.ca });
        assert.strictEqual(r.body, 'origin=A\nsni=a.test\n', 'passthrough route');
        const cn = await presentedCn(h.ports[0], 'm.b.test');
        assert.strictEqual(cn, '*.b.test', 'terminating route with mtls (CA read from its file)');
        const t = await openTunnel(h.ports[1], `127.0.0.1:${echo.port}`);
        assert.strictEqual(t.head, ESTABLISHED);
        t.socket.destroy();
        h.child.kill('SIGTERM');
        assert.strictEqual((await h.exited).code, 0);
      }
    });

    it('every error names file:line:column and what is wrong, one line, exit 2', async () => {
      const dir = tempDir();
      const files = copyCerts(dir);
      const route = (extra) => ({ sni: 'a.test', upstreams: [tcp(1)], ...extra });
      const cases = [
        ['syntax.jsonc', '{\n  "listeners": [\n    { "port": 0 }\n  ]\n  "routes": []\n}\n', /syntax\.jsonc:5:3: not valid JSON: expected ',' or a closing bracket, got '"'$/],
        ['unclosed.json', '{ "listeners": [ /* no end', /unclosed\.json:1:\d+: not valid JSON: comment not closed/],
        ['dup.jsonc', '{\n  "workerThreads": 1,\n  "workerThreads": 2,\n  "listeners": [] }', /dup\.jsonc:3:3: duplicate key 'workerThreads' \(first at line 2\)$/],
        ['syntax.yaml', 'listeners:\n  - port: 0\n   kind: tls\n', /syntax\.yaml:3:\d+: not valid YAML: /],
        ['dup.yaml', 'listeners: []\nlisteners: []\n', /dup\.yaml:2:1: not valid YAML: Map keys must be unique$/],
        ['port.jsonc', '{\n  "listeners": [\n    { "kind": "connect",\n      "port": 70000 }\n  ]\n}\n', /port\.jsonc:4:7: listeners\[0\]\.port must be an integer 0-65535$/],
        ['port.yaml', 'listeners:\n  - kind: connect\n    port: 70000\n', /port\.yaml:3:5: listeners\[0\]\.port must be an integer 0-65535$/],
        ['empty.yaml', '', /empty\.yaml: the config must be an object \(a mapping of options\), got null/],
        ['missing-cert.json', { listeners: [{ port: 0 }], routes: [route({ terminateTls: true, cert: { certChainFile: 'certs/nope.pem', privateKeyFile: files.a.key } })] },
          new RegExp(`missing-cert\\.json:\\d+:\\d+: routes\\[0\\]\\.cert\\.certChainFile: cannot read '${path.join(dir, 'certs', 'nope.pem').replace(/[.]/g, '\\.')}': ENOENT \\(no such file\\)$`)],
        ['both.json', { listeners: [{ port: 0 }], routes: [route({ terminateTls: true, cert: { certChain: 'x', certChainFile: files.a.chain, privateKeyFile: files.a.key } })] },
          /both\.json:\d+:\d+: routes\[0\]\.cert: give certChain or certChainFile, not both$/],
        ['mismatch.json', { listeners: [{ port: 0 }], routes: [route({ terminateTls: true, cert: { certChainFile: files.a.chain, privateKeyFile: files.b.key } })] },
          /mismatch\.json:\d+:\d+: routes\[0\]\.cert: private key does not match certificate$/],
        ['notpem.json', { listeners: [{ port: 0 }], routes: [route({ terminateTls: true, cert: { certChainFile: files.a.key, privateKeyFile: files.a.key } })] },
          /notpem\.json:\d+:\d+: routes\[0\]\.cert\.certChainFile \('certs\/a\.key'\) must be a PEM-encoded certificate/],
        ['admin.json', { admin: { port: 1, socket: 'x' }, listeners: [{ kind: 'connect', port: 0 }] }, /admin\.json:2:\d+: admin: unknown option 'socket'/],
        // Nested far deeper than any config (the parser and the walks would overflow the stack).
        ['deep.jsonc', `{ "x": ${'['.repeat(3000)}${']'.repeat(3000)} }`, /deep\.jsonc: (objects and arrays are nested more than 64 deep|not valid JSON: .*nested too deeply)/],
        ['deep2.jsonc', `{ "x": ${'['.repeat(2000)}${']'.repeat(2000)} }`, /deep2\.jsonc: (objects and arrays are nested more than 64 deep|not valid JSON: .*nested too deeply)/],
        ['deep.yaml', `x: ${'['.repeat(100)}${']'.repeat(100)}\n`, /deep\.yaml: objects and arrays are nested more than 64 deep/],
      ];
      for (const [name, content, re] of cases) {
        const file = writeFile(dir, name, content);
        const r = await serveExit([file]);
        assert.strictEqual(r.code, 2, `${name}: ${r.stderr}`);
        assert.strictEqual(r.lines.length, 1, `${name}: one line: ${r.stderr}`);
        assert.match(r.lines[0], /^(?:\S+ )?legato: /);
        assert.match(r.lines[0], re, name);
        assert(r.lines[0].includes(file), `${name}: names the file`);
      }
    });

    it('refuses a suspended route with the route named, exit 2', async () => {
      const dir = tempDir();
      const file = writeFile(dir, 'legato.json', {
        listeners: [{ port: 0 }],
        routes: [{ sni: 'a.test', upstreams: [tcp(1)] }, { sni: 'b.test', upstreams: [tcp(1)] }, { sni: 'c.test', suspended: true, upstreams: [] }],
      });
      for (const args of [[file], ['--check', file]]) {
        const r = await serveExit(args);
        assert.strictEqual(r.code, 2);
        const line = fs.readFileSync(file, 'utf8').split('\n').findIndex((l) => l.includes('"suspended"')) + 1;
        assert.deepStrictEqual(r.lines, [`legato: ${file}:${line}:7: routes[2].suspended: a suspended route needs a JavaScript resolveConnection() and cannot be served by 'legato serve'`]);
      }
    });

    it('--check validates everything (certificate files included) without binding: exit 0 or 2, like nginx -t', async () => {
      const dir = tempDir();
      const files = copyCerts(dir);
      // The port is taken: --check must not try to bind it.
      const taken = net.createServer().listen(0, '127.0.0.1');
      await new Promise((resolve) => taken.once('listening', resolve));
      const port = taken.address().port;
      try {
        const good = writeFile(dir, 'good.jsonc', {
          listeners: [{ host: '127.0.0.1', port, defaultCert: { certChainFile: files.def.chain, privateKeyFile: files.def.key } }],
          routes: [{ sni: 'a.test', terminateTls: true, cert: { certChainFile: files.a.chain, privateKeyFile: files.a.key }, upstreams: [tcp(1)] }],
        });
        const ok = await serveExit(['--check', good]);
        assert.strictEqual(ok.code, 0, ok.stderr);
        assert.deepStrictEqual(ok.lines, [`legato: ${good}: configuration ok (1 listener, 1 route, 4 certificate files)`]);
        assert.strictEqual(ok.stdout, '');

        const bad = writeFile(dir, 'bad.jsonc', {
          listeners: [{ host: '127.0.0.1', port, defaultCert: { certChainFile: files.def.chain, privateKeyFile: files.a.key } }],
          routes: [{ sni: 'a.test', upstreams: [tcp(1)] }],
        });
        const no = await serveExit([bad, '--check']);
        assert.strictEqual(no.code, 2);
        assert.match(no.lines[0], /bad\.jsonc:\d+:\d+: listeners\[0\]\.defaultCert: private key does not match certificate$/);
      } finally {
        taken.close();
      }
      const usage = spawnCli(['--check']);
      assert.strictEqual((await usage.exited).code, 2);
      assert.match(usage.lines()[0], /^(?:\S+ )?legato: --check is for serve: legato serve --check <config>$/);
    });
  });

  describe('reload', () => {
    it('SIGHUP swaps routes without touching an open connection; a bad config is logged and kept out', async () => {
      const dir = tempDir();
      const originA = await startTlsOrigin('A', certs.leaves['a.test']);
      const originB = await startTlsOrigin('B', certs.leaves['a.test']);
      const config = (port) => ({ workerThreads: 1, listeners: [{ host: '127.0.0.1', port: 0 }], routes: [{ sni: 'a.test', upstreams: [tcp(port)] }] });
      const file = writeFile(dir, 'legato.json', config(originA.port));
      const status = path.join(dir, 'status.json');
      const h = await startServe([file, '--status-file', status]);
      const port = h.ports[0];
      const before = JSON.parse(fs.readFileSync(status, 'utf8'));
      assert.strictEqual(before.reloadedAt, null);

      const kept = await openTls(port, 'a.test', certs.ca);
      assert.strictEqual(await requestOn(kept, 'a.test'), 'origin=A\nsni=a.test\n');

      // Write the new config without a file event reaching the watcher first: SIGHUP is the trigger.
      fs.writeFileSync(file, JSON.stringify(config(originB.port)));
      h.child.kill('SIGHUP');
      await h.waitLine(/^(?:\S+ )?legato: reloaded .*legato\.json \((SIGHUP|file changed)\): 1 route, 0 certificate files$/m);
      assert.strictEqual((await nodeTlsGet(port, 'a.test', { ca: certs.ca })).body, 'origin=B\nsni=a.test\n', 'a new connection takes the new route');
      assert.strictEqual(await requestOn(kept, 'a.test'), 'origin=A\nsni=a.test\n', 'the open connection still reaches its origin');
      await waitFor(() => JSON.parse(fs.readFileSync(status, 'utf8')).reloadedAt !== null, 5000, { message: 'status file reloadedAt' });

      // A bad config: one line saying why, the running routes stay.
      fs.writeFileSync(file, JSON.stringify({ listeners: [{ host: '127.0.0.1', port: 0 }], routes: [{ sni: 'a.test', upstreams: [tcp(99999)] }] }));
      h.child.kill('SIGHUP');
      const failed = await h.waitLine(/^(?:\S+ )?legato: reload \((?:SIGHUP|file changed)\) failed, still running the previous config: (.*)$/m);
      assert.match(failed[1], /legato\.json:1:\d+: routes\[0\]\.upstreams\[0\]\.port must be an integer 1-65535$/);
      assert.strictEqual((await nodeTlsGet(port, 'a.test', { ca: certs.ca })).body, 'origin=B\nsni=a.test\n');
      assert.strictEqual(await requestOn(kept, 'a.test'), 'origin=A\nsni=a.test\n');
      assert.strictEqual(h.child.exitCode, null, 'still running');
      kept.destroy();
      h.child.kill('SIGTERM');
      assert.strictEqual((await h.exited).code, 0);
    });

    it('a changed config file or certificate file reloads by itself (write + rename too); unrelated files do not', async () => {
      const dir = tempDir();
      const files = copyCerts(dir);
      const app = await startHttpOrigin('app');
      const config = (sni) => ({
        workerThreads: 1,
        admin: { port: 0 },
        listeners: [{ host: '127.0.0.1', port: 0 }],
        routes: [{ sni, terminateTls: true, cert: { certChainFile: 'tls/route.pem', privateKeyFile: 'tls/route.key' }, upstreams: [tcp(app.port)] }],
      });
      // The certificates are in another directory than the config: both are watched.
      writeFile(dir, 'conf/tls/route.pem', fs.readFileSync(path.join(dir, files.a.chain)));
      writeFile(dir, 'conf/tls/route.key', fs.readFileSync(path.join(dir, files.a.key)));
      const file = writeFile(dir, 'conf/legato.json', config('a.test'));
      const h = await startServe([file], { admin: true });
      const port = h.ports[0];
      assert.strictEqual(await presentedCn(port, 'a.test'), 'a.test');

      // Unrelated files in the watched directories: nothing to reload.
      writeFile(dir, 'conf/notes.txt', 'hello');
      writeFile(dir, 'conf/tls/other.pem', 'x');
      // The config, replaced as editors do (temporary file + rename).
      replaceFile(file, config('x.b.test'));
      await h.waitLine(/^(?:\S+ )?legato: reloaded .*legato\.json \(file changed\): 1 route, 2 certificate files$/m);
      // A renewed certificate (the route's files replaced): the next handshake presents it.
      replaceFile(path.join(dir, 'conf/tls/route.key'), fs.readFileSync(path.join(dir, files.b.key)));
      replaceFile(path.join(dir, 'conf/tls/route.pem'), fs.readFileSync(path.join(dir, files.b.chain)));
      await waitFor(async () => (await presentedCn(port, 'x.b.test')) === '*.b.test', 10000, { message: 'the renewed certificate was not picked up', describe: () => h.stderr() });
      const r = await nodeTlsGet(port, 'x.b.test', { ca: certs.ca });
      assert.strictEqual(r.body, 'origin=app\n');
      // Every reload that happened was a real change (an intermediate one with the new key and
      // the old certificate may have failed: it is reported, never applied).
      const reloaded = h.lines().filter((l) => /^(?:\S+ )?legato: reloaded /.test(l));
      assert.strictEqual(reloaded.length, 2, h.stderr());
      for (const l of h.lines().filter((x) => /failed/.test(x))) assert.match(l, /private key does not match certificate/);
      assert(!/notes\.txt|other\.pem/.test(h.stderr()));
      h.child.kill('SIGTERM');
      assert.strictEqual((await h.exited).code, 0);
    });

    it('a file beside the config written every 50 ms does not postpone the reload of a changed config', async () => {
      const dir = tempDir();
      const config = (maxConnections) => ({ workerThreads: 1, listeners: [{ kind: 'connect', host: '127.0.0.1', port: 0, maxConnections }] });
      const file = writeFile(dir, 'legato.json', config(10));
      const h = await startServe([file]);
      const noise = path.join(dir, 'busy.log');
      const writer = setInterval(() => fs.appendFileSync(noise, 'x\n'), 50);
      try {
        await new Promise((resolve) => setTimeout(resolve, 300));
        const t0 = Date.now();
        replaceFile(file, config(20));
        // The writer goes on for the whole wait: the reload must not wait for it to stop.
        await h.waitLine(/^(?:\S+ )?legato: (reloaded|listeners handed over)/m, 5000);
        assert.ok(Date.now() - t0 < 5000);
      } finally {
        clearInterval(writer);
      }
      h.child.kill('SIGTERM');
      assert.strictEqual((await h.exited).code, 0);
    });

    it('listener changes are handed over to a new engine on the same ports (port 0 kept); routes in the same file are live', async () => {
      const dir = tempDir();
      const echo = await startEchoServer();
      const origin = await startTlsOrigin('A', certs.leaves['a.test']);
      const config = (extra) => ({
        workerThreads: 1,
        listeners: [
          { host: '127.0.0.1', port: 0 },
          { kind: 'connect', host: '127.0.0.1', port: 0, connect: { allowPorts: [echo.port], allowCidrs: ['127.0.0.1'] } },
        ],
        routes: [{ sni: 'a.test', upstreams: [tcp(origin.port)] }],
        ...extra,
      });
      const file = writeFile(dir, 'legato.json', config({}));
      const status = path.join(dir, 'status.json');
      writeFile(dir, 'legato.json', { ...config({}), statusFile: 'status.json' });
      const h = await startServe([file], { listeners: 2 });
      const next = config({ workerThreads: 2 });
      next.listeners[1].maxConnections = 5;
      next.routes.push({ sni: 'b.test', upstreams: [tcp(origin.port)] });
      next.statusFile = 'status.json';
      writeFile(dir, 'legato.json', next);
      h.child.kill('SIGHUP');
      await h.waitLine(/^(?:\S+ )?legato: listeners handed over to a new engine \(listeners\[1\]\.maxConnections, workerThreads\); the previous one finishes its connections within 5 s$/m);
      assert.match(h.stderr(), /reloaded .*: 2 routes/);
      const st = JSON.parse(fs.readFileSync(status, 'utf8'));
      assert.deepStrictEqual(st.restartNeeded, []);
      assert.deepStrictEqual(st.listeners.map((l) => l.port), h.ports, 'the listeners given as port 0 keep their ports');
      // The same ports serve, and the new route is live.
      const t = await openTunnel(h.ports[1], `127.0.0.1:${echo.port}`);
      assert.strictEqual(t.head, ESTABLISHED);
      t.socket.destroy();
      assert.strictEqual((await nodeTlsGet(h.ports[0], 'b.test', { ca: certs.ca, checkServerIdentity: () => undefined })).body, 'origin=A\nsni=b.test\n');
      h.child.kill('SIGTERM');
      assert.strictEqual((await h.exited).code, 0);
    });

    it('a changed protection.maxTrackedIps is handed over to a new engine (the table is sized once per engine)', async () => {
      const dir = tempDir();
      const config = (maxTrackedIps) => ({ workerThreads: 1, listeners: [{ kind: 'connect', host: '127.0.0.1', port: 0 }], protection: { maxTrackedIps, maxConcurrentPerIp: 50 } });
      const file = writeFile(dir, 'legato.json', config(5000));
      const h = await startServe([file]);
      writeFile(dir, 'legato.json', config(6000));
      h.child.kill('SIGHUP');
      await h.waitLine(/^(?:\S+ )?legato: listeners handed over to a new engine \(protection\.maxTrackedIps\)/m);
      assert.doesNotMatch(h.stderr(), /failed/);
      h.child.kill('SIGTERM');
      assert.strictEqual((await h.exited).code, 0);
    });

    it('a reload moves the admin endpoint and the status file when they change', async () => {
      const dir = tempDir();
      const base = { workerThreads: 1, listeners: [{ kind: 'connect', host: '127.0.0.1', port: 0 }] };
      const file = writeFile(dir, 'legato.json', { ...base, admin: { port: 0 }, statusFile: 'one.json' });
      const h = await startServe([file], { admin: true });
      const tcpAdmin = h.admin;
      assert.strictEqual((await httpRequest(tcpAdmin, '/ready')).status, 200);
      assert(fs.existsSync(path.join(dir, 'one.json')));
      writeFile(dir, 'legato.json', { ...base, admin: { path: 'admin.sock' }, statusFile: 'two.json' });
      h.child.kill('SIGHUP');
      await h.waitLine(/^(?:\S+ )?legato: admin endpoint on unix:.*admin\.sock /m);
      await h.waitLine(/^(?:\S+ )?legato: reloaded /m);
      assert.strictEqual((await httpRequest({ path: path.join(dir, 'admin.sock') }, '/ready')).status, 200);
      await assert.rejects(httpRequest(tcpAdmin, '/ready'), /ECONNREFUSED/, 'the old admin address is closed');
      assert(!fs.existsSync(path.join(dir, 'one.json')), 'the old status file is removed');
      const st = JSON.parse(fs.readFileSync(path.join(dir, 'two.json'), 'utf8'));
      assert.deepStrictEqual(st.admin, { path: path.join(dir, 'admin.sock') });
      assert.notStrictEqual(st.reloadedAt, null);
      // A BOM at the start of a JSONC file (some editors write one) is fine.
      const reloads = () => h.lines().filter((l) => /^(?:\S+ )?legato: reloaded /.test(l)).length;
      const before = reloads();
      writeFile(dir, 'legato.json', `\uFEFF${JSON.stringify({ ...base, admin: { path: 'admin.sock' }, statusFile: 'two.json' })}`);
      h.child.kill('SIGHUP');
      await waitFor(() => reloads() > before, 10000, { message: 'no reload of the file with a BOM', describe: () => h.stderr() });
      assert(!/failed/.test(h.stderr()), h.stderr());
      h.child.kill('SIGTERM');
      assert.strictEqual((await h.exited).code, 0);
      assert(!fs.existsSync(path.join(dir, 'two.json')));
    });

    it('status file: written atomically at start with the bound ports, removed at exit; --status-file wins over statusFile', async () => {
      const dir = tempDir();
      const file = writeFile(dir, 'conf/legato.json', { statusFile: 'run/status.json', admin: { port: 0 }, listeners: [{ kind: 'connect', port: 0 }] });
      fs.mkdirSync(path.join(dir, 'conf', 'run'));
      const h = await startServe([file], { admin: true });
      const st = JSON.parse(fs.readFileSync(path.join(dir, 'conf', 'run', 'status.json'), 'utf8'));
      assert.strictEqual(st.pid, h.child.pid);
      assert.strictEqual(st.version, require('../package.json').version);
      assert.strictEqual(st.command, 'serve');
      assert.strictEqual(st.configPath, file);
      assert(!Number.isNaN(Date.parse(st.startedAt)));
      assert.strictEqual(st.reloadedAt, null);
      assert.deepStrictEqual(st.listeners, [{ kind: 'connect', host: '127.0.0.1', port: h.ports[0] }]);
      assert.deepStrictEqual(st.admin, h.admin);
      assert.deepStrictEqual(st.restartNeeded, []);
      assert.deepStrictEqual(fs.readdirSync(path.join(dir, 'conf', 'run')), ['status.json'], 'no temporary file left');
      h.child.kill('SIGTERM');
      assert.strictEqual((await h.exited).code, 0);
      assert(!fs.existsSync(path.join(dir, 'conf', 'run', 'status.json')), 'removed at exit');

      const flag = path.join(dir, 'flag.json');
      const h2 = await startServe([file, '--status-file', flag], { admin: true });
      assert.strictEqual(JSON.parse(fs.readFileSync(flag, 'utf8')).pid, h2.child.pid);
      assert(!fs.existsSync(path.join(dir, 'conf', 'run', 'status.json')));
      h2.child.kill('SIGINT');
      assert.strictEqual((await h2.exited).code, 0);
      assert(!fs.existsSync(flag));

      // A status file that cannot be written: exit 1, nothing left listening.
      const h3 = spawnCli(['serve', file, '--status-file', path.join(dir, 'no', 'such', 'dir', 'status.json')]);
      assert.strictEqual((await h3.exited).code, 1);
      assert.match(h3.stderr(), /^(?:\S+ )?legato: cannot write the status file .*: ENOENT/m);
    });
  });

  describe('signals', () => {
    it('SIGUSR1 logs the metrics as one line and does not open the inspector', async () => {
      const echo = await startEchoServer();
      const h = await startCli(['--port', '0', '--allow-cidr', '127.0.0.1', '--allow-port', String(echo.port), '--workers', '1']);
      const t = await openTunnel(h.port, `127.0.0.1:${echo.port}`);
      assert.strictEqual(t.head, ESTABLISHED);
      h.child.kill('SIGUSR1');
      const m = await h.waitLine(/^(?:\S+ )?legato: metrics (.*)$/m);
      assert.match(m[1], /^activeConnections=1 totalConnections=1 closedConnections=0 bytesFromClients=\d+ bytesToClients=\d+ .*status200=1 .*listeners=127\.0\.0\.1:\d+\/connect:1$/);
      assert(!/Debugger|inspector/i.test(h.stderr()), h.stderr());
      const inspector = await new Promise((resolve) => {
        const s = net.connect(9229, '127.0.0.1');
        s.once('connect', () => { s.destroy(); resolve(true); });
        s.once('error', () => resolve(false));
      });
      assert(!inspector, 'something listens on the inspector port 9229');
      t.socket.destroy();
      h.child.kill('SIGTERM');
      assert.strictEqual((await h.exited).code, 0);
    });

    it('--log-file: lines go to the file, and SIGUSR1 reopens it after logrotate moved it', async () => {
      const dir = tempDir();
      const log = path.join(dir, 'legato.log');
      const conf = writeFile(dir, 'legato.json', { listeners: [{ kind: 'connect', port: 0 }] });
      const h = await startServe([conf, '--log-file', log], { logFile: log });
      assert.strictEqual(h.stderr(), '', 'nothing on stderr');
      fs.renameSync(log, `${log}.1`);
      h.child.kill('SIGUSR1');
      await waitFor(() => fs.existsSync(log) && /reopened the log file/.test(fs.readFileSync(log, 'utf8')), 10000, { message: 'no reopened log file' });
      assert.match(fs.readFileSync(`${log}.1`, 'utf8'), /^(?:\S+ )?legato: listening on /m);
      assert.match(fs.readFileSync(`${log}.1`, 'utf8'), /^(?:\S+ )?legato: metrics activeConnections=0 /m, 'the metrics line went to the file open at the time');
      h.child.kill('SIGTERM');
      assert.strictEqual((await h.exited).code, 0);
      assert.match(fs.readFileSync(log, 'utf8'), /^(?:\S+ )?legato: stopped$/m);
    });

    it('forward proxy: SIGHUP does not end the process (nothing to reload)', async () => {
      const h = await startCli(['--port', '0']);
      h.child.kill('SIGHUP');
      await h.waitLine(/^(?:\S+ )?legato: SIGHUP: nothing to reload \(the forward proxy reads its flags and environment at start only; restart it to change them\)$/m);
      const s = net.connect(h.port, '127.0.0.1');
      await new Promise((resolve, reject) => { s.once('connect', resolve); s.once('error', reject); });
      s.destroy();
      h.child.kill('SIGTERM');
      assert.deepStrictEqual(await h.exited, { code: 0, signal: null });
    });
  });
});
