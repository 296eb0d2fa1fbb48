/*
 * tests/sync/test_contracts_sync.c - the promises of sluice/control.h,
 * batcher.h, keyed.h, retry.h and adaptive.h probed at their extremes,
 * read from the headers alone: each size and duration at 0, at its
 * maximum and one past it; NULL arguments; calls after close; calls from
 * inside the object's own tasks (EDEADLK); names at their length limit
 * and one past it; UINT64_MAX timeouts that must mean "no limit in
 * practice", never an overflow into "already expired".
 *
 * No test sleeps for an event: tasks that must be held wait at a gate
 * (tests/common/wait.h), calls that must block run on a bg_call thread
 * and are awaited with a safety limit, and time-dependent code runs on a
 * fake clock.
 */
#include <math.h>
#include <pthread.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "common/counting_clock.h"
#include "common/wait.h"
#include "sluice/adaptive.h"
#include "sluice/batcher.h"
#include "sluice/control.h"
#include "sluice/ctx.h"
#include "sluice/keyed.h"
#include "sluice/retry.h"
#include "sluice/task.h"
#include "sync/bg_call.h"

#define MS SLUICE_NS_PER_MS
#define SEC SLUICE_NS_PER_SEC
#define HOUR (3600ull * SEC)

static sluice_pool *make_pool(const char *name, unsigned k, unsigned min_workers)
{
    sluice_pool_config pc;
    sluice_pool_config_init(&pc);
    pc.name = name;
    pc.workers = k;
    pc.min_workers = min_workers;
    pc.queue_capacity = 64;
    sluice_pool *p = NULL;
    char err[200];
    if (sluice_pool_create(&pc, &p, err, sizeof err) != SLUICE_OK) {
        fail_msg("pool create: %s", err);
    }
    return p;
}

/* A name of exactly n bytes ('a' repeated) in buf (n + 1 bytes). */
static const char *name_of(char *buf, size_t n)
{
    memset(buf, 'a', n);
    buf[n] = '\0';
    return buf;
}

/* ---- control.h: config_check says exactly what create refuses ------------------ */

typedef struct control_case {
    const char *what;
    void (*set)(sluice_pool_control_config *cfg);
    const char *field; /* NULL: both accept */
} control_case;

#define CASE_FN(id, body)                                                                                    \
    static void id(sluice_pool_control_config *cfg)                                                          \
    {                                                                                                        \
        body;                                                                                                \
    }

CASE_FN(c_defaults, (void)cfg)
CASE_FN(c_mode_bad, cfg->mode = SLUICE_CONTROL_MODE_COUNT_)
CASE_FN(c_min_below_min_workers, cfg->min_limit = 1)
CASE_FN(c_max_at_max, cfg->max_limit = SLUICE_ADAPTIVE_LIMIT_MAX)
CASE_FN(c_max_past_max, cfg->max_limit = SLUICE_ADAPTIVE_LIMIT_MAX + 1)
CASE_FN(c_max_below_min, {
    cfg->min_limit = 5;
    cfg->max_limit = 4;
})
CASE_FN(c_max_equal_min, {
    cfg->min_limit = 5;
    cfg->max_limit = 5;
})
CASE_FN(c_interval_at_max, cfg->interval_ns = HOUR)
CASE_FN(c_interval_past_max, cfg->interval_ns = HOUR + 1)
CASE_FN(c_interval_max_autotune, {
    cfg->interval_ns = HOUR;
    cfg->autotune = true;
})
CASE_FN(c_cooldown_at_max, cfg->cooldown_ns = HOUR)
CASE_FN(c_cooldown_past_max, cfg->cooldown_ns = HOUR + 1)
CASE_FN(c_util_high_one, cfg->util_high = 1.0)
CASE_FN(c_util_high_past, cfg->util_high = 1.0000001)
CASE_FN(c_util_high_nan, cfg->util_high = NAN)
CASE_FN(c_util_low_tiny, cfg->util_low = 1e-9)
CASE_FN(c_util_low_equal_high, {
    cfg->util_high = 0.5;
    cfg->util_low = 0.5;
})
CASE_FN(c_hysteresis_under_one, cfg->hysteresis = 0.999)
CASE_FN(c_hysteresis_one, cfg->hysteresis = 1.0)
CASE_FN(c_headroom_one, cfg->headroom = 1.0)
CASE_FN(c_headroom_past, cfg->headroom = 1.01)
CASE_FN(c_headroom_negative, cfg->headroom = -0.1)
CASE_FN(c_p99_one, cfg->revert_p99_ratio = 1.0)
CASE_FN(c_p99_inf, cfg->revert_p99_ratio = INFINITY)
CASE_FN(c_fail_delta_one, cfg->revert_failure_delta = 1.0)
CASE_FN(c_fail_delta_past, cfg->revert_failure_delta = 1.5)
CASE_FN(c_probe_1ms, cfg->probe_every_ns = MS)
CASE_FN(c_probe_under_1ms, cfg->probe_every_ns = MS - 1)
CASE_FN(c_fixed_ignores_smoothing, cfg->smoothing = 2)
CASE_FN(c_gradient2_smoothing_one, {
    cfg->mode = SLUICE_CONTROL_GRADIENT2;
    cfg->smoothing = 1.0;
})
CASE_FN(c_gradient2_smoothing_past, {
    cfg->mode = SLUICE_CONTROL_GRADIENT2;
    cfg->smoothing = 2;
})
CASE_FN(c_aimd_backoff_one, {
    cfg->mode = SLUICE_CONTROL_AIMD;
    cfg->backoff = 1.0;
})
CASE_FN(c_vegas_tolerance_low, {
    cfg->mode = SLUICE_CONTROL_VEGAS;
    cfg->tolerance = 0.5;
})
CASE_FN(c_vegas_tolerance_one, {
    cfg->mode = SLUICE_CONTROL_VEGAS;
    cfg->tolerance = 1.0;
})

static const control_case control_cases[] = {
    {"defaults", c_defaults, NULL},
    {"mode out of range", c_mode_bad, "mode"},
    {"min_limit below min_workers", c_min_below_min_workers, "min_limit"},
    {"max_limit at SLUICE_ADAPTIVE_LIMIT_MAX", c_max_at_max, NULL},
    {"max_limit past SLUICE_ADAPTIVE_LIMIT_MAX", c_max_past_max, "max_limit"},
    {"max_limit below min_limit", c_max_below_min, "max_limit"},
    {"max_limit equal to min_limit", c_max_equal_min, NULL},
    {"interval at 1 hour", c_interval_at_max, NULL},
    {"interval past 1 hour", c_interval_past_max, "interval"},
    {"interval at 1 hour with auto-tune", c_interval_max_autotune, NULL},
    {"cooldown at 1 hour", c_cooldown_at_max, NULL},
    {"cooldown past 1 hour", c_cooldown_past_max, "cooldown"},
    {"util_high 1", c_util_high_one, NULL},
    {"util_high past 1", c_util_high_past, "util_high"},
    {"util_high NaN", c_util_high_nan, "util_high"},
    {"util_low tiny", c_util_low_tiny, NULL},
    {"util_low equal to util_high", c_util_low_equal_high, "util_low"},
    {"hysteresis 0.999", c_hysteresis_under_one, NULL},
    {"hysteresis 1", c_hysteresis_one, "hysteresis"},
    {"headroom 1", c_headroom_one, NULL},
    {"headroom past 1", c_headroom_past, "headroom"},
    {"headroom negative", c_headroom_negative, "headroom"},
    {"revert_p99_ratio 1", c_p99_one, "revert_p99_ratio"},
    {"revert_p99_ratio infinite", c_p99_inf, "revert_p99_ratio"},
    {"revert_failure_delta 1", c_fail_delta_one, NULL},
    {"revert_failure_delta past 1", c_fail_delta_past, "revert_failure_delta"},
    {"probe_every 1 ms", c_probe_1ms, NULL},
    {"probe_every under 1 ms", c_probe_under_1ms, "probe_every"},
    {"FIXED ignores the limiter's smoothing", c_fixed_ignores_smoothing, NULL},
    {"gradient2 smoothing 1", c_gradient2_smoothing_one, NULL},
    {"gradient2 smoothing past 1", c_gradient2_smoothing_past, "smoothing"},
    {"aimd backoff 1", c_aimd_backoff_one, "backoff"},
    {"vegas tolerance under 1", c_vegas_tolerance_low, "tolerance"},
    {"vegas tolerance 1", c_vegas_tolerance_one, NULL},
};

/* sluice_pool_control_config_check "what create would refuse": for every
 * case, both agree, on the same field; each bound at its edge and past it. */
static void test_control_check_matches_create(void **state)
{
    (void)state;
    sluice_pool *pool = make_pool("ctl_check", 8, 2);
    int mismatches = 0;
    for (size_t i = 0; i < sizeof control_cases / sizeof control_cases[0]; i++) {
        const control_case *cc = &control_cases[i];
        sluice_pool_control_config cfg;
        sluice_pool_control_config_init(&cfg);
        cc->set(&cfg);
        const char *field = NULL;
        char why[160] = "";
        sluice_err checked = sluice_pool_control_config_check(&cfg, 8, 2, &field, why, sizeof why);
        sluice_pool_control *ctl = NULL;
        char err[200] = "";
        sluice_err created = sluice_pool_control_create(pool, &cfg, &ctl, err, sizeof err);
        sluice_err want = cc->field ? SLUICE_EINVAL : SLUICE_OK;
        bool ok = checked == want && created == want;
        if (ok && cc->field) {
            ok = field && strcmp(field, cc->field) == 0 && strstr(err, cc->field) != NULL && why[0] != '\0';
        }
        if (ok && !cc->field) {
            ok = ctl != NULL;
        }
        if (!ok) {
            print_error(
                "control case \"%s\": want %s%s%s; check says %s (field %s: %s), create says %s (%s)\n",
                cc->what, sluice_strerror(want), cc->field ? " on " : "", cc->field ? cc->field : "",
                sluice_strerror(checked), field ? field : "-", why, sluice_strerror(created), err);
            mismatches++;
        }
        sluice_pool_control_destroy(ctl);
    }
    assert_int_equal(mismatches, 0);
    const char *field = "untouched";
    sluice_pool_control_config cfg;
    sluice_pool_control_config_init(&cfg);
    assert_int_equal(sluice_pool_control_config_check(NULL, 8, 2, &field, NULL, 0), SLUICE_EINVAL);
    assert_int_equal(sluice_pool_control_config_check(&cfg, 8, 2, NULL, NULL, 0), SLUICE_EINVAL);
    /* why is optional. */
    cfg.util_high = 2;
    assert_int_equal(sluice_pool_control_config_check(&cfg, 8, 2, &field, NULL, 0), SLUICE_EINVAL);
    assert_string_equal(field, "util_high");
    sluice_pool_destroy(pool);
}

