/*
 * tests/service/test_watchers.c - service watchers are called with no
 * service lock held (sluice/service.h, sluice_service_watcher).
 *
 * Watcher calls used to be made under the service's watcher lock, so a
 * watcher that called add_pool, set_ready, watch or unwatch deadlocked on
 * it, and one slow watcher held up every call that took the lock
 * (set/update/remove_control among them). Each test that could deadlock
 * makes its calls on a helper thread and waits for it with a watchdog (a
 * latch with a safety limit): a deadlock fails the test in seconds.
 *
 *  - a watcher adds a pool, turns ready, watches a second watcher and
 *    reads the service from inside a call: each event is heard once, in
 *    order, after the call that caused it returned, never nested;
 *  - a watcher removes itself; a watcher removes another before it hears
 *    the same event;
 *  - a slow watcher holds up no other call (control, checks, readers,
 *    unwatch of another watcher); a notifier behind it waits for it;
 *  - unwatch on another thread waits for a call to that watcher in
 *    progress;
 *  - destroy with watchers that call back from pool_removed: no event
 *    after detached, add_pool and watch refused, set_ready heard by none;
 *  - out of memory inside a call (the test hook): add_pool and watch fail
 *    whole, and readiness is still told;
 *  - a stress of notifiers, watch/unwatch churn and re-entrant watchers,
 *    checking order, once-only, one call at a time and nothing after
 *    unwatch. Sized by SLUICE_STRESS_SCALE; run it under TSan.
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
#include "service/service_internal.h"
#include "sluice/service.h"

static sluice_service *make_service(void)
{
    sluice_service_config sc;
    sluice_service_config_init(&sc);
    sc.no_signals = true;
    sluice_service *svc = NULL;
    char err[256];
    if (sluice_service_create(&sc, &svc, err, sizeof err) != SLUICE_OK) {
        fail_msg("service create: %s", err);
    }
    return svc;
}

static sluice_pool_config pool_cfg(const char *name)
{
    sluice_pool_config pc;
    sluice_pool_config_init(&pc);
    pc.name = name;
    pc.workers = 1;
    pc.queue_capacity = 4;
    return pc;
}

/* add_pool, for any thread: the result only. */
static sluice_err add_pool(sluice_service *svc, const char *name)
{
    sluice_pool_config pc = pool_cfg(name);
    char err[256];
    return sluice_service_add_pool(svc, &pc, 0, NULL, err, sizeof err);
}

/* ---- a recording watcher ---------------------------------------------------- */

/* Calls in progress to any watcher of the test, and the most seen at
 * once: the service makes its calls one at a time. */
static _Atomic int calls_now, calls_most;

typedef struct rec rec;
struct rec {
    sluice_service *svc;
    pthread_mutex_t mu;
    char ev[64][48];
    size_t n;
    /* Optional hooks, run inside the call after it is recorded. */
    void (*on_added)(rec *r, sluice_pool *pool);
    void (*on_removed)(rec *r, sluice_pool *pool);
    void (*on_ready)(rec *r, bool ready);
    void *arg;
    _Atomic int after_detached; /* calls after detached */
    _Atomic bool detached;
};

static void rec_init(rec *r, sluice_service *svc)
{
    memset(r, 0, sizeof *r);
    r->svc = svc;
    pthread_mutex_init(&r->mu, NULL);
}

static void rec_destroy(rec *r)
{
    pthread_mutex_destroy(&r->mu);
}

static void rec_note(rec *r, const char *fmt, ...) SLUICE_PRINTF(2, 3);
static void rec_note(rec *r, const char *fmt, ...)
{
    if (atomic_load(&r->detached)) {
        atomic_fetch_add(&r->after_detached, 1);
    }
    pthread_mutex_lock(&r->mu);
    if (r->n < 64) {
        va_list ap;
        va_start(ap, fmt);
        vsnprintf(r->ev[r->n++], sizeof r->ev[0], fmt, ap);
        va_end(ap);
    }
    pthread_mutex_unlock(&r->mu);
}

static size_t rec_count(rec *r)
{
    pthread_mutex_lock(&r->mu);
    size_t n = r->n;
    pthread_mutex_unlock(&r->mu);
    return n;
}

