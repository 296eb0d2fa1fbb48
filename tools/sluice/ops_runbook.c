/*
 * tools/sluice/ops_runbook.c - the Markdown runbook for the pools of one
 * sluice.yaml: one entry per alert per pool.
 *
 * Design: the entries follow the reference text's playbook shape (quick
 * checks in 5 minutes, mitigations in 15, long-term fixes, rollback), but
 * are written for Sluice and filled with the pool's own facts: its name,
 * K and the rationale for it, queue and overflow policy, downstream, the
 * admin address to curl, and the environment variable that overrides K.
 * An on-call engineer who has never seen the service can act on an entry
 * without looking anything up.
 *
 * Anchors: each entry starts with an explicit <a id="..."></a> made by
 * ops_runbook_anchor from the same (alert, pool) pair the rules generator
 * uses for runbook_url, and the heading "### <Alert>: <pool>" slugs to the
 * same id on GitHub/GitLab for simple pool names. A test checks that every
 * runbook_url in the rules has its anchor here.
 */
#include "ops_rules.h"

#include <ctype.h>
#include <stdlib.h>
#include <string.h>

/* SLUICE_POOL_<NAME>_ as the config layer spells it (docs/config.md). */
static void env_prefix(ops_buf *b, const char *pool)
{
    ops_buf_put(b, "SLUICE_POOL_");
    for (const char *c = pool; *c; c++) {
        char u = (char)toupper((unsigned char)*c);
        if (!((u >= 'A' && u <= 'Z') || (u >= '0' && u <= '9')))
            u = '_';
        ops_buf_putn(b, &u, 1);
    }
    ops_buf_put(b, "_");
}

static void one_line(ops_buf *b, const char *s)
{
    for (const char *c = s; *c; c++)
        ops_buf_putn(b, (*c == '\n' || *c == '\r') ? " " : c, 1);
}

typedef struct facts {
    const sluice_config *cfg;
    const sluice_config_pool *p;
    const char *name;
    const char *listen;
    const char *service;
    const char *rationale;
    const char *downstream; /* "its downstream" when none declared */
    char env[160];          /* SLUICE_POOL_X_WORKERS */
    ops_thresholds t;
} facts;

static void entry_head(ops_buf *o, const facts *f, ops_alert_kind kind, const char *fires_when)
{
    const ops_alert_info *a = ops_alert(kind);
    char anchor[256];
    ops_buf_printf(o, "<a id=\"%s\"></a>\n\n### %s: %s\n\n",
                   ops_runbook_anchor(a->name, f->name, anchor, sizeof anchor), a->name, f->name);
    ops_buf_printf(o, "**Severity:** %s. **Fires when:** %s\n\n", a->severity, fires_when);
}

static void dashboard_hint(ops_buf *o, const facts *f)
{
    ops_buf_printf(o, "Open the dashboard \"Sluice pools: %s\" with pool = `%s`", f->service, f->name);
}

static void saturated(ops_buf *o, const facts *f)
{
    char fw[256];
    snprintf(fw, sizeof fw, "more than %g%% of the %u workers have been busy for %s.", f->t.saturation * 100,
             f->p->workers, f->t.for_duration);
    entry_head(o, f, OPS_ALERT_SATURATED, fw);
    ops_buf_put(o, "#### Quick checks (5 min)\n\n1. ");
    dashboard_hint(o, f);
    ops_buf_put(o, ". Is **Submit rate** above its usual level? Then it is a traffic spike.\n");
    ops_buf_printf(o, "2. Is **Task duration p99** up? Then tasks got slower: check %s first.\n",
                   f->downstream);
    ops_buf_printf(
        o,
        "3. `curl -s http://%s/debug/pools` and look at pool `%s`: running vs capacity, queue depth, "
        "waiting submitters, and how long each worker has been running.\n",
        f->listen, f->name);
    ops_buf_printf(
        o,
        "4. If every worker has been running for long: `curl -s http://%s/debug/pools/stacks`. All "
        "blocked in the same call means a stuck downstream or lock, not load.\n\n",
        f->listen);
    ops_buf_put(o, "#### Mitigations (15 min)\n\n");
    ops_buf_printf(o, "- Downstream unhealthy: fail over or call its owner. Do not raise K against a sick "
                      "downstream; it only adds load to it.\n");
    ops_buf_printf(o, "- Genuine spike: scale out replicas, keeping K x replicas within what %s allows.\n",
                   f->downstream);
    ops_buf_printf(
        o,
        "- K too low for the new normal: K is %u because: %s. If that limit allows more, raise K live: "
        "set `workers` in sluice.yaml (or `%s=<K>`), run `sluice lint` on it, then `kill -HUP` the "
        "service; the reload log line says `workers %u -> <K> (applied)`.\n\n",
        f->p->workers, f->rationale, f->env, f->p->workers);
    ops_buf_put(o, "#### Long-term fixes\n\n");
    ops_buf_put(o, "- Re-plan K with `sluice plan --rate <peak/s> --latency-mean <d> --latency-p99 <d> "
                   "--replicas <n>`, and record the new rationale in sluice.yaml.\n");
    ops_buf_put(o, "- Add admission control upstream if spikes are routine.\n\n");
    ops_buf_put(o, "#### Rollback\n\n");
    ops_buf_printf(
        o,
        "- A recent deploy changed the pool or its tasks: revert it and watch running/capacity fall.\n"
        "- K was raised live and made things worse (downstream errors): set `workers: %u` back and "
        "`kill -HUP`.\n\n",
        f->p->workers);
}

