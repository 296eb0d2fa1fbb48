/*
 * sluice/cpu.h - how many CPUs this process may really use.
 */
#ifndef SLUICE_CPU_H
#define SLUICE_CPU_H

#include "sluice/common.h"

/*
 * sluice_cpu_count - CPUs this process may use: the smaller of the CPUs in
 * its affinity mask (sched_getaffinity) and its cgroup CPU quota (cgroup
 * v2 cpu.max or v1 cpu.cfs_quota_us / cpu.cfs_period_us), rounded up, and
 * at least 1. A quota of at least the mask's CPUs does not limit, however
 * large (up to cpu.max's 2^64 - 1). Use it to size CPU-bound pools (K = CPUs).
 * Thread-safety: safe; reads /proc and /sys each call (not cached).
 * This lives outside the core (src/sys) because it reads files.
 */
SLUICE_API unsigned sluice_cpu_count(void);

/* sluice_cpu_count_detail - the same, with where each limit came from. */
typedef struct sluice_cpu_limits {
    unsigned online;     /* sysconf(_SC_NPROCESSORS_ONLN) */
    unsigned affinity;   /* CPUs in the affinity mask (0: unknown) */
    double cgroup_quota; /* quota/period in CPUs; 0 when no quota */
    int cgroup_version;  /* 1, 2, or 0 when no cgroup limit was found */
    unsigned effective;  /* what sluice_cpu_count returns */
} sluice_cpu_limits;

SLUICE_API void sluice_cpu_limits_get(sluice_cpu_limits *out);

/* For tests: the same computation against a fake root ("/" in production)
 * containing proc/self/cgroup and sys/fs/cgroup/... files. */
SLUICE_API void sluice_cpu_limits_get_at(const char *root, sluice_cpu_limits *out);

#endif /* SLUICE_CPU_H */
