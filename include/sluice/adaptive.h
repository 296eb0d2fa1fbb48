/*
 * sluice/adaptive.h - an adaptive concurrency limiter for a downstream call.
 *
 * A limiter admits at most `limit` calls at once, like a semaphore, but it
 * moves `limit` itself within [min_limit, max_limit] from what it measures:
 * the round-trip time (RTT) of each call, from acquire to release on the
 * limiter's clock, and whether the call was dropped (a timeout, an
 * overload reply). Use it where the right concurrency for a downstream is
 * not known or changes: Little's law says the concurrency a downstream can
 * absorb is its throughput times its latency, and both move.
 *
 * Modes:
 *  - SLUICE_ADAPTIVE_AIMD: additive increase, multiplicative decrease (as
 *    TCP). Every full window of successes (floor(limit) of them, counted
 *    only while the limiter is in use: the call was admitted with at least
 *    half the limit in flight) adds one; a drop, or a success slower than
 *    `rtt_threshold_ns`, multiplies the limit by `backoff` - at most once
 *    per window: calls admitted before the last decrease cannot cause
 *    another one.
 *  - SLUICE_ADAPTIVE_GRADIENT2: the gradient of Netflix's concurrency-limits.
 *    At the end of each window (floor(limit) samples) the window's mean RTT
 *    (short-term) is compared with the long-term no-load RTT:
 *        gradient  = clamp(tolerance * long_rtt / short_rtt, 0.5, 1.0)
 *        new       = limit * gradient + queue_size
 *        limit     = limit * (1 - smoothing) + new * smoothing
 *    Under a downstream whose latency grows with concurrency this settles at
 *    about tolerance * K + queue_size, K = throughput * no-load RTT (the
 *    Little's-law K), without oscillating. The long-term RTT falls at once
 *    to a faster window and is re-measured every `probe_interval` windows
 *    by a probe window held at min_limit (as Envoy's minRTT recalculation);
 *    probe results are smoothed (each moves it half way). Without probes a
 *    long-term average follows the congestion it causes and the limit
 *    creeps to max_limit (see docs/RATIONALE.md).
 *  - SLUICE_ADAPTIVE_VEGAS: TCP Vegas as in Netflix's concurrency-limits,
 *    on gradient2's windows and no-load RTT (probes included). It
 *    estimates the calls queued downstream, queued = limit * (1 -
 *    long_rtt / short_rtt), and with lg = max(1, log10(limit)): grows by
 *    lg while queued < 3 lg (by 6 lg while queued <= lg), shrinks by lg
 *    when queued > 6 lg, and holds in between; each move is smoothed by
 *    `smoothing`. It settles at about K + 3..6 lg calls, K the Little's-law
 *    K, with the band between as hysteresis.
 * Dropped calls in gradient2 and vegas multiply the limit by `backoff` as
 * in AIMD. Windows fed by sluice_adaptive_observe (a pool's controller)
 * add rules of their own, which tell a slower downstream from a congested
 * one and follow the caller's demand: see there.
 *
 * Example (wrapping a downstream call):
 *
 *     sluice_adaptive_config cfg;
 *     sluice_adaptive_config_init(&cfg);
 *     cfg.name = "billing";
 *     cfg.mode = SLUICE_ADAPTIVE_GRADIENT2;
 *     cfg.min_limit = 2; cfg.max_limit = 200;
 *     sluice_adaptive *lim;
 *     if (sluice_adaptive_create(&cfg, &lim, errbuf, sizeof errbuf)) ...;
 *
 *     sluice_adaptive_token tok;
 *     sluice_err err = sluice_adaptive_acquire_until(lim, req_ctx, deadline, &tok);
 *     if (err) return err;                       // ETIMEDOUT, ECANCELED, ECLOSED
 *     int rc = call_billing(req);
 *     sluice_adaptive_release(lim, &tok, rc == 0 ? SLUICE_ADAPTIVE_SUCCESS
 *                                                : rc == BUSY ? SLUICE_ADAPTIVE_DROPPED
 *                                                             : SLUICE_ADAPTIVE_IGNORE);
 *
 * Lock order: one mutex per limiter; it is never held while user code
 * (context callbacks) runs and never nests with another lock.
 */
#ifndef SLUICE_ADAPTIVE_H
#define SLUICE_ADAPTIVE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "sluice/clock.h"
#include "sluice/common.h"
#include "sluice/ctx.h"

typedef struct sluice_adaptive sluice_adaptive;

#define SLUICE_ADAPTIVE_NAME_MAX 48
/* The largest max_limit accepted. */
#define SLUICE_ADAPTIVE_LIMIT_MAX 1000000u

