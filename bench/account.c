/*
 * bench/account.c - task accounting, task bodies and timing helpers shared
 * by every adapter and workload.
 *
 * Purpose. The benchmark must fail loudly when an implementation loses a
 * task or runs one twice, without the check itself skewing the figures.
 *
 * Design. A per-task byte array ("ran[i]++") would put neighbouring tasks,
 * which run on different workers, on one cache line: false sharing that
 * costs more than a no-op task. Instead every thread that runs tasks gets
 * its own cache-line slot on its first task (registered on a list under
 * acct_mu) and adds 1 to its count and bench_mix(idx) to its hash with a
 * plain load and store: one writer per slot, so no locked instruction on
 * the task path. A thread that exits folds its slot into the retired
 * totals (a pthread key destructor), so thread-per-task does not grow the
 * list without bound. The sums over live slots and retired totals must
 * equal the number of accepted tasks and the sum of bench_mix over their
 * indices; a lost task lowers the count, a duplicate raises it, and a loss
 * plus a duplicate leaves the count right but the hash wrong (bench_mix is
 * a bijection, so two different index multisets collide only by accident
 * of 64-bit wrap-around sums, about 2^-64 per check). The cost per task is
 * the same for all implementations: a thread-local load and two
 * load-add-store pairs on a line the thread owns.
 *
 * Ordering. Each slot field has one writer; the driver reads with relaxed
 * loads under acct_mu (which orders it against registration and folding).
 * The driver reads the sums only to decide that all tasks are done, then
 * joins or destroys the pool (which synchronises with the workers) before
 * the final check, where the values are exact.
 */
#include <errno.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <time.h>

#include "bench.h"

bench_state bench_g;

typedef struct acct_slot {
    _Alignas(64) _Atomic uint64_t count;
    _Atomic uint64_t hash;
    struct acct_slot *prev, *next; /* guarded by acct_mu */
} acct_slot;

static pthread_mutex_t acct_mu = PTHREAD_MUTEX_INITIALIZER;
static acct_slot *acct_live;                           /* guarded by acct_mu */
static uint64_t acct_retired_count, acct_retired_hash; /* guarded by acct_mu */
static pthread_key_t acct_key;
static pthread_once_t acct_once = PTHREAD_ONCE_INIT;
static _Thread_local acct_slot *tls_acct;
static _Thread_local bool tls_slack_set;

static void acct_thread_exit(void *arg)
{
    acct_slot *s = arg;
    pthread_mutex_lock(&acct_mu);
    acct_retired_count += atomic_load_explicit(&s->count, memory_order_relaxed);
    acct_retired_hash += atomic_load_explicit(&s->hash, memory_order_relaxed);
    if (s->prev) {
        s->prev->next = s->next;
    } else {
        acct_live = s->next;
    }
    if (s->next) {
        s->next->prev = s->prev;
    }
    pthread_mutex_unlock(&acct_mu);
    free(s);
}

static void acct_make_key(void)
{
    if (pthread_key_create(&acct_key, acct_thread_exit) != 0) {
        fprintf(stderr, "sluice-bench: pthread_key_create failed\n");
        abort();
    }
}

static acct_slot *acct_join(void)
{
    pthread_once(&acct_once, acct_make_key);
    acct_slot *s = aligned_alloc(64, sizeof(acct_slot));
    if (!s) {
        fprintf(stderr, "sluice-bench: out of memory for a task accounting slot\n");
        abort(); /* the run could not be checked: never report figures from it */
    }
    memset(s, 0, sizeof *s);
    pthread_mutex_lock(&acct_mu);
    s->next = acct_live;
    if (acct_live) {
        acct_live->prev = s;
    }
    acct_live = s;
    pthread_mutex_unlock(&acct_mu);
    pthread_setspecific(acct_key, s);
    tls_acct = s;
    return s;
}

void bench_accounting_join(void)
{
    if (!tls_acct) {
        (void)acct_join();
    }
}

void bench_task_run(uint64_t idx)
{
    bench_g.body(idx);
    acct_slot *s = tls_acct;
    if (!s) {
        s = acct_join();
    }
    atomic_store_explicit(&s->count, atomic_load_explicit(&s->count, memory_order_relaxed) + 1,
                          memory_order_relaxed);
    atomic_store_explicit(&s->hash, atomic_load_explicit(&s->hash, memory_order_relaxed) + bench_mix(idx),
                          memory_order_relaxed);
}

void bench_accounting_reset(void)
{
    /* Called only while no task runs (before a run): the writers are idle. */
    pthread_mutex_lock(&acct_mu);
    acct_retired_count = acct_retired_hash = 0;
    for (acct_slot *s = acct_live; s; s = s->next) {
        atomic_store_explicit(&s->count, 0, memory_order_relaxed);
        atomic_store_explicit(&s->hash, 0, memory_order_relaxed);
    }
    pthread_mutex_unlock(&acct_mu);
}

