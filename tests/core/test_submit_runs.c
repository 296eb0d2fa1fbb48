/*
 * tests/core/test_submit_runs.c - sluice_pool_submit_batch's runs: on FIFO
 * and fifo_batch pools consecutive tasks are queued up to 32 at a time with
 * one claim of the queue's places (pool.c push_run, queue_ring.c
 * ring_push_n), and the batch falls back to single submits where a run
 * stops. pool.h promises the batch behaves "as if by sluice_pool_submit
 * each ... stopping at the first refusal"; these tests hold it to that at
 * the run's edges: order, a queue that fills part-way through a run (at
 * and across the 32-task boundary), a capacity-1 queue (the one-slot
 * ring), a task the run cannot take (NULL fn, a tenant in a FIFO pool) in
 * the middle, deadlines and contexts (cancelled, and those of tasks a run
 * leaves out), one run waking K parked workers, CALLER_RUNS and
 * DROP_OLDEST where a run stops, destroy releasing a blocked batch, and
 * many producers racing a drain with every task accounted for once.
 *
 * Every test runs on both disciplines that have runs (fifo and
 * fifo_batch). Workers are held at a gate where the queue's fill must be
 * known; nothing waits on time.
 */
#include "common/pool.h"

#include <stdlib.h>

static const sluice_queue_discipline disciplines[] = {SLUICE_QUEUE_FIFO, SLUICE_QUEUE_FIFO_BATCH};
#define NDISC (sizeof disciplines / sizeof disciplines[0])

/* Each task records its index: how often it ran, and in which order. */
typedef struct rec {
    _Atomic uint32_t *ran; /* per index */
    uint32_t *order;       /* K = 1 pools: the indexes in the order they ran */
    _Atomic uint32_t next;
} rec;

typedef struct slot {
    rec *r;
    uint32_t i;
} slot;

static int task_rec(void *arg)
{
    slot *s = arg;
    atomic_fetch_add(&s->r->ran[s->i], 1);
    uint32_t at = atomic_fetch_add(&s->r->next, 1);
    if (s->r->order) {
        s->r->order[at] = s->i;
    }
    return 0;
}

static rec *rec_new(uint32_t n, bool order)
{
    rec *r = calloc(1, sizeof *r);
    assert_non_null(r);
    r->ran = calloc(n, sizeof *r->ran);
    assert_non_null(r->ran);
    if (order) {
        r->order = calloc(n, sizeof *r->order);
        assert_non_null(r->order);
    }
    return r;
}

static void rec_free(rec *r)
{
    free(r->ran);
    free(r->order);
    free(r);
}

/* What most tests here set up: a tally, a gate, n recording tasks
 * (specs[i] runs task_rec on slots[i]) and, once bed_pool or the test
 * makes it, a pool; bed_close frees what is there. */
typedef struct bed {
    tally *t;
    gate *g;
    rec *r;
    sluice_task_spec *specs;
    slot *slots;
    sluice_pool *p;
} bed;

static void bed_open(bed *b, uint32_t n, bool order)
{
    *b = (bed){.t = tally_new(), .g = gate_new(), .r = rec_new(n, order)};
    b->specs = calloc(n, sizeof *b->specs);
    b->slots = calloc(n, sizeof *b->slots);
    assert_non_null(b->specs);
    assert_non_null(b->slots);
    for (uint32_t i = 0; i < n; i++) {
        b->slots[i] = (slot){.r = b->r, .i = i};
        b->specs[i] = (sluice_task_spec){.fn = task_rec, .arg = &b->slots[i]};
    }
}

/* A pool of discipline d, every handler wired to the bed's tally. */
static void bed_pool(bed *b, sluice_queue_discipline d, const char *name, unsigned k, size_t cap)
{
    sluice_pool_config cfg;
    base_config(&cfg, name, k, cap, b->t);
    cfg.queue_discipline = d;
    CREATE_POOL(&cfg, &b->p);
}

