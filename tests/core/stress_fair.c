/*
 * tests/core/stress_fair.c - the FAIR queue under concurrent load: many
 * producers submitting by name and by handle to tenants that come, go
 * idle and are forgotten at once (idle_forget_ns = 1), with queued and
 * running limits (strict and work-conserving) changed live, every
 * overflow policy, deadlines, failing and panicking tasks, a lister
 * thread, and a drain or destroy racing the producers at the end.
 *
 * Checked: nothing is lost (every task the pool accepted ran or was handed
 * back exactly once: the tasks count themselves and the abandon handler
 * counts hand-backs), the pool's identity, and each surviving tenant's
 * identity. Sized by SLUICE_STRESS_SCALE (rounds).
 */
#include "common/pool.h"
#include "sluice/tenant.h"

#define PRODUCERS 4
#define NAMES 40

typedef struct world {
    sluice_pool *pool;
    sluice_tenant *handles[3];
    _Atomic uint64_t accepted;
    _Atomic uint64_t ran;
    _Atomic uint64_t handed_back;
    _Atomic bool stop;
    unsigned seed;
} world;

static int task_mixed(void *arg)
{
    world *w = arg;
    uint64_t n = atomic_fetch_add(&w->ran, 1);
    if (n % 97 == 5) {
        sluice_panic("stress panic %llu", (unsigned long long)n);
    }
    return n % 13 == 0 ? 1 : 0;
}

static void on_back(const sluice_abandoned *a, void *user)
{
    (void)a;
    world *w = user;
    atomic_fetch_add(&w->handed_back, 1);
}

static void quiet_panic(const sluice_panic_info *info, void *user)
{
    (void)info;
    (void)user;
}

static void *producer(void *arg)
{
    world *w = arg;
    unsigned seed = w->seed ^ (unsigned)(uintptr_t)&seed;
    while (!atomic_load(&w->stop)) {
        sluice_submit_opts o = {0};
        char name[32];
        int pick = rand_r(&seed) % 10;
        if (pick < 3) {
            o.tenant = w->handles[pick];
        } else if (pick < 9) {
            snprintf(name, sizeof name, "t%d", rand_r(&seed) % NAMES);
            o.tenant_name = name;
        }
        if (rand_r(&seed) % 8 == 0) {
            o.deadline_ns = sluice_clock_now(NULL) + (uint64_t)(rand_r(&seed) % 200) * SLUICE_NS_PER_US;
        }
        o.submit_deadline_ns = sluice_clock_now(NULL) + SLUICE_NS_PER_MS;
        sluice_err err = sluice_pool_submit_ex(w->pool, task_mixed, w, &o);
        if (err == SLUICE_OK) {
            atomic_fetch_add(&w->accepted, 1);
        } else if (err == SLUICE_ECLOSED) {
            break;
        } else if (err != SLUICE_EFULL && err != SLUICE_ETIMEDOUT) {
            atomic_fetch_add(&w->ran, UINT64_C(1) << 40); /* an error no rule allows: fails the sum */
        }
    }
    return NULL;
}

/* Lists tenants and changes limits live while the producers run. */
static void *meddler(void *arg)
{
    world *w = arg;
    unsigned seed = w->seed * 7u + 1u;
    sluice_tenant_stats *buf = calloc(64, sizeof *buf);
    while (!atomic_load(&w->stop)) {
        (void)sluice_pool_tenants_get(w->pool, buf, 64);
        char name[32];
        snprintf(name, sizeof name, "t%d", rand_r(&seed) % NAMES);
        sluice_tenant_config tc = {
            .weight = 1 + (unsigned)(rand_r(&seed) % 4),
            .queued_limit = rand_r(&seed) % 3 ? 0 : (size_t)(1 + rand_r(&seed) % 8),
            .running_limit = (unsigned)(rand_r(&seed) % 3),
            .strict = rand_r(&seed) % 2,
            .overflow = (sluice_tenant_overflow)(rand_r(&seed) % 2),
        };
        sluice_err err = sluice_pool_tenant_set(w->pool, name, &tc, NULL, 0);
        if (err != SLUICE_OK && err != SLUICE_ECLOSED) {
            atomic_fetch_add(&w->ran, UINT64_C(1) << 40);
        }
        sched_yield();
    }
    free(buf);
    return NULL;
}

/* Whether every tenant's identity holds (submitted == ended, nothing
 * queued or running); when not, `why` names the first that does not. */
