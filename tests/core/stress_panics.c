/*
 * tests/core/stress_panics.c - panics in every worker, all the time: many
 * producers submit tasks of which a third panic (with cleanup handlers
 * pushed), a third fail and a third succeed, on a pool whose fault guard
 * is in RECOVER mode and where a few tasks fault (SIGSEGV) and get their
 * workers replaced. Counters must match what the tasks and handlers saw,
 * every cleanup handler must have run exactly once, and the identity must
 * hold.
 */
#include "common/pool.h"

typedef struct shared {
    _Atomic uint64_t ok, fail, panic, fault, cleanups, entered;
} shared;

static void cleanup_count(void *arg)
{
    atomic_fetch_add(&((shared *)arg)->cleanups, 1);
}

static int *volatile null_ptr;

__attribute__((noinline, no_sanitize_address, no_sanitize_undefined, no_sanitize_thread)) static int
deref_null(void)
{
    return *null_ptr;
}

static int task_mixed(void *arg)
{
    shared *sh = arg;
    uint64_t n = atomic_fetch_add(&sh->entered, 1);
    sluice_cleanup_push(cleanup_count, sh);
    sluice_cleanup_push(cleanup_count, sh);
    /* ThreadSanitizer cannot follow a siglongjmp out of a signal handler
     * (its shadow state for the thread is left inside the handler and the
     * next event crashes it), so under TSan the faults are left out; the
     * plain and ASan runs cover them. */
    if (n % 997 == 500 && !SLUICE_TEST_TSAN) {
        atomic_fetch_add(&sh->fault, 1);
        return deref_null();
    }
    switch (n % 3) {
    case 0:
        atomic_fetch_add(&sh->panic, 1);
        sluice_panic("task %llu panics", (unsigned long long)n);
    case 1:
        sluice_cleanup_pop(true);
        sluice_cleanup_pop(true);
        atomic_fetch_add(&sh->fail, 1);
        return 1;
    default:
        sluice_cleanup_pop(true);
        sluice_cleanup_pop(true);
        atomic_fetch_add(&sh->ok, 1);
        return 0;
    }
}

typedef struct producer {
    sluice_pool *p;
    shared *sh;
    unsigned n;
    uint64_t accepted;
} producer;

static void *producer_main(void *arg)
{
    producer *pr = arg;
    for (unsigned i = 0; i < pr->n; i++) {
        if (sluice_pool_submit(pr->p, task_mixed, pr->sh) == SLUICE_OK) {
            pr->accepted++;
        }
    }
    return NULL;
}

static void test_panics_everywhere(void **state)
{
    (void)state;
    tally *t = tally_new();
    shared *sh = calloc(1, sizeof *sh);
    sluice_pool_config cfg;
    base_config(&cfg, "stress-panic", 6, 128, t);
    with_hooks(&cfg);
    cfg.fault_mode = SLUICE_FAULT_RECOVER;
    sluice_pool *p;
    CREATE_POOL(&cfg, &p);
    unsigned n = 40000 * stress_scale() / (under_sanitizer() ? 6 : 1);
    pthread_t th[6];
    producer pr[6];
    for (int i = 0; i < 6; i++) {
        pr[i] = (producer){.p = p, .sh = sh, .n = n};
        START_THREAD(&th[i], producer_main, &pr[i]);
    }
    uint64_t accepted = 0;
    for (int i = 0; i < 6; i++) {
        pthread_join(th[i], NULL);
        accepted += pr[i].accepted;
    }
    ASSERT_IDENTITY(p);
    sluice_pool_stats s = stats_now(p);
    stats_print("panics", &s);
    assert_int_equal(accepted, 6ull * n);
    assert_int_equal(s.submitted, accepted);
    assert_int_equal(s.completed, atomic_load(&sh->ok));
    assert_int_equal(s.failed, atomic_load(&sh->fail));
    assert_int_equal(s.panicked, atomic_load(&sh->panic) + atomic_load(&sh->fault));
    assert_int_equal(atomic_load(&t->panics), s.panicked);
    /* Two handlers per task, each run exactly once (popped, or by the
     * panic / fault unwinding). */
    assert_int_equal(atomic_load(&sh->cleanups), 2 * accepted);
    /* A faulting worker counts its task (panicked) and shows idle before
     * it counts itself retired: the last one may still be on its way. */
    WAIT_FOR((s = stats_now(p)).retired_workers >= atomic_load(&sh->fault),
             "%llu faulting workers retired (%llu)", (unsigned long long)atomic_load(&sh->fault),
             (unsigned long long)s.retired_workers);
    assert_true(s.workers_hwm <= 6);
    sluice_pool_destroy(p);
    assert_int_equal(atomic_load(&t->finis), atomic_load(&t->inits));
    assert_int_equal(atomic_load(&t->violations), 0);
    free(sh);
    tally_free(t);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_panics_everywhere),
    };
    return cmocka_run_group_tests_name("core_stress_panics", tests, NULL, NULL);
}
