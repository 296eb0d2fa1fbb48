/*
 * tests/core/test_extremes.c - the contract sweep for the pool: every
 * public call or config field with a duration or a size, at 0, 1 and its
 * maximum, does what pool.h says. (Durations that are also regressions of
 * issue 12 - submit_timeout_ns, idle_expiry_ns, drain - are in
 * core_promises; this program holds the rest.) docs/core-tests.md lists
 * each promise and the test that holds it.
 */
#include <limits.h>

#include "common/pool.h"

/* A huge calloc must return NULL under the sanitizers too (their default
 * is to abort), as it does in a plain build: the promise is ENOMEM. The
 * runtimes look these up dynamically: default visibility (the build
 * hides symbols by default). */
#define SAN_OPTIONS_FN __attribute__((visibility("default"), used))
SAN_OPTIONS_FN const char *__asan_default_options(void);
SAN_OPTIONS_FN const char *__asan_default_options(void)
{
    return "allocator_may_return_null=1";
}
SAN_OPTIONS_FN const char *__tsan_default_options(void);
SAN_OPTIONS_FN const char *__tsan_default_options(void)
{
    return "allocator_may_return_null=1";
}

static void hold_workers(sluice_pool *p, gate *g, unsigned k)
{
    for (unsigned i = 0; i < k; i++) {
        assert_int_equal(sluice_pool_submit(p, task_gate, g), SLUICE_OK);
    }
    WAIT_FOR(atomic_load(&g->inside) == (int)k, "%u workers at the gate", k);
    WAIT_FOR(stats_now(p).queue_depth == 0, "gate tasks taken");
}

/* ---- config sizes ------------------------------------------------------------ */

/* workers: 1 and UINT_MAX (a ceiling: threads start only for work). */
static void test_workers_one_and_max(void **state)
{
    (void)state;
    unsigned ks[] = {1, UINT_MAX};
    for (int i = 0; i < 2; i++) {
        tally *t = tally_new();
        sluice_pool_config cfg;
        base_config(&cfg, "kextreme", ks[i], 8, t);
        sluice_pool *p;
        CREATE_POOL(&cfg, &p);
        for (int j = 0; j < 6; j++) {
            assert_int_equal(sluice_pool_submit(p, task_count, t), SLUICE_OK);
        }
        ASSERT_IDENTITY(p);
        sluice_pool_stats s = stats_now(p);
        assert_int_equal(s.capacity, ks[i]);
        assert_int_equal(atomic_load(&t->ran), 6);
        sluice_drain_report rep;
        assert_int_equal(sluice_pool_drain(p, 0, &rep), SLUICE_OK);
        sluice_pool_destroy(p);
        tally_free(t);
    }
}

/* min_workers: 0, 1 and = workers (all kept); workers + 1 is refused. */
static void test_min_workers_extremes(void **state)
{
    (void)state;
    unsigned mins[] = {0, 1, 3};
    for (int i = 0; i < 3; i++) {
        tally *t = tally_new();
        sluice_pool_config cfg;
        base_config(&cfg, "minextreme", 3, 8, t);
        cfg.min_workers = mins[i];
        sluice_pool *p;
        CREATE_POOL(&cfg, &p);
        WAIT_FOR(stats_now(p).workers == mins[i], "min_workers %u started", mins[i]);
        sluice_pool_destroy(p);
        tally_free(t);
    }
    sluice_pool_config cfg;
    sluice_pool_config_init(&cfg);
    cfg.name = "minextreme";
    cfg.workers = 3;
    cfg.queue_capacity = 8;
    cfg.min_workers = 4;
    sluice_pool *p = NULL;
    char err[128];
    assert_int_equal(sluice_pool_create(&cfg, &p, err, sizeof err), SLUICE_EINVAL);
    assert_non_null(strstr(err, "min_workers"));
}

/* queue_capacity: 0 refused; 1 holds exactly one; SIZE_MAX refused; the
 * largest accepted value (SIZE_MAX >> 8) cannot be allocated: ENOMEM with
 * the field named, nothing left behind. */