/* pin: k == 0 and below min_workers refused; above max_limit allowed (the
 * operator decides); release once, then ENOENT; NULL arguments. */
static void test_control_pin_extremes(void **state)
{
    (void)state;
    sluice_pool *pool = make_pool("ctl_pin", 4, 2);
    sluice_pool_control_config cfg;
    sluice_pool_control_config_init(&cfg);
    cfg.max_limit = 4;
    sluice_pool_control *ctl = NULL;
    assert_int_equal(sluice_pool_control_create(pool, &cfg, &ctl, NULL, 0), SLUICE_OK);
    assert_ptr_equal(sluice_pool_control_pool(ctl), pool);
    assert_null(sluice_pool_control_pool(NULL));
    assert_int_equal(sluice_pool_control_pin(ctl, 0), SLUICE_EINVAL);
    assert_int_equal(sluice_pool_control_pin(ctl, 1), SLUICE_EINVAL); /* below min_workers 2 */
    assert_int_equal(sluice_pool_control_release(ctl), SLUICE_ENOENT);
    assert_int_equal(sluice_pool_control_pin(ctl, 2), SLUICE_OK); /* min_workers exactly */
    assert_int_equal(sluice_pool_control_pin(ctl, 6), SLUICE_OK); /* past max_limit: allowed */
    sluice_pool_stats ps;
    sluice_pool_stats_get(pool, &ps);
    assert_int_equal(ps.capacity, 6);
    sluice_pool_control_stats cs;
    sluice_pool_control_stats_get(ctl, &cs);
    assert_true(cs.pinned);
    assert_int_equal(cs.limit, 6);
    assert_int_equal(sluice_pool_control_release(ctl), SLUICE_OK);
    assert_int_equal(sluice_pool_control_release(ctl), SLUICE_ENOENT);
    sluice_pool_control_stats_get(ctl, &cs);
    assert_false(cs.pinned);
    sluice_pool_control_destroy(ctl);
    sluice_pool_destroy(pool);
}

/* Probes at the top of their ranges (neither has a maximum): a timeout of
 * UINT64_MAX never expires a probe that ran (its pool deadline and its
 * "did not run within" check must not wrap into the past), and a period
 * of UINT64_MAX sends no second probe; tick's "next thing due" is never a
 * time already past. */
static void test_control_probe_extremes(void **state)
{
    (void)state;
    sluice_fake_clock clk;
    sluice_fake_clock_init(&clk, 1000 * SEC);
    sluice_pool_config pc;
    sluice_pool_config_init(&pc);
    pc.name = "probe_max";
    pc.workers = 1;
    pc.queue_capacity = 4;
    pc.clock = &clk.clock;
    sluice_pool *pool = NULL;
    assert_int_equal(sluice_pool_create(&pc, &pool, NULL, 0), SLUICE_OK);
    sluice_pool_control_config cfg;
    sluice_pool_control_config_init(&cfg);
    cfg.probe_every_ns = UINT64_MAX;
    cfg.probe_timeout_ns = UINT64_MAX;
    cfg.probe_failures_unhealthy = 1;
    sluice_pool_control *ctl = NULL;
    char err[200];
    assert_int_equal(sluice_pool_control_create(pool, &cfg, &ctl, err, sizeof err), SLUICE_OK);
    uint64_t next = sluice_pool_control_tick(ctl); /* the baseline and the first probe */
    assert_true(next >= sluice_clock_now(&clk.clock));
    sluice_pool_control_stats cs;
    WAIT_FOR((sluice_pool_control_tick(ctl), sluice_pool_control_stats_get(ctl, &cs), cs.probes >= 1),
             "the first probe to be collected");
    if (cs.probe_failures != 0 || !cs.healthy) {
        fail_msg("a probe with a timeout of UINT64_MAX failed: %s", cs.probe_error);
    }
    for (int i = 0; i < 3; i++) {
        sluice_fake_clock_advance(&clk, HOUR);
        next = sluice_pool_control_tick(ctl);
        uint64_t now = sluice_clock_now(&clk.clock);
        if (next < now) {
            fail_msg("tick %d: next due at %llu, before now %llu (a probe time wrapped)", i,
                     (unsigned long long)next, (unsigned long long)now);
        }
    }
    sluice_pool_control_stats_get(ctl, &cs);
    assert_true(cs.healthy);
    assert_int_equal(cs.probe_failures, 0);
    assert_int_equal(cs.probes, 1); /* the period never came round again */
    sluice_pool_control_destroy(ctl);
    sluice_pool_destroy(pool);
}

/* ---- batcher.h ----------------------------------------------------------------------- */

static gate bgate;
static _Atomic int b_delivered; /* items batch_fn accepted */
static _Atomic int b_failed;    /* items handed to failure_fn */
static _Atomic int b_calls;     /* batch_fn calls */
static _Atomic int b_inside;    /* batch_fn calls waiting at bgate now */
static sluice_batcher *b_self;  /* for the nested calls of nested_batch_fn */
static _Atomic int nested_add_rc = -1, nested_try_rc = -1, nested_drain_rc = -1;
static int nested_item = 7;

static void b_reset(void)
{
    atomic_store(&b_delivered, 0);
    atomic_store(&b_failed, 0);
    atomic_store(&b_calls, 0);
    atomic_store(&b_inside, 0);
    gate_init(&bgate);
}

static int held_batch_fn(void **items, size_t n, void *user)
{
    (void)items;
    (void)user;
    atomic_fetch_add(&b_inside, 1);
    gate_pass(&bgate, false);
    atomic_fetch_sub(&b_inside, 1);
    atomic_fetch_add(&b_calls, 1);
    atomic_fetch_add(&b_delivered, (int)n);
    return 0;
}

/* The first call adds to its own batcher while the in-flight bound (1) is
 * taken by itself: the first add fills the due batch (max_items 1), the
 * second would wait for itself. */
static int nested_batch_fn(void **items, size_t n, void *user)
{
    (void)items;
    (void)user;
    if (atomic_fetch_add(&b_calls, 1) == 0) {
        sluice_err first = sluice_batcher_add(b_self, &nested_item);
        atomic_store(&nested_add_rc, first == SLUICE_OK ? (int)sluice_batcher_add(b_self, &nested_item) : -2);
        atomic_store(&nested_try_rc, sluice_batcher_try_add(b_self, &nested_item));
        atomic_store(&nested_drain_rc, sluice_batcher_drain(b_self, 0, NULL));
    }
    atomic_fetch_add(&b_delivered, (int)n);
    return 0;
}

static void count_failed(void **items, size_t n, int rc, sluice_batch_failure why, void *user)
{
    (void)items;
    (void)rc;
    (void)why;
    (void)user;
    atomic_fetch_add(&b_failed, (int)n);
}

static sluice_batcher *make_batcher(sluice_pool *pool, size_t max_items, unsigned inflight,
                                    uint64_t add_timeout, sluice_batch_fn fn)
{
    sluice_batcher_config bc;
    sluice_batcher_config_init(&bc);
    bc.pool = pool;
    bc.max_items = max_items;
    bc.max_in_flight = inflight;
    bc.add_timeout_ns = add_timeout;
    bc.batch_fn = fn;
    bc.failure_fn = count_failed;
    sluice_batcher *b = NULL;
    char err[200];
    if (sluice_batcher_create(&bc, &b, err, sizeof err) != SLUICE_OK) {
        fail_msg("batcher create: %s", err);
    }
    return b;
}

static sluice_batcher_stats bstats(sluice_batcher *b)
{
    sluice_batcher_stats st;
    sluice_batcher_stats_get(b, &st);
    return st;
}

/* Config extremes: names at 48 bytes and 49, the empty name, max_delay at
 * 1 hour, max_in_flight at 65536, max_items 1 (each item alone). */
