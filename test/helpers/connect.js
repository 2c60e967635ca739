'use strict';
// Helpers for the forward proxy (`kind: 'connect'` listeners) and the `legato` CLI:
//
//   startConnectProxy(connect, listener, top)  a tracked proxy with one connect listener
//   request(port, bytes)                       raw bytes in, the whole reply out (until close)
//   openTunnel(port, target, opts)             CONNECT and wait for the reply head
//   closedPort()                               a loopback port nothing listens on
//   spawnCli(args, opts)                       bin/legato as a tracked child, with line waiting
//   startNamespacedProxy(hosts, config)        a proxy in a child process that sees its own
//                                              /etc/hosts (private mount namespace; root only)
//
// Everything is tracked (helpers/resources): `cleanup()` in afterEach closes it all.

const { spawn } = require('child_process');
const crypto = require('crypto');
const fs = require('fs');
const net = require('net');
const os = require('os');
const path = require('path');
const { startProxy, connect, track, trackSocket, trackDir } = require('./proxy');

const ROOT = path.join(__dirname, '..', '..');
const BIN = path.join(ROOT, 'bin', 'legato');
const FIXTURES = path.join(__dirname, '..', 'fixtures');

/**
 * The environment for tools that are not under test (curl, wget, unshare): ours without the
 * sanitizer runtime the ASan run preloads into node (an uninstrumented binary with libasan
 * preloaded may hang or abort).
 */
function toolEnv(extra = {}) {
  const env = { ...process.env, ...extra };
  for (const k of ['LD_PRELOAD', 'ASAN_OPTIONS', 'UBSAN_OPTIONS', 'LSAN_OPTIONS']) delete env[k];
  return env;
}

/** The exact reply the proxy sends when a tunnel is up. */
const ESTABLISHED = 'HTTP/1.1 200 Connection Established\r\n\r\n';

/** The reason phrase of each status the proxy answers with. */
const REASONS = {
  400: 'Bad Request',
  403: 'Forbidden',
  405: 'Method Not Allowed',
  408: 'Request Timeout',
  414: 'URI Too Long',
  429: 'Too Many Requests',
  431: 'Request Header Fields Too Large',
  502: 'Bad Gateway',
  503: 'Service Unavailable',
  504: 'Gateway Timeout',
  505: 'HTTP Version Not Supported',
};

/**
 * Start a tracked proxy with one connect listener on 127.0.0.1:0.
 * @param {object} [connectOpts] the listener's `connect` options
 * @param {object} [listenerOpts] other listener options (maxConnections, idleTimeoutMs, host)
 * @param {object} [top] top-level options (workerThreads, scheduler)
 */
function startConnectProxy(connectOpts = {}, listenerOpts = {}, top = {}) {
  return startProxy({ ...top, listener: { kind: 'connect', ...listenerOpts, connect: connectOpts } });
}

/** Split a reply into { statusLine, status, headers (lower-cased name → value), head, body }. */
function parseReply(buf) {
  const text = Buffer.isBuffer(buf) ? buf.toString('latin1') : buf;
  const end = text.indexOf('\r\n\r\n');
  const head = end < 0 ? text : text.slice(0, end);
  const lines = head.split('\r\n');
  const statusLine = lines[0];
  const m = /^HTTP\/1\.1 (\d{3}) /.exec(statusLine);
  const headers = {};
  for (const l of lines.slice(1)) {
    const i = l.indexOf(':');
    if (i > 0) headers[l.slice(0, i).toLowerCase()] = l.slice(i + 1).trim();
  }
  return { text, statusLine, status: m ? Number(m[1]) : 0, headers, head, body: end < 0 ? '' : text.slice(end + 4) };
}

/**
 * Connect to the proxy, write `bytes` (a string is sent as latin1; an array is written piece by
 * piece), and collect everything until the proxy closes. Resolves with parseReply()'s fields
 * plus { data, ended (a FIN arrived), error }.
 */
async function request(port, bytes, { host = '127.0.0.1', endAfterWrite = false, localAddress } = {}) {
  const socket = await connect(port, localAddress ? { host, localAddress } : { host });
  const chunks = [];
  let ended = false;
  let error = null;
  const done = new Promise((resolve) => {
    socket.on('data', (c) => chunks.push(c));
    socket.on('end', () => { ended = true; });
    socket.on('error', (e) => { error = e; });
    socket.on('close', resolve);
  });
  for (const piece of [].concat(bytes)) socket.write(typeof piece === 'string' ? Buffer.from(piece, 'latin1') : piece);
  if (endAfterWrite) socket.end();
  await done;
  const data = Buffer.concat(chunks);
  return { ...parseReply(data), data, ended, error };
}

