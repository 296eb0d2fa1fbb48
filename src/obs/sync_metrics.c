/*
 * src/obs/sync_metrics.c - one registry collector for the sync primitives.
 *
 * Purpose. Export semaphores, breakers, limiters and groups in the
 * Prometheus/OpenMetrics exposition without touching their hot paths.
 *
 * Design. The set keeps one array of (kind, object) entries. The
 * registry requires each family to be written once per scrape with all
 * its samples, so the collector works kind by kind: it snapshots the
 * stats of every entry of that kind into a local array (each snapshot
 * under the primitive's own lock, so each primitive's values are
 * consistent with each other), then writes the kind's families, one
 * sample per primitive, labelled name="<its name>". Kinds with no entry
 * write nothing.
 *
 * Lock order: registry lock (held around the collector) -> sm->mu -> a
 * primitive's lock (inside its stats_get). add/remove take sm->mu only,
 * so a remove waits for a scrape in progress to finish with the entry.
 */
#include <pthread.h>
#include <stdlib.h>
#include <string.h>

#include "sluice/sync_metrics.h"

typedef enum kind { K_SEM = 0, K_BREAKER, K_LIMITER, K_KEYED, K_GROUP, K_RETRY, K_RETRY_BUDGET, K_KEYED_EXEC, K_BATCHER, K_COUNT } kind;

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

static const char *name_of(kind k, const void *obj)
{
    switch (k) {
    case K_SEM:
        return sluice_sem_name(obj);
    case K_BREAKER:
        return sluice_breaker_name(obj);
    case K_LIMITER:
        return sluice_limiter_name(obj);
    case K_KEYED:
        return sluice_keyed_limiter_name(obj);
    case K_GROUP:
        return sluice_group_name(obj);
    case K_RETRY:
        return sluice_retry_name(obj);
    case K_RETRY_BUDGET:
        return sluice_retry_budget_name(obj);
    case K_KEYED_EXEC:
        return sluice_keyed_name(obj);
    case K_BATCHER:
        return sluice_batcher_name(obj);
    case K_COUNT:
        break;
    }
    return "";
}

/* ---- writing ------------------------------------------------------------------- */

/* One gauge/counter family: a sample per entry from values[i]. */
static void family(sluice_expo *w, const char *fam, sluice_metric_type type, const char *help,
                   const char **names, const double *values, size_t n)
{
    sluice_expo_family(w, fam, type, help);
    for (size_t i = 0; i < n; i++) {
        sluice_metric_label l = {"name", names[i]};
        sluice_expo_sample(w, &l, 1, values[i]);
    }
}

/* A family with one extra label taking `nvals` values per entry. */
static void family2(sluice_expo *w, const char *fam, const char *help, const char **names, size_t n,
                    const char *label, const char *const *label_values, size_t nvals, const double *values)
{
    sluice_expo_family(w, fam, SLUICE_METRIC_COUNTER, help);
    for (size_t i = 0; i < n; i++) {
        for (size_t j = 0; j < nvals; j++) {
            sluice_metric_label l[2] = {{"name", names[i]}, {label, label_values[j]}};
            sluice_expo_sample(w, l, 2, values[i * nvals + j]);
        }
    }
}

#define G SLUICE_METRIC_GAUGE
#define C SLUICE_METRIC_COUNTER

/* A family of one sample per entry from field `field` of st[0..n); used
 * inside the write_* functions below, which all name their locals w, st,
 * names, v and n. */
#define FIELD_FAMILY(fam, type, help, field)                                                                 \
    do {                                                                                                     \
        for (size_t i = 0; i < n; i++) {                                                                     \
            v[i] = (double)st[i].field;                                                                      \
        }                                                                                                    \
        family(w, fam, type, help, names, v, n);                                                             \
    } while (0)

