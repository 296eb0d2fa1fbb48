/*
 * tests/sync/test_group.c - task groups: results and error mapping, the
 * first error cancelling the rest, the in-flight limit and try_run,
 * panics reported to wait, waiting from inside the group's own pool
 * (helping on a K=1 pool, EDEADLK from the group's own task), parent
 * cancellation, and tasks handed back by the pool.
 *
 * Tasks block on gates (tests/common/wait.h, with safety timeouts) that
 * the test opens; nothing sleeps.
 */
#include <pthread.h>
#include <sched.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include <cmocka.h>

#include "common/wait.h"
#include "sluice/group.h"
#include "sluice/task.h"

static sluice_group *make_group(unsigned limit, unsigned threads, sluice_pool *pool, sluice_ctx *parent)
{
    sluice_group_config cfg;
    sluice_group_config_init(&cfg);
    cfg.name = "test_group";
    cfg.limit = limit;
    cfg.threads = threads;
    cfg.pool = pool;
    cfg.parent = parent;
    sluice_group *g = NULL;
    char err[160];
    assert_int_equal(sluice_group_create(&cfg, &g, err, sizeof err), SLUICE_OK);
    return g;
}

static sluice_group_stats gstats(sluice_group *g)
{
    sluice_group_stats st;
    sluice_group_stats_get(g, &st);
    return st;
}

/* ---- basics ------------------------------------------------------------------- */

static _Atomic int sum;

static int add_task(void *arg)
{
    atomic_fetch_add(&sum, (int)(intptr_t)arg);
    return 0;
}

static void test_basic_own_threads(void **state)
{
    (void)state;
    sluice_group_config cfg;
    sluice_group_config_init(&cfg);
    cfg.name = "bad name";
    sluice_group *g = NULL;
    char err[160];
    assert_int_equal(sluice_group_create(&cfg, &g, err, sizeof err), SLUICE_EINVAL);
    assert_non_null(strstr(err, "name:"));
    assert_int_equal(sluice_group_run(NULL, add_task, NULL), SLUICE_EINVAL);
    assert_int_equal(sluice_group_wait(NULL, NULL), SLUICE_EINVAL);
    sluice_group_destroy(NULL);

    atomic_store(&sum, 0);
    g = make_group(3, 0, NULL, NULL);
    assert_string_equal(sluice_group_name(g), "test_group");
    assert_int_equal(sluice_group_run(g, NULL, NULL), SLUICE_EINVAL);
    for (int i = 1; i <= 100; i++) {
        assert_int_equal(sluice_group_run(g, add_task, (void *)(intptr_t)i), SLUICE_OK);
    }
    sluice_group_result res;
    assert_int_equal(sluice_group_wait(g, &res), SLUICE_OK);
    assert_int_equal(res.err, SLUICE_OK);
    assert_int_equal(atomic_load(&sum), 5050);
    sluice_group_stats st = gstats(g);
    assert_int_equal(st.accepted, 100);
    assert_int_equal(st.completed, 100);
    assert_int_equal(st.running + st.pending, 0);
    assert_true(st.waited);
    /* wait cancels the group's context; a waited group takes no more. */
    assert_int_equal(sluice_ctx_err(sluice_group_ctx(g)), SLUICE_ECANCELED);
    assert_int_equal(sluice_group_run(g, add_task, NULL), SLUICE_ECLOSED);
    assert_int_equal(sluice_group_wait(g, NULL), SLUICE_OK);
    sluice_group_destroy(g);
}

/* ---- errors ------------------------------------------------------------------- */

typedef struct err_job {
    gate *gate;      /* wait here first, if set */
    int rc;          /* what to return */
    sluice_group *g; /* to observe the context */
    _Atomic int *saw_cancel;
} err_job;

static int err_task(void *arg)
{
    err_job *j = arg;
    if (j->gate) {
        gate_pass(j->gate, false);
    }
    if (j->saw_cancel && sluice_ctx_done(sluice_group_ctx(j->g))) {
        atomic_fetch_add(j->saw_cancel, 1);
    }
    return j->rc;
}

