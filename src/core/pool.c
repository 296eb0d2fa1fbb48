/*
 * src/core/pool.c - the pool's public face: create, submit, resize, drain,
 * destroy and stats.
 *
 * The submit fast path is: build the task on the stack, push it into the
 * lock-free ring (one CAS), and make one seq_cst load of `idle` to decide
 * whether a parked worker needs a wake-up (worker.c explains why that is
 * enough). No allocation, no lock, no system call while workers are busy.
 * Everything else (a full queue, a closed pool, starting workers) is the
 * slow path and may lock pool->mu.
 *
 * Accounting. `submitted` is not a counter of its own: it is the ring's
 * exact push count plus the tasks run by CALLER_RUNS. Each accepted task
 * ends in exactly one shard counter (completed, failed, panicked, shed, in
 * the shard of the thread that ran it) or one pool counter (dropped by the
 * submitter that evicted it, abandoned by the drain/destroy thread). So
 *     submitted = completed + failed + panicked + dropped + shed + abandoned
 * once nothing is queued or running.
 *
 * Closing. Drain and destroy close the ring (a bit in its tail word): from
 * then on no push can claim a place, so the set of accepted tasks is final,
 * and workers exit once the ring is empty. Submitters blocked for space
 * wait on cv_space under mu; closing broadcasts it and they return
 * SLUICE_ECLOSED. destroy waits until `waiting` is zero before it frees.
 *
 * Lock order: mu -> park_mu. No lock is held while user code runs (abandon
 * and event handlers are called with no lock held).
 */
#include <errno.h>
#include <sched.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "base/enums.h"
#include "core/internal.h"

/* How many times a BLOCK submitter polls a full queue for its low-water
 * mark before it sleeps (about a microsecond of `pause`). */
#define SUBMIT_SPIN_POLLS 32

/* The timing word for a requested rate: N, or 1 | AUTO for automatic
 * (exact to begin with; workers adapt it). N is at most 2^31 - 1. */
static unsigned timing_word(unsigned every)
{
    if (every == SLUICE_TIMING_SAMPLE_AUTO) {
        return 1u | SLUICE__TIMING_AUTO;
    }
    return every > SLUICE__TIMING_N(~0u) ? SLUICE__TIMING_N(~0u) : every;
}

/* Per-thread countdown for timing samples (1 in N submits is stamped). */
static SLUICE__TLS unsigned tls_sample_left;

/* Names and parsers of the pool's enums, from their lists in pool.h. */
SLUICE__ENUM_FUNCTIONS(sluice_abandon_reason, SLUICE_ABANDON_REASON_MAP, SLUICE_ABANDON_DROPPED, "unknown",
                       sluice_abandon_reason_name, sluice_abandon_reason_parse)
SLUICE__ENUM_FUNCTIONS(sluice_overflow, SLUICE_OVERFLOW_MAP, 0, "unknown", sluice_overflow_name,
                       sluice_overflow_parse)
SLUICE__ENUM_FUNCTIONS(sluice_fault_mode, SLUICE_FAULT_MODE_MAP, 0, "unknown", sluice_fault_mode_name,
                       sluice_fault_mode_parse)
SLUICE__ENUM_FUNCTIONS(sluice_worker_status, SLUICE_WORKER_STATUS_MAP, 0, "unknown",
                       sluice_worker_status_name, sluice_worker_status_parse)
SLUICE__ENUM_FUNCTIONS(sluice_overload_mode, SLUICE_OVERLOAD_MODE_MAP, 0, "unknown",
                       sluice_overload_mode_name, sluice_overload_mode_parse)

const char *sluice_event_kind_name(sluice_event_kind kind)
{
    switch (kind) {
    case SLUICE_EVENT_WORKER_START:
        return "worker_start";
    case SLUICE_EVENT_WORKER_EXIT:
        return "worker_exit";
    case SLUICE_EVENT_RESIZE:
        return "resize";
    case SLUICE_EVENT_DRAIN_START:
        return "drain_start";
    case SLUICE_EVENT_DRAIN_END:
        return "drain_end";
    case SLUICE_EVENT_SUBMIT_REFUSED:
        return "submit_refused";
    case SLUICE_EVENT_WORKER_START_FAILED:
        return "worker_start_failed";
    }
    return "unknown";
}

void sluice_pool_config_init(sluice_pool_config *cfg)
{
    if (!cfg) {
        return;
    }
    memset(cfg, 0, sizeof *cfg);
    cfg->overflow = SLUICE_OVERFLOW_BLOCK;
    cfg->timing_sample_every = SLUICE_TIMING_SAMPLE_AUTO;
}

/* ---- validation --------------------------------------------------------- */

/* Format into errbuf and return SLUICE_EINVAL. A macro, not a variadic
 * function, so the one formatter (sluice__errf) checks the format. */
#define fail(errbuf, errlen, ...) (sluice__errf(errbuf, errlen, __VA_ARGS__), SLUICE_EINVAL)

static sluice_err validate(const sluice_pool_config *cfg, char *errbuf, size_t errlen)
{
    if (!cfg->name || !cfg->name[0]) {
        return fail(errbuf, errlen, "name: required (used in metrics and thread names)");
    }
    sluice_err err = sluice__name_check(cfg->name, SLUICE_POOL_NAME_MAX, "name", errbuf, errlen);
    if (err) {
        return err;
    }
    if (cfg->workers == 0) {
        return fail(errbuf, errlen, "workers: must be > 0, got 0");
    }
    if (cfg->min_workers > cfg->workers) {
        return fail(errbuf, errlen, "min_workers: must be <= workers (%u), got %u", cfg->workers,
                    cfg->min_workers);
    }
    if (cfg->queue_capacity == 0) {
        return fail(errbuf, errlen, "queue_capacity: must be > 0 (an unbounded queue is not offered)");
    }
    if (cfg->queue_capacity > (SIZE_MAX >> 8)) {
        return fail(errbuf, errlen, "queue_capacity: too large, got %zu", cfg->queue_capacity);
    }
    if ((unsigned)cfg->overflow > SLUICE_OVERFLOW_DROP_OLDEST) {
        return fail(errbuf, errlen, "overflow: unknown policy %d", (int)cfg->overflow);
    }
    if ((unsigned)cfg->fault_mode > SLUICE_FAULT_RECOVER) {
        return fail(errbuf, errlen, "fault_mode: unknown mode %d", (int)cfg->fault_mode);
    }
    if (cfg->stack_size && cfg->stack_size < 16384) {
        return fail(errbuf, errlen, "stack_size: must be 0 (default) or >= 16384, got %zu", cfg->stack_size);
    }
    if (cfg->histogram_bucket_count) { /* 0: the default bounds */
        err = sluice__hist_bounds_check(cfg->histogram_buckets, cfg->histogram_bucket_count,
                                        "histogram_buckets", errbuf, errlen);
        if (err) {
            return err;
        }
    }
    if (cfg->clock && !cfg->clock->now_ns) {
        return fail(errbuf, errlen, "clock: now_ns is NULL");
    }
    if ((unsigned)cfg->overload >= SLUICE_OVERLOAD_MODE_COUNT_) {
        return fail(errbuf, errlen, "overload: unknown mode %d", (int)cfg->overload);
    }
    uint64_t target = cfg->overload_target_ns ? cfg->overload_target_ns : SLUICE_OVERLOAD_TARGET_DEFAULT_NS;
    uint64_t interval =
        cfg->overload_interval_ns ? cfg->overload_interval_ns : SLUICE_OVERLOAD_INTERVAL_DEFAULT_NS;
    if (target > interval) {
        return fail(errbuf, errlen,
                    "overload_target_ns: must be at most overload_interval_ns (%llu ns), got %llu ns "
                    "(CoDel's target is a small part of its interval, 5 ms of 100 ms by default)",
                    (unsigned long long)interval, (unsigned long long)target);
    }
    if (cfg->overload_slough_ns && cfg->overload_slough_ns < target) {
        return fail(errbuf, errlen,
                    "overload_slough_ns: must be 0 (2 x target) or at least overload_target_ns (%llu ns), "
                    "got %llu ns (no task below the target is shed)",
                    (unsigned long long)target, (unsigned long long)cfg->overload_slough_ns);
    }
    if ((cfg->overload == SLUICE_OVERLOAD_LIFO || cfg->overload == SLUICE_OVERLOAD_CODEL_LIFO) &&
        (cfg->queue_discipline == SLUICE_QUEUE_SHARDED || cfg->queue_discipline == SLUICE_QUEUE_FIFO_BATCH)) {
        return fail(errbuf, errlen,
                    "overload: %s needs a queue that can serve its newest task; queue_discipline %s serves "
                    "%s (codel composes with it; so does fair)",
                    sluice_overload_mode_name(cfg->overload),
                    sluice_queue_discipline_name(cfg->queue_discipline),
                    cfg->queue_discipline == SLUICE_QUEUE_SHARDED ? "shard by shard" : "runs from the head");
    }
    return sluice__fair_validate(cfg, errbuf, errlen);
}

