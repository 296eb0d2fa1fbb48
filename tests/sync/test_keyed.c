/*
 * tests/sync/test_keyed.c - the keyed serial executor: config messages;
 * per-key order and exclusion; keys in parallel up to K and no more; a
 * busy key never holding a worker; the per-key and total bounds under
 * REJECT, DROP_OLDEST and BLOCK (a fake-clock timeout, a wake-up when
 * space frees, EDEADLK from its own task); drain handing back key by key
 * in order; destroy undrained; a panic in the middle of a batch; a pool
 * that refuses runners; the exposition.
 *
 * Tasks block on gates the test opens (tests/common/wait.h); waits
 * re-check every millisecond with a safety timeout; nothing sleeps.
 */
#include <fcntl.h>
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
#include <time.h>
#include <sys/resource.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cmocka.h>

#include "common/wait.h"
#include "sluice/keyed.h"
#include "sync/bg_call.h"
#include "sync/exposition.h"
#include "sync/timer.h"
#include "sluice/sync_metrics.h"
#include "sluice/task.h"
#include "sluice/tenant.h"

#define MS SLUICE_NS_PER_MS
#define SEC SLUICE_NS_PER_SEC

/* ---- a task that records what ran ------------------------------------------------- */

#define LOG_MAX 4096

static pthread_mutex_t log_mu = PTHREAD_MUTEX_INITIALIZER;
static int run_log[LOG_MAX];
static int nlog;
static _Atomic int running_now, running_max;

typedef struct job {
    int id;
    uint64_t key;
    gate *hold; /* wait here first, if set */
    int rc;
    bool panic;
} job;

static _Atomic int key_busy[64];
static _Atomic int overlaps;

static int job_fn(void *arg)
{
    job *j = arg;
    if (atomic_exchange(&key_busy[j->key % 64], 1) != 0) {
        atomic_fetch_add(&overlaps, 1);
    }
    int now = atomic_fetch_add(&running_now, 1) + 1;
    int m = atomic_load(&running_max);
    while (now > m && !atomic_compare_exchange_weak(&running_max, &m, now)) {
    }
    ev_signal();
    if (j->hold) {
        gate_pass(j->hold, false);
    }
    pthread_mutex_lock(&log_mu);
    if (nlog < LOG_MAX) {
        run_log[nlog++] = j->id;
    }
    pthread_mutex_unlock(&log_mu);
    atomic_fetch_sub(&running_now, 1);
    atomic_store(&key_busy[j->key % 64], 0);
    ev_signal();
    if (j->panic) {
        sluice_panic("job %d exploded", j->id);
    }
    return j->rc;
}

static void log_reset(void)
{
    pthread_mutex_lock(&log_mu);
    nlog = 0;
    pthread_mutex_unlock(&log_mu);
    atomic_store(&running_now, 0);
    atomic_store(&running_max, 0);
    atomic_store(&overlaps, 0);
}

static int log_count(void)
{
    pthread_mutex_lock(&log_mu);
    int n = nlog;
    pthread_mutex_unlock(&log_mu);
    return n;
}

static bool log_at_least(void *arg)
{
    return log_count() >= *(int *)arg;
}

static bool running_at_least(void *arg)
{
    return atomic_load(&running_now) >= *(int *)arg;
}

/* Abandoned tasks, in the order handed back. */
static pthread_mutex_t ab_mu = PTHREAD_MUTEX_INITIALIZER;
static int ab_ids[LOG_MAX];
static uint64_t ab_keys[LOG_MAX];
static sluice_abandon_reason ab_reasons[LOG_MAX];
static int nab;

static void on_abandon(const sluice_keyed_abandoned *t, void *user)
{
    (void)user;
    job *j = t->arg;
    assert_ptr_equal(t->fn, job_fn);
    pthread_mutex_lock(&ab_mu);
    ab_ids[nab] = j->id;
    ab_keys[nab] = t->key;
    ab_reasons[nab] = t->reason;
    nab++;
    pthread_mutex_unlock(&ab_mu);
    ev_signal();
}

static void ab_reset(void)
{
    pthread_mutex_lock(&ab_mu);
    nab = 0;
    pthread_mutex_unlock(&ab_mu);
}

static sluice_pool *make_pool(unsigned k, sluice_fake_clock *fc)
{
    sluice_pool_config pc;
    sluice_pool_config_init(&pc);
    pc.name = "keyed_test";
    pc.workers = k;
    pc.queue_capacity = 256;
    pc.clock = fc ? &fc->clock : NULL;
    sluice_pool *p = NULL;
    assert_int_equal(sluice_pool_create(&pc, &p, NULL, 0), SLUICE_OK);
    return p;
}

static sluice_keyed *make_keyed(sluice_keyed_config *kc)
{
    sluice_keyed *ex = NULL;
    char err[200] = "";
    if (sluice_keyed_create(kc, &ex, err, sizeof err)) {
        fail_msg("sluice_keyed_create: %s", err);
    }
    return ex;
}

static sluice_keyed_stats kstats(sluice_keyed *ex)
{
    sluice_keyed_stats st;
    sluice_keyed_stats_get(ex, &st);
    return st;
}

/* Submits j, which should hold on its gate, and waits until it runs: its
 * key is busy from here on. */
static void submit_first(sluice_keyed *ex, job *j, const char *what)
{
    assert_int_equal(sluice_keyed_submit(ex, j->key, job_fn, j), SLUICE_OK);
    int one = 1;
    wait_until(running_at_least, &one, what);
}

/* ---- config ----------------------------------------------------------------------- */

static void test_config(void **state)
{
    (void)state;
    char err[200];
    sluice_keyed *ex = NULL;
    sluice_keyed_config kc;
    sluice_keyed_config_init(&kc);
    assert_int_equal(sluice_keyed_create(&kc, &ex, err, sizeof err), SLUICE_EINVAL);
    assert_string_equal(err, "pool: required (the pool the tasks run on)");
    sluice_pool *pool = make_pool(3, NULL);
    kc.pool = pool;
    kc.overflow = SLUICE_OVERFLOW_CALLER_RUNS;
    assert_int_equal(sluice_keyed_create(&kc, &ex, err, sizeof err), SLUICE_EINVAL);
    assert_non_null(strstr(err, "overflow: caller_runs would run a key's task out of order"));
    kc.overflow = SLUICE_OVERFLOW_REJECT;
    kc.total_backlog = 10;
    assert_int_equal(sluice_keyed_create(&kc, &ex, err, sizeof err), SLUICE_EINVAL);
    assert_string_equal(err, "total_backlog: must be >= key_backlog (1024), got 10");
    kc.total_backlog = 0;
    kc.max_active_keys = 65537;
    assert_int_equal(sluice_keyed_create(&kc, &ex, err, sizeof err), SLUICE_EINVAL);
    assert_non_null(strstr(err, "max_active_keys: must be <= 65536"));
    kc.max_active_keys = 0;
    kc.name = "no spaces";
    assert_int_equal(sluice_keyed_create(&kc, &ex, err, sizeof err), SLUICE_EINVAL);
    kc.name = NULL;
    assert_null(ex);
    ex = make_keyed(&kc);
    assert_string_equal(sluice_keyed_name(ex), "keyed");
    assert_int_equal(sluice_keyed_submit(ex, 1, NULL, NULL), SLUICE_EINVAL);
    assert_int_equal(sluice_keyed_submit(NULL, 1, job_fn, NULL), SLUICE_EINVAL);
    sluice_keyed_destroy(ex);
    sluice_keyed_destroy(NULL);
    sluice_pool_destroy(pool);
    assert_int_not_equal(sluice_keyed_hash("acct-1"), sluice_keyed_hash("acct-2"));
    assert_int_equal(sluice_keyed_hash(""), 0xcbf29ce484222325ull);
}

/* ---- order, exclusion, parallelism ------------------------------------------------ */

static void test_order_and_exclusion(void **state)
{
    (void)state;
    log_reset();
    sluice_pool *pool = make_pool(4, NULL);
    sluice_keyed_config kc;
    sluice_keyed_config_init(&kc);
    kc.pool = pool;
    sluice_keyed *ex = make_keyed(&kc);
    enum { KEYS = 8, PER = 200 };
    static job jobs[KEYS * PER];
    for (int i = 0; i < PER; i++) {
        for (int k = 0; k < KEYS; k++) {
            job *j = &jobs[i * KEYS + k];
            *j = (job){.id = i * KEYS + k, .key = (uint64_t)k, .rc = (i % 10 == 0)};
            assert_int_equal(sluice_keyed_submit(ex, (uint64_t)k, job_fn, j), SLUICE_OK);
        }
    }
    sluice_keyed_drain_report rep;
    assert_int_equal(sluice_keyed_drain(ex, 0, &rep), SLUICE_OK);
    assert_false(rep.timed_out);
    assert_int_equal(log_count(), KEYS * PER);
    assert_int_equal(atomic_load(&overlaps), 0);
    /* Per key, ids appear in increasing order. */
    int last[KEYS];
    for (int k = 0; k < KEYS; k++) {
        last[k] = -1;
    }
    for (int i = 0; i < nlog; i++) {
        int k = run_log[i] % KEYS;
        assert_true(run_log[i] > last[k]);
        last[k] = run_log[i];
    }
    sluice_keyed_stats st = kstats(ex);
    assert_int_equal(st.submitted, KEYS * PER);
    assert_int_equal(st.completed + st.failed, KEYS * PER);
    assert_int_equal(st.failed, KEYS * PER / 10);
    assert_int_equal(st.keys, 0);
    assert_int_equal(st.queued, 0);
    assert_true(st.keys_hwm <= KEYS);
    assert_int_equal(sluice_keyed_submit(ex, 1, job_fn, &jobs[0]), SLUICE_ECLOSED);
    assert_int_equal(sluice_keyed_drain(ex, 0, &rep), SLUICE_OK); /* again: empty */
    assert_int_equal(rep.completed, 0);
    sluice_keyed_destroy(ex);
    sluice_pool_destroy(pool);
}

