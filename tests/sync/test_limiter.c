/*
 * tests/sync/test_limiter.c - token buckets against the fake clock: rates
 * over simulated time, bursts, reservations and their cancellation, waits
 * (woken by the clock, cancelled by a context, refused when the deadline
 * is too soon), live changes, and the per-key limiter's LRU bound.
 */
#include <math.h>
#include <pthread.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>

#include <cmocka.h>

#include "common/wait.h"
#include "sluice/limiter.h"

static sluice_limiter *make(double rate, uint64_t burst, sluice_fake_clock *fc)
{
    sluice_limiter_config cfg;
    sluice_limiter_config_init(&cfg);
    cfg.name = "test";
    cfg.rate = rate;
    cfg.burst = burst;
    cfg.clock = fc ? &fc->clock : NULL;
    sluice_limiter *l = NULL;
    char err[128];
    assert_int_equal(sluice_limiter_create(&cfg, &l, err, sizeof err), SLUICE_OK);
    return l;
}

static sluice_limiter_stats stats(sluice_limiter *l)
{
    sluice_limiter_stats st;
    sluice_limiter_stats_get(l, &st);
    return st;
}

static void test_config(void **state)
{
    (void)state;
    sluice_limiter_config cfg;
    sluice_limiter *l = NULL;
    char err[128];
    sluice_limiter_config_init(&cfg);
    cfg.rate = -1;
    cfg.burst = 1;
    assert_int_equal(sluice_limiter_create(&cfg, &l, err, sizeof err), SLUICE_EINVAL);
    assert_string_equal(err, "rate: must be >= 0 (or SLUICE_RATE_INF), got -1");
    cfg.rate = NAN;
    assert_int_equal(sluice_limiter_create(&cfg, &l, err, sizeof err), SLUICE_EINVAL);
    cfg.rate = 1;
    cfg.burst = 0;
    assert_int_equal(sluice_limiter_create(&cfg, &l, err, sizeof err), SLUICE_EINVAL);
    assert_non_null(strstr(err, "burst: must be > 0"));
    assert_null(l);
    cfg.rate = SLUICE_RATE_INF; /* no burst needed */
    assert_int_equal(sluice_limiter_create(&cfg, &l, err, sizeof err), SLUICE_OK);
    for (int i = 0; i < 1000; i++) {
        assert_true(sluice_limiter_allow_n(l, 1000));
    }
    assert_int_equal(sluice_limiter_wait(l, 5, NULL), SLUICE_OK);
    assert_string_equal(sluice_limiter_name(l), "limiter");
    sluice_limiter_destroy(l);
    sluice_limiter_destroy(NULL);
}

/* Over simulated time the limiter admits burst + rate * t, no more. */
static void test_rate_over_time(void **state)
{
    (void)state;
    sluice_fake_clock fc;
    sluice_fake_clock_init(&fc, SLUICE_NS_PER_SEC);
    sluice_limiter *l = make(10, 5, &fc); /* 10/s, burst 5 */
    int allowed = 0;
    for (int ms = 0; ms < 10000; ms++) { /* 10 s in 1 ms steps, 1 call each */
        if (sluice_limiter_allow(l)) {
            allowed++;
        }
        sluice_fake_clock_advance(&fc, SLUICE_NS_PER_MS);
    }
    /* 5 at once, then one every 100 ms: 5 + 100 (the last refill may land
     * on the step after the loop). */
    assert_in_range(allowed, 104, 105);
    sluice_limiter_stats st = stats(l);
    assert_int_equal(st.allowed + st.limited, 10000);
    assert_int_equal(st.allowed, (uint64_t)allowed);

    /* The bucket never holds more than burst, however long it rests. */
    sluice_fake_clock_advance(&fc, 3600 * SLUICE_NS_PER_SEC);
    assert_true(stats(l).tokens <= 5.0);
    assert_true(sluice_limiter_allow_n(l, 5));
    assert_false(sluice_limiter_allow(l));
    assert_false(sluice_limiter_allow_n(l, 6)); /* more than burst: never */
    assert_true(sluice_limiter_allow_n(l, 0));
    /* Fractions are kept: 3 x 40 ms = 1.2 tokens. */
    for (int i = 0; i < 3; i++) {
        sluice_fake_clock_advance(&fc, 40 * SLUICE_NS_PER_MS);
        if (i < 2) {
            assert_false(sluice_limiter_allow(l));
        }
    }
    assert_true(sluice_limiter_allow(l));
    sluice_limiter_destroy(l);
}

