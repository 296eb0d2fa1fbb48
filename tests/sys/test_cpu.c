/*
 * tests/sys/test_cpu.c - sluice_cpu_count against fake /proc and /sys trees.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "sluice/cpu.h"

static char root[256];

static void put(const char *rel, const char *content)
{
    char path[512];
    snprintf(path, sizeof path, "%s%s", root, rel);
    /* mkdir -p of the parent */
    for (char *s = path + strlen(root) + 1; *s; s++) {
        if (*s == '/') {
            *s = '\0';
            mkdir(path, 0755);
            *s = '/';
        }
    }
    FILE *f = fopen(path, "w");
    assert_non_null(f);
    fputs(content, f);
    fclose(f);
}

static int setup(void **state)
{
    (void)state;
    snprintf(root, sizeof root, "/tmp/sluice-cpu-XXXXXX");
    assert_non_null(mkdtemp(root));
    return 0;
}

static int teardown(void **state)
{
    (void)state;
    char cmd[300];
    snprintf(cmd, sizeof cmd, "rm -rf '%s'", root);
    return system(cmd) == 0 ? 0 : -1;
}

static void test_v2_quota(void **state)
{
    (void)state;
    put("/proc/self/cgroup", "0::/kubepods/pod1/ctr\n");
    put("/sys/fs/cgroup/kubepods/pod1/ctr/cpu.max", "50000 100000\n");
    sluice_cpu_limits l;
    sluice_cpu_limits_get_at(root, &l);
    assert_int_equal(l.cgroup_version, 2);
    assert_true(l.cgroup_quota > 0.49 && l.cgroup_quota < 0.51);
    assert_int_equal(l.effective, 1); /* half a CPU rounds up to one */
}

static void test_v2_unlimited_child_limited_parent(void **state)
{
    (void)state;
    put("/proc/self/cgroup", "0::/a/b\n");
    put("/sys/fs/cgroup/a/b/cpu.max", "max 100000\n");
    put("/sys/fs/cgroup/a/cpu.max", "100000 100000\n");
    sluice_cpu_limits l;
    sluice_cpu_limits_get_at(root, &l);
    assert_int_equal(l.cgroup_version, 2);
    assert_true(l.cgroup_quota > 0.99 && l.cgroup_quota < 1.01);
    assert_int_equal(l.effective, 1);
}

static void test_v2_no_limit(void **state)
{
    (void)state;
    put("/proc/self/cgroup", "0::/free\n");
    put("/sys/fs/cgroup/free/cpu.max", "max 100000\n");
    sluice_cpu_limits l;
    sluice_cpu_limits_get_at(root, &l);
    assert_int_equal(l.cgroup_version, 0);
    assert_true(l.cgroup_quota == 0);
    assert_int_equal(l.effective, l.affinity ? l.affinity : l.online);
}

static void test_v1_quota(void **state)
{
    (void)state;
    put("/proc/self/cgroup", "12:memory:/x\n4:cpu,cpuacct:/docker/abc\n");
    put("/sys/fs/cgroup/cpu,cpuacct/docker/abc/cpu.cfs_quota_us", "25000\n");
    put("/sys/fs/cgroup/cpu,cpuacct/docker/abc/cpu.cfs_period_us", "100000\n");
    sluice_cpu_limits l;
    sluice_cpu_limits_get_at(root, &l);
    assert_int_equal(l.cgroup_version, 1);
    assert_true(l.cgroup_quota > 0.24 && l.cgroup_quota < 0.26);
    assert_int_equal(l.effective, 1);
}

static void test_v1_unlimited(void **state)
{
    (void)state;
    put("/proc/self/cgroup", "4:cpu,cpuacct:/\n");
    put("/sys/fs/cgroup/cpu,cpuacct/cpu.cfs_quota_us", "-1\n");
    put("/sys/fs/cgroup/cpu,cpuacct/cpu.cfs_period_us", "100000\n");
    sluice_cpu_limits l;
    sluice_cpu_limits_get_at(root, &l);
    assert_int_equal(l.cgroup_version, 0);
    assert_true(l.effective >= 1);
}

static void test_garbage_is_ignored(void **state)
{
    (void)state;
    put("/proc/self/cgroup", "nonsense\n0::/g\n");
    put("/sys/fs/cgroup/g/cpu.max", "lots 0\n");
    sluice_cpu_limits l;
    sluice_cpu_limits_get_at(root, &l);
    assert_int_equal(l.cgroup_version, 0);
    assert_true(l.effective >= 1);
}

static void test_no_files(void **state)
{
    (void)state;
    sluice_cpu_limits l;
    sluice_cpu_limits_get_at(root, &l); /* empty root: no cgroup info */
    assert_int_equal(l.cgroup_version, 0);
    assert_true(l.online >= 1);
    assert_int_equal(l.effective, l.affinity ? l.affinity : l.online);
}

static void test_real_machine(void **state)
{
    (void)state;
    unsigned n = sluice_cpu_count();
    sluice_cpu_limits l;
    sluice_cpu_limits_get(&l);
    assert_true(n >= 1);
    assert_int_equal(n, l.effective);
    assert_true(n <= l.online || l.affinity >= n);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_v2_quota, setup, teardown),
        cmocka_unit_test_setup_teardown(test_v2_unlimited_child_limited_parent, setup, teardown),
        cmocka_unit_test_setup_teardown(test_v2_no_limit, setup, teardown),
        cmocka_unit_test_setup_teardown(test_v1_quota, setup, teardown),
        cmocka_unit_test_setup_teardown(test_v1_unlimited, setup, teardown),
        cmocka_unit_test_setup_teardown(test_garbage_is_ignored, setup, teardown),
        cmocka_unit_test_setup_teardown(test_no_files, setup, teardown),
        cmocka_unit_test(test_real_machine),
    };
    return cmocka_run_group_tests_name("sys_cpu", tests, NULL, NULL);
}
