/*
 * bench/cluster_bench.c - sluice-cluster-bench: the per-task cost of
 * strict mode (the leased semaphore with block leasing) against the local
 * semaphore, and Redis round trips per task. It starts its own
 * redis-server on a free loopback port (as the tests do) and prints
 * figures; it never fails on a time.
 *
 *   sluice-cluster-bench [seconds per paced run, default 2]
 *
 * Runs:
 *   1. unpaced, one thread: acquire+release pairs on sluice_sem and on a
 *      sluice_dsem (share 64): ns per pair and round trips per pair;
 *   2. paced at 10k tasks/s per replica, 8 threads, each task holding its
 *      permit ~100 us: time spent in acquire+release per task and round
 *      trips per task (the target: < 2 us, < 0.05 trips);
 *   3. the same with 3 replicas in one process sharing D = 24, so leases
 *      are contended and fair shares bind;
 *   4. sluice_dlimiter_allow (one round trip each): ns per call.
 */
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cluster/redis_fixture.h"
#include "sluice/cluster.h"
#include "sluice/sluice.h"

static redis_fixture redis;

static uint64_t now_ns(void)
{
    return sluice_clock_now(NULL);
}

static sluice_cluster *replica(const char *id)
{
    sluice_cluster_config cfg;
    sluice_cluster_config_init(&cfg);
    cfg.redis_port = (unsigned)redis.port;
    cfg.key_prefix = "bench";
    cfg.service = "svc";
    cfg.replica_id = id;
    cfg.heartbeat_ns = 200 * SLUICE_NS_PER_MS;
    sluice_cluster *c = NULL;
    char err[256];
    if (sluice_cluster_create(&cfg, &c, err, sizeof err)) {
        fprintf(stderr, "cluster: %s\n", err);
        exit(1);
    }
    return c;
}

static sluice_dsem *dsem(sluice_cluster *c, unsigned share)
{
    sluice_dsem_config dc;
    sluice_dsem_config_init(&dc);
    dc.downstream = "bench-ds";
    dc.share = share;
    sluice_dsem *ds = NULL;
    char err[256];
    if (sluice_dsem_create(c, &dc, &ds, err, sizeof err)) {
        fprintf(stderr, "dsem: %s\n", err);
        exit(1);
    }
    return ds;
}

static uint64_t trips(sluice_cluster *c)
{
    sluice_cluster_status st;
    sluice_cluster_status_get(c, &st);
    return st.redis_round_trips;
}

/* ---- paced runs ------------------------------------------------------------------- */

typedef struct paced {
    sluice_dsem *ds;
    uint64_t until_ns;
    uint64_t interval_ns; /* per thread */
    uint64_t hold_ns;
    _Atomic uint64_t tasks, overhead_ns, timeouts;
} paced;

static void spin_until(uint64_t t)
{
    while (now_ns() < t) {
    }
}

static void *paced_thread(void *arg)
{
    paced *p = arg;
    uint64_t next = now_ns();
    uint64_t tasks = 0, over = 0, to = 0;
    while (next < p->until_ns) {
        uint64_t t = now_ns();
        if (t < next) {
            uint64_t d = next - t;
            if (d > 50 * SLUICE_NS_PER_US) {
                struct timespec ts = {0, (long)(d - 20 * SLUICE_NS_PER_US)};
                nanosleep(&ts, NULL);
            }
            spin_until(next);
        }
        next += p->interval_ns;
        uint64_t a = now_ns();
        sluice_err err = sluice_dsem_acquire(p->ds, NULL);
        uint64_t b = now_ns();
        if (err) {
            to++;
            continue;
        }
        struct timespec hold = {0, (long)p->hold_ns};
        nanosleep(&hold, NULL);
        uint64_t c = now_ns();
        sluice_dsem_release(p->ds);
        uint64_t d = now_ns();
        over += (b - a) + (d - c);
        tasks++;
    }
    atomic_fetch_add(&p->tasks, tasks);
    atomic_fetch_add(&p->overhead_ns, over);
    atomic_fetch_add(&p->timeouts, to);
    return NULL;
}

