/*
 * tests/sync/test_contracts_sync2.c - the promises of sluice/sem.h,
 * group.h, breaker.h, limiter.h and sync_metrics.h probed at their
 * extremes, read from the headers alone:
 *
 *   - sem: capacity 0, 1 and UINT64_MAX; n 0, capacity and one past;
 *     a done context and a past deadline fail even with units free; a
 *     deadline of UINT64_MAX on a clock near its end never comes; FIFO
 *     for try_acquire; release past what is held changes nothing; shrink
 *     below a queued request; close wakes everyone, releases still work;
 *     the waiting_units gauge with two requests of UINT64_MAX units;
 *   - group: the return-value mapping at its edges (1, SLUICE_ERR_COUNT_-1,
 *     SLUICE_ERR_COUNT_, -1), panics, wait twice, run after wait,
 *     EDEADLK from the group's own task, a K = 1 pool's worker that fans
 *     out and waits (helping), try_run at the limit, cancel, tasks handed
 *     back by a draining pool; accepted = completed + failed + panicked +
 *     skipped every time;
 *   - breaker: bounds at the limit and one past, NULLs and a bad outcome,
 *     an open duration of UINT64_MAX that never ends (no wrap), probes at
 *     half_open_max_calls and one past, late tickets, IGNORED, a state
 *     callback that calls back into the breaker, concurrent callers
 *     (every ticket recorded once is counted once);
 *   - limiter: bounds (NaN, negative, INF with burst 0), allow_n at 0 and
 *     burst + 1, reserve at UINT64_MAX and with a debt past the clock's
 *     end, wait's refusals that take nothing, cancel capped at burst;
 *     keyed: keys of 0, 256 and 257 bytes, max_keys 1;
 *   - sync_metrics: NULLs, EBUSY on a second add and on a name clash,
 *     ENOENT on a remove of what was not added, families in a scrape.
 *
 * No test sleeps for an event: blocking calls run on bg_call threads,
 * time moves on fake clocks, and waits are bounded (tests/common/wait.h).
 */
#include <limits.h>
#include <math.h>
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

#include "common/counting_clock.h"
#include "common/wait.h"
#include "sluice/breaker.h"
#include "sluice/ctx.h"
#include "sluice/group.h"
#include "sluice/keyed.h"
#include "sluice/limiter.h"
#include "sluice/metrics.h"
#include "sluice/pool.h"
#include "sluice/sem.h"
#include "sluice/sync_metrics.h"
#include "sluice/task.h"
#include "sync/bg_call.h"

#define SEC SLUICE_NS_PER_SEC

static bool nul_in(const char *buf, size_t len)
{
    return memchr(buf, '\0', len) != NULL;
}

/* ---- sem ------------------------------------------------------------------------- */

static sluice_sem *make_sem(uint64_t cap, const sluice_clock *clock)
{
    sluice_sem_config c;
    sluice_sem_config_init(&c);
    c.capacity = cap;
    c.clock = clock;
    sluice_sem *s = NULL;
    char err[128];
    if (sluice_sem_create(&c, &s, err, sizeof err) != SLUICE_OK) {
        fail_msg("sem create: %s", err);
    }
    return s;
}

static sluice_sem_stats sem_stats(sluice_sem *s)
{
    sluice_sem_stats st;
    sluice_sem_stats_get(s, &st);
    return st;
}

static void test_sem_bounds(void **state)
{
    (void)state;
    sluice_sem_config c;
    sluice_sem_config_init(&c);
    sluice_sem *s = (sluice_sem *)(uintptr_t)0x3;
    char err[128];
    memset(err, 'X', sizeof err);
    assert_int_equal(sluice_sem_create(&c, &s, err, sizeof err), SLUICE_EINVAL);
    assert_true(nul_in(err, sizeof err));
    assert_non_null(strstr(err, "capacity"));
    assert_ptr_equal(s, (sluice_sem *)(uintptr_t)0x3);
    char name[SLUICE_SEM_NAME_MAX + 2];
    memset(name, 's', sizeof name);
    name[SLUICE_SEM_NAME_MAX + 1] = '\0';
    c.capacity = 1;
    c.name = name;
    assert_int_equal(sluice_sem_create(&c, &s, err, sizeof err), SLUICE_EINVAL);
    assert_non_null(strstr(err, "name"));
    c.name = "a b";
    assert_int_equal(sluice_sem_create(&c, &s, err, sizeof err), SLUICE_EINVAL);
    name[SLUICE_SEM_NAME_MAX] = '\0';
    c.name = name;
    assert_int_equal(sluice_sem_create(&c, &s, NULL, 0), SLUICE_OK);
    assert_string_equal(sluice_sem_name(s), name);
    sluice_sem_destroy(s);
    c.name = NULL;
    assert_int_equal(sluice_sem_create(&c, &s, NULL, 0), SLUICE_OK);
    assert_string_equal(sluice_sem_name(s), "sem");
    sluice_sem_destroy(s);
    sluice_sem_destroy(NULL);

    /* Capacity UINT64_MAX: all of it in one acquire, and back. */
    s = make_sem(UINT64_MAX, NULL);
    assert_int_equal(sluice_sem_acquire(NULL, 1, NULL), SLUICE_EINVAL);
    assert_int_equal(sluice_sem_acquire(s, 0, NULL), SLUICE_EINVAL);
    assert_int_equal(sluice_sem_try_acquire(s, 0), SLUICE_EINVAL);
    assert_int_equal(sluice_sem_try_acquire(NULL, 1), SLUICE_EINVAL);
    assert_int_equal(sluice_sem_release(s, 0), SLUICE_EINVAL);
    assert_int_equal(sluice_sem_release(NULL, 1), SLUICE_EINVAL);
    assert_int_equal(sluice_sem_set_capacity(s, 0), SLUICE_EINVAL);
    assert_int_equal(sluice_sem_set_capacity(NULL, 1), SLUICE_EINVAL);
    assert_int_equal(sluice_sem_acquire(s, UINT64_MAX, NULL), SLUICE_OK);
    sluice_sem_stats st = sem_stats(s);
    assert_true(st.in_use == UINT64_MAX);
    assert_true(st.in_use_hwm == UINT64_MAX);
    assert_int_equal(sluice_sem_try_acquire(s, 1), SLUICE_EAGAIN);
    assert_int_equal(sluice_sem_release(s, UINT64_MAX), SLUICE_OK);
    assert_int_equal(sluice_sem_release(s, 1), SLUICE_EOVERFLOW);
    st = sem_stats(s);
    assert_int_equal(st.in_use, 0);
    assert_int_equal(st.release_errors, 1);
    assert_int_equal(st.try_failed, 1);
    assert_int_equal(st.acquired, 1);
    sluice_sem_destroy(s);

    /* Capacity 1: 2 is oversize (at once, counted); releasing 2 of 1
     * held changes nothing. */
    s = make_sem(1, NULL);
    assert_int_equal(sluice_sem_acquire(s, 2, NULL), SLUICE_EOVERFLOW);
    assert_int_equal(sluice_sem_try_acquire(s, 2), SLUICE_EOVERFLOW);
    assert_int_equal(sluice_sem_acquire(s, 1, NULL), SLUICE_OK);
    assert_int_equal(sluice_sem_release(s, 2), SLUICE_EOVERFLOW);
    st = sem_stats(s);
    assert_int_equal(st.in_use, 1);
    assert_int_equal(st.oversize, 2);
    assert_int_equal(sluice_sem_release(s, 1), SLUICE_OK);
    assert_int_equal(sem_stats(s).in_use, 0);
    sluice_histogram h;
    sluice_sem_histogram_get(s, &h);
    assert_int_equal(h.count, 1); /* the one grant; refusals not observed */
    sluice_sem_destroy(s);
}

static void test_sem_done_context_and_past_deadline(void **state)
{
    (void)state;
    sluice_fake_clock fc;
    sluice_fake_clock_init(&fc, 1000);
    sluice_sem *s = make_sem(10, &fc.clock);
    sluice_ctx *done = NULL;
    assert_int_equal(sluice_ctx_create(&done, NULL, 0, &fc.clock), SLUICE_OK);
    sluice_ctx_cancel(done, SLUICE_OK);
    assert_int_equal(sluice_sem_acquire(s, 1, done), SLUICE_ECANCELED);
    assert_int_equal(sluice_sem_acquire_until(s, 1, NULL, 999), SLUICE_ETIMEDOUT);
    assert_int_equal(sluice_sem_acquire_until(s, 1, NULL, 1000), SLUICE_ETIMEDOUT);
    sluice_ctx *past = NULL;
    assert_int_equal(sluice_ctx_with_timeout(&past, NULL, 0, &fc.clock), SLUICE_OK);
    assert_int_equal(sluice_sem_acquire(s, 1, past), SLUICE_ETIMEDOUT);
    sluice_sem_stats st = sem_stats(s);
    assert_int_equal(st.in_use, 0);
    assert_int_equal(st.canceled, 1);
    assert_int_equal(st.timeouts, 3);
    assert_int_equal(st.acquired, 0);
    /* 0 = no deadline; UINT64_MAX never comes. */
    assert_int_equal(sluice_sem_acquire_until(s, 1, NULL, 0), SLUICE_OK);
    assert_int_equal(sluice_sem_acquire_until(s, 1, NULL, UINT64_MAX), SLUICE_OK);
    assert_int_equal(sluice_sem_release(s, 2), SLUICE_OK);
    sluice_ctx_release(done);
    sluice_ctx_release(past);
    sluice_sem_destroy(s);
}

typedef struct sem_call {
    sluice_sem *sem;
    uint64_t n;
    uint64_t deadline;
    sluice_ctx *ctx;
} sem_call;

static sluice_err sem_acquire_call(void *arg)
{
    sem_call *c = arg;
    return sluice_sem_acquire_until(c->sem, c->n, c->ctx, c->deadline);
}

static bool sem_waiters_are(sluice_sem *s, unsigned n)
{
    return sem_stats(s).waiters == n;
}

/* A deadline of UINT64_MAX (and a ctx with timeout UINT64_MAX) on a clock
 * a few ns from its end: the acquirers wait for the units. */