static void panic_entry(ops_buf *o, const facts *f)
{
    char fw[256];
    snprintf(fw, sizeof fw, "a task of the pool panicked in the last 5 minutes (fault_policy %s).",
             sluice_fault_mode_name(f->p->fault_policy));
    entry_head(o, f, OPS_ALERT_PANIC, fw);
    ops_buf_put(o, "#### Quick checks (5 min)\n\n");
    ops_buf_printf(o,
                   "1. Find the panic in the service log: the panic line names pool `%s`, the task label and "
                   "carries the backtrace. Note the file:line.\n",
                   f->name);
    ops_buf_put(o, "2. Identify the input that triggered it (task label, request id near the line).\n");
    if (f->p->fault_policy == SLUICE_FAULT_RERAISE || f->p->fault_policy == SLUICE_FAULT_OFF)
        ops_buf_printf(o,
                       "3. fault_policy is %s: a SIGSEGV/SIGBUS kills the process. Check restarts and core "
                       "dumps, not just the log.\n\n",
                       sluice_fault_mode_name(f->p->fault_policy));
    else
        ops_buf_put(o,
                    "3. fault_policy is recover: faulting workers are replaced. Repeated faults mean memory "
                    "may be corrupt: treat the process as suspect.\n\n");
    ops_buf_put(o, "#### Mitigations (15 min)\n\n");
    ops_buf_put(o, "- One bad input: filter it at ingress.\n- A recent change introduced it: revert.\n");
    if (f->p->fault_policy == SLUICE_FAULT_RECOVER)
        ops_buf_put(o, "- Faults keep coming under recover: restart the pods one at a time.\n");
    ops_buf_put(o, "\n#### Long-term fixes\n\n- Validate the input that caused it; add a regression test.\n"
                   "- Review similar code paths for the same mistake.\n\n");
    ops_buf_put(o, "#### Rollback\n\n- Revert the deploy that introduced the panic.\n\n");
    ops_buf_put(
        o, "#### Escalation\n\n- More than one panic a minute, or the process is crash-looping: page the "
           "on-call lead.\n\n");
}

static void dropping(ops_buf *o, const facts *f)
{
    char fw[256];
    if (f->t.loss_ratio == 0)
        snprintf(fw, sizeof fw, "the pool (overflow block) lost any task for %s.", f->t.for_duration);
    else
        snprintf(fw, sizeof fw, "more than %g%% of offered tasks were lost for %s.", f->t.loss_ratio * 100,
                 f->t.for_duration);
    entry_head(o, f, OPS_ALERT_DROPPING, fw);
    char d[32];
    ops_buf_put(o, "#### Quick checks (5 min)\n\n1. ");
    dashboard_hint(o, f);
    ops_buf_put(o, ", panel **Drop rate**: which kind? *rejected* (refused at submit: queue full or submit "
                   "timeout), *dropped* (oldest evicted), *shed* (deadline passed while queued).\n");
    ops_buf_printf(o, "2. The pool's overflow policy is `%s`, queue capacity %zu",
                   sluice_overflow_name(f->p->overflow), f->p->queue_capacity);
    if (f->p->submit_timeout_ns)
        ops_buf_printf(o, ", submit timeout %s",
                       sluice_config_format_duration(f->p->submit_timeout_ns, d, sizeof d));
    ops_buf_put(o, ". Is PoolSaturated firing too? Then losses are the symptom; follow that entry.\n");
    ops_buf_put(o, "3. Shed tasks: callers' deadlines are shorter than the queue wait. Check **Submit wait "
                   "p99**.\n\n");
    ops_buf_put(o,
                "#### Mitigations (15 min)\n\n- Saturated: as for PoolSaturated (scale out, raise K within "
                "the downstream's limit).\n- Unbounded incoming work: rate-limit or shed upstream, where the "
                "client can be told to retry.\n\n");
    ops_buf_put(
        o, "#### Long-term fixes\n\n- Admission control upstream.\n- Re-plan K and the queue with `sluice "
           "plan`; decide with the product owner whether this path may drop (error budget) or must "
           "block.\n\n");
    ops_buf_put(o,
                "#### Rollback\n\n- A deploy changed the overflow policy, queue capacity or timeouts: revert "
                "it.\n\n");
}

static void slow_tasks(ops_buf *o, const facts *f)
{
    char fw[256], d[32];
    snprintf(fw, sizeof fw, "the p99 task duration has been above %s for %s.",
             sluice_config_format_duration(f->t.slow_task_p99_ns, d, sizeof d), f->t.for_duration);
    entry_head(o, f, OPS_ALERT_SLOW_TASKS, fw);
    ops_buf_put(o, "#### Quick checks (5 min)\n\n");
    ops_buf_printf(o,
                   "1. Is %s healthy (its dashboard, its error rate)? Slow tasks are usually a slow "
                   "downstream.\n",
                   f->downstream);
    ops_buf_put(o, "2. ");
    dashboard_hint(o, f);
    ops_buf_put(o,
                ", panel **Task duration**: is p50 up too (everything slower) or only p99 (a tail: retries, "
                "timeouts, one bad shard)?\n");
    ops_buf_printf(o, "3. `curl -s http://%s/debug/pools/stacks`: where are the long-running workers?\n",
                   f->listen);
    ops_buf_put(o, "4. Was there a deploy in the last hour?\n\n");
    ops_buf_printf(o,
                   "#### Mitigations (15 min)\n\n- Downstream degraded: fail over, or open a circuit breaker "
                   "so tasks fail fast instead of holding workers.\n- Deploy-related: roll back.\n\n");
    ops_buf_put(o, "#### Long-term fixes\n\n- Give every task a deadline (`sluice_ctx`) shorter than the "
                   "callers'.\n- If the new latency is the normal, re-plan K (`sluice plan`) and update "
                   "`alert_slow_task_p99` in sluice.yaml.\n\n");
    ops_buf_put(o, "#### Rollback\n\n- Revert the deploy that made tasks slower.\n\n");
}

