/*
 * tests/core/test_stats.c - the stats snapshot (gauges, counters,
 * high-water marks) and the timing histograms: exact bucket placement on a
 * fake clock, counts equal to task counts when every task is timed, about
 * N/k when 1 in k is sampled, nothing when timing is off.
 */
#include "common/pool.h"

static void test_gauges_and_counters(void **state)
{
    (void)state;
    tally *t = tally_new();
    gate *g = gate_new();
    sluice_pool_config cfg;
    base_config(&cfg, "gauges", 2, 8, t);
    sluice_pool *p;
    CREATE_POOL(&cfg, &p);
    for (int i = 0; i < 2; i++) {
        assert_int_equal(sluice_pool_submit(p, task_gate, g), SLUICE_OK);
    }
    WAIT_FOR(atomic_load(&g->inside) == 2, "two running");
    for (int i = 0; i < 5; i++) {
        assert_int_equal(sluice_pool_submit(p, task_count, t), SLUICE_OK);
    }
    sluice_pool_stats s = stats_now(p);
    assert_int_equal(s.running, 2);
    assert_int_equal(s.capacity, 2);
    assert_int_equal(s.workers, 2);
    assert_int_equal(s.idle, 0);
    assert_int_equal(s.waiting, 0);
    assert_int_equal(s.queue_depth, 5);
    assert_int_equal(s.queue_capacity, 8);
    assert_false(s.draining);
    assert_int_equal(s.submitted, 7);
    assert_int_equal(s.completed, 0);
    assert_true(s.queue_depth_hwm >= 5 && s.queue_depth_hwm <= 8);
    assert_int_equal(s.workers_hwm, 2);
    assert_int_equal(s.started_workers, 2);
    gate_open(g);
    ASSERT_IDENTITY(p);
    WAIT_FOR(stats_now(p).idle == 2, "both idle");
    s = stats_now(p);
    assert_int_equal(s.running, 0);
    assert_int_equal(s.completed, 7);
    assert_int_equal(s.workers, 2);
    sluice_pool_destroy(p);
    gate_free(g);
    tally_free(t);
}

/* A task that moves the fake clock by `arg` ns while it runs. */
static sluice_fake_clock *hist_clock;
static int task_takes(void *arg)
{
    sluice_fake_clock_advance(hist_clock, (uint64_t)(uintptr_t)arg);
    return 0;
}

static void test_histogram_buckets_fake_clock(void **state)
{
    (void)state;
    tally *t = tally_new();
    sluice_fake_clock fc;
    sluice_fake_clock_init(&fc, SLUICE_NS_PER_SEC);
    hist_clock = &fc;
    static const double bounds[] = {0.001, 0.01, 0.1};
    sluice_pool_config cfg;
    base_config(&cfg, "hist", 1, 8, t);
    cfg.clock = &fc.clock;
    cfg.histogram_buckets = bounds;
    cfg.histogram_bucket_count = 3;
    sluice_pool *p;
    CREATE_POOL(&cfg, &p);
    const uint64_t durations[] = {500 * SLUICE_NS_PER_US, 500 * SLUICE_NS_PER_US, 500 * SLUICE_NS_PER_US,
                                  5 * SLUICE_NS_PER_MS,   5 * SLUICE_NS_PER_MS,   50 * SLUICE_NS_PER_MS,
                                  500 * SLUICE_NS_PER_MS};
    for (size_t i = 0; i < 7; i++) {
        /* One at a time, so no task's clock movement lands in another's
         * wait time. */
        assert_int_equal(sluice_pool_submit(p, task_takes, (void *)(uintptr_t)durations[i]), SLUICE_OK);
        ASSERT_IDENTITY(p);
    }
    sluice_histogram h;
    sluice_pool_histogram_get(p, SLUICE_HIST_TASK, &h);
    assert_int_equal(h.bucket_count, 3);
    assert_true(h.bounds[0] == 0.001 && h.bounds[2] == 0.1);
    assert_int_equal(h.counts[0], 3);
    assert_int_equal(h.counts[1], 2);
    assert_int_equal(h.counts[2], 1);
    assert_int_equal(h.counts[3], 1); /* +Inf */
    assert_int_equal(h.count, 7);
    assert_true(h.sum_seconds > 0.5614 && h.sum_seconds < 0.5616);
    sluice_pool_histogram_get(p, SLUICE_HIST_WAIT, &h);
    assert_int_equal(h.count, 7);
    assert_int_equal(h.counts[0], 7); /* the clock did not move while queued */
    assert_true(h.sum_seconds < 1e-9);
    sluice_pool_destroy(p);
    tally_free(t);
}

