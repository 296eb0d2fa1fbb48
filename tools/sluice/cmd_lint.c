/*
 * tools/sluice/cmd_lint.c - `sluice lint FILE`: check a sluice.yaml against
 * the team framework and say, per pool, each rule that fails and the fix.
 *
 * Design: the rules live in ops_lint.c (pure: config in, sorted findings
 * out); this file parses flags, loads the config and prints the findings
 * as text (one "file:line:col: rule: message" line and an indented fix per
 * finding, for people and editors) or JSON (for CI annotations). Exit 0
 * when clean, 1 with findings, 2 when the input cannot be used, so CI can
 * tell "the config is against policy" from "the config is broken".
 */
#include <errno.h>
#include <limits.h>
#include <stdio.h>
#include <getopt.h>
#include <stdbool.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "sluice/cpu.h"
#include "commands.h"
#include "ops_cli.h"
#include "ops_lint.h"

#ifdef SLUICE_HAVE_CLUSTER
#include "sluice/cluster.h"
#endif

static const char HELP[] =
    "usage: sluice lint [--json] [--cpus N] [--replicas N] [--surge N] [--budget FILE] [--grace D]\n"
    "                   [--memory-limit SIZE] [--env] CONFIG\n"
    "       sluice lint --list-rules\n"
    "\n"
    "Checks sluice.yaml against the team framework and prints, per pool, each rule\n"
    "that fails with the fix. Rules (docs/ops.md explains each):\n"
    "%s"
    "\n"
    "  CONFIG          sluice.yaml, or - to read it from stdin\n"
    "      --json      print a JSON report instead of text\n"
    "      --cpus N    CPUs for the cpu-bound-k rule (default: the CPUs this process may\n"
    "                  use, from affinity and cgroup quota: %u)\n"
    "      --replicas N  replicas of this service sharing each downstream (default 1)\n"
    "      --surge N   extra replicas during a rolling update (maxSurge; default 0): the\n"
    "                  downstream-share rule counts replicas + surge\n"
    "      --budget FILE  a downstream-budget.yaml (docs/cluster.md) to check the pools\n"
    "                  against, in place of the config's downstream_budget entry for its\n"
    "                  downstream; with a cluster: section, each bound pool's part of the\n"
    "                  share must cover replicas + surge (share mode runs K >= 1 per pod)\n"
    "      --grace D   the orchestrator's grace period, e.g. 45s (default: the config's\n"
    "                  service.orchestrator_grace, itself 30s by default)\n"
    "      --memory-limit SIZE  the pod's memory limit for the queue-memory rule, e.g. 512Mi\n"
    "                  or 2G (default: this process's cgroup limit, else 1Gi)\n"
    "      --env       apply SLUICE_POOL_* / SLUICE_SERVICE_* environment overrides first\n"
    "      --list-rules  print the rule ids and what each checks, then exit 0\n"
    "  -h, --help      this text\n"
    "\n"
    "Exit status: 0 no findings; 1 findings; 2 bad flags, unreadable or invalid config.\n";

/* The CPUs this process may use (affinity and cgroup quota), not the
 * host's: a pod limited to 2 CPUs on a 64-core node has 2. */
static unsigned machine_cpus(void)
{
    return sluice_cpu_count();
}

/* This process's cgroup memory limit (v2 memory.max, else v1
 * memory.limit_in_bytes), or 0 when there is none. Lint usually runs in
 * CI, not in the pod: pass --memory-limit with the pod's limit there. */
static unsigned long long cgroup_memory_limit(void)
{
    static const char *const paths[] = {"/sys/fs/cgroup/memory.max",
                                        "/sys/fs/cgroup/memory/memory.limit_in_bytes"};
    for (size_t i = 0; i < 2; i++) {
        FILE *f = fopen(paths[i], "r");
        if (!f)
            continue;
        char line[64] = {0};
        bool got = fgets(line, sizeof line, f) != NULL;
        fclose(f);
        unsigned long long n;
        line[strcspn(line, "\n")] = '\0';
        /* "max", or v1's "no limit" (a page-rounded LLONG_MAX). */
        if (got && ops_parse_size(line, &n) == 0 && n < (1ull << 60))
            return n;
    }
    return 0;
}

#define LINT_DEFAULT_MEMORY_LIMIT (1ull << 30)

