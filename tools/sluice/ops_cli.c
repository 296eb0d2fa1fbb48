/*
 * tools/sluice/ops_cli.c - loading, flag parsing and output for the
 * operations subcommands.
 *
 * Design: the generators are pure (config in, text out); this file is the
 * only place that touches files, stdin and stderr for them. Errors are one
 * line naming the command and what is wrong, followed by the config
 * loader's own "file:line:col: path: what, got value" lines, and exit 2.
 * Generated files are written to a temporary name and renamed, so `sluice
 * rules sluice.yaml -o ops/rules.yml` never leaves a torn file behind.
 */
#include "ops_cli.h"

#include <errno.h>
#include <getopt.h>
#include <stdlib.h>
#include <string.h>

int ops_cli_load(const char *cmd, const char *path, bool with_env, sluice_config **out)
{
    sluice_config_load_opts opts = {0};
    opts.no_env = !with_env;
    char err[4096];
    sluice_err rc;
    if (strcmp(path, "-") == 0) {
        /* Bounded: an endless stdin is refused at the loader's limit. */
        rc = sluice_config_load_stream(stdin, "<stdin>", &opts, out, err, sizeof err);
    } else {
        rc = sluice_config_load_file(path, &opts, out, err, sizeof err);
    }
    if (rc != SLUICE_OK) {
        fprintf(stderr, "sluice %s: cannot use %s (%s):\n%s\n", cmd, path, sluice_strerror(rc), err);
        return OPS_EXIT_USAGE;
    }
    return OPS_EXIT_OK;
}

const char *ops_cli_source_name(const char *path)
{
    const char *slash = strrchr(path, '/');
    return slash && slash[1] ? slash + 1 : path;
}

int ops_cli_emit(const char *cmd, const char *out_path, const char *text)
{
    if (!out_path || strcmp(out_path, "-") == 0) {
        if (fputs(text, stdout) == EOF || fflush(stdout) != 0) {
            fprintf(stderr, "sluice %s: writing stdout: %s\n", cmd, strerror(errno));
            return OPS_EXIT_USAGE;
        }
        return OPS_EXIT_OK;
    }
    ops_buf tmp = {0};
    ops_buf_printf(&tmp, "%s.tmp", out_path);
    FILE *f = fopen(ops_buf_str(&tmp), "w");
    if (!f) {
        fprintf(stderr, "sluice %s: cannot write %s: %s\n", cmd, ops_buf_str(&tmp), strerror(errno));
        ops_buf_free(&tmp);
        return OPS_EXIT_USAGE;
    }
    int ok = fputs(text, f) != EOF;
    ok = (fclose(f) == 0) && ok;
    if (!ok || rename(ops_buf_str(&tmp), out_path) != 0) {
        fprintf(stderr, "sluice %s: cannot write %s: %s\n", cmd, out_path, strerror(errno));
        remove(ops_buf_str(&tmp));
        ops_buf_free(&tmp);
        return OPS_EXIT_USAGE;
    }
    ops_buf_free(&tmp);
    return OPS_EXIT_OK;
}

int ops_cli_flag_error(const char *cmd, int opt, char *const *argv)
{
    if (opt == ':')
        fprintf(stderr, "sluice %s: %s needs a value (see sluice %s --help)\n", cmd, argv[optind - 1], cmd);
    else
        fprintf(stderr, "sluice %s: unknown flag '%s' (see sluice %s --help)\n", cmd, argv[optind - 1], cmd);
    return OPS_EXIT_USAGE;
}

int ops_cli_generate(int argc, char **argv, const char *cmd, const char *help, ops_generator gen,
                     ops_precheck check)
{
    static const struct option longopts[] = {
        {"help", no_argument, NULL, 'h'},
        {"env", no_argument, NULL, 'e'},
        {"output", required_argument, NULL, 'o'},
        {NULL, 0, NULL, 0},
    };
    bool with_env = false;
    const char *out_path = NULL;
    int c;
    opterr = 0;
    while ((c = getopt_long(argc, argv, ":ho:", longopts, NULL)) != -1) {
        switch (c) {
        case 'h':
            fputs(help, stdout);
            return OPS_EXIT_OK;
        case 'e':
            with_env = true;
            break;
        case 'o':
            out_path = optarg;
            break;
        default:
            return ops_cli_flag_error(cmd, c, argv);
        }
    }
    if (optind != argc - 1) {
        fprintf(stderr,
                "sluice %s: expected one config file (or - for stdin), got %d arguments (see sluice %s "
                "--help)\n",
                cmd, argc - optind, cmd);
        return OPS_EXIT_USAGE;
    }
    const char *path = argv[optind];
    sluice_config *cfg;
    int rc = ops_cli_load(cmd, path, with_env, &cfg);
    if (rc)
        return rc;
    if (check && check(cfg, strcmp(path, "-") == 0 ? "<stdin>" : path) > 0) {
        fprintf(stderr, "sluice %s: nothing written\n", cmd);
        sluice_config_free(cfg);
        return OPS_EXIT_USAGE;
    }
    ops_buf text = {0};
    gen(cfg, ops_cli_source_name(path), &text);
    rc = ops_cli_emit(cmd, out_path, ops_buf_str(&text));
    ops_buf_free(&text);
    sluice_config_free(cfg);
    return rc;
}
