/*
 * bench/tenant_scrape.c - sluice-bench-tenant-scrape: what one scrape of a
 * fair pool's tenants costs the scraper and the pool's submitters, with
 * 1,000, 100,000 and 1,000,000 tenants tracked, the old call and the new
 * ones in the same run (docs/performance.md, "Tenant scrape cost").
 *
 * For each size N: a FAIR pool with max_tenants = N (forgetting off) is
 * filled with one no-op task for each of N names, and waited on. Then a
 * submitter thread submits no-op tasks of one more tenant, one every
 * ~20 us, timing each submit, while the main thread runs, R times each:
 *
 *   idle      nothing (the submitter's own baseline);
 *   snapshot  sluice_pool_tenants_snapshot of every tenant into an array
 *             grown to fit: what every scrape did before (the copy made
 *             under the fair queue's lock);
 *   top+sel   sluice_pool_tenants_top of the 200 busiest, then
 *             sluice_pool_tenants_select of those 200 with the rest
 *             summed: what a scrape with the default 100 series does now;
 *   render    a whole sluice_metrics_render of a registry holding the pool
 *             (default max_series), the scrape as Prometheus sees it.
 *
 * Per phase it prints the wall time of one call (median and max of at
 * least R calls, repeated until the phase has lasted 0.5 s),
 * the longest submit the submitter saw during the phase (the longest lock
 * hold it waited for, plus its own cost and any preemption), how many
 * of the phase's submits took over 1 ms, and the bytes the scraping
 * thread asked malloc/calloc/realloc for during one call (counted by
 * wrappers around glibc's allocator, on that thread only). Figures, never
 * a pass/fail.
 *
 * Usage: sluice-bench-tenant-scrape [--quick] [--runs R] [N ...]
 *   --quick: N = 1000 and 20000, R = 3 (the smoke test).
 */
#include <pthread.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "sluice/sluice.h"

/* ---- counting the scraping thread's allocations ---------------------------- */

/* glibc's allocator under its own names: the wrappers below replace
 * malloc for the whole program (the executable's definitions come first)
 * and count only while the thread's flag is up. */
extern void *__libc_malloc(size_t);
extern void *__libc_calloc(size_t, size_t);
extern void *__libc_realloc(void *, size_t);
extern void __libc_free(void *);

static _Thread_local bool counting;
static _Thread_local uint64_t counted_bytes;

void *malloc(size_t n)
{
    if (counting) {
        counted_bytes += n;
    }
    return __libc_malloc(n);
}

void *calloc(size_t n, size_t size)
{
    if (counting) {
        counted_bytes += n * size;
    }
    return __libc_calloc(n, size);
}

void *realloc(void *p, size_t n)
{
    if (counting) {
        counted_bytes += n;
    }
    return __libc_realloc(p, n);
}

void free(void *p)
{
    __libc_free(p);
}

/* ---- helpers ------------------------------------------------------------------ */

static uint64_t now_ns(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000000000ull + (uint64_t)ts.tv_nsec;
}

static int noop(void *arg)
{
    (void)arg;
    return 0;
}

static int cmp_u64(const void *a, const void *b)
{
    uint64_t x = *(const uint64_t *)a, y = *(const uint64_t *)b;
    return x < y ? -1 : x > y;
}

/* The submitter: one tenant's no-op tasks, one every PACE_NS, each submit
 * timed; `max_ns` is the longest since the main thread last reset it. */
#define PACE_NS 20000u
#define PHASE_MIN_NS 500000000u
#define SLOW_NS 1000000u

typedef struct submitter {
    sluice_pool *pool;
    sluice_tenant *tenant;
    _Atomic bool stop;
    _Atomic uint64_t max_ns;
    _Atomic uint64_t submits;
    _Atomic uint64_t slow; /* submits over SLOW_NS */
} submitter;

static void *submit_loop(void *arg)
{
    submitter *s = arg;
    sluice_submit_opts o;
    memset(&o, 0, sizeof o);
    o.tenant = s->tenant;
    while (!atomic_load(&s->stop)) {
        uint64_t t0 = now_ns();
        (void)sluice_pool_submit_ex(s->pool, noop, NULL, &o); /* REJECT pool: never waits for room */
        uint64_t took = now_ns() - t0;
        uint64_t seen = atomic_load(&s->max_ns);
        while (took > seen && !atomic_compare_exchange_weak(&s->max_ns, &seen, took)) {
        }
        atomic_fetch_add(&s->submits, 1);
        if (took > SLOW_NS) {
            atomic_fetch_add(&s->slow, 1);
        }
        while (now_ns() - t0 < PACE_NS) {
        }
    }
    return NULL;
}

typedef enum phase { PH_IDLE, PH_SNAPSHOT, PH_TOP_SELECT, PH_RENDER, PH_COUNT } phase;
static const char *const phase_names[PH_COUNT] = {"idle", "snapshot (old)", "top+select (new)",
                                                  "render (new)"};

#define TOP 200 /* 2 x the registry's default max_series, as the collector asks */

