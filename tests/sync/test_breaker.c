/*
 * tests/sync/test_breaker.c - the circuit breaker state machine: both trip
 * rules, count and time windows, OPEN -> HALF_OPEN on the fake clock,
 * probe limits, generations (late results), ignored outcomes, forced
 * states, the state-change callback (order, re-entrancy), and config
 * validation messages.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include <cmocka.h>

#include "sluice/breaker.h"

typedef struct trace {
    char log[256];
    int n;
    sluice_breaker *reenter; /* when set, the callback calls back into it */
} trace;

static void on_change(sluice_breaker *b, sluice_breaker_state from, sluice_breaker_state to, void *user)
{
    trace *t = user;
    static const char code[] = {'C', 'O', 'H'};
    t->log[t->n++] = code[from];
    t->log[t->n++] = code[to];
    t->log[t->n++] = ' ';
    t->log[t->n] = 0;
    if (t->reenter == b && from == SLUICE_BREAKER_CLOSED && to == SLUICE_BREAKER_OPEN) {
        /* Calling back in must neither deadlock nor reorder deliveries. */
        assert_int_equal(sluice_breaker_state_get(b), SLUICE_BREAKER_OPEN);
        sluice_breaker_force(b, SLUICE_BREAKER_HALF_OPEN);
        assert_int_equal(sluice_breaker_state_get(b), SLUICE_BREAKER_HALF_OPEN);
    }
}

static sluice_breaker *make(sluice_breaker_config *cfg, sluice_fake_clock *fc, trace *t)
{
    cfg->clock = &fc->clock;
    cfg->on_state_change = on_change;
    cfg->user = t;
    sluice_breaker *b = NULL;
    char err[160];
    assert_int_equal(sluice_breaker_create(cfg, &b, err, sizeof err), SLUICE_OK);
    return b;
}

static void call(sluice_breaker *b, sluice_breaker_outcome o)
{
    uint64_t t;
    assert_int_equal(sluice_breaker_allow(b, &t), SLUICE_OK);
    assert_int_equal(sluice_breaker_record(b, t, o), SLUICE_OK);
}

static sluice_breaker_stats stats(sluice_breaker *b)
{
    sluice_breaker_stats st;
    sluice_breaker_stats_get(b, &st);
    return st;
}

static void test_config(void **state)
{
    (void)state;
    sluice_breaker_config cfg;
    sluice_breaker *b = NULL;
    char err[160];
    sluice_breaker_config_init(&cfg);
    cfg.failure_rate_percent = 120;
    assert_int_equal(sluice_breaker_create(&cfg, &b, err, sizeof err), SLUICE_EINVAL);
    assert_string_equal(err, "failure_rate_percent: must be in (0, 100], got 120");
    sluice_breaker_config_init(&cfg);
    cfg.consecutive_disabled = cfg.rate_disabled = true;
    assert_int_equal(sluice_breaker_create(&cfg, &b, err, sizeof err), SLUICE_EINVAL);
    assert_non_null(strstr(err, "could never trip"));
    sluice_breaker_config_init(&cfg);
    cfg.window_size = SLUICE_BREAKER_WINDOW_MAX + 1;
    assert_int_equal(sluice_breaker_create(&cfg, &b, err, sizeof err), SLUICE_EINVAL);
    assert_non_null(strstr(err, "window_size:"));
    sluice_breaker_config_init(&cfg);
    cfg.window_type = (sluice_breaker_window)7;
    assert_int_equal(sluice_breaker_create(&cfg, &b, err, sizeof err), SLUICE_EINVAL);
    assert_non_null(strstr(err, "window_type:"));
    sluice_breaker_config_init(&cfg);
    cfg.name = "no spaces please";
    assert_int_equal(sluice_breaker_create(&cfg, &b, err, sizeof err), SLUICE_EINVAL);
    assert_null(b);
    sluice_breaker_config_init(&cfg);
    assert_int_equal(sluice_breaker_create(&cfg, &b, err, sizeof err), SLUICE_OK);
    assert_string_equal(sluice_breaker_name(b), "breaker");
    assert_string_equal(sluice_breaker_state_name(SLUICE_BREAKER_HALF_OPEN), "half_open");
    uint64_t t;
    assert_int_equal(sluice_breaker_allow(b, NULL), SLUICE_EINVAL);
    assert_int_equal(sluice_breaker_allow(b, &t), SLUICE_OK);
    assert_int_equal(sluice_breaker_record(b, t, (sluice_breaker_outcome)9), SLUICE_EINVAL);
    assert_int_equal(sluice_breaker_force(b, (sluice_breaker_state)9), SLUICE_EINVAL);
    sluice_breaker_destroy(b);
    sluice_breaker_destroy(NULL);
}

