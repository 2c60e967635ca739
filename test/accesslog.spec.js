'use strict';
// The access log (issue 15 point 9): one 'access' event per connection at close, on every
// listener kind, and one per refusal at accept; the CLI's text and JSON lines built from them;
// --quiet and --log-level; a full event queue drops and counts without slowing relaying.
//
// Everything runs on real sockets: the CLI as a child process driven by curl and raw CONNECTs,
// the API with Node's tls client, a hand-built ClientHello for hostile input, and a flood from a
// worker thread while this thread is blocked (so the engine's event queue really fills).

const assert = require('assert');
const http = require('http');
const net = require('net');
const tls = require('tls');
const { Worker } = require('worker_threads');
const { getCerts } = require('./helpers/certs');
const { startTlsOrigin, startEchoServer, startTcpServer } = require('./helpers/servers');
const { startProxy, portOf, cleanup, track } = require('./helpers/proxy');
const { run } = require('./helpers/clients');
const { waitFor } = require('./helpers/wait');
const { buildClientHello } = require('./helpers/hello');
const { request, openTunnel, startCli } = require('./helpers/connect');
const { Log, accessLine } = require('../lib/service');

/** An access line of the text format, fields by name. */
const ACCESS_RE = /^(?<time>\S+) legato: access client=(?<client>\S+) listener=(?<listener>\S+) sni=(?<sni>\S+) route=(?<route>\S+) upstream=(?<upstream>\S+) decision=(?<decision>\S+) status=(?<status>\S+) tls=(?<tls>\S+) cipher=(?<cipher>\S+) ja4=(?<ja4>\S+) from_client=(?<fromClient>\d+) to_client=(?<toClient>\d+) duration_ms=(?<durationMs>\d+) close=(?<close>\S+)$/gm;

function accessLines(text) {
  return [...text.matchAll(ACCESS_RE)].map((m) => m.groups);
}

/** An HTTP origin that answers every request with `body` and keeps the connection (keep-alive)
 * until the client closes it; counts bytes both ways per connection. */
async function startCountingOrigin(body) {
  const server = http.createServer((req, res) => {
    req.resume();
    req.on('end', () => {
      res.writeHead(200, { 'Content-Type': 'text/plain', 'Content-Length': Buffer.byteLength(body) });
      res.end(body);
    });
  });
  const done = [];
  server.on('connection', (s) => s.on('close', () => done.push({ read: s.bytesRead, written: s.bytesWritten })));
  await new Promise((resolve) => server.listen(0, '127.0.0.1', resolve));
  track(server, (s) => new Promise((resolve) => { s.closeAllConnections(); s.close(() => resolve()); }), 0);
  return { port: server.address().port, done };
}

/** Wait for `n` 'access' events on a proxy (collected in proxy.access). */
function collectAccess(proxy) {
  proxy.access = [];
  proxy.on('access', (a) => proxy.access.push(a));
  return (n = 1, ms = 10000) => waitFor(() => proxy.access.length >= n, ms, { describe: () => JSON.stringify(proxy.access) }).then(() => proxy.access);
}

