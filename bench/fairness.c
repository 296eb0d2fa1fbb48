/*
 * bench/fairness.c - sluice-bench-fairness: the FAIR queue discipline
 * against the FIFO ring, in the same run (issue 13's `fairness` workload;
 * a program of its own, like sluice-bench-keyed, because its figures are
 * per tenant rather than one number per pool implementation).
 *
 * Four parts, each printing figures and ratios, never a pass/fail:
 *
 *  1. flood   K = CPUs workers, tasks that hold a worker for 1 ms (sleep),
 *             four quiet tenants at rate q each (together 20% of the pool's
 *             capacity) and, in the flood runs, tenant A at 50 q (250% of
 *             capacity). Pool overflow DROP_OLDEST, so producers stay open
 *             loop. Runs: fair without the flood (the baseline), fair with
 *             it, FIFO with it. Reports each tenant's p50/p99 wait (exact,
 *             from per-task records), completions and drops, and the quiet
 *             tenants' p99 under the flood over their p99 without it; then
 *             (K > 1) the fair flood again with A at running_limit K-1,
 *             strict: one worker kept for the quiet tenants.
 *  2. shares  three tenants, weights 1:2:4, each with a backlog queued
 *             before K workers start; the shares of the first 10,000 starts
 *             against 1/7, 2/7, 4/7, and Jain's index of the weight-
 *             normalised shares; then eight equal-weight tenants, Jain's
 *             index of theirs.
 *  3. noop    no-op tasks/s of the FIFO ring and of the fair queue with
 *             one tenant and with 1,000 active tenants (handles, round
 *             robin), P producers, K workers, R rounds of all three: each
 *             round's figures and ratios, the best of each, and the median
 *             of the rounds' ratios.
 *  4. names   100,000 distinct tenant names submitted by name to a fair
 *             pool with the default max_tenants: the fair queue's memory,
 *             tenants tracked, tasks sharded, and the process RSS growth.
 *
 * Usage: sluice-bench-fairness [--quick] [--only flood|shares|noop|names]
 */
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "sluice/sluice.h"

static uint64_t now_ns(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000000000ull + (uint64_t)ts.tv_nsec;
}

static void sleep_until(uint64_t t)
{
    struct timespec ts = {.tv_sec = (time_t)(t / 1000000000ull), .tv_nsec = (long)(t % 1000000000ull)};
    while (clock_nanosleep(CLOCK_MONOTONIC, TIMER_ABSTIME, &ts, NULL) != 0) {
    }
}

static void sleep_ns(uint64_t ns)
{
    sleep_until(now_ns() + ns);
}

static uint64_t rss_kib(void)
{
    FILE *f = fopen("/proc/self/status", "r");
    if (!f) {
        return 0;
    }
    char line[256];
    uint64_t kib = 0;
    while (fgets(line, sizeof line, f)) {
        if (strncmp(line, "VmRSS:", 6) == 0) {
            kib = strtoull(line + 6, NULL, 10);
        }
    }
    fclose(f);
    return kib;
}

static int cmp_u64(const void *a, const void *b)
{
    uint64_t x = *(const uint64_t *)a, y = *(const uint64_t *)b;
    return x < y ? -1 : x > y;
}

static sluice_pool *make_pool(const char *name, bool fair, unsigned k, size_t cap, sluice_overflow ov)
{
    sluice_pool_config pc;
    sluice_pool_config_init(&pc);
    pc.name = name;
    pc.workers = k;
    pc.min_workers = k;
    pc.prewarm = true;
    pc.queue_capacity = cap;
    pc.overflow = ov;
    pc.timing_disabled = true; /* the bench times what it needs itself */
    if (fair) {
        pc.queue_discipline = SLUICE_QUEUE_FAIR;
        pc.fair.idle_forget_ns = UINT64_MAX;
        pc.fair.max_tenants = 4096;
    }
    sluice_pool *p = NULL;
    char err[256];
    if (sluice_pool_create(&pc, &p, err, sizeof err)) {
        fprintf(stderr, "pool %s: %s\n", name, err);
        exit(1);
    }
    return p;
}

