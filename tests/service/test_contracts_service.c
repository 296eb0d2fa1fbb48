/*
 * tests/service/test_contracts_service.c - the promises of
 * sluice/service.h, lifecycle.h and router.h probed at their extremes,
 * read from the headers alone: health checks at their name and count
 * limits, readiness weights at and past [0, 1], controllers refused and
 * pinned through the service, watchers with every callback NULL and at
 * their count limit (one leaving and another joining inside a call); the
 * lifecycle's timeouts changed after add and after the sequence began;
 * router names at 255 bytes and 256, tenants at 65536 and 65537.
 *
 * No test sleeps for an event or asserts on a time. Drains that must time
 * out get a 1 ns timeout on the system clock (the tasks they wait for are
 * held at a gate, so the deadline always comes first); tasks held at a
 * gate also return when told to stop.
 */
#include <errno.h>
#include <math.h>
#include <pthread.h>
#include <setjmp.h>
#include <signal.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "common/counting_clock.h"
#include "common/wait.h"
#include "sync/bg_call.h"
#include "sluice/lifecycle.h"
#include "sluice/router.h"
#include "sluice/service.h"
#include "sluice/task.h"
#include "sluice/tenant.h"

#include "service/service_internal.h"

static void quiet(void *user, const char *line)
{
    (void)user;
    (void)line;
}

static _Atomic int abandoned;

static void count_abandon(const sluice_abandoned *task, void *user)
{
    (void)task;
    (void)user;
    atomic_fetch_add(&abandoned, 1);
}

static sluice_pool_config pool_cfg(const char *name, unsigned k)
{
    sluice_pool_config pc;
    sluice_pool_config_init(&pc);
    pc.name = name;
    pc.workers = k;
    pc.queue_capacity = 16;
    pc.abandon_handler = count_abandon;
    return pc;
}

