/*
 * examples/quickstart.c - the smallest useful Sluice program: a bounded
 * pool in a service (sluice/service.h), a workload with some failures and
 * panics, a drain, and the reconciliation of every task.
 *
 * The service object is what makes Ctrl-C (or SIGTERM) safe: it stops the
 * submit loop, drains the pool within the budget, and the reconciliation
 * still balances. No config file is needed for that.
 *
 *   build/examples/quickstart [tasks]
 */
#include <stdio.h>
#include <stdlib.h>
#include <time.h>

#include "sluice/sluice.h"

static int work(void *arg)
{
    uintptr_t i = (uintptr_t)arg;
    /* ~20 us of "work" */
    struct timespec ts = {0, 20000};
    nanosleep(&ts, NULL);
    if (i % 97 == 0) {
        sluice_panic("task %lu hit a bad record", (unsigned long)i);
    }
    return i % 31 == 0 ? -1 : 0; /* some tasks fail */
}

static void on_panic(const sluice_panic_info *info, void *user)
{
    (void)user;
    (void)info; /* a real service logs info->message and the backtrace */
}

static void on_abandon(const sluice_abandoned *task, void *user)
{
    (void)user;
    (void)task; /* a real service re-queues or persists task->arg */
}

int main(int argc, char **argv)
{
    unsigned long n = argc > 1 ? strtoul(argv[1], NULL, 10) : 200000;
    char err[256];
    /* First, before any thread: it takes SIGTERM and SIGINT from here on. */
    sluice_service_config sc;
    sluice_service_config_init(&sc);
    sc.name = "quickstart";
    sc.drain_budget_ns = 30 * SLUICE_NS_PER_SEC;
    sluice_service *svc;
    if (sluice_service_create(&sc, &svc, err, sizeof err) != SLUICE_OK) {
        fprintf(stderr, "quickstart: %s\n", err);
        return 1;
    }
    sluice_pool_config cfg;
    sluice_pool_config_init(&cfg);
    cfg.name = "quickstart";
    cfg.workers = 8;
    cfg.queue_capacity = 1024;
    cfg.overflow = SLUICE_OVERFLOW_BLOCK;
    cfg.panic_handler = on_panic;
    cfg.abandon_handler = on_abandon;
    sluice_pool *pool; /* owned by the service */
    if (sluice_service_add_pool(svc, &cfg, 0, &pool, err, sizeof err) != SLUICE_OK) {
        fprintf(stderr, "quickstart: %s\n", err);
        sluice_service_destroy(svc);
        return 1;
    }
    printf("sluice %s: running %lu tasks on pool '%s' (K=%u, queue %zu, cpus %u)\n", sluice_version(), n,
           cfg.name, cfg.workers, cfg.queue_capacity, sluice_cpu_count());
    uint64_t t0 = sluice_clock_now(NULL);
    for (unsigned long i = 1; i <= n && !sluice_service_stopping(svc); i++) { /* Ctrl-C stops it */
        sluice_err e = sluice_pool_submit(pool, work, (void *)(uintptr_t)i);
        if (e) {
            fprintf(stderr, "submit: %s\n", sluice_strerror(e));
            break;
        }
    }
    sluice_service_shutdown(svc); /* all submitted (or a signal began it already) */
    sluice_lifecycle_report rep;
    sluice_err de = sluice_service_run(svc, &rep); /* drains within the budget */
    sluice_service_wait_idle(svc, 0);
    double secs = (double)(sluice_clock_now(NULL) - t0) / 1e9;

    sluice_pool_stats s;
    sluice_pool_stats_get(pool, &s);
    sluice_histogram h;
    sluice_pool_histogram_get(pool, SLUICE_HIST_TASK, &h);
    printf("drain: %s, %llu finished during drain, %llu handed back\n", sluice_strerror(de),
           (unsigned long long)rep.pools[0].drain.completed, (unsigned long long)rep.handed_back);
    printf("%.2fs, %.0f tasks/s, mean task %.1f us\n", secs, (double)s.submitted / secs,
           h.count ? h.sum_seconds / (double)h.count * 1e6 : 0.0);
    uint64_t accounted = s.completed + s.failed + s.panicked + s.dropped + s.shed + s.abandoned;
    printf("submitted %llu = completed %llu + failed %llu + panicked %llu + dropped %llu + shed %llu + "
           "abandoned %llu (%s)\n",
           (unsigned long long)s.submitted, (unsigned long long)s.completed, (unsigned long long)s.failed,
           (unsigned long long)s.panicked, (unsigned long long)s.dropped, (unsigned long long)s.shed,
           (unsigned long long)s.abandoned, accounted == s.submitted ? "balanced" : "UNBALANCED");
    sluice_service_destroy(svc); /* the pool with it */
    return accounted == s.submitted ? 0 : 1;
}
