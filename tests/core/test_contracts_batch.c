/*
 * tests/core/test_contracts_batch.c - sluice_pool_submit_batch, the
 * bounded tenant scrape (sluice_pool_tenants_top / _select) and resize,
 * probed from outside: only the public headers and tests/common are used,
 * and each test is a promise of pool.h or tenant.h at its extremes.
 *
 *   - arguments: NULL pool, tasks, accepted; n = 0 with and without an
 *     array; a NULL fn or a tenant for a FIFO pool at the first, a middle
 *     and the last place of a batch that would otherwise go in one run:
 *     the error, *accepted the prefix, exactly that prefix ran, the rest
 *     never ran nor came back, nothing counted as rejected;
 *   - n far beyond the queue (BLOCK, one worker): every task accepted and
 *     run once, in submit order (fifo, fifo_batch, sharded with one
 *     shard); non-blocking on REJECT: exactly the accepted prefix runs;
 *   - each overflow policy at the place where the queue fills (fifo,
 *     fifo_batch, sharded; one worker held): REJECT and try-BLOCK stop at
 *     capacity with EFULL, BLOCK with a past submit deadline with
 *     ETIMEDOUT, CALLER_RUNS runs the overflow on the caller before the
 *     call returns, DROP_OLDEST hands back the oldest in order; each
 *     refusal counted once;
 *   - a closed pool refuses a batch (not counted), and a batch blocked on
 *     a full queue is released by drain with *accepted exact;
 *   - deadlines and contexts in a batch: tasks past theirs are shed (to
 *     their own on_abandon when set), the others run;
 *   - FAIR pools: mixed tenants (none, by name, by handle, one at its
 *     queued_limit, a bad name, known_only) stop at the right place with
 *     the right error, and under every overflow policy and a drain at its
 *     deadline the tenants' sums (select with n = 0) are the pool's
 *     totals and each tenant's own identity holds;
 *   - top and select at their extremes (errors leave their outputs as the
 *     header says, n in the thousands with duplicates and junk names,
 *     cap SIZE_MAX);
 *   - resize between 1 and UINT_MAX while producers submit batches;
 *   - CALLER_RUNS overflow with a panic and a nested batch; the depth
 *     high-water mark with every task timed; the scrape's sums while
 *     batches, tenant set/unset/default_set and forgetting churn (TSan).
 *
 * Nothing sleeps to wait for an event; every wait is bounded
 * (tests/common/wait.h); nothing asserts on time.
 */
#include "common/pool.h"
#include "sluice/tenant.h"

#include <limits.h>

/* ---- a record of what happened to every task of a batch ------------------- */

typedef struct probe probe;

typedef struct item {
    probe *pr;
    size_t i;
} item;

struct probe {
    size_t n;
    item *items;
    sluice_task_spec *specs;
    _Atomic unsigned *runs;
    _Atomic unsigned *backs; /* handed back, any reason */
    pthread_mutex_t mu;      /* guards the logs */
    size_t *order;           /* indices in the order they ran */
    size_t norder;
    size_t *dropped; /* indices in the order they were handed back as DROPPED */
    size_t ndropped;
    _Atomic uint64_t by_reason[SLUICE_ABANDON_REASON_COUNT_];
    _Atomic uint64_t own_handler; /* hand-backs through opts.on_abandon */
    _Atomic uint64_t bad;         /* a hand-back of something not ours */
    pthread_t caller;
    _Atomic uint64_t on_caller;
};

static probe *probe_new(size_t n)
{
    probe *pr = calloc(1, sizeof *pr);
    assert_non_null(pr);
    pr->n = n;
    pr->items = calloc(n, sizeof *pr->items);
    pr->specs = calloc(n, sizeof *pr->specs);
    pr->runs = calloc(n, sizeof *pr->runs);
    pr->backs = calloc(n, sizeof *pr->backs);
    pr->order = calloc(n, sizeof *pr->order);
    pr->dropped = calloc(n, sizeof *pr->dropped);
    assert_true(pr->items && pr->specs && pr->runs && pr->backs && pr->order && pr->dropped);
    pthread_mutex_init(&pr->mu, NULL);
    pr->caller = pthread_self();
    return pr;
}

static void probe_free(probe *pr)
{
    pthread_mutex_destroy(&pr->mu);
    free(pr->items);
    free(pr->specs);
    free((void *)pr->runs);
    free((void *)pr->backs);
    free(pr->order);
    free(pr->dropped);
    free(pr);
}

static int task_rec(void *arg)
{
    item *it = arg;
    probe *pr = it->pr;
    atomic_fetch_add(&pr->runs[it->i], 1);
    if (pthread_equal(pthread_self(), pr->caller)) {
        atomic_fetch_add(&pr->on_caller, 1);
    }
    pthread_mutex_lock(&pr->mu);
    if (pr->norder < pr->n) {
        pr->order[pr->norder++] = it->i;
    }
    pthread_mutex_unlock(&pr->mu);
    return 0;
}

static void record_back(const sluice_abandoned *a)
{
    if (!a || a->fn != task_rec || a->reason <= SLUICE_ABANDON_NONE_ ||
        a->reason >= SLUICE_ABANDON_REASON_COUNT_) {
        return; /* not one of ours: counted by the caller */
    }
    item *it = a->arg;
    probe *pr = it->pr;
    atomic_fetch_add(&pr->backs[it->i], 1);
    atomic_fetch_add(&pr->by_reason[a->reason], 1);
    if (a->reason == SLUICE_ABANDON_DROPPED) {
        pthread_mutex_lock(&pr->mu);
        pr->dropped[pr->ndropped++] = it->i;
        pthread_mutex_unlock(&pr->mu);
    }
}

/* The pool's handler (user: the probe, or NULL for gate tasks only). */
static void pool_abandon(const sluice_abandoned *a, void *user)
{
    if (a && a->fn == task_rec) {
        record_back(a);
    } else if (user) {
        atomic_fetch_add(&((probe *)user)->bad, 1);
    }
}

/* A task's own handler (opts.on_abandon). */
static void own_abandon(const sluice_abandoned *a)
{
    if (a && a->fn == task_rec) {
        atomic_fetch_add(&((item *)a->arg)->pr->own_handler, 1);
        record_back(a);
    }
}

/* specs[i] = task_rec(items[i]), no options. */
static void probe_fill(probe *pr)
{
    for (size_t i = 0; i < pr->n; i++) {
        pr->items[i] = (item){.pr = pr, .i = i};
        pr->specs[i] = (sluice_task_spec){.fn = task_rec, .arg = &pr->items[i], .opts = NULL};
    }
}

static size_t probe_ran(probe *pr)
{
    pthread_mutex_lock(&pr->mu);
    size_t n = pr->norder;
    pthread_mutex_unlock(&pr->mu);
    return n;
}

/* Tasks [0, accepted) ran or came back exactly once in all; the others
 * did neither. */
static void assert_exactly_once(probe *pr, size_t accepted)
{
    for (size_t i = 0; i < pr->n; i++) {
        unsigned r = atomic_load(&pr->runs[i]), b = atomic_load(&pr->backs[i]);
        if (i < accepted && r + b != 1) {
            fail_msg("task %zu (accepted) ran %u times and came back %u times", i, r, b);
        }
        if (i >= accepted && r + b != 0) {
            fail_msg("task %zu (not accepted) ran %u times and came back %u times", i, r, b);
        }
    }
    assert_int_equal(atomic_load(&pr->bad), 0);
}

static sluice_pool *make_pool(const char *name, sluice_queue_discipline disc, sluice_overflow ov, unsigned k,
                              size_t cap, const sluice_clock *clock, void *user)
{
    sluice_pool_config pc;
    sluice_pool_config_init(&pc);
    pc.name = name;
    pc.workers = k;
    pc.queue_capacity = cap;
    pc.overflow = ov;
    pc.queue_discipline = disc;
    pc.clock = clock;
    pc.abandon_handler = pool_abandon;
    pc.user = user;
    sluice_pool *p = NULL;
    CREATE_POOL(&pc, &p);
    return p;
}

static const sluice_queue_discipline ring_disciplines[] = {SLUICE_QUEUE_FIFO, SLUICE_QUEUE_FIFO_BATCH,
                                                           SLUICE_QUEUE_SHARDED};
#define NDISC (sizeof ring_disciplines / sizeof ring_disciplines[0])

/* Holds the pool's only worker at g (queue empty after). */
static void hold_worker(sluice_pool *p, gate *g)
{
    assert_int_equal(sluice_pool_submit(p, task_gate, g), SLUICE_OK);
    GATE_WAIT_ENTERED(g, 1);
}

/* ---- 1. arguments ------------------------------------------------------------- */

