/*
 * tools/sluice/cmd_dashboard.c - `sluice dashboard FILE`: derive a Grafana dashboard from
 * sluice.yaml.
 *
 * Design: a thin command over a pure generator (ops_dashboard.c via
 * ops_rules.h); flag parsing, loading and the atomic write are shared in
 * ops_cli.c. The output is a function of the file alone (environment
 * overrides only with --env), so it can be committed and diffed
 * (ops/ holds the demo's; tests/tools checks they are current).
 */
#include "commands.h"
#include "ops_cli.h"
#include "ops_rules.h"

static const char HELP[] =
    "usage: sluice dashboard [--env] [-o FILE] CONFIG\n"
    "\n"
    "Writes a Grafana dashboard (JSON) with $datasource and $pool variables and the panels of\n"
    "the team framework: running vs capacity, queue, submit/completion/drop rates, task\n"
    "duration p50/p95/p99, submit wait, panics, worker churn, utilization, and the\n"
    "config's sizing table.\n"
    "\n" OPS_CLI_GENERATE_HELP_FLAGS;

int sluice_cmd_dashboard(int argc, char **argv)
{
    return ops_cli_generate(argc, argv, "dashboard", HELP, ops_dashboard_generate, NULL);
}
