/*
 * bench/driver.c - sluice-bench: measures Sluice against the worker pools a
 * C programmer would otherwise pick, in one run on one machine, and prints
 * a table per workload (median of several runs, min, max, ratio to
 * Sluice), the targets of issue 7 as met or missed, and optionally JSON.
 *
 * Design. The driver process never builds a pool. Each measurement (one
 * workload, one implementation, one run) runs in a child made by fork(),
 * which writes one fixed-size bench_result back through a pipe. This
 *   - gives every measurement a clean heap, RSS and thread count,
 *   - lets libuv size its process-global pool per workload (the
 *     UV_THREADPOOL_SIZE variable is read once per process),
 *   - keeps C-Thread-Pool's process-global flags from leaking between
 *     pools,
 *   - turns a crash or a hang of one implementation into a loud, named
 *     failure instead of a dead benchmark.
 * Runs are interleaved (run 1 of every implementation, then run 2, ...), so
 * slow drift of the machine spreads over all of them.
 *
 * Exit status: 0 when every measurement ran and every task ran exactly
 * once; 1 when a task was lost or ran twice, a child crashed, hung or could
 * not build its pool; 2 for a bad command line. Times never fail the run:
 * a missed target is reported, not an error.
 */
#include <errno.h>
#include <glib.h>
#include <apu_version.h>
#include <math.h>
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/utsname.h>
#include <sys/wait.h>
#include <unistd.h>
#include <uv.h>

#include "bench.h"
#include "bench_flags.h"

#ifdef BENCH_HAVE_SLUICE
#include "sluice/common.h"
#endif

#define MAX_IMPLS BENCH_MAX_IMPLS
#define MAX_RUNS 101

typedef struct cell {
    bool taken;  /* the implementation is in this workload */
    unsigned ok; /* runs that produced figures */
    bench_result runs[MAX_RUNS];
    double median[BENCH_COLS];
    double min, max;
    int status;    /* worst status over the runs */
    char msg[248]; /* the first error or note */
} cell;

typedef struct options {
    bench_config cfg;
    bool json;
    bool no_fork;
    bool list;
    bool verbose;
    bool scaling;    /* --scaling: noop-Np over a grid of K and producers */
    char *workloads; /* comma list or NULL for all */
    char *impls;     /* comma list or NULL for all */
    double child_timeout_s;
} options;

static int failures;
static double load_start = -1, load_end = -1;

/* ---- command line ------------------------------------------------------ */

static void usage(FILE *f)
{
    fprintf(f, "usage: sluice-bench [--quick] [--runs N] [--workload A,B] [--impl X,Y] [--producers P]\n"
               "                    [--workers K] [--stall-seconds S] [--json] [--no-fork] [--verbose]\n"
               "                    [--scaling] [--list] [--help]\n"
               "\n"
               "Measures Sluice against peer worker pools on this machine and prints, per workload,\n"
               "each implementation's median of N runs, min, max and ratio to Sluice, then the\n"
               "targets of issue 7 as met or missed.\n"
               "\n"
               "  --quick        tiny sizes, one run: a smoke test that proves the driver works (CI)\n"
               "  --runs N       runs per implementation and workload (default 5; quick 1)\n"
               "  --workload L   only these workloads (comma list; see --list)\n"
               "  --impl L       only these implementations (comma list; sluice is kept for ratios,\n"
               "                 except with --no-fork)\n"
               "  --producers P  producers for noop-Np and noop-malloc-Np (default 4)\n"
               "  --workers K    K for the throughput and latency workloads (default: CPU count)\n"
               "  --stall-seconds S  a run whose completions stop moving for S s has lost tasks\n"
               "                 (default 60: generous, so a busy CI machine never fails the smoke test)\n"
               "  --json         print one JSON document on stdout instead of the tables\n"
               "  --no-fork      measure in this process (for perf/callgrind; use one --impl)\n"
               "  --verbose      one line per measurement on stderr (figure and duration)\n"
               "  --scaling      instead of the workloads: no-op throughput at every K and producer\n"
               "                 count in 1, 2, 4, ... up to the CPU count (and the CPU count itself),\n"
               "                 a row per point with each implementation's median and the Sluice rows'\n"
               "                 ratios to the raw ring and to the best C peer (--impl, --runs apply)\n"
               "  --list         list workloads and implementations and exit\n"
               "\n"
               "Exit status: 0 ok; 1 a task was lost or ran twice, or a measurement crashed/hung/failed;\n"
               "2 bad usage. A slow result never fails the run.\n");
}

static bool in_list(const char *list, const char *name)
{
    if (!list) {
        return true;
    }
    size_t n = strlen(name);
    for (const char *p = list; *p;) {
        const char *e = strchr(p, ',');
        size_t len = e ? (size_t)(e - p) : strlen(p);
        if (len == n && strncmp(p, name, n) == 0) {
            return true;
        }
        if (!e) {
            break;
        }
        p = e + 1;
    }
    return false;
}

/* Every name in list must be known; returns false and says which is not. */
static bool check_list(const char *list, const char *what, bool (*known)(const char *))
{
    if (!list) {
        return true;
    }
    char *copy = strdup(list);
    bool ok = true;
    for (char *save = NULL, *tok = strtok_r(copy, ",", &save); tok; tok = strtok_r(NULL, ",", &save)) {
        if (!known(tok)) {
            fprintf(stderr, "sluice-bench: unknown %s '%s' (see --list)\n", what, tok);
            ok = false;
        }
    }
    free(copy);
    return ok;
}

static bool known_workload(const char *name)
{
    for (size_t i = 0; i < bench_workload_count; i++) {
        if (strcmp(bench_workloads[i].name, name) == 0) {
            return true;
        }
    }
    return false;
}

