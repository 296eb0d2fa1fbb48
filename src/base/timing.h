/*
 * src/base/timing.h - monotonic condition variables, timespec deadlines
 * and the timed-wait helpers every blocking part of Sluice shares.
 *
 * Time in Sluice is a uint64_t of nanoseconds (sluice/clock.h). POSIX
 * waits take a struct timespec on some clock; these helpers convert, add
 * with saturation instead of wrapping (a timeout of UINT64_MAX means "for
 * ever", not "a moment ago"), and wait the way sluice/clock.h promises:
 * with the system clock a real timed wait to the deadline; with any other
 * clock (a fake clock in tests) at most SLUICE_CLOCK_POLL_NS of real time,
 * so callers always loop and re-check their condition and their clock.
 *
 * Header-only (static inline): the core, src/sync, the admin server and
 * the config layer all use them, and internal symbols are hidden in the
 * shared libsluice (see errbuf.h).
 *
 * Locks: none of their own; the wait helpers are called with the caller's
 * mutex held and return with it held.
 */
#ifndef SLUICE_BASE_TIMING_H
#define SLUICE_BASE_TIMING_H

#include <pthread.h>
#include <stdbool.h>
#include <stdint.h>
#include <time.h>

#include "sluice/clock.h"
#include "sluice/ctx.h"

/* ---- arithmetic ------------------------------------------------------------ */

/* a + b, saturating at UINT64_MAX instead of wrapping. */
static inline uint64_t sluice__add_sat(uint64_t a, uint64_t b)
{
    return b > UINT64_MAX - a ? UINT64_MAX : a + b;
}

/* True once `deadline_ns` (0 = none) has come at `now`. UINT64_MAX never
 * comes: it is where a saturated now + duration lands ("UINT64_MAX is as
 * good as no limit"), and a clock can reach it (a fake clock advanced to
 * its end saturates there), which must not turn "never" into "now". */
static inline bool sluice__deadline_passed(uint64_t now, uint64_t deadline_ns)
{
    return deadline_ns != 0 && deadline_ns != UINT64_MAX && now >= deadline_ns;
}

/* The earlier of two deadlines where 0 means "none". */
static inline uint64_t sluice__min_deadline(uint64_t a, uint64_t b)
{
    if (a == 0) {
        return b;
    }
    if (b == 0) {
        return a;
    }
    return a < b ? a : b;
}

/* ---- timespec -------------------------------------------------------------- */

/* ns since the clock's epoch as a timespec (exact for every uint64_t). */
static inline struct timespec sluice__ts_from_ns(uint64_t ns)
{
    struct timespec ts;
    ts.tv_sec = (time_t)(ns / SLUICE_NS_PER_SEC);
    ts.tv_nsec = (long)(ns % SLUICE_NS_PER_SEC);
    return ts;
}

/* A timespec as ns, saturating at UINT64_MAX (negative counts as 0). */
static inline uint64_t sluice__ts_to_ns(const struct timespec *ts)
{
    if (ts->tv_sec < 0) {
        return 0;
    }
    uint64_t sec = (uint64_t)ts->tv_sec;
    if (sec > UINT64_MAX / SLUICE_NS_PER_SEC) {
        return UINT64_MAX;
    }
    return sluice__add_sat(sec * SLUICE_NS_PER_SEC, (uint64_t)ts->tv_nsec);
}

/* The absolute time `delta_ns` from now on POSIX clock `id` (saturating),
 * for pthread_cond_timedwait (CLOCK_MONOTONIC with sluice__cond_init) or
 * sem_timedwait (CLOCK_REALTIME). */
static inline struct timespec sluice__ts_after(clockid_t id, uint64_t delta_ns)
{
    struct timespec now;
    clock_gettime(id, &now);
    return sluice__ts_from_ns(sluice__add_sat(sluice__ts_to_ns(&now), delta_ns));
}

/* ---- condition variables ------------------------------------------------------- */

/* Initialise cv to time its waits on CLOCK_MONOTONIC. Returns 0 or an
 * errno (only ENOMEM/EAGAIN in practice; callers that cannot fail treat a
 * failure as out of memory). */
static inline int sluice__cond_init(pthread_cond_t *cv)
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

/* The deadline of one wait that polls a non-system clock: at most
 * SLUICE_CLOCK_POLL_NS of real time from now, on CLOCK_MONOTONIC. */
static inline struct timespec sluice__poll_deadline(void)
{
    return sluice__ts_after(CLOCK_MONOTONIC, SLUICE_CLOCK_POLL_NS);
}

