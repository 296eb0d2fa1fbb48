/*
 * tests/core/concurrency_rules.c - regression guards from the concurrency
 * review of src/core (they pass on the current code and pin down rules the
 * review checked):
 *
 *  - nested_caller_runs_frames: a task on pool A's worker submits to a
 *    full CALLER_RUNS pool B, so B's task runs inline on A's worker. The
 *    thread-local frame must be B's inside (pool, no worker state) and A's
 *    again afterwards, a panic in the inner task must unwind only the
 *    inner task (its cleanups, not the outer's), and a later panic in the
 *    outer task must still reach the outer task's jump point and cleanups.
 *  - drop_oldest_exactly_once: producers race on a tiny DROP_OLDEST queue;
 *    every accepted task is run or handed back (DROPPED) exactly once, no
 *    task twice, and the accounting identity holds.
 */
#include "common/pool.h"

/* ---- nested CALLER_RUNS frames -------------------------------------------- */

typedef struct nest {
    sluice_pool *a, *b;
    gate *g;
    _Atomic int inner_cleanups, outer_cleanups;
    _Atomic int violations;
    _Atomic int outer_done;
} nest;

static nest *the_nest;

static void count_cleanup(void *arg)
{
    atomic_fetch_add((_Atomic int *)arg, 1);
}

static int inner_task(void *arg)
{
    nest *n = arg;
    if (sluice_task_pool() != n->b || sluice_worker_state() != NULL) {
        atomic_fetch_add(&n->violations, 1);
    }
    sluice_cleanup_push(count_cleanup, &n->inner_cleanups);
    sluice_panic("inner %d", 7);
}

static int outer_task(void *arg)
{
    nest *n = arg;
    unsigned *box = sluice_worker_state();
    sluice_cleanup_push(count_cleanup, &n->outer_cleanups);
    /* B is full: this runs inner_task here, on A's worker. */
    if (sluice_pool_submit(n->b, inner_task, n) != SLUICE_OK) {
        atomic_fetch_add(&n->violations, 1);
    }
    if (sluice_task_pool() != n->a || sluice_worker_state() != box || box == NULL ||
        sluice_task_panic_message() != NULL || atomic_load(&n->outer_cleanups) != 0 ||
        atomic_load(&n->inner_cleanups) != 1) {
        atomic_fetch_add(&n->violations, 1);
    }
    atomic_store(&n->outer_done, 1);
    sluice_panic("outer");
}

static void test_nested_caller_runs_frames(void **state)
{
    (void)state;
    tally *ta = tally_new();
    tally *tb = tally_new();
    nest *n = calloc(1, sizeof *n);
    assert_non_null(n);
    the_nest = n;
    n->g = gate_new();

    sluice_pool_config cfg;
    base_config(&cfg, "nest-a", 1, 4, ta);
    with_hooks(&cfg);
    CREATE_POOL(&cfg, &n->a);
    base_config(&cfg, "nest-b", 1, 1, tb);
    cfg.overflow = SLUICE_OVERFLOW_CALLER_RUNS;
    CREATE_POOL(&cfg, &n->b);

    /* Fill B: its worker held at the gate, one task queued. */
    assert_int_equal(sluice_pool_submit(n->b, task_gate_hard, n->g), SLUICE_OK);
    WAIT_FOR(atomic_load(&n->g->inside) == 1, "B's worker held");
    assert_int_equal(sluice_pool_submit(n->b, task_nop, NULL), SLUICE_OK);
    WAIT_FOR(stats_now(n->b).queue_depth == 1, "B full");

    assert_int_equal(sluice_pool_submit(n->a, outer_task, n), SLUICE_OK);
    WAIT_FOR(atomic_load(&ta->panics) == 1, "the outer task's panic");
    assert_int_equal(atomic_load(&n->outer_done), 1);
    assert_int_equal(atomic_load(&n->violations), 0);
    assert_int_equal(atomic_load(&n->inner_cleanups), 1);
    assert_int_equal(atomic_load(&n->outer_cleanups), 1);
    assert_int_equal(atomic_load(&tb->panics), 1);
    pthread_mutex_lock(&tb->mu);
    assert_true(tb->records[0].caller_thread);
    assert_string_equal(tb->records[0].message, "inner 7");
    pthread_mutex_unlock(&tb->mu);
    pthread_mutex_lock(&ta->mu);
    assert_false(ta->records[0].caller_thread);
    assert_string_equal(ta->records[0].message, "outer");
    pthread_mutex_unlock(&ta->mu);

    gate_open(n->g);
    ASSERT_IDENTITY(n->a);
    ASSERT_IDENTITY(n->b);
    sluice_pool_stats sa = stats_now(n->a), sb = stats_now(n->b);
    assert_int_equal(sa.panicked, 1);
    assert_int_equal(sb.panicked, 1);
    assert_int_equal(sb.caller_ran, 1);
    sluice_pool_destroy(n->a);
    sluice_pool_destroy(n->b);
    assert_int_equal(atomic_load(&ta->violations), 0); /* worker state intact at fini */
    gate_free(n->g);
    free(n);
    tally_free(ta);
    tally_free(tb);
}