static void submit_wait(ops_buf *o, const facts *f)
{
    char fw[256], d[32];
    snprintf(fw, sizeof fw, "tasks have waited more than %s (p99) from submit to start for %s.",
             sluice_config_format_duration(f->t.submit_wait_p99_ns, d, sizeof d), f->t.for_duration);
    entry_head(o, f, OPS_ALERT_SUBMIT_WAIT, fw);
    ops_buf_put(o, "#### Quick checks (5 min)\n\n1. ");
    dashboard_hint(o, f);
    ops_buf_put(o, ": is the pool saturated (running = capacity)? Is the queue depth growing, and is submit "
                   "rate above completion rate?\n2. Check **Task duration**: slower tasks hold workers "
                   "longer, and the queue grows behind them.\n");
    if (f->p->caller_deadline_ns)
        ops_buf_printf(o,
                       "3. The callers' deadline is %s: waits near it turn into shed tasks and timeouts "
                       "upstream.\n\n",
                       sluice_config_format_duration(f->p->caller_deadline_ns, d, sizeof d));
    else
        ops_buf_put(o, "3. Upstream timeouts: are callers giving up while their tasks wait?\n\n");
    ops_buf_printf(
        o,
        "#### Mitigations (15 min)\n\n- Scale out, or raise K live (`workers` in sluice.yaml or `%s`, "
        "then `kill -HUP`) within the limit behind K=%u: %s.\n- Shed load upstream if neither is "
        "possible.\n\n",
        f->env, f->p->workers, f->rationale);
    ops_buf_put(o,
                "#### Long-term fixes\n\n- `sluice plan` prints the p99 and p99.9 queue wait for a K (Erlang "
                "C); size K so that the wait fits the SLO.\n\n");
    ops_buf_put(o, "#### Rollback\n\n- A deploy lowered K or slowed tasks: revert it.\n\n");
}

static void metrics_missing(ops_buf *o, const facts *f)
{
    char fw[256];
    snprintf(fw, sizeof fw, "Prometheus has had no `pool_capacity{name=\"%s\"}` series for %s.", f->name,
             f->t.for_duration);
    entry_head(o, f, OPS_ALERT_METRICS_MISSING, fw);
    ops_buf_put(o, "#### Quick checks (5 min)\n\n");
    ops_buf_printf(o, "1. Is the service up? `curl -s http://%s/health/live`.\n", f->listen);
    ops_buf_printf(o,
                   "2. `curl -s http://%s/metrics | grep 'pool_capacity{name=\"%s\"'`: does it export the "
                   "pool?\n",
                   f->listen, f->name);
    ops_buf_put(o, "3. Prometheus *Status > Targets*: is the target up, and do its labels match?\n");
    ops_buf_put(o, "4. Was the pool renamed or removed in sluice.yaml by a recent deploy?\n\n");
    ops_buf_put(o, "#### Mitigations (15 min)\n\n- /metrics not served: restart the pod.\n- Scrape config "
                   "wrong: fix it. Until then no other alert of this pool can fire.\n\n");
    ops_buf_put(o, "#### Long-term fixes\n\n- Keep a metrics smoke test in CI.\n- When a pool is removed on "
                   "purpose, regenerate the rules (`sluice rules`) so this alert goes with it.\n\n");
    ops_buf_put(o, "#### Rollback\n\n- Revert the config change that renamed or removed the pool.\n\n");
}

static void stalled(ops_buf *o, const facts *f)
{
    char fw[320], d[32];
    snprintf(fw, sizeof fw,
             "all %u workers are busy, no task has finished for %s, and the oldest running task is older "
             "than %s.",
             f->p->workers, f->t.stall_window,
             sluice_config_format_duration(f->t.stall_after_ns, d, sizeof d));
    entry_head(o, f, OPS_ALERT_STALLED, fw);
    ops_buf_put(o, "A stall is not load: the tasks are stuck, so nothing finishes and the duration "
                   "histograms see nothing (their p99 goes blank). Find what they are stuck on.\n\n");
    ops_buf_put(o, "#### Quick checks (5 min)\n\n");
    ops_buf_printf(o,
                   "1. `curl -s http://%s/debug/pools/stacks`: are the workers of `%s` all blocked in the "
                   "same call? A socket read or connect means %s stopped answering; a mutex or condition "
                   "wait means a deadlock in the service.\n",
                   f->listen, f->name, f->downstream);
    ops_buf_printf(o,
                   "2. `curl -s http://%s/debug/pools`: the age of each running task. All started at "
                   "about the same time points at one event (a downstream failover, a deploy).\n",
                   f->listen);
    ops_buf_printf(o, "3. Is %s up? Its own dashboard and error rate.\n", f->downstream);
    ops_buf_printf(o,
                   "4. `curl -s http://%s/health/pools`: which pools of this service are affected? A "
                   "shared downstream stalls several at once.\n\n",
                   f->listen);
    ops_buf_put(o, "#### Mitigations (15 min)\n\n");
    ops_buf_printf(o,
                   "- Downstream stuck: fail over, or call its owner. Restarting this service frees the "
                   "workers but not the downstream; with no per-call timeout the new workers stall the "
                   "same way.\n"
                   "- Deadlock (workers wait on each other or on a lock): take the stacks for the "
                   "incident record, then restart the pods one at a time.\n"
                   "- Work queued behind the stall (queue %zu, overflow %s) is handed back at drain "
                   "with the reason `abandoned`, so a restart loses nothing the service persists.\n\n",
                   f->p->queue_capacity, sluice_overflow_name(f->p->overflow));
    ops_buf_put(o, "#### Long-term fixes\n\n- Every call to a downstream gets a timeout shorter than the "
                   "task's deadline (`sluice_ctx`), so a dead downstream fails tasks instead of holding "
                   "workers.\n- A circuit breaker (`sluice_breaker`) in front of the downstream turns a "
                   "stall into fast failures.\n\n");
    ops_buf_put(o, "#### Rollback\n\n- A deploy changed the downstream client (timeouts, pool sizes): "
                   "revert it.\n\n");
}

