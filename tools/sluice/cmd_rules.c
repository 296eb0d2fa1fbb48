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
    "PoolSlowTasks, PoolSubmitWait and PoolMetricsMissing, with thresholds from the config\n"
    "(alert_slow_task_p99, alert_submit_wait_p99) and a runbook_url per alert.\n"
    "Check the output with: promtool check rules FILE\n"
    "\n" OPS_CLI_GENERATE_HELP_FLAGS;

int sluice_cmd_rules(int argc, char **argv)
{
    return ops_cli_generate(argc, argv, "rules", HELP, ops_rules_generate);
}
