/*
 * tests/core/test_fifo_batch.c - the `fifo_batch` queue discipline (issue
 * 19): the FIFO ring where a worker that finds 16 or more tasks queued
 * claims a run of min(32, queued / 4) of them into its hand with one CAS
 * (src/core/queue_ring.c, "Batch claims"). The promises pool.h makes about
 * it, each arranged so that a claim is known to have happened:
 *
 *   - one worker runs tasks in exact submit order, through many claims;
 *   - queue_depth counts the tasks held in hands (exactly, while a worker
 *     that holds a run is blocked in a task of it);
 *   - no task waits behind a long one: while the worker that holds a run
 *     is blocked in a task of it, another worker takes the rest;
 *   - a drain at its deadline hands back every held task exactly once;
 *   - DROP_OLDEST evicts the oldest queued tasks, held ones first;
 *   - a task whose deadline passes while it is held is shed, not run;
 *   - held tasks keep their places: a REJECT pool whose worker holds a run
 *     accepts no more than capacity queued tasks;
 *   - resize (K from 1 to 8, hands fixed at create) while producers
 *     submit: every accepted task runs exactly once, and queue_depth (and
 *     its high-water mark) never exceeds queue_capacity (sampled from a
 *     thread);
 *   - the name and parser; adaptive LIFO refused naming fifo_batch.
 *
 * "A claim happened" is read from the queue table (core/internal.h):
 * fifo_batch's `fill` counts what the ring holds below head, `depth` adds
 * the hands, so depth - fill is the number of tasks held in hands.
 *
 * Arranging a claim. A worker whose last look at the queue found it too
 * shallow to claim pops up to SLUICE__BATCH_SHALLOW_SKIP (internal.h) more tasks one
 * by one before it looks again. So the scenarios queue LEAD_IN quick
 * filler tasks ahead of the long (gated) task: the held worker, let go,
 * pops at most all of them one by one, then looks, finds the queue deep
 * and claims a run that holds the long task and tasks after it; it blocks
 * in the long task with the rest of the run in its hand (asserted, the
 * count varies with where its look fell).
 *
 * Waits are bounded by SAFETY_NS (tests/common/wait.h); nothing sleeps to
 * wait for an event and nothing asserts on time. Stress parts are sized
 * by SLUICE_STRESS_SCALE.
 */
#include "common/pool.h"
#include "core/internal.h"

#define IDS (1u << 22)
#define ORDER_MAX 32768u
/* Fillers ahead of a long task (see above). */
#define LEAD_IN SLUICE__BATCH_SHALLOW_SKIP

static _Atomic int ran_ids[IDS];
static _Atomic uint32_t order[ORDER_MAX];
static _Atomic uint32_t order_len;
static _Atomic int fillers_ran;

static int mark_task(void *arg)
{
    uintptr_t id = (uintptr_t)arg;
    if (id < IDS) {
        atomic_fetch_add(&ran_ids[id], 1);
    }
    return 0;
}

static int filler_task(void *arg)
{
    (void)arg;
    atomic_fetch_add(&fillers_ran, 1);
    return 0;
}

/* A short task with a little work, so queues get deep under stress. */
static int busy_task(void *arg)
{
    for (volatile int i = 0; i < 200; i++) {
    }
    return mark_task(arg);
}

static void reset_ids(void)
{
    for (unsigned i = 0; i < IDS; i++) {
        atomic_store_explicit(&ran_ids[i], 0, memory_order_relaxed);
    }
    atomic_store(&order_len, 0);
    atomic_store(&fillers_ran, 0);
}

static void batch_config(sluice_pool_config *cfg, const char *name, unsigned k, size_t cap, tally *t)
{
    base_config(cfg, name, k, cap, t);
    cfg->queue_discipline = SLUICE_QUEUE_FIFO_BATCH;
}

/* Tasks held in the hands of p's queue now (depth minus the ring's part):
 * exact while no push or pop runs. */
static size_t held_now(sluice_pool *p)
{
    assert_ptr_equal(p->qops, &sluice__ring_batch_ops);
    size_t depth = p->qops->depth(p->q);
    size_t fill = p->qops->fill(p->q);
    assert_true(depth >= fill);
    return depth - fill;
}

/* Submits a task that holds a worker at gate g; `hard` ignores the stop
 * flag (it stays running through a drain's deadline). */
static void submit_gate(sluice_pool *p, gate *g, bool hard)
{
    assert_int_equal(sluice_pool_submit(p, hard ? task_gate_hard : task_gate, g), SLUICE_OK);
}

