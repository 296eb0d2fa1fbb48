/*
 * tools/sluice/ops_budget.c - alerts and runbook entries for the cluster
 * budget (libsluice-cluster, docs/cluster.md) of a config with a
 * `cluster:` section.
 *
 * Design: one rule group per service, "sluice-<service>-budget", over the
 * sluice_budget_* families each replica exports (selector {job, service}):
 *
 *   BudgetFallback         sluice_budget_fallback > 0 for 1m         warning
 *   BudgetRedisSlow        Redis round trip > redis_timeout / 2, 5m  warning
 *   BudgetMembersMismatch  replicas scraped != members in Redis, 5m  warning
 *   BudgetShareExceeded    sum over replicas of a bound pool's K
 *                          above the pool's share, for 2m            warning
 *
 * None pages: a replica in fallback stays inside its last fair share, so
 * the downstream is safe while Redis is away; what degrades is K's
 * reaction to joins and leaves, which the on-call should know about in
 * hours, not minutes. The dashboard's budget row is in ops_dashboard.c
 * (it shares the panel writer there). Pure functions of the config.
 */
#include "ops_rules.h"

#include <stdio.h>
#include <string.h>

const ops_budget_alert ops_budget_alerts[] = {
    {"BudgetFallback", "warning", "a replica runs its downstream budget on the local fallback bound"},
    {"BudgetRedisSlow", "warning", "Redis round trips near the budget's timeout"},
    {"BudgetMembersMismatch", "warning", "the replicas scraped and the members in Redis disagree"},
    {"BudgetShareExceeded", "warning", "a bound pool's K summed over replicas is above its share"},
};
const size_t ops_budget_alert_count = sizeof ops_budget_alerts / sizeof ops_budget_alerts[0];

const char *ops_budget_service(const sluice_config *cfg)
{
    return cfg->cluster.service ? cfg->cluster.service : cfg->service.name ? cfg->service.name : "sluice";
}

/* {job="J",service="S"} */
static void sel(ops_buf *b, const char *metric, const char *job, const char *service)
{
    ops_buf_printf(b, "%s{job=", metric);
    ops_promql_str(b, job);
    ops_buf_put(b, ",service=");
    ops_promql_str(b, service);
    ops_buf_put(b, "}");
}

static void seconds(uint64_t ns, char *buf, size_t len)
{
    snprintf(buf, len, "%g", (double)ns / 1e9);
}

