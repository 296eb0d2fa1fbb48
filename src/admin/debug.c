/*
 * src/admin/debug.c - /debug/pools (JSON: each pool's config, stats and
 * workers) and /debug/pools/stacks (text: every worker's backtrace).
 *
 * Both read snapshots only (config, stats, worker lists), so a request
 * never blocks a worker. What they reveal, and why they sit behind the
 * bearer token when one is set: the pools' names and configuration, task
 * labels, and, in the stacks, code addresses and symbol names of the
 * binary (an ASLR leak to whoever can read them).
 *
 * Stacks. Each worker is asked for its own backtrace by a signal
 * (SIGURG, see src/obs/stacks.c), which interrupts a blocking call in the
 * task with EINTR where the call does not restart (nanosleep, poll,
 * select, ...). The capture goes through sluice_pool_worker_backtrace,
 * which signals a worker only while the pool still has it (never a thread
 * that has exited and been joined), so workers may expire, retire or be
 * resized away during the request: such a worker reads "(no backtrace:
 * ...)".
 *
 * Tenants. A fair pool's entry also lists its tenants (queued, running,
 * weight and limits, counters): the busiest DEBUG_TENANTS_MAX by queued +
 * running tasks, then "tenants_omitted" says how many more there are (so
 * a pool tracking a million names cannot turn the page into megabytes),
 * and "tenants_forgotten" sums the counters of the tenants forgotten
 * after idling (with the tenants listed and omitted, the pool's totals).
 * The page never copies every tenant: sluice_pool_tenants_top picks the
 * busiest names (taking the fair queue's lock a small piece at a time)
 * and sluice_pool_tenants_select reads those in one short hold, so a
 * request costs the pool's submitters no more with a million tenants than
 * with a thousand, and allocates DEBUG_TENANTS_MAX entries at most.
 *
 * Lock order: pools_lock (read) -> pool getters (pool->mu inside them).
 */
#include <inttypes.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "admin/admin_internal.h"
#include "sluice/metrics.h"
#include "sluice/tenant.h"

/* The most tenants one pool's entry lists. */
#define DEBUG_TENANTS_MAX 200

/* The live workers of a pool (malloc'd; *n set). */
static sluice_worker_info *workers_of(sluice_pool *pool, size_t *n)
{
    size_t cap = 64;
    for (;;) {
        sluice_worker_info *w = calloc(cap, sizeof *w);
        if (!w) {
            *n = 0;
            return NULL;
        }
        size_t got = sluice_pool_workers_get(pool, w, cap);
        if (got <= cap) {
            *n = got;
            return w;
        }
        free(w);
        cap = got + 16;
    }
}

static double age_seconds(sluice_pool *pool, uint64_t since)
{
    uint64_t now = sluice_clock_now(sluice_pool_clock(pool));
    return since && now > since ? (double)(now - since) / 1e9 : 0.0;
}

/* Busiest first (queued + running), then by name. */
static int by_load(const void *a, const void *b)
{
    const sluice_tenant_stats *x = a, *y = b;
    size_t lx = x->queued + x->running, ly = y->queued + y->running;
    if (lx != ly) {
        return lx > ly ? -1 : 1;
    }
    return strcmp(x->name, y->name);
}

/* "submitted":..,...,"abandoned":.. of one tenant (or the forgotten record). */
static void json_tenant_counters(sluice__sb *b, const sluice_tenant_stats *x)
{
    sluice__sb_printf(b,
                      "\"submitted\":%" PRIu64 ",\"started\":%" PRIu64 ",\"completed\":%" PRIu64
                      ",\"failed\":%" PRIu64 ",\"panicked\":%" PRIu64 ",\"dropped\":%" PRIu64
                      ",\"rejected\":%" PRIu64 ",\"shed\":%" PRIu64 ",\"abandoned\":%" PRIu64,
                      x->submitted, x->started, x->completed, x->failed, x->panicked, x->dropped, x->rejected,
                      x->shed, x->abandoned);
}