static void test_parallel_up_to_k(void **state)
{
    (void)state;
    log_reset();
    sluice_pool *pool = make_pool(4, NULL);
    sluice_keyed_config kc;
    sluice_keyed_config_init(&kc);
    kc.pool = pool;
    kc.max_active_keys = 2;
    sluice_keyed *ex = make_keyed(&kc);
    gate g;
    gate_init(&g);
    job jobs[6];
    for (int i = 0; i < 6; i++) {
        jobs[i] = (job){.id = i, .key = (uint64_t)(10 + i), .hold = &g};
        assert_int_equal(sluice_keyed_submit(ex, jobs[i].key, job_fn, &jobs[i]), SLUICE_OK);
    }
    int two = 2;
    wait_until(running_at_least, &two, "two keys to run");
    sluice_keyed_stats st = kstats(ex);
    assert_int_equal(st.active_keys, 2);
    assert_int_equal(st.runners, 2);
    assert_int_equal(st.queued, 4);
    assert_int_equal(st.keys, 6);
    assert_int_equal(st.longest_backlog, 1);
    /* The pool has two idle workers; they are not used for more keys. */
    assert_int_equal(atomic_load(&running_now), 2);
    gate_open(&g);
    assert_int_equal(sluice_keyed_drain(ex, 0, NULL), SLUICE_OK);
    assert_int_equal(atomic_load(&running_max), 2);
    sluice_keyed_destroy(ex);
    sluice_pool_destroy(pool);
}

static _Atomic int plain_ran;

static int plain_task(void *arg)
{
    (void)arg;
    atomic_fetch_add(&plain_ran, 1);
    ev_signal();
    return 0;
}

static bool plain_ran_once(void *arg)
{
    (void)arg;
    return atomic_load(&plain_ran) >= 1;
}

static void test_busy_key_holds_no_worker(void **state)
{
    (void)state;
    log_reset();
    sluice_pool *pool = make_pool(2, NULL);
    sluice_keyed_config kc;
    sluice_keyed_config_init(&kc);
    kc.pool = pool;
    sluice_keyed *ex = make_keyed(&kc); /* K = 2, the pool's workers */
    gate g;
    gate_init(&g);
    job a[5], b = {.id = 100, .key = 2};
    for (int i = 0; i < 5; i++) {
        a[i] = (job){.id = i, .key = 1, .hold = i == 0 ? &g : NULL};
        assert_int_equal(sluice_keyed_submit(ex, 1, job_fn, &a[i]), SLUICE_OK);
    }
    int one = 1;
    wait_until(running_at_least, &one, "key 1 to run");
    /* Key 1 is busy with 4 waiting; key 2 runs on the other worker... */
    assert_int_equal(sluice_keyed_submit(ex, 2, job_fn, &b), SLUICE_OK);
    wait_until(log_at_least, &one, "key 2 to run");
    assert_int_equal(run_log[0], 100);
    /* ...and that worker is then free for plain pool work: no runner waits
     * on key 1. */
    atomic_store(&plain_ran, 0);
    assert_int_equal(sluice_pool_submit(pool, plain_task, NULL), SLUICE_OK);
    wait_until(plain_ran_once, NULL, "a plain task to run");
    assert_int_equal(kstats(ex).runners, 1);
    gate_open(&g);
    assert_int_equal(sluice_keyed_drain(ex, 0, NULL), SLUICE_OK);
    assert_int_equal(log_count(), 6);
    for (int i = 1; i < 6; i++) {
        assert_int_equal(run_log[i], i - 1);
    }
    sluice_keyed_destroy(ex);
    sluice_pool_destroy(pool);
}

/* ---- bounds ----------------------------------------------------------------------- */

static void test_reject_and_drop_oldest(void **state)
{
    (void)state;
    log_reset();
    ab_reset();
    sluice_pool *pool = make_pool(2, NULL);
    sluice_keyed_config kc;
    sluice_keyed_config_init(&kc);
    kc.pool = pool;
    kc.max_active_keys = 1;
    kc.key_backlog = 2;
    kc.total_backlog = 3;
    kc.overflow = SLUICE_OVERFLOW_REJECT;
    kc.abandon_handler = on_abandon;
    sluice_keyed *ex = make_keyed(&kc);
    gate g;
    gate_init(&g);
    job j[10];
    for (int i = 0; i < 10; i++) {
        j[i] = (job){.id = i, .key = i < 4 ? 1 : 2, .hold = i == 0 ? &g : NULL};
    }
    submit_first(ex, &j[0], "the first to run");
    assert_int_equal(sluice_keyed_submit(ex, 1, job_fn, &j[1]), SLUICE_OK);
    assert_int_equal(sluice_keyed_submit(ex, 1, job_fn, &j[2]), SLUICE_OK);
    assert_int_equal(sluice_keyed_submit(ex, 1, job_fn, &j[3]), SLUICE_EFULL); /* key bound */
    assert_int_equal(sluice_keyed_submit(ex, 2, job_fn, &j[4]), SLUICE_OK);
    assert_int_equal(sluice_keyed_submit(ex, 2, job_fn, &j[5]), SLUICE_EFULL); /* total bound */
    sluice_keyed_stats st = kstats(ex);
    assert_int_equal(st.rejected, 2);
    assert_int_equal(st.queued, 3);
    assert_int_equal(st.longest_backlog, 2);
    gate_open(&g);
    assert_int_equal(sluice_keyed_drain(ex, 0, NULL), SLUICE_OK);
    sluice_keyed_destroy(ex);

    /* DROP_OLDEST: the key's oldest when the key is full, the oldest
     * overall when the total is. */
    log_reset();
    gate_init(&g);
    kc.overflow = SLUICE_OVERFLOW_DROP_OLDEST;
    ex = make_keyed(&kc);
    submit_first(ex, &j[0], "the first to run");
    assert_int_equal(sluice_keyed_submit(ex, 1, job_fn, &j[1]), SLUICE_OK);
    assert_int_equal(sluice_keyed_submit(ex, 1, job_fn, &j[2]), SLUICE_OK);
    assert_int_equal(sluice_keyed_submit(ex, 1, job_fn, &j[3]), SLUICE_OK); /* key full: drops 1 */
    assert_int_equal(sluice_keyed_submit(ex, 2, job_fn, &j[4]), SLUICE_OK); /* total now 3 */
    assert_int_equal(sluice_keyed_submit(ex, 2, job_fn, &j[5]), SLUICE_OK); /* total full: drops 2 */
    assert_int_equal(nab, 2);
    assert_int_equal(ab_ids[0], 1);
    assert_int_equal(ab_ids[1], 2);
    assert_int_equal(ab_keys[1], 1);
    assert_int_equal(ab_reasons[0], SLUICE_ABANDON_DROPPED);
    gate_open(&g);
    assert_int_equal(sluice_keyed_drain(ex, 0, NULL), SLUICE_OK);
    assert_int_equal(log_count(), 4); /* 0, 3, 4, 5 */
    st = kstats(ex);
    assert_int_equal(st.dropped, 2);
    assert_int_equal(st.submitted, st.completed + st.failed + st.panicked + st.dropped + st.abandoned);
    sluice_keyed_destroy(ex);
    sluice_pool_destroy(pool);
}

typedef struct submitter {
    sluice_keyed *ex;
    job *j;
} submitter;

static sluice_err submit_call(void *arg)
{
    submitter *s = arg;
    return sluice_keyed_submit(s->ex, s->j->key, job_fn, s->j);
}

static bool one_waiting(void *arg)
{
    return kstats(arg).waiting == 1;
}

static sluice_keyed *self_ex;
static sluice_err self_err;

static void test_block(void **state)
{
    (void)state;
    log_reset();
    sluice_fake_clock fc;
    sluice_fake_clock_init(&fc, 100 * SEC);
    sluice_pool *pool = make_pool(2, &fc);
    sluice_keyed_config kc;
    sluice_keyed_config_init(&kc);
    kc.pool = pool;
    kc.max_active_keys = 1;
    kc.key_backlog = 1;
    kc.total_backlog = 1;
    kc.submit_timeout_ns = SEC;
    sluice_keyed *ex = make_keyed(&kc);
    gate g;
    gate_init(&g);
    job j[4] = {
        {.id = 0, .key = 1, .hold = &g}, {.id = 1, .key = 1}, {.id = 2, .key = 1}, {.id = 3, .key = 1}};
    submit_first(ex, &j[0], "the first to run");
    assert_int_equal(sluice_keyed_submit(ex, 1, job_fn, &j[1]), SLUICE_OK);
    assert_int_equal(sluice_keyed_try_submit(ex, 1, job_fn, &j[2]), SLUICE_EFULL);
    /* A blocked submit times out on the (fake) clock. */
    submitter s = {.ex = ex, .j = &j[2]};
    bg_call submit;
    bg_call_start(&submit, submit_call, &s);
    wait_until(one_waiting, ex, "the submitter to block");
    sluice_fake_clock_advance(&fc, SEC);
    assert_int_equal(bg_call_finish(&submit, "the timeout"), SLUICE_ETIMEDOUT);
    /* A blocked submit goes in once the runner takes the waiting task. */
    bg_call_start(&submit, submit_call, &s);
    wait_until(one_waiting, ex, "the submitter to block");
    gate_open(&g);
    assert_int_equal(bg_call_finish(&submit, "space"), SLUICE_OK);
    assert_int_equal(sluice_keyed_drain(ex, 0, NULL), SLUICE_OK);
    assert_int_equal(log_count(), 3);
    assert_int_equal(kstats(ex).rejected, 2);
    sluice_keyed_destroy(ex);

    sluice_pool_destroy(pool);
}

