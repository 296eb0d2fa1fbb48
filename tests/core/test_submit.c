/*
 * tests/core/test_submit.c - submitting: submit, try_submit, submit_ex and
 * batch; every overflow policy (BLOCK with the pool timeout and a per-call
 * deadline, REJECT, CALLER_RUNS, DROP_OLDEST); the deadlock guard; task
 * return values; and the accounting identity after each test.
 *
 * The queue is filled deterministically: K workers are held inside gate
 * tasks (the test waits until they are all inside), so every later submit
 * lands in the queue, and the queue's fill level is known exactly. Time
 * moves only through a sluice_fake_clock.
 */
#include "common/pool.h"

/* Holds all K workers at `g`: submits K gate tasks and waits until all
 * are inside. */
static void hold_workers(sluice_pool *p, gate *g, unsigned k)
{
    for (unsigned i = 0; i < k; i++) {
        assert_int_equal(sluice_pool_submit(p, task_gate, g), SLUICE_OK);
    }
    WAIT_FOR(atomic_load(&g->inside) == (int)k, "%u workers at the gate", k);
    WAIT_FOR(stats_now(p).queue_depth == 0, "gate tasks taken");
}

/* Fills the (held) queue with n counting tasks. */
static void fill_queue(sluice_pool *p, size_t n, tally *t)
{
    for (size_t i = 0; i < n; i++) {
        assert_int_equal(sluice_pool_try_submit(p, task_count, t), SLUICE_OK);
    }
    assert_int_equal(stats_now(p).queue_depth, n);
}

/* ---- the basics ---------------------------------------------------------- */

static void test_submit_runs_everything(void **state)
{
    (void)state;
    tally *t = tally_new();
    sluice_pool_config cfg;
    base_config(&cfg, "basic", 4, 16, t);
    sluice_pool *p;
    CREATE_POOL(&cfg, &p);
    const unsigned n = 2000;
    for (unsigned i = 0; i < n; i++) {
        assert_int_equal(sluice_pool_submit(p, task_count, t), SLUICE_OK);
    }
    ASSERT_IDENTITY(p);
    sluice_pool_stats s = stats_now(p);
    assert_int_equal(atomic_load(&t->ran), n);
    assert_int_equal(s.submitted, n);
    assert_int_equal(s.completed, n);
    assert_int_equal(s.failed + s.panicked + s.dropped + s.shed + s.abandoned + s.rejected, 0);
    assert_true(s.workers <= 4);
    assert_true(s.workers_hwm <= 4);
    assert_true(s.started_workers >= 1);
    sluice_pool_destroy(p);
    assert_int_equal(atomic_load(&t->abandoned_total), 0);
    tally_free(t);
}

static int task_return(void *arg)
{
    return (int)(intptr_t)arg;
}

/* Non-zero return values are failures, counted; 0 is success. */
static void test_return_values_counted(void **state)
{
    (void)state;
    tally *t = tally_new();
    sluice_pool_config cfg;
    base_config(&cfg, "rc", 2, 64, t);
    sluice_pool *p;
    CREATE_POOL(&cfg, &p);
    const int values[] = {0, 1, -1, 42, 0, INT32_MIN, 0, 7};
    for (size_t i = 0; i < 8; i++) {
        assert_int_equal(sluice_pool_submit(p, task_return, (void *)(intptr_t)values[i]), SLUICE_OK);
    }
    ASSERT_IDENTITY(p);
    sluice_pool_stats s = stats_now(p);
    assert_int_equal(s.completed, 3);
    assert_int_equal(s.failed, 5);
    assert_int_equal(s.panicked, 0);
    sluice_pool_destroy(p);
    tally_free(t);
}

static void test_bad_arguments(void **state)
{
    (void)state;
    tally *t = tally_new();
    sluice_pool_config cfg;
    base_config(&cfg, "badargs", 1, 4, t);
    sluice_pool *p;
    CREATE_POOL(&cfg, &p);
    assert_int_equal(sluice_pool_submit(p, NULL, NULL), SLUICE_EINVAL);
    assert_int_equal(sluice_pool_try_submit(p, NULL, NULL), SLUICE_EINVAL);
    assert_int_equal(sluice_pool_submit_ex(p, NULL, NULL, NULL), SLUICE_EINVAL);
    size_t acc = 99;
    assert_int_equal(sluice_pool_submit_batch(p, NULL, 1, false, &acc), SLUICE_EINVAL);
    assert_int_equal(acc, 0);
    sluice_task_spec one = {.fn = task_nop};
    assert_int_equal(sluice_pool_submit_batch(p, &one, 1, false, NULL), SLUICE_EINVAL);
    assert_int_equal(sluice_pool_submit_batch(p, NULL, 0, false, &acc), SLUICE_OK);
    assert_int_equal(acc, 0);
    sluice_pool_stats s = stats_now(p);
    assert_int_equal(s.submitted, 0);
    sluice_pool_destroy(p);
    tally_free(t);
}

/* With one worker, tasks run in submission order. */
static _Atomic unsigned order_next;
static _Atomic unsigned order_bad;
static int task_order(void *arg)
{
    unsigned want = (unsigned)(uintptr_t)arg;
    unsigned got = atomic_fetch_add(&order_next, 1);
    if (got != want) {
        atomic_fetch_add(&order_bad, 1);
    }
    return 0;
}

static void test_fifo_with_one_worker(void **state)
{
    (void)state;
    tally *t = tally_new();
    sluice_pool_config cfg;
    base_config(&cfg, "fifo", 1, 7, t); /* not a power of two */
    sluice_pool *p;
    CREATE_POOL(&cfg, &p);
    atomic_store(&order_next, 0);
    atomic_store(&order_bad, 0);
    for (unsigned i = 0; i < 500; i++) {
        assert_int_equal(sluice_pool_submit(p, task_order, (void *)(uintptr_t)i), SLUICE_OK);
    }
    ASSERT_IDENTITY(p);
    assert_int_equal(atomic_load(&order_next), 500);
    assert_int_equal(atomic_load(&order_bad), 0);
    sluice_pool_destroy(p);
    tally_free(t);
}

/* queue_capacity 1 is a valid configuration and must be exact: one task
 * waits, the next is refused. */
