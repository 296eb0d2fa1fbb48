/*
 * tests/core/test_overload.c - overload queue management (issue 14 item
 * 3): CoDel's state machine on scripted times, and pools in each overload
 * mode driven by a fake clock.
 *
 * Determinism. The pool tests use one worker and a fake clock that only
 * the tasks move: a task advances the clock by its scripted run time, and
 * may submit new tasks (a closed world where "offered load 2x" is "each
 * task submits two"). Every pop then happens at a time the test knows, so
 * the tasks CoDel sheds and the order LIFO serves are exact. Nothing
 * sleeps: a gate holds the worker while a test fills the queue, and the
 * end of a run is awaited by polling the stats with a real-time safety
 * limit (tests/common/pool.h).
 */
#include <math.h>

#include "common/pool.h"
#include "core/overload.h"
#include "sluice/tenant.h"

#define MS SLUICE_NS_PER_MS
#define T0 (1000 * MS) /* the fake clock's start: enqueue_ns 0 means "not stamped" */

/* ---- CoDel's state machine ---------------------------------------------------- */

static void test_codel_no_drop_below_target(void **state)
{
    (void)state;
    sluice__codel c;
    sluice__codel_init(&c, 5 * MS, 100 * MS, 10 * MS);
    for (uint64_t t = 0; t < 100 * 100 * MS; t += MS / 2) {
        assert_false(sluice__codel_observe(&c, T0 + t, 5 * MS - 1, false));
        assert_int_equal(sluice__codel_judge(&c, T0 + t, 5 * MS - 1), SLUICE__CODEL_KEEP);
    }
    assert_false(c.dropping);
    assert_int_equal(c.count, 0);
}

static void test_codel_standing_needs_a_whole_interval(void **state)
{
    (void)state;
    sluice__codel c;
    sluice__codel_init(&c, 5 * MS, 100 * MS, UINT64_MAX);
    /* Above target from T0; one dip below at T0 + 99 ms restarts the wait. */
    assert_false(sluice__codel_observe(&c, T0, 6 * MS, false));
    assert_false(sluice__codel_observe(&c, T0 + 98 * MS, 6 * MS, false));
    assert_false(sluice__codel_observe(&c, T0 + 99 * MS, 4 * MS, false));
    assert_false(sluice__codel_observe(&c, T0 + 100 * MS, 6 * MS, false));
    assert_false(sluice__codel_observe(&c, T0 + 199 * MS, 6 * MS, false));
    assert_true(sluice__codel_observe(&c, T0 + 200 * MS, 6 * MS, false));
    /* An empty queue ends it at once, and ends dropping. */
    assert_int_equal(sluice__codel_judge(&c, T0 + 200 * MS, 6 * MS), SLUICE__CODEL_SHED_SCHEDULE);
    assert_true(c.dropping);
    assert_false(sluice__codel_observe(&c, T0 + 201 * MS, 0, true));
    assert_false(c.dropping);
    assert_false(c.standing);
}

/* The drop schedule: the first shed when the queue starts standing, then
 * one at each point T_n = T_{n-1} + interval / sqrt(n), with the sojourn
 * held between target and slough (so only the schedule sheds). */
static void test_codel_drop_schedule(void **state)
{
    (void)state;
    const uint64_t interval = 100 * MS;
    sluice__codel c;
    sluice__codel_init(&c, 5 * MS, interval, 10 * MS);
    uint64_t sheds[12];
    unsigned n = 0;
    const uint64_t step = 10 * 1000; /* 10 us between looks */
    for (uint64_t t = T0; n < 12; t += step) {
        sluice__codel_observe(&c, t, 8 * MS, false);
        sluice__codel_verdict v = sluice__codel_judge(&c, t, 8 * MS);
        assert_int_not_equal(v, SLUICE__CODEL_SHED_SLOUGH);
        if (v == SLUICE__CODEL_SHED_SCHEDULE) {
            sheds[n++] = t;
        }
    }
    /* Standing from T0 + interval: the first shed is there. */
    assert_int_equal(sheds[0], T0 + interval);
    /* Then the gaps follow interval / sqrt(count), count = 1, 2, 3, ...
     * (each shed lands on the first look at or after its point). */
    double point = (double)sheds[0];
    for (unsigned i = 1; i < n; i++) {
        point += (double)interval / sqrt((double)i);
        assert_true((double)sheds[i] >= point - 1.0);
        assert_true((double)sheds[i] < point + (double)step + 1.0);
    }
    assert_int_equal(c.count, 12);
    /* Exactly the control law from the last point. */
    assert_int_equal(sluice__codel_control_law(1000, 100, 4), 1050);
    assert_int_equal(sluice__codel_control_law(1000, 100, 1), 1100);
}

static void test_codel_slough_and_exit(void **state)
{
    (void)state;
    sluice__codel c;
    sluice__codel_init(&c, 5 * MS, 100 * MS, 10 * MS);
    sluice__codel_observe(&c, T0, 20 * MS, false);
    assert_int_equal(sluice__codel_judge(&c, T0, 20 * MS), SLUICE__CODEL_KEEP); /* not standing yet */
    uint64_t t = T0 + 100 * MS;
    sluice__codel_observe(&c, t, 20 * MS, false);
    assert_int_equal(sluice__codel_judge(&c, t, 20 * MS), SLUICE__CODEL_SHED_SCHEDULE);
    /* Between schedule points: above slough is shed, at or below kept. */
    sluice__codel_observe(&c, t + MS, 20 * MS, false);
    assert_int_equal(sluice__codel_judge(&c, t + MS, 20 * MS), SLUICE__CODEL_SHED_SLOUGH);
    sluice__codel_observe(&c, t + MS, 10 * MS, false);
    assert_int_equal(sluice__codel_judge(&c, t + MS, 10 * MS), SLUICE__CODEL_KEEP);
    sluice__codel_observe(&c, t + MS, 10 * MS + 1, false);
    assert_int_equal(sluice__codel_judge(&c, t + MS, 10 * MS + 1), SLUICE__CODEL_SHED_SLOUGH);
    /* A task below target ends the standing queue and dropping. */
    sluice__codel_observe(&c, t + 2 * MS, 4 * MS, false);
    assert_int_equal(sluice__codel_judge(&c, t + 2 * MS, 4 * MS), SLUICE__CODEL_KEEP);
    assert_false(c.dropping);
    /* Slough never acts outside dropping. */
    sluice__codel_observe(&c, t + 3 * MS, 50 * MS, false);
    assert_int_equal(sluice__codel_judge(&c, t + 3 * MS, 50 * MS), SLUICE__CODEL_KEEP);
}

