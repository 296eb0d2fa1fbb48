/*
 * tests/core/test_promises.c - promises of pool.h that were found broken
 * from outside (issue 12), one regression test each, written to fail on
 * the code before the fix:
 *
 *   1. DROP_OLDEST never evicts a task for a push that then fails because
 *      a drain closed the pool meanwhile.
 *   2. Durations near UINT64_MAX saturate: submit_timeout_ns, idle_expiry_ns
 *      and drain(timeout) at 0, 1 and UINT64_MAX.
 *   4. The drain report's still_running counts the tasks running at the
 *      deadline, however fast they return.
 *   5. RECOVER replaces the faulting worker at once, queue empty or not.
 *   6. A CALLER_RUNS task shed on the submitter (deadline passed, context
 *      ended) counts in `shed`, not in `caller_ran`.
 *
 * "Nothing happened" is checked against an event, never a sleep: a
 * counting clock counts the pool's clock reads, and a parked worker or a
 * blocked submitter re-reads a non-system clock once per
 * SLUICE_CLOCK_POLL_NS; once it has read it many more times, it had many
 * chances to (wrongly) give up.
 */
#include <signal.h>

#include "common/fault.h"
#include "common/counting_clock.h"
#include "common/pool.h"

/* ---- a clock that counts its reads ------------------------------------------ */

static counting_clock *counting_clock_new(uint64_t start)
{
    counting_clock *c = calloc(1, sizeof *c);
    assert_non_null(c);
    counting_clock_init(c, start);
    return c;
}

/* Waits until the clock has been read `n` more times: every poller had
 * that many chances to act on the time it read. */
#define WAIT_READS(c, n)                                                                                     \
    do {                                                                                                     \
        uint64_t reads_target_ = atomic_load(&(c)->reads) + (n);                                             \
        WAIT_FOR(atomic_load(&(c)->reads) >= reads_target_, "%llu more clock reads",                         \
                 (unsigned long long)(n));                                                                   \
    } while (0)

/* ---- a submitter on its own thread ------------------------------------------ */

typedef struct submitter {
    sluice_pool *p;
    sluice_task_fn fn;
    void *arg;
    sluice_err rc;
    _Atomic int done;
    pthread_t th;
} submitter;

static void *submitter_main(void *arg)
{
    submitter *s = arg;
    s->rc = sluice_pool_submit(s->p, s->fn, s->arg);
    atomic_store(&s->done, 1);
    return NULL;
}

static submitter *submit_in_background(sluice_pool *p, sluice_task_fn fn, void *arg)
{
    submitter *s = calloc(1, sizeof *s);
    assert_non_null(s);
    s->p = p;
    s->fn = fn;
    s->arg = arg;
    START_THREAD(&s->th, submitter_main, s);
    return s;
}

static sluice_err submitter_join(submitter *s)
{
    pthread_join(s->th, NULL);
    sluice_err rc = s->rc;
    free(s);
    return rc;
}

typedef struct drainer {
    sluice_pool *p;
    uint64_t timeout;
    sluice_drain_report rep;
    sluice_err rc;
    _Atomic int done;
    pthread_t th;
} drainer;

static void *drainer_main(void *arg)
{
    drainer *d = arg;
    d->rc = sluice_pool_drain(d->p, d->timeout, &d->rep);
    atomic_store(&d->done, 1);
    return NULL;
}

static drainer *drain_in_background(sluice_pool *p, uint64_t timeout)
{
    drainer *d = calloc(1, sizeof *d);
    assert_non_null(d);
    d->p = p;
    d->timeout = timeout;
    START_THREAD(&d->th, drainer_main, d);
    return d;
}

/* Holds K workers in gate tasks and waits until all K are inside. */
static void hold_workers(sluice_pool *p, gate *g, unsigned k)
{
    for (unsigned i = 0; i < k; i++) {
        assert_int_equal(sluice_pool_submit(p, task_gate, g), SLUICE_OK);
    }
    WAIT_FOR(atomic_load(&g->inside) == (int)k, "%u workers at the gate", k);
    WAIT_FOR(stats_now(p).queue_depth == 0, "gate tasks taken");
}

