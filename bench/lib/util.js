'use strict';
// Small helpers: free ports, statistics, number formatting, name resolution for the SNI names.

const dns = require('dns');
const fs = require('fs');
const net = require('net');

const sleep = (ms) => new Promise((r) => setTimeout(r, ms));

/** A port that was free a moment ago on host (bind 0, read, close). */
function freePort(host = '127.0.0.1') {
  return new Promise((resolve, reject) => {
    const s = net.createServer();
    s.unref();
    s.on('error', reject);
    s.listen(0, host, () => {
      const { port } = s.address();
      s.close(() => resolve(port));
    });
  });
}

/** Resolve once host:port accepts a TCP connection (or reject after timeoutMs). */
async function waitPort(port, host = '127.0.0.1', timeoutMs = 10000) {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const ok = await new Promise((resolve) => {
      const s = net.connect(port, host);
      s.once('connect', () => { s.destroy(); resolve(true); });
      s.once('error', () => resolve(false));
    });
    if (ok) return;
    if (Date.now() > deadline) throw new Error(`${host}:${port} not accepting after ${timeoutMs} ms`);
    await sleep(50);
  }
}

function median(xs) {
  const v = xs.filter((x) => typeof x === 'number' && Number.isFinite(x)).sort((a, b) => a - b);
  if (!v.length) return null;
  const m = v.length >> 1;
  return v.length % 2 ? v[m] : (v[m - 1] + v[m]) / 2;
}

/** { median, min, max, n } of the finite numbers in xs, or null. */
function summarize(xs) {
  const v = xs.filter((x) => typeof x === 'number' && Number.isFinite(x));
  if (!v.length) return null;
  return { median: median(v), min: Math.min(...v), max: Math.max(...v), n: v.length };
}

/** Percentile (0-100) of an already sorted numeric array (nearest rank). */
function percentile(sorted, p) {
  if (!sorted.length) return null;
  const k = Math.min(sorted.length - 1, Math.max(0, Math.ceil((p / 100) * sorted.length) - 1));
  return sorted[k];
}

/** Format with `digits` significant-ish decimals and thousands separators. */
function fmt(x, decimals = 0) {
  if (x === null || x === undefined || !Number.isFinite(x)) return '–';
  return x.toLocaleString('en-US', { minimumFractionDigits: decimals, maximumFractionDigits: decimals });
}

/** Choose decimals so that ~3 significant digits show. */
function fmtAuto(x) {
  if (x === null || x === undefined || !Number.isFinite(x)) return '–';
  const a = Math.abs(x);
  const d = a >= 100 ? 0 : a >= 10 ? 1 : a >= 1 ? 2 : a >= 0.1 ? 3 : 4;
  return fmt(x, d);
}

/** "median (min–max)" of a summary, formatted with fmtAuto or a given formatter. */
function fmtRange(s, f = fmtAuto) {
  if (!s) return '–';
  if (s.n === 1 || s.min === s.max) return f(s.median);
  return `${f(s.median)} (${f(s.min)}–${f(s.max)})`;
}

function lookup4(name) {
  return new Promise((resolve) => {
    dns.lookup(name, { family: 4 }, (err, address) => resolve(err ? null : address));
  });
}

const HOSTS_MARK = '# added by legato bench/run.js (SNI names for wrk; safe to keep or remove)';

/**
 * wrk takes the TLS SNI from the URL's host name and has no --resolve, so the bench names must
 * resolve to 127.0.0.1. Add them to /etc/hosts once (idempotent: only names that do not resolve
 * to 127.0.0.1 are added, under a marker comment). Returns { ok, added, message }.
 */
async function ensureHostNames(names) {
  const missing = [];
  for (const n of names) if ((await lookup4(n)) !== '127.0.0.1') missing.push(n);
  if (!missing.length) return { ok: true, added: [] };
  const line = `127.0.0.1 ${missing.join(' ')} ${HOSTS_MARK}\n`;
  try {
    const cur = fs.readFileSync('/etc/hosts', 'utf8');
    fs.appendFileSync('/etc/hosts', (cur.endsWith('\n') || cur === '' ? '' : '\n') + line);
  } catch (err) {
    return { ok: false, added: [], message: `cannot write /etc/hosts (${err.code}); add this line as root: ${line.trim()}` };
  }
  for (const n of missing) {
    if ((await lookup4(n)) !== '127.0.0.1') return { ok: false, added: missing, message: `${n} still does not resolve to 127.0.0.1 after editing /etc/hosts` };
  }
  return { ok: true, added: missing };
}

module.exports = { sleep, freePort, waitPort, median, summarize, percentile, fmt, fmtAuto, fmtRange, ensureHostNames };