static void test_queue_capacity_extremes(void **state)
{
    (void)state;
    int base = thread_baseline();
    sluice_pool_config cfg;
    sluice_pool_config_init(&cfg);
    cfg.name = "capextreme";
    cfg.workers = 1;
    char err[160];
    sluice_pool *p = (sluice_pool *)(uintptr_t)0x1;

    cfg.queue_capacity = 0;
    assert_int_equal(sluice_pool_create(&cfg, &p, err, sizeof err), SLUICE_EINVAL);
    assert_non_null(strstr(err, "queue_capacity"));
    cfg.queue_capacity = SIZE_MAX;
    assert_int_equal(sluice_pool_create(&cfg, &p, err, sizeof err), SLUICE_EINVAL);
    assert_non_null(strstr(err, "queue_capacity"));
    cfg.queue_capacity = SIZE_MAX >> 8;
    cfg.min_workers = 1;
    err[0] = '\0';
    assert_int_equal(sluice_pool_create(&cfg, &p, err, sizeof err), SLUICE_ENOMEM);
    assert_ptr_equal(p, (sluice_pool *)(uintptr_t)0x1);
    if (strncmp(err, "queue_capacity: ", 16) != 0) {
        fail_msg("ENOMEM without the field named: '%s'", err);
    }
    assert_int_equal(thread_count(), base);

    /* 1: exactly one queued task, REJECT refuses the next. */
    tally *t = tally_new();
    gate *g = gate_new();
    base_config(&cfg, "capone", 1, 1, t);
    cfg.overflow = SLUICE_OVERFLOW_REJECT;
    CREATE_POOL(&cfg, &p);
    hold_workers(p, g, 1);
    assert_int_equal(sluice_pool_submit(p, task_count, t), SLUICE_OK);
    assert_int_equal(sluice_pool_submit(p, task_count, t), SLUICE_EFULL);
    assert_int_equal(stats_now(p).queue_capacity, 1);
    gate_open(g);
    ASSERT_IDENTITY(p);
    sluice_pool_destroy(p);
    gate_free(g);
    tally_free(t);
}

/* stack_size: 0 (default) and the minimum 16384 run tasks; 1 is refused;
 * SIZE_MAX cannot be mapped: a lazy pool counts the failed starts, a
 * prewarmed one fails create with SLUICE_ESYS. */
static void test_stack_size_extremes(void **state)
{
    (void)state;
    size_t ok_sizes[] = {0, 16384};
    for (int i = 0; i < 2; i++) {
        tally *t = tally_new();
        sluice_pool_config cfg;
        base_config(&cfg, "stack", 2, 8, t);
        cfg.stack_size = ok_sizes[i];
        sluice_pool *p;
        CREATE_POOL(&cfg, &p);
        for (int j = 0; j < 4; j++) {
            assert_int_equal(sluice_pool_submit(p, task_count, t), SLUICE_OK);
        }
        ASSERT_IDENTITY(p);
        assert_int_equal(stats_now(p).worker_start_failures, 0);
        sluice_pool_destroy(p);
        tally_free(t);
    }
    tally *t = tally_new();
    sluice_pool_config cfg;
    base_config(&cfg, "stack", 2, 8, t);
    char err[160];
    sluice_pool *p = NULL;
    cfg.stack_size = 1;
    assert_int_equal(sluice_pool_create(&cfg, &p, err, sizeof err), SLUICE_EINVAL);
    assert_non_null(strstr(err, "stack_size"));

    cfg.stack_size = SIZE_MAX;
    CREATE_POOL(&cfg, &p);
    assert_int_equal(sluice_pool_submit(p, task_count, t), SLUICE_OK);
    sluice_pool_stats s = stats_now(p);
    assert_true(s.worker_start_failures >= 1);
    assert_int_equal(s.workers, 0);
    assert_int_equal(atomic_load(&t->events_by[SLUICE_EVENT_WORKER_START_FAILED]), 1);
    sluice_pool_destroy(p); /* hands the queued task back */
    assert_int_equal(atomic_load(&t->abandoned_by[SLUICE_ABANDON_DESTROY]), 1);

    cfg.prewarm = true;
    int base = thread_baseline();
    assert_int_equal(sluice_pool_create(&cfg, &p, err, sizeof err), SLUICE_ESYS);
    assert_non_null(strstr(err, "workers: could not start a worker thread"));
    assert_int_equal(thread_count(), base);
    tally_free(t);
}

/* histogram_bucket_count: 0 (default 17), 1, SLUICE_HIST_MAX_BUCKETS;
 * one more is refused. */
