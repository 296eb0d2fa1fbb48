/*
 * tests/core/test_contracts_pool.c - the promises of sluice/pool.h,
 * sluice/task.h and sluice/fault.h probed from outside, read from the
 * headers alone (and tests/common): each test is a sentence of a header
 * at its edges.
 *
 *   - names and parsers: "unknown" past the lists, NULL text or out
 *     refused with *out untouched, case-sensitive;
 *   - create: each documented bound at its limit and one past, errbuf
 *     NUL-terminated (errlen 1 too) and naming the field, *out untouched;
 *     sluice_pool_queue_bytes at 0, 1 and SIZE_MAX;
 *   - submit's return codes: EINVAL, ENOTSUP, ECLOSED (not counted in
 *     rejected), EFULL and EDEADLK (counted), ETIMEDOUT on the pool clock,
 *     a submit timeout and a submit deadline of UINT64_MAX on a clock near
 *     its end (never "already past"), try_submit under BLOCK;
 *   - drain at 0, a fake-clock deadline and UINT64_MAX on a clock near its
 *     end; drain and resize from a worker; blocked submitters released by
 *     drain; destroy's hand-back with an abandon handler that calls back
 *     into the pool; resize at 0, below min_workers, UINT_MAX;
 *   - CALLER_RUNS and DROP_OLDEST: task.h's view on the caller, a panic
 *     there, a per-task on_abandon; deadlines and contexts (shed, should
 *     stop, the earliest deadline wins);
 *   - task.h outside a task, the cleanup stack at SLUICE_CLEANUP_MAX and
 *     one past, handlers innermost first with the panic message;
 *   - sluice_backtrace_format at len 0 and 1; workers_get with cap 0;
 *   - fault.h: the guard is off until a guarded pool exists; RECOVER
 *     replaces the worker (not under sanitizers, which own SIGSEGV);
 *   - races: submits against drain and against resize between 1 and
 *     UINT_MAX (every accepted task accounted for exactly once).
 *
 * Every test ends with the accounting identity at quiescence. Nothing
 * sleeps to wait for an event; every wait is bounded (tests/common).
 */
#include "common/counting_clock.h"
#include "common/fault.h"
#include "common/pool.h"

#include <limits.h>
#include <signal.h>
#include <sys/resource.h>
#include <sys/wait.h>
#include <unistd.h>

/* ---- helpers ---------------------------------------------------------------- */

/* Holds the pool's k workers at g (task_gate: they also leave on stop). */
static void hold(sluice_pool *p, gate *g, unsigned k)
{
    int before = atomic_load(&g->entered);
    for (unsigned i = 0; i < k; i++) {
        assert_int_equal(sluice_pool_submit(p, task_gate, g), SLUICE_OK);
    }
    GATE_WAIT_ENTERED(g, before + (int)k);
}

static bool nul_in(const char *buf, size_t len)
{
    return memchr(buf, '\0', len) != NULL;
}

/* ---- names and parsers ------------------------------------------------------ */

static void test_names_and_parsers(void **state)
{
    (void)state;
    assert_string_equal(sluice_overflow_name(SLUICE_OVERFLOW_COUNT_), "unknown");
    assert_string_equal(sluice_overflow_name((sluice_overflow)-1), "unknown");
    assert_string_equal(sluice_abandon_reason_name(SLUICE_ABANDON_NONE_), "unknown");
    assert_string_equal(sluice_abandon_reason_name(SLUICE_ABANDON_REASON_COUNT_), "unknown");
    assert_string_equal(sluice_fault_mode_name(SLUICE_FAULT_MODE_COUNT_), "unknown");
    assert_string_equal(sluice_overload_mode_name(SLUICE_OVERLOAD_MODE_COUNT_), "unknown");
    assert_string_equal(sluice_queue_discipline_name(SLUICE_QUEUE_DISCIPLINE_COUNT_), "unknown");
    assert_string_equal(sluice_worker_status_name(SLUICE_WORKER_STATUS_COUNT_), "unknown");
    assert_string_equal(sluice_worker_status_name((sluice_worker_status)INT_MAX), "unknown");
    for (int k = SLUICE_EVENT_WORKER_START; k <= SLUICE_EVENT_WORKER_START_FAILED; k++) {
        assert_non_null(sluice_event_kind_name((sluice_event_kind)k));
    }

    /* Round trips over every row. */
    for (int i = 0; i < SLUICE_OVERFLOW_COUNT_; i++) {
        sluice_overflow o = SLUICE_OVERFLOW_COUNT_;
        assert_int_equal(sluice_overflow_parse(sluice_overflow_name((sluice_overflow)i), &o), SLUICE_OK);
        assert_int_equal(o, i);
    }
    for (int i = 1; i < SLUICE_ABANDON_REASON_COUNT_; i++) {
        sluice_abandon_reason r = SLUICE_ABANDON_NONE_;
        assert_int_equal(
            sluice_abandon_reason_parse(sluice_abandon_reason_name((sluice_abandon_reason)i), &r), SLUICE_OK);
        assert_int_equal(r, i);
    }
    for (int i = 0; i < SLUICE_OVERLOAD_MODE_COUNT_; i++) {
        sluice_overload_mode m = SLUICE_OVERLOAD_MODE_COUNT_;
        assert_int_equal(sluice_overload_mode_parse(sluice_overload_mode_name((sluice_overload_mode)i), &m),
                         SLUICE_OK);
        assert_int_equal(m, i);
    }

    /* Refusals leave *out as it was. */
    sluice_overflow o = SLUICE_OVERFLOW_DROP_OLDEST;
    assert_int_equal(sluice_overflow_parse(NULL, &o), SLUICE_EINVAL);
    assert_int_equal(sluice_overflow_parse("Reject", &o), SLUICE_EINVAL);
    assert_int_equal(sluice_overflow_parse("reject ", &o), SLUICE_EINVAL);
    assert_int_equal(sluice_overflow_parse("", &o), SLUICE_EINVAL);
    assert_int_equal(sluice_overflow_parse("unknown", &o), SLUICE_EINVAL);
    assert_int_equal(o, SLUICE_OVERFLOW_DROP_OLDEST);
    assert_int_equal(sluice_overflow_parse("reject", NULL), SLUICE_EINVAL);
    sluice_abandon_reason r = SLUICE_ABANDON_DRAIN;
    assert_int_equal(sluice_abandon_reason_parse("unknown", &r), SLUICE_EINVAL);
    assert_int_equal(sluice_abandon_reason_parse("DROPPED", &r), SLUICE_EINVAL);
    assert_int_equal(r, SLUICE_ABANDON_DRAIN);
    sluice_fault_mode f = SLUICE_FAULT_RECOVER;
    assert_int_equal(sluice_fault_mode_parse(NULL, &f), SLUICE_EINVAL);
    assert_int_equal(sluice_fault_mode_parse("recover", NULL), SLUICE_EINVAL);
    assert_int_equal(f, SLUICE_FAULT_RECOVER);
    sluice_worker_status w = SLUICE_WORKER_EXITING;
    assert_int_equal(sluice_worker_status_parse("unknown", &w), SLUICE_EINVAL);
    assert_int_equal(w, SLUICE_WORKER_EXITING);
    assert_int_equal(sluice_worker_status_parse("idle", &w), SLUICE_OK);
    assert_int_equal(w, SLUICE_WORKER_IDLE);
}

/* ---- create ------------------------------------------------------------------- */

/* cfg refused with EINVAL: *out untouched, errbuf names `field`, and a
 * one-byte errbuf comes back as the empty string. */
static void expect_refused(const sluice_pool_config *cfg, const char *field)
{
    sluice_pool *p = (sluice_pool *)(uintptr_t)0x2;
    char err[256];
    memset(err, 'X', sizeof err);
    sluice_err rc = sluice_pool_create(cfg, &p, err, sizeof err);
    if (rc != SLUICE_EINVAL) {
        if (rc == SLUICE_OK) {
            sluice_pool_destroy(p);
        }
        fail_msg("%s: expected EINVAL, got %s", field, sluice_err_name(rc));
    }
    assert_ptr_equal(p, (sluice_pool *)(uintptr_t)0x2);
    assert_true(nul_in(err, sizeof err));
    if (!strstr(err, field)) {
        fail_msg("the refusal does not name %s: '%s'", field, err);
    }
    char one = 'X';
    assert_int_equal(sluice_pool_create(cfg, &p, &one, 1), SLUICE_EINVAL);
    assert_int_equal(one, '\0');
    assert_int_equal(sluice_pool_create(cfg, &p, NULL, 0), SLUICE_EINVAL);
    assert_ptr_equal(p, (sluice_pool *)(uintptr_t)0x2);
}

static void expect_created(const sluice_pool_config *cfg, const char *what)
{
    sluice_pool *p = NULL;
    char err[256];
    memset(err, 'X', sizeof err);
    sluice_err rc = sluice_pool_create(cfg, &p, err, sizeof err);
    if (rc != SLUICE_OK) {
        fail_msg("%s: %s: %s", what, sluice_err_name(rc), err);
    }
    assert_true(nul_in(err, sizeof err)); /* on success too */
    assert_int_equal(sluice_pool_drain(p, 0, NULL), SLUICE_OK);
    sluice_pool_destroy(p);
}

static void small_config(sluice_pool_config *c)
{
    sluice_pool_config_init(c);
    c->name = "bounds";
    c->workers = 1;
    c->queue_capacity = 1;
}

