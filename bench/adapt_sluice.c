/*
 * bench/adapt_sluice.c - Sluice pools, in the configurations the report
 * compares: the default (timing histograms sampled as configured by
 * sluice_pool_config_init), timing off, timing sampled for 1 task in 64, REJECT
 * overflow for the burst, and (when the metrics layer exists) the default
 * with the pool's metrics collector registered.
 *
 * The default configuration is whatever sluice_pool_config_init gives (at
 * the time of writing: timing on for every task, timing_sample_every = 1).
 *
 * Every configuration goes through the public API only (sluice/pool.h),
 * exactly as a user would call it: sluice_pool_submit per task, drain and
 * destroy at the end.
 */
#include <stdio.h>
#include <stdlib.h>

#include "bench.h"
#include "sluice/pool.h"

typedef enum { TIMING_DEFAULT, TIMING_OFF, TIMING_SAMPLE_64 } timing_mode;

typedef struct sluice_variant {
    timing_mode timing;
    sluice_overflow overflow;
} sluice_variant;

static int sluice_task(void *arg)
{
    bench_task_run(bench_ptr_to_idx(arg));
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
    if (opts->start_all) {
        cfg.min_workers = opts->workers;
        cfg.prewarm = true;
    }
    if (v->timing == TIMING_OFF) {
        cfg.timing_disabled = true;
    } else if (v->timing == TIMING_SAMPLE_64) {
        cfg.timing_sample_every = 64;
    }
    sluice_pool *pool = NULL;
    char ebuf[256] = "";
    sluice_err e = sluice_pool_create(&cfg, &pool, ebuf, sizeof ebuf);
    if (e != SLUICE_OK) {
        snprintf(err, errlen, "sluice_pool_create: %s: %s", sluice_err_name(e), ebuf);
        return -1;
    }
    *out = pool;
    return 0;
}

static int sl_submit(void *pool, void *producer, uint64_t idx)
{
    (void)producer;
    sluice_err e = sluice_pool_submit(pool, sluice_task, bench_idx_to_ptr(idx));
    if (e == SLUICE_OK) {
        return BENCH_OK;
    }
    return e == SLUICE_EFULL ? BENCH_EFULL : BENCH_EFAIL;
}

static void sl_destroy(void *pool)
{
    sluice_drain_report rep;
    (void)sluice_pool_drain(pool, 0, &rep);
    sluice_pool_destroy(pool);
}

static const sluice_variant v_default = {TIMING_DEFAULT, SLUICE_OVERFLOW_BLOCK};
static const sluice_variant v_notiming = {TIMING_OFF, SLUICE_OVERFLOW_BLOCK};
static const sluice_variant v_sample64 = {TIMING_SAMPLE_64, SLUICE_OVERFLOW_BLOCK};
static const sluice_variant v_reject = {TIMING_DEFAULT, SLUICE_OVERFLOW_REJECT};

const bench_adapter bench_adapter_sluice = {
    .name = "sluice",
    .overflow = "Sluice, default config (sluice_pool_config_init: timing every task): bounded queue, BLOCK policy: a full queue blocks the submitter",
    .flags = BENCH_F_SLUICE | BENCH_F_MAIN,
    .variant = &v_default,
    .create = sl_create,
    .submit = sl_submit,
    .destroy = sl_destroy,
};

const bench_adapter bench_adapter_sluice_notiming = {
    .name = "sluice-notiming",
    .overflow = "Sluice, timing_disabled = true (counters only)",
    .flags = BENCH_F_SLUICE,
    .variant = &v_notiming,
    .create = sl_create,
    .submit = sl_submit,
    .destroy = sl_destroy,
};

const bench_adapter bench_adapter_sluice_sample64 = {
    .name = "sluice-sample64",
    .overflow = "Sluice, timing_sample_every = 64 (clock reads and histogram updates for 1 task in 64)",
    .flags = BENCH_F_SLUICE | BENCH_F_METRICS_ONLY,
    .variant = &v_sample64,
    .create = sl_create,
    .submit = sl_submit,
    .destroy = sl_destroy,
};

const bench_adapter bench_adapter_sluice_reject = {
    .name = "sluice-reject",
    .overflow = "Sluice, REJECT policy: a full queue refuses with SLUICE_EFULL at once",
    .flags = BENCH_F_SLUICE | BENCH_F_BURST_ONLY,
    .variant = &v_reject,
    .create = sl_create,
    .submit = sl_submit,
    .destroy = sl_destroy,
};
