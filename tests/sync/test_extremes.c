/*
 * tests/sync/test_extremes.c - the contract sweep for the sync layer:
 * every public call or config field with a duration or a size, at 0, 1 and
 * its maximum (UINT64_MAX, or the documented bound), does what its header
 * says, and every documented error return of these calls is produced.
 * Durations run on a fake clock; sums near UINT64_MAX must saturate,
 * never wrap into the past. docs/core-tests.md lists the promises.
 */
#include <math.h>
#include <pthread.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <cmocka.h>

#include "sluice/breaker.h"
#include "sluice/clock.h"
#include "sluice/ctx.h"
#include "sluice/limiter.h"
#include "sluice/sem.h"

#include "common/wait.h"

#define START 1000u

/* ---- semaphore ----------------------------------------------------------------- */

static sluice_sem *make_sem(uint64_t capacity, sluice_fake_clock *fc)
{
    sluice_sem_config cfg;
    sluice_sem_config_init(&cfg);
    cfg.capacity = capacity;
    cfg.clock = fc ? &fc->clock : NULL;
    sluice_sem *s = NULL;
    char err[128];
    assert_int_equal(sluice_sem_create(&cfg, &s, err, sizeof err), SLUICE_OK);
    return s;
}

static void test_sem_capacity_extremes(void **state)
{
    (void)state;
    sluice_sem_config cfg;
    sluice_sem_config_init(&cfg);
    sluice_sem *s = NULL;
    char err[128] = "";
    cfg.capacity = 0;
    assert_int_equal(sluice_sem_create(&cfg, &s, err, sizeof err), SLUICE_EINVAL);
    assert_non_null(strstr(err, "capacity"));
    assert_null(s);

    s = make_sem(1, NULL);
    assert_int_equal(sluice_sem_try_acquire(s, 1), SLUICE_OK);
    assert_int_equal(sluice_sem_try_acquire(s, 1), SLUICE_EAGAIN);
    assert_int_equal(sluice_sem_release(s, 1), SLUICE_OK);
    sluice_sem_destroy(s);

    s = make_sem(UINT64_MAX, NULL);
    assert_int_equal(sluice_sem_acquire(s, UINT64_MAX, NULL), SLUICE_OK);
    assert_int_equal(sluice_sem_try_acquire(s, 1), SLUICE_EAGAIN);
    assert_int_equal(sluice_sem_release(s, UINT64_MAX), SLUICE_OK);
    assert_int_equal(sluice_sem_try_acquire(s, UINT64_MAX - 1), SLUICE_OK);
    assert_int_equal(sluice_sem_try_acquire(s, 1), SLUICE_OK);
    sluice_sem_stats st;
    sluice_sem_stats_get(s, &st);
    assert_true(st.in_use == UINT64_MAX);
    assert_int_equal(sluice_sem_release(s, UINT64_MAX), SLUICE_OK);
    sluice_sem_destroy(s);
}

/* n: 0 is EINVAL everywhere; 1 works; UINT64_MAX (> capacity) is
 * EOVERFLOW at once for acquire and try, and for release beyond what is
 * held (nothing changes). NULL is EINVAL; closed is ECLOSED. */
