/*
 * tests/sync/test_batcher.c - the batcher: config messages; sealing by
 * size and by time (measured from the batch's first item) on the fake
 * clock; failures, panics and pool refusals handed to the failure handler
 * whole; the in-flight bound (try_add EFULL, add timing out, a due batch
 * sealed when a slot frees); drain and destroy flushing the partial
 * batch, and drain's deadline handing unsent items over; every item
 * accounted exactly once; the exposition.
 *
 * Items are ints whose fate (delivered / failed) is recorded per item;
 * batch functions block on gates; waits re-check every millisecond.
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
#include <time.h>

#include <cmocka.h>

#include "common/wait.h"
#include "sluice/batcher.h"
#include "sync/bg_call.h"
#include "sync/exposition.h"
#include "sluice/sync_metrics.h"
#include "sluice/task.h"

#define MS SLUICE_NS_PER_MS
#define SEC SLUICE_NS_PER_SEC
#define NITEMS 4096

/* ---- items and their fates ----------------------------------------------------- */

static int items[NITEMS];
static _Atomic int fate[NITEMS]; /* 0 pending, 1 delivered, 2 failed; more = twice */
static pthread_mutex_t rec_mu = PTHREAD_MUTEX_INITIALIZER;
static size_t sizes[NITEMS];
static int nsizes;
static sluice_batch_failure whys[NITEMS];
static int nfail;
static _Atomic int fail_every; /* batch_fn fails every n-th batch (0: never) */
static _Atomic int batch_calls;
static _Atomic bool panic_next;
/* Open unless a test closes it: batch_fn waits here (tests/common/wait.h). */
static gate batch_gate;
static bool batch_gate_ready;
static _Atomic int in_batch;

static void reset(void)
{
    for (int i = 0; i < NITEMS; i++) {
        items[i] = i;
        atomic_store(&fate[i], 0);
    }
    pthread_mutex_lock(&rec_mu);
    nsizes = 0;
    nfail = 0;
    pthread_mutex_unlock(&rec_mu);
    atomic_store(&fail_every, 0);
    atomic_store(&batch_calls, 0);
    atomic_store(&panic_next, false);
    atomic_store(&in_batch, 0);
    if (!batch_gate_ready) {
        gate_init(&batch_gate);
        batch_gate_ready = true;
    }
    gate_open(&batch_gate);
}

static void gate_set(bool closed)
{
    if (closed) {
        gate_close(&batch_gate);
    } else {
        gate_open(&batch_gate);
    }
}

static int batch_fn(void **its, size_t n, void *user)
{
    (void)user;
    atomic_fetch_add(&in_batch, 1);
    ev_signal();
    gate_pass(&batch_gate, false);
    atomic_fetch_sub(&in_batch, 1);
    int call = atomic_fetch_add(&batch_calls, 1) + 1;
    if (atomic_exchange(&panic_next, false)) {
        sluice_panic("insert exploded");
    }
    int every = atomic_load(&fail_every);
    if (every && call % every == 0) {
        ev_signal();
        return 503;
    }
    pthread_mutex_lock(&rec_mu);
    sizes[nsizes++] = n;
    pthread_mutex_unlock(&rec_mu);
    for (size_t i = 0; i < n; i++) {
        atomic_fetch_add(&fate[*(int *)its[i]], 1);
    }
    ev_signal();
    return 0;
}

static void failure_fn(void **its, size_t n, int rc, sluice_batch_failure why, void *user)
{
    (void)user;
    (void)rc;
    pthread_mutex_lock(&rec_mu);
    whys[nfail++] = why;
    pthread_mutex_unlock(&rec_mu);
    for (size_t i = 0; i < n; i++) {
        atomic_fetch_add(&fate[*(int *)its[i]], 2);
    }
    ev_signal();
}

