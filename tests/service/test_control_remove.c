/*
 * tests/service/test_control_remove.c - sluice_service_remove_control:
 * a pool's controller taken away while the service runs.
 *
 *  - The contract: NULL, a pool without a controller and a pool of
 *    another service are refused; after a removal the pool's series of
 *    every controller family are gone from a scrape (the families too when
 *    no pool has a sample left), stats/pin/release answer ENOENT, K stays
 *    where the controller left it, and set_control makes a fresh one
 *    (no pin, no decisions) whose series come back.
 *  - A probe task queued behind a held worker when its controller goes
 *    runs afterwards without touching the freed controller (ASan/TSan).
 *  - A stress: removals and re-adds of three pools' controllers against
 *    the control thread's ticks (1 ms interval, 1 ms probes), scrapes,
 *    stats/pin/release from another thread and a producer of tasks. Each
 *    scrape must show a pool's controller whole or not at all. Sized by
 *    SLUICE_STRESS_SCALE; run it under TSan (make test-tsan).
 *
 * No test sleeps for an event or asserts on a time: waits are WAIT_FOR or
 * gates with safety limits.
 */
#include <pthread.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "common/wait.h"
#include "sluice/service.h"
#include "sluice/task.h"

static void quiet(void *user, const char *line)
{
    (void)user;
    (void)line;
}

static sluice_service *make_service(void)
{
    sluice_service_config sc;
    sluice_service_config_init(&sc);
    sc.no_signals = true;
    sc.log = quiet;
    sluice_service *svc = NULL;
    char err[256];
    if (sluice_service_create(&sc, &svc, err, sizeof err) != SLUICE_OK) {
        fail_msg("service create: %s", err);
    }
    return svc;
}

static sluice_pool *add_pool(sluice_service *svc, const char *name, unsigned k)
{
    sluice_pool_config pc;
    sluice_pool_config_init(&pc);
    pc.name = name;
    pc.workers = k;
    pc.queue_capacity = 64;
    sluice_pool *p = NULL;
    char err[256];
    if (sluice_service_add_pool(svc, &pc, 0, &p, err, sizeof err) != SLUICE_OK) {
        fail_msg("add_pool %s: %s", name, err);
    }
    return p;
}

/* A scrape of the service's registry (malloc'd text). */
static char *scrape(sluice_service *svc)
{
    char *text = NULL;
    size_t len = 0;
    assert_int_equal(sluice_metrics_render(sluice_service_metrics(svc), SLUICE_EXPO_PROMETHEUS, &text, &len),
                     SLUICE_OK);
    return text;
}

static bool has(const char *text, const char *what)
{
    return strstr(text, what) != NULL;
}

/* Every series of the controller families for the pool `name`. */
static bool any_series_of(const char *text, const char *name)
{
    static const char *const families[] = {"pool_concurrency_limit",        "pool_autotune_pinned",
                                           "pool_autotune_decisions_total", "pool_probe_duration_seconds",
                                           "pool_probe_failures_total",     "pool_probe_healthy"};
    char want[160];
    for (size_t f = 0; f < sizeof families / sizeof families[0]; f++) {
        for (const char *suffix = ""; suffix; suffix = suffix[0] ? NULL : "_count") {
            snprintf(want, sizeof want, "%s%s{name=\"%s\"", families[f], suffix, name);
            if (has(text, want)) {
                return true;
            }
        }
    }
    return false;
}

static unsigned pool_k(sluice_pool *p)
{
    sluice_pool_stats st;
    sluice_pool_stats_get(p, &st);
    return st.capacity;
}

static size_t queue_depth(sluice_pool *p)
{
    sluice_pool_stats st;
    sluice_pool_stats_get(p, &st);
    return st.queue_depth;
}

static uint64_t decisions_of(const sluice_pool_control_stats *cs)
{
    uint64_t n = 0;
    for (unsigned d = 0; d < SLUICE_CONTROL_DIRECTION_COUNT_; d++) {
        for (unsigned r = 0; r < SLUICE_CONTROL_REASON_COUNT_; r++) {
            n += cs->decisions[d][r];
        }
    }
    return n;
}

/* ---- the contract ------------------------------------------------------------------ */