static void test_capacity_one_is_bounded(void **state)
{
    (void)state;
    tally *t = tally_new();
    gate *g = gate_new();
    sluice_pool_config cfg;
    base_config(&cfg, "cap1", 1, 1, t);
    cfg.overflow = SLUICE_OVERFLOW_REJECT;
    sluice_pool *p;
    CREATE_POOL(&cfg, &p);
    hold_workers(p, g, 1);
    assert_int_equal(sluice_pool_submit(p, task_count, t), SLUICE_OK);
    sluice_err second = sluice_pool_submit(p, task_count, t);
    sluice_pool_stats s = stats_now(p);
    if (second != SLUICE_EFULL || s.queue_depth > 1) {
        /* Do not leave a pool whose accounting is broken to destroy(): it
         * would hang. Report and leak it (the test has failed anyway). */
        gate_open(g);
        fail_msg("queue_capacity 1: second submit returned %s with queue_depth %zu (capacity %zu)",
                 sluice_err_name(second), s.queue_depth, s.queue_capacity);
    }
    gate_open(g);
    ASSERT_IDENTITY(p);
    assert_int_equal(atomic_load(&t->ran), 1);
    sluice_pool_destroy(p);
    gate_free(g);
    tally_free(t);
}

/* ---- try_submit ------------------------------------------------------------ */

static void test_try_submit_never_blocks(void **state)
{
    (void)state;
    tally *t = tally_new();
    gate *g = gate_new();
    sluice_pool_config cfg;
    base_config(&cfg, "try", 2, 3, t);
    sluice_pool *p;
    CREATE_POOL(&cfg, &p);
    hold_workers(p, g, 2);
    for (int i = 0; i < 3; i++) {
        assert_int_equal(sluice_pool_try_submit(p, task_count, t), SLUICE_OK);
    }
    /* BLOCK policy, but try_submit: EFULL at once. */
    assert_int_equal(sluice_pool_try_submit(p, task_count, t), SLUICE_EFULL);
    assert_int_equal(sluice_pool_try_submit(p, task_count, t), SLUICE_EFULL);
    sluice_pool_stats s = stats_now(p);
    assert_int_equal(s.queue_depth, 3);
    assert_int_equal(s.queue_depth_hwm, 3);
    assert_int_equal(s.rejected, 2);
    assert_int_equal(s.submitted, 5);
    assert_int_equal(s.waiting, 0);
    assert_int_equal(s.running, 2);
    gate_open(g);
    ASSERT_IDENTITY(p);
    assert_int_equal(atomic_load(&t->ran), 3);
    assert_true(atomic_load(&t->events_by[SLUICE_EVENT_SUBMIT_REFUSED]) >= 1);
    sluice_pool_destroy(p);
    gate_free(g);
    tally_free(t);
}

/* ---- BLOCK --------------------------------------------------------------- */

typedef struct submitter {
    sluice_pool *pool;
    sluice_task_fn fn;
    void *arg;
    sluice_submit_opts opts;
    bool use_opts;
    _Atomic int done;
    sluice_err result;
    uint64_t returned_fake_ns;
    sluice_fake_clock *fake;
} submitter;

static void *submitter_main(void *arg)
{
    submitter *s = arg;
    sluice_err rc = s->use_opts ? sluice_pool_submit_ex(s->pool, s->fn, s->arg, &s->opts)
                                : sluice_pool_submit(s->pool, s->fn, s->arg);
    s->result = rc;
    if (s->fake) {
        s->returned_fake_ns = sluice_clock_now(&s->fake->clock);
    }
    atomic_store(&s->done, 1);
    return NULL;
}

/* A blocked submitter gets in as soon as a worker frees a place. */
static void test_block_waits_for_space(void **state)
{
    (void)state;
    tally *t = tally_new();
    gate *g = gate_new();
    sluice_pool_config cfg;
    base_config(&cfg, "blk", 1, 2, t);
    sluice_pool *p;
    CREATE_POOL(&cfg, &p);
    hold_workers(p, g, 1);
    fill_queue(p, 2, t);

    submitter sub = {.pool = p, .fn = task_count, .arg = t};
    pthread_t th;
    START_THREAD(&th, submitter_main, &sub);
    WAIT_FOR(stats_now(p).waiting == 1, "the submitter to block");
    assert_int_equal(atomic_load(&sub.done), 0);
    sluice_pool_stats s = stats_now(p);
    assert_int_equal(s.waiting_hwm, 1);
    assert_int_equal(s.queue_depth, 2);
    gate_open(g);
    pthread_join(th, NULL);
    assert_int_equal(sub.result, SLUICE_OK);
    ASSERT_IDENTITY(p);
    s = stats_now(p);
    assert_int_equal(s.submitted, 4);
    assert_int_equal(s.completed, 4);
    assert_int_equal(s.rejected, 0);
    assert_int_equal(s.waiting, 0);
    sluice_pool_destroy(p);
    gate_free(g);
    tally_free(t);
}

/* The pool's submit timeout bounds a blocking submit (fake clock). */
static void test_block_pool_timeout(void **state)
{
    (void)state;
    tally *t = tally_new();
    gate *g = gate_new();
    sluice_fake_clock fc;
    sluice_fake_clock_init(&fc, 1000 * SLUICE_NS_PER_SEC);
    sluice_pool_config cfg;
    base_config(&cfg, "blkto", 1, 2, t);
    cfg.clock = &fc.clock;
    cfg.submit_timeout_ns = 5 * SLUICE_NS_PER_SEC;
    sluice_pool *p;
    CREATE_POOL(&cfg, &p);
    hold_workers(p, g, 1);
    fill_queue(p, 2, t);

    submitter sub = {.pool = p, .fn = task_count, .arg = t, .fake = &fc};
    pthread_t th;
    START_THREAD(&th, submitter_main, &sub);
    WAIT_FOR(stats_now(p).waiting == 1, "the submitter to block");
    sluice_fake_clock_advance(&fc, 4 * SLUICE_NS_PER_SEC);
    /* Not yet: 4 s < 5 s. Give it a few poll periods to (wrongly) fire. */
    for (int i = 0; i < 50; i++) {
        poll_pause();
    }
    assert_int_equal(atomic_load(&sub.done), 0);
    sluice_fake_clock_advance(&fc, 2 * SLUICE_NS_PER_SEC);
    pthread_join(th, NULL);
    assert_int_equal(sub.result, SLUICE_ETIMEDOUT);
    sluice_pool_stats s = stats_now(p);
    assert_int_equal(s.rejected, 1);
    assert_int_equal(s.waiting, 0);
    assert_int_equal(s.submitted, 3);

    /* Live change: 0 = no limit. The submitter then waits until space. */
    sluice_pool_set_submit_timeout(p, 0);
    submitter sub2 = {.pool = p, .fn = task_count, .arg = t};
    START_THREAD(&th, submitter_main, &sub2);
    WAIT_FOR(stats_now(p).waiting == 1, "the second submitter to block");
    sluice_fake_clock_advance(&fc, 3600 * SLUICE_NS_PER_SEC);
    for (int i = 0; i < 50; i++) {
        poll_pause();
    }
    assert_int_equal(atomic_load(&sub2.done), 0);
    gate_open(g);
    pthread_join(th, NULL);
    assert_int_equal(sub2.result, SLUICE_OK);
    ASSERT_IDENTITY(p);
    assert_int_equal(atomic_load(&t->ran), 3);
    sluice_pool_destroy(p);
    gate_free(g);
    tally_free(t);
}