/* Re-entering soon after a dropping state resumes its drop rate (RFC 8289,
 * the Linux variant): count starts at the previous cycle's shed count. */
static void test_codel_reentry_keeps_rate(void **state)
{
    (void)state;
    sluice__codel c;
    sluice__codel_init(&c, 5 * MS, 100 * MS, UINT64_MAX);
    uint64_t t = T0;
    sluice__codel_observe(&c, t, 8 * MS, false);
    t += 100 * MS;
    sluice__codel_observe(&c, t, 8 * MS, false);
    assert_int_equal(sluice__codel_judge(&c, t, 8 * MS), SLUICE__CODEL_SHED_SCHEDULE);
    /* Four more schedule sheds: count 5. */
    unsigned shed = 0;
    while (shed < 4) {
        t += MS;
        sluice__codel_observe(&c, t, 8 * MS, false);
        shed += sluice__codel_judge(&c, t, 8 * MS) == SLUICE__CODEL_SHED_SCHEDULE;
    }
    assert_int_equal(c.count, 5);
    /* Below target briefly, then standing again an interval later. */
    t += MS;
    sluice__codel_observe(&c, t, MS, false);
    sluice__codel_judge(&c, t, MS);
    assert_false(c.dropping);
    t += MS;
    sluice__codel_observe(&c, t, 8 * MS, false);
    t += 100 * MS;
    sluice__codel_observe(&c, t, 8 * MS, false);
    assert_int_equal(sluice__codel_judge(&c, t, 8 * MS), SLUICE__CODEL_SHED_SCHEDULE);
    assert_int_equal(c.count, 4); /* delta = 5 - 1 */
    assert_int_equal(c.drop_next_ns, t + (uint64_t)(100.0 * MS / 2.0));
}

static void test_codel_extremes(void **state)
{
    (void)state;
    sluice__codel c;
    /* interval UINT64_MAX: never standing, whatever the sojourn. */
    sluice__codel_init(&c, 5 * MS, UINT64_MAX, 10 * MS);
    for (uint64_t t = T0; t < T0 + 1000 * SLUICE_NS_PER_SEC; t += SLUICE_NS_PER_SEC) {
        assert_false(sluice__codel_observe(&c, t, UINT64_MAX - 1, false));
        assert_int_equal(sluice__codel_judge(&c, t, UINT64_MAX - 1), SLUICE__CODEL_KEEP);
    }
    /* target UINT64_MAX: no sojourn is above it. */
    sluice__codel_init(&c, UINT64_MAX, UINT64_MAX, UINT64_MAX);
    assert_false(sluice__codel_observe(&c, T0, UINT64_MAX - 1, false));
    assert_false(sluice__codel_observe(&c, UINT64_MAX - 1, UINT64_MAX - 1, false));
    /* target 1, interval 1: any wait counts, standing after 1 ns. */
    sluice__codel_init(&c, 1, 1, UINT64_MAX);
    assert_false(sluice__codel_observe(&c, T0, 0, false));
    assert_false(sluice__codel_observe(&c, T0, 1, false));
    assert_true(sluice__codel_observe(&c, T0 + 1, 1, false));
    assert_int_equal(sluice__codel_judge(&c, T0 + 1, 1), SLUICE__CODEL_SHED_SCHEDULE);
    /* The schedule saturates instead of wrapping. */
    assert_int_equal(sluice__codel_control_law(UINT64_MAX - 5, 100, 1), UINT64_MAX);
    assert_int_equal(sluice__codel_control_law(T0, UINT64_MAX, 1), UINT64_MAX);
    /* Time that runs back (looks from two workers) is clamped. */
    sluice__codel_init(&c, 5 * MS, 100 * MS, UINT64_MAX);
    sluice__codel_observe(&c, T0 + 50 * MS, 8 * MS, false);
    sluice__codel_observe(&c, T0, 8 * MS, false);
    assert_int_equal(c.last_now, T0 + 50 * MS);
}

/* ---- a closed-world simulation on one worker ------------------------------------ */

#define SIM_MAX 8192

typedef struct sim sim;
typedef struct sim_item {
    sim *s;
    unsigned idx;
    uint64_t submit_ns;
} sim_item;

struct sim {
    sluice_fake_clock fc;
    sluice_pool *pool;
    uint64_t run_ns;       /* each task moves the clock this much */
    _Atomic unsigned feed; /* each task submits this many new ones... */
    _Atomic long budget;   /* ...while the budget lasts */
    _Atomic unsigned next; /* items handed out */
    sim_item items[SIM_MAX];
    _Atomic unsigned nserved;
    _Atomic unsigned served[SIM_MAX]; /* item indices in the order they ran */
    _Atomic uint64_t waited[SIM_MAX]; /* and how long each had waited */
    _Atomic unsigned fate[SIM_MAX];   /* 0 none, 1 ran, 2 + reason: handed back */
    _Atomic unsigned by_reason[5];
    _Atomic unsigned violations;
    _Atomic unsigned probe_at; /* the task that runs n-th records the lifo gauge */
    _Atomic int probe_lifo;    /* -1 until then */
};

static void sim_mark(sim *s, unsigned idx, unsigned fate)
{
    unsigned was = 0;
    if (idx >= SIM_MAX || !atomic_compare_exchange_strong(&s->fate[idx], &was, fate)) {
        atomic_fetch_add(&s->violations, 1); /* seen twice */
    }
}

static int sim_task(void *arg);

