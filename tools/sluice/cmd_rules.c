/*
 * tools/sluice/cmd_rules.c - `sluice rules FILE`: derive Prometheus alerting rules from
 * sluice.yaml.
 *
 * Design: a thin command over a pure generator (ops_rules.c via
 * ops_rules.h); flag parsing, loading and the atomic write are shared in
 * ops_cli.c. The output is a function of the file alone (environment
 * overrides only with --env), so it can be committed and diffed
 * (ops/ holds the demo's; tests/tools checks they are current).
 */
#include "commands.h"
#include "ops_cli.h"
#include "ops_rules.h"

static const char HELP[] =
    "usage: sluice rules [--env] [-o FILE] CONFIG\n"
    "\n"
    "Writes Prometheus alerting rules (YAML) for every pool: PoolSaturated, PoolPanic, PoolDropping,\n"
    "PoolSlowTasks, PoolSubmitWait, PoolMetricsMissing and PoolStalled (TenantStarved for a fair\n"
    "pool, PoolProbeFailing for one with probe_every), with thresholds from the config (alert_*\n"
    "keys), and a runbook_url per alert; per service SluiceTargetDown and the sync primitives'\n"
    "alerts; SLO recording rules and burn-rate alerts where slo_objective is set; the budget\n"
    "alerts with a cluster: section.\n"
    "Check the output with: promtool check rules FILE\n"
    "Refuses (exit 2, nothing written) alerts that could never fire: a p99 threshold at or above\n"
    "the pool's largest finite histogram bucket, or timing alerts on a pool with timing off.\n"
    "\n" OPS_CLI_GENERATE_HELP_FLAGS;

typedef struct precheck_ctx {
    const char *path;
    int n;
} precheck_ctx;

static void report_unfireable(void *ud, const sluice_config_pool *p, const sluice_config_pos *pos,
                              const char *fix, const char *message)
{
    precheck_ctx *c = ud;
    fprintf(stderr, "%s:%u:%u: pool %s: %s (fix: %s)\n", c->path, pos->line, pos->column, p->name, message,
            fix);
    c->n++;
}

/* An alert that can never fire is worse than none: it says "covered". */
static int refuse_unfireable(const sluice_config *cfg, const char *path)
{
    precheck_ctx c = {path, 0};
    if (!cfg->service.runbook_base_url) {
        /* Not a refusal: the default is documented. A note, as Alertmanager
         * cannot open a link relative to the repository. */
        fprintf(stderr,
                "sluice rules: note: service.runbook_base_url is not set; runbook_url links are relative "
                "(\"%s#...\"): set it to where the runbook is served\n",
                OPS_DEFAULT_RUNBOOK);
    }
    for (size_t i = 0; i < cfg->pool_count; i++) {
        const sluice_config_pool *p = &cfg->pools[i];
        ops_unfireable_alerts(p, report_unfireable, &c);
        char why[512];
        ops_slo slo = ops_pool_slo(p);
        if (ops_slo_problem(p, &slo, why, sizeof why)) {
            fprintf(stderr, "%s:%u:%u: pool %s: %s\n", path, p->entry_pos.line, p->entry_pos.column, p->name,
                    why);
            c.n++;
        }
    }
    char why[512];
    ops_slo sslo = ops_service_slo(cfg);
    if (ops_service_slo_problem(cfg, &sslo, why, sizeof why)) {
        fprintf(stderr, "%s:1:1: service: %s\n", path, why);
        c.n++;
    }
    return c.n;
}

int sluice_cmd_rules(int argc, char **argv)
{
    return ops_cli_generate(argc, argv, "rules", HELP, ops_rules_generate, refuse_unfireable);
}
