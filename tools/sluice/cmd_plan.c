/*
 * tools/sluice/cmd_plan.c - `sluice plan`: capacity planning for one pool.
 *
 * Purpose: turn the numbers an engineer knows (peak rate, task latency,
 * the SLO, replicas, a downstream's limit) into K per pod and for the
 * cluster, the constraint that binds it, the queue wait to expect at that
 * K, and the error budget, so the `rationale:` in sluice.yaml can cite a
 * calculation instead of a guess.
 *
 * Design: the arithmetic is in plan_math.c (unit-tested against published
 * values); this file gathers inputs (flags, optionally a pool of a
 * sluice.yaml for K, kind and the downstream share), decides, and prints
 * text or JSON. The recommendation is
 *     K = max(ceil(rate/pod x mean latency x headroom),   Little's law
 *             smallest K whose SLO-quantile wait fits)    Erlang C
 * capped by the downstream's share per pod and, for CPU-bound pools, the
 * CPU count; the binding constraint is whichever set K. Queue figures are
 * for the peak rate without headroom (what the pool will see), in the
 * M/M/c model: exponential service times, so treat them as an estimate
 * for latencies with a heavy tail.
 *
 * Exit: 0 when the recommended K keeps up with the peak and meets the SLO;
 * 1 when a cap makes that impossible (the output says which); 2 bad input.
 */
#include <errno.h>
#include <getopt.h>
#include <math.h>
#include <stdbool.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "sluice/cpu.h"
#include "commands.h"
#include "ops_cli.h"
#include "plan_math.h"

static const char HELP[] =
    "usage: sluice plan --rate N --latency-mean D [--latency-p99 D] [--slo 'P%<D'] [--replicas N]\n"
    "                   [--downstream-limit N] [--headroom X] [--kind io|cpu|memory] [--cpus N]\n"
    "                   [--budget-share F] [--task-memory SIZE --memory-budget SIZE]\n"
    "                   [--config FILE --pool NAME] [--json]\n"
    "\n"
    "Capacity plan for one pool: K per pod and for the cluster by Little's law, the\n"
    "binding constraint, the queue wait at that K (Erlang C, M/M/c): probability of\n"
    "waiting, mean, p99 and p99.9 wait; the smallest K that meets the SLO; and the\n"
    "error budget (per 30-day month) with the pool's drop-rate cap. Queue figures\n"
    "assume M/M/c (Poisson arrivals, exponential task times): an estimate when task\n"
    "times have a heavy tail. docs/ops.md explains every number.\n"
    "\n"
    "  --rate N              peak arrivals per second, whole service (all replicas)\n"
    "  --latency-mean D      mean task time, e.g. 40ms (Little's law uses the mean)\n"
    "  --latency-p99 D       p99 task time; the SLO's queue-wait budget is its\n"
    "                        latency minus this (default: the mean)\n"
    "  --slo 'P%<D'          e.g. '99.9%<500ms'; or 'P%' for the error budget only\n"
    "  --replicas N          pods sharing the load and the downstream (default 1)\n"
    "  --downstream-limit N  concurrent calls the downstream allows this service,\n"
    "                        all replicas together (default: no limit, or the\n"
    "                        service's share in downstream_budget with --config)\n"
    "  --headroom X          plan for X times the peak (default 2)\n"
    "  --kind K              io (default), cpu (K capped by --cpus) or memory\n"
    "  --cpus N              CPUs per pod for --kind cpu (default: the CPUs this\n"
    "                        process may use: affinity and cgroup quota)\n"
    "  --task-memory SIZE    memory one running task holds, e.g. 64Mi (with\n"
    "                        --memory-budget: K per pod is capped at budget / task)\n"
    "  --memory-budget SIZE  memory per pod the pool's running tasks may use, e.g. 2Gi\n"
    "                        (a kind memory pool's binding constraint)\n"
    "  --budget-share F      share of the error budget the pool's drops may use\n"
    "                        (default 0.5)\n"
    "  --config FILE --pool NAME  take the pool's K, kind and downstream share from\n"
    "                        sluice.yaml and compare the plan with the configured K\n"
    "  --json                print JSON instead of text\n"
    "  -h, --help            this text\n"
    "\n"
    "Exit status: 0 the plan keeps up with the peak and meets the SLO; 1 a limit\n"
    "makes that impossible (the output says which); 2 bad flags or input.\n";

