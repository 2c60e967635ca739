'use strict';
// The OS scheduling of threads, as the kernel reports it (workerPriority tests).

const fs = require('fs');
const { execFileSync } = require('child_process');

const SCHED_OTHER = 0;
const SCHED_FIFO = 1;

/**
 * Every thread of process `pid` ('self' for this one): { tid, policy, rtprio }, from fields 41
 * and 40 of /proc/<pid>/task/<tid>/stat. A thread that ends meanwhile is left out.
 */
function threads(pid = 'self') {
  const out = [];
  for (const tid of fs.readdirSync(`/proc/${pid}/task`)) {
    let stat;
    try {
      stat = fs.readFileSync(`/proc/${pid}/task/${tid}/stat`, 'utf8');
    } catch (_) {
      continue;
    }
    const f = stat.slice(stat.lastIndexOf(')') + 2).split(' '); // f[0] is field 3 (state)
    out.push({ tid: Number(tid), rtprio: Number(f[37]), policy: Number(f[38]) });
  }
  return out;
}

/**
 * The command prefix that runs a program without the right to real-time priority: as root,
 * setpriv drops CAP_SYS_NICE from the bounding set (RLIMIT_RTPRIO is 0 by default); an
 * unprivileged user has no such right already (unless its RLIMIT_RTPRIO allows it).
 */
const UNPRIVILEGED = process.getuid() === 0 ? ['setpriv', '--bounding-set', '-sys_nice'] : [];

/** Whether a program run behind `prefix` may make a thread SCHED_FIFO: chrt tries it. */
function mayUseRealtime(prefix = []) {
  const argv = [...prefix, 'chrt', '-f', '1', 'true'];
  try {
    execFileSync(argv[0], argv.slice(1), { stdio: 'ignore' });
    return true;
  } catch (_) {
    return false;
  }
}

module.exports = { SCHED_OTHER, SCHED_FIFO, threads, UNPRIVILEGED, mayUseRealtime };