/* The events joined with ", ", for one assert_string_equal. */
static const char *rec_text(rec *r, char *buf, size_t len)
{
    pthread_mutex_lock(&r->mu);
    size_t at = 0;
    buf[0] = '\0';
    for (size_t i = 0; i < r->n && at < len; i++) {
        int w = snprintf(buf + at, len - at, "%s%s", i ? ", " : "", r->ev[i]);
        at += w > 0 ? (size_t)w : 0;
    }
    pthread_mutex_unlock(&r->mu);
    return buf;
}

static void call_begin(void)
{
    int now = atomic_fetch_add(&calls_now, 1) + 1;
    int most = atomic_load(&calls_most);
    while (now > most && !atomic_compare_exchange_weak(&calls_most, &most, now)) {
    }
}

static void call_end(void)
{
    atomic_fetch_sub(&calls_now, 1);
}

static void r_added(void *user, sluice_pool *pool)
{
    rec *r = user;
    call_begin();
    rec_note(r, "added %s", sluice_pool_name(pool));
    if (r->on_added) {
        r->on_added(r, pool);
    }
    call_end();
}

static void r_removed(void *user, sluice_pool *pool)
{
    rec *r = user;
    call_begin();
    rec_note(r, "removed %s", sluice_pool_name(pool));
    if (r->on_removed) {
        r->on_removed(r, pool);
    }
    call_end();
}

static void r_ready(void *user, bool ready)
{
    rec *r = user;
    call_begin();
    rec_note(r, "ready %d", ready);
    if (r->on_ready) {
        r->on_ready(r, ready);
    }
    call_end();
}

static void r_detached(void *user)
{
    rec *r = user;
    call_begin();
    rec_note(r, "detached");
    atomic_store(&r->detached, true);
    call_end();
}

static sluice_service_watcher watcher_of(rec *r)
{
    return (sluice_service_watcher){
        .pool_added = r_added,
        .pool_removed = r_removed,
        .ready_changed = r_ready,
        .detached = r_detached,
        .user = r,
    };
}

/* ---- a call on a helper thread, with a watchdog ----------------------------- */

typedef struct job {
    sluice_service *svc;
    void (*fn)(struct job *j);
    void *arg;
    sluice_err r;
    latch done;
    pthread_t t;
} job;

static void *job_main(void *arg)
{
    job *j = arg;
    j->fn(j);
    latch_count_down(&j->done);
    return NULL;
}

static void job_start(job *j, sluice_service *svc, void (*fn)(job *j), void *arg)
{
    j->svc = svc;
    j->fn = fn;
    j->arg = arg;
    latch_init(&j->done, 1);
    assert_int_equal(pthread_create(&j->t, NULL, job_main, j), 0);
}

/* Wait for the job with a watchdog; false on a deadlock (the thread is
 * then left behind: the test fails anyway). */
static bool job_finish(job *j)
{
    if (!latch_wait_bg(&j->done)) {
        return false;
    }
    pthread_join(j->t, NULL);
    latch_destroy(&j->done);
    return true;
}

static void job_add_pool(job *j)
{
    j->r = add_pool(j->svc, j->arg);
}

static void job_set_ready(job *j)
{
    sluice_service_set_ready(j->svc, j->arg != NULL);
    j->r = SLUICE_OK;
}

static void job_destroy(job *j)
{
    sluice_service_destroy(j->svc);
    j->r = SLUICE_OK;
}

static void reset_call_counts(void)
{
    atomic_store(&calls_now, 0);
    atomic_store(&calls_most, 0);
}

/* ---- a watcher calls back into the service ---------------------------------- */

typedef struct reentry {
    rec *second;
    sluice_err add_r, watch_r, again_r;
    size_t heard_at_add_return; /* the first watcher's events when add_pool returned */
    size_t pools_seen;
    bool found_b, ready_seen;
} reentry;

static void reentry_on_added(rec *r, sluice_pool *pool)
{
    reentry *x = r->arg;
    if (strcmp(sluice_pool_name(pool), "a") != 0) {
        return;
    }
    x->add_r = add_pool(r->svc, "b");
    x->heard_at_add_return = rec_count(r);
    sluice_service_set_ready(r->svc, true);
    sluice_service_watcher w2 = watcher_of(x->second);
    x->watch_r = sluice_service_watch(r->svc, &w2);
    x->again_r = sluice_service_watch(r->svc, &w2); /* the same user: there already */
    x->pools_seen = sluice_service_pool_count(r->svc);
    x->found_b = sluice_service_find_pool(r->svc, "b") != NULL;
    x->ready_seen = sluice_service_ready(r->svc);
}

