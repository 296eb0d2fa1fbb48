/*
 * sluice/metrics.h - a metrics registry, the pool collector and the
 * Prometheus / OpenMetrics exposition.
 *
 * One registry (sluice_metrics) holds three kinds of things, all rendered
 * together at scrape time by sluice_metrics_render():
 *
 *   1. the service's own metrics: counters, gauges and histograms with up
 *      to SLUICE_METRIC_MAX_LABELS labels, created with
 *      sluice_metrics_counter / _gauge / _histogram and updated with
 *      sluice_metric_add / _set / _observe (or through a cached
 *      sluice_series handle, which is a few atomic operations);
 *   2. collectors: callbacks run at scrape time that write families through
 *      the sluice_expo writer (for values that already live elsewhere);
 *   3. pools: sluice_metrics_add_pool() exports the pool_* families of
 *      docs/metrics.md for that pool, labelled name="<pool>", from
 *      sluice_pool_stats_get / sluice_pool_histogram_get snapshots. Nothing
 *      is added to the pool's per-task path: the pool already counts.
 *
 * Cardinality: every labelled metric has a hard cap on the number of label
 * value combinations (series), max_series. Once it is reached, a new
 * combination is folded into the one series whose label values are all
 * "other", and sluice_metrics_series_overflow_total{metric="<name>"} counts
 * each folded update, so a tenant or path label cannot blow up memory or
 * the scrape.
 *
 * Example:
 *
 *     sluice_metrics *reg;
 *     sluice_metrics_create(NULL, &reg);
 *     static const char *const labels[] = {"tenant", NULL};
 *     sluice_metric *req;
 *     sluice_metrics_counter(reg, "app_requests_total", "Requests served.", labels, &req);
 *     const char *v[] = {"acme"};
 *     sluice_metric_add(req, v, 1);
 *     sluice_metrics_add_pool(reg, pool);
 *     char *text; size_t len;
 *     sluice_metrics_render(reg, SLUICE_EXPO_PROMETHEUS, &text, &len);
 *     ... write text ...; free(text);
 *
 * Lock order: registry lock -> one metric's series lock. Collectors run
 * under the registry lock and must not call sluice_metrics_* functions of
 * the same registry (they may call sluice_metric_* updates on its metrics).
 */
#ifndef SLUICE_METRICS_H
#define SLUICE_METRICS_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "sluice/common.h"
#include "sluice/pool.h"

typedef struct sluice_metrics sluice_metrics;
typedef struct sluice_metric sluice_metric;
typedef struct sluice_series sluice_series;
typedef struct sluice_expo sluice_expo;

#define SLUICE_METRIC_MAX_LABELS 4
#define SLUICE_METRIC_NAME_MAX 128
#define SLUICE_METRIC_DEFAULT_MAX_SERIES 100
/* The label value that excess label combinations fold into. */
#define SLUICE_METRIC_OTHER "other"

typedef enum sluice_metric_type {
    SLUICE_METRIC_COUNTER = 0,
    SLUICE_METRIC_GAUGE,
    SLUICE_METRIC_HISTOGRAM,
} sluice_metric_type;

/* Exposition formats. */
typedef enum sluice_expo_format {
    SLUICE_EXPO_PROMETHEUS = 0, /* text/plain; version=0.0.4 */
    SLUICE_EXPO_OPENMETRICS,    /* application/openmetrics-text; version=1.0.0 */
} sluice_expo_format;

typedef struct sluice_metrics_config {
    /* Default cap on series per labelled metric; 0 = SLUICE_METRIC_DEFAULT_MAX_SERIES;
     * SIZE_MAX = no cap (memory then grows with the label values seen). Also
     * the cap on a fair pool's tenant series (sluice_metrics_add_pool). */
    size_t max_series;
} sluice_metrics_config;

