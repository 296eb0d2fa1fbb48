/*
 * tests/sync/bg_call.h - a blocking call (an add, a submit, a drain) run
 * on a thread of its own, so that the test can move the fake clock or open
 * a gate while the call waits, then collect its result.
 *
 *     bg_call c;
 *     bg_call_start(&c, drain_call, &d);      // d: the call's arguments
 *     wait_until(closed, b, "the drain to begin");
 *     sluice_fake_clock_advance(&fc, SEC);
 *     assert_int_equal(bg_call_finish(&c, "the drain deadline"), SLUICE_ETIMEDOUT);
 *
 * Include after <cmocka.h> and tests/common/wait.h: the thread calls
 * ev_signal() when the call returns, and bg_call_finish waits with
 * wait_until (the test fails after the safety timeout, naming `what`).
 */
#ifndef SLUICE_TESTS_SYNC_BG_CALL_H
#define SLUICE_TESTS_SYNC_BG_CALL_H

#include <pthread.h>
#include <stdatomic.h>
#include <stdbool.h>

#include "sluice/common.h"

typedef struct bg_call {
    sluice_err (*fn)(void *arg);
    void *arg;
    sluice_err err; /* fn's result; read it after bg_call_finish */
    _Atomic bool done;
    pthread_t thread;
} bg_call;

static inline void *bg_call_main(void *p)
{
    bg_call *c = p;
    c->err = c->fn(c->arg);
    atomic_store(&c->done, true);
    ev_signal();
    return NULL;
}

/* A wait_until predicate: the call has returned. */
static inline bool bg_call_done(void *p)
{
    return atomic_load(&((bg_call *)p)->done);
}

/* Starts fn(arg) on a new thread. */
static inline void bg_call_start(bg_call *c, sluice_err (*fn)(void *arg), void *arg)
{
    c->fn = fn;
    c->arg = arg;
    c->err = SLUICE_OK;
    atomic_init(&c->done, false);
    assert_int_equal(pthread_create(&c->thread, NULL, bg_call_main, c), 0);
}

/* Waits for the call to return (`what` names it if it never does), joins
 * its thread, and returns the call's result. */
static inline sluice_err bg_call_finish(bg_call *c, const char *what)
{
    wait_until(bg_call_done, c, what);
    pthread_join(c->thread, NULL);
    return c->err;
}

#endif /* SLUICE_TESTS_SYNC_BG_CALL_H */