typedef enum sluice_adaptive_mode {
    SLUICE_ADAPTIVE_AIMD = 0,
    SLUICE_ADAPTIVE_GRADIENT2 = 1,
    SLUICE_ADAPTIVE_VEGAS = 2,
} sluice_adaptive_mode;

/* What a call came to, given at release. */
typedef enum sluice_adaptive_outcome {
    SLUICE_ADAPTIVE_SUCCESS = 0, /* answered: its RTT is a sample */
    SLUICE_ADAPTIVE_DROPPED = 1, /* timed out or refused for load: back off */
    SLUICE_ADAPTIVE_IGNORE = 2,  /* says nothing about load (a 4xx, a bug): no sample */
} sluice_adaptive_outcome;

typedef struct sluice_adaptive_config {
    /* Optional; copied. At most SLUICE_ADAPTIVE_NAME_MAX bytes of
     * [A-Za-z0-9_.:-]; NULL = "adaptive". */
    const char *name;
    sluice_adaptive_mode mode;
    /* Bounds of the limit. min_limit: 0 = 1. max_limit: 0 = 1000; at most
     * SLUICE_ADAPTIVE_LIMIT_MAX; must be >= min_limit. */
    uint32_t min_limit;
    uint32_t max_limit;
    /* The limit at create: 0 = min(20, max_limit), raised to min_limit;
     * must lie in [min_limit, max_limit] when given. */
    uint32_t initial_limit;
    /* Multiplier on a drop, in (0, 1): 0 = 0.9. */
    double backoff;
    /* AIMD: a success whose RTT exceeds this counts as a drop. 0 = no
     * threshold per call; fed by observe, 0 means tolerance x the no-load
     * RTT, tested by a probe first (see observe). UINT64_MAX is the same
     * as none in practice. */
    uint64_t rtt_threshold_ns;
    /* gradient2: how much slower than the long-term RTT a window may be
     * before the limit shrinks; >= 1.0. 0 = 1.5. Fed by observe (all
     * modes), also the rise that starts a probe, and the growth a window
     * toward demand may make (see observe). */
    double tolerance;
    /* gradient2: calls added beyond limit * gradient each window; >= 0.
     * 0 = 4 (use a tiny positive value for "none"). */
    double queue_size;
    /* gradient2 and vegas: weight of each window's new limit, in (0, 1].
     * 0 = 0.2. */
    double smoothing;
    /* gradient2 and vegas, per call: windows between probes of the no-load
     * RTT; 0 = 50. A probe window admits min_limit calls for
     * max(min_limit, 4) samples, so it costs about 1/probe_interval of the
     * throughput. Fed by sluice_adaptive_observe (all modes): no periodic
     * probe; the most windows between two probes that a high RTT starts
     * (see observe). */
    uint32_t probe_interval;
    /* The clock for RTTs and deadlines; NULL = system. */
    const sluice_clock *clock;
} sluice_adaptive_config;

/*
 * A permit from acquire, given back to release. The caller owns it (on its
 * stack, in its request); the fields are the limiter's. Release clears it,
 * so a second release of the same token is refused.
 */
typedef struct sluice_adaptive_token {
    const sluice_adaptive *owner; /* NULL when not held */
    uint64_t start_ns;            /* acquire time on the limiter's clock */
    uint64_t epoch;               /* the decrease epoch it was admitted in */
    uint64_t probe;               /* the probe it belongs to, or 0 */
    uint32_t inflight;            /* calls in flight when admitted, itself included */
} sluice_adaptive_token;

/* sluice_adaptive_config_init - zero cfg: AIMD with every default. */
SLUICE_API void sluice_adaptive_config_init(sluice_adaptive_config *cfg);

/*
 * sluice_adaptive_create - a limiter at its initial limit, nothing in flight.
 * Returns: SLUICE_OK; SLUICE_EINVAL naming the bad field in errbuf
 * ("max_limit: must be >= min_limit"); SLUICE_ENOMEM.
 * Ownership: *out belongs to the caller; free with sluice_adaptive_destroy.
 * errbuf: optional (NULL, 0), NUL-terminated when given.
 */
SLUICE_API sluice_err sluice_adaptive_create(const sluice_adaptive_config *cfg, sluice_adaptive **out,
                                             char *errbuf, size_t errlen);

/*
 * sluice_adaptive_destroy - close (waiters return SLUICE_ECLOSED), wait until
 * every thread blocked in acquire has left, and free. NULL is a no-op.
 * Tokens still held become invalid: do not release them afterwards.
 * Thread-safety: no call may start on lim once destroy has begun.
 */
SLUICE_API void sluice_adaptive_destroy(sluice_adaptive *lim);

