/*
 * tools/sluice/ops_lint.c - the team framework as code: checks of a loaded
 * sluice.yaml that the config loader does not make because they are
 * policy, not syntax.
 *
 * Design: the loader already refuses what can never work (K <= 0, an
 * unbounded queue, bad durations, unknown keys). Lint checks what works
 * but is against the framework of the reference text: K without a reason,
 * no fault guard, a drain that outlives the orchestrator's patience, a
 * submit that waits longer than its caller, K above a downstream's share,
 * shares above a downstream's total, a CPU-bound pool with more workers
 * than CPUs. Each finding carries the values involved and a fix a person
 * can apply, and the file position of the key to change.
 *
 * Ordering: findings are sorted (service-level first, then pool name, then
 * rule id), so output is stable and diffable whatever the file order.
 */
#include "ops_lint.h"
#include "base/rules.h"
#include "ops_rules.h"

#include <limits.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

const ops_lint_rule ops_lint_rules[] = {
    {"k-rationale", "every pool says why its K is what it is (`rationale`)"},
    {"kind-declared", "every pool declares what bounds K (`kind: io | cpu | memory`)"},
    {"queue-bounded", "every pool has a bounded queue (`queue_capacity` > 0)"},
    {"panic-handling", "every pool has the fault guard on (`fault_policy: reraise | recover`)"},
    {"drain-vs-grace", "shutdown_grace + drain (the service budget, or a pool's own shorter drain_timeout) < "
                       "orchestrator_grace"},
    {"submit-timeout-vs-deadline",
     "a blocking pool whose callers declare a deadline has a submit_timeout shorter than it"},
    {"downstream-share", "the K of this service's pools calling a downstream, times replicas + surge, is "
                         "within its share in `downstream_budget` (or the --budget file)"},
    {"downstream-total", "the shares of a downstream add up to no more than its total_limit"},
    {"cpu-bound-k", "a CPU-bound pool has no more workers than CPUs"},
    {"block-bounded",
     "a blocking pool bounds how long a submit may wait (`submit_timeout` or `caller_deadline`)"},
    {"drain-timeout-vs-budget",
     "a pool's drain_timeout is not above the service's drain_budget (it would be cut "
     "to the budget without a word)"},
    {"queue-memory", "the queues' memory (allocated and touched at start) fits the memory limit: each pool's "
                     "under a quarter of it, all pools' under half"},
    {"memory-bound-k",
     "a `kind: memory` pool declares `task_memory`, and K x task_memory stays under half the "
     "memory limit"},
    {"runbook-url",
     "`service.runbook_base_url`, when given, is an absolute URL, so the alerts' runbook links open from "
     "Alertmanager and chat"},
    {"alert-thresholds", "timing alerts can fire: timing is on, and each threshold is below the histogram's "
                         "largest finite bucket"},
    {"batch-blocks",
     "a `queue_discipline: fifo_batch` pool blocks when full (`overflow: block`): a claimed run "
     "can make its queue report full early"},
    {NULL, NULL},
};

static char *xstrdup(const char *s)
{
    return ops_xstrndup(s, strlen(s));
}

SLUICE_PRINTF(6, 7)
static void add(ops_findings *f, const char *pool, const char *rule, const sluice_config_pos *pos,
                const char *fix, const char *fmt, ...)
{
    if (f->n == f->cap) {
        size_t cap = f->cap ? f->cap * 2 : 8;
        f->v = ops_xrealloc(f->v, cap * sizeof *f->v);
        f->cap = cap;
    }
    ops_buf msg = {0};
    va_list ap;
    va_start(ap, fmt);
    ops_buf_vprintf(&msg, fmt, ap);
    va_end(ap);
    ops_finding *x = &f->v[f->n++];
    x->pool = pool ? xstrdup(pool) : NULL;
    x->rule = rule;
    x->message = xstrdup(ops_buf_str(&msg));
    x->fix = xstrdup(fix);
    /* Every finding has a position an editor can jump to: a service-level
     * finding about defaults (no key in the file) points at the top. */
    x->line = pos && pos->line ? pos->line : 1;
    x->column = pos && pos->line ? pos->column : 1;
    ops_buf_free(&msg);
}