/* Every item in [0, n) delivered or failed exactly once. */
static void all_once(int n, int *delivered, int *failed)
{
    int d = 0, f = 0;
    for (int i = 0; i < n; i++) {
        int v = atomic_load(&fate[i]);
        if (v != 1 && v != 2) {
            fail_msg("item %d has fate %d (want 1 delivered or 2 failed, once)", i, v);
        }
        d += v == 1;
        f += v == 2;
    }
    if (delivered) {
        *delivered = d;
    }
    if (failed) {
        *failed = f;
    }
}

static int settled_count(int n)
{
    int c = 0;
    for (int i = 0; i < n; i++) {
        c += atomic_load(&fate[i]) != 0;
    }
    return c;
}

static bool settled(void *arg)
{
    return settled_count(NITEMS) >= *(int *)arg;
}

static sluice_batcher_stats bstats(sluice_batcher *b)
{
    sluice_batcher_stats st;
    sluice_batcher_stats_get(b, &st);
    return st;
}

static sluice_pool *make_pool(unsigned k, sluice_fake_clock *fc)
{
    sluice_pool_config pc;
    sluice_pool_config_init(&pc);
    pc.name = "batch_pool";
    pc.workers = k;
    pc.queue_capacity = 64;
    pc.clock = fc ? &fc->clock : NULL;
    pc.panic_handler = NULL;
    sluice_pool *p;
    assert_int_equal(sluice_pool_create(&pc, &p, NULL, 0), SLUICE_OK);
    return p;
}

static sluice_batcher *make(sluice_pool *pool, size_t n, uint64_t t, unsigned inflight)
{
    sluice_batcher_config bc;
    sluice_batcher_config_init(&bc);
    bc.name = "events";
    bc.pool = pool;
    bc.max_items = n;
    bc.max_delay_ns = t;
    bc.max_in_flight = inflight;
    bc.batch_fn = batch_fn;
    bc.failure_fn = failure_fn;
    sluice_batcher *b = NULL;
    char err[160];
    if (sluice_batcher_create(&bc, &b, err, sizeof err)) {
        fail_msg("create: %s", err);
    }
    return b;
}

static bool idle(void *arg)
{
    return bstats(arg).in_flight == 0;
}

/* ---- tests ---------------------------------------------------------------------- */

static void test_config(void **state)
{
    (void)state;
    char err[160];
    sluice_batcher *b = NULL;
    sluice_batcher_config bc;
    sluice_batcher_config_init(&bc);
    assert_int_equal(sluice_batcher_create(&bc, &b, err, sizeof err), SLUICE_EINVAL);
    assert_string_equal(err, "pool: required (the pool batches run on)");
    sluice_pool *pool = make_pool(1, NULL);
    bc.pool = pool;
    assert_int_equal(sluice_batcher_create(&bc, &b, err, sizeof err), SLUICE_EINVAL);
    assert_string_equal(err, "max_items: must be 1..1000000, got 0");
    bc.max_items = SLUICE_BATCHER_MAX_ITEMS + 1;
    assert_int_equal(sluice_batcher_create(&bc, &b, err, sizeof err), SLUICE_EINVAL);
    bc.max_items = SLUICE_BATCHER_MAX_ITEMS; /* the maximum is accepted */
    bc.batch_fn = batch_fn;
    assert_int_equal(sluice_batcher_create(&bc, &b, err, sizeof err), SLUICE_EINVAL);
    assert_string_equal(err, "failure_fn: required: a failed batch must go somewhere");
    bc.failure_fn = failure_fn;
    bc.max_delay_ns = 3601 * SEC;
    assert_int_equal(sluice_batcher_create(&bc, &b, err, sizeof err), SLUICE_EINVAL);
    assert_non_null(strstr(err, "max_delay_ns"));
    bc.max_delay_ns = 0;
    bc.max_in_flight = 65537;
    assert_int_equal(sluice_batcher_create(&bc, &b, err, sizeof err), SLUICE_EINVAL);
    bc.max_in_flight = 0;
    assert_null(b);
    assert_int_equal(sluice_batcher_create(&bc, &b, err, sizeof err), SLUICE_OK);
    assert_string_equal(sluice_batcher_name(b), "batcher");
    sluice_histogram h;
    sluice_batcher_size_histogram(b, &h);
    assert_true(h.bucket_count > 10);
    assert_true(h.bounds[h.bucket_count - 1] == (double)SLUICE_BATCHER_MAX_ITEMS);
    sluice_batcher_destroy(b);
    sluice_batcher_destroy(NULL);
    assert_string_equal(sluice_flush_reason_name(SLUICE_FLUSH_TIME), "time");
    assert_string_equal(sluice_batch_failure_name(SLUICE_BATCH_UNSENT), "unsent");
    assert_string_equal(sluice_flush_reason_name(SLUICE_FLUSH_REASON_COUNT_), "unknown");
    sluice_pool_destroy(pool);
}

