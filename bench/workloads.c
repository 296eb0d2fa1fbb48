/*
 * bench/workloads.c - what each workload does to one implementation, in
 * one (child) process, and the figures it reports.
 *
 * Design. Every workload goes through run_tasks(): build the pool (not
 * timed), start the clock, submit N tasks from P producers (the calling
 * thread is the only producer when P == 1, so single-producer figures do
 * not include a thread hand-off of the driver's own), wait until the
 * accounting (account.c) says every accepted task ran, stop the clock.
 * The wait polls the accounting with short sleeps sized to the expected
 * remaining time, so the waiting thread takes no CPU from the workers; its
 * error is the last poll interval (20 us..2 ms), small against runs of
 * tens of milliseconds or more. A run whose completion count does not move
 * for cfg->stall_ns reports lost tasks. After destroy (which joins the
 * workers) the count and hash must match exactly: a task that ran twice
 * shows up here even if it ran after the count was reached.
 *
 * Fairness rules. Same K, same task bodies, same accounting for all; pools
 * built outside the timed region; thread start-up inside it only where the
 * pool starts threads lazily (that is its real cost); slow implementations
 * run fewer tasks (size_divisor) but are reported per task.
 */
#include <errno.h>
#include <pthread.h>
#include <semaphore.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/resource.h>
#include <time.h>
#include <unistd.h>

#include "bench.h"

/* ---- running tasks ---------------------------------------------------- */

typedef struct run_spec {
    const bench_adapter *a;
    void *pool;
    uint64_t n;
    unsigned producers;
    uint64_t period_ns; /* > 0: paced submission, one task every period (P == 1) */
    bool sample_rss;    /* read VmRSS when submission ends */
    uint64_t stall_ns;
} run_spec;

typedef struct run_out {
    uint64_t cpu_ns; /* CPU time of the whole process (all threads) from start to the last task */
    uint64_t t0_ns;
    uint64_t submit_ns; /* until the last submit returned */
    uint64_t total_ns;  /* until the last task finished */
    uint64_t accepted;
    uint64_t rejected;
    uint64_t expected_hash;
    uint64_t rss_after_submit_kib;
} run_out;

typedef struct producer {
    const run_spec *rs;
    uint64_t begin, end;
    uint64_t t0_ns;
    pthread_barrier_t *gate;
    /* results */
    uint64_t rejected;
    uint64_t rejected_hash;
    uint64_t done_ns;
    uint64_t rss_kib;
    int failed;
} producer;

static void *producer_main(void *arg)
{
    producer *p = arg;
    const run_spec *rs = p->rs;
    const bench_adapter *a = rs->a;
    if (p->gate) {
        pthread_barrier_wait(p->gate);
    }
    void *pctx = a->producer_begin ? a->producer_begin(rs->pool) : NULL;
    for (uint64_t i = p->begin; i < p->end; i++) {
        if (rs->period_ns) {
            uint64_t due = p->t0_ns + (i - p->begin) * rs->period_ns;
            uint64_t now;
            while ((now = bench_now_ns()) < due) {
#if defined(__x86_64__) || defined(__i386__)
                __builtin_ia32_pause();
#endif
            }
            bench_g.submit_ns[i] = now;
        }
        int r = a->submit(rs->pool, pctx, i);
        if (r == BENCH_EFULL) {
            p->rejected++;
            p->rejected_hash += bench_mix(i);
        } else if (r != BENCH_OK) {
            p->failed = 1;
            break;
        }
    }
    p->done_ns = bench_now_ns();
    if (rs->sample_rss) {
        p->rss_kib = bench_rss_kib();
    }
    if (a->producer_end) {
        a->producer_end(rs->pool, pctx);
    }
    return NULL;
}

/* Wait until `expected` tasks are accounted. Returns 0, or -1 on a stall. */
static int wait_done(uint64_t expected, uint64_t stall_ns, char *msg, size_t len)
{
    uint64_t count, hash, prev_count = 0, prev_t = bench_now_ns();
    for (;;) {
        bench_accounting_sum(&count, &hash);
        uint64_t now = bench_now_ns();
        if (count >= expected) {
            return 0;
        }
        if (count > prev_count) {
            /* sleep about half the expected remaining time, in [20 us, 2 ms] */
            double per_task = (double)(now - prev_t) / (double)(count - prev_count);
            double est = per_task * (double)(expected - count) / 2;
            prev_count = count;
            prev_t = now;
            bench_sleep_ns(est < 20000 ? 20000 : est > 2000000 ? 2000000 : (uint64_t)est);
            continue;
        }
        if (now - prev_t > stall_ns) {
            snprintf(msg, len, "LOST TASKS: %llu of %llu accepted tasks never ran (no progress for %.1f s)",
                     (unsigned long long)(expected - count), (unsigned long long)expected,
                     (double)stall_ns / 1e9);
            return -1;
        }
        bench_sleep_ns(200000);
    }
}

/* CPU time of all threads of this process. It does not grow while other
 * processes hold the CPUs, so it is the figure to trust on a busy machine. */
static uint64_t process_cpu_ns(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_PROCESS_CPUTIME_ID, &ts);
    return (uint64_t)ts.tv_sec * 1000000000ull + (uint64_t)ts.tv_nsec;
}

