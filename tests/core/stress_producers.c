/*
 * tests/core/stress_producers.c - many producers, every submit flavour,
 * every overflow policy, tasks that succeed, fail and panic, deadlines
 * that shed. Afterwards the pool's counters must agree exactly with what
 * the producers and the handlers saw, and the accounting identity must
 * hold:
 *     submitted = completed + failed + panicked + dropped + shed + abandoned
 *
 * Sized by SLUICE_STRESS_SCALE (1 = a few seconds in CI; sanitizer builds
 * do a fifth of the work).
 */
#include "common/pool.h"

typedef struct work {
    _Atomic uint64_t ok, fail, panic; /* bodies entered, by kind */
} work;

static int task_ok(void *arg)
{
    atomic_fetch_add(&((work *)arg)->ok, 1);
    return 0;
}

static int task_fail(void *arg)
{
    atomic_fetch_add(&((work *)arg)->fail, 1);
    return 3;
}

static int task_panic(void *arg)
{
    atomic_fetch_add(&((work *)arg)->panic, 1);
    sluice_panic("stress panic");
}

typedef struct producer {
    sluice_pool *p;
    work *w;
    unsigned n;
    unsigned seed;
    uint64_t accepted, refused_counted, closed;
} producer;

static sluice_task_fn pick(unsigned r)
{
    switch (r % 10) {
    case 0:
        return task_fail;
    case 1:
        return task_panic;
    default:
        return task_ok;
    }
}

static void *producer_main(void *arg)
{
    producer *pr = arg;
    unsigned seed = pr->seed;
    for (unsigned i = 0; i < pr->n;) {
        seed = seed * 1103515245u + 12345u;
        unsigned r = seed >> 8;
        sluice_err rc;
        switch (r % 5) {
        case 0:
            rc = sluice_pool_try_submit(pr->p, pick(r >> 4), pr->w);
            i++;
            break;
        case 1: {
            /* A deadline already past (shed) or far away. */
            sluice_submit_opts o = {.deadline_ns = (r >> 4) % 4 == 0 ? 1 : UINT64_MAX, .label = "stress"};
            rc = sluice_pool_submit_ex(pr->p, pick(r >> 6), pr->w, &o);
            i++;
            break;
        }
        case 2: {
            sluice_task_spec specs[8];
            for (int j = 0; j < 8; j++) {
                specs[j] = (sluice_task_spec){.fn = pick((r >> 4) + (unsigned)j), .arg = pr->w};
            }
            size_t acc = 0;
            rc = sluice_pool_submit_batch(pr->p, specs, 8, (r >> 4) % 2, &acc);
            pr->accepted += acc;
            i += 8;
            if (rc == SLUICE_OK) {
                continue;
            }
            break;
        }
        default:
            rc = sluice_pool_submit(pr->p, pick(r >> 4), pr->w);
            i++;
            break;
        }
        if (rc == SLUICE_OK) {
            if (r % 5 != 2) {
                pr->accepted++;
            }
        } else if (rc == SLUICE_ECLOSED) {
            pr->closed++;
        } else {
            pr->refused_counted++;
        }
    }
    return NULL;
}

static void run_policy(sluice_overflow policy, unsigned producers, unsigned per_producer)
{
    tally *t = tally_new();
    work *w = calloc(1, sizeof *w);
    sluice_pool_config cfg;
    base_config(&cfg, "stress-prod", 4, 64, t);
    with_hooks(&cfg);
    cfg.overflow = policy;
    cfg.submit_timeout_ns = 2 * SLUICE_NS_PER_MS; /* BLOCK: some time out */
    cfg.timing_sample_every = 7;
    sluice_pool *p;
    CREATE_POOL(&cfg, &p);
    pthread_t th[16];
    producer pr[16];
    for (unsigned i = 0; i < producers; i++) {
        pr[i] = (producer){.p = p, .w = w, .n = per_producer, .seed = 17 + i * 31};
        START_THREAD(&th[i], producer_main, &pr[i]);
    }
    uint64_t accepted = 0, refused = 0, closed = 0;
    for (unsigned i = 0; i < producers; i++) {
        pthread_join(th[i], NULL);
        accepted += pr[i].accepted;
        refused += pr[i].refused_counted;
        closed += pr[i].closed;
    }
    ASSERT_IDENTITY(p);
    sluice_pool_stats s = stats_now(p);
    stats_print(sluice_overflow_name(policy), &s);
    assert_int_equal(closed, 0);
    assert_int_equal(s.submitted, accepted);
    assert_int_equal(s.rejected, refused);
    assert_int_equal(s.completed, atomic_load(&w->ok));
    assert_int_equal(s.failed, atomic_load(&w->fail));
    assert_int_equal(s.panicked, atomic_load(&w->panic));
    assert_int_equal(s.panicked, atomic_load(&t->panics));
    assert_int_equal(s.dropped, atomic_load(&t->abandoned_by[SLUICE_ABANDON_DROPPED]));
    assert_int_equal(s.shed, atomic_load(&t->abandoned_by[SLUICE_ABANDON_SHED]));
    assert_int_equal(s.abandoned, 0);
    assert_int_equal(atomic_load(&t->abandon_bad), 0);
    assert_true(s.workers_hwm <= 4);
    if (policy == SLUICE_OVERFLOW_CALLER_RUNS || policy == SLUICE_OVERFLOW_DROP_OLDEST) {
        assert_int_equal(s.rejected, 0);
    }
    sluice_pool_destroy(p);
    assert_int_equal(atomic_load(&t->finis), atomic_load(&t->inits));
    assert_int_equal(atomic_load(&t->violations), 0);
    free(w);
    tally_free(t);
}

static unsigned per_producer(void)
{
    return 60000 * stress_scale() / (under_sanitizer() ? 8 : 1);
}

static void test_block(void **state)
{
    (void)state;
    run_policy(SLUICE_OVERFLOW_BLOCK, 8, per_producer());
}

static void test_reject(void **state)
{
    (void)state;
    run_policy(SLUICE_OVERFLOW_REJECT, 8, per_producer());
}

static void test_caller_runs(void **state)
{
    (void)state;
    run_policy(SLUICE_OVERFLOW_CALLER_RUNS, 8, per_producer());
}

static void test_drop_oldest(void **state)
{
    (void)state;
    run_policy(SLUICE_OVERFLOW_DROP_OLDEST, 8, per_producer());
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_block),
        cmocka_unit_test(test_reject),
        cmocka_unit_test(test_caller_runs),
        cmocka_unit_test(test_drop_oldest),
    };
    return cmocka_run_group_tests_name("core_stress_producers", tests, NULL, NULL);
}
