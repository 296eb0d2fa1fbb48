/*
 * tests/obs/test_stacks.c - sluice_thread_backtrace: the captured stack of
 * a blocked thread contains the frames the thread itself sees; a thread
 * that masks the signal times out; bad arguments are refused.
 * sluice_pool_worker_backtrace: a live worker is captured, an entry for a
 * worker that has since exited and been joined gives SLUICE_ENOENT (never
 * a signal to a dead thread), and a capture interrupts a sleeping task's
 * nanosleep with EINTR, as the header warns.
 *
 * The test's waits (the target blocked, the task started, the worker
 * expired) are the bounded WAIT_FORs of tests/common/wait.h.
 */
#include <pthread.h>
#include <setjmp.h>
#include <signal.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <execinfo.h>
#include <string.h>
#include <errno.h>
#include <stdatomic.h>
#include <time.h>

#include <cmocka.h>

#include "sluice/metrics.h"

#include "common/wait.h"

typedef struct target {
    pthread_mutex_t mu;
    pthread_cond_t cv;
    bool ready, release, mask;
    void *own[8];
    int own_n;
} target;

static __attribute__((noinline)) void block_here(target *t)
{
    pthread_mutex_lock(&t->mu);
    t->own_n = backtrace(t->own, 8); /* the return addresses of the frames above */
    t->ready = true;
    pthread_cond_broadcast(&t->cv);
    while (!t->release) {
        pthread_cond_wait(&t->cv, &t->mu);
    }
    pthread_mutex_unlock(&t->mu);
}

static void *thread_main(void *arg)
{
    target *t = arg;
    if (t->mask) {
        sigset_t set;
        sigemptyset(&set);
        sigaddset(&set, SIGURG);
        pthread_sigmask(SIG_BLOCK, &set, NULL);
    }
    block_here(t);
    __asm__ volatile("" ::: "memory"); /* keep the call above from being a tail call */
    return NULL;
}

static bool target_ready(target *t)
{
    pthread_mutex_lock(&t->mu);
    bool ready = t->ready;
    pthread_mutex_unlock(&t->mu);
    return ready;
}

static void start(target *t, pthread_t *th, bool mask)
{
    memset(t, 0, sizeof *t);
    pthread_mutex_init(&t->mu, NULL);
    pthread_cond_init(&t->cv, NULL);
    t->mask = mask;
    assert_int_equal(pthread_create(th, NULL, thread_main, t), 0);
    WAIT_FOR(target_ready(t), "the target thread to block");
}

static void stop(target *t, pthread_t th)
{
    pthread_mutex_lock(&t->mu);
    t->release = true;
    pthread_cond_broadcast(&t->cv);
    pthread_mutex_unlock(&t->mu);
    pthread_join(th, NULL);
}

static void test_capture(void **state)
{
    (void)state;
    target t;
    pthread_t th;
    start(&t, &th, false);
    assert_true(t.own_n >= 2);
    void *frames[64];
    int n = 0;
    for (int round = 0; round < 3; round++) { /* the handler is reusable */
        assert_int_equal(sluice_thread_backtrace(th, frames, 64, &n, 2 * SLUICE_NS_PER_SEC), SLUICE_OK);
        assert_true(n > 2);
        bool found = false;
        for (int i = 0; i < n; i++) {
            /* own[1] is thread_main's frame with glibc's backtrace; with
             * the sanitizers' interceptor own[0] is the interceptor and
             * thread_main's frame is own[2]. */
            found |= frames[i] == t.own[1] || (t.own_n > 2 && frames[i] == t.own[2]);
        }
        assert_true(found);
    }
    /* A small buffer takes the innermost frames only. */
    assert_int_equal(sluice_thread_backtrace(th, frames, 1, &n, 2 * SLUICE_NS_PER_SEC), SLUICE_OK);
    assert_int_equal(n, 1);
    stop(&t, th);
}

static void test_masked_times_out(void **state)
{
    (void)state;
    target t;
    pthread_t th;
    start(&t, &th, true);
    void *frames[8];
    int n = -1;
    assert_int_equal(sluice_thread_backtrace(th, frames, 8, &n, 50 * SLUICE_NS_PER_MS), SLUICE_ETIMEDOUT);
    assert_int_equal(n, 0);
    stop(&t, th); /* the pending SIGURG is ignored when the thread unmasks (it never does) or exits */
}

static volatile sig_atomic_t app_urg_calls;

static void app_urg_handler(int sig)
{
    (void)sig;
    app_urg_calls++;
}

/* Runs first: an application's SIGURG handler, installed before the first
 * capture, still gets the SIGURGs that are not captures. */
