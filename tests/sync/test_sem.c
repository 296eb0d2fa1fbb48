/*
 * tests/sync/test_sem.c - the weighted semaphore: FIFO order with no
 * barging, head-of-line blocking, oversize requests, departures at the
 * head, over-release, close/destroy with waiters, the wait histogram, and
 * a cancellation race that checks the units are never over-granted.
 *
 * Waiters are threads; the test orders them by waiting until the
 * semaphore reports them queued (stats.waiters), never by sleeping.
 */
#include <pthread.h>
#include <sched.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "sluice/ctx.h"
#include "sluice/sem.h"
#include "common/wait.h"

static sluice_sem *make_sem(uint64_t cap, const sluice_clock *clock)
{
    sluice_sem_config cfg;
    sluice_sem_config_init(&cfg);
    cfg.name = "test_sem";
    cfg.capacity = cap;
    cfg.clock = clock;
    sluice_sem *s = NULL;
    char err[128];
    assert_int_equal(sluice_sem_create(&cfg, &s, err, sizeof err), SLUICE_OK);
    return s;
}

static sluice_sem_stats stats(sluice_sem *s)
{
    sluice_sem_stats st;
    sluice_sem_stats_get(s, &st);
    return st;
}

static void wait_waiters(sluice_sem *s, unsigned n)
{
    WAIT_FOR(stats(s).waiters == n, "%u waiters on the semaphore", n);
}

/* A thread that acquires `n` and records the order it was served in. */
typedef struct order_log {
    pthread_mutex_t mu;
    char seq[32];
    int len;
} order_log;

typedef struct acq {
    pthread_t thread;
    sluice_sem *sem;
    uint64_t n;
    sluice_ctx *ctx;
    uint64_t deadline;
    char tag;
    order_log *log;
    _Atomic int finished;
    sluice_err result;
} acq;

static void *acq_main(void *arg)
{
    acq *a = arg;
    a->result = sluice_sem_acquire_until(a->sem, a->n, a->ctx, a->deadline);
    if (a->result == SLUICE_OK && a->log) {
        pthread_mutex_lock(&a->log->mu);
        a->log->seq[a->log->len++] = a->tag;
        pthread_mutex_unlock(&a->log->mu);
    }
    atomic_store(&a->finished, 1);
    return NULL;
}

static void acq_start(acq *a)
{
    assert_int_equal(pthread_create(&a->thread, NULL, acq_main, a), 0);
}

static sluice_err acq_join(acq *a)
{
    pthread_join(a->thread, NULL);
    return a->result;
}

static void test_create_and_args(void **state)
{
    (void)state;
    sluice_sem_config cfg;
    sluice_sem_config_init(&cfg);
    sluice_sem *s = NULL;
    char err[128] = "";
    assert_int_equal(sluice_sem_create(&cfg, &s, err, sizeof err), SLUICE_EINVAL);
    assert_string_equal(err, "capacity: must be > 0");
    cfg.capacity = 4;
    cfg.name = "bad name";
    assert_int_equal(sluice_sem_create(&cfg, &s, err, sizeof err), SLUICE_EINVAL);
    assert_non_null(strstr(err, "name:"));
    double bad[] = {0.1, 0.05};
    cfg.name = NULL;
    cfg.histogram_buckets = bad;
    cfg.histogram_bucket_count = 2;
    assert_int_equal(sluice_sem_create(&cfg, &s, err, sizeof err), SLUICE_EINVAL);
    assert_non_null(strstr(err, "histogram_buckets[1]: must be greater than the bound before it"));
    assert_null(s);
    sluice_sem_destroy(NULL);

    s = make_sem(4, NULL);
    assert_string_equal(sluice_sem_name(s), "test_sem");
    assert_int_equal(sluice_sem_acquire(s, 0, NULL), SLUICE_EINVAL);
    assert_int_equal(sluice_sem_acquire(NULL, 1, NULL), SLUICE_EINVAL);
    assert_int_equal(sluice_sem_try_acquire(s, 3), SLUICE_OK);
    assert_int_equal(sluice_sem_try_acquire(s, 2), SLUICE_EAGAIN);
    /* Oversize fails at once, even while the units are busy. */
    assert_int_equal(sluice_sem_acquire(s, 5, NULL), SLUICE_EOVERFLOW);
    assert_int_equal(sluice_sem_try_acquire(s, 5), SLUICE_EOVERFLOW);
    /* Over-release is refused and changes nothing. */
    assert_int_equal(sluice_sem_release(s, 4), SLUICE_EOVERFLOW);
    sluice_sem_stats st = stats(s);
    assert_int_equal(st.in_use, 3);
    assert_int_equal(st.release_errors, 1);
    assert_int_equal(st.oversize, 2);
    assert_int_equal(st.try_failed, 1);
    assert_int_equal(st.acquired, 1);
    assert_int_equal(st.capacity, 4);
    assert_int_equal(sluice_sem_release(s, 3), SLUICE_OK);
    assert_int_equal(sluice_sem_release(s, 1), SLUICE_EOVERFLOW);
    assert_int_equal(sluice_sem_acquire(s, 4, NULL), SLUICE_OK);
    assert_int_equal(stats(s).in_use_hwm, 4);
    assert_int_equal(sluice_sem_release(s, 4), SLUICE_OK);
    sluice_sem_destroy(s);
}

