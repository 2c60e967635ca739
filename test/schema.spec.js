'use strict';
// schema/legato.schema.json (issue 15, point 3): compiled by ajv (strict); it accepts the
// examples and realistic configs and rejects obvious mistakes — and for every sample, legato's
// own validation (the file loader plus `new Proxy()`, what `legato serve --check` runs) agrees.
// A probe checks that every option the schema offers is one lib/config.js knows, so the schema
// cannot advertise an option legato would refuse as unknown.

const assert = require('assert');
const fs = require('fs');
const path = require('path');
const Ajv = require('ajv');
const jsonc = require('jsonc-parser');
const YAML = require('yaml');
const { Proxy } = require('..');
const { loadServeConfig, validate } = require('../lib/configfile');
const { cleanup } = require('./helpers/proxy');
const { tempDir, writeFile, copyCerts } = require('./helpers/serve');

const ROOT = path.join(__dirname, '..');
const SCHEMA = JSON.parse(fs.readFileSync(path.join(ROOT, 'schema', 'legato.schema.json'), 'utf8'));

const tcp = (port) => ({ kind: 'tcp', host: '127.0.0.1', port });

/** legato's verdict on a config object written to dir: null (valid) or the message. */
function legatoVerdict(dir, name, config) {
  const file = writeFile(dir, name, config);
  try {
    const proxy = validate(loadServeConfig(file), Proxy);
    proxy.stop();
    return null;
  } catch (err) {
    return err.message;
  }
}