static void test_sem_max_deadline_near_clock_end(void **state)
{
    (void)state;
    counting_clock *cc = malloc(sizeof *cc);
    assert_non_null(cc);
    counting_clock_init(cc, UINT64_MAX - 10);
    sluice_sem *s = make_sem(1, &cc->clock);
    assert_int_equal(sluice_sem_acquire(s, 1, NULL), SLUICE_OK);
    sluice_ctx *cx = NULL;
    assert_int_equal(sluice_ctx_with_timeout(&cx, NULL, UINT64_MAX, &cc->clock), SLUICE_OK);
    assert_false(sluice_ctx_done(cx));
    sem_call a = {.sem = s, .n = 1, .deadline = UINT64_MAX};
    sem_call b = {.sem = s, .n = 1, .ctx = cx};
    bg_call ca, cb;
    bg_call_start(&ca, sem_acquire_call, &a);
    WAIT_FOR(sem_waiters_are(s, 1), "the first acquirer queues");
    bg_call_start(&cb, sem_acquire_call, &b);
    WAIT_FOR(sem_waiters_are(s, 2), "the second acquirer queues");
    uint64_t r0 = atomic_load(&cc->reads);
    atomic_store(&cc->now, UINT64_MAX); /* the clock's very end */
    WAIT_FOR(atomic_load(&cc->reads) >= r0 + 20, "the waiters re-read the clock");
    assert_false(atomic_load(&ca.done));
    assert_false(atomic_load(&cb.done));
    assert_false(sluice_ctx_done(cx));
    assert_int_equal(sluice_sem_release(s, 1), SLUICE_OK);
    assert_int_equal(bg_call_finish(&ca, "the first acquirer"), SLUICE_OK);
    assert_int_equal(sluice_sem_release(s, 1), SLUICE_OK);
    assert_int_equal(bg_call_finish(&cb, "the second acquirer"), SLUICE_OK);
    assert_int_equal(sluice_sem_release(s, 1), SLUICE_OK);
    sluice_sem_stats st = sem_stats(s);
    assert_int_equal(st.timeouts, 0);
    assert_int_equal(st.waited, 2);
    sluice_ctx_release(cx);
    sluice_sem_destroy(s);
    free(cc);
}

/* FIFO (try too), shrink below a queued request, close, waiting_units. */
static void test_sem_fifo_shrink_close(void **state)
{
    (void)state;
    sluice_sem *s = make_sem(UINT64_MAX, NULL);
    assert_int_equal(sluice_sem_acquire(s, 1, NULL), SLUICE_OK);
    /* Two requests of UINT64_MAX units queue: neither fits. */
    sem_call big = {.sem = s, .n = UINT64_MAX};
    bg_call c1, c2;
    bg_call_start(&c1, sem_acquire_call, &big);
    WAIT_FOR(sem_waiters_are(s, 1), "the first big request queues");
    bg_call_start(&c2, sem_acquire_call, &big);
    WAIT_FOR(sem_waiters_are(s, 2), "the second big request queues");
    sluice_sem_stats st = sem_stats(s);
    /* "units the queued acquirers ask for, in all": never less than one
     * of them asks for (a wrapped sum would say UINT64_MAX - 1). */
    assert_true(st.waiting_units == UINT64_MAX);
    /* FIFO: units are free (UINT64_MAX - 1 of them) but someone is queued. */
    assert_int_equal(sluice_sem_try_acquire(s, 1), SLUICE_EAGAIN);
    /* Shrinking below the queued requests fails them with EOVERFLOW. */
    assert_int_equal(sluice_sem_set_capacity(s, 5), SLUICE_OK);
    assert_int_equal(bg_call_finish(&c1, "the first big request"), SLUICE_EOVERFLOW);
    assert_int_equal(bg_call_finish(&c2, "the second big request"), SLUICE_EOVERFLOW);
    st = sem_stats(s);
    assert_int_equal(st.waiters, 0);
    assert_int_equal(st.waiting_units, 0);
    assert_int_equal(st.capacity, 5);
    /* Held units stay held past a shrink; nobody is served meanwhile. */
    assert_int_equal(sluice_sem_acquire(s, 4, NULL), SLUICE_OK);
    assert_int_equal(sluice_sem_set_capacity(s, 1), SLUICE_OK);
    assert_int_equal(sem_stats(s).in_use, 5);
    assert_int_equal(sluice_sem_try_acquire(s, 1), SLUICE_EAGAIN);
    sem_call one = {.sem = s, .n = 1};
    bg_call c3;
    bg_call_start(&c3, sem_acquire_call, &one);
    WAIT_FOR(sem_waiters_are(s, 1), "a small request queues");
    /* Close: the waiter wakes with ECLOSED; acquires refused; releases
     * still work; close is idempotent; set_capacity says ECLOSED. */
    sluice_sem_close(s);
    sluice_sem_close(s);
    assert_int_equal(bg_call_finish(&c3, "the small request"), SLUICE_ECLOSED);
    assert_int_equal(sluice_sem_acquire(s, 1, NULL), SLUICE_ECLOSED);
    assert_int_equal(sluice_sem_try_acquire(s, 1), SLUICE_ECLOSED);
    assert_int_equal(sluice_sem_set_capacity(s, 9), SLUICE_ECLOSED);
    assert_int_equal(sluice_sem_release(s, 5), SLUICE_OK);
    st = sem_stats(s);
    assert_true(st.closed);
    assert_int_equal(st.in_use, 0);
    assert_int_equal(st.acquired, 2);
    sluice_sem_destroy(s);
}

/* destroy wakes a waiter with ECLOSED and waits until it has left. */
static void test_sem_destroy_with_waiter(void **state)
{
    (void)state;
    sluice_sem *s = make_sem(1, NULL);
    assert_int_equal(sluice_sem_acquire(s, 1, NULL), SLUICE_OK);
    sem_call one = {.sem = s, .n = 1};
    bg_call c;
    bg_call_start(&c, sem_acquire_call, &one);
    WAIT_FOR(sem_waiters_are(s, 1), "the request queues");
    sluice_sem_destroy(s);
    assert_int_equal(bg_call_finish(&c, "the request"), SLUICE_ECLOSED);
}

/* ---- group ------------------------------------------------------------------------ */

static sluice_pool *make_pool(const char *name, unsigned k, size_t cap, sluice_overflow of)
{
    sluice_pool_config pc;
    sluice_pool_config_init(&pc);
    pc.name = name;
    pc.workers = k;
    pc.queue_capacity = cap;
    pc.overflow = of;
    sluice_pool *p = NULL;
    char err[256];
    if (sluice_pool_create(&pc, &p, err, sizeof err) != SLUICE_OK) {
        fail_msg("pool create: %s", err);
    }
    return p;
}

static sluice_group *make_group(sluice_pool *p, unsigned limit)
{
    sluice_group_config gc;
    sluice_group_config_init(&gc);
    gc.pool = p;
    gc.limit = limit;
    sluice_group *g = NULL;
    char err[128];
    if (sluice_group_create(&gc, &g, err, sizeof err) != SLUICE_OK) {
        fail_msg("group create: %s", err);
    }
    return g;
}

static void assert_group_accounted(sluice_group *g)
{
    sluice_group_stats gs;
    sluice_group_stats_get(g, &gs);
    if (gs.accepted != gs.completed + gs.failed + gs.panicked + gs.skipped) {
        fail_msg(
            "group accounting: accepted %llu != completed %llu + failed %llu + panicked %llu + skipped %llu",
            (unsigned long long)gs.accepted, (unsigned long long)gs.completed, (unsigned long long)gs.failed,
            (unsigned long long)gs.panicked, (unsigned long long)gs.skipped);
    }
    assert_int_equal(gs.pending, 0);
    assert_int_equal(gs.running, 0);
}

static int ret_value(void *arg)
{
    return (int)(intptr_t)arg;
}

static int ret_panic(void *arg)
{
    (void)arg;
    sluice_panic("group boom");
}

/* One failing task: what wait() says for it. */
static sluice_err group_one(sluice_pool *p, int rc, sluice_group_result *res)
{
    sluice_group *g = make_group(p, 0);
    assert_int_equal(sluice_group_run(g, ret_value, (void *)(intptr_t)rc), SLUICE_OK);
    sluice_err e = sluice_group_wait(g, res);
    assert_group_accounted(g);
    sluice_group_destroy(g);
    return e;
}

static void test_group_result_mapping(void **state)
{
    (void)state;
    sluice_pool *p = make_pool("grp", 2, 64, SLUICE_OVERFLOW_BLOCK);
    sluice_group_result res;
    assert_int_equal(group_one(p, 0, &res), SLUICE_OK);
    assert_int_equal(group_one(p, 1, &res), (sluice_err)1);
    assert_int_equal(res.first_rc, 1);
    assert_int_equal(group_one(p, SLUICE_ERR_COUNT_ - 1, &res), (sluice_err)(SLUICE_ERR_COUNT_ - 1));
    assert_int_equal(group_one(p, SLUICE_ERR_COUNT_, &res), SLUICE_ETASK);
    assert_int_equal(res.first_rc, SLUICE_ERR_COUNT_);
    assert_false(res.panicked);
    assert_string_equal(res.message, "");
    assert_int_equal(group_one(p, -1, &res), SLUICE_ETASK);
    assert_int_equal(res.first_rc, -1);
    assert_int_equal(group_one(p, INT_MIN, &res), SLUICE_ETASK);
    assert_int_equal(group_one(p, INT_MAX, &res), SLUICE_ETASK);

    /* A panic: ETASK, panicked, its message, first_rc 0. */
    sluice_group *g = make_group(p, 0);
    assert_int_equal(sluice_group_run(g, ret_panic, NULL), SLUICE_OK);
    memset(&res, 0x5a, sizeof res);
    assert_int_equal(sluice_group_wait(g, &res), SLUICE_ETASK);
    assert_true(res.panicked);
    assert_int_equal(res.first_rc, 0);
    assert_string_equal(res.message, "group boom");
    /* Again: the same at once; a waited group takes no more tasks. */
    sluice_group_result again;
    assert_int_equal(sluice_group_wait(g, &again), SLUICE_ETASK);
    assert_true(again.panicked);
    assert_string_equal(again.message, "group boom");
    assert_int_equal(sluice_group_run(g, ret_value, NULL), SLUICE_ECLOSED);
    assert_int_equal(sluice_group_try_run(g, ret_value, NULL), SLUICE_ECLOSED);
    assert_true(sluice_ctx_done(sluice_group_ctx(g)));
    sluice_group_stats gs;
    sluice_group_stats_get(g, &gs);
    assert_int_equal(gs.panicked, 1);
    assert_true(gs.waited);
    assert_group_accounted(g);
    sluice_group_destroy(g);

    /* NULLs. */
    assert_int_equal(sluice_group_run(NULL, ret_value, NULL), SLUICE_EINVAL);
    g = make_group(p, 0);
    assert_int_equal(sluice_group_run(g, NULL, NULL), SLUICE_EINVAL);
    assert_int_equal(sluice_group_try_run(g, NULL, NULL), SLUICE_EINVAL);
    assert_int_equal(sluice_group_wait(NULL, NULL), SLUICE_EINVAL);
    assert_int_equal(sluice_group_wait(g, NULL), SLUICE_OK);
    sluice_group_destroy(g);
    sluice_group_destroy(NULL);
    assert_false(
        sluice_group_abandoned(&(sluice_abandoned){.fn = ret_value, .reason = SLUICE_ABANDON_DRAIN}));
    sluice_pool_destroy(p);
}