/* One call of the phase; the bytes it allocated in *bytes. */
static void one_call(phase ph, sluice_pool *pool, sluice_metrics *reg, uint64_t *bytes)
{
    counted_bytes = 0;
    counting = true;
    switch (ph) {
    case PH_IDLE: {
        struct timespec ts = {0, 2000000};
        nanosleep(&ts, NULL);
        break;
    }
    case PH_SNAPSHOT: {
        sluice_tenancy_stats ts;
        sluice_pool_tenancy_get(pool, &ts);
        size_t room = (size_t)ts.tracked + ts.shard_queues + 8;
        sluice_tenant_stats *all = NULL, forgotten;
        for (;;) {
            sluice_tenant_stats *grown = realloc(all, room * sizeof *all);
            if (!grown) {
                fprintf(stderr, "out of memory for %zu entries\n", room);
                exit(1);
            }
            all = grown;
            size_t n = sluice_pool_tenants_snapshot(pool, all, room, &forgotten);
            if (n <= room) {
                break;
            }
            room = n + 16;
        }
        free(all);
        break;
    }
    case PH_TOP_SELECT: {
        sluice_tenant_rank *ranks = malloc(TOP * sizeof *ranks);
        sluice_tenant_stats *out = malloc((TOP + 1) * sizeof *out);
        const char **names = malloc((TOP + 1) * sizeof *names);
        sluice_tenant_selection *sel = malloc(sizeof *sel);
        size_t nr = 0;
        if (!ranks || !out || !names || !sel ||
            sluice_pool_tenants_top(pool, SLUICE_TENANT_BY_TRAFFIC, ranks, TOP, &nr) != SLUICE_OK) {
            fprintf(stderr, "top failed\n");
            exit(1);
        }
        for (size_t i = 0; i < nr; i++) {
            names[i] = ranks[i].name;
        }
        if (sluice_pool_tenants_select(pool, names, nr, out, sel) != SLUICE_OK) {
            fprintf(stderr, "select failed\n");
            exit(1);
        }
        free(ranks);
        free(out);
        free(names);
        free(sel);
        break;
    }
    case PH_RENDER: {
        char *text = NULL;
        size_t len = 0;
        if (sluice_metrics_render(reg, SLUICE_EXPO_PROMETHEUS, &text, &len) != SLUICE_OK) {
            fprintf(stderr, "render failed\n");
            exit(1);
        }
        free(text);
        break;
    }
    case PH_COUNT:
        break;
    }
    counting = false;
    *bytes = counted_bytes;
}