static void submit_marks(sluice_pool *p, int (*fn)(void *), uintptr_t first, uintptr_t count)
{
    for (uintptr_t i = first; i < first + count; i++) {
        assert_int_equal(sluice_pool_submit(p, fn, (void *)i), SLUICE_OK);
    }
}

/* LEAD_IN fillers, then the long task at gate g (see the header). */
static void submit_lead_in_and_long(sluice_pool *p, gate *g)
{
    for (unsigned i = 0; i < LEAD_IN; i++) {
        assert_int_equal(sluice_pool_submit(p, filler_task, NULL), SLUICE_OK);
    }
    submit_gate(p, g, true);
}

static bool ran_range(uintptr_t first, uintptr_t count, int times)
{
    for (uintptr_t i = first; i < first + count; i++) {
        if (atomic_load(&ran_ids[i]) != times) {
            return false;
        }
    }
    return true;
}

/* ---- 1. one worker: exact submit order --------------------------------- */

static sluice_pool *order_pool;
static _Atomic size_t order_held_max;

/* Records its id in `order` (one worker: the run order) and the most tasks
 * seen held in hands while a task ran, then marks it. */
static int order_task(void *arg)
{
    size_t depth = order_pool->qops->depth(order_pool->q);
    size_t fill = order_pool->qops->fill(order_pool->q);
    sluice__max_z(&order_held_max, depth > fill ? depth - fill : 0);
    uint32_t at = atomic_fetch_add(&order_len, 1);
    if (at < ORDER_MAX) {
        atomic_store(&order[at], (uint32_t)(uintptr_t)arg);
    }
    return mark_task(arg);
}

static void check_order(uint32_t n)
{
    assert_int_equal(atomic_load(&order_len), n);
    for (uint32_t i = 0; i < n; i++) {
        if (atomic_load(&order[i]) != i + 1) {
            fail_msg("position %u ran task %u, submitted %u-th", i, atomic_load(&order[i]), i + 1);
        }
    }
}

static void test_one_worker_keeps_order(void **state)
{
    (void)state;
    reset_ids();
    tally *t = tally_new();
    gate *g = gate_new();
    sluice_pool_config cfg;
    batch_config(&cfg, "order", 1, 2048, t);
    sluice_pool *p;
    CREATE_POOL(&cfg, &p);
    order_pool = p;
    atomic_store(&order_held_max, 0);

    /* The worker is held while 1000 tasks queue: within its first LEAD_IN
     * + 1 pops it looks, finds the queue deep and claims 32, and claims
     * again and again. */
    submit_gate(p, g, false);
    GATE_WAIT_ENTERED(g, 1);
    submit_marks(p, order_task, 1, 1000);
    assert_int_equal(stats_now(p).queue_depth, 1000);
    gate_open(g);
    ASSERT_IDENTITY(p);
    check_order(1000);
    assert_int_equal(atomic_load(&order_held_max), 31);

    /* Then while the worker runs: one producer, claims whenever the queue
     * happens to be deep; the order is still the submit order. */
    reset_ids();
    uint32_t n = 20000;
    submit_marks(p, order_task, 1, n);
    ASSERT_IDENTITY(p);
    check_order(n);
    assert_int_equal(sluice_pool_drain(p, 0, NULL), SLUICE_OK);
    sluice_pool_destroy(p);
    gate_free(g);
    tally_free(t);
}

/* ---- 2. queue_depth counts held tasks ---------------------------------- */

/* K=1, capacity 64. The worker is held at `first`; the lead-in, a long
 * task and 54 marks queue (63). Let go, it claims a run holding the long
 * task and blocks in it with marks in its hand: queue_depth must be
 * exactly the 54 marks that have not started, the held ones included. */
static void test_depth_counts_held(void **state)
{
    (void)state;
    reset_ids();
    tally *t = tally_new();
    gate *first = gate_new();
    gate *longg = gate_new();
    sluice_pool_config cfg;
    batch_config(&cfg, "depth", 1, 64, t);
    sluice_pool *p;
    CREATE_POOL(&cfg, &p);

    submit_gate(p, first, false);
    GATE_WAIT_ENTERED(first, 1);
    submit_lead_in_and_long(p, longg);
    submit_marks(p, mark_task, 1, 54);
    assert_int_equal(stats_now(p).queue_depth, 63);
    assert_int_equal(held_now(p), 0);

    gate_open(first);
    GATE_WAIT_ENTERED(longg, 1);
    assert_int_equal(atomic_load(&fillers_ran), LEAD_IN);
    sluice_pool_stats s = stats_now(p);
    assert_int_equal(s.queue_depth, 54);
    assert_int_equal(s.running, 1);
    size_t held = held_now(p);
    assert_true(held > 0 && held <= 31);
    assert_int_equal(p->qops->fill(p->q), 54 - held);
    assert_true(p->qops->pending(p->q));

    gate_open(longg);
    ASSERT_IDENTITY(p);
    assert_true(ran_range(1, 54, 1));
    s = stats_now(p);
    assert_int_equal(s.completed, 1 + LEAD_IN + 1 + 54);
    assert_true(s.queue_depth_hwm <= s.queue_capacity);
    assert_int_equal(sluice_pool_drain(p, 0, NULL), SLUICE_OK);
    sluice_pool_destroy(p);
    gate_free(first);
    gate_free(longg);
    tally_free(t);
}

