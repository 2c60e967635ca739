'use strict';
// The peers a scenario runs against, all behind one interface:
//
//   peer.available()                → { ok: true } or { ok: false, why }
//   await peer.start(ctx, spec)     → handle
//     spec: { mode: 'sni' | 'raw' | 'terminate' | 'connect',
//               // sni: TLS passthrough routed by SNI; raw: plain TCP to the '' route;
//               // terminate: TLS terminated with spec.cert, plaintext to the route's upstream;
//               // connect: HTTP CONNECT forward proxy allowing spec.allowPorts
//             routes: [{ sni, host, port }], // exact, '*.suffix' or '' (default); raw mode
//               // (HAProxy): `firstByte: 'E'` sends connections starting with that byte there
//             splice,                        // HAProxy: option splice-auto (S6; maxconn 7000, as its
//                                            // pipes take descriptors within the 20,000 limit)
//             // a route may list `upstreams: [{ host, port }]` instead: balanced by least
//             // connections (legato leastConn, HAProxy balance leastconn, nginx least_conn)
//             cert: { cert, key, pem },      // files (terminate)
//             allowPorts: [port],            // (connect)
//             threads, cpus }                // worker threads/processes and the CPUs to pin to
//   peer.supports(mode)             → true, or a string saying why not (the row is left out)
//   handle: { port, pid, cpu() (s), rss() (bytes), fds(), stats() (async, peer counters or null),
//             stop() }
//
// Each proxy runs as its own child process (pinned with taskset), so its whole-process CPU and
// RSS are what is measured: for legato that includes the Node.js runtime around the addon.
// Worker counts are made equal: legato workerThreads = HAProxy nbthread = nginx
// worker_processes = Node cluster workers = spec.threads.

const fs = require('fs');
const path = require('path');
const { spawnTracked, waitForOutput, stopChild, tempDir, treeCpuSeconds, treeRssBytes, treeFds, safeExec } = require('./procs');
const { freePort, waitPort } = require('./util');

const ROOT = path.resolve(__dirname, '..', '..');
const PEER_DIR = path.join(__dirname, '..', 'peers');
const INSTALL_HINT = 'apt-get install haproxy nginx libnginx-mod-stream wrk nghttp2-client';
const IDLE_TIMEOUT_MS = 300000; // every peer: idle connections survive the S3 measurement

function which(cmd) {
  return safeExec('sh', ['-c', `command -v ${cmd}`]) || null;
}

let nginxInfo = null;
function haveNginx() {
  if (nginxInfo) return nginxInfo;
  const bin = which('nginx');
  if (!bin) return (nginxInfo = { ok: false, why: `nginx not installed (${INSTALL_HINT})` });
  const v = safeExec('sh', ['-c', 'nginx -V 2>&1']);
  let streamModule = null;
  if (/--with-stream=dynamic/.test(v)) {
    const m = /--modules-path=(\S+)/.exec(v);
    const cands = [m && path.join(m[1], 'ngx_stream_module.so'), '/usr/lib/nginx/modules/ngx_stream_module.so', '/usr/share/nginx/modules/ngx_stream_module.so'].filter(Boolean);
    streamModule = cands.find((f) => fs.existsSync(f)) || null;
    if (!streamModule) return (nginxInfo = { ok: true, stream: false, why: `nginx stream module not installed (${INSTALL_HINT})`, version: (/nginx\/(\S+)/.exec(v) || [])[1] });
  } else if (!/--with-stream(\s|$)/.test(v)) {
    return (nginxInfo = { ok: true, stream: false, why: 'nginx built without the stream module', version: (/nginx\/(\S+)/.exec(v) || [])[1] });
  }
  return (nginxInfo = { ok: true, stream: true, streamModule, version: (/nginx\/(\S+)/.exec(v) || [])[1] });
}

function haveHaproxy() {
  if (!which('haproxy')) return { ok: false, why: `HAProxy not installed (${INSTALL_HINT})` };
  const v = safeExec('sh', ['-c', 'haproxy -v 2>&1']);
  return { ok: true, version: (/version (\S+)/.exec(v) || [])[1] };
}