/* Hysteresis: a blocked submitter is let in once a quarter of the queue is
 * free (capacity 8: at depth 6), not at the first free slot, so a producer
 * faster than its workers sleeps once per quarter-queue instead of once per
 * task. At its deadline it takes any free slot: it fails only if the queue
 * is really full then. */
static void test_block_low_water(void **state)
{
    (void)state;
    tally *t = tally_new();
    gate g[10];
    for (int i = 0; i < 10; i++) {
        gate_init(&g[i]);
    }
    sluice_fake_clock fc;
    const uint64_t t0 = 70 * SLUICE_NS_PER_SEC;
    sluice_fake_clock_init(&fc, t0);
    sluice_pool_config cfg;
    base_config(&cfg, "lowwater", 1, 8, t);
    cfg.clock = &fc.clock;
    sluice_pool *p;
    CREATE_POOL(&cfg, &p);
    hold_workers(p, &g[0], 1);
    for (int i = 1; i <= 8; i++) {
        assert_int_equal(sluice_pool_try_submit(p, task_gate_hard, &g[i]), SLUICE_OK);
    }
    assert_int_equal(stats_now(p).queue_depth, 8);

    submitter a = {.pool = p, .fn = task_count, .arg = t};
    pthread_t th;
    START_THREAD(&th, submitter_main, &a);
    WAIT_FOR(stats_now(p).waiting == 1, "a to block");

    /* One slot frees (depth 7): above the low-water mark, a stays asleep. */
    gate_open(&g[0]);
    WAIT_FOR(atomic_load(&g[1].inside) == 1, "the worker at task 1");
    for (int i = 0; i < 30; i++) {
        poll_pause();
    }
    assert_int_equal(atomic_load(&a.done), 0);
    assert_int_equal(stats_now(p).waiting, 1);
    assert_int_equal(stats_now(p).queue_depth, 7);

    /* A second one (depth 6 = 8 - 8/4): a is woken and gets in. */
    gate_open(&g[1]);
    pthread_join(th, NULL);
    assert_int_equal(a.result, SLUICE_OK);
    WAIT_FOR(atomic_load(&g[2].inside) == 1, "the worker at task 2");
    assert_int_equal(stats_now(p).queue_depth, 7);

    /* A new submitter that finds a free slot takes it at once. */
    assert_int_equal(sluice_pool_submit(p, task_count, t), SLUICE_OK);
    assert_int_equal(stats_now(p).queue_depth, 8);

    /* b blocks on the full queue; one slot frees (depth 7), so b waits for
     * the low-water mark; when its deadline passes it takes that slot. */
    submitter b = {.pool = p, .fn = task_count, .arg = t, .use_opts = true, .fake = &fc};
    b.opts.submit_deadline_ns = t0 + SLUICE_NS_PER_SEC;
    START_THREAD(&th, submitter_main, &b);
    WAIT_FOR(stats_now(p).waiting == 1, "b to block");
    gate_open(&g[2]);
    WAIT_FOR(atomic_load(&g[3].inside) == 1, "the worker at task 3");
    for (int i = 0; i < 30; i++) {
        poll_pause();
    }
    assert_int_equal(atomic_load(&b.done), 0);
    assert_int_equal(stats_now(p).queue_depth, 7);
    sluice_fake_clock_advance(&fc, 2 * SLUICE_NS_PER_SEC);
    pthread_join(th, NULL);
    assert_int_equal(b.result, SLUICE_OK);
    assert_int_equal(stats_now(p).queue_depth, 8);

    /* Full at the deadline: ETIMEDOUT. */
    submitter c = {.pool = p, .fn = task_count, .arg = t, .use_opts = true, .fake = &fc};
    c.opts.submit_deadline_ns = sluice_clock_now(&fc.clock) + SLUICE_NS_PER_SEC;
    START_THREAD(&th, submitter_main, &c);
    WAIT_FOR(stats_now(p).waiting == 1, "c to block");
    sluice_fake_clock_advance(&fc, 2 * SLUICE_NS_PER_SEC);
    pthread_join(th, NULL);
    assert_int_equal(c.result, SLUICE_ETIMEDOUT);

    for (int i = 3; i <= 8; i++) {
        gate_open(&g[i]);
    }
    assert_int_equal(sluice_pool_drain(p, 0, NULL), SLUICE_OK);
    ASSERT_IDENTITY(p);
    sluice_pool_stats s = stats_now(p);
    assert_int_equal(s.submitted, 12);
    assert_int_equal(s.completed, 12);
    assert_int_equal(s.rejected, 1);
    sluice_pool_destroy(p);
    for (int i = 0; i < 10; i++) {
        gate_destroy(&g[i]);
    }
    tally_free(t);
}

/* Blocked submitters go first: while one waits for the low-water mark,
 * try_submit gets EFULL and a new BLOCK submit joins the wait, even with a
 * slot free, so producers that keep taking freed slots cannot starve it. */
