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
 * The directory. Its file `owner` records the run it belongs to: the
 * test program's pid and start time (field 22 of /proc/PID/stat, so a
 * reused pid is told apart) and the pid of the redis-server last started
 * in it. Two ways remove it when the test program does not:
 *  - a guard: start forks a small shell, detached (its own session, not
 *    a child of the test, so a timeout that kills the test's process
 *    tree spares it), that reads a pipe whose only writer is the test
 *    program (O_CLOEXEC: neither redis-server nor a re-executed replica
 *    holds it). The kernel closes that pipe however the test ends (exit,
 *    abort, a sanitizer's report, SIGKILL), the guard reads EOF and
 *    removes the directory. redis_fixture_stop removes it itself and
 *    closes the pipe, so the guard finds nothing left and exits.
 *  - a sweep at each start (redis_fixture_sweep) for what the guard could
 *    not do (the guard itself killed, the machine rebooted): it removes a
 *    /tmp/sluice-redis-* directory of this user only when its owner file
 *    proves it stale: the recorded test program is gone (no such pid, or
 *    a pid with another start time) and the recorded redis-server pid is
 *    not a live redis-server. A directory with no owner file, an owner
 *    file that cannot be read, or a /proc that cannot be read is kept: it
 *    may be a run starting now, or one of a fixture from before the owner
 *    file, and a live run's directory is never removed.
 *
 * A test program calls redis_fixture_available() first and exits 77
 * (CTest's SKIP_RETURN_CODE) with a clear message when redis-server is
 * not installed.
 */
#ifndef SLUICE_TESTS_REDIS_FIXTURE_H
#define SLUICE_TESTS_REDIS_FIXTURE_H

#include <arpa/inet.h>
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <ftw.h>
#include <hiredis/hiredis.h>
#include <limits.h>
#include <netinet/in.h>
#include <signal.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stddef.h>
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
    bool guarded; /* guard_fd is the write end of the guard's pipe */
    int guard_fd;
} redis_fixture;

/* Where start makes its directories, and their name before the XXXXXX. */
#define REDIS_FIXTURE_ROOT "/tmp"
#define REDIS_FIXTURE_PREFIX "sluice-redis-"

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

/* ---- the directory: owner file, guard, sweep ---------------------------------- */

/* The start time of process `pid` (field 22 of /proc/PID/stat, clock
 * ticks since boot), 0 when it cannot be read (no such process). */
static inline unsigned long long redis_fixture_proc_start(pid_t pid)
{
    char path[64], buf[1024];
    snprintf(path, sizeof path, "/proc/%d/stat", (int)pid);
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    if (fd < 0) {
        return 0;
    }
    ssize_t n = read(fd, buf, sizeof buf - 1);
    close(fd);
    if (n <= 0) {
        return 0;
    }
    buf[n] = '\0';
    /* The name (field 2) may hold spaces and ')': fields 3.. follow the last ')'. */
    char *p = strrchr(buf, ')');
    if (!p) {
        return 0;
    }
    p++; /* the space before field 3; each step moves to the space before the next field */
    for (int field = 3; field < 22 && p; field++) {
        p = strchr(p + 1, ' ');
    }
    return p ? strtoull(p + 1, NULL, 10) : 0;
}

/* Whether `pid` is a live redis-server (the name in /proc/PID/stat). A
 * zombie (killed, not yet reaped by whoever inherited it) is not live. */
static inline bool redis_fixture_is_redis(pid_t pid)
{
    if (pid <= 0) {
        return false;
    }
    char path[64], buf[512];
    snprintf(path, sizeof path, "/proc/%d/stat", (int)pid);
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    if (fd < 0) {
        return false;
    }
    ssize_t n = read(fd, buf, sizeof buf - 1);
    close(fd);
    if (n <= 0) {
        return false;
    }
    buf[n] = '\0';
    const char *open_paren = strchr(buf, '(');
    const char *close_paren = strrchr(buf, ')');
    if (!open_paren || !close_paren || close_paren[1] != ' ') {
        return false;
    }
    char state = close_paren[2];
    return close_paren - open_paren - 1 == (ptrdiff_t)strlen("redis-server") &&
           strncmp(open_paren + 1, "redis-server", strlen("redis-server")) == 0 && state != 'Z' &&
           state != 'X';
}

/* Writes dir/owner: "<test pid> <its start time> <redis-server pid>\n",
 * through a rename so a reader never sees half of it. */
static inline bool redis_fixture_write_owner(const char *dir, pid_t owner, unsigned long long start,
                                             pid_t server)
{
    char tmp[128], path[128];
    snprintf(tmp, sizeof tmp, "%s/owner.tmp", dir);
    snprintf(path, sizeof path, "%s/owner", dir);
    FILE *fp = fopen(tmp, "w");
    if (!fp) {
        return false;
    }
    fprintf(fp, "%d %llu %d\n", (int)owner, start, (int)server);
    bool ok = fclose(fp) == 0 && rename(tmp, path) == 0;
    if (!ok) {
        unlink(tmp);
    }
    return ok;
}

static inline int redis_fixture_rm_one(const char *path, const struct stat *sb, int flag, struct FTW *ftw)
{
    (void)sb;
    (void)flag;
    (void)ftw;
    return remove(path) == 0 || errno == ENOENT ? 0 : -1;
}

/* Removes a directory and what it holds (not following links). */
static inline bool redis_fixture_rm_tree(const char *dir)
{
    return nftw(dir, redis_fixture_rm_one, 16, FTW_DEPTH | FTW_PHYS) == 0 || errno == ENOENT;
}

/* Whether the directory `dir` is provably stale (see the file comment):
 * its owner file names a test program that is gone and a redis-server
 * pid that is not a live redis-server. */
static inline bool redis_fixture_stale(const char *dir)
{
    char path[PATH_MAX + 8];
    snprintf(path, sizeof path, "%s/owner", dir);
    FILE *fp = fopen(path, "r");
    if (!fp) {
        return false; /* no record (starting now, or an older fixture): keep */
    }
    int owner = 0, server = 0;
    unsigned long long start = 0;
    int got = fscanf(fp, "%d %llu %d", &owner, &start, &server);
    fclose(fp);
    if (got != 3 || owner <= 0 || start == 0) {
        return false; /* unreadable: cannot prove anything */
    }
    if (kill(owner, 0) == 0 || errno == EPERM) {
        unsigned long long now_start = redis_fixture_proc_start(owner);
        if (now_start == 0 || now_start == start) {
            return false; /* the owner runs (or /proc does not say otherwise) */
        }
    }
    return !redis_fixture_is_redis(server);
}

/* Removes the provably stale sluice-redis-* directories under `root`
 * that belong to this user; returns how many it removed. */
static inline int redis_fixture_sweep(const char *root)
{
    DIR *d = opendir(root);
    if (!d) {
        return 0;
    }
    int removed = 0;
    for (struct dirent *e; (e = readdir(d));) {
        if (strncmp(e->d_name, REDIS_FIXTURE_PREFIX, strlen(REDIS_FIXTURE_PREFIX)) != 0) {
            continue;
        }
        char dir[PATH_MAX];
        snprintf(dir, sizeof dir, "%s/%s", root, e->d_name);
        struct stat st;
        if (lstat(dir, &st) != 0 || !S_ISDIR(st.st_mode) || st.st_uid != getuid()) {
            continue;
        }
        if (redis_fixture_stale(dir) && redis_fixture_rm_tree(dir)) {
            removed++;
        }
    }
    closedir(d);
    return removed;
}

/* Starts the guard of f->dir (see the file comment). False when it could
 * not be started (the sweep of a later run is then the only cleanup). */
static inline bool redis_fixture_guard(redis_fixture *f)
{
    int p[2];
    if (pipe2(p, O_CLOEXEC) != 0) {
        return false;
    }
    pid_t child = fork();
    if (child < 0) {
        close(p[0]);
        close(p[1]);
        return false;
    }
    if (child == 0) {
        /* Only async-signal-safe calls until exec: the test may have threads. */
        pid_t guard = fork();
        if (guard == 0) {
            setsid();
            dup2(p[0], 0); /* dup2 clears O_CLOEXEC on 0: the shell reads it */
            int devnull = open("/dev/null", O_WRONLY);
            if (devnull >= 0) {
                dup2(devnull, 1);
                dup2(devnull, 2);
            }
            for (int fd = 3; fd < 1024; fd++) {
                close(fd); /* hold nothing of the test's (its output pipes above all) */
            }
            execl("/bin/sh", "sh", "-c", "cat >/dev/null; rm -rf -- \"$0\"", f->dir, (char *)NULL);
            _exit(127);
        }
        _exit(guard > 0 ? 0 : 1);
    }
    close(p[0]);
    int status = 0;
    while (waitpid(child, &status, 0) < 0 && errno == EINTR) {
    }
    if (!WIFEXITED(status) || WEXITSTATUS(status) != 0) {
        close(p[1]);
        return false;
    }
    f->guard_fd = p[1];
    f->guarded = true;
    return true;
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
            redis_fixture_write_owner(f->dir, getpid(), redis_fixture_proc_start(getpid()), pid);
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
    redis_fixture_sweep(REDIS_FIXTURE_ROOT);
    snprintf(f->dir, sizeof f->dir, "%s/%sXXXXXX", REDIS_FIXTURE_ROOT, REDIS_FIXTURE_PREFIX);
    if (!mkdtemp(f->dir)) {
        fprintf(stderr, "redis fixture: mkdtemp: %s\n", strerror(errno));
        f->dir[0] = '\0';
        return false;
    }
    /* The owner first, then the guard: a sweep never sees a directory of
     * a live run without its record. */
    if (!redis_fixture_write_owner(f->dir, getpid(), redis_fixture_proc_start(getpid()), 0)) {
        fprintf(stderr, "redis fixture: cannot write %s/owner: %s\n", f->dir, strerror(errno));
    }
    if (!redis_fixture_guard(f)) {
        fprintf(stderr, "redis fixture: no guard for %s (removed at stop only)\n", f->dir);
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

/* Stops the server, removes the directory, and lets the guard go (no-op
 * for a fixture never started, or stopped already). */
static inline void redis_fixture_stop(redis_fixture *f)
{
    redis_fixture_kill(f);
    if (f->dir[0]) {
        if (!redis_fixture_rm_tree(f->dir)) {
            fprintf(stderr, "redis fixture: could not remove %s: %s\n", f->dir, strerror(errno));
        }
        f->dir[0] = '\0';
    }
    if (f->guarded) {
        close(f->guard_fd); /* the guard reads EOF, finds the directory gone, exits */
        f->guarded = false;
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
