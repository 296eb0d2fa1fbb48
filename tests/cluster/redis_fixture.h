/*
 * tests/cluster/redis_fixture.h - a private redis-server for one test:
 * a free loopback port, a temporary directory, no persistence
 * (--save "" --appendonly no), stopped (and the directory removed) at the
 * end. Also pause (SIGSTOP), resume (SIGCONT) and restart on the same
 * port (a restart loses every key, as a crashed Redis without
 * persistence does).
 *
 * Whose server. A port picked free can be taken by another program (a
 * test running beside this one) before redis-server binds it; that
 * redis-server then exits at once, and a PING alone would be answered by
 * the other program's server. So "up" means INFO server's process_id is
 * the pid of the child this fixture started (exec keeps the pid); the
 * fixture notices its child's exit (waitpid) instead of pinging on, and
 * tries another free port (start) or the same one again (restart).
 *
 * Lifetime. The child gets PR_SET_PDEATHSIG SIGKILL: if the test program
 * dies (a crash, a sanitizer abort, ctest's timeout), the kernel kills its
 * redis-server too, so no server outlives a failed test. The death signal
 * follows the thread that forked: start, restart and spawn from the test's
 * main thread.
 *
 * A test program calls redis_fixture_available() first and exits 77
 * (CTest's SKIP_RETURN_CODE) with a clear message when redis-server is
 * not installed.
 */
#ifndef SLUICE_TESTS_REDIS_FIXTURE_H
#define SLUICE_TESTS_REDIS_FIXTURE_H

#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <hiredis/hiredis.h>
#include <netinet/in.h>
#include <signal.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

typedef struct redis_fixture {
    pid_t pid;
    int port;
    char dir[64];
} redis_fixture;

/* How long a starting redis-server may take to answer (real time): long,
 * a loaded 2-core machine is slow, and a server that exited is noticed at
 * once, so this bound is reached only when something is really wrong. */
#define REDIS_FIXTURE_START_MS 30000

static inline bool redis_fixture_available(void)
{
    const char *path = getenv("PATH");
    char buf[4096];
    snprintf(buf, sizeof buf, "%s", path ? path : "/usr/bin:/bin");
    for (char *save = NULL, *d = strtok_r(buf, ":", &save); d; d = strtok_r(NULL, ":", &save)) {
        char exe[4200];
        snprintf(exe, sizeof exe, "%s/redis-server", d);
        if (access(exe, X_OK) == 0) {
            return true;
        }
    }
    return false;
}

static inline int redis_fixture_free_port(void)
{
    int fd = socket(AF_INET, SOCK_STREAM, 0);
    struct sockaddr_in a = {.sin_family = AF_INET, .sin_port = 0};
    a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    socklen_t len = sizeof a;
    if (fd < 0 || bind(fd, (struct sockaddr *)&a, sizeof a) != 0 ||
        getsockname(fd, (struct sockaddr *)&a, &len)) {
        if (fd >= 0) {
            close(fd);
        }
        return -1;
    }
    close(fd);
    return ntohs(a.sin_port);
}

/* A loopback port where no Redis can answer, for "Redis down" cases: the
 * port stays bound (without listening, and without SO_REUSEADDR, so no
 * other socket can bind it) while *fd is open, so a connect is refused
 * whoever else runs; a port merely seen free could be taken by another
 * test's redis-server. Returns the port, -1 on failure. */
static inline int redis_fixture_dead_port(int *fd)
{
    *fd = socket(AF_INET, SOCK_STREAM, 0);
    struct sockaddr_in a = {.sin_family = AF_INET, .sin_port = 0};
    a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    socklen_t len = sizeof a;
    if (*fd < 0 || bind(*fd, (struct sockaddr *)&a, sizeof a) != 0 ||
        getsockname(*fd, (struct sockaddr *)&a, &len)) {
        if (*fd >= 0) {
            close(*fd);
            *fd = -1;
        }
        return -1;
    }
    return ntohs(a.sin_port);
}

static inline void fixture_sleep_ms(unsigned ms)
{
    struct timespec ts = {(time_t)(ms / 1000), (long)(ms % 1000) * 1000000L};
    nanosleep(&ts, NULL);
}

static inline uint64_t fixture_now_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000u + (uint64_t)ts.tv_nsec / 1000000u;
}

/* The process id a redis-server on `port` reports (INFO server's
 * process_id), 0 when nothing answers as a Redis there. */
static inline long redis_fixture_server_pid(int port)
{
    struct timeval tv = {0, 500000};
    redisContext *c = redisConnectWithTimeout("127.0.0.1", port, tv);
    if (!c || c->err) {
        if (c) {
            redisFree(c);
        }
        return 0;
    }
    redisSetTimeout(c, tv);
    redisReply *r = redisCommand(c, "INFO server");
    long pid = 0;
    if (r && (r->type == REDIS_REPLY_STRING)) {
        const char *at = strstr(r->str, "process_id:");
        pid = at ? strtol(at + strlen("process_id:"), NULL, 10) : 0;
    }
    if (r) {
        freeReplyObject(r);
    }
    redisFree(c);
    return pid;
}

