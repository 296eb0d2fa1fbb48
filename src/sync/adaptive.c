/*
 * src/sync/adaptive.c - an adaptive concurrency limiter (AIMD, gradient2,
 * vegas).
 *
 * Purpose. Bound the calls in flight to a downstream by a limit that the
 * limiter finds itself from the RTTs and drops it observes, so a caller
 * need not guess a K that the downstream's latency and throughput keep
 * changing (Little's law: K = throughput * latency).
 *
 * Design. One mutex guards all state; one condition variable wakes
 * acquirers. Admission is `inflight < effective limit`, where the
 * effective limit is floor(limit) clamped to [min, max], or the probe's
 * limit during a probe (min_limit per call, half the limit for a window
 * probe). The algorithm runs in release():
 *   - Every token carries what its release needs to be judged fairly: the
 *     acquire time (RTT = release time - acquire time on the limiter's
 *     clock), the in-flight count at admission (AIMD does not grow on calls
 *     admitted while under half the limit: an idle limiter learns nothing
 *     about the downstream), the decrease epoch (a drop only backs off when
 *     the call was admitted after the last decrease, so one burst of drops
 *     from one window shrinks the limit once, as TCP does once per RTT),
 *     and the probe it was admitted in.
 *   - A window is floor(limit) samples (at least 4 for gradient2). AIMD adds
 *     one per full window of successes. gradient2 computes the window's
 *     mean RTT and applies the Netflix gradient against the long-term
 *     RTT (see sluice/adaptive.h for the formula).
 *   - vegas shares gradient2's windows and no-load RTT, and estimates the
 *     calls queued at the downstream as limit * (1 - long_rtt / short_rtt):
 *     under alpha = 3 * lg(limit) it grows by lg(limit) (by beta = 6 *
 *     lg(limit) while the queue is empty), over beta it shrinks by
 *     lg(limit), in between it holds (lg = log10, at least 1). The band
 *     between alpha and beta is its hysteresis: a steady state has no
 *     reason to move.
 *   - The long-term RTT is the no-load latency estimate. It drops at once
 *     to a faster window and, per call, is re-measured by a probe every
 *     probe_interval windows: the effective limit falls to min_limit, and
 *     only calls admitted during the probe (tok->probe) count as its
 *     samples, so queueing left over from the higher limit never reaches
 *     the estimate. A probe moves the long-term RTT half way to what it
 *     measured, so one odd probe cannot swing the limit.
 *   Why probes: an average of the RTTs the limiter sees follows the
 *   queueing its own limit causes; then the gradient returns to 1 and the
 *   limit creeps to max_limit (RATIONALE.md, "adaptive concurrency").
 *   - sluice_adaptive_observe feeds a whole window measured elsewhere (the
 *     pool controller reads it from a pool's histograms), one window per
 *     call with its mean RTT, and adds three rules of its own (below,
 *     "the window rules"): a rise is tested by a probe at half the limit
 *     before it is obeyed (an RTT that does not fall with the concurrency
 *     re-bases the no-load RTT; one that does is congestion and moves the
 *     limit to the mode's steady state at once); the caller's demand caps
 *     growth and is grown toward at once; an unused limit falls to it.
 *
 * Waking. A release signals one waiter; a grown limit and close broadcast.
 * Waiters are not FIFO (try_acquire may barge); a waiter that leaves with
 * an error passes its wake-up on when a slot is free, so no wake-up is
 * lost. Contexts are polled every SLUICE_CLOCK_POLL_NS while waiting (no
 * cancel callback), as are fake clocks.
 *
 * Lock order: lim->mu only. ctx calls that may run callbacks
 * (sluice_ctx_err) are made with lim->mu released.
 */
#include <math.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "sluice/adaptive.h"
#include "sync/sync_internal.h"

/* Windows after a window probe before a high RTT may start the next one,
 * at first and after a re-base; each congestion verdict doubles it, up to
 * probe_interval. */
#define RISE_WAIT_MIN 2u

struct sluice_adaptive {
    /* Immutable after create. */
    char name[SLUICE_ADAPTIVE_NAME_MAX + 1];
    sluice_adaptive_mode mode;
    uint32_t min_limit, max_limit;
    double backoff;
    uint64_t rtt_threshold_ns;
    double tolerance, queue_size, smoothing;
    uint32_t probe_interval;
    const sluice_clock *clock;

