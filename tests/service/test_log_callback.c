/*
 * tests/service/test_log_callback.c - the service's log callback runs with
 * no service lock held, so it may call back into the service.
 *
 * The controllers log under their own locks, under the control list's lock
 * (a tick, a pin) and, for update_control, under the service's watcher
 * lock. The callback used to be called right there: one that called
 * watch/unwatch or a control call deadlocked on a lock its own thread held,
 * or against a thread in set/update/remove_control (ABBA). Now the service
 * queues those lines and each thread delivers its own once it holds no
 * lock. Each test runs the calls that log on a helper thread and waits for
 * them with a watchdog (a latch with a safety limit): a deadlock fails the
 * test in seconds instead of hanging it.
 *
 *  - a line of a control call (update_control's "controller reconfigured"),
 *    delivered on the caller's thread before the call returns: the callback
 *    watches, unwatches, reads stats and pins (whose own line is delivered
 *    too);
 *  - a line of the control thread's tick ("resized from outside"): the
 *    callback reads stats and removes that very controller;
 *  - a stress: the control thread, a resizer/releaser and an updater log
 *    at once while every callback takes the watcher lock and the control
 *    list's lock. Sized by SLUICE_STRESS_SCALE; run it under TSan.
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

enum { ACT_NONE = 0, ACT_REENTER, ACT_REMOVE, ACT_STRESS };

typedef struct log_probe {
    sluice_service *svc;
    sluice_pool *pool;
    _Atomic int action;
    _Atomic int quiet;  /* set before destroy: no more calls into the service */
    _Atomic int in_cb;  /* callbacks running now */
    _Atomic int lines;  /* every line seen */
    _Atomic int failed; /* a call from a callback that returned an error */
    /* ACT_REENTER */
    _Atomic int reconfigured, pinned_by_hand;
    pthread_t reconfigured_on;
    sluice_err watch_r, unwatch_r, stats_r, pin_r;
    /* ACT_REMOVE */
    _Atomic int removed_from_cb;
    pthread_t removed_on;
    sluice_err remove_r;
    bool stats_pinned;
    /* ACT_STRESS */
    _Atomic int from_control_thread; /* "resized from outside": only a tick logs it */
    latch done;
} log_probe;

/* A watcher with no callbacks: watch/unwatch only take the watcher lock. */
static sluice_err watch_and_unwatch(sluice_service *svc, sluice_err *unwatch_r)
{
    int token; /* a user pointer no other frame uses at the same time */
    sluice_service_watcher w = {.user = &token};
    sluice_err r = sluice_service_watch(svc, &w);
    *unwatch_r = sluice_service_unwatch(svc, &token);
    return r;
}

static void on_line(void *user, const char *line)
{
    log_probe *p = user;
    atomic_fetch_add(&p->in_cb, 1);
    atomic_fetch_add(&p->lines, 1);
    int action = atomic_load(&p->action);
    if (atomic_load(&p->quiet)) {
        action = ACT_NONE;
    }
    sluice_pool_control_stats cs;
    if (action == ACT_REENTER) {
        if (strstr(line, "controller reconfigured")) {
            p->reconfigured_on = pthread_self();
            p->watch_r = watch_and_unwatch(p->svc, &p->unwatch_r);
            p->stats_r = sluice_service_control_stats(p->svc, p->pool, &cs);
            /* Its own line ("pinned at 3 by hand") comes back here, on this
             * thread, before the pin returns. */
            p->pin_r = sluice_service_control_pin(p->svc, p->pool, 3);
            atomic_fetch_add(&p->reconfigured, 1);
        } else if (strstr(line, "pinned at 3 by hand")) {
            atomic_fetch_add(&p->pinned_by_hand, 1);
        }
    } else if (action == ACT_REMOVE && strstr(line, "resized from outside")) {
        p->removed_on = pthread_self();
        p->stats_r = sluice_service_control_stats(p->svc, p->pool, &cs);
        p->stats_pinned = cs.pinned;
        p->remove_r = sluice_service_remove_control(p->svc, p->pool);
        atomic_fetch_add(&p->removed_from_cb, 1);
    } else if (action == ACT_STRESS) {
        if (strstr(line, "resized from outside")) {
            atomic_fetch_add(&p->from_control_thread, 1);
        }
        sluice_err un = SLUICE_OK;
        if (watch_and_unwatch(p->svc, &un) != SLUICE_OK || un != SLUICE_OK) {
            atomic_fetch_add(&p->failed, 1);
        }
        sluice_err r = sluice_service_control_stats(p->svc, p->pool, &cs);
        if (r != SLUICE_OK && r != SLUICE_ENOENT) {
            atomic_fetch_add(&p->failed, 1);
        }
    }
    atomic_fetch_sub(&p->in_cb, 1);
}

