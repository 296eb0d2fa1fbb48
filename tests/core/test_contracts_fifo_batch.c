/*
 * tests/core/test_contracts_fifo_batch.c - the promises sluice/pool.h makes
 * for pools in general and for queue_discipline `fifo_batch` in particular,
 * probed from outside at their extremes: only the public headers and
 * tests/common are used (test_fifo_batch.c reads the queue's internals to
 * arrange claims; this program does not).
 *
 * The promises, and how each is probed:
 *   - tiny queues (capacity 1, 2, 3, 15, 16, 17; K 1 and 17) behave like
 *     fifo while no run is held: every place usable, REJECT and try_submit
 *     refuse exactly at capacity, queue_depth exact, the high-water mark
 *     exact; one worker runs them in submit order;
 *   - more workers than the 16 hands (K = 20): a burst of blocking tasks
 *     all start (no task waits behind a held run), then 200 queued tasks
 *     each run once with at most K running;
 *   - resize down and up while tasks are queued, runs are claimed and every
 *     worker is blocked: once resize has returned, a task starts only while
 *     fewer than K run; growing starts workers at once; nothing is lost;
 *   - drain(0), drain(1 ns), drain(UINT64_MAX) and destroy without drain,
 *     with workers blocked while holding claimed runs: every accepted task
 *     runs or is handed back exactly once with the right reason, and the
 *     drain report's numbers match what the tasks and the handler saw;
 *   - resize up with tasks held in hands and the ring nearly empty starts
 *     a worker for every one of them (K = 16 hands at create, 2 in use);
 *   - tasks queued deep whose deadline passes or whose context ends are
 *     shed, never run; submit_batch stops exactly at capacity, and a
 *     try_submit beside a blocked batch gets EFULL; CoDel sheds
 *     on a fifo_batch pool; DROP_OLDEST evicts in FIFO order and
 *     CALLER_RUNS runs on the submitter, and under concurrent producers
 *     both keep the accounting identity and run-or-hand-back-once.
 *
 * Every task is a `slot` (its arg): the task counts its runs there and
 * the abandon handler its hand-backs, so "exactly once" is checked per
 * task. Gates hold workers; nothing sleeps to wait for an event, every
 * wait is bounded (tests/common/wait.h) and nothing asserts on time.
 */
#include "common/pool.h"

#define MAX_SLOTS 16384u
/* Quick tasks ahead of blocking ones in the set-ups that want claims: a
 * worker whose last look found the queue shallow pops several tasks one
 * by one before it looks (and claims) again. */
#define LEAD_IN 16u

typedef struct slot {
    gate *g;           /* the task waits here (honouring the stop flag) when set */
    bool phase;        /* the task waits at phase_gate, read when it starts */
    bool advance;      /* the task advances fake_clk by 1 ms */
    sluice_ctx *ctx;   /* the task must not start once this is done */
    uint64_t deadline; /* the task must not start at or after this (fake_clk) */
    _Atomic int ran;
    _Atomic int abandoned;
    _Atomic int reason;
    _Atomic int on_producer; /* ran on a submitting thread (CALLER_RUNS) */
} slot;

static slot slots[MAX_SLOTS];
static unsigned nslots;
static _Atomic int running_now;
static _Atomic int running_max;
static _Atomic int running_limit; /* 0: not checked */
static _Atomic int over_limit;    /* task starts that found running_limit or more running */
static _Atomic int late_starts;   /* tasks started past their deadline or with their ctx done */
static _Atomic int twice;         /* run twice, or run and handed back */
static _Atomic(gate *) phase_gate;
static _Atomic uint32_t order[MAX_SLOTS];
static _Atomic uint32_t order_len;
static sluice_fake_clock fake_clk;
static _Thread_local bool is_producer;

static void reset_slots(void)
{
    memset(slots, 0, sizeof slots);
    nslots = 0;
    atomic_store(&running_now, 0);
    atomic_store(&running_max, 0);
    atomic_store(&running_limit, 0);
    atomic_store(&over_limit, 0);
    atomic_store(&late_starts, 0);
    atomic_store(&twice, 0);
    atomic_store(&phase_gate, NULL);
    atomic_store(&order_len, 0);
}

static slot *new_slot(gate *g)
{
    assert_true(nslots < MAX_SLOTS);
    slot *s = &slots[nslots++];
    s->g = g;
    return s;
}

static unsigned slot_index(const slot *s)
{
    return (unsigned)(s - slots);
}

static int slot_task(void *arg)
{
    slot *s = arg;
    int cur = atomic_fetch_add(&running_now, 1) + 1;
    int limit = atomic_load(&running_limit);
    if (limit > 0 && cur > limit) {
        atomic_fetch_add(&over_limit, 1);
    }
    int seen = atomic_load(&running_max);
    while (cur > seen && !atomic_compare_exchange_weak(&running_max, &seen, cur)) {
    }
    if (atomic_fetch_add(&s->ran, 1) != 0 || atomic_load(&s->abandoned) != 0) {
        atomic_fetch_add(&twice, 1);
    }
    if ((s->deadline && sluice_clock_now(&fake_clk.clock) >= s->deadline) ||
        (s->ctx && sluice_ctx_done(s->ctx))) {
        atomic_fetch_add(&late_starts, 1);
    }
    uint32_t at = atomic_fetch_add(&order_len, 1);
    if (at < MAX_SLOTS) {
        atomic_store(&order[at], slot_index(s));
    }
    if (is_producer) {
        atomic_store(&s->on_producer, 1);
    }
    if (s->advance) {
        sluice_fake_clock_advance(&fake_clk, SLUICE_NS_PER_MS);
    }
    gate *g = s->g ? s->g : (s->phase ? atomic_load(&phase_gate) : NULL);
    if (g) {
        gate_pass(g, true);
    }
    atomic_fetch_sub(&running_now, 1);
    return 0;
}

