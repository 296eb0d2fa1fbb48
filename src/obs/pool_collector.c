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
 * exposition, so the loop is family-major, pool-minor). Each gauge and
 * counter family is one row of POOL_FAMILIES (or TENANT_FAMILIES), which
 * expands into the enum, the family table and the switch that reads the
 * value, so the three never disagree.
 *
 * Ordering. A snapshot is exact at quiescence; while tasks run, fields may
 * come from slightly different instants (see sluice_pool_stats_get). The
 * histogram _count is the sum of its buckets, never a separate read.
 *
 * Tenants (fair pools). Each tenant of a SLUICE_QUEUE_FAIR pool gets the
 * pool_tenant_* families, labelled name="<pool>", tenant="<tenant>". The
 * registry's series cap (sluice_metrics_config.max_series, per pool here)
 * bounds them: at most max_series - 1 tenants keep their own series and
 * every other tenant is summed into tenant="other" (counters, gauges and
 * wait histograms alike, so the pool's totals still add up), and
 * pool_tenants_folded says how many were folded. Which tenants keep a series is state the registry
 * carries from scrape to scrape (sluice__tenant_fold, see tenant_snapshot):
 * the busiest get one while there is room and keep it, so every series,
 * "other" included, stays a counter that never goes down; the counts of
 * tenants the pool has forgotten stay in "other". Names are minted by
 * callers, an attacker's too; the core bounds what it tracks (max_tenants,
 * then shard queues) and this bounds what a scrape carries. A tenant that
 * is itself called "other" is always folded, so no series is written
 * twice.
 *
 * Scrape cost. A pool may track up to 2^20 tenants, so a scrape never
 * copies them all (that held the fair queue's lock for a 1.2 GiB copy):
 * sluice_pool_tenants_top names the 2 x cap busiest, walking the tenants
 * a bounded piece per hold of the lock, and one sluice_pool_tenants_select
 * gives the exact stats of those and of the kept series (at most 3 x cap
 * + 1 names) with every other tenant summed into its `rest`, which is
 * where "other" starts. 2 x cap candidates are enough: at most cap - 1
 * fill the room, and each slot is taken over at most once per scrape
 * (the tenant that takes it has more traffic than every later
 * candidate), so the algorithm below decides as it would with every
 * tenant in hand, from counts as exact. The ranks come from a walk while
 * the pool runs, so a tenant that became busy during it waits a scrape
 * for its series; the sums never depend on the walk. Memory per scrape:
 * O(cap), not O(tenants).
 *
 * Locks: called under the registry lock; the pool getters take only the
 * pool's own registry lock (and the fair queue's lock), briefly, and never
 * block workers.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "obs/obs_internal.h"
#include "sluice/metrics.h"
#include "sluice/tenant.h"

/* One fair pool's tenants as the scrape shows them. */
typedef struct tenant_view {
    sluice_tenant_stats *t; /* the kept tenants, then "other" when folded */
    size_t n;
    size_t folded; /* tenants summed into "other" */
    unsigned tracked;
    bool fair;
} tenant_view;

/* The two timing histograms of a pool, in exposition order. */
static const struct {
    sluice_hist_kind kind;
    const char *name;
    const char *help;
} pool_histograms[] = {
    {SLUICE_HIST_TASK, "pool_task_duration_seconds",
     "Time tasks spent running (1 task in pool_timing_sample_every)."},
    {SLUICE_HIST_WAIT, "pool_submit_duration_seconds",
     "Time from submit to start (1 task in pool_timing_sample_every)."},
};
#define POOL_HISTOGRAM_COUNT (sizeof pool_histograms / sizeof pool_histograms[0])

typedef struct snap {
    sluice_pool_stats st;
    double oldest_running_s;                     /* age of the longest-running task, 0 if none */
    sluice_histogram hist[POOL_HISTOGRAM_COUNT]; /* as pool_histograms lists them */
    sluice_metric_label label;
} snap;

/*
 * The pool's gauge and counter families, in exposition order, one row
 * each: X(ID, name, type, value, help), where `value` reads the pool's
 * snapshot `s` (a struct snap). The list expands into the field enum, the
 * family table and value_of's switch, so a new family is one row.
 */
