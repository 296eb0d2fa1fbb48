/*
 * tools/sluice/cmd_inventory.c - `sluice inventory DIR...`: list every
 * worker-pool construction in C sources, and whether Sluice pools are
 * declared in sluice.yaml.
 *
 * Design: the scanning is ops_inventory.c (a tokenizer; its limits are in
 * its header essay and docs/ops.md); this file walks the arguments, checks
 * Sluice pool names against --config, and prints "file:line: kind: detail"
 * lines (or JSON) sorted by file and line, then a one-line count.
 *
 * Exit: 0 listed; 1 with --config, when a Sluice pool with a literal name
 * is not declared there (a pool nobody configures or monitors); 2 bad
 * flags, an unreadable path or an invalid config.
 */
#include <getopt.h>
#include <stdbool.h>
#include <stdlib.h>
#include <string.h>

#include "commands.h"
#include "ops_cli.h"
#include "ops_inventory.h"

static const char HELP[] =
    "usage: sluice inventory [--config FILE] [--json] PATH...\n"
    "\n"
    "Scans C sources (.c .h .cc .cpp .cxx .hpp; directories recursively, hidden\n"
    "entries and symbolic links skipped) for pool constructions and prints one\n"
    "line per site, sorted: FILE:LINE: KIND: DETAIL. Kinds:\n"
    "  sluice         sluice_pool_create (pool name when a literal name = \"...\"\n"
    "                 precedes it in the function, or \"from sluice.yaml\" when the\n"
    "                 function uses sluice_config_pool_to_pool_config)\n"
    "  c-thread-pool  thpool_init\n"
    "  glib           g_thread_pool_new, g_thread_pool_new_full\n"
    "  apr            apr_thread_pool_create\n"
    "  libuv          uv_queue_work (libuv's process-wide pool)\n"
    "  pthread-loop   pthread_create inside a for/while/do loop (a hand-made pool)\n"
    "  thread-loop    uv_thread_create[_ex] inside a loop (libuv's own worker pool,\n"
    "                 or a hand-made one on libuv threads)\n"
    "A call through a wrapper macro (a #define whose body calls one of these, in\n"
    "any scanned file, macros over macros included) is reported at the macro's\n"
    "use, \"via MACRO\". Loop sites carry a confidence: medium, or low when the\n"
    "same function also joins threads (a fork-join batch, not a pool).\n"
    "\n"
    "  --config FILE  check that each Sluice pool name is declared in sluice.yaml\n"
    "  --json         print JSON instead of text\n"
    "  -h, --help     this text\n"
    "\n"
    "A lexical scanner: comments and strings are skipped, so pools built through\n"
    "function pointers, or by macros defined outside the scanned paths, are not seen.\n"
    "\n"
    "Exit status: 0 listed; 1 (with --config) a Sluice pool is not declared in the\n"
    "config; 2 bad flags, an unreadable path or an invalid config.\n";

