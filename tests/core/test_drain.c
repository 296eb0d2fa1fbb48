/*
 * tests/core/test_drain.c - drain and destroy: stop accepting (ECLOSED),
 * run what is queued, the report, the drain deadline (queued tasks handed
 * back with SLUICE_ABANDON_DRAIN, running tasks see should_stop), blocked
 * submitters woken with ECLOSED by drain and by destroy, destroy of an
 * undrained pool, drain twice, from a worker, and concurrently.
 */
#include "common/pool.h"

static void hold_workers(sluice_pool *p, gate *g, unsigned k)
{
    for (unsigned i = 0; i < k; i++) {
        assert_int_equal(sluice_pool_submit(p, task_gate, g), SLUICE_OK);
    }
    WAIT_FOR(atomic_load(&g->inside) == (int)k, "%u workers at the gate", k);
    WAIT_FOR(stats_now(p).queue_depth == 0, "gate tasks taken");
}

typedef struct drainer {
    sluice_pool *p;
    uint64_t timeout;
    sluice_drain_report rep;
    sluice_err rc;
    _Atomic int done;
} drainer;

static void *drainer_main(void *arg)
{
    drainer *d = arg;
    d->rc = sluice_pool_drain(d->p, d->timeout, &d->rep);
    atomic_store(&d->done, 1);
    return NULL;
}

typedef struct blocked {
    sluice_pool *p;
    sluice_task_fn fn;
    void *arg;
    _Atomic int rc;
    _Atomic int done;
} blocked;

static void *blocked_main(void *arg)
{
    blocked *b = arg;
    atomic_store(&b->rc, (int)sluice_pool_submit(b->p, b->fn, b->arg));
    atomic_store(&b->done, 1);
    return NULL;
}

static void test_drain_runs_queued_and_reports(void **state)
{
    (void)state;
    tally *t = tally_new();
    gate *g = gate_new();
    sluice_pool_config cfg;
    base_config(&cfg, "drain", 2, 64, t);
    with_hooks(&cfg);
    cfg.min_workers = 1;
    sluice_pool *p;
    CREATE_POOL(&cfg, &p);
    hold_workers(p, g, 2);
    for (int i = 0; i < 10; i++) {
        assert_int_equal(sluice_pool_submit(p, task_count, t), SLUICE_OK);
    }
    drainer d = {.p = p, .timeout = 0};
    pthread_t th;
    START_THREAD(&th, drainer_main, &d);
    WAIT_FOR(stats_now(p).draining, "drain to start");
    /* Closed: submits are refused, and not counted as rejected. */
    assert_int_equal(sluice_pool_submit(p, task_count, t), SLUICE_ECLOSED);
    assert_int_equal(sluice_pool_try_submit(p, task_count, t), SLUICE_ECLOSED);
    assert_int_equal(atomic_load(&d.done), 0); /* still waiting for the held tasks */
    gate_open(g);
    pthread_join(th, NULL);
    assert_int_equal(d.rc, SLUICE_OK);
    assert_false(d.rep.timed_out);
    assert_int_equal(d.rep.completed, 12);
    assert_int_equal(d.rep.still_running, 0);
    assert_int_equal(d.rep.handed_back, 0);
    assert_true(d.rep.elapsed_ns > 0);
    sluice_pool_stats s = stats_now(p);
    assert_int_equal(s.rejected, 0);
    assert_int_equal(s.submitted, 12);
    assert_int_equal(s.completed, 12);
    assert_int_equal(s.queue_depth, 0);
    assert_int_equal(s.running, 0);
    ASSERT_IDENTITY(p);
    /* After a finished drain the workers are gone (each ran its fini). */
    WAIT_FOR(stats_now(p).workers == 0, "workers to exit");
    assert_int_equal(atomic_load(&t->finis), atomic_load(&t->inits));
    assert_int_equal(atomic_load(&t->events_by[SLUICE_EVENT_DRAIN_START]), 1);
    assert_int_equal(atomic_load(&t->events_by[SLUICE_EVENT_DRAIN_END]), 1);
    /* Again: OK with an empty report. */
    sluice_drain_report r2;
    memset(&r2, 0xff, sizeof r2);
    assert_int_equal(sluice_pool_drain(p, 0, &r2), SLUICE_OK);
    assert_int_equal(r2.completed, 0);
    assert_int_equal(r2.handed_back, 0);
    assert_false(r2.timed_out);
    sluice_pool_destroy(p);
    assert_int_equal(atomic_load(&t->abandoned_total), 0);
    gate_free(g);
    tally_free(t);
}