static void test_reserve_cancel(void **state)
{
    (void)state;
    sluice_fake_clock fc;
    sluice_fake_clock_init(&fc, 1000);
    sluice_limiter *l = make(1, 1, &fc); /* 1/s, burst 1 */
    sluice_reservation r1, r2, r3;
    assert_int_equal(sluice_limiter_reserve(l, 1, &r1), SLUICE_OK);
    assert_int_equal(r1.delay_ns, 0);
    assert_int_equal(sluice_limiter_reserve(l, 1, &r2), SLUICE_OK);
    assert_int_equal(r2.delay_ns, SLUICE_NS_PER_SEC);
    assert_int_equal(sluice_limiter_reserve(l, 1, &r3), SLUICE_OK);
    assert_int_equal(r3.delay_ns, 2 * SLUICE_NS_PER_SEC);
    assert_int_equal(r3.act_at_ns, 1000 + 2 * SLUICE_NS_PER_SEC);
    assert_true(stats(l).tokens < -1.99);
    /* Cancelling before its time gives the token back. */
    sluice_limiter_cancel(l, &r3);
    assert_int_equal(sluice_limiter_reserve(l, 1, &r3), SLUICE_OK);
    assert_int_equal(r3.delay_ns, 2 * SLUICE_NS_PER_SEC);
    /* After its time it is spent: cancel changes nothing. */
    sluice_fake_clock_advance(&fc, 3 * SLUICE_NS_PER_SEC);
    double before = stats(l).tokens;
    sluice_limiter_cancel(l, &r3);
    assert_true(fabs(stats(l).tokens - before) < 1e-9);
    assert_int_equal(sluice_limiter_reserve(l, 2, &r1), SLUICE_EOVERFLOW);
    assert_int_equal(stats(l).rejected, 1);
    sluice_limiter_destroy(l);

    /* Rate 0: burst calls, then never; reserve says so instead of a delay. */
    l = make(0, 2, &fc);
    assert_true(sluice_limiter_allow(l));
    assert_true(sluice_limiter_allow(l));
    sluice_fake_clock_advance(&fc, 100 * SLUICE_NS_PER_SEC);
    assert_false(sluice_limiter_allow(l));
    assert_int_equal(sluice_limiter_reserve(l, 1, &r1), SLUICE_EAGAIN);
    assert_int_equal(sluice_limiter_wait(l, 1, NULL), SLUICE_EAGAIN);
    /* Raise the rate live. */
    assert_int_equal(sluice_limiter_set_rate(l, 1000), SLUICE_OK);
    sluice_fake_clock_advance(&fc, SLUICE_NS_PER_MS);
    assert_true(sluice_limiter_allow(l));
    assert_int_equal(sluice_limiter_set_rate(l, -3), SLUICE_EINVAL);
    assert_int_equal(sluice_limiter_set_burst(l, 0), SLUICE_EINVAL);
    sluice_fake_clock_advance(&fc, SLUICE_NS_PER_SEC);
    assert_int_equal(sluice_limiter_set_burst(l, 1), SLUICE_OK);
    assert_true(stats(l).tokens <= 1.0);
    assert_int_equal(stats(l).burst, 1);
    sluice_limiter_destroy(l);
}

/* limiter.h: a reservation's times saturate at the clock's end, and
 * delay_ns is always act_at_ns - reserved_at_ns. Near the end of the
 * clock the debt's pay-back time was cut in act_at_ns only, so delay_ns
 * said more than the gap (adding it to reserved_at_ns wrapped). Checked
 * for rates from 1e-300/s (the division overflows) to 1e300/s, at clock
 * readings from 0 to UINT64_MAX, with n = 1 and n = burst = UINT64_MAX. */
static void check_reservation(const sluice_reservation *r, uint64_t now)
{
    assert_int_equal(r->reserved_at_ns, now);
    assert_true(r->act_at_ns >= r->reserved_at_ns);
    assert_int_equal(r->delay_ns, r->act_at_ns - r->reserved_at_ns);
}

