/*
 * src/sync/sync_internal.h - helpers shared by the files of src/sync.
 *
 * Timed waits. Every primitive that blocks waits on a condition variable
 * created with CLOCK_MONOTONIC (sluice__sync_cond_init) and bounds each
 * wait with sluice__sync_wait_until(). With the system clock that is one
 * pthread_cond_timedwait to the deadline; with any other clock (a fake
 * clock in tests) the wait lasts at most SLUICE_CLOCK_POLL_NS of real time,
 * so callers always loop and re-check their condition and the clock.
 */
#ifndef SLUICE_SYNC_INTERNAL_H
#define SLUICE_SYNC_INTERNAL_H

#include <pthread.h>
#include <stdbool.h>
#include <stdint.h>
#include <time.h>

#include "sluice/clock.h"

/* Initialise cv to time its waits on CLOCK_MONOTONIC. Returns 0 or an errno. */
static inline int sluice__sync_cond_init(pthread_cond_t *cv)
{
    pthread_condattr_t a;
    int rc = pthread_condattr_init(&a);
    if (rc) {
        return rc;
    }
    pthread_condattr_setclock(&a, CLOCK_MONOTONIC);
    rc = pthread_cond_init(cv, &a);
    pthread_condattr_destroy(&a);
    return rc;
}

/*
 * Wait on cv (mu held) until signalled or until deadline_ns on `clock`
 * (0 = no deadline). Spurious and early returns happen: loop. With a
 * non-system clock the wait is capped at SLUICE_CLOCK_POLL_NS real time.
 */
static inline void sluice__sync_wait_until(const sluice_clock *clock, pthread_cond_t *cv, pthread_mutex_t *mu,
                                           uint64_t deadline_ns)
{
    struct timespec ts;
    if (sluice_clock_is_system(clock)) {
        if (deadline_ns == 0) {
            pthread_cond_wait(cv, mu);
            return;
        }
        ts.tv_sec = (time_t)(deadline_ns / SLUICE_NS_PER_SEC);
        ts.tv_nsec = (long)(deadline_ns % SLUICE_NS_PER_SEC);
    } else {
        clock_gettime(CLOCK_MONOTONIC, &ts);
        uint64_t t = (uint64_t)ts.tv_sec * SLUICE_NS_PER_SEC + (uint64_t)ts.tv_nsec + SLUICE_CLOCK_POLL_NS;
        ts.tv_sec = (time_t)(t / SLUICE_NS_PER_SEC);
        ts.tv_nsec = (long)(t % SLUICE_NS_PER_SEC);
    }
    pthread_cond_timedwait(cv, mu, &ts);
}

/* The earlier of two deadlines where 0 means "none". */
static inline uint64_t sluice__sync_min_deadline(uint64_t a, uint64_t b)
{
    if (a == 0) {
        return b;
    }
    if (b == 0) {
        return a;
    }
    return a < b ? a : b;
}

/* now + delta, saturating instead of wrapping. */
static inline uint64_t sluice__sync_add_sat(uint64_t now, uint64_t delta)
{
    return delta > UINT64_MAX - now ? UINT64_MAX : now + delta;
}

#endif /* SLUICE_SYNC_INTERNAL_H */
