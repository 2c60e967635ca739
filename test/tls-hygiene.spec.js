'use strict';
// TLS termination hygiene (issue 3, part 3), with real clients where one exists:
//
//  - renegotiation (TLS 1.2, `openssl s_client -tls1_2` then a line `R`): the connection is
//    closed and counted `tlsRenegotiationsRefused`;
//  - TLS 1.3 KeyUpdate (`openssl s_client -tls1_3`, lines `K` = update_requested and `k`): a rate,
//    LG_TLS_MAX_KEYUPDATES (64) within LG_TLS_KEYUPDATE_WINDOW_MS (1 s) are honoured, the 65th
//    within the window closes the connection (`tlsKeyUpdateFloods`); 3 × 40 spread over more than
//    2 s (more than 64 in the connection's life, never more than 64 per second) are honoured;
//  - the SNI OpenSSL negotiated must equal the one the router used: a hand-made TLS 1.3 client
//    (fixtures/tls-hrr.js) forces a HelloRetryRequest and names another tenant in its second
//    ClientHello → closed, `tlsSniMismatches`, nothing reaches the upstream;
//  - empty TLS 1.3 records (sealed by hand with the client's key) are not activity for the idle
//    timer.

const assert = require('assert');
const { startProxy, portOf } = require('./helpers/proxy');
const { waitFor, waitForMetric, sleep } = require('./helpers/wait');
const T = require('./fixtures/tls-tools');
const { handshakeWithRetry } = require('./fixtures/tls-hrr');
const crypto = require('crypto');
const net = require('net');
const tls = require('tls');
const { once } = require('events');
const { captureClientHello } = require('./helpers/hello');
const { trackSocket } = require('./helpers/resources');

const MAX_KEYUPDATES = 64; // LG_TLS_MAX_KEYUPDATES