static void test_watcher_calls_back_into_the_service(void **state)
{
    (void)state;
    reset_call_counts();
    sluice_service *svc = make_service();
    rec first, second;
    rec_init(&first, svc);
    rec_init(&second, svc);
    reentry x = {.second = &second, .add_r = SLUICE_EINVAL, .watch_r = SLUICE_EINVAL};
    first.on_added = reentry_on_added;
    first.arg = &x;
    sluice_service_watcher w = watcher_of(&first);
    assert_int_equal(sluice_service_watch(svc, &w), SLUICE_OK);
    job j;
    job_start(&j, svc, job_add_pool, "a");
    if (!job_finish(&j)) {
        fail_msg("add_pool did not return: a watcher calling back into the service deadlocked");
    }
    assert_int_equal(j.r, SLUICE_OK);
    assert_int_equal(x.add_r, SLUICE_OK);
    assert_int_equal(x.watch_r, SLUICE_OK);
    assert_int_equal(x.again_r, SLUICE_EBUSY);
    /* Inside the call the service already holds b and is ready... */
    assert_int_equal(x.pools_seen, 2);
    assert_true(x.found_b);
    assert_true(x.ready_seen);
    /* ...but the events it caused wait for the call to return. */
    assert_int_equal(x.heard_at_add_return, 2); /* "ready 0", "added a" */
    char buf[512];
    assert_string_equal(rec_text(&first, buf, sizeof buf), "ready 0, added a, added b, ready 1");
    /* The second watcher, added inside the call, hears the service as it
     * was then (b added, ready) once, and not the events posted before. */
    assert_string_equal(rec_text(&second, buf, sizeof buf), "added a, added b, ready 1");
    assert_int_equal(atomic_load(&calls_most), 1); /* one call at a time, never nested */
    /* And it keeps hearing. */
    sluice_service_set_ready(svc, false);
    assert_string_equal(rec_text(&second, buf, sizeof buf), "added a, added b, ready 1, ready 0");
    sluice_service_destroy(svc);
    assert_string_equal(rec_text(&first, buf, sizeof buf),
                        "ready 0, added a, added b, ready 1, ready 0, removed b, removed a, detached");
    assert_int_equal(atomic_load(&first.after_detached), 0);
    assert_int_equal(atomic_load(&second.after_detached), 0);
    rec_destroy(&first);
    rec_destroy(&second);
}

/* ---- a watcher removes itself, or another ------------------------------------ */

typedef struct unwatcher {
    void *victim; /* the user to unwatch */
    sluice_err r, again;
    bool done;
} unwatcher;

static void unwatch_on_ready(rec *r, bool ready)
{
    unwatcher *u = r->arg;
    if (ready && !u->done) {
        u->done = true;
        u->r = sluice_service_unwatch(r->svc, u->victim);
        u->again = sluice_service_unwatch(r->svc, u->victim);
    }
}

static void test_watcher_removes_itself(void **state)
{
    (void)state;
    reset_call_counts();
    sluice_service *svc = make_service();
    rec self, after;
    rec_init(&self, svc);
    rec_init(&after, svc);
    unwatcher u = {.victim = &self, .r = SLUICE_EINVAL};
    self.on_ready = unwatch_on_ready;
    self.arg = &u;
    sluice_service_watcher w = watcher_of(&self), w2 = watcher_of(&after);
    assert_int_equal(sluice_service_watch(svc, &w), SLUICE_OK);
    assert_int_equal(sluice_service_watch(svc, &w2), SLUICE_OK);
    job j;
    job_start(&j, svc, job_set_ready, (void *)1);
    if (!job_finish(&j)) {
        fail_msg("set_ready did not return: a watcher removing itself waited for itself");
    }
    assert_int_equal(u.r, SLUICE_OK);
    assert_int_equal(u.again, SLUICE_ENOENT);
    assert_int_equal(add_pool(svc, "p"), SLUICE_OK);
    char buf[512];
    assert_string_equal(rec_text(&self, buf, sizeof buf), "ready 0, ready 1"); /* nothing after */
    assert_string_equal(rec_text(&after, buf, sizeof buf), "ready 0, ready 1, added p");
    assert_int_equal(sluice_service_unwatch(svc, &self), SLUICE_ENOENT);
    /* Its slot is free: it may come back, and hears the service anew. */
    self.on_ready = NULL;
    assert_int_equal(sluice_service_watch(svc, &w), SLUICE_OK);
    assert_string_equal(rec_text(&self, buf, sizeof buf), "ready 0, ready 1, added p, ready 1");
    sluice_service_destroy(svc);
    rec_destroy(&self);
    rec_destroy(&after);
}

