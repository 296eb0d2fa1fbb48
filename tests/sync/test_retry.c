/*
 * tests/sync/test_retry.c - retries: config messages; the backoff steps
 * and the jitter distributions (Kolmogorov-Smirnov against the uniform
 * law each jitter promises, with a fixed seed, and a negative control
 * that the test can fail); the budget's window bound under a downstream
 * failing 100%, checked at every grant; the sync call (attempt limit,
 * predicate, deadline never slept past, cancel ending a backoff); the pool
 * call (resubmitted, not slept on a worker; attempt numbers; panics; pool
 * hand-backs; the retrier's destroy); and a pool-level run against a
 * downstream failing 100% where the budget holds the attempts down.
 *
 * Time is a fake clock everywhere; waits are condition variables with a
 * safety timeout that re-check their condition every millisecond.
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
#include <time.h>

#include <cmocka.h>

#include "common/wait.h"
#include "sluice/retry.h"
#include "sluice/sync_metrics.h"
#include "sluice/task.h"
#include "sync/bg_call.h"
#include "sync/exposition.h"

#define MS SLUICE_NS_PER_MS
#define SEC SLUICE_NS_PER_SEC

/* ---- waiting for a condition ---------------------------------------------------- */

static sluice_retry_stats rstats(sluice_retry *r)
{
    sluice_retry_stats st;
    sluice_retry_stats_get(r, &st);
    return st;
}

static sluice_retry *make_retry(sluice_retry_config *cfg)
{
    sluice_retry *r = NULL;
    char err[160] = "";
    sluice_err e = sluice_retry_create(cfg, &r, err, sizeof err);
    if (e) {
        fail_msg("sluice_retry_create: %s", err);
    }
    return r;
}

static sluice_pool *make_pool(unsigned k, sluice_fake_clock *fc)
{
    sluice_pool_config pc;
    sluice_pool_config_init(&pc);
    pc.name = "retry_test";
    pc.workers = k;
    pc.queue_capacity = 1024;
    pc.clock = fc ? &fc->clock : NULL;
    sluice_pool *p = NULL;
    char err[160];
    assert_int_equal(sluice_pool_create(&pc, &p, err, sizeof err), SLUICE_OK);
    return p;
}

static int plain_task(void *arg);
static void done_record(const sluice_retry_result *res, void *arg);

/* ---- config ---------------------------------------------------------------------- */

static void test_config(void **state)
{
    (void)state;
    char err[160];
    sluice_retry *r = NULL;
    sluice_retry_config cfg;
    sluice_retry_config_init(&cfg);
    cfg.max_attempts = 5000;
    assert_int_equal(sluice_retry_create(&cfg, &r, err, sizeof err), SLUICE_EINVAL);
    assert_string_equal(err, "max_attempts: must be <= 1000, got 5000");
    cfg.max_attempts = SLUICE_RETRY_MAX_ATTEMPTS; /* the maximum is accepted */
    cfg.backoff.base_ns = 2 * SEC;
    cfg.backoff.max_ns = SEC;
    assert_int_equal(sluice_retry_create(&cfg, &r, err, sizeof err), SLUICE_EINVAL);
    assert_non_null(strstr(err, "backoff.base_ns: must be <= backoff.max_ns"));
    cfg.backoff.base_ns = 0;
    cfg.backoff.multiplier = 0.5;
    assert_int_equal(sluice_retry_create(&cfg, &r, err, sizeof err), SLUICE_EINVAL);
    assert_non_null(strstr(err, "backoff.multiplier"));
    cfg.backoff.multiplier = 0;
    cfg.backoff.jitter = SLUICE_JITTER_COUNT_;
    assert_int_equal(sluice_retry_create(&cfg, &r, err, sizeof err), SLUICE_EINVAL);
    cfg.backoff.jitter = SLUICE_JITTER_FULL;
    cfg.name = "bad name";
    assert_int_equal(sluice_retry_create(&cfg, &r, err, sizeof err), SLUICE_EINVAL);
    assert_non_null(strstr(err, "name:"));
    cfg.name = NULL;
    sluice_fake_clock fc;
    sluice_fake_clock_init(&fc, SEC);
    sluice_pool *pool = make_pool(1, NULL);
    cfg.pool = pool;
    cfg.clock = &fc.clock;
    assert_int_equal(sluice_retry_create(&cfg, &r, err, sizeof err), SLUICE_EINVAL);
    assert_non_null(strstr(err, "clock: differs from the pool's clock"));
    cfg.clock = NULL;
    assert_int_equal(sluice_retry_create(&cfg, &r, err, sizeof err), SLUICE_OK);
    assert_string_equal(sluice_retry_name(r), "retry");
    sluice_retry_destroy(r);
    sluice_retry_destroy(NULL);
    sluice_pool_destroy(pool);

    /* No pool: submit is refused. */
    sluice_retry_config_init(&cfg);
    r = make_retry(&cfg);
    assert_int_equal(sluice_retry_submit(r, NULL, plain_task, NULL, done_record), SLUICE_EINVAL);
    assert_int_equal(sluice_retry_call(r, NULL, NULL, NULL, NULL), SLUICE_EINVAL);
    sluice_retry_destroy(r);

    sluice_retry_budget_config bc;
    sluice_retry_budget_config_init(&bc);
    sluice_retry_budget *b = NULL;
    bc.ratio = -1;
    assert_int_equal(sluice_retry_budget_create(&bc, &b, err, sizeof err), SLUICE_EINVAL);
    assert_string_equal(err, "ratio: must be finite and in [0, 1000], got -1");
    bc.ratio = NAN;
    assert_int_equal(sluice_retry_budget_create(&bc, &b, err, sizeof err), SLUICE_EINVAL);
    bc.ratio = 1000; /* the maximum */
    bc.min_per_sec = -0.5;
    assert_int_equal(sluice_retry_budget_create(&bc, &b, err, sizeof err), SLUICE_EINVAL);
    assert_non_null(strstr(err, "min_per_sec"));
    bc.min_per_sec = 0;
    bc.window_ns = MS;
    assert_int_equal(sluice_retry_budget_create(&bc, &b, err, sizeof err), SLUICE_EINVAL);
    assert_non_null(strstr(err, "window_ns: must be in [10 ms, 1 hour]"));
    bc.window_ns = 0;
    assert_int_equal(sluice_retry_budget_create(&bc, &b, err, sizeof err), SLUICE_OK);
    assert_string_equal(sluice_retry_budget_name(b), "retry_budget");
    sluice_retry_budget_stats bs;
    sluice_retry_budget_stats_get(b, &bs);
    assert_int_equal(bs.window_ns, 10 * SEC);
    sluice_retry_budget_destroy(b);
    sluice_retry_budget_destroy(NULL);

    assert_string_equal(sluice_jitter_name(SLUICE_JITTER_DECORRELATED), "decorrelated");
    assert_string_equal(sluice_jitter_name(SLUICE_JITTER_COUNT_), "unknown");
    assert_string_equal(sluice_retry_outcome_name(SLUICE_RETRY_BUDGET), "budget");
    assert_string_equal(sluice_retry_outcome_name(SLUICE_RETRY_OUTCOME_COUNT_), "unknown");
}