static bool known_impl(const char *name)
{
    for (size_t i = 0; bench_adapters[i]; i++) {
        if (strcmp(bench_adapters[i]->name, name) == 0) {
            return true;
        }
    }
    return false;
}

static bool parse_uint(const char *flag, const char *s, unsigned lo, unsigned hi, unsigned *out)
{
    char *end = NULL;
    errno = 0;
    unsigned long v = s ? strtoul(s, &end, 10) : 0;
    if (!s || errno || *end || end == s || v < lo || v > hi) {
        fprintf(stderr, "sluice-bench: %s needs a whole number in [%u, %u], got '%s'\n", flag, lo, hi,
                s ? s : "(nothing)");
        return false;
    }
    *out = (unsigned)v;
    return true;
}

static int parse_args(int argc, char **argv, options *o)
{
    unsigned runs = 0, producers = 4, workers = 0, stall_s = 0;
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i];
        const char *next = i + 1 < argc ? argv[i + 1] : NULL;
        bool takes_value;
        if (!sluice_bench_flag_known(a, &takes_value)) {
            /* One line naming it, not the whole usage (bench_flags.h). */
            fprintf(stderr, "sluice-bench: %s '%s' (see sluice-bench --help)\n",
                    a[0] == '-' ? "unknown flag" : "unexpected argument", a);
            return -1;
        }
        if (strcmp(a, "--quick") == 0) {
            o->cfg.quick = true;
        } else if (strcmp(a, "--json") == 0) {
            o->json = true;
        } else if (strcmp(a, "--no-fork") == 0) {
            o->no_fork = true;
        } else if (strcmp(a, "--list") == 0) {
            o->list = true;
        } else if (strcmp(a, "--scaling") == 0) {
            o->scaling = true;
        } else if (strcmp(a, "--verbose") == 0 || strcmp(a, "-v") == 0) {
            o->verbose = true;
        } else if (strcmp(a, "--help") == 0 || strcmp(a, "-h") == 0) {
            usage(stdout);
            exit(0);
        } else if (strcmp(a, "--runs") == 0) {
            if (!parse_uint(a, next, 1, MAX_RUNS, &runs)) {
                return -1;
            }
            i++;
        } else if (strcmp(a, "--producers") == 0) {
            if (!parse_uint(a, next, 1, 64, &producers)) {
                return -1;
            }
            i++;
        } else if (strcmp(a, "--workers") == 0) {
            if (!parse_uint(a, next, 1, 1024, &workers)) {
                return -1;
            }
            i++;
        } else if (strcmp(a, "--stall-seconds") == 0) {
            if (!parse_uint(a, next, 1, 3600, &stall_s)) {
                return -1;
            }
            i++;
        } else if (strcmp(a, "--workload") == 0 || strcmp(a, "--impl") == 0) {
            if (!next || !*next) {
                fprintf(stderr, "sluice-bench: %s needs a comma-separated list\n", a);
                return -1;
            }
            if (a[2] == 'w') {
                o->workloads = (char *)next;
            } else {
                o->impls = (char *)next;
            }
            i++;
        } else {
            /* Listed in bench_flags.h with no case here: the list and the
             * cases disagree (a new row needs its case). */
            fprintf(stderr, "sluice-bench: flag '%s' has no case in parse_args\n", a);
            return -1;
        }
    }
    if (o->scaling && (o->json || o->workloads || o->no_fork)) {
        fprintf(stderr, "sluice-bench: --scaling runs its own grid of no-op measurements; it takes no "
                        "--json, --workload or --no-fork\n");
        return -1;
    }
    if (!check_list(o->workloads, "workload", known_workload) ||
        !check_list(o->impls, "implementation", known_impl)) {
        return -1;
    }
    bench_config *c = &o->cfg;
    long ncpu = sysconf(_SC_NPROCESSORS_ONLN);
    c->cpus = ncpu > 0 ? (unsigned)ncpu : 1;
    c->workers = workers ? workers : c->cpus;
    c->producers = producers;
    c->runs = runs ? runs : c->quick ? 1 : 5;
    c->sleep_workers = 100;
    c->queue_capacity = 65536;
    c->burst_capacity = c->quick ? 256 : 1024;
    c->burst_factor = c->quick ? 10 : 100;
    c->n_noop = c->quick ? 20000 : 1000000;
    c->n_spin = c->quick ? 5000 : 500000;
    c->n_sleep = c->quick ? 300 : 5000;
    c->latency_rate = 50000;
    c->latency_seconds = c->quick ? 0.05 : 1.0;
    c->idle_seconds = c->quick ? 0.2 : 2.0;
    c->rss_workers = c->quick ? 100 : 1000;
    c->stall_ns = (stall_s ? stall_s : 60ull) * 1000000000ull;
    o->child_timeout_s = (double)(c->stall_ns / 1000000000ull) + 240;
    return 0;
}

/* ---- machine ----------------------------------------------------------- */

static void cpu_model(char *buf, size_t len)
{
    snprintf(buf, len, "unknown");
    FILE *f = fopen("/proc/cpuinfo", "r");
    char line[512];
    while (f && fgets(line, sizeof line, f)) {
        if (strncmp(line, "model name", 10) == 0) {
            char *p = strchr(line, ':');
            if (p) {
                p++;
                while (*p == ' ' || *p == '\t') {
                    p++;
                }
                p[strcspn(p, "\n")] = 0;
                snprintf(buf, len, "%s", p);
            }
            break;
        }
    }
    if (f) {
        fclose(f);
    }
}