static void test_remove_contract(void **state)
{
    (void)state;
    sluice_service *svc = make_service();
    sluice_pool *a = add_pool(svc, "alpha", 8);
    sluice_pool *b = add_pool(svc, "beta", 4);
    sluice_service *other = make_service();
    sluice_pool *foreign = add_pool(other, "foreign", 1);

    assert_int_equal(sluice_service_remove_control(NULL, a), SLUICE_EINVAL);
    assert_int_equal(sluice_service_remove_control(svc, NULL), SLUICE_EINVAL);
    assert_int_equal(sluice_service_remove_control(svc, a), SLUICE_ENOENT); /* none yet */
    char *text = scrape(svc);
    assert_false(has(text, "pool_concurrency_limit")); /* no controller: no family */
    free(text);

    char err[256];
    sluice_pool_control_config cc;
    sluice_pool_control_config_init(&cc);
    cc.probe_every_ns = 60ull * SLUICE_NS_PER_SEC; /* alpha has probes, beta none */
    assert_int_equal(sluice_service_set_control(svc, a, &cc, err, sizeof err), SLUICE_OK);
    sluice_pool_control_config_init(&cc);
    assert_int_equal(sluice_service_set_control(svc, b, &cc, err, sizeof err), SLUICE_OK);
    assert_int_equal(sluice_service_set_control(other, foreign, &cc, err, sizeof err), SLUICE_OK);
    assert_int_equal(sluice_service_remove_control(svc, foreign), SLUICE_ENOENT); /* another's pool */

    /* A pin, so the controller has a decision and K is its own. */
    assert_int_equal(sluice_service_control_pin(svc, a, 3), SLUICE_OK);
    sluice_pool_control_stats cs;
    assert_int_equal(sluice_service_control_stats(svc, a, &cs), SLUICE_OK);
    assert_true(cs.pinned);
    assert_true(decisions_of(&cs) >= 1);
    text = scrape(svc);
    assert_true(has(text, "pool_concurrency_limit{name=\"alpha\"} 3"));
    assert_true(has(text, "pool_autotune_pinned{name=\"alpha\"} 1"));
    assert_true(has(text, "pool_probe_healthy{name=\"alpha\"}"));
    assert_true(has(text, "pool_concurrency_limit{name=\"beta\"}"));
    free(text);

    assert_int_equal(sluice_service_remove_control(svc, a), SLUICE_OK);
    assert_int_equal(sluice_service_control_stats(svc, a, &cs), SLUICE_ENOENT);
    assert_int_equal(sluice_service_control_pin(svc, a, 5), SLUICE_ENOENT);
    assert_int_equal(sluice_service_control_release(svc, a), SLUICE_ENOENT);
    assert_int_equal(sluice_service_remove_control(svc, a), SLUICE_ENOENT); /* once */
    assert_int_equal(pool_k(a), 3);                                         /* where it was left */
    text = scrape(svc);
    assert_false(any_series_of(text, "alpha"));
    assert_true(has(text, "pool_concurrency_limit{name=\"beta\"}"));
    assert_false(has(text, "pool_probe_healthy")); /* no pool has probes now: no probe family */
    free(text);
    /* The other service's controller is its own. */
    assert_int_equal(sluice_service_control_stats(other, foreign, &cs), SLUICE_OK);

    /* The last one: no controller family at all. */
    assert_int_equal(sluice_service_remove_control(svc, b), SLUICE_OK);
    text = scrape(svc);
    assert_false(has(text, "pool_concurrency_limit"));
    assert_false(has(text, "pool_autotune"));
    assert_false(has(text, "pool_probe_"));
    assert_true(has(text, "pool_capacity{name=\"alpha\"} 3")); /* the pool itself is still exported */
    free(text);

    /* A fresh one: no pin, no decisions; it sees K 3 at its first tick
     * and its series come back (the control thread slept with none). */
    sluice_pool_control_config_init(&cc);
    assert_int_equal(sluice_service_set_control(svc, a, &cc, err, sizeof err), SLUICE_OK);
    assert_int_equal(sluice_service_set_control(svc, a, &cc, err, sizeof err), SLUICE_EBUSY);
    WAIT_FOR(sluice_service_control_stats(svc, a, &cs) == SLUICE_OK && cs.ticks >= 1, "the fresh one ticks");
    assert_false(cs.pinned);
    assert_int_equal(decisions_of(&cs), 0);
    assert_int_equal(cs.limit, 3);
    text = scrape(svc);
    assert_true(has(text, "pool_concurrency_limit{name=\"alpha\"} 3"));
    assert_true(has(text, "pool_autotune_pinned{name=\"alpha\"} 0"));
    assert_false(any_series_of(text, "beta"));
    free(text);

    sluice_service_destroy(svc); /* with a controller still there */
    sluice_service_destroy(other);
}