let legatoInfo = null;
function haveLegatoAlt() {
  const f = process.env.BENCH_LEGATO_ALT;
  const r = process.env.BENCH_LEGATO_ALT_ROOT;
  if (!f && !r && !process.env.BENCH_LEGATO_ALT_SCHEDULER) {
    return { ok: false, why: 'set BENCH_LEGATO_ALT=/path/to/legato.node, BENCH_LEGATO_ALT_ROOT=/path/to/checkout and/or BENCH_LEGATO_ALT_SCHEDULER=\'{"quantum":16384}\' to compare a candidate' };
  }
  if (f && !fs.existsSync(f)) return { ok: false, why: `BENCH_LEGATO_ALT ${f} does not exist` };
  if (r && !fs.existsSync(path.join(r, 'package.json'))) return { ok: false, why: `BENCH_LEGATO_ALT_ROOT ${r} holds no package.json` };
  return haveLegato();
}

/** The candidate's scheduler overrides (BENCH_LEGATO_ALT_SCHEDULER, JSON), or {}. */
function altScheduler() {
  return process.env.BENCH_LEGATO_ALT_SCHEDULER ? JSON.parse(process.env.BENCH_LEGATO_ALT_SCHEDULER) : {};
}

function haveLegato() {
  if (legatoInfo) return legatoInfo;
  try {
    require(ROOT);
    legatoInfo = { ok: true };
  } catch (err) {
    legatoInfo = { ok: false, why: `legato addon does not load (${err.message.split('\n')[0]}); run \`npm run build\`` };
  }
  return legatoInfo;
}

/** legato-rt: the addon, and a process that may make a thread SCHED_FIFO (chrt tries it). */
function haveRealtime() {
  const base = haveLegato();
  if (!base.ok) return base;
  try {
    require('child_process').execFileSync('chrt', ['-f', '1', 'true'], { stdio: 'ignore' });
    return base;
  } catch {
    return { ok: false, why: 'workerPriority realtime needs CAP_SYS_NICE or RLIMIT_RTPRIO >= 1 (`chrt -f 1 true` fails)' };
  }
}

/** Handle fields common to every process-backed peer. */
function processHandle(child, port, extra = {}) {
  return {
    port,
    pid: child.pid,
    child,
    cpu: () => treeCpuSeconds(child.pid),
    rss: () => treeRssBytes(child.pid),
    fds: () => treeFds(child.pid),
    stats: async () => null,
    stop: () => stopChild(child),
    ...extra,
  };
}

/** Ask a line-protocol child (`cmd\n` → `cmd {json}\n`) for its counters. */
async function ask(child, cmd) {
  const from = child.out.length;
  child.stdin.write(`${cmd}\n`);
  const m = await waitForOutput(child, new RegExp(`${cmd} (\\{.*\\})\\n`), 5000, from);
  return JSON.parse(m[1]);
}

/* --------------------------------------------- direct -------------------------------------------- */

const direct = {
  name: 'direct',
  label: 'direct (no proxy)',
  available: () => ({ ok: true }),
  supports: () => true,
  async start(ctx, spec) {
    const target = spec.directPort ? { port: spec.directPort } : (spec.routes.find((r) => r.sni === spec.directSni) || spec.routes.find((r) => r.sni === ''));
    return { port: target.port, pid: null, cpu: () => null, rss: () => null, fds: () => null, stats: async () => null, stop: async () => {} };
  },
};

/* --------------------------------------------- legato -------------------------------------------- */