/* The 1-minute load average, or -1. */
static double load1(void)
{
    double l = -1;
    FILE *f = fopen("/proc/loadavg", "r");
    if (f) {
        if (fscanf(f, "%lf", &l) != 1) {
            l = -1;
        }
        fclose(f);
    }
    return l;
}

/* ---- one measurement --------------------------------------------------- */

static void measure_here(const bench_workload *w, const bench_adapter *a, const bench_config *cfg,
                         bench_result *r)
{
    memset(r, 0, sizeof *r);
    prctl(PR_SET_TIMERSLACK, 1UL, 0, 0, 0); /* the completion poll sleeps 20 us at a time */
    bench_g.malloc_arg = false;             /* the *-malloc workloads set it (--no-fork runs several here) */
    w->measure(a, cfg, r);
}

static void measure_forked(const options *o, const bench_workload *w, const bench_adapter *a, bench_result *r)
{
    memset(r, 0, sizeof *r);
    int fds[2];
    if (pipe(fds) != 0) {
        r->status = BENCH_RES_ERROR;
        snprintf(r->msg, sizeof r->msg, "pipe: %s", strerror(errno));
        return;
    }
    fflush(stdout);
    fflush(stderr);
    pid_t pid = fork();
    if (pid < 0) {
        r->status = BENCH_RES_ERROR;
        snprintf(r->msg, sizeof r->msg, "fork: %s", strerror(errno));
        close(fds[0]);
        close(fds[1]);
        return;
    }
    if (pid == 0) {
        close(fds[0]);
        bench_result mine;
        measure_here(w, a, &o->cfg, &mine);
        const char *p = (const char *)&mine;
        size_t left = sizeof mine;
        while (left > 0) {
            ssize_t n = write(fds[1], p, left);
            if (n < 0 && errno == EINTR) {
                continue;
            }
            if (n <= 0) {
                _exit(4);
            }
            p += n;
            left -= (size_t)n;
        }
        _exit(0); /* skip atexit handlers: some peers' threads are still parked */
    }
    close(fds[1]);
    size_t got = 0;
    char *dst = (char *)r;
    uint64_t deadline = bench_now_ns() + (uint64_t)(o->child_timeout_s * 1e9);
    bool timed_out = false;
    while (got < sizeof *r) {
        uint64_t now = bench_now_ns();
        if (now >= deadline) {
            timed_out = true;
            break;
        }
        struct pollfd pfd = {.fd = fds[0], .events = POLLIN};
        int pr = poll(&pfd, 1, (int)((deadline - now) / 1000000 + 1));
        if (pr < 0 && errno == EINTR) {
            continue;
        }
        if (pr <= 0) {
            continue;
        }
        ssize_t n = read(fds[0], dst + got, sizeof *r - got);
        if (n < 0 && errno == EINTR) {
            continue;
        }
        if (n <= 0) {
            break;
        }
        got += (size_t)n;
    }
    close(fds[0]);
    if (timed_out) {
        kill(pid, SIGKILL);
    }
    int st = 0;
    while (waitpid(pid, &st, 0) < 0 && errno == EINTR) {
    }
    if (got == sizeof *r) {
        return;
    }
    memset(r, 0, sizeof *r);
    r->status = BENCH_RES_ERROR;
    if (timed_out) {
        snprintf(r->msg, sizeof r->msg, "HUNG: no result after %.0f s (killed); tasks may have been lost",
                 o->child_timeout_s);
    } else if (WIFSIGNALED(st)) {
        snprintf(r->msg, sizeof r->msg, "CRASHED: killed by signal %d (%s)", WTERMSIG(st),
                 strsignal(WTERMSIG(st)));
    } else {
        snprintf(r->msg, sizeof r->msg, "the measurement exited with status %d and no result",
                 WIFEXITED(st) ? WEXITSTATUS(st) : -1);
    }
}

/* ---- statistics and output --------------------------------------------- */

static int cmp_double(const void *x, const void *y)
{
    double a = *(const double *)x, b = *(const double *)y;
    return a < b ? -1 : a > b;
}

static void summarise(cell *c, unsigned runs)
{
    double vals[MAX_RUNS];
    c->ok = 0;
    c->status = BENCH_RES_OK;
    c->msg[0] = 0;
    for (unsigned r = 0; r < runs; r++) {
        const bench_result *res = &c->runs[r];
        if (res->status > c->status) {
            c->status = res->status;
        }
        if (res->msg[0] && !c->msg[0]) {
            snprintf(c->msg, sizeof c->msg, "%s", res->msg);
        }
        if (res->status == BENCH_RES_OK) {
            c->ok++;
        }
    }
    for (int k = 0; k < BENCH_COLS; k++) {
        unsigned n = 0;
        for (unsigned r = 0; r < runs; r++) {
            if (c->runs[r].status == BENCH_RES_OK) {
                vals[n++] = c->runs[r].v[k];
            }
        }
        if (n == 0) {
            c->median[k] = NAN;
            continue;
        }
        qsort(vals, n, sizeof(double), cmp_double);
        c->median[k] = n % 2 ? vals[n / 2] : (vals[n / 2 - 1] + vals[n / 2]) / 2;
        if (k == 0) {
            c->min = vals[0];
            c->max = vals[n - 1];
        }
    }
}

/* A number in 8 characters: 3 significant digits with k/M/G for big ones. */
static void fmt_num(char *buf, size_t len, double v)
{
    if (isnan(v)) {
        snprintf(buf, len, "-");
    } else if (fabs(v) >= 1e9) {
        snprintf(buf, len, "%.3gG", v / 1e9);
    } else if (fabs(v) >= 1e6) {
        snprintf(buf, len, "%.3gM", v / 1e6);
    } else if (fabs(v) >= 1e4) {
        snprintf(buf, len, "%.3gk", v / 1e3);
    } else if (v == 0 || fabs(v) >= 100) {
        snprintf(buf, len, "%.0f", v);
    } else {
        snprintf(buf, len, "%.3g", v);
    }
}