static void test_group_config_bounds(void **state)
{
    (void)state;
    sluice_group_config gc;
    sluice_group_config_init(&gc);
    char name[SLUICE_GROUP_NAME_MAX + 2];
    memset(name, 'g', sizeof name);
    name[SLUICE_GROUP_NAME_MAX] = '\0';
    gc.name = name;
    sluice_group *g = NULL;
    char err[128];
    assert_int_equal(sluice_group_create(&gc, &g, err, sizeof err), SLUICE_OK);
    assert_string_equal(sluice_group_name(g), name);
    /* The private pool: threads 0 and limit 0 -> 4 threads. */
    assert_int_equal(sluice_group_run(g, ret_value, NULL), SLUICE_OK);
    assert_int_equal(sluice_group_wait(g, NULL), SLUICE_OK);
    sluice_group_destroy(g);
    name[SLUICE_GROUP_NAME_MAX] = 'g';
    name[SLUICE_GROUP_NAME_MAX + 1] = '\0';
    g = (sluice_group *)(uintptr_t)0x4;
    memset(err, 'X', sizeof err);
    assert_int_equal(sluice_group_create(&gc, &g, err, sizeof err), SLUICE_EINVAL);
    assert_true(nul_in(err, sizeof err));
    assert_non_null(strstr(err, "name"));
    assert_ptr_equal(g, (sluice_group *)(uintptr_t)0x4);
    gc.name = "g/1";
    assert_int_equal(sluice_group_create(&gc, &g, err, sizeof err), SLUICE_EINVAL);
    gc.name = NULL;
    assert_int_equal(sluice_group_create(&gc, &g, err, sizeof err), SLUICE_OK);
    assert_string_equal(sluice_group_name(g), "group");
    sluice_group_destroy(g);
    /* A parent whose clock differs from the group's. */
    sluice_fake_clock fc;
    sluice_fake_clock_init(&fc, 1);
    sluice_ctx *parent = NULL;
    assert_int_equal(sluice_ctx_create(&parent, NULL, 0, &fc.clock), SLUICE_OK);
    gc.parent = parent;
    /* No clock: the group context takes the parent's. */
    assert_int_equal(sluice_group_create(&gc, &g, err, sizeof err), SLUICE_OK);
    assert_ptr_equal(sluice_ctx_clock(sluice_group_ctx(g)), &fc.clock);
    sluice_group_destroy(g);
    /* Another clock than that of a parent with a deadline: refused,
     * naming parent. */
    sluice_ctx_release(parent);
    assert_int_equal(sluice_ctx_create(&parent, NULL, 1000000, &fc.clock), SLUICE_OK);
    gc.parent = parent;
    gc.clock = sluice_clock_system();
    g = (sluice_group *)(uintptr_t)0x4;
    assert_int_equal(sluice_group_create(&gc, &g, err, sizeof err), SLUICE_EINVAL);
    assert_non_null(strstr(err, "parent"));
    assert_ptr_equal(g, (sluice_group *)(uintptr_t)0x4);
    gc.clock = &fc.clock;
    assert_int_equal(sluice_group_create(&gc, &g, err, sizeof err), SLUICE_OK);
    assert_ptr_equal(sluice_ctx_clock(sluice_group_ctx(g)), &fc.clock);
    sluice_group_destroy(g);
    sluice_ctx_release(parent);
}

/* From the group's own task: wait is EDEADLK. From a task of the group's
 * K = 1 pool that is not the group's: fan out and wait completes by
 * helping. */
typedef struct fan {
    _Atomic int own_wait_rc;
    _Atomic int fan_rc;
    _Atomic int ran;
    _Atomic int done;
    sluice_group *g;
    _Atomic unsigned helped_ok;
} fan;

static fan *g_fan;

static int child_count(void *arg)
{
    (void)arg;
    atomic_fetch_add(&g_fan->ran, 1);
    return 0;
}

static int own_task_waits(void *arg)
{
    sluice_group *g = arg;
    atomic_store(&g_fan->own_wait_rc, sluice_group_wait(g, NULL));
    return 0;
}

static int fan_out_and_wait(void *arg)
{
    (void)arg;
    sluice_group_config gc;
    sluice_group_config_init(&gc);
    gc.pool = sluice_task_pool();
    gc.limit = 2;
    sluice_group *g = NULL;
    if (sluice_group_create(&gc, &g, NULL, 0) != SLUICE_OK) {
        atomic_store(&g_fan->fan_rc, -1);
        atomic_store(&g_fan->done, 1);
        return 1;
    }
    sluice_err rc = SLUICE_OK;
    for (int i = 0; i < 16 && rc == SLUICE_OK; i++) {
        rc = sluice_group_run(g, child_count, NULL); /* waits for a slot: helps */
    }
    if (rc == SLUICE_OK) {
        rc = sluice_group_wait(g, NULL);
    }
    sluice_group_stats gs;
    sluice_group_stats_get(g, &gs);
    atomic_store(&g_fan->helped_ok,
                 gs.accepted == 16 && gs.completed == 16 && gs.helped > 0 && gs.helped <= 16 ? 1u : 0u);
    sluice_group_destroy(g);
    atomic_store(&g_fan->fan_rc, rc);
    atomic_store(&g_fan->done, 1);
    return 0;
}

static void test_group_waits_from_inside(void **state)
{
    (void)state;
    g_fan = calloc(1, sizeof *g_fan);
    assert_non_null(g_fan);
    sluice_pool *p = make_pool("grpin", 1, 64, SLUICE_OVERFLOW_BLOCK);
    assert_int_equal(sluice_pool_submit(p, fan_out_and_wait, NULL), SLUICE_OK);
    WAIT_FOR(atomic_load(&g_fan->done) == 1, "the fan-out on a K = 1 pool completes");
    assert_int_equal(atomic_load(&g_fan->fan_rc), SLUICE_OK);
    assert_int_equal(atomic_load(&g_fan->helped_ok), 1);
    assert_int_equal(atomic_load(&g_fan->ran), 16);

    sluice_group *g = make_group(p, 0);
    atomic_store(&g_fan->own_wait_rc, -1);
    assert_int_equal(sluice_group_run(g, own_task_waits, g), SLUICE_OK);
    assert_int_equal(sluice_group_wait(g, NULL), SLUICE_OK);
    assert_int_equal(atomic_load(&g_fan->own_wait_rc), SLUICE_EDEADLK);
    assert_group_accounted(g);
    sluice_group_destroy(g);
    assert_int_equal(sluice_pool_drain(p, 0, NULL), SLUICE_OK);
    sluice_pool_destroy(p);
    free(g_fan);
    g_fan = NULL;
}

/* try_run at the limit, cancel, and tasks handed back by a draining pool
 * (to the group, never to the pool's abandon handler). */
static _Atomic int g_pool_handler_saw;

static void pool_abandon(const sluice_abandoned *a, void *user)
{
    (void)a;
    (void)user;
    atomic_fetch_add(&g_pool_handler_saw, 1);
}

static int task_gate_fn(void *arg)
{
    return task_gate(arg);
}

static void test_group_limit_cancel_handback(void **state)
{
    (void)state;
    atomic_store(&g_pool_handler_saw, 0);
    gate *gt = malloc(sizeof *gt);
    assert_non_null(gt);
    gate_init(gt);
    sluice_pool_config pc;
    sluice_pool_config_init(&pc);
    pc.name = "grpback";
    pc.workers = 1;
    pc.queue_capacity = 16;
    pc.abandon_handler = pool_abandon;
    sluice_pool *p = NULL;
    assert_int_equal(sluice_pool_create(&pc, &p, NULL, 0), SLUICE_OK);

    /* limit 1: the second try_run is refused and counted. */
    sluice_group *g = make_group(p, 1);
    assert_int_equal(sluice_group_try_run(g, task_gate_fn, gt), SLUICE_OK);
    GATE_WAIT_ENTERED(gt, 1);
    assert_int_equal(sluice_group_try_run(g, ret_value, NULL), SLUICE_EAGAIN);
    sluice_group_stats gs;
    sluice_group_stats_get(g, &gs);
    assert_int_equal(gs.try_refused, 1);
    assert_int_equal(gs.limit, 1);
    gate_open(gt);
    assert_int_equal(sluice_group_wait(g, NULL), SLUICE_OK);
    assert_group_accounted(g);
    sluice_group_destroy(g);

    /* cancel: queued tasks are skipped; wait says ECANCELED. */
    gate_close(gt);
    g = make_group(p, 0);
    assert_int_equal(sluice_group_run(g, task_gate_fn, gt), SLUICE_OK);
    GATE_WAIT_ENTERED(gt, 2);
    for (int i = 0; i < 5; i++) {
        assert_int_equal(sluice_group_run(g, ret_value, NULL), SLUICE_OK);
    }
    sluice_group_cancel(g, SLUICE_OK);
    gate_open(gt);
    assert_int_equal(sluice_group_wait(g, NULL), SLUICE_ECANCELED);
    sluice_group_stats_get(g, &gs);
    assert_int_equal(gs.skipped, 5);
    assert_group_accounted(g);
    sluice_group_destroy(g);

    /* A drain at its deadline hands the group's queued tasks back: failed
     * with ECLOSED, wait returns, the pool's handler sees none. */
    gate_close(gt);
    g = make_group(p, 0);
    assert_int_equal(sluice_group_run(g, task_gate_fn, gt), SLUICE_OK);
    GATE_WAIT_ENTERED(gt, 3);
    for (int i = 0; i < 4; i++) {
        assert_int_equal(sluice_group_run(g, ret_value, NULL), SLUICE_OK);
    }
    sluice_drain_report r;
    assert_int_equal(sluice_pool_drain(p, 1, &r), SLUICE_ETIMEDOUT); /* the gate task stops */
    assert_int_equal(r.handed_back, 4);
    sluice_group_result res;
    assert_int_equal(sluice_group_wait(g, &res), SLUICE_ECLOSED);
    sluice_group_stats_get(g, &gs);
    assert_int_equal(gs.failed, 4);
    assert_group_accounted(g);
    assert_int_equal(atomic_load(&g_pool_handler_saw), 0);
    /* The pool is closed now: run refuses with the pool's ECLOSED. */
    sluice_group_destroy(g);
    g = make_group(p, 0);
    assert_int_equal(sluice_group_run(g, ret_value, NULL), SLUICE_ECLOSED);
    sluice_group_stats_get(g, &gs);
    assert_int_equal(gs.accepted, 0);
    sluice_group_destroy(g);
    sluice_pool_destroy(p);
    gate_destroy(gt);
    free(gt);
}