/* ---- backoff --------------------------------------------------------------------- */

static void test_backoff_steps(void **state)
{
    (void)state;
    sluice_backoff b = {.base_ns = 100 * MS, .max_ns = 1 * SEC, .jitter = SLUICE_JITTER_NONE};
    uint64_t rng = 1;
    assert_int_equal(sluice_backoff_next(&b, 1, 0, &rng), 100 * MS);
    assert_int_equal(sluice_backoff_next(&b, 2, 0, &rng), 200 * MS);
    assert_int_equal(sluice_backoff_next(&b, 4, 0, &rng), 800 * MS);
    assert_int_equal(sluice_backoff_next(&b, 5, 0, &rng), 1 * SEC);   /* capped */
    assert_int_equal(sluice_backoff_next(&b, 999, 0, &rng), 1 * SEC); /* no overflow */
    b.multiplier = 1;
    assert_int_equal(sluice_backoff_next(&b, 7, 0, &rng), 100 * MS);
    /* Zero fields take the defaults: 100 ms, x2, 10 s, FULL. */
    sluice_backoff dflt = {0};
    for (int i = 0; i < 1000; i++) {
        assert_true(sluice_backoff_next(&dflt, 1, 0, &rng) < 100 * MS);
        assert_true(sluice_backoff_next(&dflt, 60, 0, &rng) < 10 * SEC);
    }
    /* The same seed gives the same sleeps. */
    uint64_t s1 = 42, s2 = 42;
    b.jitter = SLUICE_JITTER_DECORRELATED;
    uint64_t p1 = 0, p2 = 0;
    for (int i = 1; i < 50; i++) {
        p1 = sluice_backoff_next(&b, (unsigned)i, p1, &s1);
        p2 = sluice_backoff_next(&b, (unsigned)i, p2, &s2);
        assert_int_equal(p1, p2);
        assert_true(p1 >= 100 * MS && p1 <= 1 * SEC);
    }
}

static int cmp_double(const void *a, const void *b)
{
    double x = *(const double *)a, y = *(const double *)b;
    return (x > y) - (x < y);
}

/* The Kolmogorov-Smirnov statistic of u[0..n) against U(0,1). */
static double ks_uniform(double *u, size_t n)
{
    qsort(u, n, sizeof *u, cmp_double);
    double d = 0;
    for (size_t i = 0; i < n; i++) {
        double lo = u[i] - (double)i / (double)n, hi = (double)(i + 1) / (double)n - u[i];
        d = fmax(d, fmax(lo, hi));
    }
    return d;
}

#define KS_N 20000
/* The critical value at alpha = 0.001 is 1.95 / sqrt(n). */
#define KS_CRIT (1.95 / sqrt((double)KS_N))

static void test_jitter_distributions(void **state)
{
    (void)state;
    double *u = malloc(KS_N * sizeof *u);
    assert_non_null(u);
    uint64_t rng = 0x5eed;
    const uint64_t base = 10 * MS, max = 60 * SEC;

    /* FULL: retry 4 sleeps uniformly in [0, base * 2^3). */
    sluice_backoff full = {.base_ns = base, .max_ns = max, .jitter = SLUICE_JITTER_FULL};
    double sum = 0;
    for (size_t i = 0; i < KS_N; i++) {
        uint64_t d = sluice_backoff_next(&full, 4, 0, &rng);
        assert_true(d < 8 * base);
        u[i] = (double)d / (double)(8 * base);
        sum += u[i];
    }
    double mean = sum / KS_N;
    assert_true(fabs(mean - 0.5) < 0.01);
    double dfull = ks_uniform(u, KS_N);
    assert_true(dfull < KS_CRIT);

    /* Negative control: EQUAL draws are not U(0, step), and the same test
     * says so (it can fail). */
    sluice_backoff equal = full;
    equal.jitter = SLUICE_JITTER_EQUAL;
    for (size_t i = 0; i < KS_N; i++) {
        u[i] = (double)sluice_backoff_next(&equal, 4, 0, &rng) / (double)(8 * base);
    }
    assert_true(ks_uniform(u, KS_N) > 10 * KS_CRIT);
    /* ...but they are U(step/2, step). */
    for (size_t i = 0; i < KS_N; i++) {
        uint64_t d = sluice_backoff_next(&equal, 4, 0, &rng);
        assert_true(d >= 4 * base && d < 8 * base);
        u[i] = (double)(d - 4 * base) / (double)(4 * base);
    }
    assert_true(ks_uniform(u, KS_N) < KS_CRIT);

    /* DECORRELATED: given the previous sleep p, uniform in [base, 3p). */
    sluice_backoff dec = full;
    dec.jitter = SLUICE_JITTER_DECORRELATED;
    const uint64_t prev = 70 * MS;
    for (size_t i = 0; i < KS_N; i++) {
        uint64_t d = sluice_backoff_next(&dec, 3, prev, &rng);
        assert_true(d >= base && d < 3 * prev);
        u[i] = (double)(d - base) / (double)(3 * prev - base);
    }
    assert_true(ks_uniform(u, KS_N) < KS_CRIT);
    /* The chain from the first retry (prev = base) stays in [base, max]
     * and its median grows while far below the cap. */
    uint64_t p = 0, first = 0;
    for (int i = 1; i <= 8; i++) {
        p = sluice_backoff_next(&dec, (unsigned)i, p, &rng);
        assert_true(p >= base && p <= max);
        if (i == 1) {
            first = p;
            assert_true(first < 3 * base);
        }
    }
    /* Capped: with max below 3p the sleep is max whenever the draw exceeds it. */
    sluice_backoff capped = dec;
    capped.max_ns = 50 * MS;
    size_t at_cap = 0;
    for (size_t i = 0; i < KS_N; i++) {
        uint64_t d = sluice_backoff_next(&capped, 3, prev, &rng);
        assert_true(d >= base && d <= 50 * MS);
        at_cap += d == 50 * MS;
    }
    /* P(draw >= 50 ms) = (210 - 50) / (210 - 10) = 0.8. */
    assert_true(fabs((double)at_cap / KS_N - 0.8) < 0.02);
    free(u);
}

