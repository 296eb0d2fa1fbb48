/*
 * sluice/breaker.h - a circuit breaker: stop calling a downstream that is
 * failing, probe it after a while, resume when it answers again.
 *
 * States:
 *   CLOSED     calls pass; outcomes are recorded. The breaker trips (to
 *              OPEN) on `consecutive_failures` failures in a row, or when
 *              the failure rate over the sliding window reaches
 *              `failure_rate_percent` with at least `minimum_calls` calls in
 *              the window (either rule can be switched off).
 *   OPEN       calls are refused with SLUICE_EOPEN for `open_duration_ns`.
 *   HALF_OPEN  up to `half_open_max_calls` probes pass at once; others are
 *              refused. Any probe failure re-opens the breaker; once
 *              `half_open_max_calls` probes have succeeded it closes (and
 *              the window and counters start afresh).
 * OPEN -> HALF_OPEN happens lazily, on the first allow() (or stats/state
 * read) after the open duration; there is no timer thread.
 *
 * Names and defaults, against the two libraries people know:
 *
 *   Sluice field          default  Resilience4j                   gobreaker
 *   consecutive_failures  5        -                              ReadyToTrip: ConsecutiveFailures > 5
 *   failure_rate_percent  50       failureRateThreshold 50        (a custom ReadyToTrip)
 *   window_type           COUNT    slidingWindowType COUNT_BASED  Interval (clears counts; 0 = never)
 *   window_size           100      slidingWindowSize 100          -
 *   minimum_calls         100      minimumNumberOfCalls 100       -
 *   open_duration_ns      60 s     waitDurationInOpenState 60 s   Timeout 60 s
 *   half_open_max_calls   1        permittedNumberOfCalls...      MaxRequests 1
 *                                  InHalfOpenState 10
 *   half_open_max_wait_ns =open    maxWaitDurationInHalfOpenState -
 *                                  (0 = forever)
 *   on_state_change       NULL     onStateTransition event        OnStateChange
 *   SLUICE_BREAKER_IGNORED -       ignoreExceptions               IsSuccessful(err) == true
 *
 * Differences worth knowing: our consecutive rule trips AT the count (5
 * failures in a row), gobreaker's default trips after more than 5. Our
 * half-open rule is gobreaker's (one failure re-opens; N successes close),
 * not Resilience4j's (a failure rate computed over the N probes). There is
 * no slow-call rate. Results of calls let through in an earlier state
 * (before the breaker changed state) count in the stats but do not move
 * the state machine, as in gobreaker's generations.
 *
 * Example:
 *
 *     sluice_breaker_config cfg;
 *     sluice_breaker_config_init(&cfg);
 *     cfg.name = "payments";
 *     cfg.open_duration_ns = 30 * SLUICE_NS_PER_SEC;
 *     sluice_breaker *br;
 *     if (sluice_breaker_create(&cfg, &br, errbuf, sizeof errbuf)) ...;
 *
 *     uint64_t ticket;
 *     if (sluice_breaker_allow(br, &ticket) == SLUICE_EOPEN)
 *         return serve_fallback();
 *     int rc = call_payments();
 *     sluice_breaker_record(br, ticket, rc == 0 ? SLUICE_BREAKER_SUCCESS : SLUICE_BREAKER_FAILURE);
 *
 * Thread-safety: every call is safe from any thread. Lock order: the
 * breaker's state mutex, then (released) its notification mutex; the
 * state-change callback runs with no state lock held.
 */
#ifndef SLUICE_BREAKER_H
#define SLUICE_BREAKER_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "sluice/clock.h"
#include "sluice/common.h"

typedef struct sluice_breaker sluice_breaker;

/* The states, one row each (see sluice/pool.h on these lists). */
#define SLUICE_BREAKER_STATE_MAP(XX)                                                                         \
    XX(CLOSED, "closed")                                                                                     \
    XX(OPEN, "open")                                                                                         \
    XX(HALF_OPEN, "half_open")

