/*
 * tests/common/pool.h - what a test of a sluice_pool needs beyond waiting:
 * a record of what the pool handed back or reported, and the accounting
 * identity.
 *
 * Purpose. Every pool test (tests/core and any other area that drives a
 * pool directly) needs the same few things: a way to hold tasks inside a
 * worker until the test lets them go (a gate), a way to wait for N events
 * (a latch), a way to wait for a condition that has no notification
 * (stats reaching a value), a record of what the pool handed back or
 * reported (a tally wired to the abandon and panic handlers), and the
 * accounting identity
 *
 *     submitted = completed + failed + panicked + dropped + shed + abandoned
 *
 * checked at quiescence after every test.
 *
 * Waiting. The latch, the gate and WAIT_FOR come from tests/common/wait.h
 * (shared with every other area): nothing sleeps for a time and hopes the
 * event happened, and every wait has a real-time safety limit (SAFETY_NS)
 * that fails the test with a message naming what was awaited, instead of
 * hanging until ctest's timeout.
 *
 * Threads. cmocka's assertions longjmp and may only be used on the test's
 * main thread. Code running on pool workers or helper threads records
 * violations in atomics (tally.violations and friends) that the main
 * thread asserts afterwards.
 */
#ifndef SLUICE_TESTS_COMMON_POOL_H
#define SLUICE_TESTS_COMMON_POOL_H

#include <dirent.h>
#include <errno.h>
#include <pthread.h>
#include <sched.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <cmocka.h>

#include "sluice/clock.h"
#include "sluice/common.h"
#include "sluice/ctx.h"
#include "sluice/fault.h"
#include "sluice/pool.h"
#include "sluice/task.h"

/* Latch, gate and its tasks, WAIT_FOR, SAFETY_NS, stress_scale, H_UNUSED:
 * shared by every area. */
#include "common/wait.h"

/* ---- tally: what the pool reported back to the test --------------------- */

#define TALLY_MAX_PANICS 64
enum { EXIT_EXPIRED, EXIT_RETIRED, EXIT_FAULT, EXIT_INIT_FAILED, EXIT_SHUTDOWN, EXIT_OTHER };

typedef struct panic_record {
    char pool_name[SLUICE_POOL_NAME_MAX + 1];
    char message[256];
    char label[64];
    unsigned worker_index;
    int signal;
    int frame_count;
    bool caller_thread;
    bool frames_nonnull;
} panic_record;

typedef struct tally {
    _Atomic uint64_t ran;             /* task bodies entered */
    _Atomic uint64_t abandoned_by[5]; /* by sluice_abandon_reason */
    _Atomic uint64_t abandoned_total;
    _Atomic uint64_t abandon_bad; /* handler got something malformed */
    _Atomic uint64_t panics;
    _Atomic uint64_t inits;
    _Atomic uint64_t init_refusals;
    _Atomic uint64_t finis;
    _Atomic uint64_t violations; /* a rule broken on a non-main thread */
    _Atomic int init_fail_index; /* worker_init refuses this index (-1: none) */
    _Atomic int init_fail_every; /* worker_init refuses every call when 1 */
    _Atomic uint64_t events_by[8];
    /* WORKER_EXIT events by reason: expired, retired, fault, init-failed,
     * shutdown, other. */
    _Atomic uint64_t exits_by[6];
    pthread_mutex_t mu; /* guards records, abandoned_args */
    panic_record records[TALLY_MAX_PANICS];
    unsigned nrecords;
    /* The args of abandoned tasks, in order (first 256). */
    void *abandoned_args[256];
    sluice_abandon_reason abandoned_reasons[256];
    unsigned nabandoned_args;
} tally;

static inline void tally_init(tally *t)
{
    memset(t, 0, sizeof *t);
    pthread_mutex_init(&t->mu, NULL);
    atomic_store(&t->init_fail_index, -1);
}

static inline void tally_destroy(tally *t)
{
    pthread_mutex_destroy(&t->mu);
}

/*
 * Tallies and gates are heap-allocated by the tests: when a test fails,
 * cmocka longjmps out of it and leaves its pool's threads running; state
 * on the failed test's stack would then be reused by the next test. A
 * failed test leaks its tally and gate instead of corrupting the rest.
 */
static inline tally *tally_new(void)
{
    tally *t = malloc(sizeof *t);
    assert_non_null(t);
    tally_init(t);
    return t;
}

static inline void tally_free(tally *t)
{
    tally_destroy(t);
    free(t);
}