typedef struct plan_in {
    double rate, mean_s, p99_s, headroom, budget_share;
    double slo_target;    /* 0 = none */
    double slo_latency_s; /* 0 = no latency part */
    unsigned replicas, downstream_limit, cpus, configured_k;
    unsigned long long task_memory, memory_budget; /* bytes; 0 = not given */
    sluice_pool_kind kind;
    const char *pool;
} plan_in;

static int bad(const char *flag, const char *v, const char *want)
{
    fprintf(stderr, "sluice plan: %s must be %s, got \"%s\"\n", flag, want, v);
    return -1;
}

static int parse_pos_double(const char *flag, const char *v, double min, double *out)
{
    char *end;
    errno = 0;
    double d = strtod(v, &end);
    if (!*v || *end || errno || !isfinite(d) || d < min || (min == 0 && d <= 0))
        return bad(flag, v, min > 0 ? "a number >= 1" : "a number > 0");
    *out = d;
    return 0;
}

static int parse_uint(const char *flag, const char *v, unsigned *out)
{
    char *end;
    errno = 0;
    unsigned long n = strtoul(v, &end, 10);
    if (!*v || *end || errno || v[0] == '-' || n == 0 || n > 100000000ul)
        return bad(flag, v, "a whole number from 1 to 100000000");
    *out = (unsigned)n;
    return 0;
}

static int parse_dur(const char *flag, const char *v, double *out)
{
    uint64_t ns;
    if (sluice_config_parse_duration(v, &ns) || ns == 0)
        return bad(flag, v, "a duration above zero such as 40ms, 1.5s");
    *out = (double)ns / 1e9;
    return 0;
}

/* "99.9%<500ms", "99.9%", "0.999<500ms". */
static int parse_slo(const char *v, double *target, double *lat)
{
    char buf[64];
    if (strlen(v) >= sizeof buf)
        return bad("--slo", v, "like '99.9%<500ms'");
    strcpy(buf, v);
    char *lt = strchr(buf, '<');
    if (lt)
        *lt++ = '\0';
    char *pct = strchr(buf, '%');
    bool percent = pct != NULL;
    if (pct) {
        if (pct[1])
            return bad("--slo", v, "like '99.9%<500ms'");
        *pct = '\0';
    }
    char *end;
    double t = strtod(buf, &end);
    if (!*buf || *end || !isfinite(t))
        return bad("--slo", v, "like '99.9%<500ms'");
    if (percent || t > 1)
        t /= 100;
    if (!(t > 0 && t < 1))
        return bad("--slo", v, "a target between 0% and 100% exclusive, like '99.9%<500ms'");
    *target = t;
    *lat = 0;
    if (lt) {
        uint64_t ns;
        if (sluice_config_parse_duration(lt, &ns) || ns == 0)
            return bad("--slo", v, "a latency above zero after '<', like '99.9%<500ms'");
        *lat = (double)ns / 1e9;
    }
    return 0;
}

static void fmt_s(char *buf, size_t len, double s)
{
    if (!isfinite(s))
        snprintf(buf, len, "unbounded");
    else if (s == 0)
        snprintf(buf, len, "0");
    else if (s < 1e-3)
        snprintf(buf, len, "%.1fus", s * 1e6);
    else if (s < 1)
        snprintf(buf, len, "%.1fms", s * 1e3);
    else
        snprintf(buf, len, "%.2fs", s);
}

static int from_config(const char *path, const char *pool, plan_in *in, bool have_limit)
{
    sluice_config *cfg;
    if (ops_cli_load("plan", path, false, &cfg))
        return -1;
    const sluice_config_pool *p = NULL;
    for (size_t i = 0; i < cfg->pool_count; i++)
        if (strcmp(cfg->pools[i].name, pool) == 0)
            p = &cfg->pools[i];
    if (!p) {
        fprintf(stderr, "sluice plan: %s has no pool named \"%s\"\n", path, pool);
        sluice_config_free(cfg);
        return -1;
    }
    in->configured_k = p->workers;
    if (sluice_config_pool_ops(p)->kind != SLUICE_POOL_KIND_UNSET)
        in->kind = sluice_config_pool_ops(p)->kind;
    if (!have_limit && p->downstream) {
        const char *svc = cfg->service.name ? cfg->service.name : "sluice";
        for (size_t i = 0; i < cfg->downstream_count; i++) {
            const sluice_config_downstream *d = &cfg->downstreams[i];
            if (strcmp(d->name, p->downstream) != 0)
                continue;
            for (size_t j = 0; j < d->share_count; j++)
                if (strcmp(d->shares[j].service, svc) == 0)
                    in->downstream_limit = d->shares[j].limit;
        }
    }
    sluice_config_free(cfg);
    return 0;
}

