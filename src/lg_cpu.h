/*
 * lg_cpu.h — CPU sampling of the threads behind Unix-socket upstreams (balance: leastConn and
 * random2 add it to the score: active x 1000 + CPU permille).
 *
 * One sampler thread for the process, whatever the number of engines, sampling only while some
 * engine has asked for it (it sleeps without wakeups otherwise): every LG_CPU_SAMPLE_MS it reads
 * /proc/<pid>/task/<tid>/stat of each upstream that names a pid and tid (lg_upshared_each), turns
 * the utime + stime delta into permille of one core (lg_cpu_permille) and stores it in the
 * upstream's shared state, where the workers' picks read it. Workers never read /proc: a slow or
 * blocked read delays only the sampler. A stat file that cannot be read or parsed scores 0 and
 * counts in the upstream's cpuUnreadable.
 */
#ifndef LG_CPU_H
#define LG_CPU_H

#include "lg_config.h"

#define LG_CPU_SAMPLE_MS 250 /* ms between samples (symphony's interval) */

/* An engine wants CPU samples (a route lists an upstream with pid and tid): start the sampler
 * if it is not running. Each successful call is matched by lg_cpu_release(). Returns 0 or a
 * negative errno (the thread could not be created). */
int lg_cpu_acquire(void);

/* The engine no longer needs samples; the sampler sleeps once its last user left. */
void lg_cpu_release(void);

/* One pass over the upstreams now (the sampler's work; exposed for tests). */
void lg_cpu_sample_all(void);

#endif /* LG_CPU_H */