static const bench_adapter *main_sluice(void)
{
    for (size_t i = 0; bench_adapters[i]; i++) {
        if (bench_adapters[i]->flags & BENCH_F_MAIN) {
            return bench_adapters[i];
        }
    }
    return NULL;
}

static int main_index(void)
{
    for (int i = 0; bench_adapters[i]; i++) {
        if (bench_adapters[i]->flags & BENCH_F_MAIN) {
            return i;
        }
    }
    return -1;
}

static void print_table(const options *o, const bench_workload *w, cell *cells)
{
    char desc[400];
    w->describe(&o->cfg, desc, sizeof desc);
    printf("\n== %s: %s\n   %s\n   primary: %s (%s); median of %u run%s\n", w->name, w->title, desc,
           w->cols[0],
           w->better > 0   ? "higher is better"
           : w->better < 0 ? "lower is better"
                           : "see the notes",
           o->cfg.runs, o->cfg.runs == 1 ? "" : "s");
    printf("%-23s %9s %9s %9s %9s", "implementation", "median", "min", "max", "x/sluice");
    for (int k = 1; k < w->ncols; k++) {
        printf(" %11s", w->cols[k]);
    }
    printf("\n");
    int mi = main_index();
    double ref = mi >= 0 && cells[mi].taken && cells[mi].ok ? cells[mi].median[0] : NAN;
    for (int i = 0; bench_adapters[i]; i++) {
        cell *c = &cells[i];
        if (!c->taken) {
            continue;
        }
        char med[16], mn[16], mx[16], ratio[16] = "-";
        if (c->ok == 0) {
            printf("%-23s %s\n", bench_adapters[i]->name, c->msg[0] ? c->msg : "no result");
            continue;
        }
        fmt_num(med, sizeof med, c->median[0]);
        fmt_num(mn, sizeof mn, c->min);
        fmt_num(mx, sizeof mx, c->max);
        if (!isnan(ref) && ref != 0) {
            snprintf(ratio, sizeof ratio, "%.2f", c->median[0] / ref);
        }
        printf("%-23s %9s %9s %9s %9s", bench_adapters[i]->name, med, mn, mx, ratio);
        for (int k = 1; k < w->ncols; k++) {
            char v[16];
            fmt_num(v, sizeof v, c->median[k]);
            printf(" %11s", v);
        }
        printf("\n");
        if (c->msg[0]) {
            printf("%-23s   note: %s\n", "", c->msg);
        }
    }
    fflush(stdout);
}

/* ---- targets (issue 7) ------------------------------------------------- */

typedef struct target {
    char name[96];
    char detail[160];
    double value;
    double goal;
    bool at_least; /* value >= goal, else value <= goal (or < for latency) */
    bool met;
    bool known;
} target;

static int impl_index(const char *name)
{
    for (int i = 0; bench_adapters[i]; i++) {
        if (strcmp(bench_adapters[i]->name, name) == 0) {
            return i;
        }
    }
    return -1;
}

static int workload_index(const char *name)
{
    for (size_t i = 0; i < bench_workload_count; i++) {
        if (strcmp(bench_workloads[i].name, name) == 0) {
            return (int)i;
        }
    }
    return -1;
}

static double med(cell (*all)[MAX_IMPLS], const char *wl, const char *impl, int col)
{
    int w = workload_index(wl), i = impl_index(impl);
    if (w < 0 || i < 0 || !all[w][i].taken || all[w][i].ok == 0) {
        return NAN;
    }
    return all[w][i].median[col];
}

/* The best (highest) primary median among the C peers in a workload. */
static double best_peer(cell (*all)[MAX_IMPLS], const char *wl, const char **who)
{
    int w = workload_index(wl);
    double best = NAN;
    for (int i = 0; w >= 0 && bench_adapters[i]; i++) {
        const bench_adapter *a = bench_adapters[i];
        if ((a->flags & (BENCH_F_SLUICE | BENCH_F_REF)) || !all[w][i].taken || all[w][i].ok == 0) {
            continue;
        }
        if (isnan(best) || all[w][i].median[0] > best) {
            best = all[w][i].median[0];
            *who = a->name;
        }
    }
    return best;
}

/* The targets for one Sluice configuration: `on` is its default-metrics
 * row, `off` its timing-off row (issue 7 and issue 19). Evaluated for the
 * default FIFO ring and for queue_discipline fifo_batch, a per-pool choice
 * (docs/RATIONALE.md, "deep-queue batch claims"). */