/* A newcomer never overtakes a queued waiter, even when units are free. */
static void test_fifo_no_barging(void **state)
{
    (void)state;
    sluice_sem *s = make_sem(10, NULL);
    order_log log = {.mu = PTHREAD_MUTEX_INITIALIZER};
    assert_int_equal(sluice_sem_acquire(s, 8, NULL), SLUICE_OK);
    acq a = {.sem = s, .n = 5, .tag = 'A', .log = &log};
    acq b = {.sem = s, .n = 1, .tag = 'B', .log = &log};
    acq_start(&a);
    wait_waiters(s, 1);
    /* 2 units are free, but A is queued: try and acquire must not pass it. */
    assert_int_equal(sluice_sem_try_acquire(s, 1), SLUICE_EAGAIN);
    acq_start(&b);
    wait_waiters(s, 2);
    sluice_sem_stats st = stats(s);
    assert_int_equal(st.in_use, 8);
    assert_int_equal(st.waiting_units, 6);
    assert_int_equal(sluice_sem_release(s, 3), SLUICE_OK); /* 5 free: A only */
    assert_int_equal(acq_join(&a), SLUICE_OK);
    assert_int_equal(stats(s).in_use, 10);
    assert_false(atomic_load(&b.finished));
    assert_int_equal(sluice_sem_release(s, 1), SLUICE_OK);
    assert_int_equal(acq_join(&b), SLUICE_OK);
    assert_memory_equal(log.seq, "AB", 2);
    st = stats(s);
    assert_int_equal(st.waited, 2);
    assert_int_equal(st.waiters_hwm, 2);
    assert_int_equal(sluice_sem_release(s, 10), SLUICE_OK);
    sluice_sem_destroy(s);
}

/* A large waiter at the head blocks smaller ones behind it. */
static void test_head_of_line(void **state)
{
    (void)state;
    sluice_sem *s = make_sem(10, NULL);
    order_log log = {.mu = PTHREAD_MUTEX_INITIALIZER};
    assert_int_equal(sluice_sem_acquire(s, 10, NULL), SLUICE_OK);
    acq big = {.sem = s, .n = 10, .tag = 'L', .log = &log};
    acq small[3];
    acq_start(&big);
    wait_waiters(s, 1);
    for (int i = 0; i < 3; i++) {
        small[i] = (acq){.sem = s, .n = 1, .tag = (char)('a' + i), .log = &log};
        acq_start(&small[i]);
        wait_waiters(s, 2 + (unsigned)i);
    }
    /* Half the units free: the big head does not fit, and nobody passes it. */
    assert_int_equal(sluice_sem_release(s, 5), SLUICE_OK);
    sluice_sem_stats st = stats(s);
    assert_int_equal(st.in_use, 5);
    assert_int_equal(st.waiters, 4);
    assert_int_equal(log.len, 0);
    assert_int_equal(sluice_sem_release(s, 5), SLUICE_OK);
    assert_int_equal(acq_join(&big), SLUICE_OK);
    assert_int_equal(stats(s).waiters, 3);
    /* The big one gives back one unit at a time: the small ones are served
     * one per unit, in arrival order. */
    for (int i = 0; i < 3; i++) {
        assert_int_equal(sluice_sem_release(s, 1), SLUICE_OK);
        assert_int_equal(acq_join(&small[i]), SLUICE_OK);
        for (int j = i + 1; j < 3; j++) {
            assert_false(atomic_load(&small[j].finished));
        }
    }
    assert_memory_equal(log.seq, "Labc", 4);
    assert_int_equal(stats(s).in_use, 10);
    assert_int_equal(sluice_sem_release(s, 10), SLUICE_OK);
    sluice_sem_destroy(s);
}

