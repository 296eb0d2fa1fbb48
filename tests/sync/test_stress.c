/*
 * tests/sync/test_stress.c - every sync primitive hammered from several
 * threads at once, for TSan and ASan: the properties checked are the ones
 * that races would break (units never over-granted and all returned,
 * counters that add up, rates never exceeded, bounded key sets, groups
 * that finish with the right sums and errors while nesting and helping).
 *
 * Sized by SLUICE_STRESS_SCALE (default 1: a second or two under TSan).
 * Worker threads never call cmocka asserts; they record failures in
 * atomics that the main thread checks.
 */
#include <pthread.h>
#include <sched.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "sluice/breaker.h"
#include "sluice/group.h"
#include "sluice/limiter.h"
#include "sluice/sem.h"
#include "sluice/task.h"
#include "common/wait.h"

#define THREADS 4

static _Atomic int broken; /* set by a thread that saw an invariant fail */

static void fail_if(bool cond, int code)
{
    if (cond) {
        atomic_store(&broken, code);
    }
}

/* ---- semaphore ----------------------------------------------------------------- */

typedef struct sem_run {
    sluice_sem *sem;
    uint64_t cap;
    _Atomic uint64_t held;
    int iters;
} sem_run;

static void *sem_thread(void *arg)
{
    sem_run *r = arg;
    unsigned seed = (unsigned)(uintptr_t)&seed;
    for (int i = 0; i < r->iters; i++) {
        uint64_t n = 1 + rand_r(&seed) % r->cap;
        sluice_err e;
        int mode = rand_r(&seed) % 4;
        sluice_ctx *c = NULL;
        if (mode == 0) {
            e = sluice_sem_try_acquire(r->sem, n);
        } else if (mode == 1) {
            sluice_ctx_with_timeout(&c, NULL, (uint64_t)(rand_r(&seed) % 200) * SLUICE_NS_PER_US, NULL);
            e = sluice_sem_acquire(r->sem, n, c);
        } else {
            e = sluice_sem_acquire(r->sem, n, NULL);
        }
        if (e == SLUICE_OK) {
            uint64_t h = atomic_fetch_add(&r->held, n) + n;
            fail_if(h > r->cap, 1);
            sched_yield();
            atomic_fetch_sub(&r->held, n);
            fail_if(sluice_sem_release(r->sem, n) != SLUICE_OK, 2);
        } else {
            fail_if(e != SLUICE_EAGAIN && e != SLUICE_ETIMEDOUT, 3);
        }
        sluice_ctx_release(c);
    }
    return NULL;
}

static void test_sem_stress(void **state)
{
    (void)state;
    sluice_sem_config cfg;
    sluice_sem_config_init(&cfg);
    cfg.capacity = 7;
    sem_run r = {.cap = 7, .iters = 2000 * (int)stress_scale()};
    assert_int_equal(sluice_sem_create(&cfg, &r.sem, NULL, 0), SLUICE_OK);
    pthread_t t[THREADS];
    for (int i = 0; i < THREADS; i++) {
        pthread_create(&t[i], NULL, sem_thread, &r);
    }
    for (int i = 0; i < THREADS; i++) {
        pthread_join(t[i], NULL);
    }
    assert_int_equal(atomic_load(&broken), 0);
    sluice_sem_stats st;
    sluice_sem_stats_get(r.sem, &st);
    assert_int_equal(st.in_use, 0);
    assert_int_equal(st.waiters, 0);
    sluice_histogram h;
    sluice_sem_histogram_get(r.sem, &h);
    assert_int_equal(h.count, st.acquired);
    sluice_sem_destroy(r.sem);
}

/* ---- breaker ------------------------------------------------------------------- */

typedef struct br_run {
    sluice_breaker *br;
    _Atomic uint64_t allowed, refused, recorded[3];
    int iters;
} br_run;

static void *br_thread(void *arg)
{
    br_run *r = arg;
    unsigned seed = (unsigned)(uintptr_t)&seed;
    for (int i = 0; i < r->iters; i++) {
        uint64_t ticket;
        if (rand_r(&seed) % 97 == 0) {
            sluice_breaker_force(r->br, (sluice_breaker_state)(rand_r(&seed) % 3));
        }
        if (sluice_breaker_allow(r->br, &ticket) != SLUICE_OK) {
            atomic_fetch_add(&r->refused, 1);
            continue;
        }
        atomic_fetch_add(&r->allowed, 1);
        sluice_breaker_outcome o = (sluice_breaker_outcome)(rand_r(&seed) % 3);
        sluice_breaker_record(r->br, ticket, o);
        atomic_fetch_add(&r->recorded[o], 1);
    }
    return NULL;
}