/* ,"tenancy":{...},"tenants":[...] for a fair pool. */
static void json_tenants(sluice__sb *b, sluice_pool *pool)
{
    sluice_tenancy_stats ts;
    sluice_pool_tenancy_get(pool, &ts);
    sluice__sb_printf(b,
                      ",\"tenancy\":{\"tracked\":%u,\"configured\":%u,\"active\":%u,\"shard_queues\":%u,"
                      "\"forgotten\":%" PRIu64 ",\"sharded_submits\":%" PRIu64 ",\"memory_bytes\":%zu}",
                      ts.tracked, ts.configured, ts.active, ts.shard_queues, ts.forgotten, ts.sharded_submits,
                      ts.memory_bytes);
    sluice_tenant_rank *ranks = calloc(DEBUG_TENANTS_MAX, sizeof *ranks);
    sluice_tenant_stats *t = calloc(DEBUG_TENANTS_MAX, sizeof *t);
    const char **names = calloc(DEBUG_TENANTS_MAX, sizeof *names);
    sluice_tenant_selection sel;
    memset(&sel, 0, sizeof sel);
    size_t nr = 0, have = 0;
    if (ranks && t && names &&
        sluice_pool_tenants_top(pool, SLUICE_TENANT_BY_LOAD, ranks, DEBUG_TENANTS_MAX, &nr) == SLUICE_OK) {
        for (size_t i = 0; i < nr; i++) {
            names[i] = ranks[i].name;
        }
        if (sluice_pool_tenants_select(pool, names, nr, t, &sel) == SLUICE_OK) {
            for (size_t i = 0; i < nr; i++) { /* drop those forgotten since the walk */
                if (t[i].incarnation != 0) {
                    t[have++] = t[i];
                }
            }
        }
    }
    free(ranks);
    free(names);
    const sluice_tenant_stats forgotten = sel.forgotten;
    size_t n = sel.tenants;
    if (have > 1) {
        qsort(t, have, sizeof *t, by_load);
    }
    size_t shown = have;
    sluice__sb_puts(b, ",\"tenants\":[");
    for (size_t i = 0; i < shown; i++) {
        const sluice_tenant_stats *x = &t[i];
        sluice__sb_puts(b, i ? ",{\"name\":" : "{\"name\":");
        sluice__sb_json_str(b, x->name);
        sluice__sb_printf(
            b,
            ",\"configured\":%s,\"shard\":%s,\"weight\":%u,\"queued_limit\":%zu,"
            "\"running_limit\":%u,\"strict\":%s,\"overflow\":\"%s\",\"queued\":%zu,\"running\":%u,",
            x->configured ? "true" : "false", x->shard ? "true" : "false", x->config.weight,
            x->config.queued_limit, x->config.running_limit, x->config.strict ? "true" : "false",
            sluice_tenant_overflow_name(x->config.overflow), x->queued, x->running);
        json_tenant_counters(b, x);
        sluice__sb_puts(b, "}");
    }
    /* The tenants forgotten after idling, summed: with the listed (and
     * omitted) ones they add up to the pool's totals. */
    sluice__sb_printf(b, "],\"tenants_omitted\":%zu,\"tenants_forgotten\":{", n > shown ? n - shown : 0);
    json_tenant_counters(b, &forgotten);
    sluice__sb_puts(b, "}");
    free(t);
}