void ops_budget_rules(const sluice_config *cfg, const char *job, ops_buf *out)
{
    const sluice_config_cluster *cl = &cfg->cluster;
    const char *service = ops_budget_service(cfg);
    ops_buf name = {0}, svc = {0};
    ops_buf_printf(&name, "sluice-%s-budget", service);
    ops_buf_put(out, "  - name: ");
    ops_yaml_str(out, ops_buf_str(&name));
    ops_buf_put(out, "\n    rules:\n");
    ops_template_text(&svc, service);
    char slow[32], timeout[32], fallback_k[48];
    seconds(cl->redis_timeout_ns / 2, slow, sizeof slow);
    sluice_config_format_duration(cl->redis_timeout_ns, timeout, sizeof timeout);
    if (cl->fallback_k)
        snprintf(fallback_k, sizeof fallback_k, "at most fallback_k = %u", cl->fallback_k);
    else
        snprintf(fallback_k, sizeof fallback_k, "its last fair share");
    for (size_t i = 0; i < ops_budget_alert_count; i++) {
        ops_buf expr = {0}, sum = {0}, desc = {0}, url = {0};
        const char *for_duration = "5m";
        switch (i) {
        case 0:
            ops_buf_put(&expr, "max by (instance) (");
            sel(&expr, "sluice_budget_fallback", job, service);
            ops_buf_put(&expr, ") > 0");
            for_duration = "1m";
            ops_buf_printf(&sum,
                           "%s on {{ $labels.instance }}: downstream budget on its local fallback bound",
                           ops_buf_str(&svc));
            ops_buf_printf(&desc,
                           "Replica {{ $labels.instance }} of %s cannot reach Redis (%s) and runs every pool "
                           "bound to the downstream budget at %s (cluster mode %s). The cluster stays within "
                           "its share, but K no longer follows joins and leaves until Redis answers; the "
                           "replica stays ready%s.",
                           ops_buf_str(&svc), cl->redis ? cl->redis : "", fallback_k,
                           cl->mode == SLUICE_CLUSTER_MODE_STRICT ? "strict" : "share",
                           cl->fallback_unready
                               ? " only if fallback_unready is false (it is true here: it is "
                                 "out of the load balancer)"
                               : "");
            break;
        case 1:
            ops_buf_put(&expr, "max by (instance) (");
            sel(&expr, "sluice_budget_redis_latency_seconds", job, service);
            ops_buf_printf(&expr, ") > %s", slow);
            ops_buf_printf(&sum,
                           "%s on {{ $labels.instance }}: Redis round trips take {{ $value | "
                           "humanizeDuration }}",
                           ops_buf_str(&svc));
            ops_buf_printf(&desc,
                           "Redis calls of the cluster budget take over half of redis_timeout (%s) on "
                           "{{ $labels.instance }}: a little slower and each one counts as a failure and the "
                           "replica falls back to its local bound.",
                           timeout);
            break;
        case 2:
            ops_buf_put(&expr, "count(");
            sel(&expr, "sluice_budget_members", job, service);
            ops_buf_put(&expr, ") != max(");
            sel(&expr, "sluice_budget_members", job, service);
            ops_buf_put(&expr, ")");
            ops_buf_printf(&sum, "%s: replicas scraped and cluster members disagree", ops_buf_str(&svc));
            ops_buf_printf(
                &desc,
                "Prometheus scrapes a different number of replicas of %s than Redis lists as live "
                "members: a replica that cannot register (see BudgetFallback), a replica that died "
                "and whose entry has not expired yet, or replicas that use another key_prefix. K "
                "per replica is share / members, so it is off while this lasts.",
                ops_buf_str(&svc));
            break;
        default:
            ops_buf_put(&expr, "sum by (pool) (");
            sel(&expr, "sluice_budget_pool_k", job, service);
            ops_buf_put(&expr, ") > max by (pool) (");
            sel(&expr, "sluice_budget_pool_share", job, service);
            ops_buf_put(&expr, ")");
            for_duration = "2m";
            ops_buf_printf(&sum, "%s: pool {{ $labels.pool }} runs more K than its share across replicas",
                           ops_buf_str(&svc));
            ops_buf_printf(&desc,
                           "The K of pool {{ $labels.pool }} summed over the replicas of %s is {{ $value }}, "
                           "above the pool's share of the downstream budget: more replicas than the share (a "
                           "pool runs K >= 1), or a replica that kept an old K. In share mode the downstream "
                           "may then get more calls at once than it accepts.",
                           ops_buf_str(&svc));
            break;
        }
        ops_runbook_url(&url, cfg, ops_budget_alerts[i].name, service);
        ops_alert_rule r = {ops_budget_alerts[i].name,
                            ops_buf_str(&expr),
                            for_duration,
                            ops_budget_alerts[i].severity,
                            service,
                            NULL,
                            NULL,
                            ops_buf_str(&sum),
                            ops_buf_str(&desc),
                            ops_buf_str(&url)};
        ops_emit_alert(out, &r);
        ops_buf_free(&expr);
        ops_buf_free(&sum);
        ops_buf_free(&desc);
        ops_buf_free(&url);
    }
    ops_buf_free(&name);
    ops_buf_free(&svc);
}