/* Defaults: 5 failures in a row trip; 60 s open; one probe; it closes. */
static void test_consecutive_and_recovery(void **state)
{
    (void)state;
    sluice_fake_clock fc;
    sluice_fake_clock_init(&fc, SLUICE_NS_PER_SEC);
    trace tr = {0};
    sluice_breaker_config cfg;
    sluice_breaker_config_init(&cfg);
    cfg.name = "payments";
    sluice_breaker *b = make(&cfg, &fc, &tr);

    for (int i = 0; i < 4; i++) {
        call(b, SLUICE_BREAKER_FAILURE);
    }
    call(b, SLUICE_BREAKER_SUCCESS); /* breaks the run */
    for (int i = 0; i < 4; i++) {
        call(b, SLUICE_BREAKER_FAILURE);
    }
    assert_int_equal(sluice_breaker_state_get(b), SLUICE_BREAKER_CLOSED);
    assert_int_equal(stats(b).consecutive_failures, 4);
    call(b, SLUICE_BREAKER_FAILURE);
    assert_int_equal(sluice_breaker_state_get(b), SLUICE_BREAKER_OPEN);
    assert_string_equal(tr.log, "CO ");

    uint64_t t;
    assert_int_equal(sluice_breaker_allow(b, &t), SLUICE_EOPEN);
    sluice_breaker_stats st = stats(b);
    assert_int_equal(st.rejected, 1);
    assert_int_equal(st.failures, 9);
    assert_int_equal(st.successes, 1);
    assert_int_equal(st.opened, 1);
    assert_int_equal(st.open_until_ns, 61 * SLUICE_NS_PER_SEC);

    sluice_fake_clock_advance(&fc, 60 * SLUICE_NS_PER_SEC - 1);
    assert_int_equal(sluice_breaker_allow(b, &t), SLUICE_EOPEN);
    sluice_fake_clock_advance(&fc, 1);
    /* One probe at a time. */
    uint64_t probe;
    assert_int_equal(sluice_breaker_allow(b, &probe), SLUICE_OK);
    assert_string_equal(tr.log, "CO OH ");
    assert_int_equal(sluice_breaker_allow(b, &t), SLUICE_EOPEN);
    assert_int_equal(stats(b).half_open_in_flight, 1);
    assert_int_equal(sluice_breaker_record(b, probe, SLUICE_BREAKER_SUCCESS), SLUICE_OK);
    assert_int_equal(sluice_breaker_state_get(b), SLUICE_BREAKER_CLOSED);
    assert_string_equal(tr.log, "CO OH HC ");
    st = stats(b);
    assert_int_equal(st.window_calls, 0); /* a fresh start */
    assert_int_equal(st.consecutive_failures, 0);
    assert_int_equal(st.closed, 1);
    assert_int_equal(st.half_opened, 1);
    assert_int_equal(st.rejected, 3);
    sluice_breaker_destroy(b);
}

/* A failing probe re-opens; results from an earlier state are late. */
static void test_probe_failure_and_generations(void **state)
{
    (void)state;
    sluice_fake_clock fc;
    sluice_fake_clock_init(&fc, 1);
    trace tr = {0};
    sluice_breaker_config cfg;
    sluice_breaker_config_init(&cfg);
    cfg.consecutive_failures = 2;
    cfg.half_open_max_calls = 2;
    cfg.open_duration_ns = 10;
    sluice_breaker *b = make(&cfg, &fc, &tr);

    uint64_t slow;
    assert_int_equal(sluice_breaker_allow(b, &slow), SLUICE_OK); /* a slow call from CLOSED */
    call(b, SLUICE_BREAKER_FAILURE);
    call(b, SLUICE_BREAKER_FAILURE);
    assert_int_equal(sluice_breaker_state_get(b), SLUICE_BREAKER_OPEN);
    sluice_fake_clock_advance(&fc, 10);
    uint64_t p1, p2, t;
    assert_int_equal(sluice_breaker_allow(b, &p1), SLUICE_OK);
    assert_int_equal(sluice_breaker_allow(b, &p2), SLUICE_OK);
    assert_int_equal(sluice_breaker_allow(b, &t), SLUICE_EOPEN);
    /* The slow call's success must not count as a probe. */
    assert_int_equal(sluice_breaker_record(b, slow, SLUICE_BREAKER_SUCCESS), SLUICE_OK);
    assert_int_equal(stats(b).late_results, 1);
    assert_int_equal(sluice_breaker_state_get(b), SLUICE_BREAKER_HALF_OPEN);
    /* An ignored probe frees its slot without deciding anything. */
    assert_int_equal(sluice_breaker_record(b, p1, SLUICE_BREAKER_IGNORED), SLUICE_OK);
    assert_int_equal(sluice_breaker_allow(b, &p1), SLUICE_OK);
    assert_int_equal(sluice_breaker_record(b, p1, SLUICE_BREAKER_SUCCESS), SLUICE_OK);
    assert_int_equal(sluice_breaker_state_get(b), SLUICE_BREAKER_HALF_OPEN); /* 1 of 2 */
    assert_int_equal(sluice_breaker_record(b, p2, SLUICE_BREAKER_FAILURE), SLUICE_OK);
    assert_int_equal(sluice_breaker_state_get(b), SLUICE_BREAKER_OPEN);
    assert_string_equal(tr.log, "CO OH HO ");
    assert_int_equal(stats(b).ignored, 1);
    assert_int_equal(stats(b).opened, 2);
    sluice_breaker_destroy(b);
}