static void unwatch_on_added(rec *r, sluice_pool *pool)
{
    (void)pool;
    unwatcher *u = r->arg;
    if (!u->done) {
        u->done = true;
        u->r = sluice_service_unwatch(r->svc, u->victim);
    }
}

/* The first watcher removes the second while telling both of one pool:
 * the second never hears of it (no call after removal), the third does. */
static void test_watcher_removes_another(void **state)
{
    (void)state;
    reset_call_counts();
    sluice_service *svc = make_service();
    rec one, two, three;
    rec_init(&one, svc);
    rec_init(&two, svc);
    rec_init(&three, svc);
    unwatcher u = {.victim = &two, .r = SLUICE_EINVAL};
    sluice_service_watcher w1 = watcher_of(&one), w2 = watcher_of(&two), w3 = watcher_of(&three);
    assert_int_equal(sluice_service_watch(svc, &w1), SLUICE_OK);
    assert_int_equal(sluice_service_watch(svc, &w2), SLUICE_OK);
    assert_int_equal(sluice_service_watch(svc, &w3), SLUICE_OK);
    one.on_added = unwatch_on_added;
    one.arg = &u;
    job j;
    job_start(&j, svc, job_add_pool, "p");
    if (!job_finish(&j)) {
        fail_msg("add_pool did not return: a watcher removing another deadlocked");
    }
    assert_int_equal(j.r, SLUICE_OK);
    assert_int_equal(u.r, SLUICE_OK);
    assert_int_equal(sluice_service_unwatch(svc, &two), SLUICE_ENOENT);
    char buf[512];
    assert_string_equal(rec_text(&one, buf, sizeof buf), "ready 0, added p");
    assert_string_equal(rec_text(&two, buf, sizeof buf), "ready 0");
    assert_string_equal(rec_text(&three, buf, sizeof buf), "ready 0, added p");
    sluice_service_destroy(svc);
    assert_string_equal(rec_text(&two, buf, sizeof buf), "ready 0"); /* not even detached */
    assert_string_equal(rec_text(&three, buf, sizeof buf), "ready 0, added p, removed p, detached");
    rec_destroy(&one);
    rec_destroy(&two);
    rec_destroy(&three);
}

/* ---- a slow watcher holds up no other call ----------------------------------- */

static void block_on_added(rec *r, sluice_pool *pool)
{
    if (strcmp(sluice_pool_name(pool), "a") == 0) {
        gate_pass(r->arg, false);
    }
}

static sluice_health_state ok_check(void *user, char *line, size_t len)
{
    (void)user;
    snprintf(line, len, "fine");
    return SLUICE_HEALTH_OK;
}

typedef struct others {
    sluice_pool *a;
    sluice_err control_r, remove_control_r, check_r, unwatch_r, weight_r;
    size_t pools, checks;
    bool ready;
    void *other_user;
} others;

/* Everything a service offers that does not tell the watchers. */
static void job_others(job *j)
{
    others *o = j->arg;
    o->pools = sluice_service_pool_count(j->svc);
    o->ready = sluice_service_ready(j->svc);
    sluice_pool_control_config cc;
    sluice_pool_control_config_init(&cc);
    cc.interval_ns = SLUICE_NS_PER_SEC;
    char err[256];
    o->control_r = sluice_service_set_control(j->svc, o->a, &cc, err, sizeof err);
    o->remove_control_r = sluice_service_remove_control(j->svc, o->a);
    o->check_r = sluice_service_add_check(j->svc, "fine", ok_check, o);
    sluice_service_check_result res[1];
    o->checks = sluice_service_run_checks(j->svc, res, 1);
    o->weight_r = sluice_service_set_readiness_weight(j->svc, o->a, 0.5);
    o->unwatch_r = sluice_service_unwatch(j->svc, o->other_user); /* another watcher: not in a call */
    j->r = SLUICE_OK;
}