static void test_block_waiters_go_first(void **state)
{
    (void)state;
    tally *t = tally_new();
    gate g[10];
    for (int i = 0; i < 10; i++) {
        gate_init(&g[i]);
    }
    sluice_pool_config cfg;
    base_config(&cfg, "fair", 1, 8, t);
    sluice_pool *p;
    CREATE_POOL(&cfg, &p);
    hold_workers(p, &g[0], 1);
    for (int i = 1; i <= 8; i++) {
        assert_int_equal(sluice_pool_try_submit(p, task_gate_hard, &g[i]), SLUICE_OK);
    }
    submitter a = {.pool = p, .fn = task_count, .arg = t};
    pthread_t ta, tb;
    START_THREAD(&ta, submitter_main, &a);
    WAIT_FOR(stats_now(p).waiting == 1, "a to block");
    gate_open(&g[0]);
    WAIT_FOR(atomic_load(&g[1].inside) == 1, "the worker at task 1");
    assert_int_equal(stats_now(p).queue_depth, 7); /* one slot free, a still waits */
    assert_int_equal(sluice_pool_try_submit(p, task_count, t), SLUICE_EFULL);
    submitter b = {.pool = p, .fn = task_count, .arg = t};
    START_THREAD(&tb, submitter_main, &b);
    WAIT_FOR(stats_now(p).waiting == 2, "b to join the wait");
    assert_int_equal(stats_now(p).queue_depth, 7);
    /* Depth 6 = the low-water mark: one waiter (either) gets in, depth 7;
     * the other is admitted at the next crossing, not by the slot left
     * above the mark (one wake-up per crossing, as pool.c says). */
    gate_open(&g[1]);
    WAIT_FOR(atomic_load(&g[2].inside) == 1 && stats_now(p).waiting == 1, "one waiter in");
    assert_int_equal(stats_now(p).queue_depth, 7);
    gate_open(&g[2]);
    pthread_join(ta, NULL);
    pthread_join(tb, NULL);
    assert_int_equal(a.result, SLUICE_OK);
    assert_int_equal(b.result, SLUICE_OK);
    for (int i = 3; i <= 8; i++) {
        gate_open(&g[i]);
    }
    assert_int_equal(sluice_pool_drain(p, 0, NULL), SLUICE_OK);
    ASSERT_IDENTITY(p);
    sluice_pool_stats s = stats_now(p);
    assert_int_equal(s.completed, 11);
    assert_int_equal(s.rejected, 1);
    assert_int_equal(atomic_load(&t->ran), 2);
    sluice_pool_destroy(p);
    for (int i = 0; i < 10; i++) {
        assert_int_equal(atomic_load(&g[i].timeouts), 0); /* no step passed by a safety timeout */
        gate_destroy(&g[i]);
    }
    tally_free(t);
}

/* A task's own on_abandon gets it back instead of the pool's handler. */
static _Atomic int own_abandons;
static _Atomic int own_reason_dropped, own_reason_destroy;
static void own_abandon(const sluice_abandoned *a)
{
    if (a->arg == (void *)&own_abandons && a->fn == task_nop) {
        atomic_fetch_add(&own_abandons, 1);
        if (a->reason == SLUICE_ABANDON_DROPPED) {
            atomic_fetch_add(&own_reason_dropped, 1);
        } else if (a->reason == SLUICE_ABANDON_DESTROY) {
            atomic_fetch_add(&own_reason_destroy, 1);
        }
    }
}

static void test_task_on_abandon(void **state)
{
    (void)state;
    atomic_store(&own_abandons, 0);
    atomic_store(&own_reason_dropped, 0);
    atomic_store(&own_reason_destroy, 0);
    tally *t = tally_new();
    gate *g = gate_new();
    sluice_pool_config cfg;
    base_config(&cfg, "ownab", 1, 2, t);
    cfg.overflow = SLUICE_OVERFLOW_DROP_OLDEST;
    sluice_pool *p;
    CREATE_POOL(&cfg, &p);
    hold_workers(p, g, 1);
    sluice_submit_opts o = {.label = "mine", .on_abandon = own_abandon};
    /* Two of mine fill the queue; two plain ones evict them. */
    assert_int_equal(sluice_pool_submit_ex(p, task_nop, &own_abandons, &o), SLUICE_OK);
    assert_int_equal(sluice_pool_submit_ex(p, task_nop, &own_abandons, &o), SLUICE_OK);
    assert_int_equal(sluice_pool_submit(p, task_count, t), SLUICE_OK);
    assert_int_equal(sluice_pool_submit(p, task_count, t), SLUICE_OK);
    assert_int_equal(atomic_load(&own_reason_dropped), 2);
    assert_int_equal(atomic_load(&t->abandoned_total), 0); /* the pool's handler saw none */
    /* Mine evicts a plain one: that one goes to the pool's handler. */
    assert_int_equal(sluice_pool_submit_ex(p, task_nop, &own_abandons, &o), SLUICE_OK);
    assert_int_equal(atomic_load(&t->abandoned_total), 1);
    /* Destroy with the worker still at the gate (task_gate returns on
     * stop): the plain task and mine are handed back, each to its own. */
    sluice_pool_destroy(p);
    assert_int_equal(atomic_load(&own_reason_destroy), 1);
    assert_int_equal(atomic_load(&own_abandons), 3);
    assert_int_equal(atomic_load(&t->abandoned_total), 2);
    assert_int_equal(atomic_load(&t->ran), 0);
    gate_free(g);
    tally_free(t);
}

/* A per-call submit deadline; the earlier of it and the pool timeout wins. */
static void test_block_per_call_deadline(void **state)
{
    (void)state;
    tally *t = tally_new();
    gate *g = gate_new();
    sluice_fake_clock fc;
    const uint64_t t0 = 50 * SLUICE_NS_PER_SEC;
    sluice_fake_clock_init(&fc, t0);
    sluice_pool_config cfg;
    base_config(&cfg, "blkdl", 1, 2, t);
    cfg.clock = &fc.clock;
    cfg.submit_timeout_ns = 10 * SLUICE_NS_PER_SEC;
    sluice_pool *p;
    CREATE_POOL(&cfg, &p);
    hold_workers(p, g, 1);
    fill_queue(p, 2, t);

    /* Per-call deadline earlier (t0+2s) than the pool timeout (t0+10s). */
    submitter a = {.pool = p, .fn = task_count, .arg = t, .use_opts = true, .fake = &fc};
    a.opts.submit_deadline_ns = t0 + 2 * SLUICE_NS_PER_SEC;
    pthread_t th;
    START_THREAD(&th, submitter_main, &a);
    WAIT_FOR(stats_now(p).waiting == 1, "a to block");
    sluice_fake_clock_advance(&fc, 1 * SLUICE_NS_PER_SEC);
    for (int i = 0; i < 30; i++) {
        poll_pause();
    }
    assert_int_equal(atomic_load(&a.done), 0);
    sluice_fake_clock_advance(&fc, 1 * SLUICE_NS_PER_SEC + 1);
    pthread_join(th, NULL);
    assert_int_equal(a.result, SLUICE_ETIMEDOUT);
    assert_true(a.returned_fake_ns >= t0 + 2 * SLUICE_NS_PER_SEC);
    assert_true(a.returned_fake_ns < t0 + 10 * SLUICE_NS_PER_SEC);

    /* Per-call deadline later (now+100s) than the pool timeout (now+10s). */
    uint64_t t1 = sluice_clock_now(&fc.clock);
    submitter b = {.pool = p, .fn = task_count, .arg = t, .use_opts = true, .fake = &fc};
    b.opts.submit_deadline_ns = t1 + 100 * SLUICE_NS_PER_SEC;
    START_THREAD(&th, submitter_main, &b);
    WAIT_FOR(stats_now(p).waiting == 1, "b to block");
    sluice_fake_clock_advance(&fc, 11 * SLUICE_NS_PER_SEC);
    pthread_join(th, NULL);
    assert_int_equal(b.result, SLUICE_ETIMEDOUT);
    assert_true(b.returned_fake_ns < t1 + 100 * SLUICE_NS_PER_SEC);

    /* A deadline already past: ETIMEDOUT without waiting for the clock. */
    submitter c = {.pool = p, .fn = task_count, .arg = t, .use_opts = true};
    c.opts.submit_deadline_ns = 1;
    START_THREAD(&th, submitter_main, &c);
    pthread_join(th, NULL);
    assert_int_equal(c.result, SLUICE_ETIMEDOUT);

    sluice_pool_stats s = stats_now(p);
    assert_int_equal(s.rejected, 3);
    gate_open(g);
    ASSERT_IDENTITY(p);
    assert_int_equal(atomic_load(&t->ran), 2);
    sluice_pool_destroy(p);
    gate_free(g);
    tally_free(t);
}

