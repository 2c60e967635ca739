#!/usr/bin/env node
'use strict';
// The raw-TCP origin for T1 and S5: one port, the client's first byte picks the behaviour.
//   'S' sink:   count every following byte; on the client's FIN reply `<count>\n` and close.
//   'B' bulk:   stream bytes to the client as fast as it reads, until it closes.
//   'E' echo:   write back every byte received (1 KiB ping-pong for S5).
//   'N' counted sink: `N<count>\n`, then count bytes; reply `<count>\n` once `count` arrived
//               (for proxies that do not propagate a half-close, such as tinyproxy).
//   0x16 (a TLS record: P1's ClientHello): reply `ok\n` at once, read and drop the rest, close
//               after the client's FIN (connection churn without TLS work on the load CPU).
// Prints `ready {"port":N}`. Runs pinned on the load CPU; SIGTERM ends it.

const net = require('net');

const BULK_CHUNK = Buffer.alloc(256 * 1024, 0x61);

const server = net.createServer({ allowHalfOpen: true }, (sock) => {
  sock.setNoDelay(true);
  sock.on('error', () => sock.destroy());
  sock.once('readable', function first() {
    const head = sock.read(1);
    if (head === null) { sock.once('readable', first); return; }
    const mode = String.fromCharCode(head[0]);
    if (head[0] === 0x16) {
      sock.on('data', () => {});
      sock.on('end', () => sock.destroy());
      sock.end('ok\n');
    } else if (mode === 'S') {
      let count = 0;
      sock.on('data', (d) => { count += d.length; });
      sock.on('end', () => sock.end(`${count}\n`));
    } else if (mode === 'B') {
      const pump = () => {
        while (!sock.destroyed && sock.write(BULK_CHUNK)) { /* fill until backpressure */ }
      };
      sock.on('drain', pump);
      sock.on('data', () => {});
      sock.on('end', () => sock.destroy());
      pump();
    } else if (mode === 'N') {
      let want = -1;
      let count = 0;
      let head = '';
      sock.on('data', (d) => {
        if (want < 0) {
          head += d.toString('latin1');
          const i = head.indexOf('\n');
          if (i < 0) return;
          want = Number(head.slice(0, i));
          count = head.length - i - 1;
        } else {
          count += d.length;
        }
        if (count >= want) sock.end(`${count}\n`);
      });
      sock.on('end', () => sock.end());
    } else if (mode === 'E') {
      sock.on('data', (d) => sock.write(d));
      sock.on('end', () => sock.end());
    } else {
      sock.destroy();
    }
  });
});
server.listen({ host: '127.0.0.1', port: Number(process.argv[2] || 0), backlog: 4096 }, () => {
  process.stdout.write(`ready ${JSON.stringify({ port: server.address().port })}\n`);
});
process.on('SIGTERM', () => process.exit(0));