static void probe_abandon(const sluice_abandoned *a, void *user)
{
    tally_abandon(a, user);
    slot *s = a->arg;
    if (s < slots || s >= slots + MAX_SLOTS) {
        return;
    }
    atomic_store(&s->reason, (int)a->reason);
    if (atomic_fetch_add(&s->abandoned, 1) != 0 || atomic_load(&s->ran) != 0) {
        atomic_fetch_add(&twice, 1);
    }
}

static void probe_config(sluice_pool_config *cfg, const char *name, unsigned k, size_t cap,
                         sluice_overflow overflow, tally *t)
{
    base_config(cfg, name, k, cap, t);
    cfg->abandon_handler = probe_abandon;
    cfg->queue_discipline = SLUICE_QUEUE_FIFO_BATCH;
    cfg->overflow = overflow;
}

static sluice_err submit_slot(sluice_pool *p, slot *s)
{
    return sluice_pool_submit(p, slot_task, s);
}

/* Blocks k workers at g, one task at a time, each popped from a queue
 * too shallow for a claim: no run is held afterwards. */
static void block_workers(sluice_pool *p, gate *g, unsigned k)
{
    for (unsigned i = 0; i < k; i++) {
        assert_int_equal(submit_slot(p, new_slot(g)), SLUICE_OK);
        GATE_WAIT_ENTERED(g, (int)i + 1);
    }
}

/* Each of slots[first..first+n) ran or was handed back exactly once. */
static void assert_each_once(unsigned first, unsigned n)
{
    for (unsigned i = first; i < first + n; i++) {
        int r = atomic_load(&slots[i].ran), a = atomic_load(&slots[i].abandoned);
        if (r + a != 1) {
            fail_msg("slot %u: ran %d times, handed back %d times", i, r, a);
        }
    }
    assert_int_equal(atomic_load(&twice), 0);
}

static unsigned count_abandoned(unsigned first, unsigned n, sluice_abandon_reason reason)
{
    unsigned c = 0;
    for (unsigned i = first; i < first + n; i++) {
        if (atomic_load(&slots[i].abandoned) && atomic_load(&slots[i].reason) == (int)reason) {
            c++;
        }
    }
    return c;
}

static bool all_settled(unsigned first, unsigned n)
{
    for (unsigned i = first; i < first + n; i++) {
        if (atomic_load(&slots[i].ran) + atomic_load(&slots[i].abandoned) < 1) {
            return false;
        }
    }
    return true;
}

/* ---- 1. tiny queues: exactly like fifo while no run is held ------------ */

static void tiny_round(unsigned k, size_t cap, sluice_overflow overflow)
{
    reset_slots();
    tally *t = tally_new();
    gate *g = gate_new();
    sluice_pool_config cfg;
    probe_config(&cfg, "tiny", k, cap, overflow, t);
    sluice_pool *p;
    CREATE_POOL(&cfg, &p);
    block_workers(p, g, k);
    unsigned first = nslots;
    /* REJECT probes submit; BLOCK probes try_submit (never blocks). */
    for (size_t i = 0; i < cap; i++) {
        slot *s = new_slot(NULL);
        sluice_err rc =
            overflow == SLUICE_OVERFLOW_REJECT ? submit_slot(p, s) : sluice_pool_try_submit(p, slot_task, s);
        if (rc != SLUICE_OK) {
            fail_msg("K=%u cap=%zu %s: task %zu of %zu refused with %s", k, cap,
                     sluice_overflow_name(overflow), i + 1, cap, sluice_err_name(rc));
        }
        sluice_pool_stats s1 = stats_now(p);
        assert_int_equal(s1.queue_depth, i + 1);
    }
    slot *extra = new_slot(NULL);
    sluice_err rc = overflow == SLUICE_OVERFLOW_REJECT ? submit_slot(p, extra)
                                                       : sluice_pool_try_submit(p, slot_task, extra);
    assert_int_equal(rc, SLUICE_EFULL);
    sluice_pool_stats s = stats_now(p);
    assert_int_equal(s.queue_depth, cap);
    assert_int_equal(s.queue_capacity, cap);
    assert_int_equal(s.queue_depth_hwm, cap);
    assert_int_equal(s.rejected, 1);
    nslots--; /* the refused one stays the caller's */
    gate_open(g);
    WAIT_FOR(all_settled(first, (unsigned)cap), "K=%u cap=%zu: every queued task run", k, cap);
    ASSERT_IDENTITY(p);
    assert_each_once(0, nslots);
    assert_int_equal(atomic_load(&t->abandoned_total), 0);
    if (k == 1) {
        /* One worker: the gate task, then exact submit order. */
        assert_int_equal(atomic_load(&order_len), nslots);
        for (unsigned i = 0; i < nslots; i++) {
            assert_int_equal(atomic_load(&order[i]), i);
        }
    }
    s = stats_now(p);
    assert_true(s.queue_depth_hwm <= cap);
    sluice_drain_report rep;
    assert_int_equal(sluice_pool_drain(p, 0, &rep), SLUICE_OK);
    assert_int_equal(stats_now(p).queue_depth, 0);
    sluice_pool_destroy(p);
    gate_free(g);
    tally_free(t);
}

