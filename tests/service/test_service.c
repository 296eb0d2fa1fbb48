/*
 * tests/service/test_service.c - the service object (sluice/service.h):
 * created by hand with no YAML, each pool registered once and then known
 * to the registry, the lifecycle and the watchers; drain on a real SIGTERM;
 * the teardown order; the limits and refusals the header promises.
 *
 * Signals are real (kill(getpid(), SIGTERM)) and taken by the lifecycle's
 * sigwait thread; main blocks them before any thread, as a service does.
 * Waits are on conditions with a real-time safety limit, never on sleeps.
 */
#include <pthread.h>
#include <sched.h>
#include <setjmp.h>
#include <signal.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include <cmocka.h>

#include "common/wait.h"
#include "sluice/service.h"
#include "sluice/task.h"

/* ---- an event trace shared by watchers, hooks and handlers ----------- */

typedef struct trace {
    pthread_mutex_t mu;
    char events[64][48];
    size_t count;
    atomic_uint_fast64_t abandoned;
    atomic_int pool_alive_violations; /* pool_removed saw a dead pool */
} trace;

static void trace_init(trace *t)
{
    memset(t, 0, sizeof *t);
    pthread_mutex_init(&t->mu, NULL);
}

static void trace_destroy(trace *t)
{
    pthread_mutex_destroy(&t->mu);
}

static void note(trace *t, const char *fmt, ...) SLUICE_PRINTF(2, 3);
static void note(trace *t, const char *fmt, ...)
{
    pthread_mutex_lock(&t->mu);
    if (t->count < 64) {
        va_list ap;
        va_start(ap, fmt);
        vsnprintf(t->events[t->count++], sizeof t->events[0], fmt, ap);
        va_end(ap);
    }
    pthread_mutex_unlock(&t->mu);
}

/* Index of the first event equal to `what`, or -1. */
static int find_event(trace *t, const char *what)
{
    pthread_mutex_lock(&t->mu);
    int at = -1;
    for (size_t i = 0; i < t->count && at < 0; i++) {
        if (strcmp(t->events[i], what) == 0) {
            at = (int)i;
        }
    }
    pthread_mutex_unlock(&t->mu);
    return at;
}

static int count_events(trace *t, const char *what)
{
    pthread_mutex_lock(&t->mu);
    int n = 0;
    for (size_t i = 0; i < t->count; i++) {
        n += strcmp(t->events[i], what) == 0;
    }
    pthread_mutex_unlock(&t->mu);
    return n;
}

static void w_added(void *user, sluice_pool *pool)
{
    note(user, "added %s", sluice_pool_name(pool));
}

static void w_removed(void *user, sluice_pool *pool)
{
    trace *t = user;
    /* The pool must still be alive: its stats answer (ASan would catch a
     * freed one) and it has not been destroyed (it still has its name). */
    sluice_pool_stats st;
    sluice_pool_stats_get(pool, &st);
    if (!sluice_pool_name(pool)) {
        atomic_fetch_add(&t->pool_alive_violations, 1);
    }
    note(t, "removed %s", sluice_pool_name(pool));
}

static void w_ready(void *user, bool ready)
{
    note(user, "ready %d", ready);
}

static void w_detached(void *user)
{
    note(user, "detached");
}

static sluice_service_watcher watcher_for(trace *t)
{
    return (sluice_service_watcher){
        .pool_added = w_added,
        .pool_removed = w_removed,
        .ready_changed = w_ready,
        .detached = w_detached,
        .user = t,
    };
}

static void quiet(void *user, const char *line)
{
    (void)user;
    (void)line;
}

static void on_abandon(const sluice_abandoned *task, void *user)
{
    (void)task;
    trace *t = user;
    atomic_fetch_add(&t->abandoned, 1);
}

static void on_fini(void *user, unsigned worker_index, void *worker_state)
{
    (void)worker_index;
    (void)worker_state;
    note(user, "fini");
}

static sluice_pool_config pool_cfg(const char *name, trace *t, unsigned k, size_t q)
{
    sluice_pool_config pc;
    sluice_pool_config_init(&pc);
    pc.name = name;
    pc.workers = k;
    pc.queue_capacity = q;
    pc.abandon_handler = on_abandon;
    pc.worker_fini = on_fini;
    pc.user = t;
    return pc;
}