/* Submit and wait; everything but destroy. Returns 0 or fills res. */
static int run_tasks(const run_spec *rs, run_out *out, bench_result *res)
{
    memset(out, 0, sizeof *out);
    bench_accounting_reset();
    uint64_t full_hash = 0;
    for (uint64_t i = 0; i < rs->n; i++) {
        full_hash += bench_mix(i);
    }
    unsigned np = rs->producers ? rs->producers : 1;
    uint64_t cpu0 = process_cpu_ns();
    producer *ps = calloc(np, sizeof *ps);
    pthread_t *th = calloc(np, sizeof *th);
    pthread_barrier_t gate;
    if (!ps || !th) {
        snprintf(res->msg, sizeof res->msg, "out of memory");
        res->status = BENCH_RES_ERROR;
        free(ps);
        free(th);
        return -1;
    }
    for (unsigned k = 0; k < np; k++) {
        ps[k].rs = rs;
        ps[k].begin = rs->n * k / np;
        ps[k].end = rs->n * (k + 1) / np;
        ps[k].gate = np > 1 ? &gate : NULL;
    }
    if (np == 1) {
        ps[0].t0_ns = out->t0_ns = bench_now_ns();
        producer_main(&ps[0]);
    } else {
        pthread_barrier_init(&gate, NULL, np + 1);
        for (unsigned k = 0; k < np; k++) {
            if (pthread_create(&th[k], NULL, producer_main, &ps[k]) != 0) {
                /* the gate would never open: abandon the run loudly */
                fprintf(stderr, "sluice-bench: pthread_create for a producer failed\n");
                _exit(3);
            }
        }
        out->t0_ns = bench_now_ns();
        for (unsigned k = 0; k < np; k++) {
            ps[k].t0_ns = out->t0_ns;
        }
        pthread_barrier_wait(&gate);
        for (unsigned k = 0; k < np; k++) {
            pthread_join(th[k], NULL);
        }
        pthread_barrier_destroy(&gate);
    }
    uint64_t rejected_hash = 0, last_done = 0;
    int failed = 0;
    for (unsigned k = 0; k < np; k++) {
        out->rejected += ps[k].rejected;
        rejected_hash += ps[k].rejected_hash;
        failed |= ps[k].failed;
        if (ps[k].done_ns > last_done) {
            last_done = ps[k].done_ns;
        }
        if (ps[k].rss_kib > out->rss_after_submit_kib) {
            out->rss_after_submit_kib = ps[k].rss_kib;
        }
    }
    free(ps);
    free(th);
    out->submit_ns = last_done - out->t0_ns;
    out->accepted = rs->n - out->rejected;
    out->expected_hash = full_hash - rejected_hash;
    if (failed) {
        snprintf(res->msg, sizeof res->msg, "%s: submit failed", rs->a->name);
        res->status = BENCH_RES_ERROR;
        return -1;
    }
    if (wait_done(out->accepted, rs->stall_ns, res->msg, sizeof res->msg) != 0) {
        res->status = BENCH_RES_INTEGRITY;
        return -1;
    }
    out->total_ns = bench_now_ns() - out->t0_ns;
    out->cpu_ns = process_cpu_ns() - cpu0;
    return 0;
}

/* After destroy: every accepted task ran exactly once. */
static int final_check(const run_out *out, bench_result *res)
{
    uint64_t count, hash;
    bench_accounting_sum(&count, &hash);
    if (count != out->accepted) {
        snprintf(res->msg, sizeof res->msg, "%s: %llu tasks ran, %llu were accepted",
                 count > out->accepted ? "TASKS RAN TWICE" : "LOST TASKS", (unsigned long long)count,
                 (unsigned long long)out->accepted);
        res->status = BENCH_RES_INTEGRITY;
        return -1;
    }
    if (hash != out->expected_hash) {
        snprintf(res->msg, sizeof res->msg,
                 "TASKS LOST AND RUN TWICE: the count matches (%llu) but the set of indices does not",
                 (unsigned long long)count);
        res->status = BENCH_RES_INTEGRITY;
        return -1;
    }
    return 0;
}

static void *make_pool(const bench_adapter *a, const bench_pool_opts *opts, bench_result *res)
{
    void *pool = NULL;
    char err[200] = "";
    if (a->create(a, opts, &pool, err, sizeof err) != 0) {
        snprintf(res->msg, sizeof res->msg, "create failed: %s", err);
        res->status = BENCH_RES_ERROR;
        return NULL;
    }
    return pool;
}

static uint64_t scaled(const bench_adapter *a, uint64_t n)
{
    uint64_t d = a->size_divisor > 1 ? a->size_divisor : 1;
    uint64_t m = n / d;
    return m ? m : 1;
}

/* One complete timed run: create, submit n, wait, destroy, check. */
static int timed_run(const bench_adapter *a, const bench_config *cfg, const bench_pool_opts *opts, uint64_t n,
                     run_out *out, bench_result *res)
{
    void *pool = make_pool(a, opts, res);
    if (!pool) {
        return -1;
    }
    run_spec rs = {.a = a, .pool = pool, .n = n, .producers = opts->producers, .stall_ns = cfg->stall_ns};
    if (run_tasks(&rs, out, res) != 0) {
        return -1; /* pool left as is: destroying a pool that lost tasks may hang */
    }
    a->destroy(pool);
    return final_check(out, res);
}

/* ---- takes: who is in which workload ---------------------------------- */