static void sim_submit_as(sim *s, const char *tenant)
{
    unsigned idx = atomic_fetch_add(&s->next, 1);
    if (idx >= SIM_MAX) {
        atomic_fetch_add(&s->violations, 1);
        return;
    }
    sim_item *it = &s->items[idx];
    it->s = s;
    it->idx = idx;
    it->submit_ns = sluice_clock_now(&s->fc.clock);
    sluice_submit_opts o = {.tenant_name = tenant};
    if (sluice_pool_submit_ex(s->pool, sim_task, it, &o) != SLUICE_OK) {
        atomic_fetch_add(&s->violations, 1);
    }
}

static void sim_submit(sim *s)
{
    sim_submit_as(s, NULL);
}

static int sim_task(void *arg)
{
    sim_item *it = arg;
    sim *s = it->s;
    uint64_t now = sluice_clock_now(&s->fc.clock);
    unsigned n = atomic_fetch_add(&s->nserved, 1);
    atomic_store(&s->served[n], it->idx);
    atomic_store(&s->waited[n], now - it->submit_ns);
    sim_mark(s, it->idx, 1);
    if (atomic_load(&s->probe_at) == n) {
        sluice_pool_stats st;
        sluice_pool_stats_get(s->pool, &st);
        atomic_store(&s->probe_lifo, st.lifo);
    }
    sluice_fake_clock_advance(&s->fc, s->run_ns);
    unsigned feed = atomic_load(&s->feed);
    for (unsigned i = 0; i < feed; i++) {
        if (atomic_fetch_sub(&s->budget, 1) <= 0) {
            atomic_fetch_add(&s->budget, 1);
            break;
        }
        sim_submit(s);
    }
    return 0;
}

static void sim_abandon(const sluice_abandoned *a, void *user)
{
    sim *s = user;
    sim_item *it = a->arg;
    if (a->fn != sim_task || it->s != s || a->reason < SLUICE_ABANDON_DROPPED ||
        a->reason > SLUICE_ABANDON_DESTROY) {
        atomic_fetch_add(&s->violations, 1);
        return;
    }
    atomic_fetch_add(&s->by_reason[a->reason], 1);
    sim_mark(s, it->idx, 2 + (unsigned)a->reason);
}

static sim *sim_new_q(sluice_overload_mode mode, uint64_t run_ns, uint64_t slough_ns,
                      sluice_queue_discipline discipline)
{
    sim *s = calloc(1, sizeof *s);
    assert_non_null(s);
    sluice_fake_clock_init(&s->fc, T0);
    s->run_ns = run_ns;
    atomic_store(&s->probe_at, UINT32_MAX);
    atomic_store(&s->probe_lifo, -1);
    sluice_pool_config cfg;
    sluice_pool_config_init(&cfg);
    cfg.name = "overload";
    cfg.workers = 1;
    cfg.queue_capacity = SIM_MAX;
    cfg.clock = &s->fc.clock;
    cfg.abandon_handler = sim_abandon;
    cfg.user = s;
    cfg.overload = mode;
    cfg.overload_target_ns = 5 * MS;
    cfg.overload_interval_ns = 100 * MS;
    cfg.overload_slough_ns = slough_ns;
    cfg.queue_discipline = discipline;
    CREATE_POOL(&cfg, &s->pool);
    return s;
}

static sim *sim_new(sluice_overload_mode mode, uint64_t run_ns, uint64_t slough_ns)
{
    return sim_new_q(mode, run_ns, slough_ns, SLUICE_QUEUE_FIFO);
}

/* Waits until every task handed out has run or been handed back. */
static void sim_settle(sim *s)
{
    WAIT_FOR(({
                 unsigned done = atomic_load(&s->nserved);
                 for (unsigned r = 0; r < 5; r++) {
                     done += atomic_load(&s->by_reason[r]);
                 }
                 done == atomic_load(&s->next) && atomic_load(&s->budget) == 0;
             }),
             "every task run or handed back");
    ASSERT_IDENTITY(s->pool);
}

static void sim_free(sim *s)
{
    assert_int_equal(sluice_pool_drain(s->pool, 0, NULL), SLUICE_OK);
    sluice_pool_destroy(s->pool);
    assert_int_equal(atomic_load(&s->violations), 0);
    unsigned n = atomic_load(&s->next);
    for (unsigned i = 0; i < n; i++) {
        assert_int_not_equal(atomic_load(&s->fate[i]), 0); /* every task accounted for */
    }
    free(s);
}

/* Runs the feed: `seed` tasks from the test thread, each task submitting
 * `feed` more while `budget` lasts. */
static void sim_run(sim *s, unsigned seed, unsigned feed, long budget)
{
    atomic_store(&s->feed, feed);
    atomic_store(&s->budget, budget);
    for (unsigned i = 0; i < seed; i++) {
        sim_submit(s);
    }
    sim_settle(s);
}

/* Fills the queue while a gate holds the worker: `n` tasks submitted at
 * the same fake time, then the gate opens. */
static void sim_burst(sim *s, unsigned n)
{
    gate *g = gate_new();
    assert_int_equal(sluice_pool_submit(s->pool, task_gate, g), SLUICE_OK);
    WAIT_FOR(atomic_load(&g->inside) == 1, "the gate task holds the worker");
    atomic_store(&s->feed, 0);
    atomic_store(&s->budget, 0);
    for (unsigned i = 0; i < n; i++) {
        sim_submit(s);
    }
    gate_open(g);
    sim_settle(s);
    gate_free(g);
}

/* Waits until the pool shows neither LIFO nor CoDel's dropping state, and
 * leaves those stats in *st. The worker's next pop after the last task finds
 * the queue empty and ends both, which may come a moment after that task
 * ran: reading the stats right after sim_settle raced with it. */
static void wait_emptied(sluice_pool *p, sluice_pool_stats *st)
{
    WAIT_FOR(({
                 sluice_pool_stats_get(p, st);
                 !st->lifo && !st->codel_dropping;
             }),
             "the worker finds the queue empty: LIFO and dropping end");
}

static uint64_t max_wait(sim *s, unsigned from, unsigned to)
{
    uint64_t m = 0;
    for (unsigned i = from; i < to; i++) {
        uint64_t w = atomic_load(&s->waited[i]);
        m = w > m ? w : m;
    }
    return m;
}