static sluice_service *make_service(trace *t, bool signals, sluice_metrics *reg)
{
    sluice_service_config sc;
    sluice_service_config_init(&sc);
    sc.name = "svc-test";
    sc.drain_budget_ns = 30 * SLUICE_NS_PER_SEC;
    sc.log = quiet;
    sc.user = t;
    sc.no_signals = !signals;
    sc.metrics = reg;
    sluice_service *svc = NULL;
    char err[256];
    assert_int_equal(sluice_service_create(&sc, &svc, err, sizeof err), SLUICE_OK);
    assert_string_equal(err, "");
    return svc;
}

static char *render(sluice_metrics *reg)
{
    char *text = NULL;
    size_t len = 0;
    assert_int_equal(sluice_metrics_render(reg, SLUICE_EXPO_PROMETHEUS, &text, &len), SLUICE_OK);
    return text;
}

static int count_substr(const char *hay, const char *needle)
{
    int n = 0;
    size_t at = 0, len = strlen(needle);
    while (len && hay[at]) {
        if (strncmp(hay + at, needle, len) == 0) {
            n++;
        }
        at++;
    }
    return n;
}

/* Wait (bounded) until the trace holds `what`. */
static void wait_event(trace *t, const char *what)
{
    WAIT_FOR(find_event(t, what) >= 0, "event \"%s\"", what);
}

/* ---- tests ------------------------------------------------------------ */

/* Created by hand: pools are found by index and name, exported to the
 * service's own registry once each, and destroyed by the service. */
static void test_create_by_hand(void **state)
{
    (void)state;
    trace t;
    trace_init(&t);
    sluice_service *svc = make_service(&t, false, NULL);
    assert_string_equal(sluice_service_name(svc), "svc-test");
    assert_int_equal(sluice_service_pool_count(svc), 0);
    assert_false(sluice_service_ready(svc));
    sluice_pool_config a = pool_cfg("alpha", &t, 2, 16), b = pool_cfg("beta", &t, 1, 16);
    sluice_pool *pa = NULL, *pb = NULL;
    char err[256];
    assert_int_equal(sluice_service_add_pool(svc, &a, 0, &pa, err, sizeof err), SLUICE_OK);
    assert_int_equal(sluice_service_add_pool(svc, &b, SLUICE_NS_PER_SEC, &pb, err, sizeof err), SLUICE_OK);
    assert_int_equal(sluice_service_pool_count(svc), 2);
    assert_ptr_equal(sluice_service_pool(svc, 0), pa);
    assert_ptr_equal(sluice_service_pool(svc, 1), pb);
    assert_null(sluice_service_pool(svc, 2));
    assert_ptr_equal(sluice_service_find_pool(svc, "beta"), pb);
    assert_null(sluice_service_find_pool(svc, "gamma"));
    assert_null(sluice_service_find_pool(svc, NULL));

    char *text = render(sluice_service_metrics(svc));
    assert_int_equal(count_substr(text, "pool_submitted_total{name=\"alpha\"}"), 1);
    assert_int_equal(count_substr(text, "pool_submitted_total{name=\"beta\"}"), 1);
    free(text);

    gate g;
    gate_init(&g);
    gate_open(&g);
    for (int i = 0; i < 10; i++) {
        assert_int_equal(sluice_pool_submit(i % 2 ? pa : pb, task_gate, &g), SLUICE_OK);
    }
    /* 10 s: the 5 queued tasks (and beta's worker thread start) must fit
     * in it or they are handed back and entered != 10 below; 2 s was a
     * window a loaded TSan run could come near. */
    assert_int_equal(sluice_service_set_drain_timeout(svc, pb, 10 * SLUICE_NS_PER_SEC), SLUICE_OK);
    sluice_service_shutdown(svc);
    assert_true(sluice_service_stopping(svc));
    sluice_lifecycle_report rep;
    assert_int_equal(sluice_service_run(svc, &rep), SLUICE_OK);
    assert_int_equal(rep.pool_count, 2);
    assert_int_equal(rep.signo, 0);
    assert_false(sluice_service_ready(svc)); /* a shutdown before run: never ready */
    assert_int_equal(sluice_service_wait_idle(svc, 0), SLUICE_OK);
    assert_int_equal(atomic_load(&g.entered), 10);
    assert_int_equal(sluice_service_run(svc, NULL), SLUICE_EBUSY);
    sluice_service_destroy(svc);
    sluice_service_destroy(NULL); /* a no-op */
    trace_destroy(&t);
}