static uint64_t hist_total(const sluice_histogram *h)
{
    uint64_t n = 0;
    for (size_t i = 0; i <= h->bucket_count; i++) {
        n += h->counts[i];
    }
    return n;
}

static void test_histogram_counts_every_task(void **state)
{
    (void)state;
    tally *t = tally_new();
    sluice_pool_config cfg;
    base_config(&cfg, "hist-all", 3, 32, t);
    cfg.timing_sample_every = 1;
    sluice_pool *p;
    CREATE_POOL(&cfg, &p);
    const unsigned n = 600;
    for (unsigned i = 0; i < n; i++) {
        assert_int_equal(sluice_pool_submit(p, i % 5 ? task_count : task_nop, t), SLUICE_OK);
    }
    ASSERT_IDENTITY(p);
    sluice_histogram h;
    sluice_pool_histogram_get(p, SLUICE_HIST_TASK, &h);
    assert_int_equal(h.bucket_count, SLUICE_HIST_DEFAULT_BUCKETS);
    assert_int_equal(h.count, n);
    assert_int_equal(hist_total(&h), n);
    sluice_pool_histogram_get(p, SLUICE_HIST_WAIT, &h);
    assert_int_equal(h.count, n);
    assert_int_equal(hist_total(&h), n);
    sluice_pool_destroy(p);
    tally_free(t);
}

static void test_histogram_sampled(void **state)
{
    (void)state;
    tally *t = tally_new();
    sluice_pool_config cfg;
    base_config(&cfg, "hist-k", 2, 64, t);
    cfg.timing_sample_every = 10;
    sluice_pool *p;
    CREATE_POOL(&cfg, &p);
    const unsigned n = 1000, k = 10;
    for (unsigned i = 0; i < n; i++) {
        assert_int_equal(sluice_pool_submit(p, task_count, t), SLUICE_OK);
    }
    ASSERT_IDENTITY(p);
    sluice_histogram h;
    sluice_pool_histogram_get(p, SLUICE_HIST_WAIT, &h);
    print_message("sampled 1/%u of %u: wait count %llu\n", k, n, (unsigned long long)h.count);
    /* One submitting thread stamps exactly every k-th submit. */
    assert_true(h.count >= n / k - 1 && h.count <= n / k + 1);
    sluice_pool_histogram_get(p, SLUICE_HIST_TASK, &h);
    print_message("sampled 1/%u of %u: task count %llu\n", k, n, (unsigned long long)h.count);
    assert_true(h.count >= n / k / 2 && h.count <= 2 * n / k);
    assert_int_equal(hist_total(&h), h.count);
    /* Counters are never sampled. */
    assert_int_equal(stats_now(p).completed, n);
    /* Live change back to every task. */
    sluice_pool_set_timing_sample(p, 1);
    sluice_pool_histogram_get(p, SLUICE_HIST_TASK, &h);
    uint64_t before = h.count;
    for (unsigned i = 0; i < 100; i++) {
        assert_int_equal(sluice_pool_submit(p, task_count, t), SLUICE_OK);
    }
    ASSERT_IDENTITY(p);
    sluice_pool_histogram_get(p, SLUICE_HIST_TASK, &h);
    assert_int_equal(h.count - before, 100);
    sluice_pool_config got;
    sluice_pool_config_get(p, &got);
    assert_true(got.timing_sample_every <= 1);
    sluice_pool_destroy(p);
    tally_free(t);
}

/* A task that busy-waits ~200 us of real time (a long task for the
 * automatic sample rate; not a wait for an event). */