static void test_size_and_time(void **state)
{
    (void)state;
    reset();
    sluice_fake_clock fc;
    sluice_fake_clock_init(&fc, 100 * SEC);
    sluice_pool *pool = make_pool(2, &fc);
    sluice_batcher *b = make(pool, 5, SEC, 2);
    for (int i = 0; i < 12; i++) {
        assert_int_equal(sluice_batcher_add(b, &items[i]), SLUICE_OK);
    }
    int ten = 10;
    wait_until(settled, &ten, "two size-sealed batches");
    assert_int_equal(bstats(b).pending_items, 2);
    assert_int_equal(settled_count(NITEMS), 10);
    /* The time limit counts from the batch's first item (item 10, at t0). */
    sluice_fake_clock_advance(&fc, 600 * MS);
    assert_int_equal(sluice_batcher_add(b, &items[12]), SLUICE_OK);
    sluice_fake_clock_advance(&fc, 399 * MS);
    assert_int_equal(settled_count(NITEMS), 10); /* not yet: 999 ms */
    sluice_fake_clock_advance(&fc, 1 * MS);
    int thirteen = 13;
    wait_until(settled, &thirteen, "the time-sealed batch");
    int d;
    all_once(13, &d, NULL);
    assert_int_equal(d, 13);
    sluice_batcher_stats st = bstats(b);
    assert_int_equal(st.flushes[SLUICE_FLUSH_SIZE], 2);
    assert_int_equal(st.flushes[SLUICE_FLUSH_TIME], 1);
    assert_int_equal(st.added, 13);
    /* A new batch gets its own time limit: no stale timer seals it early. */
    assert_int_equal(sluice_batcher_add(b, &items[13]), SLUICE_OK);
    sluice_fake_clock_advance(&fc, 500 * MS);
    assert_int_equal(bstats(b).pending_items, 1);
    sluice_histogram h;
    sluice_batcher_size_histogram(b, &h);
    assert_int_equal(h.count, 3);
    assert_true(h.sum_seconds == 13.0);
    /* Destroy flushes the partial batch (reason drain). */
    sluice_batcher_destroy(b);
    all_once(14, &d, NULL);
    assert_int_equal(d, 14);
    pthread_mutex_lock(&rec_mu);
    assert_int_equal(sizes[nsizes - 1], 1);
    pthread_mutex_unlock(&rec_mu);
    sluice_pool_destroy(pool);
}

