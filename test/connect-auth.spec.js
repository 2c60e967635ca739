'use strict';
// Basic proxy authentication on connect listeners (`connect.auth`): real clients (curl with
// `-x user:pass@`, `--proxy-user`, `--proxy-anyauth`; undici's ProxyAgent) through an
// authenticating listener to a local HTTPS origin; every refusal from raw bytes, each with the
// exact 407 text and the counters that record it (the 1024/1025-byte header limit included);
// bytes pipelined after the head; the cache; authentication before the destination policy; and
// the thread pool: verifications never block the worker, identical credentials share one, the
// 16-job bound and the 10 s deadline (503, refusedAuthBusy), stop() during a verification. The
// pool is held deterministically by fs opens of FIFOs nobody writes to (libuv's pool is shared
// by Node and the engine), always released at cleanup.

const assert = require('assert');
const crypto = require('crypto');
const fs = require('fs');
const { getCerts } = require('./helpers/certs');
const { startTlsOrigin, startEchoServer } = require('./helpers/servers');
const { portOf, track, cleanup, startProxy } = require('./helpers/proxy');
const { run } = require('./helpers/clients');
const { holdPool } = require('./helpers/pool');
const { waitFor, waitForMetric, sleep } = require('./helpers/wait');
const {
  ESTABLISHED, REASONS, BIN, startConnectProxy, parseReply, request, openTunnel, closedPort, spawnCli, startCli, tempFile,
} = require('./helpers/connect');
const { Proxy } = require('..');

const REALM = 'legato';
const RESP_407 = (realm = REALM) => 'HTTP/1.1 407 Proxy Authentication Required\r\n' +
  `Proxy-Authenticate: Basic realm="${realm}"\r\n` +
  'Content-Type: text/plain\r\nContent-Length: 30\r\nConnection: close\r\n\r\nProxy Authentication Required\n';

const b64 = (buf) => buf.toString('base64').replace(/=+$/, '');

/** A `$scrypt$` hash of `password` (cheap by default: tests verify many). */
function scryptHash(password, { ln = 4, r = 8, p = 1, salt = crypto.randomBytes(16), keyLen = 32 } = {}) {
  const key = crypto.scryptSync(password, salt, keyLen, { N: 2 ** ln, r, p, maxmem: 256 * 1024 * 1024 });
  return `$scrypt$ln=${ln},r=${r},p=${p}$${b64(salt)}$${b64(key)}`;
}

const basic = (user, pass) => `Basic ${Buffer.from(`${user}:${pass}`).toString('base64')}`;
const lm = (proxy, i = 0) => proxy.metrics().listeners[i];
const inFlight = (proxy) => lm(proxy).authVerifications; // started (a proxy here has one worker)

const USERS = [
  { name: 'alice', password: 'correct horse' },
  { name: 'bob', password: 'b0b:with:colons' },
];

/** An auth block for USERS (plus extra users), with the given cost. */
function authOf(opts = {}, extra = []) {
  return { ...(opts.realm ? { realm: opts.realm } : {}), users: [...USERS, ...extra].map((u) => ({ name: u.name, hash: scryptHash(u.password, opts.cost) })) };
}

/** Whether a `$scrypt$` line verifies `password` (checked with Node's scrypt, independently). */
function verifies(line, password) {
  const m = /^\$scrypt\$ln=(\d+),r=(\d+),p=(\d+)\$([A-Za-z0-9+/]+)\$([A-Za-z0-9+/]+)$/.exec(line);
  assert(m, `not a $scrypt$ line: ${line}`);
  const [ln, r, p] = [1, 2, 3].map((i) => Number(m[i]));
  const key = Buffer.from(m[5], 'base64');
  const got = crypto.scryptSync(password, Buffer.from(m[4], 'base64'), key.length, { N: 2 ** ln, r, p, maxmem: 512 * 1024 * 1024 });
  return crypto.timingSafeEqual(got, key);
}

/** Assert a reply is exactly the 407, closed with a FIN. */
function assert407(r, realm) {
  assert.strictEqual(r.text, RESP_407(realm), `reply was ${JSON.stringify(r.text)}`);
  assert(r.ended, 'the proxy closes its side with a FIN after the 407');
}

function assertErrorReply(r, status) {
  assert.strictEqual(r.statusLine, `HTTP/1.1 ${status} ${REASONS[status]}`, `reply was ${JSON.stringify(r.text)}`);
  assert.strictEqual(r.headers.connection, 'close');
  assert(r.ended);
}