/* ---- create / destroy ---------------------------------------------------- */

static void pool_free(sluice_pool *p)
{
    for (unsigned i = 0; i < p->nslots; i++) {
        sem_destroy(&p->slots[i]->wake);
    }
    free(atomic_load_explicit(&p->caller_shard.hists, memory_order_relaxed));
    sluice__slabs_free(p); /* the worker slots and their histogram pairs */
    free(p->slots);
    free(p->zombies);
    sluice__overload_destroy(p->overload);
    if (p->q) {
        p->qops->destroy(p->q);
    }
    pthread_mutex_destroy(&p->mu);
    pthread_mutex_destroy(&p->park_mu);
    pthread_cond_destroy(&p->cv_space);
    pthread_cond_destroy(&p->cv_state);
    free(p);
}

static void close_and_wake(sluice_pool *p);
static void wait_workers_gone(sluice_pool *p);

sluice_err sluice_pool_create(const sluice_pool_config *cfg, sluice_pool **out, char *errbuf, size_t errlen)
{
    if (errbuf && errlen) {
        errbuf[0] = '\0';
    }
    if (!cfg || !out) {
        return fail(errbuf, errlen, "%s: NULL", !cfg ? "cfg" : "out");
    }
    sluice_err err = validate(cfg, errbuf, errlen);
    if (err) {
        return err;
    }
    sluice_pool *p = aligned_alloc(SLUICE__CACHELINE, (sizeof *p + SLUICE__CACHELINE - 1) /
                                                          SLUICE__CACHELINE * SLUICE__CACHELINE);
    if (!p) {
        return SLUICE_ENOMEM;
    }
    memset(p, 0, sizeof *p);
    p->cfg = *cfg;
    snprintf(p->name, sizeof p->name, "%s", cfg->name);
    p->cfg.name = p->name;
    const double *bounds =
        cfg->histogram_bucket_count ? cfg->histogram_buckets : sluice__hist_default_bounds();
    p->nbounds = cfg->histogram_bucket_count ? cfg->histogram_bucket_count : SLUICE_HIST_DEFAULT_BUCKETS;
    for (size_t i = 0; i < p->nbounds; i++) {
        p->bounds[i] = bounds[i];
        p->bounds_ns[i] = (uint64_t)(bounds[i] * 1e9 + 0.5);
    }
    p->doubling_buckets = true;
    for (size_t i = 0; i < p->nbounds; i++) {
        if (p->bounds_ns[i] != (UINT64_C(100000) << i)) {
            p->doubling_buckets = false;
        }
    }
    p->cfg.histogram_buckets = p->bounds;
    p->cfg.histogram_bucket_count = p->nbounds;
    p->clock = cfg->clock ? cfg->clock : sluice_clock_system();
    p->system_clock = sluice_clock_is_system(p->clock);
    p->fair = cfg->queue_discipline == SLUICE_QUEUE_FAIR;
    /* Adaptive LIFO needs a queue that can pop its newest task: the fair
     * queue can (per tenant), the ring cannot, so a FIFO LIFO pool gets the
     * locked deque. */
    bool lifo = cfg->overload == SLUICE_OVERLOAD_LIFO || cfg->overload == SLUICE_OVERLOAD_CODEL_LIFO;
    bool sharded = cfg->queue_discipline == SLUICE_QUEUE_SHARDED;
    bool batch = cfg->queue_discipline == SLUICE_QUEUE_FIFO_BATCH;
    p->qops = p->fair   ? &sluice__fair_ops
              : sharded ? &sluice__sharded_ops
              : batch   ? &sluice__ring_batch_ops
              : lifo    ? &sluice__deque_ops
                        : &sluice__ring_ops;
    atomic_init(&p->caller_shard.hists, sluice__hist_pair_new(p->nbounds));
    if (!atomic_load_explicit(&p->caller_shard.hists, memory_order_relaxed)) {
        free(p);
        return SLUICE_ENOMEM;
    }

    pthread_mutex_init(&p->mu, NULL);
    pthread_mutex_init(&p->park_mu, NULL);
    /* glibc's pthread_cond_init cannot fail (no allocation); pool_free
     * destroys both unconditionally. */
    (void)sluice__cond_init(&p->cv_space);
    (void)sluice__cond_init(&p->cv_state);

    err = p->fair ? sluice__fair_create(p, &p->q)
          : sharded
              ? sluice__sharded_create(cfg->queue_capacity,
                                       sluice__sharded_shards_for(cfg->queue_capacity, cfg->workers), &p->q)
          : batch ? sluice__ring_batch_create(cfg->queue_capacity, cfg->workers, &p->q)
          : lifo  ? sluice__deque_create(cfg->queue_capacity, &p->q)
                  : sluice__ring_create(cfg->queue_capacity, &p->q);
    if (err) {
        /* Valid but too big to allocate (say, queue_capacity 2^32 from a
         * config file): name the field rather than return a bare ENOMEM. */
        if (errbuf && errlen) {
            snprintf(errbuf, errlen, "queue_capacity: cannot allocate a queue of %zu tasks",
                     cfg->queue_capacity);
        }
        p->q = NULL;
        pool_free(p);
        return err;
    }
    if (cfg->overload != SLUICE_OVERLOAD_OFF) {
        err = sluice__overload_create(p, &p->overload);
        if (err) {
            if (err == SLUICE_EINVAL && errbuf && errlen) {
                snprintf(errbuf, errlen, "overload: %s needs a queue that can pop its newest task",
                         sluice_overload_mode_name(cfg->overload));
            }
            pool_free(p);
            return err;
        }
    }
    /* Blocked submitters are woken once a quarter of the queue is free
     * (at least one slot): see wait_for_space. */
    p->space_low = cfg->queue_capacity - (cfg->queue_capacity / 4 ? cfg->queue_capacity / 4 : 1);
    atomic_init(&p->capacity, cfg->workers);
    /* Automatic sampling starts by timing every task and adapts from the
     * first durations (worker.c); on a test clock it times every task. */
    atomic_init(&p->timing_every, cfg->timing_disabled ? 0u : timing_word(cfg->timing_sample_every));
    atomic_init(&p->submit_timeout_ns, cfg->submit_timeout_ns);
    atomic_init(&p->idle_expiry_ns, cfg->idle_expiry_ns);

    if (cfg->fault_mode != SLUICE_FAULT_OFF) {
        sluice__fault_guard_install();
        /* The guard's handler calls backtrace(), whose first call loads
         * libgcc_s (dlopen, malloc): done here, never in the handler.
         * Only here: sluice_panic calls it outside any handler, and the
         * unwinder is ~130 KiB of a process's RSS (in the rss benchmark,
         * 0.13 KiB a worker that no worker needed). */
        sluice__backtrace_warmup();
    }
    sluice__fastclock_init();

    unsigned start = cfg->prewarm ? cfg->workers : cfg->min_workers;
    pthread_mutex_lock(&p->mu);
    p->prewarm_pending = start;
    for (unsigned i = 0; i < start; i++) {
        err = sluice__spawn_locked(p);
        if (err) {
            p->prewarm_pending -= start - i;
            break;
        }
    }
    while (p->prewarm_pending > 0) {
        pthread_cond_wait(&p->cv_state, &p->mu);
    }
    bool init_failed = false;
    for (unsigned i = 0; i < p->nslots; i++) {
        if (p->slots[i]->occupied && !p->slots[i]->init_ok) {
            init_failed = true;
        }
    }
    pthread_mutex_unlock(&p->mu);
    if (!err && init_failed && cfg->prewarm) {
        err = SLUICE_EINIT;
        sluice__errf(errbuf, errlen, "worker_init: a worker's init hook refused during prewarm");
    }
    if (!err && atomic_load(&p->init_failures) > 0 && cfg->prewarm) {
        err = SLUICE_EINIT;
        sluice__errf(errbuf, errlen, "worker_init: a worker's init hook refused during prewarm");
    }
    if (err) {
        if (err == SLUICE_ESYS && errbuf && errlen) {
            snprintf(errbuf, errlen, "workers: could not start a worker thread: %s", strerror(errno));
        }
        p->destroying = true;
        close_and_wake(p);
        wait_workers_gone(p);
        pool_free(p);
        return err;
    }
    *out = p;
    return SLUICE_OK;
}