void ops_findings_free(ops_findings *f)
{
    for (size_t i = 0; i < f->n; i++) {
        free(f->v[i].pool);
        free(f->v[i].message);
        free(f->v[i].fix);
    }
    free(f->v);
    memset(f, 0, sizeof *f);
}

static int rule_index(const char *id)
{
    for (int i = 0; ops_lint_rules[i].id; i++)
        if (strcmp(ops_lint_rules[i].id, id) == 0)
            return i;
    return 1000;
}

static int cmp_finding(const void *a, const void *b)
{
    const ops_finding *x = a, *y = b;
    if (!x->pool != !y->pool)
        return x->pool ? 1 : -1;
    if (x->pool) {
        int c = strcmp(x->pool, y->pool);
        if (c)
            return c;
    }
    int c = rule_index(x->rule) - rule_index(y->rule);
    if (c)
        return c;
    if (x->line != y->line)
        return x->line < y->line ? -1 : 1;
    return strcmp(x->message, y->message);
}

/* The key's position when it was given, else the pool entry's. */
static const sluice_config_pos *kpos(const sluice_config_pool *p, sluice_pool_key k)
{
    return sluice_config_pool_has(p, k) && p->pos[k].line ? &p->pos[k] : &p->entry_pos;
}

/* An ops-extension key's position when it was given, else the pool entry's. */
static const sluice_config_pos *opos(const sluice_config_pool *p, unsigned k)
{
    const sluice_config_ext_values *x = sluice_config_pool_ext(p, &sluice_config_ext_ops);
    return x && ((x->set >> k) & 1u) && x->pos[k].line ? &x->pos[k] : &p->entry_pos;
}

static const sluice_config_downstream *find_downstream(const sluice_config *cfg, const char *name)
{
    for (size_t i = 0; i < cfg->downstream_count; i++)
        if (cfg->downstreams[i].name && strcmp(cfg->downstreams[i].name, name) == 0)
            return &cfg->downstreams[i];
    return NULL;
}

static uint64_t grace_of(const sluice_config *cfg, const ops_lint_opts *o)
{
    return o->orchestrator_grace_ns ? o->orchestrator_grace_ns : cfg->service.orchestrator_grace_ns;
}

static void check_service(const sluice_config *cfg, const ops_lint_opts *o, ops_findings *out)
{
    char a[32], b[32], c[32];
    const sluice_config_service *s = &cfg->service;
    uint64_t grace = grace_of(cfg, o);
    if (grace && s->shutdown_grace_ns + s->drain_budget_ns >= grace) {
        const sluice_config_pos *pos = s->pos[SLUICE_SK_DRAIN_BUDGET].line
                                           ? &s->pos[SLUICE_SK_DRAIN_BUDGET]
                                           : &s->pos[SLUICE_SK_ORCHESTRATOR_GRACE];
        add(out, NULL, "drain-vs-grace", pos,
            "lower service.drain_budget (or shutdown_grace) so that their sum stays below "
            "orchestrator_grace, "
            "leaving a few seconds to exit; or raise the orchestrator's grace period "
            "(terminationGracePeriodSeconds) "
            "and orchestrator_grace with it",
            "service: shutdown_grace %s + drain_budget %s is not below the orchestrator's grace period %s: "
            "the "
            "orchestrator kills the process before the drain can end",
            sluice_config_format_duration(s->shutdown_grace_ns, a, sizeof a),
            sluice_config_format_duration(s->drain_budget_ns, b, sizeof b),
            sluice_config_format_duration(grace, c, sizeof c));
    }
    char why[512];
    ops_slo sslo = ops_service_slo(cfg);
    if (ops_service_slo_problem(cfg, &sslo, why, sizeof why))
        add(out, NULL, "alert-thresholds", NULL,
            "set service slo_latency to a bound every pool's histogram has (the default buckets share "
            "theirs), "
            "and keep timing on in every pool",
            "%s", why);
    /* Unset is the documented default (a path relative to the repository,
     * which `sluice rules` says on stderr); a value that is given and is
     * not absolute is a mistake. */
    const char *url = s->runbook_base_url;
    if (url && !strstr(url, "://"))
        add(out, NULL, "runbook-url", &s->pos[SLUICE_SK_RUNBOOK_BASE_URL],
            "set service.runbook_base_url to the absolute URL where `sluice runbook` output is served, e.g. "
            "https://git.example.com/team/service/blob/main/ops/runbook.md",
            "service: runbook_base_url \"%s\" is not an absolute URL: the alerts link to \"%s#...\", which "
            "does not open from Alertmanager or chat",
            url, url);
    for (size_t i = 0; i < cfg->downstream_count; i++) {
        const sluice_config_downstream *d = &cfg->downstreams[i];
        unsigned long long sum = 0;
        for (size_t j = 0; j < d->share_count; j++)
            sum += d->shares[j].limit;
        if (sum > d->total_limit)
            add(out, NULL, "downstream-total", &d->pos,
                "lower the shares (or get the downstream's owner to raise total_limit) until they add up to "
                "no more than the total",
                "downstream %s: shares add up to %llu, above its total_limit %u: at peak the services "
                "together "
                "can exceed what it allows",
                d->name, sum, d->total_limit);
    }
}

