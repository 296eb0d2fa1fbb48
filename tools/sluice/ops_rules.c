/*
 * tools/sluice/ops_rules.c - Prometheus alerting rules for every pool of a
 * sluice.yaml, and the alert table shared with the dashboard and runbook.
 *
 * Design: one rule group per pool (named "sluice-<service>-<pool>") holding
 * the six alerts of the team framework, each with a `{name="<pool>"}`
 * matcher and that pool's own thresholds. Per-pool rules (rather than one
 * rule over all pools) are what lets thresholds differ per pool and lets
 * the description carry the pool's K and rationale, which is what the
 * on-call engineer needs at 3 am. Everything in the output comes from the
 * config or from fixed defaults, so the file is a pure function of the
 * config and can be committed and diffed.
 *
 * Alerts (thresholds from the config where it has a key):
 *   PoolSaturated       running/capacity > 0.9 for 5m                 warning
 *   PoolPanic           increase(panicked[5m]) > 0                    critical
 *   PoolDropping        lost/offered > 0 (block pools) or 1% for 5m   warning
 *                       lost = dropped + rejected + shed
 *   PoolSlowTasks       task duration p99 > alert_slow_task_p99 (1s)   warning
 *   PoolSubmitWait      submit wait p99 > alert_submit_wait_p99 (100ms) warning
 *   PoolMetricsMissing  absent(pool_capacity{name}) for 5m            warning
 *   PoolStalled         running >= capacity, no task finished in 1m,  critical
 *                       oldest running task > 30s, for 30s
 *
 * PoolStalled exists because a stalled downstream is invisible to the
 * others: tasks stuck in it never finish, so the duration histograms never
 * observe them (p99 is NaN during a full stall) and PoolSaturated needs
 * 5 minutes. pool_oldest_running_seconds grows on every scrape instead, so
 * the stall pages in about 90 seconds.
 *
 * User text (rationales) is escaped twice: for Go's text/template (which
 * Prometheus runs on annotations) and then as a YAML double-quoted scalar.
 */
#include "ops_rules.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static const ops_alert_info alerts[OPS_ALERT_COUNT_] = {
    [OPS_ALERT_SATURATED] = {"PoolSaturated", "warning", "workers above 90% busy"},
    [OPS_ALERT_PANIC] = {"PoolPanic", "critical", "a task panicked"},
    [OPS_ALERT_DROPPING] = {"PoolDropping", "warning", "tasks dropped, rejected or shed"},
    [OPS_ALERT_SLOW_TASKS] = {"PoolSlowTasks", "warning", "task duration p99 above threshold"},
    [OPS_ALERT_SUBMIT_WAIT] = {"PoolSubmitWait", "warning", "queue wait p99 above threshold"},
    [OPS_ALERT_METRICS_MISSING] = {"PoolMetricsMissing", "warning", "no metrics from the pool"},
    [OPS_ALERT_STALLED] = {"PoolStalled", "critical", "every worker stuck, nothing finishing"},
};

const ops_alert_info *ops_alert(ops_alert_kind kind)
{
    return (unsigned)kind < OPS_ALERT_COUNT_ ? &alerts[kind] : NULL;
}

/* Keep sorted; tests/tools check every query against this list and the
 * list against docs/metrics.md. */
const char *const ops_exported_metrics[] = {
    "pool_abandoned_total",
    "pool_capacity",
    "pool_completed_total",
    "pool_dropped_total",
    "pool_expired_workers_total",
    "pool_failed_total",
    "pool_idle_workers",
    "pool_oldest_running_seconds",
    "pool_panicked_total",
    "pool_queue_capacity",
    "pool_queue_depth",
    "pool_rejected_total",
    "pool_resize_events_total",
    "pool_retired_workers_total",
    "pool_running",
    "pool_shed_total",
    "pool_started_workers_total",
    "pool_submit_duration_seconds",
    "pool_submitted_total",
    "pool_task_duration_seconds",
    "pool_timing_sample_every",
    "pool_waiting",
    "pool_worker_start_failures_total",
    "pool_worker_utilization_ratio",
    NULL,
};