/* ---- the budget ------------------------------------------------------------------ */

/* Grants recorded with their times, to check the window bound afterwards. */
typedef struct evlog {
    uint64_t *t;
    size_t n, cap;
} evlog;

static void evlog_add(evlog *l, uint64_t t)
{
    if (l->n == l->cap) {
        l->cap = l->cap ? l->cap * 2 : 1024;
        l->t = realloc(l->t, l->cap * sizeof *l->t);
        assert_non_null(l->t);
    }
    l->t[l->n++] = t;
}

static uint64_t xorshift(uint64_t *s)
{
    uint64_t x = *s;
    x ^= x << 13;
    x ^= x >> 7;
    x ^= x << 17;
    return *s = x;
}

/* Events of l with slot number in [lo, hi]. */
static uint64_t evlog_count(const evlog *l, uint64_t slot_ns, uint64_t lo, uint64_t hi)
{
    uint64_t n = 0;
    for (size_t i = 0; i < l->n; i++) {
        uint64_t s = l->t[i] / slot_ns;
        n += s >= lo && s <= hi;
    }
    return n;
}

static void test_budget_window_bound(void **state)
{
    (void)state;
    sluice_fake_clock fc;
    sluice_fake_clock_init(&fc, 1000 * SEC);
    sluice_retry_budget_config bc;
    sluice_retry_budget_config_init(&bc);
    bc.name = "payments";
    bc.ratio = 0.2;
    bc.min_per_sec = 5;
    bc.window_ns = SEC;
    bc.clock = &fc.clock;
    sluice_retry_budget *b;
    assert_int_equal(sluice_retry_budget_create(&bc, &b, NULL, 0), SLUICE_OK);

    /* The floor is there before any traffic: 5/s over 1 s. */
    for (int i = 0; i < 5; i++) {
        assert_true(sluice_retry_budget_withdraw(b));
    }
    assert_false(sluice_retry_budget_withdraw(b));
    sluice_fake_clock_advance(&fc, 2 * SEC); /* the window forgets them */

    /* A downstream failing 100%: a varying load of first attempts, each
     * wanting up to 4 retries. Record every deposit and grant. */
    evlog firsts = {0}, grants = {0};
    uint64_t wanted = 0, refused = 0;
    const uint64_t slot = SEC / 10;
    uint64_t rng = 7;
    for (int step = 0; step < 3000; step++) { /* 30 simulated seconds in 10 ms steps */
        int load = (int)(xorshift(&rng) % 20);
        if (step > 1000 && step < 1500) {
            load = 0; /* a quiet spell: only the floor */
        }
        for (int i = 0; i < load; i++) {
            sluice_retry_budget_deposit(b);
            evlog_add(&firsts, sluice_clock_now(&fc.clock));
            for (int k = 0; k < 4; k++) {
                wanted++;
                if (sluice_retry_budget_withdraw(b)) {
                    evlog_add(&grants, sluice_clock_now(&fc.clock));
                } else {
                    refused++;
                }
            }
        }
        if (step > 1000 && step < 1500 && step % 7 == 0) {
            wanted++;
            if (sluice_retry_budget_withdraw(b)) {
                evlog_add(&grants, sluice_clock_now(&fc.clock));
            } else {
                refused++;
            }
        }
        sluice_fake_clock_advance(&fc, 10 * MS);
    }
    /* The bound, over every window of 10 slots ending at a slot with a grant. */
    for (size_t i = 0; i < grants.n; i++) {
        uint64_t s = grants.t[i] / slot;
        uint64_t r = evlog_count(&grants, slot, s - 9, s);
        uint64_t f = evlog_count(&firsts, slot, s - 9, s);
        if ((double)r > 0.2 * (double)f + 5.0 + 1e-9) {
            fail_msg("window ending at slot %llu: %llu retries > 0.2 * %llu + 5", (unsigned long long)s,
                     (unsigned long long)r, (unsigned long long)f);
        }
    }
    /* And overall: far below the 4 retries per first attempt asked for. */
    assert_true(grants.n <= 0.2 * (double)firsts.n + 5.0 * 31 + 1);
    assert_true(grants.n >= 0.15 * (double)firsts.n); /* the budget is used, not just refused */
    sluice_retry_budget_stats bs;
    sluice_retry_budget_stats_get(b, &bs);
    assert_int_equal(bs.first_attempts, firsts.n);
    assert_int_equal(bs.retries, grants.n + 5);
    assert_int_equal(bs.exhausted, refused + 1);
    assert_int_equal(bs.retries + bs.exhausted, wanted + 6);
    free(firsts.t);
    free(grants.t);
    sluice_retry_budget_destroy(b);
}

/* ---- the sync call --------------------------------------------------------------- */

typedef struct flaky {
    int fail_first; /* attempts that fail before one succeeds; -1 = always */
    int rc;         /* what a failure returns */
    _Atomic int calls;
    unsigned seen_attempt[16];
    sluice_fake_clock *fc;
    uint64_t latency_ns; /* each attempt advances the fake clock this much */
} flaky;

static int flaky_fn(void *arg)
{
    flaky *f = arg;
    int n = atomic_fetch_add(&f->calls, 1);
    if (n < 16) {
        f->seen_attempt[n] = sluice_retry_attempt();
    }
    if (f->fc && f->latency_ns) {
        sluice_fake_clock_advance(f->fc, f->latency_ns);
    }
    ev_signal();
    return (f->fail_first < 0 || n < f->fail_first) ? f->rc : 0;
}

static bool only_503(int rc, void *user)
{
    (void)user;
    return rc == 503;
}