static void test_batcher_config_extremes(void **state)
{
    (void)state;
    b_reset();
    gate_open(&bgate);
    sluice_pool *pool = make_pool("batch_cfg", 2, 0);
    sluice_batcher_config bc;
    sluice_batcher_config_init(&bc);
    bc.pool = pool;
    bc.max_items = 1;
    bc.batch_fn = held_batch_fn;
    bc.failure_fn = count_failed;
    char name[SLUICE_BATCHER_NAME_MAX + 2], err[200];
    sluice_batcher *b = NULL;
    bc.name = name_of(name, SLUICE_BATCHER_NAME_MAX + 1);
    assert_int_equal(sluice_batcher_create(&bc, &b, err, sizeof err), SLUICE_EINVAL);
    assert_null(b);
    assert_non_null(strstr(err, "name"));
    bc.name = "";
    assert_int_equal(sluice_batcher_create(&bc, &b, err, sizeof err), SLUICE_EINVAL);
    bc.name = "has space";
    assert_int_equal(sluice_batcher_create(&bc, &b, err, sizeof err), SLUICE_EINVAL);
    bc.name = name_of(name, SLUICE_BATCHER_NAME_MAX);
    bc.max_delay_ns = HOUR;   /* the maximum */
    bc.max_in_flight = 65536; /* the maximum */
    assert_int_equal(sluice_batcher_create(&bc, &b, err, sizeof err), SLUICE_OK);
    assert_string_equal(sluice_batcher_name(b), name);
    /* max_items 1: every item is its own batch, sealed by size at once. */
    int items[3] = {0, 1, 2};
    for (int i = 0; i < 3; i++) {
        assert_int_equal(sluice_batcher_add(b, &items[i]), SLUICE_OK);
    }
    WAIT_FOR(atomic_load(&b_delivered) == 3, "three batches of one");
    assert_int_equal(atomic_load(&b_calls), 3);
    WAIT_FOR(bstats(b).in_flight == 0, "the batches to end");
    sluice_batcher_stats st = bstats(b);
    assert_int_equal(st.flushes[SLUICE_FLUSH_SIZE], 3);
    assert_int_equal(st.pending_items, 0);
    sluice_batcher_destroy(b);
    /* NULL arguments. */
    assert_int_equal(sluice_batcher_add(NULL, items), SLUICE_EINVAL);
    assert_int_equal(sluice_batcher_try_add(NULL, items), SLUICE_EINVAL);
    assert_int_equal(sluice_batcher_flush(NULL), SLUICE_EINVAL);
    assert_int_equal(sluice_batcher_drain(NULL, 0, NULL), SLUICE_EINVAL);
    assert_int_equal(sluice_batcher_create(NULL, &b, NULL, 0), SLUICE_EINVAL);
    assert_int_equal(sluice_batcher_create(&bc, NULL, NULL, 0), SLUICE_EINVAL);
    gate_destroy(&bgate);
    sluice_pool_destroy(pool);
}

static sluice_err flush_call(void *arg)
{
    return sluice_batcher_flush(arg);
}

static sluice_err add_call(void *arg)
{
    static int late_item = 99;
    return sluice_batcher_add(arg, &late_item);
}

typedef struct drain_arg {
    sluice_batcher *b;
    uint64_t timeout;
    sluice_batcher_drain_report rep;
} drain_arg;

static sluice_err drain_call(void *arg)
{
    drain_arg *d = arg;
    return sluice_batcher_drain(d->b, d->timeout, &d->rep);
}

/* flush: an empty batch seals nothing; a partial one is sealed with reason
 * "drain"; with the in-flight bound taken it never waits and the batch is
 * sealed (still "drain") as soon as a slot frees. */
static void test_batcher_flush(void **state)
{
    (void)state;
    b_reset();
    sluice_pool *pool = make_pool("batch_flush", 2, 0);
    sluice_batcher *b = make_batcher(pool, 10, 1, 0, held_batch_fn);
    assert_int_equal(sluice_batcher_flush(b), SLUICE_OK); /* nothing to seal */
    assert_int_equal(bstats(b).batches, 0);
    int items[6] = {0, 1, 2, 3, 4, 5};
    for (int i = 0; i < 3; i++) {
        assert_int_equal(sluice_batcher_add(b, &items[i]), SLUICE_OK);
    }
    assert_int_equal(sluice_batcher_flush(b), SLUICE_OK);
    WAIT_FOR(atomic_load(&b_inside) == 1, "the flushed batch to run");
    sluice_batcher_stats st = bstats(b);
    assert_int_equal(st.batches, 1);
    assert_int_equal(st.flushes[SLUICE_FLUSH_DRAIN], 1);
    assert_int_equal(st.pending_items, 0);
    assert_int_equal(st.in_flight, 1);
    /* The bound (1) is taken: flush must return at once. */
    for (int i = 3; i < 5; i++) {
        assert_int_equal(sluice_batcher_add(b, &items[i]), SLUICE_OK);
    }
    bg_call flush;
    bg_call_start(&flush, flush_call, b);
    assert_int_equal(bg_call_finish(&flush, "flush with the in-flight bound taken"), SLUICE_OK);
    st = bstats(b);
    assert_int_equal(st.batches, 1);
    assert_int_equal(st.pending_items, 2);
    gate_open(&bgate); /* the first batch ends: the flushed one is sealed */
    WAIT_FOR(atomic_load(&b_delivered) == 5, "the due batch after the slot freed");
    WAIT_FOR(bstats(b).in_flight == 0, "the batches to end");
    st = bstats(b);
    assert_int_equal(st.batches, 2);
    assert_int_equal(st.flushes[SLUICE_FLUSH_DRAIN], 2);
    assert_int_equal(st.flushes[SLUICE_FLUSH_SIZE] + st.flushes[SLUICE_FLUSH_TIME], 0);
    assert_int_equal(st.delivered, 5);
    sluice_batcher_destroy(b);
    assert_int_equal(atomic_load(&b_failed), 0);
    gate_destroy(&bgate);
    sluice_pool_destroy(pool);
}

/* From inside one of its own batches, with no room: add is EDEADLK (it
 * would wait for itself), try_add EFULL, drain EDEADLK; the item added
 * before is still delivered, and the refusals are counted. */
static void test_batcher_own_batch_edeadlk(void **state)
{
    (void)state;
    b_reset();
    atomic_store(&nested_add_rc, -1);
    atomic_store(&nested_try_rc, -1);
    atomic_store(&nested_drain_rc, -1);
    sluice_pool *pool = make_pool("batch_self", 2, 0);
    sluice_batcher *b = make_batcher(pool, 1, 1, 0, nested_batch_fn);
    b_self = b;
    int first = 1;
    assert_int_equal(sluice_batcher_add(b, &first), SLUICE_OK);
    WAIT_FOR(atomic_load(&b_delivered) == 2, "the nested item to be delivered");
    assert_int_equal(atomic_load(&nested_add_rc), SLUICE_EDEADLK);
    assert_int_equal(atomic_load(&nested_try_rc), SLUICE_EFULL);
    assert_int_equal(atomic_load(&nested_drain_rc), SLUICE_EDEADLK);
    WAIT_FOR(bstats(b).in_flight == 0, "the batches to end");
    sluice_batcher_stats st = bstats(b);
    assert_int_equal(st.added, 2);
    assert_int_equal(st.rejected, 2);
    assert_false(st.closed); /* the refused drain closed nothing */
    sluice_batcher_destroy(b);
    b_self = NULL;
    assert_int_equal(atomic_load(&b_failed), 0);
    gate_destroy(&bgate);
    sluice_pool_destroy(pool);
}

/* add_timeout_ns UINT64_MAX waits for room (no overflow into "expired");
 * add_timeout_ns 0 waits until a drain closes it (ECLOSED); drain with
 * UINT64_MAX finishes normally; a second drain is OK with an empty report;
 * adds after it are ECLOSED. */
static void test_batcher_waits_and_drains(void **state)
{
    (void)state;
    b_reset();
    sluice_pool *pool = make_pool("batch_wait", 2, 0);
    int items[4] = {0, 1, 2, 3};
    /* UINT64_MAX: waits for room. */
    sluice_batcher *b = make_batcher(pool, 1, 1, UINT64_MAX, held_batch_fn);
    assert_int_equal(sluice_batcher_add(b, &items[0]), SLUICE_OK); /* in flight, held */
    WAIT_FOR(atomic_load(&b_inside) == 1, "the first batch to run");
    assert_int_equal(sluice_batcher_add(b, &items[1]), SLUICE_OK); /* full and due */
    bg_call add;
    bg_call_start(&add, add_call, b);
    WAIT_FOR(bstats(b).waiting == 1, "the add to wait for room");
    gate_open(&bgate);
    assert_int_equal(bg_call_finish(&add, "the UINT64_MAX add"), SLUICE_OK);
    drain_arg d = {.b = b, .timeout = UINT64_MAX};
    assert_int_equal(drain_call(&d), SLUICE_OK);
    assert_false(d.rep.timed_out);
    assert_int_equal(d.rep.items_unsent, 0);
    assert_int_equal(atomic_load(&b_delivered), 3);
    memset(&d.rep, 0xff, sizeof d.rep);
    assert_int_equal(drain_call(&d), SLUICE_OK); /* again: empty */
    assert_int_equal(d.rep.batches, 0);
    assert_int_equal(d.rep.items_unsent, 0);
    assert_int_equal(d.rep.in_flight, 0);
    assert_false(d.rep.timed_out);
    assert_int_equal(sluice_batcher_add(b, &items[2]), SLUICE_ECLOSED);
    assert_int_equal(sluice_batcher_try_add(b, &items[2]), SLUICE_ECLOSED);
    assert_int_equal(sluice_batcher_flush(b), SLUICE_OK);
    sluice_batcher_destroy(b);
    gate_destroy(&bgate);

    /* 0: no limit; a drain wakes the waiter with ECLOSED. */
    b_reset();
    b = make_batcher(pool, 1, 1, 0, held_batch_fn);
    assert_int_equal(sluice_batcher_add(b, &items[0]), SLUICE_OK);
    WAIT_FOR(atomic_load(&b_inside) == 1, "the first batch to run");
    assert_int_equal(sluice_batcher_add(b, &items[1]), SLUICE_OK);
    bg_call_start(&add, add_call, b);
    WAIT_FOR(bstats(b).waiting == 1, "the add to wait for room");
    drain_arg d2 = {.b = b, .timeout = 0};
    bg_call drain;
    bg_call_start(&drain, drain_call, &d2);
    assert_int_equal(bg_call_finish(&add, "the waiting add to see the drain"), SLUICE_ECLOSED);
    gate_open(&bgate);
    assert_int_equal(bg_call_finish(&drain, "the drain"), SLUICE_OK);
    assert_int_equal(atomic_load(&b_delivered), 2);
    sluice_batcher_stats st = bstats(b);
    assert_int_equal(st.added, 2);
    assert_int_equal(st.delivered + st.failed_items, st.added);
    assert_int_equal(st.rejected, 0); /* ECLOSED is not a rejection */
    sluice_batcher_destroy(b);
    gate_destroy(&bgate);
    sluice_pool_destroy(pool);
}

