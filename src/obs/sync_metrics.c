/*
 * src/obs/sync_metrics.c - one registry collector for the sync primitives.
 *
 * Purpose. Export semaphores, breakers, limiters, keyed limiters,
 * groups, retries, retry budgets, keyed executors, batchers and adaptive
 * concurrency limiters in the
 * Prometheus/OpenMetrics exposition without touching their hot paths.
 *
 * Design. The set keeps one array of (kind, object) entries. The
 * registry requires each family to be written once per scrape with all
 * its samples, so the collector works kind by kind: it snapshots the
 * stats of every entry of that kind into a local array (each snapshot
 * under the primitive's own lock, so each primitive's values are
 * consistent with each other), then writes the kind's families, one
 * sample per primitive, labelled name="<its name>". Kinds with no entry
 * write nothing. Each kind is one table (kinds[] below): a read function
 * that snapshots one primitive into a row of values, and its families in
 * order; write_kind() is the one writer for all of them.
 *
 * Lock order: registry lock (held around the collector) -> sm->mu -> a
 * primitive's lock (inside its stats_get). add/remove take sm->mu only,
 * so a remove waits for a scrape in progress to finish with the entry.
 */
#include <pthread.h>
#include <stdlib.h>
#include <string.h>

#include "base/check.h"
#include "sluice/sync_metrics.h"

typedef enum kind {
    K_SEM = 0,
    K_BREAKER,
    K_LIMITER,
    K_KEYED,
    K_GROUP,
    K_RETRY,
    K_RETRY_BUDGET,
    K_KEYED_EXEC,
    K_BATCHER,
    K_ADAPTIVE,
    K_COUNT
} kind;

typedef struct item {
    kind k;
    void *obj;
} item;

struct sluice_sync_metrics {
    sluice_metrics *reg;
    pthread_mutex_t mu; /* guards items */
    item *items;
    size_t n, cap;
};

/* ---- the kinds ----------------------------------------------------------------- */

/*
 * Each kind is a table: its families in exposition order (a row), and a
 * read function that snapshots one primitive (stats_get, then its
 * histogram if it has one) into a row of doubles, one value per sample
 * of each family in turn: one for a plain family, `nvals` for a family
 * with an extra label. A kind's histogram family, if any, comes last.
 */
typedef struct fam_row {
    const char *fam;
    sluice_metric_type type;
    const char *help;
    const char *label;               /* NULL: one sample per primitive, labelled name only */
    size_t nvals;                    /* label values (label != NULL) */
    const char *const *label_values; /* the values, or NULL to ask label_name */
    const char *(*label_name)(size_t j);
} fam_row;

typedef struct kind_desc {
    const char *(*name)(const void *obj);
    /* Returns the values written: row_width(); write_kind asserts it. */
    size_t (*read)(void *obj, double *out, sluice_histogram *h); /* h NULL unless hist_fam */
    const fam_row *rows;
    size_t nrows;
    const char *hist_fam, *hist_help; /* NULL: no histogram family */
} kind_desc;

#define G SLUICE_METRIC_GAUGE
#define C SLUICE_METRIC_COUNTER
#define ROW(fam, type, help)                                                                                 \
    {                                                                                                        \
        fam, type, help, NULL, 0, NULL, NULL                                                                 \
    }
#define ROW_BY(fam, help, label, values)                                                                     \
    {                                                                                                        \
        fam, C, help, label, sizeof values / sizeof *values, values, NULL                                    \
    }
#define ROW_NAMED(fam, help, label, n, fn)                                                                   \
    {                                                                                                        \
        fam, C, help, label, n, NULL, fn                                                                     \
    }
#define ROWS(r) r, sizeof r / sizeof *r

static const char *sem_name(const void *o)
{
    return sluice_sem_name(o);
}