/**
 * Send `CONNECT target HTTP/1.1` (plus `headers` lines and `after`, bytes pipelined after the
 * head in the same write) and wait for the reply head. Resolves with { socket, status, head,
 * rest } where `rest` is what followed the head in the same read; the socket stays flowing, so
 * attach 'data' listeners right after the await (before any other I/O can run).
 */
async function openTunnel(port, target, { headers = [`Host: ${target}`], after, host = '127.0.0.1', localAddress } = {}) {
  const socket = await connect(port, localAddress ? { host, localAddress } : { host });
  const head = Buffer.from(`CONNECT ${target} HTTP/1.1\r\n${headers.map((h) => `${h}\r\n`).join('')}\r\n`, 'latin1');
  return readReplyHead(socket, after ? Buffer.concat([head, after]) : head);
}

/** Write `bytes` (if given) and wait for a reply head on `socket`; see openTunnel. */
function readReplyHead(socket, bytes) {
  return new Promise((resolve, reject) => {
    let buf = Buffer.alloc(0);
    const onData = (d) => {
      buf = Buffer.concat([buf, d]);
      const end = buf.indexOf('\r\n\r\n');
      if (end < 0) return;
      socket.off('data', onData);
      socket.off('close', onClose);
      const headText = buf.subarray(0, end + 4).toString('latin1');
      resolve({ socket, status: parseReply(headText).status, head: headText, rest: buf.subarray(end + 4) });
    };
    const onClose = () => {
      socket.off('data', onData);
      reject(new Error(`closed before a reply head; got ${JSON.stringify(buf.toString('latin1'))}`));
    };
    socket.on('data', onData);
    socket.once('close', onClose);
    if (bytes !== undefined) socket.write(typeof bytes === 'string' ? Buffer.from(bytes, 'latin1') : bytes);
  });
}

/** A loopback TCP port nothing listens on (bound, then closed). */
async function closedPort() {
  // Below the ephemeral range (32768-60999 here): a connection to a port in that range can be
  // given the same port as its source and connect to itself (TCP self-connect), so a "dead"
  // upstream port from listen(0) now and then answered, with the client's own bytes.
  for (;;) {
    const want = 20000 + Math.floor(Math.random() * 12000);
    const s = net.createServer();
    const ok = await new Promise((resolve) => {
      s.once('error', () => resolve(false));
      s.listen(want, '127.0.0.1', () => resolve(true));
    });
    if (!ok) continue;
    await new Promise((resolve) => s.close(resolve));
    return want;
  }
}

const sha256 = (buf) => crypto.createHash('sha256').update(buf).digest('hex');

/**
 * Run bin/legato with `args` as a tracked child (killed at cleanup if still running).
 * `env` is merged over ours (a value of undefined removes a variable); LEGATO_* variables of the
 * test process are removed first so only the test's own apply. `direct: true` executes the file
 * itself (its shebang) instead of `node bin/legato`.
 * Returns { child, stdout(), stderr(), lines() (stderr lines), exited: Promise<{ code, signal }>,
 *   waitLine(re, ms): Promise<RegExpMatchArray> }.
 */
