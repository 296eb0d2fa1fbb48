/*
 * tools/sluice/demo_saas.c - `sluice demo --scenario saas`: the reference
 * text's multi-tenant case study (transcribe-api), run twice at once.
 *
 * Purpose. One shared pool, K=64; customer A submits 500 long jobs and
 * everyone else waits for hours. This scenario replays that hour through
 * two pools side by side, built from one sluice.yaml: `transcribe-fifo`
 * (the FIFO ring) and `transcribe-fair` (`queue_discipline: fair`, every
 * tenant weight 1), each K=64, and prints each tenant's completions and
 * p50/p99 wait in both, so the difference is one table.
 *
 * The load (the case study's, one simulated hour):
 *   A      500 jobs, all at the start (the flood)
 *   B-E    100 jobs an hour each, evenly spaced
 *   F-Z    100 jobs an hour in all (21 small tenants, in turn)
 *   every job runs 30-300 s (uniform, from --seed), the same job in both
 *   pools at the same instant.
 *
 * Time is scaled: the simulated hour takes --duration of real time (10 s by
 * default, so a simulated second is 2.8 ms), and a job sleeps for its
 * scaled length (the jobs are CPU-bound in the story; sleeping keeps the
 * demo's result independent of how many cores this machine has). The
 * report is taken at the end of the hour: a job not started by then
 * counts with the wait it has had so far, a lower bound (shown as ">"),
 * which is what its customer has seen. Then both pools are drained for a
 * moment and destroyed: jobs still queued are handed back and counted, so
 * every job is accounted for.
 *
 * Threads: main (the producer: one schedule, submitted to both pools at
 * each job's instant), and the pools' workers. Each job's record is
 * written by the worker that runs it (start time, then done) with
 * release stores and read by main with acquire loads; nothing else is
 * shared.
 */
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "sluice/clock.h"
#include "sluice/config.h"
#include "sluice/tenant.h"

#include "commands.h"
#include "demo.h"

/* The two pools, as a service would declare them. */
static const char SAAS_CONFIG[] = "service:\n"
                                  "  name: transcribe-api\n"
                                  "pools:\n"
                                  "  - name: transcribe-fifo\n"
                                  "    workers: 64\n"
                                  "    rationale: 16 cores x 4 pods, the case study's shared pool\n"
                                  "    queue_capacity: 2000\n"
                                  "  - name: transcribe-fair\n"
                                  "    workers: 64\n"
                                  "    rationale: 16 cores x 4 pods, the case study's shared pool\n"
                                  "    queue_capacity: 2000\n"
                                  "    queue_discipline: fair\n"
                                  "    tenants:\n"
                                  "      - {name: \"*\", weight: 1}\n";

#define SAAS_TENANTS 26     /* A..Z */
#define SAAS_FLOOD 500      /* A's jobs, all at the start */
#define SAAS_MID_RATE 100   /* B-E: jobs an hour each */
#define SAAS_SMALL_RATE 100 /* F-Z: jobs an hour in all */
#define SAAS_JOBS (SAAS_FLOOD + 4 * SAAS_MID_RATE + SAAS_SMALL_RATE)
#define SAAS_HOUR_S 3600.0

typedef struct saas_job {
    unsigned tenant;              /* 0 = A ... 25 = Z */
    double at_s;                  /* simulated submit instant, seconds into the hour */
    double length_s;              /* simulated run time */
    uint64_t real_ns;             /* scaled run time */
    uint64_t submit_ns[2];        /* real time of the submit to each pool (0 = not submitted) */
    _Atomic uint64_t start_ns[2]; /* set by the worker (release); 0 = not started */
    atomic_bool done[2];
} saas_job;

typedef struct saas_arg {
    saas_job *job;
    unsigned pool;
} saas_arg;

static uint64_t now_ns(void)
{
    return sluice_clock_now(NULL);
}

static void sleep_ns(uint64_t ns)
{
    struct timespec ts = {(time_t)(ns / 1000000000u), (long)(ns % 1000000000u)};
    while (nanosleep(&ts, &ts) != 0) {
    }
}

