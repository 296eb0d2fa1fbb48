/*
 * tests/cluster/redis_fixture.h - a private redis-server for one test:
 * a free loopback port, a temporary directory, no persistence
 * (--save "" --appendonly no), stopped (and the directory removed) at the
 * end. Also pause (SIGSTOP), resume (SIGCONT) and restart on the same
 * port (a restart loses every key, as a crashed Redis without
 * persistence does).
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
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
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
    if (fd < 0 || bind(fd, (struct sockaddr *)&a, sizeof a) != 0 || getsockname(fd, (struct sockaddr *)&a, &len)) {
        if (fd >= 0) {
            close(fd);
        }
        return -1;
    }
    close(fd);
    return ntohs(a.sin_port);
}

static inline void fixture_sleep_ms(unsigned ms)
{
    struct timespec ts = {(time_t)(ms / 1000), (long)(ms % 1000) * 1000000L};
    nanosleep(&ts, NULL);
}

/* PING until it answers (at most ~10 s). */
static inline bool redis_fixture_ping(int port, unsigned tries)
{
    for (unsigned i = 0; i < tries; i++) {
        struct timeval tv = {0, 200000};
        redisContext *c = redisConnectWithTimeout("127.0.0.1", port, tv);
        if (c && !c->err) {
            redisSetTimeout(c, tv);
            redisReply *r = redisCommand(c, "PING");
            bool ok = r && r->type == REDIS_REPLY_STATUS;
            if (r) {
                freeReplyObject(r);
            }
            redisFree(c);
            if (ok) {
                return true;
            }
        } else if (c) {
            redisFree(c);
        }
        fixture_sleep_ms(20);
    }
    return false;
}

static inline bool redis_fixture_spawn(redis_fixture *f)
{
    char port[16];
    snprintf(port, sizeof port, "%d", f->port);
    pid_t pid = fork();
    if (pid < 0) {
        return false;
    }
    if (pid == 0) {
        int devnull = open("/dev/null", O_WRONLY);
        if (devnull >= 0) {
            dup2(devnull, 1);
            dup2(devnull, 2);
        }
        execlp("redis-server", "redis-server", "--port", port, "--bind", "127.0.0.1", "--dir", f->dir, "--save", "",
               "--appendonly", "no", "--daemonize", "no", "--protected-mode", "yes", "--logfile", "",
               (char *)NULL);
        _exit(127);
    }
    f->pid = pid;
    return redis_fixture_ping(f->port, 500);
}

/* Start a server; false (with a message) when it did not come up. */
static inline bool redis_fixture_start(redis_fixture *f)
{
    memset(f, 0, sizeof *f);
    snprintf(f->dir, sizeof f->dir, "/tmp/sluice-redis-XXXXXX");
    if (!mkdtemp(f->dir)) {
        fprintf(stderr, "redis fixture: mkdtemp: %s\n", strerror(errno));
        return false;
    }
    for (int attempt = 0; attempt < 5; attempt++) {
        f->port = redis_fixture_free_port();
        if (f->port > 0 && redis_fixture_spawn(f)) {
            return true;
        }
        if (f->pid > 0) {
            kill(f->pid, SIGKILL);
            waitpid(f->pid, NULL, 0);
            f->pid = 0;
        }
    }
    fprintf(stderr, "redis fixture: redis-server did not start\n");
    return false;
}

static inline void redis_fixture_kill(redis_fixture *f)
{
    if (f->pid > 0) {
        kill(f->pid, SIGCONT);
        kill(f->pid, SIGKILL);
        waitpid(f->pid, NULL, 0);
        f->pid = 0;
    }
}

/* Crash and start again on the same port, empty (no persistence). */
static inline bool redis_fixture_restart(redis_fixture *f)
{
    redis_fixture_kill(f);
    for (int i = 0; i < 50; i++) {
        if (redis_fixture_spawn(f)) {
            return true;
        }
        if (f->pid > 0) {
            kill(f->pid, SIGKILL);
            waitpid(f->pid, NULL, 0);
            f->pid = 0;
        }
        fixture_sleep_ms(50);
    }
    return false;
}

static inline void redis_fixture_pause(redis_fixture *f)
{
    kill(f->pid, SIGSTOP);
}

static inline void redis_fixture_resume(redis_fixture *f)
{
    kill(f->pid, SIGCONT);
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