static void test_sem_n_extremes(void **state)
{
    (void)state;
    sluice_sem *s = make_sem(4, NULL);
    assert_int_equal(sluice_sem_acquire(s, 0, NULL), SLUICE_EINVAL);
    assert_int_equal(sluice_sem_try_acquire(s, 0), SLUICE_EINVAL);
    assert_int_equal(sluice_sem_release(s, 0), SLUICE_EINVAL);
    assert_int_equal(sluice_sem_acquire(NULL, 1, NULL), SLUICE_EINVAL);
    assert_int_equal(sluice_sem_try_acquire(NULL, 1), SLUICE_EINVAL);
    assert_int_equal(sluice_sem_release(NULL, 1), SLUICE_EINVAL);
    assert_int_equal(sluice_sem_acquire(s, UINT64_MAX, NULL), SLUICE_EOVERFLOW);
    assert_int_equal(sluice_sem_try_acquire(s, UINT64_MAX), SLUICE_EOVERFLOW);
    assert_int_equal(sluice_sem_acquire(s, 1, NULL), SLUICE_OK);
    assert_int_equal(sluice_sem_release(s, UINT64_MAX), SLUICE_EOVERFLOW);
    assert_int_equal(sluice_sem_release(s, 2), SLUICE_EOVERFLOW);
    sluice_sem_stats st;
    sluice_sem_stats_get(s, &st);
    assert_int_equal(st.in_use, 1);
    assert_int_equal(st.oversize, 2);
    assert_int_equal(st.release_errors, 2);
    assert_int_equal(sluice_sem_release(s, 1), SLUICE_OK);
    sluice_sem_close(s);
    assert_int_equal(sluice_sem_acquire(s, 1, NULL), SLUICE_ECLOSED);
    assert_int_equal(sluice_sem_try_acquire(s, 1), SLUICE_ECLOSED);
    assert_int_equal(sluice_sem_set_capacity(s, 8), SLUICE_ECLOSED);
    sluice_sem_destroy(s);
}

/* set_capacity: 0 and NULL EINVAL; 1; UINT64_MAX. */
static void test_sem_set_capacity_extremes(void **state)
{
    (void)state;
    sluice_sem *s = make_sem(4, NULL);
    assert_int_equal(sluice_sem_set_capacity(s, 0), SLUICE_EINVAL);
    assert_int_equal(sluice_sem_set_capacity(NULL, 1), SLUICE_EINVAL);
    assert_int_equal(sluice_sem_set_capacity(s, 1), SLUICE_OK);
    assert_int_equal(sluice_sem_try_acquire(s, 2), SLUICE_EOVERFLOW);
    assert_int_equal(sluice_sem_set_capacity(s, UINT64_MAX), SLUICE_OK);
    assert_int_equal(sluice_sem_try_acquire(s, UINT64_MAX), SLUICE_OK);
    assert_int_equal(sluice_sem_release(s, UINT64_MAX), SLUICE_OK);
    sluice_sem_destroy(s);
}

typedef struct sem_waiter {
    sluice_sem *s;
    uint64_t deadline;
    sluice_err rc;
    _Atomic int done;
} sem_waiter;

static void *sem_waiter_main(void *arg)
{
    sem_waiter *w = arg;
    w->rc = sluice_sem_acquire_until(w->s, 1, NULL, w->deadline);
    atomic_store(&w->done, 1);
    return NULL;
}

static unsigned sem_waiters(sluice_sem *s)
{
    sluice_sem_stats st;
    sluice_sem_stats_get(s, &st);
    return st.waiters;
}

static void wait_waiters(sluice_sem *s, unsigned n)
{
    WAIT_FOR(sem_waiters(s) == n, "%u waiters on the semaphore", n);
}

/* acquire_until deadline: 0 = none and UINT64_MAX = never (both wait for
 * a release, with the clock moved to just before UINT64_MAX); 1 = long
 * past: SLUICE_ETIMEDOUT at once, even with units free (like a done ctx). */
