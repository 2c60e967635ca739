'use strict';
// The `legato` command (bin/legato, lib/cli.js; issue 5 part 6).
//
// The mapping from flags and LEGATO_* variables to the Proxy config is checked in-process
// (parseArgs + buildConfig, validated by lib/config.js), option by option. Everything else runs
// bin/legato as a child process: --help/--version, exit code 2 with a one-line error and the
// usage for bad flags and values, the default 127.0.0.1:9999, the startup line with the bound
// port (so --port 0 works), each option's effect on real tunnels, the non-loopback warning, the
// per-tunnel log line and --quiet, engine warnings, SIGTERM/SIGINT (graceful, a second signal
// exits at once), bind failures, and `legato serve config.json`.

const assert = require('assert');
const { spawn, execFile } = require('child_process');
const fs = require('fs');
const net = require('net');
const path = require('path');
const { getCerts } = require('./helpers/certs');
const { startTlsOrigin, startEchoServer } = require('./helpers/servers');
const { cleanup, track } = require('./helpers/proxy');
const { run } = require('./helpers/clients');
const { waitFor } = require('./helpers/wait');
const { SCHED_OTHER, SCHED_FIFO, threads, UNPRIVILEGED, mayUseRealtime } = require('./helpers/sched');
const {
  ESTABLISHED, ROOT, request, openTunnel, spawnCli, startCli, tempFile, toolEnv,
} = require('./helpers/connect');
const cli = require('../lib/cli');
const { normalizeConfig, normalizeCidr, DEFAULT_DENY_CIDRS } = require('../lib/config');

const pkg = JSON.parse(fs.readFileSync(path.join(ROOT, 'package.json'), 'utf8'));
/** The access line of a connection (text format): groups by name. */
const TUNNEL_LINE = /^(?<time>\S+) legato: access client=(?<client>\S+) listener=(?<listener>\S+) sni=(?<sni>\S+) route=(?<route>\S+) upstream=(?<upstream>\S+) decision=(?<decision>\S+) status=(?<status>\S+) tls=(?<tls>\S+) cipher=(?<cipher>\S+) ja4=(?<ja4>\S+) from_client=(?<fromClient>\d+) to_client=(?<toClient>\d+) duration_ms=(?<durationMs>\d+) close=(?<close>\S+)$/m;

/** The Proxy config the CLI builds for argv/env (validated as `new Proxy()` would). */
function configFor(argv, env = {}) {
  const parsed = cli.parseArgs(argv, env);
  assert.strictEqual(parsed.command, 'proxy');
  const config = cli.buildConfig(parsed.values, DEFAULT_DENY_CIDRS);
  normalizeConfig(config); // throws if the CLI built something the library refuses
  return config;
}

/** Assert a bad command line: exit 2, one "legato:" line naming the problem, then the usage. */
async function assertUsageError(args, env, expected) {
  const h = spawnCli(args, { env });
  const { code } = await h.exited;
  assert.strictEqual(code, 2, `exit code for ${JSON.stringify(args)} ${JSON.stringify(env)}; stderr:\n${h.stderr()}`);
  assert.strictEqual(h.stdout(), '', 'nothing on stdout');
  const lines = h.lines();
  assert.match(lines[0], /^(?:\S+ )?legato: /);
  assert(!/^(?:\S+ )?legato: /.test(lines[1] || ''), `one error line only; stderr:\n${h.stderr()}`);
  if (expected instanceof RegExp) assert.match(lines[0], expected);
  else assert.strictEqual(lines[0], `legato: ${expected}`);
  assert.strictEqual(lines[1], 'Usage: legato [options]');
  assert.match(h.stderr(), /legato --help/);
}

/** Send a CONNECT through the CLI's proxy; resolves with the reply status (0: none). */
async function statusOf(port, target) {
  const r = await request(port, `CONNECT ${target} HTTP/1.1\r\nHost: ${target}\r\n\r\n`, { endAfterWrite: false });
  return r.status;
}

/** Open a tunnel to an echo server through the CLI's proxy and check one exchange. */
async function assertTunnel(port, target) {
  const t = await openTunnel(port, target);
  assert.strictEqual(t.head, ESTABLISHED, `CONNECT ${target}`);
  const got = new Promise((resolve, reject) => {
    t.socket.once('data', (d) => resolve(d.toString()));
    t.socket.once('close', () => reject(new Error('tunnel closed')));
  });
  t.socket.write('hi');
  assert.strictEqual(await got, 'hi');
  return t.socket;
}

/** Resolves true once connecting to port is refused (the listener is gone). */
function refused(port) {
  return new Promise((resolve) => {
    const s = net.connect(port, '127.0.0.1');
    s.once('connect', () => { s.destroy(); resolve(false); });
    s.once('error', (e) => resolve(e.code === 'ECONNREFUSED'));
  });
}