/* A task of a group at its limit spawns a subtask into its own group: the
 * only in-flight task is the spawner, so waiting for a slot would wait for
 * itself (it hung for ever before): run() says EDEADLK, try_run EAGAIN.
 * With two tasks at limit 2 each spawning, the second to ask refuses and
 * the first gets the slot the second frees. A task that a run() at the
 * limit helps inline (private pool of one thread, limit 2) and that
 * spawns in turn refuses too (it hung for ever before); with a third slot
 * held by a task on another worker it waits for that slot instead. */
typedef struct spawner {
    sluice_group *_Atomic g;
    _Atomic int run_rc;
    _Atomic int try_rc;
    _Atomic int done;
    _Atomic int child_ran;
    _Atomic int arrived, pair_ok, pair_deadlk, pair_bad;
    /* helping: the outer task's two runs, the helped task's run */
    _Atomic int outer_b_rc, outer_c_rc, outer_done;
    _Atomic int inner_calling, inner_rc, inner_done;
} spawner;

static spawner *g_sp;

static int sp_child(void *arg)
{
    (void)arg;
    atomic_fetch_add(&g_sp->child_ran, 1);
    return 0;
}

static int sp_parent(void *arg)
{
    (void)arg;
    sluice_group *g = atomic_load(&g_sp->g);
    atomic_store(&g_sp->try_rc, sluice_group_try_run(g, sp_child, NULL));
    atomic_store(&g_sp->run_rc, sluice_group_run(g, sp_child, NULL));
    atomic_store(&g_sp->done, 1);
    return 0;
}

/* Both tasks run before either spawns (a barrier), then each spawns. */
static int sp_pair(void *arg)
{
    (void)arg;
    atomic_fetch_add(&g_sp->arrived, 1);
    if (!WAIT_FOR_BG(atomic_load(&g_sp->arrived) >= 2)) {
        atomic_fetch_add(&g_sp->pair_bad, 1);
        return 1;
    }
    sluice_err rc = sluice_group_run(atomic_load(&g_sp->g), sp_child, NULL);
    if (rc == SLUICE_OK) {
        atomic_fetch_add(&g_sp->pair_ok, 1);
    } else if (rc == SLUICE_EDEADLK) {
        atomic_fetch_add(&g_sp->pair_deadlk, 1);
    } else {
        atomic_fetch_add(&g_sp->pair_bad, 1);
    }
    return 0;
}

static bool sp_done(void *arg)
{
    (void)arg;
    return atomic_load(&g_sp->done) == 1;
}

/* Helped inline by the outer task's run(), on the outer task's thread:
 * spawns in turn. */
static int sp_inner(void *arg)
{
    (void)arg;
    atomic_store(&g_sp->inner_calling, 1);
    atomic_store(&g_sp->inner_rc, sluice_group_run(atomic_load(&g_sp->g), sp_child, NULL));
    atomic_store(&g_sp->inner_done, 1);
    return 0;
}

/* Fills the group's last slot with sp_inner (pending: every worker is
 * busy), then runs once more at the limit, which helps sp_inner inline. */
static int sp_outer(void *arg)
{
    (void)arg;
    sluice_group *g = atomic_load(&g_sp->g);
    atomic_store(&g_sp->outer_b_rc, sluice_group_run(g, sp_inner, NULL));
    atomic_store(&g_sp->outer_c_rc, sluice_group_run(g, sp_child, NULL));
    atomic_store(&g_sp->outer_done, 1);
    return 0;
}

static bool sp_inner_done(void *arg)
{
    (void)arg;
    return atomic_load(&g_sp->inner_done) == 1;
}

static bool sp_inner_calling(void *arg)
{
    (void)arg;
    return atomic_load(&g_sp->inner_calling) == 1;
}

static void test_group_spawn_at_limit_from_own_task(void **state)
{
    (void)state;
    g_sp = calloc(1, sizeof *g_sp);
    assert_non_null(g_sp);
    sluice_pool *p = make_pool("grpspawn", 2, 64, SLUICE_OVERFLOW_BLOCK);
    sluice_group *g = make_group(p, 1);
    atomic_store(&g_sp->g, g);
    assert_int_equal(sluice_group_run(g, sp_parent, NULL), SLUICE_OK);
    wait_until(sp_done, NULL, "the spawning task's run() returns");
    assert_int_equal(atomic_load(&g_sp->try_rc), SLUICE_EAGAIN);
    assert_int_equal(atomic_load(&g_sp->run_rc), SLUICE_EDEADLK);
    assert_int_equal(sluice_group_wait(g, NULL), SLUICE_OK);
    assert_int_equal(atomic_load(&g_sp->child_ran), 0);
    assert_group_accounted(g);
    sluice_group_destroy(g);

    /* Two spawners at limit 2: one waits, the other refuses, then the
     * waiter gets the refuser's slot. */
    memset(g_sp, 0, sizeof *g_sp);
    g = make_group(p, 2);
    atomic_store(&g_sp->g, g);
    assert_int_equal(sluice_group_run(g, sp_pair, NULL), SLUICE_OK);
    assert_int_equal(sluice_group_run(g, sp_pair, NULL), SLUICE_OK);
    assert_int_equal(sluice_group_wait(g, NULL), SLUICE_OK);
    assert_int_equal(atomic_load(&g_sp->pair_ok), 1);
    assert_int_equal(atomic_load(&g_sp->pair_deadlk), 1);
    assert_int_equal(atomic_load(&g_sp->pair_bad), 0);
    assert_int_equal(atomic_load(&g_sp->child_ran), 1);
    sluice_group_stats gs;
    sluice_group_stats_get(g, &gs);
    assert_int_equal(gs.accepted, 3);
    assert_int_equal(gs.completed, 3);
    assert_group_accounted(g);
    sluice_group_destroy(g);

    /* Helping: limit 2 on a private pool of one thread. The outer task
     * runs the inner one (accepted, pending), then runs again at the
     * limit and so helps: the inner task runs inline on the outer one's
     * thread and spawns at the limit. Its only way to a slot is the outer
     * task, which waits for it: EDEADLK (it waited for ever before, the
     * helping outer task not counted as blocked). The outer run then gets
     * the inner task's slot. */
    memset(g_sp, 0, sizeof *g_sp);
    sluice_group_config gc;
    sluice_group_config_init(&gc);
    gc.limit = 2;
    gc.threads = 1;
    char gerr[128];
    assert_int_equal(sluice_group_create(&gc, &g, gerr, sizeof gerr), SLUICE_OK);
    atomic_store(&g_sp->g, g);
    assert_int_equal(sluice_group_run(g, sp_outer, NULL), SLUICE_OK);
    wait_until(sp_inner_done, NULL, "the helped task's run() returns");
    assert_int_equal(atomic_load(&g_sp->inner_rc), SLUICE_EDEADLK);
    assert_int_equal(sluice_group_wait(g, NULL), SLUICE_OK);
    assert_int_equal(atomic_load(&g_sp->outer_done), 1);
    assert_int_equal(atomic_load(&g_sp->outer_b_rc), SLUICE_OK);
    assert_int_equal(atomic_load(&g_sp->outer_c_rc), SLUICE_OK);
    assert_int_equal(atomic_load(&g_sp->child_ran), 1);
    sluice_group_stats_get(g, &gs);
    assert_int_equal(gs.helped, 1);
    assert_int_equal(gs.accepted, 3);
    assert_int_equal(gs.completed, 3);
    assert_group_accounted(g);
    sluice_group_destroy(g);

    /* No false EDEADLK: the same, limit 3 on the shared pool of two
     * workers, the third slot held by a task on the other worker that
     * will finish. The helped task waits in run() for that slot and gets
     * it once the gate opens. */
    memset(g_sp, 0, sizeof *g_sp);
    gate *gt = gate_new(); /* not on the stack: a failed wait leaves it held */
    g = make_group(p, 3);
    atomic_store(&g_sp->g, g);
    assert_int_equal(sluice_group_run(g, task_gate_fn, gt), SLUICE_OK);
    WAIT_FOR(atomic_load(&gt->entered) == 1, "the gated task holds the other worker");
    assert_int_equal(sluice_group_run(g, sp_outer, NULL), SLUICE_OK);
    wait_until(sp_inner_calling, NULL, "the helped task calls run()");
    gate_open(gt);
    wait_until(sp_inner_done, NULL, "the helped task's run() returns");
    assert_int_equal(atomic_load(&g_sp->inner_rc), SLUICE_OK);
    assert_int_equal(sluice_group_wait(g, NULL), SLUICE_OK);
    assert_int_equal(atomic_load(&g_sp->outer_b_rc), SLUICE_OK);
    assert_int_equal(atomic_load(&g_sp->outer_c_rc), SLUICE_OK);
    assert_int_equal(atomic_load(&g_sp->child_ran), 2);
    sluice_group_stats_get(g, &gs);
    assert_int_equal(gs.helped, 1);
    assert_int_equal(gs.accepted, 5);
    assert_int_equal(gs.completed, 5);
    assert_int_equal(atomic_load(&gt->timeouts), 0);
    assert_group_accounted(g);
    sluice_group_destroy(g);
    gate_free(gt);
    sluice_pool_destroy(p);
    free(g_sp);
}

/* ---- breaker ---------------------------------------------------------------------- */

static sluice_err breaker_try(sluice_breaker_config *c, char *err, size_t len)
{
    sluice_breaker *b = (sluice_breaker *)(uintptr_t)0x5;
    sluice_err rc = sluice_breaker_create(c, &b, err, len);
    if (rc == SLUICE_OK) {
        sluice_breaker_destroy(b);
    } else if (b != (sluice_breaker *)(uintptr_t)0x5) {
        fail_msg("a refused create wrote *out");
    }
    return rc;
}

