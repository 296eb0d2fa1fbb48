/*
 * tools/sluice/cmd_bench.c - `sluice bench`: run the benchmark driver.
 *
 * Purpose. The benchmark is its own program (sluice-bench, bench/), built
 * with the peer pools it measures, so the `sluice` command does not link
 * GLib, libuv or APR. `sluice bench ARGS` finds that program and execs it
 * with the same ARGS; its output and exit status are the command's
 * (0 ok, 1 a task was lost or ran twice or a measurement failed, 2 usage).
 *
 * Design. The driver is looked for, in order:
 *   1. $SLUICE_BENCH, when set (a path to the program);
 *   2. beside this program's build: <dir of sluice>/../../bench/sluice-bench
 *      (build/tools/sluice/sluice -> build/bench/sluice-bench);
 *   3. the installed copy: <dir of sluice>/../libexec/sluice/sluice-bench
 *      (prefix/bin/sluice -> prefix/libexec/sluice/sluice-bench);
 *   4. sluice-bench on $PATH.
 * The first that exists and is executable wins. When none does, one line
 * on stderr names where it looked, and the status is 1.
 */
#include <errno.h>
#include <limits.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "commands.h"

#define BENCH_PROGRAM "sluice-bench"

/* Directory of the running program, from /proc/self/exe; false if unknown. */
static bool self_dir(char *buf, size_t len)
{
    ssize_t n = readlink("/proc/self/exe", buf, len - 1);
    if (n <= 0) {
        return false;
    }
    buf[n] = 0;
    char *slash = strrchr(buf, '/');
    if (!slash) {
        return false;
    }
    *slash = 0;
    return true;
}

static void exec_with(const char *path, int argc, char **argv)
{
    char **args = calloc((size_t)argc + 1, sizeof *args);
    if (!args) {
        return;
    }
    args[0] = (char *)path;
    for (int i = 1; i < argc; i++) {
        args[i] = argv[i];
    }
    if (strchr(path, '/')) {
        execv(path, args);
    } else {
        execvp(path, args);
    }
    free(args); /* exec failed; the caller goes on looking */
}

int sluice_cmd_bench(int argc, char **argv)
{
    const char *env = getenv("SLUICE_BENCH");
    if (env && *env) {
        exec_with(env, argc, argv);
        fprintf(stderr, "sluice bench: cannot run SLUICE_BENCH=%s: %s\n", env, strerror(errno));
        return SLUICE_EXIT_FAIL;
    }
    char dir[PATH_MAX];
    char candidate[PATH_MAX + 64];
    if (self_dir(dir, sizeof dir)) {
        const char *rel[] = {"/../../bench/" BENCH_PROGRAM, "/../libexec/sluice/" BENCH_PROGRAM};
        for (size_t i = 0; i < sizeof rel / sizeof rel[0]; i++) {
            snprintf(candidate, sizeof candidate, "%s%s", dir, rel[i]);
            if (access(candidate, X_OK) == 0) {
                exec_with(candidate, argc, argv);
            }
        }
    }
    exec_with(BENCH_PROGRAM, argc, argv);
    fprintf(
        stderr,
        "sluice bench: %s not found (looked in $SLUICE_BENCH, <build>/bench/, <prefix>/libexec/sluice/ and "
        "$PATH); build it with 'make build' (needs the peer libraries: scripts/install-deps.sh)\n",
        BENCH_PROGRAM);
    return SLUICE_EXIT_FAIL;
}
