/*
 * tests/core/stress_destroy.c - destroy with blocked submitters, round
 * after round. Workers are held in tasks that stop when asked; the queue
 * is full; N submitters block; destroy runs while (in half of the rounds)
 * another thread opens the gate, so some submitters get in and some are
 * told SLUICE_ECLOSED. Every submitter makes exactly one call (no call may
 * start after destroy), and every accepted task either ran or was handed
 * back with SLUICE_ABANDON_DESTROY.
 */
#include "common/pool.h"

typedef struct round_state {
    sluice_pool *p;
    gate *g;
    _Atomic uint64_t ran;
    _Atomic uint64_t ok;
    _Atomic uint64_t closed;
    _Atomic uint64_t other;
} round_state;

static int task_run(void *arg)
{
    atomic_fetch_add(&((round_state *)arg)->ran, 1);
    return 0;
}

static int task_hold(void *arg)
{
    round_state *rs = arg;
    gate_pass(rs->g, true);
    atomic_fetch_add(&rs->ran, 1);
    return 0;
}

static void *submitter_main(void *arg)
{
    round_state *rs = arg;
    sluice_err rc = sluice_pool_submit(rs->p, task_run, rs);
    if (rc == SLUICE_OK) {
        atomic_fetch_add(&rs->ok, 1);
    } else if (rc == SLUICE_ECLOSED) {
        atomic_fetch_add(&rs->closed, 1);
    } else {
        atomic_fetch_add(&rs->other, 1);
    }
    return NULL;
}

static void *opener_main(void *arg)
{
    gate_open((gate *)arg);
    return NULL;
}

static void test_destroy_with_blocked_submitters(void **state)
{
    (void)state;
    int threads_before = thread_baseline();
    unsigned rounds = 100 * stress_scale() / (under_sanitizer() ? 4 : 1);
    for (unsigned round = 0; round < rounds; round++) {
        tally *t = tally_new();
        round_state *rs = calloc(1, sizeof *rs);
        rs->g = gate_new();
        const unsigned k = 1 + round % 3, cap = 2 + round % 3, nsub = 6;
        sluice_pool_config cfg;
        base_config(&cfg, "stress-destroy", k, cap, t);
        with_hooks(&cfg);
        CREATE_POOL(&cfg, &rs->p);
        for (unsigned i = 0; i < k; i++) {
            assert_int_equal(sluice_pool_submit(rs->p, task_hold, rs), SLUICE_OK);
        }
        WAIT_FOR(atomic_load(&rs->g->inside) == (int)k, "workers held");
        for (unsigned i = 0; i < cap; i++) {
            assert_int_equal(sluice_pool_try_submit(rs->p, task_run, rs), SLUICE_OK);
        }
        pthread_t th[8], opener;
        for (unsigned i = 0; i < nsub; i++) {
            START_THREAD(&th[i], submitter_main, rs);
        }
        WAIT_FOR(stats_now(rs->p).waiting == nsub, "submitters blocked");
        bool race_open = round % 2;
        if (race_open) {
            START_THREAD(&opener, opener_main, rs->g);
        }
        sluice_pool_destroy(rs->p);
        for (unsigned i = 0; i < nsub; i++) {
            pthread_join(th[i], NULL);
        }
        if (race_open) {
            pthread_join(opener, NULL);
        }
        uint64_t accepted = k + cap + atomic_load(&rs->ok);
        assert_int_equal(atomic_load(&rs->ok) + atomic_load(&rs->closed), nsub);
        assert_int_equal(atomic_load(&rs->other), 0);
        assert_int_equal(atomic_load(&t->abandoned_total),
                         atomic_load(&t->abandoned_by[SLUICE_ABANDON_DESTROY]));
        if (atomic_load(&rs->ran) + atomic_load(&t->abandoned_total) != accepted) {
            fail_msg("round %u: accepted %llu, ran %llu, handed back %llu", round,
                     (unsigned long long)accepted, (unsigned long long)atomic_load(&rs->ran),
                     (unsigned long long)atomic_load(&t->abandoned_total));
        }
        if (!race_open) {
            assert_int_equal(atomic_load(&rs->closed), nsub);
        }
        assert_int_equal(atomic_load(&t->finis), atomic_load(&t->inits));
        gate_free(rs->g);
        free(rs);
        tally_free(t);
    }
    WAIT_FOR(thread_count() == threads_before, "every thread joined");
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_destroy_with_blocked_submitters),
    };
    return cmocka_run_group_tests_name("core_stress_destroy", tests, NULL, NULL);
}
