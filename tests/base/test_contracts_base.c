/*
 * tests/base/test_contracts_base.c - sluice/clock.h and sluice/cpu.h
 * probed from the headers alone, at their extremes:
 *
 *   - clock.h: "must be monotonic" for the system clock and for the fake
 *     clock the header offers tests, also when it is advanced past
 *     UINT64_MAX (it saturates there: a wrap would move time backwards),
 *     from several threads at once; which clocks are "the system clock";
 *     NULL fakes are no-ops;
 *   - cpu.h: "at least 1" and "the smaller of the affinity mask and the
 *     quota" for quotas at the top of their range (a cgroup quota of
 *     2^64 - 1 microseconds per microsecond is no limit, not 0 CPUs) and
 *     at the bottom (a millionth of a CPU is 1), on fake /proc and /sys
 *     trees; sluice_cpu_count agrees with the detail call.
 */
#include <errno.h>
#include <pthread.h>
#include <sched.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cmocka.h>

#include "sluice/clock.h"
#include "sluice/cpu.h"

/* ---- clock.h ------------------------------------------------------------------------- */

static void test_system_clock(void **state)
{
    (void)state;
    assert_true(sluice_clock_is_system(NULL));
    assert_true(sluice_clock_is_system(sluice_clock_system()));
    sluice_clock copy = *sluice_clock_system(); /* the same clock by value */
    assert_true(sluice_clock_is_system(&copy));
    sluice_fake_clock fc;
    sluice_fake_clock_init(&fc, 0);
    assert_false(sluice_clock_is_system(&fc.clock));
    uint64_t last = 0;
    for (int i = 0; i < 100000; i++) {
        const sluice_clock *c = i % 3 == 0 ? NULL : i % 3 == 1 ? sluice_clock_system() : &copy;
        uint64_t now = sluice_clock_now(c);
        assert_true(now >= last);
        last = now;
    }
    assert_true(last > 0);
}

static void test_fake_clock_extremes(void **state)
{
    (void)state;
    sluice_fake_clock fc;
    sluice_fake_clock_init(&fc, UINT64_MAX);
    assert_true(sluice_clock_now(&fc.clock) == UINT64_MAX);
    sluice_fake_clock_advance(&fc, 0);
    assert_true(sluice_clock_now(&fc.clock) == UINT64_MAX);
    sluice_fake_clock_advance(&fc, 1); /* past the top: stays there */
    assert_true(sluice_clock_now(&fc.clock) == UINT64_MAX);
    sluice_fake_clock_init(&fc, 10);
    sluice_fake_clock_advance(&fc, UINT64_MAX);
    assert_true(sluice_clock_now(&fc.clock) == UINT64_MAX);
    sluice_fake_clock_init(&fc, UINT64_MAX - 5);
    sluice_fake_clock_advance(&fc, 5);
    assert_true(sluice_clock_now(&fc.clock) == UINT64_MAX);
    /* set may move it anywhere (the test's business), advance goes on from there. */
    sluice_fake_clock_set(&fc, 3);
    assert_true(sluice_clock_now(&fc.clock) == 3);
    sluice_fake_clock_advance(&fc, 4);
    assert_true(sluice_clock_now(&fc.clock) == 7);
    /* NULL: no-ops. */
    sluice_fake_clock_init(NULL, 1);
    sluice_fake_clock_advance(NULL, 1);
    sluice_fake_clock_set(NULL, 1);
}

typedef struct adv {
    sluice_fake_clock *fc;
    atomic_int backwards;
} adv;

static void *advancer(void *arg)
{
    adv *a = arg;
    uint64_t last = sluice_clock_now(&a->fc->clock);
    for (int i = 0; i < 20000; i++) {
        sluice_fake_clock_advance(a->fc, i % 2 ? UINT64_MAX / 3 : 1);
        uint64_t now = sluice_clock_now(&a->fc->clock);
        if (now < last) {
            atomic_fetch_add(&a->backwards, 1);
        }
        last = now;
    }
    return NULL;
}

/* Advances from several threads near the top never move time backwards. */
static void test_fake_clock_concurrent_saturation(void **state)
{
    (void)state;
    sluice_fake_clock fc;
    sluice_fake_clock_init(&fc, UINT64_MAX / 2);
    adv a = {.fc = &fc};
    pthread_t th[4];
    for (int i = 0; i < 4; i++) {
        assert_int_equal(pthread_create(&th[i], NULL, advancer, &a), 0);
    }
    for (int i = 0; i < 4; i++) {
        pthread_join(th[i], NULL);
    }
    assert_int_equal(atomic_load(&a.backwards), 0);
    assert_true(sluice_clock_now(&fc.clock) == UINT64_MAX);
}

/* ---- cpu.h ------------------------------------------------------------------------- */

static char root[256];

static void put(const char *rel, const char *content)
{
    char path[1024];
    snprintf(path, sizeof path, "%s%s", root, rel);
    for (char *p = path + strlen(root) + 1; *p; p++) { /* mkdir -p */
        if (*p == '/') {
            *p = '\0';
            if (mkdir(path, 0755) != 0 && errno != EEXIST) {
                fail_msg("mkdir %s: %s", path, strerror(errno));
            }
            *p = '/';
        }
    }
    FILE *f = fopen(path, "w");
    if (!f) {
        fail_msg("open %s: %s", path, strerror(errno));
    }
    fputs(content, f);
    fclose(f);
}

