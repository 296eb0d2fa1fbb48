/*
 * tests/core/test_sharded.c - the `sharded` queue discipline (issue 19):
 * the queue on its own (through the internal queue table, with more
 * shards than this machine has CPUs), then pools that use it, for the
 * promises pool.h makes about it:
 *
 *   - the capacity is exact and split over the shards; FULL only when
 *     every shard is full; depth and pushed are sums; pop finds a task in
 *     any shard (stealing); close refuses later pushes; bad sizes refused;
 *   - many producers and consumers: every task popped exactly once;
 *   - the name and parser; adaptive LIFO refused with a message naming
 *     the discipline;
 *   - a drain at its deadline hands back every task queued, on every
 *     shard, exactly once;
 *   - resize during steals: K cycles while producers submit; every task
 *     runs once, never more at once than the largest K, and after a shrink
 *     to one worker the tasks on the other shards are stolen and run;
 *   - DROP_OLDEST evicts only tasks older than every task pushed since the
 *     queue filled (the rotating eviction start), and accounts for each;
 *   - deadlines: tasks whose deadline passed while queued are shed, the
 *     others run, on a fake clock.
 *
 * Waits are bounded by SAFETY_NS (tests/common/wait.h); nothing asserts on
 * time. Sized by SLUICE_STRESS_SCALE.
 */
#include "common/pool.h"
#include "core/internal.h"

#define IDS 4096

static _Atomic int ran_ids[IDS];
static _Atomic int running_now;
static _Atomic int running_max;

static int mark_task(void *arg)
{
    uintptr_t id = (uintptr_t)arg;
    if (id < IDS) {
        atomic_fetch_add(&ran_ids[id], 1);
    }
    return 0;
}

static int gate_task(void *arg)
{
    gate_pass(arg, true);
    return 0;
}

/* A short task that records how many run at once. */
static int busy_task(void *arg)
{
    int now = atomic_fetch_add(&running_now, 1) + 1;
    int seen = atomic_load(&running_max);
    while (now > seen && !atomic_compare_exchange_weak(&running_max, &seen, now)) {
    }
    for (volatile int i = 0; i < 200; i++) {
    }
    atomic_fetch_sub(&running_now, 1);
    return mark_task(arg);
}

static void reset_ids(void)
{
    for (int i = 0; i < IDS; i++) {
        atomic_store(&ran_ids[i], 0);
    }
    atomic_store(&running_now, 0);
    atomic_store(&running_max, 0);
}

static sluice__task task_of(uintptr_t id)
{
    sluice__task t;
    memset(&t, 0, sizeof t);
    t.fn = mark_task;
    t.arg = (void *)id;
    return t;
}

/* ---- the queue on its own ------------------------------------------------ */

