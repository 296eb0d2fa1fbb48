/*
 * tests/core/test_config.c - pool configuration: defaults, validation of
 * every field (SLUICE_EINVAL with an error string naming the field), and
 * "nothing is half-created" on any failure: no thread, no hook call, no
 * memory (ASan's leak check covers the last), *out untouched.
 */
#include "common/pool.h"

static void test_defaults(void **state)
{
    (void)state;
    sluice_pool_config cfg;
    memset(&cfg, 0xAB, sizeof cfg);
    sluice_pool_config_init(&cfg);
    assert_null(cfg.name);
    assert_int_equal(cfg.workers, 0);
    assert_int_equal(cfg.min_workers, 0);
    assert_int_equal(cfg.queue_capacity, 0);
    assert_int_equal(cfg.overflow, SLUICE_OVERFLOW_BLOCK);
    assert_int_equal(cfg.submit_timeout_ns, 0);
    assert_int_equal(cfg.idle_expiry_ns, 0);
    assert_false(cfg.prewarm);
    assert_int_equal(cfg.stack_size, 0);
    assert_null(cfg.worker_init);
    assert_null(cfg.worker_fini);
    assert_null(cfg.panic_handler);
    assert_null(cfg.abandon_handler);
    assert_null(cfg.event_handler);
    assert_null(cfg.user);
    assert_int_equal(cfg.fault_mode, SLUICE_FAULT_OFF);
    assert_null(cfg.histogram_buckets);
    assert_int_equal(cfg.histogram_bucket_count, 0);
    assert_true(cfg.timing_sample_every <= 1);
    assert_false(cfg.timing_disabled);
    assert_null(cfg.clock);
    sluice_pool_config_init(NULL); /* no crash */
}

/* A minimal config is enough: name, workers, queue_capacity. The pool
 * reports what it made of the zero fields. */
static void test_minimal_config_and_config_get(void **state)
{
    (void)state;
    sluice_pool_config cfg;
    sluice_pool_config_init(&cfg);
    char name[] = "minimal";
    cfg.name = name;
    cfg.workers = 3;
    cfg.queue_capacity = 5;
    sluice_pool *p = NULL;
    CREATE_POOL(&cfg, &p);
    name[0] = 'X'; /* the pool copied the name */
    assert_string_equal(sluice_pool_name(p), "minimal");

    sluice_pool_config got;
    sluice_pool_config_get(p, &got);
    assert_string_equal(got.name, "minimal");
    assert_int_equal(got.workers, 3);
    assert_int_equal(got.queue_capacity, 5);
    assert_int_equal(got.overflow, SLUICE_OVERFLOW_BLOCK);
    assert_int_equal(got.histogram_bucket_count, SLUICE_HIST_DEFAULT_BUCKETS);
    assert_non_null(got.histogram_buckets);
    assert_true(sluice_clock_is_system(sluice_pool_clock(p)));

    sluice_pool_stats s = stats_now(p);
    assert_int_equal(s.capacity, 3);
    assert_int_equal(s.queue_capacity, 5);
    assert_int_equal(s.workers, 0); /* lazy: no prewarm, min_workers 0 */
    assert_int_equal(s.submitted, 0);
    assert_false(s.draining);
    sluice_pool_destroy(p);
    sluice_pool_destroy(NULL); /* no-op */
}

typedef struct bad_case {
    const char *what;
    void (*mutate)(sluice_pool_config *cfg);
    const char *field; /* the error string must start with this */
} bad_case;

static const double buckets_unsorted[] = {0.1, 0.05};
static const double buckets_negative[] = {-1.0};
static const double buckets_zero[] = {0.0, 1.0};
static const double buckets_nan[] = {0.1, __builtin_nan("")};
static const double buckets_inf[] = {0.1, __builtin_inf()};
static const double buckets_dup[] = {0.1, 0.1};
static double buckets_many[SLUICE_HIST_MAX_BUCKETS + 1];
static sluice_clock clock_no_fn = {.now_ns = NULL, .clock_ctx = NULL};