static void test_sem_deadline_extremes(void **state)
{
    (void)state;
    sluice_fake_clock fc;
    sluice_fake_clock_init(&fc, START);
    sluice_sem *s = make_sem(1, &fc);
    assert_int_equal(sluice_sem_acquire_until(s, 1, NULL, 1), SLUICE_ETIMEDOUT);
    assert_int_equal(sluice_sem_acquire_until(s, 1, NULL, 0), SLUICE_OK); /* held now */
    uint64_t deadlines[] = {0, UINT64_MAX};
    for (int i = 0; i < 2; i++) {
        sluice_fake_clock_set(&fc, START);
        sem_waiter w = {.s = s, .deadline = deadlines[i]};
        pthread_t th;
        assert_int_equal(pthread_create(&th, NULL, sem_waiter_main, &w), 0);
        wait_waiters(s, 1);
        sluice_fake_clock_set(&fc, UINT64_MAX - 1);
        assert_false(atomic_load(&w.done));
        assert_int_equal(sluice_sem_release(s, 1), SLUICE_OK); /* hands it to the waiter */
        pthread_join(th, NULL);
        assert_int_equal(w.rc, SLUICE_OK);
    }
    /* 1 ns ahead: times out once the clock gets there. */
    sluice_fake_clock_set(&fc, START);
    sem_waiter w = {.s = s, .deadline = START + 1};
    pthread_t th;
    assert_int_equal(pthread_create(&th, NULL, sem_waiter_main, &w), 0);
    wait_waiters(s, 1);
    sluice_fake_clock_advance(&fc, 1);
    pthread_join(th, NULL);
    assert_int_equal(w.rc, SLUICE_ETIMEDOUT);
    assert_int_equal(sluice_sem_release(s, 1), SLUICE_OK);
    sluice_sem_destroy(s);
}

/* ---- contexts ------------------------------------------------------------------- */

/* with_timeout: 0 = already expired (ETIMEDOUT), 1 = expires one ns
 * later, UINT64_MAX = never (the deadline saturates at UINT64_MAX). */
static void test_ctx_timeout_extremes(void **state)
{
    (void)state;
    sluice_fake_clock fc;
    sluice_fake_clock_init(&fc, START);
    sluice_ctx *c0, *c1, *cmax;
    assert_int_equal(sluice_ctx_with_timeout(&c0, NULL, 0, &fc.clock), SLUICE_OK);
    assert_int_equal(sluice_ctx_with_timeout(&c1, NULL, 1, &fc.clock), SLUICE_OK);
    assert_int_equal(sluice_ctx_with_timeout(&cmax, NULL, UINT64_MAX, &fc.clock), SLUICE_OK);
    assert_int_equal(sluice_ctx_err(c0), SLUICE_ETIMEDOUT);
    assert_int_equal(sluice_ctx_err(c1), SLUICE_OK);
    assert_true(sluice_ctx_deadline(cmax) == UINT64_MAX);
    sluice_fake_clock_advance(&fc, 1);
    assert_int_equal(sluice_ctx_err(c1), SLUICE_ETIMEDOUT);
    sluice_fake_clock_set(&fc, UINT64_MAX - 1);
    assert_int_equal(sluice_ctx_err(cmax), SLUICE_OK);
    assert_int_equal(sluice_ctx_with_timeout(NULL, NULL, 1, &fc.clock), SLUICE_EINVAL);
    sluice_ctx_release(c0);
    sluice_ctx_release(c1);
    sluice_ctx_release(cmax);
}

/* create's deadline: 0 = none, 1 = long past, UINT64_MAX = never. */
static void test_ctx_deadline_extremes(void **state)
{
    (void)state;
    sluice_fake_clock fc;
    sluice_fake_clock_init(&fc, START);
    uint64_t deadlines[] = {0, 1, UINT64_MAX};
    sluice_err want[] = {SLUICE_OK, SLUICE_ETIMEDOUT, SLUICE_OK};
    for (int i = 0; i < 3; i++) {
        sluice_fake_clock_set(&fc, START);
        sluice_ctx *c;
        assert_int_equal(sluice_ctx_create(&c, NULL, deadlines[i], &fc.clock), SLUICE_OK);
        sluice_fake_clock_set(&fc, UINT64_MAX - 1);
        assert_int_equal(sluice_ctx_err(c), want[i]);
        sluice_ctx_release(c);
    }
    assert_int_equal(sluice_ctx_create(NULL, NULL, 0, NULL), SLUICE_EINVAL);
}