static void rules_list(ops_buf *b, const char *indent)
{
    for (int i = 0; ops_lint_rules[i].id; i++)
        ops_buf_printf(b, "%s%-28s %s\n", indent, ops_lint_rules[i].id, ops_lint_rules[i].summary);
}

static int parse_count(const char *flag, const char *v, unsigned *out)
{
    char *end;
    errno = 0;
    unsigned long n = strtoul(v, &end, 10);
    if (!*v || *end || errno || n == 0 || n > 1000000 || v[0] == '-') {
        fprintf(stderr, "sluice lint: %s must be a whole number from 1 to 1000000, got \"%s\"\n", flag, v);
        return -1;
    }
    *out = (unsigned)n;
    return 0;
}

static void print_text(const char *path, const sluice_config *cfg, const ops_findings *f, ops_buf *o)
{
    for (size_t i = 0; i < f->n; i++) {
        const ops_finding *x = &f->v[i];
        if (x->line)
            ops_buf_printf(o, "%s:%u:%u: %s: %s\n", path, x->line, x->column, x->rule, x->message);
        else
            ops_buf_printf(o, "%s: %s: %s\n", path, x->rule, x->message);
        ops_buf_printf(o, "    fix: %s\n", x->fix);
    }
    if (f->n == 0)
        ops_buf_printf(o, "%s: clean: %zu pools pass every rule\n", path, cfg->pool_count);
    else
        ops_buf_printf(o, "%s: %zu finding%s\n", path, f->n, f->n == 1 ? "" : "s");
}

static void print_json(const char *path, const sluice_config *cfg, const ops_findings *f,
                       const ops_lint_opts *o, ops_buf *out)
{
    ops_jw w;
    ops_jw_init(&w, out);
    ops_jw_obj(&w, NULL);
    ops_jw_str(&w, "file", path);
    ops_jw_bool(&w, "clean", f->n == 0);
    ops_jw_int(&w, "pools", (long long)cfg->pool_count);
    ops_jw_int(&w, "cpus", o->cpus);
    ops_jw_int(&w, "replicas", o->replicas);
    ops_jw_int(&w, "surge", o->surge);
    if (o->budget && o->budget->pos.file)
        ops_jw_str(&w, "budget", o->budget->pos.file);
    ops_jw_arr(&w, "findings");
    for (size_t i = 0; i < f->n; i++) {
        const ops_finding *x = &f->v[i];
        ops_jw_obj(&w, NULL);
        ops_jw_str(&w, "pool", x->pool);
        ops_jw_str(&w, "rule", x->rule);
        ops_jw_str(&w, "message", x->message);
        ops_jw_str(&w, "fix", x->fix);
        ops_jw_int(&w, "line", x->line);
        ops_jw_int(&w, "column", x->column);
        ops_jw_end_obj(&w);
    }
    ops_jw_end_arr(&w);
    ops_jw_end_obj(&w);
}