typedef struct plan_out {
    double rate_pod, little_cluster, little_pod_h;
    unsigned k_little, k_slo, k_cap, k_rec;
    bool slo_reachable, ok;
    const char *binding;
    char why[256];
    plan_wait wait;
    double slo_budget_s, slo_wait_at_k;
    plan_budget budget;
} plan_out;

static void compute(const plan_in *in, plan_out *o)
{
    memset(o, 0, sizeof *o);
    o->rate_pod = in->rate / in->replicas;
    o->little_cluster = plan_littles_law(in->rate, in->mean_s, 1);
    o->little_pod_h = plan_littles_law(o->rate_pod, in->mean_s, in->headroom);
    o->k_little = plan_ceil_workers(o->little_pod_h);
    unsigned k = o->k_little;
    o->binding = "traffic x headroom (Little's law)";
    o->slo_reachable = true;
    if (in->slo_target > 0 && in->slo_latency_s > 0) {
        o->slo_budget_s = in->slo_latency_s - in->p99_s;
        unsigned kmax = o->k_little * 4 + 1000;
        o->slo_reachable = o->slo_budget_s >= 0 && plan_smallest_k(o->rate_pod, in->mean_s, in->slo_target,
                                                                   o->slo_budget_s, kmax, &o->k_slo);
        if (o->slo_reachable && o->k_slo > k) {
            k = o->k_slo;
            o->binding = "the SLO's queue-wait budget (Erlang C)";
        }
    }
    o->k_cap = 0;
    if (in->downstream_limit) {
        unsigned cap = in->downstream_limit / in->replicas;
        if (cap == 0)
            cap = 1;
        o->k_cap = cap;
        if (cap < k) {
            k = cap;
            o->binding = "the downstream limit";
        }
    }
    if (in->task_memory && in->memory_budget) {
        unsigned long long fit = in->memory_budget / in->task_memory;
        unsigned cap = fit == 0 ? 1 : fit > 100000000ull ? 100000000u : (unsigned)fit;
        if (o->k_cap == 0 || cap < o->k_cap)
            o->k_cap = cap;
        if (cap < k) {
            k = cap;
            o->binding = "the memory budget";
        }
    }
    if (in->kind == SLUICE_POOL_KIND_CPU && in->cpus && in->cpus < k) {
        k = in->cpus;
        o->k_cap = in->cpus;
        o->binding = "the CPU count";
    }
    o->k_rec = k;
    o->wait = plan_mmc_wait(k, o->rate_pod, in->mean_s);
    o->ok = o->wait.stable;
    if (!o->wait.stable)
        snprintf(o->why, sizeof o->why,
                 "K=%u per pod (set by %s) cannot keep up: the peak keeps %.6g workers per pod busy "
                 "(%.6g/s x %.6gs); raise the limit, make tasks faster, or shed load",
                 k, o->binding, o->rate_pod * in->mean_s, o->rate_pod, in->mean_s);
    if (in->slo_target > 0 && in->slo_latency_s > 0) {
        o->slo_wait_at_k = plan_wait_quantile(k, o->rate_pod, in->mean_s, in->slo_target);
        if (o->slo_budget_s < 0) {
            o->ok = false;
            snprintf(o->why, sizeof o->why, "the task p99 alone exceeds the SLO latency: no K can meet it");
        } else if (!(o->slo_wait_at_k <= o->slo_budget_s)) {
            o->ok = false;
            if (o->why[0] == '\0')
                snprintf(o->why, sizeof o->why, "at K=%u the queue wait misses the SLO's budget (%s)", k,
                         o->slo_reachable ? "the limit is below the K the SLO needs" : "no K found");
        }
    }
    if (in->slo_target > 0)
        o->budget = plan_error_budget(in->slo_target, in->rate, in->budget_share);
}