static void test_create_bounds(void **state)
{
    (void)state;
    sluice_pool_config c;
    char name[SLUICE_POOL_NAME_MAX + 2];

    small_config(&c);
    expect_created(&c, "K 1, capacity 1");
    c.workers = UINT_MAX;
    expect_created(&c, "K UINT_MAX (threads start as work arrives)");
    c.workers = 0;
    expect_refused(&c, "workers");

    small_config(&c);
    c.min_workers = 2;
    expect_refused(&c, "min_workers");
    c.workers = 2;
    expect_created(&c, "min_workers == workers");

    small_config(&c);
    c.queue_capacity = 0;
    expect_refused(&c, "queue_capacity");
    c.queue_capacity = (SIZE_MAX >> 8) + 1;
    expect_refused(&c, "queue_capacity");

    small_config(&c);
    memset(name, 'n', SLUICE_POOL_NAME_MAX);
    name[SLUICE_POOL_NAME_MAX] = '\0';
    c.name = name;
    expect_created(&c, "a name of SLUICE_POOL_NAME_MAX bytes");
    name[SLUICE_POOL_NAME_MAX] = 'n';
    name[SLUICE_POOL_NAME_MAX + 1] = '\0';
    expect_refused(&c, "name");
    c.name = "a/b";
    expect_refused(&c, "name");
    c.name = "a b";
    expect_refused(&c, "name");
    c.name = NULL;
    expect_refused(&c, "name");
    c.name = "Az09_.:-";
    expect_created(&c, "every character class of the charset");

    small_config(&c);
    c.stack_size = 16383;
    expect_refused(&c, "stack_size");
    c.stack_size = 16384;
    expect_created(&c, "the smallest stack");

    small_config(&c);
    c.timing_sample_every = (1u << 31) - 1;
    expect_created(&c, "timing 1 in 2^31 - 1");
    /* Past 2^31 - 1 the rate is taken as 2^31 - 1 (never AUTO's bit). */
    unsigned too_big[] = {1u << 31, UINT_MAX};
    for (int i = 0; i < 2; i++) {
        c.timing_sample_every = too_big[i];
        sluice_pool *tp = NULL;
        CREATE_POOL(&c, &tp);
        assert_int_equal(stats_now(tp).timing_sample_every, (1u << 31) - 1);
        sluice_pool_set_timing_sample(tp, too_big[i]);
        assert_int_equal(stats_now(tp).timing_sample_every, (1u << 31) - 1);
        sluice_pool_set_timing_sample(tp, 1);
        assert_int_equal(stats_now(tp).timing_sample_every, 1);
        sluice_pool_destroy(tp);
    }

    /* Histogram bounds: > 0, <= 1e9, strictly increasing, at most 64. */
    small_config(&c);
    double b[SLUICE_HIST_MAX_BUCKETS + 1];
    for (int i = 0; i <= SLUICE_HIST_MAX_BUCKETS; i++) {
        b[i] = 0.001 * (i + 1);
    }
    c.histogram_buckets = b;
    c.histogram_bucket_count = SLUICE_HIST_MAX_BUCKETS;
    expect_created(&c, "SLUICE_HIST_MAX_BUCKETS bounds");
    c.histogram_bucket_count = SLUICE_HIST_MAX_BUCKETS + 1;
    expect_refused(&c, "histogram");
    double one_bad[2] = {0.0, 1.0};
    c.histogram_buckets = one_bad;
    c.histogram_bucket_count = 2;
    expect_refused(&c, "histogram");
    double flat[2] = {1.0, 1.0};
    c.histogram_buckets = flat;
    expect_refused(&c, "histogram");
    double top[2] = {1.0, 1e9};
    c.histogram_buckets = top;
    expect_created(&c, "a bound of exactly 1e9 s");
    double past[2] = {1.0, 1.000001e9};
    c.histogram_buckets = past;
    expect_refused(&c, "histogram");

    /* Overload: target <= interval, slough >= target; UINT64_MAX pairs. */
    small_config(&c);
    c.overload = SLUICE_OVERLOAD_CODEL;
    c.overload_target_ns = 2000;
    c.overload_interval_ns = 1000;
    expect_refused(&c, "overload_target_ns");
    c.overload_target_ns = 1000;
    c.overload_slough_ns = 999;
    expect_refused(&c, "overload_slough_ns");
    c.overload_target_ns = UINT64_MAX;
    c.overload_interval_ns = UINT64_MAX;
    c.overload_slough_ns = UINT64_MAX;
    expect_created(&c, "CoDel that never stands");
    c.overload_target_ns = 1;
    c.overload_interval_ns = 1;
    c.overload_slough_ns = 1;
    expect_created(&c, "CoDel at 1 ns everywhere");

    /* Adaptive LIFO is refused on sharded and fifo_batch queues. */
    small_config(&c);
    c.overload = SLUICE_OVERLOAD_LIFO;
    c.queue_discipline = SLUICE_QUEUE_SHARDED;
    assert_int_equal(sluice_pool_create(&c, &(sluice_pool *){NULL}, NULL, 0), SLUICE_EINVAL);
    c.queue_discipline = SLUICE_QUEUE_FIFO_BATCH;
    assert_int_equal(sluice_pool_create(&c, &(sluice_pool *){NULL}, NULL, 0), SLUICE_EINVAL);
    c.queue_discipline = SLUICE_QUEUE_FAIR;
    expect_created(&c, "LIFO composes with FAIR");
}

static void test_queue_bytes(void **state)
{
    (void)state;
    assert_int_equal(sluice_pool_queue_bytes(0), 0);
    size_t one = sluice_pool_queue_bytes(1);
    assert_true(one >= 64 && one != SIZE_MAX);
    assert_true(sluice_pool_queue_bytes(2) >= one);
    assert_int_equal(sluice_pool_queue_bytes(SIZE_MAX), SIZE_MAX);
    assert_int_equal(sluice_pool_queue_bytes(SIZE_MAX / 64 + 1), SIZE_MAX);
    /* The largest capacity create accepts has a size (64 bytes a task fit). */
    size_t top = sluice_pool_queue_bytes(SIZE_MAX >> 8);
    assert_true(top >= (SIZE_MAX >> 8) * 64);
}

/* ---- config copies ------------------------------------------------------------ */

static void test_config_is_copied(void **state)
{
    (void)state;
    char name[16] = "copied";
    double b[2] = {0.5, 2.0};
    sluice_pool_config c;
    small_config(&c);
    c.name = name;
    c.histogram_buckets = b;
    c.histogram_bucket_count = 2;
    sluice_pool *p = NULL;
    CREATE_POOL(&c, &p);
    memcpy(name, "zzzzzz", 7);
    b[0] = 100.0;
    assert_string_equal(sluice_pool_name(p), "copied");
    sluice_pool_config got;
    sluice_pool_config_get(p, &got);
    assert_string_equal(got.name, "copied");
    assert_int_equal(got.workers, 1);
    assert_int_equal(got.queue_capacity, 1);
    sluice_histogram h;
    sluice_pool_histogram_get(p, SLUICE_HIST_TASK, &h);
    assert_int_equal(h.bucket_count, 2);
    assert_true(h.bounds[0] == 0.5 && h.bounds[1] == 2.0);
    assert_true(sluice_clock_is_system(sluice_pool_clock(p)));
    sluice_pool_destroy(p);
    sluice_pool_destroy(NULL); /* a no-op */
}

/* ---- submit's return codes ------------------------------------------------------ */

static void test_submit_arguments(void **state)
{
    (void)state;
    tally *t = tally_new();
    sluice_pool_config c;
    base_config(&c, "args", 1, 4, t);
    sluice_pool *p = NULL;
    CREATE_POOL(&c, &p);
    assert_int_equal(sluice_pool_submit(NULL, task_count, t), SLUICE_EINVAL);
    assert_int_equal(sluice_pool_submit(p, NULL, t), SLUICE_EINVAL);
    assert_int_equal(sluice_pool_try_submit(NULL, task_count, t), SLUICE_EINVAL);
    assert_int_equal(sluice_pool_try_submit(p, NULL, t), SLUICE_EINVAL);
    assert_int_equal(sluice_pool_submit_ex(p, NULL, t, NULL), SLUICE_EINVAL);
    sluice_submit_opts o = {.tenant_name = "acme"};
    assert_int_equal(sluice_pool_submit_ex(p, task_count, t, &o), SLUICE_ENOTSUP);
    size_t acc = 99;
    assert_int_equal(sluice_pool_submit_batch(p, NULL, 0, false, &acc), SLUICE_OK);
    assert_int_equal(acc, 0);
    /* NULL opts is "none". */
    assert_int_equal(sluice_pool_submit_ex(p, task_count, t, NULL), SLUICE_OK);
    ASSERT_IDENTITY(p);
    sluice_pool_stats s = stats_now(p);
    assert_int_equal(s.submitted, 1);
    assert_int_equal(atomic_load(&t->ran), 1);
    sluice_pool_destroy(p);
    tally_free(t);
}

/* A drained pool: every call that would add work says ECLOSED, none is
 * counted as rejected; a second drain returns OK with an empty report. */
static void test_closed_refusals_not_counted(void **state)
{
    (void)state;
    tally *t = tally_new();
    sluice_pool_config c;
    base_config(&c, "closed", 2, 4, t);
    sluice_pool *p = NULL;
    CREATE_POOL(&c, &p);
    assert_int_equal(sluice_pool_submit(p, task_count, t), SLUICE_OK);
    sluice_drain_report r;
    assert_int_equal(sluice_pool_drain(p, 0, &r), SLUICE_OK);
    assert_false(r.timed_out);
    assert_int_equal(r.handed_back, 0);
    assert_int_equal(sluice_pool_submit(p, task_count, t), SLUICE_ECLOSED);
    assert_int_equal(sluice_pool_try_submit(p, task_count, t), SLUICE_ECLOSED);
    assert_int_equal(sluice_pool_submit_ex(p, task_count, t, &(sluice_submit_opts){.label = "x"}),
                     SLUICE_ECLOSED);
    sluice_task_spec spec = {.fn = task_count, .arg = t};
    size_t acc = 99;
    assert_int_equal(sluice_pool_submit_batch(p, &spec, 1, false, &acc), SLUICE_ECLOSED);
    assert_int_equal(acc, 0);
    assert_int_equal(sluice_pool_resize(p, 3), SLUICE_ECLOSED);
    sluice_pool_stats s = stats_now(p);
    assert_true(s.draining);
    assert_int_equal(s.rejected, 0);
    assert_int_equal(s.submitted, 1);
    assert_int_equal(s.capacity, 2);
    memset(&r, 0xff, sizeof r);
    assert_int_equal(sluice_pool_drain(p, 1, &r), SLUICE_OK);
    assert_int_equal(r.completed, 0);
    assert_int_equal(r.still_running, 0);
    assert_int_equal(r.handed_back, 0);
    assert_false(r.timed_out);
    assert_int_equal(sluice_pool_drain(p, UINT64_MAX, NULL), SLUICE_OK);
    ASSERT_IDENTITY(p);
    assert_int_equal(atomic_load(&t->ran), 1);
    sluice_pool_destroy(p);
    tally_free(t);
}

/* REJECT at capacity 1: EFULL, counted; the refused arg never comes back.
 * try_submit under BLOCK at a full queue: EFULL too, counted. */
static void test_full_refusals_counted(void **state)
{
    (void)state;
    tally *t = tally_new();
    gate *g = gate_new();
    sluice_pool_config c;
    base_config(&c, "full", 1, 1, t);
    c.overflow = SLUICE_OVERFLOW_REJECT;
    sluice_pool *p = NULL;
    CREATE_POOL(&c, &p);
    hold(p, g, 1);
    assert_int_equal(sluice_pool_submit(p, task_count, t), SLUICE_OK);
    assert_int_equal(sluice_pool_submit(p, task_count, t), SLUICE_EFULL);
    assert_int_equal(sluice_pool_try_submit(p, task_count, t), SLUICE_EFULL);
    sluice_pool_stats s = stats_now(p);
    assert_int_equal(s.rejected, 2);
    assert_int_equal(s.submitted, 2);
    assert_int_equal(s.queue_depth, 1);
    assert_true(atomic_load(&t->events_by[SLUICE_EVENT_SUBMIT_REFUSED]) >= 1);
    assert_int_equal(s.queue_depth_hwm, 1);
    gate_open(g);
    ASSERT_IDENTITY(p);
    assert_int_equal(atomic_load(&t->ran), 1);
    assert_int_equal(atomic_load(&t->abandoned_total), 0);
    sluice_pool_destroy(p);

    gate_close(g);
    base_config(&c, "fullblock", 1, 1, t);
    c.overflow = SLUICE_OVERFLOW_BLOCK;
    CREATE_POOL(&c, &p);
    hold(p, g, 1);
    assert_int_equal(sluice_pool_submit(p, task_count, t), SLUICE_OK);
    assert_int_equal(sluice_pool_try_submit(p, task_count, t), SLUICE_EFULL);
    assert_int_equal(stats_now(p).rejected, 1);
    gate_open(g);
    ASSERT_IDENTITY(p);
    sluice_pool_destroy(p);
    gate_free(g);
    tally_free(t);
}