/* Register once: a second pool with the same name is refused and leaves
 * nothing behind; a watcher hears each pool exactly once, whether it was
 * added before or after the watcher; a borrowed registry gets each pool
 * once. */
static void test_register_once(void **state)
{
    (void)state;
    trace t;
    trace_init(&t);
    sluice_metrics *reg = NULL;
    assert_int_equal(sluice_metrics_create(NULL, &reg), SLUICE_OK);
    sluice_service *svc = make_service(&t, false, reg);
    assert_ptr_equal(sluice_service_metrics(svc), reg);
    sluice_pool_config a = pool_cfg("alpha", &t, 1, 4);
    char err[256];
    assert_int_equal(sluice_service_add_pool(svc, &a, 0, NULL, err, sizeof err), SLUICE_OK);
    sluice_service_watcher w = watcher_for(&t);
    assert_int_equal(sluice_service_watch(svc, &w), SLUICE_OK);
    assert_int_equal(find_event(&t, "added alpha"), 0);
    assert_int_equal(find_event(&t, "ready 0"), 1);
    assert_int_equal(sluice_service_watch(svc, &w), SLUICE_EBUSY); /* same user */
    assert_int_equal(count_events(&t, "added alpha"), 1);

    sluice_pool *dup = NULL;
    assert_int_equal(sluice_service_add_pool(svc, &a, 0, &dup, err, sizeof err), SLUICE_EBUSY);
    assert_null(dup);
    assert_non_null(strstr(err, "alpha"));
    assert_non_null(strstr(err, "already registered"));
    sluice_pool_config bad = pool_cfg("bad", &t, 0, 4); /* K = 0 */
    assert_int_equal(sluice_service_add_pool(svc, &bad, 0, NULL, err, sizeof err), SLUICE_EINVAL);
    assert_true(err[0] != '\0');
    assert_int_equal(sluice_service_pool_count(svc), 1);

    sluice_pool_config b = pool_cfg("beta", &t, 1, 4);
    assert_int_equal(sluice_service_add_pool(svc, &b, 0, NULL, err, sizeof err), SLUICE_OK);
    assert_int_equal(count_events(&t, "added alpha"), 1);
    assert_int_equal(count_events(&t, "added beta"), 1);
    assert_int_equal(count_events(&t, "added bad"), 0);
    char *text = render(reg);
    assert_int_equal(count_substr(text, "pool_submitted_total{name=\"alpha\"}"), 1);
    assert_int_equal(count_substr(text, "pool_submitted_total{name=\"beta\"}"), 1);
    assert_int_equal(count_substr(text, "name=\"bad\""), 0);
    free(text);

    sluice_service_set_ready(svc, true);
    sluice_service_set_ready(svc, true); /* no change, no event */
    assert_int_equal(count_events(&t, "ready 1"), 1);
    assert_int_equal(sluice_service_unwatch(svc, &t), SLUICE_OK);
    assert_int_equal(sluice_service_unwatch(svc, &t), SLUICE_ENOENT);
    sluice_service_set_ready(svc, false);
    assert_int_equal(count_events(&t, "ready 0"), 1); /* unwatched: not told */
    sluice_service_destroy(svc);
    assert_int_equal(find_event(&t, "detached"), -1);
    /* The borrowed registry outlives the service, without its pools. */
    text = render(reg);
    assert_int_equal(count_substr(text, "name=\"alpha\""), 0);
    free(text);
    sluice_metrics_destroy(reg);
    trace_destroy(&t);
}

typedef struct runner {
    sluice_service *svc;
    sluice_lifecycle_report rep;
    sluice_err result;
    atomic_bool done;
} runner;

static void *run_main(void *arg)
{
    runner *r = arg;
    r->result = sluice_service_run(r->svc, &r->rep);
    atomic_store(&r->done, true);
    return NULL;
}

/* No YAML anywhere: a service created by hand drains on a real SIGTERM.
 * Readiness goes up when it runs and down before the drain, every queued
 * task runs, the pools refuse new work afterwards. */