static bool is_extra_variant(const bench_adapter *a)
{
    return (a->flags & (BENCH_F_METRICS_ONLY | BENCH_F_BURST_ONLY | BENCH_F_OVERLOAD_ONLY)) != 0;
}

static bool takes_noop(const bench_adapter *a)
{
    return !is_extra_variant(a) && !(a->flags & BENCH_F_FLOOR);
}

static bool takes_pools(const bench_adapter *a)
{
    if (a->flags & BENCH_F_REF) {
        return false;
    }
    return !(a->flags & BENCH_F_SLUICE) || (a->flags & (BENCH_F_MAIN | BENCH_F_QUEUE));
}

/* spin-1us: the pools, and the floor (the same tasks with no pool). */
static bool takes_timed(const bench_adapter *a)
{
    return takes_pools(a) || (a->flags & BENCH_F_FLOOR);
}

static bool takes_latency(const bench_adapter *a)
{
    return (a->flags & BENCH_F_REF) || takes_pools(a); /* the raw ring and the floor too */
}

static bool takes_idle(const bench_adapter *a)
{
    return takes_pools(a) && !(a->flags & BENCH_F_NO_IDLE);
}

static bool takes_burst(const bench_adapter *a)
{
    if (a->flags & BENCH_F_REF) {
        return false;
    }
    return !(a->flags & BENCH_F_SLUICE) || (a->flags & (BENCH_F_MAIN | BENCH_F_BURST_ONLY | BENCH_F_QUEUE));
}

static bool takes_metrics(const bench_adapter *a)
{
    return (a->flags & BENCH_F_SLUICE) &&
           !(a->flags & (BENCH_F_BURST_ONLY | BENCH_F_NOOP_ONLY | BENCH_F_OVERLOAD_ONLY | BENCH_F_QUEUE));
}

/* ---- the workloads ----------------------------------------------------- */

static bench_pool_opts base_opts(const bench_config *cfg, unsigned producers)
{
    return (bench_pool_opts){
        .workers = cfg->workers, .queue_capacity = cfg->queue_capacity, .producers = producers};
}

static void noop_measure(const bench_adapter *a, const bench_config *cfg, bench_result *res,
                         unsigned producers)
{
    bench_g.body = bench_body_noop;
    /* bench_g.malloc_arg is set by the noop-malloc workloads. */
    bench_pool_opts o = base_opts(cfg, producers);
    uint64_t n = scaled(a, cfg->n_noop);
    run_out out;
    if (timed_run(a, cfg, &o, n, &out, res) != 0) {
        return;
    }
    res->v[0] = (double)n / ((double)out.total_ns / 1e9);
    res->v[1] = (double)out.total_ns / (double)n;
    res->v[2] = (double)out.cpu_ns / (double)n;
}

static void m_noop_1p(const bench_adapter *a, const bench_config *cfg, bench_result *res)
{
    noop_measure(a, cfg, res, 1);
}

static void m_noop_np(const bench_adapter *a, const bench_config *cfg, bench_result *res)
{
    noop_measure(a, cfg, res, cfg->producers);
}

static void d_noop_1p(const bench_config *cfg, char *buf, size_t len)
{
    snprintf(buf, len,
             "no-op tasks from 1 producer; K=%u workers; N=%llu (thread-per-task, apr N/20); queue bound %zu",
             cfg->workers, (unsigned long long)cfg->n_noop, cfg->queue_capacity);
}

static void d_noop_np(const bench_config *cfg, char *buf, size_t len)
{
    snprintf(buf, len,
             "no-op tasks from %u producers; K=%u workers; N=%llu in all (thread-per-task, apr N/20)",
             cfg->producers, cfg->workers, (unsigned long long)cfg->n_noop);
}

/* The *-malloc workloads: what most services do. The producer mallocs
 * each task's argument (a 64-byte record) and the task frees it, on
 * another thread: the allocator's cross-thread free and the record's
 * cache line moving to the worker are part of the hand-off. */
static void m_noop_malloc_1p(const bench_adapter *a, const bench_config *cfg, bench_result *res)
{
    bench_g.malloc_arg = true;
    noop_measure(a, cfg, res, 1);
}

static void m_noop_malloc_np(const bench_adapter *a, const bench_config *cfg, bench_result *res)
{
    bench_g.malloc_arg = true;
    noop_measure(a, cfg, res, cfg->producers);
}

static void d_noop_malloc_1p(const bench_config *cfg, char *buf, size_t len)
{
    snprintf(buf, len,
             "no-op tasks, each with a %d-byte argument malloc'ed by the producer and freed by the task; 1 "
             "producer; K=%u; N=%llu (thread-per-task, apr N/20)",
             BENCH_ARG_BYTES, cfg->workers, (unsigned long long)cfg->n_noop);
}

static void d_noop_malloc_np(const bench_config *cfg, char *buf, size_t len)
{
    snprintf(buf, len,
             "no-op tasks, each with a %d-byte argument malloc'ed by the producer and freed by the task; %u "
             "producers; K=%u; N=%llu in all (thread-per-task, apr N/20)",
             BENCH_ARG_BYTES, cfg->producers, cfg->workers, (unsigned long long)cfg->n_noop);
}

static int floor_create(const bench_adapter *self, const bench_pool_opts *opts, void **pool, char *err,
                        size_t errlen)
{
    (void)self;
    (void)opts;
    *pool = NULL;
    snprintf(err, errlen, "the floor is not a pool: it runs only where a workload measures it");
    return -1;
}