/* add_timeout_ns and a drain timeout of UINT64_MAX on a pool clock at
 * its very end never come (sluice__deadline_passed): the add waits for
 * room and gets it, the drain waits for the running batch. Before, the
 * add timed out as soon as the clock reached the end, and the drain too. */
static void test_batcher_max_timeouts_at_clock_end(void **state)
{
    (void)state;
    b_reset();
    counting_clock *cc = malloc(sizeof *cc);
    assert_non_null(cc);
    counting_clock_init(cc, UINT64_MAX - 10);
    sluice_pool_config pc;
    sluice_pool_config_init(&pc);
    pc.name = "batch_end";
    pc.workers = 2;
    pc.queue_capacity = 64;
    pc.clock = &cc->clock; /* the batcher's clock is its pool's */
    sluice_pool *pool = NULL;
    assert_int_equal(sluice_pool_create(&pc, &pool, NULL, 0), SLUICE_OK);
    int items[4] = {0, 1, 2, 3};
    sluice_batcher *b = make_batcher(pool, 1, 1, UINT64_MAX, held_batch_fn);
    assert_int_equal(sluice_batcher_add(b, &items[0]), SLUICE_OK); /* in flight, held */
    WAIT_FOR(atomic_load(&b_inside) == 1, "the first batch to run");
    assert_int_equal(sluice_batcher_add(b, &items[1]), SLUICE_OK); /* full and due */
    bg_call add;
    bg_call_start(&add, add_call, b);
    WAIT_FOR(bstats(b).waiting == 1, "the add to wait for room");
    uint64_t r0 = atomic_load(&cc->reads);
    atomic_store(&cc->now, UINT64_MAX); /* the clock's very end */
    WAIT_FOR(atomic_load(&cc->reads) >= r0 + 20 || atomic_load(&add.done),
             "the waiting add re-reads the clock");
    assert_false(atomic_load(&add.done));
    gate_open(&bgate);
    assert_int_equal(bg_call_finish(&add, "the UINT64_MAX add"), SLUICE_OK);
    WAIT_FOR(atomic_load(&b_delivered) == 3, "the three items delivered");

    gate_close(&bgate);
    assert_int_equal(sluice_batcher_add(b, &items[3]), SLUICE_OK);
    WAIT_FOR(atomic_load(&b_inside) == 1, "the last batch to run");
    drain_arg d = {.b = b, .timeout = UINT64_MAX};
    bg_call drain;
    bg_call_start(&drain, drain_call, &d);
    WAIT_FOR(bstats(b).closed, "the drain to begin");
    r0 = atomic_load(&cc->reads);
    WAIT_FOR(atomic_load(&cc->reads) >= r0 + 20 || atomic_load(&drain.done), "the drain re-reads the clock");
    assert_false(atomic_load(&drain.done));
    gate_open(&bgate);
    assert_int_equal(bg_call_finish(&drain, "the UINT64_MAX drain"), SLUICE_OK);
    assert_false(d.rep.timed_out);
    assert_int_equal(d.rep.items_unsent, 0);
    assert_int_equal(d.rep.in_flight, 0);
    assert_int_equal(atomic_load(&b_delivered), 4);
    assert_int_equal(atomic_load(&b_failed), 0);
    assert_int_equal(atomic_load(&bgate.timeouts), 0);
    sluice_batcher_destroy(b);
    sluice_pool_destroy(pool);
    gate_destroy(&bgate);
    free(cc);
}

/* ---- keyed.h ------------------------------------------------------------------------- */

static sluice_keyed *k_self;
static _Atomic int k_drain_rc = -1;
static _Atomic int k_ran;

static int keyed_drain_self(void *arg)
{
    (void)arg;
    atomic_store(&k_drain_rc, sluice_keyed_drain(k_self, 0, NULL));
    atomic_fetch_add(&k_ran, 1);
    return 0;
}

static int keyed_count(void *arg)
{
    (void)arg;
    atomic_fetch_add(&k_ran, 1);
    return 0;
}

static sluice_keyed_stats kstats_of(sluice_keyed *ex)
{
    sluice_keyed_stats st;
    sluice_keyed_stats_get(ex, &st);
    return st;
}

/* max_active_keys at 65536 and one past; names at 48 and 49 bytes; keys 0
 * and UINT64_MAX are keys like any other; drain from its own task is
 * EDEADLK and closes nothing; submit after drain is ECLOSED. */
static void test_keyed_extremes(void **state)
{
    (void)state;
    sluice_pool *pool = make_pool("keyed_ext", 2, 0);
    sluice_keyed_config kc;
    sluice_keyed_config_init(&kc);
    kc.pool = pool;
    char name[SLUICE_KEYED_NAME_MAX + 2], err[200];
    sluice_keyed *ex = NULL;
    kc.name = name_of(name, SLUICE_KEYED_NAME_MAX + 1);
    assert_int_equal(sluice_keyed_create(&kc, &ex, err, sizeof err), SLUICE_EINVAL);
    assert_null(ex);
    kc.name = "";
    assert_int_equal(sluice_keyed_create(&kc, &ex, err, sizeof err), SLUICE_EINVAL);
    kc.name = name_of(name, SLUICE_KEYED_NAME_MAX);
    kc.max_active_keys = 65536; /* the maximum */
    kc.submit_timeout_ns = UINT64_MAX;
    assert_int_equal(sluice_keyed_create(&kc, &ex, err, sizeof err), SLUICE_OK);
    assert_string_equal(sluice_keyed_name(ex), name);
    k_self = ex;
    atomic_store(&k_ran, 0);
    atomic_store(&k_drain_rc, -1);
    assert_int_equal(sluice_keyed_submit(ex, 0, keyed_count, NULL), SLUICE_OK);
    assert_int_equal(sluice_keyed_submit(ex, UINT64_MAX, keyed_count, NULL), SLUICE_OK);
    assert_int_equal(sluice_keyed_submit(ex, UINT64_MAX, keyed_drain_self, NULL), SLUICE_OK);
    WAIT_FOR(atomic_load(&k_ran) == 3, "the three tasks");
    assert_int_equal(atomic_load(&k_drain_rc), SLUICE_EDEADLK);
    /* The refused drain closed nothing. */
    assert_int_equal(sluice_keyed_submit(ex, 5, keyed_count, NULL), SLUICE_OK);
    sluice_keyed_drain_report rep;
    assert_int_equal(sluice_keyed_drain(ex, UINT64_MAX, &rep), SLUICE_OK);
    assert_false(rep.timed_out);
    assert_int_equal(atomic_load(&k_ran), 4);
    assert_int_equal(sluice_keyed_submit(ex, 5, keyed_count, NULL), SLUICE_ECLOSED);
    assert_int_equal(sluice_keyed_try_submit(ex, 5, keyed_count, NULL), SLUICE_ECLOSED);
    sluice_keyed_stats ks;
    sluice_keyed_stats_get(ex, &ks);
    assert_int_equal(ks.submitted, 4);
    assert_int_equal(ks.completed, 4);
    assert_true(ks.closed);
    sluice_keyed_destroy(ex);
    sluice_keyed_destroy(NULL);
    k_self = NULL;

    kc.name = NULL;
    kc.max_active_keys = 65537;
    assert_int_equal(sluice_keyed_create(&kc, &ex, err, sizeof err), SLUICE_EINVAL);
    kc.max_active_keys = 0;
    kc.overflow = SLUICE_OVERFLOW_CALLER_RUNS;
    assert_int_equal(sluice_keyed_create(&kc, &ex, err, sizeof err), SLUICE_EINVAL);
    assert_non_null(strstr(err, "overflow"));
    assert_int_equal(sluice_keyed_try_submit(NULL, 1, keyed_count, NULL), SLUICE_EINVAL);
    sluice_pool_destroy(pool);
}

typedef struct ksub_arg {
    sluice_keyed *ex;
    uint64_t key;
} ksub_arg;

static sluice_err keyed_submit_call(void *arg)
{
    ksub_arg *a = arg;
    return sluice_keyed_submit(a->ex, a->key, keyed_count, NULL);
}

typedef struct kdrain_arg {
    sluice_keyed *ex;
    sluice_keyed_drain_report rep;
} kdrain_arg;

static sluice_err keyed_drain_max_call(void *arg)
{
    kdrain_arg *d = arg;
    return sluice_keyed_drain(d->ex, UINT64_MAX, &d->rep);
}

static int keyed_held(void *arg)
{
    int rc = gate_pass(arg, false) ? 0 : 1;
    atomic_fetch_add(&k_ran, 1);
    return rc;
}

/* Waits until `clk` was read `n` more times (a wait that polls it has
 * looked at the time it shows now; no real time is measured) or `c`
 * returned (then the caller's check that it still blocks fails at once). */
static void clock_reads_more(counting_clock *clk, uint64_t n, bg_call *c, const char *what)
{
    uint64_t r0 = atomic_load(&clk->reads);
    WAIT_FOR(atomic_load(&clk->reads) >= r0 + n || atomic_load(&c->done), "%s", what);
}

/* A submit timeout and a drain timeout of UINT64_MAX on a clock at its
 * very end never come (sluice__deadline_passed): the blocked submit waits
 * until the drain closes the executor, and the drain waits for the held
 * task and runs the waiting one, handing nothing back, as pool_drain
 * does. Before, both timed out as soon as the clock reached the end (the
 * drain handed the waiting task back). */