    /* Guarded by mu. */
    pthread_mutex_t mu;
    pthread_cond_t cv;      /* acquirers wait for a slot */
    pthread_cond_t cv_gone; /* destroy waits for inside == 0 */
    unsigned inside;        /* threads in the slow path of acquire */
    unsigned waiters;
    bool closed;
    double limit; /* the algorithm's estimate, in [min, max] */
    uint32_t inflight;
    uint64_t epoch; /* bumped by each multiplicative decrease */
    /* the current window */
    uint32_t win_count;
    uint64_t win_sum_ns;
    /* gradient2 */
    double long_rtt_ns; /* 0 = no estimate yet */
    uint64_t short_rtt_ns;
    uint32_t windows_since_probe;
    uint64_t probe_id;  /* the active probe, 0 = none */
    uint64_t probe_seq; /* last probe id handed out */
    uint32_t probe_count, probe_need;
    uint64_t probe_sum_ns;
    uint32_t probe_limit; /* calls admitted during the probe */
    /* A probe started by observe (a window probe): it runs at half the
     * limit and its verdict compares it with the window before it. */
    bool probe_window;
    double probe_ref_rtt_ns;  /* the mean RTT of the window before it, at the limit */
    uint32_t rise_wait;       /* windows after a probe before a high RTT may start another */
    bool probe_again;         /* the last verdict moved the no-load RTT: probe again after rise_wait */
    sluice_adaptive_stats st; /* counters */
};

void sluice_adaptive_config_init(sluice_adaptive_config *cfg)
{
    if (cfg) {
        memset(cfg, 0, sizeof *cfg);
    }
}

static uint32_t floor_limit(const sluice_adaptive *a)
{
    uint32_t v = (uint32_t)floor(a->limit);
    return v < a->min_limit ? a->min_limit : v > a->max_limit ? a->max_limit : v;
}

/* Calls admitted at once now (mu held). */
static uint32_t effective_limit(const sluice_adaptive *a)
{
    return a->probe_id ? a->probe_limit : floor_limit(a);
}

const char *sluice__adaptive_config_check(const sluice_adaptive_config *cfg, char *why, size_t whylen)
{
    uint32_t mn = cfg->min_limit ? cfg->min_limit : 1;
    uint32_t mx = cfg->max_limit ? cfg->max_limit : 1000;
    if (cfg->mode != SLUICE_ADAPTIVE_AIMD && cfg->mode != SLUICE_ADAPTIVE_GRADIENT2 &&
        cfg->mode != SLUICE_ADAPTIVE_VEGAS) {
        snprintf(why, whylen, "must be aimd, gradient2 or vegas");
        return "mode";
    }
    if (mx > SLUICE_ADAPTIVE_LIMIT_MAX) {
        snprintf(why, whylen, "must be <= %u", SLUICE_ADAPTIVE_LIMIT_MAX);
        return "max_limit";
    }
    if (mx < mn) {
        snprintf(why, whylen, "must be >= min_limit (%u < %u)", mx, mn);
        return "max_limit";
    }
    if (cfg->initial_limit && (cfg->initial_limit < mn || cfg->initial_limit > mx)) {
        snprintf(why, whylen, "must be in [min_limit, max_limit] ([%u, %u])", mn, mx);
        return "initial_limit";
    }
    double backoff = cfg->backoff == 0 ? 0.9 : cfg->backoff;
    if (!(backoff > 0 && backoff < 1)) {
        snprintf(why, whylen, "must be in (0, 1)");
        return "backoff";
    }
    double tol = cfg->tolerance == 0 ? 1.5 : cfg->tolerance;
    if (!(tol >= 1.0) || isinf(tol)) {
        snprintf(why, whylen, "must be >= 1.0 and finite");
        return "tolerance";
    }
    double q = cfg->queue_size == 0 ? 4.0 : cfg->queue_size;
    if (!(q >= 0) || isinf(q)) {
        snprintf(why, whylen, "must be >= 0 and finite");
        return "queue_size";
    }
    double sm = cfg->smoothing == 0 ? 0.2 : cfg->smoothing;
    if (!(sm > 0 && sm <= 1)) {
        snprintf(why, whylen, "must be in (0, 1]");
        return "smoothing";
    }
    return NULL;
}