void ops_budget_runbook(const sluice_config *cfg, const char *listen, ops_buf *o)
{
    const sluice_config_cluster *cl = &cfg->cluster;
    const char *service = ops_budget_service(cfg);
    const char *redis = cl->redis ? cl->redis : "127.0.0.1:6379";
    const char *prefix = cl->key_prefix ? cl->key_prefix : "sluice";
    char anchor[256], timeout[32], member_ttl[32];
    sluice_config_format_duration(cl->redis_timeout_ns, timeout, sizeof timeout);
    sluice_config_format_duration(cl->member_ttl_ns ? cl->member_ttl_ns : 3 * cl->heartbeat_ns, member_ttl,
                                  sizeof member_ttl);
    ops_buf_printf(o, "## Cluster budget of %s\n\n", service);
    ops_buf_printf(o,
                   "The pools bound to `%s` keep the service's share across replicas through Redis at `%s` "
                   "(mode %s, key prefix `%s`, member TTL %s; docs/cluster.md). `sluice budget status "
                   "--redis %s --prefix %s` prints who holds what.\n\n",
                   cl->budget_file ? cl->budget_file : "", redis,
                   cl->mode == SLUICE_CLUSTER_MODE_STRICT ? "strict" : "share", prefix, member_ttl, redis,
                   prefix);
    for (size_t i = 0; i < ops_budget_alert_count; i++) {
        const ops_budget_alert *a = &ops_budget_alerts[i];
        ops_buf_printf(o, "<a id=\"%s\"></a>\n\n### %s: %s\n\n",
                       ops_runbook_anchor(a->name, service, anchor, sizeof anchor), a->name, service);
        ops_buf_printf(o, "**Severity:** %s. **Fires when:** %s.\n\n#### Quick checks (5 min)\n\n",
                       a->severity, a->title);
        ops_buf_printf(o,
                       "1. `curl -s http://%s/health/pools`: the `cluster` line says the replica's rank, "
                       "members and each bound pool's K, or `DEGRADED: fallback` and why.\n",
                       listen);
        ops_buf_printf(o,
                       "2. `sluice budget status --redis %s --prefix %s`: the members Redis sees (with the "
                       "time left on each TTL) and the permits each replica holds.\n",
                       redis, prefix);
        ops_buf_printf(o,
                       "3. `curl -s http://%s/metrics | grep sluice_budget_`: members, fallback, Redis "
                       "latency and errors, K and share per bound pool.\n\n",
                       listen);
        ops_buf_put(o, "#### Mitigations (15 min)\n\n");
        switch (i) {
        case 0:
            ops_buf_printf(o,
                           "- Redis down or unreachable from the pods: restore it (or its network path); "
                           "replicas reconnect with jittered backoff and leave the fallback on their own.\n"
                           "- While it lasts the service is within its share but K does not follow scaling: "
                           "hold deploys and HPA changes of %s.\n\n",
                           service);
            break;
        case 1:
            ops_buf_printf(o,
                           "- Redis is overloaded (`redis-cli --latency`, `INFO commandstats`): move other "
                           "tenants off it, or raise `cluster.redis_timeout` (now %s) if the network path is "
                           "just slow.\n\n",
                           timeout);
            break;
        case 2:
            ops_buf_printf(o,
                           "- A replica that died: its entry leaves within the member TTL (%s); if it "
                           "stays, check that every replica uses key prefix `%s` (clocks do not matter: "
                           "expiries use Redis's).\n- A replica that cannot register: see BudgetFallback "
                           "for it.\n\n",
                           member_ttl, prefix);
            break;
        default:
            ops_buf_put(o, "- More replicas than the share: each bound pool needs K >= 1; scale the service "
                           "down, raise its share in the budget file, or use `mode: strict` (a leased "
                           "semaphore holds the share whatever K is).\n- A replica that kept an old K: "
                           "restart it.\n\n");
            break;
        }
        ops_buf_put(
            o, "#### Long-term fixes\n\n- Run `sluice lint sluice.yaml --budget <budget file> --replicas "
               "N --surge M` in CI: it checks the shares against the services' K with the replicas "
               "and the rolling-update surge.\n\n");
        ops_buf_put(o,
                    "#### Rollback\n\n- It started with a change of the `cluster:` section or of the budget "
                    "file: put the old one back and restart the replicas (the section is read at start; a "
                    "SIGHUP only logs the change).\n\n");
    }
}