static void test_batch_arguments(void **state)
{
    (void)state;
    probe *pr = probe_new(40);
    probe_fill(pr);
    sluice_pool *p = make_pool("args", SLUICE_QUEUE_FIFO, SLUICE_OVERFLOW_BLOCK, 1, 1024, NULL, pr);
    size_t acc = 77;

    assert_int_equal(sluice_pool_submit_batch(NULL, pr->specs, 3, false, &acc), SLUICE_EINVAL);
    assert_int_equal(acc, 0); /* *accepted is set even when the pool is NULL */
    assert_int_equal(sluice_pool_submit_batch(p, pr->specs, 3, false, NULL), SLUICE_EINVAL);
    acc = 77;
    assert_int_equal(sluice_pool_submit_batch(p, NULL, 3, true, &acc), SLUICE_EINVAL);
    assert_int_equal(acc, 0);
    acc = 77;
    assert_int_equal(sluice_pool_submit_batch(p, NULL, 0, false, &acc), SLUICE_OK);
    assert_int_equal(acc, 0);
    acc = 77;
    assert_int_equal(sluice_pool_submit_batch(p, pr->specs, 0, true, &acc), SLUICE_OK);
    assert_int_equal(acc, 0);
    sluice_pool_stats st = stats_now(p);
    assert_int_equal(st.submitted, 0);

    /* A NULL fn at the first, a middle and the last place, each inside
     * what would be one run: the prefix before it is accepted, exactly. */
    const size_t bad_at[] = {0, 17, 39};
    size_t total = 0;
    for (size_t b = 0; b < 3; b++) {
        probe *q = probe_new(40);
        probe_fill(q);
        q->specs[bad_at[b]].fn = NULL;
        acc = 77;
        assert_int_equal(sluice_pool_submit_batch(p, q->specs, 40, b == 1, &acc), SLUICE_EINVAL);
        assert_int_equal(acc, bad_at[b]);
        total += acc;
        WAIT_FOR(probe_ran(q) == acc, "the accepted prefix ran");
        ASSERT_IDENTITY(p);
        assert_exactly_once(q, acc);
        probe_free(q);
    }
    /* A tenant for a FIFO pool, by name and by a (bogus) handle. */
    sluice_submit_opts named = {.tenant_name = "gold"};
    sluice_submit_opts handled = {.tenant = (sluice_tenant *)&named};
    for (size_t b = 0; b < 2; b++) {
        probe *q = probe_new(10);
        probe_fill(q);
        q->specs[5].opts = b ? &handled : &named;
        assert_int_equal(sluice_pool_submit_batch(p, q->specs, 10, false, &acc), SLUICE_ENOTSUP);
        assert_int_equal(acc, 5);
        total += acc;
        WAIT_FOR(probe_ran(q) == acc, "the accepted prefix ran");
        ASSERT_IDENTITY(p);
        assert_exactly_once(q, acc);
        probe_free(q);
    }
    st = stats_now(p);
    assert_int_equal(st.submitted, total);
    assert_int_equal(st.rejected, 0); /* EINVAL and ENOTSUP are not refusals of the queue */
    sluice_pool_destroy(p);
    probe_free(pr);
}

/* ---- 2. n far beyond the queue ---------------------------------------------- */

static void test_batch_huge_in_order(void **state)
{
    (void)state;
    size_t n = under_sanitizer() ? 3000 : 20000;
    for (size_t d = 0; d < NDISC; d++) {
        probe *pr = probe_new(n);
        probe_fill(pr);
        sluice_pool *p = make_pool("huge", ring_disciplines[d], SLUICE_OVERFLOW_BLOCK, 1, 16, NULL, pr);
        size_t acc = 0;
        assert_int_equal(sluice_pool_submit_batch(p, pr->specs, n, false, &acc), SLUICE_OK);
        assert_int_equal(acc, n);
        WAIT_FOR(probe_ran(pr) == n, "every task ran (%s)",
                 sluice_queue_discipline_name(ring_disciplines[d]));
        ASSERT_IDENTITY(p);
        assert_exactly_once(pr, n);
        for (size_t i = 0; i < n; i++) {
            if (pr->order[i] != i) {
                fail_msg("%s: the %zu-th task to run was task %zu",
                         sluice_queue_discipline_name(ring_disciplines[d]), i, pr->order[i]);
            }
        }
        sluice_pool_destroy(p);
        probe_free(pr);

        /* Non-blocking on REJECT: some prefix is accepted, exactly it runs. */
        pr = probe_new(n);
        probe_fill(pr);
        p = make_pool("huge-try", ring_disciplines[d], SLUICE_OVERFLOW_REJECT, 1, 16, NULL, pr);
        sluice_err rc = sluice_pool_submit_batch(p, pr->specs, n, true, &acc);
        assert_true(rc == SLUICE_OK || rc == SLUICE_EFULL);
        assert_true(acc >= 16); /* an empty queue takes at least its capacity */
        assert_true(rc == SLUICE_OK ? acc == n : acc < n);
        WAIT_FOR(probe_ran(pr) == acc, "the accepted prefix ran");
        ASSERT_IDENTITY(p);
        assert_exactly_once(pr, acc);
        sluice_pool_stats st = stats_now(p);
        assert_int_equal(st.submitted, acc);
        assert_int_equal(st.rejected, rc == SLUICE_OK ? 0 : 1);
        sluice_pool_destroy(p);
        probe_free(pr);
    }
}

/* ---- 3. each overflow policy where the queue fills ----------------------------- */

typedef struct policy_case {
    sluice_overflow ov;
    bool nonblocking;
    bool past_deadline; /* every task's submit deadline is already past */
    sluice_err rc;
    size_t accepted;
} policy_case;

static void test_batch_policies_at_fill(void **state)
{
    (void)state;
    enum { CAP = 8, N = 20 };
    const policy_case cases[] = {
        {SLUICE_OVERFLOW_REJECT, false, false, SLUICE_EFULL, CAP},
        {SLUICE_OVERFLOW_REJECT, true, false, SLUICE_EFULL, CAP},
        {SLUICE_OVERFLOW_BLOCK, true, false, SLUICE_EFULL, CAP},
        {SLUICE_OVERFLOW_BLOCK, false, true, SLUICE_ETIMEDOUT, CAP},
        {SLUICE_OVERFLOW_CALLER_RUNS, false, false, SLUICE_OK, N},
        {SLUICE_OVERFLOW_CALLER_RUNS, true, false, SLUICE_OK, N},
        {SLUICE_OVERFLOW_DROP_OLDEST, false, false, SLUICE_OK, N},
        {SLUICE_OVERFLOW_DROP_OLDEST, true, false, SLUICE_OK, N},
    };
    sluice_fake_clock fc;
    sluice_fake_clock_init(&fc, 1000000);
    for (size_t d = 0; d < NDISC; d++) {
        for (size_t c = 0; c < sizeof cases / sizeof cases[0]; c++) {
            const policy_case *pc = &cases[c];
            const char *what = sluice_overflow_name(pc->ov);
            probe *pr = probe_new(N);
            probe_fill(pr);
            sluice_submit_opts past = {.submit_deadline_ns = sluice_clock_now(&fc.clock)};
            if (pc->past_deadline) {
                for (size_t i = 0; i < N; i++) {
                    pr->specs[i].opts = &past;
                }
            }
            sluice_pool *p = make_pool("fill", ring_disciplines[d], pc->ov, 1, CAP, &fc.clock, pr);
            gate *g = gate_new();
            hold_worker(p, g);
            size_t acc = 99;
            sluice_err rc = sluice_pool_submit_batch(p, pr->specs, N, pc->nonblocking, &acc);
            if (rc != pc->rc || acc != pc->accepted) {
                fail_msg("%s %s nonblocking=%d: rc %s accepted %zu, want %s %zu",
                         sluice_queue_discipline_name(ring_disciplines[d]), what, (int)pc->nonblocking,
                         sluice_err_name(rc), acc, sluice_err_name(pc->rc), pc->accepted);
            }
            sluice_pool_stats st = stats_now(p);
            assert_int_equal(st.rejected, pc->rc == SLUICE_OK ? 0 : 1);
            if (pc->ov == SLUICE_OVERFLOW_CALLER_RUNS) {
                /* The overflow ran on this thread, in order, before the call returned. */
                assert_int_equal(atomic_load(&pr->on_caller), N - CAP);
                assert_int_equal(probe_ran(pr), N - CAP);
                for (size_t i = 0; i < N - CAP; i++) {
                    assert_int_equal(pr->order[i], CAP + i);
                }
                assert_int_equal(st.caller_ran, N - CAP);
            }
            if (pc->ov == SLUICE_OVERFLOW_DROP_OLDEST) {
                /* The oldest went back, oldest first, before the call returned. */
                assert_int_equal(st.dropped, N - CAP);
                assert_int_equal(atomic_load(&pr->by_reason[SLUICE_ABANDON_DROPPED]), N - CAP);
                for (size_t i = 0; i < N - CAP; i++) {
                    assert_int_equal(pr->dropped[i], i);
                }
                assert_int_equal(st.queue_depth, CAP);
            }
            gate_open(g);
            WAIT_FOR(probe_ran(pr) + atomic_load(&pr->by_reason[SLUICE_ABANDON_DROPPED]) == acc,
                     "every accepted task ran or was dropped (%s)", what);
            ASSERT_IDENTITY(p);
            assert_exactly_once(pr, acc);
            if (pc->ov != SLUICE_OVERFLOW_CALLER_RUNS) {
                /* The queued ones ran in submit order (one worker, one shard). */
                size_t first = pc->ov == SLUICE_OVERFLOW_DROP_OLDEST ? N - CAP : 0;
                for (size_t i = 0; i < probe_ran(pr); i++) {
                    assert_int_equal(pr->order[i], first + i);
                }
            }
            st = stats_now(p);
            assert_int_equal(st.submitted, acc + 1); /* and the gate task */
            sluice_pool_destroy(p);
            gate_free(g);
            probe_free(pr);
        }
    }
}