sluice_err sluice_adaptive_create(const sluice_adaptive_config *cfg, sluice_adaptive **out, char *errbuf,
                                  size_t errlen)
{
    if (!cfg || !out) {
        sluice__errf(errbuf, errlen, "%s: must not be NULL", !cfg ? "cfg" : "out");
        return SLUICE_EINVAL;
    }
    char why[128];
    const char *field = sluice__adaptive_config_check(cfg, why, sizeof why);
    if (field) {
        sluice__errf(errbuf, errlen, "%s: %s", field, why);
        return SLUICE_EINVAL;
    }
    /* The values the check accepted, defaults filled in. */
    uint32_t mn = cfg->min_limit ? cfg->min_limit : 1;
    uint32_t mx = cfg->max_limit ? cfg->max_limit : 1000;
    uint32_t init = cfg->initial_limit;
    if (init == 0) {
        init = mx < 20 ? mx : 20;
        init = init < mn ? mn : init;
    }
    double backoff = cfg->backoff == 0 ? 0.9 : cfg->backoff;
    double tol = cfg->tolerance == 0 ? 1.5 : cfg->tolerance;
    double q = cfg->queue_size == 0 ? 4.0 : cfg->queue_size;
    double sm = cfg->smoothing == 0 ? 0.2 : cfg->smoothing;
    sluice_adaptive *a = calloc(1, sizeof *a);
    if (!a) {
        return SLUICE_ENOMEM;
    }
    sluice_err err = sluice__sync_name_copy(a->name, sizeof a->name, cfg->name, "adaptive", errbuf, errlen);
    if (err) {
        free(a);
        return err;
    }
    if (pthread_mutex_init(&a->mu, NULL) != 0) {
        free(a);
        return SLUICE_ENOMEM;
    }
    if (sluice__cond_init(&a->cv) != 0) {
        pthread_mutex_destroy(&a->mu);
        free(a);
        return SLUICE_ENOMEM;
    }
    if (sluice__cond_init(&a->cv_gone) != 0) {
        pthread_cond_destroy(&a->cv);
        pthread_mutex_destroy(&a->mu);
        free(a);
        return SLUICE_ENOMEM;
    }
    a->mode = cfg->mode;
    a->min_limit = mn;
    a->max_limit = mx;
    a->limit = init;
    a->backoff = backoff;
    a->rtt_threshold_ns = cfg->rtt_threshold_ns;
    a->tolerance = tol;
    a->queue_size = q;
    a->smoothing = sm;
    a->probe_interval = cfg->probe_interval ? cfg->probe_interval : 50;
    a->rise_wait = RISE_WAIT_MIN < a->probe_interval ? RISE_WAIT_MIN : a->probe_interval;
    a->clock = cfg->clock ? cfg->clock : sluice_clock_system();
    *out = a;
    return SLUICE_OK;
}

void sluice_adaptive_close(sluice_adaptive *a)
{
    if (!a) {
        return;
    }
    pthread_mutex_lock(&a->mu);
    a->closed = true;
    pthread_cond_broadcast(&a->cv);
    pthread_mutex_unlock(&a->mu);
}

void sluice_adaptive_destroy(sluice_adaptive *a)
{
    if (!a) {
        return;
    }
    pthread_mutex_lock(&a->mu);
    a->closed = true;
    pthread_cond_broadcast(&a->cv);
    while (a->inside > 0) {
        pthread_cond_wait(&a->cv_gone, &a->mu);
    }
    pthread_mutex_unlock(&a->mu);
    pthread_cond_destroy(&a->cv_gone);
    pthread_cond_destroy(&a->cv);
    pthread_mutex_destroy(&a->mu);
    free(a);
}

/* Admit one call (mu held, a slot is free). */
static void admit(sluice_adaptive *a, sluice_adaptive_token *tok)
{
    a->inflight++;
    a->st.acquired++;
    tok->owner = a;
    tok->start_ns = sluice_clock_now(a->clock);
    tok->epoch = a->epoch;
    tok->probe = a->probe_id;
    tok->inflight = a->inflight;
}

sluice_err sluice_adaptive_try_acquire(sluice_adaptive *a, sluice_adaptive_token *tok)
{
    if (!a || !tok) {
        return SLUICE_EINVAL;
    }
    sluice_err err = SLUICE_OK;
    pthread_mutex_lock(&a->mu);
    if (a->closed) {
        err = SLUICE_ECLOSED;
    } else if (a->inflight >= effective_limit(a)) {
        a->st.rejected++;
        err = SLUICE_EAGAIN;
    } else {
        admit(a, tok);
    }
    pthread_mutex_unlock(&a->mu);
    return err;
}

