'use strict';
// Polling and waiting helpers. Prefer waiting for an event or for data; poll only what has no
// event (metrics counters are updated by worker threads, so they are polled briefly).

const { once } = require('events');

/** Resolve after `ms` milliseconds (use only where no event exists to wait for). */
function sleep(ms) {
  return new Promise((resolve) => setTimeout(resolve, ms));
}

/**
 * Poll `cond` every `intervalMs` until it returns a truthy value; resolve with that value.
 * Rejects after `timeoutMs` with `message` (or a default naming the condition) and, when
 * `describe` is given, its output for the last state (e.g. the metrics seen).
 * @param {() => any} cond
 * @param {number} [timeoutMs]
 * @param {{ intervalMs?: number, message?: string, describe?: () => any }} [opts]
 */
async function waitFor(cond, timeoutMs = 5000, opts = {}) {
  const intervalMs = opts.intervalMs || 10;
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const v = await cond();
    if (v) return v;
    if (Date.now() >= deadline) {
      let detail = '';
      if (opts.describe) {
        try { detail = `; last state: ${JSON.stringify(opts.describe())}`; } catch (_) { /* ignore */ }
      }
      throw new Error(`${opts.message || `timed out after ${timeoutMs} ms waiting for ${cond}`}${detail}`);
    }
    await sleep(intervalMs);
  }
}

/**
 * Wait for `metrics()[key]` (or a listener's, with `listener: i`) to reach at least `min`.
 * Resolves with the whole metrics object.
 */
async function waitForMetric(proxy, key, min, timeoutMs = 5000, { listener } = {}) {
  let last;
  await waitFor(() => {
    last = proxy.metrics();
    const m = listener === undefined ? last : last.listeners[listener];
    return m[key] >= min;
  }, timeoutMs, { message: `metrics().${listener === undefined ? '' : `listeners[${listener}].`}${key} did not reach ${min}`, describe: () => last });
  return last;
}

/**
 * Wait for an event, rejecting after `timeoutMs` (so a missing event fails the test with a
 * message instead of hanging until mocha's timeout).
 */
async function onceWithin(emitter, event, timeoutMs = 5000) {
  const ac = new AbortController();
  const timer = setTimeout(() => ac.abort(), timeoutMs);
  try {
    return await once(emitter, event, { signal: ac.signal });
  } catch (err) {
    if (err && err.name === 'AbortError') throw new Error(`no '${event}' event within ${timeoutMs} ms`);
    throw err;
  } finally {
    clearTimeout(timer);
  }
}

module.exports = { sleep, waitFor, waitForMetric, onceWithin };