/* ---- 4. closed pools ------------------------------------------------------------- */

typedef struct bg_batch {
    sluice_pool *p;
    const sluice_task_spec *specs;
    size_t n;
    bool nonblocking;
    sluice_err rc;
    size_t accepted;
    _Atomic bool done;
} bg_batch;

static void *batch_thread(void *arg)
{
    bg_batch *b = arg;
    b->rc = sluice_pool_submit_batch(b->p, b->specs, b->n, b->nonblocking, &b->accepted);
    atomic_store(&b->done, true);
    return NULL;
}

typedef struct bg_drain {
    sluice_pool *p;
    uint64_t timeout_ns;
    sluice_err rc;
    sluice_drain_report rep;
    _Atomic bool done;
} bg_drain;

static void *drain_thread(void *arg)
{
    bg_drain *d = arg;
    d->rc = sluice_pool_drain(d->p, d->timeout_ns, &d->rep);
    atomic_store(&d->done, true);
    return NULL;
}

static bool pool_waiting(sluice_pool *p, unsigned n)
{
    sluice_pool_stats st;
    sluice_pool_stats_get(p, &st);
    return st.waiting == n;
}

static bool pool_draining(sluice_pool *p)
{
    sluice_pool_stats st;
    sluice_pool_stats_get(p, &st);
    return st.draining;
}

static void test_batch_closed_pool(void **state)
{
    (void)state;
    for (size_t d = 0; d < NDISC; d++) {
        /* Closed before the batch: refused whole, not counted. */
        probe *pr = probe_new(40);
        probe_fill(pr);
        sluice_pool *p = make_pool("closed", ring_disciplines[d], SLUICE_OVERFLOW_BLOCK, 2, 64, NULL, pr);
        assert_int_equal(sluice_pool_drain(p, 0, NULL), SLUICE_OK);
        size_t acc = 5;
        assert_int_equal(sluice_pool_submit_batch(p, pr->specs, 40, false, &acc), SLUICE_ECLOSED);
        assert_int_equal(acc, 0);
        assert_int_equal(sluice_pool_submit_batch(p, pr->specs, 40, true, &acc), SLUICE_ECLOSED);
        assert_int_equal(acc, 0);
        sluice_pool_stats st = stats_now(p);
        assert_int_equal(st.submitted, 0);
        assert_int_equal(st.rejected, 0);
        assert_exactly_once(pr, 0);
        sluice_pool_destroy(p);
        probe_free(pr);

        /* A batch blocked on a full queue, released by a drain: exactly
         * what it says it queued runs; the rest stays the caller's. */
        pr = probe_new(40);
        probe_fill(pr);
        p = make_pool("released", ring_disciplines[d], SLUICE_OVERFLOW_BLOCK, 1, 8, NULL, pr);
        gate *g = gate_new();
        hold_worker(p, g);
        bg_batch bb = {.p = p, .specs = pr->specs, .n = 40};
        atomic_init(&bb.done, false);
        pthread_t tb, td;
        START_THREAD(&tb, batch_thread, &bb);
        WAIT_FOR(pool_waiting(p, 1), "the batch waits for space");
        bg_drain dr = {.p = p};
        atomic_init(&dr.done, false);
        START_THREAD(&td, drain_thread, &dr);
        WAIT_FOR(atomic_load(&bb.done), "the drain released the batch");
        pthread_join(tb, NULL);
        assert_int_equal(bb.rc, SLUICE_ECLOSED);
        assert_int_equal(bb.accepted, 8);
        assert_true(pool_draining(p));
        gate_open(g);
        pthread_join(td, NULL);
        assert_int_equal(dr.rc, SLUICE_OK);
        ASSERT_IDENTITY(p);
        assert_exactly_once(pr, 8);
        assert_int_equal(probe_ran(pr), 8);
        st = stats_now(p);
        assert_int_equal(st.submitted, 9);
        assert_int_equal(st.rejected, 0); /* closed-pool refusals are not counted */
        sluice_pool_destroy(p);
        gate_free(g);
        probe_free(pr);
    }
}

/* ---- 5. deadlines and contexts ---------------------------------------------------- */

static void test_batch_deadlines(void **state)
{
    (void)state;
    enum { N = 48 };
    sluice_fake_clock fc;
    sluice_fake_clock_init(&fc, 1000000);
    uint64_t now = sluice_clock_now(&fc.clock);
    sluice_ctx *cancelled = NULL, *expired = NULL, *live = NULL;
    assert_int_equal(sluice_ctx_create(&cancelled, NULL, 0, &fc.clock), SLUICE_OK);
    sluice_ctx_cancel(cancelled, SLUICE_ECANCELED);
    assert_int_equal(sluice_ctx_create(&expired, NULL, now - 1, &fc.clock), SLUICE_OK);
    assert_int_equal(sluice_ctx_create(&live, NULL, UINT64_MAX, &fc.clock), SLUICE_OK);
    sluice_submit_opts o_past = {.deadline_ns = now - 1};
    sluice_submit_opts o_at = {.deadline_ns = now}; /* the deadline is now: passed */
    sluice_submit_opts o_future = {.deadline_ns = now + 1, .ctx = live};
    sluice_submit_opts o_cancelled = {.ctx = cancelled, .on_abandon = own_abandon};
    sluice_submit_opts o_expired = {.ctx = expired};
    sluice_submit_opts o_max = {.deadline_ns = UINT64_MAX};
    const sluice_submit_opts *kinds[] = {&o_past, &o_future, &o_cancelled, NULL, &o_expired, &o_max, &o_at};
    const bool sheds[] = {true, false, true, false, true, false, true};
    enum { NKINDS = sizeof kinds / sizeof kinds[0] };
    for (size_t d = 0; d < NDISC; d++) {
        probe *pr = probe_new(N);
        probe_fill(pr);
        size_t want_shed = 0, want_own = 0;
        for (size_t i = 0; i < N; i++) {
            pr->specs[i].opts = kinds[i % NKINDS];
            want_shed += sheds[i % NKINDS];
            want_own += kinds[i % NKINDS] == &o_cancelled;
        }
        sluice_pool *p =
            make_pool("deadlines", ring_disciplines[d], SLUICE_OVERFLOW_BLOCK, 1, 64, &fc.clock, pr);
        gate *g = gate_new();
        hold_worker(p, g);
        size_t acc = 0;
        assert_int_equal(sluice_pool_submit_batch(p, pr->specs, N, false, &acc), SLUICE_OK);
        assert_int_equal(acc, N);
        gate_open(g);
        WAIT_FOR(probe_ran(pr) + atomic_load(&pr->by_reason[SLUICE_ABANDON_SHED]) == N,
                 "every task ran or was shed");
        ASSERT_IDENTITY(p);
        assert_exactly_once(pr, N);
        for (size_t i = 0; i < N; i++) {
            if (atomic_load(&pr->runs[i]) != (sheds[i % NKINDS] ? 0u : 1u)) {
                fail_msg("%s: task %zu (kind %zu) ran %u times",
                         sluice_queue_discipline_name(ring_disciplines[d]), i, i % NKINDS,
                         atomic_load(&pr->runs[i]));
            }
        }
        sluice_pool_stats st = stats_now(p);
        assert_int_equal(st.shed, want_shed);
        assert_int_equal(atomic_load(&pr->own_handler), want_own);
        sluice_pool_destroy(p);
        gate_free(g);
        probe_free(pr);
    }
    sluice_ctx_release(cancelled);
    sluice_ctx_release(expired);
    sluice_ctx_release(live);
}

/* ---- 6. FAIR pools: mixed tenants --------------------------------------------------- */

static sluice_pool *make_fair(const char *name, sluice_overflow ov, size_t cap, bool known_only,
                              const sluice_clock *clock, void *user)
{
    sluice_pool_config pc;
    sluice_pool_config_init(&pc);
    pc.name = name;
    pc.workers = 1;
    pc.queue_capacity = cap;
    pc.overflow = ov;
    pc.queue_discipline = SLUICE_QUEUE_FAIR;
    pc.fair.known_only = known_only;
    pc.fair.shard_queues = 4;
    pc.fair.hand_size = 2;
    pc.fair.idle_forget_ns = UINT64_MAX;
    pc.clock = clock;
    pc.abandon_handler = pool_abandon;
    pc.user = user;
    sluice_pool *p = NULL;
    CREATE_POOL(&pc, &p);
    return p;
}

/* The tenants' sums (select with n = 0) against the pool's totals, and
 * each listed tenant's own identity; at quiescence. */