static void test_queue_capacity_and_steal(void **state)
{
    (void)state;
    const sluice__queue_ops *ops = &sluice__sharded_ops;
    void *q = NULL;
    assert_int_equal(sluice__sharded_create(10, 0, &q), SLUICE_EINVAL);
    assert_int_equal(sluice__sharded_create(10, 17, &q), SLUICE_EINVAL);
    assert_int_equal(sluice__sharded_create(3, 4, &q), SLUICE_EINVAL);
    assert_int_equal(sluice__sharded_create(0, 1, &q), SLUICE_EINVAL);
    assert_true(sluice__sharded_shards_for(3, 100) <= 3);
    assert_int_equal(sluice__sharded_shards_for(1000, 0), 1);
    assert_int_equal(sluice__sharded_shards_for(1, 8), 1);
    assert_true(sluice__sharded_shards_for(1000000, 1000) <= 16);

    /* 10 over 4 shards: limits 3, 3, 2, 2; the 11th push is FULL. */
    assert_int_equal(sluice__sharded_create(10, 4, &q), SLUICE_OK);
    assert_int_equal(ops->capacity(q), 10);
    assert_false(ops->pending(q));
    for (uintptr_t i = 1; i <= 10; i++) {
        sluice__task t = task_of(i);
        assert_int_equal(ops->push(q, &t, NULL), SLUICE__Q_OK);
        assert_int_equal(ops->depth(q), i);
    }
    sluice__task extra = task_of(11);
    assert_int_equal(ops->push(q, &extra, NULL), SLUICE__Q_FULL);
    assert_int_equal(ops->pushed(q), 10);
    assert_true(ops->pending(q));
    assert_true(ops->ready(q));

    /* One thread pops all ten: its home shard first, then it steals. */
    int seen[11] = {0};
    sluice__task out;
    for (int i = 0; i < 10; i++) {
        assert_int_equal(ops->pop(q, &out), SLUICE__Q_OK);
        assert_ptr_equal(out.fn, mark_task);
        uintptr_t id = (uintptr_t)out.arg;
        assert_true(id >= 1 && id <= 10);
        seen[id]++;
    }
    for (int i = 1; i <= 10; i++) {
        assert_int_equal(seen[i], 1);
    }
    assert_int_equal(ops->pop(q, &out), SLUICE__Q_EMPTY);
    assert_int_equal(ops->depth(q), 0);
    assert_false(ops->pending(q));

    /* A freed place in any shard takes a push again; evict takes any. */
    assert_int_equal(ops->push(q, &extra, NULL), SLUICE__Q_OK);
    assert_int_equal(ops->evict(q, NULL, &out), SLUICE__Q_OK);
    assert_ptr_equal(out.arg, (void *)11);
    assert_int_equal(ops->evict(q, NULL, &out), SLUICE__Q_EMPTY);

    /* Close: later pushes are refused; what was queued still pops. */
    sluice__task t = task_of(12);
    assert_int_equal(ops->push(q, &t, NULL), SLUICE__Q_OK);
    ops->close(q);
    ops->close(q); /* idempotent */
    assert_int_equal(ops->push(q, &t, NULL), SLUICE__Q_CLOSED);
    assert_int_equal(ops->pop(q, &out), SLUICE__Q_OK);
    assert_ptr_equal(out.arg, (void *)12);
    assert_int_equal(ops->pushed(q), 12);
    ops->destroy(q);
    ops->destroy(NULL);
}

typedef struct mpmc {
    void *q;
    _Atomic uintptr_t next_id;
    uintptr_t total;
    _Atomic int producers_left;
    _Atomic uint64_t popped;
} mpmc;

static void *mpmc_producer(void *arg)
{
    mpmc *m = arg;
    for (;;) {
        uintptr_t id = atomic_fetch_add(&m->next_id, 1);
        if (id >= m->total) {
            break;
        }
        sluice__task t = task_of(id);
        while (sluice__sharded_ops.push(m->q, &t, NULL) == SLUICE__Q_FULL) {
            sched_yield();
        }
    }
    atomic_fetch_sub(&m->producers_left, 1);
    return NULL;
}

static void *mpmc_consumer(void *arg)
{
    mpmc *m = arg;
    sluice__task out;
    for (;;) {
        if (sluice__sharded_ops.pop(m->q, &out) == SLUICE__Q_OK) {
            mark_task(out.arg);
            atomic_fetch_add(&m->popped, 1);
            continue;
        }
        /* Empty after every producer finished: nothing can come. */
        if (atomic_load(&m->producers_left) == 0 && !sluice__sharded_ops.pending(m->q)) {
            return NULL;
        }
        sched_yield();
    }
}