static void test_breaker_bounds(void **state)
{
    (void)state;
    sluice_breaker_config c;
    char err[160];
    sluice_breaker_config_init(&c);
    assert_int_equal(breaker_try(&c, err, sizeof err), SLUICE_OK);
    c.failure_rate_percent = 100;
    assert_int_equal(breaker_try(&c, err, sizeof err), SLUICE_OK);
    c.failure_rate_percent = 100.0001;
    assert_int_equal(breaker_try(&c, err, sizeof err), SLUICE_EINVAL);
    assert_non_null(strstr(err, "failure_rate_percent"));
    c.failure_rate_percent = -1;
    assert_int_equal(breaker_try(&c, err, sizeof err), SLUICE_EINVAL);
    c.failure_rate_percent = NAN;
    assert_int_equal(breaker_try(&c, err, sizeof err), SLUICE_EINVAL);
    c.failure_rate_percent = 0;
    c.window_size = SLUICE_BREAKER_WINDOW_MAX;
    assert_int_equal(breaker_try(&c, err, sizeof err), SLUICE_OK);
    c.window_type = SLUICE_BREAKER_WINDOW_TIME;
    assert_int_equal(breaker_try(&c, err, sizeof err), SLUICE_OK);
    c.window_size = SLUICE_BREAKER_WINDOW_MAX + 1;
    assert_int_equal(breaker_try(&c, err, sizeof err), SLUICE_EINVAL);
    assert_non_null(strstr(err, "window_size"));
    c.window_type = SLUICE_BREAKER_WINDOW_COUNT;
    assert_int_equal(breaker_try(&c, err, sizeof err), SLUICE_EINVAL);
    c.window_size = 0;
    c.consecutive_disabled = true;
    c.rate_disabled = true;
    assert_int_equal(breaker_try(&c, err, sizeof err), SLUICE_EINVAL);
    c.rate_disabled = false;
    char name[SLUICE_BREAKER_NAME_MAX + 2];
    memset(name, 'b', sizeof name);
    name[SLUICE_BREAKER_NAME_MAX] = '\0';
    c.name = name;
    assert_int_equal(breaker_try(&c, err, sizeof err), SLUICE_OK);
    name[SLUICE_BREAKER_NAME_MAX] = 'b';
    name[SLUICE_BREAKER_NAME_MAX + 1] = '\0';
    char one = 'X';
    assert_int_equal(breaker_try(&c, &one, 1), SLUICE_EINVAL);
    assert_int_equal(one, '\0');
    c.name = "no space";
    assert_int_equal(breaker_try(&c, err, sizeof err), SLUICE_EINVAL);

    assert_string_equal(sluice_breaker_state_name(SLUICE_BREAKER_STATE_COUNT_), "unknown");
    sluice_breaker_state st = SLUICE_BREAKER_OPEN;
    assert_int_equal(sluice_breaker_state_parse(NULL, &st), SLUICE_EINVAL);
    assert_int_equal(sluice_breaker_state_parse("half-open", &st), SLUICE_EINVAL);
    assert_int_equal(st, SLUICE_BREAKER_OPEN);
    assert_int_equal(sluice_breaker_state_parse("half_open", &st), SLUICE_OK);
    assert_int_equal(st, SLUICE_BREAKER_HALF_OPEN);
}

static sluice_breaker_stats br_stats(sluice_breaker *b)
{
    sluice_breaker_stats s;
    sluice_breaker_stats_get(b, &s);
    return s;
}

/* open_duration UINT64_MAX: OPEN until the clock's end, never a wrap
 * that would let probes through at once. */
static void test_breaker_open_for_ever(void **state)
{
    (void)state;
    sluice_fake_clock fc;
    sluice_fake_clock_init(&fc, 1000);
    sluice_breaker_config c;
    sluice_breaker_config_init(&c);
    c.consecutive_failures = 1;
    c.rate_disabled = true;
    c.open_duration_ns = UINT64_MAX;
    c.clock = &fc.clock;
    sluice_breaker *b = NULL;
    assert_int_equal(sluice_breaker_create(&c, &b, NULL, 0), SLUICE_OK);
    uint64_t t;
    assert_int_equal(sluice_breaker_allow(NULL, &t), SLUICE_EINVAL);
    assert_int_equal(sluice_breaker_allow(b, NULL), SLUICE_EINVAL);
    assert_int_equal(sluice_breaker_allow(b, &t), SLUICE_OK);
    assert_int_equal(sluice_breaker_record(b, t, (sluice_breaker_outcome)3), SLUICE_EINVAL);
    assert_int_equal(sluice_breaker_record(NULL, t, SLUICE_BREAKER_FAILURE), SLUICE_EINVAL);
    assert_int_equal(sluice_breaker_record(b, t, SLUICE_BREAKER_FAILURE), SLUICE_OK);
    assert_int_equal(sluice_breaker_state_get(b), SLUICE_BREAKER_OPEN);
    sluice_breaker_stats s = br_stats(b);
    assert_true(s.open_until_ns == UINT64_MAX);
    sluice_fake_clock_set(&fc, UINT64_MAX - 1);
    assert_int_equal(sluice_breaker_state_get(b), SLUICE_BREAKER_OPEN);
    sluice_fake_clock_advance(&fc, UINT64_MAX); /* saturates: the clock's end */
    assert_int_equal(sluice_breaker_state_get(b), SLUICE_BREAKER_OPEN);
    assert_int_equal(sluice_breaker_allow(b, &t), SLUICE_EOPEN);
    s = br_stats(b);
    assert_int_equal(s.rejected, 1);
    assert_int_equal(s.half_opened, 0);
    assert_int_equal(sluice_breaker_force(b, SLUICE_BREAKER_CLOSED), SLUICE_OK);
    assert_int_equal(sluice_breaker_force(b, SLUICE_BREAKER_STATE_COUNT_), SLUICE_EINVAL);
    assert_int_equal(sluice_breaker_force(NULL, SLUICE_BREAKER_OPEN), SLUICE_EINVAL);
    assert_int_equal(sluice_breaker_allow(b, &t), SLUICE_OK);
    assert_int_equal(sluice_breaker_record(b, t, SLUICE_BREAKER_SUCCESS), SLUICE_OK);
    sluice_breaker_destroy(b);
    sluice_breaker_destroy(NULL);
}

/* Half-open at half_open_max_calls and one past; IGNORED frees a slot;
 * a late ticket moves nothing; half_open_max_wait UINT64_MAX never
 * expires. */
static void test_breaker_half_open_edges(void **state)
{
    (void)state;
    sluice_fake_clock fc;
    sluice_fake_clock_init(&fc, 0);
    sluice_breaker_config c;
    sluice_breaker_config_init(&c);
    c.consecutive_failures = 1;
    c.rate_disabled = true;
    c.open_duration_ns = 10;
    c.half_open_max_calls = 3;
    c.half_open_max_wait_ns = UINT64_MAX;
    c.clock = &fc.clock;
    sluice_breaker *b = NULL;
    assert_int_equal(sluice_breaker_create(&c, &b, NULL, 0), SLUICE_OK);
    uint64_t old, t[4];
    assert_int_equal(sluice_breaker_allow(b, &old), SLUICE_OK); /* a ticket from CLOSED */
    assert_int_equal(sluice_breaker_allow(b, &t[0]), SLUICE_OK);
    assert_int_equal(sluice_breaker_record(b, t[0], SLUICE_BREAKER_FAILURE), SLUICE_OK);
    assert_int_equal(sluice_breaker_state_get(b), SLUICE_BREAKER_OPEN);
    assert_int_equal(sluice_breaker_allow(b, &t[0]), SLUICE_EOPEN);
    sluice_fake_clock_advance(&fc, 9);
    assert_int_equal(sluice_breaker_state_get(b), SLUICE_BREAKER_OPEN);
    sluice_fake_clock_advance(&fc, 1);
    assert_int_equal(sluice_breaker_state_get(b), SLUICE_BREAKER_HALF_OPEN);
    for (int i = 0; i < 3; i++) {
        assert_int_equal(sluice_breaker_allow(b, &t[i]), SLUICE_OK);
    }
    assert_int_equal(sluice_breaker_allow(b, &t[3]), SLUICE_EOPEN);
    assert_int_equal(br_stats(b).half_open_in_flight, 3);
    /* The ticket from CLOSED fails now: late, moves nothing. */
    assert_int_equal(sluice_breaker_record(b, old, SLUICE_BREAKER_FAILURE), SLUICE_OK);
    assert_int_equal(sluice_breaker_state_get(b), SLUICE_BREAKER_HALF_OPEN);
    assert_int_equal(br_stats(b).late_results, 1);
    /* IGNORED frees a slot and counts nowhere else. */
    assert_int_equal(sluice_breaker_record(b, t[0], SLUICE_BREAKER_IGNORED), SLUICE_OK);
    assert_int_equal(sluice_breaker_allow(b, &t[0]), SLUICE_OK);
    assert_int_equal(sluice_breaker_allow(b, &t[3]), SLUICE_EOPEN);
    /* UINT64_MAX max wait: unreported probes hold for ever. */
    sluice_fake_clock_set(&fc, UINT64_MAX - 1);
    assert_int_equal(sluice_breaker_state_get(b), SLUICE_BREAKER_HALF_OPEN);
    sluice_fake_clock_set(&fc, UINT64_MAX);
    assert_int_equal(sluice_breaker_state_get(b), SLUICE_BREAKER_HALF_OPEN);
    assert_int_equal(br_stats(b).half_open_expired, 0);
    /* Three successes close it. */
    for (int i = 0; i < 3; i++) {
        assert_int_equal(sluice_breaker_record(b, t[i], SLUICE_BREAKER_SUCCESS), SLUICE_OK);
    }
    assert_int_equal(sluice_breaker_state_get(b), SLUICE_BREAKER_CLOSED);
    sluice_breaker_stats s = br_stats(b);
    assert_int_equal(s.ignored, 1);
    assert_int_equal(s.successes, 3);
    assert_int_equal(s.failures, 2); /* the trip and the late one */
    assert_int_equal(s.opened, 1);
    assert_int_equal(s.half_opened, 1);
    assert_int_equal(s.closed, 1);
    assert_int_equal(s.rejected, 3);
    assert_int_equal(s.window_calls, 0); /* afresh */
    sluice_breaker_destroy(b);
}

/* A COUNT window: minimum_calls above window_size is capped at it. */
static void test_breaker_minimum_capped(void **state)
{
    (void)state;
    sluice_breaker_config c;
    sluice_breaker_config_init(&c);
    c.consecutive_disabled = true;
    c.window_size = 10;
    c.minimum_calls = 1000;
    c.failure_rate_percent = 50;
    sluice_breaker *b = NULL;
    assert_int_equal(sluice_breaker_create(&c, &b, NULL, 0), SLUICE_OK);
    for (int i = 0; i < 10; i++) {
        uint64_t t;
        assert_int_equal(sluice_breaker_allow(b, &t), SLUICE_OK);
        assert_int_equal(
            sluice_breaker_record(b, t, (i & 1) ? SLUICE_BREAKER_FAILURE : SLUICE_BREAKER_SUCCESS),
            SLUICE_OK);
        if (i < 9) {
            assert_int_equal(sluice_breaker_state_get(b), SLUICE_BREAKER_CLOSED);
        }
    }
    assert_int_equal(sluice_breaker_state_get(b), SLUICE_BREAKER_OPEN);
    sluice_breaker_destroy(b);
}