/* ---- 1. DROP_OLDEST and a drain that closes the pool ------------------------ */

typedef struct drop_race {
    sluice_pool *p;
    _Atomic int ran[4];
    _Atomic int dropped[4];
    _Atomic int other_abandons;
    _Atomic int drain_waits_failed;
    drainer *d;
} drop_race;

static int drop_race_slot(drop_race *r, void *arg)
{
    return (int)((_Atomic int *)arg - r->ran);
}

static int task_mark(void *arg)
{
    atomic_fetch_add((_Atomic int *)arg, 1);
    return 0;
}

/* The pool's abandon handler: at the first eviction, start drain(0) on
 * another thread and wait until it has closed the pool. Before the fix the
 * eviction's hand-back ran between its pop and its push, so the push then
 * found the pool closed; now the hand-back comes after the push. */
static void drop_race_abandon(const sluice_abandoned *a, void *user)
{
    drop_race *r = user;
    if (a->reason != SLUICE_ABANDON_DROPPED || a->fn != task_mark) {
        atomic_fetch_add(&r->other_abandons, 1);
        return;
    }
    int slot = drop_race_slot(r, a->arg);
    atomic_fetch_add(&r->dropped[slot], 1);
    if (!r->d) {
        r->d = drain_in_background(r->p, 0);
        sluice_pool_stats s;
        if (!WAIT_FOR_BG((sluice_pool_stats_get(r->p, &s), s.draining))) {
            atomic_fetch_add(&r->drain_waits_failed, 1);
        }
    }
}

static void test_drop_oldest_never_evicts_for_a_closed_push(void **state)
{
    (void)state;
    drop_race *r = calloc(1, sizeof *r);
    assert_non_null(r);
    gate *g = gate_new();
    sluice_pool_config cfg;
    sluice_pool_config_init(&cfg);
    cfg.name = "dropclose";
    cfg.workers = 1;
    cfg.queue_capacity = 2;
    cfg.overflow = SLUICE_OVERFLOW_DROP_OLDEST;
    cfg.abandon_handler = drop_race_abandon;
    cfg.user = r;
    sluice_pool *p;
    CREATE_POOL(&cfg, &p);
    r->p = p;
    /* K = 1 busy at the gate; the queue holds #1 and #2. */
    hold_workers(p, g, 1);
    assert_int_equal(sluice_pool_submit(p, task_mark, &r->ran[1]), SLUICE_OK);
    assert_int_equal(sluice_pool_submit(p, task_mark, &r->ran[2]), SLUICE_OK);
    /* #3 evicts #1; the handler starts a drain while it holds #1. */
    sluice_err rc = sluice_pool_submit(p, task_mark, &r->ran[3]);
    assert_non_null(r->d);
    assert_int_equal(atomic_load(&r->drain_waits_failed), 0);
    gate_open(g);
    pthread_join(r->d->th, NULL);
    assert_int_equal(r->d->rc, SLUICE_OK);
    /* The eviction and the push it made room for happened before the
     * close: #3 was accepted, #1 dropped, #2 and #3 ran in the drain. Had
     * the push failed, #1 would have been evicted for nothing and never
     * run although it was queued when the pool closed. */
    assert_int_equal(rc, SLUICE_OK);
    assert_int_equal(atomic_load(&r->dropped[1]), 1);
    assert_int_equal(atomic_load(&r->ran[1]), 0);
    assert_int_equal(atomic_load(&r->ran[2]), 1);
    assert_int_equal(atomic_load(&r->ran[3]), 1);
    assert_int_equal(atomic_load(&r->other_abandons), 0);
    assert_int_equal(r->d->rep.handed_back, 0);
    assert_int_equal(r->d->rep.completed, 3); /* the gate task, #2, #3 */
    ASSERT_IDENTITY(p);
    sluice_pool_stats s = stats_now(p);
    assert_int_equal(s.dropped, 1);
    assert_int_equal(s.submitted, 4);
    /* After the close, DROP_OLDEST refuses without evicting anything. */
    assert_int_equal(sluice_pool_submit(p, task_mark, &r->ran[0]), SLUICE_ECLOSED);
    assert_int_equal(stats_now(p).dropped, 1);
    sluice_pool_destroy(p);
    free(r->d);
    gate_free(g);
    free(r);
}