static void bed_close(bed *b)
{
    sluice_pool_destroy(b->p);
    rec_free(b->r);
    free(b->specs);
    free(b->slots);
    gate_free(b->g);
    tally_free(b->t);
}

static void hold_workers(sluice_pool *p, gate *g, unsigned k)
{
    for (unsigned i = 0; i < k; i++) {
        assert_int_equal(sluice_pool_submit(p, task_gate, g), SLUICE_OK);
    }
    WAIT_FOR(atomic_load(&g->inside) == (int)k, "%u workers at the gate", k);
    WAIT_FOR(stats_now(p).queue_depth == 0, "gate tasks taken");
}

/* K = 1: a batch of many runs runs in exactly the order given, once each,
 * whether the worker is held (the whole batch queued first) or free. */
static void test_order_across_runs(void **state)
{
    (void)state;
    enum { N = 1000 };
    for (size_t d = 0; d < NDISC; d++) {
        for (int held = 0; held < 2; held++) {
            bed b;
            bed_open(&b, N, true);
            bed_pool(&b, disciplines[d], "order", 1, 4096);
            if (held) {
                hold_workers(b.p, b.g, 1);
            }
            size_t acc = 0;
            assert_int_equal(sluice_pool_submit_batch(b.p, b.specs, N, false, &acc), SLUICE_OK);
            assert_int_equal(acc, N);
            if (held) {
                assert_int_equal(stats_now(b.p).queue_depth, N);
                gate_open(b.g);
            }
            ASSERT_IDENTITY(b.p);
            assert_int_equal(atomic_load(&b.r->next), N);
            for (uint32_t i = 0; i < N; i++) {
                assert_int_equal(atomic_load(&b.r->ran[i]), 1);
                assert_int_equal(b.r->order[i], i);
            }
            assert_int_equal(stats_now(b.p).submitted, N + (unsigned)held);
            bed_close(&b);
        }
    }
}

/* A non-blocking batch into a held queue stops exactly where the queue is
 * full: inside the first run, at the run boundary, and inside a later run;
 * the tasks after it are the caller's and never run. */
static void test_full_part_way(void **state)
{
    (void)state;
    enum { N = 300 };
    const size_t room[] = {1, 2, 5, 31, 32, 33, 63, 64, 65, 130, 200};
    for (size_t d = 0; d < NDISC; d++) {
        for (size_t c = 0; c < sizeof room / sizeof room[0]; c++) {
            bed b;
            bed_open(&b, N, false);
            bed_pool(&b, disciplines[d], "full", 1, 256);
            hold_workers(b.p, b.g, 1);
            /* Leave exactly room[c] places free. */
            for (size_t i = 0; i < 256 - room[c]; i++) {
                assert_int_equal(sluice_pool_try_submit(b.p, task_count, b.t), SLUICE_OK);
            }
            size_t acc = 999;
            assert_int_equal(sluice_pool_submit_batch(b.p, b.specs, N, true, &acc), SLUICE_EFULL);
            assert_int_equal(acc, room[c]);
            sluice_pool_stats s = stats_now(b.p);
            assert_int_equal(s.queue_depth, 256);
            assert_int_equal(s.rejected, 1);
            gate_open(b.g);
            ASSERT_IDENTITY(b.p);
            for (uint32_t i = 0; i < N; i++) {
                assert_int_equal(atomic_load(&b.r->ran[i]), i < room[c] ? 1 : 0);
            }
            bed_close(&b);
        }
    }
}

/* A blocking batch far larger than the queue, with capacities from the
 * one-slot ring up: everything is accepted and runs once, in order. */
