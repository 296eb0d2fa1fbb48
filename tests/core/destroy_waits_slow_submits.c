/*
 * tests/core/destroy_waits_slow_submits.c - regression test: destroy must
 * wait for every submit that is inside the full-queue slow path, not only
 * for those already counted in `waiting`.
 *
 * pool.h: "Calls already blocked inside submit are released safely".
 * destroy waits until `waiting` is zero, but a BLOCK submitter enters
 * `waiting` only after effective_submit_deadline() and a few lock-free
 * low-water polls (wait_for_space), and leaves it before its last touches of the
 * pool (spawn_for_work after a successful wait, refused() -> rejected and
 * the event handler after a timeout). A submitter in any of those windows
 * is not waited for: destroy frees the ring and the pool under it.
 *
 * The window is held open deterministically: effective_submit_deadline()
 * reads the pool clock (a submit timeout is set), and the test clock holds
 * that one submitter there. destroy runs on a helper thread; it must not
 * finish while the submitter is still inside submit.
 */
#include "common/pool.h"

typedef struct test_clock {
    sluice_clock clock;
    _Atomic int held;
    _Atomic int release;
} test_clock;

static _Thread_local bool hold_me;

static uint64_t test_clock_now(void *ctx)
{
    test_clock *c = ctx;
    if (hold_me) {
        hold_me = false;
        atomic_store(&c->held, 1);
        uint64_t limit = real_now_ns() + SAFETY_NS;
        while (!atomic_load(&c->release) && real_now_ns() < limit) {
            poll_pause();
        }
    }
    return real_now_ns();
}

typedef struct shared {
    sluice_pool *p;
    sluice_err rc;
    _Atomic int destroyed;
} shared;

static void *submitter_main(void *arg)
{
    shared *sh = arg;
    hold_me = true;
    sh->rc = sluice_pool_submit(sh->p, task_nop, NULL);
    return NULL;
}

static void *destroyer_main(void *arg)
{
    shared *sh = arg;
    sluice_pool_destroy(sh->p);
    atomic_store(&sh->destroyed, 1);
    return NULL;
}

static void test_destroy_waits_for_slow_path_submitters(void **state)
{
    (void)state;
    tally *t = tally_new();
    gate *g = gate_new();
    test_clock *clk = calloc(1, sizeof *clk);
    assert_non_null(clk);
    clk->clock.now_ns = test_clock_now;
    clk->clock.clock_ctx = clk;

    sluice_pool_config cfg;
    base_config(&cfg, "destroy-slow", 1, 1, t);
    cfg.submit_timeout_ns = 10 * SLUICE_NS_PER_SEC;
    cfg.timing_disabled = true;
    cfg.clock = &clk->clock;
    shared *sh = calloc(1, sizeof *sh);
    assert_non_null(sh);
    CREATE_POOL(&cfg, &sh->p);

    assert_int_equal(sluice_pool_submit(sh->p, task_gate, g), SLUICE_OK);
    WAIT_FOR(atomic_load(&g->inside) == 1, "the worker holds the gate task");
    assert_int_equal(sluice_pool_submit(sh->p, task_nop, NULL), SLUICE_OK);
    WAIT_FOR(stats_now(sh->p).queue_depth == 1, "queue full");

    pthread_t sub, des;
    START_THREAD(&sub, submitter_main, sh);
    WAIT_FOR(atomic_load(&clk->held), "the submitter inside the slow path");

    START_THREAD(&des, destroyer_main, sh);
    /* Give destroy ample time to (wrongly) finish; with the fix it waits
     * for the held submitter and this loop just runs out. */
    uint64_t until = real_now_ns() + 300 * SLUICE_NS_PER_MS;
    while (!atomic_load(&sh->destroyed) && real_now_ns() < until) {
        poll_pause();
    }
    bool destroyed_under_submitter = atomic_load(&sh->destroyed);
    atomic_store(&clk->release, 1);
    pthread_join(sub, NULL);
    pthread_join(des, NULL);

    assert_false(destroyed_under_submitter);
    assert_int_equal(sh->rc, SLUICE_ECLOSED);
    free(sh);
    free(clk);
    gate_free(g);
    tally_free(t);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_destroy_waits_for_slow_path_submitters),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
