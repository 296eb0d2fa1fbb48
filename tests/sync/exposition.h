/*
 * tests/sync/exposition.h - checks on the Prometheus text a registry
 * renders, for the sync primitives' metric tests.
 *
 * Include after <cmocka.h>: a failure fails the calling test.
 */
#ifndef SLUICE_TESTS_SYNC_EXPOSITION_H
#define SLUICE_TESTS_SYNC_EXPOSITION_H

#include <string.h>

#include "sluice/metrics.h"

/* The registry's exposition (Prometheus text), malloc'ed: free it. */
static inline char *expo_render(sluice_metrics *reg)
{
    char *text = NULL;
    size_t len = 0;
    assert_int_equal(sluice_metrics_render(reg, SLUICE_EXPO_PROMETHEUS, &text, &len), SLUICE_OK);
    return text;
}

/* Fails the test, printing the whole text, unless it contains `line`. */
static inline void has(const char *text, const char *line)
{
    if (!strstr(text, line)) {
        fail_msg("missing in exposition: %s\n---\n%s", line, text);
    }
}

#endif /* SLUICE_TESTS_SYNC_EXPOSITION_H */