static size_t sem_read(void *o, double *v, sluice_histogram *h)
{
    sluice_sem_stats st;
    sluice_sem_stats_get(o, &st);
    sluice_sem_histogram_get(o, h);
    const double x[] = {(double)st.capacity,   (double)st.in_use,        (double)st.waiters,
                        (double)st.acquired,   (double)st.timeouts,      (double)st.canceled,
                        (double)st.try_failed, (double)st.release_errors};
    memcpy(v, x, sizeof x);
    return sizeof x / sizeof *x;
}

static const fam_row sem_rows[] = {
    ROW("sluice_semaphore_capacity", G, "Units the semaphore hands out."),
    ROW("sluice_semaphore_in_use", G, "Units held now."),
    ROW("sluice_semaphore_waiters", G, "Acquirers queued now."),
    ROW("sluice_semaphore_acquired_total", C, "Successful acquires."),
    ROW("sluice_semaphore_timeouts_total", C, "Acquires that timed out."),
    ROW("sluice_semaphore_canceled_total", C, "Acquires ended by their context."),
    ROW("sluice_semaphore_try_failed_total", C, "try_acquire calls that would have waited."),
    ROW("sluice_semaphore_release_errors_total", C, "Releases of more than was held (refused)."),
};

static const char *breaker_name(const void *o)
{
    return sluice_breaker_name(o);
}

static size_t breaker_read(void *o, double *v, sluice_histogram *h)
{
    (void)h;
    sluice_breaker_stats st;
    sluice_breaker_stats_get(o, &st);
    const double x[] = {(double)st.state,   (double)st.successes,   (double)st.failures,
                        (double)st.ignored, (double)st.rejected,    (double)st.closed,
                        (double)st.opened,  (double)st.half_opened, st.failure_rate_percent};
    memcpy(v, x, sizeof x);
    return sizeof x / sizeof *x;
}

static const char *breaker_state_label(size_t j)
{
    static const sluice_breaker_state to[] = {SLUICE_BREAKER_CLOSED, SLUICE_BREAKER_OPEN,
                                              SLUICE_BREAKER_HALF_OPEN};
    return sluice_breaker_state_name(to[j]);
}

static const char *const breaker_outcomes[] = {"success", "failure", "ignored"};
static const fam_row breaker_rows[] = {
    ROW("sluice_breaker_state", G, "Breaker state: 0 closed, 1 open, 2 half-open."),
    ROW_BY("sluice_breaker_calls_total", "Calls let through, by recorded outcome.", "outcome",
           breaker_outcomes),
    ROW("sluice_breaker_rejected_total", C, "Calls refused while open (or half-open and full)."),
    ROW_NAMED("sluice_breaker_transitions_total", "State changes, by the state entered.", "to", 3,
              breaker_state_label),
    ROW("sluice_breaker_failure_rate_percent", G,
        "Failure rate over the sliding window; -1 below minimum_calls."),
};

static const char *limiter_name(const void *o)
{
    return sluice_limiter_name(o);
}

static size_t limiter_read(void *o, double *v, sluice_histogram *h)
{
    (void)h;
    sluice_limiter_stats st;
    sluice_limiter_stats_get(o, &st);
    const double x[] = {(double)st.allowed, (double)st.limited, (double)st.wait_timeouts, st.tokens, st.rate,
                        (double)st.waiters};
    memcpy(v, x, sizeof x);
    return sizeof x / sizeof *x;
}

static const fam_row limiter_rows[] = {
    ROW("sluice_limiter_allowed_total", C, "Calls admitted (allow, reserve, wait)."),
    ROW("sluice_limiter_limited_total", C, "allow() calls refused."),
    ROW("sluice_limiter_wait_timeouts_total", C, "wait() calls that timed out."),
    ROW("sluice_limiter_tokens", G, "Tokens in the bucket now (negative: reserved ahead)."),
    ROW("sluice_limiter_rate", G, "Configured tokens per second."),
    ROW("sluice_limiter_waiters", G, "Threads sleeping in wait()."),
};

