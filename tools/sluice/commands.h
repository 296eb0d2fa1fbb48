/*
 * tools/sluice/commands.h - the contract between `sluice` and its
 * subcommands.
 *
 * Every subcommand is a function
 *
 *     int sluice_cmd_NAME(int argc, char **argv);
 *
 * called with the arguments after the global ones, argv[0] being the
 * subcommand's own name ("demo"), so getopt/getopt_long work as in a
 * main() (reset optind = 0 first; main.c does it). It returns the process
 * exit status:
 *
 *     0  success
 *     1  the command ran and found a problem (for demo: an unbalanced
 *        reconciliation or a runtime failure such as a port in use)
 *     2  usage: unknown flag, bad value, unreadable or invalid input
 *        (one line on stderr saying which)
 *
 * `NAME --help` prints the command's flags on stdout and returns 0.
 * Commands are listed in commands.def.
 */
#ifndef SLUICE_TOOLS_COMMANDS_H
#define SLUICE_TOOLS_COMMANDS_H

enum { SLUICE_EXIT_OK = 0, SLUICE_EXIT_FAIL = 1, SLUICE_EXIT_USAGE = 2 };

#define SLUICE_COMMAND(name, summary) int sluice_cmd_##name(int argc, char **argv);
#include "commands.def"
#undef SLUICE_COMMAND

#endif