static void print_text(const plan_in *in, const plan_out *o)
{
    char a[32], b[32], c[32];
    fmt_s(a, sizeof a, in->mean_s);
    fmt_s(b, sizeof b, in->p99_s);
    printf("Plan%s%s: %.6g tasks/s at peak over %u replica%s (%.6g/s per pod), task time mean %s, p99 %s, "
           "headroom %.3gx\n\n",
           in->pool ? " for pool " : "", in->pool ? in->pool : "", in->rate, in->replicas,
           in->replicas == 1 ? "" : "s", o->rate_pod, a, b, in->headroom);
    printf("Little's law (K = rate x mean latency)\n");
    printf("  busy workers at peak, cluster        %10.2f\n", o->little_cluster);
    char label[96];
    snprintf(label, sizeof label, "per pod with %.3gx headroom", in->headroom);
    printf("  %-36s %10.2f\n", label, o->little_pod_h);
    printf("  K per pod                            %10u\n", o->k_little);
    printf("  K for the cluster                    %10u\n", o->k_little * in->replicas);
    if (o->k_slo)
        printf("  smallest K per pod meeting the SLO   %10u\n", o->k_slo);
    if (in->downstream_limit) {
        snprintf(label, sizeof label, "downstream limit %u / %u replica%s", in->downstream_limit,
                 in->replicas, in->replicas == 1 ? "" : "s");
        printf("  %-36s %10u per pod\n", label, in->downstream_limit / in->replicas);
    }
    if (in->kind == SLUICE_POOL_KIND_CPU)
        printf("  CPUs per pod (kind cpu)              %10u\n", in->cpus);
    if (in->task_memory && in->memory_budget)
        printf("  memory budget / task memory          %10llu per pod (%llu / %llu bytes)\n",
               in->memory_budget / in->task_memory, in->memory_budget, in->task_memory);
    printf("\nRecommended K per pod: %u (cluster %u); binding constraint: %s\n", o->k_rec,
           o->k_rec * in->replicas, o->binding);
    if (in->configured_k)
        printf("Configured K: %u (%s)\n", in->configured_k,
               in->configured_k == o->k_rec  ? "matches"
               : in->configured_k > o->k_rec ? "above the plan"
                                             : "below the plan");
    printf("\nQueue wait at K=%u, %.6g/s per pod (Erlang C, M/M/c)\n", o->k_rec, o->rate_pod);
    if (!o->wait.stable) {
        printf("  load %.2f Erlangs >= K: the queue grows without bound at peak\n", o->wait.load);
    } else {
        fmt_s(a, sizeof a, o->wait.mean_wait);
        printf("  load                                 %10.2f Erlangs (%.1f%% utilization)\n", o->wait.load,
               o->wait.utilization * 100);
        printf("  P(a task waits)                      %10.4f\n", o->wait.p_wait);
        printf("  mean wait                            %10s\n", a);
        fmt_s(a, sizeof a, o->wait.p99_wait);
        fmt_s(b, sizeof b, o->wait.p999_wait);
        printf("  p99 wait                             %10s\n", a);
        printf("  p99.9 wait                           %10s\n", b);
    }
    if (in->slo_target > 0 && in->slo_latency_s > 0) {
        fmt_s(a, sizeof a, in->slo_latency_s);
        fmt_s(b, sizeof b, o->slo_budget_s < 0 ? 0 : o->slo_budget_s);
        fmt_s(c, sizeof c, o->slo_wait_at_k);
        printf(
            "\nSLO %.6g%% under %s: queue-wait budget %s (SLO latency - task p99); wait at the SLO quantile "
            "%s: %s\n",
            in->slo_target * 100, a, b, c, o->ok ? "met" : "NOT met");
    }
    if (in->slo_target > 0) {
        printf("\nError budget (SLO %.6g%%, 30-day month)\n", in->slo_target * 100);
        printf("  budget                               %10.4g%% = %.1f min/month\n", o->budget.fraction * 100,
               o->budget.minutes_per_month);
        printf("  requests allowed to miss per month   %10.0f\n", o->budget.bad_per_month);
        snprintf(label, sizeof label, "drop-rate cap (%.3g of the budget)", o->budget.pool_share);
        printf("  %-36s %10.4g%% = %.4g drops/s at peak\n", label, o->budget.drop_fraction_cap * 100,
               o->budget.drops_per_second_cap);
    }
    if (!o->ok)
        printf("\nPlan fails: %s.\n", o->why);
}