ops_thresholds ops_pool_thresholds(const sluice_config_pool *p)
{
    ops_thresholds t;
    t.saturation = OPS_DEFAULT_SATURATION;
    /* A blocking pool is declared as "never lose work": one loss is news.
     * The others shed load by design; alert when it passes 1%. */
    t.loss_ratio = p->overflow == SLUICE_OVERFLOW_BLOCK ? 0 : OPS_DEFAULT_LOSS_RATIO;
    const sluice_config_ops_keys *ops = sluice_config_pool_ops(p);
    t.slow_task_p99_ns = ops->alert_slow_task_p99_ns ? ops->alert_slow_task_p99_ns : OPS_DEFAULT_SLOW_TASK_P99_NS;
    t.submit_wait_p99_ns =
        ops->alert_submit_wait_p99_ns ? ops->alert_submit_wait_p99_ns : OPS_DEFAULT_SUBMIT_WAIT_P99_NS;
    t.for_duration = "5m";
    t.stall_after_ns = OPS_DEFAULT_STALL_AFTER_NS;
    t.stall_window = "1m";
    t.stall_for = "30s";
    return t;
}

/* The largest finite bound of the pool's histograms, in ns (the library
 * default when the pool sets none). */
static uint64_t largest_bucket_ns(const sluice_config_pool *p)
{
    if (p->histogram_buckets && p->histogram_bucket_count)
        return (uint64_t)(p->histogram_buckets[p->histogram_bucket_count - 1] * 1e9 + 0.5);
    return OPS_DEFAULT_LARGEST_BUCKET_NS;
}

int ops_unfireable_alerts(const sluice_config_pool *p, ops_unfireable_fn cb, void *ud)
{
    char a[32], b[32], msg[512];
    if (!p->timing) {
        cb(ud, p,
           sluice_config_pool_has(p, SLUICE_PK_TIMING) && p->pos[SLUICE_PK_TIMING].line ? &p->pos[SLUICE_PK_TIMING]
                                                                                        : &p->entry_pos,
           "turn timing on (the default samples about 1% of task time), or accept that PoolSlowTasks and "
           "PoolSubmitWait cannot fire for this pool",
           "timing is off, so the duration histograms stay empty and PoolSlowTasks and PoolSubmitWait can "
           "never fire");
        return 1;
    }
    ops_thresholds t = ops_pool_thresholds(p);
    uint64_t top = largest_bucket_ns(p);
    static const struct {
        const char *key;
        unsigned k; /* the sluice_config_ext_ops key */
        const char *alert;
    } timed[] = {{"alert_slow_task_p99", SLUICE_OPS_ALERT_SLOW_TASK_P99, "PoolSlowTasks"},
                 {"alert_submit_wait_p99", SLUICE_OPS_ALERT_SUBMIT_WAIT_P99, "PoolSubmitWait"}};
    const sluice_config_ext_values *ops = sluice_config_pool_ext(p, &sluice_config_ext_ops);
    uint64_t v[2] = {t.slow_task_p99_ns, t.submit_wait_p99_ns};
    int n = 0;
    for (int i = 0; i < 2; i++) {
        if (v[i] < top)
            continue;
        snprintf(msg, sizeof msg,
                 "%s %s is not below the largest finite histogram bucket %ss: histogram_quantile caps at that "
                 "bucket, so %s can never fire",
                 timed[i].key, sluice_config_format_duration(v[i], a, sizeof a),
                 ops_format_seconds(top, b, sizeof b), timed[i].alert);
        const sluice_config_pos *pos =
            ops && sluice_config_pool_ext_has(p, &sluice_config_ext_ops, timed[i].k) && ops->pos[timed[i].k].line
                ? &ops->pos[timed[i].k]
                : &p->entry_pos;
        cb(ud, p, pos,
           "lower the threshold below the largest bucket, or add larger histogram_buckets so the histogram can "
           "see durations that long",
           msg);
        n++;
    }
    return n;
}

/* The selector {name="<pool>"}. */
static void sel(ops_buf *b, const char *metric, const sluice_config_pool *p)
{
    ops_buf_printf(b, "%s{name=", metric);
    ops_promql_str(b, p->name);
    ops_buf_put(b, "}");
}

static void rate(ops_buf *b, const char *metric, const sluice_config_pool *p)
{
    ops_buf_put(b, "rate(");
    sel(b, metric, p);
    ops_buf_put(b, "[5m])");
}

/* histogram_quantile(0.99, rate(<bucket>{name="<pool>"}[5m])) > <seconds> */
static void p99_above(ops_buf *b, const char *bucket, const sluice_config_pool *p, uint64_t threshold_ns)
{
    char num[64];
    ops_buf_put(b, "histogram_quantile(0.99, ");
    rate(b, bucket, p);
    ops_buf_printf(b, ") > %s", ops_format_seconds(threshold_ns, num, sizeof num));
}