static sluice_err self_err_first;
static _Atomic bool self_done;

static bool self_is_done(void *arg)
{
    (void)arg;
    return atomic_load(&self_done);
}

static int self_submit_full(void *arg)
{
    job *j = arg;
    /* Fill the key, then one more: that one would wait for ourselves. */
    self_err_first = sluice_keyed_submit(self_ex, j->key, job_fn, j);
    self_err = sluice_keyed_submit(self_ex, j->key, job_fn, j);
    atomic_store(&self_done, true);
    ev_signal();
    return 0;
}

static void test_block_edeadlk(void **state)
{
    (void)state;
    log_reset();
    sluice_pool *pool = make_pool(2, NULL);
    sluice_keyed_config kc;
    sluice_keyed_config_init(&kc);
    kc.pool = pool;
    kc.key_backlog = 1;
    kc.total_backlog = 8;
    sluice_keyed *ex = make_keyed(&kc);
    self_ex = ex;
    job j = {.id = 1, .key = 3};
    assert_int_equal(sluice_keyed_submit(ex, 3, self_submit_full, &j), SLUICE_OK);
    wait_until(self_is_done, NULL, "the task to submit");
    assert_int_equal(sluice_keyed_drain(ex, 0, NULL), SLUICE_OK);
    assert_int_equal(self_err_first, SLUICE_OK);
    assert_int_equal(self_err, SLUICE_EDEADLK);
    assert_int_equal(log_count(), 1);
    sluice_keyed_destroy(ex);
    sluice_pool_destroy(pool);
}

/* ---- drain and destroy hand back in order ------------------------------------------ */

typedef struct drainer {
    sluice_keyed *ex;
    uint64_t timeout;
    sluice_keyed_drain_report rep;
} drainer;

static sluice_err drain_call(void *arg)
{
    drainer *d = arg;
    return sluice_keyed_drain(d->ex, d->timeout, &d->rep);
}

static bool is_closed(void *arg)
{
    return kstats(arg).closed;
}

static void test_drain_hands_back_in_order(void **state)
{
    (void)state;
    log_reset();
    ab_reset();
    sluice_fake_clock fc;
    sluice_fake_clock_init(&fc, 100 * SEC);
    sluice_pool *pool = make_pool(2, &fc);
    sluice_keyed_config kc;
    sluice_keyed_config_init(&kc);
    kc.pool = pool;
    kc.max_active_keys = 1;
    kc.abandon_handler = on_abandon;
    sluice_keyed *ex = make_keyed(&kc);
    gate g;
    gate_init(&g);
    /* A0 runs (held); then A1, B1, A2, C1, B2 wait. */
    job a0 = {.id = 0, .key = 'A', .hold = &g};
    job w[5] = {{.id = 1, .key = 'A'},
                {.id = 2, .key = 'B'},
                {.id = 3, .key = 'A'},
                {.id = 4, .key = 'C'},
                {.id = 5, .key = 'B'}};
    submit_first(ex, &a0, "A0 to run");
    for (int i = 0; i < 5; i++) {
        assert_int_equal(sluice_keyed_submit(ex, w[i].key, job_fn, &w[i]), SLUICE_OK);
    }
    drainer d = {.ex = ex, .timeout = SEC};
    bg_call drain;
    bg_call_start(&drain, drain_call, &d);
    wait_until(is_closed, ex, "the drain to begin");
    sluice_fake_clock_advance(&fc, SEC);
    assert_int_equal(bg_call_finish(&drain, "the drain deadline"), SLUICE_ETIMEDOUT);
    assert_true(d.rep.timed_out);
    assert_int_equal(sluice_keyed_submit(ex, 'Z', job_fn, &w[0]), SLUICE_ECLOSED);
    assert_int_equal(d.rep.handed_back, 5);
    assert_int_equal(d.rep.keys_handed_back, 3);
    /* Key by key (by each key's oldest waiting task), in order within. */
    int want_ids[5] = {1, 3, 2, 5, 4};
    uint64_t want_keys[5] = {'A', 'A', 'B', 'B', 'C'};
    assert_int_equal(nab, 5);
    for (int i = 0; i < 5; i++) {
        assert_int_equal(ab_ids[i], want_ids[i]);
        assert_int_equal(ab_keys[i], want_keys[i]);
        assert_int_equal(ab_reasons[i], SLUICE_ABANDON_DRAIN);
    }
    gate_open(&g);
    sluice_keyed_destroy(ex); /* waits for A0 */
    assert_int_equal(log_count(), 1);
    sluice_pool_destroy(pool);
}

static void test_destroy_undrained(void **state)
{
    (void)state;
    log_reset();
    ab_reset();
    sluice_pool *pool = make_pool(1, NULL);
    sluice_keyed_config kc;
    sluice_keyed_config_init(&kc);
    kc.pool = pool;
    kc.abandon_handler = on_abandon;
    sluice_keyed *ex = make_keyed(&kc);
    gate g;
    gate_init(&g);
    job a0 = {.id = 0, .key = 7, .hold = &g};
    job rest[3] = {{.id = 1, .key = 8}, {.id = 2, .key = 7}, {.id = 3, .key = 8}};
    submit_first(ex, &a0, "the first to run");
    for (int i = 0; i < 3; i++) {
        assert_int_equal(sluice_keyed_submit(ex, rest[i].key, job_fn, &rest[i]), SLUICE_OK);
    }
    gate_open(&g); /* destroy hands back what waits and waits for what runs */
    sluice_keyed_destroy(ex);
    /* Whatever ran plus whatever came back is everything, once each, and
     * what came back came back in per-key order. */
    int total = log_count() + nab;
    assert_int_equal(total, 4);
    for (int i = 0; i < nab; i++) {
        assert_int_equal(ab_reasons[i], SLUICE_ABANDON_DESTROY);
        for (int k = i + 1; k < nab; k++) {
            if (ab_keys[k] == ab_keys[i]) {
                assert_true(ab_ids[k] > ab_ids[i]);
            }
        }
    }
    sluice_pool_destroy(pool);
}

/* ---- panics and refused runners --------------------------------------------------- */

static void quiet_panic(const sluice_panic_info *info, void *user)
{
    (void)info;
    (void)user;
}

static void test_panic_mid_batch(void **state)
{
    (void)state;
    log_reset();
    sluice_pool_config pc;
    sluice_pool_config_init(&pc);
    pc.name = "keyed_panic";
    pc.workers = 1;
    pc.queue_capacity = 16;
    pc.panic_handler = quiet_panic;
    sluice_pool *pool;
    assert_int_equal(sluice_pool_create(&pc, &pool, NULL, 0), SLUICE_OK);
    sluice_keyed_config kc;
    sluice_keyed_config_init(&kc);
    kc.pool = pool;
    sluice_keyed *ex = make_keyed(&kc);
    gate g;
    gate_init(&g);
    job j[8];
    for (int i = 0; i < 8; i++) {
        j[i] = (job){.id = i, .key = 4, .hold = i == 0 ? &g : NULL, .panic = i == 3};
        assert_int_equal(sluice_keyed_submit(ex, 4, job_fn, &j[i]), SLUICE_OK);
    }
    gate_open(&g);
    assert_int_equal(sluice_keyed_drain(ex, 0, NULL), SLUICE_OK);
    assert_int_equal(log_count(), 8);
    for (int i = 0; i < 8; i++) {
        assert_int_equal(run_log[i], i);
    }
    sluice_keyed_stats st = kstats(ex);
    assert_int_equal(st.panicked, 1);
    assert_int_equal(st.completed, 7);
    assert_int_equal(st.runners, 0);
    assert_int_equal(st.active_keys, 0);
    sluice_keyed_destroy(ex);
    sluice_pool_destroy(pool);
}

static void test_pool_refuses_runner(void **state)
{
    (void)state;
    log_reset();
    sluice_pool *pool = make_pool(1, NULL);
    sluice_keyed_config kc;
    sluice_keyed_config_init(&kc);
    kc.pool = pool;
    sluice_keyed *ex = make_keyed(&kc);
    assert_int_equal(sluice_pool_drain(pool, 0, NULL), SLUICE_OK);
    job j = {.id = 1, .key = 1};
    assert_int_equal(sluice_keyed_submit(ex, 1, job_fn, &j), SLUICE_ECLOSED);
    sluice_keyed_stats st = kstats(ex);
    assert_int_equal(st.submitted, 0);
    assert_int_equal(st.rejected, 1);
    assert_int_equal(st.queued, 0);
    assert_int_equal(sluice_keyed_drain(ex, 0, NULL), SLUICE_OK);
    sluice_keyed_destroy(ex);
    sluice_pool_destroy(pool);
}

/* ---- runners the pool hands back ---------------------------------------------------- */