static int floor_submit(void *pool, void *prod, uint64_t idx)
{
    (void)pool;
    (void)prod;
    (void)idx;
    return BENCH_EFAIL;
}

static void floor_destroy(void *pool)
{
    (void)pool;
}

const bench_adapter bench_adapter_floor = {
    .name = "floor",
    .overflow = "reference: the same tasks with no pool - K threads started together take task numbers "
                "from one shared counter and run them directly (spin-1us); latency: each task one sem_post "
                "of a semaphore K threads park on (the wake-up every parking pool pays)",
    .flags = BENCH_F_REF | BENCH_F_NO_IDLE | BENCH_F_FLOOR,
    .create = floor_create,
    .submit = floor_submit,
    .destroy = floor_destroy,
};

/* ---- the floor: the same tasks with no pool ---------------------------- *
 *
 * What this machine gives the tasks themselves, measured in the same run
 * as the pools: "x ideal" compares a pool with arithmetic (N x task / K),
 * which on a VM can be out of reach for any code (a spin runs slower beside
 * another busy vCPU than alone in its calibration; a 1 ms sleep wakes late
 * by the host's timer latency; a parked thread wakes in what the kernel and
 * the hypervisor take). The floor runs the same bodies with no queue and no
 * hand-off object: K threads started together take the next task numbers
 * from one shared counter (16 at a time), so the load balances as a
 * pool's does; for latency each paced task is one
 * sem_post of a semaphore the K threads wait on (glibc's sem_wait parks at
 * once, it never spins), and the thread it wakes takes the next number. A
 * pool's wall / the floor's wall is then the pool's own share. A pool can
 * beat the floor: a worker that spins before it parks takes a paced task
 * with no wake-up at all, which the latency floor never does. The floor's
 * threads start warm, as the pools' workers do (their accounting slot set
 * before the clock starts).
 *
 * Not for sleep-1ms: 100 threads released together sleep and wake
 * together every millisecond and queue for the two CPUs at once, a worse
 * schedule than a pool's workers started one submit at a time (measured:
 * 1.18-1.25x ideal against the pools' 1.08-1.13x), so it is no floor. */

typedef struct floor_shared {
    _Atomic uint64_t next; /* the next task number to take */
    uint64_t n, chunk;
    sem_t sem; /* latency: one post per task, then one per thread to stop */
    pthread_barrier_t ready, start;
} floor_shared;

/* What a pool's warmed-up worker has before its first timed task: its
 * accounting slot. Then wait for the start. */
static void floor_warm(floor_shared *f)
{
    bench_accounting_join();
    pthread_barrier_wait(&f->ready);
    pthread_barrier_wait(&f->start);
}

static void *floor_direct(void *arg)
{
    floor_shared *f = arg;
    floor_warm(f);
    for (;;) {
        uint64_t i = atomic_fetch_add_explicit(&f->next, f->chunk, memory_order_relaxed);
        if (i >= f->n) {
            return NULL;
        }
        uint64_t end = i + f->chunk < f->n ? i + f->chunk : f->n;
        for (; i < end; i++) {
            bench_task_run(i);
        }
    }
}

static void *floor_parked(void *arg)
{
    floor_shared *f = arg;
    floor_warm(f);
    for (;;) {
        while (sem_wait(&f->sem) != 0) {
        }
        uint64_t i = atomic_fetch_add_explicit(&f->next, 1, memory_order_relaxed);
        if (i >= f->n) {
            return NULL;
        }
        bench_task_run(i);
    }
}

/* Runs tasks 0..n-1 on k threads with no pool, paced like a pool's producer
 * when period_ns > 0 (latency), else taken `chunk` at a time. Fills *out
 * like run_tasks (t0 is read before the threads are released, as a pool's
 * run starts before its workers wake). Returns 0, or -1 with res filled. */
static int floor_run(unsigned k, uint64_t n, uint64_t chunk, uint64_t period_ns, run_out *out,
                     bench_result *res)
{
    memset(out, 0, sizeof *out);
    bench_accounting_reset();
    for (uint64_t i = 0; i < n; i++) {
        out->expected_hash += bench_mix(i);
    }
    out->accepted = n;
    floor_shared *f = calloc(1, sizeof *f);
    pthread_t *th = calloc(k, sizeof *th);
    if (!f || !th) {
        free(f);
        free(th);
        snprintf(res->msg, sizeof res->msg, "out of memory");
        res->status = BENCH_RES_ERROR;
        return -1;
    }
    f->n = n;
    f->chunk = chunk ? chunk : 1;
    sem_init(&f->sem, 0, 0);
    pthread_barrier_init(&f->ready, NULL, k + 1);
    pthread_barrier_init(&f->start, NULL, k + 1);
    for (unsigned t = 0; t < k; t++) {
        if (pthread_create(&th[t], NULL, period_ns ? floor_parked : floor_direct, f) != 0) {
            fprintf(stderr, "sluice-bench: pthread_create for the floor failed\n");
            _exit(3); /* the barrier would never open */
        }
    }
    pthread_barrier_wait(&f->ready); /* every thread warm and waiting */
    bench_accounting_reset();
    uint64_t cpu0 = process_cpu_ns();
    out->t0_ns = bench_now_ns();
    pthread_barrier_wait(&f->start);
    if (period_ns) {
        for (uint64_t i = 0; i < n; i++) {
            uint64_t due = out->t0_ns + i * period_ns, now;
            while ((now = bench_now_ns()) < due) {
#if defined(__x86_64__) || defined(__i386__)
                __builtin_ia32_pause();
#endif
            }
            bench_g.submit_ns[i] = now;
            sem_post(&f->sem);
        }
        out->submit_ns = bench_now_ns() - out->t0_ns;
        for (unsigned t = 0; t < k; t++) {
            sem_post(&f->sem); /* each thread's number past n: stop */
        }
    }
    for (unsigned t = 0; t < k; t++) {
        pthread_join(th[t], NULL);
    }
    out->total_ns = bench_now_ns() - out->t0_ns;
    out->cpu_ns = process_cpu_ns() - cpu0;
    pthread_barrier_destroy(&f->ready);
    pthread_barrier_destroy(&f->start);
    sem_destroy(&f->sem);
    free(f);
    free(th);
    return final_check(out, res);
}