static _Atomic unsigned transitions;

static void count_transition(sluice_breaker *b, sluice_breaker_state from, sluice_breaker_state to,
                             void *user)
{
    (void)b;
    (void)user;
    fail_if(from == to, 4);
    atomic_fetch_add(&transitions, 1);
}

static void test_breaker_stress(void **state)
{
    (void)state;
    sluice_breaker_config cfg;
    sluice_breaker_config_init(&cfg);
    cfg.consecutive_failures = 3;
    cfg.window_size = 20;
    cfg.minimum_calls = 10;
    cfg.open_duration_ns = 20 * SLUICE_NS_PER_US; /* real clock: flips often */
    cfg.half_open_max_calls = 2;
    cfg.on_state_change = count_transition;
    br_run r = {.iters = 5000 * (int)stress_scale()};
    assert_int_equal(sluice_breaker_create(&cfg, &r.br, NULL, 0), SLUICE_OK);
    pthread_t t[THREADS];
    for (int i = 0; i < THREADS; i++) {
        pthread_create(&t[i], NULL, br_thread, &r);
    }
    for (int i = 0; i < THREADS; i++) {
        pthread_join(t[i], NULL);
    }
    assert_int_equal(atomic_load(&broken), 0);
    sluice_breaker_stats st;
    sluice_breaker_stats_get(r.br, &st);
    assert_int_equal(st.successes, atomic_load(&r.recorded[0]));
    assert_int_equal(st.failures, atomic_load(&r.recorded[1]));
    assert_int_equal(st.ignored, atomic_load(&r.recorded[2]));
    assert_int_equal(st.rejected, atomic_load(&r.refused));
    assert_int_equal(st.opened + st.half_opened + st.closed, atomic_load(&transitions));
    sluice_breaker_destroy(r.br);
}

/* ---- limiters ------------------------------------------------------------------ */

typedef struct lim_run {
    sluice_limiter *lim;
    sluice_keyed_limiter *kl;
    _Atomic uint64_t granted;
    _Atomic int stop;
    int iters;
} lim_run;

static void *lim_thread(void *arg)
{
    lim_run *r = arg;
    unsigned seed = (unsigned)(uintptr_t)&seed;
    char key[16];
    for (int i = 0; i < r->iters; i++) {
        if (sluice_limiter_allow(r->lim)) {
            atomic_fetch_add(&r->granted, 1);
        }
        snprintf(key, sizeof key, "k%u", rand_r(&seed) % 50);
        sluice_keyed_limiter_allow(r->kl, key, 1);
        if (i % 64 == 0) {
            sched_yield();
        }
    }
    return NULL;
}

static void test_limiter_stress(void **state)
{
    (void)state;
    sluice_fake_clock fc;
    sluice_fake_clock_init(&fc, SLUICE_NS_PER_SEC);
    sluice_limiter_config cfg;
    sluice_limiter_config_init(&cfg);
    cfg.rate = 1000;
    cfg.burst = 10;
    cfg.clock = &fc.clock;
    sluice_keyed_limiter_config kc;
    sluice_keyed_limiter_config_init(&kc);
    kc.rate = 100;
    kc.burst = 5;
    kc.max_keys = 16;
    kc.clock = &fc.clock;
    lim_run r = {.iters = 5000 * (int)stress_scale()};
    assert_int_equal(sluice_limiter_create(&cfg, &r.lim, NULL, 0), SLUICE_OK);
    assert_int_equal(sluice_keyed_limiter_create(&kc, &r.kl, NULL, 0), SLUICE_OK);
    pthread_t t[THREADS];
    for (int i = 0; i < THREADS; i++) {
        pthread_create(&t[i], NULL, lim_thread, &r);
    }
    uint64_t advanced = 0;
    for (int i = 0; i < 200; i++) { /* time moves while they call */
        sluice_fake_clock_advance(&fc, 100 * SLUICE_NS_PER_US);
        advanced += 100 * SLUICE_NS_PER_US;
        sched_yield();
    }
    for (int i = 0; i < THREADS; i++) {
        pthread_join(t[i], NULL);
    }
    /* Never more than burst + rate * elapsed. */
    uint64_t bound = 10 + (uint64_t)(1000.0 * (double)advanced / 1e9) + 1;
    assert_true(atomic_load(&r.granted) <= bound);
    sluice_keyed_limiter_stats ks;
    sluice_keyed_limiter_stats_get(r.kl, &ks);
    assert_true(ks.keys <= 16);
    assert_int_equal(ks.allowed + ks.limited, (uint64_t)THREADS * (uint64_t)r.iters);
    sluice_keyed_limiter_destroy(r.kl);
    sluice_limiter_destroy(r.lim);
}