static void test_blocking_larger_than_queue(void **state)
{
    (void)state;
    enum { N = 2000 };
    const size_t caps[] = {1, 2, 3, 31, 32, 33, 64, 100};
    for (size_t d = 0; d < NDISC; d++) {
        for (size_t c = 0; c < sizeof caps / sizeof caps[0]; c++) {
            bed b;
            bed_open(&b, N, true);
            bed_pool(&b, disciplines[d], "block", 1, caps[c]);
            size_t acc = 0;
            assert_int_equal(sluice_pool_submit_batch(b.p, b.specs, N, false, &acc), SLUICE_OK);
            assert_int_equal(acc, N);
            ASSERT_IDENTITY(b.p);
            sluice_pool_stats s = stats_now(b.p);
            assert_true(s.queue_depth_hwm <= caps[c]);
            for (uint32_t i = 0; i < N; i++) {
                assert_int_equal(atomic_load(&b.r->ran[i]), 1);
                assert_int_equal(b.r->order[i], i);
            }
            bed_close(&b);
        }
    }
}

/* A task a run cannot take, in the middle of a run: a NULL fn (EINVAL)
 * and a tenant in a FIFO pool (ENOTSUP). The ones before it are accepted
 * and run; it and the ones after it are not. */
static void test_refusal_mid_run(void **state)
{
    (void)state;
    enum { N = 200 };
    const uint32_t at[] = {0, 1, 31, 32, 33, 100};
    sluice_submit_opts tenant_opts = {.tenant_name = "gold"};
    for (size_t d = 0; d < NDISC; d++) {
        for (size_t a = 0; a < sizeof at / sizeof at[0]; a++) {
            for (int kind = 0; kind < 2; kind++) {
                bed b;
                bed_open(&b, N, false);
                bed_pool(&b, disciplines[d], "midrun", 2, 512);
                if (kind == 0) {
                    b.specs[at[a]].fn = NULL;
                } else {
                    b.specs[at[a]].opts = &tenant_opts;
                }
                size_t acc = 999;
                assert_int_equal(sluice_pool_submit_batch(b.p, b.specs, N, false, &acc),
                                 kind == 0 ? SLUICE_EINVAL : SLUICE_ENOTSUP);
                assert_int_equal(acc, at[a]);
                ASSERT_IDENTITY(b.p);
                for (uint32_t i = 0; i < N; i++) {
                    assert_int_equal(atomic_load(&b.r->ran[i]), i < at[a] ? 1 : 0);
                }
                assert_int_equal(stats_now(b.p).submitted, at[a]);
                bed_close(&b);
            }
        }
    }
}

/* Options travel with each task of a run: a past deadline is shed, a
 * cancelled context's task is handed back, the others run; contexts of
 * tasks a run left out (queue full) are released (ASan's leak check sees
 * a reference kept). */
static void test_options_in_runs(void **state)
{
    (void)state;
    enum { N = 150 };
    for (size_t d = 0; d < NDISC; d++) {
        bed b;
        bed_open(&b, N, false);
        bed_pool(&b, disciplines[d], "opts", 1, 100);
        sluice_ctx *ctx;
        assert_int_equal(sluice_ctx_create(&ctx, NULL, 0, NULL), SLUICE_OK);
        sluice_ctx *gone;
        assert_int_equal(sluice_ctx_create(&gone, NULL, 0, NULL), SLUICE_OK);
        sluice_ctx_cancel(gone, SLUICE_ECANCELED);
        sluice_submit_opts past = {.deadline_ns = 1, .label = "late"};
        sluice_submit_opts with_ctx = {.ctx = ctx, .label = "ctx"};
        sluice_submit_opts cancelled = {.ctx = gone, .label = "cancelled"};
        for (uint32_t i = 0; i < N; i++) {
            b.specs[i].opts = i % 10 == 3 ? &past : i % 10 == 7 ? &cancelled : &with_ctx;
        }
        hold_workers(b.p, b.g, 1);
        size_t acc = 0;
        assert_int_equal(sluice_pool_submit_batch(b.p, b.specs, N, true, &acc), SLUICE_EFULL);
        assert_int_equal(acc, 100);
        gate_open(b.g);
        ASSERT_IDENTITY(b.p);
        sluice_pool_stats s = stats_now(b.p);
        assert_int_equal(s.shed, 20); /* i % 10 == 3 or 7, below 100 */
        assert_int_equal(atomic_load(&b.t->abandoned_by[SLUICE_ABANDON_SHED]), 20);
        for (uint32_t i = 0; i < N; i++) {
            assert_int_equal(atomic_load(&b.r->ran[i]), i < 100 && i % 10 != 3 && i % 10 != 7 ? 1 : 0);
        }
        bed_close(&b);
        sluice_ctx_release(ctx); /* the last references: ASan reports any the pool kept */
        sluice_ctx_release(gone);
    }
}