static void m_spin(const bench_adapter *a, const bench_config *cfg, bench_result *res)
{
    bench_g.body = bench_body_spin;
    bench_g.spin_iters = cfg->spin_iters;
    bench_pool_opts o = base_opts(cfg, 1);
    bool floor = a->flags & BENCH_F_FLOOR;
    uint64_t n = floor ? cfg->n_spin : scaled(a, cfg->n_spin);
    run_out out;
    if ((floor ? floor_run(cfg->workers, n, 16, 0, &out, res) : timed_run(a, cfg, &o, n, &out, res)) != 0) {
        return;
    }
    unsigned lanes = cfg->workers < cfg->cpus ? cfg->workers : cfg->cpus;
    double ideal = (double)n * cfg->spin_ns / lanes;
    /* A row that ran N/d tasks is scaled up to N, so the column compares
     * like with like (x ideal is from its own run either way). */
    res->v[0] = (double)out.total_ns / 1e6 * ((double)cfg->n_spin / (double)n);
    res->v[1] = (double)out.total_ns / ideal;
    /* CPU spent beyond the tasks' own, per task: the pool's overhead */
    res->v[2] = ((double)out.cpu_ns - (double)n * cfg->spin_ns) / (double)n;
}

/* spin-1us with the argument malloc'ed by the producer, freed by the task. */
static void m_spin_malloc(const bench_adapter *a, const bench_config *cfg, bench_result *res)
{
    bench_g.malloc_arg = true;
    m_spin(a, cfg, res);
}

static void d_spin_malloc(const bench_config *cfg, char *buf, size_t len)
{
    snprintf(buf, len,
             "~1 us CPU tasks (measured %.0f ns), each with a %d-byte argument malloc'ed by the producer and "
             "freed by the task; K=%u; N=%llu (thread-per-task, apr N/20, wall scaled up to N); ideal = N x "
             "task / min(K, cpus)",
             cfg->spin_ns, BENCH_ARG_BYTES, cfg->workers, (unsigned long long)cfg->n_spin);
}

static void d_spin(const bench_config *cfg, char *buf, size_t len)
{
    snprintf(buf, len,
             "~1 us CPU tasks (calibrated spin, measured %.0f ns); K=%u; N=%llu (thread-per-task, apr N/20, "
             "wall scaled up to N); ideal = N x task / min(K, cpus)",
             cfg->spin_ns, cfg->workers, (unsigned long long)cfg->n_spin);
}

/* Forward: the latch body of the rss workload, reused to warm pools up. */
static void body_latch(uint64_t idx);
static unsigned latch_arrived, latch_target;
static bool latch_timed_out;

/* Make all k workers exist and run at once (k latch tasks that wait for
 * each other), so lazy and eager pools start the timed part equal. */
static int warm_all(const bench_adapter *a, const bench_config *cfg, void *pool, unsigned k,
                    bench_result *res)
{
    latch_arrived = 0;
    latch_timed_out = false;
    latch_target = k;
    bench_g.body = body_latch;
    run_spec rs = {.a = a, .pool = pool, .n = k, .producers = 1, .stall_ns = cfg->stall_ns};
    run_out out;
    if (run_tasks(&rs, &out, res) != 0) {
        return -1;
    }
    uint64_t count, hash;
    bench_accounting_sum(&count, &hash);
    if (count != out.accepted || hash != out.expected_hash) {
        return final_check(&out, res);
    }
    return 0;
}

static void m_sleep(const bench_adapter *a, const bench_config *cfg, bench_result *res)
{
    bench_pool_opts o = base_opts(cfg, 1);
    o.workers = cfg->sleep_workers;
    o.start_all = true;
    void *pool = make_pool(a, &o, res);
    if (!pool || warm_all(a, cfg, pool, cfg->sleep_workers, res) != 0) {
        return;
    }
    bench_g.body = bench_body_sleep_1ms;
    uint64_t n = cfg->n_sleep;
    run_spec rs = {.a = a, .pool = pool, .n = n, .producers = 1, .stall_ns = cfg->stall_ns};
    run_out out;
    if (run_tasks(&rs, &out, res) != 0) {
        return;
    }
    a->destroy(pool);
    if (final_check(&out, res) != 0) {
        return;
    }
    double ideal = (double)n * 1e6 / cfg->sleep_workers;
    res->v[0] = (double)out.total_ns / 1e6;
    res->v[1] = (double)out.total_ns / ideal;
    if (latch_timed_out) {
        snprintf(res->msg, sizeof res->msg, "warm-up: only %u of %u workers ran at once", latch_arrived,
                 cfg->sleep_workers);
    }
}