static void run_paced(const char *label, sluice_cluster **cs, sluice_dsem **dss, int replicas, double secs,
                      double rate_per_replica, int threads)
{
    paced p[8];
    pthread_t th[8][16];
    uint64_t t_before = 0;
    for (int r = 0; r < replicas; r++) {
        t_before += trips(cs[r]);
    }
    uint64_t until = now_ns() + (uint64_t)(secs * 1e9);
    for (int r = 0; r < replicas; r++) {
        memset(&p[r], 0, sizeof p[r]);
        p[r].ds = dss[r];
        p[r].until_ns = until;
        p[r].interval_ns = (uint64_t)(1e9 * threads / rate_per_replica);
        p[r].hold_ns = 100 * SLUICE_NS_PER_US;
        for (int t = 0; t < threads; t++) {
            pthread_create(&th[r][t], NULL, paced_thread, &p[r]);
        }
    }
    uint64_t tasks = 0, over = 0, to = 0, t_after = 0;
    for (int r = 0; r < replicas; r++) {
        for (int t = 0; t < threads; t++) {
            pthread_join(th[r][t], NULL);
        }
        tasks += p[r].tasks;
        over += p[r].overhead_ns;
        to += p[r].timeouts;
        t_after += trips(cs[r]);
    }
    double rtt = tasks ? (double)(t_after - t_before) / (double)tasks : 0;
    printf("%-44s %8.0f tasks/s/replica  %7.2f us/task in acquire+release  %.4f Redis trips/task%s\n", label,
           (double)tasks / secs / replicas, tasks ? (double)over / (double)tasks / 1e3 : 0, rtt,
           to ? "  (timeouts!)" : "");
}

int main(int argc, char **argv)
{
    double secs = argc > 1 ? atof(argv[1]) : 2.0;
    if (secs <= 0) {
        secs = 2.0;
    }
    if (!redis_fixture_available()) {
        fprintf(stderr, "sluice-cluster-bench: redis-server is not installed (scripts/install-deps.sh)\n");
        return 2;
    }
    if (!redis_fixture_start(&redis)) {
        return 1;
    }
    signal(SIGPIPE, SIG_IGN);
    printf("sluice-cluster-bench: loopback redis-server on port %d\n\n", redis.port);

    /* 1. unpaced pairs */
    enum { PAIRS = 200000 };
    sluice_sem_config sc;
    sluice_sem_config_init(&sc);
    sc.capacity = 64;
    sluice_sem *sem = NULL;
    sluice_sem_create(&sc, &sem, NULL, 0);
    uint64_t t0 = now_ns();
    for (int i = 0; i < PAIRS; i++) {
        sluice_sem_acquire(sem, 1, NULL);
        sluice_sem_release(sem, 1);
    }
    double sem_ns = (double)(now_ns() - t0) / PAIRS;
    sluice_sem_destroy(sem);

    sluice_cluster *a = replica("a");
    sluice_dsem *da = dsem(a, 64);
    uint64_t tr0 = trips(a);
    t0 = now_ns();
    for (int i = 0; i < PAIRS; i++) {
        sluice_dsem_acquire(da, NULL);
        sluice_dsem_release(da);
    }
    double ds_ns = (double)(now_ns() - t0) / PAIRS;
    double ds_trips = (double)(trips(a) - tr0) / PAIRS;
    printf("%-44s %8.1f ns/pair\n", "1. sluice_sem acquire+release (local)", sem_ns);
    printf("%-44s %8.1f ns/pair  (%.2fx local)  %.6f Redis trips/pair\n",
           "   sluice_dsem acquire+release (strict)", ds_ns, ds_ns / sem_ns, ds_trips);

    /* 2. paced, one replica */
    run_paced("2. strict, 1 replica, 10k tasks/s, 8 threads", &a, &da, 1, secs, 10000, 8);
    sluice_dsem_destroy(da);
    sluice_cluster_destroy(a);

    /* 3. three replicas, D = 24 */
    sluice_cluster *cs[3] = {replica("r0"), replica("r1"), replica("r2")};
    for (int i = 0; i < 3; i++) {
        sluice_cluster_heartbeat_now(cs[i]);
    }
    sluice_dsem *dss[3];
    for (int i = 0; i < 3; i++) {
        dss[i] = dsem(cs[i], 24);
    }
    run_paced("3. strict, 3 replicas, D=24, 10k tasks/s each", cs, dss, 3, secs, 10000, 8);
    for (int i = 0; i < 3; i++) {
        sluice_dsem_destroy(dss[i]);
        sluice_cluster_destroy(cs[i]);
    }

    /* 4. GCRA */
    sluice_cluster *l = replica("l");
    sluice_dlimiter_config lc;
    sluice_dlimiter_config_init(&lc);
    lc.name = "bench-rl";
    lc.rate = 1e9;
    lc.burst = 1000;
    sluice_dlimiter *dl = NULL;
    sluice_dlimiter_create(l, &lc, &dl, NULL, 0);
    enum { CALLS = 20000 };
    t0 = now_ns();
    for (int i = 0; i < CALLS; i++) {
        sluice_dlimiter_allow(dl);
    }
    printf("%-44s %8.1f us/call (one Redis round trip each)\n", "4. sluice_dlimiter_allow (GCRA script)",
           (double)(now_ns() - t0) / CALLS / 1e3);
    sluice_dlimiter_destroy(dl);
    sluice_cluster_destroy(l);
    redis_fixture_stop(&redis);
    return 0;
}