/* A submitter on another thread. */
typedef struct bg_submit {
    sluice_pool *pool;
    sluice_task_fn fn;
    void *arg;
    sluice_submit_opts opts;
    bool use_opts;
    _Atomic int done;
    sluice_err rc;
    pthread_t th;
} bg_submit;

static void *bg_submit_main(void *arg)
{
    bg_submit *b = arg;
    b->rc = b->use_opts ? sluice_pool_submit_ex(b->pool, b->fn, b->arg, &b->opts)
                        : sluice_pool_submit(b->pool, b->fn, b->arg);
    atomic_store(&b->done, 1);
    return NULL;
}

static void bg_start(bg_submit *b, sluice_pool *p, sluice_task_fn fn, void *arg)
{
    b->pool = p;
    b->fn = fn;
    b->arg = arg;
    atomic_store(&b->done, 0);
    START_THREAD(&b->th, bg_submit_main, b);
}

/* BLOCK with a submit timeout on a fake clock: ETIMEDOUT when the pool's
 * clock passes it, counted as rejected; a live set_submit_timeout applies
 * to the next submit. */
static void test_block_timeout_on_pool_clock(void **state)
{
    (void)state;
    tally *t = tally_new();
    gate *g = gate_new();
    sluice_fake_clock fc;
    sluice_fake_clock_init(&fc, 1000);
    sluice_pool_config c;
    base_config(&c, "btimeout", 1, 1, t);
    c.clock = &fc.clock;
    c.submit_timeout_ns = 500;
    sluice_pool *p = NULL;
    CREATE_POOL(&c, &p);
    assert_ptr_equal(sluice_pool_clock(p), &fc.clock);
    hold(p, g, 1);
    assert_int_equal(sluice_pool_submit(p, task_count, t), SLUICE_OK);
    bg_submit b = {0};
    bg_start(&b, p, task_count, t);
    WAIT_FOR(stats_now(p).waiting == 1, "the submitter blocks");
    sluice_fake_clock_advance(&fc, 500);
    pthread_join(b.th, NULL);
    assert_int_equal(b.rc, SLUICE_ETIMEDOUT);
    sluice_pool_stats s = stats_now(p);
    assert_int_equal(s.rejected, 1);
    assert_int_equal(s.waiting, 0);
    assert_int_equal(s.waiting_hwm, 1);

    /* A submit deadline already past at a full queue: ETIMEDOUT. */
    assert_int_equal(sluice_pool_submit_ex(p, task_count, t, &(sluice_submit_opts){.submit_deadline_ns = 1}),
                     SLUICE_ETIMEDOUT);
    /* The earlier of the two wins: a far deadline does not undo the timeout. */
    sluice_pool_set_submit_timeout(p, 7);
    bg_submit b2 = {.use_opts = true, .opts = {.submit_deadline_ns = UINT64_MAX}};
    bg_start(&b2, p, task_count, t);
    WAIT_FOR(stats_now(p).waiting == 1, "the second submitter blocks");
    sluice_fake_clock_advance(&fc, 7);
    pthread_join(b2.th, NULL);
    assert_int_equal(b2.rc, SLUICE_ETIMEDOUT);
    assert_int_equal(stats_now(p).rejected, 3);
    gate_open(g);
    ASSERT_IDENTITY(p);
    assert_int_equal(atomic_load(&t->ran), 1);
    sluice_pool_destroy(p);
    gate_free(g);
    tally_free(t);
}

/* Waits until the clock has been read `n` more times than `from`: the
 * waiter polls a non-system clock every millisecond, so this proves it has
 * looked at its deadline again and again. */
static void wait_reads(counting_clock *cc, uint64_t from, uint64_t n)
{
    WAIT_FOR(atomic_load(&cc->reads) >= from + n, "clock reads by the waiter");
}

/* Gives a waiter that has no deadline to poll (a drain without a limit
 * need not read the clock at all) the chance to end early: returns once
 * the clock has been read 20 more times, 20 ms of real time have passed,
 * or *done turned true. Used only to look for a call that returns too
 * soon: a correct pool passes whatever the timing. */
static void settle(counting_clock *cc, _Atomic int *done)
{
    uint64_t from = atomic_load(&cc->reads);
    uint64_t until = real_now_ns() + 20 * SLUICE_NS_PER_MS;
    while (!atomic_load(done) && atomic_load(&cc->reads) < from + 20 && real_now_ns() < until) {
        poll_pause();
    }
}

/* "Deadlines computed from durations saturate: UINT64_MAX is as good as no
 * limit, never a deadline in the past": on a clock a few ns from its end,
 * a submit timeout of UINT64_MAX and a submit deadline of UINT64_MAX
 * must wait for space, not time out. */
static void test_block_max_timeout_near_clock_end(void **state)
{
    (void)state;
    tally *t = tally_new();
    gate *g = gate_new();
    counting_clock *cc = malloc(sizeof *cc);
    assert_non_null(cc);
    counting_clock_init(cc, UINT64_MAX - 10);
    sluice_pool_config c;
    base_config(&c, "maxtimeout", 1, 1, t);
    c.clock = &cc->clock;
    c.submit_timeout_ns = UINT64_MAX;
    c.timing_disabled = true;
    sluice_pool *p = NULL;
    CREATE_POOL(&c, &p);
    hold(p, g, 1);
    assert_int_equal(sluice_pool_submit(p, task_count, t), SLUICE_OK);

    bg_submit b = {0};
    bg_start(&b, p, task_count, t);
    bg_submit b2 = {.use_opts = true, .opts = {.submit_deadline_ns = UINT64_MAX}};
    bg_start(&b2, p, task_count, t);
    WAIT_FOR(stats_now(p).waiting == 2, "both submitters block");
    wait_reads(cc, atomic_load(&cc->reads), 20);
    atomic_store(&cc->now, UINT64_MAX); /* the clock's end: still not past */
    settle(cc, &b.done);
    settle(cc, &b2.done);
    assert_int_equal(atomic_load(&b.done), 0);
    assert_int_equal(atomic_load(&b2.done), 0);
    gate_open(g);
    pthread_join(b.th, NULL);
    pthread_join(b2.th, NULL);
    assert_int_equal(b.rc, SLUICE_OK);
    assert_int_equal(b2.rc, SLUICE_OK);
    ASSERT_IDENTITY(p);
    assert_int_equal(stats_now(p).rejected, 0);
    assert_int_equal(atomic_load(&t->ran), 3);
    sluice_pool_destroy(p);
    free(cc);
    gate_free(g);
    tally_free(t);
}

/* ---- calls from inside a task ------------------------------------------------------ */

typedef struct inner {
    _Atomic int fill_rc, deadlk_rc, drain_rc, resize_rc, resize_back_rc, try_rc;
    _Atomic int ran;
    tally *t;
} inner;

/* On the only worker of a BLOCK pool of capacity 1: fill the queue, then
 * submit again (EDEADLK: waiting could deadlock), drain (EDEADLK), resize
 * (allowed from inside a task). */
static int task_reenter(void *arg)
{
    inner *in = arg;
    sluice_pool *p = sluice_task_pool();
    atomic_store(&in->fill_rc, sluice_pool_submit(p, task_count, in->t));
    atomic_store(&in->deadlk_rc, sluice_pool_submit(p, task_count, in->t));
    atomic_store(&in->try_rc, sluice_pool_try_submit(p, task_count, in->t));
    sluice_drain_report r;
    atomic_store(&in->drain_rc, sluice_pool_drain(p, 1, &r));
    atomic_store(&in->resize_rc, sluice_pool_resize(p, 2));
    atomic_store(&in->resize_back_rc, sluice_pool_resize(p, 1));
    atomic_store(&in->ran, 1);
    return 0;
}

static void test_calls_from_a_worker(void **state)
{
    (void)state;
    tally *t = tally_new();
    sluice_pool_config c;
    base_config(&c, "reenter", 1, 1, t);
    sluice_pool *p = NULL;
    CREATE_POOL(&c, &p);
    inner *in = calloc(1, sizeof *in);
    assert_non_null(in);
    in->t = t;
    assert_int_equal(sluice_pool_submit(p, task_reenter, in), SLUICE_OK);
    WAIT_FOR(atomic_load(&in->ran) == 1, "the task ran");
    assert_int_equal(atomic_load(&in->fill_rc), SLUICE_OK);
    assert_int_equal(atomic_load(&in->deadlk_rc), SLUICE_EDEADLK);
    assert_int_equal(atomic_load(&in->try_rc), SLUICE_EFULL);
    assert_int_equal(atomic_load(&in->drain_rc), SLUICE_EDEADLK);
    assert_int_equal(atomic_load(&in->resize_rc), SLUICE_OK);
    assert_int_equal(atomic_load(&in->resize_back_rc), SLUICE_OK);
    ASSERT_IDENTITY(p);
    sluice_pool_stats s = stats_now(p);
    assert_int_equal(s.rejected, 2);
    assert_int_equal(s.submitted, 2);
    assert_false(s.draining); /* the refused drain closed nothing */
    assert_int_equal(s.capacity, 1);
    assert_int_equal(atomic_load(&t->ran), 1);
    sluice_pool_destroy(p);
    free(in);
    tally_free(t);
}

/* ---- CALLER_RUNS: task.h on the submitter ------------------------------------------- */

typedef struct caller_view {
    sluice_pool *pool;
    _Atomic int checked;
    _Atomic int bad;
    pthread_t submitter;
} caller_view;

static int task_caller_view(void *arg)
{
    caller_view *v = arg;
    if (sluice_task_pool() != v->pool) {
        atomic_fetch_or(&v->bad, 1);
    }
    if (sluice_worker_state() != NULL) {
        atomic_fetch_or(&v->bad, 2);
    }
    if (sluice_worker_index() != UINT32_MAX) {
        atomic_fetch_or(&v->bad, 4);
    }
    if (!pthread_equal(pthread_self(), v->submitter)) {
        atomic_fetch_or(&v->bad, 8);
    }
    if (sluice_task_should_stop()) {
        atomic_fetch_or(&v->bad, 16);
    }
    atomic_fetch_add(&v->checked, 1);
    return 0;
}

static int task_panics_on_caller(void *arg)
{
    (void)arg;
    sluice_panic("caller %s %d", "panic", 7);
}

