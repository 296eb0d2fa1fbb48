/*
 * tools/sluice/ops_dashboard.c - a Grafana dashboard for the pools of one
 * sluice.yaml.
 *
 * Design: one dashboard per service with a `$pool` variable (the pools the
 * config declares, read from the pool_capacity series and restricted by a
 * regex to the configured names) and a `$datasource` variable, so the same
 * JSON imports into any Grafana with a Prometheus data source. The panels
 * are those the reference text lists: running vs capacity, submit rate,
 * completion rate, drop rate, task duration p50/p95/p99, queue (submit)
 * wait, panics, worker churn and utilization, plus queue depth and a text
 * panel with the config's own sizing table (K, rationale, thresholds), so
 * the person looking at a saturated pool sees why K is what it is.
 *
 * Every query uses only the metrics in ops_exported_metrics (a test checks
 * this); gauges and rates are summed over instances for the service-wide
 * view, and histogram quantiles are taken over the summed buckets.
 * Output is pretty-printed with a fixed key order and fixed panel ids and
 * positions: a pure function of the config.
 */
#include "ops_rules.h"

#include <stdbool.h>
#include <stdlib.h>
#include <string.h>

typedef struct target {
    const char *expr; /* PromQL, filtered by the selector {name="$pool"} */
    const char *legend;
} target;

typedef struct panel {
    const char *type; /* timeseries | stat | gauge */
    const char *title;
    const char *description;
    const char *unit;
    int w, h;
    target targets[4];
} panel;

/* Every query is filtered by the three variables: the scrape job (the
 * service), the instances (all by default) and the pool. */
#define SEL "{job=\"$job\",instance=~\"$instance\",name=\"$pool\"}"
/* The sync primitives' panels: the job and instances, every object. */
#define SSEL "{job=\"$job\",instance=~\"$instance\"}"
/* Grafana's rate window: at least four scrape intervals at any zoom. */
#define RI "[$__rate_interval]"