static void test_error_mapping(void **state)
{
    (void)state;
    /* A sluice_err code is itself. */
    sluice_group *g = make_group(0, 2, NULL, NULL);
    err_job ok = {.rc = 0}, io = {.rc = SLUICE_EIO};
    sluice_group_run(g, err_task, &ok);
    sluice_group_run(g, err_task, &io);
    sluice_group_result res;
    assert_int_equal(sluice_group_wait(g, &res), SLUICE_EIO);
    assert_int_equal(res.first_rc, SLUICE_EIO);
    assert_false(res.panicked);
    assert_int_equal(gstats(g).failed, 1);
    sluice_group_destroy(g);

    /* Any other non-zero value is SLUICE_ETASK, with the value kept. */
    g = make_group(0, 1, NULL, NULL);
    err_job neg = {.rc = -1};
    sluice_group_run(g, err_task, &neg);
    assert_int_equal(sluice_group_wait(g, &res), SLUICE_ETASK);
    assert_int_equal(res.first_rc, -1);
    sluice_group_destroy(g);
}

/* The first error cancels the context (with it as cause); tasks not yet
 * started are skipped; running ones see the cancel. */
static void test_first_error_cancels(void **state)
{
    (void)state;
    gate go;
    gate_init(&go);
    _Atomic int saw = 0;
    sluice_group *g = make_group(0, 1, NULL, NULL); /* one thread: FIFO */
    err_job first = {.gate = &go, .rc = SLUICE_EIO};
    err_job later[5];
    assert_int_equal(sluice_group_run(g, err_task, &first), SLUICE_OK);
    for (int i = 0; i < 5; i++) {
        later[i] = (err_job){.rc = 0, .g = g, .saw_cancel = &saw};
        assert_int_equal(sluice_group_run(g, err_task, &later[i]), SLUICE_OK);
    }
    gate_open(&go);
    sluice_group_result res;
    assert_int_equal(sluice_group_wait(g, &res), SLUICE_EIO);
    sluice_group_stats st = gstats(g);
    assert_int_equal(st.failed, 1);
    assert_int_equal(st.skipped, 5);
    assert_int_equal(st.completed, 0);
    assert_int_equal(atomic_load(&saw), 0); /* none of them ran */
    sluice_group_destroy(g);

    /* A running sibling sees the cancel through the group context. */
    gate hold, go2;
    gate_init(&hold);
    gate_init(&go2);
    atomic_store(&saw, 0);
    g = make_group(0, 2, NULL, NULL);
    err_job watcher = {.gate = &hold, .rc = 0, .g = g, .saw_cancel = &saw};
    err_job failer = {.gate = &go2, .rc = SLUICE_ETIMEDOUT};
    sluice_group_run(g, err_task, &watcher);
    sluice_group_run(g, err_task, &failer);
    gate_open(&go2);
    WAIT_FOR(sluice_ctx_done(sluice_group_ctx(g)), "the group's context to end");
    assert_int_equal(sluice_ctx_err(sluice_group_ctx(g)), SLUICE_ETIMEDOUT);
    gate_open(&hold);
    assert_int_equal(sluice_group_wait(g, NULL), SLUICE_ETIMEDOUT);
    assert_int_equal(atomic_load(&saw), 1);
    sluice_group_destroy(g);
}

/* ---- the limit ---------------------------------------------------------------- */

static _Atomic int now_running, max_running;

static int limited_task(void *arg)
{
    gate *g = arg;
    int n = atomic_fetch_add(&now_running, 1) + 1;
    int m = atomic_load(&max_running);
    while (n > m && !atomic_compare_exchange_weak(&max_running, &m, n)) {
    }
    if (g) {
        gate_pass(g, false);
    }
    for (int i = 0; i < 100; i++) {
        sched_yield();
    }
    atomic_fetch_sub(&now_running, 1);
    return 0;
}

static void test_limit_and_try_run(void **state)
{
    (void)state;
    atomic_store(&now_running, 0);
    atomic_store(&max_running, 0);
    sluice_group *g = make_group(2, 4, NULL, NULL);
    gate hold;
    gate_init(&hold);
    assert_int_equal(sluice_group_try_run(g, limited_task, &hold), SLUICE_OK);
    assert_int_equal(sluice_group_try_run(g, limited_task, &hold), SLUICE_OK);
    assert_int_equal(sluice_group_try_run(g, limited_task, &hold), SLUICE_EAGAIN);
    assert_int_equal(gstats(g).try_refused, 1);
    gate_open(&hold);
    for (int i = 0; i < 40; i++) {
        assert_int_equal(sluice_group_run(g, limited_task, NULL), SLUICE_OK); /* blocks at the limit */
    }
    assert_int_equal(sluice_group_wait(g, NULL), SLUICE_OK);
    assert_true(atomic_load(&max_running) <= 2);
    assert_int_equal(gstats(g).completed, 42);
    sluice_group_destroy(g);
}