static void print_json(const plan_in *in, const plan_out *o)
{
    ops_buf out = {0};
    ops_jw w;
    ops_jw_init(&w, &out);
    ops_jw_obj(&w, NULL);
    ops_jw_obj(&w, "input");
    ops_jw_str(&w, "pool", in->pool);
    ops_jw_num(&w, "rate", in->rate);
    ops_jw_num(&w, "latency_mean_s", in->mean_s);
    ops_jw_num(&w, "latency_p99_s", in->p99_s);
    ops_jw_num(&w, "slo_target", in->slo_target);
    ops_jw_num(&w, "slo_latency_s", in->slo_latency_s);
    ops_jw_int(&w, "replicas", in->replicas);
    ops_jw_int(&w, "downstream_limit", in->downstream_limit);
    ops_jw_num(&w, "headroom", in->headroom);
    ops_jw_str(&w, "kind",
               sluice_pool_kind_name(in->kind == SLUICE_POOL_KIND_UNSET ? SLUICE_POOL_KIND_IO : in->kind));
    ops_jw_int(&w, "cpus", in->cpus);
    ops_jw_int(&w, "task_memory_bytes", (long long)in->task_memory);
    ops_jw_int(&w, "memory_budget_bytes", (long long)in->memory_budget);
    ops_jw_end_obj(&w);
    ops_jw_obj(&w, "littles_law");
    ops_jw_num(&w, "busy_workers_cluster", o->little_cluster);
    ops_jw_num(&w, "per_pod_with_headroom", o->little_pod_h);
    ops_jw_int(&w, "k_per_pod", o->k_little);
    ops_jw_int(&w, "k_cluster", (long long)o->k_little * in->replicas);
    ops_jw_end_obj(&w);
    ops_jw_int(&w, "k_slo", o->k_slo);
    ops_jw_int(&w, "k_recommended", o->k_rec);
    ops_jw_int(&w, "k_recommended_cluster", (long long)o->k_rec * in->replicas);
    ops_jw_int(&w, "k_configured", in->configured_k);
    ops_jw_str(&w, "binding_constraint", o->binding);
    ops_jw_obj(&w, "queue_wait");
    ops_jw_bool(&w, "stable", o->wait.stable);
    ops_jw_num(&w, "load_erlangs", o->wait.load);
    ops_jw_num(&w, "utilization", o->wait.utilization);
    ops_jw_num(&w, "p_wait", o->wait.p_wait);
    ops_jw_num(&w, "mean_s", o->wait.mean_wait);
    ops_jw_num(&w, "p99_s", o->wait.p99_wait);
    ops_jw_num(&w, "p999_s", o->wait.p999_wait);
    ops_jw_num(&w, "slo_budget_s", o->slo_budget_s);
    ops_jw_num(&w, "at_slo_quantile_s", o->slo_wait_at_k);
    ops_jw_end_obj(&w);
    ops_jw_obj(&w, "error_budget");
    ops_jw_num(&w, "fraction", o->budget.fraction);
    ops_jw_num(&w, "minutes_per_month", o->budget.minutes_per_month);
    ops_jw_num(&w, "bad_requests_per_month", o->budget.bad_per_month);
    ops_jw_num(&w, "pool_share", o->budget.pool_share);
    ops_jw_num(&w, "drop_fraction_cap", o->budget.drop_fraction_cap);
    ops_jw_num(&w, "drops_per_second_cap", o->budget.drops_per_second_cap);
    ops_jw_end_obj(&w);
    ops_jw_bool(&w, "ok", o->ok);
    ops_jw_str(&w, "problem", o->ok ? NULL : o->why);
    ops_jw_end_obj(&w);
    fputs(ops_buf_str(&out), stdout);
    ops_buf_free(&out);
}

