'use strict';
// README.md (issue 15, point 2): the Quick start block runs as pasted (with its port set to 0 so
// the test needs no free 8443), and every relative link and #anchor in the README leads
// somewhere.

const assert = require('assert');
const fs = require('fs');
const path = require('path');
const { run } = require('./helpers/clients');
const { cleanup } = require('./helpers/proxy');
const { tempDir, writeFile } = require('./helpers/serve');

const ROOT = path.join(__dirname, '..');
const README = fs.readFileSync(path.join(ROOT, 'README.md'), 'utf8');

/** The first ```js block after a heading. */
function codeBlockAfter(heading) {
  const at = README.indexOf(`\n${heading}\n`);
  assert(at >= 0, `README has no '${heading}'`);
  const m = /```js\n([\s\S]*?)```/.exec(README.slice(at));
  assert(m, `no js block after '${heading}'`);
  return m[1];
}

/** GitHub's anchor for a heading. */
function slug(heading) {
  return heading.trim().toLowerCase().replace(/[^\p{L}\p{N}\- _]/gu, '').replace(/ /g, '-');
}

describe('README.md', function () {
  this.timeout(30000);
  afterEach(cleanup);

  it('the Quick start runs as pasted (CommonJS, no top-level await)', async () => {
    const code = codeBlockAfter('## Quick start');
    assert.match(code, /require\('legato'\)/);
    assert(!/^await /m.test(code), 'no top-level await in a CommonJS snippet');
    assert(code.includes('listeners: [{ port: 8443 }]'), 'the listener port');
    const dir = tempDir('legato-readme-');
    // As a user's script: `require('legato')` resolves to this package through node_modules.
    fs.mkdirSync(path.join(dir, 'node_modules'));
    fs.symlinkSync(ROOT, path.join(dir, 'node_modules', 'legato'));
    const file = writeFile(dir, 'quickstart.js', code.replace('listeners: [{ port: 8443 }]', 'listeners: [{ port: 0 }]'));
    const r = await run(process.execPath, [file], { encoding: 'utf8', env: process.env, timeoutMs: 20000 });
    assert.strictEqual(r.code, 0, r.stderr);
    assert.strictEqual(r.stderr, '');
    const lines = r.stdout.trim().split('\n');
    assert.match(lines[0], /^\[ \{ kind: 'tls', host: '0\.0\.0\.0', port: [1-9]\d* \} \]$/);
    assert.strictEqual(lines[1], '0');
  });

  it('has no dead links: relative files exist, #anchors match headings', () => {
    const anchors = new Set();
    let inCode = false;
    for (const line of README.split('\n')) {
      if (line.startsWith('```')) inCode = !inCode;
      const m = !inCode && /^#{1,6} (.*)$/.exec(line);
      if (m) anchors.add(slug(m[1]));
    }
    const links = [...README.matchAll(/\]\(([^)\s]+)\)/g)].map((m) => m[1]);
    assert(links.length > 10);
    for (const link of links) {
      if (/^[a-z]+:/.test(link)) continue;
      const [file, anchor] = link.split('#');
      if (file) assert(fs.existsSync(path.join(ROOT, file)), `README links to ${file}, which does not exist`);
      if (anchor !== undefined && !file) assert(anchors.has(anchor), `README links to #${anchor}, which no heading has`);
    }
  });
});
