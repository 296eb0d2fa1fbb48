/*
 * tests/core/test_start_failures.c - worker threads that cannot be started
 * (issue 12 item 11): every failure is counted (stats
 * worker_start_failures, metric pool_worker_start_failures_total), raises
 * SLUICE_EVENT_WORKER_START_FAILED (the first at once, then at most one a
 * second of pool clock, each carrying the total), and a drain keeps
 * retrying instead of waiting for ever.
 *
 * Injection. This program is linked with -Wl,--wrap=pthread_create: the
 * library's objects are linked in statically, so its calls reach
 * __wrap_pthread_create below, which fails (EAGAIN, as under RLIMIT_NPROC)
 * while the test has armed it. The test never starts a thread of its own
 * while armed.
 */
#include <signal.h>

#include "common/fault.h"
#include "common/pool.h"
#include "sluice/metrics.h"

int __real_pthread_create(pthread_t *th, const pthread_attr_t *attr, void *(*fn)(void *), void *arg);
int __wrap_pthread_create(pthread_t *th, const pthread_attr_t *attr, void *(*fn)(void *), void *arg);

/* Creates to let through before failing (-1: no failing at all). */
static _Atomic int creates_allowed = -1;
static _Atomic uint64_t creates_refused;

int __wrap_pthread_create(pthread_t *th, const pthread_attr_t *attr, void *(*fn)(void *), void *arg)
{
    int n = atomic_load(&creates_allowed);
    while (n >= 0) {
        if (n == 0) {
            atomic_fetch_add(&creates_refused, 1);
            return EAGAIN;
        }
        if (atomic_compare_exchange_weak(&creates_allowed, &n, n - 1)) {
            break;
        }
    }
    return __real_pthread_create(th, attr, fn, arg);
}

static void arm(int allowed)
{
    atomic_store(&creates_allowed, allowed);
}

static void disarm(void)
{
    atomic_store(&creates_allowed, -1);
}

/* What the event handler saw. */
typedef struct seen {
    tally *t;
    pthread_mutex_t mu;
    unsigned events;
    uint64_t last_total;
    uint64_t last_errno;
    sluice_err last_err;
    char last_detail[160];
} seen;

static void seen_event(const sluice_pool_event *ev, void *user)
{
    seen *s = user;
    tally_event(ev, s->t);
    if (ev->kind == SLUICE_EVENT_WORKER_START_FAILED) {
        pthread_mutex_lock(&s->mu);
        s->events++;
        s->last_total = ev->new_value;
        s->last_errno = ev->old_value;
        s->last_err = ev->err;
        snprintf(s->last_detail, sizeof s->last_detail, "%s", ev->detail ? ev->detail : "");
        pthread_mutex_unlock(&s->mu);
    }
}

static void seen_abandon(const sluice_abandoned *a, void *user)
{
    tally_abandon(a, ((seen *)user)->t);
}

static void seen_panic(const sluice_panic_info *info, void *user)
{
    tally_panic(info, ((seen *)user)->t);
}

static seen *seen_new(void)
{
    seen *s = calloc(1, sizeof *s);
    assert_non_null(s);
    s->t = tally_new();
    pthread_mutex_init(&s->mu, NULL);
    return s;
}

static void seen_free(seen *s)
{
    pthread_mutex_destroy(&s->mu);
    tally_free(s->t);
    free(s);
}

static unsigned seen_events(seen *s)
{
    pthread_mutex_lock(&s->mu);
    unsigned n = s->events;
    pthread_mutex_unlock(&s->mu);
    return n;
}

static void seen_config(sluice_pool_config *cfg, const char *name, unsigned k, seen *s)
{
    sluice_pool_config_init(cfg);
    cfg->name = name;
    cfg->workers = k;
    cfg->queue_capacity = 64;
    cfg->user = s;
    cfg->event_handler = seen_event;
    cfg->abandon_handler = seen_abandon;
    cfg->panic_handler = seen_panic;
}

/* A lazy pool that cannot start threads: tasks are accepted and wait, every
 * failure is counted, the event is rate-limited on the pool clock, and
 * once threads can start again a drain runs everything. */