static void d_sleep(const bench_config *cfg, char *buf, size_t len)
{
    snprintf(buf, len,
             "1 ms sleeping tasks; K=%u, all started and warm (K tasks that wait for each other); N=%llu; "
             "ideal = N x 1 ms / K = %.1f ms",
             cfg->sleep_workers, (unsigned long long)cfg->n_sleep, (double)cfg->n_sleep / cfg->sleep_workers);
}

static int cmp_u64(const void *x, const void *y)
{
    uint64_t a = *(const uint64_t *)x, b = *(const uint64_t *)y;
    return a < b ? -1 : a > b;
}

static double pct(const uint64_t *sorted, uint64_t n, double q)
{
    uint64_t i = (uint64_t)(q * (double)(n - 1) + 0.5);
    return (double)sorted[i];
}

static void m_latency(const bench_adapter *a, const bench_config *cfg, bench_result *res)
{
    uint64_t n = (uint64_t)(cfg->latency_rate * cfg->latency_seconds);
    bench_g.body = bench_body_latency;
    bench_g.submit_ns = calloc(n, sizeof(uint64_t));
    bench_g.latency_ns = calloc(n, sizeof(uint64_t));
    if (!bench_g.submit_ns || !bench_g.latency_ns) {
        snprintf(res->msg, sizeof res->msg, "out of memory");
        res->status = BENCH_RES_ERROR;
        return;
    }
    uint64_t period_ns = (uint64_t)(1e9 / cfg->latency_rate);
    run_out out;
    if (a->flags & BENCH_F_FLOOR) {
        if (floor_run(cfg->workers, n, 1, period_ns, &out, res) != 0) {
            return;
        }
    } else {
        bench_pool_opts o = base_opts(cfg, 1);
        o.start_all = true;
        void *pool = make_pool(a, &o, res);
        if (!pool) {
            return;
        }
        run_spec rs = {
            .a = a, .pool = pool, .n = n, .producers = 1, .stall_ns = cfg->stall_ns, .period_ns = period_ns};
        if (run_tasks(&rs, &out, res) != 0) {
            return;
        }
        a->destroy(pool);
        if (final_check(&out, res) != 0) {
            return;
        }
    }
    qsort(bench_g.latency_ns, n, sizeof(uint64_t), cmp_u64);
    res->v[0] = pct(bench_g.latency_ns, n, 0.99) / 1e3;
    res->v[1] = pct(bench_g.latency_ns, n, 0.50) / 1e3;
    res->v[2] = pct(bench_g.latency_ns, n, 0.999) / 1e3;
    res->v[3] = (double)bench_g.latency_ns[n - 1] / 1e3;
    /* achieved rate: did the producer keep up? */
    res->v[4] = (double)n / ((double)out.submit_ns / 1e9) / 1e3;
}

static void d_latency(const bench_config *cfg, char *buf, size_t len)
{
    snprintf(
        buf, len,
        "paced hand-off: no-op tasks at %.0f/s for %.2f s from 1 producer (spin-paced); K=%u, all started; "
        "submit-to-start latency",
        cfg->latency_rate, cfg->latency_seconds, cfg->workers);
}

/* Get K workers started with a few no-op tasks (lazy pools start them now). */
static int warm_up(const bench_adapter *a, const bench_config *cfg, void *pool, unsigned k, bench_result *res)
{
    bench_g.body = bench_body_noop;
    run_spec rs = {.a = a, .pool = pool, .n = 4ull * k, .producers = 1, .stall_ns = cfg->stall_ns};
    run_out out;
    if (run_tasks(&rs, &out, res) != 0) {
        return -1;
    }
    uint64_t count, hash;
    bench_accounting_sum(&count, &hash);
    if (count != out.accepted || hash != out.expected_hash) {
        return final_check(&out, res);
    }
    return 0;
}

static void m_idle(const bench_adapter *a, const bench_config *cfg, bench_result *res)
{
    bench_pool_opts o = base_opts(cfg, 1);
    o.start_all = true;
    void *pool = make_pool(a, &o, res);
    if (!pool || warm_up(a, cfg, pool, cfg->workers, res) != 0) {
        return;
    }
    bench_sleep_ns(50000000); /* let workers reach their parked state */
    struct rusage s0, s1, t0, t1;
    getrusage(RUSAGE_SELF, &s0);
    getrusage(RUSAGE_THREAD, &t0);
    uint64_t w0 = bench_now_ns();
    bench_sleep_ns((uint64_t)(cfg->idle_seconds * 1e9));
    uint64_t wall = bench_now_ns() - w0;
    getrusage(RUSAGE_SELF, &s1);
    getrusage(RUSAGE_THREAD, &t1);
#define TV_NS(tv) ((double)(tv).tv_sec * 1e9 + (double)(tv).tv_usec * 1e3)
    double cpu = TV_NS(s1.ru_utime) + TV_NS(s1.ru_stime) - TV_NS(s0.ru_utime) - TV_NS(s0.ru_stime) -
                 (TV_NS(t1.ru_utime) + TV_NS(t1.ru_stime) - TV_NS(t0.ru_utime) - TV_NS(t0.ru_stime));
#undef TV_NS
    double sw = (double)((s1.ru_nvcsw + s1.ru_nivcsw) - (s0.ru_nvcsw + s0.ru_nivcsw)) -
                (double)((t1.ru_nvcsw + t1.ru_nivcsw) - (t0.ru_nvcsw + t0.ru_nivcsw));
    a->destroy(pool);
    res->v[0] = cpu < 0 ? 0 : cpu / (double)wall * 100.0;
    res->v[1] = sw < 0 ? 0 : sw / ((double)wall / 1e9);
}