static const panel panels[] = {
    {"timeseries",
     "Running vs capacity",
     "Tasks running now against K (pool_capacity), summed over instances.",
     "short",
     12,
     8,
     {{"sum(pool_running" SEL ")", "running"},
      {"sum(pool_capacity" SEL ")", "capacity (K)"},
      {"sum(pool_capacity" SEL ") - sum(pool_running" SEL ")", "idle slots"}}},
    {"timeseries",
     "Queue depth and waiting submitters",
     "Tasks queued, the queue's bound, and producers blocked for space (backpressure).",
     "short",
     12,
     8,
     {{"sum(pool_queue_depth" SEL ")", "queued"},
      {"sum(pool_queue_capacity" SEL ")", "queue capacity"},
      {"sum(pool_waiting" SEL ")", "waiting submitters"}}},
    {"timeseries",
     "Submit rate",
     "Tasks accepted per second, and submits refused (full, timed out).",
     "ops",
     8,
     8,
     {{"sum(rate(pool_submitted_total" SEL RI "))", "submitted"},
      {"sum(rate(pool_rejected_total" SEL RI "))", "rejected at submit"}}},
    {"timeseries",
     "Completion rate",
     "Tasks finished per second, by outcome.",
     "ops",
     8,
     8,
     {{"sum(rate(pool_completed_total" SEL RI "))", "completed"},
      {"sum(rate(pool_failed_total" SEL RI "))", "failed"},
      {"sum(rate(pool_panicked_total" SEL RI "))", "panicked"}}},
    {"timeseries",
     "Drop rate",
     "Work the pool did not run: evicted, refused, shed at deadline, handed back at drain.",
     "ops",
     8,
     8,
     {{"sum(rate(pool_dropped_total" SEL RI "))", "dropped (evicted)"},
      {"sum(rate(pool_rejected_total" SEL RI "))", "rejected"},
      {"sum(rate(pool_shed_total" SEL RI "))", "shed (deadline)"},
      {"sum(rate(pool_abandoned_total" SEL RI "))", "abandoned (drain)"}}},
    {"timeseries",
     "Task duration p50 / p95 / p99",
     "Time tasks spend running, from the histogram.",
     "s",
     12,
     8,
     {{"histogram_quantile(0.5, sum by (le) (rate(pool_task_duration_seconds_bucket" SEL RI ")))", "p50"},
      {"histogram_quantile(0.95, sum by (le) (rate(pool_task_duration_seconds_bucket" SEL RI ")))", "p95"},
      {"histogram_quantile(0.99, sum by (le) (rate(pool_task_duration_seconds_bucket" SEL RI ")))", "p99"}}},
    {"timeseries",
     "Submit wait p50 / p99",
     "Time from submit to start: the queue wait callers feel.",
     "s",
     12,
     8,
     {{"histogram_quantile(0.5, sum by (le) (rate(pool_submit_duration_seconds_bucket" SEL RI ")))", "p50"},
      {"histogram_quantile(0.99, sum by (le) (rate(pool_submit_duration_seconds_bucket" SEL RI ")))",
       "p99"}}},
    {"stat",
     "Panics (24h)",
     "Tasks that panicked (sluice_panic or a caught fault) in the last 24 hours.",
     "short",
     6,
     6,
     {{"sum(increase(pool_panicked_total" SEL "[24h]))", "panics"}}},
    {"timeseries",
     "Worker churn",
     "Workers started, expired for idleness and retired (shrink, fault) per minute; resize events per "
     "minute.",
     "short",
     12,
     6,
     {{"sum(rate(pool_started_workers_total" SEL RI ")) * 60", "spawns / min"},
      {"sum(rate(pool_expired_workers_total" SEL RI ")) * 60", "expired / min"},
      {"sum(rate(pool_retired_workers_total" SEL RI ")) * 60", "retired / min"},
      {"sum(rate(pool_resize_events_total" SEL RI ")) * 60", "resizes / min"}}},
    {"gauge",
     "Worker utilization",
     "Running / capacity, averaged over time (the ratio is instantaneous at each scrape) and over instances.",
     "percentunit",
     6,
     6,
     {{"avg(avg_over_time(pool_worker_utilization_ratio" SEL RI "))", "utilization"}}},
    {"timeseries",
     "Running by instance",
     "Tasks running on each instance against its K: one saturated pod hides in a sum.",
     "short",
     12,
     8,
     {{"sum by (instance) (pool_running" SEL ")", "{{instance}} running"},
      {"max(pool_capacity" SEL ")", "K per instance"}}},
    {"timeseries",
     "Oldest running task by instance",
     "Age of the longest-running task (pool_oldest_running_seconds). A line that climbs while nothing "
     "completes is a stall (PoolStalled).",
     "s",
     12,
     8,
     {{"max by (instance) (pool_oldest_running_seconds" SEL ")", "{{instance}}"}}},
    {"timeseries",
     "Utilization by instance",
     "Running / capacity per instance, averaged over the rate interval.",
     "percentunit",
     12,
     8,
     {{"avg by (instance) (avg_over_time(pool_worker_utilization_ratio" SEL RI "))", "{{instance}}"}}},
    {"timeseries",
     "Loss by instance",
     "Dropped, rejected and shed per second on each instance.",
     "ops",
     12,
     8,
     {{"sum by (instance) (rate(pool_dropped_total" SEL RI ") + rate(pool_rejected_total" SEL RI
       ") + rate(pool_shed_total" SEL RI "))",
       "{{instance}}"}}},
    /* The sync primitives (breakers, semaphores, limiters) the service
     * exports: made in code, not per pool, so filtered by job and
     * instance only, one line per object (`name`). */
    {"timeseries",
     "Circuit breakers",
     "State of each breaker (sluice_breaker_state): 0 closed, 1 open, 2 half-open. SluiceBreakerOpen fires "
     "when one has not closed for 10m.",
     "short",
     8,
     8,
     {{"max by (name) (sluice_breaker_state" SSEL ")", "{{name}}"},
      {"sum by (name) (rate(sluice_breaker_rejected_total" SSEL RI "))", "{{name}} refused/s"}}},
    {"timeseries",
     "Semaphores: in use / capacity",
     "Share of each semaphore's units held, and callers waiting for one (SluiceSemaphoreExhausted: full "
     "with waiters).",
     "percentunit",
     8,
     8,
     {{"sum by (name) (sluice_semaphore_in_use" SSEL ") / sum by (name) (sluice_semaphore_capacity" SSEL ")",
       "{{name}} in use"},
      {"sum by (name) (sluice_semaphore_waiters" SSEL ")", "{{name}} waiters"}}},
    {"timeseries",
     "Rate limiters: limited share",
     "Share of calls each limiter refused (SluiceLimiterThrottling above 10%).",
     "percentunit",
     8,
     8,
     {{"sum by (name) (rate(sluice_limiter_limited_total" SSEL RI ")) / (sum by (name) "
       "(rate(sluice_limiter_allowed_total" SSEL RI
       ")) + sum by (name) (rate(sluice_limiter_limited_total" SSEL RI ")))",
       "{{name}}"}}},
    /* Per tenant (queue_discipline: fair pools; empty for FIFO ones). The
     * top tenants by traffic have their own series, the rest are "other". */
    {"timeseries",
     "Tenant queued and running",
     "Fair pools: each tenant's tasks queued and running (tenants beyond the exposition's cap fold into "
     "\"other\"). One tenant holding most workers while others queue is what TenantStarved catches.",
     "short",
     8,
     8,
     {{"sum by (tenant) (pool_tenant_queued" SEL ")", "{{tenant}} queued"},
      {"sum by (tenant) (pool_tenant_running" SEL ")", "{{tenant}} running"}}},
    {"timeseries",
     "Tenant completions",
     "Fair pools: tasks finished per second per tenant, and refused or lost ones.",
     "ops",
     8,
     8,
     {{"sum by (tenant) (rate(pool_tenant_completed_total" SEL RI "))", "{{tenant}} completed"},
      {"sum by (tenant) (rate(pool_tenant_rejected_total" SEL RI ") + rate(pool_tenant_dropped_total" SEL RI
       ") + rate(pool_tenant_shed_total" SEL RI "))",
       "{{tenant}} refused or lost"}}},
    {"timeseries",
     "Tenant queue wait p99",
     "Fair pools: p99 time from submit to start per tenant; a quiet tenant's stays low while another floods.",
     "s",
     8,
     8,
     {{"histogram_quantile(0.99, sum by (tenant, le) (rate(pool_tenant_submit_duration_seconds_bucket" SEL RI
       ")))",
       "{{tenant}}"}}},
};