static int run_job(void *arg)
{
    saas_arg *a = arg;
    atomic_store_explicit(&a->job->start_ns[a->pool], now_ns(), memory_order_release);
    sleep_ns(a->job->real_ns);
    atomic_store_explicit(&a->job->done[a->pool], true, memory_order_release);
    return 0;
}

/* splitmix64: the schedule is a pure function of the seed. */
static uint64_t next_rand(uint64_t *s)
{
    uint64_t z = (*s += 0x9e3779b97f4a7c15ull);
    z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ull;
    z = (z ^ (z >> 27)) * 0x94d049bb133111ebull;
    return z ^ (z >> 31);
}

static int by_instant(const void *a, const void *b)
{
    const saas_job *x = a, *y = b;
    return (x->at_s > y->at_s) - (x->at_s < y->at_s);
}

static void make_schedule(saas_job *jobs, uint64_t seed, double scale)
{
    uint64_t s = seed;
    size_t n = 0;
    for (unsigned i = 0; i < SAAS_FLOOD; i++) {
        jobs[n++] = (saas_job){.tenant = 0, .at_s = 0};
    }
    for (unsigned t = 1; t <= 4; t++) {
        for (unsigned i = 0; i < SAAS_MID_RATE; i++) {
            /* evenly spaced, each tenant offset a little */
            jobs[n++] = (saas_job){.tenant = t, .at_s = (i + t / 5.0) * SAAS_HOUR_S / SAAS_MID_RATE};
        }
    }
    for (unsigned i = 0; i < SAAS_SMALL_RATE; i++) {
        jobs[n++] = (saas_job){.tenant = 5 + i % 21, .at_s = (i + 0.5) * SAAS_HOUR_S / SAAS_SMALL_RATE};
    }
    for (size_t i = 0; i < n; i++) {
        jobs[i].length_s = 30.0 + (double)(next_rand(&s) % 2701) / 10.0; /* 30.0 .. 300.0 */
        jobs[i].real_ns = (uint64_t)(jobs[i].length_s * scale * 1e9);
    }
    qsort(jobs, n, sizeof *jobs, by_instant);
}

/* One row of the report: a tenant (or a group) in one pool. */
typedef struct saas_row {
    unsigned submitted, done;
    double p50_s, p99_s;     /* simulated seconds */
    bool p50_open, p99_open; /* the percentile is a job still waiting: a lower bound */
} saas_row;

typedef struct wait_sample {
    double s;
    bool open;
} wait_sample;

static int by_wait(const void *a, const void *b)
{
    const wait_sample *x = a, *y = b;
    return (x->s > y->s) - (x->s < y->s);
}

/* The tenants [lo, hi] of one pool, judged at real time `end`. */
static saas_row row_of(const saas_job *jobs, size_t n, unsigned pool, unsigned lo, unsigned hi, uint64_t end,
                       double scale, wait_sample *buf)
{
    saas_row r = {0};
    size_t k = 0;
    for (size_t i = 0; i < n; i++) {
        const saas_job *j = &jobs[i];
        if (j->tenant < lo || j->tenant > hi || !j->submit_ns[pool]) {
            continue;
        }
        r.submitted++;
        uint64_t st = atomic_load_explicit(&((saas_job *)j)->start_ns[pool], memory_order_acquire);
        bool started = st && st <= end;
        if (started && atomic_load_explicit(&((saas_job *)j)->done[pool], memory_order_acquire)) {
            r.done++;
        }
        uint64_t to = started ? st : end;
        uint64_t w = to > j->submit_ns[pool] ? to - j->submit_ns[pool] : 0;
        buf[k++] = (wait_sample){(double)w / 1e9 / scale, !started};
    }
    if (k) {
        qsort(buf, k, sizeof *buf, by_wait);
        size_t i50 = (k - 1) / 2, i99 = (size_t)((double)(k - 1) * 0.99);
        r.p50_s = buf[i50].s;
        r.p50_open = buf[i50].open;
        r.p99_s = buf[i99].s;
        r.p99_open = buf[i99].open;
    }
    return r;
}