static void test_keyed_max_timeouts_at_clock_end(void **state)
{
    (void)state;
    counting_clock *cc = malloc(sizeof *cc);
    assert_non_null(cc);
    counting_clock_init(cc, UINT64_MAX - 10);
    gate *g = gate_new(); /* not on the stack: a failed wait leaves it held */
    sluice_pool *pool = make_pool("keyed_end", 2, 0);
    sluice_keyed_config kc;
    sluice_keyed_config_init(&kc);
    kc.pool = pool;
    kc.clock = &cc->clock; /* read by the executor alone */
    kc.key_backlog = 1;
    kc.total_backlog = 1;
    kc.submit_timeout_ns = UINT64_MAX;
    sluice_keyed *ex = NULL;
    char err[200];
    assert_int_equal(sluice_keyed_create(&kc, &ex, err, sizeof err), SLUICE_OK);
    atomic_store(&k_ran, 0);
    assert_int_equal(sluice_keyed_submit(ex, 1, keyed_held, g), SLUICE_OK);
    WAIT_FOR(atomic_load(&g->entered) == 1, "the held task runs");
    assert_int_equal(sluice_keyed_submit(ex, 1, keyed_count, NULL), SLUICE_OK); /* the backlog is full */
    ksub_arg sa = {.ex = ex, .key = 2};
    bg_call sub;
    bg_call_start(&sub, keyed_submit_call, &sa);
    WAIT_FOR(kstats_of(ex).waiting == 1, "the submit blocks for space");
    atomic_store(&cc->now, UINT64_MAX); /* the clock's very end */
    clock_reads_more(cc, 20, &sub, "the blocked submit re-reads the clock");
    assert_false(atomic_load(&sub.done));

    kdrain_arg d = {.ex = ex};
    bg_call drain;
    bg_call_start(&drain, keyed_drain_max_call, &d);
    assert_int_equal(bg_call_finish(&sub, "the blocked submit sees the drain"), SLUICE_ECLOSED);
    clock_reads_more(cc, 20, &drain, "the drain re-reads the clock");
    assert_false(atomic_load(&drain.done));
    assert_int_equal(kstats_of(ex).queued, 1);
    gate_open(g);
    assert_int_equal(bg_call_finish(&drain, "the drain"), SLUICE_OK);
    assert_false(d.rep.timed_out);
    assert_int_equal(d.rep.handed_back, 0);
    assert_int_equal(d.rep.completed, 2);
    assert_int_equal(atomic_load(&k_ran), 2);
    sluice_keyed_stats ks = kstats_of(ex);
    assert_int_equal(ks.abandoned, 0);
    assert_int_equal(ks.completed, 2);
    assert_int_equal(atomic_load(&g->timeouts), 0);
    sluice_keyed_destroy(ex);
    sluice_pool_destroy(pool);
    gate_free(g);
    free(cc);
}

/* ---- retry.h ------------------------------------------------------------------------- */

static _Atomic int r_runs;

static int failing(void *arg)
{
    (void)arg;
    atomic_fetch_add(&r_runs, 1);
    return 7;
}

static void done_never(const sluice_retry_result *res, void *arg)
{
    (void)res;
    (void)arg;
    atomic_fetch_add(&r_runs, 100);
}

static sluice_err retry_create(sluice_retry_config *cfg, sluice_retry **out, char *err, size_t len)
{
    *out = NULL;
    return sluice_retry_create(cfg, out, err, len);
}

static int succeeding(void *arg)
{
    (void)arg;
    atomic_fetch_add(&r_runs, 1);
    return 0;
}

/* A context deadline of UINT64_MAX on the retrier's clock, advanced to
 * its very end, never comes (sluice__deadline_passed): the first attempt
 * runs, and a failed one is retried (now + backoff saturates at
 * UINT64_MAX, which is no deadline) until max_attempts. Before, the call
 * ended with DEADLINE before its first attempt. Nothing here blocks. */
static void test_retry_max_deadline_at_clock_end(void **state)
{
    (void)state;
    sluice_fake_clock fc;
    sluice_fake_clock_init(&fc, UINT64_MAX - 10);
    sluice_ctx *cx = NULL;
    assert_int_equal(sluice_ctx_with_timeout(&cx, NULL, UINT64_MAX, &fc.clock), SLUICE_OK);
    assert_true(sluice_ctx_deadline(cx) == UINT64_MAX);
    sluice_fake_clock_advance(&fc, UINT64_MAX); /* saturates: the clock's end */
    assert_true(sluice_clock_now(&fc.clock) == UINT64_MAX);
    sluice_retry_config cfg;
    sluice_retry_config_init(&cfg);
    cfg.clock = &fc.clock;
    cfg.max_attempts = 3;
    cfg.seed = 1;
    sluice_retry *r = NULL;
    assert_int_equal(sluice_retry_create(&cfg, &r, NULL, 0), SLUICE_OK);
    atomic_store(&r_runs, 0);
    sluice_retry_result res;
    assert_int_equal(sluice_retry_call(r, cx, succeeding, NULL, &res), SLUICE_OK);
    assert_int_equal(res.outcome, SLUICE_RETRY_SUCCESS);
    assert_int_equal(res.attempts, 1);
    assert_int_equal(atomic_load(&r_runs), 1);
    atomic_store(&r_runs, 0);
    assert_int_equal(sluice_retry_call(r, cx, failing, NULL, &res), SLUICE_ETASK);
    assert_int_equal(res.outcome, SLUICE_RETRY_EXHAUSTED);
    assert_int_equal(res.attempts, 3);
    assert_int_equal(atomic_load(&r_runs), 3);
    assert_false(sluice_ctx_done(cx));
    sluice_retry_stats st;
    sluice_retry_stats_get(r, &st);
    assert_int_equal(st.retries, 2);
    sluice_retry_destroy(r);
    sluice_ctx_release(cx);
}

/* Every bound of the retrier's and the budget's configs at its edge and
 * one past it. */
static void test_retry_config_edges(void **state)
{
    (void)state;
    char err[200], name[SLUICE_RETRY_NAME_MAX + 2];
    sluice_retry *r = NULL;
    sluice_retry_config cfg;
    sluice_retry_config_init(&cfg);
    cfg.call_timeout_ns = 365ull * 24 * 3600 * SEC; /* 1 year: the maximum */
    cfg.backoff.multiplier = 16;
    cfg.backoff.max_ns = UINT64_MAX;
    cfg.backoff.base_ns = UINT64_MAX; /* base <= max */
    cfg.name = name_of(name, SLUICE_RETRY_NAME_MAX);
    assert_int_equal(retry_create(&cfg, &r, err, sizeof err), SLUICE_OK);
    assert_string_equal(sluice_retry_name(r), name);
    sluice_retry_destroy(r);
    cfg.name = name_of(name, SLUICE_RETRY_NAME_MAX + 1);
    assert_int_equal(retry_create(&cfg, &r, err, sizeof err), SLUICE_EINVAL);
    assert_null(r);
    cfg.name = "";
    assert_int_equal(retry_create(&cfg, &r, err, sizeof err), SLUICE_EINVAL);
    cfg.name = NULL;
    cfg.call_timeout_ns += 1;
    assert_int_equal(retry_create(&cfg, &r, err, sizeof err), SLUICE_EINVAL);
    assert_non_null(strstr(err, "call_timeout_ns"));
    cfg.call_timeout_ns = 0;
    cfg.backoff.multiplier = 16.5;
    assert_int_equal(retry_create(&cfg, &r, err, sizeof err), SLUICE_EINVAL);
    assert_non_null(strstr(err, "multiplier"));
    cfg.backoff.multiplier = 1; /* the minimum */
    assert_int_equal(retry_create(&cfg, &r, err, sizeof err), SLUICE_OK);
    sluice_retry_destroy(r);
    assert_int_equal(sluice_retry_create(NULL, &r, NULL, 0), SLUICE_EINVAL);

    sluice_retry_budget_config bc;
    sluice_retry_budget_config_init(&bc);
    sluice_retry_budget *b = NULL;
    struct {
        uint64_t window;
        double ratio, min;
        sluice_err want;
        const char *field;
    } cases[] = {
        {10 * MS, 0.1, 10, SLUICE_OK, NULL},
        {10 * MS - 1, 0.1, 10, SLUICE_EINVAL, "window_ns"},
        {HOUR, 0.1, 10, SLUICE_OK, NULL},
        {HOUR + 1, 0.1, 10, SLUICE_EINVAL, "window_ns"},
        {0, 1000, 1e6, SLUICE_OK, NULL},
        {0, 1000.5, 10, SLUICE_EINVAL, "ratio"},
        {0, INFINITY, 10, SLUICE_EINVAL, "ratio"},
        {0, 0.1, 1e6 + 1, SLUICE_EINVAL, "min_per_sec"},
        {0, 0.1, INFINITY, SLUICE_EINVAL, "min_per_sec"},
        {0, 0, 0, SLUICE_OK, NULL},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        bc.window_ns = cases[i].window;
        bc.ratio = cases[i].ratio;
        bc.min_per_sec = cases[i].min;
        err[0] = '\0';
        b = NULL;
        sluice_err got = sluice_retry_budget_create(&bc, &b, err, sizeof err);
        if (got != cases[i].want || (cases[i].field && !strstr(err, cases[i].field))) {
            fail_msg("budget case %zu: want %s (%s), got %s (%s)", i, sluice_strerror(cases[i].want),
                     cases[i].field ? cases[i].field : "-", sluice_strerror(got), err);
        }
        sluice_retry_budget_destroy(b);
    }
    /* ratio 0 and floor 0: a budget that grants no retry at all. */
    bc.window_ns = 0;
    bc.ratio = 0;
    bc.min_per_sec = 0;
    assert_int_equal(sluice_retry_budget_create(&bc, &b, NULL, 0), SLUICE_OK);
    for (int i = 0; i < 100; i++) {
        sluice_retry_budget_deposit(b);
    }
    assert_false(sluice_retry_budget_withdraw(b));
    sluice_retry_budget_stats bs;
    sluice_retry_budget_stats_get(b, &bs);
    assert_int_equal(bs.exhausted, 1);
    assert_int_equal(bs.retries, 0);
    assert_true(bs.balance == 0);
    sluice_retry_budget_destroy(b);
}