static sluice_service *make_service(log_probe *p, unsigned k)
{
    sluice_service_config sc;
    sluice_service_config_init(&sc);
    sc.no_signals = true;
    sc.log = on_line;
    sc.user = p;
    char err[256];
    if (sluice_service_create(&sc, &p->svc, err, sizeof err) != SLUICE_OK) {
        fail_msg("service create: %s", err);
    }
    sluice_pool_config pc;
    sluice_pool_config_init(&pc);
    pc.name = "p";
    pc.workers = k;
    pc.queue_capacity = 16;
    if (sluice_service_add_pool(p->svc, &pc, 0, &p->pool, err, sizeof err) != SLUICE_OK) {
        fail_msg("add_pool: %s", err);
    }
    latch_init(&p->done, 1);
    return p->svc;
}

/* No callback calls into the service from here on, and none is still
 * doing so: then the service may be destroyed. */
static void close_service(log_probe *p)
{
    atomic_store(&p->quiet, 1);
    WAIT_FOR(atomic_load(&p->in_cb) == 0, "log callbacks still running");
    sluice_service_destroy(p->svc);
    latch_destroy(&p->done);
}

/* A controller deciding every interval_ns. Without autotune it never
 * moves K itself, so a K it did not set is always someone else's resize
 * (logged by its next decision). */
static void set_control(log_probe *p, bool autotune, uint64_t interval_ns)
{
    sluice_pool_control_config cc;
    sluice_pool_control_config_init(&cc);
    cc.autotune = autotune;
    cc.interval_ns = interval_ns;
    char err[256];
    if (sluice_service_set_control(p->svc, p->pool, &cc, err, sizeof err) != SLUICE_OK) {
        fail_msg("set_control: %s", err);
    }
}

/* ---- a control call's line, on the caller's thread ---------------------- */

typedef struct update_job {
    log_probe *p;
    sluice_err r;
    int reconfigured_at_return; /* the callback ran before the call returned */
} update_job;

static void *run_update(void *arg)
{
    update_job *j = arg;
    sluice_pool_control_config cc;
    sluice_pool_control_config_init(&cc);
    cc.autotune = true;
    cc.util_high = 0.9;
    char err[256];
    j->r = sluice_service_update_control(j->p->svc, j->p->pool, &cc, err, sizeof err);
    j->reconfigured_at_return = atomic_load(&j->p->reconfigured);
    latch_count_down(&j->p->done);
    return NULL;
}

