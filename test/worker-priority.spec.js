'use strict';
// workerPriority: how the OS schedules the worker threads (README, "Worker priority"). What is
// checked is the threads' scheduling policy as the kernel reports it (/proc/<pid>/task/<tid>/stat),
// with traffic going through the real-time workers, and the refusal when the process may not use
// real-time priority (a child run with CAP_SYS_NICE taken away by setpriv). No timing is asserted:
// the latency this buys is measured by the benchmark (bench/README.md, S6 ping).

const assert = require('assert');
const path = require('path');
const { spawn } = require('child_process');
const { startEchoServer } = require('./helpers/servers');
const { startConnectProxy, openTunnel } = require('./helpers/connect');
const { cleanup } = require('./helpers/proxy');
const { SCHED_FIFO, threads, UNPRIVILEGED, mayUseRealtime } = require('./helpers/sched');

const ROOT = path.join(__dirname, '..');

const realtimeThreads = () => threads().filter((t) => t.policy === SCHED_FIFO);

/** A tunnel through the proxy to the echo server carries `bytes` both ways, byte-exact. */
async function echoThrough(proxyPort, echoPort, bytes) {
  const { socket, status } = await openTunnel(proxyPort, `127.0.0.1:${echoPort}`);
  assert.strictEqual(status, 200);
  const got = await new Promise((resolve, reject) => {
    const parts = [];
    let n = 0;
    socket.on('data', (d) => {
      parts.push(d);
      n += d.length;
      if (n >= bytes.length) resolve(Buffer.concat(parts));
    });
    socket.once('error', reject);
    socket.write(bytes);
  });
  socket.destroy();
  assert.ok(got.equals(bytes), 'the echo came back byte-exact');
}

describe('workerPriority', function () {
  this.timeout(30000);
  afterEach(cleanup);

  it("'realtime' runs every worker thread SCHED_FIFO at priority 1 (and only them), relaying as before", async function () {
    if (!mayUseRealtime()) this.skip(); // not root, no CAP_SYS_NICE, RLIMIT_RTPRIO 0
    assert.deepStrictEqual(realtimeThreads(), [], 'no real-time thread before the proxy starts');
    const echo = await startEchoServer();
    const proxy = await startConnectProxy({ allowPorts: [echo.port], denyCidrs: [] }, {}, { workerThreads: 3, workerPriority: 'realtime' });
    const rt = realtimeThreads();
    assert.strictEqual(rt.length, 3, `one real-time thread per worker: ${JSON.stringify(rt)}`);
    for (const t of rt) assert.strictEqual(t.rtprio, 1, `thread ${t.tid}: priority ${t.rtprio}`);
    // The JS thread (tid = pid) and everything else keep the ordinary policy.
    assert.ok(!rt.some((t) => t.tid === process.pid), 'the Node thread stays ordinary');
    const payload = Buffer.alloc(256 * 1024, 0x5a);
    for (let i = 0; i < 3; i++) await echoThrough(proxy.addresses()[0].port, echo.port, payload);
    await proxy.stop();
    assert.deepStrictEqual(realtimeThreads(), [], 'the workers are gone after stop()');
  });

  it("'normal' (the default) leaves the worker threads ordinary", async function () {
    const before = threads().length;
    const proxy = await startConnectProxy({}, {}, { workerThreads: 2 });
    assert.ok(threads().length >= before + 2, 'the workers are running');
    assert.deepStrictEqual(realtimeThreads(), []);
    await proxy.stop();
  });

  it("start() rejects 'realtime' with EPERM when the process may not use it, and leaves nothing listening", async function () {
    // A child without the right to real-time priority (helpers/sched UNPRIVILEGED).
    if (mayUseRealtime(UNPRIVILEGED)) this.skip(); // this user has RLIMIT_RTPRIO >= 1: nothing to refuse
    const script = `
      const net = require('net');
      const { Proxy } = require(${JSON.stringify(ROOT)});
      (async () => {
        const probe = net.createServer().listen(0, '127.0.0.1');
        await new Promise((r) => probe.once('listening', r));
        const port = probe.address().port;
        await new Promise((r) => probe.close(r));
        const config = (extra) => ({ workerThreads: 2, ...extra, listeners: [{ kind: 'connect', host: '127.0.0.1', port }] });
        const out = { port };
        try {
          await new Proxy(config({ workerPriority: 'realtime' })).start();
          out.started = true;
        } catch (e) {
          out.error = { code: e.code, syscall: e.syscall, message: e.message };
        }
        // The same port at once, with ordinary workers: the failed start left nothing bound.
        const p = new Proxy(config({}));
        await p.start();
        out.afterPort = p.addresses()[0].port;
        await p.stop();
        process.stdout.write(JSON.stringify(out));
      })().catch((e) => { process.stderr.write(String(e && e.stack)); process.exit(1); });`;
    const argv = [...UNPRIVILEGED, process.execPath, '-e', script];
    const child = spawn(argv[0], argv.slice(1), { stdio: ['ignore', 'pipe', 'pipe'] });
    let stdout = '';
    let stderr = '';
    child.stdout.on('data', (d) => { stdout += d; });
    child.stderr.on('data', (d) => { stderr += d; });
    const code = await new Promise((resolve) => child.once('exit', resolve));
    assert.strictEqual(code, 0, stderr);
    const out = JSON.parse(stdout);
    assert.ok(!out.started, 'the real-time start was refused');
    assert.strictEqual(out.error.code, 'EPERM');
    assert.strictEqual(out.error.syscall, 'pthread_setschedparam');
    assert.match(out.error.message, /^workerPriority 'realtime': the worker threads could not be made real-time \(pthread_setschedparam SCHED_FIFO: EPERM operation not permitted\); the process needs CAP_SYS_NICE or an RLIMIT_RTPRIO of at least 1/);
    assert.strictEqual(out.afterPort, out.port);
  });
});