static sluice_pool *make_pool(const char *name, unsigned k)
{
    sluice_pool_config pc = pool_cfg(name, k);
    sluice_pool *p = NULL;
    char err[256];
    if (sluice_pool_create(&pc, &p, err, sizeof err) != SLUICE_OK) {
        fail_msg("pool create: %s", err);
    }
    return p;
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

static const char *name_of(char *buf, size_t n)
{
    memset(buf, 'c', n);
    buf[n] = '\0';
    return buf;
}

/* ---- service.h: health checks ------------------------------------------------------- */

typedef struct check_user {
    int index;
    _Atomic int runs;
} check_user;

static sluice_health_state check_fn(void *user, char *line, size_t len)
{
    check_user *u = user;
    atomic_fetch_add(&u->runs, 1);
    snprintf(line, len, "check %d", u->index);
    return u->index % 3 == 0   ? SLUICE_HEALTH_OK
           : u->index % 3 == 1 ? SLUICE_HEALTH_DEGRADED
                               : SLUICE_HEALTH_FAIL;
}

/* Writes a line longer than any it may keep. */
static sluice_health_state long_line_fn(void *user, char *line, size_t len)
{
    (void)user;
    char big[1024];
    memset(big, 'x', sizeof big - 1);
    big[sizeof big - 1] = '\0';
    snprintf(line, len, "%s", big);
    return SLUICE_HEALTH_OK;
}

/* Names 1..31 bytes (0 and 32 refused), one check per user, at most
 * SLUICE_SERVICE_MAX_CHECKS; run_checks returns the count even past cap
 * and runs only cap of them, in the order added; a removed check never
 * runs again; a line is cut at SLUICE_SERVICE_CHECK_LINE_MAX. */
static void test_service_checks(void **state)
{
    (void)state;
    sluice_service *svc = make_service();
    check_user users[SLUICE_SERVICE_MAX_CHECKS + 1];
    for (int i = 0; i <= SLUICE_SERVICE_MAX_CHECKS; i++) {
        users[i].index = i;
        atomic_init(&users[i].runs, 0);
    }
    char name[SLUICE_SERVICE_CHECK_NAME_MAX + 2];
    assert_int_equal(sluice_service_add_check(svc, "", check_fn, &users[0]), SLUICE_EINVAL);
    assert_int_equal(sluice_service_add_check(svc, NULL, check_fn, &users[0]), SLUICE_EINVAL);
    assert_int_equal(sluice_service_add_check(svc, "x", NULL, &users[0]), SLUICE_EINVAL);
    assert_int_equal(sluice_service_add_check(NULL, "x", check_fn, &users[0]), SLUICE_EINVAL);
    assert_int_equal(
        sluice_service_add_check(svc, name_of(name, SLUICE_SERVICE_CHECK_NAME_MAX + 1), check_fn, &users[0]),
        SLUICE_EINVAL);
    assert_int_equal(sluice_service_run_checks(svc, NULL, 0), 0);
    assert_int_equal(
        sluice_service_add_check(svc, name_of(name, SLUICE_SERVICE_CHECK_NAME_MAX), check_fn, &users[0]),
        SLUICE_OK);
    assert_int_equal(sluice_service_add_check(svc, "again", check_fn, &users[0]), SLUICE_EBUSY);
    for (int i = 1; i < SLUICE_SERVICE_MAX_CHECKS; i++) {
        char n[16];
        snprintf(n, sizeof n, "c%d", i);
        assert_int_equal(sluice_service_add_check(svc, n, check_fn, &users[i]), SLUICE_OK);
    }
    assert_int_equal(sluice_service_add_check(svc, "extra", check_fn, &users[SLUICE_SERVICE_MAX_CHECKS]),
                     SLUICE_EOVERFLOW);

    /* cap 0: the count, nothing run. */
    sluice_service_check_result res[SLUICE_SERVICE_MAX_CHECKS];
    assert_int_equal(sluice_service_run_checks(svc, res, 0), SLUICE_SERVICE_MAX_CHECKS);
    for (int i = 0; i < SLUICE_SERVICE_MAX_CHECKS; i++) {
        assert_int_equal(atomic_load(&users[i].runs), 0);
    }
    /* cap 3: the first three, in order. */
    assert_int_equal(sluice_service_run_checks(svc, res, 3), SLUICE_SERVICE_MAX_CHECKS);
    assert_string_equal(res[0].name, name);
    assert_string_equal(res[0].line, "check 0");
    assert_int_equal(res[0].state, SLUICE_HEALTH_OK);
    assert_string_equal(res[1].name, "c1");
    assert_int_equal(res[1].state, SLUICE_HEALTH_DEGRADED);
    assert_string_equal(res[2].line, "check 2");
    assert_int_equal(res[2].state, SLUICE_HEALTH_FAIL);
    for (int i = 0; i < SLUICE_SERVICE_MAX_CHECKS; i++) {
        assert_int_equal(atomic_load(&users[i].runs), i < 3 ? 1 : 0);
    }
    /* Remove one in the middle: never run again, the order of the rest kept. */
    assert_int_equal(sluice_service_remove_check(svc, &users[SLUICE_SERVICE_MAX_CHECKS]), SLUICE_ENOENT);
    assert_int_equal(sluice_service_remove_check(svc, &users[1]), SLUICE_OK);
    assert_int_equal(sluice_service_remove_check(svc, &users[1]), SLUICE_ENOENT);
    assert_int_equal(sluice_service_run_checks(svc, res, SLUICE_SERVICE_MAX_CHECKS),
                     SLUICE_SERVICE_MAX_CHECKS - 1);
    assert_int_equal(atomic_load(&users[1].runs), 1);
    assert_string_equal(res[1].name, "c2");
    assert_string_equal(res[SLUICE_SERVICE_MAX_CHECKS - 2].line, "check 7");
    /* Room again: one more fits, and a long line is cut, not overrun. */
    static int long_user;
    assert_int_equal(sluice_service_add_check(svc, "long", long_line_fn, &long_user), SLUICE_OK);
    assert_int_equal(sluice_service_run_checks(svc, res, SLUICE_SERVICE_MAX_CHECKS),
                     SLUICE_SERVICE_MAX_CHECKS);
    assert_string_equal(res[SLUICE_SERVICE_MAX_CHECKS - 1].name, "long");
    assert_int_equal(strlen(res[SLUICE_SERVICE_MAX_CHECKS - 1].line), SLUICE_SERVICE_CHECK_LINE_MAX);
    assert_int_equal(sluice_service_run_checks(NULL, res, 1), 0);
    sluice_service_destroy(svc);
}

/* ---- service.h: readiness weights ---------------------------------------------------- */

/* [0, 1] in thousandths: both ends accepted, NaN and anything outside
 * refused with nothing changed; 1000 for NULL or a pool not in the service. */
static void test_service_readiness_weight(void **state)
{
    (void)state;
    sluice_service *svc = make_service();
    sluice_pool_config pc = pool_cfg("weighted", 1);
    sluice_pool *p = NULL;
    assert_int_equal(sluice_service_add_pool(svc, &pc, 0, &p, NULL, 0), SLUICE_OK);
    sluice_pool *foreign = make_pool("foreign", 1);
    assert_int_equal(sluice_service_readiness_weight(svc, p), 1000); /* the default */
    assert_int_equal(sluice_service_set_readiness_weight(svc, p, 0.0), SLUICE_OK);
    assert_int_equal(sluice_service_readiness_weight(svc, p), 0);
    assert_int_equal(sluice_service_set_readiness_weight(svc, p, 1.0), SLUICE_OK);
    assert_int_equal(sluice_service_readiness_weight(svc, p), 1000);
    assert_int_equal(sluice_service_set_readiness_weight(svc, p, 0.5), SLUICE_OK);
    assert_int_equal(sluice_service_readiness_weight(svc, p), 500);
    double bad[] = {NAN, -0.001, 1.001, INFINITY, -INFINITY};
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        assert_int_equal(sluice_service_set_readiness_weight(svc, p, bad[i]), SLUICE_EINVAL);
        assert_int_equal(sluice_service_readiness_weight(svc, p), 500); /* unchanged */
    }
    assert_int_equal(sluice_service_set_readiness_weight(svc, p, 0.0004), SLUICE_OK);
    assert_int_equal(sluice_service_readiness_weight(svc, p), 0); /* "0.0004 is 0" */
    assert_int_equal(sluice_service_set_readiness_weight(svc, foreign, 0.5), SLUICE_ENOENT);
    assert_int_equal(sluice_service_set_readiness_weight(NULL, p, 0.5), SLUICE_EINVAL);
    assert_int_equal(sluice_service_set_readiness_weight(svc, NULL, 0.5), SLUICE_EINVAL);
    assert_int_equal(sluice_service_readiness_weight(svc, foreign), 1000);
    assert_int_equal(sluice_service_readiness_weight(svc, NULL), 1000);
    assert_int_equal(sluice_service_readiness_weight(NULL, p), 1000);
    sluice_service_destroy(svc);
    sluice_pool_destroy(foreign);
}

/* ---- service.h: controllers ---------------------------------------------------------- */

/* set_control: NULL, a pool of another service, a config create refuses
 * (named in errbuf), a second controller; stats/pin/release without a
 * controller are ENOENT; a pin moves K, a release ends it once. */