describe('connect listener: Basic proxy authentication (connect.auth)', function () {
  this.timeout(30000);
  afterEach(cleanup);

  describe('real clients through an authenticating listener to an HTTPS origin', () => {
    let certs;
    let origin;
    let proxy;
    let port;

    before(() => { certs = getCerts(); });

    beforeEach(async () => {
      origin = await startTlsOrigin('a', certs.leaves['a.test']);
      proxy = await startConnectProxy({ allowPorts: [origin.port], allowCidrs: ['127.0.0.1/32'], auth: authOf() }, {}, { workerThreads: 1 });
      port = portOf(proxy);
    });

    const curl = (args) => run('curl', ['-sS', '--max-time', '10', '--http1.1', '--cacert', certs.caPath,
      '--connect-to', `a.test:${origin.port}:127.0.0.1:${origin.port}`, ...args, `https://a.test:${origin.port}/`]);

    it('curl -x http://user:pass@…: the tunnel reaches the origin (chain verified), one verification', async () => {
      const r = await curl(['-x', `http://alice:${encodeURIComponent('correct horse')}@127.0.0.1:${port}`]);
      assert.strictEqual(r.code, 0, r.stderr);
      assert.strictEqual(r.stdout, 'origin=a\nsni=a.test\n');
      await waitForMetric(proxy, 'status200', 1, 5000, { listener: 0 });
      const m = lm(proxy);
      assert.strictEqual(m.authVerifications, 1);
      assert.strictEqual(m.status407, 0);
      assert.strictEqual(m.authFailures, 0);
    });

    it('curl --proxy-user with a password holding colons; the second request is a cache hit', async () => {
      for (let i = 0; i < 2; i++) {
        const r = await curl(['-x', `http://127.0.0.1:${port}`, '--proxy-user', 'bob:b0b:with:colons']);
        assert.strictEqual(r.code, 0, r.stderr);
        assert.strictEqual(r.stdout, 'origin=a\nsni=a.test\n');
      }
      await waitForMetric(proxy, 'status200', 2, 5000, { listener: 0 });
      assert.strictEqual(lm(proxy).authVerifications, 1);
      assert.strictEqual(lm(proxy).authCacheHits, 1);
    });

    it('curl --proxy-anyauth: asks without credentials, gets the 407 challenge, retries with Basic', async () => {
      const r = await curl(['-x', `http://127.0.0.1:${port}`, '--proxy-anyauth', '--proxy-user', 'alice:correct horse', '-v']);
      assert.strictEqual(r.code, 0, r.stderr);
      assert.strictEqual(r.stdout, 'origin=a\nsni=a.test\n');
      assert.match(r.stderr, /407/);
      assert.match(r.stderr, /Proxy-Authenticate: Basic realm="legato"/);
      await waitForMetric(proxy, 'status200', 1, 5000, { listener: 0 });
      assert.strictEqual(lm(proxy).status407, 1);
      assert.strictEqual(lm(proxy).authFailures, 0, 'no credentials is not a failure');
    });

    it('curl with a wrong password fails with 407 and is counted', async () => {
      const r = await curl(['-x', `http://127.0.0.1:${port}`, '--proxy-user', 'alice:wrong']);
      assert.notStrictEqual(r.code, 0);
      assert.match(r.stderr, /407/);
      await waitForMetric(proxy, 'status407', 1, 5000, { listener: 0 });
      assert.strictEqual(lm(proxy).authFailures, 1);
      assert.strictEqual(lm(proxy).status200, 0);
    });

    it('undici ProxyAgent with a Basic token', async () => {
      const undici = require('undici');
      const agent = new undici.ProxyAgent({
        uri: `http://127.0.0.1:${port}`, token: basic('alice', 'correct horse'),
        requestTls: { ca: certs.ca, servername: 'a.test' },
      });
      try {
        const res = await undici.request(`https://127.0.0.1:${origin.port}/`, { dispatcher: agent });
        assert.strictEqual(res.statusCode, 200);
        assert.strictEqual(await res.body.text(), 'origin=a\nsni=a.test\n');
      } finally {
        await agent.close();
      }
      assert.strictEqual(lm(proxy).authVerifications, 1);
    });
  });

  describe('refusals from raw bytes: the exact 407, counted', () => {
    let proxy;
    let port;
    let target;
    // A user whose password makes "Basic   <token>" (three spaces) exactly 1024 bytes.
    const longUser = 'long';
    const longPassword = 'p'.repeat(1016 / 4 * 3 - longUser.length - 1);

    before(async () => { target = `127.0.0.1:${await closedPort()}`; });

    beforeEach(async () => {
      proxy = await startConnectProxy({ allowPorts: [Number(target.split(':')[1])], allowCidrs: ['127.0.0.1/32'], auth: authOf({}, [{ name: longUser, password: longPassword }]) }, {}, { workerThreads: 1 });
      port = portOf(proxy);
    });

    const head = (...lines) => `CONNECT ${target} HTTP/1.1\r\nHost: ${target}\r\n${lines.map((l) => `${l}\r\n`).join('')}\r\n`;

    // [name, header lines, authFailures, authVerifications]
    const CASES = [
      ['no Proxy-Authorization', [], 0, 0],
      ['Authorization instead of Proxy-Authorization', [`Authorization: ${basic('alice', 'correct horse')}`], 0, 0],
      ['an empty value', ['Proxy-Authorization:   '], 1, 0],
      ['the scheme alone', ['Proxy-Authorization: Basic'], 1, 0],
      ['Bearer', ['Proxy-Authorization: Bearer abc.def'], 1, 0],
      ['Digest', ['Proxy-Authorization: Digest username="alice", realm="legato"'], 1, 0],
      ['a tab after the scheme', [`Proxy-Authorization: Basic\t${Buffer.from('alice:correct horse').toString('base64')}`], 1, 0],
      ['bad base64', ['Proxy-Authorization: Basic YWxp*2U6eA=='], 1, 0],
      ['unpadded base64', [`Proxy-Authorization: Basic ${b64(Buffer.from('alice:x'))}`], 1, 0],
      ['non-zero trailing bits', ['Proxy-Authorization: Basic YWxpY2U6eB=='], 1, 0],
      ['no colon', [`Proxy-Authorization: Basic ${Buffer.from('alice').toString('base64')}`], 1, 0],
      ['a wrong password', [`Proxy-Authorization: ${basic('alice', 'correct horsE')}`], 1, 1],
      ['an empty password', [`Proxy-Authorization: ${basic('alice', '')}`], 1, 1],
      ['an unknown user', [`Proxy-Authorization: ${basic('mallory', 'correct horse')}`], 1, 1],
      ['an empty user', [`Proxy-Authorization: ${basic('', 'correct horse')}`], 1, 1],
      ['a user name in another case', [`Proxy-Authorization: ${basic('Alice', 'correct horse')}`], 1, 1],
      ['the first of two fields is wrong', [`Proxy-Authorization: ${basic('alice', 'nope')}`, `Proxy-Authorization: ${basic('alice', 'correct horse')}`], 1, 1],
      ['1025 bytes (one space too many)', [`Proxy-Authorization: Basic    ${Buffer.from(`${longUser}:${longPassword}`).toString('base64')}`], 1, 0],
    ];

    for (const [name, lines, failures, verifications] of CASES) {
      it(`407: ${name}`, async () => {
        const r = await request(port, head(...lines));
        assert407(r);
        await waitForMetric(proxy, 'status407', 1, 5000, { listener: 0 });
        const m = lm(proxy);
        assert.strictEqual(m.authFailures, failures, 'authFailures');
        assert.strictEqual(m.authVerifications, verifications, 'authVerifications');
        assert.strictEqual(m.authCacheHits, 0);
        assert.strictEqual(m.status200 + m.status502 + m.status403, 0, 'nothing went past authentication');
      });
    }

    it('the 1024-byte limit itself is accepted (and the name and scheme match in any case)', async () => {
      const value = `Basic   ${Buffer.from(`${longUser}:${longPassword}`).toString('base64')}`;
      assert.strictEqual(value.length, 1024);
      const r = await request(port, head(`proxy-AUTHORIZATION: ${value.replace('Basic', 'bAsIc')}`));
      // Past authentication, the target (a closed port) refuses the dial.
      assertErrorReply(r, 502);
      assert.strictEqual(lm(proxy).authVerifications, 1);
      assert.strictEqual(lm(proxy).status407, 0);
    });

    it('a realm is sent as configured', async () => {
      const p2 = await startConnectProxy({ auth: { realm: 'Corp proxy (ask IT)', users: [{ name: 'a', hash: scryptHash('b') }] } });
      assert407(await request(portOf(p2), head()), 'Corp proxy (ask IT)');
    });

    it('the tunnel event records the 407', async () => {
      const events = [];
      proxy.on('tunnel', (t) => events.push(t));
      await request(port, head());
      await waitFor(() => events.length === 1);
      assert.strictEqual(events[0].status, 407);
    });
  });

  describe('the tunnel after authentication', () => {
    it('bytes pipelined after the head go to the target first', async () => {
      const echo = await startEchoServer();
      const proxy = await startConnectProxy({ allowPorts: [echo.port], allowCidrs: ['127.0.0.1/32'], auth: authOf() }, {}, { workerThreads: 1 });
      const t = await openTunnel(portOf(proxy), `127.0.0.1:${echo.port}`, {
        headers: [`Proxy-Authorization: ${basic('alice', 'correct horse')}`], after: Buffer.from('early bytes|'),
      });
      assert.strictEqual(t.head, ESTABLISHED);
      const got = [t.rest];
      t.socket.on('data', (c) => got.push(c));
      t.socket.write('later');
      await waitFor(() => Buffer.concat(got).toString() === 'early bytes|later');
    });

    it('authentication comes before the policy: no credentials is 407 even for a denied target, credentials then 403', async () => {
      const proxy = await startConnectProxy({ auth: authOf() }, {}, { workerThreads: 1 });
      const port = portOf(proxy);
      assert407(await request(port, 'CONNECT 127.0.0.1:22 HTTP/1.1\r\n\r\n'));
      assert.strictEqual(lm(proxy).refusedPort, 0);
      const r = await request(port, `CONNECT 127.0.0.1:22 HTTP/1.1\r\nProxy-Authorization: ${basic('alice', 'correct horse')}\r\n\r\n`);
      assertErrorReply(r, 403);
      assert.strictEqual(lm(proxy).refusedPort, 1);
    });

    it('only successes are cached: a wrong password is verified every time, a right one once', async () => {
      const proxy = await startConnectProxy({ auth: authOf() }, {}, { workerThreads: 1 });
      const port = portOf(proxy);
      for (let i = 0; i < 3; i++) assert407(await request(port, `CONNECT 127.0.0.1:22 HTTP/1.1\r\nProxy-Authorization: ${basic('alice', 'nope')}\r\n\r\n`));
      for (let i = 0; i < 3; i++) assertErrorReply(await request(port, `CONNECT 127.0.0.1:22 HTTP/1.1\r\nProxy-Authorization: ${basic('alice', 'correct horse')}\r\n\r\n`), 403);
      const m = lm(proxy);
      assert.strictEqual(m.authVerifications, 4);
      assert.strictEqual(m.authCacheHits, 2);
      assert.strictEqual(m.authFailures, 3);
    });

    it('a listener without auth is unaffected (no header needed)', async () => {
      const echo = await startEchoServer();
      const proxy = await startConnectProxy({ allowPorts: [echo.port], allowCidrs: ['127.0.0.1/32'] });
      const t = await openTunnel(portOf(proxy), `127.0.0.1:${echo.port}`);
      assert.strictEqual(t.head, ESTABLISHED);
    });
  });

  describe('the thread pool', () => {
    const authHead = (user, pass, target = '127.0.0.1:22') => `CONNECT ${target} HTTP/1.1\r\nProxy-Authorization: ${basic(user, pass)}\r\n\r\n`;

    it('a plain tunnel on another listener completes while a verification waits for the pool', async () => {
      const echo = await startEchoServer();
      const proxy = await startProxy({
        workerThreads: 1,
        listeners: [
          { kind: 'connect', host: '127.0.0.1', port: 0, connect: { auth: authOf() } },
          { kind: 'connect', host: '127.0.0.1', port: 0, connect: { allowPorts: [echo.port], allowCidrs: ['127.0.0.1/32'] } },
        ],
      });
      const pool = holdPool();
      const pending = request(portOf(proxy, 0), authHead('alice', 'correct horse'));
      await waitFor(() => lm(proxy, 0).authVerifications === 1);
      const t = await openTunnel(portOf(proxy, 1), `127.0.0.1:${echo.port}`);
      assert.strictEqual(t.head, ESTABLISHED);
      t.socket.write('ping');
      await new Promise((resolve) => t.socket.once('data', resolve));
      assert.strictEqual(lm(proxy, 0).status403 + lm(proxy, 0).status407, 0, 'the verification is still waiting');
      await pool.release();
      assertErrorReply(await pending, 403); // authenticated, then the policy refused port 22
    });

    it('tunnels with identical credentials share one verification', async () => {
      const proxy = await startConnectProxy({ auth: authOf() }, {}, { workerThreads: 1 });
      const pool = holdPool();
      const head = authHead('bob', 'b0b:with:colons');
      const replies = Array.from({ length: 5 }, () => request(portOf(proxy), head));
      // Every head has been read (and so joined or started a verification) while the pool is held.
      await waitFor(() => lm(proxy).bytesFromClients >= 5 * head.length, 10000);
      assert.strictEqual(lm(proxy).authVerifications, 1);
      await pool.release();
      for (const r of await Promise.all(replies)) assertErrorReply(r, 403);
      assert.strictEqual(lm(proxy).authVerifications, 1);
      assert.strictEqual(lm(proxy).authCacheHits, 0, 'none waited for the cache: all five shared the one job');
    });

    it('at most 16 verifications per worker: the 17th distinct one is 503 (refusedAuthBusy); the 16 finish once the pool is free', async () => {
      // One source's failure limit would stop it at 10 (see failureLimit below): off here.
      const proxy = await startConnectProxy({ auth: { ...authOf(), failureLimit: null } }, {}, { workerThreads: 1 });
      const pool = holdPool();
      const queued = Array.from({ length: 16 }, (_, i) => request(portOf(proxy), authHead('alice', `wrong${i}`)));
      await waitFor(() => inFlight(proxy) === 16);
      const r = await request(portOf(proxy), authHead('alice', 'wrong16'));
      assertErrorReply(r, 503);
      assert.strictEqual(lm(proxy).refusedAuthBusy, 1);
      assert.strictEqual(lm(proxy).status503, 1);
      await pool.release();
      for (const q of await Promise.all(queued)) assert407(q);
      assert.strictEqual(lm(proxy).authFailures, 16);
    });

    it('no verdict within 10 s of the head: 503 (refusedAuthBusy); the job that never ran gives its failureLimit token back', async function () {
      this.timeout(40000);
      // One token: if the abandoned guess kept it, the right password below would get 429.
      const proxy = await startConnectProxy({ auth: { ...authOf(), failureLimit: { perMinute: 1, burst: 1 } } }, {}, { workerThreads: 1 });
      const pool = holdPool();
      const t0 = Date.now();
      const r = await request(portOf(proxy), authHead('alice', 'a guess'));
      const elapsed = Date.now() - t0;
      assertErrorReply(r, 503);
      assert(elapsed >= 9500, `503 after ${elapsed} ms; the deadline is 10 s`);
      assert.strictEqual(lm(proxy).refusedAuthBusy, 1);
      await pool.release();
      // The abandoned job left the queue: the worker is free, a new request verifies normally.
      assertErrorReply(await request(portOf(proxy), authHead('alice', 'correct horse')), 403);
      assert.strictEqual(lm(proxy).authThrottled, 0);
    });

    it('stop() while verifications are queued: resolves without waiting for the pool', async () => {
      const proxy = await startConnectProxy({ auth: authOf() }, {}, { workerThreads: 1 });
      const pool = holdPool();
      const replies = Array.from({ length: 3 }, (_, i) => request(portOf(proxy), authHead('alice', `x${i}`)));
      await waitFor(() => inFlight(proxy) === 3);
      await proxy.stop({ graceMs: 0 });
      for (const r of await Promise.all(replies)) assert.strictEqual(r.data.length, 0);
      await pool.release();
    });

    it('stop() and client resets while a costly verification runs are safe', async function () {
      this.timeout(60000);
      const proxy = new Proxy({ workerThreads: 1, listeners: [{ kind: 'connect', host: '127.0.0.1', port: 0, connect: { auth: authOf({ cost: { ln: 15, r: 8 } }) } }] });
      await proxy.start();
      track(proxy, (p) => p.stop({ graceMs: 0 }), 2);
      const reset = request(portOf(proxy), authHead('alice', 'correct horse'));
      const kept = request(portOf(proxy), authHead('bob', 'b0b:with:colons'));
      await waitFor(() => lm(proxy).authVerifications === 2);
      await proxy.stop({ graceMs: 0 });
      await Promise.all([reset, kept]);
    });
  });

  describe('the CLI (real processes, real files)', () => {
    // node loads the addon: it keeps our environment (under the ASan run, the preloaded runtime).
    const hashCli = (args, input) => run(process.execPath, [BIN, 'hash-password', ...args], { input, timeoutMs: 30000, env: process.env });

    it('legato hash-password reads stdin (one trailing newline dropped) and prints a line the engine accepts', async () => {
      const r = await hashCli([], 'correct horse\n');
      assert.strictEqual(r.code, 0, r.stderr);
      const line = r.stdout.trim();
      assert.match(line, /^\$scrypt\$ln=15,r=8,p=1\$/);
      assert(verifies(line, 'correct horse'));
      assert(!verifies(line, 'correct horse\n'));
      assert.strictEqual(require('../lib/binding').parseScryptHash(line), null);
      const cheap = await hashCli(['--cost', '10'], 'pw\r\n');
      assert.match(cheap.stdout, /^\$scrypt\$ln=10,r=8,p=1\$/);
      assert(verifies(cheap.stdout.trim(), 'pw'));
    });

    it('legato hash-password refuses an empty password and a bad --cost', async () => {
      const empty = await hashCli([], '\n');
      assert.strictEqual(empty.code, 2);
      assert.match(empty.stderr, /^(?:\S+ )?legato: the password is empty$/m);
      const bad = await hashCli(['--cost', '31'], 'x');
      assert.strictEqual(bad.code, 2);
      assert.match(bad.stderr, /--cost '31' must be an integer 10-20/);
    });

    it('legato hash-password on a terminal asks twice without echo', async function () {
      if (!fs.existsSync('/usr/bin/script')) this.skip();
      const cmd = `${process.execPath} ${BIN} hash-password --cost 10`;
      // Type each answer only once its prompt is shown: echo is off from then on (bytes typed
      // earlier would be echoed by the terminal itself, before legato could turn echo off).
      const feed = async (child, out, answers) => {
        for (const [prompt, a] of [['Password:', answers[0]], ['Again:', answers[1]]]) {
          await waitFor(() => Buffer.concat(out).toString().includes(prompt), 20000);
          await sleep(100);
          child.stdin.write(a);
        }
      };
      for (const [answers, ok] of [[['s3cret\r', 's3cret\r'], true], [['s3cret\r', 'other\r'], false]]) {
        const child = require('child_process').spawn('script', ['-qfec', cmd, '/dev/null'], { stdio: ['pipe', 'pipe', 'pipe'] });
        track(child, (c) => { if (c.exitCode === null) c.kill('SIGKILL'); }, 0);
        const out = [];
        child.stdout.on('data', (c) => out.push(c));
        feed(child, out, answers).catch(() => {});
        const code = await new Promise((resolve) => child.once('exit', resolve));
        const text = Buffer.concat(out).toString();
        assert(text.includes('Password:') && text.includes('Again:'), text);
        assert(!text.includes('s3cret') && !text.includes('other'), `the password was echoed: ${JSON.stringify(text)}`);
        if (ok) {
          assert.strictEqual(code, 0, text);
          assert(verifies(/\$scrypt\$\S+/.exec(text)[0], 's3cret'));
        } else {
          assert.strictEqual(code, 2, text);
          assert.match(text, /the passwords do not match/);
        }
      }
    });

    it('--auth-file: a real proxy requires the file\'s users (curl through it); the warning names clear text', async () => {
      const echo = await startEchoServer();
      const line = (await hashCli(['--cost', '10'], 'pa55')).stdout.trim();
      const file = tempFile('users.txt', `# proxy users\n\n  alice:${line}  \r\n# bob:disabled\n`);
      const cli = await startCli(['--bind', '0.0.0.0', '--port', '0', '--auth-file', file, '--allow-cidr', '127.0.0.1', '--allow-port', String(echo.port), '--workers', '1']);
      await cli.waitLine(/warning: the forward proxy on 0\.0\.0\.0:\d+ is reachable beyond this machine; it requires Basic authentication, whose credentials cross the network in clear text/);
      assert407(await request(cli.port, `CONNECT 127.0.0.1:${echo.port} HTTP/1.1\r\n\r\n`));
      const t = await openTunnel(cli.port, `127.0.0.1:${echo.port}`, { headers: [`Proxy-Authorization: ${basic('alice', 'pa55')}`] });
      assert.strictEqual(t.head, ESTABLISHED);
      t.socket.destroy();
      const r = await run('curl', ['-sS', '--max-time', '10', '-p', '-x', `http://alice:wrong@127.0.0.1:${cli.port}`, `http://127.0.0.1:${echo.port}/`]);
      assert.notStrictEqual(r.code, 0);
      assert.match(r.stderr, /407/);
    });

    it('LEGATO_AUTH_FILE is the twin of --auth-file', async () => {
      const line = (await hashCli(['--cost', '10'], 'pw')).stdout.trim();
      const file = tempFile('users.txt', `carol:${line}\n`);
      const cli = await startCli(['--port', '0', '--workers', '1'], { env: { LEGATO_AUTH_FILE: file } });
      assert407(await request(cli.port, 'CONNECT 127.0.0.1:22 HTTP/1.1\r\n\r\n'));
      assertErrorReply(await request(cli.port, `CONNECT 127.0.0.1:22 HTTP/1.1\r\nProxy-Authorization: ${basic('carol', 'pw')}\r\n\r\n`), 403);
    });

    it('legato serve: connect.auth from a YAML file; a reload that changes the users hands over to a new engine with them, same port', async () => {
      const { tempDir, writeFile, replaceFile, startServe } = require('./helpers/serve');
      const dir = tempDir('auth2-serve-');
      const yaml = (name, pass) => `listeners:\n  - kind: connect\n    host: 127.0.0.1\n    port: 0\n    connect:\n      auth:\n        realm: office\n        users:\n          - name: ${name}\n            hash: "${scryptHash(pass)}"\n`;
      const file = writeFile(dir, 'legato.yaml', yaml('dora', 'pw1'));
      const h = await startServe([file]);
      const port = h.ports[0];
      assert407(await request(port, 'CONNECT 127.0.0.1:22 HTTP/1.1\r\n\r\n'), 'office');
      assertErrorReply(await request(port, `CONNECT 127.0.0.1:22 HTTP/1.1\r\nProxy-Authorization: ${basic('dora', 'pw1')}\r\n\r\n`), 403);
      replaceFile(file, yaml('eve', 'pw2'));
      h.child.kill('SIGHUP');
      await h.waitLine(/^(?:\S+ )?legato: listeners handed over to a new engine \(listeners\[0\]\.connect\); /m);
      assert407(await request(port, `CONNECT 127.0.0.1:22 HTTP/1.1\r\nProxy-Authorization: ${basic('dora', 'pw1')}\r\n\r\n`), 'office');
      assertErrorReply(await request(port, `CONNECT 127.0.0.1:22 HTTP/1.1\r\nProxy-Authorization: ${basic('eve', 'pw2')}\r\n\r\n`), 403);
    });

    it('--auth-failure-limit and LEGATO_AUTH_FAILURE_LIMIT: failureLimit for the file\'s users (429 as curl sees it), off, and their errors', async () => {
      const cli = require('../lib/cli');
      const { DEFAULT_DENY_CIDRS } = require('../lib/config');
      const line = (await hashCli(['--cost', '10'], 'pw')).stdout.trim();
      const file = tempFile('users.txt', `carol:${line}\n`);
      const limitOf = (argv, env = {}) => cli.buildConfig(cli.parseArgs(['--auth-file', file, ...argv], env).values, DEFAULT_DENY_CIDRS).listeners[0].connect.auth.failureLimit;
      assert.strictEqual(limitOf([]), undefined, 'the library default applies');
      assert.deepStrictEqual(limitOf(['--auth-failure-limit', '3/5']), { perMinute: 3, burst: 5 });
      assert.deepStrictEqual(limitOf([], { LEGATO_AUTH_FAILURE_LIMIT: '3/5' }), { perMinute: 3, burst: 5 });
      assert.deepStrictEqual(limitOf(['--auth-failure-limit', '30']), { perMinute: 30 });
      assert.strictEqual(limitOf(['--auth-failure-limit', 'off']), null);
      // A real CLI: 1 a minute, burst 1 (one worker): the second wrong password gets 429.
      const proxyCli = await startCli(['--port', '0', '--workers', '1', '--auth-file', file, '--auth-failure-limit', '1/1']);
      const curlWrong = () => run('curl', ['-sS', '--max-time', '10', '-p', '-x', `http://carol:wrong@127.0.0.1:${proxyCli.port}`, 'http://127.0.0.1:22/']);
      assert.match((await curlWrong()).stderr, /407/);
      assert.match((await curlWrong()).stderr, /429/);
      // Errors: exit 2 naming the flag.
      const CASES = [
        [['--port', '0', '--auth-failure-limit', '5'], {}, /--auth-failure-limit needs --auth-file/],
        [['--port', '0', '--auth-file', file, '--auth-failure-limit', '1/2/3'], {}, /--auth-failure-limit '1\/2\/3' must be <failed logins per minute>\[\/<burst>\] or off/],
        [['--port', '0', '--auth-file', file, '--auth-failure-limit', '0'], {}, /--auth-failure-limit '0': the rate must be an integer 1-60000/],
        [['--port', '0', '--auth-file', file], { LEGATO_AUTH_FAILURE_LIMIT: '5/2000' }, /LEGATO_AUTH_FAILURE_LIMIT='5\/2000': the burst must be an integer 1-1000/],
      ];
      for (const [argv, env, re] of CASES) {
        const h = spawnCli(argv, { env });
        assert.strictEqual((await h.exited).code, 2, h.stderr());
        assert.match(h.stderr(), re);
      }
    });

    it('--auth-file errors name file:line and exit 2', async () => {
      const good = (await hashCli(['--cost', '10'], 'pw')).stdout.trim();
      const CASES = [
        [`# c\nalice:${good}\nbob:$scrypt$ln=4\n`, /users\.txt:3: the hash of 'bob' is not a \$scrypt\$ hash: /],
        [`alice:${good}\nalice:${good}\n`, /users\.txt:2: user 'alice' already appears on line 1/],
        [`:${good}\n`, /users\.txt:1: expected user:\$scrypt\$\.\.\., got no user name/],
        ['# nobody\n', /users\.txt: no users/],
      ];
      for (const [content, re] of CASES) {
        const h = spawnCli(['--port', '0', '--auth-file', tempFile('users.txt', content)]);
        const { code } = await h.exited;
        assert.strictEqual(code, 2, h.stderr());
        assert.match(h.stderr(), re);
      }
      const missing = spawnCli(['--port', '0'], { env: { LEGATO_AUTH_FILE: '/nonexistent/auth2-users.txt' } });
      assert.strictEqual((await missing.exited).code, 2);
      assert.match(missing.stderr(), /LEGATO_AUTH_FILE \/nonexistent\/auth2-users\.txt: no such file/);
    });
  });

  describe('failed logins per source (failureLimit)', () => {
    const authHead = (user, pass, target = '127.0.0.1:22') => `CONNECT ${target} HTTP/1.1\r\nProxy-Authorization: ${basic(user, pass)}\r\n\r\n`;
    const withLimit = (failureLimit) => ({ ...authOf(), failureLimit });

    it('after `burst` wrong passwords: 429 without verifying (authThrottled); a cached success still passes, an uncached one does not', async () => {
      const proxy = await startConnectProxy({ auth: withLimit({ perMinute: 1, burst: 3 }) }, {}, { workerThreads: 1 });
      const port = portOf(proxy);
      const access = [];
      proxy.on('access', (a) => access.push(a));
      assertErrorReply(await request(port, authHead('alice', 'correct horse')), 403); // verified, cached
      for (let i = 0; i < 3; i++) assert407(await request(port, authHead('alice', `wrong${i}`)));
      assert.strictEqual(lm(proxy).authVerifications, 4);
      const r = await request(port, authHead('alice', 'wrong3'));
      assertErrorReply(r, 429);
      assert.strictEqual(r.body, 'Too Many Requests\n');
      let m = lm(proxy);
      assert.strictEqual(m.authVerifications, 4, 'not verified');
      assert.strictEqual(m.authThrottled, 1);
      assert.strictEqual(m.status429, 1);
      assert.strictEqual(m.authFailures, 3, 'a throttled attempt is not a verified failure');
      // bob's right password was never verified: it waits for the source's bucket too.
      assertErrorReply(await request(port, authHead('bob', 'b0b:with:colons')), 429);
      // alice's is cached as a success: no verification needed, so she is let through.
      assertErrorReply(await request(port, authHead('alice', 'correct horse')), 403);
      // No credentials is still the 407 challenge.
      assert407(await request(port, 'CONNECT 127.0.0.1:22 HTTP/1.1\r\n\r\n'));
      m = lm(proxy);
      assert.strictEqual(m.authVerifications, 4);
      assert.strictEqual(m.authThrottled, 2);
      assert.strictEqual(m.authCacheHits, 1);
      assert.match(proxy.metricsText(), /^# HELP legato_auth_throttled_total .*failureLimit/m);
      await waitFor(() => access.length === 8);
      assert.deepStrictEqual(access.filter((a) => a.status === 429).map((a) => a.closeReason), ['refused:auth', 'refused:auth']);
    });

    it('the bucket refills at perMinute; another source has its own', async function () {
      this.timeout(20000);
      const T = 2000; // ms: one back every 2 s (wide margins for slow builds)
      const proxy = await startConnectProxy({ auth: withLimit({ perMinute: 60000 / T, burst: 2 }) }, {}, { workerThreads: 1 });
      const port = portOf(proxy);
      for (let i = 0; i < 2; i++) assert407(await request(port, authHead('alice', 'nope')));
      const t0 = Date.now();
      assertErrorReply(await request(port, authHead('alice', 'nope')), 429);
      // Another address on loopback is another source: a full bucket.
      assert407(await request(port, authHead('alice', 'nope'), { localAddress: '127.0.0.2' }));
      assertErrorReply(await request(port, authHead('bob', 'b0b:with:colons')), 429);
      await sleep(Math.max(0, T + 100 - (Date.now() - t0)));
      // One failure came back: verified (a right password now goes through)...
      assertErrorReply(await request(port, authHead('bob', 'b0b:with:colons')), 403);
      assert407(await request(port, authHead('alice', 'nope')));
      // ...and that failure used it up again.
      assertErrorReply(await request(port, authHead('alice', 'nope')), 429);
      const m = lm(proxy);
      assert.strictEqual(m.authThrottled, 3);
      assert.strictEqual(m.authFailures, 4);
      assert.strictEqual(m.authVerifications, 5);
    });

    it('guesses sent at once are verified only up to the burst (a verification takes its token when it starts)', async () => {
      const proxy = await startConnectProxy({ auth: withLimit({ perMinute: 1, burst: 3 }) }, {}, { workerThreads: 2 });
      const port = portOf(proxy);
      const pool = holdPool(); // every verification that starts stays in flight until released
      const replies = Array.from({ length: 12 }, (_, i) => request(port, authHead('alice', `at-once${i}`)));
      await waitFor(() => proxy.metrics().authVerifications + proxy.metrics().authThrottled === 12, 10000);
      await pool.release();
      const statuses = (await Promise.all(replies)).map((r) => r.status).sort();
      assert.deepStrictEqual(statuses, [407, 407, 407, ...Array(9).fill(429)]);
      assert.strictEqual(proxy.metrics().authVerifications, 3);
    });

    it('the limit holds across workers (one table for the listener)', async () => {
      const proxy = await startConnectProxy({ auth: withLimit({ perMinute: 1, burst: 3 }) }, {}, { workerThreads: 2 });
      const port = portOf(proxy);
      const statuses = [];
      for (let i = 0; i < 12; i++) statuses.push((await request(port, authHead('alice', `bad${i}`))).status);
      assert.deepStrictEqual(statuses, [407, 407, 407, ...Array(9).fill(429)]);
      const m = proxy.metrics();
      assert.strictEqual(m.authVerifications, 3);
      assert.strictEqual(m.authThrottled, 9);
    });

    it('the default is 10 at once, 10 a minute; null turns the limit off', async () => {
      const dflt = await startConnectProxy({ auth: authOf() }, {}, { workerThreads: 1 });
      const off = await startConnectProxy({ auth: withLimit(null) }, {}, { workerThreads: 1 });
      for (const [proxy, want] of [[dflt, [...Array(10).fill(407), 429, 429]], [off, Array(12).fill(407)]]) {
        const statuses = [];
        for (let i = 0; i < 12; i++) statuses.push((await request(portOf(proxy), authHead('alice', `bad${i}`))).status);
        assert.deepStrictEqual(statuses, want);
      }
      assert.strictEqual(lm(off).authVerifications, 12);
      assert.strictEqual(lm(off).authThrottled, 0);
    });
  });

  describe('configuration', () => {
    const cfg = (auth, extra = {}) => ({ listeners: [{ kind: 'connect', port: 0, ...extra, connect: { auth } }] });
    const hash = scryptHash('x');
    const CASES = [
      [{ users: [] }, RangeError, 'listeners[0].connect.auth.users must not be empty'],
      [{}, TypeError, 'listeners[0].connect.auth.users is required'],
      [{ users: [{ name: 'a', hash }], extra: 1 }, TypeError, "listeners[0].connect.auth: unknown option 'extra'"],
      [{ users: [{ name: 'a', hash: 'plain' }] }, RangeError, "listeners[0].connect.auth.users[0].hash is not a $scrypt$ hash: it does not start with '$scrypt$'"],
      [{ users: [{ name: 'a', hash }, { name: 'b', hash }, { name: 'c', hash: hash.replace('ln=4', 'ln=24').replace('r=8', 'r=1') }] }, RangeError, 'listeners[0].connect.auth.users[2].hash is not a $scrypt$ hash: 128 * r * 2^ln exceeds 1 GiB'],
      [{ users: [{ name: 'a', hash: `${hash}=` }] }, RangeError, 'listeners[0].connect.auth.users[0].hash is not a $scrypt$ hash: hash is not unpadded base64'],
      [{ users: [{ name: 'a', hash: 7 }] }, TypeError, 'listeners[0].connect.auth.users[0].hash must be a string'],
      [{ users: [{ name: 'a:b', hash }] }, RangeError, 'listeners[0].connect.auth.users[0].name must be 1-255 bytes without'],
      [{ users: [{ name: '', hash }] }, RangeError, 'listeners[0].connect.auth.users[0].name must be 1-255 bytes'],
      [{ users: [{ name: 'é'.repeat(128), hash }] }, RangeError, 'listeners[0].connect.auth.users[0].name must be 1-255 bytes'],
      [{ users: [{ name: 'a', hash }, { name: 'a', hash }] }, RangeError, "listeners[0].connect.auth.users[1].name 'a' duplicates listeners[0].connect.auth.users[0]"],
      [{ realm: 'a"b', users: [{ name: 'a', hash }] }, RangeError, 'listeners[0].connect.auth.realm must be 1-128 printable ASCII'],
      [{ realm: 'r'.repeat(129), users: [{ name: 'a', hash }] }, RangeError, 'listeners[0].connect.auth.realm must be 1-128'],
      [{ realm: 5, users: [{ name: 'a', hash }] }, TypeError, 'listeners[0].connect.auth.realm must be a string'],
      ['yes', TypeError, 'listeners[0].connect.auth must be an object'],
      [{ users: [{ name: 'a', hash }], failureLimit: {} }, TypeError, 'listeners[0].connect.auth.failureLimit.perMinute is required'],
      [{ users: [{ name: 'a', hash }], failureLimit: { perMinute: 0 } }, RangeError, 'listeners[0].connect.auth.failureLimit.perMinute must be an integer 1-60000'],
      [{ users: [{ name: 'a', hash }], failureLimit: { perMinute: 60001 } }, RangeError, 'listeners[0].connect.auth.failureLimit.perMinute must be an integer 1-60000'],
      [{ users: [{ name: 'a', hash }], failureLimit: { perMinute: 1.5 } }, RangeError, 'listeners[0].connect.auth.failureLimit.perMinute must be an integer 1-60000'],
      [{ users: [{ name: 'a', hash }], failureLimit: { perMinute: '10' } }, TypeError, 'listeners[0].connect.auth.failureLimit.perMinute must be an integer 1-60000'],
      [{ users: [{ name: 'a', hash }], failureLimit: { perMinute: 10, burst: 0 } }, RangeError, 'listeners[0].connect.auth.failureLimit.burst must be an integer 1-1000'],
      [{ users: [{ name: 'a', hash }], failureLimit: { perMinute: 10, burst: 1001 } }, RangeError, 'listeners[0].connect.auth.failureLimit.burst must be an integer 1-1000'],
      [{ users: [{ name: 'a', hash }], failureLimit: { perMinute: 10, window: 5 } }, TypeError, "listeners[0].connect.auth.failureLimit: unknown option 'window'"],
      [{ users: [{ name: 'a', hash }], failureLimit: 10 }, TypeError, 'listeners[0].connect.auth.failureLimit must be an object'],
    ];
    for (const [auth, type, message] of CASES) {
      it(`refuses ${JSON.stringify(auth).slice(0, 80)}`, () => {
        assert.throws(() => new Proxy(cfg(auth)), (e) => e instanceof type && e.code === 'ERR_LEGATO_CONFIG' && e.message.startsWith(message), message);
      });
    }

    it('accepts the limits: a 255-byte name, a 128-byte realm, a 1 GiB hash (not verified here)', () => {
      const big = `$scrypt$ln=23,r=1,p=1$${b64(Buffer.alloc(16))}$${b64(Buffer.alloc(32))}`;
      assert.doesNotThrow(() => new Proxy(cfg({ realm: 'r'.repeat(128), users: [{ name: 'n'.repeat(255), hash: big }] })));
    });

    it('auth on a tls listener is refused (connect is for connect listeners)', () => {
      assert.throws(() => new Proxy({ listeners: [{ kind: 'tls', port: 0, connect: { auth: { users: [{ name: 'a', hash }] } } }], routes: [{ sni: '', upstreams: [{ kind: 'tcp', host: '127.0.0.1', port: 1 }] }] }),
        /listeners\[0\]\.connect is only for kind 'connect' listeners/);
    });

    it('updateConfig cannot change the users while running', async () => {
      const proxy = await startConnectProxy({ auth: authOf() }, {}, { workerThreads: 1 });
      assert.throws(() => proxy.updateConfig({ listeners: [{ kind: 'connect', port: 0, connect: { auth: { users: [{ name: 'eve', hash }] } } }] }),
        (e) => e.code === 'ERR_LEGATO_CONFIG' && /listeners\[0\]\.connect\.auth cannot be changed by updateConfig \(users are fixed/.test(e.message));
      assert407(await request(portOf(proxy), 'CONNECT 127.0.0.1:22 HTTP/1.1\r\n\r\n'));
    });

    it('JS and the engine share one hash parser (binding.parseScryptHash)', () => {
      const binding = require('../lib/binding');
      assert.strictEqual(binding.parseScryptHash(hash), null);
      assert.strictEqual(binding.parseScryptHash('$scrypt$ln=4,r=8,p=1$AAAA$AAAA'), 'salt must be 8-64 bytes');
      assert.strictEqual(binding.parseScryptHash(42), 'it is not a string');
    });

    it('a hash from Node with every cost parameter and key length is verified by the engine', async () => {
      const users = [
        { name: 'n1', password: 'pw1', cost: { ln: 1, r: 1, p: 1, keyLen: 16, salt: crypto.randomBytes(8) } },
        { name: 'n2', password: 'pw2', cost: { ln: 5, r: 3, p: 2, keyLen: 64, salt: crypto.randomBytes(64) } },
      ];
      const proxy = await startConnectProxy({ auth: { users: users.map((u) => ({ name: u.name, hash: scryptHash(u.password, u.cost) })) } }, {}, { workerThreads: 1 });
      for (const u of users) {
        assertErrorReply(await request(portOf(proxy), `CONNECT 127.0.0.1:22 HTTP/1.1\r\nProxy-Authorization: ${basic(u.name, u.password)}\r\n\r\n`), 403);
        assert407(await request(portOf(proxy), `CONNECT 127.0.0.1:22 HTTP/1.1\r\nProxy-Authorization: ${basic(u.name, `${u.password}x`)}\r\n\r\n`));
      }
    });

    it('metrics text has the counters with help', async () => {
      const proxy = await startConnectProxy({ auth: authOf() }, {}, { workerThreads: 1 });
      await request(portOf(proxy), 'CONNECT 127.0.0.1:22 HTTP/1.1\r\n\r\n');
      const text = proxy.metricsText();
      assert.match(text, /# HELP legato_auth_verifications_total Proxy credentials verified/);
      assert.match(text, /# HELP legato_refused_auth_busy_total /);
      assert.match(text, /legato_auth_failures_total 0/);
    });
  });
});

module.exports = { scryptHash, parseReply };
