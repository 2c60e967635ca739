#!/usr/bin/env node
'use strict';
// The legato peer process: a minimal Node script around the addon, so that the whole process's
// CPU and RSS (Node runtime included) are what the benchmark measures.
//
//   node bench/peers/legato-proxy.js config.json   → prints `ready {"ports":[...],"addon":...}`
//
// config.json is a legato config as given to `new Proxy()`. Commands on stdin, one a line:
//   metrics → prints `metrics {...}` (proxy.metrics())
// SIGTERM/SIGINT or stdin EOF: proxy.stop() and exit.

const fs = require('fs');
const path = require('path');

const root = process.env.LEGATO_ROOT || path.resolve(__dirname, '..', '..');
const { Proxy } = require(root);

async function main() {
  const config = JSON.parse(fs.readFileSync(process.argv[2], 'utf8'));
  const proxy = new Proxy(config);
  proxy.on('error', (err) => process.stderr.write(`legato error: ${err && err.message}\n`));
  proxy.on('warning', (w) => process.stderr.write(`legato warning: ${w && w.message}\n`));
  await proxy.start();
  let stopping = false;
  const stop = async () => {
    if (stopping) return;
    stopping = true;
    const t = setTimeout(() => process.exit(1), 5000);
    try { await proxy.stop(); } finally { clearTimeout(t); process.exit(0); }
  };
  process.on('SIGTERM', stop);
  process.on('SIGINT', stop);
  process.stdout.write(`ready ${JSON.stringify({ ports: proxy.addresses().map((a) => a.port) })}\n`);
  let acc = '';
  process.stdin.setEncoding('utf8');
  process.stdin.on('data', (d) => {
    acc += d;
    let i;
    while ((i = acc.indexOf('\n')) >= 0) {
      const line = acc.slice(0, i).trim();
      acc = acc.slice(i + 1);
      if (line === 'metrics') process.stdout.write(`metrics ${JSON.stringify(proxy.metrics())}\n`);
    }
  });
  process.stdin.on('end', stop);
}

main().catch((err) => {
  process.stderr.write(`legato-proxy: ${err && err.stack}\n`);
  process.exit(1);
});