/* One run of K tasks wakes K parked workers: K gate tasks submitted as
 * one batch all reach the gate together. */
static void test_run_wakes_parked_workers(void **state)
{
    (void)state;
    enum { K = 4 };
    for (size_t d = 0; d < NDISC; d++) {
        bed b;
        bed_open(&b, K, false);
        sluice_pool_config cfg;
        base_config(&cfg, "wake", K, 64, b.t);
        cfg.queue_discipline = disciplines[d];
        cfg.min_workers = K;
        cfg.prewarm = true;
        CREATE_POOL(&cfg, &b.p);
        WAIT_FOR(stats_now(b.p).idle == K, "%d workers parked", K);
        for (int i = 0; i < K; i++) {
            b.specs[i] = (sluice_task_spec){.fn = task_gate, .arg = b.g};
        }
        size_t acc = 0;
        assert_int_equal(sluice_pool_submit_batch(b.p, b.specs, K, false, &acc), SLUICE_OK);
        assert_int_equal(acc, K);
        WAIT_FOR(atomic_load(&b.g->inside) == K, "all %d gate tasks running at once", K);
        gate_open(b.g);
        ASSERT_IDENTITY(b.p);
        bed_close(&b);
    }
}

/* CALLER_RUNS and DROP_OLDEST where a run meets a full queue: the tasks
 * that do not fit are run by the caller, or push out the oldest, exactly
 * as single submits would; every task is accepted. */
static void test_policies_where_runs_stop(void **state)
{
    (void)state;
    enum { N = 150, CAP = 100 };
    const sluice_overflow pol[] = {SLUICE_OVERFLOW_CALLER_RUNS, SLUICE_OVERFLOW_DROP_OLDEST};
    for (size_t d = 0; d < NDISC; d++) {
        for (size_t q = 0; q < 2; q++) {
            bed b;
            bed_open(&b, N, false);
            sluice_pool_config cfg;
            base_config(&cfg, "policy", 1, CAP, b.t);
            cfg.queue_discipline = disciplines[d];
            cfg.overflow = pol[q];
            CREATE_POOL(&cfg, &b.p);
            hold_workers(b.p, b.g, 1);
            size_t acc = 0;
            assert_int_equal(sluice_pool_submit_batch(b.p, b.specs, N, false, &acc), SLUICE_OK);
            assert_int_equal(acc, N);
            sluice_pool_stats s = stats_now(b.p);
            assert_int_equal(s.queue_depth, CAP);
            if (pol[q] == SLUICE_OVERFLOW_CALLER_RUNS) {
                /* The 50 that did not fit ran here, before the batch returned. */
                assert_int_equal(s.caller_ran, N - CAP);
                for (uint32_t i = CAP; i < N; i++) {
                    assert_int_equal(atomic_load(&b.r->ran[i]), 1);
                }
            } else {
                /* Each of the 50 pushed out the oldest: tasks 0..49. */
                assert_int_equal(s.dropped, N - CAP);
                assert_int_equal(atomic_load(&b.t->abandoned_by[SLUICE_ABANDON_DROPPED]), N - CAP);
            }
            gate_open(b.g);
            ASSERT_IDENTITY(b.p);
            for (uint32_t i = 0; i < N; i++) {
                bool dropped = pol[q] == SLUICE_OVERFLOW_DROP_OLDEST && i < N - CAP;
                assert_int_equal(atomic_load(&b.r->ran[i]), dropped ? 0 : 1);
            }
            bed_close(&b);
        }
    }
}

