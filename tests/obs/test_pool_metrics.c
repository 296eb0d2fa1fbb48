/*
 * tests/obs/test_pool_metrics.c - the pool_* families against known
 * workloads: N tasks, M failures, P panics, R rejections, D drops give
 * exactly those counters; gauges of a saturated pool; and `promtool check
 * metrics` on the real output (both while saturated and after draining).
 */
#include <pthread.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <cmocka.h>

#include "common/wait.h"
#include "sluice/clock.h"
#include "sluice/metrics.h"
#include "sluice/task.h"

/* ---- tasks ------------------------------------------------------------------ */

static int ok_task(void *arg)
{
    (void)arg;
    return 0;
}

static int fail_task(void *arg)
{
    (void)arg;
    return 7;
}

static int panic_task(void *arg)
{
    (void)arg;
    sluice_panic("test panic %d", 1);
}

static void quiet_panic(const sluice_panic_info *info, void *user)
{
    (void)info;
    (void)user;
}

/* The gate (tests/common/wait.h) holds tasks until it opens. */
static gate g_gate;

/* ---- helpers ----------------------------------------------------------------- */

static sluice_pool *make_pool(const char *name, unsigned k, size_t q, sluice_overflow ov,
                              const sluice_clock *clock)
{
    sluice_pool_config cfg;
    sluice_pool_config_init(&cfg);
    cfg.name = name;
    cfg.workers = k;
    cfg.queue_capacity = q;
    cfg.overflow = ov;
    cfg.panic_handler = quiet_panic;
    cfg.clock = clock;
    sluice_pool *p = NULL;
    char err[200];
    assert_int_equal(sluice_pool_create(&cfg, &p, err, sizeof err), SLUICE_OK);
    return p;
}

static void expect_line(const char *text, const char *line)
{
    char want[300];
    snprintf(want, sizeof want, "\n%s\n", line);
    if (!strstr(text, want)) {
        fprintf(stderr, "%s", text);
        fail_msg("missing line '%s' (the text is above)", line);
    }
}

static char *render(sluice_metrics *reg, sluice_expo_format fmt)
{
    char *text;
    size_t len;
    assert_int_equal(sluice_metrics_render(reg, fmt, &text, &len), SLUICE_OK);
    return text;
}

/* promtool check metrics on `text`; skips when promtool is not installed. */
static void promtool_check(const char *text)
{
    if (system("command -v promtool >/dev/null 2>&1") != 0) {
        print_message("promtool not installed: skipping the promtool check\n");
        return;
    }
    char path[] = "/tmp/sluice-obs-promtool-XXXXXX";
    int fd = mkstemp(path);
    assert_true(fd >= 0);
    size_t n = strlen(text);
    assert_int_equal(write(fd, text, n), (ssize_t)n);
    close(fd);
    char cmd[256];
    snprintf(cmd, sizeof cmd, "promtool check metrics < %s 2>&1", path);
    FILE *f = popen(cmd, "r");
    assert_non_null(f);
    char out[4096];
    size_t got = fread(out, 1, sizeof out - 1, f);
    out[got] = '\0';
    int rc = pclose(f);
    unlink(path);
    if (rc != 0 || got != 0) {
        fail_msg("promtool check metrics complained (rc %d):\n%s\n--- input ---\n%s", rc, out, text);
    }
}

/* ---- tests ------------------------------------------------------------------- */