static void test_call_basics(void **state)
{
    (void)state;
    /* The system clock with microsecond backoffs: the call sleeps briefly,
     * the test never does. */
    sluice_retry_config cfg;
    sluice_retry_config_init(&cfg);
    cfg.name = "basics";
    cfg.max_attempts = 4;
    cfg.backoff.base_ns = 1000;
    cfg.backoff.max_ns = 10000;
    cfg.retryable = only_503;
    sluice_retry *r = make_retry(&cfg);

    flaky f = {.fail_first = 2, .rc = 503};
    sluice_retry_result res;
    assert_int_equal(sluice_retry_call(r, NULL, flaky_fn, &f, &res), SLUICE_OK);
    assert_int_equal(res.outcome, SLUICE_RETRY_SUCCESS);
    assert_int_equal(res.attempts, 3);
    assert_int_equal(f.seen_attempt[0], 1);
    assert_int_equal(f.seen_attempt[2], 3);
    assert_int_equal(sluice_retry_attempt(), 0); /* outside an attempt */

    flaky always = {.fail_first = -1, .rc = 503};
    assert_int_equal(sluice_retry_call(r, NULL, flaky_fn, &always, &res), SLUICE_ETASK);
    assert_int_equal(res.outcome, SLUICE_RETRY_EXHAUSTED);
    assert_int_equal(res.attempts, 4);
    assert_int_equal(res.last_rc, 503);
    assert_int_equal(always.calls, 4);

    flaky client_err = {.fail_first = -1, .rc = 400};
    assert_int_equal(sluice_retry_call(r, NULL, flaky_fn, &client_err, &res), SLUICE_ETASK);
    assert_int_equal(res.outcome, SLUICE_RETRY_NOT_RETRYABLE);
    assert_int_equal(res.attempts, 1);
    assert_int_equal(res.last_rc, 400);

    /* A context already done: no attempt. */
    sluice_ctx *ctx;
    assert_int_equal(sluice_ctx_create(&ctx, NULL, 0, NULL), SLUICE_OK);
    sluice_ctx_cancel(ctx, SLUICE_ECANCELED);
    flaky never = {.fail_first = 0};
    assert_int_equal(sluice_retry_call(r, ctx, flaky_fn, &never, &res), SLUICE_ECANCELED);
    assert_int_equal(res.outcome, SLUICE_RETRY_CANCELED);
    assert_int_equal(res.attempts, 0);
    assert_int_equal(never.calls, 0);
    sluice_ctx_release(ctx);

    sluice_retry_stats st = rstats(r);
    assert_int_equal(st.calls, 4);
    assert_int_equal(st.attempts, 3 + 4 + 1);
    assert_int_equal(st.retries, 2 + 3);
    assert_int_equal(st.outcomes[SLUICE_RETRY_SUCCESS], 1);
    assert_int_equal(st.outcomes[SLUICE_RETRY_EXHAUSTED], 1);
    assert_int_equal(st.outcomes[SLUICE_RETRY_NOT_RETRYABLE], 1);
    assert_int_equal(st.outcomes[SLUICE_RETRY_CANCELED], 1);
    assert_int_equal(st.in_flight, 0);
    sluice_retry_destroy(r);

    /* max_attempts 1: never retry. */
    sluice_retry_config_init(&cfg);
    cfg.max_attempts = 1;
    r = make_retry(&cfg);
    flaky once = {.fail_first = -1, .rc = 7};
    assert_int_equal(sluice_retry_call(r, NULL, flaky_fn, &once, &res), SLUICE_ETASK);
    assert_int_equal(res.outcome, SLUICE_RETRY_EXHAUSTED);
    assert_int_equal(once.calls, 1);
    sluice_retry_destroy(r);
}

static void test_call_deadline_never_slept_past(void **state)
{
    (void)state;
    sluice_fake_clock fc;
    sluice_fake_clock_init(&fc, 100 * SEC);
    sluice_retry_config cfg;
    sluice_retry_config_init(&cfg);
    cfg.max_attempts = 10;
    cfg.backoff.base_ns = 400 * MS;
    cfg.backoff.jitter = SLUICE_JITTER_NONE;
    cfg.call_timeout_ns = 1 * SEC;
    cfg.clock = &fc.clock;
    sluice_retry *r = make_retry(&cfg);
    /* Each attempt takes 700 ms: after the first, 700 + 400 >= 1000, so the
     * call gives up at once instead of sleeping (nobody advances the clock
     * here: a sleep would hang the test). */
    flaky f = {.fail_first = -1, .rc = 1, .fc = &fc, .latency_ns = 700 * MS};
    sluice_retry_result res;
    assert_int_equal(sluice_retry_call(r, NULL, flaky_fn, &f, &res), SLUICE_ETIMEDOUT);
    assert_int_equal(res.outcome, SLUICE_RETRY_DEADLINE);
    assert_int_equal(res.attempts, 1);
    assert_int_equal(res.elapsed_ns, 700 * MS);

    /* The context's deadline counts the same way. */
    sluice_ctx *ctx;
    assert_int_equal(sluice_ctx_with_timeout(&ctx, NULL, 500 * MS, &fc.clock), SLUICE_OK);
    flaky g = {.fail_first = -1, .rc = 1, .fc = &fc, .latency_ns = 200 * MS};
    assert_int_equal(sluice_retry_call(r, ctx, flaky_fn, &g, &res), SLUICE_ETIMEDOUT);
    assert_int_equal(res.outcome, SLUICE_RETRY_DEADLINE);
    assert_int_equal(res.attempts, 1);
    sluice_ctx_release(ctx);
    sluice_retry_destroy(r);
}

typedef struct caller {
    sluice_retry *r;
    sluice_ctx *ctx;
    flaky *f;
    sluice_retry_result res;
} caller;

static sluice_err retry_call(void *arg)
{
    caller *c = arg;
    return sluice_retry_call(c->r, c->ctx, flaky_fn, c->f, &c->res);
}

static bool waiting_is(void *arg)
{
    void **a = arg;
    return rstats(a[0]).waiting == (uint64_t)(uintptr_t)a[1];
}

static bool all_ended(void *arg)
{
    return rstats(arg).in_flight == 0;
}

static bool calls_at_least_2(void *arg)
{
    return atomic_load(&((flaky *)arg)->calls) >= 2;
}

static bool calls_at_least_1(void *arg)
{
    return atomic_load(&((flaky *)arg)->calls) >= 1;
}