/* K=2: both workers blocked in gate tasks (gb's tracked or not), then the
 * lead-in, the long task and `marks` marked tasks queued; A is let go and
 * claims a run holding the long task, and is blocked in it on return. */
static void a_holds_run_b_blocked(sluice_pool *p, gate *ga, gate *gb, bool gb_tracked, gate *longg,
                                  unsigned marks)
{
    submit_gate(p, ga, false);
    submit_gate(p, gb, gb_tracked);
    GATE_WAIT_ENTERED(ga, 1);
    GATE_WAIT_ENTERED(gb, 1);
    submit_lead_in_and_long(p, longg);
    submit_marks(p, mark_task, 1, marks);
    gate_open(ga);
    GATE_WAIT_ENTERED(longg, 1);
}

/* K=2: worker A holds a run and is blocked in its long task; depth is
 * exact; then worker B is let go and takes every other task, the ones in
 * A's hand too, while A stays blocked. */
static void test_depth_counts_held_two_workers(void **state)
{
    (void)state;
    reset_ids();
    tally *t = tally_new();
    gate *ga = gate_new();
    gate *gb = gate_new();
    gate *longg = gate_new();
    sluice_pool_config cfg;
    batch_config(&cfg, "depth2", 2, 64, t);
    sluice_pool *p;
    CREATE_POOL(&cfg, &p);
    a_holds_run_b_blocked(p, ga, gb, false, longg, 54);
    assert_int_equal(stats_now(p).queue_depth, 54);
    assert_true(held_now(p) > 0);

    gate_open(gb);
    WAIT_FOR(ran_range(1, 54, 1), "worker B to run all 54, those held by blocked worker A too");
    WAIT_FOR(stats_now(p).queue_depth == 0, "queue_depth 0 once every held task ran");
    assert_int_equal(atomic_load(&longg->inside), 1);
    assert_int_equal(held_now(p), 0);

    gate_open(longg);
    ASSERT_IDENTITY(p);
    assert_int_equal(stats_now(p).completed, 2 + LEAD_IN + 1 + 54);
    assert_int_equal(sluice_pool_drain(p, 0, NULL), SLUICE_OK);
    sluice_pool_destroy(p);
    gate_free(ga);
    gate_free(gb);
    gate_free(longg);
    tally_free(t);
}

/* ---- 3. no task waits behind a long task -------------------------------- */

/* K=2. Both workers held; the lead-in, a long task L and 200 short ones
 * queue. One worker is let go: it claims a run holding L and blocks in L
 * with short tasks in its hand. The other is let go: all 200 must
 * complete while L is still blocked, those in the blocked worker's hand
 * included. `together` lets both go at once instead (no claim is forced;
 * the interleavings vary). */
static void long_task_round(sluice_pool *p, bool together)
{
    reset_ids();
    gate *ga = gate_new();
    gate *gb = gate_new();
    gate *longg = gate_new();
    sluice_pool_stats before = stats_now(p);
    submit_gate(p, ga, false);
    submit_gate(p, gb, false);
    GATE_WAIT_ENTERED(ga, 1);
    GATE_WAIT_ENTERED(gb, 1);
    submit_lead_in_and_long(p, longg);
    submit_marks(p, mark_task, 1, 200);
    if (together) {
        gate_open(ga);
        gate_open(gb);
    } else {
        gate_open(ga);
        GATE_WAIT_ENTERED(longg, 1);
        assert_true(held_now(p) > 0);
        assert_int_equal(stats_now(p).queue_depth, 200);
        gate_open(gb);
    }
    WAIT_FOR(ran_range(1, 200, 1), "all 200 short tasks while the long one is blocked");
    WAIT_FOR(stats_now(p).completed == before.completed + 2 + LEAD_IN + 200,
             "the 200, the lead-in and both gate tasks completed");
    GATE_WAIT_ENTERED(longg, 1);
    assert_int_equal(atomic_load(&longg->inside), 1);
    assert_int_equal(stats_now(p).queue_depth, 0);
    gate_open(longg);
    ASSERT_IDENTITY(p);
    assert_true(ran_range(1, 200, 1));
    gate_free(ga);
    gate_free(gb);
    gate_free(longg);
}