/* The cluster budget's panels (a config with a `cluster:` section): the
 * sluice_budget_* families of the job's replicas (docs/cluster.md). */
#define BSEL "{job=\"$job\",instance=~\"$instance\"}"
static const panel budget_panels[] = {
    {"timeseries",
     "Cluster members",
     "Live members in Redis against the replicas Prometheus scrapes, and how many run on the fallback bound "
     "(Redis unreachable).",
     "short",
     8,
     8,
     {{"max(sluice_budget_members" BSEL ")", "members (Redis)"},
      {"count(sluice_budget_members" BSEL ")", "replicas scraped"},
      {"sum(sluice_budget_fallback" BSEL ")", "in fallback"}}},
    {"timeseries",
     "K per replica vs share",
     "Each replica's K of each bound pool, their sum, and the share they split (the sum should equal it).",
     "short",
     8,
     8,
     {{"sluice_budget_pool_k" BSEL, "{{instance}} {{pool}}"},
      {"sum by (pool) (sluice_budget_pool_k" BSEL ")", "sum {{pool}}"},
      {"max by (pool) (sluice_budget_pool_share" BSEL ")", "share {{pool}}"}}},
    {"timeseries",
     "Permits held, leased and limit (strict mode)",
     "Permits in use and leased from Redis, summed over replicas, against the service's share.",
     "short",
     8,
     8,
     {{"sum by (downstream) (sluice_budget_permits_held" BSEL ")", "held {{downstream}}"},
      {"sum by (downstream) (sluice_budget_permits_leased" BSEL ")", "leased {{downstream}}"},
      {"max by (downstream) (sluice_budget_permits_limit" BSEL ")", "limit {{downstream}}"}}},
    {"timeseries",
     "Redis round trip",
     "The last Redis call of each replica; above redis_timeout a call fails and the replica falls back.",
     "s",
     12,
     8,
     {{"max by (instance) (sluice_budget_redis_latency_seconds" BSEL ")", "{{instance}}"}}},
    {"timeseries",
     "Redis up, errors and fallbacks",
     "Replicas whose last Redis call failed, Redis errors per second, and entries into the fallback.",
     "short",
     12,
     8,
     {{"count(sluice_budget_redis_up" BSEL " == 0) or vector(0)", "replicas with Redis down"},
      {"sum(rate(sluice_budget_redis_errors_total" BSEL RI "))", "errors/s"},
      {"sum(increase(sluice_budget_fallbacks_total" BSEL RI "))", "fallbacks"}}},
};