int sluice_cmd_plan(int argc, char **argv)
{
    enum {
        O_RATE = 256,
        O_MEAN,
        O_P99,
        O_SLO,
        O_REPL,
        O_DOWN,
        O_HEAD,
        O_KIND,
        O_CPUS,
        O_SHARE,
        O_CONFIG,
        O_POOL,
        O_JSON,
        O_TASK_MEM,
        O_MEM_BUDGET
    };
    static const struct option longopts[] = {
        {"help", no_argument, NULL, 'h'},
        {"rate", required_argument, NULL, O_RATE},
        {"latency-mean", required_argument, NULL, O_MEAN},
        {"latency-p99", required_argument, NULL, O_P99},
        {"slo", required_argument, NULL, O_SLO},
        {"replicas", required_argument, NULL, O_REPL},
        {"task-memory", required_argument, NULL, O_TASK_MEM},
        {"memory-budget", required_argument, NULL, O_MEM_BUDGET},
        {"downstream-limit", required_argument, NULL, O_DOWN},
        {"headroom", required_argument, NULL, O_HEAD},
        {"kind", required_argument, NULL, O_KIND},
        {"cpus", required_argument, NULL, O_CPUS},
        {"budget-share", required_argument, NULL, O_SHARE},
        {"config", required_argument, NULL, O_CONFIG},
        {"pool", required_argument, NULL, O_POOL},
        {"json", no_argument, NULL, O_JSON},
        {NULL, 0, NULL, 0},
    };
    plan_in in;
    memset(&in, 0, sizeof in);
    in.headroom = 2;
    in.budget_share = 0.5;
    in.replicas = 1;
    in.cpus = sluice_cpu_count(); /* affinity and cgroup quota, not the host's count */
    in.kind = SLUICE_POOL_KIND_IO;
    const char *config = NULL;
    bool json = false, have_limit = false, have_kind = false;
    int c;
    opterr = 0;
    while ((c = getopt_long(argc, argv, ":h", longopts, NULL)) != -1) {
        int r = 0;
        switch (c) {
        case 'h':
            fputs(HELP, stdout);
            return OPS_EXIT_OK;
        case O_TASK_MEM:
        case O_MEM_BUDGET: {
            unsigned long long *dst = c == O_TASK_MEM ? &in.task_memory : &in.memory_budget;
            if (ops_parse_size(optarg, dst)) {
                bad(c == O_TASK_MEM ? "--task-memory" : "--memory-budget", optarg,
                    "a byte count above zero such as 64Mi or 2G");
                return OPS_EXIT_USAGE;
            }
            break;
        }
        case O_RATE:
            r = parse_pos_double("--rate", optarg, 0, &in.rate);
            break;
        case O_MEAN:
            r = parse_dur("--latency-mean", optarg, &in.mean_s);
            break;
        case O_P99:
            r = parse_dur("--latency-p99", optarg, &in.p99_s);
            break;
        case O_SLO:
            r = parse_slo(optarg, &in.slo_target, &in.slo_latency_s);
            break;
        case O_REPL:
            r = parse_uint("--replicas", optarg, &in.replicas);
            break;
        case O_DOWN:
            r = parse_uint("--downstream-limit", optarg, &in.downstream_limit);
            have_limit = true;
            break;
        case O_HEAD:
            r = parse_pos_double("--headroom", optarg, 1, &in.headroom);
            break;
        case O_CPUS:
            r = parse_uint("--cpus", optarg, &in.cpus);
            break;
        case O_SHARE:
            r = parse_pos_double("--budget-share", optarg, 0, &in.budget_share);
            if (!r && in.budget_share > 1)
                r = bad("--budget-share", optarg, "a fraction in (0, 1]");
            break;
        case O_KIND:
            have_kind = true;
            if (sluice_pool_kind_parse(optarg, &in.kind) != SLUICE_OK)
                r = bad("--kind", optarg, "io, cpu or memory");
            break;
        case O_CONFIG:
            config = optarg;
            break;
        case O_POOL:
            in.pool = optarg;
            break;
        case O_JSON:
            json = true;
            break;
        default:
            return ops_cli_flag_error("plan", c, argv);
        }
        if (r)
            return OPS_EXIT_USAGE;
    }
    if (optind != argc) {
        fprintf(stderr, "sluice plan: unexpected argument '%s' (see sluice plan --help)\n", argv[optind]);
        return OPS_EXIT_USAGE;
    }
    if (!in.rate || !in.mean_s) {
        fprintf(stderr, "sluice plan: --rate and --latency-mean are required (see sluice plan --help)\n");
        return OPS_EXIT_USAGE;
    }
    if (!config != !in.pool) {
        fprintf(stderr, "sluice plan: --config and --pool go together\n");
        return OPS_EXIT_USAGE;
    }
    if (!in.task_memory != !in.memory_budget) {
        fprintf(stderr, "sluice plan: --task-memory and --memory-budget go together\n");
        return OPS_EXIT_USAGE;
    }
    if (config) {
        sluice_pool_kind flag_kind = in.kind;
        if (from_config(config, in.pool, &in, have_limit))
            return OPS_EXIT_USAGE;
        if (have_kind)
            in.kind = flag_kind;
    }
    if (!in.p99_s)
        in.p99_s = in.mean_s;
    plan_out o;
    compute(&in, &o);
    if (json)
        print_json(&in, &o);
    else
        print_text(&in, &o);
    fflush(stdout);
    return o.ok ? OPS_EXIT_OK : OPS_EXIT_FINDINGS;
}
