/*
 * tests/cluster/test_fixture.c - the redis fixture cleans up after the
 * test program that started it, however that program ends, and removes
 * the directories of earlier runs only when they are provably stale
 * (redis_fixture.h, "The directory").
 *
 * Crashes are real: a forked child starts a fixture and dies (SIGKILL,
 * abort, _exit without stop); the parent checks that the child's
 * redis-server is gone and that its directory is removed (bounded
 * polling: the guard runs after the kernel closes the child's pipe).
 * The sweep runs on a private root holding directories made to look like
 * every case: owner gone, owner alive, a reused pid, a live redis-server,
 * no record, an unreadable record, another prefix.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
/* cmocka after the standard headers it needs */
#include <cmocka.h>

#include "cluster/redis_fixture.h"
#include "cluster/undo.h"
#include "common/cleanup.h"

#define POLL(cond, ms)                                                                                       \
    ({                                                                                                       \
        bool ok_ = false;                                                                                    \
        for (int i_ = 0; i_ <= (ms) / 10 && !(ok_ = (cond)); i_++) {                                         \
            fixture_sleep_ms(10);                                                                            \
        }                                                                                                    \
        ok_;                                                                                                 \
    })

static bool exists(const char *path)
{
    struct stat st;
    return lstat(path, &st) == 0;
}

/* What the crashing child reports before it dies. */
typedef struct started {
    char dir[64];
    int port;
    pid_t server;
} started;

enum death { DIE_KILL, DIE_ABORT, DIE_EXIT };

static void crash_child(enum death how, int report_fd)
{
    redis_fixture f;
    started s;
    memset(&s, 0, sizeof s);
    if (redis_fixture_start(&f)) {
        snprintf(s.dir, sizeof s.dir, "%s", f.dir);
        s.port = f.port;
        s.server = f.pid;
    }
    if (write(report_fd, &s, sizeof s) != (ssize_t)sizeof s) {
        _exit(2);
    }
    switch (how) {
    case DIE_KILL:
        raise(SIGKILL);
        break;
    case DIE_ABORT:
        signal(SIGABRT, SIG_DFL);
        abort();
    case DIE_EXIT:
        break;
    }
    _exit(3); /* no stop, no atexit: as a test that returns early */
}

static void crash_and_check(enum death how)
{
    int p[2];
    assert_int_equal(pipe(p), 0);
    fflush(NULL);
    pid_t child = fork();
    assert_true(child >= 0);
    if (child == 0) {
        close(p[0]);
        crash_child(how, p[1]);
    }
    close(p[1]);
    started s;
    ssize_t got = read(p[0], &s, sizeof s);
    close(p[0]);
    int status = 0;
    assert_int_equal(waitpid(child, &status, 0), child);
    assert_int_equal(got, (ssize_t)sizeof s);
    assert_true(s.dir[0] != '\0'); /* the child's fixture started */
    switch (how) {
    case DIE_KILL:
        assert_true(WIFSIGNALED(status) && WTERMSIG(status) == SIGKILL);
        break;
    case DIE_ABORT:
        assert_true(WIFSIGNALED(status) && WTERMSIG(status) == SIGABRT);
        break;
    case DIE_EXIT:
        assert_true(WIFEXITED(status) && WEXITSTATUS(status) == 3);
        break;
    }
    /* Its redis-server died with it (PR_SET_PDEATHSIG) ... */
    assert_true(POLL(!redis_fixture_is_redis(s.server), 10000));
    /* ... and its directory went too (the guard). */
    if (!POLL(!exists(s.dir), 10000)) {
        fail_msg("%s is still there after its test program died (way %d)", s.dir, (int)how);
    }
}

static void test_crash_kill(void **state)
{
    (void)state;
    crash_and_check(DIE_KILL);
}

static void test_crash_abort(void **state)
{
    (void)state;
    crash_and_check(DIE_ABORT);
}

static void test_exit_without_stop(void **state)
{
    (void)state;
    crash_and_check(DIE_EXIT);
}

/* ---- the sweep ----------------------------------------------------------------- */

static char root[64];

static void undo_root(void *p)
{
    redis_fixture_rm_tree(p);
}

/* root/name with an owner file holding `text` (NULL: no owner file). */
static void fake_dir(const char *name, const char *text, char *out, size_t len)
{
    snprintf(out, len, "%s/%s", root, name);
    assert_int_equal(mkdir(out, 0700), 0);
    if (text) {
        char path[PATH_MAX + 8];
        snprintf(path, sizeof path, "%s/owner", out);
        FILE *fp = fopen(path, "w");
        assert_non_null(fp);
        fputs(text, fp);
        fclose(fp);
    }
}

/* A pid that is dead now: a child that exited and was reaped. */
static pid_t dead_pid(void)
{
    pid_t c = fork();
    assert_true(c >= 0);
    if (c == 0) {
        _exit(0);
    }
    assert_int_equal(waitpid(c, NULL, 0), c);
    return c;
}

