/*
 * tests/base/test_ctx.c - contexts (chaining, cancel callbacks, deadlines,
 * waits), the clocks, and the error table.
 *
 * Time moves only through a sluice_fake_clock; waits that must end are
 * ended by a cancel or by advancing the fake clock, never by sleeping.
 * The test's own waits for another thread (started, entered, stopped) are
 * the bounded ones of tests/common/wait.h: they fail the test after a
 * safety timeout instead of hanging it.
 */
#include <pthread.h>
#include <sched.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include <cmocka.h>

#include "sluice/clock.h"
#include "sluice/common.h"
#include "sluice/ctx.h"
#include "sluice/pool.h"
#include "sluice/task.h"

#include "common/wait.h"

/* ---- clock and errors ---------------------------------------------------- */

static void test_clock_system(void **state)
{
    (void)state;
    assert_true(sluice_clock_is_system(NULL));
    assert_true(sluice_clock_is_system(sluice_clock_system()));
    uint64_t a = sluice_clock_now(NULL);
    uint64_t b = sluice_clock_now(sluice_clock_system());
    assert_true(a > 0);
    assert_true(b >= a);
}

static void test_clock_fake(void **state)
{
    (void)state;
    sluice_fake_clock fc;
    sluice_fake_clock_init(&fc, 1000);
    assert_false(sluice_clock_is_system(&fc.clock));
    assert_int_equal(sluice_clock_now(&fc.clock), 1000);
    sluice_fake_clock_advance(&fc, 500);
    assert_int_equal(sluice_clock_now(&fc.clock), 1500);
    sluice_fake_clock_set(&fc, 7);
    assert_int_equal(sluice_clock_now(&fc.clock), 7);
}

static void test_errors(void **state)
{
    (void)state;
    assert_string_equal(sluice_err_name(SLUICE_OK), "SLUICE_OK");
    assert_string_equal(sluice_err_name(SLUICE_ETASK), "SLUICE_ETASK");
    assert_string_equal(sluice_err_name(SLUICE_EOPEN), "SLUICE_EOPEN");
    assert_string_equal(sluice_strerror(SLUICE_ETIMEDOUT), "timed out");
    for (int e = 0; e < SLUICE_ERR_COUNT_; e++) {
        assert_non_null(sluice_strerror((sluice_err)e));
        assert_true(strncmp(sluice_err_name((sluice_err)e), "SLUICE_", 7) == 0);
        assert_string_not_equal(sluice_strerror((sluice_err)e), "unknown error");
    }
    assert_string_equal(sluice_strerror(SLUICE_ERR_COUNT_), "unknown error");
    assert_string_equal(sluice_strerror((sluice_err)-1), "unknown error");
    assert_string_equal(sluice_version(), SLUICE_VERSION_STRING);
}

/* ---- cancel and chaining --------------------------------------------------- */

typedef struct cb_log {
    pthread_mutex_t mu;
    char order[64];
    int n;
    sluice_err causes[16];
} cb_log;

static void log_cb(sluice_ctx *ctx, sluice_err cause, void *arg)
{
    (void)ctx;
    /* arg points into a static table of {log, letter}. */
    struct tag {
        cb_log *log;
        char letter;
    } *t = arg;
    pthread_mutex_lock(&t->log->mu);
    if (t->log->n < 16) {
        t->log->causes[t->log->n] = cause;
    }
    t->log->order[t->log->n++] = t->letter;
    pthread_mutex_unlock(&t->log->mu);
}

struct tag {
    cb_log *log;
    char letter;
};