static void test_reserve_extremes(void **state)
{
    (void)state;
    sluice_fake_clock fc;
    sluice_reservation r1, r2;

    /* 1e-9/s: one token of debt is 1e18 ns (31 years); 100 tokens are
     * 1e20 ns, past the clock's end. */
    sluice_fake_clock_init(&fc, 0);
    sluice_limiter *l = make(1e-9, 100, &fc);
    assert_int_equal(sluice_limiter_reserve(l, 100, &r1), SLUICE_OK);
    assert_int_equal(r1.delay_ns, 0);
    assert_int_equal(sluice_limiter_reserve(l, 1, &r2), SLUICE_OK);
    check_reservation(&r2, 0);
    assert_int_equal(r2.delay_ns, 1000000000000000000ull);
    sluice_limiter_cancel(l, &r2);
    assert_int_equal(sluice_limiter_reserve(l, 100, &r2), SLUICE_OK);
    check_reservation(&r2, 0);
    assert_int_equal(r2.act_at_ns, UINT64_MAX);
    assert_int_equal(r2.delay_ns, UINT64_MAX);
    assert_true(stats(l).tokens < -99.9);
    sluice_limiter_cancel(l, &r2); /* before its (saturated) time: given back */
    assert_true(fabs(stats(l).tokens) < 1e-6);
    /* wait() with a deadline before the saturated time: ETIMEDOUT at once,
     * nothing taken. */
    sluice_ctx *ctx = NULL;
    assert_int_equal(sluice_ctx_with_timeout(&ctx, NULL, SLUICE_NS_PER_SEC, &fc.clock), SLUICE_OK);
    assert_int_equal(sluice_limiter_wait(l, 100, ctx), SLUICE_ETIMEDOUT);
    assert_true(fabs(stats(l).tokens) < 1e-6);
    sluice_ctx_release(ctx);
    sluice_limiter_destroy(l);

    /* 1000 ns before the clock's end, a debt of 1 ms: the delay is the
     * 1000 ns left, not 1 ms. */
    sluice_fake_clock_init(&fc, UINT64_MAX - 1000);
    l = make(1000, 1, &fc); /* 1000/s: 1 ms a token */
    assert_int_equal(sluice_limiter_reserve(l, 1, &r1), SLUICE_OK);
    assert_int_equal(r1.delay_ns, 0);
    assert_int_equal(sluice_limiter_reserve(l, 1, &r2), SLUICE_OK);
    check_reservation(&r2, UINT64_MAX - 1000);
    assert_int_equal(r2.act_at_ns, UINT64_MAX);
    assert_int_equal(r2.delay_ns, 1000);
    sluice_limiter_destroy(l);

    /* At the clock's end itself: no time is left to wait. */
    sluice_fake_clock_init(&fc, UINT64_MAX);
    l = make(1, 1, &fc);
    assert_int_equal(sluice_limiter_reserve(l, 1, &r1), SLUICE_OK);
    assert_int_equal(sluice_limiter_reserve(l, 1, &r2), SLUICE_OK);
    check_reservation(&r2, UINT64_MAX);
    assert_int_equal(r2.delay_ns, 0);
    sluice_limiter_destroy(l);

    /* n = burst = UINT64_MAX: the full bucket pays the first at once, the
     * second is a debt of 2^64 tokens. One past the burst: EOVERFLOW. */
    static const double rates[] = {1e-300, 1e-9, 1, 1e9, 1e300};
    static const uint64_t nows[] = {
        0, 1, 1000000000, UINT64_MAX / 2, UINT64_MAX - SLUICE_NS_PER_SEC, UINT64_MAX - 1, UINT64_MAX};
    for (size_t i = 0; i < sizeof rates / sizeof rates[0]; i++) {
        for (size_t j = 0; j < sizeof nows / sizeof nows[0]; j++) {
            sluice_fake_clock_init(&fc, nows[j]);
            l = make(rates[i], UINT64_MAX, &fc);
            assert_int_equal(sluice_limiter_reserve(l, UINT64_MAX, &r1), SLUICE_OK);
            check_reservation(&r1, nows[j]);
            assert_int_equal(r1.delay_ns, 0);
            for (int k = 0; k < 3; k++) {
                assert_int_equal(sluice_limiter_reserve(l, k == 0 ? UINT64_MAX : 1, &r2), SLUICE_OK);
                check_reservation(&r2, nows[j]);
                assert_int_equal(r2.tokens, k == 0 ? UINT64_MAX : 1);
            }
            sluice_limiter_destroy(l);
            l = make(rates[i], UINT64_MAX - 1, &fc);
            assert_int_equal(sluice_limiter_reserve(l, UINT64_MAX, &r1), SLUICE_EOVERFLOW);
            assert_int_equal(sluice_limiter_reserve(l, UINT64_MAX - 1, &r1), SLUICE_OK);
            check_reservation(&r1, nows[j]);
            sluice_limiter_destroy(l);
        }
    }
}

typedef struct waiter {
    pthread_t thread;
    sluice_limiter *lim;
    sluice_keyed_limiter *kl;
    const char *key;
    uint64_t n;
    sluice_ctx *ctx;
    _Atomic int done;
    sluice_err result;
} waiter;