/* backoff_next "always <= the effective max_ns", at the extremes: the
 * largest durations, retry numbers and previous sleeps; a base above the
 * max; NULL b (all defaults). */
static void test_backoff_extremes(void **state)
{
    (void)state;
    uint64_t rng = 12345;
    for (int j = 0; j < SLUICE_JITTER_COUNT_; j++) {
        sluice_backoff huge = {
            .base_ns = UINT64_MAX, .max_ns = UINT64_MAX, .multiplier = 16, .jitter = (sluice_jitter)j};
        sluice_backoff capped = {.base_ns = 0, .max_ns = 50 * MS, .jitter = (sluice_jitter)j};
        sluice_backoff inverted = {.base_ns = 2 * SEC, .max_ns = SEC, .jitter = (sluice_jitter)j};
        for (int i = 0; i < 200; i++) {
            unsigned retries[] = {0, 1, 2, 64, 1000, UINT32_MAX};
            unsigned retry = retries[i % 6];
            uint64_t prevs[] = {0, 1, SEC, UINT64_MAX / 3, UINT64_MAX};
            uint64_t prev = prevs[i % 5];
            (void)sluice_backoff_next(&huge, retry, prev, &rng); /* <= UINT64_MAX: no trap, no UB */
            uint64_t c = sluice_backoff_next(&capped, retry, prev, &rng);
            if (c > 50 * MS) {
                fail_msg("jitter %s retry %u prev %llu: %llu ns > max 50 ms",
                         sluice_jitter_name((sluice_jitter)j), retry, (unsigned long long)prev,
                         (unsigned long long)c);
            }
            assert_true(sluice_backoff_next(&inverted, retry, prev, &rng) <= SEC);
            assert_true(sluice_backoff_next(NULL, retry, prev, &rng) <= 10 * SEC);
        }
    }
    /* NONE at a huge step: exactly the max, never a wrapped small value. */
    sluice_backoff none = {
        .base_ns = SEC, .max_ns = UINT64_MAX, .multiplier = 16, .jitter = SLUICE_JITTER_NONE};
    assert_true(sluice_backoff_next(&none, 100, 0, &rng) == UINT64_MAX);
    sluice_backoff none10 = {
        .base_ns = SEC, .max_ns = 10 * SEC, .multiplier = 16, .jitter = SLUICE_JITTER_NONE};
    assert_int_equal(sluice_backoff_next(&none10, UINT32_MAX, 0, &rng), 10 * SEC);
}

/* max_attempts 1 never retries; a context already done starts no attempt
 * (call) or is refused with its error and no done callback (submit);
 * sluice_retry_attempt is 0 outside an attempt. */
static void test_retry_edges(void **state)
{
    (void)state;
    assert_int_equal(sluice_retry_attempt(), 0);
    sluice_retry_config cfg;
    sluice_retry_config_init(&cfg);
    cfg.max_attempts = 1;
    cfg.seed = 1;
    sluice_retry *r = NULL;
    assert_int_equal(sluice_retry_create(&cfg, &r, NULL, 0), SLUICE_OK);
    atomic_store(&r_runs, 0);
    sluice_retry_result res;
    assert_int_equal(sluice_retry_call(r, NULL, failing, NULL, &res), SLUICE_ETASK);
    assert_int_equal(res.outcome, SLUICE_RETRY_EXHAUSTED);
    assert_int_equal(res.attempts, 1);
    assert_int_equal(res.last_rc, 7);
    assert_int_equal(atomic_load(&r_runs), 1);
    sluice_retry_stats st;
    sluice_retry_stats_get(r, &st);
    assert_int_equal(st.retries, 0);
    sluice_retry_destroy(r);

    sluice_pool *pool = make_pool("retry_edges", 1, 0);
    sluice_retry_config_init(&cfg);
    cfg.pool = pool;
    cfg.seed = 1;
    assert_int_equal(sluice_retry_create(&cfg, &r, NULL, 0), SLUICE_OK);
    sluice_ctx *ctx = NULL;
    assert_int_equal(sluice_ctx_create(&ctx, NULL, 0, NULL), SLUICE_OK);
    sluice_ctx_cancel(ctx, SLUICE_ECANCELED);
    atomic_store(&r_runs, 0);
    memset(&res, 0, sizeof res);
    assert_int_equal(sluice_retry_call(r, ctx, failing, NULL, &res), SLUICE_ECANCELED);
    assert_int_equal(res.outcome, SLUICE_RETRY_CANCELED);
    assert_int_equal(res.attempts, 0);
    assert_int_equal(sluice_retry_submit(r, ctx, failing, NULL, done_never), SLUICE_ECANCELED);
    assert_int_equal(sluice_retry_submit(r, NULL, NULL, NULL, done_never), SLUICE_EINVAL);
    assert_int_equal(sluice_retry_submit(r, NULL, failing, NULL, NULL), SLUICE_EINVAL);
    assert_int_equal(sluice_retry_submit(NULL, NULL, failing, NULL, done_never), SLUICE_EINVAL);
    sluice_retry_destroy(r); /* waits for anything that was wrongly accepted */
    assert_int_equal(atomic_load(&r_runs), 0);
    sluice_ctx_release(ctx);
    sluice_pool_destroy(pool);
}

/* ---- adaptive.h ---------------------------------------------------------------------- */

/* Names at 48 and 49 bytes; initial_limit outside [min, max]; a deadline
 * of UINT64_MAX with a slot free admits at once; an empty window changes
 * nothing; limit_set at both bounds and past them. */
static void test_adaptive_extremes(void **state)
{
    (void)state;
    sluice_fake_clock fc;
    sluice_fake_clock_init(&fc, SEC);
    sluice_adaptive_config cfg;
    sluice_adaptive_config_init(&cfg);
    cfg.clock = &fc.clock;
    cfg.mode = SLUICE_ADAPTIVE_GRADIENT2;
    cfg.min_limit = 2;
    cfg.max_limit = 10;
    char name[SLUICE_ADAPTIVE_NAME_MAX + 2], err[200];
    sluice_adaptive *a = NULL;
    cfg.name = name_of(name, SLUICE_ADAPTIVE_NAME_MAX + 1);
    assert_int_equal(sluice_adaptive_create(&cfg, &a, err, sizeof err), SLUICE_EINVAL);
    assert_null(a);
    cfg.name = name_of(name, SLUICE_ADAPTIVE_NAME_MAX);
    cfg.initial_limit = 1;
    assert_int_equal(sluice_adaptive_create(&cfg, &a, err, sizeof err), SLUICE_EINVAL);
    assert_non_null(strstr(err, "initial_limit"));
    cfg.initial_limit = 11;
    assert_int_equal(sluice_adaptive_create(&cfg, &a, err, sizeof err), SLUICE_EINVAL);
    cfg.initial_limit = 0; /* min(20, max) = 10 */
    assert_int_equal(sluice_adaptive_create(&cfg, &a, err, sizeof err), SLUICE_OK);
    assert_string_equal(sluice_adaptive_name(a), name);
    assert_int_equal(sluice_adaptive_limit_get(a), 10);

    sluice_adaptive_token t;
    assert_int_equal(sluice_adaptive_acquire_until(a, NULL, UINT64_MAX, &t), SLUICE_OK);
    assert_int_equal(sluice_adaptive_release(a, &t, SLUICE_ADAPTIVE_IGNORE), SLUICE_OK);

    sluice_adaptive_stats before, after;
    sluice_adaptive_stats_get(a, &before);
    sluice_adaptive_window empty = {
        .successes = 0, .drops = 0, .mean_rtt_ns = 5 * SEC, .in_use = true, .demand = 3};
    for (int i = 0; i < 10; i++) {
        assert_int_equal(sluice_adaptive_observe(a, &empty), SLUICE_OK);
    }
    sluice_adaptive_stats_get(a, &after);
    assert_int_equal(after.limit, before.limit);
    assert_true(after.limit_estimate == before.limit_estimate);
    assert_int_equal(after.long_rtt_ns, before.long_rtt_ns);
    assert_int_equal(after.probing, before.probing);
    assert_int_equal(after.decisions_up + after.decisions_down, before.decisions_up + before.decisions_down);

    assert_int_equal(sluice_adaptive_limit_set(a, 2), SLUICE_OK);
    assert_int_equal(sluice_adaptive_limit_get(a), 2);
    assert_int_equal(sluice_adaptive_limit_set(a, 10), SLUICE_OK);
    assert_int_equal(sluice_adaptive_limit_set(a, 1), SLUICE_EINVAL);
    assert_int_equal(sluice_adaptive_limit_set(a, 11), SLUICE_EINVAL);
    assert_int_equal(sluice_adaptive_limit_get(a), 10); /* nothing changed */
    sluice_adaptive_close(a);
    sluice_adaptive_close(a); /* idempotent */
    assert_int_equal(sluice_adaptive_acquire_until(a, NULL, UINT64_MAX, &t), SLUICE_ECLOSED);
    sluice_adaptive_destroy(a);
    sluice_adaptive_destroy(NULL);
}

/* ---- keyed.h, batcher.h: "never waits" and drain's deadline on a full pool ------------- */

/* A pool of one worker held at a gate and a queue of one place filled, so
 * any submit finds it full (BLOCK, no submit timeout: a submit that
 * waits, waits until the gate opens). */
typedef struct full_pool {
    sluice_fake_clock fc;
    sluice_pool *p;
    gate *g;
} full_pool;

static int nop_task(void *arg)
{
    (void)arg;
    return 0;
}

/* The same, with the queue's place left free. */
static void held_pool_open(full_pool *fp, const char *name)
{
    sluice_fake_clock_init(&fp->fc, 1000 * SEC);
    sluice_pool_config pc;
    sluice_pool_config_init(&pc);
    pc.name = name;
    pc.workers = 1;
    pc.queue_capacity = 1;
    pc.clock = &fp->fc.clock;
    fp->p = NULL;
    char err[200];
    if (sluice_pool_create(&pc, &fp->p, err, sizeof err) != SLUICE_OK) {
        fail_msg("pool create: %s", err);
    }
    fp->g = gate_new();
    assert_int_equal(sluice_pool_submit(fp->p, task_gate, fp->g), SLUICE_OK);
    GATE_WAIT_ENTERED(fp->g, 1);
}