/* ---- panics ------------------------------------------------------------------- */

static int panic_task(void *arg)
{
    (void)arg;
    sluice_panic("boom %d", 7);
}

static void test_panic_reported(void **state)
{
    (void)state;
    atomic_store(&sum, 0);
    sluice_group *g = make_group(0, 2, NULL, NULL);
    sluice_group_run(g, add_task, (void *)(intptr_t)1);
    sluice_group_run(g, panic_task, NULL);
    sluice_group_result res;
    assert_int_equal(sluice_group_wait(g, &res), SLUICE_ETASK);
    assert_true(res.panicked);
    assert_string_equal(res.message, "boom 7");
    assert_int_equal(gstats(g).panicked, 1);
    sluice_group_destroy(g);
}

/* ---- waiting from inside the pool ------------------------------------------------- */

static sluice_pool *make_pool(unsigned k, size_t cap, sluice_overflow ov,
                              void (*abandon)(const sluice_abandoned *, void *))
{
    sluice_pool_config pc;
    sluice_pool_config_init(&pc);
    pc.name = "grp_pool";
    pc.workers = k;
    pc.queue_capacity = cap;
    pc.overflow = ov;
    pc.abandon_handler = abandon;
    pc.panic_handler = NULL;
    sluice_pool *p = NULL;
    char err[160];
    assert_int_equal(sluice_pool_create(&pc, &p, err, sizeof err), SLUICE_OK);
    return p;
}

typedef struct fanout {
    sluice_pool *pool;
    int subtasks;
    bool with_panic;
    sluice_err result;
    sluice_err self_wait; /* wait on its own group from inside a subtask */
    sluice_group_stats st;
    gate done;
} fanout;

static sluice_group *_Atomic self_group;
static _Atomic int self_wait_result;

static int self_waiter(void *arg)
{
    (void)arg;
    atomic_store(&self_wait_result, (int)sluice_group_wait(atomic_load(&self_group), NULL));
    return 0;
}

static int fanout_task(void *arg)
{
    fanout *f = arg;
    sluice_group *g = make_group(2, 0, f->pool, NULL);
    atomic_store(&self_group, g);
    for (int i = 0; i < f->subtasks; i++) {
        /* At the limit, run() helps: the pool's only worker is this one. */
        if (sluice_group_run(g, add_task, (void *)(intptr_t)1) != SLUICE_OK) {
            f->result = SLUICE_EINVAL;
        }
    }
    sluice_group_run(g, self_waiter, NULL);
    if (f->with_panic) {
        sluice_group_run(g, panic_task, NULL);
    }
    sluice_group_result res;
    sluice_err err = sluice_group_wait(g, &res);
    if (f->result == SLUICE_OK) {
        f->result = err;
    }
    sluice_group_stats_get(g, &f->st);
    sluice_group_destroy(g);
    gate_open(&f->done); /* this task survived its subtasks */
    return 0;
}

static void test_no_deadlock_in_worker(void **state)
{
    (void)state;
    sluice_pool *p = make_pool(1, 64, SLUICE_OVERFLOW_BLOCK, NULL);
    atomic_store(&sum, 0);
    fanout f = {.pool = p, .subtasks = 10};
    gate_init(&f.done);
    assert_int_equal(sluice_pool_submit(p, fanout_task, &f), SLUICE_OK);
    assert_true(gate_pass(&f.done, false));
    assert_int_equal(f.result, SLUICE_OK);
    assert_int_equal(atomic_load(&sum), 10);
    assert_int_equal(atomic_load(&self_wait_result), SLUICE_EDEADLK);
    assert_true(f.st.helped >= 1); /* the only worker ran them itself */
    assert_int_equal(f.st.completed, 11);

    /* A panic in a helped subtask is reported, and the waiter carries on. */
    fanout f2 = {.pool = p, .subtasks = 3, .with_panic = true};
    gate_init(&f2.done);
    assert_int_equal(sluice_pool_submit(p, fanout_task, &f2), SLUICE_OK);
    assert_true(gate_pass(&f2.done, false));
    assert_int_equal(f2.result, SLUICE_ETASK);
    assert_int_equal(f2.st.panicked, 1);
    sluice_pool_drain(p, 0, NULL);
    sluice_pool_stats ps;
    sluice_pool_stats_get(p, &ps);
    assert_int_equal(ps.panicked, 0); /* caught by the group, not the worker */
    sluice_pool_destroy(p);
}