static void test_callback_reenters_from_a_control_call(void **state)
{
    (void)state;
    log_probe p = {0};
    make_service(&p, 4);
    set_control(&p, true, 0);
    atomic_store(&p.action, ACT_REENTER);
    update_job job = {.p = &p};
    pthread_t t;
    assert_int_equal(pthread_create(&t, NULL, run_update, &job), 0);
    /* The watchdog: a callback that deadlocks never lets the call return. */
    if (!latch_wait_bg(&p.done)) {
        fail_msg("update_control did not return: its log callback deadlocked calling back into the "
                 "service");
    }
    pthread_join(t, NULL);
    assert_int_equal(job.r, SLUICE_OK);
    assert_int_equal(job.reconfigured_at_return, 1); /* delivered before the call returned */
    assert_true(pthread_equal(p.reconfigured_on, t));
    assert_int_equal(p.watch_r, SLUICE_OK);
    assert_int_equal(p.unwatch_r, SLUICE_OK);
    assert_int_equal(p.stats_r, SLUICE_OK);
    assert_int_equal(p.pin_r, SLUICE_OK);
    assert_int_equal(atomic_load(&p.pinned_by_hand), 1);
    sluice_pool_control_stats cs;
    assert_int_equal(sluice_service_control_stats(p.svc, p.pool, &cs), SLUICE_OK);
    assert_true(cs.pinned);
    close_service(&p);
}

/* ---- a tick's line, on the control thread -------------------------------- */

static void test_callback_removes_its_controller_from_a_tick(void **state)
{
    (void)state;
    log_probe p = {0};
    make_service(&p, 4);
    set_control(&p, false, SLUICE_NS_PER_MS);
    sluice_pool_control_stats cs;
    WAIT_FOR(sluice_service_control_stats(p.svc, p.pool, &cs) == SLUICE_OK && cs.ticks >= 1,
             "the controller's first tick");
    atomic_store(&p.action, ACT_REMOVE);
    /* The next decision sees a K it did not set and logs it, on the
     * control thread; the callback then removes that controller. */
    assert_int_equal(sluice_pool_resize(p.pool, 3), SLUICE_OK);
    WAIT_FOR(atomic_load(&p.removed_from_cb) == 1,
             "the tick's line and the removal from its callback (a deadlock stops here)");
    assert_false(pthread_equal(p.removed_on, pthread_self()));
    assert_int_equal(p.stats_r, SLUICE_OK);
    assert_true(p.stats_pinned);
    assert_int_equal(p.remove_r, SLUICE_OK);
    assert_int_equal(sluice_service_control_stats(p.svc, p.pool, &cs), SLUICE_ENOENT);
    /* The control thread lives on: a new controller is ticked. */
    atomic_store(&p.action, ACT_NONE);
    set_control(&p, false, SLUICE_NS_PER_MS);
    WAIT_FOR(sluice_service_control_stats(p.svc, p.pool, &cs) == SLUICE_OK && cs.ticks >= 1,
             "the new controller's first tick");
    close_service(&p);
}

/* ---- order: a call from a callback does not overtake queued lines --------- */

/* Two pools on one fake clock, each with a controller: one round of ticks
 * logs "resized from outside" for both, queued together on the control
 * thread. The callback for pool a's line pins pool a, whose own line is
 * delivered before the pin returns: after pool b's line, which was logged
 * first (service.h: each thread's lines come in the order they were
 * logged). Delivering a thread's queue as one batch put the pin's line
 * ahead of b's. */
typedef struct order_probe {
    sluice_service *svc;
    sluice_pool *a;
    pthread_mutex_t mu;
    char seen[8][16]; /* "a", "b", "pin" in delivery order */
    int n;
    _Atomic int pinned;
    sluice_err pin_r;     /* written by the callback before pin_done */
    _Atomic int pin_done; /* the pin call has returned and pin_r is set */
} order_probe;

static void order_note(order_probe *o, const char *what)
{
    pthread_mutex_lock(&o->mu);
    if (o->n < 8) {
        snprintf(o->seen[o->n++], sizeof o->seen[0], "%s", what);
    }
    pthread_mutex_unlock(&o->mu);
}

static int order_count(order_probe *o)
{
    pthread_mutex_lock(&o->mu);
    int n = o->n;
    pthread_mutex_unlock(&o->mu);
    return n;
}