static const char *keyed_limiter_name(const void *o)
{
    return sluice_keyed_limiter_name(o);
}

static size_t keyed_limiter_read(void *o, double *v, sluice_histogram *h)
{
    (void)h;
    sluice_keyed_limiter_stats st;
    sluice_keyed_limiter_stats_get(o, &st);
    const double x[] = {(double)st.keys, (double)st.max_keys, (double)st.evictions, (double)st.allowed,
                        (double)st.limited};
    memcpy(v, x, sizeof x);
    return sizeof x / sizeof *x;
}

static const fam_row keyed_limiter_rows[] = {
    ROW("sluice_keyed_limiter_keys", G, "Keys tracked now."),
    ROW("sluice_keyed_limiter_max_keys", G, "The bound on keys tracked."),
    ROW("sluice_keyed_limiter_evictions_total", C, "Keys forgotten to stay within max_keys."),
    ROW("sluice_keyed_limiter_allowed_total", C, "Calls admitted."),
    ROW("sluice_keyed_limiter_limited_total", C, "Calls refused."),
};

static const char *group_name(const void *o)
{
    return sluice_group_name(o);
}

static size_t group_read(void *o, double *v, sluice_histogram *h)
{
    (void)h;
    sluice_group_stats st;
    sluice_group_stats_get(o, &st);
    const double x[] = {(double)st.running,  (double)st.pending, (double)st.completed, (double)st.failed,
                        (double)st.panicked, (double)st.skipped, (double)st.helped};
    memcpy(v, x, sizeof x);
    return sizeof x / sizeof *x;
}

static const char *const group_outcomes[] = {"completed", "failed", "panicked", "skipped", "helped"};
static const fam_row group_rows[] = {
    ROW("sluice_group_running", G, "Group tasks running now."),
    ROW("sluice_group_pending", G, "Group tasks accepted and not started."),
    ROW_BY("sluice_group_tasks_total",
           "Group tasks by outcome (helped counts tasks run inline by a waiting worker, also in the others).",
           "outcome", group_outcomes),
};

static const char *retry_name(const void *o)
{
    return sluice_retry_name(o);
}

static size_t retry_read(void *o, double *v, sluice_histogram *h)
{
    (void)h;
    sluice_retry_stats st;
    sluice_retry_stats_get(o, &st);
    const double x[] = {(double)st.in_flight, (double)st.waiting, (double)st.attempts, (double)st.retries,
                        (double)st.budget_exhausted};
    memcpy(v, x, sizeof x);
    v += sizeof x / sizeof *x;
    for (size_t k = 0; k < SLUICE_RETRY_OUTCOME_COUNT_; k++) {
        v[k] = (double)st.outcomes[k];
    }
    return sizeof x / sizeof *x + SLUICE_RETRY_OUTCOME_COUNT_;
}

static const char *retry_outcome_label(size_t j)
{
    return sluice_retry_outcome_name((sluice_retry_outcome)j);
}

static const fam_row retry_rows[] = {
    ROW("sluice_retry_in_flight", G, "Calls started and not yet ended."),
    ROW("sluice_retry_waiting", G, "Calls waiting out a backoff now."),
    ROW("sluice_retry_attempts_total", C, "Attempts run, first attempts included."),
    ROW("sluice_retry_retries_total", C, "Attempts after the first."),
    ROW("sluice_retry_budget_exhausted_total", C, "Retries the retry budget refused."),
    ROW_NAMED("sluice_retry_calls_total", "Ended calls, by how they ended.", "outcome",
              SLUICE_RETRY_OUTCOME_COUNT_, retry_outcome_label),
};

static const char *retry_budget_name(const void *o)
{
    return sluice_retry_budget_name(o);
}

