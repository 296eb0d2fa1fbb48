/*
 * tests/obs/test_stacks.c - sluice_thread_backtrace: the captured stack of
 * a blocked thread contains the frames the thread itself sees; a thread
 * that masks the signal times out; bad arguments are refused.
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

#include <cmocka.h>

#include "sluice/metrics.h"

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

static void start(target *t, pthread_t *th, bool mask)
{
    memset(t, 0, sizeof *t);
    pthread_mutex_init(&t->mu, NULL);
    pthread_cond_init(&t->cv, NULL);
    t->mask = mask;
    assert_int_equal(pthread_create(th, NULL, thread_main, t), 0);
    pthread_mutex_lock(&t->mu);
    while (!t->ready) {
        pthread_cond_wait(&t->cv, &t->mu);
    }
    pthread_mutex_unlock(&t->mu);
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

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_chains_previous_handler),
        cmocka_unit_test(test_capture),
        cmocka_unit_test(test_masked_times_out),
        cmocka_unit_test(test_bad_args),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