/* "42s", "12m05s", "1h02m" (simulated time), ">" when a lower bound. */
static const char *fmt_wait(double s, bool open, char *buf, size_t len)
{
    const char *gt = open ? ">" : "";
    if (s < 60) {
        snprintf(buf, len, "%s%.0fs", gt, s);
    } else if (s < 3600) {
        snprintf(buf, len, "%s%um%02us", gt, (unsigned)(s / 60), (unsigned)s % 60);
    } else {
        snprintf(buf, len, "%s%uh%02um", gt, (unsigned)(s / 3600), ((unsigned)s % 3600) / 60);
    }
    return buf;
}

static void print_row(const char *label, const saas_row *f, const saas_row *q)
{
    char a[32], b[32], c[32], d[32];
    printf("%-8s %9u   %6u %9s %9s    %6u %9s %9s\n", label, f->submitted, f->done,
           fmt_wait(f->p50_s, f->p50_open, a, sizeof a), fmt_wait(f->p99_s, f->p99_open, b, sizeof b),
           q->done, fmt_wait(q->p50_s, q->p50_open, c, sizeof c),
           fmt_wait(q->p99_s, q->p99_open, d, sizeof d));
}

static unsigned g_abandoned;

static void on_abandon(const sluice_abandoned *t, void *user)
{
    (void)t;
    (void)user;
    g_abandoned++; /* called on the draining thread (main) only */
}