static int task_busy_200us(void *arg)
{
    (void)arg;
    uint64_t until = real_now_ns() + 200 * 1000;
    while (real_now_ns() < until) {
    }
    return 0;
}

/* The default, SLUICE_TIMING_SAMPLE_AUTO: short tasks are sampled (the
 * histogram counts fewer than ran, counters all of them), long tasks are
 * all timed again. */
static void test_histogram_auto(void **state)
{
    (void)state;
    tally *t = tally_new();
    sluice_pool_config cfg;
    base_config(&cfg, "hist-auto", 2, 256, t);
    assert_int_equal(cfg.timing_sample_every, SLUICE_TIMING_SAMPLE_AUTO);
    sluice_pool *p;
    CREATE_POOL(&cfg, &p);
    sluice_pool_config got;
    sluice_pool_config_get(p, &got);
    assert_int_equal(got.timing_sample_every, SLUICE_TIMING_SAMPLE_AUTO);
    assert_int_equal(stats_now(p).timing_sample_every, 1); /* starts exact */

    /* No-op tasks: timing would cost more than the task; the rate drops. */
    unsigned n = 0;
    while (stats_now(p).timing_sample_every < 8) {
        assert_int_equal(sluice_pool_submit(p, task_nop, NULL), SLUICE_OK);
        if (++n > 2000000) {
            fail_msg("sample rate still %u after %u no-op tasks", stats_now(p).timing_sample_every, n);
        }
    }
    for (unsigned i = 0; i < 20000; i++) {
        assert_int_equal(sluice_pool_submit(p, task_count, t), SLUICE_OK);
        n++;
    }
    /* One timed task preempted for milliseconds (a loaded box, TSan) lifts
     * a worker's average past the cost and the rate back to 1 until ~50
     * more timed tasks decay it: the rate is a moving figure, so wait for
     * it to fall again rather than read it at one instant. */
    while (stats_now(p).timing_sample_every < 2) {
        assert_int_equal(sluice_pool_submit(p, task_nop, NULL), SLUICE_OK);
        if (++n > 4000000) {
            fail_msg("sample rate back at 1 after %u short tasks", n);
        }
    }
    ASSERT_IDENTITY(p);
    sluice_histogram h;
    sluice_pool_histogram_get(p, SLUICE_HIST_TASK, &h);
    unsigned every = stats_now(p).timing_sample_every;
    print_message("auto: %u no-op tasks, %llu timed, sampling 1 in %u now\n", n, (unsigned long long)h.count,
                  every);
    assert_true(every <= 256); /* the loop above saw it >= 2; it may move again */
    assert_true(h.count < n);
    assert_true(h.count > 0);
    assert_int_equal(stats_now(p).completed, n); /* counters are never sampled */

    /* Long tasks: every task is timed again once one of them is timed. */
    unsigned m = 0;
    while (stats_now(p).timing_sample_every != 1) {
        assert_int_equal(sluice_pool_submit(p, task_busy_200us, NULL), SLUICE_OK);
        if (++m > 4000) {
            fail_msg("sample rate still %u after %u 200-us tasks", stats_now(p).timing_sample_every, m);
        }
    }
    ASSERT_IDENTITY(p);
    sluice_pool_histogram_get(p, SLUICE_HIST_TASK, &h);
    uint64_t before = h.count;
    for (unsigned i = 0; i < 20; i++) {
        assert_int_equal(sluice_pool_submit(p, task_busy_200us, NULL), SLUICE_OK);
    }
    ASSERT_IDENTITY(p);
    sluice_pool_histogram_get(p, SLUICE_HIST_TASK, &h);
    assert_int_equal(h.count - before, 20);

    /* A fixed rate set live turns auto off; auto set live turns it on. */
    sluice_pool_set_timing_sample(p, 5);
    sluice_pool_config_get(p, &got);
    assert_int_equal(got.timing_sample_every, 5);
    assert_int_equal(stats_now(p).timing_sample_every, 5);
    sluice_pool_set_timing_sample(p, SLUICE_TIMING_SAMPLE_AUTO);
    sluice_pool_config_get(p, &got);
    assert_int_equal(got.timing_sample_every, SLUICE_TIMING_SAMPLE_AUTO);
    sluice_pool_destroy(p);
    tally_free(t);
}

