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
#include "sluice/ctx.h"
#include "sluice/pool.h"

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

/* *ts = SLUICE_CLOCK_POLL_NS from now on CLOCK_MONOTONIC: the real-time
 * bound of one wait that polls (a non-system clock, an unwired ctx). */
static inline void sluice__sync_poll_deadline(struct timespec *ts)
{
    clock_gettime(CLOCK_MONOTONIC, ts);
    uint64_t t = (uint64_t)ts->tv_sec * SLUICE_NS_PER_SEC + (uint64_t)ts->tv_nsec + SLUICE_CLOCK_POLL_NS;
    ts->tv_sec = (time_t)(t / SLUICE_NS_PER_SEC);
    ts->tv_nsec = (long)(t % SLUICE_NS_PER_SEC);
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
        sluice__sync_poll_deadline(&ts);
    }
    pthread_cond_timedwait(cv, mu, &ts);
}

/* True when `deadline_ns` on clk (0 = none) or ctx's deadline (on ctx's
 * own clock) has passed. Reads clocks only; never runs callbacks. */
static inline bool sluice__sync_timed_out(const sluice_clock *clk, uint64_t deadline_ns,
                                          const sluice_ctx *ctx)
{
    if (deadline_ns && sluice_clock_now(clk) >= deadline_ns) {
        return true;
    }
    uint64_t cd = sluice_ctx_deadline(ctx);
    return cd && sluice_clock_now(sluice_ctx_clock(ctx)) >= cd;
}

/*
 * Block on cv (mu held) until signalled, `deadline_ns` on clk, or ctx's
 * deadline. `ctx_wakes` says a cancel callback will signal cv when ctx is
 * cancelled; without it a ctx is polled. A real timed wait is used only
 * when every clock involved is the system clock; otherwise the wait polls
 * (at most SLUICE_CLOCK_POLL_NS). Callers loop and re-check.
 */
static inline void sluice__sync_wait_ctx(const sluice_clock *clk, uint64_t deadline_ns, const sluice_ctx *ctx,
                                         bool ctx_wakes, pthread_cond_t *cv, pthread_mutex_t *mu)
{
    uint64_t cd = sluice_ctx_deadline(ctx);
    bool system = sluice_clock_is_system(clk) && (cd == 0 || sluice_clock_is_system(sluice_ctx_clock(ctx)));
    if (!system || (ctx && !ctx_wakes)) {
        struct timespec ts;
        sluice__sync_poll_deadline(&ts);
        pthread_cond_timedwait(cv, mu, &ts);
        return;
    }
    uint64_t until = deadline_ns;
    if (cd && (until == 0 || cd < until)) {
        until = cd;
    }
    sluice__sync_wait_until(NULL, cv, mu, until);
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

/*
 * sluice__ctx_peek - the context's cause if it is already cancelled, else
 * SLUICE_OK, without observing its deadline. Unlike sluice_ctx_err it
 * never cancels and so never runs callbacks: safe under a primitive's lock.
 * Callers compare sluice_ctx_deadline() with the clock themselves and call
 * sluice_ctx_err() after dropping their lock.
 */
sluice_err sluice__ctx_peek(const sluice_ctx *ctx);

/* True when a and b are the same time scale (both system, or one object). */
static inline bool sluice__sync_same_clock(const sluice_clock *a, const sluice_clock *b)
{
    if (sluice_clock_is_system(a) && sluice_clock_is_system(b)) {
        return true;
    }
    return a == b;
}

/* ---- util.c ----------------------------------------------------------- */

/*
 * sluice__sync_sleep_until - with `mu` held, sleep until `until_ns` on clk
 * or until ctx is done (a cancel wakes it at once through a ctx callback;
 * mu is released around registering and removing it). mu is held again on
 * return. Returns SLUICE_OK when until_ns came, else ctx's error
 * (SLUICE_ETIMEDOUT for its deadline). Does not call sluice_ctx_err (the
 * caller does, after dropping mu, to run callbacks of a passed deadline).
 */
sluice_err sluice__sync_sleep_until(pthread_mutex_t *mu, const sluice_clock *clk, uint64_t until_ns,
                                    sluice_ctx *ctx);

/* snprintf into an optional error buffer. */
void sluice__sync_errf(char *errbuf, size_t errlen, const char *fmt, ...) SLUICE_PRINTF(3, 4);

/*
 * Copy a primitive's name into dst (cap bytes incl. NUL), or `dflt` when
 * name is NULL. Names are 1..cap-1 bytes of [A-Za-z0-9_.:-] so they are
 * safe as metric label values and in logs.
 * Returns SLUICE_OK or SLUICE_EINVAL with "name: ..." in errbuf.
 */
sluice_err sluice__sync_name_copy(char *dst, size_t cap, const char *name, const char *dflt, char *errbuf,
                                  size_t errlen);

/* A histogram guarded by its owner's lock (not atomic). */
typedef struct sluice__sync_hist {
    size_t nbounds;
    double bounds[SLUICE_HIST_MAX_BUCKETS];
    uint64_t bounds_ns[SLUICE_HIST_MAX_BUCKETS];
    uint64_t counts[SLUICE_HIST_MAX_BUCKETS + 1];
    uint64_t count;
    uint64_t sum_ns;
} sluice__sync_hist;

/* Set the bounds (NULL/0: the pool default). SLUICE_EINVAL with
 * "<field>: ..." in errbuf when they are not strictly increasing, finite
 * and positive, or too many. */
sluice_err sluice__sync_hist_init(sluice__sync_hist *h, const double *bounds, size_t n, const char *field,
                                  char *errbuf, size_t errlen);
void sluice__sync_hist_observe(sluice__sync_hist *h, uint64_t ns);
void sluice__sync_hist_snapshot(const sluice__sync_hist *h, sluice_histogram *out);

/* ---- token buckets (limiter.c), guarded by their owner's lock --------- */

typedef struct sluice_reservation sluice_reservation;

typedef struct sluice__tb {
    double tokens;    /* may be negative: debt to reservations */
    uint64_t last_ns; /* when tokens was last brought up to date */
} sluice__tb;

void sluice__tb_init(sluice__tb *tb, uint64_t burst, uint64_t now);
void sluice__tb_advance(sluice__tb *tb, double rate, uint64_t burst, uint64_t now);
bool sluice__tb_allow(sluice__tb *tb, double rate, uint64_t burst, uint64_t n, uint64_t now);
sluice_err sluice__tb_reserve(sluice__tb *tb, double rate, uint64_t burst, uint64_t n, uint64_t now,
                              sluice_reservation *r);
void sluice__tb_cancel(sluice__tb *tb, double rate, uint64_t burst, const sluice_reservation *r,
                       uint64_t now);
sluice_err sluice__limiter_check(double rate, uint64_t burst, char *errbuf, size_t errlen);

#endif /* SLUICE_SYNC_INTERNAL_H */