static void test_slow_watcher_holds_up_no_other_call(void **state)
{
    (void)state;
    reset_call_counts();
    sluice_service *svc = make_service();
    gate g;
    gate_init(&g);
    rec slow, other;
    rec_init(&slow, svc);
    rec_init(&other, svc);
    slow.on_added = block_on_added;
    slow.arg = &g;
    sluice_service_watcher ws = watcher_of(&slow), wo = watcher_of(&other);
    assert_int_equal(sluice_service_watch(svc, &ws), SLUICE_OK);
    assert_int_equal(sluice_service_watch(svc, &wo), SLUICE_OK);
    job adder;
    job_start(&adder, svc, job_add_pool, "a");
    WAIT_FOR(atomic_load(&g.entered) == 1, "the slow watcher hears of a");
    sluice_pool *a = sluice_service_find_pool(svc, "a");
    assert_non_null(a);
    others o = {.a = a, .other_user = &other};
    job j;
    job_start(&j, svc, job_others, &o);
    if (!job_finish(&j)) {
        gate_open(&g);
        fail_msg("a call that tells no watcher waited for a slow watcher");
    }
    assert_int_equal(o.pools, 1);
    assert_false(o.ready);
    assert_int_equal(o.control_r, SLUICE_OK);
    assert_int_equal(o.remove_control_r, SLUICE_OK);
    assert_int_equal(o.check_r, SLUICE_OK);
    assert_int_equal(o.checks, 1);
    assert_int_equal(o.weight_r, SLUICE_OK);
    assert_int_equal(o.unwatch_r, SLUICE_OK);
    /* A notifier behind the slow watcher waits for it: its event comes
     * after a's, and add_pool returns only once every watcher heard it. */
    job later;
    job_start(&later, svc, job_add_pool, "b");
    WAIT_FOR(sluice_service_find_pool(svc, "b") != NULL, "b is added");
    assert_int_equal(latch_count(&adder.done), 1);
    gate_open(&g);
    if (!job_finish(&adder) || !job_finish(&later)) {
        fail_msg("add_pool did not return after the slow watcher went on");
    }
    assert_int_equal(adder.r, SLUICE_OK);
    assert_int_equal(later.r, SLUICE_OK);
    char buf[512];
    assert_string_equal(rec_text(&slow, buf, sizeof buf), "ready 0, added a, added b");
    assert_string_equal(rec_text(&other, buf, sizeof buf), "ready 0"); /* unwatched before a reached it */
    assert_int_equal(atomic_load(&calls_most), 1);
    sluice_service_destroy(svc);
    gate_destroy(&g);
    rec_destroy(&slow);
    rec_destroy(&other);
}

/* ---- unwatch waits for a call to that watcher elsewhere ---------------------- */

typedef struct held {
    _Atomic int entered, left;
    _Atomic int unwatch_called, unwatch_returned;
    int left_at_return;
    sluice_err r;
} held;

static void held_on_added(rec *r, sluice_pool *pool)
{
    (void)pool;
    held *h = r->arg;
    atomic_store(&h->entered, 1);
    /* Stay in the call until the unwatch has been called, and then a
     * little longer, so an unwatch that did not wait would be seen
     * returning while this call is in progress. The fixed unwatch cannot
     * return before this call does, however long this lasts. */
    if (!WAIT_FOR_BG(atomic_load(&h->unwatch_called))) {
        return;
    }
    for (int i = 0; i < 200 && !atomic_load(&h->unwatch_returned); i++) {
        poll_pause();
    }
    atomic_store(&h->left, 1);
}

static void job_unwatch(job *j)
{
    held *h = ((rec *)j->arg)->arg;
    atomic_store(&h->unwatch_called, 1);
    h->r = sluice_service_unwatch(j->svc, j->arg);
    h->left_at_return = atomic_load(&h->left);
    atomic_store(&h->unwatch_returned, 1);
    j->r = SLUICE_OK;
}

static void test_unwatch_waits_for_a_call_elsewhere(void **state)
{
    (void)state;
    reset_call_counts();
    sluice_service *svc = make_service();
    held h = {.r = SLUICE_EINVAL};
    rec r;
    rec_init(&r, svc);
    r.on_added = held_on_added;
    r.arg = &h;
    sluice_service_watcher w = watcher_of(&r);
    assert_int_equal(sluice_service_watch(svc, &w), SLUICE_OK);
    job adder, remover;
    job_start(&adder, svc, job_add_pool, "a");
    WAIT_FOR(atomic_load(&h.entered) == 1, "the watcher hears of a");
    job_start(&remover, svc, job_unwatch, &r);
    if (!job_finish(&remover) || !job_finish(&adder)) {
        fail_msg("unwatch or add_pool did not return");
    }
    assert_int_equal(h.r, SLUICE_OK);
    assert_int_equal(h.left_at_return, 1); /* the call had ended */
    assert_int_equal(add_pool(svc, "b"), SLUICE_OK);
    char buf[512];
    assert_string_equal(rec_text(&r, buf, sizeof buf), "ready 0, added a");
    sluice_service_destroy(svc);
    assert_string_equal(rec_text(&r, buf, sizeof buf), "ready 0, added a");
    rec_destroy(&r);
}