static size_t retry_budget_read(void *o, double *v, sluice_histogram *h)
{
    (void)h;
    sluice_retry_budget_stats st;
    sluice_retry_budget_stats_get(o, &st);
    const double x[] = {(double)st.first_attempts, (double)st.retries, (double)st.exhausted, st.balance,
                        st.ratio};
    memcpy(v, x, sizeof x);
    return sizeof x / sizeof *x;
}

static const fam_row retry_budget_rows[] = {
    ROW("sluice_retry_budget_first_attempts_total", C, "First attempts deposited."),
    ROW("sluice_retry_budget_granted_total", C, "Retries granted."),
    ROW("sluice_retry_budget_refused_total", C, "Retries refused (budget exhausted)."),
    ROW("sluice_retry_budget_balance", G, "Retries the window would still grant now."),
    ROW("sluice_retry_budget_ratio", G, "Configured retries per first attempt."),
};

static const char *keyed_exec_name(const void *o)
{
    return sluice_keyed_name(o);
}

static size_t keyed_exec_read(void *o, double *v, sluice_histogram *h)
{
    (void)h;
    sluice_keyed_stats st;
    sluice_keyed_stats_get(o, &st);
    const double x[] = {(double)st.keys,
                        (double)st.active_keys,
                        (double)st.queued,
                        (double)st.longest_backlog,
                        (double)st.longest_backlog_hwm,
                        (double)st.runners,
                        (double)st.waiting,
                        (double)st.submitted,
                        (double)st.rejected,
                        (double)st.dropped,
                        (double)st.abandoned,
                        (double)st.completed,
                        (double)st.failed,
                        (double)st.panicked};
    memcpy(v, x, sizeof x);
    return sizeof x / sizeof *x;
}

static const char *const keyed_exec_outcomes[] = {"completed", "failed", "panicked"};
static const fam_row keyed_exec_rows[] = {
    ROW("sluice_keyed_executor_keys", G, "Keys with a task waiting or running."),
    ROW("sluice_keyed_executor_active_keys", G, "Keys running a task now."),
    ROW("sluice_keyed_executor_queued", G, "Tasks waiting, all keys."),
    ROW("sluice_keyed_executor_longest_backlog", G, "The most tasks waiting on one key now."),
    ROW("sluice_keyed_executor_longest_backlog_max", G, "The most tasks ever waiting on one key."),
    ROW("sluice_keyed_executor_runners", G, "Runner tasks on the pool now."),
    ROW("sluice_keyed_executor_waiting", G, "Submitters blocked for space."),
    ROW("sluice_keyed_executor_submitted_total", C, "Tasks accepted."),
    ROW("sluice_keyed_executor_rejected_total", C, "Tasks refused at submit."),
    ROW("sluice_keyed_executor_dropped_total", C, "Tasks evicted by drop_oldest."),
    ROW("sluice_keyed_executor_abandoned_total", C, "Tasks handed back at drain or destroy."),
    ROW_BY("sluice_keyed_executor_tasks_total", "Tasks run, by outcome.", "outcome", keyed_exec_outcomes),
};

static const char *batcher_name(const void *o)
{
    return sluice_batcher_name(o);
}

static size_t batcher_read(void *o, double *v, sluice_histogram *h)
{
    sluice_batcher_stats st;
    sluice_batcher_stats_get(o, &st);
    sluice_batcher_size_histogram(o, h);
    const double x[] = {(double)st.pending_items, (double)st.in_flight, (double)st.waiting,
                        (double)st.added,         (double)st.rejected,  (double)st.delivered,
                        (double)st.failed_items};
    memcpy(v, x, sizeof x);
    v += sizeof x / sizeof *x;
    for (size_t k = 0; k < SLUICE_FLUSH_REASON_COUNT_; k++) {
        *v++ = (double)st.flushes[k];
    }
    for (size_t k = 0; k < SLUICE_BATCH_FAILURE_COUNT_; k++) {
        *v++ = (double)st.failures[k];
    }
    return sizeof x / sizeof *x + SLUICE_FLUSH_REASON_COUNT_ + SLUICE_BATCH_FAILURE_COUNT_;
}