/* Six DROP_OLDEST submitters race a drain(0) (the reproduction),
 * 40 rounds: every task that was accepted either ran once or was dropped
 * once, nothing is handed back, and the last drop made room for a task
 * that ran (after it the queue held two tasks, both run by the drain). */
#define RACE_SUBMITTERS 6
#define RACE_TASKS 64

typedef struct race_round {
    sluice_pool *p;
    _Atomic int ran[RACE_SUBMITTERS][RACE_TASKS];
    _Atomic int dropped[RACE_SUBMITTERS][RACE_TASKS];
    sluice_err rc[RACE_SUBMITTERS][RACE_TASKS];
    _Atomic int go;
    _Atomic int bad;
} race_round;

typedef struct race_arg {
    race_round *r;
    int who;
} race_arg;

static void race_abandon(const sluice_abandoned *a, void *user)
{
    race_round *r = user;
    if (a->reason != SLUICE_ABANDON_DROPPED) {
        atomic_fetch_add(&r->bad, 1);
        return;
    }
    ptrdiff_t i = (_Atomic int *)a->arg - &r->ran[0][0];
    atomic_fetch_add(&(&r->dropped[0][0])[i], 1);
}

static void *race_submitter(void *arg)
{
    race_arg *ra = arg;
    race_round *r = ra->r;
    while (!atomic_load(&r->go)) {
        sched_yield();
    }
    for (int i = 0; i < RACE_TASKS; i++) {
        r->rc[ra->who][i] = sluice_pool_submit(r->p, task_mark, &r->ran[ra->who][i]);
    }
    return NULL;
}

static void test_drop_oldest_race_with_drain(void **state)
{
    (void)state;
    int rounds = under_sanitizer() ? 10 : 40;
    for (int round = 0; round < rounds; round++) {
        race_round *r = calloc(1, sizeof *r);
        assert_non_null(r);
        sluice_pool_config cfg;
        sluice_pool_config_init(&cfg);
        cfg.name = "droprace";
        cfg.workers = 1;
        cfg.queue_capacity = 2;
        cfg.overflow = SLUICE_OVERFLOW_DROP_OLDEST;
        cfg.abandon_handler = race_abandon;
        cfg.user = r;
        sluice_pool *p;
        CREATE_POOL(&cfg, &p);
        r->p = p;
        pthread_t th[RACE_SUBMITTERS];
        race_arg args[RACE_SUBMITTERS];
        for (int i = 0; i < RACE_SUBMITTERS; i++) {
            args[i] = (race_arg){r, i};
            START_THREAD(&th[i], race_submitter, &args[i]);
        }
        atomic_store(&r->go, 1);
        sluice_drain_report rep;
        sluice_err drc = sluice_pool_drain(p, 0, &rep);
        for (int i = 0; i < RACE_SUBMITTERS; i++) {
            pthread_join(th[i], NULL);
        }
        assert_int_equal(drc, SLUICE_OK);
        assert_int_equal(rep.handed_back, 0);
        assert_int_equal(atomic_load(&r->bad), 0);
        uint64_t accepted = 0, dropped = 0;
        for (int i = 0; i < RACE_SUBMITTERS; i++) {
            for (int j = 0; j < RACE_TASKS; j++) {
                int ran = atomic_load(&r->ran[i][j]), dr = atomic_load(&r->dropped[i][j]);
                if (r->rc[i][j] == SLUICE_OK) {
                    accepted++;
                    dropped += (uint64_t)dr;
                    if (ran + dr != 1) {
                        fail_msg("round %d: task %d/%d accepted, ran %d, dropped %d", round, i, j, ran, dr);
                    }
                } else {
                    assert_int_equal(r->rc[i][j], SLUICE_ECLOSED);
                    if (ran + dr != 0) {
                        fail_msg("round %d: task %d/%d refused, ran %d, dropped %d", round, i, j, ran, dr);
                    }
                }
            }
        }
        if (dropped > 0 && dropped + 2 > accepted) {
            fail_msg("round %d: %llu dropped of %llu accepted", round, (unsigned long long)dropped,
                     (unsigned long long)accepted);
        }
        ASSERT_IDENTITY(p);
        sluice_pool_destroy(p);
        free(r);
    }
}