typedef enum sluice_breaker_state {
#define SLUICE_BREAKER_STATE_ENUM_(id, name) SLUICE_BREAKER_##id,
    SLUICE_BREAKER_STATE_MAP(SLUICE_BREAKER_STATE_ENUM_)
#undef SLUICE_BREAKER_STATE_ENUM_
        SLUICE_BREAKER_STATE_COUNT_ /* not a state; keep last */
} sluice_breaker_state;

/* "closed", "open", "half_open"; "unknown" outside the list. The parser
 * takes exactly those (SLUICE_EINVAL otherwise, NULL included; *out
 * unchanged). Thread-safe. */
SLUICE_API const char *sluice_breaker_state_name(sluice_breaker_state state);
SLUICE_API sluice_err sluice_breaker_state_parse(const char *text, sluice_breaker_state *out);

typedef enum sluice_breaker_outcome {
    SLUICE_BREAKER_SUCCESS = 0,
    SLUICE_BREAKER_FAILURE = 1,
    SLUICE_BREAKER_IGNORED = 2, /* neither (a caller's own error): frees a probe slot, counts nowhere else */
} sluice_breaker_outcome;

typedef enum sluice_breaker_window {
    SLUICE_BREAKER_WINDOW_COUNT = 0, /* the last window_size calls */
    SLUICE_BREAKER_WINDOW_TIME = 1,  /* the calls of the last window_size seconds (1 s buckets) */
} sluice_breaker_window;

/* The most window_size allowed (calls or seconds). */
#define SLUICE_BREAKER_WINDOW_MAX 100000
#define SLUICE_BREAKER_NAME_MAX 48

/* Called once per state change, in order, never concurrently with itself,
 * with no breaker lock held. It may call the breaker (a transition it
 * causes is delivered after it returns). It must not destroy the breaker.
 * Keep it short: a thread whose call changes the state while a delivery
 * is in progress waits for that delivery to finish (order is kept). */
typedef void (*sluice_breaker_state_fn)(sluice_breaker *breaker, sluice_breaker_state from,
                                        sluice_breaker_state to, void *user);

typedef struct sluice_breaker_config {
    /* Optional; copied; [A-Za-z0-9_.:-], at most SLUICE_BREAKER_NAME_MAX
     * bytes. NULL = "breaker". The metrics label name="". */
    const char *name;
    /* Trip after this many failures in a row. 0 = default 5. */
    unsigned consecutive_failures;
    bool consecutive_disabled; /* switch the consecutive rule off */
    /* Trip when failures/calls * 100 >= this over the window. 0 = default
     * 50; must be <= 100. */
    double failure_rate_percent;
    bool rate_disabled; /* switch the failure-rate rule off */
    sluice_breaker_window window_type;
    /* Calls (COUNT) or seconds (TIME) in the window. 0 = default 100. */
    unsigned window_size;
    /* No rate decision below this many calls in the window. 0 = default 100
     * (capped at window_size for a COUNT window). */
    unsigned minimum_calls;
    /* How long OPEN lasts before probes are let through. 0 = default 60 s. */
    uint64_t open_duration_ns;
    /* Probes allowed at once in HALF_OPEN, and successes needed to close.
     * 0 = default 1. */
    unsigned half_open_max_calls;
    sluice_breaker_state_fn on_state_change;
    void *user;
    const sluice_clock *clock; /* NULL = system */
    /* How long probes may stay unreported in HALF_OPEN before the breaker
     * gives up on them and re-opens (their late records are then ignored).
     * Guards against a caller that never records a probe, which would
     * otherwise hold HALF_OPEN (refusing everything) forever. 0 = default:
     * open_duration_ns; UINT64_MAX = never (Resilience4j's
     * maxWaitDurationInHalfOpenState = 0). */
    uint64_t half_open_max_wait_ns;
} sluice_breaker_config;

/* sluice_breaker_config_init - zero cfg: every field at its default. */
SLUICE_API void sluice_breaker_config_init(sluice_breaker_config *cfg);