sluice_err sluice_adaptive_acquire_until(sluice_adaptive *a, sluice_ctx *ctx, uint64_t deadline_ns,
                                         sluice_adaptive_token *tok)
{
    if (!a || !tok) {
        return SLUICE_EINVAL;
    }
    pthread_mutex_lock(&a->mu);
    a->inside++;
    bool waiting = false;
    sluice_err err;
    for (;;) {
        if (a->closed) {
            err = SLUICE_ECLOSED;
        } else if ((err = sluice__ctx_peek(ctx)) == SLUICE_OK &&
                   sluice__timed_out(a->clock, deadline_ns, ctx)) {
            err = SLUICE_ETIMEDOUT;
        }
        if (err) {
            if (err == SLUICE_ETIMEDOUT) {
                a->st.timeouts++;
            } else if (err != SLUICE_ECLOSED) {
                a->st.canceled++;
            }
            break;
        }
        if (a->inflight < effective_limit(a)) {
            admit(a, tok);
            break;
        }
        if (!waiting) {
            waiting = true;
            a->waiters++;
        }
        sluice__wait_ctx(a->clock, deadline_ns, ctx, false, &a->cv, &a->mu);
    }
    if (waiting) {
        a->waiters--;
        /* We may have eaten a signal meant for a slot we did not take. */
        if (err && a->waiters > 0 && a->inflight < effective_limit(a)) {
            pthread_cond_signal(&a->cv);
        }
    }
    if (--a->inside == 0 && a->closed) {
        pthread_cond_broadcast(&a->cv_gone);
    }
    pthread_mutex_unlock(&a->mu);
    /* From here on a may be freed by destroy. */
    if (err && ctx) {
        sluice_ctx_err(ctx); /* observe a passed ctx deadline (runs callbacks) */
    }
    return err;
}

/* Set the estimate to v clamped, counting integer moves (mu held). */
static void set_limit(sluice_adaptive *a, double v)
{
    uint32_t before = floor_limit(a);
    if (!(v >= a->min_limit)) { /* also catches NaN */
        v = a->min_limit;
    }
    if (v > a->max_limit) {
        v = a->max_limit;
    }
    a->limit = v;
    uint32_t after = floor_limit(a);
    if (after > before) {
        a->st.decisions_up++;
    } else if (after < before) {
        a->st.decisions_down++;
    }
}

static void window_reset(sluice_adaptive *a)
{
    a->win_count = 0;
    a->win_sum_ns = 0;
}

/* A drop (or a success over the threshold): back off once per epoch. */
static void on_drop(sluice_adaptive *a, const sluice_adaptive_token *tok)
{
    if (tok->epoch != a->epoch) {
        return; /* admitted before the last decrease: already answered */
    }
    a->epoch++;
    set_limit(a, a->limit * a->backoff);
    window_reset(a);
}

static void aimd_success(sluice_adaptive *a, const sluice_adaptive_token *tok)
{
    if ((uint64_t)tok->inflight * 2 < floor_limit(a)) {
        return; /* admitted while the limiter was mostly idle */
    }
    if (++a->win_count >= floor_limit(a)) {
        window_reset(a);
        a->st.windows++;
        set_limit(a, floor(a->limit) + 1.0);
    }
}

static void probe_start(sluice_adaptive *a)
{
    a->probe_id = ++a->probe_seq;
    a->probe_limit = a->min_limit;
    a->probe_window = false;
    a->probe_need = a->min_limit > 4 ? a->min_limit : 4;
    a->probe_count = 0;
    a->probe_sum_ns = 0;
    a->windows_since_probe = 0;
}

/* lg(limit) for vegas: at least 1, so a small limit still moves. */
static double vegas_step(double limit)
{
    double l = log10(limit);
    return l < 1.0 ? 1.0 : l;
}

/* The smoothed limit gradient2's or vegas's rule asks for after a window
 * of mean RTT s (mu held; long_rtt_ns set). `used`: the limit was in use,
 * else it may not grow. */