static int cpu_setup(void **state)
{
    (void)state;
    snprintf(root, sizeof root, "/tmp/sluice-cpu-contracts-XXXXXX");
    return mkdtemp(root) ? 0 : -1;
}

static int cpu_teardown(void **state)
{
    (void)state;
    char cmd[512];
    snprintf(cmd, sizeof cmd, "rm -rf '%s'", root);
    return system(cmd) == 0 ? 0 : -1;
}

/* The CPUs the process may use before any quota. */
static unsigned unquoted(const sluice_cpu_limits *l)
{
    return l->affinity ? l->affinity : l->online;
}

static void test_cpu_quota_extremes(void **state)
{
    (void)state;
    static const struct {
        const char *cgroup;  /* proc/self/cgroup */
        const char *file;    /* the quota file under root */
        const char *content; /* its content */
        const char *file2;   /* a second file (v1 period), or NULL */
        const char *content2;
        int want_quota_cpus; /* -1: no limit (the unquoted count); else the cap */
    } cases[] = {
        /* v2: huge quotas are no limit; tiny ones one CPU. */
        {"0::/a\n", "/sys/fs/cgroup/a/cpu.max", "18446744073709551615 1\n", NULL, NULL, -1},
        {"0::/a\n", "/sys/fs/cgroup/a/cpu.max", "99999999999999999 100000\n", NULL, NULL, -1},
        {"0::/a\n", "/sys/fs/cgroup/a/cpu.max", "4294967296 1\n", NULL, NULL, -1},
        {"0::/a\n", "/sys/fs/cgroup/a/cpu.max", "1 1000000\n", NULL, NULL, 1},
        {"0::/a\n", "/sys/fs/cgroup/a/cpu.max", "1 18446744073709551615\n", NULL, NULL, 1},
        {"0::/a\n", "/sys/fs/cgroup/a/cpu.max", "100000 0\n", NULL, NULL, -1},   /* period 0: ignored */
        {"0::/a\n", "/sys/fs/cgroup/a/cpu.max", "0 100000\n", NULL, NULL, -1},   /* quota 0: ignored */
        {"0::/a\n", "/sys/fs/cgroup/a/cpu.max", "1e9 100000\n", NULL, NULL, -1}, /* not a number */
        {"0::/a\n", "/sys/fs/cgroup/a/cpu.max", "\n", NULL, NULL, -1},           /* empty */
        {"0::/a\n", "/sys/fs/cgroup/a/cpu.max", "150000 100000", NULL, NULL, 2}, /* no newline */
        /* v1: the same at the top of a signed 64-bit quota. */
        {"4:cpu,cpuacct:/b\n", "/sys/fs/cgroup/cpu,cpuacct/b/cpu.cfs_quota_us", "9223372036854775807\n",
         "/sys/fs/cgroup/cpu,cpuacct/b/cpu.cfs_period_us", "1\n", -1},
        {"4:cpu,cpuacct:/b\n", "/sys/fs/cgroup/cpu,cpuacct/b/cpu.cfs_quota_us", "1\n",
         "/sys/fs/cgroup/cpu,cpuacct/b/cpu.cfs_period_us", "9223372036854775807\n", 1},
        {"4:cpu,cpuacct:/b\n", "/sys/fs/cgroup/cpu,cpuacct/b/cpu.cfs_quota_us", "-1\n",
         "/sys/fs/cgroup/cpu,cpuacct/b/cpu.cfs_period_us", "100000\n", -1},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        char cmd[600];
        snprintf(cmd, sizeof cmd, "rm -rf '%s'/proc '%s'/sys", root, root);
        assert_int_equal(system(cmd), 0);
        put("/proc/self/cgroup", cases[i].cgroup);
        put(cases[i].file, cases[i].content);
        if (cases[i].file2) {
            put(cases[i].file2, cases[i].content2);
        }
        sluice_cpu_limits l;
        memset(&l, 0xff, sizeof l);
        sluice_cpu_limits_get_at(root, &l);
        unsigned base = unquoted(&l);
        unsigned want = cases[i].want_quota_cpus < 0                ? base
                        : (unsigned)cases[i].want_quota_cpus < base ? (unsigned)cases[i].want_quota_cpus
                                                                    : base;
        if (l.effective != want) {
            fail_msg("case %zu (%s = %s): effective %u, want %u (quota %g, affinity %u, online %u)", i,
                     cases[i].file, cases[i].content, l.effective, want, l.cgroup_quota, l.affinity,
                     l.online);
        }
        assert_true(l.effective >= 1);
        assert_true(l.cgroup_quota >= 0);
    }
    /* The real system: the plain call agrees with the detail call; NULL
     * out is a no-op; a NULL root is the real one. */
    sluice_cpu_limits real, at;
    sluice_cpu_limits_get(&real);
    sluice_cpu_limits_get_at(NULL, &at);
    assert_int_equal(real.effective, at.effective);
    assert_int_equal(sluice_cpu_count(), real.effective);
    assert_true(real.effective >= 1 && real.effective <= unquoted(&real));
    sluice_cpu_limits_get(NULL);
    sluice_cpu_limits_get_at(root, NULL);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_system_clock),
        cmocka_unit_test(test_fake_clock_extremes),
        cmocka_unit_test(test_fake_clock_concurrent_saturation),
        cmocka_unit_test_setup_teardown(test_cpu_quota_extremes, cpu_setup, cpu_teardown),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
