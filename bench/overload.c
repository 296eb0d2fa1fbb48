/*
 * bench/overload.c - the `overload` workload (issue 14): offered load at
 * twice the pool's capacity, every task with a deadline, and what each
 * overload mode makes of it: FIFO (off), CoDel, CoDel with its schedule
 * alone (RFC 8289, no slough), adaptive LIFO, and CoDel + LIFO.
 *
 * Setup, the same for every row. K = 8 workers; each task sleeps 2 ms (so
 * capacity does not depend on how busy the CPUs are); a queue of 4096
 * with REJECT (an open-loop producer never blocks); each task is submitted
 * with a deadline 50 ms after its submit (sluice_submit_opts.deadline_ns:
 * a task still queued then is shed by the pool, as a service would ask).
 * CoDel's target 5 ms and interval 100 ms (the defaults). The row first
 * measures its capacity (tasks/s of the same pool kept full for a short
 * closed-loop phase, modes off), then one producer offers 2 x that rate
 * for the run, catching up in bursts when the scheduler delays it (the
 * offered count is exact: rate x elapsed). Everything after the first
 * submit counts, ramp included.
 *
 * Figures. goodput = tasks that *finished* within their deadline, per
 * second, as a % of the measured capacity (primary) and of the offered
 * load; p99 and p50 of the submit-to-finish latency of the tasks that ran;
 * the share shed (by their deadline or by CoDel) and refused at submit.
 * A FIFO queue under 2x load keeps every task waiting until its deadline:
 * the tasks it runs start just before it and finish just after.
 *
 * The rows are Sluice-only adapters (their create/submit build the pool
 * with its overload mode); the workload drives them through their own
 * handle type, since it needs per-task deadlines and the pool's counters.
 */
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "bench.h"
#include "sluice/pool.h"

#define OV_WORKERS 8
#define OV_TASK_NS (2 * 1000 * 1000ull)
#define OV_DEADLINE_NS (50 * 1000 * 1000ull)
#define OV_QUEUE 4096

typedef struct ov_variant {
    sluice_overload_mode mode;
    uint64_t slough_ns; /* 0: the default (2 x target) */
} ov_variant;

typedef struct ov_pool {
    sluice_pool *pool;
    _Atomic uint64_t shed; /* handed back (deadline or CoDel) */
} ov_pool;

/* Per-task records of one run (a child process runs one row). */
static uint64_t *ov_submit_ns;  /* 0: not submitted */
static uint64_t *ov_latency_ns; /* 0: did not run */

static int ov_task(void *arg)
{
    uint64_t idx = bench_ptr_to_idx(arg);
    bench_sleep_ns(OV_TASK_NS);
    if (ov_latency_ns) {
        uint64_t now = sluice_clock_now(NULL);
        ov_latency_ns[idx] = now > ov_submit_ns[idx] ? now - ov_submit_ns[idx] : 1;
    }
    return 0;
}

static void ov_abandon(const sluice_abandoned *a, void *user)
{
    (void)a;
    ov_pool *p = user;
    atomic_fetch_add_explicit(&p->shed, 1, memory_order_relaxed);
}

static int ov_make(const ov_variant *v, const bench_pool_opts *opts, ov_pool **out, char *err, size_t errlen)
{
    ov_pool *p = calloc(1, sizeof *p);
    if (!p) {
        snprintf(err, errlen, "out of memory");
        return -1;
    }
    sluice_pool_config cfg;
    sluice_pool_config_init(&cfg);
    cfg.name = "overload";
    cfg.workers = opts->workers;
    cfg.min_workers = opts->workers;
    cfg.prewarm = true;
    cfg.queue_capacity = opts->queue_capacity;
    cfg.overflow = SLUICE_OVERFLOW_REJECT;
    cfg.abandon_handler = ov_abandon;
    cfg.user = p;
    cfg.overload = v ? v->mode : SLUICE_OVERLOAD_OFF;
    cfg.overload_slough_ns = v ? v->slough_ns : 0;
    char ebuf[256] = "";
    sluice_err e = sluice_pool_create(&cfg, &p->pool, ebuf, sizeof ebuf);
    if (e != SLUICE_OK) {
        snprintf(err, errlen, "sluice_pool_create: %s: %s", sluice_err_name(e), ebuf);
        free(p);
        return -1;
    }
    *out = p;
    return 0;
}

static void ov_free(ov_pool *p)
{
    (void)sluice_pool_drain(p->pool, 0, NULL);
    sluice_pool_destroy(p->pool);
    free(p);
}

/* ---- the adapter face (so the driver can list and select the rows) ---- */

