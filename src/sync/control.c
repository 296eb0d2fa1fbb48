/*
 * src/sync/control.c - the control loops of one pool: adaptive limit,
 * auto-tune governor, scheduled probes (sluice/control.h).
 *
 * Purpose. Close the loop the pool leaves open: it bounds and reports,
 * the controller reads those reports and moves K. It sits outside the
 * core on purpose: the pool's hot path does not change by one instruction
 * whether a controller runs or not, and the controller costs one stats
 * snapshot and one histogram snapshot per interval (RATIONALE.md,
 * "closed-loop control", says why this and not per-task samples).
 *
 * Design. Everything happens in tick(), on whichever thread calls it, at
 * the clock's now; nothing here sleeps or starts a thread, so a test with
 * a fake clock and a scripted source is deterministic.
 *  - A decision window is the difference of two cumulative snapshots
 *    (counters and the run-time histogram) an interval apart. From it:
 *    the successes, failures, drops (dropped + shed + rejected), the
 *    offered rate (submitted + rejected), the mean run time W, the run-time
 *    p99 (a histogram bound), and the utilisation, which is Little's law
 *    run backwards: mean tasks running = completions x W / interval, over
 *    K (sampled timing is scaled by completions / timed). Little's-law K =
 *    offered rate x W.
 *  - The limiter (AIMD, gradient2, vegas) is a sluice_adaptive fed one
 *    window per decision through sluice_adaptive_observe; its limit is the
 *    proposal. The window says whether demand binds K (in_use: util_high,
 *    drops, a queue over K or grown by K; not "half busy", which let AIMD
 *    grow while half the workers idled) and what K the demand needs (the
 *    smoothed Little's-law K with headroom), which caps the limiter's
 *    growth, speeds it, and brings an unused limit down. Its RTT probe
 *    (half the limit, started when the run time rises) is applied as is,
 *    past the governor, and is not fed its measurement until the tasks
 *    admitted above it have had time to finish, so the probe measures
 *    what it should.
 *  - The governor (autotune) decides whether and how far to follow a
 *    proposal: triggers, cooldown, hysteresis, max step, and the verdict on
 *    each change one cooldown later, which keeps it (last_good = K) or
 *    reverts it. A limiter held back by the step or the trigger is told
 *    the K that was applied (sluice_adaptive_limit_set), so it does not
 *    wind up; one held back only by the hysteresis keeps its estimate, so
 *    small moves add up.
 *  - Pinning is seen, not told: the controller remembers the K it set;
 *    a pool whose K differs was resized by someone else.
 *  - A probe is a small heap object with two references (the controller,
 *    the task); the fields the task writes are atomics. The task stores
 *    its state with release and the tick loads it with acquire. Whoever
 *    drops the last reference frees it, so a probe queued when the
 *    controller is destroyed is safe to run later.
 *
 *  - Settings (mode, bounds, triggers, probes) are set at create and
 *    changed by sluice_pool_control_reconfigure under mu; every reader
 *    (tick, pin, release, stats) holds mu. A change to the limiter's part
 *    replaces the limiter (built under mu, the old one freed after).
 *
 * Lock order: ctl->mu -> the pool's locks (stats, histogram, resize,
 * submit). The log callback runs under ctl->mu. Probe tasks take no lock.
 */
#include <math.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "sluice/adaptive.h"
#include "sluice/control.h"
#include "sync/sync_internal.h"

#define HOUR_NS (3600ull * SLUICE_NS_PER_SEC)

static const char *const mode_names[SLUICE_CONTROL_MODE_COUNT_] = {"fixed", "aimd", "gradient2", "vegas"};
static const char *const reason_names[SLUICE_CONTROL_REASON_COUNT_] = {
    "utilisation", "drops", "limiter", "revert", "clamp", "pin", "release"};
static const char *const direction_names[SLUICE_CONTROL_DIRECTION_COUNT_] = {"up", "down", "hold"};

static const double probe_bounds[SLUICE_CONTROL_PROBE_BUCKETS] = {0.0001, 0.0005, 0.001, 0.005, 0.01, 0.05,
                                                                  0.1,    0.25,   0.5,   1,     2.5,  5};

const char *sluice_control_mode_name(sluice_control_mode m)
{
    return (unsigned)m < SLUICE_CONTROL_MODE_COUNT_ ? mode_names[m] : "unknown";
}

sluice_err sluice_control_mode_parse(const char *text, sluice_control_mode *out)
{
    for (unsigned i = 0; text && out && i < SLUICE_CONTROL_MODE_COUNT_; i++) {
        if (strcmp(text, mode_names[i]) == 0) {
            *out = (sluice_control_mode)i;
            return SLUICE_OK;
        }
    }
    return SLUICE_EINVAL;
}

const char *sluice_control_reason_name(sluice_control_reason r)
{
    return (unsigned)r < SLUICE_CONTROL_REASON_COUNT_ ? reason_names[r] : "unknown";
}

const char *sluice_control_direction_name(sluice_control_direction d)
{
    return (unsigned)d < SLUICE_CONTROL_DIRECTION_COUNT_ ? direction_names[d] : "unknown";
}

/* ---- probe objects ------------------------------------------------------------------ */

enum { PROBE_PENDING = 0, PROBE_RAN, PROBE_BACK };

typedef struct ctl_probe {
    _Atomic int refs;
    _Atomic int state;        /* PROBE_*: stored with release after done_ns / why */
    _Atomic uint64_t done_ns; /* when it ran (the pool's clock) */
    _Atomic int why;          /* the abandon reason, when handed back */
    const sluice_clock *clock;
    uint64_t submitted_ns; /* immutable after submit */
} ctl_probe;

static void probe_unref(ctl_probe *p)
{
    if (atomic_fetch_sub_explicit(&p->refs, 1, memory_order_acq_rel) == 1) {
        free(p);
    }
}

static int probe_fn(void *arg)
{
    ctl_probe *p = arg;
    atomic_store_explicit(&p->done_ns, sluice_clock_now(p->clock), memory_order_relaxed);
    atomic_store_explicit(&p->state, PROBE_RAN,
                          memory_order_release); /* pairs with probe_collect's acquire */
    probe_unref(p);
    return 0;
}

static void probe_back(const sluice_abandoned *task)
{
    ctl_probe *p = task->arg;
    atomic_store_explicit(&p->why, (int)task->reason, memory_order_relaxed);
    atomic_store_explicit(&p->state, PROBE_BACK,
                          memory_order_release); /* pairs with probe_collect's acquire */
    probe_unref(p);
}

