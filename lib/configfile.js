'use strict';

/**
 * lib/configfile.js — reading a `legato serve` config file.
 *
 * Formats: `.yaml` / `.yml` files are YAML 1.2 (one document, unique keys); anything else is
 * JSON with comments and trailing commas (JSONC, as VS Code reads settings.json). Duplicate keys
 * are an error in both. Every error names the file and, where the text has one, the line and
 * column: `legato.jsonc:7:15: listeners[0].port must be an integer 0-65535`.
 *
 * On top of the Proxy config (lib/config.js is the authority on its options) a serve config has:
 *  - `$schema`: ignored (it points editors at schema/legato.schema.json).
 *  - `admin`: `{ host ['127.0.0.1'], port }` or `{ path }`: the admin HTTP endpoint (lib/admin.js);
 *    a relative `path` is relative to the config file's directory.
 *  - `statusFile`: where the status file goes (relative to the config file's directory).
 *  - `log`: `{ format: 'text'|'json', level: 'error'|'warn'|'info'|'debug', access: boolean }`
 *    (lib/service.js Log; the flags --log-format, --log-level and --quiet win over it).
 *  - certificates by path: `certChainFile`, `privateKeyFile`, `clientCaCertFile` wherever
 *    `certChain`, `privateKey`, `clientCaCert` may appear (a listener's `defaultCert` and `mtls`,
 *    a route's `cert` and `mtls`). Relative paths are relative to the config file's directory.
 *    The files are read here, at every load (so a reload picks up renewed certificates), and the
 *    Proxy gets the PEM bytes. Giving both `certChain` and `certChainFile` is an error.
 *  - a route with `suspended: true` is refused: nothing in `legato serve` could resolve it.
 *
 * loadServeConfig() does everything but build the Proxy; validate() builds one (without
 * starting it), so that certificates and keys are parsed and matched by the engine itself.
 */

const crypto = require('crypto');
const fs = require('fs');
const path = require('path');

/** Keys that hold PEM data, and their by-path twins. */
const PEM_KEYS = ['certChain', 'privateKey', 'clientCaCert'];
/** Top-level keys that belong to `legato serve`, not to the Proxy. */
const SERVE_KEYS = ['$schema', 'admin', 'statusFile', 'log'];
const ADMIN_KEYS = ['host', 'port', 'path'];

/** A config file that cannot be used: the message names the file (and line:column). */
class ConfigFileError extends Error {
  /**
   * @param {string} message The full message, starting with the file.
   * @param {string[]} [files] The files read or looked for so far (watched for the next try).
   */
  constructor(message, files = []) {
    super(message);
    this.name = 'ConfigFileError';
    this.code = 'ERR_LEGATO_CONFIG_FILE';
    this.files = files;
  }
}

/**
 * @typedef {{ host: string, port: number } | { path: string }} AdminSpec
 * @typedef {object} LoadedConfig
 * @property {string} file The config file, absolute.
 * @property {object} proxyConfig What `new Proxy()` takes: serve keys removed, certificate
 *   files replaced by their bytes (Buffers).
 * @property {AdminSpec | null} admin
 * @property {string | null} statusFile Absolute.
 * @property {string[]} files Every file read (the config first, then certificates), absolute.
 * @property {string} fingerprint SHA-256 over the files' names and contents, as read.
 * @property {(message: string) => string} describe Prefix a config error message with the
 *   file and the line:column of the option its path names.
 */

/**
 * Read, parse and resolve a serve config file. Does not build the Proxy (see validate()).
 *
 * @param {string} file The config file (relative to the working directory or absolute).
 * @returns {LoadedConfig}
 * @throws {ConfigFileError} For a file that cannot be read or parsed, a bad serve key, a
 *   certificate file that cannot be read, a suspended route.
 */
