/*
 * sluice/control.h - the control loops of one pool: an adaptive
 * concurrency limit, the auto-tune loop, and scheduled synthetic probes.
 *
 * A pool's K is set by its owner and stays put. A controller watches the
 * pool from outside, once per `interval` on the pool's clock, and moves K
 * with sluice_pool_resize within [min_limit, max_limit]:
 *
 *  - the limit: mode AIMD, GRADIENT2 or VEGAS runs the sync limiter's
 *    algorithm (sluice/adaptive.h) on each interval's window through
 *    sluice_adaptive_observe: the mean task run time from the pool's
 *    run-time histogram, the successes, and failed or panicked tasks as
 *    drops (a task that calls a downstream should fail on a timeout or an
 *    overload reply). The window is "in use" (the limit may grow) when
 *    demand binds K: utilisation at or above util_high, work dropped, shed
 *    or rejected, or more than K tasks queued or added to the queue since
 *    the last window. Its demand is the Little's-law K with headroom (as
 *    auto-tune's), so the limit grows toward it at once while the
 *    downstream is not congested, never past it, and falls to it when the
 *    pool does not use the limit. A run time that rises is tested first
 *    (a probe window at half K, held until the tasks admitted above it
 *    have had 1.5 mean run times to finish, so it can last more than one
 *    interval when run times approach the interval): if it did not fall
 *    with K the downstream got slower and the limiter re-bases; if it
 *    did, that is congestion and K drops to the limiter's steady state for
 *    the capacity measured. Windows of a few dozen completions are noisy:
 *    give the interval several run times and a few hundred completions.
 *    So after a downstream slows, K follows Little's law; when the
 *    downstream is the bottleneck, K stays near what it serves at once.
 *    FIXED leaves K alone unless auto-tune moves it.
 *  - auto-tune (the guide's P42): with `autotune`, each change is governed.
 *    In FIXED mode the loop proposes the change itself: utilisation (the
 *    mean tasks running over K, by Little's law from the histogram) at or
 *    above util_high, or work dropped/shed/rejected, grows K; at or below
 *    util_low with nothing dropped and nothing queued shrinks it, and a
 *    shrink once begun goes on (a step a cooldown) while nothing is
 *    dropped and the queue does not grow. The size
 *    of the step is what Little's law asks for, K = offered rate x mean run
 *    time x (1 + headroom), at most max_step a change. In the other modes
 *    the limiter proposes and a growth is only made while the pool is
 *    busy (the same up trigger). Every mode then obeys: a cooldown after
 *    each change, a change smaller than hysteresis x K (or max_step, if
 *    that is less) is not made, the
 *    band between util_low and util_high moves nothing, and a change is
 *    judged after its cooldown: if the run-time p99 grew by more than
 *    revert_p99_ratio over the window that led to it (growths only: a
 *    smaller K cannot slow a task's run), or the failure ratio grew by more
 *    than revert_failure_delta, K goes back to the last good K and holds
 *    there (no growth) for four cooldowns.
 *  - pinning: a K set by anyone else (sluice_pool_resize by an operator, a
 *    config reload, sluice_pool_control_pin) pins the pool: the controller
 *    sees K differ from the K it last set and makes no decision until
 *    sluice_pool_control_release. A resize to the very K the controller
 *    last set is not noticed (it changes nothing).
 *  - probes (the guide's P40): every probe_every a no-op task is submitted
 *    (never to a full queue or a draining pool: that is a failure, said as
 *    such) and must have run within probe_timeout; probe_failures_unhealthy
 *    failures in a row mark the pool unhealthy until a probe succeeds.
 *
 * Every decision is a log line with its reason and inputs
 * ("pool=email autotune up 10->18 reason=utilisation util=0.98 ...") and is
 * counted by direction and reason (sluice_pool_control_stats); a service
 * exports them as pool_autotune_decisions_total{direction,reason},
 * pool_concurrency_limit, pool_probe_duration_seconds and
 * pool_probe_failures_total (sluice_service_set_control).
 *
 * Cost: nothing in the pool's hot path. The controller reads the stats and
 * histogram snapshots once per interval (the same calls a scrape makes).
 * The run-time histogram must be on (timing not disabled); when timing
 * samples 1 task in N the controller scales by the completions it counts.
 *
 * Driving it: sluice_pool_control_tick runs what is due at the clock's
 * now and says when to call again; a service's control thread calls it
 * (sluice_service_set_control), a test calls it after advancing a fake
 * clock. A controller never starts a thread.
 *
 * Lock order: the controller's mutex -> the pool's locks (stats, resize,
 * submit). The probe task touches only its own probe object, so a worker
 * never waits for the controller.
 */