static void json_pool(sluice__sb *b, sluice_pool *pool)
{
    sluice_pool_config cfg;
    sluice_pool_config_get(pool, &cfg);
    sluice_pool_stats st;
    sluice_pool_stats_get(pool, &st);
    sluice__sb_puts(b, "{\"name\":");
    sluice__sb_json_str(b, sluice_pool_name(pool));
    sluice__sb_printf(
        b,
        ",\"config\":{\"workers\":%u,\"min_workers\":%u,\"queue_capacity\":%zu,\"overflow\":\"%s\","
        "\"submit_timeout_ns\":%" PRIu64 ",\"idle_expiry_ns\":%" PRIu64 ",\"prewarm\":%s,\"stack_size\":%zu,"
        "\"fault_mode\":\"%s\",\"timing_sample_every\":%u,\"timing_sample_auto\":%s,\"timing_disabled\":%s,"
        "\"queue_discipline\":\"%s\",\"overload\":\"%s\",\"overload_target_ns\":%" PRIu64
        ",\"overload_interval_ns\":%" PRIu64 ",\"overload_slough_ns\":%" PRIu64 "}",
        cfg.workers, cfg.min_workers, cfg.queue_capacity, sluice_overflow_name(cfg.overflow),
        cfg.submit_timeout_ns, cfg.idle_expiry_ns, cfg.prewarm ? "true" : "false", cfg.stack_size,
        sluice_fault_mode_name(cfg.fault_mode), cfg.timing_sample_every,
        cfg.timing_sample_every == SLUICE_TIMING_SAMPLE_AUTO ? "true" : "false",
        cfg.timing_disabled ? "true" : "false", sluice_queue_discipline_name(cfg.queue_discipline),
        sluice_overload_mode_name(cfg.overload), cfg.overload_target_ns, cfg.overload_interval_ns,
        cfg.overload_slough_ns);
    sluice__sb_printf(b,
                      ",\"stats\":{\"running\":%u,\"capacity\":%u,\"workers\":%u,\"idle\":%u,\"waiting\":%u,"
                      "\"queue_depth\":%zu,\"queue_capacity\":%zu,\"draining\":%s,",
                      st.running, st.capacity, st.workers, st.idle, st.waiting, st.queue_depth,
                      st.queue_capacity, st.draining ? "true" : "false");
    sluice__sb_printf(b,
                      "\"submitted\":%" PRIu64 ",\"completed\":%" PRIu64 ",\"failed\":%" PRIu64
                      ",\"panicked\":%" PRIu64 ",\"rejected\":%" PRIu64 ",\"dropped\":%" PRIu64
                      ",\"shed\":%" PRIu64 ",\"abandoned\":%" PRIu64 ",\"caller_ran\":%" PRIu64 ",",
                      st.submitted, st.completed, st.failed, st.panicked, st.rejected, st.dropped, st.shed,
                      st.abandoned, st.caller_ran);
    sluice__sb_printf(
        b,
        "\"expired_workers\":%" PRIu64 ",\"retired_workers\":%" PRIu64 ",\"started_workers\":%" PRIu64
        ",\"resize_events\":%" PRIu64 ",\"init_failures\":%" PRIu64
        ",\"workers_hwm\":%u,\"waiting_hwm\":%u,\"queue_depth_hwm\":%zu,\"timing_sample_every\":%u"
        ",\"codel_shed\":%" PRIu64 ",\"lifo_switches\":%" PRIu64 ",\"lifo\":%s,\"codel_dropping\":%s}",
        st.expired_workers, st.retired_workers, st.started_workers, st.resize_events, st.init_failures,
        st.workers_hwm, st.waiting_hwm, st.queue_depth_hwm, st.timing_sample_every, st.codel_shed,
        st.lifo_switches, st.lifo ? "true" : "false", st.codel_dropping ? "true" : "false");
    size_t n;
    sluice_worker_info *w = workers_of(pool, &n);
    sluice__sb_puts(b, ",\"workers\":[");
    for (size_t i = 0; i < n; i++) {
        sluice__sb_printf(b, "%s{\"index\":%u,\"state\":\"%s\",\"for_seconds\":%.3f,\"task\":", i ? "," : "",
                          w[i].index, sluice_worker_status_name(w[i].state),
                          age_seconds(pool, w[i].since_ns));
        sluice__sb_json_str(b, w[i].state == SLUICE_WORKER_RUNNING ? w[i].task_label : NULL);
        sluice__sb_printf(b, ",\"tasks_run\":%" PRIu64 "}", w[i].tasks_run);
    }
    sluice__sb_puts(b, "]");
    free(w);
    if (cfg.queue_discipline == SLUICE_QUEUE_FAIR) {
        json_tenants(b, pool);
    }
    sluice__sb_puts(b, "}");
}