static const char *flush_reason_label(size_t j)
{
    return sluice_flush_reason_name((sluice_flush_reason)j);
}

static const char *batch_failure_label(size_t j)
{
    return sluice_batch_failure_name((sluice_batch_failure)j);
}

static const char *const batcher_item_outcomes[] = {"delivered", "failed"};
static const fam_row batcher_rows[] = {
    ROW("sluice_batcher_pending_items", G, "Items in the current, unsealed batch."),
    ROW("sluice_batcher_in_flight", G, "Sealed batches queued or running."),
    ROW("sluice_batcher_waiting", G, "Adders waiting for room."),
    ROW("sluice_batcher_added_total", C, "Items added."),
    ROW("sluice_batcher_rejected_total", C, "Adds refused (full, timed out, deadlock)."),
    ROW_BY("sluice_batcher_items_total", "Items delivered, or handed to the failure handler.", "outcome",
           batcher_item_outcomes),
    ROW_NAMED("sluice_batcher_batches_total", "Batches sealed, by flush reason.", "reason",
              SLUICE_FLUSH_REASON_COUNT_, flush_reason_label),
    ROW_NAMED("sluice_batcher_failed_batches_total", "Batches handed to the failure handler, by why.", "why",
              SLUICE_BATCH_FAILURE_COUNT_, batch_failure_label),
};

static const char *adaptive_name(const void *o)
{
    return sluice_adaptive_name(o);
}

static size_t adaptive_read(void *o, double *v, sluice_histogram *h)
{
    (void)h;
    sluice_adaptive_stats st;
    sluice_adaptive_stats_get(o, &st);
    const double x[] = {(double)st.limit,       (double)st.inflight,          (double)st.waiters,
                        st.probing ? 1.0 : 0.0, (double)st.long_rtt_ns / 1e9, (double)st.short_rtt_ns / 1e9,
                        (double)st.acquired,    (double)st.rejected,          (double)st.timeouts,
                        (double)st.canceled,    (double)st.successes,         (double)st.drops,
                        (double)st.ignored,     (double)st.decisions_up,      (double)st.decisions_down,
                        (double)st.probes,      (double)st.rebases,           (double)st.congestion_verdicts};
    memcpy(v, x, sizeof x);
    return sizeof x / sizeof *x;
}

static const char *const adaptive_outcomes[] = {"success", "dropped", "ignored"};
static const char *const adaptive_directions[] = {"up", "down"};

static const fam_row adaptive_rows[] = {
    ROW("sluice_adaptive_limit", G, "The concurrency limit in force now (min_limit during a probe)."),
    ROW("sluice_adaptive_inflight", G, "Calls admitted and not yet released."),
    ROW("sluice_adaptive_waiters", G, "Acquirers waiting for a slot."),
    ROW("sluice_adaptive_probing", G, "1 while a no-load RTT probe window runs."),
    ROW("sluice_adaptive_no_load_rtt_seconds", G, "The no-load RTT estimate (0: none yet)."),
    ROW("sluice_adaptive_rtt_seconds", G, "Mean RTT of the last complete window (0: none yet)."),
    ROW("sluice_adaptive_acquired_total", C, "Calls admitted."),
    ROW("sluice_adaptive_rejected_total", C, "try_acquire calls refused at the limit."),
    ROW("sluice_adaptive_timeouts_total", C, "acquire_until calls that timed out."),
    ROW("sluice_adaptive_canceled_total", C, "acquire_until calls ended by their context."),
    ROW_BY("sluice_adaptive_releases_total", "Calls released, by the outcome the caller reported.", "outcome",
           adaptive_outcomes),
    ROW_BY("sluice_adaptive_decisions_total",
           "Times the integer limit moved, by direction (probes not counted).", "direction",
           adaptive_directions),
    ROW("sluice_adaptive_probes_total", C, "No-load RTT probe windows completed."),
    ROW("sluice_adaptive_rebases_total", C,
        "Probes whose RTT did not fall with the limit: a slower downstream, the no-load RTT re-based."),
    ROW("sluice_adaptive_congestion_total", C,
        "Probes whose RTT fell with the limit: congestion, backed off."),
};