function spawnCli(args, { env = {}, direct = false, timeoutMs = 60000 } = {}) {
  const childEnv = { ...process.env };
  for (const k of Object.keys(childEnv)) if (k.startsWith('LEGATO_') && k !== 'LEGATO_ADDON' && k !== 'LEGATO_SANITIZED') delete childEnv[k];
  for (const [k, v] of Object.entries(env)) {
    if (v === undefined) delete childEnv[k];
    else childEnv[k] = v;
  }
  const child = direct
    ? spawn(BIN, args, { stdio: ['ignore', 'pipe', 'pipe'], env: childEnv })
    : spawn(process.execPath, [BIN, ...args], { stdio: ['ignore', 'pipe', 'pipe'], env: childEnv });
  const out = [];
  const err = [];
  const waiters = [];
  const stderrText = () => Buffer.concat(err).toString();
  const check = () => {
    for (const w of [...waiters]) {
      const m = w.re.exec(stderrText());
      if (m) { waiters.splice(waiters.indexOf(w), 1); w.resolve(m); }
    }
  };
  child.stdout.on('data', (c) => out.push(c));
  child.stderr.on('data', (c) => { err.push(c); check(); });
  const exited = new Promise((resolve) => child.once('exit', (code, signal) => resolve({ code, signal })));
  // 'close' comes after the pipes are drained: wait for it so that every line is in.
  const closed = new Promise((resolve) => child.once('close', (code, signal) => resolve({ code, signal })));
  const killer = setTimeout(() => child.kill('SIGKILL'), timeoutMs);
  closed.then(() => {
    clearTimeout(killer);
    for (const w of waiters.splice(0)) w.reject(new Error(`legato exited before printing ${w.re}; stderr:\n${stderrText()}`));
  });
  track(child, async (c) => {
    clearTimeout(killer);
    if (c.exitCode === null && c.signalCode === null) c.kill('SIGKILL');
    await closed;
  }, 0);
  return {
    child,
    exited: closed,
    stdout: () => Buffer.concat(out).toString(),
    stderr: stderrText,
    lines: () => stderrText().split('\n').filter((l) => l !== ''),
    /** Resolve with the first match of `re` in stderr (already printed or future). */
    waitLine(re, ms = 15000) {
      const m = re.exec(stderrText());
      if (m) return Promise.resolve(m);
      return new Promise((resolve, reject) => {
        const timer = setTimeout(() => {
          const i = waiters.findIndex((w) => w.re === re);
          if (i >= 0) waiters.splice(i, 1);
          reject(new Error(`legato printed no line matching ${re} within ${ms} ms; stderr:\n${stderrText()}`));
        }, ms);
        waiters.push({ re, resolve: (v) => { clearTimeout(timer); resolve(v); }, reject: (e) => { clearTimeout(timer); reject(e); } });
      });
    },
  };
}

/** The regular expression of the CLI's startup line; match[1] is the host, match[2] the port. */
const LISTENING_RE = /^(?:\S+ )?legato: listening on \[?([^\]\s]+?)\]?:(\d+) /m;

/** Spawn the CLI and wait for its startup line: resolves with { ...spawnCli(), host, port }. */
async function startCli(args, opts) {
  const h = spawnCli(args, opts);
  const m = await h.waitLine(LISTENING_RE);
  return { ...h, host: m[1], port: Number(m[2]) };
}

/** Write a temp file (in a tracked temp dir) and return its path. */
function tempFile(name, content) {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'legato-connect-'));
  trackDir(dir);
  const file = path.join(dir, name);
  fs.writeFileSync(file, content);
  return file;
}

/** Whether this process may create a mount namespace and bind-mount over /etc/hosts. */
function canUseMountNamespace() {
  return typeof process.getuid === 'function' && process.getuid() === 0;
}

/**
 * Run test/fixtures/connect-child.js in a private mount namespace where /etc/hosts is `hosts`
 * and /etc/resolv.conf names only 127.0.0.1 (`unshare --mount` + `mount --bind`): the proxy's
 * resolver (getaddrinfo) sees these names, a name missing from them never leaves loopback (the
 * machine's own nameserver may not be on loopback), and nothing outside the child is affected.
 * Needs root. The sanitizer runtime the ASan run preloads
 * is kept away from unshare/mount/bash and given back to node only.
 * `resolv` replaces the resolv.conf text. Resolves once the proxy started, with { port,
 * metrics(), updateConfig(config), tunnels, nextTunnel(), stderr(), stop(), warning(code, ms) }.
 */