/* Failure rate over a count window, decided only from minimum_calls on. */
static void test_rate_count_window(void **state)
{
    (void)state;
    sluice_fake_clock fc;
    sluice_fake_clock_init(&fc, 1);
    trace tr = {0};
    sluice_breaker_config cfg;
    sluice_breaker_config_init(&cfg);
    cfg.consecutive_disabled = true;
    cfg.window_size = 10;
    cfg.minimum_calls = 6;
    cfg.failure_rate_percent = 50;
    sluice_breaker *b = make(&cfg, &fc, &tr);

    /* F F F F F: 100% but below minimum_calls: no decision. */
    for (int i = 0; i < 5; i++) {
        call(b, SLUICE_BREAKER_FAILURE);
    }
    assert_int_equal(sluice_breaker_state_get(b), SLUICE_BREAKER_CLOSED);
    assert_true(stats(b).failure_rate_percent < 0);
    /* A success: 5/6 >= 50%, but only a failure can trip. */
    call(b, SLUICE_BREAKER_SUCCESS);
    assert_int_equal(sluice_breaker_state_get(b), SLUICE_BREAKER_CLOSED);
    /* Fill the window with successes: the old failures slide out. */
    for (int i = 0; i < 10; i++) {
        call(b, SLUICE_BREAKER_SUCCESS);
    }
    sluice_breaker_stats st = stats(b);
    assert_int_equal(st.window_calls, 10);
    assert_int_equal(st.window_failures, 0);
    /* 4 failures in the last 10: 40%; the 5th makes 50%: trip. */
    for (int i = 0; i < 4; i++) {
        call(b, SLUICE_BREAKER_FAILURE);
    }
    st = stats(b);
    assert_true(st.failure_rate_percent > 39.9 && st.failure_rate_percent < 40.1);
    assert_int_equal(sluice_breaker_state_get(b), SLUICE_BREAKER_CLOSED);
    call(b, SLUICE_BREAKER_FAILURE);
    assert_int_equal(sluice_breaker_state_get(b), SLUICE_BREAKER_OPEN);
    sluice_breaker_destroy(b);
}

/* Failure rate over a time window of 1 s buckets. */
static void test_rate_time_window(void **state)
{
    (void)state;
    sluice_fake_clock fc;
    sluice_fake_clock_init(&fc, 100 * SLUICE_NS_PER_SEC);
    trace tr = {0};
    sluice_breaker_config cfg;
    sluice_breaker_config_init(&cfg);
    cfg.consecutive_disabled = true;
    cfg.window_type = SLUICE_BREAKER_WINDOW_TIME;
    cfg.window_size = 10; /* seconds */
    cfg.minimum_calls = 4;
    cfg.failure_rate_percent = 50;
    sluice_breaker *b = make(&cfg, &fc, &tr);

    call(b, SLUICE_BREAKER_FAILURE);
    call(b, SLUICE_BREAKER_SUCCESS);
    call(b, SLUICE_BREAKER_SUCCESS);
    sluice_fake_clock_advance(&fc, 5 * SLUICE_NS_PER_SEC);
    call(b, SLUICE_BREAKER_SUCCESS);
    sluice_breaker_stats st = stats(b);
    assert_int_equal(st.window_calls, 4);
    assert_int_equal(st.window_failures, 1);
    /* 10 s later the first three calls have left the window. */
    sluice_fake_clock_advance(&fc, 5 * SLUICE_NS_PER_SEC);
    st = stats(b);
    assert_int_equal(st.window_calls, 1);
    assert_int_equal(st.window_failures, 0);
    call(b, SLUICE_BREAKER_FAILURE);
    call(b, SLUICE_BREAKER_FAILURE);
    assert_int_equal(sluice_breaker_state_get(b), SLUICE_BREAKER_CLOSED); /* 3 calls < 4 */
    call(b, SLUICE_BREAKER_FAILURE);                                      /* 3/4 = 75% */
    assert_int_equal(sluice_breaker_state_get(b), SLUICE_BREAKER_OPEN);
    /* A long quiet spell empties the window entirely. */
    sluice_breaker_force(b, SLUICE_BREAKER_CLOSED);
    call(b, SLUICE_BREAKER_SUCCESS);
    sluice_fake_clock_advance(&fc, 1000 * SLUICE_NS_PER_SEC);
    assert_int_equal(stats(b).window_calls, 0);
    sluice_breaker_destroy(b);
}