static void test_failures_whole_batches(void **state)
{
    (void)state;
    reset();
    sluice_pool_config pc;
    sluice_pool_config_init(&pc);
    pc.name = "batch_panics";
    pc.workers = 1;
    pc.queue_capacity = 64;
    sluice_pool *pool;
    assert_int_equal(sluice_pool_create(&pc, &pool, NULL, 0), SLUICE_OK);
    sluice_batcher *b = make(pool, 10, 0, 1);
    atomic_store(&fail_every, 3); /* every third batch fails */
    for (int i = 0; i < 100; i++) {
        assert_int_equal(sluice_batcher_add(b, &items[i]), SLUICE_OK);
    }
    int hundred = 100;
    wait_until(settled, &hundred, "ten batches");
    int d, f;
    all_once(100, &d, &f);
    assert_int_equal(f, 30);
    assert_int_equal(d, 70);
    /* A panic: its batch goes to the failure handler whole. */
    atomic_store(&fail_every, 0);
    atomic_store(&panic_next, true);
    for (int i = 100; i < 110; i++) {
        assert_int_equal(sluice_batcher_add(b, &items[i]), SLUICE_OK);
    }
    int n110 = 110;
    wait_until(settled, &n110, "the panicked batch");
    all_once(110, &d, &f);
    assert_int_equal(f, 40);
    wait_until(idle, b, "the batch to end");
    sluice_batcher_stats st = bstats(b);
    assert_int_equal(st.failures[SLUICE_BATCH_FAILED], 3);
    assert_int_equal(st.failures[SLUICE_BATCH_PANICKED], 1);
    assert_int_equal(st.delivered + st.failed_items, st.added);
    sluice_batcher_destroy(b);
    sluice_pool_destroy(pool);

    /* A pool that refuses: the batch is REFUSED, not lost. */
    reset();
    pool = make_pool(1, NULL);
    b = make(pool, 3, 0, 1);
    sluice_pool_drain(pool, 0, NULL);
    for (int i = 0; i < 3; i++) {
        assert_int_equal(sluice_batcher_add(b, &items[i]), SLUICE_OK);
    }
    all_once(3, &d, &f);
    assert_int_equal(f, 3);
    assert_int_equal(whys[0], SLUICE_BATCH_REFUSED);
    sluice_batcher_destroy(b);
    sluice_pool_destroy(pool);
}

static bool one_in_batch(void *arg)
{
    (void)arg;
    return atomic_load(&in_batch) >= 1;
}

typedef struct adder {
    sluice_batcher *b;
    void *item;
} adder;

static sluice_err add_call(void *arg)
{
    adder *a = arg;
    return sluice_batcher_add(a->b, a->item);
}

static bool one_waiting(void *arg)
{
    return bstats(arg).waiting == 1;
}

static void test_in_flight_bound(void **state)
{
    (void)state;
    reset();
    sluice_fake_clock fc;
    sluice_fake_clock_init(&fc, 100 * SEC);
    sluice_pool *pool = make_pool(4, &fc);
    sluice_batcher_config bc;
    sluice_batcher_config_init(&bc);
    bc.pool = pool;
    bc.max_items = 2;
    bc.max_delay_ns = SEC;
    bc.max_in_flight = 1;
    bc.add_timeout_ns = 500 * MS;
    bc.batch_fn = batch_fn;
    bc.failure_fn = failure_fn;
    sluice_batcher *b;
    assert_int_equal(sluice_batcher_create(&bc, &b, NULL, 0), SLUICE_OK);
    gate_set(true);
    assert_int_equal(sluice_batcher_add(b, &items[0]), SLUICE_OK);
    assert_int_equal(sluice_batcher_add(b, &items[1]), SLUICE_OK); /* sealed: in flight, held */
    wait_until(one_in_batch, NULL, "the first batch to run");
    assert_int_equal(sluice_batcher_add(b, &items[2]), SLUICE_OK);
    assert_int_equal(sluice_batcher_add(b, &items[3]), SLUICE_OK); /* full and due: stays current */
    sluice_batcher_stats st = bstats(b);
    assert_int_equal(st.in_flight, 1);
    assert_int_equal(st.pending_items, 2);
    assert_int_equal(sluice_batcher_try_add(b, &items[4]), SLUICE_EFULL);
    /* add waits, and times out on the clock. */
    adder a = {.b = b, .item = &items[4]};
    bg_call add;
    bg_call_start(&add, add_call, &a);
    wait_until(one_waiting, b, "the adder to wait");
    sluice_fake_clock_advance(&fc, 500 * MS);
    assert_int_equal(bg_call_finish(&add, "the add timeout"), SLUICE_ETIMEDOUT);
    /* A waiting add gets in once the first batch ends and the due one is sealed. */
    bg_call_start(&add, add_call, &a);
    wait_until(one_waiting, b, "the adder to wait");
    gate_set(false);
    assert_int_equal(bg_call_finish(&add, "room"), SLUICE_OK);
    sluice_batcher_drain_report rep;
    assert_int_equal(sluice_batcher_drain(b, 0, &rep), SLUICE_OK);
    assert_false(rep.timed_out);
    int d;
    all_once(5, &d, NULL);
    assert_int_equal(d, 5);
    st = bstats(b);
    assert_int_equal(st.rejected, 2);
    assert_int_equal(st.flushes[SLUICE_FLUSH_SIZE], 2);
    assert_int_equal(st.flushes[SLUICE_FLUSH_DRAIN], 1);
    assert_int_equal(sluice_batcher_add(b, &items[5]), SLUICE_ECLOSED);
    sluice_batcher_destroy(b);
    sluice_pool_destroy(pool);
}