static void test_no_task_waits_behind_long(void **state)
{
    (void)state;
    tally *t = tally_new();
    sluice_pool_config cfg;
    batch_config(&cfg, "long", 2, 1024, t);
    sluice_pool *p;
    CREATE_POOL(&cfg, &p);
    for (int round = 0; round < 50; round++) {
        long_task_round(p, round % 2 == 1);
    }
    assert_int_equal(sluice_pool_drain(p, 0, NULL), SLUICE_OK);
    ASSERT_IDENTITY(p);
    sluice_pool_destroy(p);
    assert_int_equal(atomic_load(&t->abandoned_total), 0);
    tally_free(t);
}

/* ---- 4. drain at its deadline hands back the held tasks ----------------- */

/* K=2: worker A blocked in a long task with a run in its hand, worker B
 * blocked in a gate task; a 1 ms drain must hand back every queued task,
 * the held ones included, exactly once. */
static void test_drain_deadline_hands_back_held(void **state)
{
    (void)state;
    reset_ids();
    tally *t = tally_new();
    gate *ga = gate_new();
    gate *gb = gate_new();
    gate *longg = gate_new();
    sluice_pool_config cfg;
    batch_config(&cfg, "drain", 2, 1024, t);
    sluice_pool *p;
    CREATE_POOL(&cfg, &p);
    a_holds_run_b_blocked(p, ga, gb, true, longg, 190);
    size_t held = held_now(p);
    assert_true(held > 0);
    assert_int_equal(stats_now(p).queue_depth, 190);

    sluice_drain_report rep;
    assert_int_equal(sluice_pool_drain(p, SLUICE_NS_PER_MS, &rep), SLUICE_ETIMEDOUT);
    assert_true(rep.timed_out);
    assert_int_equal(rep.handed_back, 190);
    assert_int_equal(rep.still_running, 2);
    assert_int_equal(atomic_load(&t->abandoned_by[SLUICE_ABANDON_DRAIN]), 190);
    assert_int_equal(atomic_load(&t->abandoned_total), 190);
    pthread_mutex_lock(&t->mu);
    unsigned nargs = t->nabandoned_args;
    int seen[191] = {0};
    bool bad = false;
    for (unsigned i = 0; i < nargs; i++) {
        uintptr_t id = (uintptr_t)t->abandoned_args[i];
        if (id < 1 || id > 190 || t->abandoned_reasons[i] != SLUICE_ABANDON_DRAIN) {
            bad = true;
        } else {
            seen[id]++;
        }
    }
    pthread_mutex_unlock(&t->mu);
    assert_false(bad);
    assert_int_equal(nargs, 190);
    for (int i = 1; i <= 190; i++) {
        if (seen[i] != 1) {
            fail_msg("task %d handed back %d times (%zu were held)", i, seen[i], held);
        }
    }
    assert_int_equal(held_now(p), 0);
    assert_int_equal(stats_now(p).queue_depth, 0);

    gate_open(longg);
    gate_open(gb);
    ASSERT_IDENTITY(p);
    sluice_pool_stats s = stats_now(p);
    assert_int_equal(s.submitted, 2 + LEAD_IN + 1 + 190);
    assert_int_equal(s.completed, 2 + LEAD_IN + 1);
    assert_int_equal(s.abandoned, 190);
    /* Every task accounted for once: none of the handed-back ones ran. */
    assert_true(ran_range(1, 190, 0));
    sluice_pool_destroy(p);
    assert_int_equal(atomic_load(&t->abandoned_total), 190);
    assert_int_equal(atomic_load(&t->abandon_bad), 0);
    gate_free(ga);
    gate_free(gb);
    gate_free(longg);
    tally_free(t);
}

/* ---- 5. DROP_OLDEST: held tasks are the oldest -------------------------- */

/* K=1, capacity 64: the lead-in, a long task and 55 marks fill the queue.
 * The worker blocks in the long task holding a run (marks 1..h). The
 * lead-in's and the long task's 9 places take 9 more marks; each of the
 * next 12 evicts the oldest queued task: marks 1..12 in order, the held
 * ones first. */