/* CoDel's schedule through a real pool: 40 tasks queued at once, 10 ms
 * each, target 5 ms, interval 100 ms, slough off. Worked by hand: task 1
 * pops at +10 ms above target; the queue stands from +110 ms, where task
 * 11 is shed (count 1, next point +210 ms); then task 22 at +210 ms (count
 * 2, next +280.7 ms), task 31 at +290 ms (count 3, next +338.4 ms), task
 * 37 at +340 ms. Everything else runs, in FIFO order. */
static void test_pool_codel_schedule(void **state)
{
    (void)state;
    sim *s = sim_new(SLUICE_OVERLOAD_CODEL, 10 * MS, UINT64_MAX);
    sim_burst(s, 40);
    static const unsigned expect_shed[] = {11, 22, 31, 37};
    for (unsigned i = 0; i < 40; i++) {
        bool shed = false;
        for (unsigned k = 0; k < 4; k++) {
            shed |= expect_shed[k] == i;
        }
        assert_int_equal(atomic_load(&s->fate[i]), shed ? 2 + SLUICE_ABANDON_SHED : 1);
    }
    for (unsigned i = 1; i < atomic_load(&s->nserved); i++) {
        assert_true(atomic_load(&s->served[i]) > atomic_load(&s->served[i - 1])); /* FIFO */
    }
    sluice_pool_stats st;
    sluice_pool_stats_get(s->pool, &st);
    assert_int_equal(st.shed, 4);
    assert_int_equal(st.codel_shed, 4);
    assert_int_equal(st.completed, 36 + 1); /* and the gate task */
    assert_int_equal(st.lifo_switches, 0);
    wait_emptied(s->pool, &st);
    sim_free(s);
}

/* 2x offered load (each task submits two): FIFO serves later and later;
 * CoDel keeps the wait of every task it serves at or below the slough
 * limit once it is dropping, and sheds the excess. */
static void test_pool_codel_bounds_wait(void **state)
{
    (void)state;
    sim *fifo = sim_new(SLUICE_OVERLOAD_OFF, MS, 0);
    sim_run(fifo, 1, 2, 3000);
    unsigned nf = atomic_load(&fifo->nserved);
    assert_int_equal(nf, 3001);
    uint64_t fifo_late = max_wait(fifo, nf - 1000, nf);

    sim *codel = sim_new(SLUICE_OVERLOAD_CODEL, MS, 0);
    sim_run(codel, 1, 2, 3000);
    unsigned nc = atomic_load(&codel->nserved);
    uint64_t codel_late = max_wait(codel, nc / 2, nc);
    sluice_pool_stats st;
    sluice_pool_stats_get(codel->pool, &st);
    print_message(
        "fifo: served %u, late max wait %llu ms; codel: served %u shed %llu, late max wait %llu ms\n", nf,
        (unsigned long long)(fifo_late / MS), nc, (unsigned long long)st.shed,
        (unsigned long long)(codel_late / MS));
    assert_true(fifo_late > 500 * MS);
    assert_true(codel_late <= 10 * MS); /* slough = 2 x target */
    assert_true(st.shed > 0);
    assert_int_equal(st.shed, st.codel_shed);
    assert_int_equal(st.shed + nc, 3001);
    assert_int_equal(atomic_load(&codel->by_reason[SLUICE_ABANDON_SHED]), st.shed);
    sim_free(fifo);
    sim_free(codel);
}

/* No shed while the sojourn stays below the target: one task at a time
 * (each submits the next), and bursts that clear within an interval. */
static void test_pool_no_shed_below_target(void **state)
{
    (void)state;
    sim *s = sim_new(SLUICE_OVERLOAD_CODEL_LIFO, MS, 0);
    sim_run(s, 1, 1, 2000);
    for (int i = 0; i < 20; i++) {
        sim_burst(s, 5); /* waits 0..4 ms: below target */
    }
    sim_burst(s, 50); /* above target, but for 49 ms only: good queue */
    sluice_pool_stats st;
    sluice_pool_stats_get(s->pool, &st);
    assert_int_equal(st.shed, 0);
    assert_int_equal(st.lifo_switches, 0);
    assert_int_equal(atomic_load(&s->nserved), atomic_load(&s->next));
    sim_free(s);
}

/* Adaptive LIFO: FIFO until the queue has stood an interval, then newest
 * first; FIFO again once the queue empties; again LIFO at the next
 * congestion. 30 tasks of 10 ms at once: tasks 0..11 run in order (the
 * queue stands from +110 ms, when task 11 is taken), then 29 down to 12. */
static void test_pool_lifo_switching(void **state)
{
    (void)state;
    sim *s = sim_new(SLUICE_OVERLOAD_LIFO, 10 * MS, 0);
    for (unsigned round = 0; round < 2; round++) {
        unsigned base = atomic_load(&s->next);
        unsigned first = atomic_load(&s->nserved);
        atomic_store(&s->probe_at, first + 20);
        sim_burst(s, 30);
        for (unsigned i = 0; i < 30; i++) {
            unsigned want = i < 12 ? i : 29 - (i - 12);
            assert_int_equal(atomic_load(&s->served[first + i]), base + want);
        }
        assert_int_equal(atomic_load(&s->probe_lifo), 1); /* LIFO while congested */
        sluice_pool_stats st;
        wait_emptied(s->pool, &st); /* LIFO off once the queue emptied */
        assert_int_equal(st.lifo_switches, round + 1);
        assert_int_equal(st.shed, 0);

        /* A light burst in between is served FIFO and switches nothing. */
        base = atomic_load(&s->next);
        first = atomic_load(&s->nserved);
        sim_burst(s, 5);
        for (unsigned i = 0; i < 5; i++) {
            assert_int_equal(atomic_load(&s->served[first + i]), base + i);
        }
        sluice_pool_stats_get(s->pool, &st);
        assert_int_equal(st.lifo_switches, round + 1);
    }
    sim_free(s);
}

/* Under 2x load, LIFO serves the newest (waits of one task time) while the
 * old ones wait; CODEL_LIFO also sheds the old ones, so the queue stays
 * short. Both serve every task they serve within the slough limit once
 * congested. */