/* Closes the queue under mu: a DROP_OLDEST eviction (evict_and_push) holds
 * mu from its check of `closed` to its push, so the queue never closes
 * between the eviction and the push it made room for. */
static void close_and_wake(sluice_pool *p)
{
    pthread_mutex_lock(&p->mu);
    p->qops->close(p->q);
    atomic_store_explicit(&p->closed, true, memory_order_seq_cst);
    pthread_cond_broadcast(&p->cv_space);
    pthread_mutex_unlock(&p->mu);
    sluice__wake_all(p);
}

/* Drain, once the queue is closed: starts a worker for the queued tasks if
 * fewer than K exist and none is starting (each new one starts the next
 * while two are queued, as in a burst). `alive` is read before the depth,
 * both seq_cst: a worker leaves `alive` after it found the closed queue
 * empty, so a depth read after an `alive` that counts such a departure
 * reads the queue empty too. Read the other way round, a drain preempted
 * between the depth's loads of head and tail saw the tasks the workers ran
 * meanwhile, and the workers gone, and started a K+1st worker (init and
 * fini hooks at shutdown for nothing; core_workers saw 9 starts in a K = 8
 * pool under load). `pending`, not the depth: the ring's reads tail
 * first, and tail no longer moves once the queue is closed, so it never
 * counts a task the workers already took (a pool below K, lazily
 * started or shrunk, otherwise still could). */
static void start_for_drain(sluice_pool *p)
{
    pthread_mutex_lock(&p->mu);
    unsigned alive = atomic_load_explicit(&p->alive, memory_order_seq_cst);
    bool failed = false;
    if (alive < atomic_load_explicit(&p->capacity, memory_order_seq_cst) &&
        atomic_load_explicit(&p->starting, memory_order_seq_cst) == 0 && !p->destroying &&
        p->qops->pending(p->q)) {
        failed = sluice__spawn_locked(p) != SLUICE_OK;
    }
    pthread_mutex_unlock(&p->mu);
    if (failed) {
        sluice__report_start_failure(p); /* the drain loop tries again while tasks are queued */
    }
}

/* Waits until every worker has exited and been joined. */
static void wait_workers_gone(sluice_pool *p)
{
    pthread_mutex_lock(&p->mu);
    for (;;) {
        bool any = false;
        for (unsigned i = 0; i < p->nslots; i++) {
            any |= p->slots[i]->occupied;
        }
        if (!any) {
            break;
        }
        pthread_cond_wait(&p->cv_state, &p->mu);
    }
    pthread_mutex_unlock(&p->mu);
    sluice__join_zombies(p);
}

static size_t abandon_queued(sluice_pool *p, sluice_abandon_reason why)
{
    size_t n = 0;
    sluice__task t;
    /* evict takes any queued task, running limits or not (fair queue). */
    while ((p->qops->evict ? p->qops->evict(p->q, NULL, &t) : p->qops->pop(p->q, &t)) == SLUICE__Q_OK) {
        atomic_fetch_add_explicit(&p->abandoned, 1, memory_order_relaxed);
        sluice__abandon(p, &t, why);
        if (t.tenant) {
            p->qops->finish(p->q, &t, SLUICE__FROM_EVICT, SLUICE__OUT_ABANDONED, -1, 0);
        }
        n++;
    }
    return n;
}

void sluice_pool_destroy(sluice_pool *p)
{
    if (!p) {
        return;
    }
    atomic_store_explicit(&p->destroy_started, true, memory_order_seq_cst);
    pthread_mutex_lock(&p->mu);
    p->destroying = true;
    while (p->draining) { /* a drain on another thread: let it finish */
        pthread_cond_wait(&p->cv_state, &p->mu);
    }
    pthread_mutex_unlock(&p->mu);

    atomic_store_explicit(&p->stop, true, memory_order_release);
    close_and_wake(p);
    abandon_queued(p, SLUICE_ABANDON_DESTROY);

    /* Blocked submitters have been woken; wait until they have left, and
     * until CALLER_RUNS tasks running on submitters have returned. */
    pthread_mutex_lock(&p->mu);
    while (atomic_load_explicit(&p->waiting, memory_order_seq_cst) > 0 ||
           atomic_load_explicit(&p->slow_inside, memory_order_seq_cst) > 0 ||
           atomic_load_explicit(&p->caller_running, memory_order_seq_cst) > 0) {
        pthread_cond_broadcast(&p->cv_space);
        pthread_cond_wait(&p->cv_state, &p->mu);
    }
    pthread_mutex_unlock(&p->mu);

    wait_workers_gone(p);
    /* A task pushed by a submitter that claimed its place before close. */
    abandon_queued(p, SLUICE_ABANDON_DESTROY);
    pool_free(p);
}

/* ---- submit -------------------------------------------------------------- */

static inline bool on_own_worker(const sluice_pool *p)
{
    return sluice__tls_worker && sluice__tls_worker->pool == p;
}

static void refused(sluice_pool *p, const sluice__task *t, sluice_err err)
{
    atomic_fetch_add_explicit(&p->rejected, 1, memory_order_relaxed);
    if (t->tenant) {
        p->qops->finish(p->q, t, SLUICE__FROM_SUBMIT, SLUICE__OUT_REJECTED, -1, 0);
    }
    sluice__emit(p, SLUICE_EVENT_SUBMIT_REFUSED, UINT32_MAX, 0, 0, err, NULL, NULL);
}

/* The last touch of the pool by a thread that drain/destroy wait for
 * through `counter`: decrement under mu and wake them. The unlock is the
 * last touch: drain/destroy read the counter under mu, so they cannot see
 * it reach zero (and free the pool) before we are out. A lock per
 * CALLER_RUNS task or blocked submit: both are already overflow paths.
 * (Decrementing first and locking only when closed is NOT safe: the pool
 * may be freed between the decrement and the read of `closed`.) */
static void leave_tracked(sluice_pool *p, _Atomic unsigned *counter)
{
    pthread_mutex_lock(&p->mu);
    sluice__gauge_dec(counter);
    if (p->destroying || p->draining) {
        pthread_cond_broadcast(&p->cv_state);
    }
    pthread_mutex_unlock(&p->mu);
}

/* CALLER_RUNS: the task is accepted and runs here. It counts in
 * caller_running meanwhile, so drain waits for it and destroy cannot free
 * the pool under it. If the pool closed between the full push and here,
 * the task is refused instead (the caller keeps it): after the seq_cst
 * increment, `closed` (seq_cst) tells whether a drain may already have
 * seen caller_running == 0. */
/* A submit by tenant name holds a reference on the tenant (fair pools)
 * until the task is queued, run or refused. A submitter that drain or
 * destroy waits for drops it before its last touch of the pool (the
 * decrement in leave_tracked), and clears *unref. */
static void drop_tenant_ref(sluice_pool *p, const sluice__task *t, bool *unref)
{
    if (*unref) {
        *unref = false;
        sluice__fair_tenant_unref(p, t->tenant);
    }
}

static sluice_err run_on_caller(sluice_pool *p, sluice__task *t, bool *unref)
{
    atomic_fetch_add_explicit(&p->caller_running, 1, memory_order_seq_cst);
    if (atomic_load_explicit(&p->closed, memory_order_seq_cst)) {
        drop_tenant_ref(p, t, unref);
        leave_tracked(p, &p->caller_running);
        return SLUICE_ECLOSED;
    }
    /* Accepted (counts in `submitted`) whether it runs or is shed here;
     * `caller_ran` counts only the tasks whose fn ran. */
    atomic_fetch_add_explicit(&p->caller_accepted, 1, memory_order_relaxed);
    if (sluice__run_task(p, t)) {
        atomic_fetch_add_explicit(&p->caller_ran, 1, memory_order_relaxed);
    }
    drop_tenant_ref(p, t, unref);
    leave_tracked(p, &p->caller_running);
    return SLUICE_OK;
}

static uint64_t effective_submit_deadline(sluice_pool *p, const sluice_submit_opts *opts)
{
    uint64_t d = 0;
    uint64_t timeout = atomic_load_explicit(&p->submit_timeout_ns, memory_order_relaxed);
    if (timeout) {
        d = sluice__add_sat(sluice__now(p), timeout);
    }
    if (opts && opts->submit_deadline_ns && (d == 0 || opts->submit_deadline_ns < d)) {
        d = opts->submit_deadline_ns;
    }
    return d;
}

