/*
 * tests/sync/test_sync_metrics.c - the sync primitives in the exposition:
 * family names, name labels, values after known operations, histogram
 * lines, duplicate and missing entries, and removal.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "sluice/sync_metrics.h"

static char *render(sluice_metrics *reg)
{
    char *text = NULL;
    size_t len = 0;
    assert_int_equal(sluice_metrics_render(reg, SLUICE_EXPO_PROMETHEUS, &text, &len), SLUICE_OK);
    return text;
}

static void has(const char *text, const char *line)
{
    if (!strstr(text, line)) {
        fail_msg("missing in exposition: %s\n---\n%s", line, text);
    }
}

static int ok_task(void *arg)
{
    (void)arg;
    return 0;
}

static void test_exposition(void **state)
{
    (void)state;
    sluice_metrics *reg;
    assert_int_equal(sluice_metrics_create(NULL, &reg), SLUICE_OK);
    sluice_sync_metrics *sm;
    assert_int_equal(sluice_sync_metrics_create(reg, &sm), SLUICE_OK);

    sluice_sem_config sc;
    sluice_sem_config_init(&sc);
    sc.name = "decode";
    sc.capacity = 10;
    sluice_sem *sem;
    assert_int_equal(sluice_sem_create(&sc, &sem, NULL, 0), SLUICE_OK);
    sluice_sem_acquire(sem, 3, NULL);
    sluice_sem_release(sem, 20); /* refused: counted */

    sluice_breaker_config bc;
    sluice_breaker_config_init(&bc);
    bc.name = "payments";
    bc.consecutive_failures = 1;
    sluice_breaker *br;
    assert_int_equal(sluice_breaker_create(&bc, &br, NULL, 0), SLUICE_OK);
    uint64_t t;
    sluice_breaker_allow(br, &t);
    sluice_breaker_record(br, t, SLUICE_BREAKER_FAILURE);
    sluice_breaker_allow(br, &t); /* rejected: open */

    sluice_limiter_config lc;
    sluice_limiter_config_init(&lc);
    lc.name = "ingest";
    lc.rate = 1;
    lc.burst = 2;
    sluice_limiter *lim;
    assert_int_equal(sluice_limiter_create(&lc, &lim, NULL, 0), SLUICE_OK);
    sluice_limiter_allow(lim);
    sluice_limiter_allow(lim);
    sluice_limiter_allow(lim); /* limited */

    sluice_keyed_limiter_config kc;
    sluice_keyed_limiter_config_init(&kc);
    kc.name = "tenants";
    kc.rate = 1;
    kc.burst = 1;
    kc.max_keys = 2;
    sluice_keyed_limiter *kl;
    assert_int_equal(sluice_keyed_limiter_create(&kc, &kl, NULL, 0), SLUICE_OK);
    sluice_keyed_limiter_allow(kl, "a", 1);
    sluice_keyed_limiter_allow(kl, "b", 1);
    sluice_keyed_limiter_allow(kl, "c", 1); /* evicts a */

    sluice_group_config gc;
    sluice_group_config_init(&gc);
    gc.name = "fanout";
    gc.threads = 1;
    sluice_group *g;
    assert_int_equal(sluice_group_create(&gc, &g, NULL, 0), SLUICE_OK);
    sluice_group_run(g, ok_task, NULL);
    sluice_group_run(g, ok_task, NULL);
    sluice_group_wait(g, NULL);

    assert_int_equal(sluice_sync_metrics_add_sem(sm, sem), SLUICE_OK);
    assert_int_equal(sluice_sync_metrics_add_sem(sm, sem), SLUICE_EBUSY);
    assert_int_equal(sluice_sync_metrics_add_breaker(sm, br), SLUICE_OK);
    assert_int_equal(sluice_sync_metrics_add_limiter(sm, lim), SLUICE_OK);
    assert_int_equal(sluice_sync_metrics_add_keyed_limiter(sm, kl), SLUICE_OK);
    assert_int_equal(sluice_sync_metrics_add_group(sm, g), SLUICE_OK);
    assert_int_equal(sluice_sync_metrics_add_group(NULL, g), SLUICE_EINVAL);

    /* Another semaphore with the same name would duplicate series. */
    sluice_sem *twin;
    assert_int_equal(sluice_sem_create(&sc, &twin, NULL, 0), SLUICE_OK);
    assert_int_equal(sluice_sync_metrics_add_sem(sm, twin), SLUICE_EBUSY);
    sluice_sem_destroy(twin);

    char *text = render(reg);
    has(text, "# TYPE sluice_semaphore_in_use gauge");
    has(text, "sluice_semaphore_capacity{name=\"decode\"} 10\n");
    has(text, "sluice_semaphore_in_use{name=\"decode\"} 3\n");
    has(text, "sluice_semaphore_acquired_total{name=\"decode\"} 1\n");
    has(text, "sluice_semaphore_release_errors_total{name=\"decode\"} 1\n");
    has(text, "# TYPE sluice_semaphore_acquire_wait_seconds histogram");
    has(text, "sluice_semaphore_acquire_wait_seconds_count{name=\"decode\"} 1\n");
    has(text, "sluice_breaker_state{name=\"payments\"} 1\n");
    has(text, "sluice_breaker_calls_total{name=\"payments\",outcome=\"failure\"} 1\n");
    has(text, "sluice_breaker_rejected_total{name=\"payments\"} 1\n");
    has(text, "sluice_breaker_transitions_total{name=\"payments\",to=\"open\"} 1\n");
    has(text, "sluice_limiter_allowed_total{name=\"ingest\"} 2\n");
    has(text, "sluice_limiter_limited_total{name=\"ingest\"} 1\n");
    has(text, "sluice_keyed_limiter_keys{name=\"tenants\"} 2\n");
    has(text, "sluice_keyed_limiter_evictions_total{name=\"tenants\"} 1\n");
    has(text, "sluice_group_tasks_total{name=\"fanout\",outcome=\"completed\"} 2\n");
    has(text, "sluice_group_running{name=\"fanout\"} 0\n");
    free(text);

    assert_int_equal(sluice_sync_metrics_remove_sem(sm, sem), SLUICE_OK);
    assert_int_equal(sluice_sync_metrics_remove_sem(sm, sem), SLUICE_ENOENT);
    assert_int_equal(sluice_sync_metrics_remove_breaker(sm, br), SLUICE_OK);
    text = render(reg);
    assert_null(strstr(text, "sluice_semaphore_"));
    assert_null(strstr(text, "sluice_breaker_"));
    has(text, "sluice_limiter_tokens{name=\"ingest\"}");
    free(text);

    sluice_sync_metrics_remove_limiter(sm, lim);
    sluice_sync_metrics_remove_keyed_limiter(sm, kl);
    sluice_sync_metrics_remove_group(sm, g);
    sluice_sync_metrics_destroy(sm);
    sluice_sync_metrics_destroy(NULL);
    sluice_metrics_destroy(reg);
    sluice_group_destroy(g);
    sluice_keyed_limiter_destroy(kl);
    sluice_limiter_destroy(lim);
    sluice_breaker_destroy(br);
    sluice_sem_release(sem, 3);
    sluice_sem_destroy(sem);
}