static void on_order_line(void *user, const char *line)
{
    order_probe *o = user;
    if (strstr(line, "by hand")) {
        order_note(o, "pin");
    } else if (strstr(line, "resized from outside")) {
        bool a = strstr(line, "pool=a ") != NULL;
        order_note(o, a ? "a" : "b");
        if (a && atomic_fetch_add(&o->pinned, 1) == 0) {
            o->pin_r = sluice_service_control_pin(o->svc, o->a, 3);
            atomic_store(&o->pin_done, 1); /* publishes pin_r (pinned is set before the call) */
        }
    }
}

static void test_reentrant_line_keeps_its_place(void **state)
{
    (void)state;
    static sluice_fake_clock fc; /* outlives the service's pools */
    sluice_fake_clock_init(&fc, 1000 * SLUICE_NS_PER_SEC);
    order_probe o = {0};
    pthread_mutex_init(&o.mu, NULL);
    sluice_service_config sc;
    sluice_service_config_init(&sc);
    sc.no_signals = true;
    sc.log = on_order_line;
    sc.user = &o;
    char err[256];
    assert_int_equal(sluice_service_create(&sc, &o.svc, err, sizeof err), SLUICE_OK);
    sluice_pool *pools[2];
    const char *names[2] = {"a", "b"};
    for (int i = 0; i < 2; i++) {
        sluice_pool_config pc;
        sluice_pool_config_init(&pc);
        pc.name = names[i];
        pc.workers = 4;
        pc.queue_capacity = 16;
        pc.clock = &fc.clock;
        if (sluice_service_add_pool(o.svc, &pc, 0, &pools[i], err, sizeof err) != SLUICE_OK) {
            fail_msg("add_pool %s: %s", names[i], err);
        }
        sluice_pool_control_config cc;
        sluice_pool_control_config_init(&cc);
        cc.autotune = false;
        cc.interval_ns = SLUICE_NS_PER_SEC;
        if (sluice_service_set_control(o.svc, pools[i], &cc, err, sizeof err) != SLUICE_OK) {
            fail_msg("set_control %s: %s", names[i], err);
        }
    }
    o.a = pools[0];
    /* Both controllers' first decisions, then both pools resized from
     * outside: the next round, one clock step later, logs both. */
    sluice_fake_clock_advance(&fc, SLUICE_NS_PER_SEC);
    sluice_pool_control_stats cs;
    for (int i = 0; i < 2; i++) {
        WAIT_FOR(sluice_service_control_stats(o.svc, pools[i], &cs) == SLUICE_OK && cs.ticks >= 1,
                 "pool %s's first decision", names[i]);
    }
    uint64_t ticks[2];
    for (int i = 0; i < 2; i++) {
        assert_int_equal(sluice_service_control_stats(o.svc, pools[i], &cs), SLUICE_OK);
        ticks[i] = cs.ticks;
        assert_int_equal(sluice_pool_resize(pools[i], 2), SLUICE_OK);
    }
    sluice_fake_clock_advance(&fc, SLUICE_NS_PER_SEC);
    WAIT_FOR(atomic_load(&o.pin_done) == 1, "pool a's line and the pin from its callback");
    for (int i = 0; i < 2; i++) {
        WAIT_FOR(sluice_service_control_stats(o.svc, pools[i], &cs) == SLUICE_OK && cs.ticks > ticks[i],
                 "pool %s's decision", names[i]);
    }
    WAIT_FOR(order_count(&o) >= 3, "three lines: a, b and the pin");
    pthread_mutex_lock(&o.mu);
    char order[64] = "";
    for (int i = 0; i < o.n; i++) {
        strcat(order, i ? " " : "");
        strcat(order, o.seen[i]);
    }
    pthread_mutex_unlock(&o.mu);
    assert_int_equal(o.pin_r, SLUICE_OK);
    /* Pool a ticks first (added first): a, then b (queued with it), then
     * the pin's line, queued while a's callback ran. */
    if (strcmp(order, "a b pin") != 0) {
        fail_msg("lines delivered as \"%s\", want \"a b pin\"", order);
    }
    sluice_service_destroy(o.svc);
    pthread_mutex_destroy(&o.mu);
}