static void test_drop_oldest_takes_held_first(void **state)
{
    (void)state;
    reset_ids();
    tally *t = tally_new();
    gate *ga = gate_new();
    gate *longg = gate_new();
    sluice_pool_config cfg;
    batch_config(&cfg, "drop", 1, 64, t);
    cfg.overflow = SLUICE_OVERFLOW_DROP_OLDEST;
    sluice_pool *p;
    CREATE_POOL(&cfg, &p);
    submit_gate(p, ga, false);
    GATE_WAIT_ENTERED(ga, 1);
    submit_lead_in_and_long(p, longg);
    submit_marks(p, mark_task, 1, 55);
    assert_int_equal(stats_now(p).queue_depth, 64);
    gate_open(ga);
    GATE_WAIT_ENTERED(longg, 1);
    size_t held = held_now(p);
    assert_true(held > 0);
    assert_int_equal(stats_now(p).queue_depth, 55);

    submit_marks(p, mark_task, 56, 9);
    sluice_pool_stats s = stats_now(p);
    assert_int_equal(s.dropped, 0);
    assert_int_equal(s.queue_depth, 64);
    submit_marks(p, mark_task, 65, 12);
    s = stats_now(p);
    assert_int_equal(s.dropped, 12);
    assert_int_equal(s.queue_depth, 64);
    assert_int_equal(held_now(p), held > 12 ? held - 12 : 0);
    assert_int_equal(atomic_load(&t->abandoned_by[SLUICE_ABANDON_DROPPED]), 12);
    pthread_mutex_lock(&t->mu);
    unsigned nargs = t->nabandoned_args;
    uintptr_t dropped[12] = {0};
    for (unsigned i = 0; i < nargs && i < 12; i++) {
        dropped[i] = (uintptr_t)t->abandoned_args[i];
    }
    pthread_mutex_unlock(&t->mu);
    assert_int_equal(nargs, 12);
    for (unsigned i = 0; i < 12; i++) {
        if (dropped[i] != i + 1) {
            fail_msg("eviction %u dropped task %lu, the oldest queued was %u (%zu held)", i,
                     (unsigned long)dropped[i], i + 1, held);
        }
    }

    gate_open(longg);
    ASSERT_IDENTITY(p);
    assert_true(ran_range(1, 12, 0));
    assert_true(ran_range(13, 64, 1));
    s = stats_now(p);
    assert_int_equal(s.submitted, 1 + LEAD_IN + 1 + 55 + 9 + 12);
    assert_int_equal(s.completed, 1 + LEAD_IN + 1 + 64);
    assert_int_equal(sluice_pool_drain(p, 0, NULL), SLUICE_OK);
    sluice_pool_destroy(p);
    gate_free(ga);
    gate_free(longg);
    tally_free(t);
}

/* ---- 6. deadlines that pass while a task is held ------------------------ */

static void test_deadline_passes_while_held(void **state)
{
    (void)state;
    reset_ids();
    tally *t = tally_new();
    gate *ga = gate_new();
    gate *longg = gate_new();
    sluice_fake_clock *fc = malloc(sizeof *fc); /* outlives the pool even if the test fails */
    assert_non_null(fc);
    sluice_fake_clock_init(fc, 1000000);
    sluice_pool_config cfg;
    batch_config(&cfg, "deadlines", 1, 256, t);
    cfg.clock = &fc->clock;
    sluice_pool *p;
    CREATE_POOL(&cfg, &p);
    submit_gate(p, ga, false);
    GATE_WAIT_ENTERED(ga, 1);
    /* The lead-in, L and 99 marks, the even ones due 1 ms ahead. The
     * worker claims a run (L and at least 16 marks) and blocks in L; then
     * the clock moves 50 ms. */
    submit_lead_in_and_long(p, longg);
    for (uintptr_t i = 1; i <= 99; i++) {
        sluice_submit_opts o = {.deadline_ns = i % 2 == 0 ? 1000000 + SLUICE_NS_PER_MS : 0};
        assert_int_equal(sluice_pool_submit_ex(p, mark_task, (void *)i, &o), SLUICE_OK);
    }
    gate_open(ga);
    GATE_WAIT_ENTERED(longg, 1);
    size_t held = held_now(p);
    assert_true(held >= 2); /* at least one with a deadline is held */
    sluice_fake_clock_advance(fc, 50 * SLUICE_NS_PER_MS);
    gate_open(longg);
    ASSERT_IDENTITY(p);
    sluice_pool_stats s = stats_now(p);
    assert_int_equal(s.shed, 49);
    assert_int_equal(s.completed, 1 + LEAD_IN + 1 + 50);
    assert_int_equal(atomic_load(&t->abandoned_by[SLUICE_ABANDON_SHED]), 49);
    for (int i = 1; i <= 99; i++) {
        if (atomic_load(&ran_ids[i]) != i % 2) {
            fail_msg("task %d (%s, %s) ran %d times", i, (size_t)i <= held ? "held" : "in the ring",
                     i % 2 ? "no deadline" : "deadline passed", atomic_load(&ran_ids[i]));
        }
    }
    assert_int_equal(sluice_pool_drain(p, 0, NULL), SLUICE_OK);
    sluice_pool_destroy(p);
    free(fc);
    gate_free(ga);
    gate_free(longg);
    tally_free(t);
}

