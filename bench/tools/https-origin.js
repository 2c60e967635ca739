#!/usr/bin/env node
'use strict';
// Fallback HTTPS origin when nginx is not installed: serves GET /1k and /1m (fixed bodies) over
// keep-alive HTTP/1.1 with the bench certificate, and over plain HTTP on a second port.
//   node https-origin.js cert.pem key.pem [port]   → prints `ready {"port":N,"plainPort":M}`

const fs = require('fs');
const http = require('http');
const https = require('https');

const bodies = { '/1k': Buffer.alloc(1024, 0x61), '/1m': Buffer.alloc(1024 * 1024, 0x62) };
function serve(req, res) {
  const body = bodies[req.url];
  if (!body) { res.writeHead(404); res.end(); return; }
  res.writeHead(200, { 'content-type': 'application/octet-stream', 'content-length': body.length });
  res.end(body);
}
const server = https.createServer({
  cert: fs.readFileSync(process.argv[2]),
  key: fs.readFileSync(process.argv[3]),
  keepAliveTimeout: 300000,
}, serve);
// The same files over plain HTTP: the upstream of terminating proxies (S2).
const plain = http.createServer({ keepAliveTimeout: 300000 }, serve);
for (const s of [server, plain]) {
  s.headersTimeout = 300000;
  s.requestTimeout = 0;
  s.maxConnections = 1 << 30;
}
server.listen({ host: '127.0.0.1', port: Number(process.argv[4] || 0), backlog: 4096 }, () => {
  plain.listen({ host: '127.0.0.1', port: 0, backlog: 4096 }, () => {
    process.stdout.write(`ready ${JSON.stringify({ port: server.address().port, plainPort: plain.address().port })}\n`);
  });
});
process.on('SIGTERM', () => process.exit(0));