/* ---- 2. durations at 0, 1 and UINT64_MAX --------------------------------------- */

static sluice_pool *extreme_pool(const char *name, counting_clock *c, unsigned k, size_t cap,
                                 sluice_overflow policy, tally *t)
{
    sluice_pool_config cfg;
    base_config(&cfg, name, k, cap, t);
    cfg.overflow = policy;
    cfg.clock = &c->clock;
    sluice_pool *p;
    CREATE_POOL(&cfg, &p);
    return p;
}

/* A BLOCK submitter on a full queue, submit timeout `timeout`. */
static void submit_timeout_case(uint64_t timeout)
{
    tally *t = tally_new();
    gate *g = gate_new();
    counting_clock *c = counting_clock_new(1000);
    sluice_pool *p = extreme_pool("subtimeout", c, 1, 1, SLUICE_OVERFLOW_BLOCK, t);
    sluice_pool_set_submit_timeout(p, timeout);
    hold_workers(p, g, 1);
    assert_int_equal(sluice_pool_submit(p, task_count, t), SLUICE_OK); /* the queue is full */
    submitter *s = submit_in_background(p, task_count, t);
    WAIT_FOR(stats_now(p).waiting == 1 || atomic_load(&s->done), "the submitter blocks");
    if (timeout == 1) {
        atomic_fetch_add(&c->now, 1);
        assert_int_equal(submitter_join(s), SLUICE_ETIMEDOUT);
        assert_int_equal(stats_now(p).rejected, 1);
    } else {
        /* 0 = no limit; UINT64_MAX = as good as none: neither gives up,
         * even with the clock moved to just before UINT64_MAX. (With 0 the
         * submitter has no deadline and reads no clock: nothing to count.) */
        if (timeout) {
            WAIT_READS(c, 50);
        }
        atomic_store(&c->now, UINT64_MAX - 1);
        if (timeout) {
            WAIT_READS(c, 50);
        }
        assert_false(atomic_load(&s->done));
        assert_int_equal(stats_now(p).waiting, 1);
        gate_open(g);
        assert_int_equal(submitter_join(s), SLUICE_OK);
        assert_int_equal(stats_now(p).rejected, 0);
    }
    gate_open(g);
    ASSERT_IDENTITY(p);
    sluice_pool_destroy(p);
    gate_free(g);
    tally_free(t);
    free(c);
}

static void test_submit_timeout_zero(void **state)
{
    (void)state;
    submit_timeout_case(0);
}

static void test_submit_timeout_one(void **state)
{
    (void)state;
    submit_timeout_case(1);
}

static void test_submit_timeout_max(void **state)
{
    (void)state;
    submit_timeout_case(UINT64_MAX);
}

/* The same through the config field, on the system clock: before the fix
 * the sum wrapped into the past and the submit failed within a
 * microsecond. */
static void test_submit_timeout_max_system_clock(void **state)
{
    (void)state;
    tally *t = tally_new();
    gate *g = gate_new();
    sluice_pool_config cfg;
    base_config(&cfg, "subtimeoutsys", 1, 1, t);
    cfg.submit_timeout_ns = UINT64_MAX;
    sluice_pool *p;
    CREATE_POOL(&cfg, &p);
    hold_workers(p, g, 1);
    assert_int_equal(sluice_pool_submit(p, task_count, t), SLUICE_OK);
    submitter *s = submit_in_background(p, task_count, t);
    WAIT_FOR(stats_now(p).waiting == 1 || atomic_load(&s->done), "the submitter blocks");
    gate_open(g);
    assert_int_equal(submitter_join(s), SLUICE_OK);
    ASSERT_IDENTITY(p);
    assert_int_equal(stats_now(p).rejected, 0);
    sluice_pool_destroy(p);
    gate_free(g);
    tally_free(t);
}