static void test_histogram_bucket_count_extremes(void **state)
{
    (void)state;
    double bounds[SLUICE_HIST_MAX_BUCKETS + 1];
    for (int i = 0; i <= SLUICE_HIST_MAX_BUCKETS; i++) {
        bounds[i] = 0.001 * (i + 1);
    }
    size_t counts[] = {0, 1, SLUICE_HIST_MAX_BUCKETS};
    for (int i = 0; i < 3; i++) {
        tally *t = tally_new();
        sluice_pool_config cfg;
        base_config(&cfg, "hist", 1, 8, t);
        cfg.histogram_buckets = counts[i] ? bounds : NULL;
        cfg.histogram_bucket_count = counts[i];
        cfg.timing_sample_every = 1;
        sluice_pool *p;
        CREATE_POOL(&cfg, &p);
        assert_int_equal(sluice_pool_submit(p, task_count, t), SLUICE_OK);
        ASSERT_IDENTITY(p);
        sluice_histogram h;
        sluice_pool_histogram_get(p, SLUICE_HIST_TASK, &h);
        assert_int_equal(h.bucket_count, counts[i] ? counts[i] : SLUICE_HIST_DEFAULT_BUCKETS);
        assert_int_equal(h.count, 1);
        sluice_pool_destroy(p);
        tally_free(t);
    }
    sluice_pool_config cfg;
    sluice_pool_config_init(&cfg);
    cfg.name = "hist";
    cfg.workers = 1;
    cfg.queue_capacity = 1;
    cfg.histogram_buckets = bounds;
    cfg.histogram_bucket_count = SLUICE_HIST_MAX_BUCKETS + 1;
    sluice_pool *p = NULL;
    char err[160];
    assert_int_equal(sluice_pool_create(&cfg, &p, err, sizeof err), SLUICE_EINVAL);
    assert_non_null(strstr(err, "histogram_buckets"));
}

/* timing_sample_every (config and live): 0 = automatic, 1 = every task,
 * UINT_MAX is clamped to 2^31 - 1. */
static void test_timing_sample_extremes(void **state)
{
    (void)state;
    tally *t = tally_new();
    sluice_pool_config cfg;
    base_config(&cfg, "sample", 1, 8, t);
    cfg.timing_sample_every = UINT_MAX;
    sluice_pool *p;
    CREATE_POOL(&cfg, &p);
    assert_int_equal(stats_now(p).timing_sample_every, 0x7fffffffu);
    sluice_pool_config got;
    sluice_pool_config_get(p, &got);
    assert_int_equal(got.timing_sample_every, 0x7fffffffu);
    sluice_pool_set_timing_sample(p, 1);
    assert_int_equal(stats_now(p).timing_sample_every, 1);
    sluice_pool_set_timing_sample(p, 0);
    sluice_pool_config_get(p, &got);
    assert_int_equal(got.timing_sample_every, SLUICE_TIMING_SAMPLE_AUTO);
    sluice_pool_set_timing_sample(p, UINT_MAX);
    assert_int_equal(stats_now(p).timing_sample_every, 0x7fffffffu);
    for (int i = 0; i < 4; i++) {
        assert_int_equal(sluice_pool_submit(p, task_count, t), SLUICE_OK);
    }
    ASSERT_IDENTITY(p);
    sluice_pool_destroy(p);
    tally_free(t);
}

/* ---- calls with sizes --------------------------------------------------------- */

/* resize: 0 refused; 1; UINT_MAX (a ceiling); below min_workers refused;
 * after a drain SLUICE_ECLOSED. */
static void test_resize_extremes(void **state)
{
    (void)state;
    tally *t = tally_new();
    sluice_pool_config cfg;
    base_config(&cfg, "resizex", 2, 8, t);
    cfg.min_workers = 1;
    sluice_pool *p;
    CREATE_POOL(&cfg, &p);
    assert_int_equal(sluice_pool_resize(p, 0), SLUICE_EINVAL);
    assert_int_equal(sluice_pool_resize(p, 1), SLUICE_OK);
    assert_int_equal(stats_now(p).capacity, 1);
    assert_int_equal(sluice_pool_resize(p, UINT_MAX), SLUICE_OK);
    assert_int_equal(stats_now(p).capacity, UINT_MAX);
    for (int i = 0; i < 5; i++) {
        assert_int_equal(sluice_pool_submit(p, task_count, t), SLUICE_OK);
    }
    ASSERT_IDENTITY(p);
    assert_int_equal(sluice_pool_resize(NULL, 3), SLUICE_EINVAL);
    sluice_drain_report rep;
    assert_int_equal(sluice_pool_drain(p, 0, &rep), SLUICE_OK);
    assert_int_equal(sluice_pool_resize(p, 3), SLUICE_ECLOSED);
    sluice_pool_destroy(p);
    tally_free(t);

    /* Below min_workers. */
    t = tally_new();
    base_config(&cfg, "resizemin", 4, 8, t);
    cfg.min_workers = 3;
    CREATE_POOL(&cfg, &p);
    assert_int_equal(sluice_pool_resize(p, 2), SLUICE_EINVAL);
    assert_int_equal(sluice_pool_resize(p, 3), SLUICE_OK);
    sluice_pool_destroy(p);
    tally_free(t);
}