#define POOL_FAMILIES(X)                                                                                     \
    X(RUNNING, "pool_running", GAUGE, s->st.running, "Tasks running now.")                                   \
    X(CAPACITY, "pool_capacity", GAUGE, s->st.capacity, "K: the most tasks that may run at once.")           \
    X(WAITING, "pool_waiting", GAUGE, s->st.waiting, "Submitters blocked waiting for queue space.")          \
    X(QUEUE_DEPTH, "pool_queue_depth", GAUGE, s->st.queue_depth, "Tasks queued, not yet started.")           \
    X(QUEUE_CAPACITY, "pool_queue_capacity", GAUGE, s->st.queue_capacity, "The most tasks the queue holds.") \
    X(IDLE, "pool_idle_workers", GAUGE, s->st.idle, "Worker threads alive and parked waiting for work.")     \
    X(UTILIZATION, "pool_worker_utilization_ratio", GAUGE,                                                   \
      s->st.capacity ? (double)s->st.running / (double)s->st.capacity : 0.0,                                 \
      "running / capacity at the time of the scrape.")                                                       \
    X(SUBMITTED, "pool_submitted_total", COUNTER, s->st.submitted,                                           \
      "Tasks accepted (queued or run by the caller).")                                                       \
    X(COMPLETED, "pool_completed_total", COUNTER, s->st.completed, "Tasks that ran and returned 0.")         \
    X(FAILED, "pool_failed_total", COUNTER, s->st.failed, "Tasks that ran and returned non-zero.")           \
    X(PANICKED, "pool_panicked_total", COUNTER, s->st.panicked, "Tasks that panicked or faulted.")           \
    X(DROPPED, "pool_dropped_total", COUNTER, s->st.dropped, "Queued tasks evicted by DROP_OLDEST.")         \
    X(SHED, "pool_shed_total", COUNTER, s->st.shed,                                                          \
      "Queued tasks not run because their deadline or context ended, or CoDel shed them.")                   \
    X(ABANDONED, "pool_abandoned_total", COUNTER, s->st.abandoned,                                           \
      "Queued tasks handed back at a drain deadline or destroy.")                                            \
    X(REJECTED, "pool_rejected_total", COUNTER, s->st.rejected,                                              \
      "Submits refused (queue full, timeout, deadlock); never counted as submitted.")                        \
    X(EXPIRED, "pool_expired_workers_total", COUNTER, s->st.expired_workers,                                 \
      "Idle workers that exited by idle expiry.")                                                            \
    X(STARTED, "pool_started_workers_total", COUNTER, s->st.started_workers, "Worker threads started.")      \
    X(RETIRED, "pool_retired_workers_total", COUNTER, s->st.retired_workers,                                 \
      "Workers that exited by shrink or fault recovery.")                                                    \
    X(RESIZES, "pool_resize_events_total", COUNTER, s->st.resize_events, "Changes of K.")                    \
    X(TIMING_SAMPLE, "pool_timing_sample_every", GAUGE, s->st.timing_sample_every,                           \
      "1 task in this many is timed for the duration histograms now (0: timing off).")                       \
    X(START_FAILURES, "pool_worker_start_failures_total", COUNTER, s->st.worker_start_failures,              \
      "Worker threads the pool could not start (thread limit, memory); non-zero: it may run below K.")       \
    X(CODEL_SHED, "pool_codel_shed_total", COUNTER, s->st.codel_shed,                                        \
      "Queued tasks CoDel shed while the queue stood above its target (also in pool_shed_total).")           \
    X(LIFO_SWITCHES, "pool_lifo_switches_total", COUNTER, s->st.lifo_switches,                               \
      "Times adaptive LIFO switched the queue from oldest-first to newest-first.")                           \
    X(LIFO_ACTIVE, "pool_lifo_active", GAUGE, s->st.lifo ? 1.0 : 0.0,                                        \
      "1 while the workers take the newest task (adaptive LIFO), else 0.")                                   \
    X(CODEL_DROPPING, "pool_codel_dropping", GAUGE, s->st.codel_dropping ? 1.0 : 0.0,                        \
      "1 while the queue stands above the CoDel target and CoDel is shedding, else 0.")                      \
    X(OLDEST_RUNNING, "pool_oldest_running_seconds", GAUGE, s->oldest_running_s,                             \
      "Age of the longest-running task (0 when none runs); grows while a task is stuck.")