typedef struct drainer {
    sluice_batcher *b;
    sluice_batcher_drain_report rep;
} drainer;

static sluice_err drain_call(void *arg)
{
    drainer *d = arg;
    return sluice_batcher_drain(d->b, SEC, &d->rep);
}

static bool pending_is_zero_or_closed(void *arg)
{
    return bstats(arg).closed;
}

static void test_drain_deadline_unsent(void **state)
{
    (void)state;
    reset();
    sluice_fake_clock fc;
    sluice_fake_clock_init(&fc, 100 * SEC);
    sluice_pool *pool = make_pool(2, &fc);
    sluice_batcher *b = make(pool, 3, 0, 1);
    gate_set(true);
    for (int i = 0; i < 5; i++) {
        assert_int_equal(sluice_batcher_add(b, &items[i]), SLUICE_OK);
    }
    wait_until(one_in_batch, NULL, "the first batch to run");
    /* items 3, 4 wait unsealed behind the held batch. */
    drainer d = {.b = b};
    bg_call drain;
    bg_call_start(&drain, drain_call, &d);
    wait_until(pending_is_zero_or_closed, b, "the drain to begin");
    sluice_fake_clock_advance(&fc, SEC);
    assert_int_equal(bg_call_finish(&drain, "the drain deadline"), SLUICE_ETIMEDOUT);
    assert_int_equal(d.rep.items_unsent, 2);
    assert_int_equal(d.rep.in_flight, 1);
    assert_int_equal(atomic_load(&fate[3]), 2);
    assert_int_equal(atomic_load(&fate[4]), 2);
    pthread_mutex_lock(&rec_mu);
    assert_int_equal(whys[0], SLUICE_BATCH_UNSENT);
    pthread_mutex_unlock(&rec_mu);
    gate_set(false);
    sluice_batcher_destroy(b); /* waits for the batch in flight */
    int dl, f;
    all_once(5, &dl, &f);
    assert_int_equal(dl, 3);
    assert_int_equal(f, 2);
    sluice_pool_destroy(pool);
}

/* Many producers, small batches, failures sprinkled: every item once. */
typedef struct producer {
    sluice_batcher *b;
    int from, to;
} producer;

static void *produce(void *arg)
{
    producer *p = arg;
    for (int i = p->from; i < p->to; i++) {
        if (sluice_batcher_add(p->b, &items[i]) != SLUICE_OK) {
            atomic_fetch_add(&fate[i], 4); /* refused: never expected */
        }
    }
    return NULL;
}

static void test_exactly_once_under_load(void **state)
{
    (void)state;
    reset();
    sluice_pool *pool = make_pool(3, NULL);
    sluice_batcher *b = make(pool, 7, 50 * SLUICE_NS_PER_US, 2);
    atomic_store(&fail_every, 5);
    pthread_t th[4];
    producer ps[4];
    for (int i = 0; i < 4; i++) {
        ps[i] = (producer){b, i * (NITEMS / 4), (i + 1) * (NITEMS / 4)};
        pthread_create(&th[i], NULL, produce, &ps[i]);
    }
    for (int i = 0; i < 4; i++) {
        pthread_join(th[i], NULL);
    }
    sluice_batcher_destroy(b); /* the last partial batch too */
    int d, f;
    all_once(NITEMS, &d, &f);
    assert_true(f > 0 && d > 0);
    sluice_pool_destroy(pool);
}