static void test_pool_lifo_under_load(void **state)
{
    (void)state;
    sim *lifo = sim_new(SLUICE_OVERLOAD_LIFO, MS, 0);
    atomic_store(&lifo->probe_at, 1500);
    sim_run(lifo, 1, 2, 3000);
    assert_int_equal(atomic_load(&lifo->probe_lifo), 1);
    /* While the feed runs (the first 1500 served: each submits two), the
     * newest is served; the old ones wait for the end of the feed. */
    unsigned fast = 0;
    for (unsigned i = 200; i < 1400; i++) {
        fast += atomic_load(&lifo->waited[i]) <= 10 * MS;
    }
    assert_true(fast >= 1150);
    sluice_pool_stats st;
    sluice_pool_stats_get(lifo->pool, &st);
    assert_int_equal(st.shed, 0); /* LIFO alone sheds nothing */
    assert_int_equal(st.lifo_switches, 1);

    sim *both = sim_new(SLUICE_OVERLOAD_CODEL_LIFO, MS, 0);
    sim_run(both, 1, 2, 3000);
    unsigned nb = atomic_load(&both->nserved);
    assert_true(max_wait(both, nb / 2, nb) <= 10 * MS);
    sluice_pool_stats_get(both->pool, &st);
    assert_true(st.shed > 0);
    assert_true(st.lifo_switches >= 1);
    assert_int_equal(st.shed + nb, 3001);
    sim_free(lifo);
    sim_free(both);
}

/* CoDel composes with the FAIR queue: it judges the task the weighted
 * round robin picked, and a task it sheds is counted against its tenant
 * (the queue's finish op), so every tenant's own identity holds. Two
 * tenants, 20 tasks each, 10 ms each, all queued at once. */
static void test_fair_queue_with_codel(void **state)
{
    (void)state;
    sim *s = sim_new_q(SLUICE_OVERLOAD_CODEL, 10 * MS, 0, SLUICE_QUEUE_FAIR);
    gate *g = gate_new();
    assert_int_equal(sluice_pool_submit(s->pool, task_gate, g), SLUICE_OK);
    WAIT_FOR(atomic_load(&g->inside) == 1, "the gate task holds the worker");
    for (unsigned i = 0; i < 20; i++) {
        sim_submit_as(s, "alpha");
        sim_submit_as(s, "beta");
    }
    gate_open(g);
    sim_settle(s);
    sluice_pool_stats st;
    sluice_pool_stats_get(s->pool, &st);
    assert_true(st.codel_shed > 0);
    assert_int_equal(st.shed, st.codel_shed);
    sluice_tenant_stats ts[4];
    size_t n = sluice_pool_tenants_get(s->pool, ts, 4);
    uint64_t shed = 0, done = 0;
    for (size_t i = 0; i < n && i < 4; i++) {
        if (strcmp(ts[i].name, "alpha") != 0 && strcmp(ts[i].name, "beta") != 0) {
            continue;
        }
        assert_int_equal(ts[i].submitted, 20);
        assert_int_equal(ts[i].completed + ts[i].shed, 20);
        assert_int_equal(ts[i].queued, 0);
        assert_int_equal(ts[i].running, 0);
        assert_true(ts[i].shed > 0); /* both tenants' old tasks went, not one tenant's */
        shed += ts[i].shed;
        done += ts[i].completed;
    }
    assert_int_equal(shed, st.codel_shed);
    assert_int_equal(done, atomic_load(&s->nserved));
    sim_free(s);
    gate_free(g);
}

/* The named tenant's stats; fails the test if the pool has no such tenant. */
static sluice_tenant_stats tenant_of(sluice_pool *pool, const char *name)
{
    sluice_tenant_stats ts[8];
    size_t n = sluice_pool_tenants_get(pool, ts, 8);
    for (size_t i = 0; i < n && i < 8; i++) {
        if (strcmp(ts[i].name, name) == 0) {
            return ts[i];
        }
    }
    fail_msg("no tenant %s", name);
    return ts[0];
}

/* Adaptive LIFO composes with the FAIR queue: the round robin still picks
 * the tenant, LIFO takes that tenant's newest task. Two tenants, 15 tasks
 * each of 10 ms, queued at once alternately (alpha's i-th is item 2i,
 * beta's 2i + 1). As in test_pool_lifo_switching, the queue stands from
 * +110 ms, when the 12th task (beta's 6th, item 11) is taken FIFO; from
 * then on the tenants still alternate, each giving its newest: alpha 14,
 * beta 14, alpha 13, ... alpha 6, beta 6. Then again after FIFO in
 * between, and each tenant's accounting holds. */
static void test_fair_queue_with_lifo(void **state)
{
    (void)state;
    sim *s = sim_new_q(SLUICE_OVERLOAD_LIFO, 10 * MS, 0, SLUICE_QUEUE_FAIR);
    for (unsigned round = 0; round < 2; round++) {
        unsigned base = atomic_load(&s->next);
        unsigned first = atomic_load(&s->nserved);
        atomic_store(&s->probe_at, first + 20);
        gate *g = gate_new();
        assert_int_equal(sluice_pool_submit(s->pool, task_gate, g), SLUICE_OK);
        WAIT_FOR(atomic_load(&g->inside) == 1, "the gate task holds the worker");
        for (unsigned i = 0; i < 15; i++) {
            sim_submit_as(s, "alpha");
            sim_submit_as(s, "beta");
        }
        gate_open(g);
        sim_settle(s);
        gate_free(g);
        for (unsigned j = 0; j < 30; j++) {
            unsigned want = j < 12 ? j : 2 * (14 - (j - 12) / 2) + (j - 12) % 2;
            assert_int_equal(atomic_load(&s->served[first + j]), base + want);
        }
        assert_int_equal(atomic_load(&s->probe_lifo), 1);
        sluice_pool_stats st;
        wait_emptied(s->pool, &st); /* LIFO off once the queue emptied */
        assert_int_equal(st.lifo_switches, round + 1);
        assert_int_equal(st.shed, 0);
    }
    const char *names[] = {"alpha", "beta"};
    for (unsigned k = 0; k < 2; k++) {
        sluice_tenant_stats ts = tenant_of(s->pool, names[k]);
        assert_int_equal(ts.submitted, 30);
        assert_int_equal(ts.started, 30);
        assert_int_equal(ts.completed, 30);
        assert_int_equal(ts.queued + ts.running + ts.shed, 0);
    }
    sim_free(s);
}

