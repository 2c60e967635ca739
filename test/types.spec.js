'use strict';
// Type-checks index.d.ts against test/types/check.ts (typical use, plus @ts-expect-error lines
// that pin what the types refuse). Fails if the declarations drift from the API they describe.
const { execFileSync } = require('child_process');
const path = require('path');

describe('index.d.ts', function () {
  this.timeout(60000);
  it('type-checks typical use under --strict', () => {
    const root = path.join(__dirname, '..');
    const tsc = path.join(root, 'node_modules', 'typescript', 'bin', 'tsc');
    execFileSync(process.execPath, [tsc, '--noEmit', '--strict', '--target', 'es2022', '--module', 'commonjs',
      path.join(__dirname, 'types', 'check.ts')], { cwd: root, stdio: 'pipe' });
  });
});