/* A blocking batch waiting for space is released by destroy with
 * ECLOSED and touches nothing of the pool after (pool.h: calls blocked
 * inside submit are released safely; under ASan a late touch is a
 * use-after-free). Also on the sharded queue, whose batches go task by
 * task with their wake-ups deferred. */
typedef struct blocked_batch {
    sluice_pool *p;
    sluice_task_spec *specs;
    size_t n, acc;
    sluice_err err;
} blocked_batch;

static void *run_blocked_batch(void *arg)
{
    blocked_batch *b = arg;
    b->err = sluice_pool_submit_batch(b->p, b->specs, b->n, false, &b->acc);
    return NULL;
}

static void test_destroy_releases_blocked_batch(void **state)
{
    (void)state;
    enum { N = 100, CAP = 8 };
    const sluice_queue_discipline ds[] = {SLUICE_QUEUE_FIFO, SLUICE_QUEUE_FIFO_BATCH, SLUICE_QUEUE_SHARDED};
    for (size_t d = 0; d < 3; d++) {
        bed b;
        bed_open(&b, N, false);
        bed_pool(&b, ds[d], "destroy", 1, CAP);
        hold_workers(b.p, b.g, 1);
        blocked_batch bb = {.p = b.p, .specs = b.specs, .n = N};
        pthread_t th;
        START_THREAD(&th, run_blocked_batch, &bb);
        WAIT_FOR(stats_now(b.p).waiting == 1, "the batch blocked for space (%s)",
                 sluice_queue_discipline_name(ds[d]));
        sluice_pool_destroy(b.p); /* the held gate task sees should_stop */
        b.p = NULL;
        pthread_join(th, NULL);
        assert_int_equal(bb.err, SLUICE_ECLOSED);
        assert_int_equal(bb.acc, CAP);
        /* The CAP accepted tasks were handed back by destroy, none ran. */
        assert_int_equal(atomic_load(&b.t->abandoned_by[SLUICE_ABANDON_DESTROY]), CAP);
        for (uint32_t i = 0; i < N; i++) {
            assert_int_equal(atomic_load(&b.r->ran[i]), 0);
        }
        bed_close(&b);
    }
}

/* Many producers submit batches of random sizes (blocking and not) into
 * small queues while the pool is drained at a random moment: every task
 * a batch reports accepted runs or is handed back exactly once, and no
 * task it did not accept is ever seen. */
typedef struct producer {
    sluice_pool *p;
    rec *r;
    slot *slots;
    uint32_t first, n;         /* this producer's indexes */
    _Atomic uint8_t *accepted; /* per index */
    unsigned seed;
    _Atomic int bad; /* a result the batch must not give (cmocka asserts only on the test's thread) */
} producer;

static void *produce(void *arg)
{
    producer *pr = arg;
    uint32_t i = pr->first, end = pr->first + pr->n;
    sluice_task_spec specs[300];
    while (i < end) {
        uint32_t m = 1 + (uint32_t)(rand_r(&pr->seed) % 300);
        if (m > end - i) {
            m = end - i;
        }
        for (uint32_t j = 0; j < m; j++) {
            specs[j] = (sluice_task_spec){.fn = task_rec, .arg = &pr->slots[i + j]};
        }
        bool nonblocking = rand_r(&pr->seed) % 2;
        size_t acc = 0;
        sluice_err e = sluice_pool_submit_batch(pr->p, specs, m, nonblocking, &acc);
        if (acc > m) {
            atomic_store(&pr->bad, 1);
            break;
        }
        for (size_t j = 0; j < acc; j++) {
            atomic_store(&pr->accepted[i + j], 1);
        }
        if (e == SLUICE_ECLOSED) {
            break;
        }
        if (!(e == SLUICE_OK || (e == SLUICE_EFULL && nonblocking))) {
            atomic_store(&pr->bad, 2 + (int)e);
            break;
        }
        i += (uint32_t)acc + (e == SLUICE_EFULL); /* a refused task is skipped for good */
    }
    return NULL;
}