/* Live capacity: shrinking keeps what is held, refuses queued requests
 * that can no longer fit (the ones behind them keep their turn), and
 * serves nobody until in_use is back under it; growing serves at once. */
static void test_set_capacity(void **state)
{
    (void)state;
    sluice_sem *s = make_sem(10, NULL);
    order_log log = {.mu = PTHREAD_MUTEX_INITIALIZER};
    assert_int_equal(sluice_sem_set_capacity(NULL, 3), SLUICE_EINVAL);
    assert_int_equal(sluice_sem_set_capacity(s, 0), SLUICE_EINVAL);
    assert_int_equal(sluice_sem_acquire(s, 8, NULL), SLUICE_OK);
    acq big = {.sem = s, .n = 5, .tag = 'B', .log = &log};
    acq small = {.sem = s, .n = 2, .tag = 's', .log = &log};
    acq_start(&big);
    wait_waiters(s, 1);
    acq_start(&small);
    wait_waiters(s, 2);

    /* Shrink to 4: the 5-unit waiter can never fit; the 2-unit one waits
     * for in_use (8, above the new capacity) to come down. */
    assert_int_equal(sluice_sem_set_capacity(s, 4), SLUICE_OK);
    assert_int_equal(acq_join(&big), SLUICE_EOVERFLOW);
    sluice_sem_stats st = stats(s);
    assert_int_equal(st.capacity, 4);
    assert_int_equal(st.in_use, 8);
    assert_int_equal(st.waiters, 1);
    assert_int_equal(st.oversize, 1);
    assert_int_equal(sluice_sem_try_acquire(s, 1), SLUICE_EAGAIN); /* no wrap: 8 > 4 */
    assert_int_equal(sluice_sem_acquire(s, 5, NULL), SLUICE_EOVERFLOW);
    assert_int_equal(sluice_sem_release(s, 3), SLUICE_OK); /* in_use 5: still over */
    assert_false(atomic_load(&small.finished));
    assert_int_equal(sluice_sem_release(s, 3), SLUICE_OK); /* in_use 2: 2 more fit */
    assert_int_equal(acq_join(&small), SLUICE_OK);
    assert_int_equal(stats(s).in_use, 4);

    /* Grow: a queued request is served at once. */
    acq more = {.sem = s, .n = 3, .tag = 'm', .log = &log};
    acq_start(&more);
    wait_waiters(s, 1);
    assert_int_equal(sluice_sem_set_capacity(s, 7), SLUICE_OK);
    assert_int_equal(acq_join(&more), SLUICE_OK);
    assert_int_equal(stats(s).in_use, 7);
    assert_memory_equal(log.seq, "sm", 2);
    assert_int_equal(sluice_sem_release(s, 7), SLUICE_OK);
    sluice_sem_close(s);
    assert_int_equal(sluice_sem_set_capacity(s, 9), SLUICE_ECLOSED);
    sluice_sem_destroy(s);
}