static void test_chains_previous_handler(void **state)
{
    (void)state;
    struct sigaction sa;
    memset(&sa, 0, sizeof sa);
    sa.sa_handler = app_urg_handler;
    sigemptyset(&sa.sa_mask);
    assert_int_equal(sigaction(SIGURG, &sa, NULL), 0);
    target t;
    pthread_t th;
    start(&t, &th, false);
    void *frames[16];
    int n;
    assert_int_equal(sluice_thread_backtrace(th, frames, 16, &n, 2 * SLUICE_NS_PER_SEC), SLUICE_OK);
    assert_int_equal(app_urg_calls, 0);
    raise(SIGURG); /* not a capture: delivered to this thread before raise returns */
    assert_int_equal(app_urg_calls, 1);
    stop(&t, th);
}

static void test_bad_args(void **state)
{
    (void)state;
    void *frames[4];
    int n;
    assert_int_equal(sluice_thread_backtrace(pthread_self(), frames, 4, &n, SLUICE_NS_PER_SEC),
                     SLUICE_EINVAL);
    assert_int_equal(sluice_thread_backtrace(pthread_self(), NULL, 4, &n, SLUICE_NS_PER_SEC), SLUICE_EINVAL);
}

typedef struct sleeper {
    _Atomic int started;
    _Atomic int result; /* errno of the task's nanosleep, or 0 when it slept through */
} sleeper;

static int sleep_task(void *arg)
{
    sleeper *s = arg;
    atomic_store(&s->started, 1);
    struct timespec ts = {10, 0}, rem;
    int r = nanosleep(&ts, &rem);
    atomic_store(&s->result, r == 0 ? -1 : errno);
    return 0;
}

/* One capture of the sleeping task's worker (main thread: asserts), then:
 * has the task reported how its sleep ended? */
static bool capture_reported(sluice_pool *p, const sluice_worker_info *w, sleeper *sl)
{
    if (atomic_load(&sl->result) != 0) {
        return true;
    }
    void *frames[32];
    int n = 0;
    sluice_err r = sluice_pool_worker_backtrace(p, w, frames, 32, &n, 2 * SLUICE_NS_PER_SEC);
    assert_true(r == SLUICE_OK || r == SLUICE_ENOENT);
    return atomic_load(&sl->result) != 0;
}

static void test_pool_worker(void **state)
{
    (void)state;
    sluice_pool_config cfg;
    sluice_pool_config_init(&cfg);
    cfg.name = "bt";
    cfg.workers = 1;
    cfg.queue_capacity = 4;
    cfg.idle_expiry_ns = SLUICE_NS_PER_MS;
    sluice_pool *p = NULL;
    assert_int_equal(sluice_pool_create(&cfg, &p, NULL, 0), SLUICE_OK);
    sleeper sl = {0};
    assert_int_equal(sluice_pool_submit(p, sleep_task, &sl), SLUICE_OK);
    WAIT_FOR(atomic_load(&sl.started), "the sleeping task to start");
    sluice_worker_info w[4];
    assert_int_equal(sluice_pool_workers_get(p, w, 4), 1);
    void *frames[32];
    int n = 0;
    /* The capture interrupts the task's nanosleep (EINTR), which the task
     * then reports; capture again if the signal came before the sleep. */
    WAIT_FOR(capture_reported(p, &w[0], &sl), "the task to report its interrupted sleep");
    assert_int_equal(atomic_load(&sl.result), EINTR);
    /* The worker goes idle and expires (1 ms); once it is gone, its old
     * entry is refused without a signal. */
    WAIT_FOR(sluice_pool_workers_get(p, NULL, 0) == 0, "the idle worker to expire");
    assert_int_equal(sluice_pool_workers_get(p, NULL, 0), 0);
    assert_int_equal(sluice_pool_drain(p, 0, NULL), SLUICE_OK); /* joins the exited worker */
    n = -1;
    assert_int_equal(sluice_pool_worker_backtrace(p, &w[0], frames, 32, &n, 0), SLUICE_ENOENT);
    assert_int_equal(n, 0);
    sluice_worker_info bogus = w[0];
    bogus.index = 1000; /* no such slot */
    assert_int_equal(sluice_pool_worker_backtrace(p, &bogus, frames, 32, &n, 0), SLUICE_ENOENT);
    assert_int_equal(sluice_pool_worker_backtrace(NULL, &w[0], frames, 32, &n, 0), SLUICE_EINVAL);
    assert_int_equal(sluice_pool_worker_backtrace(p, NULL, frames, 32, &n, 0), SLUICE_EINVAL);
    assert_int_equal(sluice_pool_worker_backtrace(p, &w[0], frames, 0, &n, 0), SLUICE_EINVAL);
    sluice_pool_destroy(p);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_chains_previous_handler),
        cmocka_unit_test(test_capture),
        cmocka_unit_test(test_masked_times_out),
        cmocka_unit_test(test_bad_args),
        cmocka_unit_test(test_pool_worker),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