/* ---- everyone logs at once ---------------------------------------------- */

typedef struct stress_job {
    log_probe *p;
    unsigned rounds;
    _Atomic int *left;
} stress_job;

static void *resize_and_release(void *arg)
{
    stress_job *j = arg;
    for (unsigned i = 0; i < j->rounds; i++) {
        sluice_pool_resize(j->p->pool, 2 + i % 3);             /* the tick logs "pinned" */
        sluice_service_control_release(j->p->svc, j->p->pool); /* "released", here */
    }
    if (atomic_fetch_sub(j->left, 1) == 1) {
        latch_count_down(&j->p->done);
    }
    return NULL;
}

static void *update_again(void *arg)
{
    stress_job *j = arg;
    for (unsigned i = 0; i < j->rounds; i++) {
        sluice_pool_control_config cc;
        sluice_pool_control_config_init(&cc);
        cc.autotune = true;
        cc.interval_ns = SLUICE_NS_PER_MS;
        cc.util_high = i % 2 ? 0.8 : 0.9; /* "reconfigured", under the watcher lock */
        if (sluice_service_update_control(j->p->svc, j->p->pool, &cc, NULL, 0) != SLUICE_OK) {
            atomic_fetch_add(&j->p->failed, 1);
        }
    }
    if (atomic_fetch_sub(j->left, 1) == 1) {
        latch_count_down(&j->p->done);
    }
    return NULL;
}

static void test_callbacks_against_control_calls_stress(void **state)
{
    (void)state;
    log_probe p = {0};
    make_service(&p, 4);
    set_control(&p, true, SLUICE_NS_PER_MS);
    unsigned rounds = (under_sanitizer() ? 100 : 400) * stress_scale();
    _Atomic int left = 2;
    stress_job job = {.p = &p, .rounds = rounds, .left = &left};
    atomic_store(&p.action, ACT_STRESS);
    pthread_t resizer, updater;
    assert_int_equal(pthread_create(&resizer, NULL, resize_and_release, &job), 0);
    assert_int_equal(pthread_create(&updater, NULL, update_again, &job), 0);
    if (!latch_wait_bg(&p.done)) {
        fail_msg("the resizer and the updater did not finish (%d left): a log callback deadlocked",
                 atomic_load(&left));
    }
    pthread_join(resizer, NULL);
    pthread_join(updater, NULL);
    assert_int_equal(atomic_load(&p.failed), 0);
    /* The control thread's callbacks took both locks too: one more of its
     * lines, for certain. With autotune off only a resize moves K; after
     * the release the controller's K is cs.limit (or its next decision
     * logs a resize it saw: that line counts too), so a resize to another
     * K is logged by its next decision. */
    sluice_pool_control_config cc;
    sluice_pool_control_config_init(&cc);
    cc.interval_ns = SLUICE_NS_PER_MS;
    assert_int_equal(sluice_service_update_control(p.svc, p.pool, &cc, NULL, 0), SLUICE_OK);
    int before = atomic_load(&p.from_control_thread);
    sluice_service_control_release(p.svc, p.pool);
    sluice_pool_control_stats cs;
    assert_int_equal(sluice_service_control_stats(p.svc, p.pool, &cs), SLUICE_OK);
    assert_int_equal(sluice_pool_resize(p.pool, cs.limit == 4 ? 3 : 4), SLUICE_OK);
    WAIT_FOR(atomic_load(&p.from_control_thread) > before, "a line from the control thread");
    assert_int_equal(atomic_load(&p.failed), 0);
    close_service(&p);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_callback_reenters_from_a_control_call),
        cmocka_unit_test(test_callback_removes_its_controller_from_a_tick),
        cmocka_unit_test(test_callbacks_against_control_calls_stress),
        cmocka_unit_test(test_reentrant_line_keeps_its_place),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