/* The state callback calls back into the breaker (allowed); a transition
 * it causes comes after it returns, in order. */
typedef struct transitions {
    sluice_breaker_state from[16], to[16];
    int n;
    int nested;
    int depth;
    int max_depth;
} transitions;

static void on_change(sluice_breaker *b, sluice_breaker_state from, sluice_breaker_state to, void *user)
{
    transitions *tr = user;
    tr->depth++;
    if (tr->depth > tr->max_depth) {
        tr->max_depth = tr->depth;
    }
    if (tr->n < 16) {
        tr->from[tr->n] = from;
        tr->to[tr->n] = to;
        tr->n++;
    }
    sluice_breaker_stats s;
    sluice_breaker_stats_get(b, &s);
    (void)sluice_breaker_state_get(b);
    if (to == SLUICE_BREAKER_OPEN && tr->nested == 0) {
        tr->nested = 1;
        (void)sluice_breaker_force(b, SLUICE_BREAKER_CLOSED);
    }
    tr->depth--;
}

static void test_breaker_callback_reenters(void **state)
{
    (void)state;
    transitions *tr = calloc(1, sizeof *tr);
    assert_non_null(tr);
    sluice_breaker_config c;
    sluice_breaker_config_init(&c);
    c.consecutive_failures = 2;
    c.rate_disabled = true;
    c.on_state_change = on_change;
    c.user = tr;
    sluice_breaker *b = NULL;
    assert_int_equal(sluice_breaker_create(&c, &b, NULL, 0), SLUICE_OK);
    for (int i = 0; i < 2; i++) {
        uint64_t t;
        assert_int_equal(sluice_breaker_allow(b, &t), SLUICE_OK);
        assert_int_equal(sluice_breaker_record(b, t, SLUICE_BREAKER_FAILURE), SLUICE_OK);
    }
    assert_int_equal(sluice_breaker_state_get(b), SLUICE_BREAKER_CLOSED);
    assert_int_equal(tr->n, 2);
    assert_int_equal(tr->from[0], SLUICE_BREAKER_CLOSED);
    assert_int_equal(tr->to[0], SLUICE_BREAKER_OPEN);
    assert_int_equal(tr->from[1], SLUICE_BREAKER_OPEN);
    assert_int_equal(tr->to[1], SLUICE_BREAKER_CLOSED);
    assert_int_equal(tr->max_depth, 1); /* never nested */
    sluice_breaker_destroy(b);
    free(tr);
}

/* Threads allow and record at once: every ticket counted once. */
typedef struct br_worker {
    sluice_breaker *b;
    uint64_t allowed, refused;
    unsigned seed;
    pthread_t th;
} br_worker;

static void *br_worker_main(void *arg)
{
    br_worker *w = arg;
    unsigned n = under_sanitizer() ? 3000 : 20000;
    for (unsigned i = 0; i < n; i++) {
        uint64_t t;
        if (sluice_breaker_allow(w->b, &t) != SLUICE_OK) {
            w->refused++;
            continue;
        }
        w->allowed++;
        w->seed = w->seed * 1103515245u + 12345u;
        unsigned r = (w->seed >> 16) % 3;
        sluice_breaker_record(w->b, t,
                              r == 0 ? SLUICE_BREAKER_FAILURE
                                     : (r == 1 ? SLUICE_BREAKER_SUCCESS : SLUICE_BREAKER_IGNORED));
    }
    return NULL;
}

static void test_breaker_concurrent_accounting(void **state)
{
    (void)state;
    sluice_breaker_config c;
    sluice_breaker_config_init(&c);
    c.consecutive_failures = 3;
    c.window_size = 20;
    c.minimum_calls = 10;
    c.open_duration_ns = 1000; /* system clock: 1 us, so it cycles */
    c.half_open_max_calls = 2;
    sluice_breaker *b = NULL;
    assert_int_equal(sluice_breaker_create(&c, &b, NULL, 0), SLUICE_OK);
    br_worker w[4];
    for (int i = 0; i < 4; i++) {
        w[i] = (br_worker){.b = b, .seed = (unsigned)i * 7919u + 1};
        assert_int_equal(pthread_create(&w[i].th, NULL, br_worker_main, &w[i]), 0);
    }
    uint64_t allowed = 0, refused = 0;
    for (int i = 0; i < 4; i++) {
        pthread_join(w[i].th, NULL);
        allowed += w[i].allowed;
        refused += w[i].refused;
    }
    sluice_breaker_stats s = br_stats(b);
    assert_int_equal(s.successes + s.failures + s.ignored, allowed);
    assert_int_equal(s.rejected, refused);
    assert_true(s.opened >= s.half_opened);
    assert_int_equal(s.half_open_in_flight, 0);
    sluice_breaker_destroy(b);
}

/* ---- limiter ---------------------------------------------------------------------- */

static sluice_err limiter_try(double rate, uint64_t burst, char *err, size_t len)
{
    sluice_limiter_config c;
    sluice_limiter_config_init(&c);
    c.rate = rate;
    c.burst = burst;
    sluice_limiter *l = (sluice_limiter *)(uintptr_t)0x6;
    sluice_err rc = sluice_limiter_create(&c, &l, err, len);
    if (rc == SLUICE_OK) {
        sluice_limiter_destroy(l);
    } else if (l != (sluice_limiter *)(uintptr_t)0x6) {
        fail_msg("a refused create wrote *out");
    }
    return rc;
}

static sluice_limiter *make_limiter(double rate, uint64_t burst, const sluice_clock *clock)
{
    sluice_limiter_config c;
    sluice_limiter_config_init(&c);
    c.rate = rate;
    c.burst = burst;
    c.clock = clock;
    sluice_limiter *l = NULL;
    char err[128];
    if (sluice_limiter_create(&c, &l, err, sizeof err) != SLUICE_OK) {
        fail_msg("limiter create: %s", err);
    }
    return l;
}

static sluice_limiter_stats lim_stats(sluice_limiter *l)
{
    sluice_limiter_stats s;
    sluice_limiter_stats_get(l, &s);
    return s;
}

static void test_limiter_bounds(void **state)
{
    (void)state;
    char err[128];
    assert_int_equal(limiter_try(-1, 1, err, sizeof err), SLUICE_EINVAL);
    assert_non_null(strstr(err, "rate"));
    assert_int_equal(limiter_try(NAN, 1, err, sizeof err), SLUICE_EINVAL);
    assert_int_equal(limiter_try(-SLUICE_RATE_INF, 1, err, sizeof err), SLUICE_EINVAL);
    assert_int_equal(limiter_try(1, 0, err, sizeof err), SLUICE_EINVAL);
    assert_non_null(strstr(err, "burst"));
    assert_int_equal(limiter_try(SLUICE_RATE_INF, 0, err, sizeof err), SLUICE_OK);
    assert_int_equal(limiter_try(0, 1, err, sizeof err), SLUICE_OK);
    assert_int_equal(limiter_try(1e300, UINT64_MAX, err, sizeof err), SLUICE_OK);
    sluice_limiter_destroy(NULL);

    sluice_limiter *l = make_limiter(SLUICE_RATE_INF, 0, NULL);
    for (int i = 0; i < 100; i++) {
        assert_true(sluice_limiter_allow(l));
    }
    assert_true(sluice_limiter_allow_n(l, UINT64_MAX));
    sluice_reservation r;
    assert_int_equal(sluice_limiter_reserve(l, UINT64_MAX, &r), SLUICE_OK);
    assert_int_equal(r.delay_ns, 0);
    assert_int_equal(sluice_limiter_wait(l, UINT64_MAX, NULL), SLUICE_OK);
    sluice_limiter_destroy(l);

    /* rate 0: burst calls, then none; wait says EAGAIN, never waits. */
    sluice_fake_clock fc;
    sluice_fake_clock_init(&fc, 0);
    l = make_limiter(0, 2, &fc.clock);
    assert_true(sluice_limiter_allow_n(l, 0));
    assert_false(sluice_limiter_allow_n(l, 3));
    assert_true(sluice_limiter_allow(l));
    assert_true(sluice_limiter_allow(l));
    assert_false(sluice_limiter_allow(l));
    sluice_fake_clock_set(&fc, UINT64_MAX);
    assert_false(sluice_limiter_allow(l));
    assert_int_equal(sluice_limiter_wait(l, 1, NULL), SLUICE_EAGAIN);
    assert_int_equal(sluice_limiter_reserve(l, 1, &r), SLUICE_EAGAIN);
    assert_int_equal(sluice_limiter_reserve(l, 3, &r), SLUICE_EOVERFLOW);
    assert_int_equal(sluice_limiter_wait(l, 3, NULL), SLUICE_EOVERFLOW);
    assert_int_equal(sluice_limiter_reserve(NULL, 1, &r), SLUICE_EINVAL);
    assert_int_equal(sluice_limiter_reserve(l, 1, NULL), SLUICE_EINVAL);
    sluice_limiter_stats s = lim_stats(l);
    assert_int_equal(s.rejected, 4);
    assert_int_equal(s.allowed, 3); /* allow_n(0) is an allow too */
    assert_true(s.limited >= 2);
    assert_int_equal(sluice_limiter_set_rate(l, -1), SLUICE_EINVAL);
    assert_int_equal(sluice_limiter_set_rate(l, NAN), SLUICE_EINVAL);
    assert_int_equal(sluice_limiter_set_burst(l, 0), SLUICE_EINVAL);
    assert_int_equal(lim_stats(l).burst, 2);
    sluice_limiter_destroy(l);
}

/* reserve at UINT64_MAX tokens and into a debt paid past the clock's end;
 * wait refusals take nothing; cancel gives back all, capped at burst. */