/* CODEL_LIFO with the FAIR queue: CoDel sheds each tenant's oldest (the
 * head of the tenant whose turn it is), LIFO serves its newest, and every
 * shed is counted against its own tenant. Three tenants of different
 * sizes, 600 tasks of 1 ms queued at once. */
static void test_fair_queue_codel_lifo_sheds_per_tenant(void **state)
{
    (void)state;
    sim *s = sim_new_q(SLUICE_OVERLOAD_CODEL_LIFO, MS, 0, SLUICE_QUEUE_FAIR);
    gate *g = gate_new();
    assert_int_equal(sluice_pool_submit(s->pool, task_gate, g), SLUICE_OK);
    WAIT_FOR(atomic_load(&g->inside) == 1, "the gate task holds the worker");
    for (unsigned i = 0; i < 300; i++) {
        sim_submit_as(s, "alpha");
        sim_submit_as(s, i % 3 ? "gamma" : "beta"); /* beta a third, gamma two thirds */
    }
    gate_open(g);
    sim_settle(s);
    gate_free(g);
    sluice_pool_stats st = stats_now(s->pool);
    assert_true(st.codel_shed > 0);
    assert_true(st.lifo_switches >= 1);
    assert_int_equal(st.shed, st.codel_shed);
    unsigned served = atomic_load(&s->nserved);
    const char *names[] = {"alpha", "beta", "gamma"};
    const uint64_t submitted[] = {300, 100, 200};
    uint64_t shed = 0, done = 0;
    for (unsigned k = 0; k < 3; k++) {
        sluice_tenant_stats ts = tenant_of(s->pool, names[k]);
        assert_int_equal(ts.submitted, submitted[k]);
        assert_int_equal(ts.completed + ts.shed, submitted[k]);
        assert_int_equal(ts.started, submitted[k]); /* a shed task was popped, then handed back */
        assert_int_equal(ts.queued + ts.running, 0);
        assert_true(ts.shed > 0);
        shed += ts.shed;
        done += ts.completed;
    }
    assert_int_equal(shed, st.codel_shed);
    assert_int_equal(done, served);
    assert_int_equal(atomic_load(&s->by_reason[SLUICE_ABANDON_SHED]), shed);
    sim_free(s);
}

/* ---- drain and destroy hand back every task that did not start -------------------- */

typedef struct drain_job {
    sluice_pool *pool;
    uint64_t timeout_ns;
    sluice_drain_report rep;
    sluice_err err;
} drain_job;

static void *drain_thread(void *arg)
{
    drain_job *j = arg;
    j->err = sluice_pool_drain(j->pool, j->timeout_ns, &j->rep);
    return NULL;
}

static void test_drain_hands_back_every_unstarted(void **state)
{
    (void)state;
    static const sluice_overload_mode modes[] = {SLUICE_OVERLOAD_CODEL, SLUICE_OVERLOAD_LIFO,
                                                 SLUICE_OVERLOAD_CODEL_LIFO};
    for (unsigned m = 0; m < 6; m++) {
        /* The last three: the same modes with the FAIR queue, two tenants. */
        sluice_queue_discipline qd = m < 3 ? SLUICE_QUEUE_FIFO : SLUICE_QUEUE_FAIR;
        const char *tenant[2] = {NULL, NULL};
        if (qd == SLUICE_QUEUE_FAIR) {
            tenant[0] = "alpha";
            tenant[1] = "beta";
        }
        /* At the drain deadline: everything queued goes back as `drain`. */
        sim *s = sim_new_q(modes[m % 3], MS, 0, qd);
        gate *g = gate_new();
        assert_int_equal(sluice_pool_submit(s->pool, task_gate_hard, g), SLUICE_OK);
        WAIT_FOR(atomic_load(&g->inside) == 1, "the gate task holds the worker");
        for (unsigned i = 0; i < 50; i++) {
            sim_submit_as(s, tenant[i % 2]);
        }
        drain_job j = {.pool = s->pool, .timeout_ns = SLUICE_NS_PER_SEC};
        pthread_t th;
        assert_int_equal(pthread_create(&th, NULL, drain_thread, &j), 0);
        WAIT_FOR(stats_now(s->pool).draining, "the drain started");
        sluice_fake_clock_advance(&s->fc, 2 * SLUICE_NS_PER_SEC);
        pthread_join(th, NULL);
        assert_int_equal(j.err, SLUICE_ETIMEDOUT);
        assert_int_equal(j.rep.handed_back, 50);
        assert_int_equal(atomic_load(&s->by_reason[SLUICE_ABANDON_DRAIN]), 50);
        gate_open(g);
        ASSERT_IDENTITY(s->pool);
        for (unsigned k = 0; k < 2 && tenant[0]; k++) {
            sluice_tenant_stats ts = tenant_of(s->pool, tenant[k]);
            assert_int_equal(ts.submitted, 25);
            assert_int_equal(ts.abandoned, 25);
            assert_int_equal(ts.started + ts.queued, 0);
        }
        sim_free(s);
        gate_free(g);

        /* Without a deadline: old tasks are run or shed, each once. */
        s = sim_new_q(modes[m % 3], 10 * MS, 0, qd);
        g = gate_new();
        assert_int_equal(sluice_pool_submit(s->pool, task_gate, g), SLUICE_OK);
        WAIT_FOR(atomic_load(&g->inside) == 1, "the gate task holds the worker");
        for (unsigned i = 0; i < 50; i++) {
            sim_submit_as(s, tenant[i % 2]);
        }
        sluice_fake_clock_advance(&s->fc, 500 * MS);
        j = (drain_job){.pool = s->pool, .timeout_ns = 0};
        assert_int_equal(pthread_create(&th, NULL, drain_thread, &j), 0);
        WAIT_FOR(stats_now(s->pool).draining, "the drain started");
        gate_open(g);
        pthread_join(th, NULL);
        assert_int_equal(j.err, SLUICE_OK);
        unsigned handed = atomic_load(&s->by_reason[SLUICE_ABANDON_SHED]);
        assert_int_equal(atomic_load(&s->nserved) + handed, 50);
        sluice_pool_stats st;
        sluice_pool_stats_get(s->pool, &st);
        assert_int_equal(st.shed, handed);
        assert_int_equal(st.abandoned, 0);
        ASSERT_IDENTITY(s->pool);
        for (unsigned k = 0; k < 2 && tenant[0]; k++) {
            sluice_tenant_stats ts = tenant_of(s->pool, tenant[k]);
            assert_int_equal(ts.submitted, 25);
            assert_int_equal(ts.completed + ts.shed, 25);
            assert_int_equal(ts.queued + ts.running + ts.abandoned, 0);
        }
        sim_free(s);
        gate_free(g);
    }
}