/* Reaps the fixture's child (SIGCONT first: a stopped one still dies). */
static inline void redis_fixture_kill(redis_fixture *f)
{
    if (f->pid > 0) {
        kill(f->pid, SIGCONT);
        kill(f->pid, SIGKILL);
        waitpid(f->pid, NULL, 0);
        f->pid = 0;
    }
}

/* Starts redis-server on f->port and waits until that very process
 * answers there. False (the child reaped) when it exited first (the port
 * is taken), when another process's server answers on the port, or after
 * REDIS_FIXTURE_START_MS. */
static inline bool redis_fixture_spawn(redis_fixture *f)
{
    char port[16];
    snprintf(port, sizeof port, "%d", f->port);
    pid_t parent = getpid();
    pid_t pid = fork();
    if (pid < 0) {
        return false;
    }
    if (pid == 0) {
        /* Dies with the test program, whatever ends it. */
        if (prctl(PR_SET_PDEATHSIG, SIGKILL) != 0 || getppid() != parent) {
            _exit(126);
        }
        int devnull = open("/dev/null", O_WRONLY);
        if (devnull >= 0) {
            dup2(devnull, 1);
            dup2(devnull, 2);
        }
        execlp("redis-server", "redis-server", "--port", port, "--bind", "127.0.0.1", "--dir", f->dir,
               "--save", "", "--appendonly", "no", "--daemonize", "no", "--protected-mode", "yes",
               "--logfile", "", (char *)NULL);
        _exit(127);
    }
    f->pid = pid;
    uint64_t limit = fixture_now_ms() + REDIS_FIXTURE_START_MS;
    for (;;) {
        if (waitpid(pid, NULL, WNOHANG) == pid) {
            f->pid = 0; /* exited: most likely the bind failed */
            return false;
        }
        long answered = redis_fixture_server_pid(f->port);
        if (answered == (long)pid) {
            return true;
        }
        if (answered > 0) {
            fprintf(stderr, "redis fixture: port %d is another server's (pid %ld); trying again\n", f->port,
                    answered);
            break;
        }
        if (fixture_now_ms() > limit) {
            fprintf(stderr, "redis fixture: redis-server (pid %d) did not answer on port %d in %d ms\n",
                    (int)pid, f->port, REDIS_FIXTURE_START_MS);
            break;
        }
        fixture_sleep_ms(10);
    }
    redis_fixture_kill(f);
    return false;
}

/* Start a server; false (with a message) when it did not come up. */
static inline bool redis_fixture_start(redis_fixture *f)
{
    memset(f, 0, sizeof *f);
    snprintf(f->dir, sizeof f->dir, "/tmp/sluice-redis-XXXXXX");
    if (!mkdtemp(f->dir)) {
        fprintf(stderr, "redis fixture: mkdtemp: %s\n", strerror(errno));
        f->dir[0] = '\0';
        return false;
    }
    for (int attempt = 0; attempt < 20; attempt++) {
        f->port = redis_fixture_free_port();
        if (f->port > 0 && redis_fixture_spawn(f)) {
            return true;
        }
    }
    fprintf(stderr, "redis fixture: redis-server did not start (20 ports tried)\n");
    return false;
}

/* Crash and start again on the same port, empty (no persistence). The
 * port may be taken by another program meanwhile: then false, after
 * retrying for a while (clients are configured with this port). */
static inline bool redis_fixture_restart(redis_fixture *f)
{
    redis_fixture_kill(f);
    for (int i = 0; i < 50; i++) {
        if (redis_fixture_spawn(f)) {
            return true;
        }
        fixture_sleep_ms(50);
    }
    fprintf(stderr, "redis fixture: could not restart redis-server on port %d\n", f->port);
    return false;
}

/* Pause / resume the server (no-ops without one: kill(0, ...) would
 * signal the test's whole process group). */
static inline void redis_fixture_pause(redis_fixture *f)
{
    if (f->pid > 0) {
        kill(f->pid, SIGSTOP);
    }
}

static inline void redis_fixture_resume(redis_fixture *f)
{
    if (f->pid > 0) {
        kill(f->pid, SIGCONT);
    }
}

static inline void redis_fixture_stop(redis_fixture *f)
{
    redis_fixture_kill(f);
    if (f->dir[0]) {
        char cmd[128];
        snprintf(cmd, sizeof cmd, "rm -rf '%s'", f->dir);
        if (system(cmd) != 0) {
            fprintf(stderr, "redis fixture: could not remove %s\n", f->dir);
        }
        f->dir[0] = '\0';
    }
}

/* One command on a fresh connection (for assertions); NULL on failure. */
static inline redisReply *redis_fixture_cmd(const redis_fixture *f, const char *fmt, ...)
{
    struct timeval tv = {2, 0};
    redisContext *c = redisConnectWithTimeout("127.0.0.1", f->port, tv);
    if (!c || c->err) {
        if (c) {
            redisFree(c);
        }
        return NULL;
    }
    redisSetTimeout(c, tv);
    va_list ap;
    va_start(ap, fmt);
    redisReply *r = redisvCommand(c, fmt, ap);
    va_end(ap);
    redisFree(c);
    return r;
}

#endif