static void test_service_control(void **state)
{
    (void)state;
    sluice_service *svc = make_service();
    sluice_pool_config pc = pool_cfg("controlled", 2);
    sluice_pool *p = NULL, *q = NULL;
    assert_int_equal(sluice_service_add_pool(svc, &pc, 0, &p, NULL, 0), SLUICE_OK);
    sluice_pool_config qc = pool_cfg("plain", 1);
    assert_int_equal(sluice_service_add_pool(svc, &qc, 0, &q, NULL, 0), SLUICE_OK);
    sluice_pool *foreign = make_pool("foreign", 1);
    sluice_pool_control_config cc;
    sluice_pool_control_config_init(&cc);
    char err[256];
    assert_int_equal(sluice_service_set_control(NULL, p, &cc, err, sizeof err), SLUICE_EINVAL);
    assert_int_equal(sluice_service_set_control(svc, NULL, &cc, err, sizeof err), SLUICE_EINVAL);
    assert_int_equal(sluice_service_set_control(svc, p, NULL, err, sizeof err), SLUICE_EINVAL);
    assert_int_equal(sluice_service_set_control(svc, foreign, &cc, err, sizeof err), SLUICE_ENOENT);
    assert_non_null(strstr(err, "not a pool of this service"));
    cc.util_high = 2;
    assert_int_equal(sluice_service_set_control(svc, p, &cc, err, sizeof err), SLUICE_EINVAL);
    assert_non_null(strstr(err, "util_high"));
    sluice_pool_control_stats cs;
    assert_int_equal(sluice_service_control_stats(svc, p, &cs), SLUICE_ENOENT); /* the refusal left none */
    cc.util_high = 0;
    cc.max_limit = 4;
    assert_int_equal(sluice_service_set_control(svc, p, &cc, err, sizeof err), SLUICE_OK);
    assert_int_equal(sluice_service_set_control(svc, p, &cc, err, sizeof err), SLUICE_EBUSY);
    assert_int_equal(sluice_service_control_stats(svc, p, &cs), SLUICE_OK);
    assert_false(cs.pinned);
    assert_int_equal(sluice_service_control_stats(svc, p, NULL), SLUICE_EINVAL);
    assert_int_equal(sluice_service_control_stats(svc, q, &cs), SLUICE_ENOENT);
    assert_int_equal(sluice_service_control_pin(svc, q, 2), SLUICE_ENOENT);
    assert_int_equal(sluice_service_control_release(svc, q), SLUICE_ENOENT);
    assert_int_equal(sluice_service_control_pin(svc, foreign, 2), SLUICE_ENOENT);
    assert_int_equal(sluice_service_control_pin(svc, p, 0), SLUICE_EINVAL);
    assert_int_equal(sluice_service_control_release(svc, p), SLUICE_ENOENT); /* not pinned */
    assert_int_equal(sluice_service_control_pin(svc, p, 3), SLUICE_OK);
    assert_int_equal(sluice_service_control_stats(svc, p, &cs), SLUICE_OK);
    assert_true(cs.pinned);
    sluice_pool_stats ps;
    sluice_pool_stats_get(p, &ps);
    assert_int_equal(ps.capacity, 3);
    assert_int_equal(sluice_service_control_release(svc, p), SLUICE_OK);
    assert_int_equal(sluice_service_control_release(svc, p), SLUICE_ENOENT);
    sluice_service_destroy(svc);
    sluice_pool_destroy(foreign);
}

/* ---- service.h: the rest of the refusals ---------------------------------------------- */

/* A watcher whose callbacks are all NULL ("every callback may be NULL")
 * through add_pool, set_ready and destroy; the refusals for a pool of
 * another service; look-ups past the end; run on NULL. */
static void test_service_refusals(void **state)
{
    (void)state;
    sluice_service *svc = make_service();
    static int watcher_user;
    sluice_service_watcher w = {.user = &watcher_user};
    assert_int_equal(sluice_service_watch(svc, &w), SLUICE_OK);
    sluice_pool_config pc = pool_cfg("watched", 1);
    sluice_pool *p = NULL;
    assert_int_equal(sluice_service_add_pool(svc, &pc, UINT64_MAX, &p, NULL, 0), SLUICE_OK);
    sluice_service_set_ready(svc, true);
    assert_true(sluice_service_ready(svc));
    sluice_service_set_ready(svc, false);
    sluice_pool *foreign = make_pool("foreign", 1);
    assert_int_equal(sluice_service_set_drain_timeout(svc, foreign, 5), SLUICE_ENOENT);
    assert_int_equal(sluice_service_set_drain_timeout(svc, p, UINT64_MAX), SLUICE_OK);
    assert_int_equal(sluice_service_unwatch(svc, &pc), SLUICE_ENOENT);
    assert_null(sluice_service_pool(svc, SIZE_MAX));
    assert_null(sluice_service_find_pool(svc, ""));
    assert_ptr_equal(sluice_service_find_pool(svc, "watched"), p);
    assert_int_equal(sluice_service_run(NULL, NULL), SLUICE_EINVAL);
    sluice_service_shutdown(svc);
    assert_true(sluice_service_stopping(svc));
    sluice_lifecycle_report rep;
    assert_int_equal(sluice_service_run(svc, &rep), SLUICE_OK);
    assert_int_equal(rep.pool_count, 1);
    assert_false(sluice_service_ready(svc));
    sluice_service_destroy(svc); /* pool_removed and detached are NULL: skipped */
    sluice_pool_destroy(foreign);
}

/* ---- service.h: watchers at their limit ------------------------------------------------ */

typedef struct limit_watcher {
    sluice_service *svc;
    _Atomic int ready_calls, added_calls;
    bool last_ready;
    bool swap; /* on ready 1: unwatch itself, then watch `next` and `one_more` */
    const sluice_service_watcher *next, *one_more;
    sluice_err self_r, next_r, more_r;
} limit_watcher;

static void lw_added(void *user, sluice_pool *pool)
{
    (void)pool;
    limit_watcher *l = user;
    atomic_fetch_add(&l->added_calls, 1);
}

