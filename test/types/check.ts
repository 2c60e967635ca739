// Compile-only check of index.d.ts against typical use (never run):
//   npx -y -p typescript@5 tsc --noEmit --strict --target es2022 --module commonjs test/types/check.ts
// Lines marked @ts-expect-error must stay errors: they pin what the types refuse.

import { Proxy, ProxyConfig, Decision, SuspendedConnection, Metrics, ConfigError, ListenerAddress, AccessEvent, CloseReason } from '../../index';

const pem = '-----BEGIN CERTIFICATE-----\n...\n-----END CERTIFICATE-----\n';
const key = Buffer.from('-----BEGIN PRIVATE KEY-----\n...\n-----END PRIVATE KEY-----\n');

const config: ProxyConfig = {
  workerThreads: 2,
  readBufferSize: 65536,
  scheduler: { kind: 'drr', quantum: 'auto', maxQueuedBytesPerFlow: 262144, rate: 0 },
  protection: { rateLimit: { connectionsPerSecond: 50 }, blocklist: ['10.0.0.0/8'], requireSni: false },
  listeners: [
    { port: 8443, defaultCert: { certChain: pem, privateKey: key }, protection: { rateLimit: null } },
    { kind: 'connect', host: '127.0.0.1', port: 9999, connect: { allowPorts: [443, 8443], allowDomains: ['example.com'] } },
    { kind: 'connect', host: '0.0.0.0', port: 3128, connect: { auth: { realm: 'corp', users: [{ name: 'alice', hash: '$scrypt$ln=15,r=8,p=1$c2FsdHNhbHQ$aGFzaGhhc2hoYXNoaGFzaA' }] } } },
  ],
  routes: [
    { sni: 'a.example.com', upstreams: [{ kind: 'tcp', host: '127.0.0.1', port: 8080 }] },
    { sni: '*.example.com', terminateTls: true, alpn: ['h2', 'http/1.1'], upstreams: [{ kind: 'uds', path: '/run/app.sock', pid: 1, tid: 1 }] },
    { sni: '', suspended: true, upstreams: [], proxyProtocol: 'v2' },
  ],
};

async function main(): Promise<void> {
  const proxy = new Proxy(config);
  proxy.on('suspended', (conn: SuspendedConnection) => {
    const decision: Decision = { upstreams: [{ kind: 'tcp', host: 'backend.internal', port: 443 }] };
    const ok: boolean = proxy.resolveConnection(conn.id, conn.sni === 'x.test' ? null : decision);
    void ok;
  });
  proxy.on('access', (a: AccessEvent) => {
    const reason: CloseReason = a.closeReason;
    const line: string = `${a.time} ${a.peerIp}:${a.peerPort} ${a.listener.kind} ${a.sni ?? '-'} ${a.route ?? '-'} ${a.decision} ${a.tlsVersion ?? '-'} ${a.bytesFromClient + a.bytesToClient + a.durationMs} ${reason}`;
    void line;
  });
  proxy.on('error', (err: Error) => console.error(err.message));
  proxy.on('warning', (w: Error) => console.warn(w.message));
  proxy.once('listening', () => {});
  proxy.on('close', () => {});
  await proxy.start();
  const addrs: ListenerAddress[] = proxy.addresses();
  const port: number = addrs[0].port;
  proxy.updateConfig({ routes: config.routes, protection: { maxConcurrentPerIp: 10 } });
  proxy.updateConfig({ protection: null });
  const m: Metrics = proxy.metrics();
  const total: number = m.activeConnections + m.listeners[0].activeConnections + port +
    m.status407 + m.authFailures + m.authVerifications + m.authCacheHits + m.refusedAuthBusy + m.authThrottled +
    m.eventsDropped + m.accessEventsDropped;
  const blocked: string[] = proxy.blockedIps().rateLimited;
  void total;
  void blocked;
  await proxy.stop({ graceMs: 1000 });
  await proxy[Symbol.asyncDispose]();

  try {
    new Proxy({ listeners: [] });
  } catch (e) {
    const err = e as ConfigError;
    const code: 'ERR_LEGATO_CONFIG' = err.code;
    void code;
  }

  // @ts-expect-error listeners is required
  new Proxy({ routes: [] });
  // @ts-expect-error a user needs a hash
  new Proxy({ listeners: [{ kind: 'connect', port: 1, connect: { auth: { users: [{ name: 'a' }] } } }] });
  // @ts-expect-error connect options only on a connect listener
  new Proxy({ listeners: [{ port: 1, connect: { allowPorts: [443] } }] });
  // @ts-expect-error a connect listener has no certificate
  new Proxy({ listeners: [{ kind: 'connect', port: 1, defaultCert: { certChain: pem, privateKey: key } }] });
  // @ts-expect-error upstream kind is required
  new Proxy({ listeners: [{ port: 1 }], routes: [{ upstreams: [{ host: 'a', port: 1 }] }] });
  // @ts-expect-error unknown proxyProtocol
  new Proxy({ listeners: [{ port: 1 }], routes: [{ upstreams: [], proxyProtocol: 'v3' }] });
  // @ts-expect-error updateConfig cannot change listeners
  proxy.updateConfig({ listeners: [] });
  // @ts-expect-error a decision needs upstreams
  proxy.resolveConnection('1', { terminateTls: true });
}

void main;

// metricsText(): the Prometheus text of a metrics object.
import { metricsText } from '../../index';
const exposition: string = metricsText(new Proxy(config).metrics());
void exposition;
// @ts-expect-error: not a metrics object
metricsText(42);