static void test_call_sleeps_on_the_clock(void **state)
{
    (void)state;
    sluice_fake_clock fc;
    sluice_fake_clock_init(&fc, 100 * SEC);
    sluice_retry_config cfg;
    sluice_retry_config_init(&cfg);
    cfg.max_attempts = 3;
    cfg.backoff.base_ns = 100 * MS;
    cfg.backoff.jitter = SLUICE_JITTER_NONE;
    cfg.clock = &fc.clock;
    sluice_retry *r = make_retry(&cfg);

    flaky f = {.fail_first = 1, .rc = 1};
    caller c = {.r = r, .f = &f};
    bg_call call;
    bg_call_start(&call, retry_call, &c);
    void *w1[2] = {r, (void *)(uintptr_t)1};
    wait_until(waiting_is, w1, "the caller to back off");
    sluice_fake_clock_advance(&fc, 99 * MS);
    assert_int_equal(atomic_load(&f.calls), 1); /* still backing off */
    sluice_fake_clock_advance(&fc, 1 * MS);
    assert_int_equal(bg_call_finish(&call, "the retry"), SLUICE_OK);
    assert_int_equal(c.res.attempts, 2);
    assert_int_equal(c.res.elapsed_ns, 100 * MS);

    /* A cancel ends the backoff at once, whatever the clock says. */
    cfg.backoff.base_ns = 10 * SEC;
    sluice_retry *slow = make_retry(&cfg);
    sluice_ctx *ctx;
    assert_int_equal(sluice_ctx_create(&ctx, NULL, 0, &fc.clock), SLUICE_OK);
    flaky g = {.fail_first = -1, .rc = 1};
    caller c2 = {.r = slow, .ctx = ctx, .f = &g};
    bg_call_start(&call, retry_call, &c2);
    wait_until(calls_at_least_1, &g, "the first attempt");
    sluice_ctx_cancel(ctx, SLUICE_ECANCELED);
    assert_int_equal(bg_call_finish(&call, "the cancelled call"), SLUICE_ECANCELED);
    assert_int_equal(c2.res.outcome, SLUICE_RETRY_CANCELED);
    assert_int_equal(c2.res.attempts, 1);
    assert_int_equal(atomic_load(&g.calls), 1);
    sluice_ctx_release(ctx);
    sluice_retry_destroy(slow);
    sluice_retry_destroy(r);
}

/* ---- the pool call --------------------------------------------------------------- */

typedef struct done_log {
    _Atomic int n;
    sluice_retry_result last;
    pthread_mutex_t mu;
    int by_outcome[SLUICE_RETRY_OUTCOME_COUNT_];
} done_log;

static done_log dlog;

static void done_record(const sluice_retry_result *res, void *arg)
{
    (void)arg;
    pthread_mutex_lock(&dlog.mu);
    dlog.last = *res;
    dlog.by_outcome[res->outcome]++;
    pthread_mutex_unlock(&dlog.mu);
    atomic_fetch_add(&dlog.n, 1);
    ev_signal();
}

static void dlog_reset(void)
{
    pthread_mutex_lock(&dlog.mu);
    memset(&dlog.last, 0, sizeof dlog.last);
    memset(dlog.by_outcome, 0, sizeof dlog.by_outcome);
    pthread_mutex_unlock(&dlog.mu);
    atomic_store(&dlog.n, 0);
}

static bool dlog_at_least(void *arg)
{
    return atomic_load(&dlog.n) >= *(int *)arg;
}

static _Atomic int plain_ran;

static int plain_task(void *arg)
{
    (void)arg;
    atomic_fetch_add(&plain_ran, 1);
    ev_signal();
    return 0;
}

static bool plain_ran_once(void *arg)
{
    (void)arg;
    return atomic_load(&plain_ran) >= 1;
}

static void test_submit_resubmits(void **state)
{
    (void)state;
    pthread_mutex_init(&dlog.mu, NULL);
    dlog_reset();
    sluice_fake_clock fc;
    sluice_fake_clock_init(&fc, 100 * SEC);
    sluice_pool *pool = make_pool(1, &fc); /* K = 1: a sleeping worker would block everything */
    sluice_retry_config cfg;
    sluice_retry_config_init(&cfg);
    cfg.name = "resubmit";
    cfg.max_attempts = 3;
    cfg.backoff.base_ns = 5 * SEC;
    cfg.backoff.jitter = SLUICE_JITTER_NONE;
    cfg.pool = pool;
    sluice_retry *r = make_retry(&cfg);

    flaky f = {.fail_first = 2, .rc = 1};
    assert_int_equal(sluice_retry_submit(r, NULL, flaky_fn, &f, done_record), SLUICE_OK);
    void *w1[2] = {r, (void *)(uintptr_t)1};
    wait_until(waiting_is, w1, "the first retry to be scheduled");
    /* The only worker is free during the backoff: another task runs. */
    assert_int_equal(sluice_pool_submit(pool, plain_task, NULL), SLUICE_OK);
    wait_until(plain_ran_once, NULL, "a task to run during the backoff");
    assert_int_equal(atomic_load(&f.calls), 1);
    sluice_fake_clock_advance(&fc, 5 * SEC);
    wait_until(calls_at_least_2, &f, "the second attempt");
    wait_until(waiting_is, w1, "the second retry to be scheduled");
    sluice_fake_clock_advance(&fc, 10 * SEC); /* the second backoff is 10 s */
    int one = 1;
    wait_until(dlog_at_least, &one, "the call to end");
    assert_int_equal(dlog.last.outcome, SLUICE_RETRY_SUCCESS);
    assert_int_equal(dlog.last.attempts, 3);
    assert_int_equal(dlog.last.elapsed_ns, 15 * SEC);
    assert_int_equal(f.seen_attempt[0], 1);
    assert_int_equal(f.seen_attempt[1], 2);
    assert_int_equal(f.seen_attempt[2], 3);

    wait_until(all_ended, r, "the call to leave"); /* done runs just before */
    sluice_retry_stats st = rstats(r);
    assert_int_equal(st.calls, 1);
    assert_int_equal(st.attempts, 3);
    assert_int_equal(st.retries, 2);
    assert_int_equal(st.waiting, 0);
    assert_int_equal(st.in_flight, 0);
    /* The pool counted each attempt: two failed, one completed. */
    sluice_pool_stats ps;
    sluice_pool_drain(pool, 0, NULL);
    sluice_pool_stats_get(pool, &ps);
    assert_int_equal(ps.failed, 2);
    assert_int_equal(ps.completed, 2); /* the third attempt and plain_task */
    sluice_retry_destroy(r);
    sluice_pool_destroy(pool);
}

static int panic_fn(void *arg)
{
    (void)arg;
    sluice_panic("attempt exploded");
}

static void quiet_panic(const sluice_panic_info *info, void *user)
{
    (void)info;
    (void)user;
}