static void check_pool(const sluice_config *cfg, const sluice_config_pool *p, const ops_lint_opts *o,
                       ops_findings *out)
{
    char a[32], b[32], c[32];
    const char *n = p->name;
    if (!p->rationale || !*p->rationale)
        add(out, n, "k-rationale", kpos(p, SLUICE_PK_WORKERS),
            "add `rationale:` naming the binding constraint, for example \"downstream X allows 200 "
            "concurrent "
            "calls over 4 replicas\" or \"8 cores\"",
            "pool %s: K=%u has no rationale: nobody can tell whether it is still right", n, p->workers);
    if (sluice_config_pool_ops(p)->kind == SLUICE_POOL_KIND_UNSET)
        add(out, n, "kind-declared", &p->entry_pos,
            "add `kind: io` (K from a downstream limit / Little's law), `kind: cpu` (K from the CPU count) "
            "or "
            "`kind: memory` (K from a memory budget)",
            "pool %s: no kind declared, so K cannot be checked against what bounds it", n);
    if (p->queue_capacity == 0)
        add(out, n, "queue-bounded", kpos(p, SLUICE_PK_QUEUE_CAPACITY),
            "set queue_capacity to what the pool can drain within its drain timeout",
            "pool %s: the queue is unbounded: a burst grows memory until the process dies", n);
    if (p->fault_policy == SLUICE_FAULT_OFF)
        add(out, n, "panic-handling", kpos(p, SLUICE_PK_FAULT_POLICY),
            "set `fault_policy: reraise` (log which pool and task, count it, then crash with a core) or "
            "`fault_policy: recover` (replace the worker; only for code that cannot corrupt shared state)",
            "pool %s: fault_policy is off: a SIGSEGV in a task kills the service with no word of which pool "
            "or "
            "task, and is never counted in pool_panicked_total",
            n);
    /* Each pool drains for min(its drain_timeout, drain_budget) (0 = no
     * limit on either side). When the budget caps the pool, the service
     * check covers it; report the pool only when its own timeout governs. */
    uint64_t budget = cfg->service.drain_budget_ns, grace = grace_of(cfg, o);
    if (grace && (budget == 0 || (p->drain_timeout_ns && p->drain_timeout_ns < budget))) {
        if (p->drain_timeout_ns == 0)
            add(out, n, "drain-vs-grace", kpos(p, SLUICE_PK_DRAIN_TIMEOUT),
                "set drain_timeout (or service.drain_budget) below orchestrator_grace minus shutdown_grace",
                "pool %s: no drain_timeout and no service drain_budget: the drain waits without limit, and "
                "the "
                "orchestrator kills the process after %s",
                n, sluice_config_format_duration(grace, a, sizeof a));
        else if (cfg->service.shutdown_grace_ns + p->drain_timeout_ns >= grace)
            add(out, n, "drain-vs-grace", kpos(p, SLUICE_PK_DRAIN_TIMEOUT),
                "lower the pool's drain_timeout below orchestrator_grace minus shutdown_grace",
                "pool %s: shutdown_grace %s + drain_timeout %s is not below the orchestrator's grace period "
                "%s",
                n, sluice_config_format_duration(cfg->service.shutdown_grace_ns, a, sizeof a),
                sluice_config_format_duration(p->drain_timeout_ns, b, sizeof b),
                sluice_config_format_duration(grace, c, sizeof c));
    }
    if (p->caller_deadline_ns && p->overflow == SLUICE_OVERFLOW_BLOCK) {
        if (p->submit_timeout_ns == 0)
            add(out, n, "submit-timeout-vs-deadline", kpos(p, SLUICE_PK_SUBMIT_TIMEOUT),
                "set submit_timeout well below caller_deadline (a quarter of it is a common start), so a "
                "full "
                "pool answers the caller while it can still do something",
                "pool %s: blocking submit waits without limit, but its callers give up after %s", n,
                sluice_config_format_duration(p->caller_deadline_ns, a, sizeof a));
        else if (p->submit_timeout_ns >= p->caller_deadline_ns)
            add(out, n, "submit-timeout-vs-deadline", kpos(p, SLUICE_PK_SUBMIT_TIMEOUT),
                "lower submit_timeout below caller_deadline (a quarter of it is a common start)",
                "pool %s: submit_timeout %s is not shorter than the callers' deadline %s: callers time out "
                "before the pool says no",
                n, sluice_config_format_duration(p->submit_timeout_ns, a, sizeof a),
                sluice_config_format_duration(p->caller_deadline_ns, b, sizeof b));
    }
    if (p->downstream) {
        bool from_budget = o->budget && o->budget->name && strcmp(o->budget->name, p->downstream) == 0;
        const sluice_config_downstream *d = from_budget ? o->budget : find_downstream(cfg, p->downstream);
        if (d) {
            /* A cluster keeps the share of cluster.service (default service.name). */
            const char *svc = cfg->cluster.present && cfg->cluster.service ? cfg->cluster.service
                              : cfg->service.name                          ? cfg->service.name
                                                                           : "sluice";
            const sluice_config_share *share = NULL;
            for (size_t j = 0; j < d->share_count; j++)
                if (d->shares[j].service && strcmp(d->shares[j].service, svc) == 0)
                    share = &d->shares[j];
            /* Every pool of this service calling the same downstream counts. */
            unsigned long long total = 0;
            unsigned weight[64], part[64];
            size_t np = 0, me = 0;
            for (size_t i = 0; i < cfg->pool_count; i++)
                if (cfg->pools[i].downstream && strcmp(cfg->pools[i].downstream, p->downstream) == 0) {
                    total += cfg->pools[i].workers;
                    if (&cfg->pools[i] == p)
                        me = np;
                    if (np < 64)
                        weight[np++] = cfg->pools[i].workers;
                }
            unsigned pods = o->replicas + o->surge;
            char over[64] = "";
            if (o->surge)
                snprintf(over, sizeof over, " + %u surge", o->surge);
            total *= pods;
            if (!share)
                add(out, n, "downstream-share", kpos(p, SLUICE_PK_DOWNSTREAM),
                    from_budget
                        ? "add this service to the shares of the budget file (agreed with the "
                          "downstream's owner), or set cluster.service to the name it has there"
                        : "add this service to the downstream's shares in downstream_budget (agreed with "
                          "its owner)",
                    "pool %s: calls downstream %s, whose %s has no share for service %s", n, p->downstream,
                    from_budget ? "budget file" : "downstream_budget", svc);
            else if (from_budget && cfg->cluster.present) {
                /* Bound by the cluster join: K = this pool's part of the
                 * share / live replicas, at least 1. In share mode more
                 * pods than the part put more than the part in flight. */
                sluice__share_split(share->limit, weight, np, part);
                if (cfg->cluster.mode == SLUICE_CLUSTER_MODE_SHARE && me < np && part[me] < pods)
                    add(out, n, "downstream-share", kpos(p, SLUICE_PK_WORKERS),
                        "raise the service's share in the budget file, run fewer replicas (or a smaller "
                        "surge), or set cluster.mode: strict (a leased semaphore holds the share whatever K "
                        "is)",
                        "pool %s: its part of %s's share of %s is %u (of %u), but %u replica%s%s each run K "
                        ">= "
                        "1: up to %u calls at once, above the part",
                        n, svc, p->downstream, part[me], share->limit, o->replicas,
                        o->replicas == 1 ? "" : "s", over, pods);
            } else if (total > share->limit)
                add(out, n, "downstream-share", kpos(p, SLUICE_PK_WORKERS),
                    "lower workers so that K x replicas (over all pools calling it) fits the share, "
                    "or agree a larger share with the downstream's owner",
                    "pool %s: K=%u; this service's pools calling %s make %llu concurrent calls over %u "
                    "replica%s%s, above its share of %u",
                    n, p->workers, p->downstream, total, o->replicas, o->replicas == 1 ? "" : "s", over,
                    share->limit);
        }
    }
    if (sluice_config_pool_ops(p)->kind == SLUICE_POOL_KIND_CPU && p->workers > o->cpus)
        add(out, n, "cpu-bound-k", kpos(p, SLUICE_PK_WORKERS),
            "set workers to the CPU count (or fewer, leaving room for the service's other threads)",
            "pool %s: CPU-bound with K=%u, above the %u CPUs: extra workers only add context switches", n,
            p->workers, o->cpus);
    if (p->queue_discipline == SLUICE_QUEUE_FIFO_BATCH && p->overflow != SLUICE_OVERFLOW_BLOCK)
        add(out, n, "batch-blocks", kpos(p, SLUICE_PK_OVERFLOW),
            "use `overflow: block` with fifo_batch, or `queue_discipline: fifo` for this policy",
            "pool %s: queue_discipline fifo_batch with overflow %s: a run a worker has claimed keeps its "
            "places until it runs, so the queue can report full with places free beyond it, and this "
            "policy then %s",
            n, sluice_overflow_name(p->overflow),
            p->overflow == SLUICE_OVERFLOW_REJECT ? "refuses submits a fifo pool would take"
            : p->overflow == SLUICE_OVERFLOW_DROP_OLDEST
                ? "drops tasks a fifo pool would keep"
                : "runs tasks on the caller a fifo pool would queue");
}

