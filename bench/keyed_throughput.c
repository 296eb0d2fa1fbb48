/*
 * bench/keyed_throughput.c - sluice-bench-keyed: no-op task throughput of
 * the keyed serial executor against the plain pool it runs on, in the
 * same run, and their ratio (issue 18's figure: >= 0.5x with 1,000 keys).
 *
 * Each round: P producer threads submit N no-op tasks in all, (a) straight
 * to a pool of K workers, (b) through a keyed executor on an identical
 * pool with `keys` keys (task i of producer p goes to key (p * 7919 + i) %
 * keys), then wait for the last one to run (drain). Throughput is N over
 * the time from the producers' start to the drain's end. The best of
 * `rounds` rounds is kept for each, so one scheduling hiccup on a shared
 * machine does not decide the ratio. A figure, never a pass/fail.
 *
 * Usage: sluice-bench-keyed [tasks=2000000] [keys=1000] [producers=8]
 *                           [workers=4] [rounds=3]
 */
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "sluice/sluice.h"

static _Atomic uint64_t ran;

static int noop(void *arg)
{
    (void)arg;
    atomic_fetch_add_explicit(&ran, 1, memory_order_relaxed);
    return 0;
}

typedef struct prod {
    sluice_pool *pool;
    sluice_keyed *ex;
    unsigned index;
    size_t n;
    unsigned keys;
    uint64_t refused;
} prod;

static void *produce(void *arg)
{
    prod *p = arg;
    for (size_t i = 0; i < p->n; i++) {
        sluice_err err;
        if (p->ex) {
            uint64_t key = ((uint64_t)p->index * 7919u + i) % p->keys;
            err = sluice_keyed_submit(p->ex, key, noop, NULL);
        } else {
            err = sluice_pool_submit(p->pool, noop, NULL);
        }
        if (err) {
            p->refused++;
        }
    }
    return NULL;
}

static double now_s(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

/* One round; returns tasks per second (0 on a setup failure). */
static double round_once(bool keyed, size_t tasks, unsigned keys, unsigned producers, unsigned workers)
{
    sluice_pool_config pc;
    sluice_pool_config_init(&pc);
    pc.name = keyed ? "bench_keyed" : "bench_plain";
    pc.workers = workers;
    pc.min_workers = workers;
    pc.prewarm = true;
    pc.queue_capacity = 4096;
    sluice_pool *pool;
    char err[200];
    if (sluice_pool_create(&pc, &pool, err, sizeof err)) {
        fprintf(stderr, "pool: %s\n", err);
        return 0;
    }
    sluice_keyed *ex = NULL;
    if (keyed) {
        sluice_keyed_config kc;
        sluice_keyed_config_init(&kc);
        kc.name = "bench";
        kc.pool = pool;
        kc.total_backlog = 65536;
        if (sluice_keyed_create(&kc, &ex, err, sizeof err)) {
            fprintf(stderr, "keyed: %s\n", err);
            sluice_pool_destroy(pool);
            return 0;
        }
    }
    atomic_store(&ran, 0);
    pthread_t *th = calloc(producers, sizeof *th);
    prod *ps = calloc(producers, sizeof *ps);
    double t0 = now_s();
    for (unsigned i = 0; i < producers; i++) {
        ps[i] = (prod){.pool = pool, .ex = ex, .index = i, .n = tasks / producers, .keys = keys};
        pthread_create(&th[i], NULL, produce, &ps[i]);
    }
    uint64_t refused = 0;
    for (unsigned i = 0; i < producers; i++) {
        pthread_join(th[i], NULL);
        refused += ps[i].refused;
    }
    if (ex) {
        sluice_keyed_drain(ex, 0, NULL);
    }
    sluice_pool_drain(pool, 0, NULL);
    double dt = now_s() - t0;
    uint64_t done = atomic_load(&ran);
    sluice_keyed_destroy(ex);
    sluice_pool_destroy(pool);
    free(th);
    free(ps);
    if (refused) {
        fprintf(stderr, "%llu submits refused\n", (unsigned long long)refused);
    }
    return (double)done / dt;
}

int main(int argc, char **argv)
{
    size_t tasks = argc > 1 ? strtoull(argv[1], NULL, 10) : 2000000;
    unsigned keys = argc > 2 ? (unsigned)strtoul(argv[2], NULL, 10) : 1000;
    unsigned producers = argc > 3 ? (unsigned)strtoul(argv[3], NULL, 10) : 8;
    unsigned workers = argc > 4 ? (unsigned)strtoul(argv[4], NULL, 10) : 4;
    unsigned rounds = argc > 5 ? (unsigned)strtoul(argv[5], NULL, 10) : 3;
    if (!tasks || !keys || !producers || !workers || !rounds) {
        fprintf(stderr, "usage: %s [tasks] [keys] [producers] [workers] [rounds] (all > 0)\n", argv[0]);
        return 2;
    }
    double best_plain = 0, best_keyed = 0;
    for (unsigned r = 0; r < rounds; r++) {
        double p = round_once(false, tasks, keys, producers, workers);
        double k = round_once(true, tasks, keys, producers, workers);
        printf("round %u: plain pool %.0f tasks/s, keyed (%u keys) %.0f tasks/s, ratio %.2f\n", r + 1, p,
               keys, k, p > 0 ? k / p : 0);
        if (p > best_plain) {
            best_plain = p;
        }
        if (k > best_keyed) {
            best_keyed = k;
        }
    }
    printf("best: plain pool %.0f tasks/s, keyed %.0f tasks/s, keyed/plain %.2f "
           "(%zu no-op tasks, %u producers, K=%u, %u keys)\n",
           best_plain, best_keyed, best_plain > 0 ? best_keyed / best_plain : 0, tasks, producers, workers,
           keys);
    return 0;
}