static size_t config_targets(cell (*all)[MAX_IMPLS], target *t, const char *on_impl, const char *off_impl)
{
    size_t n = 0;
    const char *wls[] = {"noop-1p", "noop-Np"};
    for (int k = 0; k < 2; k++) {
        const char *who = "?";
        double peer = best_peer(all, wls[k], &who);
        double off = med(all, wls[k], off_impl, 0);
        double on = med(all, wls[k], on_impl, 0);
        double ring = med(all, wls[k], "raw-ring", 0);
        t[n] = (target){.value = off / peer, .goal = 4, .at_least = true};
        snprintf(t[n].name, sizeof t[n].name, "%s: %s / best C peer", wls[k], off_impl);
        snprintf(t[n].detail, sizeof t[n].detail, "best peer %s", who);
        n++;
        t[n] = (target){.value = on / peer, .goal = 2, .at_least = true};
        snprintf(t[n].name, sizeof t[n].name, "%s: %s (default metrics) / best C peer", wls[k], on_impl);
        snprintf(t[n].detail, sizeof t[n].detail, "best peer %s", who);
        n++;
        t[n] = (target){.value = off / ring, .goal = 1.0 / 3.0, .at_least = true};
        snprintf(t[n].name, sizeof t[n].name, "%s: %s / raw ring", wls[k], off_impl);
        n++;
    }
    /* Issue 19: with the argument malloc'ed by the producer and freed by
     * the task (the default metrics, as a service would run it). */
    const char *mwls[] = {"noop-malloc", "noop-malloc-Np"};
    const double mgoal[] = {2, 1.5};
    for (int k = 0; k < 2; k++) {
        const char *who = "?";
        double peer = best_peer(all, mwls[k], &who);
        t[n] = (target){.value = med(all, mwls[k], on_impl, 0) / peer, .goal = mgoal[k], .at_least = true};
        snprintf(t[n].name, sizeof t[n].name, "%s: %s / best C peer", mwls[k], on_impl);
        snprintf(t[n].detail, sizeof t[n].detail, "best peer %s", who);
        n++;
    }
    t[n] = (target){.value = med(all, "spin-1us", on_impl, 1), .goal = 1.15};
    snprintf(t[n].name, sizeof t[n].name, "spin-1us: %s wall / ideal", on_impl);
    n++;
    t[n] = (target){.value = med(all, "sleep-1ms", on_impl, 1), .goal = 1.05};
    snprintf(t[n].name, sizeof t[n].name, "sleep-1ms: %s wall / ideal", on_impl);
    n++;
    t[n] = (target){.value = med(all, "latency", on_impl, 0), .goal = 30};
    snprintf(t[n].name, sizeof t[n].name, "latency: %s p99 hand-off, us (< 30)", on_impl);
    n++;
    t[n] = (target){.value = med(all, "idle", on_impl, 0), .goal = 0.1};
    snprintf(t[n].name, sizeof t[n].name, "idle: %s CPU %% of one core (<= 0.1)", on_impl);
    n++;
    return n;
}

#define MAX_TARGETS 32

static size_t compute_targets(cell (*all)[MAX_IMPLS], target *t)
{
    size_t n = config_targets(all, t, "sluice", "sluice-notiming");
    n += config_targets(all, t + n, "sluice-fifo-batch", "sluice-fifo-batch-notiming");
    for (size_t i = 0; i < n; i++) {
        t[i].known = !isnan(t[i].value) && !isinf(t[i].value);
        if (t[i].known) {
            t[i].met = t[i].at_least ? t[i].value >= t[i].goal : t[i].value <= t[i].goal;
        }
    }
    return n;
}

static void print_targets(const target *t, size_t n)
{
    printf("\n== targets (issue 7), from the medians above\n");
    for (size_t i = 0; i < n; i++) {
        if (!t[i].known) {
            printf("  %-62s  not measured\n", t[i].name);
            continue;
        }
        double by = t[i].at_least ? t[i].goal / t[i].value : t[i].value / t[i].goal;
        printf("  %-62s %8.3g  goal %s %-6.3g %s", t[i].name, t[i].value,
               t[i].at_least ? ">=" : "<=", t[i].goal, t[i].met ? "MET" : "MISSED");
        if (!t[i].met) {
            printf(" (off by %.2fx)", by);
        }
        if (t[i].detail[0]) {
            printf("  [%s]", t[i].detail);
        }
        printf("\n");
    }
}

/* The pools against the floor (the same tasks with no pool, same run):
 * what a target "x ideal" leaves to the machine, and the pool's own
 * share. Figures, not targets: the targets above stay against the ideal. */
static void print_floor(const bench_config *cfg, cell (*all)[MAX_IMPLS])
{
    const char *rows[] = {"sluice", "sluice-fifo-batch"};
    const char *wls[] = {"spin-1us", "latency"};
    bool any = cfg->sleep_lone_ns > 0 && !isnan(med(all, "sleep-1ms", "sluice", 0));
    for (size_t k = 0; k < 2; k++) {
        any |= !isnan(med(all, wls[k], "floor", 0));
    }
    if (!any) {
        return;
    }
    printf("\n== against the floor (the same tasks with no pool, this run): the pool's own share\n");
    char name[96];
    if (cfg->sleep_lone_ns > 0) {
        /* sleep-1ms has no floor row (workloads.c says why): its share is
         * read against a lone thread's sleep, measured at start. */
        printf("  %-62s %8.3g\n", "sleep-1ms: a lone thread's 1 ms sleep / 1 ms", cfg->sleep_lone_ns / 1e6);
        for (size_t r = 0; r < sizeof rows / sizeof rows[0]; r++) {
            double x = med(all, "sleep-1ms", rows[r], 1);
            if (!isnan(x)) {
                snprintf(name, sizeof name, "sleep-1ms: %s wall / (ideal x lone sleep)", rows[r]);
                printf("  %-62s %8.3g\n", name, x / (cfg->sleep_lone_ns / 1e6));
            }
        }
    }
    for (size_t k = 0; k < 2; k++) {
        double f = med(all, wls[k], "floor", 0);
        if (isnan(f)) {
            continue;
        }
        bool lat = k == 1;
        snprintf(name, sizeof name, lat ? "%s: floor p99 hand-off, us" : "%s: floor wall / ideal", wls[k]);
        printf("  %-62s %8.3g\n", name, lat ? f : med(all, wls[k], "floor", 1));
        for (size_t r = 0; r < sizeof rows / sizeof rows[0]; r++) {
            double v = med(all, wls[k], rows[r], 0);
            if (isnan(v)) {
                continue;
            }
            snprintf(name, sizeof name, lat ? "%s: %s p99 - floor p99, us" : "%s: %s wall / floor wall",
                     wls[k], rows[r]);
            printf("  %-62s %8.3g\n", name, lat ? v - f : v / f);
        }
    }
}