/* ---- 1. flood ------------------------------------------------------------------- */

#define FLOOD_TENANTS 5 /* 0 = A (the flooder), 1..4 quiet */

typedef struct rec {
    uint64_t submit_ns;
    _Atomic uint64_t start_ns; /* 0: never started (dropped) */
    int tenant;
} rec;

static int task_hold_1ms(void *arg)
{
    rec *r = arg;
    atomic_store_explicit(&r->start_ns, now_ns(), memory_order_relaxed);
    sleep_ns(1000000);
    return 0;
}

typedef struct flood_run {
    sluice_pool *pool;
    bool fair;
    sluice_tenant *handles[FLOOD_TENANTS];
    rec *recs;
    _Atomic size_t nrecs;
    size_t cap;
    uint64_t t0, t1;
} flood_run;

typedef struct flood_producer {
    flood_run *run;
    double rate;      /* tasks per second */
    int first, count; /* tenants first .. first + count - 1, round robin */
} flood_producer;

static void *flood_produce(void *arg)
{
    flood_producer *fp = arg;
    flood_run *run = fp->run;
    double gap = 1e9 / fp->rate;
    uint64_t next = run->t0;
    for (uint64_t i = 0;; i++) {
        next = run->t0 + (uint64_t)(gap * (double)i);
        if (next >= run->t1) {
            break;
        }
        sleep_until(next);
        size_t slot = atomic_fetch_add(&run->nrecs, 1);
        if (slot >= run->cap) {
            break;
        }
        rec *r = &run->recs[slot];
        r->tenant = fp->first + (int)(i % (uint64_t)fp->count);
        r->submit_ns = now_ns();
        sluice_submit_opts o = {0};
        if (run->fair) {
            o.tenant = run->handles[r->tenant];
        }
        if (sluice_pool_submit_ex(run->pool, task_hold_1ms, r, &o) != SLUICE_OK) {
            r->submit_ns = 0; /* refused: not counted */
        }
    }
    return NULL;
}

typedef struct tenant_waits {
    double p50_ms, p99_ms;
    uint64_t done, dropped;
} tenant_waits;