static void test_submit_endings(void **state)
{
    (void)state;
    pthread_mutex_init(&dlog.mu, NULL);
    dlog_reset();
    sluice_fake_clock fc;
    sluice_fake_clock_init(&fc, 100 * SEC);
    sluice_pool_config pc;
    sluice_pool_config_init(&pc);
    pc.name = "endings";
    pc.workers = 2;
    pc.queue_capacity = 16;
    pc.clock = &fc.clock;
    pc.panic_handler = quiet_panic;
    sluice_pool *pool;
    assert_int_equal(sluice_pool_create(&pc, &pool, NULL, 0), SLUICE_OK);
    sluice_retry_config cfg;
    sluice_retry_config_init(&cfg);
    cfg.max_attempts = 5;
    cfg.backoff.base_ns = SEC;
    cfg.backoff.jitter = SLUICE_JITTER_NONE;
    cfg.pool = pool;
    sluice_retry *r = make_retry(&cfg);

    /* A panic is not retried. */
    assert_int_equal(sluice_retry_submit(r, NULL, panic_fn, NULL, done_record), SLUICE_OK);
    int n = 1;
    wait_until(dlog_at_least, &n, "the panicked call");
    assert_int_equal(dlog.last.outcome, SLUICE_RETRY_PANICKED);
    assert_int_equal(dlog.last.err, SLUICE_ETASK);
    assert_int_equal(dlog.last.attempts, 1);

    /* A done context at submit: refused, done never runs. */
    sluice_ctx *dead;
    assert_int_equal(sluice_ctx_create(&dead, NULL, 0, &fc.clock), SLUICE_OK);
    sluice_ctx_cancel(dead, SLUICE_ECANCELED);
    flaky never = {.fail_first = 0};
    assert_int_equal(sluice_retry_submit(r, dead, flaky_fn, &never, done_record), SLUICE_ECANCELED);
    sluice_ctx_release(dead);

    /* A context cancelled during the backoff: the retry is not attempted. */
    sluice_ctx *ctx;
    assert_int_equal(sluice_ctx_create(&ctx, NULL, 0, &fc.clock), SLUICE_OK);
    flaky f = {.fail_first = -1, .rc = 1};
    assert_int_equal(sluice_retry_submit(r, ctx, flaky_fn, &f, done_record), SLUICE_OK);
    void *w1[2] = {r, (void *)(uintptr_t)1};
    wait_until(waiting_is, w1, "the retry to be scheduled");
    sluice_ctx_cancel(ctx, SLUICE_ECANCELED);
    sluice_fake_clock_advance(&fc, SEC);
    n = 2;
    wait_until(dlog_at_least, &n, "the cancelled call");
    assert_int_equal(dlog.last.outcome, SLUICE_RETRY_CANCELED);
    assert_int_equal(dlog.last.err, SLUICE_ECANCELED);
    assert_int_equal(atomic_load(&f.calls), 1);
    sluice_ctx_release(ctx);

    /* Destroying the retrier ends a waiting retry with REFUSED/ECLOSED. */
    flaky g = {.fail_first = -1, .rc = 1};
    assert_int_equal(sluice_retry_submit(r, NULL, flaky_fn, &g, done_record), SLUICE_OK);
    wait_until(waiting_is, w1, "the retry to be scheduled");
    sluice_retry_destroy(r);
    assert_int_equal(atomic_load(&dlog.n), 3);
    assert_int_equal(dlog.last.outcome, SLUICE_RETRY_REFUSED);
    assert_int_equal(dlog.last.err, SLUICE_ECLOSED);
    assert_int_equal(dlog.last.attempts, 1);
    sluice_pool_destroy(pool);
}

/* A retry that is queued when the pool is destroyed comes back as REFUSED. */
static gate hold;

static void *opener(void *arg)
{
    (void)arg;
    /* Opens the gate once destroy has handed back the queue (it waits for
     * the running task next). */
    if (!wait_until_bg(dlog_at_least, &(int){1})) {
        fprintf(stderr, "opener: the hand-back never came\n");
    }
    gate_open(&hold);
    return NULL;
}

static void test_submit_pool_hands_back(void **state)
{
    (void)state;
    pthread_mutex_init(&dlog.mu, NULL);
    dlog_reset();
    sluice_pool *pool = make_pool(1, NULL);
    sluice_retry_config cfg;
    sluice_retry_config_init(&cfg);
    cfg.pool = pool;
    sluice_retry *r = make_retry(&cfg);
    gate_init(&hold);
    assert_int_equal(sluice_pool_submit(pool, task_at_gate, &hold), SLUICE_OK);
    GATE_WAIT_ENTERED(&hold, 1);
    flaky f = {.fail_first = 0};
    assert_int_equal(sluice_retry_submit(r, NULL, flaky_fn, &f, done_record), SLUICE_OK);
    pthread_t th;
    pthread_create(&th, NULL, opener, NULL);
    sluice_pool_destroy(pool);
    pthread_join(th, NULL);
    assert_int_equal(atomic_load(&dlog.n), 1);
    assert_int_equal(dlog.last.outcome, SLUICE_RETRY_REFUSED);
    assert_int_equal(dlog.last.err, SLUICE_ECLOSED);
    assert_int_equal(dlog.last.attempts, 0);
    assert_int_equal(atomic_load(&f.calls), 0);
    sluice_retry_destroy(r);
}

/* The pool's drain deadline hands back a queued attempt: the call ends on
 * the retrier's timer thread, never inside the pool's on_abandon (which
 * must not block or call the pool), so a done callback that blocks (until
 * the test lets it go) does not hold the pool's drain. It ran on the
 * draining thread and held the drain for as long as it blocked. */
static gate done_gate;
static pthread_t done_thread;

static void done_blocking(const sluice_retry_result *res, void *arg)
{
    done_thread = pthread_self(); /* read after gate_pass's entered count (seq_cst) */
    done_record(res, arg);
    gate_pass(&done_gate, false);
}

static sluice_err pool_drain_1ns(void *arg)
{
    return sluice_pool_drain(arg, 1, NULL);
}

static void test_done_never_inside_on_abandon(void **state)
{
    (void)state;
    pthread_mutex_init(&dlog.mu, NULL);
    dlog_reset();
    gate_init(&done_gate);
    gate_init(&hold);
    sluice_pool *pool = make_pool(1, NULL);
    sluice_retry_config cfg;
    sluice_retry_config_init(&cfg);
    cfg.pool = pool;
    sluice_retry *r = make_retry(&cfg);
    assert_int_equal(sluice_pool_submit(pool, task_at_gate, &hold), SLUICE_OK);
    GATE_WAIT_ENTERED(&hold, 1);
    flaky f = {.fail_first = 0};
    assert_int_equal(sluice_retry_submit(r, NULL, flaky_fn, &f, done_blocking), SLUICE_OK); /* queued */
    bg_call drain;
    bg_call_start(&drain, pool_drain_1ns, pool); /* the worker is held: the deadline hands it back */
    GATE_WAIT_ENTERED(&done_gate, 1);
    bool inside = pthread_equal(done_thread, drain.thread) != 0;
    if (inside) {
        gate_open(&done_gate); /* let the drain go before failing */
    }
    assert_false(inside);
    assert_int_equal(bg_call_finish(&drain, "the pool's drain, with done blocked"), SLUICE_ETIMEDOUT);
    gate_open(&done_gate);
    assert_int_equal(atomic_load(&dlog.n), 1);
    assert_int_equal(dlog.last.outcome, SLUICE_RETRY_REFUSED);
    assert_int_equal(dlog.last.err, SLUICE_ECLOSED);
    assert_int_equal(dlog.last.attempts, 0);
    assert_int_equal(atomic_load(&f.calls), 0);
    gate_open(&hold);
    sluice_retry_destroy(r); /* waits for the call to end (done returns) */
    sluice_pool_destroy(pool);
    gate_destroy(&hold);
    gate_destroy(&done_gate);
    pthread_mutex_destroy(&dlog.mu);
}

