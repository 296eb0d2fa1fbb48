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
 *   TenantStarved       (fair pools) a tenant has tasks queued and none  warning
 *                       finished in 10m while other tenants' did, for 5m
 *   PoolProbeFailing    pool_probe_healthy == 0 for 1m (pools with     critical
 *                       probe_every only: the scheduled no-op probe
 *                       was refused or not run within probe_timeout)
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

#include "base/rules.h"

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
    [OPS_ALERT_TENANT_STARVED] = {"TenantStarved", "warning",
                                  "a tenant's work waits while others are served"},
    [OPS_ALERT_PROBE_FAILING] = {"PoolProbeFailing", "critical", "the scheduled no-op probe does not run"},
};

bool ops_alert_applies(ops_alert_kind kind, const sluice_config_pool *p)
{
    if (kind == OPS_ALERT_TENANT_STARVED) {
        return p->queue_discipline == SLUICE_QUEUE_FAIR;
    }
    if (kind == OPS_ALERT_PROBE_FAILING) {
        return p->probe_every_ns != 0;
    }
    return true;
}

const ops_alert_info *ops_alert(ops_alert_kind kind)
{
    return (unsigned)kind < OPS_ALERT_COUNT_ ? &alerts[kind] : NULL;
}

/* Keep sorted; tests/tools check every query against this list and the
 * list against docs/metrics.md. */
const char *const ops_exported_metrics[] = {
    "pool_abandoned_total",
    "pool_autotune_decisions_total",
    "pool_autotune_pinned",
    "pool_capacity",
    "pool_codel_dropping",
    "pool_codel_shed_total",
    "pool_completed_total",
    "pool_concurrency_limit",
    "pool_dropped_total",
    "pool_expired_workers_total",
    "pool_failed_total",
    "pool_idle_workers",
    "pool_lifo_active",
    "pool_lifo_switches_total",
    "pool_oldest_running_seconds",
    "pool_panicked_total",
    "pool_probe_duration_seconds",
    "pool_probe_failures_total",
    "pool_probe_healthy",
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
    "pool_tenant_abandoned_total",
    "pool_tenant_completed_total",
    "pool_tenant_dropped_total",
    "pool_tenant_failed_total",
    "pool_tenant_panicked_total",
    "pool_tenant_queued",
    "pool_tenant_rejected_total",
    "pool_tenant_running",
    "pool_tenant_shed_total",
    "pool_tenant_submit_duration_seconds",
    "pool_tenant_submitted_total",
    "pool_tenants_folded",
    "pool_tenants_tracked",
    "pool_timing_sample_every",
    "pool_waiting",
    "pool_worker_start_failures_total",
    "pool_worker_utilization_ratio",
    NULL,
};

ops_thresholds ops_pool_thresholds(const sluice_config_pool *p)
{
    ops_thresholds t;
    const sluice_config_ops_keys *k = sluice_config_pool_ops(p);
    t.saturation = k && k->alert_saturation > 0 ? k->alert_saturation : OPS_DEFAULT_SATURATION;
    /* A blocking pool is declared as "never lose work": one loss is news.
     * The others shed load by design; alert when it passes 1%. */
    t.loss_ratio = k && k->alert_loss_ratio > 0           ? k->alert_loss_ratio
                   : p->overflow == SLUICE_OVERFLOW_BLOCK ? 0
                                                          : OPS_DEFAULT_LOSS_RATIO;
    t.slow_task_p99_ns =
        k && k->alert_slow_task_p99_ns ? k->alert_slow_task_p99_ns : OPS_DEFAULT_SLOW_TASK_P99_NS;
    t.submit_wait_p99_ns =
        k && k->alert_submit_wait_p99_ns ? k->alert_submit_wait_p99_ns : OPS_DEFAULT_SUBMIT_WAIT_P99_NS;
    if (k && k->alert_for_ns)
        sluice_config_format_duration(k->alert_for_ns, t.for_duration, sizeof t.for_duration);
    else
        snprintf(t.for_duration, sizeof t.for_duration, "5m");
    t.rationale = k && k->alert_rationale && *k->alert_rationale ? k->alert_rationale : NULL;
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
    return (uint64_t)(sluice__hist_default_bounds()[SLUICE_HIST_DEFAULT_BUCKETS - 1] * 1e9 + 0.5);
}