static void test_tiny_queues_like_fifo(void **state)
{
    (void)state;
    static const size_t caps[] = {1, 2, 3, 15, 16, 17};
    static const unsigned ks[] = {1, 17};
    for (unsigned ki = 0; ki < 2; ki++) {
        for (unsigned ci = 0; ci < sizeof caps / sizeof caps[0]; ci++) {
            tiny_round(ks[ki], caps[ci], SLUICE_OVERFLOW_REJECT);
            tiny_round(ks[ki], caps[ci], SLUICE_OVERFLOW_BLOCK);
        }
    }
}

/* ---- 2. more workers than hands ----------------------------------------- */

/* K = 20 > 16 hands. A burst of 20 blocking tasks (deep enough for claims)
 * must all start: a run held by a blocked worker is taken over, and
 * workers are started for it (this once started 16 workers and left 4
 * held tasks waiting: starting workers did not count the hands). Then the
 * queue is filled to exactly its capacity (every place free again once
 * every claimed task has started), and each task runs once, at most K at
 * a time. */
static void test_more_workers_than_hands(void **state)
{
    (void)state;
    reset_slots();
    enum { K = 20, CAP = 256 };
    tally *t = tally_new();
    gate *g = gate_new();
    sluice_pool_config cfg;
    probe_config(&cfg, "hands", K, CAP, SLUICE_OVERFLOW_REJECT, t);
    sluice_pool *p;
    CREATE_POOL(&cfg, &p);
    for (unsigned i = 0; i < K; i++) {
        assert_int_equal(submit_slot(p, new_slot(g)), SLUICE_OK);
    }
    if (!gate_wait_entered_bg(g, K)) {
        sluice_pool_stats st = stats_now(p);
        stats_print("burst", &st);
        sluice_worker_info wi[32];
        size_t nw = sluice_pool_workers_get(p, wi, 32);
        for (size_t i = 0; i < nw && i < 32; i++) {
            print_message("worker %u state %s\n", wi[i].index, sluice_worker_status_name(wi[i].state));
        }
        int entered = atomic_load(&g->entered);
        gate_open(g);
        fail_msg("only %d of %d reached the gate", entered, K);
    }
    WAIT_FOR(stats_now(p).queue_depth == 0, "the burst's tasks all started");
    unsigned first = nslots;
    for (unsigned i = 0; i < CAP; i++) {
        sluice_err rc = submit_slot(p, new_slot(NULL));
        if (rc != SLUICE_OK) {
            fail_msg("task %u of %u refused with %s (depth %zu)", i + 1, (unsigned)CAP, sluice_err_name(rc),
                     stats_now(p).queue_depth);
        }
    }
    assert_int_equal(stats_now(p).queue_depth, CAP);
    slot *extra = new_slot(NULL);
    assert_int_equal(submit_slot(p, extra), SLUICE_EFULL);
    nslots--;
    gate_open(g);
    WAIT_FOR(all_settled(first, CAP), "every queued task run");
    ASSERT_IDENTITY(p);
    assert_each_once(0, nslots);
    assert_true(atomic_load(&running_max) <= K);
    sluice_pool_stats s = stats_now(p);
    assert_int_equal(s.queue_depth_hwm, CAP);
    assert_int_equal(s.completed, K + CAP);
    sluice_pool_destroy(p);
    gate_free(g);
    tally_free(t);
}

/* ---- 3. resize while runs are held ---------------------------------------- */

static bool pool_settles(sluice_pool *p, unsigned workers, unsigned running)
{
    sluice_pool_stats s = stats_now(p);
    return s.workers == workers && s.running == running;
}

/*
 * K = 4, 400 tasks queued; each waits at the gate of the current phase.
 * Every resize is made while all K workers are blocked inside tasks, so no
 * worker is "already taking a task" and the promise is exact: once resize
 * has returned, a task starts only while fewer than K run.
 */