/* ---- the controller ----------------------------------------------------------------- */

struct sluice_pool_control {
    /* Immutable after create. */
    sluice_pool *pool;
    sluice_control_source src;
    char name[SLUICE_POOL_NAME_MAX + 1];
    unsigned k_at_create; /* max_limit 0 means this */
    void (*log)(void *user, const char *line);
    void *log_user;
    const sluice_clock *clock;

    /* The settings: set at create, changed by reconfigure, read under mu. */
    sluice_pool_control_config given; /* as given (for what changed) */
    sluice_control_mode mode;
    unsigned min_k, max_k;
    uint64_t interval_ns;
    bool autotune;
    double util_high, util_low, hysteresis, headroom, revert_p99, revert_fail;
    uint64_t cooldown_ns;
    unsigned max_step;
    uint64_t probe_every_ns, probe_timeout_ns;
    unsigned probe_unhealthy_after;
    bool probe_ready;

    /* Guarded by mu. */
    pthread_mutex_t mu;
    sluice_adaptive *lim; /* NULL in FIXED mode; its own lock nests inside mu */
    bool started;
    uint64_t last_decision_ns;
    sluice_pool_stats prev;
    sluice_histogram prev_hist;
    unsigned k; /* the K the controller last set or adopted */
    unsigned last_good;
    bool pinned;
    bool was_probing;        /* the limiter was in a probe window at the last decision */
    uint64_t probe_since_ns; /* when the probe's K was applied */
    /* The last change, and the verdict it awaits. */
    uint64_t changed_at; /* 0 = none yet */
    bool verdict_pending;
    sluice_control_direction changed_dir;
    double p99_before, fail_before;
    sluice_histogram verdict_hist;
    uint64_t verdict_done, verdict_fail;
    uint64_t hold_until;    /* no growth before this (after a revert) */
    bool shrinking;         /* a shrink under way: it goes on to the Little's-law K */
    double little_avg;      /* Little's-law K, smoothed over windows (0 = none yet) */
    bool queue_grew_before; /* the last window's queue grew too */
    /* Probes. */
    ctl_probe *probe;
    uint64_t next_probe_ns;
    sluice_pool_control_stats st;
};

void sluice_pool_control_config_init(sluice_pool_control_config *cfg)
{
    if (cfg) {
        memset(cfg, 0, sizeof *cfg);
    }
}

static void src_stats(void *user, sluice_pool_stats *out)
{
    sluice_pool_stats_get(user, out);
}

static void src_hist(void *user, sluice_histogram *out)
{
    sluice_pool_histogram_get(user, SLUICE_HIST_TASK, out);
}

static sluice_err src_resize(void *user, unsigned k)
{
    return sluice_pool_resize(user, k);
}