static void lw_ready(void *user, bool ready)
{
    limit_watcher *l = user;
    atomic_fetch_add(&l->ready_calls, 1);
    l->last_ready = ready;
    if (ready && l->swap) {
        l->swap = false;
        l->self_r = sluice_service_unwatch(l->svc, l);
        l->next_r = sluice_service_watch(l->svc, l->next);     /* the slot is free at once */
        l->more_r = sluice_service_watch(l->svc, l->one_more); /* full again */
    }
}

/* SLUICE_SERVICE_MAX_WATCHERS watchers, one more refused; the last one,
 * hearing ready 1, unwatches itself and watches another in its place from
 * inside its call (the slot is free at once; one more is EOVERFLOW): the
 * new one hears the service as it is (replay), not the event being told.
 * The refusals: NULL service or watcher, a user not watching. */
static void test_service_watchers_at_the_limit(void **state)
{
    (void)state;
    sluice_service *svc = make_service();
    enum { N = SLUICE_SERVICE_MAX_WATCHERS };
    limit_watcher lw[N + 2];
    sluice_service_watcher w[N + 2];
    memset(lw, 0, sizeof lw);
    for (int i = 0; i < N + 2; i++) {
        lw[i].svc = svc;
        w[i] = (sluice_service_watcher){.pool_added = lw_added, .ready_changed = lw_ready, .user = &lw[i]};
    }
    sluice_pool_config pc = pool_cfg("limit", 1);
    assert_int_equal(sluice_service_add_pool(svc, &pc, 0, NULL, NULL, 0), SLUICE_OK);
    for (int i = 0; i < N; i++) {
        assert_int_equal(sluice_service_watch(svc, &w[i]), SLUICE_OK);
        assert_int_equal(atomic_load(&lw[i].added_calls), 1); /* before watch returned */
        assert_int_equal(atomic_load(&lw[i].ready_calls), 1);
    }
    assert_int_equal(sluice_service_watch(svc, &w[N]), SLUICE_EOVERFLOW);
    assert_int_equal(sluice_service_watch(svc, &w[0]), SLUICE_EBUSY);
    assert_int_equal(sluice_service_watch(svc, NULL), SLUICE_EINVAL);
    assert_int_equal(sluice_service_watch(NULL, &w[0]), SLUICE_EINVAL);
    assert_int_equal(sluice_service_unwatch(NULL, &lw[0]), SLUICE_EINVAL);
    assert_int_equal(sluice_service_unwatch(svc, &pc), SLUICE_ENOENT);
    lw[N - 1].swap = true;
    lw[N - 1].next = &w[N];
    lw[N - 1].one_more = &w[N + 1];
    sluice_service_set_ready(svc, true);
    assert_int_equal(lw[N - 1].self_r, SLUICE_OK);
    assert_int_equal(lw[N - 1].next_r, SLUICE_OK);
    assert_int_equal(lw[N - 1].more_r, SLUICE_EOVERFLOW);
    for (int i = 0; i < N; i++) {
        assert_int_equal(atomic_load(&lw[i].ready_calls), 2);
        assert_true(lw[i].last_ready);
    }
    /* The newcomer: its replay (one pool, ready 1) before set_ready returned. */
    assert_int_equal(atomic_load(&lw[N].added_calls), 1);
    assert_int_equal(atomic_load(&lw[N].ready_calls), 1);
    assert_true(lw[N].last_ready);
    assert_int_equal(atomic_load(&lw[N + 1].ready_calls), 0);
    /* The one that left hears nothing more; the others all do. */
    sluice_service_set_ready(svc, false);
    assert_int_equal(atomic_load(&lw[N - 1].ready_calls), 2);
    assert_int_equal(atomic_load(&lw[N].ready_calls), 2);
    assert_int_equal(atomic_load(&lw[0].ready_calls), 3);
    assert_int_equal(sluice_service_unwatch(svc, &lw[N - 1]), SLUICE_ENOENT);
    assert_int_equal(sluice_service_unwatch(svc, &lw[N]), SLUICE_OK);
    assert_int_equal(sluice_service_watch(svc, &w[N + 1]), SLUICE_OK);
    sluice_service_destroy(svc);
}

/* ---- service.h: threads that cannot start ------------------------------------------- */

static const char *fail_what; /* the thread kind whose start fails, or NULL */
static _Atomic int spawn_failures;

/* Fault injection: starting a thread named fail_what fails as under
 * RLIMIT_NPROC. */
static int failing_spawn(pthread_t *thread, void *(*start)(void *), void *arg, const char *what)
{
    if (fail_what && strcmp(what, fail_what) == 0) {
        atomic_fetch_add(&spawn_failures, 1);
        return EAGAIN;
    }
    return sluice__service_spawn_default(thread, start, arg, what);
}

static void noop_reload(void *user)
{
    (void)user;
}

/* ESYS "said in errbuf" with nothing left running and *out untouched,
 * when the signal or the reload thread cannot start; set_control's
 * ESYS leaves no controller behind, and the same call succeeds once
 * threads start again. */