static void pool_expr(ops_buf *b, ops_alert_kind kind, const sluice_config_pool *p, const ops_thresholds *t,
                      const char *job)
{
    switch (kind) {
    case OPS_ALERT_SATURATED:
        sel(b, "pool_running", p);
        ops_buf_put(b, " / ");
        sel(b, "pool_capacity", p);
        ops_buf_printf(b, " > %g", t->saturation);
        break;
    case OPS_ALERT_PANIC:
        ops_buf_put(b, "increase(");
        sel(b, "pool_panicked_total", p);
        ops_buf_put(b, "[5m]) > 0");
        break;
    case OPS_ALERT_DROPPING:
        ops_buf_put(b, "(");
        rate(b, "pool_dropped_total", p);
        ops_buf_put(b, " + ");
        rate(b, "pool_rejected_total", p);
        ops_buf_put(b, " + ");
        rate(b, "pool_shed_total", p);
        ops_buf_put(b, ") / (");
        rate(b, "pool_submitted_total", p);
        ops_buf_put(b, " + ");
        rate(b, "pool_rejected_total", p);
        ops_buf_printf(b, ") > %g", t->loss_ratio);
        break;
    case OPS_ALERT_SLOW_TASKS:
        p99_above(b, "pool_task_duration_seconds_bucket", p, t->slow_task_p99_ns);
        break;
    case OPS_ALERT_SUBMIT_WAIT:
        p99_above(b, "pool_submit_duration_seconds_bucket", p, t->submit_wait_p99_ns);
        break;
    case OPS_ALERT_METRICS_MISSING:
        /* absent() alone only fires when no instance exports the pool; the
         * second half catches one pod that is scraped (up == 1) but has
         * stopped exporting it. */
        ops_buf_put(b, "absent(");
        sel(b, "pool_capacity", p);
        ops_buf_put(b, ") or (up{job=");
        ops_promql_str(b, job);
        ops_buf_put(b, "} == 1 unless on (job, instance) ");
        sel(b, "pool_capacity", p);
        ops_buf_put(b, ")");
        break;
    case OPS_ALERT_STALLED: {
        char num[64];
        /* $value is the oldest task's age: what the summary shows. */
        sel(b, "pool_oldest_running_seconds", p);
        ops_buf_printf(b, " > %s and ", ops_format_seconds(t->stall_after_ns, num, sizeof num));
        sel(b, "pool_running", p);
        ops_buf_put(b, " >= ");
        sel(b, "pool_capacity", p);
        ops_buf_put(b, " and (");
        static const char *const finished[] = {"pool_completed_total", "pool_failed_total",
                                               "pool_panicked_total"};
        for (size_t i = 0; i < 3; i++) {
            ops_buf_put(b, i ? " + increase(" : "increase(");
            sel(b, finished[i], p);
            ops_buf_printf(b, "[%s])", t->stall_window);
        }
        ops_buf_put(b, ") == 0");
        break;
    }
    case OPS_ALERT_COUNT_:
        break;
    }
}

/* "K=1000 (APNS allows 1000 concurrent streams)" or "K=1000 (no rationale recorded)". */
static void k_phrase(ops_buf *b, const sluice_config_pool *p)
{
    ops_buf_printf(b, "K=%u (", p->workers);
    if (p->rationale && *p->rationale)
        ops_template_text(b, p->rationale);
    else
        ops_buf_put(b, "no rationale recorded");
    ops_buf_put(b, ")");
}