static void run_size(unsigned tenants, int runs)
{
    sluice_pool_config pc;
    sluice_pool_config_init(&pc);
    pc.name = "scrape";
    pc.workers = 2;
    pc.queue_capacity = 4096;
    pc.overflow = SLUICE_OVERFLOW_REJECT;
    pc.queue_discipline = SLUICE_QUEUE_FAIR;
    pc.fair.max_tenants = tenants + 1; /* + the submitter's */
    pc.fair.idle_forget_ns = UINT64_MAX;
    sluice_pool *pool = NULL;
    char err[256];
    if (sluice_pool_create(&pc, &pool, err, sizeof err) != SLUICE_OK) {
        fprintf(stderr, "pool: %s\n", err);
        exit(1);
    }
    /* Fill: one task for each name, retried while the queue is full. */
    uint64_t t0 = now_ns();
    char name[32];
    sluice_submit_opts o;
    memset(&o, 0, sizeof o);
    o.tenant_name = name;
    for (unsigned i = 0; i < tenants; i++) {
        snprintf(name, sizeof name, "t-%07u", i);
        while (sluice_pool_submit_ex(pool, noop, NULL, &o) == SLUICE_EFULL) {
            sched_yield();
        }
    }
    sluice_pool_stats st;
    do {
        sluice_pool_stats_get(pool, &st);
    } while (st.completed < tenants);
    sluice_tenancy_stats ts;
    sluice_pool_tenancy_get(pool, &ts);
    printf("\n%u tenants (tracked %u, fair queue memory %.1f MiB, filled in %.2f s)\n", tenants, ts.tracked,
           (double)ts.memory_bytes / (1024.0 * 1024.0), (double)(now_ns() - t0) / 1e9);

    sluice_metrics *reg = NULL;
    if (sluice_metrics_create(NULL, &reg) != SLUICE_OK || sluice_metrics_add_pool(reg, pool) != SLUICE_OK) {
        fprintf(stderr, "metrics registry failed\n");
        exit(1);
    }
    submitter s = {.pool = pool};
    if (sluice_pool_tenant_acquire(pool, "submitter", &s.tenant) != SLUICE_OK) {
        fprintf(stderr, "acquire failed\n");
        exit(1);
    }
    pthread_t th;
    pthread_create(&th, NULL, submit_loop, &s);
    printf("  %-18s %6s %11s %11s %13s %15s %12s\n", "call", "calls", "median ms", "max ms", "max submit us",
           "submits > 1ms", "bytes/call");
    uint64_t base_max = 0, median[PH_COUNT] = {0}, maxsub[PH_COUNT] = {0}, alloc[PH_COUNT] = {0};
    for (phase ph = PH_IDLE; ph < PH_COUNT; ph++) {
        /* R calls, and more until the phase has lasted PHASE_MIN_NS, so the
         * submitter (one submit per PACE_NS) samples every phase alike. */
        size_t n = 0, room = 64;
        uint64_t *took = malloc(room * sizeof *took);
        atomic_store(&s.max_ns, 0);
        uint64_t submits0 = atomic_load(&s.submits), slow0 = atomic_load(&s.slow);
        uint64_t bytes = 0, max_bytes = 0, begin = now_ns();
        while (took && (n < (size_t)runs || now_ns() - begin < PHASE_MIN_NS)) {
            if (n == room) {
                uint64_t *grown = realloc(took, 2 * room * sizeof *took);
                if (!grown) {
                    break;
                }
                took = grown;
                room *= 2;
            }
            uint64_t a = now_ns();
            one_call(ph, pool, reg, &bytes);
            took[n++] = now_ns() - a;
            max_bytes = bytes > max_bytes ? bytes : max_bytes;
        }
        if (!took) {
            fprintf(stderr, "out of memory\n");
            exit(1);
        }
        uint64_t max_submit = atomic_load(&s.max_ns);
        uint64_t submits = atomic_load(&s.submits) - submits0, slow = atomic_load(&s.slow) - slow0;
        if (ph == PH_IDLE) {
            base_max = max_submit;
        }
        qsort(took, n, sizeof *took, cmp_u64);
        median[ph] = took[n / 2];
        maxsub[ph] = max_submit;
        alloc[ph] = max_bytes;
        printf("  %-18s %6zu %11.3f %11.3f %13.1f %7llu/%-7llu %12llu", phase_names[ph], n,
               (double)took[n / 2] / 1e6, (double)took[n - 1] / 1e6, (double)max_submit / 1e3,
               (unsigned long long)slow, (unsigned long long)submits, (unsigned long long)max_bytes);
        free(took);
        if (ph != PH_IDLE && base_max > 0) {
            printf("   (max submit %.1fx idle)", (double)max_submit / (double)base_max);
        }
        printf("\n");
    }
    printf("  old / new (snapshot over top+select): wall %.1fx, max submit %.1fx, bytes %.1fx\n",
           (double)median[PH_SNAPSHOT] / (double)(median[PH_TOP_SELECT] ? median[PH_TOP_SELECT] : 1),
           (double)maxsub[PH_SNAPSHOT] / (double)(maxsub[PH_TOP_SELECT] ? maxsub[PH_TOP_SELECT] : 1),
           (double)alloc[PH_SNAPSHOT] / (double)(alloc[PH_TOP_SELECT] ? alloc[PH_TOP_SELECT] : 1));
    atomic_store(&s.stop, true);
    pthread_join(th, NULL);
    printf("  submitter: %llu submits\n", (unsigned long long)atomic_load(&s.submits));
    sluice_tenant_release(s.tenant);
    (void)sluice_metrics_remove_pool(reg, pool);
    sluice_metrics_destroy(reg);
    (void)sluice_pool_drain(pool, 0, NULL);
    sluice_pool_destroy(pool);
}

int main(int argc, char **argv)
{
    unsigned sizes[16];
    size_t nsizes = 0;
    int runs = 7;
    bool quick = false;
    for (int i = 1; i < argc; i++) {
        if (strcmp(argv[i], "--quick") == 0) {
            quick = true;
        } else if (strcmp(argv[i], "--runs") == 0 && i + 1 < argc) {
            runs = atoi(argv[++i]);
        } else if (argv[i][0] >= '1' && argv[i][0] <= '9' && nsizes < 16) {
            unsigned long n = strtoul(argv[i], NULL, 10);
            if (n > (1u << 20) - 1) {
                fprintf(stderr, "tenant count %lu: at most %u (max_tenants' maximum, less the submitter)\n",
                        n, (1u << 20) - 1);
                return 2;
            }
            sizes[nsizes++] = (unsigned)n;
        } else {
            fprintf(stderr, "usage: %s [--quick] [--runs R] [N ...]  (R >= 1, 1 <= N < 2^20)\n", argv[0]);
            return 2;
        }
    }
    if (runs < 1) {
        fprintf(stderr, "--runs %d: at least 1\n", runs);
        return 2;
    }
    if (quick) {
        runs = 3;
        if (nsizes == 0) {
            sizes[nsizes++] = 1000;
            sizes[nsizes++] = 20000;
        }
    } else if (nsizes == 0) {
        sizes[nsizes++] = 1000;
        sizes[nsizes++] = 100000;
        sizes[nsizes++] = 1000000;
    }
    printf("sluice-bench-tenant-scrape: one scrape of a fair pool's tenants, %d runs per call;\n"
           "a submitter submits one task every %u us meanwhile (max submit: its longest submit).\n",
           runs, PACE_NS / 1000);
    for (size_t i = 0; i < nsizes; i++) {
        run_size(sizes[i], runs);
    }
    return 0;
}
