'use strict';
// Holding libuv's thread pool (shared by Node and the engine's lookups and verifications) so a
// test can make name lookups or scrypt verifications wait deterministically.

const fs = require('fs');
const os = require('os');
const path = require('path');
const { execFileSync } = require('child_process');
const { track, trackDir } = require('./resources');

/**
 * Hold every thread of libuv's pool (shared by Node and the engine): each is blocked in open(2)
 * of a FIFO nobody writes to. release() opens the write ends, which lets the opens return.
 * Registered for cleanup so a failing test never leaves the pool held.
 */
function holdPool() {
  const threads = Number(process.env.UV_THREADPOOL_SIZE) || 4;
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'legato-pool-fifo-'));
  trackDir(dir);
  const fifos = [];
  const opened = [];
  for (let i = 0; i < threads; i++) {
    const f = path.join(dir, `f${i}`);
    execFileSync('mkfifo', [f]);
    fifos.push(f);
    opened.push(new Promise((resolve) => fs.open(f, 'r', (err, fd) => resolve(err ? -1 : fd))));
  }
  let released = false;
  // A FIFO's write end opens without blocking only once its reader is there: a pool thread may
  // not have reached its open yet (another job held it, such as a slow lookup the test started),
  // and it does once the writers of the other FIFOs let their threads go. So each writer retries
  // on ENXIO ("no reader yet") for up to 10 s.
  const openWriter = async (f) => {
    for (let tries = 0; ; tries++) {
      try {
        return fs.openSync(f, fs.constants.O_WRONLY | fs.constants.O_NONBLOCK);
      } catch (err) {
        if (err.code !== 'ENXIO' || tries >= 2000) throw err;
        await new Promise((resolve) => setTimeout(resolve, 5));
      }
    }
  };
  const release = async () => {
    if (released) return;
    released = true;
    const writers = await Promise.all(fifos.map(openWriter));
    const fds = await Promise.all(opened);
    for (const fd of [...writers, ...fds]) if (fd >= 0) fs.closeSync(fd);
  };
  track({ release }, (h) => h.release(), 0);
  return { release };
}

module.exports = { holdPool };