static void assert_tenants_add_up(sluice_pool *p)
{
    ASSERT_IDENTITY(p);
    sluice_tenant_selection sel;
    sluice_pool_stats st;
    /* A tenant's outcome is counted at its worker's next pop: wait for it. */
    WAIT_FOR(sluice_pool_tenants_select(p, NULL, 0, NULL, &sel) == SLUICE_OK &&
                 (sluice_pool_stats_get(p, &st), sel.rest.submitted == st.submitted) &&
                 sel.rest.completed + sel.rest.failed + sel.rest.panicked + sel.rest.dropped + sel.rest.shed +
                         sel.rest.abandoned ==
                     sel.rest.submitted &&
                 sel.rest.queued == 0 && sel.rest.running == 0,
             "the tenants settle");
    sluice_pool_stats_get(p, &st);
    const sluice_tenant_stats *r = &sel.rest;
    assert_int_equal(r->submitted, st.submitted);
    assert_int_equal(r->completed, st.completed);
    assert_int_equal(r->failed, st.failed);
    assert_int_equal(r->panicked, st.panicked);
    assert_int_equal(r->dropped, st.dropped);
    assert_int_equal(r->shed, st.shed);
    assert_int_equal(r->abandoned, st.abandoned);
    assert_int_equal(r->rejected, st.rejected);
    assert_int_equal(r->caller_ran, st.caller_ran);
    size_t n = sluice_pool_tenants_get(p, NULL, 0);
    sluice_tenant_stats *all = calloc(n + 1, sizeof *all);
    assert_non_null(all);
    size_t got = sluice_pool_tenants_get(p, all, n + 1);
    assert_int_equal(got, n);
    for (size_t i = 0; i < got; i++) {
        const sluice_tenant_stats *t = &all[i];
        uint64_t ended = t->completed + t->failed + t->panicked + t->dropped + t->shed + t->abandoned;
        if (t->submitted != ended || t->queued || t->running) {
            fail_msg("tenant %s: submitted %llu, ended %llu, queued %zu, running %u", t->name,
                     (unsigned long long)t->submitted, (unsigned long long)ended, t->queued, t->running);
        }
    }
    free(all);
}

static void test_batch_fair_mixed(void **state)
{
    (void)state;
    probe *pr = probe_new(16);
    probe_fill(pr);
    sluice_pool *p = make_fair("mixed", SLUICE_OVERFLOW_BLOCK, 64, false, NULL, pr);
    char err[256];
    sluice_tenant_config gold = {.queued_limit = 3, .overflow = SLUICE_TENANT_OVERFLOW_REJECT};
    assert_int_equal(sluice_pool_tenant_set(p, "gold", &gold, err, sizeof err), SLUICE_OK);
    sluice_tenant *silver = NULL;
    assert_int_equal(sluice_pool_tenant_acquire(p, "silver", &silver), SLUICE_OK);
    gate *g = gate_new();
    hold_worker(p, g);

    sluice_submit_opts o_a = {.tenant_name = "a"}, o_silver = {.tenant = silver},
                       o_gold = {.tenant_name = "gold"};
    sluice_submit_opts o_bad = {.tenant_name = "bad name"}, o_b = {.tenant_name = "b"};
    const sluice_submit_opts *first[] = {NULL, &o_a, &o_silver, &o_gold, &o_gold, &o_gold, &o_gold, NULL};
    for (size_t i = 0; i < 8; i++) {
        pr->specs[i].opts = first[i];
    }
    size_t acc = 0;
    /* gold's fourth: its queued_limit with REJECT: EFULL there. */
    assert_int_equal(sluice_pool_submit_batch(p, pr->specs, 8, false, &acc), SLUICE_EFULL);
    assert_int_equal(acc, 6);
    pr->specs[8].opts = &o_b;
    pr->specs[9].opts = &o_bad;
    pr->specs[10].opts = NULL;
    assert_int_equal(sluice_pool_submit_batch(p, &pr->specs[8], 3, true, &acc), SLUICE_EINVAL);
    assert_int_equal(acc, 1);

    const char *names[] = {"default", "a", "silver", "gold", "b"};
    const uint64_t submitted[] = {2, 1, 1, 3, 1};
    sluice_tenant_stats out[5];
    sluice_tenant_selection sel;
    assert_int_equal(sluice_pool_tenants_select(p, names, 5, out, &sel), SLUICE_OK);
    assert_int_equal(sel.found, 5);
    for (size_t i = 0; i < 5; i++) {
        if (out[i].submitted != submitted[i]) {
            fail_msg("tenant %s: submitted %llu, want %llu", names[i], (unsigned long long)out[i].submitted,
                     (unsigned long long)submitted[i]);
        }
    }
    assert_int_equal(out[3].rejected, 1);
    assert_int_equal(sel.rest.submitted, 0);
    sluice_pool_stats st = stats_now(p);
    assert_int_equal(st.rejected, 1); /* gold's EFULL; not the bad name */

    gate_open(g);
    WAIT_FOR(probe_ran(pr) == 7, "the accepted tasks ran");
    assert_tenants_add_up(p);
    for (size_t i = 0; i < 16; i++) {
        assert_int_equal(atomic_load(&pr->runs[i]), (i < 6 || i == 8) ? 1u : 0u);
    }
    /* A handle of another pool stops the batch with EINVAL there; a name
     * of exactly SLUICE_TENANT_NAME_MAX bytes is a tenant like any. */
    sluice_pool *other = make_fair("other", SLUICE_OVERFLOW_BLOCK, 8, false, NULL, NULL);
    sluice_tenant *foreign = NULL;
    assert_int_equal(sluice_pool_tenant_acquire(other, "silver", &foreign), SLUICE_OK);
    char longest[SLUICE_TENANT_NAME_MAX + 1];
    memset(longest, 'L', SLUICE_TENANT_NAME_MAX);
    longest[SLUICE_TENANT_NAME_MAX] = '\0';
    sluice_submit_opts o_foreign = {.tenant = foreign}, o_longest = {.tenant_name = longest};
    pr->specs[11].opts = &o_longest;
    pr->specs[12].opts = &o_longest;
    pr->specs[13].opts = &o_foreign;
    pr->specs[14].opts = NULL;
    assert_int_equal(sluice_pool_submit_batch(p, &pr->specs[11], 4, false, &acc), SLUICE_EINVAL);
    assert_int_equal(acc, 2);
    const char *one[] = {longest};
    sluice_tenant_stats lt;
    assert_int_equal(sluice_pool_tenants_select(p, one, 1, &lt, &sel), SLUICE_OK);
    assert_int_equal(sel.found, 1);
    assert_int_equal(lt.submitted, 2);
    assert_string_equal(lt.name, longest);
    WAIT_FOR(probe_ran(pr) == 9, "the accepted tasks ran");
    assert_tenants_add_up(p);
    assert_int_equal(atomic_load(&pr->runs[13]), 0);
    sluice_tenant_release(foreign);
    sluice_pool_destroy(other);
    sluice_tenant_release(silver);
    sluice_pool_destroy(p);
    gate_free(g);
    probe_free(pr);

    /* known_only: an unset name stops the batch with ENOENT. */
    pr = probe_new(4);
    probe_fill(pr);
    p = make_fair("known", SLUICE_OVERFLOW_BLOCK, 64, true, NULL, pr);
    sluice_tenant_config plain = {0};
    assert_int_equal(sluice_pool_tenant_set(p, "x", &plain, err, sizeof err), SLUICE_OK);
    sluice_submit_opts o_x = {.tenant_name = "x"}, o_y = {.tenant_name = "y"};
    pr->specs[0].opts = &o_x;
    pr->specs[1].opts = &o_x;
    pr->specs[2].opts = &o_y;
    pr->specs[3].opts = &o_x;
    assert_int_equal(sluice_pool_submit_batch(p, pr->specs, 4, false, &acc), SLUICE_ENOENT);
    assert_int_equal(acc, 2);
    WAIT_FOR(probe_ran(pr) == 2, "the accepted tasks ran");
    assert_tenants_add_up(p);
    assert_exactly_once(pr, 2);
    sluice_pool_destroy(p);
    probe_free(pr);
}

/* Every overflow policy at the place the pool's queue fills, tenants
 * mixed; then a drain whose deadline hands back what is queued. */