/* BLOCK policy, queue full: wait for space. Returns OK once pushed.
 *
 * Hysteresis. A submitter that found the queue full is faster than the
 * workers; letting it take each slot as it frees (one wake-up, or one spin,
 * per task) makes it compete for the CPUs the workers need and costs a
 * lock and a futex call per task. So it waits until the queue has drained
 * to its low-water mark (`space_low`: a quarter of the capacity free, at
 * least one slot), and the workers signal cv_space only when a pop leaves
 * the depth at or below it (sluice__notify_space). A saturating producer
 * then sleeps once per capacity/4 tasks, and the queue never runs dry
 * while it sleeps. At its deadline a submitter takes any free slot, so it
 * fails only if the queue is really full then. */
static sluice_err wait_for_space(sluice_pool *p, sluice__task *t, const sluice_submit_opts *opts)
{
    uint64_t deadline = effective_submit_deadline(p, opts);
    sluice_ctx *ctx = opts ? opts->ctx : NULL;
    sluice_err err = SLUICE_OK;
    uint64_t init_fails_seen = atomic_load_explicit(&p->init_failures, memory_order_relaxed);

    /* Small queues with short tasks reach the low-water mark within
     * microseconds: poll for it briefly (loads only, no yield) before
     * paying for a sleep and a wake-up. */
    for (int i = 0; i < SUBMIT_SPIN_POLLS; i++) {
        sluice__cpu_relax();
        if (sluice__fill(p->qops, p->q) <= p->space_low) {
            sluice__qres r = p->qops->push(p->q, t, NULL);
            if (r == SLUICE__Q_OK) {
                sluice__spawn_for_work(p, 1);
                return SLUICE_OK;
            }
            if (r == SLUICE__Q_CLOSED) {
                return SLUICE_ECLOSED;
            }
        }
    }

    pthread_mutex_lock(&p->mu);
    unsigned w = atomic_fetch_add_explicit(&p->waiting, 1, memory_order_seq_cst) + 1;
    sluice__max_u(&p->waiting_hwm, w);
    for (;;) {
        /* Looking again: a worker's next pop at or below the low-water
         * mark broadcasts again (sluice__notify_space). Cleared before the
         * depth read below, under mu: a worker that still saw it set made
         * its pop before that read, which then sees the pop. */
        atomic_store_explicit(&p->space_signalled, false, memory_order_seq_cst);
        bool last = deadline && sluice__deadline_passed(sluice__now(p), deadline);
        bool full_below_mark = false;
        /* The seq_cst increment of `waiting` above and the seq_cst depth
         * read here pair with a worker's pop (seq_cst head CAS) and its
         * read of `waiting` in notify_space: either this read sees the pop,
         * or that worker sees this waiter and signals under mu. */
        if (last || sluice__fill(p->qops, p->q) <= p->space_low) {
            sluice__qres r = p->qops->push(p->q, t, NULL);
            full_below_mark = r == SLUICE__Q_FULL;
            if (r == SLUICE__Q_OK) {
                break;
            }
            if (r == SLUICE__Q_CLOSED) {
                err = SLUICE_ECLOSED;
                break;
            }
            if (r == SLUICE__Q_TENANT_FULL) {
                err = SLUICE_EFULL; /* its tenant filled up meanwhile */
                break;
            }
        }
        /* closed is set (seq_cst) before close_and_wake broadcasts under mu. */
        if (p->destroying || atomic_load_explicit(&p->closed, memory_order_seq_cst)) {
            err = SLUICE_ECLOSED;
            break;
        }
        if (ctx) {
            err = sluice_ctx_err(ctx);
            if (err) {
                break;
            }
        }
        if (last) {
            err = SLUICE_ETIMEDOUT;
            break;
        }
        uint64_t until = deadline;
        if (full_below_mark && p->system_clock) {
            /* Full below the low-water mark: a fifo_batch run holds the
             * place this push needs. The take that frees it is a release
             * store, not the seq_cst head CAS the handshake above pairs
             * with, so its worker's read of `waiting` may miss this waiter
             * (store buffering); look again within 1 ms rather than rely on
             * a later pop's broadcast. Only in that state: no cost
             * otherwise. */
            uint64_t soon = sluice__add_sat(sluice__now(p), SLUICE_NS_PER_MS);
            if (until == 0 || soon < until) {
                until = soon;
            }
        }
        if (ctx) {
            /* Poll the context every 5 ms: cancel callbacks would need a
             * lifetime guarantee we cannot give a blocked submitter. */
            uint64_t cap = sluice__add_sat(sluice__now(p), 5 * SLUICE_NS_PER_MS);
            if (p->system_clock && (until == 0 || cap < until)) {
                until = cap;
            }
        }
        /* A full queue and no worker at all (the last one's init hook
         * refused, or a thread could not start): nobody will ever make
         * room, so this submitter starts one, as a drain does. After a
         * refused init or a failed start it waits up to 10 ms first, so
         * a hook that keeps refusing is retried, not spun on. (A worker
         * that exits wakes blocked submitters to look.) */
        if (atomic_load_explicit(&p->alive, memory_order_seq_cst) == 0 &&
            atomic_load_explicit(&p->starting, memory_order_seq_cst) == 0 && p->qops->pending(p->q)) {
            uint64_t fails = atomic_load_explicit(&p->init_failures, memory_order_relaxed);
            bool backoff = fails != init_fails_seen;
            init_fails_seen = fails;
            if (!backoff && sluice__spawn_locked(p) != SLUICE_OK) {
                pthread_mutex_unlock(&p->mu);
                sluice__report_start_failure(p);
                pthread_mutex_lock(&p->mu);
                backoff = true;
            }
            if (backoff) {
                uint64_t retry = sluice__add_sat(sluice__now(p), 10 * SLUICE_NS_PER_MS);
                if (until == 0 || retry < until) {
                    until = retry;
                }
            } else {
                continue; /* started one: look again before sleeping */
            }
        }
        sluice__cond_wait_until(p, &p->cv_space, &p->mu, until);
    }
    /* Everything that touches the pool happens while this submitter still
     * counts in `waiting`: destroy waits for waiting == 0 before it frees. */
    pthread_mutex_unlock(&p->mu);
    if (err == SLUICE_OK) {
        sluice__spawn_for_work(p, 1);
    } else if (err != SLUICE_ECLOSED) {
        refused(p, t, err);
    }
    pthread_mutex_lock(&p->mu);
    sluice__gauge_dec(&p->waiting);
    if (p->destroying) {
        pthread_cond_broadcast(&p->cv_state);
    }
    pthread_mutex_unlock(&p->mu);
    /* No access to p after this point: the pool may be gone. */
    return err;
}

/* DROP_OLDEST, queue full: evict the oldest task and push this one.
 * (A fair queue chooses the victim, see queue_fair.c: the oldest task of
 * the tenant most over its share, or the incoming task's own tenant's
 * oldest when that tenant is at its queued limit with overflow
 * DROP_OLDEST; with REJECT there this returns SLUICE_EFULL.)
 *
 * The eviction and the push happen under mu, and the queue closes only
 * under mu (close_and_wake), so a drain that starts meanwhile finds either
 * both done (the evicted task made room for this one, which the drain then
 * runs) or neither (this submit gets SLUICE_ECLOSED and the task it would
 * have evicted is still queued and runs): a task queued when the pool
 * closed is never evicted for a push that then fails. Other submitters
 * push without the lock and may take the slot an eviction freed; the
 * evicted task then made room for theirs, and this submitter evicts
 * again. Evicted tasks go to the abandon handler after mu is released.
 * An overflow path: a lock per evicting submit is affordable here. */
static sluice_err evict_and_push(sluice_pool *p, sluice__task *t)
{
    for (;;) {
        sluice__task old;
        bool evicted = false;
        sluice__qres r;
        pthread_mutex_lock(&p->mu);
        if (atomic_load_explicit(&p->closed, memory_order_seq_cst)) {
            r = SLUICE__Q_CLOSED;
        } else {
            /* A worker may have made room since the full push: evict
             * only if the queue is still full. */
            r = p->qops->push(p->q, t, NULL);
            if (r == SLUICE__Q_FULL || r == SLUICE__Q_TENANT_FULL) {
                sluice__qres e = p->qops->evict ? p->qops->evict(p->q, t, &old) : p->qops->pop(p->q, &old);
                if (e == SLUICE__Q_TENANT_FULL) {
                    pthread_mutex_unlock(&p->mu);
                    return SLUICE_EFULL; /* the tenant's own overflow: reject */
                }
                evicted = e == SLUICE__Q_OK;
                r = p->qops->push(p->q, t, NULL);
            }
            if (evicted) {
                atomic_fetch_add_explicit(&p->dropped, 1, memory_order_relaxed);
            }
        }
        pthread_mutex_unlock(&p->mu);
        if (r == SLUICE__Q_OK) {
            sluice__spawn_for_work(p, 1);
        }
        if (evicted) {
            sluice__notify_space(p);
            sluice__abandon(p, &old, SLUICE_ABANDON_DROPPED);
            if (old.tenant) {
                p->qops->finish(p->q, &old, SLUICE__FROM_EVICT, SLUICE__OUT_DROPPED, -1, 0);
            }
        }
        if (r != SLUICE__Q_FULL && r != SLUICE__Q_TENANT_FULL) {
            return r == SLUICE__Q_OK ? SLUICE_OK : SLUICE_ECLOSED;
        }
    }
}

