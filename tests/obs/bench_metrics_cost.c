/*
 * tests/obs/bench_metrics_cost.c - what the pool's metrics cost per task.
 *
 * A benchmark, not a test: it prints figures and never fails on a time.
 * Counters are always on (they are the pool's accounting); what can be
 * turned off is timing (two clock reads and two histogram updates per
 * timed task). We run the same workload with timing off, timing sampled
 * 1 in 64, and timing on every task, on no-op tasks and on ~1 us tasks,
 * and print tasks/s and the ratio to "off". A scrape costs nothing per
 * task: it reads snapshots; we also time one render with the pool added.
 *
 *   obs_bench_metrics_cost [tasks]     (default 200000 x SLUICE_STRESS_SCALE)
 */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <time.h>

#include "sluice/metrics.h"

static uint64_t now_ns(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000000000ull + (uint64_t)ts.tv_nsec;
}

static int noop_task(void *arg)
{
    (void)arg;
    return 0;
}

static int spin_1us(void *arg)
{
    (void)arg;
    uint64_t end = now_ns() + 1000;
    while (now_ns() < end) {
    }
    return 0;
}

/* Returns tasks per second. */
static double run(sluice_task_fn fn, unsigned long tasks, unsigned every, int disabled)
{
    sluice_pool_config cfg;
    sluice_pool_config_init(&cfg);
    cfg.name = "bench";
    cfg.workers = 2;
    cfg.queue_capacity = 4096;
    cfg.prewarm = true;
    cfg.timing_sample_every = every;
    cfg.timing_disabled = disabled != 0;
    sluice_pool *p;
    if (sluice_pool_create(&cfg, &p, NULL, 0) != SLUICE_OK) {
        fprintf(stderr, "pool create failed\n");
        exit(1);
    }
    uint64_t t0 = now_ns();
    for (unsigned long i = 0; i < tasks; i++) {
        sluice_pool_submit(p, fn, NULL);
    }
    sluice_pool_drain(p, 0, NULL);
    uint64_t t1 = now_ns();
    sluice_pool_destroy(p);
    return (double)tasks / ((double)(t1 - t0) / 1e9);
}

int main(int argc, char **argv)
{
    const char *scale_env = getenv("SLUICE_STRESS_SCALE");
    unsigned long scale = scale_env ? strtoul(scale_env, NULL, 10) : 1;
    unsigned long tasks = argc > 1 ? strtoul(argv[1], NULL, 10) : 200000ul * (scale ? scale : 1);
    struct {
        const char *name;
        sluice_task_fn fn;
    } loads[] = {{"no-op", noop_task}, {"~1us", spin_1us}};
    printf("%-6s %-16s %14s %8s\n", "task", "timing", "tasks/s", "ratio");
    for (int l = 0; l < 2; l++) {
        unsigned long n = l == 0 ? tasks : tasks / 4;
        /* Best of 3, interleaved, so that noise from other processes hits
         * every configuration alike. */
        double off = 0, sampled = 0, on = 0;
        for (int rep = 0; rep < 3; rep++) {
            double a = run(loads[l].fn, n, 1, 1), b = run(loads[l].fn, n, 64, 0),
                   c = run(loads[l].fn, n, 1, 0);
            off = a > off ? a : off;
            sampled = b > sampled ? b : sampled;
            on = c > on ? c : on;
        }
        printf("%-6s %-16s %14.0f %8.3f\n", loads[l].name, "off", off, 1.0);
        printf("%-6s %-16s %14.0f %8.3f\n", loads[l].name, "sampled 1/64", sampled, sampled / off);
        printf("%-6s %-16s %14.0f %8.3f\n", loads[l].name, "on (every task)", on, on / off);
    }

    /* One scrape of a pool's metrics. */
    sluice_pool_config cfg;
    sluice_pool_config_init(&cfg);
    cfg.name = "scraped";
    cfg.workers = 8;
    cfg.queue_capacity = 64;
    cfg.prewarm = true;
    sluice_pool *p;
    sluice_metrics *reg;
    if (sluice_pool_create(&cfg, &p, NULL, 0) || sluice_metrics_create(NULL, &reg)) {
        return 1;
    }
    sluice_metrics_add_pool(reg, p);
    char *text;
    size_t len;
    uint64_t t0 = now_ns();
    struct timespec c0, c1;
    clock_gettime(CLOCK_THREAD_CPUTIME_ID, &c0);
    int renders = 1000;
    for (int i = 0; i < renders; i++) {
        sluice_metrics_render(reg, SLUICE_EXPO_PROMETHEUS, &text, &len);
        free(text);
    }
    clock_gettime(CLOCK_THREAD_CPUTIME_ID, &c1);
    double cpu_us =
        ((double)(c1.tv_sec - c0.tv_sec) * 1e9 + (double)(c1.tv_nsec - c0.tv_nsec)) / 1e3 / renders;
    printf("render of one 8-worker pool: %.1f us wall, %.1f us CPU (%zu bytes)\n",
           (double)(now_ns() - t0) / 1e3 / renders, cpu_us, len);
    sluice_metrics_destroy(reg);
    sluice_pool_destroy(p);
    return 0;
}