static double rule_next(const sluice_adaptive *a, double s, bool used)
{
    double target;
    if (a->mode == SLUICE_ADAPTIVE_VEGAS) {
        double queued = a->limit * (1.0 - a->long_rtt_ns / s);
        double step = vegas_step(a->limit);
        double alpha = 3 * step, beta = 6 * step;
        if (queued <= step) {
            target = a->limit + beta;
        } else if (queued < alpha) {
            target = a->limit + step;
        } else if (queued > beta) {
            target = a->limit - step;
        } else {
            target = a->limit;
        }
    } else {
        double g = a->tolerance * a->long_rtt_ns / s;
        g = g < 0.5 ? 0.5 : g > 1.0 ? 1.0 : g;
        target = a->limit * g + (used ? a->queue_size : 0);
    }
    /* Grow only when the limit is in use (as the AIMD rule above). */
    if (!used && target > a->limit) {
        target = a->limit;
    }
    return a->limit * (1 - a->smoothing) + target * a->smoothing;
}

/* Take a window's mean RTT s as the short-term RTT; a faster one lowers
 * the no-load estimate at once (mu held). Returns s, at least 1 ns. */
static double window_rtt(sluice_adaptive *a, double s)
{
    if (s < 1) {
        s = 1; /* a zero RTT (a fake clock that did not move) */
    }
    a->short_rtt_ns = (uint64_t)s;
    if (a->long_rtt_ns == 0 || s < a->long_rtt_ns) {
        a->long_rtt_ns = s;
    }
    return s;
}

/* A window ended with mean RTT s (gradient2 and vegas, per call; mu
 * held). `used`: the limit was in use (half of it in flight). */
static void window_done(sluice_adaptive *a, double s, bool used)
{
    window_reset(a);
    a->st.windows++;
    s = window_rtt(a, s);
    set_limit(a, rule_next(a, s, used));
    if (++a->windows_since_probe >= a->probe_interval) {
        probe_start(a);
    }
}

/* A probe measured p: move the no-load RTT half way to it (mu held). */
static void probe_done(sluice_adaptive *a, double p)
{
    a->long_rtt_ns = a->long_rtt_ns > 0 ? (a->long_rtt_ns + p) / 2 : p;
    a->probe_id = 0;
    a->probe_window = false;
    a->st.probes++;
    a->st.windows++;
    window_reset(a);
    if (floor_limit(a) > a->min_limit) {
        pthread_cond_broadcast(&a->cv); /* the limit is back up */
    }
}

/* ---- the window rules (sluice_adaptive_observe) --------------------------------------
 *
 * A caller that measures whole windows (the pool controller) knows more
 * than a per-call limiter: whether demand binds the limit (in_use) and,
 * optionally, how much concurrency its demand needs (demand). Three rules
 * use that, on top of each mode's rule:
 *  1. A rise is tested before it is obeyed. A window whose mean RTT is over
 *     tolerance x the no-load RTT starts a probe at once, at half the
 *     limit, instead of moving (AIMD without an rtt_threshold uses the same
 *     test as its implicit threshold). The verdict compares the probe with
 *     the window before it: an RTT that did not fall with the concurrency
 *     (p >= RESPOND_RATIO x s) is not ours - the downstream got slower - so
 *     the no-load RTT is re-based to p outright; one that fell is
 *     congestion: the no-load RTT keeps the lower of the two and the limit
 *     goes at once to the mode's steady state for the capacity the window
 *     showed (C = limit x long / s, vegas's estimate). A congestion verdict
 *     doubles the windows before the next triggered probe (up to
 *     probe_interval); a re-base resets it. Meanwhile the mode's own rule
 *     answers high RTTs as before.
 *  2. Demand bounds growth: no rule grows the limit past `demand`; and a
 *     limit in use, clearly un-congested and under demand grows at once
 *     toward it, at most doubling a window (slow start), instead of by the
 *     rule's few calls a window.
 *  3. A limit over demand, not in use and not congested, falls to demand
 *     (a limit nobody uses measures nothing, and a burst would all reach
 *     the downstream at once).
 * The window path has no periodic probe: the no-load RTT falls at once to
 * a faster window, and every rise that would shrink the limit is tested
 * by a probe of its own, so a periodic one would only cost throughput.
 */

/* The probe RTT, as a fraction of the window before it, at and over which
 * halving the concurrency is taken to have changed nothing. Under
 * processor sharing past the knee RTT halves with the concurrency (0.5);
 * a limit 25% past the knee gives 0.8, and then p is the no-load RTT
 * anyway, so a re-base there is harmless. */
#define RESPOND_RATIO 0.8