static void write_sems(sluice_expo *w, item **its, size_t n, const char **names, double *v)
{
    sluice_sem_stats *st = calloc(n, sizeof *st);
    sluice_histogram *h = calloc(n, sizeof *h);
    if (!st || !h) {
        free(st);
        free(h);
        return;
    }
    for (size_t i = 0; i < n; i++) {
        sluice_sem_stats_get(its[i]->obj, &st[i]);
        sluice_sem_histogram_get(its[i]->obj, &h[i]);
    }
    FIELD_FAMILY("sluice_semaphore_capacity", G, "Units the semaphore hands out.", capacity);
    FIELD_FAMILY("sluice_semaphore_in_use", G, "Units held now.", in_use);
    FIELD_FAMILY("sluice_semaphore_waiters", G, "Acquirers queued now.", waiters);
    FIELD_FAMILY("sluice_semaphore_acquired_total", C, "Successful acquires.", acquired);
    FIELD_FAMILY("sluice_semaphore_timeouts_total", C, "Acquires that timed out.", timeouts);
    FIELD_FAMILY("sluice_semaphore_canceled_total", C, "Acquires ended by their context.", canceled);
    FIELD_FAMILY("sluice_semaphore_try_failed_total", C, "try_acquire calls that would have waited.",
                 try_failed);
    FIELD_FAMILY("sluice_semaphore_release_errors_total", C, "Releases of more than was held (refused).",
                 release_errors);
    sluice_expo_family(w, "sluice_semaphore_acquire_wait_seconds", SLUICE_METRIC_HISTOGRAM,
                       "Time from acquire to grant, successful acquires only.");
    for (size_t i = 0; i < n; i++) {
        sluice_metric_label l = {"name", names[i]};
        sluice_expo_histogram(w, &l, 1, &h[i]);
    }
    free(st);
    free(h);
}

static void write_breakers(sluice_expo *w, item **its, size_t n, const char **names, double *v)
{
    sluice_breaker_stats *st = calloc(n, sizeof *st);
    double *v3 = calloc(n * 3, sizeof *v3);
    if (!st || !v3) {
        free(st);
        free(v3);
        return;
    }
    for (size_t i = 0; i < n; i++) {
        sluice_breaker_stats_get(its[i]->obj, &st[i]);
    }
    FIELD_FAMILY("sluice_breaker_state", G, "Breaker state: 0 closed, 1 open, 2 half-open.", state);
    static const char *const outcomes[] = {"success", "failure", "ignored"};
    for (size_t i = 0; i < n; i++) {
        v3[i * 3] = (double)st[i].successes;
        v3[i * 3 + 1] = (double)st[i].failures;
        v3[i * 3 + 2] = (double)st[i].ignored;
    }
    family2(w, "sluice_breaker_calls_total", "Calls let through, by recorded outcome.", names, n, "outcome",
            outcomes, 3, v3);
    FIELD_FAMILY("sluice_breaker_rejected_total", C, "Calls refused while open (or half-open and full).",
                 rejected);
    const char *states[] = {sluice_breaker_state_name(SLUICE_BREAKER_CLOSED),
                            sluice_breaker_state_name(SLUICE_BREAKER_OPEN),
                            sluice_breaker_state_name(SLUICE_BREAKER_HALF_OPEN)};
    for (size_t i = 0; i < n; i++) {
        v3[i * 3] = (double)st[i].closed;
        v3[i * 3 + 1] = (double)st[i].opened;
        v3[i * 3 + 2] = (double)st[i].half_opened;
    }
    family2(w, "sluice_breaker_transitions_total", "State changes, by the state entered.", names, n, "to",
            states, 3, v3);
    FIELD_FAMILY("sluice_breaker_failure_rate_percent", G,
                 "Failure rate over the sliding window; -1 below minimum_calls.", failure_rate_percent);
    free(st);
    free(v3);
}

static void write_limiters(sluice_expo *w, item **its, size_t n, const char **names, double *v)
{
    sluice_limiter_stats *st = calloc(n, sizeof *st);
    if (!st) {
        return;
    }
    for (size_t i = 0; i < n; i++) {
        sluice_limiter_stats_get(its[i]->obj, &st[i]);
    }
    FIELD_FAMILY("sluice_limiter_allowed_total", C, "Calls admitted (allow, reserve, wait).", allowed);
    FIELD_FAMILY("sluice_limiter_limited_total", C, "allow() calls refused.", limited);
    FIELD_FAMILY("sluice_limiter_wait_timeouts_total", C, "wait() calls that timed out.", wait_timeouts);
    FIELD_FAMILY("sluice_limiter_tokens", G, "Tokens in the bucket now (negative: reserved ahead).", tokens);
    FIELD_FAMILY("sluice_limiter_rate", G, "Configured tokens per second.", rate);
    FIELD_FAMILY("sluice_limiter_waiters", G, "Threads sleeping in wait().", waiters);
    free(st);
}