/* The anchor, heading and "Fires when" of one SLO burn entry: `whose` SLO
 * ("the pool's", "the service's ... over all its pools") is burning its
 * budget fast (critical) or slowly (warning). */
static void slo_burn_head(ops_buf *o, const char *alert, const char *name, const char *whose,
                          const ops_slo *slo, bool slow)
{
    char anchor[256], win[32], lat[32];
    ops_format_window(slo->window_ns, win, sizeof win);
    ops_buf_printf(o, "<a id=\"%s\"></a>\n\n### %s: %s\n\n",
                   ops_runbook_anchor(alert, name, anchor, sizeof anchor), alert, name);
    ops_buf_printf(o, "**Severity:** %s. **Fires when:** %s (%.10g%% over %s", slow ? "warning" : "critical",
                   whose, slo->objective * 100, win);
    if (slo->latency_ns)
        ops_buf_printf(o, "; latency: tasks under %s",
                       sluice_config_format_duration(slo->latency_ns, lat, sizeof lat));
    ops_buf_printf(o, ") is burning its error budget %s (the `slo` label says which).\n\n",
                   slow ? "faster than it can afford over days (1x over 3d and 6h)"
                        : "fast enough to be gone within days (14.4x over 1h and 5m, or 6x over 6h and 30m)");
}

/* What an SLO covers, in the entry's "Fires when". */
static const char *slo_kinds(const ops_slo *slo)
{
    return slo->latency_ns ? "availability or latency" : "availability";
}

/* The SLO burn entries of the service (slo_objective in `service:`). */
static void service_slo_entries(ops_buf *o, const char *service, const ops_slo *slo)
{
    char whose[96];
    snprintf(whose, sizeof whose, "the service's %s SLO over all its pools", slo_kinds(slo));
    for (int a = 0; a < 2; a++) {
        slo_burn_head(o, a ? "ServiceSLOBurnSlow" : "ServiceSLOBurnFast", service, whose, slo, a);
        ops_buf_put(
            o, "#### Quick checks (5 min)\n\n1. Which pool burns it? Compare `sluice_slo:error_ratio:rate1h` "
               "per pool (pools with their own SLO), or the dashboard's **Drop rate** and **Completion "
               "rate** for each pool: a service SLO is usually missed by one pool.\n"
               "2. Follow that pool's entries below (PoolDropping, PoolPanic, PoolSaturated, PoolStalled).\n"
               "3. `sluice_slo:service_error_ratio:rate6h`: how much budget is left at this rate?\n\n");
        ops_buf_put(
            o,
            "#### Mitigations (15 min)\n\n- Stop the burn in the pool it comes from (roll back, fail over "
            "its downstream, shed load upstream).\n- The slow burn is a ticket, the fast burn a page.\n\n");
        ops_buf_put(
            o, "#### Long-term fixes\n\n- Give the pools that matter their own SLOs, so the page names the "
               "pool.\n- If the SLO is missed by design, renegotiate it instead of muting the alert.\n\n");
        ops_buf_put(o, "#### Rollback\n\n- The burn started with a deploy: `kubectl rollout undo "
                       "deployment/<name>`.\n\n");
    }
}

/* The SLO burn entries of a pool with slo_objective. */
static void slo_entries(ops_buf *o, const facts *f, const ops_slo *slo)
{
    char whose[96];
    snprintf(whose, sizeof whose, "the pool's %s SLO", slo_kinds(slo));
    for (int a = 0; a < 2; a++) {
        slo_burn_head(o, a ? "PoolSLOBurnSlow" : "PoolSLOBurnFast", f->name, whose, slo, a);
        ops_buf_put(o, "#### Quick checks (5 min)\n\n1. ");
        dashboard_hint(o, f);
        ops_buf_put(o,
                    ": for `slo=\"availability\"`, which outcome is it (**Drop rate**: rejected, dropped, "
                    "shed; **Completion rate**: failed, panicked)? Follow that alert's entry (PoolDropping, "
                    "PoolPanic, PoolSaturated).\n");
        ops_buf_printf(o,
                       "2. For `slo=\"latency\"`: **Task duration** p99 against the threshold; is %s slow?\n",
                       f->downstream);
        ops_buf_put(o, "3. `sluice_slo:error_ratio:rate1h` and `rate6h` in Prometheus: how much budget is "
                       "left at this rate?\n\n");
        ops_buf_put(o,
                    "#### Mitigations (15 min)\n\n- Stop the burn where it comes from (roll back, fail over "
                    "the downstream, shed load upstream).\n- A page at night that can wait: the slow burn "
                    "is a ticket; the fast burn is not.\n\n");
        ops_buf_put(o, "#### Long-term fixes\n\n- If the SLO is missed by design, renegotiate it (and "
                       "`slo_objective` in sluice.yaml) instead of muting the alert.\n\n");
        ops_buf_put(o, "#### Rollback\n\n- The burn started with a deploy: revert it.\n\n");
    }
}