#define AS_FIELD(id, name, type, value, help) F_##id,
typedef enum field { POOL_FAMILIES(AS_FIELD) } field;
#undef AS_FIELD

typedef struct family {
    const char *name;
    sluice_metric_type type;
    field f;
    const char *help;
} family;

#define AS_FAMILY(id, name, type, value, help) {name, SLUICE_METRIC_##type, F_##id, help},
static const family families[] = {POOL_FAMILIES(AS_FAMILY)};
#undef AS_FAMILY

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

static double value_of(const snap *s, field f)
{
#define AS_CASE(id, name, type, value, help)                                                                 \
    case F_##id:                                                                                             \
        return (double)(value);
    switch (f) {
        POOL_FAMILIES(AS_CASE)
    }
#undef AS_CASE
    return 0;
}

static uint64_t traffic(const sluice_tenant_stats *t)
{
    return t->submitted + t->rejected;
}

/* More traffic first; ties by name, so the choice is stable between scrapes. */
static int by_traffic(const void *a, const void *b)
{
    const sluice_tenant_stats *x = a, *y = b;
    uint64_t tx = traffic(x), ty = traffic(y);
    if (tx != ty) {
        return tx > ty ? -1 : 1;
    }
    return strcmp(x->name, y->name);
}

static int by_name(const void *a, const void *b)
{
    return strcmp(((const sluice_tenant_stats *)a)->name, ((const sluice_tenant_stats *)b)->name);
}

/* other += t, or other -= t when sign is -1 (only ever a baseline taken
 * from the same tenant earlier, so nothing goes below zero). The gauges
 * only add: a baseline's are zero. */
static void add_counts(sluice_tenant_stats *other, const sluice_tenant_stats *t, int sign)
{
#define ADD(f) other->f = sign > 0 ? other->f + t->f : other->f - t->f
    ADD(submitted);
    ADD(started);
    ADD(completed);
    ADD(failed);
    ADD(panicked);
    ADD(dropped);
    ADD(rejected);
    ADD(shed);
    ADD(abandoned);
    ADD(caller_ran);
    /* Every tenant of a pool shares the pool's bounds. */
    for (size_t b = 0; b <= t->wait.bucket_count && b <= SLUICE_HIST_MAX_BUCKETS; b++) {
        ADD(wait.counts[b]);
    }
    ADD(wait.count);
#undef ADD
    other->wait.sum_seconds += sign > 0 ? t->wait.sum_seconds : -t->wait.sum_seconds;
    if (sign > 0) {
        other->queued += t->queued;
        other->running += t->running;
    }
}

/* A tenant with its own series: who, and its counts when it got it (zero
 * when it has had it since before anything was folded). */
typedef struct kept_series {
    char name[SLUICE_TENANT_NAME_MAX + 1];
    uint64_t incarnation;
    sluice_tenant_stats base;
    size_t at; /* this scrape: its index in the snapshot (sorted by name) */
} kept_series;

struct sluice__tenant_fold {
    kept_series *k;
    size_t n, cap;
    bool folding;       /* tenant="other" has been written: it must go on, and only grow */
    uint64_t seen_upto; /* the highest incarnation in the last scrape: any higher one is new since */
};

void sluice__tenant_fold_free(sluice__tenant_fold *f)
{
    if (f) {
        free(f->k);
        free(f);
    }
}

/* Give t a series. Its counts so far stay in "other" (its baseline) when
 * "other" may have shown them: folding had begun by the last scrape and t
 * was there then; otherwise it keeps them all. */