typedef struct ctx_waiter {
    sluice_ctx *c;
    uint64_t until;
    sluice_err rc;
    _Atomic int started;
} ctx_waiter;

static void *ctx_waiter_main(void *arg)
{
    ctx_waiter *w = arg;
    atomic_store(&w->started, 1);
    w->rc = sluice_ctx_wait(w->c, w->until);
    return NULL;
}

/* ctx_wait until: 1 (past) returns SLUICE_OK at once; 0 (no limit) and
 * UINT64_MAX return the cause when the ctx is cancelled; NULL is EINVAL. */
static void test_ctx_wait_extremes(void **state)
{
    (void)state;
    sluice_fake_clock fc;
    sluice_fake_clock_init(&fc, START);
    sluice_ctx *c;
    assert_int_equal(sluice_ctx_create(&c, NULL, 0, &fc.clock), SLUICE_OK);
    assert_int_equal(sluice_ctx_wait(c, 1), SLUICE_OK);
    assert_int_equal(sluice_ctx_wait(NULL, 0), SLUICE_EINVAL);
    sluice_ctx_release(c);
    uint64_t untils[] = {0, UINT64_MAX};
    for (int i = 0; i < 2; i++) {
        assert_int_equal(sluice_ctx_create(&c, NULL, 0, &fc.clock), SLUICE_OK);
        ctx_waiter w = {.c = c, .until = untils[i]};
        pthread_t th;
        assert_int_equal(pthread_create(&th, NULL, ctx_waiter_main, &w), 0);
        WAIT_FOR(atomic_load(&w.started), "the waiter thread to start");
        sluice_fake_clock_set(&fc, UINT64_MAX - 1);
        sluice_ctx_cancel(c, SLUICE_ECANCELED);
        pthread_join(th, NULL);
        assert_int_equal(w.rc, SLUICE_ECANCELED);
        sluice_ctx_release(c);
        sluice_fake_clock_set(&fc, START);
    }
}

/* ---- limiter ------------------------------------------------------------------- */

static sluice_limiter *make_limiter(double rate, uint64_t burst, sluice_fake_clock *fc)
{
    sluice_limiter_config cfg;
    sluice_limiter_config_init(&cfg);
    cfg.rate = rate;
    cfg.burst = burst;
    cfg.clock = &fc->clock;
    sluice_limiter *l = NULL;
    char err[160];
    sluice_err rc = sluice_limiter_create(&cfg, &l, err, sizeof err);
    if (rc != SLUICE_OK) {
        fail_msg("limiter_create(%g, %llu): %s", rate, (unsigned long long)burst, err);
    }
    return l;
}

/* burst: 0 refused (finite rate); 1; UINT64_MAX. rate: < 0 and NaN
 * refused; 0 never refills; SLUICE_RATE_INF allows everything. */
static void test_limiter_config_extremes(void **state)
{
    (void)state;
    sluice_fake_clock fc;
    sluice_fake_clock_init(&fc, START);
    sluice_limiter_config cfg;
    sluice_limiter_config_init(&cfg);
    cfg.clock = &fc.clock;
    sluice_limiter *l = NULL;
    char err[160] = "";
    cfg.rate = 10;
    cfg.burst = 0;
    assert_int_equal(sluice_limiter_create(&cfg, &l, err, sizeof err), SLUICE_EINVAL);
    assert_non_null(strstr(err, "burst"));
    cfg.burst = 1;
    cfg.rate = -1;
    assert_int_equal(sluice_limiter_create(&cfg, &l, err, sizeof err), SLUICE_EINVAL);
    assert_non_null(strstr(err, "rate"));
    cfg.rate = NAN;
    assert_int_equal(sluice_limiter_create(&cfg, &l, err, sizeof err), SLUICE_EINVAL);
    assert_non_null(strstr(err, "rate"));
    assert_null(l);

    l = make_limiter(0, 1, &fc); /* one call, then none, ever */
    assert_true(sluice_limiter_allow(l));
    sluice_fake_clock_set(&fc, UINT64_MAX - 1);
    assert_false(sluice_limiter_allow(l));
    sluice_reservation r;
    assert_int_equal(sluice_limiter_reserve(l, 1, &r), SLUICE_EAGAIN);
    assert_int_equal(sluice_limiter_wait(l, 1, NULL), SLUICE_EAGAIN);
    sluice_limiter_destroy(l);

    sluice_fake_clock_set(&fc, START);
    l = make_limiter(SLUICE_RATE_INF, 0, &fc);
    for (int i = 0; i < 1000; i++) {
        assert_true(sluice_limiter_allow_n(l, UINT64_MAX));
    }
    sluice_limiter_destroy(l);

    l = make_limiter(1, UINT64_MAX, &fc); /* starts full */
    assert_true(sluice_limiter_allow_n(l, UINT64_MAX));
    assert_false(sluice_limiter_allow(l));
    sluice_limiter_destroy(l);
}

