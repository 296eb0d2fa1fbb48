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
 * effective limit is floor(limit) clamped to [min, max], or min_limit
 * during a gradient2 probe. The algorithm runs in release():
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
     calls queued at the downstream as limit * (1 - long_rtt / short_rtt):
     under alpha = 3 * lg(limit) it grows by lg(limit) (by beta = 6 *
     lg(limit) while the queue is empty), over beta it shrinks by
     lg(limit), in between it holds (lg = log10, at least 1). The band
     between alpha and beta is its hysteresis: a steady state has no
     reason to move.
   - sluice_adaptive_observe feeds a whole window measured elsewhere (the
     pool controller reads it from a pool's histograms): the same rules,
     one window per call, with the window's mean RTT.
   - The long-term RTT is the no-load latency estimate. It drops at once
 *     to a faster window and is re-measured by a probe every
 *     probe_interval windows: the effective limit falls to min_limit, and
 *     only calls admitted during the probe (tok->probe) count as its
 *     samples, so queueing left over from the higher limit never reaches
 *     the estimate. A probe moves the long-term RTT half way to what it
 *     measured, so one odd probe cannot swing the limit.
 *   Why probes: an average of the RTTs the limiter sees follows the
 *   queueing its own limit causes; then the gradient returns to 1 and the
 *   limit creeps to max_limit (RATIONALE.md, "adaptive concurrency").
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
#include <stdlib.h>
#include <string.h>

#include "sluice/adaptive.h"
#include "sync/sync_internal.h"

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
    return a->probe_id ? a->min_limit : floor_limit(a);
}

sluice_err sluice_adaptive_create(const sluice_adaptive_config *cfg, sluice_adaptive **out, char *errbuf,
                                  size_t errlen)
{
    if (!cfg || !out) {
        sluice__errf(errbuf, errlen, "%s: must not be NULL", !cfg ? "cfg" : "out");
        return SLUICE_EINVAL;
    }
    uint32_t mn = cfg->min_limit ? cfg->min_limit : 1;
    uint32_t mx = cfg->max_limit ? cfg->max_limit : 1000;
    if (cfg->mode != SLUICE_ADAPTIVE_AIMD && cfg->mode != SLUICE_ADAPTIVE_GRADIENT2 &&
        cfg->mode != SLUICE_ADAPTIVE_VEGAS) {
        sluice__errf(errbuf, errlen, "mode: must be aimd, gradient2 or vegas");
        return SLUICE_EINVAL;
    }
    if (mx > SLUICE_ADAPTIVE_LIMIT_MAX) {
        sluice__errf(errbuf, errlen, "max_limit: must be <= %u", SLUICE_ADAPTIVE_LIMIT_MAX);
        return SLUICE_EINVAL;
    }
    if (mx < mn) {
        sluice__errf(errbuf, errlen, "max_limit: must be >= min_limit (%u < %u)", mx, mn);
        return SLUICE_EINVAL;
    }
    uint32_t init = cfg->initial_limit;
    if (init == 0) {
        init = mx < 20 ? mx : 20;
        init = init < mn ? mn : init;
    } else if (init < mn || init > mx) {
        sluice__errf(errbuf, errlen, "initial_limit: must be in [min_limit, max_limit] ([%u, %u])", mn,
                          mx);
        return SLUICE_EINVAL;
    }
    double backoff = cfg->backoff == 0 ? 0.9 : cfg->backoff;
    if (!(backoff > 0 && backoff < 1)) {
        sluice__errf(errbuf, errlen, "backoff: must be in (0, 1)");
        return SLUICE_EINVAL;
    }
    double tol = cfg->tolerance == 0 ? 1.5 : cfg->tolerance;
    if (!(tol >= 1.0) || isinf(tol)) {
        sluice__errf(errbuf, errlen, "tolerance: must be >= 1.0 and finite");
        return SLUICE_EINVAL;
    }
    double q = cfg->queue_size == 0 ? 4.0 : cfg->queue_size;
    if (!(q >= 0) || isinf(q)) {
        sluice__errf(errbuf, errlen, "queue_size: must be >= 0 and finite");
        return SLUICE_EINVAL;
    }
    double sm = cfg->smoothing == 0 ? 0.2 : cfg->smoothing;
    if (!(sm > 0 && sm <= 1)) {
        sluice__errf(errbuf, errlen, "smoothing: must be in (0, 1]");
        return SLUICE_EINVAL;
    }
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

/* A window ended with mean RTT s (gradient2 and vegas; mu held). `used`:
 * the limit was in use (half of it in flight), else it may not grow. */
static void window_done(sluice_adaptive *a, double s, bool used)
{
    if (s < 1) {
        s = 1; /* a zero RTT (a fake clock that did not move) */
    }
    window_reset(a);
    a->st.windows++;
    a->short_rtt_ns = (uint64_t)s;
    if (a->long_rtt_ns == 0 || s < a->long_rtt_ns) {
        a->long_rtt_ns = s;
    }
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
    set_limit(a, a->limit * (1 - a->smoothing) + target * a->smoothing);
    if (++a->windows_since_probe >= a->probe_interval) {
        probe_start(a);
    }
}

/* A probe measured p: move the no-load RTT half way to it (mu held). */
static void probe_done(sluice_adaptive *a, double p)
{
    a->long_rtt_ns = a->long_rtt_ns > 0 ? (a->long_rtt_ns + p) / 2 : p;
    a->probe_id = 0;
    a->st.probes++;
    a->st.windows++;
    window_reset(a);
    if (floor_limit(a) > a->min_limit) {
        pthread_cond_broadcast(&a->cv); /* the limit is back up */
    }
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

sluice_err sluice_adaptive_release(sluice_adaptive *a, sluice_adaptive_token *tok, sluice_adaptive_outcome outcome)
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
        }
    } else if (w->successes > 0) {
        if (a->probe_id) {
            probe_done(a, w->mean_rtt_ns > 0 ? (double)w->mean_rtt_ns : 1.0);
        } else if (a->mode == SLUICE_ADAPTIVE_AIMD) {
            if (w->in_use) {
                /* One per limit's worth of successes, as per call. */
                a->st.windows++;
                set_limit(a, a->limit + (double)w->successes / floor_limit(a));
            }
        } else {
            window_done(a, (double)w->mean_rtt_ns, w->in_use);
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