static void test_caller_runs_view(void **state)
{
    (void)state;
    tally *t = tally_new();
    gate *g = gate_new();
    sluice_pool_config c;
    base_config(&c, "callerruns", 1, 1, t);
    c.overflow = SLUICE_OVERFLOW_CALLER_RUNS;
    with_hooks(&c);
    sluice_pool *p = NULL;
    CREATE_POOL(&c, &p);
    hold(p, g, 1);
    assert_int_equal(sluice_pool_submit(p, task_count, t), SLUICE_OK);
    caller_view v = {.pool = p, .submitter = pthread_self()};
    assert_int_equal(sluice_pool_submit(p, task_caller_view, &v), SLUICE_OK);
    assert_int_equal(atomic_load(&v.checked), 1); /* it has already run */
    assert_int_equal(atomic_load(&v.bad), 0);
    assert_int_equal(sluice_pool_try_submit(p, task_caller_view, &v), SLUICE_OK);
    assert_int_equal(atomic_load(&v.checked), 2);
    assert_int_equal(sluice_pool_submit(p, task_panics_on_caller, NULL), SLUICE_OK);
    assert_int_equal(atomic_load(&t->panics), 1);
    pthread_mutex_lock(&t->mu);
    panic_record rec = t->records[0];
    pthread_mutex_unlock(&t->mu);
    assert_true(rec.caller_thread);
    assert_string_equal(rec.message, "caller panic 7");
    assert_string_equal(rec.pool_name, "callerruns");
    assert_int_equal(rec.signal, 0);
    sluice_pool_stats s = stats_now(p);
    assert_int_equal(s.caller_ran, 3);
    assert_int_equal(s.panicked, 1);
    assert_int_equal(s.rejected, 0);
    /* Outside the task again: nothing. */
    assert_null(sluice_task_pool());
    gate_open(g);
    ASSERT_IDENTITY(p);
    assert_int_equal(stats_now(p).submitted, 5);
    sluice_pool_destroy(p);
    assert_int_equal(atomic_load(&t->violations), 0);
    gate_free(g);
    tally_free(t);
}

/* CALLER_RUNS with the task's deadline already past: shed on the caller
 * (abandon handler on the submitting thread), counted in shed, not in
 * caller_ran; the submit still says OK (accepted). */
static _Atomic uintptr_t g_shed_thread;

static void abandon_note_thread(const sluice_abandoned *a)
{
    (void)a;
    atomic_store(&g_shed_thread, (uintptr_t)pthread_self());
}

static void test_caller_runs_sheds_past_deadline(void **state)
{
    (void)state;
    atomic_store(&g_shed_thread, 0);
    tally *t = tally_new();
    gate *g = gate_new();
    sluice_fake_clock fc;
    sluice_fake_clock_init(&fc, 1000);
    sluice_pool_config c;
    base_config(&c, "callershed", 1, 1, t);
    c.overflow = SLUICE_OVERFLOW_CALLER_RUNS;
    c.clock = &fc.clock;
    sluice_pool *p = NULL;
    CREATE_POOL(&c, &p);
    hold(p, g, 1);
    assert_int_equal(sluice_pool_submit(p, task_count, t), SLUICE_OK);
    assert_int_equal(
        sluice_pool_submit_ex(p, task_count, t,
                              &(sluice_submit_opts){.deadline_ns = 10, .on_abandon = abandon_note_thread}),
        SLUICE_OK);
    assert_true(atomic_load(&g_shed_thread) == (uintptr_t)pthread_self());
    sluice_pool_stats s = stats_now(p);
    assert_int_equal(s.shed, 1);
    assert_int_equal(s.caller_ran, 0);
    assert_int_equal(s.submitted, 3);
    assert_int_equal(atomic_load(&t->ran), 0);
    gate_open(g);
    ASSERT_IDENTITY(p);
    assert_int_equal(atomic_load(&t->ran), 1);
    sluice_pool_destroy(p);
    gate_free(g);
    tally_free(t);
}

/* A running task's label and state in workers_get; with a custom clock
 * the default (AUTO) sampling times every task, on the pool's clock. */
static sluice_fake_clock *g_hist_clock;

static int task_takes_2ms(void *arg)
{
    (void)arg;
    sluice_fake_clock_advance(g_hist_clock, 2 * SLUICE_NS_PER_MS);
    return 0;
}

static void test_labels_and_timing_on_pool_clock(void **state)
{
    (void)state;
    tally *t = tally_new();
    gate *g = gate_new();
    sluice_fake_clock *fc = malloc(sizeof *fc);
    assert_non_null(fc);
    sluice_fake_clock_init(fc, SLUICE_NS_PER_SEC);
    g_hist_clock = fc;
    sluice_pool_config c;
    base_config(&c, "labels", 1, 8, t);
    c.clock = &fc->clock;
    sluice_pool *p = NULL;
    CREATE_POOL(&c, &p);
    assert_int_equal(sluice_pool_submit_ex(p, task_gate, g, &(sluice_submit_opts){.label = "held-here"}),
                     SLUICE_OK);
    GATE_WAIT_ENTERED(g, 1);
    sluice_worker_info w[2];
    WAIT_FOR(sluice_pool_workers_get(p, w, 2) == 1 && w[0].state == SLUICE_WORKER_RUNNING, "the worker runs");
    assert_non_null(w[0].task_label);
    assert_string_equal(w[0].task_label, "held-here");
    gate_open(g);
    ASSERT_IDENTITY(p);
    sluice_histogram before;
    sluice_pool_histogram_get(p, SLUICE_HIST_TASK, &before);
    for (int i = 0; i < 5; i++) {
        assert_int_equal(sluice_pool_submit(p, task_takes_2ms, NULL), SLUICE_OK);
    }
    ASSERT_IDENTITY(p);
    sluice_histogram h;
    sluice_pool_histogram_get(p, SLUICE_HIST_TASK, &h);
    assert_int_equal(h.count - before.count, 5);
    double added = h.sum_seconds - before.sum_seconds;
    assert_true(added > 0.0099 && added < 0.0101);
    assert_int_equal(h.bucket_count, SLUICE_HIST_DEFAULT_BUCKETS);
    uint64_t in_buckets = 0;
    for (size_t i = 0; i <= h.bucket_count; i++) {
        in_buckets += h.counts[i];
    }
    assert_int_equal(in_buckets, h.count);
    assert_int_equal(stats_now(p).timing_sample_every, 1);
    sluice_pool_destroy(p);
    free(fc);
    gate_free(g);
    tally_free(t);
}

/* ---- DROP_OLDEST and on_abandon ---------------------------------------------------- */

typedef struct own_back {
    _Atomic int n;
    _Atomic int bad;
    void *arg;
    const char *label;
    sluice_abandon_reason reason;
    uint64_t deadline;
} own_back;

static own_back g_own;

static void own_on_abandon(const sluice_abandoned *a)
{
    g_own.arg = a->arg;
    g_own.label = a->label;
    g_own.reason = a->reason;
    g_own.deadline = a->deadline_ns;
    if (!a->fn) {
        atomic_fetch_add(&g_own.bad, 1);
    }
    atomic_fetch_add(&g_own.n, 1);
}

static void test_drop_oldest_to_own_handler(void **state)
{
    (void)state;
    memset(&g_own, 0, sizeof g_own);
    tally *t = tally_new();
    gate *g = gate_new();
    sluice_pool_config c;
    base_config(&c, "dropoldest", 1, 2, t);
    c.overflow = SLUICE_OVERFLOW_DROP_OLDEST;
    sluice_pool *p = NULL;
    CREATE_POOL(&c, &p);
    hold(p, g, 1);
    int mine = 0;
    sluice_submit_opts o = {.on_abandon = own_on_abandon, .label = "mine", .deadline_ns = UINT64_MAX};
    assert_int_equal(sluice_pool_submit_ex(p, task_nop, &mine, &o), SLUICE_OK);
    assert_int_equal(sluice_pool_submit(p, task_count, t), SLUICE_OK);
    assert_int_equal(sluice_pool_submit(p, task_count, t), SLUICE_OK); /* drops `mine` */
    assert_int_equal(atomic_load(&g_own.n), 1);
    assert_ptr_equal(g_own.arg, &mine);
    assert_string_equal(g_own.label, "mine");
    assert_int_equal(g_own.reason, SLUICE_ABANDON_DROPPED);
    assert_true(g_own.deadline == UINT64_MAX);
    assert_int_equal(atomic_load(&t->abandoned_total), 0);             /* not the pool's handler */
    assert_int_equal(sluice_pool_submit(p, task_count, t), SLUICE_OK); /* drops the pool's own */
    assert_int_equal(atomic_load(&t->abandoned_by[SLUICE_ABANDON_DROPPED]), 1);
    sluice_pool_stats s = stats_now(p);
    assert_int_equal(s.dropped, 2);
    assert_int_equal(s.rejected, 0);
    gate_open(g);
    ASSERT_IDENTITY(p);
    assert_int_equal(atomic_load(&t->ran), 2);
    assert_int_equal(atomic_load(&g_own.bad), 0);
    sluice_pool_destroy(p);
    gate_free(g);
    tally_free(t);
}

/* ---- deadlines and contexts ---------------------------------------------------------- */

typedef struct seen_deadline {
    _Atomic uint64_t deadline;
    _Atomic uintptr_t ctx;
    _Atomic int ran;
} seen_deadline;

static int task_see_deadline(void *arg)
{
    seen_deadline *s = arg;
    atomic_store(&s->deadline, sluice_task_deadline());
    atomic_store(&s->ctx, (uintptr_t)sluice_task_ctx());
    atomic_store(&s->ran, 1);
    return 0;
}

static void test_deadlines_and_contexts(void **state)
{
    (void)state;
    memset(&g_own, 0, sizeof g_own);
    tally *t = tally_new();
    gate *g = gate_new();
    sluice_fake_clock fc;
    sluice_fake_clock_init(&fc, 1000);
    sluice_pool_config c;
    base_config(&c, "deadlines", 1, 8, t);
    c.clock = &fc.clock;
    sluice_pool *p = NULL;
    CREATE_POOL(&c, &p);
    hold(p, g, 1);

    /* Past deadline: shed to its own handler with the deadline; never run. */
    seen_deadline past = {0};
    assert_int_equal(
        sluice_pool_submit_ex(
            p, task_see_deadline, &past,
            &(sluice_submit_opts){.deadline_ns = 999, .on_abandon = own_on_abandon, .label = "late"}),
        SLUICE_OK);
    /* UINT64_MAX: never passes. */
    seen_deadline far = {0};
    assert_int_equal(
        sluice_pool_submit_ex(p, task_see_deadline, &far, &(sluice_submit_opts){.deadline_ns = UINT64_MAX}),
        SLUICE_OK);
    /* The earliest of the submit deadline and the context's deadline. */
    sluice_ctx *cx = NULL;
    assert_int_equal(sluice_ctx_create(&cx, NULL, 5000, &fc.clock), SLUICE_OK);
    seen_deadline both = {0};
    assert_int_equal(sluice_pool_submit_ex(p, task_see_deadline, &both,
                                           &(sluice_submit_opts){.deadline_ns = 9000, .ctx = cx}),
                     SLUICE_OK);
    seen_deadline both2 = {0};
    assert_int_equal(sluice_pool_submit_ex(p, task_see_deadline, &both2,
                                           &(sluice_submit_opts){.deadline_ns = 3000, .ctx = cx}),
                     SLUICE_OK);
    /* A context cancelled while queued: shed. */
    sluice_ctx *dead = NULL;
    assert_int_equal(sluice_ctx_create(&dead, NULL, 0, &fc.clock), SLUICE_OK);
    seen_deadline canceled = {0};
    assert_int_equal(
        sluice_pool_submit_ex(p, task_see_deadline, &canceled, &(sluice_submit_opts){.ctx = dead}),
        SLUICE_OK);
    sluice_ctx_cancel(dead, SLUICE_ECANCELED);
    sluice_ctx_release(dead); /* the pool retains its own reference while queued */
    gate_open(g);
    ASSERT_IDENTITY(p);
    assert_int_equal(atomic_load(&past.ran), 0);
    assert_int_equal(atomic_load(&g_own.n), 1);
    assert_int_equal(g_own.reason, SLUICE_ABANDON_SHED);
    assert_true(g_own.deadline == 999);
    assert_string_equal(g_own.label, "late");
    assert_int_equal(atomic_load(&far.ran), 1);
    assert_true(atomic_load(&far.deadline) == UINT64_MAX);
    assert_int_equal(atomic_load(&both.ran), 1);
    assert_int_equal(atomic_load(&both.deadline), 5000);
    assert_ptr_equal((void *)atomic_load(&both.ctx), cx);
    assert_int_equal(atomic_load(&both2.deadline), 3000);
    assert_int_equal(atomic_load(&canceled.ran), 0);
    assert_int_equal(atomic_load(&t->abandoned_by[SLUICE_ABANDON_SHED]), 1);
    sluice_pool_stats s = stats_now(p);
    assert_int_equal(s.shed, 2);
    sluice_ctx_release(cx);
    sluice_pool_destroy(p);
    gate_free(g);
    tally_free(t);
}