/* Indexed by kind; the order is the order kinds are written in. */
static const kind_desc kinds[K_COUNT] = {
    [K_SEM] = {sem_name, sem_read, ROWS(sem_rows), "sluice_semaphore_acquire_wait_seconds",
               "Time from acquire to grant, successful acquires only."},
    [K_BREAKER] = {breaker_name, breaker_read, ROWS(breaker_rows), NULL, NULL},
    [K_LIMITER] = {limiter_name, limiter_read, ROWS(limiter_rows), NULL, NULL},
    [K_KEYED] = {keyed_limiter_name, keyed_limiter_read, ROWS(keyed_limiter_rows), NULL, NULL},
    [K_GROUP] = {group_name, group_read, ROWS(group_rows), NULL, NULL},
    [K_RETRY] = {retry_name, retry_read, ROWS(retry_rows), NULL, NULL},
    [K_RETRY_BUDGET] = {retry_budget_name, retry_budget_read, ROWS(retry_budget_rows), NULL, NULL},
    [K_KEYED_EXEC] = {keyed_exec_name, keyed_exec_read, ROWS(keyed_exec_rows), NULL, NULL},
    [K_BATCHER] = {batcher_name, batcher_read, ROWS(batcher_rows), "sluice_batcher_batch_size",
                   "Items per sealed batch."},
    [K_ADAPTIVE] = {adaptive_name, adaptive_read, ROWS(adaptive_rows), NULL, NULL},
};

static const char *name_of(kind k, const void *obj)
{
    return (unsigned)k < K_COUNT ? kinds[k].name(obj) : "";
}

/* Values per primitive of a kind: one per sample of each of its rows. */
static size_t row_width(const kind_desc *d)
{
    size_t t = 0;
    for (size_t r = 0; r < d->nrows; r++) {
        t += d->rows[r].label ? d->rows[r].nvals : 1;
    }
    return t;
}

/* ---- writing ------------------------------------------------------------------- */

/* Snapshot the n primitives its[0..n) of kind d, then write its families.
 * If the snapshot arrays cannot be allocated, the kind writes nothing. */
static void write_kind(sluice_expo *w, const kind_desc *d, item **its, size_t n, const char **names)
{
    size_t t = row_width(d);
    double *v = calloc(n * t, sizeof *v);
    sluice_histogram *h = d->hist_fam ? calloc(n, sizeof *h) : NULL;
    if (!v || (d->hist_fam && !h)) {
        free(v);
        free(h);
        return;
    }
    for (size_t i = 0; i < n; i++) {
        size_t wrote = d->read(its[i]->obj, &v[i * t], h ? &h[i] : NULL);
        SLUICE__ASSERT(wrote == t); /* a read out of step with its rows would mislabel samples */
        (void)wrote;
    }
    size_t off = 0; /* of the row's first value within a primitive's t */
    for (size_t r = 0; r < d->nrows; r++) {
        const fam_row *row = &d->rows[r];
        sluice_expo_family(w, row->fam, row->type, row->help);
        if (!row->label) {
            for (size_t i = 0; i < n; i++) {
                sluice_metric_label l = {"name", names[i]};
                sluice_expo_sample(w, &l, 1, v[i * t + off]);
            }
            off++;
            continue;
        }
        for (size_t i = 0; i < n; i++) {
            for (size_t j = 0; j < row->nvals; j++) {
                const char *lv = row->label_values ? row->label_values[j] : row->label_name(j);
                sluice_metric_label l[2] = {{"name", names[i]}, {row->label, lv}};
                sluice_expo_sample(w, l, 2, v[i * t + off + j]);
            }
        }
        off += row->nvals;
    }
    if (d->hist_fam) {
        sluice_expo_family(w, d->hist_fam, SLUICE_METRIC_HISTOGRAM, d->hist_help);
        for (size_t i = 0; i < n; i++) {
            sluice_metric_label l = {"name", names[i]};
            sluice_expo_histogram(w, &l, 1, &h[i]);
        }
    }
    free(v);
    free(h);
}