/* ---- 7 and 8. stress: resize during steals; depth within capacity ------- */

typedef struct stress {
    sluice_pool *p;
    _Atomic int stop;         /* producers and resizer */
    _Atomic int stop_sampler; /* the sampler, after the drain */
    _Atomic uintptr_t next_id;
    _Atomic uint64_t accepted;
    _Atomic uint64_t refused;
    _Atomic uint64_t resizes;
    _Atomic uint64_t samples;
    _Atomic size_t depth_max;
    _Atomic size_t hwm_max;
    _Atomic uint64_t depth_over; /* samples whose queue_depth was above capacity */
    _Atomic uint64_t hwm_over;   /* samples whose queue_depth_hwm was above capacity */
    size_t capacity;
    unsigned seed;
} stress;

static void *stress_producer(void *arg)
{
    stress *s = arg;
    while (!atomic_load(&s->stop)) {
        uintptr_t id = atomic_fetch_add(&s->next_id, 1);
        if (id >= IDS) {
            break;
        }
        sluice_err err = sluice_pool_submit(s->p, busy_task, (void *)id);
        if (err == SLUICE_OK) {
            atomic_fetch_add(&s->accepted, 1);
        } else {
            /* Refused: mark it so the check below expects 0 runs. */
            atomic_fetch_add(&s->refused, 1);
            atomic_store(&ran_ids[id], -1000);
        }
    }
    return NULL;
}

static void *stress_resizer(void *arg)
{
    stress *s = arg;
    unsigned seed = s->seed;
    while (!atomic_load(&s->stop)) {
        unsigned k = 1 + (unsigned)(rand_r(&seed) % 8);
        if (sluice_pool_resize(s->p, k) == SLUICE_OK) {
            atomic_fetch_add(&s->resizes, 1);
        }
        sched_yield();
    }
    return NULL;
}

static void *stress_sampler(void *arg)
{
    stress *s = arg;
    while (!atomic_load(&s->stop_sampler)) {
        sluice_pool_stats st;
        sluice_pool_stats_get(s->p, &st);
        if (st.queue_depth > s->capacity) {
            atomic_fetch_add(&s->depth_over, 1);
        }
        if (st.queue_depth_hwm > s->capacity) {
            atomic_fetch_add(&s->hwm_over, 1);
        }
        sluice__max_z(&s->depth_max, st.queue_depth);
        sluice__max_z(&s->hwm_max, st.queue_depth_hwm);
        atomic_fetch_add(&s->samples, 1);
        sched_yield();
    }
    return NULL;
}

/* Producers (and a resizer when `resize`) for ~2 s x scale of real time
 * (a duration of load, not an assertion), a sampler throughout; then
 * drain(UINT64_MAX) and check every task. */