typedef enum submit_mode { MODE_BLOCK, MODE_TRY } submit_mode;

/* Fills a task from its submit's arguments: options, the deadline of its
 * context, and the timing stamp when it is sampled (or when an overload
 * mode judges every task); retains its context. `every` is the pool's
 * timing rate as the caller read it. Returns whether the task is sampled
 * for timing. */
static inline bool prep_task(sluice_pool *p, unsigned every, sluice__task *tp, sluice_task_fn fn, void *arg,
                             const sluice_submit_opts *opts, struct sluice_tenant *tenant)
{
    sluice__task t = {.fn = fn, .arg = arg, .tenant = tenant};
    if (opts) {
        t.label = opts->label;
        t.on_abandon = opts->on_abandon;
        t.deadline_ns = opts->deadline_ns;
        t.ctx = opts->ctx;
        if (t.ctx) {
            uint64_t cd = sluice_ctx_deadline(t.ctx);
            if (cd && (t.deadline_ns == 0 || cd < t.deadline_ns)) {
                t.deadline_ns = cd;
            }
        }
    }
    bool sampled = false;
    if (every) {
        if (every == 1 || p->fair) {
            /* A fair pool times every task: the per-tenant wait
             * histograms are what it is for, and it takes a lock anyway. */
            sampled = true;
        } else {
            /* A countdown, not a modulo: no division on the submit path.
             * A thread's first submit is stamped (so tasks from short-lived
             * threads are timed too, and automatic sampling sees a change
             * of task length), and a countdown above the current N (the
             * rate went up) restarts the same way. */
            unsigned left = tls_sample_left;
            if (left == 0 || left > every) {
                left = 1;
            }
            sampled = --left == 0;
            tls_sample_left = sampled ? every : left;
        }
        if (sampled) {
            t.enqueue_ns = sluice__timing_now(p);
            if (t.enqueue_ns == 0) {
                t.enqueue_ns = 1;
            }
        }
    }
    if (p->overload && !t.enqueue_ns) {
        /* CoDel and LIFO judge every task's sojourn (overload.c). */
        t.enqueue_ns = sluice__timing_now(p);
        if (t.enqueue_ns == 0) {
            t.enqueue_ns = 1;
        }
    }
    if (t.ctx) {
        sluice_ctx_retain(t.ctx);
    }
    *tp = t;
    return sampled;
}

static sluice_err submit_task(sluice_pool *p, sluice_task_fn fn, void *arg, const sluice_submit_opts *opts,
                              submit_mode mode, bool notify, struct sluice_tenant *tenant, bool *unref)
{
    unsigned every = SLUICE__TIMING_N(atomic_load_explicit(&p->timing_every, memory_order_relaxed));
    sluice__task t;
    bool sampled = prep_task(p, every, &t, fn, arg, opts, tenant);

    /* Blocked BLOCK submitters go first: while one waits for the low-water
     * mark, a new submit does not take a slot that frees meanwhile (it
     * would keep the queue above the mark and starve the sleeper); it joins
     * the wait, or gets EFULL from try_submit. Not for the pool's own
     * workers, which must never wait on their own queue. `waiting` shares
     * the line with `idle`, which the fast path reads anyway. */
    bool defer = p->cfg.overflow == SLUICE_OVERFLOW_BLOCK &&
                 atomic_load_explicit(&p->waiting, memory_order_relaxed) > 0 && !on_own_worker(p);
    uint64_t pos = 0;
    sluice__qres r =
        defer ? (atomic_load_explicit(&p->closed, memory_order_acquire) ? SLUICE__Q_CLOSED : SLUICE__Q_FULL)
              : p->qops->push(p->q, &t, &pos);
    if (r == SLUICE__Q_OK) {
        /* queue_depth_hwm is sampled at the timing rate: every task when
         * every task is timed (every == 1 too: pool.h's "sampled on the
         * submit path"; it read 0 there once the queue had emptied). */
        if (sampled) {
            sluice__max_z(&p->depth_hwm, sluice__fill(p->qops, p->q));
        }
        if (notify) {
            /* seq_cst: idle pairs with park(), alive with an expiring
             * worker, spinning with the spinner's clearing of it
             * (worker.c): while a worker spins it takes this task, and
             * wakes the next worker itself if more are queued. */
            if ((atomic_load_explicit(&p->idle, memory_order_seq_cst) > 0 &&
                 atomic_load_explicit(&p->spinning, memory_order_seq_cst) == 0) ||
                atomic_load_explicit(&p->alive, memory_order_seq_cst) <
                    atomic_load_explicit(&p->capacity, memory_order_relaxed)) {
                sluice__spawn_for_work(p, 1);
            }
        }
        return SLUICE_OK;
    }
    if (r == SLUICE__Q_CLOSED) {
        sluice_ctx_release(t.ctx);
        return SLUICE_ECLOSED;
    }
    if (r == SLUICE__Q_TENANT_FULL) {
        /* The tenant's own bound, whatever the pool's policy: its own
         * oldest is evicted (DROP_OLDEST) or the submit is refused. */
        sluice_err err = evict_and_push(p, &t);
        if (err) {
            sluice_ctx_release(t.ctx);
            if (err == SLUICE_EFULL) {
                refused(p, &t, err);
            }
        }
        return err;
    }

    /* Full. A BLOCK submitter counts in slow_inside from here to its last
     * touch of the pool, so destroy waits for it (pool.h promises that
     * calls blocked inside submit are released safely). */
    bool tracked = p->cfg.overflow == SLUICE_OVERFLOW_BLOCK && mode == MODE_BLOCK && !on_own_worker(p);
    if (tracked) {
        atomic_fetch_add_explicit(&p->slow_inside, 1, memory_order_seq_cst);
        if (atomic_load_explicit(&p->destroy_started, memory_order_seq_cst)) {
            drop_tenant_ref(p, &t, unref);
            leave_tracked(p, &p->slow_inside);
            sluice_ctx_release(t.ctx);
            return SLUICE_ECLOSED;
        }
    }
    if (!defer) {
        /* Full means at capacity, except that fifo_batch reports full
         * while a held run keeps places beyond it unused: count what is
         * queued there (a slow path; depth reads every hand). */
        sluice__max_z(&p->depth_hwm,
                      p->qops == &sluice__ring_batch_ops ? p->qops->depth(p->q) : p->qops->capacity(p->q));
    }
    /* Make sure workers exist and are awake to drain it. */
    sluice__spawn_for_work(p, p->qops->capacity(p->q));
    sluice_err err;
    switch (p->cfg.overflow) {
    case SLUICE_OVERFLOW_REJECT:
        err = SLUICE_EFULL;
        break;
    case SLUICE_OVERFLOW_CALLER_RUNS:
        err = run_on_caller(p, &t, unref);
        if (err) {
            sluice_ctx_release(t.ctx);
        }
        return err;
    case SLUICE_OVERFLOW_DROP_OLDEST:
        err = evict_and_push(p, &t);
        if (err) {
            sluice_ctx_release(t.ctx);
            if (err == SLUICE_EFULL) {
                refused(p, &t, err);
            }
        }
        return err;
    case SLUICE_OVERFLOW_BLOCK:
    default:
        if (mode == MODE_TRY) {
            err = SLUICE_EFULL;
            break;
        }
        if (on_own_worker(p)) {
            err = SLUICE_EDEADLK;
            break;
        }
        /* wait_for_space wakes a worker or counts the refusal itself,
         * before it stops counting as a waiter (destroy safety). */
        err = wait_for_space(p, &t, opts);
        drop_tenant_ref(p, &t, unref);
        leave_tracked(p, &p->slow_inside);
        if (err != SLUICE_OK) {
            sluice_ctx_release(t.ctx);
        }
        return err;
    }
    sluice_ctx_release(t.ctx);
    refused(p, &t, err);
    return err;
}

/* Resolves the task's tenant (fair pools), submits, and drops the
 * reference a lookup by name took. */