/* n: 0 always allowed; 1; > burst never (false / EOVERFLOW at once). */
static void test_limiter_n_extremes(void **state)
{
    (void)state;
    sluice_fake_clock fc;
    sluice_fake_clock_init(&fc, START);
    sluice_limiter *l = make_limiter(1, 2, &fc);
    assert_true(sluice_limiter_allow_n(l, 0));
    assert_true(sluice_limiter_allow_n(l, 1));
    assert_false(sluice_limiter_allow_n(l, UINT64_MAX));
    sluice_reservation r;
    assert_int_equal(sluice_limiter_reserve(l, UINT64_MAX, &r), SLUICE_EOVERFLOW);
    assert_int_equal(sluice_limiter_wait(l, 3, NULL), SLUICE_EOVERFLOW);
    assert_int_equal(sluice_limiter_reserve(NULL, 1, &r), SLUICE_EINVAL);
    assert_int_equal(sluice_limiter_reserve(l, 1, NULL), SLUICE_EINVAL);
    assert_int_equal(sluice_limiter_wait(NULL, 1, NULL), SLUICE_EINVAL);
    assert_int_equal(sluice_limiter_set_rate(l, -1), SLUICE_EINVAL);
    assert_int_equal(sluice_limiter_set_burst(l, 0), SLUICE_EINVAL);
    sluice_limiter_destroy(l);
}

/* A rate so small that the wait for one token is longer than the clock
 * can count: the reservation's time to act saturates at UINT64_MAX and
 * never wraps into the past; wait with a ctx deadline fails at once with
 * SLUICE_ETIMEDOUT, taking nothing. */
static void test_limiter_tiny_rate_saturates(void **state)
{
    (void)state;
    sluice_fake_clock fc;
    sluice_fake_clock_init(&fc, START);
    sluice_limiter *l = make_limiter(1e-300, 1, &fc);
    assert_true(sluice_limiter_allow(l));
    sluice_reservation r;
    assert_int_equal(sluice_limiter_reserve(l, 1, &r), SLUICE_OK);
    assert_true(r.act_at_ns >= r.reserved_at_ns);
    assert_true(r.act_at_ns > START + 1000ull * SLUICE_NS_PER_SEC * 3600 * 24 * 365);
    assert_true(r.delay_ns == r.act_at_ns - r.reserved_at_ns);
    sluice_limiter_cancel(l, &r);
    sluice_ctx *c;
    assert_int_equal(sluice_ctx_create(&c, NULL, START + SLUICE_NS_PER_SEC, &fc.clock), SLUICE_OK);
    assert_int_equal(sluice_limiter_wait(l, 1, c), SLUICE_ETIMEDOUT);
    sluice_ctx_release(c);
    sluice_limiter_destroy(l);
}

/* ---- breaker ------------------------------------------------------------------- */