/* ---- groups: nested fan-out on a small pool, with failures ----------------------------- */

static _Atomic long leaf_sum;

static int leaf(void *arg)
{
    intptr_t v = (intptr_t)arg;
    atomic_fetch_add(&leaf_sum, (long)v);
    return v % 97 == 0 ? -1 : 0; /* a few fail */
}

typedef struct mid_arg {
    sluice_pool *pool;
    int width;
    int base;
} mid_arg;

static int mid(void *arg)
{
    mid_arg *m = arg;
    sluice_group_config gc;
    sluice_group_config_init(&gc);
    gc.pool = m->pool;
    gc.limit = 3;
    sluice_group *g;
    if (sluice_group_create(&gc, &g, NULL, 0) != SLUICE_OK) {
        atomic_store(&broken, 5);
        return -1;
    }
    for (int i = 0; i < m->width; i++) {
        if (sluice_group_run(g, leaf, (void *)(intptr_t)(m->base + i + 1)) != SLUICE_OK) {
            atomic_store(&broken, 6);
        }
    }
    sluice_err err = sluice_group_wait(g, NULL);
    sluice_group_destroy(g);
    return err == SLUICE_OK ? 0 : err;
}

static void test_group_stress(void **state)
{
    (void)state;
    sluice_pool_config pc;
    sluice_pool_config_init(&pc);
    pc.name = "stress";
    pc.workers = 2;
    pc.queue_capacity = 4096;
    sluice_pool *p;
    assert_int_equal(sluice_pool_create(&pc, &p, NULL, 0), SLUICE_OK);
    int rounds = 5 * (int)stress_scale();
    for (int round = 0; round < rounds; round++) {
        atomic_store(&leaf_sum, 0);
        sluice_group_config gc;
        sluice_group_config_init(&gc);
        gc.pool = p;
        gc.limit = 4;
        sluice_group *g;
        assert_int_equal(sluice_group_create(&gc, &g, NULL, 0), SLUICE_OK);
        enum { MIDS = 12, WIDTH = 20 };
        mid_arg args[MIDS];
        for (int i = 0; i < MIDS; i++) {
            /* Bases keep every value below 97 in round 0's first mid. */
            args[i] = (mid_arg){.pool = p, .width = WIDTH, .base = round % 2 ? i * WIDTH : 0};
            assert_int_equal(sluice_group_run(g, mid, &args[i]), SLUICE_OK);
        }
        sluice_group_result res;
        sluice_err err = sluice_group_wait(g, &res);
        sluice_group_stats st;
        sluice_group_stats_get(g, &st);
        assert_int_equal(st.accepted, MIDS);
        assert_int_equal(st.completed + st.failed + st.skipped, MIDS);
        if (round % 2 == 0) {
            /* Values 1..20 only: nothing fails, everything runs. */
            assert_int_equal(err, SLUICE_OK);
            assert_int_equal(atomic_load(&leaf_sum), MIDS * (WIDTH * (WIDTH + 1) / 2));
        } else {
            /* 97 and 194 are among 1..240: some mid reports SLUICE_ETASK. */
            assert_int_equal(err, SLUICE_ETASK);
        }
        sluice_group_destroy(g);
    }
    assert_int_equal(atomic_load(&broken), 0);
    /* Drain first: the no-op trampolines of helped tasks may still be
     * queued, and an undrained destroy would hand them to an abandon
     * handler this pool does not have (see group.h). */
    assert_int_equal(sluice_pool_drain(p, 0, NULL), SLUICE_OK);
    sluice_pool_destroy(p);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_sem_stress),
        cmocka_unit_test(test_breaker_stress),
        cmocka_unit_test(test_limiter_stress),
        cmocka_unit_test(test_group_stress),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