static inline void tally_abandon(const sluice_abandoned *a, void *user)
{
    tally *t = user;
    if (!a || !a->fn || a->reason < SLUICE_ABANDON_DROPPED || a->reason > SLUICE_ABANDON_DESTROY) {
        atomic_fetch_add(&t->abandon_bad, 1);
        return;
    }
    atomic_fetch_add(&t->abandoned_by[a->reason], 1);
    atomic_fetch_add(&t->abandoned_total, 1);
    pthread_mutex_lock(&t->mu);
    if (t->nabandoned_args < 256) {
        t->abandoned_reasons[t->nabandoned_args] = a->reason;
        t->abandoned_args[t->nabandoned_args++] = a->arg;
    }
    pthread_mutex_unlock(&t->mu);
}

static inline void tally_panic(const sluice_panic_info *info, void *user)
{
    tally *t = user;
    pthread_mutex_lock(&t->mu);
    if (t->nrecords < TALLY_MAX_PANICS) {
        panic_record *r = &t->records[t->nrecords++];
        snprintf(r->pool_name, sizeof r->pool_name, "%s", info->pool_name ? info->pool_name : "(null)");
        snprintf(r->message, sizeof r->message, "%s", info->message ? info->message : "(null)");
        snprintf(r->label, sizeof r->label, "%s", info->task_label ? info->task_label : "");
        r->worker_index = info->worker_index;
        r->signal = info->signal;
        r->frame_count = info->frame_count;
        r->caller_thread = info->caller_thread;
        r->frames_nonnull = info->frames != NULL;
    }
    pthread_mutex_unlock(&t->mu);
    atomic_fetch_add(&t->panics, 1);
}

static inline int tally_init_hook(void *user, unsigned worker_index, void **worker_state)
{
    tally *t = user;
    atomic_fetch_add(&t->inits, 1);
    if (atomic_load(&t->init_fail_every) || atomic_load(&t->init_fail_index) == (int)worker_index) {
        atomic_fetch_add(&t->init_refusals, 1);
        return -1;
    }
    /* A state the task can check: the worker's index, boxed. */
    unsigned *box = malloc(sizeof *box);
    if (!box) {
        return -1;
    }
    *box = worker_index;
    *worker_state = box;
    return 0;
}

static inline void tally_fini_hook(void *user, unsigned worker_index, void *worker_state)
{
    tally *t = user;
    unsigned *box = worker_state;
    if (!box || *box != worker_index) {
        atomic_fetch_add(&t->violations, 1);
    }
    free(box);
    atomic_fetch_add(&t->finis, 1);
}

static inline void tally_event(const sluice_pool_event *ev, void *user)
{
    tally *t = user;
    if ((unsigned)ev->kind < 8) {
        atomic_fetch_add(&t->events_by[ev->kind], 1);
    }
    if (ev->kind == SLUICE_EVENT_WORKER_EXIT) {
        static const char *const reasons[5] = {"expired", "retired", "fault", "init-failed", "shutdown"};
        int i = 0;
        while (i < 5 && !(ev->detail && strcmp(ev->detail, reasons[i]) == 0)) {
            i++;
        }
        atomic_fetch_add(&t->exits_by[i], 1);
    }
}

/* ---- configs and pools --------------------------------------------------- */

/* A config with every handler wired to the tally; hooks off. */
static inline void base_config(sluice_pool_config *cfg, const char *name, unsigned k, size_t cap, tally *t)
{
    sluice_pool_config_init(cfg);
    cfg->name = name;
    cfg->workers = k;
    cfg->queue_capacity = cap;
    cfg->user = t;
    cfg->abandon_handler = tally_abandon;
    cfg->panic_handler = tally_panic;
    cfg->event_handler = tally_event;
}

static inline void with_hooks(sluice_pool_config *cfg)
{
    cfg->worker_init = tally_init_hook;
    cfg->worker_fini = tally_fini_hook;
}

#define CREATE_POOL(cfg, out)                                                                                \
    do {                                                                                                     \
        char create_err_[256];                                                                               \
        sluice_err create_rc_ = sluice_pool_create((cfg), (out), create_err_, sizeof create_err_);           \
        if (create_rc_ != SLUICE_OK) {                                                                       \
            fail_msg("sluice_pool_create: %s: %s", sluice_err_name(create_rc_), create_err_);                \
        }                                                                                                    \
    } while (0)