static void window_probe_start(sluice_adaptive *a, double s)
{
    probe_start(a);
    a->probe_window = true;
    uint32_t half = floor_limit(a) / 2;
    a->probe_limit = half > a->min_limit ? half : a->min_limit;
    a->probe_ref_rtt_ns = s;
}

/* Slack under which demand and the limit count as equal, so Poisson
 * noise in the demand estimate does not move the limit every window: to
 * grow, demand must exceed the limit by one call and 2%; to fall, the
 * limit must exceed demand by half a call and 2% (a limit one over a small
 * demand, 12 for 11, is already 10% over it). */
static double demand_slack(double demand)
{
    return 1.0 + 0.02 * demand;
}

static double decay_slack(double demand)
{
    return 0.5 + 0.02 * demand;
}

/* The limit a window probe's verdict of congestion moves to at once: the
 * mode's steady state for a downstream serving c at once (mu held). */
static double steady_state(const sluice_adaptive *a, double c)
{
    switch (a->mode) {
    case SLUICE_ADAPTIVE_GRADIENT2:
        return a->tolerance * c + a->queue_size;
    case SLUICE_ADAPTIVE_VEGAS:
        return c + 4.5 * vegas_step(c); /* between alpha and beta */
    default:
        return c; /* AIMD grows from the knee and backs off past tolerance x it */
    }
}

/* A window probe measured p (mu held). */
/* Whether a window of mean RTT s is one the mode would shrink for: vegas,
 * more than beta queued; the others, over tolerance x the no-load RTT
 * (mu held). */
static bool rtt_high(const sluice_adaptive *a, double s)
{
    if (a->mode == SLUICE_ADAPTIVE_VEGAS) {
        return a->limit * (1.0 - a->long_rtt_ns / s) > 6 * vegas_step(a->limit);
    }
    return s > a->tolerance * a->long_rtt_ns;
}

static void window_probe_done(sluice_adaptive *a, double p)
{
    double s = a->probe_ref_rtt_ns;
    a->probe_id = 0;
    a->probe_window = false;
    a->st.probes++;
    a->st.windows++;
    window_reset(a);
    if (p < 1) {
        p = 1;
    }
    bool congestion = p < RESPOND_RATIO * s;
    if (!congestion) {
        /* Half the concurrency, the same RTT: the rise is not ours. */
        a->long_rtt_ns = p;
        a->st.rebases++;
        a->rise_wait = RISE_WAIT_MIN < a->probe_interval ? RISE_WAIT_MIN : a->probe_interval;
        a->probe_again = false;
    } else {
        /* It fell with the concurrency: congestion. The probe is an upper
         * bound on the no-load RTT (half the limit may still be past the
         * knee). A verdict that only confirms the estimate doubles the
         * wait for the next triggered probe; one that lowered it by more
         * than a tenth resets the wait and asks for another probe after
         * it, high RTT or not, as the estimate is still being found
         * (vegas, at its steady state over a too-high estimate, would
         * never see a high RTT again). */
        a->st.congestion_verdicts++;
        if (a->long_rtt_ns == 0 || p < 0.9 * a->long_rtt_ns) {
            a->long_rtt_ns = p;
            a->rise_wait = RISE_WAIT_MIN < a->probe_interval ? RISE_WAIT_MIN : a->probe_interval;
            a->probe_again = true;
        } else {
            a->long_rtt_ns = p < a->long_rtt_ns ? p : a->long_rtt_ns;
            a->rise_wait = a->rise_wait * 2 < a->probe_interval ? a->rise_wait * 2 : a->probe_interval;
            a->probe_again = false;
        }
    }
    /* Congestion, or a window still too slow for the re-based no-load RTT
     * (a limit a little past the knee: halving it left the RTT within
     * RESPOND_RATIO, yet the rise was partly ours): at once to the mode's
     * steady state for the capacity the window before showed, C = limit x
     * long / s (never up; at most halved, as gradient2's own clamp).
     * Without this a re-based limit 17% past the knee was probed every
     * other window and never came down (vegas, 10000/s in the bench). */
    if (congestion || rtt_high(a, s)) {
        double next = steady_state(a, a->limit * a->long_rtt_ns / s);
        next = next > a->limit ? a->limit : next < a->limit * 0.5 ? a->limit * 0.5 : next;
        if (next < a->limit) {
            a->epoch++;
        }
        set_limit(a, next);
    }
}