function loadServeConfig(file) {
  const abs = path.resolve(file);
  const files = [abs];
  let bytes;
  try {
    bytes = fs.readFileSync(abs);
  } catch (err) {
    throw new ConfigFileError(`${abs}: cannot read it: ${err.message}`, files);
  }
  // A byte-order mark (some Windows editors write one) is not part of the document.
  const text = bytes.toString('utf8').replace(/^\uFEFF/, '');
  const doc = /\.ya?ml$/i.test(abs) ? parseYaml(abs, text, files) : parseJsonc(abs, text, files);
  const describe = (message) => {
    const pos = doc.locate(pathOf(message));
    return pos ? `${abs}:${pos.line}:${pos.col}: ${message}` : `${abs}: ${message}`;
  };
  const fail = (message) => { throw new ConfigFileError(describe(message), files); };

  const raw = doc.value;
  checkDepth(raw, abs, files);
  if (!isObject(raw)) throw new ConfigFileError(`${abs}: the config must be an object (a mapping of options), got ${kindOf(raw)}`, files);
  const dir = path.dirname(abs);
  const hash = crypto.createHash('sha256');
  hash.update(`${abs}\0`);
  hash.update(bytes);
  hash.update('\0');

  const proxyConfig = {};
  for (const key of Object.keys(raw)) {
    if (!SERVE_KEYS.includes(key)) define(proxyConfig, key, raw[key]);
  }
  if (has(raw, '$schema') && typeof raw.$schema !== 'string') fail('$schema must be a string');
  const admin = has(raw, 'admin') ? adminSpec(raw.admin, dir, fail) : null;
  let statusFile = null;
  if (has(raw, 'statusFile') && raw.statusFile !== null) {
    if (typeof raw.statusFile !== 'string' || raw.statusFile === '') fail('statusFile must be a non-empty string (a path)');
    statusFile = path.resolve(dir, raw.statusFile);
  }

  const log = has(raw, 'log') && raw.log !== null ? logSpec(raw.log, fail) : {};

  // Certificates by path, wherever they appear (new places the config grows are covered).
  const readPem = (value, at, fileKey) => {
    if (typeof value !== 'string' || value === '') fail(`${at}.${fileKey} must be a non-empty string (a path)`);
    const p = path.resolve(dir, value);
    files.push(p);
    try {
      const pem = fs.readFileSync(p);
      hash.update(`${p}\0`);
      hash.update(pem);
      hash.update('\0');
      return pem;
    } catch (err) {
      return fail(`${at}.${fileKey}: cannot read '${p}': ${err.code || err.message}${err.code === 'ENOENT' ? ' (no such file)' : ''}`);
    }
  };
  const fileKeys = collectFileKeys(raw, '');
  resolveFiles(proxyConfig, '', readPem, fail);

  const routes = proxyConfig.routes;
  if (Array.isArray(routes)) {
    routes.forEach((r, i) => {
      if (isObject(r) && r.suspended === true) {
        fail(`routes[${i}].suspended: a suspended route needs a JavaScript resolveConnection() and cannot be served by 'legato serve'`);
      }
    });
  }

  // Messages from lib/config.js name `...certChain` even when the file said `...certChainFile`:
  // name what the user wrote.
  const describeConfig = (message) => {
    for (const [inline, given] of fileKeys) {
      if (message.startsWith(inline) && /^[ :]/.test(message.slice(inline.length))) {
        return describe(`${given.path} ('${given.value}')${message.slice(inline.length)}`);
      }
      // 'listeners[0].defaultCert: certChain holds no readable PEM certificate'
      const dot = inline.lastIndexOf('.');
      const parent = inline.slice(0, dot);
      const key = inline.slice(dot + 1);
      const word = new RegExp(`\\b${key}\\b`);
      if (message.startsWith(`${parent}: `) && word.test(message)) {
        return describe(message.replace(word, `${key}File ('${given.value}')`));
      }
    }
    return describe(message);
  };

  return { file: abs, proxyConfig, admin, statusFile, log, files, fingerprint: hash.digest('hex'), describe: describeConfig };
}

/**
 * The `log` block: `{ format: 'text'|'json', level: 'error'|'warn'|'info'|'debug', access:
 * boolean }` (access: false = --quiet). The flags --log-format, --log-level and --quiet win.
 * @returns {{ format?: string, level?: string, access?: boolean }}
 */
function logSpec(value, fail) {
  const { LOG_FORMATS, LOG_LEVELS } = require('./service');
  if (!isObject(value)) fail('log must be an object: { format, level, access }');
  for (const key of Object.keys(value)) if (!['format', 'level', 'access'].includes(key)) fail(`log: unknown option '${key}' (log takes format, level and access)`);
  const out = {};
  if (has(value, 'format')) {
    if (!LOG_FORMATS.includes(value.format)) fail(`log.format must be one of ${LOG_FORMATS.join(', ')}`);
    out.format = value.format;
  }
  if (has(value, 'level')) {
    if (!LOG_LEVELS.includes(value.level)) fail(`log.level must be one of ${LOG_LEVELS.join(', ')}`);
    out.level = value.level;
  }
  if (has(value, 'access')) {
    if (typeof value.access !== 'boolean') fail('log.access must be a boolean');
    out.access = value.access;
  }
  return out;
}

