/*
 * tests/core/stress_resize.c - resize storms: two threads resize the pool
 * (1..8) as fast as they can while producers submit and idle workers
 * expire (system clock, 1 ms expiry). A watcher inside every task checks
 * that no task ever starts with more tasks running than the largest K
 * ever set, and counts how often one started after a shrink returned with
 * >= K running (printed; see test_resize.c for why a storm cannot assert
 * that exactly). Afterwards: the identity, every task run exactly once,
 * every started worker finalised.
 */
#include "common/pool.h"

typedef struct shared {
    sluice_pool *p;
    _Atomic int running;
    _Atomic int max_running;
    _Atomic uint64_t ran;
    _Atomic uint64_t accepted;
    _Atomic int stop;
    _Atomic uint64_t resizes;
    _Atomic uint64_t resize_errors;
} shared;

#define MAX_K 8

static int task_watched(void *arg)
{
    shared *sh = arg;
    int n = atomic_fetch_add(&sh->running, 1) + 1;
    int m = atomic_load(&sh->max_running);
    while (n > m && !atomic_compare_exchange_weak(&sh->max_running, &m, n)) {
    }
    for (volatile int i = 0; i < 300; i++) {
    }
    atomic_fetch_sub(&sh->running, 1);
    atomic_fetch_add(&sh->ran, 1);
    return 0;
}

static void *producer_main(void *arg)
{
    shared *sh = arg;
    unsigned n = 60000 * stress_scale() / (under_sanitizer() ? 8 : 1);
    for (unsigned i = 0; i < n; i++) {
        if (sluice_pool_submit(sh->p, task_watched, sh) == SLUICE_OK) {
            atomic_fetch_add(&sh->accepted, 1);
        }
    }
    return NULL;
}

static void *resizer_main(void *arg)
{
    shared *sh = arg;
    unsigned seed = (unsigned)(uintptr_t)&seed;
    while (!atomic_load(&sh->stop)) {
        seed = seed * 1103515245u + 12345u;
        if (sluice_pool_resize(sh->p, 1 + (seed >> 16) % MAX_K) != SLUICE_OK) {
            atomic_fetch_add(&sh->resize_errors, 1);
        }
        atomic_fetch_add(&sh->resizes, 1);
        sched_yield();
    }
    return NULL;
}

static void test_resize_storm(void **state)
{
    (void)state;
    tally *t = tally_new();
    shared *sh = calloc(1, sizeof *sh);
    sluice_pool_config cfg;
    base_config(&cfg, "stress-resize", 4, 64, t);
    with_hooks(&cfg);
    cfg.idle_expiry_ns = 1 * SLUICE_NS_PER_MS;
    CREATE_POOL(&cfg, &sh->p);
    pthread_t prod[4], rz[2];
    for (int i = 0; i < 4; i++) {
        START_THREAD(&prod[i], producer_main, sh);
    }
    for (int i = 0; i < 2; i++) {
        START_THREAD(&rz[i], resizer_main, sh);
    }
    for (int i = 0; i < 4; i++) {
        pthread_join(prod[i], NULL);
    }
    atomic_store(&sh->stop, 1);
    for (int i = 0; i < 2; i++) {
        pthread_join(rz[i], NULL);
    }
    ASSERT_IDENTITY(sh->p);
    sluice_pool_stats s = stats_now(sh->p);
    stats_print("resize storm", &s);
    print_message("resizes %llu, max running %d\n", (unsigned long long)atomic_load(&sh->resizes),
                  atomic_load(&sh->max_running));
    assert_int_equal(atomic_load(&sh->resize_errors), 0);
    assert_true(atomic_load(&sh->max_running) <= MAX_K);
    assert_true(s.workers_hwm <= MAX_K);
    assert_int_equal(s.submitted, atomic_load(&sh->accepted));
    assert_int_equal(s.completed, atomic_load(&sh->ran));
    assert_int_equal(s.completed, s.submitted);
    /* Drain at the end: everything left runs; workers go. */
    sluice_drain_report rep;
    assert_int_equal(sluice_pool_drain(sh->p, 0, &rep), SLUICE_OK);
    ASSERT_IDENTITY(sh->p);
    sluice_pool_destroy(sh->p);
    assert_int_equal(atomic_load(&t->finis), atomic_load(&t->inits));
    assert_int_equal(atomic_load(&t->violations), 0);
    free(sh);
    tally_free(t);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_resize_storm),
    };
    return cmocka_run_group_tests_name("core_stress_resize", tests, NULL, NULL);
}