/* A DROP_OLDEST pool of one worker and one place, the worker held at a
 * gate: the executor's runner is queued, and a plain submit evicts it.
 * Its key's tasks then run once the worker is free, with no further
 * keyed submit or drain (they waited for one before: the evicted runner
 * was not replaced, and the pool's on_abandon may not call the pool). */
static _Atomic int foreign_dropped;

static void count_foreign_drop(const sluice_abandoned *task, void *user)
{
    (void)user;
    assert_ptr_equal(task->fn, plain_task);
    atomic_fetch_add(&foreign_dropped, 1);
    ev_signal();
}

static sluice_pool *make_drop_pool(unsigned k, size_t capacity)
{
    sluice_pool_config pc;
    sluice_pool_config_init(&pc);
    pc.name = "keyed_drop";
    pc.workers = k;
    pc.queue_capacity = capacity;
    pc.overflow = SLUICE_OVERFLOW_DROP_OLDEST;
    pc.abandon_handler = count_foreign_drop;
    sluice_pool *p = NULL;
    assert_int_equal(sluice_pool_create(&pc, &p, NULL, 0), SLUICE_OK);
    return p;
}

static bool pool_dropped_at_least(void *arg)
{
    void **a = arg;
    sluice_pool_stats ps;
    sluice_pool_stats_get(a[0], &ps);
    return ps.dropped >= (uint64_t)(uintptr_t)a[1];
}

static bool runners_gone(void *arg)
{
    sluice_keyed_stats st = kstats(arg);
    return st.runners == 0 && st.queued == 0 && st.active_keys == 0;
}

static void test_evicted_runner_is_replaced(void **state)
{
    (void)state;
    log_reset();
    ab_reset();
    atomic_store(&plain_ran, 0);
    atomic_store(&foreign_dropped, 0);
    sluice_pool *pool = make_drop_pool(1, 1);
    gate g;
    gate_init(&g);
    assert_int_equal(sluice_pool_submit(pool, task_at_gate, &g), SLUICE_OK);
    GATE_WAIT_ENTERED(&g, 1);

    sluice_keyed_config kc;
    sluice_keyed_config_init(&kc);
    kc.pool = pool;
    kc.abandon_handler = on_abandon;
    sluice_keyed *ex = make_keyed(&kc);
    job jobs[3];
    for (int i = 0; i < 3; i++) {
        jobs[i] = (job){.id = i + 1, .key = 7};
        assert_int_equal(sluice_keyed_submit(ex, 7, job_fn, &jobs[i]), SLUICE_OK);
    }
    assert_int_equal(kstats(ex).runners, 1); /* queued: the queue's one place */
    assert_int_equal(sluice_pool_submit(pool, plain_task, NULL), SLUICE_OK); /* evicts the runner */
    void *one_drop[2] = {pool, (void *)(uintptr_t)1};
    wait_until(pool_dropped_at_least, one_drop, "the runner evicted");
    gate_open(&g);

    int three = 3;
    wait_until(log_at_least, &three, "the key's tasks to run with no further submit or drain");
    pthread_mutex_lock(&log_mu);
    for (int i = 0; i < 3; i++) {
        assert_int_equal(run_log[i], i + 1);
    }
    pthread_mutex_unlock(&log_mu);
    wait_until(runners_gone, ex, "the runner to count its batch and leave"); /* counted after the batch */
    sluice_keyed_stats st = kstats(ex);
    assert_int_equal(st.submitted, 3);
    assert_int_equal(st.completed, 3);
    assert_int_equal(st.dropped + st.abandoned, 0);
    assert_int_equal(nab, 0);
    assert_true(st.runner_starts >= 2); /* the first and its replacement */
    /* The plain task ran, or a replacement that found the queue full for
     * long evicted it in turn (DROP_OLDEST): one or the other, once. */
    assert_int_equal(sluice_keyed_drain(ex, 0, NULL), SLUICE_OK);
    assert_int_equal(sluice_pool_drain(pool, 0, NULL), SLUICE_OK);
    assert_int_equal(atomic_load(&plain_ran) + atomic_load(&foreign_dropped), 1);
    sluice_keyed_destroy(ex);
    sluice_pool_destroy(pool);
    gate_destroy(&g);
}

/* Two executors on one DROP_OLDEST pool of one place, plus a plain
 * submitter, evicting each other's runners while the pools' workers are
 * held, and then a flood of plain tasks racing every keyed submit: every
 * accepted keyed task runs, in its key's order, with no drain (the
 * replacements wait out a full queue rather than evict each other in a
 * loop, and never leave a key without a runner). */
typedef struct flood {
    sluice_pool *pool;
    _Atomic bool stop;
    _Atomic uint64_t sent;
} flood;

static void *flood_main(void *arg)
{
    flood *f = arg;
    while (!atomic_load(&f->stop)) {
        if (sluice_pool_submit(f->pool, plain_task, NULL) == SLUICE_OK) {
            atomic_fetch_add(&f->sent, 1);
        }
    }
    return NULL;
}

typedef struct seq_job {
    _Atomic int *last; /* the key's last sequence number run */
    _Atomic int *bad;
    _Atomic int *ran;
    int seq;
} seq_job;

static int seq_fn(void *arg)
{
    seq_job *j = arg;
    if (atomic_exchange(j->last, j->seq) != j->seq - 1) {
        atomic_fetch_add(j->bad, 1);
    }
    atomic_fetch_add(j->ran, 1);
    ev_signal();
    return 0;
}

static bool ran_at_least(void *arg)
{
    void **a = arg;
    return atomic_load((_Atomic int *)a[0]) >= (int)(uintptr_t)a[1];
}

#define EV_KEYS 4

static void test_evicted_runners_under_a_flood(void **state)
{
    (void)state;
    atomic_store(&plain_ran, 0);
    atomic_store(&foreign_dropped, 0);
    unsigned per_key = 100 * stress_scale();
    sluice_pool *pool = make_drop_pool(2, 1);
    gate g;
    gate_init(&g);
    for (int i = 0; i < 2; i++) { /* one at a time: a second would evict the first while queued */
        assert_int_equal(sluice_pool_submit(pool, task_at_gate, &g), SLUICE_OK);
        GATE_WAIT_ENTERED(&g, i + 1);
    }

    sluice_keyed *ex[2];
    for (int e = 0; e < 2; e++) {
        sluice_keyed_config kc;
        sluice_keyed_config_init(&kc);
        kc.pool = pool;
        kc.max_active_keys = 2;
        ex[e] = make_keyed(&kc);
    }
    static _Atomic int last[2][EV_KEYS], bad, ran;
    atomic_store(&bad, 0);
    atomic_store(&ran, 0);
    for (int e = 0; e < 2; e++) {
        for (int k = 0; k < EV_KEYS; k++) {
            atomic_store(&last[e][k], 0);
        }
    }
    seq_job *jobs = calloc((size_t)2 * EV_KEYS * per_key, sizeof *jobs);
    assert_non_null(jobs);
    size_t nj = 0;
    /* Phase 1, workers held: each executor's first runner evicts the
     * other's, and a plain submit evicts the last one. */
    for (int e = 0; e < 2; e++) {
        seq_job *j = &jobs[nj++];
        *j = (seq_job){.last = &last[e][0], .bad = &bad, .ran = &ran, .seq = 1};
        assert_int_equal(sluice_keyed_submit(ex[e], 0, seq_fn, j), SLUICE_OK);
    }
    assert_int_equal(sluice_pool_submit(pool, plain_task, NULL), SLUICE_OK);
    void *two_drops[2] = {pool, (void *)(uintptr_t)2};
    wait_until(pool_dropped_at_least, two_drops, "both runners evicted");
    gate_open(&g);

    /* Phase 2: a flood of plain tasks while the rest is submitted. */
    flood f = {.pool = pool};
    pthread_t th;
    assert_int_equal(pthread_create(&th, NULL, flood_main, &f), 0);
    for (unsigned i = 0; i < per_key; i++) {
        for (int e = 0; e < 2; e++) {
            for (int k = 0; k < EV_KEYS; k++) {
                if (i == 0 && k == 0) {
                    continue; /* phase 1's */
                }
                seq_job *j = &jobs[nj++];
                *j = (seq_job){.last = &last[e][k], .bad = &bad, .ran = &ran, .seq = (int)i + 1};
                assert_int_equal(sluice_keyed_submit(ex[e], (uint64_t)k, seq_fn, j), SLUICE_OK);
            }
        }
    }
    atomic_store(&f.stop, true);
    pthread_join(th, NULL);
    void *all[2] = {&ran, (void *)(uintptr_t)nj};
    wait_until(ran_at_least, all, "every keyed task to run, with no drain");
    assert_int_equal(atomic_load(&bad), 0);
    for (int e = 0; e < 2; e++) {
        wait_until(runners_gone, ex[e], "the runners to count their batches and leave");
        sluice_keyed_stats st = kstats(ex[e]);
        assert_int_equal(st.submitted, nj / 2);
        assert_int_equal(st.completed, nj / 2);
        assert_int_equal(st.dropped + st.abandoned + st.failed + st.panicked, 0);
        for (int k = 0; k < EV_KEYS; k++) {
            assert_int_equal(atomic_load(&last[e][k]), (int)per_key);
        }
    }
    for (int e = 0; e < 2; e++) {
        assert_int_equal(sluice_keyed_drain(ex[e], 0, NULL), SLUICE_OK);
    }
    assert_int_equal(sluice_pool_drain(pool, 0, NULL), SLUICE_OK);
    sluice_pool_stats ps;
    sluice_pool_stats_get(pool, &ps);
    /* Every plain task ran or was dropped, once. */
    assert_int_equal((uint64_t)atomic_load(&plain_ran) + (uint64_t)atomic_load(&foreign_dropped),
                     atomic_load(&f.sent) + 1);
    for (int e = 0; e < 2; e++) {
        sluice_keyed_destroy(ex[e]);
    }
    sluice_pool_destroy(pool);
    gate_destroy(&g);
    free(jobs);
}