/* One window of the window path, outside probes and drops (mu held). */
static void window_rule(sluice_adaptive *a, const sluice_adaptive_window *w)
{
    a->st.windows++;
    double s = window_rtt(a, w->mean_rtt_ns > 0 ? (double)w->mean_rtt_ns : 1.0);
    bool explicit_threshold = a->mode == SLUICE_ADAPTIVE_AIMD && a->rtt_threshold_ns;
    bool high = rtt_high(a, s);
    if (a->windows_since_probe < UINT32_MAX) {
        a->windows_since_probe++;
    }
    if ((high || a->probe_again) && !explicit_threshold && a->windows_since_probe >= a->rise_wait) {
        window_probe_start(a, s); /* rule 1: test the rise before obeying it */
        return;
    }
    double next;
    bool congested, clear;
    if (a->mode == SLUICE_ADAPTIVE_AIMD) {
        /* An explicit threshold was applied by the caller as a drop. */
        congested = high && !explicit_threshold;
        clear = s <= a->long_rtt_ns * (1 + (a->tolerance - 1) / 2);
        if (congested) {
            a->epoch++;
            next = a->limit * a->backoff;
        } else if (w->in_use) {
            next = a->limit + (double)w->successes / floor_limit(a); /* one per limit's worth */
        } else {
            next = a->limit;
        }
    } else {
        next = rule_next(a, s, w->in_use);
        congested = next < a->limit;
        if (a->mode == SLUICE_ADAPTIVE_VEGAS) {
            clear = a->limit * (1.0 - a->long_rtt_ns / s) <= vegas_step(a->limit);
        } else {
            clear = s <= a->long_rtt_ns * (1 + (a->tolerance - 1) / 2);
        }
    }
    double d = w->demand;
    if (d > 0) {
        if (next > a->limit) { /* rule 2: never past demand, nor toward it within the slack */
            double cap = d > a->limit + demand_slack(d) ? d : a->limit;
            next = next < cap ? next : cap;
        }
        if (w->in_use && clear && d > a->limit + demand_slack(d)) {
            /* Rule 2: toward demand, as far as would keep the RTT within
             * tolerance even were all the growth to queue downstream
             * (RTT in proportion to the limit), and at most doubling. */
            double room = a->tolerance * a->long_rtt_ns / s;
            double jump = a->limit * (room < 2 ? room : 2);
            jump = jump < d ? jump : d;
            next = next > jump ? next : jump;
        } else if (!w->in_use && !congested && a->limit > d + decay_slack(d)) {
            next = d; /* rule 3: decay to what is used */
        }
    }
    set_limit(a, next);
}

static void gradient2_success(sluice_adaptive *a, const sluice_adaptive_token *tok, uint64_t rtt)
{
    if (a->probe_id) {
        if (tok->probe != a->probe_id) {
            return; /* admitted at the higher limit: its queueing is not no-load */
        }
        a->probe_sum_ns += rtt;
        if (++a->probe_count < a->probe_need) {
            return;
        }
        probe_done(a, (double)a->probe_sum_ns / a->probe_count);
        return;
    }
    a->win_sum_ns += rtt;
    uint32_t need = floor_limit(a) > 4 ? floor_limit(a) : 4;
    if (++a->win_count < need) {
        return;
    }
    window_done(a, (double)a->win_sum_ns / a->win_count, (uint64_t)tok->inflight * 2 >= floor_limit(a));
}

