/*
 * src/obs/pool_collector.c - the pool_* metric families.
 *
 * Purpose. Export every registered pool under the names that existing
 * rules and dashboards use (docs/metrics.md), labelled name="<pool>".
 *
 * Design. Nothing here runs per task: the pool already keeps its counters
 * in per-worker shards and its timing histograms in per-worker buckets.
 * At scrape time we take one sluice_pool_stats_get and two
 * sluice_pool_histogram_get snapshots per pool, then write each family
 * with one sample per pool (a family's samples must be contiguous in the
 * exposition, so the loop is family-major, pool-minor).
 *
 * Ordering. A snapshot is exact at quiescence; while tasks run, fields may
 * come from slightly different instants (see sluice_pool_stats_get). The
 * histogram _count is the sum of its buckets, never a separate read.
 *
 * Locks: called under the registry lock; the pool getters take only the
 * pool's own registry lock, briefly, and never block workers.
 */
#include <stdlib.h>
#include <string.h>

#include "obs/obs_internal.h"
#include "sluice/metrics.h"

typedef struct snap {
    sluice_pool_stats st;
    double oldest_running_s; /* age of the longest-running task, 0 if none */
    sluice_histogram task;
    sluice_histogram wait;
    sluice_metric_label label;
} snap;

typedef enum field {
    F_RUNNING,
    F_CAPACITY,
    F_WAITING,
    F_QUEUE_DEPTH,
    F_QUEUE_CAPACITY,
    F_IDLE,
    F_UTILIZATION,
    F_SUBMITTED,
    F_COMPLETED,
    F_FAILED,
    F_PANICKED,
    F_DROPPED,
    F_SHED,
    F_ABANDONED,
    F_REJECTED,
    F_EXPIRED,
    F_STARTED,
    F_RETIRED,
    F_RESIZES,
    F_TIMING_SAMPLE,
    F_START_FAILURES,
} field;

typedef struct family {
    const char *name;
    sluice_metric_type type;
    field f;
    const char *help;
} family;

static const family families[] = {
    {"pool_running", SLUICE_METRIC_GAUGE, F_RUNNING, "Tasks running now."},
    {"pool_capacity", SLUICE_METRIC_GAUGE, F_CAPACITY, "K: the most tasks that may run at once."},
    {"pool_waiting", SLUICE_METRIC_GAUGE, F_WAITING, "Submitters blocked waiting for queue space."},
    {"pool_queue_depth", SLUICE_METRIC_GAUGE, F_QUEUE_DEPTH, "Tasks queued, not yet started."},
    {"pool_queue_capacity", SLUICE_METRIC_GAUGE, F_QUEUE_CAPACITY, "The most tasks the queue holds."},
    {"pool_idle_workers", SLUICE_METRIC_GAUGE, F_IDLE, "Worker threads alive and parked waiting for work."},
    {"pool_worker_utilization_ratio", SLUICE_METRIC_GAUGE, F_UTILIZATION,
     "running / capacity at the time of the scrape."},
    {"pool_submitted_total", SLUICE_METRIC_COUNTER, F_SUBMITTED,
     "Tasks accepted (queued or run by the caller)."},
    {"pool_completed_total", SLUICE_METRIC_COUNTER, F_COMPLETED, "Tasks that ran and returned 0."},
    {"pool_failed_total", SLUICE_METRIC_COUNTER, F_FAILED, "Tasks that ran and returned non-zero."},
    {"pool_panicked_total", SLUICE_METRIC_COUNTER, F_PANICKED, "Tasks that panicked or faulted."},
    {"pool_dropped_total", SLUICE_METRIC_COUNTER, F_DROPPED, "Queued tasks evicted by DROP_OLDEST."},
    {"pool_shed_total", SLUICE_METRIC_COUNTER, F_SHED,
     "Queued tasks not run because their deadline or context ended."},
    {"pool_abandoned_total", SLUICE_METRIC_COUNTER, F_ABANDONED,
     "Queued tasks handed back at a drain deadline or destroy."},
    {"pool_rejected_total", SLUICE_METRIC_COUNTER, F_REJECTED,
     "Submits refused (queue full, timeout, deadlock); never counted as submitted."},
    {"pool_expired_workers_total", SLUICE_METRIC_COUNTER, F_EXPIRED,
     "Idle workers that exited by idle expiry."},
    {"pool_started_workers_total", SLUICE_METRIC_COUNTER, F_STARTED, "Worker threads started."},
    {"pool_retired_workers_total", SLUICE_METRIC_COUNTER, F_RETIRED,
     "Workers that exited by shrink or fault recovery."},
    {"pool_resize_events_total", SLUICE_METRIC_COUNTER, F_RESIZES, "Changes of K."},
    {"pool_timing_sample_every", SLUICE_METRIC_GAUGE, F_TIMING_SAMPLE,
     "1 task in this many is timed for the duration histograms now (0: timing off)."},
    {"pool_worker_start_failures_total", SLUICE_METRIC_COUNTER, F_START_FAILURES,
     "Worker threads the pool could not start (thread limit, memory); non-zero: it may run below K."},
};