/* submit_batch: n = 0 accepts nothing and succeeds; n = 1; n far beyond
 * the queue under REJECT stops at the first refusal and says how many;
 * NULL tasks with n > 0, NULL accepted, NULL fn are SLUICE_EINVAL. */
static void test_batch_sizes(void **state)
{
    (void)state;
    tally *t = tally_new();
    gate *g = gate_new();
    sluice_pool_config cfg;
    base_config(&cfg, "batchx", 1, 4, t);
    cfg.overflow = SLUICE_OVERFLOW_REJECT;
    sluice_pool *p;
    CREATE_POOL(&cfg, &p);
    size_t acc = 99;
    assert_int_equal(sluice_pool_submit_batch(p, NULL, 0, false, &acc), SLUICE_OK);
    assert_int_equal(acc, 0);
    assert_int_equal(sluice_pool_submit_batch(p, NULL, 1, false, &acc), SLUICE_EINVAL);
    sluice_task_spec one = {.fn = task_count, .arg = t};
    assert_int_equal(sluice_pool_submit_batch(p, &one, 1, false, NULL), SLUICE_EINVAL);
    assert_int_equal(sluice_pool_submit_batch(p, &one, 1, false, &acc), SLUICE_OK);
    assert_int_equal(acc, 1);
    ASSERT_IDENTITY(p);
    hold_workers(p, g, 1);
    enum { N = 1000 };
    sluice_task_spec *many = calloc(N, sizeof *many);
    assert_non_null(many);
    for (int i = 0; i < N; i++) {
        many[i] = (sluice_task_spec){.fn = task_count, .arg = t};
    }
    many[2].fn = NULL;
    assert_int_equal(sluice_pool_submit_batch(p, many, N, true, &acc), SLUICE_EINVAL);
    assert_int_equal(acc, 2); /* the two before the bad one are accepted */
    many[2].fn = task_count;
    assert_int_equal(sluice_pool_submit_batch(p, many, N, true, &acc), SLUICE_EFULL);
    assert_int_equal(acc, 2); /* two more fill the queue of four */
    gate_open(g);
    ASSERT_IDENTITY(p);
    assert_int_equal(atomic_load(&t->ran), 5);
    free(many);
    sluice_pool_destroy(p);
    gate_free(g);
    tally_free(t);
}

/* workers_get: cap 0 (out may be NULL) counts; cap 1 fills one; a cap
 * larger than the count fills them all. */
static void test_workers_get_caps(void **state)
{
    (void)state;
    tally *t = tally_new();
    sluice_pool_config cfg;
    base_config(&cfg, "wget", 3, 8, t);
    cfg.prewarm = true;
    sluice_pool *p;
    CREATE_POOL(&cfg, &p);
    assert_int_equal(sluice_pool_workers_get(p, NULL, 0), 3);
    sluice_worker_info info[8];
    memset(info, 0xAB, sizeof info);
    assert_int_equal(sluice_pool_workers_get(p, info, 1), 3);
    assert_true(info[0].index < 3);
    assert_int_equal((unsigned char)info[1].state, 0xAB); /* untouched past cap */
    assert_int_equal(sluice_pool_workers_get(p, info, 8), 3);
    assert_int_equal(sluice_pool_workers_get(NULL, info, 8), 0);
    sluice_pool_destroy(p);
    tally_free(t);
}

/* backtrace_format: len 0 writes nothing and reports the length wanted;
 * len 1 writes just the NUL; 0 frames give "". */
static void test_backtrace_format_sizes(void **state)
{
    (void)state;
    void *frames[2] = {(void *)test_backtrace_format_sizes, (void *)sluice_pool_create};
    char big[1024];
    size_t want = sluice_backtrace_format(frames, 2, big, sizeof big);
    assert_true(want > 0 && want < sizeof big);
    assert_int_equal(strlen(big), want);
    assert_int_equal(sluice_backtrace_format(frames, 2, NULL, 0), want);
    char one[1] = {'Z'};
    assert_int_equal(sluice_backtrace_format(frames, 2, one, 1), want);
    assert_int_equal(one[0], '\0');
    char empty[8] = "ZZZZZZZ";
    assert_int_equal(sluice_backtrace_format(frames, 0, empty, sizeof empty), 0);
    assert_string_equal(empty, "");
}