static void pool_facts(ops_buf *o, const facts *f)
{
    const sluice_config_pool *p = f->p;
    char d[32];
    ops_buf_printf(o, "## Pool %s\n\n| fact | value |\n|---|---|\n", f->name);
    ops_buf_printf(o, "| K (workers) | %u |\n| why this K | ", p->workers);
    ops_md_text(o, f->rationale);
    ops_buf_printf(o, " |\n| kind | %s |\n| queue capacity | %zu |\n| overflow | %s |\n",
                   sluice_pool_kind_name(sluice_config_pool_ops(p)->kind), p->queue_capacity,
                   sluice_overflow_name(p->overflow));
    ops_buf_printf(o, "| submit timeout | %s |\n",
                   p->submit_timeout_ns ? sluice_config_format_duration(p->submit_timeout_ns, d, sizeof d)
                                        : "none (waits)");
    ops_buf_printf(o, "| drain timeout | %s |\n",
                   sluice_config_format_duration(sluice_config_pool_drain_timeout(f->cfg, p), d, sizeof d));
    ops_buf_printf(o, "| fault policy | %s |\n| downstream | ", sluice_fault_mode_name(p->fault_policy));
    ops_md_text(o, p->downstream ? p->downstream : "(not declared)");
    ops_buf_printf(o, " |\n| alert thresholds | saturation %g, loss %g, for %s", f->t.saturation,
                   f->t.loss_ratio, f->t.for_duration);
    if (f->t.rationale) {
        ops_buf_put(o, " (");
        ops_md_text(o, f->t.rationale);
        ops_buf_put(o, ")");
    }
    ops_buf_printf(o, " |\n| K override | `%s` |\n| admin | `http://%s/debug/pools` |\n", f->env, f->listen);
    ops_buf uid = {0};
    ops_dashboard_uid(f->cfg, &uid);
    ops_buf_printf(o, "| dashboard | `/d/%s?var-pool=%s` on your Grafana (ops/dashboard.json) |\n\n",
                   ops_buf_str(&uid), f->name);
    ops_buf_free(&uid);
}

static void tenant_starved(ops_buf *o, const facts *f)
{
    char fw[256];
    snprintf(fw, sizeof fw,
             "a tenant has had tasks queued and none finished for " OPS_TENANT_STARVED_WINDOW
             " while other tenants' tasks finished, for %s.",
             f->t.for_duration);
    entry_head(o, f, OPS_ALERT_TENANT_STARVED, fw);
    ops_buf_put(o, "The fair queue serves tenants by weight; a starved tenant is held back by its own "
                   "limits or outweighed, not by a slow pool (then every tenant would wait).\n\n");
    ops_buf_put(o, "#### Quick checks (5 min)\n\n");
    ops_buf_printf(o,
                   "1. `curl -s http://%s/debug/pools`: under `%s`, `tenants`: the alert's tenant's "
                   "`queued`, `running`, `weight`, `running_limit` and `strict`. `running` at a strict "
                   "`running_limit` holds its queue by design.\n",
                   f->listen, f->name);
    ops_buf_put(o, "2. ");
    dashboard_hint(o, f);
    ops_buf_put(o, ", panels **Tenant queued and running** and **Tenant queue wait p99**: is one tenant "
                   "holding most workers (a large weight, or long tasks)?\n");
    ops_buf_put(o, "3. Did a tenant's weight or limits change in sluice.yaml (`tenants:`) in the last "
                   "deploy?\n\n");
    ops_buf_put(o, "#### Mitigations (15 min)\n\n- Raise the starved tenant's `weight`, or lift a strict "
                   "`running_limit` (`tenants:` in sluice.yaml, then a restart; or live in code with "
                   "`sluice_pool_tenant_set`).\n- Cap the tenant that holds the workers with a "
                   "`running_limit`.\n\n");
    ops_buf_put(o, "#### Long-term fixes\n\n- Ring-fence the largest tenants in a tier of their own (a pool "
                   "with `tier:`, routed by `sluice_router`), so no weight can take their capacity or give "
                   "it away.\n\n");
    ops_buf_put(o, "#### Rollback\n\n- Revert the config change to the pool's `tenants:`.\n\n");
}