/* A task deadline of UINT64_MAX never passes, also with the pool's clock
 * at its very end: the task runs and does not see should_stop. */
typedef struct end_view {
    _Atomic int ran;
    _Atomic int stop_seen;
} end_view;

static int task_end_view(void *arg)
{
    end_view *v = arg;
    atomic_store(&v->stop_seen, sluice_task_should_stop() ? 1 : 0);
    atomic_store(&v->ran, 1);
    return 0;
}

static void test_deadline_max_at_clock_end(void **state)
{
    (void)state;
    tally *t = tally_new();
    gate *g = gate_new();
    sluice_fake_clock fc;
    sluice_fake_clock_init(&fc, UINT64_MAX - 1);
    sluice_pool_config c;
    base_config(&c, "deadlineend", 1, 4, t);
    c.clock = &fc.clock;
    sluice_pool *p = NULL;
    CREATE_POOL(&c, &p);
    hold(p, g, 1);
    end_view v = {0};
    assert_int_equal(
        sluice_pool_submit_ex(p, task_end_view, &v, &(sluice_submit_opts){.deadline_ns = UINT64_MAX}),
        SLUICE_OK);
    sluice_fake_clock_advance(&fc, UINT64_MAX); /* saturates at the end */
    assert_true(sluice_clock_now(&fc.clock) == UINT64_MAX);
    gate_open(g);
    ASSERT_IDENTITY(p);
    assert_int_equal(atomic_load(&v.ran), 1);
    assert_int_equal(atomic_load(&v.stop_seen), 0);
    assert_int_equal(stats_now(p).shed, 0);
    assert_int_equal(atomic_load(&t->abandoned_total), 0);
    sluice_pool_destroy(p);
    gate_free(g);
    tally_free(t);
}

/* A blocking submit whose context is already done gives up with its
 * error at a full queue (counted as rejected); a running task sees its
 * context's cancel through should_stop. */
typedef struct stopper {
    _Atomic int started;
    _Atomic int stopped;
} stopper;

static int task_until_stop(void *arg)
{
    stopper *s = arg;
    atomic_store(&s->started, 1);
    uint64_t limit = real_now_ns() + SAFETY_NS;
    while (!sluice_task_should_stop() && real_now_ns() < limit) {
        sched_yield();
    }
    atomic_store(&s->stopped, sluice_task_should_stop() ? 1 : 2);
    return 0;
}

static void test_context_refusal_and_stop(void **state)
{
    (void)state;
    tally *t = tally_new();
    gate *g = gate_new();
    sluice_pool_config c;
    base_config(&c, "ctxstop", 2, 1, t);
    sluice_pool *p = NULL;
    CREATE_POOL(&c, &p);
    sluice_ctx *run_ctx = NULL;
    assert_int_equal(sluice_ctx_create(&run_ctx, NULL, 0, NULL), SLUICE_OK);
    stopper st = {0};
    assert_int_equal(sluice_pool_submit_ex(p, task_until_stop, &st, &(sluice_submit_opts){.ctx = run_ctx}),
                     SLUICE_OK);
    WAIT_FOR(atomic_load(&st.started) == 1, "the task runs");
    hold(p, g, 1);
    assert_int_equal(sluice_pool_submit(p, task_count, t), SLUICE_OK); /* full now */
    sluice_ctx *done = NULL;
    assert_int_equal(sluice_ctx_create(&done, NULL, 0, NULL), SLUICE_OK);
    sluice_ctx_cancel(done, SLUICE_ECANCELED);
    assert_int_equal(sluice_pool_submit_ex(p, task_count, t, &(sluice_submit_opts){.ctx = done}),
                     SLUICE_ECANCELED);
    assert_int_equal(stats_now(p).rejected, 1);
    sluice_ctx_cancel(run_ctx, SLUICE_OK);
    WAIT_FOR(atomic_load(&st.stopped) != 0, "the task stops");
    assert_int_equal(atomic_load(&st.stopped), 1);
    gate_open(g);
    ASSERT_IDENTITY(p);
    assert_int_equal(atomic_load(&t->ran), 1);
    sluice_ctx_release(done);
    sluice_ctx_release(run_ctx);
    sluice_pool_destroy(p);
    gate_free(g);
    tally_free(t);
}

/* idle_expiry_ns UINT64_MAX is "never (saturates)": a parked worker above
 * min_workers stays, also when the pool's clock reaches its end. */
static void test_idle_expiry_max_at_clock_end(void **state)
{
    (void)state;
    tally *t = tally_new();
    counting_clock *cc = malloc(sizeof *cc);
    assert_non_null(cc);
    counting_clock_init(cc, UINT64_MAX - 10);
    sluice_pool_config c;
    base_config(&c, "expirymax", 2, 4, t);
    c.clock = &cc->clock;
    c.idle_expiry_ns = UINT64_MAX;
    c.timing_disabled = true;
    sluice_pool *p = NULL;
    CREATE_POOL(&c, &p);
    assert_int_equal(sluice_pool_submit(p, task_count, t), SLUICE_OK);
    ASSERT_IDENTITY(p);
    WAIT_FOR(stats_now(p).idle == stats_now(p).workers && stats_now(p).workers >= 1, "the worker parks");
    _Atomic int never = 0;
    settle(cc, &never);
    atomic_store(&cc->now, UINT64_MAX);
    settle(cc, &never);
    settle(cc, &never);
    sluice_pool_stats s = stats_now(p);
    assert_int_equal(s.expired_workers, 0);
    assert_true(s.workers >= 1);
    sluice_pool_destroy(p);
    free(cc);
    tally_free(t);
}

/* A task's deadline passing while it runs turns should_stop true (pool
 * clock). */
static int task_until_stop_deadline(void *arg)
{
    stopper *st = arg;
    atomic_store(&st->started, 1);
    uint64_t limit = real_now_ns() + SAFETY_NS;
    while (!sluice_task_should_stop() && real_now_ns() < limit) {
        sched_yield();
    }
    atomic_store(&st->stopped, sluice_task_should_stop() ? 1 : 2);
    return 0;
}

static void test_deadline_passes_while_running(void **state)
{
    (void)state;
    tally *t = tally_new();
    sluice_fake_clock fc;
    sluice_fake_clock_init(&fc, 100);
    sluice_pool_config c;
    base_config(&c, "runningdl", 1, 4, t);
    c.clock = &fc.clock;
    sluice_pool *p = NULL;
    CREATE_POOL(&c, &p);
    stopper st = {0};
    assert_int_equal(
        sluice_pool_submit_ex(p, task_until_stop_deadline, &st, &(sluice_submit_opts){.deadline_ns = 200}),
        SLUICE_OK);
    WAIT_FOR(atomic_load(&st.started) == 1, "the task runs");
    assert_int_equal(atomic_load(&st.stopped), 0);
    sluice_fake_clock_advance(&fc, 100);
    WAIT_FOR(atomic_load(&st.stopped) != 0, "the task sees its deadline");
    assert_int_equal(atomic_load(&st.stopped), 1);
    ASSERT_IDENTITY(p);
    sluice_pool_stats s = stats_now(p);
    assert_int_equal(s.completed, 1); /* it started: it ran, not shed */
    assert_int_equal(s.shed, 0);
    sluice_pool_destroy(p);
    tally_free(t);
}

/* ---- resize ------------------------------------------------------------------------ */

typedef struct resize_seen {
    _Atomic uint64_t last_old, last_new;
    _Atomic int events;
    _Atomic int stats_calls;
} resize_seen;

static resize_seen g_resize;
static sluice_pool *_Atomic g_event_pool;

/* An event handler that uses the getters it is allowed to call. */
static void event_with_getters(const sluice_pool_event *ev, void *user)
{
    (void)user;
    sluice_pool *p = atomic_load(&g_event_pool);
    if (p) {
        sluice_pool_stats s;
        sluice_pool_stats_get(p, &s);
        sluice_worker_info w[4];
        (void)sluice_pool_workers_get(p, w, 4);
        atomic_fetch_add(&g_resize.stats_calls, 1);
    }
    if (ev->kind == SLUICE_EVENT_RESIZE) {
        atomic_store(&g_resize.last_old, ev->old_value);
        atomic_store(&g_resize.last_new, ev->new_value);
        atomic_fetch_add(&g_resize.events, 1);
    }
}

static void test_resize_extremes(void **state)
{
    (void)state;
    memset(&g_resize, 0, sizeof g_resize);
    tally *t = tally_new();
    sluice_pool_config c;
    base_config(&c, "resize", 4, 16, t);
    c.min_workers = 2;
    c.event_handler = event_with_getters;
    sluice_pool *p = NULL;
    CREATE_POOL(&c, &p);
    atomic_store(&g_event_pool, p);
    assert_int_equal(sluice_pool_resize(p, 0), SLUICE_EINVAL);
    assert_int_equal(sluice_pool_resize(p, 1), SLUICE_EINVAL);
    assert_int_equal(stats_now(p).capacity, 4);
    assert_int_equal(stats_now(p).resize_events, 0);
    assert_int_equal(sluice_pool_resize(p, UINT_MAX), SLUICE_OK);
    sluice_pool_stats s = stats_now(p);
    assert_int_equal(s.capacity, UINT_MAX);
    assert_int_equal(s.resize_events, 1);
    assert_int_equal(atomic_load(&g_resize.last_old), 4);
    assert_int_equal(atomic_load(&g_resize.last_new), UINT_MAX);
    for (int i = 0; i < 64; i++) {
        assert_int_equal(sluice_pool_submit(p, task_count, t), SLUICE_OK);
    }
    assert_int_equal(sluice_pool_resize(p, 2), SLUICE_OK);
    assert_int_equal(atomic_load(&g_resize.last_old), UINT_MAX);
    assert_int_equal(atomic_load(&g_resize.last_new), 2);
    ASSERT_IDENTITY(p);
    assert_int_equal(atomic_load(&t->ran), 64);
    WAIT_FOR(stats_now(p).workers <= 2, "workers beyond K retire");
    s = stats_now(p);
    assert_int_equal(s.capacity, 2);
    assert_true(s.workers_hwm <= 64);
    sluice_drain_report r;
    assert_int_equal(sluice_pool_drain(p, 0, &r), SLUICE_OK);
    assert_true(atomic_load(&g_resize.stats_calls) > 0);
    atomic_store(&g_event_pool, NULL);
    sluice_pool_destroy(p);
    tally_free(t);
}

