/*
 * tests/common/wait.h - bounded waits for every test: a gate that holds
 * tasks until the test opens it, a latch that waits for N events, and
 * WAIT_FOR for conditions that have no notification.
 *
 * Purpose. One copy of the waiting helpers for all areas (core, base,
 * sync, obs, admin, service, config tests); tests/common/pool.h adds the
 * pool-specific pieces (tally, accounting identity) on top. Nothing here sleeps for a time and
 * hopes the event happened: latches and gates wait on a condition
 * variable, and a condition with no notification (a stats field) is
 * polled every 100 us.
 *
 * Safety timeouts. Every wait has a generous real-time limit (SAFETY_NS,
 * long enough for TSan on a loaded 2-core CI machine). Passing it fails
 * the test with a message naming what was awaited (WAIT_FOR, LATCH_WAIT,
 * GATE_WAIT_ENTERED on the main thread), or makes the wait return false
 * (the *_bg forms and gate_pass, for pool workers and helper threads), so
 * a broken test fails in seconds instead of hanging until ctest's timeout.
 * A task held by a gate is let go when the limit passes too (counted in
 * gate.timeouts), so a pool can still be destroyed after a failure.
 *
 * Threads. cmocka's assertions longjmp and may only be used on the test's
 * main thread: include <cmocka.h> before this header. Code on pool workers
 * or helper threads uses the *_bg forms and records what it saw.
 */
#ifndef SLUICE_TESTS_COMMON_WAIT_H
#define SLUICE_TESTS_COMMON_WAIT_H

/* 1 in a ThreadSanitizer build (CMake defines SLUICE_SANITIZER=2). */
#if defined(SLUICE_SANITIZER) && SLUICE_SANITIZER == 2
#define SLUICE_TEST_TSAN 1
#else
#define SLUICE_TEST_TSAN 0
#endif

#include <errno.h>
#include <pthread.h>
#include <sched.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <time.h>

#include "base/timing.h"
#include "sluice/clock.h"
#include "sluice/task.h"

#define SAFETY_NS (30ull * SLUICE_NS_PER_SEC)

#define H_UNUSED __attribute__((unused))

/* ---- time and scale ------------------------------------------------------ */

/* Real time (CLOCK_MONOTONIC: the system clock of sluice/clock.h), for
 * safety limits; the condvars below are made by sluice__cond_init
 * (src/base/timing.h), so a deadline in it is a pthread_cond_timedwait
 * argument via abs_real_ts. */
static inline uint64_t real_now_ns(void)
{
    return sluice_clock_now(NULL);
}

static inline struct timespec abs_real_ts(uint64_t ns)
{
    return sluice__ts_from_ns(ns);
}

/* Poll pause for conditions that have no notification: 100 us. */
static inline void poll_pause(void)
{
    struct timespec ts = {.tv_sec = 0, .tv_nsec = 100 * 1000};
    nanosleep(&ts, NULL);
}

/* SLUICE_STRESS_SCALE (default 1): multiplies stress sizes. */
static inline unsigned stress_scale(void)
{
    const char *s = getenv("SLUICE_STRESS_SCALE");
    if (!s || !*s) {
        return 1;
    }
    long v = strtol(s, NULL, 10);
    return v > 0 ? (unsigned)v : 1;
}

/* True when built with a sanitizer (loops are cut down there). */
static inline bool under_sanitizer(void)
{
#if defined(SLUICE_SANITIZER)
    return true;
#else
    return false;
#endif
}

/*
 * WAIT_FOR(cond, what) - poll `cond` until it is true; fail the test
 * (main thread only) when SAFETY_NS of real time pass first.
 */