int demo_scenario_saas(const demo_opts *o)
{
    uint64_t hour_ns = o->duration_ns ? o->duration_ns : 10 * SLUICE_NS_PER_SEC;
    double scale = (double)hour_ns / 1e9 / SAAS_HOUR_S; /* real seconds per simulated second */
    char err[2048];
    sluice_config *cfg = NULL;
    if (sluice_config_load_string(SAAS_CONFIG, sizeof SAAS_CONFIG - 1, "<saas>",
                                  &(sluice_config_load_opts){.no_env = true}, &cfg, err,
                                  sizeof err) != SLUICE_OK) {
        fprintf(stderr, "sluice demo: the saas scenario's config: %s\n", err);
        return SLUICE_EXIT_FAIL;
    }
    sluice_pool *pools[2] = {NULL, NULL};
    for (unsigned i = 0; i < 2; i++) {
        sluice_pool_config pc;
        sluice_config_pool_to_pool_config(&cfg->pools[i], &pc);
        pc.abandon_handler = on_abandon;
        if (sluice_pool_create(&pc, &pools[i], err, sizeof err) != SLUICE_OK ||
            sluice_config_pool_set_tenants(&cfg->pools[i], pools[i], err, sizeof err) != SLUICE_OK) {
            fprintf(stderr, "sluice demo: pool %s: %s\n", cfg->pools[i].name, err);
            sluice_pool_destroy(pools[0]);
            sluice_pool_destroy(pools[1]);
            sluice_config_free(cfg);
            return SLUICE_EXIT_FAIL;
        }
    }
    /* The fair pool's tenants, looked up once: submits carry the handle. */
    sluice_tenant *handles[SAAS_TENANTS] = {NULL};
    char names[SAAS_TENANTS][2];
    for (unsigned t = 0; t < SAAS_TENANTS; t++) {
        names[t][0] = (char)('A' + t);
        names[t][1] = '\0';
        if (sluice_pool_tenant_acquire(pools[1], names[t], &handles[t]) != SLUICE_OK) {
            handles[t] = NULL; /* submits then name the tenant instead */
        }
    }
    static saas_job jobs[SAAS_JOBS];
    static saas_arg args[2][SAAS_JOBS];
    memset(jobs, 0, sizeof jobs);
    make_schedule(jobs, o->seed, scale);

    printf("sluice demo --scenario saas: transcribe-api, one simulated hour in %.1fs (1 s = %.2f ms)\n",
           (double)hour_ns / 1e9, scale * 1e3);
    printf("two pools, K=64 each, the same jobs at the same instants: %s (fifo) and %s (fair)\n",
           cfg->pools[0].name, cfg->pools[1].name);
    printf("load: A floods %d jobs at the start; B-E %d jobs/h each; F-Z %d jobs/h in all; each 30-300 s\n\n",
           SAAS_FLOOD, SAAS_MID_RATE, SAAS_SMALL_RATE);
    fflush(stdout);

    uint64_t t0 = now_ns();
    unsigned refused = 0;
    for (size_t i = 0; i < SAAS_JOBS; i++) {
        uint64_t due = t0 + (uint64_t)(jobs[i].at_s * scale * 1e9);
        uint64_t now = now_ns();
        if (due > now) {
            sleep_ns(due - now);
        }
        for (unsigned p = 0; p < 2; p++) {
            args[p][i] = (saas_arg){&jobs[i], p};
            sluice_submit_opts so;
            memset(&so, 0, sizeof so);
            if (p == 1) {
                so.tenant = handles[jobs[i].tenant];
                so.tenant_name = handles[jobs[i].tenant] ? NULL : names[jobs[i].tenant];
            }
            jobs[i].submit_ns[p] = now_ns();
            if (sluice_pool_submit_ex(pools[p], run_job, &args[p][i], &so) != SLUICE_OK) {
                jobs[i].submit_ns[p] = 0;
                refused++;
            }
        }
    }
    uint64_t end = t0 + hour_ns;
    uint64_t now = now_ns();
    if (end > now) {
        sleep_ns(end - now);
    }
    end = now_ns();

    static wait_sample buf[SAAS_JOBS];
    printf("%-8s %9s   %-26s    %-26s\n", "", "", "FIFO pool (one queue)", "fair pool (per tenant)");
    printf("%-8s %9s   %6s %9s %9s    %6s %9s %9s\n", "tenant", "submitted", "done", "p50 wait", "p99 wait",
           "done", "p50 wait", "p99 wait");
    static const struct {
        const char *label;
        unsigned lo, hi;
    } groups[] = {{"A", 0, 0}, {"B", 1, 1}, {"C", 2, 2}, {"D", 3, 3}, {"E", 4, 4}, {"F-Z", 5, 25}};
    for (size_t g = 0; g < sizeof groups / sizeof groups[0]; g++) {
        saas_row f = row_of(jobs, SAAS_JOBS, 0, groups[g].lo, groups[g].hi, end, scale, buf);
        saas_row q = row_of(jobs, SAAS_JOBS, 1, groups[g].lo, groups[g].hi, end, scale, buf);
        print_row(groups[g].label, &f, &q);
    }
    saas_row f = row_of(jobs, SAAS_JOBS, 0, 1, 25, end, scale, buf);
    saas_row q = row_of(jobs, SAAS_JOBS, 1, 1, 25, end, scale, buf);
    printf("\n");
    print_row("B-Z", &f, &q);
    char a[32], b[32];
    printf("\nquiet tenants (B-Z): %u of %u done under FIFO, %u under fair; p99 wait %s vs %s.\n", f.done,
           f.submitted, q.done, fmt_wait(f.p99_s, f.p99_open, a, sizeof a),
           fmt_wait(q.p99_s, q.p99_open, b, sizeof b));
    printf("(waits in simulated time; \">\" = still waiting at the end of the hour, a lower bound)\n");
    fflush(stdout);

    /* Account for every job: what is still queued is handed back. */
    for (unsigned t = 0; t < SAAS_TENANTS; t++) {
        sluice_tenant_release(handles[t]);
    }
    uint64_t accepted = 0, finished = 0;
    for (unsigned p = 0; p < 2; p++) {
        sluice_pool_drain(pools[p], SLUICE_NS_PER_MS, NULL);
        sluice_pool_destroy(pools[p]); /* joins the jobs still running */
    }
    for (size_t i = 0; i < SAAS_JOBS; i++) {
        for (unsigned p = 0; p < 2; p++) {
            accepted += jobs[i].submit_ns[p] != 0;
            finished += atomic_load_explicit(&jobs[i].done[p], memory_order_acquire);
        }
    }
    bool balanced = accepted == finished + g_abandoned;
    printf("accounted: %llu jobs accepted = %llu finished + %u handed back unstarted%s\n",
           (unsigned long long)accepted, (unsigned long long)finished, g_abandoned,
           balanced ? "" : "  (NOT BALANCED)");
    sluice_config_free(cfg);
    if (refused) {
        fprintf(stderr, "sluice demo: %u submits refused\n", refused);
    }
    return balanced && !refused ? SLUICE_EXIT_OK : SLUICE_EXIT_FAIL;
}
