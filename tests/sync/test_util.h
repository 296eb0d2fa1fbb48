/*
 * tests/sync/test_util.h - small helpers shared by the sync tests.
 */
#ifndef SLUICE_TESTS_SYNC_UTIL_H
#define SLUICE_TESTS_SYNC_UTIL_H

#include <stdlib.h>

/* SLUICE_STRESS_SCALE (default 1 = the short CI size). */
static inline int test_stress_scale(void)
{
    const char *s = getenv("SLUICE_STRESS_SCALE");
    int v = s ? atoi(s) : 1;
    return v > 0 ? v : 1;
}

#endif