static void test_service_thread_failures(void **state)
{
    (void)state;
    sluice__service_spawn = failing_spawn;
    const char *kinds[] = {"signal", "reload"};
    for (size_t i = 0; i < 2; i++) {
        fail_what = kinds[i];
        atomic_store(&spawn_failures, 0);
        sluice_service_config sc;
        sluice_service_config_init(&sc);
        sc.log = quiet;
        sc.reload = noop_reload; /* with signals: a reload thread too */
        sluice_service *sentinel = (sluice_service *)&sc, *svc = sentinel;
        char err[256] = "";
        assert_int_equal(sluice_service_create(&sc, &svc, err, sizeof err), SLUICE_ESYS);
        assert_ptr_equal(svc, sentinel);
        assert_int_equal(atomic_load(&spawn_failures), 1);
        assert_non_null(strstr(err, "thread"));
    }
    fail_what = NULL;

    sluice_service *svc = make_service();
    sluice_pool_config pc = pool_cfg("ctl_thread", 2);
    sluice_pool *p = NULL;
    assert_int_equal(sluice_service_add_pool(svc, &pc, 0, &p, NULL, 0), SLUICE_OK);
    sluice_pool_control_config cc;
    sluice_pool_control_config_init(&cc);
    char err[256] = "";
    fail_what = "control";
    assert_int_equal(sluice_service_set_control(svc, p, &cc, err, sizeof err), SLUICE_ESYS);
    assert_non_null(strstr(err, "thread"));
    sluice_pool_control_stats cs;
    assert_int_equal(sluice_service_control_stats(svc, p, &cs), SLUICE_ENOENT);
    fail_what = NULL;
    assert_int_equal(sluice_service_set_control(svc, p, &cc, err, sizeof err), SLUICE_OK);
    assert_int_equal(sluice_service_control_stats(svc, p, &cs), SLUICE_OK);
    sluice__service_spawn = sluice__service_spawn_default;
    sluice_service_destroy(svc);
}

/* ---- service.h: a controller removed, then set or updated again ---------------------- */

static sluice_err run_call(void *arg)
{
    return sluice_service_run(arg, NULL);
}

static uint64_t control_decisions(const sluice_pool_control_stats *cs)
{
    uint64_t n = 0;
    for (unsigned d = 0; d < SLUICE_CONTROL_DIRECTION_COUNT_; d++) {
        for (unsigned r = 0; r < SLUICE_CONTROL_REASON_COUNT_; r++) {
            n += cs->decisions[d][r];
        }
    }
    return n;
}

/* remove_control's promises probed in sequence: an update refused for a
 * pool with none leaves none; removal while the thread ticks every
 * millisecond; a second removal is ENOENT and so are stats, pin and
 * release; update after a removal makes a fresh controller (no pin, no
 * decisions, K where the old one left it); set/pin/remove/update cycles
 * (ASan sees a leaked or doubly freed controller); and a removal and a
 * new set after the service's shutdown drained the pools. */
static void test_service_control_after_remove(void **state)
{
    (void)state;
    sluice_service *svc = make_service();
    sluice_pool_config pc = pool_cfg("ctl-probe", 6);
    sluice_pool *p = NULL;
    assert_int_equal(sluice_service_add_pool(svc, &pc, 0, &p, NULL, 0), SLUICE_OK);
    char err[256];
    sluice_pool_control_config bad, cc;
    sluice_pool_control_config_init(&bad);
    bad.util_high = 2;
    sluice_pool_control_config_init(&cc);
    cc.interval_ns = SLUICE_NS_PER_MS;
    sluice_pool_control_stats cs;

    assert_int_equal(sluice_service_update_control(svc, p, &bad, err, sizeof err), SLUICE_EINVAL);
    assert_non_null(strstr(err, "util_high"));
    assert_int_equal(sluice_service_control_stats(svc, p, &cs), SLUICE_ENOENT);
    assert_int_equal(sluice_service_remove_control(svc, p), SLUICE_ENOENT);

    assert_int_equal(sluice_service_set_control(svc, p, &cc, err, sizeof err), SLUICE_OK);
    WAIT_FOR(sluice_service_control_stats(svc, p, &cs) == SLUICE_OK && cs.ticks >= 3, "the controller ticks");
    assert_int_equal(sluice_service_control_pin(svc, p, 3), SLUICE_OK);
    assert_int_equal(sluice_service_remove_control(svc, p), SLUICE_OK); /* while it ticks */
    assert_int_equal(sluice_service_remove_control(svc, p), SLUICE_ENOENT);
    assert_int_equal(sluice_service_control_stats(svc, p, &cs), SLUICE_ENOENT);
    assert_int_equal(sluice_service_control_pin(svc, p, 2), SLUICE_ENOENT);
    assert_int_equal(sluice_service_control_release(svc, p), SLUICE_ENOENT);
    sluice_pool_stats ps;
    sluice_pool_stats_get(p, &ps);
    assert_int_equal(ps.capacity, 3);

    /* An update after the removal makes a fresh one. */
    assert_int_equal(sluice_service_update_control(svc, p, &cc, err, sizeof err), SLUICE_OK);
    assert_int_equal(sluice_service_control_stats(svc, p, &cs), SLUICE_OK);
    assert_false(cs.pinned);
    assert_int_equal(control_decisions(&cs), 0);
    WAIT_FOR(sluice_service_control_stats(svc, p, &cs) == SLUICE_OK && cs.ticks >= 1, "the fresh one ticks");
    assert_int_equal(cs.limit, 3);
    assert_int_equal(sluice_service_set_control(svc, p, &cc, err, sizeof err), SLUICE_EBUSY);
    /* A refused update keeps the running controller. */
    assert_int_equal(sluice_service_update_control(svc, p, &bad, err, sizeof err), SLUICE_EINVAL);
    assert_int_equal(sluice_service_control_stats(svc, p, &cs), SLUICE_OK);

    for (unsigned i = 0; i < 50; i++) {
        assert_int_equal(sluice_service_remove_control(svc, p), SLUICE_OK);
        assert_int_equal(sluice_service_control_stats(svc, p, &cs), SLUICE_ENOENT);
        assert_int_equal(sluice_service_set_control(svc, p, &cc, err, sizeof err), SLUICE_OK);
        assert_int_equal(sluice_service_control_pin(svc, p, 1 + i % 6), SLUICE_OK);
        assert_int_equal(sluice_service_remove_control(svc, p), SLUICE_OK);
        assert_int_equal(sluice_service_update_control(svc, p, &cc, err, sizeof err), SLUICE_OK);
        assert_int_equal(sluice_service_control_stats(svc, p, &cs), SLUICE_OK);
        assert_false(cs.pinned);
    }
    sluice_pool_stats_get(p, &ps);
    assert_int_equal(ps.capacity, 1 + 49 % 6);

    /* After the shutdown drained the pool: removal and a new set still answer. */
    bg_call run;
    bg_call_start(&run, run_call, svc);
    sluice_service_shutdown(svc);
    assert_int_equal(bg_call_finish(&run, "the service's shutdown"), SLUICE_OK);
    sluice_pool_stats_get(p, &ps);
    assert_true(ps.draining);
    assert_int_equal(sluice_service_remove_control(svc, p), SLUICE_OK);
    assert_int_equal(sluice_service_remove_control(svc, p), SLUICE_ENOENT);
    assert_int_equal(sluice_service_set_control(svc, p, &cc, err, sizeof err), SLUICE_OK);
    WAIT_FOR(sluice_service_control_stats(svc, p, &cs) == SLUICE_OK && cs.ticks >= 2,
             "it ticks on a drained pool");
    sluice_service_destroy(svc);
}