/* The pool's on_abandon must not call the pool (pool.h). A batch the
 * pool hands back frees its in-flight slot, which seals the due batch:
 * that batch was submitted right there, inside the on_abandon, so on a
 * DROP_OLDEST pool a plain submit that evicted batch 1 found its own task
 * evicted, and its own on_abandon called, inside its own submit call, by
 * a submit nested in the batcher's callback. Now the timer thread submits
 * the due batch (DROPPED, SHED), or it fails REFUSED at once when the pool
 * is closed for good (DRAIN, DESTROY). */
static pthread_t plain_submitter;
static _Atomic bool in_plain_submit;
static _Atomic int plain_nested, plain_ran, plain_dropped;

static int plain_fn(void *arg)
{
    (void)arg;
    atomic_fetch_add(&plain_ran, 1);
    ev_signal();
    return 0;
}

static void plain_abandoned(const sluice_abandoned *task)
{
    (void)task;
    if (pthread_equal(pthread_self(), plain_submitter) && atomic_load(&in_plain_submit)) {
        atomic_fetch_add(&plain_nested, 1); /* a pool call nested in an on_abandon */
    }
    atomic_fetch_add(&plain_dropped, 1);
    ev_signal();
}

static int gate_task(void *arg)
{
    gate_pass(arg, false);
    return 0;
}

static void test_abandon_never_calls_the_pool(void **state)
{
    (void)state;
    reset();
    atomic_store(&plain_nested, 0);
    atomic_store(&plain_ran, 0);
    atomic_store(&plain_dropped, 0);
    plain_submitter = pthread_self();
    sluice_pool_config pc;
    sluice_pool_config_init(&pc);
    pc.name = "drop_pool";
    pc.workers = 1;
    pc.queue_capacity = 1;
    pc.overflow = SLUICE_OVERFLOW_DROP_OLDEST;
    sluice_pool *pool = NULL;
    assert_int_equal(sluice_pool_create(&pc, &pool, NULL, 0), SLUICE_OK);
    gate g;
    gate_init(&g);
    assert_int_equal(sluice_pool_submit(pool, gate_task, &g), SLUICE_OK);
    GATE_WAIT_ENTERED(&g, 1);

    /* DROPPED: batch 1 (item 0) queued, batch 2 (item 1) due behind the
     * in-flight bound of 1; a plain submit evicts batch 1. */
    sluice_batcher *b = make(pool, 1, 0, 1);
    assert_int_equal(sluice_batcher_add(b, &items[0]), SLUICE_OK);
    assert_int_equal(sluice_batcher_add(b, &items[1]), SLUICE_OK);
    assert_int_equal(bstats(b).in_flight, 1);
    assert_int_equal(bstats(b).pending_items, 1);
    sluice_submit_opts o = {.on_abandon = plain_abandoned};
    atomic_store(&in_plain_submit, true);
    assert_int_equal(sluice_pool_submit_ex(pool, plain_fn, NULL, &o), SLUICE_OK);
    atomic_store(&in_plain_submit, false);
    assert_int_equal(atomic_load(&plain_nested), 0);
    gate_open(&g);
    int two = 2;
    wait_until(settled, &two, "batch 1 failed and batch 2 delivered, with no further add");
    assert_int_equal(atomic_load(&fate[0]), 2);
    assert_int_equal(atomic_load(&fate[1]), 1);
    assert_int_equal(whys[0], SLUICE_BATCH_ABANDONED);
    wait_until(idle, b, "batch 2 to be counted (after batch_fn returns)");
    sluice_batcher_stats st = bstats(b);
    assert_int_equal(st.failures[SLUICE_BATCH_ABANDONED], 1);
    assert_int_equal(st.batches_ok, 1);
    assert_int_equal(sluice_batcher_drain(b, 0, NULL), SLUICE_OK);
    sluice_batcher_destroy(b);
    assert_int_equal(sluice_pool_drain(pool, 0, NULL), SLUICE_OK);
    /* The plain task ran, or batch 2's submit (from the timer thread)
     * evicted it: once, and never inside its own submit. */
    assert_int_equal(atomic_load(&plain_ran) + atomic_load(&plain_dropped), 1);
    assert_int_equal(atomic_load(&plain_nested), 0);
    sluice_pool_destroy(pool);

    /* DRAIN: the pool's drain deadline comes with batch 1 (item 0) queued
     * and batch 2 (item 1) due: ABANDONED, then REFUSED at once (no pool
     * call: the pool is closed for good); a later batch fails REFUSED too,
     * with no pool call. The batcher goes before the pool, which must
     * outlive it (this test destroyed the pool first). */
    reset();
    pc.overflow = SLUICE_OVERFLOW_BLOCK;
    pc.queue_capacity = 4;
    assert_int_equal(sluice_pool_create(&pc, &pool, NULL, 0), SLUICE_OK);
    gate_close(&g);
    assert_int_equal(sluice_pool_submit(pool, gate_task, &g), SLUICE_OK);
    GATE_WAIT_ENTERED(&g, 2);
    b = make(pool, 1, 0, 1);
    assert_int_equal(sluice_batcher_add(b, &items[0]), SLUICE_OK);
    assert_int_equal(sluice_batcher_add(b, &items[1]), SLUICE_OK);
    /* The worker is held: the deadline hands batch 1 back; it fails on the
     * batcher's timer thread, and batch 2 with it. */
    assert_int_equal(sluice_pool_drain(pool, 1, NULL), SLUICE_ETIMEDOUT);
    wait_until(settled, &two, "batch 1 abandoned and batch 2 refused");
    wait_until(idle, b, "both counted");
    int failed = -1;
    all_once(2, NULL, &failed);
    assert_int_equal(failed, 2);
    st = bstats(b);
    assert_int_equal(st.failures[SLUICE_BATCH_ABANDONED], 1);
    assert_int_equal(st.failures[SLUICE_BATCH_REFUSED], 1);
    assert_int_equal(st.in_flight, 0);
    assert_int_equal(sluice_batcher_add(b, &items[2]), SLUICE_OK); /* sealed by size: refused */
    st = bstats(b);
    assert_int_equal(st.failures[SLUICE_BATCH_REFUSED], 2);
    assert_int_equal(atomic_load(&fate[2]), 2);
    sluice_batcher_destroy(b); /* nothing pending: it calls no pool */
    gate_open(&g);
    sluice_pool_destroy(pool);
    gate_destroy(&g);
}