static int ov_create(const bench_adapter *self, const bench_pool_opts *opts, void **pool, char *err,
                     size_t errlen)
{
    return ov_make(self->variant, opts, (ov_pool **)pool, err, errlen);
}

static int ov_submit(void *pool, void *producer, uint64_t idx)
{
    (void)producer;
    ov_pool *p = pool;
    sluice_err e = sluice_pool_submit(p->pool, ov_task, bench_idx_to_ptr(idx));
    return e == SLUICE_OK ? BENCH_OK : e == SLUICE_EFULL ? BENCH_EFULL : BENCH_EFAIL;
}

static void ov_destroy(void *pool)
{
    ov_free(pool);
}

#define OV_ADAPTER(sym, nm, what, md, sl)                                                                    \
    static const ov_variant sym##_v = {md, sl};                                                              \
    const bench_adapter sym = {                                                                              \
        .name = nm,                                                                                          \
        .overflow = what,                                                                                    \
        .flags = BENCH_F_SLUICE | BENCH_F_OVERLOAD_ONLY,                                                     \
        .variant = &sym##_v,                                                                                 \
        .create = ov_create,                                                                                 \
        .submit = ov_submit,                                                                                 \
        .destroy = ov_destroy,                                                                               \
    }

OV_ADAPTER(bench_adapter_sluice_ov_fifo, "sluice-fifo",
           "Sluice, overload: off (FIFO; deadlines shed at start)", SLUICE_OVERLOAD_OFF, 0);
OV_ADAPTER(bench_adapter_sluice_ov_codel, "sluice-codel",
           "Sluice, overload: codel (target 5 ms, interval 100 ms)", SLUICE_OVERLOAD_CODEL, 0);
OV_ADAPTER(bench_adapter_sluice_ov_codel_rfc, "sluice-codel-rfc",
           "Sluice, overload: codel with its drop schedule alone (overload_slough = never, as RFC 8289)",
           SLUICE_OVERLOAD_CODEL, UINT64_MAX);
OV_ADAPTER(bench_adapter_sluice_ov_lifo, "sluice-lifo", "Sluice, overload: lifo (adaptive LIFO)",
           SLUICE_OVERLOAD_LIFO, 0);
OV_ADAPTER(bench_adapter_sluice_ov_both, "sluice-codel+lifo", "Sluice, overload: codel+lifo",
           SLUICE_OVERLOAD_CODEL_LIFO, 0);

bool bench_takes_overload(const bench_adapter *a)
{
    return (a->flags & BENCH_F_OVERLOAD_ONLY) != 0;
}

/* ---- the measurement ---------------------------------------------------- */

/* Tasks per second of a plain FIFO pool of the same shape kept full. */
static double measure_capacity(const bench_pool_opts *o, double seconds, char *err, size_t errlen)
{
    ov_pool *p;
    if (ov_make(NULL, o, &p, err, errlen) != 0) {
        return 0;
    }
    uint64_t t0 = bench_now_ns(), end = t0 + (uint64_t)(seconds * 1e9);
    uint64_t idx = 0;
    sluice_pool_stats st;
    while (bench_now_ns() < end) {
        if (sluice_pool_submit(p->pool, ov_task, bench_idx_to_ptr(idx)) == SLUICE_OK) {
            idx++;
        } else {
            bench_sleep_ns(OV_TASK_NS / 4);
        }
    }
    sluice_pool_stats_get(p->pool, &st);
    uint64_t done = st.completed;
    uint64_t t1 = bench_now_ns();
    ov_free(p);
    return (double)done / ((double)(t1 - t0) / 1e9);
}

static int cmp_u64(const void *x, const void *y)
{
    uint64_t a = *(const uint64_t *)x, b = *(const uint64_t *)y;
    return a < b ? -1 : a > b;
}