static void test_limiter_reserve_extremes(void **state)
{
    (void)state;
    sluice_fake_clock fc;
    sluice_fake_clock_init(&fc, 1000);
    sluice_limiter *l = make_limiter(1, UINT64_MAX, &fc.clock);
    sluice_reservation r;
    assert_int_equal(sluice_limiter_reserve(l, UINT64_MAX, &r), SLUICE_OK);
    assert_true(r.tokens == UINT64_MAX);
    assert_int_equal(r.reserved_at_ns, 1000);
    assert_int_equal(r.act_at_ns, 1000); /* the bucket started full */
    assert_int_equal(r.delay_ns, 0);
    sluice_limiter_destroy(l);

    /* A debt a slow rate pays back only past the clock's end. */
    l = make_limiter(1e-9, 20, &fc.clock);
    assert_int_equal(sluice_limiter_reserve(l, 20, &r), SLUICE_OK);
    assert_int_equal(r.delay_ns, 0);
    sluice_reservation debt;
    assert_int_equal(sluice_limiter_reserve(l, 19, &debt), SLUICE_OK);
    assert_true(debt.act_at_ns == UINT64_MAX);
    assert_true(debt.delay_ns == UINT64_MAX - debt.reserved_at_ns);
    /* A ctx whose deadline comes first: ETIMEDOUT at once, nothing taken. */
    double before = lim_stats(l).tokens;
    sluice_ctx *cx = NULL;
    assert_int_equal(sluice_ctx_create(&cx, NULL, UINT64_MAX - 1, &fc.clock), SLUICE_OK);
    assert_int_equal(sluice_limiter_wait(l, 1, cx), SLUICE_ETIMEDOUT);
    assert_true(lim_stats(l).tokens == before);
    assert_int_equal(lim_stats(l).wait_timeouts, 1);
    sluice_ctx_release(cx);
    /* Cancel before the time to act: all 19 back. */
    sluice_limiter_cancel(l, &debt);
    assert_true(lim_stats(l).tokens == before + 19);
    sluice_limiter_destroy(l);

    /* Cancel is capped at burst. */
    l = make_limiter(1, 5, &fc.clock);
    assert_int_equal(sluice_limiter_reserve(l, 5, &r), SLUICE_OK);
    sluice_reservation r2;
    assert_int_equal(sluice_limiter_reserve(l, 5, &r2), SLUICE_OK);
    assert_true(r2.delay_ns == 5 * SEC);
    sluice_limiter_cancel(l, &r2);
    assert_true(lim_stats(l).tokens <= 5.0);
    sluice_limiter_cancel(l, &r); /* act_at has come: spent, nothing back */
    assert_true(lim_stats(l).tokens <= 5.0);
    sluice_limiter_destroy(l);
}

typedef struct lim_call {
    sluice_limiter *l;
    uint64_t n;
    sluice_ctx *ctx;
} lim_call;

static sluice_err lim_wait_call(void *arg)
{
    lim_call *c = arg;
    return sluice_limiter_wait(c->l, c->n, c->ctx);
}

static bool lim_waiters_are_one(void *arg)
{
    return lim_stats(arg).waiters == 1;
}

/* wait sleeps on the limiter's clock until the tokens are ready; a ctx
 * cancelled meanwhile gives the reservation back. */
static void test_limiter_wait_on_fake_clock(void **state)
{
    (void)state;
    sluice_fake_clock fc;
    sluice_fake_clock_init(&fc, 0);
    sluice_limiter *l = make_limiter(1, 1, &fc.clock);
    assert_true(sluice_limiter_allow(l));
    lim_call a = {.l = l, .n = 1};
    bg_call c;
    bg_call_start(&c, lim_wait_call, &a);
    wait_until(lim_waiters_are_one, l, "the waiter sleeps");
    sluice_fake_clock_advance(&fc, SEC);
    assert_int_equal(bg_call_finish(&c, "the wait"), SLUICE_OK);
    sluice_limiter_stats s = lim_stats(l);
    assert_int_equal(s.waited, 1);
    assert_int_equal(s.waiters, 0);

    sluice_ctx *cx = NULL;
    assert_int_equal(sluice_ctx_create(&cx, NULL, 0, &fc.clock), SLUICE_OK);
    lim_call b = {.l = l, .n = 1, .ctx = cx};
    bg_call_start(&c, lim_wait_call, &b);
    wait_until(lim_waiters_are_one, l, "the second waiter sleeps");
    sluice_ctx_cancel(cx, SLUICE_OK);
    assert_int_equal(bg_call_finish(&c, "the cancelled wait"), SLUICE_ECANCELED);
    s = lim_stats(l);
    assert_int_equal(s.wait_canceled, 1);
    assert_true(s.tokens > -0.5 && s.tokens < 0.5); /* the token came back */
    sluice_ctx_release(cx);
    sluice_limiter_destroy(l);
}

static void test_keyed_limiter_keys(void **state)
{
    (void)state;
    sluice_keyed_limiter_config c;
    sluice_keyed_limiter_config_init(&c);
    c.rate = 0;
    c.burst = 1;
    c.max_keys = 1;
    sluice_keyed_limiter *kl = NULL;
    assert_int_equal(sluice_keyed_limiter_create(&c, &kl, NULL, 0), SLUICE_OK);
    char key[SLUICE_KEYED_LIMITER_KEY_MAX + 2];
    memset(key, 'k', sizeof key);
    key[SLUICE_KEYED_LIMITER_KEY_MAX] = '\0';
    assert_true(sluice_keyed_limiter_allow(kl, key, 1));
    assert_false(sluice_keyed_limiter_allow(kl, key, 1));
    assert_true(sluice_keyed_limiter_tokens(kl, key) < 0.5);
    assert_true(sluice_keyed_limiter_allow(kl, key, 0));
    assert_false(sluice_keyed_limiter_allow(kl, key, 2));
    key[SLUICE_KEYED_LIMITER_KEY_MAX] = 'k';
    key[SLUICE_KEYED_LIMITER_KEY_MAX + 1] = '\0';
    assert_false(sluice_keyed_limiter_allow(kl, key, 1));
    assert_int_equal(sluice_keyed_limiter_wait(kl, key, 1, NULL), SLUICE_EINVAL);
    assert_false(sluice_keyed_limiter_allow(kl, "", 1));
    assert_int_equal(sluice_keyed_limiter_wait(kl, "", 1, NULL), SLUICE_EINVAL);
    assert_false(sluice_keyed_limiter_allow(kl, NULL, 1));
    assert_int_equal(sluice_keyed_limiter_wait(kl, NULL, 1, NULL), SLUICE_EINVAL);
    /* An unknown key reads as full and is not created. */
    assert_true(sluice_keyed_limiter_tokens(kl, "other") == 1.0);
    sluice_keyed_limiter_stats s;
    sluice_keyed_limiter_stats_get(kl, &s);
    assert_int_equal(s.keys, 1);
    assert_int_equal(s.max_keys, 1);
    /* max_keys 1: a second key evicts the first, which comes back full. */
    assert_true(sluice_keyed_limiter_allow(kl, "other", 1));
    key[SLUICE_KEYED_LIMITER_KEY_MAX] = '\0';
    assert_true(sluice_keyed_limiter_allow(kl, key, 1));
    sluice_keyed_limiter_stats_get(kl, &s);
    assert_int_equal(s.keys, 1);
    assert_int_equal(s.evictions, 2);
    assert_int_equal(sluice_keyed_limiter_wait(kl, key, 1, NULL), SLUICE_EAGAIN);
    sluice_keyed_limiter_destroy(kl);
    sluice_keyed_limiter_destroy(NULL);
    sluice_keyed_limiter_config_init(&c);
    c.rate = 1;
    c.burst = 1;
    assert_int_equal(sluice_keyed_limiter_create(&c, &kl, NULL, 0), SLUICE_OK);
    sluice_keyed_limiter_stats_get(kl, &s);
    assert_int_equal(s.max_keys, SLUICE_KEYED_LIMITER_DEFAULT_KEYS);
    assert_string_equal(sluice_keyed_limiter_name(kl), "keyed_limiter");
    sluice_keyed_limiter_destroy(kl);
}

/* A TIME window forgets calls older than window_size seconds: an old
 * failure does not count toward the rate once it has left the window. */
static void test_breaker_time_window_forgets(void **state)
{
    (void)state;
    sluice_fake_clock fc;
    sluice_fake_clock_init(&fc, 5 * SEC);
    sluice_breaker_config c;
    sluice_breaker_config_init(&c);
    c.consecutive_disabled = true;
    c.window_type = SLUICE_BREAKER_WINDOW_TIME;
    c.window_size = 2;
    c.minimum_calls = 2;
    c.failure_rate_percent = 50;
    c.clock = &fc.clock;
    sluice_breaker *b = NULL;
    assert_int_equal(sluice_breaker_create(&c, &b, NULL, 0), SLUICE_OK);
    uint64_t t;
    assert_int_equal(sluice_breaker_allow(b, &t), SLUICE_OK);
    assert_int_equal(sluice_breaker_record(b, t, SLUICE_BREAKER_FAILURE), SLUICE_OK);
    assert_int_equal(br_stats(b).window_calls, 1);
    sluice_fake_clock_advance(&fc, 10 * SEC);
    for (int i = 0; i < 2; i++) {
        assert_int_equal(sluice_breaker_allow(b, &t), SLUICE_OK);
        assert_int_equal(sluice_breaker_record(b, t, SLUICE_BREAKER_SUCCESS), SLUICE_OK);
    }
    sluice_breaker_stats s = br_stats(b);
    assert_int_equal(s.window_calls, 2);
    assert_int_equal(s.window_failures, 0);
    assert_true(s.failure_rate_percent == 0.0);
    assert_int_equal(s.state, SLUICE_BREAKER_CLOSED);
    /* Within the window: 1 failure of 2 calls (50%) trips it... */
    assert_int_equal(sluice_breaker_allow(b, &t), SLUICE_OK);
    assert_int_equal(sluice_breaker_record(b, t, SLUICE_BREAKER_FAILURE), SLUICE_OK);
    s = br_stats(b);
    assert_int_equal(s.window_calls, 3);
    assert_int_equal(s.window_failures, 1);
    assert_int_equal(s.state, SLUICE_BREAKER_CLOSED); /* 33% */
    assert_int_equal(sluice_breaker_allow(b, &t), SLUICE_OK);
    assert_int_equal(sluice_breaker_record(b, t, SLUICE_BREAKER_FAILURE), SLUICE_OK);
    assert_int_equal(br_stats(b).state, SLUICE_BREAKER_OPEN); /* 2 of 4: 50% */
    sluice_breaker_destroy(b);
}

/* set_rate keeps what was earned at the old rate and earns at the new one
 * only from then on; set_burst caps the tokens. */