static void test_sweep(void **state)
{
    (void)state;
    snprintf(root, sizeof root, "/tmp/sluice-sweep-XXXXXX");
    assert_non_null(mkdtemp(root));
    cleanup_push(undo_root, root);
    static redis_fixture live; /* static: its teardown may run after this frame */
    cleanup_push(undo_redis, &live);
    assert_true(redis_fixture_start(&live));
    assert_true(redis_fixture_is_redis(live.pid));
    assert_false(redis_fixture_is_redis(getpid()));

    pid_t me = getpid(), gone = dead_pid();
    unsigned long long my_start = redis_fixture_proc_start(me);
    assert_true(my_start > 0);
    /* The start time is field 22, not a field that moves (field 23, the
     * virtual size, grows with an allocation this large). */
    void *big = malloc(64u << 20);
    assert_non_null(big);
    assert_int_equal(redis_fixture_proc_start(me), my_start);
    free(big);
    assert_int_equal(redis_fixture_proc_start(gone), 0);
    char text[128];
    char d_gone[128], d_alive[128], d_reused[128], d_server[128], d_none[128], d_garbage[128], d_other[128],
        d_nested[256];

    /* Removed: the test program gone, no server recorded yet (0). */
    snprintf(text, sizeof text, "%d %llu 0\n", (int)gone, my_start);
    fake_dir(REDIS_FIXTURE_PREFIX "gone", text, d_gone, sizeof d_gone);
    /* Kept: the owner is this very program. */
    snprintf(text, sizeof text, "%d %llu %d\n", (int)me, my_start, (int)gone);
    fake_dir(REDIS_FIXTURE_PREFIX "alive", text, d_alive, sizeof d_alive);
    /* Removed: the pid lives but started at another time (reused), and
     * the server pid recorded is a live process that is no redis-server;
     * the directory holds files (a dump) and is removed whole. */
    snprintf(text, sizeof text, "%d %llu %d\n", (int)me, my_start + 1, (int)me);
    fake_dir(REDIS_FIXTURE_PREFIX "reused", text, d_reused, sizeof d_reused);
    snprintf(d_nested, sizeof d_nested, "%s/sub", d_reused);
    assert_int_equal(mkdir(d_nested, 0700), 0);
    snprintf(d_nested, sizeof d_nested, "%s/sub/dump.rdb", d_reused);
    FILE *fp = fopen(d_nested, "w");
    assert_non_null(fp);
    fclose(fp);
    /* Kept: the owner is gone but the recorded redis-server still runs. */
    snprintf(text, sizeof text, "%d %llu %d\n", (int)gone, my_start, (int)live.pid);
    fake_dir(REDIS_FIXTURE_PREFIX "server", text, d_server, sizeof d_server);
    /* Kept: no record (a run starting, or an older fixture's). */
    fake_dir(REDIS_FIXTURE_PREFIX "none", NULL, d_none, sizeof d_none);
    /* Kept: a record that says nothing. */
    fake_dir(REDIS_FIXTURE_PREFIX "garbage", "not a pid\n", d_garbage, sizeof d_garbage);
    /* Kept: not a fixture directory at all. */
    snprintf(text, sizeof text, "%d %llu 0\n", (int)gone, my_start);
    fake_dir("sluice-other-gone", text, d_other, sizeof d_other);

    assert_int_equal(redis_fixture_sweep(root), 2);
    assert_false(exists(d_gone));
    assert_false(exists(d_reused));
    assert_true(exists(d_alive));
    assert_true(exists(d_server));
    assert_true(exists(d_none));
    assert_true(exists(d_garbage));
    assert_true(exists(d_other));
    assert_int_equal(redis_fixture_sweep(root), 0); /* nothing more to prove */

    /* The real root: a start sweeps it, and a live run (this program's
     * own fixture) keeps its directory and its server. */
    char stale[64];
    snprintf(stale, sizeof stale, "%s/%sXXXXXX", REDIS_FIXTURE_ROOT, REDIS_FIXTURE_PREFIX);
    assert_non_null(mkdtemp(stale));
    cleanup_push(undo_root, stale);
    assert_true(redis_fixture_write_owner(stale, gone, my_start, gone));
    static redis_fixture second;
    cleanup_push(undo_redis, &second);
    assert_true(redis_fixture_start(&second));
    assert_false(exists(stale));
    assert_true(exists(live.dir));
    assert_int_equal(redis_fixture_server_pid(live.port), live.pid);
    /* stop removes the directory itself. */
    char second_dir[64];
    snprintf(second_dir, sizeof second_dir, "%s", second.dir);
    cleanup_now(&second);
    assert_false(exists(second_dir));
    cleanup_now(stale);
    cleanup_now(&live);
    cleanup_now(root);
}

int main(void)
{
    if (!redis_fixture_available()) {
        fprintf(stderr, "SKIP: redis-server is not installed (Debian package redis-server; "
                        "scripts/install-deps.sh installs it)\n");
        return 77;
    }
    signal(SIGPIPE, SIG_IGN);
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_teardown(test_crash_kill, cleanup_teardown),
        cmocka_unit_test_teardown(test_crash_abort, cleanup_teardown),
        cmocka_unit_test_teardown(test_exit_without_stop, cleanup_teardown),
        cmocka_unit_test_teardown(test_sweep, cleanup_teardown),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