/* ---- JSON -------------------------------------------------------------- */

static void json_str(const char *s)
{
    putchar('"');
    for (; *s; s++) {
        unsigned char ch = (unsigned char)*s;
        if (ch == '"' || ch == '\\') {
            printf("\\%c", ch);
        } else if (ch < 0x20) {
            printf("\\u%04x", ch);
        } else {
            putchar(ch);
        }
    }
    putchar('"');
}

static void json_num(double v)
{
    if (isnan(v) || isinf(v)) {
        printf("null");
    } else {
        printf("%.6g", v);
    }
}

static void print_json(const options *o, const char *model, cell (*all)[MAX_IMPLS], const bool *wl_on,
                       const target *t, size_t nt)
{
    struct utsname u;
    uname(&u);
    printf("{\n  \"machine\": {\"cpu_model\": ");
    json_str(model);
    printf(", \"cpus\": %u, \"kernel\": ", o->cfg.cpus);
    json_str(u.release);
    printf(", \"load_start\": ");
    json_num(load_start);
    printf(", \"load_end\": ");
    json_num(load_end);
    printf(
        "},\n  \"config\": {\"quick\": %s, \"runs\": %u, \"workers\": %u, \"producers\": %u, \"spin_ns\": ",
        o->cfg.quick ? "true" : "false", o->cfg.runs, o->cfg.workers, o->cfg.producers);
    json_num(o->cfg.spin_ns);
    printf(", \"sleep_lone_ns\": ");
    json_num(o->cfg.sleep_lone_ns);
    printf("},\n  \"workloads\": [");
    int mi = main_index();
    bool first_w = true;
    for (size_t wi = 0; wi < bench_workload_count; wi++) {
        if (!wl_on[wi]) {
            continue;
        }
        const bench_workload *w = &bench_workloads[wi];
        char desc[400];
        w->describe(&o->cfg, desc, sizeof desc);
        printf("%s\n    {\"name\": ", first_w ? "" : ",");
        first_w = false;
        json_str(w->name);
        printf(", \"description\": ");
        json_str(desc);
        printf(", \"primary\": ");
        json_str(w->cols[0]);
        printf(", \"better\": \"%s\", \"results\": [", w->better > 0   ? "higher"
                                                       : w->better < 0 ? "lower"
                                                                       : "n/a");
        double ref = mi >= 0 && all[wi][mi].taken && all[wi][mi].ok ? all[wi][mi].median[0] : NAN;
        bool first_r = true;
        for (int i = 0; bench_adapters[i]; i++) {
            cell *c = &all[wi][i];
            if (!c->taken) {
                continue;
            }
            printf("%s\n      {\"impl\": ", first_r ? "" : ",");
            first_r = false;
            json_str(bench_adapters[i]->name);
            printf(", \"ok_runs\": %u, \"median\": ", c->ok);
            json_num(c->ok ? c->median[0] : NAN);
            printf(", \"min\": ");
            json_num(c->ok ? c->min : NAN);
            printf(", \"max\": ");
            json_num(c->ok ? c->max : NAN);
            printf(", \"ratio_to_sluice\": ");
            json_num(c->ok && ref != 0 ? c->median[0] / ref : NAN);
            printf(", \"columns\": {");
            for (int k = 0; k < w->ncols; k++) {
                printf("%s", k ? ", " : "");
                json_str(w->cols[k]);
                printf(": ");
                json_num(c->ok ? c->median[k] : NAN);
            }
            printf("}, \"runs\": [");
            for (unsigned r = 0; r < o->cfg.runs; r++) {
                printf("%s", r ? ", " : "");
                json_num(c->runs[r].status == BENCH_RES_OK ? c->runs[r].v[0] : NAN);
            }
            printf("], \"status\": \"%s\"", c->status == BENCH_RES_OK          ? "ok"
                                            : c->status == BENCH_RES_INTEGRITY ? "integrity"
                                                                               : "error");
            if (c->msg[0]) {
                printf(", \"note\": ");
                json_str(c->msg);
            }
            printf("}");
        }
        printf("\n    ]}");
    }
    printf("\n  ],\n  \"targets\": [");
    for (size_t i = 0; i < nt; i++) {
        printf("%s\n    {\"name\": ", i ? "," : "");
        json_str(t[i].name);
        printf(", \"value\": ");
        json_num(t[i].known ? t[i].value : NAN);
        printf(", \"goal\": ");
        json_num(t[i].goal);
        printf(", \"at_least\": %s, \"met\": %s}", t[i].at_least ? "true" : "false",
               !t[i].known ? "null"
               : t[i].met  ? "true"
                           : "false");
    }
    printf("\n  ],\n  \"failures\": %d\n}\n", failures);
}

/* ---- main -------------------------------------------------------------- */

static cell all_cells[BENCH_MAX_WORKLOADS][MAX_IMPLS];

/* ---- --scaling --------------------------------------------------------- */

/* 1, 2, 4, ... below cpus, then cpus: the points of one axis. */
static unsigned scaling_axis(unsigned cpus, unsigned *out, unsigned max)
{
    unsigned n = 0;
    for (unsigned v = 1; v < cpus && n + 1 < max; v *= 2) {
        out[n++] = v;
    }
    out[n++] = cpus;
    return n;
}

/* noop-Np's measurement at every (K, producers) point, each
 * implementation's median of cfg.runs runs (interleaved as in the
 * workloads), one row per point; then per point the Sluice rows' ratios
 * to the raw ring and to the best C peer of that point. The raw ring has
 * one consumer whatever K is: it is the hand-off limit, not a pool. */