/* K = 4 prewarmed workers, none kept by min_workers, idle expiry `expiry`. */
static void idle_expiry_case(uint64_t expiry)
{
    tally *t = tally_new();
    counting_clock *c = counting_clock_new(1000);
    sluice_pool_config cfg;
    base_config(&cfg, "idleexpiry", 4, 16, t);
    cfg.clock = &c->clock;
    cfg.prewarm = true;
    cfg.idle_expiry_ns = expiry;
    sluice_pool *p;
    CREATE_POOL(&cfg, &p);
    if (expiry == 1) {
        WAIT_FOR(stats_now(p).idle == 4 || stats_now(p).expired_workers > 0, "workers park");
        atomic_fetch_add(&c->now, 1);
        WAIT_FOR(stats_now(p).expired_workers == 4, "all four expire one ns later");
        WAIT_FOR(stats_now(p).workers == 0, "the expired workers exit");
    } else {
        WAIT_FOR(stats_now(p).idle == 4 || stats_now(p).expired_workers > 0, "workers park");
        for (int round = 0; round < 3; round++) {
            /* Each parked worker re-reads the clock every poll period when
             * it has an expiry to check: 4 x 50 reads is 50 chances each.
             * (With expiry 0 nothing reads it; run tasks instead.) */
            if (expiry) {
                WAIT_READS(c, 200);
            } else {
                for (int i = 0; i < 8; i++) {
                    assert_int_equal(sluice_pool_submit(p, task_count, t), SLUICE_OK);
                }
                ASSERT_IDENTITY(p);
            }
            sluice_pool_stats s = stats_now(p);
            assert_int_equal(s.expired_workers, 0);
            assert_int_equal(s.workers, 4);
            atomic_store(&c->now, round == 0 ? 2 * SLUICE_NS_PER_SEC : UINT64_MAX - 1);
        }
    }
    ASSERT_IDENTITY(p);
    sluice_pool_destroy(p);
    tally_free(t);
    free(c);
}

static void test_idle_expiry_zero(void **state)
{
    (void)state;
    idle_expiry_case(0);
}

static void test_idle_expiry_one(void **state)
{
    (void)state;
    idle_expiry_case(1);
}

static void test_idle_expiry_max(void **state)
{
    (void)state;
    idle_expiry_case(UINT64_MAX);
}

/* On the system clock, set live: parked workers with expiry UINT64_MAX
 * never expire (before the fix they left as soon as they parked). */
static void test_idle_expiry_max_system_clock(void **state)
{
    (void)state;
    tally *t = tally_new();
    sluice_pool_config cfg;
    base_config(&cfg, "idleexpirysys", 2, 16, t);
    cfg.prewarm = true;
    sluice_pool *p;
    CREATE_POOL(&cfg, &p);
    sluice_pool_set_idle_expiry(p, UINT64_MAX);
    for (int i = 0; i < 200; i++) {
        WAIT_FOR(stats_now(p).idle == 2 || stats_now(p).expired_workers > 0, "workers park");
        assert_int_equal(sluice_pool_submit(p, task_count, t), SLUICE_OK);
    }
    ASSERT_IDENTITY(p);
    assert_int_equal(stats_now(p).expired_workers, 0);
    sluice_pool_destroy(p);
    tally_free(t);
}

/* drain(timeout) with K = 1 at a gate and three tasks queued. */
static void drain_timeout_case(uint64_t timeout)
{
    tally *t = tally_new();
    gate *g = gate_new();
    counting_clock *c = counting_clock_new(1000);
    sluice_pool *p = extreme_pool("draintimeout", c, 1, 8, SLUICE_OVERFLOW_BLOCK, t);
    hold_workers(p, g, 1);
    for (int i = 0; i < 3; i++) {
        assert_int_equal(sluice_pool_submit(p, task_count, t), SLUICE_OK);
    }
    drainer *d = drain_in_background(p, timeout);
    WAIT_FOR(stats_now(p).draining, "drain started");
    if (timeout == 1) {
        atomic_fetch_add(&c->now, 1);
        pthread_join(d->th, NULL);
        assert_int_equal(d->rc, SLUICE_ETIMEDOUT);
        assert_int_equal(d->rep.handed_back, 3);
        assert_int_equal(d->rep.still_running, 1);
        assert_true(d->rep.timed_out);
        gate_open(g);
        assert_int_equal(atomic_load(&t->abandoned_by[SLUICE_ABANDON_DRAIN]), 3);
    } else {
        if (timeout) {
            WAIT_READS(c, 50);
        }
        atomic_store(&c->now, UINT64_MAX - 1);
        if (timeout) {
            WAIT_READS(c, 50);
        }
        assert_false(atomic_load(&d->done));
        gate_open(g);
        pthread_join(d->th, NULL);
        assert_int_equal(d->rc, SLUICE_OK);
        assert_int_equal(d->rep.handed_back, 0);
        assert_int_equal(d->rep.still_running, 0);
        assert_int_equal(d->rep.completed, 4);
        assert_int_equal(atomic_load(&t->ran), 3);
    }
    ASSERT_IDENTITY(p);
    sluice_pool_destroy(p);
    free(d);
    gate_free(g);
    tally_free(t);
    free(c);
}