/* "512 MiB": a byte count in binary units for messages. */
static const char *fmt_bytes(unsigned long long n, char *buf, size_t len)
{
    static const char *const units[] = {"B", "KiB", "MiB", "GiB", "TiB", "PiB", "EiB"};
    double v = (double)n;
    int u = 0;
    while (v >= 1024 && u < 6) {
        v /= 1024;
        u++;
    }
    snprintf(buf, len, u ? "%.1f %s" : "%.0f %s", v, units[u]);
    return buf;
}

static void unfireable_finding(void *ud, const sluice_config_pool *p, const sluice_config_pos *pos,
                               const char *fix, const char *message)
{
    add(ud, p->name, "alert-thresholds", pos, fix, "pool %s: %s", p->name, message);
}

static void check_pool_more(const sluice_config *cfg, const sluice_config_pool *p, const ops_lint_opts *o,
                            ops_findings *out)
{
    char a[32], b[32];
    const char *n = p->name;
    if (p->overflow == SLUICE_OVERFLOW_BLOCK && p->submit_timeout_ns == 0 && p->caller_deadline_ns == 0)
        add(out, n, "block-bounded", kpos(p, SLUICE_PK_OVERFLOW),
            "set submit_timeout (how long a producer may wait for queue space), or declare the callers' "
            "caller_deadline and give tasks that deadline, or choose overflow reject / drop_oldest",
            "pool %s: overflow block with no submit_timeout and no caller_deadline: when the pool falls "
            "behind, producers wait without limit and the stall spreads upstream",
            n);
    uint64_t budget = cfg->service.drain_budget_ns;
    if (budget && p->drain_timeout_ns > budget)
        add(out, n, "drain-timeout-vs-budget", kpos(p, SLUICE_PK_DRAIN_TIMEOUT),
            "lower the pool's drain_timeout to at most service.drain_budget, or raise the budget (keeping "
            "shutdown_grace + drain_budget below orchestrator_grace)",
            "pool %s: drain_timeout %s is above the service's drain_budget %s: the pool gets only the "
            "budget at shutdown",
            n, sluice_config_format_duration(p->drain_timeout_ns, a, sizeof a),
            sluice_config_format_duration(budget, b, sizeof b));
    if (o->memory_limit_bytes) {
        size_t q = sluice_pool_queue_bytes(p->queue_capacity);
        if (q > o->memory_limit_bytes / 4) {
            char m1[32], m2[32];
            add(out, n, "queue-memory", kpos(p, SLUICE_PK_QUEUE_CAPACITY),
                "size the queue to what the pool can work off within its drain timeout (K x drain time / "
                "task time), not to the worst burst; shed or reject the rest",
                "pool %s: queue_capacity %zu takes %s at start, above a quarter of the %s memory limit "
                "(%s)",
                n, p->queue_capacity, fmt_bytes(q, m1, sizeof m1),
                fmt_bytes(o->memory_limit_bytes, m2, sizeof m2), o->memory_limit_source);
        }
    }
    const sluice_config_ops_keys *ok = sluice_config_pool_ops(p);
    if (ok->kind == SLUICE_POOL_KIND_MEMORY) {
        char m1[32], m2[32], m3[32];
        if (ok->task_memory == 0)
            add(out, n, "memory-bound-k", opos(p, SLUICE_OPS_KIND),
                "declare task_memory (the memory one running task holds, e.g. 64Mi; measure the peak RSS "
                "growth per task) so K can be checked against the memory limit",
                "pool %s: kind memory without task_memory: nothing says how much memory K=%u tasks hold", n,
                p->workers);
        else if (o->memory_limit_bytes &&
                 (unsigned long long)ok->task_memory * p->workers > o->memory_limit_bytes / 2)
            add(out, n, "memory-bound-k", kpos(p, SLUICE_PK_WORKERS),
                "lower workers to half the memory limit / task_memory or fewer (see sluice plan "
                "--task-memory "
                "--memory-budget), or raise the limit",
                "pool %s: K=%u tasks of %s hold %s, above half of the %s memory limit (%s): a burst of large "
                "tasks ends in an OOM kill",
                n, p->workers, fmt_bytes(ok->task_memory, m1, sizeof m1),
                fmt_bytes((unsigned long long)ok->task_memory * p->workers, m2, sizeof m2),
                fmt_bytes(o->memory_limit_bytes, m3, sizeof m3), o->memory_limit_source);
    }
    ops_unfireable_alerts(p, unfireable_finding, out);
    char why[512];
    ops_slo slo = ops_pool_slo(p);
    if (ops_slo_problem(p, &slo, why, sizeof why))
        add(out, n, "alert-thresholds", &p->entry_pos,
            "set slo_latency to one of the pool's histogram bounds, or add the value to histogram_buckets",
            "pool %s: %s", n, why);
}