static void m_name_null(sluice_pool_config *c)
{
    c->name = NULL;
}
static void m_name_empty(sluice_pool_config *c)
{
    c->name = "";
}
static void m_name_space(sluice_pool_config *c)
{
    c->name = "has space";
}
static void m_name_slash(sluice_pool_config *c)
{
    c->name = "a/b";
}
static void m_name_quote(sluice_pool_config *c)
{
    c->name = "a\"b";
}
static void m_name_long(sluice_pool_config *c)
{
    static char longname[SLUICE_POOL_NAME_MAX + 2];
    memset(longname, 'n', sizeof longname - 1);
    longname[sizeof longname - 1] = '\0';
    c->name = longname;
}
static void m_workers_zero(sluice_pool_config *c)
{
    c->workers = 0;
}
static void m_min_above(sluice_pool_config *c)
{
    c->min_workers = c->workers + 1;
}
static void m_cap_zero(sluice_pool_config *c)
{
    c->queue_capacity = 0;
}
static void m_cap_huge(sluice_pool_config *c)
{
    c->queue_capacity = SIZE_MAX;
}
static void m_overflow_bad(sluice_pool_config *c)
{
    c->overflow = (sluice_overflow)42;
}
static void m_overflow_neg(sluice_pool_config *c)
{
    c->overflow = (sluice_overflow)-1;
}
static void m_fault_bad(sluice_pool_config *c)
{
    c->fault_mode = (sluice_fault_mode)7;
}
static void m_stack_tiny(sluice_pool_config *c)
{
    c->stack_size = 100;
}
static void m_buckets_unsorted(sluice_pool_config *c)
{
    c->histogram_buckets = buckets_unsorted;
    c->histogram_bucket_count = 2;
}
static void m_buckets_negative(sluice_pool_config *c)
{
    c->histogram_buckets = buckets_negative;
    c->histogram_bucket_count = 1;
}
static void m_buckets_zero(sluice_pool_config *c)
{
    c->histogram_buckets = buckets_zero;
    c->histogram_bucket_count = 2;
}
static void m_buckets_nan(sluice_pool_config *c)
{
    c->histogram_buckets = buckets_nan;
    c->histogram_bucket_count = 2;
}
static void m_buckets_inf(sluice_pool_config *c)
{
    c->histogram_buckets = buckets_inf;
    c->histogram_bucket_count = 2;
}
static void m_buckets_dup(sluice_pool_config *c)
{
    c->histogram_buckets = buckets_dup;
    c->histogram_bucket_count = 2;
}
static void m_buckets_null(sluice_pool_config *c)
{
    c->histogram_buckets = NULL;
    c->histogram_bucket_count = 3;
}
static void m_buckets_many(sluice_pool_config *c)
{
    for (size_t i = 0; i < SLUICE_HIST_MAX_BUCKETS + 1; i++) {
        buckets_many[i] = 0.001 * (double)(i + 1);
    }
    c->histogram_buckets = buckets_many;
    c->histogram_bucket_count = SLUICE_HIST_MAX_BUCKETS + 1;
}
static void m_clock_no_fn(sluice_pool_config *c)
{
    c->clock = &clock_no_fn;
}

static const bad_case bad_cases[] = {
    {"name NULL", m_name_null, "name"},
    {"name empty", m_name_empty, "name"},
    {"name with a space", m_name_space, "name"},
    {"name with a slash", m_name_slash, "name"},
    {"name with a quote", m_name_quote, "name"},
    {"name too long", m_name_long, "name"},
    {"workers 0", m_workers_zero, "workers"},
    {"min_workers > workers", m_min_above, "min_workers"},
    {"queue_capacity 0", m_cap_zero, "queue_capacity"},
    {"queue_capacity SIZE_MAX", m_cap_huge, "queue_capacity"},
    {"overflow 42", m_overflow_bad, "overflow"},
    {"overflow -1", m_overflow_neg, "overflow"},
    {"fault_mode 7", m_fault_bad, "fault_mode"},
    {"stack_size 100", m_stack_tiny, "stack_size"},
    {"buckets unsorted", m_buckets_unsorted, "histogram_buckets"},
    {"buckets negative", m_buckets_negative, "histogram_buckets"},
    {"buckets zero", m_buckets_zero, "histogram_buckets"},
    {"buckets NaN", m_buckets_nan, "histogram_buckets"},
    {"buckets inf", m_buckets_inf, "histogram_buckets"},
    {"buckets duplicate", m_buckets_dup, "histogram_buckets"},
    {"buckets NULL with count", m_buckets_null, "histogram_buckets"},
    {"too many buckets", m_buckets_many, "histogram_buckets"},
    {"clock without now_ns", m_clock_no_fn, "clock"},
};