static int run_scaling(const options *o)
{
    const bench_workload *w = NULL;
    for (size_t i = 0; i < bench_workload_count; i++) {
        if (strcmp(bench_workloads[i].name, "noop-Np") == 0) {
            w = &bench_workloads[i];
        }
    }
    if (!w) {
        fprintf(stderr, "sluice-bench: --scaling needs the noop-Np workload\n");
        return 1;
    }
    const bench_adapter *ms = main_sluice();
    int idx[MAX_IMPLS];
    int n = 0, ring = -1;
    for (int i = 0; bench_adapters[i] && n < MAX_IMPLS; i++) {
        const bench_adapter *a = bench_adapters[i];
        if ((a->flags & BENCH_F_SELFTEST) || !w->takes(a) || !(in_list(o->impls, a->name) || a == ms)) {
            continue;
        }
        if (a->flags & BENCH_F_REF) {
            ring = n;
        }
        idx[n++] = i;
    }
    unsigned ks[16], ps[16];
    unsigned nk = scaling_axis(o->cfg.cpus, ks, 16), np = scaling_axis(o->cfg.cpus, ps, 16);
    printf("\n== scaling: no-op throughput (tasks/s, median of %u), K workers x P producers, N=%llu a run\n",
           o->cfg.runs, (unsigned long long)o->cfg.n_noop);
    printf("%4s %4s", "K", "P");
    for (int j = 0; j < n; j++) {
        printf(" %*s",
               (int)(strlen(bench_adapters[idx[j]]->name) > 9 ? strlen(bench_adapters[idx[j]]->name) : 9),
               bench_adapters[idx[j]]->name);
    }
    printf("\n");
    static cell cells[16 * 16][MAX_IMPLS];
    static bench_result runs[MAX_IMPLS][MAX_RUNS];
    options po = *o;
    bool progress = !o->verbose && isatty(STDERR_FILENO);
    for (unsigned ki = 0; ki < nk; ki++) {
        for (unsigned pi = 0; pi < np; pi++) {
            po.cfg.workers = ks[ki];
            po.cfg.producers = ps[pi];
            cell *row = cells[ki * 16 + pi];
            for (unsigned r = 0; r < o->cfg.runs; r++) {
                for (int j = 0; j < n; j++) {
                    const bench_adapter *a = bench_adapters[idx[j]];
                    if (progress) {
                        fprintf(stderr, "\r\033[K[scaling K=%u P=%u] run %u/%u: %s ", ks[ki], ps[pi], r + 1,
                                o->cfg.runs, a->name);
                    }
                    measure_forked(&po, w, a, &runs[j][r]);
                    if (runs[j][r].status == BENCH_RES_ERROR || runs[j][r].status == BENCH_RES_INTEGRITY) {
                        failures++;
                        fprintf(stderr, "%ssluice-bench: FAILED: scaling K=%u P=%u / %s run %u: %s\n",
                                progress ? "\n" : "", ks[ki], ps[pi], a->name, r + 1, runs[j][r].msg);
                    }
                }
            }
            if (progress) {
                fprintf(stderr, "\r\033[K");
            }
            printf("%4u %4u", ks[ki], ps[pi]);
            for (int j = 0; j < n; j++) {
                memcpy(row[j].runs, runs[j], sizeof runs[j]);
                row[j].taken = true;
                summarise(&row[j], o->cfg.runs);
                char num[32];
                fmt_num(num, sizeof num, row[j].ok ? row[j].median[0] : NAN);
                size_t len = strlen(bench_adapters[idx[j]]->name);
                printf(" %*s", (int)(len > 9 ? len : 9), num);
            }
            printf("\n");
            fflush(stdout);
        }
    }
    printf(
        "\nratios per point (Sluice rows): x ring = / raw-ring, x peer = / the best C peer at that point\n");
    printf("%4s %4s %-24s %8s %8s  %s\n", "K", "P", "implementation", "x ring", "x peer", "best peer");
    for (unsigned ki = 0; ki < nk; ki++) {
        for (unsigned pi = 0; pi < np; pi++) {
            cell *row = cells[ki * 16 + pi];
            double best = NAN;
            const char *who = "-";
            for (int j = 0; j < n; j++) {
                const bench_adapter *a = bench_adapters[idx[j]];
                if (!(a->flags & (BENCH_F_SLUICE | BENCH_F_REF)) && row[j].ok &&
                    (isnan(best) || row[j].median[0] > best)) {
                    best = row[j].median[0];
                    who = a->name;
                }
            }
            double rv = ring >= 0 && row[ring].ok ? row[ring].median[0] : NAN;
            for (int j = 0; j < n; j++) {
                const bench_adapter *a = bench_adapters[idx[j]];
                if (!(a->flags & BENCH_F_SLUICE) || !row[j].ok) {
                    continue;
                }
                printf("%4u %4u %-24s %8.3g %8.3g  %s\n", ks[ki], ps[pi], a->name, row[j].median[0] / rv,
                       row[j].median[0] / best, who);
            }
        }
    }
    return failures ? 1 : 0;
}

