'use strict';
// Loads the native addon: a prebuild from prebuilds/ when one matches, else build/Release
// (built from source by `npm install`). LEGATO_ADDON=/path/to/legato.node loads a specific
// build instead; the sanitizer run (test/asan.js) uses it for its ASan/UBSan build.
const path = require('path');

module.exports = process.env.LEGATO_ADDON
  ? require(path.resolve(process.env.LEGATO_ADDON))
  : require('node-gyp-build')(path.join(__dirname, '..'));