/* An adaptive limiter: a slower downstream re-based through a probe (as
 * tests/sync/test_adaptive.c drives it), a call held, one refused, one
 * released as dropped; every family reads what the stats say. */
static void test_adaptive(void **state)
{
    (void)state;
    sluice_metrics *reg;
    assert_int_equal(sluice_metrics_create(NULL, &reg), SLUICE_OK);
    sluice_sync_metrics *sm;
    assert_int_equal(sluice_sync_metrics_create(reg, &sm), SLUICE_OK);
    sluice_adaptive_config ac;
    sluice_adaptive_config_init(&ac);
    ac.name = "downstream";
    ac.mode = SLUICE_ADAPTIVE_GRADIENT2;
    ac.min_limit = 1;
    ac.max_limit = 100;
    ac.initial_limit = 20;
    sluice_adaptive *a;
    assert_int_equal(sluice_adaptive_create(&ac, &a, NULL, 0), SLUICE_OK);
    assert_int_equal(sluice_sync_metrics_add_adaptive(sm, a), SLUICE_OK);
    assert_int_equal(sluice_sync_metrics_add_adaptive(sm, a), SLUICE_EBUSY);
    assert_int_equal(sluice_sync_metrics_add_adaptive(NULL, a), SLUICE_EINVAL);

    const double rtt_ms[] = {10, 10, 10, 50, 50}; /* three at no-load, the rise, the probe */
    for (size_t i = 0; i < sizeof rtt_ms / sizeof *rtt_ms; i++) {
        sluice_adaptive_window w = {0};
        w.successes = 1000;
        w.mean_rtt_ns = (uint64_t)(rtt_ms[i] * 1e6);
        w.in_use = true;
        w.demand = 20;
        assert_int_equal(sluice_adaptive_observe(a, &w), SLUICE_OK);
    }
    sluice_adaptive_token tok, extra;
    assert_int_equal(sluice_adaptive_try_acquire(a, &tok), SLUICE_OK);
    assert_int_equal(sluice_adaptive_release(a, &tok, SLUICE_ADAPTIVE_IGNORE), SLUICE_OK);
    assert_int_equal(sluice_adaptive_try_acquire(a, &extra), SLUICE_OK); /* held over the scrape */
    sluice_adaptive_stats st;
    sluice_adaptive_stats_get(a, &st);
    assert_int_equal(st.rebases, 1);
    assert_int_equal(st.probes, 1);

    char *text = render(reg);
    char line[160];
    has(text, "# TYPE sluice_adaptive_limit gauge");
    snprintf(line, sizeof line, "sluice_adaptive_limit{name=\"downstream\"} %u\n", st.limit);
    has(text, line);
    has(text, "sluice_adaptive_inflight{name=\"downstream\"} 1\n");
    has(text, "sluice_adaptive_probing{name=\"downstream\"} 0\n");
    has(text, "sluice_adaptive_no_load_rtt_seconds{name=\"downstream\"} 0.05\n");
    has(text, "sluice_adaptive_acquired_total{name=\"downstream\"} 2\n");
    has(text, "# TYPE sluice_adaptive_releases_total counter");
    has(text, "sluice_adaptive_releases_total{name=\"downstream\",outcome=\"success\"} 5000\n");
    has(text, "sluice_adaptive_releases_total{name=\"downstream\",outcome=\"ignored\"} 1\n");
    snprintf(line, sizeof line,
             "sluice_adaptive_decisions_total{name=\"downstream\",direction=\"down\"} %llu\n",
             (unsigned long long)st.decisions_down);
    has(text, line);
    has(text, "sluice_adaptive_probes_total{name=\"downstream\"} 1\n");
    has(text, "sluice_adaptive_rebases_total{name=\"downstream\"} 1\n");
    has(text, "sluice_adaptive_congestion_total{name=\"downstream\"} 0\n");
    free(text);

    assert_int_equal(sluice_sync_metrics_remove_adaptive(sm, a), SLUICE_OK);
    assert_int_equal(sluice_sync_metrics_remove_adaptive(sm, a), SLUICE_ENOENT);
    text = render(reg);
    assert_null(strstr(text, "sluice_adaptive_"));
    free(text);
    assert_int_equal(sluice_adaptive_release(a, &extra, SLUICE_ADAPTIVE_SUCCESS), SLUICE_OK);
    sluice_sync_metrics_destroy(sm);
    sluice_metrics_destroy(reg);
    sluice_adaptive_destroy(a);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_exposition),
        cmocka_unit_test(test_adaptive),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
