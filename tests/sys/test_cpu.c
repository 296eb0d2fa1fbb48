/*
 * tests/sys/test_cpu.c - sluice_cpu_count and the limits behind it.
 *
 * The cgroup logic is tested against fake trees: each test lays out
 * proc/self/cgroup and sys/fs/cgroup/... files under a fresh temporary
 * directory and calls sluice_cpu_limits_get_at(root). The affinity mask
 * is the real one of this process, so expectations are written relative
 * to it (effective = min(affinity, ceil(quota))).
 */
#include <errno.h>
#include <sched.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cmocka.h>

#include "sluice/cpu.h"

static char root[256];

/* mkdir -p for root + path's directory part. */
static void mkdirs(const char *rel)
{
    char path[1024];
    snprintf(path, sizeof path, "%s%s", root, rel);
    for (char *p = path + strlen(root) + 1; *p; p++) {
        if (*p == '/') {
            *p = '\0';
            if (mkdir(path, 0755) != 0 && errno != EEXIST) {
                fail_msg("mkdir %s: %s", path, strerror(errno));
            }
            *p = '/';
        }
    }
}

static void put(const char *rel, const char *content)
{
    mkdirs(rel);
    char path[1024];
    snprintf(path, sizeof path, "%s%s", root, rel);
    FILE *f = fopen(path, "w");
    if (!f) {
        fail_msg("open %s: %s", path, strerror(errno));
    }
    fputs(content, f);
    fclose(f);
}

static int setup(void **state)
{
    (void)state;
    snprintf(root, sizeof root, "/tmp/sluice-cpu-XXXXXX");
    if (!mkdtemp(root)) {
        return -1;
    }
    return 0;
}

static int teardown(void **state)
{
    (void)state;
    char cmd[512];
    snprintf(cmd, sizeof cmd, "rm -rf '%s'", root);
    return system(cmd) == 0 ? 0 : -1;
}

static unsigned affinity_count(void)
{
    cpu_set_t set;
    CPU_ZERO(&set);
    if (sched_getaffinity(0, sizeof set, &set) != 0) {
        return 0;
    }
    return (unsigned)CPU_COUNT(&set);
}

static unsigned min_u(unsigned a, unsigned b)
{
    return a < b ? a : b;
}

static void expect(double quota, int version, unsigned quota_cpus)
{
    sluice_cpu_limits l;
    memset(&l, 0xff, sizeof l);
    sluice_cpu_limits_get_at(root, &l);
    unsigned aff = affinity_count();
    assert_true(l.online >= 1);
    assert_int_equal(l.affinity, aff);
    if (quota == 0) {
        assert_true(l.cgroup_quota == 0);
        assert_int_equal(l.cgroup_version, 0);
        assert_int_equal(l.effective, aff ? aff : l.online);
    } else {
        if (!(l.cgroup_quota > quota - 1e-9 && l.cgroup_quota < quota + 1e-9)) {
            fail_msg("quota: want %g, got %g", quota, l.cgroup_quota);
        }
        assert_int_equal(l.cgroup_version, version);
        assert_int_equal(l.effective, min_u(aff ? aff : l.online, quota_cpus));
    }
    assert_true(l.effective >= 1);
}

static void test_no_cgroup_file(void **state)
{
    (void)state;
    expect(0, 0, 0);
}

static void test_v2_fractional_quota_rounds_up(void **state)
{
    (void)state;
    put("/proc/self/cgroup", "0::/app/svc\n");
    put("/sys/fs/cgroup/app/svc/cpu.max", "150000 100000\n");
    expect(1.5, 2, 2);
}

static void test_v2_max_is_no_limit(void **state)
{
    (void)state;
    put("/proc/self/cgroup", "0::/app/svc\n");
    put("/sys/fs/cgroup/app/svc/cpu.max", "max 100000\n");
    expect(0, 0, 0);
}

static void test_v2_ancestor_limit_applies(void **state)
{
    (void)state;
    put("/proc/self/cgroup", "0::/app/svc\n");
    put("/sys/fs/cgroup/app/svc/cpu.max", "max 100000\n");
    put("/sys/fs/cgroup/app/cpu.max", "50000 100000\n");
    expect(0.5, 2, 1); /* half a CPU is still one */
}

static void test_v2_smallest_in_chain(void **state)
{
    (void)state;
    put("/proc/self/cgroup", "0::/a/b/c\n");
    put("/sys/fs/cgroup/a/b/c/cpu.max", "400000 100000\n");
    put("/sys/fs/cgroup/a/b/cpu.max", "300000 100000\n");
    put("/sys/fs/cgroup/a/cpu.max", "800000 100000\n");
    expect(3.0, 2, 3);
}

static void test_v2_namespaced_root(void **state)
{
    (void)state;
    put("/proc/self/cgroup", "0::/\n");
    put("/sys/fs/cgroup/cpu.max", "100000 100000\n");
    expect(1.0, 2, 1);
}

static void test_v2_garbage_ignored(void **state)
{
    (void)state;
    const char *bad[] = {"garbage\n", "0 100000\n", "100000 0\n", "-5 100000\n", "\n", "12abc 100000\n"};
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        put("/proc/self/cgroup", "0::/x\n");
        put("/sys/fs/cgroup/x/cpu.max", bad[i]);
        sluice_cpu_limits l;
        sluice_cpu_limits_get_at(root, &l);
        if (l.cgroup_quota != 0 || l.cgroup_version != 0) {
            fail_msg("cpu.max '%s' should be ignored, got quota %g", bad[i], l.cgroup_quota);
        }
        assert_true(l.effective >= 1);
    }
}