static sluice_breaker *make_breaker(sluice_breaker_config *cfg, sluice_fake_clock *fc)
{
    cfg->clock = &fc->clock;
    sluice_breaker *b = NULL;
    char err[160];
    sluice_err rc = sluice_breaker_create(cfg, &b, err, sizeof err);
    if (rc != SLUICE_OK) {
        fail_msg("breaker_create: %s", err);
    }
    return b;
}

static void trip(sluice_breaker *b)
{
    uint64_t t;
    assert_int_equal(sluice_breaker_allow(b, &t), SLUICE_OK);
    assert_int_equal(sluice_breaker_record(b, t, SLUICE_BREAKER_FAILURE), SLUICE_OK);
    assert_int_equal(sluice_breaker_state_get(b), SLUICE_BREAKER_OPEN);
}

/* open_duration_ns: 0 = the default 60 s; 1 = probes one ns later;
 * UINT64_MAX = open for good (open_until saturates, no wrap). */
static void test_breaker_open_duration_extremes(void **state)
{
    (void)state;
    uint64_t durs[] = {0, 1, UINT64_MAX};
    uint64_t opens_for[] = {60 * SLUICE_NS_PER_SEC, 1, 0};
    for (int i = 0; i < 3; i++) {
        sluice_fake_clock fc;
        sluice_fake_clock_init(&fc, START);
        sluice_breaker_config cfg;
        sluice_breaker_config_init(&cfg);
        cfg.consecutive_failures = 1;
        cfg.open_duration_ns = durs[i];
        sluice_breaker *b = make_breaker(&cfg, &fc);
        trip(b);
        sluice_breaker_stats st;
        sluice_breaker_stats_get(b, &st);
        if (durs[i] == UINT64_MAX) {
            assert_true(st.open_until_ns == UINT64_MAX);
            sluice_fake_clock_set(&fc, UINT64_MAX - 1);
            assert_int_equal(sluice_breaker_state_get(b), SLUICE_BREAKER_OPEN);
        } else {
            assert_true(st.open_until_ns == START + opens_for[i]);
            sluice_fake_clock_advance(&fc, opens_for[i] - 1);
            assert_int_equal(sluice_breaker_state_get(b), SLUICE_BREAKER_OPEN);
            sluice_fake_clock_advance(&fc, 1);
            assert_int_equal(sluice_breaker_state_get(b), SLUICE_BREAKER_HALF_OPEN);
        }
        sluice_breaker_destroy(b);
    }
}

/* half_open_max_wait_ns: 0 = open_duration_ns; 1 = an unreported probe
 * re-opens one ns later; UINT64_MAX = never. */
static void test_breaker_half_open_wait_extremes(void **state)
{
    (void)state;
    uint64_t waits[] = {0, 1, UINT64_MAX};
    uint64_t gives_up_after[] = {100, 1, 0};
    for (int i = 0; i < 3; i++) {
        sluice_fake_clock fc;
        sluice_fake_clock_init(&fc, START);
        sluice_breaker_config cfg;
        sluice_breaker_config_init(&cfg);
        cfg.consecutive_failures = 1;
        cfg.open_duration_ns = 100;
        cfg.half_open_max_wait_ns = waits[i];
        sluice_breaker *b = make_breaker(&cfg, &fc);
        trip(b);
        sluice_fake_clock_advance(&fc, 100);
        uint64_t probe;
        assert_int_equal(sluice_breaker_allow(b, &probe), SLUICE_OK);
        if (waits[i] == UINT64_MAX) {
            sluice_fake_clock_set(&fc, UINT64_MAX - 1);
            assert_int_equal(sluice_breaker_state_get(b), SLUICE_BREAKER_HALF_OPEN);
            assert_int_equal(sluice_breaker_record(b, probe, SLUICE_BREAKER_SUCCESS), SLUICE_OK);
            assert_int_equal(sluice_breaker_state_get(b), SLUICE_BREAKER_CLOSED);
        } else {
            sluice_fake_clock_advance(&fc, gives_up_after[i] - 1);
            assert_int_equal(sluice_breaker_state_get(b), SLUICE_BREAKER_HALF_OPEN);
            sluice_fake_clock_advance(&fc, 1);
            assert_int_equal(sluice_breaker_record(b, probe, SLUICE_BREAKER_SUCCESS), SLUICE_OK);
            assert_int_equal(sluice_breaker_state_get(b), SLUICE_BREAKER_OPEN);
        }
        sluice_breaker_destroy(b);
    }
}