static void texts(ops_alert_kind kind, const sluice_config_pool *p, const ops_thresholds *t, ops_buf *sum,
                  ops_buf *desc)
{
    char d1[32];
    const char *name = p->name;
    /* The pool name is config text too: escape it for the template. */
    ops_buf pn = {0};
    ops_template_text(&pn, name);
    name = ops_buf_str(&pn);
    switch (kind) {
    case OPS_ALERT_SATURATED:
        ops_buf_printf(sum, "Pool %s on {{ $labels.instance }} is saturated ({{ $value | humanizePercentage }} of workers busy)", name);
        ops_buf_printf(desc, "Pool %s has had more than %g%% of its workers busy for %s. ", name,
                       t->saturation * 100, t->for_duration);
        k_phrase(desc, p);
        ops_buf_printf(desc, ". Once all are busy, submits queue (capacity %zu) and then %s.",
                       p->queue_capacity,
                       p->overflow == SLUICE_OVERFLOW_BLOCK         ? "block the producers"
                       : p->overflow == SLUICE_OVERFLOW_REJECT      ? "are rejected"
                       : p->overflow == SLUICE_OVERFLOW_CALLER_RUNS ? "run on the callers' threads"
                                                                    : "evict the oldest queued task");
        break;
    case OPS_ALERT_PANIC:
        ops_buf_printf(sum, "Pool %s on {{ $labels.instance }}: {{ $value | humanize }} task panics in 5m", name);
        ops_buf_printf(desc,
                       "A task in pool %s panicked (sluice_panic or a caught fault, fault_policy %s). "
                       "The stack is in the service log. ",
                       name, sluice_fault_mode_name(p->fault_policy));
        k_phrase(desc, p);
        ops_buf_put(desc, ".");
        break;
    case OPS_ALERT_DROPPING:
        ops_buf_printf(sum, "Pool %s on {{ $labels.instance }} is losing work ({{ $value | humanizePercentage }} of offered tasks)",
                       name);
        if (t->loss_ratio == 0)
            ops_buf_printf(desc,
                           "Pool %s (overflow block) dropped, rejected or shed tasks for %s; a blocking pool "
                           "is declared never to lose work. ",
                           name, t->for_duration);
        else
            ops_buf_printf(desc, "Pool %s (overflow %s) lost more than %g%% of offered tasks for %s. ", name,
                           sluice_overflow_name(p->overflow), t->loss_ratio * 100, t->for_duration);
        k_phrase(desc, p);
        ops_buf_put(desc, ".");
        break;
    case OPS_ALERT_SLOW_TASKS:
        ops_buf_printf(sum, "Pool %s on {{ $labels.instance }}: task p99 is {{ $value | humanizeDuration }} (threshold %s)", name,
                       sluice_config_format_duration(t->slow_task_p99_ns, d1, sizeof d1));
        ops_buf_printf(desc, "The p99 task duration of pool %s has been above %s for %s", name, d1,
                       t->for_duration);
        if (p->downstream)
            ops_buf_printf(desc, "; the tasks call %s, check it first", p->downstream);
        ops_buf_put(desc, ". ");
        k_phrase(desc, p);
        ops_buf_put(desc, ".");
        break;
    case OPS_ALERT_SUBMIT_WAIT:
        ops_buf_printf(sum, "Pool %s on {{ $labels.instance }}: queue wait p99 is {{ $value | humanizeDuration }} (threshold %s)", name,
                       sluice_config_format_duration(t->submit_wait_p99_ns, d1, sizeof d1));
        ops_buf_printf(desc,
                       "Tasks of pool %s have waited more than %s (p99) between submit and start for %s: "
                       "producers are backing up. ",
                       name, d1, t->for_duration);
        k_phrase(desc, p);
        ops_buf_put(desc, ".");
        break;
    case OPS_ALERT_METRICS_MISSING:
        ops_buf_printf(sum, "Pool %s exports no metrics{{ if $labels.instance }} on {{ $labels.instance }}{{ end }}",
                       name);
        ops_buf_printf(desc,
                       "No pool_capacity series for pool %s for %s{{ if $labels.instance }} from "
                       "{{ $labels.instance }}, which Prometheus scrapes{{ end }}: the service is down, not "
                       "scraped, or no longer creates this pool. Alerts for it cannot fire while this lasts.",
                       name, t->for_duration);
        break;
    case OPS_ALERT_STALLED: {
        char d2[32];
        ops_buf_printf(sum,
                       "Pool %s on {{ $labels.instance }} is stalled: every worker busy, none finished in %s, "
                       "oldest task running {{ $value | humanizeDuration }}",
                       name, t->stall_window);
        ops_buf_printf(desc,
                       "Every worker of pool %s has been busy, no task has finished for %s and the oldest "
                       "running task is older than %s",
                       name, t->stall_window, sluice_config_format_duration(t->stall_after_ns, d2, sizeof d2));
        if (p->downstream)
            ops_buf_printf(desc, "; the tasks call %s, which has most likely stopped answering", p->downstream);
        ops_buf_put(desc, ": a stalled downstream or a deadlock, not load. ");
        k_phrase(desc, p);
        ops_buf_put(desc, ".");
        break;
    }
    case OPS_ALERT_COUNT_:
        break;
    }
    ops_buf_free(&pn);
}