static void test_resize_while_held(void **state)
{
    (void)state;
    reset_slots();
    enum { N = 400, CAP = 512 };
    tally *t = tally_new();
    gate *ga = gate_new(), *gb = gate_new(), *gc = gate_new(), *gd = gate_new();
    sluice_pool_config cfg;
    probe_config(&cfg, "resize", 4, CAP, SLUICE_OVERFLOW_REJECT, t);
    sluice_pool *p;
    CREATE_POOL(&cfg, &p);
    atomic_store(&phase_gate, ga);
    atomic_store(&running_limit, 4);
    for (unsigned i = 0; i < N; i++) {
        slot *s = new_slot(NULL);
        s->phase = true;
        assert_int_equal(submit_slot(p, s), SLUICE_OK);
    }
    WAIT_FOR(atomic_load(&ga->inside) == 4, "four workers blocked");

    /* Down to 2. */
    assert_int_equal(sluice_pool_resize(p, 2), SLUICE_OK);
    atomic_store(&running_limit, 2);
    atomic_store(&phase_gate, gb);
    gate_open(ga);
    WAIT_FOR(atomic_load(&gb->inside) == 2 && pool_settles(p, 2, 2), "two workers, both blocked");
    assert_int_equal(atomic_load(&gb->entered), 2);
    assert_int_equal(atomic_load(&over_limit), 0);

    /* Up to 6: four workers start at once, with work queued. */
    atomic_store(&phase_gate, gc);
    atomic_store(&running_limit, 6);
    assert_int_equal(sluice_pool_resize(p, 6), SLUICE_OK);
    WAIT_FOR(atomic_load(&gc->inside) == 4, "four new workers blocked");
    gate_open(gb);
    WAIT_FOR(atomic_load(&gc->inside) == 6 && pool_settles(p, 6, 6), "six workers, all blocked");

    /* Down to 1 while six run. */
    assert_int_equal(sluice_pool_resize(p, 1), SLUICE_OK);
    atomic_store(&running_limit, 1);
    atomic_store(&phase_gate, gd);
    gate_open(gc);
    WAIT_FOR(atomic_load(&gd->inside) == 1 && pool_settles(p, 1, 1), "one worker, blocked");
    assert_int_equal(atomic_load(&gd->entered), 1);
    atomic_store(&phase_gate, NULL);
    gate_open(gd);
    WAIT_FOR(all_settled(0, N), "every task run");
    ASSERT_IDENTITY(p);
    assert_each_once(0, N);
    assert_int_equal(atomic_load(&over_limit), 0);
    assert_int_equal(atomic_load(&t->abandoned_total), 0);
    sluice_pool_stats s = stats_now(p);
    assert_int_equal(s.completed, N);
    assert_true(s.queue_depth_hwm <= CAP);
    sluice_pool_destroy(p);
    gate_free(ga);
    gate_free(gb);
    gate_free(gc);
    gate_free(gd);
    tally_free(t);
}

/* K = 16 at create, 2 now: both workers blocked in tasks of runs they claimed, the other
 * claimed tasks held in their hands, the rest queued; every task blocks.
 * resize(60) must start workers for all of them ("growing starts workers
 * at once when work is queued", K the only limit): all 60 run at once. */
static void test_resize_up_starts_workers_for_held(void **state)
{
    (void)state;
    reset_slots();
    enum { N = 24 };
    tally *t = tally_new();
    gate *ga = gate_new(), *gb = gate_new();
    sluice_pool_config cfg;
    /* Created with K = 16 (16 hands: new workers have empty hands of
     * their own), then run with K = 2. */
    probe_config(&cfg, "grow", 16, 256, SLUICE_OVERFLOW_BLOCK, t);
    sluice_pool *p;
    CREATE_POOL(&cfg, &p);
    assert_int_equal(sluice_pool_resize(p, 2), SLUICE_OK);
    block_workers(p, ga, 2);
    /* Quick tasks first: a worker that last found the queue shallow pops a
     * few one by one before it looks again (and claims). */
    for (unsigned i = 0; i < LEAD_IN; i++) {
        assert_int_equal(submit_slot(p, new_slot(NULL)), SLUICE_OK);
    }
    for (unsigned i = 0; i < N; i++) {
        assert_int_equal(submit_slot(p, new_slot(gb)), SLUICE_OK);
    }
    gate_open(ga);
    WAIT_FOR(atomic_load(&gb->inside) == 2, "both workers blocked at gb");
    assert_int_equal(stats_now(p).queue_depth, N - 2);
    assert_int_equal(sluice_pool_resize(p, N), SLUICE_OK);
    if (!gate_wait_entered_bg(gb, N)) {
        sluice_pool_stats st = stats_now(p);
        stats_print("after resize", &st);
        int entered = atomic_load(&gb->entered);
        gate_open(gb);
        fail_msg("only %d of %d tasks started after resize(%d)", entered, N, N);
    }
    assert_int_equal(stats_now(p).queue_depth, 0);
    gate_open(gb);
    ASSERT_IDENTITY(p);
    assert_each_once(0, nslots);
    sluice_pool_destroy(p);
    gate_free(ga);
    gate_free(gb);
    tally_free(t);
}

/* ---- 4. drain and destroy with runs held ---------------------------------- */

enum { DEEP_N = 200, DEEP_GB1 = 40, DEEP_GB2 = 100, DEEP_GB3 = 150 };

/*
 * K = 2, capacity 256, BLOCK. Both workers blocked at ga (no run held);
 * DEEP_N tasks queued, three of them waiting at gb; ga opened: the workers
 * claim runs, and each ends up blocked at a gb task, with claimed tasks
 * possibly still in its hand. Returns the index of the first deep slot.
 */
static unsigned deep_setup(sluice_pool *p, gate *ga, gate *gb)
{
    block_workers(p, ga, 2);
    unsigned first = nslots;
    for (unsigned i = 0; i < DEEP_N; i++) {
        bool at_gb = i == DEEP_GB1 || i == DEEP_GB2 || i == DEEP_GB3;
        assert_int_equal(submit_slot(p, new_slot(at_gb ? gb : NULL)), SLUICE_OK);
    }
    assert_int_equal(stats_now(p).queue_depth, DEEP_N);
    gate_open(ga);
    WAIT_FOR(atomic_load(&gb->inside) == 2, "both workers blocked at gb");
    return first;
}

typedef struct drain_call {
    sluice_pool *p;
    uint64_t timeout;
    sluice_drain_report rep;
    sluice_err rc;
} drain_call;