describe('TLS termination hygiene', function () {
  this.timeout(30000);
  const env = T.terminationSuite();
  const { term } = env;
  const { settled } = T;


  async function startA() {
    return startProxy({ routes: [term('a.test', env.pki.leaves.a), term('b.test', env.pki.leaves.b)] });
  }

  /** An interactive s_client on a.test, past its handshake. */
  async function interactive(port, version) {
    const s = T.sClient(port, ['-servername', 'a.test', '-CAfile', env.pki.caPath, '-verify_return_error', version]);
    await s.waitOutput(/Verify return code: 0 \(ok\)/);
    return s;
  }


  describe('renegotiation', function () {
    it('closes a TLS 1.2 connection whose client asks to renegotiate (s_client R)', async function () {
      const proxy = await startA();
      const s = await interactive(portOf(proxy), '-tls1_2');
      s.write('GET /before HTTP/1.1\r\nHost: a.test\r\n\r\n');
      await s.waitOutput(/url=\/before /);
      s.write('R\n');
      await s.waitOutput(/RENEGOTIATING/);
      const { code } = await s.exited; // the proxy closed the connection: s_client ends on its own
      assert.notStrictEqual(code, 0, s.out());
      assert.match(s.out(), /no renegotiation|unexpected eof|closed/i);
      const m = await waitForMetric(proxy, 'tlsRenegotiationsRefused', 1);
      assert.strictEqual(m.listeners[0].tlsRenegotiationsRefused, 1);
      assert.strictEqual(m.tlsHandshakes, 1, 'no second handshake was completed');
      await waitFor(() => env.up.connections.length === 1);
      await env.up.connections[0].closed; // and the upstream side is closed with it
      await settled(proxy, 1);
    });

    it('advertises secure renegotiation (RFC 5746) to TLS 1.2 clients while refusing every attempt', async function () {
      // OpenSSL always sends renegotiation_info (RFC 5746) so old clients can tell the server is
      // not vulnerable; SSL_OP_NO_RENEGOTIATION then refuses every attempt. s_client reports it
      // as "Secure Renegotiation IS supported": what matters is that R above is refused.
      const proxy = await startA();
      const s = await T.runSClient(portOf(proxy), ['-servername', 'a.test', '-tls1_2', '-ign_eof'], { input: 'GET / HTTP/1.0\r\n\r\n' });
      assert.match(s.out, /Secure Renegotiation IS supported/);
      assert.match(s.out, /up method=GET/);
    });
  });

  describe('TLS 1.3 KeyUpdate', function () {
    /** Send `n` KeyUpdate commands, each only after s_client has processed the previous one. */
    async function keyUpdates(s, letter, n) {
      const before = s.count(/KEYUPDATE/);
      for (let i = 1; i <= n; i++) {
        s.write(`${letter}\n`);
        await s.waitCount(/KEYUPDATE/, before + i, 5000);
      }
    }

    it('honours a handful of KeyUpdates and keeps serving', async function () {
      const proxy = await startA();
      const s = await interactive(portOf(proxy), '-tls1_3');
      await keyUpdates(s, 'K', 3);
      await keyUpdates(s, 'k', 6);
      s.write('GET /after-updates HTTP/1.0\r\n\r\n');
      await s.waitOutput(/url=\/after-updates /);
      const { code } = await s.exited;
      assert.strictEqual(code, 0, s.out());
      const m = await settled(proxy, 1);
      assert.strictEqual(m.tlsKeyUpdateFloods, 0);
      assert.strictEqual(m.tlsErrors, 0);
    });

    it(`honours exactly ${MAX_KEYUPDATES} KeyUpdates on one connection`, async function () {
      const proxy = await startA();
      const s = await interactive(portOf(proxy), '-tls1_3');
      await keyUpdates(s, 'K', MAX_KEYUPDATES);
      s.write('GET /at-limit HTTP/1.0\r\n\r\n');
      await s.waitOutput(/url=\/at-limit /);
      await s.exited;
      const m = await settled(proxy, 1);
      assert.strictEqual(m.tlsKeyUpdateFloods, 0);
    });

    it('never cuts a connection that rekeys in bursts of 40 spread over seconds (a rate, not a lifetime count)', async function () {
      const proxy = await startA();
      const s = await interactive(portOf(proxy), '-tls1_3');
      for (let burst = 0; burst < 3; burst++) {
        if (burst > 0) await new Promise((r) => setTimeout(r, 1300)); // past the 1 s window
        await keyUpdates(s, 'K', 40);
      }
      assert.strictEqual(s.count(/KEYUPDATE/), 120);
      s.write('GET /after-120-updates HTTP/1.0\r\n\r\n');
      await s.waitOutput(/url=\/after-120-updates /);
      await s.exited;
      const m = await settled(proxy, 1);
      assert.strictEqual(m.tlsKeyUpdateFloods, 0);
      assert.strictEqual(m.tlsErrors, 0);
    });

    for (const letter of ['K', 'k']) {
      it(`closes the connection at KeyUpdate ${MAX_KEYUPDATES + 1} (70 lines of '${letter}') and counts the flood`, async function () {
        const proxy = await startA();
        const s = await interactive(portOf(proxy), '-tls1_3');
        for (let i = 1; i <= 70 && s.child.exitCode === null; i++) {
          s.write(`${letter}\n`);
          try {
            await s.waitCount(/KEYUPDATE/, i, 5000);
          } catch (_) {
            break; // s_client exited: the proxy closed the connection
          }
        }
        await s.exited;
        assert.ok(s.count(/KEYUPDATE/) > MAX_KEYUPDATES, `only ${s.count(/KEYUPDATE/)} KeyUpdates were sent`);
        const m = await waitForMetric(proxy, 'tlsKeyUpdateFloods', 1);
        assert.strictEqual(m.listeners[0].tlsKeyUpdateFloods, 1);
        assert.strictEqual(m.tlsTruncations, 0, 'the proxy closed, not the client');
        await settled(proxy, 1);
      });
    }
  });

  describe('SNI after a HelloRetryRequest', function () {
    it('serves a retried handshake whose second ClientHello keeps the SNI (control)', async function () {
      const proxy = await startA();
      const r = await handshakeWithRetry(portOf(proxy), { sni1: 'a.test', request: 'GET /same HTTP/1.0\r\n\r\n' });
      assert.strictEqual(r.hrr, true, 'the server sent a HelloRetryRequest');
      assert.strictEqual(r.serverFinished, true);
      assert.match(r.appData.toString(), /up method=GET url=\/same /);
      const m = await settled(proxy, 1);
      assert.strictEqual(m.tlsHandshakes, 1);
      assert.strictEqual(m.tlsSniMismatches, 0);
    });

    it('closes a connection whose second ClientHello names another tenant, before any byte reaches the upstream', async function () {
      const proxy = await startA();
      const r = await handshakeWithRetry(portOf(proxy), { sni1: 'a.test', sni2: 'b.test', request: 'GET /switched HTTP/1.0\r\n\r\n' });
      assert.strictEqual(r.hrr, true);
      assert.strictEqual(r.appData.length, 0, 'no application data came back');
      assert.notStrictEqual(r.closed, 'timeout', 'the proxy closed the connection');
      const m = await waitForMetric(proxy, 'tlsSniMismatches', 1);
      assert.strictEqual(m.listeners[0].tlsSniMismatches, 1);
      assert.strictEqual(m.tlsHandshakes, 0, 'not counted as a completed handshake');
      await settled(proxy, 1);
      assert.deepStrictEqual(env.up.requests, [], 'the upstream got no request');
    });
  });
  describe('TLS 1.3 records after the handshake (legato\'s own record layer, src/lg_rec.c)', function () {
    // After a TLS 1.3 handshake the connection's records are no longer OpenSSL's: a forged
    // record must still be caught by its tag, answered with a fatal bad_record_mac alert the
    // client reports, counted, and nothing of it may reach the upstream.
    it('answers a forged record with bad_record_mac, counts tlsErrors, forwards nothing of it; other connections are served', async function () {
      const proxy = await startA();
      const port = portOf(proxy);
      const raw = trackSocket(net.connect(port, '127.0.0.1'));
      const t = tls.connect({ socket: raw, servername: 'a.test', ca: env.pki.ca });
      await once(t, 'secureConnect');
      assert.strictEqual(t.getProtocol(), 'TLSv1.3');
      let got = '';
      t.on('data', (d) => { got += d; });
      t.write('GET /first HTTP/1.1\r\nHost: a.test\r\n\r\n');
      await waitFor(() => /url=\/first /.test(got));
      const failed = new Promise((resolve) => {
        t.once('error', resolve);
        t.once('close', () => resolve(null));
      });
      // A record of the right shape whose tag cannot verify, written under the TLS socket.
      raw.write(Buffer.concat([Buffer.from([23, 3, 3, 0, 40]), crypto.randomBytes(40)]));
      const err = await failed;
      assert.ok(err, 'the client saw an error');
      assert.match(`${err.code} ${err.message}`, /BAD_RECORD_MAC|bad record mac/i);
      const m = await waitForMetric(proxy, 'tlsErrors', 1);
      assert.strictEqual(m.listeners[0].tlsErrors, 1);
      assert.deepStrictEqual(env.up.requests.map((r) => r.url), ['/first']);
      const r = await T.httpsRequest(port, 'a.test', { ca: env.pki.ca, path: '/after' });
      assert.match(r.body, /url=\/after /);
      await settled(proxy, 2);
      await proxy.stop({ graceMs: 0 });
    });
  });

  describe('the idle timer of a terminated connection', function () {
    // Pins: a record that carries nothing (empty application data) is not activity. It used to
    // refresh the idle timer like any byte read, so one 22-byte record per idle period held the
    // connection and its upstream open forever (the run bound of 32 empty records resets at every
    // byte of data). The records are sealed by hand with the client's key (from 'keylog'): Node
    // never sends an empty record.
    it('closes a TLS 1.3 client that sends only empty records at the idle timeout (idleTimeouts, no tlsErrors)', async function () {
      const proxy = await startProxy({ listener: { idleTimeoutMs: 600 }, routes: [term('a.test', env.pki.leaves.a)] });
      const raw = trackSocket(net.connect(portOf(proxy), '127.0.0.1'));
      let secret = null;
      const t = tls.connect({ socket: raw, servername: 'a.test', ca: env.pki.ca, minVersion: 'TLSv1.3', ciphers: 'TLS_AES_128_GCM_SHA256' });
      t.on('keylog', (line) => {
        const m = /^CLIENT_TRAFFIC_SECRET_0 \S+ (\S+)/.exec(line.toString());
        if (m) secret = Buffer.from(m[1], 'hex');
      });
      t.on('error', () => {});
      await once(t, 'secureConnect');
      let got = '';
      t.on('data', (d) => { got += d; });
      let open = true;
      t.once('close', () => { open = false; });
      t.write('GET /first HTTP/1.1\r\nHost: a.test\r\n\r\n'); // record 0 under the client's key
      await waitFor(() => /url=\/first /.test(got));
      const seal = T.recordSealer(secret, 1);
      // Control: a hand-sealed record with data is served, so the empty ones below are valid.
      raw.write(seal(Buffer.from('GET /sealed HTTP/1.1\r\nHost: a.test\r\n\r\n')));
      await waitFor(() => /url=\/sealed /.test(got));
      // One empty record every 150 ms for up to 3 s (20 records, under the run bound of 32):
      // the idle timer (600 ms) must still fire.
      for (let i = 0; i < 20 && open; i++) {
        raw.write(seal(Buffer.alloc(0)));
        await sleep(150);
      }
      assert.strictEqual(open, false, 'the connection outlived the empty records: they held it open');
      const m = await waitForMetric(proxy, 'idleTimeouts', 1, 5000, { listener: 0 });
      assert.strictEqual(m.listeners[0].idleTimeouts, 1);
      assert.strictEqual(m.listeners[0].tlsErrors, 0, 'the empty records were valid');
      assert.deepStrictEqual(env.up.requests.map((r) => r.url), ['/first', '/sealed']);
    });
  });

  describe('a record that trickles in', function () {
    // A record still arriving is activity: the bytes of a large record sent slowly (a poor
    // link) must not be cut off at idleTimeoutMs while they keep coming. The client's TLS bytes
    // go through a pipe that lets 16 bytes through every 50 ms once the handshake is done.
    for (const version of ['TLSv1.2', 'TLSv1.3']) {
      it(`${version}: a 300-byte request sent over ~1 s with idleTimeoutMs 600 is relayed, not closed as idle`, async function () {
        const { Duplex } = require('stream');
        const proxy = await startProxy({ listener: { idleTimeoutMs: 600 }, routes: [term('a.test', env.pki.leaves.a)] });
        const raw = trackSocket(net.connect(portOf(proxy), '127.0.0.1'));
        raw.setNoDelay(true);
        let slow = false;
        let pending = Buffer.alloc(0);
        let timer = null;
        const drip = () => {
          timer = null;
          if (pending.length === 0) return;
          raw.write(pending.subarray(0, 16));
          pending = pending.subarray(16);
          timer = setTimeout(drip, 50);
        };
        const pipe = new Duplex({
          read() {},
          write(chunk, enc, cb) {
            if (!slow) {
              raw.write(chunk, cb);
              return;
            }
            pending = Buffer.concat([pending, chunk]);
            if (timer === null) drip();
            cb();
          },
        });
        raw.on('data', (d) => pipe.push(d));
        raw.on('end', () => pipe.push(null));
        raw.on('error', () => {});
        const t = tls.connect({ socket: pipe, servername: 'a.test', ca: env.pki.ca, minVersion: version, maxVersion: version });
        t.on('error', () => {});
        await once(t, 'secureConnect');
        let got = '';
        t.on('data', (d) => { got += d; });
        let open = true;
        raw.once('close', () => { open = false; });
        slow = true;
        const t0 = Date.now();
        t.write(`GET /slow HTTP/1.1\r\nHost: a.test\r\nX-Pad: ${'x'.repeat(240)}\r\n\r\n`);
        await waitFor(() => /url=\/slow /.test(got) || !open, 10000);
        const took = Date.now() - t0;
        if (timer !== null) clearTimeout(timer);
        assert.ok(open, `closed as idle ${took} ms into a record that was still arriving`);
        assert.ok(took > 600, `the request took ${took} ms: not slower than idleTimeoutMs, the test proves nothing`);
        assert.strictEqual(proxy.metrics().listeners[0].idleTimeouts, 0);
        t.destroy();
      });
    }
  });

  describe('clients that reset right after their ClientHello', function () {
    // The server's first flight is written while OpenSSL still holds the ClientHello; with
    // `fifo` that write is synchronous, and when it fails (the client is gone) the connection
    // closes under the handshake code. It must stay closed: no upstream dial, no leak, and
    // stop() must not touch its handles again.
    for (const kind of ['fifo', 'drr']) {
      it(`closes each one exactly once and keeps serving (scheduler ${kind})`, async function () {
        const proxy = await startProxy({ workerThreads: 1, scheduler: { kind }, routes: [term('a.test', env.pki.leaves.a)] });
        const port = portOf(proxy);
        const hello = await captureClientHello('a.test');
        const N = 100;
        for (let i = 0; i < N; i++) {
          await new Promise((resolve) => {
            const s = trackSocket(net.connect(port, '127.0.0.1', () => {
              s.write(hello);
              s.resetAndDestroy();
              resolve();
            }));
            s.on('error', () => {});
          });
        }
        const m = await settled(proxy, N);
        assert.strictEqual(m.totalConnections, N);
        await Promise.all(env.up.connections.map((c) => c.closed)); // any upstream it dialled is closed too
        const r = await T.httpsRequest(port, 'a.test', { ca: env.pki.ca, path: '/after' });
        assert.match(r.body, /url=\/after /);
        await settled(proxy, N + 1);
        await proxy.stop({ graceMs: 0 });
      });
    }
  });
});