/*
 * The age of the pool's longest-running task in seconds (0 when nothing
 * runs). This is what makes a stall visible: a task stuck in a dead
 * downstream never finishes, so the duration histograms never see it, but
 * its age grows on every scrape. For a task that timing did not sample the
 * pool stamps its start the first time a reader sees it, so the age is a
 * lower bound that is exact to within one scrape interval from the second
 * scrape on (sluice_pool_workers_get).
 */
static double oldest_running_seconds(sluice_pool *pool, unsigned workers_hint)
{
    /* Workers may start between the calls: grow and retry a few times,
     * then make do with what fits (the oldest is almost always among the
     * long-lived workers, which come first). */
    size_t cap = (size_t)workers_hint + 8;
    sluice_worker_info *w = NULL;
    size_t n = 0, filled = 0;
    for (int tries = 0; tries < 3; tries++) {
        sluice_worker_info *grown = realloc(w, cap * sizeof *w);
        if (!grown) {
            free(w);
            return 0;
        }
        w = grown;
        n = sluice_pool_workers_get(pool, w, cap);
        filled = n < cap ? n : cap;
        if (n <= cap) {
            break;
        }
        cap = n + 8;
    }
    n = filled;
    uint64_t now = sluice_clock_now(sluice_pool_clock(pool));
    uint64_t oldest = 0;
    for (size_t i = 0; i < n; i++) {
        if (w[i].state == SLUICE_WORKER_RUNNING && w[i].since_ns && w[i].since_ns <= now &&
            now - w[i].since_ns > oldest) {
            oldest = now - w[i].since_ns;
        }
    }
    free(w);
    return (double)oldest / 1e9;
}

static double value_of(const sluice_pool_stats *s, field f)
{
    switch (f) {
    case F_RUNNING:
        return s->running;
    case F_CAPACITY:
        return s->capacity;
    case F_WAITING:
        return s->waiting;
    case F_QUEUE_DEPTH:
        return (double)s->queue_depth;
    case F_QUEUE_CAPACITY:
        return (double)s->queue_capacity;
    case F_IDLE:
        return s->idle;
    case F_UTILIZATION:
        return s->capacity ? (double)s->running / (double)s->capacity : 0.0;
    case F_SUBMITTED:
        return (double)s->submitted;
    case F_COMPLETED:
        return (double)s->completed;
    case F_FAILED:
        return (double)s->failed;
    case F_PANICKED:
        return (double)s->panicked;
    case F_DROPPED:
        return (double)s->dropped;
    case F_SHED:
        return (double)s->shed;
    case F_ABANDONED:
        return (double)s->abandoned;
    case F_REJECTED:
        return (double)s->rejected;
    case F_EXPIRED:
        return (double)s->expired_workers;
    case F_STARTED:
        return (double)s->started_workers;
    case F_RETIRED:
        return (double)s->retired_workers;
    case F_RESIZES:
        return (double)s->resize_events;
    case F_TIMING_SAMPLE:
        return s->timing_sample_every;
    case F_START_FAILURES:
        return (double)s->worker_start_failures;
    }
    return 0;
}

void sluice__expo_pools(sluice_expo *w, sluice_pool *const *pools, size_t n)
{
    if (n == 0) {
        return;
    }
    snap *snaps = calloc(n, sizeof *snaps);
    if (!snaps) {
        w->oom = true;
        return;
    }
    for (size_t i = 0; i < n; i++) {
        sluice_pool_stats_get(pools[i], &snaps[i].st);
        sluice_pool_histogram_get(pools[i], SLUICE_HIST_TASK, &snaps[i].task);
        sluice_pool_histogram_get(pools[i], SLUICE_HIST_WAIT, &snaps[i].wait);
        snaps[i].oldest_running_s =
            snaps[i].st.running ? oldest_running_seconds(pools[i], snaps[i].st.workers) : 0.0;
        snaps[i].label.name = "name";
        snaps[i].label.value = sluice_pool_name(pools[i]);
    }
    for (size_t f = 0; f < sizeof families / sizeof families[0]; f++) {
        sluice_expo_family(w, families[f].name, families[f].type, families[f].help);
        for (size_t i = 0; i < n; i++) {
            sluice_expo_sample(w, &snaps[i].label, 1, value_of(&snaps[i].st, families[f].f));
        }
    }
    sluice_expo_family(w, "pool_oldest_running_seconds", SLUICE_METRIC_GAUGE,
                       "Age of the longest-running task (0 when none runs); grows while a task is stuck.");
    for (size_t i = 0; i < n; i++) {
        sluice_expo_sample(w, &snaps[i].label, 1, snaps[i].oldest_running_s);
    }
    sluice_expo_family(w, "pool_task_duration_seconds", SLUICE_METRIC_HISTOGRAM,
                       "Time tasks spent running (1 task in pool_timing_sample_every).");
    for (size_t i = 0; i < n; i++) {
        sluice_expo_histogram(w, &snaps[i].label, 1, &snaps[i].task);
    }
    sluice_expo_family(w, "pool_submit_duration_seconds", SLUICE_METRIC_HISTOGRAM,
                       "Time from submit to start (1 task in pool_timing_sample_every).");
    for (size_t i = 0; i < n; i++) {
        sluice_expo_histogram(w, &snaps[i].label, 1, &snaps[i].wait);
    }
    free(snaps);
}