static void write_keyed(sluice_expo *w, item **its, size_t n, const char **names, double *v)
{
    sluice_keyed_limiter_stats *st = calloc(n, sizeof *st);
    if (!st) {
        return;
    }
    for (size_t i = 0; i < n; i++) {
        sluice_keyed_limiter_stats_get(its[i]->obj, &st[i]);
    }
    FIELD_FAMILY("sluice_keyed_limiter_keys", G, "Keys tracked now.", keys);
    FIELD_FAMILY("sluice_keyed_limiter_max_keys", G, "The bound on keys tracked.", max_keys);
    FIELD_FAMILY("sluice_keyed_limiter_evictions_total", C, "Keys forgotten to stay within max_keys.",
                 evictions);
    FIELD_FAMILY("sluice_keyed_limiter_allowed_total", C, "Calls admitted.", allowed);
    FIELD_FAMILY("sluice_keyed_limiter_limited_total", C, "Calls refused.", limited);
    free(st);
}

static void write_groups(sluice_expo *w, item **its, size_t n, const char **names, double *v)
{
    sluice_group_stats *st = calloc(n, sizeof *st);
    double *v5 = calloc(n * 5, sizeof *v5);
    if (!st || !v5) {
        free(st);
        free(v5);
        return;
    }
    for (size_t i = 0; i < n; i++) {
        sluice_group_stats_get(its[i]->obj, &st[i]);
    }
    FIELD_FAMILY("sluice_group_running", G, "Group tasks running now.", running);
    FIELD_FAMILY("sluice_group_pending", G, "Group tasks accepted and not started.", pending);
    static const char *const outcomes[] = {"completed", "failed", "panicked", "skipped", "helped"};
    for (size_t i = 0; i < n; i++) {
        v5[i * 5] = (double)st[i].completed;
        v5[i * 5 + 1] = (double)st[i].failed;
        v5[i * 5 + 2] = (double)st[i].panicked;
        v5[i * 5 + 3] = (double)st[i].skipped;
        v5[i * 5 + 4] = (double)st[i].helped;
    }
    family2(
        w, "sluice_group_tasks_total",
        "Group tasks by outcome (helped counts tasks run inline by a waiting worker, also in the others).",
        names, n, "outcome", outcomes, 5, v5);
    free(st);
    free(v5);
}

static void write_retries(sluice_expo *w, item **its, size_t n, const char **names, double *v)
{
    enum { NO = SLUICE_RETRY_OUTCOME_COUNT_ };
    sluice_retry_stats *st = calloc(n, sizeof *st);
    double *vo = calloc(n * NO, sizeof *vo);
    if (!st || !vo) {
        free(st);
        free(vo);
        return;
    }
    for (size_t i = 0; i < n; i++) {
        sluice_retry_stats_get(its[i]->obj, &st[i]);
    }
    FIELD_FAMILY("sluice_retry_in_flight", G, "Calls started and not yet ended.", in_flight);
    FIELD_FAMILY("sluice_retry_waiting", G, "Calls waiting out a backoff now.", waiting);
    FIELD_FAMILY("sluice_retry_attempts_total", C, "Attempts run, first attempts included.", attempts);
    FIELD_FAMILY("sluice_retry_retries_total", C, "Attempts after the first.", retries);
    FIELD_FAMILY("sluice_retry_budget_exhausted_total", C, "Retries the retry budget refused.",
                 budget_exhausted);
    const char *outcomes[NO];
    for (int k = 0; k < NO; k++) {
        outcomes[k] = sluice_retry_outcome_name((sluice_retry_outcome)k);
    }
    for (size_t i = 0; i < n; i++) {
        for (size_t k = 0; k < NO; k++) {
            vo[i * NO + k] = (double)st[i].outcomes[k];
        }
    }
    family2(w, "sluice_retry_calls_total", "Ended calls, by how they ended.", names, n, "outcome", outcomes, NO,
            vo);
    free(st);
    free(vo);
}