/* window_size: 0 = default 100; 1; SLUICE_BREAKER_WINDOW_MAX accepted; one
 * more refused with the field named. consecutive_failures 1 and UINT_MAX. */
static void test_breaker_sizes(void **state)
{
    (void)state;
    sluice_fake_clock fc;
    sluice_fake_clock_init(&fc, START);
    unsigned sizes[] = {0, 1, SLUICE_BREAKER_WINDOW_MAX};
    for (int i = 0; i < 3; i++) {
        sluice_breaker_config cfg;
        sluice_breaker_config_init(&cfg);
        cfg.window_size = sizes[i];
        cfg.consecutive_disabled = true;
        cfg.minimum_calls = 1;
        sluice_breaker *b = make_breaker(&cfg, &fc);
        uint64_t t;
        assert_int_equal(sluice_breaker_allow(b, &t), SLUICE_OK);
        assert_int_equal(sluice_breaker_record(b, t, SLUICE_BREAKER_FAILURE), SLUICE_OK);
        assert_int_equal(sluice_breaker_state_get(b), SLUICE_BREAKER_OPEN); /* 100% of 1 call */
        sluice_breaker_destroy(b);
    }
    sluice_breaker_config cfg;
    sluice_breaker_config_init(&cfg);
    cfg.window_size = SLUICE_BREAKER_WINDOW_MAX + 1;
    sluice_breaker *b = NULL;
    char err[160] = "";
    assert_int_equal(sluice_breaker_create(&cfg, &b, err, sizeof err), SLUICE_EINVAL);
    assert_non_null(strstr(err, "window_size"));

    sluice_breaker_config_init(&cfg);
    cfg.rate_disabled = true;
    cfg.consecutive_failures = UINT32_MAX;
    b = make_breaker(&cfg, &fc);
    for (int i = 0; i < 1000; i++) {
        uint64_t t;
        assert_int_equal(sluice_breaker_allow(b, &t), SLUICE_OK);
        assert_int_equal(sluice_breaker_record(b, t, SLUICE_BREAKER_FAILURE), SLUICE_OK);
    }
    assert_int_equal(sluice_breaker_state_get(b), SLUICE_BREAKER_CLOSED);
    sluice_breaker_destroy(b);
    assert_int_equal(sluice_breaker_allow(NULL, NULL), SLUICE_EINVAL);
    assert_int_equal(sluice_breaker_record(NULL, 0, SLUICE_BREAKER_SUCCESS), SLUICE_EINVAL);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_sem_capacity_extremes),
        cmocka_unit_test(test_sem_n_extremes),
        cmocka_unit_test(test_sem_set_capacity_extremes),
        cmocka_unit_test(test_sem_deadline_extremes),
        cmocka_unit_test(test_ctx_timeout_extremes),
        cmocka_unit_test(test_ctx_deadline_extremes),
        cmocka_unit_test(test_ctx_wait_extremes),
        cmocka_unit_test(test_limiter_config_extremes),
        cmocka_unit_test(test_limiter_n_extremes),
        cmocka_unit_test(test_limiter_tiny_rate_saturates),
        cmocka_unit_test(test_breaker_open_duration_extremes),
        cmocka_unit_test(test_breaker_half_open_wait_extremes),
        cmocka_unit_test(test_breaker_sizes),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