void bench_m_overload(const bench_adapter *a, const bench_config *cfg, bench_result *res)
{
    bench_pool_opts o = {
        .workers = OV_WORKERS, .queue_capacity = OV_QUEUE, .producers = 1, .start_all = true};
    double seconds = cfg->quick ? 0.3 : 3.0;
    double capacity = measure_capacity(&o, cfg->quick ? 0.1 : 0.5, res->msg, sizeof res->msg);
    if (capacity <= 0) {
        res->status = BENCH_RES_ERROR;
        return;
    }
    double rate = 2.0 * capacity;
    uint64_t max_tasks = (uint64_t)(rate * seconds * 1.1) + 1024;
    ov_submit_ns = calloc(max_tasks, sizeof *ov_submit_ns);
    ov_latency_ns = calloc(max_tasks, sizeof *ov_latency_ns);
    ov_pool *p = NULL;
    if (!ov_submit_ns || !ov_latency_ns || a->create(a, &o, (void **)&p, res->msg, sizeof res->msg) != 0) {
        res->status = BENCH_RES_ERROR;
        if (!res->msg[0]) {
            snprintf(res->msg, sizeof res->msg, "out of memory");
        }
        return;
    }
    /* Open loop: by time t the producer has offered rate x t tasks; when
     * the scheduler delays it, it catches up in a burst. */
    uint64_t t0 = bench_now_ns(), end = t0 + (uint64_t)(seconds * 1e9);
    uint64_t offered = 0, refused = 0;
    for (;;) {
        uint64_t now = bench_now_ns();
        if (now >= end) {
            break;
        }
        uint64_t due = (uint64_t)((double)(now - t0) / 1e9 * rate);
        if (due > max_tasks) {
            due = max_tasks;
        }
        while (offered < due) {
            uint64_t idx = offered++;
            uint64_t s = sluice_clock_now(NULL);
            ov_submit_ns[idx] = s;
            sluice_submit_opts so = {.deadline_ns = s + OV_DEADLINE_NS};
            sluice_err e = sluice_pool_submit_ex(p->pool, ov_task, bench_idx_to_ptr(idx), &so);
            if (e == SLUICE_EFULL) {
                refused++;
            } else if (e != SLUICE_OK) {
                snprintf(res->msg, sizeof res->msg, "submit: %s", sluice_err_name(e));
                res->status = BENCH_RES_ERROR;
                return;
            }
        }
        bench_sleep_ns(100 * 1000);
    }
    double elapsed = (double)(bench_now_ns() - t0) / 1e9;
    /* Let the queue empty: every accepted task runs or is shed. */
    (void)sluice_pool_drain(p->pool, 0, NULL);
    sluice_pool_stats st;
    sluice_pool_stats_get(p->pool, &st);
    uint64_t shed = atomic_load(&p->shed);
    uint64_t ran = 0, good = 0;
    uint64_t *lat = malloc((offered ? offered : 1) * sizeof *lat);
    for (uint64_t i = 0; lat && i < offered; i++) {
        if (ov_latency_ns[i]) {
            lat[ran++] = ov_latency_ns[i];
            good += ov_latency_ns[i] <= OV_DEADLINE_NS;
        }
    }
    if (!lat || st.submitted != ran + shed || st.submitted + refused != offered) {
        res->status = BENCH_RES_INTEGRITY;
        snprintf(res->msg, sizeof res->msg,
                 "accounting: offered %llu = accepted %llu + refused %llu; accepted = ran %llu + shed %llu?",
                 (unsigned long long)offered, (unsigned long long)st.submitted, (unsigned long long)refused,
                 (unsigned long long)ran, (unsigned long long)shed);
        free(lat);
        return;
    }
    qsort(lat, ran, sizeof *lat, cmp_u64);
    double goodput = (double)good / elapsed;
    res->v[0] = 100.0 * goodput / capacity;
    res->v[1] = offered ? 100.0 * (double)good / (double)offered : 0;
    res->v[2] = ran ? (double)lat[(size_t)(0.99 * (double)(ran - 1))] / 1e6 : 0;
    res->v[3] = ran ? (double)lat[(ran - 1) / 2] / 1e6 : 0;
    res->v[4] = offered ? 100.0 * (double)shed / (double)offered : 0;
    res->v[5] = offered ? 100.0 * (double)refused / (double)offered : 0;
    snprintf(
        res->msg, sizeof res->msg,
        "capacity %.0f/s, offered %.0f/s; ran %llu (%llu in time), shed %llu (CoDel %llu), refused %llu; "
        "LIFO switches %llu",
        capacity, (double)offered / elapsed, (unsigned long long)ran, (unsigned long long)good,
        (unsigned long long)shed, (unsigned long long)st.codel_shed, (unsigned long long)refused,
        (unsigned long long)st.lifo_switches);
    free(lat);
    ov_free(p);
}

void bench_d_overload(const bench_config *cfg, char *buf, size_t len)
{
    snprintf(
        buf, len,
        "offered 2x capacity for %.1f s, K=%u, %llu ms sleeping tasks, queue %u (reject), each task with a "
        "%llu ms deadline; goodput = finished within the deadline",
        cfg->quick ? 0.3 : 3.0, OV_WORKERS, (unsigned long long)(OV_TASK_NS / 1000000), OV_QUEUE,
        (unsigned long long)(OV_DEADLINE_NS / 1000000));
}