static int ep_debug(sluice_admin *a, struct MHD_Connection *c)
{
    sluice__sb b = {0};
    sluice__sb_puts(&b, "{\"ready\":");
    sluice__sb_puts(&b, atomic_load_explicit(&a->ready, memory_order_acquire) ? "true" : "false");
    sluice__sb_puts(&b, ",\"pools\":[");
    pthread_rwlock_rdlock(&a->pools_lock);
    for (size_t i = 0; i < a->pool_count; i++) {
        if (i) {
            sluice__sb_puts(&b, ",");
        }
        json_pool(&b, a->pools[i].pool);
    }
    pthread_rwlock_unlock(&a->pools_lock);
    sluice__sb_puts(&b, "]}\n");
    return sluice__admin_respond_sb(c, MHD_HTTP_OK, "application/json", &b);
}

static int ep_stacks(sluice_admin *a, struct MHD_Connection *c)
{
    sluice__sb b = {0};
    char text[8192];
    void *frames[SLUICE_BACKTRACE_MAX];
    pthread_rwlock_rdlock(&a->pools_lock);
    for (size_t i = 0; i < a->pool_count; i++) {
        sluice_pool *pool = a->pools[i].pool;
        size_t n;
        sluice_worker_info *w = workers_of(pool, &n);
        sluice__sb_printf(&b, "pool %s: %zu workers\n", sluice_pool_name(pool), n);
        for (size_t k = 0; k < n; k++) {
            sluice__sb_printf(&b, "  worker %u %s %.3fs", w[k].index, sluice_worker_status_name(w[k].state),
                              age_seconds(pool, w[k].since_ns));
            if (w[k].state == SLUICE_WORKER_RUNNING && w[k].task_label) {
                sluice__sb_puts(&b, " task=");
                sluice__sb_puts(&b, w[k].task_label);
            }
            sluice__sb_puts(&b, "\n");
            int count = 0;
            sluice_err r = sluice_pool_worker_backtrace(pool, &w[k], frames, SLUICE_BACKTRACE_MAX, &count,
                                                        a->cfg.stack_timeout_ns);
            if (r != SLUICE_OK) {
                sluice__sb_printf(&b, "    (no backtrace: %s)\n", sluice_strerror(r));
                continue;
            }
            sluice_backtrace_format(frames, count, text, sizeof text);
            /* indent each line */
            for (char *line = text; *line;) {
                char *nl = strchr(line, '\n');
                size_t len = nl ? (size_t)(nl - line) : strlen(line);
                sluice__sb_puts(&b, "    ");
                sluice__sb_put(&b, line, len);
                sluice__sb_puts(&b, "\n");
                line += len + (nl ? 1 : 0);
            }
        }
        free(w);
    }
    pthread_rwlock_unlock(&a->pools_lock);
    if (b.len == 0) {
        sluice__sb_puts(&b, "no pools\n");
    }
    return sluice__admin_respond_sb(c, MHD_HTTP_OK, "text/plain; charset=utf-8", &b);
}

const sluice__admin_route sluice__admin_debug_routes[] = {
    {"/debug/pools", SLUICE__ADMIN_READ, SLUICE__ROUTE_TOKEN, ep_debug},
    {"/debug/pools/stacks", SLUICE__ADMIN_READ, SLUICE__ROUTE_TOKEN | SLUICE__ROUTE_SLOW, ep_stacks},
    {NULL, 0, 0, NULL},
};