static void test_cancel_basic(void **state)
{
    (void)state;
    assert_int_equal(sluice_ctx_create(NULL, NULL, 0, NULL), SLUICE_EINVAL);
    assert_int_equal(sluice_ctx_err(NULL), SLUICE_OK);
    assert_false(sluice_ctx_done(NULL));
    assert_int_equal(sluice_ctx_deadline(NULL), 0);
    assert_true(sluice_clock_is_system(sluice_ctx_clock(NULL)));
    sluice_ctx_release(NULL);
    sluice_ctx_cancel(NULL, SLUICE_ECANCELED);

    sluice_ctx *c;
    assert_int_equal(sluice_ctx_create(&c, NULL, 0, NULL), SLUICE_OK);
    assert_int_equal(sluice_ctx_err(c), SLUICE_OK);
    assert_int_equal(sluice_ctx_deadline(c), 0);
    cb_log log = {.mu = PTHREAD_MUTEX_INITIALIZER};
    struct tag a = {&log, 'a'}, b = {&log, 'b'}, x = {&log, 'x'};
    uint64_t ida, idb, idx;
    assert_int_equal(sluice_ctx_on_cancel(c, log_cb, &a, &ida), SLUICE_OK);
    assert_int_equal(sluice_ctx_on_cancel(c, log_cb, &x, &idx), SLUICE_OK);
    assert_int_equal(sluice_ctx_on_cancel(c, log_cb, &b, &idb), SLUICE_OK);
    assert_int_equal(sluice_ctx_on_cancel(c, NULL, &b, NULL), SLUICE_EINVAL);
    assert_true(sluice_ctx_remove_cancel(c, idx));
    assert_false(sluice_ctx_remove_cancel(c, idx));
    /* SLUICE_OK as a cause becomes SLUICE_ECANCELED. */
    sluice_ctx_cancel(c, SLUICE_OK);
    assert_int_equal(sluice_ctx_err(c), SLUICE_ECANCELED);
    assert_true(sluice_ctx_done(c));
    assert_int_equal(log.n, 2);
    assert_memory_equal(log.order, "ab", 2); /* registration order, x removed */
    assert_int_equal(log.causes[0], SLUICE_ECANCELED);
    /* Only the first cancel counts; callbacks do not run twice. */
    sluice_ctx_cancel(c, SLUICE_ETASK);
    assert_int_equal(sluice_ctx_err(c), SLUICE_ECANCELED);
    assert_int_equal(log.n, 2);
    assert_false(sluice_ctx_remove_cancel(c, ida));
    /* Registering on a cancelled context runs at once, on this thread. */
    assert_int_equal(sluice_ctx_on_cancel(c, log_cb, &x, NULL), SLUICE_OK);
    assert_int_equal(log.n, 3);
    assert_int_equal(log.order[2], 'x');
    sluice_ctx_release(c);
}

static void test_chain(void **state)
{
    (void)state;
    cb_log log = {.mu = PTHREAD_MUTEX_INITIALIZER};
    struct tag tr = {&log, 'r'}, tc = {&log, 'c'}, tg = {&log, 'g'}, ts = {&log, 's'};
    sluice_ctx *root, *child, *grand, *sibling, *other;
    assert_int_equal(sluice_ctx_create(&root, NULL, 0, NULL), SLUICE_OK);
    assert_int_equal(sluice_ctx_create(&child, root, 0, NULL), SLUICE_OK);
    assert_int_equal(sluice_ctx_create(&grand, child, 0, NULL), SLUICE_OK);
    assert_int_equal(sluice_ctx_create(&sibling, root, 0, NULL), SLUICE_OK);
    assert_int_equal(sluice_ctx_create(&other, NULL, 0, NULL), SLUICE_OK);
    sluice_ctx_on_cancel(root, log_cb, &tr, NULL);
    sluice_ctx_on_cancel(child, log_cb, &tc, NULL);
    sluice_ctx_on_cancel(grand, log_cb, &tg, NULL);
    sluice_ctx_on_cancel(sibling, log_cb, &ts, NULL);

    /* Cancelling a child leaves the parent and the sibling alone. */
    sluice_ctx_cancel(child, SLUICE_ETASK);
    assert_int_equal(sluice_ctx_err(child), SLUICE_ETASK);
    assert_int_equal(sluice_ctx_err(grand), SLUICE_ETASK); /* the cause travels down */
    assert_int_equal(sluice_ctx_err(root), SLUICE_OK);
    assert_int_equal(sluice_ctx_err(sibling), SLUICE_OK);
    assert_int_equal(log.n, 2);
    assert_memory_equal(log.order, "gc", 2); /* descendants first */

    /* Releasing the caller's reference to a child keeps the chain sound. */
    sluice_ctx_release(grand);
    sluice_ctx_cancel(root, SLUICE_ECANCELED);
    assert_int_equal(sluice_ctx_err(sibling), SLUICE_ECANCELED);
    assert_int_equal(sluice_ctx_err(child), SLUICE_ETASK);
    assert_int_equal(log.n, 4);
    assert_memory_equal(log.order, "gcsr", 4);
    assert_int_equal(sluice_ctx_err(other), SLUICE_OK);

    /* A child of a cancelled parent is born cancelled with its cause. */
    sluice_ctx *late;
    assert_int_equal(sluice_ctx_create(&late, root, 0, NULL), SLUICE_OK);
    assert_int_equal(sluice_ctx_err(late), SLUICE_ECANCELED);
    sluice_ctx_release(late);

    /* The parent may be released before its children. */
    sluice_ctx *p2, *c2;
    assert_int_equal(sluice_ctx_create(&p2, NULL, 0, NULL), SLUICE_OK);
    assert_int_equal(sluice_ctx_create(&c2, p2, 0, NULL), SLUICE_OK);
    sluice_ctx_release(p2);
    assert_int_equal(sluice_ctx_err(c2), SLUICE_OK);
    sluice_ctx_release(c2);

    sluice_ctx_release(child);
    sluice_ctx_release(sibling);
    sluice_ctx_release(root);
    sluice_ctx_release(other);
}

