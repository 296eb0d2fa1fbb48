/*
 * tools/sluice/main.c - `sluice`: the command-line front door.
 *
 * Purpose: one program with subcommands (demo, and the operations commands
 * plan, lint, rules, ...), dispatched from the table in commands.def so a
 * new command is one new file, one line there and its name in the
 * CMakeLists.txt source list (see commands.h for the
 * contract and the exit codes).
 *
 * Design: main() handles only the global flags (--help, --version) and the
 * dispatch; every subcommand parses its own flags. An unknown command or
 * flag is a usage error: one line on stderr, exit 2.
 */
#include <getopt.h>
#include <stdio.h>
#include <string.h>

#include "sluice/common.h"

#include "commands.h"

typedef struct command {
    const char *name;
    int (*fn)(int argc, char **argv);
    const char *summary;
} command;

static const command COMMANDS[] = {
#define SLUICE_COMMAND(n, s) {#n, sluice_cmd_##n, s},
#include "commands.def"
#undef SLUICE_COMMAND
};

/* Print `text` from column `indent` on, wrapped at word boundaries so no
 * line passes 79 columns (the first line continues the current one). */
static void put_wrapped(FILE *out, const char *text, int indent)
{
    int col = indent;
    const char *p = text;
    while (*p) {
        const char *end = strchr(p, ' ');
        int len = end ? (int)(end - p) : (int)strlen(p);
        if (col > indent && col + 1 + len > 79) {
            fprintf(out, "\n%*s", indent, "");
            col = indent;
        } else if (col > indent) {
            fputc(' ', out);
            col++;
        }
        fprintf(out, "%.*s", len, p);
        col += len;
        p += len;
        while (*p == ' ') {
            p++;
        }
    }
    fputc('\n', out);
}

static void usage(FILE *out)
{
    fprintf(out, "usage: sluice [--help] [--version] <command> [<args>]\n"
                 "\n"
                 "Sluice: production worker pools for C services.\n"
                 "\n"
                 "Commands:\n");
    for (size_t i = 0; i < sizeof COMMANDS / sizeof COMMANDS[0]; i++) {
        fprintf(out, "  %-10s ", COMMANDS[i].name);
        put_wrapped(out, COMMANDS[i].summary, 13);
    }
    fprintf(out, "\n"
                 "Run 'sluice <command> --help' for the flags of one command.\n"
                 "Exit status: 0 success, 1 the command found a problem, 2 usage error.\n"
                 "Docs: docs/config.md (sluice.yaml, environment overrides, reload, shutdown).\n");
}

int main(int argc, char **argv)
{
    if (argc < 2) {
        usage(stderr);
        return SLUICE_EXIT_USAGE;
    }
    const char *arg = argv[1];
    if (strcmp(arg, "--help") == 0 || strcmp(arg, "-h") == 0 || strcmp(arg, "help") == 0) {
        if (argc > 2 && strcmp(arg, "help") == 0) {
            /* "sluice help demo" == "sluice demo --help" */
            char *sub[] = {argv[2], "--help", NULL};
            for (size_t i = 0; i < sizeof COMMANDS / sizeof COMMANDS[0]; i++) {
                if (strcmp(argv[2], COMMANDS[i].name) == 0) {
                    optind = 0;
                    return COMMANDS[i].fn(2, sub);
                }
            }
            fprintf(stderr, "sluice: unknown command '%s' (see sluice --help)\n", argv[2]);
            return SLUICE_EXIT_USAGE;
        }
        usage(stdout);
        return SLUICE_EXIT_OK;
    }
    if (strcmp(arg, "--version") == 0 || strcmp(arg, "-V") == 0) {
        printf("sluice %s\n", sluice_version());
        return SLUICE_EXIT_OK;
    }
    if (arg[0] == '-') {
        fprintf(stderr, "sluice: unknown flag '%s' (see sluice --help)\n", arg);
        return SLUICE_EXIT_USAGE;
    }
    for (size_t i = 0; i < sizeof COMMANDS / sizeof COMMANDS[0]; i++) {
        if (strcmp(arg, COMMANDS[i].name) == 0) {
            optind = 0; /* the subcommand runs getopt from the start */
            return COMMANDS[i].fn(argc - 1, argv + 1);
        }
    }
    fprintf(stderr, "sluice: unknown command '%s' (see sluice --help)\n", arg);
    return SLUICE_EXIT_USAGE;
}