/* ---- DROP_OLDEST exactly once ------------------------------------------------- */

#define DROP_PRODUCERS 4

typedef struct drop_run {
    sluice_pool *p;
    _Atomic uint8_t *outcome; /* per task: ran + handed back, each at most once */
    unsigned per_producer;
    _Atomic uint64_t accepted;
    _Atomic uint64_t twice;
} drop_run;

static drop_run *the_drop;

static int drop_task(void *arg)
{
    uintptr_t id = (uintptr_t)arg;
    if (atomic_fetch_add(&the_drop->outcome[id], 1) != 0) {
        atomic_fetch_add(&the_drop->twice, 1);
    }
    for (volatile int i = 0; i < 200; i++) {
    }
    return 0;
}

static void drop_abandon(const sluice_abandoned *a, void *user)
{
    tally_abandon(a, user);
    uintptr_t id = (uintptr_t)a->arg;
    if (a->reason != SLUICE_ABANDON_DROPPED || atomic_fetch_add(&the_drop->outcome[id], 1) != 0) {
        atomic_fetch_add(&the_drop->twice, 1);
    }
}

static void *drop_producer(void *arg)
{
    uintptr_t base = (uintptr_t)arg * the_drop->per_producer;
    for (uintptr_t i = 0; i < the_drop->per_producer; i++) {
        if (sluice_pool_submit(the_drop->p, drop_task, (void *)(base + i)) == SLUICE_OK) {
            atomic_fetch_add(&the_drop->accepted, 1);
        }
    }
    return NULL;
}

static void test_drop_oldest_exactly_once(void **state)
{
    (void)state;
    tally *t = tally_new();
    drop_run *d = calloc(1, sizeof *d);
    assert_non_null(d);
    the_drop = d;
    d->per_producer = (under_sanitizer() ? 2000 : 20000) * stress_scale();
    unsigned total = d->per_producer * DROP_PRODUCERS;
    d->outcome = calloc(total, sizeof *d->outcome);
    assert_non_null(d->outcome);

    sluice_pool_config cfg;
    base_config(&cfg, "drop-once", 2, 2, t);
    cfg.overflow = SLUICE_OVERFLOW_DROP_OLDEST;
    cfg.abandon_handler = drop_abandon;
    CREATE_POOL(&cfg, &d->p);

    pthread_t th[DROP_PRODUCERS];
    for (uintptr_t i = 0; i < DROP_PRODUCERS; i++) {
        START_THREAD(&th[i], drop_producer, (void *)i);
    }
    for (int i = 0; i < DROP_PRODUCERS; i++) {
        pthread_join(th[i], NULL);
    }
    sluice_drain_report rep;
    assert_int_equal(sluice_pool_drain(d->p, 0, &rep), SLUICE_OK);
    ASSERT_IDENTITY(d->p);
    sluice_pool_stats s = stats_now(d->p);
    print_message("drop-once: accepted=%llu completed=%llu dropped=%llu\n",
                  (unsigned long long)atomic_load(&d->accepted), (unsigned long long)s.completed,
                  (unsigned long long)s.dropped);
    assert_int_equal(atomic_load(&d->twice), 0);
    assert_int_equal(atomic_load(&d->accepted), total); /* DROP_OLDEST never refuses */
    assert_int_equal(s.submitted, total);
    assert_int_equal(s.dropped, atomic_load(&t->abandoned_by[SLUICE_ABANDON_DROPPED]));
    uint64_t once = 0;
    for (unsigned i = 0; i < total; i++) {
        once += atomic_load(&d->outcome[i]) == 1;
    }
    assert_int_equal(once, total); /* each ran or was handed back, exactly once */
    sluice_pool_destroy(d->p);
    free(d->outcome);
    free(d);
    tally_free(t);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_nested_caller_runs_frames),
        cmocka_unit_test(test_drop_oldest_exactly_once),
    };
    return cmocka_run_group_tests_name("core_concurrency_rules", tests, NULL, NULL);
}