static void test_start_failures_counted_and_reported(void **state)
{
    (void)state;
    seen *s = seen_new();
    sluice_fake_clock fc;
    sluice_fake_clock_init(&fc, SLUICE_NS_PER_SEC);
    sluice_pool_config cfg;
    seen_config(&cfg, "nothreads", 4, s);
    cfg.clock = &fc.clock;
    sluice_pool *p;
    CREATE_POOL(&cfg, &p);
    sluice_metrics *reg;
    assert_int_equal(sluice_metrics_create(NULL, &reg), SLUICE_OK);
    assert_int_equal(sluice_metrics_add_pool(reg, p), SLUICE_OK);

    arm(0);
    for (int i = 0; i < 5; i++) {
        assert_int_equal(sluice_pool_submit(p, task_count, s->t), SLUICE_OK);
    }
    sluice_pool_stats st = stats_now(p);
    assert_int_equal(st.workers, 0);
    assert_int_equal(st.queue_depth, 5);
    assert_true(st.worker_start_failures >= 5); /* every submit tried */
    assert_int_equal(st.worker_start_failures, atomic_load(&creates_refused));
    /* One event so far: the clock has not moved. */
    assert_int_equal(seen_events(s), 1);
    pthread_mutex_lock(&s->mu);
    assert_int_equal(s->last_err, SLUICE_ESYS);
    assert_int_equal(s->last_errno, EAGAIN);
    assert_int_equal(s->last_total, 1);
    assert_non_null(strstr(s->last_detail, "could not start a worker thread"));
    pthread_mutex_unlock(&s->mu);
    assert_string_equal(sluice_event_kind_name(SLUICE_EVENT_WORKER_START_FAILED), "worker_start_failed");

    /* A second later the next failure is reported, with the total. */
    sluice_fake_clock_advance(&fc, SLUICE_NS_PER_SEC);
    assert_int_equal(sluice_pool_submit(p, task_count, s->t), SLUICE_OK);
    assert_int_equal(seen_events(s), 2);
    st = stats_now(p);
    pthread_mutex_lock(&s->mu);
    assert_int_equal(s->last_total, st.worker_start_failures);
    pthread_mutex_unlock(&s->mu);

    /* The metric. */
    char *text;
    size_t len;
    assert_int_equal(sluice_metrics_render(reg, SLUICE_EXPO_PROMETHEUS, &text, &len), SLUICE_OK);
    char want[128];
    snprintf(want, sizeof want, "\npool_worker_start_failures_total{name=\"nothreads\"} %llu\n",
             (unsigned long long)st.worker_start_failures);
    if (!strstr(text, want)) {
        fprintf(stderr, "%s", text);
        fail_msg("missing %s", want);
    }
    free(text);

    /* Threads can start again: drain runs all six. */
    disarm();
    sluice_drain_report rep;
    assert_int_equal(sluice_pool_drain(p, 0, &rep), SLUICE_OK);
    assert_int_equal(atomic_load(&s->t->ran), 6);
    ASSERT_IDENTITY(p);
    sluice_metrics_destroy(reg);
    sluice_pool_destroy(p);
    seen_free(s);
}

/* drain(0) with no worker and none startable keeps retrying (it used to
 * wait for a wake-up that never came) and finishes once a start succeeds. */
typedef struct bg_drain {
    sluice_pool *p;
    sluice_err rc;
    sluice_drain_report rep;
} bg_drain;

static void *bg_drain_main(void *arg)
{
    bg_drain *d = arg;
    d->rc = sluice_pool_drain(d->p, 0, &d->rep);
    return NULL;
}

static void test_drain_retries_start_failures(void **state)
{
    (void)state;
    seen *s = seen_new();
    sluice_pool_config cfg;
    seen_config(&cfg, "drainretry", 2, s);
    sluice_pool *p;
    CREATE_POOL(&cfg, &p);
    bg_drain *d = calloc(1, sizeof *d);
    assert_non_null(d);
    d->p = p;
    pthread_t th;
    arm(0);
    for (int i = 0; i < 3; i++) {
        assert_int_equal(sluice_pool_submit(p, task_count, s->t), SLUICE_OK);
    }
    /* Let exactly one thread start, the drain's own; the pool's fail. */
    uint64_t before = atomic_load(&creates_refused);
    arm(1);
    START_THREAD(&th, bg_drain_main, d);
    WAIT_FOR(atomic_load(&creates_refused) >= before + 3, "the drain retries the start");
    assert_int_equal(atomic_load(&s->t->ran), 0);
    disarm();
    pthread_join(th, NULL);
    assert_int_equal(d->rc, SLUICE_OK);
    assert_int_equal(d->rep.handed_back, 0);
    assert_int_equal(atomic_load(&s->t->ran), 3);
    assert_true(seen_events(s) >= 1);
    ASSERT_IDENTITY(p);
    sluice_pool_destroy(p);
    free(d);
    seen_free(s);
}