static void test_limiter_live_changes(void **state)
{
    (void)state;
    sluice_fake_clock fc;
    sluice_fake_clock_init(&fc, 0);
    sluice_limiter *l = make_limiter(0, 10, &fc.clock);
    assert_true(sluice_limiter_allow_n(l, 10));
    sluice_fake_clock_advance(&fc, 3600 * SEC); /* rate 0: nothing earned */
    assert_int_equal(sluice_limiter_set_rate(l, 1), SLUICE_OK);
    assert_true(lim_stats(l).tokens < 0.001); /* not an hour at the new rate */
    assert_false(sluice_limiter_allow(l));
    sluice_fake_clock_advance(&fc, SEC);
    assert_true(sluice_limiter_allow(l));
    assert_false(sluice_limiter_allow(l));
    sluice_fake_clock_advance(&fc, 100 * SEC);
    assert_true(lim_stats(l).tokens <= 10.0); /* capped at burst */
    assert_int_equal(sluice_limiter_set_burst(l, 3), SLUICE_OK);
    sluice_limiter_stats s = lim_stats(l);
    assert_int_equal(s.burst, 3);
    assert_true(s.tokens <= 3.0);
    assert_true(sluice_limiter_allow_n(l, 3));
    assert_false(sluice_limiter_allow_n(l, 4)); /* more than burst: never */
    sluice_limiter_destroy(l);
}

/* max_keys 2: the least recently used key is the one forgotten. */
static void test_keyed_limiter_lru(void **state)
{
    (void)state;
    sluice_keyed_limiter_config c;
    sluice_keyed_limiter_config_init(&c);
    c.rate = 0;
    c.burst = 1;
    c.max_keys = 2;
    sluice_keyed_limiter *kl = NULL;
    assert_int_equal(sluice_keyed_limiter_create(&c, &kl, NULL, 0), SLUICE_OK);
    assert_true(sluice_keyed_limiter_allow(kl, "a", 1));
    assert_true(sluice_keyed_limiter_allow(kl, "b", 1));
    assert_false(sluice_keyed_limiter_allow(kl, "a", 1)); /* a is now the most recent */
    assert_true(sluice_keyed_limiter_allow(kl, "c", 1));  /* evicts b */
    assert_false(sluice_keyed_limiter_allow(kl, "a", 1)); /* a kept its empty bucket */
    assert_true(sluice_keyed_limiter_allow(kl, "b", 1));  /* b came back full (evicts c) */
    sluice_keyed_limiter_stats s;
    sluice_keyed_limiter_stats_get(kl, &s);
    assert_int_equal(s.keys, 2);
    assert_int_equal(s.evictions, 2);
    assert_int_equal(s.allowed, 4);
    assert_int_equal(s.limited, 2);
    sluice_keyed_limiter_destroy(kl);
}

/* ---- keyed (one more edge) --------------------------------------------------------- */

typedef struct kd_call {
    sluice_keyed *ex;
    uint64_t timeout;
} kd_call;

static sluice_err kd_drain_call(void *arg)
{
    kd_call *c = arg;
    return sluice_keyed_drain(c->ex, c->timeout, NULL);
}

/* keyed drain(UINT64_MAX) on a clock at its very end waits for the
 * running task (the deadline saturates: never "already past"; it
 * returned ETIMEDOUT at once before). */
static void test_keyed_drain_max_at_clock_end(void **state)
{
    (void)state;
    sluice_fake_clock fc;
    sluice_fake_clock_init(&fc, UINT64_MAX - 5);
    sluice_pool_config pc;
    sluice_pool_config_init(&pc);
    pc.name = "kdend";
    pc.workers = 1;
    pc.queue_capacity = 8;
    pc.clock = &fc.clock;
    sluice_pool *p = NULL;
    assert_int_equal(sluice_pool_create(&pc, &p, NULL, 0), SLUICE_OK);
    sluice_keyed_config kc;
    sluice_keyed_config_init(&kc);
    kc.pool = p;
    sluice_keyed *ex = NULL;
    assert_int_equal(sluice_keyed_create(&kc, &ex, NULL, 0), SLUICE_OK);
    gate *gt = malloc(sizeof *gt);
    assert_non_null(gt);
    gate_init(gt);
    assert_int_equal(sluice_keyed_submit(ex, 1, task_gate_fn, gt), SLUICE_OK);
    assert_int_equal(sluice_keyed_submit(ex, 1, ret_value, NULL), SLUICE_OK);
    GATE_WAIT_ENTERED(gt, 1);
    kd_call call = {.ex = ex, .timeout = UINT64_MAX};
    bg_call c;
    bg_call_start(&c, kd_drain_call, &call);
    sluice_fake_clock_set(&fc, UINT64_MAX);
    /* Give a drain that would end too soon the chance to (a correct one
     * passes whatever the timing). */
    uint64_t until = real_now_ns() + 50 * SLUICE_NS_PER_MS;
    while (!atomic_load(&c.done) && real_now_ns() < until) {
        poll_pause();
    }
    bool early = atomic_load(&c.done);
    gate_open(gt);
    sluice_err rc = bg_call_finish(&c, "the keyed drain");
    if (early) {
        fail_msg("keyed drain(UINT64_MAX) returned %s before the running task ended", sluice_err_name(rc));
    }
    assert_int_equal(rc, SLUICE_OK);
    sluice_keyed_destroy(ex);
    sluice_pool_destroy(p);
    gate_destroy(gt);
    free(gt);
}

/* ---- sync_metrics ----------------------------------------------------------------- */

static void test_sync_metrics_add_remove(void **state)
{
    (void)state;
    sluice_metrics *reg = NULL;
    assert_int_equal(sluice_metrics_create(NULL, &reg), SLUICE_OK);
    sluice_sync_metrics *sm = NULL;
    assert_int_equal(sluice_sync_metrics_create(NULL, &sm), SLUICE_EINVAL);
    assert_int_equal(sluice_sync_metrics_create(reg, NULL), SLUICE_EINVAL);
    assert_int_equal(sluice_sync_metrics_create(reg, &sm), SLUICE_OK);
    sluice_sem_config sc;
    sluice_sem_config_init(&sc);
    sc.capacity = 3;
    sc.name = "same";
    sluice_sem *a = NULL, *b = NULL;
    assert_int_equal(sluice_sem_create(&sc, &a, NULL, 0), SLUICE_OK);
    assert_int_equal(sluice_sem_create(&sc, &b, NULL, 0), SLUICE_OK);
    assert_int_equal(sluice_sync_metrics_add_sem(NULL, a), SLUICE_EINVAL);
    assert_int_equal(sluice_sync_metrics_add_sem(sm, NULL), SLUICE_EINVAL);
    assert_int_equal(sluice_sync_metrics_remove_sem(sm, a), SLUICE_ENOENT);
    assert_int_equal(sluice_sync_metrics_add_sem(sm, a), SLUICE_OK);
    assert_int_equal(sluice_sync_metrics_add_sem(sm, a), SLUICE_EBUSY);
    assert_int_equal(sluice_sync_metrics_add_sem(sm, b), SLUICE_EBUSY); /* same name */
    sluice_limiter_config lc;
    sluice_limiter_config_init(&lc);
    lc.rate = 1;
    lc.burst = 1;
    lc.name = "same"; /* another kind may share the name */
    sluice_limiter *l = NULL;
    assert_int_equal(sluice_limiter_create(&lc, &l, NULL, 0), SLUICE_OK);
    assert_int_equal(sluice_sync_metrics_add_limiter(sm, l), SLUICE_OK);
    assert_int_equal(sluice_sync_metrics_remove_limiter(sm, NULL), SLUICE_EINVAL);
    assert_int_equal(sluice_sem_acquire(a, 2, NULL), SLUICE_OK);
    char *text = NULL;
    size_t len = 0;
    assert_int_equal(sluice_metrics_render(reg, SLUICE_EXPO_PROMETHEUS, &text, &len), SLUICE_OK);
    assert_non_null(strstr(text, "sluice_semaphore_in_use{name=\"same\"} 2"));
    assert_non_null(strstr(text, "sluice_semaphore_capacity{name=\"same\"} 3"));
    assert_non_null(strstr(text, "sluice_limiter_tokens{name=\"same\"}"));
    free(text);
    /* After remove the sem is gone from scrapes; the other may be added. */
    assert_int_equal(sluice_sync_metrics_remove_sem(sm, a), SLUICE_OK);
    assert_int_equal(sluice_sync_metrics_remove_sem(sm, a), SLUICE_ENOENT);
    sluice_sem_destroy(a);
    assert_int_equal(sluice_sync_metrics_add_sem(sm, b), SLUICE_OK);
    assert_int_equal(sluice_metrics_render(reg, SLUICE_EXPO_PROMETHEUS, &text, &len), SLUICE_OK);
    assert_non_null(strstr(text, "sluice_semaphore_in_use{name=\"same\"} 0"));
    free(text);
    assert_int_equal(sluice_sync_metrics_remove_sem(sm, b), SLUICE_OK);
    assert_int_equal(sluice_sync_metrics_remove_limiter(sm, l), SLUICE_OK);
    sluice_sem_destroy(b);
    sluice_limiter_destroy(l);
    sluice_sync_metrics_destroy(sm);
    sluice_sync_metrics_destroy(NULL);
    sluice_metrics_destroy(reg);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_sem_bounds),
        cmocka_unit_test(test_sem_done_context_and_past_deadline),
        cmocka_unit_test(test_sem_max_deadline_near_clock_end),
        cmocka_unit_test(test_sem_fifo_shrink_close),
        cmocka_unit_test(test_sem_destroy_with_waiter),
        cmocka_unit_test(test_group_result_mapping),
        cmocka_unit_test(test_group_config_bounds),
        cmocka_unit_test(test_group_waits_from_inside),
        cmocka_unit_test(test_group_limit_cancel_handback),
        cmocka_unit_test(test_group_spawn_at_limit_from_own_task),
        cmocka_unit_test(test_breaker_bounds),
        cmocka_unit_test(test_breaker_open_for_ever),
        cmocka_unit_test(test_breaker_half_open_edges),
        cmocka_unit_test(test_breaker_minimum_capped),
        cmocka_unit_test(test_breaker_callback_reenters),
        cmocka_unit_test(test_breaker_concurrent_accounting),
        cmocka_unit_test(test_limiter_bounds),
        cmocka_unit_test(test_limiter_reserve_extremes),
        cmocka_unit_test(test_limiter_wait_on_fake_clock),
        cmocka_unit_test(test_keyed_limiter_keys),
        cmocka_unit_test(test_breaker_time_window_forgets),
        cmocka_unit_test(test_limiter_live_changes),
        cmocka_unit_test(test_keyed_limiter_lru),
        cmocka_unit_test(test_keyed_drain_max_at_clock_end),
        cmocka_unit_test(test_sync_metrics_add_remove),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