static void stress_run(sluice_overflow overflow, unsigned k, size_t cap, bool resize, unsigned seconds_x10)
{
    reset_ids();
    tally *t = tally_new();
    sluice_pool_config cfg;
    batch_config(&cfg, "stress", k, cap, t);
    cfg.overflow = overflow;
    sluice_pool *p;
    CREATE_POOL(&cfg, &p);
    stress *s = calloc(1, sizeof *s);
    assert_non_null(s);
    s->p = p;
    s->capacity = cap;
    s->seed = (unsigned)real_now_ns();
    atomic_store(&s->next_id, 1);
    pthread_t prod[3], rs, sm;
    START_THREAD(&sm, stress_sampler, s);
    if (resize) {
        START_THREAD(&rs, stress_resizer, s);
        WAIT_FOR(atomic_load(&s->resizes) > 0, "the resizer's first resize");
    }
    for (int i = 0; i < 3; i++) {
        START_THREAD(&prod[i], stress_producer, s);
    }
    uint64_t until = real_now_ns() + (uint64_t)seconds_x10 * stress_scale() * SLUICE_NS_PER_SEC / 10;
    /* The load runs for a time (not awaited as an event; scale may make it
     * longer than SAFETY_NS), or until the ids run out. */
    while (real_now_ns() < until && atomic_load(&s->next_id) < IDS) {
        poll_pause();
    }
    atomic_store(&s->stop, 1);
    for (int i = 0; i < 3; i++) {
        pthread_join(prod[i], NULL);
    }
    if (resize) {
        pthread_join(rs, NULL);
    }
    assert_int_equal(sluice_pool_drain(p, UINT64_MAX, NULL), SLUICE_OK);
    atomic_store(&s->stop_sampler, 1);
    pthread_join(sm, NULL);
    ASSERT_IDENTITY(p);

    uintptr_t last = atomic_load(&s->next_id);
    if (last > IDS) {
        last = IDS;
    }
    uint64_t ran = 0;
    for (uintptr_t i = 1; i < last; i++) {
        int r = atomic_load(&ran_ids[i]);
        if (r != 1 && r != -1000) {
            fail_msg("task %lu ran %d times (refused ones are -1000)", (unsigned long)i, r);
        }
        ran += r == 1;
    }
    sluice_pool_stats st = stats_now(p);
    print_message("fifo_batch stress (%s, K %u, cap %zu%s): %llu accepted, %llu refused, %llu resizes, "
                  "%llu depth samples, max depth %zu (%llu over), max hwm %zu (%llu over)\n",
                  sluice_overflow_name(overflow), k, cap, resize ? ", resizing 1..8" : "",
                  (unsigned long long)atomic_load(&s->accepted), (unsigned long long)atomic_load(&s->refused),
                  (unsigned long long)atomic_load(&s->resizes), (unsigned long long)atomic_load(&s->samples),
                  atomic_load(&s->depth_max), (unsigned long long)atomic_load(&s->depth_over),
                  atomic_load(&s->hwm_max), (unsigned long long)atomic_load(&s->hwm_over));
    assert_true(atomic_load(&s->accepted) > 0);
    assert_int_equal(ran, atomic_load(&s->accepted));
    assert_int_equal(st.submitted, atomic_load(&s->accepted));
    assert_int_equal(st.completed, atomic_load(&s->accepted));
    assert_int_equal(st.queue_depth, 0);
    assert_int_equal(held_now(p), 0);
    assert_true(atomic_load(&s->samples) > 0);
    assert_int_equal(atomic_load(&s->depth_over), 0);
    assert_int_equal(atomic_load(&s->hwm_over), 0);
    assert_true(st.queue_depth_hwm <= cap);
    if (overflow == SLUICE_OVERFLOW_BLOCK) {
        assert_int_equal(atomic_load(&s->refused), 0);
    }
    if (resize) {
        assert_true(atomic_load(&s->resizes) > 0);
    }
    if (atomic_load(&t->abandoned_total) != 0) {
        stats_print("abandoned", &st);
        fail_msg("abandoned: dropped %llu shed %llu drain %llu destroy %llu",
                 (unsigned long long)atomic_load(&t->abandoned_by[SLUICE_ABANDON_DROPPED]),
                 (unsigned long long)atomic_load(&t->abandoned_by[SLUICE_ABANDON_SHED]),
                 (unsigned long long)atomic_load(&t->abandoned_by[SLUICE_ABANDON_DRAIN]),
                 (unsigned long long)atomic_load(&t->abandoned_by[SLUICE_ABANDON_DESTROY]));
    }
    sluice_pool_destroy(p);
    free(s);
    tally_free(t);
}

static void test_resize_during_steals(void **state)
{
    (void)state;
    /* 4 hands (K at create); resizes to 8 share them. */
    stress_run(SLUICE_OVERFLOW_BLOCK, 4, 256, true, 20);
}

static void test_depth_within_capacity_stress(void **state)
{
    (void)state;
    stress_run(SLUICE_OVERFLOW_REJECT, 2, 64, false, 10);
}

/* Held tasks keep their places: K=1, capacity 64, REJECT. The worker
 * claims 16 (L and marks 1..15) and blocks in L: the queue holds 63 and
 * the only free place is L's. Of 100 more submits exactly one is
 * accepted: never more than capacity queued beside the running task. */
/* Held tasks keep their places: K=1, capacity 64, REJECT. The lead-in, a
 * long task and 55 marks fill the queue; the worker claims a run and
 * blocks in the long task with marks 1..h in its hand: the only free
 * places are the 9 of the lead-in and the long task. Of 100 more submits
 * exactly those 9 are accepted: never more than capacity queued beside
 * the running task, though the ring has places beyond the held run. */