static bool keep(sluice__tenant_fold *f, const sluice_tenant_stats *t, size_t at, bool was_folding)
{
    bool from_now = was_folding && t->incarnation <= f->seen_upto;
    if (f->n == f->cap) {
        size_t cap = f->cap ? f->cap * 2 : 16;
        kept_series *g = realloc(f->k, cap * sizeof *g);
        if (!g) {
            return false;
        }
        f->k = g;
        f->cap = cap;
    }
    kept_series *k = &f->k[f->n++];
    memset(k, 0, sizeof *k);
    snprintf(k->name, sizeof k->name, "%s", t->name);
    k->incarnation = t->incarnation;
    if (from_now) {
        k->base = *t;
        k->base.queued = 0;
        k->base.running = 0;
    }
    k->at = at;
    return true;
}

/* The kept series with the least traffic (f->n > 0). */
static size_t least_kept(const sluice__tenant_fold *f, const sluice_tenant_stats *t)
{
    size_t m = 0;
    for (size_t i = 1; i < f->n; i++) {
        if (by_traffic(&t[f->k[i].at], &t[f->k[m].at]) > 0) {
            m = i;
        }
    }
    return m;
}

/*
 * Snapshot a pool's tenants and keep at most `cap` series (cap >= 2), the
 * fold state `*fp` carried from the last scrape. Every series must stay a
 * counter: a value that goes down reads as a reset to Prometheus, and
 * rate() then counts the whole value again. So:
 *  - which tenants have their own series is sticky: the busiest get one
 *    while there is room, and one keeps it until the tenant is forgotten
 *    or a folded tenant with over twice its traffic takes its place;
 *  - a tenant given a series after folding began counts from then: what
 *    it had is already in "other" and stays there (its baseline);
 *  - "other" = the forgotten record + every folded tenant + the kept
 *    tenants' baselines. A promotion moves a tenant's counts into a
 *    baseline (no change), a demotion or a forget frees a baseline into a
 *    count at least as large: "other" never goes down, and the series
 *    still add up to the pool's totals.
 * A tenant forgotten and seen again is a new incarnation: its old series
 * ends, and its new one starts from zero.
 */
static int by_name_ptr(const void *a, const void *b)
{
    return strcmp(*(const char *const *)a, *(const char *const *)b);
}

/* The names a scrape asks select for: the kept series, the 2 x cap
 * busiest and "other" (a real tenant of that name must be found to be
 * folded), sorted and distinct. names is malloc'd; *nn set. */
static const char **scrape_names(sluice_pool *pool, const sluice__tenant_fold *f, size_t cap,
                                 sluice_tenant_rank **ranks, size_t *nn)
{
    /* No more candidates than tenants tracked (a few more may come during
     * the walk: they wait a scrape), so a cap up to SIZE_MAX (no cap)
     * allocates for the tenants there are, never for the cap. */
    sluice_tenancy_stats ts;
    sluice_pool_tenancy_get(pool, &ts);
    size_t have = (size_t)ts.tracked + ts.shard_queues + 1;
    size_t want = cap <= SIZE_MAX / 4 ? 2 * cap : cap, nr = 0;
    if (want > have) {
        want = have;
    }
    *nn = 0;
    *ranks = malloc(want * sizeof **ranks);
    if (!*ranks || sluice_pool_tenants_top(pool, SLUICE_TENANT_BY_TRAFFIC, *ranks, want, &nr) != SLUICE_OK) {
        return NULL;
    }
    const char **names = malloc((f->n + nr + 1) * sizeof *names);
    if (!names) {
        return NULL;
    }
    size_t n = 0;
    for (size_t i = 0; i < f->n; i++) {
        names[n++] = f->k[i].name;
    }
    for (size_t i = 0; i < nr; i++) {
        names[n++] = (*ranks)[i].name;
    }
    names[n++] = SLUICE_METRIC_OTHER;
    qsort(names, n, sizeof *names, by_name_ptr);
    size_t w = 0;
    for (size_t i = 0; i < n; i++) {
        if (w == 0 || strcmp(names[w - 1], names[i]) != 0) {
            names[w++] = names[i];
        }
    }
    *nn = w;
    return names;
}