/* A resubmit never waits for the pool's queue, also on a clock that reads
 * 0 (retry.h: the timer thread submits "without ever waiting"): a past
 * submit deadline of "now, or 1 ns at 0" was still ahead there, and the
 * timer thread waited for space until the clock moved. FULL jitter over a
 * 1 ns step is always 0, so the retry is due at once, with the clock at 0.
 * The first attempt shrinks K to 1 (the other worker is held at a gate)
 * and fills the queue's one place, so the retry finds the pool full. */
typedef struct zero_call {
    sluice_pool *pool;
    _Atomic int calls;
    _Atomic int resize_rc, fill_rc;
} zero_call;

static int zero_first_attempt(void *arg)
{
    zero_call *z = arg;
    if (atomic_fetch_add(&z->calls, 1) == 0) {
        atomic_store(&z->resize_rc, (int)sluice_pool_resize(z->pool, 1));
        atomic_store(&z->fill_rc, (int)sluice_pool_try_submit(z->pool, plain_task, NULL));
        return 1; /* retryable */
    }
    return 0;
}

static void test_submit_never_waits_at_clock_zero(void **state)
{
    (void)state;
    pthread_mutex_init(&dlog.mu, NULL);
    dlog_reset();
    atomic_store(&plain_ran, 0);
    sluice_fake_clock fc;
    sluice_fake_clock_init(&fc, 0);
    sluice_pool_config pc;
    sluice_pool_config_init(&pc);
    pc.name = "retry_zero";
    pc.workers = 2;
    pc.queue_capacity = 1;
    pc.overflow = SLUICE_OVERFLOW_BLOCK;
    pc.clock = &fc.clock;
    sluice_pool *pool = NULL;
    char err[160];
    assert_int_equal(sluice_pool_create(&pc, &pool, err, sizeof err), SLUICE_OK);
    gate_init(&hold);
    assert_int_equal(sluice_pool_submit(pool, task_at_gate, &hold), SLUICE_OK);
    GATE_WAIT_ENTERED(&hold, 1);

    sluice_retry_config cfg;
    sluice_retry_config_init(&cfg);
    cfg.name = "zero";
    cfg.max_attempts = 2;
    cfg.backoff.base_ns = 1;
    cfg.backoff.jitter = SLUICE_JITTER_FULL;
    cfg.pool = pool;
    sluice_retry *r = make_retry(&cfg);
    zero_call z = {.pool = pool};
    assert_int_equal(sluice_retry_submit(r, NULL, zero_first_attempt, &z, done_record), SLUICE_OK);
    int one = 1;
    wait_until(dlog_at_least, &one, "the retry refused at once by the full pool (clock at 0)");
    assert_int_equal(atomic_load(&z.resize_rc), SLUICE_OK);
    assert_int_equal(atomic_load(&z.fill_rc), SLUICE_OK);
    assert_int_equal(atomic_load(&z.calls), 1);
    assert_int_equal(dlog.last.outcome, SLUICE_RETRY_REFUSED);
    assert_int_equal(dlog.last.err, SLUICE_EFULL);
    assert_int_equal(dlog.last.attempts, 1);
    assert_int_equal(sluice_clock_now(&fc.clock), 0);

    assert_int_equal(sluice_pool_resize(pool, 2), SLUICE_OK);
    gate_open(&hold);
    assert_int_equal(sluice_pool_drain(pool, 0, NULL), SLUICE_OK);
    assert_int_equal(atomic_load(&plain_ran), 1);
    sluice_retry_destroy(r);
    sluice_pool_destroy(pool);
    gate_destroy(&hold);
}

/* ---- a downstream failing 100%, through the pool, with a budget ------------------- */

static bool quiescent(void *arg)
{
    sluice_retry_stats st = rstats(arg);
    return st.in_flight == st.waiting;
}

