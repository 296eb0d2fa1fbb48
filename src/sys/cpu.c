/*
 * src/sys/cpu.c - how many CPUs this process may really use.
 *
 * A container on a 64-core host with a quota of 2 CPUs that sizes a
 * CPU-bound pool by sysconf(_SC_NPROCESSORS_ONLN) runs 64 threads on 2 CPUs'
 * worth of time and is throttled by the CFS bandwidth controller every
 * period. sluice_cpu_count() takes the smaller of:
 *
 *   - the CPUs in the affinity mask (sched_getaffinity: taskset, cpusets);
 *   - the cgroup CPU quota, rounded up: v2 `cpu.max` ("max 100000" or
 *     "200000 100000"), or v1 `cpu.cfs_quota_us` / `cpu.cfs_period_us`
 *     (quota -1 = none), in the process's own cgroup as named by
 *     /proc/self/cgroup, looked up under /sys/fs/cgroup (v2 unified, or v1
 *     mounted at /sys/fs/cgroup/cpu or /sys/fs/cgroup/cpu,cpuacct). Each
 *     ancestor's limit applies too, so the walk goes from the process's
 *     cgroup up to the root and keeps the smallest quota.
 *
 * The same idea as Go's automaxprocs. This file reads /proc and /sys, so it
 * lives in src/sys and not in the core, which never reads files.
 * sluice_cpu_limits_get_at() takes a root directory so tests can lay out a
 * fake /proc and /sys tree.
 *
 * Thread-safety: no shared state; every call reads afresh.
 */
#include <math.h>
#include <sched.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "sluice/cpu.h"

static bool read_line(const char *root, const char *path, char *buf, size_t len)
{
    char full[4096];
    snprintf(full, sizeof full, "%s%s", root, path);
    FILE *f = fopen(full, "re");
    if (!f) {
        return false;
    }
    bool ok = fgets(buf, (int)len, f) != NULL;
    fclose(f);
    if (ok) {
        buf[strcspn(buf, "\n")] = '\0';
    }
    return ok;
}

/* Quota in CPUs from a v2 cpu.max file at dir; 0 = none or unreadable. */
static double v2_quota(const char *root, const char *dir)
{
    char path[4096], line[256];
    snprintf(path, sizeof path, "/sys/fs/cgroup%s/cpu.max", dir);
    if (!read_line(root, path, line, sizeof line)) {
        return 0;
    }
    char quota[64];
    unsigned long long period = 0;
    if (sscanf(line, "%63s %llu", quota, &period) != 2 || period == 0 || strcmp(quota, "max") == 0) {
        return 0;
    }
    if (quota[0] < '0' || quota[0] > '9') { /* strtoull would accept "-5" as a huge value */
        return 0;
    }
    char *end;
    unsigned long long q = strtoull(quota, &end, 10);
    if (*end != '\0' || q == 0) {
        return 0;
    }
    return (double)q / (double)period;
}

/* Quota in CPUs from v1 cfs files under base/dir; 0 = none. */
static double v1_quota(const char *root, const char *base, const char *dir)
{
    char path[4096], line[64];
    snprintf(path, sizeof path, "%s%s/cpu.cfs_quota_us", base, dir);
    if (!read_line(root, path, line, sizeof line)) {
        return 0;
    }
    long long quota = strtoll(line, NULL, 10);
    snprintf(path, sizeof path, "%s%s/cpu.cfs_period_us", base, dir);
    if (quota <= 0 || !read_line(root, path, line, sizeof line)) {
        return 0;
    }
    long long period = strtoll(line, NULL, 10);
    return period > 0 ? (double)quota / (double)period : 0;
}

/* Walks dir and its ancestors, keeping the smallest quota found. */
static double walk_up(const char *root, int version, const char *base, const char *dir_in)
{
    char dir[2048];
    snprintf(dir, sizeof dir, "%s", strcmp(dir_in, "/") == 0 ? "" : dir_in);
    double best = 0;
    for (;;) {
        double q = version == 2 ? v2_quota(root, dir) : v1_quota(root, base, dir);
        if (q > 0 && (best == 0 || q < best)) {
            best = q;
        }
        if (dir[0] == '\0') {
            break;
        }
        char *slash = strrchr(dir, '/');
        if (!slash) {
            break;
        }
        *slash = '\0';
    }
    return best;
}

static void cgroup_quota(const char *root, sluice_cpu_limits *out)
{
    char path[4096];
    snprintf(path, sizeof path, "%s/proc/self/cgroup", root);
    FILE *f = fopen(path, "re");
    if (!f) {
        return;
    }
    char line[4096];
    double best = 0;
    int version = 0;
    while (fgets(line, sizeof line, f)) {
        line[strcspn(line, "\n")] = '\0';
        /* "hierarchy-id:controllers:path" */
        char *c1 = strchr(line, ':');
        char *c2 = c1 ? strchr(c1 + 1, ':') : NULL;
        if (!c2) {
            continue;
        }
        *c1 = '\0';
        *c2 = '\0';
        const char *controllers = c1 + 1;
        const char *cg = c2 + 1;
        double q = 0;
        int v = 0;
        if (strcmp(line, "0") == 0 && controllers[0] == '\0') {
            q = walk_up(root, 2, NULL, cg);
            v = 2;
        } else {
            /* v1: the cpu controller, alone or with cpuacct. */
            char list[256];
            snprintf(list, sizeof list, ",%s,", controllers);
            if (strstr(list, ",cpu,")) {
                q = walk_up(root, 1, "/sys/fs/cgroup/cpu,cpuacct", cg);
                if (q == 0) {
                    q = walk_up(root, 1, "/sys/fs/cgroup/cpu", cg);
                }
                v = 1;
            }
        }
        if (q > 0 && (best == 0 || q < best)) {
            best = q;
            version = v;
        }
    }
    fclose(f);
    out->cgroup_quota = best;
    out->cgroup_version = best > 0 ? version : 0;
}

static void compute(const char *root, bool use_affinity, sluice_cpu_limits *out)
{
    memset(out, 0, sizeof *out);
    long online = sysconf(_SC_NPROCESSORS_ONLN);
    out->online = online > 0 ? (unsigned)online : 1;
    if (use_affinity) {
        cpu_set_t set;
        CPU_ZERO(&set);
        if (sched_getaffinity(0, sizeof set, &set) == 0) {
            out->affinity = (unsigned)CPU_COUNT(&set);
        }
    }
    cgroup_quota(root, out);

    unsigned n = out->affinity ? out->affinity : out->online;
    /* A quota of n CPUs or more does not limit; below it, its ceiling fits
     * an unsigned (converting a double past UINT_MAX was undefined, and a
     * quota of 2^64 - 1 us per us came out as 0 CPUs, so 1). */
    if (out->cgroup_quota > 0 && out->cgroup_quota < (double)n) {
        n = (unsigned)ceil(out->cgroup_quota);
    }
    out->effective = n > 0 ? n : 1;
}

void sluice_cpu_limits_get(sluice_cpu_limits *out)
{
    if (out) {
        compute("", true, out);
    }
}

void sluice_cpu_limits_get_at(const char *root, sluice_cpu_limits *out)
{
    if (out) {
        compute(root ? root : "", true, out);
    }
}

unsigned sluice_cpu_count(void)
{
    sluice_cpu_limits l;
    compute("", true, &l);
    return l.effective;
}