/* a_cap: 0, or A's running_limit (strict) - workers kept for the others. */
static void flood_once(bool fair, bool flood, unsigned a_cap, unsigned k, double seconds, tenant_waits *out)
{
    flood_run run = {.fair = fair};
    double capacity = 1000.0 * k; /* tasks/s the pool can start */
    double q = 0.2 * capacity / 4.0;
    run.cap = (size_t)((4 * q + (flood ? 50 * q : 0)) * seconds * 1.2) + 1024;
    run.recs = calloc(run.cap, sizeof *run.recs);
    size_t qcap = (size_t)(capacity / 4); /* 250 ms of work */
    run.pool = make_pool(fair ? "fair" : "fifo", fair, k, qcap, SLUICE_OVERFLOW_DROP_OLDEST);
    if (fair) {
        const char *names[FLOOD_TENANTS] = {"A", "B", "C", "D", "E"};
        if (a_cap) {
            sluice_tenant_config tc = {.running_limit = a_cap, .strict = true};
            char why[256];
            if (sluice_pool_tenant_set(run.pool, "A", &tc, why, sizeof why) != SLUICE_OK) {
                fprintf(stderr, "sluice-bench-fairness: tenant A: %s\n", why);
                exit(1);
            }
        }
        for (int i = 0; i < FLOOD_TENANTS; i++) {
            sluice_pool_tenant_acquire(run.pool, names[i], &run.handles[i]);
        }
    }
    run.t0 = now_ns() + 20000000;
    run.t1 = run.t0 + (uint64_t)(seconds * 1e9);
    flood_producer quiet = {.run = &run, .rate = 4 * q, .first = 1, .count = 4};
    flood_producer a = {.run = &run, .rate = 50 * q, .first = 0, .count = 1};
    pthread_t th[2];
    pthread_create(&th[0], NULL, flood_produce, &quiet);
    if (flood) {
        pthread_create(&th[1], NULL, flood_produce, &a);
    }
    pthread_join(th[0], NULL);
    if (flood) {
        pthread_join(th[1], NULL);
    }
    sluice_pool_drain(run.pool, 0, NULL);
    size_t n = atomic_load(&run.nrecs);
    if (n > run.cap) {
        n = run.cap;
    }
    uint64_t *w = calloc(n + 1, sizeof *w);
    for (int t = 0; t < FLOOD_TENANTS; t++) {
        size_t m = 0;
        tenant_waits tw = {0};
        for (size_t i = 0; i < n; i++) {
            const rec *r = &run.recs[i];
            if (r->tenant != t || r->submit_ns == 0) {
                continue;
            }
            uint64_t s = atomic_load_explicit(&r->start_ns, memory_order_relaxed);
            if (s == 0) {
                tw.dropped++;
                continue;
            }
            w[m++] = s > r->submit_ns ? s - r->submit_ns : 0;
        }
        qsort(w, m, sizeof *w, cmp_u64);
        tw.done = m;
        if (m) {
            tw.p50_ms = (double)w[m / 2] / 1e6;
            tw.p99_ms = (double)w[(m * 99) / 100 < m ? (m * 99) / 100 : m - 1] / 1e6;
        }
        out[t] = tw;
    }
    free(w);
    for (int i = 0; i < FLOOD_TENANTS; i++) {
        sluice_tenant_release(run.handles[i]);
    }
    sluice_pool_destroy(run.pool);
    free(run.recs);
}

static double quiet_p99(const tenant_waits *tw)
{
    double worst = 0;
    for (int t = 1; t < FLOOD_TENANTS; t++) {
        if (tw[t].p99_ms > worst) {
            worst = tw[t].p99_ms;
        }
    }
    return worst;
}