static void test_drain_on_sigterm_without_yaml(void **state)
{
    (void)state;
    trace t;
    trace_init(&t);
    sluice_service *svc = make_service(&t, true, NULL);
    sluice_service_watcher w = watcher_for(&t);
    assert_int_equal(sluice_service_watch(svc, &w), SLUICE_OK);
    sluice_pool_config a = pool_cfg("ingest", &t, 2, 64);
    sluice_pool *pa = NULL;
    char err[256];
    assert_int_equal(sluice_service_add_pool(svc, &a, 0, &pa, err, sizeof err), SLUICE_OK);
    gate g;
    gate_init(&g);
    for (int i = 0; i < 20; i++) {
        assert_int_equal(sluice_pool_submit(pa, task_gate, &g), SLUICE_OK);
    }
    runner r = {.svc = svc};
    pthread_t th;
    assert_int_equal(pthread_create(&th, NULL, run_main, &r), 0);
    wait_event(&t, "ready 1");
    kill(getpid(), SIGTERM);
    wait_event(&t, "ready 0");
    gate_open(&g); /* the drain is under way: let the tasks finish */
    pthread_join(th, NULL);
    assert_int_equal(r.result, SLUICE_OK);
    assert_int_equal(r.rep.signo, SIGTERM);
    assert_int_equal(r.rep.pool_count, 1);
    assert_string_equal(r.rep.pools[0].name, "ingest");
    assert_int_equal(r.rep.handed_back, 0);
    assert_int_equal(sluice_service_wait_idle(svc, SAFETY_NS), SLUICE_OK);
    assert_int_equal(atomic_load(&g.entered), 20);
    assert_int_equal(sluice_pool_submit(pa, task_gate, &g), SLUICE_ECLOSED);
    assert_false(sluice_service_ready(svc));
    /* Ready went 0 (watch), 1 (run), 0 (step 1 of the shutdown). */
    assert_int_equal(count_events(&t, "ready 0"), 2);
    assert_int_equal(count_events(&t, "ready 1"), 1);
    sluice_service_destroy(svc);
    assert_int_equal(count_events(&t, "removed ingest"), 1);
    trace_destroy(&t);
}

/* The teardown order: watchers let go of each pool (last added first)
 * while it is alive, then hear detached; only then are the pools
 * destroyed (their workers' fini hooks run after every pool_removed), and
 * a borrowed registry no longer lists them. Also without run (an error
 * path): queued tasks are handed back as DESTROY. */
static void test_teardown_order(void **state)
{
    (void)state;
    trace t;
    trace_init(&t);
    sluice_metrics *reg = NULL;
    assert_int_equal(sluice_metrics_create(NULL, &reg), SLUICE_OK);
    sluice_service *svc = make_service(&t, false, reg);
    sluice_pool_config a = pool_cfg("first", &t, 1, 8), b = pool_cfg("second", &t, 1, 8);
    a.prewarm = true;
    b.prewarm = true;
    sluice_pool *pa = NULL;
    char err[256];
    assert_int_equal(sluice_service_add_pool(svc, &a, 0, &pa, err, sizeof err), SLUICE_OK);
    assert_int_equal(sluice_service_add_pool(svc, &b, 0, NULL, err, sizeof err), SLUICE_OK);
    sluice_service_watcher w = watcher_for(&t);
    assert_int_equal(sluice_service_watch(svc, &w), SLUICE_OK);
    gate g;
    gate_init(&g);
    for (int i = 0; i < 4; i++) {
        assert_int_equal(sluice_pool_submit(pa, task_gate, &g), SLUICE_OK);
    }
    sluice_service_destroy(svc); /* never ran: the error-path teardown */

    int r2 = find_event(&t, "removed second"), r1 = find_event(&t, "removed first");
    int det = find_event(&t, "detached"), fini = find_event(&t, "fini");
    assert_true(r2 >= 0 && r1 > r2 && det > r1);
    assert_true(fini > det);
    assert_int_equal(count_events(&t, "fini"), 2);
    assert_int_equal(atomic_load(&t.pool_alive_violations), 0);
    /* 4 accepted: the one running saw should_stop and returned, the rest
     * came back through the abandon handler. */
    assert_int_equal(atomic_load(&g.entered) + (int)atomic_load(&t.abandoned), 4);
    assert_true(atomic_load(&t.abandoned) >= 3);
    char *text = render(reg);
    assert_int_equal(count_substr(text, "name=\"first\""), 0);
    assert_int_equal(count_substr(text, "name=\"second\""), 0);
    free(text);
    sluice_metrics_destroy(reg);
    trace_destroy(&t);
}