static void d_idle(const bench_config *cfg, char *buf, size_t len)
{
    snprintf(buf, len,
             "idle pool: K=%u workers started and parked; CPU (getrusage, all threads but the measuring one) "
             "over %.1f s",
             cfg->workers, cfg->idle_seconds);
}

/* The rss latch: every task waits until all K run at once, so all K
 * workers exist and have used their stacks. */
static pthread_mutex_t latch_mu = PTHREAD_MUTEX_INITIALIZER;
static pthread_cond_t latch_cv = PTHREAD_COND_INITIALIZER;
static void body_latch(uint64_t idx)
{
    (void)idx;
    pthread_mutex_lock(&latch_mu);
    if (++latch_arrived >= latch_target) {
        pthread_cond_broadcast(&latch_cv);
    }
    struct timespec until;
    clock_gettime(CLOCK_REALTIME, &until);
    until.tv_sec += 10;
    while (latch_arrived < latch_target && !latch_timed_out) {
        if (pthread_cond_timedwait(&latch_cv, &latch_mu, &until) == ETIMEDOUT) {
            latch_timed_out = true;
            pthread_cond_broadcast(&latch_cv);
        }
    }
    pthread_mutex_unlock(&latch_mu);
}

static unsigned thread_count(void)
{
    FILE *f = fopen("/proc/self/status", "r");
    unsigned n = 0;
    char line[256];
    while (f && fgets(line, sizeof line, f)) {
        if (sscanf(line, "Threads: %u", &n) == 1) {
            break;
        }
    }
    if (f) {
        fclose(f);
    }
    return n;
}

static void m_rss(const bench_adapter *a, const bench_config *cfg, bench_result *res)
{
    unsigned k = cfg->rss_workers;
    uint64_t before = bench_rss_kib();
    unsigned threads_before = thread_count();
    bench_pool_opts o = base_opts(cfg, 1);
    o.workers = k;
    o.queue_capacity = k > cfg->queue_capacity ? k : cfg->queue_capacity;
    o.start_all = true;
    void *pool = make_pool(a, &o, res);
    if (!pool) {
        return;
    }
    latch_arrived = 0;
    latch_timed_out = false;
    latch_target = k;
    bench_g.body = body_latch;
    run_spec rs = {.a = a, .pool = pool, .n = k, .producers = 1, .stall_ns = cfg->stall_ns};
    run_out out;
    if (run_tasks(&rs, &out, res) != 0) {
        return;
    }
    bench_sleep_ns(100000000); /* all workers parked again */
    uint64_t after = bench_rss_kib();
    unsigned threads = thread_count() - threads_before;
    a->destroy(pool);
    if (final_check(&out, res) != 0) {
        return;
    }
    double delta = after > before ? (double)(after - before) : 0;
    res->v[0] = delta / 1024.0;
    res->v[1] = delta / k;
    res->v[2] = threads;
    if (latch_timed_out) {
        snprintf(res->msg, sizeof res->msg, "only %u of %u tasks ran at once: fewer than K workers",
                 latch_arrived, k);
    }
}

static void d_rss(const bench_config *cfg, char *buf, size_t len)
{
    snprintf(buf, len,
             "RSS growth of a pool with %u workers, after each ran one task at the same time and parked "
             "(VmRSS delta)",
             cfg->rss_workers);
}

static void m_burst(const bench_adapter *a, const bench_config *cfg, bench_result *res)
{
    bench_g.body = bench_body_spin;
    bench_g.spin_iters = cfg->burst_iters;
    bench_pool_opts o = base_opts(cfg, 1);
    o.queue_capacity = cfg->burst_capacity;
    o.start_all = true;
    uint64_t n = scaled(a, cfg->burst_capacity * cfg->burst_factor);
    void *pool = make_pool(a, &o, res);
    if (!pool) {
        return;
    }
    uint64_t before = bench_rss_kib();
    run_spec rs = {
        .a = a, .pool = pool, .n = n, .producers = 1, .stall_ns = cfg->stall_ns, .sample_rss = true};
    run_out out;
    if (run_tasks(&rs, &out, res) != 0) {
        return;
    }
    a->destroy(pool);
    if (final_check(&out, res) != 0) {
        return;
    }
    double grow = out.rss_after_submit_kib > before ? (double)(out.rss_after_submit_kib - before) : 0;
    /* Times of a row that ran N/d tasks are scaled up to N (see m_spin). */
    double up = (double)(cfg->burst_capacity * cfg->burst_factor) / (double)n;
    res->v[0] = (double)out.submit_ns / 1e6 * up;
    res->v[1] = grow / 1024.0;
    res->v[2] = 100.0 * (double)out.accepted / (double)n;
    res->v[3] = (double)out.rejected;
    res->v[4] = (double)out.total_ns / 1e6 * up;
}