static sluice_err submit_one(sluice_pool *p, sluice_task_fn fn, void *arg, const sluice_submit_opts *opts,
                             submit_mode mode, bool notify)
{
    if (!p || !fn) {
        return SLUICE_EINVAL;
    }
    if (!p->fair) {
        if (opts && (opts->tenant || opts->tenant_name)) {
            return SLUICE_ENOTSUP; /* tenants need a FAIR pool */
        }
        bool none = false;
        return submit_task(p, fn, arg, opts, mode, notify, NULL, &none);
    }
    struct sluice_tenant *tenant = NULL;
    bool unref = false;
    sluice_err err = sluice__fair_tenant_ref(p, opts, &tenant, &unref);
    if (err) {
        return err;
    }
    err = submit_task(p, fn, arg, opts, mode, notify, tenant, &unref);
    if (unref) { /* not dropped on a tracked path: this submitter is not one destroy waits for */
        sluice__fair_tenant_unref(p, tenant);
    }
    return err;
}

sluice_err sluice_pool_submit(sluice_pool *pool, sluice_task_fn fn, void *arg)
{
    return submit_one(pool, fn, arg, NULL, MODE_BLOCK, true);
}

sluice_err sluice_pool_submit_ex(sluice_pool *pool, sluice_task_fn fn, void *arg,
                                 const sluice_submit_opts *opts)
{
    return submit_one(pool, fn, arg, opts, MODE_BLOCK, true);
}

sluice_err sluice_pool_try_submit(sluice_pool *pool, sluice_task_fn fn, void *arg)
{
    return submit_one(pool, fn, arg, NULL, MODE_TRY, true);
}

/* The most tasks sluice_pool_submit_batch queues with one claim: a run is
 * prepared on the caller's stack (72 bytes a task), so 32 keeps it near
 * 2 KiB for a batch submitted from a task on a small worker stack. */
#define BATCH_RUN 32

/* Whether a batch's task can go in a run: a task for a tenant, or with no
 * function, takes the single path (which refuses it). */
static inline bool runnable(const sluice_task_spec *t)
{
    return t->fn && !(t->opts && (t->opts->tenant || t->opts->tenant_name));
}

/* Blocked BLOCK submitters go first (submit_task defers to them): while
 * one waits, the batch takes the single path. */
static inline bool someone_waits(const sluice_pool *p)
{
    return p->cfg.overflow == SLUICE_OVERFLOW_BLOCK &&
           atomic_load_explicit(&p->waiting, memory_order_relaxed) > 0;
}

/* Queues a prefix of tasks[0..n) (every one runnable) with one claim of
 * the queue's places (push_n; the ring and fifo_batch): the producers'
 * shared line is taken once per run, not once per task. The run is cut to
 * the places free at a first look, so a full or small queue prepares no
 * task it cannot take; under 2 free places there is no run (returns 0).
 * Returns how many were queued; the caller goes on with single submits
 * from the first one that was not, which decide what happens to it. A
 * task left out is as if never prepared: its context's reference is
 * released and the thread's timing countdown is put back to where it
 * stood after the last task queued (so samples land on queued tasks at
 * the configured rate). */
static size_t push_run(sluice_pool *p, const sluice_task_spec *tasks, size_t n)
{
    size_t cap = p->qops->capacity(p->q), fill = sluice__fill(p->qops, p->q);
    size_t room = fill < cap ? cap - fill : 0;
    if (n > room) {
        n = room;
    }
    if (n > BATCH_RUN) {
        n = BATCH_RUN;
    }
    if (n < 2) {
        return 0;
    }
    unsigned every = SLUICE__TIMING_N(atomic_load_explicit(&p->timing_every, memory_order_relaxed));
    sluice__task run[BATCH_RUN];
    unsigned left[BATCH_RUN + 1];
    bool sampled = false;
    left[0] = tls_sample_left;
    for (size_t i = 0; i < n; i++) {
        sampled |= prep_task(p, every, &run[i], tasks[i].fn, tasks[i].arg, tasks[i].opts, NULL);
        left[i + 1] = tls_sample_left;
    }
    /* A submitter that began to wait meanwhile goes first. */
    size_t k = 0;
    if (!someone_waits(p)) {
        sluice__qres why;
        k = p->qops->push_n(p->q, run, n, &why);
    }
    if (k < n) {
        for (size_t i = k; i < n; i++) {
            sluice_ctx_release(run[i].ctx);
        }
        tls_sample_left = left[k];
    }
    if (k && sampled) {
        sluice__max_z(&p->depth_hwm, sluice__fill(p->qops, p->q));
    }
    return k;
}

sluice_err sluice_pool_submit_batch(sluice_pool *pool, const sluice_task_spec *tasks, size_t n,
                                    bool nonblocking, size_t *accepted)
{
    if (accepted) {
        *accepted = 0;
    }
    if (!pool || !accepted || (n && !tasks)) {
        return SLUICE_EINVAL;
    }
    sluice_pool *p = pool;
    bool runs = !p->fair && p->qops->push_n;
    sluice_err err = SLUICE_OK;
    size_t pending_wake = 0;
    size_t i = 0;
    while (i < n) {
        if (runs && i + 1 < n && runnable(&tasks[i]) && runnable(&tasks[i + 1]) && !someone_waits(p)) {
            size_t m = 2;
            while (m < BATCH_RUN && i + m < n && runnable(&tasks[i + m])) {
                m++;
            }
            size_t k = push_run(p, &tasks[i], m);
            if (k) {
                /* Wake for the run (and any singles before it) at once:
                 * its workers start while the next run is queued. */
                sluice__spawn_for_work(p, k + pending_wake);
                pending_wake = 0;
                i += k;
                continue;
            }
        }
        /* Queue without waking, then wake for the first task at once (so
         * a worker starts while the rest are queued) and for the others in
         * groups of 64; a full queue wakes workers itself (submit_one). */
        err = submit_one(p, tasks[i].fn, tasks[i].arg, tasks[i].opts, nonblocking ? MODE_TRY : MODE_BLOCK,
                         false);
        if (err) {
            /* ECLOSED from a wait for space may be destroy releasing this
             * batch (pool.h: calls blocked inside submit are released
             * safely): the pool may be gone, so touch nothing. Its tasks
             * still queued are drain's or destroy's, which wake workers or
             * hand them back themselves. */
            if (err == SLUICE_ECLOSED) {
                pending_wake = 0;
            }
            break;
        }
        pending_wake++;
        if (i == 0 || pending_wake >= 64) {
            sluice__spawn_for_work(p, pending_wake);
            pending_wake = 0;
        }
        i++;
    }
    if (pending_wake) {
        sluice__spawn_for_work(p, pending_wake);
    }
    *accepted = i;
    return err;
}

/* ---- resize and live settings -------------------------------------------- */

sluice_err sluice_pool_resize(sluice_pool *p, unsigned k)
{
    if (!p || k == 0 || k < p->cfg.min_workers) {
        return SLUICE_EINVAL;
    }
    pthread_mutex_lock(&p->mu);
    if (atomic_load_explicit(&p->closed, memory_order_relaxed) || p->destroying) {
        pthread_mutex_unlock(&p->mu);
        return SLUICE_ECLOSED;
    }
    unsigned old = atomic_load_explicit(&p->capacity, memory_order_relaxed);
    if (old == k) {
        pthread_mutex_unlock(&p->mu);
        return SLUICE_OK;
    }
    atomic_store_explicit(&p->capacity, k, memory_order_seq_cst);
    atomic_fetch_add_explicit(&p->resize_events, 1, memory_order_relaxed);
    pthread_mutex_unlock(&p->mu);

    if (k > old) {
        size_t depth = p->qops->depth(p->q);
        if (depth) {
            sluice__spawn_for_work(p, depth);
        }
    } else {
        sluice__wake_all(p); /* parked extras wake up and retire */
    }
    sluice__join_zombies(p);
    sluice__emit(p, SLUICE_EVENT_RESIZE, UINT32_MAX, old, k, SLUICE_OK, NULL, NULL);
    return SLUICE_OK;
}

void sluice_pool_set_submit_timeout(sluice_pool *p, uint64_t timeout_ns)
{
    if (p) {
        atomic_store_explicit(&p->submit_timeout_ns, timeout_ns, memory_order_relaxed);
    }
}

void sluice_pool_set_timing_sample(sluice_pool *p, unsigned every)
{
    if (p && atomic_load_explicit(&p->timing_every, memory_order_relaxed) != 0) {
        /* One store of rate and mode; auto restarts from every task and
         * adapts within a few tasks. */
        atomic_store_explicit(&p->timing_every, timing_word(every), memory_order_relaxed);
    }
}

void sluice_pool_set_idle_expiry(sluice_pool *p, uint64_t expiry_ns)
{
    if (p) {
        atomic_store_explicit(&p->idle_expiry_ns, expiry_ns, memory_order_relaxed);
        sluice__wake_all(p);
    }
}

