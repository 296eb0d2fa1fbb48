/*
 * bench/adapt_sluice.c - Sluice pools, in the configurations the report
 * compares: the default (timing histograms sampled as configured by
 * sluice_pool_config_init), timing off, every task timed, timing sampled
 * for 1 task in 64, REJECT
 * overflow for the burst, and (when the metrics layer exists) the default
 * with the pool's metrics collector registered.
 *
 * The default configuration is whatever sluice_pool_config_init gives (at
 * the time of writing: timing_sample_every = SLUICE_TIMING_SAMPLE_AUTO,
 * which keeps timing near 1% of task time).
 *
 * Every configuration goes through the public API only (sluice/pool.h),
 * exactly as a user would call it: sluice_pool_submit per task, drain and
 * destroy at the end.
 */
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <time.h>
#include <unistd.h>

#include "bench.h"
#include "sluice/control.h"
#include "sluice/pool.h"
#ifdef BENCH_HAVE_METRICS
#include "sluice/metrics.h"
#endif

typedef enum { TIMING_DEFAULT, TIMING_OFF, TIMING_EVERY, TIMING_SAMPLE_64 } timing_mode;

typedef struct sluice_variant {
    timing_mode timing;
    sluice_overflow overflow;
    bool collector; /* register the pool with a metrics registry and scrape it */
    sluice_queue_discipline queue;
    /* The closed loops' cost on the hot path (issue 14): an overload mode
     * whose target is never reached (every task is stamped and judged at
     * pop, none is shed), and a controller ticked every 10 ms. */
    sluice_overload_mode overload;
    bool control;
} sluice_variant;

/* The handle the driver holds: the pool, and for the collector variant the
 * registry and its scraper thread. */
typedef struct sl_bench {
    sluice_pool *pool;
#ifdef BENCH_HAVE_METRICS
    sluice_metrics *reg;
    pthread_t scraper;
    atomic_bool stop;
    bool scraping;
#endif
    sluice_pool_control *ctl;
    pthread_t ticker;
    atomic_bool ticking;
} sl_bench;

/* 100x the service's default decision rate (1 s), so a controller's cost
 * shows if it has one. */
static void *ticker_main(void *arg)
{
    sl_bench *b = arg;
    while (atomic_load_explicit(&b->ticking, memory_order_acquire)) {
        (void)sluice_pool_control_tick(b->ctl);
        struct timespec ts = {0, 10 * 1000 * 1000};
        nanosleep(&ts, NULL);
    }
    return NULL;
}

/* An overload row's target is never reached, so nothing is shed; should a
 * stalled machine make one shed anyway, the task still runs here, so the
 * accounting (every accepted index runs once) holds. */
static void sl_shed_runs(const sluice_abandoned *a, void *user)
{
    (void)user;
    bench_task_run(bench_arg_take(a->arg));
}

#ifdef BENCH_HAVE_METRICS
/* A scrape every 10 ms: far above a real scrape interval (15 s), so any
 * cost the collector adds to the hot path shows up. */
static void *scraper_main(void *arg)
{
    sl_bench *b = arg;
    while (!atomic_load_explicit(&b->stop, memory_order_acquire)) {
        char *text = NULL;
        size_t len = 0;
        if (sluice_metrics_render(b->reg, SLUICE_EXPO_PROMETHEUS, &text, &len) == SLUICE_OK) {
            free(text);
        }
        struct timespec ts = {0, 10 * 1000 * 1000};
        nanosleep(&ts, NULL);
    }
    return NULL;
}
#endif

static int sluice_task(void *arg)
{
    bench_task_run(bench_arg_take(arg));
    return 0;
}