static void datasource(ops_jw *w)
{
    ops_jw_obj(w, "datasource");
    ops_jw_str(w, "type", "prometheus");
    ops_jw_str(w, "uid", "${datasource}");
    ops_jw_end_obj(w);
}

static void grid(ops_jw *w, int h, int wd, int x, int y)
{
    ops_jw_obj(w, "gridPos");
    ops_jw_int(w, "h", h);
    ops_jw_int(w, "w", wd);
    ops_jw_int(w, "x", x);
    ops_jw_int(w, "y", y);
    ops_jw_end_obj(w);
}

static void sizing_table(const sluice_config *cfg, ops_buf *md)
{
    const sluice_config_pool **pools = ops_sorted_pools(cfg);
    char d1[32], d2[32];
    ops_buf_put(md, "| pool | K | why this K | queue | overflow | kind | downstream | slow-task p99 alert | "
                    "submit-wait p99 alert |\n|---|---|---|---|---|---|---|---|---|\n");
    for (size_t i = 0; i < cfg->pool_count; i++) {
        const sluice_config_pool *p = pools[i];
        ops_thresholds t = ops_pool_thresholds(p);
        ops_buf_put(md, "| ");
        ops_md_text(md, p->name);
        ops_buf_printf(md, " | %u | ", p->workers);
        ops_md_text(md, p->rationale && *p->rationale ? p->rationale : "(none recorded)");
        ops_buf_printf(md, " | %zu | %s | %s | ", p->queue_capacity, sluice_overflow_name(p->overflow),
                       sluice_pool_kind_name(sluice_config_pool_ops(p)->kind));
        ops_md_text(md, p->downstream ? p->downstream : "-");
        ops_buf_printf(md, " | %s | %s |\n", sluice_config_format_duration(t.slow_task_p99_ns, d1, sizeof d1),
                       sluice_config_format_duration(t.submit_wait_p99_ns, d2, sizeof d2));
    }
    ops_buf_printf(md, "\nGenerated from the service's sluice.yaml by `sluice dashboard`; runbook: %s\n",
                   cfg->service.runbook_base_url ? cfg->service.runbook_base_url : OPS_DEFAULT_RUNBOOK);
    free(pools);
}

void ops_dashboard_uid(const sluice_config *cfg, ops_buf *out)
{
    /* Grafana uids are at most 40 characters of [A-Za-z0-9_-]. */
    const char *service = cfg->service.name ? cfg->service.name : "sluice";
    size_t start = out->len;
    ops_buf_put(out, "sluice-");
    for (const char *c = service; *c && out->len - start < 40; c++) {
        char ch = (char)((*c >= 'a' && *c <= 'z') || (*c >= 'A' && *c <= 'Z') || (*c >= '0' && *c <= '9') ||
                                 *c == '_' || *c == '-'
                             ? *c
                             : '-');
        ops_buf_putn(out, &ch, 1);
    }
}

/* A regex that matches exactly the configured pool names. */
static void pool_regex(const sluice_config *cfg, ops_buf *re)
{
    const sluice_config_pool **pools = ops_sorted_pools(cfg);
    ops_buf_put(re, "/^(");
    for (size_t i = 0; i < cfg->pool_count; i++) {
        if (i)
            ops_buf_put(re, "|");
        for (const char *c = pools[i]->name; *c; c++) {
            if (strchr(".:-", *c))
                ops_buf_put(re, "\\");
            ops_buf_putn(re, c, 1);
        }
    }
    ops_buf_put(re, ")$/");
    free(pools);
}

