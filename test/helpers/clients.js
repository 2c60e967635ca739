'use strict';
// Real TLS clients: Node's `tls`, and the `curl` and `openssl s_client` command-line tools run as
// child processes with a timeout (tracked, so cleanup() kills any still running).
//
// Each speaks HTTP/1.0 to the HTTPS origins of helpers/servers and returns the response body,
// which names the origin that answered ("origin=<name>\nsni=<sni>\n").

const { spawn } = require('child_process');
const tls = require('tls');
const { track, trackSocket } = require('./resources');

/**
 * The environment for external tools (curl, openssl): ours without the sanitizer runtime that
 * the ASan run of the suite preloads into node — curl and openssl are not under test, and an
 * uninstrumented binary with libasan preloaded may hang or abort.
 */
function toolEnv() {
  const env = { ...process.env };
  delete env.LD_PRELOAD;
  delete env.ASAN_OPTIONS;
  delete env.UBSAN_OPTIONS;
  delete env.LSAN_OPTIONS;
  return env;
}

/**
 * Run a command; never rejects for a non-zero exit. Resolves with { code, signal, stdout,
 * stderr, timedOut }. The child is killed after `timeoutMs`.
 */
function run(cmd, args, { input, timeoutMs = 15000, env, encoding = 'latin1' } = {}) {
  return new Promise((resolve, reject) => {
    const child = spawn(cmd, args, { stdio: ['pipe', 'pipe', 'pipe'], env: env || toolEnv() });
    let finished = false;
    track(child, (c) => {
      if (finished) return undefined;
      c.kill('SIGKILL');
      return new Promise((r) => c.once('close', r));
    }, 0);
    const out = [];
    const err = [];
    let timedOut = false;
    const timer = setTimeout(() => { timedOut = true; child.kill('SIGKILL'); }, timeoutMs);
    child.stdout.on('data', (c) => out.push(c));
    child.stderr.on('data', (c) => err.push(c));
    child.on('error', (e) => { clearTimeout(timer); finished = true; reject(e); });
    child.on('close', (code, signal) => {
      clearTimeout(timer);
      finished = true;
      resolve({
        code, signal, timedOut,
        stdout: Buffer.concat(out).toString(encoding),
        stderr: Buffer.concat(err).toString(encoding),
      });
    });
    child.stdin.on('error', () => {}); // the child may exit before reading its input
    if (input !== undefined) child.stdin.end(input);
    else child.stdin.end();
  });
}

/**
 * `curl https://NAME:PORT/` resolved to 127.0.0.1. With `caPath` the origin's certificate is
 * verified against it (curl checks the chain and the host name); otherwise `-k`.
 * @returns {Promise<{ code: number, stdout: string, stderr: string, timedOut: boolean }>}
 */
function curl(name, port, { caPath, data, timeoutMs = 15000 } = {}) {
  const args = ['-sS', '--max-time', String(Math.ceil(timeoutMs / 1000)), '--http1.1',
    '--resolve', `${name}:${port}:127.0.0.1`];
  if (caPath) args.push('--cacert', caPath);
  else args.push('-k');
  if (data !== undefined) args.push('--data-binary', '@-');
  args.push(`https://${name}:${port}/`);
  return run('curl', args, { input: data, timeoutMs: timeoutMs + 5000 });
}

/**
 * `openssl s_client -connect 127.0.0.1:PORT -servername NAME -quiet`, sending `input` (default
 * an HTTP/1.0 GET) on stdin. With `caPath` the chain and host name are verified and a failure
 * aborts the handshake (-verify_return_error); `verifyName` (default: `name`; null: none) is the
 * host name the certificate must carry. `name: null` sends no SNI (-noservername).
 */
function sClient(name, port, { caPath, verifyName = name, input = 'GET / HTTP/1.0\r\n\r\n', timeoutMs = 15000 } = {}) {
  const args = ['s_client', '-connect', `127.0.0.1:${port}`, '-quiet'];
  if (name === null) args.push('-noservername');
  else args.push('-servername', name);
  if (caPath) {
    args.push('-CAfile', caPath, '-verify_return_error');
    if (verifyName) args.push('-verify_hostname', verifyName.replace(/\.$/, ''));
  }
  return run('openssl', args, { input, timeoutMs });
}

/** Split an HTTP/1.x response into { status, headers (raw text), body }. */
function parseHttp(text) {
  const i = text.indexOf('\r\n\r\n');
  if (i < 0) return { status: 0, headers: '', body: text };
  const head = text.slice(0, i);
  const m = /^HTTP\/1\.[01] (\d{3})/.exec(head);
  return { status: m ? Number(m[1]) : 0, headers: head, body: text.slice(i + 4) };
}

/**
 * Node `tls.connect` with `servername`, an HTTP/1.0 GET, read to the end. `ca` verifies the
 * origin (rejectUnauthorized stays on); `checkServerIdentity` may replace the host-name check
 * (e.g. when the SNI sent is not a name on the origin's certificate).
 * Resolves with { status, body, authorized, peerCN, alpn }; rejects on any TLS error.
 */
function nodeTlsGet(port, servername, { ca, checkServerIdentity, body = '', timeoutMs = 10000 } = {}) {
  return new Promise((resolve, reject) => {
    const opts = { host: '127.0.0.1', port, ca, rejectUnauthorized: true };
    if (servername !== null) opts.servername = servername;
    if (checkServerIdentity) opts.checkServerIdentity = checkServerIdentity;
    const socket = trackSocket(tls.connect(opts));
    const timer = setTimeout(() => {
      socket.destroy();
      reject(new Error(`nodeTlsGet(${servername}): no complete response within ${timeoutMs} ms`));
    }, timeoutMs);
    const chunks = [];
    let info = null;
    socket.once('secureConnect', () => {
      const cert = socket.getPeerCertificate();
      info = { authorized: socket.authorized, peerCN: cert && cert.subject && cert.subject.CN };
      const payload = Buffer.from(body);
      socket.write(`POST / HTTP/1.0\r\nHost: ${servername || 'none'}\r\nContent-Length: ${payload.length}\r\n\r\n`);
      socket.write(payload);
    });
    socket.on('data', (c) => chunks.push(c));
    socket.once('error', (e) => { clearTimeout(timer); reject(e); });
    socket.once('close', () => {
      clearTimeout(timer);
      if (!info) {
        reject(new Error(`nodeTlsGet(${servername}): closed before the TLS handshake completed`));
        return;
      }
      resolve({ ...parseHttp(Buffer.concat(chunks).toString('latin1')), ...info });
    });
  });
}

module.exports = { run, curl, sClient, parseHttp, nodeTlsGet };