static void test_queue_many_threads(void **state)
{
    (void)state;
    reset_ids();
    mpmc *m = calloc(1, sizeof *m);
    assert_non_null(m);
    assert_int_equal(sluice__sharded_create(37, 5, &m->q), SLUICE_OK);
    m->total = IDS;
    atomic_store(&m->producers_left, 3);
    pthread_t th[6];
    for (int i = 0; i < 3; i++) {
        assert_int_equal(pthread_create(&th[i], NULL, mpmc_producer, m), 0);
        assert_int_equal(pthread_create(&th[3 + i], NULL, mpmc_consumer, m), 0);
    }
    for (int i = 0; i < 6; i++) {
        pthread_join(th[i], NULL);
    }
    assert_int_equal(atomic_load(&m->popped), IDS);
    for (int i = 0; i < IDS; i++) {
        if (atomic_load(&ran_ids[i]) != 1) {
            fail_msg("task %d popped %d times", i, atomic_load(&ran_ids[i]));
        }
    }
    assert_int_equal(sluice__sharded_ops.depth(m->q), 0);
    sluice__sharded_ops.destroy(m->q);
    free(m);
}

/* ---- pools ------------------------------------------------------------------ */

static void sharded_config(sluice_pool_config *cfg, const char *name, unsigned k, size_t cap, tally *t)
{
    base_config(cfg, name, k, cap, t);
    cfg->queue_discipline = SLUICE_QUEUE_SHARDED;
}

static void test_names_and_lifo_refused(void **state)
{
    (void)state;
    sluice_queue_discipline d = SLUICE_QUEUE_FIFO;
    assert_int_equal(sluice_queue_discipline_parse("sharded", &d), SLUICE_OK);
    assert_int_equal(d, SLUICE_QUEUE_SHARDED);
    assert_string_equal(sluice_queue_discipline_name(SLUICE_QUEUE_SHARDED), "sharded");
    assert_int_equal(sluice_queue_discipline_parse("Sharded", &d), SLUICE_EINVAL);

    tally *t = tally_new();
    sluice_pool_config cfg;
    sharded_config(&cfg, "lifo", 2, 64, t);
    cfg.overload = SLUICE_OVERLOAD_LIFO;
    sluice_pool *p = NULL;
    char err[256];
    assert_int_equal(sluice_pool_create(&cfg, &p, err, sizeof err), SLUICE_EINVAL);
    assert_null(p);
    assert_non_null(strstr(err, "overload"));
    assert_non_null(strstr(err, "sharded"));
    /* CoDel composes with it. */
    cfg.overload = SLUICE_OVERLOAD_CODEL;
    CREATE_POOL(&cfg, &p);
    assert_int_equal(sluice_pool_submit(p, mark_task, (void *)1), SLUICE_OK);
    assert_int_equal(sluice_pool_drain(p, 0, NULL), SLUICE_OK);
    ASSERT_IDENTITY(p);
    sluice_pool_destroy(p);
    tally_free(t);
}

typedef struct producer_arg {
    sluice_pool *p;
    uintptr_t first, count;
    _Atomic uint64_t accepted;
} producer_arg;

static void *submit_range(void *arg)
{
    producer_arg *a = arg;
    for (uintptr_t i = 0; i < a->count; i++) {
        if (sluice_pool_submit(a->p, busy_task, (void *)(a->first + i)) == SLUICE_OK) {
            atomic_fetch_add(&a->accepted, 1);
        }
    }
    return NULL;
}

/* Both workers held at a gate; three producers queue 300 tasks (spread
 * over the shards); a 1 ms drain must hand back all 300 at its deadline. */