/*
 * sluice_adaptive_try_acquire - admit a call if fewer than the limit are in
 * flight, without waiting; fill *tok.
 * Returns: SLUICE_OK (release *tok later, exactly once); SLUICE_EAGAIN (at
 * the limit; counted in rejected); SLUICE_ECLOSED; SLUICE_EINVAL (NULL
 * argument). Thread-safety: safe from any thread. Never blocks.
 */
SLUICE_API sluice_err sluice_adaptive_try_acquire(sluice_adaptive *lim, sluice_adaptive_token *tok);

/*
 * sluice_adaptive_acquire_until - admit a call, waiting until a slot frees
 * (a release, or the limit growing), ctx is done, deadline_ns passes on the
 * limiter's clock (0 = no deadline; UINT64_MAX = none in practice), or the
 * limiter is closed. ctx may be NULL; its deadline applies too.
 * Returns: SLUICE_OK (*tok is held); SLUICE_ETIMEDOUT; ctx's cause
 * (SLUICE_ECANCELED); SLUICE_ECLOSED; SLUICE_EINVAL (NULL lim or tok).
 * A done ctx or a passed deadline fails the call even when a slot is free.
 * Waiters are not served in FIFO order: a try_acquire may take a slot that
 * a waiter was woken for. A cancel is seen within SLUICE_CLOCK_POLL_NS.
 * Thread-safety: safe from any thread. Deadlock hazard: a thread that
 * holds tokens and waits for more can wait forever when the limit shrinks
 * below what it holds; give every acquire a deadline in services.
 */
SLUICE_API sluice_err sluice_adaptive_acquire_until(sluice_adaptive *lim, sluice_ctx *ctx,
                                                    uint64_t deadline_ns, sluice_adaptive_token *tok);

/*
 * sluice_adaptive_release - end the call *tok stands for: measure its RTT
 * (now - tok->start_ns), feed the outcome to the algorithm, free its slot,
 * and clear *tok.
 * Returns: SLUICE_OK; SLUICE_EINVAL when lim or tok is NULL, tok is not held
 * from this limiter (never acquired, or already released: nothing changes),
 * or outcome is not one of the enum. Works after close.
 * Thread-safety: safe from any thread (the releaser need not be the
 * acquirer), but one token must not be released by two threads at once.
 */
SLUICE_API sluice_err sluice_adaptive_release(sluice_adaptive *lim, sluice_adaptive_token *tok,
                                              sluice_adaptive_outcome outcome);

/* sluice_adaptive_limit_get - the limit now (calls admitted at once). During
 * a per-call probe window this is min_limit; during one started by
 * sluice_adaptive_observe, half the estimate (at least min_limit).
 * Thread-safe. */
SLUICE_API uint32_t sluice_adaptive_limit_get(sluice_adaptive *lim);

/*
 * sluice_adaptive_close - refuse new acquires with SLUICE_ECLOSED and wake
 * every waiter with it. Releases still work. Idempotent.
 */
SLUICE_API void sluice_adaptive_close(sluice_adaptive *lim);

/*
 * A window measured by the caller, for sluice_adaptive_observe: calls that
 * ended in it, their mean RTT, and whether the limit was in use.
 */
typedef struct sluice_adaptive_window {
    uint64_t successes;   /* calls that answered (their RTTs make the mean) */
    uint64_t drops;       /* calls dropped for load (timeouts, refusals, shed) */
    uint64_t mean_rtt_ns; /* mean RTT of the successes; ignored when there were none */
    bool in_use;          /* the limit was the bound - demand bound it (work waited or was refused,
                             or it ran nearly full; the pool controller: util_high): it may grow */
    /* The concurrency the caller's demand needs (Little's law: offered
     * rate x mean RTT, with any headroom), or 0 = not known. When given,
     * the limit never grows past it, grows toward it at once while in use
     * and un-congested, and falls to it when not in use (see observe). */
    double demand;
} sluice_adaptive_window;