static void test_batch_fair_policies(void **state)
{
    (void)state;
    enum { CAP = 8, N = 24 };
    const policy_case cases[] = {
        {SLUICE_OVERFLOW_REJECT, false, false, SLUICE_EFULL, CAP},
        {SLUICE_OVERFLOW_BLOCK, true, false, SLUICE_EFULL, CAP},
        {SLUICE_OVERFLOW_BLOCK, false, true, SLUICE_ETIMEDOUT, CAP},
        {SLUICE_OVERFLOW_CALLER_RUNS, false, false, SLUICE_OK, N},
        {SLUICE_OVERFLOW_DROP_OLDEST, false, false, SLUICE_OK, N},
    };
    sluice_fake_clock fc;
    sluice_fake_clock_init(&fc, 1000000);
    static const char *const tenants[] = {NULL, "t1", "t2", "t3"};
    for (size_t c = 0; c < sizeof cases / sizeof cases[0]; c++) {
        const policy_case *pc = &cases[c];
        probe *pr = probe_new(N);
        probe_fill(pr);
        sluice_submit_opts opts[4];
        for (size_t t = 0; t < 4; t++) {
            opts[t] = (sluice_submit_opts){.tenant_name = tenants[t]};
            if (pc->past_deadline) {
                opts[t].submit_deadline_ns = sluice_clock_now(&fc.clock);
            }
        }
        for (size_t i = 0; i < N; i++) {
            pr->specs[i].opts = &opts[i % 4];
        }
        sluice_pool *p = make_fair("fair-fill", pc->ov, CAP, false, &fc.clock, pr);
        gate *g = gate_new();
        hold_worker(p, g);
        size_t acc = 0;
        sluice_err rc = sluice_pool_submit_batch(p, pr->specs, N, pc->nonblocking, &acc);
        if (rc != pc->rc || acc != pc->accepted) {
            fail_msg("fair %s: rc %s accepted %zu, want %s %zu", sluice_overflow_name(pc->ov),
                     sluice_err_name(rc), acc, sluice_err_name(pc->rc), pc->accepted);
        }
        sluice_pool_stats st = stats_now(p);
        assert_int_equal(st.rejected, pc->rc == SLUICE_OK ? 0 : 1);
        if (pc->ov == SLUICE_OVERFLOW_DROP_OLDEST) {
            assert_int_equal(st.dropped, N - CAP);
        }
        gate_open(g);
        WAIT_FOR(probe_ran(pr) + atomic_load(&pr->by_reason[SLUICE_ABANDON_DROPPED]) == acc,
                 "every accepted task ran or was dropped");
        assert_tenants_add_up(p);
        assert_exactly_once(pr, acc);
        sluice_pool_destroy(p);
        gate_free(g);
        probe_free(pr);
    }

    /* A drain whose deadline comes with tenants' tasks queued. */
    probe *pr = probe_new(CAP);
    probe_fill(pr);
    sluice_submit_opts opts[4];
    for (size_t t = 0; t < 4; t++) {
        opts[t] = (sluice_submit_opts){.tenant_name = tenants[t]};
    }
    for (size_t i = 0; i < CAP; i++) {
        pr->specs[i].opts = &opts[i % 4];
    }
    sluice_pool *p = make_fair("fair-drain", SLUICE_OVERFLOW_BLOCK, CAP, false, &fc.clock, pr);
    gate *g = gate_new();
    hold_worker(p, g);
    size_t acc = 0;
    assert_int_equal(sluice_pool_submit_batch(p, pr->specs, CAP, false, &acc), SLUICE_OK);
    bg_drain dr = {.p = p, .timeout_ns = SLUICE_NS_PER_SEC};
    atomic_init(&dr.done, false);
    pthread_t td;
    START_THREAD(&td, drain_thread, &dr);
    WAIT_FOR(pool_draining(p), "the drain began");
    sluice_fake_clock_advance(&fc, 2 * SLUICE_NS_PER_SEC);
    WAIT_FOR(atomic_load(&dr.done), "the drain's deadline passed");
    pthread_join(td, NULL);
    assert_int_equal(dr.rc, SLUICE_ETIMEDOUT);
    assert_int_equal(dr.rep.handed_back, CAP);
    gate_open(g);
    assert_tenants_add_up(p);
    assert_exactly_once(pr, CAP);
    assert_int_equal(atomic_load(&pr->by_reason[SLUICE_ABANDON_DRAIN]), CAP);
    sluice_pool_destroy(p);
    gate_free(g);
    probe_free(pr);
}

/* ---- 7. top and select at their extremes --------------------------------------------- */

static void test_top_select_extremes(void **state)
{
    (void)state;
    sluice_pool *p = make_fair("scrape", SLUICE_OVERFLOW_BLOCK, 1024, false, NULL, NULL);
    char name[16];
    sluice_submit_opts o = {0};
    o.tenant_name = name;
    for (int t = 0; t < 10; t++) {
        snprintf(name, sizeof name, "t%d", t);
        for (int k = 0; k <= t % 3; k++) { /* keys 1, 2, 3: ties broken by name */
            assert_int_equal(sluice_pool_submit_ex(p, task_nop, NULL, &o), SLUICE_OK);
        }
    }
    ASSERT_IDENTITY(p);

    /* Errors leave the outputs as the header says. */
    sluice_tenant_stats out[3];
    sluice_tenant_selection sel;
    memset(out, 0xab, sizeof out);
    memset(&sel, 0xab, sizeof sel);
    assert_int_equal(sluice_pool_tenants_select(p, NULL, 3, out, &sel), SLUICE_EINVAL);
    for (size_t i = 0; i < 3; i++) {
        /* "every out[i] given is an absent entry" */
        assert_int_equal(out[i].incarnation, 0);
        assert_int_equal(out[i].submitted, 0);
        assert_string_equal(out[i].name, "");
    }
    assert_string_equal(sel.rest.name, SLUICE_TENANT_REST);
    assert_string_equal(sel.forgotten.name, SLUICE_TENANT_FORGOTTEN);
    assert_int_equal(sel.rest.submitted, 0);
    assert_int_equal(sel.tenants, 0);
    const char *some[] = {"t1", "t2", "t3"};
    memset(out, 0xab, sizeof out);
    assert_int_equal(sluice_pool_tenants_select(p, some, 3, out, NULL), SLUICE_EINVAL);
    for (size_t i = 0; i < 3; i++) {
        assert_int_equal(out[i].submitted, 0);
        assert_string_equal(out[i].name, some[i]);
    }
    memset(&sel, 0xab, sizeof sel);
    assert_int_equal(sluice_pool_tenants_select(NULL, NULL, 0, NULL, &sel), SLUICE_EINVAL);
    assert_int_equal(sel.found, 0);
    assert_string_equal(sel.rest.name, SLUICE_TENANT_REST);

    /* n in the thousands: real names repeated, unknown, NULL, too long,
     * the records' names, shard names in and out of range. */
    char toolong[SLUICE_TENANT_NAME_MAX + 8];
    memset(toolong, 'x', sizeof toolong - 1);
    toolong[sizeof toolong - 1] = '\0';
    static char realnames[10][8];
    const char *junk[] = {
        NULL,      "nobody", toolong, SLUICE_TENANT_FORGOTTEN, SLUICE_TENANT_REST, "~shard-0", "~shard-99999",
        "~shard-", "",       "t01"};
    size_t n = 4000;
    const char **names = calloc(n, sizeof *names);
    sluice_tenant_stats *many = calloc(n, sizeof *many);
    assert_true(names && many);
    for (int t = 0; t < 10; t++) {
        snprintf(realnames[t], sizeof realnames[t], "t%d", t);
    }
    for (size_t i = 0; i < n; i++) {
        names[i] = i % 2 ? realnames[i % 10] : junk[(i / 2) % 10];
    }
    assert_int_equal(sluice_pool_tenants_select(p, names, n, many, &sel), SLUICE_OK);
    assert_int_equal(sel.found, 5); /* odd i: t1, t3, t5, t7, t9 */
    sluice_tenant_selection whole;
    assert_int_equal(sluice_pool_tenants_select(p, NULL, 0, NULL, &whole), SLUICE_OK);
    uint64_t found_sum = 0;
    for (int t = 1; t < 10; t += 2) {
        found_sum += many[t].submitted; /* names[t] is realnames[t] */
        assert_string_equal(many[t].name, realnames[t]);
        assert_true(many[t].incarnation >= 1);
    }
    assert_int_equal(found_sum + sel.rest.submitted, whole.rest.submitted);
    for (size_t i = 0; i < n; i += 2) {
        assert_int_equal(many[i].incarnation, 0);
        assert_int_equal(many[i].submitted, 0);
    }
    assert_string_equal(many[4].name, ""); /* names[4] is too long: no name */
    free(names);
    free(many);

    /* top: cap 0 with no array; cap SIZE_MAX with room for all; a bad order. */
    size_t found = 99;
    assert_int_equal(sluice_pool_tenants_top(p, SLUICE_TENANT_BY_TRAFFIC, NULL, 0, &found), SLUICE_OK);
    assert_int_equal(found, 0);
    sluice_tenant_rank ranks[64];
    assert_int_equal(sluice_pool_tenants_top(p, SLUICE_TENANT_BY_TRAFFIC, ranks, SIZE_MAX, &found),
                     SLUICE_OK);
    assert_int_equal(found, whole.tenants);
    for (size_t i = 1; i < found; i++) {
        bool before = ranks[i - 1].key > ranks[i].key ||
                      (ranks[i - 1].key == ranks[i].key && strcmp(ranks[i - 1].name, ranks[i].name) < 0);
        if (!before) {
            fail_msg("rank %zu (%s %llu) is not before rank %zu (%s %llu)", i - 1, ranks[i - 1].name,
                     (unsigned long long)ranks[i - 1].key, i, ranks[i].name,
                     (unsigned long long)ranks[i].key);
        }
    }
    found = 99;
    assert_int_equal(sluice_pool_tenants_top(p, (sluice_tenant_order)2, ranks, 64, &found), SLUICE_EINVAL);
    assert_int_equal(found, 0);
    sluice_pool_destroy(p);
}

/* ---- 8. resize at its extremes while batches run ---------------------------------------- */