/* The drain deadline (fake clock): queued tasks are handed back with
 * SLUICE_ABANDON_DRAIN, running ones see should_stop. */
static _Atomic int stopped_by_flag;
static int task_until_stop(void *arg)
{
    gate *g = arg;
    if (!gate_pass(g, true)) {
        if (sluice_task_should_stop()) {
            atomic_fetch_add(&stopped_by_flag, 1);
        }
    }
    return 0;
}

static void test_drain_deadline(void **state)
{
    (void)state;
    tally *t = tally_new();
    gate *g = gate_new();
    sluice_fake_clock fc;
    sluice_fake_clock_init(&fc, 10 * SLUICE_NS_PER_SEC);
    sluice_pool_config cfg;
    base_config(&cfg, "drain-dl", 2, 64, t);
    cfg.clock = &fc.clock;
    sluice_pool *p;
    CREATE_POOL(&cfg, &p);
    atomic_store(&stopped_by_flag, 0);
    for (int i = 0; i < 2; i++) {
        assert_int_equal(sluice_pool_submit(p, task_until_stop, g), SLUICE_OK);
    }
    WAIT_FOR(atomic_load(&g->inside) == 2, "two running");
    for (int i = 0; i < 5; i++) {
        assert_int_equal(sluice_pool_submit(p, task_count, t), SLUICE_OK);
    }
    drainer d = {.p = p, .timeout = 30 * SLUICE_NS_PER_SEC};
    pthread_t th;
    START_THREAD(&th, drainer_main, &d);
    WAIT_FOR(stats_now(p).draining, "drain to start");
    sluice_fake_clock_advance(&fc, 29 * SLUICE_NS_PER_SEC);
    for (int i = 0; i < 30; i++) {
        poll_pause();
    }
    assert_int_equal(atomic_load(&d.done), 0);
    assert_int_equal(atomic_load(&stopped_by_flag), 0);
    sluice_fake_clock_advance(&fc, 2 * SLUICE_NS_PER_SEC);
    pthread_join(th, NULL);
    assert_int_equal(d.rc, SLUICE_ETIMEDOUT);
    assert_true(d.rep.timed_out);
    assert_int_equal(d.rep.handed_back, 5);
    assert_true(d.rep.elapsed_ns >= 30 * SLUICE_NS_PER_SEC);
    assert_true(d.rep.still_running <= 2);
    assert_int_equal(d.rep.completed + d.rep.still_running, 2);
    /* The running tasks saw their stop flag and returned. */
    WAIT_FOR(atomic_load(&stopped_by_flag) == 2, "running tasks to see should_stop");
    assert_int_equal(atomic_load(&t->abandoned_by[SLUICE_ABANDON_DRAIN]), 5);
    assert_int_equal(atomic_load(&t->ran), 0);
    ASSERT_IDENTITY(p);
    sluice_pool_stats s = stats_now(p);
    assert_int_equal(s.abandoned, 5);
    assert_int_equal(s.completed, 2);
    sluice_pool_destroy(p);
    assert_int_equal(atomic_load(&t->abandoned_total), 5); /* destroy hands back nothing more */
    gate_free(g);
    tally_free(t);
}

