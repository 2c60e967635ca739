'use strict';
// For Fyntr users (issue 15, point 11): FYNTR_* variables as aliases of the LEGATO_* ones (one
// warning each, naming the new variable; a LEGATO_ variable or a flag wins), the Fyntr variables
// legato cannot honour refused, FYNTR_ALLOW_DOMAIN ignored with a reason, and the behaviour the
// README states for --allow-domain: legato resolves every name and proceeds with the addresses
// the policy allows (Fyntr does that only for --allow-domain names), while its own
// --allow-domain is an allowlist.

const assert = require('assert');
const net = require('net');
const cli = require('../lib/cli');
const { DEFAULT_DENY_CIDRS } = require('../lib/config');
const { startEchoServer } = require('./helpers/servers');
const { cleanup, track } = require('./helpers/proxy');
const {
  spawnCli, startCli, openTunnel, request, ESTABLISHED, canUseMountNamespace, startNamespacedProxy,
} = require('./helpers/connect');

/** The forward-proxy config and warnings for argv/env. */
function parse(argv, env) {
  const parsed = cli.parseArgs(argv, env);
  return { config: cli.buildConfig(parsed.values, DEFAULT_DENY_CIDRS), warnings: parsed.warnings, values: parsed.values };
}

describe('Fyntr compatibility', function () {
  this.timeout(60000);
  afterEach(cleanup);

  it('each FYNTR_ variable with a legato twin configures exactly what its LEGATO_ twin does, with one warning', () => {
    const samples = {
      FYNTR_BIND: '::1',
      FYNTR_PORT: '3128',
      FYNTR_MAX_CONNECTIONS: '512',
      FYNTR_IDLE_TIMEOUT: '30',
      FYNTR_ALLOW_PORT: '8443,22',
      FYNTR_NO_DEFAULT_ALLOW_PORT: 'true',
      FYNTR_DENY_CIDR: '203.0.113.0/24',
      FYNTR_ALLOW_CIDR: '10.1.0.0/16',
    };
    assert.deepStrictEqual(Object.keys(samples).sort(), Object.keys(cli.FYNTR_ALIASES).sort());
    for (const [fyntr, value] of Object.entries(samples)) {
      const legato = fyntr.replace(/^FYNTR_/, 'LEGATO_');
      // FYNTR_NO_DEFAULT_ALLOW_PORT needs a port to stay valid; give it with the LEGATO_ name.
      const extra = fyntr === 'FYNTR_NO_DEFAULT_ALLOW_PORT' ? { LEGATO_ALLOW_PORT: '8443' } : {};
      const viaFyntr = parse([], { [fyntr]: value, ...extra });
      const viaLegato = parse([], { [legato]: value, ...extra });
      assert.deepStrictEqual(viaFyntr.config, viaLegato.config, fyntr);
      assert.deepStrictEqual(viaFyntr.warnings, [`${fyntr} is a Fyntr variable: use ${legato} (it works the same here)`]);
      assert.deepStrictEqual(viaLegato.warnings, []);
    }
  });

  it('a LEGATO_ variable wins over its FYNTR_ alias, and a flag over both (each said once)', () => {
    const both = parse([], { FYNTR_PORT: '1111', LEGATO_PORT: '2222' });
    assert.strictEqual(both.config.listeners[0].port, 2222);
    assert.deepStrictEqual(both.warnings, ['FYNTR_PORT is ignored: LEGATO_PORT is set']);
    const flag = parse(['--port', '3333'], { FYNTR_PORT: '1111', LEGATO_PORT: '2222' });
    assert.strictEqual(flag.config.listeners[0].port, 3333);
    assert.deepStrictEqual(flag.warnings, ['FYNTR_PORT is ignored: --port is given']);
    // An empty variable is unset, as for LEGATO_ ones.
    assert.deepStrictEqual(parse([], { FYNTR_PORT: '' }).warnings, []);
    // serve takes its settings from the file: Fyntr variables are not looked at.
    assert.deepStrictEqual(cli.parseArgs(['serve', 'x.json'], { FYNTR_PORT: '1', FYNTR_THREAT_ACTION: 'block' }).warnings, []);
  });

  it('a Fyntr user switches by changing the command: FYNTR_* start a working proxy, warnings name the new variables', async () => {
    const echo = await startEchoServer();
    const env = {
      FYNTR_BIND: '127.0.0.1', FYNTR_PORT: '0', FYNTR_MAX_CONNECTIONS: '10', FYNTR_IDLE_TIMEOUT: '300',
      FYNTR_ALLOW_PORT: String(echo.port), FYNTR_ALLOW_CIDR: '127.0.0.1/32',
    };
    const h = await startCli([], { env });
    const t = await openTunnel(h.port, `127.0.0.1:${echo.port}`);
    assert.strictEqual(t.head, ESTABLISHED);
    t.socket.destroy();
    const warnings = h.lines().filter((l) => /Fyntr variable/.test(l)).map((l) => l.replace(/^\S+ (?=legato: )/, ''));
    assert.deepStrictEqual(warnings.sort(), Object.keys(env).map((k) => `legato: warning: ${k} is a Fyntr variable: use ${k.replace('FYNTR_', 'LEGATO_')} (it works the same here)`).sort());
    h.child.kill('SIGTERM');
    await h.exited;
  });

  it('Fyntr variables legato cannot honour (SOCKS5, threat feeds) are refused, exit 2', async () => {
    for (const [name, value, why] of [
      ['FYNTR_SOCKS5_PORT', '1080', 'legato has no SOCKS5 listener'],
      ['FYNTR_SOCKS5_BIND', '127.0.0.1', 'legato has no SOCKS5 listener'],
      ['FYNTR_THREAT_FEED_FILE', '/etc/feed.txt', 'legato does not read threat feeds (use --deny-cidr for addresses)'],
      ['FYNTR_THREAT_ACTION', 'block', 'legato does not read threat feeds (use --deny-cidr for addresses)'],
    ]) {
      const h = spawnCli(['--port', '0'], { env: { [name]: value } });
      assert.strictEqual((await h.exited).code, 2, name);
      assert.deepStrictEqual(h.lines(), [`legato: ${name} cannot be honoured: ${why}; unset it`]);
    }
  });

  it('FYNTR_ALLOW_DOMAIN is ignored with a warning; LEGATO_ALLOW_DOMAIN is an allowlist', async () => {
    const echo = await startEchoServer();
    const base = ['--port', '0', '--allow-cidr', '127.0.0.1', '--allow-port', String(echo.port)];
    const fyntr = await startCli(base, { env: { FYNTR_ALLOW_DOMAIN: 'example.com' } });
    assert.match(fyntr.stderr(), /^(?:\S+ )?legato: warning: FYNTR_ALLOW_DOMAIN is not needed and is ignored: legato already lets every domain whose DNS answer mixes public and internal addresses proceed with the public ones \(LEGATO_ALLOW_DOMAIN means something else: only the listed domains may be reached\)$/m);
    const t = await openTunnel(fyntr.port, `localhost:${echo.port}`);
    assert.strictEqual(t.head, ESTABLISHED, 'other domains stay reachable, as with Fyntr');
    t.socket.destroy();

    const legato = await startCli(base, { env: { LEGATO_ALLOW_DOMAIN: 'example.com' } });
    assert.strictEqual((await request(legato.port, `CONNECT localhost:${echo.port} HTTP/1.1\r\n\r\n`, { endAfterWrite: true })).status, 403, 'an allowlist');
    fyntr.child.kill('SIGTERM');
    legato.child.kill('SIGTERM');
    await Promise.all([fyntr.exited, legato.exited]);
  });

  describe('a name whose DNS answer mixes allowed and denied addresses, without any allowDomains (private /etc/hosts)', () => {
    before(function () {
      if (!canUseMountNamespace()) {
        // eslint-disable-next-line no-console
        console.log('      (skipped: needs root for unshare --mount and mount --bind over /etc/hosts)');
        this.skip();
      }
    });

    it('proceeds with the allowed address (what Fyntr does only for --allow-domain names)', async () => {
      const origin = await startEchoServer({ host: '127.0.0.2' });
      const decoy = net.createServer((s) => { decoy.hits++; s.destroy(); });
      decoy.hits = 0;
      await new Promise((resolve, reject) => { decoy.once('error', reject); decoy.listen(origin.port, '127.0.0.1', resolve); });
      track(decoy, (d) => new Promise((r) => d.close(() => r())), 3);
      const proxy = await startNamespacedProxy(['127.0.0.1 mixed.legato.test', '127.0.0.2 mixed.legato.test', '127.0.0.1 localhost', ''].join('\n'), {
        workerThreads: 1,
        listeners: [{ kind: 'connect', host: '127.0.0.1', port: 0, connect: { allowPorts: [origin.port], denyCidrs: ['127.0.0.1/32'] } }],
      });
      const t = await openTunnel(proxy.port, `mixed.legato.test:${origin.port}`);
      assert.strictEqual(t.head, ESTABLISHED);
      const echoed = new Promise((resolve) => t.socket.once('data', (d) => resolve(d.toString())));
      t.socket.write('reached');
      assert.strictEqual(await echoed, 'reached');
      t.socket.end();
      assert.strictEqual(decoy.hits, 0, 'the denied address was never dialled');
      const m = (await proxy.metrics()).listeners[0];
      assert.strictEqual(m.status200, 1);
      assert.strictEqual(m.refusedAddress, 0);
    });
  });
});