/* Chain spawning: the first worker starts, the next ones cannot; the
 * pool runs below K, says so, and still runs everything. */
static void test_chain_spawn_failure_counted(void **state)
{
    (void)state;
    seen *s = seen_new();
    gate *g = gate_new();
    sluice_pool_config cfg;
    seen_config(&cfg, "chainfail", 4, s);
    sluice_pool *p;
    CREATE_POOL(&cfg, &p);
    arm(1);
    for (int i = 0; i < 4; i++) {
        assert_int_equal(sluice_pool_submit(p, task_gate, g), SLUICE_OK);
    }
    WAIT_FOR(atomic_load(&g->inside) == 1, "one worker at the gate");
    WAIT_FOR(stats_now(p).worker_start_failures >= 1 && seen_events(s) >= 1, "the failed starts counted");
    assert_int_equal(stats_now(p).workers, 1);
    disarm();
    gate_open(g);
    ASSERT_IDENTITY(p);
    assert_int_equal(atomic_load(&g->entered), 4);
    sluice_pool_destroy(p);
    gate_free(g);
    seen_free(s);
}

/* Prewarm that cannot start its threads: create fails with SLUICE_ESYS,
 * the message names the field and the cause, and nothing is left. */
static void test_prewarm_start_failure_fails_create(void **state)
{
    (void)state;
    seen *s = seen_new();
    int base = thread_baseline();
    sluice_pool_config cfg;
    seen_config(&cfg, "prewarmfail", 4, s);
    cfg.prewarm = true;
    cfg.worker_init = tally_init_hook;
    cfg.worker_fini = tally_fini_hook;
    cfg.user = s->t; /* hooks take the tally */
    cfg.event_handler = tally_event;
    cfg.abandon_handler = tally_abandon;
    cfg.panic_handler = tally_panic;
    sluice_pool *p = (sluice_pool *)(uintptr_t)0x1;
    char err[256] = "";
    arm(2);
    sluice_err rc = sluice_pool_create(&cfg, &p, err, sizeof err);
    disarm();
    assert_int_equal(rc, SLUICE_ESYS);
    assert_ptr_equal(p, (sluice_pool *)(uintptr_t)0x1);
    assert_non_null(strstr(err, "workers: could not start a worker thread"));
    /* The two that started were initialised and finalised. */
    assert_int_equal(atomic_load(&s->t->inits), 2);
    assert_int_equal(atomic_load(&s->t->finis), 2);
    WAIT_FOR(thread_count() == base, "no thread left (%d, baseline %d)", thread_count(), base);
    seen_free(s);
}

/* RECOVER: the replacement for a faulting worker cannot start. Counted
 * and reported; the next submit starts one once threads are available. */

static void test_fault_replacement_start_failure(void **state)
{
    if (SLUICE_TEST_TSAN) {
        skip(); /* TSan cannot follow a siglongjmp out of a signal handler */
    }
    (void)state;
    seen *s = seen_new();
    sluice_pool_config cfg;
    seen_config(&cfg, "faultfail", 2, s);
    cfg.prewarm = true;
    cfg.fault_mode = SLUICE_FAULT_RECOVER;
    sluice_pool *p;
    CREATE_POOL(&cfg, &p);
    arm(0);
    assert_int_equal(sluice_pool_submit(p, task_segv, NULL), SLUICE_OK);
    WAIT_FOR(atomic_load(&s->t->exits_by[EXIT_FAULT]) == 1, "the faulting worker retired");
    WAIT_FOR(stats_now(p).worker_start_failures == 1 && seen_events(s) == 1,
             "the failed replacement reported");
    assert_int_equal(stats_now(p).workers, 1);
    disarm();
    for (int i = 0; i < 4; i++) {
        assert_int_equal(sluice_pool_submit(p, task_count, s->t), SLUICE_OK);
    }
    ASSERT_IDENTITY(p);
    assert_int_equal(atomic_load(&s->t->ran), 4);
    sluice_pool_destroy(p);
    seen_free(s);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_start_failures_counted_and_reported),
        cmocka_unit_test(test_drain_retries_start_failures),
        cmocka_unit_test(test_chain_spawn_failure_counted),
        cmocka_unit_test(test_prewarm_start_failure_fails_create),
        cmocka_unit_test(test_fault_replacement_start_failure),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