static void part_flood(unsigned k, double seconds)
{
    tenant_waits base[FLOOD_TENANTS], fair[FLOOD_TENANTS], fifo[FLOOD_TENANTS], capped[FLOOD_TENANTS];
    unsigned a_cap = k > 1 ? k - 1 : 0; /* one worker kept for the quiet tenants */
    printf("\n== flood: K=%u, 1 ms tasks, quiet B-E at %.0f/s each (20%% of capacity), A at 50x (%.0f/s), "
           "%.1f s, DROP_OLDEST, queue %u\n",
           k, 0.05 * 1000.0 * k, 2.5 * 1000.0 * k, seconds, k * 250);
    flood_once(true, false, 0, k, seconds, base);
    flood_once(true, true, 0, k, seconds, fair);
    flood_once(false, true, 0, k, seconds, fifo);
    if (a_cap) {
        flood_once(true, true, a_cap, k, seconds, capped);
    }
    printf("%-7s | %-28s | %-28s | %-28s\n", "tenant", "fair, no flood", "fair, A floods", "FIFO, A floods");
    printf("%-7s | %8s %8s %10s | %8s %8s %10s | %8s %8s %10s\n", "", "p50 ms", "p99 ms", "done/drop",
           "p50 ms", "p99 ms", "done/drop", "p50 ms", "p99 ms", "done/drop");
    const char *names[FLOOD_TENANTS] = {"A", "B", "C", "D", "E"};
    for (int t = 0; t < FLOOD_TENANTS; t++) {
        printf("%-7s | %8.2f %8.2f %5llu/%-4llu | %8.2f %8.2f %5llu/%-4llu | %8.2f %8.2f %5llu/%-4llu\n",
               names[t], base[t].p50_ms, base[t].p99_ms, (unsigned long long)base[t].done,
               (unsigned long long)base[t].dropped, fair[t].p50_ms, fair[t].p99_ms,
               (unsigned long long)fair[t].done, (unsigned long long)fair[t].dropped, fifo[t].p50_ms,
               fifo[t].p99_ms, (unsigned long long)fifo[t].done, (unsigned long long)fifo[t].dropped);
    }
    double b = quiet_p99(base), f = quiet_p99(fair), o = quiet_p99(fifo);
    printf("quiet tenants' worst p99 wait: no flood %.2f ms; flood, fair %.2f ms (%.2fx the baseline); "
           "flood, FIFO %.2f ms (%.1fx)\n",
           b, f, b > 0 ? f / b : 0, o, b > 0 ? o / b : 0);
    /* The fair queue orders the queue; it cannot make a running 1 ms task
     * end sooner. With every worker busy with A, a quiet task waits for
     * one to free; keeping one worker from A (running_limit K-1, strict)
     * is what bounds that wait, at the cost of A's throughput. */
    if (a_cap) {
        printf("fair, A capped at running_limit %u (strict):\n", a_cap);
        for (int t = 0; t < FLOOD_TENANTS; t++) {
            printf("%-7s | %8.2f %8.2f %5llu/%-4llu\n", names[t], capped[t].p50_ms, capped[t].p99_ms,
                   (unsigned long long)capped[t].done, (unsigned long long)capped[t].dropped);
        }
        double c = quiet_p99(capped);
        printf("quiet tenants' worst p99 wait with A capped: %.2f ms (%.2fx the baseline); A completed %llu "
               "(%.2fx its uncapped fair figure)\n",
               c, b > 0 ? c / b : 0, (unsigned long long)capped[0].done,
               fair[0].done ? (double)capped[0].done / (double)fair[0].done : 0);
    }
}

/* ---- 2. shares ------------------------------------------------------------------ */

#define SHARE_MAX_TENANTS 8

typedef struct share_ctx {
    _Atomic size_t n;
    size_t cap;
    unsigned char *who;
} share_ctx;

typedef struct share_arg {
    share_ctx *c;
    unsigned char who;
} share_arg;

static int task_share(void *arg)
{
    share_arg *a = arg;
    size_t i = atomic_fetch_add_explicit(&a->c->n, 1, memory_order_relaxed);
    if (i < a->c->cap) {
        a->c->who[i] = a->who;
    }
    /* ~5 us of work, so K workers overlap */
    uint64_t until = now_ns() + 5000;
    while (now_ns() < until) {
    }
    return 0;
}

static _Atomic bool hold_open;
static _Atomic unsigned held;

static int task_hold(void *arg)
{
    (void)arg;
    atomic_fetch_add(&held, 1);
    while (!atomic_load(&hold_open)) {
        sleep_ns(100000);
    }
    return 0;
}

static double jain(const double *x, int n)
{
    double s = 0, s2 = 0;
    for (int i = 0; i < n; i++) {
        s += x[i];
        s2 += x[i] * x[i];
    }
    return s2 > 0 ? s * s / (n * s2) : 0;
}