/* One panel of either dashboard: type, title, grid position, unit (a gauge
 * spans 0..1) and its queries. */
static void emit_panel(ops_jw *w, const panel *p, int id, int x, int y)
{
    ops_jw_obj(w, NULL);
    ops_jw_int(w, "id", id);
    ops_jw_str(w, "type", p->type);
    ops_jw_str(w, "title", p->title);
    ops_jw_str(w, "description", p->description);
    datasource(w);
    grid(w, p->h, p->w, x, y);
    ops_jw_obj(w, "fieldConfig");
    ops_jw_obj(w, "defaults");
    ops_jw_str(w, "unit", p->unit);
    if (strcmp(p->type, "gauge") == 0) {
        ops_jw_int(w, "min", 0);
        ops_jw_int(w, "max", 1);
    }
    ops_jw_end_obj(w);
    ops_jw_arr(w, "overrides");
    ops_jw_end_arr(w);
    ops_jw_end_obj(w);
    ops_jw_arr(w, "targets");
    for (int t = 0; t < 4 && p->targets[t].expr; t++) {
        char ref[2] = {(char)('A' + t), '\0'};
        ops_jw_obj(w, NULL);
        datasource(w);
        ops_jw_str(w, "expr", p->targets[t].expr);
        ops_jw_str(w, "legendFormat", p->targets[t].legend);
        ops_jw_str(w, "refId", ref);
        ops_jw_end_obj(w);
    }
    ops_jw_end_arr(w);
    ops_jw_end_obj(w);
}

/* One templating variable over a label_values() query. `multi` makes it a
 * multi-select with "All" (regex .*) as the default; otherwise `current`
 * (may be NULL) is the default value. */
static void query_var(ops_jw *w, const char *name, const char *label, const char *query, const char *regex,
                      bool multi, const char *current)
{
    ops_jw_obj(w, NULL);
    ops_jw_str(w, "name", name);
    ops_jw_str(w, "label", label);
    ops_jw_str(w, "type", "query");
    datasource(w);
    ops_jw_str(w, "definition", query);
    ops_jw_obj(w, "query");
    ops_jw_str(w, "query", query);
    ops_jw_str(w, "refId", name);
    ops_jw_end_obj(w);
    if (regex)
        ops_jw_str(w, "regex", regex);
    ops_jw_int(w, "refresh", 2);
    ops_jw_int(w, "sort", 1);
    ops_jw_bool(w, "multi", multi);
    ops_jw_bool(w, "includeAll", multi);
    if (multi) {
        ops_jw_str(w, "allValue", ".*");
        ops_jw_obj(w, "current");
        ops_jw_str(w, "text", "All");
        ops_jw_str(w, "value", "$__all");
        ops_jw_end_obj(w);
    } else if (current) {
        ops_jw_obj(w, "current");
        ops_jw_str(w, "text", current);
        ops_jw_str(w, "value", current);
        ops_jw_end_obj(w);
    }
    ops_jw_end_obj(w);
}

/* Where the next panel goes: panels fill rows of 24 columns left to right,
 * a row as tall as its tallest panel; ids count up from 1. */
typedef struct layout {
    int id, x, y, row_h;
} layout;

/* A full-width panel of height h on a row of its own; returns its y. */
static int full_row(layout *at, int h)
{
    at->y += at->row_h;
    at->x = 24;
    at->row_h = h;
    return at->y;
}

/* Places `n` panels from `at`, the first on a new row. */
static void flow_panels(ops_jw *w, const panel *row, size_t n, layout *at)
{
    for (size_t i = 0; i < n; i++) {
        const panel *p = &row[i];
        if (i == 0 || at->x + p->w > 24) {
            at->x = 0;
            at->y += at->row_h;
            at->row_h = 0;
        }
        emit_panel(w, p, at->id++, at->x, at->y);
        at->x += p->w;
        if (p->h > at->row_h)
            at->row_h = p->h;
    }
}