/* A batch the pool hands back fails on the batcher's timer thread, never
 * inside the pool's on_abandon (which must not block or call the pool):
 * a failure_fn that blocks (spooling the items, say) does not hold the
 * pool's drain. It ran on the draining thread and held the drain for as
 * long as it blocked. */
static gate spool_gate;
static pthread_t spool_thread;

static void blocking_failure(void **its, size_t n, int rc, sluice_batch_failure why, void *user)
{
    spool_thread = pthread_self(); /* read after gate_pass's entered count (seq_cst) */
    failure_fn(its, n, rc, why, user);
    gate_pass(&spool_gate, false);
}

static sluice_err pool_drain_1ns(void *arg)
{
    return sluice_pool_drain(arg, 1, NULL);
}

static void test_failure_fn_never_inside_on_abandon(void **state)
{
    (void)state;
    reset();
    gate_init(&spool_gate);
    sluice_pool *pool = make_pool(1, NULL);
    gate g;
    gate_init(&g);
    assert_int_equal(sluice_pool_submit(pool, gate_task, &g), SLUICE_OK);
    GATE_WAIT_ENTERED(&g, 1);
    sluice_batcher_config bc;
    sluice_batcher_config_init(&bc);
    bc.pool = pool;
    bc.max_items = 1;
    bc.batch_fn = batch_fn;
    bc.failure_fn = blocking_failure;
    sluice_batcher *b = NULL;
    char err[160];
    assert_int_equal(sluice_batcher_create(&bc, &b, err, sizeof err), SLUICE_OK);
    assert_int_equal(sluice_batcher_add(b, &items[0]), SLUICE_OK); /* sealed, queued behind the gate */
    bg_call drain;
    bg_call_start(&drain, pool_drain_1ns, pool);
    GATE_WAIT_ENTERED(&spool_gate, 1);
    bool inside = pthread_equal(spool_thread, drain.thread) != 0;
    if (inside) {
        gate_open(&spool_gate); /* let the drain go before failing */
    }
    assert_false(inside);
    assert_int_equal(bg_call_finish(&drain, "the pool's drain, with failure_fn blocked"), SLUICE_ETIMEDOUT);
    gate_open(&spool_gate);
    wait_until(idle, b, "the batch to be counted");
    assert_int_equal(atomic_load(&fate[0]), 2);
    assert_int_equal(whys[0], SLUICE_BATCH_ABANDONED);
    assert_int_equal(bstats(b).failures[SLUICE_BATCH_ABANDONED], 1);
    sluice_batcher_destroy(b);
    gate_open(&g);
    sluice_pool_destroy(pool);
    gate_destroy(&g);
    gate_destroy(&spool_gate);
}