/* Every bad field: EINVAL, the error names the field, *out untouched, no
 * hook ran, no thread was left. prewarm and min_workers are on so that a
 * validation done after starting threads would show. */
static void test_each_bad_field(void **state)
{
    (void)state;
    int threads_before = thread_baseline();
    for (size_t i = 0; i < sizeof bad_cases / sizeof bad_cases[0]; i++) {
        tally *t = tally_new();
        sluice_pool_config cfg;
        base_config(&cfg, "bad", 4, 8, t);
        with_hooks(&cfg);
        cfg.prewarm = true;
        cfg.min_workers = 2;
        bad_cases[i].mutate(&cfg);
        sluice_pool *sentinel = (sluice_pool *)(uintptr_t)0x1234;
        sluice_pool *p = sentinel;
        char err[256];
        memset(err, 'Z', sizeof err);
        sluice_err rc = sluice_pool_create(&cfg, &p, err, sizeof err);
        if (rc != SLUICE_EINVAL) {
            fail_msg("%s: expected SLUICE_EINVAL, got %s", bad_cases[i].what, sluice_err_name(rc));
        }
        assert_ptr_equal(p, sentinel);
        assert_non_null(memchr(err, '\0', sizeof err));
        if (strncmp(err, bad_cases[i].field, strlen(bad_cases[i].field)) != 0) {
            fail_msg("%s: error should name '%s', got '%s'", bad_cases[i].what, bad_cases[i].field, err);
        }
        assert_true(strlen(err) > strlen(bad_cases[i].field) + 2); /* says why, not just which */
        assert_int_equal(atomic_load(&t->inits), 0);
        assert_int_equal(atomic_load(&t->finis), 0);
        tally_free(t);
    }
    assert_int_equal(thread_count(), threads_before);
}

static void test_null_arguments(void **state)
{
    (void)state;
    sluice_pool_config cfg;
    tally *t = tally_new();
    base_config(&cfg, "nulls", 1, 1, t);
    sluice_pool *p = NULL;
    char err[128];
    assert_int_equal(sluice_pool_create(NULL, &p, err, sizeof err), SLUICE_EINVAL);
    assert_true(strlen(err) > 0);
    assert_null(p);
    assert_int_equal(sluice_pool_create(&cfg, NULL, err, sizeof err), SLUICE_EINVAL);
    assert_true(strlen(err) > 0);
    /* errbuf is optional. */
    cfg.workers = 0;
    assert_int_equal(sluice_pool_create(&cfg, &p, NULL, 0), SLUICE_EINVAL);
    assert_null(p);
    /* A one-byte errbuf is still NUL-terminated. */
    char tiny[1] = {'Z'};
    assert_int_equal(sluice_pool_create(&cfg, &p, tiny, sizeof tiny), SLUICE_EINVAL);
    assert_int_equal(tiny[0], '\0');
    tally_free(t);
}

/* Accepted edge values. */
static void test_edge_values_accepted(void **state)
{
    (void)state;
    tally *t = tally_new();
    sluice_pool_config cfg;
    static const double one_bucket[] = {0.5};
    const char *names[] = {"a", "A-z_0.9:x", "nnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnn" /* 48 */};
    for (size_t i = 0; i < 3; i++) {
        base_config(&cfg, names[i], 1, 1, t);
        cfg.min_workers = 1;
        cfg.stack_size = 64 * 1024;
        cfg.histogram_buckets = one_bucket;
        cfg.histogram_bucket_count = 1;
        cfg.overflow = SLUICE_OVERFLOW_DROP_OLDEST;
        sluice_pool *p = NULL;
        CREATE_POOL(&cfg, &p);
        assert_string_equal(sluice_pool_name(p), names[i]);
        assert_int_equal(sluice_pool_submit(p, task_count, t), SLUICE_OK);
        ASSERT_IDENTITY(p);
        sluice_pool_destroy(p);
    }
    assert_int_equal(atomic_load(&t->ran), 3);
    tally_free(t);
}