static bool tenants_balanced(sluice_pool *pool, char *why, size_t len)
{
    sluice_tenant_stats *all = calloc(256, sizeof *all);
    assert_non_null(all);
    size_t n = sluice_pool_tenants_get(pool, all, 256);
    assert_true(n <= 256);
    bool ok = true;
    for (size_t i = 0; i < n && ok; i++) {
        const sluice_tenant_stats *s = &all[i];
        uint64_t ended = s->completed + s->failed + s->panicked + s->dropped + s->shed + s->abandoned;
        if (s->submitted != ended || s->queued || s->running) {
            snprintf(why, len, "tenant %s: submitted %llu ended %llu queued %zu running %u", s->name,
                     (unsigned long long)s->submitted, (unsigned long long)ended, s->queued, s->running);
            ok = false;
        }
    }
    free(all);
    return ok;
}

static void run_round(unsigned round)
{
    world *w = calloc(1, sizeof *w);
    w->seed = round * 2654435761u + 17u;
    sluice_pool_config cfg;
    sluice_pool_config_init(&cfg);
    cfg.name = "stress-fair";
    cfg.workers = 1 + round % 4;
    cfg.queue_capacity = 16 + (round % 3) * 50;
    cfg.overflow = (sluice_overflow)(round % 4);
    cfg.queue_discipline = SLUICE_QUEUE_FAIR;
    cfg.fair.max_tenants = 8;
    cfg.fair.shard_queues = 4;
    cfg.fair.hand_size = 2;
    cfg.fair.idle_forget_ns = 1;
    cfg.fair.tenant_default.running_limit = round % 2;
    cfg.abandon_handler = on_back;
    cfg.panic_handler = quiet_panic;
    cfg.user = w;
    char err[256];
    assert_int_equal(sluice_pool_create(&cfg, &w->pool, err, sizeof err), SLUICE_OK);
    for (int i = 0; i < 3; i++) {
        char name[16];
        snprintf(name, sizeof name, "h%d", i);
        assert_int_equal(sluice_pool_tenant_acquire(w->pool, name, &w->handles[i]), SLUICE_OK);
    }
    sluice_tenant_config strict = {.weight = 3, .running_limit = 1, .strict = true, .queued_limit = 5};
    assert_int_equal(sluice_pool_tenant_set(w->pool, "h0", &strict, NULL, 0), SLUICE_OK);

    pthread_t th[PRODUCERS + 1];
    for (int i = 0; i < PRODUCERS; i++) {
        pthread_create(&th[i], NULL, producer, w);
    }
    pthread_create(&th[PRODUCERS], NULL, meddler, w);
    /* Let them run for a number of accepted tasks, not a time. */
    uint64_t want = under_sanitizer() ? 2000 : 20000;
    WAIT_FOR(atomic_load(&w->accepted) >= want, "producers made progress");
    bool drain_first = round % 2 == 0;
    if (drain_first) {
        /* Drain races the producers; they see ECLOSED and leave. */
        (void)sluice_pool_drain(w->pool, round % 4 == 0 ? SLUICE_NS_PER_MS : 0, NULL);
    }
    atomic_store(&w->stop, true);
    for (int i = 0; i <= PRODUCERS; i++) {
        pthread_join(th[i], NULL);
    }
    if (drain_first) {
        /* Per-tenant accounting after the drain (nothing queued or running).
         * Waited for, not read once: a drain that timed out (1 ms) leaves
         * tasks running, and a worker counts its last task's tenant outcome
         * after the task returns (deferred finish, when it leaves its loop),
         * so the pool's identity can hold a moment before every tenant's. */
        sluice_pool_stats ps;
        WAIT_FOR(identity_holds(w->pool, &ps), "pool identity");
        char why[256] = "";
        WAIT_FOR(tenants_balanced(w->pool, why, sizeof why), "round %u: %s", round, why);
    }
    for (int i = 0; i < 3; i++) {
        sluice_tenant_release(w->handles[i]);
    }
    sluice_pool_destroy(w->pool);
    /* Every accepted task ran (its fn counted) or was handed back, once:
     * shed tasks are handed back; panicking ones ran. */
    uint64_t ran = atomic_load(&w->ran), back = atomic_load(&w->handed_back);
    uint64_t accepted = atomic_load(&w->accepted);
    if (ran + back != accepted) {
        fail_msg("round %u: accepted %llu, ran %llu + handed back %llu", round, (unsigned long long)accepted,
                 (unsigned long long)ran, (unsigned long long)back);
    }
    free(w);
}

static void test_stress_fair(void **state)
{
    (void)state;
    unsigned rounds = 8 * stress_scale();
    for (unsigned r = 0; r < rounds; r++) {
        run_round(r);
    }
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_stress_fair),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