/* ---- a probe queued when its controller goes ----------------------------------------- */

static int hold(void *arg)
{
    gate_pass(arg, true);
    return 0;
}

static void test_remove_with_probe_queued(void **state)
{
    (void)state;
    sluice_service *svc = make_service();
    sluice_pool *p = add_pool(svc, "probed", 1);
    gate g;
    gate_init(&g);
    assert_int_equal(sluice_pool_submit(p, hold, &g), SLUICE_OK);
    GATE_WAIT_ENTERED(&g, 1);
    char err[256];
    sluice_pool_control_config cc;
    sluice_pool_control_config_init(&cc);
    cc.probe_every_ns = SLUICE_NS_PER_MS;
    cc.probe_timeout_ns = UINT64_MAX; /* in flight until it runs */
    assert_int_equal(sluice_service_set_control(svc, p, &cc, err, sizeof err), SLUICE_OK);
    /* The one worker is held, so the probe waits in the queue. */
    WAIT_FOR(queue_depth(p) >= 1, "a probe queued behind the held task");
    assert_int_equal(sluice_service_remove_control(svc, p), SLUICE_OK);
    gate_open(&g);
    WAIT_FOR(queue_depth(p) == 0, "the probe ran after its controller went");
    assert_int_equal(sluice_service_wait_idle(svc, SAFETY_NS), SLUICE_OK);
    sluice_pool_stats st;
    sluice_pool_stats_get(p, &st);
    assert_true(st.completed >= 2); /* the held task and the orphaned probe */
    sluice_service_destroy(svc);
    gate_destroy(&g);
}

/* ---- the stress ---------------------------------------------------------------------- */

#define STRESS_POOLS 3

typedef struct stress {
    sluice_service *svc;
    sluice_pool *pools[STRESS_POOLS];
    _Atomic bool stop;
    _Atomic unsigned scrapes;
    _Atomic unsigned torn; /* scrapes with half a controller */
    _Atomic unsigned calls;
} stress;

static const char *const STRESS_NAMES[STRESS_POOLS] = {"s0", "s1", "s2"};

static int noop(void *arg)
{
    (void)arg;
    return 0;
}

/* A scrape shows each pool's controller whole: its K gauge and its pin
 * gauge together, or neither. */
static void *scraper(void *arg)
{
    stress *s = arg;
    while (!atomic_load(&s->stop)) {
        char *text = NULL;
        size_t len = 0;
        if (sluice_metrics_render(sluice_service_metrics(s->svc), SLUICE_EXPO_PROMETHEUS, &text, &len) !=
            SLUICE_OK) {
            atomic_fetch_add(&s->torn, 1);
            continue;
        }
        for (size_t i = 0; i < STRESS_POOLS; i++) {
            char k[64], pin[64];
            snprintf(k, sizeof k, "pool_concurrency_limit{name=\"%s\"}", STRESS_NAMES[i]);
            snprintf(pin, sizeof pin, "pool_autotune_pinned{name=\"%s\"}", STRESS_NAMES[i]);
            if ((strstr(text, k) != NULL) != (strstr(text, pin) != NULL)) {
                atomic_fetch_add(&s->torn, 1);
            }
        }
        free(text);
        atomic_fetch_add(&s->scrapes, 1);
    }
    return NULL;
}

/* Stats, pins and releases on whatever controller is there. */
static void *poker(void *arg)
{
    stress *s = arg;
    unsigned n = 0;
    while (!atomic_load(&s->stop)) {
        sluice_pool *p = s->pools[n % STRESS_POOLS];
        sluice_pool_control_stats cs;
        sluice_err r = sluice_service_control_stats(s->svc, p, &cs);
        if (r != SLUICE_OK && r != SLUICE_ENOENT) {
            atomic_fetch_add(&s->torn, 1);
        }
        if (n % 3 == 0) {
            (void)sluice_service_control_pin(s->svc, p, 2 + n % 4);
        } else if (n % 3 == 1) {
            (void)sluice_service_control_release(s->svc, p);
        }
        n++;
        atomic_fetch_add(&s->calls, 1);
    }
    return NULL;
}