static void probe_failing(ops_buf *o, const facts *f)
{
    char fw[320], every[32], timeout[32];
    const sluice_config_pool *p = f->p;
    sluice_config_format_duration(p->probe_every_ns, every, sizeof every);
    sluice_config_format_duration(p->probe_timeout_ns ? p->probe_timeout_ns : 5000000000ull, timeout,
                                  sizeof timeout);
    snprintf(
        fw, sizeof fw,
        "the no-op probe task the pool runs every %s has been refused, handed back or not run within %s, "
        "for %s (`pool_probe_healthy == 0`).",
        every, timeout, OPS_PROBE_FAILING_FOR);
    entry_head(o, f, OPS_ALERT_PROBE_FAILING, fw);
    ops_buf_put(o,
                "A probe does nothing: when it cannot run, no task can. This is the guide's continuous "
                "health check (P40); it catches a deadlocked pool, every worker stuck on a slow downstream, "
                "and submits being refused.\n\n");
    ops_buf_put(o, "#### Quick checks (5 min)\n\n");
    ops_buf_printf(o,
                   "1. `curl -s http://%s/health/pools`: the line of `%s` says why (`did not run within`, "
                   "`queue full`, `handed back`, `submit refused`) and how many probes in a row failed.\n",
                   f->listen, f->name);
    ops_buf_printf(
        o,
        "2. Is PoolStalled or PoolSaturated firing too? A stall (all workers stuck) or a full queue "
        "explains the probe; follow that entry. `curl -s http://%s/debug/pools/stacks` shows where "
        "the workers are.\n",
        f->listen);
    ops_buf_put(o, "3. The service log: `probe failed:` lines, and `autotune` lines (did the controller just "
                   "shrink K?).\n\n");
    ops_buf_put(o, "#### Mitigations (15 min)\n\n");
    ops_buf_printf(
        o,
        "- Workers stuck on %s: fail it over or call its owner; restarting frees the workers but a "
        "dead downstream stalls the new ones the same way.\n"
        "- K pinned or shrunk too far by auto-tune: pin it by hand (`sluice_service_control_pin`, "
        "or set `workers` and `kill -HUP`: a reload pins K) while you look.\n"
        "- Deadlock: take the stacks for the record, then restart the pods one at a time.\n\n",
        f->downstream);
    ops_buf_put(
        o, "#### Long-term fixes\n\n- Every downstream call gets a timeout shorter than the task's "
           "deadline, so a dead downstream fails tasks instead of holding workers.\n- "
           "`probe_affects_ready: true` takes a pod that cannot run tasks out of the load balancer.\n\n");
    ops_buf_put(o, "#### Rollback\n\n- The probes began failing with a deploy: revert it.\n\n");
}

typedef void (*entry_fn)(ops_buf *, const facts *);
static const entry_fn entries[OPS_ALERT_COUNT_] = {
    [OPS_ALERT_SATURATED] = saturated,
    [OPS_ALERT_PANIC] = panic_entry,
    [OPS_ALERT_DROPPING] = dropping,
    [OPS_ALERT_SLOW_TASKS] = slow_tasks,
    [OPS_ALERT_SUBMIT_WAIT] = submit_wait,
    [OPS_ALERT_METRICS_MISSING] = metrics_missing,
    [OPS_ALERT_STALLED] = stalled,
    [OPS_ALERT_TENANT_STARVED] = tenant_starved,
    [OPS_ALERT_PROBE_FAILING] = probe_failing,
};

/* The service-wide entry for SluiceTargetDown. */
static void target_down(ops_buf *o, const char *service, const char *listen, const char *job)
{
    char anchor[256];
    ops_buf_printf(o, "## Service %s\n\n", service);
    ops_buf_printf(o, "<a id=\"%s\"></a>\n\n### %s: %s\n\n",
                   ops_runbook_anchor(OPS_ALERT_TARGET_DOWN, service, anchor, sizeof anchor),
                   OPS_ALERT_TARGET_DOWN, service);
    ops_buf_printf(o,
                   "**Severity:** critical. **Fires when:** Prometheus has failed to scrape an instance of "
                   "job `%s` for %s.\n\n",
                   job, OPS_TARGET_DOWN_FOR);
    ops_buf_put(o, "#### Quick checks (5 min)\n\n");
    ops_buf_put(o, "1. `kubectl get pods -o wide` (the alert's `instance` is the pod's address): is the pod "
                   "running, restarting (RESTARTS), or gone?\n");
    ops_buf_put(o, "2. `kubectl describe pod <pod>`: OOMKilled, failed liveness probe, eviction?\n");
    ops_buf_printf(o,
                   "3. `kubectl exec <pod> -- curl -s -m 2 http://%s/health/live`: does the admin server "
                   "answer inside the pod? If it does, the problem is the network path or the scrape "
                   "config, not the service.\n",
                   listen);
    ops_buf_put(o, "4. `kubectl logs <pod> --previous`: the last lines before a crash (a panic line, a "
                   "drain report).\n\n");
    ops_buf_put(o, "#### Mitigations (15 min)\n\n- Crash-looping after a deploy: roll back.\n- OOMKilled: "
                   "see the memory notes of each pool below (queue capacity x task size); raise the limit "
                   "or lower the queue.\n- Only the scrape fails: fix the ServiceMonitor / scrape config; "
                   "the service itself is fine.\n\n");
    ops_buf_put(o, "#### Long-term fixes\n\n- Keep the admin server's liveness path cheap and separate "
                   "from readiness (it is: /health/live never depends on the pools).\n\n");
    ops_buf_put(o, "#### Rollback\n\n- The pods started failing after a deploy or a config change: "
                   "`kubectl rollout undo deployment/<name>`.\n\n");
}

/* The service-wide entries for the sync primitives' alerts. */
static void sync_entries(ops_buf *o, const char *service)
{
    for (size_t i = 0; i < ops_sync_alert_count; i++) {
        const ops_sync_alert *a = &ops_sync_alerts[i];
        char anchor[256];
        ops_buf_printf(o, "<a id=\"%s\"></a>\n\n### %s: %s\n\n",
                       ops_runbook_anchor(a->name, service, anchor, sizeof anchor), a->name, service);
        ops_buf_printf(o,
                       "**Severity:** %s. **Fires when:** %s. The alert's `name` label is the object's "
                       "name in code.\n\n",
                       a->severity, a->fires_when);
        ops_buf_printf(o, "#### Quick checks (5 min)\n\n%s\n#### Mitigations (15 min)\n\n%s\n", a->checks,
                       a->mitigations);
        ops_buf_printf(o, "#### Long-term fixes\n\n%s\n#### Rollback\n\n%s\n", a->long_term, a->rollback);
    }
}