/* set_idle_expiry live: workers parked with no expiry (0) leave once it is
 * set to 1 ns, down to min_workers, each with a WORKER_EXIT "expired". */
static void test_idle_expiry_set_live(void **state)
{
    (void)state;
    tally *t = tally_new();
    gate *g = gate_new();
    sluice_pool_config c;
    base_config(&c, "expirylive", 4, 8, t);
    c.min_workers = 1;
    c.idle_expiry_ns = 0;
    sluice_pool *p = NULL;
    CREATE_POOL(&c, &p);
    hold(p, g, 4);
    gate_open(g);
    ASSERT_IDENTITY(p);
    WAIT_FOR(stats_now(p).idle == 4, "four workers park");
    assert_int_equal(stats_now(p).expired_workers, 0);
    sluice_pool_set_idle_expiry(p, 1);
    WAIT_FOR(stats_now(p).workers == 1, "the workers above min_workers expire");
    sluice_pool_stats s = stats_now(p);
    assert_int_equal(s.expired_workers, 3);
    assert_int_equal(atomic_load(&t->exits_by[EXIT_EXPIRED]), 3);
    /* The one left still runs work. */
    assert_int_equal(sluice_pool_submit(p, task_count, t), SLUICE_OK);
    ASSERT_IDENTITY(p);
    assert_int_equal(atomic_load(&t->ran), 1);
    sluice_pool_destroy(p);
    gate_free(g);
    tally_free(t);
}

/* ---- drain at its deadlines -------------------------------------------------------- */

typedef struct bg_drain {
    sluice_pool *pool;
    uint64_t timeout;
    sluice_drain_report report;
    sluice_err rc;
    _Atomic int done;
    pthread_t th;
} bg_drain;

static void *bg_drain_main(void *arg)
{
    bg_drain *d = arg;
    d->rc = sluice_pool_drain(d->pool, d->timeout, &d->report);
    atomic_store(&d->done, 1);
    return NULL;
}

static void bg_drain_start(bg_drain *d, sluice_pool *p, uint64_t timeout)
{
    d->pool = p;
    d->timeout = timeout;
    atomic_store(&d->done, 0);
    START_THREAD(&d->th, bg_drain_main, d);
}

typedef struct drain_events {
    _Atomic uint64_t start_running, start_queued, end_handed_back, end_still_running;
    _Atomic int starts, ends, end_err;
} drain_events;

static drain_events g_drain_ev;

static void event_drain_record(const sluice_pool_event *ev, void *user)
{
    tally_event(ev, user);
    if (ev->kind == SLUICE_EVENT_DRAIN_START) {
        atomic_store(&g_drain_ev.start_running, ev->old_value);
        atomic_store(&g_drain_ev.start_queued, ev->new_value);
        atomic_fetch_add(&g_drain_ev.starts, 1);
    } else if (ev->kind == SLUICE_EVENT_DRAIN_END) {
        if (ev->drain) {
            atomic_store(&g_drain_ev.end_handed_back, ev->drain->handed_back);
            atomic_store(&g_drain_ev.end_still_running, ev->drain->still_running);
        }
        atomic_store(&g_drain_ev.end_err, ev->err);
        atomic_fetch_add(&g_drain_ev.ends, 1);
    }
}

/* A drain deadline on the pool's fake clock: queued tasks handed back
 * (DRAIN), the running one told to stop and counted in still_running. */
static void test_drain_deadline_on_pool_clock(void **state)
{
    (void)state;
    tally *t = tally_new();
    gate *g = gate_new();
    sluice_fake_clock fc;
    sluice_fake_clock_init(&fc, 50);
    sluice_pool_config c;
    base_config(&c, "draindl", 1, 4, t);
    c.clock = &fc.clock;
    c.event_handler = event_drain_record;
    memset(&g_drain_ev, 0, sizeof g_drain_ev);
    sluice_pool *p = NULL;
    CREATE_POOL(&c, &p);
    hold(p, g, 1);
    assert_int_equal(sluice_pool_submit(p, task_count, t), SLUICE_OK);
    assert_int_equal(sluice_pool_submit(p, task_count, t), SLUICE_OK);
    bg_drain d = {0};
    bg_drain_start(&d, p, 1000);
    WAIT_FOR(stats_now(p).draining, "the drain begins");
    assert_int_equal(sluice_pool_submit(p, task_count, t), SLUICE_ECLOSED);
    sluice_fake_clock_advance(&fc, 1000);
    pthread_join(d.th, NULL);
    assert_int_equal(d.rc, SLUICE_ETIMEDOUT);
    assert_true(d.report.timed_out);
    assert_int_equal(d.report.handed_back, 2);
    assert_int_equal(d.report.still_running, 1);
    assert_int_equal(atomic_load(&t->abandoned_by[SLUICE_ABANDON_DRAIN]), 2);
    /* The events: DRAIN_START with running and queued, DRAIN_END with the
     * report and the result. */
    assert_int_equal(atomic_load(&g_drain_ev.starts), 1);
    assert_int_equal(atomic_load(&g_drain_ev.start_running), 1);
    assert_int_equal(atomic_load(&g_drain_ev.start_queued), 2);
    assert_int_equal(atomic_load(&g_drain_ev.ends), 1);
    assert_int_equal(atomic_load(&g_drain_ev.end_handed_back), 2);
    assert_int_equal(atomic_load(&g_drain_ev.end_still_running), 1);
    assert_int_equal(atomic_load(&g_drain_ev.end_err), SLUICE_ETIMEDOUT);
    ASSERT_IDENTITY(p); /* the held task saw its stop flag */
    sluice_pool_stats s = stats_now(p);
    assert_int_equal(s.abandoned, 2);
    assert_int_equal(s.rejected, 0);
    assert_int_equal(atomic_load(&t->ran), 0);
    sluice_pool_destroy(p);
    gate_free(g);
    tally_free(t);
}

/* drain(0) and drain(UINT64_MAX) on a clock a few ns from its end: both
 * wait for the running task (no deadline in the past). */
static void drain_waits_near_end(uint64_t timeout)
{
    tally *t = tally_new();
    gate *g = gate_new();
    counting_clock *cc = malloc(sizeof *cc);
    assert_non_null(cc);
    counting_clock_init(cc, UINT64_MAX - 5);
    sluice_pool_config c;
    base_config(&c, "drainmax", 1, 4, t);
    c.clock = &cc->clock;
    c.timing_disabled = true;
    sluice_pool *p = NULL;
    CREATE_POOL(&c, &p);
    hold(p, g, 1);
    assert_int_equal(sluice_pool_submit(p, task_count, t), SLUICE_OK);
    bg_drain d = {0};
    bg_drain_start(&d, p, timeout);
    WAIT_FOR(stats_now(p).draining, "the drain begins");
    settle(cc, &d.done);
    atomic_store(&cc->now, UINT64_MAX);
    settle(cc, &d.done);
    if (atomic_load(&d.done)) {
        pthread_join(d.th, NULL);
        gate_open(g);
        fail_msg("drain(%llu) returned %s before the running task ended (timed_out %d, still_running %llu)",
                 (unsigned long long)timeout, sluice_err_name(d.rc), (int)d.report.timed_out,
                 (unsigned long long)d.report.still_running);
    }
    assert_int_equal(atomic_load(&g->inside), 1); /* not told to stop */
    gate_open(g);
    pthread_join(d.th, NULL);
    assert_int_equal(d.rc, SLUICE_OK);
    assert_false(d.report.timed_out);
    assert_int_equal(d.report.handed_back, 0);
    assert_int_equal(d.report.completed, 2);
    ASSERT_IDENTITY(p);
    assert_int_equal(atomic_load(&t->ran), 1);
    sluice_pool_destroy(p);
    free(cc);
    gate_free(g);
    tally_free(t);
}

static void test_drain_zero_and_max_near_clock_end(void **state)
{
    (void)state;
    drain_waits_near_end(0);
    drain_waits_near_end(UINT64_MAX);
}

/* Blocked submitters wake with ECLOSED as soon as a drain begins (not
 * when it ends), and are not counted as rejected. */
static void test_drain_releases_blocked_submitters(void **state)
{
    (void)state;
    tally *t = tally_new();
    gate *g = gate_new();
    sluice_pool_config c;
    base_config(&c, "drainwake", 1, 1, t);
    sluice_pool *p = NULL;
    CREATE_POOL(&c, &p);
    hold(p, g, 1);
    assert_int_equal(sluice_pool_submit(p, task_count, t), SLUICE_OK);
    bg_submit b[3] = {{0}};
    for (int i = 0; i < 3; i++) {
        bg_start(&b[i], p, task_count, t);
    }
    WAIT_FOR(stats_now(p).waiting == 3, "three submitters block");
    bg_drain d = {0};
    bg_drain_start(&d, p, 0);
    for (int i = 0; i < 3; i++) {
        pthread_join(b[i].th, NULL);
        assert_int_equal(b[i].rc, SLUICE_ECLOSED);
    }
    assert_int_equal(atomic_load(&d.done), 0); /* the gate is still shut */
    gate_open(g);
    pthread_join(d.th, NULL);
    assert_int_equal(d.rc, SLUICE_OK);
    ASSERT_IDENTITY(p);
    sluice_pool_stats s = stats_now(p);
    assert_int_equal(s.rejected, 0);
    assert_int_equal(s.waiting, 0);
    assert_int_equal(s.submitted, 2);
    assert_int_equal(atomic_load(&t->ran), 1);
    sluice_pool_destroy(p);
    gate_free(g);
    tally_free(t);
}

/* ---- destroy ---------------------------------------------------------------------- */

typedef struct reentrant_abandon {
    sluice_pool *_Atomic pool;
    _Atomic int calls;
    _Atomic int submit_not_closed;
    _Atomic int reasons_bad;
} reentrant_abandon;

static reentrant_abandon g_reab;

/* Called by the destroying thread: a submit back into the pool must be
 * refused with ECLOSED (the pool is closed), a stats read must work. */