static void test_drain_deadline_hands_back_every_shard(void **state)
{
    (void)state;
    reset_ids();
    tally *t = tally_new();
    gate *g = gate_new();
    sluice_pool_config cfg;
    sharded_config(&cfg, "drain", 2, 1000, t);
    sluice_pool *p;
    CREATE_POOL(&cfg, &p);
    assert_int_equal(sluice_pool_submit(p, gate_task, g), SLUICE_OK);
    assert_int_equal(sluice_pool_submit(p, gate_task, g), SLUICE_OK);
    GATE_WAIT_ENTERED(g, 2);

    producer_arg pa[3];
    pthread_t th[3];
    for (int i = 0; i < 3; i++) {
        pa[i] = (producer_arg){.p = p, .first = 1 + (uintptr_t)i * 100, .count = 100};
        assert_int_equal(pthread_create(&th[i], NULL, submit_range, &pa[i]), 0);
    }
    for (int i = 0; i < 3; i++) {
        pthread_join(th[i], NULL);
        assert_int_equal(atomic_load(&pa[i].accepted), 100);
    }
    sluice_pool_stats s = stats_now(p);
    assert_int_equal(s.queue_depth, 300);

    sluice_drain_report rep;
    assert_int_equal(sluice_pool_drain(p, SLUICE_NS_PER_MS, &rep), SLUICE_ETIMEDOUT);
    assert_true(rep.timed_out);
    assert_int_equal(rep.handed_back, 300);
    assert_int_equal(atomic_load(&t->abandoned_by[SLUICE_ABANDON_DRAIN]), 300);
    for (int i = 1; i <= 300; i++) {
        assert_int_equal(atomic_load(&ran_ids[i]), 0);
    }
    gate_open(g);
    ASSERT_IDENTITY(p);
    s = stats_now(p);
    assert_int_equal(s.submitted, 302);
    assert_int_equal(s.abandoned, 300);
    assert_int_equal(s.completed, 2);
    sluice_pool_destroy(p);
    assert_int_equal(atomic_load(&t->abandon_bad), 0);
    gate_free(g);
    tally_free(t);
}

typedef struct resizer_arg {
    sluice_pool *p;
    _Atomic int stop;
    _Atomic uint64_t resizes;
} resizer_arg;

static void *resize_loop(void *arg)
{
    resizer_arg *r = arg;
    unsigned k = 1;
    while (!atomic_load(&r->stop)) {
        if (sluice_pool_resize(r->p, k) == SLUICE_OK) {
            atomic_fetch_add(&r->resizes, 1);
        }
        k = k % 4 + 1;
        sched_yield();
    }
    return NULL;
}

static bool all_ran(void *arg)
{
    uintptr_t n = (uintptr_t)arg;
    for (uintptr_t i = 1; i <= n; i++) {
        if (atomic_load(&ran_ids[i]) == 0) {
            return false;
        }
    }
    return true;
}

static void test_resize_during_steals(void **state)
{
    (void)state;
    reset_ids();
    tally *t = tally_new();
    sluice_pool_config cfg;
    sharded_config(&cfg, "resize", 4, 256, t);
    sluice_pool *p;
    CREATE_POOL(&cfg, &p);

    unsigned rounds = stress_scale();
    uintptr_t per = (IDS - 1) / 3;
    for (unsigned round = 0; round < rounds; round++) {
        reset_ids();
        resizer_arg ra = {.p = p};
        pthread_t rt;
        assert_int_equal(pthread_create(&rt, NULL, resize_loop, &ra), 0);
        /* Producers start after the resizer's first resize: on a loaded
         * machine they once submitted and ran every task before the
         * resizer thread was first scheduled (0 resizes, 1 run in ~100;
         * core_resize's storm had the same race). */
        WAIT_FOR(atomic_load(&ra.resizes) > 0, "the resizer's first resize");
        producer_arg pa[3];
        pthread_t th[3];
        for (int i = 0; i < 3; i++) {
            pa[i] = (producer_arg){.p = p, .first = 1 + (uintptr_t)i * per, .count = per};
            assert_int_equal(pthread_create(&th[i], NULL, submit_range, &pa[i]), 0);
        }
        for (int i = 0; i < 3; i++) {
            pthread_join(th[i], NULL);
            assert_int_equal(atomic_load(&pa[i].accepted), per);
        }
        atomic_store(&ra.stop, 1);
        pthread_join(rt, NULL);
        assert_true(atomic_load(&ra.resizes) > 0);
        ASSERT_IDENTITY(p);
        for (uintptr_t i = 1; i <= 3 * per; i++) {
            if (atomic_load(&ran_ids[i]) != 1) {
                fail_msg("round %u: task %lu ran %d times", round, (unsigned long)i,
                         atomic_load(&ran_ids[i]));
            }
        }
        assert_true(atomic_load(&running_max) <= 4);
    }

    /* Shrunk to one worker: it has one home shard, and the tasks pushed to
     * the others must be stolen. */
    reset_ids();
    assert_int_equal(sluice_pool_resize(p, 1), SLUICE_OK);
    for (uintptr_t i = 1; i <= 200; i++) {
        assert_int_equal(sluice_pool_submit(p, busy_task, (void *)i), SLUICE_OK);
    }
    wait_until(all_ran, (void *)200, "every task to run on the one worker left");
    ASSERT_IDENTITY(p);
    assert_true(atomic_load(&running_max) <= 1);
    assert_int_equal(sluice_pool_drain(p, 0, NULL), SLUICE_OK);
    sluice_pool_destroy(p);
    assert_int_equal(atomic_load(&t->violations), 0);
    tally_free(t);
}