static void test_drain_timeout_zero(void **state)
{
    (void)state;
    drain_timeout_case(0);
}

static void test_drain_timeout_one(void **state)
{
    (void)state;
    drain_timeout_case(1);
}

static void test_drain_timeout_max(void **state)
{
    (void)state;
    drain_timeout_case(UINT64_MAX);
}

/* drain(UINT64_MAX) on the system clock: before the fix it handed the whole
 * queue back at once. */
static void test_drain_timeout_max_system_clock(void **state)
{
    (void)state;
    tally *t = tally_new();
    gate *g = gate_new();
    sluice_pool_config cfg;
    base_config(&cfg, "draintimeoutsys", 1, 8, t);
    sluice_pool *p;
    CREATE_POOL(&cfg, &p);
    hold_workers(p, g, 1);
    for (int i = 0; i < 3; i++) {
        assert_int_equal(sluice_pool_submit(p, task_count, t), SLUICE_OK);
    }
    drainer *d = drain_in_background(p, UINT64_MAX);
    WAIT_FOR(stats_now(p).draining, "drain started");
    gate_open(g);
    pthread_join(d->th, NULL);
    assert_int_equal(d->rc, SLUICE_OK);
    assert_int_equal(d->rep.handed_back, 0);
    assert_int_equal(atomic_load(&t->ran), 3);
    ASSERT_IDENTITY(p);
    sluice_pool_destroy(p);
    free(d);
    gate_free(g);
    tally_free(t);
}

/* ---- 4. still_running at the drain deadline --------------------------------- */

typedef struct slow_handback {
    sluice_pool *p;
    _Atomic int handed;
    _Atomic int waits_failed;
} slow_handback;

/* Hands back slowly: the first DRAIN hand-back waits until the tasks that
 * were running at the deadline have returned on their stop flag. */
static void slow_handback_abandon(const sluice_abandoned *a, void *user)
{
    slow_handback *h = user;
    if (a->reason == SLUICE_ABANDON_DRAIN && atomic_fetch_add(&h->handed, 1) == 0) {
        sluice_pool_stats s;
        if (!WAIT_FOR_BG((sluice_pool_stats_get(h->p, &s), s.running == 0))) {
            atomic_fetch_add(&h->waits_failed, 1);
        }
    }
}

static void test_drain_still_running_sampled_at_deadline(void **state)
{
    (void)state;
    slow_handback *h = calloc(1, sizeof *h);
    assert_non_null(h);
    gate *g = gate_new();
    sluice_fake_clock fc;
    sluice_fake_clock_init(&fc, 1000);
    sluice_pool_config cfg;
    sluice_pool_config_init(&cfg);
    cfg.name = "drainreport";
    cfg.workers = 2;
    cfg.queue_capacity = 16;
    cfg.clock = &fc.clock;
    cfg.abandon_handler = slow_handback_abandon;
    cfg.user = h;
    sluice_pool *p;
    CREATE_POOL(&cfg, &p);
    h->p = p;
    hold_workers(p, g, 2); /* they return promptly once asked to stop */
    _Atomic uint64_t ran = 0;
    for (int i = 0; i < 5; i++) {
        assert_int_equal(sluice_pool_submit(p, task_inc, &ran), SLUICE_OK);
    }
    drainer *d = drain_in_background(p, 50 * SLUICE_NS_PER_MS);
    WAIT_FOR(stats_now(p).draining, "drain started");
    sluice_fake_clock_advance(&fc, 50 * SLUICE_NS_PER_MS);
    pthread_join(d->th, NULL);
    assert_int_equal(h->waits_failed, 0);
    assert_int_equal(d->rc, SLUICE_ETIMEDOUT);
    assert_int_equal(d->rep.handed_back, 5);
    assert_int_equal(d->rep.still_running, 2);
    assert_int_equal(d->rep.completed, 0);
    assert_int_equal(atomic_load(&ran), 0);
    ASSERT_IDENTITY(p);
    sluice_pool_destroy(p);
    free(d);
    gate_free(g);
    free(h);
}