/* A blocked submitter gives up when its context is cancelled or its
 * context deadline passes. */
static void test_block_ctx(void **state)
{
    (void)state;
    tally *t = tally_new();
    gate *g = gate_new();
    sluice_fake_clock fc;
    sluice_fake_clock_init(&fc, SLUICE_NS_PER_SEC);
    sluice_pool_config cfg;
    base_config(&cfg, "blkctx", 1, 2, t);
    cfg.clock = &fc.clock;
    sluice_pool *p;
    CREATE_POOL(&cfg, &p);
    hold_workers(p, g, 1);
    fill_queue(p, 2, t);

    sluice_ctx *ctx;
    assert_int_equal(sluice_ctx_create(&ctx, NULL, 0, &fc.clock), SLUICE_OK);
    submitter a = {.pool = p, .fn = task_count, .arg = t, .use_opts = true};
    a.opts.ctx = ctx;
    pthread_t th;
    START_THREAD(&th, submitter_main, &a);
    WAIT_FOR(stats_now(p).waiting == 1, "a to block");
    sluice_ctx_cancel(ctx, SLUICE_ECANCELED);
    pthread_join(th, NULL);
    assert_int_equal(a.result, SLUICE_ECANCELED);
    sluice_ctx_release(ctx);

    sluice_ctx *ctx2;
    assert_int_equal(sluice_ctx_create(&ctx2, NULL, 3 * SLUICE_NS_PER_SEC, &fc.clock), SLUICE_OK);
    submitter b = {.pool = p, .fn = task_count, .arg = t, .use_opts = true};
    b.opts.ctx = ctx2;
    START_THREAD(&th, submitter_main, &b);
    WAIT_FOR(stats_now(p).waiting == 1, "b to block");
    sluice_fake_clock_advance(&fc, 5 * SLUICE_NS_PER_SEC);
    pthread_join(th, NULL);
    assert_int_equal(b.result, SLUICE_ETIMEDOUT);
    sluice_ctx_release(ctx2);

    gate_open(g);
    ASSERT_IDENTITY(p);
    sluice_pool_stats s = stats_now(p);
    assert_int_equal(s.submitted, 3);
    sluice_pool_destroy(p);
    gate_free(g);
    tally_free(t);
}

/* ---- REJECT ------------------------------------------------------------- */

static void test_reject_efull(void **state)
{
    (void)state;
    tally *t = tally_new();
    gate *g = gate_new();
    sluice_pool_config cfg;
    base_config(&cfg, "rej", 2, 4, t);
    cfg.overflow = SLUICE_OVERFLOW_REJECT;
    sluice_pool *p;
    CREATE_POOL(&cfg, &p);
    hold_workers(p, g, 2);
    for (int i = 0; i < 4; i++) {
        assert_int_equal(sluice_pool_submit(p, task_count, t), SLUICE_OK);
    }
    for (int i = 0; i < 5; i++) {
        assert_int_equal(sluice_pool_submit(p, task_count, t), SLUICE_EFULL);
    }
    sluice_submit_opts o = {.submit_deadline_ns = UINT64_MAX};
    assert_int_equal(sluice_pool_submit_ex(p, task_count, t, &o), SLUICE_EFULL);
    assert_int_equal(sluice_pool_try_submit(p, task_count, t), SLUICE_EFULL);
    sluice_pool_stats s = stats_now(p);
    assert_int_equal(s.rejected, 7);
    assert_int_equal(s.submitted, 6);
    assert_int_equal(s.waiting, 0);
    assert_int_equal(s.waiting_hwm, 0);
    assert_int_equal(atomic_load(&t->events_by[SLUICE_EVENT_SUBMIT_REFUSED]), 7);
    gate_open(g);
    ASSERT_IDENTITY(p);
    assert_int_equal(atomic_load(&t->ran), 4);
    /* Refused tasks were not handed to the abandon handler: the caller
     * kept them. */
    assert_int_equal(atomic_load(&t->abandoned_total), 0);
    sluice_pool_destroy(p);
    gate_free(g);
    tally_free(t);
}

/* ---- CALLER_RUNS ------------------------------------------------------ */

typedef struct where {
    pthread_t thread;
    _Atomic int ran;
    void *worker_state;
    unsigned worker_index;
    sluice_pool *pool;
    int rc;
} where;

static int task_where(void *arg)
{
    where *w = arg;
    w->thread = pthread_self();
    w->worker_state = sluice_worker_state();
    w->worker_index = sluice_worker_index();
    w->pool = sluice_task_pool();
    atomic_store(&w->ran, 1);
    return w->rc;
}