int sluice_cmd_lint(int argc, char **argv)
{
    static const struct option longopts[] = {
        {"help", no_argument, NULL, 'h'},
        {"json", no_argument, NULL, 'j'},
        {"env", no_argument, NULL, 'e'},
        {"cpus", required_argument, NULL, 'c'},
        {"replicas", required_argument, NULL, 'r'},
        {"list-rules", no_argument, NULL, 'l'},
        {"grace", required_argument, NULL, 'g'},
        {"memory-limit", required_argument, NULL, 'm'},
        {"surge", required_argument, NULL, 's'},
        {"budget", required_argument, NULL, 'b'},
        {NULL, 0, NULL, 0},
    };
    ops_lint_opts opts = {machine_cpus(), 1, 0, 0, NULL, 0, NULL};
    opts.memory_limit_bytes = cgroup_memory_limit();
    opts.memory_limit_source = "this process's cgroup limit";
    if (!opts.memory_limit_bytes) {
        opts.memory_limit_bytes = LINT_DEFAULT_MEMORY_LIMIT;
        opts.memory_limit_source = "no limit given: 1Gi assumed, set --memory-limit";
    }
    bool json = false, with_env = false;
    const char *budget_path = NULL;
    int c;
    opterr = 0;
    while ((c = getopt_long(argc, argv, ":h", longopts, NULL)) != -1) {
        switch (c) {
        case 'h': {
            ops_buf rl = {0};
            rules_list(&rl, "  ");
            printf(HELP, ops_buf_str(&rl), machine_cpus());
            ops_buf_free(&rl);
            return OPS_EXIT_OK;
        }
        case 'l': {
            ops_buf rl = {0};
            rules_list(&rl, "");
            fputs(ops_buf_str(&rl), stdout);
            ops_buf_free(&rl);
            return OPS_EXIT_OK;
        }
        case 'j':
            json = true;
            break;
        case 'e':
            with_env = true;
            break;
        case 'c':
            if (parse_count("--cpus", optarg, &opts.cpus))
                return OPS_EXIT_USAGE;
            break;
        case 'r':
            if (parse_count("--replicas", optarg, &opts.replicas))
                return OPS_EXIT_USAGE;
            break;
        case 'g':
            if (sluice_config_parse_duration(optarg, &opts.orchestrator_grace_ns) ||
                opts.orchestrator_grace_ns == 0) {
                fprintf(stderr,
                        "sluice lint: --grace must be a duration above zero such as 45s, got \"%s\"\n",
                        optarg);
                return OPS_EXIT_USAGE;
            }
            break;
        case 'm':
            if (ops_parse_size(optarg, &opts.memory_limit_bytes)) {
                fprintf(
                    stderr,
                    "sluice lint: --memory-limit must be a byte count above zero such as 512Mi or 2G, got "
                    "\"%s\"\n",
                    optarg);
                return OPS_EXIT_USAGE;
            }
            opts.memory_limit_source = "--memory-limit";
            break;
        case 's':
            if (strcmp(optarg, "0") == 0)
                opts.surge = 0;
            else if (parse_count("--surge", optarg, &opts.surge))
                return OPS_EXIT_USAGE;
            break;
        case 'b':
            budget_path = optarg;
            break;
        default:
            return ops_cli_flag_error("lint", c, argv);
        }
    }
    if (optind != argc - 1) {
        fprintf(stderr, "sluice lint: expected one config file (or - for stdin), got %d arguments\n",
                argc - optind);
        return OPS_EXIT_USAGE;
    }
    const char *path = argv[optind];
    sluice_config *cfg;
    int rc = ops_cli_load("lint", path, with_env, &cfg);
    if (rc)
        return rc;
    const char *shown = strcmp(path, "-") == 0 ? "<stdin>" : path;
    sluice_config_downstream budget = {0};
    sluice_config_share shares[64];
    if (budget_path) {
#ifdef SLUICE_HAVE_CLUSTER
        /* The budget file's own errors are file:line:col and exit 2, like sluice.yaml's. */
        static sluice_budget b;
        char err[1024];
        if (sluice_budget_load(budget_path, &b, err, sizeof err) != SLUICE_OK) {
            fprintf(stderr, "sluice lint: %s\n", err);
            sluice_config_free(cfg);
            return OPS_EXIT_USAGE;
        }
        budget.name = b.downstream;
        budget.total_limit = b.total_limit;
        budget.pos = (sluice_config_pos){budget_path, 1, 1, NULL};
        for (size_t i = 0; i < b.share_count && i < 64; i++) {
            shares[i] = (sluice_config_share){b.shares[i].service,
                                              b.shares[i].share,
                                              {budget_path, b.shares[i].line, b.shares[i].col, NULL}};
        }
        budget.shares = shares;
        budget.share_count = b.share_count < 64 ? b.share_count : 64;
        opts.budget = &budget;
#else
        (void)shares;
        fprintf(stderr,
                "sluice lint: --budget needs libsluice-cluster, and this sluice was built without hiredis "
                "(scripts/install-deps.sh, then rebuild)\n");
        sluice_config_free(cfg);
        return OPS_EXIT_USAGE;
#endif
    }
    ops_findings f = {0};
    ops_lint_run(cfg, &opts, &f);
    ops_buf out = {0};
    if (json)
        print_json(shown, cfg, &f, &opts, &out);
    else
        print_text(shown, cfg, &f, &out);
    rc = ops_cli_emit("lint", NULL, ops_buf_str(&out));
    if (rc == OPS_EXIT_OK)
        rc = f.n ? OPS_EXIT_FINDINGS : OPS_EXIT_OK;
    ops_buf_free(&out);
    ops_findings_free(&f);
    sluice_config_free(cfg);
    return rc;
}