typedef struct churn {
    sluice_pool *p;
    probe *pr;
    size_t from, count; /* this producer's tasks */
    size_t accepted;    /* in all */
    _Atomic bool *stop;
    _Atomic unsigned long violations;
} churn;

static void *producer(void *arg)
{
    churn *c = arg;
    size_t i = c->from, end = c->from + c->count;
    unsigned round = 0;
    while (i < end) {
        size_t want = end - i < 40 ? end - i : 40;
        size_t acc = 0;
        sluice_err rc = sluice_pool_submit_batch(c->p, &c->pr->specs[i], want, round++ % 3 == 0, &acc);
        if ((rc == SLUICE_OK) != (acc == want) || (rc != SLUICE_OK && rc != SLUICE_EFULL)) {
            atomic_fetch_add(&c->violations, 1);
        }
        /* The refused tail stays ours: mark it so it is not expected. */
        for (size_t j = i + acc; j < i + want; j++) {
            c->pr->specs[j].fn = NULL;
        }
        c->accepted += acc;
        i += want;
    }
    return NULL;
}

static void *resizer(void *arg)
{
    churn *c = arg;
    const unsigned ks[] = {1, UINT_MAX, 2, 1, 7, UINT_MAX - 1, 3};
    for (unsigned r = 0; !atomic_load(c->stop); r++) {
        if (sluice_pool_resize(c->p, ks[r % 7]) != SLUICE_OK) {
            atomic_fetch_add(&c->violations, 1);
        }
        sched_yield();
    }
    return NULL;
}

static void test_resize_extremes_during_batches(void **state)
{
    (void)state;
    size_t per = under_sanitizer() ? 2000 : 20000;
    for (size_t d = 0; d < NDISC; d++) {
        probe *pr = probe_new(2 * per);
        probe_fill(pr);
        sluice_pool *p = make_pool("resize", ring_disciplines[d], SLUICE_OVERFLOW_BLOCK, 4, 32, NULL, pr);
        assert_int_equal(sluice_pool_resize(p, 0), SLUICE_EINVAL);
        _Atomic bool stop;
        atomic_init(&stop, false);
        churn c[3] = {{.p = p, .pr = pr, .from = 0, .count = per, .stop = &stop},
                      {.p = p, .pr = pr, .from = per, .count = per, .stop = &stop},
                      {.p = p, .pr = pr, .stop = &stop}};
        pthread_t th[3];
        START_THREAD(&th[0], producer, &c[0]);
        START_THREAD(&th[1], producer, &c[1]);
        START_THREAD(&th[2], resizer, &c[2]);
        pthread_join(th[0], NULL);
        pthread_join(th[1], NULL);
        atomic_store(&stop, true);
        pthread_join(th[2], NULL);
        for (int t = 0; t < 3; t++) {
            assert_int_equal(atomic_load(&c[t].violations), 0);
        }
        size_t accepted = c[0].accepted + c[1].accepted;
        WAIT_FOR(probe_ran(pr) == accepted, "every accepted task ran");
        ASSERT_IDENTITY(p);
        for (size_t i = 0; i < 2 * per; i++) {
            unsigned want = pr->specs[i].fn ? 1u : 0u;
            if (atomic_load(&pr->runs[i]) != want) {
                fail_msg("%s: task %zu ran %u times, want %u",
                         sluice_queue_discipline_name(ring_disciplines[d]), i, atomic_load(&pr->runs[i]),
                         want);
            }
        }
        sluice_pool_stats st = stats_now(p);
        assert_int_equal(st.submitted, accepted);
        /* K ends wherever the resizer left it, and the pool still works at K = 1. */
        assert_int_equal(sluice_pool_resize(p, 1), SLUICE_OK);
        assert_int_equal(sluice_pool_resize(p, UINT_MAX), SLUICE_OK);
        st = stats_now(p);
        assert_int_equal(st.capacity, UINT_MAX);
        sluice_pool_destroy(p);
        probe_free(pr);
    }
}

/* ---- 9. more extremes: n = SIZE_MAX, own worker, wake-ups, shards, hwm ------------------ */

/* n = SIZE_MAX over a short array whose entry k has no fn: the call
 * stops there and reads nothing past it (ASan would see it). */
static void test_batch_n_max(void **state)
{
    (void)state;
    for (size_t k = 0; k < 3; k++) {
        size_t len = (size_t[]){1, 2, 40}[k];
        probe *pr = probe_new(len);
        probe_fill(pr);
        pr->specs[len - 1].fn = NULL;
        sluice_pool *p = make_pool("nmax", SLUICE_QUEUE_FIFO, SLUICE_OVERFLOW_BLOCK, 1, 1024, NULL, pr);
        size_t acc = 0;
        assert_int_equal(sluice_pool_submit_batch(p, pr->specs, SIZE_MAX, false, &acc), SLUICE_EINVAL);
        assert_int_equal(acc, len - 1);
        WAIT_FOR(probe_ran(pr) == acc, "the accepted prefix ran");
        ASSERT_IDENTITY(p);
        assert_exactly_once(pr, acc);
        sluice_pool_destroy(p);
        probe_free(pr);
    }
}

/* A batch from a task of the same pool into its full BLOCK queue gets
 * EDEADLK where it fills (EFULL when non-blocking), never waits. */
typedef struct inner {
    sluice_pool *p;
    probe *pr;
    bool nonblocking;
    sluice_err rc;
    size_t accepted;
} inner;

static int batch_task(void *arg)
{
    inner *in = arg;
    in->rc = sluice_pool_submit_batch(in->p, in->pr->specs, in->pr->n, in->nonblocking, &in->accepted);
    return 0;
}

static void test_batch_from_own_worker(void **state)
{
    (void)state;
    for (size_t d = 0; d < NDISC; d++) {
        for (int nb = 0; nb < 2; nb++) {
            probe *pr = probe_new(20);
            probe_fill(pr);
            pr->caller = pthread_self();
            sluice_pool *p = make_pool("own", ring_disciplines[d], SLUICE_OVERFLOW_BLOCK, 1, 8, NULL, pr);
            inner in = {.p = p, .pr = pr, .nonblocking = nb, .rc = SLUICE_OK};
            assert_int_equal(sluice_pool_submit(p, batch_task, &in), SLUICE_OK);
            WAIT_FOR(probe_ran(pr) == 8, "the tasks it queued ran");
            ASSERT_IDENTITY(p);
            assert_int_equal(in.rc, nb ? SLUICE_EFULL : SLUICE_EDEADLK);
            assert_int_equal(in.accepted, 8);
            assert_exactly_once(pr, 8);
            assert_int_equal(stats_now(p).rejected, 1);
            sluice_pool_destroy(p);
            probe_free(pr);
        }
    }
}

/* A batch wakes as many parked workers as it has tasks: K gate tasks all
 * start (none waits behind another while a worker sleeps). */
static void test_batch_wakes_parked(void **state)
{
    (void)state;
    const sluice_queue_discipline all[] = {SLUICE_QUEUE_FIFO, SLUICE_QUEUE_FIFO_BATCH, SLUICE_QUEUE_SHARDED,
                                           SLUICE_QUEUE_FAIR};
    for (size_t d = 0; d < 4; d++) {
        for (unsigned k = 2; k <= 5; k += 3) {
            sluice_pool_config pc;
            sluice_pool_config_init(&pc);
            pc.name = "wake";
            pc.workers = k;
            pc.min_workers = k;
            pc.prewarm = true;
            pc.queue_capacity = 64;
            pc.queue_discipline = all[d];
            sluice_pool *p = NULL;
            CREATE_POOL(&pc, &p);
            WAIT_FOR(stats_now(p).idle == k, "every worker parked");
            gate *g = gate_new();
            sluice_task_spec specs[5];
            for (unsigned i = 0; i < k; i++) {
                specs[i] = (sluice_task_spec){.fn = task_gate, .arg = g};
            }
            size_t acc = 0;
            assert_int_equal(sluice_pool_submit_batch(p, specs, k, false, &acc), SLUICE_OK);
            assert_int_equal(acc, k);
            if (!gate_wait_inside_progress_bg(g, (int)k)) {
                gate_open(g);
                fail_msg("%s K=%u: only %d of the batch's tasks started",
                         sluice_queue_discipline_name(all[d]), k, atomic_load(&g->inside));
            }
            gate_open(g);
            ASSERT_IDENTITY(p);
            sluice_pool_destroy(p);
            gate_free(g);
        }
    }
}

/* A sharded pool of several shards holds exactly queue_capacity tasks
 * ("capacity ... behave as with FIFO"): a REJECT batch stops there. */
static void test_batch_sharded_capacity(void **state)
{
    (void)state;
    enum { K = 4, CAP = 12, N = 40 };
    probe *pr = probe_new(N);
    probe_fill(pr);
    sluice_pool *p = make_pool("shards", SLUICE_QUEUE_SHARDED, SLUICE_OVERFLOW_REJECT, K, CAP, NULL, pr);
    gate *g = gate_new();
    for (int i = 0; i < K; i++) {
        assert_int_equal(sluice_pool_submit(p, task_gate, g), SLUICE_OK);
    }
    GATE_WAIT_ENTERED(g, K);
    size_t acc = 0;
    assert_int_equal(sluice_pool_submit_batch(p, pr->specs, N, false, &acc), SLUICE_EFULL);
    assert_int_equal(acc, CAP);
    assert_int_equal(stats_now(p).queue_depth, CAP);
    gate_open(g);
    WAIT_FOR(probe_ran(pr) == CAP, "the queued tasks ran");
    ASSERT_IDENTITY(p);
    assert_exactly_once(pr, CAP);
    sluice_pool_destroy(p);
    gate_free(g);
    probe_free(pr);
}

