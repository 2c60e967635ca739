'use strict';

/**
 * lib/errors.js — the error objects legato throws for a bad configuration.
 *
 * A configuration mistake is a plain `TypeError` (the value has the wrong type, or a required
 * value is missing) or `RangeError` (the type is right but the value is not allowed), with
 * `err.code === 'ERR_LEGATO_CONFIG'`. The message starts with the option's path, for example
 * `routes[2].upstreams[0].port must be an integer 1-65535`, so a caller can show it as is.
 * We use the built-in classes rather than a subclass so that `instanceof TypeError` and
 * `instanceof RangeError` hold, as they do for Node's own argument errors.
 */

/** The `code` of every configuration error. */
const ERR_LEGATO_CONFIG = 'ERR_LEGATO_CONFIG';

/**
 * Build a configuration error.
 *
 * @param {typeof TypeError | typeof RangeError} Class TypeError or RangeError.
 * @param {string} message Starts with the option path.
 * @param {Function} [above] Frames above this function are left out of the stack.
 * @returns {TypeError | RangeError} The error, with `code` set to 'ERR_LEGATO_CONFIG'.
 */
function makeConfigError(Class, message, above) {
  const err = new Class(message);
  err.code = ERR_LEGATO_CONFIG;
  if (typeof Error.captureStackTrace === 'function') {
    Error.captureStackTrace(err, above || makeConfigError);
  }
  return err;
}

/**
 * A configuration `TypeError`: the value at the path has the wrong type or is missing.
 *
 * @param {string} message Starts with the option path, e.g. `listeners[0].host must be a string`.
 * @returns {TypeError} With `code === 'ERR_LEGATO_CONFIG'`.
 */
function configTypeError(message) {
  return makeConfigError(TypeError, message, configTypeError);
}

/**
 * A configuration `RangeError`: the value at the path has the right type but is not allowed.
 *
 * @param {string} message Starts with the option path, e.g. `listeners[0].port must be an
 *   integer 0-65535`.
 * @returns {RangeError} With `code === 'ERR_LEGATO_CONFIG'`.
 */
function configRangeError(message) {
  return makeConfigError(RangeError, message, configRangeError);
}

/**
 * Whether an error is a legato configuration error.
 *
 * @param {unknown} err Anything caught.
 * @returns {boolean} True for errors made by configTypeError / configRangeError.
 */
function isConfigError(err) {
  return err instanceof Error && /** @type {any} */ (err).code === ERR_LEGATO_CONFIG;
}

module.exports = { ERR_LEGATO_CONFIG, configTypeError, configRangeError, isConfigError };
