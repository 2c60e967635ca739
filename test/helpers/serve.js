'use strict';
// Helpers for the tests of `legato serve`, the admin endpoint and the packaging: config files in
// temp directories, a spawned `legato serve` with its bound ports, HTTP requests to the admin
// endpoint, plain-HTTP origins, and checks of the Prometheus text (promtool plus a strict parse).

const assert = require('assert');
const fs = require('fs');
const http = require('http');
const os = require('os');
const path = require('path');
const { once } = require('events');
const { spawnCli } = require('./connect');
const { getCerts } = require('./certs');
const { run } = require('./clients');
const { track, trackDir } = require('./resources');
const { waitFor } = require('./wait');

const LISTEN_LINE = /^(?:\S+ )?legato: listening on \[?([^\]\s]+?)\]?:(\d+) \((tls|connect|forward proxy)/gm;
const ADMIN_LINE = /^(?:\S+ )?legato: admin endpoint on (?:http:\/\/\[?([^\]\s]+?)\]?:(\d+)|unix:(\S+)) /m;

/** A temporary directory removed at cleanup. */
function tempDir(prefix = 'legato-serve-') {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), prefix));
  trackDir(dir);
  return dir;
}

/** Write `content` (a string, or an object as JSON) to dir/rel, creating directories. */
function writeFile(dir, rel, content) {
  const file = path.join(dir, rel);
  fs.mkdirSync(path.dirname(file), { recursive: true });
  fs.writeFileSync(file, typeof content === 'string' || Buffer.isBuffer(content) ? content : `${JSON.stringify(content, null, 2)}\n`);
  return file;
}

/** Replace a file the way editors and Kubernetes do: write a temporary file, then rename it. */
function replaceFile(file, content) {
  const tmp = path.join(path.dirname(file), `.${path.basename(file)}.tmp${process.hrtime.bigint()}`);
  fs.writeFileSync(tmp, typeof content === 'string' || Buffer.isBuffer(content) ? content : `${JSON.stringify(content, null, 2)}\n`);
  fs.renameSync(tmp, file);
}

/**
 * The test PKI's files copied into dir/certs: { a: { chain, key }, b: …, def: …, ca } as paths
 * relative to dir (a.test, *.b.test, default.test, the root CA).
 */
function copyCerts(dir) {
  const c = getCerts();
  const out = { ca: 'certs/ca.pem' };
  writeFile(dir, 'certs/ca.pem', c.ca);
  for (const [name, cn] of [['a', 'a.test'], ['b', '*.b.test'], ['def', 'default.test']]) {
    writeFile(dir, `certs/${name}.pem`, c.leaves[cn].chain);
    writeFile(dir, `certs/${name}.key`, c.leaves[cn].key);
    out[name] = { chain: `certs/${name}.pem`, key: `certs/${name}.key` };
  }
  return out;
}

/**
 * Spawn `legato serve <args>` and wait until `listeners` listening lines (and the admin line,
 * when `admin` is true) are printed. Resolves with the spawnCli handle plus `ports` (listener
 * order) and `admin` ({ host, port } or { path }).
 */
async function startServe(args, { listeners = 1, admin = false, env = {}, logFile = null } = {}) {
  const h = spawnCli(['serve', ...args], { env });
  const text = () => (logFile ? readIf(logFile) : h.stderr());
  await waitFor(() => (text().match(LISTEN_LINE) || []).length >= listeners && (!admin || ADMIN_LINE.test(text())) || h.child.exitCode !== null,
    15000, { message: 'legato serve did not start', describe: () => text() });
  if (h.child.exitCode !== null) throw new Error(`legato serve exited ${h.child.exitCode}: ${h.stderr()}`);
  const ports = [...text().matchAll(LISTEN_LINE)].map((m) => Number(m[2]));
  let adminAddr = null;
  const m = ADMIN_LINE.exec(text());
  if (m) adminAddr = m[3] ? { path: m[3] } : { host: m[1], port: Number(m[2]) };
  return { ...h, ports, admin: adminAddr };
}

function readIf(file) {
  try { return fs.readFileSync(file, 'utf8'); } catch (_) { return ''; }
}

/**
 * An HTTP request; resolves with { status, headers, body }.
 * @param {{ port?: number, host?: string, socketPath?: string }} where
 */
function httpRequest(where, urlPath, { method = 'GET' } = {}) {
  return new Promise((resolve, reject) => {
    const req = http.request({ host: where.host || '127.0.0.1', port: where.port, socketPath: where.path || where.socketPath, path: urlPath, method, agent: false }, (res) => {
      const chunks = [];
      res.on('data', (c) => chunks.push(c));
      res.on('end', () => resolve({ status: res.statusCode, headers: res.headers, body: Buffer.concat(chunks).toString() }));
    });
    req.setTimeout(10000, () => req.destroy(new Error(`${method} ${urlPath}: no answer within 10 s`)));
    req.on('error', reject);
    req.end();
  });
}

/** `curl -sS -i` against the admin endpoint: { status, headers (lower-case), body }. */
async function curlAdmin(where, urlPath, extra = []) {
  const target = where.path ? ['--unix-socket', where.path, `http://localhost${urlPath}`] : [`http://${where.host.includes(':') ? `[${where.host}]` : where.host}:${where.port}${urlPath}`];
  const r = await run('curl', ['-sS', '-i', '--max-time', '10', ...extra, ...target], { encoding: 'utf8' });
  assert.strictEqual(r.code, 0, `curl ${urlPath}: ${r.stderr}`);
  const split = r.stdout.indexOf('\r\n\r\n');
  const head = r.stdout.slice(0, split).split('\r\n');
  const headers = {};
  for (const line of head.slice(1)) {
    const i = line.indexOf(':');
    headers[line.slice(0, i).toLowerCase()] = line.slice(i + 1).trim();
  }
  return { status: Number(head[0].split(' ')[1]), headers, body: r.stdout.slice(split + 4) };
}