int ops_unfireable_alerts(const sluice_config_pool *p, ops_unfireable_fn cb, void *ud)
{
    char a[32], b[32], msg[512];
    if (!p->timing) {
        cb(ud, p,
           sluice_config_pool_has(p, SLUICE_PK_TIMING) && p->pos[SLUICE_PK_TIMING].line
               ? &p->pos[SLUICE_PK_TIMING]
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
        snprintf(
            msg, sizeof msg,
            "%s %s is not below the largest finite histogram bucket %ss: histogram_quantile caps at that "
            "bucket, so %s can never fire",
            timed[i].key, sluice_config_format_duration(v[i], a, sizeof a),
            ops_format_seconds(top, b, sizeof b), timed[i].alert);
        const sluice_config_pos *pos =
            ops && sluice_config_pool_ext_has(p, &sluice_config_ext_ops, timed[i].k) &&
                    ops->pos[timed[i].k].line
                ? &ops->pos[timed[i].k]
                : &p->entry_pos;
        cb(ud, p, pos,
           "lower the threshold below the largest bucket, or add larger histogram_buckets so the histogram "
           "can "
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
    case OPS_ALERT_TENANT_STARVED: {
        /* Per instance: a tenant queued on one pod and served on another
         * is still starved where it waits. $value is its queued count. */
        static const char *const served[] = {"pool_tenant_completed_total", "pool_tenant_failed_total",
                                             "pool_tenant_panicked_total"};
        ops_buf_put(b, "max by (instance, name, tenant) (");
        sel(b, "pool_tenant_queued", p);
        ops_buf_put(b, ") > 0 and on (instance, name, tenant) sum by (instance, name, tenant) (");
        for (size_t i = 0; i < 3; i++) {
            ops_buf_put(b, i ? " + increase(" : "increase(");
            sel(b, served[i], p);
            ops_buf_put(b, "[" OPS_TENANT_STARVED_WINDOW "])");
        }
        ops_buf_put(b, ") == 0 and on (instance, name) sum by (instance, name) (increase(");
        sel(b, "pool_tenant_completed_total", p);
        ops_buf_put(b, "[" OPS_TENANT_STARVED_WINDOW "])) > 0");
        break;
    }
    case OPS_ALERT_PROBE_FAILING:
        sel(b, "pool_probe_healthy", p);
        ops_buf_put(b, " == 0");
        break;
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

/* What a full queue does to producers, for the saturation alert. A switch
 * with no default, so -Wswitch names a new policy that has no text here. */
static const char *overflow_consequence(sluice_overflow policy)
{
    switch (policy) {
    case SLUICE_OVERFLOW_BLOCK:
        return "block the producers";
    case SLUICE_OVERFLOW_REJECT:
        return "are rejected";
    case SLUICE_OVERFLOW_CALLER_RUNS:
        return "run on the callers' threads";
    case SLUICE_OVERFLOW_DROP_OLDEST:
        return "evict the oldest queued task";
    case SLUICE_OVERFLOW_COUNT_:
        break;
    }
    return "are handled by an unknown overflow policy";
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
        ops_buf_printf(sum,
                       "Pool %s on {{ $labels.instance }} is saturated ({{ $value | humanizePercentage }} of "
                       "workers busy)",
                       name);
        ops_buf_printf(desc, "Pool %s has had more than %g%% of its workers busy for %s. ", name,
                       t->saturation * 100, t->for_duration);
        k_phrase(desc, p);
        ops_buf_printf(desc, ". Once all are busy, submits queue (capacity %zu) and then %s.",
                       p->queue_capacity, overflow_consequence(p->overflow));
        break;
    case OPS_ALERT_PANIC:
        ops_buf_printf(sum, "Pool %s on {{ $labels.instance }}: {{ $value | humanize }} task panics in 5m",
                       name);
        ops_buf_printf(desc,
                       "A task in pool %s panicked (sluice_panic or a caught fault, fault_policy %s). "
                       "The stack is in the service log. ",
                       name, sluice_fault_mode_name(p->fault_policy));
        k_phrase(desc, p);
        ops_buf_put(desc, ".");
        break;
    case OPS_ALERT_DROPPING:
        ops_buf_printf(sum,
                       "Pool %s on {{ $labels.instance }} is losing work ({{ $value | humanizePercentage }} "
                       "of offered tasks)",
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
        ops_buf_printf(
            sum,
            "Pool %s on {{ $labels.instance }}: task p99 is {{ $value | humanizeDuration }} (threshold %s)",
            name, sluice_config_format_duration(t->slow_task_p99_ns, d1, sizeof d1));
        ops_buf_printf(desc, "The p99 task duration of pool %s has been above %s for %s", name, d1,
                       t->for_duration);
        if (p->downstream)
            ops_buf_printf(desc, "; the tasks call %s, check it first", p->downstream);
        ops_buf_put(desc, ". ");
        k_phrase(desc, p);
        ops_buf_put(desc, ".");
        break;
    case OPS_ALERT_SUBMIT_WAIT:
        ops_buf_printf(sum,
                       "Pool %s on {{ $labels.instance }}: queue wait p99 is {{ $value | humanizeDuration }} "
                       "(threshold %s)",
                       name, sluice_config_format_duration(t->submit_wait_p99_ns, d1, sizeof d1));
        ops_buf_printf(desc,
                       "Tasks of pool %s have waited more than %s (p99) between submit and start for %s: "
                       "producers are backing up. ",
                       name, d1, t->for_duration);
        k_phrase(desc, p);
        ops_buf_put(desc, ".");
        break;
    case OPS_ALERT_METRICS_MISSING:
        ops_buf_printf(
            sum, "Pool %s exports no metrics{{ if $labels.instance }} on {{ $labels.instance }}{{ end }}",
            name);
        ops_buf_printf(desc,
                       "No pool_capacity series for pool %s for %s{{ if $labels.instance }} from "
                       "{{ $labels.instance }}, which Prometheus scrapes{{ end }}: the service is down, not "
                       "scraped, or no longer creates this pool. Alerts for it cannot fire while this lasts.",
                       name, t->for_duration);
        break;
    case OPS_ALERT_STALLED: {
        char d2[32];
        ops_buf_printf(
            sum,
            "Pool %s on {{ $labels.instance }} is stalled: every worker busy, none finished in %s, "
            "oldest task running {{ $value | humanizeDuration }}",
            name, t->stall_window);
        ops_buf_printf(desc,
                       "Every worker of pool %s has been busy, no task has finished for %s and the oldest "
                       "running task is older than %s",
                       name, t->stall_window,
                       sluice_config_format_duration(t->stall_after_ns, d2, sizeof d2));
        if (p->downstream)
            ops_buf_printf(desc, "; the tasks call %s, which has most likely stopped answering",
                           p->downstream);
        ops_buf_put(desc, ": a stalled downstream or a deadlock, not load. ");
        k_phrase(desc, p);
        ops_buf_put(desc, ".");
        break;
    }
    case OPS_ALERT_TENANT_STARVED:
        ops_buf_printf(
            sum,
            "Tenant {{ $labels.tenant }} of pool %s on {{ $labels.instance }} is starved: {{ $value }} "
            "tasks queued, none finished in " OPS_TENANT_STARVED_WINDOW,
            name);
        ops_buf_printf(
            desc,
            "Tenant {{ $labels.tenant }} has had tasks queued in pool %s and none of them finished "
            "for " OPS_TENANT_STARVED_WINDOW " while other tenants' tasks did, for %s: its weight is "
            "too small against the others', a strict running_limit holds it, or its tasks are "
            "refused a worker. ",
            name, t->for_duration);
        k_phrase(desc, p);
        ops_buf_put(desc, ".");
        break;
    case OPS_ALERT_PROBE_FAILING: {
        char every[32], timeout[32];
        sluice_config_format_duration(p->probe_every_ns, every, sizeof every);
        sluice_config_format_duration(p->probe_timeout_ns ? p->probe_timeout_ns : 5000000000ull, timeout,
                                      sizeof timeout);
        ops_buf_printf(sum, "Pool %s on {{ $labels.instance }} fails its scheduled probe", name);
        ops_buf_printf(desc,
                       "The no-op probe task that pool %s runs every %s has been refused, handed back or not "
                       "run within %s for %s: the pool cannot run a task that does nothing (deadlock, every "
                       "worker stuck, or submits refused). /health/pools says FAIL with the reason",
                       name, every, timeout, OPS_PROBE_FAILING_FOR);
        ops_buf_put(desc,
                    p->probe_affects_ready ? ", and /health/ready is 503 (probe_affects_ready). " : ". ");
        k_phrase(desc, p);
        ops_buf_put(desc, ".");
        break;
    }
    case OPS_ALERT_COUNT_:
        break;
    }
    ops_buf_free(&pn);
}

/* One alerting rule. for_duration, pool and slo may be NULL (left out). */
typedef ops_alert_rule alert_rule;
#define emit_alert ops_emit_alert

void ops_emit_alert(ops_buf *out, const ops_alert_rule *r)
{
    ops_buf_printf(out, "      - alert: %s\n        expr: ", r->name);
    ops_yaml_squote(out, r->expr);
    ops_buf_put(out, "\n");
    if (r->for_duration)
        ops_buf_printf(out, "        for: %s\n", r->for_duration);
    ops_buf_printf(out, "        labels:\n          severity: %s\n          service: ", r->severity);
    ops_yaml_str(out, r->service);
    if (r->pool) {
        ops_buf_put(out, "\n          pool: ");
        ops_yaml_str(out, r->pool);
    }
    if (r->slo)
        ops_buf_printf(out, "\n          slo: %s", r->slo);
    ops_buf_put(out, "\n        annotations:\n          summary: ");
    ops_yaml_str(out, r->summary);
    ops_buf_put(out, "\n          description: ");
    ops_yaml_str(out, r->description);
    ops_buf_put(out, "\n          runbook_url: ");
    ops_yaml_str(out, r->runbook_url);
    ops_buf_put(out, "\n");
}

const ops_sync_alert ops_sync_alerts[] = {
    {"SluiceBreakerOpen", "warning", "5m",
     "min by (job, instance, name) (min_over_time(sluice_breaker_state{@JOB@}[5m])) > 0",
     "Circuit breaker {{ $labels.name }} on {{ $labels.instance }} has not closed for 10m",
     "Breaker {{ $labels.name }} has been open or half-open at every scrape for 10 minutes: the downstream "
     "behind it keeps failing its trial calls, and every call through it is refused at once.",
     "a circuit breaker (`sluice_breaker_state` 1 open or 2 half-open) has not been closed at any scrape "
     "for 5m, held for 5m",
     "1. Which downstream is behind the breaker (`name` label): its status page, its own alerts, recent "
     "deploys.\n"
     "2. `sluice_breaker_transitions_total{name=...}`: open -> half-open -> open again means the trial "
     "calls fail; no transitions means the cool-down is long.\n"
     "3. `sluice_breaker_failure_rate_percent`: the failure rate that opened it.\n",
     "- The downstream is down: nothing to do in this service; the breaker is doing its job (callers get "
     "a fast refusal instead of a timeout). Make sure the refusals reach users as a clear error.\n"
     "- The downstream recovered but the breaker stays open: check the trial calls (half-open) reach it "
     "(network policy, credentials) and the failure threshold is not below its normal error rate.\n",
     "- Give each downstream its own breaker, so one failing dependency does not refuse calls to the "
     "others.\n- Alert on the downstream itself; this alert says the protection is working, not why.\n",
     "- The breaker started opening after a deploy of this service (a bad client, wrong credentials): "
     "`kubectl rollout undo deployment/<name>`.\n"},
    {"SluiceSemaphoreExhausted", "warning", "5m",
     "(max by (job, instance, name) (sluice_semaphore_in_use{@JOB@}) >= max by (job, instance, name) "
     "(sluice_semaphore_capacity{@JOB@})) and max by (job, instance, name) (sluice_semaphore_waiters{@JOB@}) "
     "> 0",
     "Semaphore {{ $labels.name }} on {{ $labels.instance }} is exhausted with callers waiting",
     "Every unit of semaphore {{ $labels.name }} has been held, with callers queued for one, for 5 minutes: "
     "the downstream it bounds is slower than the traffic needs, or a holder leaks units.",
     "a semaphore's units are all held (`sluice_semaphore_in_use >= sluice_semaphore_capacity`) and "
     "callers wait (`sluice_semaphore_waiters > 0`), for 5m",
     "1. `sluice_semaphore_acquire_wait_seconds` p99 and `sluice_semaphore_timeouts_total`: how long callers "
     "wait, and how many give up.\n"
     "2. The downstream's latency: by Little's law the units needed are throughput x latency; a slower "
     "downstream needs more.\n"
     "3. `in_use` stays at capacity with no traffic: a code path that acquires and never releases "
     "(`sluice_semaphore_release_errors_total` shows the opposite mistake).\n",
     "- The downstream is slow: shed or defer the work that can wait; do not raise the capacity above what "
     "the downstream agreed to.\n"
     "- A leak: restart the pod to get the units back, then fix the missing release.\n",
     "- Size the semaphore from the downstream's agreed concurrency (sluice plan), and put a timeout on "
     "every acquire so a slow downstream turns into fast refusals.\n",
     "- Exhausted since a deploy (a new call path that holds units longer, or leaks them): "
     "`kubectl rollout undo deployment/<name>`.\n"},
    {"SluiceLimiterThrottling", "warning", "10m",
     "sum by (job, instance, name) (rate(sluice_limiter_limited_total{@JOB@}[5m])) / (sum by (job, instance, "
     "name) (rate(sluice_limiter_allowed_total{@JOB@}[5m])) + sum by (job, instance, name) "
     "(rate(sluice_limiter_limited_total{@JOB@}[5m]))) > 0.1",
     "Rate limiter {{ $labels.name }} on {{ $labels.instance }} refuses "
     "{{ $value | humanizePercentage }} of calls",
     "More than 10% of the calls through rate limiter {{ $labels.name }} have been limited for 10 minutes: "
     "the offered rate is above the configured rate.",
     "more than 10% of a rate limiter's calls are limited (`sluice_limiter_limited_total` against "
     "`sluice_limiter_allowed_total`), for 10m",
     "1. `sluice_limiter_rate` against the offered rate (allowed + limited per second): which grew?\n"
     "2. A traffic spike from one caller or tenant (per-key limiters: "
     "`sluice_keyed_limiter_limited_total`).\n"
     "3. Retries multiplying load (`sluice_retry_retries_total`, the retry budget).\n",
     "- Expected peak above the agreed rate: the limiter protects the downstream; make sure limited calls "
     "fail fast or are deferred, not retried at once.\n"
     "- The agreed rate went up: change the configured rate (and the downstream's budget) together.\n",
     "- Put a retry budget in front of calls that retry, and per-tenant limits where one caller can use "
     "the whole rate.\n",
     "- Throttling since a deploy (a new caller, a retry loop): `kubectl rollout undo "
     "deployment/<name>`.\n"},
};
const size_t ops_sync_alert_count = sizeof ops_sync_alerts / sizeof ops_sync_alerts[0];

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
    ops_buf sum = {0}, desc = {0}, svc = {0};
    ops_template_text(&svc, service);
    ops_buf_printf(&sum, "%s on {{ $labels.instance }} cannot be scraped", ops_buf_str(&svc));
    ops_buf_printf(&desc,
                   "Prometheus has failed to scrape {{ $labels.instance }} (job %s) for %s: the pod is down, "
                   "restarting, or its admin server does not answer. No pool alert of this instance can "
                   "fire while this lasts.",
                   ops_buf_str(&svc), OPS_TARGET_DOWN_FOR);
    ops_runbook_url(&url, cfg, OPS_ALERT_TARGET_DOWN, service);
    alert_rule r = {
        OPS_ALERT_TARGET_DOWN, ops_buf_str(&sel_up), OPS_TARGET_DOWN_FOR, "critical", service, NULL, NULL,
        ops_buf_str(&sum),     ops_buf_str(&desc),   ops_buf_str(&url)};
    emit_alert(out, &r);
    ops_buf sel = {0};
    ops_buf_put(&sel, "job=");
    ops_promql_str(&sel, job);
    for (size_t i = 0; i < ops_sync_alert_count; i++) {
        const ops_sync_alert *a = &ops_sync_alerts[i];
        ops_buf expr = {0}, u = {0};
        for (const char *e = a->expr; *e;) {
            const char *at = strstr(e, "@JOB@");
            size_t n = at ? (size_t)(at - e) : strlen(e);
            ops_buf_printf(&expr, "%.*s", (int)n, e);
            if (!at)
                break;
            ops_buf_put(&expr, ops_buf_str(&sel));
            e = at + 5;
        }
        ops_runbook_url(&u, cfg, a->name, service);
        alert_rule sr = {a->name, ops_buf_str(&expr), a->for_duration, a->severity,    service, NULL,
                         NULL,    a->summary,         a->description,  ops_buf_str(&u)};
        emit_alert(out, &sr);
        ops_buf_free(&expr);
        ops_buf_free(&u);
    }
    ops_buf_free(&sel);
    ops_buf_free(&sum);
    ops_buf_free(&desc);
    ops_buf_free(&svc);
    ops_buf_free(&gname);
    ops_buf_free(&url);
    ops_buf_free(&sel_up);
}

/* ---- SLOs: recording rules and multiwindow, multi-burn-rate alerts -------------- */

/* The SRE workbook's three alerts (chapter 5, "Alerting on SLOs"): the
 * share of a 30-day error budget each may burn in its long window, and its
 * short window (1/12 of the long one, so the alert resets soon after the
 * burn stops). For another SLO window the burn factor scales with it:
 * factor = budget share x window / long window (14.4, 6 and 1 for 30d). */
static const struct burn {
    const char *alert, *severity, *long_w, *short_w;
    double budget_share;
    double long_h;
} burns[] = {
    {"PoolSLOBurnFast", "critical", "1h", "5m", 0.02, 1},
    {"PoolSLOBurnFast", "critical", "6h", "30m", 0.05, 6},
    {"PoolSLOBurnSlow", "warning", "3d", "6h", 0.10, 72},
};
static const char *const slo_windows[] = {"5m", "30m", "1h", "6h", "3d"};

static double burn_factor(const struct burn *b, const ops_slo *slo)
{
    return b->budget_share * ((double)slo->window_ns / 3600e9) / b->long_h;
}

/* {job="J",name="P"}, or {job="J"} for the service (p NULL) */
static void job_pool_sel(ops_buf *b, const char *metric, const char *job, const sluice_config_pool *p,
                         const char *extra)
{
    ops_buf_printf(b, "%s{job=", metric);
    ops_promql_str(b, job);
    if (p) { /* NULL: the whole service, every pool of the job */
        ops_buf_put(b, ",name=");
        ops_promql_str(b, p->name);
    }
    if (extra)
        ops_buf_printf(b, ",%s", extra);
    ops_buf_put(b, "}");
}

static void sum_rates(ops_buf *b, const char *const *metrics, size_t n, const char *job,
                      const sluice_config_pool *p, const char *w)
{
    ops_buf_put(b, p ? "sum by (job, name) (" : "sum by (job) (");
    for (size_t i = 0; i < n; i++) {
        ops_buf_put(b, i ? " + rate(" : "rate(");
        job_pool_sel(b, metrics[i], job, p, NULL);
        ops_buf_printf(b, "[%s])", w);
    }
    ops_buf_put(b, ")");
}

static void slo_error_ratio(ops_buf *b, bool latency, const ops_slo *slo, const char *job,
                            const sluice_config_pool *p, const char *w)
{
    if (!latency) {
        static const char *const bad[] = {"pool_failed_total", "pool_panicked_total",  "pool_dropped_total",
                                          "pool_shed_total",   "pool_abandoned_total", "pool_rejected_total"};
        static const char *const total[] = {"pool_submitted_total", "pool_rejected_total"};
        sum_rates(b, bad, 6, job, p, w);
        ops_buf_put(b, " / ");
        sum_rates(b, total, 2, job, p, w);
        return;
    }
    char le[64], num[48];
    snprintf(le, sizeof le, "le=\"%s\"", ops_format_seconds(slo->latency_ns, num, sizeof num));
    const char *by = p ? "sum by (job, name)" : "sum by (job)";
    ops_buf_printf(b, "1 - (%s (rate(", by);
    job_pool_sel(b, "pool_task_duration_seconds_bucket", job, p, le);
    ops_buf_printf(b, "[%s])) / %s (rate(", w, by);
    job_pool_sel(b, "pool_task_duration_seconds_count", job, p, NULL);
    ops_buf_printf(b, "[%s])))", w);
}

/* "30d" for whole days, else the config's duration form ("36h"). */
void ops_format_window(uint64_t ns, char *buf, size_t len)
{
    const uint64_t day = 24ull * 3600 * 1000000000ull;
    if (ns && ns % day == 0)
        snprintf(buf, len, "%llud", (unsigned long long)(ns / day));
    else
        sluice_config_format_duration(ns, buf, len);
}

/* sluice_slo:error_ratio:rate<w>{job="J",name="P",slo="kind"}, or for the
 * service (p NULL) sluice_slo:service_error_ratio:rate<w>{job="J",slo="kind"} */
static void ratio_sel(ops_buf *b, const char *w, const char *kind, const char *job,
                      const sluice_config_pool *p)
{
    char extra[48];
    snprintf(extra, sizeof extra, "slo=\"%s\"", kind);
    char metric[64];
    snprintf(metric, sizeof metric, "%s%s",
             p ? "sluice_slo:error_ratio:rate" : "sluice_slo:service_error_ratio:rate", w);
    job_pool_sel(b, metric, job, p, extra);
}

/* The recording rules and burn-rate alerts of one SLO: a pool's, or the
 * service's over all its pools (p NULL). */
static void slo_groups(const sluice_config *cfg, const sluice_config_pool *p, const ops_slo *slo,
                       const char *service, const char *job, ops_buf *out)
{
    char pct[32], budget[32], win[32], lat[32];
    snprintf(pct, sizeof pct, "%.10g%%", slo->objective * 100);
    snprintf(budget, sizeof budget, "%.10g", 1 - slo->objective);
    ops_format_window(slo->window_ns, win, sizeof win);
    for (int latency = 0; latency < 2; latency++) {
        if (latency && !slo->latency_ns)
            break;
        const char *kind = latency ? "latency" : "availability";
        ops_buf gname = {0};
        if (p)
            ops_buf_printf(&gname, "sluice-%s-%s-slo-%s", service, p->name, kind);
        else
            ops_buf_printf(&gname, "sluice-%s-slo-%s", service, kind);
        ops_buf_put(out, "  - name: ");
        ops_yaml_str(out, ops_buf_str(&gname));
        ops_buf_put(out, "\n    rules:\n");
        ops_buf_free(&gname);
        for (size_t i = 0; i < sizeof slo_windows / sizeof slo_windows[0]; i++) {
            ops_buf expr = {0};
            slo_error_ratio(&expr, latency, slo, job, p, slo_windows[i]);
            ops_buf_printf(out, "      - record: %s%s\n        expr: ",
                           p ? "sluice_slo:error_ratio:rate" : "sluice_slo:service_error_ratio:rate",
                           slo_windows[i]);
            ops_yaml_squote(out, ops_buf_str(&expr));
            ops_buf_printf(out, "\n        labels:\n          slo: %s\n", kind);
            ops_buf_free(&expr);
        }
        for (int a = 0; a < 2; a++) {
            const char *alert = p ? (a ? "PoolSLOBurnSlow" : "PoolSLOBurnFast")
                                  : (a ? "ServiceSLOBurnSlow" : "ServiceSLOBurnFast");
            const char *what = p ? "Pool" : "Service", *what_lc = p ? "pool" : "service";
            ops_buf expr = {0}, sum = {0}, desc = {0}, url = {0}, pn = {0};
            bool first = true;
            for (size_t i = 0; i < sizeof burns / sizeof burns[0]; i++) {
                if ((strcmp(burns[i].alert, "PoolSLOBurnSlow") == 0) != (a == 1))
                    continue; /* the table names the pool alerts; the service's pair the same way */
                char thr[48];
                snprintf(thr, sizeof thr, "%.6g", burn_factor(&burns[i], slo) * (1 - slo->objective));
                ops_buf_put(&expr, first ? "(" : " or (");
                first = false;
                ratio_sel(&expr, burns[i].long_w, kind, job, p);
                ops_buf_printf(&expr, " > %s and ", thr);
                ratio_sel(&expr, burns[i].short_w, kind, job, p);
                ops_buf_printf(&expr, " > %s)", thr);
            }
            ops_template_text(&pn, p ? p->name : service);
            if (latency)
                ops_buf_printf(
                    &sum, "%s %s on {{ $labels.job }}: tasks slower than %ss are burning the %s error budget",
                    what, ops_buf_str(&pn), ops_format_seconds(slo->latency_ns, lat, sizeof lat), win);
            else
                ops_buf_printf(
                    &sum, "%s %s on {{ $labels.job }}: failed and lost tasks are burning the %s error budget",
                    what, ops_buf_str(&pn), win);
            ops_buf_printf(&sum, " ({{ $value | humanizePercentage }} bad)");
            ops_buf_printf(&desc, "The %s SLO of %s %s is %s over %s (an error budget of %s of tasks%s). ",
                           kind, what_lc, ops_buf_str(&pn), pct, win, budget,
                           p ? "" : ", all pools together");
            if (a == 0)
                ops_buf_put(&desc,
                            "The budget is burning fast enough to be gone within days (more than 2% of it in "
                            "an hour, or 5% in six hours): page.");
            else
                ops_buf_put(&desc,
                            "The budget is burning faster than the SLO allows (10% of it in three days): "
                            "open a ticket before it runs out.");
            ops_runbook_url(&url, cfg, alert, p ? p->name : service);
            alert_rule r = {alert,
                            ops_buf_str(&expr),
                            NULL,
                            a ? "warning" : "critical",
                            service,
                            p ? p->name : NULL,
                            kind,
                            ops_buf_str(&sum),
                            ops_buf_str(&desc),
                            ops_buf_str(&url)};
            emit_alert(out, &r);
            ops_buf_free(&expr);
            ops_buf_free(&sum);
            ops_buf_free(&desc);
            ops_buf_free(&url);
            ops_buf_free(&pn);
        }
    }
}

ops_slo ops_service_slo(const sluice_config *cfg)
{
    const sluice_config_service_ops_keys *k = sluice_config_service_ops(cfg);
    ops_slo slo = {k->slo_objective, k->slo_latency_ns,
                   k->slo_window_ns ? k->slo_window_ns : OPS_DEFAULT_SLO_WINDOW_NS};
    return slo;
}

const char *ops_service_slo_problem(const sluice_config *cfg, const ops_slo *slo, char *buf, size_t len)
{
    if (slo->objective <= 0 || !slo->latency_ns)
        return NULL;
    if (cfg->pool_count == 0) {
        snprintf(buf, len, "service slo_latency: the service has no pools to measure");
        return buf;
    }
    /* The service's latency SLO sums one bucket over every pool: each
     * pool must time its tasks and have that bound. */
    for (size_t i = 0; i < cfg->pool_count; i++) {
        const sluice_config_pool *p = &cfg->pools[i];
        char why[512];
        if (ops_slo_problem(p, slo, why, sizeof why)) {
            snprintf(buf, len, "service slo_latency: pool %s: %s", p->name, why);
            return buf;
        }
    }
    return NULL;
}

ops_slo ops_pool_slo(const sluice_config_pool *p)
{
    ops_slo slo = {0, 0, OPS_DEFAULT_SLO_WINDOW_NS};
    const sluice_config_ops_keys *k = sluice_config_pool_ops(p);
    if (k) {
        slo.objective = k->slo_objective;
        slo.latency_ns = k->slo_latency_ns;
        if (k->slo_window_ns)
            slo.window_ns = k->slo_window_ns;
    }
    return slo;
}

const char *ops_slo_problem(const sluice_config_pool *p, const ops_slo *slo, char *buf, size_t len)
{
    if (slo->objective <= 0 || !slo->latency_ns)
        return NULL;
    if (!p->timing) {
        snprintf(buf, len, "slo_latency needs timing: with timing off the duration histogram is empty");
        return buf;
    }
    const double *bounds = p->histogram_buckets;
    size_t n = p->histogram_bucket_count;
    if (!bounds || !n) {
        bounds = sluice__hist_default_bounds(); /* the library's (src/base/rules.h) */
        n = SLUICE_HIST_DEFAULT_BUCKETS;
    }
    char want[48];
    ops_format_seconds(slo->latency_ns, want, sizeof want);
    ops_buf list = {0};
    for (size_t i = 0; i < n; i++) {
        if ((uint64_t)(bounds[i] * 1e9 + 0.5) == slo->latency_ns) {
            ops_buf_free(&list);
            return NULL;
        }
        ops_buf_printf(&list, "%s%g", i ? ", " : "", bounds[i]);
    }
    snprintf(
        buf, len,
        "slo_latency %ss is not one of the pool's histogram bounds (%s): the SLO counts tasks at or under "
        "a bucket bound, so pick one, or add it to histogram_buckets",
        want, ops_buf_str(&list));
    ops_buf_free(&list);
    return buf;
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
    ops_slo sslo = ops_service_slo(cfg);
    if (sslo.objective > 0)
        slo_groups(cfg, NULL, &sslo, service, job, out);
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
            if (!ops_alert_applies((ops_alert_kind)k, p))
                continue;
            ops_buf expr = {0}, sum = {0}, desc = {0}, url = {0};
            pool_expr(&expr, (ops_alert_kind)k, p, &t, job);
            texts((ops_alert_kind)k, p, &t, &sum, &desc);
            if (t.rationale) {
                ops_buf_put(&desc, " Thresholds: ");
                ops_template_text(&desc, t.rationale);
                ops_buf_put(&desc, ".");
            }
            ops_runbook_url(&url, cfg, a->name, p->name);
            alert_rule r = {a->name,
                            ops_buf_str(&expr),
                            k == OPS_ALERT_STALLED         ? t.stall_for
                            : k == OPS_ALERT_PROBE_FAILING ? OPS_PROBE_FAILING_FOR
                            : k == OPS_ALERT_PANIC         ? NULL
                                                           : t.for_duration,
                            a->severity,
                            service,
                            p->name,
                            NULL,
                            ops_buf_str(&sum),
                            ops_buf_str(&desc),
                            ops_buf_str(&url)};
            emit_alert(out, &r);
            ops_buf_free(&expr);
            ops_buf_free(&sum);
            ops_buf_free(&desc);
            ops_buf_free(&url);
        }
        ops_slo slo = ops_pool_slo(p);
        if (slo.objective > 0)
            slo_groups(cfg, p, &slo, service, job, out);
    }
    free(pools);
    if (cfg->cluster.present)
        ops_budget_rules(cfg, job, out);
}