static void collect(sluice_expo *w, void *user)
{
    sluice_sync_metrics *sm = user;
    pthread_mutex_lock(&sm->mu);
    size_t n = sm->n;
    item **its = n ? calloc(n, sizeof *its) : NULL;
    const char **names = n ? calloc(n, sizeof *names) : NULL;
    if (n && (!its || !names)) {
        n = 0;
    }
    for (int k = 0; k < K_COUNT; k++) {
        size_t m = 0;
        for (size_t i = 0; i < n; i++) {
            if (sm->items[i].k == (kind)k) {
                its[m] = &sm->items[i];
                names[m] = name_of((kind)k, sm->items[i].obj);
                m++;
            }
        }
        if (m > 0) {
            write_kind(w, &kinds[k], its, m, names);
        }
    }
    pthread_mutex_unlock(&sm->mu);
    free(its);
    free(names);
}

/* ---- the set ------------------------------------------------------------------- */

sluice_err sluice_sync_metrics_create(sluice_metrics *reg, sluice_sync_metrics **out)
{
    if (!reg || !out) {
        return SLUICE_EINVAL;
    }
    sluice_sync_metrics *sm = calloc(1, sizeof *sm);
    if (!sm) {
        return SLUICE_ENOMEM;
    }
    if (pthread_mutex_init(&sm->mu, NULL) != 0) {
        free(sm);
        return SLUICE_ENOMEM;
    }
    sm->reg = reg;
    sluice_err err = sluice_metrics_add_collector(reg, collect, sm);
    if (err) {
        pthread_mutex_destroy(&sm->mu);
        free(sm);
        return err;
    }
    *out = sm;
    return SLUICE_OK;
}

void sluice_sync_metrics_destroy(sluice_sync_metrics *sm)
{
    if (!sm) {
        return;
    }
    sluice_metrics_remove_collector(sm->reg, collect, sm); /* after this, collect is not running */
    pthread_mutex_destroy(&sm->mu);
    free(sm->items);
    free(sm);
}

static sluice_err add(sluice_sync_metrics *sm, kind k, void *obj)
{
    if (!sm || !obj) {
        return SLUICE_EINVAL;
    }
    const char *name = name_of(k, obj);
    pthread_mutex_lock(&sm->mu);
    for (size_t i = 0; i < sm->n; i++) {
        if (sm->items[i].obj == obj ||
            (sm->items[i].k == k && strcmp(name_of(k, sm->items[i].obj), name) == 0)) {
            pthread_mutex_unlock(&sm->mu);
            return SLUICE_EBUSY;
        }
    }
    if (sm->n == sm->cap) {
        size_t cap = sm->cap ? sm->cap * 2 : 8;
        item *grown = realloc(sm->items, cap * sizeof *grown);
        if (!grown) {
            pthread_mutex_unlock(&sm->mu);
            return SLUICE_ENOMEM;
        }
        sm->items = grown;
        sm->cap = cap;
    }
    sm->items[sm->n++] = (item){k, obj};
    pthread_mutex_unlock(&sm->mu);
    return SLUICE_OK;
}

static sluice_err del(sluice_sync_metrics *sm, kind k, void *obj)
{
    if (!sm || !obj) {
        return SLUICE_EINVAL;
    }
    pthread_mutex_lock(&sm->mu);
    for (size_t i = 0; i < sm->n; i++) {
        if (sm->items[i].obj == obj && sm->items[i].k == k) {
            memmove(&sm->items[i], &sm->items[i + 1], (sm->n - i - 1) * sizeof *sm->items);
            sm->n--;
            pthread_mutex_unlock(&sm->mu);
            return SLUICE_OK;
        }
    }
    pthread_mutex_unlock(&sm->mu);
    return SLUICE_ENOENT;
}