static void *drain_thread(void *arg)
{
    drain_call *d = arg;
    d->rc = sluice_pool_drain(d->p, d->timeout, &d->rep);
    return NULL;
}

enum { END_DRAIN_0, END_DRAIN_1NS, END_DRAIN_MAX, END_DESTROY };

static void deep_end_round(int how)
{
    reset_slots();
    tally *t = tally_new();
    gate *ga = gate_new(), *gb = gate_new();
    sluice_pool_config cfg;
    probe_config(&cfg, "deep", 2, 256, SLUICE_OVERFLOW_BLOCK, t);
    sluice_pool *p;
    CREATE_POOL(&cfg, &p);
    (void)deep_setup(p, ga, gb);
    /* Both workers are blocked: the counters are still. */
    sluice_pool_stats s0 = stats_now(p);
    uint64_t unfinished = s0.submitted - stats_ended(&s0);
    assert_true(s0.queue_depth > 0 && s0.queue_depth <= 256);
    assert_int_equal(unfinished, s0.queue_depth + 2);

    if (how == END_DESTROY) {
        sluice_pool_destroy(p);
        assert_each_once(0, nslots);
        unsigned back = count_abandoned(0, nslots, SLUICE_ABANDON_DESTROY);
        assert_int_equal(atomic_load(&t->abandoned_total), back);
        assert_true(back >= DEEP_N - DEEP_GB2 - 1); /* at least everything after the second gb task */
        assert_int_equal(back, s0.queue_depth);
    } else if (how == END_DRAIN_1NS) {
        sluice_drain_report rep;
        assert_int_equal(sluice_pool_drain(p, 1, &rep), SLUICE_ETIMEDOUT);
        assert_true(rep.timed_out);
        assert_int_equal(rep.still_running, 2);
        assert_int_equal(rep.completed, 0);
        assert_int_equal(rep.handed_back, s0.queue_depth);
        ASSERT_IDENTITY(p);
        assert_each_once(0, nslots);
        assert_int_equal(count_abandoned(0, nslots, SLUICE_ABANDON_DRAIN), rep.handed_back);
        assert_int_equal(atomic_load(&t->abandoned_total), rep.handed_back);
        sluice_pool_stats s = stats_now(p);
        assert_int_equal(s.abandoned, rep.handed_back);
        assert_int_equal(s.queue_depth, 0);
        assert_true(s.queue_depth_hwm <= 256);
        sluice_pool_destroy(p);
    } else {
        drain_call d = {.p = p, .timeout = how == END_DRAIN_0 ? 0 : UINT64_MAX};
        pthread_t th;
        START_THREAD(&th, drain_thread, &d);
        WAIT_FOR(stats_now(p).draining, "the drain started");
        /* stats.draining turns true a moment before drain closes the queue
         * (pool.c sets it under mu, then closes): a submit in between is
         * accepted and runs in the drain. Submit until refused. */
        uint64_t late = 0, limit = real_now_ns() + SAFETY_NS;
        for (;;) {
            sluice_err rc = sluice_pool_try_submit(p, slot_task, new_slot(NULL));
            if (rc == SLUICE_OK) {
                late++;
                continue;
            }
            nslots--;
            if (rc == SLUICE_ECLOSED) {
                break;
            }
            assert_int_equal(rc, SLUICE_EFULL); /* the drainer was preempted: the queue filled */
            assert_true(real_now_ns() < limit);
            poll_pause();
        }
        gate_open(gb);
        pthread_join(th, NULL);
        assert_int_equal(d.rc, SLUICE_OK);
        assert_false(d.rep.timed_out);
        assert_int_equal(d.rep.still_running, 0);
        assert_int_equal(d.rep.handed_back, 0);
        assert_int_equal(d.rep.completed, unfinished + late);
        ASSERT_IDENTITY(p);
        assert_each_once(0, nslots);
        assert_int_equal(atomic_load(&t->abandoned_total), 0);
        assert_int_equal(stats_now(p).queue_depth, 0);
        sluice_drain_report again;
        memset(&again, 0xff, sizeof again);
        assert_int_equal(sluice_pool_drain(p, 1, &again), SLUICE_OK);
        assert_int_equal(again.completed + again.still_running + again.handed_back, 0);
        assert_false(again.timed_out);
        sluice_pool_destroy(p);
    }
    gate_free(ga);
    gate_free(gb);
    tally_free(t);
}

static void test_drain_0_with_held_runs(void **state)
{
    (void)state;
    deep_end_round(END_DRAIN_0);
}

static void test_drain_1ns_with_held_runs(void **state)
{
    (void)state;
    deep_end_round(END_DRAIN_1NS);
}

static void test_drain_max_with_held_runs(void **state)
{
    (void)state;
    deep_end_round(END_DRAIN_MAX);
}

static void test_destroy_with_held_runs(void **state)
{
    (void)state;
    deep_end_round(END_DESTROY);
}

/* ---- 5. deadlines and contexts of tasks queued deep ------------------------ */

/* As deep_setup, on the fake clock: a third of the deep tasks carry a
 * deadline, a third a context. While both workers are blocked at gb, the
 * deadlines pass and the context is cancelled: none of those may start
 * afterwards; every one after the second gb task was still queued, so it
 * must be shed. */