#define WAIT_FOR(cond, ...)                                                                                  \
    do {                                                                                                     \
        uint64_t wait_for_limit_ = real_now_ns() + SAFETY_NS;                                                \
        while (!(cond)) {                                                                                    \
            if (real_now_ns() > wait_for_limit_) {                                                           \
                print_error("WAIT_FOR timed out: %s (", #cond);                                              \
                print_error(__VA_ARGS__);                                                                    \
                print_error(")\n");                                                                          \
                fail_msg("timed out waiting at %s:%d", __FILE__, __LINE__);                                  \
            }                                                                                                \
            poll_pause();                                                                                    \
        }                                                                                                    \
    } while (0)

/* Same, for threads other than the main one: returns false on timeout. */
#define WAIT_FOR_BG(cond)                                                                                    \
    ({                                                                                                       \
        uint64_t wait_for_limit_ = real_now_ns() + SAFETY_NS;                                                \
        bool wait_ok_ = true;                                                                                \
        while (!(cond)) {                                                                                    \
            if (real_now_ns() > wait_for_limit_) {                                                           \
                wait_ok_ = false;                                                                            \
                break;                                                                                       \
            }                                                                                                \
            poll_pause();                                                                                    \
        }                                                                                                    \
        wait_ok_;                                                                                            \
    })

/* ---- latch: wait for N count-downs -------------------------------------- */

typedef struct latch {
    pthread_mutex_t mu;
    pthread_cond_t cv;
    long count;
} latch;

static inline void latch_init(latch *l, long n)
{
    pthread_mutex_init(&l->mu, NULL);
    if (sluice__cond_init(&l->cv) != 0) {
        abort(); /* out of memory in a test: nothing sensible to do */
    }
    l->count = n;
}

static inline void latch_destroy(latch *l)
{
    pthread_mutex_destroy(&l->mu);
    pthread_cond_destroy(&l->cv);
}

static inline void latch_count_down(latch *l)
{
    pthread_mutex_lock(&l->mu);
    if (l->count > 0 && --l->count == 0) {
        pthread_cond_broadcast(&l->cv);
    }
    pthread_mutex_unlock(&l->mu);
}

static inline long latch_count(latch *l)
{
    pthread_mutex_lock(&l->mu);
    long n = l->count;
    pthread_mutex_unlock(&l->mu);
    return n;
}

/* Waits until the count is zero; false after SAFETY_NS. Any thread. */
static inline bool latch_wait_bg(latch *l)
{
    struct timespec ts = abs_real_ts(real_now_ns() + SAFETY_NS);
    bool ok = true;
    pthread_mutex_lock(&l->mu);
    while (l->count > 0) {
        if (pthread_cond_timedwait(&l->cv, &l->mu, &ts) == ETIMEDOUT) {
            ok = l->count == 0;
            break;
        }
    }
    pthread_mutex_unlock(&l->mu);
    return ok;
}

#define LATCH_WAIT(l, what)                                                                                  \
    do {                                                                                                     \
        if (!latch_wait_bg(l)) {                                                                             \
            fail_msg("latch never reached zero (%ld left): %s at %s:%d", latch_count(l), what, __FILE__,     \
                     __LINE__);                                                                              \
        }                                                                                                    \
    } while (0)

/* ---- gate: hold tasks until the test opens it --------------------------- */

typedef struct gate {
    pthread_mutex_t mu;
    pthread_cond_t cv;
    bool open;
    _Atomic int entered; /* tasks that reached the gate, in all */
    _Atomic int inside;  /* tasks waiting at it now */
    _Atomic int timeouts;
} gate;

static inline void gate_init(gate *g)
{
    pthread_mutex_init(&g->mu, NULL);
    if (sluice__cond_init(&g->cv) != 0) {
        abort(); /* out of memory in a test: nothing sensible to do */
    }
    g->open = false;
    atomic_init(&g->entered, 0);
    atomic_init(&g->inside, 0);
    atomic_init(&g->timeouts, 0);
}

static inline void gate_destroy(gate *g)
{
    pthread_mutex_destroy(&g->mu);
    pthread_cond_destroy(&g->cv);
}

static inline gate *gate_new(void)
{
    gate *g = malloc(sizeof *g);
    assert_non_null(g);
    gate_init(g);
    return g;
}

static inline void gate_free(gate *g)
{
    gate_destroy(g);
    free(g);
}

static inline void gate_open(gate *g)
{
    pthread_mutex_lock(&g->mu);
    g->open = true;
    pthread_cond_broadcast(&g->cv);
    pthread_mutex_unlock(&g->mu);
}

static inline void gate_close(gate *g)
{
    pthread_mutex_lock(&g->mu);
    g->open = false;
    pthread_mutex_unlock(&g->mu);
}

/*
 * Waits at the gate until it opens. With `stop_too`, also returns when
 * sluice_task_should_stop() turns true (checked every millisecond: the
 * stop flag has no notification). Returns true if the gate opened.
 */
static inline bool gate_pass(gate *g, bool stop_too)
{
    atomic_fetch_add(&g->entered, 1);
    atomic_fetch_add(&g->inside, 1);
    uint64_t limit = real_now_ns() + SAFETY_NS;
    bool opened = false;
    pthread_mutex_lock(&g->mu);
    for (;;) {
        if (g->open) {
            opened = true;
            break;
        }
        if (stop_too && sluice_task_should_stop()) {
            break;
        }
        uint64_t now = real_now_ns();
        if (now > limit) {
            atomic_fetch_add(&g->timeouts, 1);
            break;
        }
        uint64_t until = stop_too ? now + SLUICE_NS_PER_MS : limit;
        struct timespec ts = abs_real_ts(until);
        pthread_cond_timedwait(&g->cv, &g->mu, &ts);
    }
    pthread_mutex_unlock(&g->mu);
    atomic_fetch_sub(&g->inside, 1);
    return opened;
}

/* ---- event board: wait for a predicate that tasks signal ---------------- */

/*
 * Code under test (tasks, handlers, hooks) calls ev_signal() after changing
 * something a test waits for; the test calls WAIT_UNTIL(pred, arg, what),
 * which re-checks pred(arg) on every signal and at least every millisecond
 * (a change made without a signal is still seen) and fails the test after
 * SAFETY_NS. One board per test program (the header is included by one
 * .c file per program).
 */
static pthread_mutex_t ev_board_mu = PTHREAD_MUTEX_INITIALIZER;
static pthread_cond_t ev_board_cv = PTHREAD_COND_INITIALIZER; /* CLOCK_REALTIME */

static inline void ev_signal(void)
{
    pthread_mutex_lock(&ev_board_mu);
    pthread_cond_broadcast(&ev_board_cv);
    pthread_mutex_unlock(&ev_board_mu);
}

/* Waits until pred(arg); false after SAFETY_NS. Any thread. */
static inline bool wait_until_bg(bool (*pred)(void *), void *arg)
{
    uint64_t limit = real_now_ns() + SAFETY_NS;
    bool ok = true;
    pthread_mutex_lock(&ev_board_mu);
    while (!pred(arg)) {
        if (real_now_ns() > limit) {
            ok = false;
            break;
        }
        /* The board's condvar (a static initializer) runs on CLOCK_REALTIME. */
        struct timespec ts = sluice__ts_after(CLOCK_REALTIME, SLUICE_NS_PER_MS);
        pthread_cond_timedwait(&ev_board_cv, &ev_board_mu, &ts);
    }
    pthread_mutex_unlock(&ev_board_mu);
    return ok;
}

/* The main thread's form: fails the test naming `what` on timeout. */
static inline void wait_until(bool (*pred)(void *), void *arg, const char *what)
{
    if (!wait_until_bg(pred, arg)) {
        fail_msg("timed out waiting for %s", what);
    }
}

/* Waits until at least n tasks have reached the gate (in all); false after
 * SAFETY_NS. Any thread. */
static inline bool gate_wait_entered_bg(gate *g, int n)
{
    return WAIT_FOR_BG(atomic_load(&g->entered) >= n);
}

#define GATE_WAIT_ENTERED(g, n)                                                                              \
    do {                                                                                                     \
        if (!gate_wait_entered_bg((g), (n))) {                                                               \
            fail_msg("only %d of %d tasks reached the gate at %s:%d", atomic_load(&(g)->entered), (int)(n),  \
                     __FILE__, __LINE__);                                                                    \
        }                                                                                                    \
    } while (0)

/*
 * Waits until n tasks are inside the gate at once, for as long as tasks
 * keep arriving: false only when none arrived (g->entered unchanged) for
 * SAFETY_NS. For a chain of events whose total time on a loaded machine
 * (TSan, two cores shared) has no useful bound while each step's has: a
 * flow that stopped still fails within SAFETY_NS of its last step. The
 * tasks at the gate must not leave on a time limit of their own meanwhile
 * (task_gate_until_open). Any thread.
 */
static inline bool gate_wait_inside_progress_bg(gate *g, int n)
{
    int seen = atomic_load(&g->entered);
    uint64_t last_step = real_now_ns();
    while (atomic_load(&g->inside) < n) {
        int now_entered = atomic_load(&g->entered);
        uint64_t now = real_now_ns();
        if (now_entered != seen) {
            seen = now_entered;
            last_step = now;
        } else if (now - last_step > SAFETY_NS) {
            return false;
        }
        poll_pause();
    }
    return true;
}

/* ---- gate tasks: submit one with the gate as its arg ---------------------- */

/* Waits at the gate until it opens, or until SAFETY_NS pass; returns 0
 * when it opened, 1 when the wait timed out (the task counts as failed). */
static inline int task_at_gate(void *arg)
{
    return gate_pass(arg, false) ? 0 : 1;
}

/* Waits at the gate until it opens or the task is asked to stop
 * (sluice_task_should_stop); returns 0 either way. */
static inline int task_gate(void *arg)
{
    gate_pass((gate *)arg, true);
    return 0;
}

/* Waits at the gate until it opens (ignoring the stop flag) or until
 * SAFETY_NS pass; returns 0 either way. */
static inline int task_gate_hard(void *arg)
{
    gate_pass((gate *)arg, false);
    return 0;
}

/* Waits at the gate until it opens, with no time limit (and ignoring the
 * stop flag); returns 0. For waits whose length has no useful bound
 * (gate_wait_inside_progress_bg): the test must open the gate on every
 * path, a failed one included (a cmocka teardown), or its workers stay. */
static inline int task_gate_until_open(void *arg)
{
    gate *g = arg;
    atomic_fetch_add(&g->entered, 1);
    atomic_fetch_add(&g->inside, 1);
    pthread_mutex_lock(&g->mu);
    while (!g->open) {
        pthread_cond_wait(&g->cv, &g->mu);
    }
    pthread_mutex_unlock(&g->mu);
    atomic_fetch_sub(&g->inside, 1);
    return 0;
}

#endif /* SLUICE_TESTS_COMMON_WAIT_H */