static void shares_once(unsigned k, int ntenants, const unsigned *weights, size_t window, size_t backlog)
{
    share_ctx c = {.cap = window};
    c.who = calloc(window, 1);
    sluice_pool_config pc;
    sluice_pool_config_init(&pc);
    pc.name = "shares";
    pc.workers = k;
    pc.queue_capacity = backlog * (size_t)ntenants + k;
    pc.min_workers = k;
    pc.prewarm = true;
    pc.queue_discipline = SLUICE_QUEUE_FAIR;
    pc.timing_disabled = true;
    sluice_pool *p;
    char err[256];
    if (sluice_pool_create(&pc, &p, err, sizeof err)) {
        fprintf(stderr, "shares: %s\n", err);
        exit(1);
    }
    share_arg args[SHARE_MAX_TENANTS];
    sluice_tenant *h[SHARE_MAX_TENANTS];
    for (int t = 0; t < ntenants; t++) {
        char name[16];
        snprintf(name, sizeof name, "w%d", t);
        sluice_tenant_config tc = {.weight = weights[t]};
        sluice_pool_tenant_set(p, name, &tc, NULL, 0);
        sluice_pool_tenant_acquire(p, name, &h[t]);
        args[t] = (share_arg){.c = &c, .who = (unsigned char)t};
    }
    /* Hold every worker on a task of the tenant "default" until every
     * backlog is queued, so the window starts with all tenants backlogged. */
    atomic_store(&hold_open, false);
    for (unsigned i = 0; i < k; i++) {
        sluice_pool_submit(p, task_hold, NULL);
    }
    while (atomic_load(&held) < k) {
        sleep_ns(100000);
    }
    for (size_t i = 0; i < backlog; i++) {
        for (int t = 0; t < ntenants; t++) {
            sluice_submit_opts o = {.tenant = h[t]};
            sluice_pool_submit_ex(p, task_share, &args[t], &o);
        }
    }
    atomic_store(&hold_open, true);
    sluice_pool_drain(p, 0, NULL);
    atomic_store(&held, 0);
    size_t count[SHARE_MAX_TENANTS] = {0};
    for (size_t i = 0; i < window; i++) {
        count[c.who[i]]++;
    }
    unsigned wsum = 0;
    for (int t = 0; t < ntenants; t++) {
        wsum += weights[t];
    }
    double norm[SHARE_MAX_TENANTS];
    double worst = 0;
    printf("  first %zu starts:", window);
    for (int t = 0; t < ntenants; t++) {
        double share = (double)count[t] / (double)window;
        double want = (double)weights[t] / wsum;
        double err_pct = 100.0 * (share - want) / want;
        if (err_pct < 0) {
            err_pct = -err_pct;
        }
        if (err_pct > worst) {
            worst = err_pct;
        }
        norm[t] = share / weights[t];
        printf(" w%u %.4f (want %.4f)", weights[t], share, want);
    }
    printf("\n  worst share error %.2f%% of the wanted share; Jain's index (weight-normalised) %.4f\n", worst,
           jain(norm, ntenants));
    for (int t = 0; t < ntenants; t++) {
        sluice_tenant_release(h[t]);
    }
    sluice_pool_destroy(p);
    free(c.who);
}

static void part_shares(unsigned k, bool quick)
{
    size_t backlog = quick ? 6000 : 12000;
    printf("\n== shares: K=%u, ~5 us tasks, every tenant backlogged (%zu queued each before the drain)\n", k,
           backlog);
    unsigned w124[3] = {1, 2, 4};
    printf("weights 1:2:4\n");
    shares_once(k, 3, w124, 10000, backlog);
    unsigned eq[8] = {1, 1, 1, 1, 1, 1, 1, 1};
    printf("eight equal weights\n");
    shares_once(k, 8, eq, 10000, backlog / 2);
}

/* ---- 3. noop ----------------------------------------------------------------------- */

static _Atomic uint64_t noop_ran;

static int task_noop(void *arg)
{
    (void)arg;
    atomic_fetch_add_explicit(&noop_ran, 1, memory_order_relaxed);
    return 0;
}

typedef struct noop_prod {
    sluice_pool *pool;
    sluice_tenant **handles;
    unsigned nhandles;
    unsigned index;
    size_t n;
} noop_prod;

static void *noop_produce(void *arg)
{
    noop_prod *np = arg;
    sluice_submit_opts o = {0};
    for (size_t i = 0; i < np->n; i++) {
        if (np->nhandles) {
            o.tenant = np->handles[(np->index * 7919u + i) % np->nhandles];
        }
        while (sluice_pool_submit_ex(np->pool, task_noop, NULL, np->nhandles ? &o : NULL) != SLUICE_OK) {
        }
    }
    return NULL;
}