/* ---- destroy with watchers that call back ------------------------------------ */

typedef struct at_destroy {
    rec *victim;
    sluice_err add_r, watch_r, unwatch_r;
    int calls;
} at_destroy;

static void destroy_on_removed(rec *r, sluice_pool *pool)
{
    (void)pool;
    at_destroy *d = r->arg;
    if (d->calls++ > 0) {
        return;
    }
    d->add_r = add_pool(r->svc, "late");
    static int late_user;
    sluice_service_watcher w = {.user = &late_user};
    d->watch_r = sluice_service_watch(r->svc, &w);
    sluice_service_set_ready(r->svc, true); /* heard by none: every watcher is leaving */
    d->unwatch_r = sluice_service_unwatch(r->svc, d->victim);
}

static void test_destroy_with_watchers_calling_back(void **state)
{
    (void)state;
    reset_call_counts();
    sluice_service *svc = make_service();
    rec one, two, three;
    rec_init(&one, svc);
    rec_init(&two, svc);
    rec_init(&three, svc);
    at_destroy d = {.victim = &two, .add_r = SLUICE_OK, .watch_r = SLUICE_OK, .unwatch_r = SLUICE_EINVAL};
    one.on_removed = destroy_on_removed;
    one.arg = &d;
    sluice_service_watcher w1 = watcher_of(&one), w2 = watcher_of(&two), w3 = watcher_of(&three);
    assert_int_equal(add_pool(svc, "a"), SLUICE_OK);
    assert_int_equal(sluice_service_watch(svc, &w1), SLUICE_OK);
    assert_int_equal(sluice_service_watch(svc, &w2), SLUICE_OK);
    assert_int_equal(sluice_service_watch(svc, &w3), SLUICE_OK);
    assert_int_equal(add_pool(svc, "b"), SLUICE_OK);
    job j;
    job_start(&j, svc, job_destroy, NULL);
    if (!job_finish(&j)) {
        fail_msg("destroy did not return: a watcher calling back from pool_removed deadlocked");
    }
    assert_int_equal(d.add_r, SLUICE_EBUSY);
    assert_int_equal(d.watch_r, SLUICE_EBUSY);
    assert_int_equal(d.unwatch_r, SLUICE_OK);
    char buf[512];
    assert_string_equal(rec_text(&one, buf, sizeof buf),
                        "added a, ready 0, added b, removed b, removed a, detached");
    assert_string_equal(rec_text(&two, buf, sizeof buf), "added a, ready 0, added b"); /* removed first */
    assert_string_equal(rec_text(&three, buf, sizeof buf),
                        "added a, ready 0, added b, removed b, removed a, detached");
    assert_int_equal(atomic_load(&one.after_detached), 0);
    assert_int_equal(atomic_load(&three.after_detached), 0);
    assert_int_equal(atomic_load(&calls_most), 1);
    rec_destroy(&one);
    rec_destroy(&two);
    rec_destroy(&three);
}

/* ---- out of memory inside a call --------------------------------------------- */

static void *no_memory(size_t size)
{
    (void)size;
    return NULL;
}

typedef struct oom {
    rec *second;
    sluice_err add_r, watch_r;
    size_t pools;
    bool found;
} oom;

static void oom_on_added(rec *r, sluice_pool *pool)
{
    oom *o = r->arg;
    if (strcmp(sluice_pool_name(pool), "a") != 0) {
        return;
    }
    sluice__service_event_alloc = no_memory;
    o->add_r = add_pool(r->svc, "b");
    o->pools = sluice_service_pool_count(r->svc);
    o->found = sluice_service_find_pool(r->svc, "b") != NULL;
    sluice_service_watcher w2 = watcher_of(o->second);
    o->watch_r = sluice_service_watch(r->svc, &w2);
    sluice_service_set_ready(r->svc, true); /* its event cannot be queued */
    sluice__service_event_alloc = malloc;
}