/*
 * sluice_metrics_create - a new, empty registry. cfg may be NULL (defaults).
 * Returns: SLUICE_OK, SLUICE_EINVAL (out NULL), SLUICE_ENOMEM.
 * Ownership: *out belongs to the caller; free with sluice_metrics_destroy.
 */
SLUICE_API sluice_err sluice_metrics_create(const sluice_metrics_config *cfg, sluice_metrics **out);

/*
 * sluice_metrics_destroy - free the registry, its metrics and series.
 * Pools and collectors are only forgotten (never destroyed). NULL is a
 * no-op. Thread-safety: no other call on the registry or its metrics may
 * run or start.
 */
SLUICE_API void sluice_metrics_destroy(sluice_metrics *reg);

/* ---- the service's own metrics --------------------------------------------- */

/* A full description of a metric, for sluice_metrics_register. */
typedef struct sluice_metric_desc {
    const char *name;               /* [a-zA-Z_:][a-zA-Z0-9_:]*; counters must end in "_total" */
    const char *help;               /* one line; may be NULL */
    const char *const *label_names; /* label_count names, [a-zA-Z_][a-zA-Z0-9_]*, at most
                                       SLUICE_METRIC_NAME_MAX bytes, distinct, no "__" prefix;
                                       no "le" on a histogram */
    size_t label_count;             /* 0..SLUICE_METRIC_MAX_LABELS */
    const double *buckets;          /* histograms: strictly increasing upper bounds (s), each > 0, <= 1e9;
                                       NULL = the pool default 0.0001 * 2^k, k = 0..16 */
    size_t bucket_count;            /* 1..SLUICE_HIST_MAX_BUCKETS when buckets is given */
    size_t max_series;              /* 0 = the registry's default; SIZE_MAX = no cap */
} sluice_metric_desc;

/*
 * sluice_metrics_register - add a metric (or find the identical one).
 * Returns: SLUICE_OK (also when a metric of the same name, type and labels
 * exists: *out is that one); SLUICE_EINVAL with the reason in errbuf
 * ("name: 'x y' is not a valid metric name", "app_requests: a counter's
 * name must end in _total", "app_x_total: already registered as a gauge");
 * also for a name of up to SLUICE_METRIC_NAME_MAX bytes that the pool_ or
 * sluice_ prefix reserves for the library's own families, and for one
 * whose exposition would clash with a registered metric's: a counter's
 * OpenMetrics family is its name without _total (app_x_total and a gauge
 * app_x clash), a histogram's samples add _bucket, _count and _sum (app_h
 * and a gauge app_h_count clash), and both may write _created, so no
 * scrape ever declares a family twice or writes a series twice;
 * SLUICE_ENOMEM.
 * Ownership: *out belongs to the registry and lives until it is destroyed.
 * The strings in desc are copied.
 * Thread-safety: safe from any thread, except inside a collector.
 */
SLUICE_API sluice_err sluice_metrics_register(sluice_metrics *reg, sluice_metric_type type,
                                              const sluice_metric_desc *desc, sluice_metric **out,
                                              char *errbuf, size_t errlen);

/* Shorthands: label_names is a NULL-terminated list (or NULL for none);
 * histogram buckets as in sluice_metric_desc. Same returns (no message). */
SLUICE_API sluice_err sluice_metrics_counter(sluice_metrics *reg, const char *name, const char *help,
                                             const char *const *label_names, sluice_metric **out);
SLUICE_API sluice_err sluice_metrics_gauge(sluice_metrics *reg, const char *name, const char *help,
                                           const char *const *label_names, sluice_metric **out);
SLUICE_API sluice_err sluice_metrics_histogram(sluice_metrics *reg, const char *name, const char *help,
                                               const char *const *label_names, const double *buckets,
                                               size_t bucket_count, sluice_metric **out);

