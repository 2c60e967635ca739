/*
 * lg_cpu.c — the process's CPU sampler (see lg_cpu.h).
 */
#include "lg_cpu.h"

#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <stdio.h>
#include <string.h>
#include <time.h>
#include <unistd.h>
#include <uv.h>

static pthread_mutex_t cpu_lock = PTHREAD_MUTEX_INITIALIZER;
static pthread_cond_t cpu_wake = PTHREAD_COND_INITIALIZER; /* realtime clock: only a pacing */
static unsigned cpu_users;                                 /* engines that asked (under cpu_lock) */
static bool cpu_running; /* a sampler thread exists (under cpu_lock) */

static uint64_t mono_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000 + (uint64_t)ts.tv_nsec / 1000000;
}

/* One upstream: read its thread's stat line and update its permille. */
static void sample_one(void *arg, lg_upshared_t *u)
{
    const uint64_t *now = arg;
    if (u->pid == 0) return;
    char path[64], buf[1024];
    snprintf(path, sizeof(path), "/proc/%u/task/%u/stat", u->pid, u->tid);
    uint64_t ticks = 0;
    ssize_t n = -1;
    int fd = open(path, O_RDONLY | O_CLOEXEC | O_NONBLOCK);
    if (fd >= 0) {
        n = read(fd, buf, sizeof(buf));
        close(fd);
    }
    if (n <= 0 || lg_cpu_parse_stat(buf, (size_t)n, &ticks) != 0) {
        atomic_fetch_add_explicit(&u->cpu_unread, 1, memory_order_relaxed);
        atomic_store_explicit(&u->st.cpu_permille, 0, memory_order_relaxed);
        u->cpu_ms = 0; /* the next readable sample starts a new interval */
        return;
    }
    if (u->cpu_ms != 0 && ticks >= u->cpu_ticks) {
        unsigned pm = lg_cpu_permille(ticks - u->cpu_ticks, *now - u->cpu_ms, sysconf(_SC_CLK_TCK));
        atomic_store_explicit(&u->st.cpu_permille, pm, memory_order_relaxed);
    }
    u->cpu_ticks = ticks;
    u->cpu_ms = *now;
}

void lg_cpu_sample_all(void)
{
    uint64_t now = mono_ms();
    lg_upshared_each(sample_one, &now);
}

/*
 * The sampler thread: created on the first lg_cpu_acquire() and kept for the life of the process
 * (uv_thread_create, as the workers: the prebuilt binaries must not need a newer glibc's
 * pthread_create). While no engine uses it, it waits on its condition without a timeout: no
 * wakeups.
 */
static void sampler(void *arg)
{
    (void)arg;
    for (;;) {
        pthread_mutex_lock(&cpu_lock);
        while (cpu_users == 0)
            pthread_cond_wait(&cpu_wake, &cpu_lock);
        struct timespec until;
        clock_gettime(CLOCK_REALTIME, &until);
        until.tv_nsec += LG_CPU_SAMPLE_MS * 1000000L;
        if (until.tv_nsec >= 1000000000L) {
            until.tv_sec++;
            until.tv_nsec -= 1000000000L;
        }
        pthread_cond_timedwait(&cpu_wake, &cpu_lock, &until);
        bool sample = cpu_users > 0;
        pthread_mutex_unlock(&cpu_lock);
        if (sample) lg_cpu_sample_all();
    }
}

int lg_cpu_acquire(void)
{
    int rc = 0;
    pthread_mutex_lock(&cpu_lock);
    if (!cpu_running) {
        static uv_thread_t thread;
        rc = uv_thread_create(&thread, sampler, NULL);
        if (rc == 0) cpu_running = true;
    }
    if (rc == 0 && cpu_users++ == 0) pthread_cond_signal(&cpu_wake);
    pthread_mutex_unlock(&cpu_lock);
    return rc;
}

void lg_cpu_release(void)
{
    pthread_mutex_lock(&cpu_lock);
    if (cpu_users > 0) cpu_users--;
    pthread_mutex_unlock(&cpu_lock);
}