static void test_out_of_memory_inside_a_call(void **state)
{
    (void)state;
    reset_call_counts();
    sluice_service *svc = make_service();
    rec one, two;
    rec_init(&one, svc);
    rec_init(&two, svc);
    oom o = {.second = &two, .add_r = SLUICE_OK, .watch_r = SLUICE_OK};
    one.on_added = oom_on_added;
    one.arg = &o;
    sluice_service_watcher w1 = watcher_of(&one), w2 = watcher_of(&two);
    assert_int_equal(sluice_service_watch(svc, &w1), SLUICE_OK);
    job j;
    job_start(&j, svc, job_add_pool, "a");
    if (!job_finish(&j)) {
        fail_msg("add_pool did not return");
    }
    assert_int_equal(j.r, SLUICE_OK);
    assert_int_equal(o.add_r, SLUICE_ENOMEM); /* nothing left behind */
    assert_int_equal(o.pools, 1);
    assert_false(o.found);
    assert_int_equal(o.watch_r, SLUICE_ENOMEM);
    assert_true(sluice_service_ready(svc));
    /* Readiness is still told, once the queue has emptied. */
    char buf[512];
    assert_string_equal(rec_text(&one, buf, sizeof buf), "ready 0, added a, ready 1");
    assert_int_equal(rec_count(&two), 0); /* never added */
    /* With memory again, all is as before. */
    assert_int_equal(add_pool(svc, "b"), SLUICE_OK);
    assert_int_equal(sluice_service_watch(svc, &w2), SLUICE_OK);
    sluice_service_set_ready(svc, false);
    assert_string_equal(rec_text(&one, buf, sizeof buf), "ready 0, added a, ready 1, added b, ready 0");
    assert_string_equal(rec_text(&two, buf, sizeof buf), "added a, added b, ready 1, ready 0");
    sluice_service_destroy(svc);
    rec_destroy(&one);
    rec_destroy(&two);
}

/* ---- stress ----------------------------------------------------------------- */

/* A watcher that checks what it hears: pools in order and once each,
 * readiness alternating, one call at a time, nothing after unwatch. */
typedef struct checker {
    sluice_service *svc;
    _Atomic int in_call;
    size_t pools_heard; /* only touched in calls, which never overlap */
    int last_ready;     /* -1 = none yet */
    _Atomic bool gone;  /* set once unwatch returned */
    _Atomic long *failed;
    bool reenter; /* read the service and watch/unwatch a helper from inside */
} checker;

static void c_begin(checker *c)
{
    if (atomic_fetch_add(&c->in_call, 1) != 0 || atomic_load(&c->gone)) {
        atomic_fetch_add(c->failed, 1);
    }
}

static void c_end(checker *c)
{
    atomic_fetch_sub(&c->in_call, 1);
}

static void c_reenter(checker *c)
{
    if (!c->reenter) {
        return;
    }
    (void)sluice_service_pool_count(c->svc);
    (void)sluice_service_ready(c->svc);
    static _Thread_local int helper_user;
    sluice_service_watcher w = {.user = &helper_user};
    sluice_err r = sluice_service_watch(c->svc, &w);
    if (r == SLUICE_OK) {
        if (sluice_service_unwatch(c->svc, &helper_user) != SLUICE_OK) {
            atomic_fetch_add(c->failed, 1);
        }
    } else if (r != SLUICE_EOVERFLOW) {
        atomic_fetch_add(c->failed, 1);
    }
}

static void c_added(void *user, sluice_pool *pool)
{
    checker *c = user;
    c_begin(c);
    if (sluice_service_pool(c->svc, c->pools_heard) != pool) {
        atomic_fetch_add(c->failed, 1);
    }
    c->pools_heard++;
    c_reenter(c);
    c_end(c);
}

static void c_ready(void *user, bool ready)
{
    checker *c = user;
    c_begin(c);
    if (c->last_ready == (int)ready) {
        atomic_fetch_add(c->failed, 1); /* a change that changed nothing: one was lost or doubled */
    }
    c->last_ready = ready;
    c_reenter(c);
    c_end(c);
}

static sluice_service_watcher checker_watcher(checker *c)
{
    return (sluice_service_watcher){.pool_added = c_added, .ready_changed = c_ready, .user = c};
}

typedef struct stress {
    sluice_service *svc;
    _Atomic int stop;
    _Atomic long rounds, failed;
    _Atomic int pools_added;
} stress;

static void *toggler(void *arg)
{
    stress *s = arg;
    bool v = false;
    while (!atomic_load(&s->stop)) {
        sluice_service_set_ready(s->svc, v);
        v = !v;
        atomic_fetch_add(&s->rounds, 1);
    }
    return NULL;
}

