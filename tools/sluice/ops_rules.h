/*
 * tools/sluice/ops_rules.h - the alerts every pool gets, and the
 * generators that derive Prometheus rules, the Grafana dashboard and the
 * runbook from one sluice_config.
 *
 * The alert table is shared so that the rules' runbook_url anchors and the
 * runbook's headings cannot drift apart: both are made from the same
 * (alert name, pool name) pair by ops_runbook_anchor.
 *
 * Ownership: the generators append to a caller-owned ops_buf and keep no
 * state; thread-safe on distinct buffers. The config is only read.
 */
#ifndef SLUICE_TOOLS_OPS_RULES_H
#define SLUICE_TOOLS_OPS_RULES_H

#include <stdbool.h>
#include <stdint.h>

#include "ops_util.h"

typedef enum ops_alert_kind {
    OPS_ALERT_SATURATED = 0,
    OPS_ALERT_PANIC,
    OPS_ALERT_DROPPING,
    OPS_ALERT_SLOW_TASKS,
    OPS_ALERT_SUBMIT_WAIT,
    OPS_ALERT_METRICS_MISSING,
    OPS_ALERT_STALLED,
    OPS_ALERT_TENANT_STARVED, /* fair pools only (ops_alert_applies) */
    OPS_ALERT_PROBE_FAILING,  /* only pools with probe_every */
    OPS_ALERT_COUNT_
} ops_alert_kind;

typedef struct ops_alert_info {
    const char *name;     /* "PoolSaturated" */
    const char *severity; /* "warning" | "critical" */
    const char *title;    /* one line for the runbook heading */
} ops_alert_info;

const ops_alert_info *ops_alert(ops_alert_kind kind);

/* Does pool p get this alert? Every pool gets every alert, except that
 * TenantStarved is only for `queue_discipline: fair` pools (the only ones
 * that export per-tenant series). */
bool ops_alert_applies(ops_alert_kind kind, const sluice_config_pool *p);

/* TenantStarved: queued work and nothing of the tenant finished in this
 * window while the pool's other tenants finished tasks. */
#define OPS_TENANT_STARVED_WINDOW "10m"

/* PoolProbeFailing: pool_probe_healthy == 0 for this long. */
#define OPS_PROBE_FAILING_FOR "1m"

/* The one service-wide alert: an instance of the service cannot be
 * scraped (`up == 0`). Its runbook anchor is made from (alert, service). */
#define OPS_ALERT_TARGET_DOWN "SluiceTargetDown"
#define OPS_TARGET_DOWN_FOR "2m"

/* The alerts on the sync primitives (circuit breakers, semaphores, rate
 * limiters) a service exports through sluice_sync_metrics: one rule each
 * over every object of the job (the objects are made in code, not in
 * sluice.yaml), labelled by the object's `name`. Their runbook anchors are
 * made from (alert, service). */
typedef struct ops_sync_alert {
    const char *name; /* "SluiceBreakerOpen" */
    const char *severity;
    const char *for_duration;
    const char *expr;    /* PromQL; each @JOB@ becomes the job matcher `job="J"` */
    const char *summary; /* Prometheus templates allowed ({{ $labels.name }}) */
    const char *description;
    const char *fires_when; /* for the runbook */
    const char *checks;     /* the runbook's quick checks, Markdown */
    const char *mitigations;
    const char *long_term;
    const char *rollback;
} ops_sync_alert;

extern const ops_sync_alert ops_sync_alerts[];
extern const size_t ops_sync_alert_count;

/* The Prometheus `job` label of the service's scrape targets: the service
 * name (docs/ops.md: name the scrape job after the service). */
const char *ops_prometheus_job(const sluice_config *cfg);

/* Thresholds of one pool's alerts, from the config or the defaults. */
typedef struct ops_thresholds {
    double saturation; /* running/capacity ratio, default 0.9 */
    double loss_ratio; /* (dropped+rejected+shed)/(submitted+rejected): 0 for block pools, else 0.01 */
    uint64_t slow_task_p99_ns;   /* alert_slow_task_p99, default 1s */
    uint64_t submit_wait_p99_ns; /* alert_submit_wait_p99, default 100ms */
    char for_duration[32];       /* alert_for, default "5m" */
    const char *rationale;       /* alert_rationale, or NULL */
    uint64_t stall_after_ns;     /* PoolStalled: oldest running task older than this, default 30s */
    const char *stall_window;    /* PoolStalled: no task finished in this window, "1m" */
    const char *stall_for;       /* PoolStalled: for this long, "30s" */
} ops_thresholds;

#define OPS_DEFAULT_SATURATION 0.9
#define OPS_DEFAULT_LOSS_RATIO 0.01
#define OPS_DEFAULT_SLOW_TASK_P99_NS 1000000000ull
#define OPS_DEFAULT_SUBMIT_WAIT_P99_NS 100000000ull
#define OPS_DEFAULT_STALL_AFTER_NS 30000000000ull