static bool tenant_snapshot(sluice_pool *pool, sluice__tenant_fold **fp, size_t cap, tenant_view *v)
{
    memset(v, 0, sizeof *v);
    sluice_tenancy_stats ts;
    sluice_pool_tenancy_get(pool, &ts);
    sluice_pool_config pc;
    sluice_pool_config_get(pool, &pc);
    v->fair = pc.queue_discipline == SLUICE_QUEUE_FAIR;
    if (!v->fair) {
        return true;
    }
    v->tracked = ts.tracked;
    if (!*fp && !(*fp = calloc(1, sizeof **fp))) {
        return false;
    }
    sluice__tenant_fold *f = *fp;
    /* One snapshot of the candidates and the kept series, every other
     * tenant (and the forgotten ones) summed in sel.rest: a tenant missed
     * by the walk is in rest, so "other" never loses it. */
    sluice_tenant_rank *ranks = NULL;
    size_t nn = 0;
    const char **names = scrape_names(pool, f, cap, &ranks, &nn);
    sluice_tenant_selection sel;
    v->t = names ? malloc((nn + 1) * sizeof *v->t) : NULL; /* +1: "other" */
    if (!v->t || sluice_pool_tenants_select(pool, names, nn, v->t, &sel) != SLUICE_OK) {
        free(ranks);
        free(names);
        return false;
    }
    free(ranks);
    free(names);
    sluice_tenant_stats *t = v->t;
    size_t n = 0; /* the found ones, still sorted by name */
    for (size_t i = 0; i < nn; i++) {
        if (t[i].incarnation != 0) {
            t[n++] = t[i];
        }
    }
    uint64_t max_inc = sel.last_incarnation; /* incarnations only grow */
    bool *is_kept = calloc(n ? n : 1, sizeof *is_kept);
    sluice_tenant_stats **cand = calloc(n ? n : 1, sizeof *cand);
    if (!is_kept || !cand) {
        free(is_kept);
        free(cand);
        return false;
    }
    /* The kept series still there (same incarnation); the rest end. */
    size_t w = 0;
    for (size_t i = 0; i < f->n; i++) {
        sluice_tenant_stats key;
        snprintf(key.name, sizeof key.name, "%s", f->k[i].name);
        sluice_tenant_stats *hit = bsearch(&key, t, n, sizeof *t, by_name);
        if (hit && hit->incarnation == f->k[i].incarnation) {
            f->k[i].at = (size_t)(hit - t);
            is_kept[f->k[i].at] = true;
            f->k[w++] = f->k[i];
        }
    }
    f->n = w;
    /* Candidates: the others, busiest first; a real tenant called "other"
     * is always folded, so one series never carries two meanings. */
    size_t nc = 0;
    bool real_other = false;
    for (size_t i = 0; i < n; i++) {
        if (strcmp(t[i].name, SLUICE_METRIC_OTHER) == 0) {
            real_other = true;
        } else if (!is_kept[i]) {
            cand[nc++] = &t[i];
        }
    }
    for (size_t i = 1; i < nc; i++) { /* insertion sort on pointers, busiest first */
        sluice_tenant_stats *x = cand[i];
        size_t j = i;
        while (j > 0 && by_traffic(cand[j - 1], x) > 0) {
            cand[j] = cand[j - 1];
            j--;
        }
        cand[j] = x;
    }
    bool was_folding = f->folding;
    bool fold = was_folding || real_other || sel.forgotten.submitted || sel.forgotten.rejected ||
                sel.tenants - real_other > cap;
    size_t slots = fold ? cap - 1 : cap;
    bool ok = true;
    size_t next = 0;
    while (ok && next < nc && f->n < slots) { /* room: the busiest get a series */
        ok = keep(f, cand[next], (size_t)(cand[next] - t), was_folding);
        is_kept[cand[next] - t] = ok;
        next++;
    }
    while (f->n > slots) { /* "other" needs its series now: the least busy kept one folds */
        size_t m = least_kept(f, t);
        is_kept[f->k[m].at] = false;
        f->k[m] = f->k[--f->n];
    }
    /* A folded tenant with over twice the traffic of the least busy kept
     * one takes its place (twice: two tenants of about the same traffic
     * do not swap back and forth). */
    while (ok && f->n > 0 && next < nc) {
        size_t m = least_kept(f, t);
        if (traffic(cand[next]) / 2 <= traffic(&t[f->k[m].at])) {
            break;
        }
        is_kept[f->k[m].at] = false;
        f->k[m] = f->k[--f->n];
        ok = keep(f, cand[next], (size_t)(cand[next] - t), was_folding);
        is_kept[cand[next] - t] = ok;
        next++;
    }
    /* The view: the kept series from their baselines, busiest first, then
     * "other": every tenant not found (sel.rest, the forgotten ones in it),
     * the found ones not kept, and the kept ones' baselines. */
    sluice_tenant_stats other = sel.rest;
    snprintf(other.name, sizeof other.name, "%s", SLUICE_METRIC_OTHER);
    v->folded = sel.tenants - sel.found;
    for (size_t i = 0; i < f->n; i++) {
        add_counts(&other, &f->k[i].base, 1);
    }
    for (size_t i = 0; i < n; i++) {
        if (!is_kept[i]) {
            add_counts(&other, &t[i], 1);
            v->folded++;
        }
    }
    /* Compact in place: kept entries keep their relative (name) order. */
    size_t kept = 0;
    for (size_t i = 0; i < n; i++) {
        if (!is_kept[i]) {
            continue;
        }
        for (size_t j = 0; j < f->n; j++) {
            if (f->k[j].at == i) {
                add_counts(&t[i], &f->k[j].base, -1);
                f->k[j].at = kept;
            }
        }
        if (kept != i) {
            t[kept] = t[i];
        }
        kept++;
    }
    qsort(t, kept, sizeof *t, by_traffic);
    if (fold) {
        t[kept++] = other;
        f->folding = true;
    }
    f->seen_upto = max_inc;
    v->n = kept;
    free(is_kept);
    free(cand);
    return ok;
}