/* The config's strings and bounds are copied: the caller may reuse them. */
static void test_config_is_copied(void **state)
{
    (void)state;
    tally *t = tally_new();
    sluice_pool_config cfg;
    double bounds[3] = {0.001, 0.01, 0.1};
    base_config(&cfg, "copied", 2, 4, t);
    cfg.histogram_buckets = bounds;
    cfg.histogram_bucket_count = 3;
    sluice_pool *p = NULL;
    CREATE_POOL(&cfg, &p);
    bounds[0] = 99;
    cfg.workers = 77;
    sluice_histogram h;
    sluice_pool_histogram_get(p, SLUICE_HIST_TASK, &h);
    assert_int_equal(h.bucket_count, 3);
    assert_true(h.bounds[0] == 0.001);
    assert_int_equal(stats_now(p).capacity, 2);
    sluice_pool_destroy(p);
    tally_free(t);
}

/* min_workers are started at create (without prewarm). */
static void test_min_workers_started(void **state)
{
    (void)state;
    tally *t = tally_new();
    sluice_pool_config cfg;
    base_config(&cfg, "minw", 4, 4, t);
    with_hooks(&cfg);
    cfg.min_workers = 2;
    sluice_pool *p = NULL;
    CREATE_POOL(&cfg, &p);
    /* Started at create; their init hooks run on their own threads. */
    WAIT_FOR(stats_now(p).workers == 2 && atomic_load(&t->inits) == 2, "two min workers");
    sluice_pool_destroy(p);
    assert_int_equal(atomic_load(&t->finis), 2);
    assert_int_equal(atomic_load(&t->violations), 0);
    tally_free(t);
}

static void test_names(void **state)
{
    (void)state;
    assert_string_equal(sluice_overflow_name(SLUICE_OVERFLOW_BLOCK), "block");
    assert_string_equal(sluice_overflow_name(SLUICE_OVERFLOW_REJECT), "reject");
    assert_string_equal(sluice_overflow_name(SLUICE_OVERFLOW_CALLER_RUNS), "caller_runs");
    assert_string_equal(sluice_overflow_name(SLUICE_OVERFLOW_DROP_OLDEST), "drop_oldest");
    assert_non_null(sluice_overflow_name((sluice_overflow)99));
    assert_string_equal(sluice_abandon_reason_name(SLUICE_ABANDON_DROPPED), "dropped");
    assert_string_equal(sluice_abandon_reason_name(SLUICE_ABANDON_SHED), "shed");
    assert_string_equal(sluice_abandon_reason_name(SLUICE_ABANDON_DRAIN), "drain");
    assert_string_equal(sluice_abandon_reason_name(SLUICE_ABANDON_DESTROY), "destroy");
    assert_non_null(sluice_abandon_reason_name((sluice_abandon_reason)0));
    for (int k = SLUICE_EVENT_WORKER_START; k <= SLUICE_EVENT_WORKER_START_FAILED; k++) {
        assert_string_not_equal(sluice_event_kind_name((sluice_event_kind)k), "unknown");
    }
    assert_non_null(sluice_event_kind_name((sluice_event_kind)0));
    assert_string_equal(sluice_version(), SLUICE_VERSION_STRING);
}

/* Stats and getters on NULL are harmless. */
static void test_null_pool_getters(void **state)
{
    (void)state;
    sluice_pool_stats s;
    memset(&s, 0xff, sizeof s);
    sluice_pool_stats_get(NULL, &s);
    assert_int_equal(s.submitted, 0);
    sluice_pool_stats_get(NULL, NULL);
    assert_null(sluice_pool_name(NULL));
    assert_int_equal(sluice_pool_workers_get(NULL, NULL, 0), 0);
    assert_int_equal(sluice_pool_submit(NULL, task_nop, NULL), SLUICE_EINVAL);
    assert_int_equal(sluice_pool_try_submit(NULL, task_nop, NULL), SLUICE_EINVAL);
    assert_int_equal(sluice_pool_resize(NULL, 1), SLUICE_EINVAL);
    sluice_drain_report r;
    assert_int_equal(sluice_pool_drain(NULL, 0, &r), SLUICE_EINVAL);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_defaults),
        cmocka_unit_test(test_minimal_config_and_config_get),
        cmocka_unit_test(test_each_bad_field),
        cmocka_unit_test(test_null_arguments),
        cmocka_unit_test(test_edge_values_accepted),
        cmocka_unit_test(test_config_is_copied),
        cmocka_unit_test(test_min_workers_started),
        cmocka_unit_test(test_names),
        cmocka_unit_test(test_null_pool_getters),
    };
    return cmocka_run_group_tests_name("core_config", tests, NULL, NULL);
}