/**
 * Build a Proxy from a loaded config without starting it: lib/config.js validates every option
 * and the engine parses and matches every certificate and key. The Proxy is returned unstarted
 * (the caller starts it or stops it).
 *
 * @param {LoadedConfig} loaded
 * @param {typeof import('./proxy').Proxy} Proxy The Proxy class.
 * @returns {import('./proxy').Proxy}
 * @throws {ConfigFileError} For a config error (message with file, line:column and path).
 */
function validate(loaded, Proxy) {
  try {
    return new Proxy(loaded.proxyConfig);
  } catch (err) {
    if (!err || err.code !== 'ERR_LEGATO_CONFIG') throw err;
    throw new ConfigFileError(loaded.describe(err.message), loaded.files);
  }
}

/**
 * SHA-256 over files' names and contents, computed as loadServeConfig computes `fingerprint`
 * (a file that cannot be read counts as '-<errno code>').
 * @param {string[]} files Absolute paths.
 * @returns {string} Hex.
 */
function fingerprint(files) {
  const h = crypto.createHash('sha256');
  for (const f of files) {
    h.update(`${f}\0`);
    try {
      h.update(fs.readFileSync(f));
    } catch (err) {
      h.update(`-${err.code}`);
    }
    h.update('\0');
  }
  return h.digest('hex');
}

/* ------------------------------------------------------------------------------------------ *
 * Parsing.
 * ------------------------------------------------------------------------------------------ */

/**
 * @typedef {{ value: unknown, locate: (path: (string|number)[]) => { line: number, col: number } | null }} ParsedDoc
 */

/** JSON with comments and trailing commas. @returns {ParsedDoc} */
function parseJsonc(file, text, files) {
  const jsonc = require('jsonc-parser');
  const lines = lineStarts(text);
  const at = (offset) => position(lines, offset);
  const errors = [];
  let root;
  try {
    root = jsonc.parseTree(text, errors, { allowTrailingComma: true, disallowComments: false, allowEmptyContent: false });
  } catch (err) {
    throw new ConfigFileError(`${file}: not valid JSON: ${err.message} (nested too deeply?)`, files);
  }
  if (errors.length > 0 || root === undefined) {
    const e = errors[0] || { error: jsonc.ParseErrorCode.ValueExpected, offset: 0 };
    const pos = at(e.offset);
    throw new ConfigFileError(`${file}:${pos.line}:${pos.col}: not valid JSON: ${jsoncMessage(jsonc, e.error, text, e.offset)}`, files);
  }
  const toValue = (node) => {
    switch (node.type) {
      case 'object': {
        const obj = {};
        const seen = new Map();
        for (const prop of node.children || []) {
          const [k, v] = prop.children;
          if (seen.has(k.value)) {
            const pos = at(k.offset);
            const first = at(seen.get(k.value));
            throw new ConfigFileError(`${file}:${pos.line}:${pos.col}: duplicate key '${k.value}' (first at line ${first.line})`, files);
          }
          seen.set(k.value, k.offset);
          define(obj, k.value, v === undefined ? null : toValue(v));
        }
        return obj;
      }
      case 'array':
        return (node.children || []).map(toValue);
      default:
        return node.value;
    }
  };
  let value;
  try {
    value = toValue(root);
  } catch (err) {
    if (err instanceof ConfigFileError) throw err;
    throw new ConfigFileError(`${file}: not valid JSON: ${err.message} (nested too deeply?)`, files);
  }
  return {
    value,
    locate(p) {
      for (let n = p.length; n > 0; n--) {
        const node = jsonc.findNodeAtLocation(root, p.slice(0, n));
        if (node) {
          // Point at the key of a property (where the option is named), else at the value.
          const target = node.parent && node.parent.type === 'property' ? node.parent.children[0] : node;
          return at(target.offset);
        }
      }
      return null;
    },
  };
}

