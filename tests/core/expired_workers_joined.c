/*
 * tests/core/expired_workers_joined.c - regression test: workers that exit by
 * idle expiry must be joined while the pool keeps running, not only at
 * resize/drain/destroy.
 *
 * worker.c says "Exited workers put their pthread_t on pool->zombies;
 * spawn, drain and destroy join them", but sluice__spawn_locked never
 * joins. A pool with an idle expiry under bursty load (a burst, a quiet
 * spell longer than the expiry, another burst ...) starts and expires a
 * worker per burst; each exited-but-unjoined thread keeps its stack
 * mapped (glibc frees a joinable thread's stack only at join), so a
 * long-running service leaks one stack per expiry until pthread_create
 * fails and the pool can no longer start workers.
 *
 * The test runs N expire cycles on a pool with a 1 ns expiry (each task
 * starts a worker that expires as soon as it parks) and checks that the
 * process's virtual size did not grow by anything like N stacks.
 */
#include "common/pool.h"

static long vm_size_kb(void)
{
    FILE *f = fopen("/proc/self/status", "r");
    if (!f) {
        return -1;
    }
    char line[256];
    long kb = -1;
    while (fgets(line, sizeof line, f)) {
        if (strncmp(line, "VmSize:", 7) == 0) {
            kb = strtol(line + 7, NULL, 10);
            break;
        }
    }
    fclose(f);
    return kb;
}

static void test_expired_workers_are_joined(void **state)
{
    (void)state;
    tally *t = tally_new();
    sluice_pool_config cfg;
    base_config(&cfg, "zombies", 1, 4, t);
    cfg.idle_expiry_ns = 1; /* expire as soon as idle */
    cfg.stack_size = 1024 * 1024;
    sluice_pool *p;
    CREATE_POOL(&cfg, &p);

    _Atomic uint64_t ran = 0;
    const unsigned cycles = 200;
    /* Warm up one cycle so lazily mapped allocator arenas are counted. */
    assert_int_equal(sluice_pool_submit(p, task_inc, (void *)&ran), SLUICE_OK);
    WAIT_FOR(atomic_load(&ran) == 1 && stats_now(p).workers == 0, "first worker expired");
    long before = vm_size_kb();
    assert_true(before > 0);
    for (unsigned i = 0; i < cycles; i++) {
        assert_int_equal(sluice_pool_submit(p, task_inc, (void *)&ran), SLUICE_OK);
        WAIT_FOR(atomic_load(&ran) == i + 2 && stats_now(p).workers == 0, "worker %u ran and expired", i);
    }
    long after = vm_size_kb();
    sluice_pool_stats s = stats_now(p);
    print_message("expired=%llu started=%llu VmSize %ld kB -> %ld kB (+%ld kB)\n",
                  (unsigned long long)s.expired_workers, (unsigned long long)s.started_workers, before, after,
                  after - before);
    assert_true(s.expired_workers >= cycles);
    ASSERT_IDENTITY(p);
    sluice_pool_destroy(p);
    /* 1 MiB stacks: leaking them all would add ~200 MiB; joined workers
     * leave at most a few cached stacks behind. */
    assert_true(after - before < 32 * 1024);
    tally_free(t);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_expired_workers_are_joined),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