static void test_v1_cpu_cpuacct(void **state)
{
    (void)state;
    put("/proc/self/cgroup",
        "12:memory:/docker/abc\n4:cpu,cpuacct:/docker/abc\n1:name=systemd:/docker/abc\n");
    put("/sys/fs/cgroup/cpu,cpuacct/docker/abc/cpu.cfs_quota_us", "300000\n");
    put("/sys/fs/cgroup/cpu,cpuacct/docker/abc/cpu.cfs_period_us", "100000\n");
    expect(3.0, 1, 3);
}

static void test_v1_cpu_only_mount(void **state)
{
    (void)state;
    put("/proc/self/cgroup", "3:cpuacct,cpu:/job\n");
    put("/sys/fs/cgroup/cpu/job/cpu.cfs_quota_us", "250000\n");
    put("/sys/fs/cgroup/cpu/job/cpu.cfs_period_us", "100000\n");
    expect(2.5, 1, 3);
}

/* A quarter of a CPU is still one. */
static void test_v1_fraction_below_one(void **state)
{
    (void)state;
    put("/proc/self/cgroup", "12:memory:/x\n4:cpu,cpuacct:/docker/abc\n");
    put("/sys/fs/cgroup/cpu,cpuacct/docker/abc/cpu.cfs_quota_us", "25000\n");
    put("/sys/fs/cgroup/cpu,cpuacct/docker/abc/cpu.cfs_period_us", "100000\n");
    expect(0.25, 1, 1);
}

/* Lines that are not "id:controllers:path" in /proc/self/cgroup are skipped. */
static void test_cgroup_file_garbage_lines(void **state)
{
    (void)state;
    put("/proc/self/cgroup", "nonsense\n\n::\n0::/g\n");
    put("/sys/fs/cgroup/g/cpu.max", "200000 100000\n");
    expect(2.0, 2, 2);
}

static void test_v1_unlimited(void **state)
{
    (void)state;
    put("/proc/self/cgroup", "4:cpu,cpuacct:/docker/abc\n");
    put("/sys/fs/cgroup/cpu,cpuacct/docker/abc/cpu.cfs_quota_us", "-1\n");
    put("/sys/fs/cgroup/cpu,cpuacct/docker/abc/cpu.cfs_period_us", "100000\n");
    expect(0, 0, 0);
}

/* Inside a container the host path of /proc/self/cgroup does not exist
 * under the mount: the limit at the mount root applies. */
static void test_v1_container_mount_root(void **state)
{
    (void)state;
    put("/proc/self/cgroup", "4:cpu,cpuacct:/kubepods/pod1/ctr\n");
    put("/sys/fs/cgroup/cpu,cpuacct/cpu.cfs_quota_us", "100000\n");
    put("/sys/fs/cgroup/cpu,cpuacct/cpu.cfs_period_us", "100000\n");
    expect(1.0, 1, 1);
}

/* A cpuset-only line ("cpuset" contains "cpu") is not the cpu controller. */
static void test_v1_cpuset_is_not_cpu(void **state)
{
    (void)state;
    put("/proc/self/cgroup", "5:cpuset:/x\n");
    put("/sys/fs/cgroup/cpu/x/cpu.cfs_quota_us", "100000\n");
    put("/sys/fs/cgroup/cpu/x/cpu.cfs_period_us", "100000\n");
    expect(0, 0, 0);
}

/* A quota larger than the affinity mask does not raise the count. */
static void test_quota_above_affinity(void **state)
{
    (void)state;
    put("/proc/self/cgroup", "0::/big\n");
    put("/sys/fs/cgroup/big/cpu.max", "100000000 100000\n"); /* 1000 CPUs */
    sluice_cpu_limits l;
    sluice_cpu_limits_get_at(root, &l);
    assert_true(l.cgroup_quota > 999);
    assert_int_equal(l.effective, affinity_count() ? affinity_count() : l.online);
}

static void test_real_system(void **state)
{
    (void)state;
    unsigned n = sluice_cpu_count();
    sluice_cpu_limits l;
    sluice_cpu_limits_get(&l);
    assert_true(n >= 1);
    assert_int_equal(n, l.effective);
    assert_true(l.affinity == 0 || n <= l.affinity);
    assert_true(n <= l.online || l.affinity > l.online);
    sluice_cpu_limits_get(NULL);        /* no crash */
    sluice_cpu_limits_get_at(NULL, &l); /* NULL root = "/" */
    assert_int_equal(l.effective, n);
    print_message("cpu: online %u affinity %u quota %g (v%d) -> %u\n", l.online, l.affinity, l.cgroup_quota,
                  l.cgroup_version, l.effective);
}

#define T(fn) cmocka_unit_test_setup_teardown(fn, setup, teardown)

int main(void)
{
    const struct CMUnitTest tests[] = {
        T(test_no_cgroup_file),
        T(test_v2_fractional_quota_rounds_up),
        T(test_v2_max_is_no_limit),
        T(test_v2_ancestor_limit_applies),
        T(test_v2_smallest_in_chain),
        T(test_v2_namespaced_root),
        T(test_v2_garbage_ignored),
        T(test_v1_cpu_cpuacct),
        T(test_v1_cpu_only_mount),
        T(test_v1_fraction_below_one),
        T(test_cgroup_file_garbage_lines),
        T(test_v1_unlimited),
        T(test_v1_container_mount_root),
        T(test_v1_cpuset_is_not_cpu),
        T(test_quota_above_affinity),
        cmocka_unit_test(test_real_system),
    };
    return cmocka_run_group_tests_name("sys_cpu", tests, NULL, NULL);
}