/* ---- stats ----------------------------------------------------------------- */

static void shard_sum(const sluice__shard *s, sluice_pool_stats *out)
{
    out->completed += atomic_load_explicit(&s->completed, memory_order_relaxed);
    out->failed += atomic_load_explicit(&s->failed, memory_order_relaxed);
    out->panicked += atomic_load_explicit(&s->panicked, memory_order_relaxed);
    out->shed += atomic_load_explicit(&s->shed, memory_order_relaxed);
}

static unsigned count_running_locked(sluice_pool *p)
{
    SLUICE__ASSERT_HELD(&p->mu);
    unsigned n = 0;
    for (unsigned i = 0; i < p->nslots; i++) {
        if (p->slots[i]->occupied &&
            SLUICE__STATUS_STATE(atomic_load_explicit(&p->slots[i]->status, memory_order_acquire)) ==
                SLUICE_WORKER_RUNNING) {
            n++;
        }
    }
    return n;
}

/* Tasks finished (any outcome, shed included) and tasks running now, from
 * one read of each worker's status word, so no task is counted as both. */
static void progress_locked(sluice_pool *p, uint64_t *finished, unsigned *running)
{
    SLUICE__ASSERT_HELD(&p->mu);
    uint64_t done = 0;
    unsigned run = 0;
    for (unsigned i = 0; i < p->nslots; i++) {
        uint64_t v = atomic_load_explicit(&p->slots[i]->status, memory_order_acquire);
        done += SLUICE__STATUS_COUNT(v);
        run += p->slots[i]->occupied && SLUICE__STATUS_STATE(v) == SLUICE_WORKER_RUNNING;
    }
    sluice_pool_stats c = {0};
    shard_sum(&p->caller_shard, &c);
    *finished = done + c.completed + c.failed + c.panicked + c.shed;
    *running = run;
}

void sluice_pool_stats_get(sluice_pool *p, sluice_pool_stats *out)
{
    if (!out) {
        return;
    }
    memset(out, 0, sizeof *out);
    if (!p) {
        return;
    }
    pthread_mutex_lock(&p->mu);
    unsigned workers = 0;
    for (unsigned i = 0; i < p->nslots; i++) {
        if (p->slots[i]->occupied) {
            workers++;
        }
        shard_sum(&p->slots[i]->shard, out);
    }
    out->running = count_running_locked(p) + atomic_load_explicit(&p->caller_running, memory_order_relaxed);
    /* From the close, not from p->draining: drain sets that under mu and
     * closes the queue a moment later, and a submitter that saw `draining`
     * must then be refused (core_drain saw an OK there, 1 TSan run in 8). */
    out->draining = atomic_load_explicit(&p->closed, memory_order_seq_cst);
    pthread_mutex_unlock(&p->mu);
    shard_sum(&p->caller_shard, out);

    out->capacity = atomic_load_explicit(&p->capacity, memory_order_relaxed);
    out->workers = workers;
    out->idle = atomic_load_explicit(&p->idle, memory_order_relaxed);
    if (out->idle > workers) {
        out->idle = workers;
    }
    out->waiting = atomic_load_explicit(&p->waiting, memory_order_relaxed);
    out->queue_depth = p->qops->depth(p->q);
    out->queue_capacity = p->qops->capacity(p->q);
    out->caller_ran = atomic_load_explicit(&p->caller_ran, memory_order_relaxed);
    out->submitted = p->qops->pushed(p->q) + atomic_load_explicit(&p->caller_accepted, memory_order_relaxed);
    out->rejected = atomic_load_explicit(&p->rejected, memory_order_relaxed);
    out->dropped = atomic_load_explicit(&p->dropped, memory_order_relaxed);
    out->abandoned = atomic_load_explicit(&p->abandoned, memory_order_relaxed);
    out->expired_workers = atomic_load_explicit(&p->expired_workers, memory_order_relaxed);
    out->retired_workers = atomic_load_explicit(&p->retired_workers, memory_order_relaxed);
    out->started_workers = atomic_load_explicit(&p->started_workers, memory_order_relaxed);
    out->resize_events = atomic_load_explicit(&p->resize_events, memory_order_relaxed);
    out->init_failures = atomic_load_explicit(&p->init_failures, memory_order_relaxed);
    out->worker_start_failures = atomic_load_explicit(&p->start_failures, memory_order_relaxed);
    out->workers_hwm = atomic_load_explicit(&p->workers_hwm, memory_order_relaxed);
    out->waiting_hwm = atomic_load_explicit(&p->waiting_hwm, memory_order_relaxed);
    out->queue_depth_hwm = atomic_load_explicit(&p->depth_hwm, memory_order_relaxed);
    out->timing_sample_every = SLUICE__TIMING_N(atomic_load_explicit(&p->timing_every, memory_order_relaxed));
    if (out->queue_depth > out->queue_depth_hwm) {
        out->queue_depth_hwm = out->queue_depth;
    }
    sluice__overload_stats(p->overload, out);
}

static void hist_add(sluice_histogram *out, sluice__shard *s, int which, size_t nb)
{
    /* Pairs with the release store in hist_record (worker.c); NULL: this
     * worker has timed nothing yet. */
    sluice__hist *pair = atomic_load_explicit(&s->hists, memory_order_acquire);
    if (!pair) {
        return;
    }
    const sluice__hist *h = sluice__hist_of(pair, nb, which);
    for (size_t i = 0; i <= nb; i++) {
        out->counts[i] += atomic_load_explicit(&h->counts[i], memory_order_relaxed);
    }
    out->count += atomic_load_explicit(&h->count, memory_order_relaxed);
    out->sum_seconds += (double)atomic_load_explicit(&h->sum_ns, memory_order_relaxed) / 1e9;
}

void sluice_pool_histogram_get(sluice_pool *p, sluice_hist_kind kind, sluice_histogram *out)
{
    if (!out) {
        return;
    }
    memset(out, 0, sizeof *out);
    if (!p) {
        return;
    }
    out->bucket_count = p->nbounds;
    memcpy(out->bounds, p->bounds, p->nbounds * sizeof(double));
    pthread_mutex_lock(&p->mu);
    for (unsigned i = 0; i < p->nslots; i++) {
        sluice__shard *s = &p->slots[i]->shard;
        hist_add(out, s, kind == SLUICE_HIST_TASK ? 0 : 1, p->nbounds);
    }
    pthread_mutex_unlock(&p->mu);
    hist_add(out, &p->caller_shard, kind == SLUICE_HIST_TASK ? 0 : 1, p->nbounds);
    /* Counts read while tasks run may lag `count` by a few; make the
     * snapshot self-consistent for exposition (sum of buckets == count). */
    uint64_t total = 0;
    for (size_t i = 0; i <= p->nbounds; i++) {
        total += out->counts[i];
    }
    out->count = total;
}

/* A running task's start on the timing clock, as pool clock time. On the
 * system clock the timing clock is the TSC-based fast clock, calibrated
 * once and drifting from CLOCK_MONOTONIC by a few ppm of uptime (seconds
 * after days); reading both clocks now and subtracting the task's age on
 * the fast clock cancels that drift. */
static uint64_t timing_to_pool(sluice_pool *p, uint64_t since)
{
    uint64_t now = sluice__now(p);
    if (!p->system_clock) {
        return since;
    }
    uint64_t fast = sluice__timing_now(p);
    uint64_t age = fast > since ? fast - since : 0;
    return now > age ? now - age : 1;
}

/* When the worker's current state began, on the pool clock. A running
 * task's start is on the timing clock (converted above). A worker reads no
 * clock for a task that timing does not sample (its since_ns is 0), so a
 * reader that finds such a task running stamps it with its own time: a
 * lower bound of the task's age, so a stuck task shows a growing age from
 * the second look on, at no cost per task. `status` (state and finished
 * count, read just before) names the task; if it changed by the time the
 * stamp is in, the stamp may belong to the next task and is taken back
 * (CAS, so a start time the worker stored meanwhile is never clobbered). */
static uint64_t running_since(sluice_pool *p, sluice__worker *w, uint64_t status)
{
    uint64_t since = atomic_load_explicit(&w->since_ns, memory_order_relaxed);
    if (SLUICE__STATUS_STATE(status) != SLUICE_WORKER_RUNNING) {
        return since; /* idle/starting times are on the pool clock */
    }
    if (since != 0) {
        return timing_to_pool(p, since);
    }
    uint64_t now = sluice__timing_now(p);
    uint64_t expect = 0;
    if (now == 0 || !atomic_compare_exchange_strong_explicit(&w->since_ns, &expect, now, memory_order_acq_rel,
                                                             memory_order_relaxed)) {
        return expect ? timing_to_pool(p, expect) : 0; /* what the worker stored meanwhile */
    }
    if (atomic_load_explicit(&w->status, memory_order_acquire) != status) {
        uint64_t mine = now;
        atomic_compare_exchange_strong_explicit(&w->since_ns, &mine, 0, memory_order_relaxed,
                                                memory_order_relaxed);
        return 0;
    }
    return timing_to_pool(p, now);
}