static void full_pool_open(full_pool *fp, const char *name)
{
    held_pool_open(fp, name);
    assert_int_equal(sluice_pool_submit(fp->p, nop_task, NULL), SLUICE_OK);
}

static void full_pool_close(full_pool *fp)
{
    gate_open(fp->g);
    sluice_pool_destroy(fp->p);
    gate_free(fp->g);
}

static unsigned pool_waiters(sluice_pool *p)
{
    sluice_pool_stats st;
    sluice_pool_stats_get(p, &st);
    return st.waiting;
}

typedef struct nw_call {
    sluice_keyed *ex;
    sluice_batcher *b;
    uint64_t timeout_ns;
    sluice_batcher_drain_report rep;
} nw_call;

static sluice_err keyed_try_call(void *arg)
{
    nw_call *c = arg;
    return sluice_keyed_try_submit(c->ex, 7, nop_task, NULL);
}

static sluice_err batcher_try_call(void *arg)
{
    nw_call *c = arg;
    static int item;
    return sluice_batcher_try_add(c->b, &item);
}

static sluice_err batcher_drain_call(void *arg)
{
    nw_call *c = arg;
    return sluice_batcher_drain(c->b, c->timeout_ns, &c->rep);
}

static _Atomic uint64_t nw_failed_items, nw_refused;

static int nw_batch_ok(void **items, size_t n, void *user)
{
    (void)items;
    (void)n;
    (void)user;
    return 0;
}

static void nw_failure(void **items, size_t n, int rc, sluice_batch_failure why, void *user)
{
    (void)items;
    (void)rc;
    (void)user;
    atomic_fetch_add(&nw_failed_items, n);
    if (why == SLUICE_BATCH_REFUSED) {
        atomic_fetch_add(&nw_refused, 1);
    }
}

static sluice_batcher *nw_batcher(sluice_pool *p, size_t max_items)
{
    sluice_batcher_config bc;
    sluice_batcher_config_init(&bc);
    bc.pool = p;
    bc.max_items = max_items;
    bc.max_in_flight = 4;
    bc.batch_fn = nw_batch_ok;
    bc.failure_fn = nw_failure;
    sluice_batcher *b = NULL;
    char err[200];
    if (sluice_batcher_create(&bc, &b, err, sizeof err) != SLUICE_OK) {
        fail_msg("batcher create: %s", err);
    }
    return b;
}

static void test_try_calls_on_a_full_pool(void **state)
{
    (void)state;
    full_pool fp;

    /* keyed_try_submit off the pool: its runner is submitted as submit's
     * is, so a full BLOCK pool makes it wait for space (keyed.h); once
     * there is space the task is accepted and runs. (Refusing the runner
     * at once stranded accepted tasks with no runner: see keyed.c.) */
    full_pool_open(&fp, "nw_keyed");
    sluice_keyed_config kc;
    sluice_keyed_config_init(&kc);
    kc.pool = fp.p;
    nw_call c = {0};
    char err[200];
    assert_int_equal(sluice_keyed_create(&kc, &c.ex, err, sizeof err), SLUICE_OK);
    bg_call call;
    bg_call_start(&call, keyed_try_call, &c);
    WAIT_FOR(pool_waiters(fp.p) > 0, "keyed_try_submit's runner to wait for space");
    gate_open(fp.g);
    assert_int_equal(bg_call_finish(&call, "keyed_try_submit once there is space"), SLUICE_OK);
    assert_int_equal(sluice_keyed_drain(c.ex, 0, NULL), SLUICE_OK);
    sluice_keyed_stats ks;
    sluice_keyed_stats_get(c.ex, &ks);
    assert_int_equal(ks.submitted, 1);
    assert_int_equal(ks.completed, 1);
    assert_int_equal(ks.rejected, 0);
    sluice_keyed_destroy(c.ex);
    full_pool_close(&fp);

    /* batcher_try_add sealing by size off the pool: the sealed batch is
     * submitted as add's is (it waits for space), then delivered; nothing
     * goes to failure_fn. */
    atomic_store(&nw_failed_items, 0);
    atomic_store(&nw_refused, 0);
    full_pool_open(&fp, "nw_batcher");
    c.b = nw_batcher(fp.p, 1);
    bg_call_start(&call, batcher_try_call, &c);
    WAIT_FOR(pool_waiters(fp.p) > 0, "batcher_try_add's batch to wait for space");
    gate_open(fp.g);
    assert_int_equal(bg_call_finish(&call, "batcher_try_add once there is space"), SLUICE_OK);
    assert_int_equal(sluice_batcher_drain(c.b, 0, NULL), SLUICE_OK);
    sluice_batcher_stats bs;
    sluice_batcher_stats_get(c.b, &bs);
    assert_int_equal(bs.added, 1);
    assert_int_equal(bs.delivered, 1);
    assert_int_equal(bs.failed_items, 0);
    assert_int_equal(atomic_load(&nw_refused), 0);
    full_pool_close(&fp); /* before the batcher: nothing of it is on the pool */
    sluice_batcher_destroy(c.b);

    /* batcher_drain(1 s) with a partial batch and the pool full: its
     * submit may wait, but not past the drain's deadline; every item is
     * accounted for (added = delivered + failed). */
    atomic_store(&nw_failed_items, 0);
    atomic_store(&nw_refused, 0);
    full_pool_open(&fp, "nw_drain");
    c.b = nw_batcher(fp.p, 10);
    static int items[3];
    for (int i = 0; i < 3; i++) {
        assert_int_equal(sluice_batcher_add(c.b, &items[i]), SLUICE_OK);
    }
    c.timeout_ns = SEC;
    bg_call_start(&call, batcher_drain_call, &c);
    WAIT_FOR(atomic_load(&call.done) || pool_waiters(fp.p) > 0, "the drain's submit to return or wait");
    sluice_fake_clock_advance(&fp.fc, 2 * SEC);
    sluice_err rc = bg_call_finish(&call, "the drain by its deadline");
    assert_true(rc == SLUICE_OK || rc == SLUICE_ETIMEDOUT);
    sluice_batcher_stats_get(c.b, &bs);
    assert_int_equal(bs.added, 3);
    assert_int_equal(bs.delivered + bs.failed_items, 3);
    assert_int_equal(atomic_load(&nw_failed_items), 3);
    assert_int_equal(bs.in_flight, 0);
    full_pool_close(&fp);
    sluice_batcher_destroy(c.b);
}

/* On one of the pool's own workers, keyed_try_submit and batcher_try_add
 * never wait for the pool's queue (keyed.h, batcher.h), also on a pool
 * clock that reads 0: "now or 1 ns" as a past submit deadline was still
 * ahead there, and the worker waited until the clock moved. */
typedef struct onpool_call {
    gate *g;
    sluice_keyed *ex;
    sluice_batcher *b;
    _Atomic int rc_keyed, rc_batch;
    _Atomic bool done;
} onpool_call;

static int onpool_task(void *arg)
{
    onpool_call *c = arg;
    static int item;
    gate_pass(c->g, false);
    atomic_store(&c->rc_keyed, (int)sluice_keyed_try_submit(c->ex, 9, nop_task, NULL));
    atomic_store(&c->rc_batch, (int)sluice_batcher_try_add(c->b, &item));
    atomic_store(&c->done, true);
    return 0;
}

static void test_on_pool_never_waits_at_clock_zero(void **state)
{
    (void)state;
    sluice_fake_clock fc;
    sluice_fake_clock_init(&fc, 0);
    sluice_pool_config pc;
    sluice_pool_config_init(&pc);
    pc.name = "nw_zero";
    pc.workers = 1;
    pc.queue_capacity = 1;
    pc.clock = &fc.clock;
    sluice_pool *p = NULL;
    char err[200];
    assert_int_equal(sluice_pool_create(&pc, &p, err, sizeof err), SLUICE_OK);
    sluice_keyed_config kc;
    sluice_keyed_config_init(&kc);
    kc.pool = p;
    onpool_call c = {.g = gate_new()};
    assert_int_equal(sluice_keyed_create(&kc, &c.ex, err, sizeof err), SLUICE_OK);
    atomic_store(&nw_failed_items, 0);
    atomic_store(&nw_refused, 0);
    c.b = nw_batcher(p, 1);
    assert_int_equal(sluice_pool_submit(p, onpool_task, &c), SLUICE_OK);
    GATE_WAIT_ENTERED(c.g, 1);
    assert_int_equal(sluice_pool_submit(p, nop_task, NULL), SLUICE_OK); /* the queue is full */
    gate_open(c.g);
    WAIT_FOR(atomic_load(&c.done), "the pool's worker to return from try_submit and try_add (clock at 0)");
    assert_int_equal(atomic_load(&c.rc_keyed), SLUICE_EFULL);
    assert_int_equal(atomic_load(&c.rc_batch), SLUICE_OK);
    assert_int_equal(atomic_load(&nw_refused), 1);
    sluice_keyed_stats ks;
    sluice_keyed_stats_get(c.ex, &ks);
    assert_int_equal(ks.submitted, 0);
    assert_int_equal(ks.rejected, 1);
    assert_int_equal(ks.queued, 0);
    sluice_batcher_stats bs;
    sluice_batcher_stats_get(c.b, &bs);
    assert_int_equal(bs.added, 1);
    assert_int_equal(bs.failed_items, 1);
    assert_int_equal(sluice_pool_drain(p, 0, NULL), SLUICE_OK);
    sluice_pool_destroy(p);
    sluice_batcher_destroy(c.b);
    sluice_keyed_destroy(c.ex);
    gate_free(c.g);
}