sluice_err sluice_sync_metrics_add_sem(sluice_sync_metrics *sm, sluice_sem *sem)
{
    return add(sm, K_SEM, sem);
}

sluice_err sluice_sync_metrics_remove_sem(sluice_sync_metrics *sm, sluice_sem *sem)
{
    return del(sm, K_SEM, sem);
}

sluice_err sluice_sync_metrics_add_breaker(sluice_sync_metrics *sm, sluice_breaker *breaker)
{
    return add(sm, K_BREAKER, breaker);
}

sluice_err sluice_sync_metrics_remove_breaker(sluice_sync_metrics *sm, sluice_breaker *breaker)
{
    return del(sm, K_BREAKER, breaker);
}

sluice_err sluice_sync_metrics_add_limiter(sluice_sync_metrics *sm, sluice_limiter *lim)
{
    return add(sm, K_LIMITER, lim);
}

sluice_err sluice_sync_metrics_remove_limiter(sluice_sync_metrics *sm, sluice_limiter *lim)
{
    return del(sm, K_LIMITER, lim);
}

sluice_err sluice_sync_metrics_add_keyed_limiter(sluice_sync_metrics *sm, sluice_keyed_limiter *kl)
{
    return add(sm, K_KEYED, kl);
}

sluice_err sluice_sync_metrics_remove_keyed_limiter(sluice_sync_metrics *sm, sluice_keyed_limiter *kl)
{
    return del(sm, K_KEYED, kl);
}

sluice_err sluice_sync_metrics_add_group(sluice_sync_metrics *sm, sluice_group *g)
{
    return add(sm, K_GROUP, g);
}

sluice_err sluice_sync_metrics_remove_group(sluice_sync_metrics *sm, sluice_group *g)
{
    return del(sm, K_GROUP, g);
}

sluice_err sluice_sync_metrics_add_retry(sluice_sync_metrics *sm, sluice_retry *r)
{
    return add(sm, K_RETRY, r);
}

sluice_err sluice_sync_metrics_remove_retry(sluice_sync_metrics *sm, sluice_retry *r)
{
    return del(sm, K_RETRY, r);
}

sluice_err sluice_sync_metrics_add_retry_budget(sluice_sync_metrics *sm, sluice_retry_budget *b)
{
    return add(sm, K_RETRY_BUDGET, b);
}

sluice_err sluice_sync_metrics_remove_retry_budget(sluice_sync_metrics *sm, sluice_retry_budget *b)
{
    return del(sm, K_RETRY_BUDGET, b);
}

sluice_err sluice_sync_metrics_add_keyed(sluice_sync_metrics *sm, sluice_keyed *ex)
{
    return add(sm, K_KEYED_EXEC, ex);
}

sluice_err sluice_sync_metrics_remove_keyed(sluice_sync_metrics *sm, sluice_keyed *ex)
{
    return del(sm, K_KEYED_EXEC, ex);
}

sluice_err sluice_sync_metrics_add_batcher(sluice_sync_metrics *sm, sluice_batcher *b)
{
    return add(sm, K_BATCHER, b);
}

sluice_err sluice_sync_metrics_remove_batcher(sluice_sync_metrics *sm, sluice_batcher *b)
{
    return del(sm, K_BATCHER, b);
}

sluice_err sluice_sync_metrics_add_adaptive(sluice_sync_metrics *sm, sluice_adaptive *lim)
{
    return add(sm, K_ADAPTIVE, lim);
}

sluice_err sluice_sync_metrics_remove_adaptive(sluice_sync_metrics *sm, sluice_adaptive *lim)
{
    return del(sm, K_ADAPTIVE, lim);
}