/* Submitters blocked for space wake with ECLOSED when drain begins. */
static void test_drain_wakes_blocked_submitters(void **state)
{
    (void)state;
    tally *t = tally_new();
    gate *g = gate_new();
    sluice_pool_config cfg;
    base_config(&cfg, "drain-blk", 1, 2, t);
    sluice_pool *p;
    CREATE_POOL(&cfg, &p);
    hold_workers(p, g, 1);
    assert_int_equal(sluice_pool_submit(p, task_count, t), SLUICE_OK);
    assert_int_equal(sluice_pool_submit(p, task_count, t), SLUICE_OK);
    blocked b[3];
    pthread_t th[3];
    for (int i = 0; i < 3; i++) {
        b[i] = (blocked){.p = p, .fn = task_count, .arg = t};
        START_THREAD(&th[i], blocked_main, &b[i]);
    }
    WAIT_FOR(stats_now(p).waiting == 3, "three blocked submitters");
    drainer d = {.p = p};
    pthread_t dt;
    START_THREAD(&dt, drainer_main, &d);
    for (int i = 0; i < 3; i++) {
        pthread_join(th[i], NULL); /* they return while the gate is still shut */
        assert_int_equal(atomic_load(&b[i].rc), SLUICE_ECLOSED);
    }
    assert_int_equal(stats_now(p).waiting, 0);
    assert_int_equal(atomic_load(&d.done), 0);
    gate_open(g);
    pthread_join(dt, NULL);
    assert_int_equal(d.rc, SLUICE_OK);
    assert_int_equal(d.rep.completed, 3);
    ASSERT_IDENTITY(p);
    sluice_pool_stats s = stats_now(p);
    assert_int_equal(s.rejected, 0);
    assert_int_equal(s.submitted, 3);
    assert_int_equal(s.waiting_hwm, 3);
    sluice_pool_destroy(p);
    gate_free(g);
    tally_free(t);
}

/* destroy while submitters are blocked and tasks run: submitters wake with
 * ECLOSED, running tasks see should_stop, queued tasks are handed back
 * with SLUICE_ABANDON_DESTROY, every thread is joined. */
static void test_destroy_with_blocked_submitters(void **state)
{
    (void)state;
    tally *t = tally_new();
    gate *g = gate_new();
    int threads_before = thread_baseline();
    sluice_pool_config cfg;
    base_config(&cfg, "destroy-blk", 2, 3, t);
    with_hooks(&cfg);
    sluice_pool *p;
    CREATE_POOL(&cfg, &p);
    atomic_store(&stopped_by_flag, 0);
    for (int i = 0; i < 2; i++) {
        assert_int_equal(sluice_pool_submit(p, task_until_stop, g), SLUICE_OK);
    }
    WAIT_FOR(atomic_load(&g->inside) == 2, "two running");
    for (int i = 0; i < 3; i++) {
        assert_int_equal(sluice_pool_submit(p, task_count, t), SLUICE_OK);
    }
    blocked b[4];
    pthread_t th[4];
    for (int i = 0; i < 4; i++) {
        b[i] = (blocked){.p = p, .fn = task_count, .arg = t};
        START_THREAD(&th[i], blocked_main, &b[i]);
    }
    WAIT_FOR(stats_now(p).waiting == 4, "four blocked submitters");
    sluice_pool_destroy(p);
    for (int i = 0; i < 4; i++) {
        pthread_join(th[i], NULL);
        assert_int_equal(atomic_load(&b[i].rc), SLUICE_ECLOSED);
    }
    assert_int_equal(atomic_load(&stopped_by_flag), 2);
    assert_int_equal(atomic_load(&t->abandoned_by[SLUICE_ABANDON_DESTROY]), 3);
    assert_int_equal(atomic_load(&t->ran), 0);
    assert_int_equal(atomic_load(&t->finis), atomic_load(&t->inits));
    assert_int_equal(thread_count(), threads_before);
    gate_free(g);
    tally_free(t);
}

/* destroy of an undrained pool with queued work hands it all back. */
static void test_destroy_undrained_hands_back(void **state)
{
    (void)state;
    tally *t = tally_new();
    gate *g = gate_new();
    sluice_pool_config cfg;
    base_config(&cfg, "destroy-q", 1, 16, t);
    sluice_pool *p;
    CREATE_POOL(&cfg, &p);
    atomic_store(&stopped_by_flag, 0);
    assert_int_equal(sluice_pool_submit(p, task_until_stop, g), SLUICE_OK);
    WAIT_FOR(atomic_load(&g->inside) == 1, "one running");
    sluice_submit_opts o = {.label = "queued"};
    for (int i = 0; i < 10; i++) {
        assert_int_equal(sluice_pool_submit_ex(p, task_count, t, &o), SLUICE_OK);
    }
    sluice_pool_destroy(p);
    assert_int_equal(atomic_load(&t->abandoned_by[SLUICE_ABANDON_DESTROY]), 10);
    assert_int_equal(atomic_load(&t->abandoned_total), 10);
    assert_int_equal(atomic_load(&stopped_by_flag), 1);
    /* An idle, empty pool destroys cleanly too. */
    sluice_pool_config c2;
    base_config(&c2, "destroy-idle", 3, 4, t);
    c2.prewarm = true;
    CREATE_POOL(&c2, &p);
    sluice_pool_destroy(p);
    gate_free(g);
    tally_free(t);
}

