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
 *
 * `--baseline FILE` (this command's only flag of its own): run the driver
 * with --json and compare each workload's Sluice median with FILE (the
 * saved output of an earlier `sluice bench --json`). A figure counts as a
 * regression only when it is worse by more than the run-to-run spread
 * (the larger of the two runs' (max - min) / median, and at least 5%), so
 * noise on a shared machine does not cry wolf (the reference text's risk
 * 3: performance regressions on upgrade). Exit 1 when one regressed.
 */
#include <errno.h>
#include <limits.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <sys/wait.h>

#include "../../bench/bench_flags.h"
#include "commands.h"

#ifdef SLUICE_HAVE_JANSSON
#include <jansson.h>
#endif

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

static int run_driver(int argc, char **argv)
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

#ifdef SLUICE_HAVE_JANSSON
/* Run `sluice bench ARGS --json` in a child (this same command, so the
 * driver is found the usual way) and return its stdout; NULL on failure. */
static char *capture_json(char **args, int *status)
{
    int fd[2];
    if (pipe(fd) != 0)
        return NULL;
    pid_t pid = fork();
    if (pid < 0) {
        close(fd[0]);
        close(fd[1]);
        return NULL;
    }
    if (pid == 0) {
        dup2(fd[1], STDOUT_FILENO);
        close(fd[0]);
        close(fd[1]);
        int n = 0;
        while (args[n])
            n++;
        _exit(run_driver(n, args));
    }
    close(fd[1]);
    size_t len = 0, cap = 65536;
    char *buf = malloc(cap);
    ssize_t got;
    while (buf && (got = read(fd[0], buf + len, cap - len - 1)) != 0) {
        if (got < 0) {
            if (errno == EINTR)
                continue;
            break;
        }
        len += (size_t)got;
        if (cap - len < 4096) {
            char *grown = realloc(buf, cap * 2);
            if (!grown) {
                free(buf);
                buf = NULL;
                break;
            }
            buf = grown;
            cap *= 2;
        }
    }
    close(fd[0]);
    int st = 0;
    while (waitpid(pid, &st, 0) < 0 && errno == EINTR)
        ;
    *status = WIFEXITED(st) ? WEXITSTATUS(st) : SLUICE_EXIT_FAIL;
    if (buf)
        buf[len] = '\0';
    return buf;
}

/* The "sluice" result of one workload: median and spread ((max-min)/median). */
static bool sluice_figure(json_t *workload, double *median, double *spread)
{
    json_t *results = json_object_get(workload, "results");
    size_t i;
    json_t *r;
    json_array_foreach(results, i, r)
    {
        const char *impl = json_string_value(json_object_get(r, "impl"));
        if (!impl || strcmp(impl, "sluice") != 0)
            continue;
        json_t *m = json_object_get(r, "median"), *lo = json_object_get(r, "min"),
               *hi = json_object_get(r, "max");
        if (!json_is_number(m) || json_number_value(m) == 0)
            return false;
        *median = json_number_value(m);
        *spread = json_is_number(lo) && json_is_number(hi)
                      ? (json_number_value(hi) - json_number_value(lo)) / *median
                      : 0;
        if (*spread < 0)
            *spread = -*spread;
        return true;
    }
    return false;
}

static json_t *find_workload(json_t *doc, const char *name)
{
    size_t i;
    json_t *w;
    json_array_foreach(json_object_get(doc, "workloads"), i, w)
    {
        const char *n = json_string_value(json_object_get(w, "name"));
        if (n && strcmp(n, name) == 0)
            return w;
    }
    return NULL;
}

#define BASELINE_MIN_SPREAD 0.05

/* Compare; prints the table and returns the exit status. */
static int compare(json_t *base, json_t *cur, const char *base_path)
{
    const char *bm = json_string_value(json_object_get(json_object_get(base, "machine"), "cpu_model"));
    const char *cm = json_string_value(json_object_get(json_object_get(cur, "machine"), "cpu_model"));
    json_int_t bc = json_integer_value(json_object_get(json_object_get(base, "machine"), "cpus"));
    json_int_t cc = json_integer_value(json_object_get(json_object_get(cur, "machine"), "cpus"));
    if ((bm && cm && strcmp(bm, cm) != 0) || bc != cc)
        printf("note: the baseline ran on another machine (%s, %lld CPUs; now %s, %lld CPUs): compare with "
               "care\n",
               bm ? bm : "?", (long long)bc, cm ? cm : "?", (long long)cc);
    printf("%-22s %14s %14s %8s %8s  %s\n", "workload (sluice)", "baseline", "now", "change", "spread",
           "verdict");
    int regressions = 0, compared = 0;
    size_t i;
    json_t *w;
    json_array_foreach(json_object_get(cur, "workloads"), i, w)
    {
        const char *name = json_string_value(json_object_get(w, "name"));
        const char *better = json_string_value(json_object_get(w, "better"));
        json_t *bw = name ? find_workload(base, name) : NULL;
        double cmed, csp, bmed, bsp;
        if (!bw || !sluice_figure(w, &cmed, &csp) || !sluice_figure(bw, &bmed, &bsp)) {
            printf("%-22s %14s %14s %8s %8s  %s\n", name ? name : "?", "-", "-", "-", "-",
                   bw ? "no sluice figure" : "not in the baseline");
            continue;
        }
        double spread = bsp > csp ? bsp : csp;
        if (spread < BASELINE_MIN_SPREAD)
            spread = BASELINE_MIN_SPREAD;
        double change = (cmed - bmed) / bmed;
        bool higher = better && strcmp(better, "higher") == 0;
        bool lower = better && strcmp(better, "lower") == 0;
        const char *verdict = "within the spread";
        if ((higher && change < -spread) || (lower && change > spread)) {
            verdict = "REGRESSION";
            regressions++;
        } else if ((higher && change > spread) || (lower && change < -spread)) {
            verdict = "better";
        } else if (!higher && !lower) {
            verdict = "n/a (no direction)";
        }
        compared++;
        printf("%-22s %14.6g %14.6g %+7.1f%% %7.1f%%  %s\n", name, bmed, cmed, change * 100, spread * 100,
               verdict);
    }
    printf("%d workload%s compared with %s: %d regression%s beyond the run-to-run spread\n", compared,
           compared == 1 ? "" : "s", base_path, regressions, regressions == 1 ? "" : "s");
    return regressions ? SLUICE_EXIT_FAIL : SLUICE_EXIT_OK;
}
#endif

/* `sluice bench --help`: this command's own flag, then the driver's help
 * (the driver prints it; exit 0 even when the driver is missing, the
 * "not found" line on stderr saying why its flags are not shown). */
static int help(int argc, char **argv)
{
    printf("usage: sluice bench [--baseline FILE] [sluice-bench flags]\n"
           "\n"
           "Runs the benchmark driver, sluice-bench, with the same flags (below).\n"
           "  --baseline FILE  run with --json and compare each workload's Sluice median\n"
           "                   with FILE (the saved output of sluice bench --json); exit 1\n"
           "                   when one is worse by more than the run-to-run spread (at\n"
           "                   least 5%%)\n"
           "\n"
           "The driver's flags:\n");
    fflush(stdout);
    run_driver(argc, argv);
    return SLUICE_EXIT_OK;
}

int sluice_cmd_bench(int argc, char **argv)
{
    for (int i = 1; i < argc; i++) {
        if (strcmp(argv[i], "--help") == 0 || strcmp(argv[i], "-h") == 0) {
            return help(argc, argv);
        }
    }
    /* The driver's flags are checked here first (bench_flags.h), so a bad
     * one is one line naming it, exit 2, whether or not the driver is
     * built; the driver checks their values. */
    for (int i = 1; i < argc; i++) {
        bool takes_value;
        if (strcmp(argv[i], "--baseline") == 0) {
            i++; /* its missing file is reported below */
        } else if (strncmp(argv[i], "--baseline=", 11) == 0) {
            continue;
        } else if (!sluice_bench_flag_known(argv[i], &takes_value)) {
            fprintf(stderr, "sluice bench: %s '%s' (see sluice bench --help)\n",
                    argv[i][0] == '-' ? "unknown flag" : "unexpected argument", argv[i]);
            return SLUICE_EXIT_USAGE;
        } else if (takes_value) {
            if (i + 1 >= argc) {
                fprintf(stderr, "sluice bench: %s needs a value (see sluice bench --help)\n", argv[i]);
                return SLUICE_EXIT_USAGE;
            }
            i++;
        }
    }
    const char *baseline = NULL;
    int kept = 1;
    for (int i = 1; i < argc; i++) {
        if (strcmp(argv[i], "--baseline") == 0) {
            if (i + 1 >= argc) {
                fprintf(stderr,
                        "sluice bench: --baseline needs a file (the output of sluice bench --json)\n");
                return SLUICE_EXIT_USAGE;
            }
            baseline = argv[++i];
        } else if (strncmp(argv[i], "--baseline=", 11) == 0) {
            baseline = argv[i] + 11;
        } else if (strcmp(argv[i], "--json") == 0 && baseline) {
            continue; /* added below */
        } else {
            argv[kept++] = argv[i];
        }
    }
    if (!baseline)
        return run_driver(argc, argv);
#ifndef SLUICE_HAVE_JANSSON
    fprintf(stderr, "sluice bench: --baseline needs jansson (Debian libjansson-dev); rebuild with it\n");
    return SLUICE_EXIT_USAGE;
#else
    json_error_t jerr;
    json_t *base = json_load_file(baseline, 0, &jerr);
    if (!base) {
        fprintf(stderr, "sluice bench: --baseline %s: %s:%d:%d: %s\n", baseline, baseline, jerr.line,
                jerr.column, jerr.text);
        return SLUICE_EXIT_USAGE;
    }
    if (!json_is_array(json_object_get(base, "workloads"))) {
        fprintf(stderr,
                "sluice bench: --baseline %s: no \"workloads\" array (is it sluice bench --json output?)\n",
                baseline);
        json_decref(base);
        return SLUICE_EXIT_USAGE;
    }
    char **args = calloc((size_t)kept + 2, sizeof *args);
    if (!args) {
        json_decref(base);
        return SLUICE_EXIT_FAIL;
    }
    for (int i = 0; i < kept; i++)
        args[i] = argv[i];
    args[kept] = "--json";
    int status = 0;
    char *text = capture_json(args, &status);
    free(args);
    if (!text || status != 0) {
        fprintf(stderr, "sluice bench: the benchmark run failed (exit %d); nothing compared\n", status);
        free(text);
        json_decref(base);
        return status ? status : SLUICE_EXIT_FAIL;
    }
    json_t *cur = json_loads(text, 0, &jerr);
    free(text);
    if (!cur) {
        fprintf(stderr, "sluice bench: the benchmark's JSON does not parse: %d:%d: %s\n", jerr.line,
                jerr.column, jerr.text);
        json_decref(base);
        return SLUICE_EXIT_FAIL;
    }
    int rc = compare(base, cur, baseline);
    json_decref(cur);
    json_decref(base);
    return rc;
#endif
}