#ifndef SLUICE_CONTROL_H
#define SLUICE_CONTROL_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "sluice/clock.h"
#include "sluice/common.h"
#include "sluice/pool.h"

typedef struct sluice_pool_control sluice_pool_control;

typedef enum sluice_control_mode {
    SLUICE_CONTROL_FIXED = 0,
    SLUICE_CONTROL_AIMD,
    SLUICE_CONTROL_GRADIENT2,
    SLUICE_CONTROL_VEGAS,
    SLUICE_CONTROL_MODE_COUNT_ /* not a mode; keep last */
} sluice_control_mode;

/* "fixed", "aimd", "gradient2", "vegas"; "unknown" out of range. Static. */
SLUICE_API const char *sluice_control_mode_name(sluice_control_mode mode);
/* Parse one of those names. Returns SLUICE_OK or SLUICE_EINVAL. */
SLUICE_API sluice_err sluice_control_mode_parse(const char *text, sluice_control_mode *out);

/* Why K moved (the `reason` label). */
typedef enum sluice_control_reason {
    SLUICE_CONTROL_REASON_UTILISATION = 0, /* auto-tune: utilisation over util_high or under util_low */
    SLUICE_CONTROL_REASON_DROPS,           /* auto-tune: work was dropped, shed or rejected */
    SLUICE_CONTROL_REASON_LIMITER,         /* the limit's algorithm moved */
    SLUICE_CONTROL_REASON_REVERT,          /* p99 or failures got worse: back to the last good K */
    SLUICE_CONTROL_REASON_CLAMP,           /* K was outside [min_limit, max_limit] */
    SLUICE_CONTROL_REASON_PIN,             /* set by hand (resize, reload, pin): pinned */
    SLUICE_CONTROL_REASON_RELEASE,         /* the pin was released */
    SLUICE_CONTROL_REASON_COUNT_           /* not a reason; keep last */
} sluice_control_reason;

/* Which way (the `direction` label): "up", "down", "hold" (pin, release). */
typedef enum sluice_control_direction {
    SLUICE_CONTROL_UP = 0,
    SLUICE_CONTROL_DOWN,
    SLUICE_CONTROL_HOLD,
    SLUICE_CONTROL_DIRECTION_COUNT_ /* keep last */
} sluice_control_direction;

SLUICE_API const char *sluice_control_reason_name(sluice_control_reason reason);
SLUICE_API const char *sluice_control_direction_name(sluice_control_direction direction);

/*
 * What the controller reads and moves. NULL in the config = the pool
 * itself (sluice_pool_stats_get, the SLUICE_HIST_TASK histogram,
 * sluice_pool_resize). A simulation or a test supplies its own to run the
 * same controller on a model pool in simulated time (sluice-bench's
 * convergence workload does).
 */
typedef struct sluice_control_source {
    void (*stats)(void *user, sluice_pool_stats *out);
    void (*histogram)(void *user, sluice_histogram *out); /* task run time, cumulative since start */
    sluice_err (*resize)(void *user, unsigned k);
    void *user;
} sluice_control_source;

/* Probe histogram bounds (seconds) for pool_probe_duration_seconds. */
#define SLUICE_CONTROL_PROBE_BUCKETS 12