static int sl_create(const bench_adapter *self, const bench_pool_opts *opts, void **out, char *err,
                     size_t errlen)
{
    const sluice_variant *v = self->variant;
    sluice_pool_config cfg;
    sluice_pool_config_init(&cfg);
    cfg.name = "bench";
    cfg.workers = opts->workers;
    cfg.queue_capacity = opts->queue_capacity;
    cfg.overflow = v->overflow;
    cfg.queue_discipline = v->queue;
    if (opts->start_all) {
        cfg.min_workers = opts->workers;
        cfg.prewarm = true;
    }
    if (v->overload != SLUICE_OVERLOAD_OFF) {
        cfg.overload = v->overload;
        cfg.overload_target_ns = UINT64_MAX; /* never above target: judged, never shed */
        cfg.overload_interval_ns = UINT64_MAX;
        cfg.abandon_handler = sl_shed_runs;
    }
    if (v->timing == TIMING_OFF) {
        cfg.timing_disabled = true;
    } else if (v->timing == TIMING_EVERY) {
        cfg.timing_sample_every = 1;
    } else if (v->timing == TIMING_SAMPLE_64) {
        cfg.timing_sample_every = 64;
    }
    sl_bench *b = calloc(1, sizeof *b);
    if (!b) {
        snprintf(err, errlen, "out of memory");
        return -1;
    }
    char ebuf[256] = "";
    sluice_err e = sluice_pool_create(&cfg, &b->pool, ebuf, sizeof ebuf);
    if (e != SLUICE_OK) {
        snprintf(err, errlen, "sluice_pool_create: %s: %s", sluice_err_name(e), ebuf);
        free(b);
        return -1;
    }
#ifdef BENCH_HAVE_METRICS
    if (v->collector) {
        if ((e = sluice_metrics_create(NULL, &b->reg)) != SLUICE_OK ||
            (e = sluice_metrics_add_pool(b->reg, b->pool)) != SLUICE_OK) {
            snprintf(err, errlen, "metrics registry: %s", sluice_err_name(e));
            sluice_metrics_destroy(b->reg);
            sluice_pool_destroy(b->pool);
            free(b);
            return -1;
        }
        b->scraping = pthread_create(&b->scraper, NULL, scraper_main, b) == 0;
    }
#endif
    if (v->control) {
        sluice_pool_control_config cc;
        sluice_pool_control_config_init(&cc);
        cc.mode = SLUICE_CONTROL_FIXED;
        cc.autotune = true;
        cc.min_limit = opts->workers;
        cc.max_limit = opts->workers; /* decides every tick, never moves K: the cost, not the effect */
        cc.interval_ns = 10 * SLUICE_NS_PER_MS;
        if ((e = sluice_pool_control_create(b->pool, &cc, &b->ctl, ebuf, sizeof ebuf)) != SLUICE_OK) {
            snprintf(err, errlen, "sluice_pool_control_create: %s: %s", sluice_err_name(e), ebuf);
            sluice_pool_destroy(b->pool);
            free(b);
            return -1;
        }
        atomic_store(&b->ticking, true);
        if (pthread_create(&b->ticker, NULL, ticker_main, b) != 0) {
            atomic_store(&b->ticking, false);
        }
    }
    *out = b;
    return 0;
}

static int sl_submit(void *pool, void *producer, uint64_t idx)
{
    (void)producer;
    sl_bench *b = pool;
    void *arg = bench_arg_make(idx);
    if (!arg) {
        return BENCH_EFAIL;
    }
    sluice_err e = sluice_pool_submit(b->pool, sluice_task, arg);
    if (e == SLUICE_OK) {
        return BENCH_OK;
    }
    if (bench_g.malloc_arg) {
        free(arg); /* refused: the producer still owns it */
    }
    return e == SLUICE_EFULL ? BENCH_EFULL : BENCH_EFAIL;
}

static void sl_destroy(void *pool)
{
    sl_bench *b = pool;
    if (b->ctl) {
        if (atomic_exchange(&b->ticking, false)) {
            pthread_join(b->ticker, NULL);
        }
        sluice_pool_control_destroy(b->ctl);
    }
#ifdef BENCH_HAVE_METRICS
    if (b->scraping) {
        atomic_store_explicit(&b->stop, true, memory_order_release);
        pthread_join(b->scraper, NULL);
    }
    if (b->reg) {
        sluice_metrics_remove_pool(b->reg, b->pool);
        sluice_metrics_destroy(b->reg);
    }
#endif
    sluice_drain_report rep;
    (void)sluice_pool_drain(b->pool, 0, &rep);
    sluice_pool_destroy(b->pool);
    free(b);
}

/* One Sluice row: its variant (only the fields that differ from the
 * default pool: zero is each field's default, TIMING_DEFAULT, BLOCK, FIFO,
 * overload off, no collector, no controller) and its adapter. */
