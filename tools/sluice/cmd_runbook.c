/*
 * tools/sluice/cmd_runbook.c - `sluice runbook FILE`: derive the on-call runbook from
 * sluice.yaml.
 *
 * Design: a thin command over a pure generator (ops_runbook.c via
 * ops_rules.h); flag parsing, loading and the atomic write are shared in
 * ops_cli.c. The output is a function of the file alone (environment
 * overrides only with --env), so it can be committed and diffed
 * (ops/ holds the demo's; tests/tools checks they are current).
 */
#include "commands.h"
#include "ops_cli.h"
#include "ops_rules.h"

static const char HELP[] =
    "usage: sluice runbook [--env] [-o FILE] CONFIG\n"
    "\n"
    "Writes the Markdown runbook: one entry per alert per pool (quick checks, mitigations,\n"
    "long-term fixes, rollback), filled with the pool's K, rationale and addresses. The\n"
    "anchors are the ones the rules' runbook_url annotations point at.\n"
    "\n" OPS_CLI_GENERATE_HELP_FLAGS;

int sluice_cmd_runbook(int argc, char **argv)
{
    return ops_cli_generate(argc, argv, "runbook", HELP, ops_runbook_generate, NULL);
}
