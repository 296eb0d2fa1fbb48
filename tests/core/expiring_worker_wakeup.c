/*
 * tests/core/expiring_worker_wakeup.c - regression test: a task submitted
 * while the only worker is expiring must still run (no lost wake-up).
 *
 * The window (worker.c): an expiring worker decides to leave in park()
 * under park_mu (unlinks itself, idle -= 1) and only afterwards leaves
 * `alive` (leave_alive_above), without re-checking the queue. A producer
 * that pushes in between either
 *   (a) read idle == 1 before the worker unlinked itself: spawn_for_work
 *       calls sluice__wake(p, 1), which finds the stack empty, and then
 *       returns because want <= idle, without starting a worker; or
 *   (b) reads idle == 0 but alive == K (not yet decremented): no spawn.
 * The worker then exits and the task sits in the queue with no worker
 * until the next submit (or a drain).
 *
 * The window is opened deterministically with the pool's own clock: the
 * expiry decision in park() reads the pool clock while holding park_mu, so
 * a test clock can hold the worker exactly there while the main thread
 * submits (the submit's push and its read of `idle` happen while the
 * worker is held; the submit then waits for park_mu).
 */
#include "common/pool.h"

typedef struct test_clock {
    sluice_clock clock;
    _Atomic uint64_t now;
    _Atomic int armed; /* hold the next worker read of the clock */
    _Atomic int held;  /* a worker is being held */
    _Atomic int about_to_submit;
} test_clock;

static uint64_t test_clock_now(void *ctx)
{
    test_clock *c = ctx;
    if (sluice_worker_index() != UINT32_MAX && atomic_exchange(&c->armed, 0)) {
        atomic_store(&c->held, 1);
        uint64_t limit = real_now_ns() + SAFETY_NS;
        while (!atomic_load(&c->about_to_submit) && real_now_ns() < limit) {
            sched_yield();
        }
        /* Give the submit time to push and read `idle` (it then blocks on
         * park_mu, which this worker holds). Widening a window only: the
         * test asserts nothing about time. */
        uint64_t end = real_now_ns() + 20 * SLUICE_NS_PER_MS;
        while (real_now_ns() < end) {
            sched_yield();
        }
    }
    return atomic_load(&c->now);
}

static void test_submit_during_expiry_runs(void **state)
{
    (void)state;
    tally *t = tally_new();
    test_clock *clk = calloc(1, sizeof *clk);
    assert_non_null(clk);
    clk->clock.now_ns = test_clock_now;
    clk->clock.clock_ctx = clk;
    atomic_store(&clk->now, SLUICE_NS_PER_SEC);

    sluice_pool_config cfg;
    base_config(&cfg, "exprace", 1, 4, t);
    cfg.idle_expiry_ns = 10 * SLUICE_NS_PER_SEC;
    cfg.timing_disabled = true;
    cfg.clock = &clk->clock;
    sluice_pool *p;
    CREATE_POOL(&cfg, &p);

    _Atomic uint64_t ran = 0;
    assert_int_equal(sluice_pool_submit(p, task_inc, (void *)&ran), SLUICE_OK);
    WAIT_FOR(atomic_load(&ran) == 1 && stats_now(p).idle == 1, "the worker ran the task and parked");

    atomic_store(&clk->armed, 1);
    atomic_fetch_add(&clk->now, 20 * SLUICE_NS_PER_SEC); /* past the expiry */
    WAIT_FOR(atomic_load(&clk->held), "the worker's expiry check");
    atomic_store(&clk->about_to_submit, 1);
    assert_int_equal(sluice_pool_submit(p, task_inc, (void *)&ran), SLUICE_OK);

    /* The task must run: either the worker stays, or a new one starts.
     * With the bug it never does (until the drain below), so the bound is
     * only a safety limit: 10 s, not 2, which a loaded TSan run starting a
     * worker thread could come near. */
    uint64_t limit = real_now_ns() + 10 * SLUICE_NS_PER_SEC;
    while (atomic_load(&ran) != 2 && real_now_ns() < limit) {
        poll_pause();
    }
    sluice_pool_stats s = stats_now(p);
    stats_print("after the racing submit", &s);
    uint64_t ran_then = atomic_load(&ran);

    sluice_drain_report rep;
    assert_int_equal(sluice_pool_drain(p, 0, &rep), SLUICE_OK); /* runs a stranded task */
    ASSERT_IDENTITY(p);
    sluice_pool_destroy(p);
    free(clk);
    tally_free(t);
    assert_int_equal(ran_then, 2);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_submit_during_expiry_runs),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