/* The opening of both dashboards, up to their panels. */
static void dashboard_open(ops_jw *w, const char *description)
{
    ops_jw_obj(w, NULL);
    ops_jw_obj(w, "annotations");
    ops_jw_arr(w, "list");
    ops_jw_end_arr(w);
    ops_jw_end_obj(w);
    ops_jw_str(w, "description", description);
    ops_jw_bool(w, "editable", 1);
    ops_jw_int(w, "graphTooltip", 1);
}

/* After the panels: refresh, tags ("sluice" and `tag`), and the templating
 * list opened with the $datasource variable; the caller adds its own
 * variables and ends with dashboard_close. */
static void variables_open(ops_jw *w, const char *tag)
{
    ops_jw_str(w, "refresh", "30s");
    ops_jw_int(w, "schemaVersion", 39);
    ops_jw_arr(w, "tags");
    ops_jw_str(w, NULL, "sluice");
    ops_jw_str(w, NULL, tag);
    ops_jw_end_arr(w);
    ops_jw_obj(w, "templating");
    ops_jw_arr(w, "list");
    ops_jw_obj(w, NULL);
    ops_jw_str(w, "name", "datasource");
    ops_jw_str(w, "label", "Data source");
    ops_jw_str(w, "type", "datasource");
    ops_jw_str(w, "query", "prometheus");
    ops_jw_end_obj(w);
}

/* Ends the templating list, then the time range, title, uid and version. */
static void dashboard_close(ops_jw *w, const char *title, const char *uid)
{
    ops_jw_end_arr(w);
    ops_jw_end_obj(w);
    ops_jw_obj(w, "time");
    ops_jw_str(w, "from", "now-6h");
    ops_jw_str(w, "to", "now");
    ops_jw_end_obj(w);
    ops_jw_str(w, "title", title);
    ops_jw_str(w, "uid", uid);
    ops_jw_int(w, "version", 1);
    ops_jw_end_obj(w);
}

void ops_dashboard_generate(const sluice_config *cfg, const char *source_name, ops_buf *out)
{
    const char *service = cfg->service.name ? cfg->service.name : "sluice";
    const sluice_config_pool **pools = ops_sorted_pools(cfg);
    ops_jw w;
    ops_jw_init(&w, out);
    ops_buf desc = {0};
    ops_buf_printf(&desc,
                   "Sluice worker pools of %s. Generated by `sluice dashboard %s`; do not edit by hand.",
                   service, source_name);
    dashboard_open(&w, ops_buf_str(&desc));
    ops_buf_free(&desc);

    ops_jw_arr(&w, "panels");
    layout at = {.id = 1};
    /* The sizing table first: K and its reason above the graphs. */
    ops_jw_obj(&w, NULL);
    ops_jw_int(&w, "id", at.id++);
    ops_jw_str(&w, "type", "text");
    ops_jw_str(&w, "title", "Pool sizing (from sluice.yaml)");
    grid(&w, 4 + (int)cfg->pool_count, 24, 0, full_row(&at, 4 + (int)cfg->pool_count));
    ops_jw_obj(&w, "options");
    ops_jw_str(&w, "mode", "markdown");
    ops_buf md = {0};
    sizing_table(cfg, &md);
    ops_jw_str(&w, "content", ops_buf_str(&md));
    ops_buf_free(&md);
    ops_jw_end_obj(&w);
    ops_jw_end_obj(&w);

    flow_panels(&w, panels, sizeof panels / sizeof panels[0], &at);
    if (cfg->cluster.present)
        flow_panels(&w, budget_panels, sizeof budget_panels / sizeof budget_panels[0], &at);
    ops_jw_end_arr(&w);

    variables_open(&w, service);
    /* job: the service's scrape job, defaulting to the service name. */
    query_var(&w, "job", "Job (service)", "label_values(pool_capacity, job)", NULL, false,
              ops_prometheus_job(cfg));
    /* instance: every pod by default; pick one to look at it alone. */
    query_var(&w, "instance", "Instance", "label_values(pool_capacity{job=\"$job\"}, instance)", NULL, true,
              NULL);
    ops_buf re = {0};
    pool_regex(cfg, &re);
    query_var(&w, "pool", "Pool", "label_values(pool_capacity{job=\"$job\"}, name)", ops_buf_str(&re), false,
              cfg->pool_count ? pools[0]->name : NULL);
    ops_buf_free(&re);
    ops_buf title = {0}, uid = {0};
    ops_buf_printf(&title, "Sluice pools: %s", service);
    ops_dashboard_uid(cfg, &uid);
    dashboard_close(&w, ops_buf_str(&title), ops_buf_str(&uid));
    ops_buf_free(&title);
    ops_buf_free(&uid);
    free(pools);
}

