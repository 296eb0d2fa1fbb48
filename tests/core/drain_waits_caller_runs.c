/*
 * tests/core/drain_waits_caller_runs.c - regression test: a drain that
 * returns SLUICE_OK must not leave an accepted task running.
 *
 * Under CALLER_RUNS a full queue makes submit run the task on the
 * submitting thread; the task is accepted (counted in submitted and
 * caller_ran). drain(0) waits only for worker slots and the queue, so it
 * returns SLUICE_OK (report.still_running == 0, stats.running == 0) while
 * that task is still running: the accounting identity does not hold right
 * after a successful drain, and a destroy that follows frees the pool
 * under the running task (run_task then writes caller_shard in freed
 * memory when the task returns).
 *
 * The drain runs on a helper thread; it must not return while the
 * caller-run task is still inside its gate, and right after it returns
 * the accounting identity must hold exactly.
 */
#include "common/pool.h"

typedef struct caller_arg {
    sluice_pool *p;
    gate *g;
    sluice_err rc;
} caller_arg;

static void *caller_main(void *arg)
{
    caller_arg *c = arg;
    c->rc = sluice_pool_submit(c->p, task_gate_hard, c->g);
    return NULL;
}

typedef struct drain_arg {
    sluice_pool *p;
    sluice_drain_report rep;
    sluice_err rc;
    sluice_pool_stats after; /* taken right after drain returned */
    _Atomic int done;
} drain_arg;

static void *drainer_main(void *arg)
{
    drain_arg *d = arg;
    d->rc = sluice_pool_drain(d->p, 0, &d->rep);
    sluice_pool_stats_get(d->p, &d->after);
    atomic_store(&d->done, 1);
    return NULL;
}

static void test_drain_waits_for_caller_runs_tasks(void **state)
{
    (void)state;
    tally *t = tally_new();
    gate *g1 = gate_new();
    gate *g2 = gate_new();
    sluice_pool_config cfg;
    base_config(&cfg, "drain-cr", 1, 1, t);
    cfg.overflow = SLUICE_OVERFLOW_CALLER_RUNS;
    sluice_pool *p;
    CREATE_POOL(&cfg, &p);

    assert_int_equal(sluice_pool_submit(p, task_gate_hard, g1), SLUICE_OK);
    WAIT_FOR(atomic_load(&g1->inside) == 1, "worker holds g1");
    assert_int_equal(sluice_pool_submit(p, task_nop, NULL), SLUICE_OK);
    WAIT_FOR(stats_now(p).queue_depth == 1, "queue full");

    caller_arg c = {.p = p, .g = g2, .rc = -1};
    pthread_t th;
    START_THREAD(&th, caller_main, &c);
    WAIT_FOR(atomic_load(&g2->inside) == 1, "the caller runs the overflow task");
    assert_int_equal(stats_now(p).running, 2); /* the caller-run task counts as running */

    drain_arg *d = calloc(1, sizeof *d);
    assert_non_null(d);
    d->p = p;
    pthread_t dth;
    START_THREAD(&dth, drainer_main, d);
    gate_open(g1);
    /* The workers' share is done when the worker has exited (closed, empty). */
    WAIT_FOR(stats_now(p).workers == 0 && stats_now(p).queue_depth == 0, "the worker side drained");
    /* A drain that does not wait for the caller-run task returns now; give
     * it ample time to (wrongly) do so. With the fix it waits for g2. */
    uint64_t until = real_now_ns() + 200 * SLUICE_NS_PER_MS;
    while (!atomic_load(&d->done) && real_now_ns() < until) {
        poll_pause();
    }
    bool returned_early = atomic_load(&d->done);
    gate_open(g2);
    pthread_join(th, NULL);
    pthread_join(dth, NULL);
    stats_print("right after drain", &d->after);

    assert_false(returned_early);
    assert_int_equal(c.rc, SLUICE_OK);
    assert_int_equal(d->rc, SLUICE_OK);
    assert_int_equal(d->rep.still_running, 0);
    /* A successful drain ran everything it accepted. */
    assert_int_equal(d->after.running, 0);
    assert_int_equal(d->after.submitted, stats_ended(&d->after));
    assert_int_equal(d->after.caller_ran, 1);

    ASSERT_IDENTITY(p);
    sluice_pool_destroy(p);
    free(d);
    gate_free(g1);
    gate_free(g2);
    tally_free(t);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_drain_waits_for_caller_runs_tasks),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