static void noop_watch(void *user, sluice_pool *pool)
{
    (void)user;
    (void)pool;
}

/* The limits and refusals the header names, at their extremes. */
static void test_limits_and_refusals(void **state)
{
    (void)state;
    trace t;
    trace_init(&t);
    char err[256];
    sluice_service *svc = NULL;
    assert_int_equal(sluice_service_create(NULL, &svc, err, sizeof err), SLUICE_EINVAL);
    sluice_service_config sc;
    sluice_service_config_init(&sc);
    assert_int_equal(sluice_service_create(&sc, NULL, err, sizeof err), SLUICE_EINVAL);
    char longname[SLUICE_SERVICE_NAME_MAX + 2];
    memset(longname, 'n', sizeof longname - 1);
    longname[sizeof longname - 1] = '\0';
    sc.name = longname;
    sc.no_signals = true;
    sc.log = quiet;
    assert_int_equal(sluice_service_create(&sc, &svc, err, sizeof err), SLUICE_EINVAL);
    assert_non_null(strstr(err, "name"));
    longname[SLUICE_SERVICE_NAME_MAX] = '\0'; /* exactly the maximum */
    assert_int_equal(sluice_service_create(&sc, &svc, NULL, 0), SLUICE_OK);
    assert_int_equal(strlen(sluice_service_name(svc)), SLUICE_SERVICE_NAME_MAX);
    sluice_service_destroy(svc);

    sc.name = NULL; /* default name */
    assert_int_equal(sluice_service_create(&sc, &svc, err, sizeof err), SLUICE_OK);
    assert_string_equal(sluice_service_name(svc), "service");
    assert_int_equal(sluice_service_add_pool(svc, NULL, 0, NULL, err, sizeof err), SLUICE_EINVAL);
    for (int i = 0; i < SLUICE_SERVICE_MAX_POOLS; i++) {
        char name[16];
        snprintf(name, sizeof name, "p%d", i);
        sluice_pool_config pc = pool_cfg(name, &t, 1, 1);
        pc.worker_fini = NULL;
        assert_int_equal(sluice_service_add_pool(svc, &pc, UINT64_MAX, NULL, err, sizeof err), SLUICE_OK);
    }
    sluice_pool_config extra = pool_cfg("extra", &t, 1, 1);
    assert_int_equal(sluice_service_add_pool(svc, &extra, 0, NULL, err, sizeof err), SLUICE_EOVERFLOW);
    assert_non_null(strstr(err, "extra"));
    assert_int_equal(sluice_service_pool_count(svc), SLUICE_SERVICE_MAX_POOLS);

    sluice_service_watcher ws[SLUICE_SERVICE_MAX_WATCHERS + 1];
    int users[SLUICE_SERVICE_MAX_WATCHERS + 1];
    for (int i = 0; i <= SLUICE_SERVICE_MAX_WATCHERS; i++) {
        ws[i] = (sluice_service_watcher){.pool_added = noop_watch, .user = &users[i]};
        assert_int_equal(sluice_service_watch(svc, &ws[i]),
                         i < SLUICE_SERVICE_MAX_WATCHERS ? SLUICE_OK : SLUICE_EOVERFLOW);
    }
    assert_int_equal(sluice_service_watch(svc, NULL), SLUICE_EINVAL);
    sluice_pool *p0 = sluice_service_pool(svc, 0);
    assert_int_equal(sluice_service_set_drain_timeout(svc, p0, 0), SLUICE_OK);
    assert_int_equal(sluice_service_set_drain_timeout(svc, NULL, 0), SLUICE_EINVAL);
    sluice_service_set_budget(svc, 0, UINT64_MAX);
    sluice_service_set_budget(NULL, 0, 0); /* a no-op */

    sluice_service_shutdown(svc);
    sluice_service_shutdown(svc); /* idempotent */
    sluice_pool_config late = pool_cfg("late", &t, 1, 1);
    sluice_service_destroy(NULL);
    assert_int_equal(sluice_service_add_pool(svc, &late, 0, NULL, err, sizeof err), SLUICE_EBUSY);
    assert_non_null(strstr(err, "shutdown"));
    sluice_lifecycle_report rep;
    assert_int_equal(sluice_service_run(svc, &rep), SLUICE_OK);
    assert_int_equal(rep.pool_count, SLUICE_SERVICE_MAX_POOLS);
    assert_int_equal(sluice_service_wait_idle(svc, UINT64_MAX), SLUICE_OK);
    sluice_service_destroy(svc);

    /* A pool from another service's registry with the same name: refused,
     * nothing left behind. */
    sluice_metrics *reg = NULL;
    assert_int_equal(sluice_metrics_create(NULL, &reg), SLUICE_OK);
    sluice_service *s1 = make_service(&t, false, reg), *s2 = make_service(&t, false, reg);
    sluice_pool_config same = pool_cfg("same", &t, 1, 1);
    assert_int_equal(sluice_service_add_pool(s1, &same, 0, NULL, err, sizeof err), SLUICE_OK);
    assert_int_equal(sluice_service_add_pool(s2, &same, 0, NULL, err, sizeof err), SLUICE_EBUSY);
    assert_non_null(strstr(err, "registry"));
    assert_int_equal(sluice_service_pool_count(s2), 0);
    sluice_service_destroy(s2);
    sluice_service_destroy(s1);
    sluice_metrics_destroy(reg);
    trace_destroy(&t);
}

