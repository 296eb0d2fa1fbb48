/*
 * tests/core/park_expire_storm.c - regression guard: no lost wake-up while
 * workers park, expire and restart all the time.
 *
 * A K=4 pool with min_workers=1 and a 1 ns idle expiry: every worker
 * above the minimum exits the moment it parks, so parking, the LIFO
 * wake-up stack, expiry, the expiring worker's re-check of the queue and
 * lazy respawn all race with producers. Producers submit small bursts and
 * wait for each burst to finish; a burst that does not finish within the
 * safety limit means a task was stranded with no worker to run it. The
 * accounting identity is checked at the end, and no task may run twice.
 */
#include "common/pool.h"

#define STORM_PRODUCERS 3
#define STORM_BURST 5

typedef struct storm {
    sluice_pool *p;
    unsigned bursts;
    _Atomic uint64_t stranded;
} storm;

typedef struct burst_counter {
    _Atomic int left;
} burst_counter;

static int storm_task(void *arg)
{
    atomic_fetch_sub(&((burst_counter *)arg)->left, 1);
    return 0;
}

static void *storm_producer(void *arg)
{
    storm *s = arg;
    burst_counter bc;
    unsigned seed = (unsigned)(uintptr_t)&bc;
    for (unsigned b = 0; b < s->bursts; b++) {
        seed = seed * 1103515245u + 12345u;
        int n = 1 + (int)((seed >> 16) % STORM_BURST);
        atomic_store(&bc.left, n);
        for (int i = 0; i < n; i++) {
            if (sluice_pool_submit(s->p, storm_task, &bc) != SLUICE_OK) {
                atomic_fetch_sub(&bc.left, 1);
                atomic_fetch_add(&s->stranded, 1000000); /* a refusal is a failure too */
            }
        }
        if (!WAIT_FOR_BG(atomic_load(&bc.left) <= 0)) {
            atomic_fetch_add(&s->stranded, 1);
            return NULL; /* bc would go out of scope under a queued task */
        }
        /* Let the workers go idle (and expire) now and then. */
        if ((seed >> 8) % 4 == 0) {
            for (volatile int i = 0; i < (int)((seed >> 4) % 20000); i++) {
            }
        }
    }
    return NULL;
}

static void test_park_expire_storm(void **state)
{
    (void)state;
    tally *t = tally_new();
    sluice_pool_config cfg;
    base_config(&cfg, "park-storm", 4, 8, t);
    cfg.min_workers = 1;
    cfg.idle_expiry_ns = 1;
    cfg.stack_size = 64 * 1024;
    storm *s = calloc(1, sizeof *s);
    assert_non_null(s);
    CREATE_POOL(&cfg, &s->p);
    s->bursts = (SLUICE_TEST_TSAN ? 150 : under_sanitizer() ? 400 : 2000) * stress_scale();

    pthread_t th[STORM_PRODUCERS];
    for (int i = 0; i < STORM_PRODUCERS; i++) {
        START_THREAD(&th[i], storm_producer, s);
    }
    for (int i = 0; i < STORM_PRODUCERS; i++) {
        pthread_join(th[i], NULL);
    }
    sluice_pool_stats st = stats_now(s->p);
    print_message("park-storm: submitted=%llu started_workers=%llu expired=%llu\n",
                  (unsigned long long)st.submitted, (unsigned long long)st.started_workers,
                  (unsigned long long)st.expired_workers);
    assert_int_equal(atomic_load(&s->stranded), 0);
    ASSERT_IDENTITY(s->p);
    st = stats_now(s->p);
    assert_int_equal(st.completed, st.submitted);
    sluice_pool_destroy(s->p);
    free(s);
    tally_free(t);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_park_expire_storm),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
