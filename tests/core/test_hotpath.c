/*
 * tests/core/test_hotpath.c - properties of the hot path that a test can
 * see from outside: no allocation per task once the pool is warm (malloc
 * and friends are wrapped at link time, so calls made by libsluice's own
 * objects are counted), and idle workers that park (no CPU burnt while a
 * warm pool has nothing to do).
 */
#include <sys/resource.h>

#include "common/pool.h"

/* ---- allocation counting (-Wl,--wrap=...) ----------------------------- */

void *__real_malloc(size_t n);
void *__real_calloc(size_t a, size_t b);
void *__real_realloc(void *p, size_t n);
void *__real_aligned_alloc(size_t al, size_t n);
void *__wrap_malloc(size_t n);
void *__wrap_calloc(size_t a, size_t b);
void *__wrap_realloc(void *p, size_t n);
void *__wrap_aligned_alloc(size_t al, size_t n);

static _Atomic uint64_t allocs;

void *__wrap_malloc(size_t n)
{
    atomic_fetch_add_explicit(&allocs, 1, memory_order_relaxed);
    return __real_malloc(n);
}

void *__wrap_calloc(size_t a, size_t b)
{
    atomic_fetch_add_explicit(&allocs, 1, memory_order_relaxed);
    return __real_calloc(a, b);
}

void *__wrap_realloc(void *p, size_t n)
{
    atomic_fetch_add_explicit(&allocs, 1, memory_order_relaxed);
    return __real_realloc(p, n);
}

void *__wrap_aligned_alloc(size_t al, size_t n)
{
    atomic_fetch_add_explicit(&allocs, 1, memory_order_relaxed);
    return __real_aligned_alloc(al, n);
}

static void test_no_allocation_per_task(void **state)
{
    (void)state;
    tally *t = tally_new();
    sluice_pool_config cfg;
    base_config(&cfg, "hot", 2, 1024, t);
    cfg.event_handler = NULL;
    cfg.prewarm = true;
    cfg.min_workers = 2;
    sluice_pool *p;
    uint64_t at_create = atomic_load(&allocs);
    CREATE_POOL(&cfg, &p);
    /* The wrap does see the pool's allocations (else this test proves
     * nothing). */
    assert_true(atomic_load(&allocs) > at_create);
    /* Warm up: every code path the steady state takes has run once. */
    for (int i = 0; i < 2000; i++) {
        assert_int_equal(sluice_pool_submit(p, task_count, t), SLUICE_OK);
    }
    ASSERT_IDENTITY(p);
    uint64_t before = atomic_load(&allocs);
    const unsigned n = 20000;
    sluice_submit_opts o = {.label = "hot", .deadline_ns = UINT64_MAX};
    for (unsigned i = 0; i < n; i++) {
        sluice_err rc =
            i % 2 ? sluice_pool_submit(p, task_count, t) : sluice_pool_submit_ex(p, task_count, t, &o);
        assert_int_equal(rc, SLUICE_OK);
    }
    ASSERT_IDENTITY(p);
    uint64_t during = atomic_load(&allocs) - before;
    print_message("%llu allocations for %u tasks\n", (unsigned long long)during, n);
    /* Zero expected; a handful (stats, a zombie list) is tolerated, one
     * per task is not. */
    assert_true(during < 16);
    sluice_pool_destroy(p);
    tally_free(t);
}

/* An idle warm pool burns (almost) no CPU: workers park. This measures
 * CPU time over a short real-time window; it is a measurement, not a wait
 * for an event. */
static void test_idle_workers_park(void **state)
{
    (void)state;
    if (under_sanitizer()) {
        skip(); /* sanitizer runtimes have their own background threads */
    }
    tally *t = tally_new();
    sluice_pool_config cfg;
    base_config(&cfg, "idle", 4, 64, t);
    cfg.prewarm = true;
    sluice_pool *p;
    CREATE_POOL(&cfg, &p);
    for (int i = 0; i < 100; i++) {
        assert_int_equal(sluice_pool_submit(p, task_count, t), SLUICE_OK);
    }
    ASSERT_IDENTITY(p);
    WAIT_FOR(stats_now(p).idle == 4, "four parked workers");
    struct timespec c0, c1;
    clock_gettime(CLOCK_PROCESS_CPUTIME_ID, &c0);
    struct timespec window = {.tv_sec = 0, .tv_nsec = 300 * 1000 * 1000};
    nanosleep(&window, NULL);
    clock_gettime(CLOCK_PROCESS_CPUTIME_ID, &c1);
    double cpu_ms = (double)(c1.tv_sec - c0.tv_sec) * 1e3 + (double)(c1.tv_nsec - c0.tv_nsec) / 1e6;
    print_message("idle pool: %.2f ms CPU in 300 ms\n", cpu_ms);
    assert_true(cpu_ms < 30.0);
    sluice_pool_destroy(p);
    tally_free(t);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_no_allocation_per_task),
        cmocka_unit_test(test_idle_workers_park),
    };
    return cmocka_run_group_tests_name("core_hotpath", tests, NULL, NULL);
}