/* A cancelled (or timed-out) head lets the waiters behind it proceed. */
static void test_departed_head(void **state)
{
    (void)state;
    sluice_fake_clock fc;
    sluice_fake_clock_init(&fc, 1000);
    sluice_sem *s = make_sem(10, &fc.clock);
    order_log log = {.mu = PTHREAD_MUTEX_INITIALIZER};
    assert_int_equal(sluice_sem_acquire(s, 6, NULL), SLUICE_OK);

    sluice_ctx *c;
    assert_int_equal(sluice_ctx_create(&c, NULL, 0, NULL), SLUICE_OK);
    acq head = {.sem = s, .n = 10, .ctx = c, .tag = 'H', .log = &log};
    acq behind = {.sem = s, .n = 4, .tag = 'b', .log = &log};
    acq_start(&head);
    wait_waiters(s, 1);
    acq_start(&behind);
    wait_waiters(s, 2);
    assert_false(atomic_load(&behind.finished));
    sluice_ctx_cancel(c, SLUICE_ECANCELED);
    assert_int_equal(acq_join(&head), SLUICE_ECANCELED);
    assert_int_equal(acq_join(&behind), SLUICE_OK);
    assert_int_equal(stats(s).in_use, 10);
    assert_int_equal(stats(s).canceled, 1);
    sluice_ctx_release(c);
    assert_int_equal(sluice_sem_release(s, 4), SLUICE_OK);

    /* The same with a deadline on the fake clock. */
    acq head2 = {.sem = s, .n = 10, .deadline = 5000, .tag = 'T', .log = &log};
    acq behind2 = {.sem = s, .n = 4, .tag = 'c', .log = &log};
    acq_start(&head2);
    wait_waiters(s, 1);
    acq_start(&behind2);
    wait_waiters(s, 2);
    sluice_fake_clock_set(&fc, 4999);
    assert_false(atomic_load(&head2.finished));
    sluice_fake_clock_set(&fc, 5000);
    assert_int_equal(acq_join(&head2), SLUICE_ETIMEDOUT);
    assert_int_equal(acq_join(&behind2), SLUICE_OK);
    assert_int_equal(stats(s).timeouts, 1);
    assert_memory_equal(log.seq, "bc", 2);

    /* A context deadline (on the fake clock) times the waiter out too, and
     * the context is cancelled with SLUICE_ETIMEDOUT on the way. */
    assert_int_equal(sluice_ctx_create(&c, NULL, 9000, &fc.clock), SLUICE_OK);
    acq h3 = {.sem = s, .n = 1, .ctx = c, .tag = 'x', .log = &log};
    acq_start(&h3);
    wait_waiters(s, 1);
    sluice_fake_clock_set(&fc, 9000);
    assert_int_equal(acq_join(&h3), SLUICE_ETIMEDOUT);
    assert_int_equal(sluice_ctx_err(c), SLUICE_ETIMEDOUT);
    sluice_ctx_release(c);
    assert_int_equal(sluice_sem_release(s, 10), SLUICE_OK);
    assert_int_equal(stats(s).in_use, 0);
    sluice_sem_destroy(s);
}

/* A done context fails the call even when units are free. */
static void test_done_ctx_fails_fast(void **state)
{
    (void)state;
    sluice_sem *s = make_sem(2, NULL);
    sluice_ctx *c;
    assert_int_equal(sluice_ctx_create(&c, NULL, 0, NULL), SLUICE_OK);
    sluice_ctx_cancel(c, SLUICE_ETASK);
    assert_int_equal(sluice_sem_acquire(s, 1, c), SLUICE_ETASK);
    sluice_ctx_release(c);
    assert_int_equal(sluice_ctx_with_timeout(&c, NULL, 0, NULL), SLUICE_OK);
    assert_int_equal(sluice_sem_acquire(s, 1, c), SLUICE_ETIMEDOUT);
    sluice_ctx_release(c);
    /* A real (system clock) timeout while waiting. */
    assert_int_equal(sluice_sem_acquire(s, 2, NULL), SLUICE_OK);
    uint64_t dl = sluice_clock_now(NULL) + 2 * SLUICE_NS_PER_MS;
    assert_int_equal(sluice_sem_acquire_until(s, 1, NULL, dl), SLUICE_ETIMEDOUT);
    assert_true(sluice_clock_now(NULL) >= dl);
    sluice_sem_stats st = stats(s);
    assert_int_equal(st.timeouts, 2);
    assert_int_equal(st.canceled, 1);
    assert_int_equal(st.waiters, 0);
    sluice_sem_release(s, 2);
    sluice_sem_destroy(s);
}

/* Close wakes waiters with SLUICE_ECLOSED; destroy waits for them to leave. */
static void test_close_and_destroy(void **state)
{
    (void)state;
    sluice_sem *s = make_sem(1, NULL);
    assert_int_equal(sluice_sem_acquire(s, 1, NULL), SLUICE_OK);
    acq a = {.sem = s, .n = 1};
    acq b = {.sem = s, .n = 1};
    acq_start(&a);
    acq_start(&b);
    wait_waiters(s, 2);
    sluice_sem_close(s);
    assert_int_equal(acq_join(&a), SLUICE_ECLOSED);
    assert_int_equal(acq_join(&b), SLUICE_ECLOSED);
    assert_int_equal(sluice_sem_acquire(s, 1, NULL), SLUICE_ECLOSED);
    assert_int_equal(sluice_sem_try_acquire(s, 1), SLUICE_ECLOSED);
    assert_int_equal(sluice_sem_release(s, 1), SLUICE_OK); /* release still works */
    assert_true(stats(s).closed);
    sluice_sem_destroy(s);

    /* destroy with a waiter still blocked (with a context). */
    s = make_sem(1, NULL);
    sluice_ctx *c;
    assert_int_equal(sluice_ctx_create(&c, NULL, 0, NULL), SLUICE_OK);
    assert_int_equal(sluice_sem_acquire(s, 1, NULL), SLUICE_OK);
    acq d = {.sem = s, .n = 1, .ctx = c};
    acq_start(&d);
    wait_waiters(s, 1);
    sluice_sem_destroy(s);
    assert_int_equal(acq_join(&d), SLUICE_ECLOSED);
    sluice_ctx_release(c);
}