static inline void stats_print(const char *what, const sluice_pool_stats *s)
{
    print_message("%s: running=%u capacity=%u workers=%u idle=%u waiting=%u depth=%zu/%zu draining=%d "
                  "submitted=%llu completed=%llu failed=%llu panicked=%llu rejected=%llu dropped=%llu "
                  "shed=%llu abandoned=%llu caller_ran=%llu expired=%llu retired=%llu started=%llu "
                  "resizes=%llu init_failures=%llu hwm(workers=%u waiting=%u depth=%zu)\n",
                  what, s->running, s->capacity, s->workers, s->idle, s->waiting, s->queue_depth,
                  s->queue_capacity, (int)s->draining, (unsigned long long)s->submitted,
                  (unsigned long long)s->completed, (unsigned long long)s->failed,
                  (unsigned long long)s->panicked, (unsigned long long)s->rejected,
                  (unsigned long long)s->dropped, (unsigned long long)s->shed,
                  (unsigned long long)s->abandoned, (unsigned long long)s->caller_ran,
                  (unsigned long long)s->expired_workers, (unsigned long long)s->retired_workers,
                  (unsigned long long)s->started_workers, (unsigned long long)s->resize_events,
                  (unsigned long long)s->init_failures, s->workers_hwm, s->waiting_hwm, s->queue_depth_hwm);
}

static inline uint64_t stats_ended(const sluice_pool_stats *s)
{
    return s->completed + s->failed + s->panicked + s->dropped + s->shed + s->abandoned;
}

static inline bool identity_holds(sluice_pool *p, sluice_pool_stats *s)
{
    sluice_pool_stats_get(p, s);
    return s->queue_depth == 0 && s->running == 0 && s->submitted == stats_ended(s);
}

/*
 * ASSERT_IDENTITY(pool) - wait until the pool is quiescent (nothing queued
 * or running) and assert that submitted == completed + failed + panicked +
 * dropped + shed + abandoned exactly. A worker between its pop and the
 * task's start looks quiescent for an instant, so the check is retried
 * until it holds; if it never does, the stats are printed and the test
 * fails.
 */
#define ASSERT_IDENTITY(pool)                                                                                \
    do {                                                                                                     \
        sluice_pool_stats identity_s_;                                                                       \
        uint64_t identity_limit_ = real_now_ns() + SAFETY_NS;                                                \
        while (!identity_holds((pool), &identity_s_)) {                                                      \
            if (real_now_ns() > identity_limit_) {                                                           \
                stats_print("identity broken", &identity_s_);                                                \
                fail_msg("accounting identity does not hold at %s:%d: submitted=%llu ended=%llu", __FILE__,  \
                         __LINE__, (unsigned long long)identity_s_.submitted,                                \
                         (unsigned long long)stats_ended(&identity_s_));                                     \
            }                                                                                                \
            poll_pause();                                                                                    \
        }                                                                                                    \
    } while (0)

/* Stats now, asserting the identity only when the pool is quiescent. */
static inline sluice_pool_stats stats_now(sluice_pool *p)
{
    sluice_pool_stats s;
    sluice_pool_stats_get(p, &s);
    return s;
}

static inline void *noop_thread(void *arg)
{
    return arg;
}

/* Threads in this process (from /proc/self/task), for "nothing left behind".
 * Take the baseline with thread_baseline(): it first starts and joins one
 * thread, so that a sanitizer's helper thread (TSan starts one lazily) is
 * already counted. */
static inline int thread_count(void)
{
    DIR *d = opendir("/proc/self/task");
    if (!d) {
        return -1;
    }
    int n = 0;
    struct dirent *e;
    while ((e = readdir(d)) != NULL) {
        if (e->d_name[0] != '.') {
            n++;
        }
    }
    closedir(d);
    return n;
}

static inline int thread_baseline(void)
{
    pthread_t th;
    if (pthread_create(&th, NULL, noop_thread, NULL) == 0) {
        pthread_join(th, NULL);
    }
    return thread_count();
}

/* ---- common tasks ----------------------------------------------------------- */

/* Counts one run in the tally passed as arg; returns 0. */
static inline int task_count(void *arg)
{
    tally *t = arg;
    atomic_fetch_add(&t->ran, 1);
    return 0;
}

/* Increments the _Atomic uint64_t passed as arg; returns 0. */
static inline int task_inc(void *arg)
{
    atomic_fetch_add((_Atomic uint64_t *)arg, 1);
    return 0;
}

/* Returns 0 without touching anything. */
static inline int task_nop(void *arg)
{
    (void)arg;
    return 0;
}

/* Runs a thread; fails the test if it cannot start. */
#define START_THREAD(th, fn, arg)                                                                            \
    do {                                                                                                     \
        if (pthread_create((th), NULL, (fn), (arg)) != 0) {                                                  \
            fail_msg("pthread_create failed at %s:%d", __FILE__, __LINE__);                                  \
        }                                                                                                    \
    } while (0)

#endif /* SLUICE_TESTS_COMMON_POOL_H */
