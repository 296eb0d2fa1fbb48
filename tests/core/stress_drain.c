/*
 * tests/core/stress_drain.c - drain in the middle of a submit storm, round
 * after round: producers submit (blocking, try, batch) until they are told
 * SLUICE_ECLOSED; the main thread drains with a short deadline while they
 * run. Every accepted task must end exactly once: run, or handed back
 * with SLUICE_ABANDON_DRAIN (the report's handed_back), and the identity
 * must hold once the pool is quiescent.
 */
#include "common/pool.h"

typedef struct shared {
    sluice_pool *p;
    _Atomic uint64_t ran;
    _Atomic uint64_t accepted;
    _Atomic uint64_t refused_after_close;
    _Atomic uint64_t refused_other;
    unsigned spin;
} shared;

static int task_work(void *arg)
{
    shared *sh = arg;
    for (volatile unsigned i = 0; i < sh->spin; i++) {
    }
    atomic_fetch_add(&sh->ran, 1);
    return 0;
}

static void *producer_main(void *arg)
{
    shared *sh = arg;
    for (unsigned i = 0;; i++) {
        sluice_err rc;
        if (i % 7 == 0) {
            sluice_task_spec specs[4];
            for (int j = 0; j < 4; j++) {
                specs[j] = (sluice_task_spec){.fn = task_work, .arg = sh};
            }
            size_t acc = 0;
            rc = sluice_pool_submit_batch(sh->p, specs, 4, false, &acc);
            atomic_fetch_add(&sh->accepted, acc);
        } else {
            rc = i % 3 ? sluice_pool_submit(sh->p, task_work, sh)
                       : sluice_pool_try_submit(sh->p, task_work, sh);
            if (rc == SLUICE_OK) {
                atomic_fetch_add(&sh->accepted, 1);
            }
        }
        if (rc == SLUICE_ECLOSED) {
            atomic_fetch_add(&sh->refused_after_close, 1);
            return NULL;
        }
        if (rc != SLUICE_OK && rc != SLUICE_EFULL) { /* EFULL: try_submit into a full queue */
            atomic_fetch_add(&sh->refused_other, 1);
        }
    }
}

static void test_drain_mid_storm(void **state)
{
    (void)state;
    unsigned rounds = 60 * stress_scale() / (under_sanitizer() ? 4 : 1);
    for (unsigned round = 0; round < rounds; round++) {
        tally *t = tally_new();
        shared *sh = calloc(1, sizeof *sh);
        sh->spin = 200 + 50 * (round % 5);
        sluice_pool_config cfg;
        base_config(&cfg, "stress-drain", 1 + round % 4, 32, t);
        with_hooks(&cfg);
        CREATE_POOL(&cfg, &sh->p);
        pthread_t th[6];
        for (int i = 0; i < 6; i++) {
            START_THREAD(&th[i], producer_main, sh);
        }
        uint64_t want = 2000 + 500 * (round % 4);
        WAIT_FOR(atomic_load(&sh->accepted) >= want, "producers to get going");
        sluice_drain_report rep;
        /* Every other round with a deadline short enough to hand some back. */
        uint64_t timeout = round % 2 ? 200 * SLUICE_NS_PER_US : 0;
        sluice_err rc = sluice_pool_drain(sh->p, timeout, &rep);
        for (int i = 0; i < 6; i++) {
            pthread_join(th[i], NULL);
        }
        assert_true(rc == SLUICE_OK || rc == SLUICE_ETIMEDOUT);
        assert_int_equal(atomic_load(&sh->refused_after_close), 6);
        assert_int_equal(atomic_load(&sh->refused_other), 0);
        ASSERT_IDENTITY(sh->p);
        sluice_pool_stats s = stats_now(sh->p);
        uint64_t accepted = atomic_load(&sh->accepted);
        assert_int_equal(s.submitted, accepted);
        assert_int_equal(s.completed, atomic_load(&sh->ran));
        assert_int_equal(s.abandoned, atomic_load(&t->abandoned_by[SLUICE_ABANDON_DRAIN]));
        assert_int_equal(s.abandoned, rep.handed_back);
        assert_int_equal(atomic_load(&sh->ran) + atomic_load(&t->abandoned_total), accepted);
        if (rc == SLUICE_OK) {
            assert_int_equal(rep.handed_back, 0);
            assert_false(rep.timed_out);
        } else {
            assert_true(rep.timed_out);
        }
        sluice_pool_destroy(sh->p);
        assert_int_equal(atomic_load(&t->abandoned_total), rep.handed_back); /* nothing left for destroy */
        assert_int_equal(atomic_load(&t->finis), atomic_load(&t->inits));
        free(sh);
        tally_free(t);
    }
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_drain_mid_storm),
    };
    return cmocka_run_group_tests_name("core_stress_drain", tests, NULL, NULL);
}