/* destroy without a drain: queued tasks go back as `destroy`. */
static void test_destroy_hands_back(void **state)
{
    (void)state;
    sim *s = sim_new(SLUICE_OVERLOAD_CODEL_LIFO, MS, 0);
    gate *g = gate_new();
    assert_int_equal(sluice_pool_submit(s->pool, task_gate_hard, g), SLUICE_OK);
    WAIT_FOR(atomic_load(&g->inside) == 1, "the gate task holds the worker");
    for (unsigned i = 0; i < 20; i++) {
        sim_submit(s);
    }
    gate_open(g);
    /* The worker may run or shed some before destroy closes the queue:
     * every task ends exactly once either way. */
    sluice_pool_destroy(s->pool);
    unsigned ended = atomic_load(&s->nserved);
    for (unsigned r = 0; r < 5; r++) {
        ended += atomic_load(&s->by_reason[r]);
    }
    assert_int_equal(ended, 20);
    assert_int_equal(atomic_load(&s->violations), 0);
    gate_free(g);
    free(s);
}

/* ---- many threads (TSan's view): system clock, tiny target ------------------------- */

typedef struct storm {
    sluice_pool *pool;
    _Atomic uint64_t ran, handed, bad;
    unsigned per_producer;
    bool fair; /* each producer submits as its own tenant */
    _Atomic unsigned nproducers;
} storm;

static int storm_task(void *arg)
{
    storm *st = arg;
    atomic_fetch_add(&st->ran, 1);
    for (volatile int i = 0; i < 2000; i++) {
    }
    return 0;
}

static void storm_abandon(const sluice_abandoned *a, void *user)
{
    storm *st = user;
    if (a->arg != st || (a->reason != SLUICE_ABANDON_SHED && a->reason != SLUICE_ABANDON_DESTROY)) {
        atomic_fetch_add(&st->bad, 1);
    }
    atomic_fetch_add(&st->handed, 1);
}

static void *storm_producer(void *arg)
{
    storm *st = arg;
    static const char *const names[] = {"p0", "p1", "p2"};
    unsigned id = atomic_fetch_add(&st->nproducers, 1) % 3;
    sluice_submit_opts o = {.tenant_name = st->fair ? names[id] : NULL};
    for (unsigned i = 0; i < st->per_producer; i++) {
        if (sluice_pool_submit_ex(st->pool, storm_task, st, &o) != SLUICE_OK) {
            atomic_fetch_add(&st->bad, 1);
        }
    }
    return NULL;
}

static void test_storm_all_modes(void **state)
{
    (void)state;
    static const sluice_overload_mode modes[] = {SLUICE_OVERLOAD_CODEL, SLUICE_OVERLOAD_LIFO,
                                                 SLUICE_OVERLOAD_CODEL_LIFO};
    unsigned per = under_sanitizer() ? 5000 : 50000 * stress_scale();
    for (unsigned m = 0; m < 6; m++) { /* the last three with the FAIR queue */
        storm *st = calloc(1, sizeof *st);
        assert_non_null(st);
        st->per_producer = per;
        st->fair = m >= 3;
        sluice_pool_config cfg;
        sluice_pool_config_init(&cfg);
        cfg.name = "storm";
        cfg.workers = 3;
        cfg.queue_capacity = 256;
        cfg.abandon_handler = storm_abandon;
        cfg.user = st;
        cfg.overload = modes[m % 3];
        cfg.queue_discipline = st->fair ? SLUICE_QUEUE_FAIR : SLUICE_QUEUE_FIFO;
        cfg.overload_target_ns = 20 * 1000;
        cfg.overload_interval_ns = 200 * 1000;
        CREATE_POOL(&cfg, &st->pool);
        pthread_t th[3];
        for (int i = 0; i < 3; i++) {
            assert_int_equal(pthread_create(&th[i], NULL, storm_producer, st), 0);
        }
        for (int i = 0; i < 3; i++) {
            pthread_join(th[i], NULL);
        }
        assert_int_equal(sluice_pool_drain(st->pool, 0, NULL), SLUICE_OK);
        ASSERT_IDENTITY(st->pool);
        sluice_pool_stats s;
        sluice_pool_stats_get(st->pool, &s);
        print_message("%s%s: ran %llu shed %llu (codel %llu) lifo switches %llu\n",
                      sluice_overload_mode_name(modes[m % 3]), st->fair ? " (fair)" : "",
                      (unsigned long long)atomic_load(&st->ran), (unsigned long long)s.shed,
                      (unsigned long long)s.codel_shed, (unsigned long long)s.lifo_switches);
        assert_int_equal(atomic_load(&st->bad), 0);
        assert_int_equal(atomic_load(&st->ran) + atomic_load(&st->handed), 3ull * per);
        assert_int_equal(s.submitted, 3ull * per);
        assert_int_equal(s.shed, s.codel_shed);
        assert_int_equal(s.completed, atomic_load(&st->ran));
        if (modes[m % 3] == SLUICE_OVERLOAD_LIFO) {
            assert_int_equal(s.shed, 0);
        }
        if (st->fair) {
            static const char *const names[] = {"p0", "p1", "p2"};
            uint64_t started = 0;
            for (unsigned k = 0; k < 3; k++) {
                sluice_tenant_stats ts = tenant_of(st->pool, names[k]);
                assert_int_equal(ts.submitted, per);
                assert_int_equal(ts.completed + ts.shed, per);
                assert_int_equal(ts.queued + ts.running, 0);
                started += ts.started;
            }
            assert_int_equal(started, 3ull * per);
        }
        sluice_pool_destroy(st->pool);
        free(st);
    }
}