/* ---- metrics ---------------------------------------------------------------------- */

/* The pool's drain hands back the last runner while a submit comes in:
 * the submit once saw that runner's slot, took none, and returned OK, and
 * the runner gave its slot up after its hand-back, so the new task waited
 * with no runner until the executor's own drain. The abandon handler
 * holds the hand-back (now on the executor's timer thread) until the
 * submit has returned. The runner's slot is given up before: the submit
 * starts a runner of its own, which the closed pool refuses, and the
 * caller keeps its task (the pool's error). Stranded either way: never. */
static sluice_keyed *race_ex;
static pthread_mutex_t race_mu = PTHREAD_MUTEX_INITIALIZER;
static pthread_cond_t race_cv = PTHREAD_COND_INITIALIZER;
static int race_go, race_done;
static _Atomic int race_handed;
static sluice_err race_submit_r;
static job race_job2 = {.id = 2, .key = 2};

static void race_abandon(const sluice_keyed_abandoned *t, void *user)
{
    (void)t;
    (void)user;
    if (atomic_fetch_add(&race_handed, 1) == 0) {
        pthread_mutex_lock(&race_mu);
        race_go = 1;
        pthread_cond_broadcast(&race_cv);
        while (!race_done) {
            pthread_cond_wait(&race_cv, &race_mu);
        }
        pthread_mutex_unlock(&race_mu);
    }
}

static void *race_submitter(void *arg)
{
    (void)arg;
    pthread_mutex_lock(&race_mu);
    while (!race_go) {
        pthread_cond_wait(&race_cv, &race_mu);
    }
    pthread_mutex_unlock(&race_mu);
    race_submit_r = sluice_keyed_submit(race_ex, 2, job_fn, &race_job2);
    pthread_mutex_lock(&race_mu);
    race_done = 1;
    pthread_cond_broadcast(&race_cv);
    pthread_mutex_unlock(&race_mu);
    return NULL;
}

static void test_submit_during_last_hand_back(void **state)
{
    (void)state;
    log_reset();
    race_go = race_done = 0;
    atomic_store(&race_handed, 0);
    sluice_pool_config pc;
    sluice_pool_config_init(&pc);
    pc.name = "keyed_race";
    pc.workers = 1;
    pc.queue_capacity = 4;
    sluice_pool *pool = NULL;
    assert_int_equal(sluice_pool_create(&pc, &pool, NULL, 0), SLUICE_OK);
    gate g;
    gate_init(&g);
    assert_int_equal(sluice_pool_submit(pool, task_at_gate, &g), SLUICE_OK);
    GATE_WAIT_ENTERED(&g, 1);
    sluice_keyed_config kc;
    sluice_keyed_config_init(&kc);
    kc.pool = pool;
    kc.abandon_handler = race_abandon;
    race_ex = make_keyed(&kc);
    job j1 = {.id = 1, .key = 1};
    assert_int_equal(sluice_keyed_submit(race_ex, 1, job_fn, &j1), SLUICE_OK); /* its runner queues */
    pthread_t t;
    assert_int_equal(pthread_create(&t, NULL, race_submitter, NULL), 0);
    /* The worker is held: the drain's deadline hands the runner back. */
    assert_int_equal(sluice_pool_drain(pool, 1, NULL), SLUICE_ETIMEDOUT);
    assert_int_equal(pthread_join(t, NULL), 0);
    assert_int_equal(race_submit_r, SLUICE_ECLOSED);
    assert_int_equal(atomic_load(&race_handed), 1); /* key 1's task; key 2's stayed the caller's */
    sluice_keyed_stats st = kstats(race_ex);
    assert_int_equal(st.queued, 0);
    assert_int_equal(st.runners, 0);
    assert_int_equal(st.abandoned, 1);
    assert_int_equal(st.rejected, 1);
    assert_int_equal(st.submitted, 1);
    gate_open(&g);
    sluice_keyed_destroy(race_ex);
    sluice_pool_destroy(pool);
    gate_destroy(&g);
    assert_int_equal(log_count(), 0);
}

/* A FAIR pool whose tenant holds one queued task, dropping the oldest,
 * while the pool's queue has room: each replacement runner evicts the one
 * before it (same tenant), so each must wait longer than the last (1, 2,
 * 4, 8, then 10 ms), not come back at once. It came back at once: 750,000
 * evictions in 0.5 s with the timer thread spinning. The observation
 * window is a time, on purpose: the test looks for the absence of a busy
 * loop, and a slow box only makes the count smaller. */
static void test_fair_tenant_eviction_backs_off(void **state)
{
    (void)state;
    log_reset();
    ab_reset();
    sluice_pool_config pc;
    sluice_pool_config_init(&pc);
    pc.name = "keyed_fair";
    pc.workers = 1;
    pc.queue_capacity = 64;
    pc.queue_discipline = SLUICE_QUEUE_FAIR;
    sluice_pool *pool = NULL;
    char err[256];
    assert_int_equal(sluice_pool_create(&pc, &pool, err, sizeof err), SLUICE_OK);
    sluice_tenant_config tc = {.queued_limit = 1, .overflow = SLUICE_TENANT_OVERFLOW_DROP_OLDEST};
    assert_int_equal(sluice_pool_tenant_default_set(pool, &tc, err, sizeof err), SLUICE_OK);
    gate g;
    gate_init(&g);
    assert_int_equal(sluice_pool_submit(pool, task_at_gate, &g), SLUICE_OK);
    GATE_WAIT_ENTERED(&g, 1);

    sluice_keyed_config kc;
    sluice_keyed_config_init(&kc);
    kc.pool = pool;
    kc.max_active_keys = 2;
    kc.abandon_handler = on_abandon;
    sluice_keyed *ex = make_keyed(&kc);
    job jobs[2] = {{.id = 1, .key = 1}, {.id = 2, .key = 2}};
    assert_int_equal(sluice_keyed_submit(ex, 1, job_fn, &jobs[0]), SLUICE_OK);
    assert_int_equal(sluice_keyed_submit(ex, 2, job_fn, &jobs[1]), SLUICE_OK); /* its runner evicts key 1's */
    struct timespec window = {.tv_sec = 0, .tv_nsec = 300 * 1000 * 1000};
    nanosleep(&window, NULL);
    sluice_pool_stats ps;
    sluice_pool_stats_get(pool, &ps);
    /* At most ~35 replacements fit 300 ms at that backoff; 1000 is far
     * above that and far below a loop's count. */
    assert_true(ps.dropped < 1000);
    gate_open(&g);
    int two = 2;
    wait_until(log_at_least, &two, "both keys' tasks to run once the worker is free");
    wait_until(runners_gone, ex, "the runners to leave");
    sluice_keyed_stats st = kstats(ex);
    assert_int_equal(st.completed, 2);
    assert_int_equal(nab, 0);
    assert_int_equal(sluice_keyed_drain(ex, 0, NULL), SLUICE_OK);
    sluice_keyed_destroy(ex);
    assert_int_equal(sluice_pool_drain(pool, 0, NULL), SLUICE_OK);
    sluice_pool_destroy(pool);
    gate_destroy(&g);
}

/* ---- the abandon handler, and a timer that cannot start ------------------------------ */

/* The pool's drain deadline hands back the executor's last runner: the
 * waiting tasks go to the abandon handler from the executor's timer
 * thread, never inside the pool's on_abandon (which must not block or
 * call the pool). A handler that blocks until the test lets it go (as one
 * that persists a task may) does not hold the pool's drain. It ran inside
 * that on_abandon, on the draining thread, and held the drain for as long
 * as it blocked. */
static gate handler_gate;
static pthread_t handler_thread;
static _Atomic int blocking_handed;

static void blocking_abandon(const sluice_keyed_abandoned *t, void *user)
{
    (void)user;
    if (atomic_load(&blocking_handed) == 0) {
        handler_thread = pthread_self(); /* read after gate_pass's entered count (seq_cst) */
    }
    pthread_mutex_lock(&ab_mu);
    ab_ids[nab] = ((job *)t->arg)->id;
    ab_reasons[nab] = t->reason;
    nab++;
    pthread_mutex_unlock(&ab_mu);
    atomic_fetch_add(&blocking_handed, 1);
    ev_signal();
    gate_pass(&handler_gate, false);
}

static sluice_err pool_drain_1ns(void *arg)
{
    return sluice_pool_drain(arg, 1, NULL);
}

static bool handed_at_least(void *arg)
{
    return atomic_load(&blocking_handed) >= *(int *)arg;
}