static void *adder(void *arg)
{
    stress *s = arg;
    for (int i = 0; i < SLUICE_SERVICE_MAX_POOLS && !atomic_load(&s->stop); i++) {
        char name[16];
        snprintf(name, sizeof name, "p%d", i);
        if (add_pool(s->svc, name) != SLUICE_OK) {
            atomic_fetch_add(&s->failed, 1);
        }
        atomic_fetch_add(&s->pools_added, 1);
    }
    return NULL;
}

/* Watch a fresh checker, let it hear a little, unwatch it: nothing may
 * reach it after unwatch returned. */
static void *churner(void *arg)
{
    stress *s = arg;
    while (!atomic_load(&s->stop)) {
        checker *c = calloc(1, sizeof *c);
        if (!c) {
            atomic_fetch_add(&s->failed, 1);
            return NULL;
        }
        c->svc = s->svc;
        c->last_ready = -1;
        c->failed = &s->failed;
        c->reenter = true;
        sluice_service_watcher w = checker_watcher(c);
        sluice_err r = sluice_service_watch(s->svc, &w);
        if (r == SLUICE_OK) {
            /* After watch returned it heard every pool there was. */
            if (sluice_service_unwatch(s->svc, c) != SLUICE_OK) {
                atomic_fetch_add(&s->failed, 1);
            }
            atomic_store(&c->gone, true);
        } else if (r != SLUICE_EOVERFLOW) {
            atomic_fetch_add(&s->failed, 1);
        }
        free(c); /* a call after unwatch would touch freed memory (ASan) or see gone */
    }
    return NULL;
}

static void test_stress_notifiers_and_churn(void **state)
{
    (void)state;
    stress s = {.svc = make_service()};
    checker keep[2];
    for (int i = 0; i < 2; i++) {
        memset(&keep[i], 0, sizeof keep[i]);
        keep[i].svc = s.svc;
        keep[i].last_ready = -1;
        keep[i].failed = &s.failed;
        keep[i].reenter = i == 1;
        sluice_service_watcher w = checker_watcher(&keep[i]);
        assert_int_equal(sluice_service_watch(s.svc, &w), SLUICE_OK);
    }
    enum { TOGGLERS = 2, CHURNERS = 2 };
    pthread_t tt[TOGGLERS], tc[CHURNERS], ta;
    for (int i = 0; i < TOGGLERS; i++) {
        assert_int_equal(pthread_create(&tt[i], NULL, toggler, &s), 0);
    }
    for (int i = 0; i < CHURNERS; i++) {
        assert_int_equal(pthread_create(&tc[i], NULL, churner, &s), 0);
    }
    assert_int_equal(pthread_create(&ta, NULL, adder, &s), 0);
    long target = 10000L * (long)stress_scale();
    WAIT_FOR(atomic_load(&s.rounds) >= target, "the togglers make %ld changes", target);
    WAIT_FOR(atomic_load(&s.pools_added) == SLUICE_SERVICE_MAX_POOLS, "every pool is added");
    atomic_store(&s.stop, 1);
    for (int i = 0; i < TOGGLERS; i++) {
        pthread_join(tt[i], NULL);
    }
    for (int i = 0; i < CHURNERS; i++) {
        pthread_join(tc[i], NULL);
    }
    pthread_join(ta, NULL);
    /* A last change every watcher hears: each ends where the service is. */
    bool last = !sluice_service_ready(s.svc);
    sluice_service_set_ready(s.svc, last);
    assert_int_equal(atomic_load(&s.failed), 0);
    for (int i = 0; i < 2; i++) {
        assert_int_equal(keep[i].pools_heard, SLUICE_SERVICE_MAX_POOLS);
        assert_int_equal(keep[i].last_ready, (int)last);
        assert_int_equal(atomic_load(&keep[i].in_call), 0);
    }
    sluice_service_destroy(s.svc);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_watcher_calls_back_into_the_service),
        cmocka_unit_test(test_watcher_removes_itself),
        cmocka_unit_test(test_watcher_removes_another),
        cmocka_unit_test(test_slow_watcher_holds_up_no_other_call),
        cmocka_unit_test(test_unwatch_waits_for_a_call_elsewhere),
        cmocka_unit_test(test_destroy_with_watchers_calling_back),
        cmocka_unit_test(test_out_of_memory_inside_a_call),
        cmocka_unit_test(test_stress_notifiers_and_churn),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