void bench_accounting_sum(uint64_t *count, uint64_t *hash)
{
    pthread_mutex_lock(&acct_mu);
    uint64_t c = acct_retired_count, h = acct_retired_hash;
    for (acct_slot *s = acct_live; s; s = s->next) {
        c += atomic_load_explicit(&s->count, memory_order_relaxed);
        h += atomic_load_explicit(&s->hash, memory_order_relaxed);
    }
    pthread_mutex_unlock(&acct_mu);
    *count = c;
    *hash = h;
}

/* ---- bodies ------------------------------------------------------------- */

void bench_body_noop(uint64_t idx)
{
    (void)idx;
}

void bench_body_spin(uint64_t idx)
{
    (void)idx;
    bench_spin(bench_g.spin_iters);
}

void bench_body_sleep_1ms(uint64_t idx)
{
    (void)idx;
    /* The default 50 us timer slack would make every "1 ms" sleep 5% long
     * on its own; ask for exact wake-ups once per thread, for every pool. */
    if (!tls_slack_set) {
        prctl(PR_SET_TIMERSLACK, 1UL, 0, 0, 0);
        tls_slack_set = true;
    }
    bench_sleep_ns(1000000);
}

void bench_body_latency(uint64_t idx)
{
    uint64_t now = bench_now_ns();
    bench_g.latency_ns[idx] = now - bench_g.submit_ns[idx];
}

/* ---- helpers ------------------------------------------------------------ */

uint64_t bench_now_ns(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000000000ull + (uint64_t)ts.tv_nsec;
}

void bench_sleep_ns(uint64_t ns)
{
    struct timespec ts = {.tv_sec = (time_t)(ns / 1000000000ull), .tv_nsec = (long)(ns % 1000000000ull)};
    while (nanosleep(&ts, &ts) != 0 && errno == EINTR) {
    }
}

void bench_spin(uint64_t iters)
{
    /* A dependent multiply-add chain: the compiler cannot fold it, and the
     * asm barrier keeps it from being hoisted or dropped. */
    uint64_t x = iters | 1;
    for (uint64_t i = 0; i < iters; i++) {
        x = x * 6364136223846793005ull + 1442695040888963407ull;
        __asm__ volatile("" : "+r"(x));
    }
}

uint64_t bench_spin_calibrate(uint64_t target_ns, double *measured_ns)
{
    /* The minimum of many short timings: a timing that was preempted is
     * long, never short, so the minimum survives a busy machine. */
    const uint64_t probe = 20000; /* ~10-40 us */
    uint64_t best = UINT64_MAX;
    for (int r = 0; r < 300; r++) {
        uint64_t t0 = bench_now_ns();
        bench_spin(probe);
        uint64_t dt = bench_now_ns() - t0;
        if (dt < best) {
            best = dt;
        }
    }
    double ns_per_iter = (double)(best ? best : 1) / (double)probe;
    uint64_t iters = (uint64_t)((double)target_ns / ns_per_iter + 0.5);
    if (iters == 0) {
        iters = 1;
    }
    const int reps = 20;
    uint64_t best_batch = UINT64_MAX;
    for (int r = 0; r < 300; r++) {
        uint64_t t0 = bench_now_ns();
        for (int i = 0; i < reps; i++) {
            bench_spin(iters);
        }
        uint64_t dt = bench_now_ns() - t0;
        if (dt < best_batch) {
            best_batch = dt;
        }
    }
    *measured_ns = (double)best_batch / reps;
    return iters;
}

static int cmp_double(const void *x, const void *y)
{
    double a = *(const double *)x, b = *(const double *)y;
    return a < b ? -1 : a > b;
}

double bench_sleep_lone_ns(unsigned reps)
{
    double *t = calloc(reps ? reps : 1, sizeof *t);
    if (!t || reps == 0) {
        free(t);
        return 0;
    }
    int old = prctl(PR_GET_TIMERSLACK, 0, 0, 0, 0);
    prctl(PR_SET_TIMERSLACK, 1UL, 0, 0, 0);
    for (unsigned i = 0; i < reps; i++) {
        uint64_t t0 = bench_now_ns();
        bench_sleep_ns(1000000);
        t[i] = (double)(bench_now_ns() - t0);
    }
    prctl(PR_SET_TIMERSLACK, old > 0 ? (unsigned long)old : 0UL, 0, 0, 0);
    qsort(t, reps, sizeof *t, cmp_double);
    double med = t[reps / 2];
    free(t);
    return med;
}

uint64_t bench_rss_kib(void)
{
    FILE *f = fopen("/proc/self/status", "r");
    if (!f) {
        return 0;
    }
    char line[256];
    uint64_t kib = 0;
    while (fgets(line, sizeof line, f)) {
        if (strncmp(line, "VmRSS:", 6) == 0) {
            unsigned long long v = 0;
            if (sscanf(line + 6, "%llu", &v) == 1) {
                kib = v;
            }
            break;
        }
    }
    fclose(f);
    return kib;
}