static void test_abandon_handler_never_inside_on_abandon(void **state)
{
    (void)state;
    log_reset();
    ab_reset();
    atomic_store(&blocking_handed, 0);
    gate_init(&handler_gate);
    sluice_pool *pool = make_pool(1, NULL);
    gate g;
    gate_init(&g);
    assert_int_equal(sluice_pool_submit(pool, task_at_gate, &g), SLUICE_OK);
    GATE_WAIT_ENTERED(&g, 1);
    sluice_keyed_config kc;
    sluice_keyed_config_init(&kc);
    kc.pool = pool;
    kc.abandon_handler = blocking_abandon;
    sluice_keyed *ex = make_keyed(&kc);
    job jobs[2] = {{.id = 1, .key = 1}, {.id = 2, .key = 1}};
    for (int i = 0; i < 2; i++) {
        assert_int_equal(sluice_keyed_submit(ex, 1, job_fn, &jobs[i]), SLUICE_OK); /* one runner, queued */
    }
    bg_call drain;
    bg_call_start(&drain, pool_drain_1ns, pool); /* the worker is held: the deadline hands the runner back */
    GATE_WAIT_ENTERED(&handler_gate, 1);
    bool inside = pthread_equal(handler_thread, drain.thread) != 0;
    if (inside) {
        gate_open(&handler_gate); /* let the drain go before failing */
    }
    assert_false(inside);
    /* The pool's drain returns while the handler still blocks. */
    assert_int_equal(bg_call_finish(&drain, "the pool's drain, with the abandon handler blocked"),
                     SLUICE_ETIMEDOUT);
    gate_open(&handler_gate);
    int two = 2;
    wait_until(handed_at_least, &two, "both tasks handed back");
    for (int i = 0; i < 2; i++) {
        assert_int_equal(ab_ids[i], i + 1);
        assert_int_equal(ab_reasons[i], SLUICE_ABANDON_DRAIN);
    }
    sluice_keyed_stats st = kstats(ex);
    assert_int_equal(st.abandoned, 2);
    assert_int_equal(st.queued, 0);
    assert_int_equal(st.runners, 0);
    /* The pool is closed for good: a submit is refused, the caller keeps its task. */
    job j3 = {.id = 3, .key = 1};
    assert_int_equal(sluice_keyed_submit(ex, 1, job_fn, &j3), SLUICE_ECLOSED);
    gate_open(&g);
    assert_int_equal(sluice_keyed_drain(ex, 0, NULL), SLUICE_OK);
    sluice_keyed_destroy(ex);
    sluice_pool_destroy(pool);
    gate_destroy(&g);
    gate_destroy(&handler_gate);
    assert_int_equal(log_count(), 0);
    assert_int_equal(atomic_load(&blocking_handed), 2);
}

/* A hand-back on the executor's timer thread (the pool's drain deadline
 * handed back the last runner) still in the abandon handler: the
 * executor's drain waits for it, so a caller that drains the pool, drains
 * the executor and then frees what the handler uses frees nothing under a
 * handler call. The drain returned at once (queued and active were 0, the
 * tasks already detached) with the handler still blocked. */
static _Atomic int handler_returned;

static void blocking_abandon_then_mark(const sluice_keyed_abandoned *t, void *user)
{
    blocking_abandon(t, user);
    atomic_fetch_add(&handler_returned, 1);
}

typedef struct keyed_drain_call {
    sluice_keyed *ex;
    int returned_at_drain_return; /* handler calls finished when drain returned */
} keyed_drain_call;

static sluice_err keyed_drain_then_look(void *arg)
{
    keyed_drain_call *c = arg;
    sluice_err err = sluice_keyed_drain(c->ex, 0, NULL);
    c->returned_at_drain_return = atomic_load(&handler_returned);
    return err;
}

static bool keyed_closed(void *arg)
{
    return kstats(arg).closed;
}

static void test_drain_waits_for_hand_back_on_timer(void **state)
{
    (void)state;
    log_reset();
    ab_reset();
    atomic_store(&blocking_handed, 0);
    atomic_store(&handler_returned, 0);
    gate_init(&handler_gate);
    sluice_pool *pool = make_pool(1, NULL);
    gate g;
    gate_init(&g);
    assert_int_equal(sluice_pool_submit(pool, task_at_gate, &g), SLUICE_OK);
    GATE_WAIT_ENTERED(&g, 1);
    sluice_keyed_config kc;
    sluice_keyed_config_init(&kc);
    kc.pool = pool;
    kc.abandon_handler = blocking_abandon_then_mark;
    sluice_keyed *ex = make_keyed(&kc);
    job jobs[2] = {{.id = 1, .key = 1}, {.id = 2, .key = 1}};
    for (int i = 0; i < 2; i++) {
        assert_int_equal(sluice_keyed_submit(ex, 1, job_fn, &jobs[i]), SLUICE_OK);
    }
    assert_int_equal(sluice_pool_drain(pool, 1, NULL), SLUICE_ETIMEDOUT); /* hands the runner back */
    GATE_WAIT_ENTERED(&handler_gate, 1); /* the timer thread is in the handler, blocked */
    keyed_drain_call c = {.ex = ex, .returned_at_drain_return = -1};
    bg_call drain;
    bg_call_start(&drain, keyed_drain_then_look, &c);
    wait_until(keyed_closed, ex, "the executor's drain to begin");
    gate_open(&handler_gate);
    assert_int_equal(bg_call_finish(&drain, "the executor's drain"), SLUICE_OK);
    assert_int_equal(c.returned_at_drain_return, 2); /* both handler calls had returned */
    sluice_keyed_stats st = kstats(ex);
    assert_int_equal(st.abandoned, 2);
    assert_int_equal(st.submitted, st.completed + st.failed + st.panicked + st.dropped + st.abandoned);
    gate_open(&g);
    sluice_keyed_destroy(ex);
    sluice_pool_destroy(pool);
    gate_destroy(&g);
    gate_destroy(&handler_gate);
}

/* The abandon handler calls back into its own executor: drain returns
 * SLUICE_EDEADLK (it would wait for the very call it is in); it waited
 * for ever for a runner the held pool never ran. Destroy from the handler
 * would free the executor under the call: the process stops with a
 * message (a forked child), rather than corrupting memory. */
static sluice_keyed *reentry_ex;
static sluice_err reentry_err;
static bool reentry_destroy;

static void reentrant_abandon(const sluice_keyed_abandoned *t, void *user)
{
    (void)t;
    (void)user;
    if (reentry_destroy) {
        sluice_keyed_destroy(reentry_ex);
        _exit(5); /* not reached when the misuse is caught */
    }
    reentry_err = sluice_keyed_drain(reentry_ex, 0, NULL);
}

/* One worker held at g; a DROP_OLDEST executor whose second submit of key
 * 1 evicts the first (on the submitter's thread, in the handler). */
static bool evict_into_reentrant_handler(sluice_pool *pool, job jobs[2])
{
    sluice_keyed_config kc;
    sluice_keyed_config_init(&kc);
    kc.pool = pool;
    kc.key_backlog = 1;
    kc.overflow = SLUICE_OVERFLOW_DROP_OLDEST;
    kc.abandon_handler = reentrant_abandon;
    reentry_ex = NULL;
    return sluice_keyed_create(&kc, &reentry_ex, NULL, 0) == SLUICE_OK &&
           sluice_keyed_submit(reentry_ex, 1, job_fn, &jobs[0]) == SLUICE_OK &&
           sluice_keyed_submit(reentry_ex, 1, job_fn, &jobs[1]) == SLUICE_OK; /* evicts jobs[0] */
}

/* In a forked child: no cmocka assertion (a failure would go on running
 * the suite in the child); every early way out is an exit status. */
static void destroy_from_handler_child(void)
{
    sluice_pool_config pc;
    sluice_pool_config_init(&pc);
    pc.name = "keyed_child";
    pc.workers = 1;
    pc.queue_capacity = 256;
    sluice_pool *pool = NULL;
    gate g;
    gate_init(&g);
    if (sluice_pool_create(&pc, &pool, NULL, 0) != SLUICE_OK ||
        sluice_pool_submit(pool, task_at_gate, &g) != SLUICE_OK) {
        _exit(3);
    }
    job jobs[2] = {{.id = 1, .key = 1}, {.id = 2, .key = 1}};
    reentry_destroy = true;
    if (!evict_into_reentrant_handler(pool, jobs)) {
        _exit(7);
    }
    _exit(6); /* not reached: the handler's destroy stops the process */
}

static void test_handler_reentry(void **state)
{
    (void)state;
    log_reset();
    ab_reset();
    sluice_pool *pool = make_pool(1, NULL);
    gate g;
    gate_init(&g);
    assert_int_equal(sluice_pool_submit(pool, task_at_gate, &g), SLUICE_OK);
    GATE_WAIT_ENTERED(&g, 1);
    job jobs[2] = {{.id = 1, .key = 1}, {.id = 2, .key = 1}};
    reentry_destroy = false;
    reentry_err = SLUICE_OK;
    assert_true(evict_into_reentrant_handler(pool, jobs));
    assert_int_equal(reentry_err, SLUICE_EDEADLK);
    sluice_keyed_stats st = kstats(reentry_ex);
    assert_false(st.closed); /* the refused drain changed nothing */
    assert_int_equal(st.dropped, 1);
    gate_open(&g);
    assert_int_equal(sluice_keyed_drain(reentry_ex, 0, NULL), SLUICE_OK);
    assert_int_equal(log_count(), 1); /* jobs[1] ran */
    sluice_keyed_destroy(reentry_ex);
    sluice_pool_destroy(pool);
    gate_destroy(&g);

    fflush(NULL);
    pid_t pid = fork();
    assert_true(pid >= 0);
    if (pid == 0) {
        struct rlimit no_core = {0, 0};
        setrlimit(RLIMIT_CORE, &no_core);
        int devnull = open("/dev/null", O_WRONLY);
        if (devnull >= 0) {
            dup2(devnull, STDERR_FILENO); /* the message is the misuse's, not a failure's */
        }
        destroy_from_handler_child();
    }
    int status = 0;
    assert_int_equal(waitpid(pid, &status, 0), pid);
    if (!WIFSIGNALED(status)) {
        fail_msg("destroy from its own abandon handler: the child exited with status %d, not SIGABRT",
                 WIFEXITED(status) ? WEXITSTATUS(status) : -1);
    }
    assert_int_equal(WTERMSIG(status), SIGABRT);
}