size_t sluice_pool_workers_get(sluice_pool *p, sluice_worker_info *out, size_t cap)
{
    if (!p) {
        return 0;
    }
    size_t n = 0;
    pthread_mutex_lock(&p->mu);
    for (unsigned i = 0; i < p->nslots; i++) {
        sluice__worker *w = p->slots[i];
        if (!w->occupied) {
            continue;
        }
        if (out && n < cap) {
            sluice_worker_info *info = &out[n];
            info->index = w->index;
            uint64_t status = atomic_load_explicit(&w->status, memory_order_acquire);
            info->state = SLUICE__STATUS_STATE(status);
            info->tasks_run = SLUICE__STATUS_COUNT(status);
            info->since_ns = running_since(p, w, status);
            info->task_label = atomic_load_explicit(&w->label, memory_order_relaxed);
            info->thread = w->thread;
        }
        n++;
    }
    pthread_mutex_unlock(&p->mu);
    return n;
}

/* The thread handle in sluice_worker_info may belong to a worker that has
 * since exited and been joined (idle expiry, resize); pthread_kill on it is
 * undefined (a crash when its stack has been unmapped). Under mu a slot
 * marked occupied holds a thread that has not listed itself on `zombies`
 * yet (worker_main clears occupied and lists itself in one critical
 * section), so nothing can have joined it: the signal goes to a thread
 * that exists, and a late exit only means the signal is never handled. */
int sluice__pool_signal_worker(sluice_pool *p, unsigned index, pthread_t thread, int sig)
{
    int r = ESRCH;
    pthread_mutex_lock(&p->mu);
    if (index < p->nslots && p->slots[index]->occupied && pthread_equal(p->slots[index]->thread, thread)) {
        r = pthread_kill(thread, sig);
    }
    pthread_mutex_unlock(&p->mu);
    return r;
}

const char *sluice_pool_name(const sluice_pool *p)
{
    return p ? p->name : NULL;
}

void sluice_pool_config_get(const sluice_pool *p, sluice_pool_config *out)
{
    if (!p || !out) {
        return;
    }
    *out = p->cfg;
    out->workers = atomic_load_explicit(&((sluice_pool *)p)->capacity, memory_order_relaxed);
    out->submit_timeout_ns =
        atomic_load_explicit(&((sluice_pool *)p)->submit_timeout_ns, memory_order_relaxed);
    out->idle_expiry_ns = atomic_load_explicit(&((sluice_pool *)p)->idle_expiry_ns, memory_order_relaxed);
    unsigned every = atomic_load_explicit(&((sluice_pool *)p)->timing_every, memory_order_relaxed);
    out->timing_disabled = every == 0;
    if (every & SLUICE__TIMING_AUTO) {
        out->timing_sample_every = SLUICE_TIMING_SAMPLE_AUTO;
    } else {
        out->timing_sample_every = every ? every : p->cfg.timing_sample_every;
    }
    if (p->fair) {
        /* sluice_pool_tenant_default_set changes it live */
        sluice__fair_default_get((sluice_pool *)p, &out->fair.tenant_default);
    }
}

const sluice_clock *sluice_pool_clock(const sluice_pool *p)
{
    return p ? p->clock : NULL;
}

/* ---- drain ------------------------------------------------------------------- */

sluice_err sluice_pool_drain(sluice_pool *p, uint64_t timeout_ns, sluice_drain_report *report)
{
    sluice_drain_report rep = {0};
    if (report) {
        *report = rep;
    }
    if (!p) {
        return SLUICE_EINVAL;
    }
    if (on_own_worker(p) || (sluice__tls_frame && sluice__tls_frame->pool == p)) {
        return SLUICE_EDEADLK; /* it would wait for itself */
    }
    uint64_t t0 = sluice__now(p);
    uint64_t deadline = timeout_ns ? sluice__add_sat(t0, timeout_ns) : 0;

    pthread_mutex_lock(&p->mu);
    while (p->draining) {
        pthread_cond_wait(&p->cv_state, &p->mu);
    }
    if (p->drained || p->destroying) {
        pthread_mutex_unlock(&p->mu);
        return SLUICE_OK;
    }
    p->draining = true;
    uint64_t finished_before;
    unsigned running;
    progress_locked(p, &finished_before, &running);
    pthread_mutex_unlock(&p->mu);

    close_and_wake(p);
    size_t queued = p->qops->depth(p->q);
    sluice__emit(p, SLUICE_EVENT_DRAIN_START, UINT32_MAX, running, queued, SLUICE_OK, NULL, NULL);
    if (queued) {
        start_for_drain(p);
    }

    uint64_t init_fails_seen = atomic_load_explicit(&p->init_failures, memory_order_relaxed);
    pthread_mutex_lock(&p->mu);
    for (;;) {
        bool any = false;
        for (unsigned i = 0; i < p->nslots; i++) {
            any |= p->slots[i]->occupied;
        }
        if (!any && !p->qops->pending(p->q) &&
            atomic_load_explicit(&p->caller_running, memory_order_seq_cst) == 0) {
            break;
        }
        uint64_t until = deadline;
        if (!any && p->qops->pending(p->q)) {
            /* Work left and nobody to run it (a spawn failed, or every
             * worker was retired): start one. If the last one's init hook
             * refused, wait a little first rather than spin up threads. */
            uint64_t fails = atomic_load_explicit(&p->init_failures, memory_order_relaxed);
            if (fails != init_fails_seen) {
                init_fails_seen = fails;
                uint64_t backoff = sluice__add_sat(sluice__now(p), 10 * SLUICE_NS_PER_MS);
                sluice__cond_wait_until(p, &p->cv_state, &p->mu,
                                        deadline && deadline < backoff ? deadline : backoff);
                continue;
            }
            if (atomic_load_explicit(&p->alive, memory_order_relaxed) <
                atomic_load_explicit(&p->capacity, memory_order_relaxed)) {
                if (sluice__spawn_locked(p) == SLUICE_OK) {
                    continue;
                }
                /* No thread (thread limit, memory): report it and try
                 * again in 10 ms; nothing else would wake this wait. */
                pthread_mutex_unlock(&p->mu);
                sluice__report_start_failure(p);
                pthread_mutex_lock(&p->mu);
                uint64_t retry = sluice__add_sat(sluice__now(p), 10 * SLUICE_NS_PER_MS);
                if (until == 0 || retry < until) {
                    until = retry;
                }
            }
        }
        if (deadline && sluice__deadline_passed(sluice__now(p), deadline)) {
            rep.timed_out = true;
            /* Ask running tasks to stop, then count them at once: the
             * report names the tasks that were running at the deadline and
             * saw the flag, however fast they return or however long
             * handing the queue back takes. A worker that popped a task
             * but has not yet marked itself running is counted in neither
             * (it runs the task with the flag already set). */
            atomic_store_explicit(&p->stop, true, memory_order_release);
            break;
        }
        sluice__cond_wait_until(p, &p->cv_state, &p->mu, until);
    }
    uint64_t finished_after;
    unsigned still_running;
    progress_locked(p, &finished_after, &still_running);
    still_running += atomic_load_explicit(&p->caller_running, memory_order_seq_cst);
    pthread_mutex_unlock(&p->mu);

    if (rep.timed_out) {
        rep.handed_back = abandon_queued(p, SLUICE_ABANDON_DRAIN);
    }
    sluice__join_zombies(p);

    rep.still_running = still_running;
    rep.completed = finished_after - finished_before;
    rep.elapsed_ns = sluice__now(p) - t0;
    sluice__emit(p, SLUICE_EVENT_DRAIN_END, UINT32_MAX, 0, 0, rep.timed_out ? SLUICE_ETIMEDOUT : SLUICE_OK,
                 NULL, &rep);
    if (report) {
        *report = rep;
    }
    sluice_err result = rep.timed_out ? SLUICE_ETIMEDOUT : SLUICE_OK;

    /* Last touch of the pool: a destroy waiting for this drain may free it
     * as soon as mu is released. */
    pthread_mutex_lock(&p->mu);
    p->draining = false;
    p->drained = true;
    pthread_cond_broadcast(&p->cv_state);
    pthread_mutex_unlock(&p->mu);
    return result;
}