static void test_deadlines(void **state)
{
    (void)state;
    sluice_fake_clock fc;
    sluice_fake_clock_init(&fc, 1000);
    cb_log log = {.mu = PTHREAD_MUTEX_INITIALIZER};
    struct tag tp = {&log, 'p'}, tc = {&log, 'c'};

    sluice_ctx *parent, *child, *loose;
    assert_int_equal(sluice_ctx_create(&parent, NULL, 5000, &fc.clock), SLUICE_OK);
    /* A child inherits the clock and can only shorten the deadline. */
    assert_int_equal(sluice_ctx_create(&child, parent, 9000, NULL), SLUICE_OK);
    assert_ptr_equal(sluice_ctx_clock(child), &fc.clock);
    assert_int_equal(sluice_ctx_deadline(child), 5000);
    assert_int_equal(sluice_ctx_with_timeout(&loose, parent, 1000, NULL), SLUICE_OK);
    assert_int_equal(sluice_ctx_deadline(loose), 2000);
    /* Deadlines on different clocks cannot be combined. */
    sluice_ctx *bad = NULL;
    assert_int_equal(sluice_ctx_create(&bad, parent, 0, sluice_clock_system()), SLUICE_EINVAL);
    assert_null(bad);

    sluice_ctx_on_cancel(parent, log_cb, &tp, NULL);
    sluice_ctx_on_cancel(child, log_cb, &tc, NULL);

    sluice_fake_clock_set(&fc, 1999);
    assert_int_equal(sluice_ctx_err(loose), SLUICE_OK);
    sluice_fake_clock_set(&fc, 2000);
    assert_int_equal(sluice_ctx_err(loose), SLUICE_ETIMEDOUT);
    assert_int_equal(sluice_ctx_err(parent), SLUICE_OK); /* the child's own deadline */
    assert_int_equal(log.n, 0);

    /* The parent's deadline, observed through the child, cancels the parent
     * (and so its whole subtree), running callbacks once. */
    sluice_fake_clock_set(&fc, 5000);
    assert_int_equal(sluice_ctx_err(child), SLUICE_ETIMEDOUT);
    assert_int_equal(log.n, 2);
    assert_memory_equal(log.order, "cp", 2);
    assert_int_equal(sluice_ctx_err(parent), SLUICE_ETIMEDOUT);
    assert_int_equal(log.n, 2);

    /* Timeout 0 is over at once, even at time 0. */
    sluice_fake_clock_set(&fc, 0);
    sluice_ctx *zero;
    assert_int_equal(sluice_ctx_with_timeout(&zero, NULL, 0, &fc.clock), SLUICE_OK);
    assert_int_equal(sluice_ctx_err(zero), SLUICE_ETIMEDOUT);
    sluice_ctx_release(zero);

    /* A deadline registered after it passed runs the callback now. */
    sluice_ctx *late;
    assert_int_equal(sluice_ctx_create(&late, NULL, 10, &fc.clock), SLUICE_OK);
    sluice_fake_clock_set(&fc, 20);
    int before = log.n;
    struct tag tl = {&log, 'l'};
    assert_int_equal(sluice_ctx_on_cancel(late, log_cb, &tl, NULL), SLUICE_OK);
    assert_int_equal(log.n, before + 1);
    assert_int_equal(log.causes[before], SLUICE_ETIMEDOUT);
    sluice_ctx_release(late);

    sluice_ctx_release(loose);
    sluice_ctx_release(child);
    sluice_ctx_release(parent);
}

/* ---- waiting -------------------------------------------------------------- */

typedef struct waiter {
    sluice_ctx *ctx;
    uint64_t until;
    _Atomic int started;
    sluice_err result;
} waiter;