static void *wait_main(void *arg)
{
    waiter *w = arg;
    w->result = w->kl ? sluice_keyed_limiter_wait(w->kl, w->key, w->n, w->ctx)
                      : sluice_limiter_wait(w->lim, w->n, w->ctx);
    atomic_store(&w->done, 1);
    return NULL;
}

static void test_wait(void **state)
{
    (void)state;
    sluice_fake_clock fc;
    sluice_fake_clock_init(&fc, 1000);
    sluice_limiter *l = make(10, 1, &fc);                         /* a token every 100 ms */
    assert_int_equal(sluice_limiter_wait(l, 1, NULL), SLUICE_OK); /* immediate */

    /* Woken when the fake clock reaches the reservation's time. */
    waiter w = {.lim = l, .n = 1};
    pthread_create(&w.thread, NULL, wait_main, &w);
    WAIT_FOR(stats(l).waiters == 1, "the waiter to reserve");
    sluice_fake_clock_advance(&fc, 99 * SLUICE_NS_PER_MS);
    assert_false(atomic_load(&w.done));
    sluice_fake_clock_advance(&fc, SLUICE_NS_PER_MS);
    pthread_join(w.thread, NULL);
    assert_int_equal(w.result, SLUICE_OK);
    assert_int_equal(stats(l).waited, 1);

    /* Cancelled by its context: the reservation is given back. */
    sluice_ctx *c;
    assert_int_equal(sluice_ctx_create(&c, NULL, 0, NULL), SLUICE_OK);
    waiter w2 = {.lim = l, .n = 1, .ctx = c};
    pthread_create(&w2.thread, NULL, wait_main, &w2);
    WAIT_FOR(stats(l).waiters == 1, "the waiter to reserve");
    assert_true(stats(l).tokens < -0.99);
    sluice_ctx_cancel(c, SLUICE_ECANCELED);
    pthread_join(w2.thread, NULL);
    assert_int_equal(w2.result, SLUICE_ECANCELED);
    assert_true(stats(l).tokens > -0.01);
    assert_int_equal(stats(l).wait_canceled, 1);
    /* A done context fails at once. */
    assert_int_equal(sluice_limiter_wait(l, 1, c), SLUICE_ECANCELED);
    sluice_ctx_release(c);

    /* The deadline comes before the token would: refuse now, take nothing. */
    assert_int_equal(
        sluice_ctx_create(&c, NULL, sluice_clock_now(&fc.clock) + 50 * SLUICE_NS_PER_MS, &fc.clock),
        SLUICE_OK);
    double before = stats(l).tokens;
    assert_int_equal(sluice_limiter_wait(l, 1, c), SLUICE_ETIMEDOUT);
    assert_true(fabs(stats(l).tokens - before) < 1e-9);
    assert_int_equal(stats(l).wait_timeouts, 1);
    sluice_ctx_release(c);

    /* A deadline that would allow the token, on the system clock with a real
     * wait of about 2 ms. */
    sluice_limiter_destroy(l);
    l = make(500, 1, NULL);
    assert_true(sluice_limiter_allow(l));
    assert_int_equal(sluice_ctx_with_timeout(&c, NULL, SLUICE_NS_PER_SEC, NULL), SLUICE_OK);
    assert_int_equal(sluice_limiter_wait(l, 1, c), SLUICE_OK);
    sluice_ctx_release(c);
    sluice_limiter_destroy(l);
}

/* ---- keyed ----------------------------------------------------------------- */

static sluice_keyed_limiter *make_keyed(double rate, uint64_t burst, size_t max_keys, sluice_fake_clock *fc)
{
    sluice_keyed_limiter_config cfg;
    sluice_keyed_limiter_config_init(&cfg);
    cfg.rate = rate;
    cfg.burst = burst;
    cfg.max_keys = max_keys;
    cfg.clock = &fc->clock;
    sluice_keyed_limiter *kl = NULL;
    char err[128];
    assert_int_equal(sluice_keyed_limiter_create(&cfg, &kl, err, sizeof err), SLUICE_OK);
    return kl;
}

