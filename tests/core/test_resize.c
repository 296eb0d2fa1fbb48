/*
 * tests/core/test_resize.c - live resize: growing starts workers at once
 * when work is queued; shrinking retires workers as their current task
 * ends; a task starts only while fewer than K tasks run.
 *
 * The watcher. Every watched task, on entry, increments `running` and
 * compares the new value with `limit`, the K in force as the test knows
 * it: a grow publishes the new limit before calling resize (tasks may
 * start under the new K at once), a shrink publishes it after resize
 * returns (until then the old K may still admit tasks). A task that
 * starts with running > limit is a violation, recorded in an atomic and
 * asserted on the main thread.
 */
#include "common/pool.h"

typedef struct watcher {
    _Atomic int running;
    _Atomic int limit;
    _Atomic int max_seen;
    _Atomic uint64_t violations;
    _Atomic uint64_t started;
    _Atomic int worst;                /* largest running seen in a violation */
    _Atomic int hard_limit;           /* storms: the largest K ever set */
    _Atomic uint64_t hard_violations; /* started with running > hard_limit */
    gate *g;                          /* optional: watched tasks wait here */
    unsigned spin;                    /* busy iterations per task */
} watcher;

static int task_watched(void *arg)
{
    watcher *w = arg;
    /* Read the limit first: a task preempted between its increment and
     * this read must not blame a shrink that came later. */
    int lim = atomic_load(&w->limit);
    int n = atomic_fetch_add(&w->running, 1) + 1;
    atomic_fetch_add(&w->started, 1);
    if (n > atomic_load(&w->hard_limit)) {
        atomic_fetch_add(&w->hard_violations, 1);
    }
    if (n > lim) {
        atomic_fetch_add(&w->violations, 1);
        int worst = atomic_load(&w->worst);
        while (n > worst && !atomic_compare_exchange_weak(&w->worst, &worst, n)) {
        }
    }
    int m = atomic_load(&w->max_seen);
    while (n > m && !atomic_compare_exchange_weak(&w->max_seen, &m, n)) {
    }
    if (w->g) {
        gate_pass(w->g, true);
    }
    for (volatile unsigned i = 0; i < w->spin; i++) {
    }
    if (w->spin) {
        sched_yield();
    }
    atomic_fetch_sub(&w->running, 1);
    return 0;
}

static watcher *watcher_new(int limit, gate *g, unsigned spin)
{
    watcher *w = calloc(1, sizeof *w);
    assert_non_null(w);
    atomic_store(&w->limit, limit);
    atomic_store(&w->hard_limit, 1 << 20);
    w->g = g;
    w->spin = spin;
    return w;
}

/* Grow: with work queued, the new workers start at once. */
static void test_grow_starts_workers_for_queued_work(void **state)
{
    (void)state;
    tally *t = tally_new();
    gate *g = gate_new();
    sluice_pool_config cfg;
    base_config(&cfg, "grow", 1, 64, t);
    sluice_pool *p;
    CREATE_POOL(&cfg, &p);
    watcher *w = watcher_new(1, g, 0);
    /* One task holds the only worker; the rest wait in the queue. */
    assert_int_equal(sluice_pool_submit(p, task_watched, w), SLUICE_OK);
    WAIT_FOR(atomic_load(&g->inside) == 1, "first task running");
    for (int i = 0; i < 7; i++) {
        assert_int_equal(sluice_pool_submit(p, task_watched, w), SLUICE_OK);
    }
    assert_int_equal(stats_now(p).queue_depth, 7);
    atomic_store(&w->limit, 4);
    assert_int_equal(sluice_pool_resize(p, 4), SLUICE_OK);
    /* Four at once, without any further submit. */
    WAIT_FOR(atomic_load(&g->inside) == 4, "four tasks running after grow");
    sluice_pool_stats s = stats_now(p);
    assert_int_equal(s.capacity, 4);
    assert_int_equal(s.running, 4);
    assert_int_equal(s.resize_events, 1);
    assert_true(atomic_load(&t->events_by[SLUICE_EVENT_RESIZE]) == 1);
    gate_open(g);
    ASSERT_IDENTITY(p);
    assert_int_equal(atomic_load(&w->violations), 0);
    assert_int_equal(atomic_load(&w->max_seen), 4);
    sluice_pool_destroy(p);
    free(w);
    gate_free(g);
    tally_free(t);
}