/*
 * sluice_metric_series - the series for these label values (as many as the
 * metric has labels; NULL when it has none), created on first use. Past
 * the metric's max_series the "other" series is returned and the overflow
 * self-metric is counted (once per call). The "other" series is the one
 * whose label values are all SLUICE_METRIC_OTHER, also when the caller
 * made that series itself before the cap was reached.
 * Returns: SLUICE_OK; SLUICE_EINVAL (NULL metric, NULL value, or a value
 * that is not valid UTF-8 or longer than 256 bytes); SLUICE_ENOMEM.
 * Ownership: *out belongs to the metric; it stays valid until the
 * registry is destroyed, so callers may cache it for the hot path.
 * Thread-safety: safe; takes the metric's series lock.
 */
SLUICE_API sluice_err sluice_metric_series(sluice_metric *m, const char *const *label_values,
                                           sluice_series **out);

/*
 * Updates by label values (a series lookup under the metric's lock, then
 * atomics) or by a cached series (atomics only; no lock).
 *   add:     counters (v >= 0) and gauges;
 *   set:     gauges only;
 *   observe: histograms only (v in seconds, or whatever unit the name says).
 * Returns: SLUICE_OK; SLUICE_EINVAL (wrong type for the call, a negative
 * counter increment, NaN, or bad label values as in sluice_metric_series).
 * Thread-safety: safe from any thread, also during a scrape.
 */
SLUICE_API sluice_err sluice_metric_add(sluice_metric *m, const char *const *label_values, double v);
SLUICE_API sluice_err sluice_metric_set(sluice_metric *m, const char *const *label_values, double v);
SLUICE_API sluice_err sluice_metric_observe(sluice_metric *m, const char *const *label_values, double v);
SLUICE_API sluice_err sluice_series_add(sluice_series *s, double v);
SLUICE_API sluice_err sluice_series_set(sluice_series *s, double v);
SLUICE_API sluice_err sluice_series_observe(sluice_series *s, double v);

/*
 * sluice_series_value - the current value of a counter or gauge series
 * (for tests and for services that read back their own gauges); for a
 * histogram, the observation count. Thread-safe.
 */
SLUICE_API double sluice_series_value(const sluice_series *s);

/* ---- collectors -------------------------------------------------------------- */

/* A label pair for the writer. */
typedef struct sluice_metric_label {
    const char *name;
    const char *value;
} sluice_metric_label;

/*
 * A collector writes whole families at scrape time:
 *
 *     sluice_expo_family(w, "app_queue_items", SLUICE_METRIC_GAUGE, "Items queued.");
 *     sluice_expo_sample(w, labels, 1, 42);
 *
 * Each family must be written in one go (family line, then all its
 * samples), and a family name must not be written twice in one scrape.
 * Counter family names end in "_total" (the writer strips it for the
 * OpenMetrics TYPE line). A write with an invalid name or label name, a
 * label name given twice, or labels NULL with a count is skipped and
 * counted once in sluice_metrics_write_errors_total (so are the samples
 * of a family that was skipped: not written, not counted).
 * The writer is valid only during the collector call, on the scraping
 * thread; the strings passed are copied into the output at once.
 */
typedef void (*sluice_collector_fn)(sluice_expo *w, void *user);

SLUICE_API void sluice_expo_family(sluice_expo *w, const char *name, sluice_metric_type type,
                                   const char *help);
SLUICE_API void sluice_expo_sample(sluice_expo *w, const sluice_metric_label *labels, size_t label_count,
                                   double v);
/* A histogram sample from a sluice_histogram snapshot (non-cumulative
 * counts, as sluice_pool_histogram_get gives them). */
SLUICE_API void sluice_expo_histogram(sluice_expo *w, const sluice_metric_label *labels, size_t label_count,
                                      const sluice_histogram *h);