static void *submit_one_nop(void *arg)
{
    sluice_pool *p = arg;
    if (sluice_pool_submit(p, task_nop, NULL) != SLUICE_OK) {
        return arg; /* non-NULL: failed */
    }
    return NULL;
}

/* A thread's first submit is timed, whatever the rate: tasks from
 * short-lived threads are not invisible to the histograms (and automatic
 * sampling sees them when the task length changes). */
static void test_sampling_times_first_submit_of_a_thread(void **state)
{
    (void)state;
    tally *t = tally_new();
    sluice_pool_config cfg;
    base_config(&cfg, "hist-fresh", 2, 64, t);
    cfg.timing_sample_every = 1000;
    sluice_pool *p;
    CREATE_POOL(&cfg, &p);
    for (int i = 0; i < 10; i++) {
        pthread_t th;
        START_THREAD(&th, submit_one_nop, p);
        void *rc = (void *)1;
        pthread_join(th, &rc);
        assert_null(rc);
    }
    ASSERT_IDENTITY(p);
    sluice_histogram h;
    sluice_pool_histogram_get(p, SLUICE_HIST_WAIT, &h);
    assert_int_equal(h.count, 10);
    sluice_pool_histogram_get(p, SLUICE_HIST_TASK, &h);
    assert_int_equal(h.count, 10);
    sluice_pool_destroy(p);
    tally_free(t);
}

/* With a custom clock (tests), auto times every task: exact histograms. */
static void test_histogram_auto_fake_clock(void **state)
{
    (void)state;
    tally *t = tally_new();
    sluice_fake_clock fc;
    sluice_fake_clock_init(&fc, SLUICE_NS_PER_SEC);
    sluice_pool_config cfg;
    base_config(&cfg, "hist-auto-fc", 2, 64, t);
    cfg.clock = &fc.clock;
    sluice_pool *p;
    CREATE_POOL(&cfg, &p);
    const unsigned n = 3000;
    for (unsigned i = 0; i < n; i++) {
        assert_int_equal(sluice_pool_submit(p, task_nop, NULL), SLUICE_OK);
    }
    ASSERT_IDENTITY(p);
    sluice_histogram h;
    sluice_pool_histogram_get(p, SLUICE_HIST_TASK, &h);
    assert_int_equal(h.count, n);
    assert_int_equal(stats_now(p).timing_sample_every, 1);
    /* The request is reported as made, even though this clock times all. */
    sluice_pool_config got;
    sluice_pool_config_get(p, &got);
    assert_int_equal(got.timing_sample_every, SLUICE_TIMING_SAMPLE_AUTO);
    sluice_pool_set_timing_sample(p, 3);
    sluice_pool_config_get(p, &got);
    assert_int_equal(got.timing_sample_every, 3);
    assert_int_equal(stats_now(p).timing_sample_every, 3);
    sluice_pool_destroy(p);
    tally_free(t);
}

static void test_timing_disabled(void **state)
{
    (void)state;
    tally *t = tally_new();
    sluice_pool_config cfg;
    base_config(&cfg, "hist-off", 2, 64, t);
    cfg.timing_disabled = true;
    sluice_pool *p;
    CREATE_POOL(&cfg, &p);
    for (unsigned i = 0; i < 200; i++) {
        assert_int_equal(sluice_pool_submit(p, task_count, t), SLUICE_OK);
    }
    sluice_pool_set_timing_sample(p, 1); /* no effect while disabled */
    for (unsigned i = 0; i < 50; i++) {
        assert_int_equal(sluice_pool_submit(p, task_count, t), SLUICE_OK);
    }
    ASSERT_IDENTITY(p);
    sluice_histogram h;
    sluice_pool_histogram_get(p, SLUICE_HIST_TASK, &h);
    assert_int_equal(h.count, 0);
    sluice_pool_histogram_get(p, SLUICE_HIST_WAIT, &h);
    assert_int_equal(h.count, 0);
    assert_int_equal(stats_now(p).completed, 250);
    sluice_pool_config got;
    sluice_pool_config_get(p, &got);
    assert_true(got.timing_disabled);
    sluice_pool_destroy(p);
    tally_free(t);
}