function legatoPeer(kind, { alt = false, protect = false, realtime = false } = {}) {
  return {
    name: alt ? 'legato-alt' : protect ? 'legato-protected' : realtime ? 'legato-rt' : kind === 'drr' ? 'legato' : `legato-${kind}`,
    get label() {
      if (protect) return `legato (${kind}, protected)`;
      if (realtime) return `legato (${kind}, workerPriority realtime)`;
      if (!alt) return `legato (${kind})`;
      const what = [process.env.BENCH_LEGATO_ALT ? 'alt build' : null,
        process.env.BENCH_LEGATO_ALT_ROOT ? `checkout ${path.basename(path.resolve(process.env.BENCH_LEGATO_ALT_ROOT))}` : null,
        process.env.BENCH_LEGATO_ALT_SCHEDULER ? JSON.stringify(altScheduler()).replace(/"/g, '') : null].filter(Boolean).join(', ');
      return `legato (${kind}, ${what})`;
    },
    available: alt ? haveLegatoAlt : realtime ? haveRealtime : haveLegato,
    supports: (mode) => {
      const why = legatoLacks(mode);
      return why ? `legato: ${why}` : true;
    },
    async start(ctx, spec) {
      const dir = tempDir('legato');
      const config = legatoConfig(spec, kind);
      // legato-protected: the scenario's protection (P1); the other legato peers run without.
      if (protect && spec.protection) config.protection = spec.protection;
      if (realtime) config.workerPriority = 'realtime';
      if (alt) config.scheduler = { ...config.scheduler, ...altScheduler() };
      const file = path.join(dir, 'legato.json');
      fs.writeFileSync(file, JSON.stringify(config, null, 2));
      const env = { ...process.env };
      if (alt && process.env.BENCH_LEGATO_ALT) env.LEGATO_ADDON = path.resolve(process.env.BENCH_LEGATO_ALT);
      // A whole other checkout (its lib/ and its build), for comparing builds whose JS differs.
      if (alt && process.env.BENCH_LEGATO_ALT_ROOT) {
        env.LEGATO_ROOT = path.resolve(process.env.BENCH_LEGATO_ALT_ROOT);
        if (!process.env.BENCH_LEGATO_ALT) delete env.LEGATO_ADDON; // that checkout's own build
      }
      const child = spawnTracked(process.execPath, [path.join(PEER_DIR, 'legato-proxy.js'), file], { cpus: spec.cpus, name: `legato-${kind}`, env });
      const m = await waitForOutput(child, /ready (\{.*\})\n/, 15000);
      const port = JSON.parse(m[1]).ports[0];
      return processHandle(child, port, { stats: () => ask(child, 'metrics'), configFile: file });
    },
  };
}

/** The legato config for a spec (shared by the peer and the feature probe). */
function legatoConfig(spec, kind) {
  if (spec.mode === 'connect') {
    return {
      workerThreads: spec.threads || 1,
      scheduler: { kind, ...(spec.scheduler || {}) },
      listeners: [{
        kind: 'connect', host: '127.0.0.1', port: 0, idleTimeoutMs: IDLE_TIMEOUT_MS, maxConnections: 0,
        connect: { allowPorts: spec.allowPorts || [443], denyCidrs: [], connectTimeoutMs: 10000 },
      }],
    };
  }
  const cert = spec.mode === 'terminate' && spec.cert
    ? { certChain: fs.readFileSync(spec.cert.cert, 'utf8'), privateKey: fs.readFileSync(spec.cert.key, 'utf8') } : null;
  return {
    workerThreads: spec.threads || 1,
    scheduler: { kind },
    listeners: [{ host: '127.0.0.1', port: 0, idleTimeoutMs: IDLE_TIMEOUT_MS }],
    routes: spec.routes.map((r) => ({
      sni: r.sni,
      terminateTls: spec.mode === 'terminate',
      ...(cert ? { cert } : {}),
      upstreams: targets(r).map((u) => ({ kind: 'tcp', host: u.host, port: u.port })),
    })),
  };
}

const legatoLacking = new Map();
/**
 * Does this legato build implement `mode`? Builds a representative config and lets
 * `new Proxy()` judge: config validation throws "... is not supported yet" for features the
 * engine does not have (lib/config.js NOT_SUPPORTED_YET). Returns null or the reason.
 */
function legatoLacks(mode) {
  if (mode === 'sni' || mode === 'raw') return null;
  if (legatoLacking.has(mode)) return legatoLacking.get(mode);
  let why = null;
  try {
    const { Proxy } = require(ROOT);
    const { generateCerts } = require('./certs');
    const cert = mode === 'terminate' ? generateCerts(tempDir('probe')).ecdsa : null;
    new Proxy(legatoConfig({ mode, cert, routes: [{ sni: '', host: '127.0.0.1', port: 9 }], allowPorts: [9] }, 'drr')); // eslint-disable-line no-new
  } catch (err) {
    why = /not supported yet/.test(err.message) ? `feature not implemented (${err.message})` : `config rejected (${err.message})`;
  }
  legatoLacking.set(mode, why);
  return why;
}

/* ------------------------------------------- pure Node ------------------------------------------- */

const node = {
  name: 'node',
  label: 'Node.js proxy',
  available: () => ({ ok: true }),
  supports: () => true,
  async start(ctx, spec) {
    const dir = tempDir('node');
    const mode = spec.mode === 'terminate' ? 'terminate' : spec.mode === 'connect' ? 'connect' : 'passthrough';
    const config = {
      workers: spec.threads,
      idleTimeoutMs: IDLE_TIMEOUT_MS,
      listeners: [{ host: '127.0.0.1', port: 0, mode }],
      routes: (spec.routes || []).map((r) => ({
        sni: r.sni,
        upstream: { host: r.host, port: r.port },
        ...(spec.cert ? { certFile: spec.cert.cert, keyFile: spec.cert.key } : {}),
      })),
    };
    const file = path.join(dir, 'node-proxy.json');
    fs.writeFileSync(file, JSON.stringify(config, null, 2));
    const child = spawnTracked(process.execPath, [path.join(PEER_DIR, 'node-proxy.js'), file], { cpus: spec.cpus, name: 'node-proxy' });
    const m = await waitForOutput(child, /ready (\{.*\})\n/, 15000);
    return processHandle(child, JSON.parse(m[1]).ports[0], { stats: () => ask(child, 'stats'), configFile: file });
  },
};

/* --------------------------------------------- HAProxy ------------------------------------------- */

/** A route's upstreams: its `upstreams` list, or its single host and port. */
function targets(r) {
  return r.upstreams || [{ host: r.host, port: r.port }];
}

function haproxyConf(spec, port) {
  const backends = spec.routes.map((r, i) => {
    const ups = targets(r);
    const servers = ups.map((u, j) => `  server s${i}_${j} ${u.host}:${u.port}\n`).join('');
    return `backend be${i}\n${ups.length > 1 ? '  balance leastconn\n' : ''}${servers}`;
  }).join('\n');
  const dflt = spec.routes.findIndex((r) => r.sni === '');
  let frontend;
  if (spec.mode === 'raw') {
    // A route with `firstByte` takes the connections whose first byte is that character (S6: the
    // echo origin beside the bulk one, as sched-load's mode byte picks them).
    const byByte = spec.routes.map((r, i) => [r, i]).filter(([r]) => r.firstByte);
    const inspect = byByte.length ? '  tcp-request inspect-delay 10s\n  tcp-request content accept if { req.len gt 0 }\n' : '';
    const rules = byByte.map(([r, i]) => `  use_backend be${i} if { req.payload(0,1) -m bin ${Buffer.from(r.firstByte, 'latin1').toString('hex')} }\n`).join('');
    frontend = `frontend fe\n  bind 127.0.0.1:${port}\n${inspect}${rules}  default_backend be${dflt}\n`;
  } else if (spec.mode === 'terminate') {
    const rules = [];
    spec.routes.forEach((r, i) => { if (r.sni && !r.sni.startsWith('*.')) rules.push(`  use_backend be${i} if { ssl_fc_sni -i ${r.sni} }`); });
    spec.routes.map((r, i) => [r, i]).filter(([r]) => r.sni.startsWith('*.')).sort((a, b) => b[0].sni.length - a[0].sni.length)
      .forEach(([r, i]) => rules.push(`  use_backend be${i} if { ssl_fc_sni -i -m end ${r.sni.slice(1)} }`));
    frontend = `frontend fe
  bind 127.0.0.1:${port} ssl crt ${spec.cert.pem}
${rules.join('\n')}
${dflt >= 0 ? `  default_backend be${dflt}` : ''}
`;
  } else {
    const rules = [];
    spec.routes.forEach((r, i) => { if (r.sni && !r.sni.startsWith('*.')) rules.push(`  use_backend be${i} if { req.ssl_sni -i ${r.sni} }`); });
    // Longest wildcard suffix first, as legato routes.
    spec.routes.map((r, i) => [r, i]).filter(([r]) => r.sni.startsWith('*.')).sort((a, b) => b[0].sni.length - a[0].sni.length)
      .forEach(([r, i]) => rules.push(`  use_backend be${i} if { req.ssl_sni -i -m end ${r.sni.slice(1)} }`));
    frontend = `frontend fe
  bind 127.0.0.1:${port}
  tcp-request inspect-delay 10s
  tcp-request content accept if { req.ssl_hello_type 1 }
${rules.join('\n')}
${dflt >= 0 ? `  default_backend be${dflt}` : ''}
`;
  }
  return `# generated by legato bench
global
  nbthread ${spec.threads}
  maxconn ${spec.splice ? 7000 : 9000}
defaults
  mode tcp
  timeout connect 10s
  timeout client ${IDLE_TIMEOUT_MS / 1000}s
  timeout server ${IDLE_TIMEOUT_MS / 1000}s
${spec.splice ? '  option splice-auto\n' : ''}${frontend}
${backends}`;
}

const haproxy = {
  name: 'haproxy',
  label: 'HAProxy',
  available: haveHaproxy,
  supports: (mode) => (mode === 'connect' ? 'HAProxy has no forward-proxy (CONNECT to any host) mode' : true),
  async start(ctx, spec) {
    const dir = tempDir('haproxy');
    const port = await freePort();
    const file = path.join(dir, 'haproxy.cfg');
    fs.writeFileSync(file, haproxyConf(spec, port));
    const child = spawnTracked('haproxy', ['-db', '-f', file], { cpus: spec.cpus, name: 'haproxy' });
    await waitPort(port).catch((err) => { throw new Error(`${err.message}; haproxy: ${child.err}`); });
    return processHandle(child, port, { stop: () => stopChild(child, 3000, 'SIGTERM'), configFile: file });
  },
};

/* ---------------------------------------------- nginx -------------------------------------------- */


/** The main-context lines every generated nginx config starts with (origin and stream peer). */
function nginxMainConf(prefix, workers) {
  const asRoot = process.getuid && process.getuid() === 0;
  return `daemon off;
master_process on;
worker_processes ${workers};
worker_rlimit_nofile 20000;
pid ${prefix}/nginx.pid;
error_log ${prefix}/error.log warn;
${asRoot ? 'user root root;' : ''}
events { worker_connections 19500; }`; // nginx counts both sides of a proxied connection: 9,000 idle ones are 18,000
}

function nginxStreamConf(spec, port, prefix, info) {
  const ups = spec.routes.map((r, i) => {
    const t = targets(r);
    return `  upstream u${i} { ${t.length > 1 ? 'least_conn; ' : ''}${t.map((u) => `server ${u.host}:${u.port};`).join(' ')} }`;
  }).join('\n');
  const dflt = spec.routes.findIndex((r) => r.sni === '');
  let server;
  const entries = spec.routes.map((r, i) => (r.sni === '' ? `    default u${i};` : `    ${r.sni} u${i};`)).join('\n');
  if (spec.mode === 'terminate') {
    server = `  map $ssl_server_name $backend {
    hostnames;
${entries}
  }
  server {
    listen 127.0.0.1:${port} ssl backlog=4096;
    ssl_protocols TLSv1.2 TLSv1.3; # nginx 1.22's default stops at TLSv1.2
    ssl_certificate ${spec.cert.cert};
    ssl_certificate_key ${spec.cert.key};
    proxy_pass $backend;
    proxy_half_close on;
    proxy_timeout ${IDLE_TIMEOUT_MS / 1000}s;
  }`;
  } else if (spec.mode === 'raw') {
    server = `  server {\n    listen 127.0.0.1:${port} backlog=4096;\n    proxy_pass u${dflt};\n    proxy_half_close on;\n    proxy_timeout ${IDLE_TIMEOUT_MS / 1000}s;\n  }`;
  } else {
    server = `  map $ssl_preread_server_name $backend {
    hostnames;
${entries}
  }
  server {
    listen 127.0.0.1:${port} backlog=4096;
    ssl_preread on;
    preread_timeout 10s;
    proxy_pass $backend;
    proxy_half_close on;
    proxy_timeout ${IDLE_TIMEOUT_MS / 1000}s;
  }`;
  }
  return `# generated by legato bench
${info.streamModule ? `load_module ${info.streamModule};` : ''}
${nginxMainConf(prefix, spec.threads)}
stream {
${ups}
${server}
}
`;
}

const nginx = {
  name: 'nginx',
  label: 'nginx stream',
  supports: (mode) => (mode === 'connect' ? 'nginx has no CONNECT forward proxy without third-party modules' : true),
  available: () => {
    const i = haveNginx();
    return i.ok && i.stream ? { ok: true, version: i.version } : { ok: false, why: i.why };
  },
  async start(ctx, spec) {
    const info = haveNginx();
    const prefix = tempDir('nginx');
    const port = await freePort();
    const file = path.join(prefix, 'nginx.conf');
    fs.writeFileSync(file, nginxStreamConf(spec, port, prefix, info));
    const child = spawnTracked('nginx', ['-p', `${prefix}/`, '-c', file, '-e', `${prefix}/error.log`], { cpus: spec.cpus, name: 'nginx-stream' });
    await waitPort(port).catch((err) => {
      let log = '';
      try { log = fs.readFileSync(path.join(prefix, 'error.log'), 'utf8'); } catch (_) { /* none */ }
      throw new Error(`${err.message}; nginx: ${child.err} ${log}`);
    });
    return processHandle(child, port, { stop: () => stopChild(child, 3000, 'SIGTERM'), configFile: file });
  },
};

/* -------------------------------------------- tinyproxy ------------------------------------------ */

const tinyproxy = {
  name: 'tinyproxy',
  label: 'tinyproxy',
  available: () => (which('tinyproxy') ? { ok: true, version: (/tinyproxy (\S+)/.exec(safeExec('sh', ['-c', 'tinyproxy -v 2>&1'])) || [])[1] } : { ok: false, why: 'tinyproxy not installed (apt-get install tinyproxy)' }),
  supports: (mode) => (mode === 'connect' ? true : 'tinyproxy is only a forward proxy'),
  async start(ctx, spec) {
    const dir = tempDir('tinyproxy');
    const port = await freePort();
    const file = path.join(dir, 'tinyproxy.conf');
    const asRoot = process.getuid && process.getuid() === 0;
    fs.writeFileSync(file, `# generated by legato bench
${asRoot ? 'User root\nGroup root' : ''}
Port ${port}
Listen 127.0.0.1
Timeout ${IDLE_TIMEOUT_MS / 1000}
MaxClients 10000
LogFile "${dir}/tinyproxy.log"
LogLevel Critical
PidFile "${dir}/tinyproxy.pid"
DisableViaHeader Yes
${(spec.allowPorts || [443]).map((p) => `ConnectPort ${p}`).join('\n')}
`);
    const child = spawnTracked('tinyproxy', ['-d', '-c', file], { cpus: spec.cpus, name: 'tinyproxy' });
    await waitPort(port).catch((err) => { throw new Error(`${err.message}; tinyproxy: ${child.err}`); });
    return processHandle(child, port, { configFile: file });
  },
};

/* ---------------------------------------------- squid -------------------------------------------- */

/** squid's path: on PATH, else Debian's /usr/sbin/squid (not on a non-root user's PATH). */
function squidBin() {
  return which('squid') || (fs.existsSync('/usr/sbin/squid') ? '/usr/sbin/squid' : null);
}

/**
 * The user squid runs as. squid refuses to run as root ("FATAL: Don't run Squid as root, set
 * 'cache_effective_user'!"), so started by root it drops to this user (Debian's `proxy`, else
 * `nobody`), which must be able to write the temp dir; started by anyone else it runs as them.
 */
function squidUser() {
  if (!(process.getuid && process.getuid() === 0)) return null;
  for (const name of ['proxy', 'nobody']) {
    const uid = safeExec('id', ['-u', name]);
    if (/^\d+$/.test(uid)) return { name, uid: Number(uid), gid: Number(safeExec('id', ['-g', name])) };
  }
  return null;
}

function squidConf(spec, port, dir, user) {
  return `# generated by legato bench
http_port 127.0.0.1:${port}
workers 1
${user ? `cache_effective_user ${user.name}` : ''}
visible_hostname legato-bench
# No disk cache, no memory cache: a forward proxy for CONNECT tunnels only.
cache deny all
cache_mem 0 MB
access_log none
cache_store_log none
cache_log ${dir}/cache.log
pid_filename ${dir}/squid.pid
coredump_dir ${dir}
netdb_filename none
pinger_enable off
shutdown_lifetime 0 seconds
read_timeout ${IDLE_TIMEOUT_MS / 1000} seconds
# localhost and CONNECT are built-in ACLs.
acl bench_ports port ${(spec.allowPorts || [443]).join(' ')}
http_access deny CONNECT !bench_ports
http_access allow localhost
http_access deny all
`;
}

const squid = {
  name: 'squid',
  label: 'squid',
  available: () => {
    const bin = squidBin();
    if (!bin) return { ok: false, why: 'squid not installed (apt-get install squid)' };
    return { ok: true, version: (/Version (\S+)/.exec(safeExec(bin, ['-v'])) || [])[1] };
  },
  supports: (mode) => (mode === 'connect' ? true : 'squid runs here as a forward proxy only'),
  async start(ctx, spec) {
    const dir = tempDir('squid');
    const port = await freePort();
    const user = squidUser();
    if (user) fs.chownSync(dir, user.uid, user.gid); // its cache.log and pid file
    const file = path.join(dir, 'squid.conf');
    fs.writeFileSync(file, squidConf(spec, port, dir, user));
    // -N: foreground, one process (no SMP kids, no daemon). -n: a service name of our own, since
    // squid names its shared-memory segments after it (/dev/shm/<name>-cf__*.shm) and two squids
    // with the default name collide.
    const service = `legatobench${port}`;
    const child = spawnTracked(squidBin(), ['-N', '-d1', '-n', service, '-f', file], { cpus: spec.cpus, name: 'squid' });
    await waitPort(port).catch((err) => { throw new Error(`${err.message}; squid: ${child.err.slice(-2000)}`); });
    return processHandle(child, port, {
      configFile: file,
      stop: async () => {
        await stopChild(child, 3000, 'SIGTERM');
        // squid removes its segments on a clean exit, not when killed.
        let names = [];
        try { names = fs.readdirSync('/dev/shm'); } catch (_) { /* no /dev/shm */ }
        for (const f of names.filter((n) => n.startsWith(`${service}-`))) {
          try { fs.unlinkSync(path.join('/dev/shm', f)); } catch (_) { /* gone */ }
        }
      },
    });
  },
};

const PEERS = {
  direct,
  legato: legatoPeer('drr'),
  'legato-fifo': legatoPeer('fifo'),
  // BENCH_LEGATO_ALT=/path/to/legato.node: a candidate build measured beside the current one.
  'legato-alt': legatoPeer('drr', { alt: true }),
  // The same build with the scenario's spec.protection (P1: the cost of protection).
  'legato-protected': legatoPeer('drr', { protect: true }),
  // The same build with workerPriority 'realtime' (S6 ping: the worker's CPU shared with other
  // threads of the host).
  'legato-rt': legatoPeer('drr', { realtime: true }),
  node,
  haproxy,
  nginx,
  tinyproxy,
  squid,
};

module.exports = { PEERS, haveNginx, haveHaproxy, haveLegato, legatoLacks, INSTALL_HINT, ROOT, haproxyConf, nginxStreamConf, nginxMainConf };