static void *wait_thread(void *arg)
{
    waiter *w = arg;
    atomic_store(&w->started, 1);
    w->result = sluice_ctx_wait(w->ctx, w->until);
    return NULL;
}

static void test_wait(void **state)
{
    (void)state;
    assert_int_equal(sluice_ctx_wait(NULL, 0), SLUICE_EINVAL);
    sluice_fake_clock fc;
    sluice_fake_clock_init(&fc, 100);

    /* Woken by a cancel from another thread. */
    sluice_ctx *c;
    assert_int_equal(sluice_ctx_create(&c, NULL, 0, &fc.clock), SLUICE_OK);
    waiter w = {.ctx = c};
    pthread_t t;
    pthread_create(&t, NULL, wait_thread, &w);
    WAIT_FOR(atomic_load(&w.started), "the waiter thread to start");
    sluice_ctx_cancel(c, SLUICE_ETASK);
    pthread_join(t, NULL);
    assert_int_equal(w.result, SLUICE_ETASK);
    sluice_ctx_release(c);

    /* Ended by the deadline when the fake clock moves. */
    assert_int_equal(sluice_ctx_create(&c, NULL, 500, &fc.clock), SLUICE_OK);
    waiter w2 = {.ctx = c};
    pthread_create(&t, NULL, wait_thread, &w2);
    WAIT_FOR(atomic_load(&w2.started), "the waiter thread to start");
    sluice_fake_clock_set(&fc, 500);
    pthread_join(t, NULL);
    assert_int_equal(w2.result, SLUICE_ETIMEDOUT);
    sluice_ctx_release(c);

    /* `until` first: OK, and the context stays live. */
    assert_int_equal(sluice_ctx_create(&c, NULL, 0, &fc.clock), SLUICE_OK);
    waiter w3 = {.ctx = c, .until = 900};
    pthread_create(&t, NULL, wait_thread, &w3);
    WAIT_FOR(atomic_load(&w3.started), "the waiter thread to start");
    sluice_fake_clock_set(&fc, 1000);
    pthread_join(t, NULL);
    assert_int_equal(w3.result, SLUICE_OK);
    assert_int_equal(sluice_ctx_err(c), SLUICE_OK);
    sluice_ctx_release(c);

    /* System clock: a real timed wait that ends by the deadline. */
    assert_int_equal(sluice_ctx_with_timeout(&c, NULL, 2 * SLUICE_NS_PER_MS, NULL), SLUICE_OK);
    assert_int_equal(sluice_ctx_wait(c, 0), SLUICE_ETIMEDOUT);
    sluice_ctx_release(c);
}

/* remove_cancel waits for a callback running on another thread. */
typedef struct slow_cb {
    _Atomic int entered;
    _Atomic int release;
    _Atomic int finished;
    _Atomic int timed_out; /* the callback gave up waiting for `release` */
} slow_cb;

static void slow_fn(sluice_ctx *ctx, sluice_err cause, void *arg)
{
    (void)ctx;
    (void)cause;
    slow_cb *s = arg;
    atomic_store(&s->entered, 1);
    if (!WAIT_FOR_BG(atomic_load(&s->release))) {
        atomic_store(&s->timed_out, 1);
    }
    atomic_store(&s->finished, 1);
}

static void *cancel_thread(void *arg)
{
    sluice_ctx_cancel(arg, SLUICE_ECANCELED);
    return NULL;
}

static void *release_later(void *arg)
{
    slow_cb *s = arg;
    /* Give remove_cancel a chance to start waiting; correctness does not
     * depend on it (remove must not return before `finished` either way). */
    for (int i = 0; i < 1000; i++) {
        sched_yield();
    }
    atomic_store(&s->release, 1);
    return NULL;
}

static void self_remove_fn(sluice_ctx *ctx, sluice_err cause, void *arg)
{
    (void)cause;
    uint64_t *id = arg;
    /* Removing itself from inside the callback must not deadlock. */
    assert_false(sluice_ctx_remove_cancel(ctx, *id));
    *id = 0;
}