/* drain from a worker of the same pool would wait on itself. */
typedef struct self_drain {
    sluice_pool *p;
    _Atomic int rc;
    _Atomic int done;
} self_drain;

static int task_drains_own_pool(void *arg)
{
    self_drain *s = arg;
    atomic_store(&s->rc, (int)sluice_pool_drain(s->p, 0, NULL));
    atomic_store(&s->done, 1);
    return 0;
}

static void test_drain_from_worker_edeadlk(void **state)
{
    (void)state;
    tally *t = tally_new();
    sluice_pool_config cfg;
    base_config(&cfg, "drain-self", 1, 4, t);
    sluice_pool *p;
    CREATE_POOL(&cfg, &p);
    self_drain s = {.p = p};
    assert_int_equal(sluice_pool_submit(p, task_drains_own_pool, &s), SLUICE_OK);
    WAIT_FOR(atomic_load(&s.done), "the task's drain to return");
    assert_int_equal(atomic_load(&s.rc), SLUICE_EDEADLK);
    /* The pool is still open. */
    assert_int_equal(sluice_pool_submit(p, task_count, t), SLUICE_OK);
    ASSERT_IDENTITY(p);
    sluice_pool_destroy(p);
    tally_free(t);
}

/* Two drains at once serialise; both return OK; the work is counted once. */
static void test_concurrent_drains(void **state)
{
    (void)state;
    tally *t = tally_new();
    gate *g = gate_new();
    sluice_pool_config cfg;
    base_config(&cfg, "drain-2", 2, 64, t);
    sluice_pool *p;
    CREATE_POOL(&cfg, &p);
    hold_workers(p, g, 2);
    for (int i = 0; i < 20; i++) {
        assert_int_equal(sluice_pool_submit(p, task_count, t), SLUICE_OK);
    }
    drainer d1 = {.p = p}, d2 = {.p = p};
    pthread_t a, b;
    START_THREAD(&a, drainer_main, &d1);
    START_THREAD(&b, drainer_main, &d2);
    WAIT_FOR(stats_now(p).draining, "drain to start");
    gate_open(g);
    pthread_join(a, NULL);
    pthread_join(b, NULL);
    assert_int_equal(d1.rc, SLUICE_OK);
    assert_int_equal(d2.rc, SLUICE_OK);
    assert_int_equal(d1.rep.completed + d2.rep.completed, 22);
    ASSERT_IDENTITY(p);
    sluice_pool_destroy(p);
    gate_free(g);
    tally_free(t);
}

/* destroy while another thread drains: destroy waits for the drain. */
static void test_destroy_during_drain(void **state)
{
    (void)state;
    tally *t = tally_new();
    gate *g = gate_new();
    sluice_pool_config cfg;
    base_config(&cfg, "drain-destroy", 1, 8, t);
    sluice_pool *p;
    CREATE_POOL(&cfg, &p);
    hold_workers(p, g, 1);
    for (int i = 0; i < 5; i++) {
        assert_int_equal(sluice_pool_submit(p, task_count, t), SLUICE_OK);
    }
    drainer d = {.p = p};
    pthread_t th;
    START_THREAD(&th, drainer_main, &d);
    WAIT_FOR(stats_now(p).draining, "drain to start");
    gate_open(g); /* the drain can finish; destroy must wait for it */
    sluice_pool_destroy(p);
    pthread_join(th, NULL);
    assert_int_equal(d.rc, SLUICE_OK);
    assert_int_equal(atomic_load(&t->ran) + atomic_load(&t->abandoned_total), 5);
    gate_free(g);
    tally_free(t);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_drain_runs_queued_and_reports),
        cmocka_unit_test(test_drain_deadline),
        cmocka_unit_test(test_drain_wakes_blocked_submitters),
        cmocka_unit_test(test_destroy_with_blocked_submitters),
        cmocka_unit_test(test_destroy_undrained_hands_back),
        cmocka_unit_test(test_drain_from_worker_edeadlk),
        cmocka_unit_test(test_concurrent_drains),
        cmocka_unit_test(test_destroy_during_drain),
    };
    return cmocka_run_group_tests_name("core_drain", tests, NULL, NULL);
}