static void test_caller_runs(void **state)
{
    (void)state;
    tally *t = tally_new();
    gate *g = gate_new();
    sluice_pool_config cfg;
    base_config(&cfg, "cr", 1, 2, t);
    with_hooks(&cfg);
    cfg.overflow = SLUICE_OVERFLOW_CALLER_RUNS;
    sluice_pool *p;
    CREATE_POOL(&cfg, &p);
    hold_workers(p, g, 1);
    fill_queue(p, 2, t);

    where w1 = {.rc = 0};
    assert_int_equal(sluice_pool_submit(p, task_where, &w1), SLUICE_OK);
    /* It has run, on this thread, before submit returned. */
    assert_int_equal(atomic_load(&w1.ran), 1);
    assert_true(pthread_equal(w1.thread, pthread_self()));
    assert_null(w1.worker_state);
    assert_ptr_equal(w1.pool, p);

    where w2 = {.rc = 9};
    assert_int_equal(sluice_pool_try_submit(p, task_where, &w2), SLUICE_OK);
    assert_int_equal(atomic_load(&w2.ran), 1);
    assert_true(pthread_equal(w2.thread, pthread_self()));

    /* Outside a task: nothing. */
    assert_null(sluice_task_pool());
    assert_null(sluice_worker_state());
    assert_int_equal(sluice_worker_index(), UINT32_MAX);

    sluice_pool_stats s = stats_now(p);
    assert_int_equal(s.caller_ran, 2);
    assert_int_equal(s.submitted, 5); /* gate + 2 queued + 2 caller-run */
    assert_int_equal(s.failed, 1);
    assert_int_equal(s.rejected, 0);
    gate_open(g);
    ASSERT_IDENTITY(p);
    s = stats_now(p);
    assert_int_equal(s.completed, 4);
    sluice_pool_destroy(p);
    gate_free(g);
    tally_free(t);
}

/* ---- DROP_OLDEST ------------------------------------------------------ */

static _Atomic uint64_t ran_mask;
static int task_mark(void *arg)
{
    atomic_fetch_or(&ran_mask, UINT64_C(1) << (uintptr_t)arg);
    return 0;
}

static void test_drop_oldest(void **state)
{
    (void)state;
    tally *t = tally_new();
    gate *g = gate_new();
    sluice_pool_config cfg;
    base_config(&cfg, "drop", 1, 3, t);
    cfg.overflow = SLUICE_OVERFLOW_DROP_OLDEST;
    sluice_pool *p;
    CREATE_POOL(&cfg, &p);
    hold_workers(p, g, 1);
    atomic_store(&ran_mask, 0);
    for (uintptr_t i = 1; i <= 3; i++) {
        assert_int_equal(sluice_pool_submit(p, task_mark, (void *)i), SLUICE_OK);
    }
    /* Full: 4 evicts 1, 5 evicts 2 (try_submit applies the policy too). */
    assert_int_equal(sluice_pool_submit(p, task_mark, (void *)(uintptr_t)4), SLUICE_OK);
    assert_int_equal(sluice_pool_try_submit(p, task_mark, (void *)(uintptr_t)5), SLUICE_OK);
    sluice_pool_stats s = stats_now(p);
    assert_int_equal(s.dropped, 2);
    assert_int_equal(s.queue_depth, 3);
    assert_int_equal(s.rejected, 0);
    assert_int_equal(atomic_load(&t->abandoned_by[SLUICE_ABANDON_DROPPED]), 2);
    pthread_mutex_lock(&t->mu);
    assert_int_equal(t->nabandoned_args, 2);
    assert_ptr_equal(t->abandoned_args[0], (void *)(uintptr_t)1);
    assert_ptr_equal(t->abandoned_args[1], (void *)(uintptr_t)2);
    assert_int_equal(t->abandoned_reasons[0], SLUICE_ABANDON_DROPPED);
    pthread_mutex_unlock(&t->mu);
    gate_open(g);
    ASSERT_IDENTITY(p);
    assert_int_equal(atomic_load(&ran_mask), (1u << 3) | (1u << 4) | (1u << 5));
    s = stats_now(p);
    assert_int_equal(s.submitted, 6);
    assert_int_equal(s.completed, 4);
    sluice_pool_destroy(p);
    gate_free(g);
    tally_free(t);
}

/* The dropped task's label, deadline and context reach the handler. */
static sluice_abandoned last_abandoned;
static _Atomic int last_abandoned_ctx_live;
static void copy_abandon(const sluice_abandoned *a, void *user)
{
    last_abandoned = *a;
    last_abandoned.ctx = NULL;
    atomic_store(&last_abandoned_ctx_live, a->ctx != NULL && sluice_ctx_err(a->ctx) == SLUICE_OK);
    tally_abandon(a, user);
}

static void test_drop_oldest_passes_details(void **state)
{
    (void)state;
    tally *t = tally_new();
    gate *g = gate_new();
    sluice_pool_config cfg;
    base_config(&cfg, "dropd", 1, 2, t);
    cfg.overflow = SLUICE_OVERFLOW_DROP_OLDEST;
    cfg.abandon_handler = copy_abandon;
    sluice_pool *p;
    CREATE_POOL(&cfg, &p);
    hold_workers(p, g, 1);
    sluice_ctx *ctx;
    assert_int_equal(sluice_ctx_create(&ctx, NULL, 0, NULL), SLUICE_OK);
    sluice_submit_opts o = {.label = "first", .deadline_ns = UINT64_MAX - 5, .ctx = ctx};
    assert_int_equal(sluice_pool_submit_ex(p, task_count, t, &o), SLUICE_OK);
    sluice_ctx_release(ctx); /* the pool holds its own reference */
    assert_int_equal(sluice_pool_submit(p, task_count, t), SLUICE_OK);
    assert_int_equal(atomic_load(&t->abandoned_total), 0);
    assert_int_equal(sluice_pool_submit(p, task_count, t), SLUICE_OK); /* evicts "first" */
    assert_int_equal(last_abandoned.reason, SLUICE_ABANDON_DROPPED);
    assert_string_equal(last_abandoned.label, "first");
    assert_int_equal(last_abandoned.deadline_ns, UINT64_MAX - 5);
    assert_ptr_equal(last_abandoned.fn, task_count);
    assert_ptr_equal(last_abandoned.arg, t);
    assert_int_equal(atomic_load(&last_abandoned_ctx_live), 1);
    gate_open(g);
    ASSERT_IDENTITY(p);
    sluice_pool_destroy(p);
    gate_free(g);
    tally_free(t);
}

/* ---- batch ----------------------------------------------------------------- */

