'use strict';
// legato: the public entry point. See README.md and index.d.ts for the API.
const { Proxy } = require('./proxy');
const { metricsText } = require('./prometheus');

module.exports = { Proxy, metricsText };