/* ---- 5. RECOVER replaces the faulting worker at once ------------------------- */

static void test_recover_replaces_worker_at_once(void **state)
{
    if (SLUICE_TEST_TSAN) {
        /* TSan cannot follow a siglongjmp out of a signal handler (see
         * core_task's test_fault_recover); plain and ASan runs cover it. */
        skip();
    }
    (void)state;
    tally *t = tally_new();
    sluice_pool_config cfg;
    base_config(&cfg, "recoverk", 4, 16, t);
    with_hooks(&cfg);
    cfg.fault_mode = SLUICE_FAULT_RECOVER;
    cfg.prewarm = true;
    sluice_pool *p;
    CREATE_POOL(&cfg, &p);
    assert_int_equal(atomic_load(&t->inits), 4);
    assert_int_equal(sluice_pool_submit(p, task_segv, NULL), SLUICE_OK);
    WAIT_FOR(atomic_load(&t->exits_by[EXIT_FAULT]) == 1, "the faulting worker retired");
    /* Nothing is queued and nothing more is submitted: the replacement
     * starts anyway, and its init hook runs. */
    WAIT_FOR(stats_now(p).workers == 4 && atomic_load(&t->inits) == 5, "a replacement started (workers=%u)",
             stats_now(p).workers);
    WAIT_FOR(stats_now(p).idle == 4, "the replacement parked");
    sluice_pool_stats s = stats_now(p);
    assert_int_equal(s.panicked, 1);
    assert_int_equal(s.retired_workers, 1);
    assert_int_equal(s.started_workers, 5);
    ASSERT_IDENTITY(p);
    sluice_pool_destroy(p);
    assert_int_equal(atomic_load(&t->inits), atomic_load(&t->finis));
    tally_free(t);
}

/* ---- 6. CALLER_RUNS sheds on the submitter ---------------------------------- */

static _Atomic int shed_on_caller_thread;
static pthread_t test_main_thread;

static void caller_shed_abandon(const sluice_abandoned *a, void *user)
{
    tally_abandon(a, user);
    if (a->reason == SLUICE_ABANDON_SHED && pthread_equal(pthread_self(), test_main_thread)) {
        atomic_fetch_add(&shed_on_caller_thread, 1);
    }
}