static void test_reject_bound_while_held(void **state)
{
    (void)state;
    reset_ids();
    tally *t = tally_new();
    gate *ga = gate_new();
    gate *longg = gate_new();
    sluice_pool_config cfg;
    batch_config(&cfg, "reject", 1, 64, t);
    cfg.overflow = SLUICE_OVERFLOW_REJECT;
    sluice_pool *p;
    CREATE_POOL(&cfg, &p);
    submit_gate(p, ga, false);
    GATE_WAIT_ENTERED(ga, 1);
    submit_lead_in_and_long(p, longg);
    submit_marks(p, mark_task, 1, 55);
    assert_int_equal(sluice_pool_submit(p, mark_task, (void *)999), SLUICE_EFULL);
    gate_open(ga);
    GATE_WAIT_ENTERED(longg, 1);
    assert_true(held_now(p) > 0);
    assert_int_equal(stats_now(p).queue_depth, 55);

    unsigned accepted = 0;
    for (uintptr_t i = 100; i < 200; i++) {
        sluice_err err = sluice_pool_submit(p, mark_task, (void *)i);
        assert_true(err == SLUICE_OK || err == SLUICE_EFULL);
        accepted += err == SLUICE_OK;
        sluice_pool_stats s = stats_now(p);
        if (s.queue_depth > s.queue_capacity) {
            fail_msg("queue_depth %zu > capacity %zu after %u accepted", s.queue_depth, s.queue_capacity,
                     accepted);
        }
    }
    assert_int_equal(accepted, 9);
    sluice_pool_stats s = stats_now(p);
    assert_int_equal(s.queue_depth, 64);
    assert_int_equal(s.running, 1);
    assert_int_equal(s.rejected, 1 + 91);

    gate_open(longg);
    ASSERT_IDENTITY(p);
    s = stats_now(p);
    assert_int_equal(s.completed, 1 + LEAD_IN + 1 + 55 + 9);
    assert_true(ran_range(1, 55, 1));
    assert_true(ran_range(100, 9, 1));
    assert_true(ran_range(109, 91, 0));
    assert_int_equal(sluice_pool_drain(p, 0, NULL), SLUICE_OK);
    sluice_pool_destroy(p);
    gate_free(ga);
    gate_free(longg);
    tally_free(t);
}

/* ---- 9. config ------------------------------------------------------------ */

static void test_names_and_lifo_refused(void **state)
{
    (void)state;
    sluice_queue_discipline d = SLUICE_QUEUE_FIFO;
    assert_int_equal(sluice_queue_discipline_parse("fifo_batch", &d), SLUICE_OK);
    assert_int_equal(d, SLUICE_QUEUE_FIFO_BATCH);
    assert_string_equal(sluice_queue_discipline_name(SLUICE_QUEUE_FIFO_BATCH), "fifo_batch");
    assert_int_equal(sluice_queue_discipline_parse(sluice_queue_discipline_name(d), &d), SLUICE_OK);
    assert_int_equal(d, SLUICE_QUEUE_FIFO_BATCH);
    d = SLUICE_QUEUE_FIFO;
    assert_int_equal(sluice_queue_discipline_parse("FIFO_BATCH", &d), SLUICE_EINVAL);
    assert_int_equal(sluice_queue_discipline_parse("fifo-batch", &d), SLUICE_EINVAL);
    assert_int_equal(d, SLUICE_QUEUE_FIFO);

    tally *t = tally_new();
    sluice_overload_mode lifos[2] = {SLUICE_OVERLOAD_LIFO, SLUICE_OVERLOAD_CODEL_LIFO};
    for (int i = 0; i < 2; i++) {
        sluice_pool_config cfg;
        batch_config(&cfg, "lifo", 2, 64, t);
        cfg.overload = lifos[i];
        sluice_pool *p = NULL;
        char err[256] = "";
        assert_int_equal(sluice_pool_create(&cfg, &p, err, sizeof err), SLUICE_EINVAL);
        assert_null(p);
        assert_non_null(strstr(err, "overload"));
        assert_non_null(strstr(err, "fifo_batch"));
    }
    /* CoDel composes with it. */
    sluice_pool_config cfg;
    batch_config(&cfg, "codel", 2, 64, t);
    cfg.overload = SLUICE_OVERLOAD_CODEL;
    sluice_pool *p;
    CREATE_POOL(&cfg, &p);
    assert_int_equal(sluice_pool_submit(p, task_count, t), SLUICE_OK);
    assert_int_equal(sluice_pool_drain(p, 0, NULL), SLUICE_OK);
    ASSERT_IDENTITY(p);
    assert_int_equal(atomic_load(&t->ran), 1);
    sluice_pool_destroy(p);
    tally_free(t);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_names_and_lifo_refused),
        cmocka_unit_test(test_one_worker_keeps_order),
        cmocka_unit_test(test_depth_counts_held),
        cmocka_unit_test(test_depth_counts_held_two_workers),
        cmocka_unit_test(test_no_task_waits_behind_long),
        cmocka_unit_test(test_drain_deadline_hands_back_held),
        cmocka_unit_test(test_drop_oldest_takes_held_first),
        cmocka_unit_test(test_deadline_passes_while_held),
        cmocka_unit_test(test_reject_bound_while_held),
        cmocka_unit_test(test_depth_within_capacity_stress),
        cmocka_unit_test(test_resize_during_steals),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