static void abandon_reenters(const sluice_abandoned *a, void *user)
{
    (void)user;
    sluice_pool *p = atomic_load(&g_reab.pool);
    if (a->reason != SLUICE_ABANDON_DESTROY) {
        atomic_fetch_add(&g_reab.reasons_bad, 1);
    }
    sluice_err rc = sluice_pool_submit(p, task_nop, NULL);
    if (rc != SLUICE_ECLOSED) {
        atomic_fetch_add(&g_reab.submit_not_closed, 1);
    }
    sluice_pool_stats s;
    sluice_pool_stats_get(p, &s);
    if (!s.draining) {
        atomic_fetch_add(&g_reab.reasons_bad, 1);
    }
    atomic_fetch_add(&g_reab.calls, 1);
}

static void test_destroy_hands_back_reentrant_handler(void **state)
{
    (void)state;
    memset(&g_reab, 0, sizeof g_reab);
    tally *t = tally_new();
    gate *g = gate_new();
    int base = thread_baseline();
    sluice_pool_config c;
    base_config(&c, "destroyback", 1, 4, t);
    c.overflow = SLUICE_OVERFLOW_REJECT;
    c.abandon_handler = abandon_reenters;
    with_hooks(&c);
    sluice_pool *p = NULL;
    CREATE_POOL(&c, &p);
    atomic_store(&g_reab.pool, p);
    hold(p, g, 1); /* task_gate: leaves when destroy asks it to stop */
    for (int i = 0; i < 3; i++) {
        assert_int_equal(sluice_pool_submit(p, task_count, t), SLUICE_OK);
    }
    sluice_pool_destroy(p);
    assert_int_equal(atomic_load(&g_reab.calls), 3);
    assert_int_equal(atomic_load(&g_reab.submit_not_closed), 0);
    assert_int_equal(atomic_load(&g_reab.reasons_bad), 0);
    assert_int_equal(atomic_load(&t->ran), 0);
    assert_int_equal(atomic_load(&t->inits), atomic_load(&t->finis));
    assert_int_equal(atomic_load(&t->violations), 0);
    assert_int_equal(thread_count(), base);
    gate_free(g);
    tally_free(t);
}

/* ---- task.h ----------------------------------------------------------------------- */

static void noop_cleanup(void *arg)
{
    (void)arg;
}

static void test_task_view_outside_a_task(void **state)
{
    (void)state;
    assert_null(sluice_task_pool());
    assert_null(sluice_worker_state());
    assert_int_equal(sluice_worker_index(), UINT32_MAX);
    assert_int_equal(sluice_task_deadline(), 0);
    assert_null(sluice_task_ctx());
    assert_false(sluice_task_should_stop());
    assert_null(sluice_task_panic_message());
    assert_int_equal(sluice_cleanup_push(noop_cleanup, NULL), SLUICE_EINVAL);
}

#define ORDER_MAX 32

typedef struct cleanup_log {
    pthread_mutex_t mu;
    int order[ORDER_MAX];
    int n;
    int messages_ok;
    int popped_msg_null;
    _Atomic int push_rc[SLUICE_CLEANUP_MAX + 1];
    _Atomic int done;
} cleanup_log;

static cleanup_log *g_log;

static void log_cleanup(void *arg)
{
    int i = (int)(intptr_t)arg;
    pthread_mutex_lock(&g_log->mu);
    if (g_log->n < ORDER_MAX) {
        g_log->order[g_log->n++] = i;
    }
    const char *m = sluice_task_panic_message();
    if (i >= 0 && m && strcmp(m, "deep 16") == 0) {
        g_log->messages_ok++;
    }
    if (i < 0 && m == NULL) {
        g_log->popped_msg_null++;
    }
    pthread_mutex_unlock(&g_log->mu);
}

/* Pushes one popped with run = true (sees no panic message), then
 * SLUICE_CLEANUP_MAX (the 17th refused), then panics. */
static int task_deep_cleanup(void *arg)
{
    (void)arg;
    if (sluice_cleanup_push(log_cleanup, (void *)(intptr_t)-1) == SLUICE_OK) {
        sluice_cleanup_pop(true);
    }
    for (int i = 0; i <= SLUICE_CLEANUP_MAX; i++) {
        atomic_store(&g_log->push_rc[i], sluice_cleanup_push(log_cleanup, (void *)(intptr_t)i));
    }
    sluice_panic("deep %d", SLUICE_CLEANUP_MAX);
}

static int task_mark_done(void *arg)
{
    (void)arg;
    atomic_store(&g_log->done, 1);
    return 0;
}

static void test_cleanup_stack_extremes(void **state)
{
    (void)state;
    g_log = calloc(1, sizeof *g_log);
    assert_non_null(g_log);
    pthread_mutex_init(&g_log->mu, NULL);
    tally *t = tally_new();
    sluice_pool_config c;
    base_config(&c, "cleanup", 1, 4, t);
    sluice_pool *p = NULL;
    CREATE_POOL(&c, &p);
    assert_int_equal(sluice_pool_submit(p, task_deep_cleanup, NULL), SLUICE_OK);
    assert_int_equal(sluice_pool_submit(p, task_mark_done, NULL), SLUICE_OK);
    WAIT_FOR(atomic_load(&g_log->done) == 1, "the worker goes on after the panic");
    for (int i = 0; i < SLUICE_CLEANUP_MAX; i++) {
        assert_int_equal(atomic_load(&g_log->push_rc[i]), SLUICE_OK);
    }
    assert_int_equal(atomic_load(&g_log->push_rc[SLUICE_CLEANUP_MAX]), SLUICE_EOVERFLOW);
    pthread_mutex_lock(&g_log->mu);
    int n = g_log->n;
    int order[ORDER_MAX];
    memcpy(order, g_log->order, sizeof order);
    int msgs = g_log->messages_ok, popped = g_log->popped_msg_null;
    pthread_mutex_unlock(&g_log->mu);
    assert_int_equal(n, SLUICE_CLEANUP_MAX + 1);
    assert_int_equal(order[0], -1);
    for (int i = 0; i < SLUICE_CLEANUP_MAX; i++) {
        assert_int_equal(order[1 + i], SLUICE_CLEANUP_MAX - 1 - i); /* innermost first */
    }
    assert_int_equal(msgs, SLUICE_CLEANUP_MAX);
    assert_int_equal(popped, 1);
    ASSERT_IDENTITY(p);
    sluice_pool_stats s = stats_now(p);
    assert_int_equal(s.panicked, 1);
    assert_int_equal(s.completed, 1);
    assert_int_equal(atomic_load(&t->panics), 1);
    pthread_mutex_lock(&t->mu);
    panic_record rec = t->records[0];
    pthread_mutex_unlock(&t->mu);
    assert_string_equal(rec.message, "deep 16");
    assert_false(rec.caller_thread);
    assert_int_equal(rec.worker_index, 0);
    sluice_pool_destroy(p);
    tally_free(t);
    pthread_mutex_destroy(&g_log->mu);
    free(g_log);
    g_log = NULL;
}

/* ---- backtrace_format and workers_get --------------------------------------------- */

static void test_backtrace_format_and_workers_get(void **state)
{
    (void)state;
    void *frames[2] = {(void *)(uintptr_t)&test_backtrace_format_and_workers_get, (void *)(uintptr_t)0x10};
    size_t want = sluice_backtrace_format(frames, 2, NULL, 0);
    assert_true(want > 0);
    char one = 'X';
    assert_int_equal(sluice_backtrace_format(frames, 2, &one, 1), want);
    assert_int_equal(one, '\0');
    char *buf = malloc(want + 1);
    assert_non_null(buf);
    memset(buf, 'X', want + 1);
    assert_int_equal(sluice_backtrace_format(frames, 2, buf, want + 1), want);
    assert_int_equal(strlen(buf), want);
    assert_non_null(strstr(buf, "#0"));
    assert_non_null(strstr(buf, "#1"));
    /* One byte short: truncated, still terminated. */
    memset(buf, 'X', want + 1);
    assert_int_equal(sluice_backtrace_format(frames, 2, buf, want), want);
    assert_int_equal(strlen(buf), want - 1);
    free(buf);
    char empty[8] = "XXXXXXX";
    assert_int_equal(sluice_backtrace_format(frames, 0, empty, sizeof empty), 0);
    assert_string_equal(empty, "");

    tally *t = tally_new();
    sluice_pool_config c;
    base_config(&c, "workersget", 3, 4, t);
    c.min_workers = 3;
    c.prewarm = true;
    with_hooks(&c);
    sluice_pool *p = NULL;
    CREATE_POOL(&c, &p);
    assert_int_equal(sluice_pool_workers_get(p, NULL, 0), 3);
    sluice_worker_info w[1];
    memset(w, 0, sizeof w);
    assert_int_equal(sluice_pool_workers_get(p, w, 1), 3);
    assert_true(w[0].index < 3);
    assert_true(w[0].state == SLUICE_WORKER_IDLE || w[0].state == SLUICE_WORKER_STARTING);
    sluice_pool_stats s = stats_now(p);
    assert_int_equal(s.workers, 3);
    assert_int_equal(s.started_workers, 3);
    assert_int_equal(atomic_load(&t->inits), 3);
    sluice_pool_destroy(p);
    assert_int_equal(atomic_load(&t->finis), 3);
    tally_free(t);
}

/* ---- fault.h ----------------------------------------------------------------------- */

typedef struct fault_probe {
    _Atomic int cleanup_ran;
    _Atomic int cleanup_msg;
} fault_probe;

static fault_probe g_fault;

static void fault_cleanup(void *arg)
{
    (void)arg;
    atomic_store(&g_fault.cleanup_ran, 1);
    atomic_store(&g_fault.cleanup_msg, sluice_task_panic_message() != NULL);
}

static int task_segv_with_cleanup(void *arg)
{
    (void)arg;
    sluice_cleanup_push(fault_cleanup, NULL);
    int v = deref_null();
    sluice_cleanup_pop(false);
    return v;
}

static void test_fault_guard(void **state)
{
    (void)state;
    /* No guarded pool has been made in this process yet. */
    assert_int_equal(sluice_fault_guard_installed(), 0);
    tally *t = tally_new();
    sluice_pool_config c;
    base_config(&c, "plain", 1, 4, t);
    sluice_pool *p = NULL;
    CREATE_POOL(&c, &p);
    assert_int_equal(sluice_fault_guard_installed(), 0); /* OFF installs nothing */
    sluice_pool_destroy(p);
    if (under_sanitizer()) {
        tally_free(t);
        skip(); /* the sanitizers own SIGSEGV */
    }
    memset(&g_fault, 0, sizeof g_fault);
    base_config(&c, "guarded", 1, 4, t);
    c.fault_mode = SLUICE_FAULT_RECOVER;
    CREATE_POOL(&c, &p);
    assert_true(sluice_fault_guard_installed());
    assert_int_equal(sluice_pool_submit(p, task_segv_with_cleanup, NULL), SLUICE_OK);
    WAIT_FOR(atomic_load(&t->panics) == 1, "the fault is reported");
    assert_int_equal(sluice_pool_submit(p, task_count, t), SLUICE_OK);
    ASSERT_IDENTITY(p);
    assert_int_equal(atomic_load(&t->ran), 1);
    pthread_mutex_lock(&t->mu);
    panic_record rec = t->records[0];
    pthread_mutex_unlock(&t->mu);
    assert_int_equal(rec.signal, SIGSEGV);
    assert_string_equal(rec.pool_name, "guarded");
    assert_int_equal(atomic_load(&g_fault.cleanup_ran), 1);
    assert_int_equal(atomic_load(&g_fault.cleanup_msg), 1);
    sluice_pool_stats s = stats_now(p);
    assert_int_equal(s.panicked, 1);
    assert_true(s.retired_workers >= 1);
    assert_true(s.started_workers >= 2);
    sluice_pool_destroy(p);
    assert_true(sluice_fault_guard_installed()); /* once per process */
    tally_free(t);
}