/*
 * sluice_adaptive_observe - feed one window that the caller measured in
 * aggregate (the pool controller, sluice/control.h, reads it from a pool's
 * histograms) instead of per call: the mode's rule runs once on it.
 * drops > 0 backs off by `backoff` once (and ends a probe without a
 * measurement); AIMD with rtt_threshold_ns backs off when the mean RTT
 * exceeds it; AIMD adds successes / limit when in_use; gradient2 and vegas
 * treat it as one window with its mean RTT. A window with no successes
 * and no drops changes nothing. On top of the modes' rules, windows have
 * three of their own (the per-call path has none of them):
 *  - A rise is tested before it is obeyed. A window whose mean RTT the
 *    mode would shrink for (gradient2 and AIMD without rtt_threshold_ns:
 *    over tolerance x the no-load RTT; vegas: more than beta queued)
 *    starts a probe at once instead: the limit is half the estimate (at
 *    least min_limit; the caller should run at it) for the next window,
 *    and the estimate does not move. That next window is the probe's
 *    measurement p, against the window before it, s. p >= 0.8 s (halving
 *    the concurrency did not lower the RTT: the downstream got slower, it
 *    is not congested by us): the no-load RTT becomes p, counted in
 *    `rebases`, and nothing backs off - unless s is still high against the
 *    new no-load RTT (vegas a little past the knee), then as below.
 *    p < 0.8 s (congestion): the no-load RTT becomes the lower of it and
 *    p, counted in `congestion_verdicts`, and the estimate drops at once
 *    (at most by half) to the mode's steady state for the capacity the
 *    window showed, C = limit x no-load / s: gradient2 tolerance x C +
 *    queue_size, vegas C + 4.5 lg C, AIMD C. A
 *    verdict that confirms the no-load RTT doubles the windows before a
 *    high RTT may start the next probe (2, 4, ... up to probe_interval;
 *    meanwhile the mode's rule answers high RTTs); one that lowered it by
 *    more than a tenth probes again after 2 windows, high RTT or not, until
 *    the estimate stops moving. There is no periodic probe. A probe begun
 *    by the per-call path, if any, ends with the per-call rule.
 *  - demand (when > 0) bounds growth: no rule grows the limit past it or
 *    toward it while it is within 1 + 2% of the limit; and a limit in use,
 *    under demand and clearly un-congested (RTT within half the tolerance
 *    of the no-load RTT; vegas: at most lg queued) grows at once toward
 *    it, by up to tolerance x no-load / RTT times a window (never more
 *    than doubling: the growth that would keep the RTT within tolerance
 *    were all of it to queue).
 *  - A limit over demand by more than half a call and 2%, not in use and
 *    not congested, falls to demand at once.
 * With demand 0 and RTTs that stay within tolerance the rules are those of
 * the modes alone.
 * Returns SLUICE_OK; SLUICE_EINVAL when lim or w is NULL.
 * Thread-safety: safe from any thread, also alongside acquire/release
 * (both feed the same estimate).
 */
SLUICE_API sluice_err sluice_adaptive_observe(sluice_adaptive *lim, const sluice_adaptive_window *w);

/*
 * sluice_adaptive_limit_set - set the limit by hand (an operator's
 * override, or a controller adopting a value it was given); the algorithm
 * goes on from there, and calls admitted before it cannot back it off.
 * Returns SLUICE_OK; SLUICE_EINVAL when lim is NULL or limit lies outside
 * [min_limit, max_limit] (nothing changes). Thread-safe.
 */
SLUICE_API sluice_err sluice_adaptive_limit_set(sluice_adaptive *lim, uint32_t limit);

/* A snapshot: gauges are values now, counters totals since create. */
typedef struct sluice_adaptive_stats {
    /* gauges */
    uint32_t limit;        /* as sluice_adaptive_limit_get */
    double limit_estimate; /* the algorithm's fractional limit (outside probes) */
    uint32_t inflight;
    unsigned waiters;
    bool probing;          /* in a probe window */
    uint64_t long_rtt_ns;  /* the no-load RTT estimate (0 = none yet; AIMD: only when fed by observe) */
    uint64_t short_rtt_ns; /* the mean RTT of the last complete window (0 = none yet) */
    bool closed;
    /* counters */
    uint64_t acquired;  /* admitted calls */
    uint64_t rejected;  /* try_acquire refused with SLUICE_EAGAIN */
    uint64_t timeouts;  /* acquire_until ended SLUICE_ETIMEDOUT */
    uint64_t canceled;  /* acquire_until ended with another ctx cause */
    uint64_t successes; /* releases by outcome */
    uint64_t drops;
    uint64_t ignored;
    uint64_t windows;             /* windows completed (probe windows included) */
    uint64_t probes;              /* probe windows completed */
    uint64_t decisions_up;        /* times the (integer) limit went up */
    uint64_t decisions_down;      /* times it went down (probes not counted) */
    uint64_t rebases;             /* window probes whose RTT did not fall with the limit:
                                     the no-load RTT re-based to it (a slower downstream) */
    uint64_t congestion_verdicts; /* window probes whose RTT fell with the limit (congestion) */
} sluice_adaptive_stats;

/* sluice_adaptive_stats_get - fill *out. Thread-safe (takes the lock briefly). */
SLUICE_API void sluice_adaptive_stats_get(sluice_adaptive *lim, sluice_adaptive_stats *out);

/* sluice_adaptive_name - the name given at create ("adaptive" by default). */
SLUICE_API const char *sluice_adaptive_name(const sluice_adaptive *lim);

#endif /* SLUICE_ADAPTIVE_H */