/* Shrink: running tasks finish; afterwards a task starts only while fewer
 * than the new K run. */
static void test_shrink_never_exceeds_new_k(void **state)
{
    (void)state;
    tally *t = tally_new();
    gate *g = gate_new();
    sluice_pool_config cfg;
    base_config(&cfg, "shrink", 4, 256, t);
    with_hooks(&cfg);
    sluice_pool *p;
    CREATE_POOL(&cfg, &p);
    watcher *w = watcher_new(4, g, 2000);
    /* Queue a backlog first (batch: one wake-up at the end), so workers
     * start with queued work behind their first task. */
    sluice_task_spec specs[200];
    for (int i = 0; i < 200; i++) {
        specs[i] = (sluice_task_spec){.fn = task_watched, .arg = w};
    }
    size_t acc;
    assert_int_equal(sluice_pool_submit_batch(p, specs, 200, false, &acc), SLUICE_OK);
    WAIT_FOR(atomic_load(&g->inside) == 4, "four running");
    assert_int_equal(sluice_pool_resize(p, 2), SLUICE_OK);
    atomic_store(&w->limit, 2);
    gate_open(g);
    ASSERT_IDENTITY(p);
    sluice_pool_stats s = stats_now(p);
    if (atomic_load(&w->violations)) {
        stats_print("shrink", &s);
        fail_msg("%llu tasks started after resize(2) returned while >= 2 ran (worst: %d running)",
                 (unsigned long long)atomic_load(&w->violations), atomic_load(&w->worst));
    }
    assert_int_equal(s.capacity, 2);
    assert_int_equal(s.completed, 200);
    /* A retiring worker leaves `alive` before its last steps (fini hook,
     * exit event, joining zombies) and frees its slot after them, while
     * the two that stay can run the whole backlog: wait for the slots. */
    WAIT_FOR((s = stats_now(p)).workers <= 2 && s.retired_workers >= 2,
             "two workers retired (workers=%u retired=%llu)", s.workers,
             (unsigned long long)s.retired_workers);
    sluice_pool_destroy(p);
    assert_int_equal(atomic_load(&t->finis), atomic_load(&t->inits));
    free(w);
    gate_free(g);
    tally_free(t);
}

/* Parked workers above the new K retire too (not only busy ones). */
static void test_shrink_idle_workers_retire(void **state)
{
    (void)state;
    tally *t = tally_new();
    gate *g = gate_new();
    sluice_pool_config cfg;
    base_config(&cfg, "shrink-idle", 4, 16, t);
    with_hooks(&cfg);
    sluice_pool *p;
    CREATE_POOL(&cfg, &p);
    for (int i = 0; i < 4; i++) {
        assert_int_equal(sluice_pool_submit(p, task_gate, g), SLUICE_OK);
    }
    WAIT_FOR(atomic_load(&g->inside) == 4, "four running");
    gate_open(g);
    WAIT_FOR(stats_now(p).idle == 4, "four idle");
    assert_int_equal(sluice_pool_resize(p, 1), SLUICE_OK);
    WAIT_FOR(stats_now(p).workers == 1, "one worker left");
    WAIT_FOR(atomic_load(&t->finis) == 3, "three fini hooks");
    assert_int_equal(stats_now(p).retired_workers, 3);
    WAIT_FOR(atomic_load(&t->exits_by[EXIT_RETIRED]) == 3, "three 'retired' exit events");
    ASSERT_IDENTITY(p);
    sluice_pool_destroy(p);
    gate_free(g);
    tally_free(t);
}