static void test_deadline_and_ctx_deep(void **state)
{
    (void)state;
    reset_slots();
    sluice_fake_clock_init(&fake_clk, 1000 * SLUICE_NS_PER_SEC);
    tally *t = tally_new();
    gate *ga = gate_new(), *gb = gate_new();
    sluice_ctx *ctx = NULL;
    assert_int_equal(sluice_ctx_create(&ctx, NULL, 0, &fake_clk.clock), SLUICE_OK);
    sluice_pool_config cfg;
    probe_config(&cfg, "deadlines", 2, 256, SLUICE_OVERFLOW_REJECT, t);
    cfg.clock = &fake_clk.clock;
    sluice_pool *p;
    CREATE_POOL(&cfg, &p);
    block_workers(p, ga, 2);
    unsigned first = nslots;
    uint64_t deadline = sluice_clock_now(&fake_clk.clock) + SLUICE_NS_PER_SEC;
    for (unsigned i = 0; i < DEEP_N; i++) {
        bool at_gb = i == DEEP_GB1 || i == DEEP_GB2;
        slot *s = new_slot(at_gb ? gb : NULL);
        sluice_submit_opts o = {0};
        if (!at_gb && i % 3 == 0) {
            s->deadline = o.deadline_ns = deadline;
        } else if (!at_gb && i % 3 == 1) {
            s->ctx = o.ctx = ctx;
        }
        assert_int_equal(sluice_pool_submit_ex(p, slot_task, s, &o), SLUICE_OK);
    }
    gate_open(ga);
    WAIT_FOR(atomic_load(&gb->inside) == 2, "both workers blocked at gb");
    sluice_fake_clock_advance(&fake_clk, 2 * SLUICE_NS_PER_SEC);
    sluice_ctx_cancel(ctx, SLUICE_ECANCELED);
    gate_open(gb);
    WAIT_FOR(all_settled(0, nslots), "every task run or shed");
    ASSERT_IDENTITY(p);
    assert_each_once(0, nslots);
    assert_int_equal(atomic_load(&late_starts), 0);
    unsigned must_shed = 0;
    for (unsigned i = first; i < first + DEEP_N; i++) {
        slot *s = &slots[i];
        bool sheddable = s->deadline || s->ctx;
        if (atomic_load(&s->abandoned)) {
            assert_true(sheddable);
            assert_int_equal(atomic_load(&s->reason), SLUICE_ABANDON_SHED);
        }
        if (sheddable && i - first > DEEP_GB2) {
            must_shed++;
            if (!atomic_load(&s->abandoned)) {
                fail_msg("deep task %u (queued behind both blocked workers) ran after its %s", i - first,
                         s->deadline ? "deadline" : "context ended");
            }
        }
    }
    assert_true(must_shed > 0);
    sluice_pool_stats s = stats_now(p);
    assert_int_equal(s.shed, count_abandoned(0, nslots, SLUICE_ABANDON_SHED));
    assert_true(s.shed >= must_shed);
    assert_int_equal(s.codel_shed, 0);
    sluice_pool_destroy(p);
    sluice_ctx_release(ctx);
    gate_free(ga);
    gate_free(gb);
    tally_free(t);
}

/* ---- 6. submit_batch ------------------------------------------------------- */

typedef struct batch_call {
    sluice_pool *p;
    sluice_task_spec *specs;
    size_t n;
    size_t accepted;
    sluice_err rc;
} batch_call;

static void *batch_thread(void *arg)
{
    batch_call *b = arg;
    b->rc = sluice_pool_submit_batch(b->p, b->specs, b->n, false, &b->accepted);
    return NULL;
}

static void test_submit_batch(void **state)
{
    (void)state;
    reset_slots();
    tally *t = tally_new();
    gate *g = gate_new();
    static sluice_task_spec specs[600];

    /* Non-blocking into REJECT, capacity 40: stops exactly at capacity. */
    sluice_pool_config cfg;
    probe_config(&cfg, "batch", 2, 40, SLUICE_OVERFLOW_REJECT, t);
    sluice_pool *p;
    CREATE_POOL(&cfg, &p);
    block_workers(p, g, 2);
    unsigned first = nslots;
    for (unsigned i = 0; i < 50; i++) {
        specs[i] = (sluice_task_spec){.fn = slot_task, .arg = new_slot(NULL)};
    }
    size_t accepted = 99;
    assert_int_equal(sluice_pool_submit_batch(p, specs, 50, true, &accepted), SLUICE_EFULL);
    assert_int_equal(accepted, 40);
    sluice_pool_stats s = stats_now(p);
    assert_int_equal(s.queue_depth, 40);
    assert_int_equal(s.queue_depth_hwm, 40);
    assert_int_equal(s.rejected, 1);
    gate_open(g);
    WAIT_FOR(all_settled(first, 40), "the accepted 40 run");
    ASSERT_IDENTITY(p);
    assert_each_once(0, first + 40);
    for (unsigned i = first + 40; i < first + 50; i++) {
        assert_int_equal(atomic_load(&slots[i].ran) + atomic_load(&slots[i].abandoned), 0);
    }
    sluice_pool_destroy(p);
    gate_free(g);

    /* Blocking, 600 tasks into BLOCK with capacity 20 behind blocked
     * workers: all accepted once the workers go, each run once. */
    reset_slots();
    g = gate_new();
    probe_config(&cfg, "batchblock", 2, 20, SLUICE_OVERFLOW_BLOCK, t);
    CREATE_POOL(&cfg, &p);
    block_workers(p, g, 2);
    first = nslots;
    for (unsigned i = 0; i < 600; i++) {
        specs[i] = (sluice_task_spec){.fn = slot_task, .arg = new_slot(NULL)};
    }
    batch_call b = {.p = p, .specs = specs, .n = 600};
    pthread_t th;
    START_THREAD(&th, batch_thread, &b);
    WAIT_FOR(stats_now(p).waiting == 1, "the batch waits for space");
    assert_int_equal(stats_now(p).queue_depth, 20);
    /* try_submit under BLOCK: EFULL while a blocked submitter waits. */
    slot *probe = new_slot(NULL);
    assert_int_equal(sluice_pool_try_submit(p, slot_task, probe), SLUICE_EFULL);
    nslots--;
    assert_int_equal(stats_now(p).rejected, 1);
    gate_open(g);
    pthread_join(th, NULL);
    assert_int_equal(b.rc, SLUICE_OK);
    assert_int_equal(b.accepted, 600);
    WAIT_FOR(all_settled(first, 600), "the batch runs");
    ASSERT_IDENTITY(p);
    assert_each_once(0, nslots);
    s = stats_now(p);
    assert_int_equal(s.completed, 602);
    assert_int_equal(s.queue_depth_hwm, 20);
    sluice_pool_destroy(p);
    gate_free(g);
    tally_free(t);
}