static void *producer(void *arg)
{
    stress *s = arg;
    unsigned n = 0;
    while (!atomic_load(&s->stop)) {
        (void)sluice_pool_try_submit(s->pools[n++ % STRESS_POOLS], noop, NULL);
        if (n % 64 == 0) {
            poll_pause();
        }
    }
    return NULL;
}

static sluice_pool_control_config stress_cfg(unsigned round, size_t i)
{
    sluice_pool_control_config cc;
    sluice_pool_control_config_init(&cc);
    cc.mode = (sluice_control_mode)((round + i) % SLUICE_CONTROL_MODE_COUNT_);
    cc.autotune = (round + i) % 2 == 0;
    cc.min_limit = 1;
    cc.max_limit = 6;
    cc.interval_ns = SLUICE_NS_PER_MS;
    cc.probe_every_ns = (round + i) % 3 ? SLUICE_NS_PER_MS : 0;
    cc.probe_timeout_ns = 50 * SLUICE_NS_PER_MS;
    return cc;
}

static void test_remove_stress(void **state)
{
    (void)state;
    stress s = {0};
    s.svc = make_service();
    for (size_t i = 0; i < STRESS_POOLS; i++) {
        s.pools[i] = add_pool(s.svc, STRESS_NAMES[i], 4);
    }
    pthread_t th[3];
    assert_int_equal(pthread_create(&th[0], NULL, scraper, &s), 0);
    assert_int_equal(pthread_create(&th[1], NULL, poker, &s), 0);
    assert_int_equal(pthread_create(&th[2], NULL, producer, &s), 0);
    unsigned rounds = (under_sanitizer() ? 60 : 300) * stress_scale();
    bool on[STRESS_POOLS] = {false};
    char err[256];
    for (unsigned round = 0; round < rounds; round++) {
        for (size_t i = 0; i < STRESS_POOLS; i++) {
            sluice_pool_control_config cc = stress_cfg(round, i);
            if (!on[i]) {
                if (sluice_service_set_control(s.svc, s.pools[i], &cc, err, sizeof err) != SLUICE_OK) {
                    fail_msg("round %u: set_control %s: %s", round, STRESS_NAMES[i], err);
                }
                on[i] = true;
            } else if ((round + i) % 4 == 0) {
                /* Reconfigure in place, as a reload with new values does. */
                if (sluice_service_update_control(s.svc, s.pools[i], &cc, err, sizeof err) != SLUICE_OK) {
                    fail_msg("round %u: update_control %s: %s", round, STRESS_NAMES[i], err);
                }
            } else {
                assert_int_equal(sluice_service_remove_control(s.svc, s.pools[i]), SLUICE_OK);
                on[i] = false;
            }
        }
        /* Let the thread tick and the others race with each state. */
        if (round % 8 == 0) {
            unsigned seen = atomic_load(&s.scrapes);
            WAIT_FOR(atomic_load(&s.scrapes) > seen, "a scrape between rounds");
            for (size_t i = 0; i < STRESS_POOLS; i++) {
                sluice_pool_control_stats cs;
                if (on[i]) {
                    WAIT_FOR(sluice_service_control_stats(s.svc, s.pools[i], &cs) == SLUICE_OK &&
                                 cs.ticks >= 2,
                             "round %u: %s's controller ticked", round, STRESS_NAMES[i]);
                    break;
                }
            }
        }
    }
    atomic_store(&s.stop, true);
    for (size_t t = 0; t < 3; t++) {
        assert_int_equal(pthread_join(th[t], NULL), 0);
    }
    print_message("%u rounds, %u scrapes, %u stats/pin/release calls\n", rounds, atomic_load(&s.scrapes),
                  atomic_load(&s.calls));
    assert_int_equal(atomic_load(&s.torn), 0);
    assert_true(atomic_load(&s.scrapes) > 0);
    assert_true(atomic_load(&s.calls) > 0);
    /* The end state is the last round's. */
    char *text = scrape(s.svc);
    for (size_t i = 0; i < STRESS_POOLS; i++) {
        sluice_pool_control_stats cs;
        assert_int_equal(sluice_service_control_stats(s.svc, s.pools[i], &cs),
                         on[i] ? SLUICE_OK : SLUICE_ENOENT);
        assert_int_equal(any_series_of(text, STRESS_NAMES[i]), on[i]);
    }
    free(text);
    sluice_service_destroy(s.svc);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_remove_contract),
        cmocka_unit_test(test_remove_with_probe_queued),
        cmocka_unit_test(test_remove_stress),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