#define SL_ADAPTER(sym, nm, what, fl, ...)                                                                   \
    static const sluice_variant sym##_variant = {__VA_ARGS__};                                               \
    const bench_adapter sym = {                                                                              \
        .name = nm,                                                                                          \
        .overflow = what,                                                                                    \
        .flags = fl,                                                                                         \
        .variant = &sym##_variant,                                                                           \
        .create = sl_create,                                                                                 \
        .submit = sl_submit,                                                                                 \
        .destroy = sl_destroy,                                                                               \
    }

_Static_assert(TIMING_DEFAULT == 0 && SLUICE_OVERFLOW_BLOCK == 0 && SLUICE_QUEUE_FIFO == 0 &&
                   SLUICE_OVERLOAD_OFF == 0,
               "SL_ADAPTER's omitted fields must mean the default pool");

SL_ADAPTER(bench_adapter_sluice, "sluice",
           "Sluice, default config (sluice_pool_config_init: timing sampled automatically, ~1% of task "
           "time): bounded queue, BLOCK policy: a full queue blocks the submitter",
           BENCH_F_SLUICE | BENCH_F_MAIN, .timing = TIMING_DEFAULT);
SL_ADAPTER(bench_adapter_sluice_notiming, "sluice-notiming", "Sluice, timing_disabled = true (counters only)",
           BENCH_F_SLUICE, .timing = TIMING_OFF);
SL_ADAPTER(bench_adapter_sluice_sharded, "sluice-sharded",
           "Sluice, default config with queue_discipline = SLUICE_QUEUE_SHARDED: a ring per shard "
           "(min(K, CPUs) shards), workers pop their own and steal; BLOCK",
           BENCH_F_SLUICE | BENCH_F_QUEUE, .queue = SLUICE_QUEUE_SHARDED);
SL_ADAPTER(bench_adapter_sluice_sharded_notiming, "sluice-sharded-notiming",
           "Sluice, sharded queue and timing_disabled = true (no-op workloads)",
           BENCH_F_SLUICE | BENCH_F_NOOP_ONLY, .timing = TIMING_OFF, .queue = SLUICE_QUEUE_SHARDED);
SL_ADAPTER(bench_adapter_sluice_fifo_batch, "sluice-fifo-batch",
           "Sluice, default config with queue_discipline = SLUICE_QUEUE_FIFO_BATCH: the FIFO ring, "
           "workers claim runs of up to 32 tasks with one CAS when it is deep; BLOCK",
           BENCH_F_SLUICE | BENCH_F_QUEUE, .queue = SLUICE_QUEUE_FIFO_BATCH);
SL_ADAPTER(bench_adapter_sluice_fifo_batch_notiming, "sluice-fifo-batch-notiming",
           "Sluice, fifo_batch queue and timing_disabled = true (no-op workloads)",
           BENCH_F_SLUICE | BENCH_F_NOOP_ONLY, .timing = TIMING_OFF, .queue = SLUICE_QUEUE_FIFO_BATCH);
SL_ADAPTER(bench_adapter_sluice_on_codel, "sluice-on-codel",
           "Sluice, default config with overload = codel, target never reached: the cost of stamping "
           "and judging every task (no-op workloads)",
           BENCH_F_SLUICE | BENCH_F_NOOP_ONLY, .overload = SLUICE_OVERLOAD_CODEL);
SL_ADAPTER(bench_adapter_sluice_on_lifo, "sluice-on-lifo",
           "Sluice, default config with overload = lifo, never congested: the deque and the judging "
           "(no-op workloads)",
           BENCH_F_SLUICE | BENCH_F_NOOP_ONLY, .overload = SLUICE_OVERLOAD_LIFO);
SL_ADAPTER(bench_adapter_sluice_on_control, "sluice-on-control",
           "Sluice, default config with a pool controller (auto-tune, K pinned by min = max) ticked "
           "every 10 ms (no-op workloads)",
           BENCH_F_SLUICE | BENCH_F_NOOP_ONLY, .control = true);
SL_ADAPTER(bench_adapter_sluice_timeall, "sluice-timeall",
           "Sluice, timing_sample_every = 1 (two clock reads and two histogram updates on every task)",
           BENCH_F_SLUICE | BENCH_F_METRICS_ONLY, .timing = TIMING_EVERY);