/* ---- the fleet view ------------------------------------------------------------- */

/* Every pool of every service the Prometheus scrapes, worst first. The
 * selector filters only by job ($job, all by default), so the view needs
 * no config: one dashboard for the whole fleet. */
#define FSEL "{job=~\"$job\"}"

/* The first FLEET_GRAPHS rows are the top-10 graphs, the rest the stats. */
enum { FLEET_GRAPHS = 4 };
static const panel fleet_panels[] = {
    {"timeseries",
     "Top 10 pools by saturation",
     "Running / capacity averaged over the rate interval, per service and pool: the pools closest to "
     "their K.",
     "percentunit",
     12,
     9,
     {{"topk(10, avg by (job, name) (avg_over_time(pool_worker_utilization_ratio" FSEL RI ")))",
       "{{job}} / {{name}}"}}},
    {"timeseries",
     "Top 10 pools by queue fill",
     "Queue depth / queue capacity, worst instance of each pool.",
     "percentunit",
     12,
     9,
     {{"topk(10, max by (job, name) (pool_queue_depth" FSEL " / pool_queue_capacity" FSEL "))",
       "{{job}} / {{name}}"}}},
    {"timeseries",
     "Top 10 pools by lost work",
     "Dropped + rejected + shed per second: work the pools did not run.",
     "ops",
     12,
     9,
     {{"topk(10, sum by (job, name) (rate(pool_dropped_total" FSEL RI ") + rate(pool_rejected_total" FSEL RI
       ") + rate(pool_shed_total" FSEL RI ")))",
       "{{job}} / {{name}}"}}},
    {"timeseries",
     "Top 10 oldest running tasks",
     "Age of the longest-running task of each pool (worst instance): a climbing line with nothing completing "
     "is a stall.",
     "s",
     12,
     9,
     {{"topk(10, max by (job, name) (pool_oldest_running_seconds" FSEL "))", "{{job}} / {{name}}"}}},
    {"stat",
     "Pools above 90% busy",
     "How many pools (per service) average more than 90% of their workers busy.",
     "short",
     8,
     5,
     {{"count(avg by (job, name) (avg_over_time(pool_worker_utilization_ratio" FSEL RI
       ")) > 0.9) or vector(0)",
       "pools"}}},
    {"stat",
     "Panics (24h)",
     "Task panics across the fleet in the last 24 hours.",
     "short",
     8,
     5,
     {{"sum(increase(pool_panicked_total" FSEL "[24h])) or vector(0)", "panics"}}},
    {"stat",
     "Pools exporting",
     "Distinct (service, pool) pairs with metrics now.",
     "short",
     8,
     5,
     {{"count(count by (job, name) (pool_capacity" FSEL "))", "pools"}}},
};

/* The offenders table: one row per (service, pool), sorted by saturation,
 * with queue fill, loss and the oldest task beside it (instant queries
 * merged on their labels). */