typedef struct sluice_pool_control_config {
    sluice_control_mode mode;
    /* Bounds of K. min_limit: 0 = max(1, the pool's min_workers); must be
     * >= min_workers (resize refuses less). max_limit: 0 = the pool's K at
     * create (refused, saying so, when that is above the maximum: set it);
     * at most SLUICE_ADAPTIVE_LIMIT_MAX; >= min_limit. A K outside
     * the bounds is clamped at the first tick (reason clamp). */
    unsigned min_limit;
    unsigned max_limit;
    /* Time between decisions, on the clock; 0 = 1 s. At most 1 hour. */
    uint64_t interval_ns;

    /* The limiter (AIMD, GRADIENT2, VEGAS); 0 = the defaults of
     * sluice_adaptive_config, which says what each means (for a window fed
     * by sluice_adaptive_observe, as a controller's are). */
    double backoff;
    double tolerance;
    double smoothing;
    uint32_t probe_interval; /* windows between no-load RTT probes */
    uint64_t rtt_threshold_ns;

    /* Auto-tune. */
    bool autotune;
    double util_high;            /* 0 = 0.9; in (0, 1] */
    double util_low;             /* 0 = 0.3; in [0, util_high) - use a tiny value for "never shrink" */
    uint64_t cooldown_ns;        /* after a change; 0 = 2 intervals; at most 1 hour */
    unsigned max_step;           /* most K moves in one change; 0 = 8 */
    double hysteresis;           /* smallest change, as a fraction of K (at least 1 worker, at most
                                    max_step); 0 = 0.1; < 1 */
    double headroom;             /* over the Little's-law K (auto-tune's target, the limiters'
                                    demand); 0 = 0.05; in [0, 1] */
    double revert_p99_ratio;     /* 0 = 1.5; > 1 */
    double revert_failure_delta; /* 0 = 0.05; in (0, 1] */

    /* Probes: every probe_every_ns (0 = no probes; at least 1 ms; no
     * maximum: UINT64_MAX sends the first and no other), each with
     * probe_timeout_ns to run (0 = 5 s; UINT64_MAX = never timed out;
     * <= probe_every_ns is not required: a probe in flight delays the
     * next). */
    uint64_t probe_every_ns;
    uint64_t probe_timeout_ns;
    unsigned probe_failures_unhealthy; /* failures in a row that make it unhealthy; 0 = 1 */
    /* An unhealthy probe also turns the service not ready (the admin's
     * /health/ready). */
    bool probe_affects_ready;

    /* Decision and probe lines (no trailing newline); NULL = none. Called
     * with the controller's lock held, on the ticking thread: it must not
     * call back into the controller. */
    void (*log)(void *user, const char *line);
    void *log_user;
    /* The clock; NULL = the pool's. */
    const sluice_clock *clock;
    /* NULL = the pool (see sluice_control_source); copied. */
    const sluice_control_source *source;
} sluice_pool_control_config;

/* sluice_pool_control_config_init - zero cfg: FIXED, no auto-tune, no probes. */
SLUICE_API void sluice_pool_control_config_init(sluice_pool_control_config *cfg);

/*
 * sluice_pool_control_create - a controller for `pool` (borrowed: destroy
 * the controller before the pool). pool may be NULL only with a source
 * (and then no probes). Nothing runs until the first tick.
 * Returns: SLUICE_OK; SLUICE_EINVAL naming the bad field in errbuf
 * ("util_low: must be < util_high"); SLUICE_ENOMEM.
 * Ownership: *out belongs to the caller (sluice_pool_control_destroy).
 */
SLUICE_API sluice_err sluice_pool_control_create(sluice_pool *pool, const sluice_pool_control_config *cfg,
                                                 sluice_pool_control **out, char *errbuf, size_t errlen);

/*
 * sluice_pool_control_config_check - what create would refuse in cfg for a
 * pool of K `workers` and `min_workers` (the config loader's check), without
 * a pool. Returns SLUICE_OK, or SLUICE_EINVAL with *field the bad field's
 * name ("util_low", as in create's message) and why[] the reason. Pure.
 */
SLUICE_API sluice_err sluice_pool_control_config_check(const sluice_pool_control_config *cfg,
                                                       unsigned workers, unsigned min_workers,
                                                       const char **field, char *why, size_t whylen);

/*
 * sluice_pool_control_destroy - free it. A probe still queued or running
 * keeps its own small object until it runs or is handed back, so the pool
 * may outlive the controller. NULL is a no-op. Not concurrently with a
 * tick of the same controller.
 */
SLUICE_API void sluice_pool_control_destroy(sluice_pool_control *ctl);