typedef struct ticker {
    sluice_fake_clock *fake;
    atomic_bool stop;
} ticker;

/* Moves the fake clock 100 ms per millisecond of real time until told. */
static void *tick_main(void *arg)
{
    ticker *tk = arg;
    while (!atomic_load(&tk->stop)) {
        sluice_fake_clock_advance(tk->fake, 100 * SLUICE_NS_PER_MS);
        struct timespec ts = {0, 1000000};
        nanosleep(&ts, NULL);
    }
    return NULL;
}

/* wait_idle: a running task keeps it from returning OK until the task
 * returns; its timeout is measured on the service's clock (a fake one
 * here, moved by a ticker thread). */
static void test_wait_idle_timeout_on_injected_clock(void **state)
{
    (void)state;
    trace t;
    trace_init(&t);
    sluice_fake_clock fake;
    sluice_fake_clock_init(&fake, SLUICE_NS_PER_SEC);
    sluice_service_config sc;
    sluice_service_config_init(&sc);
    sc.no_signals = true;
    sc.log = quiet;
    sc.clock = &fake.clock;
    sluice_service *svc = NULL;
    assert_int_equal(sluice_service_create(&sc, &svc, NULL, 0), SLUICE_OK);
    sluice_pool_config a = pool_cfg("busy", &t, 1, 4);
    a.worker_fini = NULL;
    sluice_pool *pa = NULL;
    char err[256];
    assert_int_equal(sluice_service_add_pool(svc, &a, 0, &pa, err, sizeof err), SLUICE_OK);
    gate g;
    gate_init(&g);
    assert_int_equal(sluice_pool_submit(pa, task_gate, &g), SLUICE_OK);
    GATE_WAIT_ENTERED(&g, 1);
    ticker tk = {.fake = &fake};
    pthread_t th;
    assert_int_equal(pthread_create(&th, NULL, tick_main, &tk), 0);
    uint64_t before = sluice_clock_now(&fake.clock);
    assert_int_equal(sluice_service_wait_idle(svc, 5 * SLUICE_NS_PER_SEC), SLUICE_ETIMEDOUT);
    assert_true(sluice_clock_now(&fake.clock) >= before + 5 * SLUICE_NS_PER_SEC);
    atomic_store(&tk.stop, true);
    pthread_join(th, NULL);
    gate_open(&g);
    assert_int_equal(sluice_service_wait_idle(svc, 0), SLUICE_OK);
    assert_int_equal(atomic_load(&g.entered), 1);
    sluice_service_destroy(svc);
    trace_destroy(&t);
}

int main(void)
{
    /* As a service does: block before any thread exists. */
    assert_int_equal(sluice_lifecycle_block_signals(), SLUICE_OK);
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_create_by_hand),
        cmocka_unit_test(test_register_once),
        cmocka_unit_test(test_drain_on_sigterm_without_yaml),
        cmocka_unit_test(test_teardown_order),
        cmocka_unit_test(test_limits_and_refusals),
        cmocka_unit_test(test_wait_idle_timeout_on_injected_clock),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