static void test_resize_errors(void **state)
{
    (void)state;
    tally *t = tally_new();
    sluice_pool_config cfg;
    base_config(&cfg, "rzerr", 4, 16, t);
    cfg.min_workers = 2;
    sluice_pool *p;
    CREATE_POOL(&cfg, &p);
    assert_int_equal(sluice_pool_resize(p, 0), SLUICE_EINVAL);
    assert_int_equal(sluice_pool_resize(p, 1), SLUICE_EINVAL); /* < min_workers */
    assert_int_equal(sluice_pool_resize(p, 2), SLUICE_OK);
    assert_int_equal(sluice_pool_resize(p, 2), SLUICE_OK); /* no change */
    assert_int_equal(stats_now(p).resize_events, 1);
    sluice_pool_config got;
    sluice_pool_config_get(p, &got);
    assert_int_equal(got.workers, 2);
    assert_int_equal(sluice_pool_drain(p, 0, NULL), SLUICE_OK);
    assert_int_equal(sluice_pool_resize(p, 3), SLUICE_ECLOSED);
    sluice_pool_destroy(p);
    tally_free(t);
}

/* resize from inside a task of the same pool. */
typedef struct inner_resize {
    sluice_pool *p;
    _Atomic int rc;
    _Atomic int done;
} inner_resize;

static int task_resizes(void *arg)
{
    inner_resize *r = arg;
    atomic_store(&r->rc, (int)sluice_pool_resize(r->p, 1));
    atomic_store(&r->done, 1);
    return 0;
}

static void test_resize_from_task(void **state)
{
    (void)state;
    tally *t = tally_new();
    sluice_pool_config cfg;
    base_config(&cfg, "rzin", 3, 16, t);
    sluice_pool *p;
    CREATE_POOL(&cfg, &p);
    inner_resize r = {.p = p};
    atomic_store(&r.rc, -1);
    assert_int_equal(sluice_pool_submit(p, task_resizes, &r), SLUICE_OK);
    WAIT_FOR(atomic_load(&r.done), "the task to resize");
    assert_int_equal(atomic_load(&r.rc), SLUICE_OK);
    for (int i = 0; i < 50; i++) {
        assert_int_equal(sluice_pool_submit(p, task_count, t), SLUICE_OK);
    }
    ASSERT_IDENTITY(p);
    assert_int_equal(stats_now(p).capacity, 1);
    sluice_pool_destroy(p);
    tally_free(t);
}

/*
 * A storm: one thread resizes between 1 and 6 while producers submit
 * watched tasks. Under a storm the strict rule cannot be checked from
 * outside the pool: a worker admitted under the old K (it checked K, then
 * popped its task) may enter the task's function just after a shrink
 * returned, and nothing a test can observe separates that from a late
 * start. So the storm fails on the sound bound (never more running than
 * the largest K ever set, and the identity), and prints how often the
 * strict rule looked broken. The strict rule is asserted where it is
 * observable: test_shrink_never_exceeds_new_k, where every worker is
 * inside a task when resize is called.
 */
typedef struct storm {
    sluice_pool *p;
    watcher *w;
    _Atomic int stop;
    unsigned per_producer;
    _Atomic uint64_t accepted;
    _Atomic uint64_t refused;
    unsigned seed;
    _Atomic uint64_t resizes;
} storm;

static void *storm_producer(void *arg)
{
    storm *s = arg;
    /* Not before the resizer's first resize: on a loaded machine the
     * producers once submitted and ran all 9000 tasks before the resizer
     * thread was first scheduled (0 resizes), so nothing was stormed. */
    if (!WAIT_FOR_BG(atomic_load(&s->resizes) > 0)) {
        atomic_fetch_add(&s->w->violations, 1000000); /* fails the test: the resizer never ran */
    }
    for (unsigned i = 0; i < s->per_producer; i++) {
        sluice_err rc = sluice_pool_submit(s->p, task_watched, s->w);
        if (rc == SLUICE_OK) {
            atomic_fetch_add(&s->accepted, 1);
        } else {
            atomic_fetch_add(&s->refused, 1);
        }
    }
    return NULL;
}