static void test_caller_runs_shed_is_not_caller_ran(void **state)
{
    (void)state;
    tally *t = tally_new();
    gate *g = gate_new();
    sluice_fake_clock fc;
    sluice_fake_clock_init(&fc, 1000);
    sluice_pool_config cfg;
    base_config(&cfg, "callershed", 1, 1, t);
    cfg.overflow = SLUICE_OVERFLOW_CALLER_RUNS;
    cfg.clock = &fc.clock;
    cfg.abandon_handler = caller_shed_abandon;
    sluice_pool *p;
    CREATE_POOL(&cfg, &p);
    test_main_thread = pthread_self();
    atomic_store(&shed_on_caller_thread, 0);
    hold_workers(p, g, 1);
    assert_int_equal(sluice_pool_submit(p, task_count, t), SLUICE_OK); /* the queue is full */
    /* Deadline passed: accepted, shed on this thread, never run. */
    sluice_submit_opts late = {.deadline_ns = 500};
    assert_int_equal(sluice_pool_submit_ex(p, task_count, t, &late), SLUICE_OK);
    /* Context ended: the same. */
    sluice_ctx *ctx;
    assert_int_equal(sluice_ctx_create(&ctx, NULL, 0, &fc.clock), SLUICE_OK);
    sluice_ctx_cancel(ctx, SLUICE_ECANCELED);
    sluice_submit_opts cancelled = {.ctx = ctx};
    assert_int_equal(sluice_pool_submit_ex(p, task_count, t, &cancelled), SLUICE_OK);
    sluice_ctx_release(ctx);
    sluice_pool_stats s = stats_now(p);
    assert_int_equal(s.caller_ran, 0);
    assert_int_equal(s.shed, 2);
    assert_int_equal(atomic_load(&t->ran), 0);
    assert_int_equal(atomic_load(&shed_on_caller_thread), 2);
    /* One that is in time runs here and counts. */
    assert_int_equal(sluice_pool_submit(p, task_count, t), SLUICE_OK);
    assert_int_equal(stats_now(p).caller_ran, 1);
    assert_int_equal(atomic_load(&t->ran), 1);
    gate_open(g);
    ASSERT_IDENTITY(p);
    s = stats_now(p);
    assert_int_equal(s.submitted, 5); /* gate, queued, two shed, one run here */
    assert_int_equal(s.caller_ran, 1);
    assert_int_equal(s.shed, 2);
    sluice_pool_destroy(p);
    gate_free(g);
    tally_free(t);
}

/* ---- found by core_stress_model: a full BLOCK queue and no worker --------- */

static _Atomic int refusals_left;

static int refuse_first_inits(void *user, unsigned index, void **state)
{
    (void)user;
    (void)index;
    (void)state;
    return atomic_fetch_sub(&refusals_left, 1) > 0 ? -1 : 0;
}

/* The only worker's init hook refuses while the queue is full: a BLOCK
 * submitter waiting for room must start another worker (after a short
 * backoff), not wait for ever for a worker that will never come. */
static void test_blocked_submitter_restarts_refused_worker(void **state)
{
    (void)state;
    tally *t = tally_new();
    sluice_pool_config cfg;
    base_config(&cfg, "initrefused", 1, 1, t);
    cfg.worker_init = refuse_first_inits;
    atomic_store(&refusals_left, 2);
    sluice_pool *p;
    CREATE_POOL(&cfg, &p);
    assert_int_equal(sluice_pool_submit(p, task_count, t), SLUICE_OK); /* its worker refuses */
    WAIT_FOR(stats_now(p).init_failures >= 1 && stats_now(p).workers == 0, "the first init refused");
    submitter *s = submit_in_background(p, task_count, t); /* the queue is full */
    WAIT_FOR(atomic_load(&s->done), "the blocked submitter got room (init_failures=%llu, workers=%u)",
             (unsigned long long)stats_now(p).init_failures, stats_now(p).workers);
    assert_int_equal(submitter_join(s), SLUICE_OK);
    ASSERT_IDENTITY(p);
    assert_int_equal(atomic_load(&t->ran), 2);
    assert_int_equal(stats_now(p).init_failures, 2);
    sluice_pool_destroy(p);
    tally_free(t);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_drop_oldest_never_evicts_for_a_closed_push),
        cmocka_unit_test(test_drop_oldest_race_with_drain),
        cmocka_unit_test(test_submit_timeout_zero),
        cmocka_unit_test(test_submit_timeout_one),
        cmocka_unit_test(test_submit_timeout_max),
        cmocka_unit_test(test_submit_timeout_max_system_clock),
        cmocka_unit_test(test_idle_expiry_zero),
        cmocka_unit_test(test_idle_expiry_one),
        cmocka_unit_test(test_idle_expiry_max),
        cmocka_unit_test(test_idle_expiry_max_system_clock),
        cmocka_unit_test(test_drain_timeout_zero),
        cmocka_unit_test(test_drain_timeout_one),
        cmocka_unit_test(test_drain_timeout_max),
        cmocka_unit_test(test_drain_timeout_max_system_clock),
        cmocka_unit_test(test_drain_still_running_sampled_at_deadline),
        cmocka_unit_test(test_recover_replaces_worker_at_once),
        cmocka_unit_test(test_caller_runs_shed_is_not_caller_ran),
        cmocka_unit_test(test_blocked_submitter_restarts_refused_worker),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