/* Fault injection (src/sync/timer.h): the executor's timer adds, or its
 * item slabs, fail for the executor under test. */
static const void *fault_obj;
static const char *fault_point;
static _Atomic int fault_hits;

static sluice_err fail_for_obj(const char *point, const void *obj)
{
    if (obj == fault_obj && strcmp(point, fault_point) == 0) {
        atomic_fetch_add(&fault_hits, 1);
        return strcmp(point, "timer_add") == 0 ? SLUICE_ESYS : SLUICE_ENOMEM;
    }
    return SLUICE_OK;
}

static void fault_set(const char *point, const void *obj)
{
    fault_point = point;
    fault_obj = obj;
    atomic_store(&fault_hits, 0);
    atomic_store(&sluice__sync_fault, fail_for_obj);
}

static void fault_clear(void)
{
    atomic_store(&sluice__sync_fault, (sluice__sync_fault_fn)NULL);
}

/* A runner evicted (DROP_OLDEST) while the executor's timer cannot start
 * its thread: no replacement can be scheduled, and nothing may be handed
 * back or submitted inside the pool's on_abandon. The tasks stay, counted
 * as waiting, and the next submit starts a runner that runs them all, in
 * order. They went to the abandon handler inside the plain submit that
 * evicted the runner (reason DROPPED, counted abandoned). */
static void test_timer_failure_strands_nothing(void **state)
{
    (void)state;
    log_reset();
    ab_reset();
    atomic_store(&plain_ran, 0);
    atomic_store(&foreign_dropped, 0);
    sluice_pool *pool = make_drop_pool(1, 1);
    gate g;
    gate_init(&g);
    assert_int_equal(sluice_pool_submit(pool, task_at_gate, &g), SLUICE_OK);
    GATE_WAIT_ENTERED(&g, 1);
    sluice_keyed_config kc;
    sluice_keyed_config_init(&kc);
    kc.pool = pool;
    kc.abandon_handler = on_abandon;
    sluice_keyed *ex = make_keyed(&kc);
    fault_set("timer_add", ex);
    job jobs[4];
    for (int i = 0; i < 4; i++) {
        jobs[i] = (job){.id = i + 1, .key = 7};
    }
    for (int i = 0; i < 3; i++) {
        assert_int_equal(sluice_keyed_submit(ex, 7, job_fn, &jobs[i]), SLUICE_OK);
    }
    assert_int_equal(sluice_pool_submit(pool, plain_task, NULL), SLUICE_OK); /* evicts the runner */
    assert_true(atomic_load(&fault_hits) >= 1);                              /* no restart could be set */
    sluice_keyed_stats st = kstats(ex);
    assert_int_equal(nab, 0);
    assert_int_equal(st.queued, 3);
    assert_int_equal(st.runners, 0);
    assert_int_equal(st.dropped + st.abandoned, 0);
    gate_open(&g);
    wait_until(plain_ran_once, NULL, "the plain task to run (the pool's queue free)");
    assert_int_equal(sluice_keyed_submit(ex, 7, job_fn, &jobs[3]), SLUICE_OK); /* starts a runner */
    int four = 4;
    wait_until(log_at_least, &four, "the waiting tasks and the new one to run");
    pthread_mutex_lock(&log_mu);
    for (int i = 0; i < 4; i++) {
        assert_int_equal(run_log[i], i + 1);
    }
    pthread_mutex_unlock(&log_mu);
    wait_until(runners_gone, ex, "the runner to count its batch and leave");
    fault_clear();
    st = kstats(ex);
    assert_int_equal(st.submitted, 4);
    assert_int_equal(st.completed, 4);
    assert_int_equal(nab, 0);
    assert_int_equal(sluice_keyed_drain(ex, 0, NULL), SLUICE_OK);
    sluice_keyed_destroy(ex);
    sluice_pool_destroy(pool);
    gate_destroy(&g);
}

/* The same timer failure when the pool's drain deadline hands the last
 * runner back: nothing is handed back inside the pool's on_abandon, and
 * the next submit, refused by the closed pool (the caller keeps its task),
 * hands the waiting tasks back itself, on its own thread: the pool will
 * never run them. They waited for the executor's drain or destroy. */
static void test_timer_failure_pool_closed(void **state)
{
    (void)state;
    log_reset();
    ab_reset();
    sluice_pool *pool = make_pool(1, NULL);
    gate g;
    gate_init(&g);
    assert_int_equal(sluice_pool_submit(pool, task_at_gate, &g), SLUICE_OK);
    GATE_WAIT_ENTERED(&g, 1);
    sluice_keyed_config kc;
    sluice_keyed_config_init(&kc);
    kc.pool = pool;
    kc.abandon_handler = on_abandon;
    sluice_keyed *ex = make_keyed(&kc);
    fault_set("timer_add", ex);
    job jobs[3] = {{.id = 1, .key = 1}, {.id = 2, .key = 1}, {.id = 3, .key = 2}};
    for (int i = 0; i < 2; i++) {
        assert_int_equal(sluice_keyed_submit(ex, 1, job_fn, &jobs[i]), SLUICE_OK); /* one runner, queued */
    }
    assert_int_equal(sluice_pool_drain(pool, 1, NULL), SLUICE_ETIMEDOUT); /* hands the runner back */
    assert_true(atomic_load(&fault_hits) >= 1);
    sluice_keyed_stats st = kstats(ex);
    assert_int_equal(nab, 0);
    assert_int_equal(st.queued, 2);
    assert_int_equal(st.runners, 0);
    assert_int_equal(sluice_keyed_submit(ex, 2, job_fn, &jobs[2]), SLUICE_ECLOSED);
    pthread_mutex_lock(&ab_mu); /* copied out: a failed assert must not leave it held */
    int handed = nab;
    int ids[2] = {ab_ids[0], ab_ids[1]};
    sluice_abandon_reason reasons[2] = {ab_reasons[0], ab_reasons[1]};
    pthread_mutex_unlock(&ab_mu);
    fault_clear();
    if (handed != 2) {
        gate_open(&g); /* let the pool's worker go before failing */
    }
    assert_int_equal(handed, 2);
    for (int i = 0; i < 2; i++) {
        assert_int_equal(ids[i], i + 1);
        assert_int_equal(reasons[i], SLUICE_ABANDON_DRAIN);
    }
    st = kstats(ex);
    assert_int_equal(st.queued, 0);
    assert_int_equal(st.submitted, 2);
    assert_int_equal(st.abandoned, 2);
    assert_int_equal(st.rejected, 1);
    gate_open(&g);
    assert_int_equal(sluice_keyed_drain(ex, 0, NULL), SLUICE_OK);
    sluice_keyed_destroy(ex);
    sluice_pool_destroy(pool);
    gate_destroy(&g);
    assert_int_equal(log_count(), 0);
}

/* DROP_OLDEST when the new task's item cannot be allocated: the submit
 * fails with SLUICE_ENOMEM and evicts nothing. It evicted first and then
 * failed: the evicted task was counted dropped but never reached the
 * abandon handler (nor ran): lost. 256 waiting tasks fill the first slab
 * of items, so the next item needs a new one, which the hook fails. */
#define SLAB_TASKS 256

static void test_drop_oldest_enomem_evicts_nothing(void **state)
{
    (void)state;
    log_reset();
    ab_reset();
    sluice_pool *pool = make_pool(1, NULL);
    gate g;
    gate_init(&g);
    assert_int_equal(sluice_pool_submit(pool, task_at_gate, &g), SLUICE_OK);
    GATE_WAIT_ENTERED(&g, 1);
    sluice_keyed_config kc;
    sluice_keyed_config_init(&kc);
    kc.pool = pool;
    kc.key_backlog = SLAB_TASKS;
    kc.total_backlog = SLAB_TASKS;
    kc.overflow = SLUICE_OVERFLOW_DROP_OLDEST;
    kc.abandon_handler = on_abandon;
    sluice_keyed *ex = make_keyed(&kc);
    static job jobs[SLAB_TASKS + 1];
    for (int i = 0; i <= SLAB_TASKS; i++) {
        jobs[i] = (job){.id = i + 1, .key = 1};
    }
    for (int i = 0; i < SLAB_TASKS; i++) {
        assert_int_equal(sluice_keyed_submit(ex, 1, job_fn, &jobs[i]), SLUICE_OK);
    }
    fault_set("keyed_item", ex);
    assert_int_equal(sluice_keyed_submit(ex, 1, job_fn, &jobs[SLAB_TASKS]), SLUICE_ENOMEM);
    assert_int_equal(atomic_load(&fault_hits), 1);
    fault_clear();
    sluice_keyed_stats st = kstats(ex);
    assert_int_equal(st.dropped, 0);
    assert_int_equal(st.queued, SLAB_TASKS);
    assert_int_equal(st.rejected, 1);
    assert_int_equal(nab, 0);
    gate_open(&g);
    int all = SLAB_TASKS;
    wait_until(log_at_least, &all, "every accepted task to run");
    wait_until(runners_gone, ex, "the runner to leave");
    pthread_mutex_lock(&log_mu);
    for (int i = 0; i < SLAB_TASKS; i++) {
        assert_int_equal(run_log[i], i + 1);
    }
    pthread_mutex_unlock(&log_mu);
    st = kstats(ex);
    assert_int_equal(st.submitted, SLAB_TASKS);
    assert_int_equal(st.completed, SLAB_TASKS);
    assert_int_equal(nab, 0);
    sluice_keyed_destroy(ex);
    sluice_pool_destroy(pool);
    gate_destroy(&g);
}