/* RERAISE (the default guard mode, fault.h): the process dies of the
 * signal, after a line on stderr that names the signal, the pool and the
 * worker. Run in a child process (fork), whose stderr is a pipe and which
 * may not dump core. Not under sanitizers (they own SIGSEGV). Runs before
 * any guarded pool of this process (see main). */
static void test_fault_reraise_kills_with_a_line(void **state)
{
    (void)state;
    if (under_sanitizer()) {
        skip();
    }
    int fds[2];
    assert_int_equal(pipe(fds), 0);
    fflush(NULL);
    pid_t pid = fork();
    assert_true(pid >= 0);
    if (pid == 0) {
        struct rlimit no_core = {0, 0};
        setrlimit(RLIMIT_CORE, &no_core);
        dup2(fds[1], STDERR_FILENO);
        close(fds[0]);
        close(fds[1]);
        sluice_pool_config c;
        sluice_pool_config_init(&c);
        c.name = "reraise";
        c.workers = 1;
        c.queue_capacity = 4;
        c.fault_mode = SLUICE_FAULT_RERAISE;
        sluice_pool *p = NULL;
        if (sluice_pool_create(&c, &p, NULL, 0) != SLUICE_OK ||
            sluice_pool_submit_ex(p, task_segv, NULL, &(sluice_submit_opts){.label = "parser"}) !=
                SLUICE_OK) {
            _exit(3);
        }
        sluice_pool_drain(p, 0, NULL);
        _exit(4); /* the fault must have killed us before this */
    }
    close(fds[1]);
    char out[4096];
    size_t n = 0;
    for (;;) {
        ssize_t r = read(fds[0], out + n, sizeof out - 1 - n);
        if (r <= 0) {
            break;
        }
        n += (size_t)r;
        if (n == sizeof out - 1) {
            break;
        }
    }
    out[n] = '\0';
    close(fds[0]);
    int status = 0;
    assert_int_equal(waitpid(pid, &status, 0), pid);
    if (!WIFSIGNALED(status) || WTERMSIG(status) != SIGSEGV) {
        fail_msg("the child did not die of SIGSEGV (status 0x%x); stderr: %s", status, out);
    }
    if (!strstr(out, "SIGSEGV") || !strstr(out, "pool reraise worker 0") || !strstr(out, "parser")) {
        fail_msg("the fault line does not name the signal, pool, worker and task: %s", out);
    }
}

/* ---- races ------------------------------------------------------------------------- */

typedef struct producer {
    sluice_pool *pool;
    _Atomic uint64_t *ran;
    uint64_t ok, full, closed, other;
    int batch;
    bool nonblocking;
    _Atomic int *go;
    pthread_t th;
} producer;

static void *producer_main(void *arg)
{
    producer *pr = arg;
    while (!atomic_load(pr->go)) {
        sched_yield();
    }
    for (;;) {
        sluice_err rc;
        if (pr->batch) {
            sluice_task_spec specs[4];
            for (int i = 0; i < 4; i++) {
                specs[i] = (sluice_task_spec){.fn = task_inc, .arg = (void *)pr->ran};
            }
            size_t acc = 0;
            rc = sluice_pool_submit_batch(pr->pool, specs, 4, pr->nonblocking, &acc);
            pr->ok += acc;
        } else {
            rc = sluice_pool_submit(pr->pool, task_inc, (void *)pr->ran);
            pr->ok += rc == SLUICE_OK;
        }
        if (rc == SLUICE_EFULL) {
            pr->full++;
        } else if (rc == SLUICE_ECLOSED) {
            pr->closed++;
            return NULL;
        } else if (rc != SLUICE_OK) {
            pr->other++;
            return NULL;
        }
    }
}

/* Producers submit (one by one and in batches) until drain closes the
 * pool: every accepted task ran exactly once, every EFULL counted once,
 * the ECLOSEDs not at all. */
static void test_submits_race_drain(void **state)
{
    (void)state;
    tally *t = tally_new();
    _Atomic uint64_t ran = 0;
    _Atomic int go = 0;
    sluice_pool_config c;
    base_config(&c, "racedrain", 2, 64, t);
    c.overflow = SLUICE_OVERFLOW_REJECT;
    sluice_pool *p = NULL;
    CREATE_POOL(&c, &p);
    producer pr[4];
    for (int i = 0; i < 4; i++) {
        pr[i] = (producer){.pool = p, .ran = &ran, .go = &go, .batch = i & 1, .nonblocking = true};
        START_THREAD(&pr[i].th, producer_main, &pr[i]);
    }
    atomic_store(&go, 1);
    WAIT_FOR(stats_now(p).submitted >= 2000, "the producers get going");
    sluice_drain_report r;
    assert_int_equal(sluice_pool_drain(p, 0, &r), SLUICE_OK);
    uint64_t ok = 0, full = 0;
    for (int i = 0; i < 4; i++) {
        pthread_join(pr[i].th, NULL);
        assert_int_equal(pr[i].other, 0);
        assert_int_equal(pr[i].closed, 1);
        ok += pr[i].ok;
        full += pr[i].full;
    }
    ASSERT_IDENTITY(p);
    sluice_pool_stats s = stats_now(p);
    assert_int_equal(s.submitted, ok);
    assert_int_equal(s.rejected, full);
    assert_int_equal(s.completed, ok);
    assert_int_equal(atomic_load(&ran), ok);
    assert_int_equal(atomic_load(&t->abandoned_total), 0);
    sluice_pool_destroy(p);
    tally_free(t);
}

typedef struct resizer {
    sluice_pool *pool;
    _Atomic int stop;
    uint64_t bad;
    pthread_t th;
} resizer;

static void *resizer_main(void *arg)
{
    resizer *rz = arg;
    static const unsigned ks[] = {1, UINT_MAX, 3, 1, 2, UINT_MAX - 1, 8};
    unsigned i = 0;
    while (!atomic_load(&rz->stop)) {
        sluice_err rc = sluice_pool_resize(rz->pool, ks[i++ % 7]);
        if (rc != SLUICE_OK && rc != SLUICE_ECLOSED) {
            rz->bad++;
        }
        sched_yield();
    }
    return NULL;
}

/* BLOCK producers while K swings between 1 and UINT_MAX: nothing lost,
 * nothing run twice, the pool ends with at most its last K busy. */
static void test_submits_race_resize(void **state)
{
    (void)state;
    tally *t = tally_new();
    _Atomic uint64_t ran = 0;
    _Atomic int go = 0;
    sluice_pool_config c;
    base_config(&c, "raceresize", 2, 16, t);
    sluice_pool *p = NULL;
    CREATE_POOL(&c, &p);
    unsigned per = under_sanitizer() ? 500 : 3000;
    producer pr[3];
    resizer rz = {.pool = p};
    START_THREAD(&rz.th, resizer_main, &rz);
    for (int i = 0; i < 3; i++) {
        pr[i] = (producer){.pool = p, .ran = &ran, .go = &go, .batch = i == 2};
        START_THREAD(&pr[i].th, producer_main, &pr[i]);
    }
    atomic_store(&go, 1);
    WAIT_FOR(stats_now(p).submitted >= per * 3, "the producers get going");
    atomic_store(&rz.stop, 1);
    pthread_join(rz.th, NULL);
    assert_int_equal(rz.bad, 0);
    assert_int_equal(sluice_pool_resize(p, 4), SLUICE_OK);
    assert_int_equal(sluice_pool_drain(p, 0, NULL), SLUICE_OK);
    uint64_t ok = 0;
    for (int i = 0; i < 3; i++) {
        pthread_join(pr[i].th, NULL);
        assert_int_equal(pr[i].other, 0);
        assert_int_equal(pr[i].full, 0);
        ok += pr[i].ok;
    }
    ASSERT_IDENTITY(p);
    sluice_pool_stats s = stats_now(p);
    assert_int_equal(s.submitted, ok);
    assert_int_equal(s.completed, ok);
    assert_int_equal(atomic_load(&ran), ok);
    assert_int_equal(s.rejected, 0);
    assert_int_equal(s.capacity, 4);
    sluice_pool_destroy(p);
    tally_free(t);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        /* First: nothing guarded yet in this process. The guard installs
         * its handlers once per process, and cmocka sets its own SIGSEGV
         * handler around every test, so only the first guarded pool of
         * the process (here, the child's) is sure to own the signal. */
        cmocka_unit_test(test_fault_reraise_kills_with_a_line),
        cmocka_unit_test(test_fault_guard),
        cmocka_unit_test(test_names_and_parsers),
        cmocka_unit_test(test_create_bounds),
        cmocka_unit_test(test_queue_bytes),
        cmocka_unit_test(test_config_is_copied),
        cmocka_unit_test(test_submit_arguments),
        cmocka_unit_test(test_closed_refusals_not_counted),
        cmocka_unit_test(test_full_refusals_counted),
        cmocka_unit_test(test_block_timeout_on_pool_clock),
        cmocka_unit_test(test_block_max_timeout_near_clock_end),
        cmocka_unit_test(test_calls_from_a_worker),
        cmocka_unit_test(test_caller_runs_view),
        cmocka_unit_test(test_caller_runs_sheds_past_deadline),
        cmocka_unit_test(test_labels_and_timing_on_pool_clock),
        cmocka_unit_test(test_drop_oldest_to_own_handler),
        cmocka_unit_test(test_deadlines_and_contexts),
        cmocka_unit_test(test_deadline_max_at_clock_end),
        cmocka_unit_test(test_idle_expiry_max_at_clock_end),
        cmocka_unit_test(test_deadline_passes_while_running),
        cmocka_unit_test(test_context_refusal_and_stop),
        cmocka_unit_test(test_resize_extremes),
        cmocka_unit_test(test_idle_expiry_set_live),
        cmocka_unit_test(test_drain_deadline_on_pool_clock),
        cmocka_unit_test(test_drain_zero_and_max_near_clock_end),
        cmocka_unit_test(test_drain_releases_blocked_submitters),
        cmocka_unit_test(test_destroy_hands_back_reentrant_handler),
        cmocka_unit_test(test_task_view_outside_a_task),
        cmocka_unit_test(test_cleanup_stack_extremes),
        cmocka_unit_test(test_backtrace_format_and_workers_get),
        cmocka_unit_test(test_submits_race_drain),
        cmocka_unit_test(test_submits_race_resize),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