static void d_burst(const bench_config *cfg, char *buf, size_t len)
{
    snprintf(buf, len,
             "burst of %llu x the bound (%zu) of ~5 us tasks (measured %.1f us) from 1 producer, K=%u: "
             "block, reject or grow memory? (thread-per-task, apr N/20, times scaled up to N)",
             (unsigned long long)cfg->burst_factor, cfg->burst_capacity, cfg->burst_ns / 1e3, cfg->workers);
}

static void d_metrics(const bench_config *cfg, char *buf, size_t len)
{
    snprintf(buf, len, "Sluice metrics on vs off: no-op tasks from 1 producer, K=%u, N=%llu", cfg->workers,
             (unsigned long long)cfg->n_noop);
}

#define COLS(...)                                                                                            \
    {                                                                                                        \
        __VA_ARGS__                                                                                          \
    }
const bench_workload bench_workloads[] = {
    {.name = "noop-1p",
     .title = "no-op throughput, 1 producer",
     .ncols = 3,
     .cols = COLS("tasks/s", "ns/task", "CPU ns/task"),
     .better = +1,
     .takes = takes_noop,
     .measure = m_noop_1p,
     .describe = d_noop_1p,
     .takes_selftest = true},
    {.name = "noop-Np",
     .title = "no-op throughput, several producers",
     .ncols = 3,
     .cols = COLS("tasks/s", "ns/task", "CPU ns/task"),
     .better = +1,
     .takes = takes_noop,
     .measure = m_noop_np,
     .describe = d_noop_np,
     .takes_selftest = true},
    {.name = "noop-malloc",
     .title = "no-op throughput, argument malloc'ed by the producer and freed by the task, 1 producer",
     .ncols = 3,
     .cols = COLS("tasks/s", "ns/task", "CPU ns/task"),
     .better = +1,
     .takes = takes_noop,
     .measure = m_noop_malloc_1p,
     .describe = d_noop_malloc_1p},
    {.name = "noop-malloc-Np",
     .title = "no-op throughput, argument malloc'ed by the producer and freed by the task, several producers",
     .ncols = 3,
     .cols = COLS("tasks/s", "ns/task", "CPU ns/task"),
     .better = +1,
     .takes = takes_noop,
     .measure = m_noop_malloc_np,
     .describe = d_noop_malloc_np},
    {.name = "spin-1us",
     .title = "~1 us CPU tasks",
     .ncols = 3,
     .cols = COLS("wall ms", "x ideal", "CPU ovh ns"),
     .better = -1,
     .takes = takes_timed,
     .measure = m_spin,
     .describe = d_spin},
    {.name = "spin-malloc",
     .title = "~1 us CPU tasks, argument malloc'ed by the producer and freed by the task",
     .ncols = 3,
     .cols = COLS("wall ms", "x ideal", "CPU ovh ns"),
     .better = -1,
     .takes = takes_pools,
     .measure = m_spin_malloc,
     .describe = d_spin_malloc},
    {.name = "sleep-1ms",
     .title = "1 ms sleeping tasks",
     .ncols = 2,
     .cols = COLS("wall ms", "x ideal"),
     .better = -1,
     .takes = takes_pools,
     .measure = m_sleep,
     .describe = d_sleep},
    {.name = "latency",
     .title = "paced hand-off latency",
     .ncols = 5,
     .cols = COLS("p99 us", "p50 us", "p99.9 us", "max us", "k/s done"),
     .better = -1,
     .takes = takes_latency,
     .measure = m_latency,
     .describe = d_latency},
    {.name = "idle",
     .title = "idle CPU of parked workers",
     .ncols = 2,
     .cols = COLS("CPU %", "wakeups/s"),
     .better = -1,
     .takes = takes_idle,
     .measure = m_idle,
     .describe = d_idle},
    {.name = "rss",
     .title = "RSS with many idle workers",
     .ncols = 3,
     .cols = COLS("MiB", "KiB/worker", "threads"),
     .better = -1,
     .takes = takes_idle,
     .measure = m_rss,
     .describe = d_rss},
    {.name = "burst",
     .title = "burst far above capacity",
     .ncols = 5,
     .cols = COLS("submit ms", "RSS+ MiB", "accepted %", "rejected", "total ms"),
     .better = 0,
     .takes = takes_burst,
     .measure = m_burst,
     .describe = d_burst},
    {.name = "metrics",
     .title = "Sluice metrics on vs off",
     .ncols = 3,
     .cols = COLS("tasks/s", "ns/task", "CPU ns/task"),
     .better = +1,
     .takes = takes_metrics,
     .measure = m_noop_1p,
     .describe = d_metrics},
#ifdef BENCH_HAVE_SLUICE
    {.name = "overload",
     .title = "offered load 2x capacity, tasks with deadlines",
     .ncols = 6,
     .cols = COLS("goodput %cap", "good %offer", "p99 ms", "p50 ms", "shed %", "refused %"),
     .better = +1,
     .takes = bench_takes_overload,
     .measure = bench_m_overload,
     .describe = bench_d_overload},
#endif
};
#undef COLS
const size_t bench_workload_count = sizeof bench_workloads / sizeof bench_workloads[0];

_Static_assert(sizeof bench_workloads / sizeof bench_workloads[0] <= BENCH_MAX_WORKLOADS,
               "more workloads than the driver's table holds: raise BENCH_MAX_WORKLOADS in bench.h");