static void test_histogram(void **state)
{
    (void)state;
    sluice_fake_clock fc;
    sluice_fake_clock_init(&fc, 1000);
    sluice_sem *s = make_sem(1, &fc.clock);
    assert_int_equal(sluice_sem_acquire(s, 1, NULL), SLUICE_OK); /* 0 wait */
    acq a = {.sem = s, .n = 1};
    acq_start(&a);
    wait_waiters(s, 1);
    sluice_fake_clock_advance(&fc, 5 * SLUICE_NS_PER_MS);
    sluice_sem_release(s, 1);
    assert_int_equal(acq_join(&a), SLUICE_OK);
    sluice_histogram h;
    sluice_sem_histogram_get(s, &h);
    assert_int_equal(h.bucket_count, SLUICE_HIST_DEFAULT_BUCKETS);
    assert_int_equal(h.count, 2);
    assert_int_equal(h.counts[0], 1); /* the immediate grant */
    /* 5 ms falls in (0.0032, 0.0064]. */
    for (size_t i = 0; i < h.bucket_count; i++) {
        if (h.bounds[i] == 0.0064) {
            assert_int_equal(h.counts[i], 1);
        }
    }
    assert_true(h.sum_seconds > 0.0049 && h.sum_seconds < 0.0051);
    sluice_sem_release(s, 1);
    sluice_sem_destroy(s);
}

/* ---- cancellation race ------------------------------------------------------ */

typedef struct race {
    sluice_sem *sem;
    uint64_t cap;
    _Atomic uint64_t held;
    _Atomic int over; /* 1: over-granted; 2: release failed; 3: odd error */
    _Atomic long ok, failed;
    _Atomic int stop;
    sluice_ctx *_Atomic shared_ctx;
    int iters;
} race;

static void *race_worker(void *arg)
{
    race *r = arg;
    unsigned seed = (unsigned)(uintptr_t)pthread_self();
    for (int i = 0; i < r->iters; i++) {
        uint64_t n = 1 + rand_r(&seed) % r->cap;
        sluice_ctx *c;
        sluice_ctx_create(&c, NULL, 0, NULL);
        int mode = rand_r(&seed) % 3;
        if (mode == 0) {
            sluice_ctx_cancel(c, SLUICE_ECANCELED); /* already done */
        }
        sluice_ctx_retain(c); /* one reference for the shared slot */
        sluice_ctx *old = atomic_exchange(&r->shared_ctx, c);
        if (old) {
            sluice_ctx_cancel(old, SLUICE_ECANCELED); /* cancel someone else's wait */
            sluice_ctx_release(old);
        }
        sluice_err e = sluice_sem_acquire(r->sem, n, c);
        if (e == SLUICE_OK) {
            uint64_t h = atomic_fetch_add(&r->held, n) + n;
            if (h > r->cap) {
                atomic_store(&r->over, 1);
            }
            sched_yield();
            atomic_fetch_sub(&r->held, n);
            if (sluice_sem_release(r->sem, n) != SLUICE_OK) {
                atomic_store(&r->over, 2); /* no cmocka asserts off the main thread */
            }
            atomic_fetch_add(&r->ok, 1);
        } else {
            if (e != SLUICE_ECANCELED) {
                atomic_store(&r->over, 3);
            }
            atomic_fetch_add(&r->failed, 1);
        }
        sluice_ctx_release(c);
    }
    return NULL;
}