/* The incidents no single alert names (the reference text's playbook):
 * symptom-first entries, with this service's facts. */
static void incident_head(ops_buf *o, const char *id, const char *title, const char *symptom)
{
    ops_buf_printf(o, "<a id=\"incident-%s\"></a>\n\n### Incident: %s\n\n**Symptom:** %s\n\n", id, title,
                   symptom);
}

static void incidents(ops_buf *o, const sluice_config *cfg, const char **pools, size_t n, const char *listen)
{
    char mem[64];
    unsigned long long queue_bytes = 0;
    for (size_t i = 0; i < cfg->pool_count; i++)
        queue_bytes += sluice_pool_queue_bytes(cfg->pools[i].queue_capacity);
    snprintf(mem, sizeof mem, "%.1f MiB", (double)queue_bytes / (1024.0 * 1024.0));
    ops_buf_put(o, "## Incidents without an alert of their own\n\n");

    incident_head(o, "memory-growth", "memory growth or OOMKilled",
                  "the pod's memory climbs steadily, or the pod restarts with reason OOMKilled.");
    ops_buf_printf(o,
                   "#### Quick checks (5 min)\n\n1. `kubectl describe pod <pod>`: `Last State: Terminated, "
                   "Reason: OOMKilled`?\n2. Queue depth over the last hours (dashboard panel **Queue depth "
                   "and waiting submitters**, or `pool_queue_depth`): did a queue fill? Every queue of this "
                   "service is bounded; together they take %s at start (`sluice lint --memory-limit` checks "
                   "this against the pod's limit).\n3. If the queues are flat, the memory is per task or "
                   "elsewhere: tasks that hold buffers while they wait on a slow downstream grow with K x "
                   "task size.\n\n",
                   mem);
    ops_buf_put(o,
                "#### Mitigations (15 min)\n\n- Raise the pod's memory limit to stop the restarts while you "
                "look.\n- Lower `queue_capacity` of the pool whose queue filled (overflow `reject` or "
                "`drop_oldest` sheds instead of holding).\n- Lower K of a pool whose tasks are large.\n\n");
    ops_buf_put(o,
                "#### Long-term fixes\n\n- Measure per-task memory and declare `kind: memory` pools sized "
                "from a memory budget.\n- Load-test to the OOM threshold and keep the result in the pool's "
                "rationale.\n\n");
    ops_buf_put(o, "#### Rollback\n\n- A deploy raised a queue or K, or made tasks larger: revert it.\n\n");

    incident_head(o, "exhausted-at-startup", "pool exhausted at startup",
                  "right after a pod starts, a pool is saturated and submits wait or are refused, then it "
                  "recovers.");
    ops_buf_printf(o,
                   "#### Quick checks (5 min)\n\n1. `curl -s http://%s/health/ready`: does the pod report "
                   "ready before its pools can take traffic? It should not receive traffic until then.\n"
                   "2. Is K tiny for the traffic a new pod receives (pools:",
                   listen);
    for (size_t i = 0; i < n; i++)
        ops_buf_printf(o, " %s K=%u%s", pools[i], sluice_config_find_pool(cfg, pools[i])->workers,
                       i + 1 < n ? "," : "");
    ops_buf_put(o, ")?\n3. Worker churn panel: spawns per minute high at start? Cold workers start on "
                   "demand; `prewarm` starts them before traffic.\n\n");
    ops_buf_put(o,
                "#### Mitigations (15 min)\n\n- Slow the traffic ramp to new pods (load balancer slow start, "
                "readiness delay).\n- Set `prewarm: true` on pools with expensive worker start.\n- Scale "
                "out so each new pod gets a smaller share.\n\n");
    ops_buf_put(o, "#### Long-term fixes\n\n- Warm caches and connections before readiness turns 200.\n\n");
    ops_buf_put(o, "#### Rollback\n\n- A deploy lowered K or removed `prewarm`: revert it.\n\n");

    incident_head(o, "unresponsive-after-deploy", "pool unresponsive after a deploy",
                  "after a deploy, a pool stops finishing tasks or is far slower than before.");
    ops_buf_printf(
        o,
        "#### Quick checks (5 min)\n\n1. Did the config change? `curl -s http://%s/debug/pools` "
        "shows each pool's K, queue and timeouts in force; compare with the previous release's "
        "sluice.yaml.\n2. Did a dependency change (a client library, the downstream's version)?\n"
        "3. `curl -s http://%s/debug/pools/stacks`: are the workers stuck in one call? Then follow "
        "PoolStalled for that pool.\n\n",
        listen, listen);
    ops_buf_put(o,
                "#### Mitigations (15 min)\n\n- Roll back the deploy: `kubectl rollout undo "
                "deployment/<name>`.\n- If one pod is wedged and the others are fine: delete that pod.\n\n");
    ops_buf_put(o, "#### Long-term fixes\n\n- Canary deploys that watch PoolStalled and PoolSlowTasks before "
                   "going wide.\n- `sluice lint` in CI on every sluice.yaml change.\n\n");
    ops_buf_put(o, "#### Rollback\n\n- `kubectl rollout undo deployment/<name>`.\n\n");

    incident_head(o, "stall-deadlock", "stall or deadlock",
                  "running stuck at K, the queue growing, nothing completing, p99 blank or unbounded.");
    ops_buf_put(o, "#### Quick checks (5 min)\n\n1. This is what PoolStalled alerts on; its entry for the "
                   "pool has the steps. `pool_oldest_running_seconds` shows how long the tasks have been "
                   "stuck.\n2. Stacks (`/debug/pools/stacks`): all workers in a network read means a hung "
                   "downstream; in a mutex or condition wait, a deadlock.\n\n");
    ops_buf_put(o,
                "#### Mitigations (15 min)\n\n- Hung downstream: fail over or call its owner.\n- Deadlock: "
                "keep the stacks for the record, then restart the pods one at a time.\n\n");
    ops_buf_put(o, "#### Long-term fixes\n\n- A timeout on every downstream call, a circuit breaker, and one "
                   "lock order.\n\n");
    ops_buf_put(o, "#### Rollback\n\n- A deploy changed locking or a client's timeouts: revert it.\n\n");
}