/* CALLER_RUNS where the queue fills, with deadlines: a task past its
 * deadline is shed on the caller (counted in shed, not caller_ran). */
static void test_batch_caller_runs_sheds(void **state)
{
    (void)state;
    enum { CAP = 4, N = 12 };
    sluice_fake_clock fc;
    sluice_fake_clock_init(&fc, 1000000);
    sluice_submit_opts past = {.deadline_ns = sluice_clock_now(&fc.clock) - 1};
    for (size_t d = 0; d < NDISC; d++) {
        probe *pr = probe_new(N);
        probe_fill(pr);
        for (size_t i = 0; i < N; i += 2) {
            pr->specs[i].opts = &past;
        }
        sluice_pool *p =
            make_pool("cr-shed", ring_disciplines[d], SLUICE_OVERFLOW_CALLER_RUNS, 1, CAP, &fc.clock, pr);
        gate *g = gate_new();
        hold_worker(p, g);
        size_t acc = 0;
        assert_int_equal(sluice_pool_submit_batch(p, pr->specs, N, false, &acc), SLUICE_OK);
        assert_int_equal(acc, N);
        sluice_pool_stats st = stats_now(p);
        assert_int_equal(st.caller_ran, (N - CAP) / 2);
        assert_int_equal(atomic_load(&pr->on_caller), (N - CAP) / 2);
        assert_int_equal(st.shed, (N - CAP) / 2);
        gate_open(g);
        WAIT_FOR(probe_ran(pr) + atomic_load(&pr->by_reason[SLUICE_ABANDON_SHED]) == N,
                 "all ran or were shed");
        ASSERT_IDENTITY(p);
        assert_exactly_once(pr, N);
        st = stats_now(p);
        assert_int_equal(st.shed, N / 2);
        assert_int_equal(probe_ran(pr), N / 2);
        sluice_pool_destroy(p);
        gate_free(g);
        probe_free(pr);
    }
}

/* queue_depth_hwm is "sampled on the submit path": with every task
 * sampled (timing_sample_every = 1) it is the deepest the queue was,
 * read after the queue emptied, for singles and for a batch's runs. */
static void test_hwm_every_task_sampled(void **state)
{
    (void)state;
    const sluice_queue_discipline all[] = {SLUICE_QUEUE_FIFO, SLUICE_QUEUE_FIFO_BATCH, SLUICE_QUEUE_SHARDED,
                                           SLUICE_QUEUE_FAIR};
    for (size_t d = 0; d < 4; d++) {
        for (int batch = 0; batch < 2; batch++) {
            probe *pr = probe_new(6);
            probe_fill(pr);
            sluice_pool_config pc;
            sluice_pool_config_init(&pc);
            pc.name = "hwm";
            pc.workers = 1;
            pc.queue_capacity = 16;
            pc.queue_discipline = all[d];
            pc.timing_sample_every = 1;
            sluice_pool *p = NULL;
            CREATE_POOL(&pc, &p);
            gate *g = gate_new();
            hold_worker(p, g);
            if (batch) {
                size_t acc = 0;
                assert_int_equal(sluice_pool_submit_batch(p, pr->specs, 6, false, &acc), SLUICE_OK);
            } else {
                for (size_t i = 0; i < 6; i++) {
                    assert_int_equal(sluice_pool_submit(p, task_rec, &pr->items[i]), SLUICE_OK);
                }
            }
            gate_open(g);
            WAIT_FOR(probe_ran(pr) == 6, "the tasks ran");
            ASSERT_IDENTITY(p);
            sluice_pool_stats st = stats_now(p);
            if (st.queue_depth_hwm != 6) {
                fail_msg("%s %s: queue_depth_hwm %zu after 6 were queued",
                         sluice_queue_discipline_name(all[d]), batch ? "batch" : "singles",
                         st.queue_depth_hwm);
            }
            sluice_pool_destroy(p);
            gate_free(g);
            probe_free(pr);
        }
    }
}

/* select's `tenants` against tenants_get's count: equal while nobody is
 * due to be forgotten; once tenants are idle past idle_forget_ns, select
 * (which forgets nothing) still counts them and tenants_get (which
 * forgets first) does not; after that sweep they agree again, and the
 * forgotten counts are in rest either way. */
static void test_select_tenants_count(void **state)
{
    (void)state;
    sluice_fake_clock fc;
    sluice_fake_clock_init(&fc, SLUICE_NS_PER_SEC);
    sluice_pool_config pc;
    sluice_pool_config_init(&pc);
    pc.name = "count";
    pc.workers = 1;
    pc.queue_capacity = 64;
    pc.queue_discipline = SLUICE_QUEUE_FAIR;
    pc.fair.idle_forget_ns = 1000;
    pc.clock = &fc.clock;
    sluice_pool *p = NULL;
    CREATE_POOL(&pc, &p);
    char name[16];
    sluice_submit_opts o = {.tenant_name = name};
    for (int t = 0; t < 5; t++) {
        snprintf(name, sizeof name, "c%d", t);
        assert_int_equal(sluice_pool_submit_ex(p, task_nop, NULL, &o), SLUICE_OK);
    }
    assert_tenants_add_up(p);
    sluice_tenant_selection sel;
    assert_int_equal(sluice_pool_tenants_select(p, NULL, 0, NULL, &sel), SLUICE_OK);
    assert_int_equal(sel.tenants, sluice_pool_tenants_get(p, NULL, 0));
    uint64_t total = sel.rest.submitted;
    sluice_fake_clock_advance(&fc, 10000);
    assert_int_equal(sluice_pool_tenants_select(p, NULL, 0, NULL, &sel), SLUICE_OK);
    size_t before = sel.tenants;
    size_t listed = sluice_pool_tenants_get(p, NULL, 0); /* forgets the idle ones */
    assert_true(listed < before);
    assert_int_equal(sluice_pool_tenants_select(p, NULL, 0, NULL, &sel), SLUICE_OK);
    assert_int_equal(sel.tenants, listed);
    assert_int_equal(sel.rest.submitted, total);
    assert_int_equal(sel.forgotten.submitted, total); /* every tenant that had a task was forgotten */
    sluice_pool_destroy(p);
}

/* A batch's overflow run on the caller (CALLER_RUNS) where one task
 * panics and one submits a batch of its own to the same pool: the panic
 * is counted and reported as on the caller's thread, the batch goes on
 * after it, the nested batch's overflow runs on the same thread, and
 * every task is accounted for. */
typedef struct nested {
    sluice_pool *p;
    probe *inner;
    sluice_err rc;
    size_t accepted;
} nested;

static _Atomic int panics_on_caller, panics_total;

static void count_panic(const sluice_panic_info *info, void *user)
{
    (void)user;
    atomic_fetch_add(&panics_total, 1);
    if (info->caller_thread) {
        atomic_fetch_add(&panics_on_caller, 1);
    }
}

static int panicking_task(void *arg)
{
    (void)arg;
    sluice_panic("probe: task %d panics", 7);
}

static int nesting_task(void *arg)
{
    nested *n = arg;
    n->rc = sluice_pool_submit_batch(n->p, n->inner->specs, n->inner->n, false, &n->accepted);
    return 0;
}

static void test_batch_caller_runs_panics_and_nests(void **state)
{
    (void)state;
    enum { CAP = 4, N = 12 };
    for (size_t d = 0; d < NDISC; d++) {
        atomic_store(&panics_on_caller, 0);
        atomic_store(&panics_total, 0);
        probe *pr = probe_new(N);
        probe *in6 = probe_new(6);
        probe_fill(pr);
        probe_fill(in6);
        sluice_pool_config pc;
        sluice_pool_config_init(&pc);
        pc.name = "cr-nest";
        pc.workers = 1;
        pc.queue_capacity = CAP;
        pc.overflow = SLUICE_OVERFLOW_CALLER_RUNS;
        pc.queue_discipline = ring_disciplines[d];
        pc.abandon_handler = pool_abandon;
        pc.panic_handler = count_panic;
        pc.user = pr;
        sluice_pool *p = NULL;
        CREATE_POOL(&pc, &p);
        nested nest = {.p = p, .inner = in6, .rc = SLUICE_EINVAL};
        pr->specs[6] = (sluice_task_spec){.fn = panicking_task, .arg = NULL};
        pr->specs[8] = (sluice_task_spec){.fn = nesting_task, .arg = &nest};
        gate *g = gate_new();
        hold_worker(p, g);
        size_t acc = 0;
        assert_int_equal(sluice_pool_submit_batch(p, pr->specs, N, false, &acc), SLUICE_OK);
        assert_int_equal(acc, N);
        /* Tasks 4..11 ran here (6 panicked, 8 nested a batch whose tasks
         * all ran here too: the queue was still full). */
        assert_int_equal(atomic_load(&panics_on_caller), 1);
        assert_int_equal(nest.rc, SLUICE_OK);
        assert_int_equal(nest.accepted, 6);
        assert_int_equal(probe_ran(in6), 6);
        assert_int_equal(atomic_load(&in6->on_caller), 6);
        sluice_pool_stats st = stats_now(p);
        assert_int_equal(st.panicked, 1);
        assert_int_equal(st.caller_ran, (N - CAP) + 6);
        gate_open(g);
        WAIT_FOR(probe_ran(pr) == N - 2, "the others ran");
        ASSERT_IDENTITY(p);
        st = stats_now(p);
        assert_int_equal(st.submitted, 1 + N + 6);
        assert_int_equal(st.panicked, 1);
        assert_int_equal(atomic_load(&panics_total), 1);
        for (size_t i = 0; i < N; i++) {
            assert_int_equal(atomic_load(&pr->runs[i]), (i == 6 || i == 8) ? 0u : 1u);
        }
        sluice_pool_destroy(p);
        gate_free(g);
        probe_free(pr);
        probe_free(in6);
    }
}