/* ---- lifecycle.h ----------------------------------------------------------------------- */

typedef struct lc_case {
    sluice_lifecycle *lc;
    sluice_pool *pool;
    bool relax_in_stop; /* stop_producers lifts every limit (too late) */
} lc_case;

static void lc_stop(void *user)
{
    lc_case *c = user;
    if (c->relax_in_stop) {
        sluice_lifecycle_set_budget(c->lc, 0, 0);
        sluice_lifecycle_set_pool_timeout(c->lc, c->pool, 0);
    }
}

/* One held task running, two queued; returns the lifecycle's result. */
static sluice_err run_sequence(lc_case *c, gate *g, sluice_lifecycle_report *rep)
{
    for (int i = 0; i < 3; i++) {
        assert_int_equal(sluice_pool_submit(c->pool, task_gate, g), SLUICE_OK);
    }
    GATE_WAIT_ENTERED(g, 1);
    sluice_lifecycle_shutdown(c->lc);
    return sluice_lifecycle_wait(c->lc, rep);
}

static sluice_lifecycle *start_lc(lc_case *c, uint64_t budget)
{
    sluice_lifecycle_config cfg = {
        .drain_budget_ns = budget,
        .stop_producers = lc_stop,
        .log = quiet,
        .user = c,
        .no_signals = true,
    };
    sluice_lifecycle *lc = NULL;
    assert_int_equal(sluice_lifecycle_start(&cfg, &lc), SLUICE_OK);
    return lc;
}

/* set_pool_timeout after add and set_budget before the sequence are what
 * the drain uses (a 1 ns deadline: the held task cannot finish first, so
 * the drain times out and hands the queued two back); values changed once
 * the sequence has begun are not (the 1 ns stays); refusals. */
static void test_lifecycle_timeouts(void **state)
{
    (void)state;
    for (int round = 0; round < 3; round++) {
        atomic_store(&abandoned, 0);
        gate g;
        gate_init(&g);
        lc_case c = {.pool = make_pool("drained", 1)};
        c.lc = start_lc(&c, round == 2 ? 1 : 0);
        assert_int_equal(sluice_lifecycle_add_pool(c.lc, c.pool, 0), SLUICE_OK);
        if (round == 0) {
            /* The budget is no limit; the pool's own timeout, set after add, is 1 ns. */
            assert_int_equal(sluice_lifecycle_set_pool_timeout(c.lc, c.pool, 1), SLUICE_OK);
        } else if (round == 1) {
            /* No limit at start; the budget set before the signal is 1 ns. */
            sluice_lifecycle_set_budget(c.lc, 0, 1);
        } else {
            /* 1 ns at start; stop_producers lifts both limits, after the
             * sequence read them. */
            c.relax_in_stop = true;
        }
        sluice_lifecycle_report rep;
        sluice_err r = run_sequence(&c, &g, &rep);
        if (r != SLUICE_ETIMEDOUT) {
            fail_msg("round %d: the drain returned %s, want a 1 ns deadline's ETIMEDOUT", round,
                     sluice_strerror(r));
        }
        assert_int_equal(rep.pool_count, 1);
        assert_int_equal(rep.pools[0].err, SLUICE_ETIMEDOUT);
        assert_true(rep.timed_out);
        assert_int_equal(rep.handed_back, 2);
        assert_int_equal(atomic_load(&abandoned), 2);
        assert_int_equal(sluice_lifecycle_add_pool(c.lc, c.pool, 0), SLUICE_EBUSY); /* begun */
        assert_int_equal(sluice_lifecycle_wait(c.lc, NULL), SLUICE_EBUSY);          /* twice */
        sluice_lifecycle_destroy(c.lc);
        sluice_pool_destroy(c.pool); /* the held task saw should_stop */
        assert_int_equal(atomic_load(&g.timeouts), 0);
        gate_destroy(&g);
    }

    /* Refusals, and the pool limit at SLUICE_LIFECYCLE_MAX_POOLS. */
    lc_case c = {.pool = make_pool("one", 1)};
    c.lc = start_lc(&c, 0);
    sluice_pool *foreign = make_pool("foreign", 1);
    assert_int_equal(sluice_lifecycle_set_pool_timeout(c.lc, foreign, 1), SLUICE_ENOENT);
    assert_int_equal(sluice_lifecycle_set_pool_timeout(c.lc, NULL, 1), SLUICE_EINVAL);
    assert_int_equal(sluice_lifecycle_set_pool_timeout(NULL, c.pool, 1), SLUICE_EINVAL);
    assert_int_equal(sluice_lifecycle_add_pool(c.lc, NULL, 0), SLUICE_EINVAL);
    assert_int_equal(sluice_lifecycle_add_pool(NULL, c.pool, 0), SLUICE_EINVAL);
    sluice_lifecycle_set_budget(NULL, 1, 1); /* a no-op */
    sluice_pool *many[SLUICE_LIFECYCLE_MAX_POOLS];
    many[0] = c.pool;
    for (int i = 0; i < SLUICE_LIFECYCLE_MAX_POOLS; i++) {
        if (i > 0) {
            char n[16];
            snprintf(n, sizeof n, "p%d", i);
            many[i] = make_pool(n, 1);
        }
        assert_int_equal(sluice_lifecycle_add_pool(c.lc, many[i], UINT64_MAX), SLUICE_OK);
    }
    assert_int_equal(sluice_lifecycle_add_pool(c.lc, foreign, 0), SLUICE_EOVERFLOW);
    sluice_lifecycle_config bad = {.no_signals = true};
    assert_int_equal(sluice_lifecycle_start(&bad, NULL), SLUICE_EINVAL);
    sluice_lifecycle *none = NULL;
    assert_int_equal(sluice_lifecycle_start(NULL, &none), SLUICE_EINVAL);
    assert_false(sluice_lifecycle_stopping(c.lc));
    sluice_lifecycle_shutdown(c.lc);
    sluice_lifecycle_shutdown(c.lc); /* idempotent */
    assert_true(sluice_lifecycle_stopping(c.lc));
    sluice_lifecycle_report rep;
    assert_int_equal(sluice_lifecycle_wait(c.lc, &rep), SLUICE_OK); /* idle pool, UINT64_MAX timeouts */
    assert_int_equal(rep.pool_count, SLUICE_LIFECYCLE_MAX_POOLS);
    sluice_lifecycle_destroy(c.lc);
    sluice_lifecycle_destroy(NULL);
    for (int i = 0; i < SLUICE_LIFECYCLE_MAX_POOLS; i++) {
        sluice_pool_destroy(many[i]);
    }
    sluice_pool_destroy(foreign);
}