/* ---- 7. CoDel on fifo_batch ---------------------------------------------------- */

/* K = 1 on the fake clock; each task advances it by 1 ms, target 1 ms,
 * interval 4 ms: the queue stands and CoDel sheds from a deep queue whose
 * head the worker claims in runs. Every task runs or is shed once. */
static void test_codel_sheds(void **state)
{
    (void)state;
    reset_slots();
    sluice_fake_clock_init(&fake_clk, 1000 * SLUICE_NS_PER_SEC);
    tally *t = tally_new();
    gate *g = gate_new();
    sluice_pool_config cfg;
    probe_config(&cfg, "codel", 1, 256, SLUICE_OVERFLOW_REJECT, t);
    cfg.clock = &fake_clk.clock;
    cfg.overload = SLUICE_OVERLOAD_CODEL;
    cfg.overload_target_ns = SLUICE_NS_PER_MS;
    cfg.overload_interval_ns = 4 * SLUICE_NS_PER_MS;
    cfg.overload_slough_ns = UINT64_MAX; /* CoDel's schedule alone */
    sluice_pool *p;
    CREATE_POOL(&cfg, &p);
    block_workers(p, g, 1);
    for (unsigned i = 0; i < 200; i++) {
        slot *s = new_slot(NULL);
        s->advance = true;
        assert_int_equal(submit_slot(p, s), SLUICE_OK);
    }
    sluice_fake_clock_advance(&fake_clk, 10 * SLUICE_NS_PER_MS);
    gate_open(g);
    WAIT_FOR(all_settled(0, nslots), "every task run or shed");
    ASSERT_IDENTITY(p);
    assert_each_once(0, nslots);
    sluice_pool_stats s = stats_now(p);
    unsigned shed = count_abandoned(0, nslots, SLUICE_ABANDON_SHED);
    assert_int_equal(atomic_load(&t->abandoned_total), shed);
    assert_int_equal(s.shed, shed);
    assert_int_equal(s.codel_shed, shed);
    assert_true(shed > 0);
    assert_true(shed < 200);
    sluice_pool_destroy(p);
    gate_free(g);
    tally_free(t);
}

/* ---- 8. DROP_OLDEST and CALLER_RUNS ---------------------------------------------- */

/* No run held (workers blocked on tasks popped alone): DROP_OLDEST evicts
 * exactly the oldest, in order; CALLER_RUNS runs on the submitter. */
static void test_drop_oldest_and_caller_runs_exact(void **state)
{
    (void)state;
    enum { CAP = 17, N = 60 };
    for (int policy = 0; policy < 2; policy++) {
        reset_slots();
        tally *t = tally_new();
        gate *g = gate_new();
        sluice_overflow ov = policy == 0 ? SLUICE_OVERFLOW_DROP_OLDEST : SLUICE_OVERFLOW_CALLER_RUNS;
        sluice_pool_config cfg;
        probe_config(&cfg, "exact", 2, CAP, ov, t);
        sluice_pool *p;
        CREATE_POOL(&cfg, &p);
        block_workers(p, g, 2);
        unsigned first = nslots;
        is_producer = true;
        for (unsigned i = 0; i < N; i++) {
            assert_int_equal(submit_slot(p, new_slot(NULL)), SLUICE_OK);
            assert_int_equal(stats_now(p).queue_depth, i + 1 < CAP ? i + 1 : CAP);
        }
        is_producer = false;
        sluice_pool_stats s = stats_now(p);
        if (ov == SLUICE_OVERFLOW_DROP_OLDEST) {
            assert_int_equal(s.dropped, N - CAP);
            pthread_mutex_lock(&t->mu);
            assert_int_equal(t->nabandoned_args, N - CAP);
            for (unsigned i = 0; i < N - CAP; i++) {
                assert_ptr_equal(t->abandoned_args[i], &slots[first + i]);
                assert_int_equal(t->abandoned_reasons[i], SLUICE_ABANDON_DROPPED);
            }
            pthread_mutex_unlock(&t->mu);
        } else {
            assert_int_equal(s.caller_ran, N - CAP);
            for (unsigned i = 0; i < N; i++) {
                assert_int_equal(atomic_load(&slots[first + i].ran), i >= CAP ? 1 : 0);
                assert_int_equal(atomic_load(&slots[first + i].on_producer), i >= CAP ? 1 : 0);
            }
        }
        gate_open(g);
        WAIT_FOR(all_settled(0, nslots), "every task run or dropped");
        ASSERT_IDENTITY(p);
        assert_each_once(0, nslots);
        assert_int_equal(stats_now(p).queue_depth_hwm, CAP);
        sluice_pool_destroy(p);
        gate_free(g);
        tally_free(t);
    }
}

