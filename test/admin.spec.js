'use strict';
// The admin endpoint (issue 15, point 8): `admin` in a serve config and `--admin` /
// LEGATO_ADMIN on the forward proxy, queried with curl; /metrics checked by `promtool check
// metrics` (a real Prometheus parser and linter) and a strict parse of our own (promtool lets
// duplicate series through); and metricsText() on synthetic metrics objects (escaping, nesting).

const assert = require('assert');
const fs = require('fs');
const net = require('net');
const path = require('path');
const { getCerts } = require('./helpers/certs');
const { startTlsOrigin, startEchoServer } = require('./helpers/servers');
const { cleanup } = require('./helpers/proxy');
const { nodeTlsGet } = require('./helpers/clients');
const { spawnCli, startCli, openTunnel, request, ESTABLISHED } = require('./helpers/connect');
const {
  tempDir, writeFile, startServe, httpRequest, curlAdmin, requirePromtool, promtoolCheck,
  parseExposition, sample, ADMIN_LINE,
} = require('./helpers/serve');
const { metricsText } = require('..');

describe('admin endpoint', function () {
  this.timeout(60000);
  afterEach(cleanup);

  it('serve: /metrics in Prometheus format (promtool), per-listener and per-worker labels, counters that move', async function () {
    requirePromtool(this);
    const certs = getCerts();
    const dir = tempDir();
    const origin = await startTlsOrigin('A', certs.leaves['a.test']);
    const echo = await startEchoServer();
    const conf = writeFile(dir, 'legato.jsonc', {
      workerThreads: 2,
      admin: { host: '127.0.0.1', port: 0 },
      listeners: [
        { host: '127.0.0.1', port: 0 },
        { kind: 'connect', host: '127.0.0.1', port: 0, connect: { allowPorts: [echo.port], allowCidrs: ['127.0.0.1'] } },
      ],
      routes: [{ sni: 'a.test', upstreams: [{ kind: 'tcp', host: '127.0.0.1', port: origin.port }] }],
    });
    const h = await startServe([conf, '--quiet'], { listeners: 2, admin: true });
    const [tlsPort, connectPort] = h.ports;
    assert.strictEqual((await nodeTlsGet(tlsPort, 'a.test', { ca: certs.ca })).status, 200);
    const t = await openTunnel(connectPort, `127.0.0.1:${echo.port}`);
    assert.strictEqual(t.head, ESTABLISHED);
    assert.strictEqual((await request(connectPort, 'CONNECT 127.0.0.1:1 HTTP/1.1\r\n\r\n')).status, 403);

    const r = await curlAdmin(h.admin, '/metrics');
    assert.strictEqual(r.status, 200);
    assert.strictEqual(r.headers['content-type'], 'text/plain; version=0.0.4; charset=utf-8');
    await promtoolCheck(r.body);
    const fam = parseExposition(r.body);
    const tlsL = { listener: `127.0.0.1:${tlsPort}`, kind: 'tls' };
    const conL = { listener: `127.0.0.1:${connectPort}`, kind: 'connect' };
    assert.strictEqual(fam.get('legato_active_connections').type, 'gauge');
    assert.strictEqual(sample(fam, 'legato_active_connections'), 1, 'the open tunnel');
    assert.strictEqual(fam.get('legato_total_connections_total').type, 'counter');
    assert.strictEqual(sample(fam, 'legato_total_connections_total'), 3);
    assert.strictEqual(sample(fam, 'legato_listener_total_connections_total', tlsL), 1);
    assert.strictEqual(sample(fam, 'legato_listener_total_connections_total', conL), 2);
    assert.strictEqual(sample(fam, 'legato_listener_active_connections', conL), 1);
    assert.strictEqual(sample(fam, 'legato_connect_responses_total', { status: '200' }), 1);
    assert.strictEqual(sample(fam, 'legato_connect_responses_total', { status: '403' }), 1);
    assert.strictEqual(sample(fam, 'legato_listener_connect_responses_total', { ...conL, status: '403' }), 1);
    assert.strictEqual(sample(fam, 'legato_refused_port_total'), 1);
    assert(sample(fam, 'legato_bytes_to_clients_total') > 0);
    for (const g of ['legato_pending_suspended', 'legato_buffers_in_use', 'legato_config_generations_live', 'legato_worker_quantum', 'legato_worker_connections']) {
      assert.strictEqual(fam.get(g).type, 'gauge', g);
    }
    assert.deepStrictEqual(fam.get('legato_worker_quantum').samples.map((s) => s.labels), [{ worker: '0' }, { worker: '1' }]);
    assert.strictEqual(sample(fam, 'legato_build_info', { version: require('../package.json').version }), 1);
    assert(Math.abs(sample(fam, 'legato_start_time_seconds') - Date.now() / 1000) < 3600);
    assert.strictEqual(sample(fam, 'legato_config_reloads_total', { result: 'success' }), 0);
    assert.strictEqual(sample(fam, 'legato_config_last_reload_successful'), 1);
    assert.strictEqual(sample(fam, 'legato_config_restart_needed'), 0);
    // Every number of metrics() is there.
    const json = JSON.parse((await curlAdmin(h.admin, '/metrics.json')).body);
    for (const [k, v] of Object.entries(json)) {
      if (typeof v !== 'number' || /^status\d+$/.test(k)) continue;
      const name = `legato_${k.replace(/([a-z0-9])([A-Z])/g, '$1_$2').toLowerCase()}`;
      assert(fam.has(name) || fam.has(`${name}_total`), `${k} → ${name}`);
    }
    t.socket.destroy();

    // A failed reload shows in the metrics.
    fs.writeFileSync(conf, '{ "listeners": [ }');
    h.child.kill('SIGHUP');
    await h.waitLine(/reload .* failed/);
    const after = parseExposition((await curlAdmin(h.admin, '/metrics')).body);
    assert.strictEqual(sample(after, 'legato_config_reloads_total', { result: 'failure' }), 1);
    assert.strictEqual(sample(after, 'legato_config_last_reload_successful'), 0);
    h.child.kill('SIGTERM');
    assert.strictEqual((await h.exited).code, 0);
  });

  it('/metrics.json, /health, /ready, HEAD, 404, 405 (curl)', async () => {
    const dir = tempDir();
    const conf = writeFile(dir, 'legato.json', { admin: { port: 0 }, listeners: [{ kind: 'connect', port: 0 }] });
    const h = await startServe([conf], { admin: true });
    const json = await curlAdmin(h.admin, '/metrics.json');
    assert.strictEqual(json.status, 200);
    assert.strictEqual(json.headers['content-type'], 'application/json; charset=utf-8');
    const m = JSON.parse(json.body);
    assert.strictEqual(m.activeConnections, 0);
    assert.strictEqual(m.listeners[0].port, h.ports[0]);
    assert.deepStrictEqual([(await curlAdmin(h.admin, '/health')).status, (await curlAdmin(h.admin, '/health')).body], [200, 'ok\n']);
    assert.deepStrictEqual([(await curlAdmin(h.admin, '/ready?verbose=1')).status, (await curlAdmin(h.admin, '/ready')).body], [200, 'ready\n']);
    const head = await curlAdmin(h.admin, '/metrics', ['-I']);
    assert.strictEqual(head.status, 200);
    assert(Number(head.headers['content-length']) > 100);
    assert.strictEqual(head.body, '');
    const missing = await curlAdmin(h.admin, '/nope');
    assert.strictEqual(missing.status, 404);
    assert.match(missing.body, /try \/metrics/);
    const post = await curlAdmin(h.admin, '/metrics', ['-X', 'POST']);
    assert.strictEqual(post.status, 405);
    assert.strictEqual(post.headers.allow, 'GET, HEAD');
    h.child.kill('SIGTERM');
    assert.strictEqual((await h.exited).code, 0);
  });

  it('/ready answers 503 while a graceful stop waits for open connections; /health stays 200', async () => {
    const echo = await startEchoServer();
    const h = await startCli(['--port', '0', '--admin', '127.0.0.1:0', '--allow-cidr', '127.0.0.1', '--allow-port', String(echo.port)]);
    const m = await h.waitLine(ADMIN_LINE);
    const admin = { host: m[1], port: Number(m[2]) };
    assert.strictEqual((await httpRequest(admin, '/ready')).status, 200);
    const t = await openTunnel(h.port, `127.0.0.1:${echo.port}`);
    assert.strictEqual(t.head, ESTABLISHED);
    h.child.kill('SIGTERM');
    await h.waitLine(/^(?:\S+ )?legato: SIGTERM: stopping/m);
    const ready = await httpRequest(admin, '/ready');
    assert.deepStrictEqual([ready.status, ready.body], [503, 'stopping\n']);
    assert.strictEqual((await httpRequest(admin, '/health')).status, 200);
    assert.strictEqual((await httpRequest(admin, '/metrics')).status, 200, 'metrics while stopping');
    t.socket.end();
    assert.deepStrictEqual(await h.exited, { code: 0, signal: null });
    const gone = await new Promise((resolve) => {
      const s = net.connect(admin.port, '127.0.0.1');
      s.once('connect', () => { s.destroy(); resolve(false); });
      s.once('error', (e) => resolve(e.code === 'ECONNREFUSED'));
    });
    assert(gone, 'the admin endpoint is closed at exit');
  });

  it('on a Unix socket (path relative to the config): a stale socket is reclaimed, a live one refused', async () => {
    const dir = tempDir();
    const conf = writeFile(dir, 'legato.json', { admin: { path: 'admin.sock' }, listeners: [{ kind: 'connect', port: 0 }] });
    const sock = path.join(dir, 'admin.sock');
    // A stale socket file, as a crashed process leaves it: bound, nobody listening. (Closing a
    // server unlinks its path, so a hard link keeps the socket inode and is moved back.)
    const stale = net.createServer().listen(sock);
    await new Promise((resolve) => stale.once('listening', resolve));
    fs.linkSync(sock, `${sock}.keep`);
    await new Promise((resolve) => stale.close(resolve));
    fs.renameSync(`${sock}.keep`, sock);
    assert(fs.lstatSync(sock).isSocket(), 'a stale socket file is there');

    const h = await startServe([conf], { admin: true });
    assert.deepStrictEqual(h.admin, { path: sock });
    const r = await curlAdmin({ path: sock }, '/health');
    assert.deepStrictEqual([r.status, r.body], [200, 'ok\n']);

    // A second instance must not take the live socket over.
    const conf2 = writeFile(dir, 'second.json', { admin: { path: 'admin.sock' }, listeners: [{ kind: 'connect', port: 0 }] });
    const second = spawnCli(['serve', conf2]);
    assert.strictEqual((await second.exited).code, 1);
    assert.match(second.stderr(), /^(?:\S+ )?legato: cannot listen on admin unix:.*admin\.sock: .*admin\.sock is in use by a running server$/m);
    assert.strictEqual((await curlAdmin({ path: sock }, '/ready')).status, 200, 'the first one still answers');

    // Not a socket: refused, never removed.
    const conf3 = writeFile(dir, 'third.json', { admin: { path: 'legato.json' }, listeners: [{ kind: 'connect', port: 0 }] });
    const third = spawnCli(['serve', conf3]);
    assert.strictEqual((await third.exited).code, 1);
    assert.match(third.stderr(), /legato\.json exists and is not a socket \(not removed\)/);
    assert(fs.existsSync(path.join(dir, 'legato.json')));

    h.child.kill('SIGTERM');
    assert.strictEqual((await h.exited).code, 0);
  });

  it('forward proxy: --admin and LEGATO_ADMIN ([v6]:port, :port); a bad value is a usage error', async () => {
    const a = await startCli(['--port', '0', '--admin', ':0']);
    const ma = await a.waitLine(ADMIN_LINE);
    assert.strictEqual(ma[1], '127.0.0.1');
    assert.strictEqual((await httpRequest({ host: '127.0.0.1', port: Number(ma[2]) }, '/metrics.json')).status, 200);
    a.child.kill('SIGTERM');
    await a.exited;

    const b = await startCli(['--port', '0'], { env: { LEGATO_ADMIN: '[::1]:0' } });
    const mb = await b.waitLine(ADMIN_LINE);
    assert.strictEqual(mb[1], '::1');
    const r = await curlAdmin({ host: '::1', port: Number(mb[2]) }, '/ready');
    assert.strictEqual(r.status, 200);
    b.child.kill('SIGTERM');
    await b.exited;

    for (const [args, env, re] of [
      [['--admin', 'localhost'], {}, /^(?:\S+ )?legato: --admin 'localhost' must be host:port, \[v6\]:port, :port or a Unix socket path$/],
      [[], { LEGATO_ADMIN: '1.2.3.4:99999' }, /^(?:\S+ )?legato: LEGATO_ADMIN='1\.2\.3\.4:99999' must be host:port/],
    ]) {
      const h = spawnCli(args, { env });
      assert.strictEqual((await h.exited).code, 2);
      assert.match(h.lines()[0], re);
    }
    // A taken admin port: exit 1, the proxy's listener is not left behind.
    const taken = net.createServer().listen(0, '127.0.0.1');
    await new Promise((resolve) => taken.once('listening', resolve));
    const c = spawnCli(['--port', '0', '--admin', `127.0.0.1:${taken.address().port}`]);
    assert.strictEqual((await c.exited).code, 1);
    assert.match(c.stderr(), /^(?:\S+ )?legato: cannot listen on admin http:\/\/127\.0\.0\.1:\d+: .*EADDRINUSE/m);
    taken.close();
  });

  describe('metricsText()', () => {
    it('walks any shape: nested objects, <x>By<Label> maps, arrays (host:port, string labels, index), escaping', async function () {
      requirePromtool(this);
      const metrics = {
        activeConnections: 2,
        totalConnections: 10,
        tls: { handshakes: 4, sessionsResumed: 1 },
        refusedByReason: { port: 3, domain: 0 },
        routes: [
          { sni: 'a.test', activeConnections: 1, upstreams: [{ host: '10.0.0.1', port: 80, connectFailures: 2 }] },
          { sni: 'we"ird\\name\nx', activeConnections: 0, upstreams: [{ host: 'fd00::1', port: 80, connectFailures: 0 }] },
        ],
        listeners: [{ kind: 'tls', host: '0.0.0.0', port: 0, activeConnections: 1 }, { kind: 'tls', host: '0.0.0.0', port: 0, activeConnections: 1 }],
        workers: [{ quantum: 1500, grants: 7 }],
        ratio: 0.25,
        enabled: true,
        name: 'ignored',
      };
      const text = metricsText(metrics);
      await promtoolCheck(text);
      const fam = parseExposition(text);
      assert.strictEqual(sample(fam, 'legato_tls_handshakes_total'), 4);
      assert.strictEqual(sample(fam, 'legato_tls_sessions_resumed_total'), 1);
      assert.strictEqual(sample(fam, 'legato_refused_total', { reason: 'port' }), 3);
      assert.strictEqual(sample(fam, 'legato_route_active_connections', { sni: 'a.test' }), 1);
      assert.strictEqual(fam.get('legato_route_active_connections').type, 'gauge');
      assert.strictEqual(sample(fam, 'legato_route_upstream_connect_failures_total', { sni: 'a.test', upstream: '10.0.0.1:80' }), 2);
      assert.strictEqual(sample(fam, 'legato_route_upstream_connect_failures_total', { sni: 'we"ird\\name\nx', upstream: '[fd00::1]:80' }), 0, 'label value escaped and read back');
      assert(text.includes('sni="we\\"ird\\\\name\\nx"'), 'backslash, quote and newline escaped');
      assert.deepStrictEqual(fam.get('legato_listener_active_connections').samples.map((s) => s.labels),
        [{ listener: '0.0.0.0:0', kind: 'tls', index: '0' }, { listener: '0.0.0.0:0', kind: 'tls', index: '1' }], 'identical labels get an index');
      assert.strictEqual(sample(fam, 'legato_worker_quantum', { worker: '0' }), 1500);
      assert.strictEqual(sample(fam, 'legato_ratio_total'), 0.25);
      assert.strictEqual(sample(fam, 'legato_enabled'), 1);
      assert.strictEqual(fam.get('legato_enabled').type, 'gauge');
      assert(!/ignored/.test(text));
      assert.throws(() => metricsText(null), TypeError);
      assert.strictEqual(metricsText({}), '');
    });

    it('levels are gauges, running counts counters; an upstream\'s state is a one-hot series, not a label of its counters', async function () {
      const { Proxy } = require('..');
      const proxy = new Proxy({ workerThreads: 1, listeners: [{ host: '127.0.0.1', port: 0 }], routes: [{ sni: '', upstreams: [{ kind: 'tcp', host: '127.0.0.1', port: 9 }] }] });
      await proxy.start();
      try {
        const text = metricsText(proxy.metrics());
        const type = (name) => (new RegExp(`^# TYPE ${name} (\\w+)$`, 'm').exec(text) || [])[1];
        for (const g of ['legato_protection_tracked_ips', 'legato_protection_capacity', 'legato_worker_connections', 'legato_worker_splice_pipes', 'legato_worker_lent_pipes',
          'legato_route_upstream_weight', 'legato_route_upstream_consecutive_failures', 'legato_route_upstream_state']) {
          assert.strictEqual(type(g), 'gauge', g);
        }
        assert.strictEqual(type('legato_route_connections_total'), 'counter');
        assert.match(text, /^legato_route_upstream_state\{[^}]*state="up"\} 1$/m);
        for (const line of text.split('\n').filter((l) => /^legato_route_upstream_(?!state)\w+\{/.test(l))) {
          assert.doesNotMatch(line, /state=/, line);
        }
      } finally {
        await proxy.stop();
      }
    });

    it('a real proxy\'s metrics (before start, running) pass promtool', async function () {
      requirePromtool(this);
      const { Proxy } = require('..');
      const proxy = new Proxy({ workerThreads: 1, listeners: [{ kind: 'connect', port: 0 }, { kind: 'connect', port: 0 }] });
      await promtoolCheck(metricsText(proxy.metrics()));
      await proxy.start();
      try {
        const text = metricsText(proxy.metrics());
        await promtoolCheck(text);
        parseExposition(text);
      } finally {
        await proxy.stop();
      }
    });
  });
});