/* The per-tenant families, as POOL_FAMILIES: `value` reads the tenant's
 * stats `t` (a sluice_tenant_stats). */
#define TENANT_FAMILIES(X)                                                                                   \
    X(QUEUED, "pool_tenant_queued", GAUGE, t->queued, "Tasks of the tenant queued now (fair pools).")        \
    X(RUNNING, "pool_tenant_running", GAUGE, t->running, "Tasks of the tenant running now (fair pools).")    \
    X(SUBMITTED, "pool_tenant_submitted_total", COUNTER, t->submitted, "Tasks of the tenant accepted.")      \
    X(COMPLETED, "pool_tenant_completed_total", COUNTER, t->completed,                                       \
      "Tasks of the tenant that returned 0.")                                                                \
    X(FAILED, "pool_tenant_failed_total", COUNTER, t->failed, "Tasks of the tenant that returned non-zero.") \
    X(PANICKED, "pool_tenant_panicked_total", COUNTER, t->panicked, "Tasks of the tenant that panicked.")    \
    X(DROPPED, "pool_tenant_dropped_total", COUNTER, t->dropped,                                             \
      "Queued tasks of the tenant evicted (the pool's DROP_OLDEST or the tenant's own queued limit).")       \
    X(REJECTED, "pool_tenant_rejected_total", COUNTER, t->rejected,                                          \
      "Submits of the tenant refused (its queued limit, a full pool, a timeout).")                           \
    X(SHED, "pool_tenant_shed_total", COUNTER, t->shed,                                                      \
      "Queued tasks of the tenant shed at their deadline or context.")                                       \
    X(ABANDONED, "pool_tenant_abandoned_total", COUNTER, t->abandoned,                                       \
      "Queued tasks of the tenant handed back at drain or destroy.")

#define AS_FIELD(id, name, type, value, help) TF_##id,
typedef enum tenant_field { TENANT_FAMILIES(AS_FIELD) } tenant_field;
#undef AS_FIELD

#define AS_FAMILY(id, name, type, value, help) {name, SLUICE_METRIC_##type, TF_##id, help},
static const struct {
    const char *name;
    sluice_metric_type type;
    tenant_field f;
    const char *help;
} tenant_families[] = {TENANT_FAMILIES(AS_FAMILY)};
#undef AS_FAMILY

static double tenant_value(const sluice_tenant_stats *t, tenant_field f)
{
#define AS_CASE(id, name, type, value, help)                                                                 \
    case TF_##id:                                                                                            \
        return (double)(value);
    switch (f) {
        TENANT_FAMILIES(AS_CASE)
    }
#undef AS_CASE
    return 0;
}