function jsoncMessage(jsonc, code, text, offset) {
  const near = text.slice(offset, offset + 1);
  const got = offset >= text.length ? 'the end of the file' : `'${near === '\n' ? '\\n' : near}'`;
  switch (jsonc.printParseErrorCode(code)) {
    case 'InvalidSymbol': return `unexpected ${got}`;
    case 'InvalidNumberFormat': return 'invalid number';
    case 'PropertyNameExpected': return `expected a property name in double quotes, got ${got}`;
    case 'ValueExpected': return `expected a value, got ${got}`;
    case 'ColonExpected': return `expected ':', got ${got}`;
    case 'CommaExpected': return `expected ',' or a closing bracket, got ${got}`;
    case 'CloseBraceExpected': return `expected '}', got ${got}`;
    case 'CloseBracketExpected': return `expected ']', got ${got}`;
    case 'EndOfFileExpected': return `expected the end of the file after the value, got ${got}`;
    case 'InvalidCommentToken': return 'invalid comment';
    case 'UnexpectedEndOfComment': return 'comment not closed (missing */)';
    case 'UnexpectedEndOfString': return 'string not closed (missing ")';
    case 'UnexpectedEndOfNumber': return 'number not complete';
    case 'InvalidUnicode': return 'invalid \\u escape';
    case 'InvalidEscapeCharacter': return 'invalid escape in a string';
    case 'InvalidCharacter': return 'invalid character in a string (control characters must be escaped)';
    default: return jsonc.printParseErrorCode(code);
  }
}

/** YAML 1.2, one document. @returns {ParsedDoc} */
function parseYaml(file, text, files) {
  const YAML = require('yaml');
  const lineCounter = new YAML.LineCounter();
  const doc = YAML.parseDocument(text, { lineCounter, prettyErrors: false, uniqueKeys: true, version: '1.2' });
  if (doc.errors.length > 0) {
    const e = doc.errors[0];
    const pos = lineCounter.linePos(e.pos[0]);
    const message = e.message.split('\n')[0].replace(/ at line \d+, column \d+:?$/, '');
    throw new ConfigFileError(`${file}:${pos.line}:${pos.col}: not valid YAML: ${message}`, files);
  }
  let value;
  try {
    value = doc.toJS({ maxAliasCount: 1000 });
  } catch (err) {
    throw new ConfigFileError(`${file}: not valid YAML: ${err.message}`, files);
  }
  return {
    value,
    locate(p) {
      for (let n = p.length; n > 0; n--) {
        const sub = p.slice(0, n);
        const node = doc.getIn(sub, true);
        if (node && node.range) {
          // Point at the key of a mapping entry where there is one.
          const parent = n > 1 ? doc.getIn(sub.slice(0, -1), true) : doc.contents;
          const pair = parent && YAML.isMap(parent) ? parent.items.find((it) => it.key && (it.key.value === sub[n - 1] || it.key === sub[n - 1])) : null;
          const offset = pair && pair.key && pair.key.range ? pair.key.range[0] : node.range[0];
          return lineCounter.linePos(offset);
        }
      }
      return null;
    },
  };
}

/** Objects and arrays nested at most this deep (a legato config needs about 8). */
const MAX_NESTING = 64;

/** Refuse a document nested deeper than MAX_NESTING (the walks below recurse). Iterative. */
function checkDepth(value, file, files) {
  const stack = [[value, 1]];
  while (stack.length > 0) {
    const [v, d] = stack.pop();
    if (typeof v !== 'object' || v === null || Buffer.isBuffer(v) || ArrayBuffer.isView(v)) continue;
    if (d > MAX_NESTING) throw new ConfigFileError(`${file}: objects and arrays are nested more than ${MAX_NESTING} deep`, files);
    for (const k of Object.keys(v)) stack.push([v[k], d + 1]);
  }
}

/** @returns {number[]} The offset at which each line starts. */
function lineStarts(text) {
  const starts = [0];
  for (let i = 0; i < text.length; i++) if (text.charCodeAt(i) === 10) starts.push(i + 1);
  return starts;
}

/** @returns {{ line: number, col: number }} 1-based. */
function position(starts, offset) {
  let lo = 0;
  let hi = starts.length - 1;
  while (lo < hi) {
    const mid = (lo + hi + 1) >> 1;
    if (starts[mid] <= offset) lo = mid;
    else hi = mid - 1;
  }
  return { line: lo + 1, col: offset - starts[lo] + 1 };
}