typedef struct grace_case {
    counting_clock *clk;
    atomic_bool not_ready;
    atomic_bool stopped;
    _Atomic uint64_t stopped_at;
    sluice_lifecycle *lc;
    sluice_err result;
} grace_case;

static void grace_ready(void *user, bool ready)
{
    grace_case *g = user;
    if (!ready) {
        atomic_store(&g->not_ready, true);
    }
}

static void grace_stop(void *user)
{
    grace_case *g = user;
    atomic_store(&g->stopped_at, atomic_load(&g->clk->now));
    atomic_store(&g->stopped, true);
}

static sluice_err grace_wait(void *arg)
{
    grace_case *g = arg;
    return sluice_lifecycle_wait(g->lc, NULL);
}

/* A grace period at the top of its range waits (polling the clock) until
 * the clock gets there; now + grace must not wrap to a time in the past
 * and skip the grace. */
static void test_lifecycle_grace_at_max(void **state)
{
    (void)state;
    counting_clock clk;
    counting_clock_init(&clk, 1000 * SLUICE_NS_PER_SEC);
    grace_case g = {.clk = &clk};
    sluice_lifecycle_config cfg = {
        .shutdown_grace_ns = UINT64_MAX - 1,
        .set_ready = grace_ready,
        .stop_producers = grace_stop,
        .log = quiet,
        .user = &g,
        .no_signals = true,
        .clock = &clk.clock,
    };
    assert_int_equal(sluice_lifecycle_start(&cfg, &g.lc), SLUICE_OK);
    bg_call wait;
    bg_call_start(&wait, grace_wait, &g);
    sluice_lifecycle_shutdown(g.lc);
    WAIT_FOR(atomic_load(&g.not_ready), "step 1, not ready");
    uint64_t r0 = atomic_load(&clk.reads);
    /* Either the grace is being waited out (the clock is polled) or it was
     * skipped (the producers were stopped; the reads after that are few). */
    WAIT_FOR(atomic_load(&g.stopped) || atomic_load(&clk.reads) >= r0 + 20, "the grace wait or its end");
    if (atomic_load(&g.stopped)) {
        fail_msg("a grace of UINT64_MAX - 1 ns ended at once (producers stopped at %llu ns, the start)",
                 (unsigned long long)atomic_load(&g.stopped_at));
    }
    atomic_store(&clk.now, UINT64_MAX); /* the end of time: the grace is over */
    assert_int_equal(bg_call_finish(&wait, "the sequence after the grace"), SLUICE_OK);
    assert_true(atomic_load(&g.stopped));
    assert_true(atomic_load(&g.stopped_at) == UINT64_MAX);
    sluice_lifecycle_destroy(g.lc);
}

/* ---- router.h ------------------------------------------------------------------------- */

/* Tier and tenant names at 255 bytes (kept, routed) and 256 (refused);
 * SLUICE_ROUTER_MAX_TENANTS tenants and one more; NULL arguments;
 * tier_get past the end; a fair tier whose listed tenant the pool refuses
 * (longer than SLUICE_TENANT_NAME_MAX) fails create with nothing kept. */