typedef struct producer {
    sluice_pool *p;
    unsigned first, n;
    _Atomic int refused;
} producer;

static void *producer_thread(void *arg)
{
    producer *pr = arg;
    is_producer = true;
    for (unsigned i = pr->first; i < pr->first + pr->n; i++) {
        if (submit_slot(pr->p, &slots[i]) != SLUICE_OK) {
            atomic_fetch_add(&pr->refused, 1);
        }
    }
    return NULL;
}

static int samples_over;
static _Atomic bool sampling;

static void *sampler_thread(void *arg)
{
    sluice_pool *p = arg;
    while (atomic_load(&sampling)) {
        sluice_pool_stats s = stats_now(p);
        if (s.queue_depth > s.queue_capacity || s.queue_depth_hwm > s.queue_capacity) {
            samples_over++;
        }
        sched_yield();
    }
    return NULL;
}

/* Two producers, K = 3, capacity 32, short tasks: claims, drops and caller
 * runs interleave. Every task runs or is dropped once, the counters agree
 * with the handler and the tasks, depth never above capacity. */
static void test_drop_oldest_and_caller_runs_concurrent(void **state)
{
    (void)state;
    unsigned per = (under_sanitizer() ? 1500 : 6000) * stress_scale();
    if (per > MAX_SLOTS / 2) {
        per = MAX_SLOTS / 2;
    }
    for (int policy = 0; policy < 2; policy++) {
        reset_slots();
        tally *t = tally_new();
        sluice_overflow ov = policy == 0 ? SLUICE_OVERFLOW_DROP_OLDEST : SLUICE_OVERFLOW_CALLER_RUNS;
        sluice_pool_config cfg;
        probe_config(&cfg, "concurrent", 3, 32, ov, t);
        sluice_pool *p;
        CREATE_POOL(&cfg, &p);
        nslots = 2 * per;
        producer pr[2] = {{.p = p, .first = 0, .n = per}, {.p = p, .first = per, .n = per}};
        pthread_t th[2], sampler;
        samples_over = 0;
        atomic_store(&sampling, true);
        START_THREAD(&sampler, sampler_thread, p);
        START_THREAD(&th[0], producer_thread, &pr[0]);
        START_THREAD(&th[1], producer_thread, &pr[1]);
        pthread_join(th[0], NULL);
        pthread_join(th[1], NULL);
        atomic_store(&sampling, false);
        pthread_join(sampler, NULL);
        assert_int_equal(atomic_load(&pr[0].refused) + atomic_load(&pr[1].refused), 0);
        WAIT_FOR(all_settled(0, nslots), "every task run or dropped");
        ASSERT_IDENTITY(p);
        assert_each_once(0, nslots);
        assert_int_equal(samples_over, 0);
        sluice_pool_stats s = stats_now(p);
        assert_int_equal(s.submitted, nslots);
        assert_true(s.queue_depth_hwm <= 32);
        unsigned dropped = count_abandoned(0, nslots, SLUICE_ABANDON_DROPPED);
        assert_int_equal(s.dropped, dropped);
        assert_int_equal(atomic_load(&t->abandoned_total), dropped);
        if (ov == SLUICE_OVERFLOW_CALLER_RUNS) {
            unsigned on_producer = 0;
            for (unsigned i = 0; i < nslots; i++) {
                on_producer += (unsigned)atomic_load(&slots[i].on_producer);
            }
            assert_int_equal(s.caller_ran, on_producer);
            assert_int_equal(dropped, 0);
        }
        print_message("%s: dropped %llu, caller_ran %llu of %u\n", sluice_overflow_name(ov),
                      (unsigned long long)s.dropped, (unsigned long long)s.caller_ran, nslots);
        sluice_pool_destroy(p);
        tally_free(t);
    }
}

int main(void)
{
    const char *only = getenv("SLUICE_TEST_FILTER");
    if (only && *only) {
        cmocka_set_test_filter(only);
    }
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_tiny_queues_like_fifo),
        cmocka_unit_test(test_more_workers_than_hands),
        cmocka_unit_test(test_resize_while_held),
        cmocka_unit_test(test_resize_up_starts_workers_for_held),
        cmocka_unit_test(test_drain_0_with_held_runs),
        cmocka_unit_test(test_drain_1ns_with_held_runs),
        cmocka_unit_test(test_drain_max_with_held_runs),
        cmocka_unit_test(test_destroy_with_held_runs),
        cmocka_unit_test(test_deadline_and_ctx_deep),
        cmocka_unit_test(test_submit_batch),
        cmocka_unit_test(test_codel_sheds),
        cmocka_unit_test(test_drop_oldest_and_caller_runs_exact),
        cmocka_unit_test(test_drop_oldest_and_caller_runs_concurrent),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