/*
 * sluice_metrics_add_collector / _remove_collector - run fn(w, user) at
 * every scrape, in the order added. The pair (fn, user) identifies it.
 * Returns: SLUICE_OK; SLUICE_EINVAL (NULL); SLUICE_ENOMEM; SLUICE_EBUSY
 * (the pair is already added); SLUICE_ENOENT (remove: not found).
 * Thread-safety: safe, except from inside a collector (deadlock: the
 * registry lock is held). After remove returns, fn is not running and
 * will not run again.
 */
SLUICE_API sluice_err sluice_metrics_add_collector(sluice_metrics *reg, sluice_collector_fn fn, void *user);
SLUICE_API sluice_err sluice_metrics_remove_collector(sluice_metrics *reg, sluice_collector_fn fn,
                                                      void *user);

/* ---- pools ----------------------------------------------------------------- */

/*
 * sluice_metrics_add_pool - export the pool_* families for `pool`.
 * A fair pool (SLUICE_QUEUE_FAIR) also gets the pool_tenant_* families,
 * at most the registry's max_series (but at least 2: one tenant and
 * "other") series per family and pool: the
 * busiest tenants get their own series while there is room and keep it
 * (until the pool forgets the tenant, or a folded tenant with over twice
 * its traffic takes it), and the rest are summed into tenant="other". A
 * tenant given a series after folding began counts from then (what it had
 * stays in "other"); the counts of tenants the pool forgot stay in
 * "other". So every tenant series is a counter that never goes down, and
 * the series of a family add up to the pool's own totals. The registry
 * keeps this choice per added pool (up to ~1.2 KiB per tenant series);
 * remove_pool frees it, and a pool added again starts afresh.
 * Returns: SLUICE_OK; SLUICE_EINVAL (NULL); SLUICE_ENOMEM; SLUICE_EBUSY
 * (add: already added, or another added pool has the same name);
 * SLUICE_ENOENT (remove: not added).
 * Ownership: the pool is borrowed; call sluice_metrics_remove_pool before
 * sluice_pool_destroy. After remove returns, no scrape touches the pool.
 * Thread-safety: safe, except from inside a collector.
 */
SLUICE_API sluice_err sluice_metrics_add_pool(sluice_metrics *reg, sluice_pool *pool);
SLUICE_API sluice_err sluice_metrics_remove_pool(sluice_metrics *reg, sluice_pool *pool);

/*
 * sluice_metrics_pool_named - the pool this registry exports under `name`
 * (its sluice_pool_name), so that a caller whose add_pool got
 * SLUICE_EBUSY can tell "this very pool is already exported" (the pointer
 * is the caller's pool) from "another pool of that name is" (/metrics then
 * shows that pool's figures under the name, not the caller's).
 * Returns: SLUICE_OK with *out the pool; SLUICE_ENOENT when no added pool
 * has that name ("" included; *out set to NULL); SLUICE_EINVAL (reg, name
 * or out NULL; *out untouched).
 * Ownership: *out is borrowed and meant for comparing with pools the
 * caller holds: the registry does not keep it alive, and its owner may
 * remove it (sluice_metrics_remove_pool) and destroy it as soon as this
 * call returns, so dereference it only when you know it lives.
 * Thread-safety: safe from any thread; takes the registry lock briefly
 * (waits for a scrape in progress), so never from inside a collector
 * (deadlock: the registry lock is held there).
 */
SLUICE_API sluice_err sluice_metrics_pool_named(sluice_metrics *reg, const char *name,
                                                const sluice_pool **out);

/* ---- exposition ------------------------------------------------------------ */

/*
 * sluice_metrics_render - render every metric, collector and pool in the
 * given format: families of the registry first (in registration order),
 * then the collectors', then the pool families (one family, all pools),
 * then the self-metrics; OpenMetrics ends with "# EOF".
 * Returns: SLUICE_OK, SLUICE_EINVAL, SLUICE_ENOMEM.
 * Ownership: *out is malloc'd, NUL-terminated; the caller frees it.
 * Thread-safety: safe; scrapes serialise on the registry lock. Never
 * blocks a pool's workers.
 */