/** A plain HTTP origin answering "origin=<name>\n"; tracked. */
async function startHttpOrigin(name) {
  const sockets = new Set();
  const server = http.createServer((req, res) => {
    req.resume();
    req.on('end', () => {
      const body = `origin=${name}\n`;
      res.writeHead(200, { 'content-type': 'text/plain', 'content-length': Buffer.byteLength(body) });
      res.end(body);
    });
  });
  server.on('connection', (s) => { sockets.add(s); s.on('close', () => sockets.delete(s)); });
  server.listen(0, '127.0.0.1');
  await once(server, 'listening');
  const origin = {
    name,
    port: server.address().port,
    close: () => new Promise((resolve) => {
      server.close(() => resolve());
      for (const s of sockets) s.destroy();
    }),
  };
  track(origin, (o) => o.close(), 3);
  return origin;
}

/** Whether promtool (apt: prometheus) is installed. */
function havePromtool() {
  return require('child_process').spawnSync('sh', ['-c', 'command -v promtool'], { stdio: 'ignore' }).status === 0;
}

/**
 * Skip the test (mocha `this`) when promtool is missing, except in CI (CI=true), where
 * .ci/run installs it and its absence is a failure.
 */
function requirePromtool(ctx) {
  if (havePromtool()) return;
  if (process.env.CI) throw new Error('promtool is missing (apt-get install -y prometheus)');
  // eslint-disable-next-line no-console
  console.log('      (skipped: promtool not installed; apt-get install -y prometheus)');
  ctx.skip();
}

/** `promtool check metrics` on `text`: asserts it passes (lint included). */
async function promtoolCheck(text) {
  const r = await run('promtool', ['check', 'metrics'], { input: text, encoding: 'utf8' });
  assert.strictEqual(r.code, 0, `promtool check metrics failed:\n${r.stdout}${r.stderr}\n--- input ---\n${text}`);
  assert.strictEqual(`${r.stdout}${r.stderr}`.trim(), '', `promtool has remarks:\n${r.stdout}${r.stderr}`);
}

/**
 * A strict reading of the text format 0.0.4, for what promtool lets through: every family has
 * exactly one HELP and one TYPE line before its samples, its samples are contiguous, no series
 * appears twice, counters end in _total, label values are correctly escaped. Returns
 * Map<name, { type, help, samples: [{ labels: Record<string,string>, value: number }] }>.
 */
function parseExposition(text) {
  assert(text.endsWith('\n'), 'ends with a line feed');
  const families = new Map();
  let current = null;
  const series = new Set();
  for (const line of text.slice(0, -1).split('\n')) {
    let m = /^# (HELP|TYPE) ([a-zA-Z_:][a-zA-Z0-9_:]*) (.*)$/.exec(line);
    if (m) {
      const [, kind, name, rest] = m;
      let f = families.get(name);
      if (!f) {
        f = { type: null, help: null, samples: [] };
        families.set(name, f);
      }
      assert(f.samples.length === 0, `${kind} of ${name} after its samples`);
      if (kind === 'HELP') { assert.strictEqual(f.help, null, `second HELP for ${name}`); f.help = rest; } else { assert.strictEqual(f.type, null, `second TYPE for ${name}`); f.type = rest; }
      current = name;
      continue;
    }
    m = /^([a-zA-Z_:][a-zA-Z0-9_:]*)(?:\{(.*)\})? (\S+)$/.exec(line);
    assert(m, `not a sample line: ${JSON.stringify(line)}`);
    const [, name, labelText, value] = m;
    assert.strictEqual(name, current, `sample of ${name} is not right after its HELP/TYPE (samples of a family must be contiguous)`);
    const labels = {};
    if (labelText) {
      const re = /([a-zA-Z_][a-zA-Z0-9_]*)="((?:[^"\\\n]|\\\\|\\"|\\n)*)"(,|$)/y;
      let pos = 0;
      while (pos < labelText.length) {
        re.lastIndex = pos;
        const lm = re.exec(labelText);
        assert(lm, `bad labels in ${JSON.stringify(line)}`);
        labels[lm[1]] = lm[2].replace(/\\(\\|"|n)/g, (_, c) => (c === 'n' ? '\n' : c));
        pos = re.lastIndex;
      }
    }
    const id = `${name}${JSON.stringify(labels)}`;
    assert(!series.has(id), `series twice: ${line}`);
    series.add(id);
    const f = families.get(name);
    assert(f.type && f.help !== null, `${name} has no HELP/TYPE`);
    if (f.type === 'counter') assert(name.endsWith('_total'), `counter ${name} does not end in _total`);
    f.samples.push({ labels, value: Number(value) });
  }
  return families;
}

/** The value of one series from parseExposition()'s map (undefined when absent). */
function sample(families, name, labels = {}) {
  const f = families.get(name);
  if (!f) return undefined;
  const s = f.samples.find((x) => Object.keys(labels).every((k) => x.labels[k] === labels[k]) && Object.keys(x.labels).length >= Object.keys(labels).length);
  return s ? s.value : undefined;
}

module.exports = {
  tempDir, writeFile, replaceFile, copyCerts, startServe, httpRequest, curlAdmin, startHttpOrigin,
  havePromtool, requirePromtool, promtoolCheck, parseExposition, sample, LISTEN_LINE, ADMIN_LINE,
};