static void test_batch(void **state)
{
    (void)state;
    tally *t = tally_new();
    gate *g = gate_new();
    sluice_pool_config cfg;
    base_config(&cfg, "batch", 1, 4, t);
    sluice_pool *p;
    CREATE_POOL(&cfg, &p);

    /* All fit (blocking batch, workers free): everything runs. */
    sluice_task_spec specs[10];
    for (int i = 0; i < 10; i++) {
        specs[i] = (sluice_task_spec){.fn = task_count, .arg = t};
    }
    size_t acc = 0;
    assert_int_equal(sluice_pool_submit_batch(p, specs, 10, false, &acc), SLUICE_OK);
    assert_int_equal(acc, 10);
    ASSERT_IDENTITY(p);
    assert_int_equal(atomic_load(&t->ran), 10);

    /* Non-blocking batch into a held pool: stops at the first refusal. */
    hold_workers(p, g, 1);
    acc = 99;
    assert_int_equal(sluice_pool_submit_batch(p, specs, 10, true, &acc), SLUICE_EFULL);
    assert_int_equal(acc, 4);
    sluice_pool_stats s = stats_now(p);
    assert_int_equal(s.queue_depth, 4);
    assert_int_equal(s.rejected, 1);
    gate_open(g);
    ASSERT_IDENTITY(p);
    assert_int_equal(atomic_load(&t->ran), 14);

    /* A NULL fn in the middle: EINVAL, the ones before it accepted. */
    specs[3].fn = NULL;
    assert_int_equal(sluice_pool_submit_batch(p, specs, 10, false, &acc), SLUICE_EINVAL);
    assert_int_equal(acc, 3);
    specs[3].fn = task_count;

    /* Per-task options in a batch: a past deadline is shed. */
    sluice_submit_opts past = {.deadline_ns = 1, .label = "late"};
    specs[0].opts = &past;
    assert_int_equal(sluice_pool_submit_batch(p, specs, 2, false, &acc), SLUICE_OK);
    assert_int_equal(acc, 2);
    ASSERT_IDENTITY(p);
    s = stats_now(p);
    assert_int_equal(s.shed, 1);
    assert_int_equal(atomic_load(&t->abandoned_by[SLUICE_ABANDON_SHED]), 1);
    assert_int_equal(atomic_load(&t->ran), 18);

    /* A blocking batch larger than the queue, while workers run: it waits
     * for space instead of failing. */
    sluice_task_spec many[64];
    for (int i = 0; i < 64; i++) {
        many[i] = (sluice_task_spec){.fn = task_count, .arg = t};
    }
    assert_int_equal(sluice_pool_submit_batch(p, many, 64, false, &acc), SLUICE_OK);
    assert_int_equal(acc, 64);
    ASSERT_IDENTITY(p);
    assert_int_equal(atomic_load(&t->ran), 82);
    sluice_pool_destroy(p);
    gate_free(g);
    tally_free(t);
}

/* ---- the deadlock guard ---------------------------------------------------- */

typedef struct nested {
    sluice_pool *pool;
    tally *t;
    gate *g;
    _Atomic int first;  /* result of the submit that fills the queue */
    _Atomic int second; /* result of the blocking submit into the full queue */
    _Atomic int third;  /* try_submit into the full queue */
    _Atomic int inline_ran;
    pthread_t worker_thread;
    pthread_t inline_thread;
    _Atomic int done;
} nested;

static nested *g_nested;

static int task_inline_probe(void *arg)
{
    nested *n = arg;
    n->inline_thread = pthread_self();
    atomic_store(&n->inline_ran, 1);
    return 0;
}

static int task_submits_to_own_pool(void *arg)
{
    nested *n = arg;
    n->worker_thread = pthread_self();
    /* Two submits fill the queue (capacity 2); the third finds it full. */
    int first = (int)sluice_pool_submit(n->pool, task_count, n->t);
    atomic_store(&n->first, first ? first : (int)sluice_pool_submit(n->pool, task_count, n->t));
    atomic_store(&n->second, (int)sluice_pool_submit(n->pool, task_inline_probe, n));
    atomic_store(&n->third, (int)sluice_pool_try_submit(n->pool, task_count, n->t));
    atomic_store(&n->done, 1);
    return 0;
}

static void test_deadlock_guard_block(void **state)
{
    (void)state;
    tally *t = tally_new();
    sluice_pool_config cfg;
    base_config(&cfg, "dlk", 1, 2, t);
    sluice_pool *p;
    CREATE_POOL(&cfg, &p);
    nested n = {.pool = p, .t = t};
    g_nested = &n;
    assert_int_equal(sluice_pool_submit(p, task_submits_to_own_pool, &n), SLUICE_OK);
    WAIT_FOR(atomic_load(&n.done) == 1, "the nested submits to return");
    assert_int_equal(atomic_load(&n.first), SLUICE_OK);
    assert_int_equal(atomic_load(&n.second), SLUICE_EDEADLK);
    assert_int_equal(atomic_load(&n.third), SLUICE_EFULL);
    assert_int_equal(atomic_load(&n.inline_ran), 0);
    ASSERT_IDENTITY(p);
    sluice_pool_stats s = stats_now(p);
    assert_int_equal(s.submitted, 3);
    assert_int_equal(s.rejected, 2);
    assert_int_equal(atomic_load(&t->ran), 2);
    sluice_pool_destroy(p);
    tally_free(t);
}

/* Even with a per-call deadline far away, a worker's blocking submit into
 * its own full pool returns EDEADLK instead of waiting. */
static int task_submits_with_deadline(void *arg)
{
    nested *n = arg;
    int first = (int)sluice_pool_submit(n->pool, task_count, n->t);
    atomic_store(&n->first, first ? first : (int)sluice_pool_submit(n->pool, task_count, n->t));
    sluice_submit_opts o = {.submit_deadline_ns = sluice_clock_now(NULL) + 3600 * SLUICE_NS_PER_SEC};
    atomic_store(&n->second, (int)sluice_pool_submit_ex(n->pool, task_count, n->t, &o));
    atomic_store(&n->done, 1);
    return 0;
}

static void test_deadlock_guard_with_deadline(void **state)
{
    (void)state;
    tally *t = tally_new();
    sluice_pool_config cfg;
    base_config(&cfg, "dlk2", 1, 2, t);
    cfg.submit_timeout_ns = 3600 * SLUICE_NS_PER_SEC;
    sluice_pool *p;
    CREATE_POOL(&cfg, &p);
    nested n = {.pool = p, .t = t};
    assert_int_equal(sluice_pool_submit(p, task_submits_with_deadline, &n), SLUICE_OK);
    WAIT_FOR(atomic_load(&n.done) == 1, "the nested submits to return");
    assert_int_equal(atomic_load(&n.first), SLUICE_OK);
    assert_int_equal(atomic_load(&n.second), SLUICE_EDEADLK);
    ASSERT_IDENTITY(p);
    sluice_pool_destroy(p);
    tally_free(t);
}