static void write_retry_budgets(sluice_expo *w, item **its, size_t n, const char **names, double *v)
{
    sluice_retry_budget_stats *st = calloc(n, sizeof *st);
    if (!st) {
        return;
    }
    for (size_t i = 0; i < n; i++) {
        sluice_retry_budget_stats_get(its[i]->obj, &st[i]);
    }
    FIELD_FAMILY("sluice_retry_budget_first_attempts_total", C, "First attempts deposited.", first_attempts);
    FIELD_FAMILY("sluice_retry_budget_granted_total", C, "Retries granted.", retries);
    FIELD_FAMILY("sluice_retry_budget_refused_total", C, "Retries refused (budget exhausted).", exhausted);
    FIELD_FAMILY("sluice_retry_budget_balance", G, "Retries the window would still grant now.", balance);
    FIELD_FAMILY("sluice_retry_budget_ratio", G, "Configured retries per first attempt.", ratio);
    free(st);
}

static void write_keyed_execs(sluice_expo *w, item **its, size_t n, const char **names, double *v)
{
    sluice_keyed_stats *st = calloc(n, sizeof *st);
    double *v3 = calloc(n * 3, sizeof *v3);
    if (!st || !v3) {
        free(st);
        free(v3);
        return;
    }
    for (size_t i = 0; i < n; i++) {
        sluice_keyed_stats_get(its[i]->obj, &st[i]);
    }
    FIELD_FAMILY("sluice_keyed_executor_keys", G, "Keys with a task waiting or running.", keys);
    FIELD_FAMILY("sluice_keyed_executor_active_keys", G, "Keys running a task now.", active_keys);
    FIELD_FAMILY("sluice_keyed_executor_queued", G, "Tasks waiting, all keys.", queued);
    FIELD_FAMILY("sluice_keyed_executor_longest_backlog", G, "The most tasks waiting on one key now.",
                 longest_backlog);
    FIELD_FAMILY("sluice_keyed_executor_longest_backlog_max", G, "The most tasks ever waiting on one key.",
                 longest_backlog_hwm);
    FIELD_FAMILY("sluice_keyed_executor_runners", G, "Runner tasks on the pool now.", runners);
    FIELD_FAMILY("sluice_keyed_executor_waiting", G, "Submitters blocked for space.", waiting);
    FIELD_FAMILY("sluice_keyed_executor_submitted_total", C, "Tasks accepted.", submitted);
    FIELD_FAMILY("sluice_keyed_executor_rejected_total", C, "Tasks refused at submit.", rejected);
    FIELD_FAMILY("sluice_keyed_executor_dropped_total", C, "Tasks evicted by drop_oldest.", dropped);
    FIELD_FAMILY("sluice_keyed_executor_abandoned_total", C, "Tasks handed back at drain or destroy.",
                 abandoned);
    static const char *const outcomes[] = {"completed", "failed", "panicked"};
    for (size_t i = 0; i < n; i++) {
        v3[i * 3] = (double)st[i].completed;
        v3[i * 3 + 1] = (double)st[i].failed;
        v3[i * 3 + 2] = (double)st[i].panicked;
    }
    family2(w, "sluice_keyed_executor_tasks_total", "Tasks run, by outcome.", names, n, "outcome", outcomes, 3,
            v3);
    free(st);
    free(v3);
}