sluice_err sluice_adaptive_release(sluice_adaptive *a, sluice_adaptive_token *tok,
                                   sluice_adaptive_outcome outcome)
{
    if (!a || !tok || tok->owner != a ||
        (outcome != SLUICE_ADAPTIVE_SUCCESS && outcome != SLUICE_ADAPTIVE_DROPPED &&
         outcome != SLUICE_ADAPTIVE_IGNORE)) {
        return SLUICE_EINVAL;
    }
    pthread_mutex_lock(&a->mu);
    if (a->inflight == 0) { /* a token copied and released twice */
        pthread_mutex_unlock(&a->mu);
        return SLUICE_EINVAL;
    }
    uint32_t before = effective_limit(a);
    uint64_t now = sluice_clock_now(a->clock);
    uint64_t rtt = now > tok->start_ns ? now - tok->start_ns : 0;
    a->inflight--;
    if (outcome == SLUICE_ADAPTIVE_SUCCESS && a->rtt_threshold_ns && rtt > a->rtt_threshold_ns &&
        a->mode == SLUICE_ADAPTIVE_AIMD) {
        outcome = SLUICE_ADAPTIVE_DROPPED;
    }
    switch (outcome) {
    case SLUICE_ADAPTIVE_SUCCESS:
        a->st.successes++;
        if (a->mode == SLUICE_ADAPTIVE_AIMD) {
            aimd_success(a, tok);
        } else {
            gradient2_success(a, tok, rtt);
        }
        break;
    case SLUICE_ADAPTIVE_DROPPED:
        a->st.drops++;
        on_drop(a, tok);
        break;
    default:
        a->st.ignored++;
        break;
    }
    uint32_t after = effective_limit(a);
    if (after > before) {
        pthread_cond_broadcast(&a->cv);
    } else if (a->waiters > 0 && a->inflight < after) {
        pthread_cond_signal(&a->cv);
    }
    pthread_mutex_unlock(&a->mu);
    memset(tok, 0, sizeof *tok);
    return SLUICE_OK;
}

uint32_t sluice_adaptive_limit_get(sluice_adaptive *a)
{
    if (!a) {
        return 0;
    }
    pthread_mutex_lock(&a->mu);
    uint32_t v = effective_limit(a);
    pthread_mutex_unlock(&a->mu);
    return v;
}

void sluice_adaptive_stats_get(sluice_adaptive *a, sluice_adaptive_stats *out)
{
    if (!out) {
        return;
    }
    memset(out, 0, sizeof *out);
    if (!a) {
        return;
    }
    pthread_mutex_lock(&a->mu);
    *out = a->st;
    out->limit = effective_limit(a);
    out->limit_estimate = a->limit;
    out->inflight = a->inflight;
    out->waiters = a->waiters;
    out->probing = a->probe_id != 0;
    out->long_rtt_ns = (uint64_t)a->long_rtt_ns;
    out->short_rtt_ns = a->short_rtt_ns;
    out->closed = a->closed;
    pthread_mutex_unlock(&a->mu);
}

const char *sluice_adaptive_name(const sluice_adaptive *a)
{
    return a ? a->name : "";
}

sluice_err sluice_adaptive_observe(sluice_adaptive *a, const sluice_adaptive_window *w)
{
    if (!a || !w) {
        return SLUICE_EINVAL;
    }
    pthread_mutex_lock(&a->mu);
    uint32_t before = effective_limit(a);
    a->st.successes += w->successes;
    a->st.drops += w->drops;
    bool slow = a->mode == SLUICE_ADAPTIVE_AIMD && a->rtt_threshold_ns && w->successes > 0 &&
                w->mean_rtt_ns > a->rtt_threshold_ns;
    if (w->drops > 0 || slow) {
        /* One decrease per window, as the per-call path does per epoch. */
        a->epoch++;
        set_limit(a, a->limit * a->backoff);
        window_reset(a);
        if (a->probe_id) {
            a->probe_id = 0; /* a probe that saw drops measured nothing */
            a->probe_window = false;
        }
    } else if (w->successes > 0) {
        double rtt = w->mean_rtt_ns > 0 ? (double)w->mean_rtt_ns : 1.0;
        if (a->probe_id && a->probe_window) {
            window_probe_done(a, rtt);
        } else if (a->probe_id) {
            probe_done(a, rtt); /* a probe begun by the per-call path */
        } else {
            window_rule(a, w);
        }
    }
    uint32_t after = effective_limit(a);
    if (after > before) {
        pthread_cond_broadcast(&a->cv);
    }
    pthread_mutex_unlock(&a->mu);
    return SLUICE_OK;
}

sluice_err sluice_adaptive_limit_set(sluice_adaptive *a, uint32_t limit)
{
    if (!a) {
        return SLUICE_EINVAL;
    }
    pthread_mutex_lock(&a->mu);
    if (limit < a->min_limit || limit > a->max_limit) {
        pthread_mutex_unlock(&a->mu);
        return SLUICE_EINVAL;
    }
    uint32_t before = effective_limit(a);
    a->limit = limit;
    window_reset(a);
    a->epoch++; /* calls admitted before this say nothing about the new limit */
    if (effective_limit(a) > before) {
        pthread_cond_broadcast(&a->cv);
    }
    pthread_mutex_unlock(&a->mu);
    return SLUICE_OK;
}