static void *storm_resizer(void *arg)
{
    storm *s = arg;
    unsigned seed = s->seed;
    unsigned k = 4;
    while (!atomic_load(&s->stop)) {
        seed = seed * 1103515245u + 12345u;
        unsigned nk = 1 + (seed >> 16) % 6;
        if (nk > k) {
            atomic_store(&s->w->limit, (int)nk); /* grow: in force at once */
        }
        if (sluice_pool_resize(s->p, nk) != SLUICE_OK) {
            atomic_fetch_add(&s->w->violations, 1000000);
        }
        if (nk < k) {
            atomic_store(&s->w->limit, (int)nk); /* shrink: in force once resize returned */
        }
        k = nk;
        atomic_fetch_add(&s->resizes, 1);
        for (int i = 0; i < 3; i++) {
            sched_yield();
        }
    }
    return NULL;
}

static void test_resize_storm(void **state)
{
    (void)state;
    tally *t = tally_new();
    sluice_pool_config cfg;
    base_config(&cfg, "storm", 4, 64, t);
    with_hooks(&cfg);
    sluice_pool *p;
    CREATE_POOL(&cfg, &p);
    watcher *w = watcher_new(4, NULL, 500);
    atomic_store(&w->hard_limit, 6);
    storm s = {
        .p = p, .w = w, .per_producer = 3000 * stress_scale() / (under_sanitizer() ? 3 : 1), .seed = 7};
    pthread_t prod[3], rz;
    for (int i = 0; i < 3; i++) {
        START_THREAD(&prod[i], storm_producer, &s);
    }
    START_THREAD(&rz, storm_resizer, &s);
    for (int i = 0; i < 3; i++) {
        pthread_join(prod[i], NULL);
    }
    atomic_store(&s.stop, 1);
    pthread_join(rz, NULL);
    ASSERT_IDENTITY(p);
    sluice_pool_stats st = stats_now(p);
    print_message("storm: %llu resizes, %llu tasks, max running %d\n",
                  (unsigned long long)atomic_load(&s.resizes), (unsigned long long)atomic_load(&s.accepted),
                  atomic_load(&w->max_seen));
    print_message("storm: %llu of %llu tasks entered after a shrink returned while >= K ran (worst %d)\n",
                  (unsigned long long)atomic_load(&w->violations),
                  (unsigned long long)atomic_load(&s.accepted), atomic_load(&w->worst));
    if (atomic_load(&w->hard_violations) || atomic_load(&w->violations) >= 1000000) {
        stats_print("storm", &st);
        fail_msg(
            "%llu tasks started with more than 6 (the largest K) running, or a resize failed (or never ran)",
            (unsigned long long)atomic_load(&w->hard_violations));
    }
    assert_int_equal(atomic_load(&s.refused), 0);
    assert_int_equal(st.submitted, atomic_load(&s.accepted));
    assert_int_equal(st.completed, atomic_load(&s.accepted));
    assert_true(st.resize_events > 0);
    sluice_pool_destroy(p);
    assert_int_equal(atomic_load(&t->finis), atomic_load(&t->inits));
    free(w);
    tally_free(t);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_grow_starts_workers_for_queued_work),
        cmocka_unit_test(test_shrink_never_exceeds_new_k),
        cmocka_unit_test(test_shrink_idle_workers_retire),
        cmocka_unit_test(test_resize_errors),
        cmocka_unit_test(test_resize_from_task),
        cmocka_unit_test(test_resize_storm),
    };
    return cmocka_run_group_tests_name("core_resize", tests, NULL, NULL);
}