/* Both workers held; 8 old tasks fill the queue (spread over the shards);
 * 8 new ones each evict one. The rotating eviction start takes them from
 * the shards in turn, so exactly the 8 old tasks go, and the new ones
 * run once the gate opens. */
static void test_drop_oldest(void **state)
{
    (void)state;
    reset_ids();
    tally *t = tally_new();
    gate *g = gate_new();
    sluice_pool_config cfg;
    sharded_config(&cfg, "drop", 2, 8, t);
    cfg.overflow = SLUICE_OVERFLOW_DROP_OLDEST;
    sluice_pool *p;
    CREATE_POOL(&cfg, &p);
    assert_int_equal(sluice_pool_submit(p, gate_task, g), SLUICE_OK);
    assert_int_equal(sluice_pool_submit(p, gate_task, g), SLUICE_OK);
    GATE_WAIT_ENTERED(g, 2);
    for (uintptr_t i = 1; i <= 16; i++) {
        assert_int_equal(sluice_pool_submit(p, mark_task, (void *)i), SLUICE_OK);
    }
    sluice_pool_stats s = stats_now(p);
    assert_int_equal(s.dropped, 8);
    assert_int_equal(s.queue_depth, 8);
    assert_int_equal(atomic_load(&t->abandoned_by[SLUICE_ABANDON_DROPPED]), 8);
    pthread_mutex_lock(&t->mu);
    assert_int_equal(t->nabandoned_args, 8);
    int dropped_seen[9] = {0};
    for (unsigned i = 0; i < t->nabandoned_args; i++) {
        uintptr_t id = (uintptr_t)t->abandoned_args[i];
        if (id < 1 || id > 8) {
            pthread_mutex_unlock(&t->mu);
            fail_msg("DROP_OLDEST evicted task %lu, pushed after the queue filled", (unsigned long)id);
        }
        dropped_seen[id]++;
    }
    pthread_mutex_unlock(&t->mu);
    for (int i = 1; i <= 8; i++) {
        assert_int_equal(dropped_seen[i], 1);
    }
    gate_open(g);
    ASSERT_IDENTITY(p);
    for (int i = 1; i <= 16; i++) {
        assert_int_equal(atomic_load(&ran_ids[i]), i > 8 ? 1 : 0);
    }
    assert_int_equal(sluice_pool_drain(p, 0, NULL), SLUICE_OK);
    sluice_pool_destroy(p);
    gate_free(g);
    tally_free(t);
}

/* Many producers overfilling a small DROP_OLDEST queue while the workers
 * run: every accepted task either ran once or was dropped once. */