static void write_batchers(sluice_expo *w, item **its, size_t n, const char **names, double *v)
{
    enum { NR = SLUICE_FLUSH_REASON_COUNT_, NF = SLUICE_BATCH_FAILURE_COUNT_ };
    sluice_batcher_stats *st = calloc(n, sizeof *st);
    sluice_histogram *h = calloc(n, sizeof *h);
    double *vr = calloc(n * NF, sizeof *vr); /* NF >= NR and >= 2 */
    if (!st || !h || !vr) {
        free(st);
        free(h);
        free(vr);
        return;
    }
    for (size_t i = 0; i < n; i++) {
        sluice_batcher_stats_get(its[i]->obj, &st[i]);
        sluice_batcher_size_histogram(its[i]->obj, &h[i]);
    }
    FIELD_FAMILY("sluice_batcher_pending_items", G, "Items in the current, unsealed batch.", pending_items);
    FIELD_FAMILY("sluice_batcher_in_flight", G, "Sealed batches queued or running.", in_flight);
    FIELD_FAMILY("sluice_batcher_waiting", G, "Adders waiting for room.", waiting);
    FIELD_FAMILY("sluice_batcher_added_total", C, "Items added.", added);
    FIELD_FAMILY("sluice_batcher_rejected_total", C, "Adds refused (full, timed out, deadlock).", rejected);
    static const char *const item_outcomes[] = {"delivered", "failed"};
    for (size_t i = 0; i < n; i++) {
        vr[i * 2] = (double)st[i].delivered;
        vr[i * 2 + 1] = (double)st[i].failed_items;
    }
    family2(w, "sluice_batcher_items_total", "Items delivered, or handed to the failure handler.", names, n,
            "outcome", item_outcomes, 2, vr);
    const char *reasons[NR];
    for (int k = 0; k < NR; k++) {
        reasons[k] = sluice_flush_reason_name((sluice_flush_reason)k);
    }
    for (size_t i = 0; i < n; i++) {
        for (size_t k = 0; k < NR; k++) {
            vr[i * NR + k] = (double)st[i].flushes[k];
        }
    }
    family2(w, "sluice_batcher_batches_total", "Batches sealed, by flush reason.", names, n, "reason", reasons, NR,
            vr);
    const char *whys[NF];
    for (int k = 0; k < NF; k++) {
        whys[k] = sluice_batch_failure_name((sluice_batch_failure)k);
    }
    for (size_t i = 0; i < n; i++) {
        for (size_t k = 0; k < NF; k++) {
            vr[i * NF + k] = (double)st[i].failures[k];
        }
    }
    family2(w, "sluice_batcher_failed_batches_total", "Batches handed to the failure handler, by why.", names, n,
            "why", whys, NF, vr);
    sluice_expo_family(w, "sluice_batcher_batch_size", SLUICE_METRIC_HISTOGRAM, "Items per sealed batch.");
    for (size_t i = 0; i < n; i++) {
        sluice_metric_label l = {"name", names[i]};
        sluice_expo_histogram(w, &l, 1, &h[i]);
    }
    free(st);
    free(h);
    free(vr);
}

static void collect(sluice_expo *w, void *user)
{
    sluice_sync_metrics *sm = user;
    pthread_mutex_lock(&sm->mu);
    size_t n = sm->n;
    item **its = n ? calloc(n, sizeof *its) : NULL;
    const char **names = n ? calloc(n, sizeof *names) : NULL;
    double *v = n ? calloc(n, sizeof *v) : NULL;
    if (n && (!its || !names || !v)) {
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
        if (m == 0) {
            continue;
        }
        switch ((kind)k) {
        case K_SEM:
            write_sems(w, its, m, names, v);
            break;
        case K_BREAKER:
            write_breakers(w, its, m, names, v);
            break;
        case K_LIMITER:
            write_limiters(w, its, m, names, v);
            break;
        case K_KEYED:
            write_keyed(w, its, m, names, v);
            break;
        case K_GROUP:
            write_groups(w, its, m, names, v);
            break;
        case K_RETRY:
            write_retries(w, its, m, names, v);
            break;
        case K_RETRY_BUDGET:
            write_retry_budgets(w, its, m, names, v);
            break;
        case K_KEYED_EXEC:
            write_keyed_execs(w, its, m, names, v);
            break;
        case K_BATCHER:
            write_batchers(w, its, m, names, v);
            break;
        case K_COUNT:
            break;
        }
    }
    pthread_mutex_unlock(&sm->mu);
    free(its);
    free(names);
    free(v);
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