/* Submitters race the pool's drain deadline: runners handed back, their
 * tasks handed back from the timer thread, submits that find no runner
 * refused by the closed pool. Every submit that returned OK ran or came
 * back exactly once (by the executor's drain at the latest); every other
 * submit's task neither ran nor came back; the counters add up. */
#define RACE_THREADS 4

typedef struct race_item {
    _Atomic int fate; /* +1 ran, +1 handed back */
    sluice_err submit_r;
} race_item;

typedef struct race_feed {
    sluice_keyed *ex;
    race_item *items;
    unsigned n;
    unsigned id;
} race_feed;

static _Atomic unsigned race_ran;

static int race_fn(void *arg)
{
    race_item *it = arg;
    atomic_fetch_add(&it->fate, 1);
    atomic_fetch_add(&race_ran, 1);
    ev_signal();
    return 0;
}

static void race_back(const sluice_keyed_abandoned *t, void *user)
{
    (void)user;
    race_item *it = t->arg;
    atomic_fetch_add(&it->fate, 1);
}

static void *race_feed_main(void *arg)
{
    race_feed *f = arg;
    for (unsigned i = 0; i < f->n; i++) {
        f->items[i].submit_r =
            sluice_keyed_submit(f->ex, (uint64_t)(i % 8) + 8u * f->id, race_fn, &f->items[i]);
    }
    return NULL;
}

static bool race_ran_at_least(void *arg)
{
    return atomic_load(&race_ran) >= *(unsigned *)arg;
}

static void test_submits_race_the_pool_drain(void **state)
{
    (void)state;
    unsigned per = 2000 * stress_scale();
    atomic_store(&race_ran, 0);
    sluice_pool *pool = make_pool(2, NULL);
    sluice_keyed_config kc;
    sluice_keyed_config_init(&kc);
    kc.pool = pool;
    kc.max_active_keys = 4; /* more runners than workers: some are queued at the deadline */
    kc.abandon_handler = race_back;
    sluice_keyed *ex = make_keyed(&kc);
    race_item *items = calloc((size_t)RACE_THREADS * per, sizeof *items);
    assert_non_null(items);
    race_feed feeds[RACE_THREADS];
    pthread_t th[RACE_THREADS];
    for (unsigned t = 0; t < RACE_THREADS; t++) {
        feeds[t] = (race_feed){.ex = ex, .items = items + (size_t)t * per, .n = per, .id = t};
        assert_int_equal(pthread_create(&th[t], NULL, race_feed_main, &feeds[t]), 0);
    }
    unsigned some = 20;
    wait_until(race_ran_at_least, &some, "some tasks to run before the pool's drain");
    sluice_err dr = sluice_pool_drain(pool, 1, NULL);
    assert_true(dr == SLUICE_OK || dr == SLUICE_ETIMEDOUT);
    for (unsigned t = 0; t < RACE_THREADS; t++) {
        pthread_join(th[t], NULL);
    }
    sluice_keyed_drain_report rep;
    sluice_err kd = sluice_keyed_drain(ex, 0, &rep);
    assert_true(kd == SLUICE_OK || kd == SLUICE_ETIMEDOUT);
    sluice_keyed_stats st = kstats(ex);
    sluice_keyed_destroy(ex); /* after it, nothing is pending or running */
    unsigned ok = 0, refused = 0;
    for (size_t i = 0; i < (size_t)RACE_THREADS * per; i++) {
        int fate = atomic_load(&items[i].fate);
        if (items[i].submit_r == SLUICE_OK) {
            ok++;
            if (fate != 1) {
                fail_msg("task %zu: submit OK, fate %d (want ran or handed back, once)", i, fate);
            }
        } else {
            refused++;
            if (items[i].submit_r != SLUICE_ECLOSED || fate != 0) {
                fail_msg("task %zu: submit %d, fate %d (want ECLOSED, never run)", i, (int)items[i].submit_r,
                         fate);
            }
        }
    }
    assert_true(ok >= some);
    assert_int_equal(st.submitted, ok);
    assert_int_equal(st.rejected, refused);
    assert_int_equal(st.queued, 0);
    assert_int_equal(st.submitted, st.completed + st.failed + st.panicked + st.dropped + st.abandoned);
    if (getenv("RACE_VERBOSE")) {
        fprintf(stderr, "race: ok %u (ran %llu, handed back %llu), refused %u\n", ok,
                (unsigned long long)st.completed, (unsigned long long)st.abandoned, refused);
    }
    sluice_pool_destroy(pool);
    free(items);
}

static void test_metrics(void **state)
{
    (void)state;
    log_reset();
    sluice_pool *pool = make_pool(2, NULL);
    sluice_keyed_config kc;
    sluice_keyed_config_init(&kc);
    kc.name = "ledger";
    kc.pool = pool;
    kc.max_active_keys = 1;
    sluice_keyed *ex = make_keyed(&kc);
    sluice_metrics *reg;
    assert_int_equal(sluice_metrics_create(NULL, &reg), SLUICE_OK);
    sluice_sync_metrics *sm;
    assert_int_equal(sluice_sync_metrics_create(reg, &sm), SLUICE_OK);
    assert_int_equal(sluice_sync_metrics_add_keyed(sm, ex), SLUICE_OK);
    assert_int_equal(sluice_sync_metrics_add_keyed(sm, ex), SLUICE_EBUSY);
    gate g;
    gate_init(&g);
    job j[5] = {{.id = 0, .key = 1, .hold = &g},
                {.id = 1, .key = 1},
                {.id = 2, .key = 1},
                {.id = 3, .key = 2},
                {.id = 4, .key = 1, .rc = 1}};
    submit_first(ex, &j[0], "the first to run");
    for (int i = 1; i < 5; i++) {
        assert_int_equal(sluice_keyed_submit(ex, j[i].key, job_fn, &j[i]), SLUICE_OK);
    }
    char *text = expo_render(reg);
    has(text, "# TYPE sluice_keyed_executor_active_keys gauge");
    has(text, "sluice_keyed_executor_active_keys{name=\"ledger\"} 1\n");
    has(text, "sluice_keyed_executor_longest_backlog{name=\"ledger\"} 3\n");
    has(text, "sluice_keyed_executor_queued{name=\"ledger\"} 4\n");
    has(text, "sluice_keyed_executor_keys{name=\"ledger\"} 2\n");
    has(text, "sluice_keyed_executor_submitted_total{name=\"ledger\"} 5\n");
    free(text);
    gate_open(&g);
    assert_int_equal(sluice_keyed_drain(ex, 0, NULL), SLUICE_OK);
    text = expo_render(reg);
    has(text, "sluice_keyed_executor_tasks_total{name=\"ledger\",outcome=\"completed\"} 4\n");
    has(text, "sluice_keyed_executor_tasks_total{name=\"ledger\",outcome=\"failed\"} 1\n");
    has(text, "sluice_keyed_executor_longest_backlog_max{name=\"ledger\"} 3\n");
    has(text, "sluice_keyed_executor_active_keys{name=\"ledger\"} 0\n");
    free(text);
    assert_int_equal(sluice_sync_metrics_remove_keyed(sm, ex), SLUICE_OK);
    sluice_sync_metrics_destroy(sm);
    sluice_metrics_destroy(reg);
    sluice_keyed_destroy(ex);
    sluice_pool_destroy(pool);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_config),
        cmocka_unit_test(test_order_and_exclusion),
        cmocka_unit_test(test_parallel_up_to_k),
        cmocka_unit_test(test_busy_key_holds_no_worker),
        cmocka_unit_test(test_reject_and_drop_oldest),
        cmocka_unit_test(test_block),
        cmocka_unit_test(test_block_edeadlk),
        cmocka_unit_test(test_drain_hands_back_in_order),
        cmocka_unit_test(test_destroy_undrained),
        cmocka_unit_test(test_panic_mid_batch),
        cmocka_unit_test(test_pool_refuses_runner),
        cmocka_unit_test(test_evicted_runner_is_replaced),
        cmocka_unit_test(test_evicted_runners_under_a_flood),
        cmocka_unit_test(test_fair_tenant_eviction_backs_off),
        cmocka_unit_test(test_submit_during_last_hand_back),
        cmocka_unit_test(test_abandon_handler_never_inside_on_abandon),
        cmocka_unit_test(test_drain_waits_for_hand_back_on_timer),
        cmocka_unit_test(test_handler_reentry),
        cmocka_unit_test(test_timer_failure_strands_nothing),
        cmocka_unit_test(test_timer_failure_pool_closed),
        cmocka_unit_test(test_drop_oldest_enomem_evicts_nothing),
        cmocka_unit_test(test_submits_race_the_pool_drain),
        cmocka_unit_test(test_metrics),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