/* The tenant families of every fair pool (nothing when there is none). */
static void expo_tenants(sluice_expo *w, sluice_pool *const *pools, sluice__tenant_fold **folds,
                         const snap *snaps, size_t n, size_t cap)
{
    tenant_view *v = calloc(n, sizeof *v);
    if (!v) {
        w->oom = true;
        return;
    }
    bool any = false;
    for (size_t i = 0; i < n; i++) {
        if (!tenant_snapshot(pools[i], &folds[i], cap < 2 ? 2 : cap, &v[i])) {
            w->oom = true;
        }
        any |= v[i].fair;
    }
    for (size_t f = 0; any && f < sizeof tenant_families / sizeof tenant_families[0]; f++) {
        sluice_expo_family(w, tenant_families[f].name, tenant_families[f].type, tenant_families[f].help);
        for (size_t i = 0; i < n; i++) {
            for (size_t t = 0; t < v[i].n; t++) {
                sluice_metric_label l[2] = {snaps[i].label, {"tenant", v[i].t[t].name}};
                sluice_expo_sample(w, l, 2, tenant_value(&v[i].t[t], tenant_families[f].f));
            }
        }
    }
    if (any) {
        sluice_expo_family(w, "pool_tenant_submit_duration_seconds", SLUICE_METRIC_HISTOGRAM,
                           "Time from submit to start per tenant (fair pools time every task).");
        for (size_t i = 0; i < n; i++) {
            for (size_t t = 0; t < v[i].n; t++) {
                sluice_metric_label l[2] = {snaps[i].label, {"tenant", v[i].t[t].name}};
                sluice_expo_histogram(w, l, 2, &v[i].t[t].wait);
            }
        }
        sluice_expo_family(w, "pool_tenants_tracked", SLUICE_METRIC_GAUGE,
                           "Tenants the fair queue tracks by name now (listed ones included).");
        for (size_t i = 0; i < n; i++) {
            if (v[i].fair) {
                sluice_expo_sample(w, &snaps[i].label, 1, v[i].tracked);
            }
        }
        sluice_expo_family(w, "pool_tenants_folded", SLUICE_METRIC_GAUGE,
                           "Tenants summed into tenant=\"other\" in this scrape (the series cap).");
        for (size_t i = 0; i < n; i++) {
            if (v[i].fair) {
                sluice_expo_sample(w, &snaps[i].label, 1, (double)v[i].folded);
            }
        }
    }
    for (size_t i = 0; i < n; i++) {
        free(v[i].t);
    }
    free(v);
}

void sluice__expo_pools(sluice_expo *w, sluice_pool *const *pools, sluice__tenant_fold **folds, size_t n,
                        size_t tenant_series)
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
        for (size_t h = 0; h < POOL_HISTOGRAM_COUNT; h++) {
            sluice_pool_histogram_get(pools[i], pool_histograms[h].kind, &snaps[i].hist[h]);
        }
        snaps[i].oldest_running_s =
            snaps[i].st.running ? oldest_running_seconds(pools[i], snaps[i].st.workers) : 0.0;
        snaps[i].label.name = "name";
        snaps[i].label.value = sluice_pool_name(pools[i]);
    }
    for (size_t f = 0; f < sizeof families / sizeof families[0]; f++) {
        sluice_expo_family(w, families[f].name, families[f].type, families[f].help);
        for (size_t i = 0; i < n; i++) {
            sluice_expo_sample(w, &snaps[i].label, 1, value_of(&snaps[i], families[f].f));
        }
    }
    for (size_t h = 0; h < POOL_HISTOGRAM_COUNT; h++) {
        sluice_expo_family(w, pool_histograms[h].name, SLUICE_METRIC_HISTOGRAM, pool_histograms[h].help);
        for (size_t i = 0; i < n; i++) {
            sluice_expo_histogram(w, &snaps[i].label, 1, &snaps[i].hist[h]);
        }
    }
    expo_tenants(w, pools, folds, snaps, n, tenant_series);
    free(snaps);
}