static void test_drop_oldest_stress(void **state)
{
    (void)state;
    reset_ids();
    tally *t = tally_new();
    sluice_pool_config cfg;
    sharded_config(&cfg, "drop-stress", 2, 16, t);
    cfg.overflow = SLUICE_OVERFLOW_DROP_OLDEST;
    sluice_pool *p;
    CREATE_POOL(&cfg, &p);
    uintptr_t per = (IDS - 1) / 3;
    producer_arg pa[3];
    pthread_t th[3];
    for (int i = 0; i < 3; i++) {
        pa[i] = (producer_arg){.p = p, .first = 1 + (uintptr_t)i * per, .count = per};
        assert_int_equal(pthread_create(&th[i], NULL, submit_range, &pa[i]), 0);
    }
    for (int i = 0; i < 3; i++) {
        pthread_join(th[i], NULL);
        assert_int_equal(atomic_load(&pa[i].accepted), per);
    }
    assert_int_equal(sluice_pool_drain(p, 0, NULL), SLUICE_OK);
    ASSERT_IDENTITY(p);
    sluice_pool_stats s = stats_now(p);
    assert_int_equal(s.submitted, 3 * per);
    assert_int_equal(s.completed + s.dropped, 3 * per);
    assert_int_equal(atomic_load(&t->abandoned_by[SLUICE_ABANDON_DROPPED]), s.dropped);
    uint64_t ran = 0;
    for (uintptr_t i = 1; i <= 3 * per; i++) {
        int r = atomic_load(&ran_ids[i]);
        assert_true(r == 0 || r == 1);
        ran += (uint64_t)r;
    }
    assert_int_equal(ran, s.completed);
    sluice_pool_destroy(p);
    tally_free(t);
}

/* On a fake clock: both workers held, 100 tasks queued, the even ones
 * with a deadline 1 ms ahead; the clock moves 50 ms; the gate opens. */
static void test_deadlines_shed(void **state)
{
    (void)state;
    reset_ids();
    tally *t = tally_new();
    gate *g = gate_new();
    sluice_fake_clock *fc = malloc(sizeof *fc); /* outlives the pool even if the test fails */
    assert_non_null(fc);
    sluice_fake_clock_init(fc, 1000000);
    sluice_pool_config cfg;
    sharded_config(&cfg, "deadlines", 2, 256, t);
    cfg.clock = &fc->clock;
    sluice_pool *p;
    CREATE_POOL(&cfg, &p);
    assert_int_equal(sluice_pool_submit(p, gate_task, g), SLUICE_OK);
    assert_int_equal(sluice_pool_submit(p, gate_task, g), SLUICE_OK);
    GATE_WAIT_ENTERED(g, 2);
    for (uintptr_t i = 1; i <= 100; i++) {
        sluice_submit_opts o = {.deadline_ns = i % 2 == 0 ? 1000000 + SLUICE_NS_PER_MS : 0};
        assert_int_equal(sluice_pool_submit_ex(p, mark_task, (void *)i, &o), SLUICE_OK);
    }
    sluice_fake_clock_advance(fc, 50 * SLUICE_NS_PER_MS);
    gate_open(g);
    ASSERT_IDENTITY(p);
    sluice_pool_stats s = stats_now(p);
    assert_int_equal(s.shed, 50);
    assert_int_equal(s.completed, 52);
    assert_int_equal(atomic_load(&t->abandoned_by[SLUICE_ABANDON_SHED]), 50);
    for (int i = 1; i <= 100; i++) {
        assert_int_equal(atomic_load(&ran_ids[i]), i % 2);
    }
    assert_int_equal(sluice_pool_drain(p, 0, NULL), SLUICE_OK);
    sluice_pool_destroy(p);
    free(fc);
    gate_free(g);
    tally_free(t);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_queue_capacity_and_steal),
        cmocka_unit_test(test_queue_many_threads),
        cmocka_unit_test(test_names_and_lifo_refused),
        cmocka_unit_test(test_drain_deadline_hands_back_every_shard),
        cmocka_unit_test(test_resize_during_steals),
        cmocka_unit_test(test_drop_oldest),
        cmocka_unit_test(test_drop_oldest_stress),
        cmocka_unit_test(test_deadlines_shed),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