/*
 * sluice_breaker_create - a CLOSED breaker.
 * Returns: SLUICE_OK; SLUICE_EINVAL naming the bad field in errbuf
 * ("failure_rate_percent: must be in (0, 100], got 120"; "window_size: at
 * most 100000"; "consecutive_disabled and rate_disabled: the breaker could
 * never trip"); SLUICE_ENOMEM.
 * Ownership: *out belongs to the caller; free with sluice_breaker_destroy.
 */
SLUICE_API sluice_err sluice_breaker_create(const sluice_breaker_config *cfg, sluice_breaker **out,
                                            char *errbuf, size_t errlen);

/* sluice_breaker_destroy - free it. NULL is a no-op. No call may run or start. */
SLUICE_API void sluice_breaker_destroy(sluice_breaker *breaker);

/*
 * sluice_breaker_allow - ask to make one call.
 * Returns: SLUICE_OK with *ticket set: make the call, then report it with
 * sluice_breaker_record(ticket) exactly once (a HALF_OPEN probe slot stays
 * taken until then). SLUICE_EOPEN: refused (OPEN, or HALF_OPEN with every
 * probe slot taken); counted in `rejected`; do not record.
 * SLUICE_EINVAL: NULL argument.
 */
SLUICE_API sluice_err sluice_breaker_allow(sluice_breaker *breaker, uint64_t *ticket);

/*
 * sluice_breaker_record - report the outcome of a call that allow() let
 * through. A ticket from before the latest state change is counted in the
 * stats but does not move the state machine.
 * Returns: SLUICE_OK; SLUICE_EINVAL (NULL breaker or bad outcome).
 */
SLUICE_API sluice_err sluice_breaker_record(sluice_breaker *breaker, uint64_t ticket,
                                            sluice_breaker_outcome outcome);

/*
 * sluice_breaker_call - allow, run fn(arg), record SUCCESS when it returns
 * 0 and FAILURE otherwise. *fn_result (optional) gets fn's return value.
 * Returns: SLUICE_OK when fn ran (whatever it returned), SLUICE_EOPEN when
 * refused (fn did not run), SLUICE_EINVAL.
 */
SLUICE_API sluice_err sluice_breaker_call(sluice_breaker *breaker, int (*fn)(void *arg), void *arg,
                                          int *fn_result);

/* sluice_breaker_state_get - the current state (applies a due OPEN -> HALF_OPEN). */
SLUICE_API sluice_breaker_state sluice_breaker_state_get(sluice_breaker *breaker);

/*
 * sluice_breaker_force - move to `state` now (operator override: force
 * OPEN to shed a downstream, CLOSED to reset). Counts as a state change
 * (callback, generation). Returns SLUICE_OK or SLUICE_EINVAL.
 */
SLUICE_API sluice_err sluice_breaker_force(sluice_breaker *breaker, sluice_breaker_state state);

typedef struct sluice_breaker_stats {
    /* gauges */
    sluice_breaker_state state;
    uint64_t window_calls; /* calls in the sliding window now */
    uint64_t window_failures;
    double failure_rate_percent;   /* over the window; -1 below minimum_calls */
    unsigned consecutive_failures; /* current run of failures */
    unsigned half_open_in_flight;  /* probes let through, not yet recorded */
    uint64_t open_until_ns;        /* when OPEN ends (clock ns); 0 unless OPEN */
    /* counters: calls by outcome, refusals, transitions */
    uint64_t successes;
    uint64_t failures;
    uint64_t ignored;
    uint64_t rejected;          /* allow() refused with SLUICE_EOPEN */
    uint64_t late_results;      /* records from before a state change */
    uint64_t opened;            /* transitions into OPEN */
    uint64_t half_opened;       /* transitions into HALF_OPEN */
    uint64_t closed;            /* transitions into CLOSED */
    uint64_t half_open_expired; /* of `opened`: probes unreported past half_open_max_wait_ns */
} sluice_breaker_stats;

/* sluice_breaker_stats_get - fill *out. Thread-safe. */
SLUICE_API void sluice_breaker_stats_get(sluice_breaker *breaker, sluice_breaker_stats *out);

/* sluice_breaker_name - the name given at create. */
SLUICE_API const char *sluice_breaker_name(const sluice_breaker *breaker);

#endif /* SLUICE_BREAKER_H */