static void test_remove_waits(void **state)
{
    (void)state;
    sluice_ctx *c;
    assert_int_equal(sluice_ctx_create(&c, NULL, 0, NULL), SLUICE_OK);
    slow_cb s = {0};
    uint64_t id;
    assert_int_equal(sluice_ctx_on_cancel(c, slow_fn, &s, &id), SLUICE_OK);
    pthread_t t, r;
    pthread_create(&t, NULL, cancel_thread, c);
    WAIT_FOR(atomic_load(&s.entered), "the cancel callback to start");
    pthread_create(&r, NULL, release_later, &s);
    assert_false(sluice_ctx_remove_cancel(c, id));
    assert_int_equal(atomic_load(&s.finished), 1);
    assert_int_equal(atomic_load(&s.timed_out), 0);
    pthread_join(t, NULL);
    pthread_join(r, NULL);
    sluice_ctx_release(c);

    uint64_t self_id = 0;
    assert_int_equal(sluice_ctx_create(&c, NULL, 0, NULL), SLUICE_OK);
    assert_int_equal(sluice_ctx_on_cancel(c, self_remove_fn, &self_id, &self_id), SLUICE_OK);
    sluice_ctx_cancel(c, SLUICE_ECANCELED);
    assert_int_equal(self_id, 0);
    sluice_ctx_release(c);
}

/* ---- races ------------------------------------------------------------------ */

/* Children created, released and cancelled while the parent is cancelled:
 * every child ends cancelled, every callback runs exactly once. */
typedef struct race {
    sluice_ctx *root;
    _Atomic int go;
    _Atomic long fired;
    _Atomic long registered;
    _Atomic int stuck; /* a thread never saw `go` */
} race;

static void count_cb(sluice_ctx *ctx, sluice_err cause, void *arg)
{
    (void)ctx;
    (void)cause;
    race *r = arg;
    atomic_fetch_add(&r->fired, 1);
}

static void *race_thread(void *arg)
{
    race *r = arg;
    /* A tight (yielding) spin, so that the threads start together and the
     * race is as close as it can be; bounded by the safety limit. */
    uint64_t limit = real_now_ns() + SAFETY_NS;
    while (!atomic_load(&r->go)) {
        if (real_now_ns() > limit) {
            atomic_store(&r->stuck, 1);
            return NULL;
        }
        sched_yield();
    }
    for (int i = 0; i < 200; i++) {
        sluice_ctx *c, *g;
        if (sluice_ctx_create(&c, r->root, 0, NULL) != SLUICE_OK) {
            continue;
        }
        sluice_ctx_create(&g, c, 0, NULL);
        sluice_ctx_on_cancel(g, count_cb, r, NULL);
        atomic_fetch_add(&r->registered, 1);
        if (i % 3 == 0) {
            sluice_ctx_cancel(c, SLUICE_ETASK);
        }
        if (i % 2 == 0) {
            sluice_ctx_release(c); /* g keeps c alive */
            sluice_ctx_cancel(r->root, SLUICE_ECANCELED);
            sluice_ctx_cancel(g, SLUICE_ECANCELED);
            sluice_ctx_release(g);
        } else {
            sluice_ctx_cancel(g, SLUICE_ECANCELED);
            sluice_ctx_release(g);
            sluice_ctx_release(c);
        }
    }
    return NULL;
}

static void test_cancel_race(void **state)
{
    (void)state;
    for (int round = 0; round < 20; round++) {
        race r = {0};
        assert_int_equal(sluice_ctx_create(&r.root, NULL, 0, NULL), SLUICE_OK);
        pthread_t t[4];
        for (int i = 0; i < 4; i++) {
            pthread_create(&t[i], NULL, race_thread, &r);
        }
        atomic_store(&r.go, 1);
        for (int i = 0; i < 4; i++) {
            pthread_join(t[i], NULL);
        }
        assert_int_equal(atomic_load(&r.stuck), 0);
        /* Every grandchild was cancelled by someone: its callback ran once. */
        assert_int_equal(atomic_load(&r.fired), atomic_load(&r.registered));
        sluice_ctx_release(r.root);
    }
}

/* ---- with the pool ------------------------------------------------------------ */

typedef struct pool_probe {
    gate *held;      /* the first task waits here while others queue */
    latch *watching; /* counted down when watch_task starts */
    _Atomic int shed;
    _Atomic int saw_stop;
    _Atomic int stop_timed_out;
    sluice_ctx *expect;
} pool_probe;

static _Atomic int wrongly_ran;

static int never_task(void *arg)
{
    (void)arg;
    atomic_fetch_add(&wrongly_ran, 1); /* a task whose context ended must not run */
    return 0;
}

/* Runs until its context is cancelled, watching sluice_task_should_stop
 * (which has no notification: polled, with the safety timeout). */