void ops_runbook_generate(const sluice_config *cfg, const char *source_name, ops_buf *out)
{
    const char *service = cfg->service.name ? cfg->service.name : "sluice";
    const char *listen = cfg->service.listen ? cfg->service.listen : "127.0.0.1:9464";
    const sluice_config_pool **pools = ops_sorted_pools(cfg);
    char anchor[256];

    ops_buf_printf(out, "# Runbook: the pools of %s\n\n", service);
    ops_buf_printf(out,
                   "Generated by `sluice runbook %s` from the service's sluice.yaml; do not edit by hand: "
                   "change the config and regenerate. One entry per alert of `sluice rules`; each alert's "
                   "`runbook_url` points at its entry's anchor.\n\n",
                   source_name);
    ops_buf_printf(
        out,
        "The `curl` commands below talk to the admin server at `%s`, which listens inside the "
        "pod. From a workstation, forward it first: `kubectl -n <namespace> port-forward "
        "pod/<pod> %s` (the pod is the alert's `instance`; `kubectl get pods -o wide | grep "
        "<ip>` finds it), or run the command in the pod with `kubectl exec <pod> -- curl ...`.\n\n",
        listen, strrchr(listen, ':') ? strrchr(listen, ':') + 1 : listen);
    ops_buf_put(out, "| pool | K | alerts |\n|---|---|---|\n");
    for (size_t i = 0; i < cfg->pool_count; i++) {
        ops_buf_printf(out, "| %s | %u | ", pools[i]->name, pools[i]->workers);
        for (int k = 0; k < OPS_ALERT_COUNT_; k++)
            if (ops_alert_applies((ops_alert_kind)k, pools[i]))
                ops_buf_printf(out, "%s[%s](#%s)", k ? ", " : "", ops_alert((ops_alert_kind)k)->name,
                               ops_runbook_anchor(ops_alert((ops_alert_kind)k)->name, pools[i]->name, anchor,
                                                  sizeof anchor));
        ops_buf_put(out, " |\n");
    }
    ops_buf_put(out, "\n");
    target_down(out, service, listen, ops_prometheus_job(cfg));
    sync_entries(out, service);
    ops_slo sslo = ops_service_slo(cfg);
    if (sslo.objective > 0)
        service_slo_entries(out, service, &sslo);
    if (cfg->cluster.present)
        ops_budget_runbook(cfg, listen, out);

    {
        const char **names = ops_xrealloc(NULL, (cfg->pool_count ? cfg->pool_count : 1) * sizeof *names);
        for (size_t i = 0; i < cfg->pool_count; i++)
            names[i] = pools[i]->name;
        incidents(out, cfg, names, cfg->pool_count, listen);
        free(names);
    }

    for (size_t i = 0; i < cfg->pool_count; i++) {
        facts f;
        memset(&f, 0, sizeof f);
        f.cfg = cfg;
        f.p = pools[i];
        f.name = pools[i]->name;
        f.listen = listen;
        f.service = service;
        /* Config text on one line: a newline in a rationale must not end a
         * Markdown list item or fake a heading or anchor. */
        ops_buf why = {0}, env = {0}, ds = {0};
        one_line(&why, pools[i]->rationale && *pools[i]->rationale
                           ? pools[i]->rationale
                           : "(no rationale recorded in sluice.yaml)");
        f.rationale = ops_buf_str(&why);
        f.t = ops_pool_thresholds(pools[i]);
        env_prefix(&env, f.name);
        snprintf(f.env, sizeof f.env, "%sWORKERS", ops_buf_str(&env));
        ops_buf_free(&env);
        if (pools[i]->downstream) {
            ops_buf_put(&ds, "the downstream `");
            one_line(&ds, pools[i]->downstream);
            ops_buf_put(&ds, "`");
        } else
            ops_buf_put(&ds, "the downstream the tasks call");
        f.downstream = ops_buf_str(&ds);
        pool_facts(out, &f);
        for (int k = 0; k < OPS_ALERT_COUNT_; k++)
            if (ops_alert_applies((ops_alert_kind)k, pools[i]))
                entries[k](out, &f);
        ops_slo slo = ops_pool_slo(pools[i]);
        if (slo.objective > 0)
            slo_entries(out, &f, &slo);
        ops_buf_free(&ds);
        ops_buf_free(&why);
    }
    free(pools);
}