static void test_known_workload(void **state)
{
    (void)state;
    enum { N = 20, M = 5, P = 3 };
    sluice_fake_clock fake;
    sluice_fake_clock_init(&fake, 1000 * SLUICE_NS_PER_SEC);
    sluice_pool *p = make_pool("work", 2, 64, SLUICE_OVERFLOW_BLOCK, &fake.clock);
    sluice_metrics *reg;
    assert_int_equal(sluice_metrics_create(NULL, &reg), SLUICE_OK);
    assert_int_equal(sluice_metrics_add_pool(reg, p), SLUICE_OK);
    assert_int_equal(sluice_metrics_add_pool(reg, p), SLUICE_EBUSY);

    for (int i = 0; i < N + M + P; i++) {
        sluice_task_fn fn = i < N ? ok_task : i < N + M ? fail_task : panic_task;
        assert_int_equal(sluice_pool_submit(p, fn, NULL), SLUICE_OK);
    }
    sluice_drain_report rep;
    assert_int_equal(sluice_pool_drain(p, 0, &rep), SLUICE_OK);

    char *text = render(reg, SLUICE_EXPO_PROMETHEUS);
    expect_line(text, "pool_submitted_total{name=\"work\"} 28");
    expect_line(text, "pool_completed_total{name=\"work\"} 20");
    expect_line(text, "pool_failed_total{name=\"work\"} 5");
    expect_line(text, "pool_panicked_total{name=\"work\"} 3");
    expect_line(text, "pool_dropped_total{name=\"work\"} 0");
    expect_line(text, "pool_shed_total{name=\"work\"} 0");
    expect_line(text, "pool_abandoned_total{name=\"work\"} 0");
    expect_line(text, "pool_rejected_total{name=\"work\"} 0");
    expect_line(text, "pool_running{name=\"work\"} 0");
    expect_line(text, "pool_capacity{name=\"work\"} 2");
    expect_line(text, "pool_queue_depth{name=\"work\"} 0");
    expect_line(text, "pool_queue_capacity{name=\"work\"} 64");
    expect_line(text, "pool_waiting{name=\"work\"} 0");
    expect_line(text, "pool_worker_utilization_ratio{name=\"work\"} 0");
    /* auto sampling times every task on a custom clock */
    expect_line(text, "pool_timing_sample_every{name=\"work\"} 1");
    /* The fake clock never moves: every task took 0 s, in the first bucket. */
    expect_line(text, "pool_task_duration_seconds_bucket{name=\"work\",le=\"0.0001\"} 28");
    expect_line(text, "pool_task_duration_seconds_bucket{name=\"work\",le=\"+Inf\"} 28");
    expect_line(text, "pool_task_duration_seconds_count{name=\"work\"} 28");
    expect_line(text, "pool_task_duration_seconds_sum{name=\"work\"} 0");
    expect_line(text, "pool_submit_duration_seconds_count{name=\"work\"} 28");
    expect_line(text, "pool_submit_duration_seconds_bucket{name=\"work\",le=\"6.5536\"} 28");
    promtool_check(text);
    free(text);

    /* Resizes and OpenMetrics. */
    sluice_metrics_destroy(reg);
    sluice_pool_destroy(p);
}

static void test_saturated_and_losses(void **state)
{
    (void)state;
    gate_init(&g_gate);
    sluice_pool *rej = make_pool("rej", 1, 2, SLUICE_OVERFLOW_REJECT, NULL);
    sluice_pool *drop = make_pool("drop", 1, 2, SLUICE_OVERFLOW_DROP_OLDEST, NULL);
    sluice_metrics *reg;
    assert_int_equal(sluice_metrics_create(NULL, &reg), SLUICE_OK);
    assert_int_equal(sluice_metrics_add_pool(reg, rej), SLUICE_OK);
    assert_int_equal(sluice_metrics_add_pool(reg, drop), SLUICE_OK);

    /* rej: one running (held by the gate), two queued, three refused. */
    assert_int_equal(sluice_pool_submit(rej, task_at_gate, &g_gate), SLUICE_OK);
    GATE_WAIT_ENTERED(&g_gate, 1);
    assert_int_equal(sluice_pool_submit(rej, ok_task, NULL), SLUICE_OK);
    assert_int_equal(sluice_pool_submit(rej, ok_task, NULL), SLUICE_OK);
    for (int i = 0; i < 3; i++) {
        assert_int_equal(sluice_pool_submit(rej, ok_task, NULL), SLUICE_EFULL);
    }
    /* drop: one running, two queued, two more evict the two oldest. */
    assert_int_equal(sluice_pool_submit(drop, task_at_gate, &g_gate), SLUICE_OK);
    GATE_WAIT_ENTERED(&g_gate, 2);
    for (int i = 0; i < 4; i++) {
        assert_int_equal(sluice_pool_submit(drop, ok_task, NULL), SLUICE_OK);
    }
    assert_int_equal(sluice_pool_resize(drop, 3), SLUICE_OK);
    assert_int_equal(sluice_pool_resize(drop, 1), SLUICE_OK);

    char *text = render(reg, SLUICE_EXPO_PROMETHEUS);
    expect_line(text, "pool_running{name=\"rej\"} 1");
    expect_line(text, "pool_queue_depth{name=\"rej\"} 2");
    expect_line(text, "pool_worker_utilization_ratio{name=\"rej\"} 1");
    expect_line(text, "pool_submitted_total{name=\"rej\"} 3");
    expect_line(text, "pool_rejected_total{name=\"rej\"} 3");
    expect_line(text, "pool_submitted_total{name=\"drop\"} 5");
    expect_line(text, "pool_dropped_total{name=\"drop\"} 2");
    expect_line(text, "pool_resize_events_total{name=\"drop\"} 2");
    /* Both pools' samples sit together under one family header. */
    assert_non_null(strstr(text, "# TYPE pool_running gauge\npool_running{name=\"rej\"} 1\n"
                                 "pool_running{name=\"drop\"} "));
    promtool_check(text);
    free(text);

    text = render(reg, SLUICE_EXPO_OPENMETRICS);
    assert_non_null(strstr(text, "# TYPE pool_submitted counter\n"));
    assert_non_null(strstr(text, "pool_task_duration_seconds_bucket{name=\"rej\",le=\"0.0001\"} "));
    assert_non_null(strstr(text, "\n# EOF\n"));
    free(text);

    gate_open(&g_gate);
    sluice_drain_report rep;
    assert_int_equal(sluice_pool_drain(rej, 0, &rep), SLUICE_OK);
    assert_int_equal(sluice_pool_drain(drop, 0, &rep), SLUICE_OK);
    text = render(reg, SLUICE_EXPO_PROMETHEUS);
    expect_line(text, "pool_completed_total{name=\"rej\"} 3");
    expect_line(text, "pool_completed_total{name=\"drop\"} 3");
    /* submitted = completed + failed + panicked + dropped + shed + abandoned */
    sluice_pool_stats st;
    sluice_pool_stats_get(drop, &st);
    assert_int_equal(st.submitted,
                     st.completed + st.failed + st.panicked + st.dropped + st.shed + st.abandoned);
    free(text);

    assert_int_equal(sluice_metrics_remove_pool(reg, rej), SLUICE_OK);
    assert_int_equal(sluice_metrics_remove_pool(reg, rej), SLUICE_ENOENT);
    text = render(reg, SLUICE_EXPO_PROMETHEUS);
    assert_null(strstr(text, "name=\"rej\""));
    free(text);
    sluice_metrics_destroy(reg);
    sluice_pool_destroy(rej);
    sluice_pool_destroy(drop);
}