/* Tasks per second; tenants 0 = FIFO ring. */
static double noop_once(unsigned tenants, size_t n, unsigned producers, unsigned k)
{
    sluice_pool *p = make_pool(tenants ? "fair" : "fifo", tenants != 0, k, 4096, SLUICE_OVERFLOW_BLOCK);
    sluice_tenant **h = calloc(tenants + 1, sizeof *h);
    for (unsigned i = 0; i < tenants; i++) {
        char name[16];
        snprintf(name, sizeof name, "t%u", i);
        sluice_pool_tenant_acquire(p, name, &h[i]);
    }
    atomic_store(&noop_ran, 0);
    pthread_t *th = calloc(producers, sizeof *th);
    noop_prod *ps = calloc(producers, sizeof *ps);
    uint64_t t0 = now_ns();
    for (unsigned i = 0; i < producers; i++) {
        ps[i] = (noop_prod){.pool = p, .handles = h, .nhandles = tenants, .index = i, .n = n / producers};
        pthread_create(&th[i], NULL, noop_produce, &ps[i]);
    }
    for (unsigned i = 0; i < producers; i++) {
        pthread_join(th[i], NULL);
    }
    sluice_pool_drain(p, 0, NULL);
    double dt = (double)(now_ns() - t0) / 1e9;
    size_t want = (n / producers) * producers;
    if (atomic_load(&noop_ran) != want) {
        fprintf(stderr, "noop: %zu tasks accepted, %llu ran: tasks lost or run twice\n", want,
                (unsigned long long)atomic_load(&noop_ran));
        exit(1);
    }
    for (unsigned i = 0; i < tenants; i++) {
        sluice_tenant_release(h[i]);
    }
    sluice_pool_destroy(p);
    free(h);
    free(th);
    free(ps);
    return (double)atomic_load(&noop_ran) / dt;
}

static int cmp_double(const void *a, const void *b)
{
    double x = *(const double *)a, y = *(const double *)b;
    return x < y ? -1 : x > y;
}

static double median_of(double *v, unsigned n)
{
    qsort(v, n, sizeof *v, cmp_double);
    return n % 2 ? v[n / 2] : (v[n / 2 - 1] + v[n / 2]) / 2;
}

/* Each round runs the three pools back to back, so a round's ratios see
 * the same machine; on a shared machine the median of the rounds' ratios
 * moves far less than the ratio of the best figures. */
static void part_noop(unsigned k, bool quick)
{
    enum { ROUNDS_MAX = 5 };
    size_t n = quick ? 200000 : 2000000;
    unsigned producers = 2, rounds = quick ? 2 : ROUNDS_MAX;
    printf("\n== noop: %zu no-op tasks, %u producers, K=%u, queue 4096 (BLOCK), %u rounds\n", n, producers, k,
           rounds);
    double best[3] = {0, 0, 0};
    double ratio1[ROUNDS_MAX], ratio1000[ROUNDS_MAX];
    unsigned tenants[3] = {0, 1, 1000};
    for (unsigned r = 0; r < rounds; r++) {
        double v[3];
        for (int i = 0; i < 3; i++) {
            v[i] = noop_once(tenants[i], n, producers, k);
            if (v[i] > best[i]) {
                best[i] = v[i];
            }
        }
        ratio1[r] = v[1] / v[0];
        ratio1000[r] = v[2] / v[0];
        printf("round %u: FIFO ring %.0f tasks/s; fair, 1 tenant %.0f (%.2fx); fair, 1000 tenants %.0f "
               "(%.2fx)\n",
               r + 1, v[0], v[1], ratio1[r], v[2], ratio1000[r]);
    }
    printf(
        "best: FIFO ring %.0f tasks/s; fair, 1 tenant %.0f tasks/s (%.2fx); fair, 1000 tenants %.0f tasks/s "
        "(%.2fx)\n",
        best[0], best[1], best[0] > 0 ? best[1] / best[0] : 0, best[2], best[0] > 0 ? best[2] / best[0] : 0);
    printf("median of the rounds' ratios: fair, 1 tenant %.2fx the FIFO ring; fair, 1000 tenants %.2fx\n",
           median_of(ratio1, rounds), median_of(ratio1000, rounds));
}