static int ok_fn(void *arg)
{
    (*(int *)arg)++;
    return 0;
}

static int fail_fn(void *arg)
{
    (*(int *)arg)++;
    return 7;
}

static void test_call_force_reentrant(void **state)
{
    (void)state;
    sluice_fake_clock fc;
    sluice_fake_clock_init(&fc, 1);
    trace tr = {0};
    sluice_breaker_config cfg;
    sluice_breaker_config_init(&cfg);
    cfg.consecutive_failures = 1;
    sluice_breaker *b = make(&cfg, &fc, &tr);
    int ran = 0, rc = -1;
    assert_int_equal(sluice_breaker_call(b, ok_fn, &ran, &rc), SLUICE_OK);
    assert_int_equal(rc, 0);
    /* The trip's callback calls back in and forces HALF_OPEN: delivered
     * after it returns, in order. */
    tr.reenter = b;
    assert_int_equal(sluice_breaker_call(b, fail_fn, &ran, &rc), SLUICE_OK);
    assert_int_equal(rc, 7);
    assert_string_equal(tr.log, "CO OH ");
    tr.reenter = NULL;
    assert_int_equal(sluice_breaker_force(b, SLUICE_BREAKER_OPEN), SLUICE_OK);
    assert_int_equal(sluice_breaker_call(b, ok_fn, &ran, &rc), SLUICE_EOPEN);
    assert_int_equal(ran, 2);
    assert_int_equal(sluice_breaker_force(b, SLUICE_BREAKER_OPEN), SLUICE_OK); /* no change, no event */
    assert_string_equal(tr.log, "CO OH HO ");
    sluice_breaker_destroy(b);
}

/* A probe that is never recorded does not hold HALF_OPEN forever. */
static void test_stuck_probe(void **state)
{
    (void)state;
    sluice_fake_clock fc;
    sluice_fake_clock_init(&fc, 1);
    trace tr = {0};
    sluice_breaker_config cfg;
    sluice_breaker_config_init(&cfg);
    cfg.consecutive_failures = 1;
    cfg.open_duration_ns = 100;
    cfg.half_open_max_wait_ns = 50;
    sluice_breaker *b = make(&cfg, &fc, &tr);
    call(b, SLUICE_BREAKER_FAILURE);
    sluice_fake_clock_advance(&fc, 100);
    uint64_t lost, t;
    assert_int_equal(sluice_breaker_allow(b, &lost), SLUICE_OK); /* never recorded */
    sluice_fake_clock_advance(&fc, 49);
    assert_int_equal(sluice_breaker_allow(b, &t), SLUICE_EOPEN);
    sluice_fake_clock_advance(&fc, 1);
    assert_int_equal(sluice_breaker_state_get(b), SLUICE_BREAKER_OPEN);
    assert_int_equal(stats(b).half_open_expired, 1);
    sluice_fake_clock_advance(&fc, 100);
    uint64_t probe;
    assert_int_equal(sluice_breaker_allow(b, &probe), SLUICE_OK);
    assert_int_equal(sluice_breaker_record(b, lost, SLUICE_BREAKER_SUCCESS), SLUICE_OK); /* late: ignored */
    assert_int_equal(sluice_breaker_state_get(b), SLUICE_BREAKER_HALF_OPEN);
    assert_int_equal(sluice_breaker_record(b, probe, SLUICE_BREAKER_SUCCESS), SLUICE_OK);
    assert_int_equal(sluice_breaker_state_get(b), SLUICE_BREAKER_CLOSED);
    assert_string_equal(tr.log, "CO OH HO OH HC ");
    /* With no probe in flight, HALF_OPEN waits for traffic as long as it takes. */
    call(b, SLUICE_BREAKER_FAILURE);
    sluice_fake_clock_advance(&fc, 100);
    assert_int_equal(sluice_breaker_state_get(b), SLUICE_BREAKER_HALF_OPEN);
    sluice_fake_clock_advance(&fc, 1000);
    assert_int_equal(sluice_breaker_state_get(b), SLUICE_BREAKER_HALF_OPEN);
    sluice_breaker_destroy(b);
}