static int watch_task(void *arg)
{
    pool_probe *p = arg;
    if (sluice_task_ctx() != p->expect) {
        return 1;
    }
    latch_count_down(p->watching);
    if (!WAIT_FOR_BG(sluice_task_should_stop())) {
        atomic_store(&p->stop_timed_out, 1);
        return 1;
    }
    atomic_store(&p->saw_stop, 1);
    return 0;
}

static void on_abandon(const sluice_abandoned *t, void *user)
{
    pool_probe *p = user;
    if (t->reason == SLUICE_ABANDON_SHED && t->ctx != NULL && sluice_ctx_done(t->ctx)) {
        atomic_fetch_add(&p->shed, 1);
    }
}

/* The pool sheds a queued task whose context ended (cancel or deadline),
 * retains the context while queued, and a running task sees its cancel. */
static void test_pool_integration(void **state)
{
    (void)state;
    pool_probe pr = {.held = gate_new(), .watching = malloc(sizeof(latch))};
    assert_non_null(pr.watching);
    latch_init(pr.watching, 1);
    sluice_fake_clock fc;
    sluice_fake_clock_init(&fc, SLUICE_NS_PER_SEC);
    sluice_pool_config pc;
    sluice_pool_config_init(&pc);
    pc.name = "ctxpool";
    pc.workers = 1;
    pc.queue_capacity = 8;
    pc.abandon_handler = on_abandon;
    pc.user = &pr;
    pc.clock = &fc.clock;
    sluice_pool *pool;
    assert_int_equal(sluice_pool_create(&pc, &pool, NULL, 0), SLUICE_OK);

    assert_int_equal(sluice_pool_submit(pool, task_at_gate, pr.held), SLUICE_OK);
    GATE_WAIT_ENTERED(pr.held, 1);
    sluice_ctx *cancelled, *expiring;
    assert_int_equal(sluice_ctx_create(&cancelled, NULL, 0, &fc.clock), SLUICE_OK);
    assert_int_equal(sluice_ctx_create(&expiring, NULL, 2 * SLUICE_NS_PER_SEC, &fc.clock), SLUICE_OK);
    sluice_submit_opts o1 = {.ctx = cancelled}, o2 = {.ctx = expiring};
    assert_int_equal(sluice_pool_submit_ex(pool, never_task, NULL, &o1), SLUICE_OK);
    assert_int_equal(sluice_pool_submit_ex(pool, never_task, NULL, &o2), SLUICE_OK);
    /* The pool holds its own references: ours may go now. */
    sluice_ctx_cancel(cancelled, SLUICE_ECANCELED);
    sluice_ctx_release(cancelled);
    sluice_ctx_release(expiring);
    sluice_fake_clock_set(&fc, 2 * SLUICE_NS_PER_SEC);
    gate_open(pr.held);

    sluice_ctx *live;
    assert_int_equal(sluice_ctx_create(&live, NULL, 0, &fc.clock), SLUICE_OK);
    pr.expect = live;
    sluice_submit_opts o3 = {.ctx = live};
    assert_int_equal(sluice_pool_submit_ex(pool, watch_task, &pr, &o3), SLUICE_OK);
    LATCH_WAIT(pr.watching, "watch_task to start");
    sluice_ctx_cancel(live, SLUICE_ECANCELED);
    assert_int_equal(sluice_pool_drain(pool, 0, NULL), SLUICE_OK);
    assert_int_equal(atomic_load(&pr.stop_timed_out), 0);
    assert_int_equal(atomic_load(&pr.saw_stop), 1);
    assert_int_equal(atomic_load(&pr.shed), 2);
    assert_int_equal(atomic_load(&wrongly_ran), 0);
    sluice_pool_stats st;
    sluice_pool_stats_get(pool, &st);
    assert_int_equal(st.shed, 2);
    assert_int_equal(st.completed, 2);
    assert_int_equal(atomic_load(&pr.held->timeouts), 0);
    sluice_ctx_release(live);
    sluice_pool_destroy(pool);
    gate_free(pr.held);
    latch_destroy(pr.watching);
    free(pr.watching);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_clock_system), cmocka_unit_test(test_clock_fake),
        cmocka_unit_test(test_errors),       cmocka_unit_test(test_cancel_basic),
        cmocka_unit_test(test_chain),        cmocka_unit_test(test_deadlines),
        cmocka_unit_test(test_wait),         cmocka_unit_test(test_remove_waits),
        cmocka_unit_test(test_cancel_race),  cmocka_unit_test(test_pool_integration),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