/* ---- per-call durations -------------------------------------------------------- */

/* opts.deadline_ns: 0 = none (runs whatever the clock), 1 = long past
 * (shed), UINT64_MAX = never (runs even with the clock near the end). */
static void test_task_deadline_extremes(void **state)
{
    (void)state;
    tally *t = tally_new();
    gate *g = gate_new();
    sluice_fake_clock fc;
    sluice_fake_clock_init(&fc, 1000);
    sluice_pool_config cfg;
    base_config(&cfg, "deadlinex", 1, 8, t);
    cfg.clock = &fc.clock;
    sluice_pool *p;
    CREATE_POOL(&cfg, &p);
    hold_workers(p, g, 1);
    uint64_t deadlines[] = {0, 1, UINT64_MAX};
    for (int i = 0; i < 3; i++) {
        sluice_submit_opts o = {.deadline_ns = deadlines[i]};
        assert_int_equal(sluice_pool_submit_ex(p, task_count, t, &o), SLUICE_OK);
    }
    sluice_fake_clock_set(&fc, UINT64_MAX - 1);
    gate_open(g);
    ASSERT_IDENTITY(p);
    sluice_pool_stats s = stats_now(p);
    assert_int_equal(s.shed, 1);
    assert_int_equal(atomic_load(&t->ran), 2);
    assert_int_equal(atomic_load(&t->abandoned_by[SLUICE_ABANDON_SHED]), 1);
    sluice_pool_destroy(p);
    gate_free(g);
    tally_free(t);
}

typedef struct bg_submit {
    sluice_pool *p;
    sluice_submit_opts opts;
    tally *t;
    sluice_err rc;
    _Atomic int done;
} bg_submit;

static void *bg_submit_main(void *arg)
{
    bg_submit *b = arg;
    b->rc = sluice_pool_submit_ex(b->p, task_count, b->t, &b->opts);
    atomic_store(&b->done, 1);
    return NULL;
}

/* opts.submit_deadline_ns on a full BLOCK queue: 1 = past (ETIMEDOUT at
 * once, counted as rejected); 0 and UINT64_MAX wait until space comes. */
static void test_submit_deadline_extremes(void **state)
{
    (void)state;
    uint64_t deadlines[] = {1, 0, UINT64_MAX};
    for (int i = 0; i < 3; i++) {
        tally *t = tally_new();
        gate *g = gate_new();
        sluice_fake_clock fc;
        sluice_fake_clock_init(&fc, 1000);
        sluice_pool_config cfg;
        base_config(&cfg, "subdeadline", 1, 1, t);
        cfg.clock = &fc.clock;
        sluice_pool *p;
        CREATE_POOL(&cfg, &p);
        hold_workers(p, g, 1);
        assert_int_equal(sluice_pool_submit(p, task_count, t), SLUICE_OK);
        bg_submit *b = calloc(1, sizeof *b);
        assert_non_null(b);
        b->p = p;
        b->t = t;
        b->opts.submit_deadline_ns = deadlines[i];
        pthread_t th;
        START_THREAD(&th, bg_submit_main, b);
        if (deadlines[i] == 1) {
            pthread_join(th, NULL);
            assert_int_equal(b->rc, SLUICE_ETIMEDOUT);
            assert_int_equal(stats_now(p).rejected, 1);
        } else {
            WAIT_FOR(stats_now(p).waiting == 1 || atomic_load(&b->done), "the submitter blocks");
            sluice_fake_clock_set(&fc, UINT64_MAX - 1);
            assert_false(atomic_load(&b->done));
            gate_open(g);
            pthread_join(th, NULL);
            assert_int_equal(b->rc, SLUICE_OK);
        }
        gate_open(g);
        ASSERT_IDENTITY(p);
        sluice_pool_destroy(p);
        free(b);
        gate_free(g);
        tally_free(t);
    }
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_workers_one_and_max),
        cmocka_unit_test(test_min_workers_extremes),
        cmocka_unit_test(test_queue_capacity_extremes),
        cmocka_unit_test(test_stack_size_extremes),
        cmocka_unit_test(test_histogram_bucket_count_extremes),
        cmocka_unit_test(test_timing_sample_extremes),
        cmocka_unit_test(test_resize_extremes),
        cmocka_unit_test(test_batch_sizes),
        cmocka_unit_test(test_workers_get_caps),
        cmocka_unit_test(test_backtrace_format_sizes),
        cmocka_unit_test(test_task_deadline_extremes),
        cmocka_unit_test(test_submit_deadline_extremes),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