static void *race_canceller(void *arg)
{
    race *r = arg;
    while (!atomic_load(&r->stop)) {
        sluice_ctx *c = atomic_exchange(&r->shared_ctx, NULL);
        if (c) {
            sluice_ctx_cancel(c, SLUICE_ECANCELED);
            sluice_ctx_release(c);
        }
        sched_yield();
    }
    return NULL;
}

static void test_cancel_race(void **state)
{
    (void)state;
    race r = {.cap = 5, .iters = 400 * (int)stress_scale()};
    r.sem = make_sem(r.cap, NULL);
    pthread_t w[4], k;
    pthread_create(&k, NULL, race_canceller, &r);
    for (int i = 0; i < 4; i++) {
        pthread_create(&w[i], NULL, race_worker, &r);
    }
    for (int i = 0; i < 4; i++) {
        pthread_join(w[i], NULL);
    }
    atomic_store(&r.stop, 1);
    pthread_join(k, NULL);
    sluice_ctx_release(atomic_exchange(&r.shared_ctx, NULL));
    assert_int_equal(atomic_load(&r.over), 0);
    assert_int_equal(atomic_load(&r.ok) + atomic_load(&r.failed), 4 * r.iters);
    sluice_sem_stats st = stats(r.sem);
    assert_int_equal(st.in_use, 0);
    assert_int_equal(st.waiters, 0);
    assert_int_equal(st.waiting_units, 0);
    assert_int_equal(st.acquired, (uint64_t)atomic_load(&r.ok));
    assert_int_equal(st.canceled, (uint64_t)atomic_load(&r.failed));
    sluice_sem_destroy(r.sem);
}

/* waiting_units at the top of uint64_t: on a semaphore of UINT64_MAX units
 * with all but one held, two waiters of UINT64_MAX units ask for more than
 * a uint64_t holds. The gauge saturates at UINT64_MAX (it wrapped to
 * UINT64_MAX - 1), and is exact again as they leave. */
static void test_waiting_units_saturate(void **state)
{
    (void)state;
    sluice_sem *s = make_sem(UINT64_MAX, NULL);
    assert_int_equal(sluice_sem_try_acquire(s, UINT64_MAX - 1), SLUICE_OK);
    const uint64_t want[3] = {UINT64_MAX, UINT64_MAX, 2};
    const uint64_t gauge[3] = {UINT64_MAX, UINT64_MAX, UINT64_MAX};
    sluice_ctx *c[3];
    acq a[3];
    for (int i = 0; i < 3; i++) {
        assert_int_equal(sluice_ctx_create(&c[i], NULL, 0, NULL), SLUICE_OK);
        a[i] = (acq){.sem = s, .n = want[i], .ctx = c[i]};
        acq_start(&a[i]);
        wait_waiters(s, (unsigned)i + 1);
        assert_true(stats(s).waiting_units == gauge[i]);
    }
    /* UINT64_MAX + 2 still does not fit; 2 does, exactly. */
    sluice_ctx_cancel(c[0], SLUICE_ECANCELED);
    assert_int_equal(acq_join(&a[0]), SLUICE_ECANCELED);
    wait_waiters(s, 2);
    assert_true(stats(s).waiting_units == UINT64_MAX);
    sluice_ctx_cancel(c[1], SLUICE_ECANCELED);
    assert_int_equal(acq_join(&a[1]), SLUICE_ECANCELED);
    wait_waiters(s, 1);
    assert_true(stats(s).waiting_units == 2);
    assert_int_equal(sluice_sem_release(s, UINT64_MAX - 1), SLUICE_OK);
    assert_int_equal(acq_join(&a[2]), SLUICE_OK);
    sluice_sem_stats st = stats(s);
    assert_int_equal(st.waiters, 0);
    assert_true(st.waiting_units == 0);
    assert_true(st.in_use == 2);
    assert_int_equal(sluice_sem_release(s, 2), SLUICE_OK);
    for (int i = 0; i < 3; i++) {
        sluice_ctx_release(c[i]);
    }
    sluice_sem_destroy(s);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_create_and_args),     cmocka_unit_test(test_fifo_no_barging),
        cmocka_unit_test(test_head_of_line),        cmocka_unit_test(test_departed_head),
        cmocka_unit_test(test_done_ctx_fails_fast), cmocka_unit_test(test_close_and_destroy),
        cmocka_unit_test(test_histogram),           cmocka_unit_test(test_cancel_race),
        cmocka_unit_test(test_set_capacity),        cmocka_unit_test(test_waiting_units_saturate),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
