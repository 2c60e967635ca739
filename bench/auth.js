'use strict';
// Cost of connect.auth (Basic proxy authentication), measured in one run on this machine:
//   1. one verification (a CONNECT whose credentials miss the cache: scrypt on libuv's pool, in
//      the engine) against Node's own crypto.scrypt of the same hash, at the cost
//      `legato hash-password` uses by default (ln=15, r=8, p=1) unless --ln says otherwise;
//   2. a tunnel set up with cached credentials against one on a listener without auth
//      (CONNECT → 407/200 round trips over loopback, sequential).
// Prints medians and ratios; never asserts timings.
//
//   node bench/auth.js [--ln 15] [--runs 20] [--tunnels 2000]
const crypto = require('crypto');
const net = require('net');
const { Proxy } = require('..');

const args = process.argv.slice(2);
const opt = (name, dflt) => {
  const i = args.indexOf(`--${name}`);
  return i >= 0 ? Number(args[i + 1]) : dflt;
};
const LN = opt('ln', 15);
const RUNS = opt('runs', 20);
const TUNNELS = opt('tunnels', 2000);

const b64 = (b) => b.toString('base64').replace(/=+$/, '');
const median = (xs) => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)];
const ms = (t0) => Number(process.hrtime.bigint() - t0) / 1e6;

/** One CONNECT; resolves with the status code once the reply head arrived. */
function connectOnce(port, headers) {
  return new Promise((resolve, reject) => {
    const s = net.connect(port, '127.0.0.1');
    let buf = '';
    s.on('error', reject);
    s.on('data', (d) => {
      buf += d.toString('latin1');
      if (buf.includes('\r\n\r\n')) {
        s.destroy();
        resolve(Number(buf.slice(9, 12)));
      }
    });
    s.write(`CONNECT 127.0.0.1:${port} HTTP/1.1\r\n${headers}\r\n`);
  });
}

async function main() {
  const users = Array.from({ length: RUNS + 1 }, (_, i) => ({ name: `u${i}`, password: `pw${i}`, salt: crypto.randomBytes(16) }));
  const hashOf = (u) => `$scrypt$ln=${LN},r=8,p=1$${b64(u.salt)}$${b64(crypto.scryptSync(u.password, u.salt, 32, { N: 2 ** LN, r: 8, p: 1, maxmem: 1 << 30 }))}`;
  const config = users.map((u) => ({ name: u.name, hash: hashOf(u) }));
  const proxy = new Proxy({
    workerThreads: 1,
    listeners: [
      // Every CONNECT here targets a port the policy refuses (403): head, auth, policy, reply.
      { kind: 'connect', host: '127.0.0.1', port: 0, connect: { denyCidrs: [], allowPorts: [1], auth: { users: config } } },
      { kind: 'connect', host: '127.0.0.1', port: 0, connect: { denyCidrs: [], allowPorts: [1] } },
    ],
  });
  await proxy.start();
  const [authPort, plainPort] = proxy.addresses().map((a) => a.port);
  const cred = (u) => `Proxy-Authorization: Basic ${Buffer.from(`${u.name}:${u.password}`).toString('base64')}\r\n`;

  // 1. Verification (cache miss: a fresh user each run; the answer is 403, port not allowed).
  const engine = [];
  for (let i = 0; i < RUNS; i++) {
    const t0 = process.hrtime.bigint();
    await connectOnce(authPort, cred(users[i]));
    engine.push(ms(t0));
  }
  const node = [];
  for (let i = 0; i < RUNS; i++) {
    const t0 = process.hrtime.bigint();
    await new Promise((resolve, reject) => crypto.scrypt(users[i].password, users[i].salt, 32, { N: 2 ** LN, r: 8, p: 1, maxmem: 1 << 30 }, (e) => (e ? reject(e) : resolve())));
    node.push(ms(t0));
  }
  console.log(`verification, ln=${LN} r=8 p=1, median of ${RUNS}:`);
  console.log(`  legato CONNECT with a cache miss: ${median(engine).toFixed(1)} ms`);
  console.log(`  Node crypto.scrypt alone:         ${median(node).toFixed(1)} ms  (legato/Node ${(median(engine) / median(node)).toFixed(2)})`);

  // 2. Cached credentials against no auth.
  const last = users[RUNS];
  await connectOnce(authPort, cred(last)); // verify once: later ones hit the cache
  const time = async (port, headers) => {
    const t0 = process.hrtime.bigint();
    for (let i = 0; i < TUNNELS; i++) await connectOnce(port, headers);
    return (ms(t0) * 1000) / TUNNELS;
  };
  // Warm up both, then alternate blocks (5 each) and take the medians.
  await time(plainPort, '');
  await time(authPort, cred(last));
  const plains = [];
  const cacheds = [];
  for (let i = 0; i < 5; i++) {
    plains.push(await time(plainPort, ''));
    cacheds.push(await time(authPort, cred(last)));
  }
  const plain = median(plains);
  const cached = median(cacheds);
  console.log(`CONNECT round trip, median of 5 blocks of ${TUNNELS} sequential:`);
  console.log(`  no auth:            ${plain.toFixed(1)} µs`);
  console.log(`  cached credentials: ${cached.toFixed(1)} µs  (cached/no auth ${(cached / plain).toFixed(2)})`);
  const m = proxy.metrics().listeners[0];
  console.log(`  (authVerifications ${m.authVerifications}, authCacheHits ${m.authCacheHits})`);
  await proxy.stop();
}

main().catch((e) => {
  console.error(e);
  process.exit(1);
});