/* The scrape's sums while tenants come and go in every way at once:
 * batches of mixed tenants (new names, forgotten at the next look, a
 * tenant at its queued_limit with DROP_OLDEST, the pool's own
 * DROP_OLDEST), and another thread setting, unsetting and re-defaulting
 * tenants. Each select's found tenants plus rest never go down, the
 * forgotten record never goes down, and once the pool settles rest is
 * the pool's totals exactly. Run it under TSan. */
typedef struct mixer {
    sluice_pool *p;
    int id, rounds;
    _Atomic int *finished;
    _Atomic unsigned long bad;
} mixer;

static void *mix_producer(void *arg)
{
    mixer *m = arg;
    char names[16][24];
    sluice_submit_opts opts[16];
    sluice_task_spec specs[16];
    for (int r = 0; r < m->rounds; r++) {
        for (int i = 0; i < 16; i++) {
            if (i % 5 == 0) {
                snprintf(names[i], sizeof names[i], "gold");
            } else {
                snprintf(names[i], sizeof names[i], "p%d-%d", m->id, (r * 16 + i) % 37);
            }
            opts[i] = (sluice_submit_opts){.tenant_name = i % 7 == 3 ? NULL : names[i]};
            specs[i] = (sluice_task_spec){.fn = task_nop, .arg = NULL, .opts = &opts[i]};
        }
        size_t acc = 0;
        sluice_err rc = sluice_pool_submit_batch(m->p, specs, 16, r % 2 == 0, &acc);
        if (rc != SLUICE_OK && rc != SLUICE_EFULL) {
            atomic_fetch_add(&m->bad, 1);
        }
    }
    atomic_fetch_add(m->finished, 1);
    return NULL;
}

static void *mix_setter(void *arg)
{
    mixer *m = arg;
    char err[256];
    for (int r = 0; atomic_load(m->finished) < 2; r++) {
        sluice_tenant_config gold = {.queued_limit = 2, .overflow = SLUICE_TENANT_OVERFLOW_DROP_OLDEST};
        sluice_tenant_config dflt = {.weight = 1u + (unsigned)(r % 3)};
        sluice_err a = sluice_pool_tenant_set(m->p, "gold", &gold, err, sizeof err);
        sluice_err b = sluice_pool_tenant_default_set(m->p, &dflt, err, sizeof err);
        sluice_err c = sluice_pool_tenant_unset(m->p, "gold", err, sizeof err);
        if (a != SLUICE_OK || b != SLUICE_OK || c != SLUICE_OK) {
            atomic_fetch_add(&m->bad, 1);
        }
        sched_yield();
    }
    return NULL;
}

static void test_scrape_while_tenants_churn(void **state)
{
    (void)state;
    sluice_pool_config pc;
    sluice_pool_config_init(&pc);
    pc.name = "churn";
    pc.workers = 2;
    pc.queue_capacity = 32;
    pc.overflow = SLUICE_OVERFLOW_DROP_OLDEST;
    pc.queue_discipline = SLUICE_QUEUE_FAIR;
    pc.fair.max_tenants = 24; /* the rest go to shard queues */
    pc.fair.shard_queues = 4;
    pc.fair.hand_size = 2;
    pc.fair.idle_forget_ns = 1; /* forgotten at the next look */
    sluice_pool *p = NULL;
    CREATE_POOL(&pc, &p);
    _Atomic int finished;
    atomic_init(&finished, 0);
    int rounds = (under_sanitizer() ? 150 : 1500) * (int)stress_scale();
    mixer m[3] = {{.p = p, .id = 0, .rounds = rounds, .finished = &finished},
                  {.p = p, .id = 1, .rounds = rounds, .finished = &finished},
                  {.p = p, .id = 2, .finished = &finished}};
    pthread_t th[3];
    START_THREAD(&th[0], mix_producer, &m[0]);
    START_THREAD(&th[1], mix_producer, &m[1]);
    START_THREAD(&th[2], mix_setter, &m[2]);
    uint64_t prev_sub = 0, prev_done = 0, prev_dropped = 0, prev_forgotten = 0;
    sluice_tenant_rank r[6];
    sluice_tenant_stats out[7];
    const char *names[7];
    size_t scrapes = 0;
    for (bool last = false; !last; scrapes++) {
        last = atomic_load(&finished) == 2;
        size_t nr = 0;
        assert_int_equal(
            sluice_pool_tenants_top(p, scrapes % 2 ? SLUICE_TENANT_BY_LOAD : SLUICE_TENANT_BY_TRAFFIC, r,
                                    scrapes % 7, &nr),
            SLUICE_OK);
        for (size_t i = 0; i < nr; i++) {
            names[i] = r[i].name;
        }
        names[nr] = "gold";
        sluice_tenant_selection sel;
        assert_int_equal(sluice_pool_tenants_select(p, names, nr + 1, out, &sel), SLUICE_OK);
        uint64_t sub = sel.rest.submitted, done = sel.rest.completed, dropped = sel.rest.dropped;
        for (size_t i = 0; i < nr + 1; i++) {
            bool dup = false;
            for (size_t j = 0; j < i; j++) {
                dup |= strcmp(names[j], names[i]) == 0 && out[j].incarnation == out[i].incarnation;
            }
            if (out[i].incarnation != 0 && !dup) {
                sub += out[i].submitted;
                done += out[i].completed;
                dropped += out[i].dropped;
            }
        }
        if (sub < prev_sub || done < prev_done || dropped < prev_dropped ||
            sel.forgotten.submitted < prev_forgotten) {
            fail_msg(
                "scrape %zu went down: submitted %llu < %llu, completed %llu < %llu, dropped %llu < %llu, "
                "forgotten %llu < %llu",
                scrapes, (unsigned long long)sub, (unsigned long long)prev_sub, (unsigned long long)done,
                (unsigned long long)prev_done, (unsigned long long)dropped, (unsigned long long)prev_dropped,
                (unsigned long long)sel.forgotten.submitted, (unsigned long long)prev_forgotten);
        }
        prev_sub = sub;
        prev_done = done;
        prev_dropped = dropped;
        prev_forgotten = sel.forgotten.submitted;
    }
    for (int i = 0; i < 3; i++) {
        pthread_join(th[i], NULL);
        assert_int_equal(atomic_load(&m[i].bad), 0);
    }
    assert_tenants_add_up(p);
    size_t none = 0;
    assert_int_equal(sluice_pool_tenants_top(p, SLUICE_TENANT_BY_TRAFFIC, NULL, 0, &none),
                     SLUICE_OK); /* a sweep */
    assert_tenants_add_up(p);
    sluice_tenant_selection sel;
    assert_int_equal(sluice_pool_tenants_select(p, NULL, 0, NULL, &sel), SLUICE_OK);
    assert_true(sel.forgotten.submitted > 0); /* every idle tenant not configured was forgotten */
    assert_true(scrapes > 1);
    sluice_pool_destroy(p);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_batch_arguments),
        cmocka_unit_test(test_batch_huge_in_order),
        cmocka_unit_test(test_batch_policies_at_fill),
        cmocka_unit_test(test_batch_closed_pool),
        cmocka_unit_test(test_batch_deadlines),
        cmocka_unit_test(test_batch_fair_mixed),
        cmocka_unit_test(test_batch_fair_policies),
        cmocka_unit_test(test_top_select_extremes),
        cmocka_unit_test(test_resize_extremes_during_batches),
        cmocka_unit_test(test_batch_n_max),
        cmocka_unit_test(test_batch_from_own_worker),
        cmocka_unit_test(test_batch_wakes_parked),
        cmocka_unit_test(test_batch_sharded_capacity),
        cmocka_unit_test(test_batch_caller_runs_sheds),
        cmocka_unit_test(test_hwm_every_task_sampled),
        cmocka_unit_test(test_select_tenants_count),
        cmocka_unit_test(test_batch_caller_runs_panics_and_nests),
        cmocka_unit_test(test_scrape_while_tenants_churn),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