async function startNamespacedProxy(hosts, config, { resolv = 'nameserver 127.0.0.1\noptions timeout:1 attempts:1\n' } = {}) {
  const hostsFile = tempFile('hosts', hosts);
  const resolvFile = tempFile('resolv.conf', resolv);
  const env = toolEnv();
  env.LEGATO_CHILD_PRELOAD = process.env.LD_PRELOAD || '';
  for (const k of ['ASAN_OPTIONS', 'UBSAN_OPTIONS']) if (process.env[k]) env[`LEGATO_CHILD_${k}`] = process.env[k];
  const script = [
    'set -e',
    'mount --bind "$0" /etc/hosts',
    'mount --bind "$1" /etc/resolv.conf',
    'shift',
    'if [ -n "$LEGATO_CHILD_PRELOAD" ]; then export LD_PRELOAD="$LEGATO_CHILD_PRELOAD"; fi',
    'if [ -n "$LEGATO_CHILD_ASAN_OPTIONS" ]; then export ASAN_OPTIONS="$LEGATO_CHILD_ASAN_OPTIONS"; fi',
    'if [ -n "$LEGATO_CHILD_UBSAN_OPTIONS" ]; then export UBSAN_OPTIONS="$LEGATO_CHILD_UBSAN_OPTIONS"; fi',
    'exec "$@"',
  ].join('\n');
  const child = spawn('unshare', ['--mount', 'bash', '-c', script, hostsFile, resolvFile, process.execPath,
    path.join(FIXTURES, 'connect-child.js'), JSON.stringify(config)], { stdio: ['ignore', 'pipe', 'pipe', 'ipc'], env });
  const err = [];
  child.stderr.on('data', (c) => err.push(c));
  child.stdout.resume();
  const stderr = () => Buffer.concat(err).toString();
  const closed = new Promise((resolve) => child.once('close', resolve));
  const killer = setTimeout(() => child.kill('SIGKILL'), 60000);
  closed.then(() => clearTimeout(killer));
  track(child, async (c) => {
    clearTimeout(killer);
    if (c.connected) c.send({ cmd: 'stop' });
    const t = setTimeout(() => c.kill('SIGKILL'), 5000);
    await closed;
    clearTimeout(t);
  }, 0);

  const messages = [];
  const waiters = [];
  child.on('message', (m) => {
    messages.push(m);
    for (const w of [...waiters]) if (w.pred(m)) { waiters.splice(waiters.indexOf(w), 1); w.resolve(m); }
  });
  closed.then(() => { for (const w of waiters.splice(0)) w.reject(new Error(`namespaced proxy exited; stderr:\n${stderr()}`)); });
  const waitMessage = (pred, ms = 15000) => {
    const seen = messages.find(pred);
    if (seen) return Promise.resolve(seen);
    return new Promise((resolve, reject) => {
      const timer = setTimeout(() => reject(new Error(`no message from the namespaced proxy within ${ms} ms; stderr:\n${stderr()}`)), ms);
      waiters.push({ pred, resolve: (m) => { clearTimeout(timer); resolve(m); }, reject: (e) => { clearTimeout(timer); reject(e); } });
    });
  };

  const started = await waitMessage((m) => m.type === 'started' || m.type === 'startError', 20000);
  if (started.type === 'startError') throw new Error(`namespaced proxy did not start: ${started.message}`);
  let nextId = 1;
  let tunnelsTaken = 0;
  return {
    port: started.port,
    hostsFile, // rewrite it to change what the proxy's lookups answer
    stderr,
    /** The proxy's metrics(), fetched over IPC. */
    async metrics() {
      const id = nextId++;
      child.send({ cmd: 'metrics', id });
      return (await waitMessage((m) => m.type === 'reply' && m.id === id)).value;
    },
    /** The proxy's updateConfig(config) over IPC; throws with its error's message. */
    async updateConfig(config) {
      const id = nextId++;
      child.send({ cmd: 'updateConfig', id, config });
      const err = (await waitMessage((m) => m.type === 'reply' && m.id === id)).value;
      if (err !== null) throw new Error(err);
    },
    /** Ask the proxy to stop({ graceMs: 0 }) (it exits once stopped). */
    stop() {
      if (child.connected) child.send({ cmd: 'stop' });
    },
    /** The first 'warning' event with this code (waits up to `ms`). */
    warning(code, ms) {
      return waitMessage((m) => m.type === 'warning' && m.code === code, ms);
    },
    /** The next 'tunnel' event not yet returned. */
    async nextTunnel() {
      const n = tunnelsTaken++;
      let seen = 0;
      return (await waitMessage((m) => m.type === 'tunnel' && seen++ === n)).tunnel;
    },
  };
}

module.exports = {
  ESTABLISHED, REASONS, BIN, ROOT, LISTENING_RE,
  startConnectProxy, parseReply, request, openTunnel, readReplyHead, closedPort, sha256,
  spawnCli, startCli, tempFile, canUseMountNamespace, startNamespacedProxy, trackSocket, toolEnv,
};