static void test_router_extremes(void **state)
{
    (void)state;
    sluice_pool *pool = make_pool("tiered", 1);
    char tier255[257], tenant255[257], err[512];
    name_of(tier255, 255);
    memset(tenant255, 't', 255);
    tenant255[255] = '\0';
    const char *tenants[] = {tenant255, NULL};
    sluice_router_tier tier = {tier255, pool, tenants};
    sluice_router *r = NULL;
    assert_int_equal(sluice_router_create(&tier, 1, &r, err, sizeof err), SLUICE_OK);
    sluice_route rt;
    assert_int_equal(sluice_router_route(r, tenant255, &rt, err, sizeof err), SLUICE_OK);
    assert_ptr_equal(rt.pool, pool);
    assert_string_equal(rt.tier, tier255);
    assert_string_equal(rt.tenant, tenant255);
    assert_int_equal(sluice_router_route(r, tier255, &rt, err, sizeof err), SLUICE_OK);
    assert_null(rt.tenant);
    assert_int_equal(sluice_router_route(r, tenant255, NULL, err, sizeof err), SLUICE_EINVAL);
    assert_int_equal(sluice_router_submit(r, NULL, task_gate, NULL, NULL), SLUICE_EINVAL);
    assert_int_equal(sluice_router_submit(NULL, tenant255, task_gate, NULL, NULL), SLUICE_EINVAL);
    assert_int_equal(sluice_router_tier_count(r), 1);
    assert_non_null(sluice_router_tier_get(r, 0));
    assert_string_equal(sluice_router_tier_get(r, 0)->tenants[0], tenant255);
    assert_null(sluice_router_tier_get(r, 1));
    assert_null(sluice_router_tier_get(r, SIZE_MAX));
    sluice_router_destroy(r);

    r = NULL;
    strcat(tier255, "c"); /* 256 bytes */
    assert_int_equal(sluice_router_create(&tier, 1, &r, err, sizeof err), SLUICE_EINVAL);
    assert_null(r);
    tier255[255] = '\0';
    strcat(tenant255, "t");
    assert_int_equal(sluice_router_create(&tier, 1, &r, err, sizeof err), SLUICE_EINVAL);
    assert_null(r);
    assert_int_equal(sluice_router_create(NULL, 1, &r, err, sizeof err), SLUICE_EINVAL);
    assert_int_equal(sluice_router_create(&tier, 1, NULL, err, sizeof err), SLUICE_EINVAL);

    /* The tenant bound, at it and one past, split over two tiers. */
    size_t n = SLUICE_ROUTER_MAX_TENANTS + 1;
    char(*names)[8] = malloc(n * sizeof *names);
    const char **list_a = calloc(n + 1, sizeof *list_a), **list_b = calloc(2, sizeof *list_b);
    assert_non_null(names);
    assert_non_null(list_a);
    assert_non_null(list_b);
    for (size_t i = 0; i < n; i++) {
        snprintf(names[i], sizeof names[i], "n%zx", i);
    }
    for (size_t i = 0; i + 1 < SLUICE_ROUTER_MAX_TENANTS; i++) {
        list_a[i] = names[i];
    }
    list_b[0] = names[SLUICE_ROUTER_MAX_TENANTS - 1];
    sluice_pool *pool_b = make_pool("tiered_b", 1);
    sluice_router_tier two[2] = {{"ta", pool, list_a}, {"tb", pool_b, list_b}};
    assert_int_equal(sluice_router_create(two, 2, &r, err, sizeof err), SLUICE_OK);
    assert_int_equal(sluice_router_route(r, names[SLUICE_ROUTER_MAX_TENANTS - 1], &rt, NULL, 0), SLUICE_OK);
    assert_ptr_equal(rt.pool, pool_b);
    assert_int_equal(sluice_router_route(r, names[0], &rt, NULL, 0), SLUICE_OK);
    assert_ptr_equal(rt.pool, pool);
    sluice_router_destroy(r);
    r = NULL;
    list_a[SLUICE_ROUTER_MAX_TENANTS - 1] = names[SLUICE_ROUTER_MAX_TENANTS];
    assert_int_equal(sluice_router_create(two, 2, &r, err, sizeof err), SLUICE_EINVAL);
    assert_null(r);
    assert_non_null(strstr(err, "tenants"));
    free(names);
    free(list_a);
    free(list_b);

    /* A fair tier: a tenant the router takes (<= 255 bytes) but the pool
     * refuses (> SLUICE_TENANT_NAME_MAX) fails create. */
    sluice_pool_config fc = pool_cfg("fair_tier", 1);
    fc.queue_discipline = SLUICE_QUEUE_FAIR;
    sluice_pool *fair = NULL;
    assert_int_equal(sluice_pool_create(&fc, &fair, err, sizeof err), SLUICE_OK);
    char longt[SLUICE_TENANT_NAME_MAX + 2];
    memset(longt, 'f', SLUICE_TENANT_NAME_MAX + 1);
    longt[SLUICE_TENANT_NAME_MAX + 1] = '\0';
    const char *fair_tenants[] = {"ok", longt, NULL};
    sluice_router_tier ft = {"fair", fair, fair_tenants};
    assert_int_equal(sluice_router_create(&ft, 1, &r, err, sizeof err), SLUICE_EINVAL);
    assert_null(r);
    longt[SLUICE_TENANT_NAME_MAX] = '\0'; /* exactly the maximum */
    assert_int_equal(sluice_router_create(&ft, 1, &r, err, sizeof err), SLUICE_OK);
    assert_int_equal(sluice_router_route(r, longt, &rt, NULL, 0), SLUICE_OK);
    assert_true(rt.fair);
    assert_non_null(rt.handle);
    assert_string_equal(sluice_tenant_name(rt.handle), longt);
    sluice_router_destroy(r);
    sluice_pool_destroy(fair);
    sluice_pool_destroy(pool_b);
    sluice_pool_destroy(pool);
}

int main(void)
{
    /* As a service does: block before any thread exists. */
    assert_int_equal(sluice_lifecycle_block_signals(), SLUICE_OK);
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_service_checks),          cmocka_unit_test(test_service_readiness_weight),
        cmocka_unit_test(test_service_control),         cmocka_unit_test(test_service_control_after_remove),
        cmocka_unit_test(test_service_refusals),        cmocka_unit_test(test_service_watchers_at_the_limit),
        cmocka_unit_test(test_service_thread_failures), cmocka_unit_test(test_lifecycle_timeouts),
        cmocka_unit_test(test_lifecycle_grace_at_max),  cmocka_unit_test(test_router_extremes),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