SLUICE_API sluice_err sluice_metrics_render(sluice_metrics *reg, sluice_expo_format format, char **out,
                                            size_t *len);

/*
 * sluice_expo_negotiate - the format for an HTTP Accept header value (NULL
 * or empty: Prometheus text). OpenMetrics is chosen when
 * application/openmetrics-text is acceptable with a q at least as high as
 * text/plain's (or a wildcard's).
 */
SLUICE_API sluice_expo_format sluice_expo_negotiate(const char *accept);

/* sluice_expo_content_type - the Content-Type header value for a format. */
SLUICE_API const char *sluice_expo_content_type(sluice_expo_format format);

/*
 * sluice_format_double - a double as exposition text: the shortest
 * representation that reads back exactly, "+Inf", "-Inf", "NaN";
 * `openmetrics` adds ".0" to integral values. Returns the length.
 */
SLUICE_API size_t sluice_format_double(double v, bool openmetrics, char *buf, size_t len);

/* ---- thread backtraces (for /debug/pools/stacks) ---------------------------- */

/*
 * sluice_thread_backtrace - capture the current call stack of another
 * thread of this process. The thread is sent SIGURG (whose default action
 * is to ignore it, so a stray one is harmless); a handler installed once
 * per process calls backtrace() into the requesting call's buffer and
 * posts a semaphore. Captures serialise on a process-wide lock.
 * Returns: SLUICE_OK with *count frames (innermost first, the handler's
 * own frames removed); SLUICE_ETIMEDOUT when the thread did not answer
 * within timeout_ns (blocked with the signal masked, or stopped);
 * SLUICE_ENOENT when the thread has exited; SLUICE_EINVAL (the calling
 * thread itself, NULL, max < 1); SLUICE_ESYS (installing the handler).
 * Thread-safety: safe. `thread` must be a thread that has not been
 * joined or detached-and-exited: for a pool's workers, whose handles go
 * stale when a worker expires or is resized away, use
 * sluice_pool_worker_backtrace instead.
 * timeout_ns: how long to wait for the thread to answer; 0 means do not
 * wait (only an answer that is already in counts: in practice ETIMEDOUT).
 * Hazards: an application that uses SIGURG itself (out-of-band socket data
 * with F_SETOWN) should install its handler before the first call: ours
 * passes SIGURGs that are not captures on to it. The target thread is
 * interrupted: a blocking call in it that does not restart after a signal
 * handler (nanosleep, poll, select, epoll_wait, sem_timedwait, ...)
 * returns EINTR, as with any signal.
 */
SLUICE_API sluice_err sluice_thread_backtrace(pthread_t thread, void **frames, int max, int *count,
                                              uint64_t timeout_ns);

/*
 * sluice_pool_worker_backtrace - like sluice_thread_backtrace for the
 * worker `worker` (an entry from sluice_pool_workers_get on `pool`), safe
 * however old the entry is: the signal is sent under the pool's lock and
 * only while that worker's thread is still alive in its slot.
 * Returns: SLUICE_OK; SLUICE_ENOENT when the worker has exited (expired,
 * retired, resized away) since the entry was read, or its slot holds a
 * newer thread; SLUICE_ETIMEDOUT (as above, also when the worker exits
 * between the signal and its answer); SLUICE_EINVAL (NULL pool or worker,
 * the calling thread itself, max < 1); SLUICE_ESYS.
 * Thread-safety: safe while `pool` is not destroyed. Takes the pool's
 * lock for the send only (not while waiting).
 * Hazard: interrupts blocking calls in the running task with EINTR (see
 * sluice_thread_backtrace).
 */
SLUICE_API sluice_err sluice_pool_worker_backtrace(sluice_pool *pool, const sluice_worker_info *worker,
                                                   void **frames, int max, int *count, uint64_t timeout_ns);

#endif /* SLUICE_METRICS_H */
