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
#include <stdbool.h>
#include <stdio.h>
#include <string.h>

#include "commands.h"
#include "ops_cli.h"
#include "ops_rules.h"

static const char HELP[] =
    "usage: sluice dashboard [--env] [-o FILE] CONFIG\n"
    "       sluice dashboard --fleet [-o FILE]\n"
    "\n"
    "Writes a Grafana dashboard (JSON) with $datasource and $pool variables and the panels of\n"
    "the team framework: running vs capacity, queue, submit/completion/drop rates, task\n"
    "duration p50/p95/p99, submit wait, panics, worker churn, utilization, and the\n"
    "config's sizing table, filtered by $job, $instance and $pool, with per-instance panels.\n"
    "With --fleet: one dashboard over every service's pools (no config), sorted by saturation\n"
    "with the top offenders first.\n"
    "\n"
    "      --fleet     the fleet view instead of one service's dashboard\n" OPS_CLI_GENERATE_HELP_FLAGS;

/* `--fleet [-o FILE]`: no config, so not through ops_cli_generate. */
static int fleet(int argc, char **argv)
{
    const char *out_path = NULL;
    for (int i = 1; i < argc; i++) {
        if (strcmp(argv[i], "--fleet") == 0)
            continue;
        if ((strcmp(argv[i], "-o") == 0 || strcmp(argv[i], "--output") == 0) && i + 1 < argc) {
            out_path = argv[++i];
            continue;
        }
        if (strncmp(argv[i], "--output=", 9) == 0) {
            out_path = argv[i] + 9;
            continue;
        }
        if (argv[i][0] == '-' && argv[i][1])
            fprintf(stderr,
                    "sluice dashboard: --fleet takes only -o FILE, got '%s' (see sluice dashboard --help)\n",
                    argv[i]);
        else
            fprintf(
                stderr,
                "sluice dashboard: --fleet takes no config file, got '%s' (see sluice dashboard --help)\n",
                argv[i]);
        return OPS_EXIT_USAGE;
    }
    ops_buf text = {0};
    ops_dashboard_fleet_generate(&text);
    int rc = ops_cli_emit("dashboard", out_path, ops_buf_str(&text));
    ops_buf_free(&text);
    return rc;
}

int sluice_cmd_dashboard(int argc, char **argv)
{
    bool help = false, want_fleet = false;
    for (int i = 1; i < argc && strcmp(argv[i], "--") != 0; i++) {
        help |= strcmp(argv[i], "-h") == 0 || strcmp(argv[i], "--help") == 0;
        want_fleet |= strcmp(argv[i], "--fleet") == 0;
    }
    if (help && want_fleet) { /* ops_cli_generate would refuse --fleet before it saw --help */
        fputs(HELP, stdout);
        return OPS_EXIT_OK;
    }
    if (want_fleet)
        return fleet(argc, argv);
    return ops_cli_generate(argc, argv, "dashboard", HELP, ops_dashboard_generate, NULL);
}