static void test_budget_holds_attempts_down(void **state)
{
    (void)state;
    pthread_mutex_init(&dlog.mu, NULL);
    dlog_reset();
    sluice_fake_clock fc;
    sluice_fake_clock_init(&fc, 100 * SEC);
    sluice_pool *pool = make_pool(4, &fc);
    sluice_retry_budget_config bc;
    sluice_retry_budget_config_init(&bc);
    bc.ratio = 0.1;
    bc.min_per_sec = 2;
    bc.window_ns = SEC;
    bc.clock = &fc.clock;
    sluice_retry_budget *budget;
    assert_int_equal(sluice_retry_budget_create(&bc, &budget, NULL, 0), SLUICE_OK);
    sluice_retry_config cfg;
    sluice_retry_config_init(&cfg);
    cfg.name = "downstream";
    cfg.max_attempts = 5;
    cfg.backoff.base_ns = 20 * MS;
    cfg.backoff.max_ns = 200 * MS;
    cfg.backoff.jitter = SLUICE_JITTER_FULL;
    cfg.budget = budget;
    cfg.pool = pool;
    cfg.seed = 99;
    sluice_retry *r = make_retry(&cfg);

    flaky down = {.fail_first = -1, .rc = 503};
    const int steps = 300 * (int)stress_scale(); /* 10 ms each: 3 simulated seconds */
    const int per_step = 3;
    uint64_t t0 = sluice_clock_now(&fc.clock);
    for (int s = 0; s < steps; s++) {
        for (int i = 0; i < per_step; i++) {
            assert_int_equal(sluice_retry_submit(r, NULL, flaky_fn, &down, done_record), SLUICE_OK);
        }
        wait_until(quiescent, r, "attempts to finish or park");
        sluice_fake_clock_advance(&fc, 10 * MS);
    }
    while (!all_ended(r)) {
        wait_until(quiescent, r, "attempts to finish or park");
        sluice_fake_clock_advance(&fc, 10 * MS);
    }
    double secs = (double)(sluice_clock_now(&fc.clock) - t0) / 1e9;
    sluice_retry_stats st = rstats(r);
    uint64_t firsts = (uint64_t)steps * per_step;
    assert_int_equal(st.calls, firsts);
    assert_int_equal(atomic_load(&dlog.n), (int)firsts);
    /* Every call ended by the budget or by its attempt limit. */
    assert_int_equal(st.outcomes[SLUICE_RETRY_BUDGET] + st.outcomes[SLUICE_RETRY_EXHAUSTED], firsts);
    assert_int_equal(st.attempts, firsts + st.retries);
    /* Without the budget: 5 attempts per call. With it: retries within
     * ratio * firsts + the floor over the run, plus one window's share. */
    double bound = 0.1 * (double)firsts + 2.0 * (secs + 1.0) + 0.1 * per_step * 100;
    if ((double)st.retries > bound) {
        fail_msg("%llu retries > bound %.1f (firsts %llu over %.2f s)", (unsigned long long)st.retries, bound,
                 (unsigned long long)firsts, secs);
    }
    assert_true(st.attempts < 2 * firsts);  /* vs 5 * firsts unbudgeted */
    assert_true(st.retries >= firsts / 20); /* the budget is spent, not only refused */
    assert_int_equal(st.budget_exhausted, st.outcomes[SLUICE_RETRY_BUDGET]);
    assert_true(st.budget_exhausted > 0);
    sluice_retry_budget_stats bs;
    sluice_retry_budget_stats_get(budget, &bs);
    assert_int_equal(bs.first_attempts, firsts);
    assert_int_equal(bs.retries, st.retries);
    assert_int_equal(bs.exhausted, st.budget_exhausted);
    sluice_retry_destroy(r);
    sluice_retry_budget_destroy(budget);
    sluice_pool_destroy(pool);
}

/* ---- metrics --------------------------------------------------------------------- */

static void test_metrics(void **state)
{
    (void)state;
    sluice_fake_clock fc;
    sluice_fake_clock_init(&fc, 100 * SEC);
    sluice_metrics *reg;
    assert_int_equal(sluice_metrics_create(NULL, &reg), SLUICE_OK);
    sluice_sync_metrics *sm;
    assert_int_equal(sluice_sync_metrics_create(reg, &sm), SLUICE_OK);
    sluice_retry_budget_config bc;
    sluice_retry_budget_config_init(&bc);
    bc.name = "gw_budget";
    bc.ratio = 0;
    bc.min_per_sec = 1; /* one retry per 10 s window */
    bc.clock = &fc.clock;
    sluice_retry_budget *b;
    assert_int_equal(sluice_retry_budget_create(&bc, &b, NULL, 0), SLUICE_OK);
    sluice_retry_config cfg;
    sluice_retry_config_init(&cfg);
    cfg.name = "gateway";
    cfg.max_attempts = 3;
    cfg.backoff.jitter = SLUICE_JITTER_NONE;
    cfg.backoff.base_ns = 1;
    cfg.backoff.max_ns = 1;
    cfg.budget = b;
    sluice_retry *r = make_retry(&cfg);
    assert_int_equal(sluice_sync_metrics_add_retry(sm, r), SLUICE_OK);
    assert_int_equal(sluice_sync_metrics_add_retry(sm, r), SLUICE_EBUSY);
    assert_int_equal(sluice_sync_metrics_add_retry_budget(sm, b), SLUICE_OK);
    /* 10 retries fit the floor (1/s over 10 s); 2 calls of 3 attempts
     * want 4, then 8 more calls want 2 each: 10 granted + 10 refused. */
    flaky always = {.fail_first = -1, .rc = 1};
    for (int i = 0; i < 10; i++) {
        sluice_retry_call(r, NULL, flaky_fn, &always, NULL);
    }
    char *text = expo_render(reg);
    has(text, "# TYPE sluice_retry_attempts_total counter");
    has(text, "sluice_retry_attempts_total{name=\"gateway\"} 20\n");
    has(text, "sluice_retry_retries_total{name=\"gateway\"} 10\n");
    has(text, "sluice_retry_budget_exhausted_total{name=\"gateway\"} 5\n");
    has(text, "sluice_retry_calls_total{name=\"gateway\",outcome=\"exhausted\"} 5\n");
    has(text, "sluice_retry_calls_total{name=\"gateway\",outcome=\"budget\"} 5\n");
    has(text, "sluice_retry_calls_total{name=\"gateway\",outcome=\"success\"} 0\n");
    has(text, "sluice_retry_in_flight{name=\"gateway\"} 0\n");
    has(text, "sluice_retry_budget_first_attempts_total{name=\"gw_budget\"} 10\n");
    has(text, "sluice_retry_budget_granted_total{name=\"gw_budget\"} 10\n");
    has(text, "sluice_retry_budget_refused_total{name=\"gw_budget\"} 5\n");
    has(text, "sluice_retry_budget_balance{name=\"gw_budget\"} 0\n");
    free(text);
    assert_int_equal(sluice_sync_metrics_remove_retry(sm, r), SLUICE_OK);
    assert_int_equal(sluice_sync_metrics_remove_retry(sm, r), SLUICE_ENOENT);
    assert_int_equal(sluice_sync_metrics_remove_retry_budget(sm, b), SLUICE_OK);
    text = expo_render(reg);
    assert_null(strstr(text, "sluice_retry_"));
    free(text);
    sluice_sync_metrics_destroy(sm);
    sluice_metrics_destroy(reg);
    sluice_retry_destroy(r);
    sluice_retry_budget_destroy(b);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_config),
        cmocka_unit_test(test_backoff_steps),
        cmocka_unit_test(test_jitter_distributions),
        cmocka_unit_test(test_budget_window_bound),
        cmocka_unit_test(test_call_basics),
        cmocka_unit_test(test_call_deadline_never_slept_past),
        cmocka_unit_test(test_call_sleeps_on_the_clock),
        cmocka_unit_test(test_submit_resubmits),
        cmocka_unit_test(test_submit_endings),
        cmocka_unit_test(test_submit_pool_hands_back),
        cmocka_unit_test(test_done_never_inside_on_abandon),
        cmocka_unit_test(test_submit_never_waits_at_clock_zero),
        cmocka_unit_test(test_budget_holds_attempts_down),
        cmocka_unit_test(test_metrics),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