static void test_metrics(void **state)
{
    (void)state;
    reset();
    sluice_fake_clock fc;
    sluice_fake_clock_init(&fc, 100 * SEC);
    sluice_pool *pool = make_pool(1, &fc);
    sluice_batcher *b = make(pool, 50, SEC, 1);
    sluice_metrics *reg;
    assert_int_equal(sluice_metrics_create(NULL, &reg), SLUICE_OK);
    sluice_sync_metrics *sm;
    assert_int_equal(sluice_sync_metrics_create(reg, &sm), SLUICE_OK);
    assert_int_equal(sluice_sync_metrics_add_batcher(sm, b), SLUICE_OK);
    assert_int_equal(sluice_sync_metrics_add_batcher(sm, b), SLUICE_EBUSY);
    for (int i = 0; i < 120; i++) {
        assert_int_equal(sluice_batcher_add(b, &items[i]), SLUICE_OK);
    }
    int hundred = 100;
    wait_until(settled, &hundred, "two batches");
    sluice_fake_clock_advance(&fc, SEC);
    int all = 120;
    wait_until(settled, &all, "the time flush");
    wait_until(idle, b, "the last batch to end");
    char *text = expo_render(reg);
    has(text, "sluice_batcher_added_total{name=\"events\"} 120\n");
    has(text, "sluice_batcher_batches_total{name=\"events\",reason=\"size\"} 2\n");
    has(text, "sluice_batcher_batches_total{name=\"events\",reason=\"time\"} 1\n");
    has(text, "sluice_batcher_items_total{name=\"events\",outcome=\"delivered\"} 120\n");
    has(text, "# TYPE sluice_batcher_batch_size histogram");
    has(text, "sluice_batcher_batch_size_bucket{name=\"events\",le=\"20\"} 1\n");
    has(text, "sluice_batcher_batch_size_bucket{name=\"events\",le=\"50\"} 3\n");
    has(text, "sluice_batcher_batch_size_count{name=\"events\"} 3\n");
    has(text, "sluice_batcher_batch_size_sum{name=\"events\"} 120\n");
    has(text, "sluice_batcher_failed_batches_total{name=\"events\",why=\"failed\"} 0\n");
    free(text);
    assert_int_equal(sluice_sync_metrics_remove_batcher(sm, b), SLUICE_OK);
    sluice_sync_metrics_destroy(sm);
    sluice_metrics_destroy(reg);
    sluice_batcher_destroy(b);
    sluice_pool_destroy(pool);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_config),
        cmocka_unit_test(test_size_and_time),
        cmocka_unit_test(test_failures_whole_batches),
        cmocka_unit_test(test_in_flight_bound),
        cmocka_unit_test(test_drain_deadline_unsent),
        cmocka_unit_test(test_exactly_once_under_load),
        cmocka_unit_test(test_abandon_never_calls_the_pool),
        cmocka_unit_test(test_failure_fn_never_inside_on_abandon),
        cmocka_unit_test(test_metrics),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