/* ---- parent cancellation and tasks handed back ---------------------------------- */

static void test_parent_cancel(void **state)
{
    (void)state;
    sluice_ctx *parent;
    assert_int_equal(sluice_ctx_create(&parent, NULL, 0, NULL), SLUICE_OK);
    gate hold;
    gate_init(&hold);
    err_job blocker = {.gate = &hold, .rc = 0};
    sluice_group *g = make_group(0, 1, NULL, parent);
    sluice_group_run(g, err_task, &blocker);
    /* Inside its gate, not just claimed: a claimed task still checks the
     * group's context before it runs, and would be skipped by the cancel. */
    WAIT_FOR(atomic_load(&hold.inside) == 1, "the blocker to start");
    err_job rest[3] = {{.rc = 0}, {.rc = 0}, {.rc = 0}};
    for (int i = 0; i < 3; i++) {
        sluice_group_run(g, err_task, &rest[i]);
    }
    sluice_ctx_cancel(parent, SLUICE_ECANCELED);
    assert_int_equal(sluice_ctx_err(sluice_group_ctx(g)), SLUICE_ECANCELED);
    gate_open(&hold);
    sluice_group_result res;
    assert_int_equal(sluice_group_wait(g, &res), SLUICE_ECANCELED);
    sluice_group_stats st = gstats(g);
    assert_int_equal(st.completed, 1);
    assert_int_equal(st.skipped, 3);
    sluice_group_destroy(g);
    sluice_ctx_release(parent);
}

/* The shared pool's own handler: group tasks must never reach it (they
 * come back to the group through their on_abandon). */
static _Atomic int pool_handler_calls;
static void pool_abandon_counter(const sluice_abandoned *t, void *user)
{
    (void)t;
    (void)user;
    atomic_fetch_add(&pool_handler_calls, 1);
}

static void test_pool_hands_back(void **state)
{
    (void)state;
    atomic_store(&pool_handler_calls, 0);
    sluice_pool *p = make_pool(1, 1, SLUICE_OVERFLOW_DROP_OLDEST, pool_abandon_counter);
    gate hold;
    gate_init(&hold);
    assert_int_equal(sluice_pool_submit(p, task_at_gate, &hold), SLUICE_OK);
    /* Wait until the worker holds the gate task (queue empty). */
    GATE_WAIT_ENTERED(&hold, 1);
    atomic_store(&sum, 0);
    sluice_group *g = make_group(0, 0, p, NULL);
    for (int i = 0; i < 3; i++) {
        assert_int_equal(sluice_group_run(g, add_task, (void *)(intptr_t)1), SLUICE_OK);
    }
    /* The queue holds one: two were dropped, back to the group (not to the
     * pool's handler, which knows nothing of the group's memory). */
    gate_open(&hold);
    assert_int_equal(sluice_group_wait(g, NULL), SLUICE_EFULL);
    sluice_group_stats st = gstats(g);
    assert_int_equal(st.failed, 2);
    assert_int_equal(st.completed + st.skipped, 1);
    assert_int_equal(atomic_load(&pool_handler_calls), 0);
    sluice_group_destroy(g);
    sluice_pool_destroy(p);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_basic_own_threads),   cmocka_unit_test(test_error_mapping),
        cmocka_unit_test(test_first_error_cancels), cmocka_unit_test(test_limit_and_try_run),
        cmocka_unit_test(test_panic_reported),      cmocka_unit_test(test_no_deadlock_in_worker),
        cmocka_unit_test(test_parent_cancel),       cmocka_unit_test(test_pool_hands_back),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
