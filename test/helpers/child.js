'use strict';
// Running a proxy in a child process (test/fixtures/proxy-child.js) and talking to it over IPC.
// The child is tracked: cleanup() kills it if the test did not stop it.

const { spawn } = require('child_process');
const path = require('path');
const { track } = require('./resources');
const { makeConfig } = require('./proxy');

const FIXTURES = path.join(__dirname, '..', 'fixtures');

/**
 * Spawn a child running `script` (in test/fixtures) with `args`; `ulimitN` runs it as
 * `bash -c 'ulimit -n N; exec node script'` (soft and hard). Resolves once spawned.
 * Returns { child, messages, stdout(), stderr(), exited: Promise<{ code, signal }>, waitMessage(pred, ms) }.
 */
function spawnFixture(script, args = [], { ulimitN, timeoutMs = 60000, env } = {}) {
  const file = path.join(FIXTURES, script);
  const stdio = ['ignore', 'pipe', 'pipe', 'ipc'];
  const child = ulimitN
    ? spawn('bash', ['-c', `ulimit -n ${Number(ulimitN)} && exec "$0" "$@"`, process.execPath, file, ...args], { stdio, env: env || process.env })
    : spawn(process.execPath, [file, ...args], { stdio, env: env || process.env });
  const out = [];
  const err = [];
  child.stdout.on('data', (c) => out.push(c));
  child.stderr.on('data', (c) => err.push(c));
  const messages = [];
  const waiters = [];
  child.on('message', (m) => {
    messages.push(m);
    for (const w of [...waiters]) {
      if (w.pred(m)) { waiters.splice(waiters.indexOf(w), 1); w.resolve(m); }
    }
  });
  const exited = new Promise((resolve) => child.once('exit', (code, signal) => resolve({ code, signal })));
  const killer = setTimeout(() => child.kill('SIGKILL'), timeoutMs);
  exited.then(() => {
    clearTimeout(killer);
    for (const w of waiters.splice(0)) w.reject(new Error(`child exited while waiting for a message; stderr: ${Buffer.concat(err)}`));
  });
  const handle = {
    child,
    messages,
    exited,
    stdout: () => Buffer.concat(out).toString(),
    stderr: () => Buffer.concat(err).toString(),
    /** Resolve with the first message (already received or future) matching `pred`. */
    waitMessage(pred, ms = 10000) {
      const seen = messages.find(pred);
      if (seen) return Promise.resolve(seen);
      return new Promise((resolve, reject) => {
        const timer = setTimeout(() => {
          const i = waiters.indexOf(w);
          if (i >= 0) { waiters.splice(i, 1); reject(new Error(`no matching message from the child within ${ms} ms; stderr: ${handle.stderr()}`)); }
        }, ms);
        const w = {
          pred,
          resolve: (m) => { clearTimeout(timer); resolve(m); },
          reject: (e) => { clearTimeout(timer); reject(e); },
        };
        waiters.push(w);
      });
    },
  };
  track(child, async (c) => {
    clearTimeout(killer);
    if (c.exitCode === null && c.signalCode === null) c.kill('SIGKILL');
    await exited;
  }, 0);
  return handle;
}

let nextId = 1;

/**
 * Start a proxy in a child process. `opts` as for helpers/proxy startProxy (makeConfig).
 * Resolves with { ...handle, addresses, port, call(cmd, extra) } once the proxy started;
 * rejects with the start error (err.code kept) otherwise.
 */
async function startChildProxy(opts, spawnOpts = {}) {
  const h = spawnFixture('proxy-child.js', [JSON.stringify(makeConfig(opts))], spawnOpts);
  const first = await h.waitMessage((m) => m.type === 'started' || m.type === 'startError', 20000);
  if (first.type === 'startError') {
    const e = new Error(first.message);
    e.code = first.code;
    throw e;
  }
  return {
    ...h,
    addresses: first.addresses,
    port: first.addresses[0].port,
    /** Send a command and resolve with its reply value. */
    async call(cmd, extra = {}) {
      const id = nextId++;
      h.child.send({ id, cmd, ...extra });
      const r = await h.waitMessage((m) => m.type === 'reply' && m.id === id, 20000);
      return r.value;
    },
  };
}

module.exports = { spawnFixture, startChildProxy, FIXTURES };
