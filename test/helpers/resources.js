'use strict';
// A registry of everything a test opens — proxies, sockets, servers, child processes, temp
// directories — so one `afterEach(cleanup)` closes it all, even when the test failed half-way.
// Leaving nothing open is what lets mocha exit on its own (no --exit).

const fs = require('fs');

const tracked = new Set();

/**
 * Register a resource with its closer. Returns the resource, for chaining:
 *   const s = track(net.connect(...), (s) => s.destroy());
 * @template T
 * @param {T} resource
 * @param {(r: T) => (void|Promise<void>)} close
 * @param {number} [order] lower closes first (children 0, sockets 1, proxies 2, servers 3, dirs 4)
 * @returns {T}
 */
function track(resource, close, order = 1) {
  tracked.add({ resource, close, order });
  return resource;
}

/** Track a client socket: destroyed at cleanup. */
function trackSocket(socket) {
  // An error on a socket a test no longer watches (e.g. ECONNRESET after the proxy closed it)
  // must not become an uncaught exception.
  socket.on('error', () => {});
  return track(socket, (s) => s.destroy(), 1);
}

/** Track a temporary directory: removed at cleanup. */
function trackDir(dir) {
  return track(dir, (d) => fs.rmSync(d, { recursive: true, force: true }), 4);
}

function withTimeout(promise, ms, what) {
  let timer;
  return Promise.race([
    Promise.resolve(promise).finally(() => clearTimeout(timer)),
    new Promise((_, reject) => {
      timer = setTimeout(() => reject(new Error(`cleanup: ${what} did not finish within ${ms} ms`)), ms);
    }),
  ]);
}

/**
 * Close everything registered since the last cleanup, in order. Every closer runs even if some
 * fail; the first failure is rethrown afterwards so a leak or a hang is reported.
 */
async function cleanup() {
  const items = [...tracked].sort((a, b) => a.order - b.order);
  tracked.clear();
  let firstError = null;
  for (const order of [...new Set(items.map((i) => i.order))]) {
    const batch = items.filter((i) => i.order === order);
    const results = await Promise.allSettled(batch.map((i) =>
      withTimeout((async () => i.close(i.resource))(), 10000, `closing ${describe(i.resource)}`)));
    for (const r of results) if (r.status === 'rejected' && !firstError) firstError = r.reason;
  }
  if (firstError) throw firstError;
}

function describe(r) {
  if (typeof r === 'string') return r;
  return (r && r.constructor && r.constructor.name) || typeof r;
}

module.exports = { track, trackSocket, trackDir, cleanup };