static void logf_locked(sluice_pool_control *c, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

static void logf_locked(sluice_pool_control *c, const char *fmt, ...)
{
    if (!c->log) {
        return;
    }
    char line[512];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(line, sizeof line, fmt, ap);
    va_end(ap);
    c->log(c->log_user, line);
}

/* Resolve the defaults and check them; returns the bad field or NULL. */
/* The limiter's config for a controller whose bounds are set (c->mode not
 * FIXED), starting at K = capacity clamped into them; no name or clock. */
static void limiter_config(const sluice_pool_control *c, const sluice_pool_control_config *cfg,
                           unsigned capacity, sluice_adaptive_config *ac)
{
    sluice_adaptive_config_init(ac);
    ac->mode = c->mode == SLUICE_CONTROL_AIMD        ? SLUICE_ADAPTIVE_AIMD
               : c->mode == SLUICE_CONTROL_GRADIENT2 ? SLUICE_ADAPTIVE_GRADIENT2
                                                     : SLUICE_ADAPTIVE_VEGAS;
    ac->min_limit = c->min_k;
    ac->max_limit = c->max_k;
    ac->initial_limit = capacity < c->min_k ? c->min_k : capacity > c->max_k ? c->max_k : capacity;
    ac->backoff = cfg->backoff;
    ac->tolerance = cfg->tolerance;
    ac->smoothing = cfg->smoothing;
    ac->probe_interval = cfg->probe_interval;
    ac->rtt_threshold_ns = cfg->rtt_threshold_ns;
}

static const char *configure(sluice_pool_control *c, const sluice_pool_control_config *cfg,
                             const sluice_pool_config *pc, unsigned capacity, bool has_pool, char *why,
                             size_t whylen)
{
    c->mode = cfg->mode;
    c->min_k = cfg->min_limit ? cfg->min_limit : (pc->min_workers ? pc->min_workers : 1);
    c->max_k = cfg->max_limit ? cfg->max_limit : capacity;
    c->interval_ns = cfg->interval_ns ? cfg->interval_ns : SLUICE_NS_PER_SEC;
    c->autotune = cfg->autotune;
    c->util_high = cfg->util_high != 0 ? cfg->util_high : 0.9;
    c->util_low = cfg->util_low != 0 ? cfg->util_low : 0.3;
    c->cooldown_ns = cfg->cooldown_ns ? cfg->cooldown_ns : 2 * c->interval_ns;
    c->max_step = cfg->max_step ? cfg->max_step : 8;
    c->hysteresis = cfg->hysteresis != 0 ? cfg->hysteresis : 0.1;
    c->headroom = cfg->headroom != 0 ? cfg->headroom : 0.05;
    c->revert_p99 = cfg->revert_p99_ratio != 0 ? cfg->revert_p99_ratio : 1.5;
    c->revert_fail = cfg->revert_failure_delta != 0 ? cfg->revert_failure_delta : 0.05;
    c->probe_every_ns = cfg->probe_every_ns;
    c->probe_timeout_ns = cfg->probe_timeout_ns ? cfg->probe_timeout_ns : 5 * SLUICE_NS_PER_SEC;
    c->probe_unhealthy_after = cfg->probe_failures_unhealthy ? cfg->probe_failures_unhealthy : 1;
    c->probe_ready = cfg->probe_affects_ready;
    if ((unsigned)c->mode >= SLUICE_CONTROL_MODE_COUNT_) {
        snprintf(why, whylen, "must be fixed, aimd, gradient2 or vegas");
        return "mode";
    }
    if (c->min_k < pc->min_workers) {
        snprintf(why, whylen, "must be >= the pool's min_workers (%u < %u)", c->min_k, pc->min_workers);
        return "min_limit";
    }
    if (c->max_k > SLUICE_ADAPTIVE_LIMIT_MAX) {
        if (cfg->max_limit == 0) { /* the default: say where the value came from */
            snprintf(why, whylen, "0 means the pool's K at create (%u), which is above %u: set it", c->max_k,
                     SLUICE_ADAPTIVE_LIMIT_MAX);
        } else {
            snprintf(why, whylen, "must be <= %u", SLUICE_ADAPTIVE_LIMIT_MAX);
        }
        return "max_limit";
    }
    if (c->max_k < c->min_k) {
        snprintf(why, whylen, "must be >= min_limit (%u < %u)", c->max_k, c->min_k);
        return "max_limit";
    }
    /* The bound is on the fields as given: the default cooldown (two
     * intervals) of an interval at its 1 hour maximum is 2 hours. */
    if (c->interval_ns > HOUR_NS || cfg->cooldown_ns > HOUR_NS) {
        snprintf(why, whylen, "must be at most 1 hour");
        return c->interval_ns > HOUR_NS ? "interval" : "cooldown";
    }
    if (!(c->util_high > 0 && c->util_high <= 1)) {
        snprintf(why, whylen, "must be in (0, 1]");
        return "util_high";
    }
    if (!(c->util_low >= 0 && c->util_low < c->util_high)) {
        snprintf(why, whylen, "must be >= 0 and < util_high (%g)", c->util_high);
        return "util_low";
    }
    if (!(c->hysteresis > 0 && c->hysteresis < 1)) {
        snprintf(why, whylen, "must be in (0, 1)");
        return "hysteresis";
    }
    if (!(c->headroom >= 0 && c->headroom <= 1)) {
        snprintf(why, whylen, "must be in [0, 1]");
        return "headroom";
    }
    if (!(c->revert_p99 > 1) || isinf(c->revert_p99)) {
        snprintf(why, whylen, "must be > 1 and finite");
        return "revert_p99_ratio";
    }
    if (!(c->revert_fail > 0 && c->revert_fail <= 1)) {
        snprintf(why, whylen, "must be in (0, 1]");
        return "revert_failure_delta";
    }
    if (c->probe_every_ns && !has_pool) {
        snprintf(why, whylen, "probes need a pool, not a source");
        return "probe_every";
    }
    if (c->probe_every_ns && c->probe_every_ns < SLUICE_NS_PER_MS) {
        snprintf(why, whylen, "must be at least 1 ms (0 = no probes)");
        return "probe_every";
    }
    if (c->mode != SLUICE_CONTROL_FIXED) {
        /* The limiter's own fields, by the rules its create applies, so
         * that config_check refuses what create would (the limit bounds
         * were checked above; the initial limit is clamped into them). */
        sluice_adaptive_config ac;
        limiter_config(c, cfg, c->min_k, &ac);
        return sluice__adaptive_config_check(&ac, why, whylen);
    }
    return NULL;
}

sluice_err sluice_pool_control_config_check(const sluice_pool_control_config *cfg, unsigned workers,
                                            unsigned min_workers, const char **field, char *why,
                                            size_t whylen)
{
    if (!cfg || !field) {
        return SLUICE_EINVAL;
    }
    sluice_pool_control c;
    memset(&c, 0, sizeof c);
    sluice_pool_config pc;
    memset(&pc, 0, sizeof pc);
    pc.min_workers = min_workers;
    char local[8];
    *field = configure(&c, cfg, &pc, workers, true, why ? why : local, why ? whylen : sizeof local);
    return *field ? SLUICE_EINVAL : SLUICE_OK;
}

sluice_err sluice_pool_control_create(sluice_pool *pool, const sluice_pool_control_config *cfg,
                                      sluice_pool_control **out, char *errbuf, size_t errlen)
{
    if (!cfg || !out || (!pool && !cfg->source)) {
        sluice__errf(errbuf, errlen, "%s: must not be NULL",
                     !cfg   ? "cfg"
                     : !out ? "out"
                            : "pool (or source)");
        return SLUICE_EINVAL;
    }
    if (cfg->source && (!cfg->source->stats || !cfg->source->histogram || !cfg->source->resize)) {
        sluice__errf(errbuf, errlen, "source: stats, histogram and resize are all required");
        return SLUICE_EINVAL;
    }
    sluice_pool_control *c = calloc(1, sizeof *c);
    if (!c) {
        return SLUICE_ENOMEM;
    }
    c->pool = pool;
    if (cfg->source) {
        c->src = *cfg->source;
    } else {
        c->src = (sluice_control_source){src_stats, src_hist, src_resize, pool};
    }
    sluice_pool_stats ps;
    c->src.stats(c->src.user, &ps);
    sluice_pool_config pc;
    memset(&pc, 0, sizeof pc);
    if (pool) {
        sluice_pool_config_get(pool, &pc);
        snprintf(c->name, sizeof c->name, "%s", sluice_pool_name(pool));
    } else {
        snprintf(c->name, sizeof c->name, "model");
    }
    char why[160] = "";
    const char *bad = configure(c, cfg, &pc, ps.capacity, pool != NULL, why, sizeof why);
    if (bad) {
        sluice__errf(errbuf, errlen, "%s: %s", bad, why);
        free(c);
        return SLUICE_EINVAL;
    }
    if (pool && pc.timing_disabled && (c->mode != SLUICE_CONTROL_FIXED || c->autotune)) {
        sluice__errf(errbuf, errlen,
                     "mode: the pool's timing is disabled; the controller reads its run times");
        free(c);
        return SLUICE_EINVAL;
    }
    c->log = cfg->log;
    c->log_user = cfg->log_user;
    c->clock = cfg->clock ? cfg->clock : pool ? sluice_pool_clock(pool) : sluice_clock_system();
    if (c->mode != SLUICE_CONTROL_FIXED) {
        sluice_adaptive_config ac;
        limiter_config(c, cfg, ps.capacity, &ac);
        ac.name = c->name;
        ac.clock = c->clock;
        sluice_err err = sluice_adaptive_create(&ac, &c->lim, errbuf, errlen);
        if (err) {
            free(c);
            return err;
        }
    }
    if (pthread_mutex_init(&c->mu, NULL) != 0) {
        sluice_adaptive_destroy(c->lim);
        free(c);
        return SLUICE_ENOMEM;
    }
    c->k = ps.capacity;
    c->last_good = ps.capacity;
    c->k_at_create = ps.capacity;
    c->given = *cfg;
    c->st.probe_hist.bucket_count = SLUICE_CONTROL_PROBE_BUCKETS;
    memcpy(c->st.probe_hist.bounds, probe_bounds, sizeof probe_bounds);
    *out = c;
    return SLUICE_OK;
}

void sluice_pool_control_destroy(sluice_pool_control *c)
{
    if (!c) {
        return;
    }
    if (c->probe) {
        probe_unref(c->probe); /* the task keeps its own reference */
    }
    sluice_adaptive_destroy(c->lim);
    pthread_mutex_destroy(&c->mu);
    free(c);
}

sluice_pool *sluice_pool_control_pool(const sluice_pool_control *c)
{
    return c ? c->pool : NULL;
}

/* ---- one decision window ------------------------------------------------------------ */

typedef struct window {
    double dt_s;
    uint64_t done, fails, drops, offered, timed;
    double mean_s, p99_s, util, little, fail_ratio;
    size_t queue_depth;
    bool queue_grew; /* deeper than at the last decision by more than K: demand beyond K, not noise */
} window;

/* The q-quantile of a non-cumulative delta histogram, as a bucket bound
 * (the overflow bucket reads as twice the last bound). */
static double hist_quantile(const sluice_histogram *h, const uint64_t *counts, uint64_t total, double q)
{
    if (total == 0 || h->bucket_count == 0) {
        return 0;
    }
    uint64_t need = (uint64_t)ceil(q * (double)total), seen = 0;
    for (size_t i = 0; i < h->bucket_count; i++) {
        seen += counts[i];
        if (seen >= need) {
            return h->bounds[i];
        }
    }
    return h->bounds[h->bucket_count - 1] * 2;
}

static uint64_t done_of(const sluice_pool_stats *s)
{
    return s->completed + s->failed + s->panicked;
}

static uint64_t fails_of(const sluice_pool_stats *s)
{
    return s->failed + s->panicked;
}

/* p99 and failure ratio between two cumulative snapshots. */
static void delta_quality(const sluice_histogram *from, const sluice_histogram *to, uint64_t done,
                          uint64_t fails, double *p99, double *fail_ratio)
{
    uint64_t counts[SLUICE_HIST_MAX_BUCKETS + 1];
    for (size_t i = 0; i <= to->bucket_count && i <= SLUICE_HIST_MAX_BUCKETS; i++) {
        counts[i] = to->counts[i] - from->counts[i];
    }
    *p99 = hist_quantile(to, counts, to->count - from->count, 0.99);
    *fail_ratio = done ? (double)fails / (double)done : 0;
}

static void measure(const sluice_pool_control *c, const sluice_pool_stats *now_st, const sluice_histogram *h,
                    uint64_t dt_ns, window *w)
{
    const sluice_pool_stats *p = &c->prev;
    memset(w, 0, sizeof *w);
    w->dt_s = (double)dt_ns / 1e9;
    w->done = done_of(now_st) - done_of(p);
    w->fails = fails_of(now_st) - fails_of(p);
    w->drops = (now_st->dropped + now_st->shed + now_st->rejected) - (p->dropped + p->shed + p->rejected);
    w->offered = (now_st->submitted + now_st->rejected) - (p->submitted + p->rejected);
    w->timed = h->count - c->prev_hist.count;
    w->queue_depth = now_st->queue_depth;
    w->queue_grew = now_st->queue_depth > p->queue_depth + c->k;
    if (w->timed > 0 && w->dt_s > 0) {
        w->mean_s = (h->sum_seconds - c->prev_hist.sum_seconds) / (double)w->timed;
        double busy = w->mean_s * (double)w->done; /* timed tasks stand for all that finished */
        w->util = c->k ? busy / ((double)c->k * w->dt_s) : 0;
        w->little = (double)w->offered / w->dt_s * w->mean_s;
    } else {
        /* Nothing finished: tasks longer than the window, or none at all. */
        w->util = c->k ? (double)now_st->running / c->k : 0;
    }
    delta_quality(&c->prev_hist, h, w->done, w->fails, &w->p99_s, &w->fail_ratio);
}

/* ---- decisions ---------------------------------------------------------------------- */

static unsigned clamp_k(const sluice_pool_control *c, double v)
{
    if (!(v >= c->min_k)) {
        return c->min_k;
    }
    if (v >= c->max_k) {
        return c->max_k;
    }
    return (unsigned)v;
}

/* The words of a decision's line (apply_k's why): vsnprintf, so a
 * phrase built from others may be cut at the buffer's end without a
 * warning about it (a line a few bytes short says enough). */
static void say(char *buf, size_t len, const char *fmt, ...) SLUICE_PRINTF(3, 4);
static void say(char *buf, size_t len, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(buf, len, fmt, ap);
    va_end(ap);
}

/* Resize to k, log the decision and count it. why: what moved K, in
 * words ("toward little's law K=32 (arrival 1200.0/s x 26.0 ms); util
 * 0.99, a shrink under way"), so a line never reads as utilisation 0.99
 * taking K down. Returns whether it was made. */
static bool apply_k(sluice_pool_control *c, unsigned k, sluice_control_reason reason, const window *w,
                    const char *why)
{
    if (k == c->k) {
        return false;
    }
    sluice_control_direction d = k > c->k ? SLUICE_CONTROL_UP : SLUICE_CONTROL_DOWN;
    sluice_err err = c->src.resize(c->src.user, k);
    if (err != SLUICE_OK) {
        if (err == SLUICE_ECLOSED) {
            return false; /* draining: K no longer matters, and says nothing */
        }
        logf_locked(c, "pool=%s autotune %s %u->%u reason=%s refused: %s", c->name, direction_names[d], c->k,
                    k, reason_names[reason], sluice_strerror(err));
        return false;
    }
    if (w) {
        logf_locked(c, "pool=%s autotune %s %u->%u %s [reason=%s mode=%s drops=%llu failures=%llu p99=%.4fs]",
                    c->name, direction_names[d], c->k, k, why, reason_names[reason], mode_names[c->mode],
                    (unsigned long long)w->drops, (unsigned long long)w->fails, w->p99_s);
    } else {
        logf_locked(c, "pool=%s autotune %s %u->%u reason=%s mode=%s", c->name, direction_names[d], c->k, k,
                    reason_names[reason], mode_names[c->mode]);
    }
    c->st.decisions[d][reason]++;
    c->k = k;
    return true;
}

/* The verdict on the change awaiting one (mu held; its cooldown has
 * passed). Returns whether it reverted. */
static bool verdict(sluice_pool_control *c, const sluice_pool_stats *st, const sluice_histogram *h,
                    uint64_t now, const window *w)
{
    c->verdict_pending = false;
    uint64_t done = done_of(st) - c->verdict_done, fails = fails_of(st) - c->verdict_fail;
    double p99, fail_ratio;
    delta_quality(&c->verdict_hist, h, done, fails, &p99, &fail_ratio);
    bool slower =
        c->changed_dir == SLUICE_CONTROL_UP && c->p99_before > 0 && p99 > c->revert_p99 * c->p99_before;
    bool failing = done > 0 && fail_ratio > c->fail_before + c->revert_fail;
    if (!slower && !failing) {
        c->last_good = c->k;
        return false;
    }
    logf_locked(c, "pool=%s autotune revert: %s at %u (p99 %.4fs -> %.4fs, failures %.3f -> %.3f)", c->name,
                slower ? "p99 grew" : "failures grew", c->k, c->p99_before, p99, c->fail_before, fail_ratio);
    unsigned back = clamp_k(c, c->last_good);
    char why[160];
    say(why, sizeof why, "back to the last good K: %s; util %.2f", slower ? "p99 grew" : "failures grew",
        w->util);
    if (apply_k(c, back, SLUICE_CONTROL_REASON_REVERT, w, why) && c->lim) {
        sluice_adaptive_limit_set(c->lim, back);
    }
    c->hold_until = sluice__add_sat(now, c->cooldown_ns > UINT64_MAX / 4 ? UINT64_MAX : 4 * c->cooldown_ns);
    c->changed_at = now;
    return true;
}

/* Start the verdict clock on a change just made (mu held). */
static void judge_later(sluice_pool_control *c, sluice_control_direction d, const sluice_pool_stats *st,
                        const sluice_histogram *h, uint64_t now, const window *w)
{
    c->verdict_pending = true;
    c->changed_at = now;
    c->changed_dir = d;
    c->p99_before = w->p99_s;
    c->fail_before = w->fail_ratio;
    c->verdict_hist = *h;
    c->verdict_done = done_of(st);
    c->verdict_fail = fails_of(st);
}

static void decide(sluice_pool_control *c, const sluice_pool_stats *st, const sluice_histogram *h,
                   uint64_t now, const window *w)
{
    /* Every window feeds the estimates, in cooldown too. The Little's-law K
     * is smoothed (half each window): one window's Poisson noise in the rate
     * moves it by a few per cent, which would otherwise walk K up a worker
     * at a time. */
    if (w->timed) {
        c->little_avg = c->little_avg > 0 ? (c->little_avg + w->little) / 2 : w->little;
    }
    double little_k = w->timed ? ceil(c->little_avg * (1 + c->headroom)) : 0;
    /* The log's words for it: the estimate, and this window's inputs
     * (the K is smoothed over windows and has headroom on top). */
    char law[160];
    if (w->timed) {
        say(law, sizeof law, "little's law K=%.0f (arrival %.1f/s x %.1f ms, smoothed, +%.0f%% headroom)",
            little_k, w->dt_s > 0 ? (double)w->offered / w->dt_s : 0, w->mean_s * 1e3, c->headroom * 100);
    } else {
        say(law, sizeof law, "little's law K unknown (no task timed)");
    }
    char why[320] = "";
    /* A growing queue is demand K does not see only when it keeps growing. */
    bool queue_growing = w->queue_grew && c->queue_grew_before;
    c->queue_grew_before = w->queue_grew;
    /* The limiter sees every window, in cooldown too: it keeps its own state. */
    bool probing = false;
    double proposal = c->k;
    /* A probe window is measured only once the tasks admitted above the
     * probe's K have mostly finished: those end within about 1.5 mean run
     * times of the probe's K, and at most a quarter of the window may lie
     * in that time. With run times near the interval the first window
     * after it is mostly such tasks, and a probe that measured them found
     * the RTT "did not fall" and re-based the no-load RTT onto congestion
     * (AIMD climbed to max_limit at 200/s x 250 ms in the bench). Until
     * then the probe holds. */
    bool hold = c->lim && c->was_probing && w->timed &&
                c->last_decision_ns + (uint64_t)(0.25 * w->dt_s * 1e9) <
                    c->probe_since_ns + (uint64_t)(1.5 * w->mean_s * 1e9);
    if (hold) {
        return;
    }
    if (c->lim) {
        sluice_adaptive_window aw = {0};
        aw.successes = w->done - w->fails;
        aw.drops = w->fails;
        aw.mean_rtt_ns = (uint64_t)(w->mean_s * 1e9);
        /* In use: demand binds K - the pool is as busy as the governor
         * calls busy, work was refused, or more than a K's worth waits or
         * arrived beyond what ran. Half busy is not: a limiter told so
         * grew while half the workers idled. */
        aw.in_use = w->util >= c->util_high || w->drops > 0 || w->queue_grew || w->queue_depth > c->k;
        aw.demand = little_k; /* Little's law with headroom; 0 when nothing was timed */
        sluice_adaptive_observe(c->lim, &aw);
        sluice_adaptive_stats as;
        sluice_adaptive_stats_get(c->lim, &as);
        probing = as.probing;
        proposal = as.probing ? as.limit : as.limit_estimate;
    }
    /* A no-load RTT probe window, and the way back from one, pass the governor. */
    if (probing || c->was_probing) {
        if (probing && !c->was_probing) {
            c->probe_since_ns = now;
        }
        c->was_probing = probing;
        unsigned to = clamp_k(c, proposal);
        if (to != c->k) {
            logf_locked(c, "pool=%s autotune %s an rtt probe window", c->name, probing ? "enters" : "leaves");
            say(why, sizeof why, "to the %s limiter's %s; util %.2f", mode_names[c->mode],
                probing ? "probe K" : "limit after its probe", w->util);
            apply_k(c, to, SLUICE_CONTROL_REASON_LIMITER, w, why);
        }
        return;
    }
    if (!c->autotune) {
        /* A limiter alone: follow it, within the bounds. */
        if (c->lim) {
            say(why, sizeof why, "to the %s limiter's limit %.0f; util %.2f", mode_names[c->mode], proposal,
                w->util);
            apply_k(c, clamp_k(c, proposal), SLUICE_CONTROL_REASON_LIMITER, w, why);
        }
        return;
    }
    if (c->verdict_pending) {
        if (now < sluice__add_sat(c->changed_at, c->cooldown_ns)) {
            return;
        }
        if (verdict(c, st, h, now, w)) {
            return; /* the revert is this window's decision */
        }
    }
    if (c->changed_at && now < sluice__add_sat(c->changed_at, c->cooldown_ns)) {
        return;
    }
    bool up_trigger = (w->util >= c->util_high || w->drops > 0) && now >= c->hold_until;
    bool down_trigger = w->util <= c->util_low && w->drops == 0 && w->queue_depth == 0;
    sluice_control_reason reason =
        w->drops > 0 ? SLUICE_CONTROL_REASON_DROPS : SLUICE_CONTROL_REASON_UTILISATION;
    unsigned min_change = (unsigned)floor(c->hysteresis * c->k);
    min_change = min_change < 1 ? 1 : min_change;
    /* Never more than the largest step: with K over max_step / hysteresis
     * (80 at the defaults) no change could otherwise be made at all. */
    min_change = min_change > c->max_step ? c->max_step : min_change;
    double target = c->k;
    bool snap = false; /* tell the limiter the K applied instead of its own */
    /* The words for the log: what moved K, then what the window saw. */
    char util[96];
    if (w->drops > 0) {
        say(util, sizeof util, "util %.2f, %llu dropped", w->util, (unsigned long long)w->drops);
    } else {
        say(util, sizeof util, "util %.2f", w->util);
    }
    if (c->lim) {
        target = proposal;
        reason = SLUICE_CONTROL_REASON_LIMITER;
        say(why, sizeof why, "to the %s limiter's limit %.0f (%s); %s", mode_names[c->mode], proposal, law,
            util);
        if (target >= c->k + 1.0 && !up_trigger) {
            target = c->k; /* a limit nobody uses is not a reason to grow */
            snap = true;
        }
    } else if (up_trigger) {
        /* Little's law says how far. Demand it cannot see (refused work, a
         * growing queue, or no run time measured) grows one step at least;
         * a backlog that drains at this K is no reason to grow. */
        bool hidden = w->drops > 0 || queue_growing || !w->timed;
        target = hidden && little_k < c->k + min_change ? c->k + min_change : little_k;
        char trigger[96];
        if (w->drops > 0) {
            say(trigger, sizeof trigger, "%s", util);
        } else {
            say(trigger, sizeof trigger, "%s over util_high %.2f", util, c->util_high);
        }
        if (target == little_k) {
            say(why, sizeof why, "toward %s; %s", law, trigger);
        } else {
            if (!w->timed) {
                say(why, sizeof why, "one step up: %s; %s", law, trigger);
            } else {
                say(why, sizeof why, "one step up, past %s: demand it cannot see (%s); %s", law,
                    w->drops > 0 ? "work dropped" : "the queue keeps growing", trigger);
            }
        }
        c->shrinking = false;
    } else if (down_trigger) {
        target = little_k < (double)c->k - min_change ? little_k : (double)c->k - min_change;
        if (target == little_k) {
            say(why, sizeof why, "toward %s; %s under util_low %.2f, queue empty", law, util, c->util_low);
        } else {
            say(why, sizeof why, "one step down (%s); %s under util_low %.2f, queue empty", law, util,
                c->util_low);
        }
        c->shrinking = true;
    } else if (c->shrinking && w->timed && w->drops == 0 && !w->queue_grew && little_k <= c->k) {
        /* A shrink, once begun, goes on to the Little's-law K, one step a
         * cooldown, while nothing says it went too far: the band between
         * util_low and util_high is where it starts, not where it stops.
         * The smoothed estimate reaches the K from above, so it may sit at
         * K for a window before it goes below. */
        target = little_k;
        say(why, sizeof why, "toward %s; %s, a shrink under way (no drops, the queue not growing)", law,
            util);
    } else {
        c->shrinking = false;
    }
    /* One step at most, and nothing under the hysteresis. */
    bool capped = false;
    if (target > (double)c->k + c->max_step) {
        target = (double)c->k + c->max_step;
        snap = capped = true;
    } else if (target < (double)c->k - c->max_step) {
        target = (double)c->k - c->max_step;
        snap = capped = true;
    }
    unsigned to = clamp_k(c, target);
    unsigned diff = to > c->k ? to - c->k : c->k - to;
    if (diff >= min_change) {
        sluice_control_direction d = to > c->k ? SLUICE_CONTROL_UP : SLUICE_CONTROL_DOWN;
        size_t wl = strlen(why);
        if (capped) {
            say(why + wl, sizeof why - wl, " (one change moves at most max_step %u)", c->max_step);
        } else if (target < c->min_k || target > c->max_k) {
            say(why + wl, sizeof why - wl, " (held within [%u, %u])", c->min_k, c->max_k);
        }
        if (apply_k(c, to, reason, w, why)) {
            judge_later(c, d, st, h, now, w);
        }
    }
    if (c->lim && snap && sluice_adaptive_limit_get(c->lim) != c->k) {
        sluice_adaptive_limit_set(c->lim, c->k); /* no wind-up past what was applied */
    }
}

/* ---- scheduled probes --------------------------------------------------------------- */

static void probe_result(sluice_pool_control *c, bool ok, double seconds, const char *why)
{
    c->st.probes++;
    if (ok) {
        sluice_histogram *ph = &c->st.probe_hist;
        size_t i = 0;
        while (i < ph->bucket_count && seconds > ph->bounds[i]) {
            i++;
        }
        ph->counts[i]++;
        ph->count++;
        ph->sum_seconds += seconds;
        if (c->st.probe_failures_in_row > 0) {
            logf_locked(c, "pool=%s probe ok again after %u failures (%.4fs)", c->name,
                        c->st.probe_failures_in_row, seconds);
        }
        c->st.probe_failures_in_row = 0;
        c->st.probe_error[0] = '\0';
        return;
    }
    c->st.probe_failures++;
    c->st.probe_failures_in_row++;
    snprintf(c->st.probe_error, sizeof c->st.probe_error, "%s", why);
    logf_locked(c, "pool=%s probe failed: %s (%u in a row%s)", c->name, why, c->st.probe_failures_in_row,
                c->st.probe_failures_in_row >= c->probe_unhealthy_after ? "; unhealthy" : "");
}

static void probe_collect(sluice_pool_control *c, uint64_t now)
{
    ctl_probe *p = c->probe;
    int state = atomic_load_explicit(&p->state, memory_order_acquire); /* pairs with probe_fn / probe_back */
    char why[96];
    if (state == PROBE_RAN) {
        uint64_t done = atomic_load_explicit(&p->done_ns, memory_order_relaxed);
        uint64_t took = done > p->submitted_ns ? done - p->submitted_ns : 0;
        if (took > c->probe_timeout_ns) {
            snprintf(why, sizeof why, "ran only after %.3fs (timeout %.3fs)", (double)took / 1e9,
                     (double)c->probe_timeout_ns / 1e9);
            probe_result(c, false, 0, why);
        } else {
            probe_result(c, true, (double)took / 1e9, NULL);
        }
    } else if (state == PROBE_BACK) {
        int r = atomic_load_explicit(&p->why, memory_order_relaxed);
        snprintf(why, sizeof why, "handed back (%s)", sluice_abandon_reason_name((sluice_abandon_reason)r));
        probe_result(c, false, 0, why);
    } else if (now >= sluice__add_sat(p->submitted_ns, c->probe_timeout_ns)) {
        snprintf(why, sizeof why, "did not run within %.3fs", (double)c->probe_timeout_ns / 1e9);
        probe_result(c, false, 0, why);
    } else {
        return; /* still waiting */
    }
    probe_unref(p);
    c->probe = NULL;
}

static void probe_submit(sluice_pool_control *c, uint64_t now)
{
    c->next_probe_ns = sluice__add_sat(now, c->probe_every_ns); /* no maximum: UINT64_MAX = never again */
    sluice_pool_stats st;
    sluice_pool_stats_get(c->pool, &st);
    if (st.draining) {
        return; /* a pool on its way out is not probed (nor failed) */
    }
    if (st.queue_depth >= st.queue_capacity) {
        probe_result(c, false, 0, "queue full (a probe never evicts or waits for work)");
        return;
    }
    ctl_probe *p = calloc(1, sizeof *p);
    if (!p) {
        probe_result(c, false, 0, "out of memory");
        return;
    }
    const sluice_clock *pc = sluice_pool_clock(c->pool);
    atomic_init(&p->refs, 2);
    p->clock = pc;
    p->submitted_ns = sluice_clock_now(pc);
    sluice_submit_opts o = {0};
    o.label = "sluice-control-probe";
    o.on_abandon = probe_back;
    o.deadline_ns =
        sluice__add_sat(p->submitted_ns, c->probe_timeout_ns); /* queued too long: shed, a failure */
    /* Never wait for space (a BLOCK pool filled since the check above):
     * not a deadline 1 ns ahead, which a frozen clock never reaches and
     * which wraps to 0 ("the pool's own timeout") at the clock's end. */
    sluice_err err = sluice__sync_submit_now(c->pool, probe_fn, p, &o);
    if (err != SLUICE_OK) {
        free(p); /* the task never got its reference */
        if (err != SLUICE_ECLOSED) {
            char why[96];
            snprintf(why, sizeof why, "submit refused: %s", sluice_strerror(err));
            probe_result(c, false, 0, why);
        }
        return;
    }
    c->probe = p;
}

/* ---- tick, pin, release, stats ------------------------------------------------------ */

uint64_t sluice_pool_control_tick(sluice_pool_control *c)
{
    if (!c) {
        return 0;
    }
    pthread_mutex_lock(&c->mu);
    uint64_t now = sluice_clock_now(c->clock);
    c->st.ticks++;
    if (c->probe_every_ns) {
        if (c->probe) {
            probe_collect(c, now);
        }
        if (!c->probe && now >= c->next_probe_ns) {
            probe_submit(c, now);
        }
    }
    if (!c->started || now - c->last_decision_ns >= c->interval_ns) {
        sluice_pool_stats st;
        sluice_histogram h;
        c->src.stats(c->src.user, &st);
        c->src.histogram(c->src.user, &h);
        if (st.capacity != c->k && st.capacity != 0) {
            if (!c->pinned) {
                logf_locked(c, "pool=%s autotune pinned at %u (resized from outside; was %u)", c->name,
                            st.capacity, c->k);
                c->st.decisions[SLUICE_CONTROL_HOLD][SLUICE_CONTROL_REASON_PIN]++;
            }
            c->pinned = true;
            c->k = st.capacity;
            c->verdict_pending = false;
        }
        if (!c->started) {
            c->started = true;
            if (!c->pinned && (c->k < c->min_k || c->k > c->max_k)) {
                apply_k(c, clamp_k(c, c->k), SLUICE_CONTROL_REASON_CLAMP, NULL, NULL);
            }
            c->last_good = c->k;
        } else if (!c->pinned && (c->mode != SLUICE_CONTROL_FIXED || c->autotune)) {
            window w;
            measure(c, &st, &h, now - c->last_decision_ns, &w);
            c->st.utilisation = w.util;
            c->st.little_k = w.little;
            c->st.p99_seconds = w.p99_s;
            if (c->k < c->min_k || c->k > c->max_k) {
                char why[96];
                snprintf(why, sizeof why, "into the bounds [%u, %u]; util %.2f", c->min_k, c->max_k, w.util);
                apply_k(c, clamp_k(c, c->k), SLUICE_CONTROL_REASON_CLAMP, &w, why);
            } else {
                decide(c, &st, &h, now, &w);
            }
        }
        c->last_decision_ns = now;
        c->prev = st;
        c->prev_hist = h;
    }
    uint64_t next = sluice__add_sat(c->last_decision_ns, c->interval_ns);
    if (c->probe_every_ns) {
        uint64_t p =
            c->probe ? sluice__add_sat(c->probe->submitted_ns, c->probe_timeout_ns) : c->next_probe_ns;
        next = p < next ? p : next;
    }
    pthread_mutex_unlock(&c->mu);
    return next;
}

sluice_err sluice_pool_control_pin(sluice_pool_control *c, unsigned k)
{
    if (!c) {
        return SLUICE_EINVAL;
    }
    pthread_mutex_lock(&c->mu);
    sluice_err err = c->src.resize(c->src.user, k);
    if (err == SLUICE_OK) {
        logf_locked(c, "pool=%s autotune pinned at %u by hand (was %u)", c->name, k, c->k);
        c->st.decisions[SLUICE_CONTROL_HOLD][SLUICE_CONTROL_REASON_PIN]++;
        c->pinned = true;
        c->k = k;
        c->verdict_pending = false;
    }
    pthread_mutex_unlock(&c->mu);
    return err;
}

sluice_err sluice_pool_control_release(sluice_pool_control *c)
{
    if (!c) {
        return SLUICE_EINVAL;
    }
    pthread_mutex_lock(&c->mu);
    sluice_err err = SLUICE_ENOENT;
    if (c->pinned) {
        sluice_pool_stats st;
        c->src.stats(c->src.user, &st);
        c->pinned = false;
        c->k = st.capacity;
        c->last_good = st.capacity;
        c->changed_at = 0;
        c->hold_until = 0;
        if (c->lim && c->k >= c->min_k && c->k <= c->max_k) {
            sluice_adaptive_limit_set(c->lim, c->k);
        }
        logf_locked(c, "pool=%s autotune released at %u", c->name, c->k);
        c->st.decisions[SLUICE_CONTROL_HOLD][SLUICE_CONTROL_REASON_RELEASE]++;
        err = SLUICE_OK;
    }
    pthread_mutex_unlock(&c->mu);
    return err;
}

/* The limiter's part of a config: what a new limiter is built from. */
static bool limiter_same(const sluice_pool_control *c, const sluice_pool_control *n,
                         const sluice_pool_control_config *cfg)
{
    const sluice_pool_control_config *g = &c->given;
    return n->mode == c->mode && n->min_k == c->min_k && n->max_k == c->max_k && cfg->backoff == g->backoff &&
           cfg->tolerance == g->tolerance && cfg->smoothing == g->smoothing &&
           cfg->probe_interval == g->probe_interval && cfg->rtt_threshold_ns == g->rtt_threshold_ns;
}

sluice_err sluice_pool_control_reconfigure(sluice_pool_control *c, const sluice_pool_control_config *cfg,
                                           char *errbuf, size_t errlen)
{
    if (errbuf && errlen) {
        errbuf[0] = '\0';
    }
    if (!c || !cfg) {
        sluice__errf(errbuf, errlen, "%s: must not be NULL", !c ? "ctl" : "cfg");
        return SLUICE_EINVAL;
    }
    sluice_pool_config pc;
    memset(&pc, 0, sizeof pc);
    if (c->pool) {
        sluice_pool_config_get(c->pool, &pc);
    }
    sluice_pool_control n;
    memset(&n, 0, sizeof n);
    char why[160] = "";
    const char *bad = configure(&n, cfg, &pc, c->k_at_create, c->pool != NULL, why, sizeof why);
    if (bad) {
        sluice__errf(errbuf, errlen, "%s: %s", bad, why);
        return SLUICE_EINVAL;
    }
    if (c->pool && pc.timing_disabled && (n.mode != SLUICE_CONTROL_FIXED || n.autotune)) {
        sluice__errf(errbuf, errlen,
                     "mode: the pool's timing is disabled; the controller reads its run times");
        return SLUICE_EINVAL;
    }
    pthread_mutex_lock(&c->mu);
    sluice_adaptive *old = NULL;
    if (!limiter_same(c, &n, cfg)) {
        /* A new limiter, from the K in force (clamped into the new bounds
         * by limiter_config; the next tick clamps the pool's K). */
        sluice_adaptive *lim = NULL;
        if (n.mode != SLUICE_CONTROL_FIXED) {
            sluice_adaptive_config ac;
            limiter_config(&n, cfg, c->k, &ac);
            ac.name = c->name;
            ac.clock = c->clock;
            sluice_err err = sluice_adaptive_create(&ac, &lim, errbuf, errlen);
            if (err) {
                pthread_mutex_unlock(&c->mu);
                return err;
            }
        }
        old = c->lim;
        c->lim = lim;
        c->was_probing = false;
    }
    bool probes_changed = n.probe_every_ns != c->probe_every_ns;
    logf_locked(
        c,
        "pool %s: controller reconfigured: mode %s -> %s, K bounds [%u, %u] -> [%u, %u], autotune %s -> "
        "%s, probes every %.3f s -> %.3f s",
        c->name, mode_names[c->mode], mode_names[n.mode], c->min_k, c->max_k, n.min_k, n.max_k,
        c->autotune ? "on" : "off", n.autotune ? "on" : "off", (double)c->probe_every_ns / 1e9,
        (double)n.probe_every_ns / 1e9);
    c->mode = n.mode;
    c->min_k = n.min_k;
    c->max_k = n.max_k;
    c->interval_ns = n.interval_ns;
    c->autotune = n.autotune;
    c->util_high = n.util_high;
    c->util_low = n.util_low;
    c->hysteresis = n.hysteresis;
    c->headroom = n.headroom;
    c->revert_p99 = n.revert_p99;
    c->revert_fail = n.revert_fail;
    c->cooldown_ns = n.cooldown_ns;
    c->max_step = n.max_step;
    c->probe_every_ns = n.probe_every_ns;
    c->probe_timeout_ns = n.probe_timeout_ns;
    c->probe_unhealthy_after = n.probe_unhealthy_after;
    c->probe_ready = n.probe_ready;
    c->given = *cfg;
    if (probes_changed) {
        /* Probes on a new schedule from the next tick; a probe in flight is
         * still collected (its result counts), and a pool whose probes are
         * turned off is healthy as far as probes go. */
        c->next_probe_ns = 0;
        if (!c->probe_every_ns) {
            c->st.probe_failures_in_row = 0;
        }
    }
    pthread_mutex_unlock(&c->mu);
    sluice_adaptive_destroy(old);
    return SLUICE_OK;
}

void sluice_pool_control_stats_get(sluice_pool_control *c, sluice_pool_control_stats *out)
{
    if (!out) {
        return;
    }
    memset(out, 0, sizeof *out);
    if (!c) {
        return;
    }
    pthread_mutex_lock(&c->mu);
    *out = c->st;
    out->mode = c->mode;
    out->autotune = c->autotune;
    out->limit = c->k;
    out->last_good = c->last_good;
    out->pinned = c->pinned;
    out->probes_enabled = c->probe_every_ns != 0;
    out->healthy = c->probe_every_ns == 0 || c->st.probe_failures_in_row < c->probe_unhealthy_after;
    out->probe_affects_ready = c->probe_ready;
    pthread_mutex_unlock(&c->mu);
}