static void test_keyed(void **state)
{
    (void)state;
    sluice_fake_clock fc;
    sluice_fake_clock_init(&fc, 1000);
    sluice_keyed_limiter_config cfg;
    sluice_keyed_limiter_config_init(&cfg);
    sluice_keyed_limiter *kl = NULL;
    char err[128];
    assert_int_equal(sluice_keyed_limiter_create(&cfg, &kl, err, sizeof err), SLUICE_EINVAL);
    assert_non_null(strstr(err, "burst:"));

    kl = make_keyed(1, 2, 3, &fc);
    /* Keys are independent. */
    assert_true(sluice_keyed_limiter_allow(kl, "a", 2));
    assert_false(sluice_keyed_limiter_allow(kl, "a", 1));
    assert_true(sluice_keyed_limiter_allow(kl, "b", 1));
    assert_true(sluice_keyed_limiter_allow(kl, "c", 1));
    assert_true(sluice_keyed_limiter_tokens(kl, "a") < 0.01);
    /* Touch a, then a 4th key evicts the least recently used: b. */
    assert_false(sluice_keyed_limiter_allow(kl, "a", 1));
    assert_true(sluice_keyed_limiter_allow(kl, "d", 1));
    sluice_keyed_limiter_stats st;
    sluice_keyed_limiter_stats_get(kl, &st);
    assert_int_equal(st.keys, 3);
    assert_int_equal(st.max_keys, 3);
    assert_int_equal(st.evictions, 1);
    assert_true(sluice_keyed_limiter_tokens(kl, "b") > 1.99); /* forgotten: full */
    assert_true(sluice_keyed_limiter_tokens(kl, "c") < 1.01); /* kept */
    assert_true(sluice_keyed_limiter_tokens(kl, "a") < 0.01); /* kept */
    /* Bad keys. */
    assert_false(sluice_keyed_limiter_allow(kl, NULL, 1));
    assert_false(sluice_keyed_limiter_allow(kl, "", 1));
    char long_key[SLUICE_KEYED_LIMITER_KEY_MAX + 2];
    memset(long_key, 'k', sizeof long_key - 1);
    long_key[sizeof long_key - 1] = 0;
    assert_false(sluice_keyed_limiter_allow(kl, long_key, 1));
    assert_int_equal(sluice_keyed_limiter_wait(kl, long_key, 1, NULL), SLUICE_EINVAL);
    long_key[SLUICE_KEYED_LIMITER_KEY_MAX] = 0; /* exactly the maximum is fine */
    assert_true(sluice_keyed_limiter_allow(kl, long_key, 1));
    /* Refill per key. */
    sluice_fake_clock_advance(&fc, SLUICE_NS_PER_SEC);
    assert_true(sluice_keyed_limiter_allow(kl, "a", 1));
    assert_false(sluice_keyed_limiter_allow(kl, "a", 1));
    assert_false(sluice_keyed_limiter_allow(kl, "a", 3)); /* > burst */

    /* A many-key flood stays within the bound. */
    char key[32];
    for (int i = 0; i < 1000; i++) {
        snprintf(key, sizeof key, "tenant-%d", i);
        assert_true(sluice_keyed_limiter_allow(kl, key, 1));
    }
    sluice_keyed_limiter_stats_get(kl, &st);
    assert_int_equal(st.keys, 3);
    assert_true(st.evictions >= 1000);

    /* wait on a key, woken by the clock; cancelled by a context. */
    assert_true(sluice_keyed_limiter_allow(kl, "w", 2));
    waiter w = {.kl = kl, .key = "w", .n = 1};
    pthread_create(&w.thread, NULL, wait_main, &w);
    WAIT_FOR(sluice_keyed_limiter_tokens(kl, "w") <= -0.5, "the reservation on key w");
    sluice_fake_clock_advance(&fc, SLUICE_NS_PER_SEC);
    pthread_join(w.thread, NULL);
    assert_int_equal(w.result, SLUICE_OK);
    sluice_ctx *c;
    assert_int_equal(sluice_ctx_create(&c, NULL, 0, NULL), SLUICE_OK);
    waiter w2 = {.kl = kl, .key = "w", .n = 1, .ctx = c};
    pthread_create(&w2.thread, NULL, wait_main, &w2);
    WAIT_FOR(sluice_keyed_limiter_tokens(kl, "w") <= -0.5, "the reservation on key w");
    sluice_ctx_cancel(c, SLUICE_ECANCELED);
    pthread_join(w2.thread, NULL);
    assert_int_equal(w2.result, SLUICE_ECANCELED);
    assert_true(sluice_keyed_limiter_tokens(kl, "w") > -0.01);
    sluice_ctx_release(c);
    sluice_keyed_limiter_stats_get(kl, &st);
    assert_int_equal(st.wait_canceled, 1);
    sluice_keyed_limiter_destroy(kl);
    sluice_keyed_limiter_destroy(NULL);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_config),         cmocka_unit_test(test_rate_over_time),
        cmocka_unit_test(test_reserve_cancel), cmocka_unit_test(test_reserve_extremes),
        cmocka_unit_test(test_wait),           cmocka_unit_test(test_keyed),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