SL_ADAPTER(bench_adapter_sluice_sample64, "sluice-sample64",
           "Sluice, timing_sample_every = 64 (clock reads and histogram updates for 1 task in 64)",
           BENCH_F_SLUICE | BENCH_F_METRICS_ONLY, .timing = TIMING_SAMPLE_64);
SL_ADAPTER(bench_adapter_sluice_reject, "sluice-reject",
           "Sluice, REJECT policy: a full queue refuses with SLUICE_EFULL at once",
           BENCH_F_SLUICE | BENCH_F_BURST_ONLY, .overflow = SLUICE_OVERFLOW_REJECT);

#ifdef BENCH_HAVE_METRICS
SL_ADAPTER(bench_adapter_sluice_collector, "sluice-collector",
           "Sluice, default config, registered with a metrics registry (sluice_metrics_add_pool) that a "
           "thread scrapes every 10 ms",
           BENCH_F_SLUICE | BENCH_F_METRICS_ONLY, .collector = true);
#endif

/* ---- sluice-batch64: the same pool fed through sluice_pool_submit_batch --- */

#define BATCH 64

typedef struct sl_batcher {
    sluice_task_spec specs[BATCH];
    size_t n;
    bool failed;
} sl_batcher;

static void *sl_batch_begin(void *pool)
{
    (void)pool;
    return calloc(1, sizeof(sl_batcher));
}

static void sl_batch_flush(sl_bench *b, sl_batcher *bt)
{
    size_t accepted = 0;
    if (bt->n && sluice_pool_submit_batch(b->pool, bt->specs, bt->n, false, &accepted) != SLUICE_OK) {
        bt->failed = true; /* BLOCK policy: only a closed pool refuses, which is a bench error */
    }
    bt->n = 0;
}

static int sl_batch_submit(void *pool, void *producer, uint64_t idx)
{
    sl_batcher *bt = producer;
    if (!bt || bt->failed) {
        return BENCH_EFAIL;
    }
    void *arg = bench_arg_make(idx);
    if (!arg) {
        return BENCH_EFAIL;
    }
    bt->specs[bt->n++] = (sluice_task_spec){.fn = sluice_task, .arg = arg};
    if (bt->n == BATCH) {
        sl_batch_flush(pool, bt);
    }
    return bt->failed ? BENCH_EFAIL : BENCH_OK;
}

static void sl_batch_end(void *pool, void *producer)
{
    sl_batcher *bt = producer;
    if (bt) {
        sl_batch_flush(pool, bt);
        if (bt->failed) {
            fprintf(stderr, "sluice-bench: sluice_pool_submit_batch refused a batch\n");
            _exit(3); /* tasks were counted as accepted: the run cannot be checked */
        }
        free(bt);
    }
}

/* A batch row: the pool of `base`, fed through sluice_pool_submit_batch. */
#define SL_BATCH_ADAPTER(sym, nm, what, base)                                                                \
    const bench_adapter sym = {                                                                              \
        .name = nm,                                                                                          \
        .overflow = what,                                                                                    \
        .flags = BENCH_F_SLUICE | BENCH_F_NOOP_ONLY,                                                         \
        .variant = &base##_variant,                                                                          \
        .create = sl_create,                                                                                 \
        .producer_begin = sl_batch_begin,                                                                    \
        .submit = sl_batch_submit,                                                                           \
        .producer_end = sl_batch_end,                                                                        \
        .destroy = sl_destroy,                                                                               \
    }

SL_BATCH_ADAPTER(bench_adapter_sluice_batch, "sluice-batch64",
                 "Sluice, default config, fed 64 tasks at a time through sluice_pool_submit_batch (no-op "
                 "workloads)",
                 bench_adapter_sluice);
/* Both sides in runs: producers' batches claim places with one CAS per run
 * (sluice_pool_submit_batch), workers claim runs from a deep queue
 * (fifo_batch). */
SL_BATCH_ADAPTER(bench_adapter_sluice_fifo_batch_batch, "sluice-fifo-batch-batch64",
                 "Sluice, fifo_batch queue, fed 64 tasks at a time through sluice_pool_submit_batch (no-op "
                 "workloads)",
                 bench_adapter_sluice_fifo_batch);