static void test_deadlock_guard_caller_runs(void **state)
{
    (void)state;
    tally *t = tally_new();
    sluice_pool_config cfg;
    base_config(&cfg, "dlkcr", 1, 2, t);
    cfg.overflow = SLUICE_OVERFLOW_CALLER_RUNS;
    sluice_pool *p;
    CREATE_POOL(&cfg, &p);
    nested n = {.pool = p, .t = t};
    assert_int_equal(sluice_pool_submit(p, task_submits_to_own_pool, &n), SLUICE_OK);
    WAIT_FOR(atomic_load(&n.done) == 1, "the nested submits to return");
    assert_int_equal(atomic_load(&n.first), SLUICE_OK);
    assert_int_equal(atomic_load(&n.second), SLUICE_OK); /* ran inline */
    assert_int_equal(atomic_load(&n.third), SLUICE_OK);  /* also inline */
    assert_int_equal(atomic_load(&n.inline_ran), 1);
    assert_true(pthread_equal(n.inline_thread, n.worker_thread));
    ASSERT_IDENTITY(p);
    sluice_pool_stats s = stats_now(p);
    assert_int_equal(s.caller_ran, 2);
    assert_int_equal(s.submitted, 5);
    assert_int_equal(s.completed, 5);
    assert_int_equal(s.rejected, 0);
    sluice_pool_destroy(p);
    tally_free(t);
}

/* A worker of pool A may block on a full pool B (not its own): no EDEADLK. */
typedef struct cross {
    sluice_pool *b;
    tally *t;
    _Atomic int result;
    _Atomic int done;
} cross;

static int task_submit_to_other(void *arg)
{
    cross *c = arg;
    atomic_store(&c->result, (int)sluice_pool_submit(c->b, task_count, c->t));
    atomic_store(&c->done, 1);
    return 0;
}

static void test_deadlock_guard_other_pool_blocks(void **state)
{
    (void)state;
    tally *t = tally_new();
    gate *g = gate_new();
    sluice_pool_config ca, cb;
    base_config(&ca, "cross-a", 1, 1, t);
    base_config(&cb, "cross-b", 1, 2, t);
    sluice_pool *a, *b;
    CREATE_POOL(&ca, &a);
    CREATE_POOL(&cb, &b);
    hold_workers(b, g, 1);
    fill_queue(b, 2, t);
    cross c = {.b = b, .t = t};
    assert_int_equal(sluice_pool_submit(a, task_submit_to_other, &c), SLUICE_OK);
    WAIT_FOR(stats_now(b).waiting == 1, "a's worker to block on b");
    assert_int_equal(atomic_load(&c.done), 0);
    gate_open(g);
    WAIT_FOR(atomic_load(&c.done) == 1, "a's worker to get in");
    assert_int_equal(atomic_load(&c.result), SLUICE_OK);
    ASSERT_IDENTITY(a);
    ASSERT_IDENTITY(b);
    sluice_pool_destroy(a);
    sluice_pool_destroy(b);
    gate_free(g);
    tally_free(t);
}

/* ---- closed pools ------------------------------------------------------- */

static void test_submit_after_drain_closed(void **state)
{
    (void)state;
    tally *t = tally_new();
    sluice_pool_config cfg;
    base_config(&cfg, "closed", 2, 4, t);
    cfg.overflow = SLUICE_OVERFLOW_CALLER_RUNS;
    sluice_pool *p;
    CREATE_POOL(&cfg, &p);
    assert_int_equal(sluice_pool_submit(p, task_count, t), SLUICE_OK);
    assert_int_equal(sluice_pool_drain(p, 0, NULL), SLUICE_OK);
    assert_int_equal(sluice_pool_submit(p, task_count, t), SLUICE_ECLOSED);
    assert_int_equal(sluice_pool_try_submit(p, task_count, t), SLUICE_ECLOSED);
    sluice_submit_opts o = {.label = "x"};
    assert_int_equal(sluice_pool_submit_ex(p, task_count, t, &o), SLUICE_ECLOSED);
    sluice_task_spec spec = {.fn = task_count, .arg = t};
    size_t acc = 5;
    assert_int_equal(sluice_pool_submit_batch(p, &spec, 1, false, &acc), SLUICE_ECLOSED);
    assert_int_equal(acc, 0);
    sluice_pool_stats s = stats_now(p);
    assert_int_equal(s.rejected, 0); /* closed-pool refusals are not counted */
    assert_int_equal(s.submitted, 1);
    assert_int_equal(s.caller_ran, 0); /* CALLER_RUNS does not run on a closed pool */
    assert_true(s.draining);
    ASSERT_IDENTITY(p);
    sluice_pool_destroy(p);
    assert_int_equal(atomic_load(&t->ran), 1);
    tally_free(t);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_submit_runs_everything),
        cmocka_unit_test(test_return_values_counted),
        cmocka_unit_test(test_bad_arguments),
        cmocka_unit_test(test_fifo_with_one_worker),
        cmocka_unit_test(test_try_submit_never_blocks),
        cmocka_unit_test(test_capacity_one_is_bounded),
        cmocka_unit_test(test_block_waits_for_space),
        cmocka_unit_test(test_block_pool_timeout),
        cmocka_unit_test(test_block_low_water),
        cmocka_unit_test(test_block_waiters_go_first),
        cmocka_unit_test(test_task_on_abandon),
        cmocka_unit_test(test_block_per_call_deadline),
        cmocka_unit_test(test_block_ctx),
        cmocka_unit_test(test_reject_efull),
        cmocka_unit_test(test_caller_runs),
        cmocka_unit_test(test_drop_oldest),
        cmocka_unit_test(test_drop_oldest_passes_details),
        cmocka_unit_test(test_batch),
        cmocka_unit_test(test_deadlock_guard_block),
        cmocka_unit_test(test_deadlock_guard_with_deadline),
        cmocka_unit_test(test_deadlock_guard_caller_runs),
        cmocka_unit_test(test_deadlock_guard_other_pool_blocks),
        cmocka_unit_test(test_submit_after_drain_closed),
    };
    return cmocka_run_group_tests_name("core_submit", tests, NULL, NULL);
}