ops_thresholds ops_pool_thresholds(const sluice_config_pool *p);

/*
 * ops_unfireable_alerts - find the pool's alerts that can never fire: the
 * timing alerts of a pool with timing off, and a p99 threshold at or above
 * the largest finite histogram bucket (histogram_quantile never returns
 * more than that bound). Calls cb once per problem with the position of
 * the key to change (the pool's entry when the key was not given),
 * a fix and a message (without the pool name). `sluice lint` reports them
 * as alert-thresholds findings; `sluice rules` refuses to write such rules.
 * Returns the number of problems.
 */
typedef void (*ops_unfireable_fn)(void *ud, const sluice_config_pool *p, const sluice_config_pos *pos,
                                  const char *fix, const char *message);
int ops_unfireable_alerts(const sluice_config_pool *p, ops_unfireable_fn cb, void *ud);

/*
 * A pool's SLO (sluice.yaml: slo_objective, slo_latency, slo_window).
 * objective 0 = none. With latency_ns, a second SLO counts a task slower
 * than latency_ns (run time, from pool_task_duration_seconds) as bad; the
 * threshold must be one of the pool's histogram bounds (ops_slo_problem).
 */
typedef struct ops_slo {
    double objective;    /* e.g. 0.999; 0 = no SLO */
    uint64_t latency_ns; /* 0 = availability only */
    uint64_t window_ns;  /* the SLO window; default 30 days */
} ops_slo;

#define OPS_DEFAULT_SLO_WINDOW_NS (30ull * 24 * 3600 * 1000000000ull)

ops_slo ops_pool_slo(const sluice_config_pool *p);
/* The service-wide SLO (sluice.yaml `service:` slo_objective, slo_latency,
 * slo_window): every pool of the service counted together. */
ops_slo ops_service_slo(const sluice_config *cfg);
/* Why the service SLO cannot be turned into rules (NULL when it can): a
 * latency SLO needs timing and that bound in every pool. */
const char *ops_service_slo_problem(const sluice_config *cfg, const ops_slo *slo, char *buf, size_t len);

/* An SLO window for people: "30d" for whole days, else "36h". */
void ops_format_window(uint64_t ns, char *buf, size_t len);

/* Why the pool's SLO cannot be turned into rules (NULL when it can): a
 * latency threshold that is not a histogram bound, or timing off. */
const char *ops_slo_problem(const sluice_config_pool *p, const ops_slo *slo, char *buf, size_t len);

/* The metric names the library exports (docs/metrics.md), sorted; the
 * dashboard and rules refer to no others. NULL-terminated. */
extern const char *const ops_exported_metrics[];

/* One alerting rule as written (pool, slo may be NULL; for_duration NULL
 * = fire at once). */
typedef struct ops_alert_rule {
    const char *name, *expr, *for_duration, *severity, *service, *pool, *slo, *summary, *description,
        *runbook_url;
} ops_alert_rule;
void ops_emit_alert(ops_buf *out, const ops_alert_rule *r);

/* The cluster budget (ops_budget.c), for a config with a `cluster:`
 * section: the alerts on the sluice_budget_* families, one group
 * "sluice-<service>-budget"; their runbook entries; the alert table. */
typedef struct ops_budget_alert {
    const char *name, *severity, *title;
} ops_budget_alert;
extern const ops_budget_alert ops_budget_alerts[];
extern const size_t ops_budget_alert_count;
/* The service the budget is kept for: cluster.service, else service.name. */
const char *ops_budget_service(const sluice_config *cfg);
void ops_budget_rules(const sluice_config *cfg, const char *job, ops_buf *out);
void ops_budget_runbook(const sluice_config *cfg, const char *listen, ops_buf *out);

/* Prometheus alerting rules (YAML) for every pool, pools in name order. */
void ops_rules_generate(const sluice_config *cfg, const char *source_name, ops_buf *out);

/* A Grafana dashboard (JSON) with a $pool variable. */
void ops_dashboard_generate(const sluice_config *cfg, const char *source_name, ops_buf *out);

/* The fleet dashboard (JSON): every pool of every scraped service, worst
 * first (`sluice dashboard --fleet`); needs no config. */
void ops_dashboard_fleet_generate(ops_buf *out);

/* The dashboard's Grafana uid, "sluice-<service>" (appended to out). */
void ops_dashboard_uid(const sluice_config *cfg, ops_buf *out);

/* The Markdown runbook: one entry per alert per pool. */
void ops_runbook_generate(const sluice_config *cfg, const char *source_name, ops_buf *out);

#endif /* SLUICE_TOOLS_OPS_RULES_H */