/* ---- 4. names ----------------------------------------------------------------------- */

static void part_names(size_t names)
{
    uint64_t rss0 = rss_kib();
    sluice_pool_config pc;
    sluice_pool_config_init(&pc);
    pc.name = "names";
    pc.workers = 2;
    pc.queue_capacity = 4096;
    pc.queue_discipline = SLUICE_QUEUE_FAIR; /* default max_tenants (1024), idle_forget_ns (60 s) */
    sluice_pool *p;
    char err[256];
    if (sluice_pool_create(&pc, &p, err, sizeof err)) {
        fprintf(stderr, "names: %s\n", err);
        exit(1);
    }
    sluice_tenancy_stats ts0;
    sluice_pool_tenancy_get(p, &ts0);
    for (size_t i = 0; i < names; i++) {
        char name[32];
        snprintf(name, sizeof name, "customer-%zu", i);
        sluice_submit_opts o = {.tenant_name = name};
        while (sluice_pool_submit_ex(p, task_noop, NULL, &o) != SLUICE_OK) {
        }
    }
    sluice_pool_drain(p, 0, NULL);
    sluice_tenancy_stats ts;
    sluice_pool_tenancy_get(p, &ts);
    size_t listed = sluice_pool_tenants_get(p, NULL, 0);
    uint64_t rss1 = rss_kib();
    printf("\n== names: %zu distinct tenant names, one task each, default max_tenants\n", names);
    printf("fair queue memory %.1f KiB at create, %.1f KiB after; tenants tracked %u, listed %zu "
           "(tracked + shard queues used), tasks sharded %llu; process RSS grew %llu KiB\n",
           ts0.memory_bytes / 1024.0, ts.memory_bytes / 1024.0, ts.tracked, listed,
           (unsigned long long)ts.sharded_submits, (unsigned long long)(rss1 > rss0 ? rss1 - rss0 : 0));
    sluice_pool_destroy(p);
}

int main(int argc, char **argv)
{
    bool quick = false;
    const char *only = NULL;
    for (int i = 1; i < argc; i++) {
        if (strcmp(argv[i], "--quick") == 0) {
            quick = true;
        } else if (strcmp(argv[i], "--only") == 0 && i + 1 < argc &&
                   (strcmp(argv[i + 1], "flood") == 0 || strcmp(argv[i + 1], "shares") == 0 ||
                    strcmp(argv[i + 1], "noop") == 0 || strcmp(argv[i + 1], "names") == 0)) {
            only = argv[++i];
        } else {
            fprintf(stderr, "usage: %s [--quick] [--only flood|shares|noop|names] (unknown argument '%s')\n",
                    argv[0], argv[i]);
            return 2;
        }
    }
    unsigned k = sluice_cpu_count();
    if (k == 0) {
        k = 1;
    }
    printf("sluice-bench-fairness: the FAIR queue against the FIFO ring, K = %u CPUs%s\n", k,
           quick ? " (quick)" : "");
    if (!only || strcmp(only, "flood") == 0) {
        part_flood(k, quick ? 0.5 : 2.0);
    }
    if (!only || strcmp(only, "shares") == 0) {
        part_shares(k, quick);
    }
    if (!only || strcmp(only, "noop") == 0) {
        part_noop(k, quick);
    }
    if (!only || strcmp(only, "names") == 0) {
        part_names(quick ? 20000 : 100000);
    }
    return 0;
}