int sluice_cmd_inventory(int argc, char **argv)
{
    static const struct option longopts[] = {
        {"help", no_argument, NULL, 'h'},
        {"json", no_argument, NULL, 'j'},
        {"config", required_argument, NULL, 'c'},
        {NULL, 0, NULL, 0},
    };
    const char *config = NULL;
    bool json = false;
    int c;
    opterr = 0;
    while ((c = getopt_long(argc, argv, ":h", longopts, NULL)) != -1) {
        switch (c) {
        case 'h':
            fputs(HELP, stdout);
            return OPS_EXIT_OK;
        case 'j':
            json = true;
            break;
        case 'c':
            config = optarg;
            break;
        default:
            return ops_cli_flag_error("inventory", c, argv);
        }
    }
    if (optind >= argc) {
        fprintf(stderr, "sluice inventory: expected at least one directory or file to scan\n");
        return OPS_EXIT_USAGE;
    }
    sluice_config *cfg = NULL;
    if (config && ops_cli_load("inventory", config, false, &cfg))
        return OPS_EXIT_USAGE;
    ops_sites sites = {0};
    char err[1024];
    for (int i = optind; i < argc; i++) {
        if (ops_inventory_scan_path(argv[i], &sites, err, sizeof err)) {
            fprintf(stderr, "sluice inventory: cannot scan %s\n", err);
            ops_sites_free(&sites);
            sluice_config_free(cfg);
            return OPS_EXIT_USAGE;
        }
    }
    ops_sites_sort(&sites);
    size_t undeclared = 0;
    for (size_t i = 0; i < sites.n; i++) {
        ops_site *s = &sites.v[i];
        if (!cfg || strcmp(s->kind, "sluice") != 0)
            continue;
        if (s->from_config)
            s->declared = 1;
        else if (s->pool)
            s->declared = sluice_config_find_pool(cfg, s->pool) != NULL;
        if (s->declared == 0)
            undeclared++;
    }
    /* Counts per kind, in a fixed order. */
    static const char *const kinds[] = {"sluice", "c-thread-pool", "glib",       "apr",
                                        "libuv",  "pthread-loop",  "thread-loop"};
    enum { NKINDS = sizeof kinds / sizeof kinds[0] };
    size_t counts[NKINDS] = {0};
    for (size_t i = 0; i < sites.n; i++)
        for (size_t k = 0; k < NKINDS; k++)
            if (strcmp(sites.v[i].kind, kinds[k]) == 0)
                counts[k]++;

    ops_buf out = {0};
    if (json) {
        ops_jw w;
        ops_jw_init(&w, &out);
        ops_jw_obj(&w, NULL);
        ops_jw_str(&w, "config", config);
        ops_jw_arr(&w, "sites");
        for (size_t i = 0; i < sites.n; i++) {
            const ops_site *s = &sites.v[i];
            ops_jw_obj(&w, NULL);
            ops_jw_str(&w, "file", s->path);
            ops_jw_int(&w, "line", s->line);
            ops_jw_str(&w, "kind", s->kind);
            ops_jw_str(&w, "call", s->call);
            ops_jw_str(&w, "via", s->via);
            ops_jw_str(&w, "confidence", s->confidence);
            if (strcmp(s->kind, "sluice") == 0) {
                ops_jw_str(&w, "pool", s->pool);
                ops_jw_bool(&w, "from_config", s->from_config);
                if (s->declared < 0)
                    ops_jw_str(&w, "declared", NULL);
                else
                    ops_jw_bool(&w, "declared", s->declared);
            }
            ops_jw_end_obj(&w);
        }
        ops_jw_end_arr(&w);
        ops_jw_obj(&w, "counts");
        for (size_t k = 0; k < NKINDS; k++)
            ops_jw_int(&w, kinds[k], (long long)counts[k]);
        ops_jw_end_obj(&w);
        ops_jw_int(&w, "undeclared", (long long)undeclared);
        ops_jw_end_obj(&w);
    } else {
        for (size_t i = 0; i < sites.n; i++) {
            const ops_site *s = &sites.v[i];
            ops_buf_printf(&out, "%s:%u: %s: %s", s->path, s->line, s->kind, s->call);
            if (s->via)
                ops_buf_printf(&out, " via %s", s->via);
            if (strcmp(s->confidence, "high") != 0)
                ops_buf_printf(&out, ", confidence %s%s", s->confidence,
                               strcmp(s->confidence, "low") == 0
                                   ? " (joined in the same function: a fork-join batch)"
                                   : "");
            if (strcmp(s->kind, "sluice") == 0) {
                if (s->from_config)
                    ops_buf_put(&out, ", pool from sluice.yaml");
                else if (s->pool)
                    ops_buf_printf(&out, ", pool \"%s\"", s->pool);
                else
                    ops_buf_put(&out, ", pool name not a literal");
                if (s->declared == 1)
                    ops_buf_put(&out, ", declared in config");
                else if (s->declared == 0)
                    ops_buf_put(&out, ", NOT declared in config");
            }
            ops_buf_put(&out, "\n");
        }
        ops_buf_printf(&out, "%zu site%s:", sites.n, sites.n == 1 ? "" : "s");
        for (size_t k = 0; k < NKINDS; k++)
            ops_buf_printf(&out, " %s %zu%s", kinds[k], counts[k], k + 1 < NKINDS ? "," : "");
        if (cfg)
            ops_buf_printf(&out, "; %zu Sluice pool%s not declared in %s", undeclared,
                           undeclared == 1 ? "" : "s", config);
        ops_buf_put(&out, "\n");
    }
    int rc = ops_cli_emit("inventory", NULL, ops_buf_str(&out));
    if (rc == OPS_EXIT_OK && undeclared)
        rc = OPS_EXIT_FINDINGS;
    ops_buf_free(&out);
    ops_sites_free(&sites);
    sluice_config_free(cfg);
    return rc;
}