describe('schema/legato.schema.json', () => {
  let ajvValidate;
  let dir;
  let files;
  before(() => {
    const ajv = new Ajv({ allErrors: true, strict: true, strictRequired: false });
    ajvValidate = ajv.compile(SCHEMA);
  });
  beforeEach(() => {
    dir = tempDir();
    files = copyCerts(dir);
  });
  afterEach(cleanup);

  it('accepts the examples and realistic configs (and so does legato)', () => {
    const edge = jsonc.parse(fs.readFileSync(path.join(ROOT, 'examples', 'edge', 'legato.jsonc'), 'utf8'), [], { allowTrailingComma: true });
    // The example's certificate paths, backed by test certificates here.
    for (const [rel, src] of [['certs/default', files.def], ['certs/shop.example.com', files.a], ['certs/api.tenant-b.example', files.b]]) {
      writeFile(dir, `${rel}.pem`, fs.readFileSync(path.join(dir, src.chain)));
      writeFile(dir, `${rel}.key`, fs.readFileSync(path.join(dir, src.key)));
    }
    writeFile(dir, 'certs/tenant-b-clients-ca.pem', fs.readFileSync(path.join(dir, files.ca)));
    const samples = {
      'examples/edge/legato.jsonc': edge,
      'connect only': { listeners: [{ kind: 'connect', port: 3128, maxConnections: 4096, connect: { allowPorts: [443, 9418], denyCidrs: ['198.18.0.0/15'], allowDomains: ['github.com'] } }] },
      'yaml edge': YAML.parse([
        'admin: { path: admin.sock }',
        'statusFile: status.json',
        'workerThreads: 2',
        'readBufferSize: 16384',
        'scheduler: { kind: drr, quantum: auto, maxQueuedBytesPerFlow: 524288 }',
        'protection: { tlsHandshakeTimeoutMs: 3000, ja3Blocklist: [E7D705A3286E19EA42F587B344EE6865], ja4Blocklist: [T13D1516H2_8daaf6152771_e5627efa2ab1, ts3i010000_000000000000_000000000000] }',
        'listeners:',
        '  - host: "::"',
        '    port: 8443',
        `    mtls: { clientCaCertFile: ${files.ca}, requireClientCert: false }`,
        `    defaultCert: { certChainFile: ${files.def.chain}, privateKeyFile: ${files.def.key} }`,
        'routes:',
        '  - sni: "*.b.test"',
        '    terminateTls: true',
        '    alpn: [h2, http/1.1]',
        '    upstreams: [{ kind: uds, path: /run/app.sock }]',
        '  - sni: ""',
        '    upstreams: [{ kind: tcp, host: backend.internal, port: 443 }]',
        '',
      ].join('\n')),
      'inline PEM': {
        listeners: [{ port: 443 }],
        routes: [{ sni: 'a.test', terminateTls: true, cert: { certChain: fs.readFileSync(path.join(dir, files.a.chain), 'utf8'), privateKey: fs.readFileSync(path.join(dir, files.a.key), 'utf8') }, upstreams: [tcp(8080)] }],
      },
    };
    for (const [name, config] of Object.entries(samples)) {
      assert(ajvValidate(config), `${name}: ${JSON.stringify(ajvValidate.errors, null, 1)}`);
      // backend.internal does not resolve here: legato resolves upstream names at load.
      const forLegato = JSON.parse(JSON.stringify(config).replace('backend.internal', '127.0.0.1'));
      assert.strictEqual(legatoVerdict(dir, `${name.replace(/\W/g, '_')}.json`, forLegato), null, name);
    }
  });

  it('rejects obvious mistakes (and so does legato)', () => {
    const base = () => ({ listeners: [{ port: 443 }], routes: [{ sni: 'a.test', upstreams: [tcp(8080)] }] });
    const cases = {
      'misspelled route key': (c) => { c.routes[0].snii = 'x'; },
      'port as a string': (c) => { c.listeners[0].port = '443'; },
      'port out of range': (c) => { c.listeners[0].port = 70000; },
      'unknown listener kind': (c) => { c.listeners[0].kind = 'http'; },
      'no listeners': (c) => { c.listeners = []; },
      'upstream without port': (c) => { delete c.routes[0].upstreams[0].port; },
      'upstream kind missing': (c) => { delete c.routes[0].upstreams[0].kind; },
      'both certChain and certChainFile': (c) => { c.routes[0].terminateTls = true; c.routes[0].cert = { certChain: '-----BEGIN CERTIFICATE-----', certChainFile: files.a.chain, privateKeyFile: files.a.key }; },
      'certificate without key': (c) => { c.routes[0].terminateTls = true; c.routes[0].cert = { certChainFile: files.a.chain }; },
      'suspended route': (c) => { c.routes[0].suspended = true; },
      'connect options on a tls listener': (c) => { c.listeners[0].connect = { allowPorts: [22] }; },
      'defaultCert on a connect listener': (c) => { c.listeners.push({ kind: 'connect', port: 3128, defaultCert: { certChainFile: files.a.chain, privateKeyFile: files.a.key } }); },
      'unknown scheduler kind': (c) => { c.scheduler = { kind: 'wfq' }; },
      'admin with path and port': (c) => { c.admin = { path: 'a.sock', port: 9100 }; },
      'admin port out of range': (c) => { c.admin = { port: -1 }; },
      'scheduler weight (not an option)': (c) => { c.scheduler = { weight: 2 }; },
      'unknown top-level key': (c) => { c.listener = []; },
      'workerThreads 0': (c) => { c.workerThreads = 0; },
      'workerPriority unknown': (c) => { c.workerPriority = 'high'; },
      'sni with a space': (c) => { c.routes[0].sni = 'a test'; },
      'a QUIC ja4 fingerprint': (c) => { c.protection = { ja4Blocklist: ['q13d0310h3_55b375c5d22e_cd85d2d88918'] }; },
    };
    for (const [name, mutate] of Object.entries(cases)) {
      const config = base();
      mutate(config);
      assert(!ajvValidate(config), `the schema accepts: ${name}`);
      assert.notStrictEqual(legatoVerdict(dir, 'bad.json', config), null, `legato accepts: ${name}`);
    }
  });

  it('offers only options lib/config.js knows (a probe per property)', () => {
    const defs = SCHEMA.definitions;
    // Where each object of the schema sits in a config, and a config holding it.
    const tls = () => ({ listeners: [{ port: 0 }], routes: [{ sni: 'a.test', upstreams: [tcp(1)] }] });
    const connect = () => ({ listeners: [{ kind: 'connect', port: 0 }] });
    const places = [
      [SCHEMA.properties, tls, (c) => c, ['$schema', 'admin', 'statusFile', 'log']],
      [defs.listener.properties, tls, (c) => c.listeners[0], []],
      [defs.connect.properties, connect, (c) => { c.listeners[0].connect = {}; return c.listeners[0].connect; }, []],
      [defs.route.properties, tls, (c) => c.routes[0], []],
      [defs.cert.properties, tls, (c) => { c.routes[0].cert = {}; return c.routes[0].cert; }, ['certChainFile', 'privateKeyFile']],
      [defs.mtls.properties, tls, (c) => { c.routes[0].mtls = {}; return c.routes[0].mtls; }, ['clientCaCertFile']],
      [defs.protection.properties, tls, (c) => { c.protection = {}; return c.protection; }, []],
      [SCHEMA.properties.scheduler.properties, tls, (c) => { c.scheduler = {}; return c.scheduler; }, []],
      [defs.upstream.oneOf[0].properties, tls, (c) => c.routes[0].upstreams[0], []],
      [defs.upstream.oneOf[1].properties, tls, (c) => { c.routes[0].upstreams[0] = { kind: 'uds', path: '/x' }; return c.routes[0].upstreams[0]; }, []],
    ];
    let probed = 0;
    for (const [props, make, at, serveOnly] of places) {
      for (const key of Object.keys(props)) {
        if (serveOnly.includes(key) || key === 'kind') continue;
        const config = make();
        // A value of no option's type: a known option is then judged by its value, an unknown
        // one is reported as unknown.
        at(config)[key] = Symbol('probe');
        let message = '';
        try { new Proxy(config); } catch (err) { message = err.message; }
        assert(message !== '', `'${key}' accepted a Symbol`);
        assert(!message.includes(`unknown option '${key}'`), `the schema offers '${key}', which lib/config.js does not know: ${message}`);
        probed++;
      }
    }
    assert(probed > 30, `${probed} options probed`);
  });
});