describe('access log', function () {
  this.timeout(60000);
  let certs;
  before(() => { certs = getCerts(); });
  afterEach(cleanup);

  describe('the CLI (a spawned legato)', () => {
    it('a CONNECT tunnel driven by curl: exactly one access line with the bytes each way and why it closed', async () => {
      const origin = await startCountingOrigin('x'.repeat(1000));
      const h = await startCli(['--port', '0', '--allow-cidr', '127.0.0.1', '--allow-port', String(origin.port)]);
      const r = await run('curl', ['-sS', '--max-time', '10', '-p', '-x', `http://127.0.0.1:${h.port}`,
        '--data-binary', 'hello access log', `http://127.0.0.1:${origin.port}/`]);
      assert.strictEqual(r.code, 0, r.stderr);
      assert.strictEqual(r.stdout, 'x'.repeat(1000));
      await waitFor(() => accessLines(h.stderr()).length >= 1 && origin.done.length === 1, 10000, { describe: () => h.stderr() });
      await new Promise((resolve) => setTimeout(resolve, 200)); // a second line would come now
      const lines = accessLines(h.stderr());
      assert.strictEqual(lines.length, 1, h.stderr());
      const a = lines[0];
      assert(!Number.isNaN(Date.parse(a.time)) && /^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z$/.test(a.time), a.time);
      assert.match(a.client, /^127\.0\.0\.1:\d+$/);
      assert.strictEqual(a.listener, `127.0.0.1:${h.port}`);
      assert.strictEqual(a.upstream, `127.0.0.1:${origin.port}`);
      assert.strictEqual(a.decision, 'tunnel');
      assert.strictEqual(a.status, '200');
      assert.strictEqual(a.sni, '-');
      assert.strictEqual(a.tls, '-');
      // What the origin read is what the client sent through the tunnel, and the other way round.
      assert.strictEqual(Number(a.fromClient), origin.done[0].read);
      assert.strictEqual(Number(a.toClient), origin.done[0].written);
      // The origin keeps the connection open (keep-alive): curl, done, closes first.
      assert.strictEqual(a.close, 'client_closed');
      // Every line carries its time.
      for (const line of h.lines()) assert.match(line, /^\d{4}-\d\d-\d\dT\S+Z legato: /, line);
    });

    it('--log-format json: every line is one JSON object with time and level; the access line has the fields', async () => {
      const echo = await startEchoServer();
      const { spawnCli } = require('./helpers/connect');
      const h = spawnCli(['--port', '0', '--log-format', 'json', '--allow-cidr', '127.0.0.1', '--allow-port', String(echo.port)]);
      h.port = Number((await h.waitLine(/"msg":"listening on 127\.0\.0\.1:(\d+) /))[1]);
      const t = await openTunnel(h.port, `127.0.0.1:${echo.port}`);
      const got = new Promise((resolve) => t.socket.once('data', (d) => resolve(d.toString())));
      t.socket.write('ping');
      assert.strictEqual(await got, 'ping');
      t.socket.end();
      await waitFor(() => /"msg":"access"/.test(h.stderr()), 10000, { describe: () => h.stderr() });
      const objects = h.lines().map((l) => JSON.parse(l));
      for (const o of objects) {
        assert.strictEqual(typeof o.time, 'string');
        assert(!Number.isNaN(Date.parse(o.time)), o.time);
        assert(['error', 'warn', 'info', 'debug'].includes(o.level), JSON.stringify(o));
      }
      const access = objects.filter((o) => o.msg === 'access');
      assert.strictEqual(access.length, 1);
      const a = access[0];
      assert.strictEqual(a.upstream, `127.0.0.1:${echo.port}`);
      assert.strictEqual(a.bytesFromClient, 4);
      assert.strictEqual(a.bytesToClient, 4);
      assert.strictEqual(a.closeReason, 'client_closed');
      assert.strictEqual(a.decision, 'tunnel');
      assert.strictEqual(a.status, 200);
      assert.deepStrictEqual(a.listener, { host: '127.0.0.1', port: h.port, kind: 'connect' });
      assert.strictEqual(a.sni, null);
      assert(objects.some((o) => /^listening on /.test(o.msg)), 'the startup line is JSON too');
    });

    it('a CONNECT refused by the port rule logs status 403 and close=refused:port', async () => {
      const h = await startCli(['--port', '0', '--allow-cidr', '127.0.0.1']);
      const r = await request(h.port, 'CONNECT 127.0.0.1:8443 HTTP/1.1\r\nHost: 127.0.0.1:8443\r\n\r\n');
      assert.strictEqual(r.status, 403);
      const m = await h.waitLine(/^\S+ legato: access .* upstream=127\.0\.0\.1:8443 decision=none status=403 .* from_client=0 to_client=0 duration_ms=\d+ close=refused:port$/m);
      assert(m);
    });

    it('an idle tunnel closed by --idle-timeout logs close=idle_timeout', async () => {
      const echo = await startEchoServer();
      const h = await startCli(['--port', '0', '--idle-timeout', '0.3', '--allow-cidr', '127.0.0.1', '--allow-port', String(echo.port)]);
      const t = await openTunnel(h.port, `127.0.0.1:${echo.port}`);
      await new Promise((resolve) => t.socket.once('close', resolve));
      const m = await h.waitLine(/^\S+ legato: access .* close=(\S+)$/m);
      assert.strictEqual(m[1], 'idle_timeout');
    });

    it('--quiet, LEGATO_QUIET=1, --log-level warn and LEGATO_LOG_LEVEL=error print no access line', async () => {
      const fs = require('fs');
      const path = require('path');
      const os = require('os');
      const { spawnCli } = require('./helpers/connect');
      const echo = await startEchoServer();
      const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'legato-accesslog-'));
      track(dir, (d) => fs.rmSync(d, { recursive: true, force: true }), 0);
      const cases = [[['--quiet'], {}], [[], { LEGATO_QUIET: '1' }], [['--log-level', 'warn'], {}], [[], { LEGATO_LOG_LEVEL: 'error' }]];
      for (const [i, [args, env]] of cases.entries()) {
        // The status file says when it listens and where (the startup line is info).
        const status = path.join(dir, `status${i}.json`);
        const h = spawnCli(['--port', '0', '--status-file', status, '--allow-cidr', '127.0.0.1', '--allow-port', String(echo.port), ...args], { env });
        await waitFor(() => fs.existsSync(status) || h.child.exitCode !== null, 15000);
        const port = JSON.parse(fs.readFileSync(status, 'utf8')).listeners[0].port;
        const t = await openTunnel(port, `127.0.0.1:${echo.port}`);
        t.socket.end();
        await new Promise((resolve) => t.socket.once('close', resolve));
        const r = await request(port, 'CONNECT 127.0.0.1:8443 HTTP/1.1\r\nHost: x\r\n\r\n');
        assert.strictEqual(r.status, 403);
        await new Promise((resolve) => setTimeout(resolve, 300)); // the lines would be out by now
        h.child.kill('SIGTERM');
        await h.exited;
        const what = `${JSON.stringify(args)} ${JSON.stringify(env)}:\n${h.stderr()}`;
        assert(!/legato: access /.test(h.stderr()), what);
        if (i < 2) assert.match(h.stderr(), /legato: listening on /, what);
        else if (i === 2) assert(h.lines().every((l) => / legato: warning: /.test(l)), `warn: warnings only: ${what}`);
        else assert.strictEqual(h.stderr(), '', `error: no error happened: ${what}`);
      }
    });

    it('--log-level debug adds the coalesced blocked lines; a refusal at accept gets its access line (refused:cidr_blocked, 403)', async () => {
      const { spawnCli } = require('./helpers/connect');
      const h = spawnCli(['--port', '0', '--log-format', 'json', '--log-level', 'debug', '--allow-client', '10.0.0.0/8']);
      const port = Number((await h.waitLine(/"msg":"listening on 127\.0\.0\.1:(\d+) /))[1]);
      const r = await request(port, 'CONNECT 127.0.0.1:443 HTTP/1.1\r\nHost: x\r\n\r\n');
      assert.strictEqual(r.status, 403);
      await waitFor(() => /"msg":"access"/.test(h.stderr()) && /"msg":"blocked /.test(h.stderr()), 10000, { describe: () => h.stderr() });
      const objects = h.lines().map((l) => JSON.parse(l));
      const blocked = objects.find((o) => /^blocked /.test(o.msg));
      assert.strictEqual(blocked.level, 'debug');
      assert.match(blocked.msg, new RegExp(`^blocked ip=127\\.0\\.0\\.1 reason=cidr_blocked listener=127\\.0\\.0\\.1:${port} count=1$`));
      const access = objects.find((o) => o.msg === 'access');
      assert.strictEqual(access.closeReason, 'refused:cidr_blocked');
      assert.strictEqual(access.status, 403);
      assert.strictEqual(access.decision, 'none');
    });

    it('a bad --log-format or LEGATO_LOG_LEVEL exits 2 naming it', async () => {
      const { spawnCli } = require('./helpers/connect');
      for (const [args, env, re] of [[['--log-format', 'xml'], {}, /--log-format 'xml' must be one of text, json/], [[], { LEGATO_LOG_LEVEL: 'loud' }, /LEGATO_LOG_LEVEL='loud' must be one of error, warn, info, debug/]]) {
        const h = spawnCli(args, { env });
        assert.strictEqual((await h.exited).code, 2);
        assert.match(h.stderr(), re);
      }
    });
  });

  describe('legato serve: the log block', () => {
    it('log.format, log.access apply at start and again at a reload; a bad log block exits 2', async () => {
      const { tempDir, writeFile, replaceFile, startServe } = require('./helpers/serve');
      const { spawnCli } = require('./helpers/connect');
      const echo = await startEchoServer();
      const dir = tempDir();
      const conf = (log) => ({ log, listeners: [{ kind: 'connect', host: '127.0.0.1', port: 0, connect: { allowCidrs: ['127.0.0.1/32'], allowPorts: [echo.port] } }] });
      const file = writeFile(dir, 'legato.json', conf({ format: 'text' }));
      const h = await startServe([file]);
      const tunnel = async () => {
        const t = await openTunnel(h.ports[0], `127.0.0.1:${echo.port}`);
        t.socket.end('abc');
        await new Promise((resolve) => t.socket.once('close', resolve));
      };
      await tunnel();
      await h.waitLine(/^\S+ legato: access .* upstream=127\.0\.0\.1:\d+ decision=tunnel status=200 .* from_client=3 to_client=3 .* close=client_closed$/m);
      const reloads = () => (h.stderr().match(/reloaded /g) || []).length;
      const reload = async (log) => {
        const n = reloads();
        replaceFile(file, JSON.stringify(conf(log)));
        h.child.kill('SIGHUP');
        await waitFor(() => reloads() > n, 15000, { describe: () => h.stderr() });
      };
      await reload({ format: 'json' });
      await tunnel();
      await waitFor(() => /^\{.*"msg":"access"/m.test(h.stderr()), 10000, { describe: () => h.stderr() });
      const json = h.lines().filter((l) => l.startsWith('{')).map((l) => JSON.parse(l)).filter((o) => o.msg === 'access');
      assert.strictEqual(json.length, 1);
      assert.strictEqual(json[0].bytesFromClient, 3);
      await reload({ format: 'json', access: false });
      const before = h.stderr().split('"msg":"access"').length;
      await tunnel();
      await new Promise((resolve) => setTimeout(resolve, 300));
      assert.strictEqual(h.stderr().split('"msg":"access"').length, before, 'log.access: false silences the access lines');
      h.child.kill('SIGTERM');
      await h.exited;
      const bad = writeFile(dir, 'bad.json', conf({ level: 'loud' }));
      const c = spawnCli(['serve', '--check', bad]);
      assert.strictEqual((await c.exited).code, 2);
      assert.match(c.stderr(), /log\.level must be one of error, warn, info, debug/);
    });
  });

  describe("the API: 'access' events", () => {
    it('a terminated TLS route: SNI, route, upstream, TLS version, cipher and JA4', async () => {
      const echo = await startEchoServer();
      const proxy = await startProxy({ routes: [{ sni: 'a.test', terminateTls: true, cert: { certChain: certs.leaves['a.test'].chain, privateKey: certs.leaves['a.test'].key }, upstreams: [{ kind: 'tcp', host: '127.0.0.1', port: echo.port }] }] });
      const wait = collectAccess(proxy);
      const s = tls.connect({ host: '127.0.0.1', port: portOf(proxy), servername: 'a.test', ca: certs.ca });
      await new Promise((resolve, reject) => { s.once('secureConnect', resolve); s.once('error', reject); });
      const got = new Promise((resolve) => s.once('data', (d) => resolve(d.toString())));
      s.write('hello');
      assert.strictEqual(await got, 'hello');
      const cipher = s.getCipher().standardName || s.getCipher().name;
      const version = s.getProtocol();
      const localPort = s.localPort;
      s.end();
      const [a] = await wait(1);
      assert.strictEqual(a.sni, 'a.test');
      assert.strictEqual(a.route, 'a.test');
      assert.strictEqual(a.decision, 'terminate');
      assert.strictEqual(a.upstream, `tcp 127.0.0.1:${echo.port}`);
      assert.strictEqual(a.tlsVersion, version);
      assert.strictEqual(a.tlsCipher, cipher);
      assert.match(a.ja4, /^t13d\d{4}[a-z0-9]{2}_[0-9a-f]{12}_[0-9a-f]{12}$/);
      assert.strictEqual(a.bytesFromClient, 5, 'plaintext relayed to the upstream');
      assert.strictEqual(a.peerIp, '127.0.0.1');
      assert.strictEqual(a.peerPort, localPort);
      assert.deepStrictEqual(a.listener, { host: '127.0.0.1', port: portOf(proxy), kind: 'tls' });
      assert.strictEqual(a.status, null);
      assert.strictEqual(a.closeReason, 'client_closed');
      assert(!Number.isNaN(Date.parse(a.time)));
      // The text line of that record.
      assert.match(accessLine(a), new RegExp(`^access client=127\\.0\\.0\\.1:\\d+ listener=127\\.0\\.0\\.1:\\d+ sni=a\\.test route=a\\.test upstream="tcp 127\\.0\\.0\\.1:${echo.port}" decision=terminate status=- tls=${version} cipher=${cipher} ja4=t13\\S+ from_client=5 to_client=\\d+ duration_ms=\\d+ close=client_closed$`));
    });

    it('a passthrough route: the SNI and JA4 from the ClientHello, no TLS version (not terminated)', async () => {
      const origin = await startTlsOrigin('a', certs.leaves['a.test']);
      const proxy = await startProxy({ routes: [{ sni: '*.test', terminateTls: false, upstreams: [{ kind: 'tcp', host: '127.0.0.1', port: origin.port }] }] });
      const wait = collectAccess(proxy);
      const s = tls.connect({ host: '127.0.0.1', port: portOf(proxy), servername: 'a.test', ca: certs.ca });
      await new Promise((resolve, reject) => { s.once('secureConnect', resolve); s.once('error', reject); });
      s.end();
      const [a] = await wait(1);
      assert.strictEqual(a.sni, 'a.test');
      assert.strictEqual(a.route, '*.test');
      assert.strictEqual(a.decision, 'passthrough');
      assert.strictEqual(a.tlsVersion, null);
      assert.strictEqual(a.tlsCipher, null);
      assert.match(a.ja4, /^t13d/);
      assert(a.bytesFromClient > 0 && a.bytesToClient > 0, JSON.stringify(a));
    });

    it('no route and a hostile SNI: no_route with the SNI, handshake_failed without one; the lines stay one line each', async () => {
      const echo = await startEchoServer();
      const proxy = await startProxy({ routes: [{ sni: 'a.test', terminateTls: false, upstreams: [{ kind: 'tcp', host: '127.0.0.1', port: echo.port }] }] });
      const wait = collectAccess(proxy);
      for (const sni of ['other.test', 'a"b\x01\n\x1b[31m.test']) {
        const s = net.connect(portOf(proxy), '127.0.0.1');
        s.on('error', () => {});
        s.write(buildClientHello({ sni }));
        await new Promise((resolve) => s.once('close', resolve));
      }
      const events = await wait(2);
      const noRoute = events.find((e) => e.closeReason === 'no_route');
      assert(noRoute, JSON.stringify(events));
      assert.strictEqual(noRoute.sni, 'other.test');
      assert.strictEqual(noRoute.route, null);
      assert.strictEqual(noRoute.decision, 'none');
      const hostile = events.find((e) => e.closeReason === 'handshake_failed');
      assert(hostile, JSON.stringify(events));
      assert.strictEqual(hostile.sni, null, 'an SNI outside the host-name grammar is never kept');
      // Whatever reaches a line from a client is escaped: one line, no control byte, valid JSON.
      const chunks = [];
      for (const format of ['text', 'json']) {
        const log = new Log({ write: (s) => chunks.push(s) }, null, { format });
        log.access({ ...hostile, sni: 'a"b\x01\n\x1b[31m\u00e9.test', upstream: 'x y' });
      }
      const [text, json] = chunks;
      assert.strictEqual(text.split('\n').length, 2, text);
      // eslint-disable-next-line no-control-regex
      assert(!/[\x00-\x08\x0b-\x1f\x7f-\uffff]/.test(text), JSON.stringify(text));
      assert.match(text, / sni="a\\"b\\u0001\\n\\u001b\[31m\\u00e9\.test" /);
      assert.match(text, / upstream="x y" /);
      assert.strictEqual(JSON.parse(json).sni, 'a"b\x01\n\x1b[31m\u00e9.test');
    });

    it('a suspended route: suspended:passthrough after a decision, suspend_rejected after null', async () => {
      const echo = await startEchoServer();
      const proxy = await startProxy({ routes: [{ sni: '', suspended: true, upstreams: [] }] });
      const wait = collectAccess(proxy);
      let n = 0;
      proxy.on('suspended', (conn) => {
        n++;
        proxy.resolveConnection(conn.id, n === 1 ? { upstreams: [{ kind: 'tcp', host: '127.0.0.1', port: echo.port }] } : null);
      });
      for (let i = 0; i < 2; i++) {
        const s = net.connect(portOf(proxy), '127.0.0.1');
        s.on('error', () => {});
        s.resume();
        s.write(buildClientHello({ sni: `s${i}.test` }));
        if (i === 0) {
          await new Promise((resolve) => s.once('data', resolve)); // echoed: relaying
          s.end();
        } // else the proxy closes it on the null decision
        await new Promise((resolve) => s.once('close', resolve));
      }
      const events = await wait(2);
      const decided = events.find((e) => e.sni === 's0.test');
      const rejected = events.find((e) => e.sni === 's1.test');
      assert.strictEqual(decided.decision, 'suspended:passthrough');
      assert.strictEqual(decided.route, '');
      assert.strictEqual(decided.upstream, `tcp 127.0.0.1:${echo.port}`);
      assert.strictEqual(decided.closeReason, 'client_closed');
      assert.strictEqual(rejected.decision, 'suspended');
      assert.strictEqual(rejected.closeReason, 'suspend_rejected');
      assert.strictEqual(rejected.upstream, null);
    });

    it('a connection still open when stop() ends its grace period: close=stopped, delivered before stop() resolves', async () => {
      const echo = await startEchoServer();
      const proxy = await startProxy({ routes: [{ sni: '', terminateTls: false, upstreams: [{ kind: 'tcp', host: '127.0.0.1', port: echo.port }] }] });
      const seen = [];
      proxy.on('access', (a) => seen.push(a));
      const s = net.connect(portOf(proxy), '127.0.0.1');
      s.on('error', () => {});
      s.write('plain');
      await new Promise((resolve) => s.once('data', resolve)); // relaying
      await proxy.stop({ graceMs: 0 });
      assert.strictEqual(seen.length, 1, JSON.stringify(seen));
      assert.strictEqual(seen[0].closeReason, 'stopped');
      assert.strictEqual(seen[0].decision, 'passthrough');
      assert.strictEqual(seen[0].bytesFromClient, 5);
    });

    it('a reset on either side while relaying names the side: client_reset, upstream_reset', async () => {
      const up = await startTcpServer((socket) => socket.on('data', (d) => socket.write(d)));
      const proxy = await startProxy({ routes: [{ sni: '', terminateTls: false, upstreams: [{ kind: 'tcp', host: '127.0.0.1', port: up.port }] }] });
      const seen = [];
      proxy.on('access', (a) => seen.push(a));
      const echoed = (s) => new Promise((resolve) => s.once('data', resolve));
      // The client resets.
      const a = net.connect(portOf(proxy), '127.0.0.1');
      a.on('error', () => {});
      a.write('a');
      await echoed(a);
      a.resetAndDestroy();
      await waitFor(() => seen.length === 1);
      // The upstream resets.
      const b = net.connect(portOf(proxy), '127.0.0.1');
      b.on('error', () => {});
      b.write('b');
      await echoed(b);
      up.connections[1].socket.resetAndDestroy();
      await waitFor(() => seen.length === 2);
      assert.deepStrictEqual(seen.map((x) => x.closeReason), ['client_reset', 'upstream_reset']);
      assert.deepStrictEqual(seen.map((x) => x.bytesFromClient), [1, 1]);
    });

    it('refusals at accept (protection) get a record each: refused:<reason>; a CONNECT refusal by protection too', async () => {
      const echo = await startEchoServer();
      const proxy = await startProxy({
        listeners: [
          { protection: { blocklist: ['127.0.0.0/8'] } },
          { kind: 'connect', protection: { blocklist: ['127.0.0.0/8'] } },
        ],
        routes: [{ sni: '', terminateTls: false, upstreams: [{ kind: 'tcp', host: '127.0.0.1', port: echo.port }] }],
      });
      const wait = collectAccess(proxy);
      const s = net.connect(portOf(proxy, 0), '127.0.0.1');
      s.on('error', () => {});
      await new Promise((resolve) => s.once('close', resolve));
      const r = await request(portOf(proxy, 1), 'CONNECT 127.0.0.1:443 HTTP/1.1\r\nHost: x\r\n\r\n');
      assert.strictEqual(r.status, 403);
      const events = await wait(2);
      const tlsOne = events.find((e) => e.listener.kind === 'tls');
      const connectOne = events.find((e) => e.listener.kind === 'connect');
      assert.strictEqual(tlsOne.closeReason, 'refused:cidr_blocked');
      assert.strictEqual(tlsOne.status, null);
      assert.strictEqual(tlsOne.decision, 'none');
      assert.strictEqual(connectOne.closeReason, 'refused:cidr_blocked');
      assert.strictEqual(connectOne.status, 403);
      assert.strictEqual(proxy.metrics().blockedConnections, 2);
    });

    it('with no listener nothing is posted (eventsDropped stays 0); removing the last listener turns records off again', async () => {
      const echo = await startEchoServer();
      const proxy = await startProxy({ routes: [{ sni: '', terminateTls: false, upstreams: [{ kind: 'tcp', host: '127.0.0.1', port: echo.port }] }] });
      const once = async () => {
        const s = net.connect(portOf(proxy), '127.0.0.1');
        s.on('error', () => {});
        s.resume();
        s.end('plain');
        await new Promise((resolve) => s.once('close', resolve));
      };
      const seen = [];
      const fn = (a) => seen.push(a);
      proxy.on('access', fn);
      await once();
      await waitFor(() => seen.length === 1, 10000);
      proxy.off('access', fn);
      await once();
      await waitFor(() => proxy.metrics().closedConnections === 2, 10000);
      await new Promise((resolve) => setTimeout(resolve, 200));
      assert.strictEqual(seen.length, 1);
      assert.strictEqual(proxy.metrics().eventsDropped, 0);
      assert.strictEqual(proxy.metrics().accessEventsDropped, 0);
    });

    it('a flood while the JS thread is stuck: records past the queue bound are dropped and counted, relaying goes on, a held connection still gets its event', async function () {
      this.timeout(120000);
      const FLOOD = 6000; // refusals at accept, more than the 4096 events the queue holds
      // The clients and the echo upstream run on a worker thread, so they go on while this
      // thread is blocked (and cannot take events off the queue).
      const sab = new SharedArrayBuffer(12); // [0] done, [1] connections refused, [2] echo ok (1)
      const worker = new Worker(`
        const { parentPort, workerData } = require('worker_threads');
        const net = require('net');
        const flag = new Int32Array(workerData.shared);
        const echo = net.createServer((s) => { s.on('error', () => {}); s.pipe(s); });
        echo.listen(0, '127.0.0.1', () => parentPort.postMessage({ echoPort: echo.address().port }));
        parentPort.once('message', async ({ refusedPort, relayPort }) => {
          let refused = 0;
          const one = () => new Promise((resolve) => {
            const s = net.connect(refusedPort, '127.0.0.1');
            s.on('error', () => {});
            s.once('close', () => { refused++; resolve(); });
          });
          for (let i = 0; i < ${FLOOD}; i += 100) await Promise.all(Array.from({ length: Math.min(100, ${FLOOD} - i) }, one));
          // Relaying while the queue is full: a round trip through the passthrough listener.
          const echoed = await new Promise((resolve) => {
            const s = net.connect(relayPort, '127.0.0.1');
            let got = '';
            s.on('error', () => resolve('error'));
            s.on('data', (d) => { got += d; if (got.length >= 5) { s.end(); resolve(got); } });
            s.write('hello');
          });
          // A connection held for a decision while the queue is full of records: its event has
          // a bound of its own, so it is not dropped. It stays open for the main thread.
          const held = require('tls').connect({ port: relayPort, host: '127.0.0.1', servername: 'hold.test', rejectUnauthorized: false });
          held.on('error', () => {});
          await new Promise((resolve) => setTimeout(resolve, 500));
          Atomics.store(flag, 1, refused);
          Atomics.store(flag, 2, echoed === 'hello' ? 1 : 2);
          Atomics.store(flag, 0, 1);
          Atomics.notify(flag, 0);
          echo.close();
        });
      `, { eval: true, workerData: { shared: sab } });
      track(worker, (w) => w.terminate(), 0);
      const { echoPort } = await new Promise((resolve) => worker.once('message', resolve));
      const proxy = await startProxy({
        listeners: [{ protection: { blocklist: ['127.0.0.0/8'] } }, {}],
        routes: [
          { sni: 'hold.test', suspended: true, upstreams: [] },
          { sni: '', terminateTls: false, upstreams: [{ kind: 'tcp', host: '127.0.0.1', port: echoPort }] },
        ],
      });
      const seen = [];
      proxy.on('access', (a) => seen.push(a));
      const held = [];
      proxy.on('suspended', (e) => held.push(e));
      worker.postMessage({ refusedPort: portOf(proxy, 0), relayPort: portOf(proxy, 1) });
      // Block this thread until the worker is done (at most 60 s).
      const view = new Int32Array(sab);
      Atomics.wait(view, 0, 0, 60000);
      assert.strictEqual(Atomics.load(view, 0), 1, 'the flood finished while this thread was blocked');
      assert.strictEqual(Atomics.load(view, 2), 1, 'bytes were relayed while the event queue was full');
      const refused = Atomics.load(view, 1);
      assert.strictEqual(refused, FLOOD);
      await waitFor(() => held.length === 1, 10000, { describe: () => JSON.stringify({ suspendedDropped: proxy.metrics().suspendedDropped }) });
      assert.strictEqual(held[0].sni, 'hold.test');
      assert.strictEqual(proxy.metrics().suspendedDropped, 0);
      assert.strictEqual(proxy.resolveConnection(held[0].id, null), true, 'still held');
      // The queued records arrive now; the rest were dropped and counted.
      await waitFor(() => {
        const m = proxy.metrics();
        return m.blockedConnections === FLOOD && seen.filter((a) => a.closeReason === 'refused:cidr_blocked').length + m.accessEventsDropped >= FLOOD;
      }, 30000, { describe: () => JSON.stringify({ seen: seen.length, m: proxy.metrics().accessEventsDropped }) });
      const m = proxy.metrics();
      assert(m.accessEventsDropped > 0, 'some records were dropped');
      assert(m.eventsDropped >= m.accessEventsDropped);
      const refusedSeen = seen.filter((a) => a.closeReason === 'refused:cidr_blocked').length;
      assert(refusedSeen <= 4096, `at most the queue bound was delivered (${refusedSeen})`);
      // Every refusal is either delivered or counted as dropped; the relayed and the held
      // connections' records are too.
      await waitFor(() => seen.length + proxy.metrics().accessEventsDropped === FLOOD + 2, 10000, { describe: () => `${seen.length} + ${proxy.metrics().accessEventsDropped}` });
      assert.strictEqual(m.blockedConnections, FLOOD);
    });
  });
});