/* CALLER_RUNS tasks are timed and counted too. */
static void test_caller_runs_timed(void **state)
{
    (void)state;
    tally *t = tally_new();
    gate *g = gate_new();
    sluice_pool_config cfg;
    base_config(&cfg, "hist-cr", 1, 2, t);
    cfg.overflow = SLUICE_OVERFLOW_CALLER_RUNS;
    sluice_pool *p;
    CREATE_POOL(&cfg, &p);
    assert_int_equal(sluice_pool_submit(p, task_gate, g), SLUICE_OK);
    WAIT_FOR(atomic_load(&g->inside) == 1, "worker held");
    for (int i = 0; i < 10; i++) {
        assert_int_equal(sluice_pool_submit(p, task_count, t), SLUICE_OK);
    }
    gate_open(g);
    ASSERT_IDENTITY(p);
    sluice_pool_stats s = stats_now(p);
    assert_int_equal(s.caller_ran, 8);
    sluice_histogram h;
    sluice_pool_histogram_get(p, SLUICE_HIST_TASK, &h);
    assert_int_equal(h.count, 11);
    sluice_pool_destroy(p);
    gate_free(g);
    tally_free(t);
}

static int gate_task_stats(void *arg)
{
    gate_pass(arg, false);
    return 0;
}

/* Every worker's histograms are taken from the pool's page slabs on its
 * first timed task: 40 workers at once, with the largest bucket count
 * (1,088-byte pairs, 15 to a slab, so three slabs), all counted. */
static void test_histograms_many_workers_max_buckets(void **state)
{
    (void)state;
    tally *t = tally_new();
    gate *g = gate_new();
    double bounds[SLUICE_HIST_MAX_BUCKETS];
    for (int i = 0; i < SLUICE_HIST_MAX_BUCKETS; i++) {
        bounds[i] = 1e-6 * (i + 1);
    }
    sluice_pool_config cfg;
    base_config(&cfg, "hist-slabs", 40, 1024, t);
    cfg.histogram_buckets = bounds;
    cfg.histogram_bucket_count = SLUICE_HIST_MAX_BUCKETS;
    cfg.timing_sample_every = 1;
    sluice_pool *p;
    CREATE_POOL(&cfg, &p);
    for (int i = 0; i < 40; i++) {
        assert_int_equal(sluice_pool_submit(p, gate_task_stats, g), SLUICE_OK);
    }
    GATE_WAIT_ENTERED(g, 40); /* 40 workers, each with a task */
    gate_open(g);
    for (int i = 0; i < 400; i++) {
        assert_int_equal(sluice_pool_submit(p, task_nop, t), SLUICE_OK);
    }
    ASSERT_IDENTITY(p);
    sluice_histogram h;
    sluice_pool_histogram_get(p, SLUICE_HIST_TASK, &h);
    assert_int_equal(h.bucket_count, SLUICE_HIST_MAX_BUCKETS);
    assert_int_equal(h.count, 440);
    assert_int_equal(hist_total(&h), 440);
    sluice_pool_histogram_get(p, SLUICE_HIST_WAIT, &h);
    assert_int_equal(h.count, 440);
    sluice_pool_destroy(p);
    gate_free(g);
    tally_free(t);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_gauges_and_counters),
        cmocka_unit_test(test_histogram_buckets_fake_clock),
        cmocka_unit_test(test_histogram_counts_every_task),
        cmocka_unit_test(test_histogram_sampled),
        cmocka_unit_test(test_histogram_auto),
        cmocka_unit_test(test_histogram_auto_fake_clock),
        cmocka_unit_test(test_sampling_times_first_submit_of_a_thread),
        cmocka_unit_test(test_timing_disabled),
        cmocka_unit_test(test_caller_runs_timed),
        cmocka_unit_test(test_histograms_many_workers_max_buckets),
    };
    return cmocka_run_group_tests_name("core_stats", tests, NULL, NULL);
}
