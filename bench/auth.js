'use strict';
// Cost of connect.auth (Basic proxy authentication), measured in one run on this machine:
//   1. one verification (a CONNECT whose credentials miss the cache: scrypt on libuv's pool, in
//      the engine) against Node's own crypto.scrypt of the same hash, at the cost
//      `legato hash-password` uses by default (ln=15, r=8, p=1) unless --ln says otherwise;
//   2. a tunnel set up with cached credentials against one on a listener without auth
//      (CONNECT → 407/200 round trips over loopback, sequential);
//   3. a password guesser: one source (127.0.0.2) sends wrong passwords 16 at a time for
//      --guess-seconds while a user on 127.0.0.1 logs in with fresh (uncached) credentials twice a
//      second; with the default connect.auth.failureLimit and with failureLimit: null. Prints
//      the guesses answered and verified per second, the process's CPU per second (the pool's
//      scrypt included), and the user's login times and statuses.
// Prints medians and ratios; never asserts timings.
//
//   node bench/auth.js [--ln 15] [--runs 20] [--tunnels 2000] [--guess-seconds 5]
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
const GUESS_SECONDS = opt('guess-seconds', 5);
const LOGINS = Math.ceil(GUESS_SECONDS * 2); // fresh logins per guessing phase

const b64 = (b) => b.toString('base64').replace(/=+$/, '');
const median = (xs) => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)];
const ms = (t0) => Number(process.hrtime.bigint() - t0) / 1e6;

/** One CONNECT; resolves with the status code once the reply head arrived. */
function connectOnce(port, headers, localAddress = undefined) {
  return new Promise((resolve, reject) => {
    const s = net.connect({ port, host: '127.0.0.1', localAddress });
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
  const users = Array.from({ length: RUNS + 1 + 2 * LOGINS }, (_, i) => ({ name: `u${i}`, password: `pw${i}`, salt: crypto.randomBytes(16) }));
  const hashOf = (u) => `$scrypt$ln=${LN},r=8,p=1$${b64(u.salt)}$${b64(crypto.scryptSync(u.password, u.salt, 32, { N: 2 ** LN, r: 8, p: 1, maxmem: 1 << 30 }))}`;
  const config = users.map((u) => ({ name: u.name, hash: hashOf(u) }));
  const proxy = new Proxy({
    workerThreads: 1,
    listeners: [
      // Every CONNECT here targets a port the policy refuses (403): head, auth, policy, reply.
      { kind: 'connect', host: '127.0.0.1', port: 0, connect: { denyCidrs: [], allowPorts: [1], auth: { users: config } } },
      { kind: 'connect', host: '127.0.0.1', port: 0, connect: { denyCidrs: [], allowPorts: [1] } },
      { kind: 'connect', host: '127.0.0.1', port: 0, connect: { denyCidrs: [], allowPorts: [1], auth: { users: config, failureLimit: null } } },
    ],
  });
  await proxy.start();
  const [authPort, plainPort, unlimitedPort] = proxy.addresses().map((a) => a.port);
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

  // 3. A guesser beside a user, with the default failure limit and without one.
  console.log(`a guesser (127.0.0.2, 16 at a time, ${GUESS_SECONDS} s) beside fresh logins from 127.0.0.1 twice a second:`);
  let next = RUNS + 1;
  for (const [label, port, lis] of [['failureLimit default', authPort, 0], ['failureLimit null', unlimitedPort, 2]]) {
    const before = { ...proxy.metrics().listeners[lis] };
    const cpu0 = process.cpuUsage();
    const t0 = process.hrtime.bigint();
    const end = Date.now() + GUESS_SECONDS * 1000;
    let guesses = 0;
    const guesser = async (g) => {
      for (let i = 0; Date.now() < end; i++) {
        await connectOnce(port, cred({ name: users[0].name, password: `guess-${g}-${i}` }), '127.0.0.2');
        guesses++;
      }
    };
    const logins = [];
    const user = async () => {
      while (Date.now() < end - 500) {
        const u = users[next++];
        const l0 = process.hrtime.bigint();
        const status = await connectOnce(port, cred(u));
        logins.push({ ms: ms(l0), status });
        await new Promise((r) => setTimeout(r, 500));
      }
    };
    await Promise.all([...Array.from({ length: 16 }, (_, g) => guesser(g)), user()]);
    const secs = ms(t0) / 1000;
    const cpu = process.cpuUsage(cpu0);
    const after = proxy.metrics().listeners[lis];
    const d = (k) => after[k] - before[k];
    const times = logins.map((l) => l.ms);
    const statuses = {};
    for (const l of logins) statuses[l.status] = (statuses[l.status] || 0) + 1;
    console.log(`  ${label}: ${(guesses / secs).toFixed(0)} guesses/s answered, ${(d('authFailures') / secs).toFixed(1)} verified/s ` +
      `(429: ${d('authThrottled')}, 503: ${d('refusedAuthBusy')}), process CPU ${((cpu.user + cpu.system) / 1e6 / secs).toFixed(2)} s/s; ` +
      `user logins: median ${median(times).toFixed(0)} ms, max ${Math.max(...times).toFixed(0)} ms, statuses ${JSON.stringify(statuses)}`);
  }
  await proxy.stop();
}

main().catch((e) => {
  console.error(e);
  process.exit(1);
});