describe('legato CLI', function () {
  this.timeout(30000);
  afterEach(cleanup);

  describe('flags and environment variables → config (in-process)', () => {
    const base = () => ({
      listeners: [{ kind: 'connect', host: '127.0.0.1', port: 9999, idleTimeoutMs: 300000, connect: {} }],
    });

    it('no options: a connect listener on 127.0.0.1:9999, idle timeout 300 s, library defaults', () => {
      assert.deepStrictEqual(configFor([]), base());
      const n = normalizeConfig(configFor([])).listeners[0];
      assert.strictEqual(n.maxConnections, 1000);
      assert.deepStrictEqual(n.connect.allowPorts, [443]);
      assert.deepStrictEqual(n.connect.denyCidrs, [...DEFAULT_DENY_CIDRS]);
    });

    // [flag argv, env twin, the config that both produce (as a patch of base())]
    const cases = [
      [['--bind', '::1'], { LEGATO_BIND: '::1' }, (c) => { c.listeners[0].host = '::1'; }],
      [['--port', '0'], { LEGATO_PORT: '0' }, (c) => { c.listeners[0].port = 0; }],
      [['--max-connections', '0'], { LEGATO_MAX_CONNECTIONS: '0' }, (c) => { c.listeners[0].maxConnections = 0; }],
      [['--idle-timeout', '1.5'], { LEGATO_IDLE_TIMEOUT: '1.5' }, (c) => { c.listeners[0].idleTimeoutMs = 1500; }],
      [['--idle-timeout', '0'], { LEGATO_IDLE_TIMEOUT: '0' }, (c) => { c.listeners[0].idleTimeoutMs = 0; }],
      [['--allow-port', '8443', '--allow-port', '22,80'], { LEGATO_ALLOW_PORT: '8443,22, 80' }, (c) => { c.listeners[0].connect.allowPorts = [8443, 22, 80]; }],
      [['--no-default-allow-port', '--allow-port', '8443'], { LEGATO_NO_DEFAULT_ALLOW_PORT: '1', LEGATO_ALLOW_PORT: '8443' },
        (c) => { c.listeners[0].connect.defaultAllowPort = false; c.listeners[0].connect.allowPorts = [8443]; }],
      [['--deny-cidr', '203.0.113.0/24,198.51.100.7'], { LEGATO_DENY_CIDR: '203.0.113.0/24,198.51.100.7' },
        (c) => { c.listeners[0].connect.denyCidrs = [...DEFAULT_DENY_CIDRS, '203.0.113.0/24', '198.51.100.7']; }],
      [['--allow-cidr', '127.0.0.1', '--allow-cidr', '10.0.0.0/8'], { LEGATO_ALLOW_CIDR: '127.0.0.1,10.0.0.0/8' },
        (c) => { c.listeners[0].connect.allowCidrs = ['127.0.0.1', '10.0.0.0/8']; }],
      [['--allow-domain', 'github.com,.amazonaws.com'], { LEGATO_ALLOW_DOMAIN: 'github.com,.amazonaws.com' },
        (c) => { c.listeners[0].connect.allowDomains = ['github.com', '.amazonaws.com']; }],
      [['--workers', '3'], { LEGATO_WORKERS: '3' }, (c) => { c.workerThreads = 3; }],
      [['--worker-priority', 'realtime'], { LEGATO_WORKER_PRIORITY: 'realtime' }, (c) => { c.workerPriority = 'realtime'; }],
      [['--rate-limit', '5/10'], { LEGATO_RATE_LIMIT: '5/10' }, (c) => { c.listeners[0].protection = { rateLimit: { connectionsPerSecond: 5, burst: 10 } }; }],
      [['--rate-limit', '0.5'], { LEGATO_RATE_LIMIT: '0.5' }, (c) => { c.listeners[0].protection = { rateLimit: { connectionsPerSecond: 0.5 } }; }],
      [['--max-per-ip', '3'], { LEGATO_MAX_PER_IP: '3' }, (c) => { c.listeners[0].protection = { maxConcurrentPerIp: 3 }; }],
      // --allow-client: the blocklist is every range outside the given ones (per family).
      [['--allow-client', '128.0.0.0/2', '--allow-client', '192.0.0.0/2,::/0'], { LEGATO_ALLOW_CLIENT: '128.0.0.0/2,192.0.0.0/2,::/0' },
        (c) => { c.listeners[0].protection = { blocklist: ['0.0.0.0/1'] }; }],
      [['--allow-client', '0.0.0.0/0'], { LEGATO_ALLOW_CLIENT: '0.0.0.0/0' },
        (c) => { c.listeners[0].protection = { blocklist: ['0:0:0:0:0:0:0:0/0'] }; }],
      [['--allow-client', '127.0.0.0/8,::/0'], { LEGATO_ALLOW_CLIENT: '127.0.0.0/8,::/0' },
        (c) => { c.listeners[0].protection = { blocklist: ['0.0.0.0/2', '64.0.0.0/3', '96.0.0.0/4', '112.0.0.0/5', '120.0.0.0/6', '124.0.0.0/7', '126.0.0.0/8', '128.0.0.0/1'] }; }],
      // An IPv4-mapped range is its IPv4 range, as the engine judges a mapped source: it was read
      // 16 bits off as an IPv6 range and 0.0.0.0/0 refused every IPv4 client, these included.
      [['--allow-client', '::ffff:10.0.0.0/104'], { LEGATO_ALLOW_CLIENT: '::ffff:10.0.0.0/104' },
        (c) => { c.listeners[0].protection = { blocklist: ['0.0.0.0/5', '8.0.0.0/7', '11.0.0.0/8', '12.0.0.0/6', '16.0.0.0/4', '32.0.0.0/3', '64.0.0.0/2', '128.0.0.0/1', '0:0:0:0:0:0:0:0/0'] }; }],
      [['--rate', '10M'], { LEGATO_RATE: '10M' }, (c) => { c.scheduler = { rate: 10485760 }; }],
      [['--rate', '500000', '--burst', '64K'], { LEGATO_RATE: '500000', LEGATO_BURST: '64K' }, (c) => { c.scheduler = { rate: 500000, burst: 65536 }; }],
    ];

    for (const [argv, env, patch] of cases) {
      it(`${argv.join(' ')} and ${Object.entries(env).map(([k, v]) => `${k}=${v}`).join(' ')}`, () => {
        const expected = base();
        patch(expected);
        assert.deepStrictEqual(configFor(argv), expected, 'flag');
        assert.deepStrictEqual(configFor([], env), expected, 'environment variable');
        // --flag=value is the same as --flag value.
        const joined = [];
        for (let i = 0; i < argv.length; i++) {
          if (argv[i + 1] !== undefined && !argv[i + 1].startsWith('--')) { joined.push(`${argv[i]}=${argv[i + 1]}`); i++; } else joined.push(argv[i]);
        }
        assert.deepStrictEqual(configFor(joined), expected, '--flag=value');
      });
    }

    it('--allow-client: no IPv6 block of the complement lies inside ::ffff:0:0/96 (the engine would store it as IPv4)', () => {
      // ::fffe:0:0/96 allowed leaves ::ffff:0:0/96 (= 0.0.0.0/0 for the engine) in the IPv6 gap after it.
      const { blocklist } = configFor(['--allow-client', '10.0.0.0/8,::fffe:0:0/96']).listeners[0].protection;
      assert.deepStrictEqual(blocklist.filter((b) => !b.includes(':')), ['0.0.0.0/5', '8.0.0.0/7', '11.0.0.0/8', '12.0.0.0/6', '16.0.0.0/4', '32.0.0.0/3', '64.0.0.0/2', '128.0.0.0/1']);
      const mapped = blocklist.map((b) => normalizeCidr(b, 'b')).filter((b) => b.startsWith('::ffff:'));
      assert.deepStrictEqual(mapped, []);
    });

    it('a flag beats its environment variable (lists are replaced, not merged)', () => {
      const env = {
        LEGATO_BIND: '0.0.0.0', LEGATO_PORT: '1', LEGATO_MAX_CONNECTIONS: '5', LEGATO_IDLE_TIMEOUT: '9',
        LEGATO_ALLOW_PORT: '1,2', LEGATO_ALLOW_CIDR: '10.0.0.0/8', LEGATO_ALLOW_DOMAIN: 'a.example',
        LEGATO_DENY_CIDR: '203.0.113.0/24', LEGATO_WORKERS: '4',
      };
      const c = configFor(['--bind', '127.0.0.2', '--port', '0', '--max-connections', '7', '--idle-timeout', '2',
        '--allow-port', '3', '--allow-cidr', '127.0.0.1', '--allow-domain', 'b.example', '--deny-cidr', '198.51.100.0/24', '--workers', '1'], env);
      assert.deepStrictEqual(c, {
        workerThreads: 1,
        listeners: [{
          kind: 'connect', host: '127.0.0.2', port: 0, maxConnections: 7, idleTimeoutMs: 2000,
          connect: { allowPorts: [3], allowCidrs: ['127.0.0.1'], allowDomains: ['b.example'], denyCidrs: [...DEFAULT_DENY_CIDRS, '198.51.100.0/24'] },
        }],
      });
      assert.strictEqual(cli.parseArgs(['--quiet'], { LEGATO_QUIET: '0' }).values.quiet.value, true);
      assert.strictEqual(cli.parseArgs([], { LEGATO_QUIET: 'yes' }).values.quiet.value, true);
      assert.strictEqual(cli.parseArgs([], { LEGATO_QUIET: '0' }).values.quiet.value, false);
      assert.strictEqual(cli.parseArgs([], { LEGATO_QUIET: '' }).values.quiet, undefined, 'empty = unset');
      assert.deepStrictEqual(configFor([], { LEGATO_PORT: '' }), base(), 'an empty variable counts as unset');
    });

    it('--help and --version win over everything else; serve takes a file and --quiet only', () => {
      assert.strictEqual(cli.parseArgs(['--port', 'x', '--help']).command, 'help');
      assert.strictEqual(cli.parseArgs(['-h']).command, 'help');
      assert.strictEqual(cli.parseArgs(['--bogus', '--version']).command, 'version');
      assert.strictEqual(cli.parseArgs(['-v']).command, 'version');
      const s = cli.parseArgs(['serve', 'x.json', '--quiet']);
      assert.strictEqual(s.command, 'serve');
      assert.strictEqual(s.file, 'x.json');
      assert.deepStrictEqual(Object.keys(s.values), ['quiet']);
      assert.throws(() => cli.parseArgs(['serve', 'x.json', '--port', '1']), /--port cannot be used with serve/);
      // Their environment twins are refused too, not dropped (LEGATO_AUTH_FILE dropped would
      // leave the proxy open).
      for (const name of ['LEGATO_PORT', 'LEGATO_AUTH_FILE', 'LEGATO_ADMIN']) {
        assert.throws(() => cli.parseArgs(['serve', 'x.json'], { [name]: name === 'LEGATO_PORT' ? '1' : name === 'LEGATO_ADMIN' ? '127.0.0.1:9100' : '/x' }),
          new RegExp(`^UsageError: ${name} cannot be used with serve`));
      }
    });

    it('every option of the usage has an environment twin named after it', () => {
      const text = cli.usage();
      for (const o of cli.OPTIONS) {
        assert.strictEqual(o.env, `LEGATO_${o.flag.slice(2).toUpperCase().replace(/-/g, '_')}`);
        assert(text.includes(o.flag) && text.includes(o.env), o.flag);
      }
    });
  });

  describe('bin/legato as a process', () => {
    let certs;
    before(() => { certs = getCerts(); });

    it('a start failure that is not about a listener (EMFILE creating workers) is one line naming it, exit 1', async function () {
      const BIN = path.join(__dirname, '..', 'bin', 'legato');
      const r = await new Promise((resolve) => execFile('sh', ['-c', `ulimit -n 100; ulimit -Hn 100; exec "${process.execPath}" "${BIN}" --port 0 --workers 50`],
        { timeout: 20000 }, (err, stdout, stderr) => resolve({ code: err ? err.code : 0, stderr })));
      assert.strictEqual(r.code, 1, r.stderr);
      const lines = r.stderr.trim().split('\n');
      assert.strictEqual(lines.length, 1, r.stderr);
      assert.match(lines[0], /legato: cannot start: start EMFILE: too many open files$/);
    });

    it('a log reader that goes away (its pipe closed) does not end the proxy', async function () {
      const { spawn } = require('child_process');
      const BIN = require('path').join(__dirname, '..', 'bin', 'legato');
      const c = spawn(process.execPath, [BIN, '--port', '0', '--workers', '1'], { stdio: ['ignore', 'ignore', 'pipe'] });
      track(c, (x) => x.kill('SIGKILL'));
      await new Promise((resolve) => c.stderr.once('data', resolve));
      c.stderr.destroy(); // the reader goes away
      await new Promise((resolve) => setTimeout(resolve, 200));
      c.kill('SIGUSR1'); // logs a line into the closed pipe
      await new Promise((resolve) => setTimeout(resolve, 1000));
      assert.strictEqual(c.exitCode, null, `exited with ${c.exitCode}`);
      const exited = new Promise((resolve) => c.once('exit', (code) => resolve(code)));
      c.kill('SIGTERM');
      assert.strictEqual(await exited, 0);
    });

    it('--help prints the usage on stdout and exits 0 (run through its shebang)', async () => {
      for (const flag of ['--help', '-h']) {
        const h = spawnCli([flag], { direct: true });
        const { code } = await h.exited;
        assert.strictEqual(code, 0);
        assert.match(h.stdout(), /^Usage: legato \[options\]\n/);
        for (const o of cli.OPTIONS) assert(h.stdout().includes(o.flag), o.flag);
        assert.strictEqual(h.stderr(), '');
      }
    });

    it('--version prints the package version and exits 0', async () => {
      for (const flag of ['--version', '-v']) {
        const h = spawnCli([flag]);
        const { code } = await h.exited;
        assert.strictEqual(code, 0);
        assert.strictEqual(h.stdout(), `${pkg.version}\n`);
      }
    });

    it('bad flags and values: exit 2, one error line, then the usage', async () => {
      const cases = [
        [['--prot', '1'], {}, "unknown option '--prot' (did you mean '--port'?)"],
        [['--port'], {}, '--port needs a value <port>'],
        [['--port='], {}, '--port needs a value <port>'],
        [['--port', 'abc'], {}, "--port 'abc' must be an integer 0-65535"],
        [['--port=70000'], {}, "--port '70000' must be an integer 0-65535"],
        [[], { LEGATO_PORT: '0x10' }, "LEGATO_PORT='0x10' must be an integer 0-65535"],
        [['--bind', 'not a host'], {}, "--bind 'not a host' must be an IP address or a hostname"],
        [['--max-connections', '-1'], {}, "--max-connections '-1' must be an integer 0-4294967295"],
        [['--idle-timeout', 'soon'], {}, "--idle-timeout 'soon' must be a number of seconds 0-2147483 (0 = never)"],
        [['--allow-port', '443,99999'], {}, "--allow-port '99999' must be an integer 1-65535"],
        [['--no-default-allow-port'], {}, '--no-default-allow-port needs --allow-port (otherwise no port could be reached)'],
        [['--deny-cidr', '10.1.2.3/8'], {}, "--deny-cidr '10.1.2.3/8' has host bits set (did you mean '10.0.0.0/8'?)"],
        [['--allow-cidr', '127.0.0.1', '--allow-cidr', 'nope'], {}, "--allow-cidr 'nope' must be an IP address or CIDR such as '10.0.0.0/8' or 'fc00::/7'"],
        [[], { LEGATO_ALLOW_DOMAIN: 'ok.example,1.2.3.4' }, "LEGATO_ALLOW_DOMAIN='1.2.3.4' must be a domain name (use --allow-cidr for addresses)"],
        [['--workers', '0'], {}, "--workers '0' must be an integer 1-256"],
        [['--worker-priority', 'high'], {}, "--worker-priority 'high' must be 'normal' or 'realtime'"],
        [[], { LEGATO_WORKER_PRIORITY: '-10' }, "LEGATO_WORKER_PRIORITY='-10' must be 'normal' or 'realtime'"],
        [['--quiet=yes'], {}, '--quiet does not take a value'],
        [[], { LEGATO_QUIET: 'maybe' }, "LEGATO_QUIET='maybe' must be 1 or 0 (or true/false, yes/no, on/off)"],
        [['start'], {}, "unexpected argument 'start' (options start with --; the commands are 'serve' and 'hash-password')"],
        [['serve'], {}, 'serve needs a config file: legato serve <config.json>'],
      ];
      await Promise.all(cases.map(([args, env, expected]) => assertUsageError(args, env, expected)));
    });

    it('bad protection flags and values (--rate-limit, --max-per-ip, --allow-client): exit 2, the flag named', async () => {
      const cases = [
        [['--rate-limit', '5/0.5'], {}, "--rate-limit '5/0.5': the burst must be a number 1-1000000000"],
        [['--rate-limit', 'fast'], {}, "--rate-limit 'fast': the rate must be a number > 0 (at most 1000000000)"],
        [[], { LEGATO_RATE_LIMIT: '0/5' }, "LEGATO_RATE_LIMIT='0/5': the rate must be a number > 0 (at most 1000000000)"],
        [['--rate-limit', '1/2/3'], {}, "--rate-limit '1/2/3' must be <connections per second>[/<burst>]"],
        [['--max-per-ip', '-1'], {}, "--max-per-ip '-1' must be an integer 0-4294967295"],
        [['--allow-client', '127.0.0.1', '--allow-client', 'nope'], {}, "--allow-client 'nope' must be an IP address or CIDR such as '10.0.0.0/8' or 'fc00::/7'"],
        [[], { LEGATO_ALLOW_CLIENT: '10.1.2.3/8' }, "LEGATO_ALLOW_CLIENT='10.1.2.3/8' has host bits set (did you mean '10.0.0.0/8'?)"],
      ];
      await Promise.all(cases.map(([args, env, expected]) => assertUsageError(args, env, expected)));
    });

    it('bad --rate and --burst: exit 2, one error line, then the usage', async () => {
      await Promise.all([
        assertUsageError(['--rate', 'fast'], {}, "--rate 'fast' must be an integer >= 0"),
        assertUsageError([], { LEGATO_BURST: '1000' }, "LEGATO_BURST='1000' needs scheduler.rate > 0"),
      ]);
    });

    it('by default listens on 127.0.0.1:9999 and says so', async function () {
      const probe = net.createServer();
      const free = await new Promise((resolve) => {
        probe.once('error', () => resolve(false));
        probe.listen(9999, '127.0.0.1', () => probe.close(() => resolve(true)));
      });
      if (!free) {
        // eslint-disable-next-line no-console
        console.log('      (skipped: 127.0.0.1:9999 is in use on this machine)');
        this.skip();
      }
      const h = await startCli([]);
      assert.strictEqual(h.host, '127.0.0.1');
      assert.strictEqual(h.port, 9999);
      assert.match(h.stderr(), /HTTPS_PROXY=http:\/\/127\.0\.0\.1:9999/);
      assert(!/warning/.test(h.stderr()), 'no warning on loopback');
      assert.strictEqual(await statusOf(9999, '10.0.0.1:443'), 403, 'internal ranges refused by default');
      h.child.kill('SIGTERM');
      assert.deepStrictEqual(await h.exited, { code: 0, signal: null });
    });

    it('tunnels curl to an HTTPS origin and logs one line per tunnel at close', async () => {
      const origin = await startTlsOrigin('a', certs.leaves['a.test']);
      const h = await startCli(['--port', '0', '--allow-cidr', '127.0.0.1', '--allow-port', String(origin.port)]);
      const r = await run('curl', ['-sS', '--max-time', '10', '-x', `http://127.0.0.1:${h.port}`, '--cacert', certs.caPath,
        '--connect-to', `a.test:${origin.port}:127.0.0.1:${origin.port}`, '--data-binary', 'hello', `https://a.test:${origin.port}/`]);
      assert.strictEqual(r.code, 0, r.stderr);
      assert.strictEqual(r.stdout, 'origin=a\nsni=a.test\nhello');
      const m = (await h.waitLine(TUNNEL_LINE)).groups;
      assert.strictEqual(m.upstream, `127.0.0.1:${origin.port}`);
      assert.strictEqual(m.status, '200');
      assert(Number(m.fromClient) > 0 && Number(m.toClient) > 0, JSON.stringify(m));
      // A refused one is logged with its status and why.
      assert.strictEqual(await statusOf(h.port, '10.0.0.1:443'), 403);
      await h.waitLine(/^\S+ legato: access client=127\.0\.0\.1:\d+ listener=127\.0\.0\.1:\d+ sni=- route=- upstream=10\.0\.0\.1:443 decision=none status=403 tls=- cipher=- ja4=- from_client=0 to_client=0 duration_ms=\d+ close=refused:address$/m);
      assert.strictEqual(h.stdout(), '');
    });

    it('--quiet and LEGATO_QUIET=1 silence the tunnel lines (not the startup line)', async () => {
      for (const [args, env] of [[['--quiet'], {}], [[], { LEGATO_QUIET: '1' }]]) {
        const h = await startCli(['--port', '0', ...args], { env });
        assert.strictEqual(await statusOf(h.port, '10.0.0.1:443'), 403);
        // The same CLI without --quiet prints its line within this time (see the test above).
        await new Promise((resolve) => setTimeout(resolve, 300));
        h.child.kill('SIGTERM');
        assert.strictEqual((await h.exited).code, 0);
        assert(!/legato: access /.test(h.stderr()), h.stderr());
        assert.match(h.stderr(), /^(?:\S+ )?legato: listening on /m);
      }
    });

    it('environment variables configure the proxy (LEGATO_BIND, LEGATO_PORT, LEGATO_ALLOW_*)', async () => {
      const echo = await startEchoServer();
      const h = await startCli([], { env: { LEGATO_BIND: '127.0.0.1', LEGATO_PORT: '0', LEGATO_ALLOW_PORT: String(echo.port), LEGATO_ALLOW_CIDR: '127.0.0.1' } });
      assert.strictEqual(h.host, '127.0.0.1');
      assert.notStrictEqual(h.port, 9999);
      (await assertTunnel(h.port, `127.0.0.1:${echo.port}`)).destroy();
    });

    it('a flag beats its variable (--port 0 over LEGATO_PORT, --bind over LEGATO_BIND)', async () => {
      const held = net.createServer();
      await new Promise((resolve) => held.listen(0, '127.0.0.1', resolve));
      track(held, (s) => new Promise((r) => s.close(() => r())), 3);
      // LEGATO_PORT names a port in use and LEGATO_BIND a public address: if either applied, the
      // start would fail or warn.
      const h = await startCli(['--port', '0', '--bind', '127.0.0.1'], { env: { LEGATO_PORT: String(held.address().port), LEGATO_BIND: '0.0.0.0' } });
      assert.notStrictEqual(h.port, held.address().port);
      assert.strictEqual(h.host, '127.0.0.1');
      assert(!/warning/.test(h.stderr()), h.stderr());
    });

    it('--max-connections / LEGATO_MAX_CONNECTIONS: 503 over the limit', async () => {
      const echo = await startEchoServer();
      for (const [args, env] of [[['--max-connections', '1'], {}], [[], { LEGATO_MAX_CONNECTIONS: '1' }]]) {
        const h = await startCli(['--port', '0', '--allow-cidr', '127.0.0.1', '--allow-port', String(echo.port), ...args], { env });
        const first = await assertTunnel(h.port, `127.0.0.1:${echo.port}`);
        const r = await request(h.port, []);
        assert.strictEqual(r.statusLine, 'HTTP/1.1 503 Service Unavailable');
        first.destroy();
      }
    });

    it('--allow-client, --max-per-ip, --rate-limit (and their variables): 403 and 429 as curl sees them', async () => {
      const echo = await startEchoServer();
      const p = String(echo.port);
      const curlVia = (port, source) => run('curl', ['-s', '-o', '/dev/null', '-w', '%{http_connect}', '--max-time', '10', '--interface', source,
        '-p', '-x', `http://127.0.0.1:${port}`, `http://127.0.0.1:${p}/`], { timeoutMs: 15000 });
      // --allow-client: 127.0.0.2 may connect, 127.0.0.3 may not.
      // The IPv4-mapped spelling of 127.0.0.2 lets the IPv4 client in as well.
      for (const [args, env] of [[['--allow-client', '127.0.0.2/32,::1'], {}], [[], { LEGATO_ALLOW_CLIENT: '127.0.0.2' }], [['--allow-client', '::ffff:127.0.0.2'], {}]]) {
        const h = await startCli(['--port', '0', '--allow-cidr', '127.0.0.1', '--allow-port', p, ...args], { env });
        assert.strictEqual((await curlVia(h.port, '127.0.0.3')).stdout, '403');
        assert.strictEqual(await statusOf(h.port, `127.0.0.1:${p}`), 403, '127.0.0.1 is not allowed either');
        const ok = await run('curl', ['-s', '-o', '/dev/null', '-w', '%{http_connect}', '--max-time', '2', '--interface', '127.0.0.2',
          '-p', '-x', `http://127.0.0.1:${h.port}`, `http://127.0.0.1:${p}/`], { timeoutMs: 15000 });
        assert.strictEqual(ok.stdout, '200', 'an allowed client gets its tunnel');
      }
      // --max-per-ip 1: a second tunnel from the same client while the first is open gets 429.
      for (const [args, env] of [[['--max-per-ip', '1'], {}], [[], { LEGATO_MAX_PER_IP: '1' }]]) {
        const h = await startCli(['--port', '0', '--allow-cidr', '127.0.0.1', '--allow-port', p, ...args], { env });
        const first = await assertTunnel(h.port, `127.0.0.1:${p}`);
        assert.strictEqual(await statusOf(h.port, `127.0.0.1:${p}`), 429);
        assert.strictEqual((await curlVia(h.port, '127.0.0.2')).stdout, '200', 'another client is not limited');
        first.destroy();
      }
      // --rate-limit 0.1/2: two tunnels, then 429.
      for (const [args, env] of [[['--rate-limit', '0.1/2'], {}], [[], { LEGATO_RATE_LIMIT: '0.1/2' }]]) {
        const h = await startCli(['--port', '0', '--allow-cidr', '127.0.0.1', '--allow-port', p, ...args], { env });
        (await assertTunnel(h.port, `127.0.0.1:${p}`)).destroy();
        (await assertTunnel(h.port, `127.0.0.1:${p}`)).destroy();
        assert.strictEqual(await statusOf(h.port, `127.0.0.1:${p}`), 429);
      }
    });

    it('--idle-timeout (seconds, fractions allowed) closes an idle tunnel', async () => {
      const echo = await startEchoServer();
      const h = await startCli(['--port', '0', '--idle-timeout', '0.3', '--allow-cidr', '127.0.0.1', '--allow-port', String(echo.port)]);
      const s = await assertTunnel(h.port, `127.0.0.1:${echo.port}`);
      await new Promise((resolve) => s.once('close', resolve));
      await h.waitLine(TUNNEL_LINE);
    });

    it('--allow-port, --no-default-allow-port, --deny-cidr, --allow-cidr, --allow-domain shape the policy', async () => {
      const echo = await startEchoServer();
      const p = String(echo.port);
      // --allow-cidr opens loopback, --allow-port the echo port.
      const open = await startCli(['--port', '0', '--allow-cidr', '127.0.0.1', '--allow-port', p]);
      (await assertTunnel(open.port, `127.0.0.1:${p}`)).destroy();
      (await assertTunnel(open.port, `localhost:${p}`)).destroy();
      assert.strictEqual(await statusOf(open.port, '127.0.0.2:' + p), 403, 'only 127.0.0.1 is excepted');
      assert.strictEqual(await statusOf(open.port, '127.0.0.1:' + (echo.port === 1 ? 2 : echo.port - 1)), 403, 'other ports stay closed');
      assert.notStrictEqual(await statusOf(open.port, '127.0.0.1:443'), 403, '443 is allowed by default');
      // Without the exception, loopback is refused.
      const closed = await startCli(['--port', '0', '--allow-port', p]);
      assert.strictEqual(await statusOf(closed.port, `127.0.0.1:${p}`), 403);
      // --no-default-allow-port: 443 is refused by port.
      const no443 = await startCli(['--port', '0', '--allow-cidr', '127.0.0.1', '--no-default-allow-port', '--allow-port', p]);
      assert.strictEqual(await statusOf(no443.port, '127.0.0.1:443'), 403);
      (await assertTunnel(no443.port, `127.0.0.1:${p}`)).destroy();
      // --deny-cidr adds to the built-in ranges (TEST-NET-3 refused without any dial; 10/8 still refused).
      const deny = await startCli(['--port', '0', '--deny-cidr', '203.0.113.0/24']);
      assert.strictEqual(await statusOf(deny.port, '203.0.113.5:443'), 403);
      assert.strictEqual(await statusOf(deny.port, '10.0.0.1:443'), 403);
      // --allow-domain: only listed domains (checked before any lookup).
      const dom = await startCli(['--port', '0', '--allow-cidr', '127.0.0.1', '--allow-port', p, '--allow-domain', 'localhost']);
      (await assertTunnel(dom.port, `localhost:${p}`)).destroy();
      assert.strictEqual(await statusOf(dom.port, `example.com:${p}`), 403);
    });

    it('--workers sets the worker threads (shown on the startup line)', async () => {
      const h = await startCli(['--port', '0', '--workers', '1']);
      assert.match(h.stderr(), /^(?:\S+ )?legato: listening on 127\.0\.0\.1:\d+ \(forward proxy, 1 worker\)/m);
      const h3 = await startCli(['--port', '0'], { env: { LEGATO_WORKERS: '3' } });
      assert.match(h3.stderr(), /\(forward proxy, 3 workers\)/);
    });

    it('--worker-priority realtime makes the workers SCHED_FIFO (the kernel says so); without the right to, legato exits saying why', async function () {
      if (mayUseRealtime()) {
        const echo = await startEchoServer();
        const h = await startCli(['--port', '0', '--workers', '2', '--worker-priority', 'realtime', '--allow-cidr', '127.0.0.1', '--allow-port', String(echo.port)]);
        const all = threads(h.child.pid);
        const seen = JSON.stringify(all);
        assert.strictEqual(all.filter((t) => t.policy === SCHED_FIFO && t.rtprio === 1).length, 2, `SCHED_FIFO/1 per worker: ${seen}`);
        assert.ok(all.every((t) => (t.policy === SCHED_FIFO && t.rtprio === 1) || (t.policy === SCHED_OTHER && t.rtprio === 0)), seen);
        (await assertTunnel(h.port, `127.0.0.1:${echo.port}`)).destroy();
        h.child.kill('SIGTERM');
        await h.exited;
      }
      // Without the right to (helpers/sched UNPRIVILEGED).
      if (mayUseRealtime(UNPRIVILEGED)) return; // an unprivileged user with RLIMIT_RTPRIO >= 1
      const argv = [...UNPRIVILEGED, process.execPath, path.join(__dirname, '..', 'bin', 'legato'), '--port', '0', '--workers', '1', '--worker-priority', 'realtime'];
      const r = await new Promise((resolve) => execFile(argv[0], argv.slice(1),
        { timeout: 20000 }, (err, stdout, stderr) => resolve({ code: err ? err.code : 0, stderr })));
      assert.strictEqual(r.code, 1, r.stderr);
      assert.match(r.stderr, /legato: cannot start: workerPriority 'realtime': the worker threads could not be made real-time \(pthread_setschedparam SCHED_FIFO: EPERM operation not permitted\); the process needs CAP_SYS_NICE or an RLIMIT_RTPRIO of at least 1/);
    });

    it('warns when bound to a non-loopback address (no authentication), not on loopback names', async () => {
      const h = await startCli(['--bind', '0.0.0.0', '--port', '0']);
      await h.waitLine(/^(?:\S+ )?legato: warning: the forward proxy on 0\.0\.0\.0:\d+ is reachable beyond this machine and has no authentication/m);
      assert.match(h.stderr(), /HTTPS_PROXY=http:\/\/127\.0\.0\.1:/, 'the hint names a usable address');
      assert.match(h.stderr(), /anyone who can connect can use it/);
      const a = await startCli(['--bind', '0.0.0.0', '--port', '0', '--allow-client', '127.0.0.0/8,10.1.0.0/16']);
      await a.waitLine(/legato: warning: the forward proxy on 0\.0\.0\.0:\d+ is reachable beyond this machine and has no authentication: any client in 127\.0\.0\.0\/8, 10\.1\.0\.0\/16 \(--allow-client\) can use it$/m);
      const l = await startCli(['--bind', 'localhost', '--port', '0']);
      assert.strictEqual(l.host, 'localhost');
      for (const x of [h, a, l]) x.child.kill('SIGTERM');
      await Promise.all([h.exited, a.exited, l.exited]);
      assert(!/warning/.test(l.stderr()), l.stderr());
    });

    it('prints engine warnings (a file-descriptor limit too low for --max-connections)', async () => {
      const child = spawn('bash', ['-c', `ulimit -n 64 && exec "$0" "$@"`, process.execPath, path.join(ROOT, 'bin', 'legato'), '--port', '0', '--max-connections', '1000'],
        { stdio: ['ignore', 'pipe', 'pipe'], env: { ...process.env } });
      let err = '';
      child.stderr.on('data', (c) => { err += c; });
      const exited = new Promise((resolve) => child.once('close', (code) => resolve(code)));
      track(child, async (c) => { if (c.exitCode === null) c.kill('SIGKILL'); await exited; }, 0);
      await waitFor(() => /^(?:\S+ )?legato: listening on /m.test(err), 15000);
      await waitFor(() => /^(?:\S+ )?legato: warning: .*\(ERR_LEGATO_NOFILE\)$/m.test(err), 5000, { describe: () => err });
      child.kill('SIGTERM');
      assert.strictEqual(await exited, 0);
    });

    it('exits 1 with a message when the port is taken', async () => {
      const held = net.createServer();
      await new Promise((resolve) => held.listen(0, '127.0.0.1', resolve));
      track(held, (s) => new Promise((r) => s.close(() => r())), 3);
      const h = spawnCli(['--port', String(held.address().port)]);
      assert.strictEqual((await h.exited).code, 1);
      assert.match(h.stderr(), new RegExp(`^(?:\\S+ )?legato: cannot listen on 127\\.0\\.0\\.1:${held.address().port}: .*EADDRINUSE|address already in use`, 'm'));
    });

    it('SIGTERM: stops accepting, lets an open tunnel finish, exits 0', async () => {
      const echo = await startEchoServer();
      const h = await startCli(['--port', '0', '--allow-cidr', '127.0.0.1', '--allow-port', String(echo.port)]);
      const tunnel = await assertTunnel(h.port, `127.0.0.1:${echo.port}`);
      h.child.kill('SIGTERM');
      await h.waitLine(/^(?:\S+ )?legato: SIGTERM: stopping/m);
      await waitFor(() => refused(h.port), 5000, { message: 'the listener still accepts after SIGTERM' });
      // The tunnel still works during the grace period...
      const got = new Promise((resolve) => tunnel.once('data', (d) => resolve(d.toString())));
      tunnel.write('still here');
      assert.strictEqual(await got, 'still here');
      assert.strictEqual(h.child.exitCode, null, 'still running while a tunnel is open');
      // ...and once it closes the process exits 0 without waiting for the whole grace period.
      tunnel.end();
      assert.deepStrictEqual(await h.exited, { code: 0, signal: null });
      assert.match(h.stderr(), TUNNEL_LINE);
      assert.match(h.stderr(), /^(?:\S+ )?legato: stopped$/m);
    });

    it('SIGINT stops gracefully too; a second signal exits at once (code 1)', async () => {
      const idle = await startCli(['--port', '0']);
      idle.child.kill('SIGINT');
      assert.deepStrictEqual(await idle.exited, { code: 0, signal: null });

      const echo = await startEchoServer();
      const h = await startCli(['--port', '0', '--allow-cidr', '127.0.0.1', '--allow-port', String(echo.port)]);
      const tunnel = await assertTunnel(h.port, `127.0.0.1:${echo.port}`);
      const tunnelClosed = new Promise((resolve) => tunnel.once('close', resolve));
      h.child.kill('SIGINT');
      await h.waitLine(/^(?:\S+ )?legato: SIGINT: stopping/m);
      h.child.kill('SIGINT');
      assert.deepStrictEqual(await h.exited, { code: 1, signal: null });
      assert.match(h.stderr(), /^(?:\S+ )?legato: SIGINT again: exiting now$/m);
      await tunnelClosed;
    });

    describe('serve config.json', () => {
      it('starts every listener of a valid file (connect and tls) and stops on SIGTERM', async () => {
        const origin = await startTlsOrigin('a', certs.leaves['a.test']);
        const echo = await startEchoServer();
        const file = tempFile('legato.json', JSON.stringify({
          workerThreads: 1,
          listeners: [
            { kind: 'connect', port: 0, connect: { allowPorts: [echo.port], allowCidrs: ['127.0.0.1/32'] } },
            { kind: 'tls', host: '127.0.0.1', port: 0 },
          ],
          routes: [{ sni: 'a.test', upstreams: [{ kind: 'tcp', host: '127.0.0.1', port: origin.port }] }],
        }));
        const h = spawnCli(['serve', file]);
        await h.waitLine(/^(?:\S+ )?legato: listening on 127\.0\.0\.1:\d+ \(tls, 1 worker\)$/m);
        const connectPort = Number((await h.waitLine(/^(?:\S+ )?legato: listening on 127\.0\.0\.1:(\d+) \(connect, 1 worker\)$/m))[1]);
        const tlsPort = Number(/^(?:\S+ )?legato: listening on 127\.0\.0\.1:(\d+) \(tls/m.exec(h.stderr())[1]);
        (await assertTunnel(connectPort, `127.0.0.1:${echo.port}`)).destroy();
        const r = await run('curl', ['-sS', '--max-time', '10', '--cacert', certs.caPath, '--resolve', `a.test:${tlsPort}:127.0.0.1`, `https://a.test:${tlsPort}/`], { env: toolEnv() });
        assert.strictEqual(r.code, 0, r.stderr);
        assert.strictEqual(r.stdout, 'origin=a\nsni=a.test\n');
        await h.waitLine(TUNNEL_LINE);
        h.child.kill('SIGTERM');
        assert.deepStrictEqual(await h.exited, { code: 0, signal: null });
      });

      it('reports an invalid file with the option path, exit 2', async () => {
        const cases = [
          // file:line:column: the option path and what is wrong (serve.spec.js tests the formats).
          [JSON.stringify({ listeners: [{ kind: 'connect', port: 70000 }] }), /^(?:\S+ )?legato: .*legato\.json:1:33: listeners\[0\]\.port must be an integer 0-65535$/],
          [JSON.stringify({ listeners: [{ kind: 'connect', port: 0, connect: { denyCidrs: ['10.1.0.0/8'] } }] }), /: listeners\[0\]\.connect\.denyCidrs\[0\] has host bits set/],
          [JSON.stringify({ listeners: [{ port: 0 }], routes: [{ sni: 'a.test', upstreams: [{ kind: 'tcp', host: '127.0.0.1', port: 1 }], snii: 1 }] }), /: routes\[0\]: unknown option 'snii' \(did you mean 'sni'\?\)$/],
          ['{ "listeners": [ }', /legato\.json:1:18: not valid JSON: /],
        ];
        for (const [content, re] of cases) {
          const file = tempFile('legato.json', content);
          const h = spawnCli(['serve', file]);
          assert.strictEqual((await h.exited).code, 2, h.stderr());
          const lines = h.lines();
          assert.strictEqual(lines.length, 1, h.stderr());
          assert.match(lines[0], re);
          assert(lines[0].includes(file), 'names the file');
        }
        const missing = spawnCli(['serve', path.join(ROOT, 'no-such-legato.json')]);
        assert.strictEqual((await missing.exited).code, 2);
        assert.match(missing.stderr(), /^(?:\S+ )?legato: .*no-such-legato\.json: cannot read it: ENOENT/m);
        await assertUsageError(['serve', 'x.json', '--port', '1'], {}, '--port cannot be used with serve (set it in the config file)');
      });
    });
  });
});