void ops_lint_run(const sluice_config *cfg, const ops_lint_opts *opts, ops_findings *out)
{
    ops_lint_opts o = *opts;
    if (o.cpus == 0)
        o.cpus = 1;
    if (o.replicas == 0)
        o.replicas = 1;
    check_service(cfg, &o, out);
    unsigned long long queues = 0;
    for (size_t i = 0; i < cfg->pool_count; i++) {
        check_pool(cfg, &cfg->pools[i], &o, out);
        check_pool_more(cfg, &cfg->pools[i], &o, out);
        size_t q = sluice_pool_queue_bytes(cfg->pools[i].queue_capacity);
        queues = queues + q < queues ? ULLONG_MAX : queues + q;
    }
    if (o.memory_limit_bytes && queues > o.memory_limit_bytes / 2) {
        char m1[32], m2[32];
        add(out, NULL, "queue-memory", NULL,
            "shrink the largest queues (see sluice plan for the queue a pool needs), or raise the memory "
            "limit",
            "service: the pools' queues take %s at start together, above half of the %s memory limit (%s)",
            fmt_bytes(queues, m1, sizeof m1), fmt_bytes(o.memory_limit_bytes, m2, sizeof m2),
            o.memory_limit_source);
    }
    if (out->n > 1)
        qsort(out->v, out->n, sizeof *out->v, cmp_finding);
}