/*
 * The CLOCK_MONOTONIC timespec to wait until for `deadline_ns` on `clock`
 * (not 0): the deadline itself for the system clock, one poll period for
 * any other clock.
 */
static inline struct timespec sluice__wait_deadline(const sluice_clock *clock, uint64_t deadline_ns)
{
    return sluice_clock_is_system(clock) ? sluice__ts_from_ns(deadline_ns) : sluice__poll_deadline();
}

/*
 * Wait on cv (mu held, cv made by sluice__cond_init) until signalled or
 * until deadline_ns on `clock` (0 = no deadline). Spurious and early
 * returns happen: loop. With a non-system clock the wait is capped at
 * SLUICE_CLOCK_POLL_NS real time.
 */
static inline void sluice__wait_until(const sluice_clock *clock, pthread_cond_t *cv, pthread_mutex_t *mu,
                                      uint64_t deadline_ns)
{
    if (deadline_ns == 0 && sluice_clock_is_system(clock)) {
        pthread_cond_wait(cv, mu);
        return;
    }
    struct timespec ts = deadline_ns ? sluice__wait_deadline(clock, deadline_ns) : sluice__poll_deadline();
    pthread_cond_timedwait(cv, mu, &ts);
}

/*
 * Sleep (holding no lock) until deadline_ns on `clock`: with the system
 * clock one real sleep to the deadline; with any other clock steps of at
 * most SLUICE_CLOCK_POLL_NS of real time, re-reading the clock after
 * each. A signal that interrupts a step only shortens it.
 */
static inline void sluice__sleep_until(const sluice_clock *clock, uint64_t deadline_ns)
{
    for (;;) {
        uint64_t now = sluice_clock_now(clock);
        if (now >= deadline_ns) {
            return;
        }
        uint64_t step = deadline_ns - now;
        if (!sluice_clock_is_system(clock) && step > SLUICE_CLOCK_POLL_NS) {
            step = SLUICE_CLOCK_POLL_NS;
        }
        struct timespec ts = sluice__ts_from_ns(step);
        nanosleep(&ts, NULL);
    }
}

/* True when a and b are the same time scale (both system, or one object). */
static inline bool sluice__same_clock(const sluice_clock *a, const sluice_clock *b)
{
    if (sluice_clock_is_system(a) && sluice_clock_is_system(b)) {
        return true;
    }
    return a == b;
}

/* ---- contexts ------------------------------------------------------------------- */

/*
 * sluice__ctx_peek - the context's cause if it is already cancelled, else
 * SLUICE_OK, without observing its deadline. Unlike sluice_ctx_err it
 * never cancels and so never runs callbacks: safe under a primitive's lock.
 * Callers compare sluice_ctx_deadline() with the clock themselves and call
 * sluice_ctx_err() after dropping their lock. Defined in src/base/ctx.c.
 */
sluice_err sluice__ctx_peek(const sluice_ctx *ctx);

/* True when `deadline_ns` on clk (0 = none) or ctx's deadline (on ctx's
 * own clock) has passed. Reads clocks only; never runs callbacks. */
static inline bool sluice__timed_out(const sluice_clock *clk, uint64_t deadline_ns, const sluice_ctx *ctx)
{
    if (deadline_ns && sluice__deadline_passed(sluice_clock_now(clk), deadline_ns)) {
        return true;
    }
    uint64_t cd = sluice_ctx_deadline(ctx);
    return cd && sluice__deadline_passed(sluice_clock_now(sluice_ctx_clock(ctx)), cd);
}

/*
 * Block on cv (mu held) until signalled, `deadline_ns` on clk, or ctx's
 * deadline. `ctx_wakes` says a cancel callback will signal cv when ctx is
 * cancelled; without it a ctx is polled. A real timed wait is used only
 * when every clock involved is the system clock; otherwise the wait polls
 * (at most SLUICE_CLOCK_POLL_NS). Callers loop and re-check.
 */
static inline void sluice__wait_ctx(const sluice_clock *clk, uint64_t deadline_ns, const sluice_ctx *ctx,
                                    bool ctx_wakes, pthread_cond_t *cv, pthread_mutex_t *mu)
{
    uint64_t cd = sluice_ctx_deadline(ctx);
    bool system = sluice_clock_is_system(clk) && (cd == 0 || sluice_clock_is_system(sluice_ctx_clock(ctx)));
    if (!system || (ctx && !ctx_wakes)) {
        struct timespec ts = sluice__poll_deadline();
        pthread_cond_timedwait(cv, mu, &ts);
        return;
    }
    sluice__wait_until(NULL, cv, mu, sluice__min_deadline(deadline_ns, cd));
}

#endif /* SLUICE_BASE_TIMING_H */