static void abandon_rec(const sluice_abandoned *a, void *user)
{
    (void)user;
    if (a->fn == task_rec) {
        slot *s = a->arg;
        atomic_fetch_add(&s->r->ran[s->i], 1);
    }
}

static void test_producers_race_drain(void **state)
{
    (void)state;
    enum { P = 4, PER = 20000 };
    const uint32_t n = P * PER * stress_scale();
    const uint32_t per = n / P;
    for (size_t d = 0; d < NDISC; d++) {
        for (int round = 0; round < 4; round++) {
            sluice_pool_config cfg;
            sluice_pool_config_init(&cfg);
            cfg.name = "race";
            cfg.workers = 1 + (unsigned)round % 3;
            cfg.queue_capacity = round % 2 ? 64 : 1000;
            cfg.queue_discipline = disciplines[d];
            cfg.abandon_handler = abandon_rec;
            sluice_pool *p;
            CREATE_POOL(&cfg, &p);
            rec *r = rec_new(n, false);
            slot *slots = calloc(n, sizeof *slots);
            _Atomic uint8_t *accepted = calloc(n, sizeof *accepted);
            assert_non_null(slots);
            assert_non_null(accepted);
            for (uint32_t i = 0; i < n; i++) {
                slots[i] = (slot){.r = r, .i = i};
            }
            producer pr[P];
            pthread_t th[P];
            for (unsigned i = 0; i < P; i++) {
                pr[i] = (producer){.p = p,
                                   .r = r,
                                   .slots = slots,
                                   .first = i * per,
                                   .n = per,
                                   .accepted = accepted,
                                   .seed = 77u * (unsigned)round + i + 1};
                START_THREAD(&th[i], produce, &pr[i]);
            }
            /* Drain once a random share of the tasks has gone in. */
            uint32_t share = n / 8 + (uint32_t)round * (n / 8);
            WAIT_FOR(stats_now(p).submitted >= share || stats_now(p).submitted + stats_now(p).rejected >= n,
                     "%u tasks submitted", share);
            sluice_drain_report rep;
            sluice_err de = sluice_pool_drain(p, round == 3 ? 1 : 0, &rep);
            assert_true(de == SLUICE_OK || de == SLUICE_ETIMEDOUT);
            for (unsigned i = 0; i < P; i++) {
                pthread_join(th[i], NULL);
                assert_int_equal(atomic_load(&pr[i].bad), 0);
            }
            sluice_pool_destroy(p);
            uint64_t acc_n = 0;
            for (uint32_t i = 0; i < n; i++) {
                uint32_t seen = atomic_load(&r->ran[i]);
                if (atomic_load(&accepted[i])) {
                    acc_n++;
                    if (seen != 1) {
                        fail_msg("%s round %d: accepted task %u seen %u times",
                                 sluice_queue_discipline_name(disciplines[d]), round, i, seen);
                    }
                } else if (seen != 0) {
                    fail_msg("%s round %d: task %u was not accepted but seen %u times",
                             sluice_queue_discipline_name(disciplines[d]), round, i, seen);
                }
            }
            assert_true(acc_n >= share);
            rec_free(r);
            free(slots);
            free(accepted);
        }
    }
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_order_across_runs),
        cmocka_unit_test(test_full_part_way),
        cmocka_unit_test(test_blocking_larger_than_queue),
        cmocka_unit_test(test_refusal_mid_run),
        cmocka_unit_test(test_options_in_runs),
        cmocka_unit_test(test_run_wakes_parked_workers),
        cmocka_unit_test(test_policies_where_runs_stop),
        cmocka_unit_test(test_destroy_releases_blocked_batch),
        cmocka_unit_test(test_producers_race_drain),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