int main(int argc, char **argv)
{
    options o = {0};
    if (parse_args(argc, argv, &o) != 0) {
        return 2;
    }
    if (o.list) {
        printf("workloads:\n");
        for (size_t i = 0; i < bench_workload_count; i++) {
            printf("  %-10s %s\n", bench_workloads[i].name, bench_workloads[i].title);
        }
        printf("implementations:\n");
        for (size_t i = 0; bench_adapters[i]; i++) {
            printf("  %-23s %s\n", bench_adapters[i]->name, bench_adapters[i]->overflow);
        }
        return 0;
    }
    signal(SIGPIPE, SIG_IGN);
    bench_config *cfg = &o.cfg;
    cfg->spin_iters = bench_spin_calibrate(1000, &cfg->spin_ns);
    cfg->burst_iters = bench_spin_calibrate(5000, &cfg->burst_ns);
    if (!cfg->quick && !o.scaling && in_list(o.workloads, "sleep-1ms")) {
        cfg->sleep_lone_ns = bench_sleep_lone_ns(100);
    }

    char model[256];
    cpu_model(model, sizeof model);
    FILE *info = o.json ? stderr : stdout;
    fprintf(info, "sluice-bench: %s, %u CPUs; %s mode, %u run%s per implementation\n", model, cfg->cpus,
            cfg->quick ? "quick" : "full", cfg->runs, cfg->runs == 1 ? "" : "s");
    fprintf(info, "versions: %s, glib %u.%u.%u, libuv %s, apr-util %s, C-Thread-Pool (Debian source)\n",
#ifdef BENCH_HAVE_SLUICE
            "sluice " SLUICE_VERSION_STRING,
#else
            "sluice NOT BUILT (no pool to link yet)",
#endif
            glib_major_version, glib_minor_version, glib_micro_version, uv_version_string(),
            apu_version_string());
    fprintf(info, "calibrated spin: %.0f ns (~1 us task), %.0f ns (~5 us burst task)\n", cfg->spin_ns,
            cfg->burst_ns);
    if (cfg->sleep_lone_ns > 0) {
        fprintf(info, "a lone thread's 1 ms sleep: %.3f ms (median of 100)\n", cfg->sleep_lone_ns / 1e6);
    }
    load_start = load1();
    fprintf(info, "load average at start: %.2f on %u CPUs\n", load_start, cfg->cpus);
    if (load_start > cfg->cpus * 0.5) {
        fprintf(info,
                "WARNING: this machine is busy; wall-clock figures will be noisy. The CPU ns/task columns\n"
                "         (CPU time of all the measurement's threads) hold up under load.\n");
    }

    if (o.scaling) {
        int rc = run_scaling(&o);
        printf("\nload average: %.2f at start, %.2f at end, on %u CPUs\n", load_start, load1(), o.cfg.cpus);
        printf("\n%s\n", rc ? "RESULT: FAILED (see the FAILED lines)"
                            : "RESULT: ok (every task of every implementation ran exactly once)");
        return rc;
    }
    const bench_adapter *ms = main_sluice();
    bool progress = !o.verbose && isatty(STDERR_FILENO);
    bool wl_on[BENCH_MAX_WORKLOADS] = {0};
    for (size_t wi = 0; wi < bench_workload_count; wi++) {
        const bench_workload *w = &bench_workloads[wi];
        if (!in_list(o.workloads, w->name)) {
            continue;
        }
        wl_on[wi] = true;
        cell *cells = all_cells[wi];
        for (int i = 0; bench_adapters[i]; i++) {
            const bench_adapter *a = bench_adapters[i];
            if (a->flags & BENCH_F_SELFTEST) {
                cells[i].taken = o.impls && in_list(o.impls, a->name) && w->takes_selftest;
            } else {
                cells[i].taken = w->takes(a) && (in_list(o.impls, a->name) || (a == ms && !o.no_fork));
            }
        }
        for (unsigned r = 0; r < cfg->runs; r++) {
            for (int i = 0; bench_adapters[i]; i++) {
                if (!cells[i].taken) {
                    continue;
                }
                const bench_adapter *a = bench_adapters[i];
                if (progress) {
                    fprintf(stderr, "\r\033[K[%s] run %u/%u: %s ", w->name, r + 1, cfg->runs, a->name);
                }
                uint64_t t_start = bench_now_ns();
                if (o.no_fork) {
                    measure_here(w, a, cfg, &cells[i].runs[r]);
                } else {
                    measure_forked(&o, w, a, &cells[i].runs[r]);
                }
                const bench_result *res = &cells[i].runs[r];
                if (o.verbose) {
                    fprintf(stderr, "[%s] run %u/%u %-18s %-9s %12.6g  (%.2f s)\n", w->name, r + 1, cfg->runs,
                            a->name, res->status == BENCH_RES_OK ? "ok" : "FAILED", res->v[0],
                            (double)(bench_now_ns() - t_start) / 1e9);
                }
                if (res->status == BENCH_RES_ERROR || res->status == BENCH_RES_INTEGRITY) {
                    failures++;
                    fprintf(stderr, "%ssluice-bench: FAILED: %s / %s run %u: %s\n", progress ? "\n" : "",
                            w->name, a->name, r + 1, res->msg);
                }
            }
        }
        if (progress) {
            fprintf(stderr, "\r\033[K");
        }
        for (int i = 0; bench_adapters[i]; i++) {
            if (cells[i].taken) {
                summarise(&cells[i], cfg->runs);
            }
        }
        if (!o.json) {
            print_table(&o, w, cells);
        }
    }
    load_end = load1();
    target t[MAX_TARGETS];
    size_t nt = compute_targets(all_cells, t);
    if (o.json) {
        print_json(&o, model, all_cells, wl_on, t, nt);
    } else {
        print_targets(t, nt);
        print_floor(&o.cfg, all_cells);
        printf("\nload average: %.2f at start, %.2f at end, on %u CPUs\n", load_start, load_end, o.cfg.cpus);
        printf("\n%s\n",
               failures ? "RESULT: FAILED (see the FAILED lines: lost or duplicated tasks, crashes, errors)"
                        : "RESULT: ok (every task of every implementation ran exactly once)");
    }
    return failures ? 1 : 0;
}