/* ---- keyed.h, batcher.h: the pool drained under them ------------------------------------ */

typedef struct pool_drain_call {
    sluice_pool *p;
    uint64_t timeout_ns;
} pool_drain_call;

static sluice_err pool_drain_call_fn(void *arg)
{
    pool_drain_call *d = arg;
    return sluice_pool_drain(d->p, d->timeout_ns, NULL);
}

static bool pool_is_draining(sluice_pool *p)
{
    sluice_pool_stats st;
    sluice_pool_stats_get(p, &st);
    return st.draining;
}

static _Atomic uint64_t pd_keyed_back;

/* n batches ended (delivered or failed, and counted). */
static bool batcher_ended(sluice_batcher *b, uint64_t n)
{
    sluice_batcher_stats st;
    sluice_batcher_stats_get(b, &st);
    return st.batches_ok + st.batches_failed >= n && st.in_flight == 0;
}

static void pd_keyed_abandon(const sluice_keyed_abandoned *task, void *user)
{
    (void)task;
    (void)user;
    atomic_fetch_add(&pd_keyed_back, 1);
}

/* The pool's drain deadline hands back a queued runner of a keyed
 * executor and a queued batch of a batcher whose next batch is due: the
 * executor's timer hands its waiting tasks back at once (reason DRAIN: the
 * pool is closed for good, and no runner is left), so its own drain finds
 * nothing; the batcher's batches end as ABANDONED and REFUSED; every task
 * and item is accounted for. */
static void test_pool_drained_under_them(void **state)
{
    (void)state;
    full_pool fp;
    held_pool_open(&fp, "pd"); /* one worker held at the gate, the queue's one place free */

    sluice_keyed_config kc;
    sluice_keyed_config_init(&kc);
    kc.pool = fp.p;
    kc.abandon_handler = pd_keyed_abandon;
    sluice_keyed *ex = NULL;
    char err[200];
    assert_int_equal(sluice_keyed_create(&kc, &ex, err, sizeof err), SLUICE_OK);
    atomic_store(&pd_keyed_back, 0);
    for (int i = 0; i < 3; i++) {
        assert_int_equal(sluice_keyed_submit(ex, 1, nop_task, NULL), SLUICE_OK); /* one runner, queued */
    }

    pool_drain_call d = {.p = fp.p, .timeout_ns = SEC};
    bg_call drain;
    bg_call_start(&drain, pool_drain_call_fn, &d);
    WAIT_FOR(pool_is_draining(fp.p), "the pool's drain began");
    sluice_fake_clock_advance(&fp.fc, 2 * SEC);
    assert_int_equal(bg_call_finish(&drain, "the pool's drain deadline"), SLUICE_ETIMEDOUT);

    /* The runner was the last: its hand-back had the executor's timer
     * hand the 3 tasks back at once (the pool is closed for good; never
     * inside the pool's on_abandon), not at the executor's drain. */
    WAIT_FOR(atomic_load(&pd_keyed_back) == 3, "the executor's timer to hand the tasks back");
    sluice_keyed_stats ks;
    sluice_keyed_stats_get(ex, &ks);
    assert_int_equal(ks.abandoned, 3);
    assert_int_equal(ks.queued, 0);
    sluice_keyed_drain_report kr;
    assert_int_equal(sluice_keyed_drain(ex, 0, &kr), SLUICE_OK);
    assert_int_equal(kr.handed_back, 0);
    assert_int_equal(atomic_load(&pd_keyed_back), 3);
    sluice_keyed_stats_get(ex, &ks);
    assert_int_equal(ks.submitted, ks.completed + ks.failed + ks.panicked + ks.dropped + ks.abandoned);
    assert_int_equal(ks.runners, 0);
    sluice_keyed_destroy(ex);
    full_pool_close(&fp);

    /* The batcher: batch 1 queued on the pool, batch 2 due behind the
     * in-flight bound of 1. */
    held_pool_open(&fp, "pd_batch");
    atomic_store(&nw_failed_items, 0);
    sluice_batcher_config bc;
    sluice_batcher_config_init(&bc);
    bc.pool = fp.p;
    bc.max_items = 2;
    bc.max_in_flight = 1;
    bc.batch_fn = nw_batch_ok;
    bc.failure_fn = nw_failure;
    sluice_batcher *b = NULL;
    assert_int_equal(sluice_batcher_create(&bc, &b, err, sizeof err), SLUICE_OK);
    static int items[3];
    for (int i = 0; i < 3; i++) {
        assert_int_equal(sluice_batcher_add(b, &items[i]), SLUICE_OK);
    }
    assert_int_equal(sluice_batcher_flush(b), SLUICE_OK); /* the third item: due */
    d.p = fp.p;
    bg_call_start(&drain, pool_drain_call_fn, &d);
    WAIT_FOR(pool_is_draining(fp.p), "the pool's drain began");
    sluice_fake_clock_advance(&fp.fc, 2 * SEC);
    assert_int_equal(bg_call_finish(&drain, "the pool's drain deadline"), SLUICE_ETIMEDOUT);
    /* Batch 1 fails on the batcher's timer thread (never inside the
     * pool's on_abandon), and batch 2 with it. */
    WAIT_FOR(batcher_ended(b, 2), "both batches to end");
    sluice_batcher_stats bs;
    sluice_batcher_stats_get(b, &bs);
    assert_int_equal(bs.added, 3);
    assert_int_equal(bs.failed_items, 3);
    assert_int_equal(bs.failures[SLUICE_BATCH_ABANDONED], 1);
    assert_int_equal(bs.failures[SLUICE_BATCH_REFUSED], 1);
    assert_int_equal(bs.in_flight, 0);
    assert_int_equal(atomic_load(&nw_failed_items), 3);
    assert_int_equal(sluice_batcher_drain(b, 0, NULL), SLUICE_OK);
    sluice_batcher_destroy(b);
    full_pool_close(&fp);
}

/* "0 = the pool's workers" for max_in_flight and max_active_keys, on a
 * pool whose K is above their maximum (K may be anything up to UINT_MAX:
 * threads start as work arrives): the default is the maximum, not a
 * refusal of a value the caller never gave; a controller's max_limit 0
 * (which would move K) is refused with a message that says why. */
static void test_defaults_from_a_huge_pool(void **state)
{
    (void)state;
    sluice_pool *p = make_pool("huge_k", UINT32_MAX, 0);
    char err[200];
    sluice_batcher_config bc;
    sluice_batcher_config_init(&bc);
    bc.pool = p;
    bc.max_items = 4;
    bc.batch_fn = nw_batch_ok;
    bc.failure_fn = nw_failure;
    sluice_batcher *b = NULL;
    if (sluice_batcher_create(&bc, &b, err, sizeof err) != SLUICE_OK) {
        fail_msg("batcher on a pool of K = UINT_MAX, max_in_flight 0: %s", err);
    }
    bc.max_in_flight = 65537; /* given, past the maximum: still refused */
    sluice_batcher *b2 = NULL;
    assert_int_equal(sluice_batcher_create(&bc, &b2, err, sizeof err), SLUICE_EINVAL);
    assert_non_null(strstr(err, "65537"));
    sluice_keyed_config kc;
    sluice_keyed_config_init(&kc);
    kc.pool = p;
    sluice_keyed *ex = NULL;
    if (sluice_keyed_create(&kc, &ex, err, sizeof err) != SLUICE_OK) {
        fail_msg("keyed on a pool of K = UINT_MAX, max_active_keys 0: %s", err);
    }
    kc.max_active_keys = 65537;
    sluice_keyed *ex2 = NULL;
    assert_int_equal(sluice_keyed_create(&kc, &ex2, err, sizeof err), SLUICE_EINVAL);
    assert_non_null(strstr(err, "65537"));
    /* A controller's max_limit 0 is the pool's K, above its maximum here:
     * refused, and the message says where the value came from. */
    sluice_pool_control_config cc;
    sluice_pool_control_config_init(&cc);
    sluice_pool_control *ctl = NULL;
    assert_int_equal(sluice_pool_control_create(p, &cc, &ctl, err, sizeof err), SLUICE_EINVAL);
    assert_non_null(strstr(err, "max_limit: 0 means the pool's K"));
    cc.max_limit = SLUICE_ADAPTIVE_LIMIT_MAX;
    assert_int_equal(sluice_pool_control_create(p, &cc, &ctl, err, sizeof err), SLUICE_OK);
    sluice_pool_control_destroy(ctl);
    /* Both work. */
    static int item;
    assert_int_equal(sluice_batcher_add(b, &item), SLUICE_OK);
    assert_int_equal(sluice_keyed_submit(ex, 1, nop_task, NULL), SLUICE_OK);
    sluice_keyed_destroy(ex);
    sluice_batcher_destroy(b);
    sluice_pool_destroy(p);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_control_check_matches_create),
        cmocka_unit_test(test_control_pin_extremes),
        cmocka_unit_test(test_control_probe_extremes),
        cmocka_unit_test(test_batcher_config_extremes),
        cmocka_unit_test(test_batcher_flush),
        cmocka_unit_test(test_batcher_own_batch_edeadlk),
        cmocka_unit_test(test_batcher_waits_and_drains),
        cmocka_unit_test(test_keyed_extremes),
        cmocka_unit_test(test_retry_config_edges),
        cmocka_unit_test(test_backoff_extremes),
        cmocka_unit_test(test_retry_edges),
        cmocka_unit_test(test_adaptive_extremes),
        cmocka_unit_test(test_try_calls_on_a_full_pool),
        cmocka_unit_test(test_on_pool_never_waits_at_clock_zero),
        cmocka_unit_test(test_pool_drained_under_them),
        cmocka_unit_test(test_defaults_from_a_huge_pool),
        cmocka_unit_test(test_batcher_max_timeouts_at_clock_end),
        cmocka_unit_test(test_keyed_max_timeouts_at_clock_end),
        cmocka_unit_test(test_retry_max_deadline_at_clock_end),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