/* ---- configuration --------------------------------------------------------------- */

static sluice_err create_with(sluice_overload_mode mode, uint64_t target, uint64_t interval, uint64_t slough,
                              char *err, size_t len)
{
    sluice_pool_config cfg;
    sluice_pool_config_init(&cfg);
    cfg.name = "cfg";
    cfg.workers = 1;
    cfg.queue_capacity = 4;
    cfg.overload = mode;
    cfg.overload_target_ns = target;
    cfg.overload_interval_ns = interval;
    cfg.overload_slough_ns = slough;
    sluice_pool *p = NULL;
    sluice_err rc = sluice_pool_create(&cfg, &p, err, len);
    if (rc == SLUICE_OK) {
        sluice_pool_config got;
        sluice_pool_config_get(p, &got);
        assert_int_equal(got.overload, mode);
        assert_int_equal(got.overload_target_ns, target);
        sluice_pool_destroy(p);
    }
    return rc;
}

static void test_config(void **state)
{
    (void)state;
    char err[256];
    assert_string_equal(sluice_overload_mode_name(SLUICE_OVERLOAD_OFF), "off");
    assert_string_equal(sluice_overload_mode_name(SLUICE_OVERLOAD_CODEL), "codel");
    assert_string_equal(sluice_overload_mode_name(SLUICE_OVERLOAD_LIFO), "lifo");
    assert_string_equal(sluice_overload_mode_name(SLUICE_OVERLOAD_CODEL_LIFO), "codel+lifo");
    assert_string_equal(sluice_overload_mode_name((sluice_overload_mode)9), "unknown");

    assert_int_equal(create_with((sluice_overload_mode)4, 0, 0, 0, err, sizeof err), SLUICE_EINVAL);
    assert_string_equal(err, "overload: unknown mode 4");
    assert_int_equal(create_with(SLUICE_OVERLOAD_CODEL, 200 * MS, 0, 0, err, sizeof err), SLUICE_EINVAL);
    assert_non_null(strstr(err, "overload_target_ns: must be at most overload_interval_ns (100000000 ns)"));
    assert_int_equal(create_with(SLUICE_OVERLOAD_CODEL, 5 * MS, 0, MS, err, sizeof err), SLUICE_EINVAL);
    assert_non_null(strstr(err, "overload_slough_ns: must be 0 (2 x target) or at least overload_target_ns"));
    /* The extremes are accepted. */
    assert_int_equal(create_with(SLUICE_OVERLOAD_CODEL_LIFO, 1, 1, 1, err, sizeof err), SLUICE_OK);
    assert_int_equal(create_with(SLUICE_OVERLOAD_CODEL, UINT64_MAX, UINT64_MAX, UINT64_MAX, err, sizeof err),
                     SLUICE_OK);
    assert_int_equal(create_with(SLUICE_OVERLOAD_LIFO, 0, UINT64_MAX, 0, err, sizeof err), SLUICE_OK);
    /* Off: the fields are checked all the same (a typo is a typo). */
    assert_int_equal(create_with(SLUICE_OVERLOAD_OFF, 0, MS, 0, err, sizeof err), SLUICE_EINVAL);

    /* A pool without overload reports zeros. */
    sluice_pool_config cfg;
    sluice_pool_config_init(&cfg);
    cfg.name = "off";
    cfg.workers = 1;
    cfg.queue_capacity = 4;
    sluice_pool *p;
    CREATE_POOL(&cfg, &p);
    sluice_pool_stats st;
    sluice_pool_stats_get(p, &st);
    assert_int_equal(st.codel_shed + st.lifo_switches, 0);
    assert_false(st.lifo || st.codel_dropping);
    sluice_pool_destroy(p);
}

/* With the target and interval at UINT64_MAX nothing is ever shed, however
 * long a task waited. */
static void test_pool_never_congested_at_max(void **state)
{
    (void)state;
    sim *s = calloc(1, sizeof *s);
    assert_non_null(s);
    sluice_fake_clock_init(&s->fc, T0);
    s->run_ns = 1000 * SLUICE_NS_PER_SEC;
    sluice_pool_config cfg;
    sluice_pool_config_init(&cfg);
    cfg.name = "never";
    cfg.workers = 1;
    cfg.queue_capacity = SIM_MAX;
    cfg.clock = &s->fc.clock;
    cfg.abandon_handler = sim_abandon;
    cfg.user = s;
    cfg.overload = SLUICE_OVERLOAD_CODEL_LIFO;
    cfg.overload_target_ns = UINT64_MAX;
    cfg.overload_interval_ns = UINT64_MAX;
    CREATE_POOL(&cfg, &s->pool);
    sim_burst(s, 100);
    for (unsigned i = 0; i < 100; i++) {
        assert_int_equal(atomic_load(&s->served[i]), i);
    }
    assert_int_equal(stats_now(s->pool).shed, 0);
    sim_free(s);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_codel_no_drop_below_target),
        cmocka_unit_test(test_codel_standing_needs_a_whole_interval),
        cmocka_unit_test(test_codel_drop_schedule),
        cmocka_unit_test(test_codel_slough_and_exit),
        cmocka_unit_test(test_codel_reentry_keeps_rate),
        cmocka_unit_test(test_codel_extremes),
        cmocka_unit_test(test_pool_codel_schedule),
        cmocka_unit_test(test_pool_codel_bounds_wait),
        cmocka_unit_test(test_pool_no_shed_below_target),
        cmocka_unit_test(test_pool_lifo_switching),
        cmocka_unit_test(test_pool_lifo_under_load),
        cmocka_unit_test(test_fair_queue_with_codel),
        cmocka_unit_test(test_fair_queue_with_lifo),
        cmocka_unit_test(test_fair_queue_codel_lifo_sheds_per_tenant),
        cmocka_unit_test(test_drain_hands_back_every_unstarted),
        cmocka_unit_test(test_destroy_hands_back),
        cmocka_unit_test(test_storm_all_modes),
        cmocka_unit_test(test_config),
        cmocka_unit_test(test_pool_never_congested_at_max),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
