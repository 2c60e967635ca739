'use strict';

/**
 * lib/statusfile.js — the status file of a running `legato` (`--status-file`, serve `statusFile`).
 *
 * JSON: { pid, version, command, configPath, startedAt, reloadedAt, listeners: [{ kind, host,
 * port }], admin, restartNeeded }. Written atomically (a temporary file in the same directory,
 * then rename(2)), so a reader never sees half a file; removed at exit only if it still holds
 * our pid (a successor may have taken the path over).
 */

const fs = require('fs');
const path = require('path');

/**
 * Write `status` to `file` atomically.
 * @param {string} file Absolute path.
 * @param {object} status Serialised as JSON.
 * @throws {Error} The system error of open/write/rename (the temporary file is removed).
 */
function writeStatusFile(file, status) {
  const tmp = path.join(path.dirname(file), `.${path.basename(file)}.${process.pid}.tmp`);
  try {
    fs.writeFileSync(tmp, `${JSON.stringify(status, null, 2)}\n`, { mode: 0o644 });
    fs.renameSync(tmp, file);
  } catch (err) {
    try { fs.unlinkSync(tmp); } catch (_) { /* it may not exist */ }
    throw err;
  }
}

/**
 * Remove the status file if it belongs to `pid`.
 * @param {string} file
 * @param {number} pid
 * @returns {boolean} Whether it was removed.
 */
function removeStatusFile(file, pid) {
  try {
    const status = JSON.parse(fs.readFileSync(file, 'utf8'));
    if (status.pid !== pid) return false;
    fs.unlinkSync(file);
    return true;
  } catch (_) {
    return false;
  }
}

module.exports = { writeStatusFile, removeStatusFile };