static void fleet_table(ops_jw *w, int id, int y)
{
    static const struct {
        const char *expr, *ref;
    } cols[] = {
        {"sort_desc(avg by (job, name) (avg_over_time(pool_worker_utilization_ratio" FSEL RI ")))",
         "saturation"},
        {"max by (job, name) (pool_queue_depth" FSEL " / pool_queue_capacity" FSEL ")", "queue_fill"},
        {"sum by (job, name) (rate(pool_dropped_total" FSEL RI ") + rate(pool_rejected_total" FSEL RI
         ") + rate(pool_shed_total" FSEL RI "))",
         "lost_per_s"},
        {"max by (job, name) (pool_oldest_running_seconds" FSEL ")", "oldest_running_s"},
        {"max by (job, name) (pool_capacity" FSEL ")", "K"},
    };
    ops_jw_obj(w, NULL);
    ops_jw_int(w, "id", id);
    ops_jw_str(w, "type", "table");
    ops_jw_str(w, "title", "Every pool, most saturated first");
    ops_jw_str(
        w, "description",
        "One row per service and pool: saturation (running / K averaged over the rate interval), queue "
        "fill, lost work per second, the oldest running task and K. Sorted by saturation, top "
        "offenders first; click a column to sort by it.");
    datasource(w);
    grid(w, 12, 24, 0, y);
    ops_jw_arr(w, "targets");
    for (size_t i = 0; i < sizeof cols / sizeof cols[0]; i++) {
        ops_jw_obj(w, NULL);
        datasource(w);
        ops_jw_str(w, "expr", cols[i].expr);
        ops_jw_str(w, "format", "table");
        ops_jw_bool(w, "instant", 1);
        ops_jw_str(w, "refId", cols[i].ref);
        ops_jw_end_obj(w);
    }
    ops_jw_end_arr(w);
    ops_jw_arr(w, "transformations");
    ops_jw_obj(w, NULL);
    ops_jw_str(w, "id", "merge");
    ops_jw_obj(w, "options");
    ops_jw_end_obj(w);
    ops_jw_end_obj(w);
    ops_jw_obj(w, NULL);
    ops_jw_str(w, "id", "organize");
    ops_jw_obj(w, "options");
    ops_jw_obj(w, "excludeByName");
    ops_jw_bool(w, "Time", 1);
    ops_jw_end_obj(w);
    ops_jw_obj(w, "renameByName");
    ops_jw_str(w, "job", "service");
    ops_jw_str(w, "name", "pool");
    ops_jw_str(w, "Value #saturation", "saturation");
    ops_jw_str(w, "Value #queue_fill", "queue fill");
    ops_jw_str(w, "Value #lost_per_s", "lost / s");
    ops_jw_str(w, "Value #oldest_running_s", "oldest task (s)");
    ops_jw_str(w, "Value #K", "K");
    ops_jw_end_obj(w);
    ops_jw_end_obj(w);
    ops_jw_end_obj(w);
    ops_jw_obj(w, NULL);
    ops_jw_str(w, "id", "sortBy");
    ops_jw_obj(w, "options");
    ops_jw_arr(w, "sort");
    ops_jw_obj(w, NULL);
    ops_jw_str(w, "field", "saturation");
    ops_jw_bool(w, "desc", 1);
    ops_jw_end_obj(w);
    ops_jw_end_arr(w);
    ops_jw_end_obj(w);
    ops_jw_end_obj(w);
    ops_jw_end_arr(w);
    ops_jw_end_obj(w);
}

void ops_dashboard_fleet_generate(ops_buf *out)
{
    ops_jw w;
    ops_jw_init(&w, out);
    dashboard_open(&w,
                   "Every Sluice pool of every service Prometheus scrapes, worst first. Generated by `sluice "
                   "dashboard --fleet`; do not edit by hand.");
    ops_jw_arr(&w, "panels");
    layout at = {.id = 1};
    /* The stats first, then the offenders table, then the top-10 graphs. */
    flow_panels(&w, &fleet_panels[FLEET_GRAPHS], sizeof fleet_panels / sizeof fleet_panels[0] - FLEET_GRAPHS,
                &at);
    int id = at.id++;
    fleet_table(&w, id, full_row(&at, 12));
    flow_panels(&w, fleet_panels, FLEET_GRAPHS, &at);
    ops_jw_end_arr(&w);
    variables_open(&w, "fleet");
    query_var(&w, "job", "Service (job)", "label_values(pool_capacity, job)", NULL, true, NULL);
    dashboard_close(&w, "Sluice fleet: every pool, worst first", "sluice-fleet");
}