/* The service-wide group: SluiceTargetDown (up == 0 per instance). */
static void service_group(const sluice_config *cfg, const char *service, const char *job, ops_buf *out)
{
    ops_buf gname = {0}, url = {0}, sel_up = {0};
    ops_buf_printf(&gname, "sluice-%s", service);
    ops_buf_put(out, "  - name: ");
    ops_yaml_str(out, ops_buf_str(&gname));
    ops_buf_put(out, "\n    rules:\n");
    ops_buf_put(&sel_up, "up{job=");
    ops_promql_str(&sel_up, job);
    ops_buf_put(&sel_up, "} == 0");
    ops_buf_printf(out, "      - alert: %s\n        expr: ", OPS_ALERT_TARGET_DOWN);
    ops_yaml_squote(out, ops_buf_str(&sel_up));
    ops_buf_printf(out, "\n        for: %s\n        labels:\n          severity: critical\n          service: ",
                   OPS_TARGET_DOWN_FOR);
    ops_yaml_str(out, service);
    ops_buf_put(out, "\n        annotations:\n          summary: ");
    ops_buf sum = {0}, desc = {0}, svc = {0};
    ops_template_text(&svc, service);
    ops_buf_printf(&sum, "%s on {{ $labels.instance }} cannot be scraped", ops_buf_str(&svc));
    ops_buf_printf(&desc,
                   "Prometheus has failed to scrape {{ $labels.instance }} (job %s) for %s: the pod is down, "
                   "restarting, or its admin server does not answer. No pool alert of this instance can "
                   "fire while this lasts.",
                   ops_buf_str(&svc), OPS_TARGET_DOWN_FOR);
    ops_yaml_str(out, ops_buf_str(&sum));
    ops_buf_put(out, "\n          description: ");
    ops_yaml_str(out, ops_buf_str(&desc));
    ops_runbook_url(&url, cfg, OPS_ALERT_TARGET_DOWN, service);
    ops_buf_put(out, "\n          runbook_url: ");
    ops_yaml_str(out, ops_buf_str(&url));
    ops_buf_put(out, "\n");
    ops_buf_free(&sum);
    ops_buf_free(&desc);
    ops_buf_free(&svc);
    ops_buf_free(&gname);
    ops_buf_free(&url);
    ops_buf_free(&sel_up);
}

const char *ops_prometheus_job(const sluice_config *cfg)
{
    return cfg->service.name ? cfg->service.name : "sluice";
}

void ops_rules_generate(const sluice_config *cfg, const char *source_name, ops_buf *out)
{
    const char *service = cfg->service.name ? cfg->service.name : "sluice";
    const char *job = ops_prometheus_job(cfg);
    const sluice_config_pool **pools = ops_sorted_pools(cfg);
    ops_buf_printf(out, "# Prometheus alerting rules for the pools of service %s.\n", service);
    ops_buf_printf(out, "# Generated by `sluice rules %s`; do not edit: change the config and regenerate.\n",
                   source_name);
    ops_buf_put(out, "groups:\n");
    service_group(cfg, service, job, out);
    for (size_t i = 0; i < cfg->pool_count; i++) {
        const sluice_config_pool *p = pools[i];
        ops_thresholds t = ops_pool_thresholds(p);
        ops_buf gname = {0};
        ops_buf_printf(&gname, "sluice-%s-%s", service, p->name);
        ops_buf_put(out, "  - name: ");
        ops_yaml_str(out, ops_buf_str(&gname));
        ops_buf_put(out, "\n    rules:\n");
        ops_buf_free(&gname);
        for (int k = 0; k < OPS_ALERT_COUNT_; k++) {
            const ops_alert_info *a = &alerts[k];
            ops_buf expr = {0}, sum = {0}, desc = {0}, url = {0};
            pool_expr(&expr, (ops_alert_kind)k, p, &t, job);
            texts((ops_alert_kind)k, p, &t, &sum, &desc);
            ops_runbook_url(&url, cfg, a->name, p->name);
            ops_buf_printf(out, "      - alert: %s\n        expr: ", a->name);
            ops_yaml_squote(out, ops_buf_str(&expr));
            ops_buf_put(out, "\n");
            if (k == OPS_ALERT_STALLED)
                ops_buf_printf(out, "        for: %s\n", t.stall_for);
            else if (k != OPS_ALERT_PANIC)
                ops_buf_printf(out, "        for: %s\n", t.for_duration);
            ops_buf_printf(out, "        labels:\n          severity: %s\n          service: ", a->severity);
            ops_yaml_str(out, service);
            ops_buf_put(out, "\n          pool: ");
            ops_yaml_str(out, p->name);
            ops_buf_put(out, "\n        annotations:\n          summary: ");
            ops_yaml_str(out, ops_buf_str(&sum));
            ops_buf_put(out, "\n          description: ");
            ops_yaml_str(out, ops_buf_str(&desc));
            ops_buf_put(out, "\n          runbook_url: ");
            ops_yaml_str(out, ops_buf_str(&url));
            ops_buf_put(out, "\n");
            ops_buf_free(&expr);
            ops_buf_free(&sum);
            ops_buf_free(&desc);
            ops_buf_free(&url);
        }
    }
    free(pools);
}