/**
 * The option path a config message starts with, as segments: 'routes[2].upstreams[0].port must
 * be…' → ['routes', 2, 'upstreams', 0, 'port'].
 */
function pathOf(message) {
  const m = /^([A-Za-z_$][\w$]*(?:\[\d+\]|\.[A-Za-z_$][\w$]*)*)/.exec(message);
  if (!m) return [];
  const out = [];
  for (const part of m[1].matchAll(/([A-Za-z_$][\w$]*)|\[(\d+)\]/g)) out.push(part[1] !== undefined ? part[1] : Number(part[2]));
  return out;
}

/* ------------------------------------------------------------------------------------------ *
 * Serve keys and certificate files.
 * ------------------------------------------------------------------------------------------ */

/** @returns {AdminSpec | null} */
function adminSpec(value, dir, fail) {
  if (value === null) return null;
  if (!isObject(value)) fail('admin must be an object: { host, port } or { path }');
  for (const key of Object.keys(value)) if (!ADMIN_KEYS.includes(key)) fail(`admin: unknown option '${key}' (admin takes host and port, or path)`);
  if (has(value, 'path')) {
    if (has(value, 'host') || has(value, 'port')) fail('admin: give either path (a Unix socket) or host and port, not both');
    if (typeof value.path !== 'string' || value.path === '') fail('admin.path must be a non-empty string');
    return { path: path.resolve(dir, value.path) };
  }
  if (!has(value, 'port')) fail('admin.port is required (or give admin.path for a Unix socket)');
  if (!Number.isInteger(value.port) || value.port < 0 || value.port > 65535) fail('admin.port must be an integer 0-65535');
  let host = '127.0.0.1';
  if (has(value, 'host')) {
    if (typeof value.host !== 'string' || value.host === '') fail('admin.host must be a non-empty string');
    host = value.host.replace(/^\[(.*)\]$/, '$1');
  }
  return { host, port: value.port };
}

/**
 * Replace every `<pem>File` key by `<pem>` holding the file's bytes, in place (the objects are
 * the parse result's own). Recurses through objects and arrays.
 */
function resolveFiles(obj, at, readPem, fail) {
  if (Array.isArray(obj)) {
    obj.forEach((v, i) => resolveFiles(v, `${at}[${i}]`, readPem, fail));
    return;
  }
  if (!isObject(obj)) return;
  for (const key of PEM_KEYS) {
    const fileKey = `${key}File`;
    if (!has(obj, fileKey)) continue;
    const where = at || '(top level)';
    if (has(obj, key)) fail(`${where}: give ${key} or ${fileKey}, not both`);
    const bytes = readPem(obj[fileKey], where, fileKey);
    delete obj[fileKey];
    obj[key] = bytes;
  }
  for (const k of Object.keys(obj)) resolveFiles(obj[k], at ? `${at}.${k}` : k, readPem, fail);
}

/** [[inline path, { path of the file key, value }]] for every `<pem>File` in the raw config. */
function collectFileKeys(obj, at, out = []) {
  if (Array.isArray(obj)) {
    obj.forEach((v, i) => collectFileKeys(v, `${at}[${i}]`, out));
  } else if (isObject(obj)) {
    for (const k of Object.keys(obj)) {
      const p = at ? `${at}.${k}` : k;
      const pem = PEM_KEYS.find((key) => k === `${key}File`);
      if (pem && typeof obj[k] === 'string') out.push([at ? `${at}.${pem}` : pem, { path: p, value: obj[k] }]);
      else collectFileKeys(obj[k], p, out);
    }
  }
  return out;
}

function isObject(v) {
  return typeof v === 'object' && v !== null && !Array.isArray(v) && !Buffer.isBuffer(v) && !ArrayBuffer.isView(v);
}

function has(obj, key) {
  return Object.prototype.hasOwnProperty.call(obj, key);
}

/** Set an own property, even one named __proto__ (never the prototype). */
function define(obj, key, value) {
  if (key === '__proto__') Object.defineProperty(obj, key, { value, enumerable: true, writable: true, configurable: true });
  else obj[key] = value;
}

function kindOf(v) {
  if (v === null) return 'null (an empty file?)';
  if (Array.isArray(v)) return 'an array';
  return `a ${typeof v}`;
}

module.exports = { loadServeConfig, validate, fingerprint, ConfigFileError, PEM_KEYS, SERVE_KEYS };