/* Issue 12 item 3: a probe recorded after half_open_max_wait_ns is late
 * whether or not anything read the breaker in between: record applies the
 * same time step as allow/state_get/stats_get. Run both ways (with and
 * without a read before the record); they must agree. */
static void late_probe_record(bool read_between)
{
    sluice_fake_clock fc;
    sluice_fake_clock_init(&fc, 1);
    trace tr = {0};
    sluice_breaker_config cfg;
    sluice_breaker_config_init(&cfg);
    cfg.consecutive_failures = 1;
    cfg.open_duration_ns = SLUICE_NS_PER_SEC;
    cfg.half_open_max_wait_ns = SLUICE_NS_PER_SEC;
    sluice_breaker *b = make(&cfg, &fc, &tr);
    call(b, SLUICE_BREAKER_FAILURE);
    sluice_fake_clock_advance(&fc, SLUICE_NS_PER_SEC);
    uint64_t probe;
    assert_int_equal(sluice_breaker_allow(b, &probe), SLUICE_OK);
    sluice_fake_clock_advance(&fc, 3 * SLUICE_NS_PER_SEC);
    if (read_between) {
        (void)stats(b);
    }
    assert_int_equal(sluice_breaker_record(b, probe, SLUICE_BREAKER_SUCCESS), SLUICE_OK);
    sluice_breaker_stats st = stats(b);
    assert_int_equal(st.state, SLUICE_BREAKER_OPEN);
    assert_int_equal(st.late_results, 1);
    assert_int_equal(st.half_open_expired, 1);
    assert_int_equal(st.closed, 0);
    /* Re-opened at the time of the step, so open for open_duration from
     * there: 1 (start) + 1 s + 3 s + 1 s. */
    assert_true(st.open_until_ns == 1 + 5 * SLUICE_NS_PER_SEC);
    assert_string_equal(tr.log, "CO OH HO ");
    sluice_breaker_destroy(b);
}

static void test_late_probe_record_without_read(void **state)
{
    (void)state;
    late_probe_record(false);
}

static void test_late_probe_record_after_read(void **state)
{
    (void)state;
    late_probe_record(true);
}

/* A record also applies a due OPEN -> HALF_OPEN: a stale ticket from
 * before the trip is late, and the breaker is HALF_OPEN afterwards as a
 * reader would have made it. */
static void test_record_applies_open_to_half_open(void **state)
{
    (void)state;
    sluice_fake_clock fc;
    sluice_fake_clock_init(&fc, 1);
    trace tr = {0};
    sluice_breaker_config cfg;
    sluice_breaker_config_init(&cfg);
    cfg.consecutive_failures = 1;
    cfg.open_duration_ns = 100;
    sluice_breaker *b = make(&cfg, &fc, &tr);
    uint64_t slow;
    assert_int_equal(sluice_breaker_allow(b, &slow), SLUICE_OK);
    call(b, SLUICE_BREAKER_FAILURE);
    sluice_fake_clock_advance(&fc, 100);
    assert_int_equal(sluice_breaker_record(b, slow, SLUICE_BREAKER_FAILURE), SLUICE_OK);
    assert_string_equal(tr.log, "CO OH ");
    assert_int_equal(stats(b).late_results, 1);
    assert_int_equal(sluice_breaker_state_get(b), SLUICE_BREAKER_HALF_OPEN);
    sluice_breaker_destroy(b);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_config),
        cmocka_unit_test(test_consecutive_and_recovery),
        cmocka_unit_test(test_probe_failure_and_generations),
        cmocka_unit_test(test_rate_count_window),
        cmocka_unit_test(test_rate_time_window),
        cmocka_unit_test(test_call_force_reentrant),
        cmocka_unit_test(test_stuck_probe),
        cmocka_unit_test(test_late_probe_record_without_read),
        cmocka_unit_test(test_late_probe_record_after_read),
        cmocka_unit_test(test_record_applies_open_to_half_open),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