/*
 * sluice_pool_control_tick - run what is due at the clock's now: collect
 * a finished or timed-out probe, submit the next one, and make a decision
 * when an interval has passed since the last. The first tick only takes
 * the baseline (and clamps K).
 * Returns: the clock time of the next thing due (0 when ctl is NULL).
 * Thread-safety: safe from any thread; ticks serialise. Deadlock hazard:
 * not from a task of the pool whose queue is full under BLOCK (a probe
 * submit never blocks, but stats and resize take the pool's locks).
 */
SLUICE_API uint64_t sluice_pool_control_tick(sluice_pool_control *ctl);

/*
 * sluice_pool_control_pin - set K by hand and pin it (no decisions until
 * released). Returns what sluice_pool_resize returns (SLUICE_EINVAL for
 * k == 0 or below min_workers; k outside [min_limit, max_limit] is
 * allowed: the operator decides). Thread-safe.
 */
SLUICE_API sluice_err sluice_pool_control_pin(sluice_pool_control *ctl, unsigned k);

/*
 * sluice_pool_control_release - end a pin: the controller goes on from the
 * K the pool has now (clamped at the next tick). Returns SLUICE_OK, or
 * SLUICE_ENOENT when not pinned. Thread-safe.
 */
SLUICE_API sluice_err sluice_pool_control_release(sluice_pool_control *ctl);

/*
 * sluice_pool_control_reconfigure - change a running controller's settings
 * (a reload of the config file does it through the service): mode,
 * bounds, interval, the limiter's and auto-tune's fields, probes. cfg is
 * read as create reads it, with 0 for max_limit still meaning the pool's
 * K at create; its log, log_user, clock and source are not used (they
 * stay as created). What carries over: K, a pin, the decision counters
 * and probe statistics, and the limiter unless its part changed (mode,
 * bounds, backoff, tolerance, smoothing, probe_interval, rtt_threshold):
 * then a new limiter starts from the K in force. A K outside new bounds
 * is clamped at the next tick (reason clamp, unless pinned); new probe
 * settings take effect from the next tick (a probe in flight is still
 * collected; with probes off the controller reports healthy). One log
 * line says what changed.
 * Returns: SLUICE_OK; SLUICE_EINVAL (NULL, or what create would refuse,
 * named in errbuf, and then nothing changes); SLUICE_ENOMEM (nothing
 * changes). errbuf: optional, NUL-terminated when given.
 * Thread-safety: safe from any thread, serialised with ticks. Deadlock
 * hazard: not from the log callback (it runs under the controller's lock).
 */
SLUICE_API sluice_err sluice_pool_control_reconfigure(sluice_pool_control *ctl,
                                                      const sluice_pool_control_config *cfg, char *errbuf,
                                                      size_t errlen);

/* A snapshot. */
typedef struct sluice_pool_control_stats {
    /* gauges */
    sluice_control_mode mode;
    bool autotune;
    unsigned limit;     /* K as the controller last set or saw it */
    unsigned last_good; /* the K a revert goes back to */
    bool pinned;
    double utilisation; /* of the last decision's window */
    double little_k;    /* offered rate x mean run time in the last window */
    double p99_seconds; /* run-time p99 of the last window (histogram bound) */
    bool probes_enabled;
    bool healthy; /* false while probes fail (true with no probes) */
    bool probe_affects_ready;
    unsigned probe_failures_in_row;
    char probe_error[96]; /* why the last probe failed ("" when it did not) */
    /* counters */
    uint64_t decisions[SLUICE_CONTROL_DIRECTION_COUNT_][SLUICE_CONTROL_REASON_COUNT_];
    uint64_t ticks;
    uint64_t probes; /* finished, either way */
    uint64_t probe_failures;
    /* pool_probe_duration_seconds: non-cumulative counts as in
     * sluice_histogram (bounds in probe_hist.bounds). */
    sluice_histogram probe_hist;
} sluice_pool_control_stats;

/* sluice_pool_control_stats_get - fill *out. Thread-safe. */
SLUICE_API void sluice_pool_control_stats_get(sluice_pool_control *ctl, sluice_pool_control_stats *out);

/* sluice_pool_control_pool - the pool it controls (borrowed), or NULL. */
SLUICE_API sluice_pool *sluice_pool_control_pool(const sluice_pool_control *ctl);

#endif /* SLUICE_CONTROL_H */