/* A stuck task's age grows on every scrape even though it never finishes
 * (so no histogram sees it): what PoolStalled alerts on. Untimed tasks are
 * stamped by the first reader, so the second scrape shows the clock's
 * advance exactly. */
static void test_oldest_running_and_worker_churn(void **state)
{
    (void)state;
    sluice_fake_clock fake;
    sluice_fake_clock_init(&fake, 1000000000ull);
    sluice_pool *p = make_pool("stall", 2, 4, SLUICE_OVERFLOW_REJECT, &fake.clock);
    sluice_metrics *reg;
    assert_int_equal(sluice_metrics_create(NULL, &reg), SLUICE_OK);
    assert_int_equal(sluice_metrics_add_pool(reg, p), SLUICE_OK);

    char *text = render(reg, SLUICE_EXPO_PROMETHEUS);
    expect_line(text, "pool_oldest_running_seconds{name=\"stall\"} 0");
    free(text);

    static gate g;
    gate_init(&g);
    assert_int_equal(sluice_pool_submit(p, task_at_gate, &g), SLUICE_OK);
    assert_int_equal(sluice_pool_submit(p, task_at_gate, &g), SLUICE_OK);
    GATE_WAIT_ENTERED(&g, 2);
    text = render(reg, SLUICE_EXPO_PROMETHEUS); /* first look stamps the start */
    free(text);
    sluice_fake_clock_advance(&fake, 45000000000ull);
    text = render(reg, SLUICE_EXPO_PROMETHEUS);
    expect_line(text, "pool_oldest_running_seconds{name=\"stall\"} 45");
    expect_line(text, "pool_running{name=\"stall\"} 2");
    expect_line(text, "pool_started_workers_total{name=\"stall\"} 2");
    expect_line(text, "pool_retired_workers_total{name=\"stall\"} 0");
    promtool_check(text);
    free(text);

    gate_open(&g);
    sluice_drain_report rep;
    assert_int_equal(sluice_pool_drain(p, 0, &rep), SLUICE_OK);
    text = render(reg, SLUICE_EXPO_PROMETHEUS);
    expect_line(text, "pool_oldest_running_seconds{name=\"stall\"} 0");
    free(text);
    sluice_metrics_destroy(reg);
    sluice_pool_destroy(p);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_known_workload),
        cmocka_unit_test(test_saturated_and_losses),
        cmocka_unit_test(test_oldest_running_and_worker_churn),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
